//! The port registry and link state: attaching and detaching ports, listeners, and the
//! frame path's signals to the control thread.
//!
//! Ports live in a copy-on-write [`Registry`] that each batch of frames reads once. The frame
//! path never does whole-table work: when a port leaves the `up` state it flips the state,
//! marks the port's table entries for flushing and wakes the control thread, which flushes
//! them, logs the change and detaches ports that are gone for good ([`Switch::control_work`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::Switch;
use crate::forwarding::{AtomicPortFlags, PortDirectory, PortFlags, RxDrop, TxDrop};
use crate::port::{Link, Port, PortKind};
use crate::types::PortId;
use crate::vlan::PortVlans;

pub use crate::types::MAX_PORTS;

/// Counters of one port, from the switch's point of view (rx = read from the port).
///
/// The frame path adds to them once per batch of frames, not once per frame, so two
/// dataplane threads do not bounce their cache lines frame by frame.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames read from the port.
    pub rx_frames: AtomicU64,
    /// Bytes read from the port (frames only, no virtio_net_hdr).
    pub rx_bytes: AtomicU64,
    /// Frames written to the port.
    pub tx_frames: AtomicU64,
    /// Bytes written to the port.
    pub tx_bytes: AtomicU64,
    /// By [`RxDrop::index`].
    pub rx_dropped: [AtomicU64; RxDrop::COUNT],
    /// By [`TxDrop::index`].
    pub tx_dropped: [AtomicU64; TxDrop::COUNT],
    /// Frames read from this port and sent to one port (`rx_frames` = `rx_forwarded` +
    /// `rx_flooded` + the sum of `rx_dropped`).
    pub rx_forwarded: AtomicU64,
    /// Frames read from this port and flooded.
    pub rx_flooded: AtomicU64,
    /// Transitions between up and down.
    pub link_changes: AtomicU64,
}

impl PortCounters {
    /// Counts one receive drop.
    pub fn rx_drop(&self, r: RxDrop) {
        self.rx_dropped[r.index()].fetch_add(1, Relaxed);
    }
    /// Counts one transmit drop.
    pub fn tx_drop(&self, r: TxDrop) {
        self.tx_dropped[r.index()].fetch_add(1, Relaxed);
    }
    /// Sum of receive drops.
    pub fn rx_dropped_total(&self) -> u64 {
        self.rx_dropped.iter().map(|c| c.load(Relaxed)).sum()
    }
    /// Sum of transmit drops.
    pub fn tx_dropped_total(&self) -> u64 {
        self.tx_dropped.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Operational state of a port as the switch sees it.
///
/// A port that follows a link ([`Port::follows_link`]: TAP, packet, dgram, vhost) takes its
/// state from the link, as the Linux bridge follows carrier and admin state: the control
/// thread reads it a few times a second ([`Switch::poll_links`]), and at once when the frame
/// path sees a sign of change (a write refused, a frame read on a port it thought down). Other
/// ports (streams, tunnels, in-memory ports) go by the outcome of reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Frames pass.
    Up,
    /// The link is down (admin down, no carrier, interface away, peer not there); a port that
    /// follows a link comes back with it, another on its next successful read or write.
    Down,
    /// The interface or peer is gone; the port reads nothing more.
    Gone,
}

impl LinkState {
    /// `up`, `down` or `gone`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Gone => "gone",
        }
    }

    pub(super) fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Up,
            1 => LinkState::Down,
            _ => LinkState::Gone,
        }
    }
}

