//! IPv4 and IPv6 headers as far as multicast snooping needs them, on top of smoltcp's views.
//!
//! - [`Ipv4View`]: `smoltcp::wire::Ipv4Packet` checked the way Linux's `ip_mc_check_iphdr`
//!   checks it (version 4, header length, total length within the bytes, header checksum),
//!   plus the options walk that finds Router Alert (RFC 2113, option 148 = 0x94).
//! - [`Ipv6View`]: `smoltcp::wire::Ipv6Packet` checked as `ipv6_mc_check_ip6hdr` does, plus
//!   the extension-header walk of `ipv6_mc_check_exthdrs` / `ipv6_skip_exthdr`: MLD is only
//!   looked for when the first header is hop-by-hop; its options are read with
//!   `smoltcp::wire::Ipv6HopByHopHeader` for Router Alert (RFC 2711, value 0 = MLD).

use std::net::{Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{Ipv4Packet, Ipv6ExtHeader, Ipv6HopByHopHeader, Ipv6Packet};

use super::WireError;

/// IPv4 option type of Router Alert (copied flag + number 20).
pub const IPOPT_RA: u8 = 0x94;
/// IPv6 hop-by-hop option type of Router Alert.
pub const IPV6_TLV_ROUTERALERT: u8 = 5;

/// A checked IPv4 header over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4View<'a> {
    bytes: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    /// Checks version, lengths and the header checksum.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.first().map(|b| b >> 4) != Some(4) {
            return Err(if bytes.is_empty() {
                WireError::Truncated("ipv4")
            } else {
                WireError::Malformed("ipv4 version")
            });
        }
        let pkt = Ipv4Packet::new_checked(bytes).map_err(|_| WireError::Truncated("ipv4"))?;
        if !pkt.verify_checksum() {
            return Err(WireError::BadChecksum("ipv4 header"));
        }
        Ok(Ipv4View { bytes })
    }

    fn pkt(&self) -> Ipv4Packet<&'a [u8]> {
        Ipv4Packet::new_unchecked(self.bytes)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        self.pkt().src_addr()
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        self.pkt().dst_addr()
    }

    /// Protocol number of the payload.
    pub fn protocol(&self) -> u8 {
        self.pkt().next_header().into()
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.pkt().hop_limit()
    }

    /// The payload, up to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        self.pkt().payload()
    }

    /// The option bytes between the fixed header and the payload.
    pub fn options(&self) -> &'a [u8] {
        &self.bytes[20..usize::from(self.pkt().header_len())]
    }

    /// Whether the options carry Router Alert.
    pub fn router_alert(&self) -> bool {
        let mut opts = self.options();
        while let Some(&kind) = opts.first() {
            match kind {
                0 => return false, // end of options
                1 => opts = &opts[1..],
                _ => {
                    let Some(&len) = opts.get(1) else {
                        return false;
                    };
                    let len = usize::from(len);
                    if len < 2 || len > opts.len() {
                        return false;
                    }
                    if kind == IPOPT_RA {
                        return true;
                    }
                    opts = &opts[len..];
                }
            }
        }
        false
    }
}

/// A checked IPv6 header over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6View<'a> {
    bytes: &'a [u8],
}

/// The upper-layer header found after a hop-by-hop header (see [`Ipv6View::upper_layer`]).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Upper<'a> {
    /// Next-header number of the upper layer.
    pub protocol: u8,
    /// Its bytes, up to the end of the IPv6 payload.
    pub payload: &'a [u8],
    /// Whether the hop-by-hop header carried Router Alert with value 0 (MLD).
    pub router_alert_mld: bool,
}

/// At most this many extension headers are walked (a chain longer than this is malformed).
const MAX_EXT_HEADERS: usize = 16;

