//! Every forwarding rule of the decision function, without I/O.

use super::*;
use crate::wire::build_frame;
use std::collections::HashMap;

const P1: PortId = PortId(1);
const P2: PortId = PortId(2);
const P3: PortId = PortId(3);

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}

/// A tiny port directory plus table, to run decisions and floods like the dataplane does.
struct Rig {
    fdb: Fdb,
    flags: HashMap<PortId, PortFlags>,
    settings: Settings,
    now: Timestamp,
}

impl PortDirectory for Rig {
    fn flags_of(&self, id: PortId) -> Option<PortFlags> {
        self.flags.get(&id).copied()
    }
    fn uplink(&self) -> Option<PortId> {
        self.flags
            .iter()
            .find(|(_, f)| f.contains(PortFlags::UPLINK))
            .map(|(p, _)| *p)
    }
}

impl Rig {
    fn new(n: u32) -> Rig {
        Rig {
            fdb: Fdb::new(1000),
            flags: (1..=n).map(|i| (PortId(i), PortFlags::default())).collect(),
            settings: Settings::default(),
            now: Timestamp(0),
        }
    }
    fn set(&mut self, p: PortId, f: PortFlags, on: bool) {
        let cur = self.flags[&p];
        self.flags.insert(p, cur.with(f, on));
    }
    fn decide_raw(&self, ingress: PortId, bytes: &[u8]) -> Decision {
        let frame = EthernetFrame::new_checked(bytes).unwrap();
        decide(
            &self.settings,
            &self.fdb,
            ingress,
            self.flags[&ingress],
            &frame,
            0,
            self,
            self.now,
        )
    }
    fn decide(&self, ingress: PortId, src: MacAddr, dst: MacAddr) -> Decision {
        self.decide_raw(ingress, &build_frame(dst, src, 0x0800, &[0; 46]))
    }
    /// The ports a frame goes out of, as the dataplane would send it.
    fn out(&self, ingress: PortId, src: MacAddr, dst: MacAddr) -> Vec<PortId> {
        self.targets(ingress, self.decide(ingress, src, dst))
    }
    fn targets(&self, ingress: PortId, d: Decision) -> Vec<PortId> {
        let mut v = match d {
            Decision::Forward(p) => vec![p],
            Decision::Drop(_) => vec![],
            Decision::Flood { kind, except } => self
                .flags
                .iter()
                .filter(|(p, f)| {
                    flood_eligible(
                        self.settings.mode,
                        ingress,
                        self.flags[&ingress],
                        **p,
                        **f,
                        kind,
                        except,
                    )
                })
                .map(|(p, _)| *p)
                .collect(),
        };
        v.sort();
        v
    }
}

#[test]
fn learns_before_deciding_and_floods_unknown() {
    let r = Rig::new(3);
    assert_eq!(
        r.decide(P1, mac(1), mac(2)),
        Decision::Flood {
            kind: FloodKind::UnknownUnicast,
            except: None
        }
    );
    assert_eq!(r.out(P1, mac(1), mac(2)), vec![P2, P3]);
    assert_eq!(r.fdb.port_of(&FdbKey::new(mac(1), 0)), Some(P1));
    // reply is known unicast, goes to P1 only
    assert_eq!(r.decide(P2, mac(2), mac(1)), Decision::Forward(P1));
    assert_eq!(r.decide(P3, mac(3), mac(2)), Decision::Forward(P2));
}

#[test]
fn invalid_sources_dropped_not_learned() {
    let r = Rig::new(2);
    for src in [
        MacAddr::BROADCAST,
        MacAddr::ZERO,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
    ] {
        assert_eq!(
            r.decide(P1, src, mac(2)),
            Decision::Drop(RxDrop::InvalidSource)
        );
    }
    assert!(r.fdb.is_empty());
}

#[test]
fn broadcast_and_multicast_flood() {
    let r = Rig::new(3);
    assert_eq!(
        r.decide(P1, mac(1), MacAddr::BROADCAST),
        Decision::Flood {
            kind: FloodKind::Broadcast,
            except: None
        }
    );
    let mcast = MacAddr([0x01, 0, 0x5e, 0, 0, 0xfb]);
    assert_eq!(
        r.decide(P1, mac(1), mcast),
        Decision::Flood {
            kind: FloodKind::Multicast,
            except: None
        }
    );
    assert_eq!(r.out(P1, mac(1), mcast), vec![P2, P3]);
}

