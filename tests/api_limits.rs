//! Rootless: a local user reading the API cannot slow the switch, and changes are never lost.
//!
//! - The table is listed in pages (`?limit=&after=`, a `Link: rel="next"` header), each entry
//!   once, in (VLAN, MAC) order; `tapswitch fdb` follows the pages.
//! - Each listener serves at most `--api-max-conns` connections; one more gets a 503 and is
//!   closed.
//! - BPDUs wait for no reader: while 8 clients loop over a large table and `/metrics`, the
//!   time a received BPDU waits for the control thread (`tapswitch_stp_bpdu_delay_seconds`)
//!   stays bounded.
//! - A PATCH with one bad field changes nothing; concurrent PATCHes of different fields all
//!   land; a SIGHUP reload during PATCHes loses nothing the file does not itself change.
//!
//! The switch's ports are `stream:` sockets (QEMU's protocol), fed from the test.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_until, Switch, TempDir};
use serde_json::Value;
use tapswitch::client::{next_link, request, request_full};

/// `len(4, big endian) frame`, QEMU's stream framing.
fn framed(f: &[u8]) -> Vec<u8> {
    let mut v = (f.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(f);
    v
}

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.resize(60, 0);
    f
}

fn src_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x5a, b[0], b[1], b[2], b[3]]
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A connection to a `stream:` listener of the switch (a port `NAME-N` while it lasts).
fn connect(path: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(path).expect("connect to the stream listener");
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `n` frames from distinct sources (`src_mac(first..first+n)`) to `dst` on `s`.
fn feed(s: &mut UnixStream, first: u32, n: u32, dst: [u8; 6]) {
    let mut buf = Vec::with_capacity(64 * 1024);
    for i in first..first + n {
        buf.extend_from_slice(&framed(&frame(dst, src_mac(i))));
        if buf.len() >= 60 * 1024 {
            s.write_all(&buf).expect("write frames");
            buf.clear();
        }
    }
    s.write_all(&buf).expect("write frames");
}

fn config(sw: &Switch) -> Value {
    sw.get("/api/v1/config")
}

/// Waits until the table holds at least `n` entries.
fn wait_entries(sw: &Switch, n: u64, within: Duration) {
    assert!(
        wait_until(within, Duration::from_millis(100), || {
            config(sw)["fdb_entries"].as_u64().unwrap_or(0) >= n
        }),
        "the table has {} entries, not {n}",
        config(sw)["fdb_entries"]
    );
}

/// Every page of `path` on `api`: the entries of each page and the number of pages.
fn pages(api: &str, path: &str) -> (Vec<Vec<Value>>, usize) {
    let mut out = Vec::new();
    let mut next = Some(path.to_string());
    while let Some(p) = next.take() {
        let (st, head, body) = request_full(api, "GET", &p, None, None).expect("GET a page");
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(st, 200, "{p}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        out.push(v.as_array().cloned().expect("a list"));
        next = next_link(&head);
        assert!(out.len() < 10_000, "pages never end");
    }
    let n = out.len();
    (out, n)
}

fn key(e: &Value) -> (u64, String) {
    (
        e["vlan"].as_u64().expect("vlan"),
        e["mac"].as_str().expect("mac").to_string(),
    )
}

#[test]
fn the_table_is_listed_in_pages_each_entry_once() {
    let dir = TempDir::new("pages");
    let a = dir.path.join("a.sock");
    let spec = format!("a=stream:{}", a.display());
    let sw = Switch::start(&[
        "--no-default-ports",
        "--port",
        &spec,
        "--ageing-secs",
        "3600",
    ]);
    let mut s = connect(&a);
    // 4000 learned sources (a multicast destination: flooded to no other port)
    feed(&mut s, 0, 4000, [0x01, 0, 0x5e, 0, 0, 1]);
    wait_entries(&sw, 4000, Duration::from_secs(60));
    // and three static entries in VLAN 5, listed after every VLAN 0 entry
    for i in 0..3u32 {
        let body = format!(
            r#"{{"mac": "{}", "port": "a-1", "vlan": 5}}"#,
            mac_text(src_mac(100_000 + i))
        );
        let (st, b) = sw.req("POST", "/api/v1/fdb", Some(&body));
        assert_eq!(st, 201, "{b}");
    }
    let total: usize = 4003;

    // pages of 700: each entry once, in (VLAN, MAC) order, a Link while more may follow
    let (ps, n) = pages(&sw.api, "/api/v1/fdb?limit=700");
    assert_eq!(n, total.div_ceil(700), "pages");
    assert!(ps.iter().all(|p| p.len() <= 700));
    let all: Vec<(u64, String)> = ps.iter().flatten().map(key).collect();
    assert_eq!(all.len(), total, "every entry");
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "in (VLAN, MAC) order, no entry twice");
    assert!(all[total - 3..].iter().all(|(v, _)| *v == 5));

    // the default page is 1000 entries with a Link to the next
    let (st, head, body) = request_full(&sw.api, "GET", "/api/v1/fdb", None, None).unwrap();
    assert_eq!(st, 200);
    let first: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(first.as_array().unwrap().len(), 1000);
    let next = next_link(&head).expect("a Link header");
    assert!(next.starts_with("/api/v1/fdb?limit=1000&after="), "{next}");
    // filters stay on the next page's link; the last page has no link
    let (ps, n) = pages(&sw.api, "/api/v1/fdb?vlan=5&limit=2");
    assert_eq!((n, ps.concat().len()), (2, 3));
    let (ps, _) = pages(&sw.api, "/api/v1/fdb?port=a-1&limit=10000");
    assert_eq!(ps.concat().len(), total);

    // an entry present during a whole listing shows up exactly once, whatever is added or
    // removed meanwhile
    let (st, head, body) =
        request_full(&sw.api, "GET", "/api/v1/fdb?limit=500", None, None).unwrap();
    assert_eq!(st, 200);
    let mut seen: Vec<(u64, String)> = serde_json::from_slice::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let cursor_at = seen.last().unwrap().clone();
    let mut removed = HashSet::new();
    for e in sorted.iter().skip(2000).step_by(97).take(10) {
        let (st, b) = sw.req("DELETE", &format!("/api/v1/fdb/{}?vlan={}", e.1, e.0), None);
        assert_eq!(st, 204, "{b}");
        removed.insert(e.clone());
    }
    for i in 0..10u8 {
        // some sort before the cursor (02:59:...), some after (02:5b:...)
        let body = format!(
            r#"{{"mac": "{}", "port": "a-1"}}"#,
            mac_text([0x02, 0x59 + 2 * (i % 2), 0, 0, i, 1])
        );
        assert_eq!(sw.req("POST", "/api/v1/fdb", Some(&body)).0, 201);
    }
    let mut next = next_link(&head);
    while let Some(p) = next.take() {
        let (st, head, body) = request_full(&sw.api, "GET", &p, None, None).unwrap();
        assert_eq!(st, 200);
        seen.extend(
            serde_json::from_slice::<Value>(&body)
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(key),
        );
        next = next_link(&head);
    }
    let set: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(set.len(), seen.len(), "no entry twice");
    for e in &sorted {
        if !removed.contains(e) {
            assert!(set.contains(e), "{e:?} was there all along but is missing");
        }
    }
    assert!(
        seen.iter().all(|e| !removed.contains(e) || *e <= cursor_at),
        "removed entries after the cursor are not listed"
    );

    // bad requests
    for (q, what) in [
        ("limit=0", "outside 1..=10000"),
        ("limit=10001", "outside 1..=10000"),
        ("after=nonsense", "not a cursor"),
        ("after=b1-zz", "not a cursor"),
        ("bogus=1", "unknown field"),
    ] {
        let (st, body) = request(&sw.api, "GET", &format!("/api/v1/fdb?{q}"), None, None).unwrap();
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body.contains(what), "{q}: {body}");
    }

    // the CLI follows the pages: every entry, one line each
    let out = common::tapswitch_cmd(&["fdb", "--api", &sw.api]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: HashSet<&str> = text.lines().collect();
    assert_eq!(
        text.lines().count(),
        total - removed.len() + 10,
        "{}",
        &text[..300]
    );
    assert_eq!(lines.len(), text.lines().count(), "no line twice");
    let out = common::tapswitch_cmd(&["fdb", "--json", "--control", &sw.ctl]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), total - removed.len() + 10);
}

