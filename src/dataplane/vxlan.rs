//! VXLAN hubs: one UDP socket per (local address, UDP port), shared by every `vxlan` port
//! (VNI) on it. One of the dataplane's epoll workers reads the socket in batches (with
//! `UDP_GRO`: a read may hold several datagrams of a flow) and hands each packet to the port of
//! its VNI, which checks the header and the sender and learns ([`Vtep::receive`]); accepted
//! inner frames go through [`Switch::handle_frame`] with that port as ingress, on that worker
//! (without workers, in tests, a task on the frame runtime). Packets too short to carry a VNI,
//! or for a VNI no port serves, are counted per hub. A port with a `vni-map` is a member of its
//! hub once per VNI of the map, each with its own VTEP (table, flood list) and VLAN: the
//! VLAN its inner frames are classified in (see `Scratch::ingress_vid`).
//!
//! Hubs are created by the first port that needs one and closed by the control thread's tick
//! once no port uses them (so a reload that replaces a port keeps its socket).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, RwLock};

use super::forward::HEADROOM;
use super::registry::{AddPortError, LinkState, PortHandle, Registry};
use super::runtime::{LogLimit, RX_BATCH, RX_BUF};
use super::{Scratch, Switch};
use crate::buf::PageBuf;
use crate::forwarding::{PortFlags, Settings};
use crate::offload::{self, VnetHdr, F_NEEDS_CSUM};
use crate::port::vxlan::{UdpUnderlay, VxlanPort};
use crate::port::{sys, Port};
use crate::types::{PortId, Timestamp};
use crate::vxlan::gro::Gro;
use crate::vxlan::spec::{VxlanSpec, VxlanSpecError};
use crate::vxlan::vtep::{DropCounters, Vtep, VtepRecord, VxlanDrop};
use crate::vxlan::wire::VXLAN_HLEN;

/// Receive buffer asked for each hub socket: a burst of a few thousand full-size packets.
pub const HUB_RCVBUF: usize = 4 << 20;

/// Hub receive errors: one line a second at most.
static HUB_FAILED: LogLimit = LogLimit::new(1000);

/// One VNI of a `vxlan` port on a hub: the port's VTEP, or with a `vni-map` the VTEP of one
/// entry of the map (each has its own table and flood list).
#[derive(Clone, Debug)]
pub struct Member {
    /// The VTEP of the VNI.
    pub vtep: Arc<Vtep>,
    /// The port.
    pub port: Arc<PortHandle>,
    /// The VLAN the VNI is mapped to (`vni-map`): its frames enter the bridge in this VLAN;
    /// `None` for a port of one VNI (its frames are classified as any port's).
    pub vlan: Option<u16>,
}

/// The members of a hub by VNI, at one moment (looked up once per packet: foldhash, not
/// SipHash, which took 3% of a receiving switch's profile under one TCP stream, issue 27).
pub type Members = HashMap<u32, Member, foldhash::fast::RandomState>;

/// One UDP socket and the `vxlan` ports (VNIs) it serves.
#[derive(Debug)]
pub struct Hub {
    /// The local underlay address.
    pub local: IpAddr,
    /// The UDP port.
    pub dstport: u16,
    members: RwLock<Arc<Members>>,
    /// Packets dropped before a VNI's port could be found (`short`, `unknown_vni`).
    pub dropped: DropCounters,
    /// Who reads the socket.
    task: Mutex<Option<Reader>>,
}

/// Who reads a hub's socket.
#[derive(Debug)]
enum Reader {
    /// A dataplane worker (by index), where the frames are handled: no thread to cross.
    Worker(Arc<super::runtime::Workers>, usize),
    /// A task on a tokio runtime (no dataplane: tests), and the channel it closes when it
    /// has ended (its socket closed).
    Task(tokio::task::AbortHandle, std::sync::mpsc::Receiver<()>),
}

impl Hub {
    fn new(local: IpAddr, dstport: u16) -> Hub {
        Hub {
            local,
            dstport,
            members: RwLock::new(Arc::default()),
            dropped: DropCounters::default(),
            task: Mutex::new(None),
        }
    }

    /// The hub's label: `ADDRESS:PORT` (`[v6]:PORT`).
    pub fn label(&self) -> String {
        SocketAddr::new(self.local, self.dstport).to_string()
    }

