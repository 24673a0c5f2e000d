//! The Linux kernel selftests tools/testing/selftests/net/forwarding/bridge_igmp.sh and
//! bridge_mld.sh, re-expressed: the same bridge settings, the same reports (the very bytes the
//! scripts hand to mausezahn), the same clock steps (their `sleep`s), the same expectations
//! (`check_sg_entries`, `check_sg_state`, `check_sg_fwding`). h1 sits behind port 1 (swp1),
//! h2 behind port 2 (swp2); "forwarded" means traffic from h2's side reaches port 1.

use super::*;
use crate::wire::tests as vectors;

/// Which script.
#[derive(Clone, Copy)]
enum Proto {
    Igmp,
    Mld,
}

fn group(p: Proto) -> IpAddr {
    match p {
        Proto::Igmp => v4("239.10.10.10"),
        Proto::Mld => v6("ff02::cc"),
    }
}

/// 192.0.2.N / 2001:db8:1::N (N written in hex for MLD, as the scripts do).
fn src(p: Proto, n: u32) -> IpAddr {
    match p {
        Proto::Igmp => v4(&format!("192.0.2.{n}")),
        Proto::Mld => v6(&format!("2001:db8:1::{n:x}")),
    }
}

/// The mausezahn packet of the script.
fn pkt(p: Proto, name: &str) -> Vec<u8> {
    let (igmp, mld) = match name {
        "IS_INC" => (vectors::SELFTEST_IGMP_IS_INC, vectors::SELFTEST_MLD_IS_INC),
        "IS_INC2" => (
            vectors::SELFTEST_IGMP_IS_INC2,
            vectors::SELFTEST_MLD_IS_INC2,
        ),
        "IS_INC3" => (
            vectors::SELFTEST_IGMP_IS_INC3,
            vectors::SELFTEST_MLD_IS_INC3,
        ),
        "ALLOW" => (vectors::SELFTEST_IGMP_ALLOW, vectors::SELFTEST_MLD_ALLOW),
        "ALLOW2" => (vectors::SELFTEST_IGMP_ALLOW2, vectors::SELFTEST_MLD_ALLOW2),
        "IS_EXC" => (vectors::SELFTEST_IGMP_IS_EXC, vectors::SELFTEST_MLD_IS_EXC),
        "IS_EXC2" => (
            vectors::SELFTEST_IGMP_IS_EXC2,
            vectors::SELFTEST_MLD_IS_EXC2,
        ),
        "TO_EXC" => (vectors::SELFTEST_IGMP_TO_EXC, vectors::SELFTEST_MLD_TO_EXC),
        "BLOCK" => (vectors::SELFTEST_IGMP_BLOCK, vectors::SELFTEST_MLD_BLOCK),
        other => panic!("{other}"),
    };
    match p {
        // `$MZ $h1 -b 01:00:5e:00:00:01 -B 224.0.0.1 -t ip "proto=2,p=$MZPKT"`: h1 is
        // 192.0.2.1; mausezahn adds no Router Alert option.
        Proto::Igmp => vectors::ipv4_frame(
            "192.0.2.1".parse().unwrap(),
            crate::wire::IPV4_ALL_SYSTEMS,
            crate::wire::IPPROTO_IGMP,
            &vectors::hex(igmp),
        ),
        Proto::Mld => vectors::hex(mld),
    }
}

/// The script's switch_create + setup_wait: snooping and querier on; bridge_mld.sh also sets
/// mcast_query_response_interval 1 s, mcast_startup_query_interval 3 s and MLDv2.
fn switch(p: Proto) -> H {
    let cfg = match p {
        Proto::Igmp => McastConfig {
            querier: true,
            ..McastConfig::default()
        },
        Proto::Mld => McastConfig {
            querier: true,
            query_response_interval_ms: 1000,
            startup_query_interval_ms: 3000,
            mld_version: 2,
            ..McastConfig::default()
        },
    };
    let mut h = H::new(cfg);
    h.advance(secs(15));
    h
}

fn set(h: &mut H, f: impl FnOnce(&mut McastConfig)) {
    let mut c = h.s.config().clone();
    f(&mut c);
    h.s.set_config(c, h.now).unwrap();
}

/// mcast_igmp_version 3 / mcast_mld_version 2.
fn v3(h: &mut H) {
    set(h, |c| {
        c.igmp_version = 3;
        c.mld_version = 2;
    });
}

fn send(h: &mut H, port: u32, frame: &[u8]) {
    h.feed(port, frame);
    h.advance(secs(1)); // the scripts' `sleep 1`
}

