//! The sync engine: what the shadow devices and tapswitch's tables should hold, decided from
//! events, with no I/O and no clock (the service in [`super::shadow`] carries the actions
//! out). Two directions per VNI:
//!
//! - local MACs (learned, moved or aged on non-tunnel ports of the VNI's VLAN) become
//!   `extern_learn` entries on the shadow bridge's local port, which zebra advertises as
//!   type-2 routes ([`Action::WriteLocal`], [`Action::RemoveLocal`]);
//! - what zebra installs on the shadow vxlan device becomes tapswitch's: remote MACs as
//!   `extern_learn` entries with their VTEP on the vxlan port ([`Action::InstallRemote`]),
//!   the all-zero MAC's destinations as its flood list ([`Action::FloodAdd`]).
//!
//! Both sides are kept as sets, so a full dump (at start, after a restart of FRR or of
//! tapswitch, after the netlink socket overflowed) is a diff against what is known
//! ([`Engine::kernel_dump`], [`Engine::local_dump`]), and replaying an event is harmless.
//!
//! MAC mobility (RFC 7432 section 15): when a MAC known as remote is learned on a local port,
//! the local entry wins here at once (the table takes it over), it is written to the shadow
//! bridge (zebra advertises it with a higher sequence number and withdraws the remote route),
//! and the remote entry yields in the VTEP ([`Action::YieldRemote`]). When zebra removes a
//! local entry tapswitch wrote (a remote VTEP won the MAC), the engine does not write it back
//! until the table learns the MAC locally again.
//!
//! The mobility sequence number ([`Engine::seq`]): zebra does not pass BGP's to the kernel,
//! so the engine keeps its own the way zebra does (zebra_evpn_mac.c): a local and a remote
//! number per MAC. A MAC learned here while it was remote takes the remote number plus one
//! (`loc = max(rem + 1, loc)`); a remote route that replaces a local MAC or another VTEP's
//! route was advertised by a VTEP that saw the old one, so it carries one more (`rem = loc
//! + 1`, `rem + 1`); a new remote MAC starts at 0. When a MAC is neither local nor remote any
//! more (aged here, withdrawn there) it is forgotten and starts again at 0, as zebra deletes
//! a MAC no neighbour entry holds. Every change of the number shown is an [`Action::Seq`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::types::PortId;
use crate::wire::MacAddr;

/// One VNI and where its segment is in tapswitch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The VNI.
    pub vni: u32,
    /// The table VLAN of its segment (0 with VLAN filtering off).
    pub vlan: u16,
    /// The `vxlan` port that carries it.
    pub tunnel: PortId,
}

/// What the service must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `mac` on the shadow bridge's local port (`extern_learn`).
    WriteLocal {
        /// VNI.
        vni: u32,
        /// MAC.
        mac: MacAddr,
    },
    /// Remove it from there.
    RemoveLocal {
        /// VNI.
        vni: u32,
        /// MAC.
        mac: MacAddr,
    },
    /// Install a remote MAC: the VTEP's entry (`extern_learn`, `dst`) and the table's (MAC on
    /// the tunnel port, `extern_learn`).
    InstallRemote {
        /// The VNI's binding.
        at: Binding,
        /// MAC.
        mac: MacAddr,
        /// Remote VTEP.
        dst: IpAddr,
    },
    /// Remove a remote MAC: the VTEP's entry, and the table's if it still points to the
    /// tunnel as `extern_learn` (a local entry that took it over stays).
    WithdrawRemote {
        /// The VNI's binding.
        at: Binding,
        /// MAC.
        mac: MacAddr,
        /// Remote VTEP.
        dst: IpAddr,
    },
    /// A MAC moved here from a remote VTEP: remove the VTEP's entry (the table's is local
    /// now).
    YieldRemote {
        /// The VNI's binding.
        at: Binding,
        /// MAC.
        mac: MacAddr,
        /// The remote VTEP it was behind.
        dst: IpAddr,
    },
    /// Add a remote VTEP to the VNI's flood list.
    FloodAdd {
        /// The VNI's binding.
        at: Binding,
        /// Remote VTEP.
        dst: IpAddr,
    },
    /// Remove it.
    FloodDel {
        /// The VNI's binding.
        at: Binding,
        /// Remote VTEP.
        dst: IpAddr,
    },
    /// The mobility sequence number of a MAC changed (for the event stream).
    Seq {
        /// The VNI's binding.
        at: Binding,
        /// MAC.
        mac: MacAddr,
        /// The number now (see [`Engine::seq`]).
        seq: u32,
    },
}

