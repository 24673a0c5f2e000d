//! VXLAN tunnel ports against real peers, all in namespaces this test creates, underlay
//! addresses from 198.18.0.0/15 (and 2001:2::/48, the IPv6 benchmarking prefix):
//!
//! - two tapswitch sites, two hosts each, joined by a veth underlay: every host pings every
//!   other, TCP data arrives intact, `tapswitch fdb` shows the far hosts with `dst`;
//! - a Linux VTEP (vxlan device in a Linux bridge, with a host on a veth at default offloads,
//!   so its TCP and UDP checksums cross the tunnel unfinished) as a third site, in
//!   flood-and-learn mode and with static flood entries (`nolearning`), over IPv4 and IPv6,
//!   TCP both ways to a host on an offload TAP and to one on a plain TAP (`offload=off`);
//! - an Open vSwitch VTEP (userspace datapath, `type=vxlan`) as a peer, its host's checksums
//!   left partial (TX checksum offload on; TSO off, which OVS's userspace datapath needs);
//! - a stranger sending VXLAN to the port: dropped and counted; a tunnel MTU below the hosts'
//!   MTU: oversize frames dropped and counted, TCP fine once the hosts' MTU is right.
//!
//! Each site's switch runs inside the site's namespace (its TAPs are made there, then moved
//! to the hosts' namespaces) and is driven through its control socket.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use common::{ifname, run, run_ok, unique, Host, Netns, TempDir, TAPSWITCH};
use serde_json::Value;

/// A `tapswitch run` inside a namespace, stopped with SIGTERM on drop.
struct NsSwitch {
    child: Option<Child>,
    ctl: String,
    log: Arc<Mutex<String>>,
}

impl NsSwitch {
    /// Starts `tapswitch run --listen none --control <unique> ARGS` in `ns` and waits (10 s at
    /// most) for its "ready".
    fn start(ns: &Netns, args: &[&str]) -> NsSwitch {
        let ctl = common::ctl_path();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, TAPSWITCH, "run"])
            .args(["--listen", "none", "--control", &ctl])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapswitch");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        let l2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let ready = line.contains(" ready ");
                let mut l = l2.lock().unwrap_or_else(|p| p.into_inner());
                l.push_str(&line);
                l.push('\n');
                drop(l);
                if ready {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
            }
        });
        let mut sw = NsSwitch {
            child: Some(child),
            ctl,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return sw;
            }
            if let Ok(Some(st)) = sw.child.as_mut().expect("child").try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                sw.child = None;
                panic!("tapswitch {args:?} exited ({st}):\n{}", sw.log());
            }
            assert!(
                Instant::now() < deadline,
                "tapswitch {args:?} not ready within 10 s:\n{}",
                sw.log()
            );
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn get(&self, path: &str) -> Value {
        tapswitch::client::get_json(&self.ctl, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}\nlog:\n{}", self.log()))
    }

    fn req(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        tapswitch::client::request(&self.ctl, method, path, body, None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (st, text) = self.req("GET", "/metrics", None);
        assert_eq!(st, 200);
        common::sample(&text, name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
    }

    fn tx_dropped(&self, port: &str, reason: &str) -> u64 {
        self.get(&format!("/api/v1/ports/{port}"))["counters"]["tx_dropped_by_reason"][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("port {port}: no tx drop reason {reason}"))
    }

    /// `tapswitch fdb` as a user would run it.
    fn fdb_show(&self) -> String {
        let out = common::tapswitch_cmd(&["fdb", "--control", &self.ctl]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NsSwitch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.ctl);
    }
}

/// A namespace with IPv6 on (the harness turns it off, so hosts stay quiet).
fn netns_v6() -> Netns {
    let ns = Netns::new();
    ns.ok(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
    ]);
    ns
}

/// A veth pair from `a` to `b` with these addresses (`nodad` for IPv6) and MTU.
fn veth(a: &Netns, b: &Netns, addr_a: &[&str], addr_b: &[&str], mtu: u32) -> (String, String) {
    let (na, nb) = (ifname('u'), ifname('v'));
    run_ok(
        "ip",
        &[
            "link",
            "add",
            &na,
            "netns",
            &a.name,
            "mtu",
            &mtu.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            &nb,
            "netns",
            &b.name,
            "mtu",
            &mtu.to_string(),
        ],
    );
    for (ns, n, addrs) in [(a, &na, addr_a), (b, &nb, addr_b)] {
        for ad in addrs {
            let mut args = vec!["addr", "add", ad, "dev", n.as_str()];
            if ad.contains(':') {
                args.push("nodad");
            }
            ns.ip(&args);
        }
        ns.ip(&["link", "set", n, "up"]);
    }
    (na, nb)
}

