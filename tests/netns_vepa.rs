//! Root: VEPA and reflective relay with real kernel peers (ANCHORS "VEPA and reflective relay").
//!
//! Two roles:
//! - the switch as the *adjacent bridge* of a macvlan host: one TAP port `P` carries several
//!   MACs (macvlan `vepa`/`private` interfaces on top of `P`), and the per-port `hairpin` flag
//!   decides whether siblings reach each other (E1-E4); a lone host behind a hairpin port sees
//!   its own DAD probe (E5);
//! - the switch as the *VEPA edge relay* (`--mode vepa|vepa-private`): its uplink TAP is a port of
//!   a Linux bridge whose `hairpin` decides whether downlinks reach each other (E6-E10).
//!
//! Plus link-local group forwarding (`group_fwd_mask`) between two ordinary hosts.
//! Every test has its own switch, namespaces and names; addresses come from 198.19.0.0/16
//! (inside 198.18.0.0/15). Without root the tests skip (with CI=true they fail).

mod common;

use std::mem::ManuallyDrop;
use std::time::Duration;

use common::{
    frame_hex, free_addr, ifname, link_exists, run_ok, tapswitch_fails, unique, wait_until, Host,
    Netns, Switch, Topo,
};

const BCAST: &str = "ff:ff:ff:ff:ff:ff";
/// An IPv4 multicast group MAC (224.0.0.251's), not a link-local group.
const MCAST: &str = "01:00:5e:00:00:fb";
/// IEEE 802 "local experimental" EtherType, for test frames nobody else sends.
const ETH_EXP: u16 = 0x88b5;
const ETH_EXP_S: &str = "0x88b5";
/// Raw frames per burst.
const N: u32 = 5;
/// How long a sniffer listens (s): long enough for python to start and send a burst.
const SNIFF_SECS: u32 = 2;

/// A subnet number for this test: 198.19.S.0/24.
fn subnet() -> u8 {
    (unique() % 250 + 1) as u8
}

