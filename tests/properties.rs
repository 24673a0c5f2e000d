//! Properties of the whole dataplane over random switches and random frames (rootless, no
//! runtime): a switch with 2..=8 in-memory ports and random flags, a random sequence of frames
//! (valid, multicast/zero sources, link-local groups, tagged, truncated, garbage) and flag
//! changes. After every frame the switch is pumped and every port's output read, and:
//!
//! 1. a frame never leaves through its ingress port unless that port has `hairpin`;
//! 2. no port gets a frame twice, and every output is the input byte for byte;
//! 3. a flood reaches exactly the ports where `flood_eligible` holds with the flags of that
//!    moment; known unicast reaches exactly its port; drops reach nobody and count the reason
//!    a reference model of `ANCHORS.md` (b) predicts;
//! 4. nothing panics, and rx_frames == forwarded + flooded + rx_dropped, in total and per frame.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::FdbKey;
use tapswitch::forwarding::{flood_eligible, FloodKind, Mode, PortFlags, RxDrop, Settings};
use tapswitch::port::mem::MemPort;
use tapswitch::wire::MacAddr;

/// The flags the strategies vary (no locked/uplink: VEPA and locked ports are out of scope).
const VARIED: [PortFlags; 6] = [
    PortFlags::HAIRPIN,
    PortFlags::ISOLATED,
    PortFlags::FLOOD,
    PortFlags::MCAST_FLOOD,
    PortFlags::BCAST_FLOOD,
    PortFlags::LEARNING,
];

fn flags_from_bits(bits: u8) -> PortFlags {
    VARIED
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .fold(PortFlags::NONE, |acc, (_, f)| acc.with(*f, true))
}

fn unicast(n: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, n])
}

/// Unicast sources that the table may hold.
const UNICAST_POOL: u8 = 5;

fn src_strategy() -> impl Strategy<Value = MacAddr> {
    prop_oneof![
        6 => (1..=UNICAST_POOL).prop_map(unicast),
        1 => Just(MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01])),
        1 => Just(MacAddr::ZERO),
        1 => Just(MacAddr::BROADCAST),
    ]
}

fn dst_strategy() -> impl Strategy<Value = MacAddr> {
    prop_oneof![
        6 => (1..=UNICAST_POOL + 1).prop_map(unicast),
        2 => Just(MacAddr::BROADCAST),
        1 => Just(MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb])),
        1 => Just(MacAddr([0x33, 0x33, 0x00, 0x00, 0x00, 0x01])),
        2 => (0u8..16).prop_map(|x| MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, x])),
    ]
}

fn ethertype_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0x0800u16),
        Just(0x0806),
        Just(0x86dd),
        Just(0x8100),
        Just(0x88a8),
        Just(0x88cc),
        any::<u16>(),
    ]
}

/// One step of a scenario.
#[derive(Clone, Debug)]
enum Op {
    /// A header-built frame, optionally cut short (runts, truncated tags).
    Frame {
        ingress: usize,
        dst: MacAddr,
        src: MacAddr,
        ethertype: u16,
        payload_len: usize,
        cut: Option<usize>,
    },
    /// Random bytes (at least one: an empty read means end-of-port; see tests/scenario.rs).
    Garbage { ingress: usize, bytes: Vec<u8> },
    /// Flags change at run time.
    SetFlags { port: usize, flags: PortFlags },
}

impl Op {
    /// The frame bytes, made unique by `seq` when long enough to carry it.
    fn bytes(&self, seq: u16) -> Option<(usize, Vec<u8>)> {
        let (ingress, mut b) = match self {
            Op::Frame {
                ingress,
                dst,
                src,
                ethertype,
                payload_len,
                cut,
            } => {
                let mut b = Vec::with_capacity(14 + payload_len);
                b.extend_from_slice(&dst.0);
                b.extend_from_slice(&src.0);
                b.extend_from_slice(&ethertype.to_be_bytes());
                b.extend((0..*payload_len).map(|i| i as u8));
                if let Some(c) = cut {
                    b.truncate(*c);
                }
                (*ingress, b)
            }
            Op::Garbage { ingress, bytes } => (*ingress, bytes.clone()),
            Op::SetFlags { .. } => return None,
        };
        // Bytes 18..20: after the header and a possible tag, so the seq never changes how the
        // frame parses.
        if b.len() >= 20 {
            b[18..20].copy_from_slice(&seq.to_be_bytes());
        }
        Some((ingress, b))
    }
}

