//! Root: VLAN filtering with real kernel peers. Namespace hosts on access ports of two VLANs in
//! one subnet (same-VLAN hosts ping and move TCP data; across VLANs nothing passes, not even
//! ARP), and a trunk whose far side sends and receives tagged frames through AF_PACKET (this
//! kernel has no 802.1Q devices; the QEMU guest with 8021q is in tests/qemu.rs).

mod common;

use std::time::Duration;

use common::{frame_hex, ifname, unique, wait_until, Host, Netns, Switch};

const BCAST: &str = "ff:ff:ff:ff:ff:ff";
const ETH_EXP: u16 = 0x88b5;

/// A switch with VLAN filtering and one TAP port per spec suffix (`access=10`, `trunk=...`),
/// each moved into its own namespace host on 198.18.S.(i+1)/24.
struct Lab {
    sw: Switch,
    hosts: Vec<Host>,
}

impl Lab {
    fn new(specs: &[&str]) -> Lab {
        let nss: Vec<Netns> = specs.iter().map(|_| Netns::new()).collect();
        let names: Vec<String> = (0..specs.len())
            .map(|i| ifname(char::from(b'a' + i as u8)))
            .collect();
        let ports: Vec<String> = names
            .iter()
            .zip(specs)
            .map(|(n, s)| format!("{n},{s}"))
            .collect();
        let mut args: Vec<&str> = vec!["--vlan-filtering"];
        for p in &ports {
            args.push("--port");
            args.push(p);
        }
        let sw = Switch::start(&args);
        let subnet = (unique() % 250 + 1) as u8;
        let hosts = nss
            .into_iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (ns, n))| {
                let cidr = format!("198.18.{subnet}.{}/24", i + 1);
                let mac = format!("02:56:4c:{subnet:02x}:00:{:02x}", i + 1);
                Host::attach(ns, n, &cidr, Some(&mac))
            })
            .collect();
        Lab { sw, hosts }
    }
}

#[test]
fn access_vlans_in_one_subnet_are_separate() {
    if !common::root_or_skip() {
        return;
    }
    let lab = Lab::new(&["access=10", "access=10", "access=20", "access=20"]);
    let h = &lab.hosts;
    h[0].ping_ok(&h[1].ip, 2);
    h[2].ping_ok(&h[3].ip, 2);
    let (sent, got) = common::tcp_transfer(&h[0], &h[1], 2 << 20);
    assert_eq!(sent, got, "TCP data through VLAN 10");
    // Across VLANs: h0 cannot reach h3, and h3 never sees h0's ARP requests. Positive control
    // first: h2's broadcast (VLAN 20) reaches h3 while h0's (VLAN 10) do not.
    let from_h0 = h[3].sniff(4, &["--src", &h[0].mac]);
    let from_h2 = h[3].sniff(4, &["--src", &h[2].mac, "--ethertype", "0x88b5"]);
    let out = h[0].ping(&h[3].ip, 2);
    assert!(!out.status.success(), "h0 reached h3 across VLANs");
    h[2].send(&frame_hex(BCAST, &h[2].mac, ETH_EXP, b"vlan20"), 3);
    assert_eq!(from_h2.count(), 3, "positive control: VLAN 20 broadcast");
    assert_eq!(from_h0.count(), 0, "a VLAN 10 frame (ARP) reached VLAN 20");
    // the table is per VLAN, and the CLI shows it as `bridge` does
    let fdb = common::tapswitch_cmd(&["fdb", "--control", &lab.sw.ctl]);
    let text = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        text.contains(&format!("{} dev {} vlan 10", h[0].mac, h[0].ifname)),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} dev {} vlan 20", h[3].mac, h[3].ifname)),
        "{text}"
    );
    let show = common::tapswitch_cmd(&["vlan", "show", "--control", &lab.sw.ctl]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.starts_with("port              vlan-id"), "{text}");
    assert!(
        text.contains(&format!("{:<16}  10 PVID Egress Untagged", h[0].ifname)),
        "{text}"
    );
    // per-VLAN counters, only for configured VLANs
    let m = lab.sw.metrics();
    assert!(
        lab.sw
            .metric("tapswitch_vlan_rx_frames_total", &[("vlan", "10")])
            > 0.0
    );
    assert!(
        lab.sw
            .metric("tapswitch_vlan_rx_frames_total", &[("vlan", "20")])
            > 0.0
    );
    assert!(!m.contains("vlan=\"1\""), "no series for an unused VLAN");
}

