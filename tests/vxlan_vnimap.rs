//! Rootless: a `vxlan` port with a VLAN-to-VNI map (`vni-map=10:1010;20:1020`) through the
//! whole dataplane, its underlay an in-memory wire, packets handed to the hub with
//! `Switch::vxlan_deliver` as the kernel would. No runtime, no sockets, no sleeps.
//!
//! - a frame of VLAN 10 leaves untagged in VNI 1010, to VNI 1010's flood list only;
//! - a packet of VNI 1010 enters the bridge in VLAN 10 (learned there, delivered to VLAN 10's
//!   ports only);
//! - each VNI has its own table and flood list: one MAC behind two VTEPs in two VNIs, and a
//!   remote of one VNI is a stranger in the other;
//! - a VNI not in the map is dropped and counted (`unknown_vni`, per hub);
//! - a map needs VLAN filtering, and its VNIs are taken on their hub;
//! - an offload frame (partial checksum) keeps its checksum offsets right without its tag;
//! - the same through `tapswitch run` and its API (`POST /api/v1/ports` with a spec, entries
//!   per VNI, the port view, the `vni` label of the metrics), on loopback.

mod common;

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tapswitch::dataplane::vxlan::VxlanAttachError;
use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::{EntryKind, FdbKey};
use tapswitch::forwarding::{PortFlags, Settings};
use tapswitch::offload::{VnetHdr, F_NEEDS_CSUM, VNET_HDR_LEN};
use tapswitch::port::mem::MemPort;
use tapswitch::port::vxlan::VxlanPort;
use tapswitch::vlan::PortVlans;
use tapswitch::vxlan::spec::VxlanSpec;
use tapswitch::vxlan::vtep::{Underlay, Vtep, VxlanDrop};
use tapswitch::vxlan::wire::{self, ENCAP_HLEN};
use tapswitch::wire::{build_frame, MacAddr};

const LOCAL: &str = "198.18.40.1";
const R10: &str = "198.18.40.2";
const R20: &str = "198.18.40.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x5e, 0x40, 0x00, n])
}

/// One datagram the port sent: (to, UDP header + VXLAN header + inner frame).
type Sent = (IpAddr, Vec<u8>);

/// What the port sent.
#[derive(Default, Clone)]
struct Wire(Arc<Mutex<Vec<Sent>>>);

impl Wire {
    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Underlay for Wire {
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
        let mut p = head.to_vec();
        p.extend_from_slice(frame);
        self.0.lock().unwrap().push((to, p));
        Ok(())
    }
    fn path_mtu(&self, _to: Option<IpAddr>) -> Option<u32> {
        Some(1500)
    }
}

/// The VNI and inner frame of a sent datagram.
fn decap(dgram: &[u8]) -> (u32, Vec<u8>) {
    let (vni, inner) = wire::parse(&dgram[8..]).unwrap();
    (vni, inner.to_vec())
}

fn map_spec(words: &[&str]) -> VxlanSpec {
    let mut spec = VxlanSpec::unnumbered();
    for w in words {
        assert!(spec.apply(w).unwrap(), "{w}");
    }
    spec.check().unwrap();
    spec
}

/// A switch with VLAN filtering: host 0 in VLAN 10, host 1 in VLAN 20 (access ports), host 2
/// a trunk of both; `vx0` maps 10:1010 and 20:1020, VNI 1010 floods to R10, VNI 1020 to R20.
struct Site {
    sw: Arc<Switch>,
    hosts: Vec<Arc<MemPort>>,
    vx: Arc<PortHandle>,
    vteps: Vec<(u16, Arc<Vtep>)>,
    wire: Wire,
}

fn filtering() -> Settings {
    Settings {
        vlan_filtering: true,
        ..Settings::default()
    }
}

impl Site {
    fn new() -> Site {
        Site::with(filtering(), "vni-map=10:1010;20:1020", None).unwrap()
    }

