//! Unit tests: the BPDU codec (known bytes, round trips, never-panics) and the state
//! machines of one bridge driven by hand-made BPDUs.

use super::bpdu::*;
use super::*;
use crate::types::{PortId, Timestamp};
use crate::wire::MacAddr;

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}

fn bid(prio: u16, last: u8) -> BridgeId {
    BridgeId::new(prio, mac(last))
}

/// LLC + BPDU bytes, as `receive` takes them.
fn llc(b: &Bpdu) -> Vec<u8> {
    b.to_frame(mac(0xee))[14..].to_vec()
}

fn body(root: BridgeId, cost: u32, bridge: BridgeId, port: u16, flags: BpduFlags) -> ConfigBody {
    ConfigBody {
        flags,
        root,
        root_path_cost: cost,
        bridge,
        port: PortIdentifier(port),
        message_age: TimeField::from_secs(0),
        max_age: TimeField::from_secs(20),
        hello_time: TimeField::from_secs(2),
        forward_delay: TimeField::from_secs(15),
    }
}

fn designated(flags: u8) -> BpduFlags {
    BpduFlags(flags).with_role(RoleFlag::Designated)
}

/// Deterministic xorshift64* for the fuzz-style tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }
}

// ------------------------------------------------------------------------------ codec

/// A Configuration BPDU written byte by byte from 802.1D-2004 9.3.1 (Figure 9-1).
#[test]
fn config_bpdu_known_bytes() {
    #[rustfmt::skip]
    let wire: Vec<u8> = vec![
        0x42, 0x42, 0x03,                               // LLC
        0x00, 0x00,                                     // protocol identifier
        0x00,                                           // version 0
        0x00,                                           // type: Configuration
        0x81,                                           // flags: TC | TCA
        0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // root 8000.020000000001
        0x00, 0x00, 0x4e, 0x20,                         // root path cost 20000
        0x70, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // bridge 7000.020000000002
        0x80, 0x03,                                     // port 8003
        0x01, 0x00,                                     // message age 1 s
        0x14, 0x00,                                     // max age 20 s
        0x02, 0x00,                                     // hello 2 s
        0x0f, 0x00,                                     // forward delay 15 s
    ];
    let b = Bpdu::decode(&wire).unwrap();
    let expect = ConfigBody {
        flags: BpduFlags(0x81),
        root: bid(0x8000, 1),
        root_path_cost: 20000,
        bridge: bid(0x7000, 2),
        port: PortIdentifier(0x8003),
        message_age: TimeField(256),
        max_age: TimeField(20 * 256),
        hello_time: TimeField(512),
        forward_delay: TimeField(15 * 256),
    };
    assert_eq!(b, Bpdu::Config(expect));
    let Bpdu::Config(c) = b else { unreachable!() };
    assert!(c.flags.tc() && c.flags.tc_ack() && !c.flags.proposal());
    assert_eq!(c.root.to_string(), "8000.020000000001");
    assert_eq!(c.bridge.to_string(), "7000.020000000002");
    assert_eq!(c.port.to_string(), "8003");
    assert_eq!((c.port.priority(), c.port.number()), (128, 3));
    assert_eq!(c.message_age.to_secs_rounded(), 1);

    // Encoding gives back the same bytes inside a 60-byte 802.3 frame.
    let src = MacAddr([0x02, 0x00, 0x01, 0x00, 0x00, 0x09]);
    let mut buf = [0xaau8; 64];
    assert_eq!(b.encode_frame(src, &mut buf).unwrap(), 60);
    assert_eq!(&buf[0..6], &[0x01, 0x80, 0xc2, 0, 0, 0]);
    assert_eq!(&buf[6..12], &src.0);
    assert_eq!(&buf[12..14], &[0x00, 38]); // 802.3 length: LLC 3 + BPDU 35
    assert_eq!(&buf[14..14 + wire.len()], &wire[..]);
    assert!(buf[14 + wire.len()..60].iter().all(|&x| x == 0));
    assert_eq!(bpdu_payload(&buf[..60]).unwrap(), &wire[..]);
}

