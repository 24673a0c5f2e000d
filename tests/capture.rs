//! Captures and mirrors through the whole frame path, rootless (in-memory ports, `Switch::pump`):
//!
//! - mirrors: OVS semantics (frames received on `select_src`, frames sent to `select_dst`, each
//!   frame once per mirror), the output port out of forwarding (no learning, no floods, its
//!   frames dropped as `mirror_output`), copies "as sent" after a VLAN tag change, removal;
//! - captures: what the ring gets (inbound as read, outbound as written, byte for byte), port
//!   and direction selection, a full ring dropping and counting, the concurrency limit, and the
//!   stream a session writes (pcapng read back: interfaces, directions, statistics; count and
//!   duration ending it).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tapswitch::capture::pcap::{Event, Reader};
use tapswitch::capture::ring::records;
use tapswitch::capture::session::{self, CaptureError, Request, MAX_CAPTURES};
use tapswitch::capture::{Direction, Directions, MirrorError, MirrorSpec};
use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::{EntryKind, FdbKey};
use tapswitch::forwarding::{PortFlags, RxDrop, Settings, TxDrop};
use tapswitch::port::mem::MemPort;
use tapswitch::types::Timestamp;
use tapswitch::wire::{build_frame, MacAddr};

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x5e, 0x20, 0x00, n])
}

struct Rig {
    sw: Arc<Switch>,
    ports: Vec<Arc<MemPort>>,
    handles: Vec<Arc<PortHandle>>,
    seq: u32,
}

impl Rig {
    /// Ports named by `names`, default flags.
    fn new(settings: Settings, names: &[&str]) -> Rig {
        let sw = Switch::new("br-cap", settings, 1024);
        let mut r = Rig {
            sw,
            ports: Vec::new(),
            handles: Vec::new(),
            seq: 0,
        };
        for n in names {
            let p = Arc::new(MemPort::default());
            let h =
                r.sw.add_port(n, Box::new(p.clone()), PortFlags::default())
                    .unwrap();
            r.ports.push(p);
            r.handles.push(h);
        }
        r
    }

    fn idx(&self, name: &str) -> usize {
        self.handles.iter().position(|h| h.name == name).unwrap()
    }

    /// A unique 60-byte frame.
    fn frame(&mut self, dst: MacAddr, src: MacAddr) -> Vec<u8> {
        self.seq += 1;
        let mut payload = vec![0u8; 46];
        payload[..4].copy_from_slice(&self.seq.to_be_bytes());
        build_frame(dst, src, 0x0800, &payload)
    }

    /// Injects a frame on `from`, pumps, returns what every port sent (by name order of
    /// creation).
    fn send_raw(&self, from: &str, frame: &[u8]) -> Vec<Vec<Vec<u8>>> {
        self.ports[self.idx(from)].inject(frame);
        self.sw.pump();
        self.ports.iter().map(|p| p.take_sent()).collect()
    }

    fn send(&mut self, from: &str, dst: MacAddr, src: MacAddr) -> (Vec<u8>, Vec<Vec<Vec<u8>>>) {
        let f = self.frame(dst, src);
        let out = self.send_raw(from, &f);
        (f, out)
    }

    fn spec(name: &str, src: &[&str], dst: &[&str], all: bool, out: &str) -> MirrorSpec {
        MirrorSpec {
            name: name.into(),
            select_src: src.iter().map(|s| s.to_string()).collect(),
            select_dst: dst.iter().map(|s| s.to_string()).collect(),
            select_all: all,
            output: out.into(),
        }
    }
}

