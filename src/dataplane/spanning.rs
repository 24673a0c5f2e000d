//! The spanning tree's glue: the frame path hands BPDUs to a bounded inbox and reads each
//! port's forwarding state from an atomic; the control thread runs [`crate::stp::Stp`] (BPDUs,
//! ticks, ports coming and going) and applies its actions (states, flushes, BPDUs to send).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use super::registry::{LinkState, PortHandle};
use super::Switch;
use crate::stp::{self, Action, BridgeConfig, PortConfig, PortState, Stp};
use crate::types::PortId;
use crate::wire::MacAddr;

/// BPDUs waiting for the control thread; more are dropped (and counted as `bpdu`).
pub const BPDU_INBOX: usize = 256;
/// Bytes of a BPDU frame kept (a BPDU is 35-36 bytes after a 17-byte 802.3/LLC header).
const BPDU_KEEP: usize = 64;

/// The frame path's view of a port's spanning tree state.
#[derive(Debug)]
pub struct StpGate(AtomicU8);

impl StpGate {
    /// A port that forwards (the state of every port while STP is off).
    pub fn forwarding() -> StpGate {
        StpGate(AtomicU8::new(2))
    }
    /// The state.
    pub fn get(&self) -> PortState {
        match self.0.load(Relaxed) {
            0 => PortState::Discarding,
            1 => PortState::Learning,
            _ => PortState::Forwarding,
        }
    }
    /// Sets the state.
    pub fn set(&self, s: PortState) {
        self.0.store(
            match s {
                PortState::Discarding => 0,
                PortState::Learning => 1,
                PortState::Forwarding => 2,
            },
            Relaxed,
        );
    }
    /// Whether frames are forwarded to and from the port.
    pub fn forwards(&self) -> bool {
        self.0.load(Relaxed) == 2
    }
}

/// Upper bounds (seconds) of the buckets of [`BpduDelay`]; a last bucket takes the rest.
pub const BPDU_DELAY_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0,
];