fn op_strategy(nports: usize, garbage_weight: u32) -> impl Strategy<Value = Op> {
    let frame = (
        0..nports,
        dst_strategy(),
        src_strategy(),
        ethertype_strategy(),
        0usize..186,
        prop_oneof![4 => Just(None), 1 => (1usize..22).prop_map(Some)],
    )
        .prop_map(
            |(ingress, dst, src, ethertype, payload_len, cut)| Op::Frame {
                ingress,
                dst,
                src,
                ethertype,
                payload_len,
                cut,
            },
        );
    let garbage = (0..nports, proptest::collection::vec(any::<u8>(), 1..200))
        .prop_map(|(ingress, bytes)| Op::Garbage { ingress, bytes });
    let flags = (0..nports, any::<u8>()).prop_map(|(port, bits)| Op::SetFlags {
        port,
        flags: flags_from_bits(bits),
    });
    prop_oneof![
        12 => frame,
        garbage_weight => garbage,
        1 => flags,
    ]
}

#[derive(Clone, Debug)]
struct Case {
    flags: Vec<PortFlags>,
    group_fwd_mask: u16,
    ops: Vec<Op>,
}

fn case_strategy(garbage_weight: u32) -> impl Strategy<Value = Case> {
    (2usize..=8).prop_flat_map(move |n| {
        (
            proptest::collection::vec(
                prop_oneof![
                    2 => Just(PortFlags::default()),
                    3 => any::<u8>().prop_map(flags_from_bits),
                ],
                n,
            ),
            prop_oneof![3 => Just(0u16), 1 => any::<u16>()],
            proptest::collection::vec(op_strategy(n, garbage_weight), 1..60),
        )
            .prop_map(|(flags, group_fwd_mask, ops)| Case {
                flags,
                group_fwd_mask,
                ops,
            })
    })
}

/// What the reference model expects of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Drop(RxDrop),
    Forward(usize),
    Flood(FloodKind),
}

/// The bridge rules of ANCHORS.md (b) for a VLAN-unaware switch with default ageing:
/// I1, I2/I4/I5 (with tapswitch's every-bit mask), L2, L3, F1-F4.
struct Model {
    flags: Vec<PortFlags>,
    mask: u16,
    table: HashMap<MacAddr, usize>,
}

impl Model {
    fn frame(&mut self, ingress: usize, b: &[u8]) -> Expect {
        if b.len() < 14 {
            return Expect::Drop(RxDrop::TooShort);
        }
        let et = u16::from_be_bytes([b[12], b[13]]);
        if (et == 0x8100 || et == 0x88a8) && b.len() < 18 {
            return Expect::Drop(RxDrop::TruncatedVlan);
        }
        let mut dst = [0; 6];
        dst.copy_from_slice(&b[0..6]);
        let dst = MacAddr(dst);
        let mut src = [0; 6];
        src.copy_from_slice(&b[6..12]);
        let src = MacAddr(src);
        if src.0[0] & 1 != 0 || src == MacAddr::ZERO {
            return Expect::Drop(RxDrop::InvalidSource);
        }
        let ll = if dst.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && dst.0[5] <= 0x0f {
            Some(dst.0[5])
        } else {
            None
        };
        let masked = |g: u8| self.mask & (1 << g) == 0;
        if ll == Some(1) && masked(1) {
            return Expect::Drop(RxDrop::LinkLocal); // before learning
        }
        let inf = self.flags[ingress];
        if inf.contains(PortFlags::LEARNING) {
            self.table.insert(src, ingress);
        }
        if matches!(ll, Some(g) if g != 0 && masked(g)) {
            return Expect::Drop(RxDrop::LinkLocal);
        }
        if dst == MacAddr::BROADCAST {
            return Expect::Flood(FloodKind::Broadcast);
        }
        if dst.0[0] & 1 != 0 {
            // snooping (on by default) drops what Linux's br_multicast_rcv drops: an IPv4 or
            // IPv6 packet whose IP header or IGMP/MLD message the parser refuses (the parser
            // is tested against the kernel's own bytes in src/wire)
            if let Ok(f) = tapswitch::wire::EthernetFrame::new_checked(b) {
                let et = f.inner_ethertype();
                let ip = matches!(
                    et,
                    tapswitch::wire::EtherType::Ipv4 | tapswitch::wire::EtherType::Ipv6
                );
                if ip && tapswitch::wire::inspect(et, f.payload()).is_err() {
                    return Expect::Drop(RxDrop::McastInvalid);
                }
            }
            return Expect::Flood(FloodKind::Multicast);
        }
        match self.table.get(&dst) {
            Some(&out) if out == ingress && !inf.contains(PortFlags::HAIRPIN) => {
                Expect::Drop(RxDrop::SamePort)
            }
            Some(&out)
                if inf.contains(PortFlags::ISOLATED)
                    && self.flags[out].contains(PortFlags::ISOLATED) =>
            {
                Expect::Drop(RxDrop::Isolated)
            }
            Some(&out) => Expect::Forward(out),
            None => Expect::Flood(FloodKind::UnknownUnicast),
        }
    }
}