/// Moves the switch's TAP `tap` from `site` into a new host namespace and configures it.
fn host(site: &Netns, tap: &str, cidr: &str, mac: &str, mtu: u32) -> Host {
    let ns = Netns::new();
    site.ip(&["link", "set", "dev", tap, "netns", &ns.name]);
    ns.ip(&[
        "link",
        "set",
        "dev",
        tap,
        "address",
        mac,
        "mtu",
        &mtu.to_string(),
    ]);
    ns.ip(&["addr", "add", cidr, "dev", tap]);
    ns.ip(&["link", "set", "dev", tap, "up"]);
    Host {
        ifname: tap.to_string(),
        ip: cidr.split('/').next().unwrap().to_string(),
        mac: mac.to_string(),
        ns,
    }
}

/// Whether TX checksum offload is on for `dev` in `ns` (`ethtool -k DEV`'s
/// tx-checksumming, read with ETHTOOL_GTXCSUM).
fn tx_csum_on(ns: &Netns, dev: &str) -> bool {
    const GET: &str = r#"
import ctypes, fcntl, socket, struct, sys
v = ctypes.create_string_buffer(struct.pack("II", 0x16, 0))
ifr = struct.pack("16sP16x", sys.argv[1].encode(), ctypes.addressof(v))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), 0x8946, ifr)
print(struct.unpack("II", v.raw[:8])[1])
"#;
    ns.ok(&["python3", "-c", GET, dev]).trim() == "1"
}

/// A host behind a Linux bridge `br` in `site`: a veth pair, one end in the bridge.
fn linux_host(site: &Netns, br: &str, cidr: &str, mac: &str, mtu: u32) -> Host {
    let ns = Netns::new();
    let (a, b) = (ifname('l'), ifname('h'));
    let m = mtu.to_string();
    run_ok(
        "ip",
        &[
            "link", "add", &a, "netns", &site.name, "mtu", &m, "type", "veth", "peer", "name", &b,
            "netns", &ns.name, "mtu", &m,
        ],
    );
    site.ip(&["link", "set", &a, "master", br]);
    site.ip(&["link", "set", &a, "up"]);
    ns.ip(&["link", "set", "dev", &b, "address", mac]);
    ns.ip(&["addr", "add", cidr, "dev", &b]);
    ns.ip(&["link", "set", "dev", &b, "up"]);
    // default offloads: the host's TCP and UDP checksums leave it partial (CHECKSUM_PARTIAL),
    // and across veths, the bridge and the Linux VTEP nothing completes them
    assert!(
        tx_csum_on(&ns, &b),
        "veths start with TX checksum offload on"
    );
    Host {
        ifname: b,
        ip: cidr.split('/').next().unwrap().to_string(),
        mac: mac.to_string(),
        ns,
    }
}

/// A subnet number for this test's addresses (198.18.N.0/24 and so on).
fn subnet() -> u8 {
    (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8
}

fn mac(net: u8, n: u8) -> String {
    format!("02:76:78:{net:02x}:00:{n:02x}")
}

/// Sends `size` random bytes from `from` to `to` over TCP ([`common::tcp_transfer`]); panics
/// unless they arrive intact. Returns the time it took.
fn tcp_intact(from: &Host, to: &Host, size: usize) -> Duration {
    let t = Instant::now();
    let (sent, got) = common::tcp_transfer(from, to, size);
    let took = t.elapsed();
    assert_eq!(sent, got, "TCP {} -> {}: bytes differ", from.ip, to.ip);
    assert!(got.starts_with(&format!("{size} ")), "{got}");
    took
}

/// Pings until one is answered (10 s at most); returns how long that took.
fn first_ping(from: &Host, to: &str) -> Duration {
    let t = Instant::now();
    let ok = common::wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        from.ns
            .exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", to])
            .status
            .success()
    });
    assert!(ok, "{} cannot reach {to}", from.ip);
    t.elapsed()
}