/// Opens `n` connections to the TCP listener and keeps them open.
fn hold_tcp(api: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(api).expect("connect"))
        .collect()
}

#[test]
fn a_connection_over_the_cap_gets_503_and_is_closed() {
    let sw = Switch::start(&["--no-default-ports", "--api-max-conns", "3"]);
    let mut held = hold_tcp(&sw.api, 3);
    // the three are accepted (asynchronously): then the next one is refused
    let mut answer = (0, String::new());
    let refused = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let t = Instant::now();
        answer = request(&sw.api, "GET", "/healthz", None, None).expect("an answer");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the refused connection is closed, not left hanging"
        );
        answer.0 == 503
    });
    assert!(refused, "no 503 over the cap: {answer:?}");
    assert!(
        answer.1.contains("too many connections") && answer.1.contains("at most 3"),
        "{}",
        answer.1
    );
    assert_eq!(answer.1.trim().lines().count(), 1, "a one-line reason");
    // the control socket has its own cap and is not taken by TCP clients
    assert_eq!(sw.req("GET", "/healthz", None).0, 200);
    let ctl: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&sw.ctl).expect("connect"))
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            request(&sw.ctl, "GET", "/healthz", None, None)
                .is_ok_and(|(st, b)| st == 503 && b.contains("too many connections"))
        }),
        "the control socket is capped too"
    );
    drop(ctl);
    // a connection that ends gives its place back
    held.pop();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            request(&sw.api, "GET", "/healthz", None, None).is_ok_and(|(st, _)| st == 200)
        }),
        "a place freed is served again"
    );
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            request(&sw.ctl, "GET", "/healthz", None, None).is_ok_and(|(st, _)| st == 200)
        }),
        "control socket served again"
    );
    assert!(sw.log.text().contains("API connections refused"), "logged");
    drop(held);
}

