//! From defaults, the file and the command line to the final [`Config`]: the defaults first,
//! then what the file sets ([`FileSettings`]), then the command line ([`Overrides`]; its
//! values win), then the rules that span several settings ([`Config::validate`]).
//!
//! The two lookups a configuration needs, a group name and a token file, go through
//! [`Lookups`]: the daemon uses [`System`], tests and the fuzzer a fake that reads nothing.
//! Everything that depends on the final switch name (the control socket, the spanning tree
//! bridge address) is settled once the command line has had its say.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::file::{load_file, FileSettings, EMPTY_TOKEN};
use super::grammar::{
    check_default_pvid, check_vxlan_mtu, parse_control, parse_group_mask, parse_listen, parse_spec,
    parse_stp,
};
use super::{Config, ConfigError, Overrides, DEFAULT_BUSY_POLL_US, DEFAULT_LISTEN, DEFAULT_NAME};
use super::{PortSpec, DEFAULT_PORTS};
use crate::fdb::DEFAULT_MAX_LEARNED;
use crate::forwarding::{PortFlags, Settings};
use crate::port::PortKind;
use crate::stp::{derived_mac, BridgeConfig};
use crate::validate;
use crate::wire::MacAddr;

/// What resolving a configuration asks of the system.
pub trait Lookups {
    /// The GID of a group given by name or number; `None` if there is no such group.
    fn group(&self, name: &str) -> Option<u32>;
    /// An API token kept in a file ([`read_token_file`]).
    fn token_file(&self, path: &Path) -> Result<String, TokenFileError>;
}

/// The real system: the group database and the file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct System;

impl Lookups for System {
    fn group(&self, name: &str) -> Option<u32> {
        crate::port::sys::lookup_group(name).ok()
    }

