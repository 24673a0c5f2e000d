//! The TOML configuration file: [`parse_file`] turns the file's text into [`FileSettings`],
//! every value checked; [`load_file`] reads the file and parses it.
//!
//! An error names the file, and for a value the 1-based line and the key (`port[i].KEY` and
//! `mirror[i]` inside tables): `/etc/tapswitch.toml:5: key 'port[0].flags': unknown port flag
//! 'nope' ...`. Parsing reads nothing else: the group (`control_group`) and the token file
//! (`api_token_file`) a file names are looked up when the configuration is resolved
//! (`resolve.rs`), and their errors carry the line and key kept here.
//!
//! The work is one function per part of the file, in the order the keys were always checked
//! (so a file with several mistakes reports the same first one): the switch's identity, its
//! forwarding table, the daemon's runtime, the bridge's VLAN and spanning tree settings, then
//! each `[[port]]` table and each `[[mirror]]` table.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::grammar::{
    apply_flag, check_default_pvid, parse_control, parse_group_mask, parse_listen, parse_p2p,
    parse_spec, parse_stp, SpecProblem, VlanKeys,
};
use super::{ConfigError, MdbSpec, PortSpec};
use crate::capture::MirrorSpec;
use crate::forwarding::Mode;
use crate::port::{check_ifname, PortKind};
use crate::validate;
use crate::vlan::{Protocol, VlanSet};
use crate::vxlan::spec::{VxlanSpec, VxlanSpecError};
use crate::wire::MacAddr;

/// Why an empty `api_token` (or `--api-token`) is refused: a request without a token would
/// match it.
pub(super) const EMPTY_TOKEN: &str =
    "an empty token would let anyone change the switch over TCP: give a token, or leave it out (TCP is then read-only)";

/// A value of the file that is checked later (by a lookup), with where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AtLine<T> {
    /// The value.
    pub(super) value: T,
    /// Its 1-based line in the file.
    pub(super) line: usize,
}

/// What one configuration file sets, every value checked; `None` (or empty) where the file is
/// silent. [`Config::resolve`](super::Config::resolve) puts it between the defaults and the
/// command line.
#[derive(Clone, Debug, Default)]
pub struct FileSettings {
    /// The file, as errors name it.
    pub(super) file: String,
    pub(super) name: Option<String>,
    /// `listen`: `Some(None)` is `"none"`.
    pub(super) listen: Option<Option<SocketAddr>>,
    /// `control`: `Some(None)` is `"none"`.
    pub(super) control: Option<Option<PathBuf>>,
    /// `control_group`, looked up when resolved.
    pub(super) control_group: Option<AtLine<String>>,
    pub(super) ageing_secs: Option<u64>,
    pub(super) fdb_max: Option<usize>,
    pub(super) group_fwd_mask: Option<u16>,
    pub(super) mode: Option<Mode>,
    pub(super) vepa_flood_unknown: Option<bool>,
    pub(super) api_token: Option<String>,
    /// `api_token_file`, a relative path taken from the file's directory; read when resolved
    /// (not on a reload).
    pub(super) api_token_file: Option<AtLine<PathBuf>>,
    pub(super) dataplane_threads: Option<usize>,
    pub(super) busy_poll_us: Option<u64>,
    pub(super) api_max_conns: Option<usize>,
    pub(super) vlan_filtering: Option<bool>,
    pub(super) vlan_protocol: Option<Protocol>,
    pub(super) stp: Option<bool>,
    pub(super) stp_mac: Option<MacAddr>,
    pub(super) stp_priority: Option<u16>,
    pub(super) stp_hello_time: Option<u8>,
    pub(super) stp_forward_delay: Option<u8>,
    pub(super) stp_max_age: Option<u8>,
    pub(super) default_pvid: Option<u16>,
    /// `[[port]]` tables, in order, names unique.
    pub(super) ports: Vec<PortSpec>,
    /// `[[mirror]]` tables, in order, names unique, each checked against the earlier ones.
    pub(super) mirrors: Vec<MirrorSpec>,
    /// The `mcast_*` keys (each value checked), as the text `McastConfig::set` takes.
    pub(super) mcast: Vec<(&'static str, String)>,
    /// `[[mdb]]` tables (static MDB entries).
    pub(super) mdb: Vec<MdbSpec>,
}

impl FileSettings {
    /// An error about a value the file gave on `line` under `key`.
    pub(super) fn key_error(&self, line: usize, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}

/// Reads the configuration file at `path` and parses it ([`parse_file`]).
pub fn load_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        file: path.display().to_string(),
        msg: format!("cannot read: {e}"),
    })?;
    parse_file(path, &text)
}

