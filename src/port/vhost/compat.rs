//! A relay between QEMU and rust-vmm's protocol handler that works around one interop bug.
//!
//! QEMU 7.2's virtio-net sends VHOST_USER_SET_VRING_ENABLE when the guest resets the device or
//! writes its features, which is before the first VHOST_USER_SET_FEATURES. rust-vmm's `vhost`
//! 0.18 answers a SET_VRING_ENABLE that comes before PROTOCOL_FEATURES was acknowledged with
//! an error that ends the connection. And a back-end that offers no PROTOCOL_FEATURES fails
//! in QEMU 7.2 itself ("unable to start vhost net: 22"), because its vhost_dev_start() enables
//! rings with SET_VRING_ENABLE unconditionally. So the port offers PROTOCOL_FEATURES and this
//! relay holds back SET_VRING_ENABLE requests seen before the first SET_FEATURES of a
//! connection (or after a RESET_OWNER/RESET_DEVICE) and passes the last one of each ring on
//! right after SET_FEATURES. QEMU 7.2 sends no SET_VRING_ENABLE after SET_FEATURES when it
//! starts the device: the early ones are what enables the rings, so they must not be lost.
//!
//! The relay reads only message boundaries (the 12-byte header: request, flags, size) and
//! passes every other message through unchanged with its file descriptors; replies flow back
//! as bytes. It is no vhost-user implementation; drop it once rust-vmm accepts early
//! SET_VRING_ENABLE requests.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::port::sys::vhost as sys;

/// VHOST_USER_SET_FEATURES.
const SET_FEATURES: u32 = 2;
/// VHOST_USER_SET_VRING_ENABLE.
const SET_VRING_ENABLE: u32 = 18;
/// VHOST_USER_RESET_OWNER.
const RESET_OWNER: u32 = 4;
/// VHOST_USER_RESET_DEVICE.
const RESET_DEVICE: u32 = 34;
/// Rings whose early enable state is kept (more than any port has).
const MAX_HELD: usize = 64;
/// A SET_VRING_ENABLE message: header and `struct vhost_vring_state`.
const ENABLE_LEN: usize = HDR + 8;
/// Header flag: the front-end waits for a reply (REPLY_ACK).
const NEED_REPLY: u32 = 1 << 3;
/// Largest message body passed on (rust-vmm refuses larger ones too).
const MAX_BODY: usize = 4096;
/// Header length.
const HDR: usize = 12;

/// What the relay did with one message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Relayed {
    /// Passed on.
    Forwarded(u32),
    /// A SET_VRING_ENABLE held back until SET_FEATURES (ring index).
    Held(u32),
    /// A held SET_VRING_ENABLE passed on after SET_FEATURES (ring index).
    Replayed(u32),
}

/// Writes one message, with its descriptors, to the back-end.
fn forward(back: &UnixStream, msg: &[u8], fds: &[OwnedFd]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let sent = if raw.is_empty() {
        (&*back).write(msg)?
    } else {
        back.send_with_fds(&[msg], &raw)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?
    };
    (&*back).write_all(&msg[sent..])
}

/// Reads one message from the front-end: header, body and its descriptors. `None`: the
/// front-end closed the connection.
fn read_msg(
    front: &UnixStream,
    buf: &mut [u8; HDR + MAX_BODY],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Option<(u32, u32, usize)>> {
    let mut got = 0;
    while got < HDR {
        let n = sys::recv_with_fds(front, &mut buf[got..HDR], fds)?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n;
    }
    let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let (req, flags, size) = (word(0), word(4), word(8) as usize);
    if size > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("vhost-user message {req} of {size} bytes"),
        ));
    }
    (&*front).read_exact(&mut buf[HDR..HDR + size])?;
    Ok(Some((req, flags, size)))
}