/// Pings `count` times (0.2 s apart, 1 s reply wait) and returns how many were answered.
fn received(h: &Host, ip: &str, count: u32) -> u32 {
    let c = count.to_string();
    let out =
        h.ns.exec(&["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "1", ip]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|p| p.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("[{}] ping {ip}: no summary in {text:?}", h.ns.name))
}

/// Pings that must all go unanswered.
fn ping_fails(h: &Host, ip: &str) {
    let got = received(h, ip, 2);
    assert_eq!(
        got, 0,
        "[{}] {} pinged {ip} and got {got} replies; expected none",
        h.ns.name, h.ip
    );
}

/// `ip -n NS neigh flush all` in every namespace given, so ARP is retried.
fn flush_neigh(nss: &[&Netns]) {
    for ns in nss {
        ns.ip(&["neigh", "flush", "all"]);
    }
}

/// PATCHes one port's hairpin flag and checks the answer.
fn set_hairpin(sw: &Switch, port: &str, on: bool) {
    let (st, body) = sw.req(
        "PATCH",
        &format!("/api/v1/ports/{port}"),
        Some(&format!(r#"{{"hairpin": {on}}}"#)),
    );
    assert_eq!(st, 200, "PATCH {port} hairpin={on}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("PATCH answer is JSON");
    assert_eq!(v["flags"]["hairpin"].as_bool(), Some(on), "{body}");
    assert_eq!(sw.port(port)["flags"]["hairpin"].as_bool(), Some(on));
}

/// Waits (5 s at most) until a counter reaches `want`, then asserts it is exactly `want`.
fn counter_settles(what: &str, want: u64, mut read: impl FnMut() -> u64) {
    wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        read() >= want
    });
    // Anything late would show up now.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read(), want, "{what}");
}

/// `src` sends `N` frames (`ETH_EXP`) to `dst` while `watch` sniffs for them by source MAC;
/// returns how many `watch` received.
fn burst_seen_by(src: &Host, dst: &str, watch: &Host) -> u64 {
    let sn = watch.sniff(SNIFF_SECS, &["--src", &src.mac, "--ethertype", ETH_EXP_S]);
    src.send(&frame_hex(dst, &src.mac, ETH_EXP, b"tapswitch-vepa"), N);
    sn.count()
}

// -------------------------------------------------------------------------------------------
// The switch as the adjacent bridge of a macvlan host (per-port hairpin, E1-E4)
// -------------------------------------------------------------------------------------------

/// Port `P` lives in namespace `h` as the lower device of macvlans `mv1`, `mv2` (each in its own
/// namespace); port `T` is an ordinary third host. Fields drop in order: the switch first (its
/// TAPs and the macvlans on them go), then the namespaces.
struct MacvlanBed {
    sw: Switch,
    p: String,
    mv1: Host,
    mv2: Host,
    third: Host,
    h: Netns,
}

impl MacvlanBed {
    fn new(mode: &str) -> MacvlanBed {
        // Namespaces before the switch, so that a panic stops the switch first.
        let h = Netns::new();
        let (na, nb, nc) = (Netns::new(), Netns::new(), Netns::new());
        let p = ifname('p');
        let t = ifname('t');
        let sw = Switch::start(&["--port", &p, "--port", &t]);
        let s = subnet();
        let third = Host::attach(
            nc,
            &t,
            &format!("198.19.{s}.3/24"),
            Some(&format!("02:56:45:{s:02x}:00:03")),
        );
        run_ok("ip", &["link", "set", "dev", &p, "netns", &h.name]);
        h.ip(&["link", "set", "dev", &p, "up"]);
        let mut mvs = Vec::new();
        for (i, ns) in [(1u8, na), (2, nb)] {
            let name = format!("mv{i}");
            let mac = format!("02:56:45:{s:02x}:00:{i:02x}");
            h.ip(&[
                "link", "add", &name, "link", &p, "address", &mac, "type", "macvlan", "mode", mode,
            ]);
            h.ip(&["link", "set", "dev", &name, "netns", &ns.name]);
            let ip = format!("198.19.{s}.{i}");
            ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", &name]);
            ns.ip(&["link", "set", "dev", &name, "up"]);
            let shown = ns.ip(&["-d", "link", "show", "dev", &name]);
            assert!(
                shown.contains(&format!("macvlan mode {mode}")),
                "[{}] {name} is not a {mode} macvlan:\n{shown}",
                ns.name
            );
            mvs.push(Host {
                ifname: name,
                ip,
                mac,
                ns,
            });
        }
        let mv2 = mvs.pop().expect("mv2");
        let mv1 = mvs.pop().expect("mv1");
        MacvlanBed {
            sw,
            p,
            mv1,
            mv2,
            third,
            h,
        }
    }

    /// The third host reaches both macvlan hosts and they reach it.
    fn third_reachable(&self) {
        for mv in [&self.mv1, &self.mv2] {
            mv.ping_ok(&self.third.ip, 2);
            self.third.ping_ok(&mv.ip, 2);
        }
    }

    fn flush(&self) {
        flush_neigh(&[&self.mv1.ns, &self.mv2.ns, &self.third.ns]);
    }

    fn same_port(&self) -> u64 {
        self.sw.dropped(&self.p, "rx", "same_port")
    }
}

#[test]
fn adjacent_bridge_hairpin_decides_macvlan_vepa_siblings() {
    if !common::root_or_skip() {
        return;
    }
    let b = MacvlanBed::new("vepa");
    let (mv1, mv2) = (&b.mv1, &b.mv2);
    assert_eq!(b.sw.port(&b.p)["flags"]["hairpin"].as_bool(), Some(false));

    // Hairpin off (the default): both MACs are learned on P ...
    b.third_reachable();
    assert_eq!(b.sw.fdb_port(&mv1.mac).as_deref(), Some(b.p.as_str()));
    assert_eq!(b.sw.fdb_port(&mv2.mac).as_deref(), Some(b.p.as_str()));
    // ... the siblings cannot resolve each other ...
    ping_fails(mv1, &mv2.ip);
    ping_fails(mv2, &mv1.ip);
    // ... and unicast between them is dropped at P, counted as same_port (E1).
    let before = b.same_port();
    assert_eq!(
        burst_seen_by(mv1, &mv2.mac, mv2),
        0,
        "mv2 got mv1's unicast"
    );
    counter_settles("same_port drops on P", before + u64::from(N), || {
        b.same_port()
    });

    // Hairpin on, at run time: the siblings talk through the switch (E2, E3).
    set_hairpin(&b.sw, &b.p, true);
    b.flush();
    mv1.ping_ok(&mv2.ip, 3);
    mv2.ping_ok(&mv1.ip, 3);
    // mv1's unicast to mv2 and mv2's broadcasts arrive once each.
    let before = b.same_port();
    let at_mv2 = mv2.sniff(SNIFF_SECS, &["--src", &mv1.mac, "--ethertype", ETH_EXP_S]);
    let at_mv1 = mv1.sniff(SNIFF_SECS, &["--src", &mv2.mac, "--ethertype", ETH_EXP_S]);
    mv1.send(&frame_hex(&mv2.mac, &mv1.mac, ETH_EXP, b"hairpin"), N);
    mv2.send(&frame_hex(BCAST, &mv2.mac, ETH_EXP, b"hairpin"), N);
    assert_eq!(at_mv2.count(), u64::from(N), "mv1 -> mv2 unicast");
    assert_eq!(at_mv1.count(), u64::from(N), "mv2 -> all broadcast");
    assert_eq!(b.same_port(), before, "same_port grew with hairpin on");
    b.third_reachable();

    // Hairpin off again.
    set_hairpin(&b.sw, &b.p, false);
    b.flush();
    ping_fails(mv1, &mv2.ip);
    ping_fails(mv2, &mv1.ip);
    let before = b.same_port();
    assert_eq!(
        burst_seen_by(mv2, &mv1.mac, mv1),
        0,
        "mv1 got mv2's unicast"
    );
    counter_settles("same_port drops on P", before + u64::from(N), || {
        b.same_port()
    });
    b.third_reachable();
    assert_eq!(
        b.sw.port(&b.p)["counters"]["rx_dropped_by_reason"]["same_port"].as_u64(),
        Some(b.same_port())
    );
}

#[test]
fn adjacent_bridge_macvlan_private_siblings_never_talk() {
    if !common::root_or_skip() {
        return;
    }
    let b = MacvlanBed::new("private");
    let (mv1, mv2) = (&b.mv1, &b.mv2);

    b.third_reachable();
    ping_fails(mv1, &mv2.ip);
    ping_fails(mv2, &mv1.ip);

    // Hairpin on: the switch reflects mv1's broadcasts to P (seen on P in H), but the macvlan
    // driver hands a reflected frame from a private source back to that source only (E4).
    set_hairpin(&b.sw, &b.p, true);
    b.flush();
    ping_fails(mv1, &mv2.ip);
    ping_fails(mv2, &mv1.ip);
    // A view of P in H; never dropped (that would delete H, which `b` owns).
    let lower = ManuallyDrop::new(Host {
        ifname: b.p.clone(),
        ip: String::new(),
        mac: String::new(),
        ns: Netns {
            name: b.h.name.clone(),
        },
    });
    let on_p = lower.sniff(SNIFF_SECS, &["--src", &mv1.mac, "--ethertype", ETH_EXP_S]);
    let on_mv2 = mv2.sniff(SNIFF_SECS, &["--src", &mv1.mac, "--ethertype", ETH_EXP_S]);
    mv1.send(&frame_hex(BCAST, &mv1.mac, ETH_EXP, b"private"), N);
    let (reflected, delivered) = (on_p.count(), on_mv2.count());
    assert_eq!(reflected, u64::from(N), "the switch did not hairpin to P");
    assert_eq!(delivered, 0, "a private sibling received mv1's broadcast");
    b.third_reachable();

    set_hairpin(&b.sw, &b.p, false);
    b.flush();
    ping_fails(mv1, &mv2.ip);
    ping_fails(mv2, &mv1.ip);
    b.third_reachable();
}

/// A namespace with IPv6 on (link-local only) and the given `enhanced_dad`.
fn ipv6_netns(enhanced_dad: u8) -> Netns {
    let ns = Netns::new();
    let e = enhanced_dad.to_string();
    ns.ok(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
        &format!("net.ipv6.conf.all.enhanced_dad={e}"),
        &format!("net.ipv6.conf.default.enhanced_dad={e}"),
    ]);
    ns
}

/// The `ip -6 addr` flags of the host's link-local address, once DAD is over (or failed).
fn dad_outcome(h: &Host) -> String {
    let mut last = String::new();
    let done = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
        last =
            h.ns.ip(&["-6", "addr", "show", "dev", &h.ifname, "scope", "link"]);
        last.contains("fe80::") && (last.contains("dadfailed") || !last.contains("tentative"))
    });
    assert!(done, "[{}] DAD did not finish: {last}", h.ns.name);
    last
}