/// Parses the text of a configuration file; `path` names it in errors and is the directory a
/// relative `api_token_file` is taken from. Reads nothing.
pub fn parse_file(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    let file = path.display().to_string();
    let fc: FileConfig = toml::from_str(text).map_err(|e| ConfigError::File {
        file: file.clone(),
        msg: e.to_string().trim_end().to_string(),
    })?;
    let src = Src { file, text };
    let mut out = FileSettings {
        file: src.file.clone(),
        ..FileSettings::default()
    };
    switch_keys(&fc, &src, &mut out)?;
    table_keys(&fc, &src, &mut out)?;
    runtime_keys(&fc, path, &src, &mut out)?;
    bridge_keys(&fc, &src, &mut out)?;
    mcast_keys(&fc, &src, &mut out)?;
    for (i, p) in fc.ports.into_iter().enumerate() {
        let t = Table {
            src: &src,
            i,
            span: p.span(),
        };
        let spec = port_table(&t, p.into_inner(), &out.ports)?;
        out.ports.push(spec);
    }
    for (i, m) in fc.mirrors.into_iter().enumerate() {
        let span = m.span();
        let m = mirror_table(&src, i, span, m.into_inner(), &out.mirrors)?;
        out.mirrors.push(m);
    }
    for (i, m) in fc.mdb.into_iter().enumerate() {
        let span = m.span();
        let m = m.into_inner();
        let key = format!("mdb[{i}]");
        let multicast = match m.grp {
            std::net::IpAddr::V4(a) => a.is_multicast(),
            std::net::IpAddr::V6(a) => a.is_multicast(),
        };
        if !multicast {
            return src.err(
                span,
                &key,
                format!("grp {} is not a multicast group", m.grp),
            );
        }
        if m.vid > 4094 {
            return src.err(span, &key, format!("vid {} is outside 0..=4094", m.vid));
        }
        out.mdb.push(m);
    }
    Ok(out)
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
    mirrors: Vec<Spanned<MirrorSpec>>,
    mcast_snooping: Option<Spanned<toml::Value>>,
    mcast_querier: Option<Spanned<toml::Value>>,
    mcast_igmp_version: Option<Spanned<toml::Value>>,
    mcast_mld_version: Option<Spanned<toml::Value>>,
    mcast_hash_max: Option<Spanned<toml::Value>>,
    mcast_last_member_count: Option<Spanned<toml::Value>>,
    mcast_startup_query_count: Option<Spanned<toml::Value>>,
    mcast_last_member_interval: Option<Spanned<toml::Value>>,
    mcast_membership_interval: Option<Spanned<toml::Value>>,
    mcast_querier_interval: Option<Spanned<toml::Value>>,
    mcast_query_interval: Option<Spanned<toml::Value>>,
    mcast_query_response_interval: Option<Spanned<toml::Value>>,
    mcast_startup_query_interval: Option<Spanned<toml::Value>>,
    #[serde(default)]
    mdb: Vec<Spanned<MdbSpec>>,
}

/// The switch-wide `mcast_*` keys the file gave (any TOML value: booleans, numbers, or the
/// text the API takes), in `crate::mcast::settings::SWITCH_KEYS` order.
fn mcast_given(fc: &FileConfig) -> Vec<(&'static str, &Spanned<toml::Value>)> {
    [
        ("mcast_snooping", &fc.mcast_snooping),
        ("mcast_querier", &fc.mcast_querier),
        ("mcast_igmp_version", &fc.mcast_igmp_version),
        ("mcast_mld_version", &fc.mcast_mld_version),
        ("mcast_hash_max", &fc.mcast_hash_max),
        ("mcast_last_member_count", &fc.mcast_last_member_count),
        ("mcast_startup_query_count", &fc.mcast_startup_query_count),
        ("mcast_last_member_interval", &fc.mcast_last_member_interval),
        ("mcast_membership_interval", &fc.mcast_membership_interval),
        ("mcast_querier_interval", &fc.mcast_querier_interval),
        ("mcast_query_interval", &fc.mcast_query_interval),
        (
            "mcast_query_response_interval",
            &fc.mcast_query_response_interval,
        ),
        (
            "mcast_startup_query_interval",
            &fc.mcast_startup_query_interval,
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect()
}

/// A TOML value as the text the `mcast_*` settings take.
fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `mcast_*` keys: each checked by the setting itself, then all together as Linux checks
/// them (versions, `mcast_hash_max`, counts).
fn mcast_keys(fc: &FileConfig, src: &Src<'_>, out: &mut FileSettings) -> Result<(), ConfigError> {
    let mut cfg = crate::mcast::McastConfig::default();
    for (k, v) in mcast_given(fc) {
        let text = toml_text(v.get_ref());
        if let Err(e) = cfg.set(k, &text) {
            return src.err(v.span(), k, e.to_string());
        }
        if let Err(e) = cfg.clone().validated() {
            return src.err(v.span(), k, e.to_string());
        }
        out.mcast.push((k, text));
    }
    Ok(())
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
    kind: Option<Spanned<PortKind>>,
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
    /// `vni_map = { 10 = 1010, 20 = 1020 }`: VLAN (the key) to VNI.
    vni_map: Option<Spanned<std::collections::BTreeMap<String, u32>>>,
    learning: Option<bool>,
    gso: Option<bool>,
    mcast_router: Option<Spanned<u8>>,
    mcast_fast_leave: Option<bool>,
    mcast_max_groups: Option<Spanned<u32>>,
    /// ARP/ND suppression (the `neigh-suppress` flag).
    neigh_suppress: Option<bool>,
}

/// The file's name and text, to turn a span into a line.
struct Src<'a> {
    file: String,
    text: &'a str,
}

impl Src<'_> {
    /// The 1-based line a span starts on.
    fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        span: Range<usize>,
        key: &str,
        msg: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Key {
            file: self.file.clone(),
            line: self.line(&span),
            key: key.to_string(),
            msg: msg.into(),
        })
    }
}

/// Checks one value: `check` gives the value or the message of an error at the value's line.
fn checked<T, U, E: std::fmt::Display>(
    src: &Src<'_>,
    key: &str,
    v: &Option<Spanned<T>>,
    check: impl FnOnce(&T) -> Result<U, E>,
) -> Result<Option<U>, ConfigError> {
    match v {
        None => Ok(None),
        Some(v) => match check(v.get_ref()) {
            Ok(u) => Ok(Some(u)),
            Err(e) => src.err(v.span(), key, e.to_string()),
        },
    }
}

