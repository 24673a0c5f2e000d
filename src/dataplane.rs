//! The switch at run time: its ports, counters and receive loops.
//!
//! This is the only module that calls `Port::recv`/`Port::send` on the frame path. Each port
//! has one receive task; a frame is handled to the end (decision, every transmit) on the task
//! that read it, with no channel hop and no allocation. Ports live in a copy-on-write
//! [`Registry`] that each batch of frames reads once; flags and counters are atomics, so the
//! API can change a flag or read a counter without stopping the frame path.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::fdb::{Fdb, Timestamp};
use crate::frame::EthernetFrame;
use crate::offload::{self, VnetHdr, GSO_NONE, VNET_HDR_LEN};
use crate::port::{classify, sys, IoClass, Port, PortKind};
use crate::switch::{
    decide, exceeds_mtu, flood_eligible, AtomicPortFlags, Decision, FloodKind, PortDirectory,
    PortFlags, PortId, RxDrop, Settings, SharedSettings, TxDrop,
};

/// Most ports one switch holds.
pub const MAX_PORTS: usize = 4096;
/// Frames read from one port before other ports get a turn.
pub const RX_BATCH: usize = 64;
/// Receive buffer: the largest frame any port can deliver.
pub const RX_BUF: usize = 65536 + 64;
/// Room before each received frame for a virtio_net_hdr, so a frame from a plain port can go
/// to an offload port with a zero header and no copy.
const HEADROOM: usize = VNET_HDR_LEN;

/// The buffers one receive loop owns, allocated once.
pub struct RxBuffers {
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl Default for RxBuffers {
    fn default() -> Self {
        RxBuffers {
            buf: vec![0; HEADROOM + RX_BUF],
            scratch: vec![0; offload::SEG_BUF],
        }
    }
}

/// Counters of one port, from the switch's point of view (rx = read from the port).
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_frames: AtomicU64,
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
    fn rx_drop(&self, r: RxDrop) {
        self.rx_dropped[r.index()].fetch_add(1, Relaxed);
    }
    fn tx_drop(&self, r: TxDrop) {
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Frames pass.
    Up,
    /// The interface is down (a write returned EIO); it comes back on the next successful read
    /// or write.
    Down,
    /// The interface or peer is gone; the port reads nothing more.
    Gone,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Up,
            1 => LinkState::Down,
            _ => LinkState::Gone,
        }
    }
}

/// One attached port.
pub struct PortHandle {
    pub id: PortId,
    pub name: String,
    pub port: Box<dyn Port>,
    pub flags: AtomicPortFlags,
    pub counters: PortCounters,
    state: AtomicU8,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    removed: std::sync::atomic::AtomicBool,
    /// The listener that made this port (stream connection, datagram peer).
    pub owner: Option<Arc<str>>,
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
    /// The port kind.
    pub fn kind(&self) -> PortKind {
        self.port.kind()
    }

    /// Tracks a task of this port; one added after the port was removed is stopped at once.
    fn add_task(&self, t: tokio::task::AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if self.removed.load(Relaxed) {
            t.abort();
        } else {
            tasks.push(t);
        }
    }
}

/// The ports at one moment; replaced as a whole when a port is added or removed.
#[derive(Clone, Default)]
pub struct Registry {
    slots: Vec<Option<Arc<PortHandle>>>,
    generations: Vec<u16>,
    list: Vec<Arc<PortHandle>>,
}

impl Registry {
    fn slot(id: PortId) -> usize {
        (id.0 & 0xffff) as usize
    }

