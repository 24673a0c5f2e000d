//! Rootless scenarios through the whole dataplane (`Switch::pump` over in-memory ports, no
//! runtime, no sleeps):
//!
//! - three smoltcp hosts (ARP, ICMP echo, a 256 KiB TCP transfer) on three ports, driven by a
//!   simulated clock;
//! - hand-built frames for the Linux-bridge rules of `ANCHORS.md` (b): MAC move, hairpin,
//!   isolation, link-local groups, invalid sources, runts, egress MTU, a port going down, a
//!   peer that stops reading, the learned limit and `ageing_time 0`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr};

use tapswitch::dataplane::{LinkState, PortHandle, Switch};
use tapswitch::fdb::FdbKey;
use tapswitch::forwarding::{FloodKind, PortFlags, RxDrop, Settings, TxDrop};
use tapswitch::port::mem::MemPort;
use tapswitch::wire::{build_frame, MacAddr};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, n])
}

fn mac_of(b: &[u8]) -> MacAddr {
    let mut a = [0u8; 6];
    a.copy_from_slice(&b[..6]);
    MacAddr(a)
}

fn key(m: MacAddr) -> FdbKey {
    FdbKey::new(m, 0)
}

fn flooded_total(sw: &Switch) -> u64 {
    FloodKind::ALL
        .iter()
        .map(|k| sw.stats.flooded(*k).load(Relaxed))
        .sum()
}

/// A readable table of every port's counters, for failure messages.
fn counter_table(sw: &Switch) -> String {
    let mut s = format!(
        "forwarded={} flooded(b/m/u)={}/{}/{}\n",
        sw.stats.forwarded.load(Relaxed),
        sw.stats.flooded(FloodKind::Broadcast).load(Relaxed),
        sw.stats.flooded(FloodKind::Multicast).load(Relaxed),
        sw.stats.flooded(FloodKind::UnknownUnicast).load(Relaxed),
    );
    for h in sw.ports().iter() {
        let c = &h.counters;
        let rxd: Vec<String> = RxDrop::ALL
            .iter()
            .filter(|r| c.rx_dropped[r.index()].load(Relaxed) > 0)
            .map(|r| format!("{}={}", r.label(), c.rx_dropped[r.index()].load(Relaxed)))
            .collect();
        let txd: Vec<String> = TxDrop::ALL
            .iter()
            .filter(|r| c.tx_dropped[r.index()].load(Relaxed) > 0)
            .map(|r| format!("{}={}", r.label(), c.tx_dropped[r.index()].load(Relaxed)))
            .collect();
        s += &format!(
            "  {:<4} rx={:<6} tx={:<6} rx_drop[{}] tx_drop[{}] state={:?}\n",
            h.name,
            c.rx_frames.load(Relaxed),
            c.tx_frames.load(Relaxed),
            rxd.join(","),
            txd.join(","),
            h.state(),
        );
    }
    s
}

/// Switch-wide and per port: every received frame was forwarded, flooded or dropped exactly once.
fn assert_identity(sw: &Switch) {
    let ports = sw.ports();
    for h in ports.iter() {
        let c = &h.counters;
        assert_eq!(
            c.rx_forwarded.load(Relaxed) + c.rx_flooded.load(Relaxed) + c.rx_dropped_total(),
            c.rx_frames.load(Relaxed),
            "port {}: rx_forwarded + rx_flooded + rx_dropped != rx_frames\n{}",
            h.name,
            counter_table(sw)
        );
    }
    let rx: u64 = ports
        .iter()
        .map(|h| h.counters.rx_frames.load(Relaxed))
        .sum();
    let dropped: u64 = ports.iter().map(|h| h.counters.rx_dropped_total()).sum();
    let fwd = sw.stats.forwarded.load(Relaxed);
    assert_eq!(
        fwd + flooded_total(sw) + dropped,
        rx,
        "forwarded + flooded + rx_dropped != rx_frames\n{}",
        counter_table(sw)
    );
}

// ---------------------------------------------------------------------------------------------
// smoltcp hosts
// ---------------------------------------------------------------------------------------------

/// A queue-backed smoltcp device: `tx` is what the host sent (moved into the switch port),
/// `rx` what the switch delivered to the host.
#[derive(Default)]
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct QueueRx(Vec<u8>);

struct QueueTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for QueueRx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

impl phy::TxToken for QueueTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = QueueRx;
    type TxToken<'a> = QueueTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let f = self.rx.pop_front()?;
        Some((QueueRx(f), QueueTx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        Some(QueueTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        // An Ethernet frame without FCS at MTU 1500 (the switch port's MTU).
        c.max_transmission_unit = 1514;
        c
    }
}

struct Host {
    mac: MacAddr,
    ip: IpAddress,
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
    icmp: SocketHandle,
    port: Arc<MemPort>,
    handle: Arc<PortHandle>,
    /// Frames moved from the host into its switch port.
    injected: u64,
    /// Frames the switch sent out of the host's port.
    delivered: u64,
    /// (simulated ms, dst, src) of every frame delivered to this host.
    seen: Vec<(i64, MacAddr, MacAddr)>,
}

/// Hosts on one switch, one port each, and the simulated clock.
struct Lan {
    sw: Arc<Switch>,
    hosts: Vec<Host>,
    now_ms: i64,
}

const ICMP_IDENT_BASE: u16 = 0x7a00;

impl Lan {
    fn new(n: usize) -> Lan {
        let sw = Switch::new("br-scn", Settings::default(), 1024);
        let hosts = (0..n)
            .map(|i| {
                let m = MacAddr([0x02, 0x54, 0x53, 0x00, 0x00, i as u8 + 1]);
                // 198.18.0.0/15 (RFC 2544 benchmarking range).
                let ip = IpAddress::v4(198, 18, 0, i as u8 + 1);
                let mut dev = QueueDevice::default();
                let mut cfg = Config::new(EthernetAddress(m.0).into());
                cfg.random_seed = 0x7a5e_ed00 + i as u64;
                let mut iface = Interface::new(cfg, &mut dev, Instant::from_millis(0));
                iface.update_ip_addrs(|a| a.push(IpCidr::new(ip, 24)).unwrap());
                let mut sockets = SocketSet::new(Vec::new());
                let mut s = icmp::Socket::new(
                    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]),
                    icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]),
                );
                s.bind(icmp::Endpoint::Ident(ICMP_IDENT_BASE + i as u16))
                    .unwrap();
                let icmp = sockets.add(s);
                let port = Arc::new(MemPort::default());
                let handle = sw
                    .add_port(
                        &format!("h{}", i + 1),
                        Box::new(port.clone()),
                        PortFlags::default(),
                    )
                    .unwrap();
                Host {
                    mac: m,
                    ip,
                    iface,
                    dev,
                    sockets,
                    icmp,
                    port,
                    handle,
                    injected: 0,
                    delivered: 0,
                    seen: Vec::new(),
                }
            })
            .collect();
        Lan {
            sw,
            hosts,
            now_ms: 0,
        }
    }

    /// One simulated millisecond: every host polls, its frames enter the switch, the switch
    /// drains, and what it sent is queued to the hosts.
    fn step(&mut self) {
        let now = Instant::from_millis(self.now_ms);
        for h in &mut self.hosts {
            h.iface.poll(now, &mut h.dev, &mut h.sockets);
            for f in h.dev.tx.drain(..) {
                h.port.inject(&f);
                h.injected += 1;
            }
        }
        self.sw.pump();
        for h in &mut self.hosts {
            for f in h.port.take_sent() {
                h.delivered += 1;
                h.seen
                    .push((self.now_ms, mac_of(&f[0..6]), mac_of(&f[6..12])));
                h.dev.rx.push_back(f);
            }
        }
        self.now_ms += 1;
    }

    /// Puts a hand-built frame into host `i`'s port, as if the host had sent it.
    fn inject_raw(&mut self, i: usize, frame: &[u8]) {
        self.hosts[i].port.inject(frame);
        self.hosts[i].injected += 1;
    }

    /// Sends echo requests from host `from` to `target` (re-sent every 500 ms) until a reply
    /// with this sequence number comes back from `target`; returns the simulated ms it took,
    /// or `None` after `limit_ms`.
    fn ping(&mut self, from: usize, target: IpAddress, seq: u16, limit_ms: i64) -> Option<i64> {
        let ident = ICMP_IDENT_BASE + from as u16;
        let payload: Vec<u8> = (0..32u8).map(|b| b ^ seq as u8 ^ from as u8).collect();
        let start = self.now_ms;
        let mut last_sent: Option<i64> = None;
        while self.now_ms - start < limit_ms {
            {
                let h = &mut self.hosts[from];
                let s = h.sockets.get_mut::<icmp::Socket>(h.icmp);
                if last_sent.is_none_or(|t| self.now_ms - t >= 500) && s.can_send() {
                    let repr = Icmpv4Repr::EchoRequest {
                        ident,
                        seq_no: seq,
                        data: &payload,
                    };
                    let buf = s.send(repr.buffer_len(), target).unwrap();
                    repr.emit(
                        &mut Icmpv4Packet::new_unchecked(buf),
                        &ChecksumCapabilities::default(),
                    );
                    last_sent = Some(self.now_ms);
                }
                while s.can_recv() {
                    let (data, src) = s.recv().unwrap();
                    let pkt = Icmpv4Packet::new_checked(data).unwrap();
                    if let Ok(Icmpv4Repr::EchoReply {
                        ident: i,
                        seq_no,
                        data,
                    }) = Icmpv4Repr::parse(&pkt, &ChecksumCapabilities::default())
                    {
                        if i == ident && seq_no == seq && src == target && data == &payload[..] {
                            return Some(self.now_ms - start);
                        }
                    }
                }
            }
            self.step();
        }
        None
    }

    /// Per port: rx_frames == frames injected, tx_frames == frames delivered; and the
    /// switch-wide identity.
    fn assert_counters(&self) {
        for h in &self.hosts {
            let c = &h.handle.counters;
            assert_eq!(
                c.rx_frames.load(Relaxed),
                h.injected,
                "rx_frames of {}\n{}",
                h.handle.name,
                counter_table(&self.sw)
            );
            assert_eq!(
                c.tx_frames.load(Relaxed),
                h.delivered,
                "tx_frames of {}\n{}",
                h.handle.name,
                counter_table(&self.sw)
            );
        }
        assert_identity(&self.sw);
    }
}