/// The mobility sequence numbers of one MAC, as zebra keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seq {
    /// Advertised from here.
    loc: u32,
    /// Of the remote route installed.
    rem: u32,
}

#[derive(Debug, Default)]
struct Vni {
    /// Local MACs of the segment (the table says so).
    local: BTreeSet<MacAddr>,
    /// Local MACs on the shadow port (the kernel says so, or we just wrote them).
    written: BTreeSet<MacAddr>,
    /// Local MACs zebra removed: not written back until learned locally again.
    yielded: BTreeSet<MacAddr>,
    /// Local MACs whose entry the bridge moved to the shadow vxlan device: written again when
    /// the remote entry that took it is withdrawn ([`Engine::kernel_displaced`]).
    displaced: BTreeSet<MacAddr>,
    /// Remote MACs zebra installed, and their VTEP.
    remote: BTreeMap<MacAddr, IpAddr>,
    /// The flood list zebra installed.
    flood: BTreeSet<IpAddr>,
    /// Mobility sequence numbers, per MAC that is local or remote.
    seq: HashMap<MacAddr, Seq>,
}

impl Vni {
    /// The number shown for `mac`: the local one while it is local, else the remote one.
    fn shown(&self, mac: &MacAddr) -> u32 {
        let s = self.seq.get(mac).copied().unwrap_or_default();
        if self.local.contains(mac) {
            s.loc
        } else {
            s.rem
        }
    }

    /// Forgets the numbers of a MAC that is neither local nor remote.
    fn forget_if_gone(&mut self, mac: &MacAddr) {
        if !self.local.contains(mac) && !self.remote.contains_key(mac) {
            self.seq.remove(mac);
        }
    }
}

/// `out` plus an [`Action::Seq`] when the number shown for `mac` went from `before` to
/// something else.
fn seq_news(v: &Vni, at: Binding, mac: MacAddr, before: u32, mut out: Vec<Action>) -> Vec<Action> {
    let seq = v.shown(&mac);
    let known = v.local.contains(&mac) || v.remote.contains_key(&mac);
    if seq != before && known {
        out.push(Action::Seq { at, mac, seq });
    }
    out
}

/// What the kernel holds for one VNI (from a dump): the local MACs on the shadow port, the
/// remote MACs and flood list on the shadow vxlan device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelState {
    /// MACs on the shadow bridge's local port.
    pub written: BTreeSet<MacAddr>,
    /// Remote MACs and their VTEPs.
    pub remote: BTreeMap<MacAddr, IpAddr>,
    /// Flood list.
    pub flood: BTreeSet<IpAddr>,
}

/// The engine; see the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    bindings: Vec<Binding>,
    vnis: HashMap<u32, Vni>,
}

impl Engine {
    /// An engine for these VNIs.
    pub fn new(bindings: Vec<Binding>) -> Engine {
        let vnis = bindings.iter().map(|b| (b.vni, Vni::default())).collect();
        Engine { bindings, vnis }
    }

    /// The VNIs.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The binding of a VNI.
    pub fn binding(&self, vni: u32) -> Option<Binding> {
        self.bindings.iter().copied().find(|b| b.vni == vni)
    }

    /// The VNI whose segment is table VLAN `vlan`.
    pub fn vni_of_vlan(&self, vlan: u16) -> Option<u32> {
        self.bindings.iter().find(|b| b.vlan == vlan).map(|b| b.vni)
    }

