//! TAP ports: a TAP interface the switch creates, or a persistent one it attaches.
//!
//! By default a TAP port takes offloads: it is opened by `sys::open_tap_vnet` with
//! `IFF_VNET_HDR` and TSO/checksum offloads, so hosts behind it send GSO frames of up to 64 KiB
//! with partial checksums, which pass to other offload ports untouched (see [`crate::offload`]).
//! With `offload=off` it is opened with tun-tap (`IFF_TAP | IFF_NO_PI`) and carries plain
//! frames. Either way the fd is non-blocking and the interface is brought up. Closing the port
//! closes the fd: a TAP the switch created disappears, a persistent one stays.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::{check_ifname, sys, Link, Port, PortKind};

/// Why a TAP could not be opened; the text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The interface name is not valid.
    #[error(transparent)]
    BadName(#[from] super::IfnameError),
    /// Another process holds the TAP open.
    #[error("TAP '{0}' is held by another process (EBUSY); to attach an interface that another program owns, use a packet: port")]
    InUse(String),
    /// The name belongs to an interface that is not a TAP.
    #[error("interface '{0}' exists and is not a TAP (or is a TUN, or multi-queue)")]
    NotATap(String),
    /// Not root, or no CAP_NET_ADMIN.
    #[error("no permission to open TAP '{0}': run as root or with CAP_NET_ADMIN")]
    Permission(String),
    /// /dev/net/tun is missing.
    #[error("cannot open /dev/net/tun for '{0}' (is the tun module loaded?)")]
    NoTunDevice(String, #[source] io::Error),
    /// The kernel chose another name.
    #[error("the kernel named the TAP '{got}' instead of '{want}'")]
    Renamed {
        /// The name asked for.
        want: String,
        /// The name the kernel gave.
        got: String,
    },
    /// Any other error of the kernel.
    #[error("TAP '{0}'")]
    Io(String, #[source] io::Error),
}

/// The fd: tun-tap's for plain frames, our own for the virtio_net_hdr mode.
#[derive(Debug)]
enum TapFd {
    Plain(tun_tap::Iface),
    /// One fd per queue (one unless `queues=N`).
    Vnet(Vec<OwnedFd>),
}

/// A TAP interface; see the module documentation.
#[derive(Debug)]
pub struct TapPort {
    fd: TapFd,
    name: String,
    created: bool,
    mtu: AtomicU32,
    mtu_fixed: bool,
}

impl TapPort {
    /// Opens (creating if absent) the TAP `name`, non-blocking and up. `mtu` overrides the
    /// interface MTU for the egress size check; `offload` selects the virtio_net_hdr mode.
    pub fn open(name: &str, mtu: Option<u32>, offload: bool) -> Result<TapPort, TapError> {
        Self::open_queues(name, mtu, offload, 1)
    }

    /// [`TapPort::open`] with `queues` queues (`IFF_MULTI_QUEUE`; needs `offload`).
    pub fn open_queues(
        name: &str,
        mtu: Option<u32>,
        offload: bool,
        queues: usize,
    ) -> Result<TapPort, TapError> {
        check_ifname(name).map_err(TapError::BadName)?;
        let existed = sys::if_index(name).is_some();
        let map_open = |e: io::Error| match e.raw_os_error() {
            Some(libc::EBUSY) => TapError::InUse(name.into()),
            Some(libc::EPERM | libc::EACCES) => TapError::Permission(name.into()),
            Some(libc::EINVAL) if existed => TapError::NotATap(name.into()),
            Some(libc::ENOENT | libc::ENODEV) => TapError::NoTunDevice(name.into(), e),
            _ => TapError::Io(name.into(), e),
        };
        let (fd, got) = if offload {
            let fds = sys::open_tap_vnet_queues(name, queues).map_err(map_open)?;
            let got = sys::tap_name(&fds[0]).map_err(|e| TapError::Io(name.into(), e))?;
            (TapFd::Vnet(fds), got)
        } else {
            let iface =
                tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap).map_err(map_open)?;
            iface
                .set_non_blocking()
                .map_err(|e| TapError::Io(name.into(), e))?;
            let got = iface.name().to_string();
            (TapFd::Plain(iface), got)
        };
        if got != name {
            return Err(TapError::Renamed {
                want: name.into(),
                got,
            });
        }
        sys::set_if_up(name).map_err(|e| TapError::Io(name.into(), e))?;
        let mtu_now = match mtu {
            Some(m) => m,
            None => sys::if_mtu(name).map_err(|e| TapError::Io(name.into(), e))?,
        };
        Ok(TapPort {
            fd,
            name: name.to_string(),
            created: !existed,
            mtu: AtomicU32::new(mtu_now),
            mtu_fixed: mtu.is_some(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Port for TapPort {
    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.fd {
            TapFd::Plain(i) => i.recv(buf),
            TapFd::Vnet(fds) => sys::fd_read(&fds[0], buf),
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        match &self.fd {
            TapFd::Plain(i) => i.send(frame).map(|_| ()),
            // each worker thread writes to its own queue
            TapFd::Vnet(fds) => {
                sys::fd_write(&fds[super::worker_index() % fds.len()], frame).map(|_| ())
            }
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(match &self.fd {
            TapFd::Plain(i) => i.as_raw_fd(),
            TapFd::Vnet(fds) => fds[0].as_raw_fd(),
        })
    }

    fn queues(&self) -> usize {
        match &self.fd {
            TapFd::Plain(_) => 1,
            TapFd::Vnet(fds) => fds.len(),
        }
    }

    fn queue_fd(&self, q: usize) -> Option<RawFd> {
        match &self.fd {
            TapFd::Plain(i) => (q == 0).then(|| i.as_raw_fd()),
            TapFd::Vnet(fds) => fds.get(q).map(|f| f.as_raw_fd()),
        }
    }

    fn recv_queue(&self, q: usize, buf: &mut [u8]) -> io::Result<usize> {
        match &self.fd {
            TapFd::Plain(i) => i.recv(buf),
            TapFd::Vnet(fds) => match fds.get(q) {
                Some(fd) => sys::fd_read(fd, buf),
                None => Err(io::ErrorKind::InvalidInput.into()),
            },
        }
    }

    fn vnet_hdr_len(&self) -> usize {
        match self.fd {
            TapFd::Plain(_) => 0,
            TapFd::Vnet(_) => crate::offload::VNET_HDR_LEN,
        }
    }

    fn mtu(&self) -> u32 {
        self.mtu.load(Relaxed)
    }

    fn created(&self) -> bool {
        self.created
    }

    fn follows_link(&self) -> bool {
        true
    }

    /// Reads the interface's flags and MTU wherever it is now (this namespace or the one a
    /// host was moved into): up with carrier is `Up`; a deleted device is `Gone`.
    fn link(&self) -> Option<Link> {
        let fd = self.poll_fd()?;
        match sys::netns::tap_state(fd) {
            Ok(s) => {
                if !self.mtu_fixed {
                    self.mtu.store(s.mtu, Relaxed);
                }
                Some(if s.up() { Link::Up } else { Link::Down })
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBADFD | libc::ENODEV)) => {
                Some(Link::Gone)
            }
            Err(_) => None,
        }
    }
}
