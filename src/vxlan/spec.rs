//! The `vxlan` port spec: `NAME=vxlan:VNI,local=IP[,remote=IP]...[,dstport=4789][,ttl=N]
//! [,tos=N][,srcport=MIN-MAX][,accept=CIDR[;CIDR]...][,no-learning][,no-gso]`, and the same keys in the
//! configuration file's port table. No I/O: addresses and ranges are checked here, sockets are
//! opened by the control plane.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::wire::{DEFAULT_PORT, DEFAULT_SRC_PORT_MAX, DEFAULT_SRC_PORT_MIN, VNI_MAX};

/// Most remotes one `vxlan` port knows at once: its flood list plus the VTEPs its table entries
/// point to. Sources beyond it are not learned.
pub const MAX_REMOTES: usize = 1024;
/// Largest `mtu=` a `vxlan` port takes: the inner frame (MTU + 18) plus UDP and VXLAN headers
/// must fit one IPv4 datagram (65535 - 20 - 8 - 8 - 18).
pub const MAX_MTU: u32 = 65481;

/// An address prefix, `198.18.0.0/15` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// Whether `ip` is inside the prefix (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = VxlanSpecError;

    fn from_str(s: &str) -> Result<Cidr, VxlanSpecError> {
        let bad = || VxlanSpecError::Cidr(s.to_string());
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        // Clear the host bits, so `198.18.0.1/15` means 198.18.0.0/15.
        let addr = match addr {
            IpAddr::V4(v) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4((u32::from(v) & mask).into())
            }
            IpAddr::V6(v) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6((u128::from(v) & mask).into())
            }
        };
        Ok(Cidr { addr, len })
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a `vxlan` port is: its VNI, its end of the tunnel and the far ends it floods to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VxlanSpec {
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The local underlay address: the source of what the port sends, and the address its
    /// socket listens on (with `dstport`).
    pub local: Option<IpAddr>,
    /// The initial flood list (`remote=`, repeatable): every broadcast, multicast and unknown
    /// unicast frame goes to each of them.
    pub remotes: Vec<IpAddr>,
    /// The UDP port VXLAN packets are sent to and received on.
    pub dstport: u16,
    /// The outer IP TTL (hop limit); `None` = the kernel's default (64).
    pub ttl: Option<u8>,
    /// The outer IP TOS (traffic class) byte; `None` = 0.
    pub tos: Option<u8>,
    /// The outer UDP source port range `[min, max)`, picked by the inner flow's hash.
    pub srcport: (u16, u16),
    /// The VTEP learns which remote each inner source MAC is behind (Linux `learning`);
    /// `no-learning` turns it off (Linux `nolearning`). The bridge port's own learning flag
    /// is separate and stays on.
    pub learning: bool,
    /// Senders accepted besides the known remotes (`accept=CIDR[;CIDR]...`).
    pub accept: Vec<Cidr>,
    /// A GSO frame (a TCP stream's 64 KiB frames from an offload port) crosses the tunnel as
    /// UDP GSO batches: one send of many datagrams, cut by the device that can (a NIC) or
    /// never (a veth to a peer that reads with a UDP socket, a Linux VTEP or tapswitch).
    /// `no-gso` sends one datagram per segment, for a peer that reads a veth underlay with
    /// packet sockets and cannot take a batch whole (Open vSwitch's userspace datapath drops
    /// it: "Too big"; so it would a Linux VTEP's GSO packets).
    pub gso: bool,
}

impl VxlanSpec {
    /// A spec with the defaults for `vni`: port 4789, Linux's source port range, learning on,
    /// no local address yet (required before the port can be opened).
    pub fn new(vni: u32) -> VxlanSpec {
        VxlanSpec {
            vni,
            local: None,
            remotes: Vec::new(),
            dstport: DEFAULT_PORT,
            ttl: None,
            tos: None,
            srcport: (DEFAULT_SRC_PORT_MIN, DEFAULT_SRC_PORT_MAX),
            learning: true,
            accept: Vec::new(),
            gso: true,
        }
    }

