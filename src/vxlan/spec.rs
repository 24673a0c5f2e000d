//! The `vxlan` port spec: `NAME=vxlan:VNI,local=IP[,remote=IP]...[,dstport=4789][,ttl=N]
//! [,tos=N][,srcport=MIN-MAX][,accept=CIDR[;CIDR]...][,no-learning][,no-gso]` (or, instead of
//! the VNI, `NAME=vxlan:local=IP,vni-map=VLAN:VNI[;VLAN:VNI]...`), and the same keys in the
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

/// Most entries of one `vni-map`.
pub const MAX_VNI_MAP: usize = 4094;

/// One entry of a `vni-map`: frames of `vlan` cross the tunnel untagged in `vni`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct VniMapEntry {
    /// The bridge VLAN (1..=4094).
    pub vlan: u16,
    /// The VNI (24 bits).
    pub vni: u32,
}

/// What a `vxlan` port is: its VNI (or its VLAN-to-VNI map), its end of the tunnel and the
/// far ends it floods to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VxlanSpec {
    /// The VXLAN network identifier (24 bits). With a `vni-map`, the VNI of this one VTEP of
    /// the port (see [`VxlanSpec::for_vni`]), 0 in the port's spec.
    pub vni: u32,
    /// Whether the spec names a VNI (`vxlan:VNI`, `vni = N`); a port has one or a `vni-map`.
    #[serde(skip)]
    pub vni_given: bool,
    /// The VLAN-to-VNI map (`vni-map=10:1010;20:1020`), one-to-one, in VLAN order; empty for
    /// a port of one VNI. With a map, the port is a tagged member of each VLAN, a frame of
    /// VLAN 10 crosses the tunnel untagged in VNI 1010 and comes back into VLAN 10, and each
    /// VNI has its own table and flood list.
    pub vni_map: Vec<VniMapEntry>,
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
            vni_given: true,
            vni_map: Vec::new(),
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

    /// A spec without a VNI yet, for `vxlan:local=IP,vni-map=...` (a `vni-map` must come).
    pub fn unnumbered() -> VxlanSpec {
        VxlanSpec {
            vni_given: false,
            ..VxlanSpec::new(0)
        }
    }

    /// The spec of the VTEP of one VNI of the port (its own table and flood list): this spec
    /// with `vni` and without the map (the port keeps it; a copy per VTEP would make a map of
    /// 4094 entries cost 4094 x 4094 entries).
    pub fn for_vni(&self, vni: u32) -> VxlanSpec {
        VxlanSpec {
            vni,
            vni_map: Vec::new(),
            ..self.clone()
        }
    }

    /// The VNI of `vlan` in the map.
    pub fn vni_of_vlan(&self, vlan: u16) -> Option<u32> {
        self.vni_map.iter().find(|e| e.vlan == vlan).map(|e| e.vni)
    }

    /// The VNIs of the port: the map's, or its one VNI.
    pub fn vnis(&self) -> Vec<u32> {
        if self.vni_map.is_empty() {
            vec![self.vni]
        } else {
            self.vni_map.iter().map(|e| e.vni).collect()
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
            "vni-map" | "vni_map" => {
                let items: Vec<&str> = v
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                if items.is_empty() {
                    return Err(VxlanSpecError::MapEntry(v.to_string()));
                }
                for item in items {
                    let e = parse_map_entry(item)?;
                    self.add_map_entry(e)?;
                }
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

    /// Adds one map entry; the map stays one-to-one and in VLAN order.
    pub fn add_map_entry(&mut self, e: VniMapEntry) -> Result<(), VxlanSpecError> {
        if let Some(o) = self
            .vni_map
            .iter()
            .find(|o| o.vlan == e.vlan || o.vni == e.vni)
        {
            if *o == e {
                return Ok(());
            }
            return Err(VxlanSpecError::MapNotOneToOne(*o, e));
        }
        if self.vni_map.len() >= MAX_VNI_MAP {
            return Err(VxlanSpecError::MapTooLong);
        }
        let at = self.vni_map.partition_point(|o| o.vlan < e.vlan);
        self.vni_map.insert(at, e);
        Ok(())
    }

    /// Checks what spans several keys: a VNI or a map, a local address, and one address
    /// family throughout.
    pub fn check(&self) -> Result<(), VxlanSpecError> {
        if self.vni > VNI_MAX {
            return Err(VxlanSpecError::Vni(self.vni.to_string()));
        }
        match (self.vni_given, self.vni_map.is_empty()) {
            (true, false) => return Err(VxlanSpecError::VniAndMap),
            (false, true) => return Err(VxlanSpecError::NoVni),
            _ => {}
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

/// Parses one `VLAN:VNI` item of a `vni-map`.
pub fn parse_map_entry(item: &str) -> Result<VniMapEntry, VxlanSpecError> {
    let bad = || VxlanSpecError::MapEntry(item.to_string());
    let (vlan, vni) = item.split_once(':').ok_or_else(bad)?;
    let vlan = vlan
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(bad)?;
    let vni = parse_vni(vni).map_err(|_| bad())?;
    Ok(VniMapEntry { vlan, vni })
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
    /// Neither `vxlan:VNI` nor `vni-map=`.
    #[error("a vxlan port needs a VNI (vxlan:VNI) or a VLAN-to-VNI map (vni-map=VLAN:VNI;...)")]
    NoVni,
    /// Both `vxlan:VNI` and `vni-map=`.
    #[error("a vxlan port has either one VNI (vxlan:VNI) or a vni-map, not both")]
    VniAndMap,
    /// A `vni-map` item that is not `VLAN:VNI`.
    #[error("vni-map item '{0}': expected VLAN:VNI with VLAN 1..=4094 and VNI 0..=16777215")]
    MapEntry(String),
    /// Two map entries share a VLAN or a VNI.
    #[error("vni-map must be one-to-one: {}:{} and {}:{} share a VLAN or a VNI", .0.vlan, .0.vni, .1.vlan, .1.vni)]
    MapNotOneToOne(VniMapEntry, VniMapEntry),
    /// More than [`MAX_VNI_MAP`] entries.
    #[error("a vni-map has at most {MAX_VNI_MAP} entries")]
    MapTooLong,
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
    fn vni_maps() {
        let mut s = VxlanSpec::unnumbered();
        s.apply("local=198.18.0.1").unwrap();
        assert_eq!(s.check(), Err(VxlanSpecError::NoVni), "a VNI or a map");
        assert_eq!(s.apply("vni-map=20:1020; 10:1010"), Ok(true));
        assert_eq!(s.apply("vni-map=10:1010"), Ok(true), "the same entry again");
        s.check().unwrap();
        assert_eq!(
            s.vni_map,
            [
                VniMapEntry {
                    vlan: 10,
                    vni: 1010
                },
                VniMapEntry {
                    vlan: 20,
                    vni: 1020
                }
            ],
            "in VLAN order"
        );
        assert_eq!(s.vnis(), [1010, 1020]);
        assert_eq!(s.vni_of_vlan(20), Some(1020));
        assert_eq!(s.vni_of_vlan(30), None);
        assert_eq!(s.for_vni(1020).vni, 1020);
        assert!(
            s.for_vni(1020).vni_map.is_empty(),
            "the map stays with the port"
        );
        // one-to-one: a VLAN twice, or a VNI twice
        assert!(matches!(
            s.apply("vni-map=10:1011"),
            Err(VxlanSpecError::MapNotOneToOne(..))
        ));
        assert!(matches!(
            s.apply("vni-map=11:1010"),
            Err(VxlanSpecError::MapNotOneToOne(..))
        ));
        for bad in [
            "vni-map=0:5",
            "vni-map=4095:5",
            "vni-map=10",
            "vni-map=10:16777216",
            "vni-map=x:1",
            "vni-map=",
        ] {
            assert!(
                matches!(s.apply(bad), Err(VxlanSpecError::MapEntry(_))),
                "{bad}"
            );
        }
        assert_eq!(s.vni_map.len(), 2, "a failed word changes nothing kept");
        // a VNI and a map together
        let mut b = VxlanSpec::new(7);
        b.apply("local=198.18.0.1").unwrap();
        b.apply("vni-map=10:1010").unwrap();
        assert_eq!(b.check(), Err(VxlanSpecError::VniAndMap));
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
