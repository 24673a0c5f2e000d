//! The HTTP endpoint: `/metrics`, `/healthz` and the JSON API under `/api/v1`.
//!
//! Resource model (one for ports, the table and the switch settings):
//! - `GET /api/v1/ports`, `GET|PATCH|DELETE /api/v1/ports/{name}`, `POST /api/v1/ports`
//! - `GET /api/v1/listeners` (stream and dgram sockets, whose peers become ports `NAME-N`;
//!   `DELETE /api/v1/ports/{name}` closes one)
//! - `GET|DELETE /api/v1/fdb` (filters `?port=&vlan=`), `POST /api/v1/fdb` (create only),
//!   `PUT|DELETE /api/v1/fdb/{mac}` (`?vlan=` on delete)
//! - `GET|PATCH /api/v1/config`
//!
//! Mutating calls (POST, PUT, PATCH, DELETE) need `Authorization: Bearer TOKEN` when a token is
//! configured; without a token they are accepted only if the listener is on loopback.
//! Reads never take a lock the frame path holds: counters are atomics, the table is copied.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{parse_group_mask, parse_spec};
use crate::dataplane::{AddPortError, PortHandle, Switch};
use crate::fdb::{EntryKind, FdbKey, FlushFilter, MAX_MAX_LEARNED};
use crate::frame::MacAddr;
use crate::switch::{PortFlags, RxDrop, TxDrop};

#[derive(Clone)]
struct AppState {
    sw: Arc<Switch>,
    token: Option<String>,
    loopback: bool,
}

/// An API error: a status and a message, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        bad(format!("malformed JSON body: {}", r.body_text()))
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn authorize(st: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    match &st.token {
        Some(tok) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given == Some(tok.as_str()) {
                Ok(())
            } else {
                Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    "this call changes the switch: send 'Authorization: Bearer TOKEN'".into(),
                ))
            }
        }
        None if st.loopback => Ok(()),
        None => Err(ApiError(
            StatusCode::FORBIDDEN,
            "calls that change the switch are refused on a non-loopback listener without --api-token".into(),
        )),
    }
}

/// Builds the router (used by [`serve`] and by tests).
pub fn router(sw: Arc<Switch>, token: Option<String>, loopback: bool) -> Router {
    let st = AppState {
        sw,
        token,
        loopback,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/ports", get(list_ports).post(add_port))
        .route(
            "/api/v1/ports/{name}",
            get(get_port).patch(patch_port).delete(del_port),
        )
        .route(
            "/api/v1/fdb",
            get(list_fdb).post(create_fdb).delete(flush_fdb),
        )
        .route(
            "/api/v1/fdb/{mac}",
            axum::routing::put(put_fdb).delete(del_fdb),
        )
        .route("/api/v1/config", get(get_config).patch(patch_config))
        .route("/api/v1/listeners", get(list_listeners))
        .with_state(st)
}

/// Binds `addr` and serves in the background. A busy address is an error naming `--listen`.
pub async fn serve(
    sw: Arc<Switch>,
    addr: SocketAddr,
    token: Option<String>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "--listen {addr}: address already in use (another switch?); give each switch its own --listen, or --listen none"
            )
        } else {
            anyhow::anyhow!("--listen {addr}: {e}")
        }
    })?;
    if token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback without --api-token: the API is read-only");
    }
    let app = router(sw, token, addr.ip().is_loopback());
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        crate::metrics::render(&st.sw),
    )
}

/// The JSON form of a port; `fdb_entries` is its number of table entries.
pub fn port_json(sw: &Switch, h: &PortHandle, fdb_entries: usize) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
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
    json!({
        "name": h.name,
        "id": h.id.0,
        "kind": h.kind().as_str(),
        "flags": h.flags.get(),
        "state": h.state(),
        "up": h.is_up(),
        "mtu": h.port.mtu(),
        "created": h.port.created(),
        "fdb_entries": fdb_entries,
        "learned": sw.fdb.port_learned(h.id).0,
        "max_learned": sw.fdb.port_learned(h.id).1,
        "counters": {
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
            "tx_dropped_by_reason": tx_by,
        }
    })
}

fn find_port(sw: &Switch, name: &str) -> ApiResult<Arc<PortHandle>> {
    sw.ports()
        .by_name(name)
        .cloned()
        .ok_or_else(|| not_found(format!("no port named '{name}'")))
}

async fn list_ports(State(st): State<AppState>) -> Json<Value> {
    let ports = st.sw.ports();
    Json(Value::Array({
        let counts = st.sw.fdb.entries_by_port();
        ports
            .iter()
            .map(|h| port_json(&st.sw, h, counts.get(&h.id).copied().unwrap_or(0)))
            .collect()
    }))
}