/// `name`, `listen`, `control`, `control_group`.
fn switch_keys(fc: &FileConfig, src: &Src<'_>, out: &mut FileSettings) -> Result<(), ConfigError> {
    out.name = checked(src, "name", &fc.name, |n| {
        validate::switch_name(n).map(|()| n.clone())
    })?;
    out.listen = checked(src, "listen", &fc.listen, |l| parse_listen(l))?;
    out.control = fc.control.as_ref().map(|c| parse_control(c.get_ref()));
    out.control_group = fc.control_group.as_ref().map(|g| AtLine {
        value: g.get_ref().clone(),
        line: src.line(&g.span()),
    });
    Ok(())
}

/// The forwarding table and decision: `ageing_secs`, `fdb_max`, `group_fwd_mask`, `mode`,
/// `vepa_flood_unknown`.
fn table_keys(fc: &FileConfig, src: &Src<'_>, out: &mut FileSettings) -> Result<(), ConfigError> {
    out.ageing_secs = checked(src, "ageing_secs", &fc.ageing_secs, |a| {
        validate::AGEING_SECS.check("ageing_secs", *a)
    })?;
    out.fdb_max = checked(src, "fdb_max", &fc.fdb_max, |m| {
        validate::FDB_MAX.check("fdb_max", *m).map(|v| v as usize)
    })?;
    out.group_fwd_mask = checked(src, "group_fwd_mask", &fc.group_fwd_mask, |g| match g {
        MaskValue::Num(n) => u16::try_from(*n).map_err(|_| format!("{n} is outside 0..0xffff")),
        MaskValue::Text(t) => parse_group_mask(t).map_err(|e| e.to_string()),
    })?;
    out.mode = fc.mode;
    out.vepa_flood_unknown = fc.vepa_flood_unknown;
    Ok(())
}

/// How the daemon runs: `api_token` or `api_token_file`, `dataplane_threads`, `busy_poll_us`,
/// `api_max_conns`.
fn runtime_keys(
    fc: &FileConfig,
    path: &Path,
    src: &Src<'_>,
    out: &mut FileSettings,
) -> Result<(), ConfigError> {
    match (&fc.api_token, &fc.api_token_file) {
        (Some(_), Some(f)) => {
            return src.err(
                f.span(),
                "api_token_file",
                "give api_token or api_token_file, not both",
            )
        }
        (Some(t), None) if t.get_ref().is_empty() => {
            return src.err(t.span(), "api_token", EMPTY_TOKEN);
        }
        (Some(t), None) => out.api_token = Some(t.get_ref().clone()),
        (None, Some(f)) => {
            // a relative path is taken from the configuration file's directory
            let p = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(f.get_ref().as_str());
            out.api_token_file = Some(AtLine {
                value: p,
                line: src.line(&f.span()),
            });
        }
        (None, None) => {}
    }
    out.dataplane_threads = checked(src, "dataplane_threads", &fc.dataplane_threads, |t| {
        validate::DATAPLANE_THREADS
            .check("dataplane_threads", *t)
            .map(|v| v as usize)
    })?;
    out.busy_poll_us = checked(src, "busy_poll_us", &fc.busy_poll_us, |b| {
        validate::BUSY_POLL_US.check("busy_poll_us", *b)
    })?;
    out.api_max_conns = checked(src, "api_max_conns", &fc.api_max_conns, |m| {
        validate::API_MAX_CONNS
            .check("api_max_conns", *m)
            .map(|v| v as usize)
    })?;
    Ok(())
}

/// The bridge's VLAN and spanning tree settings: `vlan_filtering`, `vlan_protocol`, `stp`,
/// `stp_mac`, the `stp_*` timers and priority (checked together when resolved, as they may
/// come from the command line too), `default_pvid`.
fn bridge_keys(fc: &FileConfig, src: &Src<'_>, out: &mut FileSettings) -> Result<(), ConfigError> {
    out.vlan_filtering = fc.vlan_filtering;
    out.vlan_protocol = checked(src, "vlan_protocol", &fc.vlan_protocol, |p| {
        p.parse::<Protocol>()
    })?;
    out.stp = checked(src, "stp", &fc.stp, |v| parse_stp(v))?;
    out.stp_mac = checked(src, "stp_mac", &fc.stp_mac, |m| m.parse::<MacAddr>())?;
    out.stp_priority = fc.stp_priority;
    out.stp_hello_time = fc.stp_hello_time;
    out.stp_forward_delay = fc.stp_forward_delay;
    out.stp_max_age = fc.stp_max_age;
    out.default_pvid = checked(src, "default_pvid", &fc.default_pvid, |d| {
        check_default_pvid(*d)
    })?;
    Ok(())
}

/// One `[[port]]` table: where it is, for its errors.
struct Table<'a> {
    src: &'a Src<'a>,
    /// Its index among the port tables.
    i: usize,
    /// The whole table.
    span: Range<usize>,
}

impl Table<'_> {
    fn key(&self, k: &str) -> String {
        format!("port[{}].{k}", self.i)
    }

    /// An error at a value of the table.
    fn err<T>(
        &self,
        span: Range<usize>,
        k: &str,
        msg: impl Into<String>,
    ) -> Result<T, ConfigError> {
        self.src.err(span, &self.key(k), msg)
    }

    /// An error about the table as a whole (its first line).
    fn err_table<T>(&self, k: &str, msg: impl Into<String>) -> Result<T, ConfigError> {
        self.err(self.span.clone(), k, msg)
    }
}

