//! `vhost:` ports: a vhost-user-net back-end on a unix socket, so a QEMU guest's virtio-net NIC
//! is a switch port with no kernel interface in between.
//!
//! The switch listens on the socket; QEMU connects (`-chardev socket,id=c0,path=PATH -netdev
//! vhost-user,id=n0,chardev=c0 -device virtio-net-pci,netdev=n0`, guest RAM from a shared
//! `memory-backend-memfd`). The vhost-user protocol, the guest memory mapping and the
//! virtqueue descriptor walking are rust-vmm's (`vhost`, `vhost-user-backend`, `virtio-queue`,
//! `vm-memory`); this module is the virtio-net device on top of them:
//!
//! - **Guest TX → switch** ([`Port::recv`]): one descriptor chain is one frame, preceded by the
//!   guest's virtio_net_hdr (12 bytes with VIRTIO_F_VERSION_1 or MRG_RXBUF, else 10). It is
//!   copied once, straight from guest memory into the caller's buffer, as the 10-byte header
//!   the offload path uses ([`crate::offload`]) followed by the frame. GSO super-frames and
//!   partial checksums pass through untouched.
//! - **Switch → guest RX** ([`Port::send`]): the frame is copied once into the guest's
//!   receive buffers, several of them with mergeable buffers (`num_buffers` set), and all used
//!   entries of one frame are published with a single used-index store (so a guest never sees
//!   half a frame). Offloads the guest did not negotiate are finished in software first
//!   ([`crate::offload::finish`], in a buffer allocated at start-up). No room: `WouldBlock`.
//! - **Threads**: one thread per port accepts connections and relays the front-end's
//!   requests to rust-vmm's protocol handler (`compat`: works around QEMU 7.2 sending
//!   SET_VRING_ENABLE before SET_FEATURES, which rust-vmm refuses); each
//!   connection gets rust-vmm's epoll worker thread, which runs the kick of the guest's TX
//!   queue: it calls the [`EventHandler`] the switch installed with [`VhostEvent::TxReady`],
//!   and the switch drains the port (`recv` until `WouldBlock`) on that thread. `poll_fd()` is
//!   `None`. Frames to the guest come from any dataplane thread through `send`.
//! - **Notifications**: TX kicks are disabled while the port is drained and re-armed after
//!   (EVENT_IDX when negotiated); used TX buffers are signalled once per drain; RX is
//!   signalled per frame, but only when the guest asked for it (EVENT_IDX `used_event`, or
//!   the NO_INTERRUPT flag), which costs one guest-memory load per frame and one eventfd write
//!   per guest interrupt window; nothing waits for the end of a batch.
//! - **Untrusted guest**: a malformed chain (bad address, write-only buffer in a TX chain,
//!   read-only buffer in an RX chain, a broken `next` link, a bad indirect table), a header
//!   too short, an oversized frame, an invalid virtio_net_hdr, or a full RX ring is dropped and
//!   counted by reason ([`VhostDrop`]); nothing panics, and a guest that stops refilling its
//!   RX ring only loses its own frames (`send` never waits).
//! - **Lifecycle**: the link is up while a front-end is connected and the guest's first RX
//!   queue runs; it goes down when QEMU goes away, resets the device or stops the rings
//!   (guest reboot), and comes back as the same port when QEMU reconnects. Each connection
//!   gets a fresh protocol handler and fresh rings, so nothing of an old guest survives.
//!
//! `unsafe` is confined to `sys.rs` (receiving descriptors for the relay; closing the exit
//! eventfd rust-vmm leaks per connection); mmap is inside vm-memory, eventfds in vmm-sys-util.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use vhost_user_backend::ShutdownHandle;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::{sockfile, Port, PortKind};
use crate::offload::VNET_HDR_LEN;

mod backend;
mod compat;
mod device;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
#[cfg(test)]
mod tests;

pub use device::features;
use device::{Gm, RxSide, Vring};

