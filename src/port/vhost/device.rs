//! The virtio-net device proper: frames out of the guest's TX rings and into its RX rings.
//! No fds here except the call eventfd writes done through the vring (rust-vmm's).
//!
//! Descriptor chains are walked with `virtio-queue`; guest memory is read and written with
//! `vm-memory`, which checks every address against the guest's memory map. What this file
//! adds is the virtio-net layout (header conversion, mergeable buffers) and the checks a
//! device must make on what an untrusted driver hands it.

use std::io;
use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};

use vhost_user_backend::{VringMutex, VringT};
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};

use super::{Shared, VhostDrop, MAX_FRAME};
use crate::buf::PageBuf;
use crate::offload::{self, VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, VNET_HDR_LEN};

/// Guest memory as rust-vmm's handler publishes it (swapped on SET_MEM_TABLE/ADD_MEM_REG).
pub(super) type Gm = GuestMemoryAtomic<GuestMemoryMmap<()>>;
/// One virtqueue with its eventfds.
pub(super) type Vring = VringMutex<Gm>;
type Mem = GuestMemoryMmap<()>;

/// `Shared::tx_checked` value meaning "take the ring's used index at the next pop".
pub(super) const TX_RESYNC: u32 = 1 << 16;

/// Length of the virtio_net_hdr with `num_buffers` (VERSION_1 or MRG_RXBUF).
pub const VNET_HDR_MRG_LEN: usize = 12;

/// Feature bits: what the port offers and how negotiated bits are read.
pub mod features {
    use super::super::VhostConfig;
    use vhost::vhost_user::message::VhostUserVirtioFeatures;
    use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
    use virtio_bindings::bindings::virtio_net::{
        VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
        VIRTIO_NET_F_MRG_RXBUF,
    };
    use virtio_bindings::bindings::virtio_ring::{
        VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
    };

    /// VIRTIO_F_VERSION_1.
    pub const VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
    /// VIRTIO_NET_F_MRG_RXBUF.
    pub const MRG_RXBUF: u64 = 1 << VIRTIO_NET_F_MRG_RXBUF;
    /// VIRTIO_NET_F_CSUM: the guest may send partial checksums.
    pub const CSUM: u64 = 1 << VIRTIO_NET_F_CSUM;
    /// VIRTIO_NET_F_GUEST_CSUM: the guest takes partial checksums.
    pub const GUEST_CSUM: u64 = 1 << VIRTIO_NET_F_GUEST_CSUM;
    /// VIRTIO_NET_F_HOST_TSO4.
    pub const HOST_TSO4: u64 = 1 << VIRTIO_NET_F_HOST_TSO4;
    /// VIRTIO_NET_F_HOST_TSO6.
    pub const HOST_TSO6: u64 = 1 << VIRTIO_NET_F_HOST_TSO6;
    /// VIRTIO_NET_F_GUEST_TSO4.
    pub const GUEST_TSO4: u64 = 1 << VIRTIO_NET_F_GUEST_TSO4;
    /// VIRTIO_NET_F_GUEST_TSO6.
    pub const GUEST_TSO6: u64 = 1 << VIRTIO_NET_F_GUEST_TSO6;
    /// VIRTIO_RING_F_EVENT_IDX.
    pub const EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;
    /// VIRTIO_RING_F_INDIRECT_DESC.
    pub const INDIRECT_DESC: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;
    /// VHOST_USER_F_PROTOCOL_FEATURES.
    pub const PROTOCOL_FEATURES: u64 = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
    /// Offloads offered with `offload` on.
    pub const OFFLOADS: u64 = CSUM | GUEST_CSUM | HOST_TSO4 | HOST_TSO6 | GUEST_TSO4 | GUEST_TSO6;

    /// The features a port with this configuration offers. MAC, STATUS, CTRL_VQ and MQ are
    /// QEMU's own (it answers the guest's config space and control queue itself and masks
    /// only the bits it forwards to a vhost-user back-end), so they are not offered here.
    /// VHOST_USER_F_PROTOCOL_FEATURES is needed by QEMU 7.2 (see `compat`).
    pub fn offered(cfg: &VhostConfig) -> u64 {
        let mut f = VERSION_1 | MRG_RXBUF | EVENT_IDX | INDIRECT_DESC | PROTOCOL_FEATURES;
        if cfg.offload {
            f |= OFFLOADS;
        }
        f
    }
}

/// The negotiated feature bits, as the frame path reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Negotiated(pub u64);