/// The frame the Linux bridge builds (br_stp_bpdu.c br_send_config_bpdu: version 0, TC in
/// 0x01 and TCA in 0x80, times by br_set_ticks in 1/256 s, so fractions of a second), as it
/// arrives padded to 60 bytes.
#[test]
fn linux_style_config_bpdu() {
    let mut frame = vec![
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x26,
    ];
    frame.extend_from_slice(&[0x42, 0x42, 0x03]);
    #[rustfmt::skip]
    frame.extend_from_slice(&[
        0, 0, 0, 0,             // protocol 0, version 0, type config
        0x01,                   // TC
        0x80, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // root = that bridge
        0, 0, 0, 0,
        0x80, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        0x80, 0x01,
        0x00, 0x80,             // message age 0.5 s (128/256)
        0x14, 0x00, 0x02, 0x00, 0x0f, 0x00,
    ]);
    frame.resize(60, 0);
    let payload = bpdu_payload(&frame).unwrap();
    assert_eq!(payload.len(), 38);
    let Bpdu::Config(c) = Bpdu::decode(payload).unwrap() else {
        panic!("not config")
    };
    assert_eq!(c.root.mac(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
    assert_eq!(c.root.priority(), 0x8000);
    assert!(c.flags.tc() && !c.flags.tc_ack());
    assert_eq!(c.message_age, TimeField(128));
    assert_eq!(c.message_age.to_secs_rounded(), 1); // rounded to the nearest second
    assert_eq!(c.max_age.to_secs_rounded(), 20);
    // The padding is also accepted when the caller does not trim it.
    assert!(matches!(Bpdu::decode(&frame[14..]), Ok(Bpdu::Config(_))));
}

#[test]
fn tcn_bpdu_known_bytes() {
    let wire = [0x42, 0x42, 0x03, 0x00, 0x00, 0x00, 0x80];
    assert_eq!(Bpdu::decode(&wire).unwrap(), Bpdu::Tcn);
    let f = Bpdu::Tcn.to_frame(mac(1));
    assert_eq!(f.len(), 60);
    assert_eq!(&f[12..14], &[0x00, 0x07]);
    assert_eq!(&f[14..21], &wire);
    assert!(f[21..].iter().all(|&x| x == 0));
    // Linux sends version 0; any version and padding are fine for a TCN.
    assert_eq!(
        Bpdu::decode(&[0x42, 0x42, 0x03, 0, 0, 1, 0x80, 9, 9]).unwrap(),
        Bpdu::Tcn
    );
}

#[test]
fn rst_bpdu_each_flag() {
    type Getter = fn(BpduFlags) -> bool;
    let cases: [(u8, Getter); 7] = [
        (BpduFlags::TC, BpduFlags::tc),
        (BpduFlags::PROPOSAL, BpduFlags::proposal),
        (BpduFlags::LEARNING, BpduFlags::learning),
        (BpduFlags::FORWARDING, BpduFlags::forwarding),
        (BpduFlags::AGREEMENT, BpduFlags::agreement),
        (BpduFlags::TC_ACK, BpduFlags::tc_ack),
        (0, |f| f.0 & !BpduFlags::ROLE_MASK == 0),
    ];
    for (bit, get) in cases {
        for role in [
            RoleFlag::Unknown,
            RoleFlag::AlternateOrBackup,
            RoleFlag::Root,
            RoleFlag::Designated,
        ] {
            let flags = BpduFlags(bit).with_role(role);
            let b = Bpdu::Rst(body(bid(0x1000, 1), 7, bid(0x8000, 3), 0x8002, flags));
            let f = b.to_frame(mac(3));
            assert_eq!(&f[12..14], &[0x00, 39]);
            assert_eq!(&f[14..21], &[0x42, 0x42, 0x03, 0x00, 0x00, 0x02, 0x02]);
            assert_eq!(f[21], flags.0);
            assert_eq!(f[14 + 3 + 35], 0, "version 1 length");
            let Bpdu::Rst(d) = Bpdu::decode(&f[14..]).unwrap() else {
                panic!()
            };
            assert_eq!(d.flags, flags);
            assert!(get(d.flags), "bit {bit:#x}");
            assert_eq!(d.flags.role(), role);
            assert_eq!(Bpdu::decode(&f[14..]).unwrap(), b);
        }
    }
    // Role bits: designated = 0x0c, root = 0x08, alternate/backup = 0x04.
    assert_eq!(BpduFlags(0).with_role(RoleFlag::Designated).0, 0x0c);
    assert_eq!(BpduFlags(0).with_role(RoleFlag::Root).0, 0x08);
    assert_eq!(BpduFlags(0).with_role(RoleFlag::AlternateOrBackup).0, 0x04);
}

#[test]
fn decode_errors() {
    let good = llc(&Bpdu::Rst(body(
        bid(0x8000, 1),
        0,
        bid(0x8000, 1),
        0x8001,
        designated(0),
    )));
    assert_eq!(Bpdu::decode(&good[..6]), Err(BpduError::TooShort(6)));
    let mut bad = good.clone();
    bad[0] = 0xaa;
    assert!(matches!(
        Bpdu::decode(&bad),
        Err(BpduError::NotStpLlc { dsap: 0xaa, .. })
    ));
    let mut bad = good.clone();
    bad[4] = 1;
    assert_eq!(Bpdu::decode(&bad), Err(BpduError::UnknownProtocol(1)));
    assert!(matches!(
        Bpdu::decode(&good[..3 + 35]),
        Err(BpduError::Truncated {
            kind: BpduKind::Rst,
            need: 36,
            ..
        })
    ));
    let mut v1 = good.clone();
    v1[5] = 1; // type 2 with version 1: not decodable
    assert_eq!(
        Bpdu::decode(&v1),
        Err(BpduError::UnknownType {
            bpdu_type: 2,
            version: 1
        })
    );
    let mut v3 = good.clone();
    v3[5] = 3; // an MST BPDU decodes as its CIST part
    assert!(matches!(Bpdu::decode(&v3), Ok(Bpdu::Rst(_))));
    let mut t = good.clone();
    t[6] = 0x7f;
    assert!(matches!(
        Bpdu::decode(&t),
        Err(BpduError::UnknownType {
            bpdu_type: 0x7f,
            ..
        })
    ));
    let cfg = llc(&Bpdu::Config(body(
        bid(0x8000, 1),
        0,
        bid(0x8000, 1),
        0x8001,
        BpduFlags(0),
    )));
    assert!(matches!(
        Bpdu::decode(&cfg[..3 + 34]),
        Err(BpduError::Truncated {
            kind: BpduKind::Config,
            ..
        })
    ));
    let mut old = body(bid(0x8000, 1), 0, bid(0x8000, 1), 0x8001, BpduFlags(0));
    old.message_age = TimeField::from_secs(20);
    assert!(matches!(
        Bpdu::decode(&llc(&Bpdu::Config(old))),
        Err(BpduError::MessageAgeExceeded { .. })
    ));
    // An RST BPDU that old is decoded; the machines age it out at once.
    assert!(Bpdu::decode(&llc(&Bpdu::Rst(old))).is_ok());
    assert_eq!(
        Bpdu::Tcn.encode_frame(mac(1), &mut [0u8; 59]),
        Err(BpduError::BufferTooSmall(59))
    );
}

#[test]
fn bpdu_payload_filters() {
    let f = Bpdu::Tcn.to_frame(mac(1));
    assert_eq!(bpdu_payload(&f).unwrap().len(), 7);
    let mut tagged = f.clone();
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(bpdu_payload(&tagged), None, "BPDUs are untagged");
    let mut other = f.clone();
    other[5] = 0x02;
    assert_eq!(bpdu_payload(&other), None);
    let mut eth2 = f.clone();
    eth2[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(bpdu_payload(&eth2), None);
    assert_eq!(bpdu_payload(&f[..10]), None);
    // Length field longer than the frame: lenient, take what is there.
    let mut long = f.clone();
    long[12..14].copy_from_slice(&[0x05, 0xdc]);
    assert_eq!(bpdu_payload(&long).unwrap().len(), 46);
}

#[test]
fn round_trip_random_bpdus() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let mut bd = ConfigBody {
            flags: BpduFlags(r.byte()),
            root: BridgeId(r.next()),
            root_path_cost: r.next() as u32,
            bridge: BridgeId(r.next()),
            port: PortIdentifier(r.next() as u16),
            message_age: TimeField(r.next() as u16),
            max_age: TimeField(r.next() as u16),
            hello_time: TimeField(r.next() as u16),
            forward_delay: TimeField(r.next() as u16),
        };
        let b = match r.next() % 3 {
            0 => {
                if bd.message_age >= bd.max_age {
                    std::mem::swap(&mut bd.message_age, &mut bd.max_age);
                }
                if bd.message_age == bd.max_age {
                    bd.max_age.0 = bd.max_age.0.saturating_add(1);
                    bd.message_age.0 = bd.max_age.0 - 1;
                }
                Bpdu::Config(bd)
            }
            1 => Bpdu::Tcn,
            _ => Bpdu::Rst(bd),
        };
        let f = b.to_frame(MacAddr([2, r.byte(), 0, 0, 0, 1]));
        assert_eq!(Bpdu::decode(bpdu_payload(&f).unwrap()), Ok(b));
    }
}

/// `decode` never panics: every length up to 64 with random bytes, every single-byte
/// mutation of valid BPDUs of each type, and random LLC-headed inputs.
#[test]
fn decode_never_panics() {
    let mut r = Rng(0xdead_beef_cafe_f00d);
    for len in 0..=64 {
        for _ in 0..2_000 {
            let v: Vec<u8> = (0..len).map(|_| r.byte()).collect();
            let _ = Bpdu::decode(&v);
            let _ = bpdu_payload(&v);
        }
    }
    let seeds = [
        llc(&Bpdu::Tcn),
        llc(&Bpdu::Config(body(
            bid(0x8000, 1),
            5,
            bid(0x8000, 2),
            0x8001,
            BpduFlags(0x81),
        ))),
        llc(&Bpdu::Rst(body(
            bid(0x8000, 1),
            5,
            bid(0x8000, 2),
            0x8001,
            designated(0x7f),
        ))),
    ];
    for seed in &seeds {
        for cut in 0..=seed.len() {
            let _ = Bpdu::decode(&seed[..cut]);
        }
        for at in 0..seed.len() {
            for val in 0..=255u8 {
                let mut v = seed.clone();
                v[at] = val;
                if let Ok(b) = Bpdu::decode(&v) {
                    // Whatever decodes, encodes and decodes to the same thing.
                    assert_eq!(Bpdu::decode(&llc(&b)), Ok(b));
                }
            }
        }
    }
    for _ in 0..100_000 {
        let len = (r.next() % 48) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| r.byte()).collect();
        for (i, x) in [0x42u8, 0x42, 0x03, 0, 0].iter().enumerate() {
            if i < v.len() {
                v[i] = *x;
            }
        }
        let _ = Bpdu::decode(&v);
    }
}

