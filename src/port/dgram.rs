//! `dgram:PATH` ports: a unix datagram socket bound at PATH for QEMU's
//! `-netdev dgram,local.type=unix,local.path=G,remote.type=unix,remote.path=PATH`. One datagram
//! is one frame. Each distinct sender path is its own port (`NAME-N`); replies go to that path
//! from the hub socket itself (a sender that connected its socket to PATH accepts datagrams
//! from PATH only). The hub socket is read by the dataplane, which hands each frame to the
//! sender's port.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::stream::MAX_FRAME;
use super::{Link, Port, PortKind};

/// One sender on a datagram hub: the switch answers it from the hub socket.
#[derive(Debug)]
pub struct DgramPeer {
    sock: UnixDatagram,
    path: PathBuf,
}

impl DgramPeer {
    /// A peer at `path`, answered through `hub` (a duplicate of the hub's fd).
    pub fn new(hub: &DgramHub, path: &Path) -> io::Result<DgramPeer> {
        Ok(DgramPeer {
            sock: hub.sock.try_clone()?,
            path: path.to_path_buf(),
        })
    }
}

impl Port for DgramPeer {
    fn kind(&self) -> PortKind {
        PortKind::Dgram
    }
    /// Frames from a peer arrive on the hub socket, never here.
    fn recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    /// A peer whose socket is gone (file removed, or nobody bound to it: QEMU exited) is
    /// down, not gone: QEMU started again on the same path brings it back.
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self.sock.send_to(frame, &self.path) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => {
                Err(io::Error::from_raw_os_error(libc::ENETDOWN))
            }
            Err(e) => Err(e),
        }
    }
    fn follows_link(&self) -> bool {
        true
    }
    /// Up while a socket is bound at the peer's path (a connect from a fresh socket succeeds,
    /// or is refused with EPERM by a socket connected to the hub; nothing is sent).
    fn link(&self) -> Option<Link> {
        let probe = UnixDatagram::unbound().ok()?;
        match probe.connect(&self.path) {
            Ok(()) => Some(Link::Up),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Some(Link::Up),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => {
                Some(Link::Down)
            }
            Err(_) => None,
        }
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        (MAX_FRAME - 18) as u32
    }
    fn ephemeral(&self) -> bool {
        true
    }
}

/// The bound hub socket.
#[derive(Debug)]
pub struct DgramHub {
    /// The socket every guest sends to.
    pub sock: UnixDatagram,
}

impl AsRawFd for DgramHub {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl DgramHub {
    /// Binds the hub at `path` (non-blocking).
    pub fn bind(path: &Path) -> io::Result<DgramHub> {
        let sock = UnixDatagram::bind(path)?;
        sock.set_nonblocking(true)?;
        Ok(DgramHub { sock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_gets_frames_and_reports_its_end() {
        let dir = std::env::temp_dir().join(format!("tsw-dgram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = dir.join("guest.sock");
        let hub = DgramHub::bind(&dir.join("hub.sock")).unwrap();
        let guest = UnixDatagram::bind(&g).unwrap();
        // a guest that connected its socket to the hub still gets the hub's answers
        guest.connect(dir.join("hub.sock")).unwrap();
        let peer = DgramPeer::new(&hub, &g).unwrap();
        peer.send(&[1u8; 60]).unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(guest.recv(&mut buf).unwrap(), 60);
        assert_eq!(peer.link(), Some(Link::Up));
        // QEMU exits: its socket file stays behind, nobody is bound to it
        drop(guest);
        let e = peer.send(&[1u8; 60]).unwrap_err();
        assert_eq!(crate::port::classify(&e), crate::port::IoClass::Down, "{e}");
        assert_eq!(peer.link(), Some(Link::Down));
        std::fs::remove_file(&g).unwrap();
        assert_eq!(peer.link(), Some(Link::Down));
        // QEMU again, same path: the port is up without the guest sending anything
        let guest = UnixDatagram::bind(&g).unwrap();
        assert_eq!(peer.link(), Some(Link::Up));
        peer.send(&[2u8; 60]).unwrap();
        assert_eq!(guest.recv(&mut buf).unwrap(), 60);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