/// One `[[port]]` table: a `spec` string or `name` (and `ifname`, `kind`), then its keys on
/// top; `earlier` are the tables before it (names must differ).
fn port_table(t: &Table<'_>, p: FilePort, earlier: &[PortSpec]) -> Result<PortSpec, ConfigError> {
    let mut spec = port_base(t, &p)?;
    port_vxlan(t, &p, &mut spec)?;
    if p.spec.is_some() {
        if let Some(n) = &p.name {
            spec.name = n.get_ref().clone();
        }
    }
    if spec.name.is_empty() {
        // `name = ""` beside a spec or an ifname (found by the config_file fuzzer)
        let span = p.name.as_ref().map_or(t.span.clone(), |n| n.span());
        return t.err(span, "name", SpecProblem::EmptyName.to_string());
    }
    port_keys(t, &p, &mut spec)?;
    let vk = VlanKeys {
        access: p.access,
        trunk: p.trunk,
        native: p.native,
        vlans: p.vlans,
        untagged: p.untagged,
        pvid: p.pvid,
    };
    match vk.build() {
        Ok(Some(_)) if spec.vxlan.as_ref().is_some_and(|v| !v.vni_map.is_empty()) => {
            return t.err_table("vlans", SpecProblem::MapVlans.to_string());
        }
        Ok(Some(v)) => spec.vlans = Some(v),
        Ok(None) => {}
        Err(e) => return t.err_table("vlans", e.to_string()),
    }
    port_stp(t, &p, &mut spec)?;
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
            Ok(_) => return t.err(q.span(), "queues", SpecProblem::Queues.to_string()),
            Err(e) => return t.err(q.span(), "queues", e.to_string()),
        }
    }
    if let Err(e) = spec.stp.validate() {
        return t.err_table("stp", e.to_string());
    }
    if let Some(r) = &p.mcast_router {
        if let Err(e) = spec.mcast.set("mcast_router", &r.get_ref().to_string()) {
            return t.err(r.span(), "mcast_router", e.to_string());
        }
    }
    if let Some(f) = p.mcast_fast_leave {
        spec.mcast.fast_leave = f;
    }
    if let Some(g) = &p.mcast_max_groups {
        spec.mcast.max_groups = *g.get_ref();
    }
    if earlier.iter().any(|q| q.name == spec.name) {
        return t.err_table("name", format!("duplicate port name '{}'", spec.name));
    }
    Ok(spec)
}

/// The port a table starts from: its `spec` string parsed, or a port of `kind` (tap by
/// default) named `name` on interface `ifname` (or `name`).
fn port_base(t: &Table<'_>, p: &FilePort) -> Result<PortSpec, ConfigError> {
    if let Some(s) = &p.spec {
        return match parse_spec(s.get_ref()) {
            Ok(spec) => Ok(spec),
            Err(m) => t.err(s.span(), "spec", m.to_string()),
        };
    }
    let Some(name) = &p.name else {
        return t.src.err(
            t.span.clone(),
            &format!("port[{}]", t.i),
            "a port needs `name` or `spec`",
        );
    };
    let ifname = p.ifname.as_ref().unwrap_or(name);
    if let Err(m) = check_ifname(ifname.get_ref()) {
        let k = if p.ifname.is_some() { "ifname" } else { "name" };
        return t.err(ifname.span(), k, m.to_string());
    }
    let kind = p
        .kind
        .as_ref()
        .map_or(PortKind::default(), |k| *k.get_ref());
    if let (Some(k), PortKind::Stream | PortKind::Dgram | PortKind::Vhost) = (&p.kind, kind) {
        // the interface name would become a socket path relative to the daemon's directory
        let kind = kind.as_str();
        let msg = format!(
            "a {kind} port needs an absolute socket path: give it as a spec string (spec = \"NAME={kind}:/PATH\")"
        );
        return t.err(k.span(), "kind", msg);
    }
    Ok(PortSpec::new(
        name.get_ref().clone(),
        kind,
        ifname.get_ref().clone(),
    ))
}