#[test]
fn ids_display_and_serialize() {
    let b = BridgeId::new(0x8000, MacAddr([0x02, 0, 0, 0, 0, 0x01]));
    assert_eq!(b.to_string(), "8000.020000000001");
    assert_eq!(b.mac(), MacAddr([0x02, 0, 0, 0, 0, 0x01]));
    assert_eq!(PortIdentifier::new(128, 1).to_string(), "8001");
    assert_eq!(PortIdentifier::new(240, 4095).0, 0xffff);
    assert_eq!(PortIdentifier::new(16, 0x1002).number(), 2);
}

// ------------------------------------------------------------------------------ bridge

fn t(secs: u64) -> Timestamp {
    Timestamp(secs * 1000)
}

fn bridge(prio: u16, last: u8) -> Stp {
    let mut c = BridgeConfig::new(mac(last));
    c.priority = prio;
    Stp::new(c, t(0)).unwrap()
}

fn drain(s: &mut Stp) -> Vec<Action> {
    let mut v = Vec::new();
    s.take_actions(&mut v);
    v
}

fn sent(actions: &[Action], port: PortId) -> Vec<Bpdu> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit { port: p, frame } if *p == port => {
                Bpdu::decode(bpdu_payload(frame).unwrap()).ok()
            }
            _ => None,
        })
        .collect()
}

fn tick_to(s: &mut Stp, secs: u64) {
    let mut now = s.now.0;
    while now < secs * 1000 {
        now += 100;
        s.tick(Timestamp(now));
    }
}

#[test]
fn config_validation() {
    let ok = BridgeConfig::new(mac(1));
    assert_eq!(ok.validate(), Ok(()));
    let e = |f: fn(&mut BridgeConfig)| {
        let mut c = ok;
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert_eq!(e(|c| c.priority = 100), StpConfigError::Priority(100));
    assert_eq!(e(|c| c.priority = 65535), StpConfigError::Priority(65535));
    assert_eq!(e(|c| c.hello_time = 0), StpConfigError::HelloTime(0));
    assert_eq!(
        e(|c| c.forward_delay = 31),
        StpConfigError::ForwardDelay(31)
    );
    assert_eq!(e(|c| c.max_age = 41), StpConfigError::MaxAge(41));
    assert!(matches!(
        e(|c| c.forward_delay = 4),
        StpConfigError::TimerRelation { .. }
    )); // 2*(4-1) < 20
    assert!(matches!(
        e(|c| {
            c.max_age = 6;
            c.hello_time = 3
        }),
        StpConfigError::TimerRelation { .. }
    ));
    assert_eq!(e(|c| c.tx_hold_count = 0), StpConfigError::TxHoldCount(0));
    assert_eq!(e(|c| c.force_version = 3), StpConfigError::ForceVersion(3));
    assert_eq!(
        e(|c| c.mac = MacAddr::BROADCAST),
        StpConfigError::Mac(MacAddr::BROADCAST)
    );
    assert!(Stp::new(BridgeConfig { priority: 1, ..ok }, t(0)).is_err());

    let mut s = Stp::new(ok, t(0)).unwrap();
    let pc = PortConfig::default();
    assert_eq!(
        s.add_port(PortId(1), 0, pc, None, t(0)),
        Err(StpPortError::PortNumber(0))
    );
    assert_eq!(
        s.add_port(PortId(1), 4096, pc, None, t(0)),
        Err(StpPortError::PortNumber(4096))
    );
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    assert_eq!(
        s.add_port(PortId(1), 2, pc, None, t(0)),
        Err(StpPortError::DuplicatePort(PortId(1)))
    );
    assert_eq!(
        s.add_port(PortId(2), 1, pc, None, t(0)),
        Err(StpPortError::DuplicatePortNumber(1))
    );
    let bad = PortConfig { priority: 17, ..pc };
    assert_eq!(
        s.add_port(PortId(2), 2, bad, None, t(0)),
        Err(StpPortError::Priority(17))
    );
    let bad = PortConfig {
        path_cost: Some(0),
        ..pc
    };
    assert_eq!(
        s.set_port_config(PortId(1), bad, t(0)),
        Err(StpPortError::PathCost(0))
    );
    assert_eq!(
        s.set_port_enabled(PortId(9), true, t(0)),
        Err(StpPortError::UnknownPort(PortId(9)))
    );
    assert_eq!(
        s.receive(PortId(9), &llc(&Bpdu::Tcn), t(0)),
        Err(RxError::UnknownPort(PortId(9)))
    );
}

#[test]
fn path_cost_and_port_mac() {
    let mut s = bridge(0x8000, 1);
    let pc = PortConfig::default();
    s.add_port(PortId(1), 1, pc, Some(10), t(0)).unwrap();
    s.add_port(PortId(2), 2, pc, Some(100), t(0)).unwrap();
    s.add_port(PortId(3), 3, pc, Some(10_000), t(0)).unwrap();
    s.add_port(PortId(4), 4, pc, None, t(0)).unwrap();
    s.add_port(
        PortId(5),
        5,
        PortConfig {
            path_cost: Some(7),
            ..pc
        },
        None,
        t(0),
    )
    .unwrap();
    s.add_port(PortId(6), 6, pc, Some(1_000_000), t(0)).unwrap();
    let cost = |id| s.port_status(PortId(id)).unwrap().path_cost;
    assert_eq!(
        [cost(1), cost(2), cost(3), cost(4), cost(5), cost(6)],
        [2_000_000, 200_000, 2_000, 20_000, 7, 20]
    );
    s.set_port_speed(PortId(4), Some(100_000), t(0)).unwrap();
    assert_eq!(s.port_status(PortId(4)).unwrap().path_cost, 200);

    let macs: Vec<MacAddr> = (1..=6)
        .map(|i| s.port_bpdu_mac(PortId(i)).unwrap())
        .collect();
    for (i, m) in macs.iter().enumerate() {
        assert!(m.is_valid_source() && m.0[0] & 0x02 != 0, "{m}");
        assert_ne!(*m, mac(1));
        for n in &macs[i + 1..] {
            assert_ne!(m, n);
        }
    }
    assert_eq!(macs[0], MacAddr([0x02, 0x00, 0x01, 0, 0, 1]));
    // And BPDUs really carry it.
    let a = drain(&mut s);
    let f = a.iter().find_map(|a| match a {
        Action::Transmit {
            port: PortId(3),
            frame,
        } => Some(frame.clone()),
        _ => None,
    });
    assert_eq!(&f.unwrap()[6..12], &macs[2].0);
}

#[test]
fn lone_bridge_is_root_and_proposes() {
    let mut s = bridge(0x8000, 1);
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            auto_edge: false,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    let a = drain(&mut s);
    let st = s.status();
    assert!(st.is_root);
    assert_eq!(st.designated_root, s.bridge_id());
    assert_eq!(st.root_port, None);
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Designated));
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    let b = sent(&a, PortId(1));
    assert_eq!(b.len(), 1, "one BPDU, not one per machine step: {a:?}");
    let Bpdu::Rst(c) = b[0] else { panic!() };
    assert_eq!(c.flags.role(), RoleFlag::Designated);
    assert!(c.flags.proposal() && !c.flags.learning() && !c.flags.forwarding());
    assert_eq!(
        (c.root, c.root_path_cost, c.bridge, c.port),
        (s.bridge_id(), 0, s.bridge_id(), PortIdentifier(0x8001))
    );
    assert!(a.contains(&Action::Flush { port: PortId(1) }));

    // Hello every 2 s.
    tick_to(&mut s, 10);
    let n = sent(&drain(&mut s), PortId(1)).len();
    assert_eq!(n, 5);

    // Without a peer or auto-edge the port forwards when fdWhile (Max Age from BEGIN) runs
    // out, then after a learning period of forwardDelay = Hello Time (sendRSTP).
    tick_to(&mut s, 19);
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    tick_to(&mut s, 21);
    assert_eq!(s.port_state(PortId(1)), PortState::Learning);
    tick_to(&mut s, 23);
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.iteration_limit_hits(), 0);
}

