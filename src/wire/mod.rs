//! Packet views: borrowed, checked, zero-copy views of the protocol headers the switch reads,
//! in one place for the whole crate (forwarding, VLANs, offloads, GRO, VXLAN, snooping).
//!
//! - [`checksum`]: the Internet checksum and the IPv4/IPv6 pseudo-header, shared by every
//!   module that checks or writes one; [`be16`] and [`be32`] read big-endian fields.
//! - [`ethernet`]: MAC addresses, EtherTypes and the Ethernet frame view with its 802.1Q/802.1ad
//!   tag accessors (smoltcp has no VLAN type); its items are re-exported here.
//! - [`ip`]: the IPv4 header (with its options, for Router Alert) and the IPv6 header with its
//!   extension-header chain (hop-by-hop Router Alert), on top of `smoltcp::wire::Ipv4Packet`,
//!   `Ipv6Packet`, `Ipv6ExtHeader` and `Ipv6HopByHopHeader`.
//! - [`igmp`]: IGMPv1/v2 messages (`smoltcp::wire::IgmpPacket`) and IGMPv3 queries and reports
//!   (views written here: smoltcp has none), with the IGMP checksum verified.
//! - [`mld`]: MLDv1 query/report/done and MLDv2 query/report (views written here; the MLDv2
//!   address record header is smoltcp's `MldAddressRecord`), with the ICMPv6 checksum and its
//!   pseudo-header verified.
//! - [`arp`] and [`nd`]: ARP and IPv6 neighbour solicitations/advertisements, read and
//!   written for ARP/ND suppression ([`crate::neigh`]).
//! - [`inspect`] / [`inspect_frame`]: what one frame is for the multicast layer
//!   ([`McastFrame`]), classified the way the Linux bridge's `br_multicast_rcv` does it.
//!
//! Every view follows the smoltcp pattern: `new_checked` is the one front door for untrusted
//! bytes; once it returns `Ok`, no accessor can panic. Unknown values stay representable.
//! Nothing here allocates, and nothing panics on any input (the tests feed random bytes).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod igmp;
pub mod ip;
pub mod mld;
pub mod nd;

pub use ethernet::*;

/// The big-endian 16-bit word at `at` (the caller checked the length).
#[inline]
pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The big-endian 32-bit word at `at` (the caller checked the length).
#[inline]
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use igmp::IgmpMessage;
pub use mld::MldMessage;

/// Why bytes are not a packet the multicast layer can use. The text is what a log line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the header or the lengths it announces.
    #[error("{0} truncated")]
    Truncated(&'static str),
    /// A length or version field that cannot be right.
    #[error("{0} malformed")]
    Malformed(&'static str),
    /// The checksum does not match the bytes.
    #[error("{0} checksum mismatch")]
    BadChecksum(&'static str),
}

/// The type of an IGMPv3 group record or an MLDv2 address record (RFC 3376 §4.2.12,
/// RFC 3810 §5.2.12; the numbers are the same in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// MODE_IS_INCLUDE (IS_IN).
    ModeIsInclude,
    /// MODE_IS_EXCLUDE (IS_EX).
    ModeIsExclude,
    /// CHANGE_TO_INCLUDE_MODE (TO_IN).
    ChangeToInclude,
    /// CHANGE_TO_EXCLUDE_MODE (TO_EX).
    ChangeToExclude,
    /// ALLOW_NEW_SOURCES (ALLOW).
    AllowNewSources,
    /// BLOCK_OLD_SOURCES (BLOCK).
    BlockOldSources,
    /// Any other value (ignored, as Linux does).
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(v: u8) -> Self {
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            other => RecordType::Unknown(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(t: RecordType) -> u8 {
        match t {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNewSources => 5,
            RecordType::BlockOldSources => 6,
            RecordType::Unknown(v) => v,
        }
    }
}

/// The two address families multicast snooping keeps apart (IGMP and MLD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 and IGMP.
    V4,
    /// IPv6 and MLD.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// 0 for IPv4, 1 for IPv6 (for arrays indexed by family).
    pub const fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];
}

/// 224.0.0.1 (all systems).
pub const IPV4_ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// 224.0.0.13 (all PIM routers).
pub const IPV4_ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);
/// 224.0.0.106 (all snoopers, RFC 4286 Multicast Router Discovery).
pub const IPV4_ALL_SNOOPERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 106);
/// ff02::1 (all nodes).
pub const IPV6_ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ff02::6a (all snoopers).
pub const IPV6_ALL_SNOOPERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x6a);