/// One attached port.
pub struct PortHandle {
    /// Identity in the table and the registry.
    pub id: PortId,
    /// Name in the API, metrics and `fdb show`.
    pub name: String,
    /// The frame source and sink.
    pub port: Box<dyn Port>,
    /// Flags changeable at run time (see [`Switch::set_port_flags`]).
    pub flags: AtomicPortFlags,
    /// Frame counters.
    pub counters: PortCounters,
    pub(super) state: AtomicU8,
    /// The port's state follows its link ([`Port::follows_link`]), not its I/O.
    pub(super) follows_link: bool,
    /// The state the control thread last saw (and logged).
    reported: AtomicU8,
    /// The frame path saw the port leave `up`: its dynamic entries await a flush.
    flush_pending: AtomicBool,
    /// The listener that made this port (stream connection, datagram peer).
    pub owner: Option<Arc<str>>,
    /// VLAN membership, PVID and egress tagging (the frame path reads the registry's copy).
    vlans: Mutex<PortVlans>,
    /// The spanning tree's state of the port, as the frame path reads it.
    pub stp_gate: super::spanning::StpGate,
    /// The port's spanning tree settings.
    pub(super) stp_cfg: Mutex<crate::stp::PortConfig>,
    /// Storm control limits.
    pub storm: super::storm::Storm,
}

impl std::fmt::Debug for PortHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortHandle")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.port.kind())
            .field("flags", &self.flags.get())
            .field("state", &self.state())
            .finish()
    }
}

impl PortHandle {
    /// Current link state.
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Relaxed))
    }
    /// Whether frames pass.
    pub fn is_up(&self) -> bool {
        self.state() == LinkState::Up
    }
    /// Whether the frame path sends to the port: up, or down but following its I/O (a send
    /// that works brings it back). A port that follows a link and is down is left out of
    /// floods, as the Linux bridge leaves out a disabled port.
    #[inline]
    pub fn sendable(&self) -> bool {
        match self.state() {
            LinkState::Up => true,
            LinkState::Down => !self.follows_link,
            LinkState::Gone => false,
        }
    }
    /// Whether the port's state follows its link ([`Port::follows_link`]).
    pub fn follows_link(&self) -> bool {
        self.follows_link
    }
    /// The port kind.
    pub fn kind(&self) -> PortKind {
        self.port.kind()
    }

    /// The port's VLAN configuration.
    pub fn vlans(&self) -> PortVlans {
        self.vlans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The ports at one moment; replaced as a whole when a port is added or removed, or when the
/// uplink changes.
#[derive(Clone, Default)]
pub struct Registry {
    pub(super) slots: Vec<Option<Arc<PortHandle>>>,
    /// Each slot's VLAN configuration, as the frame path reads it.
    vlans: Vec<Arc<PortVlans>>,
    generations: Vec<u16>,
    list: Vec<Arc<PortHandle>>,
    /// The port with the `uplink` flag, looked up once here instead of once per frame.
    uplink: Option<PortId>,
    /// Running captures and mirrors ([`crate::capture`]).
    taps: crate::capture::Taps,
}

impl Registry {
    pub(super) fn slot(id: PortId) -> usize {
        (id.0 & 0xffff) as usize
    }

    /// The port with this id, if still attached.
    pub fn get(&self, id: PortId) -> Option<&Arc<PortHandle>> {
        self.slots
            .get(Self::slot(id))?
            .as_ref()
            .filter(|h| h.id == id)
    }

    /// Captures and mirrors, as the frame path reads them.
    #[inline]
    pub fn taps(&self) -> &crate::capture::Taps {
        &self.taps
    }

    fn rebuild_taps(&mut self) {
        let n = self.slots.len();
        self.taps
            .rebuild(self.list.iter().map(|h| (h.id, h.name.as_str())), n);
    }

    /// The VLAN configuration of a port (none for a port that is not attached).
    pub fn vlans(&self, id: PortId) -> &PortVlans {
        static NONE: PortVlans = PortVlans::none();
        match self.vlans.get(Self::slot(id)) {
            Some(v) if self.get(id).is_some() => v,
            _ => &NONE,
        }
    }

    /// The port in a slot (see [`PortId`]), if any.
    pub(super) fn by_slot(&self, slot: usize) -> Option<&Arc<PortHandle>> {
        self.slots.get(slot)?.as_ref()
    }

    /// The port with this name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<PortHandle>> {
        self.list.iter().find(|h| h.name == name)
    }

    /// Every port, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<PortHandle>> {
        self.list.iter()
    }

    /// Number of ports.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no ports.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn next_id(&mut self) -> Option<PortId> {
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(s) => s,
            None if self.slots.len() < MAX_PORTS => {
                self.slots.push(None);
                self.vlans.push(Arc::new(PortVlans::none()));
                self.generations.push(0);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        Some(PortId(
            ((self.generations[slot] as u32) << 16) | slot as u32,
        ))
    }

    fn find_uplink(&self) -> Option<PortId> {
        self.list
            .iter()
            .find(|h| h.flags.get().contains(PortFlags::UPLINK))
            .map(|h| h.id)
    }
}