    /// Applies one spec word; `Ok(false)` if the word is not a vxlan key (a port flag,
    /// `mtu=`, ...), for the caller to handle.
    pub fn apply(&mut self, word: &str) -> Result<bool, VxlanSpecError> {
        let Some((k, v)) = word.split_once('=') else {
            match word.replace('_', "-").as_str() {
                "learning" => self.learning = true,
                "no-learning" | "nolearning" => self.learning = false,
                "gso" => self.gso = true,
                "no-gso" | "nogso" => self.gso = false,
                _ => return Ok(false),
            }
            return Ok(true);
        };
        let v = v.trim();
        match k.trim() {
            "local" => self.local = Some(parse_ip("local", v)?),
            "remote" => {
                let ip = parse_ip("remote", v)?;
                if !self.remotes.contains(&ip) {
                    self.remotes.push(ip);
                }
            }
            "dstport" => {
                self.dstport = v
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| VxlanSpecError::Number("dstport", v.into()))?
            }
            "ttl" => {
                self.ttl = Some(
                    v.parse::<u8>()
                        .ok()
                        .filter(|t| *t != 0)
                        .ok_or_else(|| VxlanSpecError::Number("ttl", v.into()))?,
                )
            }
            "tos" => {
                let n = match v.strip_prefix("0x") {
                    Some(h) => u8::from_str_radix(h, 16).ok(),
                    None => v.parse::<u8>().ok(),
                };
                self.tos = Some(n.ok_or_else(|| VxlanSpecError::Number("tos", v.into()))?)
            }
            "srcport" => {
                let bad = || VxlanSpecError::SrcPort(v.into());
                let (a, b) = v.split_once('-').ok_or_else(bad)?;
                let (a, b) = (
                    a.trim().parse::<u16>().map_err(|_| bad())?,
                    b.trim().parse::<u16>().map_err(|_| bad())?,
                );
                if a == 0 || a >= b {
                    return Err(bad());
                }
                self.srcport = (a, b);
            }
            "accept" => {
                for c in v.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                    let c: Cidr = c.parse()?;
                    if !self.accept.contains(&c) {
                        self.accept.push(c);
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks what spans several keys: a local address, and one address family throughout.
    pub fn check(&self) -> Result<(), VxlanSpecError> {
        if self.vni > VNI_MAX {
            return Err(VxlanSpecError::Vni(self.vni.to_string()));
        }
        let local = self.local.ok_or(VxlanSpecError::NoLocal)?;
        if local.is_unspecified() || local.is_multicast() {
            return Err(VxlanSpecError::BadLocal(local));
        }
        for r in &self.remotes {
            if r.is_ipv4() != local.is_ipv4() {
                return Err(VxlanSpecError::Family(r.to_string()));
            }
            if r.is_multicast() || r.is_unspecified() {
                return Err(VxlanSpecError::BadRemote(*r));
            }
        }
        for c in &self.accept {
            if c.addr.is_ipv4() != local.is_ipv4() {
                return Err(VxlanSpecError::Family(c.to_string()));
            }
        }
        if self.remotes.len() > MAX_REMOTES {
            return Err(VxlanSpecError::TooManyRemotes(self.remotes.len()));
        }
        Ok(())
    }
}

/// Parses the VNI of `vxlan:VNI`.
pub fn parse_vni(s: &str) -> Result<u32, VxlanSpecError> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| *v <= VNI_MAX)
        .ok_or_else(|| VxlanSpecError::Vni(s.to_string()))
}

fn parse_ip(key: &'static str, v: &str) -> Result<IpAddr, VxlanSpecError> {
    v.parse()
        .map_err(|_| VxlanSpecError::Address(key, v.to_string()))
}

/// What is wrong with a `vxlan` spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VxlanSpecError {
    /// The VNI is not a number 0..=16777215.
    #[error("VNI must be 0..=16777215 (24 bits), got '{0}'")]
    Vni(String),
    /// No `local=`.
    #[error("a vxlan port needs local=IP (its underlay address)")]
    NoLocal,
    /// `local=` is not a unicast address.
    #[error("local={0} is not a unicast address")]
    BadLocal(IpAddr),
    /// `remote=` is not a unicast address.
    #[error("remote={0} is not a unicast address (multicast underlays are not supported)")]
    BadRemote(IpAddr),
    /// Not an IP address.
    #[error("{0}={1} is not an IP address")]
    Address(&'static str, String),
    /// An address of the other family than `local=`.
    #[error("'{0}' is not of the same address family as local=")]
    Family(String),
    /// Not a number in range.
    #[error("{0}={1}: not a valid value (dstport 1..=65535, ttl 1..=255, tos 0..=255)")]
    Number(&'static str, String),
    /// `srcport=` is not `MIN-MAX` with 0 < MIN < MAX.
    #[error("srcport={0}: expected MIN-MAX with 0 < MIN < MAX <= 65535")]
    SrcPort(String),
    /// Not a prefix.
    #[error("'{0}' is not an address prefix like 198.18.0.0/15 or 2001:db8::/32")]
    Cidr(String),
    /// More remotes than [`MAX_REMOTES`].
    #[error("{0} remotes; a vxlan port takes at most {MAX_REMOTES}")]
    TooManyRemotes(usize),
    /// A vxlan key on a port of another kind.
    #[error("'{0}' is a vxlan key; this port is not a vxlan port")]
    NotVxlan(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        let mut s = VxlanSpec::new(100);
        for w in [
            "local=198.18.0.1",
            "remote=198.18.0.2",
            "remote=198.18.0.3",
            "remote=198.18.0.2",
            "dstport=4790",
            "ttl=9",
            "tos=0x10",
            "srcport=49152-49160",
            "accept=198.18.9.1/16;198.19.0.0/16",
            "no-learning",
        ] {
            assert_eq!(s.apply(w), Ok(true), "{w}");
        }
        assert!(s.gso, "GSO send is on by default");
        assert_eq!(s.apply("no-gso"), Ok(true));
        assert!(!s.gso);
        assert_eq!(s.apply("gso"), Ok(true));
        assert!(s.gso);
        assert_eq!(s.apply("no_gso"), Ok(true), "- and _ are the same");
        assert!(!s.gso);
        assert_eq!(s.apply("hairpin"), Ok(false));
        assert_eq!(s.apply("mtu=1400"), Ok(false));
        assert_eq!(s.remotes.len(), 2, "a repeated remote counts once");
        assert_eq!(
            (s.dstport, s.ttl, s.tos, s.srcport),
            (4790, Some(9), Some(16), (49152, 49160))
        );
        assert!(!s.learning);
        assert_eq!(s.accept[0].to_string(), "198.18.0.0/16");
        assert!(s.accept[0].contains("198.18.200.7".parse().unwrap()));
        assert!(!s.accept[0].contains("198.17.0.1".parse().unwrap()));
        assert!(!s.accept[0].contains("::1".parse().unwrap()));
        s.check().unwrap();
        for bad in [
            "local=nope",
            "dstport=0",
            "dstport=70000",
            "ttl=0",
            "tos=300",
            "srcport=5-5",
            "srcport=9",
            "accept=198.18.0.0/33",
        ] {
            assert!(s.apply(bad).is_err(), "{bad}");
        }
        let mut m = VxlanSpec::new(1);
        m.apply("local=2001:2::1").unwrap();
        m.apply("remote=198.18.0.1").unwrap();
        assert!(matches!(m.check(), Err(VxlanSpecError::Family(_))));
        assert_eq!(VxlanSpec::new(1).check(), Err(VxlanSpecError::NoLocal));
        assert!(parse_vni("16777216").is_err());
        assert_eq!(parse_vni("16777215"), Ok(VNI_MAX));
    }

    #[test]
    fn prefixes() {
        let c: Cidr = "2001:db8::1/32".parse().unwrap();
        assert_eq!(c.to_string(), "2001:db8::/32");
        assert!(c.contains("2001:db8:ffff::9".parse().unwrap()));
        assert!(!c.contains("2001:db9::".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let one: Cidr = "198.18.0.1".parse().unwrap();
        assert_eq!(one.len, 32);
        assert!(one.contains("198.18.0.1".parse().unwrap()));
        assert!(!one.contains("198.18.0.2".parse().unwrap()));
    }
}