#[test]
fn hairpin_echoes_a_hosts_own_dad_probe() {
    if !common::root_or_skip() {
        return;
    }
    // E5: a host behind a hairpin port sees its own Neighbour Solicitation; without the nonce
    // check of enhanced_dad (RFC 7527) the kernel marks the address dadfailed.
    let (na, nb, nc) = (ipv6_netns(0), ipv6_netns(0), ipv6_netns(1));
    let (a, b, c) = (ifname('a'), ifname('b'), ifname('c'));
    let (ha, hc) = (format!("{a},hairpin"), format!("{c},hairpin"));
    // Declared before the switch, so the switch stops (its TAPs go) before the namespaces.
    let mut hosts: Vec<Host> = Vec::new();
    let sw = Switch::start(&["--port", &ha, "--port", &b, "--port", &hc]);
    let s = subnet();
    for (i, (ns, name)) in [(na, &a), (nb, &b), (nc, &c)].into_iter().enumerate() {
        hosts.push(Host::attach(
            ns,
            name,
            &format!("198.19.{s}.{}/24", i + 1),
            Some(&format!("02:56:44:{s:02x}:00:{:02x}", i + 1)),
        ));
    }
    let out: Vec<String> = hosts.iter().map(dad_outcome).collect();
    assert!(
        out[0].contains("dadfailed"),
        "hairpin, enhanced_dad=0: {}",
        out[0]
    );
    assert!(!out[1].contains("dadfailed"), "no hairpin: {}", out[1]);
    assert!(
        !out[2].contains("dadfailed"),
        "hairpin, enhanced_dad=1: {}",
        out[2]
    );
    // Each host's own solicitation went back out of its hairpin port.
    assert!(sw.counter(&a, "tx_frames") >= 1);
}