/// Passes front-end messages to the back-end until either side closes, holding back
/// SET_VRING_ENABLE requests until SET_FEATURES. `seen` receives each decision (tests).
/// Returns when the front-end closed or a write to the back-end failed.
pub(super) fn pump(
    front: &UnixStream,
    back: &UnixStream,
    mut seen: impl FnMut(Relayed),
) -> io::Result<()> {
    let mut buf = Box::new([0u8; HDR + MAX_BODY]);
    let mut fds = Vec::with_capacity(sys::MAX_FDS);
    let mut held: Vec<(u32, [u8; ENABLE_LEN])> = Vec::with_capacity(MAX_HELD);
    let mut features_set = false;
    loop {
        fds.clear();
        let Some((req, flags, size)) = read_msg(front, &mut buf, &mut fds)? else {
            return Ok(());
        };
        let msg = &buf[..HDR + size];
        if req == SET_VRING_ENABLE && !features_set && flags & NEED_REPLY == 0 && size == 8 {
            let index = u32::from_le_bytes([msg[HDR], msg[HDR + 1], msg[HDR + 2], msg[HDR + 3]]);
            let mut m = [0u8; ENABLE_LEN];
            m.copy_from_slice(msg);
            if let Some(h) = held.iter_mut().find(|h| h.0 == index) {
                h.1 = m;
            } else if held.len() < MAX_HELD {
                held.push((index, m));
            }
            seen(Relayed::Held(index));
            continue;
        }
        forward(back, msg, &fds)?;
        seen(Relayed::Forwarded(req));
        match req {
            SET_FEATURES if !features_set => {
                features_set = true;
                for (index, m) in held.drain(..) {
                    forward(back, &m, &[])?;
                    seen(Relayed::Replayed(index));
                }
            }
            RESET_OWNER | RESET_DEVICE => features_set = false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn msg(req: u32, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&req.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&(body.len() as u32).to_le_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn holds_early_vring_enables_until_set_features_and_passes_the_rest_with_fds() {
        let (qemu, front) = UnixStream::pair().unwrap();
        let (back, handler) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut log = Vec::new();
            pump(&front, &back, |r| log.push(r)).unwrap();
            log
        });
        let enable = msg(SET_VRING_ENABLE, 1, &[0, 0, 0, 0, 1, 0, 0, 0]);
        let enable1 = msg(SET_VRING_ENABLE, 1, &[1, 0, 0, 0, 1, 0, 0, 0]);
        let disable1 = msg(SET_VRING_ENABLE, 1, &[1, 0, 0, 0, 0, 0, 0, 0]);
        (&qemu).write_all(&enable).unwrap();
        (&qemu).write_all(&enable1).unwrap();
        (&qemu).write_all(&disable1).unwrap();
        (&qemu).write_all(&enable1).unwrap();
        // a message with a descriptor, written in two pieces
        let file = std::fs::File::open("/dev/null").unwrap();
        let call = msg(13, 1, &[0; 8]);
        qemu.send_with_fds(&[&call[..5]], &[file.as_fd().as_raw_fd()])
            .unwrap();
        (&qemu).write_all(&call[5..]).unwrap();
        (&qemu).write_all(&msg(SET_FEATURES, 1, &[1; 8])).unwrap();
        (&qemu).write_all(&enable).unwrap();
        drop(qemu);
        let log = t.join().unwrap();
        assert_eq!(
            log,
            vec![
                Relayed::Held(0),
                Relayed::Held(1),
                Relayed::Held(1),
                Relayed::Held(1),
                Relayed::Forwarded(13),
                Relayed::Forwarded(SET_FEATURES),
                Relayed::Replayed(0),
                Relayed::Replayed(1),
                Relayed::Forwarded(SET_VRING_ENABLE)
            ]
        );
        let mut got = [0u8; 12 + 8];
        let mut fds = Vec::new();
        let n = sys::recv_with_fds(&handler, &mut got, &mut fds).unwrap();
        assert_eq!(&got[..n], &call[..n]);
        assert_eq!(fds.len(), 1, "the descriptor came along");
        let mut rest = Vec::new();
        (&handler).read_to_end(&mut rest).unwrap();
        let mut want = call[n..].to_vec();
        want.extend(msg(SET_FEATURES, 1, &[1; 8]));
        want.extend(&enable);
        want.extend(&enable1);
        want.extend(&enable);
        assert_eq!(rest, want);
    }

    #[test]
    fn oversized_or_cut_messages_end_the_relay() {
        let (qemu, front) = UnixStream::pair().unwrap();
        let (back, _handler) = UnixStream::pair().unwrap();
        (&qemu).write_all(&msg(5, 1, &[])[..8]).unwrap();
        drop(qemu);
        assert!(pump(&front, &back, |_| {}).is_err());
        let (qemu, front) = UnixStream::pair().unwrap();
        let mut big = msg(5, 1, &[]);
        big[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        (&qemu).write_all(&big).unwrap();
        assert!(pump(&front, &back, |_| {}).is_err());
    }
}
