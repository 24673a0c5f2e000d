//! Configuration: the TOML file, the `--port` spec grammar, and their merge with the command
//! line (command-line values win). Every error names its source: the file, line and key, or the
//! command-line flag.
//!
//! Port spec grammar (command line, API, and `spec = "..."` in the file):
//! `[NAME=][KIND:]ARG[,FLAG]...` where KIND is `tap` (the default) and ARG the interface name.
//! FLAG is a port flag (`hairpin`, `isolated`, `locked`, `uplink`, `learning`, `flood`,
//! `mcast-flood`, `bcast-flood`), a flag prefixed with `no-` to turn it off, `mtu=N`, or
//! `offload=on|off` (virtio_net_hdr offloads; on by default where the port kind has them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::fdb::{DEFAULT_MAX_LEARNED, MAX_MAX_LEARNED};
use crate::port::{check_ifname, PortKind};
use crate::switch::{Mode, PortFlags, Settings};

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
    pub kind: PortKind,
    /// For a TAP: the interface name.
    pub arg: String,
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

/// Applies one spec flag word (`hairpin`, `no-flood`, `mcast_flood`...) to `flags`.
pub fn apply_flag(flags: &mut PortFlags, word: &str) -> Result<(), String> {
    let (name, on) = match word
        .strip_prefix("no-")
        .or_else(|| word.strip_prefix("no_"))
    {
        Some(rest) => (rest, false),
        None => (word, true),
    };
    let f = PortFlags::by_name(name).ok_or_else(|| {
        let known: Vec<&str> = PortFlags::ALL.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown port flag '{word}' (known: {}, each also as no-FLAG, and mtu=N)",
            known.join(", ")
        )
    })?;
    *flags = flags.with(f, on);
    Ok(())
}

/// Parses a port spec; see the module documentation.
pub fn parse_spec(spec: &str) -> Result<PortSpec, String> {
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
                other => {
                    return Err(format!(
                        "port spec '{spec}': unknown port kind '{other}' (known: tap, packet, stream, dgram)"
                    ))
                }
            };
            (kind, a)
        }
        None => (PortKind::Tap, rest),
    };
    let name = match kind {
        PortKind::Stream | PortKind::Dgram => {
            if !arg.starts_with('/') {
                return Err(format!(
                    "port spec '{spec}': {} needs an absolute socket path",
                    kind.as_str()
                ));
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
            check_ifname(arg).map_err(|e| format!("port spec '{spec}': {e}"))?;
            name.unwrap_or(arg)
        }
    };
    if name.is_empty() {
        return Err(format!("port spec '{spec}': empty port name before '='"));
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
    };
    for word in parts.map(str::trim).filter(|w| !w.is_empty()) {
        if let Some(v) = word.strip_prefix("mtu=") {
            let m: u32 = v
                .parse()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| format!("port spec '{spec}': mtu must be 68..65535, got '{v}'"))?;
            out.mtu = Some(m);
        } else if let Some(v) = word.strip_prefix("mode=") {
            out.sock_mode = Some(
                u32::from_str_radix(v.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        format!("port spec '{spec}': mode must be octal like 0660, got '{v}'")
                    })?,
            );
        } else if let Some(v) = word.strip_prefix("owner=") {
            let bad =
                || format!("port spec '{spec}': owner must be UID or UID:GID (numbers), got '{v}'");
            let (u, g) = match v.split_once(':') {
                Some((u, g)) => (u, Some(g.parse::<u32>().map_err(|_| bad())?)),
                None => (v, None),
            };
            out.sock_owner = Some((u.parse::<u32>().map_err(|_| bad())?, g));
        } else if let Some(v) = word.strip_prefix("max-conns=") {
            out.max_conns = Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=crate::dataplane::MAX_PORTS).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "port spec '{spec}': max-conns must be 1..={}",
                            crate::dataplane::MAX_PORTS
                        )
                    })?,
            );
        } else if let Some(v) = word.strip_prefix("max-learned=") {
            out.max_learned = v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_MAX_LEARNED)
                .ok_or_else(|| {
                    format!(
                        "port spec '{spec}': max-learned must be 0..={MAX_MAX_LEARNED}, got '{v}'"
                    )
                })?;
        } else if let Some(v) = word.strip_prefix("offload=") {
            out.offload = match v {
                "on" | "true" => true,
                "off" | "false" => false,
                _ => {
                    return Err(format!(
                        "port spec '{spec}': offload must be on or off, got '{v}'"
                    ))
                }
            };
        } else {
            apply_flag(&mut out.flags, word).map_err(|e| format!("port spec '{spec}': {e}"))?;
        }
    }
    Ok(out)
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

