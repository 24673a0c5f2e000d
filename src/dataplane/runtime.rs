//! The frame path's threads: epoll workers that drain their port queues in bounded batches and
//! handle each frame on the spot, with adaptive busy polling; a small runtime for socket hubs.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::forward::{Scratch, HEADROOM};
use super::registry::{LinkState, PortHandle};
use super::vxlan::{Hub, HubRx};
use super::Switch;
use crate::buf::PageBuf;
use crate::port::sys::epoll::{self, Epoll, EventFd};
use crate::port::{classify, IoClass};

/// Frames read from one port before other ports get a turn.
pub const RX_BATCH: usize = 64;
pub use crate::buf::RX_BUF;

/// The buffers one receive loop owns, allocated once.
pub struct RxBuffers {
    /// Page-aligned (see [`crate::buf`]): frames are read into it and written from it.
    pub(super) buf: PageBuf,
    /// Segmentation scratch and the batch's counters.
    pub work: Scratch,
}

impl Default for RxBuffers {
    fn default() -> Self {
        RxBuffers {
            buf: PageBuf::new(HEADROOM + RX_BUF),
            work: Scratch::default(),
        }
    }
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

/// A log line the frame path may print: at most one per `every_ms`, with the number of lines
/// held back since the last one.
pub struct LogLimit {
    last_ms: AtomicU64,
    held: AtomicU64,
    every_ms: u64,
}

impl LogLimit {
    /// A limit of one line per `every_ms` milliseconds.
    pub const fn new(every_ms: u64) -> LogLimit {
        LogLimit {
            last_ms: AtomicU64::new(0),
            held: AtomicU64::new(0),
            every_ms,
        }
    }

    /// Whether a line may be printed now (`now_ms` from any monotonic origin above
    /// `every_ms`); `Some(n)` with the lines held back since the last one printed.
    pub fn allow(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < self.every_ms {
            self.held.fetch_add(1, Relaxed);
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now_ms.max(1), Relaxed, Relaxed)
            .is_err()
        {
            self.held.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.held.swap(0, Relaxed))
    }
}

/// Read errors that stop a port: one line a second at most, whatever the number of ports.
static READ_FAILED: LogLimit = LogLimit::new(1000);

/// Where a port's queue is read: by one of the dataplane's worker threads.
enum Cmd {
    Add {
        sw: Arc<Switch>,
        h: Arc<PortHandle>,
        q: usize,
    },
    /// Stop reading a port; the worker answers on the channel once it holds none of it.
    Remove(crate::types::PortId, std::sync::mpsc::Sender<()>),
    /// Serve a VXLAN hub's socket.
    AddHub(Box<HubEntry>),
    /// Stop serving a hub; the worker closes its socket, then answers on the channel.
    RemoveHub(Arc<Hub>, std::sync::mpsc::Sender<()>),
}

/// A VXLAN hub a worker serves: its socket and its receive buffers.
pub(super) struct HubEntry {
    pub(super) sw: Arc<Switch>,
    pub(super) hub: Arc<Hub>,
    pub(super) sock: std::net::UdpSocket,
    pub(super) rx: HubRx,
}

/// One worker thread's shared state: its epoll set and its command queue.
struct WorkerShared {
    epoll: Epoll,
    wake: EventFd,
    cmds: Mutex<Vec<Cmd>>,
    stop: AtomicBool,
}

/// The dataplane's worker threads, as the switch reaches them to add and remove ports.
pub struct Workers {
    list: Vec<WorkerShared>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.list.len())
            .finish()
    }
}

impl Workers {
    fn send(&self, i: usize, c: Cmd) {
        let w = &self.list[i];
        w.cmds.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        w.wake.notify();
    }

