//! ARP/ND suppression (Linux `neigh_suppress`, net/bridge/br_arp_nd_proxy.c): a bounded table
//! of MAC+IP bindings, and the rules for answering ARP requests and IPv6 neighbour
//! solicitations from it instead of flooding them to the ports with `neigh-suppress` (a
//! `vxlan` port in an EVPN fabric). No I/O and no clock: time is an argument; the frame path
//! ([`crate::dataplane`]) parses, asks [`arp_verdict`] / [`nd_verdict`] and sends the answer;
//! the EVPN service ([`crate::evpn`]) fills in the remote bindings and advertises the local
//! ones.
//!
//! Where bindings come from:
//! - remote: the MAC+IP routes (EVPN type 2) zebra installs as `extern_learn` neighbours on a
//!   VNI's shadow bridge ([`Table::set_remote`]); they stay until zebra removes them;
//! - local: snooped from ARP (requests, replies, gratuitous ARP) and from neighbour
//!   solicitations and advertisements received on ports without `neigh-suppress`
//!   ([`arp_binding`], [`nd_binding`], [`Table::learn`]), as a Linux VTEP's SVI learns them
//!   from the ARP/ND it sees. A local binding is refreshed by each such message and ages out
//!   after the table's ageing time without one ([`Table::age_out`]).
//!
//! When the switch answers (as `br_do_proxy_suppress_arp` / `br_do_suppress_nd` do):
//! - only when at least one port has `neigh-suppress`, and never for a frame received on such
//!   a port (it is forwarded as before);
//! - ARP requests whose target (not loopback or multicast) is in the table, and neighbour
//!   solicitations (not duplicate address detection) whose target is; the target's MAC must
//!   be in the forwarding table, behind a port with `neigh-suppress`. A target behind a local
//!   port (the ingress port included) answers for itself.
//! - Gratuitous ARP, ARP probes, unsolicited advertisements, DAD solicitations, and requests
//!   whose target's MAC is known anywhere are not sent to `neigh-suppress` ports
//!   ([`Verdict::NotToSuppressPorts`]); they still flood to the other ports. Unknown targets
//!   flood as before.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::types::{PortId, Timestamp};
use crate::wire::arp::{ArpView, ARP_REQUEST, RARP_REPLY, RARP_REQUEST};
use crate::wire::nd::NdMessage;
use crate::wire::MacAddr;

#[cfg(test)]
mod tests;

/// Bindings the table holds at most (local and remote together).
pub const DEFAULT_MAX_ENTRIES: usize = 16_384;
/// Local changes kept for the advertiser between two reads; past this, it re-reads them all.
const MAX_CHANGES: usize = 4096;

/// Where a binding comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Snooped on this local port.
    Local(PortId),
    /// A remote VTEP's MAC+IP route.
    Remote,
}

/// One binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The MAC of the IP address.
    pub mac: MacAddr,
    /// Local or remote.
    pub origin: Origin,
    /// When it was last learned or refreshed.
    pub seen: Timestamp,
    /// The address is a router's (a remote route's router flag, `NTF_ROUTER`); local
    /// bindings say no. An advertisement answering for it carries the flag.
    pub router: bool,
}

/// A local binding appeared, changed MAC, or went (`mac: None`): what the advertiser follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Table VLAN (0 with VLAN filtering off).
    pub vlan: u16,
    /// The address.
    pub ip: IpAddr,
    /// Its MAC now, `None` when it is no longer a local binding.
    pub mac: Option<MacAddr>,
}

/// What [`Table::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new binding.
    New,
    /// The same binding seen again.
    Refreshed,
    /// The address had another MAC, or was remote: it is local with this MAC now.
    Moved,
    /// The table is full: not learned.
    Full,
    /// Not an address or MAC a binding can have.
    Ignored,
}

/// The table; see the module documentation.
#[derive(Debug)]
pub struct Table {
    map: HashMap<(u16, IpAddr), Entry>,
    max: usize,
    changes: Vec<Change>,
    lost: bool,
}

/// Whether a binding may have this address: unicast, not unspecified, not loopback.
pub fn usable_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
        }
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    }
}

impl Table {
    /// An empty table of at most `max` bindings.
    pub fn new(max: usize) -> Table {
        Table {
            map: HashMap::new(),
            max,
            changes: Vec::new(),
            lost: false,
        }
    }

    /// The binding of `ip` in table VLAN `vlan`.
    pub fn lookup(&self, vlan: u16, ip: IpAddr) -> Option<Entry> {
        self.map.get(&(vlan, ip)).copied()
    }

