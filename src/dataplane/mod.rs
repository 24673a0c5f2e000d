//! The switch at run time: its ports, counters and receive loops. [`Switch`] lives here, and
//! all of its methods live in this folder.
//!
//! This is the only module that calls `Port::recv`/`Port::send` on the frame path. The
//! frame path runs on `--dataplane-threads` epoll worker threads ([`runtime`]); each port's
//! receive queues are given to workers, and a worker handles each frame it reads to the end
//! (decision, every transmit) on the spot, with no channel hop. Three sources of frames run
//! elsewhere and call the same [`Switch::handle_frame`]: the datagram and VXLAN hubs (on a small
//! tokio runtime, [`Dataplane::handle`]) and vhost-user back-ends (on their own threads, when
//! the guest kicks). One file per concern:
//!
//! - [`registry`]: the port set (copy-on-write [`Registry`]), attaching and detaching, link
//!   state, and the signals the frame path sends the control thread;
//! - [`forward`]: forwarding of one frame and the per-batch counters;
//! - [`runtime`]: the frame-path threads, the receive loops and the busy poll;
//! - [`hub`]: the datagram hub whose senders become ports;
//! - [`vxlan`]: the VXLAN hubs, one UDP socket per local address and port, demultiplexed by VNI;
//! - `taps`: captures and mirrors on the frame path (run only while the registry's
//!   [`crate::capture::Taps::armed`] is set), the mirror methods, and the
//!   [`crate::capture::Host`] the capture sessions talk to;
//! - `neigh`: ARP/ND suppression on the frame path (snooping, answers; see [`crate::neigh`]);
//! - [`spanning`]: the spanning tree's glue (BPDU inbox, port states for the frame path);
//! - [`storm`]: storm control buckets.
//!
//! Whole-table work (flushes, ageing, snapshots) and per-port ioctls never run here: the frame
//! path flips an atomic and wakes the control thread ([`crate::control`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::fdb::Fdb;
use crate::forwarding::{FloodKind, Settings, SharedSettings};
use crate::types::{PortId, Timestamp};

pub mod forward;
pub mod hub;
pub mod mcast;
mod neigh;
pub mod registry;
pub mod runtime;
pub mod spanning;
pub mod storm;
mod taps;
pub mod vxlan;

pub use forward::Scratch;
pub use hub::dgram_loop;
pub use registry::{
    AddPortError, ControlWork, LinkState, Listener, PortCounters, PortHandle, Registry, MAX_PORTS,
};
pub use runtime::{Dataplane, DrainEnd, LogLimit, RxBuffers, RX_BATCH, RX_BUF};

/// Switch-wide frame counters.
#[derive(Debug)]
pub struct SwitchStats {
    /// Frames sent to exactly one port (known unicast, VEPA relay).
    pub forwarded: AtomicU64,
    /// Frames flooded, by [`FloodKind`] in `FloodKind::ALL` order.
    pub flooded: [AtomicU64; 3],
    /// Frames classified into each VLAN (by VID) with VLAN filtering on.
    pub vlan_rx_frames: Box<[AtomicU64]>,
    /// Bytes classified into each VLAN.
    pub vlan_rx_bytes: Box<[AtomicU64]>,
}