    /// The port with this id, if still attached.
    pub fn get(&self, id: PortId) -> Option<&Arc<PortHandle>> {
        self.slots
            .get(Self::slot(id))?
            .as_ref()
            .filter(|h| h.id == id)
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
}

impl PortDirectory for Registry {
    fn flags_of(&self, id: PortId) -> Option<PortFlags> {
        self.get(id).map(|h| h.flags.get())
    }
    fn uplink(&self) -> Option<PortId> {
        self.list
            .iter()
            .find(|h| h.flags.get().contains(PortFlags::UPLINK))
            .map(|h| h.id)
    }
}

/// Switch-wide frame counters.
#[derive(Debug, Default)]
pub struct SwitchStats {
    /// Frames sent to exactly one port (known unicast, VEPA relay).
    pub forwarded: AtomicU64,
    /// Frames flooded, by [`FloodKind`] in `FloodKind::ALL` order.
    pub flooded: [AtomicU64; 3],
}

impl SwitchStats {
    /// Flood counter for one kind.
    pub fn flooded(&self, k: FloodKind) -> &AtomicU64 {
        &self.flooded[FloodKind::ALL.iter().position(|x| *x == k).unwrap_or(0)]
    }
}

/// Why a port could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddPortError {
    #[error("a port named '{0}' already exists")]
    Duplicate(String),
    #[error("the switch already has {MAX_PORTS} ports")]
    Full,
    #[error("port '{new}' has the uplink flag but '{existing}' is already the uplink; a VEPA switch has exactly one")]
    SecondUplink { new: String, existing: String },
}

/// How a drain of one port ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainEnd {
    /// Nothing more to read now.
    Empty,
    /// The batch limit was reached; more may be waiting.
    BatchFull,
    /// The port is gone; stop reading it.
    Gone,
}

/// The running switch; see the module documentation.
pub struct Switch {
    /// Shown as `master NAME` in `fdb show` output.
    pub name: String,
    pub fdb: Fdb,
    pub settings: SharedSettings,
    pub stats: SwitchStats,
    registry: RwLock<Arc<Registry>>,
    listeners: Mutex<Vec<Listener>>,
    /// Microseconds since `origin` of the last frame handled (busy polling).
    last_frame_us: AtomicU64,
    busy: std::sync::atomic::AtomicBool,
    spin_us: AtomicU64,
    wake_spinner: tokio::sync::Notify,
    /// Where receive loops run (see [`Dataplane`]); the caller's runtime if unset.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    origin: Instant,
}

