//! `stream:PATH` ports: a unix stream socket listening for QEMU's
//! `-netdev stream,server=off,addr.type=unix,addr.path=PATH`. Every accepted connection is its
//! own port (`NAME-N`); a connection that closes is detached and its table entries flushed.
//!
//! Framing both ways: a 4-byte big-endian length, then the frame (no padding, no FCS, no
//! virtio header). Several frames, or half a frame, may arrive per read. A length of 0 or above
//! 65,535 is a protocol error that ends that connection only. Frames to a peer that is not
//! reading wait in a bounded queue; beyond it they are dropped and counted (`queue_full`), so a
//! slow guest never stalls the other ports.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{Port, PortKind};
use crate::buf::PageBuf;

/// Largest frame the stream framing carries.
pub const MAX_FRAME: usize = 65535;
/// Bytes queued toward one slow peer before frames are dropped.
pub const TX_QUEUE_BYTES: usize = 512 * 1024;
/// Default most connections on one listener.
pub const DEFAULT_MAX_CONNS: usize = 64;

/// A protocol error on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream framing: length {0} is outside 1..=65535")]
pub struct BadLength(pub u32);

/// Reassembles length-prefixed frames from a byte stream. No I/O.
pub struct StreamDecoder {
    buf: PageBuf,
    start: usize,
    end: usize,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder {
            buf: PageBuf::new(2 * (4 + MAX_FRAME)),
            start: 0,
            end: 0,
        }
    }
}

impl StreamDecoder {
    /// Room to read more bytes into; moves a partial frame to the front when needed.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 && self.buf.len() - self.end < 4 + MAX_FRAME {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`StreamDecoder::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, BadLength> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
        if len == 0 || len as usize > MAX_FRAME {
            return Err(BadLength(len));
        }
        let total = 4 + len as usize;
        if avail.len() < total {
            return Ok(None);
        }
        let s = self.start + 4;
        self.start += total;
        if self.start == self.end {
            // empty: the next read starts at the front (the frame's bytes stay in place)
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(&self.buf[s..s + len as usize]))
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

/// One accepted connection.
pub struct StreamConn {
    sock: UnixStream,
    rx: Mutex<StreamDecoder>,
    tx: Mutex<VecDeque<u8>>,
    backlog: Notify,
    tx_limit: usize,
}

impl std::fmt::Debug for StreamConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConn")
            .field("fd", &self.sock.as_raw_fd())
            .finish()
    }
}

impl StreamConn {
    /// Wraps a connected socket (made non-blocking here).
    pub fn new(sock: UnixStream) -> io::Result<StreamConn> {
        sock.set_nonblocking(true)?;
        Ok(StreamConn {
            sock,
            rx: Mutex::default(),
            tx: Mutex::new(VecDeque::new()),
            backlog: Notify::new(),
            tx_limit: TX_QUEUE_BYTES,
        })
    }