#[test]
fn two_tapswitch_sites_form_one_segment() {
    if !common::root_or_skip() {
        return;
    }
    let n = subnet();
    let (sa, sb) = (Netns::new(), Netns::new());
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    // an underlay of 1550 bytes: the tunnel carries 1500-byte frames
    veth(
        &sa,
        &sb,
        &[&format!("{ua}/24")],
        &[&format!("{ub}/24")],
        1550,
    );
    let taps: Vec<String> = (0..4).map(|i| ifname(char::from(b'a' + i))).collect();
    // Site A from the command line, site B from a configuration file.
    let vx_a = format!("vx0=vxlan:100,local={ua},remote={ub}");
    let a = NsSwitch::start(
        &sa,
        &["--port", &taps[0], "--port", &taps[1], "--port", &vx_a],
    );
    let dir = TempDir::new("vxlan");
    let cfg = dir.path.join("b.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[port]]\nname = \"{}\"\n\n[[port]]\nname = \"{}\"\n\n[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 100\nlocal = \"{ub}\"\nremote = [\"{ua}\"]\n",
            taps[2], taps[3]
        ),
    )
    .unwrap();
    let b = NsSwitch::start(&sb, &["--config", cfg.to_str().unwrap()]);
    let hn = n + 1;
    let hosts: Vec<Host> = (0..4)
        .map(|i| {
            let site = if i < 2 { &sa } else { &sb };
            let cidr = format!("198.18.{hn}.{}/24", i + 1);
            host(site, &taps[i], &cidr, &mac(hn, i as u8 + 1), 1500)
        })
        .collect();
    assert_eq!(a.get("/api/v1/ports/vx0")["mtu"], 1500, "1550 - 50");
    let conv = first_ping(&hosts[0], &hosts[2].ip);
    eprintln!("first ping across the tunnel (ARP and learning included): {conv:?}");
    for (i, h) in hosts.iter().enumerate() {
        for (j, o) in hosts.iter().enumerate() {
            if i != j {
                h.ping_ok(&o.ip, 2);
            }
        }
    }
    let t1 = tcp_intact(&hosts[0], &hosts[3], 4 << 20);
    let t2 = tcp_intact(&hosts[2], &hosts[1], 4 << 20);
    eprintln!("4 MiB A->B in {t1:?}, B->A in {t2:?}");
    // The far hosts, learnt across the tunnel, show their VTEP.
    let fdb = a.fdb_show();
    for h in &hosts[2..] {
        assert!(
            fdb.contains(&format!("{} dev vx0 dst {ub} self", h.mac)),
            "A's table:\n{fdb}"
        );
        assert!(
            fdb.contains(&format!("{} dev vx0 master tapswitch", h.mac)),
            "{fdb}"
        );
    }
    assert!(fdb.contains(&format!(
        "00:00:00:00:00:00 dev vx0 dst {ub} self permanent"
    )));
    let fdb_b = b.fdb_show();
    for h in &hosts[..2] {
        assert!(
            fdb_b.contains(&format!("{} dev vx0 dst {ua} self", h.mac)),
            "{fdb_b}"
        );
    }
    let entries = a.get("/api/v1/fdb?port=vx0");
    assert!(entries
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["dst"] == ub.as_str() && e["mac"] == hosts[2].mac.as_str()));
    // Per-remote counters and the remotes gauge.
    let l = [("port", "vx0"), ("vni", "100"), ("remote", ub.as_str())];
    assert!(a.metric("tapswitch_vxlan_remote_tx_frames_total", &l) > 1000.0);
    assert!(a.metric("tapswitch_vxlan_remote_rx_frames_total", &l) > 1000.0);
    assert_eq!(
        a.metric(
            "tapswitch_vxlan_remotes",
            &[("port", "vx0"), ("vni", "100")]
        ),
        1.0
    );
    assert_eq!(
        a.metric(
            "tapswitch_vxlan_rx_dropped_total",
            &[("port", "vx0"), ("vni", "100"), ("reason", "stranger")]
        ),
        0.0
    );
    drop(hosts);
}

