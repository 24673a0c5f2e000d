//! Forwarding of one frame: the decision, then every transmit, on the thread that read it.
//!
//! Counters are added up in a [`Scratch`] per receive loop and published to the shared
//! atomics once per batch ([`Switch::publish`]), so dataplane threads that forward to the
//! same ports do not bounce counter cache lines frame by frame. Drops are rare and are counted
//! at once.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use super::mcast::McastRoute;
use super::registry::{LinkState, PortHandle, Registry, MAX_PORTS};
use super::Switch;
use crate::buf::PageBuf;
use crate::forwarding::{
    decide, exceeds_mtu, flood_eligible, Decision, FloodKind, PortFlags, RxDrop, Settings, TxDrop,
};
use crate::offload::{self, VnetHdr, GSO_NONE, VNET_HDR_LEN};
use crate::port::{classify, IoClass};
use crate::stp::PortState;
use crate::types::Timestamp;
use crate::vlan::{self, Classified, Protocol, TagAction, VlanDrop};
use crate::wire::EthernetFrame;
use crate::wire::VLAN_TAG_LEN;

/// Room before each received frame for a virtio_net_hdr, so a frame from a plain port can go
/// to an offload port with a zero header and no copy.
pub(super) const HEADROOM: usize = VNET_HDR_LEN;

/// Ports one batch adds counts for before it publishes early.
const TALLY_PORTS: usize = 256;
const NO_ENTRY: u16 = u16::MAX;

/// Counts of one port within a batch.
#[derive(Clone, Copy, Debug, Default)]
struct PortTally {
    slot: u16,
    rx_frames: u64,
    rx_bytes: u64,
    rx_forwarded: u64,
    rx_flooded: u64,
    tx_frames: u64,
    tx_bytes: u64,
    /// A frame of this batch passed the port's `gone` check, so it may have learned.
    may_learn: bool,
}

/// A copy of the frame being forwarded with its VLAN tag changed for egress ports that want
/// another form than the one received (built at most once per frame and form).
struct Variant {
    /// Room for a pushed tag, the virtio_net_hdr, then the frame; page-aligned (see
    /// [`crate::buf`]).
    buf: PageBuf,
    /// What `buf` holds: the action applied, and where the header + frame are.
    built: Option<(TagAction, usize, usize, VnetHdr)>,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            buf: PageBuf::new(VLAN_TAG_LEN + HEADROOM + super::RX_BUF),
            built: None,
        }
    }
}

impl Variant {
    /// The frame of `out` changed by `action` (header + frame, and the adjusted header), built
    /// on first use for this frame.
    fn get(
        &mut self,
        out: &Outgoing<'_>,
        action: TagAction,
        proto: Protocol,
    ) -> Option<(&[u8], VnetHdr)> {
        if !matches!(self.built, Some((a, ..)) if a == action) {
            let n = out.pkt.len();
            let start = VLAN_TAG_LEN + HEADROOM;
            self.buf
                .get_mut(VLAN_TAG_LEN..VLAN_TAG_LEN + n)?
                .copy_from_slice(out.pkt);
            let mut hdr = out.hdr;
            let (s, l) =
                vlan::apply_tag_action(&mut self.buf, start, n - HEADROOM, proto, action, &mut hdr)
                    .ok()?;
            hdr.write(&mut self.buf[s - HEADROOM..s]);
            self.built = Some((action, s, l, hdr));
        }
        let (_, s, l, hdr) = self.built?;
        Some((&self.buf[s - HEADROOM..s + l], hdr))
    }
}

/// The frame path's per-thread working space, allocated once: a scratch buffer for software
/// segmentation, VLAN tag changes, and the counters of the current batch.
pub struct Scratch {
    /// Software segmentation output, page-aligned (see [`crate::buf`]).
    pub(super) seg: PageBuf,
    variant: Variant,
    /// Frames and bytes of the VLAN last classified, not yet published.
    vlan_tally: (u16, u64, u64),
    /// Index into `ports` by port slot, `NO_ENTRY` if the slot has no counts yet.
    index: Box<[u16]>,
    ports: Vec<PortTally>,
    forwarded: u64,
    flooded: [u64; 3],
    /// The current frame's capture timestamp (ns since the epoch; 0: not read yet).
    pub(super) tap_ts: u64,
    /// Mirrors that already copied the current frame (bit i: mirror i).
    pub(super) mirrored: u32,
    /// A frame that may have learned came from a port the batch had no tally for.
    untallied_learn: bool,
    /// Segments written in software segmentation during this batch (see [`SEG_BUDGET`]).
    pub(super) seg_work: usize,
    /// The multicast forwarding view this thread read last, with its generation.
    pub(super) mview: Option<(u64, std::sync::Arc<crate::mcast::ForwardingView>)>,
    /// The VLAN the next frame handled belongs to whatever its bytes say: a frame of a
    /// `vxlan` port's mapped VNI (`vni-map`), which crossed the tunnel untagged. Taken by
    /// [`Switch::handle_frame`].
    pub(super) ingress_vid: Option<u16>,
}

