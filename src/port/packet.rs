//! `packet:IFNAME` ports: an existing interface (a TAP that QEMU holds, a veth end, a NIC)
//! attached by its kernel side with an AF_PACKET socket, the way the Linux bridge enslaves it.
//!
//! The socket is opened with protocol 0 (it receives nothing yet), gets its options, then is
//! bound to `ETH_P_ALL` on the interface's ifindex only:
//!
//! - `PACKET_IGNORE_OUTGOING`: it never reads back what it sent, nor what the host itself
//!   transmits on the interface (IPv6 DAD, a ping from the host), which a bridge never forwards.
//! - `PACKET_AUXDATA`: the kernel strips 802.1Q/802.1ad tags before packet sockets see a frame;
//!   the tag comes back in the control message and is put back after the MAC addresses.
//! - `PACKET_VNET_HDR` (offload on, the default): every frame read or written carries a
//!   virtio_net_hdr, so GSO frames of up to 64 KiB and partial checksums pass (see
//!   [`crate::offload`]). With offload off, frames are plain; the interface must then not hand
//!   out GSO frames or partial checksums (turn its offloads off, or `vnet_hdr=off` in QEMU).
//! - Promiscuous mode by `PACKET_ADD_MEMBERSHIP` (the kernel drops it when the socket closes).
//! - No `PACKET_QDISC_BYPASS`: tc shaping on the interface applies to what the switch sends.
//!
//! The interface is brought up when attached, never later (an `ip link set X down` stays).
//! When it is down, sends fail with ENETDOWN (the port shows `down` and comes back with the
//! link). When it disappears (QEMU exits, a veth is deleted), [`Port::refresh`] notices and,
//! when an interface of that name appears again, binds the same socket to it: the fd never
//! changes, because the reactor has it registered.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};

use super::{check_ifname, sys, Link, Port, PortKind};
use crate::offload::{VnetHdr, F_NEEDS_CSUM, VNET_HDR_LEN};
use crate::wire::VLAN_TAG_LEN;

/// Bytes of the two MAC addresses, after which a VLAN tag goes.
const MACS_LEN: usize = 12;
/// Reads tried in one `recv` past one-shot socket errors and empty reads.
const RECV_TRIES: usize = 4;

/// Why an interface could not be attached; the text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The interface name is not valid.
    #[error(transparent)]
    BadName(#[from] super::IfnameError),
    /// No such interface.
    #[error("no interface '{0}' in this namespace")]
    NoInterface(String),
    /// Enslaved to a bridge or bond already.
    #[error("interface '{name}' is already a port of '{master}' (a bridge or bond); attaching it too would forward frames twice: detach it first (ip link set {name} nomaster)")]
    HasMaster {
        /// The interface.
        name: String,
        /// Its bridge or bond.
        master: String,
    },
    /// Not root, or no CAP_NET_RAW/CAP_NET_ADMIN.
    #[error("no permission to attach interface '{0}': packet ports need CAP_NET_RAW and CAP_NET_ADMIN (run as root)")]
    Permission(String),
    /// Any other error of the kernel.
    #[error("interface '{0}'")]
    Io(String, #[source] io::Error),
}

/// An interface attached with AF_PACKET; see the module documentation.
#[derive(Debug)]
pub struct PacketPort {
    fd: OwnedFd,
    name: String,
    offload: bool,
    /// The ifindex the socket is bound to; 0 while the interface is gone.
    ifindex: AtomicI32,
    /// The ifindex a re-attach last failed on (so the warning is logged once).
    failed: AtomicI32,
    mtu: AtomicU32,
    mtu_fixed: bool,
}

/// The master (bridge, bond) an interface is enslaved to, if any.
fn master_of(name: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/class/net/{name}/master")).ok()?;
    Some(
        link.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| link.display().to_string()),
    )
}

/// Whether an errno means the interface is down or gone (rather than a bad frame).
fn link_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV)
    )
}

