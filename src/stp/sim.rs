//! Simulation: an in-memory network of [`Stp`] bridges. Transmit actions are delivered at
//! once (zero latency, in order) to every other port on the same segment (a point-to-point
//! link, or a hub); time advances in 100 ms steps with [`Stp::tick`].
//!
//! Safety is checked after every single delivered BPDU and every tick: the links over
//! which frames can pass (both ends forwarding, or a hub port forwarding) never form a
//! cycle. Convergence means: one root (the lowest bridge id of the connected part), no
//! port learning, and the active links form a spanning tree.
//!
//! Run with `--nocapture` to see the measured convergence times.

use std::collections::VecDeque;

use super::*;
use crate::types::{PortId, Timestamp};
use crate::wire::MacAddr;

const STEP_MS: u64 = 100;

/// Union-find root.
fn find(p: &mut [usize], x: usize) -> usize {
    let mut r = x;
    while p[r] != r {
        r = p[r];
    }
    p[x] = r;
    r
}

#[derive(Clone)]
struct Seg {
    ends: Vec<(usize, PortId)>,
    up: bool,
}

#[derive(Clone)]
struct Net {
    br: Vec<Stp>,
    segs: Vec<Seg>,
    now: u64,
    next_port: Vec<u32>,
    /// Transient loops seen (a cycle of active links at some instant).
    loops_seen: u32,
    /// Panic on the first transient loop.
    strict: bool,
    /// Bridges that drop RST BPDUs, as the Linux kernel bridge does (br_stp_rcv accepts
    /// protocol version 0 only).
    drops_rst: Vec<bool>,
    /// Flush actions seen, per bridge (cleared by the tests).
    flushed: Vec<Vec<PortId>>,
    /// TopologyChange actions seen.
    tc_events: u32,
    /// One-way delay of every link (0: delivered at once, inside `pump`).
    latency_ms: u64,
    /// Frames on the wire: (due time, segment, receiving bridge, port, frame).
    in_flight: VecDeque<(u64, usize, usize, PortId, Vec<u8>)>,
    /// How long a converged state must last to count (see `converge`).
    hold_ms: u64,
    frames: u64,
}

impl Net {
    fn new(prios: &[u16]) -> Net {
        Self::with_versions(prios, &vec![2; prios.len()])
    }

    fn with_versions(prios: &[u16], versions: &[u8]) -> Net {
        let br = prios
            .iter()
            .zip(versions)
            .enumerate()
            .map(|(i, (&p, &v))| {
                let mut c = BridgeConfig::new(MacAddr([0x02, 0, 0, 0, 0, i as u8 + 1]));
                c.priority = p;
                c.force_version = v;
                Stp::new(c, Timestamp(0)).unwrap()
            })
            .collect::<Vec<_>>();
        Net {
            next_port: vec![1; br.len()],
            br,
            segs: Vec::new(),
            now: 0,
            loops_seen: 0,
            strict: true,
            drops_rst: versions.iter().map(|&v| v == 0).collect(),
            flushed: vec![Vec::new(); prios.len()],
            tc_events: 0,
            latency_ms: 0,
            in_flight: VecDeque::new(),
            hold_ms: if versions.contains(&0) {
                60_000
            } else {
                10_000
            },
            frames: 0,
        }
    }

    fn add_port(&mut self, b: usize, p2p: P2p) -> PortId {
        let n = self.next_port[b];
        self.next_port[b] += 1;
        let id = PortId(n);
        let cfg = PortConfig {
            p2p,
            ..PortConfig::default()
        };
        self.br[b]
            .add_port(id, n as u16, cfg, None, Timestamp(self.now))
            .unwrap();
        id
    }

    /// A point-to-point link between bridges `a` and `b`; returns the segment index.
    fn link(&mut self, a: usize, b: usize) -> usize {
        let pa = self.add_port(a, P2p::Auto);
        let pb = self.add_port(b, P2p::Auto);
        self.segs.push(Seg {
            ends: vec![(a, pa), (b, pb)],
            up: true,
        });
        self.pump();
        self.segs.len() - 1
    }

