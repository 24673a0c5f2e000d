//! `vxlan:VNI` ports: one VNI of a VXLAN tunnel endpoint (RFC 7348). Sending encapsulates
//! the frame and hands it to the kernel's UDP/IP stack toward the remote VTEP its destination
//! is behind, or toward every remote of the flood list; the kernel routes it, so the
//! underlay is whatever the host's routing table says. Receiving is not done here: every VNI
//! on one local address and UDP port shares one socket, read by the dataplane's VXLAN hub,
//! which hands each inner frame to the port of its VNI.
//!
//! A port with a `vni-map` has one VTEP per entry: a frame leaving it carries the bridge's
//! tag of its VLAN, which the port takes off and sends, untagged, in the VNI of that VLAN,
//! by that VNI's table and flood list.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::RawFd;
use std::sync::Arc;

use super::{sys, Port, PortKind};
use crate::buf::PageBuf;
use crate::offload::{VnetHdr, VNET_HDR_LEN};
use crate::vxlan::vtep::{Underlay, Vtep, MAX_GSO_BYTES};
use crate::vxlan::wire::{self, ENCAP_HLEN, VXLAN_HLEN};

/// Sending sockets of one `vxlan` port: enough source ports for receivers to spread flows
/// over queues and paths, few enough to stay cheap.
pub const SEND_SOCKETS: usize = 8;

/// The kernel's stack as the underlay: [`SEND_SOCKETS`] source ports on the local address,
/// spread over the port's `srcport` range. A flow's hash picks its port (the one whose share
/// of the range holds the port Linux would have picked), so a flow keeps its source port and
/// flows spread over several, as with Linux, though from a fixed set of ports rather than any
/// port of the range. Each port has a socket for single datagrams (over IPv4 with the UDP
/// checksum 0, as before and as RFC 7348 advises) and, with GSO on, one for UDP GSO batches
/// (checksum on, which UDP GSO needs), bound to the same port.
#[derive(Debug)]
pub struct UdpUnderlay {
    socks: Vec<Slot>,
    /// Over IPv6 (one socket per port): whether GSO is on.
    gso_v6: bool,
    local: IpAddr,
    dport: u16,
    range: (u16, u16),
}

#[derive(Debug)]
struct Slot {
    port: u16,
    plain: UdpSocket,
    gso: Option<UdpSocket>,
}

impl UdpUnderlay {
    /// Opens the sending sockets: for each share of the `srcport` range `(min, max)` the first
    /// free port of it (a share whose first 64 ports are all taken is skipped; none free is an
    /// error). Without `gso`, no GSO sockets: a GSO frame goes as one datagram per segment.
    pub fn open(
        local: IpAddr,
        dport: u16,
        range: (u16, u16),
        ttl: Option<u8>,
        tos: Option<u8>,
        gso: bool,
    ) -> io::Result<UdpUnderlay> {
        let (min, max) = if range.0 >= range.1 {
            (wire::DEFAULT_SRC_PORT_MIN, wire::DEFAULT_SRC_PORT_MAX)
        } else {
            range
        };
        let span = usize::from(max - min);
        let shares = SEND_SOCKETS.min(span.max(1));
        let open = |port: u16| -> io::Result<Slot> {
            let v4 = local.is_ipv4();
            // over IPv6 the checksum is always on: one socket does both
            let shared = gso && v4;
            let plain = sys::vxlan::udp_send_socket(local, port, ttl, tos, true, shared)?;
            let gso = if shared {
                Some(sys::vxlan::udp_send_socket(
                    local, port, ttl, tos, false, true,
                )?)
            } else {
                None
            };
            Ok(Slot { port, plain, gso })
        };
        let mut socks = Vec::new();
        let mut last = None;
        for i in 0..shares {
            let lo = usize::from(min) + span * i / shares;
            let hi = usize::from(min) + span * (i + 1) / shares;
            for port in lo..hi.max(lo + 1).min(lo + 64) {
                match open(port as u16) {
                    Ok(s) => {
                        socks.push(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
        }
        if socks.is_empty() {
            return Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EADDRINUSE)));
        }
        Ok(UdpUnderlay {
            socks,
            gso_v6: gso,
            local,
            dport,
            range: (min, max),
        })
    }

    /// The source ports it sends from.
    pub fn ports(&self) -> Vec<u16> {
        self.socks.iter().map(|s| s.port).collect()
    }

    /// Whether it sends UDP GSO batches.
    pub fn gso(&self) -> bool {
        if self.local.is_ipv6() {
            self.gso_v6
        } else {
            self.socks[0].gso.is_some()
        }
    }

    /// The slot for a flow whose Linux source port would be `sport`.
    fn slot(&self, sport: u16) -> &Slot {
        let (min, max) = self.range;
        let span = usize::from(max - min).max(1);
        let at = usize::from(sport.saturating_sub(min)).min(span - 1);
        &self.socks[at * self.socks.len() / span]
    }
}

fn sport(head: &[u8; ENCAP_HLEN]) -> u16 {
    u16::from_be_bytes([head[0], head[1]])
}

impl Underlay for UdpUnderlay {
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
        let mut r = Ok(());
        self.send_each(&[to], head, frame, &mut |_, x| r = x);
        r
    }

