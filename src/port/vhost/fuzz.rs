//! A guest driver in miniature over `virtio-queue`'s mock split queues, for the unit tests
//! and for fuzzing: [`fuzz_tx`] and [`fuzz_rx`] build rings and buffers from arbitrary bytes
//! and run the device over them. Built with `cfg(test)` or the `fuzzing` feature (which
//! turns on `virtio-queue/test-utils`).

// the driver helpers serve the unit tests; a fuzz build uses only part of them
#![cfg_attr(not(test), allow(dead_code))]

use std::io;
use std::sync::Arc;

use vhost_user_backend::VringT;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};

use super::device::{Gm, Vring};
use super::{Conn, Shared, VhostConfig, VhostPort};
use crate::offload::VNET_HDR_LEN;

/// Guest memory in the tests.
pub(crate) type Mmap = GuestMemoryMmap<()>;

/// VRING_DESC_F_NEXT.
pub(crate) const F_NEXT: u16 = 1;
/// VRING_DESC_F_WRITE.
pub(crate) const F_WRITE: u16 = 2;
/// VRING_DESC_F_INDIRECT.
pub(crate) const F_INDIRECT: u16 = 4;

/// Flat guest memory of `size` bytes at guest address 0.
pub(crate) fn guest_memory(size: usize) -> Mmap {
    match GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]) {
        Ok(m) => m,
        Err(e) => panic!("cannot allocate test guest memory: {e}"),
    }
}

/// A vring of the device side over the rings of a [`Driver`].
pub(crate) fn vring_for(gm: &Gm, d: &Driver<'_>, size: u16, event_idx: bool) -> Vring {
    let v = match Vring::new(gm.clone(), size) {
        Ok(v) => v,
        Err(e) => panic!("vring: {e:?}"),
    };
    v.set_queue_size(size);
    if let Err(e) = v.set_queue_info(d.desc_addr(), d.avail_addr(), d.used_addr()) {
        panic!("queue addresses: {e:?}");
    }
    v.set_queue_event_idx(event_idx);
    v.set_queue_ready(true);
    v.set_enabled(true);
    v
}

/// The state of a port with these rings installed as a running connection, without a
/// socket or threads.
pub(super) fn shared_with(features: u64, vrings: Vec<Vring>, gm: Gm) -> Arc<Shared> {
    let mut cfg = VhostConfig::new("/nonexistent/vhost-test.sock");
    cfg.queue_pairs = (vrings.len() / 2).max(1) as u16;
    cfg.queue_size = 1024;
    let s = match Shared::new("test", cfg) {
        Ok(s) => s,
        Err(e) => panic!("shared: {e}"),
    };
    s.acked
        .store(features, std::sync::atomic::Ordering::Relaxed);
    *s.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(Conn {
        gen: 0,
        vrings,
        mem: gm,
    });
    Arc::new(s)
}

/// A port over shared state built by [`shared_with`] (no socket, no threads).
pub(super) fn port_with(shared: Arc<Shared>) -> VhostPort {
    VhostPort { shared }
}

/// The driver side of one queue: descriptor slots, avail ring, used ring. The descriptor
/// table is `virtio-queue`'s mock; the rings are laid out here, because the mock places its
/// used ring inside the avail ring for queues over 8 entries (virtio-queue 0.18:
/// `SplitQueueRing::end()` adds the element count, not the byte length).
pub(crate) struct Driver<'a> {
    pub(crate) vq: MockSplitQueue<'a, Mmap>,
    pub(crate) mem: &'a Mmap,
    pub(crate) size: u16,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
    data: u64,
}

impl<'a> Driver<'a> {
    /// A queue of `size` entries at `base`, with buffers bump-allocated from `data`.
    pub(crate) fn new(mem: &'a Mmap, base: u64, size: u16, data: u64) -> Self {
        let d = Driver {
            vq: MockSplitQueue::create(mem, GuestAddress(base), size),
            mem,
            size,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
            data,
        };
        // zero both rings (the mock wrote its own, misplaced, used ring header)
        let end = d.used_addr() + 6 + 8 * u64::from(size);
        d.write(d.avail_addr(), &vec![0u8; (end - d.avail_addr()) as usize]);
        d
    }

    /// Guest address of the descriptor table.
    pub(crate) fn desc_addr(&self) -> u64 {
        self.vq.desc_table_addr().0
    }

    /// Guest address of the avail ring (right after the descriptor table).
    pub(crate) fn avail_addr(&self) -> u64 {
        self.desc_addr() + 16 * u64::from(self.size)
    }

    /// Guest address of the used ring (after the avail ring, 4-aligned).
    pub(crate) fn used_addr(&self) -> u64 {
        (self.avail_addr() + 6 + 2 * u64::from(self.size) + 3) & !3
    }

    /// Reserves `len` bytes of guest memory for buffers.
    pub(crate) fn alloc(&mut self, len: usize) -> u64 {
        let a = self.data;
        self.data += (len as u64 + 63) & !63;
        a
    }

