//! Socket files (`stream:`, `dgram:` and `vhost:` ports, the control socket): a stale file is
//! replaced, a live one is an error, and mode and owner are settable so an unprivileged QEMU can
//! connect.
//!
//! Paths, `mode=` and `owner=` come from port specs, that is from whoever may use the API, and
//! the switch usually runs as root. Nothing here follows a link or trusts a name twice:
//!
//! - the directory is opened once (`O_PATH | O_DIRECTORY | O_NOFOLLOW`) and checked: it must
//!   belong to root or to the user running tapswitch, and nobody else may write to it, unless it
//!   is sticky (like `/tmp`: there others cannot rename or remove a file they do not own, so the
//!   socket, once bound, cannot be swapped for a link). Every later lookup, removal and change
//!   goes through that fd;
//! - the socket is bound with umask 0177 (held only around `bind`, under a lock), so it is
//!   never connectable by others before its mode is set;
//! - the new entry is opened with `O_PATH | O_NOFOLLOW` and checked (a socket, owned by this
//!   process's user); its mode and owner are then changed through that fd, so they land on the
//!   inode that was checked, never on a link's target. If the name holds anything else, nothing
//!   is changed and the bind is refused;
//! - the file is removed only while the name still holds that same inode.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};

use super::sys::{self, fs};

/// Why a socket path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    /// A live socket: another process listens on it.
    #[error("{0}: another process is listening on this socket")]
    InUse(String),
    /// Something else is at that path.
    #[error("{0}: exists and is not a socket; refusing to replace it")]
    NotASocket(String),
    /// The path names no file in a directory (empty, `/`, `..`).
    #[error("{0}: not a file name in a directory")]
    BadPath(String),
    /// The directory could be changed by someone else, or is a link.
    #[error(
        "{path}: refusing to create a socket in {dir}: {reason} (a socket file is only created in \
         a directory that nobody but root and its owner can change, or a sticky one like /tmp)"
    )]
    UnsafeDir {
        /// The socket path.
        path: String,
        /// Its directory.
        dir: String,
        /// What is wrong with it.
        reason: String,
    },
    /// After `bind`, the name held something else than the socket just bound.
    #[error(
        "{0}: the file at this path is no longer the socket tapswitch bound (replaced by a link \
         or another file); its mode and owner were not changed"
    )]
    Replaced(String),
    /// Any other error.
    #[error("{0}")]
    Io(String, #[source] io::Error),
}

/// A socket path whose directory was opened once and checked; see the module documentation.
pub struct SockPath {
    dir: OwnedFd,
    dir_stat: fs::FileStat,
    name: CString,
    path: PathBuf,
    /// The umask that was in force when [`SockPath::bind`] ran.
    umask: Option<u32>,
}

impl std::fmt::Debug for SockPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockPath")
            .field("path", &self.path)
            .finish()
    }
}

/// Why a directory may not hold a socket, or `None` if it may: it must belong to root or to
/// `euid`, and only its owner may write to it unless it is sticky.
pub fn unsafe_dir_reason(st: &fs::FileStat, euid: u32) -> Option<String> {
    if !st.is_dir() {
        return Some("it is not a directory".into());
    }
    if st.uid != 0 && st.uid != euid {
        return Some(format!(
            "it belongs to uid {}, neither root nor uid {euid} that runs tapswitch",
            st.uid
        ));
    }
    let sticky = st.mode & libc::S_ISVTX != 0;
    if st.mode & 0o022 != 0 && !sticky {
        return Some(format!(
            "its group or others may write to it (mode {:04o}) and it is not sticky",
            st.mode & 0o7777
        ));
    }
    None
}

