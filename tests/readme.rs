//! The README, as a new user meets it: every `tapswitch` command line in it is one the real
//! command line accepts, the documented files are the shipped ones and load, and the steps
//! meant to be run work as written.
//!
//! - Every `tapswitch ...` command in a shell block (also `cargo run -- ...` and a unit's
//!   `ExecStart=`) and every inline `` `tapswitch ...` `` with arguments and no placeholder goes
//!   through [`tapswitch::cli::check_args`]: clap's parse, then the words the command reads
//!   itself (specs, `config` pairs, `fdb`/`vlan` words), by the same functions the command
//!   runs. Inline mentions with placeholders (`NAME`, `PATH`, `...`) and the synopsis under
//!   "Command line" are checked for their subcommands and `--options`, and every option of
//!   `run` must be in the synopsis.
//! - Blocks marked `<!-- test: NAME -->` (the line before the fence) are what the tests below
//!   run or compare: `quick-start`, `attach`, `config-file`, `systemd-unit`, and the libvirt
//!   recipes (tests/libvirt.rs). An unknown marker fails, so a typo cannot skip a block.
//! - Runnable steps use unique names: the test replaces the README's `tsw0`/`h0` and
//!   addresses with its own (pid and counter) and says so; nothing else changes.
//! - Every exported metric name is in the README.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Netns, Switch, TempDir, TAPSWITCH};

const README: &str = include_str!("../README.md");
const UNIT: &str = include_str!("../contrib/systemd/tapswitch.service");

/// The markers a test consumes.
const MARKERS: &[&str] = &[
    "quick-start",
    "attach",
    "config-file",
    "systemd-unit",
    "libvirt-ethernet",
    "libvirt-vhostuser",
];

/// A fenced code block.
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    marker: Option<String>,
    text: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let marker = (i > 0)
            .then(|| lines[i - 1].trim())
            .and_then(|l| l.strip_prefix("<!-- test:"))
            .and_then(|l| l.strip_suffix("-->"))
            .map(|m| m.trim().to_string());
        let start = i;
        let mut text = String::new();
        i += 1;
        while i < lines.len() && !lines[i].starts_with("```") {
            text.push_str(lines[i]);
            text.push('\n');
            i += 1;
        }
        out.push(Block {
            line: start + 1,
            lang: lang.trim().to_string(),
            marker,
            text,
        });
        i += 1;
    }
    out
}

/// The block with this marker (exactly one).
fn marked(name: &str) -> Block {
    let mut found: Vec<Block> = blocks(README)
        .into_iter()
        .filter(|b| b.marker.as_deref() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "README blocks marked '{name}'");
    found.remove(0)
}

