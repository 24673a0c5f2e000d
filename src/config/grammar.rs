//! The port spec grammar (`--port`, the API, `spec = "..."` in the file; see the module
//! documentation of [`crate::config`]) and the small value grammars shared by the command line,
//! the file and the API: port flags, VLAN keys, group masks, listen and control addresses,
//! `--stp`, `p2p=`. Pure string parsing: no file, no lookup, no clock.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::PortSpec;
use crate::forwarding::PortFlags;
use crate::port::{check_ifname, IfnameError, PortKind};
use crate::stp::{P2p, PortConfig as StpPortConfig};
use crate::validate::{self, OutOfRange};
use crate::vlan::{check_vid, ParseVlanSetError, PortVlans, VlanError, VlanSet};
use crate::vxlan::spec::{VxlanSpec, VxlanSpecError};

/// The VLAN keys of one spec or port table, before they are combined.
#[derive(Clone, Debug, Default)]
pub struct VlanKeys {
    /// `access=N`.
    pub access: Option<u16>,
    /// `trunk=LIST`.
    pub trunk: Option<VlanSet>,
    /// `native=N` (with `trunk=`).
    pub native: Option<u16>,
    /// `vlans=LIST` (tagged members).
    pub vlans: Option<VlanSet>,
    /// `untagged=LIST` (untagged members).
    pub untagged: Option<VlanSet>,
    /// `pvid=N`.
    pub pvid: Option<u16>,
}

impl VlanKeys {
    fn is_empty(&self) -> bool {
        self.access.is_none()
            && self.trunk.is_none()
            && self.native.is_none()
            && self.vlans.is_none()
            && self.untagged.is_none()
            && self.pvid.is_none()
    }