impl<'a> Ipv6View<'a> {
    /// Checks version and that the payload length is within the bytes and not zero.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.first().map(|b| b >> 4) != Some(6) {
            return Err(if bytes.is_empty() {
                WireError::Truncated("ipv6")
            } else {
                WireError::Malformed("ipv6 version")
            });
        }
        let pkt = Ipv6Packet::new_checked(bytes).map_err(|_| WireError::Truncated("ipv6"))?;
        if pkt.payload_len() == 0 {
            return Err(WireError::Malformed("ipv6 payload length"));
        }
        Ok(Ipv6View { bytes })
    }

    fn pkt(&self) -> Ipv6Packet<&'a [u8]> {
        Ipv6Packet::new_unchecked(self.bytes)
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        self.pkt().src_addr()
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        self.pkt().dst_addr()
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.pkt().next_header().into()
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.pkt().hop_limit()
    }

    /// The payload (extension headers included), up to the payload length.
    pub fn payload(&self) -> &'a [u8] {
        self.pkt().payload()
    }

    /// When the first header is hop-by-hop: the upper layer after the extension-header chain
    /// (hop-by-hop, routing, destination options, fragment, AH), as Linux's
    /// `ipv6_skip_exthdr` walks it. `None` without a hop-by-hop header or for a later fragment
    /// (Linux `ipv6_mc_check_exthdrs`). A chain that runs past the payload or ends in "no next
    /// header" is an error.
    pub fn upper_layer(&self) -> Result<Option<Ipv6Upper<'a>>, WireError> {
        const HOPOPTS: u8 = 0;
        const ROUTING: u8 = 43;
        const FRAGMENT: u8 = 44;
        const AUTH: u8 = 51;
        const NONE: u8 = 59;
        const DSTOPTS: u8 = 60;
        if self.next_header() != HOPOPTS {
            return Ok(None);
        }
        let mut next = HOPOPTS;
        let mut rest = self.payload();
        let mut router_alert_mld = false;
        for i in 0..MAX_EXT_HEADERS {
            match next {
                AUTH => {
                    // Length in 4-octet units minus 2 (RFC 4302), unlike the others.
                    if rest.len() < 8 {
                        return Err(WireError::Truncated("ipv6 extension header"));
                    }
                    let len = (usize::from(rest[1]) + 2) * 4;
                    if rest.len() < len {
                        return Err(WireError::Truncated("ipv6 extension header"));
                    }
                    next = rest[0];
                    rest = &rest[len..];
                }
                HOPOPTS | ROUTING | DSTOPTS => {
                    let hdr = Ipv6ExtHeader::new_checked(rest)
                        .map_err(|_| WireError::Truncated("ipv6 extension header"))?;
                    let len = (usize::from(hdr.header_len()) + 1) * 8;
                    if next == HOPOPTS && i == 0 {
                        router_alert_mld = hbh_router_alert_mld(&rest[2..len]);
                    }
                    next = hdr.next_header().into();
                    rest = &rest[len..];
                }
                FRAGMENT => {
                    if rest.len() < 8 {
                        return Err(WireError::Truncated("ipv6 fragment header"));
                    }
                    let frag_off = u16::from_be_bytes([rest[2], rest[3]]) & !0x7;
                    if frag_off != 0 {
                        return Ok(None);
                    }
                    next = rest[0];
                    rest = &rest[8..];
                }
                // Linux: ipv6_skip_exthdr fails, the bridge drops the packet.
                NONE => return Err(WireError::Malformed("ipv6 no next header")),
                proto => {
                    return Ok(Some(Ipv6Upper {
                        protocol: proto,
                        payload: rest,
                        router_alert_mld,
                    }))
                }
            }
        }
        Err(WireError::Malformed("ipv6 extension header chain"))
    }
}

/// Whether hop-by-hop option bytes hold Router Alert with value 0 (MLD).
fn hbh_router_alert_mld(options: &[u8]) -> bool {
    let Ok(hbh) = Ipv6HopByHopHeader::new_checked(options) else {
        return false;
    };
    smoltcp::wire::Ipv6OptionsIterator::new(hbh.options()).any(|o| {
        matches!(
            o,
            Ok(smoltcp::wire::Ipv6OptionRepr::RouterAlert(
                smoltcp::wire::Ipv6OptionRouterAlert::MulticastListenerDiscovery
            ))
        )
    })
}

/// Whether a PIM message is a PIMv2 Hello (version 2, type 0; Linux `br_multicast_pim`).
pub fn is_pim_hello(pim: &[u8]) -> bool {
    pim.len() >= 4 && pim[0] == 0x20
}