impl Negotiated {
    fn has(self, f: u64) -> bool {
        self.0 & f == f
    }
    /// Length of the guest's virtio_net_hdr.
    pub(super) fn hdr_len(self) -> usize {
        if self.0 & (features::VERSION_1 | features::MRG_RXBUF) != 0 {
            VNET_HDR_MRG_LEN
        } else {
            VNET_HDR_LEN
        }
    }
    pub(super) fn mergeable(self) -> bool {
        self.has(features::MRG_RXBUF)
    }
    /// Whether the guest may send a frame with this header (HOST_* features).
    fn guest_may_send(self, h: &VnetHdr) -> bool {
        if h.flags & F_NEEDS_CSUM != 0 && !self.has(features::CSUM) {
            return false;
        }
        if h.gso_type & GSO_ECN != 0 {
            return false; // HOST_ECN is not offered
        }
        match h.gso() {
            GSO_NONE => true,
            offload::GSO_TCPV4 => self.has(features::HOST_TSO4),
            offload::GSO_TCPV6 => self.has(features::HOST_TSO6),
            _ => false,
        }
    }
    /// Whether the guest takes a frame with this header as it is (GUEST_* features).
    fn guest_takes(self, h: &VnetHdr) -> bool {
        if h.flags & F_NEEDS_CSUM != 0 && !self.has(features::GUEST_CSUM) {
            return false;
        }
        match h.gso() {
            GSO_NONE => true,
            _ if h.gso_type & GSO_ECN != 0 => false, // GUEST_ECN is not offered
            offload::GSO_TCPV4 => self.has(features::GUEST_TSO4),
            offload::GSO_TCPV6 => self.has(features::GUEST_TSO6),
            _ => false,
        }
    }
}

/// Buffers of one RX queue, allocated when the port is created.
pub(super) struct RxSide {
    /// Software segmentation/checksum output ([`offload::finish`]).
    scratch: PageBuf,
    /// `(head, written length)` of the chains one frame fills; capacity = largest ring.
    used: Vec<(u16, u32)>,
    /// Used index at the last notification check; `None` after the ring (re)started.
    pub(super) checked: Option<Wrapping<u16>>,
}

impl RxSide {
    /// Panics unless the scratch buffer starts at a page (see [`crate::buf`]); for tests.
    #[cfg(test)]
    pub(super) fn assert_page_aligned(&self) {
        assert_eq!(crate::buf::page_offset(self.scratch.as_ptr()), 0);
    }

    pub(super) fn new(queue_size: u16) -> RxSide {
        RxSide {
            scratch: PageBuf::new(offload::SEG_BUF),
            used: Vec::with_capacity(queue_size as usize),
            checked: None,
        }
    }
}

/// Whether the driver wants an interrupt for the used entries added since `checked`
/// (EVENT_IDX `used_event`, else the NO_INTERRUPT flag). Updates `checked`.
pub(super) fn needs_signal(q: &Queue, mem: &Mem, checked: &mut Wrapping<u16>) -> bool {
    // order the used-index store before the read of the driver's suppression state
    fence(Ordering::SeqCst);
    let new = Wrapping(q.next_used());
    let old = std::mem::replace(checked, new);
    if new == old {
        return false;
    }
    let avail = q.avail_ring();
    if q.event_idx_enabled() {
        let at = avail
            .checked_add(4 + 2 * u64::from(q.size()))
            .map(GuestAddress);
        match at.and_then(|a| mem.load::<u16>(a, Ordering::Relaxed).ok()) {
            Some(ev) => {
                let ev = Wrapping(u16::from_le(ev));
                (new - ev - Wrapping(1)).0 < (new - old).0
            }
            None => true,
        }
    } else {
        match mem.load::<u16>(GuestAddress(avail), Ordering::Relaxed) {
            Ok(flags) => u16::from_le(flags) & 1 == 0, // VRING_AVAIL_F_NO_INTERRUPT
            Err(_) => true,
        }
    }
}

/// Publishes `elems` in the used ring with one used-index store, so the driver sees all the
/// buffers of a frame at once (`virtio-queue`'s `add_used` stores the index per entry).
/// Entries with a head outside the ring are skipped.
fn publish_used(q: &mut Queue, mem: &Mem, elems: &[(u16, u32)]) {
    let size = q.size();
    let base = q.used_ring();
    let mut idx = q.next_used();
    for &(id, len) in elems {
        if id >= size || size == 0 {
            continue;
        }
        let slot = u64::from(idx % size);
        let Some(at) = base.checked_add(4 + 8 * slot) else {
            continue;
        };
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&u32::from(id).to_le_bytes());
        e[4..].copy_from_slice(&len.to_le_bytes());
        if mem.write_slice(&e, GuestAddress(at)).is_ok() {
            idx = idx.wrapping_add(1);
        }
    }
    if let Some(at) = base.checked_add(2) {
        let _ = mem.store(idx.to_le(), GuestAddress(at), Ordering::Release);
    }
    q.set_next_used(idx);
}

