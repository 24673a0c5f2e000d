//! The HTTP endpoint: `/metrics`, `/healthz` and the JSON API under `/api/v1`, served on two
//! listeners with one router.
//!
//! Resource model (one for ports, the table and the switch settings):
//! - `GET /api/v1/ports`, `GET|PATCH|DELETE /api/v1/ports/{name}`, `POST /api/v1/ports`
//! - `GET /api/v1/listeners` (stream and dgram sockets, whose peers become ports `NAME-N`;
//!   `DELETE /api/v1/ports/{name}` closes one)
//! - `GET|DELETE /api/v1/fdb` (filters `?port=&vlan=`), `POST /api/v1/fdb` (create only),
//!   `PUT|DELETE /api/v1/fdb/{mac}` (`?vlan=` on delete). An entry with a `dst` is one of a
//!   `vxlan` port's own table (`bridge fdb ... self`): MAC → remote VTEP, and for
//!   00:00:00:00:00:00 the flood list; without, one of the bridge's table (`... master`).
//! - `GET|PATCH /api/v1/config`
//! - `GET /api/v1/capture?port=..` (a pcapng or pcap stream; see [`crate::capture::session`])
//! - `GET|POST /api/v1/mirrors`, `GET|DELETE /api/v1/mirrors/{name}`
//!
//! Who may do what ([`Access`]):
//! - The **control socket** (a unix socket, mode 0660, owned by root and `--control-group`)
//!   serves everything: its file permissions are the authentication. The peer's uid, gid and
//!   pid (SO_PEERCRED) are logged with every change.
//! - The **TCP listener** serves `/metrics`, `/healthz` and the read-only routes. Changes
//!   (POST, PUT, PATCH, DELETE) and anything that reveals traffic need `--api-token`, sent as
//!   `Authorization: Bearer TOKEN` and compared in constant time; without a configured token
//!   they are refused with 403, on loopback too (loopback is not an authentication boundary:
//!   every local user can reach it).
//!
//! Handlers never take a lock the frame path holds and never walk the table on the API's
//! runtime or on the control thread:
//! - reads that walk a table or build a large answer (`/metrics`, ports, table pages) run on
//!   tokio's blocking pool, at most [`READS_TCP`] (TCP) or [`READS_CONTROL`] (control socket) at
//!   once per listener, so readers never hold up the control thread's ageing, link-down
//!   flushes and spanning tree, and cannot take every core;
//! - the table is listed in pages (`?limit=&after=`, at most [`FDB_PAGE_MAX`] entries, a
//!   `Link: <...>; rel="next"` header while more may follow), each page one walk of the table
//!   with memory for one page ([`crate::page`]), never a copy and sort of the whole table;
//! - every change (settings, port settings, VLANs, table entries, ports) is read, checked as a
//!   whole and applied in one closure on the control thread ([`ControlHandle::run`]), which
//!   runs one closure at a time: changes and SIGHUP reloads are serialized, none is lost, and a
//!   request with one bad field changes nothing;
//! - each listener serves at most `--api-max-conns` connections; one more is answered 503
//!   and closed ([`crate::conn_cap`]).

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{parse_group_mask, parse_spec};
use crate::control::{AttachError, ControlGone, ControlHandle, FailureClass};
use crate::dataplane::{AddPortError, PortHandle, Switch};
use crate::fdb::{EntryKind, FdbKey, FlushFilter, MAX_MAX_LEARNED};
use crate::forwarding::{PortFlags, RxDrop, TxDrop};
use crate::wire::MacAddr;

/// Which listener a request came in on, and so what it may do.
#[derive(Clone, Debug)]
pub enum Access {
    /// The control socket: every route; the peer is identified by SO_PEERCRED.
    Control,
    /// TCP: reads; changes and traffic only with this token (none: never).
    Tcp {
        /// The `--api-token`.
        token: Option<Arc<str>>,
    },
}

#[derive(Clone)]
struct AppState {
    sw: Arc<Switch>,
    ctl: ControlHandle,
    access: Access,
    /// Reads of this listener that may run at once (see [`read_off`]).
    reads: Arc<tokio::sync::Semaphore>,
}

/// Table reads of the TCP listener (anyone's) that run at once; more wait their turn.
pub const READS_TCP: usize = 1;
/// Table reads of the control socket that run at once (its own: TCP readers never hold up
/// the operator).
pub const READS_CONTROL: usize = 2;

/// Runs a read that walks a table or builds a large answer on tokio's blocking pool: neither
/// on the API's async workers nor on the control thread, and at most [`READS_TCP`] or
/// [`READS_CONTROL`] of one listener at once. A read runs to its end even if its client
/// leaves (its permit goes with it).
async fn read_off<R: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> R + Send + 'static,
) -> ApiResult<R> {
    let permit = st.reads.clone().acquire_owned().await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the switch is stopping".into(),
        )
    })?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("read failed: {e}"),
        )
    })
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