    fn token_file(&self, path: &Path) -> Result<String, TokenFileError> {
        read_token_file(path)
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

/// Settings of the file that apply only after the command line: they need the final name, or
/// the command line may give them too.
#[derive(Default)]
struct Pending {
    /// `control`: `Some(None)` is `"none"`.
    control: Option<Option<PathBuf>>,
    control_gid: Option<u32>,
    stp_mac: Option<MacAddr>,
    stp_priority: Option<u16>,
    stp_hello_time: Option<u8>,
    stp_forward_delay: Option<u8>,
    stp_max_age: Option<u8>,
}

/// An error of a command-line option, with the text of `e`.
fn flag<E: std::fmt::Display>(flag: &'static str) -> impl Fn(E) -> ConfigError {
    move |e| ConfigError::Flag {
        flag,
        msg: e.to_string(),
    }
}

impl Config {
    /// The file (if any, `o.config`) with the command line on top.
    pub fn resolve(o: &Overrides) -> Result<Config, ConfigError> {
        let file = match &o.config {
            Some(path) => Some(load_file(path)?),
            None => None,
        };
        Config::resolve_with(file, o, &System)
    }

    /// [`Config::resolve`] with the file already parsed (`o.config` is not read) and the
    /// lookups given. With no file and no port anywhere, the built-in default ports are used
    /// (unless `o.no_default_ports`).
    pub fn resolve_with(
        file: Option<FileSettings>,
        o: &Overrides,
        sys: &dyn Lookups,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config::defaults();
        let mut pending = Pending::default();
        let from_file = file.is_some();
        if let Some(f) = file {
            apply_file(&mut cfg, &mut pending, f, o.reload, sys)?;
        }
        switch_flags(&mut cfg, &pending, o, sys)?;
        table_flags(&mut cfg, o)?;
        cfg.stp_bridge = stp_bridge(&cfg.name, &pending, o)?;
        mcast_flags(&mut cfg, o)?;
        runtime_flags(&mut cfg, o)?;
        for s in &o.ports {
            let spec = parse_spec(s).map_err(flag("--port"))?;
            // A --port naming a port of the file replaces it; others are added.
            if let Some(i) = cfg.ports.iter().position(|p| p.name == spec.name) {
                cfg.ports[i] = spec;
            } else {
                cfg.ports.push(spec);
            }
        }
        check_ports(&cfg.ports)?;
        if let Some(p) = cfg
            .ports
            .iter()
            .find(|p| p.vxlan.as_ref().is_some_and(|v| !v.vni_map.is_empty()))
        {
            if !cfg.settings.vlan_filtering {
                return Err(ConfigError::Flag {
                    flag: "vlan_filtering",
                    msg: format!(
                        "port '{}' has a vni-map, which maps VLANs: turn VLAN filtering on (vlan_filtering = true in the file, or --vlan-filtering)",
                        p.name
                    ),
                });
            }
        }
        if cfg.ports.is_empty() && !from_file && !o.no_default_ports {
            cfg.default_ports = true;
            cfg.ports = DEFAULT_PORTS
                .iter()
                .map(|n| parse_spec(n).expect("built-in default spec"))
                .collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every setting at its default, no ports.
    fn defaults() -> Config {
        Config {
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
            stp_bridge: BridgeConfig::new(MacAddr([2, 0, 0, 0, 0, 1])),
            mirrors: Vec::new(),
            mcast: crate::mcast::McastConfig::default(),
            mdb: Vec::new(),
        }
    }

    /// Checks rules that span several settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let uplinks: Vec<&str> = self
            .ports
            .iter()
            .filter(|p| p.flags.contains(PortFlags::UPLINK))
            .map(|p| p.name.as_str())
            .collect();
        for m in &self.mdb {
            if !self.ports.iter().any(|q| q.name == m.port) {
                return Err(ConfigError::Flag {
                    flag: "[[mdb]]",
                    msg: format!(
                        "mdb entry for group {} names port '{}', which the configuration does not declare",
                        m.grp, m.port
                    ),
                });
            }
        }
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

/// Puts the file's settings on the defaults; the group and (but on a reload) the token file
/// are looked up here, their errors naming the file's line and key.
fn apply_file(
    cfg: &mut Config,
    pending: &mut Pending,
    f: FileSettings,
    reload: bool,
    sys: &dyn Lookups,
) -> Result<(), ConfigError> {
    if let Some(g) = &f.control_group {
        match sys.group(&g.value) {
            Some(gid) => pending.control_gid = Some(gid),
            None => {
                let msg = format!("no group '{}'", g.value);
                return Err(f.key_error(g.line, "control_group", msg));
            }
        }
    }
    match (&f.api_token, &f.api_token_file) {
        (Some(t), _) => cfg.api_token = Some(t.clone()),
        (None, Some(p)) if !reload => match sys.token_file(&p.value) {
            Ok(t) => cfg.api_token = Some(t),
            Err(e) => return Err(f.key_error(p.line, "api_token_file", e.to_string())),
        },
        (None, _) => {}
    }
    let FileSettings {
        name,
        listen,
        control,
        ageing_secs,
        fdb_max,
        group_fwd_mask,
        mode,
        vepa_flood_unknown,
        dataplane_threads,
        busy_poll_us,
        api_max_conns,
        vlan_filtering,
        vlan_protocol,
        stp,
        stp_mac,
        stp_priority,
        stp_hello_time,
        stp_forward_delay,
        stp_max_age,
        default_pvid,
        ports,
        mirrors,
        mcast,
        mdb,
        ..
    } = f;
    if let Some(n) = name {
        cfg.name = n;
    }
    cfg.listen = listen.unwrap_or(cfg.listen);
    let s = &mut cfg.settings;
    pending.control = control;
    s.ageing_ms = ageing_secs.map_or(s.ageing_ms, |a| a * 1000);
    cfg.fdb_max = fdb_max.unwrap_or(cfg.fdb_max);
    s.group_fwd_mask = group_fwd_mask.unwrap_or(s.group_fwd_mask);
    s.mode = mode.unwrap_or(s.mode);
    s.vepa_flood_unknown = vepa_flood_unknown.unwrap_or(s.vepa_flood_unknown);
    cfg.dataplane_threads = dataplane_threads.unwrap_or(cfg.dataplane_threads);
    cfg.busy_poll_us = busy_poll_us.unwrap_or(cfg.busy_poll_us);
    cfg.api_max_conns = api_max_conns.unwrap_or(cfg.api_max_conns);
    s.vlan_filtering = vlan_filtering.unwrap_or(s.vlan_filtering);
    s.vlan_protocol = vlan_protocol.unwrap_or(s.vlan_protocol);
    s.stp = stp.unwrap_or(s.stp);
    s.default_pvid = default_pvid.unwrap_or(s.default_pvid);
    pending.stp_mac = stp_mac;
    pending.stp_priority = stp_priority;
    pending.stp_hello_time = stp_hello_time;
    pending.stp_forward_delay = stp_forward_delay;
    pending.stp_max_age = stp_max_age;
    cfg.ports = ports;
    cfg.mirrors = mirrors;
    for (k, v) in mcast {
        // checked when the file was parsed
        let _ = cfg.mcast.set(k, &v);
    }
    cfg.mdb = mdb;
    Ok(())
}

/// `--name`, `--listen`, `--control` (else the file's, else the default path for the final
/// name), `--control-group` (else the file's).
fn switch_flags(
    cfg: &mut Config,
    pending: &Pending,
    o: &Overrides,
    sys: &dyn Lookups,
) -> Result<(), ConfigError> {
    if let Some(n) = &o.name {
        validate::switch_name(n).map_err(flag("--name"))?;
        cfg.name = n.clone();
    }
    if let Some(l) = &o.listen {
        cfg.listen = parse_listen(l).map_err(flag("--listen"))?;
    }
    cfg.control = match (&o.control, &pending.control) {
        (Some(c), _) => parse_control(c),
        (None, Some(c)) => c.clone(),
        (None, None) => Some(default_control_path(&cfg.name)),
    };
    cfg.control_gid = match &o.control_group {
        Some(g) => Some(
            sys.group(g)
                .ok_or_else(|| flag("--control-group")(format!("no group '{g}'")))?,
        ),
        None => pending.control_gid,
    };
    Ok(())
}

/// The forwarding, VLAN and spanning tree switches: `--ageing-secs`, `--fdb-max`,
/// `--group-fwd-mask`, `--mode`, `--vepa-flood-unknown`, `--vlan-filtering`,
/// `--vlan-protocol`, `--default-pvid`, `--stp`.
fn table_flags(cfg: &mut Config, o: &Overrides) -> Result<(), ConfigError> {
    let s = &mut cfg.settings;
    if let Some(a) = o.ageing_secs {
        s.ageing_ms = validate::AGEING_SECS
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
        s.group_fwd_mask = parse_group_mask(g).map_err(flag("--group-fwd-mask"))?;
    }
    if let Some(m) = o.mode {
        s.mode = m;
    }
    if o.vepa_flood_unknown {
        s.vepa_flood_unknown = true;
    }
    if o.vlan_filtering {
        s.vlan_filtering = true;
    }
    if let Some(p) = &o.vlan_protocol {
        s.vlan_protocol = p.parse().map_err(flag("--vlan-protocol"))?;
    }
    if let Some(d) = o.default_pvid {
        s.default_pvid = check_default_pvid(d).map_err(flag("--default-pvid"))?;
    }
    if let Some(v) = &o.stp {
        s.stp = parse_stp(v).map_err(flag("--stp"))?;
    }
    Ok(())
}

/// The spanning tree bridge: each value from the command line, else the file, else the
/// default; the address derived from the final switch name when none is given. Checked as a
/// whole (the timers bound each other).
fn stp_bridge(name: &str, pending: &Pending, o: &Overrides) -> Result<BridgeConfig, ConfigError> {
    let mac = match &o.stp_mac {
        Some(m) => m.parse::<MacAddr>().map_err(flag("--stp-mac"))?,
        None => pending.stp_mac.unwrap_or_else(|| derived_mac(name)),
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
    Ok(b)
}

/// `--mcast-snooping on|off`, `--mcast-querier`; the switch's queries come from its bridge
/// address (the spanning tree's, given or derived from the name), as a Linux bridge's come
/// from its device address.
fn mcast_flags(cfg: &mut Config, o: &Overrides) -> Result<(), ConfigError> {
    if let Some(v) = &o.mcast_snooping {
        cfg.mcast
            .set("mcast_snooping", v)
            .map_err(flag("--mcast-snooping"))?;
    }
    if o.mcast_querier {
        cfg.mcast.querier = true;
    }
    cfg.mcast.switch_mac = cfg.stp_bridge.mac;
    Ok(())
}

/// How the daemon runs: `--api-max-conns`, `--busy-poll-us`, `--dataplane-threads`,
/// `--api-token`, `--api-token-file` (not read again on a reload).
fn runtime_flags(cfg: &mut Config, o: &Overrides) -> Result<(), ConfigError> {
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
    if let Some(t) = &o.api_token {
        if t.is_empty() {
            return Err(flag("--api-token")(EMPTY_TOKEN));
        }
        cfg.api_token = Some(t.clone());
    }
    if let (Some(p), false) = (&o.api_token_file, o.reload) {
        cfg.api_token = Some(read_token_file(p).map_err(flag("--api-token-file"))?);
    }
    Ok(())
}

/// Rules over all ports, wherever they were declared: a `vxlan` port's MTU fits its tunnel;
/// no interface is attached twice (a tap and a packet port on one interface would loop
/// frames back in); one VNI per local address and UDP port.
fn check_ports(ports: &[PortSpec]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for p in ports {
        if let (Some(_), Some(m)) = (&p.vxlan, p.mtu) {
            check_vxlan_mtu(m).map_err(|e| ConfigError::Flag {
                flag: "--port",
                msg: format!("port '{}': {e}", p.name),
            })?;
        }
        let kind = if p.kind == PortKind::Packet {
            PortKind::Tap
        } else {
            p.kind
        };
        if let Some(v) = &p.vxlan {
            // every VNI (a vni-map has several) once per local address and dstport
            for vni in v.vnis() {
                if !seen.insert((kind, format!("{vni} {:?} {}", v.local, v.dstport))) {
                    return Err(ConfigError::Flag {
                        flag: "--port",
                        msg: format!(
                            "VNI {vni} is declared twice on the same local address and dstport"
                        ),
                    });
                }
            }
            continue;
        }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_file;
    use crate::forwarding::Mode;
    use std::io::Write;

    /// Lookups that read nothing: groups `wheel` (10) and numbers; token files under
    /// `/tok/` hold their file name.
    struct Fake;

    impl Lookups for Fake {
        fn group(&self, name: &str) -> Option<u32> {
            match name {
                "wheel" => Some(10),
                n => n.parse().ok(),
            }
        }

        fn token_file(&self, path: &Path) -> Result<String, TokenFileError> {
            match path.strip_prefix("/tok") {
                Ok(rest) => Ok(rest.display().to_string()),
                Err(_) => Err(TokenFileError::Empty(path.display().to_string())),
            }
        }
    }

    fn with_file(text: &str, o: Overrides) -> Result<Config, ConfigError> {
        let f = parse_file(Path::new("/etc/sw.toml"), text)?;
        Config::resolve_with(Some(f), &o, &Fake)
    }

    #[test]
    fn a_vni_map_needs_vlan_filtering_and_its_vnis_once_per_hub() {
        let port = "[[port]]\nspec = \"vx0=vxlan:local=198.18.0.1,vni-map=10:1010;20:1020\"\n";
        let e = with_file(port, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("vlan_filtering") && e.contains("vx0"), "{e}");
        let ok = format!("vlan_filtering = true\n{port}");
        let c = with_file(&ok, Overrides::default()).unwrap();
        assert_eq!(c.ports[0].vxlan.as_ref().unwrap().vnis(), [1010, 1020]);
        // --vlan-filtering does as well as the file's key
        let o = Overrides {
            vlan_filtering: true,
            ..Overrides::default()
        };
        with_file(port, o).unwrap();
        // a VNI of the map again on the same address and port, by another port
        let twice = format!("{ok}[[port]]\nspec = \"vx1=vxlan:1020,local=198.18.0.1\"\n");
        let e = with_file(&twice, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("VNI 1020 is declared twice"), "{e}");
    }

    #[test]
    fn multicast_keys_in_the_file_the_specs_and_the_command_line() {
        let text = r#"
mcast_querier = true
mcast_igmp_version = 3
mcast_query_interval = 1000
mcast_last_member_interval = "50"

[[port]]
name = "tsw0"
mcast_router = 2
mcast_fast_leave = true

[[port]]
spec = "tsw1,mcast-max-groups=5,no-mcast-fast-leave"

[[mdb]]
port = "tsw1"
grp = "239.1.1.1"

[[mdb]]
port = "tsw0"
grp = "ff0e::1"
src = "2001:db8::1"
permanent = false
vid = 10
"#;
        let c = with_file(text, Overrides::default()).unwrap();
        assert!(c.mcast.snooping && c.mcast.querier);
        assert_eq!(c.mcast.igmp_version, 3);
        assert_eq!(c.mcast.query_interval_ms, 10_000);
        assert_eq!(c.mcast.last_member_interval_ms, 500);
        assert_eq!(c.mcast.switch_mac, c.stp_bridge.mac);
        assert_eq!(c.ports[0].mcast.router, crate::mcast::RouterMode::Permanent);
        assert!(c.ports[0].mcast.fast_leave);
        assert_eq!(c.ports[1].mcast.max_groups, 5);
        assert_eq!(c.mdb.len(), 2);
        assert!(c.mdb[0].permanent && !c.mdb[1].permanent);
        assert_eq!(c.mdb[1].vid, 10);
        // the command line wins
        let o = Overrides {
            mcast_snooping: Some("off".into()),
            ..Overrides::default()
        };
        assert!(!with_file(text, o).unwrap().mcast.snooping);
        let o = Overrides {
            mcast_snooping: Some("maybe".into()),
            ..Overrides::default()
        };
        let e = with_file("", o).unwrap_err().to_string();
        assert!(e.contains("--mcast-snooping"), "{e}");
        // errors name the file, line and key
        for (text, want) in [
            (
                "mcast_igmp_version = 4\n",
                "/etc/sw.toml:1: key 'mcast_igmp_version'",
            ),
            (
                "\nmcast_querier = \"maybe\"\n",
                "/etc/sw.toml:2: key 'mcast_querier'",
            ),
            (
                "[[port]]\nname = \"a\"\nmcast_router = 7\n",
                "/etc/sw.toml:3: key 'port[0].mcast_router'",
            ),
            (
                "[[mdb]]\nport = \"a\"\ngrp = \"198.18.0.1\"\n",
                "/etc/sw.toml:1: key 'mdb[0]'",
            ),
            ("[[mdb]]\nport = \"a\"\ngrp = 5\n", "/etc/sw.toml"),
        ] {
            let e = with_file(text, Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        let e = with_file(
            "[[mdb]]\nport = \"zz\"\ngrp = \"239.1.1.1\"\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[[mdb]]") && e.contains("'zz'"), "{e}");
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
        let c = with_file(text, Overrides::default()).unwrap();
        assert_eq!(c.name, "br9");
        assert_eq!(c.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.settings.ageing_ms, 10_000);
        assert_eq!(c.fdb_max, 100);
        assert_eq!(c.settings.group_fwd_mask, 0x4000);
        assert_eq!(c.ports.len(), 2);
        assert!(!c.default_ports);
        assert!(c.ports[0].flags.contains(PortFlags::HAIRPIN));
        assert!(c.ports[1].flags.contains(PortFlags::ISOLATED));
        let c = with_file(
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
        // a file with no ports gets none: the built-in ports are for running without a file
        let c = with_file("name = \"x\"\n", Overrides::default()).unwrap();
        assert!(c.ports.is_empty() && !c.default_ports);
    }

    #[test]
    fn every_file_key_lands_and_the_command_line_wins() {
        let text = "name = \"br1\"\ncontrol_group = \"wheel\"\nmode = \"vepa\"\nvepa_flood_unknown = true\nvlan_filtering = true\nvlan_protocol = \"802.1ad\"\ndefault_pvid = 0\nstp = \"rstp\"\nstp_priority = 4096\nstp_max_age = 6\nstp_hello_time = 1\nstp_forward_delay = 4\ndataplane_threads = 3\nbusy_poll_us = 7\napi_max_conns = 9\napi_token = \"t\"\n[[port]]\nname = \"up\"\nflags = [\"uplink\"]\n";
        let c = with_file(text, Overrides::default()).unwrap();
        assert_eq!(c.name, "br1");
        assert_eq!(c.control_gid, Some(10));
        assert_eq!(c.control, Some(default_control_path("br1")));
        let s = &c.settings;
        assert_eq!(s.mode, Mode::Vepa);
        assert!(s.vepa_flood_unknown && s.vlan_filtering && s.stp);
        assert_eq!(s.vlan_protocol, crate::vlan::Protocol::Dot1ad);
        assert_eq!(s.default_pvid, 0);
        assert_eq!(
            (c.dataplane_threads, c.busy_poll_us, c.api_max_conns),
            (3, 7, 9)
        );
        assert_eq!(c.api_token.as_deref(), Some("t"));
        let b = c.stp_bridge;
        assert_eq!(
            (b.priority, b.max_age, b.hello_time, b.forward_delay),
            (4096, 6, 1, 4)
        );
        assert_eq!(b.mac, derived_mac("br1"), "derived from the file's name");
        let c = with_file(
            text,
            Overrides {
                name: Some("br2".into()),
                control: Some("/run/x.sock".into()),
                control_group: Some("77".into()),
                stp_priority: Some(8192),
                stp_mac: Some("02:00:00:00:00:05".into()),
                dataplane_threads: Some(1),
                api_token: Some("u".into()),
                default_pvid: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.name, "br2");
        assert_eq!(c.control, Some(PathBuf::from("/run/x.sock")));
        assert_eq!(c.control_gid, Some(77));
        assert_eq!(c.stp_bridge.priority, 8192);
        assert_eq!(
            c.stp_bridge.max_age, 6,
            "the file's, where the command line is silent"
        );
        assert_eq!(c.stp_bridge.mac, MacAddr([2, 0, 0, 0, 0, 5]));
        assert_eq!((c.dataplane_threads, c.settings.default_pvid), (1, 5));
        assert_eq!(c.api_token.as_deref(), Some("u"));
        let c = with_file("stp_mac = \"02:00:00:00:00:07\"\n", Overrides::default()).unwrap();
        assert_eq!(c.stp_bridge.mac, MacAddr([2, 0, 0, 0, 0, 7]));
        let e = with_file("stp_max_age = 40\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--stp-priority/"), "{e}");
    }

    #[test]
    fn lookups_name_the_file_line_and_key() {
        let e = with_file(
            "name = \"x\"\ncontrol_group = \"nobody-here\"\n",
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "/etc/sw.toml:2: key 'control_group': no group 'nobody-here'"
        );
        let e = Config::resolve_with(
            None,
            &Overrides {
                control_group: Some("nobody-here".into()),
                ..Default::default()
            },
            &Fake,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "--control-group: no group 'nobody-here'");
        let c = with_file("api_token_file = \"/tok/abc\"\n", Overrides::default()).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("abc"));
        let e = with_file("\napi_token_file = \"elsewhere\"\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/sw.toml:2: key 'api_token_file': the token file /etc/elsewhere is empty"
        );
        // a reload does not read it again
        let c = with_file(
            "api_token_file = \"elsewhere\"\n",
            Overrides {
                reload: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.api_token, None);
    }

    #[test]
    fn rules_over_all_ports() {
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
        // a tap and a packet port on one interface, one from the file, one from --port
        let e = with_file(
            "[[port]]\nname = \"a\"\nifname = \"eth0\"\n",
            Overrides {
                ports: vec!["b=packet:eth0".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--port: interface 'eth0' is attached twice"),
            "{e}"
        );
    }

    #[test]
    fn mirrors_name_declared_ports() {
        let ports = "[[port]]\nname = \"a\"\n[[port]]\nname = \"mon\"\n";
        let e = with_file(
            &format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"x\"]\noutput = \"mon\"\n"),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("[[mirror]]: ") && e.contains("names port 'x'"),
            "{e}"
        );
        // a port of the file replaced by --port keeps its mirror
        let c = with_file(
            &format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"a\"]\noutput = \"mon\"\n"),
            Overrides {
                ports: vec!["a=tsw5".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((c.mirrors.len(), c.ports[0].arg.as_str()), (1, "tsw5"));
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
        // an empty token would match a request that sends none
        let e = Config::resolve(&Overrides {
            api_token: Some(String::new()),
            ..o(None)
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--api-token: an empty token"), "{e}");
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

    /// Through the real file system: the file written, then `Config::resolve`.
    fn load(text: &str, o: Overrides) -> Result<Config, ConfigError> {
        let f = write_cfg(text);
        Config::resolve(&Overrides {
            config: Some(f.path.clone()),
            ..o
        })
    }

    #[test]
    fn files_are_read_from_disk() {
        let c = load("name = \"disk\"\n", Overrides::default()).unwrap();
        assert_eq!(c.name, "disk");
        let e = load("\nfdb_max = 0\n", Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(".toml:2: key 'fdb_max'"), "{e}");
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
        assert_eq!(c.stp_bridge.mac, derived_mac(DEFAULT_NAME));
        assert!(Config::resolve(&Overrides {
            no_default_ports: true,
            ..Default::default()
        })
        .unwrap()
        .ports
        .is_empty());
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