#[test]
fn admin_edge_forwards_at_once_and_loses_edge_on_bpdu() {
    let mut s = bridge(0x8000, 1);
    let pc = PortConfig {
        admin_edge: true,
        auto_edge: false,
        ..Default::default()
    };
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    s.add_port(PortId(2), 2, pc, None, t(0)).unwrap();
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::SetState {
            port: PortId(1),
            state: PortState::Forwarding
        }),
        "{a:?}"
    );
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert!(s.port_status(PortId(1)).unwrap().oper_edge);
    // Edge ports going forwarding are no topology change.
    assert_eq!(s.status().topology_change_count, 0);

    // A BPDU (inferior) makes port 1 non-edge; it stays designated.
    let inferior = Bpdu::Rst(body(
        bid(0x9000, 9),
        0,
        bid(0x9000, 9),
        0x8001,
        designated(0x02),
    ));
    s.receive(PortId(1), &llc(&inferior), t(0)).unwrap();
    let st = s.port_status(PortId(1)).unwrap();
    assert!(!st.oper_edge && st.admin_edge);
    assert_eq!(st.role, PortRole::Designated);
    assert!(s.port_status(PortId(2)).unwrap().oper_edge);
    // A superior one makes it root port; the other edge port stays forwarding through the
    // sync (edge ports are synced by definition).
    let superior = Bpdu::Rst(body(
        bid(0x1000, 9),
        0,
        bid(0x1000, 9),
        0x8001,
        designated(0x02),
    ));
    s.receive(PortId(1), &llc(&superior), t(0)).unwrap();
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Root));
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.port_state(PortId(2)), PortState::Forwarding);
    let a = drain(&mut s);
    let b = sent(&a, PortId(1));
    let Bpdu::Rst(c) = b.last().copied().unwrap() else {
        panic!()
    };
    assert!(
        c.flags.agreement() && c.flags.role() == RoleFlag::Root,
        "{a:?}"
    );
    // Link down and up: admin edge again.
    s.set_port_enabled(PortId(1), false, t(1)).unwrap();
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Disabled));
    s.set_port_enabled(PortId(1), true, t(1)).unwrap();
    assert!(s.port_status(PortId(1)).unwrap().oper_edge);
}

#[test]
fn auto_edge_after_edge_delay() {
    let mut s = bridge(0x8000, 1);
    s.add_port(PortId(1), 1, PortConfig::default(), None, t(0))
        .unwrap();
    tick_to(&mut s, 2);
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    assert!(!s.port_status(PortId(1)).unwrap().oper_edge);
    tick_to(&mut s, 3);
    assert!(s.port_status(PortId(1)).unwrap().oper_edge);
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
}