/// `tapswitch_stp_bpdu_delay_seconds`: cumulative bucket counts by bound, and the count.
fn delay_histogram(metrics: &str) -> (BTreeMap<String, u64>, u64) {
    let mut b = BTreeMap::new();
    let mut count = 0;
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix("tapswitch_stp_bpdu_delay_seconds_bucket{le=\"") {
            let (le, v) = rest.split_once("\"} ").expect("a bucket line");
            b.insert(le.to_string(), v.trim().parse::<f64>().unwrap() as u64);
        } else if let Some(v) = l.strip_prefix("tapswitch_stp_bpdu_delay_seconds_count ") {
            count = v.trim().parse::<f64>().unwrap() as u64;
        }
    }
    (b, count)
}

/// Of the BPDUs counted between two scrapes, the bound of the bucket that holds the given
/// quantile (seconds; infinity for the last bucket), and how many there were.
fn quantile_between(
    before: &(BTreeMap<String, u64>, u64),
    after: &(BTreeMap<String, u64>, u64),
    q: f64,
) -> (f64, u64) {
    let n = after.1 - before.1;
    let mut bounds: Vec<(f64, u64)> = after
        .0
        .iter()
        .map(|(le, c)| {
            let b = le.parse::<f64>().unwrap_or(f64::INFINITY);
            (b, c - before.0.get(le).copied().unwrap_or(0))
        })
        .collect();
    bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    let need = (q * n as f64).ceil() as u64;
    let le = bounds
        .iter()
        .find(|(_, c)| *c >= need)
        .map_or(f64::INFINITY, |(b, _)| *b);
    (le, n)
}

/// An RST BPDU from a bridge worse than any (priority 61440): the port stays designated and
/// nothing in the tree changes, so the table is not flushed.
fn inferior_bpdu() -> Vec<u8> {
    use tapswitch::stp::bpdu::{
        Bpdu, BpduFlags, BridgeId, ConfigBody, PortIdentifier, RoleFlag, TimeField,
    };
    let me = tapswitch::wire::MacAddr([0x02, 0xfe, 0xfe, 0xfe, 0xfe, 0x01]);
    let id = BridgeId::new(61440, me);
    Bpdu::Rst(ConfigBody {
        flags: BpduFlags::default()
            .with_role(RoleFlag::Designated)
            .with(BpduFlags::LEARNING, true)
            .with(BpduFlags::FORWARDING, true),
        root: id,
        root_path_cost: 0,
        bridge: id,
        port: PortIdentifier::new(128, 1),
        message_age: TimeField::from_secs(0),
        max_age: TimeField::from_secs(20),
        hello_time: TimeField::from_secs(2),
        forward_delay: TimeField::from_secs(15),
    })
    .to_frame(me)
}

/// Sends an inferior BPDU every 20 ms on `s` until `stop`; returns how many.
fn send_bpdus(mut s: UnixStream, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let f = framed(&inferior_bpdu());
        let mut n = 0;
        let t = Instant::now();
        while !stop.load(Relaxed) && t.elapsed() < Duration::from_secs(300) {
            s.write_all(&f).expect("send a BPDU");
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    })
}