    /// Bindings: (local, remote).
    pub fn counts(&self) -> (usize, usize) {
        let local = self
            .map
            .values()
            .filter(|e| matches!(e.origin, Origin::Local(_)))
            .count();
        (local, self.map.len() - local)
    }

    /// Every binding, sorted (for views and tests).
    pub fn entries(&self) -> Vec<(u16, IpAddr, Entry)> {
        let mut v: Vec<_> = self.map.iter().map(|((l, i), e)| (*l, *i, *e)).collect();
        v.sort_by_key(|(l, i, _)| (*l, *i));
        v
    }

    /// Every local binding (for a full resync of the advertiser).
    pub fn locals(&self) -> Vec<(u16, IpAddr, MacAddr)> {
        self.entries()
            .into_iter()
            .filter(|(_, _, e)| matches!(e.origin, Origin::Local(_)))
            .map(|(l, i, e)| (l, i, e.mac))
            .collect()
    }

    fn changed(&mut self, c: Change) {
        if self.changes.len() < MAX_CHANGES {
            self.changes.push(c);
        } else {
            self.lost = true;
        }
    }

    /// The local changes since the last call, and whether some were dropped (the reader must
    /// then re-read [`Table::locals`]).
    pub fn take_changes(&mut self) -> (Vec<Change>, bool) {
        (
            std::mem::take(&mut self.changes),
            std::mem::replace(&mut self.lost, false),
        )
    }

    /// A local binding seen at `now` on `port`. A local binding wins over a remote one (the
    /// host is here now; zebra then advertises it from here).
    pub fn learn(
        &mut self,
        vlan: u16,
        ip: IpAddr,
        mac: MacAddr,
        port: PortId,
        now: Timestamp,
    ) -> Learned {
        if !usable_ip(ip) || !mac.is_valid_source() {
            return Learned::Ignored;
        }
        let e = Entry {
            mac,
            origin: Origin::Local(port),
            seen: now,
            router: false,
        };
        let r = match self.map.get(&(vlan, ip)) {
            Some(old) if old.mac == mac && matches!(old.origin, Origin::Local(_)) => {
                Learned::Refreshed
            }
            Some(_) => Learned::Moved,
            None if self.map.len() >= self.max => return Learned::Full,
            None => Learned::New,
        };
        self.map.insert((vlan, ip), e);
        if r != Learned::Refreshed {
            self.changed(Change {
                vlan,
                ip,
                mac: Some(mac),
            });
        }
        r
    }

    /// A remote MAC+IP route installed (or changed), of a router or not; `false` if the table
    /// is full. zebra installs a remote binding for an address local here only when the
    /// remote route won.
    pub fn set_remote(
        &mut self,
        vlan: u16,
        ip: IpAddr,
        mac: MacAddr,
        router: bool,
        now: Timestamp,
    ) -> bool {
        if !usable_ip(ip) || !mac.is_valid_source() {
            return false;
        }
        match self.map.get(&(vlan, ip)) {
            Some(old) => {
                if matches!(old.origin, Origin::Local(_)) {
                    self.changed(Change {
                        vlan,
                        ip,
                        mac: None,
                    });
                }
            }
            None if self.map.len() >= self.max => return false,
            None => {}
        }
        self.map.insert(
            (vlan, ip),
            Entry {
                mac,
                origin: Origin::Remote,
                seen: now,
                router,
            },
        );
        true
    }

    /// A remote route withdrawn: the binding goes if it is remote.
    pub fn remove_remote(&mut self, vlan: u16, ip: IpAddr) -> bool {
        match self.map.get(&(vlan, ip)) {
            Some(e) if e.origin == Origin::Remote => {
                self.map.remove(&(vlan, ip));
                true
            }
            _ => false,
        }
    }

    /// Remote bindings of table VLAN `vlan` (for a resync against the kernel's).
    pub fn remotes(&self, vlan: u16) -> Vec<(IpAddr, MacAddr)> {
        self.entries()
            .into_iter()
            .filter(|(l, _, e)| *l == vlan && e.origin == Origin::Remote)
            .map(|(_, i, e)| (i, e.mac))
            .collect()
    }

    /// Removes local bindings not seen for `max_age_ms`; returns how many went.
    pub fn age_out(&mut self, now: Timestamp, max_age_ms: u64) -> usize {
        let old: Vec<(u16, IpAddr)> = self
            .map
            .iter()
            .filter(|(_, e)| {
                matches!(e.origin, Origin::Local(_))
                    && now.millis().saturating_sub(e.seen.millis()) >= max_age_ms
            })
            .map(|(k, _)| *k)
            .collect();
        for (vlan, ip) in &old {
            self.map.remove(&(*vlan, *ip));
            self.changed(Change {
                vlan: *vlan,
                ip: *ip,
                mac: None,
            });
        }
        old.len()
    }

