//! Socket calls for `vxlan` ports: the raw UDP socket that sends (so each packet can carry its
//! own UDP source port), its reject-all receive filter, `sendmsg` of header + frame, the
//! receive buffer size of the listening UDP socket, and the underlay MTU (of the route to a
//! remote, or of the interface holding the local address). Every block says why it is sound.
#![allow(
    unsafe_code,
    reason = "the syscall wrappers: every unsafe block of the crate, each with its SAFETY comment"
)]

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is one int that lives across the call; its size is passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

fn get_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes for the call and `len` is value's size.
    check(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// A socket address in the kernel's layout, with its length.
fn sockaddr(ip: IpAddr, port: u16) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for any sockaddr_*.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Opens the sending socket of a `vxlan` port: `socket(AF_INET[6], SOCK_RAW, IPPROTO_UDP)`
/// bound to `local`, non-blocking. The switch writes the UDP header (so the source port can
/// follow each inner flow, as Linux's VXLAN does); the kernel adds the IP header, routes,
/// fragments when the path MTU asks for it, and over IPv6 computes the UDP checksum
/// (`IPV6_CHECKSUM` at offset 6; over IPv4 the checksum is left 0, as RFC 7348 advises).
/// `ttl` and `tos` set the outer hop limit and TOS/traffic class. A raw socket would also get a
/// copy of every UDP packet to `local`: a filter that rejects everything keeps its receive
/// queue empty. Needs CAP_NET_RAW.
pub fn raw_udp_socket(local: IpAddr, ttl: Option<u8>, tos: Option<u8>) -> io::Result<OwnedFd> {
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    // Reject everything on receive: `ret #0`.
    let mut prog = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points to one valid instruction; both live across the call, and the
    // kernel copies the program.
    check(unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })?;
    let (sa, len) = sockaddr(local, 0);
    // SAFETY: `sa` holds a valid sockaddr of `len` bytes for the call.
    check(unsafe { libc::bind(raw, (&sa as *const libc::sockaddr_storage).cast(), len) })?;
    if local.is_ipv4() {
        if let Some(t) = ttl {
            set_int(raw, libc::IPPROTO_IP, libc::IP_TTL, t.into())?;
        }
        if let Some(t) = tos {
            set_int(raw, libc::IPPROTO_IP, libc::IP_TOS, t.into())?;
        }
    } else {
        set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, 6)?;
        if let Some(t) = ttl {
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, t.into())?;
        }
        if let Some(t) = tos {
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, t.into())?;
        }
    }
    Ok(fd)
}

/// Sends `head` then `frame` as one datagram to `to` (`sendmsg`, two iovecs, no copy in
/// userspace), without blocking.
pub fn send_to(fd: &OwnedFd, to: IpAddr, head: &[u8], frame: &[u8]) -> io::Result<()> {
    // Port 0: a raw socket takes its protocol from the socket, never from the address.
    let (mut sa, len) = sockaddr(to, 0);
    let mut iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        },
    ];
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sa as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = len;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    // SAFETY: every pointer in `msg` (address, iovecs and the buffers they point to) is valid
    // for the call; the kernel only reads the buffers.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Most datagrams one [`recv_batch`] reads.
pub const MAX_BATCH: usize = 64;

/// One datagram of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes written to its buffer.
    pub len: usize,
    /// It was longer than its buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// Its sender's address.
    pub from: Option<IpAddr>,
}