#[test]
fn known_unicast_to_ingress_port_is_dropped_not_flooded() {
    let r = Rig::new(3);
    r.decide(P1, mac(2), MacAddr::BROADCAST); // mac(2) lives behind P1 too
    assert_eq!(
        r.decide(P1, mac(1), mac(2)),
        Decision::Drop(RxDrop::SamePort)
    );
}

#[test]
fn hairpin_reflects_unicast_and_floods() {
    let mut r = Rig::new(3);
    r.set(P1, PortFlags::HAIRPIN, true);
    r.decide(P1, mac(2), MacAddr::BROADCAST);
    assert_eq!(r.decide(P1, mac(1), mac(2)), Decision::Forward(P1));
    assert_eq!(r.out(P1, mac(1), MacAddr::BROADCAST), vec![P1, P2, P3]);
    assert_eq!(r.out(P1, mac(1), mac(9)), vec![P1, P2, P3]);
    // hairpin on P1 does not reflect frames entering P2 back to P2
    assert_eq!(r.out(P2, mac(3), MacAddr::BROADCAST), vec![P1, P3]);
}

#[test]
fn hairpin_port_with_flood_off_gets_no_unknown_unicast_back() {
    let mut r = Rig::new(2);
    r.set(P1, PortFlags::HAIRPIN, true);
    r.set(P1, PortFlags::FLOOD, false);
    assert_eq!(r.out(P1, mac(1), mac(9)), vec![P2]);
    assert_eq!(r.out(P1, mac(1), MacAddr::BROADCAST), vec![P1, P2]);
}

#[test]
fn isolated_never_reaches_isolated() {
    let mut r = Rig::new(3);
    r.set(P1, PortFlags::ISOLATED, true);
    r.set(P2, PortFlags::ISOLATED, true);
    r.decide(P2, mac(2), MacAddr::BROADCAST);
    r.decide(P3, mac(3), MacAddr::BROADCAST);
    assert_eq!(r.out(P1, mac(1), MacAddr::BROADCAST), vec![P3]);
    assert_eq!(
        r.decide(P1, mac(1), mac(2)),
        Decision::Drop(RxDrop::Isolated)
    );
    assert_eq!(r.decide(P1, mac(1), mac(3)), Decision::Forward(P3));
    assert_eq!(r.decide(P3, mac(3), mac(2)), Decision::Forward(P2));
    assert_eq!(r.out(P3, mac(3), MacAddr::BROADCAST), vec![P1, P2]);
    // an isolated hairpin port does not get its own floods back (br_skb_isolated)
    r.set(P1, PortFlags::HAIRPIN, true);
    assert_eq!(r.out(P1, mac(1), MacAddr::BROADCAST), vec![P3]);
}

#[test]
fn per_kind_flood_flags() {
    let mut r = Rig::new(4);
    r.set(P2, PortFlags::FLOOD, false);
    r.set(P3, PortFlags::MCAST_FLOOD, false);
    r.set(PortId(4), PortFlags::BCAST_FLOOD, false);
    assert_eq!(r.out(P1, mac(1), mac(9)), vec![P3, PortId(4)]);
    assert_eq!(
        r.out(P1, mac(1), MacAddr([1, 0, 0x5e, 1, 1, 1])),
        vec![P2, PortId(4)]
    );
    assert_eq!(r.out(P1, mac(1), MacAddr::BROADCAST), vec![P2, P3]);
    // known unicast ignores flood flags
    r.decide(P2, mac(2), MacAddr::BROADCAST);
    assert_eq!(r.out(P1, mac(1), mac(2)), vec![P2]);
}

#[test]
fn learning_off_and_ageing_zero() {
    let mut r = Rig::new(2);
    r.set(P1, PortFlags::LEARNING, false);
    r.decide(P1, mac(1), MacAddr::BROADCAST);
    assert!(r.fdb.is_empty());
    assert_eq!(r.out(P2, mac(2), mac(1)), vec![P1], "unknown, flooded");
    r.set(P1, PortFlags::LEARNING, true);
    r.settings.ageing_ms = 0;
    r.decide(P1, mac(1), MacAddr::BROADCAST);
    assert_eq!(
        r.fdb.port_of(&FdbKey::new(mac(1), 0)),
        None,
        "ageing 0 learns nothing"
    );
    // but a static entry still forwards
    r.fdb
        .insert_user(
            FdbKey::new(mac(1), 0),
            P1,
            crate::fdb::EntryKind::Static,
            false,
            r.now,
        )
        .unwrap();
    assert_eq!(r.decide(P2, mac(2), mac(1)), Decision::Forward(P1));
}