/// Switch-wide counter totals.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Totals {
    rx: u64,
    tx: u64,
    forwarded: u64,
    flooded: [u64; 3],
    dropped: Vec<[u64; RxDrop::COUNT]>,
}

impl Totals {
    fn read(sw: &Switch, handles: &[Arc<PortHandle>]) -> Totals {
        Totals {
            rx: handles
                .iter()
                .map(|h| h.counters.rx_frames.load(Relaxed))
                .sum(),
            tx: handles
                .iter()
                .map(|h| h.counters.tx_frames.load(Relaxed))
                .sum(),
            forwarded: sw.stats.forwarded.load(Relaxed),
            flooded: FloodKind::ALL.map(|k| sw.stats.flooded(k).load(Relaxed)),
            dropped: handles
                .iter()
                .map(|h| std::array::from_fn(|i| h.counters.rx_dropped[i].load(Relaxed)))
                .collect(),
        }
    }
    fn dropped_total(&self) -> u64 {
        self.dropped.iter().flatten().sum()
    }
    fn handled(&self) -> u64 {
        self.forwarded + self.flooded.iter().sum::<u64>() + self.dropped_total()
    }
}

fn kind_index(k: FloodKind) -> usize {
    FloodKind::ALL.iter().position(|x| *x == k).unwrap()
}

/// How many frames met each outcome, by label (`forward`, `flood:broadcast`, `drop:isolated`...).
type Tally = BTreeMap<String, u64>;

