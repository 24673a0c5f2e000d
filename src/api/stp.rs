//! `GET /api/v1/stp`: the spanning tree bridge and its ports (each port's own view is in its
//! JSON, see [`super::port_json`]).

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::types::PortId;

/// `GET /api/v1/stp`: the bridge's settings, and while RSTP runs its status and every
/// port's, with their names.
pub(super) async fn get_stp(State(st): State<AppState>) -> Json<Value> {
    let cfg = st.sw.stp_bridge();
    let names: HashMap<PortId, String> = st
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
