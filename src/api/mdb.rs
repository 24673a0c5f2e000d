//! `/api/v1/mdb`: the multicast database, shaped like `bridge -d -s -j mdb show` (groups per
//! port and VLAN with their filter mode and sources, router ports, and the querier of each VLAN
//! and family), and static entries added and removed as `bridge mdb add|del dev BR port P grp G
//! [src S] [permanent|temp] [vid N]` makes them.

use std::net::IpAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{bad, not_found, ApiResult};
use super::AppState;
use crate::dataplane::Switch;
use crate::mcast::{Family, StaticEntry};
use crate::types::PortId;

fn port_name(sw: &Switch, id: PortId) -> String {
    sw.ports()
        .get(id)
        .map_or_else(|| id.to_string(), |h| h.name.clone())
}

/// The whole MDB as JSON (also what `tapswitch mdb show --json` prints).
pub(super) fn mdb_json(sw: &Switch) -> Value {
    sw.with_mcast(|st, now| {
        let rows: Vec<Value> = st
            .mdb(now)
            .into_iter()
            .map(|r| {
                let mut v = json!(r);
                v["port"] = json!(port_name(sw, r.port));
                v
            })
            .collect();
        let routers: Vec<Value> = st
            .router_ports(now)
            .into_iter()
            .map(|r| {
                let mut v = json!(r);
                v["port"] = json!(port_name(sw, r.port));
                v
            })
            .collect();
        let vids = st.querier_vlans();
        let querier: Vec<Value> = vids
            .iter()
            .flat_map(|&vid| {
                [Family::V4, Family::V6].map(|f| {
                    let q = st.querier_state(vid, f, now);
                    let mut v = json!(q);
                    v["vid"] = json!(vid);
                    v["family"] = json!(f);
                    if let Some(p) = q.querier.and_then(|i| i.port) {
                        v["querier"]["port"] = json!(port_name(sw, p));
                    }
                    v
                })
            })
            .collect();
        json!({ "mdb": rows, "router": routers, "querier": querier })
    })
}

/// `GET /api/v1/mdb`.
pub(super) async fn get_mdb(State(st): State<AppState>) -> Json<Value> {
    Json(mdb_json(&st.sw))
}

/// The body of `POST /api/v1/mdb` (and the query of `DELETE`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MdbBody {
    port: String,
    grp: String,
    src: Option<String>,
    /// `permanent` (default) or `temp`.
    state: Option<String>,
    #[serde(default)]
    vid: u16,
}

fn addr(what: &str, s: &str) -> ApiResult<IpAddr> {
    s.parse()
        .map_err(|_| bad(format!("{what} '{s}' is not an IPv4 or IPv6 address")))
}

fn entry(sw: &Switch, b: &MdbBody) -> ApiResult<StaticEntry> {
    let port = sw
        .ports()
        .by_name(&b.port)
        .map(|h| h.id)
        .ok_or_else(|| not_found(format!("no port named '{}'", b.port)))?;
    let permanent = match b.state.as_deref() {
        None | Some("permanent") => true,
        Some("temp") => false,
        Some(o) => return Err(bad(format!("state '{o}': permanent or temp"))),
    };
    Ok(StaticEntry {
        port,
        group: addr("grp", &b.grp)?,
        source: b.src.as_deref().map(|s| addr("src", s)).transpose()?,
        permanent,
        vid: b.vid,
    })
}

/// `POST /api/v1/mdb`: adds a static entry (`bridge mdb add`).
pub(super) async fn add_mdb(
    State(st): State<AppState>,
    body: Result<Json<MdbBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(b) = body?;
    let sw = st.sw.clone();
    st.ctl
        .run(move || {
            let e = entry(&sw, &b)?;
            sw.with_mcast(|s, now| s.mdb_add(&e, now))
                .map_err(|e| bad(e.to_string()))?;
            tracing::info!(port = %b.port, grp = %b.grp, src = ?b.src, vid = b.vid, "mdb entry added");
            Ok::<_, super::error::ApiError>(())
        })
        .await??;
    Ok((StatusCode::CREATED, Json(mdb_json(&st.sw))))
}

/// `DELETE /api/v1/mdb?port=P&grp=G[&src=S][&vid=N]`: removes an entry, static or learned
/// (`bridge mdb del`).
pub(super) async fn del_mdb(
    State(st): State<AppState>,
    q: Result<Query<MdbBody>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let Query(b) = q.map_err(|e| bad(e.body_text()))?;
    let sw = st.sw.clone();
    st.ctl
        .run(move || {
            let e = entry(&sw, &b)?;
            sw.with_mcast(|s, _| s.mdb_del(e.port, e.vid, e.group, e.source))
                .map_err(|e| match e {
                    crate::mcast::McastError::NotFound => not_found(e.to_string()),
                    _ => bad(e.to_string()),
                })?;
            tracing::info!(port = %b.port, grp = %b.grp, src = ?b.src, vid = b.vid, "mdb entry removed");
            Ok::<_, super::error::ApiError>(())
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}
