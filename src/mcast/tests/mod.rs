//! Tests of the multicast state machine with a fake clock: the RFC tables ([`rfc`]), the
//! kernel selftests bridge_igmp.sh / bridge_mld.sh re-expressed ([`selftests`]), a model
//! check with proptest ([`model`]), and querier, router-port, limit and forwarding rules here.

mod model;
mod rfc;
mod selftests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::wire::igmp::IgmpMessage;
use crate::wire::mld::MldMessage;
use crate::wire::{inspect_frame, McastFrame, RecordType};

pub(super) fn p(n: u32) -> PortId {
    PortId(n)
}

pub(super) fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

pub(super) fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

pub(super) fn secs(s: u64) -> u64 {
    s * 1000
}

// ----- frame builders (what hosts and other routers send) -----

/// An IPv4 frame with the Router Alert option, as hosts send IGMP.
pub(super) fn igmp_frame(src: Ipv4Addr, dst: Ipv4Addr, igmp: &[u8]) -> Vec<u8> {
    let mut f = crate::mcast::query::multicast_mac(&IpAddr::V4(dst))
        .0
        .to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
    let mut ip = vec![0x46, 0xc0, 0, 0, 0, 0, 0x40, 0, 1, 2, 0, 0];
    ip[2..4].copy_from_slice(&(24 + igmp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&[0x94, 4, 0, 0]);
    let c = !smoltcp::wire::checksum::data(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(igmp);
    f
}

fn with_checksum(mut m: Vec<u8>) -> Vec<u8> {
    let c = !smoltcp::wire::checksum::data(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// IGMPv1/v2 message.
pub(super) fn igmp_v2(msg_type: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    m.extend_from_slice(&group.octets());
    with_checksum(m)
}

/// An IPv6 frame with a hop-by-hop Router Alert (MLD), ICMPv6 checksum filled in.
pub(super) fn mld_frame(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
    let mut icmp = icmp.to_vec();
    let mut pk = smoltcp::wire::Icmpv6Packet::new_unchecked(&mut icmp[..]);
    pk.fill_checksum(&src, &dst);
    let mut f = crate::mcast::query::multicast_mac(&IpAddr::V6(dst))
        .0
        .to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(8 + icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
    f.extend_from_slice(&icmp);
    f
}

/// MLDv1 message (report 131, done 132).
pub(super) fn mld_v1(msg_type: u8, group: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&group.octets());
    m
}

/// One IGMPv3 / MLDv2 record.
pub(super) type Rec = (RecordType, IpAddr, Vec<IpAddr>);

/// A whole IGMPv3 or MLDv2 report frame with these records, from `host` (an address of the
/// records' family).
pub(super) fn report(host: IpAddr, records: &[Rec]) -> Vec<u8> {
    match host {
        IpAddr::V4(h) => {
            let mut m = vec![0x22, 0, 0, 0, 0, 0];
            m.extend_from_slice(&(records.len() as u16).to_be_bytes());
            for (t, g, srcs) in records {
                m.extend_from_slice(&[u8::from(*t), 0]);
                m.extend_from_slice(&(srcs.len() as u16).to_be_bytes());
                let IpAddr::V4(g) = g else { panic!() };
                m.extend_from_slice(&g.octets());
                for s in srcs {
                    let IpAddr::V4(s) = s else { panic!() };
                    m.extend_from_slice(&s.octets());
                }
            }
            igmp_frame(h, Ipv4Addr::new(224, 0, 0, 22), &with_checksum(m))
        }
        IpAddr::V6(h) => {
            let mut m = vec![143, 0, 0, 0, 0, 0];
            m.extend_from_slice(&(records.len() as u16).to_be_bytes());
            for (t, g, srcs) in records {
                m.extend_from_slice(&[u8::from(*t), 0]);
                m.extend_from_slice(&(srcs.len() as u16).to_be_bytes());
                let IpAddr::V6(g) = g else { panic!() };
                m.extend_from_slice(&g.octets());
                for s in srcs {
                    let IpAddr::V6(s) = s else { panic!() };
                    m.extend_from_slice(&s.octets());
                }
            }
            mld_frame(h, "ff02::16".parse().unwrap(), &m)
        }
    }
}

/// A query another router sends, built with the switch's own builder.
pub(super) fn other_query(
    version: QueryVersion,
    src: IpAddr,
    group: Option<IpAddr>,
    max_resp_ms: u64,
) -> Vec<u8> {
    QuerySpec {
        vid: 0,
        port: None,
        version,
        src,
        group,
        sources: Vec::new(),
        s_flag: false,
        max_resp_ms,
        qqi_secs: 125,
        qrv: 2,
    }
    .build(MacAddr([0x02, 0, 0, 0, 0, 0x77]))
}

// ----- harness -----

/// A switch's snooping state with three ports (1, 2, 3) in VLAN 0 and a fake clock.
pub(super) struct H {
    pub s: McastState,
    pub now: Timestamp,
}

impl H {
    pub fn new(cfg: McastConfig) -> H {
        let mut s = McastState::new(cfg).unwrap();
        let now = Timestamp(0);
        s.add_vlan(0, now);
        for n in 1..=3 {
            s.add_port(p(n), PortConfig::default(), now);
        }
        H { s, now }
    }

    /// IGMPv3 + MLDv2 mode, own querier on, queriers established (past the start-up delay).
    pub fn v3_querier() -> H {
        let mut h = H::new(McastConfig {
            igmp_version: 3,
            mld_version: 2,
            querier: true,
            ..McastConfig::default()
        });
        h.advance(secs(11));
        h.s.take_actions();
        h.s.take_events();
        h
    }

    /// IGMPv3 + MLDv2 mode, no querier anywhere.
    pub fn v3_silent() -> H {
        H::new(McastConfig {
            igmp_version: 3,
            mld_version: 2,
            ..McastConfig::default()
        })
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = Timestamp(self.now.0 + ms);
        self.s.tick(self.now);
    }

    pub fn feed(&mut self, port: u32, frame: &[u8]) {
        self.s.handle_bytes(p(port), 0, frame, self.now).unwrap();
    }

    /// `None`: flood; else the ports delivered to.
    pub fn fwd(&mut self, group: IpAddr, src: IpAddr) -> Option<Vec<u32>> {
        let v = self.s.view();
        match v.decide_data(0, group, src) {
            McastDecision::Flood => None,
            McastDecision::Deliver(l) => Some(l.iter().map(|p| p.0).collect()),
        }
    }

    pub fn queries(&mut self) -> Vec<QuerySpec> {
        self.s
            .take_actions()
            .into_iter()
            .map(|Action::SendQuery(q)| q)
            .collect()
    }

    pub fn pg(&self, port: u32, group: IpAddr) -> Option<super::state::PgState> {
        self.s.pg_state(p(port), 0, group)
    }

    pub fn at(&self, ms: u64) -> Option<Timestamp> {
        Some(Timestamp(self.now.0 + ms))
    }
}

// ----- querier -----

#[test]
fn own_querier_sends_startup_then_regular_general_queries() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    let q = h.queries();
    // IGMPv2 and MLDv1 general queries at once, to every port.
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(q.iter().all(|q| q.port.is_none() && q.group.is_none()));
    let igmp = q
        .iter()
        .find(|q| q.version == QueryVersion::IgmpV2)
        .unwrap();
    assert_eq!(igmp.src, v4("0.0.0.0"));
    assert_eq!(igmp.max_resp_ms, 10_000);
    let mld = q.iter().find(|q| q.version == QueryVersion::MldV1).unwrap();
    assert_eq!(
        mld.src,
        IpAddr::V6(link_local_from_mac(McastConfig::default().switch_mac))
    );
    // The per-port start-up queries of the ports added before the VLAN: none (the VLAN's own
    // queries cover them); the next one after the start-up interval, then the query interval.
    // Next: the end of the first max response time (a querier counts from then on).
    assert_eq!(h.s.next_deadline(), Some(Timestamp(10_000)));
    h.advance(31_249);
    assert!(h.queries().is_empty());
    h.advance(1);
    assert_eq!(h.queries().len(), 2);
    h.advance(125_000 - 1);
    assert!(h.queries().is_empty());
    h.advance(1);
    assert_eq!(h.queries().len(), 2);
    assert_eq!(h.s.stats().tx.igmp_v2queries, 3);
    assert_eq!(h.s.stats().tx.mld_v1queries, 3);
}

#[test]
fn query_frames_parse_back() {
    let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let ll = link_local_from_mac(mac);
    assert_eq!(ll, "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap());
    for (version, src, group, sources) in [
        (QueryVersion::IgmpV2, v4("0.0.0.0"), None, vec![]),
        (
            QueryVersion::IgmpV2,
            v4("198.18.0.1"),
            Some(v4("239.1.1.1")),
            vec![],
        ),
        (QueryVersion::IgmpV3, v4("198.18.0.1"), None, vec![]),
        (
            QueryVersion::IgmpV3,
            v4("198.18.0.1"),
            Some(v4("232.1.1.1")),
            vec![v4("198.18.0.11"), v4("198.18.0.12")],
        ),
        (QueryVersion::MldV1, IpAddr::V6(ll), None, vec![]),
        (
            QueryVersion::MldV1,
            IpAddr::V6(ll),
            Some(v6("ff0e::1")),
            vec![],
        ),
        (QueryVersion::MldV2, IpAddr::V6(ll), None, vec![]),
        (
            QueryVersion::MldV2,
            IpAddr::V6(ll),
            Some(v6("ff3e::1")),
            vec![v6("2001:2::11")],
        ),
    ] {
        let spec = QuerySpec {
            vid: 0,
            port: None,
            version,
            src,
            group,
            sources: sources.clone(),
            s_flag: true,
            max_resp_ms: if group.is_some() { 1000 } else { 10_000 },
            qqi_secs: 125,
            qrv: 2,
        };
        let f = spec.build(mac);
        assert_eq!(&f[6..12], &mac.0);
        let parsed = inspect_frame(&f).unwrap();
        match (version, parsed) {
            (
                QueryVersion::IgmpV2,
                McastFrame::Igmp {
                    src: s,
                    dst,
                    router_alert: true,
                    msg:
                        IgmpMessage::QueryV12 {
                            max_resp_code,
                            group: g,
                        },
                },
            ) => {
                assert_eq!(IpAddr::V4(s), src);
                assert_eq!(IpAddr::V4(dst), spec.dst());
                assert_eq!(u64::from(max_resp_code) * 100, spec.max_resp_ms);
                assert_eq!(g.is_unspecified(), group.is_none());
            }
            (
                QueryVersion::IgmpV3,
                McastFrame::Igmp {
                    dst,
                    router_alert: true,
                    msg: IgmpMessage::QueryV3(q),
                    ..
                },
            ) => {
                assert_eq!(IpAddr::V4(dst), spec.dst());
                assert_eq!(q.max_resp_ms(), spec.max_resp_ms);
                assert_eq!((q.qrv(), q.qqi_secs(), q.s_flag()), (2, 125, true));
                let got: Vec<IpAddr> = q.sources().map(IpAddr::V4).collect();
                assert_eq!(got, sources);
            }
            (
                QueryVersion::MldV1,
                McastFrame::Mld {
                    router_alert: true,
                    msg:
                        MldMessage::QueryV1 {
                            max_delay_ms,
                            group: g,
                        },
                    ..
                },
            ) => {
                assert_eq!(u64::from(max_delay_ms), spec.max_resp_ms);
                assert_eq!(g.is_unspecified(), group.is_none());
            }
            (
                QueryVersion::MldV2,
                McastFrame::Mld {
                    dst,
                    router_alert: true,
                    msg: MldMessage::QueryV2(q),
                    ..
                },
            ) => {
                assert_eq!(IpAddr::V6(dst), spec.dst());
                assert_eq!(q.max_resp_ms(), spec.max_resp_ms);
                let got: Vec<IpAddr> = q.sources().map(IpAddr::V6).collect();
                assert_eq!(got, sources);
            }
            (v, other) => panic!("{v:?} parsed as {other:?}"),
        }
    }
}

#[test]
fn query_frames_match_what_linux_sends() {
    // The bridge's IGMPv2 general query from 198.18.0.1 and MLDv1 general query from
    // fe80::ff:fe00:1, captured: the builder makes the same bytes (MAC 02:00:00:00:00:01).
    let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let spec = QuerySpec {
        vid: 0,
        port: None,
        version: QueryVersion::IgmpV2,
        src: v4("198.18.0.1"),
        group: None,
        sources: vec![],
        s_flag: false,
        max_resp_ms: 10_000,
        qqi_secs: 125,
        qrv: 2,
    };
    let linux = crate::wire::tests::hex(crate::wire::tests::IGMPV2_GENERAL_QUERY);
    assert_eq!(spec.build(mac), linux);
    let v3 = QuerySpec {
        version: QueryVersion::IgmpV3,
        ..spec.clone()
    };
    let linux = crate::wire::tests::hex(crate::wire::tests::IGMPV3_GENERAL_QUERY);
    assert_eq!(v3.build(mac), linux);
    let mld = QuerySpec {
        version: QueryVersion::MldV1,
        src: v6("fe80::ff:fe00:1"),
        ..spec.clone()
    };
    let linux = crate::wire::tests::hex(crate::wire::tests::MLDV1_GENERAL_QUERY);
    assert_eq!(mld.build(mac), linux);
    let mld2 = QuerySpec {
        version: QueryVersion::MldV2,
        src: v6("fe80::ff:fe00:1"),
        group: Some(v6("ff3e::4321")),
        sources: vec![v6("2001:2::11")],
        max_resp_ms: 1000,
        ..spec
    };
    let linux = crate::wire::tests::hex(crate::wire::tests::MLDV2_GROUP_SOURCE_QUERY);
    assert_eq!(mld2.build(mac), linux);
}

#[test]
fn querier_election_lowest_address_wins() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    h.s.set_query_source(0, Some("198.18.0.5".parse().unwrap()), None, h.now);
    h.advance(secs(40));
    h.queries();
    // A higher address is ignored: still our own querier, port 2 not a router port.
    h.feed(
        2,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.9"), None, 10_000),
    );
    let st = h.s.querier_state(0, Family::V4, h.now);
    assert_eq!(st.querier.unwrap().port, None);
    assert_eq!(st.querier.unwrap().address, v4("198.18.0.5"));
    assert!(h.s.router_ports(h.now).is_empty());
    // A lower one wins: it is followed, its port is a router port, our queries stop.
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.1"), None, 10_000),
    );
    let st = h.s.querier_state(0, Family::V4, h.now);
    assert_eq!(
        st.querier,
        Some(QuerierInfo {
            address: v4("198.18.0.1"),
            port: Some(p(3))
        })
    );
    assert_eq!(st.other_timer_ms, 255_000);
    assert_eq!(h.s.router_ports(h.now)[0].port, p(3));
    h.advance(secs(200));
    assert!(
        h.queries()
            .iter()
            .all(|q| q.version != QueryVersion::IgmpV2),
        "own IGMP queries while another querier is present"
    );
    // Silent for the querier interval: our querier starts again with start-up queries.
    h.advance(secs(55));
    let q = h.queries();
    assert!(q.iter().any(|q| q.version == QueryVersion::IgmpV2), "{q:?}");
    assert_eq!(
        h.s.querier_state(0, Family::V4, h.now)
            .querier
            .unwrap()
            .port,
        None
    );
    // The router port learned from the query expired at the same time.
    assert!(h.s.router_ports(h.now).is_empty());
}

#[test]
fn own_querier_from_0_0_0_0_loses_to_anyone() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    h.advance(secs(1));
    h.feed(
        2,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.200"), None, 10_000),
    );
    assert_eq!(
        h.s.querier_state(0, Family::V4, h.now)
            .querier
            .unwrap()
            .address,
        v4("198.18.0.200")
    );
}

#[test]
fn querier_exists_only_after_a_query_and_its_response_time() {
    let mut h = H::new(McastConfig::default());
    let g = v4("239.1.1.1");
    h.feed(
        1,
        &igmp_frame(
            "198.18.0.2".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            &igmp_v2(0x16, "239.1.1.1".parse().unwrap()),
        ),
    );
    // The MDB entry exists, but with no querier everything floods (the rule users trip on).
    assert!(h.pg(1, g).is_some());
    assert_eq!(h.fwd(g, v4("198.18.0.9")), None);
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.1"), None, 10_000),
    );
    assert_eq!(
        h.fwd(g, v4("198.18.0.9")),
        None,
        "flooding until max response time"
    );
    h.advance(9_999);
    assert_eq!(h.fwd(g, v4("198.18.0.9")), None);
    h.advance(1);
    // Members plus the router port the query came in on.
    assert_eq!(h.fwd(g, v4("198.18.0.9")), Some(vec![1, 3]));
    // Unregistered groups: router ports only.
    assert_eq!(h.fwd(v4("239.9.9.9"), v4("198.18.0.9")), Some(vec![3]));
    // 224.0.0.0/24 always floods.
    assert_eq!(h.fwd(v4("224.0.0.251"), v4("198.18.0.9")), None);
    // IPv6 has no querier yet: floods.
    assert_eq!(h.fwd(v6("ff0e::1"), v6("2001:2::1")), None);
    // After the querier interval without queries, flooding again.
    h.advance(255_000);
    assert_eq!(h.fwd(g, v4("198.18.0.9")), None);
}