/// Puts a VLAN tag back after the MAC addresses of the frame in `buf[vlen..len]` (`vlen`: the
/// length of the virtio_net_hdr before it, 0 or 10) and fixes that header's offsets. Returns
/// the new length; the frame stays as it is if it is too short or `buf` has no room.
fn insert_vlan_tag(buf: &mut [u8], len: usize, vlen: usize, tpid: u16, tci: u16) -> usize {
    let at = vlen + MACS_LEN;
    if len < at || len + VLAN_TAG_LEN > buf.len() {
        return len;
    }
    buf.copy_within(at..len, at + VLAN_TAG_LEN);
    buf[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
    buf[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
    if vlen == VNET_HDR_LEN {
        if let Ok(mut h) = VnetHdr::parse(buf) {
            if h.flags & F_NEEDS_CSUM != 0 {
                h.csum_start = h.csum_start.saturating_add(VLAN_TAG_LEN as u16);
            }
            if h.hdr_len != 0 {
                h.hdr_len = h.hdr_len.saturating_add(VLAN_TAG_LEN as u16);
            }
            h.write(buf);
        }
    }
    len + VLAN_TAG_LEN
}

impl PacketPort {
    /// Attaches the existing interface `ifname`. `mtu` overrides the interface MTU for the
    /// egress size check; `offload` selects the virtio_net_hdr mode.
    pub fn open(ifname: &str, mtu: Option<u32>, offload: bool) -> Result<PacketPort, PacketError> {
        check_ifname(ifname).map_err(PacketError::BadName)?;
        let name = ifname.to_string();
        let io_err = |e: io::Error| match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => PacketError::Permission(name.clone()),
            Some(libc::ENODEV | libc::ENXIO) => PacketError::NoInterface(name.clone()),
            _ => PacketError::Io(name.clone(), e),
        };
        let ifindex =
            sys::if_index(ifname).ok_or_else(|| PacketError::NoInterface(name.clone()))? as i32;
        if let Some(master) = master_of(ifname) {
            return Err(PacketError::HasMaster { name, master });
        }
        let fd = sys::packet::socket().map_err(io_err)?;
        sys::packet::set_option(&fd, libc::PACKET_IGNORE_OUTGOING, 1).map_err(io_err)?;
        sys::packet::set_option(&fd, libc::PACKET_AUXDATA, 1).map_err(io_err)?;
        if offload {
            sys::packet::set_option(&fd, libc::PACKET_VNET_HDR, 1).map_err(io_err)?;
        }
        // Up before bind: binding to a down interface leaves a pending ENETDOWN on the socket.
        sys::set_if_up(ifname).map_err(io_err)?;
        sys::packet::bind(&fd, ifindex).map_err(io_err)?;
        sys::packet::add_promisc(&fd, ifindex).map_err(io_err)?;
        let _ = sys::packet::take_error(&fd);
        let mtu_now = match mtu {
            Some(m) => m,
            None => sys::if_mtu(ifname).map_err(io_err)?,
        };
        Ok(PacketPort {
            fd,
            name: ifname.to_string(),
            offload,
            ifindex: AtomicI32::new(ifindex),
            failed: AtomicI32::new(0),
            mtu: AtomicU32::new(mtu_now),
            mtu_fixed: mtu.is_some(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Brings the interface up (once, as at attach), binds the same socket to its new ifindex
    /// and puts it back in promiscuous mode.
    fn reattach(&self, ifindex: i32) {
        let warn = |what: &str, e: &dyn std::fmt::Display| {
            if self.failed.swap(ifindex, Relaxed) != ifindex {
                tracing::warn!(interface = %self.name, ifindex, error = %e, "cannot re-attach: {what}");
            }
        };
        if let Some(master) = master_of(&self.name) {
            return warn(
                "it is a port of a bridge or bond now",
                &format!("master {master}"),
            );
        }
        if let Err(e) = sys::set_if_up(&self.name) {
            warn("bringing it up", &e);
        }
        if let Err(e) = sys::packet::bind(&self.fd, ifindex) {
            return warn("bind", &e);
        }
        if let Err(e) = sys::packet::add_promisc(&self.fd, ifindex) {
            warn("promiscuous mode", &e);
        }
        let _ = sys::packet::take_error(&self.fd);
        self.ifindex.store(ifindex, Relaxed);
        self.failed.store(0, Relaxed);
        self.read_mtu();
        tracing::info!(interface = %self.name, ifindex, "interface is back; re-attached");
    }

    fn read_mtu(&self) {
        if self.mtu_fixed {
            return;
        }
        if let Ok(m) = sys::if_mtu(&self.name) {
            self.mtu.store(m, Relaxed);
        }
    }
}

impl Port for PacketPort {
    fn kind(&self) -> PortKind {
        PortKind::Packet
    }

    /// Reads one frame (after its virtio_net_hdr with offload on), its VLAN tag put back. The
    /// last 4 bytes of `buf` are kept for that tag; a frame that does not fit is returned as
    /// `buf.len()` bytes, which the dataplane counts as oversized. A one-shot socket error
    /// (the interface went down or away) is skipped, so the reader neither spins nor ends.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let vlen = self.vnet_hdr_len();
        let Some(room) = buf.len().checked_sub(VLAN_TAG_LEN) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        for _ in 0..RECV_TRIES {
            match sys::packet::recv(&self.fd, &mut buf[..room]) {
                Ok(r) if r.truncated => return Ok(buf.len()),
                Ok(r) if r.len == 0 => continue,
                Ok(r) => {
                    return Ok(match r.vlan {
                        Some(t) => insert_vlan_tag(buf, r.len, vlen, t.tpid, t.tci),
                        None => r.len,
                    })
                }
                Err(e) if link_errno(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// One `send(2)`. A down, deleted or not yet re-attached interface gives ENETDOWN (the port
    /// is down, not gone); a full socket buffer gives `WouldBlock`.
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        match sys::packet::send(&self.fd, frame) {
            Ok(_) => Ok(()),
            Err(e) if link_errno(&e) => Err(io::Error::from_raw_os_error(libc::ENETDOWN)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn mtu(&self) -> u32 {
        self.mtu.load(Relaxed)
    }

    fn vnet_hdr_len(&self) -> usize {
        if self.offload {
            VNET_HDR_LEN
        } else {
            0
        }
    }

    /// Re-reads the MTU; re-attaches when the interface came back under a new ifindex (or the
    /// socket lost it: the kernel unbinds it when the interface is unregistered).
    fn refresh(&self) {
        let Some(now) = sys::if_index(&self.name).map(|i| i as i32) else {
            if self.ifindex.swap(0, Relaxed) != 0 {
                tracing::info!(interface = %self.name, "interface is gone; waiting for it to come back");
            }
            return;
        };
        let bound = sys::packet::bound_ifindex(&self.fd).unwrap_or(-1);
        if bound != now {
            self.reattach(now);
        } else {
            self.read_mtu();
        }
    }

    fn follows_link(&self) -> bool {
        true
    }

    /// Re-attaches a returning interface first ([`Port::refresh`]), then reads its flags:
    /// up with carrier is `Up`; down, without carrier (a veth whose peer is down, a TAP whose
    /// QEMU closed it) or deleted (waiting to come back) is `Down`.
    fn link(&self) -> Option<Link> {
        self.refresh();
        let bound = self.ifindex.load(Relaxed);
        if bound == 0 {
            return Some(Link::Down);
        }
        match sys::netns::if_state(&self.name) {
            Ok(s) if s.up() && sys::if_index(&self.name) == Some(bound as u32) => Some(Link::Up),
            Ok(_) => Some(Link::Down),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENXIO)) => {
                Some(Link::Down)
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::GSO_TCPV4;

    fn frame(payload_len: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + payload_len];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        for (i, b) in f[14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn tag_goes_back_after_the_macs() {
        let f = frame(50);
        let mut buf = f.clone();
        buf.resize(f.len() + 4, 0);
        let n = insert_vlan_tag(&mut buf, f.len(), 0, 0x8100, 0x200a);
        assert_eq!(n, f.len() + 4);
        assert_eq!(&buf[..12], &f[..12]);
        assert_eq!(&buf[12..16], &[0x81, 0x00, 0x20, 0x0a]);
        assert_eq!(&buf[16..n], &f[12..]);
    }

    #[test]
    fn tag_with_vnet_header_shifts_offsets() {
        let f = frame(100);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut buf = vec![0u8; VNET_HDR_LEN + f.len() + 4];
        h.write(&mut buf);
        buf[VNET_HDR_LEN..VNET_HDR_LEN + f.len()].copy_from_slice(&f);
        let len = VNET_HDR_LEN + f.len();
        let n = insert_vlan_tag(&mut buf, len, VNET_HDR_LEN, 0x88a8, 10);
        assert_eq!(n, len + 4);
        let got = VnetHdr::parse(&buf).unwrap();
        assert_eq!(got.csum_start, 38);
        assert_eq!(got.hdr_len, 58);
        assert_eq!(
            (got.flags, got.gso_type, got.gso_size, got.csum_offset),
            (F_NEEDS_CSUM, GSO_TCPV4, 1448, 16)
        );
        let fr = &buf[VNET_HDR_LEN..n];
        assert_eq!(&fr[..12], &f[..12]);
        assert_eq!(&fr[12..16], &[0x88, 0xa8, 0x00, 0x0a]);
        assert_eq!(&fr[16..], &f[12..]);
    }

    #[test]
    fn vnet_header_without_csum_or_hdr_len_keeps_them() {
        let f = frame(20);
        let mut buf = vec![0u8; VNET_HDR_LEN + f.len() + 4];
        let h = VnetHdr {
            csum_start: 7,
            ..VnetHdr::default()
        };
        h.write(&mut buf);
        buf[VNET_HDR_LEN..VNET_HDR_LEN + f.len()].copy_from_slice(&f);
        insert_vlan_tag(&mut buf, VNET_HDR_LEN + f.len(), VNET_HDR_LEN, 0x8100, 1);
        let got = VnetHdr::parse(&buf).unwrap();
        assert_eq!((got.csum_start, got.hdr_len), (7, 0));
    }

    #[test]
    fn no_room_or_runt_is_left_alone() {
        let f = frame(10);
        let mut exact = f.clone();
        assert_eq!(insert_vlan_tag(&mut exact, f.len(), 0, 0x8100, 1), f.len());
        assert_eq!(exact, f);
        let mut runt = vec![0u8; 20];
        assert_eq!(insert_vlan_tag(&mut runt, 8, 0, 0x8100, 1), 8);
    }

    #[test]
    fn link_errors_are_recognised() {
        assert!(link_errno(&io::Error::from_raw_os_error(libc::ENXIO)));
        assert!(link_errno(&io::Error::from_raw_os_error(libc::ENETDOWN)));
        assert!(!link_errno(&io::Error::from_raw_os_error(libc::EINVAL)));
    }

    #[test]
    fn missing_interface_is_reported_by_name() {
        let e = PacketPort::open("no-such-if-xy", None, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no interface 'no-such-if-xy' in this namespace"
        );
        assert!(matches!(
            PacketPort::open("a/b", None, true),
            Err(PacketError::BadName(_))
        ));
    }
}