    /// Takes one spec word if it is a VLAN key (`access=`, `trunk=`, `native=`, `vlans=`,
    /// `untagged=`, `pvid=`): `Ok(false)` for any other word.
    fn apply(&mut self, word: &str) -> Result<bool, SpecProblem> {
        let vid = |v: &str| -> Result<u16, SpecProblem> {
            let n: u16 = v.trim().parse().map_err(|_| VlanError::InvalidVid(0))?;
            Ok(check_vid(n)?)
        };
        let Some((key, v)) = word.split_once('=') else {
            return Ok(false);
        };
        match key {
            "access" => self.access = Some(vid(v)?),
            "trunk" => self.trunk = Some(v.parse()?),
            "native" => self.native = Some(vid(v)?),
            "vlans" => self.vlans = Some(v.parse()?),
            "untagged" => self.untagged = Some(v.parse()?),
            "pvid" => self.pvid = Some(vid(v)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The port's VLANs: `access=N` alone; or `trunk=LIST` (tagged) with `native=N` (PVID,
    /// untagged); or `vlans=` (tagged), `untagged=` (untagged) and `pvid=N` (made a member,
    /// untagged unless listed in `vlans=`). `None` when no key was given.
    pub fn build(&self) -> Result<Option<PortVlans>, SpecProblem> {
        if self.is_empty() {
            return Ok(None);
        }
        let plain = self.vlans.is_some() || self.untagged.is_some() || self.pvid.is_some();
        if let Some(a) = self.access {
            if self.trunk.is_some() || self.native.is_some() || plain {
                return Err(SpecProblem::VlanKeys(
                    "access= cannot be combined with other VLAN keys",
                ));
            }
            return Ok(Some(PortVlans::access(a)?));
        }
        if self.native.is_some() && self.trunk.is_none() {
            return Err(SpecProblem::VlanKeys("native= needs trunk="));
        }
        if let Some(t) = &self.trunk {
            if plain {
                return Err(SpecProblem::VlanKeys(
                    "trunk= cannot be combined with vlans=, untagged= or pvid= (use native=)",
                ));
            }
            return Ok(Some(PortVlans::trunk(t, self.native)?));
        }
        let mut p = PortVlans::none();
        for v in self.vlans.iter().flat_map(|s| s.iter()) {
            p.add(v, false, false)?;
        }
        for v in self.untagged.iter().flat_map(|s| s.iter()) {
            p.add(v, false, true)?;
        }
        if let Some(v) = self.pvid {
            let untagged = !p.is_member(v) || p.is_untagged(v);
            p.add(v, true, untagged)?;
        }
        Ok(Some(p))
    }
}

/// A flag word that is not a port flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown port flag '{0}' (known: learning, flood, mcast_flood, bcast_flood, hairpin, isolated, locked, uplink, neigh_suppress, each also as no-FLAG, and mtu=N)")]
pub struct UnknownFlag(pub String);

/// Applies one spec flag word (`hairpin`, `no-flood`, `mcast_flood`...) to `flags`.
pub fn apply_flag(flags: &mut PortFlags, word: &str) -> Result<(), UnknownFlag> {
    let (name, on) = match word
        .strip_prefix("no-")
        .or_else(|| word.strip_prefix("no_"))
    {
        Some(rest) => (rest, false),
        None => (word, true),
    };
    let f = PortFlags::by_name(name).ok_or_else(|| UnknownFlag(word.to_string()))?;
    *flags = flags.with(f, on);
    Ok(())
}

/// What is wrong with a port spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    /// KIND is not one of the known kinds.
    #[error("unknown port kind '{0}' (known: tap, packet, stream, dgram, vhost, vxlan)")]
    UnknownKind(String),
    /// Socket kinds take an absolute path.
    #[error("{0} needs an absolute socket path")]
    RelativePath(&'static str),
    /// The interface name is not valid.
    #[error(transparent)]
    Ifname(#[from] IfnameError),
    /// VLAN keys on a `vxlan` port with a `vni-map`.
    #[error("a vxlan port with a vni-map is a tagged member of the map's VLANs: no access=, trunk=, vlans=, untagged= or pvid=")]
    MapVlans,
    /// `=` with nothing before it.
    #[error("empty port name before '='")]
    EmptyName,
    /// A number out of its range.
    #[error(transparent)]
    Range(#[from] OutOfRange),
    /// `mode=` is not octal.
    #[error("mode must be octal like 0660, got '{0}'")]
    Mode(String),
    /// `owner=` is not numeric.
    #[error("owner must be UID or UID:GID (numbers), got '{0}'")]
    Owner(String),
    /// `offload=` is not on/off.
    #[error("offload must be on or off, got '{0}'")]
    Offload(String),
    /// A word that is not a flag or a key.
    #[error(transparent)]
    Flag(#[from] UnknownFlag),
    /// A spanning tree port setting out of range.
    #[error(transparent)]
    Stp(#[from] crate::stp::StpPortError),
    /// `queues=N` on a port that cannot have several queues.
    #[error(
        "queues= needs a tap port with offload on (multiqueue TAPs are opened with IFF_VNET_HDR) or a vhost port (1..=8 queue pairs)"
    )]
    Queues,
    /// `p2p=` is not auto/yes/no.
    #[error("p2p must be auto, yes or no, got '{0}'")]
    P2p(String),
    /// A VLAN list that does not parse.
    #[error(transparent)]
    VlanList(#[from] ParseVlanSetError),
    /// A VLAN setting Linux would refuse.
    #[error(transparent)]
    Vlan(#[from] VlanError),
    /// VLAN keys that do not go together.
    #[error("{0}")]
    VlanKeys(&'static str),
    /// A `vxlan` key or value is wrong.
    #[error(transparent)]
    Vxlan(#[from] VxlanSpecError),
    /// A multicast snooping key (`mcast-router=`, `mcast-max-groups=`) is wrong.
    #[error(transparent)]
    Mcast(#[from] crate::mcast::settings::SettingError),
}

/// A port spec that cannot be parsed: the spec and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("port spec '{spec}': {problem}")]
pub struct SpecError {
    /// The whole spec as given.
    pub spec: String,
    /// What is wrong.
    pub problem: SpecProblem,
}

/// Parses a port spec; see the module documentation of [`crate::config`].
pub fn parse_spec(spec: &str) -> Result<PortSpec, SpecError> {
    parse_spec_inner(spec).map_err(|problem| SpecError {
        spec: spec.to_string(),
        problem,
    })
}

fn parse_spec_inner(spec: &str) -> Result<PortSpec, SpecProblem> {
    let mut words = spec.split(',');
    let mut out = parse_head(words.next().unwrap_or_default().trim())?;
    let mut vk = VlanKeys::default();
    for word in words.map(str::trim).filter(|w| !w.is_empty()) {
        apply_word(&mut out, &mut vk, word)?;
    }
    finish(out, &vk)
}

/// `[NAME=][KIND:]ARG`: the port with its name, kind and argument, every other setting at
/// its default (a `vxlan` port with the tunnel of its VNI).
fn parse_head(head: &str) -> Result<PortSpec, SpecProblem> {
    let (name, rest) = match head.split_once('=') {
        Some((n, r)) => (Some(n.trim()), r.trim()),
        None => (None, head),
    };
    let (kind, arg) = match rest.split_once(':') {
        Some((k, a)) => (parse_kind(k)?, a),
        None => (PortKind::Tap, rest),
    };
    let mut vxlan = None;
    let name = match kind {
        PortKind::Vxlan if arg.contains('=') => {
            // `vxlan:local=IP,vni-map=...`: no VNI, the first key right after the colon
            let mut v = VxlanSpec::unnumbered();
            if !v.apply(arg)? {
                return Err(SpecProblem::Vxlan(VxlanSpecError::NoVni));
            }
            vxlan = Some(v);
            name.map_or_else(|| "vxlan".to_string(), str::to_string)
        }
        PortKind::Vxlan => {
            let v = VxlanSpec::new(crate::vxlan::spec::parse_vni(arg)?);
            let default_name = format!("vxlan{}", v.vni);
            vxlan = Some(v);
            name.map_or(default_name, str::to_string)
        }
        PortKind::Stream | PortKind::Dgram | PortKind::Vhost => {
            if !arg.starts_with('/') {
                return Err(SpecProblem::RelativePath(kind.as_str()));
            }
            // Default name: the socket file's stem.
            name.unwrap_or_else(|| {
                std::path::Path::new(arg)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or(arg)
            })
            .to_string()
        }
        _ => {
            check_ifname(arg)?;
            name.unwrap_or(arg).to_string()
        }
    };
    if name.is_empty() {
        return Err(SpecProblem::EmptyName);
    }
    let mut out = PortSpec::new(name, kind, arg.to_string());
    out.vxlan = vxlan;
    Ok(out)
}

fn parse_kind(k: &str) -> Result<PortKind, SpecProblem> {
    Ok(match k {
        "tap" => PortKind::Tap,
        "packet" => PortKind::Packet,
        "stream" => PortKind::Stream,
        "dgram" => PortKind::Dgram,
        "vhost" => PortKind::Vhost,
        "vxlan" => PortKind::Vxlan,
        other => return Err(SpecProblem::UnknownKind(other.to_string())),
    })
}

/// One word after the head: a `vxlan` key (on a `vxlan` port), a VLAN key, a spanning tree,
/// storm control, socket or port setting, or else a flag.
fn apply_word(out: &mut PortSpec, vk: &mut VlanKeys, word: &str) -> Result<(), SpecProblem> {
    if let Some(v) = out.vxlan.as_mut() {
        if v.apply(word)? {
            return Ok(());
        }
    } else if is_vxlan_key(word) {
        return Err(VxlanSpecError::NotVxlan(word.to_string()).into());
    }
    if vk.apply(word)?
        || stp_word(&mut out.stp, word)?
        || storm_word(&mut out.storm, word)?
        || socket_word(out, word)?
        || port_word(out, word)?
        || mcast_word(&mut out.mcast, word)?
    {
        return Ok(());
    }
    Ok(apply_flag(&mut out.flags, word)?)
}

/// `stp-cost=`, `stp-priority=`, `p2p=`, `[no-]edge`, `[no-]auto-edge`, `[no-]bpdu-guard`,
/// `[no-]root-guard`.
fn stp_word(stp: &mut StpPortConfig, word: &str) -> Result<bool, SpecProblem> {
    if let Some(v) = word.strip_prefix("stp-cost=") {
        stp.path_cost = Some(validate::STP_PORT_COST.parse("stp-cost", v)? as u32);
    } else if let Some(v) = word.strip_prefix("stp-priority=") {
        stp.priority = validate::STP_PORT_PRIORITY.parse("stp-priority", v)? as u8;
    } else if let Some(v) = word.strip_prefix("p2p=") {
        stp.p2p = parse_p2p(v)?;
    } else if word == "edge" || word == "no-edge" {
        stp.admin_edge = word == "edge";
    } else if word == "auto-edge" || word == "no-auto-edge" {
        stp.auto_edge = word == "auto-edge";
    } else if word == "bpdu-guard" || word == "no-bpdu-guard" {
        stp.bpdu_guard = word == "bpdu-guard";
    } else if word == "root-guard" || word == "no-root-guard" {
        stp.root_guard = word == "root-guard";
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// The port's snooping settings with Linux's names, `-` for `_`: `mcast-router=0..3`,
/// `[no-]mcast-fast-leave`, `mcast-max-groups=N`.
fn mcast_word(m: &mut crate::mcast::PortConfig, word: &str) -> Result<bool, SpecProblem> {
    let (key, value) = match word.split_once('=') {
        Some((k, v)) => (k, v),
        None => match word.strip_prefix("no-") {
            Some(k) => (k, "off"),
            None => (word, "on"),
        },
    };
    let key = match key {
        "mcast-router" | "mcast-fast-leave" | "mcast-max-groups" => key.replace('-', "_"),
        _ => return Ok(false),
    };
    m.set(&key, value)?;
    Ok(true)
}

/// `storm-broadcast=`, `storm-multicast=`, `storm-unknown-unicast=` (frames/s).
fn storm_word(storm: &mut [u64; 3], word: &str) -> Result<bool, SpecProblem> {
    for (i, key) in [
        "storm-broadcast",
        "storm-multicast",
        "storm-unknown-unicast",
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = word.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            storm[i] = validate::STORM_PPS.parse(key, v)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Socket ports: `mode=` (octal), `owner=UID[:GID]`, `max-conns=`.
fn socket_word(out: &mut PortSpec, word: &str) -> Result<bool, SpecProblem> {
    if let Some(v) = word.strip_prefix("mode=") {
        out.sock_mode = Some(
            u32::from_str_radix(v.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| SpecProblem::Mode(v.to_string()))?,
        );
    } else if let Some(v) = word.strip_prefix("owner=") {
        let bad = || SpecProblem::Owner(v.to_string());
        let (u, g) = match v.split_once(':') {
            Some((u, g)) => (u, Some(g.parse::<u32>().map_err(|_| bad())?)),
            None => (v, None),
        };
        out.sock_owner = Some((u.parse::<u32>().map_err(|_| bad())?, g));
    } else if let Some(v) = word.strip_prefix("max-conns=") {
        out.max_conns = Some(validate::MAX_CONNS.parse("max-conns", v)? as usize);
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// `queues=`, `mtu=`, `max-learned=`, `offload=on|off`.
fn port_word(out: &mut PortSpec, word: &str) -> Result<bool, SpecProblem> {
    if let Some(v) = word.strip_prefix("queues=") {
        out.queues = validate::QUEUES.parse("queues", v)? as usize;
    } else if let Some(v) = word.strip_prefix("mtu=") {
        out.mtu = Some(validate::MTU.parse("mtu", v)? as u32);
    } else if let Some(v) = word.strip_prefix("max-learned=") {
        out.max_learned = validate::PORT_MAX_LEARNED.parse("max-learned", v)? as usize;
    } else if let Some(v) = word.strip_prefix("offload=") {
        out.offload = match v {
            "on" | "true" => true,
            "off" | "false" => false,
            _ => return Err(SpecProblem::Offload(v.to_string())),
        };
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// The checks that need every word: VLAN keys together, spanning tree ranges, queues for
/// the kind, and a `vxlan` port's tunnel and MTU.
fn finish(mut out: PortSpec, vk: &VlanKeys) -> Result<PortSpec, SpecProblem> {
    out.vlans = vk.build()?;
    out.stp.validate()?;
    let multi = (out.kind == PortKind::Tap && out.offload)
        || (out.kind == PortKind::Vhost && out.queues <= 8);
    if out.queues > 1 && !multi {
        return Err(SpecProblem::Queues);
    }
    if let Some(v) = &out.vxlan {
        v.check()?;
        if !v.vni_map.is_empty() && out.vlans.is_some() {
            return Err(SpecProblem::MapVlans);
        }
        if let Some(m) = out.mtu {
            check_vxlan_mtu(m)?;
        }
    }
    Ok(out)
}

/// A `vxlan` port's MTU: 68 up to what fits in a 64 KiB datagram with the tunnel headers.
pub(super) fn check_vxlan_mtu(mtu: u32) -> Result<u64, OutOfRange> {
    validate::Range {
        min: 68,
        max: crate::vxlan::spec::MAX_MTU.into(),
    }
    .check("mtu", mtu.into())
}

/// Parses `p2p=auto|yes|no`.
pub fn parse_p2p(v: &str) -> Result<P2p, SpecProblem> {
    match v {
        "auto" => Ok(P2p::Auto),
        "yes" | "on" | "true" => Ok(P2p::Yes),
        "no" | "off" | "false" => Ok(P2p::No),
        _ => Err(SpecProblem::P2p(v.to_string())),
    }
}

/// Whether a spec word is one of the `vxlan` keys (refused on other kinds).
fn is_vxlan_key(word: &str) -> bool {
    let key = word.split_once('=').map_or(word, |(k, _)| k);
    matches!(
        key,
        "local" | "remote" | "dstport" | "ttl" | "tos" | "srcport" | "accept" | "vni-map"
    )
}

/// Named groups for `group_fwd_mask` (bit X forwards 01:80:c2:00:00:0X).
pub const GROUP_PRESETS: [(&str, u16); 7] = [
    ("stp", 1 << 0),
    ("pause", 1 << 1),
    ("lacp", 1 << 2),
    ("slow", 1 << 2),
    ("dot1x", 1 << 3),
    ("lldp", 1 << 0xe),
    ("all", 0xffff),
];

/// A group mask word that is neither a number nor a preset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a group mask: use a number 0..0xffff or names (stp, pause, lacp, slow, dot1x, lldp, all, none)")]
pub struct BadMask(pub String);

/// Parses a group mask: a number (`16384`, `0x4000`) or a comma list of presets and numbers.
pub fn parse_group_mask(s: &str) -> Result<u16, BadMask> {
    let mut mask = 0u16;
    let bad = |w: &str| BadMask(w.to_string());
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let lw = w.to_ascii_lowercase();
        if let Some((_, m)) = GROUP_PRESETS.iter().find(|(n, _)| *n == lw) {
            mask |= m;
        } else if lw == "none" {
        } else if let Some(hex) = lw.strip_prefix("0x") {
            mask |= u16::from_str_radix(hex, 16).map_err(|_| bad(w))?;
        } else {
            mask |= lw.parse::<u16>().map_err(|_| bad(w))?;
        }
    }
    Ok(mask)
}

/// A listen address that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an address like 127.0.0.1:9479 or [::1]:9479, or 'none'")]
pub struct BadAddress(pub String);

/// Parses a listen address; `none` turns the endpoint off.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, BadAddress> {
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| BadAddress(s.to_string()))
}

/// Parses `--control`: a path, or `none` (no control socket).
pub fn parse_control(s: &str) -> Option<PathBuf> {
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        None
    } else {
        Some(PathBuf::from(s))
    }
}

/// Parses `--stp`: `off` or `rstp` (`on` accepted for rstp).
pub fn parse_stp(v: &str) -> Result<bool, BadStp> {
    match v {
        "off" | "none" => Ok(false),
        "rstp" | "on" => Ok(true),
        _ => Err(BadStp(v.to_string())),
    }
}

/// An `--stp` value that is neither off nor rstp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a spanning tree mode: use off or rstp")]
pub struct BadStp(pub String);

/// Checks a `default_pvid`: 0 (no PVID for new ports) or a usable VID.
pub fn check_default_pvid(v: u16) -> Result<u16, VlanError> {
    if v == 0 {
        Ok(0)
    } else {
        check_vid(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = parse_spec("tsw0").unwrap();
        assert_eq!(
            (s.name.as_str(), s.arg.as_str(), s.kind),
            ("tsw0", "tsw0", PortKind::Tap)
        );
        assert_eq!(s.flags, PortFlags::default());
        let s = parse_spec("up=tap:tsw9,hairpin,no-learning,isolated,no-flood,mtu=9000").unwrap();
        assert_eq!(s.name, "up");
        assert_eq!(s.arg, "tsw9");
        assert!(s.flags.contains(PortFlags::HAIRPIN) && s.flags.contains(PortFlags::ISOLATED));
        assert!(!s.flags.contains(PortFlags::LEARNING));
        assert!(!s.flags.contains(PortFlags::FLOOD));
        assert!(s.flags.contains(PortFlags::MCAST_FLOOD));
        assert_eq!(s.mtu, Some(9000));
        assert!(s.offload);
        assert!(!parse_spec("tsw0,offload=off").unwrap().offload);
        assert!(parse_spec("tsw0,offload=maybe").is_err());
        let s = parse_spec("stream:/run/sw/vm.sock,mode=0660,owner=1000:1000,max-conns=8").unwrap();
        assert_eq!((s.name.as_str(), s.kind), ("vm", PortKind::Stream));
        assert_eq!(s.sock_mode, Some(0o660));
        assert_eq!(s.sock_owner, Some((1000, Some(1000))));
        assert_eq!(s.max_conns, Some(8));
        assert_eq!(parse_spec("tsw0,max-learned=4").unwrap().max_learned, 4);
        assert!(parse_spec("tsw0,max-learned=x").is_err());
        let s = parse_spec("g=dgram:/tmp/s.sock").unwrap();
        assert_eq!(
            (s.name.as_str(), s.kind, s.arg.as_str()),
            ("g", PortKind::Dgram, "/tmp/s.sock")
        );
        let s = parse_spec("packet:veth3,hairpin").unwrap();
        assert_eq!((s.name.as_str(), s.kind), ("veth3", PortKind::Packet));
        assert!(parse_spec("stream:relative.sock")
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        assert!(parse_spec("tsw0,bogus")
            .unwrap_err()
            .to_string()
            .contains("unknown port flag 'bogus'"));
        assert!(parse_spec("thisnameistoolong0")
            .unwrap_err()
            .to_string()
            .contains("at most 15"));
        assert!(parse_spec("vde:x")
            .unwrap_err()
            .to_string()
            .contains("unknown port kind"));
        assert!(parse_spec("tsw0,mtu=12").is_err());
        assert!(parse_spec("=tsw0").is_err());
    }

    #[test]
    fn socket_and_port_words() {
        let s = parse_spec("v=vhost:/run/v.sock,queues=8,mode=0o600,owner=7").unwrap();
        assert_eq!(
            (s.queues, s.sock_mode, s.sock_owner),
            (8, Some(0o600), Some((7, None)))
        );
        for (bad, what) in [
            ("v=vhost:/run/v.sock,queues=9", "queues="),
            ("tsw0,offload=off,queues=2", "queues="),
            ("s=stream:/run/s.sock,mode=0999", "mode must be octal"),
            ("s=stream:/run/s.sock,mode=01000", "mode must be octal"),
            ("s=stream:/run/s.sock,owner=me", "owner must be UID"),
            ("s=stream:/run/s.sock,owner=1:x", "owner must be UID"),
            ("s=stream:/run/s.sock,max-conns=0", "max-conns must be"),
        ] {
            let e = parse_spec(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("port spec '{bad}': ")), "{e}");
            assert!(e.contains(what), "{bad}: {e}");
        }
        assert_eq!(parse_spec("tsw0,queues=4").unwrap().queues, 4);
    }

    #[test]
    fn stp_and_storm_words() {
        let s = parse_spec(
            "tsw0,stp-cost=100,stp-priority=32,p2p=no,edge,no-auto-edge,bpdu-guard,root-guard,storm-broadcast=10,storm-multicast=20,storm-unknown-unicast=30",
        )
        .unwrap();
        assert_eq!(s.stp.path_cost, Some(100));
        assert_eq!(s.stp.priority, 32);
        assert_eq!(s.stp.p2p, P2p::No);
        assert!(s.stp.admin_edge && !s.stp.auto_edge && s.stp.bpdu_guard && s.stp.root_guard);
        assert_eq!(s.storm, [10, 20, 30]);
        let s = parse_spec("tsw0,edge,no-edge,bpdu-guard,no-bpdu-guard").unwrap();
        assert!(!s.stp.admin_edge && !s.stp.bpdu_guard);
        assert!(parse_spec("tsw0,stp-cost=0").is_err());
        assert!(parse_spec("tsw0,stp-priority=241").is_err());
        assert!(parse_spec("tsw0,storm-broadcast=x").is_err());
        let e = parse_spec("tsw0,stp-priority=17").unwrap_err().to_string();
        assert!(e.contains("16"), "{e}");
        assert_eq!(parse_p2p("on"), Ok(P2p::Yes));
        assert_eq!(parse_p2p("auto"), Ok(P2p::Auto));
        assert!(parse_p2p("maybe").is_err());
    }

    #[test]
    fn vlan_keys() {
        let v = |s: &str| parse_spec(s).unwrap().vlans.unwrap();
        let a = v("tsw0,access=10");
        assert_eq!(a.pvid(), Some(10));
        assert!(a.is_untagged(10) && a.members().len() == 1);
        let t = v("tsw3,trunk=10;20-29,native=1");
        assert_eq!(t.pvid(), Some(1));
        assert!(t.is_untagged(1) && t.is_member(25) && !t.is_untagged(25));
        assert_eq!(t.members().len(), 12);
        let p = v("tsw4,vlans=10;20,untagged=30,pvid=30");
        assert_eq!(p.pvid(), Some(30));
        assert!(p.is_untagged(30) && !p.is_untagged(10) && p.is_member(20));
        let p = v("tsw4,vlans=10,pvid=10");
        assert!(!p.is_untagged(10), "pvid on a tagged member stays tagged");
        assert!(parse_spec("tsw0").unwrap().vlans.is_none());
        for bad in [
            "tsw0,access=0",
            "tsw0,access=4095",
            "tsw0,trunk=10;x",
            "tsw0,native=5",
            "tsw0,access=10,trunk=20",
            "tsw0,trunk=10,pvid=10",
            "tsw0,vlans=4095",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
        let e = parse_spec("tsw0,trunk=10;0").unwrap_err().to_string();
        assert!(e.contains("VID 0"), "{e}");
        assert_eq!(check_default_pvid(0), Ok(0));
        assert_eq!(check_default_pvid(4094), Ok(4094));
        assert!(check_default_pvid(4095).is_err());
    }

    #[test]
    fn vxlan_specs() {
        let s = parse_spec(
            "vx0=vxlan:100,local=198.18.0.1,remote=198.18.0.2,remote=198.18.0.3,dstport=4790,no-learning,hairpin,accept=198.19.0.0/16;198.20.0.0/16,mtu=1400",
        )
        .unwrap();
        assert_eq!(
            (s.name.as_str(), s.kind, s.arg.as_str()),
            ("vx0", PortKind::Vxlan, "100")
        );
        let v = s.vxlan.as_ref().unwrap();
        assert_eq!(v.remotes.len(), 2);
        assert_eq!((v.dstport, v.learning, v.accept.len()), (4790, false, 2));
        assert!(s.flags.contains(PortFlags::HAIRPIN));
        assert!(
            s.flags.contains(PortFlags::LEARNING),
            "no-learning is the VTEP's; the bridge port still learns"
        );
        assert_eq!(s.mtu, Some(1400));
        let s = parse_spec("vxlan:7,local=2001:2::1").unwrap();
        assert_eq!(s.name, "vxlan7");
        for (bad, what) in [
            ("vxlan:100", "local="),
            ("vxlan:16777216,local=198.18.0.1", "24 bits"),
            (
                "vxlan:1,local=198.18.0.1,remote=2001:2::1",
                "address family",
            ),
            ("vxlan:1,local=198.18.0.1,mtu=65500", "mtu"),
            ("tsw0,remote=198.18.0.2", "vxlan key"),
        ] {
            let e = parse_spec(bad).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn vxlan_vni_map_specs() {
        let s = parse_spec("vx0=vxlan:local=198.18.0.1,vni-map=10:1010;20:1020,remote=198.18.0.2")
            .unwrap();
        assert_eq!((s.name.as_str(), s.kind), ("vx0", PortKind::Vxlan));
        let v = s.vxlan.as_ref().unwrap();
        assert_eq!(v.vnis(), [1010, 1020]);
        assert_eq!(v.remotes.len(), 1);
        assert!(s.vlans.is_none(), "the VLANs come from the map at attach");
        for (bad, what) in [
            ("vx0=vxlan:local=198.18.0.1", "vni-map"),
            ("vx0=vxlan:100,local=198.18.0.1,vni-map=10:1010", "not both"),
            (
                "vx0=vxlan:local=198.18.0.1,vni-map=10:1010;20:1010",
                "one-to-one",
            ),
            ("vx0=vxlan:local=198.18.0.1,vni-map=4095:1", "VLAN 1..=4094"),
            (
                "vx0=vxlan:local=198.18.0.1,vni-map=10:1010,access=10",
                "tagged member",
            ),
            (
                "vx0=vxlan:local=198.18.0.1,vni-map=10:1010,trunk=10",
                "tagged member",
            ),
            ("tsw0,vni-map=10:1010", "vxlan key"),
            ("vx0=vxlan:nope=1,vni-map=10:1010", "VNI"),
        ] {
            let e = parse_spec(bad).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn group_masks() {
        assert_eq!(parse_group_mask("lldp").unwrap(), 0x4000);
        assert_eq!(parse_group_mask("lldp,lacp").unwrap(), 0x4004);
        assert_eq!(parse_group_mask("0x8").unwrap(), 8);
        assert_eq!(parse_group_mask("all").unwrap(), 0xffff);
        assert_eq!(parse_group_mask("none").unwrap(), 0);
        assert_eq!(parse_group_mask("LLDP, 8").unwrap(), 0x4008);
        assert!(parse_group_mask("bpdu").is_err());
        assert!(parse_group_mask("70000").is_err());
    }

    #[test]
    fn addresses_and_modes() {
        assert_eq!(
            parse_listen("[::1]:9479"),
            Ok(Some("[::1]:9479".parse().unwrap()))
        );
        assert_eq!(parse_listen("None"), Ok(None));
        assert_eq!(parse_listen("off"), Ok(None));
        let e = parse_listen("nowhere").unwrap_err().to_string();
        assert!(e.starts_with("'nowhere' is not an address"), "{e}");
        assert_eq!(parse_control("OFF"), None);
        assert_eq!(
            parse_control("/run/x.sock"),
            Some(PathBuf::from("/run/x.sock"))
        );
        assert_eq!(parse_stp("rstp"), Ok(true));
        assert_eq!(parse_stp("on"), Ok(true));
        assert_eq!(parse_stp("none"), Ok(false));
        assert_eq!(
            parse_stp("mstp").unwrap_err().to_string(),
            "'mstp' is not a spanning tree mode: use off or rstp"
        );
    }

    #[test]
    fn flags() {
        let mut f = PortFlags::default();
        apply_flag(&mut f, "hairpin").unwrap();
        apply_flag(&mut f, "no_flood").unwrap();
        apply_flag(&mut f, "no-mcast_flood").unwrap();
        assert!(f.contains(PortFlags::HAIRPIN));
        assert!(!f.contains(PortFlags::FLOOD) && !f.contains(PortFlags::MCAST_FLOOD));
        assert_eq!(
            apply_flag(&mut f, "no-such"),
            Err(UnknownFlag("no-such".into()))
        );
    }
}