#[test]
fn trunk_carries_tagged_frames_and_drops_other_vids() {
    if !common::root_or_skip() {
        return;
    }
    // h0: access 10, h1: access 20, h2: trunk 10;20 (its far side speaks tags via AF_PACKET)
    let lab = Lab::new(&["access=10", "access=20", "trunk=10;20"]);
    let h = &lab.hosts;
    let tagged = |vid: u16, src: &str, payload: &[u8]| {
        let mut p = vid.to_be_bytes().to_vec();
        p.extend_from_slice(&ETH_EXP.to_be_bytes());
        p.extend_from_slice(payload);
        frame_hex(BCAST, src, 0x8100, &p)
    };
    // trunk -> access: tag 10 reaches h0 untagged, not h1
    let at_h0 = h[0].sniff(
        4,
        &[
            "--src",
            &h[2].mac,
            "--ethertype",
            "0x88b5",
            "--vlan",
            "none",
        ],
    );
    let at_h1 = h[1].sniff(4, &["--src", &h[2].mac]);
    h[2].send(&tagged(10, &h[2].mac, b"to-vlan-10"), 4);
    assert_eq!(
        at_h0.count(),
        4,
        "tagged VLAN 10 frames reach the VLAN 10 access host untagged"
    );
    assert_eq!(at_h1.count(), 0, "and nothing reaches VLAN 20");
    // access -> trunk: h1's frames arrive on the trunk tagged 20
    let at_trunk = h[2].sniff(
        4,
        &["--src", &h[1].mac, "--ethertype", "0x88b5", "--vlan", "20"],
    );
    h[1].send(&frame_hex(BCAST, &h[1].mac, ETH_EXP, b"from-vlan-20"), 3);
    assert_eq!(
        at_trunk.count(),
        3,
        "VLAN 20 frames leave the trunk tagged 20"
    );
    // a VID not on the trunk is dropped and counted
    let before = lab.sw.dropped(&h[2].ifname, "rx", "vlan_filtered");
    let at_h0 = h[0].sniff(3, &["--src", &h[2].mac]);
    h[2].send(&tagged(30, &h[2].mac, b"vlan-30"), 5);
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            lab.sw.dropped(&h[2].ifname, "rx", "vlan_filtered") >= before + 5
        }),
        "{}",
        lab.sw.port(&h[2].ifname)
    );
    assert_eq!(at_h0.count(), 0);
    // untagged on the trunk (no native VLAN): no PVID, dropped
    let before = lab.sw.dropped(&h[2].ifname, "rx", "vlan_no_pvid");
    h[2].send(&frame_hex(BCAST, &h[2].mac, ETH_EXP, b"untagged"), 2);
    assert!(wait_until(
        Duration::from_secs(3),
        Duration::from_millis(50),
        || { lab.sw.dropped(&h[2].ifname, "rx", "vlan_no_pvid") >= before + 2 }
    ));
    // run-time change: VLAN 30 added to the trunk and the access port of h1 moved to it
    let out = common::tapswitch_cmd(&[
        "vlan",
        "add",
        "dev",
        &h[2].ifname,
        "vid",
        "30",
        "--control",
        &lab.sw.ctl,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, body) = lab.sw.req(
        "PUT",
        &format!("/api/v1/ports/{}/vlans/30", h[1].ifname),
        Some(r#"{"pvid": true, "untagged": true}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = lab.sw.req(
        "DELETE",
        &format!("/api/v1/ports/{}/vlans/20", h[1].ifname),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let port = lab.sw.port(&h[1].ifname);
    assert_eq!(port["pvid"], 30, "{port}");
    let at_h1 = h[1].sniff(4, &["--src", &h[2].mac, "--vlan", "none"]);
    h[2].send(&tagged(30, &h[2].mac, b"vlan-30-now"), 2);
    assert_eq!(at_h1.count(), 2, "VLAN 30 now reaches h1");
}

/// Through the real CLI on a running switch, as the kernel's bridge_locked_port.sh and
/// bridge_vlan_aware.sh drive `bridge`: `fdb add MAC dev P static` (no `vlan`) opens a locked
/// access port (br_fdb_add adds VLAN 0 and each VLAN of P); `vlan del dev P vid N` keeps that
/// static entry (br_fdb_delete_by_port with do_all 0), so P passes again as soon as N is back;
/// `fdb del MAC dev P` removes every one of them; an extern_learn entry taken over by traffic
/// leaves `fdb_n_learned` as it was (br_fdb_update).
#[test]
fn locked_port_fdb_add_and_vlan_del_through_the_cli() {
    if !common::root_or_skip() {
        return;
    }
    let lab = Lab::new(&["access=10,locked", "access=10"]);
    let (h0, h1) = (&lab.hosts[0], &lab.hosts[1]);
    let (a, b) = (h0.ifname.as_str(), h1.ifname.as_str());
    let cli = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend_from_slice(&["--control", &lab.sw.ctl]);
        let out = common::tapswitch_cmd(&v);
        assert!(
            out.status.success(),
            "tapswitch {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let locked_drops = || lab.sw.dropped(a, "rx", "locked");
    // closed: h0's frames arrive and are dropped as locked
    let before = locked_drops();
    assert!(!h0.ping(&h1.ip, 2).status.success(), "locked port passed");
    assert!(
        locked_drops() > before,
        "positive control: counted as locked"
    );
    cli(&["fdb", "add", &h0.mac, "dev", a, "static"]);
    let table = cli(&["fdb"]);
    assert!(
        table.contains(&format!("{} dev {a} vlan 10 master", h0.mac)),
        "{table}"
    );
    assert!(
        table.contains(&format!("{} dev {a} master", h0.mac)),
        "{table}"
    );
    // (h0's failed ARP attempts above would answer the next ping with errors at once)
    h0.ns.ip(&["neigh", "flush", "dev", a]);
    h0.ping_ok(&h1.ip, 2);
    // VLAN 10 leaves the port and comes back: the static entry stays, the port passes
    cli(&["vlan", "del", "dev", a, "vid", "10"]);
    let table = cli(&["fdb"]);
    assert!(
        table.contains(&format!("{} dev {a} vlan 10 master", h0.mac)),
        "static entry kept by vlan del:\n{table}"
    );
    cli(&["vlan", "add", "dev", a, "vid", "10", "pvid", "untagged"]);
    h0.ping_ok(&h1.ip, 2);
    // del without vlan: VLAN 0 and VLAN 10 entries go, the port is closed again
    cli(&["fdb", "del", &h0.mac, "dev", a]);
    let table = cli(&["fdb"]);
    assert!(!table.contains(&h0.mac), "{table}");
    let before = locked_drops();
    assert!(!h0.ping(&h1.ip, 1).status.success());
    assert!(locked_drops() > before);
    // extern_learn for h1's MAC on a; h1's next frame takes it over on b
    cli(&[
        "fdb",
        "replace",
        &h1.mac,
        "dev",
        a,
        "vlan",
        "10",
        "extern_learn",
    ]);
    let n_learned = || {
        lab.sw.get("/api/v1/config")["fdb_n_learned"]
            .as_u64()
            .unwrap()
    };
    let n0 = n_learned();
    h1.send(&frame_hex(BCAST, &h1.mac, ETH_EXP, b"take-over"), 1);
    let entry = || {
        lab.sw
            .fdb()
            .into_iter()
            .find(|e| e["mac"] == h1.mac.as_str() && e["vlan"] == 10)
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            entry()["port"] == b
        }),
        "{}",
        entry()
    );
    assert_eq!(entry()["kind"], "dynamic", "{}", entry());
    assert_eq!(n_learned(), n0, "fdb_n_learned unchanged by the take-over");
}
