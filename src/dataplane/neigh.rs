//! ARP/ND suppression on the frame path (see [`crate::neigh`] for the rules): for an ARP
//! message or a neighbour solicitation/advertisement, learn the binding it shows (from a
//! local port), answer it from the table when the rules say so, and tell the flood whether
//! ports with `neigh-suppress` must not get it. Runs only for those frames, and only while a
//! port has `neigh-suppress` or the EVPN service advertises bindings; the reply is built on the
//! stack (no allocation) and written to the ingress port at once.

use std::sync::atomic::Ordering::Relaxed;

use super::forward::{Outgoing, HEADROOM};
use super::registry::{PortHandle, Registry};
use super::{Scratch, Switch};
use crate::fdb::FdbKey;
use crate::forwarding::{PortFlags, Settings};
use crate::neigh::{arp_binding, arp_verdict, nd_binding, nd_verdict, Verdict};
use crate::offload::VnetHdr;
use crate::port::PortKind;
use crate::types::Timestamp;
use crate::vlan::{self, EgressForm, TagState};
use crate::wire::arp::{self, ArpView};
use crate::wire::{be16, nd, EthernetFrame, MacAddr};

/// Room for the longest answer: the virtio_net_hdr, an Ethernet header with a tag, an
/// advertisement.
const ANSWER_BUF: usize = HEADROOM + 18 + nd::NA_LEN;

impl Switch {
    /// ARP/ND suppression for one received frame (after learning, before forwarding).
    /// Returns whether ports with `neigh-suppress` must not get it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-frame context, kept flat for speed"
    )]
    pub(super) fn neigh_frame(
        &self,
        reg: &Registry,
        settings: &Settings,
        ingress: &PortHandle,
        in_flags: PortFlags,
        out: &Outgoing<'_>,
        now: Timestamp,
        w: &mut Scratch,
    ) -> bool {
        let bytes = out.frame.bytes_ref();
        // the EtherType and payload after the bridge's tag (VLAN filtering on); with
        // filtering off a tagged frame is not ARP or IPv6 to the bridge, as in Linux
        let off = match out.vlan {
            Some(cl) if cl.tag != TagState::Untagged => 18,
            Some(_) => 14,
            None if out.frame.is_tagged() => return false,
            None => 14,
        };
        let Some(payload) = bytes.get(off..) else {
            return false;
        };
        let etype = be16(bytes, off - 2);
        let is_arp = etype == arp::ETHERTYPE_ARP;
        let is_nd = etype == nd::ETHERTYPE_IPV6 && nd::maybe_nd(payload);
        if !(is_arp || is_nd) {
            return false;
        }
        let enabled = reg
            .iter()
            .any(|h| h.flags.get().contains(PortFlags::NEIGH_SUPPRESS));
        if !enabled && !self.neigh.advertising() {
            return false;
        }
        let in_suppress = in_flags.contains(PortFlags::NEIGH_SUPPRESS);
        // bindings are local only from local ports: not from a tunnel, flagged or not
        // (nor with ageing 0, where the forwarding table learns nothing either: a binding
        // would be aged out on the next tick and learnt again by the next ARP, churning
        // zebra's routes)
        let learn = !in_suppress && ingress.kind() != PortKind::Vxlan && settings.ageing_ms > 0;
        let vid = out.vlan.map_or(0, |cl| cl.vid);
        let src = out.frame.src();
        let lookup = |ip| self.neigh.lookup(vid, ip);
        let behind_suppress = |mac: MacAddr| {
            self.fdb.port_of(&FdbKey::new(mac, vid)).map(|p| {
                reg.get(p)
                    .is_some_and(|h| h.flags.get().contains(PortFlags::NEIGH_SUPPRESS))
            })
        };
        let tag = out.vlan.and_then(|cl| {
            (vlan::egress_form(reg.vlans(ingress.id), cl.vid) == EgressForm::Tagged)
                .then(|| (settings.vlan_protocol.tpid(), cl.tci()))
        });
        let mut buf = [0u8; ANSWER_BUF];
        if is_arp {
            let Ok(a) = ArpView::new_checked(payload) else {
                return false;
            };
            if learn {
                if let Some((ip, mac)) = arp_binding(&a, src) {
                    self.neigh.learn(vid, ip, mac, ingress.id, now);
                }
            }
            if !enabled {
                return false;
            }
            let v = arp_verdict(
                in_suppress,
                a.op(),
                a.spa(),
                a.tpa(),
                lookup,
                behind_suppress,
            );
            if let Verdict::Reply(mac) = v {
                let n = arp::write_reply(&mut buf[HEADROOM..], mac, a.tpa(), a.sha(), a.spa(), tag);
                self.answer(reg, settings, ingress, &buf, n, 0, w);
            }
            v.keeps_from_suppress_ports()
        } else {
            let Ok(m) = nd::parse(payload) else {
                return false;
            };
            if learn {
                if let Some((ip, mac)) = nd_binding(&m, src) {
                    self.neigh.learn(vid, ip, mac, ingress.id, now);
                }
            }
            if !enabled {
                return false;
            }
            let v = nd_verdict(in_suppress, &m, lookup, behind_suppress);
            if let Verdict::Reply(mac) = v {
                let to = m.lladdr.unwrap_or(src);
                let router = self.neigh.router(vid, std::net::IpAddr::V6(m.target));
                let n = nd::write_na(&mut buf[HEADROOM..], &m, mac, to, router, tag);
                self.answer(reg, settings, ingress, &buf, n, 1, w);
            }
            v.keeps_from_suppress_ports()
        }
    }

    /// Writes an answer (`buf`: a zero virtio_net_hdr, then `len` bytes of frame) to the
    /// ingress port, and counts it in `family` (0 ARP, 1 ND).
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-frame context, kept flat for speed"
    )]
    fn answer(
        &self,
        reg: &Registry,
        settings: &Settings,
        h: &PortHandle,
        buf: &[u8],
        len: Option<usize>,
        family: usize,
        w: &mut Scratch,
    ) {
        let Some(pkt) = len.and_then(|n| buf.get(..HEADROOM + n)) else {
            return;
        };
        if !h.sendable() || (settings.stp && !h.stp_gate.forwards()) {
            return;
        }
        let Ok(frame) = EthernetFrame::new_checked(&pkt[HEADROOM..]) else {
            return;
        };
        let o = Outgoing {
            hdr: VnetHdr::default(),
            pkt,
            frame,
            vlan: None,
        };
        if self.send_out(reg, h, &o, w) {
            self.neigh.stats.answered[family].fetch_add(1, Relaxed);
        }
    }
}