// -------------------------------------------------------------------------------------------
// The switch as the VEPA edge relay, a Linux bridge as the adjacent bridge (E6-E10)
// -------------------------------------------------------------------------------------------

/// `tapswitch run --mode MODE --port U,uplink --port D1 --port D2`; U is a port of `br0` (with
/// address .254) in namespace `br`; D1, D2 are hosts.
struct VepaBed {
    sw: Switch,
    u: String,
    d1: Host,
    d2: Host,
    br: Netns,
    br_ip: String,
}

impl VepaBed {
    fn new(mode: &str) -> VepaBed {
        let br = Netns::new();
        let (n1, n2) = (Netns::new(), Netns::new());
        let u = ifname('u');
        let (p1, p2) = (ifname('d'), ifname('e'));
        let uspec = format!("{u},uplink");
        let sw = Switch::start(&[
            "--mode", mode, "--port", &uspec, "--port", &p1, "--port", &p2,
        ]);
        let cfg = sw.get("/api/v1/config");
        assert_eq!(cfg["mode"].as_str(), Some(mode), "{cfg}");
        assert_eq!(sw.port(&u)["flags"]["uplink"].as_bool(), Some(true));
        let s = subnet();
        run_ok("ip", &["link", "set", "dev", &u, "netns", &br.name]);
        br.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        br.ip(&["link", "set", "dev", &u, "master", "br0"]);
        let br_ip = format!("198.19.{s}.254");
        br.ip(&["addr", "add", &format!("{br_ip}/24"), "dev", "br0"]);
        br.ip(&["link", "set", "dev", &u, "up"]);
        br.ip(&["link", "set", "dev", "br0", "up"]);
        let d1 = Host::attach(
            n1,
            &p1,
            &format!("198.19.{s}.1/24"),
            Some(&format!("02:56:50:{s:02x}:00:01")),
        );
        let d2 = Host::attach(
            n2,
            &p2,
            &format!("198.19.{s}.2/24"),
            Some(&format!("02:56:50:{s:02x}:00:02")),
        );
        VepaBed {
            sw,
            u,
            d1,
            d2,
            br,
            br_ip,
        }
    }