    /// The members now.
    pub fn members(&self) -> Arc<Members> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Members)) {
        let mut lock = self.members.write().unwrap_or_else(|p| p.into_inner());
        let mut m = (**lock).clone();
        f(&mut m);
        *lock = Arc::new(m);
    }

    /// Stops the receive task and waits (1 s at most) until its socket is closed, so the
    /// address and port can be bound again at once.
    fn stop(self: &Arc<Self>) {
        match self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(Reader::Task(t, ended)) => {
                t.abort();
                let _ = ended.recv_timeout(std::time::Duration::from_secs(1));
            }
            Some(Reader::Worker(w, i)) => w.remove_hub(i, self),
            None => {}
        }
    }
}

/// The hubs of a switch.
#[derive(Debug, Default)]
pub struct Hubs(Mutex<Vec<Arc<Hub>>>);

/// Why a `vxlan` port could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum VxlanAttachError {
    /// The spec is incomplete or inconsistent.
    #[error(transparent)]
    Spec(#[from] VxlanSpecError),
    /// The sending sockets could not be opened (no free port in the `srcport` range?).
    #[error("cannot open the sending sockets (UDP on {local}, in the srcport range)")]
    Send {
        /// The local address.
        local: IpAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The UDP socket could not be bound (address not on this host, or port taken, by a Linux
    /// VTEP for example).
    #[error("cannot listen on UDP {addr}")]
    Listen {
        /// Address and port.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Another port of this hub has the VNI.
    #[error("VNI {vni} on {hub} is already port '{port}'")]
    VniTaken {
        /// The VNI.
        vni: u32,
        /// The hub's address and port.
        hub: String,
        /// The port that has it.
        port: String,
    },
    /// A `vni-map` with VLAN filtering off.
    #[error("a vni-map maps VLANs: turn VLAN filtering on first (vlan_filtering = true, --vlan-filtering, or `tapswitch config vlan_filtering on`)")]
    NoVlanFiltering,
    /// The switch refused the port.
    #[error(transparent)]
    Add(#[from] AddPortError),
}

impl Switch {
    /// Every hub.
    pub fn vxlan_hubs(&self) -> Vec<Arc<Hub>> {
        self.vxlan
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every `vxlan` port still attached, with its VTEP.
    pub fn vxlan_members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self
            .vxlan_hubs()
            .iter()
            .flat_map(|h| h.members().values().cloned().collect::<Vec<_>>())
            .filter(|m| m.port.state() != LinkState::Gone)
            .collect();
        v.sort_by_key(|m| (m.port.id.0 & 0xffff, m.vtep.vni()));
        v
    }

    /// The VTEP of a `vxlan` port: its one VTEP (`vni` `None` or its VNI), or with a
    /// `vni-map` the VTEP of VNI `vni` (`None` then names none: the port has several).
    pub fn vtep_of(&self, port: PortId, vni: Option<u32>) -> Option<Arc<Vtep>> {
        let mut v = self.vteps_of(port);
        match vni {
            Some(n) => v.into_iter().find(|(_, t)| t.vni() == n).map(|(_, t)| t),
            None if v.len() == 1 && v[0].0.is_none() => v.pop().map(|(_, t)| t),
            None => None,
        }
    }

    /// The VTEPs of a `vxlan` port with their VLAN (`None`: a port of one VNI), in VLAN
    /// order.
    pub fn vteps_of(&self, port: PortId) -> Vec<(Option<u16>, Arc<Vtep>)> {
        let mut v: Vec<(Option<u16>, Arc<Vtep>)> = self
            .vxlan_members()
            .into_iter()
            .filter(|m| m.port.id == port)
            .map(|m| (m.vlan, m.vtep))
            .collect();
        v.sort_by_key(|(vlan, _)| *vlan);
        v
    }

    /// The entries of every VTEP table, by port and VNI. Control work (walks the tables).
    pub fn vtep_snapshots(&self, now: Timestamp) -> Vec<(PortId, u32, Vec<VtepRecord>)> {
        self.vxlan_members()
            .iter()
            .map(|m| (m.port.id, m.vtep.vni(), m.vtep.snapshot(now)))
            .collect()
    }

    /// The hub for `local`:`dstport`, created if there is none. With `listen`, a new hub binds
    /// its UDP socket and its task starts on the frame runtime (if there is one); without,
    /// packets reach it only through [`Switch::vxlan_deliver`] (tests, fuzzing).
    pub fn vxlan_hub(
        self: &Arc<Self>,
        local: IpAddr,
        dstport: u16,
        listen: bool,
    ) -> Result<Arc<Hub>, VxlanAttachError> {
        let mut hubs = self.vxlan.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hubs
            .iter()
            .find(|h| h.local == local && h.dstport == dstport)
        {
            return Ok(h.clone());
        }
        let hub = Arc::new(Hub::new(local, dstport));
        if listen {
            let addr = SocketAddr::new(local, dstport);
            let err = |source| VxlanAttachError::Listen { addr, source };
            let sock = UdpSocket::bind(addr).map_err(err)?;
            sock.set_nonblocking(true).map_err(err)?;
            if let Err(e) = sys::vxlan::set_rcvbuf(&sock, HUB_RCVBUF) {
                tracing::debug!(hub = %addr, error = %e, "receive buffer not enlarged");
            }
            if let Err(e) = sys::vxlan::set_udp_gro(&sock) {
                tracing::debug!(hub = %addr, error = %e, "no UDP GRO on the hub socket");
            }
            if let Some(w) = self.workers.get() {
                let i = w.add_hub(super::runtime::HubEntry {
                    sw: self.clone(),
                    hub: hub.clone(),
                    sock,
                    rx: HubRx::new(RX_BATCH.min(sys::vxlan::MAX_BATCH)),
                });
                *hub.task.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Reader::Worker(w.clone(), i));
            } else if let Some(rt) = self.frame_runtime() {
                let (done, ended) = std::sync::mpsc::channel::<()>();
                let (sw, h) = (self.clone(), hub.clone());
                let t = rt.spawn(async move {
                    // dropped after the loop (and its socket): tells `stop` the socket is closed
                    let _done = done;
                    hub_loop(sw, h, sock).await
                });
                *hub.task.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Reader::Task(t.abort_handle(), ended));
            }
            tracing::info!(hub = %addr, "vxlan socket listening");
        }
        hubs.push(hub.clone());
        Ok(hub)
    }

    /// Attaches a `vxlan` port whose VTEP sends through `underlay` (tests pass an in-memory
    /// one; [`attach_vxlan`] the kernel's). `listen`: see [`Switch::vxlan_hub`].
    pub fn add_vxlan_port(
        self: &Arc<Self>,
        name: &str,
        vtep: Arc<Vtep>,
        port: Box<dyn Port>,
        flags: PortFlags,
        listen: bool,
    ) -> Result<Arc<PortHandle>, VxlanAttachError> {
        self.add_vxlan_members(name, vec![(None, vtep)], port, flags, listen, None)
    }

    /// Attaches a `vxlan` port with a `vni-map`: one VTEP per entry, by VLAN (see
    /// [`VxlanPort::mapped`]). VLAN filtering must be on; the port becomes a tagged member of
    /// the map's VLANs (no PVID).
    pub fn add_vxlan_port_mapped(
        self: &Arc<Self>,
        name: &str,
        vteps: Vec<(u16, Arc<Vtep>)>,
        port: Box<dyn Port>,
        flags: PortFlags,
        listen: bool,
    ) -> Result<Arc<PortHandle>, VxlanAttachError> {
        if !self.settings.load().vlan_filtering {
            return Err(VxlanAttachError::NoVlanFiltering);
        }
        let vids: Vec<u16> = vteps.iter().map(|(v, _)| *v).collect();
        let set = crate::vlan::VlanSet::from_vids(vids)
            .map_err(|e| VxlanSpecError::MapEntry(e.to_string()))?;
        let vlans = crate::vlan::PortVlans::trunk(&set, None)
            .map_err(|e| VxlanSpecError::MapEntry(e.to_string()))?;
        let members = vteps.into_iter().map(|(v, t)| (Some(v), t)).collect();
        self.add_vxlan_members(name, members, port, flags, listen, Some(vlans))
    }

    fn add_vxlan_members(
        self: &Arc<Self>,
        name: &str,
        vteps: Vec<(Option<u16>, Arc<Vtep>)>,
        port: Box<dyn Port>,
        flags: PortFlags,
        listen: bool,
        vlans: Option<crate::vlan::PortVlans>,
    ) -> Result<Arc<PortHandle>, VxlanAttachError> {
        let first = &vteps.first().ok_or(VxlanSpecError::NoVni)?.1;
        let local = first.spec.local.ok_or(VxlanSpecError::NoLocal)?;
        let hub = self.vxlan_hub(local, first.spec.dstport, listen)?;
        let now = hub.members();
        for (_, vtep) in &vteps {
            let vni = vtep.vni();
            if let Some(m) = now.get(&vni) {
                if m.port.state() != LinkState::Gone {
                    return Err(VxlanAttachError::VniTaken {
                        vni,
                        hub: hub.label(),
                        port: m.port.name.clone(),
                    });
                }
            }
        }
        let h = self.add_port(name, port, flags)?;
        if let Some(p) = vlans {
            // a vni-map's VLANs before the hub hands the port any packet: nothing enters it in
            // the default VLAN, so nothing is learned there
            self.update_port_vlans(&h, |v| *v = p);
        }
        hub.update(|m| {
            for (vlan, vtep) in vteps {
                m.insert(
                    vtep.vni(),
                    Member {
                        vtep,
                        port: h.clone(),
                        vlan,
                    },
                );
            }
        });
        Ok(h)
    }

    /// Control work for the hubs: ages the VTEP tables, forgets ports that were detached and
    /// closes hubs no port uses any more.
    pub fn vxlan_tick(&self, now: Timestamp, ageing_ms: u64) {
        for hub in self
            .vxlan
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for m in hub.members().values() {
                m.vtep.age_out(now, ageing_ms);
            }
        }
        self.vxlan_forget_gone();
    }

    /// Forgets `vxlan` ports that were detached (their hubs let go of them) and closes hubs
    /// no port uses any more.
    pub(super) fn vxlan_forget_gone(&self) {
        let mut hubs = self.vxlan.0.lock().unwrap_or_else(|p| p.into_inner());
        hubs.retain(|hub| {
            let members = hub.members();
            if members.values().any(|m| m.port.state() == LinkState::Gone) {
                hub.update(|m| m.retain(|_, m| m.port.state() != LinkState::Gone));
            }
            let used = !hub.members().is_empty();
            if !used {
                hub.stop();
                tracing::info!(hub = %hub.label(), "vxlan socket closed");
            }
            used
        });
    }

    /// Handles one packet a hub received from `src`: the UDP payload is in `buf` at
    /// `HEADROOM - 8` (so that the inner frame starts at `HEADROOM`, where the frame path wants
    /// it, with no copy), `len` bytes long. An accepted TCP segment may wait in `rx`'s
    /// coalescing buffer for the next ones of its flow; [`Switch::vxlan_flush`] hands it on.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-packet context, kept flat for speed"
    )]
    fn vxlan_input(
        &self,
        reg: &Registry,
        settings: &Settings,
        hub: &Hub,
        members: &Members,
        src: IpAddr,
        buf: &mut [u8],
        len: usize,
        truncated: bool,
        now: Timestamp,
        rx: &mut HubRx,
    ) {
        const AT: usize = HEADROOM - VXLAN_HLEN;
        let Some(packet) = buf.get(AT..AT + len) else {
            return hub.dropped.count(VxlanDrop::Short);
        };
        if len < VXLAN_HLEN {
            return hub.dropped.count(VxlanDrop::Short);
        }
        let vni = u32::from_be_bytes([0, packet[4], packet[5], packet[6]]);
        let Some(m) = members
            .get(&vni)
            .filter(|m| m.port.state() != LinkState::Gone)
        else {
            return hub.dropped.count(VxlanDrop::UnknownVni);
        };
        let inner = match m.vtep.receive(src, packet, settings.ageing_ms != 0, now) {
            Err(r) => return m.vtep.stats.rx_dropped.count(r),
            Ok(inner) => inner,
        };
        // a mapped VNI's frames enter the bridge in their VLAN (see `Scratch::ingress_vid`)
        let vid = m.vlan;
        let frame = &buf[HEADROOM..HEADROOM + inner];
        // A TCP frame longer than the tunnel (and 1500 bytes) with a partial checksum is a
        // sender's TSO frame that crossed a veth underlay whole (see `offload::partial_tso`):
        // it goes on as the GSO frame it is, after what the coalescing buffer holds.
        let tso = if truncated {
            None
        } else {
            offload::partial_tso(frame, m.port.port.mtu() as usize)
        };
        if let Some(hdr) = tso {
            self.vxlan_flush(reg, settings, now, rx);
            hdr.write(&mut buf[..HEADROOM]);
            let pkt = &buf[..HEADROOM + inner];
            rx.work.ingress_vid = vid;
            return self.handle_frame(reg, settings, &m.port, pkt, false, now, &mut rx.work);
        }
        // the VNI too, each in its own bits: one remote's flows in two VNIs of one port never
        // merge, even with the same inner headers (two tenants' cloned hosts)
        let ctx = (u128::from(m.port.id.0) << 96) | (u128::from(vni) << 64) | ip_key(src);
        if !truncated {
            if rx.gro.merge(ctx, frame) {
                return;
            }
            self.vxlan_flush(reg, settings, now, rx);
            if rx.gro.start(ctx, frame) {
                rx.pending = Some((m.port.clone(), vid));
                return;
            }
        } else {
            self.vxlan_flush(reg, settings, now, rx);
        }
        // The VXLAN header becomes the virtio_net_hdr: all zero for a plain frame; NEEDS_CSUM
        // for a TCP/UDP checksum its sender left partial (a Linux or OVS VTEP's host on a
        // veth), which offload ports take as it is and the frame path completes for the rest.
        let mut hdr = VnetHdr::default();
        if !truncated {
            if let Some((start, offset)) = offload::partial_csum(&buf[HEADROOM..HEADROOM + inner]) {
                hdr.flags = F_NEEDS_CSUM;
                hdr.csum_start = start;
                hdr.csum_offset = offset;
            }
        }
        hdr.write(&mut buf[..HEADROOM]);
        let pkt = &buf[..HEADROOM + inner];
        rx.work.ingress_vid = vid;
        self.handle_frame(reg, settings, &m.port, pkt, truncated, now, &mut rx.work);
    }

    /// Handles one read of a hub's socket: one datagram, or several of one flow the kernel
    /// coalesced (`UDP_GRO`), taken datagram by datagram in place: datagram i sits at
    /// `AT + i * seg` and is handled as if read alone into `buf[i * seg..]` (its inner frame's
    /// header room overlaps the tail of datagram i - 1, which is done with by then: merged,
    /// copied or sent).
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-packet context, kept flat for speed"
    )]
    fn vxlan_read(
        &self,
        reg: &Registry,
        settings: &Settings,
        hub: &Hub,
        members: &Members,
        from: IpAddr,
        buf: &mut [u8],
        d: &sys::vxlan::Datagram,
        now: Timestamp,
        rx: &mut HubRx,
    ) {
        if d.seg == 0 || d.seg >= d.len || d.truncated {
            return self.vxlan_input(
                reg,
                settings,
                hub,
                members,
                from,
                buf,
                d.len,
                d.truncated,
                now,
                rx,
            );
        }
        let mut off = 0;
        while off < d.len {
            let len = d.seg.min(d.len - off);
            self.vxlan_input(
                reg,
                settings,
                hub,
                members,
                from,
                &mut buf[off..],
                len,
                false,
                now,
                rx,
            );
            off += len;
        }
    }

    /// Hands the hub at `local`:`dstport` one read the kernel coalesced from `src` (`UDP_GRO`):
    /// `data` holds datagrams of `seg` bytes back to back, the last maybe shorter; then
    /// publishes the counts (tests and fuzzing; allocates its buffers).
    pub fn vxlan_deliver_coalesced(
        &self,
        local: IpAddr,
        dstport: u16,
        src: IpAddr,
        data: &[u8],
        seg: usize,
    ) {
        let Some(hub) = self
            .vxlan_hubs()
            .into_iter()
            .find(|h| h.local == local && h.dstport == dstport)
        else {
            return;
        };
        let mut rx = HubRx::new(1);
        let at = HEADROOM - VXLAN_HLEN;
        let reg = self.ports();
        let settings = self.settings.load();
        let members = hub.members();
        let now = self.now();
        let mut buf = std::mem::take(&mut rx.bufs[0]);
        let len = data.len().min(buf.len() - at);
        buf[at..at + len].copy_from_slice(&data[..len]);
        let d = sys::vxlan::Datagram {
            len,
            truncated: len < data.len(),
            from: Some(src),
            seg,
        };
        self.vxlan_read(
            &reg, &settings, &hub, &members, src, &mut buf, &d, now, &mut rx,
        );
        self.vxlan_flush(&reg, &settings, now, &mut rx);
        self.publish(&reg, &mut rx.work);
    }

    /// Hands on the frame waiting in `rx`'s coalescing buffer, if any: one GSO frame for the
    /// segments merged, or the lone segment as it came.
    fn vxlan_flush(&self, reg: &Registry, settings: &Settings, now: Timestamp, rx: &mut HubRx) {
        let HubRx {
            gro, pending, work, ..
        } = rx;
        let Some((port, vid)) = pending.take() else {
            return;
        };
        if let Some(pkt) = gro.take() {
            work.ingress_vid = vid;
            self.handle_frame(reg, settings, &port, pkt, false, now, work);
        }
    }

    /// Hands UDP payloads to the hub at `local`:`dstport` as if its socket had read them in
    /// one batch (so consecutive TCP segments coalesce), and publishes the counts (tests and
    /// fuzzing; allocates its buffers).
    pub fn vxlan_deliver_batch(&self, local: IpAddr, dstport: u16, batch: &[(IpAddr, &[u8])]) {
        let Some(hub) = self
            .vxlan_hubs()
            .into_iter()
            .find(|h| h.local == local && h.dstport == dstport)
        else {
            return;
        };
        let mut rx = HubRx::new(1);
        let at = HEADROOM - VXLAN_HLEN;
        let reg = self.ports();
        let settings = self.settings.load();
        let members = hub.members();
        let now = self.now();
        for (src, payload) in batch {
            let buf = &mut rx.bufs[0];
            let len = payload.len().min(buf.len() - at);
            buf[at..at + len].copy_from_slice(&payload[..len]);
            let mut buf = std::mem::take(&mut rx.bufs[0]);
            self.vxlan_input(
                &reg,
                &settings,
                &hub,
                &members,
                *src,
                &mut buf,
                len,
                len < payload.len(),
                now,
                &mut rx,
            );
            rx.bufs[0] = buf;
        }
        self.vxlan_flush(&reg, &settings, now, &mut rx);
        self.publish(&reg, &mut rx.work);
    }

    /// [`Switch::vxlan_deliver_batch`] of one packet.
    pub fn vxlan_deliver(&self, local: IpAddr, dstport: u16, src: IpAddr, payload: &[u8]) {
        self.vxlan_deliver_batch(local, dstport, &[(src, payload)]);
    }
}