/// Role selection (17.21.25) from hand-made priority vectors.
#[test]
fn role_selection_with_priority_vectors() {
    let mut s = bridge(0x8000, 0x02); // B = 8000.020000000002
    let pc = PortConfig {
        auto_edge: false,
        ..Default::default()
    };
    for i in 1..=5 {
        s.add_port(PortId(i), i as u16, pc, None, t(0)).unwrap();
    }
    drain(&mut s);
    let r = bid(0x8000, 0x01);
    let x = bid(0x8000, 0x05);
    let me = s.bridge_id();
    // Port 1: R's own port 8001 (root path cost 0 + 20000).
    s.receive(
        PortId(1),
        &llc(&Bpdu::Rst(body(r, 0, r, 0x8001, designated(0)))),
        t(0),
    )
    .unwrap();
    // Port 2: X, also 20000 from R: we (B < X) are designated on that link.
    s.receive(
        PortId(2),
        &llc(&Bpdu::Rst(body(r, 20000, x, 0x8001, designated(0)))),
        t(0),
    )
    .unwrap();
    // Port 3: R's port 8002: as good a path, but 8002 > 8001 -> alternate.
    s.receive(
        PortId(3),
        &llc(&Bpdu::Rst(body(r, 0, r, 0x8002, designated(0)))),
        t(0),
    )
    .unwrap();
    // Port 4: our own port 2's information (a loop on a shared LAN) -> backup.
    s.receive(
        PortId(4),
        &llc(&Bpdu::Rst(body(r, 20000, me, 0x8002, designated(0)))),
        t(0),
    )
    .unwrap();
    let role = |i| s.port_role(PortId(i)).unwrap();
    assert_eq!(
        [role(1), role(2), role(3), role(4), role(5)],
        [
            PortRole::Root,
            PortRole::Designated,
            PortRole::Alternate,
            PortRole::Backup,
            PortRole::Designated
        ]
    );
    let st = s.status();
    assert_eq!(
        (st.designated_root, st.root_path_cost, st.root_port),
        (r, 20000, Some(PortId(1)))
    );
    assert!(!st.is_root);
    assert_eq!(st.root_changes, 1);
    // Port 2 now advertises {R, 20000, B, 8002}.
    let p2 = s.port_status(PortId(2)).unwrap();
    assert_eq!(
        (
            p2.designated_root,
            p2.designated_cost,
            p2.designated_bridge,
            p2.designated_port
        ),
        (r, 20000, me, PortIdentifier(0x8002))
    );
    for i in [3, 4] {
        assert_eq!(s.port_state(PortId(i)), PortState::Discarding);
    }
    // Root port forwards at once: no other port was recently root.
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);

    // A cheaper path via port 3 (cost 10 configured) takes over; port 1 becomes alternate.
    s.set_port_config(
        PortId(3),
        PortConfig {
            path_cost: Some(10),
            ..pc
        },
        t(0),
    )
    .unwrap();
    assert_eq!(s.port_role(PortId(3)), Some(PortRole::Root));
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Alternate));
    assert_eq!(s.status().root_path_cost, 10);
    assert_eq!(s.status().root_port, Some(PortId(3)));
    // The old root port is discarding before the new one forwards (rrWhile / reRoot):
    // never both forwarding.
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    assert_eq!(s.port_state(PortId(3)), PortState::Forwarding);
    assert_eq!(
        s.status().root_changes,
        1,
        "same root bridge, another root port"
    );

    // Information ages out after 3 x Hello Time without BPDUs: port 3 loses it, port 1
    // and the others too; we are root again.
    tick_to(&mut s, 7);
    assert!(s.status().is_root);
    assert_eq!(s.status().root_changes, 2);
    assert_eq!(s.iteration_limit_hits(), 0);
}

/// Proposal/agreement on a point-to-point link: both ends forward without any timer.
#[test]
fn proposal_agreement_forwards_without_forward_delay() {
    let mut a = bridge(0x8000, 1);
    let mut b = bridge(0x8000, 2);
    let pc = PortConfig {
        auto_edge: false,
        ..Default::default()
    };
    a.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    b.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    b.add_port(PortId(2), 2, pc, None, t(0)).unwrap(); // a designated port toward nobody
    let mut exchanged = 0;
    for _ in 0..20 {
        let (fa, fb) = (drain(&mut a), drain(&mut b));
        let mut any = false;
        for f in sent(&fa, PortId(1)) {
            b.receive(PortId(1), &llc(&f), t(0)).unwrap();
            any = true;
            exchanged += 1;
        }
        for f in sent(&fb, PortId(1)) {
            a.receive(PortId(1), &llc(&f), t(0)).unwrap();
            any = true;
            exchanged += 1;
        }
        if !any {
            break;
        }
    }
    assert!((3..=8).contains(&exchanged), "{exchanged} BPDUs");
    assert_eq!(a.port_role(PortId(1)), Some(PortRole::Designated));
    assert_eq!(b.port_role(PortId(1)), Some(PortRole::Root));
    assert_eq!(a.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(b.port_state(PortId(1)), PortState::Forwarding);
    // b's other designated port was synced (discarding) and proposes on its own.
    assert_eq!(b.port_state(PortId(2)), PortState::Discarding);
    assert_eq!(b.status().designated_root, a.bridge_id());
    // A topology change was detected when the non-edge ports went forwarding: the peer
    // learns it through the TC flag, each bridge counts one.
    assert_eq!(a.status().topology_change_count, 1);
    assert!(a.status().topology_change);
    assert_eq!(b.status().topology_change_count, 1);
}

#[test]
fn bpdu_guard_disables_port_until_reenabled() {
    let mut s = bridge(0x8000, 1);
    let pc = PortConfig {
        admin_edge: true,
        bpdu_guard: true,
        ..Default::default()
    };
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    drain(&mut s);
    let any = Bpdu::Rst(body(
        bid(0xf000, 9),
        0,
        bid(0xf000, 9),
        0x8001,
        designated(0),
    ));
    s.receive(PortId(1), &llc(&any), t(1)).unwrap();
    let a = drain(&mut s);
    assert!(a.contains(&Action::BpduGuard { port: PortId(1) }));
    assert!(a.contains(&Action::SetState {
        port: PortId(1),
        state: PortState::Discarding
    }));
    let st = s.port_status(PortId(1)).unwrap();
    assert!(st.bpdu_guard_tripped && !st.enabled);
    assert_eq!(
        (st.role, st.state, st.bpdu_guard_trips),
        (PortRole::Disabled, PortState::Discarding, 1)
    );
    // Further BPDUs are counted, ignored, and do not trip it again.
    s.receive(PortId(1), &llc(&any), t(2)).unwrap();
    let st = s.port_status(PortId(1)).unwrap();
    assert_eq!(
        (
            st.bpdu_guard_trips,
            st.counters.rx_rst,
            st.counters.rx_ignored
        ),
        (1, 2, 1)
    );
    tick_to(&mut s, 30);
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    // Re-enabled by link up.
    s.set_port_enabled(PortId(1), true, t(30)).unwrap();
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert!(!s.port_status(PortId(1)).unwrap().bpdu_guard_tripped);
    // Trip again, then re-enable by a configuration change.
    s.receive(PortId(1), &llc(&any), t(31)).unwrap();
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    s.set_port_config(PortId(1), pc, t(31)).unwrap();
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.port_status(PortId(1)).unwrap().bpdu_guard_trips, 2);
}

