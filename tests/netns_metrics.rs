//! Root: the metrics and the API of a switch carrying real traffic between namespaces:
//! `promtool check metrics`, a real Prometheus scraping it, and the API and CLI clients.
//! Without root they skip (with CI=true they fail); likewise without promtool/prometheus.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{tapswitch_cmd, wait_until, ChildGuard, Topo};
use serde_json::Value;

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Pins each host's neighbour entries to the others (no ARP), so pings make exactly one
/// request and one reply frame each.
fn static_neighbours(t: &Topo) {
    for h in &t.hosts {
        for o in t.hosts.iter().filter(|o| o.ifname != h.ifname) {
            h.ns.ip(&[
                "neigh",
                "replace",
                &o.ip,
                "lladdr",
                &o.mac,
                "dev",
                &h.ifname,
                "nud",
                "permanent",
            ]);
        }
    }
}

/// `rx_frames` of every port from the API, by name.
fn api_rx_frames(t: &Topo) -> Vec<(String, u64)> {
    t.sw.get("/api/v1/ports")
        .as_array()
        .expect("port list")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["counters"]["rx_frames"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn metrics_pass_promtool_and_match_the_api() {
    if !common::root_or_skip() || !common::tool_or_skip(PROMTOOL) {
        return;
    }
    let t = Topo::new(3, &[]);
    for i in 0..3 {
        t.h(i).ping_ok(&t.h((i + 1) % 3).ip, 2);
    }
    let text = t.sw.metrics();
    let mut child = Command::new("timeout")
        .args(["10", PROMTOOL, "check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\n--- metrics ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Counters agree with the API once traffic is quiet (no ARP timers run this soon; retry a
    // few times in case a late frame falls between the two reads).
    let mut last = String::new();
    let agree = wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
        let text = t.sw.metrics();
        let api = api_rx_frames(&t);
        last = format!("{api:?}\n{text}");
        api.len() == 3
            && t.hosts.iter().all(|h| {
                let m = common::sample(
                    &text,
                    "tapswitch_port_rx_frames_total",
                    &[("port", &h.ifname)],
                );
                let a = api.iter().find(|(n, _)| *n == h.ifname).map(|(_, v)| *v);
                matches!((m, a), (Some(m), Some(a)) if m > 0.0 && m == a as f64)
            })
    });
    assert!(
        agree,
        "tapswitch_port_rx_frames_total vs /api/v1/ports:\n{last}"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value Prometheus has now for an instant query with one series.
fn prom_value(prom: &str, query: &str) -> Option<f64> {
    let path = format!("/api/v1/query?query={}", urlencode(query));
    let (st, body) = tapswitch::client::request(prom, "GET", &path, None, None).ok()?;
    if st != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_exact_counts() {
    if !common::root_or_skip() || !common::tool_or_skip(PROMETHEUS) {
        return;
    }
    const N: u64 = 8;
    let t = Topo::new(2, &[]);
    static_neighbours(&t);
    let (h1, h2) = (t.h(0), t.h(1));
    h1.ping_ok(&h2.ip, 1);

    let dir = common::TempDir::new("prom");
    let cfg = dir.path.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tapswitch\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n    static_configs:\n      - targets: ['{}']\n",
            t.sw.api
        ),
    )
    .expect("write prometheus.yml");
    let prom = common::free_addr();
    let log = std::fs::File::create(dir.path.join("prometheus.log")).expect("log file");
    let _prometheus = ChildGuard(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus"),
    );
    let prom_log = || std::fs::read_to_string(dir.path.join("prometheus.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
            matches!(
                tapswitch::client::request(&prom, "GET", "/-/ready", None, None),
                Ok((200, _))
            )
        }),
        "prometheus not ready:\n{}",
        prom_log()
    );

    let query = format!("tapswitch_port_rx_frames_total{{port=\"{}\"}}", h1.ifname);
    let before = t.sw.counter(&h1.ifname, "rx_frames");
    let before2 = t.sw.counter(&h2.ifname, "rx_frames");
    h1.ping_ok(&h2.ip, N as u32);
    let now = t.sw.counter(&h1.ifname, "rx_frames");
    assert_eq!(now - before, N, "echo requests read from {}", h1.ifname);
    assert_eq!(
        t.sw.counter(&h2.ifname, "rx_frames") - before2,
        N,
        "echo replies read from {}",
        h2.ifname
    );
    let mut last = None;
    let same = wait_until(Duration::from_secs(30), Duration::from_millis(250), || {
        last = prom_value(&prom, &query);
        last == Some(t.sw.counter(&h1.ifname, "rx_frames") as f64)
    });
    assert!(
        same,
        "Prometheus has {last:?} for {query}, the switch {}\n{}",
        t.sw.counter(&h1.ifname, "rx_frames"),
        prom_log()
    );
    assert_eq!(last, Some(now as f64));
}

#[test]
fn api_and_cli_clients() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &[]);
    let (h1, h2) = (t.h(0), t.h(1));
    h1.ping_ok(&h2.ip, 1);

    // `tapswitch fdb`: bridge fdb show lines.
    let out = tapswitch_cmd(&["fdb", "--api", &t.sw.api]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tapswitch fdb: {out:?}");
    for h in &t.hosts {
        let line = format!("{} dev {} master tapswitch", h.mac, h.ifname);
        assert!(text.lines().any(|l| l == line), "no '{line}' in:\n{text}");
    }

    // `tapswitch ports --json`: JSON listing the ports.
    let out = tapswitch_cmd(&["ports", "--api", &t.sw.api, "--json"]);
    assert!(out.status.success(), "tapswitch ports: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ports --json is JSON");
    let names: Vec<&str> = v
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, [h1.ifname.as_str(), h2.ifname.as_str()]);

    // Nobody there.
    let out = tapswitch_cmd(&["fdb", "--api", "127.0.0.1:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "fdb against nothing succeeded");
    assert!(err.contains("no tapswitch answers"), "{err}");

    // A static entry.
    let mac = format!("02:54:53:{:02x}:ee:01", t.subnet);
    let body = format!(r#"{{"port":"{}","vlan":0,"kind":"static"}}"#, h2.ifname);
    let (st, resp) = t.sw.req("PUT", &format!("/api/v1/fdb/{mac}"), Some(&body));
    assert_eq!(st, 200, "{resp}");
    let e =
        t.sw.fdb()
            .into_iter()
            .find(|e| e["mac"] == mac.as_str())
            .unwrap_or_else(|| panic!("{mac} not in {:?}", t.sw.fdb()));
    assert_eq!(e["static"], true, "{e}");
    assert_eq!(e["port"], h2.ifname.as_str(), "{e}");
    let out = tapswitch_cmd(&["fdb", "--api", &t.sw.api]);
    let line = format!("{mac} dev {} master tapswitch static", h2.ifname);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == line),
        "no '{line}': {out:?}"
    );

    // Errors.
    let path = format!("/api/v1/fdb/{mac}");
    let (st, resp) = t.sw.req("PUT", &path, Some(r#"{"port": "#));
    assert_eq!(st, 400, "malformed JSON: {resp}");
    let (st, resp) =
        t.sw.req("PUT", &path, Some(r#"{"port":"nosuchport","vlan":0}"#));
    assert_eq!(st, 404, "unknown port: {resp}");
    let (st, resp) =
        t.sw.req("PUT", "/api/v1/fdb/02:54:53:zz:00:01", Some(&body));
    assert_eq!(st, 400, "bad MAC: {resp}");
    let (st, resp) = t.sw.req(
        "PATCH",
        &format!("/api/v1/ports/{}", h1.ifname),
        Some(r#"{"no_such_flag":true}"#),
    );
    assert_eq!(st, 400, "unknown flag: {resp}");
    let (st, resp) = t.sw.req(
        "PATCH",
        &format!("/api/v1/ports/{}", h1.ifname),
        Some(r#"{"hairpin":true}"#),
    );
    assert_eq!(st, 200, "hairpin: {resp}");
    assert_eq!(t.sw.port(&h1.ifname)["flags"]["hairpin"], true);

    // A second switch on the same --listen fails and leaves no TAP behind.
    let other = common::ifname('z');
    let (st, err) = common::tapswitch_fails(&[
        "run",
        "--control",
        "none",
        "--listen",
        &t.sw.api,
        "--port",
        other.as_str(),
    ]);
    assert!(!st.success(), "{err}");
    assert!(
        err.contains("--listen") && err.contains("already in use"),
        "{err}"
    );
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            !common::link_exists(&other)
        }),
        "the failed switch left {other} behind"
    );
    // The first one still answers.
    assert_eq!(t.sw.req("GET", "/healthz", None).0, 200);
}
