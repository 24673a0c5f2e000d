//! `/api/v1/fdb`: the forwarding table, as `bridge fdb` shows and changes it.
//!
//! - `GET /api/v1/fdb` lists one page (filters `?port=&vlan=`, paging `?limit=&after=`, see
//!   [`page`]); `DELETE /api/v1/fdb` flushes (same filters);
//! - `POST /api/v1/fdb` creates an entry, `PUT /api/v1/fdb/{mac}` creates or replaces one,
//!   `DELETE /api/v1/fdb/{mac}` removes (`?vlan=`, `?port=`).
//!
//! An entry with a `dst` is one of a `vxlan` port's own table (`bridge fdb ... self`): MAC →
//! remote VTEP, and for 00:00:00:00:00:00 the flood list; without, one of the bridge's table
//! (`... master`).

pub(super) mod page;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{bad, not_found, ApiError, ApiResult};
use super::json::{entry_json, evpn_seq, vtep_entry_json, EntryJson};
use super::listen::read_off;
use super::ports::find_port;
use super::AppState;
use crate::dataplane::{PortHandle, Switch};
use crate::fdb::{EntryKind, FdbError, FdbKey, FlushFilter};
use crate::vxlan::vtep::{Vtep, VtepError};
use crate::wire::MacAddr;
use page::{fdb_page, next_link, FdbCursor, PageQuery, FDB_PAGE_DEFAULT, FDB_PAGE_MAX};

/// The query of `GET /api/v1/fdb`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FdbListQuery {
    port: Option<String>,
    vlan: Option<u16>,
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /api/v1/fdb`: one page of the table; a `Link: <...>; rel="next"` header names the
/// next page while more may follow.
pub(super) async fn list_fdb(
    State(st): State<AppState>,
    q: Result<Query<FdbListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(f) = q.map_err(|e| bad(e.body_text()))?;
    let limit = f.limit.unwrap_or(FDB_PAGE_DEFAULT);
    if !(1..=FDB_PAGE_MAX).contains(&limit) {
        return Err(bad(format!(
            "limit {limit} is outside 1..={FDB_PAGE_MAX} (entries per page; follow the Link header for more)"
        )));
    }
    let after = f
        .after
        .as_deref()
        .map(str::parse::<FdbCursor>)
        .transpose()?;
    let port = match &f.port {
        Some(name) => Some(find_port(&st.sw, name)?.id),
        None => None,
    };
    let pq = PageQuery {
        port,
        vlan: f.vlan,
        after,
        limit,
    };
    let sw = st.sw.clone();
    // a walk of the table: off the runtime and the control thread
    let (out, next) = read_off(&st, move || fdb_page(&sw, &pq)).await?;
    let mut resp = Json(out).into_response();
    if let Some(c) = next {
        let link = next_link(limit, c, f.port.as_deref(), f.vlan);
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// The query of `DELETE /api/v1/fdb`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FdbFilter {
    port: Option<String>,
    vlan: Option<u16>,
}

/// `DELETE /api/v1/fdb`: flushes the entries the filters select, static ones too.
pub(super) async fn flush_fdb(
    State(st): State<AppState>,
    q: Result<Query<FdbFilter>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(f) = q.map_err(|e| bad(e.body_text()))?;
    let port = match &f.port {
        Some(name) => Some(find_port(&st.sw, name)?.id),
        None => None,
    };
    let sw = st.sw.clone();
    let vlan = f.vlan;
    let n = st
        .ctl
        .run(move || {
            sw.fdb.flush(FlushFilter {
                port,
                vlan,
                dynamic_only: false,
            })
        })
        .await?;
    Ok(Json(json!({ "removed": n })))
}

/// The body of `POST /api/v1/fdb` and `PUT /api/v1/fdb/{mac}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntryBody {
    mac: Option<String>,
    port: String,
    #[serde(default)]
    vlan: u16,
    #[serde(default = "default_kind")]
    kind: EntryKind,
    /// A `vxlan` port's own entry: the remote VTEP.
    dst: Option<IpAddr>,
    /// A `vxlan` port's own entry: the VNI whose table it goes to (`bridge fdb ... vni N`;
    /// needed on a port with a `vni-map`).
    vni: Option<u32>,
    /// `bridge fdb ... self`: the entry is for the port's own table (a `vxlan` port's needs
    /// `dst`); ignored for other ports, as tapswitch always ignored it.
    #[serde(default, rename = "self")]
    self_: bool,
}

