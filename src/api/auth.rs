//! Who may call what: the TCP listener's token guard and the control socket's peer
//! credentials, logged with every change (see "Who may do what" in [`super`]).

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;

use super::error::ApiError;
use super::listen::ControlListener;
use super::{Access, AppState};

/// Compares two byte strings in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request changes the switch or reveals traffic (and so needs authorization).
pub(super) fn is_privileged(method: &Method, path: &str) -> bool {
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
pub(super) async fn log_control(
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
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
pub(super) async fn guard_tcp(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if !is_privileged(&method, &path) {
        return next.run(req).await;
    }
    let Access::Tcp { token } = &st.access else {
        return next.run(req).await;
    };
    if let Some(e) = refusal(token.as_deref(), req.headers()) {
        tracing::warn!(via = "tcp", %method, path, status = e.0.as_u16(), "api change refused");
        return e.into_response();
    }
    let resp = next.run(req).await;
    tracing::info!(via = "tcp", %method, path, status = resp.status().as_u16(), "api change");
    resp
}

/// Why a privileged request over TCP is refused, if it is: no token configured (403), or
/// not this one sent as `Authorization: Bearer TOKEN` (401).
fn refusal(token: Option<&str>, headers: &HeaderMap) -> Option<ApiError> {
    let Some(tok) = token else {
        return Some(ApiError(
            StatusCode::FORBIDDEN,
            "this call changes the switch or reveals traffic: over TCP it needs --api-token; \
             use the control socket instead (tapswitch ... --control PATH)"
                .into(),
        ));
    };
    let given = headers
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes_and_lengths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn reads_are_free_changes_and_captures_are_privileged() {
        assert!(!is_privileged(&Method::GET, "/api/v1/fdb"));
        assert!(!is_privileged(&Method::HEAD, "/metrics"));
        assert!(is_privileged(&Method::GET, "/api/v1/capture"));
        assert!(is_privileged(&Method::PATCH, "/api/v1/config"));
        assert!(is_privileged(&Method::DELETE, "/api/v1/fdb"));
    }

    #[test]
    fn the_tcp_token_is_refused_unless_configured_and_sent() {
        let mut h = HeaderMap::new();
        assert_eq!(refusal(None, &h).map(|e| e.0), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            refusal(Some("tok"), &h).map(|e| e.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(
            refusal(Some("tok"), &h).map(|e| e.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert!(refusal(Some("tok"), &h).is_none());
        assert_eq!(refusal(None, &h).map(|e| e.0), Some(StatusCode::FORBIDDEN));
    }
}