/// Most queue pairs a port offers (`queues=N`).
pub const MAX_QUEUE_PAIRS: u16 = 8;
/// Largest ring a guest may configure (QEMU's `rx_queue_size`/`tx_queue_size` maximum).
pub const MAX_QUEUE_SIZE: u16 = 1024;
/// Largest frame taken from or given to a guest, without its virtio_net_hdr: a 64 KiB GSO
/// frame plus an Ethernet header.
pub const MAX_FRAME: usize = 65550;

/// Settings of one vhost-user port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostConfig {
    /// The unix socket the switch listens on and QEMU connects to.
    pub path: PathBuf,
    /// File mode of the socket file (e.g. 0o660).
    pub mode: Option<u32>,
    /// Owner of the socket file: UID and optional GID.
    pub owner: Option<(u32, Option<u32>)>,
    /// Queue pairs offered (QEMU `-netdev vhost-user,queues=N`), 1..=[`MAX_QUEUE_PAIRS`].
    pub queue_pairs: u16,
    /// Largest ring size accepted, a power of two in 64..=[`MAX_QUEUE_SIZE`].
    pub queue_size: u16,
    /// Egress MTU reported to the switch (frames to the guest longer than MTU + 18 are not
    /// sent unless they are GSO frames).
    pub mtu: u32,
    /// Offer checksum and TSO offloads to the guest (off: the guest segments and checksums
    /// itself, and frames to it are finished in software).
    pub offload: bool,
}

impl VhostConfig {
    /// One queue pair, 1024-entry rings, MTU 1500, offloads on.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        VhostConfig {
            path: path.into(),
            mode: None,
            owner: None,
            queue_pairs: 1,
            queue_size: MAX_QUEUE_SIZE,
            mtu: 1500,
            offload: true,
        }
    }
}

/// Why a vhost port cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum VhostError {
    /// The socket path is in use, not a socket, or its mode/owner cannot be set.
    #[error(transparent)]
    Socket(#[from] sockfile::SockError),
    /// Binding the socket failed.
    #[error("{0}: cannot listen: {1}")]
    Bind(String, #[source] io::Error),
    /// A setting is out of range.
    #[error("vhost port: {0}")]
    Config(String),
    /// An eventfd or the serving thread could not be created.
    #[error("vhost port: {0}")]
    Setup(#[source] io::Error),
}

/// What the port tells the switch, on the port's own threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhostEvent {
    /// The guest queued frames: drain the port (`recv` until `WouldBlock`) on this thread.
    TxReady,
    /// The guest's NIC runs: frames pass.
    LinkUp,
    /// QEMU went away, or the guest stopped its NIC: the port is down until `LinkUp`.
    LinkDown,
}

/// The switch's handler of [`VhostEvent`]s. It must not block for long: `TxReady` runs on
/// the port's epoll thread, `LinkUp`/`LinkDown` on its protocol threads. Capture the switch
/// and the port handle as `Weak` references, or the port keeps itself alive.
pub type EventHandler = Arc<dyn Fn(VhostEvent) + Send + Sync>;

/// Why a frame was dropped by a vhost port (guest TX or guest RX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhostDrop {
    /// A malformed descriptor chain: an address outside guest memory, a write-only buffer in
    /// a TX chain or a read-only one in an RX chain, a broken `next` link or indirect table,
    /// an avail index beyond the ring.
    BadDescriptor,
    /// A TX chain shorter than the virtio_net_hdr.
    TooShort,
    /// A TX frame longer than [`MAX_FRAME`] (or than the receive buffer), or a frame to the
    /// guest longer than that.
    Oversized,
    /// The guest's RX ring has no room for the frame (the guest stopped refilling it).
    QueueFull,
    /// A TX virtio_net_hdr with invalid values, or an offload the guest did not negotiate.
    BadHeader,
    /// Without mergeable buffers, the guest's next RX buffer is smaller than the frame.
    BufferTooSmall,
    /// A frame to the guest while no guest NIC is running.
    NotReady,
}