fn default_kind() -> EntryKind {
    EntryKind::Static
}

fn parse_mac(s: &str) -> ApiResult<MacAddr> {
    s.parse::<MacAddr>().map_err(|e| bad(e.to_string()))
}

/// `PUT /api/v1/fdb/{mac}`: creates or replaces an entry.
pub(super) async fn put_fdb(
    State(st): State<AppState>,
    Path(mac): Path<String>,
    body: Result<Json<EntryBody>, JsonRejection>,
) -> ApiResult<Json<EntryJson>> {
    let mac = parse_mac(&mac)?;
    let Json(b) = body?;
    if let Some(m) = &b.mac {
        if parse_mac(m)? != mac {
            return Err(bad("the body's mac differs from the path's"));
        }
    }
    let sw = st.sw.clone();
    let e = st
        .ctl
        .run(move || insert_entry(&sw, mac, &b, true))
        .await??;
    Ok(Json(e))
}

/// `POST /api/v1/fdb`: creates an entry (409 if there is one).
pub(super) async fn create_fdb(
    State(st): State<AppState>,
    body: Result<Json<EntryBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<EntryJson>)> {
    let Json(b) = body?;
    let mac = parse_mac(b.mac.as_deref().ok_or_else(|| bad("missing field 'mac'"))?)?;
    let sw = st.sw.clone();
    let e = st
        .ctl
        .run(move || insert_entry(&sw, mac, &b, false))
        .await??;
    Ok((StatusCode::CREATED, Json(e)))
}

/// Adds or replaces an entry. Runs on the control thread, where ports are detached: an entry
/// is never added for a port that is being removed (and so never outlives it).
fn insert_entry(sw: &Switch, mac: MacAddr, b: &EntryBody, replace: bool) -> ApiResult<EntryJson> {
    if b.vlan > 4094 {
        return Err(bad(format!("vlan {} is outside 0..4094", b.vlan)));
    }
    let h = find_port(sw, &b.port)?;
    if b.dst.is_some() || b.vni.is_some() || (b.self_ && h.kind() == crate::port::PortKind::Vxlan) {
        return insert_vtep_entry(sw, &h, mac, b, replace);
    }
    let key = FdbKey::new(mac, b.vlan);
    let now = sw.now();
    // no VLAN, filtering on: VLAN 0 and every VLAN of the port, as Linux br_fdb_add
    crate::control::add_fdb_entry(sw, &h, mac, b.vlan, b.kind, replace).map_err(|e| match e {
        FdbError::Exists { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        FdbError::UserLimit(_) => ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string()),
        FdbError::NotUnicast(_) => bad(e.to_string()),
    })?;
    let rec = sw
        .fdb
        .record(&key, now)
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, "entry changed concurrently".into()))?;
    let mut j = entry_json(&sw.ports(), &rec);
    j.seq = evpn_seq(sw)(rec.vlan, &rec.mac);
    Ok(j)
}

/// The VTEP of a `vxlan` port for `vni` (needed on a port with a `vni-map`), or a 400
/// naming the port.
fn vtep_of(sw: &Switch, h: &PortHandle, vni: Option<u32>) -> ApiResult<Arc<Vtep>> {
    let all = sw.vteps_of(h.id);
    if all.is_empty() {
        return Err(bad(format!(
            "port '{}' is not a vxlan port: 'dst', 'vni' and 'self' entries are for vxlan ports",
            h.name
        )));
    }
    sw.vtep_of(h.id, vni).ok_or_else(|| {
        let vnis: Vec<String> = all.iter().map(|(_, v)| v.vni().to_string()).collect();
        match vni {
            None => bad(format!(
                "port '{}' has a vni-map: say which VNI's table (vni = one of {})",
                h.name,
                vnis.join(", ")
            )),
            Some(n) => bad(format!(
                "port '{}' has no VNI {n} (its VNIs: {})",
                h.name,
                vnis.join(", ")
            )),
        }
    })
}

