//! Configuration: the TOML file, the `--port` spec grammar, and their merge with the command
//! line (command-line values win). Every error names its source: the file, line and key, or the
//! command-line flag.
//!
//! Port spec grammar (command line, API, and `spec = "..."` in the file):
//! `[NAME=][KIND:]ARG[,FLAG]...` where KIND is `tap` (the default) and ARG the interface name.
//! FLAG is a port flag (`hairpin`, `isolated`, `locked`, `uplink`, `learning`, `flood`,
//! `mcast-flood`, `bcast-flood`), a flag prefixed with `no-` to turn it off, `mtu=N`, or
//! `offload=on|off` (virtio_net_hdr offloads; on by default where the port kind has them).
//! A `vxlan:VNI` port takes the keys of [`crate::vxlan::spec`] (`local=`, `remote=`, ...);
//! there `learning`/`no-learning` is the VTEP's learning, not the bridge port's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::fdb::DEFAULT_MAX_LEARNED;
use crate::forwarding::{Mode, PortFlags, Settings};
use crate::port::{check_ifname, IfnameError, PortKind};
use crate::stp::{BridgeConfig, P2p, PortConfig as StpPortConfig};
use crate::validate::{self, OutOfRange};
use crate::vlan::{check_vid, ParseVlanSetError, PortVlans, Protocol, VlanError, VlanSet};
use crate::vxlan::spec::{VxlanSpec, VxlanSpecError};

/// Default HTTP listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9479";
/// Default switch name (shown as `master NAME`).
pub const DEFAULT_NAME: &str = "tapswitch";
/// Ports of the built-in default.
pub const DEFAULT_PORTS: [&str; 2] = ["tsw0", "tsw1"];
/// Default busy-poll window in microseconds. Measured on a 2-vCPU VM: it lifts one TCP
/// stream from about 0.75x to 0.8-0.95x of the Linux bridge and quarters flood-ping RTT at
/// the same CPU, while a ping every 5 ms costs under 0.2% of a core more and idle costs
/// nothing (the spin starts only once frames come closer together than the window).
pub const DEFAULT_BUSY_POLL_US: u64 = 50;

/// One port to attach.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortSpec {
    /// The port's name in the API, metrics and `fdb show`.
    pub name: String,
    /// What kind of port.
    pub kind: PortKind,
    /// For a TAP: the interface name.
    pub arg: String,
    /// Flags at attach time.
    pub flags: PortFlags,
    /// Overrides the interface MTU for the egress size check.
    pub mtu: Option<u32>,
    /// Carry virtio_net_hdr offloads (TSO, checksum) on this port, where the kind allows.
    pub offload: bool,
    /// Socket ports: file mode of the socket file (e.g. 0o660).
    pub sock_mode: Option<u32>,
    /// Socket ports: owner of the socket file, as `UID` or `UID:GID`.
    pub sock_owner: Option<(u32, Option<u32>)>,
    /// Stream ports: most connections at once.
    pub max_conns: Option<usize>,
    /// Most learned entries on this port (port security); 0 = only the switch-wide limit.
    pub max_learned: usize,
    /// VLAN membership from `access=`, `trunk=`/`native=`, `vlans=`/`untagged=`/`pvid=`;
    /// `None`: the switch's `default_pvid` (Linux: a new port gets VID 1 as PVID, untagged).
    pub vlans: Option<PortVlans>,
    /// Spanning tree settings: `stp-cost=`, `stp-priority=`, `edge`, `no-auto-edge`,
    /// `p2p=auto|yes|no`, `bpdu-guard`, `root-guard`.
    pub stp: StpPortConfig,
    /// Storm control, frames/s by kind (broadcast, multicast, unknown unicast); 0 = none.
    pub storm: [u64; 3],
    /// Queues of a multiqueue TAP (`queues=N`), each read by a dataplane worker.
    pub queues: usize,
    /// `vxlan` ports: the tunnel (VNI, addresses, flood list, ...).
    pub vxlan: Option<VxlanSpec>,
}

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

impl serde::Serialize for PortFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(PortFlags::ALL.len()))?;
        for (n, f) in PortFlags::ALL {
            m.serialize_entry(n, &self.contains(f))?;
        }
        m.end()
    }
}

/// A flag word that is not a port flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown port flag '{0}' (known: learning, flood, mcast_flood, bcast_flood, hairpin, isolated, locked, uplink, each also as no-FLAG, and mtu=N)")]
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

/// Parses a port spec; see the module documentation.
pub fn parse_spec(spec: &str) -> Result<PortSpec, SpecError> {
    parse_spec_inner(spec).map_err(|problem| SpecError {
        spec: spec.to_string(),
        problem,
    })
}