    /// Spreads the queues of a port over the workers (queue q of the n-th port on worker
    /// (n + q) mod threads).
    fn add(&self, sw: &Arc<Switch>, h: &Arc<PortHandle>) {
        let n = self.list.len();
        let first = self.next.fetch_add(1, Relaxed);
        for q in 0..h.port.queues() {
            self.send(
                (first + q) % n,
                Cmd::Add {
                    sw: sw.clone(),
                    h: h.clone(),
                    q,
                },
            );
        }
    }

    /// Gives a hub's socket to a worker (the next in turn); returns which.
    pub(super) fn add_hub(&self, e: HubEntry) -> usize {
        let i = self.next.fetch_add(1, Relaxed) % self.list.len();
        self.send(i, Cmd::AddHub(Box::new(e)));
        i
    }

    /// Stops serving a hub on worker `i`, and waits (1 s at most) until its socket is closed.
    pub(super) fn remove_hub(&self, i: usize, hub: &Arc<Hub>) {
        let Some(w) = self.list.get(i) else { return };
        if w.stop.load(Relaxed) {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(i, Cmd::RemoveHub(hub.clone(), tx));
        let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
    }

    /// Stops reading a port on every worker, and waits (2 s at most) until each has let go
    /// of it: after this, no worker reads the port's fds or holds its handle.
    fn remove(&self, id: crate::types::PortId) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut asked = 0;
        for (i, w) in self.list.iter().enumerate() {
            if !w.stop.load(Relaxed) {
                self.send(i, Cmd::Remove(id, tx.clone()));
                asked += 1;
            }
        }
        drop(tx);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for _ in 0..asked {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if rx.recv_timeout(left).is_err() {
                tracing::warn!("a dataplane worker did not let go of a removed port in time");
                return;
            }
        }
    }
}

/// The frame path's threads: `threads` workers, each an epoll loop that reads the port queues
/// given to it and handles every frame to the end on the spot (decision, every transmit), as a
/// bare epoll relay does; plus one small tokio runtime for the socket hubs (datagram). Apart
/// from the API and control threads, so HTTP and table work never delay a frame.
pub struct Dataplane {
    workers: Arc<Workers>,
    threads: Vec<std::thread::JoinHandle<()>>,
    hub: tokio::runtime::Handle,
    hub_stop: Option<tokio::sync::oneshot::Sender<()>>,
    hub_thread: Option<std::thread::JoinHandle<()>>,
}

impl Dataplane {
    /// Starts `threads` workers (1 = a single event loop). With `busy_poll_us > 0` a worker
    /// that sees frames come closer together than that keeps polling for that long after the
    /// last one instead of sleeping (adaptive busy polling: no CPU while idle).
    pub fn start(threads: usize, busy_poll_us: u64) -> std::io::Result<Dataplane> {
        let mut list = Vec::new();
        for _ in 0..threads.max(1) {
            let epoll = Epoll::new()?;
            let wake = EventFd::new()?;
            epoll.add(wake.fd(), epoll::IN, WAKE_TOKEN)?;
            list.push(WorkerShared {
                epoll,
                wake,
                cmds: Mutex::new(Vec::new()),
                stop: AtomicBool::new(false),
            });
        }
        let workers = Arc::new(Workers {
            list,
            next: AtomicUsize::new(0),
        });
        let mut handles = Vec::new();
        for i in 0..workers.list.len() {
            let w = workers.clone();
            handles.push(
                std::thread::Builder::new()
                    .name("tapswitch-dp".into())
                    .spawn(move || worker(i, &w, busy_poll_us))?,
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let hub = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let hub_thread = std::thread::Builder::new()
            .name("tapswitch-hub".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_background();
            })?;
        Ok(Dataplane {
            workers,
            threads: handles,
            hub,
            hub_stop: Some(stop),
            hub_thread: Some(hub_thread),
        })
    }

    /// The runtime of the socket hubs (datagram listeners).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.hub.clone()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        for w in &self.workers.list {
            w.stop.store(true, Relaxed);
            w.wake.notify();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(s) = self.hub_stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.hub_thread.take() {
            let _ = t.join();
        }
    }
}