async fn get_port(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let h = find_port(&st.sw, &name)?;
    Ok(Json(port_json(&st.sw, &h, st.sw.fdb.entries_of(h.id))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPortBody {
    spec: String,
}

async fn add_port(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AddPortBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    authorize(&st, &headers)?;
    let Json(body) = body?;
    let spec = parse_spec(&body.spec).map_err(bad)?;
    // A port whose interface was deleted (`gone`) is replaced: attaching it again is how a
    // deleted TAP comes back without a `DELETE` first.
    if let Some(h) = st.sw.ports().by_name(&spec.name) {
        if h.state() == crate::dataplane::LinkState::Gone {
            st.sw.remove_port(&spec.name);
        }
    }
    if st.sw.ports().by_name(&spec.name).is_some() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("a port named '{}' already exists", spec.name),
        ));
    }
    let sw = st.sw.clone();
    let attached = tokio::task::spawn_blocking(move || crate::daemon::attach(&sw, &spec))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            let status = match e.downcast_ref::<AddPortError>() {
                Some(AddPortError::Duplicate(_) | AddPortError::SecondUplink { .. }) => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError(status, format!("{e:#}"))
        })?;
    let body = match attached {
        crate::daemon::Attached::Port(h) => port_json(&st.sw, &h, st.sw.fdb.entries_of(h.id)),
        crate::daemon::Attached::Listener(name) => listener_json(&st.sw, &name),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

async fn del_port(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    authorize(&st, &headers)?;
    if st.sw.remove_listener(&name) || st.sw.remove_port(&name).is_some() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("no port or listener named '{name}'")))
    }
}

/// The JSON form of a listener.
fn listener_json(sw: &Switch, name: &str) -> Value {
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

async fn list_listeners(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.sw
            .listeners()
            .iter()
            .map(|l| listener_json(&st.sw, &l.0))
            .collect(),
    ))
}

