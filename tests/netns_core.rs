//! Root: Linux-bridge parity on real TAPs. Each test runs its own switch whose TAP ports are
//! moved into network namespaces (one host per namespace, 198.18.S.0/24), so tests can run in
//! parallel. Without root they skip (with CI=true they fail).

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use common::{frame_hex, ifname, link_exists, tapswitch_fails, wait_until, Netns, Topo};

const BCAST: &str = "ff:ff:ff:ff:ff:ff";
/// IEEE 802 "local experimental" EtherType, for test frames nobody else sends.
const ETH_EXP: u16 = 0x88b5;

#[test]
fn three_hosts_ping_each_other() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(3, &[]);
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                t.h(i).ping_ok(&t.h(j).ip, 2);
            }
        }
    }
    // Every host MAC was learned on its own port.
    for h in &t.hosts {
        assert_eq!(
            t.sw.fdb_port(&h.mac).as_deref(),
            Some(h.ifname.as_str()),
            "fdb: {:?}",
            t.sw.fdb()
        );
    }
}

#[test]
fn tcp_transfer_of_8_mib_arrives_intact() {
    if !common::root_or_skip() {
        return;
    }
    const SIZE: usize = 8 << 20;
    let t = Topo::new(2, &[]);
    let (a, b) = (t.h(0), t.h(1));
    a.ping_ok(&b.ip, 1);
    let mut server = common::ChildGuard(b.ns.spawn(&["python3", "-c", common::TCP_SERVER, &b.ip]));
    let (tx, rx) = mpsc::channel();
    let out = server.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).as_deref(),
        Ok("ready"),
        "TCP server did not start"
    );
    let started = std::time::Instant::now();
    let client = a.ns.ok(&[
        "python3",
        "-c",
        common::TCP_CLIENT,
        &b.ip,
        &SIZE.to_string(),
    ]);
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server result");
    eprintln!(
        "8 MiB over the switch in {:?}: client {} / server {}",
        started.elapsed(),
        client.trim(),
        got
    );
    assert_eq!(client.trim(), got.trim(), "sent and received bytes differ");
    assert!(got.starts_with(&format!("{SIZE} ")), "{got}");
    // Traffic went through the switch's ports.
    assert!(t.sw.counter(&a.ifname, "rx_bytes") >= SIZE as u64);
    assert!(t.sw.counter(&b.ifname, "tx_bytes") >= SIZE as u64);
}

#[test]
fn known_unicast_is_not_seen_by_a_third_host() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(3, &[]);
    let (h1, h2, h3) = (t.h(0), t.h(1), t.h(2));
    h1.ping_ok(&h2.ip, 2);
    assert_eq!(t.sw.fdb_port(&h1.mac).as_deref(), Some(h1.ifname.as_str()));
    assert_eq!(t.sw.fdb_port(&h2.mac).as_deref(), Some(h2.ifname.as_str()));
    let to_h2 = h3.sniff(3, &["--dst", &h2.mac]);
    // Control: the third host's sniffer does see flooded frames.
    let bcast = h3.sniff(3, &["--dst", BCAST, "--ethertype", "0x88b5"]);
    h1.ping_ok(&h2.ip, 5);
    h1.send(&frame_hex(BCAST, &h1.mac, ETH_EXP, b"control"), 2);
    assert_eq!(
        bcast.count(),
        2,
        "control: broadcast must reach the third host"
    );
    assert_eq!(to_h2.count(), 0, "known unicast to host 2 leaked to host 3");
}

#[test]
fn multicast_source_is_dropped_and_counted() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &[]);
    let (h1, h2) = (t.h(0), t.h(1));
    let src = "01:00:5e:00:00:42";
    let labels = [("port", h1.ifname.as_str()), ("reason", "invalid_source")];
    let before = t.sw.metric("tapswitch_port_rx_dropped_total", &labels);
    let sniff = h2.sniff(2, &["--src", src]);
    h1.send(&frame_hex(BCAST, src, ETH_EXP, b"bad source"), 3);
    assert_eq!(
        sniff.count(),
        0,
        "a frame with a multicast source was forwarded"
    );
    let after = t.sw.metric("tapswitch_port_rx_dropped_total", &labels);
    assert_eq!(after - before, 3.0, "invalid_source drops");
    assert_eq!(
        t.sw.dropped(&h1.ifname, "rx", "invalid_source"),
        after as u64
    );
    assert_eq!(t.sw.fdb_port(src), None, "a multicast source was learned");
}

/// An LLDP frame from `h` (dst 01:80:c2:00:00:0e, EtherType 0x88cc, a minimal TLV set).
fn lldp_frame(src: &str) -> String {
    let mut tlvs = Vec::new();
    // Chassis ID (MAC), Port ID (local "p1"), TTL 120, End.
    tlvs.extend_from_slice(&[0x02, 0x07, 0x04]);
    tlvs.extend(src.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()));
    tlvs.extend_from_slice(&[0x04, 0x03, 0x07, b'p', b'1']);
    tlvs.extend_from_slice(&[0x06, 0x02, 0x00, 0x78]);
    tlvs.extend_from_slice(&[0x00, 0x00]);
    frame_hex("01:80:c2:00:00:0e", src, 0x88cc, &tlvs)
}

