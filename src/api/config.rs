//! `/api/v1/config`: the switch settings (mode, ageing, table limit, VLAN filtering, group
//! forwarding mask, spanning tree bridge), shown and changed as a whole.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::error::{bad, ApiResult};
use super::json::config_json;
use super::AppState;
use crate::config::{check_default_pvid, parse_group_mask, parse_stp};
use crate::dataplane::Switch;
use crate::fdb::MAX_MAX_LEARNED;
use crate::forwarding::Settings;

/// `GET /api/v1/config`.
pub(super) async fn get_config(State(st): State<AppState>) -> Json<Value> {
    Json(config_json(&st.sw))
}

/// The body of `PATCH /api/v1/config`: every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigPatch {
    ageing_secs: Option<u64>,
    fdb_max_learned: Option<u64>,
    group_fwd_mask: Option<Value>,
    vepa_flood_unknown: Option<bool>,
    vlan_filtering: Option<bool>,
    vlan_protocol: Option<String>,
    default_pvid: Option<u16>,
    stp: Option<String>,
    stp_priority: Option<u16>,
    stp_hello_time: Option<u8>,
    stp_forward_delay: Option<u8>,
    stp_max_age: Option<u8>,
    stp_mac: Option<String>,
}

/// `PATCH /api/v1/config`. The `mcast_*` keys (Linux's names and units, see
/// [`crate::mcast::settings`]) are taken apart from the others.
pub(super) async fn patch_config(
    State(st): State<AppState>,
    body: Result<Json<serde_json::Map<String, Value>>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(mut body) = body?;
    let mcast: Vec<(String, Value)> = body
        .keys()
        .filter(|k| k.starts_with("mcast_"))
        .cloned()
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|k| body.remove(&k).map(|v| (k, v)))
        .collect();
    let p: ConfigPatch =
        serde_json::from_value(Value::Object(body)).map_err(|e| bad(e.to_string()))?;
    let sw = st.sw.clone();
    // read, checked as a whole and applied in one step on the control thread: serialized with
    // every other change and with reloads (a VLAN change also flushes the table and edits
    // ports there); a bad field changes nothing
    let s = st
        .ctl
        .run(move || apply_config_patch(&sw, &p, &mcast))
        .await??;
    tracing::info!(settings = ?s, "switch settings changed");
    Ok(Json(config_json(&st.sw)))
}

/// `PATCH /api/v1/config`: checks every field against the current settings, then applies
/// them all. Runs on the control thread.
fn apply_config_patch(
    sw: &Switch,
    p: &ConfigPatch,
    mcast: &[(String, Value)],
) -> ApiResult<Settings> {
    let mut s = patch_settings(sw.settings.load(), p)?;
    if !s.vlan_filtering {
        // a vni-map maps VLANs: without them its VNIs would have nowhere to go
        if let Some(m) = sw.vxlan_members().into_iter().find(|m| m.vlan.is_some()) {
            return Err(bad(format!(
                "port '{}' has a vni-map, which needs VLAN filtering on: remove the port first",
                m.port.name
            )));
        }
    }
    let mut mc = sw.mcast_config();
    let mc0 = mc.clone();
    for (k, v) in mcast {
        mc.set(k, &crate::mcast::settings::value_text(v))
            .map_err(|e| bad(e.to_string()))?;
    }
    let mc = mc.validated().map_err(|e| bad(e.to_string()))?;
    let mut b = sw.stp_bridge();
    let b0 = b;
    if let Some(v) = p.stp_priority {
        b.priority = v;
    }
    if let Some(v) = p.stp_hello_time {
        b.hello_time = v;
    }
    if let Some(v) = p.stp_forward_delay {
        b.forward_delay = v;
    }
    if let Some(v) = p.stp_max_age {
        b.max_age = v;
    }
    if let Some(m) = &p.stp_mac {
        b.mac = m
            .parse()
            .map_err(|e: crate::wire::ParseMacError| bad(e.to_string()))?;
    }
    if b != b0 {
        b.validate().map_err(|e| bad(e.to_string()))?;
    }
    if let Some(g) = &p.group_fwd_mask {
        s.group_fwd_mask = group_mask(g)?;
    }
    if let Some(v) = p.vepa_flood_unknown {
        s.vepa_flood_unknown = v;
    }
    if let Some(m) = p.fdb_max_learned {
        if m == 0 || m > MAX_MAX_LEARNED as u64 {
            return Err(bad(format!(
                "fdb_max_learned must be 1..={MAX_MAX_LEARNED}"
            )));
        }
    }
    // Everything is checked: apply.
    if mc != mc0 {
        // validated above: cannot fail
        sw.set_mcast_config(mc).map_err(|e| bad(e.to_string()))?;
    }
    if b != b0 {
        // validated above: cannot fail
        sw.set_stp_bridge(b).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(m) = p.fdb_max_learned {
        sw.fdb.set_max_learned(m as usize);
    }
    crate::control::set_settings(sw, s);
    Ok(s)
}

/// The ageing time, VLAN filtering and protocol, default PVID and spanning tree switch of
/// `s` as the patch changes them.
fn patch_settings(mut s: Settings, p: &ConfigPatch) -> ApiResult<Settings> {
    if let Some(a) = p.ageing_secs {
        s.ageing_ms = crate::validate::AGEING_SECS
            .check("ageing_secs", a)
            .map_err(|e| bad(e.to_string()))?
            * 1000;
    }
    if let Some(v) = p.vlan_filtering {
        s.vlan_filtering = v;
    }
    if let Some(v) = &p.vlan_protocol {
        s.vlan_protocol = v
            .parse()
            .map_err(|e: crate::vlan::ParseProtocolError| bad(e.to_string()))?;
    }
    if let Some(d) = p.default_pvid {
        s.default_pvid = check_default_pvid(d).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(v) = &p.stp {
        s.stp = parse_stp(v).map_err(|e| bad(e.to_string()))?;
    }
    Ok(s)
}

/// `group_fwd_mask`: a number, or a string as the configuration file takes it
/// (`"lldp,lacp"`, `"0x4004"`, `"all"`).
fn group_mask(g: &Value) -> ApiResult<u16> {
    match g {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| bad(format!("group_fwd_mask {n} is outside 0..0xffff"))),
        Value::String(t) => parse_group_mask(t).map_err(|e| bad(e.to_string())),
        other => Err(bad(format!(
            "group_fwd_mask must be a number or a string, got {other}"
        ))),
    }
}