const WAKE_TOKEN: u64 = u64::MAX;
/// Tokens of hub sockets have this bit set (the rest is the index in the worker's hubs).
const HUB_TOKEN: u64 = 1 << 62;
/// Ready fds taken from one epoll_wait.
const EVENTS: usize = 64;

/// One queue a worker reads.
struct Entry {
    sw: Arc<Switch>,
    h: Arc<PortHandle>,
    q: usize,
    fd: std::os::fd::RawFd,
    /// Edge-triggered (a port that queues writes: EPOLLOUT tells when to flush it).
    edge: bool,
}

/// A worker: epoll_wait, then drain each ready queue in bounded batches, handling each frame
/// to the end on this thread.
fn worker(index: usize, workers: &Workers, busy_poll_us: u64) {
    crate::port::set_worker_index(index);
    let me = &workers.list[index];
    let mut entries: Vec<Option<Entry>> = Vec::new();
    let mut hubs: Vec<Option<HubEntry>> = Vec::new();
    let mut events = vec![epoll::empty_event(); EVENTS];
    let mut bufs = RxBuffers::default();
    // edge-triggered queues whose last batch was full: they are drained again without waiting
    let mut again: Vec<usize> = Vec::with_capacity(EVENTS);
    let mut again_next: Vec<usize> = Vec::with_capacity(EVENTS);
    let spin = std::time::Duration::from_micros(busy_poll_us);
    let mut last_frame = std::time::Instant::now();
    let mut spin_until: Option<std::time::Instant> = None;
    loop {
        let spinning = spin_until.is_some_and(|t| std::time::Instant::now() < t);
        let timeout = if spinning || !again.is_empty() { 0 } else { -1 };
        let n = match me.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed; worker stops");
                return;
            }
        };
        let mut frames = 0;
        for ev in &events[..n] {
            let token = ev.u64;
            let flags = ev.events;
            if token == WAKE_TOKEN {
                me.wake.drain();
                if me.stop.load(Relaxed) {
                    return;
                }
                let cmds = std::mem::take(&mut *me.cmds.lock().unwrap_or_else(|p| p.into_inner()));
                for c in cmds {
                    apply(me, &mut entries, &mut hubs, c);
                }
                continue;
            }
            if token & HUB_TOKEN != 0 {
                if let Some(Some(h)) = hubs.get_mut((token & !HUB_TOKEN) as usize) {
                    frames += h.sw.hub_drain(&h.hub, &h.sock, &mut h.rx);
                }
                continue;
            }
            let slot = token as usize;
            let Some(Some(e)) = entries.get(slot) else {
                continue;
            };
            if flags & epoll::OUT != 0 && e.edge {
                if let Err(err) = e.h.port.flush() {
                    if let Some(held) = READ_FAILED.allow(e.sw.now().millis() + 1000) {
                        tracing::warn!(port = %e.h.name, error = %err, held, "write failed; port stops");
                    }
                    e.sw.set_state(&e.h, LinkState::Gone);
                }
            }
            if flags & (epoll::IN | epoll::ERR | epoll::HUP) != 0 {
                frames += serve(me, &mut entries, slot, &mut bufs, &mut again_next);
            }
        }
        for slot in again.drain(..) {
            frames += serve(me, &mut entries, slot, &mut bufs, &mut again_next);
        }
        std::mem::swap(&mut again, &mut again_next);
        if frames > 0 && busy_poll_us > 0 {
            let now = std::time::Instant::now();
            // spin only once frames come closer together than the spin: a lone frame after a
            // quiet spell would buy a spin that catches nothing
            if now.duration_since(last_frame) < spin {
                spin_until = Some(now + spin);
            }
            last_frame = now;
        }
    }
}