/// Frames received on select_src and sent to select_dst reach the output once per frame; the
/// output port learns nothing, gets no floods, and what it sends is dropped.
#[test]
fn mirror_copies_selected_traffic_once_and_isolates_the_output() {
    let mut r = Rig::new(Settings::default(), &["a", "b", "c", "mon"]);
    let (a, b, c, mon) = (0, 1, 2, 3);
    r.sw.add_mirror(Rig::spec("m1", &["a"], &["b"], false, "mon"), false, true)
        .unwrap();
    // a broadcast from a: flooded to b and c, not to mon; mon gets exactly one copy
    let (f, out) = r.send("a", MacAddr::BROADCAST, mac(1));
    assert_eq!(out[b], std::slice::from_ref(&f));
    assert_eq!(out[c], std::slice::from_ref(&f));
    assert_eq!(out[mon], [f], "received on a and sent to b: one copy");
    // b learns, then a -> b known unicast: one copy
    let (_, out) = r.send("b", MacAddr::BROADCAST, mac(2));
    assert_eq!(out[mon].len(), 0, "b is not a source, nothing is sent to b");
    let (f, out) = r.send("a", mac(2), mac(1));
    assert_eq!(out[b], std::slice::from_ref(&f));
    assert_eq!(out[mon], [f]);
    // c -> b: sent to b (a destination): one copy; c -> a: nothing
    let (f, out) = r.send("c", mac(2), mac(3));
    assert_eq!(out[mon], [f]);
    let (_, out) = r.send("c", mac(1), mac(3));
    assert_eq!(out[a].len(), 1);
    assert!(out[mon].is_empty());
    let m = r.sw.mirrors()[0].clone();
    assert_eq!(m.frames.load(Relaxed), 3);
    assert_eq!(m.dropped.load(Relaxed), 0);

    // mon sends: dropped as mirror_output, not learned, not forwarded
    let before = r.handles[mon].counters.rx_dropped[RxDrop::MirrorOutput.index()].load(Relaxed);
    let (_, out) = r.send("mon", MacAddr::BROADCAST, mac(9));
    assert!(out.iter().all(|o| o.is_empty()), "{out:?}");
    assert_eq!(
        r.handles[mon].counters.rx_dropped[RxDrop::MirrorOutput.index()].load(Relaxed),
        before + 1
    );
    assert_eq!(r.sw.fdb.port_of(&FdbKey::new(mac(9), 0)), None);
    // a static entry toward the output port: known unicast is not sent there
    r.sw.fdb
        .insert_user(
            FdbKey::new(mac(8), 0),
            r.handles[mon].id,
            EntryKind::Static,
            false,
            Timestamp(0),
        )
        .unwrap();
    let (_, out) = r.send("c", mac(8), mac(3));
    assert!(out[mon].is_empty());
    assert_eq!(
        r.handles[mon].counters.tx_dropped[TxDrop::MirrorOutput.index()].load(Relaxed),
        1
    );
    // rx identity still holds on every port
    for h in &r.handles {
        let cn = &h.counters;
        assert_eq!(
            cn.rx_frames.load(Relaxed),
            cn.rx_forwarded.load(Relaxed) + cn.rx_flooded.load(Relaxed) + cn.rx_dropped_total(),
            "{}",
            h.name
        );
    }

    // removing the mirror stops the copies, and mon forwards again
    r.sw.remove_mirror("m1").unwrap();
    let (_, out) = r.send("a", MacAddr::BROADCAST, mac(1));
    assert_eq!(
        out[mon].len(),
        1,
        "a flood reaches mon again, as a plain port"
    );
    let (_, out) = r.send("a", mac(2), mac(1));
    assert!(out[mon].is_empty());
    let (_, out) = r.send("mon", mac(1), mac(9));
    assert_eq!(out[a].len(), 1, "mon's frames are forwarded again");
    assert_eq!(r.sw.mirrors().len(), 0);
}

#[test]
fn select_all_and_two_mirrors() {
    let mut r = Rig::new(Settings::default(), &["a", "b", "c", "mon", "mon2"]);
    let (b, mon, mon2) = (1, 3, 4);
    r.sw.add_mirror(Rig::spec("all", &[], &[], true, "mon"), false, true)
        .unwrap();
    r.sw.add_mirror(Rig::spec("bdst", &[], &["b"], false, "mon2"), false, true)
        .unwrap();
    // a flood from a to b and c (not to the outputs): one copy each mirror
    let (f, out) = r.send("a", MacAddr::BROADCAST, mac(1));
    assert_eq!(out[b], std::slice::from_ref(&f));
    assert_eq!(out[mon], std::slice::from_ref(&f));
    assert_eq!(out[mon2], [f]);
    // c -> a (b not involved): only "all"
    let (_, out) = r.send("c", mac(1), mac(3));
    assert_eq!(out[mon].len(), 1);
    assert!(out[mon2].is_empty());
    // outputs are never selected by select_all: mon2's frames are dropped, not copied to mon
    let (_, out) = r.send("mon2", MacAddr::BROADCAST, mac(7));
    assert!(out.iter().all(|o| o.is_empty()));
}