    /// Removes the local bindings learned on `port` (a port removed).
    pub fn flush_port(&mut self, port: PortId) -> usize {
        let gone: Vec<(u16, IpAddr)> = self
            .map
            .iter()
            .filter(|(_, e)| e.origin == Origin::Local(port))
            .map(|(k, _)| *k)
            .collect();
        for (vlan, ip) in &gone {
            self.map.remove(&(*vlan, *ip));
            self.changed(Change {
                vlan: *vlan,
                ip: *ip,
                mac: None,
            });
        }
        gone.len()
    }
}

/// What to do with an ARP request or neighbour solicitation besides forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: forward or flood it as any frame.
    Pass,
    /// Flood it, but not to ports with `neigh-suppress`.
    NotToSuppressPorts,
    /// Answer it on the ingress port from this MAC; do not flood it to `neigh-suppress` ports.
    Reply(MacAddr),
}

impl Verdict {
    /// Whether ports with `neigh-suppress` must not get the frame.
    pub fn keeps_from_suppress_ports(self) -> bool {
        self != Verdict::Pass
    }
}

/// The rules of `br_do_proxy_suppress_arp` for an ARP message received while some port has
/// `neigh-suppress`. `neighbour` looks the target address up in the table, `behind_suppress`
/// tells whether a MAC is in the forwarding table and behind a `neigh-suppress` port
/// (`None`: not in the table).
pub fn arp_verdict(
    in_suppress: bool,
    op: u16,
    sip: Ipv4Addr,
    tip: Ipv4Addr,
    neighbour: impl FnOnce(IpAddr) -> Option<MacAddr>,
    behind_suppress: impl FnOnce(MacAddr) -> Option<bool>,
) -> Verdict {
    if tip.is_loopback() || tip.is_multicast() || in_suppress {
        return Verdict::Pass;
    }
    // gratuitous ARP and ARP probes (Linux compares with the RARP codes here: any request or
    // reply that announces or probes its own address)
    if op != RARP_REQUEST && op != RARP_REPLY && (sip.is_unspecified() || sip == tip) {
        return Verdict::NotToSuppressPorts;
    }
    if op != ARP_REQUEST {
        return Verdict::Pass;
    }
    target_verdict(neighbour(IpAddr::V4(tip)), behind_suppress)
}

/// The rules of `br_do_suppress_nd` for a neighbour solicitation or advertisement received
/// while some port has `neigh-suppress` (see [`arp_verdict`]).
pub fn nd_verdict(
    in_suppress: bool,
    m: &NdMessage,
    neighbour: impl FnOnce(IpAddr) -> Option<MacAddr>,
    behind_suppress: impl FnOnce(MacAddr) -> Option<bool>,
) -> Verdict {
    if in_suppress {
        return Verdict::Pass;
    }
    if !m.solicitation {
        return if m.solicited {
            Verdict::Pass
        } else {
            Verdict::NotToSuppressPorts
        };
    }
    if m.src.is_unspecified() || m.src == m.dst {
        // duplicate address detection
        return Verdict::NotToSuppressPorts;
    }
    target_verdict(neighbour(IpAddr::V6(m.target)), behind_suppress)
}

fn target_verdict(
    mac: Option<MacAddr>,
    behind_suppress: impl FnOnce(MacAddr) -> Option<bool>,
) -> Verdict {
    let Some(mac) = mac else {
        return Verdict::Pass;
    };
    match behind_suppress(mac) {
        None => Verdict::Pass,
        Some(true) => Verdict::Reply(mac),
        Some(false) => Verdict::NotToSuppressPorts,
    }
}

/// The binding an ARP message shows: its sender's address and MAC, if the MAC is the frame's
/// source (a binding relayed by someone else is not learned) and the address is usable (a
/// probe's 0.0.0.0 is not).
pub fn arp_binding(arp: &ArpView<'_>, eth_src: MacAddr) -> Option<(IpAddr, MacAddr)> {
    let ip = IpAddr::V4(arp.spa());
    (arp.sha() == eth_src && usable_ip(ip)).then_some((ip, eth_src))
}

/// The binding a neighbour message shows: a solicitation's source address with its source
/// link-layer option (not DAD: no source address), an advertisement's target with its target
/// link-layer option or the frame's source; the MAC must be the frame's source.
pub fn nd_binding(m: &NdMessage, eth_src: MacAddr) -> Option<(IpAddr, MacAddr)> {
    let (ip, mac) = if m.solicitation {
        (m.src, m.lladdr?)
    } else {
        (m.target, m.lladdr.unwrap_or(eth_src))
    };
    let ip = IpAddr::V6(ip);
    (mac == eth_src && usable_ip(ip)).then_some((ip, mac))
}