/// A 32-bit key for a sender's address (part of the coalescing context).
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => {
            // folded to 64 bits (the port and VNI take the upper half of the context); two
            // senders that fold alike still merge only frames whose headers match
            let x = u128::from(a);
            u128::from((x as u64) ^ ((x >> 64) as u64))
        }
    }
}

/// The buffers of a hub's receive loop, allocated once: one per datagram of a batch, the
/// batch's metadata, the frame path's scratch, and the coalescing buffer with the port its
/// pending frame came in on.
pub struct HubRx {
    /// Page-aligned (see [`crate::buf`]). A read the kernel coalesced fills up to 64 KiB.
    bufs: Vec<PageBuf>,
    meta: Vec<sys::vxlan::Datagram>,
    work: Scratch,
    gro: Gro,
    /// The port the pending frame came in on, and its VLAN (a mapped VNI's).
    pending: Option<(Arc<PortHandle>, Option<u16>)>,
}

impl HubRx {
    pub(super) fn new(batch: usize) -> HubRx {
        HubRx {
            bufs: (0..batch)
                .map(|_| PageBuf::new(HEADROOM + RX_BUF))
                .collect(),
            meta: vec![sys::vxlan::Datagram::default(); batch],
            work: Scratch::default(),
            gro: Gro::new(),
            pending: None,
        }
    }
}