    /// Whether `port` is a tunnel port of some VNI.
    pub fn is_tunnel(&self, port: PortId) -> bool {
        self.bindings.iter().any(|b| b.tunnel == port)
    }

    /// The mobility sequence number of `mac` in `vni` (see the module documentation): the
    /// local one while the MAC is local here, else the remote one; 0 for a MAC not known.
    pub fn seq(&self, vni: u32, mac: &MacAddr) -> u32 {
        self.vnis.get(&vni).map_or(0, |v| v.shown(mac))
    }

    /// Remote VTEPs of a VNI's flood list.
    pub fn flood(&self, vni: u32) -> Vec<IpAddr> {
        self.vnis
            .get(&vni)
            .map(|v| v.flood.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Remote MACs of a VNI.
    pub fn remote_count(&self, vni: u32) -> usize {
        self.vnis.get(&vni).map_or(0, |v| v.remote.len())
    }

    /// Local MACs written for a VNI.
    pub fn written_count(&self, vni: u32) -> usize {
        self.vnis.get(&vni).map_or(0, |v| v.written.len())
    }

    /// The table says `mac` in table VLAN `vlan` is now on `port` (`None`: gone). Entries on
    /// tunnel ports are not local.
    pub fn table(&mut self, vlan: u16, mac: MacAddr, port: Option<PortId>) -> Vec<Action> {
        let Some(vni) = self.vni_of_vlan(vlan) else {
            return Vec::new();
        };
        let local = port.is_some_and(|p| !self.is_tunnel(p));
        self.local(vni, mac, local)
    }

    fn local(&mut self, vni: u32, mac: MacAddr, local: bool) -> Vec<Action> {
        let Some(at) = self.binding(vni) else {
            return Vec::new();
        };
        if !mac.is_valid_source() {
            return Vec::new();
        }
        let v = self.vnis.entry(vni).or_default();
        let before = v.shown(&mac);
        let mut out = Vec::new();
        if local {
            v.yielded.remove(&mac);
            if v.local.insert(mac) {
                if let Some(dst) = v.remote.get(&mac).copied() {
                    // a move from a remote VTEP: zebra's loc = max(rem + 1, loc)
                    let s = v.seq.entry(mac).or_default();
                    s.loc = s.loc.max(s.rem.saturating_add(1));
                    out.push(Action::YieldRemote { at, mac, dst });
                }
            }
            if v.written.insert(mac) {
                out.push(Action::WriteLocal { vni, mac });
            }
        } else {
            v.local.remove(&mac);
            v.yielded.remove(&mac);
            v.displaced.remove(&mac);
            v.forget_if_gone(&mac);
            if v.written.remove(&mac) {
                out.push(Action::RemoveLocal { vni, mac });
            }
        }
        seq_news(v, at, mac, before, out)
    }

    /// The kernel reports a local entry on the shadow port of `vni` (ours) added or removed.
    pub fn kernel_local(&mut self, vni: u32, mac: MacAddr, add: bool) -> Vec<Action> {
        let Some(v) = self.vnis.get_mut(&vni) else {
            return Vec::new();
        };
        if add {
            v.written.insert(mac);
            if !v.local.contains(&mac) {
                // not ours (left from before a restart, or written by someone else): remove
                v.written.remove(&mac);
                return vec![Action::RemoveLocal { vni, mac }];
            }
        } else if v.written.remove(&mac) && v.local.contains(&mac) {
            // zebra removed a MAC that is local here: a remote VTEP won it; do not fight
            v.yielded.insert(mac);
        }
        Vec::new()
    }

    /// The shadow bridge's entry of `mac` is now on the shadow vxlan device of `vni`. When it
    /// was a local MAC written on the shadow port, the kernel moved it there: updating or
    /// deleting zebra's remote entry of a MAC that just moved here (the bridge follows the
    /// vxlan device's `extern_learn` entries, whatever port the bridge entry is on), and zebra
    /// then sees the local MAC go. That is not zebra's yield (which comes with a remote route
    /// that wins): the MAC is written again once the remote entry is withdrawn.
    pub fn kernel_displaced(&mut self, vni: u32, mac: MacAddr) -> Vec<Action> {
        if let Some(v) = self.vnis.get_mut(&vni) {
            if v.local.contains(&mac) && v.written.remove(&mac) {
                v.displaced.insert(mac);
            }
        }
        Vec::new()
    }

    /// zebra installed (or removed) a remote MAC on the shadow vxlan device of `vni`.
    pub fn kernel_remote(&mut self, vni: u32, mac: MacAddr, dst: IpAddr, add: bool) -> Vec<Action> {
        let Some(at) = self.binding(vni) else {
            return Vec::new();
        };
        let v = self.vnis.entry(vni).or_default();
        let before = v.shown(&mac);
        let mut out = Vec::new();
        if add {
            let old = v.remote.insert(mac, dst);
            if old == Some(dst) {
                return out;
            }
            let s = v.seq.entry(mac).or_default();
            if let Some(o) = old {
                // another VTEP's route replaced this one's: it saw it, and added one
                s.rem = s.rem.saturating_add(1);
                out.push(Action::WithdrawRemote { at, mac, dst: o });
            }
            if v.local.remove(&mac) {
                // zebra installs a remote MAC it had as local only when the remote route
                // wins (a higher sequence number): the local entry yields
                s.rem = s.rem.max(s.loc.saturating_add(1));
                v.displaced.remove(&mac);
            }
            out.push(Action::InstallRemote { at, mac, dst });
        } else if v.remote.get(&mac) == Some(&dst) {
            v.remote.remove(&mac);
            // zebra resets the remote number of a withdrawn route
            if let Some(s) = v.seq.get_mut(&mac) {
                s.rem = 0;
            }
            v.forget_if_gone(&mac);
            out.push(Action::WithdrawRemote { at, mac, dst });
            // the local entry the bridge gave to this remote one comes back; zebra saw
            // the local MAC go, so it is a new MAC there (number 0)
            if v.displaced.remove(&mac) && v.local.contains(&mac) && v.written.insert(mac) {
                v.seq.remove(&mac);
                out.push(Action::WriteLocal { vni, mac });
            }
        }
        seq_news(v, at, mac, before, out)
    }

    /// zebra added (or removed) a flood-list entry (the all-zero MAC) of `vni`.
    pub fn kernel_flood(&mut self, vni: u32, dst: IpAddr, add: bool) -> Vec<Action> {
        let Some(at) = self.binding(vni) else {
            return Vec::new();
        };
        let v = self.vnis.entry(vni).or_default();
        match add {
            true if v.flood.insert(dst) => vec![Action::FloodAdd { at, dst }],
            false if v.flood.remove(&dst) => vec![Action::FloodDel { at, dst }],
            _ => Vec::new(),
        }
    }

    /// A full dump of what the kernel holds for `vni`: the difference with what the engine
    /// knew becomes actions (remote MACs and flood entries installed or withdrawn, local
    /// MACs written again or removed).
    pub fn kernel_dump(&mut self, vni: u32, k: KernelState) -> Vec<Action> {
        let Some(at) = self.binding(vni) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let old_remote: Vec<(MacAddr, IpAddr)> = self
            .vnis
            .get(&vni)
            .map(|v| v.remote.iter().map(|(m, d)| (*m, *d)).collect())
            .unwrap_or_default();
        for (mac, dst) in old_remote {
            if k.remote.get(&mac) != Some(&dst) {
                out.extend(self.kernel_remote(vni, mac, dst, false));
            }
        }
        for (mac, dst) in &k.remote {
            out.extend(self.kernel_remote(vni, *mac, *dst, true));
        }
        let old_flood = self.flood(vni);
        for dst in old_flood {
            if !k.flood.contains(&dst) {
                out.extend(self.kernel_flood(vni, dst, false));
            }
        }
        for dst in &k.flood {
            out.extend(self.kernel_flood(vni, *dst, true));
        }
        let v = self.vnis.entry(vni).or_default();
        v.written = k.written;
        v.displaced.clear();
        for mac in v.written.clone() {
            if !v.local.contains(&mac) {
                v.written.remove(&mac);
                out.push(Action::RemoveLocal { vni, mac });
            }
        }
        for mac in v.local.clone() {
            if !v.yielded.contains(&mac) && v.written.insert(mac) {
                out.push(Action::WriteLocal { vni, mac });
            }
        }
        let _ = at;
        out
    }

    /// A full view of the table: the local MACs of each VLAN now (after the table event
    /// stream lagged, or at start).
    pub fn local_dump(&mut self, local: &[(u16, MacAddr)]) -> Vec<Action> {
        let mut now: HashMap<u32, BTreeSet<MacAddr>> = HashMap::new();
        for (vlan, mac) in local {
            if let Some(vni) = self.vni_of_vlan(*vlan) {
                now.entry(vni).or_default().insert(*mac);
            }
        }
        let mut out = Vec::new();
        for b in self.bindings.clone() {
            let want = now.remove(&b.vni).unwrap_or_default();
            let had: Vec<MacAddr> = self
                .vnis
                .get(&b.vni)
                .map(|v| v.local.iter().copied().collect())
                .unwrap_or_default();
            for mac in had {
                if !want.contains(&mac) {
                    out.extend(self.local(b.vni, mac, false));
                }
            }
            for mac in want {
                out.extend(self.local(b.vni, mac, true));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUN: PortId = PortId(9);
    const HOST: PortId = PortId(1);
    const B: Binding = Binding {
        vni: 1010,
        vlan: 10,
        tunnel: TUN,
    };

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn engine() -> Engine {
        Engine::new(vec![
            B,
            Binding {
                vni: 1020,
                vlan: 20,
                tunnel: TUN,
            },
        ])
    }

    #[test]
    fn local_macs_are_written_once_and_removed_when_they_go() {
        let mut e = engine();
        assert_eq!(
            e.table(10, mac(1), Some(HOST)),
            [Action::WriteLocal {
                vni: 1010,
                mac: mac(1)
            }]
        );
        assert!(e.table(10, mac(1), Some(PortId(2))).is_empty(), "a move");
        assert!(e.kernel_local(1010, mac(1), true).is_empty(), "our echo");
        // on the tunnel port, or in a VLAN without a VNI, it is not local
        assert!(e.table(30, mac(2), Some(HOST)).is_empty());
        assert!(e.table(10, mac(3), Some(TUN)).is_empty());
        assert_eq!(
            e.table(10, mac(1), None),
            [Action::RemoveLocal {
                vni: 1010,
                mac: mac(1)
            }]
        );
        assert!(e.table(10, mac(1), None).is_empty());
        // not unicast: never
        assert!(e.table(10, MacAddr::BROADCAST, Some(HOST)).is_empty());
        // the other VNI is its own
        assert_eq!(e.table(20, mac(1), Some(HOST)).len(), 1);
        assert_eq!((e.written_count(1010), e.written_count(1020)), (0, 1));
    }

    #[test]
    fn remote_macs_and_the_flood_list_follow_zebra() {
        let mut e = engine();
        let (b, c) = (ip("198.18.0.2"), ip("198.18.0.3"));
        assert_eq!(
            e.kernel_remote(1010, mac(5), b, true),
            [Action::InstallRemote {
                at: B,
                mac: mac(5),
                dst: b
            }]
        );
        assert!(
            e.kernel_remote(1010, mac(5), b, true).is_empty(),
            "replayed"
        );
        // moved to another VTEP: the old entry goes, the new one comes
        assert_eq!(
            e.kernel_remote(1010, mac(5), c, true),
            [
                Action::WithdrawRemote {
                    at: B,
                    mac: mac(5),
                    dst: b
                },
                Action::InstallRemote {
                    at: B,
                    mac: mac(5),
                    dst: c
                },
                Action::Seq {
                    at: B,
                    mac: mac(5),
                    seq: 1
                }
            ]
        );
        assert!(
            e.kernel_remote(1010, mac(5), b, false).is_empty(),
            "a stale delete"
        );
        assert_eq!(e.kernel_remote(1010, mac(5), c, false).len(), 1);
        assert_eq!(
            e.kernel_flood(1010, b, true),
            [Action::FloodAdd { at: B, dst: b }]
        );
        assert!(e.kernel_flood(1010, b, true).is_empty());
        assert_eq!(e.flood(1010), [b]);
        assert_eq!(
            e.kernel_flood(1010, b, false),
            [Action::FloodDel { at: B, dst: b }]
        );
        assert!(e.kernel_flood(999, b, true).is_empty(), "not our VNI");
    }

    #[test]
    fn mobility_remote_to_local_and_back() {
        let mut e = engine();
        let b = ip("198.18.0.2");
        e.kernel_remote(1010, mac(7), b, true);
        // the MAC shows up on a local port: advertised from here, the remote entry yields
        let a = e.table(10, mac(7), Some(HOST));
        assert_eq!(
            a,
            [
                Action::YieldRemote {
                    at: B,
                    mac: mac(7),
                    dst: b
                },
                Action::WriteLocal {
                    vni: 1010,
                    mac: mac(7)
                },
                Action::Seq {
                    at: B,
                    mac: mac(7),
                    seq: 1
                }
            ]
        );
        assert_eq!(e.seq(1010, &mac(7)), 1);
        e.kernel_local(1010, mac(7), true);
        // zebra withdraws the remote route: the table entry (local now) stays
        assert_eq!(
            e.kernel_remote(1010, mac(7), b, false),
            [Action::WithdrawRemote {
                at: B,
                mac: mac(7),
                dst: b
            }]
        );
        // later the MAC moves back to B, which wins: zebra removes our local entry, and the
        // engine does not write it back while the table still has it local
        assert!(e.kernel_local(1010, mac(7), false).is_empty());
        assert_eq!(
            e.kernel_remote(1010, mac(7), b, true),
            [
                Action::InstallRemote {
                    at: B,
                    mac: mac(7),
                    dst: b
                },
                Action::Seq {
                    at: B,
                    mac: mac(7),
                    seq: 2
                }
            ]
        );
        assert_eq!(e.seq(1010, &mac(7)), 2);
        // the install moved the table entry to the tunnel port: nothing to remove any more
        assert!(e.table(10, mac(7), Some(TUN)).is_empty());
        // learned locally once more: written again
        assert!(e
            .table(10, mac(7), Some(HOST))
            .contains(&Action::WriteLocal {
                vni: 1010,
                mac: mac(7)
            }));
    }

    #[test]
    fn a_local_mac_the_bridge_gave_to_a_withdrawn_remote_entry_is_written_again() {
        // seen with FRR 8.4: a MAC behind B moves here; tapswitch writes it on the shadow
        // port, then zebra's update and removal of B's entry on the vxlan device take the
        // bridge's entry with them
        let b = ip("198.18.0.2");
        let mut e = engine();
        e.kernel_remote(1010, mac(9), b, true);
        e.table(10, mac(9), Some(HOST));
        e.kernel_local(1010, mac(9), true);
        assert!(e.kernel_displaced(1010, mac(9)).is_empty());
        assert_eq!(
            e.kernel_remote(1010, mac(9), b, false),
            [
                Action::WithdrawRemote {
                    at: B,
                    mac: mac(9),
                    dst: b
                },
                Action::WriteLocal {
                    vni: 1010,
                    mac: mac(9)
                },
                Action::Seq {
                    at: B,
                    mac: mac(9),
                    seq: 0
                }
            ]
        );
        assert_eq!(e.written_count(1010), 1);
        assert_eq!(e.seq(1010, &mac(9)), 0, "a new MAC for zebra");
        // when a remote route wins instead, the bridge's move is the yield: nothing written
        let c = ip("198.18.0.3");
        e.kernel_displaced(1010, mac(9));
        let a = e.kernel_remote(1010, mac(9), c, true);
        assert!(
            !a.iter().any(|a| matches!(a, Action::WriteLocal { .. })),
            "{a:?}"
        );
        assert!(!e
            .kernel_remote(1010, mac(9), c, false)
            .iter()
            .any(|a| matches!(a, Action::WriteLocal { .. })));
        // a remote MAC's own bridge entry on the vxlan device is no displacement
        e.kernel_remote(1010, mac(8), b, true);
        e.kernel_displaced(1010, mac(8));
        assert_eq!(e.kernel_remote(1010, mac(8), b, false).len(), 1);
    }

    #[test]
    fn a_zebra_removal_of_a_local_mac_is_not_fought() {
        let mut e = engine();
        e.table(10, mac(1), Some(HOST));
        e.kernel_local(1010, mac(1), true);
        assert!(e.kernel_local(1010, mac(1), false).is_empty());
        // a full dump does not write it back either
        let a = e.kernel_dump(1010, KernelState::default());
        assert!(a.is_empty(), "{a:?}");
        // a stranger's entry on our port is removed
        assert_eq!(
            e.kernel_local(1010, mac(9), true),
            [Action::RemoveLocal {
                vni: 1010,
                mac: mac(9)
            }]
        );
    }

    /// The actions of a step, less its [`Action::Seq`]s, and the numbers those said.
    fn seqs(a: Vec<Action>) -> Vec<u32> {
        a.into_iter()
            .filter_map(|a| match a {
                Action::Seq { seq, .. } => Some(seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sequence_numbers_follow_zebra_in_the_three_site_move() {
        // The three-site test: a MAC behind B (a Linux VTEP, route without a number: 0)
        // shows up at A. A's zebra advertises it with max(0 + 1, 0) = 1, and C's zebra
        // installs A's route with 1.
        let (ua, ub) = (ip("198.18.0.1"), ip("198.18.0.2"));
        let (mut a, mut c) = (engine(), engine());
        assert!(seqs(a.kernel_remote(1010, mac(9), ub, true)).is_empty());
        assert!(seqs(c.kernel_remote(1010, mac(9), ub, true)).is_empty());
        assert_eq!((a.seq(1010, &mac(9)), c.seq(1010, &mac(9))), (0, 0));
        assert_eq!(seqs(a.table(10, mac(9), Some(HOST))), [1]);
        assert_eq!(a.seq(1010, &mac(9)), 1);
        // B's withdrawal of its own route changes nothing at A (the local number stays)
        assert!(seqs(a.kernel_remote(1010, mac(9), ub, false)).is_empty());
        assert_eq!(a.seq(1010, &mac(9)), 1);
        // at C, A's route replaces B's: one more than B's
        assert_eq!(seqs(c.kernel_remote(1010, mac(9), ua, true)), [1]);
        assert!(seqs(c.kernel_remote(1010, mac(9), ub, false)).is_empty());
        assert_eq!(c.seq(1010, &mac(9)), 1);
        // the other VNI knows nothing of it
        assert_eq!(c.seq(1020, &mac(9)), 0);
    }

    #[test]
    fn every_move_adds_one_and_a_mac_gone_everywhere_starts_again() {
        let (ub, uc) = (ip("198.18.0.2"), ip("198.18.0.3"));
        let mut e = engine();
        // local first (0), then won by B (1), back here (2), to C through B's route (3, 4)
        assert!(seqs(e.table(10, mac(4), Some(HOST))).is_empty());
        assert!(e.kernel_local(1010, mac(4), false).is_empty());
        assert_eq!(seqs(e.kernel_remote(1010, mac(4), ub, true)), [1]);
        e.table(10, mac(4), Some(TUN));
        assert_eq!(seqs(e.table(10, mac(4), Some(HOST))), [2]);
        e.kernel_remote(1010, mac(4), ub, false);
        assert!(e.kernel_local(1010, mac(4), false).is_empty());
        assert_eq!(seqs(e.kernel_remote(1010, mac(4), ub, true)), [3]);
        assert_eq!(seqs(e.kernel_remote(1010, mac(4), uc, true)), [4]);
        assert_eq!(e.seq(1010, &mac(4)), 4);
        // a replayed install is not a move
        assert!(e.kernel_remote(1010, mac(4), uc, true).is_empty());
        // withdrawn everywhere (the table entry went with it): forgotten, no news
        assert!(seqs(e.kernel_remote(1010, mac(4), uc, false)).is_empty());
        assert!(seqs(e.table(10, mac(4), None)).is_empty());
        assert_eq!(e.seq(1010, &mac(4)), 0);
        // learned here again: a new MAC, 0
        assert!(seqs(e.table(10, mac(4), Some(HOST))).is_empty());
        assert_eq!(e.seq(1010, &mac(4)), 0);
        // a local MAC that ages here while no remote route holds it is forgotten too
        e.kernel_remote(1010, mac(4), ub, true);
        assert_eq!(e.seq(1010, &mac(4)), 1, "won by B");
        assert_eq!(seqs(e.table(10, mac(4), Some(HOST))), [2]);
        e.kernel_remote(1010, mac(4), ub, false);
        assert!(seqs(e.table(10, mac(4), None)).is_empty());
        assert!(seqs(e.table(10, mac(4), Some(HOST))).is_empty());
        assert_eq!(e.seq(1010, &mac(4)), 0);
    }

    #[test]
    fn dumps_reconcile_both_sides() {
        let mut e = engine();
        let (b, c) = (ip("198.18.0.2"), ip("198.18.0.3"));
        e.table(10, mac(1), Some(HOST));
        e.table(10, mac(2), Some(HOST));
        e.kernel_remote(1010, mac(5), b, true);
        e.kernel_remote(1010, mac(6), b, true);
        e.kernel_flood(1010, b, true);
        // FRR restarted and the kernel now holds: mac 1 written, mac 3 (stale) written,
        // mac 5 behind c, mac 6 gone, flood c only
        let k = KernelState {
            written: [mac(1), mac(3)].into(),
            remote: [(mac(5), c)].into(),
            flood: [c].into(),
        };
        let mut a = e.kernel_dump(1010, k);
        let want = vec![
            Action::WithdrawRemote {
                at: B,
                mac: mac(5),
                dst: b,
            },
            Action::WithdrawRemote {
                at: B,
                mac: mac(6),
                dst: b,
            },
            Action::InstallRemote {
                at: B,
                mac: mac(5),
                dst: c,
            },
            Action::FloodDel { at: B, dst: b },
            Action::FloodAdd { at: B, dst: c },
            Action::RemoveLocal {
                vni: 1010,
                mac: mac(3),
            },
            Action::WriteLocal {
                vni: 1010,
                mac: mac(2),
            },
        ];
        a.sort_by_key(|x| format!("{x:?}"));
        let mut w = want.clone();
        w.sort_by_key(|x| format!("{x:?}"));
        assert_eq!(a, w);
        // the same dump again changes nothing
        let k = KernelState {
            written: [mac(1), mac(2)].into(),
            remote: [(mac(5), c)].into(),
            flood: [c].into(),
        };
        assert!(e.kernel_dump(1010, k).is_empty());
        // tapswitch's table after a lag: mac 2 went, mac 4 came
        let a = e.local_dump(&[(10, mac(1)), (10, mac(4)), (30, mac(8))]);
        assert_eq!(
            a,
            [
                Action::RemoveLocal {
                    vni: 1010,
                    mac: mac(2)
                },
                Action::WriteLocal {
                    vni: 1010,
                    mac: mac(4)
                }
            ]
        );
    }
}
