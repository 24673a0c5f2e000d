//! Root: the combined lab of issue 24, with every feature on at once, as a new user builds it.
//!
//! Switch A runs `--vlan-filtering --stp rstp` with access hosts in VLANs 10 and 20, two parallel
//! trunks (`packet:` ports on veths) to switch B (same options, one host per VLAN; the spanning
//! tree blocks one trunk), a `vxlan` port in VLAN 10 to a Linux VTEP site (a Linux bridge and
//! vxlan device; its host on a veth with default offloads), a QEMU guest on a vhost-user port in
//! VLAN 20 (with TAPSWITCH_QEMU=1, which CI sets), a capture of every port and a mirror of every
//! port to a monitor host. The hosts are attached after the switches start, in a shuffled order;
//! then a host's link and the forwarding trunk flap.
//!
//! Asserted: every pair in a VLAN talks (ping; TCP with a content check across the trunk, the
//! tunnel and to the guest), no pair across VLANs does (after a positive control), the spanning
//! tree fails over to the other trunk, each port's counters add up, the capture holds the
//! frames that crossed (tshark reads it, per interface) and the monitor got mirrored copies.

mod common;

use std::time::{Duration, Instant};

use common::guest;
use common::*;

/// Deletes links of the host namespace on drop.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            if link_exists(l) {
                let _ = run("ip", &["link", "del", "dev", l]);
            }
        }
    }
}

/// `a` reaches `ip` within `limit` (one ping at a time, 1 s wait each).
fn reaches(a: &Netns, ip: &str, limit: Duration) -> bool {
    wait_until(limit, Duration::from_millis(50), || {
        a.exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", ip])
            .status
            .success()
    })
}

/// `a` gets no answer from `ip` in three pings.
fn silent(a: &Netns, ip: &str) -> bool {
    !a.exec(&["ping", "-n", "-q", "-c", "3", "-i", "0.3", "-W", "1", ip])
        .status
        .success()
}

/// Every port of a switch: rx_frames = rx_forwarded + rx_flooded + rx_dropped.
fn counters_add_up(sw: &Switch, who: &str) {
    for p in sw
        .get("/api/v1/ports")
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let c = &p["counters"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        assert_eq!(
            n("rx_forwarded") + n("rx_flooded") + n("rx_dropped"),
            n("rx_frames"),
            "{who} port {}: {c}",
            p["name"]
        );
    }
}