/// Adds or replaces one entry of a `vxlan` port's own table.
fn insert_vtep_entry(
    sw: &Switch,
    h: &PortHandle,
    mac: MacAddr,
    b: &EntryBody,
    replace: bool,
) -> ApiResult<EntryJson> {
    let vtep = vtep_of(sw, h, b.vni)?;
    let Some(dst) = b.dst else {
        return Err(bad(format!(
            "an entry of vxlan port '{}' needs \"dst\" (the remote VTEP)",
            h.name
        )));
    };
    if b.vlan != 0 {
        return Err(bad("a vxlan port's own entries have no vlan"));
    }
    let now = sw.now();
    vtep.insert_user(mac, dst, b.kind, replace, now)
        .map_err(|e| match e {
            VtepError::Exists { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
            VtepError::Full(_) => ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string()),
            _ => bad(e.to_string()),
        })?;
    let rec = vtep
        .snapshot(now)
        .into_iter()
        .find(|r| r.mac == mac && r.dst == dst)
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, "entry changed concurrently".into()))?;
    Ok(vtep_entry_json(&h.name, vtep.vni(), &rec))
}

/// The query of `DELETE /api/v1/fdb/{mac}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VlanQuery {
    #[serde(default)]
    vlan: u16,
    /// With `dst` or `self`: the `vxlan` port whose own entry goes. Otherwise: delete only
    /// this port's entries (with `vlan` 0, those of every VLAN of the port too).
    port: Option<String>,
    /// A `vxlan` port's entry: only the one pointing to this remote (for
    /// 00:00:00:00:00:00, this remote leaves the flood list).
    dst: Option<IpAddr>,
    /// A `vxlan` port's entry: in this VNI's table (needed on a port with a `vni-map`).
    vni: Option<u32>,
    #[serde(default, rename = "self")]
    self_: bool,
}

/// `DELETE /api/v1/fdb/{mac}`: a vxlan port's entry, a port's entries, or the bridge's entry
/// in one VLAN.
pub(super) async fn del_fdb(
    State(st): State<AppState>,
    Path(mac): Path<String>,
    q: Result<Query<VlanQuery>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let mac = parse_mac(&mac)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if q.dst.is_some() || q.vni.is_some() || q.self_ {
        return del_vtep_entry(&st.sw, mac, &q);
    }
    if let Some(name) = &q.port {
        return del_port_entry(&st.sw, mac, name, q.vlan);
    }
    if st.sw.fdb.remove(&FdbKey::new(mac, q.vlan)) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("no entry {mac} vlan {}", q.vlan)))
    }
}

/// `bridge fdb del MAC dev VXLAN [dst IP] self`: one or every remote of a vxlan port's entry.
fn del_vtep_entry(sw: &Switch, mac: MacAddr, q: &VlanQuery) -> ApiResult<StatusCode> {
    let Some(name) = &q.port else {
        return Err(bad(
            "deleting a vxlan port's entry ('dst' or 'self') needs 'port'",
        ));
    };
    let h = find_port(sw, name)?;
    let vtep = vtep_of(sw, &h, q.vni)?;
    if vtep.remove(mac, q.dst) > 0 {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(match q.dst {
            Some(d) => format!("no entry {mac} dst {d} on port '{name}'"),
            None => format!("no entry {mac} on port '{name}'"),
        }))
    }
}

/// `bridge fdb del MAC dev PORT`: that port's entries, and with no VLAN those of VLAN 0 and
/// of every VLAN of the port (Linux br_fdb_delete).
fn del_port_entry(sw: &Switch, mac: MacAddr, name: &str, vlan: u16) -> ApiResult<StatusCode> {
    let h = find_port(sw, name)?;
    if crate::control::del_fdb_entry(sw, &h, mac, vlan) > 0 {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!(
            "no entry {mac} on port '{name}'{}",
            if vlan == 0 {
                String::new()
            } else {
                format!(" vlan {vlan}")
            }
        )))
    }
}