impl VhostDrop {
    /// Number of reasons.
    pub const COUNT: usize = 7;
    /// Every reason, in counter order.
    pub const ALL: [VhostDrop; Self::COUNT] = [
        VhostDrop::BadDescriptor,
        VhostDrop::TooShort,
        VhostDrop::Oversized,
        VhostDrop::QueueFull,
        VhostDrop::BadHeader,
        VhostDrop::BufferTooSmall,
        VhostDrop::NotReady,
    ];
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            VhostDrop::BadDescriptor => "bad_descriptor",
            VhostDrop::TooShort => "too_short",
            VhostDrop::Oversized => "oversized",
            VhostDrop::QueueFull => "queue_full",
            VhostDrop::BadHeader => "bad_header",
            VhostDrop::BufferTooSmall => "buffer_too_small",
            VhostDrop::NotReady => "not_ready",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one vhost port (the switch counts frames and bytes; these are the port's own).
#[derive(Debug, Default)]
pub struct VhostStats {
    drops: [AtomicU64; VhostDrop::COUNT],
    /// Interrupts sent to the guest (call eventfd writes), RX and TX.
    pub signals: AtomicU64,
    /// TX kicks from the guest handled (with the one rust-vmm raises when a ring starts).
    pub kicks: AtomicU64,
    /// Front-end connections accepted.
    pub connects: AtomicU64,
    /// Front-end connections ended.
    pub disconnects: AtomicU64,
}

impl VhostStats {
    fn drop(&self, r: VhostDrop) {
        self.drops[r.index()].fetch_add(1, Relaxed);
    }
    /// Drops by reason, labelled.
    pub fn drops(&self) -> [(&'static str, u64); VhostDrop::COUNT] {
        VhostDrop::ALL.map(|r| (r.as_str(), self.drops[r.index()].load(Relaxed)))
    }
    /// Drops of one reason.
    pub fn dropped(&self, r: VhostDrop) -> u64 {
        self.drops[r.index()].load(Relaxed)
    }
}

/// The rings and memory of the current connection.
struct Conn {
    gen: u64,
    vrings: Vec<Vring>,
    mem: Gm,
}

/// What the serving loop prepares for the protocol handler of a new connection.
struct Pending {
    gen: u64,
    mem: Gm,
    exit: Option<(EventConsumer, EventNotifier)>,
}

/// State shared by the port handle, its serving thread and the protocol handlers.
struct Shared {
    name: String,
    cfg: VhostConfig,
    /// Features offered to the front-end.
    offered: u64,
    /// Features the front-end acknowledged.
    acked: AtomicU64,
    /// The rings of the running connection, once the guest started its NIC.
    conn: RwLock<Option<Conn>>,
    /// Connection generation: a protocol handler of an older connection touches nothing.
    gen: AtomicU64,
    /// Guest memory and exit event of the connection being set up.
    pending: Mutex<Option<Pending>>,
    up: AtomicBool,
    stats: VhostStats,
    handler: Mutex<Option<EventHandler>>,
    /// Per queue pair, RX-side buffers allocated at start-up.
    rx: Box<[Mutex<RxSide>]>,
    /// Per queue pair, the TX used index at the last notification check, or
    /// [`device::TX_RESYNC`] after the ring (re)started.
    tx_checked: Box<[std::sync::atomic::AtomicU32]>,
    /// Next TX queue pair `recv` looks at first.
    tx_cursor: AtomicUsize,
    /// Wakes the epoll thread to continue a TX run it yielded.
    resume: (EventConsumer, EventNotifier),
    stopping: AtomicBool,
    shutdown: Mutex<Option<ShutdownHandle>>,
    /// Private directory (mode 0700) of the socket between the relay and rust-vmm.
    inner_dir: Option<PathBuf>,
    /// The socket file QEMU connects to (removed by `stop`, or when this is dropped).
    sock_file: Option<sockfile::SockFile>,
}

impl Shared {
    fn handler(&self) -> Option<EventHandler> {
        self.handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn emit(&self, ev: VhostEvent) {
        if let Some(h) = self.handler() {
            h(ev);
        }
    }

    fn link_up(&self) {
        if !self.up.swap(true, Relaxed) {
            tracing::info!(port = %self.name, "vhost guest NIC running");
            self.emit(VhostEvent::LinkUp);
        }
    }

    fn link_down(&self) {
        if self.up.swap(false, Relaxed) {
            tracing::info!(port = %self.name, "vhost guest NIC stopped");
            self.emit(VhostEvent::LinkDown);
        }
    }

    /// Forgets the notification state of queue `index` (its ring is new or restarted).
    fn resync(&self, index: usize) {
        let pair = index / 2;
        if index % 2 == 0 {
            if let Some(side) = self.rx.get(pair) {
                side.lock().unwrap_or_else(|p| p.into_inner()).checked = None;
            }
        } else if let Some(c) = self.tx_checked.get(pair) {
            c.store(device::TX_RESYNC, Relaxed);
        }
    }

    fn negotiated(&self) -> device::Negotiated {
        device::Negotiated(self.acked.load(Relaxed))
    }
}

/// A vhost-user-net port; see the module documentation. Dropping it stops the listener and
/// ends the connection (as [`VhostPort::stop`]).
pub struct VhostPort {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VhostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostPort")
            .field("name", &self.shared.name)
            .field("path", &self.shared.cfg.path)
            .field("up", &self.is_up())
            .finish()
    }
}

impl VhostPort {
    /// Listens on `cfg.path` (a stale socket file is replaced, a live one is an error) and
    /// starts serving front-ends on a thread of its own.
    pub fn bind(name: &str, cfg: VhostConfig) -> Result<VhostPort, VhostError> {
        if !(1..=MAX_QUEUE_PAIRS).contains(&cfg.queue_pairs) {
            return Err(VhostError::Config(format!(
                "queues must be 1..={MAX_QUEUE_PAIRS}, got {}",
                cfg.queue_pairs
            )));
        }
        if !cfg.queue_size.is_power_of_two() || !(64..=MAX_QUEUE_SIZE).contains(&cfg.queue_size) {
            return Err(VhostError::Config(format!(
                "queue size must be a power of two in 64..={MAX_QUEUE_SIZE}, got {}",
                cfg.queue_size
            )));
        }
        let path = cfg.path.clone();
        // the socket file is removed when `file` (or the `Shared` holding it) is dropped
        let (listener, file) =
            sockfile::bind_at(&path, false, cfg.mode, cfg.owner, |p| UnixListener::bind(p))
                .map_err(|e| match e {
                    sockfile::BindError::Sock(e) => VhostError::Socket(e),
                    sockfile::BindError::Bind(e) => VhostError::Bind(path.display().to_string(), e),
                })?;
        let cleanup = |d: &Path| {
            let _ = std::fs::remove_dir_all(d);
        };
        let (dir, inner) = private_socket().map_err(VhostError::Setup)?;
        let inner_path = dir.join(INNER_SOCK);
        let mut shared = match Shared::new(name, cfg) {
            Ok(s) => s,
            Err(e) => {
                cleanup(&dir);
                return Err(VhostError::Setup(e));
            }
        };
        shared.inner_dir = Some(dir.clone());
        shared.sock_file = Some(file);
        let shared = Arc::new(shared);
        let s2 = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("vhost-{name}"))
            .spawn(move || backend::serve(s2, listener, inner, inner_path));
        if let Err(e) = spawned {
            cleanup(&dir);
            return Err(VhostError::Setup(e));
        }
        tracing::info!(port = %name, path = %path.display(), "vhost-user port listening");
        Ok(VhostPort { shared })
    }

    /// Installs (or removes) the switch's event handler. Frames the guest queued while no
    /// handler was installed are offered at once.
    pub fn set_handler(&self, h: Option<EventHandler>) {
        *self
            .shared
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = h;
        let _ = self.shared.resume.1.notify();
    }

    /// Whether a guest NIC is running on this port.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Relaxed)
    }

    /// The port's own counters.
    pub fn stats(&self) -> &VhostStats {
        &self.shared.stats
    }

    /// Drops by reason.
    pub fn drops(&self) -> [(&'static str, u64); VhostDrop::COUNT] {
        self.shared.stats.drops()
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.shared.cfg.path
    }

    /// Features the front-end acknowledged (0 before it did).
    pub fn acked_features(&self) -> u64 {
        self.shared.acked.load(Relaxed)
    }

    /// Stops serving: ends the connection, stops the listener thread, removes the socket
    /// file. Does not wait for the threads (safe to call from the port's own threads).
    pub fn stop(&self) {
        let s = &self.shared;
        if s.stopping.swap(true, Relaxed) {
            return;
        }
        s.handler.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = s
            .shutdown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            h.shutdown();
        }
        // wake a blocked accept(); the serving loop sees `stopping` and ends
        let _ = UnixStream::connect(&s.cfg.path);
        if let Some(f) = &s.sock_file {
            f.remove();
        }
        if let Some(d) = &s.inner_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        s.link_down();
        tracing::info!(port = %s.name, "vhost-user port stopped");
    }

    /// Whether the serving thread still runs (tests).
    pub fn serving(&self) -> bool {
        // the serving thread and the protocol handlers hold the other references
        Arc::strong_count(&self.shared) > 1
    }
}

impl Drop for VhostPort {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Port for VhostPort {
    fn kind(&self) -> PortKind {
        PortKind::Vhost
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.recv(buf)
    }
    fn send(&self, pkt: &[u8]) -> io::Result<()> {
        self.shared.send(pkt)
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        self.shared.cfg.mtu
    }
    fn shutdown(&self) {
        self.stop();
    }