/// The runtime of the frame path: `threads` dedicated threads, apart from the API and control
/// tasks, so HTTP work never delays a frame and, with one thread, every frame is handled on the
/// thread that polled it without cross-thread wake-ups.
pub struct Dataplane {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dataplane {
    /// Starts the frame-path runtime on `threads` threads (1 = a single event loop). With
    /// `busy_poll_us > 0` the loop polls its ports without sleeping for that long after the
    /// last frame (see [`Switch::busy_poll`]).
    pub fn start(threads: usize, busy_poll_us: u64) -> std::io::Result<Dataplane> {
        let mut b = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads).thread_name("tapswitch-dp");
            b
        };
        if busy_poll_us > 0 {
            // look at the ports after every task poll, so a spinning loop sees frames at once
            b.event_interval(1);
        }
        let rt = b.enable_all().build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tapswitch-dp".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_background();
            })?;
        Ok(Dataplane {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime's handle.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A socket that creates ports (a `stream:` listener, a `dgram:` hub).
#[derive(Debug)]
pub struct Listener {
    /// Its ports are named `NAME-N`.
    pub name: String,
    pub kind: PortKind,
    pub path: std::path::PathBuf,
    pub task: tokio::task::AbortHandle,
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
        Arc::new(Switch {
            name: name.to_string(),
            fdb: Fdb::new(max_learned),
            settings: SharedSettings::new(settings),
            stats: SwitchStats::default(),
            registry: RwLock::new(Arc::default()),
            listeners: Mutex::new(Vec::new()),
            last_frame_us: AtomicU64::new(0),
            busy: std::sync::atomic::AtomicBool::new(false),
            spin_us: AtomicU64::new(0),
            wake_spinner: tokio::sync::Notify::new(),
            runtime: std::sync::OnceLock::new(),
            origin: Instant::now(),
        })
    }

    /// Milliseconds since the switch started; the only clock of the frame path.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.origin.elapsed().as_millis() as u64)
    }

    /// The current port set.
    pub fn ports(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Attaches a port. Inside a tokio runtime its receive task starts at once; outside one
    /// (tests), call [`Switch::drain`] to feed its frames.
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
                if let Some(u) = lock
                    .iter()
                    .find(|h| h.flags.get().contains(PortFlags::UPLINK))
                {
                    return Err(AddPortError::SecondUplink {
                        new: name.into(),
                        existing: u.name.clone(),
                    });
                }
            }
            let mut reg = (**lock).clone();
            let id = reg.next_id().ok_or(AddPortError::Full)?;
            let handle = Arc::new(PortHandle {
                id,
                name: name.to_string(),
                port,
                flags: AtomicPortFlags::new(flags),
                counters: PortCounters::default(),
                state: AtomicU8::new(0),
                tasks: Mutex::new(Vec::new()),
                removed: std::sync::atomic::AtomicBool::new(false),
                owner: owner.map(Arc::from),
            });
            reg.slots[Registry::slot(id)] = Some(handle.clone());
            reg.list.push(handle.clone());
            *lock = Arc::new(reg);
            handle
        };
        if let Some(rt) = self.frame_runtime() {
            if handle.port.poll_fd().is_some() {
                let task = rt.spawn(rx_loop(self.clone(), handle.clone()));
                handle.add_task(task.abort_handle());
            }
        }
        tracing::info!(port = %name, kind = handle.kind().as_str(), flags = ?flags, "port attached");
        Ok(handle)
    }

    /// Busy polling: once frames come less than `spin_us` apart, keeps the frame-path runtime
    /// from sleeping for `spin_us` microseconds after each one, so the next frame (a reply,
    /// the next of a burst) is picked up without the wake-up of a sleeping thread (tens of
    /// microseconds on a virtual machine). Costs a CPU while it spins, nothing while idle.
    /// Run it as a task on the frame-path runtime.
    pub async fn busy_poll(self: Arc<Self>, spin_us: u64) {
        self.spin_us.store(spin_us, Relaxed);
        loop {
            self.wake_spinner.notified().await;
            self.busy.store(true, Relaxed);
            loop {
                let now = self.origin.elapsed().as_micros() as u64;
                if now.saturating_sub(self.last_frame_us.load(Relaxed)) >= spin_us {
                    break;
                }
                tokio::task::yield_now().await;
            }
            self.busy.store(false, Relaxed);
        }
    }

    fn frame_seen(&self) {
        let spin_us = self.spin_us.load(Relaxed);
        if spin_us == 0 {
            return;
        }
        let now = self.origin.elapsed().as_micros() as u64;
        let prev = self.last_frame_us.swap(now, Relaxed);
        // Spin only once frames come closer together than the spin: a lone frame after a
        // quiet spell would buy a spin that catches nothing, so a light load (ARP, a ping a
        // second) costs no CPU beyond the frames themselves.
        if !self.busy.load(Relaxed) && now.saturating_sub(prev) < spin_us {
            self.wake_spinner.notify_one();
        }
    }

    /// Runs receive loops on this runtime from now on (set once, before ports are added).
    pub fn set_runtime(&self, h: tokio::runtime::Handle) {
        let _ = self.runtime.set(h);
    }

    /// The runtime receive loops run on: the one set, else the caller's, if any.
    pub fn frame_runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime
            .get()
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
    }

    /// Detaches a port: stops its receive task and removes all its table entries.
    pub fn remove_port(&self, name: &str) -> Option<Arc<PortHandle>> {
        let handle = {
            let mut lock = self.registry.write().unwrap_or_else(|p| p.into_inner());
            let h = lock.by_name(name)?.clone();
            let mut reg = (**lock).clone();
            reg.slots[Registry::slot(h.id)] = None;
            reg.list.retain(|x| x.id != h.id);
            *lock = Arc::new(reg);
            h
        };
        // Gone first: a batch still running with the old port set neither learns onto it nor
        // keeps a datagram peer's stale handle alive.
        handle.state.store(LinkState::Gone as u8, Relaxed);
        {
            let mut tasks = handle.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.iter().for_each(|t| t.abort());
            tasks.clear();
            handle.removed.store(true, Relaxed);
        }
        self.fdb.flush_port(handle.id);
        self.fdb.forget_port(handle.id);
        tracing::info!(port = %name, "port detached");
        Some(handle)
    }

    /// Detaches every port and closes every listener (shutdown).
    pub fn remove_all_ports(&self) {
        let names: Vec<String> = self.listeners().into_iter().map(|l| l.0).collect();
        for n in names {
            self.remove_listener(&n);
        }
        for h in self.ports().iter() {
            self.remove_port(&h.name);
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
        let _ = std::fs::remove_file(&l.path);
        for h in self.listener_ports(&l.name, l.kind) {
            self.remove_port(&h.name);
        }
        tracing::info!(listener = %name, "listener closed");
        true
    }

    /// Reads up to `max` frames from `h` and handles each.
    pub fn drain(&self, h: &PortHandle, bufs: &mut RxBuffers, max: usize) -> (usize, DrainEnd) {
        let reg = self.ports();
        let settings = self.settings.load();
        let now = self.now();
        let vlen = h.port.vnet_hdr_len().min(HEADROOM);
        let mut errors = 0;
        for i in 0..max {
            if vlen < HEADROOM {
                // A plain port's frames get an all-zero header in the headroom.
                bufs.buf[..HEADROOM].fill(0);
            }
            let area = &mut bufs.buf[HEADROOM - vlen..];
            let cap = area.len();
            match h.port.recv(area) {
                Ok(n) => {
                    if h.state() == LinkState::Down {
                        self.set_state(h, LinkState::Up);
                    }
                    let pkt = &bufs.buf[..HEADROOM - vlen + n];
                    self.handle_frame(&reg, &settings, h, pkt, n == cap, now, &mut bufs.scratch);
                }
                Err(e) => match classify(&e) {
                    IoClass::WouldBlock => {
                        if i > 0 {
                            self.frame_seen();
                        }
                        return (i, DrainEnd::Empty);
                    }
                    // a bad read: skip it; a port that keeps failing ends the batch so the
                    // loop waits for readiness instead of spinning
                    IoClass::Down | IoClass::FrameRefused => {
                        errors += 1;
                        if errors > 4 {
                            return (i, DrainEnd::Empty);
                        }
                    }
                    IoClass::Gone | IoClass::Other => {
                        tracing::warn!(port = %h.name, error = %e, "read failed; port stops");
                        self.set_state(h, LinkState::Gone);
                        return (i, DrainEnd::Gone);
                    }
                },
            }
        }
        self.frame_seen();
        (max, DrainEnd::BatchFull)
    }

    /// Drains every port without an fd (in-memory ports) until none has a frame left;
    /// returns how many frames were handled. For tests and benches without a runtime.
    pub fn pump(&self) -> usize {
        let mut buf = RxBuffers::default();
        let mut total = 0;
        loop {
            let mut round = 0;
            for h in self
                .ports()
                .iter()
                .filter(|h| h.port.poll_fd().is_none() && h.state() != LinkState::Gone)
            {
                round += self.drain(h, &mut buf, RX_BATCH).0;
            }
            if round == 0 {
                return total;
            }
            total += round;
        }
    }

    /// Handles one received frame to the end. `pkt` is a 10-byte virtio_net_hdr (all zero for
    /// a plain port) followed by the frame.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-frame context, kept flat for speed"
    )]
    pub fn handle_frame(
        &self,
        reg: &Registry,
        settings: &Settings,
        ingress: &PortHandle,
        pkt: &[u8],
        truncated: bool,
        now: Timestamp,
        scratch: &mut [u8],
    ) {
        let c = &ingress.counters;
        c.rx_frames.fetch_add(1, Relaxed);
        let bytes = pkt.get(HEADROOM..).unwrap_or_default();
        c.rx_bytes.fetch_add(bytes.len() as u64, Relaxed);
        if ingress.state() == LinkState::Gone {
            // read by a batch that began before the port was removed
            return c.rx_drop(RxDrop::NoPort);
        }
        if truncated {
            return c.rx_drop(RxDrop::Oversized);
        }
        let hdr = match VnetHdr::parse(pkt) {
            Ok(h) if h.validate(bytes.len()).is_ok() => h,
            _ => return c.rx_drop(RxDrop::BadVnetHdr),
        };
        let frame = match EthernetFrame::new_checked(bytes) {
            Ok(f) => f,
            Err(crate::frame::FrameError::TooShort) => return c.rx_drop(RxDrop::TooShort),
            Err(crate::frame::FrameError::TruncatedVlan) => {
                return c.rx_drop(RxDrop::TruncatedVlan)
            }
        };
        let in_flags = ingress.flags.get();
        let out = Outgoing { hdr, pkt, frame };
        match decide(settings, &self.fdb, ingress.id, in_flags, &frame, reg, now) {
            Decision::Forward(to) => match reg.get(to) {
                Some(h) => {
                    self.stats.forwarded.fetch_add(1, Relaxed);
                    c.rx_forwarded.fetch_add(1, Relaxed);
                    self.transmit(h, &out, scratch);
                }
                None => c.rx_drop(RxDrop::NoPort),
            },
            Decision::Flood { kind, except } => {
                self.stats.flooded(kind).fetch_add(1, Relaxed);
                c.rx_flooded.fetch_add(1, Relaxed);
                for h in reg.iter() {
                    if flood_eligible(
                        settings.mode,
                        ingress.id,
                        in_flags,
                        h.id,
                        h.flags.get(),
                        kind,
                        except,
                    ) {
                        self.transmit(h, &out, scratch);
                    }
                }
            }
            Decision::Drop(r) => c.rx_drop(r),
        }
    }

    fn transmit(&self, h: &PortHandle, out: &Outgoing<'_>, scratch: &mut [u8]) {
        let c = &h.counters;
        if h.state() == LinkState::Gone {
            return c.tx_drop(TxDrop::PortDown);
        }
        let frame_len = out.frame.len();
        if h.port.vnet_hdr_len() == VNET_HDR_LEN {
            // Offload port: header and frame pass untouched; GSO frames are exempt from the
            // MTU rule (as in Linux), the wire segments will fit.
            if out.hdr.gso() == GSO_NONE && exceeds_mtu(&out.frame, h.port.mtu()) {
                return c.tx_drop(TxDrop::Mtu);
            }
            self.sent(h, h.port.send(out.pkt), frame_len);
        } else if out.hdr.is_plain() {
            if exceeds_mtu(&out.frame, h.port.mtu()) {
                return c.tx_drop(TxDrop::Mtu);
            }
            self.sent(h, h.port.send(out.frame.bytes_ref()), frame_len);
        } else {
            // A plain port gets the frame with its checksum done and cut to wire size.
            let mtu = h.port.mtu();
            let r = offload::finish(&out.hdr, out.frame.bytes_ref(), scratch, |seg| {
                match EthernetFrame::new_checked(seg) {
                    Ok(f) if !exceeds_mtu(&f, mtu) => {}
                    _ => {
                        c.tx_drop(TxDrop::Mtu);
                        return Ok(());
                    }
                }
                if self.sent(h, h.port.send(seg), seg.len()) {
                    Ok(())
                } else {
                    Err(())
                }
            });
            if r.is_err() {
                c.tx_drop(TxDrop::Offload);
            }
        }
    }

    /// Counts the outcome of one send; returns whether it succeeded.
    fn sent(&self, h: &PortHandle, r: std::io::Result<()>, len: usize) -> bool {
        let c = &h.counters;
        match r {
            Ok(()) => {
                c.tx_frames.fetch_add(1, Relaxed);
                c.tx_bytes.fetch_add(len as u64, Relaxed);
                if h.state() == LinkState::Down {
                    self.set_state(h, LinkState::Up);
                }
                true
            }
            Err(e) => {
                match classify(&e) {
                    IoClass::WouldBlock => c.tx_drop(TxDrop::QueueFull),
                    IoClass::Down => {
                        c.tx_drop(TxDrop::PortDown);
                        self.set_state(h, LinkState::Down);
                    }
                    IoClass::Gone => {
                        c.tx_drop(TxDrop::PortDown);
                        self.set_state(h, LinkState::Gone);
                    }
                    IoClass::FrameRefused | IoClass::Other => c.tx_drop(TxDrop::Error),
                }
                false
            }
        }
    }

    /// Moves a port to a new link state; leaving `Up` flushes its dynamic entries (Linux L8).
    /// `Gone` is final.
    pub fn set_state(&self, h: &PortHandle, new: LinkState) {
        let changed = h.state.fetch_update(Relaxed, Relaxed, |cur| {
            let cur = LinkState::from_u8(cur);
            (cur != new && cur != LinkState::Gone).then_some(new as u8)
        });
        let Ok(old) = changed else { return };
        h.counters.link_changes.fetch_add(1, Relaxed);
        let flushed = if LinkState::from_u8(old) == LinkState::Up {
            self.fdb.flush_port_dynamic(h.id)
        } else {
            0
        };
        tracing::info!(port = %h.name, state = ?new, flushed, "port state changed");
    }

    /// Periodic work off the frame path: ageing and port housekeeping.
    pub fn tick(&self) {
        let s = self.settings.load();
        self.fdb.age_out(self.now(), s.ageing_ms);
        for h in self.ports().iter() {
            if h.state() == LinkState::Gone && h.port.ephemeral() {
                self.remove_port(&h.name);
            } else {
                h.port.refresh();
            }
        }
    }

    /// How often [`Switch::tick`] should run.
    pub fn tick_interval(&self) -> Duration {
        let ageing = self.settings.load().ageing_ms;
        Duration::from_millis((ageing / 10).clamp(100, 1000))
    }
}

