//! The bounded buffer between the frame path and a capture's reader.
//!
//! Two byte buffers of a fixed capacity, allocated when the capture starts: the frame path
//! appends records to the active one under a `try_lock` (it never waits: a contended lock or a
//! full buffer drops the frame and counts it); the reader swaps the active buffer with its
//! empty spare under the same lock (a pointer swap) and decodes the records outside it. The
//! buffers never grow, so the frame path never allocates, and a reader that stops reading only
//! makes the frame path drop its frames.
//!
//! Record layout (native byte order, never leaves the process): caplen `u32`, port id `u32`,
//! direction `u8`, 3 bytes of padding, timestamp in ns since the epoch `u64`, original length
//! `u32`, then `caplen` bytes of frame.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::capture::pcap::Direction;
use crate::types::PortId;

/// Bytes of a record before the frame.
pub const RECORD_HEADER: usize = 24;

/// Times the frame path tries the lock before it drops the frame.
const LOCK_TRIES: usize = 3;

/// One captured frame, as read back from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The port it was seen on.
    pub port: PortId,
    /// Read from the port (inbound) or written to it (outbound).
    pub dir: Direction,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The frame's length before the snaplen cut.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// A capture's double buffer; see the module documentation.
#[derive(Debug)]
pub struct Ring {
    active: Mutex<Vec<u8>>,
    cap: usize,
    /// Set when the active buffer passes half its capacity; the reader clears it.
    half: AtomicBool,
    /// Wakes the reader when the buffer passes half full.
    wake: tokio::sync::Notify,
    /// Frames appended.
    pub frames: AtomicU64,
    /// Frames dropped: buffer full or lock contended.
    pub dropped: AtomicU64,
}

impl Ring {
    /// A ring whose buffers hold `cap` bytes each (two are allocated: the active one here, the
    /// reader's spare with [`Ring::spare`]).
    pub fn new(cap: usize) -> Ring {
        Ring {
            active: Mutex::new(Vec::with_capacity(cap)),
            cap,
            half: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            frames: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// An empty buffer of the ring's capacity, for the reader to swap in.
    pub fn spare(&self) -> Vec<u8> {
        Vec::with_capacity(self.cap)
    }

    /// Appends a frame (at most `snaplen` bytes of it); returns false, counting a drop, if the
    /// buffer is full or the lock stays contended. Never blocks, never allocates.
    pub fn push(
        &self,
        port: PortId,
        dir: Direction,
        ts_ns: u64,
        frame: &[u8],
        snaplen: usize,
    ) -> bool {
        let caplen = frame.len().min(snaplen);
        let need = RECORD_HEADER + caplen;
        let mut guard = None;
        for _ in 0..LOCK_TRIES {
            if let Ok(g) = self.active.try_lock() {
                guard = Some(g);
                break;
            }
            std::hint::spin_loop();
        }
        let Some(mut buf) = guard else {
            self.dropped.fetch_add(1, Relaxed);
            return false;
        };
        if buf.len() + need > self.cap {
            drop(buf);
            self.dropped.fetch_add(1, Relaxed);
            self.wake_reader();
            return false;
        }
        buf.extend_from_slice(&(caplen as u32).to_ne_bytes());
        buf.extend_from_slice(&port.0.to_ne_bytes());
        buf.extend_from_slice(&[dir_byte(dir), 0, 0, 0]);
        buf.extend_from_slice(&ts_ns.to_ne_bytes());
        buf.extend_from_slice(&(frame.len().min(u32::MAX as usize) as u32).to_ne_bytes());
        buf.extend_from_slice(&frame[..caplen]);
        let past_half = buf.len() * 2 > self.cap;
        drop(buf);
        self.frames.fetch_add(1, Relaxed);
        if past_half && !self.half.swap(true, Relaxed) {
            self.wake_reader();
        }
        true
    }

    fn wake_reader(&self) {
        self.wake.notify_one();
    }

    /// Waits until the buffer passes half full (or is full), or [`Ring::push`] was told to wake.
    pub async fn filled(&self) {
        self.wake.notified().await;
    }

    /// Swaps the active buffer with `spare` (which is cleared first); afterwards `spare` holds
    /// the records appended since the last call.
    pub fn take(&self, spare: &mut Vec<u8>) {
        spare.clear();
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *active, spare);
        }
        self.half.store(false, Relaxed);
    }
}

