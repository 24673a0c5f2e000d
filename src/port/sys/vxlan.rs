//! Socket calls for `vxlan` ports: the UDP sockets that send (one per source port, with a
//! reject-all receive filter), `sendmsg`/`sendmmsg` of datagrams and of UDP GSO batches
//! (`UDP_SEGMENT`), the listening socket's `UDP_GRO`, receive buffer size and batched reads,
//! and the underlay MTU (of the route to a remote, or of the interface holding the local
//! address). Every block says why it is sound.
#![allow(
    unsafe_code,
    reason = "the syscall wrappers: every unsafe block of the crate, each with its SAFETY comment"
)]

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

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

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send, as a socket option or a
/// `SOL_UDP` control message of `sendmsg`.
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (linux/udp.h): a socket option that lets the kernel hand coalesced datagrams of a
/// flow to `recvmsg` at once, with a `SOL_UDP` control message giving their size.
const UDP_GRO: libc::c_int = 104;

/// Opens one sending socket of a `vxlan` port: a plain UDP socket bound to `local`:`port`,
/// non-blocking. Why UDP and not a raw socket: only a UDP socket can send a GSO batch
/// (`UDP_SEGMENT`, handled in `udp_sendmsg`; a raw socket's `raw_sendmsg` has no such option),
/// and it needs no CAP_NET_RAW. The kernel writes the UDP header (source port: the socket's),
/// the IP header, routes and fragments. `no_check` (IPv4 only): the UDP checksum is sent as 0
/// (`SO_NO_CHECK`), as RFC 7348 advises and Linux's `noudpcsum` does; a UDP GSO send needs it
/// on (`udp_send_skb` refuses `sk_no_check_tx` with EINVAL), which costs nothing where the
/// device offloads it (veth, NICs). `shared`: `SO_REUSEPORT`, so a flow's GSO socket and
/// its plain one share the source port. `ttl` and `tos` set the outer hop limit and
/// TOS/traffic class. The socket never receives: a filter that rejects everything keeps its
/// receive queue empty.
pub fn udp_send_socket(
    local: IpAddr,
    port: u16,
    ttl: Option<u8>,
    tos: Option<u8>,
    no_check: bool,
    shared: bool,
) -> io::Result<UdpSocket> {
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh UDP socket descriptor that nothing else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    if shared {
        set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if no_check && local.is_ipv4() {
        set_int(fd, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1)?;
    }
    let (sa, len) = sockaddr(local, port);
    // SAFETY: `sa` holds a valid sockaddr of `len` bytes for the call.
    check(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_storage).cast(), len) })?;
    let raw = sock.as_raw_fd();
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
    if local.is_ipv4() {
        if let Some(t) = ttl {
            set_int(raw, libc::IPPROTO_IP, libc::IP_TTL, t.into())?;
        }
        if let Some(t) = tos {
            set_int(raw, libc::IPPROTO_IP, libc::IP_TOS, t.into())?;
        }
    } else {
        if let Some(t) = ttl {
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, t.into())?;
        }
        if let Some(t) = tos {
            set_int(raw, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, t.into())?;
        }
    }
    Ok(sock)
}

/// Most remotes one [`send_each`] call hands the kernel at once.
pub const MAX_DESTS: usize = 64;

/// Room for one `UDP_SEGMENT` control message (a u16 value).
// SAFETY: CMSG_SPACE only computes a size from its argument.
const SEG_CMSG_SPACE: usize = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf<const N: usize>([u8; N]);