/// A small xorshift, seeded from the process id: the attach order, printed so a failure can be
/// replayed.
fn shuffle<T>(v: &mut [T], mut x: u64) {
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[test]
fn every_feature_at_once_with_hosts_attached_later_and_links_flapping() {
    if !root_or_skip() {
        return;
    }
    let with_guest = guest::enabled(true);
    let s = (unique() % 200 + 20) as u8;
    let ip = |n: u8| format!("198.18.{s}.{n}");
    let dir = TempDir::new("lab");
    // veths of the host namespace: two trunks, the underlay to the Linux site
    let (t1a, t1b, t2a, t2b) = (ifname('1'), ifname('2'), ifname('3'), ifname('4'));
    let (ua, ul) = (ifname('u'), ifname('v'));
    let _links = Links(vec![t1a.clone(), t2a.clone(), ua.clone()]);
    for (a, b) in [(&t1a, &t1b), (&t2a, &t2b)] {
        run_ok("ip", &["link", "add", a, "type", "veth", "peer", "name", b]);
    }
    // the Linux VTEP site: a bridge, a vxlan device and a host on a veth with default offloads
    let site = Netns::new();
    run_ok(
        "ip",
        &["link", "add", &ua, "type", "veth", "peer", "name", &ul],
    );
    run_ok("ip", &["link", "set", "dev", &ul, "netns", &site.name]);
    let (under_a, under_l) = (format!("198.19.{s}.1"), format!("198.19.{s}.2"));
    run_ok("ip", &["addr", "add", &format!("{under_a}/24"), "dev", &ua]);
    run_ok("ip", &["link", "set", "dev", &ua, "up"]);
    site.ip(&["addr", "add", &format!("{under_l}/24"), "dev", &ul]);
    site.ip(&["link", "set", "dev", &ul, "up"]);
    site.ip(&["link", "add", "br0", "type", "bridge"]);
    site.ip(&[
        "link", "add", "vx0", "type", "vxlan", "id", "100", "local", &under_l, "dstport", "4789",
    ]);
    site.ok(&[
        "bridge",
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        &under_a,
    ]);
    site.ip(&["link", "set", "dev", "vx0", "master", "br0", "up"]);
    site.ip(&["link", "add", "hl", "type", "veth", "peer", "name", "hh"]);
    site.ip(&["link", "set", "dev", "hl", "master", "br0", "up"]);
    site.ip(&["link", "set", "dev", "br0", "up"]);
    let ns_l = Netns::new();
    site.ip(&["link", "set", "dev", "hh", "netns", &ns_l.name]);

    // the switches; every host port is declared now and attached later
    let (a1, a2, a3, a4, mon, b1, b2) = (
        ifname('a'),
        ifname('b'),
        ifname('c'),
        ifname('d'),
        ifname('m'),
        ifname('e'),
        ifname('f'),
    );
    let vh_sock = dir.path.join("vh.sock");
    // two switches on one machine need names of their own (the bridge address derives from it)
    let (name_a, name_b) = (format!("labA{}", unique()), format!("labB{}", unique()));
    let mut a_args: Vec<String> = [
        "--name",
        &name_a,
        "--vlan-filtering",
        "--stp",
        "rstp",
        "--stp-priority",
        "4096",
    ]
    .map(String::from)
    .into();
    for p in [
        format!("{a1},access=10,edge"),
        format!("{a2},access=10,edge"),
        format!("{a3},access=20,edge"),
        format!("{a4},access=20,edge"),
        format!("{mon},edge"),
        format!("tr1=packet:{t1a},trunk=10;20"),
        format!("tr2=packet:{t2a},trunk=10;20"),
        // the Linux site runs no spanning tree: the operator marks the tunnel port an edge
        format!("vx=vxlan:100,local={under_a},remote={under_l},access=10,edge"),
    ] {
        a_args.extend(["--port".to_string(), p]);
    }
    if with_guest {
        a_args.extend([
            "--port".to_string(),
            format!("vh=vhost:{},access=20", vh_sock.display()),
        ]);
    }
    let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let sw_a = Switch::start(&a_args);
    let b_specs = [
        format!("{b1},access=10,edge"),
        format!("{b2},access=20,edge"),
        format!("tr1=packet:{t1b},trunk=10;20"),
        format!("tr2=packet:{t2b},trunk=10;20"),
    ];
    let mut b_args = vec!["--name", &name_b, "--vlan-filtering", "--stp", "rstp"];
    for p in &b_specs {
        b_args.extend(["--port", p]);
    }
    let sw_b = Switch::start(&b_args);

    // a capture of every port of A and a mirror of every port to the monitor
    let cap_file = dir.path.join("lab.pcapng");
    let mut capture = ChildGuard(
        std::process::Command::new(TAPSWITCH)
            .args(["capture", "--control", &sw_a.ctl, "-w"])
            .arg(&cap_file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tapswitch capture"),
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            sw_a.metric("tapswitch_captures_active", &[]) >= 1.0
        }),
        "the capture did not start"
    );
    let body = format!(r#"{{"name": "all", "select_all": true, "output": "{mon}"}}"#);
    let (st, text) = sw_a.req("POST", "/api/v1/mirrors", Some(&body));
    assert_eq!(st, 201, "{text}");

    // attach the hosts after start, in a shuffled order (the guest boots among them)
    let hosts_spec = [
        (a1.clone(), ip(11)),
        (a2.clone(), ip(12)),
        (b1.clone(), ip(13)),
        (a3.clone(), ip(21)),
        (a4.clone(), ip(22)),
        (b2.clone(), ip(23)),
        (mon.clone(), ip(99)),
        ("hh".to_string(), ip(14)),
        ("guest".to_string(), ip(24)),
    ];
    let mut order: Vec<usize> = (0..hosts_spec.len()).collect();
    let seed = std::process::id() as u64 | 1;
    shuffle(&mut order, seed);
    eprintln!(
        "attach order (seed {seed}): {:?}",
        order.iter().map(|&i| &hosts_spec[i].0).collect::<Vec<_>>()
    );
    let mut hosts: Vec<Option<Host>> = (0..hosts_spec.len()).map(|_| None).collect();
    let mut ns_l = Some(ns_l);
    let mut qemu = None;
    let guest_log = dir.path.join("guest.log");
    for &i in &order {
        let (name, addr) = &hosts_spec[i];
        let cidr = format!("{addr}/24");
        match name.as_str() {
            "hh" => {
                let ns = ns_l.take().expect("the Linux site's host");
                hosts[i] = Some(Host::attach_here(ns, "hh", &cidr, None));
            }
            "guest" => {
                if with_guest {
                    let (net, device) = guest::vhost_net(&vh_sock, "52:54:00:7a:0c:18");
                    let append = format!(
                        "console=ttyS0 quiet panic=-1 ts_ip={addr} ts_peer={} ts_role=server",
                        ip(21)
                    );
                    qemu = Some(ChildGuard(guest::boot(
                        &guest::image(),
                        &append,
                        &net,
                        &device,
                        &guest_log,
                    )));
                }
            }
            _ => hosts[i] = Some(Host::attach(Netns::new(), name, &cidr, None)),
        }
    }
    let h = |n: &str| {
        hosts_spec
            .iter()
            .position(|(x, _)| x == n)
            .and_then(|i| hosts[i].as_ref())
            .unwrap_or_else(|| panic!("host {n}"))
    };
    let (h1, h2, h3, h4) = (h(&a1), h(&a2), h(&a3), h(&a4));
    let (hb1, hb2, hl, hmon) = (h(&b1), h(&b2), h("hh"), h(&mon));

    // the spanning tree settles: A is root (priority 4096), one of B's trunk ports is discarding
    let stp_state = |sw: &Switch, port: &str| -> String {
        sw.port(port)["stp"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            let b = [stp_state(&sw_b, "tr1"), stp_state(&sw_b, "tr2")];
            b.contains(&"forwarding".to_string()) && b.contains(&"discarding".to_string())
        }),
        "the tree did not settle: B tr1 {} tr2 {}\n{}",
        stp_state(&sw_b, "tr1"),
        stp_state(&sw_b, "tr2"),
        sw_b.log.text()
    );

    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            stp_state(&sw_a, "vx") == "forwarding"
        }),
        "the tunnel port does not forward: {}",
        sw_a.port("vx")
    );
    // VLAN 10: A's hosts, B's host (over the trunk), the Linux site's host (over the tunnel)
    let vlan10 = [h1, h2, hb1, hl];
    let vlan20 = [h3, h4, hb2];
    for group in [&vlan10[..], &vlan20[..]] {
        for x in group {
            for y in group {
                if x.ip != y.ip {
                    assert!(
                        reaches(&x.ns, &y.ip, Duration::from_secs(20)),
                        "{} cannot reach {}\nvx: {}\nsite: {}\nA:\n{}\nB:\n{}",
                        x.ip,
                        y.ip,
                        sw_a.port("vx"),
                        site.ip(&["-s", "link"]),
                        sw_a.log.text(),
                        sw_b.log.text()
                    );
                }
            }
        }
    }
    // TCP with a content check: across the trunk, from and to the Linux VTEP's host
    for (from, to) in [(h1, hb1), (hl, h2), (h2, hl), (h4, hb2)] {
        let (sent, got) = tcp_transfer(from, to, 2_000_000);
        assert_eq!(sent, got, "TCP {} -> {}", from.ip, to.ip);
    }
    // the guest in VLAN 20: answers pings, receives a transfer intact
    if with_guest {
        assert!(
            guest::wait_marker(&guest_log, "TS_BOOTED", 1, 120),
            "the guest did not boot"
        );
        assert!(reaches(&h3.ns, &ip(24), Duration::from_secs(60)));
        assert!(reaches(&hb2.ns, &ip(24), Duration::from_secs(20)));
        let sent = h3.ns.ok(&["python3", "-c", TCP_CLIENT, &ip(24), "2000000"]);
        assert!(guest::wait_marker(&guest_log, "TS_RX_SHA", 1, 60));
        let got = guest::marker(&guest_log, "TS_RX_SHA").unwrap_or_default();
        assert_eq!(
            sent.split_whitespace().nth(1),
            Some(got.as_str()),
            "TCP to the guest"
        );
        assert!(
            silent(&h1.ns, &ip(24)),
            "VLAN 10 reaches the guest in VLAN 20"
        );
    }
    // no pair across VLANs (the positive control just above: each of them talks in its own)
    for (x, y) in [(h1, h3), (hb1, hb2), (hl, h4), (h4, hb1)] {
        assert!(
            silent(&x.ns, &y.ip),
            "{} reaches {} across VLANs",
            x.ip,
            y.ip
        );
    }

    // a host's link flaps: its port follows, and it is reached again without speaking first
    h2.ns.ip(&["link", "set", "dev", &a2, "down"]);
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || { sw_a.port(&a2)["state"] == "down" }
    ));
    assert!(silent(&h1.ns, &h2.ip));
    h2.ns.ip(&["link", "set", "dev", &a2, "up"]);
    assert!(reaches(&h1.ns, &h2.ip, Duration::from_secs(10)));
    // the forwarding trunk goes down: the tree moves to the other one
    let (fwd_b, fwd_a) = if stp_state(&sw_b, "tr1") == "forwarding" {
        ("tr1", &t1a)
    } else {
        ("tr2", &t2a)
    };
    run_ok("ip", &["link", "set", "dev", fwd_a, "down"]);
    let t0 = Instant::now();
    assert!(
        reaches(&h1.ns, &hb1.ip, Duration::from_secs(20)),
        "no failover to the other trunk\n{}",
        sw_b.log.text()
    );
    eprintln!(
        "trunk {fwd_b} down: A->B reachable again after {:?}",
        t0.elapsed()
    );
    assert_eq!(sw_b.port(fwd_b)["state"], "down");
    run_ok("ip", &["link", "set", "dev", fwd_a, "up"]);
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || { sw_b.port(fwd_b)["state"] == "up" }
    ));
    let (sent, got) = tcp_transfer(h1, hb1, 1_000_000);
    assert_eq!(sent, got, "TCP across the trunk after the flap");

    // counters add up on both switches
    counters_add_up(&sw_a, "A");
    counters_add_up(&sw_b, "B");
    // the monitor got mirrored copies of what crossed
    assert!(sw_a.counter(&mon, "tx_frames") > 0, "{}", sw_a.port(&mon));
    assert!(sw_a.metric("tapswitch_mirror_frames_total", &[("mirror", "all")]) > 0.0);
    let _ = hmon;
    // the capture: stop it, then read it with tshark
    sigterm(capture.0.id());
    assert!(
        wait_timeout(&mut capture.0, Duration::from_secs(10)).is_some(),
        "the capture did not end"
    );
    let fields = run_ok(
        "tshark",
        &[
            "-r",
            &cap_file.display().to_string(),
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-Y",
            "icmp",
        ],
    );
    for (x, y, via) in [(h1, hb1, "tr"), (hl, h2, "vx"), (h1, h2, a2.as_str())] {
        assert!(
            fields.lines().any(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f.len() == 3 && f[0].starts_with(via) && f[1] == x.ip && f[2] == y.ip
            }),
            "the capture has no ICMP {} -> {} on {via}*:\n{}",
            x.ip,
            y.ip,
            fields.lines().take(40).collect::<Vec<_>>().join("\n")
        );
    }
    drop(qemu);
}