#[test]
fn reports_go_to_router_ports_and_other_control_floods() {
    let mut h = H::new(McastConfig::default());
    let view = h.s.view();
    let rep = igmp_frame(
        "198.18.0.2".parse().unwrap(),
        "239.1.1.1".parse().unwrap(),
        &igmp_v2(0x16, "239.1.1.1".parse().unwrap()),
    );
    let f = inspect_frame(&rep).unwrap();
    assert!(
        matches!(view.decide(0, &f), McastDecision::Flood),
        "no querier: flood"
    );
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.1"), None, 1000),
    );
    h.feed(
        3,
        &other_query(QueryVersion::MldV1, v6("fe80::1"), None, 1000),
    );
    h.advance(1000);
    let view = h.s.view();
    match view.decide(0, &f) {
        McastDecision::Deliver(l) => assert_eq!(l.iter().collect::<Vec<_>>(), vec![p(3)]),
        other => panic!("{other:?}"),
    }
    let mld_rep = mld_frame(
        "fe80::2".parse().unwrap(),
        "ff0e::1".parse().unwrap(),
        &mld_v1(131, "ff0e::1".parse().unwrap()),
    );
    assert!(matches!(
        view.decide(0, &inspect_frame(&mld_rep).unwrap()),
        McastDecision::Deliver(_)
    ));
    // IGMPv3 / MLDv2 reports, leaves and queries flood, as in Linux.
    for f in [
        report(
            v4("198.18.0.2"),
            &[(RecordType::ChangeToExclude, v4("239.1.1.1"), vec![])],
        ),
        report(
            v6("fe80::2"),
            &[(RecordType::ChangeToExclude, v6("ff0e::1"), vec![])],
        ),
        igmp_frame(
            "198.18.0.2".parse().unwrap(),
            "224.0.0.2".parse().unwrap(),
            &igmp_v2(0x17, "239.1.1.1".parse().unwrap()),
        ),
        other_query(QueryVersion::IgmpV3, v4("198.18.0.1"), None, 1000),
    ] {
        assert!(matches!(
            view.decide(0, &inspect_frame(&f).unwrap()),
            McastDecision::Flood
        ));
    }
    // ff02::1 floods; other IPv6 link-local groups are snooped.
    assert_eq!(h.fwd(v6("ff02::1"), v6("fe80::9")), None);
    assert_eq!(h.fwd(v6("ff02::fb"), v6("fe80::9")), Some(vec![3]));
}

