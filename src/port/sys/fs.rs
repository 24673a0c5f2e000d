//! File-system calls for socket files that must not follow links: a directory opened once and
//! used through its fd, names looked up and removed relative to it, and mode and owner changed
//! through an `O_PATH` fd of the very inode that was checked.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

/// What `stat` says about a file, the part tapswitch checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Device of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl FileStat {
    fn from(st: &libc::stat) -> FileStat {
        FileStat {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// Whether this is a unix socket.
    pub fn is_socket(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFSOCK
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    /// Whether two stats name the same inode.
    pub fn same_file(&self, other: &FileStat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens the directory `dir` as an `O_PATH` fd without following a symlink in its last
/// component (`ENOTDIR` or `ELOOP` if it is one): every later call goes through this fd, so renaming or
/// replacing the path afterwards changes nothing for the holder.
pub fn open_dir_nofollow(dir: &Path) -> io::Result<OwnedFd> {
    let c = cpath(dir)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat` on any fd, `O_PATH` ones included.
pub fn fstat(fd: &OwnedFd) -> io::Result<FileStat> {
    // SAFETY: stat is plain data; all-zero is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `struct stat` for the whole call.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(FileStat::from(&st))
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself (a symlink is reported as one);
/// `None` when there is no such entry.
pub fn stat_at(dir: &OwnedFd, name: &CStr) -> io::Result<Option<FileStat>> {
    // SAFETY: stat is plain data; all-zero is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` writable; both outlive the call.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(rc) {
        Ok(()) => Ok(Some(FileStat::from(&st))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the entry `name` of `dir` as an `O_PATH | O_NOFOLLOW` fd: a symlink is opened as the
/// link itself, never its target. Mode and owner changes through this fd hit exactly the inode
/// that [`fstat`] on it describes.
pub fn open_at_nofollow(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; the result is checked.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Changes the mode of the inode an `O_PATH` fd holds (`chmod` through `/proc/self/fd/N`, as
/// glibc's `fchmodat(AT_SYMLINK_NOFOLLOW)` does; `fchmod` refuses `O_PATH` fds). Callers must
/// not pass a symlink's fd: Linux cannot change a link's mode and would change its target's.
pub fn chmod_fd(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    let p = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `p` is a NUL-terminated path that outlives the call.
    check(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) })
}

/// Changes owner and/or group of the inode an fd holds (`fchownat(fd, "", AT_EMPTY_PATH)`,
/// which works on `O_PATH` fds and never follows a link). `None` leaves that id alone.
pub fn chown_fd(fd: &OwnedFd, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    // (uid_t)-1 / (gid_t)-1: leave unchanged
    let u = uid.unwrap_or(u32::MAX) as libc::uid_t;
    let g = gid.unwrap_or(u32::MAX) as libc::gid_t;
    // SAFETY: the empty path is a NUL-terminated constant; AT_EMPTY_PATH makes the call act
    // on `fd` itself.
    check(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), u, g, libc::AT_EMPTY_PATH) })
}

/// `unlinkat(dir, name, 0)`: removes the entry itself (a symlink, not its target).
pub fn unlink_at(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

/// Serializes the umask changes of [`with_umask`].
static UMASK: Mutex<()> = Mutex::new(());

/// Runs `f` (one `bind`) with the process umask set to `mask`, and returns its result and the
/// umask that was in force before. The umask is process-wide: the lock keeps two callers from
/// interleaving, and `f` must be short (a file created meanwhile by another thread gets at
/// most the permissions it would have had, never more, as long as `mask` is stricter).
pub fn with_umask<R>(mask: u32, f: impl FnOnce() -> R) -> (R, u32) {
    let _g = UMASK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: umask(2) takes an integer and cannot fail.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let r = f();
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    (r, old as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofollow_calls_see_the_link_not_its_target() {
        let dir = std::env::temp_dir().join(format!("tsw-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, b"x").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
        // the directory itself given as a symlink: refused (ENOTDIR: O_PATH opens the link)
        std::os::unix::fs::symlink(&dir, dir.join("dirlink")).unwrap();
        let e = open_dir_nofollow(&dir.join("dirlink")).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
            "{e}"
        );
        let d = open_dir_nofollow(&dir).unwrap();
        assert!(fstat(&d).unwrap().is_dir());
        let l = stat_at(&d, c"link").unwrap().unwrap();
        assert!(l.is_symlink());
        assert!(stat_at(&d, c"absent").unwrap().is_none());
        let fd = open_at_nofollow(&d, c"link").unwrap();
        assert!(fstat(&fd).unwrap().same_file(&l), "O_PATH fd of the link");
        unlink_at(&d, c"link").unwrap();
        assert!(target.exists(), "unlinkat removed the link, not its target");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn umask_holds_inside_and_is_restored() {
        let read = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
                .unwrap()
        };
        let (inside, old) = with_umask(0o177, read);
        assert_eq!(inside, 0o177, "the mask in force during the call");
        // every caller restores under the lock, so the next one finds the old mask again
        let (inside, before) = with_umask(old, read);
        assert_eq!((inside, before), (old, old));
    }
}