/// IP protocol number of IGMP.
pub const IPPROTO_IGMP: u8 = 2;
/// IP protocol number of PIM.
pub const IPPROTO_PIM: u8 = 103;
/// IPv6 next-header number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// Groups the Linux bridge never snoops and always floods: IPv4 224.0.0.0/24
/// (`ipv4_is_local_multicast`) and IPv6 ff02::1 (`ipv6_addr_is_ll_all_nodes`). Other IPv6
/// link-local groups (ff02::fb, ff02::cc, ...) are snooped like any group, as in Linux.
pub fn is_unsnooped_group(group: &IpAddr) -> bool {
    match group {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => *a == IPV6_ALL_NODES,
    }
}

/// What one IP packet is for multicast snooping (see [`inspect`]).
#[derive(Debug)]
pub enum McastFrame<'a> {
    /// Not IPv4 or IPv6 (ARP, LLDP, any other EtherType): snooping has no say; Linux floods
    /// such multicast frames.
    NotIp,
    /// An IP packet that is not an IGMP/MLD message: multicast data as far as snooping goes.
    /// This includes an ICMPv6 packet with a bad checksum (Linux's `ipv6_mc_check_mld`
    /// returns `-ENODATA` and the bridge forwards it as data) and a packet whose destination
    /// is not a multicast address (Linux snoops by destination MAC, not IP).
    Data {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// A PIM hello to 224.0.0.13 or a Multicast Router Discovery advertisement
        /// (IGMP type 0x30 to 224.0.0.106, ICMPv6 type 151 to ff02::6a): the sending port has
        /// a multicast router behind it.
        router_advert: bool,
    },
    /// An IGMP message (checksum verified).
    Igmp {
        /// IP source address (the querier election compares it).
        src: Ipv4Addr,
        /// IP destination address.
        dst: Ipv4Addr,
        /// Whether the IPv4 header carried the Router Alert option (RFC 2113). Linux does not
        /// require it and neither does tapswitch; it is reported for counters and tests.
        router_alert: bool,
        /// The message.
        msg: IgmpMessage<'a>,
    },
    /// An MLD message (ICMPv6 checksum verified) after a hop-by-hop header.
    Mld {
        /// IPv6 source address.
        src: Ipv6Addr,
        /// IPv6 destination address.
        dst: Ipv6Addr,
        /// Whether the hop-by-hop header carried a Router Alert option with value 0 (MLD).
        router_alert: bool,
        /// The message.
        msg: MldMessage<'a>,
    },
}

impl McastFrame<'_> {
    /// Whether the snooping state machine needs to see the frame (hand a copy to the control
    /// thread): an IGMP or MLD message, a PIM hello or an MRD advertisement. Other data only
    /// needs the forwarding decision.
    pub fn needs_control(&self) -> bool {
        matches!(
            self,
            McastFrame::Igmp { .. }
                | McastFrame::Mld { .. }
                | McastFrame::Data {
                    router_advert: true,
                    ..
                }
        )
    }

    /// The destination address, if the frame is IP.
    pub fn dst(&self) -> Option<IpAddr> {
        match self {
            McastFrame::NotIp => None,
            McastFrame::Data { dst, .. } => Some(*dst),
            McastFrame::Igmp { dst, .. } => Some(IpAddr::V4(*dst)),
            McastFrame::Mld { dst, .. } => Some(IpAddr::V6(*dst)),
        }
    }
}