#[test]
fn snooping_off_floods_and_learns_nothing() {
    let mut h = H::new(McastConfig {
        snooping: false,
        querier: true,
        ..McastConfig::default()
    });
    assert!(h.queries().is_empty(), "no queries with snooping off");
    h.feed(
        1,
        &igmp_frame(
            "198.18.0.2".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            &igmp_v2(0x16, "239.1.1.1".parse().unwrap()),
        ),
    );
    assert_eq!(h.s.group_count(), 0);
    assert_eq!(h.fwd(v4("239.1.1.1"), v4("198.18.0.9")), None);
    assert_eq!(
        h.s.stats().rx.igmp_v2reports,
        0,
        "Linux counts only while snooping"
    );
}

// ----- IGMPv2 / MLDv1 -----

#[test]
fn v2_report_and_leave_as_querier() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    h.advance(secs(11));
    h.queries();
    let g: Ipv4Addr = "239.10.10.10".parse().unwrap();
    h.feed(
        1,
        &igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g)),
    );
    let gi = IpAddr::V4(g);
    assert_eq!(
        h.pg(1, gi),
        Some((FilterMode::Exclude, h.at(260_000), vec![]))
    );
    assert_eq!(h.fwd(gi, v4("198.18.0.9")), Some(vec![1]));
    h.advance(secs(5));
    h.feed(
        1,
        &igmp_frame(
            "198.18.0.2".parse().unwrap(),
            "224.0.0.2".parse().unwrap(),
            &igmp_v2(0x17, g),
        ),
    );
    // Group-specific query on the port, timer at LMQT, one retransmission a second later.
    let q = h.queries();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].port, q[0].group, q[0].max_resp_ms),
        (Some(p(1)), Some(gi), 1000)
    );
    assert_eq!(q[0].dst(), gi);
    assert_eq!(h.pg(1, gi).unwrap().1, h.at(2000));
    h.advance(1000);
    let q = h.queries();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].group, Some(gi));
    h.advance(999);
    assert!(h.pg(1, gi).is_some());
    h.advance(1);
    assert!(h.pg(1, gi).is_none(), "gone after LMQT");
    assert!(h.queries().is_empty(), "no third query");
    assert_eq!(h.fwd(gi, v4("198.18.0.9")), Some(vec![]));
    let ev = h.s.take_events();
    assert!(ev.contains(&Event::GroupRemoved {
        vid: 0,
        group: gi,
        source: None,
        port: p(1),
        reason: RemoveReason::Expired
    }));
}

