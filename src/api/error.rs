//! The API's errors: a status and a message, sent as `{"error": "..."}`, and how each error
//! of the layers below maps to a status.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::capture::mirror::MirrorFailure;
use crate::capture::session::CaptureError;
use crate::capture::MirrorError;
use crate::control::{AttachError, ControlGone, FailureClass};
use crate::dataplane::AddPortError;

/// An API error: a status and a message, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub(super) StatusCode, pub(super) String);

/// What a handler returns.
pub(super) type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A 400 with this message.
pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// A 404 with this message.
pub(super) fn not_found(msg: impl Into<String>) -> ApiError {
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

impl From<MirrorError> for ApiError {
    fn from(e: MirrorError) -> Self {
        let status = match e.class() {
            MirrorFailure::Invalid => StatusCode::BAD_REQUEST,
            MirrorFailure::NotFound => StatusCode::NOT_FOUND,
            MirrorFailure::Conflict => StatusCode::CONFLICT,
            MirrorFailure::Full => StatusCode::INSUFFICIENT_STORAGE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<CaptureError> for ApiError {
    fn from(e: CaptureError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, e.to_string())
    }
}