    fn own_drops(&self) -> Vec<(&'static str, u64)> {
        self.drops().to_vec()
    }

    fn vnet_hdr_len(&self) -> usize {
        VNET_HDR_LEN
    }

    fn follows_link(&self) -> bool {
        true
    }

    /// Up while a guest NIC runs on the port (the back-end also says so at once with
    /// `LinkUp`/`LinkDown`; this is the same state, read again).
    fn link(&self) -> Option<crate::port::Link> {
        Some(if self.is_up() {
            crate::port::Link::Up
        } else {
            crate::port::Link::Down
        })
    }
}

/// File name of the private socket rust-vmm's handler accepts on.
const INNER_SOCK: &str = "rust-vmm.sock";

/// A new directory only this user can enter, with a listening socket in it (rust-vmm's
/// handler accepts the relay's connection there).
fn private_socket() -> io::Result<(PathBuf, UnixListener)> {
    use std::os::unix::fs::DirBuilderExt;
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "tapswitch-vhost-{}-{}-{nanos:08x}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                let l = UnixListener::bind(dir.join(INNER_SOCK));
                return match l {
                    Ok(l) => Ok((dir, l)),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(e)
                    }
                };
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free private directory name"))
}

impl Shared {
    fn new(name: &str, cfg: VhostConfig) -> io::Result<Shared> {
        let pairs = cfg.queue_pairs as usize;
        let offered = features::offered(&cfg);
        let rx = (0..pairs)
            .map(|_| Mutex::new(RxSide::new(cfg.queue_size)))
            .collect();
        let tx_checked = (0..pairs)
            .map(|_| std::sync::atomic::AtomicU32::new(device::TX_RESYNC))
            .collect();
        Ok(Shared {
            name: name.to_string(),
            offered,
            acked: AtomicU64::new(0),
            conn: RwLock::new(None),
            gen: AtomicU64::new(0),
            pending: Mutex::new(None),
            up: AtomicBool::new(false),
            stats: VhostStats::default(),
            handler: Mutex::new(None),
            rx,
            tx_checked,
            tx_cursor: AtomicUsize::new(0),
            resume: new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)?,
            stopping: AtomicBool::new(false),
            shutdown: Mutex::new(None),
            inner_dir: None,
            sock_file: None,
            cfg,
        })
    }
}
