//! Ports: where frames come from and go to.
//!
//! A [`Port`] is one non-blocking frame source and sink. The dataplane owns the loop around it
//! and is the only caller of `recv`/`send` on the frame path. Implementations: [`tap::TapPort`]
//! (a TAP interface the switch opens or attaches) and [`mem::MemPort`] (in memory, for tests,
//! benches and fuzzing). `sys` holds the only `unsafe` code of the crate.

use std::io;
use std::os::fd::RawFd;

pub mod dgram;
pub mod mem;
pub mod packet;
pub mod sockfile;
pub mod stream;
pub(crate) mod sys;
pub mod tap;
pub mod vhost;
pub mod vxlan;

/// Interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAMSIZ_MAX: usize = 15;

/// What kind of port this is; its spelling in specs, the API and metrics.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// A TAP interface opened by the switch.
    #[default]
    Tap,
    /// An existing interface attached with an AF_PACKET socket.
    Packet,
    /// One connection to a unix stream socket (QEMU `-netdev stream`).
    Stream,
    /// One sender on a unix datagram socket (QEMU `-netdev dgram`).
    Dgram,
    /// A vhost-user-net back-end on a unix socket (QEMU `-netdev vhost-user`).
    Vhost,
    /// One VNI of a VXLAN tunnel endpoint (RFC 7348).
    Vxlan,
    /// An in-memory port (tests); not accepted in a configuration file.
    #[serde(skip_deserializing)]
    Mem,
}

impl PortKind {
    /// The spec/metric spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Packet => "packet",
            PortKind::Stream => "stream",
            PortKind::Dgram => "dgram",
            PortKind::Vhost => "vhost",
            PortKind::Vxlan => "vxlan",
            PortKind::Mem => "mem",
        }
    }
}

/// What a port's own check says of its link ([`Port::link`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Administratively up with carrier (an interface), or a peer is there (a socket).
    Up,
    /// Down, without carrier, deleted for now, or no peer: it may come back.
    Down,
    /// Gone for good (a TAP whose device was deleted).
    Gone,
}

/// One frame source and sink. Both calls are non-blocking: `WouldBlock` means nothing to read,
/// or no room to write.
pub trait Port: Send + Sync + 'static {
    /// Kind of port.
    fn kind(&self) -> PortKind;
    /// Reads one frame into `buf`, returning its length (0 is a zero-length frame, a runt).
    /// The end of a connection is an error of kind `UnexpectedEof`.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one frame.
    fn send(&self, frame: &[u8]) -> io::Result<()>;
    /// The fd to wait on for readability, if the port has one.
    fn poll_fd(&self) -> Option<RawFd>;
    /// The egress MTU (frames longer than MTU + 18 are not sent).
    fn mtu(&self) -> u32;
    /// Whether closing the port removes its interface (the switch created it).
    fn created(&self) -> bool {
        false
    }
    /// Periodic housekeeping off the frame path (re-reading the MTU, for example).
    fn refresh(&self) {}
    /// Whether the port's state follows [`Port::link`] (carrier and admin state, as the Linux
    /// bridge follows its ports' netdev events) rather than the outcome of reads and writes.
    fn follows_link(&self) -> bool {
        false
    }
    /// Checks the link now (the control thread does, a few times a second; it may make
    /// syscalls); `None` when it cannot tell.
    fn link(&self) -> Option<Link> {
        None
    }
    /// Length of the virtio_net_hdr before every frame read or written (0: none, plain frames;
    /// [`crate::offload::VNET_HDR_LEN`]: the port takes GSO frames and partial checksums).
    fn vnet_hdr_len(&self) -> usize {
        0
    }
    /// For ports that queue frames (streams): woken when a send left bytes waiting.
    fn backlog(&self) -> Option<&tokio::sync::Notify> {
        None
    }
    /// Writes queued bytes; `Ok(true)` once the queue is empty.
    fn flush(&self) -> io::Result<bool> {
        Ok(true)
    }
    /// Whether the port is removed from the switch when it goes away (a stream connection, a
    /// datagram peer), rather than kept and shown as gone (a TAP).
    fn ephemeral(&self) -> bool {
        false
    }
    /// Receive queues (a multiqueue TAP has several, each read by its own thread).
    fn queues(&self) -> usize {
        1
    }
    /// The fd of receive queue `q` (queue 0 is [`Port::poll_fd`]).
    fn queue_fd(&self, q: usize) -> Option<RawFd> {
        if q == 0 {
            self.poll_fd()
        } else {
            None
        }
    }
    /// Reads one frame from queue `q` (queue 0 is [`Port::recv`]).
    fn recv_queue(&self, q: usize, buf: &mut [u8]) -> io::Result<usize> {
        let _ = q;
        self.recv(buf)
    }
    /// The port is being detached: release what outlives a plain close (a vhost-user
    /// listener's threads and socket file).
    fn shutdown(&self) {}
    /// Drops the port counts by reasons of its own (a vhost port's descriptor errors):
    /// `(reason, count)`.
    fn own_drops(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The index of the dataplane worker this thread is (0 elsewhere): a multiqueue port writes
/// to the queue of that index, so threads do not share a queue.
pub fn worker_index() -> usize {
    WORKER.with(|w| w.get())
}

/// Marks this thread as dataplane worker `i`.
pub fn set_worker_index(i: usize) {
    WORKER.with(|w| w.set(i));
}

/// A shared port (tests keep one handle to inject frames and read what was sent).
impl<P: Port> Port for std::sync::Arc<P> {
    fn kind(&self) -> PortKind {
        (**self).kind()
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).recv(buf)
    }
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        (**self).send(frame)
    }
    fn poll_fd(&self) -> Option<RawFd> {
        (**self).poll_fd()
    }
    fn mtu(&self) -> u32 {
        (**self).mtu()
    }
    fn created(&self) -> bool {
        (**self).created()
    }
    fn refresh(&self) {
        (**self).refresh()
    }
    fn follows_link(&self) -> bool {
        (**self).follows_link()
    }
    fn link(&self) -> Option<Link> {
        (**self).link()
    }
    fn vnet_hdr_len(&self) -> usize {
        (**self).vnet_hdr_len()
    }
    fn backlog(&self) -> Option<&tokio::sync::Notify> {
        (**self).backlog()
    }
    fn flush(&self) -> io::Result<bool> {
        (**self).flush()
    }
    fn ephemeral(&self) -> bool {
        (**self).ephemeral()
    }
    fn queues(&self) -> usize {
        (**self).queues()
    }
    fn queue_fd(&self, q: usize) -> Option<RawFd> {
        (**self).queue_fd(q)
    }
    fn recv_queue(&self, q: usize, buf: &mut [u8]) -> io::Result<usize> {
        (**self).recv_queue(q, buf)
    }
    fn shutdown(&self) {
        (**self).shutdown()
    }
    fn own_drops(&self) -> Vec<(&'static str, u64)> {
        (**self).own_drops()
    }
}