#[test]
fn root_guard_holds_superior_information_off() {
    let mut s = bridge(0x8000, 2);
    let pc = PortConfig {
        auto_edge: false,
        ..Default::default()
    };
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            root_guard: true,
            ..pc
        },
        None,
        t(0),
    )
    .unwrap();
    s.add_port(PortId(2), 2, pc, None, t(0)).unwrap();
    tick_to(&mut s, 25);
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.port_state(PortId(2)), PortState::Forwarding);
    let rogue = Bpdu::Rst(body(
        bid(0x0000, 9),
        0,
        bid(0x0000, 9),
        0x8001,
        designated(0x02 | 0x30),
    ));
    for sec in 25..35 {
        s.receive(PortId(1), &llc(&rogue), t(sec)).unwrap();
        tick_to(&mut s, sec + 1);
        let st = s.port_status(PortId(1)).unwrap();
        assert!(st.root_inconsistent, "at {sec}");
        assert_eq!(st.state, PortState::Discarding);
        assert_eq!(st.role, PortRole::Alternate);
        assert!(s.status().is_root, "root guard keeps us root");
        assert_eq!(s.port_state(PortId(2)), PortState::Forwarding);
    }
    // The rogue stops: its information ages out (3 x 2 s) and the port is designated again.
    tick_to(&mut s, 35 + 6);
    let st = s.port_status(PortId(1)).unwrap();
    assert!(!st.root_inconsistent);
    assert_eq!(st.role, PortRole::Designated);
    // Back to forwarding by the timers (no peer agrees): at most MaxAge + 2 x Hello.
    tick_to(&mut s, 35 + 6 + 25);
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.status().root_changes, 0);
}

/// Port Protocol Migration (17.24): Configuration BPDUs switch the port to 802.1D BPDUs;
/// once mdelayWhile has run out, an RST BPDU switches it back.
#[test]
fn migration_to_stp_and_back() {
    let mut s = bridge(0x1000, 1); // we are root
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            auto_edge: false,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    let legacy = Bpdu::Config(body(
        bid(0x8000, 7),
        0,
        bid(0x8000, 7),
        0x8001,
        BpduFlags(0),
    ));
    // During the first Migrate Time (CHECKING_RSTP) a config BPDU does not switch yet ...
    s.receive(PortId(1), &llc(&legacy), t(1)).unwrap();
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Rstp);
    tick_to(&mut s, 3);
    drain(&mut s);
    // ... after it, the next one does.
    s.receive(PortId(1), &llc(&legacy), t(3)).unwrap();
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    // An RST BPDU within mdelayWhile (SELECTING_STP, 3 s) does not switch back yet.
    let rstp = Bpdu::Rst(body(
        bid(0x8000, 7),
        0,
        bid(0x8000, 7),
        0x8001,
        designated(0),
    ));
    let mut s2 = s.clone();
    tick_to(&mut s2, 5);
    s2.receive(PortId(1), &llc(&rstp), t(5)).unwrap();
    assert_eq!(s2.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    let a = drain(&mut s);
    tick_to(&mut s, 5);
    let mut a2 = a.clone();
    a2.extend(drain(&mut s));
    let out = sent(&a2, PortId(1));
    assert!(!out.is_empty());
    assert!(out.iter().all(|b| matches!(b, Bpdu::Config(_))), "{out:?}");
    // The port is designated in STP mode: no proposal/agreement, timers only: 2 x FwdDelay.
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Designated));
    tick_to(&mut s, 20);
    assert_ne!(s.port_state(PortId(1)), PortState::Forwarding);

    // Migration back: stop the legacy BPDUs, let mdelayWhile expire, then RST BPDUs come.
    tick_to(&mut s, 24);
    s.receive(PortId(1), &llc(&rstp), t(24)).unwrap();
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Rstp);
    drain(&mut s);
    tick_to(&mut s, 26);
    let out = sent(&drain(&mut s), PortId(1));
    assert!(
        out.iter().all(|b| matches!(b, Bpdu::Rst(_))) && !out.is_empty(),
        "{out:?}"
    );

    // mcheck forces RSTP again at once.
    let mut s3 = s.clone();
    tick_to(&mut s3, 30);
    s3.receive(PortId(1), &llc(&legacy), t(30)).unwrap();
    assert_eq!(s3.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    s3.mcheck(PortId(1), t(30)).unwrap();
    assert_eq!(s3.port_status(PortId(1)).unwrap().protocol, Protocol::Rstp);
}