fn parse_spec_inner(spec: &str) -> Result<PortSpec, SpecProblem> {
    let mut parts = spec.split(',');
    let head = parts.next().unwrap_or_default().trim();
    let (name, rest) = match head.split_once('=') {
        Some((n, r)) => (Some(n.trim()), r.trim()),
        None => (None, head),
    };
    let (kind, arg) = match rest.split_once(':') {
        Some((k, a)) => {
            let kind = match k {
                "tap" => PortKind::Tap,
                "packet" => PortKind::Packet,
                "stream" => PortKind::Stream,
                "dgram" => PortKind::Dgram,
                "vhost" => PortKind::Vhost,
                "vxlan" => PortKind::Vxlan,
                other => return Err(SpecProblem::UnknownKind(other.to_string())),
            };
            (kind, a)
        }
        None => (PortKind::Tap, rest),
    };
    let mut vxlan = None;
    let default_name;
    let name = match kind {
        PortKind::Vxlan => {
            let v = VxlanSpec::new(crate::vxlan::spec::parse_vni(arg)?);
            default_name = format!("vxlan{}", v.vni);
            vxlan = Some(v);
            name.unwrap_or(&default_name)
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
        }
        _ => {
            check_ifname(arg)?;
            name.unwrap_or(arg)
        }
    };
    if name.is_empty() {
        return Err(SpecProblem::EmptyName);
    }
    let mut out = PortSpec {
        name: name.to_string(),
        kind,
        arg: arg.to_string(),
        flags: PortFlags::default(),
        mtu: None,
        offload: true,
        sock_mode: None,
        sock_owner: None,
        max_conns: None,
        max_learned: 0,
        vlans: None,
        stp: StpPortConfig::default(),
        storm: [0; 3],
        queues: 1,
        vxlan: None,
    };
    let mut vk = VlanKeys::default();
    let vid = |v: &str| -> Result<u16, SpecProblem> {
        let n: u16 = v.trim().parse().map_err(|_| VlanError::InvalidVid(0))?;
        Ok(check_vid(n)?)
    };
    for word in parts.map(str::trim).filter(|w| !w.is_empty()) {
        if let Some(v) = vxlan.as_mut() {
            if v.apply(word)? {
                continue;
            }
        } else if is_vxlan_key(word) {
            return Err(VxlanSpecError::NotVxlan(word.to_string()).into());
        }
        if let Some(v) = word.strip_prefix("access=") {
            vk.access = Some(vid(v)?);
        } else if let Some(v) = word.strip_prefix("trunk=") {
            vk.trunk = Some(v.parse()?);
        } else if let Some(v) = word.strip_prefix("native=") {
            vk.native = Some(vid(v)?);
        } else if let Some(v) = word.strip_prefix("vlans=") {
            vk.vlans = Some(v.parse()?);
        } else if let Some(v) = word.strip_prefix("untagged=") {
            vk.untagged = Some(v.parse()?);
        } else if let Some(v) = word.strip_prefix("pvid=") {
            vk.pvid = Some(vid(v)?);
        } else if let Some(v) = word.strip_prefix("queues=") {
            out.queues = validate::QUEUES.parse("queues", v)? as usize;
        } else if let Some(v) = word.strip_prefix("stp-cost=") {
            out.stp.path_cost = Some(validate::STP_PORT_COST.parse("stp-cost", v)? as u32);
        } else if let Some(v) = word.strip_prefix("stp-priority=") {
            out.stp.priority = validate::STP_PORT_PRIORITY.parse("stp-priority", v)? as u8;
        } else if let Some(v) = word.strip_prefix("p2p=") {
            out.stp.p2p = parse_p2p(v)?;
        } else if word == "edge" || word == "no-edge" {
            out.stp.admin_edge = word == "edge";
        } else if word == "auto-edge" || word == "no-auto-edge" {
            out.stp.auto_edge = word == "auto-edge";
        } else if word == "bpdu-guard" || word == "no-bpdu-guard" {
            out.stp.bpdu_guard = word == "bpdu-guard";
        } else if word == "root-guard" || word == "no-root-guard" {
            out.stp.root_guard = word == "root-guard";
        } else if let Some(v) = word.strip_prefix("storm-broadcast=") {
            out.storm[0] = validate::STORM_PPS.parse("storm-broadcast", v)?;
        } else if let Some(v) = word.strip_prefix("storm-multicast=") {
            out.storm[1] = validate::STORM_PPS.parse("storm-multicast", v)?;
        } else if let Some(v) = word.strip_prefix("storm-unknown-unicast=") {
            out.storm[2] = validate::STORM_PPS.parse("storm-unknown-unicast", v)?;
        } else if let Some(v) = word.strip_prefix("mtu=") {
            out.mtu = Some(validate::MTU.parse("mtu", v)? as u32);
        } else if let Some(v) = word.strip_prefix("mode=") {
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
        } else if let Some(v) = word.strip_prefix("max-learned=") {
            out.max_learned = validate::PORT_MAX_LEARNED.parse("max-learned", v)? as usize;
        } else if let Some(v) = word.strip_prefix("offload=") {
            out.offload = match v {
                "on" | "true" => true,
                "off" | "false" => false,
                _ => return Err(SpecProblem::Offload(v.to_string())),
            };
        } else {
            apply_flag(&mut out.flags, word)?;
        }
    }
    out.vlans = vk.build()?;
    out.stp.validate()?;
    let multi = (out.kind == PortKind::Tap && out.offload)
        || (out.kind == PortKind::Vhost && out.queues <= 8);
    if out.queues > 1 && !multi {
        return Err(SpecProblem::Queues);
    }
    if let Some(v) = vxlan {
        v.check()?;
        if let Some(m) = out.mtu {
            let max = crate::vxlan::spec::MAX_MTU;
            validate::Range {
                min: 68,
                max: max.into(),
            }
            .check("mtu", m.into())?;
        }
        out.vxlan = Some(v);
    }
    Ok(out)
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
        "local" | "remote" | "dstport" | "ttl" | "tos" | "srcport" | "accept"
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

/// The control socket of switch `name` when `--control` is not given: under `/run/tapswitch/`
/// for root; for other users under `$XDG_RUNTIME_DIR/tapswitch/`, or `/tmp/tapswitch-UID/`.
pub fn default_control_path(name: &str) -> PathBuf {
    let file = format!("{name}.sock");
    let uid = crate::port::sys::euid();
    if uid == 0 {
        return system_control_path(name);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("tapswitch").join(file),
        None => private_control_dir().unwrap_or_default().join(file),
    }
}

/// `/tmp/tapswitch-UID`, the default control directory of a user who is not root and has no
/// `$XDG_RUNTIME_DIR`; `None` for root. Anyone can create a name in `/tmp`, so the switch
/// creates it with mode 0700 and refuses it unless it belongs to that user with mode 0700.
pub fn private_control_dir() -> Option<PathBuf> {
    let uid = crate::port::sys::euid();
    (uid != 0).then(|| PathBuf::from(format!("/tmp/tapswitch-{uid}")))
}

/// The control socket of switch `name` run by root (or by the systemd unit, whose
/// RuntimeDirectory is /run/tapswitch): `/run/tapswitch/NAME.sock`.
pub fn system_control_path(name: &str) -> PathBuf {
    Path::new("/run/tapswitch").join(format!("{name}.sock"))
}

/// Parses `--control`: a path, or `none` (no control socket).
pub fn parse_control(s: &str) -> Option<PathBuf> {
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        None
    } else {
        Some(PathBuf::from(s))
    }
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Switch name: `master NAME` in `fdb show`, and the control socket's file name.
    pub name: String,
    /// TCP listener for `/metrics` and the read-only API (changes need the token).
    pub listen: Option<SocketAddr>,
    /// The control socket (the whole API); `None` = off.
    pub control: Option<PathBuf>,
    /// Group that owns the control socket (its members may use it).
    pub control_gid: Option<u32>,
    /// Switch-wide forwarding settings.
    pub settings: Settings,
    /// Most learned entries.
    pub fdb_max: usize,
    /// Ports to attach at start.
    pub ports: Vec<PortSpec>,
    /// Token required for changes over TCP.
    pub api_token: Option<String>,
    /// The built-in default ports are in use (no port given anywhere).
    pub default_ports: bool,
    /// Threads of the frame path (1: one event loop, the default).
    pub dataplane_threads: usize,
    /// Microseconds the frame path keeps polling after a frame instead of sleeping, once
    /// frames come closer together than that (0: off).
    pub busy_poll_us: u64,
    /// Connections each API listener (TCP, control socket) serves at once; one more gets 503.
    pub api_max_conns: usize,
    /// Spanning tree bridge settings (used when `settings.stp` is on); its address is the
    /// one given, or derived from the name.
    pub stp_bridge: BridgeConfig,
    /// Port mirrors (`[[mirror]]` tables).
    pub mirrors: Vec<crate::capture::MirrorSpec>,
}