/// Drains one queue; returns the frames handled. A queue that is gone is dropped.
fn serve(
    me: &WorkerShared,
    entries: &mut [Option<Entry>],
    slot: usize,
    bufs: &mut RxBuffers,
    again: &mut Vec<usize>,
) -> usize {
    let Some(Some(e)) = entries.get(slot) else {
        return 0;
    };
    let (n, end) = e.sw.drain_queue(&e.h, e.q, bufs, RX_BATCH);
    match end {
        DrainEnd::BatchFull if e.edge && !again.contains(&slot) => again.push(slot),
        DrainEnd::Gone => {
            let _ = me.epoll.delete(e.fd);
            // a closed connection is detached by the control thread (its entries flushed)
            e.sw.wake_control();
            entries[slot] = None;
        }
        _ => {}
    }
    n
}

fn apply(
    me: &WorkerShared,
    entries: &mut Vec<Option<Entry>>,
    hubs: &mut Vec<Option<HubEntry>>,
    c: Cmd,
) {
    match c {
        Cmd::AddHub(e) => {
            use std::os::fd::AsRawFd;
            let slot = match hubs.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    hubs.push(None);
                    hubs.len() - 1
                }
            };
            if let Err(err) = me
                .epoll
                .add(e.sock.as_raw_fd(), epoll::IN, HUB_TOKEN | slot as u64)
            {
                tracing::error!(hub = %e.hub.label(), error = %err, "cannot poll vxlan socket");
                return;
            }
            hubs[slot] = Some(*e);
        }
        Cmd::RemoveHub(hub, done) => {
            use std::os::fd::AsRawFd;
            for h in hubs.iter_mut() {
                if h.as_ref().is_some_and(|x| Arc::ptr_eq(&x.hub, &hub)) {
                    if let Some(x) = h.take() {
                        let _ = me.epoll.delete(x.sock.as_raw_fd());
                        // the socket closes here, before the answer
                        drop(x);
                    }
                }
            }
            let _ = done.send(());
        }
        Cmd::Add { sw, h, q } => {
            let Some(fd) = h.port.queue_fd(q) else { return };
            if h.state() == LinkState::Gone {
                return;
            }
            let edge = h.port.backlog().is_some();
            let ev = if edge {
                epoll::IN | epoll::OUT | epoll::ET
            } else {
                epoll::IN
            };
            let slot = match entries.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    entries.push(None);
                    entries.len() - 1
                }
            };
            if let Err(e) = me.epoll.add(fd, ev, slot as u64) {
                tracing::error!(port = %h.name, error = %e, "cannot poll port");
                sw.set_state(&h, LinkState::Gone);
                return;
            }
            entries[slot] = Some(Entry { sw, h, q, fd, edge });
            // an edge-triggered fd may already hold data: look once
            if edge {
                me.wake.notify();
            }
        }
        Cmd::Remove(id, done) => {
            for e in entries.iter_mut() {
                if e.as_ref().is_some_and(|x| x.h.id == id) {
                    if let Some(x) = e.take() {
                        let _ = me.epoll.delete(x.fd);
                    }
                }
            }
            let _ = done.send(());
        }
    }
}

impl Switch {
    /// Reads ports on these workers from now on (set once, before ports are added).
    pub fn set_dataplane(&self, dp: &Dataplane) {
        let _ = self.workers.set(dp.workers.clone());
        let _ = self.runtime.set(dp.handle());
    }

    /// Starts reading a new port's queues, if there is a dataplane and the port has fds.
    pub(super) fn start_port(self: &Arc<Self>, handle: &Arc<PortHandle>) {
        if let Some(w) = self.workers.get() {
            if handle.port.poll_fd().is_some() {
                w.add(self, handle);
            }
        }
    }

    /// Stops reading a port (it is being detached).
    pub(super) fn stop_port(&self, handle: &PortHandle) {
        if let Some(w) = self.workers.get() {
            w.remove(handle.id);
        }
    }

    /// Runs socket hubs on this runtime from now on (set once, before ports are added).
    pub fn set_runtime(&self, h: tokio::runtime::Handle) {
        let _ = self.runtime.set(h);
    }