fn run_case(case: &Case) -> Result<Tally, TestCaseError> {
    let mut tally = Tally::new();
    let sw = Switch::new(
        "br-prop",
        Settings {
            group_fwd_mask: case.group_fwd_mask,
            ..Settings::default()
        },
        1024,
    );
    let mut ports = Vec::new();
    let mut handles = Vec::new();
    for (i, f) in case.flags.iter().enumerate() {
        let p = Arc::new(MemPort::default());
        handles.push(
            sw.add_port(&format!("p{i}"), Box::new(p.clone()), *f)
                .unwrap(),
        );
        ports.push(p);
    }
    let mut model = Model {
        flags: case.flags.clone(),
        mask: case.group_fwd_mask,
        table: HashMap::new(),
    };
    let mut frames_sent = 0u64;
    let mut outputs = 0u64;

    for (seq, op) in case.ops.iter().enumerate() {
        if let Op::SetFlags { port, flags } = op {
            handles[*port].flags.set(*flags);
            model.flags[*port] = *flags;
            continue;
        }
        let (ingress, bytes) = op.bytes(seq as u16).expect("a frame op");
        let before = Totals::read(&sw, &handles);
        let in_flags = handles[ingress].flags.get();

        ports[ingress].inject(&bytes);
        frames_sent += 1;
        prop_assert_eq!(sw.pump(), 1);

        let mut got = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let sent = p.take_sent();
            // (2) at most once per port, unchanged
            prop_assert!(sent.len() <= 1, "p{} got {} copies", i, sent.len());
            for f in &sent {
                prop_assert_eq!(f, &bytes, "p{} got a changed frame", i);
                got.push(i);
            }
        }
        outputs += got.len() as u64;
        if got.contains(&ingress) {
            *tally.entry("hairpin_reflection".into()).or_default() += 1;
        }
        // (1) never back out of the ingress port without hairpin
        if got.contains(&ingress) {
            prop_assert!(
                in_flags.contains(PortFlags::HAIRPIN),
                "frame left through its ingress p{} without hairpin",
                ingress
            );
        }

        let after = Totals::read(&sw, &handles);
        // (4) per frame: exactly one of forwarded / flooded / dropped
        prop_assert_eq!(after.rx, before.rx + 1);
        prop_assert_eq!(after.handled(), before.handled() + 1);
        prop_assert_eq!(after.tx, before.tx + got.len() as u64);

        let expect = model.frame(ingress, &bytes);
        let label = match expect {
            Expect::Drop(r) => format!("drop:{}", r.label()),
            Expect::Forward(_) => "forward".to_string(),
            Expect::Flood(k) => format!("flood:{}", k.label()),
        };
        *tally.entry(label).or_default() += 1;
        match expect {
            Expect::Drop(r) => {
                prop_assert!(got.is_empty(), "dropped ({:?}) but sent to {:?}", r, got);
                prop_assert_eq!(
                    after.dropped[ingress][r.index()],
                    before.dropped[ingress][r.index()] + 1,
                    "expected drop {:?}",
                    r
                );
            }
            Expect::Forward(out) => {
                prop_assert_eq!(after.forwarded, before.forwarded + 1);
                prop_assert_eq!(&got, &vec![out], "known unicast");
            }
            Expect::Flood(kind) => {
                let k = kind_index(kind);
                prop_assert_eq!(after.flooded[k], before.flooded[k] + 1, "{:?}", kind);
                // (3) exactly the eligible ports, with the flags of this moment
                let want: Vec<usize> = handles
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| {
                        flood_eligible(
                            Mode::Veb,
                            handles[ingress].id,
                            in_flags,
                            h.id,
                            h.flags.get(),
                            kind,
                            None,
                        )
                    })
                    .map(|(i, _)| i)
                    .collect();
                prop_assert_eq!(&got, &want, "flood {:?} from p{}", kind, ingress);
                if got.len() >= 2 {
                    *tally.entry("flood_reached_several".into()).or_default() += 1;
                }
            }
        }
        // The table agrees with the model for every unicast MAC.
        for n in 1..=UNICAST_POOL + 1 {
            let m = unicast(n);
            let real = sw
                .fdb
                .port_of(&FdbKey::new(m, 0))
                .map(|id| handles.iter().position(|h| h.id == id).unwrap());
            prop_assert_eq!(real, model.table.get(&m).copied(), "table entry of {}", m);
        }
    }

    // (4) in total
    let t = Totals::read(&sw, &handles);
    prop_assert_eq!(t.rx, frames_sent);
    prop_assert_eq!(t.handled(), t.rx);
    prop_assert_eq!(t.tx, outputs);
    prop_assert_eq!(sw.fdb.learned_count(), model.table.len());
    Ok(tally)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Keep the repository clean: no proptest-regressions files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Properties 1-4 on mostly well-formed traffic with random flags and flag changes.
    #[test]
    fn forwarding_follows_bridge_rules(case in case_strategy(2)) {
        run_case(&case)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Property 4 with garbage-heavy traffic: runts, truncated tags, random bytes.
    #[test]
    fn garbage_never_panics_and_counters_balance(case in case_strategy(24)) {
        run_case(&case)?;
    }
}

/// The edge lengths around the header and the tag, on every ingress flag set.
#[test]
fn header_and_tag_edges() {
    for bits in [0u8, 0x3f, 0x01, 0x20] {
        let case = Case {
            flags: vec![flags_from_bits(bits), PortFlags::default()],
            group_fwd_mask: 0,
            ops: [1usize, 13, 14, 15, 17, 18, 19]
                .iter()
                .flat_map(|&len| {
                    [0x0800u16, 0x8100, 0x88a8].map(|et| Op::Frame {
                        ingress: 0,
                        dst: MacAddr::BROADCAST,
                        src: unicast(1),
                        ethertype: et,
                        payload_len: 10,
                        cut: Some(len),
                    })
                })
                .collect(),
        };
        run_case(&case).unwrap();
    }
}