/// (a) ARP resolves and ICMP echo works between every ordered pair of three hosts; then the
/// table holds each host's MAC on its own port and nothing else.
#[test]
fn smoltcp_hosts_ping_every_pair_and_are_learned() {
    let mut lan = Lan::new(3);
    let mut seq = 1;
    for from in 0..3 {
        for to in 0..3 {
            if from == to {
                continue;
            }
            let target = lan.hosts[to].ip;
            let took = lan.ping(from, target, seq, 3000);
            assert!(
                took.is_some(),
                "no echo reply from h{} to h{}\n{}",
                to + 1,
                from + 1,
                counter_table(&lan.sw)
            );
            seq += 1;
        }
    }
    // ARP went through the switch: every host got at least one broadcast (a request).
    for h in &lan.hosts {
        assert!(
            h.seen.iter().any(|(_, d, _)| d.is_broadcast()),
            "{} saw no ARP request",
            h.handle.name
        );
    }
    for h in &lan.hosts {
        assert_eq!(
            lan.sw.fdb.port_of(&key(h.mac)),
            Some(h.handle.id),
            "{} not learned on its own port",
            h.mac
        );
    }
    assert_eq!(lan.sw.fdb.learned_count(), 3);
    let snap = lan.sw.fdb.snapshot(lan.sw.now());
    assert_eq!(snap.len(), 3, "{snap:?}");
    for r in &snap {
        let h = lan.hosts.iter().find(|h| h.mac == r.mac).expect("a host");
        assert_eq!(r.port, h.handle.id);
        assert_eq!(r.vlan, 0);
    }
    lan.assert_counters();
}

