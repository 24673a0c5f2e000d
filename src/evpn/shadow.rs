//! The EVPN service: the netlink sockets (netlink-sys, driven from plain threads), the shadow
//! devices of each VNI, and the loop that feeds the [`Engine`] and carries out its actions
//! on the kernel (the shadow bridge's local port) and on the switch (VTEP tables, flood
//! lists, the forwarding table).
//!
//! Threads: one reads the kernel's FDB, neighbour and link events (RTNLGRP_NEIGH,
//! RTNLGRP_LINK); one follows the switch's table events ([`crate::events`]); one runs the
//! engine and owns the request socket. A lost netlink event (ENOBUFS) or a lagging table
//! reader starts a full dump of that side, which the engine diffs.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::netlink::{self, Event, FdbEntry, Msg, NTF_EXT_LEARNED, NTF_SELF};

#[path = "neigh_sync.rs"]
mod neigh_sync;
use super::sync::{Action, Binding, Engine, KernelState};
use super::SHADOW_DSTPORT;
use crate::dataplane::Switch;
use crate::fdb::{EntryKind, FdbKey};
use crate::vxlan::vtep::Vtep;
use crate::wire::MacAddr;

/// A request socket: one request at a time, each answered before the next.
pub struct Nl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Receive buffer for one netlink datagram (a dump part is at most 32 KiB on this kernel).
const NL_BUF: usize = 64 * 1024;

