//! Rootless: ARP/ND suppression through the whole dataplane, with in-memory ports. Port `h2`
//! has `neigh-suppress` and stands for the tunnel (a remote host's MAC is in the table there as
//! `extern_learn`, its MAC+IP binding in the neighbour table as an EVPN route would put it);
//! `h0` and `h1` are local hosts. Checked: a request for the remote host is answered on the
//! ingress port from the remote MAC and reaches the local ports but not `h2`; an unknown
//! target floods everywhere as before; gratuitous ARP and DAD stay off `h2`; a request
//! from `h2` is left alone; a target behind a local port answers for itself; bindings are
//! snooped from local ports only; ND the same; the answers are counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::{EntryKind, FdbKey};
use tapswitch::forwarding::{PortFlags, Settings};
use tapswitch::port::mem::MemPort;
use tapswitch::wire::arp::{ArpView, ARP_REPLY, ARP_REQUEST};
use tapswitch::wire::checksum::{csum_add, csum_fold, pseudo};
use tapswitch::wire::{nd, MacAddr};

const REMOTE_MAC: MacAddr = MacAddr([2, 0x6e, 0, 0, 0, 0x99]);

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0x6e, 0, 0, 0, i])
}
fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn arp_frame(dst: MacAddr, op: u16, sha: MacAddr, spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&v4(spa).octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&v4(tpa).octets());
    f
}

/// A neighbour solicitation from `src` (`::` for DAD) for `target`, to its solicited-node
/// group, with a source link-layer option unless DAD.
fn ns_frame(from: MacAddr, src: &str, target: &str) -> Vec<u8> {
    let t = v6(target).octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    if src != "::" {
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&from.0);
    }
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&v6(src).octets());
    p.extend_from_slice(&group.octets());
    let c = !csum_fold(csum_add(pseudo(&p, true, 58, icmp.len()), &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&icmp);
    let g = group.octets();
    let mut f = vec![0x33, 0x33, g[12], g[13], g[14], g[15]];
    f.extend_from_slice(&from.0);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&p);
    f
}

struct Lab {
    sw: Arc<Switch>,
    ports: Vec<Arc<MemPort>>,
    handles: Vec<Arc<PortHandle>>,
}

impl Lab {
    /// h0, h1 local; h2 with neigh-suppress; the remote host's MAC behind h2 and its binding
    /// `198.18.60.99` / `2001:db8:60::99` remote.
    fn new() -> Lab {
        let sw = Switch::new("ns", Settings::default(), 4096);
        let mut lab = Lab {
            sw,
            ports: Vec::new(),
            handles: Vec::new(),
        };
        for i in 0..3 {
            let p = Arc::new(MemPort::new(1500));
            let flags = PortFlags::default().with(PortFlags::NEIGH_SUPPRESS, i == 2);
            let h = lab
                .sw
                .add_port(&format!("h{i}"), Box::new(p.clone()), flags)
                .unwrap();
            lab.ports.push(p);
            lab.handles.push(h);
        }
        let now = lab.sw.now();
        lab.sw
            .fdb
            .insert_user(
                FdbKey::new(REMOTE_MAC, 0),
                lab.handles[2].id,
                EntryKind::ExternLearn,
                true,
                now,
            )
            .unwrap();
        lab.sw
            .neigh
            .set_remote(0, "198.18.60.99".parse().unwrap(), REMOTE_MAC, false, now);
        lab.sw.neigh.set_remote(
            0,
            "2001:db8:60::99".parse().unwrap(),
            REMOTE_MAC,
            false,
            now,
        );
        lab
    }

    /// Port `i` receives `frame`; returns what each port was sent.
    fn send(&self, i: usize, frame: &[u8]) -> Vec<Vec<Vec<u8>>> {
        self.ports[i].inject(frame);
        self.sw.pump();
        self.ports.iter().map(|p| p.take_sent()).collect()
    }

    fn answered(&self, family: usize) -> u64 {
        self.sw.neigh.stats.answered[family].load(Relaxed)
    }
}