/// How long received BPDUs waited between the frame path putting them in the inbox and the
/// control thread handing them to the tree: a histogram and the largest wait, for
/// `tapswitch_stp_bpdu_delay_seconds`. Work that holds up the control thread shows here.
#[derive(Debug, Default)]
pub struct BpduDelay {
    /// Waits per bucket of [`BPDU_DELAY_BUCKETS`] (not cumulative), then the rest.
    buckets: [AtomicU64; 16],
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl BpduDelay {
    /// Counts one wait.
    pub fn record(&self, ns: u64) {
        let secs = ns as f64 / 1e9;
        let i = BPDU_DELAY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BPDU_DELAY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    /// Cumulative counts per bucket bound (as Prometheus wants them), the total count, the
    /// sum of the waits in seconds and the largest wait in seconds.
    pub fn read(&self) -> (Vec<(f64, u64)>, u64, f64, f64) {
        let mut acc = 0;
        let mut cum = Vec::with_capacity(BPDU_DELAY_BUCKETS.len());
        for (i, b) in BPDU_DELAY_BUCKETS.iter().enumerate() {
            acc += self.buckets[i].load(Relaxed);
            cum.push((*b, acc));
        }
        let count = acc + self.buckets[BPDU_DELAY_BUCKETS.len()].load(Relaxed);
        (
            cum,
            count,
            self.sum_ns.load(Relaxed) as f64 / 1e9,
            self.max_ns.load(Relaxed) as f64 / 1e9,
        )
    }
}

/// The spanning tree of a switch: the bridge settings wanted, and the running tree (when on).
#[derive(Debug)]
pub struct Spanning {
    /// Bridge settings (kept while STP is off, applied when it is turned on).
    pub bridge: Mutex<BridgeConfig>,
    /// The running tree; `None` while STP is off.
    pub tree: Mutex<Option<Stp>>,
    /// BPDUs from the frame path: (port, bytes, length, when queued in ns of the switch clock).
    inbox: Mutex<VecDeque<Queued>>,
    /// How long BPDUs waited in the inbox.
    pub delay: BpduDelay,
}

/// A BPDU in the inbox: port, bytes, length, and when it was queued (ns since the switch
/// started).
type Queued = (PortId, [u8; BPDU_KEEP], u8, u64);

impl Spanning {
    /// Off, with this bridge address.
    pub fn new(mac: MacAddr) -> Spanning {
        Spanning {
            bridge: Mutex::new(BridgeConfig::new(mac)),
            tree: Mutex::new(None),
            inbox: Mutex::new(VecDeque::with_capacity(BPDU_INBOX)),
            delay: BpduDelay::default(),
        }
    }
}

/// The bridge address derived from the switch name; it lives with the pure spanning tree code.
pub use crate::stp::derived_mac;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Switch {
    /// Frame path: keeps a BPDU for the control thread; false if the inbox is full.
    pub(super) fn queue_bpdu(&self, port: PortId, frame: &[u8]) -> bool {
        let mut keep = [0u8; BPDU_KEEP];
        let n = frame.len().min(BPDU_KEEP);
        keep[..n].copy_from_slice(&frame[..n]);
        // a clock read per BPDU (a few a second per port; the inbox bounds a flood)
        let at = self.origin.elapsed().as_nanos() as u64;
        let queued = {
            let mut q = lock(&self.stp.inbox);
            if q.len() < BPDU_INBOX {
                q.push_back((port, keep, n as u8, at));
                true
            } else {
                false
            }
        };
        if queued {
            self.wake_control();
        }
        queued
    }

    /// Turns the spanning tree on (with the bridge settings kept) or off. On: every port
    /// starts discarding and the tree decides; off: every port forwards again.
    pub fn set_stp(&self, on: bool) -> Result<(), stp::StpConfigError> {
        let mut tree = lock(&self.stp.tree);
        if on == tree.is_some() {
            return Ok(());
        }
        if on {
            let cfg = *lock(&self.stp.bridge);
            *tree = Some(Stp::new(cfg, self.now())?);
            for h in self.ports().iter() {
                h.stp_gate.set(PortState::Discarding);
            }
        } else {
            *tree = None;
            for h in self.ports().iter() {
                h.stp_gate.set(PortState::Forwarding);
            }
            lock(&self.stp.inbox).clear();
        }
        let mut s = self.settings.load();
        s.stp = on;
        self.settings.store(s);
        drop(tree);
        tracing::info!(
            stp = if on { "rstp" } else { "off" },
            "spanning tree changed"
        );
        self.wake_control();
        Ok(())
    }

    /// Changes the bridge settings (priority, timers, address), at once if STP runs.
    pub fn set_stp_bridge(&self, cfg: BridgeConfig) -> Result<(), stp::StpConfigError> {
        cfg.validate()?;
        *lock(&self.stp.bridge) = cfg;
        if let Some(t) = lock(&self.stp.tree).as_mut() {
            t.set_config(cfg, self.now())?;
        }
        self.wake_control();
        Ok(())
    }

    /// The bridge settings.
    pub fn stp_bridge(&self) -> BridgeConfig {
        *lock(&self.stp.bridge)
    }

    /// Changes a port's spanning tree settings (cost, priority, edge, guards).
    pub fn set_port_stp(&self, h: &PortHandle, cfg: PortConfig) -> Result<(), stp::StpPortError> {
        cfg.validate()?;
        *lock(&h.stp_cfg) = cfg;
        if let Some(t) = lock(&self.stp.tree).as_mut() {
            if t.port_status(h.id).is_some() {
                t.set_port_config(h.id, cfg, self.now())?;
            }
        }
        self.wake_control();
        Ok(())
    }

    /// Re-enables a port that BPDU guard (or an admin) disabled.
    pub fn enable_port_stp(&self, h: &PortHandle) {
        if let Some(t) = lock(&self.stp.tree).as_mut() {
            let _ = t.set_port_enabled(h.id, h.is_up(), self.now());
        }
        self.wake_control();
    }

    /// A port's spanning tree status, if STP runs.
    pub fn port_stp_status(&self, id: PortId) -> Option<stp::PortStatus> {
        lock(&self.stp.tree).as_ref()?.port_status(id)
    }

    /// The bridge's and every port's spanning tree status, if STP runs.
    pub fn stp_status(&self) -> Option<(stp::BridgeStatus, Vec<stp::PortStatus>)> {
        let t = lock(&self.stp.tree);
        let t = t.as_ref()?;
        Some((t.status(), t.port_statuses()))
    }

    /// Control thread: keeps the tree's ports in step with the switch's, feeds it the BPDUs
    /// and the time, and applies what it decides. Returns whether the tree runs.
    pub(super) fn stp_work(&self) -> bool {
        let mut actions = Vec::new();
        {
            let mut guard = lock(&self.stp.tree);
            let Some(t) = guard.as_mut() else {
                return false;
            };
            let now = self.now();
            let reg = self.ports();
            // ports gone from the switch leave the tree
            let gone: Vec<PortId> = t.port_ids().filter(|id| reg.get(*id).is_none()).collect();
            for id in gone {
                let _ = t.remove_port(id, now);
            }
            for h in reg.iter() {
                let up = h.state() == LinkState::Up;
                if t.port_status(h.id).is_none() {
                    let no = (super::Registry::slot(h.id) + 1) as u16;
                    let cfg = *lock(&h.stp_cfg);
                    if let Err(e) = t.add_port(h.id, no, cfg, None, now) {
                        tracing::warn!(port = %h.name, error = %e, "not in the spanning tree");
                        continue;
                    }
                    if !up {
                        let _ = t.set_port_enabled(h.id, false, now);
                    }
                } else if t.port_status(h.id).is_some_and(|s| s.enabled != up)
                    && !t.port_status(h.id).is_some_and(|s| s.bpdu_guard_tripped)
                {
                    let _ = t.set_port_enabled(h.id, up, now);
                }
            }
            let inbox: Vec<Queued> = lock(&self.stp.inbox).drain(..).collect();
            let taken = self.origin.elapsed().as_nanos() as u64;
            for (port, bytes, n, at) in inbox {
                self.stp.delay.record(taken.saturating_sub(at));
                let frame = &bytes[..n as usize];
                if let Some(payload) = stp::bpdu::bpdu_payload(frame) {
                    if let Err(e) = t.receive(port, payload, now) {
                        tracing::debug!(error = %e, "BPDU not processed");
                    }
                }
            }
            t.tick(now);
            t.take_actions(&mut actions);
        }
        let reg = self.ports();
        for a in actions {
            match a {
                Action::SetState { port, state } => {
                    if let Some(h) = reg.get(port) {
                        if h.stp_gate.get() != state {
                            tracing::info!(port = %h.name, state = state.as_str(), "spanning tree state");
                            self.events.publish(crate::events::Event::Stp {
                                port,
                                name: h.name.as_str().into(),
                                state: state.as_str(),
                            });
                        }
                        h.stp_gate.set(state);
                    }
                }
                Action::Flush { port } => {
                    self.fdb.flush_port_dynamic(port);
                }
                Action::Transmit { port, frame } => {
                    if let Some(h) = reg.get(port) {
                        // an offload port takes a virtio_net_hdr first (all zero: a plain frame)
                        let vlen = h.port.vnet_hdr_len();
                        let mut buf = vec![0u8; vlen + frame.len()];
                        buf[vlen..].copy_from_slice(&frame);
                        if h.port.send(&buf).is_ok() {
                            h.counters.tx_frames.fetch_add(1, Relaxed);
                            h.counters.tx_bytes.fetch_add(frame.len() as u64, Relaxed);
                        }
                    }
                }
                Action::BpduGuard { port } => {
                    if let Some(h) = reg.get(port) {
                        tracing::warn!(port = %h.name, "BPDU guard: a BPDU arrived; the port is disabled until re-enabled");
                    }
                }
                Action::RootChanged => tracing::info!("spanning tree: new root"),
                Action::TopologyChange => tracing::info!("spanning tree: topology change"),
            }
        }
        true
    }

    /// Whether a port's spanning tree settings say BPDU guard tripped (for the port's state).
    pub fn bpdu_guard_tripped(&self, id: PortId) -> bool {
        self.port_stp_status(id)
            .is_some_and(|s| s.bpdu_guard_tripped)
    }

    /// The spanning tree settings of a port.
    pub fn port_stp_config(&self, h: &PortHandle) -> PortConfig {
        *lock(&h.stp_cfg)
    }
}