#[test]
fn mirror_errors() {
    let r = Rig::new(Settings::default(), &["a", "b", "mon"]);
    let add = |s: MirrorSpec| r.sw.add_mirror(s, false, true);
    assert!(matches!(
        add(Rig::spec("m", &["x"], &[], false, "mon")),
        Err(MirrorError::UnknownPort { .. })
    ));
    assert!(matches!(
        add(Rig::spec("m", &["a"], &[], false, "nope")),
        Err(MirrorError::UnknownPort { .. })
    ));
    add(Rig::spec("m", &["a"], &[], false, "mon")).unwrap();
    assert!(matches!(
        add(Rig::spec("m", &["b"], &[], false, "mon")),
        Err(MirrorError::Exists(_))
    ));
    assert!(matches!(
        add(Rig::spec("m2", &["mon"], &[], false, "b")),
        Err(MirrorError::OutputConflict { .. })
    ));
    assert!(matches!(
        add(Rig::spec("m3", &["b"], &[], false, "a")),
        Err(MirrorError::OutputConflict { .. })
    ));
    assert!(matches!(
        r.sw.remove_mirror("zz"),
        Err(MirrorError::NotFound(_))
    ));
    // a mirror whose output goes away copies nothing, and comes back with its port
    r.sw.remove_port("mon");
    assert!(!r.sw.ports().taps().armed());
    let p = Arc::new(MemPort::default());
    r.sw.add_port("mon", Box::new(p.clone()), PortFlags::default())
        .unwrap();
    assert!(r.sw.ports().taps().armed());
    r.ports[0].inject(&build_frame(MacAddr::BROADCAST, mac(1), 0x0800, &[0; 46]));
    r.sw.pump();
    assert_eq!(p.take_sent().len(), 1);
}

/// With VLAN filtering, a copy of a frame sent to a trunk carries the tag it was sent with; a
/// copy of a frame received on an access port is untagged, as received.
#[test]
fn mirror_copies_are_as_received_or_as_sent() {
    use tapswitch::vlan::{PortVlans, VlanSet};
    let s = Settings {
        vlan_filtering: true,
        ..Settings::default()
    };
    let mut r = Rig::new(s, &["acc", "trunk", "mon_rx", "mon_tx"]);
    r.sw.update_port_vlans(&r.handles[0], |p| *p = PortVlans::access(10).unwrap());
    let t = PortVlans::trunk(&"10".parse::<VlanSet>().unwrap(), None).unwrap();
    r.sw.update_port_vlans(&r.handles[1], |p| *p = t);
    r.sw.add_mirror(Rig::spec("rx", &["acc"], &[], false, "mon_rx"), false, true)
        .unwrap();
    r.sw.add_mirror(
        Rig::spec("tx", &[], &["trunk"], false, "mon_tx"),
        false,
        true,
    )
    .unwrap();
    let (f, out) = r.send("acc", MacAddr::BROADCAST, mac(1));
    assert_eq!(out[1].len(), 1);
    let sent = out[1][0].clone();
    assert_eq!(&sent[12..14], &[0x81, 0x00], "tagged toward the trunk");
    assert_eq!(out[2], [f], "copy as received (untagged)");
    assert_eq!(out[3], [sent], "copy as sent (tagged)");
}

fn ring_records(sw: &Switch, id: u64) -> Vec<(String, Direction, Vec<u8>, u32)> {
    let reg = sw.ports();
    let c = reg
        .taps()
        .captures()
        .iter()
        .find(|c| c.id == id)
        .unwrap()
        .clone();
    let mut buf = c.ring.spare();
    c.ring.take(&mut buf);
    records(&buf)
        .map(|r| {
            (
                reg.get(r.port).unwrap().name.clone(),
                r.dir,
                r.data.to_vec(),
                r.orig_len,
            )
        })
        .collect()
}

#[test]
fn captures_see_frames_as_read_and_as_written() {
    let mut r = Rig::new(Settings::default(), &["a", "b", "c"]);
    // nothing armed: the frame path looks at one flag
    assert!(!r.sw.ports().taps().armed());
    let all = session::start(&r.sw, Request::default()).unwrap();
    let only_b_tx = session::start(
        &r.sw,
        Request {
            ports: vec!["b".into()],
            filter: tapswitch::capture::Filter {
                directions: Directions::Tx,
                ..Default::default()
            },
            snaplen: 20,
            ..Request::default()
        },
    )
    .unwrap();
    assert!(r.sw.ports().taps().armed());
    let (f, _) = r.send("a", MacAddr::BROADCAST, mac(1));
    use Direction::{Inbound as In, Outbound as Out};
    let got = ring_records(&r.sw, all.capture().id);
    assert_eq!(
        got,
        [
            ("a".to_string(), In, f.clone(), 60),
            ("b".to_string(), Out, f.clone(), 60),
            ("c".to_string(), Out, f.clone(), 60),
        ]
    );
    let got = ring_records(&r.sw, only_b_tx.capture().id);
    assert_eq!(got, [("b".to_string(), Out, f[..20].to_vec(), 60)]);
    // a frame dropped by the switch is still seen coming in
    let bad = build_frame(mac(2), MacAddr::BROADCAST, 0x0800, &[0; 46]);
    r.send_raw("c", &bad);
    let got = ring_records(&r.sw, all.capture().id);
    assert_eq!(got, [("c".to_string(), In, bad, 60)]);
    drop(all);
    drop(only_b_tx);
    assert!(
        !r.sw.ports().taps().armed(),
        "ended captures disarm the frame path"
    );
    assert_eq!(
        r.sw.capture.frames.load(Relaxed),
        5,
        "ended captures' totals are kept"
    );
}

