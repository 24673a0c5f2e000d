//! Rootless: multicast snooping through the whole dataplane, with in-memory ports. The frame
//! path asks the published view where a multicast frame goes; the control side (here called by
//! hand, as the control thread does) feeds the state machine the IGMP messages the frame path
//! queued. Checked: the flood before a querier exists; after one, registered traffic to member
//! and router ports only, unregistered to router ports only, 224.0.0.0/24 always flooded;
//! invalid IGMP dropped and counted; a group learned from the tunnel side of a `vxlan` port
//! sends the group's traffic into the tunnel and nowhere else.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::forwarding::{PortFlags, RxDrop, Settings};
use tapswitch::mcast::Family;
use tapswitch::port::mem::MemPort;
use tapswitch::port::vxlan::VxlanPort;
use tapswitch::vxlan::spec::VxlanSpec;
use tapswitch::vxlan::vtep::{Underlay, Vtep};
use tapswitch::vxlan::wire::ENCAP_HLEN;

const ROUTER: &str = "198.18.40.254";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn checksum(b: &[u8]) -> u16 {
    !smoltcp::wire::checksum::data(b)
}

/// The MAC of an IPv4 group.
fn group_mac(g: Ipv4Addr) -> [u8; 6] {
    let o = g.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// An IPv4 frame from `src` to `dst` (TTL 1), protocol `proto`, with `opts` (a multiple of 4
/// bytes) and `payload`; header checksum filled in.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = group_mac(dst).to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0x28, 0, src.octets()[3], 0x08, 0x00]);
    let hl = 20 + opts.len();
    let mut h = vec![
        0x40 | (hl / 4) as u8,
        0xc0,
        0,
        0,
        0,
        0,
        0x40,
        0,
        1,
        proto,
        0,
        0,
    ];
    h[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(opts);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

/// IGMPv1/v2 message (`0x11` query with max response `code` tenths of a second, `0x16`
/// report, `0x17` leave), as hosts send it (Router Alert).
fn igmp(src: Ipv4Addr, dst: Ipv4Addr, t: u8, code: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(&group.octets());
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 2, &[0x94, 4, 0, 0], &m)
}

/// A 60-byte UDP datagram to `group`.
fn udp(src: Ipv4Addr, group: Ipv4Addr) -> Vec<u8> {
    let mut u = vec![0x30, 0x39, 0x13, 0x89, 0, 26, 0, 0];
    u.extend_from_slice(&[0x55; 18]);
    ipv4(src, group, 17, &[], &u)
}

/// What a `vxlan` port sent into the underlay: (to, VXLAN header + frame).
#[derive(Default)]
struct Sent(Mutex<Vec<(IpAddr, Vec<u8>)>>);

struct Wire(Arc<Sent>);

impl Underlay for Wire {
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
        let mut p = head[8..].to_vec();
        p.extend_from_slice(frame);
        self.0 .0.lock().unwrap().push((to, p));
        Ok(())
    }
    fn path_mtu(&self, _to: Option<IpAddr>) -> Option<u32> {
        Some(1500)
    }
}

struct Lab {
    sw: Arc<Switch>,
    ports: Vec<Arc<MemPort>>,
    handles: Vec<Arc<PortHandle>>,
}

impl Lab {
    fn new(n: usize) -> Lab {
        let sw = Switch::new("mc", Settings::default(), 4096);
        let mut lab = Lab {
            sw,
            ports: Vec::new(),
            handles: Vec::new(),
        };
        for i in 0..n {
            let p = Arc::new(MemPort::new(1500));
            let h = lab
                .sw
                .add_port(&format!("h{i}"), Box::new(p.clone()), PortFlags::default())
                .unwrap();
            lab.ports.push(p);
            lab.handles.push(h);
        }
        lab.sw.mcast_work();
        lab
    }

    /// Port `i` receives `frame`; the frame path handles it, then the control side.
    fn send(&self, i: usize, frame: &[u8]) {
        self.ports[i].inject(frame);
        self.sw.pump();
        self.sw.mcast_work();
    }

    /// How many frames each port was sent since the last call.
    fn got(&self) -> Vec<usize> {
        self.ports.iter().map(|p| p.take_sent().len()).collect()
    }

