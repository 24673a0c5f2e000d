//! TAP ports: a TAP interface the switch creates, or a persistent one it attaches.
//!
//! Opened with tun-tap (`IFF_TAP | IFF_NO_PI`), made non-blocking and brought up. Closing the
//! port closes the fd: a TAP the switch created disappears, a persistent one stays.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::{check_ifname, sys, Port, PortKind};

/// Why a TAP could not be opened; the text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("{0}")]
    BadName(String),
    #[error("TAP '{0}' is held by another process (EBUSY); to attach an interface that another program owns, use a packet: port")]
    InUse(String),
    #[error("interface '{0}' exists and is not a TAP (or is a TUN, or multi-queue)")]
    NotATap(String),
    #[error("no permission to open TAP '{0}': run as root or with CAP_NET_ADMIN")]
    Permission(String),
    #[error("cannot open /dev/net/tun for '{0}': {1} (is the tun module loaded?)")]
    NoTunDevice(String, io::Error),
    #[error("the kernel named the TAP '{got}' instead of '{want}'")]
    Renamed { want: String, got: String },
    #[error("TAP '{0}': {1}")]
    Io(String, io::Error),
}

/// A TAP interface; see the module documentation.
#[derive(Debug)]
pub struct TapPort {
    iface: tun_tap::Iface,
    created: bool,
    ifindex: u32,
    mtu: AtomicU32,
    mtu_fixed: bool,
}

impl TapPort {
    /// Opens (creating if absent) the TAP `name`, non-blocking and up. `mtu` overrides the
    /// interface MTU for the egress size check.
    pub fn open(name: &str, mtu: Option<u32>) -> Result<TapPort, TapError> {
        check_ifname(name).map_err(TapError::BadName)?;
        let existed = sys::if_index(name).is_some();
        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EBUSY) => TapError::InUse(name.into()),
                Some(libc::EPERM | libc::EACCES) => TapError::Permission(name.into()),
                Some(libc::EINVAL) if existed => TapError::NotATap(name.into()),
                Some(libc::ENOENT | libc::ENODEV) => TapError::NoTunDevice(name.into(), e),
                _ => TapError::Io(name.into(), e),
            }
        })?;
        if iface.name() != name {
            return Err(TapError::Renamed {
                want: name.into(),
                got: iface.name().into(),
            });
        }
        iface
            .set_non_blocking()
            .map_err(|e| TapError::Io(name.into(), e))?;
        sys::set_if_up(name).map_err(|e| TapError::Io(name.into(), e))?;
        let ifindex = sys::if_index(name).unwrap_or(0);
        let mtu_now = match mtu {
            Some(m) => m,
            None => sys::if_mtu(name).map_err(|e| TapError::Io(name.into(), e))?,
        };
        Ok(TapPort {
            iface,
            created: !existed,
            ifindex,
            mtu: AtomicU32::new(mtu_now),
            mtu_fixed: mtu.is_some(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.iface.name()
    }
}

impl Port for TapPort {
    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf)
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.iface.send(frame).map(|_| ())
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.iface.as_raw_fd())
    }

    fn mtu(&self) -> u32 {
        self.mtu.load(Relaxed)
    }

    fn created(&self) -> bool {
        self.created
    }

    /// Re-reads the MTU while the interface is still in this namespace under its name (after
    /// it moves to another namespace, the MTU read last stays in force).
    fn refresh(&self) {
        if self.mtu_fixed || sys::if_index(self.name()) != Some(self.ifindex) {
            return;
        }
        if let Ok(m) = sys::if_mtu(self.name()) {
            self.mtu.store(m, Relaxed);
        }
    }
}