#[test]
fn a_full_ring_drops_and_counts_while_forwarding_goes_on() {
    let r = Rig::new(Settings::default(), &["a", "b"]);
    let s = session::start(&r.sw, Request::default()).unwrap();
    let big = build_frame(mac(2), mac(1), 0x0800, &[7; 1500]);
    let n = 4000;
    for _ in 0..n {
        r.ports[0].inject(&big);
    }
    r.sw.pump();
    assert_eq!(
        r.ports[1].take_sent().len(),
        n,
        "forwarding is not slowed or stopped"
    );
    let c = s.capture().clone();
    let kept = c.ring.frames.load(Relaxed);
    let dropped = c.ring.dropped.load(Relaxed);
    assert_eq!(
        kept + dropped,
        2 * n as u64,
        "every frame is kept or counted"
    );
    assert!(dropped > 0 && kept > 0, "kept {kept} dropped {dropped}");
    assert_eq!(c.dropped_on(0) + c.dropped_on(1), dropped);
    r.send_raw("a", &big);
    drop(s);
    assert_eq!(r.sw.capture.dropped.load(Relaxed), dropped + 2);
}

#[test]
fn at_most_eight_captures_and_unknown_ports() {
    let r = Rig::new(Settings::default(), &["a"]);
    let mut held = Vec::new();
    for _ in 0..MAX_CAPTURES {
        held.push(session::start(&r.sw, Request::default()).unwrap());
    }
    let e = session::start(&r.sw, Request::default()).err().unwrap();
    assert_eq!(e, CaptureError::TooMany(MAX_CAPTURES));
    held.pop();
    assert!(session::start(&r.sw, Request::default()).is_ok());
    let e = session::start(
        &r.sw,
        Request {
            ports: vec!["nope".into()],
            ..Request::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.status(), 404);
}

/// Runs a session to its end on a runtime and returns the stream's events.
fn stream_of(s: session::Session<Switch>) -> Vec<Event> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let bytes = rt.block_on(async move {
        let task = tokio::spawn(s.run(tx));
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk);
        }
        task.await.unwrap();
        all
    });
    let mut reader = Reader::new();
    reader.feed(&bytes);
    let mut ev = Vec::new();
    while let Some(e) = reader.next().unwrap() {
        ev.push(e);
    }
    assert_eq!(reader.buffered(), 0);
    ev
}

#[test]
fn a_session_streams_pcapng_until_its_count() {
    let mut r = Rig::new(Settings::default(), &["a", "b", "c"]);
    let s = session::start(
        &r.sw,
        Request {
            ports: vec!["b".into(), "a".into()],
            count: Some(3),
            ..Request::default()
        },
    )
    .unwrap();
    let (f1, _) = r.send("a", MacAddr::BROADCAST, mac(1));
    let (f2, _) = r.send("c", mac(1), mac(3));
    let ev = stream_of(s);
    let names: Vec<Option<String>> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Interface { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, [Some("b".to_string()), Some("a".to_string())]);
    let pk: Vec<(u32, Option<Direction>, Vec<u8>)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Packet {
                iface, dir, data, ..
            } => Some((*iface, *dir, data.clone())),
            _ => None,
        })
        .collect();
    use Direction::{Inbound as In, Outbound as Out};
    // a in (iface 1), b out (iface 0), then c -> a: a out; the count stops it there
    assert_eq!(
        pk,
        [
            (1, Some(In), f1.clone()),
            (0, Some(Out), f1),
            (1, Some(Out), f2)
        ]
    );
    let stats: Vec<(u32, Option<u64>, Option<u64>)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Stats {
                iface,
                received,
                dropped,
            } => Some((*iface, *received, *dropped)),
            _ => None,
        })
        .collect();
    assert_eq!(stats, [(0, Some(1), Some(0)), (1, Some(2), Some(0))]);
    assert!(!r.sw.ports().taps().armed());
}

#[test]
fn a_session_ends_after_its_duration_with_pcap() {
    let mut r = Rig::new(Settings::default(), &["a", "b"]);
    let s = session::start(
        &r.sw,
        Request {
            duration: Some(Duration::from_millis(100)),
            format: tapswitch::capture::Format::Pcap,
            ..Request::default()
        },
    )
    .unwrap();
    let (f, _) = r.send("a", MacAddr::BROADCAST, mac(1));
    let t = std::time::Instant::now();
    let ev = stream_of(s);
    assert!(t.elapsed() < Duration::from_secs(5));
    let pk: Vec<&Vec<u8>> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Packet { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(pk, [&f, &f]);
}