    /// The runtime socket hubs run on: the one set, else the caller's, if any.
    pub fn frame_runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime
            .get()
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
    }

    /// Reads up to `max` frames from `h` (queue 0) and handles each; the batch's counts are
    /// published at its end.
    pub fn drain(&self, h: &PortHandle, bufs: &mut RxBuffers, max: usize) -> (usize, DrainEnd) {
        self.drain_queue(h, 0, bufs, max)
    }

    /// [`Switch::drain`] for receive queue `q` of a multiqueue port.
    pub fn drain_queue(
        &self,
        h: &PortHandle,
        q: usize,
        bufs: &mut RxBuffers,
        max: usize,
    ) -> (usize, DrainEnd) {
        let reg = self.ports();
        let settings = self.settings.load();
        let now = self.now();
        let vlen = h.port.vnet_hdr_len().min(HEADROOM);
        let mut errors = 0;
        let mut end = (max, DrainEnd::BatchFull);
        bufs.work.seg_work = 0;
        for i in 0..max {
            if bufs.work.seg_work >= super::forward::SEG_BUDGET {
                // this batch wrote its share of software segments: the others get a turn
                end = (i, DrainEnd::BatchFull);
                break;
            }
            if vlen < HEADROOM {
                // A plain port's frames get an all-zero header in the headroom.
                bufs.buf[..HEADROOM].fill(0);
            }
            let area = &mut bufs.buf[HEADROOM - vlen..];
            let cap = area.len();
            match h.port.recv_queue(q, area) {
                Ok(n) => {
                    if h.state() == LinkState::Down {
                        self.read_while_down(h);
                    }
                    let pkt = &bufs.buf[..HEADROOM - vlen + n];
                    self.handle_frame(&reg, &settings, h, pkt, n == cap, now, &mut bufs.work);
                }
                Err(e) => match classify(&e) {
                    IoClass::WouldBlock => {
                        end = (i, DrainEnd::Empty);
                        break;
                    }
                    // a bad read: skip it; a port that keeps failing ends the batch so the
                    // loop waits for readiness instead of spinning
                    IoClass::Down | IoClass::FrameRefused => {
                        errors += 1;
                        if errors > 4 {
                            end = (i, DrainEnd::Empty);
                            break;
                        }
                    }
                    IoClass::Gone | IoClass::Other => {
                        if let Some(held) = READ_FAILED.allow(self.now().millis() + 1000) {
                            tracing::warn!(port = %h.name, error = %e, held, "read failed; port stops");
                        }
                        self.set_state(h, LinkState::Gone);
                        end = (i, DrainEnd::Gone);
                        break;
                    }
                },
            }
        }
        self.publish(&reg, &mut bufs.work);
        end
    }

    /// Drains every port without an fd (in-memory ports) until none has a frame left, then
    /// does the control work they caused (flushes of ports that went down); returns how many
    /// frames were handled. For tests and benches without a dataplane.
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
                self.control_work();
                return total;
            }
            total += round;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LogLimit, RxBuffers, HEADROOM};
    use crate::buf::page_offset;

    #[test]
    fn receive_buffers_start_at_a_page() {
        // an allocation of an odd size first moves where the allocator puts the next ones
        let _shift = vec![0u8; 4016];
        let b = RxBuffers::default();
        assert_eq!(page_offset(b.buf.as_ptr()), 0);
        // an offload port's header + frame is read at the buffer's start, so a TCP payload
        // after 10 + 66 bytes of headers lies 76 bytes into a page, far from the fast-copy trap
        assert_eq!(HEADROOM, 10);
        b.work.assert_page_aligned();
    }

    #[test]
    fn log_limit_holds_lines_back() {
        let l = LogLimit::new(1000);
        assert_eq!(l.allow(5000), Some(0));
        assert_eq!(l.allow(5100), None);
        assert_eq!(l.allow(5999), None);
        assert_eq!(l.allow(6000), Some(2));
        assert_eq!(l.allow(6001), None);
    }
}
