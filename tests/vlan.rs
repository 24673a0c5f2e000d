//! VLAN filtering through the whole frame path, rootless (in-memory ports): ingress
//! classification (PVID, priority tags, other TPIDs, ports without PVID), per-VLAN learning and
//! flooding, egress tagging, 802.1ad, GSO frames through tag push and pop, and the sequences of
//! the kernel's `bridge_vlan_aware.sh` selftest.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::FdbKey;
use tapswitch::forwarding::{PortFlags, RxDrop, Settings, TxDrop};
use tapswitch::offload::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4};
use tapswitch::port::mem::MemPort;
use tapswitch::vlan::{PortVlans, Protocol, VlanSet};
use tapswitch::wire::MacAddr;

const BCAST: MacAddr = MacAddr::BROADCAST;

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i])
}

struct Rig {
    sw: Arc<Switch>,
    ports: Vec<Arc<MemPort>>,
    h: Vec<Arc<PortHandle>>,
}

impl Rig {
    /// `n` ports on a VLAN-filtering switch speaking `proto`; every port starts with the
    /// default (VID 1, PVID, untagged), as Linux gives a new port.
    fn new(n: usize, proto: Protocol) -> Rig {
        Rig::with((0..n).map(|_| MemPort::default()).collect(), proto)
    }

    fn with(ports: Vec<MemPort>, proto: Protocol) -> Rig {
        let s = Settings {
            vlan_filtering: true,
            vlan_protocol: proto,
            ..Settings::default()
        };
        let sw = Switch::new("vl", s, 1024);
        let mut r = Rig {
            sw,
            ports: Vec::new(),
            h: Vec::new(),
        };
        for (i, p) in ports.into_iter().enumerate() {
            let p = Arc::new(p);
            let h =
                r.sw.add_port(&format!("p{i}"), Box::new(p.clone()), PortFlags::default())
                    .unwrap();
            r.ports.push(p);
            r.h.push(h);
        }
        r
    }

    fn set(&self, i: usize, v: PortVlans) {
        self.sw.update_port_vlans(&self.h[i], |p| *p = v);
    }

    /// Injects `f` on port `i`; returns (port, bytes) of every frame sent.
    fn send(&self, i: usize, f: &[u8]) -> Vec<(usize, Vec<u8>)> {
        self.ports[i].inject(f);
        self.sw.pump();
        let mut out = Vec::new();
        for (j, p) in self.ports.iter().enumerate() {
            for s in p.take_sent() {
                out.push((j, s));
            }
        }
        out
    }

    fn rx_drop(&self, i: usize, r: RxDrop) -> u64 {
        self.h[i].counters.rx_dropped[r.index()].load(Relaxed)
    }

    fn tx_drop(&self, i: usize, r: TxDrop) -> u64 {
        self.h[i].counters.tx_dropped[r.index()].load(Relaxed)
    }
}