    /// Reflective relay on the Linux bridge's port U: `hairpin on|off`.
    fn upstream_hairpin(&self, on: bool) {
        let v = if on { "on" } else { "off" };
        if std::path::Path::new("/usr/sbin/bridge").exists()
            || std::path::Path::new("/sbin/bridge").exists()
        {
            run_ok(
                "bridge",
                &[
                    "-n",
                    &self.br.name,
                    "link",
                    "set",
                    "dev",
                    &self.u,
                    "hairpin",
                    v,
                ],
            );
        } else {
            self.br.ip(&[
                "link",
                "set",
                "dev",
                &self.u,
                "type",
                "bridge_slave",
                "hairpin",
                v,
            ]);
        }
        let shown = self.br.ip(&["-d", "link", "show", "dev", &self.u]);
        assert!(
            shown.contains(&format!("hairpin {v}")),
            "hairpin not {v} on {}:\n{shown}",
            self.u
        );
        flush_neigh(&[&self.d1.ns, &self.d2.ns, &self.br]);
    }

    fn uplink_rx_tx(&self) -> (u64, u64) {
        (
            self.sw.counter(&self.u, "rx_frames"),
            self.sw.counter(&self.u, "tx_frames"),
        )
    }

    /// Both downlinks reach the host behind the uplink (br0), whatever the hairpin.
    fn upstream_reachable(&self) {
        self.d1.ping_ok(&self.br_ip, 2);
        self.d2.ping_ok(&self.br_ip, 2);
    }

    /// A host view of `br0`'s port U in the bridge namespace, for sniffing there; never
    /// dropped (that would delete the namespace, which `self` owns).
    fn uplink_peer(&self) -> ManuallyDrop<Host> {
        ManuallyDrop::new(Host {
            ifname: self.u.clone(),
            ip: String::new(),
            mac: String::new(),
            ns: Netns {
                name: self.br.name.clone(),
            },
        })
    }
}

#[test]
fn vepa_downlinks_talk_only_through_a_hairpinning_upstream_bridge() {
    if !common::root_or_skip() {
        return;
    }
    let b = VepaBed::new("vepa");
    let (d1, d2) = (&b.d1, &b.d2);
    const PINGS: u32 = 3;

    // Hairpin on at the Linux bridge: D1 <-> D2 works, every frame through U (E9).
    b.upstream_hairpin(true);
    let (rx0, tx0) = b.uplink_rx_tx();
    d1.ping_ok(&d2.ip, PINGS);
    d2.ping_ok(&d1.ip, PINGS);
    let (rx1, tx1) = b.uplink_rx_tx();
    // Each direction: PINGS requests and PINGS replies, each out of U and back in.
    let min = u64::from(4 * PINGS);
    assert!(
        rx1 - rx0 >= min && tx1 - tx0 >= min,
        "uplink rx +{} tx +{}, expected at least {min} each",
        rx1 - rx0,
        tx1 - tx0
    );
    // D2's broadcasts reach D1, once each, via the reflection.
    assert_eq!(burst_seen_by(d2, BCAST, d1), u64::from(N));
    assert_eq!(burst_seen_by(d2, &d1.mac, d1), u64::from(N));
    b.upstream_reachable();
    // The switch learned the downlinks on their own ports, not on the uplink.
    assert_eq!(b.sw.fdb_port(&d1.mac).as_deref(), Some(d1.ifname.as_str()));
    assert_eq!(b.sw.fdb_port(&d2.mac).as_deref(), Some(d2.ifname.as_str()));

    // Hairpin off: nothing from D2 reaches D1, though the switch sends it all to U once (E6).
    b.upstream_hairpin(false);
    ping_fails(d1, &d2.ip);
    ping_fails(d2, &d1.ip);
    let peer = b.uplink_peer();
    let (rx0, tx0) = b.uplink_rx_tx();
    let on_u = peer.sniff(SNIFF_SECS, &["--src", &d2.mac, "--ethertype", ETH_EXP_S]);
    let on_d1 = d1.sniff(SNIFF_SECS, &["--src", &d2.mac]);
    d2.send(&frame_hex(BCAST, &d2.mac, ETH_EXP, b"no-hairpin"), N);
    d2.send(&frame_hex(&d1.mac, &d2.mac, ETH_EXP, b"no-hairpin"), N);
    let (at_u, at_d1) = (on_u.count(), on_d1.count());
    assert_eq!(at_u, u64::from(2 * N), "frames from D2 arriving at U");
    assert_eq!(at_d1, 0, "D1 received frames from D2 with hairpin off");
    let (rx1, tx1) = b.uplink_rx_tx();
    assert!(tx1 - tx0 >= u64::from(2 * N), "uplink tx +{}", tx1 - tx0);
    assert!(rx1 - rx0 < u64::from(N), "uplink rx +{}", rx1 - rx0);
    b.upstream_reachable();
    for p in [&d1.ifname, &d2.ifname] {
        assert_eq!(b.sw.dropped(p, "rx", "no_uplink"), 0);
    }
}