/// The strategies are not vacuous: over a fixed-seed sample, every outcome the properties
/// distinguish occurs, and the flooded sets are not trivially empty.
#[test]
fn strategies_cover_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = Tally::new();
    for weight in [2, 24] {
        let strategy = case_strategy(weight);
        for _ in 0..64 {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            for (k, v) in run_case(&case).unwrap() {
                *total.entry(k).or_default() += v;
            }
        }
    }
    for want in [
        "forward",
        "flood:broadcast",
        "flood:multicast",
        "flood:unknown_unicast",
        "drop:too_short",
        "drop:truncated_vlan",
        "drop:invalid_source",
        "drop:link_local",
        "drop:same_port",
        "drop:isolated",
        "flood_reached_several",
        "hairpin_reflection",
    ] {
        assert!(
            total.get(want).copied().unwrap_or(0) > 0,
            "{want} never happened: {total:?}"
        );
    }
    eprintln!("outcomes: {total:?}");
}

proptest! {
    #![proptest_config(config(16))]

    /// Concurrent receive (what several dataplane threads reading multiqueue ports do): 2-4
    /// threads drain their own ports at once, with learning, moves, floods and unicast between
    /// them. Afterwards the counters balance per port and in total, every frame sent is
    /// counted, and the table holds only valid sources on existing ports, within its limit.
    #[test]
    fn concurrent_receive_keeps_counters_and_table_consistent(
        nthreads in 2usize..=4,
        frames in proptest::collection::vec((src_strategy(), dst_strategy()), 50..400),
        limit in 2usize..8,
    ) {
        let sw = Switch::new("mt", Settings::default(), limit);
        let ports: Vec<Arc<MemPort>> = (0..nthreads).map(|_| Arc::new(MemPort::default())).collect();
        let handles: Vec<Arc<PortHandle>> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| sw.add_port(&format!("q{i}"), Box::new(p.clone()), PortFlags::default()).unwrap())
            .collect();
        // every thread gets every frame on its own port: sources move between ports all the time
        for p in &ports {
            for (s, d) in &frames {
                let mut f = Vec::new();
                f.extend_from_slice(&d.0);
                f.extend_from_slice(&s.0);
                f.extend_from_slice(&[0x88, 0xb5, 1, 2, 3, 4]);
                p.inject(&f);
            }
        }
        std::thread::scope(|scope| {
            for h in &handles {
                let sw = &sw;
                scope.spawn(move || {
                    let mut bufs = tapswitch::dataplane::RxBuffers::default();
                    tapswitch::port::set_worker_index(h.id.0 as usize);
                    while sw.drain(h, &mut bufs, 8).0 > 0 {}
                });
            }
        });
        sw.control_work();
        let mut rx = 0;
        let mut verdicts = 0;
        let mut tx_frames = 0;
        let mut sent = 0;
        for (h, p) in handles.iter().zip(&ports) {
            let c = &h.counters;
            let r = c.rx_frames.load(Relaxed);
            let v = c.rx_forwarded.load(Relaxed) + c.rx_flooded.load(Relaxed) + c.rx_dropped_total();
            prop_assert_eq!(r, frames.len() as u64, "every frame read once");
            prop_assert_eq!(r, v, "per-port identity");
            rx += r;
            verdicts += v;
            tx_frames += c.tx_frames.load(Relaxed);
            sent += p.take_sent().len() as u64;
        }
        prop_assert_eq!(rx, verdicts);
        prop_assert_eq!(tx_frames, sent, "tx counters match what the ports got");
        let s = &sw.stats;
        let flooded: u64 = s.flooded.iter().map(|a| a.load(Relaxed)).sum();
        let dropped: u64 = handles.iter().map(|h| h.counters.rx_dropped_total()).sum();
        prop_assert_eq!(rx, s.forwarded.load(Relaxed) + flooded + dropped, "switch-wide identity");
        prop_assert!(sw.fdb.learned_count() <= limit);
        for e in sw.fdb.snapshot(sw.now()) {
            prop_assert!(e.mac.is_valid_source());
            prop_assert!(handles.iter().any(|h| h.id == e.port));
        }
    }
}
