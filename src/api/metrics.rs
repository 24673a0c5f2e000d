//! `GET /metrics`: the Prometheus exposition ([`crate::metrics`]), rendered off the runtime
//! and the control thread.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::ApiResult;
use super::listen::read_off;
use super::AppState;

/// `GET /metrics`.
pub(super) async fn metrics(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let sw = st.sw.clone();
    let text = read_off(&st, move || crate::metrics::render(&sw)).await?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text))
}
