//! Rootless VXLAN scenarios through the whole dataplane: switches ("sites") with in-memory host
//! ports and `vxlan` ports whose underlay is an in-memory wire; the test carries each packet
//! from the wire to the hub of the site it is addressed to (`Switch::vxlan_deliver`), as the
//! kernel would. No runtime, no sockets, no sleeps.
//!
//! - encapsulation and decapsulation against the packets two Linux 6.18 VTEPs exchanged
//!   (`tests/data/linux-vxlan-underlay.pcap`, IPv4 and IPv6 underlays, VNIs 100, 200, 300);
//! - the flow hash behind the outer source port;
//! - the flood list (head-end replication), learning across the tunnel, moves between
//!   remotes and to a local port;
//! - strangers, bad headers, unknown VNIs: dropped, counted, never learned;
//! - the tunnel MTU, and GSO frames segmented before they are encapsulated;
//! - a batch of TCP segments coalesced into one GSO frame for an offload port (and cut again
//!   for a plain one).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::{EntryKind, FdbKey};
use tapswitch::forwarding::{PortFlags, Settings, TxDrop};
use tapswitch::offload::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, VNET_HDR_LEN};
use tapswitch::port::mem::MemPort;
use tapswitch::port::vxlan::VxlanPort;
use tapswitch::vxlan::spec::VxlanSpec;
use tapswitch::vxlan::vtep::{Underlay, Vtep, VxlanDrop};
use tapswitch::vxlan::wire::{self, ENCAP_HLEN};
use tapswitch::wire::{build_frame, MacAddr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x5e, 0x20, 0x00, n])
}

/// Packets a site's VTEPs sent, in order: (from, to, UDP header + VXLAN header + frame).
#[derive(Default)]
struct Wire {
    sent: Mutex<Vec<(IpAddr, IpAddr, Vec<u8>)>>,
}

/// One VTEP's end of the wire.
struct WireEnd {
    wire: Arc<Wire>,
    local: IpAddr,
    path_mtu: u32,
}

impl Underlay for WireEnd {
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
        let mut p = head.to_vec();
        p.extend_from_slice(frame);
        self.wire.sent.lock().unwrap().push((self.local, to, p));
        Ok(())
    }
    fn path_mtu(&self, _to: Option<IpAddr>) -> Option<u32> {
        Some(self.path_mtu)
    }
}

/// A switch with host ports and one or more `vxlan` ports.
struct Site {
    sw: Arc<Switch>,
    hosts: Vec<Arc<MemPort>>,
    host_handles: Vec<Arc<PortHandle>>,
    vx: Vec<(Arc<PortHandle>, Arc<Vtep>)>,
}

impl Site {
    fn new(hosts: usize) -> Site {
        let sw = Switch::new("site", Settings::default(), 4096);
        let mut s = Site {
            sw,
            hosts: Vec::new(),
            host_handles: Vec::new(),
            vx: Vec::new(),
        };
        for i in 0..hosts {
            s.add_host(MemPort::new(1500), &format!("h{i}"));
        }
        s
    }

    fn add_host(&mut self, p: MemPort, name: &str) {
        let p = Arc::new(p);
        let h = self
            .sw
            .add_port(name, Box::new(p.clone()), PortFlags::default())
            .unwrap();
        self.hosts.push(p);
        self.host_handles.push(h);
    }

    /// Adds `vxlan:VNI` with the spec words (which include `local=`).
    fn vxlan(&mut self, wire: &Arc<Wire>, vni: u32, words: &[&str], path_mtu: u32) -> usize {
        let mut spec = VxlanSpec::new(vni);
        for w in words {
            assert!(spec.apply(w).unwrap(), "{w}");
        }
        spec.check().unwrap();
        let local = spec.local.unwrap();
        let vtep = Arc::new(Vtep::new(spec, 1450));
        let end = WireEnd {
            wire: wire.clone(),
            local,
            path_mtu,
        };
        let port = VxlanPort::new(vtep.clone(), end, None);
        let name = format!("vx{vni}");
        let h = self
            .sw
            .add_vxlan_port(
                &name,
                vtep.clone(),
                Box::new(port),
                PortFlags::default(),
                false,
            )
            .unwrap();
        self.vx.push((h, vtep));
        self.vx.len() - 1
    }

    fn vtep(&self, i: usize) -> &Arc<Vtep> {
        &self.vx[i].1
    }

    fn vx_handle(&self, i: usize) -> &Arc<PortHandle> {
        &self.vx[i].0
    }

    /// Host `i` sends a frame; the switch handles it.
    fn send(&self, i: usize, frame: &[u8]) {
        self.hosts[i].inject(frame);
        self.sw.pump();
    }

    fn fdb_port(&self, m: MacAddr) -> Option<tapswitch::types::PortId> {
        self.sw.fdb.port_of(&FdbKey::new(m, 0))
    }
}

/// Sites on one wire, by local address: carries every packet to the hub it is addressed to.
struct Net {
    wire: Arc<Wire>,
    sites: Vec<Site>,
    /// Every packet carried: (from, to, UDP datagram).
    log: Vec<(IpAddr, IpAddr, Vec<u8>)>,
}