/// Classifies the bytes after the Ethernet header (and outer tag) of a frame whose EtherType
/// is `ethertype`, as Linux's `br_multicast_ipv4_rcv` / `br_multicast_ipv6_rcv` do.
///
/// Errors are the frames Linux drops while snooping: an IPv4 header that is truncated, has a
/// bad checksum or an impossible length; an IGMP message that is truncated or has a bad
/// checksum; an IPv6 header or extension-header chain that is truncated. The caller drops
/// them and counts the error (Linux counts `igmp_parse_errors` / `mld_parse_errors`).
pub fn inspect(ethertype: EtherType, payload: &[u8]) -> Result<McastFrame<'_>, WireError> {
    match ethertype {
        EtherType::Ipv4 => inspect_ipv4(payload),
        EtherType::Ipv6 => inspect_ipv6(payload),
        _ => Ok(McastFrame::NotIp),
    }
}

/// [`inspect`] on a whole Ethernet frame (an optional outer 802.1Q/802.1ad tag is skipped).
pub fn inspect_frame(frame: &[u8]) -> Result<McastFrame<'_>, WireError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| WireError::Truncated("ethernet"))?;
    let payload = &frame[frame.len() - eth.payload().len()..];
    inspect(eth.inner_ethertype(), payload)
}

fn inspect_ipv4(payload: &[u8]) -> Result<McastFrame<'_>, WireError> {
    let ip = ip::Ipv4View::new_checked(payload)?;
    let (src, dst) = (ip.src(), ip.dst());
    if ip.protocol() == IPPROTO_IGMP {
        return match igmp::IgmpMessage::parse(ip.payload(), dst)? {
            IgmpMessage::Other { msg_type } => Ok(McastFrame::Data {
                src: src.into(),
                dst: dst.into(),
                router_advert: msg_type == igmp::IGMP_MRDISC_ADV && dst == IPV4_ALL_SNOOPERS,
            }),
            msg => Ok(McastFrame::Igmp {
                src,
                dst,
                router_alert: ip.router_alert(),
                msg,
            }),
        };
    }
    let router_advert = ip.protocol() == IPPROTO_PIM
        && dst == IPV4_ALL_PIM_ROUTERS
        && ip::is_pim_hello(ip.payload());
    Ok(McastFrame::Data {
        src: src.into(),
        dst: dst.into(),
        router_advert,
    })
}

fn inspect_ipv6(payload: &[u8]) -> Result<McastFrame<'_>, WireError> {
    let ip = ip::Ipv6View::new_checked(payload)?;
    let (src, dst) = (ip.src(), ip.dst());
    let data = |router_advert| {
        Ok(McastFrame::Data {
            src: src.into(),
            dst: dst.into(),
            router_advert,
        })
    };
    // MLD is only looked for after a hop-by-hop header (Linux `ipv6_mc_check_exthdrs`).
    let Some(upper) = ip.upper_layer()? else {
        return data(false);
    };
    if upper.protocol != IPPROTO_ICMPV6 {
        return data(false);
    }
    match mld::MldMessage::parse(upper.payload, &src, &dst) {
        Ok(MldMessage::Other { msg_type }) => {
            data(msg_type == mld::ICMPV6_MRDISC_ADV && dst == IPV6_ALL_SNOOPERS)
        }
        Ok(msg) => Ok(McastFrame::Mld {
            src,
            dst,
            router_alert: upper.router_alert_mld,
            msg,
        }),
        // Linux: -ENODATA (short or bad checksum) is forwarded as data; -EINVAL (a malformed
        // query or report) is dropped.
        Err(WireError::BadChecksum(_)) | Err(WireError::Truncated("icmpv6")) => data(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
pub(crate) mod tests;