impl From<ControlGone> for ApiError {
    fn from(e: ControlGone) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl From<AttachError> for ApiError {
    fn from(e: AttachError) -> Self {
        let status = match e.class() {
            FailureClass::Conflict => StatusCode::CONFLICT,
            FailureClass::Full => StatusCode::INSUFFICIENT_STORAGE,
            FailureClass::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError(status, crate::chain(&e))
    }
}

impl From<AddPortError> for ApiError {
    fn from(e: AddPortError) -> Self {
        AttachError::from(e).into()
    }
}

impl From<crate::capture::MirrorError> for ApiError {
    fn from(e: crate::capture::MirrorError) -> Self {
        use crate::capture::mirror::MirrorFailure;
        let status = match e.class() {
            MirrorFailure::Invalid => StatusCode::BAD_REQUEST,
            MirrorFailure::NotFound => StatusCode::NOT_FOUND,
            MirrorFailure::Conflict => StatusCode::CONFLICT,
            MirrorFailure::Full => StatusCode::INSUFFICIENT_STORAGE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<crate::capture::session::CaptureError> for ApiError {
    fn from(e: crate::capture::session::CaptureError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Compares two byte strings in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request changes the switch or reveals traffic (and so needs authorization).
fn is_privileged(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD) || path.starts_with("/api/v1/capture")
}

/// The peer of a control-socket connection, from SO_PEERCRED.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// User id.
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
    /// Process id.
    pub pid: Option<i32>,
}

/// The control socket's listener, capped.
type ControlListener = crate::conn_cap::Capped<tokio::net::UnixListener>;

impl axum::extract::connect_info::Connected<IncomingStream<'_, ControlListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, ControlListener>) -> Self {
        match s.io().get_ref().peer_cred() {
            Ok(c) => Peer {
                uid: Some(c.uid()),
                gid: Some(c.gid()),
                pid: c.pid(),
            },
            Err(_) => Peer {
                uid: None,
                gid: None,
                pid: None,
            },
        }
    }
}

/// Control socket: logs who changed what.
async fn log_control(ConnectInfo(peer): ConnectInfo<Peer>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    if is_privileged(&method, &path) {
        tracing::info!(
            via = "control",
            uid = ?peer.uid,
            gid = ?peer.gid,
            pid = ?peer.pid,
            %method,
            path,
            status = resp.status().as_u16(),
            "api change"
        );
    }
    resp
}

/// TCP listener: reads pass; changes and traffic need the token.
async fn guard_tcp(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if !is_privileged(&method, &path) {
        return next.run(req).await;
    }
    let Access::Tcp { token } = &st.access else {
        return next.run(req).await;
    };
    let refused = match token {
        None => Some(ApiError(
            StatusCode::FORBIDDEN,
            "this call changes the switch or reveals traffic: over TCP it needs --api-token; \
             use the control socket instead (tapswitch ... --control PATH)"
                .into(),
        )),
        Some(tok) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            (!constant_time_eq(given.as_bytes(), tok.as_bytes())).then(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "this call changes the switch or reveals traffic: send 'Authorization: Bearer TOKEN'"
                        .into(),
                )
            })
        }
    };
    if let Some(e) = refused {
        tracing::warn!(via = "tcp", %method, path, status = e.0.as_u16(), "api change refused");
        return e.into_response();
    }
    let resp = next.run(req).await;
    tracing::info!(via = "tcp", %method, path, status = resp.status().as_u16(), "api change");
    resp
}

/// Builds the router for one listener (used by the servers below and by tests).
pub fn router(sw: Arc<Switch>, ctl: ControlHandle, access: Access) -> Router {
    let reads = match access {
        Access::Control => READS_CONTROL,
        Access::Tcp { .. } => READS_TCP,
    };
    let st = AppState {
        sw,
        ctl,
        access,
        reads: Arc::new(tokio::sync::Semaphore::new(reads)),
    };
    let r = Router::new()
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
        .route("/api/v1/vlans", get(list_vlans))
        .route("/api/v1/stp", get(get_stp))
        .route(
            "/api/v1/ports/{name}/vlans/{vid}",
            axum::routing::put(put_port_vlan).delete(del_port_vlan),
        )
        .route("/api/v1/capture", get(capture))
        .route("/api/v1/mirrors", get(list_mirrors).post(add_mirror))
        .route("/api/v1/mirrors/{name}", get(get_mirror).delete(del_mirror));
    match st.access {
        Access::Control => r
            .layer(axum::middleware::from_fn(log_control))
            .with_state(st),
        Access::Tcp { .. } => r
            .layer(axum::middleware::from_fn_with_state(st.clone(), guard_tcp))
            .with_state(st),
    }
}