/// Tapswitch site A (two hosts) and a Linux VTEP site C (a vxlan device in a Linux bridge, one
/// host), over IPv4 or IPv6: flood-and-learn first, then `nolearning` with a static flood entry.
fn linux_vtep_peer(v6: bool) {
    let n = subnet();
    let (sa, sc) = if v6 {
        (netns_v6(), netns_v6())
    } else {
        (Netns::new(), Netns::new())
    };
    let (ua, uc, plen) = if v6 {
        (format!("2001:2:{n:x}::1"), format!("2001:2:{n:x}::3"), 64)
    } else {
        (format!("198.18.{n}.1"), format!("198.18.{n}.3"), 24)
    };
    veth(
        &sa,
        &sc,
        &[&format!("{ua}/{plen}")],
        &[&format!("{uc}/{plen}")],
        1600,
    );
    let taps = [ifname('a'), ifname('b'), ifname('p')];
    let vx = format!("vx0=vxlan:4242,local={ua},remote={uc}");
    // a3's TAP has no offloads: checksums a sender left partial must be completed for it
    let plain = format!("{},offload=off", taps[2]);
    let a = NsSwitch::start(
        &sa,
        &[
            "--port", &taps[0], "--port", &taps[1], "--port", &plain, "--port", &vx,
        ],
    );
    let hn = n + 1;
    let a1 = host(
        &sa,
        &taps[0],
        &format!("198.18.{hn}.1/24"),
        &mac(hn, 1),
        1500,
    );
    let a2 = host(
        &sa,
        &taps[1],
        &format!("198.18.{hn}.2/24"),
        &mac(hn, 2),
        1500,
    );
    let a3 = host(
        &sa,
        &taps[2],
        &format!("198.18.{hn}.4/24"),
        &mac(hn, 4),
        1500,
    );
    sc.ip(&["link", "add", "br0", "type", "bridge"]);
    sc.ip(&["link", "set", "br0", "up"]);
    let c1 = linux_host(&sc, "br0", &format!("198.18.{hn}.3/24"), &mac(hn, 3), 1500);
    let linux_vtep = |learning: bool| {
        let _ = sc.exec(&["ip", "link", "del", "vx0"]);
        let mut args = vec![
            "link", "add", "vx0", "mtu", "1500", "type", "vxlan", "id", "4242", "local", &uc,
            "dstport", "4789",
        ];
        if !learning {
            args.push("nolearning");
        }
        sc.ip(&args);
        sc.ip(&["link", "set", "vx0", "master", "br0"]);
        sc.ip(&["link", "set", "vx0", "up"]);
        run_ok(
            "bridge",
            &[
                "-n",
                &sc.name,
                "fdb",
                "append",
                "00:00:00:00:00:00",
                "dev",
                "vx0",
                "dst",
                &ua,
            ],
        );
    };
    let linux_fdb = || run_ok("bridge", &["-n", &sc.name, "fdb", "show", "dev", "vx0"]);
    // Flood and learn.
    linux_vtep(true);
    let conv = first_ping(&c1, &a1.ip);
    eprintln!("Linux VTEP (v6 underlay: {v6}), first ping: {conv:?}");
    c1.ping_ok(&a1.ip, 3);
    a1.ping_ok(&c1.ip, 3);
    a2.ping_ok(&c1.ip, 3);
    let lf = linux_fdb();
    for h in [&a1, &a2] {
        assert!(
            lf.contains(&format!("{} dst {ua} self", h.mac)),
            "Linux learnt tapswitch's hosts behind it:\n{lf}"
        );
    }
    let fdb = a.fdb_show();
    assert!(
        fdb.contains(&format!("{} dev vx0 dst {uc} self", c1.mac)),
        "{fdb}"
    );
    // TCP from the Linux host (checksums left partial, segments coalesced here) to a host on
    // an offload TAP and to one on a plain TAP, and back
    tcp_intact(&c1, &a1, 2 << 20);
    tcp_intact(&c1, &a3, 2 << 20);
    let gso = a.metric(
        "tapswitch_vxlan_gso_sends_total",
        &[("port", "vx0"), ("vni", "4242")],
    );
    tcp_intact(&a1, &c1, 2 << 20);
    // a1's TSO frames crossed as UDP GSO batches, which the Linux VTEP's socket segments
    assert!(
        a.metric(
            "tapswitch_vxlan_gso_sends_total",
            &[("port", "vx0"), ("vni", "4242")]
        ) > gso
    );
    tcp_intact(&a3, &c1, 2 << 20);
    tcp_intact(&c1, &a2, 2 << 20);
    // Static flood entries, no learning on the Linux side.
    linux_vtep(false);
    c1.ping_ok(&a1.ip, 3);
    a2.ping_ok(&c1.ip, 3);
    let lf = linux_fdb();
    // the bridge learns them on vx0 (`master br0`); the VTEP (`self`) does not
    assert!(
        !lf.lines()
            .any(|l| l.contains(" self") && (l.contains(&a1.mac) || l.contains(&a2.mac))),
        "nolearning:\n{lf}"
    );
    assert!(
        lf.contains(&format!("00:00:00:00:00:00 dst {ua} self permanent")),
        "{lf}"
    );
    tcp_intact(&c1, &a1, 2 << 20);
    tcp_intact(&c1, &a3, 2 << 20);
    let l = [("port", "vx0"), ("vni", "4242"), ("remote", uc.as_str())];
    assert!(a.metric("tapswitch_vxlan_remote_rx_frames_total", &l) > 100.0);
    drop((a1, a2, a3, c1));
}

#[test]
fn a_linux_vtep_is_a_peer_over_ipv4() {
    if !common::root_or_skip() {
        return;
    }
    linux_vtep_peer(false);
}

#[test]
fn a_linux_vtep_is_a_peer_over_ipv6() {
    if !common::root_or_skip() {
        return;
    }
    linux_vtep_peer(true);
}

/// ovsdb-server and ovs-vswitchd of one test, in a namespace, with a private database and run
/// directory; stopped on drop.
struct Ovs {
    dir: TempDir,
}

