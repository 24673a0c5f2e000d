//! Query frames: what [`Action::SendQuery`](super::Action::SendQuery) asks for, as bytes.
//!
//! Built the way Linux's `br_ip4_multicast_alloc_query` / `br_ip6_multicast_alloc_query` build
//! them: IPv4 with TOS 0xc0, DF, TTL 1 and the Router Alert option; IPv6 with hop limit 1 and a
//! hop-by-hop header holding Router Alert (MLD) and two Pad1; Ethernet destination mapped from
//! the IP destination; checksums filled in. Untagged: the dataplane tags them on egress like
//! any frame it sends in the VLAN.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::types::PortId;
use crate::wire::igmp::{igmpv3_code_encode, IGMP_HOST_MEMBERSHIP_QUERY};
use crate::wire::mld::{mldv2_mrc_encode, ICMPV6_MGM_QUERY};
use crate::wire::MacAddr;
use crate::wire::{Family, IPV4_ALL_SYSTEMS, IPV6_ALL_NODES};

/// The format of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryVersion {
    /// IGMPv2 (RFC 2236), 8 bytes.
    IgmpV2,
    /// IGMPv3 (RFC 3376 §4.1).
    IgmpV3,
    /// MLDv1 (RFC 2710), 24 bytes.
    MldV1,
    /// MLDv2 (RFC 3810 §5.1).
    MldV2,
}

impl QueryVersion {
    /// The family it queries.
    pub fn family(self) -> Family {
        match self {
            QueryVersion::IgmpV2 | QueryVersion::IgmpV3 => Family::V4,
            QueryVersion::MldV1 | QueryVersion::MldV2 => Family::V6,
        }
    }
}

/// One query to transmit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QuerySpec {
    /// VLAN to send it in (0 when VLAN filtering is off).
    pub vid: u16,
    /// The port to send it on; `None`: every port of the VLAN.
    pub port: Option<PortId>,
    /// Format.
    pub version: QueryVersion,
    /// IP source address.
    pub src: IpAddr,
    /// `None`: a general query; else the group queried.
    pub group: Option<IpAddr>,
    /// The sources of a group-and-source-specific query (IGMPv3/MLDv2 only).
    pub sources: Vec<IpAddr>,
    /// S flag (Suppress Router-Side Processing; IGMPv3/MLDv2 only).
    pub s_flag: bool,
    /// Max response time in milliseconds.
    pub max_resp_ms: u64,
    /// QQI in seconds (IGMPv3/MLDv2): `mcast_query_interval`.
    pub qqi_secs: u32,
    /// QRV (IGMPv3/MLDv2): 2, as Linux sends.
    pub qrv: u8,
}