#[test]
fn v2_leave_without_querier_lowers_the_timer_and_with_another_querier_does_nothing() {
    let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
    let join = igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g));
    let leave = igmp_frame(
        "198.18.0.2".parse().unwrap(),
        "224.0.0.2".parse().unwrap(),
        &igmp_v2(0x17, g),
    );
    let mut h = H::new(McastConfig::default());
    h.feed(1, &join);
    h.feed(1, &leave);
    assert!(h.queries().is_empty(), "not the querier: no query");
    assert_eq!(h.pg(1, g.into()).unwrap().1, h.at(2000));
    // With another querier present the leave changes nothing: its query will.
    let mut h = H::new(McastConfig::default());
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.1"), None, 10_000),
    );
    h.feed(1, &join);
    h.feed(1, &leave);
    assert_eq!(h.pg(1, g.into()).unwrap().1, h.at(260_000));
    // The querier's group-specific query (max resp 1 s) lowers it to 1 s x LMC.
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.1"), Some(g.into()), 1000),
    );
    assert_eq!(h.pg(1, g.into()).unwrap().1, h.at(2000));
}

#[test]
fn fast_leave_removes_at_once() {
    let mut h = H::new(McastConfig::default());
    h.s.set_port_config(
        p(1),
        PortConfig {
            fast_leave: true,
            ..PortConfig::default()
        },
        h.now,
    )
    .unwrap();
    let g: Ipv6Addr = "ff0e::5".parse().unwrap();
    h.feed(
        1,
        &mld_frame("fe80::2".parse().unwrap(), g, &mld_v1(131, g)),
    );
    assert!(h.pg(1, g.into()).is_some());
    h.feed(
        1,
        &mld_frame(
            "fe80::2".parse().unwrap(),
            "ff02::2".parse().unwrap(),
            &mld_v1(132, g),
        ),
    );
    assert!(h.pg(1, g.into()).is_none());
}