/// Binds `addr` and serves the TCP listener in the background, at most `max_conns`
/// connections at once. A busy address is an error naming `--listen`.
pub async fn serve(
    sw: Arc<Switch>,
    ctl: ControlHandle,
    addr: SocketAddr,
    token: Option<String>,
    max_conns: usize,
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
    let app = router(
        sw,
        ctl,
        Access::Tcp {
            token: token.map(Arc::from),
        },
    );
    let listener = crate::conn_cap::Capped::new(listener, "TCP listener", max_conns);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

/// Why the control socket could not be set up; every message names `--control`.
#[derive(Debug, thiserror::Error)]
pub enum ControlSocketError {
    /// Its directory could not be made.
    #[error("--control {}: cannot create its directory", path.display())]
    Dir {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory or the file is not safe to use (see [`crate::port::sockfile`]), or
    /// something other than a socket is at the path.
    #[error("--control {}", path.display())]
    Unsafe {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::port::sockfile::SockError,
    },
    /// A live switch already listens there.
    #[error("--control {} (another switch with this --name? give each its own --name or --control)", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::port::sockfile::SockError,
    },
    /// Binding or setting its owner and mode failed.
    #[error("--control {}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A control socket being served; removes its file when dropped.
pub struct ControlSocket {
    file: crate::port::sockfile::SockFile,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// The socket's path.
    pub fn path(&self) -> &FsPath {
        self.file.path()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        self.file.remove();
    }
}

/// Binds the control socket at `path` (mode 0660, group `gid` if given) and serves the whole
/// API on it in the background, at most `max_conns` connections at once. A missing directory
/// is created: mode 0700 for the default of a user without `$XDG_RUNTIME_DIR`
/// (`/tmp/tapswitch-UID`), which must then belong to that user with no access for anyone
/// else; 0755 otherwise. Either way the directory must be one that nobody but root and its
/// owner can change (see [`crate::port::sockfile`]).
pub fn serve_control(
    sw: Arc<Switch>,
    ctl: ControlHandle,
    path: &FsPath,
    gid: Option<u32>,
    max_conns: usize,
) -> Result<ControlSocket, ControlSocketError> {
    use crate::port::sockfile::{SockError, SockPath};
    use std::os::unix::fs::DirBuilderExt;
    let p = path.to_path_buf();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(FsPath::new("."));
    let private = crate::config::private_control_dir().is_some_and(|d| d == dir);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if private { 0o700 } else { 0o755 })
            .create(dir)
            .map_err(|source| ControlSocketError::Dir {
                path: p.clone(),
                source,
            })?;
    }
    let sock = |source| ControlSocketError::Unsafe {
        path: p.clone(),
        source,
    };
    let mut sp = SockPath::open(path).map_err(sock)?;
    if private {
        sp.require_private_dir().map_err(sock)?;
    }
    sp.prepare(false).map_err(|source| match source {
        SockError::InUse(_) => ControlSocketError::InUse {
            path: p.clone(),
            source,
        },
        other => sock(other),
    })?;
    let io = |source| ControlSocketError::Io {
        path: p.clone(),
        source,
    };
    let l = sp
        .bind(|p| std::os::unix::net::UnixListener::bind(p))
        .map_err(io)?;
    // dropping `file` on any failure below removes the socket file again
    let file = sp.finish(Some(0o660), None, gid).map_err(sock)?;
    l.set_nonblocking(true).map_err(io)?;
    let l = tokio::net::UnixListener::from_std(l).map_err(io)?;
    let l = crate::conn_cap::Capped::new(l, "control socket", max_conns);
    let app = router(sw, ctl, Access::Control).into_make_service_with_connect_info::<Peer>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::error!(error = %e, "control socket server stopped");
        }
    });
    tracing::info!(path = %path.display(), ?gid, "control socket listening");
    Ok(ControlSocket { file, task })
}

async fn metrics(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let sw = st.sw.clone();
    let text = read_off(&st, move || crate::metrics::render(&sw)).await?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text))
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
        "storm": {
            "broadcast": h.storm.bucket(crate::forwarding::FloodKind::Broadcast).rate(),
            "multicast": h.storm.bucket(crate::forwarding::FloodKind::Multicast).rate(),
            "unknown_unicast": h.storm.bucket(crate::forwarding::FloodKind::UnknownUnicast).rate(),
        },
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
            "device_dropped_by_reason": h.port.own_drops().into_iter().map(|(k, v)| (k.to_string(), Value::from(v))).collect::<Map<String, Value>>(),
            "tx_dropped_by_reason": tx_by,
        }
    });
    if h.kind() == crate::port::PortKind::Vxlan {
        if let Some(vt) = sw.vtep_of(h.id) {
            v["vxlan"] = vxlan_json(&vt);
        }
    }
    v
}

