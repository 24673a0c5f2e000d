//! The frame path's side of captures and mirrors ([`crate::capture`]). Runs only while the
//! registry snapshot's [`crate::capture::Taps::armed`] is set; allocates nothing and never
//! waits: captures append to their ring or count a drop, mirror copies go out through the
//! output port's ordinary send path (segmented for a port without offloads, counted as its tx).

use std::sync::atomic::Ordering::Relaxed;

use super::forward::{Outgoing, Scratch};
use super::registry::{PortHandle, Registry};
use super::Switch;
use crate::capture::Direction;

impl Switch {
    /// A frame was read from `ingress`: offers it to the captures and starts the frame's mirror
    /// bookkeeping. Returns whether the port is a mirror output (the frame is then dropped).
    pub(super) fn tap_ingress(
        &self,
        reg: &Registry,
        ingress: &PortHandle,
        frame: &[u8],
        w: &mut Scratch,
    ) -> bool {
        let taps = reg.taps();
        w.tap_ts = 0;
        w.mirrored = 0;
        for c in taps.captures() {
            c.offer(ingress.id, Direction::Inbound, &mut w.tap_ts, frame);
        }
        taps.is_output(ingress.id)
    }

    /// Copies a received frame, as received, to the mirrors selecting its ingress port.
    pub(super) fn mirror_ingress(
        &self,
        reg: &Registry,
        ingress: &PortHandle,
        out: &Outgoing<'_>,
        w: &mut Scratch,
    ) {
        let mask = reg.taps().src_mask(ingress.id);
        if mask != 0 {
            self.mirror_copies(reg, mask, out, w);
        }
    }

    /// Copies a frame about to be sent to `egress`, as sent, to the mirrors selecting that port
    /// that have not copied this frame yet.
    pub(super) fn mirror_egress(
        &self,
        reg: &Registry,
        egress: &PortHandle,
        out: &Outgoing<'_>,
        w: &mut Scratch,
    ) {
        let mask = reg.taps().dst_mask(egress.id) & !w.mirrored;
        if mask != 0 {
            self.mirror_copies(reg, mask, out, w);
        }
    }

    fn mirror_copies(&self, reg: &Registry, mask: u32, out: &Outgoing<'_>, w: &mut Scratch) {
        w.mirrored |= mask;
        let taps = reg.taps();
        let mut bits = mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let (Some(m), Some(o)) = (
                taps.mirrors().get(i),
                taps.output_of(i).and_then(|id| reg.get(id)),
            ) else {
                continue;
            };
            m.frames.fetch_add(1, Relaxed);
            if !self.send_out(reg, o, out, w) {
                m.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// A frame (or segment) was written to `egress`: offers it to the captures.
    pub(super) fn capture_egress(
        &self,
        reg: &Registry,
        egress: &PortHandle,
        ts: &mut u64,
        frame: &[u8],
    ) {
        for c in reg.taps().captures() {
            c.offer(egress.id, Direction::Outbound, ts, frame);
        }
    }
}