    fn with(
        settings: Settings,
        map: &str,
        offload_host: Option<()>,
    ) -> Result<Site, VxlanAttachError> {
        let sw = Switch::new("vnimap", settings, 4096);
        let mut hosts = Vec::new();
        for (i, vlans) in [
            PortVlans::access(10).unwrap(),
            PortVlans::access(20).unwrap(),
            PortVlans::trunk(
                &tapswitch::vlan::VlanSet::from_vids([10, 20]).unwrap(),
                None,
            )
            .unwrap(),
        ]
        .into_iter()
        .enumerate()
        {
            let p = if i == 0 && offload_host.is_some() {
                MemPort::new(1500).with_vnet_hdr()
            } else {
                MemPort::new(1500)
            };
            let p = Arc::new(p);
            let h = sw
                .add_port(&format!("h{i}"), Box::new(p.clone()), PortFlags::default())
                .unwrap();
            sw.update_port_vlans(&h, |v| *v = vlans);
            hosts.push(p);
        }
        let spec = map_spec(&[&format!("local={LOCAL}"), map]);
        let vteps: Vec<(u16, Arc<Vtep>)> = spec
            .vni_map
            .iter()
            .map(|e| (e.vlan, Arc::new(Vtep::new(spec.for_vni(e.vni), 1450))))
            .collect();
        for (vlan, v) in &vteps {
            let r = if *vlan == 10 { R10 } else { R20 };
            v.append(MacAddr::ZERO, ip(r)).unwrap();
        }
        let wire = Wire::default();
        let port = VxlanPort::mapped(vteps.clone(), wire.clone(), None);
        let vx = sw.add_vxlan_port_mapped(
            "vx0",
            vteps.clone(),
            Box::new(port),
            PortFlags::default(),
            false,
        )?;
        Ok(Site {
            sw,
            hosts,
            vx,
            vteps,
            wire,
        })
    }

    fn vtep(&self, vni: u32) -> &Arc<Vtep> {
        &self.vteps.iter().find(|(_, v)| v.vni() == vni).unwrap().1
    }

    fn send(&self, host: usize, frame: &[u8]) {
        self.hosts[host].inject(frame);
        self.sw.pump();
    }

    /// A packet of `vni` from the remote `from` reaches the hub.
    fn deliver(&self, from: &str, vni: u32, inner: &[u8]) {
        let mut p = vec![0u8; 8];
        wire::write_header(vni, &mut p);
        p.extend_from_slice(inner);
        self.sw.vxlan_deliver(ip(LOCAL), 4789, ip(from), &p);
        self.sw.pump();
    }

    fn taken(&self) -> Vec<Vec<Vec<u8>>> {
        self.hosts.iter().map(|h| h.take_sent()).collect()
    }
}

fn arp(src: MacAddr) -> Vec<u8> {
    build_frame(MacAddr::BROADCAST, src, 0x0806, &[0x11; 46])
}

fn unicast(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    build_frame(dst, src, 0x0800, &[0x22; 46])
}

/// `frame` with an 802.1Q tag of `vid` after the MACs.
fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut t = frame[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&frame[12..]);
    t
}

#[test]
fn a_vlans_frames_cross_untagged_in_its_vni_to_its_flood_list() {
    let s = Site::new();
    // the port is a tagged member of the map's VLANs, no PVID
    let v = s.sw.ports().vlans(s.vx.id).clone();
    assert_eq!(v.pvid(), None);
    assert!(v.is_member(10) && v.is_member(20) && !v.is_member(1));
    assert!(v.untagged().is_empty());
    // VLAN 10 (an access port): one packet, to VNI 1010's remote, in VNI 1010, untagged
    let f = arp(mac(1));
    s.send(0, &f);
    let sent = s.wire.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, ip(R10));
    assert_eq!(decap(&sent[0].1), (1010, f.clone()));
    // VLAN 20 from the trunk (tagged there): VNI 1020's remote, untagged
    let g = arp(mac(2));
    s.send(2, &tagged(&g, 20));
    let sent = s.wire.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, ip(R20));
    assert_eq!(decap(&sent[0].1), (1020, g));
    // a VLAN the map does not have never reaches the tunnel (the port is not its member)
    s.send(2, &tagged(&arp(mac(3)), 30));
    assert!(s.wire.take().is_empty());
    // the VNIs' counters are their own
    let r10 = s.vtep(1010).remotes().get(&ip(R10)).unwrap().clone();
    let r20 = s.vtep(1020).remotes().get(&ip(R20)).unwrap().clone();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        (r10.tx_frames.load(Relaxed), r20.tx_frames.load(Relaxed)),
        (1, 1)
    );
}