fn xorshift_bytes(n: usize, mut s: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// (b) 256 KiB (and a bit) over TCP from h1 to h2 arrive intact; the third host's port never
/// receives a unicast frame of the flow: both MACs are learned before the first unicast frame
/// (h1 from its ARP request, h2 from its ARP reply), so known unicast is not flooded.
#[test]
fn smoltcp_tcp_transfer_is_intact_and_not_flooded() {
    const LEN: usize = 256 * 1024 + 777;
    const PORT: u16 = 5201;
    let mut lan = Lan::new(3);
    let data = xorshift_bytes(LEN, 0x1234_5678_9abc_def1);
    let buf = || tcp::SocketBuffer::new(vec![0; 65535]);

    let server = lan.hosts[1].sockets.add(tcp::Socket::new(buf(), buf()));
    lan.hosts[1]
        .sockets
        .get_mut::<tcp::Socket>(server)
        .listen(PORT)
        .unwrap();
    let client = lan.hosts[0].sockets.add(tcp::Socket::new(buf(), buf()));
    let target = lan.hosts[1].ip;
    {
        let h = &mut lan.hosts[0];
        h.sockets
            .get_mut::<tcp::Socket>(client)
            .connect(h.iface.context(), (target, PORT), 49_152)
            .unwrap();
    }

    let mut sent = 0;
    let mut closed = false;
    let mut received = Vec::with_capacity(LEN);
    let mut established_at = None;
    let mut done = false;
    for _ in 0..30_000 {
        lan.step();
        {
            let s = lan.hosts[0].sockets.get_mut::<tcp::Socket>(client);
            if established_at.is_none() && s.state() == tcp::State::Established {
                established_at = Some(lan.now_ms);
            }
            if sent < LEN && s.can_send() {
                sent += s.send_slice(&data[sent..]).unwrap();
            }
            if sent == LEN && !closed {
                s.close();
                closed = true;
            }
        }
        {
            let s = lan.hosts[1].sockets.get_mut::<tcp::Socket>(server);
            let mut chunk = [0u8; 8192];
            while s.can_recv() {
                let n = s.recv_slice(&mut chunk).unwrap();
                received.extend_from_slice(&chunk[..n]);
            }
            if received.len() == LEN && !s.may_recv() {
                done = true;
            }
        }
        if done {
            break;
        }
    }
    assert!(
        done,
        "transfer did not finish: sent {sent}, received {} of {LEN} by {} ms\n{}",
        received.len(),
        lan.now_ms,
        counter_table(&lan.sw)
    );
    assert_eq!(received.len(), LEN);
    assert_eq!(fnv1a(&received), fnv1a(&data), "content hash differs");
    assert!(received == data, "content differs");

    let established_at = established_at.expect("the client saw Established");
    let (m1, m2) = (lan.hosts[0].mac, lan.hosts[1].mac);
    let flow_to_h3 = |after: i64| {
        lan.hosts[2]
            .seen
            .iter()
            .filter(|(t, d, _)| *t >= after && (*d == m1 || *d == m2))
            .count()
    };
    assert_eq!(
        flow_to_h3(established_at),
        0,
        "h3 received unicast of the h1<->h2 flow after the handshake: {:?}",
        lan.hosts[2].seen
    );
    assert_eq!(
        flow_to_h3(0),
        0,
        "h3 received unicast of the flow even before: {:?}",
        lan.hosts[2].seen
    );
    // h3 heard the ARP request and nothing else of it.
    assert!(lan.hosts[2].seen.iter().all(|(_, d, _)| d.is_broadcast()));
    assert!(!lan.hosts[2].seen.is_empty());
    // The data really went through the switch as known unicast.
    let segments = LEN as u64 / 1460;
    assert!(
        lan.sw.stats.forwarded.load(Relaxed) >= segments,
        "{}",
        counter_table(&lan.sw)
    );
    assert!(lan.hosts[1].delivered >= segments);
    assert_eq!(lan.sw.fdb.port_of(&key(m1)), Some(lan.hosts[0].handle.id));
    assert_eq!(lan.sw.fdb.port_of(&key(m2)), Some(lan.hosts[1].handle.id));
    lan.assert_counters();
}

/// (c) Counters add up on mixed traffic: pings, an ARP for an absent address (flooded, never
/// answered), and hand-injected bad frames (runt, LLDP, multicast source).
#[test]
fn smoltcp_counters_add_up() {
    let mut lan = Lan::new(3);
    let t = lan.hosts[1].ip;
    assert!(lan.ping(0, t, 1, 3000).is_some());
    let t = lan.hosts[0].ip;
    assert!(lan.ping(2, t, 2, 3000).is_some());
    // Nobody has .99: ARP requests flood and go unanswered.
    assert!(lan
        .ping(1, IpAddress::v4(198, 18, 0, 99), 3, 1200)
        .is_none());
    let m3 = lan.hosts[2].mac;
    lan.inject_raw(2, &[0xff; 10]);
    lan.inject_raw(
        2,
        &build_frame(
            MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]),
            m3,
            0x88cc,
            &[0; 46],
        ),
    );
    lan.inject_raw(
        2,
        &build_frame(
            MacAddr::BROADCAST,
            MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
            0x0800,
            &[0; 46],
        ),
    );
    for _ in 0..5 {
        lan.step();
    }
    let c = &lan.hosts[2].handle.counters;
    assert_eq!(c.rx_dropped[RxDrop::TooShort.index()].load(Relaxed), 1);
    assert_eq!(c.rx_dropped[RxDrop::LinkLocal.index()].load(Relaxed), 1);
    assert_eq!(c.rx_dropped[RxDrop::InvalidSource.index()].load(Relaxed), 1);
    // Every term of the identity is exercised.
    assert!(lan.sw.stats.forwarded.load(Relaxed) > 0);
    assert!(lan.sw.stats.flooded(FloodKind::Broadcast).load(Relaxed) > 0);
    lan.assert_counters();
}

// ---------------------------------------------------------------------------------------------
// Hand-built frames
// ---------------------------------------------------------------------------------------------

/// A switch with in-memory ports `p0..pN`.
struct Rig {
    sw: Arc<Switch>,
    ports: Vec<Arc<MemPort>>,
    handles: Vec<Arc<PortHandle>>,
    seq: u32,
}

impl Rig {
    fn new(n: usize) -> Rig {
        Rig::with(
            Settings::default(),
            1024,
            (0..n)
                .map(|_| (MemPort::default(), PortFlags::default()))
                .collect(),
        )
    }

    fn with(settings: Settings, max_learned: usize, ports: Vec<(MemPort, PortFlags)>) -> Rig {
        let sw = Switch::new("br-rig", settings, max_learned);
        let mut r = Rig {
            sw,
            ports: Vec::new(),
            handles: Vec::new(),
            seq: 0,
        };
        for (i, (p, f)) in ports.into_iter().enumerate() {
            let p = Arc::new(p);
            let h =
                r.sw.add_port(&format!("p{i}"), Box::new(p.clone()), f)
                    .unwrap();
            r.ports.push(p);
            r.handles.push(h);
        }
        r
    }

    /// A unique 60-byte IPv4-typed frame.
    /// A frame of the local experimental EtherType 0x88b5 (not IP: multicast snooping, on by
    /// default, lets it flood as Linux does; an IP packet to a group would be its business).
    fn frame(&mut self, dst: MacAddr, src: MacAddr) -> Vec<u8> {
        self.seq += 1;
        let mut payload = vec![0u8; 46];
        payload[..4].copy_from_slice(&self.seq.to_be_bytes());
        build_frame(dst, src, 0x88b5, &payload)
    }

    /// Injects `frame` on port `from`, pumps, and returns the ports that sent it; every
    /// output must be the input, byte for byte, at most once per port.
    fn send_raw(&self, from: usize, frame: &[u8]) -> Vec<usize> {
        self.ports[from].inject(frame);
        self.sw.pump();
        let mut got = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let sent = p.take_sent();
            assert!(sent.len() <= 1, "p{i} got {} copies", sent.len());
            if let Some(f) = sent.first() {
                assert_eq!(f.as_slice(), frame, "p{i} got a changed frame");
                got.push(i);
            }
        }
        got
    }

    /// Builds a unique frame from `src` to `dst`, sends it on `from`, returns the receivers.
    fn send(&mut self, from: usize, dst: MacAddr, src: MacAddr) -> Vec<usize> {
        let f = self.frame(dst, src);
        self.send_raw(from, &f)
    }

    fn port_of(&self, m: MacAddr) -> Option<usize> {
        let id = self.sw.fdb.port_of(&key(m))?;
        self.handles.iter().position(|h| h.id == id)
    }

    fn rx_drop(&self, i: usize, r: RxDrop) -> u64 {
        self.handles[i].counters.rx_dropped[r.index()].load(Relaxed)
    }

    fn tx_drop(&self, i: usize, r: TxDrop) -> u64 {
        self.handles[i].counters.tx_dropped[r.index()].load(Relaxed)
    }

    fn forwarded(&self) -> u64 {
        self.sw.stats.forwarded.load(Relaxed)
    }

    fn flooded(&self, k: FloodKind) -> u64 {
        self.sw.stats.flooded(k).load(Relaxed)
    }
}

const BCAST: MacAddr = MacAddr::BROADCAST;

fn group(x: u8) -> MacAddr {
    MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, x])
}

/// L4: a MAC that shows up on another port moves at once; the next frame to it goes only there.
#[test]
fn mac_move_redirects_known_unicast() {
    let mut r = Rig::new(3);
    let (a, b) = (mac(1), mac(2));
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.send(1, a, b), vec![0]);
    assert_eq!(r.port_of(a), Some(0));
    let moved = r.sw.fdb.stats.moved_total.load(Relaxed);
    // a moves to p2 (e.g. a VM migrated); its frame to b is known unicast.
    assert_eq!(r.send(2, b, a), vec![1]);
    assert_eq!(r.port_of(a), Some(2));
    assert_eq!(r.sw.fdb.stats.moved_total.load(Relaxed), moved + 1);
    assert_eq!(r.send(1, a, b), vec![2], "frame to a after the move");
    assert_eq!(r.send(1, a, b), vec![2]);
    // and back
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.send(1, a, b), vec![0]);
    assert_eq!(r.sw.fdb.learned_count(), 2);
    assert_identity(&r.sw);
}

