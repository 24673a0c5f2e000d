//! The table, the decision rules and the answers, without a switch.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::wire::arp::{write_reply, ArpView, ARP_REPLY};
use crate::wire::checksum::{csum_add, csum_fold, pseudo};
use crate::wire::nd::{self, NdMessage};

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0x5e, 0, 0, n])
}
fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
const T0: Timestamp = Timestamp(1000);
const P1: PortId = PortId(1);
const P2: PortId = PortId(2);

/// An ARP message (the 28 bytes after the Ethernet header).
fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4];
    b.extend_from_slice(&op.to_be_bytes());
    b.extend_from_slice(&sha.0);
    b.extend_from_slice(&spa.octets());
    b.extend_from_slice(&tha.0);
    b.extend_from_slice(&tpa.octets());
    b
}

/// An IPv6 packet carrying a neighbour solicitation (`ns`) or advertisement, with options,
/// hop limit 255 and the checksum right.
fn nd_packet(
    ns: bool,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: u8,
    opts: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![if ns { 135 } else { 136 }, 0, 0, 0, flags, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(opts);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = !csum_fold(csum_add(pseudo(&p, true, 58, icmp.len()), &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&icmp);
    p
}

fn lla(kind: u8, m: MacAddr) -> Vec<u8> {
    let mut o = vec![kind, 1];
    o.extend_from_slice(&m.0);
    o
}

#[test]
fn local_bindings_are_learned_refreshed_moved_and_aged() {
    let mut t = Table::new(3);
    assert_eq!(t.learn(0, ip("198.18.5.1"), mac(1), P1, T0), Learned::New);
    assert_eq!(
        t.learn(0, ip("198.18.5.1"), mac(1), P1, Timestamp(2000)),
        Learned::Refreshed
    );
    assert_eq!(
        t.learn(0, ip("198.18.5.1"), mac(2), P2, Timestamp(2000)),
        Learned::Moved
    );
    // not addresses or MACs a binding can have
    for bad in [
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "127.0.0.1",
        "::",
        "ff02::1",
        "::1",
    ] {
        assert_eq!(
            t.learn(0, ip(bad), mac(1), P1, T0),
            Learned::Ignored,
            "{bad}"
        );
    }
    assert_eq!(
        t.learn(0, ip("198.18.5.2"), MacAddr::BROADCAST, P1, T0),
        Learned::Ignored
    );
    // per VLAN
    assert_eq!(t.learn(10, ip("198.18.5.1"), mac(3), P1, T0), Learned::New);
    assert_eq!(t.lookup(0, ip("198.18.5.1")).unwrap().mac, mac(2));
    assert_eq!(t.lookup(10, ip("198.18.5.1")).unwrap().mac, mac(3));
    assert_eq!(t.learn(0, ip("2001:db8::1"), mac(4), P1, T0), Learned::New);
    // bounded: the fourth is refused, the table is unchanged
    assert_eq!(t.learn(0, ip("198.18.5.9"), mac(5), P1, T0), Learned::Full);
    assert_eq!(t.counts(), (3, 0));
    let (changes, lost) = t.take_changes();
    assert!(!lost);
    assert_eq!(
        changes.iter().map(|c| c.mac).collect::<Vec<_>>(),
        [Some(mac(1)), Some(mac(2)), Some(mac(3)), Some(mac(4))],
        "new and moved bindings are news, refreshes are not"
    );
    // ageing: 198.18.5.1 in VLAN 0 was refreshed at 2000, the others seen at 1000
    assert_eq!(t.age_out(Timestamp(1000 + 300_000), 300_000), 2);
    assert_eq!(t.counts(), (1, 0));
    assert!(t.lookup(0, ip("198.18.5.1")).is_some());
    let (changes, _) = t.take_changes();
    assert!(changes.iter().all(|c| c.mac.is_none()) && changes.len() == 2);
    assert_eq!(t.flush_port(P2), 1);
    assert_eq!(t.counts(), (0, 0));
}

#[test]
fn remote_bindings_come_and_go_with_the_routes() {
    let mut t = Table::new(10);
    assert!(t.set_remote(0, ip("198.18.6.9"), mac(9), false, T0));
    assert_eq!(
        t.lookup(0, ip("198.18.6.9")).unwrap().origin,
        Origin::Remote
    );
    // remote bindings never age
    assert_eq!(t.age_out(Timestamp(u64::MAX / 2), 1), 0);
    // a host that shows up here takes its address over
    assert_eq!(t.learn(0, ip("198.18.6.9"), mac(9), P1, T0), Learned::Moved);
    assert!(
        !t.remove_remote(0, ip("198.18.6.9")),
        "a local binding stays"
    );
    t.take_changes();
    // and a remote route that wins it back makes the local binding go (news for the advertiser)
    assert!(t.set_remote(0, ip("198.18.6.9"), mac(8), true, T0));
    let (c, _) = t.take_changes();
    assert_eq!(
        c,
        [Change {
            vlan: 0,
            ip: ip("198.18.6.9"),
            mac: None
        }]
    );
    assert_eq!(t.remotes(0), [(ip("198.18.6.9"), mac(8))]);
    assert!(t.lookup(0, ip("198.18.6.9")).unwrap().router);
    assert!(t.remove_remote(0, ip("198.18.6.9")));
    assert_eq!(t.counts(), (0, 0));
    let mut full = Table::new(1);
    assert!(full.set_remote(0, ip("198.18.6.1"), mac(1), false, T0));
    assert!(!full.set_remote(0, ip("198.18.6.2"), mac(2), false, T0));
}

#[test]
fn a_burst_of_changes_past_the_queue_asks_for_a_full_read() {
    let mut t = Table::new(10_000);
    for i in 0..(MAX_CHANGES + 5) {
        let a = Ipv4Addr::from(0xc612_0000 + i as u32 + 1);
        t.learn(0, IpAddr::V4(a), mac(1), P1, T0);
    }
    let (c, lost) = t.take_changes();
    assert_eq!(c.len(), MAX_CHANGES);
    assert!(lost);
    assert!(!t.take_changes().1, "reported once");
    assert_eq!(t.locals().len(), MAX_CHANGES + 5);
}

/// Looks targets up in a one-entry table and the forwarding table's answer.
fn arp_v(in_supp: bool, op: u16, sip: &str, tip: &str, fdb: Option<bool>) -> Verdict {
    arp_verdict(
        in_supp,
        op,
        v4(sip),
        v4(tip),
        |i| (i == ip("198.18.7.9")).then_some(mac(9)),
        |m| {
            assert_eq!(m, mac(9));
            fdb
        },
    )
}

#[test]
fn arp_requests_for_remote_neighbours_are_answered_as_linux_does() {
    use Verdict::*;
    let req = ARP_REQUEST;
    // the target's MAC is behind a neigh-suppress port: answered, not sent there
    assert_eq!(
        arp_v(false, req, "198.18.7.1", "198.18.7.9", Some(true)),
        Reply(mac(9))
    );
    // behind a local port (the ingress port included): it answers itself; the request
    // still stays off the neigh-suppress ports
    assert_eq!(
        arp_v(false, req, "198.18.7.1", "198.18.7.9", Some(false)),
        NotToSuppressPorts
    );
    // the MAC is not in the forwarding table, or the address not in ours: flooded as before
    assert_eq!(arp_v(false, req, "198.18.7.1", "198.18.7.9", None), Pass);
    assert_eq!(
        arp_v(false, req, "198.18.7.1", "198.18.7.8", Some(true)),
        Pass
    );
    // received on a neigh-suppress port: untouched
    assert_eq!(
        arp_v(true, req, "198.18.7.1", "198.18.7.9", Some(true)),
        Pass
    );
    // gratuitous ARP (request or reply) and probes: never answered, kept from the tunnel
    assert_eq!(
        arp_v(false, req, "198.18.7.9", "198.18.7.9", Some(true)),
        NotToSuppressPorts
    );
    assert_eq!(
        arp_v(false, ARP_REPLY, "198.18.7.9", "198.18.7.9", Some(true)),
        NotToSuppressPorts
    );
    assert_eq!(
        arp_v(false, req, "0.0.0.0", "198.18.7.9", Some(true)),
        NotToSuppressPorts
    );
    // replies and RARP pass; loopback and multicast targets are not looked at
    assert_eq!(
        arp_v(false, ARP_REPLY, "198.18.7.1", "198.18.7.9", Some(true)),
        Pass
    );
    assert_eq!(
        arp_v(false, RARP_REQUEST, "0.0.0.0", "198.18.7.9", Some(true)),
        Pass
    );
    assert_eq!(
        arp_v(false, req, "198.18.7.1", "127.0.0.1", Some(true)),
        Pass
    );
    assert_eq!(
        arp_v(false, req, "198.18.7.1", "224.0.0.9", Some(true)),
        Pass
    );
}

fn ns(src: &str, dst: &str, target: &str) -> NdMessage {
    NdMessage {
        solicitation: true,
        src: v6(src),
        dst: v6(dst),
        target: v6(target),
        lladdr: Some(mac(1)),
        router: false,
        solicited: false,
        override_: false,
        priority: 0,
    }
}

#[test]
fn solicitations_for_remote_neighbours_are_answered_as_linux_does() {
    use Verdict::*;
    let known = |i: IpAddr| (i == ip("2001:db8::9")).then_some(mac(9));
    let m = ns("2001:db8::1", "ff02::1:ff00:9", "2001:db8::9");
    assert_eq!(nd_verdict(false, &m, known, |_| Some(true)), Reply(mac(9)));
    assert_eq!(
        nd_verdict(false, &m, known, |_| Some(false)),
        NotToSuppressPorts
    );
    assert_eq!(nd_verdict(false, &m, known, |_| None), Pass);
    assert_eq!(nd_verdict(true, &m, known, |_| Some(true)), Pass);
    let other = ns("2001:db8::1", "ff02::1:ff00:8", "2001:db8::8");
    assert_eq!(nd_verdict(false, &other, known, |_| Some(true)), Pass);
    // duplicate address detection: never answered, kept from the tunnel
    let dad = ns("::", "ff02::1:ff00:9", "2001:db8::9");
    assert_eq!(
        nd_verdict(false, &dad, known, |_| Some(true)),
        NotToSuppressPorts
    );
    // advertisements: unsolicited ones stay off the tunnel, solicited ones pass
    let mut na = ns("2001:db8::9", "ff02::1", "2001:db8::9");
    na.solicitation = false;
    assert_eq!(
        nd_verdict(false, &na, known, |_| Some(true)),
        NotToSuppressPorts
    );
    na.solicited = true;
    assert_eq!(nd_verdict(false, &na, known, |_| Some(true)), Pass);
}

#[test]
fn snooping_takes_the_senders_binding_only_from_the_sender() {
    let b = arp(
        ARP_REQUEST,
        mac(1),
        v4("198.18.8.1"),
        MacAddr::ZERO,
        v4("198.18.8.2"),
    );
    let a = ArpView::new_checked(&b).unwrap();
    assert_eq!(arp_binding(&a, mac(1)), Some((ip("198.18.8.1"), mac(1))));
    assert_eq!(arp_binding(&a, mac(2)), None, "relayed by another MAC");
    let probe = arp(
        ARP_REQUEST,
        mac(1),
        v4("0.0.0.0"),
        MacAddr::ZERO,
        v4("198.18.8.1"),
    );
    assert_eq!(
        arp_binding(&ArpView::new_checked(&probe).unwrap(), mac(1)),
        None
    );
    // a solicitation with its source link-layer option; DAD (from ::) and one without the
    // option show nothing
    let m = ns("2001:db8::1", "ff02::1:ff00:9", "2001:db8::9");
    assert_eq!(nd_binding(&m, mac(1)), Some((ip("2001:db8::1"), mac(1))));
    assert_eq!(
        nd_binding(&ns("::", "ff02::1:ff00:9", "2001:db8::9"), mac(1)),
        None
    );
    let mut bare = m;
    bare.lladdr = None;
    assert_eq!(nd_binding(&bare, mac(1)), None);
    // an advertisement: its target, at its option's MAC or the frame's source
    let mut na = ns("2001:db8::9", "ff02::1", "2001:db8::9");
    na.solicitation = false;
    na.lladdr = Some(mac(9));
    assert_eq!(nd_binding(&na, mac(9)), Some((ip("2001:db8::9"), mac(9))));
    assert_eq!(nd_binding(&na, mac(8)), None);
    na.lladdr = None;
    assert_eq!(nd_binding(&na, mac(8)), Some((ip("2001:db8::9"), mac(8))));
}

#[test]
fn the_arp_reply_is_the_one_linux_sends() {
    let mut out = [0u8; 64];
    let n = write_reply(
        &mut out,
        mac(9),
        v4("198.18.9.9"),
        mac(1),
        v4("198.18.9.1"),
        None,
    )
    .unwrap();
    assert_eq!(n, 42);
    assert_eq!(&out[0..6], &mac(1).0, "to the requester");
    assert_eq!(&out[6..12], &mac(9).0, "from the target's MAC");
    assert_eq!(&out[12..14], &[0x08, 0x06]);
    let a = ArpView::new_checked(&out[14..n]).unwrap();
    assert_eq!(
        (a.op(), a.sha(), a.spa(), a.tha(), a.tpa()),
        (
            ARP_REPLY,
            mac(9),
            v4("198.18.9.9"),
            mac(1),
            v4("198.18.9.1")
        )
    );
    // tagged: TPID and TCI after the addresses
    let n = write_reply(
        &mut out,
        mac(9),
        v4("198.18.9.9"),
        mac(1),
        v4("198.18.9.1"),
        Some((0x8100, 10)),
    )
    .unwrap();
    assert_eq!(n, 46);
    assert_eq!(&out[12..18], &[0x81, 0x00, 0x00, 10, 0x08, 0x06]);
    assert!(ArpView::new_checked(&out[18..n]).is_ok());
    assert!(write_reply(
        &mut out[..45],
        mac(9),
        v4("198.18.9.9"),
        mac(1),
        v4("198.18.9.1"),
        Some((0x8100, 10))
    )
    .is_none());
}

#[test]
fn the_advertisement_is_the_one_linux_sends_and_checks_out() {
    let p = nd_packet(
        true,
        v6("2001:db8::1"),
        v6("ff02::1:ff00:9"),
        v6("2001:db8::9"),
        0,
        &lla(nd::OPT_SLLA, mac(1)),
    );
    let m = nd::parse(&p).unwrap();
    assert!(m.solicitation);
    assert_eq!((m.target, m.lladdr), (v6("2001:db8::9"), Some(mac(1))));
    let mut out = [0u8; 128];
    let n = nd::write_na(&mut out, &m, mac(9), mac(1), false, Some((0x8100, 20))).unwrap();
    assert_eq!(n, 18 + nd::NA_LEN);
    assert_eq!((&out[0..6], &out[6..12]), (&mac(1).0[..], &mac(9).0[..]));
    assert_eq!(&out[12..18], &[0x81, 0x00, 0x00, 20, 0x86, 0xdd]);
    // our own parser (which checks the checksum and hop limit) reads it back
    let na = nd::parse(&out[18..n]).unwrap();
    assert!(!na.solicitation && na.solicited && na.override_ && !na.router);
    assert_eq!(
        (na.src, na.dst, na.target, na.lladdr),
        (
            v6("2001:db8::9"),
            v6("2001:db8::1"),
            v6("2001:db8::9"),
            Some(mac(9))
        )
    );
    // smoltcp agrees it is a valid NA
    let ip6 = smoltcp::wire::Ipv6Packet::new_checked(&out[18..n]).unwrap();
    let icmp = smoltcp::wire::Icmpv6Packet::new_checked(ip6.payload()).unwrap();
    assert!(icmp.verify_checksum(&ip6.src_addr(), &ip6.dst_addr()));
    assert_eq!(
        icmp.msg_type(),
        smoltcp::wire::Icmpv6Message::NeighborAdvert
    );
}

#[test]
fn invalid_neighbour_messages_are_refused() {
    let good = nd_packet(
        true,
        v6("2001:db8::1"),
        v6("ff02::1:ff00:9"),
        v6("2001:db8::9"),
        0,
        &lla(1, mac(1)),
    );
    assert!(nd::parse(&good).is_ok());
    let mut bad_sum = good.clone();
    bad_sum[43] ^= 1;
    assert!(nd::parse(&bad_sum).is_err());
    let mut hop = good.clone();
    hop[7] = 64;
    assert!(nd::parse(&hop).is_err(), "hop limit must be 255");
    // an option of length 0 (Linux's br_nd_send gives up on it too)
    let zero = nd_packet(
        true,
        v6("2001:db8::1"),
        v6("ff02::1:ff00:9"),
        v6("2001:db8::9"),
        0,
        &[1, 0, 0, 0, 0, 0, 0, 0],
    );
    assert!(nd::parse(&zero).is_err());
    // not ND: an echo request
    let mut echo = good.clone();
    echo[40] = 128;
    assert!(nd::parse(&echo).is_err());
    for cut in 0..good.len() {
        let _ = nd::parse(&good[..cut]);
        let _ = nd::maybe_nd(&good[..cut]);
    }
    let a = arp(
        ARP_REQUEST,
        mac(1),
        v4("198.18.8.1"),
        MacAddr::ZERO,
        v4("198.18.8.2"),
    );
    for cut in 0..a.len() {
        assert!(ArpView::new_checked(&a[..cut]).is_err());
    }
    let mut not_ipv4 = a.clone();
    not_ipv4[2] = 0x86;
    assert!(ArpView::new_checked(&not_ipv4).is_err());
    // random bytes never panic
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let b: Vec<u8> = (0..90)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = nd::parse(&b);
        let _ = ArpView::new_checked(&b).map(|v| (v.op(), v.spa(), v.tpa(), v.sha(), v.tha()));
    }
}