#[test]
fn arp_for_a_remote_host_is_answered_locally_and_kept_off_the_tunnel() {
    let lab = Lab::new();
    let req = arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        mac(1),
        "198.18.60.1",
        "198.18.60.99",
    );
    let got = lab.send(0, &req);
    assert_eq!(got[0].len(), 1, "the answer comes back on the ingress port");
    let r = &got[0][0];
    assert_eq!((&r[0..6], &r[6..12]), (&mac(1).0[..], &REMOTE_MAC.0[..]));
    let a = ArpView::new_checked(&r[14..]).unwrap();
    assert_eq!(
        (a.op(), a.sha(), a.spa(), a.tha(), a.tpa()),
        (
            ARP_REPLY,
            REMOTE_MAC,
            v4("198.18.60.99"),
            mac(1),
            v4("198.18.60.1")
        )
    );
    assert_eq!(
        got[1],
        std::slice::from_ref(&req),
        "the local port still gets the request"
    );
    assert!(got[2].is_empty(), "nothing to the neigh-suppress port");
    assert_eq!(lab.answered(0), 1);
    // the requester's binding was snooped
    assert_eq!(
        lab.sw.neigh.lookup(0, "198.18.60.1".parse().unwrap()),
        Some(mac(1))
    );

    // an unknown target floods as before, unanswered
    let unknown = arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        mac(1),
        "198.18.60.1",
        "198.18.60.77",
    );
    let got = lab.send(0, &unknown);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 1]);
    // gratuitous ARP: to the local ports only
    let garp = arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        mac(1),
        "198.18.60.1",
        "198.18.60.1",
    );
    let got = lab.send(0, &garp);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 0]);
    // a request from the tunnel side for the remote host itself is not answered here
    let from_tunnel = arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        mac(0x98),
        "198.18.60.98",
        "198.18.60.99",
    );
    let got = lab.send(2, &from_tunnel);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 0]);
    assert_eq!(
        lab.sw.neigh.lookup(0, "198.18.60.98".parse().unwrap()),
        None,
        "not a local binding"
    );
    // a target behind a local port answers for itself: h1 gets it, the tunnel does not
    lab.send(
        1,
        &arp_frame(
            MacAddr::BROADCAST,
            ARP_REQUEST,
            mac(2),
            "198.18.60.2",
            "198.18.60.1",
        ),
    );
    let got = lab.send(
        0,
        &arp_frame(
            MacAddr::BROADCAST,
            ARP_REQUEST,
            mac(1),
            "198.18.60.1",
            "198.18.60.2",
        ),
    );
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 0]);
    assert_eq!(lab.answered(0), 1);
    // with the flag off the request reaches the tunnel port again, unanswered
    lab.handles[2].flags.set(PortFlags::default());
    let got = lab.send(0, &req);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 1]);
    assert_eq!(lab.answered(0), 1);
}

#[test]
fn a_solicitation_for_a_remote_host_is_answered_with_an_advertisement() {
    let lab = Lab::new();
    let ns = ns_frame(mac(1), "2001:db8:60::1", "2001:db8:60::99");
    let got = lab.send(0, &ns);
    assert_eq!(got[0].len(), 1, "{got:?}");
    let r = &got[0][0];
    assert_eq!((&r[0..6], &r[6..12]), (&mac(1).0[..], &REMOTE_MAC.0[..]));
    let na = nd::parse(&r[14..]).expect("a valid advertisement");
    assert!(!na.solicitation && na.solicited && na.override_ && !na.router);
    assert_eq!(
        (na.src, na.dst, na.target, na.lladdr),
        (
            v6("2001:db8:60::99"),
            v6("2001:db8:60::1"),
            v6("2001:db8:60::99"),
            Some(REMOTE_MAC)
        )
    );
    assert_eq!(got[1].len(), 1);
    assert!(got[2].is_empty());
    assert_eq!(lab.answered(1), 1);
    assert_eq!(
        lab.sw
            .neigh
            .lookup(0, "2001:db8:60::1".parse::<IpAddr>().unwrap()),
        Some(mac(1))
    );
    // duplicate address detection: not answered, not to the tunnel
    let dad = ns_frame(mac(3), "::", "2001:db8:60::99");
    let got = lab.send(0, &dad);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 0]);
    assert_eq!(lab.answered(1), 1);
    // a remote router's address is answered with the router flag (a host that saw it clear
    // would drop the router from its default router list)
    let now = lab.sw.now();
    lab.sw
        .neigh
        .set_remote(0, "2001:db8:60::fe".parse().unwrap(), REMOTE_MAC, true, now);
    let got = lab.send(0, &ns_frame(mac(1), "2001:db8:60::1", "2001:db8:60::fe"));
    let na = nd::parse(&got[0][0][14..]).expect("a valid advertisement");
    assert!(na.router && na.solicited, "{na:?}");
    assert!(got[2].is_empty());
    // an unknown target floods everywhere
    let got = lab.send(0, &ns_frame(mac(1), "2001:db8:60::1", "2001:db8:60::55"));
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1, 1]);
}

/// A frame the bridge drops is not read for ARP/ND: a `locked` port whose source is not
/// authorised (Linux drops it in br_handle_frame_finish, before br_do_proxy_suppress_arp) gets
/// no answer for a remote host and teaches no binding; once its MAC is authorised (a user
/// entry), the same request is answered.
#[test]
fn a_locked_ports_unknown_source_is_neither_answered_nor_learnt() {
    let lab = Lab::new();
    lab.handles[0]
        .flags
        .set(PortFlags::default().with(PortFlags::LOCKED, true));
    let req = arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        mac(1),
        "198.18.60.1",
        "198.18.60.99",
    );
    let got = lab.send(0, &req);
    assert!(got.iter().all(Vec::is_empty), "dropped: {got:?}");
    assert_eq!(lab.answered(0), 0, "no answer to an unauthorised source");
    assert_eq!(
        lab.sw.neigh.lookup(0, "198.18.60.1".parse().unwrap()),
        None,
        "no binding from an unauthorised source"
    );
    // the positive control: authorised, the same request is answered and its binding learnt
    let now = lab.sw.now();
    lab.sw
        .fdb
        .insert_user(
            FdbKey::new(mac(1), 0),
            lab.handles[0].id,
            EntryKind::Static,
            true,
            now,
        )
        .unwrap();
    let got = lab.send(0, &req);
    assert_eq!(got[0].len(), 1, "answered once authorised");
    assert_eq!(lab.answered(0), 1);
    assert_eq!(
        lab.sw.neigh.lookup(0, "198.18.60.1".parse().unwrap()),
        Some(mac(1))
    );
}
