//! Rootless: the Grafana dashboard in `dashboards/tapswitch.json` is well formed, every query
//! uses the `${datasource}` variable, every metric it queries is really exported by a running
//! switch, and every expression is valid PromQL (checked with `promtool check rules` when
//! promtool is installed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/tapswitch.json");

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD)
        .unwrap_or_else(|e| panic!("cannot read {DASHBOARD}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"))
}

/// Every panel, with the panels nested in (collapsed) rows.
fn all_panels(d: &Value) -> Vec<&Value> {
    fn walk<'a>(ps: &'a Value, out: &mut Vec<&'a Value>) {
        for p in ps.as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        d.get("panels").expect("dashboard has no \"panels\""),
        &mut out,
    );
    out
}

fn title(p: &Value) -> String {
    p["title"].as_str().unwrap_or("<untitled>").to_string()
}

fn is_container(p: &Value) -> bool {
    matches!(p["type"].as_str(), Some("row" | "text"))
}

/// Every `targets[].expr` of every panel, with the panel's title.
fn all_exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in all_panels(d) {
        for t in p["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(e) = t["expr"].as_str() {
                out.push((title(p), e.to_string()));
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The identifiers starting with `tapswitch_` in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut start = 0;
    while let Some(off) = expr[start..].find("tapswitch_") {
        let i = start + off;
        let len = expr[i..]
            .find(|c: char| !is_ident(c))
            .unwrap_or(expr.len() - i);
        if !expr[..i].chars().next_back().is_some_and(is_ident) {
            names.insert(expr[i..i + len].to_string());
        }
        start = i + len;
    }
    names
}

fn expected_ds() -> Value {
    serde_json::json!({"type": "prometheus", "uid": "${datasource}"})
}

#[test]
fn metric_name_extraction() {
    let n = metric_names(
        r#"sum by (kind) (rate(tapswitch_frames_flooded_total{instance=~"$i"}[1m])) / x_tapswitch_no + tapswitch_fdb_entries"#,
    );
    let want: BTreeSet<String> = ["tapswitch_frames_flooded_total", "tapswitch_fdb_entries"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(n, want);
}

#[test]
fn every_panel_has_queries_and_uses_the_datasource_variable() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion missing or too old: {}",
        d["schemaVersion"]
    );
    let panels = all_panels(&d);
    assert!(
        panels.len() > 5,
        "suspiciously few panels: {}",
        panels.len()
    );
    let mut ids = BTreeSet::new();
    for p in &panels {
        let t = title(p);
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {t:?}: no id"));
        assert!(ids.insert(id), "panel {t:?}: duplicate id {id}");
        assert!(p["gridPos"].is_object(), "panel {t:?}: no gridPos");
        assert!(!t.is_empty() && t != "<untitled>", "a panel has no title");
        if is_container(p) {
            if let Some(ds) = p.get("datasource").filter(|v| !v.is_null()) {
                assert_eq!(ds, &expected_ds(), "row {t:?}: datasource");
            }
            continue;
        }
        assert!(
            p["description"].as_str().is_some_and(|s| s.len() > 20),
            "panel {t:?}: needs a description"
        );
        assert_eq!(p["datasource"], expected_ds(), "panel {t:?}: datasource");
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {t:?}: no targets"));
        let exprs: Vec<&str> = targets.iter().filter_map(|t| t["expr"].as_str()).collect();
        assert!(!exprs.is_empty(), "panel {t:?}: no query expression");
        for tg in targets {
            assert!(
                tg["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "panel {t:?}: a target without an expr: {tg}"
            );
            if let Some(ds) = tg.get("datasource").filter(|v| !v.is_null()) {
                assert_eq!(ds, &expected_ds(), "panel {t:?}: target datasource");
            }
        }
        for e in exprs {
            assert!(
                !metric_names(e).is_empty(),
                "panel {t:?}: {e:?} queries no tapswitch_ metric"
            );
            // Range selectors must follow Grafana's step: `[$__rate_interval]`, never a fixed window.
            let mut rest = e;
            while let Some(i) = rest.find('[') {
                let after = &rest[i + 1..];
                assert!(
                    after.starts_with("$__rate_interval]"),
                    "panel {t:?}: {e:?}: range selector other than [$__rate_interval]"
                );
                rest = after;
            }
            if e.contains("tapswitch_port_") {
                assert!(
                    e.contains(r#"port=~"$port""#),
                    "panel {t:?}: per-port query not filtered by $port: {e:?}"
                );
            }
            assert!(
                e.contains(r#"instance=~"$instance""#),
                "panel {t:?}: query not filtered by $instance: {e:?}"
            );
        }
    }
    for p in panels.iter().filter(|p| p["type"] == "row") {
        // Collapsed rows carry their panels; expanded rows must not (Grafana would drop them).
        let nested = p["panels"].as_array().map(Vec::len).unwrap_or(0);
        if p["collapsed"] != Value::Bool(true) {
            assert_eq!(nested, 0, "expanded row {:?} has nested panels", title(p));
        }
    }

    let vars = d["templating"]["list"]
        .as_array()
        .expect("no templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no template variable {name:?}"))
    };
    let ds = var("datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for v in vars {
        let name = v["name"].as_str().unwrap_or("?");
        if v["type"] == "datasource" {
            continue;
        }
        assert_eq!(
            v["datasource"],
            expected_ds(),
            "variable {name:?}: datasource"
        );
    }
    let query_of = |v: &Value| -> String {
        match &v["query"] {
            Value::String(s) => s.clone(),
            q => q["query"].as_str().unwrap_or_default().to_string(),
        }
    };
    let port = var("port");
    assert_eq!(port["type"], "query");
    assert_eq!(
        query_of(port),
        "label_values(tapswitch_port_rx_frames_total, port)"
    );
    assert_eq!(port["multi"], true, "$port must be multi-value");
    assert_eq!(port["includeAll"], true, "$port must include All");
    let inst = var("instance");
    assert_eq!(inst["type"], "query");
    assert_eq!(
        query_of(inst),
        "label_values(tapswitch_build_info, instance)"
    );

    // The dashboard must not reference a datasource by a fixed uid anywhere.
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    assert!(
        !text.contains("DS_PROMETHEUS"),
        "use ${{datasource}}, not an import input"
    );
}

/// A switch with no ports, killed (even on panic) when dropped.
struct Switch {
    child: Child,
    api: String,
    log: PathBuf,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Switch {
    fn start() -> Switch {
        // Bind port 0 to learn a free port, then free it for the switch.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("tsw-dashboard-{}.log", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_tapswitch"))
            .args([
                "run",
                "--control",
                "none",
                "--no-default-ports",
                "--listen",
                &api,
            ])
            .env_remove("TAPSWITCH_API_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start tapswitch");
        let mut sw = Switch { child, api, log };
        let t = Instant::now();
        loop {
            if let Ok((200, _)) = tapswitch::client::request(&sw.api, "GET", "/healthz", None, None)
            {
                break;
            }
            if let Ok(Some(st)) = sw.child.try_wait() {
                panic!("tapswitch exited with {st} before answering:\n{}", sw.log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "tapswitch did not answer /healthz on {} within 10 s:\n{}",
                sw.api,
                sw.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sw
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn every_dashboard_metric_is_exported_by_a_real_scrape() {
    let d = dashboard();
    let used: BTreeSet<String> = all_exprs(&d)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .chain(
            d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|v| metric_names(&v.to_string())),
        )
        .collect();
    assert!(!used.is_empty());

    let sw = Switch::start();
    let (status, body) = tapswitch::client::request(&sw.api, "GET", "/metrics", None, None)
        .expect("GET /metrics failed");
    assert_eq!(status, 200, "GET /metrics: {body}");
    let missing = |names: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        names
            .filter(|n| !body.contains(&format!("# TYPE {n} ")))
            .map(str::to_string)
            .collect()
    };
    let from_dashboard = missing(&mut used.iter().map(String::as_str));
    let from_module = missing(&mut tapswitch::metrics::METRIC_NAMES.iter().copied());
    assert!(
        from_dashboard.is_empty() && from_module.is_empty(),
        "a switch with no ports does not export every metric family.\n\
         used by the dashboard but without a `# TYPE` line: {from_dashboard:?}\n\
         in METRIC_NAMES but without a `# TYPE` line: {from_module:?}\n\
         --- /metrics ({} bytes) ---\n{body}\n--- tapswitch stderr ---\n{}",
        body.len(),
        sw.log()
    );
    // Every name the dashboard uses is one the module documents.
    for n in &used {
        assert!(
            tapswitch::metrics::METRIC_NAMES.contains(&n.as_str()),
            "dashboard uses {n}, which is not in tapswitch::metrics::METRIC_NAMES"
        );
    }
}

/// Grafana variables replaced by values Prometheus accepts.
fn substitute(expr: &str) -> String {
    let value = |name: &str| -> &'static str {
        let name = name.split(':').next().unwrap_or(name);
        match name {
            "__rate_interval" | "__interval" | "__range" => "1m",
            "__interval_ms" | "__range_ms" => "60000",
            "__range_s" => "60",
            _ => ".*",
        }
    };
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        if let Some(inner) = tail.strip_prefix('{') {
            let end = inner.find('}').expect("unterminated ${");
            out.push_str(value(&inner[..end]));
            rest = &inner[end + 1..];
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            assert!(end > 0, "stray $ in {expr:?}");
            out.push_str(value(&tail[..end]));
            rest = &tail[end..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn substitution() {
    assert_eq!(
        substitute(r#"rate(x{port=~"$port",i=~"${instance:regex}"}[$__rate_interval])"#),
        r#"rate(x{port=~".*",i=~".*"}[1m])"#
    );
    assert_eq!(substitute("y[${__rate_interval}]"), "y[1m]");
}

fn find_promtool() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("promtool"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let f = Path::new("/usr/bin/promtool");
        f.is_file().then(|| f.to_path_buf())
    })
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn every_expression_is_valid_promql() {
    let Some(promtool) = find_promtool() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "promtool not found (PATH or /usr/bin/promtool) and CI=true: install it \
                 (Debian/Ubuntu: apt-get install prometheus) to check the dashboard's PromQL"
            );
        }
        println!("SKIP: promtool not installed");
        return;
    };
    let exprs = all_exprs(&dashboard());
    assert!(!exprs.is_empty());
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (panel, e)) in exprs.iter().enumerate() {
        let e = substitute(e);
        assert!(
            !e.contains('$'),
            "panel {panel:?}: unreplaced variable in {e:?}"
        );
        // A JSON string is a valid YAML double-quoted scalar.
        yaml.push_str(&format!(
            "      # {}\n      - record: dashboard:expr_{i}\n        expr: {}\n",
            panel.replace('\n', " "),
            serde_json::to_string(&e).unwrap()
        ));
    }
    let file = TempFile(
        std::env::temp_dir().join(format!("tsw-dashboard-rules-{}.yml", std::process::id())),
    );
    std::fs::write(&file.0, &yaml).unwrap();
    let out = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules failed ({}):\n{text}\n--- rules ---\n{yaml}",
        out.status
    );
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "unexpected promtool output:\n{text}"
    );
}
