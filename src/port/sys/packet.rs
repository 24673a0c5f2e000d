//! AF_PACKET socket calls for `packet:` ports: socket, options, bind, promiscuous membership,
//! `recvmsg` with `PACKET_AUXDATA`, `send`. Every block says why it is sound.
#![allow(
    unsafe_code,
    reason = "the syscall wrappers: every unsafe block of the crate, each with its SAFETY comment"
)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A VLAN tag the kernel took off a received frame (reported in `PACKET_AUXDATA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

/// What one `recvmsg` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The packet was longer than the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// The tag to put back after the MAC addresses, if the kernel stripped one.
    pub vlan: Option<VlanTag>,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`: protocol 0, so it receives
/// nothing until [`bind`] names a protocol and an interface.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets an integer `SOL_PACKET` option (`PACKET_IGNORE_OUTGOING`, `PACKET_AUXDATA`,
/// `PACKET_VNET_HDR`).
pub fn set_option(fd: &OwnedFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is one int that lives across the call; its size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// Binds the socket to all protocols (`ETH_P_ALL`) on one interface. Binding again moves the
/// same socket to another interface.
pub fn bind(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as libc::c_ushort;
    sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sa.sll_ifindex = ifindex;
    // SAFETY: `sa` is a valid sockaddr_ll for the whole call and its exact size is passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
}

/// The ifindex the socket is bound to now: the kernel sets it to -1 when the interface is
/// unregistered (deleted, or moved to another namespace).
pub fn bound_ifindex(fd: &OwnedFd) -> io::Result<i32> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `sa`, which lives across the call.
    check(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    })?;
    Ok(sa.sll_ifindex)
}

/// Reads and clears the socket's pending error (`SO_ERROR`): binding to an interface that is
/// down leaves ENETDOWN there, which the next `send` would otherwise return.
pub fn take_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (one int) into `err`, which lives across
    // the call.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// Puts the interface in promiscuous mode for as long as the socket is open (or until the
/// interface is unregistered): `PACKET_ADD_MEMBERSHIP` with `PACKET_MR_PROMISC`.
pub fn add_promisc(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: packet_mreq is plain old data; all-zero is valid.
    let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mr.mr_ifindex = ifindex;
    mr.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
    // SAFETY: the option value is one packet_mreq that lives across the call; its size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mr as *const libc::packet_mreq).cast(),
            size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    })
}

/// Room for one `tpacket_auxdata` control message (CMSG_SPACE(20) = 40 on 64-bit), with
/// spare; u64 elements keep it aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 8;

/// Reads one packet into `buf` with `recvmsg`, and the VLAN tag the kernel stripped, if any.
/// The control buffer lives on the stack: nothing is allocated.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no iovecs yet).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points to one iovec covering `buf` (valid for writes of its length) and to
    // `control` (valid for writes of `msg_controllen` bytes); all live across the call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut vlan = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR only walk within
    // `msg_control[..msg_controllen]`, which the kernel wrote and which is still alive.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null pointer from CMSG_FIRSTHDR/NXTHDR points to a whole cmsghdr inside
        // `control`; read_unaligned makes no alignment assumption.
        let hdr = unsafe { std::ptr::read_unaligned(cmsg) };
        let data_len = (hdr.cmsg_len as usize).saturating_sub(
            // SAFETY: CMSG_LEN is a pure computation.
            unsafe { libc::CMSG_LEN(0) } as usize,
        );
        if hdr.cmsg_level == libc::SOL_PACKET
            && hdr.cmsg_type == libc::PACKET_AUXDATA
            && data_len >= size_of::<libc::tpacket_auxdata>()
        {
            // SAFETY: the message carries at least size_of::<tpacket_auxdata>() data bytes
            // (checked above) within `control`; read_unaligned makes no alignment assumption.
            let aux = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::tpacket_auxdata>())
            };
            if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.tp_vlan_tpid
                } else {
                    libc::ETH_P_8021Q as u16
                };
                vlan = Some(VlanTag {
                    tpid,
                    tci: aux.tp_vlan_tci,
                });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR above; returns null after the last message.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(Received {
        len: n as usize,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        vlan,
    })
}

/// Sends one packet with one `send(2)` on the bound socket.
pub fn send(fd: &OwnedFd, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the whole call.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_buffer_fits_auxdata() {
        // SAFETY: CMSG_SPACE is a pure computation.
        let need = unsafe { libc::CMSG_SPACE(size_of::<libc::tpacket_auxdata>() as u32) };
        assert!(need as usize <= CONTROL_WORDS * 8);
    }
}