/// check_sg_entries: the *,G entry of swp1 lists these sources and each has an S,G entry.
fn check_sg_entries(h: &H, p: Proto, ns: &[u32]) {
    let rows = h.s.mdb(h.now);
    let star = rows
        .iter()
        .find(|r| r.port == super::p(1) && r.grp == group(p) && r.src.is_none())
        .expect("*,G entry");
    for n in ns {
        assert!(
            star.source_list.iter().any(|s| s.address == src(p, *n)),
            "source {n} missing from {star:?}"
        );
        assert!(
            rows.iter().any(|r| r.src == Some(src(p, *n))),
            "S,G entry for {n} missing"
        );
    }
}

/// check_sg_state: blocked = zero timer in the source list and the S,G "blocked" flag.
fn check_sg_state(h: &H, p: Proto, blocked: bool, ns: &[u32]) {
    let rows = h.s.mdb(h.now);
    for n in ns {
        let s = src(p, *n);
        let star = rows
            .iter()
            .find(|r| r.port == super::p(1) && r.grp == group(p) && r.src.is_none())
            .unwrap();
        let timer = star
            .source_list
            .iter()
            .find(|x| x.address == s)
            .unwrap()
            .timer_ms;
        assert_eq!(timer == 0, blocked, "source {n} timer {timer}");
        let sg = rows.iter().find(|r| r.src == Some(s)).unwrap();
        assert_eq!(sg.flags.contains(&"blocked"), blocked, "source {n} flags");
    }
}

/// check_sg_fwding: traffic from these sources (sent by h2) reaches h1 or not.
fn check_sg_fwding(h: &mut H, p: Proto, fwd: bool, ns: &[u32]) {
    for n in ns {
        let ports = h
            .fwd(group(p), src(p, *n))
            .expect("a querier exists: no flood");
        assert_eq!(ports.contains(&1), fwd, "source {n}: {ports:?}");
    }
}

fn filter_mode(h: &H, p: Proto) -> FilterMode {
    h.pg(1, group(p)).expect("*,G entry").0
}

fn not_listed(h: &H, p: Proto, n: u32) {
    let (_, _, srcs) = h.pg(1, group(p)).unwrap();
    assert!(
        srcs.iter().all(|(a, _)| *a != src(p, n)),
        "{n} still listed"
    );
}

fn include_prepare(p: Proto) -> H {
    let mut h = switch(p);
    v3(&mut h);
    send(&mut h, 1, &pkt(p, "IS_INC"));
    assert_eq!(filter_mode(&h, p), FilterMode::Include);
    check_sg_entries(&h, p, &[1, 2, 3]);
    h
}

fn exclude_prepare(p: Proto) -> H {
    let mut h = include_prepare(p);
    send(&mut h, 1, &pkt(p, "IS_EXC"));
    assert_eq!(filter_mode(&h, p), FilterMode::Exclude);
    check_sg_entries(&h, p, &ns(p, &[1, 2, 20, 21]));
    check_sg_state(&h, p, false, &[1, 2]);
    check_sg_state(&h, p, true, &ns(p, &[20, 21]));
    not_listed(&h, p, 3);
    h
}

fn n(p: Proto, dec: u32) -> u32 {
    // The IGMP script writes 192.0.2.20, the MLD one 2001:db8:1::20 (hex 0x20): same digits.
    match p {
        Proto::Igmp => dec,
        Proto::Mld => u32::from_str_radix(&dec.to_string(), 16).unwrap(),
    }
}

fn ns(p: Proto, l: &[u32]) -> Vec<u32> {
    l.iter().map(|x| n(p, *x)).collect()
}

const BOTH: [Proto; 2] = [Proto::Igmp, Proto::Mld];

#[test]
fn v2reportleave() {
    // IGMPv2 mode; h2 joins with `ip address add ... autojoin` (the kernel sends IGMPv3
    // TO_EX({}), taken as a join), traffic from h1 reaches h2; the leave (TO_IN({})) removes
    // the entry within LMQT and the traffic stops.
    let mut h = switch(Proto::Igmp);
    let g = v4("239.10.10.10");
    h.feed(2, &vectors::hex(vectors::IGMPV3_REPORT_TO_EX));
    h.advance(secs(5));
    assert!(
        h.pg(2, g).is_some(),
        "IGMPv2 report didn't create mdb entry"
    );
    assert_eq!(h.fwd(g, v4("192.0.2.1")), Some(vec![2]));
    h.feed(2, &vectors::hex(vectors::IGMPV3_REPORT_TO_IN));
    h.advance(secs(5));
    assert!(h.pg(2, g).is_none(), "Leave didn't delete mdb entry");
    assert_eq!(
        h.fwd(g, v4("192.0.2.1")),
        Some(vec![]),
        "forwarded without mdb entry"
    );
}