/// The tunnel of a `vxlan` port: its spec, its flood list with per-remote counters, its table
/// and the packets it dropped, by reason.
fn vxlan_json(v: &crate::vxlan::vtep::Vtep) -> Value {
    use crate::vxlan::vtep::VxlanDrop;
    use std::sync::atomic::Ordering::Relaxed;
    let remotes = v.remotes();
    let s = &v.spec;
    let drops: Map<String, Value> = VxlanDrop::PER_PORT
        .iter()
        .map(|r| (r.label().into(), v.stats.rx_dropped.get(*r).into()))
        .collect();
    json!({
        "vni": s.vni,
        "local": s.local,
        "dstport": s.dstport,
        "learning": s.learning,
        "srcport": [s.srcport.0, s.srcport.1],
        "ttl": s.ttl,
        "tos": s.tos,
        "accept": s.accept,
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

async fn get_stp(State(st): State<AppState>) -> Json<Value> {
    let cfg = st.sw.stp_bridge();
    let names: std::collections::HashMap<crate::types::PortId, String> = st
        .sw
        .ports()
        .iter()
        .map(|h| (h.id, h.name.clone()))
        .collect();
    match st.sw.stp_status() {
        Some((b, ports)) => {
            let ports: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let mut v = json!(p);
                    v["name"] = json!(names.get(&p.port).cloned().unwrap_or_default());
                    v
                })
                .collect();
            let mut bridge = json!(b);
            bridge["root_port_name"] = json!(b.root_port.and_then(|p| names.get(&p).cloned()));
            Json(json!({ "stp": "rstp", "config": cfg, "bridge": bridge, "ports": ports }))
        }
        None => Json(json!({ "stp": "off", "config": cfg })),
    }
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

async fn list_vlans(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.sw
            .ports()
            .iter()
            .map(|h| json!({ "ifname": h.name, "vlans": vlans_json(&h.vlans()) }))
            .collect(),
    ))
}