impl Ovs {
    fn start(ns: &Netns) -> Ovs {
        let dir = TempDir::new("ovs");
        let d = dir.path.display().to_string();
        let db = format!("{d}/conf.db");
        run_ok(
            "ovsdb-tool",
            &["create", &db, "/usr/share/openvswitch/vswitch.ovsschema"],
        );
        let ovs = Ovs { dir };
        let env = [("OVS_RUNDIR", &d), ("OVS_LOGDIR", &d), ("OVS_DBDIR", &d)];
        let spawn = |args: &[&str]| {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .args(args)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::null())
                .output()
                .expect("spawn ovs");
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        spawn(&[
            "ovsdb-server",
            &db,
            &format!("--remote=punix:{d}/db.sock"),
            &format!("--pidfile={d}/ovsdb.pid"),
            &format!("--unixctl={d}/ovsdb.ctl"),
            &format!("--log-file={d}/ovsdb.log"),
            "--detach",
        ]);
        ovs.vsctl(&["--no-wait", "init"]);
        spawn(&[
            "ovs-vswitchd",
            &format!("unix:{d}/db.sock"),
            &format!("--pidfile={d}/vswitchd.pid"),
            &format!("--unixctl={d}/vswitchd.ctl"),
            &format!("--log-file={d}/vswitchd.log"),
            "--disable-system",
            "--detach",
        ]);
        ovs
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}/db.sock", self.dir.path.display());
        let mut all = vec![db.as_str(), "--timeout=10"];
        all.extend_from_slice(args);
        run_ok("ovs-vsctl", &all)
    }

    fn appctl(&self, args: &[&str]) -> String {
        let t = format!("{}/vswitchd.ctl", self.dir.path.display());
        let mut all = vec!["-t", t.as_str()];
        all.extend_from_slice(args);
        run_ok("ovs-appctl", &all)
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for p in ["vswitchd.pid", "ovsdb.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path.join(p)) {
                let pid = pid.trim().to_string();
                let _ = run("kill", &["-TERM", &pid]);
                let gone =
                    common::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
                        !std::path::Path::new(&format!("/proc/{pid}")).exists()
                    });
                if !gone {
                    let _ = run("kill", &["-KILL", &pid]);
                }
            }
        }
    }
}

#[test]
fn an_open_vswitch_userspace_vtep_is_a_peer() {
    if !common::root_or_skip() || !common::tool_or_skip("/usr/sbin/ovs-vswitchd") {
        return;
    }
    let n = subnet();
    let (sa, sd) = (Netns::new(), Netns::new());
    let (ua, ud) = (format!("198.18.{n}.1"), format!("198.18.{n}.4"));
    // OVS's userspace datapath does VXLAN itself: the underlay port goes into a netdev bridge
    // br-phy that holds the tunnel address (OVS "userspace tunneling").
    let (_, vd) = veth(&sa, &sd, &[&format!("{ua}/24")], &[], 1600);
    let tap = ifname('a');
    // OVS's userspace datapath reads the veth underlay with a packet socket and drops what a
    // UDP GSO send carries across a veth whole (one 64 KiB packet: "Too big", as it would a
    // Linux VTEP's GSO packets): toward it, one datagram per segment (`no-gso`).
    let vx = format!("vx0=vxlan:77,local={ua},remote={ud},no-gso");
    let a = NsSwitch::start(&sa, &["--port", &tap, "--port", &vx]);
    let hn = n + 1;
    let a1 = host(&sa, &tap, &format!("198.18.{hn}.1/24"), &mac(hn, 1), 1500);
    let ovs = Ovs::start(&sd);
    let phy_mac = sd
        .ip(&["-j", "link", "show", "dev", &vd])
        .split("\"address\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    ovs.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
        &format!("other_config:hwaddr={phy_mac}"),
    ]);
    ovs.vsctl(&["add-port", "br-phy", &vd]);
    sd.ip(&["addr", "add", &format!("{ud}/24"), "dev", "br-phy"]);
    sd.ip(&["link", "set", "br-phy", "up", "mtu", "1600"]);
    ovs.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
    ]);
    ovs.vsctl(&[
        "add-port",
        "br-int",
        "vx",
        "--",
        "set",
        "interface",
        "vx",
        "type=vxlan",
        &format!("options:remote_ip={ua}"),
        "options:key=77",
    ]);
    let d1 = Netns::new();
    let (pd, ph) = (ifname('o'), ifname('h'));
    run_ok(
        "ip",
        &[
            "link", "add", &pd, "netns", &sd.name, "type", "veth", "peer", "name", &ph, "netns",
            &d1.name,
        ],
    );
    sd.ip(&["link", "set", &pd, "up"]);
    ovs.vsctl(&["add-port", "br-int", &pd]);
    sd.ip(&["link", "set", "br-int", "up"]);
    d1.ip(&["link", "set", "dev", &ph, "address", &mac(hn, 4)]);
    d1.ip(&["addr", "add", &format!("198.18.{hn}.4/24"), "dev", &ph]);
    d1.ip(&["link", "set", "dev", &ph, "up"]);
    // TX checksum offload stays on (the default): d1's TCP and UDP checksums reach OVS, and
    // the tunnel, partial. TSO and GSO go off because OVS's userspace datapath reads its
    // ports with frame-size buffers and drops a host's 64 KiB frames itself ("Dropped packet:
    // Too big. GRO/TSO enabled?"), toward any peer.
    assert!(
        tx_csum_on(&d1, &ph),
        "veths start with TX checksum offload on"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tso_off.py");
    d1.ok(&["python3", script, &ph]);
    let d1 = Host {
        ifname: ph,
        ip: format!("198.18.{hn}.4"),
        mac: mac(hn, 4),
        ns: d1,
    };
    let conv = first_ping(&d1, &a1.ip);
    eprintln!("OVS userspace VTEP, first ping: {conv:?}");
    d1.ping_ok(&a1.ip, 3);
    a1.ping_ok(&d1.ip, 3);
    tcp_intact(&a1, &d1, 2 << 20);
    tcp_intact(&d1, &a1, 2 << 20);
    let fdb = a.fdb_show();
    assert!(
        fdb.contains(&format!("{} dev vx0 dst {ud} self", d1.mac)),
        "{fdb}"
    );
    let ovs_fdb = ovs.appctl(&["fdb/show", "br-int"]);
    assert!(ovs_fdb.contains(&a1.mac), "OVS learnt a1:\n{ovs_fdb}");
    eprintln!("OVS tunnel ARP cache:\n{}", ovs.appctl(&["tnl/arp/show"]));
    drop((a1, d1));
}