impl PortDirectory for Registry {
    fn flags_of(&self, id: PortId) -> Option<PortFlags> {
        self.get(id).map(|h| h.flags.get())
    }
    fn uplink(&self) -> Option<PortId> {
        self.uplink
    }
}

/// Why a port could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddPortError {
    /// The name is taken (by a port or a listener).
    #[error("a port named '{0}' already exists")]
    Duplicate(String),
    /// [`MAX_PORTS`] reached.
    #[error("the switch already has {MAX_PORTS} ports")]
    Full,
    /// VEPA allows one uplink.
    #[error("port '{new}' has the uplink flag but '{existing}' is already the uplink; a VEPA switch has exactly one")]
    SecondUplink {
        /// The port being added or changed.
        new: String,
        /// The current uplink.
        existing: String,
    },
}

/// A socket that creates ports (a `stream:` listener, a `dgram:` hub).
#[derive(Debug)]
pub struct Listener {
    /// Its ports are named `NAME-N`.
    pub name: String,
    /// `stream` or `dgram`.
    pub kind: PortKind,
    /// The socket file.
    pub path: std::path::PathBuf,
    /// The task that accepts connections or reads the hub.
    pub task: tokio::task::AbortHandle,
    /// The socket file, removed when the listener is dropped (only while its name still
    /// holds this socket).
    pub file: crate::port::sockfile::SockFile,
}

/// What one round of control work did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlWork {
    /// Table entries flushed because their port left the `up` state.
    pub flushed: usize,
    /// Ports detached because they were gone for good (closed connections).
    pub removed: usize,
}