impl Nl {
    /// Opens a route-netlink socket bound to a port of the kernel's choosing.
    pub fn open() -> io::Result<Nl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Nl {
            sock,
            seq: 1,
            buf: Vec::with_capacity(NL_BUF),
        })
    }

    fn send(&mut self, m: &Msg) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = netlink::encode(m, self.seq);
        self.sock.send(&bytes, 0)?;
        Ok(self.seq)
    }

    fn recv(&mut self) -> io::Result<Vec<Event>> {
        self.buf.clear();
        self.sock.recv(&mut self.buf, 0)?;
        Ok(netlink::decode(&self.buf)
            .into_iter()
            .filter_map(Result::ok)
            .collect())
    }

    /// Sends a request and waits for its acknowledgement; a negative answer is the error.
    pub fn call(&mut self, m: &Msg) -> io::Result<()> {
        let seq = self.send(m)?;
        loop {
            for e in self.recv()? {
                if let Event::Ack { seq: s, code } = e {
                    if s == seq {
                        return match code {
                            0 => Ok(()),
                            c => Err(io::Error::from_raw_os_error(-c)),
                        };
                    }
                }
            }
        }
    }

    /// Sends a dump request and collects the answer.
    pub fn dump(&mut self, m: &Msg) -> io::Result<Vec<Event>> {
        let seq = self.send(m)?;
        let mut out = Vec::new();
        loop {
            for e in self.recv()? {
                match e {
                    Event::Done { seq: s } if s == seq => return Ok(out),
                    Event::Ack { seq: s, code } if s == seq && code != 0 => {
                        return Err(io::Error::from_raw_os_error(-code))
                    }
                    Event::Ack { .. } | Event::Done { .. } | Event::Other => {}
                    e => out.push(e),
                }
            }
        }
    }

    /// The index of the link called `name`, if there is one.
    pub fn ifindex(&mut self, name: &str) -> io::Result<Option<u32>> {
        let seq = self.send(&netlink::get_link(name))?;
        loop {
            for e in self.recv()? {
                match e {
                    Event::Link(l) if l.name == name => return Ok(Some(l.ifindex)),
                    Event::Ack { seq: s, code } if s == seq => {
                        return match code {
                            0 => Ok(None),
                            c if -c == libc::ENODEV => Ok(None),
                            c => Err(io::Error::from_raw_os_error(-c)),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// One link as the kernel reports it.
    pub fn link(&mut self, index: u32) -> io::Result<Option<netlink::LinkEntry>> {
        Ok(self
            .dump(&netlink::dump_links())?
            .into_iter()
            .find_map(|e| match e {
                Event::Link(l) if l.ifindex == index => Some(l),
                _ => None,
            }))
    }
}

/// The shadow devices of one VNI and their indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shadow {
    /// The VNI.
    pub vni: u32,
    /// The bridge (`tsb<VNI>`).
    pub bridge: u32,
    /// The vxlan device (`tsx<VNI>`).
    pub vxlan: u32,
    /// The bridge's local port (`tsl<VNI>`), a veth end.
    pub port: u32,
}

/// The names of a VNI's shadow devices: bridge, vxlan, local port, its peer.
pub fn names(vni: u32) -> [String; 4] {
    ["tsb", "tsx", "tsl", "tsp"].map(|p| format!("{p}{vni}"))
}

impl Shadow {
    /// Creates the shadow devices of `vni` (or takes over a complete set left by a previous
    /// run: the dumps that follow reconcile their entries).
    pub fn create(nl: &mut Nl, vni: u32, local: IpAddr) -> io::Result<Shadow> {
        let [b, x, l, p] = names(vni);
        let have = [
            nl.ifindex(&b)?,
            nl.ifindex(&x)?,
            nl.ifindex(&l)?,
            nl.ifindex(&p)?,
        ];
        if let [Some(bridge), Some(vxlan), Some(port), Some(_)] = have {
            let masters = (nl.link(vxlan)?, nl.link(port)?);
            if let (Some(xl), Some(pl)) = masters {
                if xl.master == Some(bridge) && pl.master == Some(bridge) {
                    tracing::info!(vni, "evpn: shadow devices found, reconciling them");
                    return Ok(Shadow {
                        vni,
                        bridge,
                        vxlan,
                        port,
                    });
                }
            }
        }
        for i in have.iter().take(3).flatten() {
            let _ = nl.call(&netlink::del_link(*i));
        }
        let err = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        nl.call(&netlink::add_bridge(&b)).map_err(|e| err(&b, e))?;
        nl.call(&netlink::add_vxlan(&x, vni, local, SHADOW_DSTPORT))
            .map_err(|e| err(&x, e))?;
        nl.call(&netlink::add_veth(&l, &p))
            .map_err(|e| err(&l, e))?;
        let idx = |nl: &mut Nl, n: &str| {
            nl.ifindex(n)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{n} vanished")))
        };
        let s = Shadow {
            vni,
            bridge: idx(nl, &b)?,
            vxlan: idx(nl, &x)?,
            port: idx(nl, &l)?,
        };
        let peer = idx(nl, &p)?;
        for i in [s.bridge, s.vxlan, s.port, peer] {
            nl.call(&netlink::addrgenmode_none(i))?;
        }
        // no IPv6 at all on the ports (addrgenmode none alone still lets a device send MLD
        // reports when it comes up), so nothing is ever sent into the shadow bridge. The
        // bridge has IPv6 on (without an address, whatever the namespace's default): zebra
        // installs the IPv6 MAC+IP routes as neighbours there, which the kernel refuses on a
        // device with IPv6 disabled; what the bridge itself sends reaches no vxlan device
        // (its port floods nothing).
        for (n, off) in [(&b, "0"), (&x, "1"), (&l, "1"), (&p, "1")] {
            let f = format!("/proc/sys/net/ipv6/conf/{n}/disable_ipv6");
            if let Err(e) = std::fs::write(&f, off) {
                tracing::debug!(file = %f, error = %e, "evpn: IPv6 not set");
            }
        }
        nl.call(&netlink::set_master(s.vxlan, s.bridge))?;
        nl.call(&netlink::set_master(s.port, s.bridge))?;
        nl.call(&netlink::quiet_port(s.vxlan))?;
        nl.call(&netlink::no_snooping(s.bridge))?;
        for i in [peer, s.port, s.vxlan, s.bridge] {
            nl.call(&netlink::set_up(i))?;
        }
        tracing::info!(vni, bridge = %b, vxlan = %x, port = %l, "evpn: shadow devices created");
        Ok(s)
    }

    /// Removes the devices (the veth pair goes with its first end).
    pub fn remove(&self, nl: &mut Nl) {
        for i in [self.vxlan, self.port, self.bridge] {
            if let Err(e) = nl.call(&netlink::del_link(i)) {
                tracing::warn!(vni = self.vni, error = %e, "evpn: cannot remove a shadow device");
            }
        }
    }
}

/// Counters of the EVPN service (exported as metrics).
#[derive(Debug, Default)]
pub struct EvpnStats {
    /// Remote MACs installed from zebra's routes.
    pub installed: AtomicU64,
    /// Remote MACs withdrawn.
    pub withdrawn: AtomicU64,
    /// Local MACs written to the shadow bridges (advertised).
    pub advertised: AtomicU64,
    /// Failed netlink requests and failed changes of the switch's tables.
    pub sync_errors: AtomicU64,
    /// Full dumps after a lost event (netlink overflow, a lagging table reader).
    pub resyncs: AtomicU64,
    /// Local MAC+IP bindings written to the shadow bridges (advertised).
    pub neigh_advertised: AtomicU64,
}

/// What the engine thread reads.
enum In {
    Kernel(Vec<Event>),
    KernelLost,
    Table(crate::events::Event),
    TableLost,
    /// The neighbour table has local changes (ARP/ND suppression).
    Neigh,
}

/// A running EVPN service.
pub struct Evpn {
    /// Counters.
    pub stats: Arc<EvpnStats>,
    engine: Arc<Mutex<Engine>>,
    shadows: Vec<Shadow>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Evpn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evpn")
            .field("shadows", &self.shadows)
            .finish()
    }
}

/// The VNIs of a switch: every `vxlan` port, in its port's PVID with VLAN filtering on, in
/// table VLAN 0 otherwise; and every entry of a port's `vni-map`, in its VLAN.
pub fn bindings(sw: &Switch) -> Vec<(Binding, Arc<Vtep>)> {
    let filtering = sw.settings.load().vlan_filtering;
    let reg = sw.ports();
    sw.vxlan_members()
        .into_iter()
        .map(|m| {
            let vlan = if let Some(v) = m.vlan {
                v
            } else if filtering {
                reg.vlans(m.port.id).pvid().unwrap_or(0)
            } else {
                0
            };
            (
                Binding {
                    vni: m.vtep.vni(),
                    vlan,
                    tunnel: m.port.id,
                },
                m.vtep,
            )
        })
        .collect()
}

impl Evpn {
    /// Creates the shadow devices of every VNI of `sw`, reconciles both sides and starts
    /// following them.
    pub fn start(sw: Arc<Switch>) -> io::Result<Evpn> {
        let binds = bindings(&sw);
        if binds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the switch has no vxlan port (no VNI to serve)",
            ));
        }
        let mut nl = Nl::open()?;
        let mut shadows = Vec::new();
        let mut vteps = HashMap::new();
        for (b, vtep) in &binds {
            let local = vtep.spec.local.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "vxlan port without local=")
            })?;
            shadows.push(Shadow::create(&mut nl, b.vni, local)?);
            vteps.insert(b.vni, vtep.clone());
        }
        // subscribe to both sides before dumping them, so nothing falls between
        let mut events = Socket::new(NETLINK_ROUTE)?;
        events.bind_auto()?;
        events.add_membership(netlink::RTNLGRP_NEIGH)?;
        events.add_membership(netlink::RTNLGRP_LINK)?;
        let _ = events.set_rx_buf_sz(4 << 20);
        let table = sw.events.subscribe();
        let engine = Arc::new(Mutex::new(Engine::new(
            binds.iter().map(|(b, _)| *b).collect(),
        )));
        let stats = Arc::new(EvpnStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<In>();
        let mut run = Runner {
            sw: sw.clone(),
            nl,
            engine: engine.clone(),
            shadows: shadows.clone(),
            vteps,
            stats: stats.clone(),
            stop: stop.clone(),
            neigh_written: HashMap::new(),
        };
        {
            // the table learns MAC+IP bindings from here on, and says when it has news
            let tx = Mutex::new(tx.clone());
            sw.neigh.set_advertiser(Some(Box::new(move || {
                let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(In::Neigh);
            })));
        }
        run.kernel_dump();
        run.local_dump();
        run.neigh_dump();
        {
            let (tx, stop) = (tx.clone(), stop.clone());
            std::thread::Builder::new()
                .name("evpn-netlink".into())
                .spawn(move || netlink_reader(events, tx, stop))?;
        }
        {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("evpn-table".into())
                .spawn(move || table_reader(table, tx))?;
        }
        drop(tx);
        std::thread::Builder::new()
            .name("evpn".into())
            .spawn(move || run.run(rx))?;
        Ok(Evpn {
            stats,
            engine,
            shadows,
            stop,
        })
    }

    /// The mobility sequence number of `mac` in the VNI of table VLAN `vlan` (`None`: no
    /// VNI there).
    pub fn seq(&self, vlan: u16, mac: &MacAddr) -> Option<u32> {
        let e = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        e.vni_of_vlan(vlan).map(|v| e.seq(v, mac))
    }

    /// Per VNI: the remote VTEPs of its flood list, and its remote MACs.
    pub fn vnis(&self) -> Vec<(u32, Vec<IpAddr>, usize)> {
        let e = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        e.bindings()
            .iter()
            .map(|b| (b.vni, e.flood(b.vni), e.remote_count(b.vni)))
            .collect()
    }

    /// Removes the shadow devices (zebra withdraws this VTEP's routes).
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
        match Nl::open() {
            Ok(mut nl) => {
                for s in &self.shadows {
                    s.remove(&mut nl);
                }
            }
            Err(e) => tracing::warn!(error = %e, "evpn: cannot remove the shadow devices"),
        }
    }
}