/// One received frame on its way out: the virtio_net_hdr, header + frame as one slice (for
/// offload ports), and the checked frame.
struct Outgoing<'a> {
    hdr: VnetHdr,
    pkt: &'a [u8],
    frame: EthernetFrame<&'a [u8]>,
}

/// Holds the port alive (and so its fd open) for the reactor registration.
struct PortFd(Arc<PortHandle>);

impl std::os::fd::AsRawFd for PortFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.port.poll_fd().unwrap_or(-1)
    }
}

async fn rx_loop(sw: Arc<Switch>, h: Arc<PortHandle>) {
    let queued = h.port.backlog().is_some();
    let afd = match sys::register(PortFd(h.clone()), queued) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            tracing::error!(port = %h.name, error = %e, "cannot poll port");
            sw.set_state(&h, LinkState::Gone);
            return;
        }
    };
    if queued {
        let t = tokio::spawn(tx_loop(sw.clone(), h.clone(), afd.clone()));
        h.add_task(t.abort_handle());
    }
    let mut bufs = RxBuffers::default();
    loop {
        // Error readiness too: a deleted TAP reports only EPOLLERR, and the read that follows
        // (EBADFD) marks the port gone without waiting for traffic to it.
        let mut guard = match afd.ready(Interest::READABLE | Interest::ERROR).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(port = %h.name, error = %e, "poll failed; port stops");
                sw.set_state(&h, LinkState::Gone);
                break;
            }
        };
        match sw.drain(&h, &mut bufs, RX_BATCH).1 {
            DrainEnd::Empty => guard.clear_ready(),
            DrainEnd::BatchFull => {
                drop(guard);
                tokio::task::yield_now().await;
            }
            DrainEnd::Gone => break,
        }
    }
    if h.port.ephemeral() {
        sw.remove_port(&h.name);
    }
}

