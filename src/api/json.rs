//! How the switch looks in the API's answers: ports (with their VLANs, spanning tree, storm
//! limits, counters and tunnel), listeners, the switch settings and table entries. The
//! handlers of several resources share these shapes (a port's VLANs are in its own JSON and
//! in `/api/v1/vlans`; a table entry is listed and returned by a change).

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::dataplane::{PortHandle, Registry, Switch};
use crate::fdb::{EntryKind, FdbRecord};
use crate::forwarding::{FloodKind, RxDrop, TxDrop};
use crate::vxlan::vtep::{Vtep, VtepRecord, VxlanDrop};
use crate::wire::MacAddr;

/// The JSON form of a port; `fdb_entries` is its number of table entries.
pub fn port_json(sw: &Switch, h: &PortHandle, fdb_entries: usize) -> Value {
    let mut v = json!({
        "name": h.name,
        "id": h.id.0,
        "kind": h.kind().as_str(),
        "flags": h.flags.get(),
        "state": if sw.bpdu_guard_tripped(h.id) {
            json!("bpdu_guard")
        } else {
            json!(h.state())
        },
        "up": h.is_up(),
        "mtu": h.port.mtu(),
        "created": h.port.created(),
        "fdb_entries": fdb_entries,
        "pvid": h.vlans().pvid(),
        "vlans": vlans_json(&h.vlans()),
        "stp": stp_json(sw, h),
        "mcast": sw
            .port_mcast(h.id)
            .settings()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<serde_json::Map<String, Value>>(),
        "storm": {
            "broadcast": h.storm.bucket(FloodKind::Broadcast).rate(),
            "multicast": h.storm.bucket(FloodKind::Multicast).rate(),
            "unknown_unicast": h.storm.bucket(FloodKind::UnknownUnicast).rate(),
        },
        "learned": sw.fdb.port_learned(h.id).0,
        "max_learned": sw.fdb.port_learned(h.id).1,
        "counters": counters_json(h),
    });
    if h.kind() == crate::port::PortKind::Vxlan {
        let vteps = sw.vteps_of(h.id);
        if let Some((_, vt)) = vteps.first() {
            v["vxlan"] = vxlan_json(vt);
            if vteps[0].0.is_some() {
                // a vni-map: one table and flood list per VNI
                v["vxlan"]["vni"] = Value::Null;
                v["vxlan"]["vni_map"] = vteps
                    .iter()
                    .map(|(vlan, t)| {
                        let mut e = vni_json(t);
                        e["vlan"] = json!(vlan);
                        e["vni"] = json!(t.vni());
                        e
                    })
                    .collect::<Vec<_>>()
                    .into();
                for k in [
                    "flood",
                    "remotes",
                    "entries",
                    "learned",
                    "rx_dropped_by_reason",
                    "gso_sends",
                    "gso_datagrams",
                ] {
                    if let Some(o) = v["vxlan"].as_object_mut() {
                        o.remove(k);
                    }
                }
            }
        }
    }
    v
}

/// A port's frame and byte counters, and its drops by reason.
fn counters_json(h: &PortHandle) -> Value {
    let c = &h.counters;
    let rx_by: Map<String, Value> = RxDrop::ALL
        .iter()
        .map(|r| {
            (
                r.label().into(),
                c.rx_dropped[r.index()].load(Relaxed).into(),
            )
        })
        .collect();
    let tx_by: Map<String, Value> = TxDrop::ALL
        .iter()
        .map(|r| {
            (
                r.label().into(),
                c.tx_dropped[r.index()].load(Relaxed).into(),
            )
        })
        .collect();
    let device_by: Map<String, Value> = h
        .port
        .own_drops()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    json!({
        "rx_frames": c.rx_frames.load(Relaxed),
        "rx_bytes": c.rx_bytes.load(Relaxed),
        "tx_frames": c.tx_frames.load(Relaxed),
        "tx_bytes": c.tx_bytes.load(Relaxed),
        "rx_forwarded": c.rx_forwarded.load(Relaxed),
        "rx_flooded": c.rx_flooded.load(Relaxed),
        "rx_dropped": c.rx_dropped_total(),
        "tx_dropped": c.tx_dropped_total(),
        "link_changes": c.link_changes.load(Relaxed),
        "rx_dropped_by_reason": rx_by,
        "device_dropped_by_reason": device_by,
        "tx_dropped_by_reason": tx_by,
    })
}

/// The tunnel of a `vxlan` port of one VNI: its spec, and what [`vni_json`] says.
fn vxlan_json(v: &Vtep) -> Value {
    let s = &v.spec;
    let mut out = json!({
        "vni": s.vni,
        "local": s.local,
        "dstport": s.dstport,
        "learning": s.learning,
        "gso": s.gso,
        "srcport": [s.srcport.0, s.srcport.1],
        "ttl": s.ttl,
        "tos": s.tos,
        "accept": s.accept,
    });
    if let (Some(o), Value::Object(t)) = (out.as_object_mut(), vni_json(v)) {
        o.extend(t);
    }
    out
}

/// What one VNI of a `vxlan` port has: its flood list with per-remote counters, its table
/// and the packets it dropped, by reason.
fn vni_json(v: &Vtep) -> Value {
    let remotes = v.remotes();
    let drops: Map<String, Value> = VxlanDrop::PER_PORT
        .iter()
        .map(|r| (r.label().into(), v.stats.rx_dropped.get(*r).into()))
        .collect();
    json!({
        "flood": remotes.flood.iter().map(|r| json!({
            "dst": r.ip,
            "tx_frames": r.tx_frames.load(Relaxed),
            "rx_frames": r.rx_frames.load(Relaxed),
            "tx_errors": r.tx_errors.load(Relaxed),
        })).collect::<Vec<_>>(),
        "remotes": remotes.len(),
        "entries": v.len(),
        "learned": v.learned_count(),
        "rx_dropped_by_reason": drops,
        "gso_sends": v.stats.gso_sends_total.load(Relaxed),
        "gso_datagrams": v.stats.gso_datagrams_total.load(Relaxed),
    })
}