    /// A shared segment (hub) with one port of each listed bridge (a bridge may appear
    /// twice: two of its ports on the same LAN).
    fn hub(&mut self, bridges: &[usize]) -> usize {
        let ends = bridges
            .iter()
            .map(|&b| (b, self.add_port(b, P2p::No)))
            .collect();
        self.segs.push(Seg { ends, up: true });
        self.pump();
        self.segs.len() - 1
    }

    fn port(&self, seg: usize, bridge: usize) -> PortId {
        self.segs[seg]
            .ends
            .iter()
            .find(|e| e.0 == bridge)
            .unwrap()
            .1
    }

    fn seg_of(&self, b: usize, p: PortId) -> Option<usize> {
        self.segs.iter().position(|s| s.ends.contains(&(b, p)))
    }

    /// Delivers every pending BPDU (and those it causes) at the current time.
    fn pump(&mut self) {
        let mut q: VecDeque<(usize, PortId, Vec<u8>)> = VecDeque::new();
        let mut budget = 100_000;
        loop {
            for b in 0..self.br.len() {
                let mut acts = Vec::new();
                self.br[b].take_actions(&mut acts);
                for a in acts {
                    match &a {
                        Action::Flush { port } => self.flushed[b].push(*port),
                        Action::TopologyChange => self.tc_events += 1,
                        _ => {}
                    }
                    if let Action::Transmit { port, frame } = a {
                        assert_eq!(frame.len(), 60);
                        let Some(s) = self.seg_of(b, port) else {
                            continue;
                        };
                        if !self.segs[s].up {
                            continue;
                        }
                        for &(ob, op) in &self.segs[s].ends {
                            if (ob, op) != (b, port) {
                                if self.latency_ms == 0 {
                                    q.push_back((ob, op, frame.clone()));
                                } else {
                                    self.in_flight.push_back((
                                        self.now + self.latency_ms,
                                        s,
                                        ob,
                                        op,
                                        frame.clone(),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            let Some((b, p, frame)) = q.pop_front() else {
                break;
            };
            let payload = bpdu::bpdu_payload(&frame).unwrap();
            if self.drops_rst[b] && payload[5] != 0 {
                continue;
            }
            self.br[b].receive(p, payload, Timestamp(self.now)).unwrap();
            self.frames += 1;
            self.check_safety();
            budget -= 1;
            assert!(budget > 0, "BPDU storm");
        }
    }

    fn set_seg(&mut self, s: usize, up: bool) {
        self.segs[s].up = up;
        for (b, p) in self.segs[s].ends.clone() {
            self.br[b]
                .set_port_enabled(p, up, Timestamp(self.now))
                .unwrap();
        }
        self.pump();
        self.check_safety();
    }

    fn step(&mut self) {
        self.now += STEP_MS;
        for b in 0..self.br.len() {
            self.br[b].tick(Timestamp(self.now));
            self.pump();
        }
        // Deliver what is due (FIFO per link: one fixed latency).
        while self.in_flight.front().is_some_and(|f| f.0 <= self.now) {
            let Some((_, s, b, p, frame)) = self.in_flight.pop_front() else {
                break;
            };
            if !self.segs[s].up {
                continue; // lost with the link
            }
            let payload = bpdu::bpdu_payload(&frame).unwrap();
            if self.drops_rst[b] && payload[5] != 0 {
                continue;
            }
            self.br[b].receive(p, payload, Timestamp(self.now)).unwrap();
            self.frames += 1;
            self.check_safety();
            self.pump();
        }
        self.check_safety();
    }

    fn advance(&mut self, ms: u64) {
        for _ in 0..ms / STEP_MS {
            self.step();
        }
    }

    /// Runs until the network is converged and stays so, with the same tree, for
    /// `self.hold_ms`; returns the simulated milliseconds from now to the start of that
    /// stable period.
    fn converge(&mut self, limit_ms: u64) -> u64 {
        let start = self.now;
        let mut since: Option<(u64, Vec<usize>)> = None;
        loop {
            if self.converged() {
                let tree = self.tree();
                if since.as_ref().is_none_or(|(_, t)| *t != tree) {
                    since = Some((self.now, tree));
                }
            } else {
                since = None;
            }
            if let Some((t0, _)) = &since {
                if self.now - t0 >= self.hold_ms {
                    return t0 - start;
                }
            }
            assert!(
                self.now - start < limit_ms + self.hold_ms,
                "no convergence within {limit_ms} ms\n{}",
                self.dump()
            );
            self.step();
        }
    }

    /// Graph of active links: nodes are bridges, then one node per hub.
    fn active_edges(&self) -> Vec<(usize, usize)> {
        let n = self.br.len();
        let fwd = |b: usize, p: PortId| self.br[b].port_state(p) == PortState::Forwarding;
        let mut e = Vec::new();
        for (i, s) in self.segs.iter().enumerate() {
            if !s.up {
                continue;
            }
            if s.ends.len() == 2 {
                let ((a, pa), (b, pb)) = (s.ends[0], s.ends[1]);
                if fwd(a, pa) && fwd(b, pb) {
                    e.push((a, b));
                }
            } else {
                for &(b, p) in &s.ends {
                    if fwd(b, p) {
                        e.push((b, n + i));
                    }
                }
            }
        }
        e
    }

    fn nodes(&self) -> usize {
        self.br.len() + self.segs.len()
    }

    /// Union-find over the active edges: (has a cycle, component of each node).
    fn components(&self) -> (bool, Vec<usize>) {
        let mut parent: Vec<usize> = (0..self.nodes()).collect();
        let mut cycle = false;
        for (a, b) in self.active_edges() {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra == rb {
                cycle = true;
            } else {
                parent[ra] = rb;
            }
        }
        let comp = (0..self.nodes()).map(|x| find(&mut parent, x)).collect();
        (cycle, comp)
    }

    fn check_safety(&mut self) {
        if self.components().0 {
            self.loops_seen += 1;
            assert!(
                !self.strict,
                "transient loop at {} ms\n{}",
                self.now,
                self.dump()
            );
        }
    }

    /// Bridges connected by up links, regardless of port states.
    fn physical_components(&self) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..self.br.len()).collect();
        for s in self.segs.iter().filter(|s| s.up) {
            for w in s.ends.windows(2) {
                let (a, b) = (find(&mut parent, w[0].0), find(&mut parent, w[1].0));
                parent[a] = b;
            }
        }
        (0..self.br.len()).map(|x| find(&mut parent, x)).collect()
    }

    fn converged(&self) -> bool {
        let (cycle, comp) = self.components();
        if cycle {
            return false;
        }
        let phys = self.physical_components();
        for a in 0..self.br.len() {
            for b in 0..self.br.len() {
                // Physically connected bridges must reach each other over active links,
                // and agree on the root: the lowest bridge id of their part.
                if phys[a] == phys[b] && comp[a] != comp[b] {
                    return false;
                }
            }
            let best = (0..self.br.len())
                .filter(|&b| phys[b] == phys[a])
                .map(|b| self.br[b].bridge_id())
                .min()
                .unwrap();
            if self.br[a].status().designated_root != best {
                return false;
            }
            if self.br[a]
                .port_ids()
                .any(|p| self.br[a].port_state(p) == PortState::Learning)
            {
                return false;
            }
        }
        true
    }

    /// For each bridge, the lowest bridge id physically connected to it.
    fn component_roots(&self) -> Vec<BridgeId> {
        let phys = self.physical_components();
        (0..self.br.len())
            .map(|a| {
                (0..self.br.len())
                    .filter(|&b| phys[b] == phys[a])
                    .map(|b| self.br[b].bridge_id())
                    .min()
                    .unwrap()
            })
            .collect()
    }

    /// The active links, as segment indexes, for comparing tree shapes.
    fn tree(&self) -> Vec<usize> {
        let fwd = |b: usize, p: PortId| self.br[b].port_state(p) == PortState::Forwarding;
        (0..self.segs.len())
            .filter(|&i| self.segs[i].up && self.segs[i].ends.iter().all(|&(b, p)| fwd(b, p)))
            .collect()
    }

    fn roles(&self, role: PortRole) -> Vec<(usize, PortId)> {
        let mut v = Vec::new();
        for (b, s) in self.br.iter().enumerate() {
            for p in s.port_ids() {
                if s.port_role(p) == Some(role) {
                    v.push((b, p));
                }
            }
        }
        v
    }

    /// Holds for `ms` and checks nothing changes.
    fn hold_steady(&mut self, ms: u64) {
        let tree = self.tree();
        for _ in 0..ms / STEP_MS {
            self.step();
            assert!(
                self.converged(),
                "unsettled at {} ms\n{}",
                self.now,
                self.dump()
            );
            assert_eq!(self.tree(), tree, "tree changed at {} ms", self.now);
        }
    }

    fn dump(&self) -> String {
        let mut s = String::new();
        for (b, st) in self.br.iter().enumerate() {
            let bs = st.status();
            s += &format!(
                "bridge {b} {} root {} cost {} rp {:?}\n",
                bs.bridge_id, bs.designated_root, bs.root_path_cost, bs.root_port
            );
            for p in st.port_statuses() {
                s += &format!(
                    "  port {:?} seg {:?} {} {} {:?} edge {} dbridge {} dport {}\n",
                    p.port.0,
                    self.seg_of(b, p.port),
                    p.role.as_str(),
                    p.state.as_str(),
                    p.protocol,
                    p.oper_edge,
                    p.designated_bridge,
                    p.designated_port
                );
            }
        }
        s
    }

    fn assert_clean(&self) {
        for b in &self.br {
            assert_eq!(b.iteration_limit_hits(), 0);
        }
    }
}

fn ring3() -> (Net, [usize; 3]) {
    ring3_latency(0)
}

fn ring3_latency(latency_ms: u64) -> (Net, [usize; 3]) {
    let mut n = Net::new(&[32768, 32768, 32768]);
    n.latency_ms = latency_ms;
    let l0 = n.link(0, 1);
    let l1 = n.link(1, 2);
    let l2 = n.link(2, 0);
    (n, [l0, l1, l2])
}

/// (a) A ring of three converges within a few seconds to one alternate (discarding) port,
/// root the lowest bridge id.
#[test]
fn a_ring_of_three_converges() {
    let (mut n, [_l0, l1, _l2]) = ring3();
    let ms = n.converge(10_000);
    eprintln!(
        "(a) ring of 3, cold start: converged after {ms} ms simulated, {} BPDUs",
        n.frames
    );
    assert!(ms <= 3_000, "{ms}");
    let alt = n.roles(PortRole::Alternate);
    assert_eq!(alt.len(), 1, "{}", n.dump());
    assert_eq!(n.roles(PortRole::Backup).len(), 0);
    // Bridge 2 (highest id) blocks its port toward bridge 1.
    assert_eq!(alt[0], (2, n.port(l1, 2)));
    assert_eq!(n.br[2].port_state(alt[0].1), PortState::Discarding);
    assert!(n.br[0].status().is_root);
    for b in 1..3 {
        assert_eq!(n.br[b].status().designated_root, n.br[0].bridge_id());
    }
    assert_eq!(n.tree().len(), 2);
    n.hold_steady(30_000);
    n.assert_clean();
}

/// (b) A ring link goes down: the rest reconverges; it comes back: the same tree as before.
#[test]
fn b_ring_link_down_and_up() {
    b_ring_link_down_and_up_with(0);
}

/// (b) with 100 ms one-way link latency: BPDUs cross in flight.
#[test]
fn b_ring_link_down_and_up_latency() {
    b_ring_link_down_and_up_with(100);
}

fn b_ring_link_down_and_up_with(latency_ms: u64) {
    let (mut n, [l0, l1, l2]) = ring3_latency(latency_ms);
    n.converge(10_000);
    n.hold_steady(5_000);
    let before = n.tree();
    assert_eq!(before, vec![l0, l2]);
    for down in [l0, l2, l1] {
        n.flushed.iter_mut().for_each(Vec::clear);
        let tcs = n.tc_events;
        n.set_seg(down, false);
        let ms = n.converge(60_000);
        // The failed link's ports are flushed; a blocked link that takes over is a topology
        // change: the bridges behind it flush their other ports.
        // (An alternate port learned nothing: it was flushed when it became alternate.)
        for (b, p) in n.segs[down].ends.clone().into_iter().filter(|_| down != l1) {
            assert!(
                n.flushed[b].contains(&p),
                "{b} {p:?} {:?}\n{}",
                n.flushed,
                n.dump()
            );
        }
        if down != l1 {
            assert!(n.tc_events > tcs);
            let fl = |b: usize| {
                n.flushed[b]
                    .iter()
                    .filter(|p| n.seg_of(b, **p) != Some(down))
                    .count()
            };
            assert!((0..3).any(|b| fl(b) > 0), "{:?}", n.flushed);
        }
        eprintln!("(b) ring of 3, latency {latency_ms} ms, link {down} down: spanning tree again after {ms} ms simulated");
        assert!(ms <= 3_000, "{ms}");
        let t = n.tree();
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&down));
        n.hold_steady(10_000);
        n.set_seg(down, true);
        let ms = n.converge(60_000);
        eprintln!("(b) ring of 3, latency {latency_ms} ms, link {down} up again: converged after {ms} ms simulated");
        assert!(ms <= 3_000, "{ms}");
        n.hold_steady(10_000);
        assert_eq!(n.tree(), before, "same tree shape as before\n{}", n.dump());
    }
    n.assert_clean();
}

/// (c) Two bridges joined by two parallel links: the non-root bridge has one root port and
/// one alternate.
#[test]
fn c_parallel_links() {
    let mut n = Net::new(&[32768, 32768]);
    let l0 = n.link(0, 1);
    let l1 = n.link(0, 1);
    let ms = n.converge(10_000);
    eprintln!("(c) two parallel links: converged after {ms} ms simulated");
    assert_eq!(n.br[1].port_role(n.port(l0, 1)), Some(PortRole::Root));
    assert_eq!(n.br[1].port_role(n.port(l1, 1)), Some(PortRole::Alternate));
    assert_eq!(n.br[1].port_state(n.port(l1, 1)), PortState::Discarding);
    assert_eq!(n.br[0].port_role(n.port(l1, 0)), Some(PortRole::Designated));
    n.hold_steady(10_000);
    // Losing the active link makes the alternate root port at once.
    n.set_seg(l0, false);
    let ms = n.converge(10_000);
    eprintln!("(c) active parallel link down: converged after {ms} ms simulated");
    assert!(ms <= 1_000);
    assert_eq!(n.br[1].port_role(n.port(l1, 1)), Some(PortRole::Root));
    n.assert_clean();
}

/// (c') Two ports of one bridge on a shared segment: designated and backup.
#[test]
fn c_hub_gives_backup_port() {
    let mut n = Net::new(&[32768, 32768]);
    let h = n.hub(&[0, 0, 1]);
    let ms = n.converge(60_000);
    eprintln!(
        "(c') shared segment (no point-to-point handshake): converged after {ms} ms simulated"
    );
    let ends = n.segs[h].ends.clone();
    assert_eq!(n.br[0].port_role(ends[0].1), Some(PortRole::Designated));
    assert_eq!(n.br[0].port_role(ends[1].1), Some(PortRole::Backup));
    assert_eq!(n.br[0].port_state(ends[1].1), PortState::Discarding);
    assert_eq!(n.br[1].port_role(ends[2].1), Some(PortRole::Root));
    n.hold_steady(10_000);
    // The designated port fails (only that port: link of port 0 down is modelled by
    // disabling it): the backup takes over.
    n.br[0]
        .set_port_enabled(ends[0].1, false, Timestamp(n.now))
        .unwrap();
    n.segs[h].ends.remove(0);
    n.pump();
    let ms = n.converge(60_000);
    eprintln!("(c') designated port on the shared segment lost, backup takes over after {ms} ms simulated");
    assert_eq!(n.br[0].port_role(ends[1].1), Some(PortRole::Designated));
    n.assert_clean();
}

/// (d) An STP-compatible bridge (force_version 0, like an 802.1D peer) in a ring of RSTP
/// bridges: the ports toward it migrate to STP, the tree is loop-free and converges.
#[test]
fn d_legacy_bridge_in_ring() {
    let mut n = Net::with_versions(&[32768, 32768, 32768], &[2, 2, 0]);
    let l0 = n.link(0, 1);
    let l1 = n.link(1, 2);
    let l2 = n.link(2, 0);
    let ms = n.converge(120_000);
    eprintln!(
        "(d) ring with one force_version 0 bridge, cold start: converged after {ms} ms simulated"
    );
    assert!(ms <= 45_000, "{ms}");
    assert_eq!(
        n.br[0].port_status(n.port(l2, 0)).unwrap().protocol,
        Protocol::Stp
    );
    assert_eq!(
        n.br[1].port_status(n.port(l1, 1)).unwrap().protocol,
        Protocol::Stp
    );
    assert_eq!(
        n.br[0].port_status(n.port(l0, 0)).unwrap().protocol,
        Protocol::Rstp
    );
    assert_eq!(
        n.br[1].port_status(n.port(l0, 1)).unwrap().protocol,
        Protocol::Rstp
    );
    assert_eq!(n.roles(PortRole::Alternate).len(), 1);
    // Every BPDU bridge 2 sent was 802.1D.
    for p in n.br[2].port_statuses() {
        assert_eq!(p.counters.tx_rst, 0);
        assert!(p.counters.tx_config > 0);
    }
    n.hold_steady(60_000);
    // A link failure in the mixed ring.
    n.set_seg(l0, false);
    let ms = n.converge(120_000);
    eprintln!("(d) mixed ring, RSTP link down: converged after {ms} ms simulated");
    n.set_seg(l0, true);
    let ms = n.converge(120_000);
    eprintln!("(d) mixed ring, RSTP link up: converged after {ms} ms simulated");
    n.set_seg(l2, false);
    let ms = n.converge(120_000);
    eprintln!("(d) mixed ring, link to the STP bridge down: converged after {ms} ms simulated");
    n.set_seg(l2, true);
    let ms = n.converge(120_000);
    eprintln!("(d) mixed ring, link to the STP bridge up: converged after {ms} ms simulated");
    n.hold_steady(60_000);
    n.assert_clean();
}

/// (d'') The same ring, but the force_version 0 bridge is an 802.1D-2004 bridge in STP
/// compatibility mode, which decodes RST BPDUs: loop-free and converging too.
#[test]
fn d_stp_compatible_bridge_in_ring() {
    let mut n = Net::with_versions(&[32768, 32768, 32768], &[2, 2, 0]);
    n.drops_rst = vec![false; 3];
    let l0 = n.link(0, 1);
    let _l1 = n.link(1, 2);
    let l2 = n.link(2, 0);
    let ms = n.converge(120_000);
    eprintln!("(d'') ring with one 802.1D-2004 STP-compatible bridge (reads RST BPDUs): converged after {ms} ms simulated");
    n.hold_steady(30_000);
    for l in [l0, l2] {
        n.set_seg(l, false);
        n.converge(120_000);
        n.set_seg(l, true);
        n.converge(120_000);
    }
    n.assert_clean();
}

/// (d') A legacy bridge as root of a chain: RSTP bridges behind it still converge.
#[test]
fn d_legacy_root() {
    let mut n = Net::with_versions(&[4096, 32768, 32768], &[0, 2, 2]);
    let l0 = n.link(0, 1);
    let _l1 = n.link(1, 2);
    let _l2 = n.link(2, 0);
    let ms = n.converge(120_000);
    eprintln!(
        "(d') ring with the force_version 0 bridge as root: converged after {ms} ms simulated"
    );
    assert!(n.br[1].status().designated_root == n.br[0].bridge_id());
    assert_eq!(
        n.br[1].port_status(n.port(l0, 1)).unwrap().protocol,
        Protocol::Stp
    );
    n.hold_steady(60_000);
    n.assert_clean();
}

/// (e) A priority change moves the root.
#[test]
fn e_priority_change_moves_root() {
    let (mut n, _) = ring3();
    n.converge(10_000);
    let mut c = *n.br[2].config();
    c.priority = 4096;
    n.br[2].set_config(c, Timestamp(n.now)).unwrap();
    n.pump();
    let ms = n.converge(60_000);
    eprintln!("(e) ring of 3, bridge 2 priority 4096: new root everywhere after {ms} ms simulated");
    assert!(ms <= 5_000, "{ms}");
    for b in 0..3 {
        assert_eq!(n.br[b].status().designated_root, n.br[2].bridge_id());
        assert!(n.br[b].status().root_changes >= 1);
    }
    assert!(n.br[2].status().is_root);
    assert_eq!(n.roles(PortRole::Alternate).len(), 1);
    // The alternate is now on bridge 1 (highest id among the others), toward bridge 0.
    assert_eq!(n.roles(PortRole::Alternate)[0].0, 1);
    n.hold_steady(20_000);
    n.assert_clean();
}

/// A 3x3 torus (9 bridges, 18 links) with seeded random link failures and repairs: always
/// loop-free, always reconverges.
#[test]
fn torus_random_link_flaps() {
    torus_random_link_flaps_with(0);
}

/// The torus with 200 ms one-way latency on every link.
#[test]
fn torus_random_link_flaps_latency() {
    torus_random_link_flaps_with(200);
}

fn torus_random_link_flaps_with(latency_ms: u64) {
    let mut n = Net::new(&[32768; 9]);
    n.latency_ms = latency_ms;
    let mut links = Vec::new();
    for r in 0..3 {
        for c in 0..3 {
            let me = r * 3 + c;
            links.push(n.link(me, r * 3 + (c + 1) % 3));
            links.push(n.link(me, ((r + 1) % 3) * 3 + c));
        }
    }
    let ms = n.converge(30_000);
    eprintln!("torus 3x3, latency {latency_ms} ms, cold start: converged after {ms} ms simulated");
    assert_eq!(n.tree().len(), 8);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut worst = 0;
    let mut worst_partition = 0;
    for _ in 0..40 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let l = links[(rng % links.len() as u64) as usize];
        let up = !n.segs[l].up;
        let old_roots = n.component_roots();
        n.set_seg(l, up);
        // A part of the network that loses its root bridge: RSTP counts to infinity
        // (stale root information circulates until Message Age exceeds Max Age).
        let lost_root = n
            .component_roots()
            .iter()
            .zip(&old_roots)
            .any(|(new, old)| new != old && !up);
        let ms = n.converge(60_000);
        if lost_root {
            worst_partition = worst_partition.max(ms);
        } else {
            worst = worst.max(ms);
        }
        n.advance(((rng >> 20) % 5_000) / STEP_MS * STEP_MS);
        assert!(n.converged());
    }
    eprintln!(
        "torus 3x3, latency {latency_ms} ms, 40 random link flaps: worst reconvergence {worst} ms simulated; {worst_partition} ms where a part lost its root; {} BPDUs",
        n.frames
    );
    assert!(worst <= 3_000, "{worst}");
    assert!(worst_partition <= 30_000, "{worst_partition}");
    n.assert_clean();
}

/// The root bridge of a ring of four fails (all its links down). RSTP may count to
/// infinity here (bounded by Max Age); report how long it takes and whether transient
/// loops were seen.
#[test]
fn root_failure_in_ring_of_four() {
    let mut n = Net::new(&[32768; 4]);
    let mut l = Vec::new();
    for i in 0..4 {
        l.push(n.link(i, (i + 1) % 4));
    }
    n.converge(10_000);
    n.strict = false;
    n.set_seg(l[0], false);
    n.set_seg(l[3], false);
    let ms = n.converge(120_000);
    eprintln!(
        "ring of 4, root bridge isolated: the other three converged after {ms} ms simulated; transient loops seen: {}",
        n.loops_seen
    );
    assert_eq!(n.br[1].status().designated_root, n.br[1].bridge_id());
    assert_eq!(n.loops_seen, 0);
    n.assert_clean();
}
