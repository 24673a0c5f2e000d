//! IPv6 neighbour discovery (RFC 4861): neighbour solicitations and advertisements, as
//! ARP/ND suppression ([`crate::neigh`]) reads them and the advertisement the switch writes
//! when it answers a solicitation for a known neighbour. A message counts only if it is valid
//! as RFC 4861 section 7.1 says: ICMPv6 right after the IPv6 header (as the Linux bridge's
//! `br_is_nd_neigh_msg` reads it), hop limit 255, code 0, the ICMPv6 checksum right, and
//! options of non-zero length.

use std::net::Ipv6Addr;

use super::checksum::{csum_add, csum_fold, pseudo};
use super::ip::Ipv6View;
use super::{MacAddr, WireError, IPPROTO_ICMPV6};

/// ICMPv6 type of a neighbour solicitation.
pub const ND_NS: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const ND_NA: u8 = 136;
/// Option: source link-layer address.
pub const OPT_SLLA: u8 = 1;
/// Option: target link-layer address.
pub const OPT_TLLA: u8 = 2;
/// The EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The length of the advertisement [`write_na`] writes, from the IPv6 header on.
pub const NA_LEN: usize = 40 + 24 + 8;

/// A neighbour solicitation or advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdMessage {
    /// A solicitation (else an advertisement).
    pub solicitation: bool,
    /// The IPv6 source (`::` for duplicate address detection).
    pub src: Ipv6Addr,
    /// The IPv6 destination.
    pub dst: Ipv6Addr,
    /// The target address.
    pub target: Ipv6Addr,
    /// The source link-layer address option of a solicitation, the target link-layer
    /// address option of an advertisement.
    pub lladdr: Option<MacAddr>,
    /// Advertisement flags R, S, O.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: override.
    pub override_: bool,
    /// The 4-bit priority of the first byte (`ipv6hdr.priority`).
    pub priority: u8,
}

/// Whether `b` (an IPv6 packet) could be a neighbour solicitation or advertisement: the
/// cheap test the frame path makes before [`parse`].
pub fn maybe_nd(b: &[u8]) -> bool {
    b.len() >= 41 && b[0] >> 4 == 6 && b[6] == IPPROTO_ICMPV6 && matches!(b[40], ND_NS | ND_NA)
}

/// Reads a neighbour solicitation or advertisement from an IPv6 packet; anything else (or an
/// invalid one) is an error.
pub fn parse(b: &[u8]) -> Result<NdMessage, WireError> {
    let ip = Ipv6View::new_checked(b)?;
    if ip.next_header() != IPPROTO_ICMPV6 {
        return Err(WireError::Malformed("nd: not ICMPv6"));
    }
    if ip.hop_limit() != 255 {
        return Err(WireError::Malformed("nd: hop limit"));
    }
    let icmp = ip.payload();
    if icmp.len() < 24 {
        return Err(WireError::Truncated("nd"));
    }
    let (ty, code) = (icmp[0], icmp[1]);
    if !matches!(ty, ND_NS | ND_NA) || code != 0 {
        return Err(WireError::Malformed("nd: not NS/NA"));
    }
    let sum = csum_add(pseudo(b, true, IPPROTO_ICMPV6, icmp.len()), icmp);
    if csum_fold(sum) != 0xffff {
        return Err(WireError::BadChecksum("nd"));
    }
    let want = if ty == ND_NS { OPT_SLLA } else { OPT_TLLA };
    let mut lladdr = None;
    let mut opts = &icmp[24..];
    while opts.len() >= 2 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return Err(WireError::Malformed("nd option length"));
        }
        if opts[0] == want && len == 8 && lladdr.is_none() {
            let mut m = [0u8; 6];
            m.copy_from_slice(&opts[2..8]);
            lladdr = Some(MacAddr(m));
        }
        opts = &opts[len..];
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&icmp[8..24]);
    Ok(NdMessage {
        solicitation: ty == ND_NS,
        src: ip.src(),
        dst: ip.dst(),
        target: Ipv6Addr::from(t),
        lladdr,
        router: ty == ND_NA && icmp[4] & 0x80 != 0,
        solicited: ty == ND_NA && icmp[4] & 0x40 != 0,
        override_: ty == ND_NA && icmp[4] & 0x20 != 0,
        priority: b[0] & 0x0f,
    })
}

/// Writes the advertisement answering solicitation `ns`, as the Linux bridge's `br_nd_send`
/// builds it: from `target_mac` (Ethernet source and target link-layer address option) for
/// `ns.target`, to the solicitation's source address, at `dst_mac` (the solicitation's
/// source link-layer address option, or its Ethernet source); solicited and override set,
/// router as given; hop limit 255 and the solicitation's priority. `tag` is a VLAN tag (TPID,
/// TCI). Returns the frame's length, or `None` if `out` is too short.
pub fn write_na(
    out: &mut [u8],
    ns: &NdMessage,
    target_mac: MacAddr,
    dst_mac: MacAddr,
    router: bool,
    tag: Option<(u16, u16)>,
) -> Option<usize> {
    let l2 = super::arp::write_eth_header(out, dst_mac, target_mac, tag, ETHERTYPE_IPV6)?;
    let p = out.get_mut(l2..l2 + NA_LEN)?;
    p.fill(0);
    p[0] = 0x60 | (ns.priority & 0x0f);
    p[4..6].copy_from_slice(&((NA_LEN - 40) as u16).to_be_bytes());
    p[6] = IPPROTO_ICMPV6;
    p[7] = 255;
    p[8..24].copy_from_slice(&ns.target.octets());
    p[24..40].copy_from_slice(&ns.src.octets());
    let icmp = &mut p[40..];
    icmp[0] = ND_NA;
    icmp[4] = 0x40 | 0x20 | if router { 0x80 } else { 0 };
    icmp[8..24].copy_from_slice(&ns.target.octets());
    icmp[24] = OPT_TLLA;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&target_mac.0);
    let sum = csum_add(pseudo(p, true, IPPROTO_ICMPV6, NA_LEN - 40), &p[40..]);
    let c = !csum_fold(sum);
    p[42..44].copy_from_slice(&c.to_be_bytes());
    Some(l2 + NA_LEN)
}
