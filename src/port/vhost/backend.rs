//! The rust-vmm side: the `VhostUserBackend` of a port and the loop that serves one
//! front-end connection after another on its socket.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::Listener;
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringT};
use virtio_queue::QueueT;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::device::{Gm, Vring};
use super::{compat, Conn, Shared, VhostEvent};

/// Rounds of "drain, re-arm, re-check" one TX kick runs before the epoll thread yields to
/// its other events (the exit event, RX kicks) and resumes through the resume eventfd.
const TX_ROUNDS: usize = 16;

/// The back-end of one connection (`gen`) of a port.
#[derive(Clone)]
pub(super) struct NetBackend {
    shared: Arc<Shared>,
    gen: u64,
}

impl NetBackend {
    fn current(&self) -> bool {
        self.shared.gen.load(Relaxed) == self.gen
    }

    fn num_queues(&self) -> usize {
        2 * self.shared.cfg.queue_pairs as usize
    }

    /// Event id of the resume eventfd (ids up to `num_queues` are rust-vmm's).
    fn resume_id(&self) -> u64 {
        self.num_queues() as u64 + 1
    }

    /// Takes this connection's rings on the first event, and raises the link once the
    /// guest's first RX queue runs.
    fn capture(&self, vrings: &[Vring]) {
        let s = &self.shared;
        let known = s
            .conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|c| c.gen == self.gen);
        if !known {
            let mut conn = s.conn.write().unwrap_or_else(|p| p.into_inner());
            let pending = s.pending.lock().unwrap_or_else(|p| p.into_inner());
            if !self.current() || conn.as_ref().is_some_and(|c| c.gen == self.gen) {
                return;
            }
            let Some(mem) = pending
                .as_ref()
                .filter(|p| p.gen == self.gen)
                .map(|p| p.mem.clone())
            else {
                return;
            };
            *conn = Some(Conn {
                gen: self.gen,
                vrings: vrings.to_vec(),
                mem,
            });
            (0..vrings.len()).for_each(|i| s.resync(i));
        }
        // Frames are never queued for the guest, so RX kicks are of no use: ask the driver
        // not to send them (without EVENT_IDX; with it, `avail_event` is never advanced).
        let guard = s.conn.read().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_ref() {
            for v in conn.vrings.iter().step_by(2) {
                let mem = conn.mem.memory();
                let mut st = v.get_mut();
                if st.get_queue().ready() && !st.get_queue().event_idx_enabled() {
                    let _ = st.get_queue_mut().disable_notification(&*mem);
                }
            }
            let rx0_runs = conn.vrings.first().is_some_and(|v| {
                let st = v.get_ref();
                st.get_queue().ready() && st.is_enabled()
            });
            drop(guard);
            if rx0_runs {
                s.link_up();
            }
        }
    }

    /// Sets or clears the TX kick suppression of every TX queue. Enabling returns whether
    /// chains arrived meanwhile, and the sum of the `next_avail` positions (progress).
    fn tx_notify(&self, enable: bool) -> (bool, u32) {
        let s = &self.shared;
        let guard = s.conn.read().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = guard.as_ref() else {
            return (false, 0);
        };
        let mem = conn.mem.memory();
        let mut more = false;
        let mut pos = 0u32;
        for v in conn.vrings.iter().skip(1).step_by(2) {
            let mut st = v.get_mut();
            if !st.get_queue().ready() || !st.is_enabled() {
                continue;
            }
            let q = st.get_queue_mut();
            pos = pos.wrapping_add(u32::from(q.next_avail()));
            if enable {
                more |= q.enable_notification(&*mem).unwrap_or(false);
            } else {
                let _ = q.disable_notification(&*mem);
            }
        }
        (more, pos)
    }

    /// Runs the switch's drain until the TX rings are empty with kicks re-armed, or yields
    /// after [`TX_ROUNDS`] rounds (resuming through the resume eventfd).
    fn run_tx(&self) {
        let s = &self.shared;
        let Some(h) = s.handler() else {
            return; // resumed by `set_handler`
        };
        for _ in 0..TX_ROUNDS {
            let (_, before) = self.tx_notify(false);
            h(VhostEvent::TxReady);
            s.flush_tx();
            let (more, after) = self.tx_notify(true);
            // no more chains, or the handler took none (port being removed): wait for a kick
            if !more || after == before {
                return;
            }
        }
        let _ = s.resume.1.notify();
    }
}

impl VhostUserBackend for NetBackend {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        NetBackend::num_queues(self)
    }

    fn max_queue_size(&self) -> usize {
        self.shared.cfg.queue_size as usize
    }

    fn features(&self) -> u64 {
        self.shared.offered
    }

    fn acked_features(&self, features: u64) {
        if self.current() {
            self.shared.acked.store(features, Relaxed);
        }
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // REPLY_ACK is added by rust-vmm's request handler itself
        VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK
    }

    fn reset_device(&self) {
        if self.current() {
            self.shared.link_down();
        }
    }

    fn set_event_idx(&self, _enabled: bool) {
        // virtio-queue keeps it per queue; the frame path reads it from there
    }

    fn update_memory(&self, _mem: Gm) -> io::Result<()> {
        // the same GuestMemoryAtomic the port reads; rust-vmm swapped its contents
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // rust-vmm keeps the consumer's fd registered (and open) for the epoll thread's life
        let pair = pending
            .as_mut()
            .filter(|p| p.gen == self.gen)
            .and_then(|p| p.exit.take());
        pair.or_else(|| {
            new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()
        })
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        // GET_VRING_BASE: the front-end stops the device (guest reset or reboot, shutdown)
        if self.current() {
            self.shared.resync(queue_index as usize);
            if queue_index == 0 {
                self.shared.link_down();
            }
        }
        Ok(())
    }

    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        // Never return an error: it would end rust-vmm's epoll thread for this connection.
        if !self.current() {
            return Ok(());
        }
        self.capture(vrings);
        let ev = u64::from(device_event);
        if ev == self.resume_id() {
            let _ = self.shared.resume.0.consume();
            self.run_tx();
        } else if (device_event as usize) < self.num_queues() && device_event % 2 == 1 {
            self.shared.stats.kicks.fetch_add(1, Relaxed);
            self.run_tx();
        }
        Ok(())
    }
}

