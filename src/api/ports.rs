//! `/api/v1/ports` and `/api/v1/listeners`: list, show, attach (a port or a listener from a
//! spec), change (flags, table limit, spanning tree, storm limits) and detach.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{bad, not_found, ApiResult};
use super::json::{listener_json, port_json};
use super::listen::read_off;
use super::AppState;
use crate::config::{parse_p2p, parse_spec};
use crate::control::Attached;
use crate::dataplane::{LinkState, PortHandle, Switch};
use crate::fdb::MAX_MAX_LEARNED;
use crate::forwarding::{FloodKind, PortFlags};
use crate::types::PortId;
use crate::validate::{Range, STORM_PPS, STP_PORT_COST, STP_PORT_PRIORITY};

/// The port named `name`, or a 404.
pub(super) fn find_port(sw: &Switch, name: &str) -> ApiResult<Arc<PortHandle>> {
    sw.ports()
        .by_name(name)
        .cloned()
        .ok_or_else(|| not_found(format!("no port named '{name}'")))
}

/// `GET /api/v1/ports`.
pub(super) async fn list_ports(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let sw = st.sw.clone();
    // counting entries per port walks the table: off the runtime and the control thread
    let v = read_off(&st, move || {
        let counts = sw.fdb.entries_by_port();
        let ports = sw.ports();
        Value::Array(
            ports
                .iter()
                .map(|h| port_json(&sw, h, counts.get(&h.id).copied().unwrap_or(0)))
                .collect(),
        )
    })
    .await?;
    Ok(Json(v))
}

/// A port's JSON, its table entries counted off the runtime and the control thread. Takes the
/// port's id, not its handle: detaching a port waits for whoever holds its handle, and must
/// not wait for this count (a walk of the table) or for its client.
async fn port_reply(st: &AppState, id: PortId, name: &str) -> ApiResult<Value> {
    let sw = st.sw.clone();
    read_off(st, move || {
        let n = sw.fdb.entries_of(id);
        let h = sw.ports().get(id).cloned();
        h.map(|h| port_json(&sw, &h, n))
    })
    .await?
    .ok_or_else(|| not_found(format!("port '{name}' was detached meanwhile")))
}

/// `GET /api/v1/ports/{name}`.
pub(super) async fn get_port(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = find_port(&st.sw, &name)?.id;
    Ok(Json(port_reply(&st, id, &name).await?))
}

/// The body of `POST /api/v1/ports`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddPortBody {
    spec: String,
}

/// `POST /api/v1/ports {"spec": ...}`: attaches a port or opens a listener.
pub(super) async fn add_port(
    State(st): State<AppState>,
    body: Result<Json<AddPortBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body?;
    let spec = parse_spec(&body.spec).map_err(|e| bad(e.to_string()))?;
    let sw = st.sw.clone();
    let attached = st
        .ctl
        .run(move || {
            // A port whose interface was deleted (`gone`) is replaced: attaching it again is
            // how a deleted TAP comes back without a `DELETE` first.
            // (no handle held meanwhile: detaching waits for every holder to let go)
            let gone = sw
                .ports()
                .by_name(&spec.name)
                .is_some_and(|h| h.state() == LinkState::Gone);
            if gone {
                sw.remove_port(&spec.name);
            }
            crate::control::attach(&sw, &spec)
        })
        .await??;
    let body = match attached {
        Attached::Port(h) => {
            let (id, name) = (h.id, h.name.clone());
            drop(h);
            port_reply(&st, id, &name).await?
        }
        Attached::Listener(name) => listener_json(&st.sw, &name),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// `DELETE /api/v1/ports/{name}`: detaches a port or closes a listener.
pub(super) async fn del_port(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let sw = st.sw.clone();
    let n = name.clone();
    let done = st
        .ctl
        .run(move || sw.remove_listener(&n) || sw.remove_port(&n).is_some())
        .await?;
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("no port or listener named '{name}'")))
    }
}

/// `GET /api/v1/listeners`.
pub(super) async fn list_listeners(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.sw
            .listeners()
            .iter()
            .map(|l| listener_json(&st.sw, &l.0))
            .collect(),
    ))
}

/// `PATCH /api/v1/ports/{name}`.
pub(super) async fn patch_port(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body?;
    let (sw, n) = (st.sw.clone(), name.clone());
    // read, checked as a whole and applied in one step on the control thread: serialized with
    // every other change and with reloads; a bad field changes nothing
    let (id, flags, max_learned) = st
        .ctl
        .run(move || apply_port_patch(&sw, &n, &body))
        .await??;
    tracing::info!(port = %name, flags = ?flags, ?max_learned, "port changed");
    Ok(Json(port_reply(&st, id, &name).await?))
}