impl Net {
    fn new() -> Net {
        Net {
            wire: Arc::new(Wire::default()),
            sites: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Delivers what is on the wire until nothing is left; returns how many packets went.
    fn run(&mut self) -> usize {
        let mut n = 0;
        loop {
            let batch: Vec<_> = std::mem::take(&mut *self.wire.sent.lock().unwrap());
            if batch.is_empty() {
                return n;
            }
            for (from, to, dgram) in batch {
                n += 1;
                // The UDP header the switch wrote: to 4789, its length, checksum 0.
                assert_eq!(&dgram[2..4], &4789u16.to_be_bytes());
                assert_eq!(
                    u16::from_be_bytes([dgram[4], dgram[5]]) as usize,
                    dgram.len()
                );
                assert_eq!(&dgram[6..8], &[0, 0]);
                for s in &self.sites {
                    if s.vx.iter().any(|(_, v)| v.spec.local == Some(to)) {
                        s.sw.vxlan_deliver(to, 4789, from, &dgram[8..]);
                        s.sw.pump();
                    }
                }
                self.log.push((from, to, dgram));
            }
        }
    }
}

fn arp_request(src: MacAddr) -> Vec<u8> {
    build_frame(MacAddr::BROADCAST, src, 0x0806, &[0x11; 46])
}

fn unicast(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    build_frame(dst, src, 0x0800, &[0x22; 46])
}

/// Two sites, two hosts each, VNI 100 over 198.18.30.1 <-> 198.18.30.2.
fn two_sites(extra: &[&str]) -> Net {
    let mut net = Net::new();
    for (me, peer) in [
        ("198.18.30.1", "198.18.30.2"),
        ("198.18.30.2", "198.18.30.1"),
    ] {
        let mut s = Site::new(2);
        let local = format!("local={me}");
        let remote = format!("remote={peer}");
        let mut words = vec![local.as_str(), remote.as_str()];
        words.extend_from_slice(extra);
        s.vxlan(&net.wire, 100, &words, 1500);
        net.sites.push(s);
    }
    net
}

#[test]
fn two_sites_learn_across_the_tunnel() {
    let mut net = two_sites(&[]);
    let (a1, b1) = (mac(1), mac(11));
    // A's host 0 broadcasts: its other host and both hosts of B get it, once each.
    net.sites[0].send(0, &arp_request(a1));
    assert_eq!(net.run(), 1, "one packet to the one remote");
    assert_eq!(net.sites[0].hosts[1].take_sent().len(), 1);
    for h in &net.sites[1].hosts {
        assert_eq!(h.take_sent(), vec![arp_request(a1)], "inner frame intact");
    }
    // B learnt a1 behind A, in its own table, and on vx100 in the bridge's
    let b = &net.sites[1];
    assert_eq!(b.fdb_port(a1), Some(b.vx_handle(0).id));
    let rec = b.vtep(0).snapshot(b.sw.now());
    assert!(
        rec.iter()
            .any(|r| r.mac == a1 && r.dst == ip("198.18.30.1") && r.kind == EntryKind::Learned),
        "{rec:?}"
    );
    // the reply is known unicast at B and at A: one packet, to host 0 of A only
    net.sites[1].send(0, &unicast(a1, b1));
    assert_eq!(net.run(), 1);
    assert_eq!(net.sites[0].hosts[0].take_sent(), vec![unicast(a1, b1)]);
    assert!(net.sites[0].hosts[1].take_sent().is_empty());
    assert!(net.sites[1].hosts[1].take_sent().is_empty());
    // now both ends know: a1 -> b1 is one packet too, no flood
    net.sites[0].send(0, &unicast(b1, a1));
    assert_eq!(net.run(), 1);
    assert_eq!(net.sites[1].hosts[0].take_sent(), vec![unicast(b1, a1)]);
    assert!(net.sites[1].hosts[1].take_sent().is_empty());
    let r = &net.sites[0].vtep(0).remotes();
    let r = r.get(&ip("198.18.30.2")).unwrap();
    assert_eq!(
        (r.tx_frames.load(Relaxed), r.rx_frames.load(Relaxed)),
        (2, 1)
    );
}

#[test]
fn the_flood_list_gets_every_broadcast_and_unknown_unicast() {
    let mut net = Net::new();
    let mut a = Site::new(1);
    a.vxlan(
        &net.wire,
        7,
        &[
            "local=198.18.31.1",
            "remote=198.18.31.2",
            "remote=198.18.31.3",
        ],
        1500,
    );
    net.sites.push(a);
    // a third remote added at run time, as `bridge fdb append 00:00:00:00:00:00 ... dst IP`
    net.sites[0]
        .vtep(0)
        .append(MacAddr::ZERO, ip("198.18.31.4"))
        .unwrap();
    net.sites[0].send(0, &arp_request(mac(1)));
    net.sites[0].send(0, &unicast(mac(9), mac(1)));
    net.sites[0].send(
        0,
        // (not IP: snooping lets it flood; an invalid IP packet to a group it would drop)
        &build_frame(MacAddr([1, 0, 0x5e, 0, 0, 9]), mac(1), 0x88b5, &[0; 46]),
    );
    net.run();
    let to: Vec<IpAddr> = net.log.iter().map(|l| l.1).collect();
    let want = ["198.18.31.2", "198.18.31.3", "198.18.31.4"].map(ip);
    assert_eq!(
        to,
        [want, want, want].concat(),
        "head-end replication, in order"
    );
    // one copy per remote, byte for byte the same
    for i in [0, 3, 6] {
        assert_eq!(net.log[i].2, net.log[i + 1].2);
        assert_eq!(net.log[i].2, net.log[i + 2].2);
    }
    // taking a remote out of the flood list
    assert_eq!(
        net.sites[0]
            .vtep(0)
            .remove(MacAddr::ZERO, Some(ip("198.18.31.3"))),
        1
    );
    net.log.clear();
    net.sites[0].send(0, &arp_request(mac(1)));
    net.run();
    assert_eq!(net.log.len(), 2);
    // an empty flood list: nowhere to send, counted
    let v = net.sites[0].vtep(0).clone();
    v.remove(MacAddr::ZERO, None);
    net.sites[0].send(0, &arp_request(mac(1)));
    assert_eq!(net.run(), 0);
    let c = &net.sites[0].vx_handle(0).counters;
    assert_eq!(c.tx_dropped[TxDrop::NoRemote.index()].load(Relaxed), 1);
}

#[test]
fn macs_move_between_remotes_and_to_local_ports() {
    let mut net = Net::new();
    for me in 1..=3u8 {
        let mut s = Site::new(1);
        let local = format!("local=198.18.32.{me}");
        let r: Vec<String> = (1..=3u8)
            .filter(|p| *p != me)
            .map(|p| format!("remote=198.18.32.{p}"))
            .collect();
        let mut words = vec![local.as_str()];
        words.extend(r.iter().map(String::as_str));
        s.vxlan(&net.wire, 5, &words, 1500);
        net.sites.push(s);
    }
    let x = mac(42);
    // x talks from site B (2): A learns x behind 198.18.32.2
    net.sites[1].send(0, &arp_request(x));
    net.run();
    let a = &net.sites[0];
    assert_eq!(a.vtep(0).destination(&x).unwrap().ip, ip("198.18.32.2"));
    // x moves to site C (3): the entry moves with its next frame
    net.sites[2].send(0, &arp_request(x));
    net.run();
    let a = &net.sites[0];
    assert_eq!(a.vtep(0).destination(&x).unwrap().ip, ip("198.18.32.3"));
    assert_eq!(a.vtep(0).stats.moved_total.load(Relaxed), 1);
    // unicast to x from A goes to C only
    net.log.clear();
    net.sites[0].send(0, &unicast(x, mac(1)));
    net.run();
    assert_eq!(net.log.len(), 1);
    assert_eq!(net.log[0].1, ip("198.18.32.3"));
    // x shows up on A's own host port: the bridge entry moves there, and frames to x stay
    // local (nothing on the wire)
    net.sites[0].add_host(MemPort::new(1500), "hx");
    net.sites[0].send(1, &arp_request(x));
    net.log.clear();
    net.run();
    let a = &net.sites[0];
    assert_eq!(a.fdb_port(x), Some(a.host_handles[1].id));
    net.log.clear();
    net.sites[0].send(0, &unicast(x, mac(1)));
    assert_eq!(net.run(), 0);
    assert_eq!(
        net.sites[0].hosts[1].take_sent().last(),
        Some(&unicast(x, mac(1)))
    );
}

#[test]
fn strangers_bad_headers_and_unknown_vnis_are_counted_never_learned() {
    let net = two_sites(&[]);
    let b = &net.sites[1];
    let local = ip("198.18.30.2");
    let frame = arp_request(mac(66));
    let mut good = vec![0u8; 8];
    wire::write_header(100, &mut good);
    good.extend_from_slice(&frame);
    // a stranger: not in the flood list, not a table destination, no accept=
    b.sw.vxlan_deliver(local, 4789, ip("198.18.30.99"), &good);
    // a bad header from the real remote
    let mut bad = good.clone();
    bad[1] = 1;
    b.sw.vxlan_deliver(local, 4789, ip("198.18.30.1"), &bad);
    // an unknown VNI and a runt
    let mut other = vec![0u8; 8];
    wire::write_header(101, &mut other);
    other.extend_from_slice(&frame);
    b.sw.vxlan_deliver(local, 4789, ip("198.18.30.1"), &other);
    b.sw.vxlan_deliver(local, 4789, ip("198.18.30.1"), &good[..7]);
    b.sw.pump();
    for h in &b.hosts {
        assert!(h.take_sent().is_empty(), "nothing reached a host");
    }
    assert_eq!(b.fdb_port(mac(66)), None, "never learned by the bridge");
    assert!(b.vtep(0).destination(&mac(66)).is_none(), "nor by the VTEP");
    let d = &b.vtep(0).stats.rx_dropped;
    assert_eq!(d.get(VxlanDrop::Stranger), 1);
    assert_eq!(d.get(VxlanDrop::ReservedFlags), 1);
    let hub = &b.sw.vxlan_hubs()[0];
    assert_eq!(hub.dropped.get(VxlanDrop::UnknownVni), 1);
    assert_eq!(hub.dropped.get(VxlanDrop::Short), 1);
    assert_eq!(b.vx_handle(0).counters.rx_frames.load(Relaxed), 0);
    // the same packet from the real remote passes
    b.sw.vxlan_deliver(local, 4789, ip("198.18.30.1"), &good);
    b.sw.pump();
    assert_eq!(b.hosts[0].take_sent(), vec![frame]);
    // accept= widens who may send
    let mut net = two_sites(&["accept=203.0.113.0/24"]);
    let b = &mut net.sites[1];
    b.sw.vxlan_deliver(local, 4789, ip("203.0.113.5"), &good);
    b.sw.pump();
    assert_eq!(b.hosts[0].take_sent().len(), 1);
    assert_eq!(
        b.vtep(0).destination(&mac(66)).unwrap().ip,
        ip("203.0.113.5")
    );
}

#[test]
fn vnis_share_one_socket() {
    let wire = Arc::new(Wire::default());
    let mut s = Site::new(1);
    s.vxlan(
        &wire,
        100,
        &["local=198.18.33.1", "remote=198.18.33.2"],
        1500,
    );
    s.vxlan(
        &wire,
        200,
        &["local=198.18.33.1", "remote=198.18.33.2"],
        1500,
    );
    assert_eq!(s.sw.vxlan_hubs().len(), 1, "one hub for both VNIs");
    for (vni, n) in [(100u32, 1u8), (200, 2), (200, 3)] {
        let mut p = vec![0u8; 8];
        wire::write_header(vni, &mut p);
        p.extend_from_slice(&arp_request(mac(n)));
        s.sw.vxlan_deliver(ip("198.18.33.1"), 4789, ip("198.18.33.2"), &p);
    }
    assert_eq!(s.vx_handle(0).counters.rx_frames.load(Relaxed), 1);
    assert_eq!(s.vx_handle(1).counters.rx_frames.load(Relaxed), 2);
    assert_eq!(s.vtep(1).learned_count(), 2);
    // a third port may not take a VNI the hub serves
    let spec = {
        let mut v = VxlanSpec::new(200);
        v.apply("local=198.18.33.1").unwrap();
        v
    };
    let vtep = Arc::new(Vtep::new(spec, 1450));
    let end = WireEnd {
        wire: wire.clone(),
        local: ip("198.18.33.1"),
        path_mtu: 1500,
    };
    let port = VxlanPort::new(vtep.clone(), end, None);
    let e =
        s.sw.add_vxlan_port("again", vtep, Box::new(port), PortFlags::default(), false)
            .unwrap_err();
    assert!(e.to_string().contains("VNI 200"), "{e}");
    // once a port is detached, its VNI is free again and the tick forgets it
    s.sw.remove_port("vx100");
    s.sw.tick();
    let members = s.sw.vxlan_hubs()[0].members();
    assert_eq!(members.keys().copied().collect::<Vec<_>>(), [200]);
    s.sw.remove_port("vx200");
    s.sw.tick();
    assert!(s.sw.vxlan_hubs().is_empty(), "an unused hub closes");
}

#[test]
fn source_ports_follow_the_inner_flow() {
    let mut net = two_sites(&[]);
    let tcp = |sport: u16, dport: u16, src: MacAddr, dst: MacAddr, fwd: bool| {
        let mut ip4 = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
        let (a, b) = ([198, 18, 40, 1], [198, 18, 40, 2]);
        let (s_ip, d_ip) = if fwd { (a, b) } else { (b, a) };
        ip4.extend_from_slice(&s_ip);
        ip4.extend_from_slice(&d_ip);
        ip4.extend_from_slice(&sport.to_be_bytes());
        ip4.extend_from_slice(&dport.to_be_bytes());
        ip4.extend_from_slice(&[0; 16]);
        build_frame(dst, src, 0x0800, &ip4)
    };
    let (a1, b1) = (mac(1), mac(11));
    let mut ports = HashMap::new();
    for flow in 0..64u16 {
        net.sites[0].send(0, &tcp(40000 + flow, 80, a1, b1, true));
        net.sites[1].send(0, &tcp(80, 40000 + flow, b1, a1, false));
        net.log.clear();
        net.run();
        let sp: Vec<u16> = net
            .log
            .iter()
            .map(|l| u16::from_be_bytes([l.2[0], l.2[1]]))
            .collect();
        assert_eq!(sp.len(), 2);
        assert_eq!(
            sp[0], sp[1],
            "both directions of a flow share the source port"
        );
        assert!((32768..60999).contains(&sp[0]));
        ports.insert(sp[0], flow);
    }
    // 64 flows over 28,231 ports: nearly all distinct (a hash, so ECMP spreads them)
    assert!(
        ports.len() >= 60,
        "{} distinct ports for 64 flows",
        ports.len()
    );
    // and a flow keeps its port: the same frame again
    net.log.clear();
    net.sites[0].send(0, &tcp(40000, 80, a1, b1, true));
    net.sites[0].send(0, &tcp(40000, 80, a1, b1, true));
    net.run();
    assert_eq!(net.log[0].2[..2], net.log[1].2[..2]);
}

/// A TCP/IPv4 GSO frame (virtio_net_hdr + frame) of `payload` bytes cut at `mss`.
fn gso_frame(dst: MacAddr, src: MacAddr, mss: u16, payload: usize) -> Vec<u8> {
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut h = [0u8; VNET_HDR_LEN];
    hdr.write(&mut h);
    let mut ip4 = [0u8; 20];
    ip4[0] = 0x45;
    ip4[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    ip4[8] = 64;
    ip4[9] = 6;
    ip4[12..20].copy_from_slice(&[198, 18, 40, 1, 198, 18, 40, 2]);
    let mut tcp = [0u8; 20];
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    let mut body = ip4.to_vec();
    body.extend_from_slice(&tcp);
    body.extend((0..payload).map(|i| i as u8));
    let mut out = h.to_vec();
    out.extend_from_slice(&build_frame(dst, src, 0x0800, &body));
    out
}

#[test]
fn the_tunnel_mtu_drops_oversize_frames_and_gso_is_segmented_first() {
    let mut net = Net::new();
    let mut a = Site::new(0);
    a.add_host(MemPort::new(1500).with_vnet_hdr(), "h0");
    // an underlay of 1400: the tunnel carries frames of MTU 1350
    a.vxlan(
        &net.wire,
        9,
        &["local=198.18.34.1", "remote=198.18.34.2"],
        1400,
    );
    net.sites.push(a);
    assert_eq!(net.sites[0].vx_handle(0).port.mtu(), 1350);
    let plain = |len: usize| {
        let mut p = vec![0u8; VNET_HDR_LEN];
        p.extend_from_slice(&build_frame(
            MacAddr::BROADCAST,
            mac(1),
            0x0800,
            &vec![0; len],
        ));
        p
    };
    net.sites[0].send(0, &plain(1350)); // 1364 bytes: MTU + 14, fits
    net.sites[0].send(0, &plain(1369)); // MTU + 19: over MTU + 18
    assert_eq!(net.run(), 1);
    let vx = net.sites[0].vx_handle(0).clone();
    let c = &vx.counters;
    assert_eq!(c.tx_dropped[TxDrop::Mtu.index()].load(Relaxed), 1);
    // a 64 KiB GSO frame with an MSS that fits: segmented, every segment encapsulated
    net.log.clear();
    net.sites[0].send(0, &gso_frame(MacAddr::BROADCAST, mac(1), 1300, 60_000));
    let n = net.run();
    assert_eq!(n, 60_000usize.div_ceil(1300));
    let mut payload = Vec::new();
    for (_, _, d) in &net.log {
        assert!(
            d.len() - 16 <= 1350 + 14,
            "segment of {} bytes",
            d.len() - 16
        );
        payload.extend_from_slice(&d[16 + 54..]);
    }
    assert_eq!(payload, (0..60_000).map(|i| i as u8).collect::<Vec<_>>());
    // an MSS the tunnel cannot carry: every segment is over the MTU, dropped and counted
    let before = c.tx_dropped[TxDrop::Mtu.index()].load(Relaxed);
    net.sites[0].send(0, &gso_frame(MacAddr::BROADCAST, mac(1), 1448, 14_480));
    assert_eq!(net.run(), 0);
    assert_eq!(c.tx_dropped[TxDrop::Mtu.index()].load(Relaxed) - before, 10);
}

// ---------------------------------------------------------------------------------------------
// Vectors from a Linux capture

/// One VXLAN packet of the capture: outer source and destination, UDP header and payload.
struct Captured {
    src: IpAddr,
    dst: IpAddr,
    udp: Vec<u8>,
}

/// The VXLAN packets of `tests/data/linux-vxlan-underlay.pcap` (classic pcap, Ethernet).
fn linux_capture() -> Vec<Captured> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/linux-vxlan-underlay.pcap"
    );
    let d = std::fs::read(path).unwrap();
    assert_eq!(&d[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap, µs");
    assert_eq!(
        u32::from_le_bytes([d[20], d[21], d[22], d[23]]),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= d.len() {
        let cap = u32::from_le_bytes([d[off + 8], d[off + 9], d[off + 10], d[off + 11]]) as usize;
        let pkt = &d[off + 16..off + 16 + cap];
        off += 16 + cap;
        let (src, dst, l4) = match u16::from_be_bytes([pkt[12], pkt[13]]) {
            0x0800 => {
                let ihl = usize::from(pkt[14] & 0x0f) * 4;
                assert_eq!(pkt[23], 17, "UDP");
                let s: [u8; 4] = pkt[26..30].try_into().unwrap();
                let t: [u8; 4] = pkt[30..34].try_into().unwrap();
                (IpAddr::from(s), IpAddr::from(t), &pkt[14 + ihl..])
            }
            0x86dd => {
                assert_eq!(pkt[20], 17, "UDP");
                let s: [u8; 16] = pkt[22..38].try_into().unwrap();
                let t: [u8; 16] = pkt[38..54].try_into().unwrap();
                (IpAddr::from(s), IpAddr::from(t), &pkt[54..])
            }
            other => panic!("ethertype {other:#x}"),
        };
        assert_eq!(&l4[2..4], &4789u16.to_be_bytes());
        let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        out.push(Captured {
            src,
            dst,
            udp: l4[..ulen].to_vec(),
        });
    }
    out
}

#[test]
fn linux_capture_decapsulates_and_encapsulates_byte_for_byte() {
    let cap = linux_capture();
    assert!(cap.len() >= 30, "{} packets", cap.len());
    // Both Linux VTEPs as tapswitch sites: per VNI and end, a switch with one host. VNIs 100
    // and 300 share the IPv4 address (one hub each end), 200 is over IPv6.
    let wire = Arc::new(Wire::default());
    let ends = [
        (100, "198.18.200.1", "198.18.200.2"),
        (200, "2001:2::1", "2001:2::2"),
        (300, "198.18.200.1", "198.18.200.2"),
    ];
    let mut sites: Vec<(u32, IpAddr, Site)> = Vec::new();
    for (vni, a, b) in ends {
        for (me, peer) in [(a, b), (b, a)] {
            let mut s = Site::new(1);
            let l = format!("local={me}");
            let r = format!("remote={peer}");
            s.vxlan(&wire, vni, &[l.as_str(), r.as_str()], 1500);
            sites.push((vni, ip(me), s));
        }
    }
    let mut seen = HashMap::new();
    for c in &cap {
        let (vni, inner) = wire::parse(&c.udp[8..]).unwrap();
        *seen.entry(vni).or_insert(0) += 1;
        // Over IPv4 the capture has Linux's computed checksum (udpcsum) for VNI 100 and 0 for
        // VNI 300 (noudpcsum); over IPv6 a computed one. Both are accepted.
        let csum = u16::from_be_bytes([c.udp[6], c.udp[7]]);
        assert_eq!(csum == 0, vni == 300, "VNI {vni}: checksum {csum:#06x}");
        // Decapsulation: the receiving site's host gets the inner frame byte for byte.
        let (_, _, rx) = sites
            .iter()
            .find(|(v, l, _)| *v == vni && *l == c.dst)
            .unwrap();
        rx.sw.vxlan_deliver(c.dst, 4789, c.src, &c.udp[8..]);
        rx.sw.pump();
        assert_eq!(rx.hosts[0].take_sent(), vec![inner.to_vec()], "VNI {vni}");
        // Encapsulation: the sending site's VTEP sends the same inner frame as the same VXLAN
        // payload, in a UDP datagram of the same length to port 4789, with checksum 0 (the
        // kernel fills it in over IPv6) and a source port from the flow hash.
        let (_, _, tx) = sites
            .iter()
            .find(|(v, l, _)| *v == vni && *l == c.src)
            .unwrap();
        tx.vtep(0)
            .transmit(
                inner,
                &WireEnd {
                    wire: wire.clone(),
                    local: c.src,
                    path_mtu: 1500,
                },
            )
            .unwrap();
        let sent = std::mem::take(&mut *wire.sent.lock().unwrap());
        assert_eq!(sent.len(), 1);
        let (from, to, ours) = &sent[0];
        assert_eq!((*from, *to), (c.src, c.dst));
        assert_eq!(
            ours[8..],
            c.udp[8..],
            "VXLAN header and inner frame as Linux's"
        );
        assert_eq!(
            ours[2..6],
            c.udp[2..6],
            "destination port and length as Linux's"
        );
        assert_eq!(ours[6..8], [0, 0]);
        let sport = wire::src_port(
            wire::flow_hash(inner),
            wire::DEFAULT_SRC_PORT_MIN,
            wire::DEFAULT_SRC_PORT_MAX,
        );
        assert_eq!(ours[..2], sport.to_be_bytes());
    }
    assert_eq!(seen.len(), 3, "VNIs 100, 200 and 300: {seen:?}");
    // every site learnt its peer's inner MACs (02:00:00:00:64:0X and friends)
    for (vni, local, s) in &sites {
        let learned = s.vtep(0).learned_count();
        assert!(learned >= 1, "VNI {vni} at {local}: nothing learned");
    }
}

/// A TCP/IPv4 segment from `src` to `dst` with valid checksums.
fn tcp_segment(dst: MacAddr, src: MacAddr, seq: u32, payload: &[u8]) -> Vec<u8> {
    use tapswitch::offload::{csum_add, csum_fold};
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 40, 1, 198, 18, 40, 2]);
    let c = !csum_fold(csum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = vec![0x9c, 0x40, 0, 80];
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let mut ps = csum_add(0, &ip[12..20]) + 6 + tcp.len() as u32;
    ps = csum_add(ps, &tcp);
    let c = !csum_fold(ps);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&tcp);
    build_frame(dst, src, 0x0800, &ip)
}

#[test]
fn a_batch_of_tcp_segments_reaches_an_offload_port_as_one_gso_frame() {
    let wire = Arc::new(Wire::default());
    let mut s = Site::new(0);
    s.add_host(MemPort::new(1500).with_vnet_hdr(), "fast");
    s.add_host(MemPort::new(1500), "plain");
    s.vxlan(
        &wire,
        100,
        &["local=198.18.35.1", "remote=198.18.35.2"],
        1500,
    );
    let data: Vec<u8> = (0..14_480u32).map(|i| (i % 251) as u8).collect();
    let segs: Vec<Vec<u8>> = data
        .chunks(1448)
        .enumerate()
        .map(|(i, c)| tcp_segment(MacAddr::BROADCAST, mac(77), 5000 + (i * 1448) as u32, c))
        .collect();
    let pkts: Vec<Vec<u8>> = segs
        .iter()
        .map(|f| {
            let mut p = vec![0u8; 8];
            wire::write_header(100, &mut p);
            p.extend_from_slice(f);
            p
        })
        .collect();
    let batch: Vec<(IpAddr, &[u8])> = pkts
        .iter()
        .map(|p| (ip("198.18.35.2"), p.as_slice()))
        .collect();
    s.sw.vxlan_deliver_batch(ip("198.18.35.1"), 4789, &batch);
    // the offload port: one GSO frame, its payload the ten segments' in order
    let got = s.hosts[0].take_sent();
    assert_eq!(got.len(), 1, "coalesced");
    let h = VnetHdr::parse(&got[0]).unwrap();
    assert_eq!((h.gso_type, h.gso_size), (GSO_TCPV4, 1448));
    assert_eq!(got[0][VNET_HDR_LEN + 54..], data[..]);
    // the plain port: the ten segments again
    let plain = s.hosts[1].take_sent();
    assert_eq!(plain.len(), 10);
    for (p, o) in plain.iter().zip(&segs) {
        assert_eq!(p[34..], o[34..], "TCP header and payload as sent");
    }
    // counted once as a received frame; every packet counted by its remote
    let vx = s.vx_handle(0);
    assert_eq!(vx.counters.rx_frames.load(Relaxed), 1);
    let r = s.vtep(0).remotes();
    assert_eq!(
        r.get(&ip("198.18.35.2")).unwrap().rx_frames.load(Relaxed),
        10
    );
}

// ---------------------------------------------------------------------------------------------
// Inner checksums a sender left partial (a Linux or OVS VTEP whose host sits on a veth with TX
// checksum offload: the TCP/UDP checksum field holds only the pseudo-header sum)

/// What the inner L4 checksum holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Csum {
    /// The folded pseudo-header sum, as Linux leaves it under CHECKSUM_PARTIAL.
    Partial,
    /// A plainly wrong value (neither complete nor partial).
    Wrong,
}

/// Ones' complement sum of `b` (16-bit big-endian words), folded.
fn sum16(mut acc: u64, b: &[u8]) -> u16 {
    for c in b.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The L3 offset, L4 offset and protocol of an untagged inner frame.
fn layout(f: &[u8]) -> (usize, usize, u8, bool) {
    if f[12..14] == [0x86, 0xdd] {
        (14, 54, f[20], true)
    } else {
        (14, 34, f[23], false)
    }
}

fn pseudo_sum(f: &[u8]) -> u16 {
    let (l3, l4, proto, v6) = layout(f);
    let addrs = if v6 {
        &f[l3 + 8..l3 + 40]
    } else {
        &f[l3 + 12..l3 + 20]
    };
    sum16(u64::from(proto) + (f.len() - l4) as u64, addrs)
}

/// Whether the inner frame's TCP/UDP checksum verifies.
fn l4_valid(f: &[u8]) -> bool {
    let (_, l4, _, _) = layout(f);
    sum16(u64::from(pseudo_sum(f)), &f[l4..]) == 0xffff
}

/// Where the L4 checksum field of an inner frame is.
fn csum_at(f: &[u8]) -> usize {
    let (_, l4, proto, _) = layout(f);
    l4 + if proto == 6 { 16 } else { 6 }
}

/// An inner frame from `src` (broadcast: every host gets it): TCP (`proto` 6, with `flags`) or
/// UDP (17) over IPv4 or IPv6, `payload` after the L4 header, its checksum as `csum` says.
fn inner(v6: bool, proto: u8, seq: u32, payload: &[u8], flags: u8, csum: Csum) -> Vec<u8> {
    let l4_hlen = if proto == 6 { 20 } else { 8 };
    let l4_len = l4_hlen + payload.len();
    let mut ip = if v6 {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(l4_len as u16).to_be_bytes());
        ip.extend_from_slice(&[proto, 64]);
        ip.extend_from_slice(&[0x20, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0x20, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip
    } else {
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[
            0, 1, 0x40, 0, 64, proto, 0, 0, 198, 18, 40, 1, 198, 18, 40, 2,
        ]);
        let c = !sum16(0, &ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip
    };
    let mut l4 = vec![0x9c, 0x40, 0x00, 0x50];
    if proto == 6 {
        l4.extend_from_slice(&seq.to_be_bytes());
        l4.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&(l4_len as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    ip.extend_from_slice(&l4);
    let mut f = build_frame(
        MacAddr::BROADCAST,
        mac(77),
        if v6 { 0x86dd } else { 0x0800 },
        &ip,
    );
    let at = csum_at(&f);
    let ps = pseudo_sum(&f);
    let v = match csum {
        Csum::Partial => ps,
        Csum::Wrong => ps ^ 0x5a5a,
    };
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    assert!(!l4_valid(&f), "built {csum:?}, not valid");
    f
}

/// A site with an offload host ("fast"), a plain host ("plain") and VNI 100 from 198.18.36.2.
fn offload_and_plain_site() -> Site {
    let wire = Arc::new(Wire::default());
    let mut s = Site::new(0);
    s.add_host(MemPort::new(1500).with_vnet_hdr(), "fast");
    s.add_host(MemPort::new(1500), "plain");
    s.vxlan(
        &wire,
        100,
        &["local=198.18.36.1", "remote=198.18.36.2"],
        1500,
    );
    s
}

fn vxlan_packets(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut p = vec![0u8; 8];
            wire::write_header(100, &mut p);
            p.extend_from_slice(f);
            p
        })
        .collect()
}

fn deliver(s: &Site, frames: &[Vec<u8>]) {
    let pkts = vxlan_packets(frames);
    let batch: Vec<(IpAddr, &[u8])> = pkts
        .iter()
        .map(|p| (ip("198.18.36.2"), p.as_slice()))
        .collect();
    s.sw.vxlan_deliver_batch(ip("198.18.36.1"), 4789, &batch);
}

#[test]
fn a_partial_inner_checksum_goes_on_as_needs_csum_or_completed() {
    use tapswitch::offload::{finish, SEG_BUF};
    let s = offload_and_plain_site();
    for v6 in [false, true] {
        for (what, proto, payload, flags) in [
            (
                "TCP with data (through the coalescing path)",
                6u8,
                1000usize,
                0x18u8,
            ),
            ("a pure TCP ACK", 6, 0, 0x10),
            ("UDP", 17, 300, 0),
            ("an empty UDP datagram", 17, 0, 0),
        ] {
            let what = format!("{what}, IPv6 {v6}");
            let data: Vec<u8> = (0..payload).map(|i| (i * 3 + 1) as u8).collect();
            let f = inner(v6, proto, 77, &data, flags, Csum::Partial);
            deliver(&s, std::slice::from_ref(&f));
            // the offload port: the frame as it came, with NEEDS_CSUM where its checksum is
            let fast = s.hosts[0].take_sent();
            assert_eq!(fast.len(), 1, "{what}");
            let h = VnetHdr::parse(&fast[0]).unwrap();
            let (_, l4, _, _) = layout(&f);
            assert_eq!(
                (h.flags, h.gso_type, h.csum_start as usize, h.csum_offset),
                (F_NEEDS_CSUM, 0, l4, if proto == 6 { 16 } else { 6 }),
                "{what}"
            );
            assert_eq!(&fast[0][VNET_HDR_LEN..], &f[..], "{what}");
            // ... which is right once completed, as the receiving kernel completes it
            let mut scratch = vec![0u8; SEG_BUF];
            let mut done = Vec::new();
            finish(&h, &fast[0][VNET_HDR_LEN..], &mut scratch, |x| {
                done.push(x.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
            assert!(l4_valid(&done[0]), "{what}");
            // the plain port: completed in software, nothing else changed
            let plain = s.hosts[1].take_sent();
            assert_eq!(plain.len(), 1, "{what}");
            assert!(l4_valid(&plain[0]), "{what}: checksum completed");
            let at = csum_at(&f);
            assert_eq!(plain[0][..at], f[..at], "{what}");
            assert_eq!(plain[0][at + 2..], f[at + 2..], "{what}");
            assert_eq!(plain[0], done[0]);
        }
    }
    // every frame counted once, none dropped
    let vx = s.vx_handle(0);
    assert_eq!(vx.counters.rx_frames.load(Relaxed), 8);
    assert_eq!(vx.counters.rx_dropped_total(), 0);
}

#[test]
fn partial_tcp_segments_coalesce_and_are_finished_for_a_plain_port() {
    for v6 in [false, true] {
        let s = offload_and_plain_site();
        // full-size segments for a 1500-byte MTU
        let mss = if v6 { 1440 } else { 1460 };
        let data: Vec<u8> = (0..10 * mss as u32).map(|i| (i % 253) as u8).collect();
        let segs: Vec<Vec<u8>> = data
            .chunks(mss)
            .enumerate()
            .map(|(i, c)| inner(v6, 6, 5000 + (i * mss) as u32, c, 0x10, Csum::Partial))
            .collect();
        deliver(&s, &segs);
        let (_, l4, _, _) = layout(&segs[0]);
        let fast = s.hosts[0].take_sent();
        assert_eq!(fast.len(), 1, "coalesced (IPv6 {v6})");
        let h = VnetHdr::parse(&fast[0]).unwrap();
        assert_eq!(
            (h.flags, h.gso_size as usize, h.csum_start as usize),
            (F_NEEDS_CSUM, mss, l4)
        );
        assert_eq!(fast[0][VNET_HDR_LEN + l4 + 20..], data[..]);
        let plain = s.hosts[1].take_sent();
        assert_eq!(plain.len(), 10);
        for (i, (p, o)) in plain.iter().zip(&segs).enumerate() {
            assert!(l4_valid(p), "segment {i} (IPv6 {v6}): checksum completed");
            assert_eq!(p[l4 + 20..], o[l4 + 20..], "segment {i}: payload");
            assert_eq!(p[l4..l4 + 16], o[l4..l4 + 16], "segment {i}: TCP header");
        }
    }
}

#[test]
fn a_wrong_inner_checksum_is_not_repaired() {
    let s = offload_and_plain_site();
    for v6 in [false, true] {
        for (proto, payload, flags) in [(6u8, 1000usize, 0x10u8), (6, 0, 0x10), (17, 300, 0)] {
            let what = format!("proto {proto} payload {payload} IPv6 {v6}");
            let data = vec![9u8; payload];
            let f = inner(v6, proto, 1, &data, flags, Csum::Wrong);
            deliver(&s, std::slice::from_ref(&f));
            // as it came, with a plain header: the receiving stack drops it, as Linux's would
            let fast = s.hosts[0].take_sent();
            assert_eq!(fast.len(), 1, "{what}");
            assert_eq!(&fast[0][..VNET_HDR_LEN], &[0; VNET_HDR_LEN], "{what}");
            assert_eq!(&fast[0][VNET_HDR_LEN..], &f[..], "{what}");
            let plain = s.hosts[1].take_sent();
            assert_eq!(plain, vec![f.clone()], "{what}");
            assert!(!l4_valid(&plain[0]), "{what}: still wrong");
        }
    }
    // wrong segments in a batch are not merged either: each comes out alone, unchanged
    let segs: Vec<Vec<u8>> = (0..3)
        .map(|i| inner(false, 6, i * 1448, &[5; 1448], 0x10, Csum::Wrong))
        .collect();
    deliver(&s, &segs);
    assert_eq!(s.hosts[0].take_sent().len(), 3);
    assert_eq!(s.hosts[1].take_sent(), segs);
}

#[test]
fn a_tso_frame_that_crossed_a_veth_underlay_whole_goes_on_as_a_gso_frame() {
    // A Linux VTEP whose host has TSO sends 64 KiB TCP frames through a veth underlay whole;
    // the hub's UDP socket reads each as one datagram, its checksum partial, its GSO header
    // lost. The tunnel's MTU here is 1450.
    for v6 in [false, true] {
        let s = offload_and_plain_site();
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 241) as u8).collect();
        let before = inner(v6, 6, 1, &[3; 100], 0x10, Csum::Partial);
        let big = inner(v6, 6, 101, &data, 0x18, Csum::Partial);
        deliver(&s, &[before.clone(), big.clone()]);
        let (_, l4, _, _) = layout(&big);
        let mss = 1450 - (l4 - 14) - 20;
        // the offload port: the frame that was waiting, then the big one as a GSO frame
        let fast = s.hosts[0].take_sent();
        assert_eq!(fast.len(), 2, "IPv6 {v6}");
        assert_eq!(&fast[0][VNET_HDR_LEN..], &before[..]);
        let h = VnetHdr::parse(&fast[1]).unwrap();
        assert_eq!(
            (h.flags, h.gso_size as usize, h.csum_start as usize),
            (F_NEEDS_CSUM, mss, l4)
        );
        assert_eq!(&fast[1][VNET_HDR_LEN..], &big[..]);
        // the plain port: segments that fit, checksums complete, the data in order
        let plain = s.hosts[1].take_sent();
        assert_eq!(plain.len(), 1 + data.len().div_ceil(mss), "IPv6 {v6}");
        assert!(plain.iter().all(|p| l4_valid(p)));
        assert!(plain.iter().all(|p| p.len() <= 14 + 1450));
        let got: Vec<u8> = plain[1..]
            .iter()
            .flat_map(|p| p[l4 + 20..].to_vec())
            .collect();
        assert_eq!(got, data);
        assert_eq!(s.host_handles[1].counters.tx_dropped_total(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// UDP GSO send and coalesced (UDP GRO) receive

/// An underlay that keeps what a `vxlan` port sends as the kernel would get it: each UDP GSO
/// batch whole (`send_batch`: remote, UDP header, datagrams back to back, datagram size), each
/// single datagram alone (size 0).
#[derive(Clone, Default)]
struct BatchEnd(Arc<Mutex<Vec<Sent>>>);

/// One send as the kernel got it: remote, outer header, UDP payload(s), datagram size (0: single).
type Sent = (IpAddr, [u8; ENCAP_HLEN], Vec<u8>, usize);

impl Underlay for BatchEnd {
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
        let mut d = head[8..].to_vec();
        d.extend_from_slice(frame);
        self.0.lock().unwrap().push((to, *head, d, 0));
        Ok(())
    }
    fn send_batch(
        &self,
        to: &[IpAddr],
        head: &[u8; ENCAP_HLEN],
        data: &[u8],
        seg: usize,
        done: &mut dyn FnMut(usize, io::Result<()>),
    ) {
        for (i, ip) in to.iter().enumerate() {
            self.0
                .lock()
                .unwrap()
                .push((*ip, *head, data.to_vec(), seg));
            done(i, Ok(()));
        }
    }
    fn path_mtu(&self, _to: Option<IpAddr>) -> Option<u32> {
        Some(1550)
    }
}

impl BatchEnd {
    fn take(&self) -> Vec<(IpAddr, [u8; ENCAP_HLEN], Vec<u8>, usize)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A TCP GSO frame (virtio_net_hdr with NEEDS_CSUM, TCP checksum left partial) over IPv4 or
/// IPv6: `payload` from sequence number `seq`, segments of `mss`.
fn tcp_gso(v6: bool, seq: u32, mss: u16, payload: &[u8]) -> Vec<u8> {
    use tapswitch::offload::{csum_add, csum_fold, GSO_TCPV6};
    let (l3, et) = if v6 { (40, 0x86dd) } else { (20, 0x0800) };
    let l4_len = 20 + payload.len();
    let mut ip = Vec::new();
    if v6 {
        ip.extend_from_slice(&[0x60, 0, 0, 0]);
        ip.extend_from_slice(&(l4_len as u16).to_be_bytes());
        ip.extend_from_slice(&[6, 64]);
        ip.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        ip.extend_from_slice(&[0x45, 0]);
        ip.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[
            0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 41, 1, 198, 18, 41, 2,
        ]);
        let c = !csum_fold(csum_add(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let addrs = if v6 { &ip[8..40] } else { &ip[12..20] };
    let ps = csum_fold(csum_add(0, addrs) + 6 + l4_len as u32);
    let mut tcp = vec![0x9c, 0x41, 0, 80];
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff]);
    tcp.extend_from_slice(&ps.to_be_bytes());
    tcp.extend_from_slice(&[0, 0]);
    let mut body = ip;
    body.extend_from_slice(&tcp);
    body.extend_from_slice(payload);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: (14 + l3 + 20) as u16,
        gso_size: mss,
        csum_start: (14 + l3) as u16,
        csum_offset: 16,
    };
    let mut out = vec![0u8; VNET_HDR_LEN];
    hdr.write(&mut out);
    out.extend_from_slice(&build_frame(MacAddr::BROADCAST, mac(41), et, &body));
    out
}

/// The TCP payloads of what a host port got (GSO frames or plain segments) by sequence
/// number, each segment's IP and TCP checksums checked when `verify`.
fn tcp_payloads(frames: &[Vec<u8>], vnet: bool, verify: bool) -> Vec<(u32, Vec<u8>)> {
    use tapswitch::offload::{csum_add, csum_fold};
    let mut out = Vec::new();
    for f in frames {
        let (hdr, frame) = if vnet {
            (VnetHdr::parse(f).unwrap(), &f[VNET_HDR_LEN..])
        } else {
            (VnetHdr::default(), &f[..])
        };
        let v6 = frame[12..14] == [0x86, 0xdd];
        let l4 = if v6 { 54 } else { 34 };
        if verify {
            assert!(hdr.is_plain(), "a plain port gets plain frames");
            if !v6 {
                assert_eq!(
                    csum_fold(csum_add(0, &frame[14..34])),
                    0xffff,
                    "IPv4 checksum"
                );
            }
            let addrs = if v6 { &frame[22..54] } else { &frame[26..34] };
            let l4_len = frame.len() - l4;
            let ps = csum_add(0, addrs) + 6 + l4_len as u32;
            assert_eq!(
                csum_fold(csum_add(ps, &frame[l4..])),
                0xffff,
                "TCP checksum"
            );
        }
        let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]);
        out.push((seq, frame[l4 + 20..].to_vec()));
    }
    out
}

/// Site A (one offload host) sends `frames` (TCP GSO frames) through a `vxlan` port whose
/// underlay keeps the UDP GSO batches; each batch is checked against the software
/// segmentation (the VXLAN header, then exactly the segment `offload::finish` makes, every
/// datagram but the last of a frame of one size), then handed to site B as the one coalesced
/// read the kernel's UDP GRO gives a receiver. Returns what B's offload host and plain host
/// got, and the number of batches.
fn gso_across(frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
    use tapswitch::offload::{finish, Segmenter};
    let (ua, ub) = (ip("198.18.41.1"), ip("198.18.41.2"));
    let mut a = Site::new(0);
    a.add_host(MemPort::new(1500).with_vnet_hdr(), "h0");
    let mut spec = VxlanSpec::new(41);
    for w in ["local=198.18.41.1", "remote=198.18.41.2"] {
        spec.apply(w).unwrap();
    }
    let vtep = Arc::new(Vtep::new(spec, 1500));
    let end = BatchEnd::default();
    let port = VxlanPort::new(vtep.clone(), end.clone(), None);
    a.sw.add_vxlan_port(
        "vx41",
        vtep.clone(),
        Box::new(port),
        PortFlags::default(),
        false,
    )
    .unwrap();
    let wire = Arc::new(Wire::default());
    let mut b = Site::new(0);
    b.add_host(MemPort::new(1500).with_vnet_hdr(), "fast");
    b.add_host(MemPort::new(1500), "plain");
    b.vxlan(
        &wire,
        41,
        &["local=198.18.41.2", "remote=198.18.41.1"],
        1550,
    );
    let mut batches = 0;
    for f in frames {
        a.send(0, f);
        let hdr = VnetHdr::parse(f).unwrap();
        let mut want = Vec::new();
        let mut scratch = vec![0u8; 70_000];
        finish(&hdr, &f[VNET_HDR_LEN..], &mut scratch, |s| {
            let mut d = vec![0x08, 0, 0, 0, 0, 0, 41, 0];
            d.extend_from_slice(s);
            want.push(d);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        let segs = Segmenter::new(&hdr, &f[VNET_HDR_LEN..]).unwrap();
        let stride = 8 + segs.seg_len(0);
        let per = (65507 / stride).min(64);
        let sent = end.take();
        let mut got = Vec::new();
        for (to, head, data, seg) in &sent {
            assert_eq!(*to, ub);
            assert_eq!(&head[2..4], &4789u16.to_be_bytes());
            if *seg == 0 {
                got.push(data.clone());
            } else {
                assert_eq!(*seg, stride, "datagrams of one size");
                assert!(data.len() <= per * stride);
                got.extend(data.chunks(*seg).map(<[u8]>::to_vec));
            }
            b.sw.vxlan_deliver_coalesced(ub, 4789, ua, data, *seg);
        }
        assert_eq!(got, want, "the datagrams the software segmentation makes");
        if want.len() > 1 {
            assert_eq!(sent.len(), want.len().div_ceil(per), "as few sends as fit");
        }
        batches += sent.len();
        b.sw.pump();
    }
    let fast = b.hosts[0].take_sent();
    let plain = b.hosts[1].take_sent();
    (fast, plain, batches)
}

/// The bytes of a stream from a seed (an LCG; proptest shrinks the seed and the lengths).
fn stream_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

#[test]
fn a_64_kib_gso_frame_crosses_in_two_batches_and_comes_out_whole() {
    // 1448-byte segments: 44 datagrams of 1510 bytes fit one send of at most 65507
    let data = stream_bytes(7, 65_000);
    let f = tcp_gso(false, 1, 1448, &data);
    let (fast, plain, batches) = gso_across(&[f]);
    assert_eq!(batches, 2, "45 datagrams: 43 + 2");
    let got: Vec<u8> = tcp_payloads(&fast, true, false)
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect();
    assert_eq!(got, data);
    assert!(fast.len() <= 2, "coalesced again: {} frames", fast.len());
    let segs = tcp_payloads(&plain, false, true);
    assert_eq!(segs.len(), 45);
    assert_eq!(
        segs.into_iter().flat_map(|(_, p)| p).collect::<Vec<u8>>(),
        data
    );
}

mod gso_gro_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any sequence of TCP segments, sent as GSO frames of any sizes (IPv4 or IPv6, any
        /// MSS the tunnel carries), crosses as UDP GSO batches and comes out of the
        /// receiving site as the same byte stream: coalesced for an offload host, as
        /// segments with valid checksums for a plain one.
        #[test]
        fn gso_send_and_gro_receive_keep_the_byte_stream(
            v6 in any::<bool>(),
            mss in 48u16..=1400,
            seq0 in any::<u32>(),
            seed in any::<u64>(),
            lens in proptest::collection::vec(1usize..40_000, 1..4),
        ) {
            let total: usize = lens.iter().sum();
            let data = stream_bytes(seed, total);
            let mut frames = Vec::new();
            let mut at = 0;
            for l in &lens {
                frames.push(tcp_gso(v6, seq0.wrapping_add(at as u32), mss, &data[at..at + l]));
                at += l;
            }
            let (fast, plain, _) = gso_across(&frames);
            let mut got = tcp_payloads(&fast, true, false);
            let mut pos = 0usize;
            for (seq, p) in &got {
                prop_assert_eq!(*seq, seq0.wrapping_add(pos as u32), "in order, no gap");
                pos += p.len();
            }
            let fast_bytes: Vec<u8> = got.drain(..).flat_map(|(_, p)| p).collect();
            prop_assert!(fast_bytes == data, "offload host: the same stream");
            let segs = tcp_payloads(&plain, false, true);
            let want_segs: usize = lens.iter().map(|l| l.div_ceil(mss as usize)).sum();
            prop_assert_eq!(segs.len(), want_segs);
            let plain_bytes: Vec<u8> = segs.into_iter().flat_map(|(_, p)| p).collect();
            prop_assert!(plain_bytes == data, "plain host: the same stream");
        }
    }
}

#[test]
fn linux_capture_through_the_offload_send_and_the_coalesced_receive() {
    use tapswitch::port::Port;
    let cap = linux_capture();
    let wire = Arc::new(Wire::default());
    let ends = [
        (100, "198.18.200.1", "198.18.200.2"),
        (200, "2001:2::1", "2001:2::2"),
        (300, "198.18.200.1", "198.18.200.2"),
    ];
    let mut sites: Vec<(u32, IpAddr, Site, VxlanPort<BatchEnd>, BatchEnd)> = Vec::new();
    for (vni, a, b) in ends {
        for (me, peer) in [(a, b), (b, a)] {
            let mut s = Site::new(1);
            let l = format!("local={me}");
            let r = format!("remote={peer}");
            s.vxlan(&wire, vni, &[l.as_str(), r.as_str()], 1500);
            let end = BatchEnd::default();
            let port = VxlanPort::new(s.vtep(0).clone(), end.clone(), None);
            sites.push((vni, ip(me), s, port, end));
        }
    }
    // Send: every inner frame through the port's offload entry (a zero virtio_net_hdr), as
    // the frame path now hands it: the same single datagram Linux sent.
    for c in &cap {
        let (vni, inner) = wire::parse(&c.udp[8..]).unwrap();
        let (_, _, _, port, end) = sites
            .iter()
            .find(|(v, l, ..)| *v == vni && *l == c.src)
            .unwrap();
        let mut pkt = vec![0u8; VNET_HDR_LEN];
        pkt.extend_from_slice(inner);
        port.send(&pkt).unwrap();
        let sent = end.take();
        assert_eq!(sent.len(), 1);
        let (to, head, data, seg) = &sent[0];
        assert_eq!((*to, *seg), (c.dst, 0));
        assert_eq!(
            &data[..],
            &c.udp[8..],
            "VXLAN header and inner frame as Linux's"
        );
        assert_eq!(
            head[2..6],
            c.udp[2..6],
            "destination port and length as Linux's"
        );
    }
    // Receive: runs of packets of one size between the same ends, each as the one coalesced
    // read UDP GRO would make of them: the host gets every inner frame byte for byte, in order.
    let mut i = 0;
    let mut runs = 0;
    while i < cap.len() {
        let c = &cap[i];
        let mut j = i + 1;
        while j < cap.len()
            && cap[j].src == c.src
            && cap[j].dst == c.dst
            && cap[j].udp.len() == c.udp.len()
            && wire::parse(&cap[j].udp[8..]).unwrap().0 == wire::parse(&c.udp[8..]).unwrap().0
        {
            j += 1;
        }
        let vni = wire::parse(&c.udp[8..]).unwrap().0;
        let (_, _, rx, ..) = sites
            .iter()
            .find(|(v, l, ..)| *v == vni && *l == c.dst)
            .unwrap();
        let data: Vec<u8> = cap[i..j].iter().flat_map(|p| p.udp[8..].to_vec()).collect();
        rx.sw
            .vxlan_deliver_coalesced(c.dst, 4789, c.src, &data, c.udp.len() - 8);
        rx.sw.pump();
        let want: Vec<Vec<u8>> = cap[i..j]
            .iter()
            .map(|p| wire::parse(&p.udp[8..]).unwrap().1.to_vec())
            .collect();
        let got = rx.hosts[0].take_sent();
        assert_eq!(got, want, "VNI {vni}, packets {i}..{j}");
        runs += usize::from(j - i > 1);
        i = j;
    }
    assert!(runs >= 1, "the capture has runs of equal packets");
}