    fn send_each(
        &self,
        to: &[IpAddr],
        head: &[u8; ENCAP_HLEN],
        frame: &[u8],
        done: &mut dyn FnMut(usize, io::Result<()>),
    ) {
        let parts = [&head[ENCAP_HLEN - VXLAN_HLEN..], frame];
        let s = &self.slot(sport(head)).plain;
        sys::vxlan::send_each(s, to, self.dport, &parts, 0, done);
    }

    fn send_batch(
        &self,
        to: &[IpAddr],
        head: &[u8; ENCAP_HLEN],
        data: &[u8],
        seg: usize,
        done: &mut dyn FnMut(usize, io::Result<()>),
    ) {
        let slot = self.slot(sport(head));
        let sock = &slot.plain;
        let gso = match &slot.gso {
            _ if data.len() <= seg => sock,
            Some(g) => g,
            None if self.local.is_ipv6() && self.gso_v6 => sock,
            None => {
                // GSO off: one send per datagram and remote
                for (i, ip) in to.iter().enumerate() {
                    let mut res = Ok(());
                    for d in data.chunks(seg.max(1)) {
                        sys::vxlan::send_each(sock, &[*ip], self.dport, &[d], 0, &mut |_, x| {
                            if x.is_err() {
                                res = x
                            }
                        });
                    }
                    done(i, res);
                }
                return;
            }
        };
        sys::vxlan::send_each(gso, to, self.dport, &[data], seg, &mut |i, r| match r {
            // The kernel refuses a GSO send its path cannot take whole (a path MTU below a
            // datagram: EMSGSIZE; no checksum offload path: EIO): one send per datagram,
            // which the kernel fragments as it must.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMSGSIZE | libc::EIO | libc::EINVAL)
                ) =>
            {
                let mut res = Ok(());
                for d in data.chunks(seg.max(1)) {
                    let mut one = Ok(());
                    sys::vxlan::send_each(sock, &to[i..=i], self.dport, &[d], 0, &mut |_, x| {
                        one = x
                    });
                    if one.is_err() {
                        res = one;
                        break;
                    }
                }
                done(i, res)
            }
            r => done(i, r),
        });
    }

    fn batch_limits(&self) -> (usize, usize) {
        if !self.gso() {
            return (0, 1);
        }
        let max = if self.local.is_ipv4() {
            MAX_GSO_BYTES
        } else {
            65535 - 8
        };
        (max, crate::vxlan::vtep::MAX_GSO_DATAGRAMS)
    }

    fn path_mtu(&self, to: Option<IpAddr>) -> Option<u32> {
        match to {
            Some(r) => sys::vxlan::path_mtu(self.local, r).ok(),
            None => {
                let name = sys::vxlan::interface_of(self.local).ok()??;
                sys::if_mtu(&name).ok()
            }
        }
    }
}

/// Room for the UDP GSO batch a `vxlan` port builds (at most [`MAX_GSO_BYTES`]) or for a
/// frame whose checksum it completes (any frame a port reads).
pub const GSO_BUF: usize = crate::buf::RX_BUF;

thread_local! {
    /// Each dataplane thread's batch buffer, page-aligned (see [`crate::buf`]): allocated on
    /// the thread's first offload frame to a tunnel, then reused.
    static SCRATCH: RefCell<PageBuf> = RefCell::new(PageBuf::default());
    /// Each dataplane thread's copy of a frame with its VLAN tag taken off (a mapped port's
    /// frames), page-aligned: allocated on first use, then reused.
    static UNTAGGED: RefCell<PageBuf> = RefCell::new(PageBuf::default());
}

/// What a port with a `vni-map` answers a frame that has no VNI (untagged, or of a VLAN not
/// in the map): an errno no UDP send returns.
pub const NO_VNI: i32 = libc::EPROTONOSUPPORT;

/// The VTEPs of a port: one, or one per VLAN of its `vni-map` (in VLAN order).
enum Vteps {
    One(Arc<Vtep>),
    Mapped(Vec<(u16, Arc<Vtep>)>),
}

/// A `vxlan` port: its VTEP (or one per VNI of its map) and the underlay it sends through.
pub struct VxlanPort<U: Underlay = UdpUnderlay> {
    vtep: Arc<Vtep>,
    vteps: Vteps,
    underlay: U,
    fixed_mtu: bool,
}

impl<U: Underlay> VxlanPort<U> {
    /// A port for `vtep`. With `mtu` the port MTU is fixed; otherwise it follows the underlay
    /// (the path MTU toward the first remote of the flood list, or the local interface's MTU,
    /// minus the VXLAN overhead) and is read again on every [`Port::refresh`].
    pub fn new(vtep: Arc<Vtep>, underlay: U, mtu: Option<u32>) -> VxlanPort<U> {
        let p = VxlanPort {
            vtep: vtep.clone(),
            vteps: Vteps::One(vtep),
            underlay,
            fixed_mtu: mtu.is_some(),
        };
        p.init_mtu(mtu);
        p
    }