/// Toward an 802.1D bridge: a TCN on our designated port is acknowledged with TCA in the
/// next Configuration BPDU, other ports are flushed, and TC is flagged for
/// Max Age + Forward Delay.
#[test]
fn tcn_from_legacy_peer_is_acknowledged_and_propagated() {
    let mut s = bridge(0x1000, 1);
    let pc = PortConfig {
        auto_edge: false,
        ..Default::default()
    };
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    s.add_port(PortId(2), 2, pc, None, t(0)).unwrap();
    tick_to(&mut s, 3);
    let legacy_root_port = Bpdu::Config(body(
        bid(0x1000, 1),
        20000,
        bid(0x8000, 7),
        0x8001,
        BpduFlags(0),
    ));
    // A legacy bridge never sends from its root port; it sends TCNs. First get into STP
    // mode with one (inferior) config BPDU, as when it started up.
    s.receive(PortId(1), &llc(&legacy_root_port), t(3)).unwrap();
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    tick_to(&mut s, 40);
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.port_state(PortId(2)), PortState::Forwarding);
    // Let the topology change of the initial convergence end (35 s on an STP port).
    tick_to(&mut s, 80);
    assert!(!s.status().topology_change);
    drain(&mut s);
    let before = s.status().topology_change_count;
    s.receive(PortId(1), &llc(&Bpdu::Tcn), t(80)).unwrap();
    let mut a = drain(&mut s);
    assert!(a.contains(&Action::Flush { port: PortId(2) }), "{a:?}");
    assert!(
        !a.contains(&Action::Flush { port: PortId(1) }),
        "not the port the TCN came from"
    );
    assert_eq!(s.status().topology_change_count, before + 1);
    assert!(a.contains(&Action::TopologyChange));
    tick_to(&mut s, 82);
    a.extend(drain(&mut s));
    let cfgs: Vec<ConfigBody> = sent(&a, PortId(1))
        .into_iter()
        .filter_map(|b| {
            if let Bpdu::Config(c) = b {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    assert!(
        cfgs.first()
            .is_some_and(|c| c.flags.tc_ack() && c.flags.tc()),
        "{cfgs:?}"
    );
    assert!(
        cfgs.iter().skip(1).all(|c| !c.flags.tc_ack()),
        "TCA once per TCN"
    );
    let tc_while = s.port_status(PortId(1)).unwrap().tc_while;
    assert!(
        tc_while > 30 && tc_while <= 35,
        "Max Age + Forward Delay: {tc_while}"
    );
}

/// Our root port faces an 802.1D designated bridge: a topology change on our side is sent
/// as TCN BPDUs every Hello Time until a Configuration BPDU with TCA arrives.
#[test]
fn tcn_toward_legacy_root_until_acknowledged() {
    let mut s = bridge(0x8000, 2);
    let pc = PortConfig {
        auto_edge: false,
        ..Default::default()
    };
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    s.add_port(PortId(2), 2, pc, None, t(0)).unwrap();
    let root = bid(0x1000, 1);
    let hello = |flags| Bpdu::Config(body(root, 0, root, 0x8001, BpduFlags(flags)));
    let mut now = 0;
    // Unacknowledged, the TC of the initial convergence lasts Max Age + Forward Delay.
    while now < 90 {
        s.receive(PortId(1), &llc(&hello(0)), t(now)).unwrap();
        now += 2;
        tick_to(&mut s, now);
    }
    assert!(!s.status().topology_change);
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Root));
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
    assert_eq!(s.port_state(PortId(2)), PortState::Forwarding);
    drain(&mut s);
    // Topology change: port 2 goes down and up; when it forwards again (non-edge) that is
    // a topology change, sent up the root port as TCNs.
    s.set_port_enabled(PortId(2), false, t(now)).unwrap();
    s.set_port_enabled(PortId(2), true, t(now)).unwrap();
    let mut tcns = 0;
    let mut acked_at = None;
    for _ in 0..40 {
        now += 1;
        if now % 2 == 0 {
            let flags = if tcns >= 2 && acked_at.is_none() {
                0x80
            } else {
                0
            };
            if flags != 0 {
                acked_at = Some(tcns);
            }
            s.receive(PortId(1), &llc(&hello(flags)), t(now)).unwrap();
        }
        tick_to(&mut s, now);
        tcns += sent(&drain(&mut s), PortId(1))
            .iter()
            .filter(|b| matches!(b, Bpdu::Tcn))
            .count();
    }
    let acked_at = acked_at.expect("TCNs were sent");
    assert!(acked_at >= 2);
    assert_eq!(tcns, acked_at, "no TCN after the TCA");
}

#[test]
fn own_bpdu_looped_back_is_ignored() {
    let mut s = bridge(0x8000, 1);
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            auto_edge: false,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    let a = drain(&mut s);
    let mine = sent(&a, PortId(1))[0];
    s.receive(PortId(1), &llc(&mine), t(0)).unwrap();
    let st = s.port_status(PortId(1)).unwrap();
    assert_eq!(st.counters.rx_ignored, 1);
    assert_eq!(st.role, PortRole::Designated);
}

#[test]
fn invalid_bpdus_are_counted() {
    let mut s = bridge(0x8000, 1);
    s.add_port(PortId(1), 1, PortConfig::default(), None, t(0))
        .unwrap();
    assert!(matches!(
        s.receive(PortId(1), &[0x42, 0x42, 0x03, 0, 1, 0, 0], t(0)),
        Err(RxError::Bpdu(_))
    ));
    assert_eq!(s.port_status(PortId(1)).unwrap().counters.rx_invalid, 1);
}

#[test]
fn status_serializes_snake_case() {
    let mut s = bridge(0x8000, 1);
    s.add_port(PortId(7), 3, PortConfig::default(), None, t(0))
        .unwrap();
    let j = serde_json::to_value(s.status()).unwrap();
    assert_eq!(j["bridge_id"], "8000.020000000001");
    assert_eq!(j["designated_root"], "8000.020000000001");
    assert_eq!(j["is_root"], true);
    assert_eq!(j["root_port"], serde_json::Value::Null);
    assert_eq!(j["protocol"], "rstp");
    assert_eq!(j["hello_time"], 2);
    assert_eq!(j["topology_change_count"], 0);
    let j = serde_json::to_value(s.port_status(PortId(7)).unwrap()).unwrap();
    assert_eq!(j["port"], 7);
    assert_eq!(j["port_no"], 3);
    assert_eq!(j["port_id"], "8003");
    assert_eq!(j["role"], "designated");
    assert_eq!(j["state"], "discarding");
    assert_eq!(j["protocol"], "rstp");
    assert_eq!(j["point_to_point"], true);
    assert_eq!(j["bpdu_src_mac"], "02:00:03:00:00:01"); // port number 3 in octets 1-2
    assert_eq!(j["counters"]["tx_rst"], 1);
    let c = serde_json::to_value(PortConfig::default()).unwrap();
    assert_eq!(c["p2p"], "auto");
    assert_eq!(PortRole::Alternate.as_str(), "alternate");
    assert_eq!(PortState::Forwarding.as_str(), "forwarding");
}

/// At most tx_hold_count BPDUs per port per second, whatever provokes them.
#[test]
fn transmit_hold_count_limits_bpdus() {
    let mut s = bridge(0x1000, 1);
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            auto_edge: false,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    tick_to(&mut s, 5);
    drain(&mut s);
    // Each inferior designated BPDU is answered (INFERIOR_DESIGNATED sets newInfo).
    let inferior = Bpdu::Rst(body(
        bid(0x8000, 9),
        0,
        bid(0x8000, 9),
        0x8001,
        designated(0),
    ));
    for _ in 0..50 {
        s.receive(PortId(1), &llc(&inferior), t(5)).unwrap();
    }
    let n = sent(&drain(&mut s), PortId(1)).len();
    assert_eq!(n, 6, "tx hold count 6");
    // The count drains by one a second.
    tick_to(&mut s, 6);
    for _ in 0..50 {
        s.receive(PortId(1), &llc(&inferior), t(6)).unwrap();
    }
    let n = sent(&drain(&mut s), PortId(1)).len();
    assert!((1..=2).contains(&n), "{n}");
    // A smaller hold count applies at once.
    let mut c = *s.config();
    c.tx_hold_count = 1;
    s.set_config(c, t(6)).unwrap();
    drain(&mut s);
    tick_to(&mut s, 7);
    for _ in 0..50 {
        s.receive(PortId(1), &llc(&inferior), t(7)).unwrap();
    }
    assert!(sent(&drain(&mut s), PortId(1)).len() <= 1);
}

