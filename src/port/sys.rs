//! The only `unsafe` code in tapswitch: interface ioctls and fd registration with tokio.
//! Every block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use super::IFNAMSIZ_MAX;

/// The interface index of `name` in this network namespace, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// An `ifreq` for `name`; the caller checked the length, checked again here.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() > IFNAMSIZ_MAX {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: ifreq is plain old data (arrays and a union of integers/pointers); all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// A socket to carry interface ioctls.
fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl_ifreq(req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
    let sock = ctl_socket()?;
    // SAFETY: SIOC[GS]IF* read/write exactly one `struct ifreq`, which `ifr` points to and which
    // lives for the whole call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The interface flags (IFF_UP, IFF_RUNNING, ...).
pub fn if_flags(name: &str) -> io::Result<i32> {
    let mut r = ifreq(name)?;
    ioctl_ifreq(libc::SIOCGIFFLAGS, &mut r)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    Ok(unsafe { r.ifr_ifru.ifru_flags } as u16 as i32)
}

/// Sets IFF_UP on an interface (`ip link set NAME up`).
pub fn set_if_up(name: &str) -> io::Result<()> {
    let flags = if_flags(name)?;
    if flags & libc::IFF_UP != 0 {
        return Ok(());
    }
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_flags = (flags | libc::IFF_UP) as libc::c_short;
    ioctl_ifreq(libc::SIOCSIFFLAGS, &mut r)
}

/// The interface MTU.
pub fn if_mtu(name: &str) -> io::Result<u32> {
    let mut r = ifreq(name)?;
    ioctl_ifreq(libc::SIOCGIFMTU, &mut r)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    Ok(unsafe { r.ifr_ifru.ifru_mtu }.max(0) as u32)
}

/// Registers a port's fd with the tokio reactor for readability.
///
/// Callers pass an owner that keeps the fd open and returns the same fd for as long as the
/// `AsyncFd` lives (the dataplane's `PortFd` holds an `Arc` to the port that owns it).
pub fn register_readable<T: AsRawFd>(owner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: see above: the fd stays open and the same for the AsyncFd's whole life, because
    // `owner` keeps the port (and so its fd) alive and never swaps it.
    unsafe { AsyncFd::register_with_interest(owner, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_visible_without_root() {
        assert!(if_index("lo").is_some());
        assert_eq!(
            if_flags("lo").unwrap() & libc::IFF_LOOPBACK,
            libc::IFF_LOOPBACK
        );
        assert!(if_mtu("lo").unwrap() >= 1500);
        assert!(if_index("no-such-if-xx").is_none());
        assert!(if_flags("0123456789abcdef").is_err());
    }
}
