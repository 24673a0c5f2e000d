//! Root: loop safety with real peers. Three tapswitch processes in a ring (each in its own
//! namespace, joined by veth pairs as `packet:` ports, one host each); tapswitch and a Linux
//! bridge with `stp_state 1` joined by two parallel links; BPDU guard, root guard and storm
//! control. Every wait is bounded; convergence times are printed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{collect_stderr, frame_hex, run, run_ok, unique, wait_until, Host, Log, Netns};
use serde_json::Value;

const BCAST: &str = "ff:ff:ff:ff:ff:ff";

/// A tapswitch running inside a namespace, reached through its control socket.
struct NsSwitch {
    child: Child,
    ctl: String,
    log: Log,
}

impl NsSwitch {
    fn start(ns: &Netns, args: &[&str]) -> NsSwitch {
        let ctl = common::ctl_path();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, common::TAPSWITCH, "run"])
            .args(["--listen", "none", "--control", &ctl])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapswitch");
        let log = Log::default();
        collect_stderr(child.stderr.take().expect("stderr"), log.clone());
        let sw = NsSwitch { child, ctl, log };
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || sw
                .log
                .text()
                .contains(" ready")),
            "not ready:\n{}",
            sw.log.text()
        );
        sw
    }

    fn get(&self, path: &str) -> Value {
        tapswitch::client::get_json(&self.ctl, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}\n{}", self.log.text()))
    }

    /// (port name, role, state) of every port in the tree.
    fn roles(&self) -> Vec<(String, String, String)> {
        let v = self.get("/api/v1/stp");
        v["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    p["role"].as_str().unwrap_or("").to_string(),
                    p["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn rx_total(&self) -> u64 {
        self.get("/api/v1/ports")
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["counters"]["rx_frames"].as_u64().unwrap_or(0))
            .sum()
    }
}

impl Drop for NsSwitch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ctl);
    }
}

/// A veth pair with its ends moved into two namespaces (removed with them).
fn veth(a: &Netns, an: &str, b: &Netns, bn: &str) {
    run_ok(
        "ip",
        &["link", "add", an, "type", "veth", "peer", "name", bn],
    );
    run_ok("ip", &["link", "set", an, "netns", &a.name]);
    run_ok("ip", &["link", "set", bn, "netns", &b.name]);
    a.ip(&["link", "set", an, "up"]);
    b.ip(&["link", "set", bn, "up"]);
}

fn name(tag: &str) -> String {
    let n = format!("s{}{}{tag}", std::process::id() % 100000, unique() % 100);
    assert!(n.len() <= 15, "{n}");
    n
}

/// The tree has settled: root and designated ports forward, alternate and backup ports
/// discard, and no port is disabled (every port's link is up: a host's port follows its TAP's
/// link, which the switch sees up a moment after the host brings it up).
fn settled(sws: &[&NsSwitch]) -> bool {
    sws.iter().all(|s| {
        let r = s.roles();
        !r.is_empty()
            && r.iter().all(|(_, role, st)| match role.as_str() {
                "root" | "designated" => st == "forwarding",
                "alternate" | "backup" => st == "discarding",
                "disabled" => false,
                _ => true,
            })
    })
}