/// How the dataplane treats an I/O error from a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoClass {
    /// Nothing to read / no room to write.
    WouldBlock,
    /// The interface is administratively down (TAP write: EIO).
    Down,
    /// The interface or peer is gone for good (deleted TAP, closed socket).
    Gone,
    /// This one frame was refused; the port is fine.
    FrameRefused,
    /// Anything else.
    Other,
}

/// Sorts an I/O error by errno.
pub fn classify(e: &io::Error) -> IoClass {
    match e.kind() {
        io::ErrorKind::WouldBlock => return IoClass::WouldBlock,
        io::ErrorKind::UnexpectedEof => return IoClass::Gone,
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::EIO | libc::ENETDOWN) => IoClass::Down,
        Some(
            libc::EBADFD
            | libc::ENODEV
            | libc::ENXIO
            | libc::EPIPE
            | libc::ECONNRESET
            | libc::ECONNREFUSED
            | libc::ENOTCONN,
        ) => IoClass::Gone,
        Some(libc::EINVAL | libc::EMSGSIZE | libc::EFAULT) => IoClass::FrameRefused,
        Some(libc::ENOBUFS | libc::ENOMEM) => IoClass::WouldBlock,
        _ => IoClass::Other,
    }
}

/// Why an interface name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IfnameError {
    /// Nothing given.
    #[error("an interface name cannot be empty")]
    Empty,
    /// Longer than IFNAMSIZ - 1.
    #[error("interface name '{0}' is {len} bytes; Linux allows at most {IFNAMSIZ_MAX}", len = .0.len())]
    TooLong(String),
    /// A character Linux or the spec grammar does not allow.
    #[error("interface name '{0}' contains a character Linux or the port spec does not allow ('/', ':', ',', '=', space)")]
    BadChar(String),
}

/// Checks an interface name: 1 to 15 bytes, no '/', no whitespace, not "." or "..".
pub fn check_ifname(name: &str) -> Result<(), IfnameError> {
    if name.is_empty() {
        return Err(IfnameError::Empty);
    }
    if name.len() > IFNAMSIZ_MAX {
        return Err(IfnameError::TooLong(name.into()));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':', ',', '='])
        || name.contains(char::is_whitespace)
    {
        return Err(IfnameError::BadChar(name.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        assert!(check_ifname("tsw0").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(check_ifname("a234567890123456")
            .unwrap_err()
            .to_string()
            .contains("at most 15"));
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
    }

    #[test]
    fn errno_classes() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(classify(&e(libc::EAGAIN)), IoClass::WouldBlock);
        assert_eq!(classify(&e(libc::EIO)), IoClass::Down);
        assert_eq!(classify(&e(libc::EBADFD)), IoClass::Gone);
        assert_eq!(classify(&e(libc::EINVAL)), IoClass::FrameRefused);
        assert_eq!(classify(&e(libc::EACCES)), IoClass::Other);
    }
}