/// Software segments one batch may write before the batch ends early and the worker serves
/// its other ports: a guest sending frames at the GSO floor ([`offload::MAX_GSO_SEGS`] writes
/// per plain egress port each) cannot hold a worker for a whole batch of them.
pub const SEG_BUDGET: usize = 2 * offload::MAX_GSO_SEGS;

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            seg: PageBuf::new(offload::SEG_BUF),
            variant: Variant::default(),
            vlan_tally: (0, 0, 0),
            index: vec![NO_ENTRY; MAX_PORTS].into_boxed_slice(),
            ports: Vec::with_capacity(TALLY_PORTS),
            forwarded: 0,
            flooded: [0; 3],
            tap_ts: 0,
            mirrored: 0,
            untallied_learn: false,
            seg_work: 0,
            mview: None,
            ingress_vid: None,
        }
    }
}

impl Scratch {
    /// Panics unless every buffer frames are written from starts at a page (see
    /// [`crate::buf`]); for tests.
    pub fn assert_page_aligned(&self) {
        use crate::buf::page_offset;
        assert_eq!(page_offset(self.seg.as_ptr()), 0, "segmentation scratch");
        assert_eq!(page_offset(self.variant.buf.as_ptr()), 0, "VLAN scratch");
    }

    /// The tally of the port in `slot`, or `None` when the batch already counts
    /// `TALLY_PORTS` ports (the caller then counts straight into the atomics).
    fn port(&mut self, slot: usize) -> Option<&mut PortTally> {
        let i = *self.index.get(slot)?;
        if i != NO_ENTRY {
            return self.ports.get_mut(i as usize);
        }
        if self.ports.len() == TALLY_PORTS {
            return None;
        }
        self.index[slot] = self.ports.len() as u16;
        self.ports.push(PortTally {
            slot: slot as u16,
            ..PortTally::default()
        });
        self.ports.last_mut()
    }
}

/// One received frame on its way out: the virtio_net_hdr, header + frame as one slice (for
/// offload ports), the checked frame, and its VLAN (with filtering on).
#[derive(Clone, Copy)]
pub(super) struct Outgoing<'a> {
    pub(super) hdr: VnetHdr,
    pub(super) pkt: &'a [u8],
    pub(super) frame: EthernetFrame<&'a [u8]>,
    pub(super) vlan: Option<Classified>,
}