/// `N` or `N-M` in a path.
fn parse_vid_range(s: &str) -> ApiResult<crate::vlan::VidRange> {
    let n = |t: &str| {
        t.parse::<u16>()
            .map_err(|_| bad(format!("'{s}' is not a VID or a range like 10-20")))
            .and_then(|v| crate::vlan::check_vid(v).map_err(|e| bad(e.to_string())))
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (n(a)?, n(b)?),
        None => {
            let v = n(s)?;
            (v, v)
        }
    };
    if b < a {
        return Err(bad(format!("VID range {s} ends below its start")));
    }
    Ok(crate::vlan::VidRange { start: a, end: b })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VlanBody {
    #[serde(default)]
    pvid: bool,
    #[serde(default)]
    untagged: bool,
}

async fn put_port_vlan(
    State(st): State<AppState>,
    Path((name, vid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let range = parse_vid_range(&vid)?;
    // the body is optional; a bad one is a JSON error like every other route's
    let b: VlanBody = if body.iter().all(u8::is_ascii_whitespace) {
        VlanBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad JSON body: {e}")))?
    };
    let (sw, n) = (st.sw.clone(), name.clone());
    // on the control thread: serialized with other VLAN changes and reloads
    let v = st
        .ctl
        .run(move || {
            let h = find_port(&sw, &n)?;
            sw.update_port_vlans(&h, |p| p.add(range, b.pvid, b.untagged))
                .map_err(|e| bad(e.to_string()))?;
            Ok::<_, ApiError>(vlans_json(&h.vlans()))
        })
        .await??;
    tracing::info!(port = %name, vid, pvid = b.pvid, untagged = b.untagged, "port VLAN added");
    Ok(Json(v))
}

async fn del_port_vlan(
    State(st): State<AppState>,
    Path((name, vid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let range = parse_vid_range(&vid)?;
    let (sw, n, vid2) = (st.sw.clone(), name.clone(), vid.clone());
    // read and changed in one step on the control thread (serialized with other changes and
    // reloads), which also flushes the port's entries in those VLANs
    let v = st
        .ctl
        .run(move || {
            let h = find_port(&sw, &n)?;
            match crate::control::del_port_vlans(&sw, &h, range) {
                Ok(true) => Ok(vlans_json(&h.vlans())),
                Ok(false) => Err(not_found(format!("port '{n}' has no VLAN in {vid2}"))),
                Err(e) => Err(bad(e.to_string())),
            }
        })
        .await??;
    tracing::info!(port = %name, vid, "port VLAN deleted");
    Ok(Json(v))
}

fn find_port(sw: &Switch, name: &str) -> ApiResult<Arc<PortHandle>> {
    sw.ports()
        .by_name(name)
        .cloned()
        .ok_or_else(|| not_found(format!("no port named '{name}'")))
}

async fn list_ports(State(st): State<AppState>) -> ApiResult<Json<Value>> {
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
async fn port_reply(st: &AppState, id: crate::types::PortId, name: &str) -> ApiResult<Value> {
    let sw = st.sw.clone();
    read_off(st, move || {
        let n = sw.fdb.entries_of(id);
        let h = sw.ports().get(id).cloned();
        h.map(|h| port_json(&sw, &h, n))
    })
    .await?
    .ok_or_else(|| not_found(format!("port '{name}' was detached meanwhile")))
}

async fn get_port(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let id = find_port(&st.sw, &name)?.id;
    Ok(Json(port_reply(&st, id, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPortBody {
    spec: String,
}

async fn add_port(
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
                .is_some_and(|h| h.state() == crate::dataplane::LinkState::Gone);
            if gone {
                sw.remove_port(&spec.name);
            }
            crate::control::attach(&sw, &spec)
        })
        .await??;
    let body = match attached {
        crate::control::Attached::Port(h) => {
            let (id, name) = (h.id, h.name.clone());
            drop(h);
            port_reply(&st, id, &name).await?
        }
        crate::control::Attached::Listener(name) => listener_json(&st.sw, &name),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

async fn del_port(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
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
) -> ApiResult<(crate::types::PortId, PortFlags, Option<usize>)> {
    let h = find_port(sw, name)?;
    let mut flags = h.flags.get();
    let mut max_learned = None;
    let mut stp = sw.port_stp_config(&h);
    let mut stp_changed = false;
    let mut enable = false;
    let mut storm: [Option<u64>; 3] = [None; 3];
    let boolean = |k: &str, v: &Value| {
        v.as_bool()
            .ok_or_else(|| bad(format!("'{k}' needs true or false, got {v}")))
    };
    let number = |k: &str, v: &Value, r: crate::validate::Range| -> ApiResult<u64> {
        let n = v
            .as_u64()
            .ok_or_else(|| bad(format!("'{k}' needs a number, got {v}")))?;
        r.check(k, n).map_err(|e| bad(e.to_string()))
    };
    for (k, v) in body {
        match k.as_str() {
            "stp_cost" => {
                stp.path_cost = Some(number(k, v, crate::validate::STP_PORT_COST)? as u32);
                stp_changed = true;
                continue;
            }
            "stp_priority" => {
                stp.priority = number(k, v, crate::validate::STP_PORT_PRIORITY)? as u8;
                stp_changed = true;
                continue;
            }
            "edge" => {
                stp.admin_edge = boolean(k, v)?;
                stp_changed = true;
                continue;
            }
            "auto_edge" => {
                stp.auto_edge = boolean(k, v)?;
                stp_changed = true;
                continue;
            }
            "bpdu_guard" => {
                stp.bpdu_guard = boolean(k, v)?;
                stp_changed = true;
                continue;
            }
            "root_guard" => {
                stp.root_guard = boolean(k, v)?;
                stp_changed = true;
                continue;
            }
            "p2p" => {
                let t = v
                    .as_str()
                    .ok_or_else(|| bad(format!("'p2p' needs auto, yes or no, got {v}")))?;
                stp.p2p = crate::config::parse_p2p(t).map_err(|e| bad(e.to_string()))?;
                stp_changed = true;
                continue;
            }
            "enabled" => {
                if !boolean(k, v)? {
                    return Err(bad(
                        "'enabled' re-enables a port BPDU guard disabled; to take a port out, detach it or set its link down",
                    ));
                }
                enable = true;
                continue;
            }
            "storm_broadcast" | "storm_multicast" | "storm_unknown_unicast" => {
                let i = [
                    "storm_broadcast",
                    "storm_multicast",
                    "storm_unknown_unicast",
                ]
                .iter()
                .position(|x| x == k)
                .unwrap_or(0);
                storm[i] = Some(number(k, v, crate::validate::STORM_PPS)?);
                continue;
            }
            _ => {}
        }
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
    if stp_changed {
        stp.validate().map_err(|e| bad(e.to_string()))?;
    }
    // Everything is checked. The flags go first: the one change that can still be refused
    // (a second uplink), before anything else is touched.
    sw.set_port_flags(&h, flags)?;
    if let Some(n) = max_learned {
        sw.fdb.set_port_limit(h.id, n);
    }
    if stp_changed {
        // validated above, and the port is known: cannot fail
        sw.set_port_stp(&h, stp).map_err(|e| bad(e.to_string()))?;
    }
    if enable {
        sw.enable_port_stp(&h);
    }
    for (k, pps) in crate::forwarding::FloodKind::ALL.iter().zip(storm) {
        if let Some(pps) = pps {
            h.storm.bucket(*k).set_rate(pps);
        }
    }
    Ok((h.id, flags, max_learned))
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
    /// The remote VTEP of a `vxlan` port's own entry; `null` for a bridge entry.
    dst: Option<std::net::IpAddr>,
}

/// A `vxlan` port's own entry (`bridge fdb show` prints it `... dst IP self`).
fn vtep_entry_json(port: &str, r: &crate::vxlan::vtep::VtepRecord) -> EntryJson {
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
    }
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
        dst: None,
    }
}

fn filter_port(sw: &Switch, f: &FdbFilter) -> ApiResult<Option<crate::forwarding::PortId>> {
    match &f.port {
        Some(name) => Ok(Some(find_port(sw, name)?.id)),
        None => Ok(None),
    }
}

/// Entries in a page of `GET /api/v1/fdb` without `limit`.
pub const FDB_PAGE_DEFAULT: usize = 1000;
/// Most entries a page of `GET /api/v1/fdb` may ask for.
pub const FDB_PAGE_MAX: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FdbListQuery {
    port: Option<String>,
    vlan: Option<u16>,
    limit: Option<usize>,
    after: Option<String>,
}

/// Where a page of `GET /api/v1/fdb` starts. The listing is the bridge's table in (VLAN,
/// MAC) order, then each `vxlan` port's own table, by port, in (MAC, remote) order; the cursor
/// names the last entry of the page before. Clients treat it as opaque: they pass on the
/// `after=` of the `Link: <...>; rel="next"` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdbCursor {
    /// After this bridge entry: `b{VLAN}-{MAC as 12 hex digits}`.
    Bridge {
        /// VLAN.
        vlan: u16,
        /// MAC.
        mac: MacAddr,
    },
    /// After this entry of a vxlan port's table: `v{PORT ID}-{MAC}-{REMOTE}`.
    Vtep {
        /// The vxlan port.
        port: crate::types::PortId,
        /// Inner MAC.
        mac: MacAddr,
        /// Remote VTEP.
        dst: std::net::IpAddr,
    },
}

fn mac_hex(m: &MacAddr) -> String {
    m.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_mac_hex(s: &str) -> Option<MacAddr> {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, b) in m.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(MacAddr(m))
}

impl std::fmt::Display for FdbCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FdbCursor::Bridge { vlan, mac } => write!(f, "b{vlan}-{}", mac_hex(mac)),
            FdbCursor::Vtep { port, mac, dst } => write!(f, "v{}-{}-{dst}", port.0, mac_hex(mac)),
        }
    }
}

impl std::str::FromStr for FdbCursor {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        let err = || {
            bad(format!(
                "'{s}' is not a cursor of this listing: pass on the after= of the previous page's Link header"
            ))
        };
        let mut parts = s.get(1..).unwrap_or_default().split('-');
        let c = match s.as_bytes().first() {
            Some(b'b') => FdbCursor::Bridge {
                vlan: parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?,
                mac: parts.next().and_then(parse_mac_hex).ok_or_else(err)?,
            },
            Some(b'v') => FdbCursor::Vtep {
                port: crate::types::PortId(
                    parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?,
                ),
                mac: parts.next().and_then(parse_mac_hex).ok_or_else(err)?,
                dst: parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?,
            },
            _ => return Err(err()),
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(c)
    }
}

/// One page of the listing (see [`FdbCursor`]) and the cursor of the next one, if more may
/// follow. One walk of the bridge's table, and of the vxlan tables the page reaches. Holds no
/// port (nor the registry) while it walks a table: detaching a port waits for whoever holds
/// it, and must not wait for a reader.
fn fdb_page(
    sw: &Switch,
    port: Option<crate::types::PortId>,
    vlan: Option<u16>,
    after: Option<FdbCursor>,
    limit: usize,
) -> (Vec<EntryJson>, Option<FdbCursor>) {
    let now = sw.now();
    let mut out = Vec::new();
    let mut last = None;
    if !matches!(after, Some(FdbCursor::Vtep { .. })) {
        let from = match after {
            Some(FdbCursor::Bridge { vlan, mac }) => Some(FdbKey::new(mac, vlan)),
            _ => None,
        };
        let keep = |k: &FdbKey, p| port.is_none_or(|x| p == x) && vlan.is_none_or(|v| k.vlan == v);
        let recs = sw.fdb.page(from, limit + 1, keep, now);
        let ports = sw.ports();
        for r in recs.iter().take(limit) {
            out.push(entry_json(&ports, r));
            last = Some(FdbCursor::Bridge {
                vlan: r.vlan,
                mac: r.mac,
            });
        }
        if recs.len() > limit {
            return (out, last);
        }
    }
    // a vxlan port's own entries have no VLAN: listed with vlan=0 or no vlan filter
    if vlan.is_some_and(|v| v != 0) {
        return (out, None);
    }
    let mut tables: Vec<(crate::types::PortId, String, Arc<crate::vxlan::vtep::Vtep>)> = sw
        .vxlan_members()
        .into_iter()
        .filter(|m| port.is_none_or(|p| m.port.id == p))
        .map(|m| (m.port.id, m.port.name.clone(), m.vtep))
        .collect();
    tables.sort_by_key(|t| t.0);
    for (id, name, vtep) in tables {
        let from = match after {
            Some(FdbCursor::Vtep { port, .. }) if id < port => continue,
            Some(FdbCursor::Vtep { port, mac, dst }) if id == port => Some((mac, dst)),
            _ => None,
        };
        let room = limit - out.len();
        let recs = vtep.page(from, room + 1, now);
        for r in recs.iter().take(room) {
            out.push(vtep_entry_json(&name, r));
            last = Some(FdbCursor::Vtep {
                port: id,
                mac: r.mac,
                dst: r.dst,
            });
        }
        if recs.len() > room {
            return (out, last);
        }
    }
    (out, None)
}

/// Percent-encodes a query value (a port name).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /api/v1/fdb`: one page of the table; a `Link: <...>; rel="next"` header names the
/// next page while more may follow.
async fn list_fdb(
    State(st): State<AppState>,
    q: Result<Query<FdbListQuery>, axum::extract::rejection::QueryRejection>,
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
    let (sw, vlan) = (st.sw.clone(), f.vlan);
    // a walk of the table: off the runtime and the control thread
    let (out, next) = read_off(&st, move || fdb_page(&sw, port, vlan, after, limit)).await?;
    let mut resp = Json(out).into_response();
    if let Some(c) = next {
        let mut link = format!("</api/v1/fdb?limit={limit}&after={c}");
        if let Some(p) = &f.port {
            link += &format!("&port={}", query_value(p));
        }
        if let Some(v) = f.vlan {
            link += &format!("&vlan={v}");
        }
        link += ">; rel=\"next\"";
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

async fn flush_fdb(
    State(st): State<AppState>,
    q: Result<Query<FdbFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(f) = q.map_err(|e| bad(e.body_text()))?;
    let port = filter_port(&st.sw, &f)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    mac: Option<String>,
    port: String,
    #[serde(default)]
    vlan: u16,
    #[serde(default = "default_kind")]
    kind: EntryKind,
    /// A `vxlan` port's own entry: the remote VTEP.
    dst: Option<std::net::IpAddr>,
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

/// The VTEP of a `vxlan` port, or a 400 naming the port.
fn vtep_of(sw: &Switch, h: &PortHandle) -> ApiResult<Arc<crate::vxlan::vtep::Vtep>> {
    sw.vtep_of(h.id).ok_or_else(|| {
        bad(format!(
            "port '{}' is not a vxlan port: 'dst' and 'self' entries are for vxlan ports",
            h.name
        ))
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
    use crate::vxlan::vtep::VtepError;
    let vtep = vtep_of(sw, h)?;
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
    Ok(vtep_entry_json(&h.name, &rec))
}

/// Adds or replaces an entry. Runs on the control thread, where ports are detached: an entry
/// is never added for a port that is being removed (and so never outlives it).
fn insert_entry(sw: &Switch, mac: MacAddr, b: &EntryBody, replace: bool) -> ApiResult<EntryJson> {
    if b.vlan > 4094 {
        return Err(bad(format!("vlan {} is outside 0..4094", b.vlan)));
    }
    let h = find_port(sw, &b.port)?;
    if b.dst.is_some() || (b.self_ && h.kind() == crate::port::PortKind::Vxlan) {
        return insert_vtep_entry(sw, &h, mac, b, replace);
    }
    let key = FdbKey::new(mac, b.vlan);
    let now = sw.now();
    // no VLAN, filtering on: VLAN 0 and every VLAN of the port, as Linux br_fdb_add
    crate::control::add_fdb_entry(sw, &h, mac, b.vlan, b.kind, replace).map_err(|e| match e {
        crate::fdb::FdbError::Exists { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        crate::fdb::FdbError::UserLimit(_) => {
            ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
        }
        crate::fdb::FdbError::NotUnicast(_) => bad(e.to_string()),
    })?;
    let rec = sw
        .fdb
        .record(&key, now)
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, "entry changed concurrently".into()))?;
    Ok(entry_json(&sw.ports(), &rec))
}

async fn put_fdb(
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

async fn create_fdb(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VlanQuery {
    #[serde(default)]
    vlan: u16,
    /// With `dst` or `self`: the `vxlan` port whose own entry goes. Otherwise: delete only
    /// this port's entries (with `vlan` 0, those of every VLAN of the port too).
    port: Option<String>,
    /// A `vxlan` port's entry: only the one pointing to this remote (for
    /// 00:00:00:00:00:00, this remote leaves the flood list).
    dst: Option<std::net::IpAddr>,
    #[serde(default, rename = "self")]
    self_: bool,
}

async fn del_fdb(
    State(st): State<AppState>,
    Path(mac): Path<String>,
    q: Result<Query<VlanQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<StatusCode> {
    let mac = parse_mac(&mac)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if q.dst.is_some() || q.self_ {
        let Some(name) = &q.port else {
            return Err(bad(
                "deleting a vxlan port's entry ('dst' or 'self') needs 'port'",
            ));
        };
        let h = find_port(&st.sw, name)?;
        let vtep = vtep_of(&st.sw, &h)?;
        let n = vtep.remove(mac, q.dst);
        return if n > 0 {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(not_found(match q.dst {
                Some(d) => format!("no entry {mac} dst {d} on port '{name}'"),
                None => format!("no entry {mac} on port '{name}'"),
            }))
        };
    }
    if let Some(name) = &q.port {
        // `bridge fdb del MAC dev PORT`: that port's entries, and with no VLAN those of
        // VLAN 0 and of every VLAN of the port (Linux br_fdb_delete)
        let h = find_port(&st.sw, name)?;
        return if crate::control::del_fdb_entry(&st.sw, &h, mac, q.vlan) > 0 {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(not_found(format!(
                "no entry {mac} on port '{name}'{}",
                if q.vlan == 0 {
                    String::new()
                } else {
                    format!(" vlan {}", q.vlan)
                }
            )))
        };
    }
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
        "vlan_filtering": s.vlan_filtering,
        "vlan_protocol": s.vlan_protocol,
        "default_pvid": s.default_pvid,
        "stp": if s.stp { "rstp" } else { "off" },
        "stp_priority": sw.stp_bridge().priority,
        "stp_hello_time": sw.stp_bridge().hello_time,
        "stp_forward_delay": sw.stp_bridge().forward_delay,
        "stp_max_age": sw.stp_bridge().max_age,
        "stp_mac": sw.stp_bridge().mac,
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

async fn patch_config(
    State(st): State<AppState>,
    body: Result<Json<ConfigPatch>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(p) = body?;
    let sw = st.sw.clone();
    // read, checked as a whole and applied in one step on the control thread: serialized with
    // every other change and with reloads (a VLAN change also flushes the table and edits
    // ports there); a bad field changes nothing
    let s = st.ctl.run(move || apply_config_patch(&sw, &p)).await??;
    tracing::info!(settings = ?s, "switch settings changed");
    Ok(Json(config_json(&st.sw)))
}

/// `PATCH /api/v1/config`: checks every field against the current settings, then applies
/// them all. Runs on the control thread.
fn apply_config_patch(sw: &Switch, p: &ConfigPatch) -> ApiResult<crate::forwarding::Settings> {
    let mut s = sw.settings.load();
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
        s.default_pvid = crate::config::check_default_pvid(d).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(v) = &p.stp {
        s.stp = crate::config::parse_stp(v).map_err(|e| bad(e.to_string()))?;
    }
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
        s.group_fwd_mask = match g {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad(format!("group_fwd_mask {n} is outside 0..0xffff")))?,
            Value::String(t) => parse_group_mask(t).map_err(|e| bad(e.to_string()))?,
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
    }
    // Everything is checked: apply.
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

/// The bytes a capture task produces, as an HTTP body stream.
struct CaptureBody(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl futures_core::Stream for CaptureBody {
    type Item = Result<Vec<u8>, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// `GET /api/v1/capture`: a pcapng (or pcap) stream until the count, the duration or the
/// client's disconnect (which ends the capture and frees its slot).
async fn capture(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(pairs) = q.map_err(|e| bad(e.body_text()))?;
    let req = crate::capture::session::Request::from_query(&pairs)
        .map_err(crate::capture::session::CaptureError::from)?;
    let format = req.format;
    let session = crate::capture::session::start(&st.sw, req)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(session.run(tx));
    Response::builder()
        .header(header::CONTENT_TYPE, format.media_type())
        .header(header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::from_stream(CaptureBody(rx)))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn list_mirrors(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.sw
            .mirrors()
            .iter()
            .map(|m| crate::capture::mirror::mirror_json(&st.sw, m))
            .collect(),
    ))
}

async fn get_mirror(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let m = st
        .sw
        .mirrors()
        .into_iter()
        .find(|m| m.spec.name == name)
        .ok_or(crate::capture::MirrorError::NotFound(name))?;
    Ok(Json(crate::capture::mirror::mirror_json(&st.sw, &m)))
}

async fn add_mirror(
    State(st): State<AppState>,
    body: Result<Json<crate::capture::MirrorSpec>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(spec) = body?;
    let sw = st.sw.clone();
    // the output port's table entries are flushed: a table walk, on the control thread
    let m = st
        .ctl
        .run(move || sw.add_mirror(spec, false, true))
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(crate::capture::mirror::mirror_json(&st.sw, &m)),
    ))
}

async fn del_mirror(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    st.sw.remove_mirror(&name)?;
    Ok(StatusCode::NO_CONTENT)
}