/// Parses a group mask: a number (`16384`, `0x4000`) or a comma list of presets and numbers.
pub fn parse_group_mask(s: &str) -> Result<u16, String> {
    let mut mask = 0u16;
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let lw = w.to_ascii_lowercase();
        if let Some((_, m)) = GROUP_PRESETS.iter().find(|(n, _)| *n == lw) {
            mask |= m;
        } else if lw == "none" {
        } else if let Some(hex) = lw.strip_prefix("0x") {
            mask |= u16::from_str_radix(hex, 16).map_err(|_| bad_mask(w))?;
        } else {
            mask |= lw.parse::<u16>().map_err(|_| bad_mask(w))?;
        }
    }
    Ok(mask)
}

fn bad_mask(w: &str) -> String {
    let names: Vec<&str> = GROUP_PRESETS.iter().map(|(n, _)| *n).collect();
    format!(
        "'{w}' is not a group mask: use a number 0..0xffff or names ({}, none)",
        names.join(", ")
    )
}

/// Parses a listen address; `none` turns the endpoint off.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        format!("'{s}' is not an address like 127.0.0.1:9479 or [::1]:9479, or 'none'")
    })
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub listen: Option<SocketAddr>,
    pub settings: Settings,
    pub fdb_max: usize,
    pub ports: Vec<PortSpec>,
    /// Token required for mutating API calls (always when the listener is not loopback).
    pub api_token: Option<String>,
    /// The built-in default ports are in use (no port given anywhere).
    pub default_ports: bool,
    /// Threads of the frame path (1: one event loop, the default).
    pub dataplane_threads: usize,
    /// Microseconds the frame path keeps polling after a frame instead of sleeping, once
    /// frames come closer together than that (0: off).
    pub busy_poll_us: u64,
}

/// Command-line values that override the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub ports: Vec<String>,
    pub listen: Option<String>,
    pub ageing_secs: Option<u64>,
    pub fdb_max: Option<u64>,
    pub group_fwd_mask: Option<String>,
    pub mode: Option<Mode>,
    pub vepa_flood_unknown: bool,
    pub name: Option<String>,
    pub api_token: Option<String>,
    /// Start with no ports at all, even with no config (ports come later through the API).
    pub no_default_ports: bool,
    /// After the ports are open, become this user (name, UID or UID:GID).
    pub user: Option<String>,
    /// Threads of the frame path.
    pub dataplane_threads: Option<usize>,
    /// Busy polling after each frame, in microseconds.
    pub busy_poll_us: Option<u64>,
}