/// F3 vs F1: a hairpin port gets its own floods back and known unicast to a MAC learned on it;
/// a plain port gets neither (the unicast is dropped as same_port, not flooded).
#[test]
fn hairpin_reflects_floods_and_local_unicast() {
    let hp = PortFlags::default().with(PortFlags::HAIRPIN, true);
    let mut r = Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::default(), hp),
            (MemPort::default(), PortFlags::default()),
            (MemPort::default(), PortFlags::default()),
        ],
    );
    let (a, a2, b, b2) = (mac(1), mac(2), mac(3), mac(4));
    // Broadcast, multicast and unknown unicast all come back to the hairpin port.
    assert_eq!(r.send(0, BCAST, a), vec![0, 1, 2]);
    assert_eq!(
        r.send(0, MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]), a),
        vec![0, 1, 2]
    );
    assert_eq!(r.send(0, mac(99), a), vec![0, 1, 2]);
    assert_eq!(r.send(0, BCAST, a2), vec![0, 1, 2]);
    // Known unicast between two MACs behind the hairpin port goes back out of it, only.
    let fwd = r.forwarded();
    assert_eq!(r.send(0, a2, a), vec![0]);
    assert_eq!(r.send(0, a, a2), vec![0]);
    assert_eq!(r.forwarded(), fwd + 2);
    assert_eq!(r.rx_drop(0, RxDrop::SamePort), 0);

    // Without hairpin: no reflection; local unicast is dropped, not flooded.
    assert_eq!(r.send(1, BCAST, b), vec![0, 2]);
    assert_eq!(r.send(1, BCAST, b2), vec![0, 2]);
    let flooded = r.flooded(FloodKind::UnknownUnicast);
    assert_eq!(r.send(1, b2, b), Vec::<usize>::new());
    assert_eq!(r.rx_drop(1, RxDrop::SamePort), 1);
    assert_eq!(r.flooded(FloodKind::UnknownUnicast), flooded);
    assert_eq!(r.forwarded(), fwd + 2);
    assert_identity(&r.sw);
}

/// F4: isolated ports never reach each other, by flood or unicast, in either direction; both
/// still talk to a non-isolated port.
#[test]
fn isolated_ports_are_isolated_both_ways() {
    let iso = PortFlags::default().with(PortFlags::ISOLATED, true);
    let mut r = Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::default(), iso),
            (MemPort::default(), iso),
            (MemPort::default(), PortFlags::default()),
        ],
    );
    let (a, b, c) = (mac(1), mac(2), mac(3));
    assert_eq!(r.send(0, BCAST, a), vec![2]);
    assert_eq!(r.send(1, BCAST, b), vec![2]);
    assert_eq!(r.send(2, BCAST, c), vec![0, 1]);
    assert_eq!(r.port_of(a), Some(0));
    assert_eq!(r.port_of(b), Some(1));
    // known unicast between isolated ports: dropped and counted, both ways
    assert_eq!(r.send(0, b, a), Vec::<usize>::new());
    assert_eq!(r.rx_drop(0, RxDrop::Isolated), 1);
    assert_eq!(r.send(1, a, b), Vec::<usize>::new());
    assert_eq!(r.rx_drop(1, RxDrop::Isolated), 1);
    // unknown unicast and multicast floods skip the other isolated port
    assert_eq!(r.send(0, mac(99), a), vec![2]);
    assert_eq!(r.send(1, MacAddr([0x33, 0x33, 0, 0, 0, 1]), b), vec![2]);
    // isolated <-> non-isolated works both ways
    assert_eq!(r.send(0, c, a), vec![2]);
    assert_eq!(r.send(2, a, c), vec![0]);
    assert_eq!(r.send(1, c, b), vec![2]);
    assert_eq!(r.send(2, b, c), vec![1]);
    // flags change at run time: un-isolate p1
    r.handles[1].flags.set(PortFlags::default());
    assert_eq!(r.send(0, b, a), vec![1]);
    assert_eq!(r.send(1, BCAST, b), vec![0, 2]);
    assert_identity(&r.sw);
}

/// I4/I5/I2/I3: 01:80:c2:00:00:0e (LLDP) is dropped as link_local (but its source learned)
/// unless group_fwd_mask has bit 14; PAUSE is dropped before learning; group 0 floods.
#[test]
fn link_local_groups_follow_group_fwd_mask() {
    let mut r = Rig::new(3);
    let (a, b) = (mac(1), mac(2));
    let lldp = build_frame(
        group(0x0e),
        a,
        0x88cc,
        &[0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1],
    );
    let flooded = r.flooded(FloodKind::Multicast);
    assert_eq!(r.send_raw(0, &lldp), Vec::<usize>::new());
    assert_eq!(r.rx_drop(0, RxDrop::LinkLocal), 1);
    assert_eq!(r.port_of(a), Some(0), "link-local frames are still learned");
    assert_eq!(r.flooded(FloodKind::Multicast), flooded);

    // the wrong bit does not help
    r.sw.settings.store(Settings {
        group_fwd_mask: 1 << 13,
        ..Settings::default()
    });
    assert_eq!(r.send_raw(0, &lldp), Vec::<usize>::new());
    assert_eq!(r.rx_drop(0, RxDrop::LinkLocal), 2);

    r.sw.settings.store(Settings {
        group_fwd_mask: 1 << 14,
        ..Settings::default()
    });
    assert_eq!(r.send_raw(0, &lldp), vec![1, 2]);
    assert_eq!(r.rx_drop(0, RxDrop::LinkLocal), 2);
    assert_eq!(r.flooded(FloodKind::Multicast), flooded + 1);
    // another group is still dropped under this mask
    assert_eq!(r.send(1, group(0x03), b), Vec::<usize>::new());
    assert_eq!(r.rx_drop(1, RxDrop::LinkLocal), 1);
    assert_eq!(r.port_of(b), Some(1));

    // PAUSE: dropped, and before learning
    let c = mac(3);
    assert_eq!(r.send(2, group(0x01), c), Vec::<usize>::new());
    assert_eq!(r.rx_drop(2, RxDrop::LinkLocal), 1);
    assert_eq!(r.port_of(c), None);

    // the bridge group address floods like multicast (no STP)
    r.sw.settings.store(Settings::default());
    assert_eq!(r.send(2, group(0x00), c), vec![0, 1]);
    assert_identity(&r.sw);
}

/// I1: a multicast, broadcast or zero source is dropped (invalid_source) and never learned.
#[test]
fn invalid_sources_are_dropped_and_not_learned() {
    let mut r = Rig::new(3);
    let bad = [
        MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
        MacAddr([0x03, 0x00, 0x00, 0x00, 0x00, 0x07]),
        BCAST,
        MacAddr::ZERO,
    ];
    for (n, s) in bad.iter().enumerate() {
        assert_eq!(r.send(0, BCAST, *s), Vec::<usize>::new(), "{s}");
        assert_eq!(r.send(0, mac(1), *s), Vec::<usize>::new(), "{s}");
        assert_eq!(r.rx_drop(0, RxDrop::InvalidSource), 2 * n as u64 + 2);
        assert_eq!(r.sw.fdb.port_of(&key(*s)), None, "{s} learned");
    }
    assert_eq!(r.sw.fdb.learned_count(), 0);
    assert_eq!(r.sw.fdb.stats.learned_total.load(Relaxed), 0);
    assert_eq!(r.forwarded() + r.flooded(FloodKind::Broadcast), 0);
    // A valid source on the same port still works.
    assert_eq!(r.send(0, BCAST, mac(1)), vec![1, 2]);
    assert_identity(&r.sw);
}