/// Ping from `a` to `ip` every 100 ms until one is answered; how long it took.
fn reach_within(a: &Host, ip: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        let out = a.ns.exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", ip]);
        if out.status.success() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn ring_of_three_switches_is_loop_free_and_heals() {
    if !common::root_or_skip() {
        return;
    }
    let sns: Vec<Netns> = (0..3).map(|_| Netns::new()).collect();
    let hns: Vec<Netns> = (0..3).map(|_| Netns::new()).collect();
    // ring links: i <-> i+1: end "a" in switch i, end "b" in switch i+1
    let links: Vec<(String, String)> = (0..3).map(|_| (name("a"), name("b"))).collect();
    for i in 0..3 {
        let j = (i + 1) % 3;
        veth(&sns[i], &links[i].0, &sns[j], &links[i].1);
    }
    let taps: Vec<String> = (0..3).map(|_| name("h")).collect();
    let t0 = Instant::now();
    let sws: Vec<NsSwitch> = (0..3)
        .map(|i| {
            let prev = (i + 2) % 3;
            let prio = ["4096", "32768", "32768"][i];
            let mac = format!("02:00:5e:00:53:0{}", i + 1);
            let host = format!("{},edge", taps[i]);
            let p1 = format!("packet:{}", links[i].0);
            let p2 = format!("packet:{}", links[prev].1);
            NsSwitch::start(
                &sns[i],
                &[
                    "--stp",
                    "rstp",
                    "--stp-priority",
                    prio,
                    "--stp-mac",
                    &mac,
                    "--name",
                    &format!("ring{i}"),
                    "--port",
                    &host,
                    "--port",
                    &p1,
                    "--port",
                    &p2,
                ],
            )
        })
        .collect();
    let hosts: Vec<Host> = hns
        .into_iter()
        .enumerate()
        .map(|(i, ns)| {
            // the switch made the TAP in its namespace: move it to the host's
            sns[i].ip(&["link", "set", &taps[i], "netns", &ns.name]);
            Host::attach_here(ns, &taps[i], &format!("198.18.61.{}/24", i + 1), None)
        })
        .collect();
    let refs: Vec<&NsSwitch> = sws.iter().collect();
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            settled(&refs)
        }),
        "no convergence: {:?}",
        refs.iter().map(|s| s.roles()).collect::<Vec<_>>()
    );
    eprintln!(
        "ring converged {:?} after the first switch started",
        t0.elapsed()
    );
    // exactly one ring port is alternate and discarding, none backup
    let roles: Vec<Vec<(String, String, String)>> = refs.iter().map(|s| s.roles()).collect();
    let alternates: Vec<&(String, String, String)> = roles
        .iter()
        .flatten()
        .filter(|(_, r, _)| r == "alternate")
        .collect();
    assert_eq!(alternates.len(), 1, "{roles:?}");
    assert_eq!(alternates[0].2, "discarding", "{roles:?}");
    assert!(
        roles[0].iter().all(|(_, r, _)| r == "designated"),
        "switch 0 is root: {roles:?}"
    );
    for a in &hosts {
        for b in &hosts {
            if a.ip != b.ip {
                a.ping_ok(&b.ip, 2);
            }
        }
    }
    // No storm: 500 broadcasts from host 0 are each seen a bounded number of times.
    let before: u64 = refs.iter().map(|s| s.rx_total()).sum();
    hosts[0].send(&frame_hex(BCAST, &hosts[0].mac, 0x88b5, b"storm?"), 500);
    std::thread::sleep(Duration::from_millis(500));
    let after: u64 = refs.iter().map(|s| s.rx_total()).sum();
    // each broadcast is read 4 times: at switch 0 from the host, at switches 1 and 2 from
    // switch 0, and once more at the blocked end of the third link (read, then dropped as
    // stp_discarding); plus background ARP and BPDUs. A loop would read it without end.
    assert!(
        after - before < 500 * 4 + 300,
        "frames read {}: a loop",
        after - before
    );
    let settle = refs.iter().map(|s| s.rx_total()).sum::<u64>();
    std::thread::sleep(Duration::from_millis(1000));
    let later = refs.iter().map(|s| s.rx_total()).sum::<u64>();
    assert!(
        later - settle < 100,
        "frames keep circulating: {}",
        later - settle
    );

    // Take a forwarding ring link down: connectivity comes back.
    let (down_ns, down_if) = {
        // a link whose both ends forward: not the one with the alternate port
        let alt = &alternates[0].0;
        let i = (0..3)
            .find(|&i| links[i].0 != *alt && links[i].1 != *alt)
            .expect("a forwarding link");
        (&sns[i], links[i].0.clone())
    };
    let shape: Vec<Vec<(String, String, String)>> = roles.clone();
    down_ns.ip(&["link", "set", &down_if, "down"]);
    let mut worst = Duration::ZERO;
    for a in &hosts {
        for b in &hosts {
            if a.ip != b.ip {
                let t = reach_within(a, &b.ip, Duration::from_secs(15))
                    .unwrap_or_else(|| panic!("{} cannot reach {} with a link down", a.ip, b.ip));
                worst = worst.max(t);
            }
        }
    }
    eprintln!("ring link {down_if} down: every pair reachable again within {worst:?}");
    // Back up: the tree returns to the same shape.
    down_ns.ip(&["link", "set", &down_if, "up"]);
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
            refs.iter().map(|s| s.roles()).collect::<Vec<_>>() == shape
        }),
        "tree shape after the link came back: {:?}, before {:?}",
        refs.iter().map(|s| s.roles()).collect::<Vec<_>>(),
        shape
    );
    for b in &hosts[1..] {
        hosts[0].ping_ok(&b.ip, 2);
    }
    // the spanning tree metrics
    let m = tapswitch::client::request(&refs[2].ctl, "GET", "/metrics", None, None)
        .expect("metrics")
        .1;
    assert!(m.contains("tapswitch_stp_port_role{port="), "{m}");
    assert!(common::sample(&m, "tapswitch_stp_topology_changes_total", &[]).unwrap_or(0.0) >= 1.0);
    let text = common::tapswitch_cmd(&["stp", "--control", &refs[0].ctl]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("(this bridge)"), "{text}");
}

