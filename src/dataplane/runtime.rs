//! The frame path's runtime and receive loops: dedicated threads, one receive task per port
//! that drains it in bounded batches, and the adaptive busy poll.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::forward::{Scratch, HEADROOM};
use super::registry::{LinkState, PortHandle};
use super::Switch;
use crate::port::{classify, sys, IoClass};

/// Frames read from one port before other ports get a turn.
pub const RX_BATCH: usize = 64;
/// Receive buffer: the largest frame any port can deliver.
pub const RX_BUF: usize = 65536 + 64;

/// The buffers one receive loop owns, allocated once.
pub struct RxBuffers {
    pub(super) buf: Vec<u8>,
    /// Segmentation scratch and the batch's counters.
    pub work: Scratch,
}

impl Default for RxBuffers {
    fn default() -> Self {
        RxBuffers {
            buf: vec![0; HEADROOM + RX_BUF],
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

/// The runtime of the frame path: `threads` dedicated threads, apart from the API and control
/// threads, so HTTP and table work never delays a frame and, with one thread, every frame is
/// handled on the thread that polled it without cross-thread wake-ups.
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

impl Switch {
    /// Starts the receive task of a new port, if there is a runtime and the port has an fd.
    pub(super) fn start_port(self: &Arc<Self>, handle: &Arc<PortHandle>) {
        if let Some(rt) = self.frame_runtime() {
            if handle.port.poll_fd().is_some() {
                let task = rt.spawn(rx_loop(self.clone(), handle.clone()));
                handle.add_task(task.abort_handle());
            }
        }
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

    pub(super) fn frame_seen(&self) {
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

    /// Reads up to `max` frames from `h` and handles each; the batch's counts are published
    /// at its end.
    pub fn drain(&self, h: &PortHandle, bufs: &mut RxBuffers, max: usize) -> (usize, DrainEnd) {
        let reg = self.ports();
        let settings = self.settings.load();
        let now = self.now();
        let vlen = h.port.vnet_hdr_len().min(HEADROOM);
        let mut errors = 0;
        let mut end = (max, DrainEnd::BatchFull);
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
        if end.0 > 0 {
            self.frame_seen();
        }
        end
    }

    /// Drains every port without an fd (in-memory ports) until none has a frame left, then
    /// does the control work they caused (flushes of ports that went down); returns how many
    /// frames were handled. For tests and benches without a runtime.
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
    // a closed connection is detached by the control thread (its entries are flushed there)
    sw.wake_control();
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
                    if let Some(held) = READ_FAILED.allow(sw.now().millis() + 1000) {
                        tracing::warn!(port = %h.name, error = %e, held, "write failed; port stops");
                    }
                    sw.set_state(&h, LinkState::Gone);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogLimit;

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