/// F7: a 14-byte frame (header only) is forwarded as received, not padded; 13 bytes is
/// too_short.
#[test]
fn runt_of_fourteen_bytes_is_forwarded_unpadded() {
    let r = Rig::new(3);
    let (a, b) = (mac(1), mac(2));
    let runt = build_frame(BCAST, a, 0x0800, &[]);
    assert_eq!(runt.len(), 14);
    assert_eq!(r.send_raw(0, &runt), vec![1, 2]);
    let runt_b = build_frame(BCAST, b, 0x86dd, &[]);
    assert_eq!(r.send_raw(1, &runt_b), vec![0, 2]);
    // known unicast runt
    let to_a = build_frame(a, b, 0x0806, &[]);
    assert_eq!(r.send_raw(1, &to_a), vec![0]);
    // a tagged runt: header + tag, 18 bytes
    let tagged = build_frame(a, b, 0x8100, &[0x00, 0x07, 0x08, 0x00]);
    assert_eq!(r.send_raw(1, &tagged), vec![0]);
    assert_eq!(r.send_raw(1, &to_a[..13]), Vec::<usize>::new());
    assert_eq!(r.rx_drop(1, RxDrop::TooShort), 1);
    // tagged EtherType without the 4 tag bytes
    assert_eq!(r.send_raw(1, &tagged[..17]), Vec::<usize>::new());
    assert_eq!(r.rx_drop(1, RxDrop::TruncatedVlan), 1);
    let qinq = build_frame(a, b, 0x88a8, &[0x00]);
    assert_eq!(r.send_raw(1, &qinq), Vec::<usize>::new());
    assert_eq!(r.rx_drop(1, RxDrop::TruncatedVlan), 2);
    assert_identity(&r.sw);
}

/// F5: at MTU 1500, 1518 bytes pass and 1519 are dropped (tx_drop mtu) per egress port; a
/// tagged frame may be 4 bytes longer; a port with a smaller MTU drops while others deliver.
#[test]
fn egress_mtu_limit() {
    let mut r = Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::new(1500), PortFlags::default()),
            (MemPort::new(1500), PortFlags::default()),
            (MemPort::new(1000), PortFlags::default()),
        ],
    );
    let a = mac(1);
    let untagged = |len: usize, fill: u8| build_frame(BCAST, a, 0x0800, &vec![fill; len - 14]);
    let tagged = |len: usize, fill: u8| {
        let mut p = vec![fill; len - 14];
        p[..4].copy_from_slice(&[0x00, 0x05, 0x08, 0x00]);
        build_frame(BCAST, a, 0x8100, &p)
    };
    assert_eq!(r.send_raw(0, &untagged(1518, 1)), vec![1]);
    assert_eq!(r.tx_drop(2, TxDrop::Mtu), 1);
    assert_eq!(r.send_raw(0, &untagged(1519, 2)), Vec::<usize>::new());
    assert_eq!(r.tx_drop(1, TxDrop::Mtu), 1);
    assert_eq!(r.tx_drop(2, TxDrop::Mtu), 2);
    assert_eq!(r.send_raw(0, &tagged(1522, 3)), vec![1]);
    assert_eq!(r.tx_drop(1, TxDrop::Mtu), 1);
    assert_eq!(r.send_raw(0, &tagged(1523, 4)), Vec::<usize>::new());
    assert_eq!(r.tx_drop(1, TxDrop::Mtu), 2);
    // the small port: 1000 + 18
    assert_eq!(r.send_raw(0, &untagged(1018, 5)), vec![1, 2]);
    assert_eq!(r.send_raw(0, &untagged(1019, 6)), vec![1]);
    assert_eq!(r.send_raw(0, &tagged(1022, 7)), vec![1, 2]);
    assert_eq!(r.send_raw(0, &tagged(1023, 8)), vec![1]);
    assert_eq!(r.tx_drop(2, TxDrop::Mtu), 6);
    // known unicast too
    let b = mac(2);
    r.send(2, BCAST, b);
    let big = build_frame(b, a, 0x0800, &[9; 1019 - 14]);
    assert_eq!(r.send_raw(0, &big), Vec::<usize>::new());
    assert_eq!(r.tx_drop(2, TxDrop::Mtu), 7);
    // ingress size is never checked: p2 sends 1518 to p0
    assert_eq!(
        r.send_raw(2, &build_frame(a, b, 0x0800, &[1; 1504])),
        vec![0]
    );
    // an MTU drop does not count as tx
    assert_eq!(r.handles[2].counters.tx_frames.load(Relaxed), 2);
    assert_identity(&r.sw);
}

/// T1/L8: an egress port whose sends fail with EIO counts port_down, goes Down and loses its
/// learned entries; the other ports keep forwarding; it comes back when sends work again.
#[test]
fn egress_port_down_flushes_and_others_keep_forwarding() {
    let mut r = Rig::new(3);
    let (a, b, c) = (mac(1), mac(2), mac(3));
    r.send(0, BCAST, a);
    r.send(1, BCAST, b);
    r.send(1, BCAST, mac(4));
    r.send(2, BCAST, c);
    assert_eq!(r.sw.fdb.learned_count(), 4);

    r.ports[1].set_up(false);
    assert_eq!(r.send(0, b, a), Vec::<usize>::new());
    assert_eq!(r.tx_drop(1, TxDrop::PortDown), 1);
    assert_eq!(r.handles[1].state(), LinkState::Down);
    assert_eq!(r.port_of(b), None, "entries of the down port flushed");
    assert_eq!(r.port_of(mac(4)), None);
    assert_eq!(r.port_of(a), Some(0));
    assert_eq!(r.port_of(c), Some(2));
    assert_eq!(r.sw.fdb.learned_count(), 2);
    assert_eq!(r.handles[1].counters.link_changes.load(Relaxed), 1);

    // others keep forwarding
    assert_eq!(r.send(0, c, a), vec![2]);
    assert_eq!(r.send(2, a, c), vec![0]);
    // b is now unknown: flooded; p2 gets it, p1 fails again
    assert_eq!(r.send(0, b, a), vec![2]);
    assert_eq!(r.tx_drop(1, TxDrop::PortDown), 2);
    assert_eq!(r.send(2, BCAST, c), vec![0]);
    assert_eq!(r.tx_drop(1, TxDrop::PortDown), 3);

    // link back
    r.ports[1].set_up(true);
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.handles[1].state(), LinkState::Up);
    assert_eq!(r.send(1, a, b), vec![0]);
    assert_eq!(r.send(0, b, a), vec![1]);
    assert_identity(&r.sw);
}