/// A VXLAN packet in hex (UDP payload): header for `vni`, then an inner broadcast frame from
/// `src` with EtherType 0x88b5 (local experimental) and a marker payload.
fn vxlan_payload(vni: u32, src: &str) -> String {
    let mut h = [0u8; 8];
    tapswitch::vxlan::wire::write_header(vni, &mut h);
    let mut s: String = h.iter().map(|b| format!("{b:02x}")).collect();
    s.push_str(&common::frame_hex(
        "ff:ff:ff:ff:ff:ff",
        src,
        0x88b5,
        &[0x5a; 46],
    ));
    s
}

const UDP_SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 4789))
"#;

#[test]
fn strangers_are_dropped_and_the_tunnel_mtu_is_enforced() {
    if !common::root_or_skip() {
        return;
    }
    let n = subnet();
    // An underlay bridge with three members: sites A and B, and a stranger S.
    let (sa, sb, ss, su) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    su.ip(&["link", "add", "br0", "type", "bridge"]);
    su.ip(&["link", "set", "br0", "up"]);
    let mut ips = Vec::new();
    for (i, ns) in [&sa, &sb, &ss].into_iter().enumerate() {
        let ip = format!("198.18.{n}.{}", [1, 2, 9][i]);
        let (_, port) = veth(ns, &su, &[&format!("{ip}/24")], &[], 1500);
        su.ip(&["link", "set", &port, "master", "br0"]);
        ips.push(ip);
    }
    let (ua, ub, us) = (&ips[0], &ips[1], &ips[2]);
    let (ta, tb) = (ifname('a'), ifname('b'));
    // the vxlan ports are attached through the API, as `tapswitch port add` does
    let a = NsSwitch::start(&sa, &["--port", &ta]);
    let b = NsSwitch::start(&sb, &["--port", &tb]);
    for (sw, me, peer) in [(&a, ua, ub), (&b, ub, ua)] {
        let spec = format!("vx0=vxlan:100,local={me},remote={peer}");
        let (st, body) = sw.req(
            "POST",
            "/api/v1/ports",
            Some(&serde_json::json!({ "spec": spec }).to_string()),
        );
        assert_eq!(st, 201, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "vxlan");
        assert_eq!(v["mtu"], 1450, "a 1500-byte underlay leaves 1450");
        assert_eq!(v["vxlan"]["flood"][0]["dst"], peer.as_str());
    }
    let hn = n + 1;
    let a1 = host(&sa, &ta, &format!("198.18.{hn}.1/24"), &mac(hn, 1), 1500);
    let b1 = host(&sb, &tb, &format!("198.18.{hn}.2/24"), &mac(hn, 2), 1500);
    first_ping(&a1, &b1.ip);
    // The stranger sends VXLAN for A's VNI, then for a VNI nobody serves; then B sends the
    // marker a1 must see (the positive control).
    let stranger_mac = mac(hn, 0x99);
    let from_stranger = a1.sniff(4, &["--src", &stranger_mac]);
    let from_b = a1.sniff(4, &["--src", &b1.mac, "--ethertype", "0x88b5"]);
    ss.ok(&[
        "python3",
        "-c",
        UDP_SEND,
        ua,
        &vxlan_payload(100, &stranger_mac),
        "3",
    ]);
    ss.ok(&[
        "python3",
        "-c",
        UDP_SEND,
        ua,
        &vxlan_payload(999, &stranger_mac),
        "1",
    ]);
    b1.send(
        &common::frame_hex("ff:ff:ff:ff:ff:ff", &b1.mac, 0x88b5, b"marker"),
        2,
    );
    assert_eq!(from_b.count(), 2, "the marker from B crossed the tunnel");
    assert_eq!(
        from_stranger.count(),
        0,
        "nothing of the stranger's reached a1"
    );
    let l = [("port", "vx0"), ("vni", "100"), ("reason", "stranger")];
    assert_eq!(a.metric("tapswitch_vxlan_rx_dropped_total", &l), 3.0);
    let hub = format!("{ua}:4789");
    let l = [("hub", hub.as_str()), ("reason", "unknown_vni")];
    assert_eq!(a.metric("tapswitch_vxlan_hub_rx_dropped_total", &l), 1.0);
    assert!(
        !a.fdb_show().contains(&stranger_mac),
        "a stranger is never learned"
    );
    // The tunnel MTU: 1450 < the hosts' 1500. A full-size ping does not fit and is counted.
    let before = a.tx_dropped("vx0", "mtu");
    let out = a1.ns.exec(&[
        "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-s", "1472", "-M", "do", &b1.ip,
    ]);
    assert!(
        !out.status.success(),
        "a 1500-byte packet crossed a 1450 tunnel"
    );
    assert!(a.tx_dropped("vx0", "mtu") >= before + 3);
    // With the hosts' MTU at the tunnel's, TCP fits.
    for h in [&a1, &b1] {
        h.ns.ip(&["link", "set", "dev", &h.ifname, "mtu", "1450"]);
    }
    let mtu_drops = a.tx_dropped("vx0", "mtu");
    tcp_intact(&a1, &b1, 4 << 20);
    tcp_intact(&b1, &a1, 4 << 20);
    assert_eq!(
        a.tx_dropped("vx0", "mtu"),
        mtu_drops,
        "no oversize frame any more"
    );
    // Run-time flood list and table entries through the API, as `bridge fdb` does.
    let (st, body) = a.req(
        "POST",
        "/api/v1/fdb",
        Some(&format!(
            r#"{{"mac": "00:00:00:00:00:00", "port": "vx0", "dst": "{us}"}}"#
        )),
    );
    assert_eq!(st, 201, "{body}");
    let (st, _) = a.req(
        "POST",
        "/api/v1/fdb",
        Some(&format!(
            r#"{{"mac": "00:00:00:00:00:00", "port": "vx0", "dst": "{us}"}}"#
        )),
    );
    assert_eq!(st, 409, "appending a remote twice");
    // the stranger is now a flood-list remote: its packets are taken
    let from_s = a1.sniff(3, &["--src", &stranger_mac]);
    ss.ok(&[
        "python3",
        "-c",
        UDP_SEND,
        ua,
        &vxlan_payload(100, &stranger_mac),
        "2",
    ]);
    assert_eq!(from_s.count(), 2);
    assert!(a
        .fdb_show()
        .contains(&format!("{stranger_mac} dev vx0 dst {us} self")));
    let (st, body) = a.req(
        "DELETE",
        &format!("/api/v1/fdb/00:00:00:00:00:00?port=vx0&dst={us}"),
        None,
    );
    assert_eq!(st, 204, "{body}");
    drop((a1, b1));
}