    /// A query from a router on port `i` (max response 0.1 s), then waits until the switch
    /// treats a querier as present.
    fn querier_on(&self, i: usize) {
        self.send(
            i,
            &igmp(ip(ROUTER), ip("224.0.0.1"), 0x11, 1, ip("0.0.0.0")),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.sw.mcast_querier_exists(0, Family::V4) {
            assert!(
                Instant::now() < deadline,
                "no querier after a general query"
            );
            std::thread::sleep(Duration::from_millis(10));
            self.sw.mcast_work();
        }
        self.got();
    }
}

#[test]
fn before_a_querier_everything_floods_after_one_only_members_and_routers_get_it() {
    let lab = Lab::new(4);
    let g = ip("239.1.1.1");
    // h2 joins; no querier yet: the report and the group's traffic flood (Linux's rule)
    lab.send(2, &igmp(ip("198.18.40.3"), g, 0x16, 0, g));
    lab.got();
    lab.send(0, &udp(ip("198.18.40.1"), g));
    assert_eq!(lab.got(), [0, 1, 1, 1], "no querier: flood");
    // a router on h1 queries: from then on the MDB decides
    lab.querier_on(1);
    lab.send(0, &udp(ip("198.18.40.1"), g));
    assert_eq!(
        lab.got(),
        [0, 1, 1, 0],
        "registered: member h2 and router h1"
    );
    lab.send(0, &udp(ip("198.18.40.1"), ip("239.1.1.2")));
    assert_eq!(
        lab.got(),
        [0, 1, 0, 0],
        "unregistered: the router port only"
    );
    lab.send(0, &udp(ip("198.18.40.1"), ip("224.0.0.251")));
    assert_eq!(lab.got(), [0, 1, 1, 1], "224.0.0.0/24 always floods");
    // h3's IGMPv2 report goes to the router port only
    lab.send(3, &igmp(ip("198.18.40.4"), g, 0x16, 0, g));
    assert_eq!(
        lab.got(),
        [0, 1, 0, 0],
        "a v2 report reaches router ports only"
    );
    lab.send(0, &udp(ip("198.18.40.1"), g));
    assert_eq!(lab.got(), [0, 1, 1, 1]);
    let (d, f) = (
        lab.sw.mcast.delivered.load(Relaxed),
        lab.sw.mcast.flooded.load(Relaxed),
    );
    assert!(d >= 3 && f >= 2, "delivered {d}, flooded {f}");
}

#[test]
fn invalid_igmp_is_dropped_and_counted() {
    let lab = Lab::new(3);
    let g = ip("239.1.1.3");
    let mut bad = igmp(ip("198.18.40.3"), g, 0x16, 0, g);
    let n = bad.len();
    bad[n - 1] ^= 0xff; // IGMP checksum no longer matches
    lab.send(1, &bad);
    assert_eq!(lab.got(), [0, 0, 0], "a bad IGMP message goes nowhere");
    let c = &lab.handles[1].counters;
    assert_eq!(
        c.rx_dropped[RxDrop::McastInvalid.index()].load(Relaxed),
        1,
        "counted as mcast_invalid"
    );
    // and teaches nothing
    lab.querier_on(0);
    lab.send(2, &udp(ip("198.18.40.3"), g));
    assert_eq!(lab.got(), [1, 0, 0]);
}

#[test]
fn a_group_joined_behind_a_vxlan_port_pulls_the_traffic_into_the_tunnel() {
    let lab = Lab::new(3);
    let sent = Arc::new(Sent::default());
    let mut spec = VxlanSpec::new(100);
    for w in ["local=198.18.30.1", "remote=198.18.30.2"] {
        assert!(spec.apply(w).unwrap());
    }
    spec.check().unwrap();
    let vtep = Arc::new(Vtep::new(spec, 1450));
    let port = VxlanPort::new(vtep.clone(), Wire(sent.clone()), None);
    lab.sw
        .add_vxlan_port("vx100", vtep, Box::new(port), PortFlags::default(), false)
        .unwrap();
    lab.sw.mcast_work();
    lab.querier_on(1);
    sent.0.lock().unwrap().clear();
    // a host at the remote site joins: its report arrives through the tunnel
    let g = ip("239.1.1.4");
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
    payload.extend_from_slice(&igmp(ip("198.18.41.9"), g, 0x16, 0, g));
    lab.sw.vxlan_deliver(
        "198.18.30.1".parse().unwrap(),
        4789,
        "198.18.30.2".parse().unwrap(),
        &payload,
    );
    lab.sw.pump();
    lab.sw.mcast_work();
    assert_eq!(
        lab.got(),
        [0, 1, 0],
        "the remote report reaches the router port"
    );
    // the group's traffic from h0 goes into the tunnel (and to the router), not to h2
    lab.send(0, &udp(ip("198.18.40.1"), g));
    assert_eq!(lab.got(), [0, 1, 0]);
    let tunnel = std::mem::take(&mut *sent.0.lock().unwrap());
    assert_eq!(tunnel.len(), 1, "one copy to the remote VTEP");
    assert_eq!(tunnel[0].0, "198.18.30.2".parse::<IpAddr>().unwrap());
    assert_eq!(&tunnel[0].1[8..14], &group_mac(g));
    // a group nobody joined does not cross the tunnel
    lab.send(0, &udp(ip("198.18.40.1"), ip("239.1.1.5")));
    assert_eq!(lab.got(), [0, 1, 0]);
    assert!(sent.0.lock().unwrap().is_empty());
}

#[test]
fn joins_and_leaves_are_on_the_event_bus() {
    use tapswitch::events::Event;
    let lab = Lab::new(2);
    let mut rx = lab.sw.events.subscribe();
    let g = ip("239.1.1.7");
    lab.send(1, &igmp(ip("198.18.40.3"), g, 0x16, 0, g));
    // the member's port goes: its groups go with it
    lab.sw.remove_port("h1");
    lab.sw.mcast_work();
    let mdb: Vec<tapswitch::mcast::Event> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e {
            Event::Mdb(m) => Some(m),
            _ => None,
        })
        .collect();
    let port = lab.handles[1].id;
    assert!(
        matches!(
            mdb.first(),
            Some(tapswitch::mcast::Event::GroupAdded { port: p, is_static: false, .. }) if *p == port
        ),
        "{mdb:?}"
    );
    assert!(
        mdb.iter().any(
            |e| matches!(e, tapswitch::mcast::Event::GroupRemoved { port: p, .. } if *p == port)
        ),
        "{mdb:?}"
    );
}