#[test]
fn v3_reports_in_v2_mode_are_joins_and_leaves() {
    // Linux hosts send IGMPv3 by default; with mcast_igmp_version 2 the bridge treats a
    // TO_EX({}) as a join and a TO_IN({}) as a leave (the kernel's own reports here).
    let mut h = H::new(McastConfig::default());
    let g = v4("239.10.10.10");
    h.feed(
        1,
        &crate::wire::tests::hex(crate::wire::tests::IGMPV3_REPORT_TO_EX),
    );
    assert_eq!(
        h.pg(1, g),
        Some((FilterMode::Exclude, h.at(260_000), vec![]))
    );
    h.feed(
        1,
        &crate::wire::tests::hex(crate::wire::tests::IGMPV3_REPORT_TO_IN),
    );
    assert_eq!(h.pg(1, g).unwrap().1, h.at(2000));
    // A source join is a plain join in v2 mode.
    h.feed(
        2,
        &crate::wire::tests::hex(crate::wire::tests::IGMPV3_REPORT_ALLOW),
    );
    assert_eq!(
        h.pg(2, v4("232.1.1.1")),
        Some((FilterMode::Exclude, h.at(260_000), vec![]))
    );
    assert_eq!(h.s.stats().rx.igmp_v3reports, 3);
}

// ----- router ports -----