/// Writes what a queueing port (a stream) could not write at once, as its peer reads.
async fn tx_loop(sw: Arc<Switch>, h: Arc<PortHandle>, afd: Arc<AsyncFd<PortFd>>) {
    let Some(backlog) = h.port.backlog() else {
        return;
    };
    loop {
        backlog.notified().await;
        loop {
            let mut guard = match afd.writable().await {
                Ok(g) => g,
                Err(_) => return,
            };
            match h.port.flush() {
                Ok(true) => break,
                Ok(false) => guard.clear_ready(),
                Err(e) => {
                    tracing::warn!(port = %h.name, error = %e, "write failed; port stops");
                    sw.set_state(&h, LinkState::Gone);
                    return;
                }
            }
        }
    }
}

/// Reads a datagram hub: each frame goes to the port of its sender, created on first sight.
pub async fn dgram_loop(
    sw: Arc<Switch>,
    name: String,
    hub: crate::port::dgram::DgramHub,
    flags: PortFlags,
    max_learned: usize,
    max_peers: usize,
) {
    use std::collections::HashMap;
    use std::path::PathBuf;
    let afd = match sys::register(hub, false) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(listener = %name, error = %e, "cannot poll datagram socket");
            return;
        }
    };
    let mut peers: HashMap<PathBuf, Arc<PortHandle>> = HashMap::new();
    let mut next = 1u64;
    let mut bufs = RxBuffers::default();
    loop {
        let mut guard = match afd.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        let mut reg = sw.ports();
        let settings = sw.settings.load();
        let now = sw.now();
        let mut n = 0;
        let end = loop {
            if n == RX_BATCH {
                break DrainEnd::BatchFull;
            }
            bufs.buf[..HEADROOM].fill(0);
            let area = &mut bufs.buf[HEADROOM..];
            let cap = area.len();
            let (len, from) = match afd.get_ref().sock.recv_from(area) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break DrainEnd::Empty,
                Err(e) => {
                    tracing::debug!(listener = %name, error = %e, "datagram receive failed");
                    break DrainEnd::Empty;
                }
            };
            n += 1;
            let Some(path) = from.as_pathname() else {
                tracing::debug!(listener = %name, "datagram from an unnamed socket: no way to reply, dropped");
                continue;
            };
            let known = peers
                .get(path)
                .filter(|h| h.state() != LinkState::Gone)
                .cloned();
            let h = match known {
                Some(h) => h,
                None => match crate::port::dgram::DgramPeer::new(afd.get_ref(), path) {
                    Ok(p) => {
                        let pname = format!("{name}-{next}");
                        next += 1;
                        if sw.listener_ports(&name, PortKind::Dgram).len() >= max_peers {
                            tracing::debug!(listener = %name, max_peers, "datagram peer refused: max-conns");
                            continue;
                        }
                        match sw.add_port_owned(&pname, Box::new(p), flags, Some(&name)) {
                            Ok(h) => {
                                sw.fdb.set_port_limit(h.id, max_learned);
                                tracing::info!(port = %pname, peer = %path.display(), "datagram peer attached");
                                peers.retain(|_, h| h.state() != LinkState::Gone);
                                peers.insert(path.to_path_buf(), h.clone());
                                // the new peer must get floods from the rest of this batch
                                reg = sw.ports();
                                h
                            }
                            Err(e) => {
                                tracing::debug!(listener = %name, error = %e, "cannot add datagram peer");
                                continue;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(listener = %name, error = %e, "cannot reach datagram sender");
                        continue;
                    }
                },
            };
            sw.handle_frame(
                &reg,
                &settings,
                &h,
                &bufs.buf[..HEADROOM + len],
                len == cap,
                now,
                &mut bufs.scratch,
            );
        };
        match end {
            DrainEnd::BatchFull => {
                drop(guard);
                tokio::task::yield_now().await;
            }
            _ => guard.clear_ready(),
        }
    }
}