#[test]
fn v3include() {
    for p in BOTH {
        let mut h = include_prepare(p);
        check_sg_state(&h, p, false, &[1, 2, 3]);
        check_sg_fwding(&mut h, p, true, &[1, 2, 3]);
        check_sg_fwding(&mut h, p, false, &ns(p, &[100]));
    }
}

#[test]
fn v3inc_allow() {
    for p in BOTH {
        let mut h = include_prepare(p);
        send(&mut h, 1, &pkt(p, "ALLOW"));
        let x = ns(p, &[10, 11, 12]);
        check_sg_entries(&h, p, &x);
        check_sg_state(&h, p, false, &x);
        check_sg_fwding(&mut h, p, true, &x);
        check_sg_fwding(&mut h, p, false, &ns(p, &[100]));
    }
}

#[test]
fn v3inc_is_include() {
    for p in BOTH {
        let mut h = include_prepare(p);
        send(&mut h, 1, &pkt(p, "IS_INC2"));
        let x = ns(p, &[10, 11, 12]);
        check_sg_entries(&h, p, &x);
        check_sg_state(&h, p, false, &x);
        check_sg_fwding(&mut h, p, true, &x);
        check_sg_fwding(&mut h, p, false, &ns(p, &[100]));
    }
}

#[test]
fn v3inc_is_exclude() {
    for p in BOTH {
        let mut h = exclude_prepare(p);
        let mut x = ns(p, &[1, 2]);
        x.push(n(p, 100));
        check_sg_fwding(&mut h, p, true, &x);
        check_sg_fwding(&mut h, p, false, &ns(p, &[20, 21]));
    }
}

#[test]
fn v3inc_to_exclude() {
    for p in BOTH {
        let mut h = include_prepare(p);
        set(&mut h, |c| c.last_member_interval_ms = 5000);
        send(&mut h, 1, &pkt(p, "TO_EXC"));
        assert_eq!(filter_mode(&h, p), FilterMode::Exclude);
        let (x, y) = (ns(p, &[1]), ns(p, &[20, 30]));
        check_sg_entries(&h, p, &[x.clone(), y.clone()].concat());
        check_sg_state(&h, p, false, &x);
        check_sg_state(&h, p, true, &y);
        not_listed(&h, p, 2);
        not_listed(&h, p, n(p, 21));
        check_sg_fwding(&mut h, p, true, &[x, ns(p, &[100])].concat());
        check_sg_fwding(&mut h, p, false, &y);
    }
}

#[test]
fn v3exc_allow() {
    for p in BOTH {
        let mut h = exclude_prepare(p);
        send(&mut h, 1, &pkt(p, "ALLOW2"));
        let (x, y) = (ns(p, &[1, 2, 20, 30]), ns(p, &[21]));
        check_sg_entries(&h, p, &[x.clone(), y.clone()].concat());
        check_sg_state(&h, p, false, &x);
        check_sg_state(&h, p, true, &y);
        check_sg_fwding(&mut h, p, true, &[x, ns(p, &[100])].concat());
        check_sg_fwding(&mut h, p, false, &y);
    }
}

#[test]
fn v3exc_is_include() {
    for p in BOTH {
        let mut h = exclude_prepare(p);
        send(&mut h, 1, &pkt(p, "IS_INC3"));
        let (x, y) = (ns(p, &[1, 2, 20, 30]), ns(p, &[21]));
        check_sg_entries(&h, p, &[x.clone(), y.clone()].concat());
        check_sg_state(&h, p, false, &x);
        check_sg_state(&h, p, true, &y);
        check_sg_fwding(&mut h, p, true, &[x, ns(p, &[100])].concat());
        check_sg_fwding(&mut h, p, false, &y);
    }
}

#[test]
fn v3exc_is_exclude() {
    for p in BOTH {
        let mut h = exclude_prepare(p);
        send(&mut h, 1, &pkt(p, "IS_EXC2"));
        let (x, y) = (ns(p, &[30]), ns(p, &[20]));
        check_sg_entries(&h, p, &[x.clone(), y.clone()].concat());
        check_sg_state(&h, p, false, &x);
        check_sg_state(&h, p, true, &y);
        check_sg_fwding(&mut h, p, true, &[x, ns(p, &[100])].concat());
        check_sg_fwding(&mut h, p, false, &y);
    }
}