/// The EUI-64 IPv6 link-local address of a MAC address (fe80::/64, U/L bit flipped): the
/// address a Linux bridge device has, and the default source of the switch's MLD queries.
pub fn link_local_from_mac(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// The Ethernet group address an IP multicast address maps to (RFC 1112 §6.4, RFC 2464 §7).
pub fn multicast_mac(dst: &IpAddr) -> MacAddr {
    match dst {
        IpAddr::V4(a) => {
            let o = a.octets();
            MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
        }
    }
}

impl QuerySpec {
    /// IP destination: 224.0.0.1 / ff02::1 for a general query, the group otherwise.
    pub fn dst(&self) -> IpAddr {
        match (self.group, self.version.family()) {
            (Some(g), _) => g,
            (None, Family::V4) => IPV4_ALL_SYSTEMS.into(),
            (None, Family::V6) => IPV6_ALL_NODES.into(),
        }
    }

    /// The frame: Ethernet (untagged, source `src_mac`) + IP + query.
    pub fn build(&self, src_mac: MacAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.build_into(src_mac, &mut out);
        out
    }

    /// [`QuerySpec::build`] into a reused buffer (cleared first).
    pub fn build_into(&self, src_mac: MacAddr, out: &mut Vec<u8>) {
        out.clear();
        let dst = self.dst();
        out.extend_from_slice(&multicast_mac(&dst).0);
        out.extend_from_slice(&src_mac.0);
        match (self.src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                out.extend_from_slice(&[0x08, 0x00]);
                self.ipv4(src, dst, out);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                out.extend_from_slice(&[0x86, 0xdd]);
                self.ipv6(src, dst, out);
            }
            // A spec mixing families is a bug of the caller; send an IPv4 general query
            // from 0.0.0.0 rather than garbage.
            _ => {
                out.extend_from_slice(&[0x08, 0x00]);
                self.ipv4(Ipv4Addr::UNSPECIFIED, IPV4_ALL_SYSTEMS, out);
            }
        }
    }

    fn igmp(&self) -> Vec<u8> {
        let group = match self.group {
            Some(IpAddr::V4(g)) => g,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let tenths = u32::try_from(self.max_resp_ms / 100).unwrap_or(u32::MAX);
        let mut m = vec![IGMP_HOST_MEMBERSHIP_QUERY, 0, 0, 0];
        m.extend_from_slice(&group.octets());
        if self.version == QueryVersion::IgmpV2 {
            m[1] = u8::try_from(tenths).unwrap_or(u8::MAX);
        } else {
            m[1] = igmpv3_code_encode(tenths);
            let sources: Vec<Ipv4Addr> = self
                .sources
                .iter()
                .filter_map(|s| match s {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                })
                .collect();
            m.push(if self.s_flag { 0x08 } else { 0 } | (self.qrv & 0x07));
            m.push(igmpv3_code_encode(self.qqi_secs));
            m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
            for s in sources {
                m.extend_from_slice(&s.octets());
            }
        }
        let c = !smoltcp::wire::checksum::data(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    fn ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr, out: &mut Vec<u8>) {
        let msg = self.igmp();
        let start = out.len();
        out.resize(start + 24 + msg.len(), 0);
        let mut ip = Ipv4Packet::new_unchecked(&mut out[start..]);
        ip.set_version(4);
        ip.set_header_len(24);
        ip.set_dscp(0xc0 >> 2);
        ip.set_ecn(0);
        ip.set_total_len((24 + msg.len()) as u16);
        ip.set_ident(0);
        ip.clear_flags();
        ip.set_dont_frag(true);
        ip.set_frag_offset(0);
        ip.set_hop_limit(1);
        ip.set_next_header(IpProtocol::Igmp);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        out[start + 20..start + 24].copy_from_slice(&[crate::wire::ip::IPOPT_RA, 4, 0, 0]);
        let mut ip = Ipv4Packet::new_unchecked(&mut out[start..]);
        ip.fill_checksum();
        out[start + 24..].copy_from_slice(&msg);
    }

    fn mld(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let group = match self.group {
            Some(IpAddr::V6(g)) => g,
            _ => Ipv6Addr::UNSPECIFIED,
        };
        let ms = u32::try_from(self.max_resp_ms).unwrap_or(u32::MAX);
        let mut m = vec![ICMPV6_MGM_QUERY, 0, 0, 0];
        if self.version == QueryVersion::MldV1 {
            m.extend_from_slice(&u16::try_from(ms).unwrap_or(u16::MAX).to_be_bytes());
            m.extend_from_slice(&[0, 0]);
            m.extend_from_slice(&group.octets());
        } else {
            m.extend_from_slice(&mldv2_mrc_encode(ms).to_be_bytes());
            m.extend_from_slice(&[0, 0]);
            m.extend_from_slice(&group.octets());
            let sources: Vec<Ipv6Addr> = self
                .sources
                .iter()
                .filter_map(|s| match s {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                })
                .collect();
            m.push(if self.s_flag { 0x08 } else { 0 } | (self.qrv & 0x07));
            m.push(igmpv3_code_encode(self.qqi_secs));
            m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
            for s in sources {
                m.extend_from_slice(&s.octets());
            }
        }
        let mut p = smoltcp::wire::Icmpv6Packet::new_unchecked(&mut m[..]);
        p.fill_checksum(src, dst);
        m
    }

    fn ipv6(&self, src: Ipv6Addr, dst: Ipv6Addr, out: &mut Vec<u8>) {
        let msg = self.mld(&src, &dst);
        let start = out.len();
        out.resize(start + 40 + 8 + msg.len(), 0);
        let mut ip = Ipv6Packet::new_unchecked(&mut out[start..]);
        ip.set_version(6);
        ip.set_traffic_class(0);
        ip.set_flow_label(0);
        ip.set_payload_len((8 + msg.len()) as u16);
        ip.set_next_header(IpProtocol::HopByHop);
        ip.set_hop_limit(1);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        // Hop-by-hop: next ICMPv6, length 0, Router Alert (MLD), two Pad1 (as Linux).
        out[start + 40..start + 48].copy_from_slice(&[
            crate::wire::IPPROTO_ICMPV6,
            0,
            crate::wire::ip::IPV6_TLV_ROUTERALERT,
            2,
            0,
            0,
            0,
            0,
        ]);
        out[start + 48..].copy_from_slice(&msg);
    }
}
