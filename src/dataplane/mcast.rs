//! Multicast snooping's glue (the state machine itself is [`crate::mcast`]): the frame path
//! asks the published [`ForwardingView`] where a multicast frame goes and copies IGMP/MLD
//! messages to a bounded inbox; the control thread owns the [`McastState`], feeds it the
//! messages, the ports, the links and the VLANs, sends the queries it asks for, and publishes a
//! new view after a change.
//!
//! The frame path reads the view through a generation counter: one relaxed load per multicast
//! frame, and a lock only in the batch after the view changed. Nothing here allocates on the
//! frame path: the inbox's buffers are allocated once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use super::forward::{Outgoing, Scratch, HEADROOM};
use super::registry::{PortHandle, Registry};
use super::Switch;
use crate::forwarding::{isolated_pair, Mode, PortFlags, Settings};
use crate::mcast::{
    Action, Family, ForwardingView, McastConfig, McastDecision, McastState, PortConfig,
};
use crate::types::{PortId, Timestamp};
use crate::wire::{EtherType, VLAN_TAG_LEN};

/// IGMP/MLD messages waiting for the control thread; more are dropped and counted.
pub const MCAST_INBOX: usize = 256;
/// Bytes kept of one message (a report of a jumbo frame is cut, then refused by the parser).
const MCAST_KEEP: usize = 2048;

type Slot = Box<[u8; MCAST_KEEP]>;

/// Messages for the control thread, in buffers allocated once.
struct Inbox {
    queued: VecDeque<(PortId, u16, Slot, usize)>,
    free: Vec<Slot>,
}

/// The switch's side of snooping.
pub struct Snooping {
    /// The state machine (control thread, API).
    pub state: Mutex<McastState>,
    view: RwLock<Arc<ForwardingView>>,
    generation: AtomicU64,
    inbox: Mutex<Inbox>,
    /// What the control thread last told the state machine: ports enabled, VLANs present.
    known: Mutex<(HashMap<PortId, bool>, BTreeSet<u16>)>,
    /// Per-port settings (`mcast_router`, `mcast_fast_leave`, `mcast_max_groups`), kept for
    /// ports not attached yet and for the API.
    pub port_cfg: Mutex<HashMap<PortId, PortConfig>>,
    /// Multicast frames sent to the ports the MDB named (instead of flooded).
    pub delivered: AtomicU64,
    /// Multicast frames flooded while snooping was on (no querier, link-local groups, ...).
    pub flooded: AtomicU64,
    /// Messages dropped because the inbox was full.
    pub inbox_dropped: AtomicU64,
    /// Frames dropped because the parser refused them (a bad IGMP/MLD message or IP header).
    pub invalid: AtomicU64,
}

impl std::fmt::Debug for Snooping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snooping").finish_non_exhaustive()
    }
}

impl Snooping {
    /// Snooping with `cfg` (Linux defaults: on, no querier).
    pub fn new(cfg: McastConfig) -> Snooping {
        let mut state = McastState::new(cfg.clone())
            .unwrap_or_else(|_| McastState::new(McastConfig::default()).expect("defaults"));
        let view = Arc::new(state.view());
        Snooping {
            state: Mutex::new(state),
            view: RwLock::new(view),
            generation: AtomicU64::new(1),
            inbox: Mutex::new(Inbox {
                queued: VecDeque::with_capacity(MCAST_INBOX),
                free: (0..MCAST_INBOX)
                    .map(|_| Box::new([0u8; MCAST_KEEP]))
                    .collect(),
            }),
            known: Mutex::new((HashMap::new(), BTreeSet::new())),
            port_cfg: Mutex::new(HashMap::new()),
            delivered: AtomicU64::new(0),
            flooded: AtomicU64::new(0),
            inbox_dropped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
        }
    }

    /// The view now (for the API and tests).
    pub fn view(&self) -> Arc<ForwardingView> {
        lock_read(&self.view).clone()
    }