/// The `vxlan` keys of a port table (`vni`, `local`, `remote`, ...): with `kind = "vxlan"` they
/// make the tunnel, with a `vxlan:` spec they add to it; on another kind they are an error.
fn port_vxlan(t: &Table<'_>, p: &FilePort, spec: &mut PortSpec) -> Result<(), ConfigError> {
    let mut words: Vec<(&str, Range<usize>, String)> = Vec::new();
    let mut one = |k: &'static str, span: Range<usize>, v: String| {
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
        words.push(("learning", t.span.clone(), w.to_string()));
    }
    if let Some(g) = p.gso {
        let w = if g { "gso" } else { "no-gso" };
        words.push(("gso", t.span.clone(), w.to_string()));
    }
    if let Some(m) = &p.vni_map {
        let items: Vec<String> = m
            .get_ref()
            .iter()
            .map(|(vlan, vni)| format!("{}:{vni}", vlan.trim()))
            .collect();
        words.push(("vni_map", m.span(), format!("vni-map={}", items.join(";"))));
    }
    if spec.kind == PortKind::Vxlan && spec.vxlan.is_none() && p.vni_map.is_some() {
        if let Some(vni) = &p.vni {
            return t.err(
                vni.span(),
                "vni",
                "a vxlan port has either one VNI (vni = N) or a vni_map, not both",
            );
        }
        spec.vxlan = Some(VxlanSpec::unnumbered());
        spec.arg = String::new();
    } else if spec.kind == PortKind::Vxlan && spec.vxlan.is_none() {
        let Some(vni) = &p.vni else {
            return t.err_table("vni", "a vxlan port needs vni = N (or a vni_map)");
        };
        match crate::vxlan::spec::parse_vni(&vni.get_ref().to_string()) {
            Ok(n) => {
                spec.vxlan = Some(VxlanSpec::new(n));
                spec.arg = n.to_string();
            }
            Err(e) => return t.err(vni.span(), "vni", e.to_string()),
        }
    } else if let Some(vni) = &p.vni {
        return t.err(
            vni.span(),
            "vni",
            "vni is for kind = \"vxlan\" (a spec string gives it as vxlan:VNI)",
        );
    }
    let Some(v) = spec.vxlan.as_mut() else {
        return match words.first() {
            Some((k, span, _)) => t.err(
                span.clone(),
                k,
                "this key is for vxlan ports (kind = \"vxlan\")",
            ),
            None => Ok(()),
        };
    };
    for (k, span, w) in words {
        if let Err(e) = v.apply(&w) {
            return t.err(span, k, e.to_string());
        }
    }
    if let Err(e) = v.check() {
        let k = match e {
            VxlanSpecError::VniAndMap | VxlanSpecError::NoVni => "vni_map",
            _ => "local",
        };
        return t.err_table(k, e.to_string());
    }
    Ok(())
}

/// `flags`, `mtu`, `offload`, `neigh_suppress`, `max_learned`.
fn port_keys(t: &Table<'_>, p: &FilePort, spec: &mut PortSpec) -> Result<(), ConfigError> {
    for f in &p.flags {
        if let Err(m) = apply_flag(&mut spec.flags, f.get_ref()) {
            return t.err(f.span(), "flags", m.to_string());
        }
    }
    if let Some(m) = &p.mtu {
        match validate::MTU.check("mtu", *m.get_ref() as u64) {
            Ok(v) => spec.mtu = Some(v as u32),
            Err(e) => return t.err(m.span(), "mtu", e.to_string()),
        }
    }
    if let Some(o) = p.offload {
        spec.offload = o;
    }
    if let Some(on) = p.neigh_suppress {
        spec.flags = spec
            .flags
            .with(crate::forwarding::PortFlags::NEIGH_SUPPRESS, on);
    }
    if let Some(m) = &p.max_learned {
        match validate::PORT_MAX_LEARNED.check("max_learned", *m.get_ref()) {
            Ok(v) => spec.max_learned = v as usize,
            Err(e) => return t.err(m.span(), "max_learned", e.to_string()),
        }
    }
    Ok(())
}

/// `stp_cost`, `stp_priority`, `edge`, `auto_edge`, `p2p`, `bpdu_guard`, `root_guard` (their
/// ranges are checked with the whole port, as `port[i].stp`).
fn port_stp(t: &Table<'_>, p: &FilePort, spec: &mut PortSpec) -> Result<(), ConfigError> {
    let stp = &mut spec.stp;
    if let Some(v) = p.stp_cost {
        stp.path_cost = Some(v);
    }
    if let Some(v) = p.stp_priority {
        stp.priority = v;
    }
    if let Some(v) = p.edge {
        stp.admin_edge = v;
    }
    if let Some(v) = p.auto_edge {
        stp.auto_edge = v;
    }
    if let Some(v) = &p.p2p {
        match parse_p2p(v.get_ref()) {
            Ok(x) => stp.p2p = x,
            Err(e) => return t.err(v.span(), "p2p", e.to_string()),
        }
    }
    if let Some(v) = p.bpdu_guard {
        stp.bpdu_guard = v;
    }
    if let Some(v) = p.root_guard {
        stp.root_guard = v;
    }
    Ok(())
}

