//! The house's shape, checked: the top-level modules of `src/` import each other without a
//! circle, and the pure core imports no fd, clock, thread or HTTP code.
//!
//! It reads the sources (no build needed) and collects every `crate::NAME` a file of module
//! `M` mentions (in `use` lines and in paths), where `M` is `src/M.rs` or `src/M/...`. Run it
//! with `cargo test --test layers`; a circle is printed as `a -> b -> ... -> a`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that must stay pure: no fds, no clock, no threads, no HTTP (STYLE.md).
const PURE: &[&str] = &[
    "buf",
    "fdb",
    "forwarding",
    "mcast",
    "neigh",
    "offload",
    "page",
    "stp",
    "types",
    "validate",
    "vlan",
    "vxlan",
    "wire",
];
/// What the pure core may import from the rest of the crate.
const PURE_MAY_USE: &[&str] = &[
    "buf",
    "fdb",
    "forwarding",
    "mcast",
    "neigh",
    "offload",
    "page",
    "stp",
    "types",
    "validate",
    "vlan",
    "wire",
    "vxlan",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every `crate::NAME` in `text`, outside comments (a `use crate::{a, b}` counts `a` and `b`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // use crate::{a::x, b};
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
            rest = after;
        }
    }
    out
}

/// The module graph: module -> the modules it imports, with one file that does for each.
fn graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut g: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for f in all {
        let Some(m) = module_of(&src, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).expect("read source");
        let deps = g.entry(m.clone()).or_default();
        for r in crate_refs(&text) {
            if r != m {
                deps.entry(r).or_insert_with(|| f.clone());
            }
        }
    }
    // only edges to modules that exist (a `crate::chain` function is not a module)
    let names: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d, _| names.contains(d));
    }
    g
}

/// A circle through the graph, if there is one (depth-first search).
fn find_cycle(g: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).map(|m| m.keys()).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|x| x == d).unwrap_or(0);
                    let mut c = stack[from..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let g = graph();
    if let Some(c) = find_cycle(&g) {
        let why: Vec<String> = c
            .windows(2)
            .map(|w| format!("  {} -> {} ({})", w[0], w[1], g[&w[0]][&w[1]].display()))
            .collect();
        panic!("import circle: {}\n{}", c.join(" -> "), why.join("\n"));
    }
}

#[test]
fn the_pure_core_imports_only_the_pure_core() {
    let g = graph();
    let mut bad = Vec::new();
    for m in PURE {
        for (d, file) in g.get(*m).into_iter().flatten() {
            if !PURE_MAY_USE.contains(&d.as_str()) {
                bad.push(format!("{m} -> {d} ({})", file.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the pure core reaches out:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle() {
    // positive control: a made-up graph with a circle, and the crate_refs reader
    let mut g: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x"), ("z", "w")] {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), PathBuf::from("f"));
    }
    let c = find_cycle(&g).expect("a circle");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4);
    let refs = crate_refs("use crate::{api, fdb::Fdb};\nlet x = crate::vlan::f(); // crate::no");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["api".to_string(), "fdb".into(), "vlan".into()]
    );
}