    fn publish(&self, v: ForwardingView) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
        self.generation.fetch_add(1, Relaxed);
    }

    /// Frame path: keeps a copy of an IGMP/MLD message for the control thread; false (and
    /// counted) if the inbox is full.
    fn queue(&self, port: PortId, vid: u16, frame: &[u8]) -> bool {
        let mut ib = lock(&self.inbox);
        let Some(mut slot) = ib.free.pop() else {
            drop(ib);
            self.inbox_dropped.fetch_add(1, Relaxed);
            return false;
        };
        let n = frame.len().min(MCAST_KEEP);
        slot[..n].copy_from_slice(&frame[..n]);
        ib.queued.push_back((port, vid, slot, n));
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// Where a multicast frame goes, as the frame path sees it.
pub(super) enum McastRoute {
    /// The usual multicast flood (snooping off, no querier, a link-local group, not IP).
    Flood,
    /// Sent to the ports the MDB named (done).
    Delivered,
    /// A message the parser refused: dropped.
    Invalid,
}

impl Switch {
    /// Frame path: a frame to a multicast MAC (not broadcast) in `vid`. Copies IGMP/MLD
    /// messages for the control thread, then either asks for the usual flood or sends the
    /// frame to the member and router ports the published view names.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-frame context, kept flat for speed"
    )]
    pub(super) fn mcast_route(
        &self,
        reg: &Registry,
        settings: &Settings,
        ingress: &PortHandle,
        in_flags: PortFlags,
        out: &Outgoing<'_>,
        vid: u16,
        w: &mut Scratch,
    ) -> McastRoute {
        if settings.mode != Mode::Veb {
            return McastRoute::Flood;
        }
        // the view of this batch, fetched again only after it changed
        let gen = self.mcast.generation.load(Relaxed);
        if w.mview.as_ref().is_none_or(|(g, _)| *g != gen) {
            w.mview = Some((gen, self.mcast.view()));
        }
        let Some((g, view)) = w.mview.take() else {
            return McastRoute::Flood;
        };
        let route = self.mcast_route_in(reg, settings, &view, ingress, in_flags, out, vid, w);
        w.mview = Some((g, view));
        route
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the per-frame context, kept flat for speed"
    )]
    fn mcast_route_in(
        &self,
        reg: &Registry,
        settings: &Settings,
        view: &ForwardingView,
        ingress: &PortHandle,
        in_flags: PortFlags,
        out: &Outgoing<'_>,
        vid: u16,
        w: &mut Scratch,
    ) -> McastRoute {
        if !view.snooping() {
            return McastRoute::Flood;
        }
        let frame = &out.frame;
        let et = frame.inner_ethertype();
        if !matches!(et, EtherType::Ipv4 | EtherType::Ipv6) {
            return McastRoute::Flood;
        }
        let parsed = match crate::wire::inspect(et, frame.payload()) {
            Ok(p) => p,
            Err(_) => {
                // a frame Linux drops while snooping; the control side counts it by family
                self.mcast.invalid.fetch_add(1, Relaxed);
                if self.mcast.queue(ingress.id, vid, frame.bytes_ref()) {
                    self.wake_control();
                }
                return McastRoute::Invalid;
            }
        };
        if parsed.needs_control() && self.mcast.queue(ingress.id, vid, frame.bytes_ref()) {
            self.wake_control();
        }
        let McastDecision::Deliver(list) = view.decide(vid, &parsed) else {
            self.mcast.flooded.fetch_add(1, Relaxed);
            return McastRoute::Flood;
        };
        self.mcast.delivered.fetch_add(1, Relaxed);
        let taps_armed = reg.taps().armed();
        for p in list.iter() {
            let Some(h) = reg.get(p) else { continue };
            let eligible = (h.id != ingress.id || in_flags.contains(PortFlags::HAIRPIN))
                && h.sendable()
                && !isolated_pair(in_flags, h.flags.get())
                && out.vlan.is_none_or(|cl| reg.vlans(h.id).is_member(cl.vid))
                && (!settings.stp || h.stp_gate.forwards())
                && !(taps_armed && reg.taps().is_output(h.id));
            if eligible {
                self.transmit(reg, settings, h, out, w);
            }
        }
        McastRoute::Delivered
    }

    /// Control thread (every link poll, and with the rest of the control work): keeps the
    /// state machine in step with the ports (enabled = up and, with
    /// the spanning tree, forwarding), the VLANs and the time; feeds it the queued messages;
    /// sends the queries it asks for; publishes a new view after a change.
    pub fn mcast_work(&self) {
        let now = self.now();
        let reg = self.ports();
        let settings = self.settings.load();
        let mut st = lock(&self.mcast.state);
        {
            let mut known = lock(&self.mcast.known);
            let (ports, vlans) = &mut *known;
            let cfgs = lock(&self.mcast.port_cfg);
            ports.retain(|id, _| {
                let keep = reg.get(*id).is_some();
                if !keep {
                    st.remove_port(*id);
                }
                keep
            });
            for h in reg.iter() {
                let enabled = h.is_up() && (!settings.stp || h.stp_gate.forwards());
                match ports.get(&h.id) {
                    None => {
                        st.add_port(h.id, cfgs.get(&h.id).copied().unwrap_or_default(), now);
                        let _ = st.set_port_enabled(h.id, enabled, now);
                        ports.insert(h.id, enabled);
                    }
                    Some(e) if *e != enabled => {
                        let _ = st.set_port_enabled(h.id, enabled, now);
                        ports.insert(h.id, enabled);
                    }
                    Some(_) => {}
                }
            }
            let mut want = BTreeSet::new();
            if settings.vlan_filtering {
                for h in reg.iter() {
                    for vid in reg.vlans(h.id).members().iter() {
                        want.insert(vid);
                    }
                }
            } else {
                want.insert(0);
            }
            for gone in vlans.difference(&want).copied().collect::<Vec<_>>() {
                st.remove_vlan(gone);
            }
            for new in want.difference(vlans).copied().collect::<Vec<_>>() {
                st.add_vlan(new, now);
            }
            *vlans = want;
        }
        let queued: Vec<(PortId, u16, Slot, usize)> =
            lock(&self.mcast.inbox).queued.drain(..).collect();
        let mut free = Vec::with_capacity(queued.len());
        for (port, vid, slot, n) in queued {
            let _ = st.handle_bytes(port, vid, &slot[..n], now);
            free.push(slot);
        }
        lock(&self.mcast.inbox).free.extend(free);
        if st.next_deadline().is_some_and(|d| d <= now) {
            st.tick(now);
        }
        let actions = st.take_actions();
        for e in st.take_events() {
            self.events.publish(crate::events::Event::Mdb(e));
        }
        let view = st.is_dirty().then(|| st.view());
        let mac = st.config().switch_mac;
        drop(st);
        if let Some(v) = view {
            self.mcast.publish(v);
        }
        for Action::SendQuery(q) in actions {
            let frame = q.build(mac);
            self.send_query(&reg, &settings, q.vid, q.port, &frame);
        }
    }

    /// Sends a query the switch itself originates on `port`, or on every port of `vid`, with
    /// the egress rules of any frame (link up, forwarding, VLAN membership and tag).
    fn send_query(
        &self,
        reg: &Registry,
        settings: &Settings,
        vid: u16,
        port: Option<PortId>,
        frame: &[u8],
    ) {
        let mut buf = vec![0u8; HEADROOM + VLAN_TAG_LEN + frame.len()];
        for h in reg.iter() {
            if port.is_some_and(|p| p != h.id) || !h.sendable() {
                continue;
            }
            if settings.stp && !h.stp_gate.forwards() {
                continue;
            }
            let tagged = if settings.vlan_filtering {
                let v = reg.vlans(h.id);
                if !v.is_member(vid) {
                    continue;
                }
                !v.is_untagged(vid)
            } else {
                false
            };
            let vlen = h.port.vnet_hdr_len();
            buf[..vlen].fill(0);
            let mut at = vlen;
            buf[at..at + 12].copy_from_slice(&frame[..12]);
            at += 12;
            if tagged {
                buf[at..at + 2].copy_from_slice(&settings.vlan_protocol.tpid().to_be_bytes());
                buf[at + 2..at + 4].copy_from_slice(&vid.to_be_bytes());
                at += VLAN_TAG_LEN;
            }
            let rest = &frame[12..];
            buf[at..at + rest.len()].copy_from_slice(rest);
            at += rest.len();
            if h.port.send(&buf[..at]).is_ok() {
                h.counters.tx_frames.fetch_add(1, Relaxed);
                h.counters.tx_bytes.fetch_add((at - vlen) as u64, Relaxed);
            }
        }
    }

    /// Changes the switch-wide snooping settings (Linux `mcast_*` bridge options).
    pub fn set_mcast_config(&self, cfg: McastConfig) -> Result<(), crate::mcast::ConfigError> {
        let now = self.now();
        let mut st = lock(&self.mcast.state);
        st.set_config(cfg, now)?;
        let v = st.view();
        drop(st);
        self.mcast.publish(v);
        self.wake_control();
        Ok(())
    }

    /// The switch-wide snooping settings.
    pub fn mcast_config(&self) -> McastConfig {
        lock(&self.mcast.state).config().clone()
    }

    /// Changes a port's snooping settings (`mcast_router`, `mcast_fast_leave`,
    /// `mcast_max_groups`).
    pub fn set_port_mcast(&self, h: &PortHandle, cfg: PortConfig) {
        lock(&self.mcast.port_cfg).insert(h.id, cfg);
        let now = self.now();
        let mut st = lock(&self.mcast.state);
        let _ = st.set_port_config(h.id, cfg, now);
        if st.is_dirty() {
            let v = st.view();
            drop(st);
            self.mcast.publish(v);
        }
    }

    /// A port's snooping settings.
    pub fn port_mcast(&self, id: PortId) -> PortConfig {
        lock(&self.mcast.port_cfg)
            .get(&id)
            .copied()
            .unwrap_or_default()
    }

    /// Runs `f` on the state machine (the API's `mdb` calls), then publishes the view if
    /// forwarding changed.
    pub fn with_mcast<R>(&self, f: impl FnOnce(&mut McastState, Timestamp) -> R) -> R {
        let now = self.now();
        let mut st = lock(&self.mcast.state);
        let r = f(&mut st, now);
        if st.is_dirty() {
            let v = st.view();
            drop(st);
            self.mcast.publish(v);
        }
        r
    }

    /// Whether a querier exists for `vid` and `family` (for tests and the API).
    pub fn mcast_querier_exists(&self, vid: u16, family: Family) -> bool {
        self.mcast.view().querier_exists(vid, family)
    }
}
