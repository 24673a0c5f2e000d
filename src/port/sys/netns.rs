//! Link state of a TAP wherever its interface lives: in this network namespace or, after
//! `ip link set TAP netns HOST`, in another one.
//!
//! The TAP fd names its device (`TUNGETIFF`) and hands out its current namespace
//! (`TUNGETDEVNETNS`, Linux 5.2). An interface ioctl needs a socket of that namespace: the
//! calling thread (the control thread) enters the namespace with `setns`, opens a socket,
//! and goes back at once; a socket stays in the namespace it was made in. No socket is kept
//! between probes: one would hold the namespace alive after its owner deleted it, and with it
//! the TAP.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// `_IO('T', 227)`: returns a new fd of the TUN/TAP device's network namespace.
const TUNGETDEVNETNS: libc::c_ulong = 0x54e3;

/// What a probe read of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfState {
    /// The interface flags (`IFF_UP`, `IFF_LOWER_UP`, ...), as `ip link` shows them.
    pub flags: u32,
    /// Its MTU.
    pub mtu: u32,
}

impl IfState {
    /// Administratively up with carrier: what the Linux bridge calls an enabled port.
    pub fn up(&self) -> bool {
        let f = self.flags as libc::c_int;
        f & libc::IFF_UP != 0 && f & libc::IFF_LOWER_UP != 0
    }
}

/// The namespace the process started in, kept to come back to after a `setns`.
fn home() -> io::Result<&'static File> {
    static HOME: OnceLock<File> = OnceLock::new();
    if let Some(f) = HOME.get() {
        return Ok(f);
    }
    let f = File::open("/proc/self/ns/net")?;
    Ok(HOME.get_or_init(|| f))
}

fn fstat_ino(fd: libc::c_int) -> io::Result<(u64, u64)> {
    // SAFETY: `stat` is plain data; all-zero is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the call and `st` lives across it.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setns(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: setns(2) on an open namespace fd; it changes only this thread's network
    // namespace, which the caller restores before anything else runs on the thread.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket in the namespace `ns` (this thread enters it and comes back).
fn socket_in(ns: &OwnedFd) -> io::Result<OwnedFd> {
    let home = home()?;
    if fstat_ino(ns.as_raw_fd())? == fstat_ino(home.as_raw_fd())? {
        return inet_socket();
    }
    setns(ns.as_raw_fd())?;
    let sock = inet_socket();
    if let Err(e) = setns(home.as_raw_fd()) {
        // Cannot happen for a namespace we started in; if it did, this thread would do its
        // next interface work in the wrong namespace: better to stop loudly.
        panic!("cannot return to the switch's network namespace: {e}");
    }
    sock
}

fn if_ioctl(sock: &OwnedFd, req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: SIOCGIF* read and write exactly one `struct ifreq`, which `ifr` points to and
    // which lives for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The flags and MTU of the interface behind a TUN/TAP fd, in whatever namespace it is now.
/// `Err` with `EBADFD` when the device is gone (deleted, or its namespace destroyed).
pub fn tap_state(fd: RawFd) -> io::Result<IfState> {
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF fills one `struct ifreq`, which lives across the call.
    if unsafe { libc::ioctl(fd, libc::TUNGETIFF as _, &mut req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNGETDEVNETNS takes no argument and returns a new fd or -1.
    let ns = unsafe { libc::ioctl(fd, TUNGETDEVNETNS as _) };
    if ns < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ns` is a fresh descriptor that nothing else owns.
    let ns = unsafe { OwnedFd::from_raw_fd(ns) };
    let sock = socket_in(&ns)?;
    // `req.ifr_name` holds the device's current name (it may have been renamed); keep it and
    // ask for the flags, then the MTU.
    let name = req.ifr_name;
    if_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as u16 as u32;
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = name;
    if_ioctl(&sock, libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32;
    // IFF_LOWER_UP (0x10000) does not fit in ifru_flags' 16 bits: ask for carrier apart.
    Ok(IfState {
        flags: with_carrier(flags, lower_up(&sock, &name)),
        mtu,
    })
}

/// The flags with `IFF_LOWER_UP` from the ethtool link query, or from `IFF_RUNNING` for a
/// driver without one (IFF_RUNNING follows carrier, a little later: link events are batched).
fn with_carrier(flags: u32, lower: io::Result<u32>) -> u32 {
    let running = flags & libc::IFF_RUNNING as u32 != 0;
    flags
        | lower.unwrap_or(if running {
            libc::IFF_LOWER_UP as u32
        } else {
            0
        })
}

/// `IFF_LOWER_UP` if the interface has carrier (`SIOCGIFFLAGS` cannot say: its flags are 16
/// bits), read with the ethtool link query; 0 if not.
fn lower_up(sock: &OwnedFd, name: &[libc::c_char; libc::IFNAMSIZ]) -> io::Result<u32> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut v = EthtoolValue {
        cmd: 0x0000_000a, // ETHTOOL_GLINK
        data: 0,
    };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = *name;
    req.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
    if_ioctl(sock, libc::SIOCETHTOOL, &mut req)?;
    Ok(if v.data != 0 {
        libc::IFF_LOWER_UP as u32
    } else {
        0
    })
}

/// The flags (with `IFF_LOWER_UP` for carrier) and MTU of interface `name` in this namespace.
pub fn if_state(name: &str) -> io::Result<IfState> {
    let sock = inet_socket()?;
    let mut req = super::ifreq(name)?;
    let cname = req.ifr_name;
    if_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as u16 as u32;
    let mut req = super::ifreq(name)?;
    if_ioctl(&sock, libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32;
    Ok(IfState {
        flags: with_carrier(flags, lower_up(&sock, &cname)),
        mtu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_with_carrier() {
        let s = if_state("lo").unwrap();
        assert!(s.flags as libc::c_int & libc::IFF_UP != 0);
        assert!(s.up(), "{s:?}");
        assert!(s.mtu >= 1500);
        assert!(if_state("no-such-if-q").is_err());
    }
}