/// A configuration error; the text names where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    File { file: String, msg: String },
    #[error("{file}:{line}: key '{key}': {msg}")]
    Key {
        file: String,
        line: usize,
        key: String,
        msg: String,
    },
    #[error("{flag}: {msg}")]
    Flag { flag: &'static str, msg: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    name: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    ageing_secs: Option<u64>,
    #[serde(alias = "fdb_max_learned")]
    fdb_max: Option<Spanned<u64>>,
    group_fwd_mask: Option<Spanned<MaskValue>>,
    mode: Option<Mode>,
    vepa_flood_unknown: Option<bool>,
    api_token: Option<String>,
    dataplane_threads: Option<Spanned<u64>>,
    busy_poll_us: Option<Spanned<u64>>,
    #[serde(default, rename = "port")]
    ports: Vec<Spanned<FilePort>>,
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

fn load_file(path: &Path, cfg: &mut Config) -> Result<(), ConfigError> {
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
        if n.get_ref().is_empty() {
            return src.err(n.span(), "name", "the switch name cannot be empty");
        }
        cfg.name = n.into_inner();
    }
    if let Some(l) = fc.listen {
        cfg.listen = match parse_listen(l.get_ref()) {
            Ok(a) => a,
            Err(m) => return src.err(l.span(), "listen", m),
        };
    }
    if let Some(a) = fc.ageing_secs {
        cfg.settings.ageing_ms = a.saturating_mul(1000);
    }
    if let Some(m) = fc.fdb_max {
        cfg.fdb_max = match check_fdb_max(*m.get_ref()) {
            Ok(v) => v,
            Err(msg) => return src.err(m.span(), "fdb_max", msg),
        };
    }
    if let Some(g) = fc.group_fwd_mask {
        let span = g.span();
        let r = match g.into_inner() {
            MaskValue::Num(n) => u16::try_from(n).map_err(|_| format!("{n} is outside 0..0xffff")),
            MaskValue::Text(t) => parse_group_mask(&t),
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
    if fc.api_token.is_some() {
        cfg.api_token = fc.api_token;
    }
    if let Some(t) = fc.dataplane_threads {
        if !(1..=64).contains(t.get_ref()) {
            return src.err(t.span(), "dataplane_threads", "must be 1..=64");
        }
        cfg.dataplane_threads = *t.get_ref() as usize;
    }
    if let Some(b) = fc.busy_poll_us {
        if *b.get_ref() > 1_000_000 {
            return src.err(b.span(), "busy_poll_us", "must be 0..=1000000");
        }
        cfg.busy_poll_us = *b.get_ref();
    }
    for (i, p) in fc.ports.into_iter().enumerate() {
        let pspan = p.span();
        let p = p.into_inner();
        let key = |k: &str| format!("port[{i}].{k}");
        let mut spec = if let Some(s) = &p.spec {
            match parse_spec(s.get_ref()) {
                Ok(spec) => spec,
                Err(m) => return src.err(s.span(), &key("spec"), m),
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
                    m,
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
            }
        };
        if p.spec.is_some() {
            if let Some(n) = &p.name {
                spec.name = n.get_ref().clone();
            }
        }
        for f in &p.flags {
            if let Err(m) = apply_flag(&mut spec.flags, f.get_ref()) {
                return src.err(f.span(), &key("flags"), m);
            }
        }
        if let Some(m) = &p.mtu {
            if !(68..=65535).contains(m.get_ref()) {
                return src.err(m.span(), &key("mtu"), "mtu must be 68..65535");
            }
            spec.mtu = Some(*m.get_ref());
        }
        if let Some(o) = p.offload {
            spec.offload = o;
        }
        if let Some(m) = &p.max_learned {
            if *m.get_ref() > MAX_MAX_LEARNED as u64 {
                return src.err(
                    m.span(),
                    &key("max_learned"),
                    format!("must be 0..={MAX_MAX_LEARNED}"),
                );
            }
            spec.max_learned = *m.get_ref() as usize;
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
    Ok(())
}

fn check_fdb_max(v: u64) -> Result<usize, String> {
    if v == 0 || v > MAX_MAX_LEARNED as u64 {
        return Err(format!(
            "must be 1..={MAX_MAX_LEARNED} (the table is always bounded; Linux's 0 = unlimited is not offered)"
        ));
    }
    Ok(v as usize)
}

impl Config {
    /// The file (if any) with the command line on top.
    pub fn resolve(o: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            name: DEFAULT_NAME.to_string(),
            listen: parse_listen(DEFAULT_LISTEN).ok().flatten(),
            settings: Settings::default(),
            fdb_max: DEFAULT_MAX_LEARNED,
            ports: Vec::new(),
            api_token: None,
            default_ports: false,
            dataplane_threads: 1,
            busy_poll_us: DEFAULT_BUSY_POLL_US,
        };
        if let Some(path) = &o.config {
            load_file(path, &mut cfg)?;
        }
        let flag = |flag: &'static str| move |msg: String| ConfigError::Flag { flag, msg };
        if let Some(n) = &o.name {
            cfg.name = n.clone();
        }
        if let Some(l) = &o.listen {
            cfg.listen = parse_listen(l).map_err(flag("--listen"))?;
        }
        if let Some(a) = o.ageing_secs {
            cfg.settings.ageing_ms = a.saturating_mul(1000);
        }
        if let Some(m) = o.fdb_max {
            cfg.fdb_max = check_fdb_max(m).map_err(flag("--fdb-max"))?;
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
        if let Some(b) = o.busy_poll_us {
            if b > 1_000_000 {
                return Err(ConfigError::Flag {
                    flag: "--busy-poll-us",
                    msg: format!("must be 0..=1000000, got {b}"),
                });
            }
            cfg.busy_poll_us = b;
        }
        if let Some(t) = o.dataplane_threads {
            if !(1..=64).contains(&t) {
                return Err(ConfigError::Flag {
                    flag: "--dataplane-threads",
                    msg: format!("must be 1..=64, got {t}"),
                });
            }
            cfg.dataplane_threads = t;
        }
        if o.api_token.is_some() {
            cfg.api_token = o.api_token.clone();
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
            // tap and packet ports on one interface would loop frames back in
            let kind = if p.kind == PortKind::Packet {
                PortKind::Tap
            } else {
                p.kind
            };
            if !seen.insert((kind, p.arg.clone())) {
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
            .contains("absolute"));
        assert!(parse_spec("tsw0,bogus")
            .unwrap_err()
            .contains("unknown port flag 'bogus'"));
        assert!(parse_spec("thisnameistoolong0")
            .unwrap_err()
            .contains("at most 15"));
        assert!(parse_spec("vde:x")
            .unwrap_err()
            .contains("unknown port kind"));
        assert!(parse_spec("tsw0,mtu=12").is_err());
        assert!(parse_spec("=tsw0").is_err());
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