#[test]
fn router_port_modes() {
    let mut h = H::new(McastConfig::default());
    // 2: always a router port, in every VLAN and family.
    h.s.set_port_config(
        p(2),
        PortConfig {
            router: RouterMode::Permanent,
            ..PortConfig::default()
        },
        h.now,
    )
    .unwrap();
    // 0: never, even when a querier is behind it.
    h.s.set_port_config(
        p(3),
        PortConfig {
            router: RouterMode::Disabled,
            ..PortConfig::default()
        },
        h.now,
    )
    .unwrap();
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV2, v4("198.18.0.1"), None, 1000),
    );
    h.advance(1000);
    assert_eq!(h.fwd(v4("239.1.1.1"), v4("198.18.0.9")), Some(vec![2]));
    // 3: a router port for the querier interval, then back to 1.
    h.s.set_port_config(
        p(1),
        PortConfig {
            router: RouterMode::Temp,
            ..PortConfig::default()
        },
        h.now,
    )
    .unwrap();
    assert_eq!(h.fwd(v4("239.1.1.1"), v4("198.18.0.9")), Some(vec![1, 2]));
    h.advance(255_000);
    // (the querier also expired now: flood) - check the router list itself
    let rows = h.s.router_ports(h.now);
    assert!(rows.iter().all(|r| r.port == p(2)), "{rows:?}");
}

#[test]
fn pim_hello_and_mrd_mark_router_ports() {
    let mut h = H::new(McastConfig::default());
    let hello = crate::wire::tests::ipv4_frame(
        "198.18.0.7".parse().unwrap(),
        crate::wire::IPV4_ALL_PIM_ROUTERS,
        crate::wire::IPPROTO_PIM,
        &[0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105],
    );
    h.feed(2, &hello);
    let rows = h.s.router_ports(h.now);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].port, rows[0].family, rows[0].timer_ms),
        (p(2), Family::V4, 255_000)
    );
    // MLD MRD advertisement (ICMPv6 151 to ff02::6a after a hop-by-hop header).
    let mrd = mld_frame(
        "fe80::7".parse().unwrap(),
        crate::wire::IPV6_ALL_SNOOPERS,
        &[151, 20, 0, 0, 0, 125, 0, 2],
    );
    h.feed(3, &mrd);
    assert!(h
        .s
        .router_ports(h.now)
        .iter()
        .any(|r| r.port == p(3) && r.family == Family::V6));
    // router_seen: the plain input.
    h.s.router_seen(p(1), 0, Family::V6, h.now);
    assert!(h.s.router_ports(h.now).iter().any(|r| r.port == p(1)));
    h.advance(255_000);
    assert!(h.s.router_ports(h.now).is_empty());
}

// ----- limits, static entries, ports -----

#[test]
fn hash_max_and_max_groups_refuse_and_count() {
    let mut h = H::new(McastConfig {
        hash_max: 2,
        ..McastConfig::default()
    });
    let join = |g: &str| {
        let g: Ipv4Addr = g.parse().unwrap();
        igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g))
    };
    h.feed(1, &join("239.0.0.1"));
    h.feed(1, &join("239.0.0.2"));
    let err =
        h.s.handle_bytes(p(1), 0, &join("239.0.0.3"), h.now)
            .unwrap_err();
    assert_eq!(err, McastError::MdbFull(2));
    assert_eq!(h.s.stats().mdb_full, 1);
    assert_eq!(h.s.port_stats(p(1)).unwrap().mdb_full, 1);
    // An existing group still takes more ports.
    h.feed(2, &join("239.0.0.1"));
    assert_eq!(h.s.group_count(), 2);
    // mcast_max_groups 1 on port 3.
    h.s.set_port_config(
        p(3),
        PortConfig {
            max_groups: 1,
            ..PortConfig::default()
        },
        h.now,
    )
    .unwrap();
    h.feed(3, &join("239.0.0.1"));
    let err =
        h.s.handle_bytes(p(3), 0, &join("239.0.0.2"), h.now)
            .unwrap_err();
    assert_eq!(err, McastError::PortMaxGroups { port: p(3), max: 1 });
    assert_eq!(h.s.stats().port_max_groups, 1);
    assert!(h.s.take_events().iter().any(|e| matches!(
        e,
        Event::GroupRefused {
            reason: "port_max_groups",
            ..
        }
    )));
    // Leaving frees the slot.
    h.s.mdb_del(p(3), 0, v4("239.0.0.1"), None).unwrap();
    h.feed(3, &join("239.0.0.2"));
}

#[test]
fn sources_per_port_group_are_bounded() {
    let mut h = H::v3_silent();
    let srcs: Vec<IpAddr> = (1..=40).map(|i| v4(&format!("198.18.1.{i}"))).collect();
    h.feed(
        1,
        &report(
            v4("198.18.0.2"),
            &[(RecordType::ModeIsInclude, v4("232.1.1.1"), srcs)],
        ),
    );
    assert_eq!(h.pg(1, v4("232.1.1.1")).unwrap().2.len(), PG_SRC_ENT_LIMIT);
    assert_eq!(h.s.stats().source_limit, 8);
}

