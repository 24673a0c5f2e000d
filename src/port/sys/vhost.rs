//! The only `unsafe` code of the vhost port: receiving file descriptors (SCM_RIGHTS) on a
//! unix stream socket, for the front-end relay in `compat`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Most descriptors one vhost-user message carries (rust-vmm's limit; QEMU sends at most 8).
pub(crate) const MAX_FDS: usize = 32;

/// Reads up to `buf.len()` bytes and the descriptors that came with them, appended to `fds`.
/// Returns the byte count (0: end of stream).
pub(crate) fn recv_with_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    let mut raw: [RawFd; MAX_FDS] = [-1; MAX_FDS];
    // SAFETY: the one iovec points at `buf`, which is valid for `buf.len()` bytes and
    // exclusively borrowed for the duration of the call; any bytes may be written to it.
    let (n, nfds) = unsafe { sock.recv_with_fds(&mut iov, &mut raw) }
        .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
    for &fd in raw.iter().take(nfds) {
        // SAFETY: recvmsg just installed `fd` in this process from SCM_RIGHTS control data;
        // nothing else refers to it, so this OwnedFd is its only owner (and closes it).
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(n)
}

/// Closes the exit-event descriptor that rust-vmm's epoll thread of a finished connection
/// leaves open. Call only after the connection's `VhostUserDaemon` was dropped, with the fd
/// of an exit event that its `exit_event()` handed out.
pub(crate) fn close_leaked_exit_fd(fd: RawFd) {
    // SAFETY: vhost-user-backend =0.24.0 (pinned exactly) takes the EventConsumer returned
    // by `exit_event()` with `into_raw_fd()`, adds the fd to its epoll set and never closes
    // or stores it (event_loop.rs, VringEpollHandler::new). Once the daemon is dropped its
    // handler has joined the epoll thread and closed the epoll fd, so nothing refers to
    // `fd` any more and this OwnedFd is its only owner. The caller passes the fd only when
    // `exit_event()` really handed it out (otherwise our own OwnedFd still owns it).
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}