/// What [`attach_vxlan`] needs to know of a `vxlan` port.
#[derive(Clone, Copy, Debug)]
pub struct VxlanAttach<'a> {
    /// The port's name.
    pub name: &'a str,
    /// The tunnel: VNI, addresses, flood list (`remote=`), ...
    pub spec: &'a VxlanSpec,
    /// The bridge port's flags.
    pub flags: PortFlags,
    /// A fixed MTU (`mtu=`); `None` takes it from the underlay.
    pub mtu: Option<u32>,
    /// Most addresses the VTEP learns (0: its default limit).
    pub max_learned: usize,
}

/// Opens and attaches a `vxlan` port: its sending socket, its hub (bound on first use), its
/// MTU from the underlay (unless `mtu` fixes it), its flood list from `remote=`.
pub fn attach_vxlan(
    sw: &Arc<Switch>,
    port: VxlanAttach<'_>,
) -> Result<Arc<PortHandle>, VxlanAttachError> {
    let v = port.spec;
    v.check()?;
    if !v.vni_map.is_empty() && !sw.settings.load().vlan_filtering {
        return Err(VxlanAttachError::NoVlanFiltering);
    }
    let local = v.local.ok_or(VxlanSpecError::NoLocal)?;
    let underlay = UdpUnderlay::open(local, v.dstport, v.srcport, v.ttl, v.tos, v.gso)
        .map_err(|source| VxlanAttachError::Send { local, source })?;
    // The VTEP tables' limit is the port's: a vni-map's VTEPs share it evenly, so a remote
    // cannot multiply it by the number of VNIs (at least one entry each).
    let vtep_max = match (port.max_learned, v.vni_map.len()) {
        (m, 0 | 1) => m,
        (0, n) => (crate::vxlan::vtep::DEFAULT_MAX_LEARNED / n).max(1),
        (m, n) => (m / n).max(1),
    };
    let new_vtep = |spec: VxlanSpec| {
        let vtep = Vtep::new(spec, 1500);
        vtep.set_mtu(vtep.mtu_for_path(1500));
        vtep.set_max_learned(vtep_max);
        Arc::new(vtep)
    };
    if v.vni_map.is_empty() {
        let vtep = new_vtep(v.clone());
        let dev = VxlanPort::new(vtep.clone(), underlay, port.mtu);
        return sw.add_vxlan_port(port.name, vtep, Box::new(dev), port.flags, true);
    }
    let vteps: Vec<(u16, Arc<Vtep>)> = v
        .vni_map
        .iter()
        .map(|e| (e.vlan, new_vtep(v.for_vni(e.vni))))
        .collect();
    let dev = VxlanPort::mapped(vteps.clone(), underlay, port.mtu);
    sw.add_vxlan_port_mapped(port.name, vteps, Box::new(dev), port.flags, true)
}