impl Default for SwitchStats {
    fn default() -> Self {
        SwitchStats {
            forwarded: AtomicU64::new(0),
            flooded: Default::default(),
            vlan_rx_frames: (0..4096).map(|_| AtomicU64::new(0)).collect(),
            vlan_rx_bytes: (0..4096).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl SwitchStats {
    /// Flood counter for one kind.
    pub fn flooded(&self, k: FloodKind) -> &AtomicU64 {
        &self.flooded[k as usize]
    }
}

/// The running switch; see the module documentation.
pub struct Switch {
    /// Shown as `master NAME` in `fdb show` output.
    pub name: String,
    /// The forwarding table.
    pub fdb: Fdb,
    /// Switch-wide settings, read once per batch.
    pub settings: SharedSettings,
    /// Switch-wide frame counters.
    pub stats: SwitchStats,
    /// The spanning tree (off unless turned on).
    pub stp: spanning::Spanning,
    /// IGMP/MLD snooping (on by default, as Linux's `mcast_snooping 1`).
    pub mcast: mcast::Snooping,
    /// Totals of ended captures and the capture id counter.
    pub capture: crate::capture::Totals,
    /// Changes of the table, ports and spanning tree, for followers (see [`crate::events`]).
    pub events: Arc<crate::events::Events>,
    /// The EVPN service while `--evpn` runs one, for the metrics (type-erased: it is built on
    /// the switch, so the switch does not name it).
    pub evpn: Mutex<Option<Arc<dyn std::any::Any + Send + Sync>>>,
    /// MAC+IP bindings for ARP/ND suppression (see [`crate::neigh`]).
    pub neigh: crate::neigh::Neigh,
    registry: RwLock<Arc<Registry>>,
    listeners: Mutex<Vec<Listener>>,
    /// The dataplane's workers, which read the ports (unset in tests that pump).
    workers: std::sync::OnceLock<Arc<runtime::Workers>>,
    /// The frame path wants control work done (see [`Switch::control_work`]).
    control_pending: AtomicBool,
    /// The frame path wants the links read now (see [`Switch::request_link_poll`]).
    link_poll_pending: AtomicBool,
    control_wake: tokio::sync::Notify,
    /// Where receive loops run (see [`Dataplane`]); the caller's runtime if unset.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    origin: Instant,
    /// The VXLAN hubs (sockets shared by `vxlan` ports).
    vxlan: vxlan::Hubs,
    /// Removed ports a batch may have learned on after their flush (see [`Switch::publish`]).
    flush_again: Mutex<Vec<PortId>>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("name", &self.name)
            .field("fdb", &self.fdb)
            .field("ports", &self.ports().len())
            .finish()
    }
}

impl Switch {
    /// A switch with no ports.
    pub fn new(name: &str, settings: Settings, max_learned: usize) -> Arc<Switch> {
        let events = Arc::new(crate::events::Events::default());
        let fdb = Fdb::new(max_learned);
        fdb.set_watch(events.clone());
        Arc::new(Switch {
            name: name.to_string(),
            fdb,
            events,
            evpn: Mutex::new(None),
            neigh: crate::neigh::Neigh::default(),
            settings: SharedSettings::new(settings),
            stats: SwitchStats::default(),
            stp: spanning::Spanning::new(spanning::derived_mac(name)),
            mcast: mcast::Snooping::new(crate::mcast::McastConfig {
                switch_mac: spanning::derived_mac(name),
                ..Default::default()
            }),
            capture: crate::capture::Totals::default(),
            registry: RwLock::new(Arc::default()),
            listeners: Mutex::new(Vec::new()),
            workers: std::sync::OnceLock::new(),
            control_pending: AtomicBool::new(false),
            link_poll_pending: AtomicBool::new(false),
            control_wake: tokio::sync::Notify::new(),
            runtime: std::sync::OnceLock::new(),
            origin: Instant::now(),
            vxlan: vxlan::Hubs::default(),
            flush_again: Mutex::new(Vec::new()),
        })
    }

    /// Frame path: a batch may have learned on port `id` after it was marked `gone`; the
    /// control thread flushes it once more if it was removed.
    pub(super) fn flush_again(&self, id: PortId) {
        {
            let mut v = self.flush_again.lock().unwrap_or_else(|p| p.into_inner());
            if !v.contains(&id) && v.len() < registry::MAX_PORTS {
                v.push(id);
            }
        }
        self.wake_control();
    }

    /// Control thread: flushes the removed ports batches asked about (a port still attached,
    /// merely `gone`, keeps its entries until it is detached, which flushes them).
    pub(super) fn flush_removed(&self) {
        let ids = std::mem::take(&mut *self.flush_again.lock().unwrap_or_else(|p| p.into_inner()));
        if ids.is_empty() {
            return;
        }
        let reg = self.ports();
        for id in ids {
            if reg.get(id).is_none() {
                let n = self.fdb.flush_port(id);
                self.fdb.forget_port(id);
                if n > 0 {
                    tracing::debug!(
                        port = id.0,
                        flushed = n,
                        "entries learned on a removed port flushed"
                    );
                }
            }
        }
    }

    /// Milliseconds since the switch started; the only clock of the frame path.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.origin.elapsed().as_millis() as u64)
    }

    /// Periodic work of the control thread: ageing, then port housekeeping (re-reading MTUs,
    /// rebinding packet ports, reading links, detaching ports gone for good).
    pub fn tick(&self) {
        self.age();
        self.tick_control();
    }

    /// Ages the forwarding table: one pass over the whole table that write-locks each of its
    /// shards in turn, so it waits for whoever holds one (a reader walking the table for a
    /// page). The daemon runs it on a thread of its own, so the control thread (spanning tree,
    /// flushes, changes) never waits for it.
    pub fn age(&self) {
        let s = self.settings.load();
        self.fdb.age_out(self.now(), s.ageing_ms);
        // local MAC+IP bindings age with the table's ageing time
        self.neigh.age_out(self.now(), s.ageing_ms);
    }

    /// [`Switch::tick`] without [`Switch::age`]: the control thread's part.
    pub fn tick_control(&self) {
        let s = self.settings.load();
        self.vxlan_tick(self.now(), s.ageing_ms);
        for h in self.ports().iter() {
            if h.state() != LinkState::Gone {
                h.port.refresh();
            }
        }
        self.poll_links();
        self.control_work();
    }

    /// How often the control thread reads the links of the ports ([`Switch::poll_links`]):
    /// every 100 ms, plus 50 µs per port that follows a link (a TAP's read costs a handful of
    /// syscalls: 4096 TAPs are read every 305 ms). A host brought up is seen within that time
    /// even if it never sends; a frame read from a port thought down has it read at once.
    pub fn link_poll_interval(&self) -> std::time::Duration {
        let n = self.ports().iter().filter(|h| h.follows_link()).count() as u64;
        std::time::Duration::from_micros(100_000 + 50 * n)
    }

    /// How often [`Switch::tick`] should run (at least every 200 ms while the spanning tree
    /// runs: its timers count seconds and its handshakes should not wait).
    pub fn tick_interval(&self) -> std::time::Duration {
        let s = self.settings.load();
        let max = if s.stp { 200 } else { 1000 };
        std::time::Duration::from_millis((s.ageing_ms / 10).clamp(100, max))
    }

    /// How often [`Switch::age`] should run: a tenth of the ageing time, within 0.1..1 s.
    pub fn ageing_interval(&self) -> std::time::Duration {
        let s = self.settings.load();
        std::time::Duration::from_millis((s.ageing_ms / 10).clamp(100, 1000))
    }

    /// Whether control work is pending (for tests).
    pub fn control_pending(&self) -> bool {
        self.control_pending.load(Relaxed)
    }
}