async fn patch_port(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    authorize(&st, &headers)?;
    let Json(body) = body?;
    let h = find_port(&st.sw, &name)?;
    let mut flags = h.flags.get();
    let mut max_learned = None;
    for (k, v) in &body {
        if k == "max_learned" {
            let n = v
                .as_u64()
                .filter(|n| *n <= MAX_MAX_LEARNED as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "max_learned needs a number 0..={MAX_MAX_LEARNED}, got {v}"
                    ))
                })?;
            max_learned = Some(n as usize);
            continue;
        }
        let f = PortFlags::by_name(k).ok_or_else(|| {
            let known: Vec<&str> = PortFlags::ALL.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "unknown port flag '{k}' (known: {})",
                known.join(", ")
            ))
        })?;
        let on = v
            .as_bool()
            .ok_or_else(|| bad(format!("flag '{k}' needs true or false, got {v}")))?;
        flags = flags.with(f, on);
    }
    if flags.contains(PortFlags::UPLINK) && !h.flags.get().contains(PortFlags::UPLINK) {
        if let Some(u) = st
            .sw
            .ports()
            .iter()
            .find(|p| p.id != h.id && p.flags.get().contains(PortFlags::UPLINK))
        {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!("'{}' is already the uplink", u.name),
            ));
        }
    }
    h.flags.set(flags);
    if let Some(n) = max_learned {
        st.sw.fdb.set_port_limit(h.id, n);
    }
    tracing::info!(port = %name, flags = ?flags, ?max_learned, "port flags changed");
    Ok(Json(port_json(&st.sw, &h, st.sw.fdb.entries_of(h.id))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FdbFilter {
    port: Option<String>,
    vlan: Option<u16>,
}

/// One table entry as the API shows it: a typed struct serialized straight to the response,
/// so listing a full table costs one buffer, not a JSON tree per entry.
#[derive(Serialize)]
struct EntryJson {
    mac: MacAddr,
    vlan: u16,
    port: String,
    kind: EntryKind,
    #[serde(rename = "static")]
    is_static: bool,
    sticky: bool,
    age: u64,
    used: u64,
}

fn entry_json(ports: &crate::dataplane::Registry, r: &crate::fdb::FdbRecord) -> EntryJson {
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
    }
}

fn filter_port(sw: &Switch, f: &FdbFilter) -> ApiResult<Option<crate::switch::PortId>> {
    match &f.port {
        Some(name) => Ok(Some(find_port(sw, name)?.id)),
        None => Ok(None),
    }
}

async fn list_fdb(
    State(st): State<AppState>,
    q: Result<Query<FdbFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<EntryJson>>> {
    let Query(f) = q.map_err(|e| bad(e.body_text()))?;
    let port = filter_port(&st.sw, &f)?;
    let recs = st.sw.fdb.snapshot(st.sw.now());
    let ports = st.sw.ports();
    Ok(Json(
        recs.iter()
            .filter(|r| port.is_none_or(|p| r.port == p) && f.vlan.is_none_or(|v| r.vlan == v))
            .map(|r| entry_json(&ports, r))
            .collect(),
    ))
}

async fn flush_fdb(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<FdbFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    authorize(&st, &headers)?;
    let Query(f) = q.map_err(|e| bad(e.body_text()))?;
    let port = filter_port(&st.sw, &f)?;
    let n = st.sw.fdb.flush(FlushFilter {
        port,
        vlan: f.vlan,
        dynamic_only: false,
    });
    Ok(Json(json!({ "removed": n })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    mac: Option<String>,
    port: String,
    #[serde(default)]
    vlan: u16,
    #[serde(default = "default_kind")]
    kind: EntryKind,
}

fn default_kind() -> EntryKind {
    EntryKind::Static
}

fn parse_mac(s: &str) -> ApiResult<MacAddr> {
    s.parse::<MacAddr>().map_err(|e| bad(e.to_string()))
}

fn insert_entry(st: &AppState, mac: MacAddr, b: &EntryBody, replace: bool) -> ApiResult<EntryJson> {
    if b.vlan > 4094 {
        return Err(bad(format!("vlan {} is outside 0..4094", b.vlan)));
    }
    let h = find_port(&st.sw, &b.port)?;
    let key = FdbKey::new(mac, b.vlan);
    let now = st.sw.now();
    st.sw
        .fdb
        .insert_user(key, h.id, b.kind, replace, now)
        .map_err(|e| match e {
            crate::fdb::FdbError::Exists { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
            crate::fdb::FdbError::UserLimit(_) => {
                ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
            crate::fdb::FdbError::NotUnicast(_) => bad(e.to_string()),
        })?;
    let rec = st
        .sw
        .fdb
        .record(&key, now)
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, "entry changed concurrently".into()))?;
    Ok(entry_json(&st.sw.ports(), &rec))
}

async fn put_fdb(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(mac): Path<String>,
    body: Result<Json<EntryBody>, JsonRejection>,
) -> ApiResult<Json<EntryJson>> {
    authorize(&st, &headers)?;
    let mac = parse_mac(&mac)?;
    let Json(b) = body?;
    if let Some(m) = &b.mac {
        if parse_mac(m)? != mac {
            return Err(bad("the body's mac differs from the path's"));
        }
    }
    Ok(Json(insert_entry(&st, mac, &b, true)?))
}

async fn create_fdb(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<EntryBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<EntryJson>)> {
    authorize(&st, &headers)?;
    let Json(b) = body?;
    let mac = parse_mac(b.mac.as_deref().ok_or_else(|| bad("missing field 'mac'"))?)?;
    Ok((
        StatusCode::CREATED,
        Json(insert_entry(&st, mac, &b, false)?),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VlanQuery {
    #[serde(default)]
    vlan: u16,
}

async fn del_fdb(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(mac): Path<String>,
    q: Result<Query<VlanQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<StatusCode> {
    authorize(&st, &headers)?;
    let mac = parse_mac(&mac)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if st.sw.fdb.remove(&FdbKey::new(mac, q.vlan)) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("no entry {mac} vlan {}", q.vlan)))
    }
}

fn config_json(sw: &Switch) -> Value {
    let s = sw.settings.load();
    json!({
        "name": sw.name,
        "mode": s.mode,
        "ageing_secs": s.ageing_ms / 1000,
        "fdb_max_learned": sw.fdb.max_learned(),
        "fdb_n_learned": sw.fdb.learned_count(),
        "fdb_entries": sw.fdb.len(),
        "group_fwd_mask": s.group_fwd_mask,
        "vepa_flood_unknown": s.vepa_flood_unknown,
    })
}

async fn get_config(State(st): State<AppState>) -> Json<Value> {
    Json(config_json(&st.sw))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigPatch {
    ageing_secs: Option<u64>,
    fdb_max_learned: Option<u64>,
    group_fwd_mask: Option<Value>,
    vepa_flood_unknown: Option<bool>,
}

async fn patch_config(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ConfigPatch>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    authorize(&st, &headers)?;
    let Json(p) = body?;
    let mut s = st.sw.settings.load();
    if let Some(a) = p.ageing_secs {
        s.ageing_ms = a.saturating_mul(1000);
    }
    if let Some(g) = &p.group_fwd_mask {
        s.group_fwd_mask = match g {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad(format!("group_fwd_mask {n} is outside 0..0xffff")))?,
            Value::String(t) => parse_group_mask(t).map_err(bad)?,
            other => {
                return Err(bad(format!(
                    "group_fwd_mask must be a number or a string, got {other}"
                )))
            }
        };
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
        st.sw.fdb.set_max_learned(m as usize);
    }
    st.sw.settings.store(s);
    tracing::info!(settings = ?s, "switch settings changed");
    Ok(Json(config_json(&st.sw)))
}
