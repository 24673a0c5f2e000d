//! What a capture keeps: directions and a match on the frame's bytes (VLAN tag, MAC address,
//! EtherType). Pure and cheap: the frame path asks [`Filter::matches`] for every frame on a
//! captured port while a capture runs.

use std::str::FromStr;

use crate::capture::pcap::Direction;
use crate::wire::MacAddr;

/// TPIDs a filter looks through: 802.1Q, 802.1ad and the old QinQ 0x9100.
const TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// Which directions a capture keeps, from the switch's point of view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Directions {
    /// Frames read from the ports only.
    Rx,
    /// Frames written to the ports only.
    Tx,
    /// Both (the default).
    #[default]
    Both,
}

impl Directions {
    /// Whether frames going `dir` are kept.
    pub fn keeps(self, dir: Direction) -> bool {
        matches!(
            (self, dir),
            (Directions::Both, _)
                | (Directions::Rx, Direction::Inbound)
                | (Directions::Tx, Direction::Outbound)
        )
    }

    /// `rx`, `tx` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Directions::Rx => "rx",
            Directions::Tx => "tx",
            Directions::Both => "both",
        }
    }
}

/// A direction name that is none of `rx`, `tx`, `both` (or `in`, `out`, `inout`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown direction {0:?}: expected rx, tx or both")]
pub struct UnknownDirection(pub String);

impl FromStr for Directions {
    type Err = UnknownDirection;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rx" | "in" => Ok(Directions::Rx),
            "tx" | "out" => Ok(Directions::Tx),
            "both" | "inout" => Ok(Directions::Both),
            _ => Err(UnknownDirection(s.to_string())),
        }
    }
}

/// An EtherType that is neither `0xNNNN` nor a decimal number up to 65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad EtherType {0:?}: expected 0xNNNN (hexadecimal) or a number up to 65535")]
pub struct BadEtherType(pub String);

/// Parses `0x0800`, `0X86DD` or `2048`.
pub fn parse_ethertype(s: &str) -> Result<u16, BadEtherType> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse::<u16>(),
    };
    r.map_err(|_| BadEtherType(s.to_string()))
}

/// A match on a frame's bytes; every field given must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Directions kept.
    pub directions: Directions,
    /// The outer VLAN tag (802.1Q, 802.1ad or 0x9100) carries this VID.
    pub vlan: Option<u16>,
    /// The source or the destination MAC is this one.
    pub mac: Option<MacAddr>,
    /// The EtherType at offset 12 or, for a tagged frame, the one after its tags.
    pub ethertype: Option<u16>,
}