/// 8 clients loop over every page of a large table and over `/metrics` through the TCP
/// listener while BPDUs arrive: how long BPDUs wait for the control thread stays bounded
/// (p99 under 200 ms), and is compared with the same switch without readers.
///
/// `TAPSWITCH_LOAD_ENTRIES` sets the table's size (default 1,000,000 in a release build,
/// 200,000 in a debug one), `TAPSWITCH_LOAD_SECS` the load phase (default 10 s).
#[test]
fn bpdus_wait_for_no_reader() {
    let entries: u32 = std::env::var("TAPSWITCH_LOAD_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        });
    let load_secs: u64 = std::env::var("TAPSWITCH_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = TempDir::new("bpdu");
    let (a, b) = (dir.path.join("a.sock"), dir.path.join("b.sock"));
    let (sa, sb) = (
        format!("a=stream:{},edge", a.display()),
        format!("b=stream:{},edge", b.display()),
    );
    let max = (entries as u64 * 2).to_string();
    let sw = Switch::start(&[
        "--no-default-ports",
        "--stp",
        "rstp",
        "--fdb-max",
        &max,
        "--ageing-secs",
        "3600",
        "--port",
        &sa,
        "--port",
        &sb,
    ]);
    let mut ca = connect(&a);
    let cb = connect(&b);
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            // the port exists once the switch accepted the connection
            let (st, body) = sw.req("GET", "/api/v1/ports/a-1", None);
            st == 200
                && serde_json::from_str::<Value>(&body)
                    .is_ok_and(|v| v["stp"]["state"] == "forwarding")
        }),
        "edge port a-1 forwards: {:?}",
        sw.req("GET", "/api/v1/ports/a-1", None)
    );
    // Fill the table from a-1: every frame to the first source, which a-1 has: dropped
    // (same port) after learning, so nothing is sent anywhere.
    let t = Instant::now();
    let first = src_mac(0);
    feed(&mut ca, 0, 1, [0x01, 0, 0x5e, 0, 0, 1]);
    feed(&mut ca, 1, entries - 1, first);
    wait_entries(&sw, entries as u64, Duration::from_secs(600));
    eprintln!("{entries} entries learned in {:?}", t.elapsed());
    // one whole listing, alone: every entry, once
    let t = Instant::now();
    let (ps, n) = pages(&sw.api, "/api/v1/fdb?limit=10000");
    let listed: HashSet<(u64, String)> = ps.iter().flatten().map(key).collect();
    assert_eq!(
        listed.len(),
        entries as usize,
        "one listing has every entry"
    );
    let one_listing = t.elapsed();
    eprintln!("one listing of {entries} entries: {n} pages in {one_listing:?}");

    // Without readers.
    let before = delay_histogram(&sw.metrics());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = send_bpdus(cb.try_clone().unwrap(), stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let idle = delay_histogram(&sw.metrics());

    // With 8 readers looping over every page and /metrics.
    let readers_stop = Arc::new(AtomicBool::new(false));
    let pages_read = Arc::new(AtomicU64::new(0));
    let listings = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (api, stop, pages_read, listings) = (
                sw.api.clone(),
                readers_stop.clone(),
                pages_read.clone(),
                listings.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let mut next = Some("/api/v1/fdb?limit=10000".to_string());
                    while let Some(p) = next.take() {
                        if stop.load(Relaxed) {
                            return;
                        }
                        let Ok((st, head, _)) = request_full(&api, "GET", &p, None, None) else {
                            break;
                        };
                        assert_eq!(st, 200, "a reader's page");
                        pages_read.fetch_add(1, Relaxed);
                        next = next_link(&head);
                    }
                    listings.fetch_add(1, Relaxed);
                    let _ = request(&api, "GET", "/metrics", None, None);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(load_secs));
    let loaded = delay_histogram(&sw.metrics());
    readers_stop.store(true, Relaxed);
    stop.store(true, Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
    let sent = sender.join().expect("sender");

    let (idle_p99, idle_n) = quantile_between(&before, &idle, 0.99);
    let (load_p99, load_n) = quantile_between(&idle, &loaded, 0.99);
    let (load_p50, _) = quantile_between(&idle, &loaded, 0.5);
    let max = common::sample(&sw.metrics(), "tapswitch_stp_bpdu_delay_max_seconds", &[])
        .expect("max delay");
    let (pages, lists) = (pages_read.load(Relaxed), listings.load(Relaxed));
    eprintln!(
        "BPDU delay with {entries} entries: idle p99 <= {idle_p99} s ({idle_n} BPDUs); \
         8 readers: p50 <= {load_p50} s, p99 <= {load_p99} s ({load_n} BPDUs, {pages} pages, \
         {lists} full listings in {load_secs} s); max {max} s; {sent} BPDUs sent"
    );
    // positive controls: BPDUs were handled in both phases, the readers read, and the table
    // they read was the large one
    assert!(idle_n >= 50, "BPDUs without readers: {idle_n}");
    assert!(
        load_n >= (load_secs * 20) as u64,
        "BPDUs under load: {load_n}"
    );
    assert!(pages >= 8, "pages the readers got: {pages}");
    assert!(
        config(&sw)["fdb_entries"].as_u64().unwrap_or(0) >= entries as u64,
        "the table stayed full"
    );
    assert!(
        load_p99 <= 0.2,
        "with 8 readers, 1% of BPDUs waited more than {load_p99} s for the control thread"
    );
}

/// The value of `field` in a JSON document, as text.
fn field(v: &Value, path: &[&str]) -> String {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.to_string()
}

#[test]
fn a_patch_with_one_bad_field_changes_nothing() {
    let dir = TempDir::new("patch400");
    let (a, b) = (dir.path.join("a.sock"), dir.path.join("b.sock"));
    let (sa, sb) = (
        format!("a=stream:{},uplink", a.display()),
        format!("b=stream:{}", b.display()),
    );
    let sw = Switch::start(&[
        "--no-default-ports",
        "--mode",
        "vepa",
        "--port",
        &sa,
        "--port",
        &sb,
    ]);
    let _ca = connect(&a);
    let _cb = connect(&b);
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            sw.req("GET", "/api/v1/ports/b-1", None).0 == 200
                && sw.req("GET", "/api/v1/ports/a-1", None).0 == 200
        }
    ));
    let cfg0 = config(&sw);
    for body in [
        r#"{"stp_priority": 4096, "group_fwd_mask": "bogus"}"#,
        r#"{"ageing_secs": 100, "fdb_max_learned": 0}"#,
        r#"{"fdb_max_learned": 5000, "stp_hello_time": 99}"#,
        r#"{"vlan_filtering": true, "default_pvid": 5000}"#,
        r#"{"stp_priority": 8192, "stp_mac": "nope"}"#,
    ] {
        let (st, reply) = sw.req("PATCH", "/api/v1/config", Some(body));
        assert_eq!(st, 400, "{body}: {reply}");
        assert_eq!(config(&sw), cfg0, "{body} changed something");
    }
    let port0 = sw.port("b-1");
    for (body, status) in [
        (r#"{"hairpin": true, "stp_cost": 0}"#, 400),
        (r#"{"isolated": true, "max_learned": 5, "nope": true}"#, 400),
        (r#"{"storm_broadcast": 10, "edge": "yes"}"#, 400),
        // a second uplink: refused as a conflict, and the other fields stay too
        (
            r#"{"hairpin": true, "max_learned": 5, "uplink": true}"#,
            409,
        ),
    ] {
        let (st, reply) = sw.req("PATCH", "/api/v1/ports/b-1", Some(body));
        assert_eq!(st, status, "{body}: {reply}");
        let now = sw.port("b-1");
        for f in [
            &["flags"][..],
            &["max_learned"],
            &["stp", "config"],
            &["storm"],
        ] {
            assert_eq!(field(&now, f), field(&port0, f), "{body} changed {f:?}");
        }
    }
    // positive control: the same fields alone are taken
    let (st, reply) = sw.req(
        "PATCH",
        "/api/v1/config",
        Some(r#"{"stp_priority": 4096, "ageing_secs": 100}"#),
    );
    assert_eq!(st, 200, "{reply}");
    assert_eq!(config(&sw)["stp_priority"], 4096);
    let (st, reply) = sw.req(
        "PATCH",
        "/api/v1/ports/b-1",
        Some(r#"{"hairpin": true, "max_learned": 5}"#),
    );
    assert_eq!(st, 200, "{reply}");
    assert_eq!(sw.port("b-1")["flags"]["hairpin"], true);
}

/// One field a thread owns: the PATCH that sets it to value `i`, and where to read it back.
struct Owned {
    path: String,
    body: fn(u32) -> String,
    read: fn(&Switch) -> Value,
    want: fn(u32) -> Value,
}

fn owned_fields(port: &'static str) -> Vec<Owned> {
    fn cfg(sw: &Switch, k: &str) -> Value {
        sw.get("/api/v1/config")[k].clone()
    }
    let p = format!("/api/v1/ports/{port}");
    macro_rules! flag {
        ($name:literal) => {
            Owned {
                path: p.clone(),
                body: |i| format!(r#"{{"{}": {}}}"#, $name, i % 2 == 1),
                read: |sw| sw.port("b-1")["flags"][$name].clone(),
                want: |i| Value::Bool(i % 2 == 1),
            }
        };
    }
    let _ = port;
    vec![
        Owned {
            path: "/api/v1/config".into(),
            body: |i| format!(r#"{{"ageing_secs": {}}}"#, 100 + i),
            read: |sw| cfg(sw, "ageing_secs"),
            want: |i| Value::from(100 + i),
        },
        Owned {
            path: "/api/v1/config".into(),
            body: |i| {
                format!(
                    r#"{{"group_fwd_mask": {}}}"#,
                    if i % 2 == 1 { 0x4000 } else { 0 }
                )
            },
            read: |sw| cfg(sw, "group_fwd_mask"),
            want: |i| Value::from(if i % 2 == 1 { 0x4000 } else { 0 }),
        },
        Owned {
            path: "/api/v1/config".into(),
            body: |i| format!(r#"{{"vepa_flood_unknown": {}}}"#, i % 2 == 1),
            read: |sw| cfg(sw, "vepa_flood_unknown"),
            want: |i| Value::Bool(i % 2 == 1),
        },
        Owned {
            path: "/api/v1/config".into(),
            body: |i| format!(r#"{{"fdb_max_learned": {}}}"#, 1000 + i),
            read: |sw| cfg(sw, "fdb_max_learned"),
            want: |i| Value::from(1000 + i),
        },
        Owned {
            path: "/api/v1/config".into(),
            body: |i| format!(r#"{{"stp_priority": {}}}"#, 4096 * (i % 15)),
            read: |sw| cfg(sw, "stp_priority"),
            want: |i| Value::from(4096 * (i % 15)),
        },
        flag!("hairpin"),
        flag!("isolated"),
        Owned {
            path: p.clone(),
            body: |i| format!(r#"{{"max_learned": {}}}"#, 10 + i),
            read: |sw| sw.port("b-1")["max_learned"].clone(),
            want: |i| Value::from(10 + i),
        },
        Owned {
            path: p.clone(),
            body: |i| format!(r#"{{"storm_multicast": {}}}"#, 100 + i),
            read: |sw| sw.port("b-1")["storm"]["multicast"].clone(),
            want: |i| Value::from(100 + i),
        },
        Owned {
            path: p,
            body: |i| format!(r#"{{"stp_cost": {}}}"#, 100 + i),
            read: |sw| sw.port("b-1")["stp"]["config"]["path_cost"].clone(),
            want: |i| Value::from(100 + i),
        },
    ]
}

/// Each thread PATCHes its own field again and again (and checks after each that it holds);
/// `between` runs meanwhile on the test's thread. Then every field holds its last value.
fn race_patches(sw: &Arc<Switch>, rounds: u32, between: impl FnOnce()) {
    let fields = owned_fields("b-1");
    let n = fields.len();
    let start = Arc::new(std::sync::Barrier::new(n + 1));
    let threads: Vec<_> = fields
        .into_iter()
        .map(|f| {
            let (sw, start) = (sw.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 1..=rounds {
                    let body = (f.body)(i);
                    let (st, reply) = sw.req("PATCH", &f.path, Some(&body));
                    assert_eq!(st, 200, "{body}: {reply}");
                    let got = (f.read)(&sw);
                    assert_eq!(
                        got,
                        (f.want)(i),
                        "{body} did not hold: another change lost it"
                    );
                }
                f
            })
        })
        .collect();
    start.wait();
    between();
    let fields: Vec<Owned> = threads
        .into_iter()
        .map(|t| t.join().expect("a patching thread"))
        .collect();
    for f in &fields {
        assert_eq!(
            (f.read)(sw),
            (f.want)(rounds),
            "{} was lost",
            (f.body)(rounds)
        );
    }
}

#[test]
fn concurrent_patches_of_different_fields_all_land() {
    let dir = TempDir::new("patchrace");
    let b = dir.path.join("b.sock");
    let sb = format!("b=stream:{}", b.display());
    let sw = Arc::new(Switch::start(&["--no-default-ports", "--port", &sb]));
    let _cb = connect(&b);
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || { sw.req("GET", "/api/v1/ports/b-1", None).0 == 200 }
    ));
    race_patches(&sw, 25, || {});
}

#[test]
fn a_reload_during_patches_loses_nothing_the_file_does_not_change() {
    let dir = TempDir::new("patchhup");
    let b = dir.path.join("b.sock");
    let file = dir.path.join("sw.toml");
    let write = |ageing: u32| {
        std::fs::write(
            &file,
            format!(
                "ageing_secs = {ageing}\nstp_priority = 32768\n[[port]]\nspec = \"b=stream:{}\"\n",
                b.display()
            ),
        )
        .expect("write the config");
    };
    write(300);
    let cfgarg = file.display().to_string();
    let sw = Arc::new(Switch::start(&["--no-default-ports", "--config", &cfgarg]));
    let _cb = connect(&b);
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || { sw.req("GET", "/api/v1/ports/b-1", None).0 == 200 }
    ));
    let pid = sw.pid().to_string();
    let hup = || {
        common::run_ok("kill", &["-HUP", &pid]);
    };
    let reloads = || sw.log.text().matches("configuration reloaded").count();
    // The file sets ageing_secs and stp_priority but never changes stp_priority: reloads
    // keep every PATCH (stp_priority included); ageing_secs is owned by a thread too, so the
    // file's change of it is checked after the race, alone.
    race_patches(&sw, 25, || {
        for _ in 0..5 {
            let n = reloads();
            hup();
            assert!(
                wait_until(
                    Duration::from_secs(10),
                    Duration::from_millis(10),
                    || reloads() > n
                ),
                "reload {n} did not happen:\n{}",
                sw.log.text()
            );
        }
    });
    assert!(reloads() >= 5);
    // what the file changes is applied; the rest stays
    let hairpin = sw.port("b-1")["flags"]["hairpin"].clone();
    write(42);
    let n = reloads();
    hup();
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || reloads() > n
    ));
    let c = config(&sw);
    assert_eq!(c["ageing_secs"], 42, "the file changed ageing_secs");
    assert_eq!(
        c["stp_priority"],
        4096 * (25 % 15),
        "the file did not change stp_priority"
    );
    assert_eq!(c["fdb_max_learned"], 1025);
    assert_eq!(sw.port("b-1")["flags"]["hairpin"], hairpin);
    assert_eq!(sw.port("b-1")["max_learned"], 35);
}

/// The listing goes on from the bridge's table into each vxlan port's own table (flood list
/// and unicast entries), one port after the other, each entry once, with any page size (one
/// that ends exactly at the end of the bridge's table too).
#[test]
fn vxlan_tables_are_paged_after_the_bridge_table() {
    use std::net::IpAddr;
    use tapswitch::api::{router, Access};
    use tapswitch::control::ControlHandle;
    use tapswitch::dataplane::Switch as Sw;
    use tapswitch::fdb::{EntryKind, FdbKey};
    use tapswitch::forwarding::{PortFlags, Settings};
    use tapswitch::port::mem::MemPort;
    use tapswitch::port::vxlan::VxlanPort;
    use tapswitch::vxlan::spec::VxlanSpec;
    use tapswitch::vxlan::vtep::{Underlay, Vtep};
    use tapswitch::vxlan::wire::ENCAP_HLEN;
    use tapswitch::wire::MacAddr;

    struct Nowhere;
    impl Underlay for Nowhere {
        fn send(&self, _: IpAddr, _: &[u8; ENCAP_HLEN], _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn path_mtu(&self, _: Option<IpAddr>) -> Option<u32> {
            Some(1500)
        }
    }
    let sw = Sw::new("t", Settings::default(), 1 << 16);
    let host = sw
        .add_port("h", Box::new(MemPort::new(1500)), PortFlags::default())
        .unwrap();
    let other = sw
        .add_port("g", Box::new(MemPort::new(1500)), PortFlags::default())
        .unwrap();
    let now = sw.now();
    // a third of the sources behind "g" (attached later: listed after "h" by the CLI)
    let on = |i: u32| if i % 3 == 0 { &other } else { &host };
    let mut bridge: Vec<(u64, [u8; 6], &str)> = Vec::new();
    for i in 0..1500u32 {
        sw.fdb
            .learn(FdbKey::new(MacAddr(src_mac(i)), 0), on(i).id, now);
        bridge.push((0, src_mac(i), &on(i).name));
    }
    for i in 0..200u32 {
        sw.fdb
            .learn(FdbKey::new(MacAddr(src_mac(i)), 7), on(i).id, now);
        bridge.push((7, src_mac(i), &on(i).name));
    }
    let mut expected: Vec<(String, u64, String, String)> = Vec::new();
    bridge.sort();
    for (v, m, p) in bridge {
        expected.push((p.to_string(), v, mac_text(m), "null".into()));
    }
    for (vni, n) in [(1u32, 1200u32), (2, 300)] {
        let mut spec = VxlanSpec::new(vni);
        assert!(spec.apply("local=198.18.0.1").unwrap());
        spec.check().unwrap();
        let vtep = Arc::new(Vtep::new(spec, 1450));
        let port = VxlanPort::new(vtep.clone(), Nowhere, None);
        let name = format!("vx{vni}");
        sw.add_vxlan_port(
            &name,
            vtep.clone(),
            Box::new(port),
            PortFlags::default(),
            false,
        )
        .unwrap();
        let mut mine = Vec::new();
        for d in ["198.18.0.9", "198.18.0.8"] {
            vtep.insert_user(
                MacAddr([0; 6]),
                d.parse().unwrap(),
                EntryKind::Static,
                false,
                now,
            )
            .unwrap();
            mine.push(([0u8; 6], format!("\"{d}\"")));
        }
        for i in 0..n {
            let m = [0x02, 0x77, 0, vni as u8, (i >> 8) as u8, i as u8];
            let d = if i % 2 == 0 {
                "198.18.0.2"
            } else {
                "198.18.0.3"
            };
            vtep.insert_user(
                MacAddr(m),
                d.parse().unwrap(),
                EntryKind::Static,
                false,
                now,
            )
            .unwrap();
            mine.push((m, format!("\"{d}\"")));
        }
        mine.sort();
        for (m, d) in mine {
            expected.push((name.clone(), 0, mac_text(m), d));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = router(
            sw.clone(),
            ControlHandle::current(),
            Access::Tcp { token: None },
        );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr.to_string()
    });
    let listed = |q: &str| -> (Vec<(String, u64, String, String)>, usize) {
        let (ps, n) = pages(&api, &format!("/api/v1/fdb?{q}"));
        let v = ps
            .concat()
            .iter()
            .map(|e| {
                (
                    e["port"].as_str().unwrap().to_string(),
                    e["vlan"].as_u64().unwrap(),
                    e["mac"].as_str().unwrap().to_string(),
                    e["dst"].to_string(),
                )
            })
            .collect();
        (v, n)
    };
    let total = expected.len();
    assert_eq!(total, 1700 + 1202 + 302);
    for limit in [700, 850, 10000, 7] {
        let (got, n) = listed(&format!("limit={limit}"));
        assert_eq!(n, total.div_ceil(limit), "pages of {limit}");
        assert!(got == expected, "pages of {limit}: the listing differs");
    }
    let (got, _) = listed("vlan=7&limit=50");
    assert_eq!(
        got,
        expected[1500..1700].to_vec(),
        "VLAN 7: bridge entries only"
    );
    let (got, _) = listed("vlan=0&limit=333");
    let want: Vec<_> = expected.iter().filter(|e| e.1 == 0).cloned().collect();
    assert_eq!(got, want, "VLAN 0: and the vxlan tables");
    let (got, _) = listed("port=vx2&limit=100");
    assert_eq!(got, expected[total - 302..].to_vec(), "one vxlan port");

    // `tapswitch fdb` prints the pages in the order it always printed the whole table: the
    // bridge's entries by port, VLAN and MAC, then each vxlan port's by MAC with its flood
    // list last, in the list's order
    let mut all = pages(&api, "/api/v1/fdb?limit=10000").0.concat();
    let ports = tapswitch::client::get_json(&api, "/api/v1/ports").unwrap();
    tapswitch::client::sort_fdb(&mut all, &ports);
    let shown: Vec<(String, u64, String, String)> = all
        .iter()
        .map(|e| {
            (
                e["port"].as_str().unwrap().to_string(),
                e["vlan"].as_u64().unwrap(),
                e["mac"].as_str().unwrap().to_string(),
                e["dst"].to_string(),
            )
        })
        .collect();
    let regs = sw.ports();
    let name = |id| regs.get(id).unwrap().name.clone();
    let mut before: Vec<(String, u64, String, String)> = sw
        .fdb
        .snapshot(now)
        .iter()
        .map(|r| {
            (
                name(r.port),
                r.vlan as u64,
                r.mac.to_string(),
                "null".into(),
            )
        })
        .collect();
    for (id, _vni, recs) in sw.vtep_snapshots(now) {
        for r in recs {
            before.push((name(id), 0, r.mac.to_string(), format!("\"{}\"", r.dst)));
        }
    }
    assert_eq!(shown.len(), before.len());
    assert!(shown == before, "the CLI's order changed");
    assert_eq!(before[0].0, "h");
    assert!(before.iter().any(|e| e.0 == "g"));
    rt.shutdown_background();
}