/// Sends the UDP payload made of `parts` (concatenated, no copy) to each of `to` with one
/// `sendmmsg` per [`MAX_DESTS`] remotes, without blocking. With `seg` shorter than the payload
/// it is a UDP GSO send: the kernel cuts the payload into datagrams of `seg` bytes (the last
/// may be shorter), each with its own UDP and IP header, segmented as late as the device
/// allows (never, toward a veth or a NIC with UDP segmentation offload). Calls
/// `done(i, result)` once for each remote `to[i]`.
pub fn send_each(
    sock: &UdpSocket,
    to: &[IpAddr],
    dport: u16,
    parts: &[&[u8]],
    seg: usize,
    done: &mut dyn FnMut(usize, io::Result<()>),
) {
    const PARTS: usize = 4;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let gso = seg > 0 && seg < total;
    let Ok(seg16) = u16::try_from(seg) else {
        for i in 0..to.len() {
            done(i, Err(io::Error::from_raw_os_error(libc::EMSGSIZE)));
        }
        return;
    };
    if parts.len() > PARTS {
        for i in 0..to.len() {
            done(i, Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        return;
    }
    // SAFETY: iovec is plain data; all-zero is a valid value.
    let mut iov: [libc::iovec; PARTS] = unsafe { std::mem::zeroed() };
    for (v, p) in iov.iter_mut().zip(parts) {
        *v = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
    }
    let mut cmsg = CmsgBuf([0u8; SEG_CMSG_SPACE]);
    if gso {
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_control = cmsg.0.as_mut_ptr().cast();
        m.msg_controllen = SEG_CMSG_SPACE;
        // SAFETY: `m` points to a control buffer of SEG_CMSG_SPACE bytes, aligned for
        // cmsghdr, which has room for one header and a u16: CMSG_FIRSTHDR returns its start
        // (non-null, as msg_controllen covers a header) and CMSG_DATA a pointer inside it;
        // the u16 is written unaligned.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg16);
        }
    }
    let mut i = 0;
    while i < to.len() {
        let n = (to.len() - i).min(MAX_DESTS);
        // SAFETY: sockaddr_storage and mmsghdr are plain data; all-zero values are valid.
        let mut names: [libc::sockaddr_storage; MAX_DESTS] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_DESTS] = unsafe { std::mem::zeroed() };
        for k in 0..n {
            let (sa, len) = sockaddr(to[i + k], dport);
            names[k] = sa;
            let h = &mut msgs[k].msg_hdr;
            h.msg_name = (&mut names[k] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = len;
            h.msg_iov = iov.as_mut_ptr();
            h.msg_iovlen = parts.len();
            if gso {
                h.msg_control = cmsg.0.as_mut_ptr().cast();
                h.msg_controllen = SEG_CMSG_SPACE;
            }
        }
        // SAFETY: `msgs[..n]` point to addresses, iovecs and a control buffer that live across
        // the call; the iovecs point to `parts`, valid for reads of their lengths; the kernel
        // only reads them and writes each msg_len.
        let sent = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent <= 0 {
            // the first of these failed: it is counted, the next ones are tried again
            let e = if sent < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::from_raw_os_error(libc::EAGAIN)
            };
            done(i, Err(e));
            i += 1;
            continue;
        }
        let sent = (sent as usize).min(n);
        for k in 0..sent {
            done(i + k, Ok(()));
        }
        i += sent;
    }
}

/// Turns on `UDP_GRO` for a receiving socket: the kernel may hand several datagrams of one
/// flow to one read, back to back, with their size in a control message ([`recv_batch`]
/// reads it into [`Datagram::seg`]). A UDP GSO send that crossed a veth whole arrives so,
/// never cut.
pub fn set_udp_gro(sock: &UdpSocket) -> io::Result<()> {
    set_int(sock.as_raw_fd(), libc::SOL_UDP, UDP_GRO, 1)
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
    /// With `UDP_GRO` on ([`set_udp_gro`]): the size of each of the datagrams of one flow the
    /// kernel coalesced into this one read (the last may be shorter); 0 for a single datagram.
    pub seg: usize,
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
    let mut cmsgs = [const { CmsgBuf([0u8; GRO_CMSG_SPACE]) }; MAX_BATCH];
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
        h.msg_control = cmsgs[i].0.as_mut_ptr().cast();
        h.msg_controllen = GRO_CMSG_SPACE;
    }
    // SAFETY: `msgs[..n]` point to `n` iovecs, addresses and control buffers that live across
    // the call, and each iovec to a distinct buffer area valid for writes of its length; the
    // kernel writes at most that much (and at most msg_controllen bytes of control messages)
    // and sets msg_len, msg_flags, msg_namelen and msg_controllen.
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
            seg: gro_size(h),
        };
    }
    Ok(got)
}

/// Room for the control messages a `UDP_GRO` socket's read may carry (the segment size, an
/// int; room to spare for one more the kernel might add).
// SAFETY: CMSG_SPACE only computes a size from its argument.
const GRO_CMSG_SPACE: usize =
    2 * unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;

/// The segment size in a read's `UDP_GRO` control message, 0 if it has none.
fn gro_size(h: &libc::msghdr) -> usize {
    if h.msg_control.is_null() || h.msg_controllen == 0 {
        return 0;
    }
    // SAFETY: the kernel filled `msg_controllen` bytes of the control buffer `h` points to
    // (aligned for cmsghdr) with well-formed control messages; CMSG_FIRSTHDR and CMSG_NXTHDR
    // walk them within that length and return null past the end. A message's data is read
    // only when its length covers an int, unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP
                && (*c).cmsg_type == UDP_GRO
                && (*c).cmsg_len >= libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return v.max(0) as usize;
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
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
                from: lo,
                seg: 0
            }
        );
        assert_eq!(&bufs[0][2..5], b"one");
        assert_eq!(&bufs[1][2..6], b"two!");
        assert_eq!(
            out[2],
            Datagram {
                len: 62,
                truncated: true,
                from: lo,
                seg: 0
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