/// The frame path leaves whole-table work to the control thread: a port that goes down while
/// a frame is forwarded to it only asks for its flush; the table is unchanged until the
/// control work (the control thread's `control_work`) runs and flushes it.
#[test]
fn link_down_flush_is_control_work_not_frame_path() {
    let mut r = Rig::new(3);
    let (a, b) = (mac(1), mac(2));
    r.send(0, BCAST, a);
    r.send(1, BCAST, b);
    assert!(!r.sw.control_pending());
    r.ports[1].set_up(false);
    let f = r.frame(b, a);
    r.ports[0].inject(&f);
    let mut bufs = tapswitch::dataplane::RxBuffers::default();
    // the frame path alone: one drain of port 0, as a receive loop does
    assert_eq!(r.sw.drain(&r.handles[0], &mut bufs, 64).0, 1);
    assert_eq!(r.handles[1].state(), LinkState::Down);
    assert!(
        r.sw.control_pending(),
        "the frame path asked for control work"
    );
    assert_eq!(
        r.port_of(b),
        Some(1),
        "the frame path itself flushed nothing"
    );
    let work = r.sw.control_work();
    assert_eq!(work.flushed, 1);
    assert_eq!(r.port_of(b), None, "the control work flushed the down port");
    assert_eq!(r.port_of(a), Some(0));
    assert!(!r.sw.control_pending());
}

/// T2: a port whose peer does not read (tx limit reached) counts queue_full per frame; the
/// other ports receive everything, in order.
#[test]
fn full_egress_queue_drops_only_there() {
    let mut r = Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::default(), PortFlags::default()),
            (MemPort::default().with_tx_limit(4), PortFlags::default()),
            (MemPort::default(), PortFlags::default()),
        ],
    );
    let (a, c) = (mac(1), mac(3));
    let frames: Vec<Vec<u8>> = (0..20).map(|_| r.frame(BCAST, a)).collect();
    for f in &frames {
        r.ports[0].inject(f);
    }
    assert_eq!(r.sw.pump(), 20);
    assert_eq!(
        r.ports[2].take_sent(),
        frames,
        "p2 gets every frame, in order"
    );
    assert_eq!(r.tx_drop(1, TxDrop::QueueFull), 16);
    assert_eq!(r.handles[1].counters.tx_frames.load(Relaxed), 4);
    assert_eq!(r.handles[1].state(), LinkState::Up);
    assert!(r.ports[0].take_sent().is_empty());

    // unicast from p2 to p0 is untouched by p1's queue
    let to_a: Vec<Vec<u8>> = (0..5).map(|_| r.frame(a, c)).collect();
    for f in &to_a {
        r.ports[2].inject(f);
    }
    r.sw.pump();
    assert_eq!(r.ports[0].take_sent(), to_a);
    // p1 still holds the first four; once read, it receives again
    assert_eq!(r.ports[1].take_sent(), frames[..4].to_vec());
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.tx_drop(1, TxDrop::QueueFull), 16);
    assert_identity(&r.sw);
}

/// L7: with max_learned 2, a third source is not learned (counted) but its frames still flood,
/// and frames to it flood as unknown unicast.
#[test]
fn learned_limit_stops_learning_not_forwarding() {
    let mut r = Rig::with(
        Settings::default(),
        2,
        (0..3)
            .map(|_| (MemPort::default(), PortFlags::default()))
            .collect(),
    );
    let (a, b, c) = (mac(1), mac(2), mac(3));
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.send(1, BCAST, b), vec![0, 2]);
    assert_eq!(r.sw.fdb.stats.learn_limit_hits_total.load(Relaxed), 0);
    assert_eq!(r.send(2, BCAST, c), vec![0, 1]);
    assert_eq!(r.sw.fdb.learned_count(), 2);
    assert_eq!(r.port_of(c), None);
    assert_eq!(r.sw.fdb.stats.learn_limit_hits_total.load(Relaxed), 1);
    // to c: unknown unicast, flooded
    let u = r.flooded(FloodKind::UnknownUnicast);
    assert_eq!(r.send(0, c, a), vec![1, 2]);
    assert_eq!(r.flooded(FloodKind::UnknownUnicast), u + 1);
    // from c to a known MAC: forwarded; still not learned
    assert_eq!(r.send(2, a, c), vec![0]);
    assert_eq!(r.sw.fdb.stats.learn_limit_hits_total.load(Relaxed), 2);
    assert_eq!(r.port_of(c), None);
    // known sources refresh without hitting the limit
    assert_eq!(r.send(0, b, a), vec![1]);
    assert_eq!(r.sw.fdb.stats.learn_limit_hits_total.load(Relaxed), 2);
    assert!(r.sw.fdb.len() <= 2);
    assert_identity(&r.sw);
}

/// L5: `ageing_time 0` learns nothing; all unicast floods.
#[test]
fn ageing_zero_learns_nothing() {
    let mut r = Rig::with(
        Settings {
            ageing_ms: 0,
            ..Settings::default()
        },
        1024,
        (0..3)
            .map(|_| (MemPort::default(), PortFlags::default()))
            .collect(),
    );
    let (a, b) = (mac(1), mac(2));
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.send(1, a, b), vec![0, 2]);
    assert_eq!(r.send(0, b, a), vec![1, 2]);
    assert_eq!(r.send(0, b, a), vec![1, 2]);
    assert_eq!(r.sw.fdb.learned_count(), 0);
    assert!(r.sw.fdb.snapshot(r.sw.now()).is_empty());
    assert_eq!(r.forwarded(), 0);
    assert_eq!(r.flooded(FloodKind::UnknownUnicast), 3);
    assert_identity(&r.sw);
}

/// L3: with learning off on a port, its sources are not learned and unicast to them floods.
#[test]
fn learning_off_port_is_not_learned() {
    let nolearn = PortFlags::default().with(PortFlags::LEARNING, false);
    let mut r = Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::default(), nolearn),
            (MemPort::default(), PortFlags::default()),
            (MemPort::default(), PortFlags::default()),
        ],
    );
    let (a, b) = (mac(1), mac(2));
    assert_eq!(r.send(0, BCAST, a), vec![1, 2]);
    assert_eq!(r.port_of(a), None);
    assert_eq!(r.send(1, a, b), vec![0, 2]);
    assert_eq!(r.send(0, b, a), vec![1]);
    assert_identity(&r.sw);
}

/// L8: removing a port removes its entries; frames to them flood to the remaining ports.
#[test]
fn removed_port_entries_are_gone() {
    let mut r = Rig::new(3);
    let (a, b) = (mac(1), mac(2));
    r.send(0, BCAST, a);
    r.send(1, BCAST, b);
    assert!(r.sw.remove_port("p1").is_some());
    assert_eq!(r.port_of(b), None);
    let f = r.frame(b, a);
    r.ports[0].inject(&f);
    r.sw.pump();
    assert_eq!(r.ports[2].take_sent(), vec![f]);
    assert!(r.ports[1].take_sent().is_empty());
    assert!(r.sw.remove_port("p1").is_none());
}

/// An empty frame read from a port is a runt like any other: counted as too_short, and the
/// port keeps working.
#[test]
fn empty_frame_is_a_runt_not_end_of_port() {
    let mut r = Rig::new(2);
    r.ports[0].inject(&[]);
    r.sw.pump();
    assert_eq!(r.handles[0].counters.rx_frames.load(Relaxed), 1);
    assert_eq!(r.rx_drop(0, RxDrop::TooShort), 1);
    assert_eq!(r.handles[0].state(), LinkState::Up);
    assert_eq!(r.send(1, BCAST, mac(2)), vec![0]);
}

// ---------------------------------------------------------------------------------------------
// Ports that follow their link (TAP, packet, dgram, vhost), simulated with MemPort::with_link
// ---------------------------------------------------------------------------------------------