    /// A port with a `vni-map`: one VTEP per VLAN (each with its VNI, table and flood list).
    /// A frame must come tagged (the port is a tagged member of the map's VLANs); it leaves
    /// untagged in its VLAN's VNI. Panics on an empty map (a checked spec has none).
    pub fn mapped(mut vteps: Vec<(u16, Arc<Vtep>)>, underlay: U, mtu: Option<u32>) -> Self {
        vteps.sort_by_key(|(v, _)| *v);
        let p = VxlanPort {
            vtep: vteps[0].1.clone(),
            vteps: Vteps::Mapped(vteps),
            underlay,
            fixed_mtu: mtu.is_some(),
        };
        p.init_mtu(mtu);
        p
    }

    fn init_mtu(&self, mtu: Option<u32>) {
        match mtu {
            Some(m) => self.each(|v| v.set_mtu(m)),
            None => self.refresh(),
        }
    }

    fn each(&self, f: impl Fn(&Vtep)) {
        match &self.vteps {
            Vteps::One(v) => f(v),
            Vteps::Mapped(m) => m.iter().for_each(|(_, v)| f(v)),
        }
    }

    /// The VTEP (with a `vni-map`, the first VLAN's).
    pub fn vtep(&self) -> &Arc<Vtep> {
        &self.vtep
    }

    /// Sends `frame` (behind `hdr`) through `vtep`.
    fn send_by(&self, vtep: &Vtep, hdr: &VnetHdr, frame: &[u8]) -> io::Result<()> {
        if hdr.is_plain() {
            return vtep.transmit(frame, &self.underlay);
        }
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if s.is_empty() {
                *s = PageBuf::new(GSO_BUF);
            }
            vtep.transmit_offload(hdr, frame, &mut s, &self.underlay)
        })
    }

    /// A mapped port's frame: its tag says the VLAN, hence the VTEP; the frame goes without
    /// the tag (a copy), its header's offsets 4 bytes earlier. A frame untagged or of a VLAN
    /// not in the map (a frame the switch itself sends to every port, a BPDU) has no VNI:
    /// refused with [`NO_VNI`], which the frame path counts as `vlan_not_member`.
    fn send_mapped(&self, map: &[(u16, Arc<Vtep>)], hdr: &VnetHdr, frame: &[u8]) -> io::Result<()> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        let no_vni = || io::Error::from_raw_os_error(NO_VNI);
        let (vid, rest) = match frame.get(12..16) {
            Some([0x81, 0x00, a, b] | [0x88, 0xa8, a, b]) if frame.len() >= 18 => {
                (u16::from_be_bytes([*a, *b]) & 0x0fff, &frame[16..])
            }
            _ => return Err(no_vni()),
        };
        let Ok(i) = map.binary_search_by_key(&vid, |(v, _)| *v) else {
            return Err(no_vni());
        };
        let mut h = *hdr;
        if h.csum_start >= 16 {
            h.csum_start -= 4;
        }
        if h.hdr_len >= 16 {
            h.hdr_len -= 4;
        }
        UNTAGGED.with(|u| {
            let mut u = u.borrow_mut();
            if u.is_empty() {
                *u = PageBuf::new(GSO_BUF);
            }
            let n = frame.len() - 4;
            let out = u.get_mut(..n).ok_or_else(einval)?;
            out[..12].copy_from_slice(&frame[..12]);
            out[12..].copy_from_slice(rest);
            self.send_by(&map[i].1, &h, out)
        })
    }
}

impl<U: Underlay> Port for VxlanPort<U> {
    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }
    /// Frames from the tunnel arrive on the hub's socket, never here.
    fn recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    /// Takes offload frames (a virtio_net_hdr, then the frame): a GSO frame crosses the
    /// tunnel as UDP GSO batches ([`Vtep::transmit_offload`]), not one send per segment.
    fn send(&self, pkt: &[u8]) -> io::Result<()> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        let hdr = VnetHdr::parse(pkt).map_err(|_| einval())?;
        let frame = pkt.get(VNET_HDR_LEN..).ok_or_else(einval)?;
        match &self.vteps {
            Vteps::One(v) => self.send_by(v, &hdr, frame),
            Vteps::Mapped(m) => self.send_mapped(m, &hdr, frame),
        }
    }
    fn vnet_hdr_len(&self) -> usize {
        VNET_HDR_LEN
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        self.vtep.mtu()
    }
    fn refresh(&self) {
        if self.fixed_mtu {
            return;
        }
        let first = self.vtep.remotes().flood.first().map(|r| r.ip);
        if let Some(m) = self.underlay.path_mtu(first) {
            let mtu = self.vtep.mtu_for_path(m);
            self.each(|v| v.set_mtu(mtu));
        }
    }
}
