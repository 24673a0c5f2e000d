//! Ethernet frame view: MAC addresses, EtherTypes and a borrowed, checked header view.
//!
//! No I/O here. [`EthernetFrame::new_checked`] is the one front door for bytes that come from a
//! port; once it returns `Ok`, no accessor can panic.

use std::fmt;
use std::str::FromStr;

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Builds an address from the first 6 bytes of `b` (caller checks the length).
    fn from_slice(b: &[u8]) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        MacAddr(a)
    }

    /// The I/G bit: multicast or broadcast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// ff:ff:ff:ff:ff:ff
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// 00:00:00:00:00:00
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// A source address the Linux bridge accepts (`is_valid_ether_addr`): not group, not zero.
    pub fn is_valid_source(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// For 01:80:c2:00:00:00 to 01:80:c2:00:00:0f (IEEE 802.1D reserved link-local groups),
    /// the group number 0..=15.
    pub fn link_local_group(&self) -> Option<u8> {
        let a = self.0;
        if a[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && a[5] <= 0x0f {
            Some(a[5])
        } else {
            None
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            a[0], a[1], a[2], a[3], a[4], a[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(a: [u8; 6]) -> Self {
        MacAddr(a)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a MAC address (expected six hex pairs like aa:bb:cc:dd:ee:ff)")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An EtherType; unknown values stay representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtherType {
    /// IPv4 (0x0800)
    Ipv4,
    /// ARP (0x0806)
    Arp,
    /// IPv6 (0x86dd)
    Ipv6,
    /// 802.1Q customer tag (0x8100)
    Vlan,
    /// 802.1ad service tag (0x88a8)
    QinQ,
    /// 802.3 slow protocols: LACP, marker (0x8809)
    Slow,
    /// 802.1AB LLDP (0x88cc)
    Lldp,
    /// An 802.3 length field (< 0x0600) or any other value.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            0x8809 => EtherType::Slow,
            0x88cc => EtherType::Lldp,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(e: EtherType) -> u16 {
        match e {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Slow => 0x8809,
            EtherType::Lldp => 0x88cc,
            EtherType::Unknown(v) => v,
        }
    }
}

/// Why bytes are not an Ethernet frame the switch can handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Under 14 bytes.
    #[error("frame shorter than the 14-byte Ethernet header")]
    TooShort,
    /// A tag EtherType without the 4 tag bytes.
    #[error("802.1Q/802.1ad tag truncated")]
    TruncatedVlan,
}

/// Byte ranges of the header, kept in one place.
mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const TCI: Range<usize> = 14..16;
    pub const HEADER_LEN: usize = 14;
    pub const TAG_LEN: usize = 4;
}

/// Length of the untagged Ethernet header.
pub const ETH_HLEN: usize = field::HEADER_LEN;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = field::TAG_LEN;

/// A borrowed view of an Ethernet frame whose header has been checked.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the header (and the outer VLAN tag, if any) is complete.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let b = buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(FrameError::TooShort);
        }
        let et = u16::from_be_bytes([b[12], b[13]]);
        if (et == 0x8100 || et == 0x88a8) && b.len() < field::HEADER_LEN + field::TAG_LEN {
            return Err(FrameError::TruncatedVlan);
        }
        Ok(EthernetFrame { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Destination address.
    pub fn dst(&self) -> MacAddr {
        MacAddr::from_slice(&self.bytes()[field::DST])
    }

    /// Source address.
    pub fn src(&self) -> MacAddr {
        MacAddr::from_slice(&self.bytes()[field::SRC])
    }

    /// The outer EtherType (0x8100 for a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        let b = &self.bytes()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Whether the frame carries an outer 802.1Q or 802.1ad tag.
    pub fn is_tagged(&self) -> bool {
        matches!(self.ethertype(), EtherType::Vlan | EtherType::QinQ)
    }

    /// The VLAN ID of the outer tag, if the frame is tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.is_tagged() {
            let b = &self.bytes()[field::TCI];
            Some(u16::from_be_bytes([b[0], b[1]]) & 0x0fff)
        } else {
            None
        }
    }

    /// The EtherType after the outer tag (or the outer one for an untagged frame).
    pub fn inner_ethertype(&self) -> EtherType {
        if self.is_tagged() {
            // new_checked guarantees the 4 tag bytes, which end with the inner EtherType.
            let b = &self.bytes()[16..18];
            EtherType::from(u16::from_be_bytes([b[0], b[1]]))
        } else {
            self.ethertype()
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Never true for a checked frame; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// The length the Linux bridge compares against the egress MTU: the frame without its
    /// outer VLAN tag (which the kernel holds in metadata after receive).
    pub fn mtu_len(&self) -> usize {
        if self.is_tagged() {
            self.len() - field::TAG_LEN
        } else {
            self.len()
        }
    }

    /// The bytes after the Ethernet header (and outer tag).
    pub fn payload(&self) -> &[u8] {
        let off = if self.is_tagged() {
            field::HEADER_LEN + field::TAG_LEN
        } else {
            field::HEADER_LEN
        };
        &self.bytes()[off..]
    }
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// The whole frame, with the lifetime of the underlying bytes.
    pub fn bytes_ref(&self) -> &'a [u8] {
        self.buffer
    }
}

/// Builds a frame from parts; for tests, tools and the demo (allocates).
pub fn build_frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&dst.0);
    v.extend_from_slice(&src.0);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_print_mac() {
        let m = mac("AA-bb-0c-dd-ee-0F");
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:0f");
        assert!("aa:bb:cc:dd:ee".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:ff:00".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:gg".parse::<MacAddr>().is_err());
        assert!("aaa:b:cc:dd:ee:ff".parse::<MacAddr>().is_err());
        assert!("".parse::<MacAddr>().is_err());
    }

    #[test]
    fn address_classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(!MacAddr::BROADCAST.is_valid_source());
        assert!(!MacAddr::ZERO.is_valid_source());
        assert!(!mac("01:00:5e:00:00:01").is_valid_source());
        assert!(mac("02:00:00:00:00:01").is_valid_source());
        assert_eq!(mac("01:80:c2:00:00:0e").link_local_group(), Some(14));
        assert_eq!(mac("01:80:c2:00:00:00").link_local_group(), Some(0));
        assert_eq!(mac("01:80:c2:00:00:10").link_local_group(), None);
        assert_eq!(mac("01:80:c2:00:01:00").link_local_group(), None);
    }

    #[test]
    fn checked_view() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(),
            FrameError::TooShort
        );
        let f = build_frame(
            mac("02:00:00:00:00:02"),
            mac("02:00:00:00:00:01"),
            0x0800,
            &[1, 2],
        );
        let v = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(v.dst(), mac("02:00:00:00:00:02"));
        assert_eq!(v.src(), mac("02:00:00:00:00:01"));
        assert_eq!(v.ethertype(), EtherType::Ipv4);
        assert_eq!(v.vlan_id(), None);
        assert_eq!(v.payload(), &[1, 2]);
        assert_eq!(v.mtu_len(), 16);
        // exactly 14 bytes is a valid (runt) frame
        let runt = build_frame(MacAddr::BROADCAST, mac("02:00:00:00:00:01"), 0x88b5, &[]);
        assert_eq!(EthernetFrame::new_checked(&runt[..]).unwrap().len(), 14);
    }

    #[test]
    fn vlan_tag() {
        let tagged = build_frame(
            MacAddr::BROADCAST,
            mac("02:00:00:00:00:01"),
            0x8100,
            &[0x20, 0x0a, 0x08, 0x06, 9],
        );
        let v = EthernetFrame::new_checked(&tagged[..]).unwrap();
        assert_eq!(v.vlan_id(), Some(10));
        assert_eq!(v.inner_ethertype(), EtherType::Arp);
        assert_eq!(v.payload(), &[9]);
        assert_eq!(v.mtu_len(), tagged.len() - 4);
        let short = build_frame(
            MacAddr::BROADCAST,
            mac("02:00:00:00:00:01"),
            0x8100,
            &[0x20],
        );
        assert_eq!(
            EthernetFrame::new_checked(&short[..]).unwrap_err(),
            FrameError::TruncatedVlan
        );
        let qinq = build_frame(
            MacAddr::BROADCAST,
            mac("02:00:00:00:00:01"),
            0x88a8,
            &[0, 5, 0x81, 0],
        );
        assert_eq!(
            EthernetFrame::new_checked(&qinq[..]).unwrap().vlan_id(),
            Some(5)
        );
    }

    #[test]
    fn ethertype_roundtrip() {
        for v in [
            0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x8809, 0x88cc, 0x1234, 0x0040,
        ] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }
}