/// One `[[mirror]]` table (`mirror[i]` in errors): a valid mirror whose name differs from the
/// `earlier` ones and which does not conflict with them.
fn mirror_table(
    src: &Src<'_>,
    i: usize,
    span: Range<usize>,
    m: MirrorSpec,
    earlier: &[MirrorSpec],
) -> Result<MirrorSpec, ConfigError> {
    let key = format!("mirror[{i}]");
    if let Err(e) = m.check() {
        return src.err(span, &key, e.to_string());
    }
    if earlier.iter().any(|o| o.name == m.name) {
        return src.err(span, &key, format!("duplicate mirror name '{}'", m.name));
    }
    if let Err(e) = m.check_against(earlier.iter()) {
        return src.err(span, &key, e.to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::PortFlags;

    const PATH: &str = "/etc/tapswitch/test.toml";

    fn parse(text: &str) -> Result<FileSettings, ConfigError> {
        parse_file(Path::new(PATH), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn top_level_keys() {
        let f = parse(
            r#"
name = "br9"
listen = "127.0.0.1:9999"
control = "none"
control_group = "wheel"
ageing_secs = 10
fdb_max_learned = 100
group_fwd_mask = "lldp"
mode = "vepa"
vepa_flood_unknown = true
api_token = "t"
dataplane_threads = 2
busy_poll_us = 0
api_max_conns = 7
vlan_filtering = true
vlan_protocol = "802.1ad"
default_pvid = 0
stp = "rstp"
stp_mac = "02:00:00:00:00:09"
stp_priority = 4096
stp_hello_time = 1
stp_forward_delay = 4
stp_max_age = 6
"#,
        )
        .unwrap();
        assert_eq!(f.file, PATH);
        assert_eq!(f.name.as_deref(), Some("br9"));
        assert_eq!(f.listen, Some(Some("127.0.0.1:9999".parse().unwrap())));
        assert_eq!(f.control, Some(None));
        assert_eq!(
            f.control_group,
            Some(AtLine {
                value: "wheel".to_string(),
                line: 5
            })
        );
        assert_eq!(
            (f.ageing_secs, f.fdb_max, f.group_fwd_mask),
            (Some(10), Some(100), Some(0x4000))
        );
        assert_eq!(f.mode, Some(Mode::Vepa));
        assert_eq!(f.vepa_flood_unknown, Some(true));
        assert_eq!(f.api_token.as_deref(), Some("t"));
        assert_eq!(
            (f.dataplane_threads, f.busy_poll_us, f.api_max_conns),
            (Some(2), Some(0), Some(7))
        );
        assert_eq!(f.vlan_filtering, Some(true));
        assert_eq!(f.vlan_protocol, Some(Protocol::Dot1ad));
        assert_eq!(f.default_pvid, Some(0));
        assert_eq!(f.stp, Some(true));
        assert_eq!(f.stp_mac, Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(
            (
                f.stp_priority,
                f.stp_hello_time,
                f.stp_forward_delay,
                f.stp_max_age
            ),
            (Some(4096), Some(1), Some(4), Some(6))
        );
        assert!(f.ports.is_empty() && f.mirrors.is_empty());
        // a file that says nothing sets nothing
        let f = parse("").unwrap();
        assert!(f.name.is_none() && f.listen.is_none() && f.ports.is_empty());
        assert_eq!(
            parse("group_fwd_mask = 8\n").unwrap().group_fwd_mask,
            Some(8)
        );
    }

    #[test]
    fn token_file_is_kept_with_its_line_not_read() {
        let f = parse("name = \"x\"\napi_token_file = \"tok\"\n").unwrap();
        assert_eq!(
            f.api_token_file,
            Some(AtLine {
                value: PathBuf::from("/etc/tapswitch/tok"),
                line: 2
            }),
            "relative to the file's directory"
        );
        let f = parse("api_token_file = \"/run/keys/tok\"\n").unwrap();
        assert_eq!(f.api_token_file.unwrap().value, Path::new("/run/keys/tok"));
        let e = err("name = \"x\"\napi_token = \"\"\n");
        assert!(e.contains(":2: key 'api_token': an empty token"), "{e}");
        assert_eq!(
            parse("api_token = \" \"\n").unwrap().api_token.as_deref(),
            Some(" ")
        );
        let e = err("api_token = \"a\"\napi_token_file = \"b\"\n");
        assert!(
            e.contains(":2: key 'api_token_file'") && e.contains("not both"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e =
            err("ageing_secs = 5\n\n[[port]]\nname = \"tsw0\"\nflags = [\"hairpin\", \"nope\"]\n");
        assert!(
            e.starts_with(&format!("{PATH}:5: key 'port[0].flags'")),
            "{e}"
        );
        assert!(e.contains("unknown port flag 'nope'"), "{e}");
        let e = err("bogus = 1\n");
        assert!(
            e.starts_with(PATH) && e.contains("line 1") && e.contains("bogus"),
            "{e}"
        );
        let e = err("\nfdb_max = 0\n");
        assert!(e.contains(":2: key 'fdb_max'"), "{e}");
        let e = err("[[port]]\nname = \"a\"\n[[port]]\nname = \"a\"\n");
        assert!(e.contains(":3: key 'port[1].name'"), "{e}");
        assert!(e.contains("duplicate port name 'a'"), "{e}");
        for (text, key) in [
            ("listen = \"nowhere\"\n", ":1: key 'listen'"),
            ("\n\nname = \"a/b\"\n", ":3: key 'name'"),
            ("ageing_secs = 2000000\n", ":1: key 'ageing_secs'"),
            ("group_fwd_mask = 70000\n", ":1: key 'group_fwd_mask'"),
            ("group_fwd_mask = \"bpdu\"\n", ":1: key 'group_fwd_mask'"),
            ("dataplane_threads = 0\n", ":1: key 'dataplane_threads'"),
            ("busy_poll_us = 1000001\n", ":1: key 'busy_poll_us'"),
            ("api_max_conns = 0\n", ":1: key 'api_max_conns'"),
            ("vlan_protocol = \"802.1x\"\n", ":1: key 'vlan_protocol'"),
            ("stp = \"mstp\"\n", ":1: key 'stp'"),
            ("stp_mac = \"nope\"\n", ":1: key 'stp_mac'"),
            ("default_pvid = 4095\n", ":1: key 'default_pvid'"),
        ] {
            let e = err(text);
            assert!(e.starts_with(&format!("{PATH}{key}: ")), "{text:?}: {e}");
        }
        // not TOML, or a value of the wrong type: the file, with toml's own line and column
        let e = err("name = \n");
        assert!(e.starts_with(&format!("{PATH}: ")), "{e}");
        let e = err("fdb_max = \"many\"\n");
        assert!(
            e.starts_with(&format!("{PATH}: ")) && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn first_mistake_in_check_order() {
        // several mistakes: the one reported is the first in the order the keys are checked
        let e = err("api_max_conns = 0\nageing_secs = 2000000\n");
        assert!(e.contains("key 'ageing_secs'"), "{e}");
        let e = err("default_pvid = 4095\nstp = \"x\"\n");
        assert!(e.contains("key 'stp'"), "{e}");
        let e = err("[[port]]\nname = \"a\"\nmtu = 1\n[[port]]\nname = \"b/\"\n");
        assert!(e.contains("key 'port[0].mtu'"), "{e}");
    }

    #[test]
    fn port_tables() {
        let f = parse(
            r#"
[[port]]
name = "tsw0"
flags = ["hairpin", "no-flood"]
mtu = 9000
max_learned = 4
stp_cost = 100
edge = true
p2p = "no"
storm_broadcast = 10
queues = 4

[[port]]
spec = "tsw1,isolated"
name = "renamed"
offload = false

[[port]]
name = "up"
ifname = "eth9"
kind = "packet"
"#,
        )
        .unwrap();
        let p = &f.ports[0];
        assert_eq!((p.name.as_str(), p.arg.as_str()), ("tsw0", "tsw0"));
        assert!(p.flags.contains(PortFlags::HAIRPIN) && !p.flags.contains(PortFlags::FLOOD));
        assert_eq!((p.mtu, p.max_learned, p.queues), (Some(9000), 4, 4));
        assert_eq!(p.stp.path_cost, Some(100));
        assert!(p.stp.admin_edge);
        assert_eq!(p.stp.p2p, crate::stp::P2p::No);
        assert_eq!(p.storm, [10, 0, 0]);
        let p = &f.ports[1];
        assert_eq!((p.name.as_str(), p.arg.as_str()), ("renamed", "tsw1"));
        assert!(p.flags.contains(PortFlags::ISOLATED) && !p.offload);
        let p = &f.ports[2];
        assert_eq!(
            (p.name.as_str(), p.arg.as_str(), p.kind),
            ("up", "eth9", PortKind::Packet)
        );
        for (text, key, what) in [
            (
                "[[port]]\nflags = []\n",
                ":1: key 'port[0]'",
                "needs `name` or `spec`",
            ),
            (
                "[[port]]\nspec = \"x,nope\"\n",
                ":2: key 'port[0].spec'",
                "nope",
            ),
            (
                "[[port]]\nname = \"a\"\nifname = \"a/b\"\n",
                ":3: key 'port[0].ifname'",
                "",
            ),
            ("[[port]]\nname = \"a b\"\n", ":2: key 'port[0].name'", ""),
            (
                "[[port]]\nname = \"a\"\nmtu = 12\n",
                ":3: key 'port[0].mtu'",
                "68",
            ),
            (
                "[[port]]\nname = \"a\"\nmax_learned = 100000000\n",
                ":3: key 'port[0].max_learned'",
                "",
            ),
            (
                "[[port]]\nname = \"a\"\np2p = \"maybe\"\n",
                ":3: key 'port[0].p2p'",
                "p2p must be",
            ),
            (
                "[[port]]\nname = \"a\"\nstp_priority = 17\n",
                ":1: key 'port[0].stp'",
                "multiple of 16",
            ),
            (
                "[[port]]\nname = \"a\"\nqueues = 17\n",
                ":3: key 'port[0].queues'",
                "queues must be",
            ),
            (
                "[[port]]\nname = \"a\"\noffload = false\nqueues = 2\n",
                ":4: key 'port[0].queues'",
                "queues= needs",
            ),
            (
                "[[port]]\nname = \"a\"\nkind = \"stream\"\n",
                ":3: key 'port[0].kind'",
                "spec = \"NAME=stream:/PATH\"",
            ),
            (
                "[[port]]\nname = \"a\"\nkind = \"dgram\"\n",
                ":3: key 'port[0].kind'",
                "absolute socket path",
            ),
            (
                "[[port]]\nname = \"a\"\nkind = \"vhost\"\n",
                ":3: key 'port[0].kind'",
                "absolute socket path",
            ),
        ] {
            let e = err(text);
            assert!(
                e.starts_with(&format!("{PATH}{key}: ")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn port_vlan_keys() {
        let f = parse("[[port]]\nname = \"tsw0\"\ntrunk = [10, \"20-21\"]\nnative = 10\n").unwrap();
        let pv = f.ports[0].vlans.as_ref().unwrap();
        assert_eq!(pv.pvid(), Some(10));
        assert_eq!(pv.members().len(), 3);
        let e = err("[[port]]\nname = \"a\"\naccess = 5\ntrunk = \"6\"\n");
        assert!(
            e.contains(":1: key 'port[0].vlans'") && e.contains("access="),
            "{e}"
        );
    }

    #[test]
    fn neigh_suppress_is_a_port_key_and_a_flag_word() {
        let f = parse(
            "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"198.18.0.1\"\nneigh_suppress = true\n\n[[port]]\nspec = \"vx1=vxlan:200,local=198.18.0.1,neigh-suppress\"\n\n[[port]]\nname = \"tsw0\"\nflags = [\"neigh_suppress\"]\nneigh_suppress = false\n",
        )
        .unwrap();
        let on = |i: usize| f.ports[i].flags.contains(PortFlags::NEIGH_SUPPRESS);
        assert!(on(0) && on(1) && !on(2));
        let e = err("[[port]]\nname = \"tsw0\"\nneigh_suppress = \"yes\"\n");
        assert!(e.contains("neigh_suppress"), "{e}");
    }

    #[test]
    fn vxlan_port_tables() {
        let f = parse(
            "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"198.18.0.1\"\nremote = [\"198.18.0.2\"]\nsrcport = \"49152-65000\"\naccept = [\"198.18.0.0/15\"]\nlearning = false\nttl = 9\ngso = false\n\n[[port]]\nspec = \"vx1=vxlan:200,local=198.18.0.1\"\nremote = [\"198.18.0.9\"]\n",
        )
        .unwrap();
        let v = f.ports[0].vxlan.as_ref().unwrap();
        assert_eq!(
            (v.vni, v.srcport, v.ttl, v.learning, v.gso),
            (100, (49152, 65000), Some(9), false, false)
        );
        assert!(
            f.ports[1].vxlan.as_ref().unwrap().gso,
            "GSO send on by default"
        );
        let e = err("[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"198.18.0.1\"\ngso = \"off\"\n");
        assert!(
            e.contains("test.toml") && e.contains("line 6") && e.contains("gso ="),
            "{e}"
        );
        assert_eq!(f.ports[0].arg, "100");
        assert_eq!(f.ports[1].vxlan.as_ref().unwrap().remotes.len(), 1);
        let e = err("[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"198.18.0.1\"\nremote = [\"nowhere\"]\n");
        assert!(e.contains(":6: key 'port[0].remote'"), "{e}");
        let e = err("[[port]]\nname = \"tsw0\"\nlocal = \"198.18.0.1\"\n");
        assert!(
            e.contains(":3: key 'port[0].local'") && e.contains("vxlan ports"),
            "{e}"
        );
        let e = err("[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nlocal = \"198.18.0.1\"\n");
        assert!(
            e.contains(":1: key 'port[0].vni'") && e.contains("needs vni"),
            "{e}"
        );
        let e = err("[[port]]\nname = \"tsw0\"\nvni = 5\n");
        assert!(e.contains(":3: key 'port[0].vni'"), "{e}");
        let e = err(
            "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 16777216\nlocal = \"198.18.0.1\"\n",
        );
        assert!(
            e.contains(":4: key 'port[0].vni'") && e.contains("24 bits"),
            "{e}"
        );
        let e = err("[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 5\n");
        assert!(e.contains(":1: key 'port[0].local'"), "{e}");
    }

    #[test]
    fn vxlan_vni_map_tables() {
        let f = parse(
            "vlan_filtering = true\n[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nlocal = \"198.18.0.1\"\nvni_map = { 10 = 1010, 20 = 1020 }\n\n[[port]]\nspec = \"vx1=vxlan:local=198.18.0.1,dstport=4790,vni-map=30:1030\"\n",
        )
        .unwrap();
        let v = f.ports[0].vxlan.as_ref().unwrap();
        assert_eq!(v.vnis(), [1010, 1020]);
        assert_eq!(v.vni_of_vlan(20), Some(1020));
        assert_eq!(f.ports[1].vxlan.as_ref().unwrap().vnis(), [1030]);
        for (text, what) in [
            (
                "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nlocal = \"198.18.0.1\"\nvni_map = { 10 = 1010, 20 = 1010 }\n",
                ":5: key 'port[0].vni_map'",
            ),
            (
                "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nlocal = \"198.18.0.1\"\nvni_map = { 5000 = 1010 }\n",
                ":5: key 'port[0].vni_map'",
            ),
            (
                "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 7\nlocal = \"198.18.0.1\"\nvni_map = { 10 = 1010 }\n",
                ":4: key 'port[0].vni'",
            ),
            (
                "[[port]]\nspec = \"vx0=vxlan:7,local=198.18.0.1\"\nvni_map = { 10 = 1010 }\n",
                ":1: key 'port[0].vni_map'",
            ),
            (
                "[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nlocal = \"198.18.0.1\"\nvni_map = { 10 = 1010 }\naccess = 10\n",
                ":1: key 'port[0].vlans'",
            ),
            (
                "[[port]]\nname = \"tsw0\"\nvni_map = { 10 = 1010 }\n",
                ":3: key 'port[0].vni_map'",
            ),
        ] {
            let e = err(text);
            assert!(e.contains("test.toml") && e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn mirror_tables() {
        let ports = "[[port]]\nname = \"a\"\n[[port]]\nname = \"b\"\n[[port]]\nname = \"mon\"\n";
        let f = parse(&format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"a\"]\nselect_dst = [\"b\"]\noutput = \"mon\"\n[[mirror]]\nname = \"m2\"\nselect_all = true\noutput = \"mon\"\n")).unwrap();
        assert_eq!(f.mirrors.len(), 2);
        assert_eq!(f.mirrors[0].select_src, ["a"]);
        assert!(f.mirrors[1].select_all);
        let e = err(&format!(
            "{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"mon\"]\noutput = \"mon\"\n"
        ));
        assert!(
            e.contains(":7: key 'mirror[0]'") && e.contains("cannot also be selected"),
            "{e}"
        );
        let e = err(&format!(
            "{ports}[[mirror]]\nname = \"m1\"\noutput = \"mon\"\n"
        ));
        assert!(e.contains("selects nothing"), "{e}");
        let e = err(&format!("{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"a\"]\noutput = \"mon\"\n[[mirror]]\nname = \"m1\"\nselect_all = true\noutput = \"b\"\n"));
        assert!(
            e.contains(":11: key 'mirror[1]'") && e.contains("duplicate mirror name 'm1'"),
            "{e}"
        );
        let e = err(&format!(
            "{ports}[[mirror]]\nname = \"m1\"\nselect_src = [\"a\"]\noutput = \"mon\"\nbogus = 1\n"
        ));
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn load_file_reads_then_parses() {
        let e = load_file(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/x.toml: cannot read"), "{e}");
    }
}
