//! ARP for IPv4 over Ethernet (RFC 826): a checked view of the 28-byte message, and the reply
//! the switch writes when it answers a request for a known neighbour (ARP/ND suppression,
//! [`crate::neigh`]). Other hardware or protocol types are not this view's (`new_checked`
//! refuses them), as the Linux bridge's `br_do_proxy_suppress_arp` ignores them.

use std::net::Ipv4Addr;

use super::{be16, MacAddr, WireError};

/// `ar_op` of a request.
pub const ARP_REQUEST: u16 = 1;
/// `ar_op` of a reply.
pub const ARP_REPLY: u16 = 2;
/// `ar_op` of a RARP request.
pub const RARP_REQUEST: u16 = 3;
/// `ar_op` of a RARP reply.
pub const RARP_REPLY: u16 = 4;
/// The length of an Ethernet/IPv4 ARP message.
pub const ARP_LEN: usize = 28;
/// The EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A checked Ethernet/IPv4 ARP message (the bytes after the Ethernet header and tag).
#[derive(Clone, Copy, Debug)]
pub struct ArpView<'a> {
    b: &'a [u8],
}

impl<'a> ArpView<'a> {
    /// Hardware type 1 (Ethernet) with 6-byte addresses, protocol 0x0800 with 4-byte ones,
    /// and the 28 bytes that makes; trailing padding is allowed.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < ARP_LEN {
            return Err(WireError::Truncated("arp"));
        }
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Malformed("arp: not Ethernet/IPv4"));
        }
        Ok(ArpView { b })
    }

    /// `ar_op`.
    pub fn op(&self) -> u16 {
        be16(self.b, 6)
    }

    fn mac(&self, at: usize) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.b[at..at + 6]);
        MacAddr(m)
    }

    fn ip(&self, at: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.b[at], self.b[at + 1], self.b[at + 2], self.b[at + 3])
    }

    /// Sender hardware address.
    pub fn sha(&self) -> MacAddr {
        self.mac(8)
    }

    /// Sender protocol address.
    pub fn spa(&self) -> Ipv4Addr {
        self.ip(14)
    }

    /// Target hardware address.
    pub fn tha(&self) -> MacAddr {
        self.mac(18)
    }

    /// Target protocol address.
    pub fn tpa(&self) -> Ipv4Addr {
        self.ip(24)
    }
}

/// Writes the reply to a request as the Linux bridge's `br_arp_send` builds it: from
/// `target_mac` (the neighbour's MAC, also the Ethernet source) that `target_ip` is at
/// `target_mac`, to `req_mac`/`req_ip` (the request's sender; also the Ethernet
/// destination). `tag` is a VLAN tag (TPID, TCI) to put after the MAC addresses. Returns the
/// frame's length, or `None` if `out` is too short (at least 46 bytes are needed).
pub fn write_reply(
    out: &mut [u8],
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
    req_mac: MacAddr,
    req_ip: Ipv4Addr,
    tag: Option<(u16, u16)>,
) -> Option<usize> {
    let l2 = write_eth_header(out, req_mac, target_mac, tag, ETHERTYPE_ARP)?;
    let a = out.get_mut(l2..l2 + ARP_LEN)?;
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&ARP_REPLY.to_be_bytes());
    a[8..14].copy_from_slice(&target_mac.0);
    a[14..18].copy_from_slice(&target_ip.octets());
    a[18..24].copy_from_slice(&req_mac.0);
    a[24..28].copy_from_slice(&req_ip.octets());
    Some(l2 + ARP_LEN)
}

/// Writes an Ethernet header (with a VLAN tag (TPID, TCI) when given) at the start of `out`;
/// returns its length, or `None` if `out` is shorter.
pub fn write_eth_header(
    out: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    tag: Option<(u16, u16)>,
    ethertype: u16,
) -> Option<usize> {
    let len = if tag.is_some() { 18 } else { 14 };
    let h = out.get_mut(..len)?;
    h[0..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    if let Some((tpid, tci)) = tag {
        h[12..14].copy_from_slice(&tpid.to_be_bytes());
        h[14..16].copy_from_slice(&tci.to_be_bytes());
    }
    h[len - 2..len].copy_from_slice(&ethertype.to_be_bytes());
    Some(len)
}