#[test]
fn an_entry_of_a_vanished_port_floods_and_is_forgotten() {
    let mut r = Rig::new(3);
    r.decide(P3, mac(3), MacAddr::BROADCAST);
    r.flags.remove(&P3);
    assert_eq!(r.out(P1, mac(1), mac(3)), vec![P2]);
    assert_eq!(r.fdb.port_of(&FdbKey::new(mac(3), 0)), None);
}

#[test]
fn mac_move_takes_effect_on_next_frame() {
    let r = Rig::new(3);
    r.decide(P1, mac(1), MacAddr::BROADCAST);
    assert_eq!(r.decide(P3, mac(3), mac(1)), Decision::Forward(P1));
    r.decide(P2, mac(1), MacAddr::BROADCAST);
    assert_eq!(r.decide(P3, mac(3), mac(1)), Decision::Forward(P2));
}

#[test]
fn link_local_groups() {
    let mut r = Rig::new(2);
    let group = |g: u8| MacAddr([0x01, 0x80, 0xc2, 0, 0, g]);
    for g in 2..=15u8 {
        assert_eq!(
            r.decide(P1, mac(1), group(g)),
            Decision::Drop(RxDrop::LinkLocal),
            "group {g}"
        );
    }
    assert_eq!(
        r.fdb.port_of(&FdbKey::new(mac(1), 0)),
        Some(P1),
        "link-local frames are learned"
    );
    // PAUSE is dropped before learning
    assert_eq!(
        r.decide(P1, mac(5), group(1)),
        Decision::Drop(RxDrop::LinkLocal)
    );
    assert_eq!(r.fdb.port_of(&FdbKey::new(mac(5), 0)), None);
    // the bridge group address floods (no STP)
    assert_eq!(r.out(P1, mac(1), group(0)), vec![P2]);
    // the mask opts groups in, every bit, beyond Linux
    r.settings.group_fwd_mask = 1 << 0xe | 1 << 2 | 1 << 1;
    assert_eq!(r.out(P1, mac(1), group(0xe)), vec![P2]);
    assert_eq!(r.out(P1, mac(1), group(2)), vec![P2]);
    assert_eq!(r.out(P1, mac(1), group(1)), vec![P2]);
    assert_eq!(
        r.decide(P1, mac(1), group(3)),
        Decision::Drop(RxDrop::LinkLocal)
    );
}

#[test]
fn locked_port_admits_only_known_sources() {
    let mut r = Rig::new(2);
    r.set(P1, PortFlags::LOCKED, true);
    assert_eq!(
        r.decide(P1, mac(1), MacAddr::BROADCAST),
        Decision::Drop(RxDrop::Locked)
    );
    assert!(r.fdb.is_empty(), "locked drop does not learn");
    r.fdb
        .insert_user(
            FdbKey::new(mac(1), 0),
            P1,
            crate::fdb::EntryKind::Static,
            false,
            r.now,
        )
        .unwrap();
    assert_eq!(r.out(P1, mac(1), MacAddr::BROADCAST), vec![P2]);
    // a source known on another port is dropped and not moved
    r.decide(P2, mac(2), MacAddr::BROADCAST);
    assert_eq!(
        r.decide(P1, mac(2), MacAddr::BROADCAST),
        Decision::Drop(RxDrop::Locked)
    );
    assert_eq!(r.fdb.port_of(&FdbKey::new(mac(2), 0)), Some(P2));
}

#[test]
fn vlan_tags_share_one_table() {
    let r = Rig::new(3);
    let tagged = |src: MacAddr, dst: MacAddr, vid: u8| {
        build_frame(dst, src, 0x8100, &[0, vid, 0x08, 0x00, 0, 0])
    };
    r.decide_raw(P1, &tagged(mac(1), MacAddr::BROADCAST, 10));
    assert_eq!(
        r.decide_raw(P2, &tagged(mac(2), mac(1), 20)),
        Decision::Forward(P1)
    );
    assert_eq!(r.fdb.port_of(&FdbKey::new(mac(1), 0)), Some(P1));
}