    /// Stores raw descriptors at the next table slots (their `next` fields as given,
    /// relative slot numbers are the caller's business) and returns the first slot.
    pub(crate) fn store_descs(&mut self, descs: &[SplitDescriptor]) -> u16 {
        let first = self.next_desc;
        for d in descs {
            let slot = self.next_desc % self.size;
            if let Err(e) = self.vq.desc_table().store(slot, RawDescriptor::from(*d)) {
                panic!("store descriptor: {e:?}");
            }
            self.next_desc = self.next_desc.wrapping_add(1);
        }
        first % self.size
    }

    /// Makes `head` available to the device.
    pub(crate) fn publish(&mut self, head: u16) {
        let at = self.avail_addr() + 4 + 2 * u64::from(self.avail_idx % self.size);
        self.write(at, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.write(self.avail_addr() + 2, &self.avail_idx.to_le_bytes());
    }

    /// Adds one chain of `(addr, len, write_only)` buffers, linked in order.
    pub(crate) fn add_chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let first = self.next_desc % self.size;
        let descs: Vec<SplitDescriptor> = bufs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, w))| {
                let last = i + 1 == bufs.len();
                let flags = if w { F_WRITE } else { 0 } | if last { 0 } else { F_NEXT };
                let next = (first + i as u16 + 1) % self.size;
                SplitDescriptor::new(addr, len, flags, if last { 0 } else { next })
            })
            .collect();
        let head = self.store_descs(&descs);
        self.publish(head);
        head
    }

    /// Adds a TX chain: `bytes` (virtio header + frame) cut at `cuts` into descriptors.
    pub(crate) fn add_tx(&mut self, bytes: &[u8], cuts: &[usize]) -> u16 {
        let mut bufs = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain(std::iter::once(bytes.len())) {
            let part = &bytes[start..end];
            let a = self.alloc(part.len());
            self.write(a, part);
            bufs.push((a, part.len() as u32, false));
            start = end;
        }
        self.add_chain(&bufs)
    }

    /// Adds `n` RX chains, each of `descs` write-only descriptors of `len` bytes.
    pub(crate) fn add_rx(&mut self, n: usize, descs: usize, len: u32) -> Vec<u16> {
        (0..n)
            .map(|_| {
                let bufs: Vec<(u64, u32, bool)> = (0..descs)
                    .map(|_| (self.alloc(len as usize), len, true))
                    .collect();
                self.add_chain(&bufs)
            })
            .collect()
    }

    /// Used entries published since the last call, as `(id, len)`.
    pub(crate) fn take_used(&mut self) -> Vec<(u32, u32)> {
        let used = self.used_addr();
        let idx = self.read_u16(used + 2);
        let mut out = Vec::new();
        while self.used_seen != idx {
            let at = used + 4 + 8 * u64::from(self.used_seen % self.size);
            let mut e = [0u8; 8];
            self.read(at, &mut e);
            out.push((
                u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            ));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }

    /// The used index the device published.
    pub(crate) fn used_idx(&self) -> u16 {
        self.read_u16(self.used_addr() + 2)
    }

    /// Sets `used_event` (EVENT_IDX: interrupt when the used index passes it).
    pub(crate) fn set_used_event(&self, v: u16) {
        let at = self.avail_addr() + 4 + 2 * u64::from(self.size);
        self.write(at, &v.to_le_bytes());
    }

    /// Sets the avail ring flags (1 = VRING_AVAIL_F_NO_INTERRUPT).
    pub(crate) fn set_avail_flags(&self, v: u16) {
        self.write(self.avail_addr(), &v.to_le_bytes());
    }

    /// The descriptor table slot of a head (its buffer address and length).
    pub(crate) fn desc(&self, head: u16) -> (u64, u32) {
        match self.vq.desc_table().load(head) {
            Ok(d) => {
                let d = SplitDescriptor::from(d);
                (d.addr().0, d.len())
            }
            Err(e) => panic!("load descriptor: {e:?}"),
        }
    }

    pub(crate) fn write(&self, at: u64, b: &[u8]) {
        if let Err(e) = self.mem.write_slice(b, GuestAddress(at)) {
            panic!("test write at {at:#x}: {e}");
        }
    }

    pub(crate) fn read(&self, at: u64, b: &mut [u8]) {
        if let Err(e) = self.mem.read_slice(b, GuestAddress(at)) {
            panic!("test read at {at:#x}: {e}");
        }
    }

    fn read_u16(&self, at: u64) -> u16 {
        let mut b = [0u8; 2];
        self.read(at, &mut b);
        u16::from_le_bytes(b)
    }
}

/// Reads bytes off the front of the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

const FUZZ_MEM: usize = 1 << 20;
const FUZZ_QSIZE: u16 = 16;
const FUZZ_DATA: u64 = 0x4000;

