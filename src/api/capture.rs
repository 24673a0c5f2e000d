//! `GET /api/v1/capture?port=..`: a live pcapng or pcap stream (see
//! [`crate::capture::session`]). It reveals traffic: over TCP it needs the token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;

use super::error::{bad, ApiError, ApiResult};
use super::AppState;
use crate::capture::session::{self, CaptureError};

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
pub(super) async fn capture(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(pairs) = q.map_err(|e| bad(e.body_text()))?;
    let req = session::Request::from_query(&pairs).map_err(CaptureError::from)?;
    let format = req.format;
    let session = session::start(&st.sw, req)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(session.run(tx));
    Response::builder()
        .header(header::CONTENT_TYPE, format.media_type())
        .header(header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::from_stream(CaptureBody(rx)))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