#[test]
fn a_vnis_packets_enter_the_bridge_in_its_vlan() {
    let s = Site::new();
    let f = arp(mac(11));
    s.deliver(R10, 1010, &f);
    let got = s.taken();
    assert_eq!(got[0], vec![f.clone()], "VLAN 10's access port, untagged");
    assert!(got[1].is_empty(), "nothing in VLAN 20");
    assert_eq!(got[2], vec![tagged(&f, 10)], "the trunk: tagged 10");
    // learned in VLAN 10 on the tunnel port, and in VNI 1010's table behind R10
    assert_eq!(s.sw.fdb.port_of(&FdbKey::new(mac(11), 10)), Some(s.vx.id));
    assert_eq!(s.sw.fdb.port_of(&FdbKey::new(mac(11), 20)), None);
    assert_eq!(s.vtep(1010).destination(&mac(11)).unwrap().ip, ip(R10));
    assert!(s.vtep(1020).destination(&mac(11)).is_none());
    // and VNI 1020 into VLAN 20
    let g = arp(mac(12));
    s.deliver(R20, 1020, &g);
    let got = s.taken();
    assert!(got[0].is_empty());
    assert_eq!(got[1], vec![g.clone()]);
    assert_eq!(got[2], vec![tagged(&g, 20)]);
    // the reply from VLAN 10 is known unicast: one packet, to R10 in VNI 1010
    s.send(0, &unicast(mac(11), mac(1)));
    let sent = s.wire.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ip(R10));
    assert_eq!(decap(&sent[0].1), (1010, unicast(mac(11), mac(1))));
}

#[test]
fn each_vni_has_its_own_table_and_flood_list() {
    let s = Site::new();
    // one MAC behind R10 in VNI 1010 and behind R20 in VNI 1020
    let x = mac(20);
    s.deliver(R10, 1010, &arp(x));
    s.deliver(R20, 1020, &arp(x));
    s.taken();
    assert_eq!(s.vtep(1010).destination(&x).unwrap().ip, ip(R10));
    assert_eq!(s.vtep(1020).destination(&x).unwrap().ip, ip(R20));
    s.send(0, &unicast(x, mac(1)));
    s.send(1, &unicast(x, mac(2)));
    let sent = s.wire.take();
    let got: Vec<(IpAddr, u32)> = sent.iter().map(|(to, p)| (*to, decap(p).0)).collect();
    assert_eq!(got, [(ip(R10), 1010), (ip(R20), 1020)]);
    // a remote of VNI 1010 is a stranger in VNI 1020: dropped there, counted, not learned
    s.deliver(R10, 1020, &arp(mac(21)));
    assert!(s.taken().iter().all(Vec::is_empty));
    assert_eq!(s.vtep(1020).stats.rx_dropped.get(VxlanDrop::Stranger), 1);
    assert!(s.vtep(1020).destination(&mac(21)).is_none());
    // a user entry goes to one VNI's table (`fdb add ... vni 1020`)
    let now = s.sw.now();
    s.vtep(1020)
        .insert_user(mac(22), ip(R10), EntryKind::Static, false, now)
        .unwrap();
    assert!(s.vtep(1010).destination(&mac(22)).is_none());
    // appending a flood-list remote to VNI 1020 leaves VNI 1010's list as it was
    s.vtep(1020)
        .append(MacAddr::ZERO, ip("198.18.40.9"))
        .unwrap();
    s.send(0, &arp(mac(1)));
    s.send(1, &arp(mac(2)));
    let mut to: Vec<(IpAddr, u32)> = s
        .wire
        .take()
        .iter()
        .map(|(t, p)| (*t, decap(p).0))
        .collect();
    to.sort();
    assert_eq!(
        to,
        [(ip(R10), 1010), (ip(R20), 1020), (ip("198.18.40.9"), 1020)]
    );
    // the switch's views: the port's VTEPs by VLAN, and one by VNI
    let by = s.sw.vteps_of(s.vx.id);
    let vnis: Vec<(Option<u16>, u32)> = by.iter().map(|(v, t)| (*v, t.vni())).collect();
    assert_eq!(vnis, [(Some(10), 1010), (Some(20), 1020)]);
    assert!(
        s.sw.vtep_of(s.vx.id, None).is_none(),
        "which VNI, on a map?"
    );
    assert_eq!(s.sw.vtep_of(s.vx.id, Some(1020)).unwrap().vni(), 1020);
    assert!(s.sw.vtep_of(s.vx.id, Some(30)).is_none());
}

#[test]
fn a_vni_not_in_the_map_is_dropped_and_counted() {
    let s = Site::new();
    s.deliver(R10, 3030, &arp(mac(30)));
    assert!(s.taken().iter().all(Vec::is_empty));
    let hub = &s.sw.vxlan_hubs()[0];
    assert_eq!(hub.dropped.get(VxlanDrop::UnknownVni), 1);
    assert_eq!(s.sw.fdb.port_of(&FdbKey::new(mac(30), 10)), None);
    // a mapped VNI still passes (positive control on the same hub)
    s.deliver(R10, 1010, &arp(mac(31)));
    assert_eq!(s.taken()[0].len(), 1);
    assert_eq!(hub.dropped.get(VxlanDrop::UnknownVni), 1);
}