/// A port's spanning tree view: its settings, and its status while STP runs.
fn stp_json(sw: &Switch, h: &PortHandle) -> Value {
    let cfg = sw.port_stp_config(h);
    let mut v = json!({
        "config": cfg,
        "state": h.stp_gate.get(),
    });
    if let Some(s) = sw.port_stp_status(h.id) {
        v["status"] = json!(s);
        v["role"] = json!(s.role);
    }
    v
}

/// A port's VLANs as `bridge -j vlan show` lists them: `[{"vlan": 10, "flags": ["PVID",
/// "Egress Untagged"]}]`.
pub fn vlans_json(v: &crate::vlan::PortVlans) -> Value {
    Value::Array(
        v.members()
            .iter()
            .map(|vid| {
                let mut flags = Vec::new();
                if v.pvid() == Some(vid) {
                    flags.push("PVID");
                }
                if v.is_untagged(vid) {
                    flags.push("Egress Untagged");
                }
                if flags.is_empty() {
                    json!({ "vlan": vid })
                } else {
                    json!({ "vlan": vid, "flags": flags })
                }
            })
            .collect(),
    )
}

/// The JSON form of a listener (`null` if there is none by that name).
pub(super) fn listener_json(sw: &Switch, name: &str) -> Value {
    let l = sw.listeners().into_iter().find(|l| l.0 == name);
    match l {
        Some((name, kind, path)) => json!({
            "name": name,
            "kind": kind.as_str(),
            "path": path.display().to_string(),
            "ports": sw.listener_ports(&name, kind).iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
        }),
        None => Value::Null,
    }
}

/// The switch settings, the table's size and the spanning tree bridge's settings.
pub(super) fn config_json(sw: &Switch) -> Value {
    let s = sw.settings.load();
    let b = sw.stp_bridge();
    let mut v = json!({
        "name": sw.name,
        "mode": s.mode,
        "ageing_secs": s.ageing_ms / 1000,
        "fdb_max_learned": sw.fdb.max_learned(),
        "fdb_n_learned": sw.fdb.learned_count(),
        "fdb_entries": sw.fdb.len(),
        "group_fwd_mask": s.group_fwd_mask,
        "vepa_flood_unknown": s.vepa_flood_unknown,
        "vlan_filtering": s.vlan_filtering,
        "vlan_protocol": s.vlan_protocol,
        "default_pvid": s.default_pvid,
        "stp": if s.stp { "rstp" } else { "off" },
        "stp_priority": b.priority,
        "stp_hello_time": b.hello_time,
        "stp_forward_delay": b.forward_delay,
        "stp_max_age": b.max_age,
        "stp_mac": b.mac,
    });
    for (k, x) in sw.mcast_config().settings() {
        v[k] = x;
    }
    v
}

/// One table entry as the API shows it: a typed struct serialized straight to the response,
/// so listing a full table costs one buffer, not a JSON tree per entry.
#[derive(Serialize)]
pub(super) struct EntryJson {
    mac: MacAddr,
    vlan: u16,
    port: String,
    kind: EntryKind,
    #[serde(rename = "static")]
    is_static: bool,
    sticky: bool,
    age: u64,
    used: u64,
    /// The remote VTEP of a `vxlan` port's own entry; `null` for a bridge entry.
    dst: Option<std::net::IpAddr>,
    /// The EVPN mobility sequence number of a bridge entry in a VLAN that has a VNI (with
    /// `--evpn`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seq: Option<u32>,
    /// The VNI of a `vxlan` port's own entry (whose table it is in); `null` for a bridge
    /// entry.
    vni: Option<u32>,
}

/// Looks up EVPN mobility sequence numbers, when the switch runs the EVPN service: the
/// number of `mac` in table VLAN `vlan`, `None` for a VLAN without a VNI.
pub(super) fn evpn_seq(sw: &Switch) -> impl Fn(u16, &MacAddr) -> Option<u32> {
    let e = sw.evpn.lock().unwrap_or_else(|p| p.into_inner()).clone();
    move |vlan, mac| {
        e.as_ref()?
            .downcast_ref::<crate::evpn::shadow::Evpn>()?
            .seq(vlan, mac)
    }
}

/// A `vxlan` port's own entry (`bridge fdb show` prints it `... dst IP self`).
pub(super) fn vtep_entry_json(port: &str, vni: u32, r: &VtepRecord) -> EntryJson {
    EntryJson {
        mac: r.mac,
        vlan: 0,
        port: port.to_string(),
        kind: r.kind,
        is_static: !r.kind.ages(),
        sticky: false,
        age: r.updated_ms_ago / 1000,
        used: r.updated_ms_ago / 1000,
        dst: Some(r.dst),
        seq: None,
        vni: Some(vni),
    }
}

/// An entry of the bridge's table (`bridge fdb show` prints it `... master`).
pub(super) fn entry_json(ports: &Registry, r: &FdbRecord) -> EntryJson {
    EntryJson {
        mac: r.mac,
        vlan: r.vlan,
        port: ports
            .get(r.port)
            .map(|h| h.name.clone())
            .unwrap_or_default(),
        kind: r.kind,
        is_static: !r.kind.ages(),
        sticky: r.kind == EntryKind::Sticky,
        age: r.updated_ms_ago / 1000,
        used: r.used_ms_ago / 1000,
        dst: None,
        seq: None,
        vni: None,
    }
}