/// Writes one TCP/IPv4 GSO frame (a virtio_net_hdr with NEEDS_CSUM and GSO_TCPV4, then the
/// frame, its TCP checksum left partial) on IFACE through a packet socket with
/// PACKET_VNET_HDR, as a host's TCP stack hands its TAP a TSO frame.
/// Arguments: IFACE DST_MAC SRC_MAC SRC_IP DST_IP PAYLOAD_LEN MSS.
const GSO_SEND: &str = r#"
import socket, struct, sys
iface, dmac, smac, sip, dip = sys.argv[1:6]
n, mss = int(sys.argv[6]), int(sys.argv[7])
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
def csum(b, s=0):
    if len(b) % 2:
        b += b"\0"
    for i in range(0, len(b), 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s
payload = bytes((i * 7 + 3) % 251 for i in range(n))
src, dst = socket.inet_aton(sip), socket.inet_aton(dip)
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + n, 77, 0x4000, 64, 6, 0, src, dst))
ip[10:12] = struct.pack("!H", 0xffff - csum(bytes(ip)))
# the pseudo-header sum, folded and not inverted: what a sender with checksum offload leaves
ps = csum(src + dst + struct.pack("!BBH", 0, 6, 20 + n))
tcp = struct.pack("!HHIIBBHHH", 40000, 9, 1000, 1, 5 << 4, 0x18, 65535, ps, 0)
hdr = struct.pack("<BBHHHH", 1, 1, 54, mss, 34, 16)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind((iface, 0))
s.send(hdr + mac(dmac) + mac(smac) + b"\x08\x00" + bytes(ip) + tcp + payload)
"#;