/// Fills a queue's descriptor table and avail ring, and the buffer area, from fuzz input.
/// Addresses fall mostly inside guest memory, sometimes just past it or anywhere.
fn fuzz_queue(input: &mut Input<'_>, d: &mut Driver<'_>) {
    let ndesc = input.u8() % (FUZZ_QSIZE as u8 + 1);
    for i in 0..ndesc {
        let sel = input.u8();
        let raw = u64::from(input.u32());
        let addr = match sel & 3 {
            0 | 1 => FUZZ_DATA + raw % (FUZZ_MEM as u64 - FUZZ_DATA),
            2 => FUZZ_MEM as u64 - (raw & 0xfff),
            _ => raw << 20 | raw,
        };
        let len = match sel >> 2 & 3 {
            0 => input.u8() as u32,
            1 => input.u16() as u32,
            2 => input.u32() % 70_000,
            _ => input.u32(),
        };
        let flags = input.u8() as u16 & (F_NEXT | F_WRITE | F_INDIRECT);
        let next = if sel & 0x10 != 0 {
            input.u16()
        } else {
            u16::from(i + 1) % FUZZ_QSIZE
        };
        let slot = u16::from(i);
        if let Err(e) = d.vq.desc_table().store(
            slot,
            RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next)),
        ) {
            panic!("store descriptor: {e:?}");
        }
    }
    let navail = input.u8() % (FUZZ_QSIZE as u8 + 1);
    for _ in 0..navail {
        let head = u16::from(input.u8());
        d.publish(if head & 0x80 != 0 {
            head
        } else {
            head % FUZZ_QSIZE
        });
    }
    if input.u8() == 0xff {
        // an avail index far ahead of the ring
        d.write(d.avail_addr() + 2, &input.u16().to_le_bytes());
    }
    let take = input.0.len().min(8192);
    d.write(FUZZ_DATA, &input.0[..take]);
    input.0 = &input.0[take..];
}

fn fuzz_rig(features: u64, mem: &Mmap) -> (Gm, Driver<'_>, Driver<'_>) {
    let gm: Gm = GuestMemoryAtomic::new(mem.clone());
    let rx = Driver::new(mem, 0, FUZZ_QSIZE, FUZZ_DATA);
    let tx = Driver::new(mem, 0x1000, FUZZ_QSIZE, FUZZ_DATA);
    let _ = features;
    (gm, rx, tx)
}

fn fuzz_features(b: u8) -> u64 {
    use super::features::*;
    let mut f = 0;
    for (bit, feat) in [
        VERSION_1, MRG_RXBUF, CSUM, GUEST_CSUM, HOST_TSO4, HOST_TSO6, GUEST_TSO4, EVENT_IDX,
    ]
    .iter()
    .enumerate()
    {
        if b & (1 << bit) != 0 {
            f |= feat;
        }
    }
    f
}

/// Runs the device's TX path (guest → switch) over rings and buffers made from `data`.
/// Must never panic, whatever the bytes.
pub fn fuzz_tx(data: &[u8]) {
    let mut input = Input(data);
    let features = fuzz_features(input.u8());
    let mem = guest_memory(FUZZ_MEM);
    let (gm, rx, mut tx) = fuzz_rig(features, &mem);
    fuzz_queue(&mut input, &mut tx);
    let event_idx = features & super::features::EVENT_IDX != 0;
    let vrings = vec![
        vring_for(&gm, &rx, FUZZ_QSIZE, event_idx),
        vring_for(&gm, &tx, FUZZ_QSIZE, event_idx),
    ];
    let shared = shared_with(features, vrings, gm);
    let mut buf = vec![0u8; VNET_HDR_LEN + super::MAX_FRAME + 64];
    for _ in 0..2 * FUZZ_QSIZE {
        match shared.recv(&mut buf) {
            Ok(n) => assert!((VNET_HDR_LEN..=buf.len()).contains(&n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv error {e}"),
        }
    }
}

/// Runs the device's RX path (switch → guest) over rings and buffers made from `data`, with
/// a frame (header + bytes) taken from `data` too. Must never panic.
pub fn fuzz_rx(data: &[u8]) {
    let mut input = Input(data);
    let features = fuzz_features(input.u8());
    let mem = guest_memory(FUZZ_MEM);
    let (gm, mut rx, tx) = fuzz_rig(features, &mem);
    let flen = input.u16() as usize;
    let mut pkt = vec![0u8; VNET_HDR_LEN + flen];
    for b in pkt.iter_mut().take(VNET_HDR_LEN + 64) {
        *b = input.u8();
    }
    fuzz_queue(&mut input, &mut rx);
    let event_idx = features & super::features::EVENT_IDX != 0;
    let vrings = vec![
        vring_for(&gm, &rx, FUZZ_QSIZE, event_idx),
        vring_for(&gm, &tx, FUZZ_QSIZE, event_idx),
    ];
    let shared = shared_with(features, vrings, gm);
    for _ in 0..4 {
        let _ = shared.send(&pkt);
    }
}
