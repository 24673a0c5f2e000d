//! `/api/v1/mirrors`: port mirrors (OVS `Mirror` semantics); the mirrors themselves live in
//! [`crate::capture::mirror`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiResult;
use super::AppState;
use crate::capture::mirror::mirror_json;
use crate::capture::{MirrorError, MirrorSpec};

/// `GET /api/v1/mirrors`.
pub(super) async fn list_mirrors(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.sw
            .mirrors()
            .iter()
            .map(|m| mirror_json(&st.sw, m))
            .collect(),
    ))
}

/// `GET /api/v1/mirrors/{name}`.
pub(super) async fn get_mirror(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let m = st
        .sw
        .mirrors()
        .into_iter()
        .find(|m| m.spec.name == name)
        .ok_or(MirrorError::NotFound(name))?;
    Ok(Json(mirror_json(&st.sw, &m)))
}

/// `POST /api/v1/mirrors`.
pub(super) async fn add_mirror(
    State(st): State<AppState>,
    body: Result<Json<MirrorSpec>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(spec) = body?;
    let sw = st.sw.clone();
    // the output port's table entries are flushed: a table walk, on the control thread
    let m = st
        .ctl
        .run(move || sw.add_mirror(spec, false, true))
        .await??;
    Ok((StatusCode::CREATED, Json(mirror_json(&st.sw, &m))))
}

/// `DELETE /api/v1/mirrors/{name}`.
pub(super) async fn del_mirror(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.sw.remove_mirror(&name)?;
    Ok(StatusCode::NO_CONTENT)
}