#[test]
fn mtu_rule() {
    let f = build_frame(mac(2), mac(1), 0x0800, &[0; 1504]); // 1518 bytes
    assert!(!exceeds_mtu(
        &EthernetFrame::new_checked(&f[..]).unwrap(),
        1500
    ));
    let f = build_frame(mac(2), mac(1), 0x0800, &[0; 1505]);
    assert!(exceeds_mtu(
        &EthernetFrame::new_checked(&f[..]).unwrap(),
        1500
    ));
    let t = build_frame(mac(2), mac(1), 0x8100, &[0; 1508]); // 1522 tagged
    assert!(!exceeds_mtu(
        &EthernetFrame::new_checked(&t[..]).unwrap(),
        1500
    ));
}

fn vepa_rig(mode: Mode) -> Rig {
    // P1 uplink, P2 and P3 downlinks
    let mut r = Rig::new(3);
    r.settings.mode = mode;
    r.set(P1, PortFlags::UPLINK, true);
    r
}

#[test]
fn vepa_downlinks_go_only_to_uplink() {
    let r = vepa_rig(Mode::Vepa);
    r.decide(P3, mac(3), MacAddr::BROADCAST);
    assert_eq!(
        r.out(P2, mac(2), mac(3)),
        vec![P1],
        "known sibling still via uplink"
    );
    assert_eq!(r.out(P2, mac(2), MacAddr::BROADCAST), vec![P1]);
    assert_eq!(r.out(P2, mac(2), mac(9)), vec![P1]);
}

#[test]
fn vepa_uplink_unicast_and_reflection_filter() {
    let mut r = vepa_rig(Mode::Vepa);
    r.decide(P2, mac(2), MacAddr::BROADCAST);
    r.decide(P3, mac(3), MacAddr::BROADCAST);
    // reflected broadcast from D2 goes to D3 only; the uplink does not learn it
    assert_eq!(r.out(P1, mac(2), MacAddr::BROADCAST), vec![P3]);
    assert_eq!(r.fdb.port_of(&FdbKey::new(mac(2), 0)), Some(P2));
    // reflected unicast D2 -> D3
    assert_eq!(r.out(P1, mac(2), mac(3)), vec![P3]);
    // external broadcast reaches both downlinks
    assert_eq!(r.out(P1, mac(7), MacAddr::BROADCAST), vec![P2, P3]);
    // unknown unicast from uplink: dropped, or flooded to downlinks when enabled
    assert_eq!(
        r.decide(P1, mac(7), mac(9)),
        Decision::Drop(RxDrop::VepaUnknown)
    );
    r.settings.vepa_flood_unknown = true;
    assert_eq!(r.out(P1, mac(7), mac(9)), vec![P2, P3]);
}

#[test]
fn vepa_private_drops_reflections() {
    let r = vepa_rig(Mode::VepaPrivate);
    r.decide(P2, mac(2), MacAddr::BROADCAST);
    r.decide(P3, mac(3), MacAddr::BROADCAST);
    assert_eq!(
        r.decide(P1, mac(2), mac(3)),
        Decision::Drop(RxDrop::VepaPrivate)
    );
    assert_eq!(
        r.decide(P1, mac(2), MacAddr::BROADCAST),
        Decision::Drop(RxDrop::VepaPrivate)
    );
    assert_eq!(
        r.out(P1, mac(7), mac(3)),
        vec![P3],
        "outside hosts still reach downlinks"
    );
}

#[test]
fn vepa_without_uplink_drops() {
    let mut r = Rig::new(2);
    r.settings.mode = Mode::Vepa;
    assert_eq!(
        r.decide(P1, mac(1), MacAddr::BROADCAST),
        Decision::Drop(RxDrop::NoUplink)
    );
}

#[test]
fn flag_names() {
    assert_eq!(
        PortFlags::by_name("mcast-flood"),
        Some(PortFlags::MCAST_FLOOD)
    );
    assert_eq!(PortFlags::by_name("bogus"), None);
    assert_eq!(
        format!("{:?}", PortFlags::default()),
        "[learning,flood,mcast_flood,bcast_flood]"
    );
    for (i, r) in RxDrop::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}