/// Serves front-ends on `front_listener` one connection at a time until the port stops.
/// Each connection gets a fresh protocol handler, rings and guest memory map; rust-vmm's
/// handler talks to it through the private `inner` socket and the [`compat`] relay.
pub(super) fn serve(
    shared: Arc<Shared>,
    front_listener: UnixListener,
    inner: UnixListener,
    inner_path: PathBuf,
) {
    let mut inner = Listener::from(inner);
    let name = shared.name.clone();
    while !shared.stopping.load(Relaxed) {
        let gen = shared.gen.fetch_add(1, Relaxed) + 1;
        let mem: Gm = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let exit = match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(port = %name, error = %e, "vhost: cannot create an eventfd; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let exit_fd = exit.0.as_raw_fd();
        *shared.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(super::Pending {
            gen,
            mem: mem.clone(),
            exit: Some(exit),
        });
        // Drops a connection's daemon (joining its epoll thread) and closes the exit eventfd
        // rust-vmm leaves open.
        let retire = |daemon: VhostUserDaemon<NetBackend>| {
            drop(daemon);
            let pending = shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if pending.is_some_and(|p| p.gen == gen && p.exit.is_none()) {
                crate::port::sys::vhost::close_leaked_exit_fd(exit_fd);
            }
        };
        let backend = NetBackend {
            shared: shared.clone(),
            gen,
        };
        let resume_id = backend.resume_id();
        let mut daemon = match VhostUserDaemon::new(format!("vhost-{name}"), backend, mem) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(port = %name, error = %e, "vhost: cannot start a protocol handler; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        for h in daemon.get_epoll_handlers().iter().take(1) {
            if let Err(e) =
                h.register_listener(shared.resume.0.as_raw_fd(), EventSet::IN, resume_id)
            {
                tracing::warn!(port = %name, error = %e, "vhost: cannot watch the resume eventfd");
            }
        }
        let front = match front_listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(port = %name, error = %e, "vhost: accept failed");
                retire(daemon);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.stopping.load(Relaxed) {
            retire(daemon);
            break;
        }
        // our end of the private socket is queued before rust-vmm accepts it
        let ours = match UnixStream::connect(&inner_path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(port = %name, error = %e, "vhost: private socket unusable");
                retire(daemon);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if let Err(e) = daemon.start(&mut inner) {
            tracing::warn!(port = %name, error = %e, "vhost: protocol handler did not start");
            retire(daemon);
            continue;
        }
        shared.stats.connects.fetch_add(1, Relaxed);
        *shared.shutdown.lock().unwrap_or_else(|p| p.into_inner()) = daemon.shutdown_handle();
        if shared.stopping.load(Relaxed) {
            daemon.request_shutdown();
        } else {
            tracing::info!(port = %name, "vhost front-end connected");
        }
        // replies: rust-vmm -> QEMU, as bytes
        let replies = match (ours.try_clone(), front.try_clone()) {
            (Ok(mut from), Ok(mut to)) => std::thread::Builder::new()
                .name(format!("vhost-{name}-r"))
                .spawn(move || {
                    let _ = io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                })
                .ok(),
            _ => None,
        };
        // requests: QEMU -> rust-vmm, early SET_VRING_ENABLEs held until SET_FEATURES
        let relayed = if replies.is_some() {
            compat::pump(
                &front,
                &ours,
                |r| tracing::trace!(port = %name, ?r, "vhost-user request"),
            )
        } else {
            Err(io::Error::other("cannot start the reply relay"))
        };
        let _ = ours.shutdown(Shutdown::Both);
        let _ = front.shutdown(Shutdown::Both);
        let r = daemon.wait();
        if let Some(t) = replies {
            let _ = t.join();
        }
        shared
            .shutdown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // invalidate this connection's handler before dropping its rings
        shared.gen.fetch_add(1, Relaxed);
        shared
            .conn
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        shared.acked.store(0, Relaxed);
        shared.stats.disconnects.fetch_add(1, Relaxed);
        shared.link_down();
        use vhost::vhost_user::Error as VuError;
        match (relayed, r) {
            (Ok(()), Ok(()))
            | (
                Ok(()),
                Err(vhost_user_backend::Error::HandleRequest(
                    VuError::Disconnected | VuError::PartialMessage | VuError::SocketBroken(_),
                )),
            ) => tracing::info!(port = %name, "vhost front-end disconnected"),
            (Err(e), _) => {
                tracing::info!(port = %name, error = %e, "vhost front-end connection ended")
            }
            (_, Err(e)) => {
                tracing::info!(port = %name, error = %e, "vhost front-end connection ended")
            }
        }
        // joins the connection's epoll thread (exit event sent by the handler's Drop)
        retire(daemon);
    }
    tracing::debug!(port = %name, "vhost serving thread ends");
}