impl SockPath {
    /// Opens and checks the directory of `path` (its last component must not be a link).
    pub fn open(path: &Path) -> Result<SockPath, SockError> {
        let p = path.display().to_string();
        let name = match path.file_name() {
            Some(n) if n != ".." && n != "." => n,
            _ => return Err(SockError::BadPath(p)),
        };
        let name = CString::new(name.as_bytes()).map_err(|_| SockError::BadPath(p.clone()))?;
        let dir_path = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let unsafe_dir = |reason: String| SockError::UnsafeDir {
            path: p.clone(),
            dir: dir_path.display().to_string(),
            reason,
        };
        let dir = fs::open_dir_nofollow(dir_path).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ELOOP | libc::ENOTDIR) => {
                    let link = std::fs::symlink_metadata(dir_path)
                        .is_ok_and(|m| m.file_type().is_symlink());
                    if link {
                        return unsafe_dir(
                            "it is a symbolic link (give the directory it points to)".into(),
                        );
                    }
                }
                Some(libc::ENOENT) => {
                    return SockError::Io(
                        format!("{p}: its directory {} does not exist", dir_path.display()),
                        e,
                    )
                }
                _ => {}
            }
            SockError::Io(p.clone(), e)
        })?;
        let dir_stat = fs::fstat(&dir).map_err(|e| SockError::Io(p.clone(), e))?;
        if let Some(reason) = unsafe_dir_reason(&dir_stat, sys::euid()) {
            return Err(unsafe_dir(reason));
        }
        Ok(SockPath {
            dir,
            dir_stat,
            name,
            path: path.to_path_buf(),
            umask: None,
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses unless the directory is private to this user: owned by it, and no permission
    /// at all for group or others (for `/tmp/tapswitch-UID`, which anyone could have created
    /// first).
    pub fn require_private_dir(&self) -> Result<(), SockError> {
        let euid = sys::euid();
        let st = &self.dir_stat;
        if st.uid != euid || st.mode & 0o077 != 0 {
            return Err(SockError::UnsafeDir {
                path: self.path.display().to_string(),
                dir: self
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
                    .to_string(),
                reason: if st.uid == euid {
                    format!(
                        "it must have mode 0700 and has mode {:04o} (chmod 0700 it)",
                        st.mode & 0o7777
                    )
                } else {
                    format!(
                        "it must belong to uid {euid} with mode 0700, and it belongs to uid {} \
                         (another user may have created it first: remove it, or give \
                         --control a path of your own)",
                        st.uid
                    )
                },
            });
        }
        Ok(())
    }

    /// The path through the directory fd (`/proc/self/fd/N/NAME`), so a check reaches the
    /// directory that was checked even if a component of the path was swapped since; the
    /// path as given when that is too long for a socket address.
    fn via_fd(&self) -> PathBuf {
        let p = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
            .join(std::ffi::OsStr::from_bytes(self.name.as_bytes()));
        if p.as_os_str().len() < 108 && Path::new("/proc/self/fd").is_dir() {
            p
        } else {
            self.path.clone()
        }
    }

    /// Makes the name free to bind: removes a stale socket file nobody listens on; a live
    /// socket or any other kind of file is an error.
    pub fn prepare(&self, datagram: bool) -> Result<(), SockError> {
        let p = self.path.display().to_string();
        let st = match fs::stat_at(&self.dir, &self.name) {
            Ok(Some(st)) => st,
            Ok(None) => return Ok(()),
            Err(e) => return Err(SockError::Io(p, e)),
        };
        if !st.is_socket() {
            return Err(SockError::NotASocket(p));
        }
        let target = self.via_fd();
        let live = if datagram {
            UnixDatagram::unbound()
                .and_then(|s| s.connect(&target))
                .is_ok()
        } else {
            UnixStream::connect(&target).is_ok()
        };
        if live {
            return Err(SockError::InUse(p));
        }
        match fs::unlink_at(&self.dir, &self.name) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(SockError::Io(p, e)),
        }
    }

    /// Runs `bind_fn` (which binds a socket at the path it is given) with umask 0177, so the
    /// new file is `rw` for its owner only until [`SockPath::finish`] sets its mode.
    pub fn bind<T>(&mut self, bind_fn: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
        let path = self.path.clone();
        let (r, old) = fs::with_umask(0o177, || bind_fn(&path));
        self.umask = Some(old);
        r
    }

    /// Checks that the name holds the socket just bound and gives it its mode (`mode`, or
    /// what the umask before [`SockPath::bind`] would have given) and owner, through an fd
    /// of that inode. On error the socket file is removed if it is ours, and left alone
    /// otherwise.
    pub fn finish(
        self,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<SockFile, SockError> {
        let p = self.path.display().to_string();
        let fd = match fs::open_at_nofollow(&self.dir, &self.name) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(SockError::Replaced(p)),
            Err(e) => return Err(SockError::Io(p, e)),
        };
        let st = fs::fstat(&fd).map_err(|e| SockError::Io(p.clone(), e))?;
        if !st.is_socket() || st.uid != sys::euid() {
            return Err(SockError::Replaced(p));
        }
        let file = SockFile {
            dir: self.dir,
            name: self.name,
            path: self.path,
            id: st,
        };
        if uid.is_some() || gid.is_some() {
            // dropping `file` on error removes the socket: it is ours
            fs::chown_fd(&fd, uid, gid).map_err(|e| SockError::Io(p.clone(), e))?;
        }
        let umask = self.umask.unwrap_or(0o022);
        let mode = mode.unwrap_or(0o777 & !umask);
        fs::chmod_fd(&fd, mode).map_err(|e| SockError::Io(p, e))?;
        Ok(file)
    }
}