#[test]
fn link_down_discards_and_flushes() {
    let mut s = bridge(0x8000, 1);
    let pc = PortConfig {
        admin_edge: true,
        ..Default::default()
    };
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    drain(&mut s);
    s.set_port_enabled(PortId(1), false, t(1)).unwrap();
    let a = drain(&mut s);
    assert_eq!(
        a,
        vec![
            Action::SetState {
                port: PortId(1),
                state: PortState::Discarding
            },
            Action::Flush { port: PortId(1) }
        ]
    );
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Disabled));
    // Nothing is sent on a disabled port, and BPDUs on it are ignored.
    tick_to(&mut s, 10);
    assert!(sent(&drain(&mut s), PortId(1)).is_empty());
    s.receive(PortId(1), &llc(&Bpdu::Tcn), t(10)).unwrap();
    assert_eq!(s.port_status(PortId(1)).unwrap().counters.rx_ignored, 1);
    s.set_port_enabled(PortId(1), true, t(10)).unwrap();
    assert_eq!(s.port_state(PortId(1)), PortState::Forwarding);
}

#[test]
fn remove_port_reselects() {
    let mut s = bridge(0x8000, 2);
    let pc = PortConfig {
        auto_edge: false,
        ..Default::default()
    };
    s.add_port(PortId(1), 1, pc, None, t(0)).unwrap();
    s.add_port(PortId(2), 2, pc, None, t(0)).unwrap();
    let r = bid(0x1000, 1);
    s.receive(
        PortId(1),
        &llc(&Bpdu::Rst(body(r, 0, r, 0x8001, designated(0)))),
        t(0),
    )
    .unwrap();
    assert_eq!(s.status().root_port, Some(PortId(1)));
    drain(&mut s);
    s.remove_port(PortId(1), t(1)).unwrap();
    let a = drain(&mut s);
    assert!(a.iter().all(|a| !matches!(
        a,
        Action::Transmit {
            port: PortId(1),
            ..
        } | Action::SetState {
            port: PortId(1),
            ..
        } | Action::Flush { port: PortId(1) }
    )));
    let st = s.status();
    assert!(st.is_root && st.root_port.is_none());
    assert_eq!(s.port_status(PortId(1)), None);
    assert_eq!(s.port_state(PortId(1)), PortState::Discarding);
    assert_eq!(s.port_role(PortId(2)), Some(PortRole::Designated));
    assert_eq!(
        s.remove_port(PortId(1), t(1)),
        Err(StpPortError::UnknownPort(PortId(1)))
    );
    // The port number is free again.
    s.add_port(PortId(3), 1, pc, None, t(1)).unwrap();
}

#[test]
fn force_version_change_restarts_in_stp_mode() {
    let mut s = bridge(0x8000, 1);
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            admin_edge: true,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    drain(&mut s);
    let mut c = *s.config();
    c.force_version = 0;
    s.set_config(c, t(1)).unwrap();
    let a = drain(&mut s);
    let b = sent(&a, PortId(1));
    assert!(
        !b.is_empty() && b.iter().all(|b| matches!(b, Bpdu::Config(_))),
        "{a:?}"
    );
    assert_eq!(s.status().protocol, Protocol::Stp);
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    // mcheck does nothing in STP mode.
    s.mcheck(PortId(1), t(1)).unwrap();
    assert_eq!(s.port_status(PortId(1)).unwrap().protocol, Protocol::Stp);
    // A new address restarts too, with new per-port BPDU addresses.
    let old = s.port_bpdu_mac(PortId(1)).unwrap();
    c.mac = mac(9);
    s.set_config(c, t(1)).unwrap();
    assert_ne!(s.port_bpdu_mac(PortId(1)).unwrap(), old);
    assert_eq!(s.bridge_id(), bid(0x8000, 9));
}

/// tick() counts whole seconds whatever the call rate, and survives a clock step back.
#[test]
fn tick_counts_whole_seconds() {
    let mut a = bridge(0x8000, 1);
    a.add_port(
        PortId(1),
        1,
        PortConfig {
            auto_edge: false,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    let mut b = a.clone();
    for ms in (0..30_000).step_by(37).chain([30_000]) {
        a.tick(Timestamp(ms));
    }
    b.tick(Timestamp(30_000));
    assert_eq!(a.port_state(PortId(1)), b.port_state(PortId(1)));
    assert_eq!(
        a.port_status(PortId(1)).unwrap().state,
        PortState::Forwarding
    );
    let (ta, tb) = (
        sent(&drain(&mut a), PortId(1)).len(),
        sent(&drain(&mut b), PortId(1)).len(),
    );
    assert_eq!(ta, tb);
    a.tick(Timestamp(10_000)); // backwards: ignored, restarts counting from there
    a.tick(Timestamp(11_000));
    assert_eq!(a.port_state(PortId(1)), PortState::Forwarding);
}

#[test]
fn priority_change_makes_us_root_and_timers_follow() {
    let mut s = bridge(0x8000, 2);
    s.add_port(
        PortId(1),
        1,
        PortConfig {
            auto_edge: false,
            ..Default::default()
        },
        None,
        t(0),
    )
    .unwrap();
    let r = bid(0x8000, 1);
    let mut b = body(r, 0, r, 0x8001, designated(0));
    b.hello_time = TimeField::from_secs(1);
    b.max_age = TimeField::from_secs(10);
    b.forward_delay = TimeField::from_secs(5);
    s.receive(PortId(1), &llc(&Bpdu::Rst(b)), t(0)).unwrap();
    let st = s.status();
    assert!(!st.is_root);
    assert_eq!(
        (st.hello_time, st.max_age, st.forward_delay),
        (1, 10, 5),
        "times of the root in force"
    );
    let mut c = *s.config();
    c.priority = 0x1000;
    s.set_config(c, t(0)).unwrap();
    let st = s.status();
    assert!(st.is_root);
    assert_eq!((st.hello_time, st.max_age, st.forward_delay), (2, 20, 15));
    assert_eq!(st.root_changes, 2);
    assert_eq!(s.port_role(PortId(1)), Some(PortRole::Designated));
    assert!(s
        .set_config(BridgeConfig { max_age: 50, ..c }, t(0))
        .is_err());
}

#[test]
fn derived_mac_is_stable_local_unicast_and_differs_by_name() {
    let a = derived_mac("tapswitch");
    assert_eq!(
        a,
        derived_mac("tapswitch"),
        "the same name, the same address"
    );
    assert_eq!(a.0[0], 0x02, "locally administered, unicast");
    assert!(a.is_valid_source());
    assert_ne!(a, derived_mac("tapswitch2"));
    // FNV-1a of the empty name is its offset basis 0xcbf29ce484222325
    assert_eq!(derived_mac("").0, [0x02, 0xcb, 0xf2, 0x9c, 0xe4, 0x84]);
    // a bridge with a derived address passes its own checks
    assert!(BridgeConfig::new(derived_mac("br0")).validate().is_ok());
}