/// Collects the TCP/IPv4 segments received on IFACE from SRC_MAC for up to SECONDS or until
/// WANT payload bytes came: prints "ready", then "SEGMENTS BAD_CHECKSUMS PAYLOAD_HEX" (the
/// payloads in sequence order). Arguments: IFACE SRC_MAC SECONDS WANT.
const TCP_COLLECT: &str = r#"
import socket, struct, sys, time
iface, smac, secs, want = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
smac = bytes(int(x, 16) for x in smac.split(":"))
def csum(b, s=0):
    if len(b) % 2:
        b += b"\0"
    for i in range(0, len(b), 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
s.settimeout(0.2)
print("ready", flush=True)
segs, bad, got, total = 0, 0, {}, 0
end = time.time() + secs
while time.time() < end and total < want:
    try:
        f, addr = s.recvfrom(70000)
    except socket.timeout:
        continue
    if addr[2] == 4 or f[6:12] != smac or f[12:14] != b"\x08\x00" or f[23] != 6:
        continue
    ip = f[14:34]
    tot = struct.unpack("!H", ip[2:4])[0]
    seg = f[34:14 + tot]
    ps = csum(ip[12:20] + struct.pack("!BBH", 0, 6, len(seg)))
    if csum(ip) != 0xffff or csum(seg, ps) != 0xffff:
        bad += 1
    segs += 1
    seq = struct.unpack("!I", seg[4:8])[0]
    got[seq] = seg[20:]
    total += len(seg) - 20
print(segs, bad, b"".join(got[k] for k in sorted(got)).hex(), flush=True)
"#;

#[test]
fn a_gso_frame_crosses_as_one_udp_gso_send_and_arrives_segmented() {
    if !common::root_or_skip() {
        return;
    }
    let n = subnet();
    let (sa, sb) = (Netns::new(), Netns::new());
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    veth(
        &sa,
        &sb,
        &[&format!("{ua}/24")],
        &[&format!("{ub}/24")],
        1550,
    );
    let (ta, tb) = (ifname('a'), ifname('b'));
    let a = NsSwitch::start(
        &sa,
        &[
            "--port",
            &ta,
            "--port",
            &format!("vx0=vxlan:5,local={ua},remote={ub}"),
        ],
    );
    // b1's TAP has no offloads: it must get plain segments, checksums done
    let b = NsSwitch::start(
        &sb,
        &[
            "--port",
            &format!("{tb},offload=off"),
            "--port",
            &format!("vx0=vxlan:5,local={ub},remote={ua}"),
        ],
    );
    let hn = n + 1;
    let a1 = host(&sa, &ta, &format!("198.18.{hn}.1/24"), &mac(hn, 1), 1500);
    let b1 = host(&sb, &tb, &format!("198.18.{hn}.2/24"), &mac(hn, 2), 1500);
    first_ping(&a1, &b1.ip);
    let g = [("port", "vx0"), ("vni", "5")];
    let sends = a.metric("tapswitch_vxlan_gso_sends_total", &g);
    let dgrams = a.metric("tapswitch_vxlan_gso_datagrams_total", &g);
    // 20 segments of 1000 bytes: 20 datagrams of 8 + 1054 bytes, one UDP GSO send
    let (len, mss) = (20_000usize, 1000usize);
    let mut collect = common::ChildGuard(b1.ns.spawn(&[
        "python3",
        "-c",
        TCP_COLLECT,
        &b1.ifname,
        &a1.mac,
        "10",
        &len.to_string(),
    ]));
    let out = collect.0.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    assert_eq!(lines.next().unwrap().unwrap().trim(), "ready");
    a1.ns.ok(&[
        "python3",
        "-c",
        GSO_SEND,
        &a1.ifname,
        &b1.mac,
        &a1.mac,
        &a1.ip,
        &b1.ip,
        &len.to_string(),
        &mss.to_string(),
    ]);
    let line = lines.next().unwrap().unwrap();
    let mut f = line.split_whitespace();
    let (segs, bad) = (f.next().unwrap(), f.next().unwrap());
    let hex = f.next().unwrap_or("");
    assert_eq!((segs, bad), ("20", "0"), "segments, bad checksums");
    let want: String = (0..len)
        .map(|i| format!("{:02x}", (i * 7 + 3) % 251))
        .collect();
    assert!(hex == want, "the payload arrived changed");
    assert_eq!(
        a.metric("tapswitch_vxlan_gso_sends_total", &g) - sends,
        1.0,
        "one UDP GSO send"
    );
    assert_eq!(
        a.metric("tapswitch_vxlan_gso_datagrams_total", &g) - dgrams,
        20.0
    );
    // site B read the batch whole (UDP GRO) and handed b1 its 20 segments
    let c = &b.get(&format!("/api/v1/ports/{tb}"))["counters"];
    assert!(c["tx_frames"].as_u64().unwrap() >= 20, "{c}");
    drop((a1, b1));
}