#[test]
fn static_entries() {
    let mut h = H::new(McastConfig {
        igmp_version: 3,
        ..McastConfig::default()
    });
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV3, v4("198.18.0.1"), None, 1000),
    );
    h.advance(1000);
    let g = v4("239.2.2.2");
    let perm = StaticEntry {
        port: p(1),
        group: g,
        source: None,
        permanent: true,
        vid: 0,
    };
    h.s.mdb_add(&perm, h.now).unwrap();
    assert_eq!(h.s.mdb_add(&perm, h.now), Err(McastError::Exists));
    assert_eq!(
        h.s.mdb_add(
            &StaticEntry {
                group: v4("224.0.0.5"),
                ..perm
            },
            h.now
        ),
        Err(McastError::UnsnoopedGroup(v4("224.0.0.5")))
    );
    // A temp (S,G) entry on port 2.
    let sg = StaticEntry {
        port: p(2),
        group: g,
        source: Some(v4("198.18.0.50")),
        permanent: false,
        vid: 0,
    };
    h.s.mdb_add(&sg, h.now).unwrap();
    assert_eq!(h.fwd(g, v4("198.18.0.50")), Some(vec![1, 2, 3]));
    assert_eq!(h.fwd(g, v4("198.18.0.51")), Some(vec![1, 3]));
    // A leave and TO_IN({}) do not touch the permanent entry.
    h.feed(
        1,
        &igmp_frame(
            "198.18.0.2".parse().unwrap(),
            "224.0.0.2".parse().unwrap(),
            &igmp_v2(0x17, "239.2.2.2".parse().unwrap()),
        ),
    );
    h.feed(
        1,
        &report(
            v4("198.18.0.2"),
            &[(RecordType::ChangeToInclude, g, vec![])],
        ),
    );
    h.advance(260_000);
    assert_eq!(h.pg(1, g), Some((FilterMode::Exclude, None, vec![])));
    // (the querier heard at the start has timed out meanwhile: hear it again)
    h.feed(
        3,
        &other_query(QueryVersion::IgmpV3, v4("198.18.0.1"), None, 1000),
    );
    h.advance(1000);
    // The temp one aged out after the membership interval (3: the querier's router port).
    assert_eq!(h.fwd(g, v4("198.18.0.50")), Some(vec![1, 3]));
    let rows = h.s.mdb(h.now);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state, rows[0].protocol), ("permanent", "static"));
    // A port going down keeps permanent entries, a port leaving does not.
    h.s.set_port_enabled(p(1), false, h.now).unwrap();
    assert!(h.pg(1, g).is_some());
    h.s.remove_port(p(1));
    assert!(h.pg(1, g).is_none());
    assert_eq!(h.s.mdb_del(p(1), 0, g, None), Err(McastError::NotFound));
}

#[test]
fn port_down_drops_learned_entries_and_port_up_sends_startup_queries() {
    let mut h = H::v3_querier();
    h.advance(secs(30)); // past the VLAN's own start-up queries
    h.queries();
    h.feed(
        1,
        &report(
            v4("198.18.0.2"),
            &[(RecordType::ChangeToExclude, v4("239.1.1.1"), vec![])],
        ),
    );
    h.s.set_port_enabled(p(1), false, h.now).unwrap();
    assert!(h.pg(1, v4("239.1.1.1")).is_none());
    assert!(h.queries().is_empty());
    h.advance(secs(1));
    h.s.set_port_enabled(p(1), true, h.now).unwrap();
    let q = h.queries();
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(q.iter().all(|q| q.port == Some(p(1)) && q.group.is_none()));
    h.advance(31_250);
    let q: Vec<_> = h
        .queries()
        .into_iter()
        .filter(|q| q.port == Some(p(1)))
        .collect();
    assert_eq!(q.len(), 2, "second start-up query on the port");
    h.advance(31_250);
    assert!(
        h.queries().iter().all(|q| q.port.is_none()),
        "then only the VLAN's own queries"
    );
}

#[test]
fn vlans_are_kept_apart() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    h.s.add_vlan(10, h.now);
    h.advance(secs(11));
    let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
    let join = igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g));
    h.s.handle_bytes(p(1), 10, &join, h.now).unwrap();
    let v = h.s.view();
    let ports = |d: McastDecision<'_>| match d {
        McastDecision::Deliver(l) => l.iter().collect::<Vec<_>>(),
        McastDecision::Flood => panic!("flood"),
    };
    assert_eq!(
        ports(v.decide_data(10, g.into(), v4("198.18.0.9"))),
        vec![p(1)]
    );
    assert!(ports(v.decide_data(0, g.into(), v4("198.18.0.9"))).is_empty());
    // A VLAN the querier does not know floods (no querier there).
    assert!(matches!(
        v.decide_data(20, g.into(), v4("198.18.0.9")),
        McastDecision::Flood
    ));
    h.s.remove_vlan(10);
    assert_eq!(h.s.group_count(), 0);
}

#[test]
fn outputs_are_bounded() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    for _ in 0..3000 {
        h.advance(125_000);
    }
    assert!(h.s.take_actions().len() <= OUTPUT_QUEUE_MAX);
    assert!(h.s.stats().output_dropped > 0);
}

