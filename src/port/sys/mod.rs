//! The only `unsafe` code in tapswitch: interface ioctls and fd registration with tokio.
//! Every block says why it is sound.
#![allow(
    unsafe_code,
    reason = "the syscall wrappers: every unsafe block of the crate, each with its SAFETY comment"
)]

pub mod epoll;
pub mod fs;
pub mod icmp;
pub mod netns;
pub mod vhost;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use super::IFNAMSIZ_MAX;

pub mod packet;
pub mod vxlan;

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

/// Opens the TAP `name` with `queues` queues (`IFF_MULTI_QUEUE` when more than one): one fd
/// per queue, each as [`open_tap_vnet`] describes. The kernel spreads the host's flows over the
/// queues by flow hash.
pub fn open_tap_vnet_queues(name: &str, queues: usize) -> io::Result<Vec<OwnedFd>> {
    (0..queues.max(1))
        .map(|_| open_tap_vnet_flags(name, queues > 1))
        .collect()
}

/// Opens `/dev/net/tun` as the TAP `name` with `IFF_VNET_HDR`, a 10-byte header and TSO/checksum
/// offloads on (what tun-tap cannot do: the kernel takes these flags only at `TUNSETIFF`).
/// The fd is non-blocking and close-on-exec.
fn open_tap_vnet_flags(name: &str, multi_queue: bool) -> io::Result<OwnedFd> {
    // SAFETY: open(2) of a constant NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is fresh and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = ifreq(name)?;
    let mq = if multi_queue {
        libc::IFF_MULTI_QUEUE
    } else {
        0
    };
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR | mq) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which lives across the call.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF as _,
            &mut req as *mut libc::ifreq,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let hdr_len: libc::c_int = crate::offload::VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int from the pointer, which is valid for the call.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETVNETHDRSZ as _,
            &hdr_len as *const libc::c_int,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD as _,
            offloads as libc::c_ulong,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The name the kernel gave a TUN/TAP fd (`TUNGETIFF`).
pub fn tap_name(fd: &OwnedFd) -> io::Result<String> {
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF fills one `struct ifreq`, which lives across the call.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNGETIFF as _,
            &mut req as *mut libc::ifreq,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// read(2) on a non-blocking fd.
pub fn fd_read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// write(2) on a non-blocking fd.
pub fn fd_write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Looks a user up by name or number: `(uid, primary gid)`.
pub fn lookup_user(user: &str) -> io::Result<(u32, u32)> {
    let c = CString::new(user).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: passwd is plain data; all-zero is a valid value to be overwritten.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `c` is NUL-terminated, `pw` and `buf` outlive
    // it, and `buf.len()` is its real size.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        return Ok((pw.pw_uid, pw.pw_gid));
    }
    match user.split_once(':') {
        Some((u, g)) => match (u.parse(), g.parse()) {
            (Ok(u), Ok(g)) => Ok((u, g)),
            _ => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        },
        None => user
            .parse()
            .map(|u| (u, u))
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOENT)),
    }
}

/// Looks a group up by name or number: its gid.
pub fn lookup_group(group: &str) -> io::Result<u32> {
    if let Ok(g) = group.parse::<u32>() {
        return Ok(g);
    }
    let c = CString::new(group).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0 as libc::c_char; 65536];
    // SAFETY: group is plain data; all-zero is a valid value to be overwritten.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `c` is NUL-terminated, `gr` and `buf` outlive
    // it, and `buf.len()` is its real size.
    let rc =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        Ok(gr.gr_gid)
    } else {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// The effective user id of the process.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Becomes `uid`/`gid` with no supplementary groups. As the new uid is not 0, the kernel clears
/// every capability; glibc applies the change to every thread of the process.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls with integer arguments (setgroups with an empty list).
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setgid(gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(uid) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Registers a port's fd with the tokio reactor for readability (and writability).
///
/// Callers pass an owner that keeps the fd open and returns the same fd for as long as the
/// `AsyncFd` lives (the dataplane's `PortFd` holds an `Arc` to the port that owns it).
pub fn register<T: AsRawFd>(owner: T, writable: bool) -> io::Result<AsyncFd<T>> {
    let base = tokio::io::Interest::READABLE | tokio::io::Interest::ERROR;
    let interest = if writable {
        base | tokio::io::Interest::WRITABLE
    } else {
        base
    };
    // SAFETY: see above: the fd stays open and the same for the AsyncFd's whole life, because
    // `owner` keeps the port (and so its fd) alive and never swaps it.
    unsafe { AsyncFd::register_with_interest(owner, interest) }.map_err(|e| e.into_parts().1)
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