/// A bound socket file; removed (if the name still holds it) by [`SockFile::remove`] or when
/// dropped.
pub struct SockFile {
    dir: OwnedFd,
    name: CString,
    path: PathBuf,
    id: fs::FileStat,
}

impl std::fmt::Debug for SockFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockFile")
            .field("path", &self.path)
            .finish()
    }
}

impl SockFile {
    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if its name still holds the socket that was bound (never a file
    /// that replaced it). Calling it again does nothing.
    pub fn remove(&self) {
        if let Ok(Some(st)) = fs::stat_at(&self.dir, &self.name) {
            if st.is_socket() && st.same_file(&self.id) {
                let _ = fs::unlink_at(&self.dir, &self.name);
            }
        }
    }
}

impl Drop for SockFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Binds a socket at `path` with [`SockPath`]: directory checked, stale file replaced,
/// `bind_fn` run under a strict umask, then mode and owner applied without following links.
pub fn bind_at<T>(
    path: &Path,
    datagram: bool,
    mode: Option<u32>,
    owner: Option<(u32, Option<u32>)>,
    bind_fn: impl FnOnce(&Path) -> io::Result<T>,
) -> Result<(T, SockFile), BindError> {
    let mut sp = SockPath::open(path)?;
    sp.prepare(datagram)?;
    let bound = sp.bind(bind_fn).map_err(BindError::Bind)?;
    let file = sp.finish(mode, owner.map(|o| o.0), owner.and_then(|o| o.1))?;
    Ok((bound, file))
}

/// Why [`bind_at`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The path, its directory or the new file.
    #[error(transparent)]
    Sock(#[from] SockError),
    /// `bind` itself.
    #[error("bind: {0}")]
    Bind(#[source] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
    use std::os::unix::net::UnixListener;

    /// A fresh directory of this user, mode 0755 (umask permitting less), removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let d =
                std::env::temp_dir().join(format!("tsw-sockfile-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::DirBuilder::new().mode(0o755).create(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn listen(path: &Path) -> Result<(UnixListener, SockFile), BindError> {
        bind_at(path, false, None, None, |p| UnixListener::bind(p))
    }

    #[test]
    fn stale_live_and_foreign_files() {
        let dir = Dir::new("stale");
        let path = dir.0.join("a.sock");
        let (l, f) = listen(&path).unwrap(); // absent
        assert!(matches!(
            listen(&path),
            Err(BindError::Sock(SockError::InUse(_)))
        ));
        drop(l);
        std::mem::forget(f); // the file stays behind, stale
        let (l, f) = listen(&path).unwrap();
        drop((l, f));
        assert!(!path.exists(), "dropping the SockFile removes the file");
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            listen(&path),
            Err(BindError::Sock(SockError::NotASocket(_)))
        ));
        std::fs::remove_file(&path).unwrap();
        let (d, f) = bind_at(&path, true, Some(0o600), None, |p| UnixDatagram::bind(p)).unwrap();
        assert!(matches!(
            bind_at(&path, true, None, None, |p| UnixDatagram::bind(p)),
            Err(BindError::Sock(SockError::InUse(_)))
        ));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop((d, f));
        assert!(!path.exists());
    }

    #[test]
    fn mode_is_set_and_a_bad_name_is_refused() {
        let dir = Dir::new("mode");
        let path = dir.0.join("m.sock");
        let (_l, _f) = bind_at(&path, false, Some(0o660), None, |p| UnixListener::bind(p)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o660);
        for bad in ["/", "x/..", ""] {
            assert!(matches!(
                listen(Path::new(bad)),
                Err(BindError::Sock(SockError::BadPath(_)))
            ));
        }
    }

    /// A symlink planted at the name between bind and the mode change is not followed: its
    /// target keeps its mode and owner, the bind is refused, and the link is left alone.
    #[test]
    fn a_link_planted_after_bind_is_not_followed() {
        let dir = Dir::new("link");
        let target = dir.0.join("precious");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&target).unwrap();
        let path = dir.0.join("s.sock");
        let mut sp = SockPath::open(&path).unwrap();
        sp.prepare(false).unwrap();
        let l = sp.bind(|p| UnixListener::bind(p)).unwrap();
        // the attacker's move: swap the socket for a link to the target
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        // as root, owner= names another user, so following the link would show in its owner
        let (uid, gid) = if sys::euid() == 0 {
            (65534, 65534)
        } else {
            (sys::euid(), before.gid())
        };
        let e = sp.finish(Some(0o666), Some(uid), Some(gid)).unwrap_err();
        assert!(matches!(e, SockError::Replaced(_)), "{e}");
        assert!(e.to_string().contains("s.sock"), "{e}");
        let after = std::fs::metadata(&target).unwrap();
        assert_eq!(after.mode() & 0o7777, 0o600, "target mode unchanged");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(
            (after.ctime(), after.ctime_nsec()),
            (before.ctime(), before.ctime_nsec()),
            "target inode untouched"
        );
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "a file that is not ours is not removed"
        );
        drop(l);
        // the same with another socket in its place (a hard link or a new bind): refused
        std::fs::remove_file(&path).unwrap();
        let mut sp = SockPath::open(&path).unwrap();
        let l = sp.bind(|p| UnixListener::bind(p)).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"a regular file").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            sp.finish(Some(0o666), None, None),
            Err(SockError::Replaced(_))
        ));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        drop(l);
    }

    /// Root: `owner=` lands on the socket itself (uid and gid), after the mode.
    #[test]
    fn owner_lands_on_the_socket() {
        if sys::euid() != 0 {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "root tests must run in CI"
            );
            eprintln!("SKIP: owner_lands_on_the_socket needs root (chown to another user)");
            return;
        }
        let dir = Dir::new("owner");
        let path = dir.0.join("o.sock");
        let (_l, _f) = bind_at(&path, false, Some(0o660), Some((65534, Some(65533))), |p| {
            UnixListener::bind(p)
        })
        .unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65533, 0o660));
    }

    /// The file is removed only while its name holds the socket that was bound.
    #[test]
    fn remove_leaves_a_replacement_alone() {
        let dir = Dir::new("rm");
        let path = dir.0.join("r.sock");
        let (l, f) = listen(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(f);
        assert!(path.exists(), "not our socket: left alone");
        drop(l);
    }

    #[test]
    fn a_directory_others_can_write_is_refused_with_its_name() {
        let dir = Dir::new("perm");
        for (mode, ok) in [
            (0o777, false),
            (0o775, false),
            (0o757, false),
            (0o1777, true),
            (0o1775, true),
            (0o755, true),
            (0o700, true),
        ] {
            std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = listen(&dir.0.join("p.sock"));
            match (r, ok) {
                (Ok(_), true) => {}
                (Err(BindError::Sock(e @ SockError::UnsafeDir { .. })), false) => {
                    let text = e.to_string();
                    assert!(text.contains(&dir.0.display().to_string()), "{text}");
                    assert!(text.contains(&format!("{mode:04o}")), "{text}");
                }
                (r, _) => panic!("mode {mode:o}: {r:?}"),
            }
        }
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        // the directory given as a link: refused, naming it
        let link = dir.0.join("via-link");
        std::os::unix::fs::symlink(&dir.0, &link).unwrap();
        let e = listen(&link.join("p.sock")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(e.to_string().contains("via-link"), "{e}");
    }

    #[test]
    fn the_owner_rule() {
        let st = |uid, mode| fs::FileStat {
            dev: 0,
            ino: 0,
            mode: libc::S_IFDIR | mode,
            uid,
            gid: 0,
        };
        assert_eq!(unsafe_dir_reason(&st(0, 0o755), 1000), None);
        assert_eq!(unsafe_dir_reason(&st(1000, 0o700), 1000), None);
        assert_eq!(unsafe_dir_reason(&st(0, 0o1777), 1000), None);
        let r = unsafe_dir_reason(&st(1001, 0o755), 1000).unwrap();
        assert!(r.contains("uid 1001"), "{r}");
        assert!(
            unsafe_dir_reason(&st(1001, 0o1777), 0).is_some(),
            "sticky, but another user's"
        );
        let f = fs::FileStat {
            mode: libc::S_IFREG | 0o755,
            ..st(0, 0)
        };
        assert!(unsafe_dir_reason(&f, 0).is_some());
    }

    #[test]
    fn private_dir_check() {
        let dir = Dir::new("priv");
        let path = dir.0.join("c.sock");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
        SockPath::open(&path)
            .unwrap()
            .require_private_dir()
            .unwrap();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = SockPath::open(&path)
            .unwrap()
            .require_private_dir()
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&dir.0.display().to_string()), "{text}");
        assert!(text.contains("0700") && text.contains("0750"), "{text}");
    }
}
