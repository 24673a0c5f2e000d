//! The two listeners (TCP and the control socket), each capped at `--api-max-conns`
//! connections ([`crate::conn_cap`]), and the read pool: reads that walk a table run on
//! tokio's blocking pool, a few per listener at once ([`read_off`]).

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;

use super::auth::Peer;
use super::error::{ApiError, ApiResult};
use super::{router, Access, AppState};
use crate::conn_cap::Capped;
use crate::control::ControlHandle;
use crate::dataplane::Switch;
use crate::port::sockfile::{SockError, SockFile, SockPath};

/// Table reads of the TCP listener (anyone's) that run at once; more wait their turn.
pub const READS_TCP: usize = 1;
/// Table reads of the control socket that run at once (its own: TCP readers never hold up
/// the operator).
pub const READS_CONTROL: usize = 2;

/// Runs a read that walks a table or builds a large answer on tokio's blocking pool: neither
/// on the API's async workers nor on the control thread, and at most [`READS_TCP`] or
/// [`READS_CONTROL`] of one listener at once. A read runs to its end even if its client
/// leaves (its permit goes with it).
pub(super) async fn read_off<R: Send + 'static>(
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

/// The control socket's listener, capped.
pub(super) type ControlListener = Capped<tokio::net::UnixListener>;

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
    let listener = Capped::new(listener, "TCP listener", max_conns);
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
        source: SockError,
    },
    /// A live switch already listens there.
    #[error("--control {} (another switch with this --name? give each its own --name or --control)", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: SockError,
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
    file: SockFile,
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
    let (l, file) = bind_control(path, gid)?;
    let l = Capped::new(l, "control socket", max_conns);
    let app = router(sw, ctl, Access::Control).into_make_service_with_connect_info::<Peer>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::error!(error = %e, "control socket server stopped");
        }
    });
    tracing::info!(path = %path.display(), ?gid, "control socket listening");
    Ok(ControlSocket { file, task })
}

/// Makes the control socket's directory if it is missing; returns whether it is the private
/// default directory (see [`serve_control`]).
fn control_dir(path: &FsPath) -> Result<bool, ControlSocketError> {
    use std::os::unix::fs::DirBuilderExt;
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
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(private)
}

/// Binds the control socket's file safely (mode 0660, group `gid`): the listener, and the
/// file, which removes the socket again when dropped.
fn bind_control(
    path: &FsPath,
    gid: Option<u32>,
) -> Result<(tokio::net::UnixListener, SockFile), ControlSocketError> {
    let private = control_dir(path)?;
    let p = path.to_path_buf();
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
    Ok((l, file))
}