#[test]
fn lldp_is_forwarded_only_with_group_fwd_mask() {
    if !common::root_or_skip() {
        return;
    }
    for (flags, forwarded) in [(&[][..], false), (&["--group-fwd-mask", "lldp"][..], true)] {
        let t = Topo::new(2, flags);
        let (h1, h2) = (t.h(0), t.h(1));
        let labels = [("port", h1.ifname.as_str()), ("reason", "link_local")];
        let before = t.sw.metric("tapswitch_port_rx_dropped_total", &labels);
        let sniff = h2.sniff(2, &["--ethertype", "0x88cc"]);
        h1.send(&lldp_frame(&h1.mac), 3);
        let seen = sniff.count();
        let dropped = t.sw.metric("tapswitch_port_rx_dropped_total", &labels) - before;
        if forwarded {
            assert_eq!(seen, 3, "--group-fwd-mask lldp: LLDP must pass");
            assert_eq!(dropped, 0.0, "link_local drops with lldp enabled");
        } else {
            assert_eq!(seen, 0, "LLDP forwarded by default");
            assert_eq!(dropped, 3.0, "link_local drops by default");
        }
    }
}

#[test]
fn mac_move_is_immediate_and_counted() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &[]);
    let (a, b) = (t.h(0), t.h(1));
    a.ping_ok(&b.ip, 1);
    assert_eq!(t.sw.fdb_port(&a.mac).as_deref(), Some(a.ifname.as_str()));
    assert_eq!(t.sw.metric("tapswitch_fdb_moved_total", &[]), 0.0);
    // A's MAC now shows up behind port 2.
    b.send(&frame_hex(BCAST, &a.mac, ETH_EXP, b"moved"), 1);
    let moved = wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
        t.sw.fdb_port(&a.mac).as_deref() == Some(b.ifname.as_str())
    });
    assert!(
        moved,
        "A's MAC did not move to {}: {:?}",
        b.ifname,
        t.sw.fdb()
    );
    assert_eq!(t.sw.metric("tapswitch_fdb_moved_total", &[]), 1.0);
}

#[test]
fn sigterm_removes_created_taps_and_keeps_persistent_ones() {
    if !common::root_or_skip() {
        return;
    }
    let ns = Netns::new();
    let persistent = common::TapGuard::new(&ifname('p'));
    let (created, moved) = (ifname('c'), ifname('m'));
    let mut sw = common::Switch::start(&[
        "--port",
        &created,
        "--port",
        &moved,
        "--port",
        &persistent.name,
    ]);
    assert!(link_exists(&created) && link_exists(&persistent.name));
    // A created TAP that lives in another namespace goes too.
    common::run_ok("ip", &["link", "set", "dev", &moved, "netns", &ns.name]);
    let ports = sw.get("/api/v1/ports");
    let created_flag = |n: &str| {
        ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .map(|p| p["created"].clone())
    };
    assert_eq!(created_flag(&created), Some(true.into()));
    assert_eq!(created_flag(&persistent.name), Some(false.into()));
    let status = sw.stop().expect("tapswitch did not stop on SIGTERM");
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        sw.log.text()
    );
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            !link_exists(&created)
                && !common::run("ip", &["-n", &ns.name, "link", "show", "dev", &moved])
                    .status
                    .success()
        }),
        "created TAPs are still there after SIGTERM"
    );
    assert!(
        link_exists(&persistent.name),
        "the persistent TAP {} was removed",
        persistent.name
    );
}