/// dst, src, optional tags (tpid, tci) outermost first, EtherType 0x88b5 and a payload.
fn frame(dst: MacAddr, src: MacAddr, tags: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&dst.0);
    v.extend_from_slice(&src.0);
    for (tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&0x88b5u16.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn ports_of(out: &[(usize, Vec<u8>)]) -> Vec<usize> {
    out.iter().map(|(p, _)| *p).collect()
}

#[test]
fn access_ports_of_two_vlans_never_reach_each_other() {
    let r = Rig::new(4, Protocol::Dot1Q);
    for (i, vid) in [(0, 10), (1, 10), (2, 20), (3, 20)] {
        r.set(i, PortVlans::access(vid).unwrap());
    }
    // a broadcast stays in its VLAN, untagged
    let f = frame(BCAST, mac(1), &[], b"hello");
    let out = r.send(0, &f);
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(out[0].1, f, "access to access: bytes unchanged");
    r.send(2, &frame(BCAST, mac(3), &[], b"x"));
    // learned per (MAC, VID)
    assert!(r.sw.fdb.port_of(&FdbKey::new(mac(1), 10)).is_some());
    assert!(r.sw.fdb.port_of(&FdbKey::new(mac(1), 0)).is_none());
    // unicast to a host of the other VLAN: unknown in this VLAN, flooded in it only
    let out = r.send(0, &frame(mac(3), mac(1), &[], b"cross"));
    assert_eq!(
        ports_of(&out),
        vec![1],
        "cross-VLAN unicast never leaves VLAN 10"
    );
    // same MAC in two VLANs on two ports: two entries
    r.send(3, &frame(BCAST, mac(1), &[], b"dup"));
    assert_eq!(r.sw.fdb.port_of(&FdbKey::new(mac(1), 20)), Some(r.h[3].id));
    assert_eq!(r.sw.fdb.port_of(&FdbKey::new(mac(1), 10)), Some(r.h[0].id));
    // per-VLAN counters
    assert_eq!(r.sw.stats.vlan_rx_frames[10].load(Relaxed), 2);
    assert_eq!(r.sw.stats.vlan_rx_frames[20].load(Relaxed), 2);
}

#[test]
fn trunk_tags_and_untags_and_filters() {
    let r = Rig::new(3, Protocol::Dot1Q);
    r.set(0, PortVlans::access(10).unwrap());
    r.set(1, PortVlans::access(20).unwrap());
    r.set(
        2,
        PortVlans::trunk(&"10;20".parse::<VlanSet>().unwrap(), None).unwrap(),
    );
    // access 10 -> trunk: tag 10 pushed
    let out = r.send(0, &frame(BCAST, mac(1), &[], b"a"));
    assert_eq!(ports_of(&out), vec![2]);
    assert_eq!(out[0].1, frame(BCAST, mac(1), &[(0x8100, 10)], b"a"));
    // trunk tagged 20 (PCP 5) -> access 20: tag popped
    let out = r.send(2, &frame(BCAST, mac(9), &[(0x8100, (5 << 13) | 20)], b"b"));
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(out[0].1, frame(BCAST, mac(9), &[], b"b"));
    // known unicast across the trunk, both ways
    let out = r.send(2, &frame(mac(1), mac(9), &[(0x8100, 10)], b"c"));
    assert_eq!(ports_of(&out), vec![0]);
    assert_eq!(out[0].1, frame(mac(1), mac(9), &[], b"c"));
    // a VID not on the trunk is dropped and counted
    let before = r.rx_drop(2, RxDrop::VlanFiltered);
    assert!(r
        .send(2, &frame(BCAST, mac(9), &[(0x8100, 30)], b"d"))
        .is_empty());
    assert_eq!(r.rx_drop(2, RxDrop::VlanFiltered), before + 1);
    // the trunk has no PVID: untagged frames on it are dropped
    assert!(r.send(2, &frame(BCAST, mac(9), &[], b"e")).is_empty());
    assert_eq!(r.rx_drop(2, RxDrop::VlanNoPvid), 1);
    // a tagged frame on an access port of another VLAN is dropped
    assert!(r
        .send(0, &frame(BCAST, mac(1), &[(0x8100, 20)], b"f"))
        .is_empty());
    assert_eq!(r.rx_drop(0, RxDrop::VlanFiltered), 1);
}

#[test]
fn native_vlan_and_priority_tags() {
    let r = Rig::new(3, Protocol::Dot1Q);
    r.set(0, PortVlans::access(10).unwrap());
    r.set(
        1,
        PortVlans::trunk(&"10;20".parse::<VlanSet>().unwrap(), Some(20)).unwrap(),
    );
    r.set(2, PortVlans::access(20).unwrap());
    // priority-tagged on the access port: classified to its PVID, PCP kept on the trunk
    let out = r.send(0, &frame(BCAST, mac(1), &[(0x8100, 3 << 13)], b"p"));
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(
        out[0].1,
        frame(BCAST, mac(1), &[(0x8100, (3 << 13) | 10)], b"p")
    );
    // untagged on the trunk: native VLAN 20, reaches access 20 untagged
    let out = r.send(1, &frame(BCAST, mac(2), &[], b"n"));
    assert_eq!(ports_of(&out), vec![2]);
    assert_eq!(out[0].1, frame(BCAST, mac(2), &[], b"n"));
    // access 20 -> trunk: native VLAN leaves untagged
    let out = r.send(2, &frame(BCAST, mac(3), &[], b"u"));
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(out[0].1, frame(BCAST, mac(3), &[], b"u"));
    // priority-tagged toward an untagged egress loses the tag
    let out = r.send(1, &frame(BCAST, mac(2), &[(0x8100, 6 << 13)], b"q"));
    assert_eq!(ports_of(&out), vec![2]);
    assert_eq!(out[0].1, frame(BCAST, mac(2), &[], b"q"));
}

#[test]
fn known_unicast_to_a_non_member_is_dropped_at_egress() {
    let r = Rig::new(2, Protocol::Dot1Q);
    r.send(1, &frame(BCAST, mac(2), &[], b"learn"));
    // a static entry puts mac(5) in VLAN 1 on port 1, then port 1 leaves VLAN 1
    r.sw.fdb
        .insert_user(
            FdbKey::new(mac(5), 1),
            r.h[1].id,
            tapswitch::fdb::EntryKind::Static,
            false,
            r.sw.now(),
        )
        .unwrap();
    r.set(1, PortVlans::access(7).unwrap());
    assert!(r.send(0, &frame(mac(5), mac(1), &[], b"x")).is_empty());
    assert_eq!(r.tx_drop(1, TxDrop::VlanNotMember), 1);
}

#[test]
fn dot1ad_bridge_treats_c_tags_as_payload() {
    let r = Rig::new(2, Protocol::Dot1ad);
    r.set(0, PortVlans::access(100).unwrap());
    r.set(
        1,
        PortVlans::trunk(&"100".parse::<VlanSet>().unwrap(), None).unwrap(),
    );
    // a C-tagged frame on the access port belongs to the PVID; the trunk gets an S-tag outside
    let f = frame(BCAST, mac(1), &[(0x8100, 42)], b"qinq");
    let out = r.send(0, &f);
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(
        out[0].1,
        frame(BCAST, mac(1), &[(0x88a8, 100), (0x8100, 42)], b"qinq")
    );
    // and back: S-tag popped, C-tag kept
    let out = r.send(1, &out[0].1.clone());
    assert_eq!(ports_of(&out), vec![0]);
    assert_eq!(out[0].1, f);
}

#[test]
fn filtering_off_leaves_tags_alone_and_uses_vid_0() {
    let sw = Switch::new("off", Settings::default(), 1024);
    let a = Arc::new(MemPort::default());
    let b = Arc::new(MemPort::default());
    let ha = sw
        .add_port("a", Box::new(a.clone()), PortFlags::default())
        .unwrap();
    sw.add_port("b", Box::new(b.clone()), PortFlags::default())
        .unwrap();
    sw.update_port_vlans(&ha, |p| *p = PortVlans::access(10).unwrap());
    let f = frame(BCAST, mac(1), &[(0x8100, 30)], b"t");
    a.inject(&f);
    sw.pump();
    assert_eq!(
        b.take_sent(),
        vec![f],
        "tags pass, configuration kept but not applied"
    );
    assert!(sw.fdb.port_of(&FdbKey::new(mac(1), 0)).is_some());
}

/// Internet checksum.
fn csum(data: &[u8], mut acc: u32) -> u16 {
    for c in data.chunks(2) {
        acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An untagged IPv4 TCP GSO frame of `payload` bytes, MSS `mss`, partial checksum.
fn gso_frame(src: MacAddr, dst: MacAddr, payload: usize, mss: u16) -> (VnetHdr, Vec<u8>) {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + 20 + payload;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    ip.extend_from_slice(&[198, 18, 9, 1, 198, 18, 9, 2]);
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = vec![
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    // pseudo-header sum in the checksum field, as a sender with offloads leaves it
    let mut acc = 0u32;
    for w in [[198u8, 18], [9, 1], [198, 18], [9, 2]] {
        acc += u16::from_be_bytes(w) as u32;
    }
    acc += 6 + (20 + payload) as u32;
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    tcp[16..18].copy_from_slice(&(acc as u16).to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    };
    (hdr, f)
}

fn with_hdr(h: &VnetHdr, f: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 10];
    h.write(&mut v);
    v.extend_from_slice(f);
    v
}

/// Checks one segment of 18-byte Ethernet+tag header: IPv4 and TCP checksums, tag.
fn check_tagged_segment(s: &[u8], vid: u16) -> usize {
    assert_eq!(&s[12..14], &[0x81, 0x00]);
    assert_eq!(u16::from_be_bytes([s[14], s[15]]) & 0xfff, vid);
    assert_eq!(&s[16..18], &[0x08, 0x00]);
    let ip = &s[18..38];
    assert_eq!(csum(ip, 0), 0, "IPv4 header checksum");
    let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    assert_eq!(tot, s.len() - 18);
    let l4 = &s[38..];
    let mut acc = 0u32;
    for w in ip[12..20].chunks(2) {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    acc += 6 + l4.len() as u32;
    assert_eq!(csum(l4, acc), 0, "TCP checksum");
    l4.len() - 20
}

#[test]
fn gso_frames_keep_valid_offsets_through_push_and_pop() {
    // port 0: offload access port (VLAN 10); port 1: plain trunk; port 2: offload trunk
    let r = Rig::with(
        vec![
            MemPort::default().with_vnet_hdr(),
            MemPort::new(1500),
            MemPort::default().with_vnet_hdr(),
        ],
        Protocol::Dot1Q,
    );
    let trunk = PortVlans::trunk(&"10".parse::<VlanSet>().unwrap(), None).unwrap();
    r.set(0, PortVlans::access(10).unwrap());
    r.set(1, trunk.clone());
    r.set(2, trunk);
    let (hdr, f) = gso_frame(mac(1), mac(2), 4000, 1448);
    let out = r.send(0, &with_hdr(&hdr, &f));
    // the plain trunk gets wire-size segments, each tagged and with good checksums
    let plain: Vec<&Vec<u8>> = out
        .iter()
        .filter(|(p, _)| *p == 1)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(plain.len(), 3, "4000 bytes in segments of 1448");
    let carried: usize = plain.iter().map(|s| check_tagged_segment(s, 10)).sum();
    assert_eq!(carried, 4000);
    // the offload trunk gets one GSO frame with the tag and offsets moved by 4
    let off: Vec<&Vec<u8>> = out
        .iter()
        .filter(|(p, _)| *p == 2)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(off.len(), 1);
    let h2 = VnetHdr::parse(off[0]).unwrap();
    assert_eq!(h2.csum_start, hdr.csum_start + 4);
    assert_eq!(h2.hdr_len, hdr.hdr_len + 4);
    assert_eq!(h2.gso_size, hdr.gso_size);
    assert_eq!(&off[0][10 + 12..10 + 16], &[0x81, 0x00, 0x00, 0x0a]);
    assert_eq!(
        &off[0][10 + 16..],
        &f[12..],
        "payload after the tag unchanged"
    );
    // and back: a tagged GSO frame from the offload trunk to the offload access port
    let out = r.send(2, &off[0].clone());
    let back: Vec<&Vec<u8>> = out
        .iter()
        .filter(|(p, _)| *p == 0)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0],
        &with_hdr(&hdr, &f),
        "popped: the original frame and header"
    );
}

/// bridge_vlan_aware.sh `vlan_deletion`: adding and deleting another VID keeps the PVID working.
#[test]
fn selftest_vlan_deletion() {
    let r = Rig::new(2, Protocol::Dot1Q);
    let ping = |r: &Rig| r.send(0, &frame(BCAST, mac(1), &[], b"ping")).len() == 1;
    assert!(ping(&r));
    for p in 0..2 {
        r.sw.update_port_vlans(&r.h[p], |v| v.add(10, false, false).unwrap());
    }
    assert!(ping(&r));
    for p in 0..2 {
        r.sw.update_port_vlans(&r.h[p], |v| v.del(10).unwrap());
    }
    assert!(ping(&r), "PVID 1 still works after VID 10 came and went");
}

/// `other_tpid`: an 802.1ad-tagged frame on an 802.1Q bridge is untagged payload in the PVID.
#[test]
fn selftest_other_tpid() {
    let r = Rig::new(2, Protocol::Dot1Q);
    let f = frame(BCAST, mac(1), &[(0x88a8, 5)], b"ad");
    let out = r.send(0, &f);
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(out[0].1, f, "forwarded unchanged in VLAN 1");
    assert!(r.sw.fdb.port_of(&FdbKey::new(mac(1), 1)).is_some());
    // without a PVID on the ingress port it is dropped
    r.sw.update_port_vlans(&r.h[0], |v| v.del(1).unwrap());
    assert!(r.send(0, &f).is_empty());
    assert_eq!(r.rx_drop(0, RxDrop::VlanNoPvid), 1);
}

/// `8021p`: priority-tagged frames are accepted in the PVID, also after default_pvid changes.
#[test]
fn selftest_8021p() {
    let r = Rig::new(2, Protocol::Dot1Q);
    let f = frame(BCAST, mac(1), &[(0x8100, 4 << 13)], b"p");
    let out = r.send(0, &f);
    assert_eq!(ports_of(&out), vec![1]);
    assert_eq!(
        out[0].1,
        frame(BCAST, mac(1), &[], b"p"),
        "untagged egress: tag removed"
    );
    // default_pvid 1 -> 10: ports that had the old default move to the new one
    let mut s = r.sw.settings.load();
    s.default_pvid = 10;
    tapswitch::control::set_settings(&r.sw, s);
    assert_eq!(r.h[0].vlans().pvid(), Some(10));
    let out = r.send(0, &f);
    assert_eq!(ports_of(&out), vec![1], "still accepted, now in VLAN 10");
    assert!(r.sw.fdb.port_of(&FdbKey::new(mac(1), 10)).is_some());
}

/// `drop_untagged`: untagged and priority-tagged frames are dropped when the port has no PVID:
/// VID 1 kept without PVID, VID 1 deleted, default_pvid 0.
#[test]
fn selftest_drop_untagged() {
    let untagged = frame(BCAST, mac(1), &[], b"u");
    let prio = frame(BCAST, mac(1), &[(0x8100, 1 << 13)], b"p");
    let both_dropped = |r: &Rig| r.send(0, &untagged).is_empty() && r.send(0, &prio).is_empty();
    // VID 1 kept, PVID flag removed (bridge vlan add dev p0 vid 1 untagged)
    let r = Rig::new(2, Protocol::Dot1Q);
    r.sw.update_port_vlans(&r.h[0], |v| v.add(1, false, true).unwrap());
    assert_eq!(r.h[0].vlans().pvid(), None);
    assert!(both_dropped(&r));
    assert_eq!(r.rx_drop(0, RxDrop::VlanNoPvid), 2);
    // restored
    r.sw.update_port_vlans(&r.h[0], |v| v.add(1, true, true).unwrap());
    assert_eq!(r.send(0, &untagged).len(), 1);
    // VID 1 deleted
    let r = Rig::new(2, Protocol::Dot1Q);
    r.sw.update_port_vlans(&r.h[0], |v| v.del(1).unwrap());
    assert!(both_dropped(&r));
    // default_pvid 0: new ports get no VLAN at all
    let s = Settings {
        vlan_filtering: true,
        default_pvid: 0,
        ..Settings::default()
    };
    let sw = Switch::new("nopvid", s, 64);
    let a = Arc::new(MemPort::default());
    let ha = sw
        .add_port("a", Box::new(a.clone()), PortFlags::default())
        .unwrap();
    sw.add_port("b", Box::new(MemPort::default()), PortFlags::default())
        .unwrap();
    assert_eq!(ha.vlans().pvid(), None);
    a.inject(&untagged);
    a.inject(&prio);
    sw.pump();
    assert_eq!(
        ha.counters.rx_dropped[RxDrop::VlanNoPvid.index()].load(Relaxed),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Table entries and VLANs as the kernel's br_fdb.c / br_vlan.c handle them.

fn fdb_vlans_of(r: &Rig, m: MacAddr) -> Vec<u16> {
    let mut v: Vec<u16> =
        r.sw.fdb
            .snapshot(r.sw.now())
            .iter()
            .filter(|e| e.mac == m)
            .map(|e| e.vlan)
            .collect();
    v.sort();
    v
}

/// `bridge fdb add MAC dev P master static` without `vlan` on a VLAN-filtering bridge adds
/// the VLAN-0 entry and one per VLAN of P (br_fdb_add: "add/update entry for every vlan on
/// this port"), so a locked P admits MAC afterwards, as bridge_locked_port.sh expects; `bridge
/// fdb del MAC dev P master` removes them all again (br_fdb_delete).
#[test]
fn fdb_add_without_vlan_opens_a_locked_port_in_its_vlans() {
    use tapswitch::control::{add_fdb_entry, del_fdb_entry};
    use tapswitch::fdb::{EntryKind, FdbError};
    let r = Rig::new(2, Protocol::Dot1Q);
    r.set(
        0,
        PortVlans::trunk(&VlanSet::from_vids([20]).unwrap(), Some(10)).unwrap(),
    );
    r.set(1, PortVlans::access(10).unwrap());
    r.sw.set_port_flags(&r.h[0], PortFlags::default().with(PortFlags::LOCKED, true))
        .unwrap();
    let f = frame(BCAST, mac(1), &[], b"locked");
    assert!(r.send(0, &f).is_empty());
    assert_eq!(
        r.rx_drop(0, RxDrop::Locked),
        1,
        "positive control: dropped as locked"
    );
    add_fdb_entry(&r.sw, &r.h[0], mac(1), 0, EntryKind::Static, false).unwrap();
    assert_eq!(
        fdb_vlans_of(&r, mac(1)),
        [0, 10, 20],
        "VLAN 0 and each VLAN of p0"
    );
    assert_eq!(
        ports_of(&r.send(0, &f)),
        [1],
        "the locked port admits it now"
    );
    assert_eq!(r.rx_drop(0, RxDrop::Locked), 1);
    // adding again: 409, nothing changes
    assert!(matches!(
        add_fdb_entry(&r.sw, &r.h[0], mac(1), 0, EntryKind::Static, false),
        Err(FdbError::Exists { .. })
    ));
    // an entry given a VLAN is that entry alone
    add_fdb_entry(&r.sw, &r.h[0], mac(2), 20, EntryKind::Static, false).unwrap();
    assert_eq!(fdb_vlans_of(&r, mac(2)), [20]);
    // del on another port removes nothing; on p0 without VLAN, every one of them
    assert_eq!(del_fdb_entry(&r.sw, &r.h[1], mac(1), 0), 0);
    assert_eq!(del_fdb_entry(&r.sw, &r.h[0], mac(1), 0), 3);
    assert!(r.send(0, &f).is_empty(), "closed again");
    assert_eq!(r.rx_drop(0, RxDrop::Locked), 2);
    // with filtering off, only the VLAN-0 entry (the one frames are looked up with)
    r.sw.settings.store(Settings {
        vlan_filtering: false,
        ..r.sw.settings.load()
    });
    add_fdb_entry(&r.sw, &r.h[0], mac(3), 0, EntryKind::Static, false).unwrap();
    assert_eq!(fdb_vlans_of(&r, mac(3)), [0]);
}

/// `bridge vlan del dev P vid N`: nbp_vlan_delete calls br_fdb_delete_by_port(br, p, vid, 0),
/// which removes P's learned and dynamic entries in N and keeps static (sticky included) and
/// extern_learn ones; those forward again as soon as N is back on P.
#[test]
fn vlan_del_flushes_dynamic_entries_and_keeps_static_and_extern_learn() {
    use tapswitch::control::{add_fdb_entry, set_port_vlans};
    use tapswitch::fdb::EntryKind;
    let r = Rig::new(3, Protocol::Dot1Q);
    for i in 0..3 {
        r.set(i, PortVlans::access(10).unwrap());
    }
    r.send(1, &frame(BCAST, mac(1), &[], b"learned"));
    let h1 = &r.h[1];
    add_fdb_entry(&r.sw, h1, mac(2), 10, EntryKind::Static, false).unwrap();
    add_fdb_entry(&r.sw, h1, mac(3), 10, EntryKind::ExternLearn, false).unwrap();
    add_fdb_entry(&r.sw, h1, mac(4), 10, EntryKind::Sticky, false).unwrap();
    add_fdb_entry(&r.sw, h1, mac(5), 10, EntryKind::Dynamic, false).unwrap();
    let kind = |m: u8| r.sw.fdb.kind_of(&FdbKey::new(mac(m), 10));
    assert_eq!(kind(1), Some(EntryKind::Learned));
    let mut v = h1.vlans();
    assert!(v.del(10).unwrap());
    set_port_vlans(&r.sw, h1, v);
    assert_eq!(kind(1), None, "learned: flushed");
    assert_eq!(kind(5), None, "dynamic: flushed");
    assert_eq!(kind(2), Some(EntryKind::Static));
    assert_eq!(kind(3), Some(EntryKind::ExternLearn));
    assert_eq!(kind(4), Some(EntryKind::Sticky));
    assert_eq!(r.sw.fdb.learned_count(), 0);
    // VLAN 10 back on p1: the kept entries send to p1 alone, the flushed one is flooded
    r.set(1, PortVlans::access(10).unwrap());
    for m in [2, 3, 4] {
        let out = r.send(0, &frame(mac(m), mac(9), &[], b"known"));
        assert_eq!(ports_of(&out), [1], "mac {m}");
    }
    let out = r.send(0, &frame(mac(1), mac(9), &[], b"unknown"));
    assert_eq!(ports_of(&out), [1, 2], "the learned entry is gone: flooded");
}

/// br_fdb_update on an extern_learn entry whose MAC shows up on another port: it moves and
/// loses only BR_FDB_ADDED_BY_EXT_LEARN; it was added by the user, so it never gets
/// BR_FDB_DYNAMIC_LEARNED and `fdb_n_learned` stays as it was.
#[test]
fn extern_learn_taken_over_by_traffic_does_not_count_as_learned() {
    use tapswitch::control::add_fdb_entry;
    use tapswitch::fdb::EntryKind;
    let r = Rig::new(2, Protocol::Dot1Q);
    add_fdb_entry(&r.sw, &r.h[1], mac(5), 1, EntryKind::ExternLearn, false).unwrap();
    r.send(0, &frame(BCAST, mac(6), &[], b"learned"));
    assert_eq!(r.sw.fdb.learned_count(), 1, "positive control: p0 learns");
    r.send(0, &frame(BCAST, mac(5), &[], b"moved"));
    let key = FdbKey::new(mac(5), 1);
    assert_eq!(r.sw.fdb.port_of(&key), Some(r.h[0].id), "taken over by p0");
    assert_eq!(r.sw.fdb.kind_of(&key), Some(EntryKind::Dynamic));
    assert_eq!(r.sw.fdb.learned_count(), 1, "fdb_n_learned unchanged");
    assert_eq!(r.sw.fdb.port_learned(r.h[0].id).0, 1);
}