impl Switch {
    /// The current port set.
    pub fn ports(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Attaches a port. With a dataplane ([`Switch::set_dataplane`]) its queues are given to the
    /// workers at once; without one (tests), call [`Switch::pump`] to feed its frames.
    pub fn add_port(
        self: &Arc<Self>,
        name: &str,
        port: Box<dyn Port>,
        flags: PortFlags,
    ) -> Result<Arc<PortHandle>, AddPortError> {
        self.add_port_owned(name, port, flags, None)
    }

    /// [`Switch::add_port`] for a port a listener made (`owner` is the listener's name).
    pub fn add_port_owned(
        self: &Arc<Self>,
        name: &str,
        port: Box<dyn Port>,
        flags: PortFlags,
        owner: Option<&str>,
    ) -> Result<Arc<PortHandle>, AddPortError> {
        let handle = {
            let mut lock = self.registry.write().unwrap_or_else(|p| p.into_inner());
            if lock.by_name(name).is_some() {
                return Err(AddPortError::Duplicate(name.into()));
            }
            if flags.contains(PortFlags::UPLINK) {
                if let Some(u) = lock.uplink.and_then(|u| lock.get(u)) {
                    return Err(AddPortError::SecondUplink {
                        new: name.into(),
                        existing: u.name.clone(),
                    });
                }
            }
            let mut reg = (**lock).clone();
            let id = reg.next_id().ok_or(AddPortError::Full)?;
            let vlans = PortVlans::new_default(self.settings.load().default_pvid);
            reg.vlans[Registry::slot(id)] = Arc::new(vlans.clone());
            // a port that follows a link starts in its link's state
            let follows_link = port.follows_link();
            let state = match follows_link.then(|| port.link()).flatten() {
                Some(Link::Down | Link::Gone) => LinkState::Down,
                _ => LinkState::Up,
            };
            let handle = Arc::new(PortHandle {
                id,
                name: name.to_string(),
                port,
                flags: AtomicPortFlags::new(flags),
                counters: PortCounters::default(),
                state: AtomicU8::new(state as u8),
                follows_link,
                reported: AtomicU8::new(state as u8),
                flush_pending: AtomicBool::new(false),
                owner: owner.map(Arc::from),
                vlans: Mutex::new(vlans),
                stp_gate: {
                    let g = super::spanning::StpGate::forwarding();
                    if self.settings.load().stp {
                        g.set(crate::stp::PortState::Discarding);
                    }
                    g
                },
                stp_cfg: Mutex::new(crate::stp::PortConfig::default()),
                storm: super::storm::Storm::default(),
            });
            reg.slots[Registry::slot(id)] = Some(handle.clone());
            reg.list.push(handle.clone());
            reg.uplink = reg.find_uplink();
            reg.rebuild_taps();
            *lock = Arc::new(reg);
            handle
        };
        self.start_port(&handle);
        tracing::info!(port = %name, kind = handle.kind().as_str(), flags = ?flags, "port attached");
        self.port_event(handle.id, &handle.name, "attached");
        Ok(handle)
    }

    /// Changes a port's flags. Setting `uplink` fails if another port has it.
    pub fn set_port_flags(&self, h: &PortHandle, flags: PortFlags) -> Result<(), AddPortError> {
        let mut lock = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let had = h.flags.get().contains(PortFlags::UPLINK);
        let wants = flags.contains(PortFlags::UPLINK);
        if wants && !had {
            if let Some(u) = lock.uplink.and_then(|u| lock.get(u)) {
                if u.id != h.id {
                    return Err(AddPortError::SecondUplink {
                        new: h.name.clone(),
                        existing: u.name.clone(),
                    });
                }
            }
        }
        h.flags.set(flags);
        if had != wants {
            let mut reg = (**lock).clone();
            reg.uplink = reg.find_uplink();
            *lock = Arc::new(reg);
        }
        Ok(())
    }

    /// Changes a port's VLAN configuration with `f` (which may refuse); the frame path sees
    /// the result from its next batch. Returns what `f` returned.
    pub fn update_port_vlans<R>(&self, h: &PortHandle, f: impl FnOnce(&mut PortVlans) -> R) -> R {
        let mut lock = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let mut v = h.vlans.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut v);
        let mut reg = (**lock).clone();
        if reg.get(h.id).is_some() {
            reg.vlans[Registry::slot(h.id)] = Arc::new(v.clone());
            *lock = Arc::new(reg);
        }
        r
    }

    /// Changes the captures and mirrors with `f` (which may refuse; it sees the current ports);
    /// the frame path sees the result from its next batch. Returns what `f` returned.
    pub fn update_taps<R>(&self, f: impl FnOnce(&mut crate::capture::Taps, &Registry) -> R) -> R {
        let mut lock = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let mut reg = (**lock).clone();
        let r = f(&mut reg.taps, &lock);
        reg.rebuild_taps();
        *lock = Arc::new(reg);
        r
    }