#[test]
fn bad_ports_fail_cleanly() {
    if !common::root_or_skip() {
        return;
    }
    let api = common::free_addr();
    let (st, err) = tapswitch_fails(&[
        "run",
        "--control",
        "none",
        "--listen",
        &api,
        "--port",
        "thisnameiswaytoolong",
    ]);
    assert!(!st.success(), "{err}");
    assert!(err.contains("at most 15"), "{err}");
    assert!(!link_exists("thisnameiswaytoolong"));

    let x = ifname('x');
    let _owner = common::Switch::start(&["--port", &x]);
    for order in [[true, false], [false, true]] {
        let y = ifname('y');
        let mut args = vec![
            "run".to_string(),
            "--control".into(),
            "none".into(),
            "--listen".into(),
            common::free_addr(),
        ];
        for x_first in order {
            args.push("--port".into());
            args.push(if x_first { x.clone() } else { y.clone() });
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (st, err) = tapswitch_fails(&args);
        assert!(!st.success(), "{err}");
        assert!(err.contains("held by another process"), "{args:?}: {err}");
        assert!(!link_exists(&y), "{args:?} left interface {y} behind");
    }
    assert!(link_exists(&x), "the first switch's TAP went away");
}

/// A host's TAP brought down: the port follows its link (down, entries flushed by the control
/// thread), is left out of floods as the Linux bridge leaves out a disabled port (no write is
/// tried, so no `port_down` drop is counted), and comes back with its link.
#[test]
fn a_downed_port_is_left_out_and_recovers() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(3, &[]);
    let (h1, h2, h3) = (t.h(0), t.h(1), t.h(2));
    h1.ping_ok(&h3.ip, 1);
    h1.ping_ok(&h2.ip, 1);
    let down_before = t.sw.dropped(&h3.ifname, "tx", "port_down");
    h3.ns.ip(&["link", "set", "dev", &h3.ifname, "down"]);
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
            t.sw.port(&h3.ifname)["up"] == false
        }),
        "{}",
        t.sw.port(&h3.ifname)
    );
    // Flooded frames reach host 2 (the positive control) and are not written to host 3's TAP.
    let h2_tx = t.sw.counter(&h2.ifname, "tx_frames");
    h1.send(&frame_hex(BCAST, &h1.mac, ETH_EXP, b"flood"), 5);
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
            t.sw.counter(&h2.ifname, "tx_frames") >= h2_tx + 5
        }),
        "floods did not reach {}",
        h2.ifname
    );
    assert_eq!(t.sw.dropped(&h3.ifname, "tx", "port_down"), down_before);
    assert!(t.sw.counter(&h3.ifname, "link_changes") >= 1);
    assert_eq!(
        t.sw.metric("tapswitch_port_up", &[("port", h3.ifname.as_str())]),
        0.0
    );
    // Its learned entry was flushed, by the control thread, not by the frame path that saw
    // the EIO: the log line of the change names the thread that did the flush.
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            t.sw.fdb_port(&h3.mac).is_none()
        }),
        "{:?}",
        t.sw.fdb()
    );
    let log = t.sw.log.text();
    let line = log
        .lines()
        .find(|l| l.contains("port state changed") && l.contains(&h3.ifname) && l.contains("Down"))
        .unwrap_or_else(|| panic!("no state change logged:\n{log}"));
    let flushed: u64 = line
        .split("flushed=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(flushed >= 1, "{line}");
    assert!(line.contains("thread=\"tapswitch-ctl\""), "{line}");
    // The others are not affected.
    h1.ping_ok(&h2.ip, 3);
    h2.ping_ok(&h1.ip, 3);
    // Back up: the port follows (within the link poll), and it works again.
    h3.ns.ip(&["link", "set", "dev", &h3.ifname, "up"]);
    assert!(wait_until(
        Duration::from_secs(3),
        Duration::from_millis(10),
        || t.sw.port(&h3.ifname)["up"] == true
    ));
    h1.ping_ok(&h3.ip, 3);
    h3.ping_ok(&h2.ip, 2);
    assert_eq!(t.sw.port(&h3.ifname)["up"], true);
    assert_eq!(
        t.sw.metric("tapswitch_port_up", &[("port", h3.ifname.as_str())]),
        1.0
    );
}

/// Multiqueue TAPs (`queues=2`) read by two dataplane threads: the kernel makes the TAPs
/// multi_queue, data crosses intact, and several TCP streams (spread over the queues by the
/// kernel's flow hash) all arrive.
#[test]
fn multiqueue_taps_over_two_threads() {
    if !common::root_or_skip() {
        return;
    }
    let (a, b) = (ifname('m'), ifname('n'));
    let (pa, pb) = (format!("{a},queues=2"), format!("{b},queues=2"));
    let sw = common::Switch::start(&["--dataplane-threads", "2", "--port", &pa, "--port", &pb]);
    let details = common::run_ok("ip", &["-d", "link", "show", "dev", &a]);
    assert!(details.contains("multi_queue"), "{details}");
    let ha = common::Host::attach(Netns::new(), &a, "198.18.63.1/24", None);
    let hb = common::Host::attach(Netns::new(), &b, "198.18.63.2/24", None);
    ha.ping_ok(&hb.ip, 2);
    let (sent, got) = common::tcp_transfer(&ha, &hb, 4 << 20);
    assert_eq!(sent, got, "data through multiqueue TAPs");
    let _srv = common::ChildGuard(hb.ns.spawn(&["iperf3", "-s", "-B", &hb.ip]));
    let mut done = None;
    for _ in 0..50 {
        let o = ha
            .ns
            .exec(&["iperf3", "-c", &hb.ip, "-P", "4", "-t", "2", "-J"]);
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
                done = Some(bps);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bps = done.expect("iperf3 with 4 streams ran");
    eprintln!("4 streams over multiqueue TAPs: {:.2} Gbit/s", bps / 1e9);
    assert!(bps > 1e6);
    drop(sw);
}