impl Filter {
    /// Whether `frame` (Ethernet header first), going `dir`, is kept. A frame too short for a
    /// field a filter names does not match; with no byte filter every frame matches.
    #[inline]
    pub fn matches(&self, dir: Direction, frame: &[u8]) -> bool {
        if !self.directions.keeps(dir) {
            return false;
        }
        if self.vlan.is_none() && self.mac.is_none() && self.ethertype.is_none() {
            return true;
        }
        if frame.len() < 14 {
            return false;
        }
        if let Some(m) = self.mac {
            if frame[0..6] != m.0 && frame[6..12] != m.0 {
                return false;
            }
        }
        let outer = u16::from_be_bytes([frame[12], frame[13]]);
        let mut et = outer;
        let mut at = 12;
        let mut vid = None;
        while TPIDS.contains(&et) && frame.len() >= at + 6 {
            if vid.is_none() {
                vid = Some(u16::from_be_bytes([frame[at + 2], frame[at + 3]]) & 0x0fff);
            }
            at += 4;
            et = u16::from_be_bytes([frame[at], frame[at + 1]]);
        }
        if let Some(v) = self.vlan {
            if vid != Some(v) {
                return false;
            }
        }
        if let Some(t) = self.ethertype {
            if outer != t && et != t {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build_frame;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const C: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);

    fn tagged(tpid: u16, vid: u16, inner: u16) -> Vec<u8> {
        let mut p = vid.to_be_bytes().to_vec();
        p.extend_from_slice(&inner.to_be_bytes());
        p.extend_from_slice(&[0; 46]);
        build_frame(B, A, tpid, &p)
    }

    #[test]
    fn directions_parse_and_keep() {
        use Direction::{Inbound, Outbound};
        assert_eq!("rx".parse(), Ok(Directions::Rx));
        assert_eq!("out".parse(), Ok(Directions::Tx));
        assert_eq!("both".parse(), Ok(Directions::Both));
        assert!("sideways".parse::<Directions>().is_err());
        assert!(Directions::Rx.keeps(Inbound) && !Directions::Rx.keeps(Outbound));
        assert!(Directions::Tx.keeps(Outbound) && !Directions::Tx.keeps(Inbound));
        assert!(Directions::Both.keeps(Inbound) && Directions::Both.keeps(Outbound));
    }

    #[test]
    fn ethertypes_parse() {
        assert_eq!(parse_ethertype("0x0800"), Ok(0x0800));
        assert_eq!(parse_ethertype("0X86dd"), Ok(0x86dd));
        assert_eq!(parse_ethertype("2054"), Ok(0x0806));
        assert!(parse_ethertype("0x10000").is_err());
        assert!(parse_ethertype("ip").is_err());
    }

    #[test]
    fn byte_filters_select_exactly() {
        let d = Direction::Inbound;
        let plain = build_frame(B, A, 0x0800, &[0; 46]);
        let q = tagged(0x8100, 10, 0x0806);
        let qinq = {
            let mut p = 20u16.to_be_bytes().to_vec();
            p.extend_from_slice(&0x8100u16.to_be_bytes());
            p.extend_from_slice(&30u16.to_be_bytes());
            p.extend_from_slice(&0x86ddu16.to_be_bytes());
            p.extend_from_slice(&[0; 40]);
            build_frame(B, A, 0x88a8, &p)
        };
        let all = Filter::default();
        assert!(all.matches(d, &plain) && all.matches(d, &[1, 2, 3]));

        let v10 = Filter {
            vlan: Some(10),
            ..Filter::default()
        };
        assert!(v10.matches(d, &q));
        assert!(!v10.matches(d, &plain));
        assert!(!v10.matches(d, &tagged(0x8100, 11, 0x0806)));
        // the outer tag counts
        let v20 = Filter {
            vlan: Some(20),
            ..Filter::default()
        };
        assert!(v20.matches(d, &qinq));
        assert!(!Filter {
            vlan: Some(30),
            ..Filter::default()
        }
        .matches(d, &qinq));

        let arp = Filter {
            ethertype: Some(0x0806),
            ..Filter::default()
        };
        assert!(arp.matches(d, &q), "inner EtherType");
        assert!(!arp.matches(d, &plain));
        let dot1q = Filter {
            ethertype: Some(0x8100),
            ..Filter::default()
        };
        assert!(dot1q.matches(d, &q), "outer EtherType");
        let v6 = Filter {
            ethertype: Some(0x86dd),
            ..Filter::default()
        };
        assert!(v6.matches(d, &qinq), "after two tags");

        for m in [A, B] {
            let f = Filter {
                mac: Some(m),
                ..Filter::default()
            };
            assert!(f.matches(d, &plain));
        }
        let c = Filter {
            mac: Some(C),
            ..Filter::default()
        };
        assert!(!c.matches(d, &plain));
        assert!(
            !c.matches(d, &[0; 10]),
            "short frames never match a byte filter"
        );

        let combined = Filter {
            directions: Directions::Tx,
            vlan: Some(10),
            mac: Some(A),
            ethertype: Some(0x0806),
        };
        assert!(combined.matches(Direction::Outbound, &q));
        assert!(!combined.matches(Direction::Inbound, &q));
        // a tag cut short is not read past the frame
        assert!(!v10.matches(d, &q[..15]));
    }
}
