//! What the demo needs to ping without `ping`: entering a network namespace on the calling
//! thread, and a raw ICMP socket that sends echo requests and waits for the replies.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Moves the calling thread (only it) into the network namespace at `path`
/// (`/var/run/netns/NAME`). Sockets it opens afterwards belong to that namespace.
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: setns with a valid open fd and a namespace type; it affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    !crate::wire::checksum::csum_fold(crate::wire::checksum::csum_add(0, data))
}

/// A raw ICMPv4 socket (needs CAP_NET_RAW).
pub struct IcmpSocket(OwnedFd);

impl IcmpSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> io::Result<IcmpSocket> {
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
        Ok(IcmpSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends one echo request to `dst`.
    pub fn send_echo(&self, dst: Ipv4Addr, id: u16, seq: u16) -> io::Result<()> {
        let mut pkt = [0u8; 64];
        pkt[0] = 8; // echo request
        pkt[4..6].copy_from_slice(&id.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in pkt[8..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(dst).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `pkt` and `addr` are valid for the call and their lengths are given.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the echo reply with `id` and `seq` from `from`.
    pub fn wait_reply(
        &self,
        from: Ipv4Addr,
        id: u16,
        seq: u16,
        timeout: Duration,
    ) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if rc == 0 {
                return Ok(false);
            }
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(e);
            }
            if is_reply(&buf[..n as usize], from, id, seq) {
                return Ok(true);
            }
        }
    }
}

/// Whether an IPv4 packet (as a raw socket delivers it) is the echo reply we wait for.
fn is_reply(p: &[u8], from: Ipv4Addr, id: u16, seq: u16) -> bool {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return false;
    }
    let ihl = (p[0] & 0x0f) as usize * 4;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let Some(icmp) = p.get(ihl..ihl + 8) else {
        return false;
    };
    src == from
        && icmp[0] == 0
        && u16::from_be_bytes([icmp[4], icmp[5]]) == id
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_matching() {
        let mut p = vec![0x45u8; 28];
        p[12..16].copy_from_slice(&[198, 18, 0, 2]);
        p[20] = 0;
        p[24..26].copy_from_slice(&7u16.to_be_bytes());
        p[26..28].copy_from_slice(&3u16.to_be_bytes());
        let from = Ipv4Addr::new(198, 18, 0, 2);
        assert!(is_reply(&p, from, 7, 3));
        assert!(!is_reply(&p, from, 7, 4));
        assert!(!is_reply(&p, Ipv4Addr::new(198, 18, 0, 3), 7, 3));
        p[20] = 8;
        assert!(!is_reply(&p, from, 7, 3), "a request is not a reply");
        assert!(!is_reply(&p[..10], from, 7, 3));
        assert_eq!(checksum(&[0x08, 0, 0, 0]), !0x0800);
    }
}