/// Counters of ARP/ND suppression (exported as metrics).
#[derive(Debug, Default)]
pub struct NeighStats {
    /// Requests answered, by family (IPv4 ARP, IPv6 ND).
    pub answered: [AtomicU64; 2],
    /// Local bindings learned or moved.
    pub learned: AtomicU64,
    /// Bindings not learned because the table was full.
    pub table_full: AtomicU64,
}

/// The switch's table with its counters, shared by the frame path (learning, lookups) and the
/// EVPN service (remote bindings, advertising). The frame path locks it only for ARP and
/// neighbour messages, and only while a port has `neigh-suppress` or the EVPN service runs.
pub struct Neigh {
    table: Mutex<Table>,
    /// Counters.
    pub stats: NeighStats,
    /// Someone advertises local bindings (the EVPN service): learn even without a
    /// `neigh-suppress` port.
    advertising: AtomicBool,
    /// A wake-up was sent for changes not read yet.
    pending: AtomicBool,
    notify: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Neigh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neigh").field("table", &self.table).finish()
    }
}

impl Default for Neigh {
    fn default() -> Self {
        Neigh::new(DEFAULT_MAX_ENTRIES)
    }
}

impl Neigh {
    /// An empty table of at most `max` bindings.
    pub fn new(max: usize) -> Neigh {
        Neigh {
            table: Mutex::new(Table::new(max)),
            stats: NeighStats::default(),
            advertising: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            notify: Mutex::new(None),
        }
    }

    /// The table, locked.
    pub fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether local bindings are learned without a `neigh-suppress` port.
    pub fn advertising(&self) -> bool {
        self.advertising.load(Relaxed)
    }

    /// Starts (or stops) following local changes: `notify` is called, from the frame path or
    /// the control thread, when changes wait in [`Neigh::take_changes`]; once per batch of them.
    pub fn set_advertiser(&self, notify: Option<Box<dyn Fn() + Send + Sync>>) {
        self.advertising.store(notify.is_some(), Relaxed);
        *self.notify.lock().unwrap_or_else(|p| p.into_inner()) = notify;
    }

    /// Local changes since the last call (see [`Table::take_changes`]).
    pub fn take_changes(&self) -> (Vec<Change>, bool) {
        self.pending.store(false, Relaxed);
        self.table().take_changes()
    }

    fn wake(&self) {
        if !self.pending.swap(true, Relaxed) {
            if let Some(f) = self
                .notify
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                f();
            }
        }
    }

    /// Learns a local binding (see [`Table::learn`]) and counts it.
    pub fn learn(&self, vlan: u16, ip: IpAddr, mac: MacAddr, port: PortId, now: Timestamp) {
        let r = self.table().learn(vlan, ip, mac, port, now);
        match r {
            Learned::New | Learned::Moved => {
                self.stats.learned.fetch_add(1, Relaxed);
                self.wake();
            }
            Learned::Full => {
                self.stats.table_full.fetch_add(1, Relaxed);
            }
            Learned::Refreshed | Learned::Ignored => {}
        }
    }

    /// The MAC of `ip` in table VLAN `vlan`.
    pub fn lookup(&self, vlan: u16, ip: IpAddr) -> Option<MacAddr> {
        self.table().lookup(vlan, ip).map(|e| e.mac)
    }

    /// Ages out local bindings (control thread).
    pub fn age_out(&self, now: Timestamp, max_age_ms: u64) {
        if self.table().age_out(now, max_age_ms) > 0 {
            self.wake();
        }
    }

    /// Forgets the local bindings of a removed port.
    pub fn flush_port(&self, port: PortId) {
        if self.table().flush_port(port) > 0 {
            self.wake();
        }
    }

    /// Whether `ip` in table VLAN `vlan` is a router's (see [`Entry::router`]).
    pub fn router(&self, vlan: u16, ip: IpAddr) -> bool {
        self.table().lookup(vlan, ip).is_some_and(|e| e.router)
    }

    /// A remote binding (see [`Table::set_remote`]); counts a full table.
    pub fn set_remote(&self, vlan: u16, ip: IpAddr, mac: MacAddr, router: bool, now: Timestamp) {
        let ok = {
            let mut t = self.table();
            let was_local = t
                .lookup(vlan, ip)
                .is_some_and(|e| matches!(e.origin, Origin::Local(_)));
            let ok = t.set_remote(vlan, ip, mac, router, now);
            if ok && was_local {
                drop(t);
                self.wake();
            }
            ok
        };
        if !ok {
            self.stats.table_full.fetch_add(1, Relaxed);
        }
    }
}