fn dir_byte(d: Direction) -> u8 {
    match d {
        Direction::Inbound => 1,
        Direction::Outbound => 2,
    }
}

/// The records of a buffer filled by [`Ring::push`] and taken with [`Ring::take`].
pub fn records(mut buf: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < RECORD_HEADER {
            return None;
        }
        let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let caplen = u32_at(buf, 0) as usize;
        let port = PortId(u32_at(buf, 4));
        let dir = if buf[8] == 1 {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[12..20]);
        let orig_len = u32_at(buf, 20);
        let data = buf.get(RECORD_HEADER..RECORD_HEADER + caplen)?;
        buf = &buf[RECORD_HEADER + caplen..];
        Some(Record {
            port,
            dir,
            ts_ns: u64::from_ne_bytes(ts),
            orig_len,
            data,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_snaplen() {
        let r = Ring::new(1024);
        let f1: Vec<u8> = (0..100).collect();
        let f2: Vec<u8> = (0..10).collect();
        assert!(r.push(PortId(7), Direction::Inbound, 123, &f1, 64));
        assert!(r.push(PortId(0x10002), Direction::Outbound, 456, &f2, 64));
        let mut spare = r.spare();
        r.take(&mut spare);
        let got: Vec<Record> = records(&spare).collect();
        assert_eq!(
            got,
            [
                Record {
                    port: PortId(7),
                    dir: Direction::Inbound,
                    ts_ns: 123,
                    orig_len: 100,
                    data: &f1[..64]
                },
                Record {
                    port: PortId(0x10002),
                    dir: Direction::Outbound,
                    ts_ns: 456,
                    orig_len: 10,
                    data: &f2
                }
            ]
        );
        // the ring is empty again and reuses the spare's capacity
        let mut again = Vec::new();
        r.take(&mut again);
        assert!(again.is_empty());
        assert_eq!(r.frames.load(Relaxed), 2);
    }

    #[test]
    fn a_full_ring_drops_and_counts_without_growing() {
        let r = Ring::new(200);
        let f = [0u8; 60];
        let mut ok = 0;
        for _ in 0..10 {
            ok += usize::from(r.push(PortId(1), Direction::Inbound, 1, &f, 65535));
        }
        assert_eq!(ok, 200 / (RECORD_HEADER + 60));
        assert_eq!(r.dropped.load(Relaxed), 10 - ok as u64);
        let mut spare = r.spare();
        r.take(&mut spare);
        assert!(spare.capacity() <= 200 + 64, "{}", spare.capacity());
        assert_eq!(records(&spare).count(), ok);
        // room again after the reader took the buffer
        assert!(r.push(PortId(1), Direction::Inbound, 1, &f, 65535));
    }

    #[test]
    fn a_held_lock_drops_instead_of_waiting() {
        let r = Ring::new(1024);
        let g = r.active.lock().unwrap();
        assert!(!r.push(PortId(1), Direction::Inbound, 1, &[0; 60], 65535));
        drop(g);
        assert_eq!(r.dropped.load(Relaxed), 1);
    }

    #[test]
    fn truncated_buffers_end_the_iteration() {
        let r = Ring::new(1024);
        assert!(r.push(PortId(1), Direction::Inbound, 1, &[9; 30], 65535));
        let mut spare = r.spare();
        r.take(&mut spare);
        assert_eq!(records(&spare[..40]).count(), 0);
        assert_eq!(records(&spare[..10]).count(), 0);
    }
}