/// Command-line values that override the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--port`, repeated.
    pub ports: Vec<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--control`.
    pub control: Option<String>,
    /// `--control-group`.
    pub control_group: Option<String>,
    /// `--ageing-secs`.
    pub ageing_secs: Option<u64>,
    /// `--fdb-max`.
    pub fdb_max: Option<u64>,
    /// `--group-fwd-mask`.
    pub group_fwd_mask: Option<String>,
    /// `--mode`.
    pub mode: Option<Mode>,
    /// `--vepa-flood-unknown`.
    pub vepa_flood_unknown: bool,
    /// `--name`.
    pub name: Option<String>,
    /// `--api-token`.
    pub api_token: Option<String>,
    /// `--api-token-file`: the token is read from this file (trimmed).
    pub api_token_file: Option<PathBuf>,
    /// Set for a SIGHUP reload: token files (`--api-token-file`, `api_token_file`) are not read
    /// again: the token is fixed at start (a change needs a restart), and after `--user` the
    /// file may be out of reach.
    pub reload: bool,
    /// Start with no ports at all, even with no config (ports come later through the API).
    pub no_default_ports: bool,
    /// After the ports are open, become this user (name, UID or UID:GID).
    pub user: Option<String>,
    /// Threads of the frame path.
    pub dataplane_threads: Option<usize>,
    /// Busy polling after each frame, in microseconds.
    pub busy_poll_us: Option<u64>,
    /// `--api-max-conns`.
    pub api_max_conns: Option<u64>,
    /// `--vlan-filtering`.
    pub vlan_filtering: bool,
    /// `--vlan-protocol`.
    pub vlan_protocol: Option<String>,
    /// `--default-pvid`.
    pub default_pvid: Option<u16>,
    /// `--stp off|rstp`.
    pub stp: Option<String>,
    /// `--stp-priority`.
    pub stp_priority: Option<u16>,
    /// `--stp-hello-time`.
    pub stp_hello_time: Option<u8>,
    /// `--stp-forward-delay`.
    pub stp_forward_delay: Option<u8>,
    /// `--stp-max-age`.
    pub stp_max_age: Option<u8>,
    /// `--stp-mac`.
    pub stp_mac: Option<String>,
}

/// Parses `--stp`: `off` or `rstp` (`on` accepted for rstp).
pub fn parse_stp(v: &str) -> Result<bool, BadStp> {
    match v {
        "off" | "none" => Ok(false),
        "rstp" | "on" => Ok(true),
        _ => Err(BadStp(v.to_string())),
    }
}

/// A token file that cannot be used; the text names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing but whitespace.
    #[error("the token file {0} is empty")]
    Empty(String),
}

/// Reads an API token from a file (`--api-token-file`, `api_token_file`), so that it never
/// shows in the process's command line: the content with surrounding whitespace (the final
/// newline) trimmed.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty(shown));
    }
    Ok(token.to_string())
}

/// An `--stp` value that is neither off nor rstp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a spanning tree mode: use off or rstp")]
pub struct BadStp(pub String);

/// A configuration error; the text names where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file as a whole (unreadable, not TOML).
    #[error("{file}: {msg}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// One key of the file.
    #[error("{file}:{line}: key '{key}': {msg}")]
    Key {
        /// The file.
        file: String,
        /// 1-based line of the value.
        line: usize,
        /// The key, with `port[i].` for port tables.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A command-line option (or a rule spanning several settings, named by its option).
    #[error("{flag}: {msg}")]
    Flag {
        /// The option, like `--fdb-max`.
        flag: &'static str,
        /// What is wrong.
        msg: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    name: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    control: Option<Spanned<String>>,
    control_group: Option<Spanned<String>>,
    ageing_secs: Option<Spanned<u64>>,
    #[serde(alias = "fdb_max_learned")]
    fdb_max: Option<Spanned<u64>>,
    group_fwd_mask: Option<Spanned<MaskValue>>,
    mode: Option<Mode>,
    vepa_flood_unknown: Option<bool>,
    api_token: Option<Spanned<String>>,
    api_token_file: Option<Spanned<String>>,
    dataplane_threads: Option<Spanned<u64>>,
    busy_poll_us: Option<Spanned<u64>>,
    api_max_conns: Option<Spanned<u64>>,
    vlan_filtering: Option<bool>,
    vlan_protocol: Option<Spanned<String>>,
    default_pvid: Option<Spanned<u16>>,
    stp: Option<Spanned<String>>,
    stp_priority: Option<u16>,
    stp_hello_time: Option<u8>,
    stp_forward_delay: Option<u8>,
    stp_max_age: Option<u8>,
    stp_mac: Option<Spanned<String>>,
    #[serde(default, rename = "port")]
    ports: Vec<Spanned<FilePort>>,
    #[serde(default, rename = "mirror")]
    mirrors: Vec<Spanned<crate::capture::MirrorSpec>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MaskValue {
    Num(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePort {
    /// A whole spec string, as on the command line.
    spec: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    kind: Option<PortKind>,
    /// Interface name, when different from `name`.
    ifname: Option<Spanned<String>>,
    #[serde(default)]
    flags: Vec<Spanned<String>>,
    mtu: Option<Spanned<u32>>,
    offload: Option<bool>,
    max_learned: Option<Spanned<u64>>,
    access: Option<u16>,
    trunk: Option<VlanSet>,
    native: Option<u16>,
    vlans: Option<VlanSet>,
    untagged: Option<VlanSet>,
    pvid: Option<u16>,
    stp_cost: Option<u32>,
    stp_priority: Option<u8>,
    edge: Option<bool>,
    auto_edge: Option<bool>,
    p2p: Option<Spanned<String>>,
    bpdu_guard: Option<bool>,
    root_guard: Option<bool>,
    storm_broadcast: Option<u64>,
    storm_multicast: Option<u64>,
    storm_unknown_unicast: Option<u64>,
    queues: Option<Spanned<u64>>,
    /// `vxlan` ports (with `kind = "vxlan"`): the spec keys as table keys.
    vni: Option<Spanned<u32>>,
    local: Option<Spanned<String>>,
    #[serde(default, alias = "remotes")]
    remote: Vec<Spanned<String>>,
    dstport: Option<Spanned<u32>>,
    ttl: Option<Spanned<u32>>,
    tos: Option<Spanned<u32>>,
    srcport: Option<Spanned<String>>,
    #[serde(default)]
    accept: Vec<Spanned<String>>,
    learning: Option<bool>,
    gso: Option<bool>,
}

struct Src<'a> {
    file: String,
    text: &'a str,
}

impl Src<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        msg: impl Into<String>,
    ) -> Result<T, ConfigError> {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        Err(ConfigError::Key {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            msg: msg.into(),
        })
    }
}

/// Checks a `default_pvid`: 0 (no PVID for new ports) or a usable VID.
pub fn check_default_pvid(v: u16) -> Result<u16, VlanError> {
    if v == 0 {
        Ok(0)
    } else {
        check_vid(v)
    }
}

/// Settings of the file that need the final name or a lookup before they apply.
#[derive(Default)]
struct Pending {
    /// A SIGHUP reload: token files are not read again.
    reload: bool,
    /// `control`: `Some(None)` is `"none"`.
    control: Option<Option<PathBuf>>,
    control_gid: Option<u32>,
    stp_mac: Option<crate::wire::MacAddr>,
    stp_priority: Option<u16>,
    stp_hello_time: Option<u8>,
    stp_forward_delay: Option<u8>,
    stp_max_age: Option<u8>,
}

/// The `vxlan` keys of a port table (`vni`, `local`, `remote`, ...): with `kind = "vxlan"` they
/// make the tunnel, with a `vxlan:` spec they add to it; on another kind they are an error.
fn file_vxlan(
    p: &FilePort,
    spec: &mut PortSpec,
    src: &Src<'_>,
    key: &dyn Fn(&str) -> String,
    pspan: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let mut words: Vec<(&str, std::ops::Range<usize>, String)> = Vec::new();
    let mut one = |k: &'static str, span: std::ops::Range<usize>, v: String| {
        words.push((k, span, format!("{k}={v}")));
    };
    if let Some(v) = &p.local {
        one("local", v.span(), v.get_ref().clone());
    }
    for v in &p.remote {
        one("remote", v.span(), v.get_ref().clone());
    }
    for (k, v) in [("dstport", &p.dstport), ("ttl", &p.ttl), ("tos", &p.tos)] {
        if let Some(v) = v {
            one(k, v.span(), v.get_ref().to_string());
        }
    }
    if let Some(v) = &p.srcport {
        one("srcport", v.span(), v.get_ref().clone());
    }
    for v in &p.accept {
        one("accept", v.span(), v.get_ref().clone());
    }
    if let Some(l) = p.learning {
        let w = if l { "learning" } else { "no-learning" };
        words.push(("learning", pspan.clone(), w.to_string()));
    }
    if let Some(g) = p.gso {
        let w = if g { "gso" } else { "no-gso" };
        words.push(("gso", pspan.clone(), w.to_string()));
    }
    if spec.kind == PortKind::Vxlan && spec.vxlan.is_none() {
        let Some(vni) = &p.vni else {
            return src.err(pspan, &key("vni"), "a vxlan port needs vni = N");
        };
        match crate::vxlan::spec::parse_vni(&vni.get_ref().to_string()) {
            Ok(n) => {
                spec.vxlan = Some(VxlanSpec::new(n));
                spec.arg = n.to_string();
            }
            Err(e) => return src.err(vni.span(), &key("vni"), e.to_string()),
        }
    } else if let Some(vni) = &p.vni {
        return src.err(
            vni.span(),
            &key("vni"),
            "vni is for kind = \"vxlan\" (a spec string gives it as vxlan:VNI)",
        );
    }
    let Some(v) = spec.vxlan.as_mut() else {
        return match words.first() {
            Some((k, span, _)) => src.err(
                span.clone(),
                &key(k),
                "this key is for vxlan ports (kind = \"vxlan\")",
            ),
            None => Ok(()),
        };
    };
    for (k, span, w) in words {
        if let Err(e) = v.apply(&w) {
            return src.err(span, &key(k), e.to_string());
        }
    }
    if let Err(e) = v.check() {
        return src.err(pspan, &key("local"), e.to_string());
    }
    Ok(())
}

fn load_file(path: &Path, cfg: &mut Config, pending: &mut Pending) -> Result<(), ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        file: file.clone(),
        msg: format!("cannot read: {e}"),
    })?;
    let fc: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::File {
        file: file.clone(),
        msg: e.to_string().trim_end().to_string(),
    })?;
    let src = Src { file, text: &text };
    if let Some(n) = fc.name {
        if let Err(e) = validate::switch_name(n.get_ref()) {
            return src.err(n.span(), "name", e.to_string());
        }
        cfg.name = n.into_inner();
    }
    if let Some(l) = fc.listen {
        cfg.listen = match parse_listen(l.get_ref()) {
            Ok(a) => a,
            Err(m) => return src.err(l.span(), "listen", m.to_string()),
        };
    }
    if let Some(c) = fc.control {
        pending.control = Some(parse_control(c.get_ref()));
    }
    if let Some(g) = fc.control_group {
        match crate::port::sys::lookup_group(g.get_ref()) {
            Ok(gid) => pending.control_gid = Some(gid),
            Err(_) => {
                return src.err(
                    g.span(),
                    "control_group",
                    format!("no group '{}'", g.get_ref()),
                )
            }
        }
    }
    if let Some(a) = fc.ageing_secs {
        match validate::AGEING_SECS.check("ageing_secs", *a.get_ref()) {
            Ok(v) => cfg.settings.ageing_ms = v * 1000,
            Err(e) => return src.err(a.span(), "ageing_secs", e.to_string()),
        }
    }
    if let Some(m) = fc.fdb_max {
        cfg.fdb_max = match validate::FDB_MAX.check("fdb_max", *m.get_ref()) {
            Ok(v) => v as usize,
            Err(e) => return src.err(m.span(), "fdb_max", e.to_string()),
        };
    }
    if let Some(g) = fc.group_fwd_mask {
        let span = g.span();
        let r = match g.into_inner() {
            MaskValue::Num(n) => u16::try_from(n).map_err(|_| format!("{n} is outside 0..0xffff")),
            MaskValue::Text(t) => parse_group_mask(&t).map_err(|e| e.to_string()),
        };
        cfg.settings.group_fwd_mask = match r {
            Ok(v) => v,
            Err(m) => return src.err(span, "group_fwd_mask", m),
        };
    }
    if let Some(m) = fc.mode {
        cfg.settings.mode = m;
    }
    if let Some(v) = fc.vepa_flood_unknown {
        cfg.settings.vepa_flood_unknown = v;
    }
    match (fc.api_token, fc.api_token_file) {
        (Some(_), Some(f)) => {
            return src.err(
                f.span(),
                "api_token_file",
                "give api_token or api_token_file, not both",
            )
        }
        (Some(t), None) => cfg.api_token = Some(t.into_inner()),
        (None, Some(f)) if !pending.reload => {
            // a relative path is taken from the configuration file's directory
            let p = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(f.get_ref().as_str());
            match read_token_file(&p) {
                Ok(t) => cfg.api_token = Some(t),
                Err(e) => return src.err(f.span(), "api_token_file", e.to_string()),
            }
        }
        (None, _) => {}
    }
    if let Some(t) = fc.dataplane_threads {
        match validate::DATAPLANE_THREADS.check("dataplane_threads", *t.get_ref()) {
            Ok(v) => cfg.dataplane_threads = v as usize,
            Err(e) => return src.err(t.span(), "dataplane_threads", e.to_string()),
        }
    }
    if let Some(b) = fc.busy_poll_us {
        match validate::BUSY_POLL_US.check("busy_poll_us", *b.get_ref()) {
            Ok(v) => cfg.busy_poll_us = v,
            Err(e) => return src.err(b.span(), "busy_poll_us", e.to_string()),
        }
    }
    if let Some(m) = fc.api_max_conns {
        match validate::API_MAX_CONNS.check("api_max_conns", *m.get_ref()) {
            Ok(v) => cfg.api_max_conns = v as usize,
            Err(e) => return src.err(m.span(), "api_max_conns", e.to_string()),
        }
    }
    if let Some(v) = fc.vlan_filtering {
        cfg.settings.vlan_filtering = v;
    }
    if let Some(p) = fc.vlan_protocol {
        match p.get_ref().parse::<Protocol>() {
            Ok(v) => cfg.settings.vlan_protocol = v,
            Err(e) => return src.err(p.span(), "vlan_protocol", e.to_string()),
        }
    }
    if let Some(v) = fc.stp {
        match parse_stp(v.get_ref()) {
            Ok(on) => cfg.settings.stp = on,
            Err(e) => return src.err(v.span(), "stp", e.to_string()),
        }
    }
    if let Some(m) = fc.stp_mac {
        match m.get_ref().parse::<crate::wire::MacAddr>() {
            Ok(mac) => pending.stp_mac = Some(mac),
            Err(e) => return src.err(m.span(), "stp_mac", e.to_string()),
        }
    }
    pending.stp_priority = fc.stp_priority;
    pending.stp_hello_time = fc.stp_hello_time;
    pending.stp_forward_delay = fc.stp_forward_delay;
    pending.stp_max_age = fc.stp_max_age;
    if let Some(d) = fc.default_pvid {
        match check_default_pvid(*d.get_ref()) {
            Ok(v) => cfg.settings.default_pvid = v,
            Err(e) => return src.err(d.span(), "default_pvid", e.to_string()),
        }
    }
    for (i, p) in fc.ports.into_iter().enumerate() {
        let pspan = p.span();
        let p = p.into_inner();
        let key = |k: &str| format!("port[{i}].{k}");
        let mut spec = if let Some(s) = &p.spec {
            match parse_spec(s.get_ref()) {
                Ok(spec) => spec,
                Err(m) => return src.err(s.span(), &key("spec"), m.to_string()),
            }
        } else {
            let Some(name) = &p.name else {
                return src.err(
                    pspan,
                    &format!("port[{i}]"),
                    "a port needs `name` or `spec`",
                );
            };
            let ifname = p.ifname.as_ref().unwrap_or(name);
            if let Err(m) = check_ifname(ifname.get_ref()) {
                return src.err(
                    ifname.span(),
                    &key(if p.ifname.is_some() { "ifname" } else { "name" }),
                    m.to_string(),
                );
            }
            PortSpec {
                name: name.get_ref().clone(),
                kind: p.kind.unwrap_or_default(),
                arg: ifname.get_ref().clone(),
                flags: PortFlags::default(),
                mtu: None,
                offload: true,
                sock_mode: None,
                sock_owner: None,
                max_conns: None,
                max_learned: 0,
                vlans: None,
                stp: StpPortConfig::default(),
                storm: [0; 3],
                queues: 1,
                vxlan: None,
            }
        };
        file_vxlan(&p, &mut spec, &src, &key, pspan.clone())?;
        if p.spec.is_some() {
            if let Some(n) = &p.name {
                spec.name = n.get_ref().clone();
            }
        }
        for f in &p.flags {
            if let Err(m) = apply_flag(&mut spec.flags, f.get_ref()) {
                return src.err(f.span(), &key("flags"), m.to_string());
            }
        }
        if let Some(m) = &p.mtu {
            match validate::MTU.check("mtu", *m.get_ref() as u64) {
                Ok(v) => spec.mtu = Some(v as u32),
                Err(e) => return src.err(m.span(), &key("mtu"), e.to_string()),
            }
        }
        if let Some(o) = p.offload {
            spec.offload = o;
        }
        if let Some(m) = &p.max_learned {
            match validate::PORT_MAX_LEARNED.check("max_learned", *m.get_ref()) {
                Ok(v) => spec.max_learned = v as usize,
                Err(e) => return src.err(m.span(), &key("max_learned"), e.to_string()),
            }
        }
        let vk = VlanKeys {
            access: p.access,
            trunk: p.trunk,
            native: p.native,
            vlans: p.vlans,
            untagged: p.untagged,
            pvid: p.pvid,
        };
        match vk.build() {
            Ok(Some(v)) => spec.vlans = Some(v),
            Ok(None) => {}
            Err(e) => return src.err(pspan.clone(), &key("vlans"), e.to_string()),
        }
        if let Some(v) = p.stp_cost {
            spec.stp.path_cost = Some(v);
        }
        if let Some(v) = p.stp_priority {
            spec.stp.priority = v;
        }
        if let Some(v) = p.edge {
            spec.stp.admin_edge = v;
        }
        if let Some(v) = p.auto_edge {
            spec.stp.auto_edge = v;
        }
        if let Some(v) = &p.p2p {
            match parse_p2p(v.get_ref()) {
                Ok(x) => spec.stp.p2p = x,
                Err(e) => return src.err(v.span(), &key("p2p"), e.to_string()),
            }
        }
        if let Some(v) = p.bpdu_guard {
            spec.stp.bpdu_guard = v;
        }
        if let Some(v) = p.root_guard {
            spec.stp.root_guard = v;
        }
        for (i, v) in [
            p.storm_broadcast,
            p.storm_multicast,
            p.storm_unknown_unicast,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                spec.storm[i] = v;
            }
        }
        if let Some(q) = &p.queues {
            match validate::QUEUES.check("queues", *q.get_ref()) {
                Ok(v) if v == 1 || (spec.kind == PortKind::Tap && spec.offload) => {
                    spec.queues = v as usize
                }
                Ok(_) => return src.err(q.span(), &key("queues"), SpecProblem::Queues.to_string()),
                Err(e) => return src.err(q.span(), &key("queues"), e.to_string()),
            }
        }
        if let Err(e) = spec.stp.validate() {
            return src.err(pspan.clone(), &key("stp"), e.to_string());
        }
        if cfg.ports.iter().any(|q| q.name == spec.name) {
            return src.err(
                pspan,
                &key("name"),
                format!("duplicate port name '{}'", spec.name),
            );
        }
        cfg.ports.push(spec);
    }
    for (i, m) in fc.mirrors.into_iter().enumerate() {
        let span = m.span();
        let m = m.into_inner();
        let key = format!("mirror[{i}]");
        if let Err(e) = m.check() {
            return src.err(span, &key, e.to_string());
        }
        if cfg.mirrors.iter().any(|o| o.name == m.name) {
            return src.err(span, &key, format!("duplicate mirror name '{}'", m.name));
        }
        if let Err(e) = m.check_against(cfg.mirrors.iter()) {
            return src.err(span, &key, e.to_string());
        }
        cfg.mirrors.push(m);
    }
    Ok(())
}

impl Config {
    /// The file (if any) with the command line on top.
    pub fn resolve(o: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            name: DEFAULT_NAME.to_string(),
            listen: parse_listen(DEFAULT_LISTEN).ok().flatten(),
            control: None,
            control_gid: None,
            settings: Settings::default(),
            fdb_max: DEFAULT_MAX_LEARNED,
            ports: Vec::new(),
            api_token: None,
            default_ports: false,
            dataplane_threads: 1,
            busy_poll_us: DEFAULT_BUSY_POLL_US,
            api_max_conns: crate::conn_cap::DEFAULT_MAX_CONNS,
            stp_bridge: BridgeConfig::new(crate::wire::MacAddr([2, 0, 0, 0, 0, 1])),
            mirrors: Vec::new(),
        };
        let mut pending = Pending {
            reload: o.reload,
            ..Pending::default()
        };
        if let Some(path) = &o.config {
            load_file(path, &mut cfg, &mut pending)?;
        }
        fn flag<E: std::fmt::Display>(flag: &'static str) -> impl Fn(E) -> ConfigError {
            move |e| ConfigError::Flag {
                flag,
                msg: e.to_string(),
            }
        }
        if let Some(n) = &o.name {
            validate::switch_name(n).map_err(flag("--name"))?;
            cfg.name = n.clone();
        }
        if let Some(l) = &o.listen {
            cfg.listen = parse_listen(l).map_err(flag("--listen"))?;
        }
        cfg.control = match (&o.control, pending.control) {
            (Some(c), _) => parse_control(c),
            (None, Some(c)) => c,
            (None, None) => Some(default_control_path(&cfg.name)),
        };
        cfg.control_gid = match &o.control_group {
            Some(g) => Some(
                crate::port::sys::lookup_group(g)
                    .map_err(|_| flag("--control-group")(format!("no group '{g}'")))?,
            ),
            None => pending.control_gid,
        };
        if let Some(a) = o.ageing_secs {
            cfg.settings.ageing_ms = validate::AGEING_SECS
                .check("--ageing-secs", a)
                .map_err(flag("--ageing-secs"))?
                * 1000;
        }
        if let Some(m) = o.fdb_max {
            cfg.fdb_max = validate::FDB_MAX
                .check("--fdb-max", m)
                .map_err(flag("--fdb-max"))? as usize;
        }
        if let Some(g) = &o.group_fwd_mask {
            cfg.settings.group_fwd_mask = parse_group_mask(g).map_err(flag("--group-fwd-mask"))?;
        }
        if let Some(m) = o.mode {
            cfg.settings.mode = m;
        }
        if o.vepa_flood_unknown {
            cfg.settings.vepa_flood_unknown = true;
        }
        if o.vlan_filtering {
            cfg.settings.vlan_filtering = true;
        }
        if let Some(p) = &o.vlan_protocol {
            cfg.settings.vlan_protocol = p.parse().map_err(flag("--vlan-protocol"))?;
        }
        if let Some(d) = o.default_pvid {
            cfg.settings.default_pvid = check_default_pvid(d).map_err(flag("--default-pvid"))?;
        }
        if let Some(v) = &o.stp {
            cfg.settings.stp = parse_stp(v).map_err(flag("--stp"))?;
        }
        let mac = match &o.stp_mac {
            Some(m) => m
                .parse::<crate::wire::MacAddr>()
                .map_err(flag("--stp-mac"))?,
            None => pending
                .stp_mac
                .unwrap_or_else(|| crate::dataplane::spanning::derived_mac(&cfg.name)),
        };
        let mut b = BridgeConfig::new(mac);
        b.priority = o
            .stp_priority
            .or(pending.stp_priority)
            .unwrap_or(b.priority);
        b.hello_time = o
            .stp_hello_time
            .or(pending.stp_hello_time)
            .unwrap_or(b.hello_time);
        b.forward_delay = o
            .stp_forward_delay
            .or(pending.stp_forward_delay)
            .unwrap_or(b.forward_delay);
        b.max_age = o.stp_max_age.or(pending.stp_max_age).unwrap_or(b.max_age);
        b.validate().map_err(flag(
            "--stp-priority/--stp-hello-time/--stp-forward-delay/--stp-max-age/--stp-mac",
        ))?;
        cfg.stp_bridge = b;
        if let Some(m) = o.api_max_conns {
            cfg.api_max_conns = validate::API_MAX_CONNS
                .check("--api-max-conns", m)
                .map_err(flag("--api-max-conns"))? as usize;
        }
        if let Some(b) = o.busy_poll_us {
            cfg.busy_poll_us = validate::BUSY_POLL_US
                .check("--busy-poll-us", b)
                .map_err(flag("--busy-poll-us"))?;
        }
        if let Some(t) = o.dataplane_threads {
            cfg.dataplane_threads = validate::DATAPLANE_THREADS
                .check("--dataplane-threads", t as u64)
                .map_err(flag("--dataplane-threads"))? as usize;
        }
        if o.api_token.is_some() {
            cfg.api_token = o.api_token.clone();
        }
        if let (Some(p), false) = (&o.api_token_file, o.reload) {
            cfg.api_token = Some(read_token_file(p).map_err(flag("--api-token-file"))?);
        }
        for s in &o.ports {
            let spec = parse_spec(s).map_err(flag("--port"))?;
            // A --port naming a port of the file replaces it; others are added.
            if let Some(i) = cfg.ports.iter().position(|p| p.name == spec.name) {
                cfg.ports[i] = spec;
            } else {
                cfg.ports.push(spec);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in &cfg.ports {
            if let (Some(_), Some(m)) = (&p.vxlan, p.mtu) {
                let max = crate::vxlan::spec::MAX_MTU;
                validate::Range {
                    min: 68,
                    max: max.into(),
                }
                .check("mtu", m.into())
                .map_err(|e| ConfigError::Flag {
                    flag: "--port",
                    msg: format!("port '{}': {e}", p.name),
                })?;
            }
            // tap and packet ports on one interface would loop frames back in
            let kind = if p.kind == PortKind::Packet {
                PortKind::Tap
            } else {
                p.kind
            };
            let arg = match &p.vxlan {
                // one VNI per local address and UDP port
                Some(v) => format!("{} {:?} {}", v.vni, v.local, v.dstport),
                None => p.arg.clone(),
            };
            if !seen.insert((kind, arg)) {
                if let Some(v) = &p.vxlan {
                    return Err(ConfigError::Flag {
                        flag: "--port",
                        msg: format!(
                            "VNI {} is declared twice on the same local address and dstport",
                            v.vni
                        ),
                    });
                }
                return Err(ConfigError::Flag {
                    flag: "--port",
                    msg: format!(
                        "interface '{}' is attached twice (by --port or the config file; a tap and a packet port on one interface would loop frames)",
                        p.arg
                    ),
                });
            }
        }
        if cfg.ports.is_empty() && o.config.is_none() && !o.no_default_ports {
            cfg.default_ports = true;
            cfg.ports = DEFAULT_PORTS
                .iter()
                .map(|n| parse_spec(n).expect("built-in default spec"))
                .collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks rules that span several settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let uplinks: Vec<&str> = self
            .ports
            .iter()
            .filter(|p| p.flags.contains(PortFlags::UPLINK))
            .map(|p| p.name.as_str())
            .collect();
        for m in &self.mirrors {
            if let Some(p) = m
                .ports()
                .find(|p| !self.ports.iter().any(|q| q.name == **p))
            {
                return Err(ConfigError::Flag {
                    flag: "[[mirror]]",
                    msg: format!(
                        "mirror '{}' names port '{p}', which the configuration does not declare",
                        m.name
                    ),
                });
            }
        }
        if self.settings.mode.is_vepa() && uplinks.len() != 1 {
            return Err(ConfigError::Flag {
                flag: "--mode",
                msg: format!(
                    "VEPA mode needs exactly one port with the 'uplink' flag (e.g. --port eth0,uplink); found {}: [{}]",
                    uplinks.len(),
                    uplinks.join(", ")
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        let c = load(
            "vlan_filtering = true\nvlan_protocol = \"802.1ad\"\ndefault_pvid = 0\n[[port]]\nname = \"tsw0\"\ntrunk = [10, \"20-21\"]\nnative = 10\n",
            Overrides::default(),
        )
        .unwrap();
        assert!(c.settings.vlan_filtering);
        assert_eq!(c.settings.vlan_protocol, Protocol::Dot1ad);
        assert_eq!(c.settings.default_pvid, 0);
        let pv = c.ports[0].vlans.as_ref().unwrap();
        assert_eq!(pv.pvid(), Some(10));
        assert_eq!(pv.members().len(), 3);
        let e = load("default_pvid = 4095\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1: key 'default_pvid'"), "{e}");
        let e = load(
            "[[port]]\nname = \"a\"\naccess = 5\ntrunk = \"6\"\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("port[0].vlans") && e.contains("access="), "{e}");
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
        // one VNI per local address and port
        let e = Config::resolve(&Overrides {
            ports: vec![
                "a=vxlan:5,local=198.18.0.1".into(),
                "b=vxlan:5,local=198.18.0.1".into(),
            ],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("VNI 5 is declared twice"), "{e}");
        assert!(Config::resolve(&Overrides {
            ports: vec![
                "a=vxlan:5,local=198.18.0.1".into(),
                "b=vxlan:5,local=198.18.0.1,dstport=4790".into(),
            ],
            ..Default::default()
        })
        .is_ok());
    }

    #[test]
    fn vxlan_port_tables() {
        let c = load(
            "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"198.18.0.1\"\nremote = [\"198.18.0.2\"]\nsrcport = \"49152-65000\"\naccept = [\"198.18.0.0/15\"]\nlearning = false\nttl = 9\n\n[[port]]\nspec = \"vx1=vxlan:200,local=198.18.0.1\"\nremote = [\"198.18.0.9\"]\n",
            Overrides::default(),
        )
        .unwrap();
        let v = c.ports[0].vxlan.as_ref().unwrap();
        assert_eq!(
            (v.vni, v.srcport, v.ttl, v.learning),
            (100, (49152, 65000), Some(9), false)
        );
        assert_eq!(c.ports[1].vxlan.as_ref().unwrap().remotes.len(), 1);
        let e = load(
            "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"198.18.0.1\"\nremote = [\"nowhere\"]\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":6: key 'port[0].remote'"), "{e}");
        let e = load(
            "[[port]]\nname = \"tsw0\"\nlocal = \"198.18.0.1\"\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key 'port[0].local'") && e.contains("vxlan ports"),
            "{e}"
        );
        let e = load(
            "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nlocal = \"198.18.0.1\"\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs vni"), "{e}");
    }

    #[test]
    fn group_masks() {
        assert_eq!(parse_group_mask("lldp").unwrap(), 0x4000);
        assert_eq!(parse_group_mask("lldp,lacp").unwrap(), 0x4004);
        assert_eq!(parse_group_mask("0x8").unwrap(), 8);
        assert_eq!(parse_group_mask("all").unwrap(), 0xffff);
        assert_eq!(parse_group_mask("none").unwrap(), 0);
        assert!(parse_group_mask("bpdu").is_err());
        assert!(parse_group_mask("70000").is_err());
    }

    #[test]
    fn api_token_files() {
        let tok = tempfile_lite::TempFile::new("token");
        std::fs::write(&tok.path, "  s3cret-from-file\n").unwrap();
        let o = |file: Option<&std::path::Path>| Overrides {
            no_default_ports: true,
            api_token_file: file.map(Into::into),
            ..Overrides::default()
        };
        // trimmed, from the command line and from the file key
        let c = Config::resolve(&o(Some(&tok.path))).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("s3cret-from-file"));
        let text = format!("api_token_file = \"{}\"\n", tok.path.display());
        let c = load(&text, Overrides::default()).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("s3cret-from-file"));
        // a relative path is taken from the configuration file's directory
        let name = tok.path.file_name().unwrap().to_str().unwrap();
        let c = load(
            &format!("api_token_file = \"{name}\"\n"),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.api_token.as_deref(), Some("s3cret-from-file"));
        // errors name the file (and the line and key in a configuration file)
        let missing = std::env::temp_dir().join("tapswitch-no-such-token-file");
        let e = Config::resolve(&o(Some(&missing))).unwrap_err().to_string();
        assert!(
            e.starts_with("--api-token-file: cannot read the token file")
                && e.contains(&missing.display().to_string()),
            "{e}"
        );
        let e = load(
            &format!("name = \"x\"\napi_token_file = \"{}\"\n", missing.display()),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(":2: key 'api_token_file': cannot read the token file"),
            "{e}"
        );
        std::fs::write(&tok.path, " \n").unwrap();
        let e = Config::resolve(&o(Some(&tok.path)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty") && e.contains(name), "{e}");
        let e = load(
            &format!(
                "api_token = \"a\"\napi_token_file = \"{}\"\n",
                tok.path.display()
            ),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
        // a reload does not read the file again (the token is fixed at start)
        let c = Config::resolve(&Overrides {
            reload: true,
            ..o(Some(&missing))
        })
        .unwrap();
        assert_eq!(c.api_token, None);
    }

    fn write_cfg(text: &str) -> tempfile_lite::TempFile {
        let f = tempfile_lite::TempFile::new("toml");
        std::fs::File::create(&f.path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        f
    }

    /// A tiny temp file helper (no extra dependency).
    mod tempfile_lite {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicUsize, Ordering};
        pub struct TempFile {
            pub path: PathBuf,
        }
        impl TempFile {
            pub fn new(ext: &str) -> TempFile {
                static N: AtomicUsize = AtomicUsize::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir()
                    .join(format!("tapswitch-cfg-{}-{n}.{ext}", std::process::id()));
                TempFile { path }
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    fn load(text: &str, o: Overrides) -> Result<Config, ConfigError> {
        let f = write_cfg(text);
        Config::resolve(&Overrides {
            config: Some(f.path.clone()),
            ..o
        })
    }

    #[test]
    fn mirror_tables() {
        let ports = "[[port]]\nname = \"a\"\n[[port]]\nname = \"b\"\n[[port]]\nname = \"mon\"\n";
        let c = load(
            &format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"a\"]\nselect_dst = [\"b\"]\noutput = \"mon\"\n[[mirror]]\nname = \"m2\"\nselect_all = true\noutput = \"mon\"\n"),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.mirrors.len(), 2);
        assert_eq!(c.mirrors[0].select_src, ["a"]);
        assert!(c.mirrors[1].select_all);
        let e = load(
            &format!(
                "{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"mon\"]\noutput = \"mon\"\n"
            ),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(":7: key 'mirror[0]'") && e.contains("cannot also be selected"),
            "{e}"
        );
        let e = load(
            &format!("{ports}[[mirror]]\nname = \"m1\"\noutput = \"mon\"\n"),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("selects nothing"), "{e}");
        let e = load(
            &format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"x\"]\noutput = \"mon\"\n"),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("names port 'x'"), "{e}");
        let e = load(
            &format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"a\"]\noutput = \"mon\"\nbogus = 1\n"),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn file_and_overrides() {
        let text = r#"
name = "br9"
listen = "127.0.0.1:9999"
ageing_secs = 10
fdb_max = 100
group_fwd_mask = "lldp"

[[port]]
name = "tsw0"
flags = ["hairpin"]

[[port]]
spec = "tsw1,isolated"
"#;
        let c = load(text, Overrides::default()).unwrap();
        assert_eq!(c.name, "br9");
        assert_eq!(c.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.settings.ageing_ms, 10_000);
        assert_eq!(c.fdb_max, 100);
        assert_eq!(c.settings.group_fwd_mask, 0x4000);
        assert_eq!(c.ports.len(), 2);
        assert!(c.ports[0].flags.contains(PortFlags::HAIRPIN));
        assert!(c.ports[1].flags.contains(PortFlags::ISOLATED));
        let c = load(
            text,
            Overrides {
                listen: Some("none".into()),
                ageing_secs: Some(0),
                ports: vec!["tsw0".into(), "tsw2".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen, None);
        assert_eq!(c.settings.ageing_ms, 0);
        assert_eq!(c.ports.len(), 3);
        assert!(
            !c.ports[0].flags.contains(PortFlags::HAIRPIN),
            "--port replaced it"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = load(
            "ageing_secs = 5\n\n[[port]]\nname = \"tsw0\"\nflags = [\"hairpin\", \"nope\"]\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":5: key 'port[0].flags'"), "{e}");
        assert!(e.contains("unknown port flag 'nope'"), "{e}");
        let e = load("bogus = 1\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("bogus"), "{e}");
        let e = load("\nfdb_max = 0\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2: key 'fdb_max'"), "{e}");
        let e = load(
            "[[port]]\nname = \"a\"\n[[port]]\nname = \"a\"\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate port name 'a'"), "{e}");
        let e = load("listen = \"nowhere\"\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1: key 'listen'"), "{e}");
        let e = Config::resolve(&Overrides {
            config: Some("/nonexistent/x.toml".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/x.toml: cannot read"), "{e}");
    }

    #[test]
    fn defaults_and_vepa_check() {
        let c = Config::resolve(&Overrides::default()).unwrap();
        assert!(c.default_ports);
        assert_eq!(
            c.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            DEFAULT_PORTS
        );
        assert_eq!(c.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        let e = Config::resolve(&Overrides {
            mode: Some(Mode::Vepa),
            ports: vec!["a".into(), "b".into()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("exactly one port with the 'uplink' flag"), "{e}");
        assert!(Config::resolve(&Overrides {
            mode: Some(Mode::Vepa),
            ports: vec!["a,uplink".into(), "b".into()],
            ..Default::default()
        })
        .is_ok());
        let e = Config::resolve(&Overrides {
            fdb_max: Some(0),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--fdb-max:"), "{e}");
    }
}