#[test]
fn a_map_needs_vlan_filtering_and_its_vnis_are_taken() {
    let e = Site::with(Settings::default(), "vni-map=10:1010", None)
        .err()
        .unwrap();
    assert!(matches!(e, VxlanAttachError::NoVlanFiltering), "{e}");
    assert!(e.to_string().contains("VLAN filtering"), "{e}");
    // a second map on the same hub may not take VNI 1020 again
    let s = Site::new();
    let spec = map_spec(&[&format!("local={LOCAL}"), "vni-map=30:1030;40:1020"]);
    let vteps: Vec<(u16, Arc<Vtep>)> = spec
        .vni_map
        .iter()
        .map(|e| (e.vlan, Arc::new(Vtep::new(spec.for_vni(e.vni), 1450))))
        .collect();
    let port = VxlanPort::mapped(vteps.clone(), Wire::default(), None);
    let e =
        s.sw.add_vxlan_port_mapped("vx1", vteps, Box::new(port), PortFlags::default(), false)
            .unwrap_err();
    assert!(
        matches!(e, VxlanAttachError::VniTaken { vni: 1020, .. }),
        "{e}"
    );
    assert!(
        s.sw.ports().by_name("vx1").is_none(),
        "nothing half-attached"
    );
}

#[test]
fn an_offload_frame_keeps_its_checksum_offsets_without_its_tag() {
    let s = Site::with(filtering(), "vni-map=10:1010;20:1020", Some(())).unwrap();
    // a UDP/IPv4 frame with a partial checksum from the offload host (VLAN 10, untagged
    // there), as a guest sends it: checksum start 34 (after Ethernet and IP headers)
    let mut payload = vec![0u8; 20 + 8 + 32];
    payload[0] = 0x45;
    payload[2..4].copy_from_slice(&(60u16).to_be_bytes());
    payload[8] = 64;
    payload[9] = 17;
    payload[12..16].copy_from_slice(&[198, 18, 41, 1]);
    payload[16..20].copy_from_slice(&[198, 18, 41, 2]);
    payload[20..22].copy_from_slice(&5000u16.to_be_bytes());
    payload[22..24].copy_from_slice(&6000u16.to_be_bytes());
    payload[24..26].copy_from_slice(&40u16.to_be_bytes());
    payload[26..28].copy_from_slice(&[0x12, 0x34]);
    for (i, b) in payload[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let frame = build_frame(mac(40), mac(1), 0x0800, &payload);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let mut pkt = vec![0u8; VNET_HDR_LEN];
    hdr.write(&mut pkt);
    pkt.extend_from_slice(&frame);
    s.send(0, &pkt);
    let sent = s.wire.take();
    assert_eq!(sent.len(), 1, "flooded to VNI 1010's remote");
    let (vni, inner) = decap(&sent[0].1);
    assert_eq!(vni, 1010);
    assert_eq!(inner.len(), frame.len(), "untagged");
    assert_eq!(&inner[..12], &frame[..12]);
    assert_eq!(&inner[12..14], &[0x08, 0x00]);
    // the checksum was completed where it is, as for the frame sent by a port of one VNI
    let mut want = frame.clone();
    tapswitch::offload::complete_csum(&mut want, 34, 6).unwrap();
    assert_ne!(&want[40..42], &[0x12, 0x34], "the checksum field changed");
    assert_eq!(inner, want);
}

/// `POST /api/v1/ports` of a mapped port: refused without VLAN filtering, then attached; its
/// view shows the map; flood-list entries go to one VNI (`vni`, needed on a map); the metrics
/// have one series per VNI; VLAN filtering cannot go off under it. Loopback, rootless.
#[test]
fn the_api_attaches_a_mapped_port_and_keeps_entries_per_vni() {
    let sw = common::Switch::start(&["--no-default-ports"]);
    let port = 20000 + (std::process::id() % 20000) as u16 + common::unique() as u16 % 1000;
    let spec = format!(
        "{{\"spec\": \"vx0=vxlan:local=127.0.0.1,dstport={port},vni-map=10:1010;20:1020\"}}"
    );
    let (st, body) = sw.req("POST", "/api/v1/ports", Some(&spec));
    assert_eq!(st, 422, "{body}");
    assert!(body.contains("VLAN filtering"), "{body}");
    assert!(sw.get("/api/v1/ports").as_array().unwrap().is_empty());
    let (st, body) = sw.req(
        "PATCH",
        "/api/v1/config",
        Some(r#"{"vlan_filtering": true}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = sw.req("POST", "/api/v1/ports", Some(&spec));
    assert!(st == 200 || st == 201, "{st} {body}");
    let v = sw.port("vx0");
    let map: Vec<(u64, u64)> = v["vxlan"]["vni_map"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|e| (e["vlan"].as_u64().unwrap(), e["vni"].as_u64().unwrap()))
        .collect();
    assert_eq!(map, [(10, 1010), (20, 1020)], "{v}");
    assert!(v["vxlan"]["vni"].is_null(), "{v}");
    // flood-list entries: in one VNI's table, which must be named
    let add = |vni: Option<u32>| {
        let mut b =
            serde_json::json!({"mac": "00:00:00:00:00:00", "port": "vx0", "dst": "127.0.0.2"});
        if let Some(n) = vni {
            b["vni"] = n.into();
        }
        sw.req("POST", "/api/v1/fdb", Some(&b.to_string()))
    };
    let (st, body) = add(None);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("vni-map") && body.contains("1010"), "{body}");
    let (st, body) = add(Some(3030));
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("no VNI 3030"), "{body}");
    let (st, body) = add(Some(1010));
    assert_eq!(st, 201, "{body}");
    assert!(body.contains("\"vni\":1010"), "{body}");
    let fdb = sw.get("/api/v1/fdb");
    let vx: Vec<(String, u64)> = fdb
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["port"] == "vx0")
        .map(|e| {
            (
                e["dst"].as_str().unwrap().to_string(),
                e["vni"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(vx, [("127.0.0.2".to_string(), 1010)], "{fdb}");
    let remotes =
        |vni: &str| sw.metric("tapswitch_vxlan_remotes", &[("port", "vx0"), ("vni", vni)]);
    assert_eq!((remotes("1010"), remotes("1020")), (1.0, 0.0));
    // its VLANs are the map's: tagged members, no PVID, not changed by the VLAN API
    assert!(v["pvid"].is_null(), "{v}");
    let (st, body) = sw.req("PUT", "/api/v1/ports/vx0/vlans/30", None);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("vni-map"), "{body}");
    assert_eq!(sw.req("DELETE", "/api/v1/ports/vx0/vlans/10", None).0, 400);
    // VLAN filtering stays on while the map is there
    let (st, body) = sw.req(
        "PATCH",
        "/api/v1/config",
        Some(r#"{"vlan_filtering": false}"#),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("vni-map"), "{body}");
    assert_eq!(sw.get("/api/v1/config")["vlan_filtering"], true);
    // the entry goes with its VNI
    let del = "/api/v1/fdb/00:00:00:00:00:00?port=vx0&dst=127.0.0.2&vni=1020";
    assert_eq!(sw.req("DELETE", del, None).0, 404, "not in VNI 1020's list");
    let del = "/api/v1/fdb/00:00:00:00:00:00?port=vx0&dst=127.0.0.2&vni=1010";
    let (st, body) = sw.req("DELETE", del, None);
    assert_eq!(st, 204, "{body}");
    assert_eq!(remotes("1010"), 0.0);
}

/// A frame with no VNI (untagged, such as a frame the switch sends to every port, or of a VLAN
/// not in the map) is refused by the port, not sent anywhere; the frame path counts it as
/// `vlan_not_member`.
#[test]
fn a_frame_of_no_mapped_vlan_is_refused_by_the_port() {
    use tapswitch::port::Port;
    let spec = map_spec(&[&format!("local={LOCAL}"), "vni-map=10:1010"]);
    let vt = Arc::new(Vtep::new(spec.for_vni(1010), 1450));
    vt.append(MacAddr::ZERO, ip(R10)).unwrap();
    let wire = Wire::default();
    let port = VxlanPort::mapped(vec![(10, vt)], wire.clone(), None);
    let pkt = |f: &[u8]| {
        let mut p = vec![0u8; VNET_HDR_LEN];
        p.extend_from_slice(f);
        p
    };
    let f = arp(mac(50));
    for bad in [f.clone(), tagged(&f, 20)] {
        let e = port.send(&pkt(&bad)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(tapswitch::port::vxlan::NO_VNI));
    }
    assert!(wire.take().is_empty());
    port.send(&pkt(&tagged(&f, 10))).unwrap();
    let sent = wire.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(decap(&sent[0].1), (1010, f));
}
