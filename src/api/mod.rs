//! The HTTP endpoint: `/metrics`, `/healthz` and the JSON API under `/api/v1`, served on two
//! listeners with one router. Routes are here; each resource's handlers and request bodies
//! are in its own file, the answers' JSON shapes in `json.rs`.
//!
//! | method | path | handlers in | who may call it |
//! |---|---|---|---|
//! | GET | `/healthz` | `mod.rs` | anyone |
//! | GET | `/metrics` | `metrics.rs` | anyone |
//! | GET | `/api/v1/ports`, `/api/v1/ports/{name}` | `ports.rs` | anyone |
//! | POST | `/api/v1/ports` | `ports.rs` | a change |
//! | PATCH, DELETE | `/api/v1/ports/{name}` | `ports.rs` | a change |
//! | GET | `/api/v1/listeners` | `ports.rs` | anyone |
//! | PUT, DELETE | `/api/v1/ports/{name}/vlans/{vid}` | `vlans.rs` | a change |
//! | GET | `/api/v1/vlans` | `vlans.rs` | anyone |
//! | GET | `/api/v1/fdb` | `fdb/` (paging: `fdb/page.rs`) | anyone |
//! | POST, DELETE | `/api/v1/fdb` | `fdb/` | a change |
//! | PUT, DELETE | `/api/v1/fdb/{mac}` | `fdb/` | a change |
//! | GET | `/api/v1/config` | `config.rs` | anyone |
//! | PATCH | `/api/v1/config` | `config.rs` | a change |
//! | GET | `/api/v1/stp` | `stp.rs` | anyone |
//! | GET | `/api/v1/capture?port=..` | `capture.rs` | reveals traffic: as a change |
//! | GET | `/api/v1/mirrors`, `/api/v1/mirrors/{name}` | `mirrors.rs` | anyone |
//! | POST | `/api/v1/mirrors` | `mirrors.rs` | a change |
//! | DELETE | `/api/v1/mirrors/{name}` | `mirrors.rs` | a change |
//! | GET | `/api/v1/mdb` | `mdb.rs` | anyone |
//! | GET | `/api/v1/events` | `events.rs` (a stream of JSON lines) | anyone |
//! | POST, DELETE | `/api/v1/mdb` | `mdb.rs` | a change |
//!
//! `GET /api/v1/listeners` lists stream and dgram sockets, whose peers become ports `NAME-N`;
//! `POST /api/v1/ports` opens one from a spec and `DELETE /api/v1/ports/{name}` closes one.
//!
//! Who may do what ([`Access`], checked in `auth.rs`):
//! - The **control socket** (a unix socket, mode 0660, owned by root and `--control-group`)
//!   serves everything: its file permissions are the authentication. The peer's uid, gid and
//!   pid (SO_PEERCRED) are logged with every change.
//! - The **TCP listener** serves `/metrics`, `/healthz` and the read-only routes ("anyone").
//!   Changes (POST, PUT, PATCH, DELETE) and anything that reveals traffic need
//!   `--api-token`, sent as `Authorization: Bearer TOKEN` and compared in constant time;
//!   without a configured token they are refused with 403, on loopback too (loopback is not
//!   an authentication boundary: every local user can reach it).
//!
//! Handlers never take a lock the frame path holds and never walk the table on the API's
//! runtime or on the control thread (the listeners and the read pool are in `listen.rs`):
//! - reads that walk a table or build a large answer (`/metrics`, ports, table pages) run on
//!   tokio's blocking pool, at most [`READS_TCP`] (TCP) or [`READS_CONTROL`] (control socket) at
//!   once per listener, so readers never hold up the control thread's ageing, link-down
//!   flushes and spanning tree, and cannot take every core;
//! - the table is listed in pages (`?limit=&after=`, at most [`FDB_PAGE_MAX`] entries, a
//!   `Link: <...>; rel="next"` header while more may follow), each page one walk of the table
//!   with memory for one page ([`crate::page`]), never a copy and sort of the whole table;
//! - every change (settings, port settings, VLANs, table entries, ports) is read, checked as a
//!   whole and applied in one closure on the control thread
//!   ([`ControlHandle::run`](crate::control::ControlHandle::run)), which runs one closure at a
//!   time: changes and SIGHUP reloads are serialized, none is lost, and a request with one bad
//!   field changes nothing;
//! - each listener serves at most `--api-max-conns` connections; one more is answered 503
//!   and closed ([`crate::conn_cap`]).

mod auth;
mod capture;
mod config;
mod error;
mod events;
mod fdb;
mod json;
mod listen;
mod mdb;
mod metrics;
mod mirrors;
mod ports;
mod stp;
mod vlans;

use std::sync::Arc;

use axum::routing::{get, put};
use axum::Router;

use crate::control::ControlHandle;
use crate::dataplane::Switch;

pub use auth::{constant_time_eq, Peer};
pub use error::ApiError;
pub use fdb::page::{FdbCursor, FDB_PAGE_DEFAULT, FDB_PAGE_MAX};
pub use json::{port_json, vlans_json};
pub use listen::{
    serve, serve_control, ControlSocket, ControlSocketError, READS_CONTROL, READS_TCP,
};

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

/// What every handler of one listener shares.
#[derive(Clone)]
struct AppState {
    sw: Arc<Switch>,
    ctl: ControlHandle,
    access: Access,
    /// Reads of this listener that may run at once (see [`listen::read_off`]).
    reads: Arc<tokio::sync::Semaphore>,
}

/// Builds the router for one listener (used by the servers in `listen.rs` and by tests).
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
    let r = routes();
    match st.access {
        Access::Control => r
            .layer(axum::middleware::from_fn(auth::log_control))
            .with_state(st),
        Access::Tcp { .. } => r
            .layer(axum::middleware::from_fn_with_state(
                st.clone(),
                auth::guard_tcp,
            ))
            .with_state(st),
    }
}

/// Every route and its handlers (the table in the module doc).
fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/v1/ports",
            get(ports::list_ports).post(ports::add_port),
        )
        .route(
            "/api/v1/ports/{name}",
            get(ports::get_port)
                .patch(ports::patch_port)
                .delete(ports::del_port),
        )
        .route(
            "/api/v1/fdb",
            get(fdb::list_fdb)
                .post(fdb::create_fdb)
                .delete(fdb::flush_fdb),
        )
        .route("/api/v1/fdb/{mac}", put(fdb::put_fdb).delete(fdb::del_fdb))
        .route(
            "/api/v1/config",
            get(config::get_config).patch(config::patch_config),
        )
        .route("/api/v1/listeners", get(ports::list_listeners))
        .route("/api/v1/vlans", get(vlans::list_vlans))
        .route("/api/v1/stp", get(stp::get_stp))
        .route(
            "/api/v1/ports/{name}/vlans/{vid}",
            put(vlans::put_port_vlan).delete(vlans::del_port_vlan),
        )
        .route("/api/v1/capture", get(capture::capture))
        .route("/api/v1/events", get(events::events))
        .route(
            "/api/v1/mirrors",
            get(mirrors::list_mirrors).post(mirrors::add_mirror),
        )
        .route(
            "/api/v1/mirrors/{name}",
            get(mirrors::get_mirror).delete(mirrors::del_mirror),
        )
        .route(
            "/api/v1/mdb",
            get(mdb::get_mdb).post(mdb::add_mdb).delete(mdb::del_mdb),
        )
}