#[test]
fn v3exc_to_exclude() {
    for p in BOTH {
        let mut h = exclude_prepare(p);
        set(&mut h, |c| c.last_member_interval_ms = 5000);
        send(&mut h, 1, &pkt(p, "TO_EXC"));
        let (x, y) = (ns(p, &[1, 30]), ns(p, &[20]));
        check_sg_entries(&h, p, &[x.clone(), y.clone()].concat());
        check_sg_state(&h, p, false, &x);
        check_sg_state(&h, p, true, &y);
        check_sg_fwding(&mut h, p, true, &[x, ns(p, &[100])].concat());
        check_sg_fwding(&mut h, p, false, &y);
    }
}

#[test]
fn v3inc_block() {
    for p in BOTH {
        let mut h = include_prepare(p);
        h.feed(1, &pkt(p, "BLOCK"));
        h.advance(secs(3)); // "make sure the lowered timers have expired"
        let x = ns(p, &[2, 3]);
        check_sg_entries(&h, p, &x);
        check_sg_state(&h, p, false, &x);
        not_listed(&h, p, 1);
        check_sg_fwding(&mut h, p, true, &x);
        check_sg_fwding(&mut h, p, false, &ns(p, &[100]));
    }
}

#[test]
fn v3exc_block() {
    for p in BOTH {
        let mut h = exclude_prepare(p);
        set(&mut h, |c| c.last_member_interval_ms = 5000);
        send(&mut h, 1, &pkt(p, "BLOCK"));
        let (x, y) = (ns(p, &[1, 2, 30]), ns(p, &[20, 21]));
        check_sg_entries(&h, p, &[x.clone(), y.clone()].concat());
        check_sg_state(&h, p, false, &x);
        check_sg_state(&h, p, true, &y);
        check_sg_fwding(&mut h, p, true, &[x, ns(p, &[100])].concat());
        check_sg_fwding(&mut h, p, false, &y);
    }
}

#[test]
fn v3exc_timeout() {
    for p in BOTH {
        let mut h = switch(p);
        // "GMI should be 5 seconds"
        set(&mut h, |c| {
            c.query_interval_ms = 1000;
            c.query_response_interval_ms = 1000;
            c.membership_interval_ms = 5000;
        });
        let mut h = {
            // exclude_prepare on this switch
            v3(&mut h);
            send(&mut h, 1, &pkt(p, "IS_INC"));
            send(&mut h, 1, &pkt(p, "IS_EXC"));
            check_sg_state(&h, p, true, &ns(p, &[20, 21]));
            h
        };
        set(&mut h, |c| {
            c.query_interval_ms = 5000;
            c.query_response_interval_ms = 5000;
            c.membership_interval_ms = 15_000;
        });
        h.feed(1, &pkt(p, "ALLOW2"));
        h.advance(secs(5));
        assert_eq!(filter_mode(&h, p), FilterMode::Include);
        not_listed(&h, p, 1);
        not_listed(&h, p, 2);
        let x = ns(p, &[20, 30]);
        check_sg_entries(&h, p, &x);
        check_sg_state(&h, p, false, &x);
        check_sg_fwding(&mut h, p, true, &x);
        check_sg_fwding(&mut h, p, false, &ns(p, &[100]));
    }
}

#[test]
fn mldv2star_ex_auto_add() {
    // bridge_mld.sh: h1 in exclude mode on swp1, h2 includes 2001:db8:1::3 on swp2; traffic
    // from ::3 still reaches h1 (Linux adds an "added_by_star_ex" S,G entry for swp1).
    let p = Proto::Mld;
    let mut h = exclude_prepare(p);
    send(&mut h, 2, &pkt(p, "IS_INC"));
    assert_eq!(h.pg(2, group(p)).unwrap().0, FilterMode::Include);
    let ports = h.fwd(group(p), src(p, 3)).unwrap();
    assert!(ports.contains(&1) && ports.contains(&2), "{ports:?}");
}

#[test]
fn mldv2per_vlan_snooping_stp() {
    // bridge_mld.sh per-VLAN snooping with STP: after the port stops and resumes forwarding,
    // MLD queries are sent on it again (mcast_startup_query_count 0, query interval 1 s).
    let mut h = switch(Proto::Mld);
    set(&mut h, |c| {
        c.startup_query_count = 0;
        c.query_interval_ms = 1000;
    });
    h.s.set_port_enabled(super::p(1), false, h.now).unwrap();
    h.advance(secs(5));
    let before = h.s.port_stats(super::p(1)).unwrap().tx.mld_v2queries;
    h.s.set_port_enabled(super::p(1), true, h.now).unwrap();
    h.advance(secs(5));
    let after = h.s.port_stats(super::p(1)).unwrap().tx.mld_v2queries;
    assert!(
        after > before,
        "No MLD queries after STP state becomes forwarding"
    );
}