/// Frames `p` was sent since the last call, BPDUs left out.
fn data_frames(p: &MemPort) -> Vec<Vec<u8>> {
    let stp = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]);
    p.take_sent()
        .into_iter()
        .filter(|f| mac_of(f) != stp)
        .collect()
}

/// Issue 24 item 1: with the spanning tree on, a host attached while the switch runs (its
/// link down at first, then brought up) gets traffic as soon as its link is up, without
/// sending anything itself. The frame path never wrote to it while it was down (no
/// `port_down` drops from floods), and the port's state follows the link both ways.
#[test]
fn port_comes_back_with_its_link_under_stp_without_its_host_speaking() {
    use tapswitch::port::Link;
    let edge = tapswitch::stp::PortConfig {
        admin_edge: true,
        ..Default::default()
    };
    let sw = Switch::new("br-link", Settings::default(), 1024);
    sw.set_stp(true).unwrap();
    let a = Arc::new(MemPort::default().with_link());
    let b = Arc::new(MemPort::default().with_link());
    b.set_link(Link::Down); // b's host is not up yet
    let ha = sw
        .add_port("a", Box::new(a.clone()), PortFlags::default())
        .unwrap();
    let hb = sw
        .add_port("b", Box::new(b.clone()), PortFlags::default())
        .unwrap();
    sw.set_port_stp(&ha, edge).unwrap();
    sw.set_port_stp(&hb, edge).unwrap();
    assert_eq!(
        hb.state(),
        LinkState::Down,
        "a port starts in its link's state"
    );
    // the control thread's periodic work: a forwards (edge), b stays disabled
    for _ in 0..50 {
        sw.tick();
        if ha.stp_gate.forwards() {
            break;
        }
    }
    assert!(ha.stp_gate.forwards());
    assert!(!hb.stp_gate.forwards());
    // a's host pings b's address before b is up: the ARP broadcast floods nowhere
    let (ma, mb) = (mac(1), mac(2));
    let arp = build_frame(MacAddr([0xff; 6]), ma, 0x0806, &[0; 46]);
    a.inject(&arp);
    sw.pump();
    assert!(data_frames(&b).is_empty());
    assert_eq!(
        hb.counters.tx_dropped_total(),
        0,
        "a down port is left out of floods, not written to"
    );
    // b's host brings its link up; it sends nothing
    b.set_link(Link::Up);
    for _ in 0..50 {
        sw.tick();
        if hb.stp_gate.forwards() {
            break;
        }
    }
    assert_eq!(hb.state(), LinkState::Up);
    assert!(hb.stp_gate.forwards(), "the edge port forwards again");
    assert_eq!(hb.counters.link_changes.load(Relaxed), 1);
    // a's next ARP reaches b, and so does unicast to b's (unknown) MAC
    a.inject(&arp);
    let uni = build_frame(mb, ma, 0x0800, &[7; 46]);
    a.inject(&uni);
    sw.pump();
    assert_eq!(data_frames(&b), vec![arp.clone(), uni]);
    // the link goes down again: the state follows, the port's entries go, floods skip it
    b.inject(&build_frame(ma, mb, 0x0800, &[8; 46]));
    sw.pump();
    assert_eq!(sw.fdb.port_of(&key(mb)), Some(hb.id));
    b.set_link(Link::Down);
    assert_eq!(sw.poll_links(), 1);
    sw.control_work();
    assert_eq!(hb.state(), LinkState::Down);
    assert_eq!(sw.fdb.port_of(&key(mb)), None, "flushed on link down");
    a.inject(&arp);
    sw.pump();
    assert!(data_frames(&b).is_empty());
    assert_eq!(hb.counters.tx_dropped_total(), 0);
    assert_identity(&sw);
}

/// Without the spanning tree too: a port whose link is down is out of floods (a vhost port
/// without a guest counted every flooded frame as a `port_down` drop); known unicast to it is
/// a `port_down` drop; its state is what its link says, and a frame read from it while it is
/// thought down asks for the link to be read at once.
#[test]
fn down_link_is_out_of_floods_and_unicast_to_it_is_counted() {
    use tapswitch::port::Link;
    let mut r = Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::default(), PortFlags::default()),
            (MemPort::default().with_link(), PortFlags::default()),
            (MemPort::default(), PortFlags::default()),
        ],
    );
    let (a, b, c) = (mac(1), mac(2), mac(3));
    r.send(1, BCAST, b);
    assert_eq!(r.port_of(b), Some(1));
    r.ports[1].set_link(Link::Down);
    assert_eq!(r.sw.poll_links(), 1);
    r.sw.control_work();
    assert_eq!(r.handles[1].state(), LinkState::Down);
    assert_eq!(r.send(0, BCAST, a), vec![2]);
    assert_eq!(r.send(0, c, a), vec![2], "unknown unicast floods around it");
    assert_eq!(r.handles[1].counters.tx_dropped_total(), 0);
    // learned again (a static entry would stay): known unicast to the down port is dropped
    r.sw.fdb
        .insert_user(
            key(b),
            r.handles[1].id,
            tapswitch::fdb::EntryKind::Static,
            false,
            r.sw.now(),
        )
        .unwrap();
    assert_eq!(r.send(0, b, a), Vec::<usize>::new());
    assert_eq!(r.tx_drop(1, TxDrop::PortDown), 1);
    // a frame read from it while down: its link is read at once, not at the next period
    assert!(!r.sw.control_pending());
    r.ports[1].set_link(Link::Up);
    let f = r.frame(a, b);
    r.ports[1].inject(&f);
    r.sw.pump();
    assert_eq!(
        r.ports[0].take_sent(),
        vec![f],
        "a frame read while down is forwarded"
    );
    assert_eq!(
        r.handles[1].state(),
        LinkState::Up,
        "the pump's control work read the link"
    );
    assert_eq!(r.send(0, b, a), vec![1]);
    assert_eq!(r.handles[1].counters.link_changes.load(Relaxed), 2);
    assert_identity(&r.sw);
}

// ---------------------------------------------------------------------------------------------
// GSO bounds: one frame from an offload port (a guest, a TAP or packet port with vnet_hdr)
// may not make tens of thousands of segments at each port without offloads

/// A virtio_net_hdr + broadcast TCP (or UDP, `udp`) over IPv4 GSO frame with `opts` bytes of
/// TCP options, `payload` bytes cut at `gso_size`, checksum left partial.
fn gso_frame(udp: bool, opts: usize, payload: usize, gso_size: u16) -> Vec<u8> {
    use tapswitch::offload::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_UDP_L4};
    let l4_hlen = if udp { 8 } else { 20 + opts };
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4_hlen + payload) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, if udp { 17 } else { 6 }, 0, 0]);
    ip.extend_from_slice(&[198, 18, 50, 1, 198, 18, 50, 2]);
    let mut l4 = vec![0u8; l4_hlen];
    l4[..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
    if udp {
        l4[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    } else {
        l4[12] = ((l4_hlen / 4) as u8) << 4;
        l4[13] = 0x18;
        l4[20..].fill(1);
    }
    ip.extend_from_slice(&l4);
    ip.extend((0..payload).map(|i| (i * 7) as u8));
    let frame = build_frame(BCAST, mac(0x61), 0x0800, &ip);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if udp { GSO_UDP_L4 } else { GSO_TCPV4 },
        hdr_len: (34 + l4_hlen) as u16,
        gso_size,
        csum_start: 34,
        csum_offset: if udp { 6 } else { 16 },
    };
    let mut pkt = vec![0u8; tapswitch::offload::VNET_HDR_LEN];
    hdr.write(&mut pkt);
    pkt.extend_from_slice(&frame);
    pkt
}