impl Switch {
    /// Handles one received frame to the end. `pkt` is a 10-byte virtio_net_hdr (all zero for
    /// a plain port) followed by the frame. Counts go to `w` until [`Switch::publish`].
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-frame context, kept flat for speed"
    )]
    pub fn handle_frame(
        &self,
        reg: &Registry,
        settings: &Settings,
        ingress: &PortHandle,
        pkt: &[u8],
        truncated: bool,
        now: Timestamp,
        w: &mut Scratch,
    ) {
        let c = &ingress.counters;
        let forced_vid = w.ingress_vid.take();
        let bytes = pkt.get(HEADROOM..).unwrap_or_default();
        let gone = ingress.state() == LinkState::Gone;
        match w.port(Registry::slot(ingress.id)) {
            Some(t) => {
                t.rx_frames += 1;
                t.rx_bytes += bytes.len() as u64;
                t.may_learn |= !gone;
            }
            None => {
                c.rx_frames.fetch_add(1, Relaxed);
                c.rx_bytes.fetch_add(bytes.len() as u64, Relaxed);
                w.untallied_learn |= !gone;
            }
        }
        if gone {
            // read by a batch that began before the port was removed
            return c.rx_drop(RxDrop::NoPort);
        }
        if truncated {
            return c.rx_drop(RxDrop::Oversized);
        }
        // Captures see every frame read; a mirror output's frames go no further.
        let taps_armed = reg.taps().armed();
        if taps_armed && self.tap_ingress(reg, ingress, bytes, w) {
            return c.rx_drop(RxDrop::MirrorOutput);
        }
        let hdr = match VnetHdr::parse(pkt) {
            Ok(h) if h.validate(bytes.len()).is_ok() => h,
            _ => return c.rx_drop(RxDrop::BadVnetHdr),
        };
        let frame = match EthernetFrame::new_checked(bytes) {
            Ok(f) => f,
            Err(crate::wire::FrameError::TooShort) => return c.rx_drop(RxDrop::TooShort),
            Err(crate::wire::FrameError::TruncatedVlan) => return c.rx_drop(RxDrop::TruncatedVlan),
        };
        // A GSO frame is bounded here, once, not at each egress that would segment it: a
        // guest's 64 KiB frame with a gso_size of 1 must not cost 65,000 writes per port.
        if hdr.gso() != GSO_NONE && offload::check_gso(&hdr, bytes).is_err() {
            return c.rx_drop(RxDrop::BadGso);
        }
        if taps_armed {
            let received = Outgoing {
                hdr,
                pkt,
                frame,
                vlan: None,
            };
            self.mirror_ingress(reg, ingress, &received, w);
        }
        // The spanning tree: BPDUs are its own (consumed, whatever the port's state); a port
        // that is not forwarding forwards nothing, and learns only in the learning state.
        let mut learn_only = false;
        if settings.stp {
            if frame.dst().link_local_group() == Some(0) {
                self.queue_bpdu(ingress.id, bytes);
                return c.rx_drop(RxDrop::Bpdu);
            }
            match ingress.stp_gate.get() {
                PortState::Forwarding => {}
                PortState::Learning => learn_only = true,
                PortState::Discarding => return c.rx_drop(RxDrop::StpDiscarding),
            }
        }
        let vlan = if let (true, Some(vid)) = (settings.vlan_filtering, forced_vid) {
            // a mapped VNI's frame: in its VLAN, as Linux's vnifilter tunnel_info classifies
            // it; an inner tag stays payload
            if !reg.vlans(ingress.id).is_member(vid) {
                return c.rx_drop(RxDrop::VlanFiltered);
            }
            self.count_vlan(w, vid, bytes.len());
            Some(Classified {
                vid,
                pcp: 0,
                dei: false,
                tag: vlan::TagState::Untagged,
            })
        } else if forced_vid.is_some() {
            // VLAN filtering turned off under a vni-map: the VLAN is nowhere to go
            return c.rx_drop(RxDrop::VlanFiltered);
        } else if settings.vlan_filtering {
            match vlan::classify(bytes, settings.vlan_protocol, reg.vlans(ingress.id)) {
                Ok(cl) => {
                    self.count_vlan(w, cl.vid, bytes.len());
                    Some(cl)
                }
                Err(VlanDrop::Filtered) => return c.rx_drop(RxDrop::VlanFiltered),
                Err(VlanDrop::NoPvid) => return c.rx_drop(RxDrop::VlanNoPvid),
                Err(VlanDrop::Truncated) => return c.rx_drop(RxDrop::TruncatedVlan),
            }
        } else {
            None
        };
        let vid = vlan.map_or(0, |cl| cl.vid);
        let in_flags = ingress.flags.get();
        let out = Outgoing {
            hdr,
            pkt,
            frame,
            vlan,
        };
        let in_slot = Registry::slot(ingress.id);
        w.variant.built = None;
        let decision = decide(
            settings, &self.fdb, ingress.id, in_flags, &frame, vid, reg, now,
        );
        if learn_only {
            // learned above; a port in the learning state forwards nothing
            return c.rx_drop(RxDrop::StpDiscarding);
        }
        // ARP/ND suppression: answered here, and kept from `neigh-suppress` ports; not for a
        // frame the bridge drops (an unauthorised source on a `locked` port, link-local,
        // isolated, VEPA), which Linux drops in br_handle_frame_finish before
        // br_do_proxy_suppress_arp: it neither teaches a binding nor gets an answer
        let not_to_suppress = !matches!(decision, Decision::Drop(_))
            && self.neigh_frame(reg, settings, ingress, in_flags, &out, now, w);
        match decision {
            Decision::Forward(to) => match reg.get(to) {
                Some(h) => {
                    w.forwarded += 1;
                    match w.port(in_slot) {
                        Some(t) => t.rx_forwarded += 1,
                        None => {
                            c.rx_forwarded.fetch_add(1, Relaxed);
                        }
                    }
                    if !h.sendable() {
                        // a port that follows its link and is down (the Linux bridge's
                        // disabled port) gets nothing
                        h.counters.tx_drop(TxDrop::PortDown);
                    } else if vlan.is_some_and(|cl| !reg.vlans(to).is_member(cl.vid)) {
                        // br_allowed_egress: known unicast to a port outside the VLAN
                        h.counters.tx_drop(TxDrop::VlanNotMember);
                    } else if settings.stp && !h.stp_gate.forwards() {
                        h.counters.tx_drop(TxDrop::StpDiscarding);
                    } else {
                        self.transmit(reg, settings, h, &out, w);
                    }
                }
                None => c.rx_drop(RxDrop::NoPort),
            },
            Decision::Flood { kind, except } => {
                if !ingress.storm.bucket(kind).admit(now.millis()) {
                    return c.rx_drop(RxDrop::Storm);
                }
                // (a solicitation kept from `neigh-suppress` ports floods to the others
                // without the MDB's say)
                if kind == FloodKind::Multicast && !not_to_suppress {
                    // snooping: the MDB may name the ports, or the frame is an invalid message
                    match self.mcast_route(reg, settings, ingress, in_flags, &out, vid, w) {
                        McastRoute::Flood => {}
                        McastRoute::Invalid => return c.rx_drop(RxDrop::McastInvalid),
                        McastRoute::Delivered => {
                            w.forwarded += 1;
                            match w.port(in_slot) {
                                Some(t) => t.rx_forwarded += 1,
                                None => {
                                    c.rx_forwarded.fetch_add(1, Relaxed);
                                }
                            }
                            return;
                        }
                    }
                }
                w.flooded[kind as usize] += 1;
                match w.port(in_slot) {
                    Some(t) => t.rx_flooded += 1,
                    None => {
                        c.rx_flooded.fetch_add(1, Relaxed);
                    }
                }
                for h in reg.iter() {
                    if h.sendable()
                        && flood_eligible(
                            settings.mode,
                            ingress.id,
                            in_flags,
                            h.id,
                            h.flags.get(),
                            kind,
                            except,
                        )
                        && vlan.is_none_or(|cl| reg.vlans(h.id).is_member(cl.vid))
                        && (!settings.stp || h.stp_gate.forwards())
                        && !(taps_armed && reg.taps().is_output(h.id))
                        && !(not_to_suppress && h.flags.get().contains(PortFlags::NEIGH_SUPPRESS))
                    {
                        self.transmit(reg, settings, h, &out, w);
                    }
                }
            }
            Decision::Drop(r) => c.rx_drop(r),
        }
    }

    /// Counts a frame into its VLAN (published with the batch, or when the VLAN changes).
    fn count_vlan(&self, w: &mut Scratch, vid: u16, bytes: usize) {
        if w.vlan_tally.0 != vid {
            self.publish_vlan(w.vlan_tally);
            w.vlan_tally = (vid, 0, 0);
        }
        let (_, frames, b) = &mut w.vlan_tally;
        *frames += 1;
        *b += bytes as u64;
    }

    fn publish_vlan(&self, (vid, frames, bytes): (u16, u64, u64)) {
        if frames > 0 {
            if let (Some(f), Some(b)) = (
                self.stats.vlan_rx_frames.get(vid as usize),
                self.stats.vlan_rx_bytes.get(vid as usize),
            ) {
                f.fetch_add(frames, Relaxed);
                b.fetch_add(bytes, Relaxed);
            }
        }
    }

    /// Adds a batch's counts to the shared counters and clears `w`. Also makes sure no
    /// source this batch learned outlives its port: a port removed while the batch ran had
    /// its entries flushed, but an entry learned after that flush would stay. This fence and
    /// the one [`Switch::remove_port`] makes between marking the port `gone` and flushing it
    /// (both SeqCst) leave two cases: that flush saw the entry, or the check below sees
    /// `gone` and the control thread flushes the port once more.
    pub fn publish(&self, reg: &Registry, w: &mut Scratch) {
        std::sync::atomic::fence(SeqCst);
        if std::mem::take(&mut w.untallied_learn) {
            for h in reg.iter() {
                if h.state() == LinkState::Gone {
                    self.flush_again(h.id);
                }
            }
        }
        self.publish_vlan(w.vlan_tally);
        w.vlan_tally.1 = 0;
        w.vlan_tally.2 = 0;
        if w.forwarded > 0 {
            self.stats.forwarded.fetch_add(w.forwarded, Relaxed);
            w.forwarded = 0;
        }
        for (i, n) in w.flooded.iter_mut().enumerate() {
            if *n > 0 {
                self.stats.flooded[i].fetch_add(*n, Relaxed);
                *n = 0;
            }
        }
        for t in w.ports.drain(..) {
            w.index[t.slot as usize] = NO_ENTRY;
            // a port removed during the batch takes its last counts with it
            let Some(h) = reg.by_slot(t.slot as usize) else {
                continue;
            };
            if t.may_learn && h.state() == LinkState::Gone {
                self.flush_again(h.id);
            }
            let c = &h.counters;
            let add = |a: &std::sync::atomic::AtomicU64, n: u64| {
                if n > 0 {
                    a.fetch_add(n, Relaxed);
                }
            };
            add(&c.rx_frames, t.rx_frames);
            add(&c.rx_bytes, t.rx_bytes);
            add(&c.rx_forwarded, t.rx_forwarded);
            add(&c.rx_flooded, t.rx_flooded);
            add(&c.tx_frames, t.tx_frames);
            add(&c.tx_bytes, t.tx_bytes);
        }
    }

    /// Sends a frame out of `h` in the VLAN form `h` wants (tag pushed, popped or rewritten in
    /// a copy when it differs from the form received).
    pub(super) fn transmit(
        &self,
        reg: &Registry,
        settings: &Settings,
        h: &PortHandle,
        out: &Outgoing<'_>,
        w: &mut Scratch,
    ) {
        if let Some(cl) = out.vlan {
            let form = vlan::egress_form(reg.vlans(h.id), cl.vid);
            let action = vlan::egress_action(&cl, form);
            if action != TagAction::None {
                // (an empty Variant holds no allocation: the buffer comes back below)
                let mut variant = std::mem::replace(
                    &mut w.variant,
                    Variant {
                        buf: PageBuf::default(),
                        built: None,
                    },
                );
                match variant.get(out, action, settings.vlan_protocol) {
                    Some((pkt, hdr)) => match EthernetFrame::new_checked(&pkt[HEADROOM..]) {
                        Ok(frame) => {
                            let v = Outgoing {
                                hdr,
                                pkt,
                                frame,
                                vlan: out.vlan,
                            };
                            self.transmit_as_is(reg, h, &v, w);
                        }
                        Err(_) => h.counters.tx_drop(TxDrop::Error),
                    },
                    None => h.counters.tx_drop(TxDrop::Error),
                }
                w.variant = variant;
                return;
            }
        }
        self.transmit_as_is(reg, h, out, w);
    }

    fn transmit_as_is(&self, reg: &Registry, h: &PortHandle, out: &Outgoing<'_>, w: &mut Scratch) {
        if reg.taps().armed() {
            if reg.taps().is_output(h.id) {
                return h.counters.tx_drop(TxDrop::MirrorOutput);
            }
            self.mirror_egress(reg, h, out, w);
        }
        self.send_out(reg, h, out, w);
    }

    /// Writes a frame to `h` as it is (segmented and checksummed for a port without offloads);
    /// captures see what was written. Returns whether all of it was written.
    pub(super) fn send_out(
        &self,
        reg: &Registry,
        h: &PortHandle,
        out: &Outgoing<'_>,
        w: &mut Scratch,
    ) -> bool {
        let c = &h.counters;
        if h.state() == LinkState::Gone {
            c.tx_drop(TxDrop::PortDown);
            return false;
        }
        let armed = reg.taps().armed();
        let frame_len = out.frame.len();
        if h.port.vnet_hdr_len() == VNET_HDR_LEN {
            // Offload port: header and frame pass untouched; GSO frames are exempt from the
            // MTU rule (as in Linux), the wire segments will fit.
            if out.hdr.gso() == GSO_NONE && exceeds_mtu(&out.frame, h.port.mtu()) {
                c.tx_drop(TxDrop::Mtu);
                return false;
            }
            let r = h.port.send(out.pkt);
            if let Err(e) = &r {
                if e.raw_os_error() == Some(libc::EMSGSIZE)
                    && h.port.kind() == crate::port::PortKind::Vxlan
                {
                    // a GSO frame whose segments do not fit the tunnel (see
                    // `Vtep::transmit_offload`): one MTU drop per segment, as a plain port
                    // counts them
                    let segs = offload::check_gso(&out.hdr, out.frame.bytes_ref()).unwrap_or(1);
                    c.tx_dropped[TxDrop::Mtu.index()].fetch_add(segs as u64, Relaxed);
                    return false;
                }
            }
            let ok = self.sent(h, r, frame_len, w);
            if ok && armed {
                self.capture_egress(reg, h, &mut w.tap_ts, out.frame.bytes_ref());
            }
            ok
        } else if out.hdr.is_plain() {
            if exceeds_mtu(&out.frame, h.port.mtu()) {
                c.tx_drop(TxDrop::Mtu);
                return false;
            }
            let ok = self.sent(h, h.port.send(out.frame.bytes_ref()), frame_len, w);
            if ok && armed {
                self.capture_egress(reg, h, &mut w.tap_ts, out.frame.bytes_ref());
            }
            ok
        } else {
            // A plain port gets the frame with its checksum done and cut to wire size.
            let mtu = h.port.mtu();
            let Scratch { seg, tap_ts, .. } = w;
            let mut sent = 0u64;
            let mut short = false;
            let mut sent_bytes = 0u64;
            let r = offload::finish(&out.hdr, out.frame.bytes_ref(), seg, |s| {
                match EthernetFrame::new_checked(s) {
                    Ok(f) if !exceeds_mtu(&f, mtu) => {}
                    _ => {
                        c.tx_drop(TxDrop::Mtu);
                        short = true;
                        return Ok(());
                    }
                }
                match h.port.send(s) {
                    Ok(()) => {
                        sent += 1;
                        sent_bytes += s.len() as u64;
                        if armed {
                            // a port without offloads gets the segments: they are captured
                            self.capture_egress(reg, h, tap_ts, s);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        self.send_failed(h, &e);
                        Err(())
                    }
                }
            });
            w.seg_work += sent as usize;
            if sent > 0 {
                self.sent_ok(h, sent, sent_bytes, w);
            }
            if r.is_err() {
                c.tx_drop(TxDrop::Offload);
            }
            r.is_ok() && !short
        }
    }

    /// Counts the outcome of one send; returns whether it succeeded.
    fn sent(&self, h: &PortHandle, r: std::io::Result<()>, len: usize, w: &mut Scratch) -> bool {
        match r {
            Ok(()) => {
                self.sent_ok(h, 1, len as u64, w);
                true
            }
            Err(e) => {
                self.send_failed(h, &e);
                false
            }
        }
    }

    fn sent_ok(&self, h: &PortHandle, frames: u64, bytes: u64, w: &mut Scratch) {
        match w.port(Registry::slot(h.id)) {
            Some(t) => {
                t.tx_frames += frames;
                t.tx_bytes += bytes;
            }
            None => {
                h.counters.tx_frames.fetch_add(frames, Relaxed);
                h.counters.tx_bytes.fetch_add(bytes, Relaxed);
            }
        }
        if h.state() == LinkState::Down {
            self.read_while_down(h);
        }
    }

    fn send_failed(&self, h: &PortHandle, e: &std::io::Error) {
        let c = &h.counters;
        if e.raw_os_error() == Some(libc::EDESTADDRREQ) {
            // a tunnel port with no remote to send to (see `Vtep::transmit`)
            return c.tx_drop(TxDrop::NoRemote);
        }
        if e.raw_os_error() == Some(crate::port::vxlan::NO_VNI)
            && h.port.kind() == crate::port::PortKind::Vxlan
        {
            // a frame of no VLAN of the port's vni-map (see `VxlanPort::send_mapped`)
            return c.tx_drop(TxDrop::VlanNotMember);
        }
        if e.raw_os_error() == Some(libc::EMSGSIZE) && h.port.kind() == crate::port::PortKind::Vxlan
        {
            // a datagram over 64 KiB (see `Vtep::transmit`)
            return c.tx_drop(TxDrop::Mtu);
        }
        match classify(e) {
            IoClass::WouldBlock => c.tx_drop(TxDrop::QueueFull),
            IoClass::Down => {
                c.tx_drop(TxDrop::PortDown);
                self.set_state(h, LinkState::Down);
                if h.follows_link() {
                    // its link says when it is back
                    self.request_link_poll();
                }
            }
            IoClass::Gone => {
                c.tx_drop(TxDrop::PortDown);
                self.set_state(h, LinkState::Gone);
            }
            IoClass::FrameRefused | IoClass::Other => c.tx_drop(TxDrop::Error),
        }
    }
}
