//! Socket files for `stream:` and `dgram:` ports: a stale file is replaced, a live one is an
//! error, and mode and owner are settable so an unprivileged QEMU can connect.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// Why a socket path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    /// A live socket: another process listens on it.
    #[error("{0}: another process is listening on this socket")]
    InUse(String),
    /// Something else is at that path.
    #[error("{0}: exists and is not a socket; refusing to replace it")]
    NotASocket(String),
    /// Any other error.
    #[error("{0}")]
    Io(String, #[source] io::Error),
}

/// Makes `path` free to bind: removes a stale socket file nobody listens on.
pub fn prepare(path: &Path, datagram: bool) -> Result<(), SockError> {
    let p = path.display().to_string();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SockError::Io(p, e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SockError::NotASocket(p));
    }
    let live = if datagram {
        UnixDatagram::unbound()
            .and_then(|s| s.connect(path))
            .is_ok()
    } else {
        UnixStream::connect(path).is_ok()
    };
    if live {
        return Err(SockError::InUse(p));
    }
    std::fs::remove_file(path).map_err(|e| SockError::Io(p, e))
}

/// Applies the requested mode and owner to a bound socket file.
pub fn apply(
    path: &Path,
    mode: Option<u32>,
    owner: Option<(u32, Option<u32>)>,
) -> Result<(), SockError> {
    let p = path.display().to_string();
    if let Some(m) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))
            .map_err(|e| SockError::Io(p.clone(), e))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), gid).map_err(|e| SockError::Io(p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn stale_live_and_foreign_files() {
        let dir = std::env::temp_dir().join(format!("tsw-sockfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        prepare(&path, false).unwrap(); // absent
        let l = UnixListener::bind(&path).unwrap();
        assert!(matches!(prepare(&path, false), Err(SockError::InUse(_))));
        drop(l); // file stays behind, stale
        prepare(&path, false).unwrap();
        assert!(!path.exists());
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            prepare(&path, false),
            Err(SockError::NotASocket(_))
        ));
        std::fs::remove_file(&path).unwrap();
        let d = UnixDatagram::bind(&path).unwrap();
        assert!(matches!(prepare(&path, true), Err(SockError::InUse(_))));
        drop(d);
        prepare(&path, true).unwrap();
        let l = UnixListener::bind(&path).unwrap();
        apply(&path, Some(0o600), None).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(l);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