/// Copies one TX chain into `buf` as the 10-byte virtio_net_hdr and the frame; returns the
/// length written.
pub(super) fn read_tx_chain(
    chain: DescriptorChain<&Mem>,
    mem: &Mem,
    neg: Negotiated,
    buf: &mut [u8],
) -> Result<usize, VhostDrop> {
    let vlen = neg.hdr_len();
    let cap = buf
        .len()
        .checked_sub(VNET_HDR_LEN)
        .ok_or(VhostDrop::Oversized)?
        .min(MAX_FRAME);
    let mut hdr = [0u8; VNET_HDR_MRG_LEN];
    let mut pos = 0usize;
    let mut any = false;
    let mut more = false;
    for desc in chain {
        any = true;
        more = desc.has_next();
        if desc.is_write_only() {
            return Err(VhostDrop::BadDescriptor);
        }
        let mut addr = desc.addr();
        let mut len = desc.len() as usize;
        if pos < vlen {
            let n = len.min(vlen - pos);
            mem.read_slice(&mut hdr[pos..pos + n], addr)
                .map_err(|_| VhostDrop::BadDescriptor)?;
            pos += n;
            len -= n;
            addr = addr
                .0
                .checked_add(n as u64)
                .map(GuestAddress)
                .ok_or(VhostDrop::BadDescriptor)?;
        }
        if len > 0 {
            let off = pos - vlen;
            if len > cap - off {
                return Err(VhostDrop::Oversized);
            }
            let dst = &mut buf[VNET_HDR_LEN + off..VNET_HDR_LEN + off + len];
            mem.read_slice(dst, addr)
                .map_err(|_| VhostDrop::BadDescriptor)?;
            pos += len;
        }
    }
    // The chain iterator stops on a bad link, a loop or a bad indirect table: a chain that
    // ends on a descriptor that still points on was cut short.
    if !any || more {
        return Err(VhostDrop::BadDescriptor);
    }
    if pos < vlen {
        return Err(VhostDrop::TooShort);
    }
    let frame_len = pos - vlen;
    let h = VnetHdr::parse(&hdr).map_err(|_| VhostDrop::BadHeader)?;
    if h.validate(frame_len).is_err() || !neg.guest_may_send(&h) {
        return Err(VhostDrop::BadHeader);
    }
    h.write(&mut buf[..VNET_HDR_LEN]);
    Ok(VNET_HDR_LEN + frame_len)
}

/// Pops TX chains until one holds a frame, which is copied into `buf`; chains that hold none
/// are returned to the guest and counted. `None`: the ring is empty.
pub(super) fn pop_tx(
    q: &mut Queue,
    mem: &Mem,
    neg: Negotiated,
    buf: &mut [u8],
    stats: &super::VhostStats,
) -> Option<usize> {
    loop {
        let chain = match q.iter(mem) {
            Ok(mut it) => it.next(),
            Err(virtio_queue::Error::QueueNotReady) => None,
            Err(_) => {
                // an avail index more than a ring ahead: the driver is broken
                stats.drop(VhostDrop::BadDescriptor);
                None
            }
        }?;
        let head = chain.head_index();
        let r = read_tx_chain(chain, mem, neg, buf);
        // A head outside the ring cannot be returned; the driver loses that buffer.
        let _ = q.add_used(mem, head, 0);
        match r {
            Ok(n) => return Some(n),
            Err(d) => stats.drop(d),
        }
    }
}