/// Reads up to `min(bufs.len(), out.len(), MAX_BATCH)` datagrams with one `recvmmsg`, without
/// blocking, each into `bufs[i][at..]`; fills `out` and returns how many it read (`WouldBlock`
/// if none was waiting).
pub fn recv_batch(
    sock: &UdpSocket,
    bufs: &mut [crate::buf::PageBuf],
    at: usize,
    out: &mut [Datagram],
) -> io::Result<usize> {
    let n = bufs.len().min(out.len()).min(MAX_BATCH);
    // SAFETY: iovec, sockaddr_storage and mmsghdr are plain data; all-zero values are valid.
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut names: [libc::sockaddr_storage; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        let area = bufs[i].get_mut(at..).unwrap_or_default();
        iov[i] = libc::iovec {
            iov_base: area.as_mut_ptr().cast(),
            iov_len: area.len(),
        };
        let h = &mut msgs[i].msg_hdr;
        h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &mut iov[i];
        h.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..n]` point to `n` iovecs and addresses that live across the call, and each
    // iovec to a distinct buffer area valid for writes of its length; the kernel writes at most
    // that much and sets msg_len, msg_flags and msg_namelen.
    let got = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for i in 0..got {
        let h = &msgs[i].msg_hdr;
        out[i] = Datagram {
            len: msgs[i].msg_len as usize,
            truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            from: sockaddr_ip(&names[i]),
        };
    }
    Ok(got)
}

/// The IP address in a socket address the kernel filled in.
fn sockaddr_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::from(sin6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

/// Asks for a receive buffer of `bytes` (beyond `rmem_max` when the process may, as root
/// can), so a burst of tunnel packets is not dropped before the switch reads it.
pub fn set_rcvbuf(sock: &UdpSocket, bytes: usize) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let n = bytes.min(i32::MAX as usize) as libc::c_int;
    set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, n)
        .or_else(|_| set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, n))
}

/// The IP MTU of the route from `local` to `remote` (`IP_MTU`/`IPV6_MTU` of a connected UDP
/// socket: the device MTU, or a smaller path MTU the kernel learnt).
pub fn path_mtu(local: IpAddr, remote: IpAddr) -> io::Result<u32> {
    let s = UdpSocket::bind(SocketAddr::new(local, 0))?;
    s.connect(SocketAddr::new(remote, crate::vxlan::wire::DEFAULT_PORT))?;
    let v = if remote.is_ipv4() {
        get_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU)?
    } else {
        get_int(s.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU)?
    };
    Ok(v.max(0) as u32)
}

/// The name of the interface that holds `local`, if any (`getifaddrs`).
pub fn interface_of(local: IpAddr) -> io::Result<Option<String>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes one pointer, which `head` is valid for.
    check(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        let addr = ifa.ifa_addr;
        if !addr.is_null() {
            // SAFETY: `addr` points to a sockaddr whose family says which layout follows; we
            // read the larger layouts only for their own families.
            let ip = unsafe {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                }
            };
            if ip == Some(local) && !ifa.ifa_name.is_null() {
                // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                found = Some(name.to_string_lossy().into_owned());
                break;
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; nothing points into it any more.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_interface_and_a_path() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(interface_of(lo).unwrap().as_deref(), Some("lo"));
        let mtu = path_mtu(lo, lo).unwrap();
        assert!(mtu >= 1500, "{mtu}");
        assert_eq!(
            interface_of("198.51.100.77".parse().unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn a_batch_of_datagrams_with_their_senders() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut bufs: Vec<_> = (0..4).map(|_| crate::buf::PageBuf::new(64)).collect();
        let mut out = [Datagram::default(); 4];
        let e = recv_batch(&rx, &mut bufs, 2, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for p in [&b"one"[..], b"two!", &[7u8; 100]] {
            tx.send_to(p, rx.local_addr().unwrap()).unwrap();
        }
        let n = recv_batch(&rx, &mut bufs, 2, &mut out).unwrap();
        assert_eq!(n, 3);
        let lo = Some("127.0.0.1".parse().unwrap());
        assert_eq!(
            out[0],
            Datagram {
                len: 3,
                truncated: false,
                from: lo
            }
        );
        assert_eq!(&bufs[0][2..5], b"one");
        assert_eq!(&bufs[1][2..6], b"two!");
        assert_eq!(
            out[2],
            Datagram {
                len: 62,
                truncated: true,
                from: lo
            }
        );
    }

    #[test]
    fn sockaddr_layouts() {
        let (sa, len) = sockaddr("198.18.0.1".parse().unwrap(), 4789);
        assert_eq!(len as usize, size_of::<libc::sockaddr_in>());
        assert_eq!(sa.ss_family, libc::AF_INET as libc::sa_family_t);
        let (sa, len) = sockaddr("2001:2::1".parse().unwrap(), 4789);
        assert_eq!(len as usize, size_of::<libc::sockaddr_in6>());
        assert_eq!(sa.ss_family, libc::AF_INET6 as libc::sa_family_t);
    }
}