#[test]
fn vepa_reflected_broadcast_is_not_delivered_back_to_its_source() {
    if !common::root_or_skip() {
        return;
    }
    let b = VepaBed::new("vepa");
    let (d1, d2) = (&b.d1, &b.d2);
    b.upstream_hairpin(true);
    for dst in [BCAST, MCAST] {
        let (rx0, _) = b.uplink_rx_tx();
        let back = d1.sniff(SNIFF_SECS, &["--src", &d1.mac]);
        let other = d2.sniff(SNIFF_SECS, &["--src", &d1.mac, "--ethertype", ETH_EXP_S]);
        d1.send(&frame_hex(dst, &d1.mac, ETH_EXP, b"reflect-me"), N);
        let (back, other) = (back.count(), other.count());
        assert_eq!(
            back, 0,
            "D1 got its own {dst} frames back (reflection filter)"
        );
        assert_eq!(
            other,
            u64::from(N),
            "D2 should get D1's {dst} frames once each"
        );
        let (rx1, _) = b.uplink_rx_tx();
        assert!(
            rx1 - rx0 >= u64::from(N),
            "the bridge did not reflect: uplink rx +{}",
            rx1 - rx0
        );
    }
}

#[test]
fn vepa_private_drops_reflections_from_local_downlinks() {
    if !common::root_or_skip() {
        return;
    }
    let b = VepaBed::new("vepa-private");
    let (d1, d2) = (&b.d1, &b.d2);
    b.upstream_hairpin(true);
    let drops = || b.sw.dropped(&b.u, "rx", "vepa_private");
    assert_eq!(drops(), 0);

    // Reflected broadcasts from D1 come back on U and are dropped there (E10).
    let (rx0, _) = b.uplink_rx_tx();
    assert_eq!(
        burst_seen_by(d1, BCAST, d2),
        0,
        "D2 got D1's reflected broadcast"
    );
    counter_settles("vepa_private drops on U", u64::from(N), drops);
    // Reflected unicast too (stricter than macvlan private, which delivers a reflected unicast
    // to the sibling owning the destination MAC).
    assert_eq!(
        burst_seen_by(d1, &d2.mac, d2),
        0,
        "D2 got D1's reflected unicast"
    );
    counter_settles("vepa_private drops on U", u64::from(2 * N), drops);
    let (rx1, _) = b.uplink_rx_tx();
    assert!(rx1 - rx0 >= u64::from(2 * N), "uplink rx +{}", rx1 - rx0);

    // So ARP between the downlinks fails in both directions, and is counted too.
    ping_fails(d1, &d2.ip);
    ping_fails(d2, &d1.ip);
    assert!(drops() > u64::from(2 * N), "reflected ARP not counted");
    // The host behind the uplink is still reachable.
    b.upstream_reachable();
}

#[test]
fn vepa_needs_exactly_one_uplink() {
    if !common::root_or_skip() {
        return;
    }
    for mode in ["vepa", "vepa-private"] {
        for uplinks in [0, 2] {
            let (a, c) = (ifname('v'), ifname('w'));
            let pa = if uplinks == 2 {
                format!("{a},uplink")
            } else {
                a.clone()
            };
            let pc = if uplinks == 2 {
                format!("{c},uplink")
            } else {
                c.clone()
            };
            let api = free_addr();
            let (st, err) = tapswitch_fails(&[
                "run",
                "--control",
                "none",
                "--listen",
                &api,
                "--mode",
                mode,
                "--port",
                &pa,
                "--port",
                &pc,
            ]);
            assert!(
                !st.success() && st.code() != Some(0),
                "{mode}, {uplinks} uplinks: {st}"
            );
            assert!(
                err.contains("exactly one port with the 'uplink' flag"),
                "{mode}, {uplinks} uplinks: {err}"
            );
            assert!(
                !link_exists(&a) && !link_exists(&c),
                "{mode}, {uplinks} uplinks: a TAP was left behind"
            );
        }
    }
}