    /// Detaches a port: the workers stop reading it (and say so), all its table entries go,
    /// and the call waits (bounded) until nothing holds the port, so its fds are closed when
    /// the caller drops the handle. Whole-table work: call it from the control thread, not the
    /// frame path, and hold no handle or port set while calling it.
    pub fn remove_port(&self, name: &str) -> Option<Arc<PortHandle>> {
        let handle = {
            let mut lock = self.registry.write().unwrap_or_else(|p| p.into_inner());
            let h = lock.by_name(name)?.clone();
            let mut reg = (**lock).clone();
            reg.slots[Registry::slot(h.id)] = None;
            reg.list.retain(|x| x.id != h.id);
            reg.uplink = reg.find_uplink();
            reg.rebuild_taps();
            *lock = Arc::new(reg);
            h
        };
        // Gone first: a batch still running with the old port set neither learns onto it nor
        // keeps a datagram peer's stale handle alive.
        handle.state.store(LinkState::Gone as u8, Relaxed);
        // Pairs with the fence of `Switch::publish`: a batch that learns on the port after the
        // flush below sees `gone` there and has the port flushed again.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.stop_port(&handle);
        handle.port.shutdown();
        self.fdb.flush_port(handle.id);
        self.fdb.forget_port(handle.id);
        self.neigh.flush_port(handle.id);
        if handle.kind() == PortKind::Vxlan {
            self.vxlan_forget_gone();
        }
        // The workers have let go of it; a batch or a reply that took the port set just
        // before may still hold it for a moment. Wait for them (bounded), so the port's fds
        // are closed when the caller drops the handle: a TAP detached and attached again at
        // once must not find its old fd still open (EBUSY).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while Arc::strong_count(&handle) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if Arc::strong_count(&handle) > 1 {
            tracing::warn!(port = %name, holders = Arc::strong_count(&handle) - 1, "a detached port is still held; its fds close when it is let go");
        }
        tracing::info!(port = %name, "port detached");
        self.port_event(handle.id, &handle.name, "removed");
        Some(handle)
    }

    /// Detaches every port and closes every listener (shutdown).
    pub fn remove_all_ports(&self) {
        let names: Vec<String> = self.listeners().into_iter().map(|l| l.0).collect();
        for n in names {
            self.remove_listener(&n);
        }
        // names first: a port set held across the loop would hold every port it detaches
        let names: Vec<String> = self.ports().iter().map(|h| h.name.clone()).collect();
        for n in names {
            self.remove_port(&n);
        }
    }

    /// Registers a listener; its name must not clash with a port or another listener.
    pub fn add_listener(&self, l: Listener) -> Result<(), AddPortError> {
        let mut ls = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        if ls.iter().any(|x| x.name == l.name) || self.ports().by_name(&l.name).is_some() {
            l.task.abort();
            return Err(AddPortError::Duplicate(l.name));
        }
        tracing::info!(listener = %l.name, kind = l.kind.as_str(), path = %l.path.display(), "listening");
        ls.push(l);
        Ok(())
    }

    /// `(name, kind, path)` of every listener.
    pub fn listeners(&self) -> Vec<(String, PortKind, std::path::PathBuf)> {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| (l.name.clone(), l.kind, l.path.clone()))
            .collect()
    }

    /// The ports a listener created.
    pub fn listener_ports(&self, name: &str, kind: PortKind) -> Vec<Arc<PortHandle>> {
        self.ports()
            .iter()
            .filter(|h| h.kind() == kind && h.owner.as_deref() == Some(name))
            .cloned()
            .collect()
    }

    /// How many ports a listener created (no allocation: the frame path's datagram hub asks).
    pub fn listener_port_count(&self, name: &str, kind: PortKind) -> usize {
        self.ports()
            .iter()
            .filter(|h| h.kind() == kind && h.owner.as_deref() == Some(name))
            .count()
    }

    /// Stops a listener, removes its socket file and detaches its ports.
    pub fn remove_listener(&self, name: &str) -> bool {
        let l = {
            let mut ls = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            match ls.iter().position(|l| l.name == name) {
                Some(i) => ls.remove(i),
                None => return false,
            }
        };
        l.task.abort();
        l.file.remove();
        // names only: a handle held here would hold the port remove_port waits to close
        let names: Vec<String> = self
            .listener_ports(&l.name, l.kind)
            .iter()
            .map(|h| h.name.clone())
            .collect();
        for n in names {
            self.remove_port(&n);
        }
        tracing::info!(listener = %name, "listener closed");
        true
    }

    /// Moves a port to a new link state (`Gone` is final). Cheap enough for the frame path:
    /// leaving `up` only marks the port's dynamic entries for a flush (Linux L8) and wakes the
    /// control thread, which does the flush and the logging ([`Switch::control_work`]).
    pub fn set_state(&self, h: &PortHandle, new: LinkState) {
        let changed = h.state.fetch_update(Relaxed, Relaxed, |cur| {
            let cur = LinkState::from_u8(cur);
            (cur != new && cur != LinkState::Gone).then_some(new as u8)
        });
        let Ok(old) = changed else { return };
        h.counters.link_changes.fetch_add(1, Relaxed);
        if LinkState::from_u8(old) == LinkState::Up {
            h.flush_pending.store(true, Relaxed);
        }
        self.wake_control();
    }

    /// Frame path: asks the control thread to read the links of the ports that follow one now
    /// (a frame came from a port thought down, a write was refused).
    pub fn request_link_poll(&self) {
        if !self.link_poll_pending.swap(true, Relaxed) {
            self.wake_control();
        }
    }

    /// Frame path: a frame was read from (or written to) a port thought down. A port that
    /// follows its I/O is up again; one that follows a link gets its link read now.
    pub(super) fn read_while_down(&self, h: &PortHandle) {
        if h.follows_link {
            self.request_link_poll();
        } else {
            self.set_state(h, LinkState::Up);
        }
    }

    /// Control thread: reads the link of every port that follows one and moves the port to
    /// that state (up with carrier: `up`; otherwise `down`; a deleted TAP: `gone`). Returns
    /// how many ports changed state.
    pub fn poll_links(&self) -> usize {
        self.link_poll_pending.store(false, Relaxed);
        let mut changed = 0;
        for h in self.ports().iter() {
            if !h.follows_link || h.state() == LinkState::Gone {
                continue;
            }
            let want = match h.port.link() {
                Some(Link::Up) => LinkState::Up,
                Some(Link::Down) => LinkState::Down,
                Some(Link::Gone) => LinkState::Gone,
                None => continue,
            };
            if h.state() != want {
                self.set_state(h, want);
                changed += 1;
            }
        }
        changed
    }

    /// Asks the control thread to look at the ports (a state changed, a port is gone).
    pub fn wake_control(&self) {
        self.control_pending.store(true, Relaxed);
        self.control_wake.notify_one();
    }

    /// Waits until the frame path asks for control work.
    pub async fn control_wanted(&self) {
        if !self.control_pending.load(Relaxed) {
            self.control_wake.notified().await;
        }
    }

    fn port_event(&self, port: PortId, name: &str, state: &'static str) {
        self.events.publish(crate::events::Event::Port {
            port,
            name: name.into(),
            state,
        });
    }

    /// The control thread's work the frame path asked for: flushes the entries of ports that
    /// left `up`, logs state changes, detaches ports that are gone for good. Run it off the
    /// frame path (the control thread does; tests without a runtime call it themselves).
    pub fn control_work(&self) -> ControlWork {
        self.control_pending.store(false, Relaxed);
        if self.link_poll_pending.load(Relaxed) {
            self.poll_links();
        }
        let mut work = ControlWork::default();
        self.stp_work();
        self.mcast_work();
        self.flush_removed();
        let mut ended = Vec::new();
        for h in self.ports().iter() {
            let flushed = if h.flush_pending.swap(false, Relaxed) {
                self.fdb.flush_port_dynamic(h.id)
            } else {
                0
            };
            work.flushed += flushed;
            let now = h.state.load(Relaxed);
            let changed = h.reported.swap(now, Relaxed) != now;
            if changed {
                self.port_event(h.id, &h.name, LinkState::from_u8(now).as_str());
            }
            if changed || flushed > 0 {
                tracing::info!(
                    port = %h.name,
                    state = ?LinkState::from_u8(now),
                    flushed,
                    thread = std::thread::current().name().unwrap_or("?"),
                    "port state changed"
                );
            }
            if LinkState::from_u8(now) == LinkState::Gone && h.port.ephemeral() {
                ended.push(h.name.clone());
            }
        }
        // after the loop: its port set would hold the ports remove_port waits to close
        for n in ended {
            self.remove_port(&n);
            work.removed += 1;
        }
        work
    }
}
