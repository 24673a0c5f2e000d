//! MAC+IP bindings between the switch's neighbour table ([`crate::neigh`]) and the shadow
//! bridges, for ARP/ND suppression (a child of [`super`], the EVPN service's loop):
//!
//! - remote: zebra installs the MAC+IP routes of a VNI as neighbours on its shadow bridge
//!   (its SVI: the bridge has no VLANs), `extern_learn` in state `noarp`; they become remote
//!   bindings in the table's VLAN of that VNI, and go when zebra removes them (the kernel
//!   reports a removal as state `failed`, then the delete);
//! - local: the bindings the switch snoops are written there as `permanent` neighbours
//!   without `extern_learn` ([`netlink::neigh_local`]), which zebra takes as local and
//!   advertises with the MAC's type-2 route; removed when the binding ages out or moves.
//!
//! A full dump (at start, after lost netlink events) is a diff against what is known, as for
//! the FDB.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{netlink, Event, Runner};
use crate::evpn::netlink::NeighEntry;
use crate::wire::MacAddr;

impl Runner {
    /// The VNI and shadow bridge of table VLAN `vlan`.
    fn shadow_of_vlan(&self, vlan: u16) -> Option<(u32, u32)> {
        let vni = self.engine().vni_of_vlan(vlan)?;
        self.shadows
            .iter()
            .find(|s| s.vni == vni)
            .map(|s| (vni, s.bridge))
    }

    /// The table's local changes since the last call, written to the shadow bridges.
    pub(super) fn neigh_changes(&mut self) {
        let (changes, lost) = self.sw.neigh.take_changes();
        if lost {
            return self.neigh_locals_full();
        }
        for c in changes {
            self.neigh_write(c.vlan, c.ip, c.mac);
        }
    }

    /// Writes (or removes, `mac: None`) the local binding of `ip` in table VLAN `vlan`.
    fn neigh_write(&mut self, vlan: u16, ip: IpAddr, mac: Option<MacAddr>) {
        let Some((vni, bridge)) = self.shadow_of_vlan(vlan) else {
            return;
        };
        let key = (vni, ip);
        match mac {
            Some(mac) if self.neigh_written.get(&key) != Some(&mac) => {
                match self.nl.call(&netlink::neigh_local(bridge, ip, mac, true)) {
                    Ok(()) => {
                        self.neigh_written.insert(key, mac);
                        self.stats
                            .neigh_advertised
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => self.fail("writing a MAC+IP binding", &e),
                }
            }
            Some(_) => {}
            None => {
                if self.neigh_written.remove(&key).is_some() {
                    match self
                        .nl
                        .call(&netlink::neigh_local(bridge, ip, MacAddr::ZERO, false))
                    {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::ENOENT) | Some(libc::ENODEV)
                            ) => {}
                        Err(e) => self.fail("removing a MAC+IP binding", &e),
                    }
                }
            }
        }
    }

    /// Makes the shadow bridges hold exactly the table's local bindings.
    fn neigh_locals_full(&mut self) {
        let locals = self.sw.neigh.table().locals();
        let mut want: HashSet<(u32, IpAddr)> = HashSet::new();
        for (vlan, ip, _) in &locals {
            if let Some((vni, _)) = self.shadow_of_vlan(*vlan) {
                want.insert((vni, *ip));
            }
        }
        let stale: Vec<(u32, IpAddr)> = self
            .neigh_written
            .keys()
            .filter(|k| !want.contains(k))
            .copied()
            .collect();
        for (vni, ip) in stale {
            let b = self.engine().binding(vni);
            if let Some(b) = b {
                self.neigh_write(b.vlan, ip, None);
            }
        }
        for (vlan, ip, mac) in locals {
            self.neigh_write(vlan, ip, Some(mac));
        }
    }

    /// A neighbour event from the kernel: zebra's remote bindings on a shadow bridge.
    pub(super) fn kernel_neigh(&mut self, n: NeighEntry) {
        let Some(vni) = self
            .shadows
            .iter()
            .find(|s| s.bridge == n.ifindex)
            .map(|s| s.vni)
        else {
            return;
        };
        let Some(vlan) = self.engine().binding(vni).map(|b| b.vlan) else {
            return;
        };
        match (n.valid(), n.extern_learn(), n.mac) {
            (true, true, Some(mac)) => {
                // zebra's now (it replaced ours if the address was local here: the remote
                // route won); not ours to remove any more
                self.neigh_written.remove(&(vni, n.ip));
                let router = n.flags & netlink::NTF_ROUTER != 0;
                self.sw
                    .neigh
                    .set_remote(vlan, n.ip, mac, router, self.sw.now());
            }
            (false, ..) => {
                self.sw.neigh.table().remove_remote(vlan, n.ip);
                // one of ours removed by someone else: written again when it changes
                self.neigh_written.remove(&(vni, n.ip));
            }
            // our own write coming back, or a stranger's local entry: left alone
            _ => {}
        }
    }

    /// A full dump of the shadow bridges' neighbours: remote bindings as zebra has them now,
    /// local ones as the table has them.
    pub(super) fn neigh_dump(&mut self) {
        let mut remote: HashMap<u32, Vec<(IpAddr, MacAddr, bool)>> = HashMap::new();
        let mut written: HashMap<(u32, IpAddr), MacAddr> = HashMap::new();
        for v6 in [false, true] {
            let evs = match self.nl.dump(&netlink::dump_neigh(v6)) {
                Ok(v) => v,
                Err(e) => return self.fail("dumping the neighbours", &e),
            };
            for e in evs {
                let Event::Neigh(n) = e else { continue };
                let Some(s) = self.shadows.iter().find(|s| s.bridge == n.ifindex) else {
                    continue;
                };
                match (n.valid(), n.extern_learn(), n.mac) {
                    (true, true, Some(mac)) => remote.entry(s.vni).or_default().push((
                        n.ip,
                        mac,
                        n.flags & netlink::NTF_ROUTER != 0,
                    )),
                    (true, false, Some(mac)) => {
                        written.insert((s.vni, n.ip), mac);
                    }
                    _ => {}
                }
            }
        }
        let now = self.sw.now();
        for s in self.shadows.clone() {
            let Some(vlan) = self.engine().binding(s.vni).map(|b| b.vlan) else {
                continue;
            };
            let now_remote = remote.remove(&s.vni).unwrap_or_default();
            let had = self.sw.neigh.table().remotes(vlan);
            for (ip, _) in had {
                if !now_remote.iter().any(|(i, ..)| *i == ip) {
                    self.sw.neigh.table().remove_remote(vlan, ip);
                }
            }
            for (ip, mac, router) in now_remote {
                self.sw.neigh.set_remote(vlan, ip, mac, router, now);
            }
        }
        self.neigh_written = written;
        self.neigh_locals_full();
    }
}