/// A guest port (offload), a plain port with a 9000-byte MTU and an offload port.
fn gso_rig() -> Rig {
    Rig::with(
        Settings::default(),
        1024,
        vec![
            (MemPort::new(9000).with_vnet_hdr(), PortFlags::default()),
            (MemPort::new(9000), PortFlags::default()),
            (MemPort::new(9000).with_vnet_hdr(), PortFlags::default()),
        ],
    )
}

/// Sends `pkt` from the guest port; returns what the plain and the offload port got.
fn gso_send(r: &Rig, pkt: &[u8]) -> (usize, usize) {
    r.ports[0].inject(pkt);
    assert_eq!(r.sw.pump(), 1);
    (r.ports[1].take_sent().len(), r.ports[2].take_sent().len())
}

#[test]
fn a_gso_frame_of_one_byte_segments_is_dropped_once_at_ingress() {
    let r = gso_rig();
    // the positive control: a frame at the bound goes everywhere, cut for the plain port
    assert_eq!(gso_send(&r, &gso_frame(false, 0, 4800, 48)), (100, 1));
    assert_eq!(r.rx_drop(0, RxDrop::BadGso), 0);
    // a 64 KiB frame with a gso_size of 1: 65,000 segments per plain port; dropped, once
    assert_eq!(gso_send(&r, &gso_frame(false, 0, 65_000, 1)), (0, 0));
    assert_eq!(r.rx_drop(0, RxDrop::BadGso), 1);
    for i in 1..3 {
        assert_eq!(r.handles[i].counters.tx_dropped_total(), 0, "p{i}");
    }
    // one below the bound is dropped too; the bound counts TCP options as Linux's does
    assert_eq!(gso_send(&r, &gso_frame(false, 0, 4800, 47)), (0, 0));
    assert_eq!(gso_send(&r, &gso_frame(false, 12, 3600, 36)), (100, 1));
    assert_eq!(gso_send(&r, &gso_frame(false, 12, 3600, 35)), (0, 0));
    assert_eq!(gso_send(&r, &gso_frame(false, 40, 800, 8)), (100, 1));
    assert_eq!(gso_send(&r, &gso_frame(false, 40, 800, 7)), (0, 0));
    // a frame that makes one segment is not really GSO: it passes whatever its gso_size
    assert_eq!(gso_send(&r, &gso_frame(false, 0, 1, 1)), (1, 1));
    assert_eq!(r.rx_drop(0, RxDrop::BadGso), 4);
    // the drop is the frame's only verdict
    assert_identity(&r.sw);
    // a metric label and a key of the port's JSON
    let text = tapswitch::metrics::render(&r.sw);
    assert!(
        text.contains("tapswitch_port_rx_dropped_total{port=\"p0\",reason=\"bad_gso\"} 4"),
        "{text}"
    );
    let json = tapswitch::api::port_json(&r.sw, &r.handles[0], 0);
    assert_eq!(
        json["counters"]["rx_dropped_by_reason"]["bad_gso"], 4,
        "{json}"
    );
}

#[test]
fn udp_gso_over_the_segment_cap_is_refused() {
    let r = gso_rig();
    // 128 segments (Linux's UDP_MAX_SEGMENTS), even of one byte each: fine
    assert_eq!(gso_send(&r, &gso_frame(true, 0, 128 * 100, 100)), (128, 1));
    assert_eq!(gso_send(&r, &gso_frame(true, 0, 128, 1)), (128, 1));
    assert_eq!(r.rx_drop(0, RxDrop::BadGso), 0);
    // one byte more makes 129
    assert_eq!(
        gso_send(&r, &gso_frame(true, 0, 128 * 100 + 1, 100)),
        (0, 0)
    );
    assert_eq!(gso_send(&r, &gso_frame(true, 0, 60_000, 1)), (0, 0));
    assert_eq!(r.rx_drop(0, RxDrop::BadGso), 2);
    assert_identity(&r.sw);
}

/// Legal GSO frames at the floor cost many writes each on a plain port: a batch ends early
/// once it has written its share of software segments (`SEG_BUDGET`), so one guest cannot
/// hold a worker for a whole batch of them; the rest is read on the next turn.
#[test]
fn a_batch_of_floor_sized_gso_frames_ends_early_and_loses_nothing() {
    use tapswitch::dataplane::{DrainEnd, RxBuffers};
    let r = gso_rig();
    // nearly 64 KiB at the 48-byte floor: 1,355 segments per plain port
    let pkt = gso_frame(false, 0, 65_000, 48);
    for _ in 0..64 {
        r.ports[0].inject(&pkt);
    }
    let mut bufs = RxBuffers::default();
    let (n, end) = r.sw.drain(&r.handles[0], &mut bufs, 64);
    assert_eq!(end, DrainEnd::BatchFull);
    let budget = tapswitch::dataplane::forward::SEG_BUDGET;
    assert_eq!(n, budget.div_ceil(1355), "frames in the first batch");
    assert_eq!(r.ports[1].take_sent().len(), n * 1355);
    // nothing lost: the next drains take the rest
    let mut total = n;
    while total < 64 {
        let (k, _) = r.sw.drain(&r.handles[0], &mut bufs, 64);
        assert!(k > 0);
        total += k;
    }
    assert_eq!(r.ports[1].take_sent().len(), (64 - n) * 1355);
    assert_eq!(r.rx_drop(0, RxDrop::BadGso), 0);
    assert_eq!(
        r.ports[2].take_sent().len(),
        64,
        "the offload port gets each frame whole"
    );
    assert_identity(&r.sw);
}

#[test]
fn the_event_bus_reports_ports_and_spanning_tree_states() {
    use tapswitch::events::Event;
    use tapswitch::port::Link;
    let sw = Switch::new("br-events", Settings::default(), 1024);
    let mut rx = sw.events.subscribe();
    sw.set_stp(true).unwrap();
    let a = Arc::new(MemPort::default().with_link());
    let ha = sw
        .add_port("a", Box::new(a.clone()), PortFlags::default())
        .unwrap();
    let edge = tapswitch::stp::PortConfig {
        admin_edge: true,
        ..Default::default()
    };
    sw.set_port_stp(&ha, edge).unwrap();
    for _ in 0..50 {
        sw.tick();
        if ha.stp_gate.forwards() {
            break;
        }
    }
    assert!(ha.stp_gate.forwards());
    a.set_link(Link::Down);
    for _ in 0..50 {
        sw.tick();
        if ha.state() == LinkState::Down {
            break;
        }
    }
    sw.tick();
    sw.remove_port("a");
    let seen: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e {
            Event::Port { name, state, .. } => Some(format!("{name} port {state}")),
            Event::Stp { name, state, .. } => Some(format!("{name} stp {state}")),
            Event::Fdb { .. } | Event::FdbSeq { .. } | Event::Mdb(_) => None,
        })
        .collect();
    let at = |s: &str| {
        seen.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("no '{s}' in {seen:?}"))
    };
    assert!(at("a port attached") < at("a stp forwarding"));
    assert!(at("a stp forwarding") < at("a port down"));
    assert!(at("a port down") < at("a port removed"));
}