/// Linux's bridge (802.1D, `stp_state 1`) and tapswitch (RSTP) joined by two parallel links:
/// tapswitch speaks 802.1D on those ports, one link blocks, hosts on both sides reach each
/// other, and with the better priority tapswitch is the root Linux reports.
#[test]
fn linux_stp_bridge_with_two_parallel_links() {
    if !common::root_or_skip() {
        return;
    }
    let sw_ns = Netns::new();
    let br_ns = Netns::new();
    let (a1, b1, a2, b2) = (name("p"), name("q"), name("r"), name("s"));
    veth(&sw_ns, &a1, &br_ns, &b1);
    veth(&sw_ns, &a2, &br_ns, &b2);
    // the Linux bridge with STP on, short timers (forward delay 4 s, hello 1 s, max age 6 s)
    br_ns.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "stp_state",
        "1",
        "forward_delay",
        "400",
        "hello_time",
        "100",
        "max_age",
        "600",
        "priority",
        "32768",
    ]);
    for b in [&b1, &b2] {
        br_ns.ip(&["link", "set", b, "master", "br0"]);
        // pin costs: Linux uses its short costs (2 for 10G) and tapswitch 802.1D-2004's
        br_ns.ip(&["link", "set", b, "type", "bridge_slave", "cost", "20000"]);
    }
    let hb = name("t");
    br_ns.ip(&["link", "add", &hb, "type", "veth", "peer", "name", "hb0"]);
    br_ns.ip(&["link", "set", &hb, "master", "br0", "up"]);
    br_ns.ip(&["link", "set", "br0", "up"]);
    let host_b_ns = Netns::new();
    br_ns.ip(&["link", "set", "hb0", "netns", &host_b_ns.name]);
    let host_b = Host::attach_here(host_b_ns, "hb0", "198.18.62.2/24", None);
    let tap = name("u");
    let t0 = Instant::now();
    let sw = NsSwitch::start(
        &sw_ns,
        &[
            "--stp",
            "rstp",
            "--stp-priority",
            "4096",
            "--stp-forward-delay",
            "4",
            "--stp-hello-time",
            "1",
            "--stp-max-age",
            "6",
            "--name",
            "vslinux",
            "--port",
            &format!("{tap},edge"),
            "--port",
            &format!("packet:{a1},stp-cost=20000"),
            "--port",
            &format!("packet:{a2},stp-cost=20000"),
        ],
    );
    let host_a_ns = Netns::new();
    sw_ns.ip(&["link", "set", &tap, "netns", &host_a_ns.name]);
    let host_a = Host::attach_here(host_a_ns, &tap, "198.18.62.1/24", None);
    // converged when Linux has one forwarding and one blocking port and hosts talk
    let linux_states = || -> Vec<String> {
        let out = run("bridge", &["-n", &br_ns.name, "-j", "link", "show"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["ifname"] == b1.as_str() || p["ifname"] == b2.as_str())
            .map(|p| p["state"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(40), Duration::from_millis(200), || {
            let mut s = linux_states();
            s.sort();
            s == ["blocking", "forwarding"]
                || (s.iter().all(|x| x == "forwarding") && {
                    // or tapswitch blocks one of its two
                    sw.roles()
                        .iter()
                        .any(|(_, r, _)| r == "alternate" || r == "backup")
                })
        }),
        "no convergence: linux {:?}, tapswitch {:?}",
        linux_states(),
        sw.roles()
    );
    let took = t0.elapsed();
    let t = reach_within(&host_a, &host_b.ip, Duration::from_secs(30))
        .expect("hosts reach each other across the two links");
    eprintln!(
        "tapswitch + Linux STP: tree in {took:?}, hosts talking {:?} later",
        t
    );
    // tapswitch speaks 802.1D there, and is the root Linux sees
    let st = sw.get("/api/v1/stp");
    assert_eq!(st["bridge"]["is_root"], true, "{st}");
    for p in st["ports"].as_array().into_iter().flatten() {
        if p["name"] == a1.as_str() || p["name"] == a2.as_str() {
            assert_eq!(p["protocol"], "stp", "migrated to 802.1D: {p}");
        }
    }
    let root = br_ns.ok(&["cat", "/sys/class/net/br0/bridge/root_id"]);
    assert!(
        root.trim().starts_with("1000.02"),
        "Linux's root id: {root}"
    );
    // exactly one of the two links carries traffic: no storm
    let before = sw.rx_total();
    host_a.send(&frame_hex(BCAST, &host_a.mac, 0x88b5, b"once"), 200);
    std::thread::sleep(Duration::from_millis(500));
    let after = sw.rx_total();
    assert!(
        after - before < 200 + 100,
        "{} frames read for 200 broadcasts",
        after - before
    );
    host_a.ping_ok(&host_b.ip, 3);
}

#[test]
fn bpdu_guard_root_guard_and_storm_control() {
    if !common::root_or_skip() {
        return;
    }
    // BPDU guard: a host port that hears a BPDU is disabled, then re-enabled by the CLI.
    let t = common::Topo::new(2, &["--stp", "rstp"]);
    let (h0, h1) = (t.h(0), t.h(1));
    let port = h0.ifname.clone();
    let (st, body) = t.sw.req(
        "PATCH",
        &format!("/api/v1/ports/{port}"),
        Some(r#"{"bpdu_guard": true, "edge": true}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = t.sw.req(
        "PATCH",
        &format!("/api/v1/ports/{}", h1.ifname),
        Some(r#"{"edge": true}"#),
    );
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || { h0.ping(&h1.ip, 1).status.success() }
    ));
    // a configuration BPDU from the host (802.3 length 38, LLC 42 42 03, 35-byte BPDU)
    let bpdu = format!(
        "0180c2000000{}0026424203{}{}{}{}{}{}{}{}{}",
        h0.mac.replace(':', ""),
        "0000000000",       // protocol, version, type, flags
        "8000020000000001", // root id
        "00000000",         // root path cost
        "8000020000000001", // bridge id
        "8001",             // port id
        "0000",             // message age
        "1400",             // max age 20 s
        "0200",             // hello 2 s
        "0f00"              // forward delay 15 s
    );
    h0.send(&bpdu, 1);
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            t.sw.port(&port)["state"] == "bpdu_guard"
        }),
        "{}",
        t.sw.port(&port)
    );
    assert!(
        !h0.ping(&h1.ip, 2).status.success(),
        "a guarded port passes nothing"
    );
    assert!(t.sw.log.text().contains("BPDU guard"), "logged");
    let out = common::tapswitch_cmd(&[
        "port",
        "--control",
        &t.sw.ctl,
        "set",
        &port,
        "enabled",
        "on",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            h0.ping(&h1.ip, 1).status.success()
        }),
        "re-enabled: {}",
        t.sw.port(&port)
    );
    drop(t);

    // Root guard: switch A (priority 32768) has root guard on its port to switch B (4096,
    // superior): B's BPDUs do not make it root; the port is root-inconsistent and discarding.
    let (an, bn) = (Netns::new(), Netns::new());
    let (la, lb) = (name("g"), name("k"));
    veth(&an, &la, &bn, &lb);
    let a = NsSwitch::start(
        &an,
        &[
            "--stp",
            "rstp",
            "--name",
            "rga",
            "--stp-mac",
            "02:00:5e:00:54:01",
            "--port",
            &format!("packet:{la},root-guard"),
        ],
    );
    let _b = NsSwitch::start(
        &bn,
        &[
            "--stp",
            "rstp",
            "--name",
            "rgb",
            "--stp-priority",
            "4096",
            "--stp-mac",
            "02:00:5e:00:54:02",
            "--port",
            &format!("packet:{lb}"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            let v = a.get("/api/v1/stp");
            v["ports"][0]["root_inconsistent"] == true
        }),
        "{}",
        a.get("/api/v1/stp")
    );
    let v = a.get("/api/v1/stp");
    assert_eq!(
        v["bridge"]["is_root"], true,
        "root guard keeps A its own root: {v}"
    );
    assert_eq!(v["ports"][0]["state"], "discarding", "{v}");
    drop(a);

    // Storm control: broadcasts limited to the rate (±) while unicast flows.
    let t = common::Topo::new(2, &[]);
    let (h0, h1) = (t.h(0), t.h(1));
    let (st, body) = t.sw.req(
        "PATCH",
        &format!("/api/v1/ports/{}", h0.ifname),
        Some(r#"{"storm_broadcast": 100}"#),
    );
    assert_eq!(st, 200, "{body}");
    h0.ping_ok(&h1.ip, 1);
    let sniff = h1.sniff(6, &["--src", &h0.mac, "--ethertype", "0x88b5"]);
    // broadcasts at 1000 a second for 3 s, ten times the limit
    let sent = 3000;
    let elapsed = h0.send_paced(&frame_hex(BCAST, &h0.mac, 0x88b5, b"flood"), sent, 1000);
    let got = sniff.count();
    let expect = 100.0 * elapsed + 10.0; // the rate over the sending time, plus the burst
    eprintln!("storm control: sent {sent} broadcasts in {elapsed:.2} s, {got} passed (limit ~{expect:.0})");
    assert!(
        sent as f64 > 3.0 * expect,
        "the flood was not heavy enough to test the limit"
    );
    assert!(
        (got as f64) <= expect * 1.15 + 5.0 && (got as f64) >= expect * 0.5,
        "{got} vs {expect}"
    );
    assert!(t.sw.dropped(&h0.ifname, "rx", "storm") > 0);
    h0.ping_ok(&h1.ip, 3);
}