    fn write_queue(&self, q: &mut VecDeque<u8>) -> io::Result<bool> {
        if q.is_empty() {
            q.shrink_to(64 * 1024);
        }
        while !q.is_empty() {
            let (a, b) = q.as_slices();
            match (&self.sock).write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    q.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Port for StreamConn {
    fn kind(&self) -> PortKind {
        PortKind::Stream
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut d = lock(&self.rx);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    let n = f.len().min(buf.len());
                    buf[..n].copy_from_slice(&f[..n]);
                    return Ok(n);
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            match (&self.sock).read(d.spare()) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => d.filled(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.is_empty() || frame.len() > MAX_FRAME {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let hdr = (frame.len() as u32).to_be_bytes();
        let mut q = lock(&self.tx);
        if q.is_empty() {
            let total = 4 + frame.len();
            let done = match (&self.sock).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(frame)])
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if done == total {
                return Ok(());
            }
            // Keep the rest of this frame: a half-written frame must be finished.
            let rest = hdr.iter().chain(frame.iter()).skip(done);
            q.extend(rest);
            // Once more now that the bytes are queued: the peer may have read in between, and
            // the dataplane learns of writability from an edge (EPOLLOUT) that only comes after
            // a write finds the socket full.
            self.write_queue(&mut q)?;
        } else {
            if q.len() + 4 + frame.len() > self.tx_limit {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            q.extend(hdr);
            q.extend(frame);
        }
        drop(q);
        self.backlog.notify_one();
        Ok(())
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }

    fn mtu(&self) -> u32 {
        (MAX_FRAME - 18) as u32
    }

    fn backlog(&self) -> Option<&Notify> {
        Some(&self.backlog)
    }

    fn flush(&self) -> io::Result<bool> {
        let mut q = lock(&self.tx);
        self.write_queue(&mut q)
    }

    fn ephemeral(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in frames {
            v.extend_from_slice(&(f.len() as u32).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    fn feed(d: &mut StreamDecoder, bytes: &[u8]) {
        let s = d.spare();
        s[..bytes.len()].copy_from_slice(bytes);
        d.filled(bytes.len());
    }

    #[test]
    fn coalesced_and_split_frames() {
        let a = [1u8; 60];
        let b = [2u8; 1514];
        let c = [3u8; 14];
        let wire = framed(&[&a, &b, &c]);
        // every split point
        for cut in [1, 3, 4, 5, 63, 64, 65, 1000, wire.len() - 1] {
            let mut d = StreamDecoder::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                feed(&mut d, part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(got, vec![a.to_vec(), b.to_vec(), c.to_vec()], "cut {cut}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn bad_lengths() {
        let mut d = StreamDecoder::default();
        feed(&mut d, &[0, 0, 0, 0]);
        assert_eq!(d.next_frame().unwrap_err(), BadLength(0));
        let mut d = StreamDecoder::default();
        feed(&mut d, &[0, 1, 0, 0]);
        assert_eq!(d.next_frame().unwrap_err(), BadLength(65536));
        let mut d = StreamDecoder::default();
        feed(&mut d, &framed(&[&[9u8; 65535]])[..]);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 65535);
    }

    #[test]
    fn long_streams_compact() {
        let mut d = StreamDecoder::default();
        let f = [7u8; 40000];
        let wire = framed(&[&f]);
        let mut n = 0;
        for _ in 0..10 {
            // feed 1.5 frames at a time
            for chunk in wire.chunks(30000) {
                feed(&mut d, chunk);
                while let Some(x) = d.next_frame().unwrap() {
                    assert_eq!(x.len(), 40000);
                    n += 1;
                }
            }
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn conn_send_recv_and_queue() {
        let (a, b) = UnixStream::pair().unwrap();
        let conn = StreamConn::new(a).unwrap();
        let peer = StreamConn::new(b).unwrap();
        conn.send(&[5u8; 100]).unwrap();
        conn.send(&[6u8; 20]).unwrap();
        let mut buf = vec![0u8; 70000];
        assert_eq!(peer.recv(&mut buf).unwrap(), 100);
        assert_eq!(peer.recv(&mut buf).unwrap(), 20);
        assert_eq!(buf[0], 6);
        assert_eq!(
            peer.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // fill the socket until frames queue, then the queue limit drops
        let big = vec![1u8; 60000];
        let mut dropped = 0;
        for _ in 0..200 {
            if conn.send(&big).is_err() {
                dropped += 1;
            }
        }
        assert!(
            dropped > 0,
            "a peer that does not read must cost drops, not memory"
        );
        assert!(lock(&conn.tx).len() <= TX_QUEUE_BYTES);
        // the peer reads everything that was accepted, in order, whole
        let mut got = 0;
        loop {
            let _ = conn.flush();
            match peer.recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, 60000);
                    got += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if conn.flush().unwrap() && lock(&conn.tx).is_empty() {
                        if peer.recv(&mut buf).is_err() {
                            break;
                        }
                        got += 1;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, 200 - dropped);
        drop(conn);
        assert_eq!(
            peer.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof,
            "EOF after close"
        );
    }
}