// -------------------------------------------------------------------------------------------
// Link-local groups (group_fwd_mask)
// -------------------------------------------------------------------------------------------

const LLDP_DST: &str = "01:80:c2:00:00:0e";
const LACP_DST: &str = "01:80:c2:00:00:02";

/// Host 0 sends `N` LLDP and `N` LACP frames to host 1; returns how many of each arrived and by
/// how much host 0's `link_local` drop counter grew.
fn link_local_pass(t: &Topo) -> (u64, u64, u64) {
    let (a, b) = (t.h(0), t.h(1));
    let drops = || t.sw.dropped(&a.ifname, "rx", "link_local");
    let before = drops();
    let lldp = b.sniff(SNIFF_SECS, &["--dst", LLDP_DST, "--ethertype", "0x88cc"]);
    let lacp = b.sniff(SNIFF_SECS, &["--dst", LACP_DST, "--ethertype", "0x8809"]);
    // LLDP: chassis ID TLV (MAC), port ID TLV, TTL TLV, end.
    let mut lldp_tlvs = vec![0x02, 0x07, 0x04];
    lldp_tlvs.extend(a.mac.split(':').map(|x| u8::from_str_radix(x, 16).unwrap()));
    lldp_tlvs.extend([0x04, 0x02, 0x07, b'1', 0x06, 0x02, 0x00, 0x78, 0x00, 0x00]);
    a.send(&frame_hex(LLDP_DST, &a.mac, 0x88cc, &lldp_tlvs), N);
    // LACP: subtype 1, version 1, actor TLV start.
    a.send(
        &frame_hex(LACP_DST, &a.mac, 0x8809, &[0x01, 0x01, 0x01, 0x14]),
        N,
    );
    let (l, c) = (lldp.count(), lacp.count());
    let blocked = u64::from(N) * (u64::from(l == 0) + u64::from(c == 0));
    counter_settles("link_local drops", before + blocked, drops);
    (l, c, drops() - before)
}

fn n() -> u64 {
    u64::from(N)
}

#[test]
fn link_local_default_blocks_lldp_and_lacp_until_patched() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &[]);
    assert_eq!(t.sw.get("/api/v1/config")["group_fwd_mask"], 0);
    assert_eq!(link_local_pass(&t), (0, 0, 2 * n()));
    let (st, body) = t.sw.req(
        "PATCH",
        "/api/v1/config",
        Some(r#"{"group_fwd_mask": "lldp,lacp"}"#),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(t.sw.get("/api/v1/config")["group_fwd_mask"], 0x4004);
    assert_eq!(link_local_pass(&t), (n(), n(), 0));
    // And back to none.
    let (st, body) =
        t.sw.req("PATCH", "/api/v1/config", Some(r#"{"group_fwd_mask": 0}"#));
    assert_eq!(st, 200, "{body}");
    assert_eq!(link_local_pass(&t), (0, 0, 2 * n()));
}

#[test]
fn link_local_mask_lldp_passes_only_lldp() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &["--group-fwd-mask", "lldp"]);
    assert_eq!(t.sw.get("/api/v1/config")["group_fwd_mask"], 0x4000);
    assert_eq!(link_local_pass(&t), (n(), 0, n()));
}

#[test]
fn link_local_mask_lacp_passes_only_lacp() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &["--group-fwd-mask", "lacp"]);
    assert_eq!(t.sw.get("/api/v1/config")["group_fwd_mask"], 0x0004);
    assert_eq!(link_local_pass(&t), (0, n(), n()));
}

#[test]
fn link_local_mask_all_passes_both() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(2, &["--group-fwd-mask", "all"]);
    assert_eq!(t.sw.get("/api/v1/config")["group_fwd_mask"], 0xffff);
    assert_eq!(link_local_pass(&t), (n(), n(), 0));
}