/// Fills one RX chain with the next bytes of `[header][frame]` from logical offset `*done`;
/// returns the bytes written into it. Records where header bytes 10 and 11 (`num_buffers`)
/// landed.
fn fill_chain(
    chain: DescriptorChain<&Mem>,
    mem: &Mem,
    header: &[u8],
    frame: &[u8],
    done: &mut usize,
    nb_at: &mut [u64; 2],
) -> Result<u32, ()> {
    let vlen = header.len();
    let total = vlen + frame.len();
    let mut written = 0u32;
    let mut any = false;
    let mut more = false;
    for desc in chain {
        any = true;
        more = desc.has_next();
        if !desc.is_write_only() {
            return Err(());
        }
        let mut addr = desc.addr().0;
        let mut left = desc.len() as usize;
        while left > 0 && *done < total {
            let in_hdr = *done < vlen;
            let src = if in_hdr {
                &header[*done..]
            } else {
                &frame[*done - vlen..]
            };
            let n = left.min(src.len());
            mem.write_slice(&src[..n], GuestAddress(addr))
                .map_err(|_| ())?;
            if in_hdr {
                for (i, at) in nb_at.iter_mut().enumerate() {
                    let off = VNET_HDR_LEN + i;
                    if (*done..*done + n).contains(&off) {
                        *at = addr + (off - *done) as u64;
                    }
                }
            }
            *done += n;
            left -= n;
            written += n as u32;
            addr = addr.checked_add(n as u64).ok_or(())?;
        }
        if *done == total {
            return Ok(written);
        }
    }
    if !any || more {
        return Err(());
    }
    Ok(written)
}

/// Writes one frame with its 10-byte header into the RX queue `q`, in as many chains as it
/// needs (mergeable buffers), and publishes them at once.
fn write_rx(
    q: &mut Queue,
    mem: &Mem,
    neg: Negotiated,
    hdr: &VnetHdr,
    frame: &[u8],
    used: &mut Vec<(u16, u32)>,
) -> Result<(), VhostDrop> {
    let vlen = neg.hdr_len();
    let mut header = [0u8; VNET_HDR_MRG_LEN];
    hdr.write(&mut header[..VNET_HDR_LEN]);
    let header = &header[..vlen];
    let total = vlen + frame.len();
    let start = q.next_avail();
    let mut nb_at = [0u64; 2];
    let mut done = 0usize;
    used.clear();
    while done < total {
        if (!used.is_empty() && !neg.mergeable()) || used.len() == used.capacity() {
            q.set_next_avail(start);
            return Err(if neg.mergeable() {
                VhostDrop::QueueFull
            } else {
                VhostDrop::BufferTooSmall
            });
        }
        let chain = match q.iter(mem) {
            Ok(mut it) => it.next(),
            Err(_) => {
                q.set_next_avail(start);
                return Err(VhostDrop::BadDescriptor);
            }
        };
        let Some(chain) = chain else {
            q.set_next_avail(start);
            return Err(VhostDrop::QueueFull);
        };
        let head = chain.head_index();
        match fill_chain(chain, mem, header, frame, &mut done, &mut nb_at) {
            Ok(n) => used.push((head, n)),
            Err(()) => {
                // Give every chain of this frame back empty (the driver drops them as runts)
                // so a bad buffer cannot block the ring.
                used.push((head, 0));
                used.iter_mut().for_each(|u| u.1 = 0);
                publish_used(q, mem, used);
                return Err(VhostDrop::BadDescriptor);
            }
        }
    }
    if vlen == VNET_HDR_MRG_LEN {
        let nb = (used.len() as u16).to_le_bytes();
        for (b, at) in nb.iter().zip(nb_at) {
            let _ = mem.write_slice(std::slice::from_ref(b), GuestAddress(at));
        }
    }
    publish_used(q, mem, used);
    Ok(())
}

/// Puts one frame (10-byte header + frame) into the RX queue `q`, finishing offloads the
/// guest did not negotiate in software. Returns the reason of a drop.
pub(super) fn push_rx(
    q: &mut Queue,
    mem: &Mem,
    neg: Negotiated,
    side: &mut RxSide,
    pkt: &[u8],
) -> Result<(), VhostDrop> {
    let mut hdr = VnetHdr::parse(pkt).map_err(|_| VhostDrop::BadHeader)?;
    let frame = &pkt[VNET_HDR_LEN..];
    if frame.len() > MAX_FRAME {
        return Err(VhostDrop::Oversized);
    }
    if !neg.has(features::GUEST_CSUM) {
        hdr.flags &= !F_DATA_VALID;
    }
    if neg.guest_takes(&hdr) {
        return write_rx(q, mem, neg, &hdr, frame, &mut side.used);
    }
    let RxSide { scratch, used, .. } = side;
    let plain = VnetHdr::default();
    match offload::finish(&hdr, frame, scratch, |seg| {
        write_rx(q, mem, neg, &plain, seg, used)
    }) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(d)) => Err(d),
        Err(_) => Err(VhostDrop::BadHeader),
    }
}