fn netlink_reader(sock: Socket, tx: mpsc::Sender<In>, stop: Arc<AtomicBool>) {
    let mut buf = Vec::with_capacity(NL_BUF);
    while !stop.load(Relaxed) {
        buf.clear();
        let msg = match sock.recv(&mut buf, 0) {
            Ok(_) => In::Kernel(
                netlink::decode(&buf)
                    .into_iter()
                    .filter_map(Result::ok)
                    .collect(),
            ),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => In::KernelLost,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "evpn: netlink events lost; the service stops following the kernel");
                return;
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

fn table_reader(
    mut rx: tokio::sync::broadcast::Receiver<crate::events::Event>,
    tx: mpsc::Sender<In>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let msg = match rx.blocking_recv() {
            Ok(e) => In::Table(e),
            Err(RecvError::Lagged(_)) => In::TableLost,
            Err(RecvError::Closed) => return,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

struct Runner {
    sw: Arc<Switch>,
    nl: Nl,
    engine: Arc<Mutex<Engine>>,
    shadows: Vec<Shadow>,
    vteps: HashMap<u32, Arc<Vtep>>,
    stats: Arc<EvpnStats>,
    stop: Arc<AtomicBool>,
    /// Local MAC+IP bindings on the shadow bridges, by VNI and address.
    neigh_written: HashMap<(u32, IpAddr), MacAddr>,
}

impl Runner {
    fn run(mut self, rx: mpsc::Receiver<In>) {
        while let Ok(m) = rx.recv() {
            if self.stop.load(Relaxed) {
                // the shadow devices are going: the ports' flushes at exit are not news
                self.sw.neigh.set_advertiser(None);
                return;
            }
            match m {
                In::Kernel(evs) => {
                    for e in evs {
                        self.kernel(e);
                    }
                }
                In::KernelLost => {
                    self.stats.resyncs.fetch_add(1, Relaxed);
                    self.kernel_dump();
                    self.neigh_dump();
                }
                In::Neigh => self.neigh_changes(),
                In::Table(crate::events::Event::Fdb {
                    mac,
                    vlan,
                    port,
                    what,
                    ..
                }) => {
                    let at = (what != crate::fdb::Change::Removed).then_some(port);
                    let acts = self.engine().table(vlan, mac, at);
                    self.apply(acts);
                }
                In::Table(_) => {}
                In::TableLost => {
                    self.stats.resyncs.fetch_add(1, Relaxed);
                    self.local_dump();
                }
            }
        }
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shadow_of_dev(&self, ifindex: u32) -> Option<(&Shadow, bool)> {
        self.shadows.iter().find_map(|s| {
            if s.vxlan == ifindex {
                Some((s, true))
            } else if s.port == ifindex {
                Some((s, false))
            } else {
                None
            }
        })
    }

    fn kernel(&mut self, e: Event) {
        let f = match e {
            Event::Fdb(f) => f,
            Event::Neigh(n) => return self.kernel_neigh(n),
            _ => return,
        };
        let Some((s, on_vxlan)) = self.shadow_of_dev(f.ifindex) else {
            return;
        };
        let vni = s.vni;
        let acts = if on_vxlan && f.master.is_some() && f.dst.is_none() {
            // the bridge's entry on the shadow vxlan device (not zebra's own entry)
            if f.add && !f.mac.is_zero() {
                self.engine().kernel_displaced(vni, f.mac)
            } else {
                Vec::new()
            }
        } else if on_vxlan {
            remote_input(&mut self.engine(), vni, &f)
        } else if f.extern_learn() || !f.add {
            self.engine().kernel_local(vni, f.mac, f.add)
        } else {
            Vec::new()
        };
        self.apply(acts);
    }

    fn kernel_dump(&mut self) {
        let all = match self.nl.dump(&netlink::dump_fdb()) {
            Ok(v) => v,
            Err(e) => {
                self.stats.sync_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "evpn: cannot dump the kernel's FDB");
                return;
            }
        };
        let mut states: HashMap<u32, KernelState> = HashMap::new();
        for e in all {
            let Event::Fdb(f) = e else { continue };
            let Some((s, on_vxlan)) = self.shadow_of_dev(f.ifindex) else {
                continue;
            };
            let k = states.entry(s.vni).or_default();
            match (on_vxlan, f.dst) {
                (true, Some(dst)) if f.mac.is_zero() => {
                    k.flood.insert(dst);
                }
                (true, Some(dst)) if f.flags & NTF_SELF != 0 => {
                    k.remote.insert(f.mac, dst);
                }
                (false, _) if f.extern_learn() => {
                    k.written.insert(f.mac);
                }
                _ => {}
            }
        }
        for s in self.shadows.clone() {
            let k = states.remove(&s.vni).unwrap_or_default();
            let acts = self.engine().kernel_dump(s.vni, k);
            self.apply(acts);
        }
    }

    fn local_dump(&mut self) {
        let now = self.sw.now();
        let local: Vec<(u16, MacAddr)> = {
            let e = self.engine();
            self.sw
                .fdb
                .snapshot(now)
                .into_iter()
                .filter(|r| !e.is_tunnel(r.port))
                .map(|r| (r.vlan, r.mac))
                .collect()
        };
        let acts = self.engine().local_dump(&local);
        self.apply(acts);
    }

    fn fail(&self, what: &str, e: &dyn std::fmt::Display) {
        self.stats.sync_errors.fetch_add(1, Relaxed);
        tracing::warn!(error = %e, "evpn: {what} failed");
    }

    fn apply(&mut self, acts: Vec<Action>) {
        let now = self.sw.now();
        for a in acts {
            match a {
                Action::WriteLocal { vni, mac } | Action::RemoveLocal { vni, mac } => {
                    let add = matches!(a, Action::WriteLocal { .. });
                    let Some(s) = self.shadows.iter().find(|s| s.vni == vni) else {
                        continue;
                    };
                    match self.nl.call(&netlink::fdb_local(s.port, mac, add)) {
                        Ok(()) => {
                            if add {
                                self.stats.advertised.fetch_add(1, Relaxed);
                            }
                        }
                        // gone already (or its device is, at exit)
                        Err(e)
                            if !add
                                && matches!(
                                    e.raw_os_error(),
                                    Some(libc::ENOENT) | Some(libc::ENODEV)
                                ) => {}
                        Err(e) => self.fail("writing the shadow bridge", &e),
                    }
                }
                Action::InstallRemote { at, mac, dst } => {
                    let Some(v) = self.vteps.get(&at.vni) else {
                        continue;
                    };
                    if let Err(e) = v.insert_user(mac, dst, EntryKind::ExternLearn, true, now) {
                        self.fail("installing a remote MAC", &e);
                        continue;
                    }
                    let key = FdbKey::new(mac, at.vlan);
                    if let Err(e) =
                        self.sw
                            .fdb
                            .insert_user(key, at.tunnel, EntryKind::ExternLearn, true, now)
                    {
                        self.fail("installing a remote MAC", &e);
                        continue;
                    }
                    self.stats.installed.fetch_add(1, Relaxed);
                }
                Action::WithdrawRemote { at, mac, dst } => {
                    if let Some(v) = self.vteps.get(&at.vni) {
                        v.remove(mac, Some(dst));
                    }
                    let key = FdbKey::new(mac, at.vlan);
                    if self.sw.fdb.port_of(&key) == Some(at.tunnel)
                        && self.sw.fdb.kind_of(&key) == Some(EntryKind::ExternLearn)
                    {
                        self.sw.fdb.remove(&key);
                    }
                    self.stats.withdrawn.fetch_add(1, Relaxed);
                }
                Action::YieldRemote { at, mac, dst } => {
                    if let Some(v) = self.vteps.get(&at.vni) {
                        v.remove(mac, Some(dst));
                    }
                }
                Action::FloodAdd { at, dst } => {
                    if let Some(v) = self.vteps.get(&at.vni) {
                        match v.append(MacAddr::ZERO, dst) {
                            Ok(()) | Err(crate::vxlan::vtep::VtepError::Exists { .. }) => {}
                            Err(e) => self.fail("adding to the flood list", &e),
                        }
                    }
                }
                Action::FloodDel { at, dst } => {
                    if let Some(v) = self.vteps.get(&at.vni) {
                        v.remove(MacAddr::ZERO, Some(dst));
                    }
                }
                Action::Seq { at, mac, seq } => {
                    let port = self
                        .sw
                        .fdb
                        .port_of(&FdbKey::new(mac, at.vlan))
                        .unwrap_or(at.tunnel);
                    self.sw.events.publish(crate::events::Event::FdbSeq {
                        mac,
                        vlan: at.vlan,
                        port,
                        seq,
                    });
                }
            }
        }
    }
}

/// An event on a shadow vxlan device: zebra's remote MACs and flood list. Only entries with
/// a destination count; the device's own entries without one are not zebra's.
fn remote_input(e: &mut Engine, vni: u32, f: &FdbEntry) -> Vec<Action> {
    let Some(dst) = f.dst else {
        return Vec::new();
    };
    if f.mac.is_zero() {
        e.kernel_flood(vni, dst, f.add)
    } else if !f.add || f.flags & (NTF_SELF | NTF_EXT_LEARNED) != 0 {
        e.kernel_remote(vni, f.mac, dst, f.add)
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shadow_names_fit_ifnamsiz() {
        for vni in [0, 1010, crate::vxlan::wire::VNI_MAX] {
            for n in super::names(vni) {
                assert!(n.len() < 16, "{n}");
            }
        }
    }
}