/// Inline code spans outside blocks, with their line (a span may cross a line break).
fn inline_spans(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut para: Vec<(usize, &str)> = Vec::new();
    let mut flush = |para: &mut Vec<(usize, &str)>| {
        // (line, char) of the paragraph, so a span knows where it starts
        let mut text = String::new();
        let mut lines = Vec::new();
        for (n, l) in para.drain(..) {
            for _ in l.chars().chain(std::iter::once(' ')) {
                lines.push(n);
            }
            text.push_str(l);
            text.push(' ');
        }
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while let Some(o) = chars[i..].iter().position(|&c| c == '`') {
            let open = i + o;
            let Some(len) = chars[open + 1..].iter().position(|&c| c == '`') else {
                break;
            };
            let code: String = chars[open + 1..open + 1 + len].iter().collect();
            out.push((lines[open], code));
            i = open + len + 2;
        }
    };
    for (n, l) in md.lines().enumerate() {
        if l.starts_with("```") {
            flush(&mut para);
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        if l.trim().is_empty() {
            flush(&mut para);
        } else {
            para.push((n + 1, l));
        }
    }
    flush(&mut para);
    out
}

/// Splits shell text into simple commands: continuation lines joined, comments dropped, and
/// split at `|`, `;`, `&&` and `||` outside quotes.
fn shell_commands(text: &str, first_line: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = first_line;
    for (k, l) in text.lines().enumerate() {
        if joined.is_empty() {
            start = first_line + k;
        }
        if let Some(head) = l.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(l);
        let (mut cur, mut q, mut prev) = (String::new(), None::<char>, ' ');
        let mut chars = joined.chars().peekable();
        while let Some(c) = chars.next() {
            match (q, c) {
                (Some(open), _) if c == open => q = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => q = Some(c),
                (None, '#') if prev.is_whitespace() => break,
                (None, '|' | ';' | '&') => {
                    if chars.peek() == Some(&c) {
                        chars.next();
                    }
                    out.push((start, std::mem::take(&mut cur)));
                    prev = ' ';
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            prev = c;
        }
        out.push((start, cur));
        joined.clear();
    }
    out.retain(|(_, c)| !c.trim().is_empty());
    out
}

/// The arguments of a `tapswitch` invocation (also `cargo run [...] -- ARGS` and a path
/// ending in `/tapswitch`), or `None` for other commands.
fn tapswitch_args(cmd: &str) -> Option<Vec<String>> {
    let cmd = cmd.trim();
    let cmd = cmd.strip_prefix("ExecStart=").unwrap_or(cmd);
    let words = shlex::split(cmd)?;
    let first = words.first()?;
    if first == "tapswitch" || first.ends_with("/tapswitch") {
        return Some(words[1..].to_vec());
    }
    if first == "cargo" && words.get(1).map(String::as_str) == Some("run") {
        let dashes = words.iter().position(|w| w == "--")?;
        return Some(words[dashes + 1..].to_vec());
    }
    None
}

/// A placeholder word of prose or a synopsis: `NAME`, `PATH`, `N[-M]`, `...`.
fn is_placeholder(w: &str) -> bool {
    w.contains("...")
        || w.contains('[')
        || w.contains('|')
        || w.chars().any(|c| c.is_ascii_uppercase())
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Checks a synopsis-style line (`tapswitch fdb add|replace MAC dev PORT [vlan N]`): its
/// subcommands exist, and so do its `--options` for them.
fn check_synopsis(line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first() != Some(&"tapswitch") {
        return Err(format!("not a tapswitch line: {line}"));
    }
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    for w in &words[1..] {
        let bare = w.trim_start_matches('[').trim_end_matches(']');
        let optional = w.starts_with('[');
        let alts: Vec<&str> = bare.split('|').collect();
        if !alts.iter().all(|a| {
            a.starts_with(|c: char| c.is_ascii_lowercase())
                && a.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        }) {
            break;
        }
        // the next words are subcommands only if the current path has them
        let base = paths[0].clone();
        let mut b: Vec<&str> = base.iter().map(String::as_str).collect();
        b.push(alts[0]);
        if tapswitch::cli::long_options(&b).is_none() {
            // an argument word (`dev PORT`, `[vlan N]`), not a subcommand
            break;
        }
        paths = alts
            .iter()
            .map(|a| {
                let mut p = base.clone();
                p.push(a.to_string());
                p
            })
            .collect();
        if optional {
            // `[show]`: the path without it is the command; it must exist as well
            paths = vec![base];
            break;
        }
    }
    for p in &paths {
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        let opts = tapswitch::cli::long_options(&p)
            .ok_or_else(|| format!("no subcommand {p:?} in: {line}"))?;
        let mut rest = line;
        while let Some(i) = rest.find("--") {
            let before = rest[..i].chars().last().unwrap_or(' ');
            let name: String = rest[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            rest = &rest[i + 2..];
            if !(before.is_whitespace() || before == '[' || before == '|') || name.is_empty() {
                continue;
            }
            let opt = format!("--{name}");
            if !opts.contains(&opt) {
                return Err(format!("tapswitch {} has no {opt}: {line}", p.join(" ")));
            }
        }
    }
    Ok(())
}

/// The synopsis block under "Command line", one entry per command (continuations joined).
fn synopsis() -> Vec<(usize, String)> {
    let b = blocks(README)
        .into_iter()
        .find(|b| b.lang.is_empty() && b.text.starts_with("tapswitch run ["))
        .expect("the synopsis block under 'Command line'");
    let mut out: Vec<(usize, String)> = Vec::new();
    for (k, l) in b.text.lines().enumerate() {
        let l = l.split("  #").next().unwrap_or(l).trim_end();
        if l.starts_with("tapswitch") {
            out.push((b.line + 1 + k, l.to_string()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(' ');
            last.1.push_str(l.trim());
        }
    }
    out
}

/// Every `tapswitch` command of the README: (line, args, full check?).
fn readme_commands() -> Vec<(usize, Vec<String>, bool)> {
    let mut out = Vec::new();
    for b in blocks(README) {
        if !matches!(b.lang.as_str(), "sh" | "ini") {
            continue;
        }
        for (line, cmd) in shell_commands(&b.text, b.line + 1) {
            if let Some(args) = tapswitch_args(&cmd) {
                out.push((line, args, true));
            }
        }
    }
    for (line, code) in inline_spans(README) {
        let Some(args) = tapswitch_args(&code) else {
            continue;
        };
        // a mention of a command, or an example with placeholders: the synopsis check
        let path: Vec<&str> = args.iter().map(String::as_str).collect();
        let full = !args.iter().any(|w| is_placeholder(w))
            && tapswitch::cli::long_options(&path).is_none();
        out.push((line, args, full));
    }
    out
}

#[test]
fn every_tapswitch_command_line_in_the_readme_is_accepted() {
    let cmds = readme_commands();
    let mut failures = Vec::new();
    for (line, args, full) in &cmds {
        let r = if *full {
            tapswitch::cli::check_args(args).map_err(|e| format!("{e:#}"))
        } else {
            check_synopsis(&format!("tapswitch {}", args.join(" ")))
        };
        if let Err(e) = r {
            failures.push(format!(
                "README.md:{line}: tapswitch {}: {e}",
                args.join(" ")
            ));
        }
    }
    for (line, s) in synopsis() {
        if let Err(e) = check_synopsis(&s) {
            failures.push(format!("README.md:{line}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the extraction found what it must: the commands issue 24 found refused, the quick
    // start, the unit's ExecStart
    let has = |s: &str| cmds.iter().any(|(_, a, full)| *full && a.join(" ") == s);
    for s in [
        "config vlan_filtering true",
        "config stp rstp",
        "config group_fwd_mask lldp,lacp",
        "demo",
        "run --config /etc/tapswitch.toml --control /run/tapswitch/tapswitch.sock --control-group tapswitch",
    ] {
        assert!(has(s), "'tapswitch {s}' not found in the README's commands");
    }
    assert!(cmds.len() > 60, "only {} commands found", cmds.len());
}

#[test]
fn the_readme_checks_can_fail() {
    // positive controls of the checkers above: each must refuse what the CLI refuses
    assert!(tapswitch::cli::check_args(["config", "vlan_filtering", "maybe"]).is_err());
    assert!(tapswitch::cli::check_args(["run", "--no-such-option"]).is_err());
    assert!(tapswitch::cli::check_args(["port", "add", "bogus:x"]).is_err());
    assert!(tapswitch::cli::check_args(["fdb", "add", "02:00:00:00:00:01"]).is_err());
    assert!(tapswitch::cli::check_args(["vlan", "add", "dev", "x", "vid", "4095"]).is_err());
    assert!(tapswitch::cli::check_args(["mirror", "add", "m1", "src", "a"]).is_err());
    assert!(check_synopsis("tapswitch run [--no-such-option]").is_err());
    assert!(check_synopsis("tapswitch nosuch [--json]").is_err());
    assert!(check_synopsis("tapswitch fdb add|replace MAC [--nope]").is_err());
    assert!(check_synopsis("tapswitch fdb [show] [--json]").is_ok());
    // comments, pipes and continuations
    let c = shell_commands(
        "tapswitch capture a -w - | tcpdump -r -   # live\nx 'a|b' \\\n  y; z && w\n",
        1,
    );
    let got: Vec<String> = c
        .iter()
        .map(|(_, s)| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        got,
        [
            "tapswitch capture a -w -",
            "tcpdump -r -",
            "x 'a|b' y",
            "z",
            "w"
        ]
    );
}

#[test]
fn the_synopsis_lists_every_command_and_every_run_option() {
    let syn = synopsis();
    let text: String = syn.iter().map(|(_, s)| format!("{s}\n")).collect();
    let top = tapswitch::cli::subcommands();
    for sub in &top {
        assert!(
            text.contains(&format!("tapswitch {sub}")),
            "the synopsis does not show `tapswitch {sub}`"
        );
    }
    let run = tapswitch::cli::long_options(&["run"]).expect("run");
    for opt in run {
        if matches!(opt.as_str(), "--help" | "--version" | "--log-format") {
            continue;
        }
        assert!(
            text.contains(&format!("[{opt} ")) || text.contains(&format!("[{opt}]")),
            "the synopsis of `tapswitch run` does not show {opt}"
        );
        // and the options table has a row for it
        assert!(
            README.contains(&format!("| `{opt}")),
            "the options table has no row for {opt}"
        );
    }
}

#[test]
fn every_readme_marker_is_a_known_one() {
    for b in blocks(README) {
        if let Some(m) = &b.marker {
            assert!(
                MARKERS.contains(&m.as_str()),
                "README.md:{}: unknown test marker '{m}' (known: {MARKERS:?})",
                b.line
            );
        }
    }
    for m in MARKERS {
        marked(m);
    }
}

/// The README's configuration file example loads (its `control_group = "tapswitch"` is
/// replaced by `root`, a group every machine has).
#[test]
fn the_readme_configuration_file_loads() {
    let b = marked("config-file");
    assert_eq!(b.lang, "toml");
    assert!(b.text.contains("control_group = \"tapswitch\""));
    let dir = TempDir::new("readme-cfg");
    let path = dir.path.join("tapswitch.toml");
    std::fs::write(
        &path,
        b.text
            .replace("control_group = \"tapswitch\"", "control_group = \"root\""),
    )
    .unwrap();
    let cfg = tapswitch::config::Config::resolve(&tapswitch::config::Overrides {
        config: Some(path),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("the README's configuration file: {e}"));
    assert_eq!(cfg.name, "br0");
    assert_eq!(cfg.ports.len(), 5);
    assert_eq!(cfg.mirrors.len(), 1);
}

/// The unit file of "Running with least privilege" is contrib/systemd/tapswitch.service,
/// verbatim; `systemd-analyze verify` finds nothing in it (with ExecStart's binary at the
/// path of the one under test, since /usr/local/bin/tapswitch is not installed here).
#[test]
fn the_readme_systemd_unit_is_the_shipped_file_and_verifies() {
    let b = marked("systemd-unit");
    assert_eq!(b.lang, "ini");
    assert_eq!(
        b.text, UNIT,
        "the README's unit differs from contrib/systemd/tapswitch.service"
    );
    let sections: Vec<&str> = UNIT.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[Unit]", "[Service]", "[Install]"]);
    assert!(UNIT.contains("\nRuntimeDirectory=tapswitch\n"));
    assert!(
        UNIT.contains("--control /run/tapswitch/tapswitch.sock"),
        "the control socket is in the RuntimeDirectory, not in the private /tmp"
    );
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("systemd-analyze is missing (tests/install-deps.sh installs systemd)");
        }
        eprintln!("SKIP: systemd-analyze is missing (Debian package systemd)");
        return;
    };
    assert!(out.status.success());
    let dir = TempDir::new("unit");
    let unit = dir.path.join("tapswitch.service");
    assert!(UNIT.contains("ExecStart=/usr/local/bin/tapswitch "));
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/tapswitch", TAPSWITCH)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
    // the positive control: verify reports a broken unit
    std::fs::write(&unit, UNIT.replace("RuntimeDirectory=", "RuntimeDirectoy=")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("RuntimeDirectoy"));
}

/// A link deleted on drop.
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = common::run("ip", &["link", "del", &self.0]);
    }
}

/// The unit's service, run as systemd would run it: as an unprivileged user with only the
/// unit's ambient capabilities, its RuntimeDirectory made for that user. The configuration's
/// `packet:` port (a veth) opens, and its TAP port where /dev/net/tun lets every user open it
/// (mode 0666, Debian's default; some containers make it 0600, and then only root can open
/// TAPs whatever the capabilities); the control socket lands in the runtime directory with
/// mode 0660 and the group, and root's client reaches it there (with PrivateTmp, a socket in
/// /tmp would not be reachable).
#[test]
fn the_systemd_units_service_runs_as_its_user() {
    if !common::root_or_skip() {
        return;
    }
    let unit: BTreeMap<&str, &str> = UNIT.lines().filter_map(|l| l.split_once('=')).collect();
    let caps: Vec<String> = unit["AmbientCapabilities"]
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = caps.join(",");
    let exec = unit["ExecStart"];
    let dir = TempDir::new("unitrun");
    // nobody must reach the binary, the configuration and the runtime directory
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path.join("tapswitch");
    std::fs::copy(TAPSWITCH, &bin).unwrap();
    let veth = common::ifname('v');
    let peer = common::ifname('w');
    common::run_ok(
        "ip",
        &["link", "add", &veth, "type", "veth", "peer", "name", &peer],
    );
    let _link = Link(veth.clone());
    let mut ports = vec![format!("packet:{veth}")];
    let tun_mode = std::fs::metadata("/dev/net/tun").map_or(0, |m| m.permissions().mode());
    let tap = common::ifname('u');
    if tun_mode & 0o006 == 0o006 {
        ports.push(tap.clone());
    } else {
        eprintln!(
            "NOTE: /dev/net/tun has mode {:o} here, so no user but root opens a TAP: the unit's \
             TAP port is not tried",
            tun_mode & 0o777
        );
    }
    let cfg = dir.path.join("tapswitch.toml");
    let mut text = "listen = \"none\"\n".to_string();
    for p in &ports {
        text.push_str(&format!("[[port]]\nspec = \"{p}\"\n"));
    }
    std::fs::write(&cfg, text).unwrap();
    let run = dir.path.join("run").join(unit["RuntimeDirectory"]);
    std::fs::create_dir_all(&run).unwrap();
    common::run_ok("chown", &["65534:65534", &run.display().to_string()]);
    let args = tapswitch_args(exec).expect("ExecStart runs tapswitch");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("/etc/tapswitch.toml", &cfg.display().to_string())
                .replace("/run/tapswitch", &run.display().to_string())
        })
        .collect();
    let group_at = args.iter().position(|a| a == "--control-group").unwrap() + 1;
    let mut args = args;
    args[group_at] = "65534".into();
    let mut child = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(format!("--bounding-set=-all,{caps}"))
        .arg("--no-new-privs")
        .arg(&bin)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    let log = common::Log::default();
    common::collect_stderr(child.stderr.take().unwrap(), log.clone());
    let _guard = common::ChildGuard(child);
    assert!(
        common::wait_until(Duration::from_secs(10), Duration::from_millis(20), || log
            .text()
            .contains(" ready")),
        "the unit's command did not get ready as an unprivileged user:\n{}",
        log.text()
    );
    let sock = run.join("tapswitch.sock");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&sock).expect("the control socket is in the runtime directory");
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    let out = common::tapswitch_cmd(&["ports", "--control", &sock.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&veth),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if ports.len() > 1 {
        assert!(text.contains(&tap), "{text}");
        assert!(common::link_exists(&tap), "the TAP port was created");
    }
}

/// Replaces whole words (`tsw0`, not `tsw01`).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before = if i > 0 {
            rest[..i].chars().last()
        } else {
            out.chars().last()
        };
        let after = rest[i + from.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..i]);
        out.push_str(if word(before) || word(after) {
            from
        } else {
            to
        });
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

/// "Attaching hosts": the namespace steps, run as written for two TAP ports of a running
/// switch (the README's `tsw0`, `h0` and 198.18.0.1 replaced by unique names and a second
/// host's address); the two hosts then ping each other through the switch.
#[test]
fn the_readme_attaching_hosts_steps_work() {
    if !common::root_or_skip() {
        return;
    }
    let b = marked("attach");
    assert!(b.text.contains("tsw0") && b.text.contains("h0") && b.text.contains("198.18.0.1/24"));
    let subnet = common::unique() % 250 + 1;
    let taps = [common::ifname('a'), common::ifname('b')];
    let names: Vec<String> = (0..2)
        .map(|_| format!("tsw-{}-{}", std::process::id(), common::unique()))
        .collect();
    // guards first: the switch (declared after) stops before the namespaces go
    let _ns: Vec<Netns> = names.iter().map(|n| Netns { name: n.clone() }).collect();
    let sw = Switch::start(&["--port", &taps[0], "--port", &taps[1]]);
    for (i, (tap, ns)) in taps.iter().zip(&names).enumerate() {
        let script = replace_word(&replace_word(&b.text, "tsw0", tap), "h0", ns)
            .replace("198.18.0.1/24", &format!("198.18.{subnet}.{}/24", i + 1));
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "the README's steps failed:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("ip")
        .args([
            "netns", "exec", &names[0], "ping", "-c", "3", "-i", "0.2", "-W", "2",
        ])
        .arg(format!("198.18.{subnet}.2"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nswitch log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        sw.log.text()
    );
}

/// "Quick start": its commands, as written. `cargo run --release -- demo` runs the binary
/// under test with the same arguments; `bash tests/run.sh` is this test suite itself.
#[test]
fn the_readme_quick_start_runs() {
    if !common::root_or_skip() {
        return;
    }
    let b = marked("quick-start");
    let cmds = shell_commands(&b.text, b.line + 1);
    let cmds: Vec<&str> = cmds.iter().map(|(_, c)| c.trim()).collect();
    assert_eq!(
        cmds,
        ["cargo run --release -- demo", "bash tests/run.sh"],
        "the quick start changed: teach this test its new commands"
    );
    let args = tapswitch_args(cmds[0]).unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg(TAPSWITCH)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("6 of 6 host pairs reached each other"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new("tests/run.sh").exists());
    let ci = std::fs::read_to_string(".ci/run").expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == cmds[1]),
        ".ci/run does not run the README's test command '{}'",
        cmds[1]
    );
}

/// Every `tapswitch config KEY VALUE...` of the README, run against a switch: each is
/// accepted, and the settings read back afterwards are the ones it gave.
#[test]
fn the_readme_config_commands_change_the_switch() {
    let sw = Switch::start(&["--no-default-ports"]);
    let cmds: Vec<Vec<String>> = readme_commands()
        .into_iter()
        .filter(|(_, a, full)| {
            *full && a.first().map(String::as_str) == Some("config") && a.len() > 1
        })
        .map(|(_, a, _)| a)
        .collect();
    assert!(cmds.len() >= 3, "{cmds:?}");
    for args in cmds {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--control", &sw.ctl]);
        let out = common::tapswitch_cmd(&all);
        assert!(
            out.status.success(),
            "tapswitch {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let want = tapswitch::client::parse_config_words(&args[1..]).unwrap();
        let got = sw.get("/api/v1/config");
        for (k, v) in want.as_object().unwrap() {
            let g = &got[k];
            let same = g == v
                || (k == "stp" && g == if v == "off" { "off" } else { "rstp" })
                || (k == "vlan_protocol"
                    && g.as_str().map(str::to_lowercase) == v.as_str().map(str::to_lowercase));
            assert!(same, "tapswitch {}: {k} is {g}, not {v}", args.join(" "));
        }
    }
}

/// GitHub's anchor of a heading: lower case, punctuation but `-` dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every `](#anchor)` link of the README (the table of contents and the cross references)
/// names a heading of the README, and the contents list every top-level section.
#[test]
fn every_readme_link_names_a_heading() {
    let mut fence = false;
    let mut headings = Vec::new();
    for l in README.lines() {
        if l.starts_with("```") {
            fence = !fence;
        }
        if !fence && l.starts_with('#') {
            headings.push(l);
        }
    }
    let anchors: Vec<String> = headings.iter().map(|h| anchor(h)).collect();
    let mut links = 0;
    for part in README.split("](#").skip(1) {
        let target = part.split(')').next().unwrap_or_default();
        assert!(
            anchors.iter().any(|a| a == target),
            "README links to #{target}, which no heading makes"
        );
        links += 1;
    }
    assert!(links > 20, "{links} links");
    let contents = README
        .split("## Contents")
        .nth(1)
        .and_then(|r| r.split("\n## ").next())
        .expect("a Contents section");
    for h in headings
        .iter()
        .filter(|h| h.starts_with("## ") && **h != "## Contents")
    {
        assert!(
            contents.contains(&format!("(#{})", anchor(h))),
            "the contents do not list {h}"
        );
    }
    assert_eq!(anchor("## QEMU/KVM guests"), "qemukvm-guests");
}

/// Every metric the switch exports (`tapswitch::metrics::METRIC_NAMES`, which the metrics
/// module's own test holds to what `/metrics` describes) is named in the README, so the
/// Metrics table cannot fall behind the code.
#[test]
fn every_exported_metric_is_named_in_the_readme() {
    let missing: Vec<&str> = tapswitch::metrics::METRIC_NAMES
        .iter()
        .copied()
        .filter(|n| !names_metric(README, n))
        .collect();
    assert!(
        missing.is_empty(),
        "exported but not in the README: {missing:?}"
    );
    // the check can fail: a name the README has only as a prefix of a longer one
    assert!(names_metric(
        "`tapswitch_x_total{port}`",
        "tapswitch_x_total"
    ));
    assert!(!names_metric(
        "`tapswitch_x_total_more`",
        "tapswitch_x_total"
    ));
}

/// Whether `text` has `name` as a whole metric name (not the start of a longer one).
fn names_metric(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        !text[i + name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}