fn drop_err(d: VhostDrop) -> io::Error {
    match d {
        VhostDrop::QueueFull => io::ErrorKind::WouldBlock.into(),
        VhostDrop::NotReady => io::Error::from_raw_os_error(libc::ENETDOWN),
        VhostDrop::Oversized | VhostDrop::BufferTooSmall => {
            io::Error::from_raw_os_error(libc::EMSGSIZE)
        }
        _ => io::Error::from_raw_os_error(libc::EINVAL),
    }
}

fn ready(v: &Vring) -> bool {
    let s = v.get_ref();
    s.get_queue().ready() && s.is_enabled()
}

impl Shared {
    /// `Port::recv`: the next guest TX frame, round-robin over the queue pairs.
    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let guard = self.conn.read().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = guard.as_ref() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let mem = conn.mem.memory();
        let neg = self.negotiated();
        let pairs = conn.vrings.len() / 2;
        let first = self.tx_cursor.load(Ordering::Relaxed);
        for k in 0..pairs {
            let p = (first + k) % pairs;
            let Some(v) = conn.vrings.get(2 * p + 1) else {
                continue;
            };
            let mut st = v.get_mut();
            if !st.get_queue().ready() || !st.is_enabled() {
                continue;
            }
            let checked = &self.tx_checked[p];
            if checked.load(Ordering::Relaxed) == TX_RESYNC {
                checked.store(u32::from(st.get_queue().next_used()), Ordering::Relaxed);
            }
            if let Some(n) = pop_tx(st.get_queue_mut(), &mem, neg, buf, &self.stats) {
                if pairs > 1 {
                    self.tx_cursor.store(p + 1, Ordering::Relaxed);
                }
                return Ok(n);
            }
        }
        drop(mem);
        drop(guard);
        self.flush_tx();
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Signals the guest for the TX buffers returned since the last check, if it asked.
    pub(super) fn flush_tx(&self) {
        let guard = self.conn.read().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = guard.as_ref() else { return };
        let mem = conn.mem.memory();
        for (p, checked) in self.tx_checked.iter().enumerate() {
            let Some(v) = conn.vrings.get(2 * p + 1) else {
                continue;
            };
            let st = v.get_ref();
            if !st.get_queue().ready() {
                continue;
            }
            let c = checked.load(Ordering::Relaxed);
            if c == TX_RESYNC {
                continue; // nothing popped since the ring (re)started
            }
            let mut c = Wrapping(c as u16);
            if needs_signal(st.get_queue(), &mem, &mut c) && st.signal_used_queue().is_ok() {
                self.stats.signals.fetch_add(1, Ordering::Relaxed);
            }
            checked.store(u32::from(c.0), Ordering::Relaxed);
        }
    }

    /// `Port::send`: one frame into the guest's RX ring.
    pub(super) fn send(&self, pkt: &[u8]) -> io::Result<()> {
        let r = self.try_send(pkt);
        r.map_err(|d| {
            self.stats.drop(d);
            drop_err(d)
        })
    }

    fn try_send(&self, pkt: &[u8]) -> Result<(), VhostDrop> {
        if pkt.len() < VNET_HDR_LEN {
            return Err(VhostDrop::BadHeader);
        }
        let guard = self.conn.read().unwrap_or_else(|p| p.into_inner());
        let conn = guard.as_ref().ok_or(VhostDrop::NotReady)?;
        let pairs = conn.vrings.len() / 2;
        let mut p = if pairs > 1 { flow_hash(pkt) % pairs } else { 0 };
        if !conn.vrings.get(2 * p).is_some_and(ready) {
            p = 0;
        }
        let v = conn.vrings.get(2 * p).ok_or(VhostDrop::NotReady)?;
        let side = self.rx.get(p).ok_or(VhostDrop::NotReady)?;
        let mut side = side.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = v.get_mut();
        if !st.get_queue().ready() || !st.is_enabled() {
            return Err(VhostDrop::NotReady);
        }
        let mem = conn.mem.memory();
        let mut checked = side.checked.unwrap_or(Wrapping(st.get_queue().next_used()));
        let r = push_rx(st.get_queue_mut(), &mem, self.negotiated(), &mut side, pkt);
        if needs_signal(st.get_queue(), &mem, &mut checked) && st.signal_used_queue().is_ok() {
            self.stats.signals.fetch_add(1, Ordering::Relaxed);
        }
        side.checked = Some(checked);
        r
    }
}

/// Spreads frames over RX queue pairs by MAC pair, so one conversation keeps its order.
fn flow_hash(pkt: &[u8]) -> usize {
    let f = &pkt[VNET_HDR_LEN.min(pkt.len())..];
    f.iter()
        .take(12)
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize))
}