/// `PATCH /api/v1/ports/{name}`: checks every field against the port's current settings,
/// then applies them all. Runs on the control thread.
fn apply_port_patch(
    sw: &Switch,
    name: &str,
    body: &Map<String, Value>,
) -> ApiResult<(PortId, PortFlags, Option<usize>)> {
    let h = find_port(sw, name)?;
    let mut p = PortPatch::new(&h);
    let mut stp = sw.port_stp_config(&h);
    let mut stp_changed = false;
    let mut mcast = sw.port_mcast(h.id);
    let mcast0 = mcast;
    for (k, v) in body {
        if k.starts_with("mcast_") && k != "mcast_flood" {
            mcast
                .set(k, &crate::mcast::settings::value_text(v))
                .map_err(|e| bad(e.to_string()))?;
            continue;
        }
        match k.as_str() {
            "stp_cost" => stp.path_cost = Some(number(k, v, STP_PORT_COST)? as u32),
            "stp_priority" => stp.priority = number(k, v, STP_PORT_PRIORITY)? as u8,
            "edge" => stp.admin_edge = boolean(k, v)?,
            "auto_edge" => stp.auto_edge = boolean(k, v)?,
            "bpdu_guard" => stp.bpdu_guard = boolean(k, v)?,
            "root_guard" => stp.root_guard = boolean(k, v)?,
            "p2p" => stp.p2p = parse_p2p(p2p_text(v)?).map_err(|e| bad(e.to_string()))?,
            _ => {
                p.field(k, v)?;
                continue;
            }
        }
        stp_changed = true;
    }
    if stp_changed {
        stp.validate().map_err(|e| bad(e.to_string()))?;
    }
    // Everything is checked. The flags go first: the one change that can still be refused
    // (a second uplink), before anything else is touched.
    sw.set_port_flags(&h, p.flags)?;
    if let Some(n) = p.max_learned {
        sw.fdb.set_port_limit(h.id, n);
    }
    if stp_changed {
        // validated above, and the port is known: cannot fail
        sw.set_port_stp(&h, stp).map_err(|e| bad(e.to_string()))?;
    }
    if p.enable {
        sw.enable_port_stp(&h);
    }
    p.set_storm(&h);
    if mcast != mcast0 {
        sw.set_port_mcast(&h, mcast);
    }
    Ok((h.id, p.flags, p.max_learned))
}

/// The fields of a port PATCH other than its spanning tree settings, read one by one and
/// applied once all are checked.
struct PortPatch {
    flags: PortFlags,
    max_learned: Option<usize>,
    /// `"enabled": true`: re-enable a port BPDU guard disabled.
    enable: bool,
    /// Broadcast, multicast and unknown unicast limits, as [`FloodKind::ALL`] orders them.
    storm: [Option<u64>; 3],
}

/// The storm limit fields, in [`FloodKind::ALL`]'s order.
const STORM_FIELDS: [&str; 3] = [
    "storm_broadcast",
    "storm_multicast",
    "storm_unknown_unicast",
];

fn boolean(k: &str, v: &Value) -> ApiResult<bool> {
    v.as_bool()
        .ok_or_else(|| bad(format!("'{k}' needs true or false, got {v}")))
}

fn number(k: &str, v: &Value, r: Range) -> ApiResult<u64> {
    let n = v
        .as_u64()
        .ok_or_else(|| bad(format!("'{k}' needs a number, got {v}")))?;
    r.check(k, n).map_err(|e| bad(e.to_string()))
}

fn p2p_text(v: &Value) -> ApiResult<&str> {
    v.as_str()
        .ok_or_else(|| bad(format!("'p2p' needs auto, yes or no, got {v}")))
}

impl PortPatch {
    fn new(h: &PortHandle) -> Self {
        PortPatch {
            flags: h.flags.get(),
            max_learned: None,
            enable: false,
            storm: [None; 3],
        }
    }

    /// Reads one field: `enabled`, a storm limit, `max_learned` or a port flag.
    fn field(&mut self, k: &str, v: &Value) -> ApiResult<()> {
        if k == "enabled" {
            if !boolean(k, v)? {
                return Err(bad(
                    "'enabled' re-enables a port BPDU guard disabled; to take a port out, detach it or set its link down",
                ));
            }
            self.enable = true;
        } else if let Some(i) = STORM_FIELDS.iter().position(|x| *x == k) {
            self.storm[i] = Some(number(k, v, STORM_PPS)?);
        } else if k == "max_learned" {
            let n = v
                .as_u64()
                .filter(|n| *n <= MAX_MAX_LEARNED as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "max_learned needs a number 0..={MAX_MAX_LEARNED}, got {v}"
                    ))
                })?;
            self.max_learned = Some(n as usize);
        } else {
            self.flags = self.flags.with(flag(k)?, flag_value(k, v)?);
        }
        Ok(())
    }

    /// Sets the storm limits the patch named.
    fn set_storm(&self, h: &PortHandle) {
        for (k, pps) in FloodKind::ALL.iter().zip(self.storm) {
            if let Some(pps) = pps {
                h.storm.bucket(*k).set_rate(pps);
            }
        }
    }
}

/// The port flag named `k`, or a 400 listing the known ones.
fn flag(k: &str) -> ApiResult<PortFlags> {
    PortFlags::by_name(k).ok_or_else(|| {
        let known: Vec<&str> = PortFlags::ALL.iter().map(|(n, _)| *n).collect();
        bad(format!(
            "unknown port flag '{k}' (known: {})",
            known.join(", ")
        ))
    })
}

fn flag_value(k: &str, v: &Value) -> ApiResult<bool> {
    v.as_bool()
        .ok_or_else(|| bad(format!("flag '{k}' needs true or false, got {v}")))
}