/// Reads a hub's socket on a tokio runtime (no dataplane workers: tests), a batch at a time.
async fn hub_loop(sw: Arc<Switch>, hub: Arc<Hub>, sock: UdpSocket) {
    let afd = match sys::register(sock, false) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(hub = %hub.label(), error = %e, "cannot poll vxlan socket");
            return;
        }
    };
    let mut rx = HubRx::new(RX_BATCH.min(sys::vxlan::MAX_BATCH));
    loop {
        let mut guard = match afd.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        let n = sw.hub_drain(&hub, afd.get_ref(), &mut rx);
        if n == rx.bufs.len() {
            drop(guard);
            tokio::task::yield_now().await;
        } else {
            guard.clear_ready();
        }
    }
}

impl Switch {
    /// Reads one batch of datagrams from a hub's socket (`recvmmsg`) and handles each: every
    /// packet goes to the port of its VNI, consecutive TCP segments of a flow coalesced; a
    /// read the kernel coalesced (`UDP_GRO`: several datagrams of one flow back to back) is
    /// taken datagram by datagram, in place. Returns how many reads the batch had (0: nothing
    /// was waiting).
    pub(super) fn hub_drain(&self, hub: &Hub, sock: &UdpSocket, rx: &mut HubRx) -> usize {
        const AT: usize = HEADROOM - VXLAN_HLEN;
        let reg = self.ports();
        let settings = self.settings.load();
        let members = hub.members();
        let now = self.now();
        let mut bufs = std::mem::take(&mut rx.bufs);
        let mut meta = std::mem::take(&mut rx.meta);
        let n = match sys::vxlan::recv_batch(sock, &mut bufs, AT, &mut meta) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    if let Some(held) = HUB_FAILED.allow(self.now().millis() + 1000) {
                        tracing::debug!(hub = %hub.label(), error = %e, held, "vxlan receive failed");
                    }
                }
                0
            }
        };
        for (buf, d) in bufs.iter_mut().zip(&meta).take(n) {
            let Some(from) = d.from else { continue };
            self.vxlan_read(&reg, &settings, hub, &members, from, buf, d, now, rx);
        }
        self.vxlan_flush(&reg, &settings, now, rx);
        rx.bufs = bufs;
        rx.meta = meta;
        self.publish(&reg, &mut rx.work);
        n
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hub_buffers_start_at_a_page() {
        let _shift = vec![0u8; 4016];
        let rx = super::HubRx::new(4);
        for b in &rx.bufs {
            assert_eq!(crate::buf::page_offset(b.as_ptr()), 0);
        }
        rx.work.assert_page_aligned();
        rx.gro.assert_page_aligned();
    }
}