#[test]
fn config_is_checked_like_linux() {
    assert_eq!(
        McastState::new(McastConfig {
            igmp_version: 1,
            ..McastConfig::default()
        })
        .unwrap_err(),
        ConfigError::IgmpVersion(1)
    );
    assert_eq!(
        McastState::new(McastConfig {
            mld_version: 3,
            ..McastConfig::default()
        })
        .unwrap_err(),
        ConfigError::MldVersion(3)
    );
    let s = McastState::new(McastConfig {
        query_interval_ms: 10,
        ..McastConfig::default()
    })
    .unwrap();
    assert_eq!(s.config().query_interval_ms, 1000);
    let d = McastConfig::default();
    assert_eq!(
        (
            d.query_interval_ms,
            d.query_response_interval_ms,
            d.membership_interval_ms
        ),
        (125_000, 10_000, 260_000)
    );
    assert_eq!(
        (
            d.querier_interval_ms,
            d.startup_query_interval_ms,
            d.startup_query_count
        ),
        (255_000, 31_250, 2)
    );
    assert_eq!(
        (d.last_member_count, d.last_member_interval_ms, d.hash_max),
        (2, 1000, 4096)
    );
    assert!(d.snooping && !d.querier && d.igmp_version == 2 && d.mld_version == 1);
}

#[test]
fn parse_errors_are_counted() {
    let mut h = H::new(McastConfig::default());
    let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
    let mut f = igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g));
    let n = f.len();
    f[n - 1] ^= 1;
    assert!(matches!(
        h.s.handle_bytes(p(1), 0, &f, h.now),
        Err(McastError::Parse(_))
    ));
    assert_eq!(h.s.stats().igmp_parse_errors, 1);
    assert_eq!(h.s.port_stats(p(1)).unwrap().igmp_parse_errors, 1);
    assert_eq!(
        h.s.handle_bytes(
            p(9),
            0,
            &igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g)),
            h.now
        ),
        Err(McastError::UnknownPort(p(9)))
    );
}

#[test]
fn delivery_lists_each_port_once_in_order() {
    let mut h = H::v3_querier();
    h.s.set_port_config(
        p(2),
        PortConfig {
            router: RouterMode::Permanent,
            ..PortConfig::default()
        },
        h.now,
    )
    .unwrap();
    for port in [3, 1, 2] {
        h.feed(
            port,
            &report(
                v4("198.18.0.2"),
                &[(RecordType::ChangeToExclude, v4("239.1.1.1"), vec![])],
            ),
        );
    }
    // Port 2 is both member and router: once.
    assert_eq!(
        h.fwd(v4("239.1.1.1"), v4("198.18.0.9")),
        Some(vec![1, 2, 3])
    );
}

#[test]
fn querier_can_be_turned_off_and_on() {
    let mut h = H::new(McastConfig {
        querier: true,
        ..McastConfig::default()
    });
    h.advance(secs(11));
    assert!(h.s.querier_state(0, Family::V4, h.now).exists);
    let mut c = h.s.config().clone();
    c.querier = false;
    h.s.set_config(c.clone(), h.now).unwrap();
    h.queries();
    assert!(!h.s.querier_state(0, Family::V4, h.now).exists);
    assert_eq!(h.s.querier_state(0, Family::V4, h.now).querier, None);
    assert_eq!(
        h.fwd(v4("239.1.1.1"), v4("198.18.0.9")),
        None,
        "no querier: flood"
    );
    h.advance(secs(300));
    assert!(h.queries().is_empty(), "no own queries while off");
    // Back on: start-up queries at once, a querier counts after the response interval.
    c.querier = true;
    h.s.set_config(c, h.now).unwrap();
    assert_eq!(h.queries().len(), 2);
    assert!(!h.s.querier_state(0, Family::V4, h.now).exists);
    h.advance(10_000);
    assert!(h.s.querier_state(0, Family::V6, h.now).exists);
    assert_eq!(h.fwd(v4("239.1.1.1"), v4("198.18.0.9")), Some(vec![]));
}

#[test]
fn events_tell_the_story() {
    let mut h = H::v3_querier();
    h.s.take_events();
    let g = v4("232.1.1.1");
    h.feed(
        1,
        &report(
            v4("198.18.0.2"),
            &[(RecordType::AllowNewSources, g, vec![v4("198.18.1.1")])],
        ),
    );
    h.feed(
        1,
        &report(v4("198.18.0.2"), &[(RecordType::ModeIsExclude, g, vec![])]),
    );
    h.feed(
        2,
        &other_query(QueryVersion::IgmpV3, v4("198.18.0.1"), None, 1000),
    );
    let ev = h.s.take_events();
    assert_eq!(
        ev,
        vec![
            Event::GroupAdded {
                vid: 0,
                group: g,
                source: None,
                port: p(1),
                is_static: false
            },
            Event::GroupChanged {
                vid: 0,
                group: g,
                port: p(1),
                filter_mode: FilterMode::Exclude
            },
            Event::QuerierChanged {
                vid: 0,
                family: Family::V4,
                querier: Some(QuerierInfo {
                    address: v4("198.18.0.1"),
                    port: Some(p(2))
                })
            },
            Event::RouterAdded {
                port: p(2),
                vid: Some(0),
                family: Family::V4
            },
        ]
    );
    // The JSON the API would stream.
    let j = serde_json::to_string(&ev[0]).unwrap();
    assert_eq!(
        j,
        r#"{"event":"group_added","vid":0,"group":"232.1.1.1","port":1,"static":false}"#
    );
}
