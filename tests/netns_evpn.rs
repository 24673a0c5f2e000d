//! EVPN through FRR (issue 28), all in namespaces this test creates, underlay from
//! 198.18.0.0/15:
//!
//! - site A: tapswitch with `--evpn` (a host on a TAP, a `vxlan` port with tunnel learning
//!   and unknown-unicast flooding off), FRR's zebra and bgpd in A's namespace;
//! - site B: a Linux bridge, a Linux vxlan device (dstport 4789, `nolearning`, `flood off`) and
//!   a host on a veth, FRR's zebra and bgpd in B's namespace;
//! - an iBGP EVPN session over a veth underlay (`advertise-all-vni`).
//!
//! Asserted: A's type-3 route at B and B's flood entry for A; B in tapswitch's flood list;
//! ping and intact TCP both ways; A's host as a type-2 route at B (next hop A) and
//! `extern_learn` in B's kernel; B's host `extern_learn` with `dst B` in tapswitch's table;
//! the shadow vxlan device sends nothing; then FRR restarted at A, and tapswitch restarted at
//! A: the tables come back to the same state and traffic resumes.
//!
//! Needs root and FRR (Debian's `frr`; tests/install-deps.sh installs it); skips without
//! them, fails with CI=true.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ifname, run_ok, unique, Host, Log, Netns, TempDir, TAPSWITCH};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
const VTYSH: &str = "/usr/bin/vtysh";

/// Whether FRR is installed: missing fails with `CI=true` and skips otherwise.
fn frr_or_skip() -> bool {
    let missing: Vec<&str> = [ZEBRA, BGPD, VTYSH]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{missing:?} missing (install Debian's 'frr' package: tests/install-deps.sh)");
    }
    eprintln!("SKIP: needs {missing:?} (Debian package 'frr')");
    false
}

/// `tapswitch run` inside a namespace, stopped with SIGTERM on drop.
struct NsSwitch {
    child: Option<Child>,
    ctl: String,
    log: Log,
}

impl NsSwitch {
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
        let log = Log::default();
        common::collect_stderr(child.stderr.take().expect("stderr"), log.clone());
        let mut sw = NsSwitch {
            child: Some(child),
            ctl,
            log,
        };
        let ready = common::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            sw.log.text().contains(" ready ")
                || matches!(sw.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
        });
        assert!(
            ready && sw.log.text().contains(" ready "),
            "tapswitch {args:?} not ready:\n{}",
            sw.log.text()
        );
        sw
    }

    /// `tapswitch fdb` as a user would run it.
    fn fdb_show(&self) -> String {
        let out = common::tapswitch_cmd(&["fdb", "--control", &self.ctl]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value of one sample of `/metrics`.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (st, text) = tapswitch::client::request(&self.ctl, "GET", "/metrics", None, None)
            .expect("GET /metrics");
        assert_eq!(st, 200, "{text}");
        common::sample(&text, name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
    }

    /// Stops it (SIGTERM) and waits for the exit; panics unless it exits cleanly in 10 s.
    fn stop(&mut self) {
        let mut c = self.child.take().expect("running");
        common::sigterm(c.id());
        let st = common::wait_timeout(&mut c, Duration::from_secs(10));
        assert!(
            st.is_some_and(|s| s.success()),
            "tapswitch exit {st:?}:\n{}",
            self.log.text()
        );
    }
}

impl Drop for NsSwitch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            common::sigterm(c.id());
            if common::wait_timeout(&mut c, Duration::from_secs(5)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_file(&self.ctl);
    }
}

/// zebra and bgpd in a namespace (`-N NS` pathspace), killed on drop.
struct Frr {
    ns: String,
    zebra: Option<Child>,
    bgpd: Option<Child>,
    dir: TempDir,
}

impl Frr {
    /// Starts zebra and bgpd in `ns` as router `me` with the iBGP EVPN neighbour `peer`.
    fn start(ns: &Netns, me: &str, peers: &[&str]) -> Frr {
        let dir = TempDir::new("frr");
        let zconf = dir.path.join("zebra.conf");
        let bconf = dir.path.join("bgpd.conf");
        std::fs::write(&zconf, format!("hostname {}\n", ns.name)).expect("zebra.conf");
        let mut conf =
            format!("router bgp 65000\n bgp router-id {me}\n no bgp default ipv4-unicast\n");
        for p in peers {
            conf += &format!(" neighbor {p} remote-as 65000\n neighbor {p} timers connect 1\n");
        }
        conf += " address-family l2vpn evpn\n";
        for p in peers {
            conf += &format!("  neighbor {p} activate\n");
        }
        conf += "  advertise-all-vni\n exit-address-family\n";
        std::fs::write(&bconf, conf).expect("bgpd.conf");
        // the daemons run as the user frr: it writes its pid files and logs there
        run_ok("chown", &["-R", "frr:frr", &dir.path.display().to_string()]);
        let d = dir.path.clone();
        let daemon = |bin: &str, conf: &std::path::Path, name: &str| {
            Command::new("ip")
                .args(["netns", "exec", &ns.name, bin, "-N", &ns.name, "-f"])
                .arg(conf)
                .arg("-i")
                .arg(d.join(format!("{name}.pid")))
                .arg("--log")
                .arg(format!("file:{}", d.join(format!("{name}.log")).display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"))
        };
        let mut f = Frr {
            ns: ns.name.clone(),
            zebra: Some(daemon(ZEBRA, &zconf, "zebra")),
            bgpd: None,
            dir,
        };
        // bgpd talks to zebra over its socket: wait for it
        let zserv = format!("/var/run/frr/{}/zserv.api", ns.name);
        assert!(
            common::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                std::path::Path::new(&zserv).exists()
            }),
            "zebra did not start:\n{}",
            f.logs()
        );
        f.bgpd = Some(daemon(BGPD, &bconf, "bgpd"));
        f
    }

    /// `vtysh -N NS -c CMD`'s output (empty while the daemons are not up).
    fn vtysh(&self, cmd: &str) -> String {
        let out = common::run(VTYSH, &["-N", &self.ns, "-c", cmd]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn logs(&self) -> String {
        ["zebra", "bgpd"]
            .map(|n| {
                let p = self.dir.path.join(format!("{n}.log"));
                format!(
                    "--- {n}\n{}",
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .join("\n")
    }

    /// Stops both daemons (SIGTERM, then SIGKILL after 5 s).
    fn stop(&mut self) {
        for c in [self.bgpd.take(), self.zebra.take()].into_iter().flatten() {
            let mut c = c;
            common::sigterm(c.id());
            if common::wait_timeout(&mut c, Duration::from_secs(5)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(format!("/var/run/frr/{}", self.ns));
    }
}

/// A veth pair from `a` to `b` with these addresses, MTU 1600 (hosts' 1500 plus VXLAN).
fn veth(a: &Netns, b: &Netns, addr_a: &str, addr_b: &str) {
    let (na, nb) = (ifname('u'), ifname('v'));
    run_ok(
        "ip",
        &[
            "link", "add", &na, "netns", &a.name, "mtu", "1600", "type", "veth", "peer", "name",
            &nb, "netns", &b.name, "mtu", "1600",
        ],
    );
    for (ns, n, ad) in [(a, &na, addr_a), (b, &nb, addr_b)] {
        ns.ip(&["addr", "add", ad, "dev", n]);
        ns.ip(&["link", "set", n, "up"]);
    }
}

/// A port of the underlay bridge `ul` in `under` for `site`, with address `addr` at the site
/// (MTU 1600).
fn underlay_port(under: &Netns, site: &Netns, addr: &str) {
    let (na, nb) = (ifname('u'), ifname('v'));
    run_ok(
        "ip",
        &[
            "link",
            "add",
            &na,
            "netns",
            &site.name,
            "mtu",
            "1600",
            "type",
            "veth",
            "peer",
            "name",
            &nb,
            "netns",
            &under.name,
            "mtu",
            "1600",
        ],
    );
    site.ip(&["addr", "add", addr, "dev", &na]);
    site.ip(&["link", "set", &na, "up"]);
    under.ip(&["link", "set", &nb, "master", "ul"]);
    under.ip(&["link", "set", &nb, "up"]);
}

/// Moves the switch's TAP `tap` from `site` into a new host namespace and configures it.
fn tap_host(site: &Netns, tap: &str, cidr: &str, mac: &str) -> Host {
    let ns = Netns::new();
    site.ip(&["link", "set", "dev", tap, "netns", &ns.name]);
    Host::attach_here(ns, tap, cidr, Some(mac))
}

/// A host behind the Linux bridge `br` of `site`: a veth pair, one end in the bridge.
fn bridge_host(site: &Netns, br: &str, cidr: &str, mac: &str) -> Host {
    let ns = Netns::new();
    let (a, b) = (ifname('l'), ifname('h'));
    run_ok(
        "ip",
        &[
            "link", "add", &a, "netns", &site.name, "type", "veth", "peer", "name", &b, "netns",
            &ns.name,
        ],
    );
    site.ip(&["link", "set", &a, "master", br]);
    site.ip(&["link", "set", &a, "up"]);
    Host::attach_here(ns, &b, cidr, Some(mac))
}

/// Polls `f` every 100 ms for at most `secs`; panics with `what` and `show()` if it never
/// holds. Returns how long it took.
fn wait_for(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> bool,
    show: impl Fn() -> String,
) -> Duration {
    let t = Instant::now();
    if !common::wait_until(
        Duration::from_secs(secs),
        Duration::from_millis(100),
        &mut f,
    ) {
        panic!("{what}: not within {secs} s\n{}", show());
    }
    t.elapsed()
}

/// Whether `from` gets an answer to one ping of `to`.
fn pings(from: &Host, to: &str) -> bool {
    from.ns
        .exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", to])
        .status
        .success()
}

fn tcp_intact(from: &Host, to: &Host, size: usize) {
    let (sent, got) = common::tcp_transfer(from, to, size);
    assert_eq!(sent, got, "TCP {} -> {}: bytes differ", from.ip, to.ip);
    assert!(got.starts_with(&format!("{size} ")), "{got}");
}

/// The TX packet counter of `dev` in `ns`.
fn tx_packets(ns: &Netns, dev: &str) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&ns.ip(&["-s", "-j", "link", "show", "dev", dev])).expect("json");
    j[0]["stats64"]["tx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tx packets for {dev}: {j}"))
}

/// Whether a route listing of `vtysh` has a type-2 route for `mac` with next hop `nh` (the
/// line after the prefix holds the next hop).
fn has_macip(routes: &str, mac: &str, nh: &str) -> bool {
    let lines: Vec<&str> = routes.lines().collect();
    lines.windows(2).any(|w| {
        w[0].contains(&format!("[2]:[0]:[48]:[{mac}]"))
            && w[1].split_whitespace().next() == Some(nh)
    })
}

#[test]
fn tapswitch_and_a_linux_vtep_form_an_evpn_fabric_through_frr() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = 2000 + u32::from(n);
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    let hn = n + 1;
    let (sa, sb) = (Netns::new(), Netns::new());
    veth(&sa, &sb, &format!("{ua}/24"), &format!("{ub}/24"));

    // Site A: tapswitch, the VTEP learning nothing and flooding no unknown unicast.
    let tap = ifname('a');
    let sw_args = [
        "--evpn".to_string(),
        "--port".to_string(),
        tap.clone(),
        "--port".to_string(),
        format!("vx0=vxlan:{vni},local={ua},no-learning,no-flood"),
    ];
    let sw_args: Vec<&str> = sw_args.iter().map(String::as_str).collect();
    let mut sw = NsSwitch::start(&sa, &sw_args);
    let shadow = [
        format!("tsb{vni}"),
        format!("tsx{vni}"),
        format!("tsl{vni}"),
    ];
    for d in &shadow {
        sa.ip(&["link", "show", "dev", d]);
    }
    // `tapswitch monitor` follows the table from here; an entry added and removed through the
    // API shows it is connected
    let mut mon = common::ChildGuard(
        Command::new(TAPSWITCH)
            .args(["monitor", "--control", &sw.ctl])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tapswitch monitor"),
    );
    let events = Log::default();
    common::collect_stderr(mon.0.stdout.take().expect("stdout"), events.clone());
    let probe = "02:65:76:ff:ff:01";
    let fdb_cmd = |words: &[&str]| {
        let mut args = vec!["fdb"];
        args.extend_from_slice(words);
        args.extend(["--control", sw.ctl.as_str()]);
        let out = common::tapswitch_cmd(&args);
        assert!(out.status.success(), "{out:?}");
    };
    // the monitor may connect after a first change: the entry is written again (`replace`
    // reports it again) until the monitor shows it, then removed once
    let probe_del = format!("Deleted {probe} dev {tap} static master tapswitch");
    let mut deleted = false;
    wait_for(
        10,
        "the monitor sees an entry come and go",
        || {
            let seen = events
                .text()
                .contains(&format!("{probe} dev {tap} static master"));
            if !seen {
                fdb_cmd(&["replace", probe, "dev", &tap, "static"]);
            } else if !deleted {
                fdb_cmd(&["del", probe, "dev", &tap]);
                deleted = true;
            }
            events.text().contains(&probe_del)
        },
        || events.text(),
    );
    let mac_a = format!("02:65:76:{hn:02x}:00:01");
    let mac_b = format!("02:65:76:{hn:02x}:00:02");
    let mut a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), &mac_a);

    // Site B: a Linux bridge and VTEP, no learning, no unknown-unicast flooding to the tunnel.
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
        "nolearning",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    run_ok(
        "bridge",
        &["-n", &sb.name, "link", "set", "dev", "vx0", "flood", "off"],
    );
    let b1 = bridge_host(&sb, "br0", &format!("198.18.{hn}.2/24"), &mac_b);

    let mut fa = Frr::start(&sa, &ua, &[&ub]);
    let fb = Frr::start(&sb, &ub, &[&ua]);
    let b_fdb = || run_ok("bridge", &["-n", &sb.name, "fdb", "show", "dev", "vx0"]);
    let diag = || format!("A's switch:\n{}\nB's vx0:\n{}", sw.fdb_show(), b_fdb());

    // Type-3 routes both ways: B's flood entry for A, tapswitch's flood list holds B.
    let t3 = wait_for(
        30,
        "A's type-3 route at B",
        || {
            fb.vtysh("show bgp l2vpn evpn route type multicast")
                .contains(&format!("[3]:[0]:[32]:[{ua}]"))
        },
        || format!("{}\n{}", fb.vtysh("show bgp l2vpn evpn summary"), fb.logs()),
    );
    wait_for(
        10,
        "B's flood entry for A",
        || b_fdb().contains(&format!("00:00:00:00:00:00 dst {ua} self permanent")),
        diag,
    );
    let flood_b = format!("00:00:00:00:00:00 dev vx0 dst {ub} self permanent");
    wait_for(
        10,
        "B in tapswitch's flood list",
        || sw.fdb_show().contains(&flood_b),
        diag,
    );
    eprintln!("EVPN session and type-3 routes after {t3:?}");

    // The hosts talk, with learning and unknown-unicast flooding off on both tunnels.
    let first = wait_for(20, "a1 reaches b1", || pings(&a1, &b1.ip), diag);
    eprintln!("first ping a1 -> b1 after {first:?}");
    a1.ping_ok(&b1.ip, 3);
    b1.ping_ok(&a1.ip, 3);
    tcp_intact(&a1, &b1, 1 << 20);
    tcp_intact(&b1, &a1, 1 << 20);

    // Type-2 routes: A's host at B (next hop A, extern_learn in B's kernel), B's host in
    // tapswitch's table (extern_learn, dst B), nothing learnt over the tunnel.
    wait_for(
        10,
        "A's host as a type-2 route at B",
        || {
            has_macip(
                &fb.vtysh("show bgp l2vpn evpn route type macip"),
                &mac_a,
                &ua,
            )
        },
        || fb.vtysh("show bgp l2vpn evpn route"),
    );
    let a_at_b = format!("{mac_a} dst {ua} self extern_learn");
    wait_for(
        10,
        "A's host extern_learn in B's kernel",
        || b_fdb().contains(&a_at_b),
        diag,
    );
    let b_at_a = [
        format!("{mac_b} dev vx0 dst {ub} self extern_learn"),
        format!("{mac_b} dev vx0 extern_learn master"),
    ];
    let sw_has_b = || {
        let t = sw.fdb_show();
        b_at_a.iter().all(|l| t.contains(l.as_str()))
    };
    wait_for(
        10,
        "B's host extern_learn in tapswitch's table",
        sw_has_b,
        diag,
    );
    assert!(
        has_macip(
            &fa.vtysh("show bgp l2vpn evpn route type macip"),
            &mac_b,
            &ub
        ),
        "{}",
        fa.vtysh("show bgp l2vpn evpn route")
    );
    let v = vni.to_string();
    let l = [("vni", v.as_str())];
    assert_eq!(sw.metric("tapswitch_evpn_remote_vteps", &l), 1.0);
    assert_eq!(sw.metric("tapswitch_evpn_remote_macs", &l), 1.0);
    assert!(sw.metric("tapswitch_evpn_routes_installed_total", &[]) >= 1.0);
    assert!(sw.metric("tapswitch_evpn_local_macs_advertised_total", &[]) >= 1.0);
    assert_eq!(sw.metric("tapswitch_evpn_sync_errors_total", &[]), 0.0);
    let shadow_tx = tx_packets(&sa, &shadow[1]);
    assert_eq!(
        shadow_tx, 0,
        "the shadow vxlan device sent {shadow_tx} packets"
    );

    // FRR restarts at A: zebra's entries go and come back, traffic resumes.
    // the monitor saw a1 learnt here and b1 installed from zebra's route
    for l in [
        format!("{mac_a} dev {tap} master tapswitch"),
        format!("{mac_b} dev vx0 extern_learn master tapswitch"),
    ] {
        assert!(
            events.text().contains(&l),
            "no '{l}' in:\n{}",
            events.text()
        );
    }
    fa.stop();
    wait_for(
        15,
        "tapswitch drops what zebra withdrew",
        || !sw.fdb_show().contains(&flood_b),
        diag,
    );
    let gone = format!("Deleted {mac_b} dev vx0 extern_learn master tapswitch");
    wait_for(
        5,
        "the monitor sees zebra's withdrawal",
        || events.text().contains(&gone),
        || events.text(),
    );
    let fa = Frr::start(&sa, &ua, &[&ub]);
    wait_for(
        30,
        "B back in tapswitch's flood list",
        || sw.fdb_show().contains(&flood_b) && sw_has_b(),
        || format!("{}\n{}", diag(), fa.logs()),
    );
    wait_for(
        15,
        "a1 reaches b1 after FRR's restart",
        || pings(&a1, &b1.ip),
        diag,
    );
    wait_for(
        10,
        "A's host back in B's kernel",
        || b_fdb().contains(&a_at_b),
        diag,
    );

    // tapswitch restarts at A: its shadow devices go (zebra withdraws A's routes), come back,
    // and the tables reconcile to the same state.
    sw.stop();
    drop(sw);
    for d in &shadow {
        assert!(
            !sa.exec(&["ip", "link", "show", "dev", d]).status.success(),
            "{d} left behind"
        );
    }
    wait_for(
        15,
        "B drops A's routes",
        || {
            let t = b_fdb();
            !t.contains(&a_at_b) && !t.contains(&format!("dst {ua} self permanent"))
        },
        b_fdb,
    );
    drop(a1);
    let sw = NsSwitch::start(&sa, &sw_args);
    a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), &mac_a);
    let diag = || format!("A's switch:\n{}\nB's vx0:\n{}", sw.fdb_show(), b_fdb());
    wait_for(
        30,
        "tapswitch's table reconciled",
        || {
            let t = sw.fdb_show();
            t.contains(&flood_b) && b_at_a.iter().all(|l| t.contains(l.as_str()))
        },
        diag,
    );
    wait_for(
        20,
        "a1 reaches b1 after tapswitch's restart",
        || pings(&a1, &b1.ip),
        diag,
    );
    b1.ping_ok(&a1.ip, 3);
    wait_for(
        10,
        "B's kernel reconciled",
        || {
            let t = b_fdb();
            t.contains(&a_at_b) && t.contains(&format!("00:00:00:00:00:00 dst {ua} self permanent"))
        },
        diag,
    );
    tcp_intact(&b1, &a1, 1 << 20);
    assert_eq!(
        tx_packets(&sa, &shadow[1]),
        0,
        "the shadow vxlan device sent"
    );

    // tapswitch is killed (SIGKILL) while it has a MAC that the next run will not have: its
    // shadow devices stay behind. Started again, it takes them over, removes that MAC there
    // (B withdraws it) and keeps the rest.
    let stale = "02:65:76:ff:ff:02";
    let out = common::tapswitch_cmd(&[
        "fdb",
        "add",
        stale,
        "dev",
        &tap,
        "static",
        "--control",
        &sw.ctl,
    ]);
    assert!(out.status.success(), "{out:?}");
    let stale_at_b = format!("{stale} dst {ua} self extern_learn");
    wait_for(
        10,
        "the static MAC advertised",
        || b_fdb().contains(&stale_at_b),
        diag,
    );
    let mut sw = sw;
    let mut c = sw.child.take().expect("running");
    c.kill().expect("SIGKILL");
    c.wait().expect("wait");
    for d in &shadow {
        sa.ip(&["link", "show", "dev", d]);
    }
    assert!(b_fdb().contains(&stale_at_b), "{}", b_fdb());
    drop(a1);
    let sw = NsSwitch::start(&sa, &sw_args);
    a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), &mac_a);
    assert!(
        sw.log.text().contains("shadow devices found"),
        "{}",
        sw.log.text()
    );
    let diag = || format!("A's switch:\n{}\nB's vx0:\n{}", sw.fdb_show(), b_fdb());
    wait_for(
        20,
        "a1 reaches b1 after tapswitch was killed and started again",
        || pings(&a1, &b1.ip),
        diag,
    );
    wait_for(
        15,
        "the MAC of the killed run withdrawn, a1 still advertised",
        || {
            let t = b_fdb();
            !t.contains(&stale_at_b) && t.contains(&a_at_b)
        },
        diag,
    );
    assert!(sw.fdb_show().contains(&flood_b), "{}", diag());
    assert_eq!(sw.metric("tapswitch_evpn_sync_errors_total", &[]), 0.0);
    drop((fa, fb, sw));
}

/// `tapswitch run --evpn` in `ns` with the TAPs `taps` and a `vxlan` port of `vni` at `local`
/// (tunnel learning and unknown-unicast flooding off).
fn evpn_switch(ns: &Netns, taps: &[&str], vni: u32, local: &str) -> NsSwitch {
    let mut args = vec!["--evpn".to_string()];
    for t in taps {
        args.extend(["--port".to_string(), t.to_string()]);
    }
    args.extend([
        "--port".to_string(),
        format!("vx0=vxlan:{vni},local={local},no-learning,no-flood"),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NsSwitch::start(ns, &args)
}

/// Three sites on one underlay bridge: tapswitch at A and C, a Linux VTEP at B, each with FRR
/// peering with the two others. Every host reaches every other; then a MAC known at B (its
/// host stays there, up and silent) shows up at A: A advertises it with a higher mobility
/// sequence number (RFC 7432 §15), B's own route is withdrawn and B's kernel points the MAC at
/// A, and C's tapswitch follows.
#[test]
fn three_sites_and_a_mac_that_moves_from_a_linux_vtep_to_tapswitch() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = 3000 + u32::from(n);
    let hn = n + 1;
    let [ua, ub, uc] = [1, 2, 3].map(|i| format!("198.18.{n}.{i}"));
    let under = Netns::new();
    under.ip(&["link", "add", "ul", "type", "bridge"]);
    under.ip(&["link", "set", "ul", "up"]);
    let (sa, sb, sc) = (Netns::new(), Netns::new(), Netns::new());
    for (s, u) in [(&sa, &ua), (&sb, &ub), (&sc, &uc)] {
        underlay_port(&under, s, &format!("{u}/24"));
    }
    let (ta, tm, tc) = (ifname('a'), ifname('m'), ifname('c'));
    let swa = evpn_switch(&sa, &[&ta, &tm], vni, &ua);
    let swc = evpn_switch(&sc, &[&tc], vni, &uc);
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
        "nolearning",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    let mac = |i: u8| format!("02:65:76:{hn:02x}:01:{i:02x}");
    let ip = |i: u8| format!("198.18.{hn}.{i}/24");
    let a1 = tap_host(&sa, &ta, &ip(1), &mac(1));
    let b1 = bridge_host(&sb, "br0", &ip(2), &mac(2));
    let c1 = tap_host(&sc, &tc, &ip(3), &mac(3));
    // the host that moves: at B first
    let moving = mac(9);
    let mb = bridge_host(&sb, "br0", &ip(9), &moving);
    let fa = Frr::start(&sa, &ua, &[&ub, &uc]);
    let fb = Frr::start(&sb, &ub, &[&ua, &uc]);
    let fc = Frr::start(&sc, &uc, &[&ua, &ub]);
    let b_fdb = || run_ok("bridge", &["-n", &sb.name, "fdb", "show", "dev", "vx0"]);
    let diag = || {
        format!(
            "A:\n{}\nB's vx0:\n{}\nC:\n{}",
            swa.fdb_show(),
            b_fdb(),
            swc.fdb_show()
        )
    };
    // every flood list holds the two others
    wait_for(
        30,
        "the flood lists",
        || {
            let (a, c, b) = (swa.fdb_show(), swc.fdb_show(), b_fdb());
            [&ub, &uc]
                .iter()
                .all(|u| a.contains(&format!("00:00:00:00:00:00 dev vx0 dst {u} self")))
                && [&ua, &ub]
                    .iter()
                    .all(|u| c.contains(&format!("00:00:00:00:00:00 dev vx0 dst {u} self")))
                && [&ua, &uc]
                    .iter()
                    .all(|u| b.contains(&format!("00:00:00:00:00:00 dst {u} self permanent")))
        },
        || format!("{}\n{}", diag(), fb.vtysh("show bgp l2vpn evpn summary")),
    );
    for (from, to) in [
        (&a1, &b1),
        (&a1, &c1),
        (&b1, &c1),
        (&c1, &a1),
        (&mb, &a1),
        (&mb, &c1),
    ] {
        wait_for(
            20,
            &format!("{} reaches {}", from.ip, to.ip),
            || pings(from, &to.ip),
            diag,
        );
    }
    tcp_intact(&c1, &a1, 1 << 20);
    // the moving MAC is B's: A and C point it at B
    let at = |u: &str| format!("{moving} dev vx0 dst {u} self extern_learn");
    wait_for(
        10,
        "the MAC behind B at A and C",
        || swa.fdb_show().contains(&at(&ub)) && swc.fdb_show().contains(&at(&ub)),
        diag,
    );
    let routes = || fb.vtysh("show bgp l2vpn evpn route type macip");
    assert!(has_macip(&routes(), &moving, &ub), "{}", routes());

    // A's table events from here on (a probe entry shows the monitor is connected)
    let mut amon = Command::new(TAPSWITCH);
    amon.args(["monitor", "fdb", "--control", &swa.ctl]);
    let (_am, a_events) = timed_lines(amon);
    let probe = "02:65:76:ff:ff:03";
    let connected = (0..20).any(|_| {
        let out = common::tapswitch_cmd(&[
            "fdb",
            "replace",
            probe,
            "dev",
            &ta,
            "static",
            "--control",
            &swa.ctl,
        ]);
        assert!(out.status.success(), "{out:?}");
        line_within(&a_events, &[probe], 1).is_some()
    });
    assert!(connected, "A's monitor never showed the probe entry");
    let out = common::tapswitch_cmd(&["fdb", "del", probe, "dev", &ta, "--control", &swa.ctl]);
    assert!(out.status.success(), "{out:?}");

    let mut kmon = Command::new("bridge");
    kmon.args(["-n", &sa.name, "monitor", "fdb"]);
    let (_km, kev) = timed_lines(kmon);
    // It shows up at A (B's host stays up, and says nothing more).
    let ma = tap_host(&sa, &tm, &ip(9), &moving);
    wait_for(20, "the moved host reaches c1", || pings(&ma, &c1.ip), diag);
    wait_for(
        20,
        "A advertises the MAC and B withdraws its own",
        || {
            let r = routes();
            has_macip(&r, &moving, &ua) && !has_macip(&r, &moving, &ub)
        },
        || format!("{}\n{}", routes(), fb.vtysh("show evpn mac vni all")),
    );
    // the route from A carries a mobility sequence number (MM:1 or higher)
    let detail = fb.vtysh(&format!("show bgp l2vpn evpn route vni {vni} mac {moving}"));
    eprintln!("B's route for the moved MAC:\n{detail}");
    assert!(
        detail.contains("MM:") && detail.contains(&ua),
        "no MAC mobility community:\n{detail}"
    );
    // tapswitch counted the move as A's route numbers it (its `seq` event at A)
    let mm: u64 = detail
        .split_whitespace()
        .find_map(|w| w.strip_prefix("MM:"))
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no MM:N in:\n{detail}"));
    line_within(
        &a_events,
        &[&format!("{moving} dev {tm} "), &format!(" seq {mm}")],
        5,
    )
    .unwrap_or_else(|| panic!("no event with the moved MAC's seq {mm} at A"));
    wait_for(
        10,
        "B's kernel and C's switch point the MAC at A",
        || {
            b_fdb().contains(&format!("{moving} dst {ua} self extern_learn"))
                && swc.fdb_show().contains(&at(&ua))
        },
        diag,
    );
    let a_tab = swa.fdb_show();
    assert!(
        a_tab.contains(&format!("{moving} dev {tm} master")) && !a_tab.contains(&at(&ub)),
        "A holds the MAC locally and no longer behind B:\n{a_tab}"
    );
    c1.ping_ok(&ma.ip, 3);
    b1.ping_ok(&ma.ip, 3);

    // The mobility sequence number in tapswitch's tables is FRR's: at A the local number
    // zebra advertises the MAC with, at C the remote number of A's route.
    let frr = |f: &Frr| frr_seq(f, vni, &moving);
    wait_for(
        10,
        "tapswitch's sequence numbers are FRR's",
        || {
            let (a, c) = (frr(&fa), frr(&fc));
            a.is_some_and(|(l, _)| sw_seq(&swa.fdb_show(), &moving, &tm) == Some(l))
                && c.is_some_and(|(_, r)| sw_seq(&swc.fdb_show(), &moving, "vx0") == Some(r))
        },
        || {
            let j = |f: &Frr| f.vtysh(&format!("show evpn mac vni {vni} mac {moving} json"));
            let k: Vec<String> = kev.try_iter().map(|(_, l)| l).collect();
            format!(
                "A's shadow FDB events:\n{}\nA's switch log:\n{}\nA's FRR: {}\nC's FRR: {}\n{}\n{}\n{}",
                k.join("\n"),
                swa.log.text(),
                j(&fa),
                j(&fc),
                diag(),
                fa.logs(),
                fc.logs()
            )
        },
    );
    let (loc, _) = frr(&fa).expect("A's sequence numbers");
    eprintln!("the moved MAC's sequence number: {loc} (A's zebra and tapswitch)");
    // the API's row says the same
    let (st, rows) =
        tapswitch::client::request(&swa.ctl, "GET", "/api/v1/fdb?limit=1000", None, None)
            .expect("GET /api/v1/fdb");
    assert_eq!(st, 200, "{rows}");
    let rows: serde_json::Value = serde_json::from_str(&rows).expect("json");
    let row = rows
        .as_array()
        .into_iter()
        .flatten()
        .chain(rows["entries"].as_array().into_iter().flatten())
        .find(|r| r["mac"] == moving.as_str() && r["dst"].is_null())
        .unwrap_or_else(|| panic!("no row for {moving}: {rows}"));
    assert_eq!(row["seq"], loc, "{row}");
    drop((fa, fb, fc, mb));
}

/// zebra's (local, remote) mobility sequence numbers of `mac` in `vni`
/// (`show evpn mac vni V mac M json`), once it knows the MAC.
fn frr_seq(f: &Frr, vni: u32, mac: &str) -> Option<(u64, u64)> {
    let out = f.vtysh(&format!("show evpn mac vni {vni} mac {mac} json"));
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    // the object holds the keys itself, or under the MAC
    let o = if v.get("localSequence").is_some() {
        &v
    } else {
        v.get(mac)?
    };
    Some((o["localSequence"].as_u64()?, o["remoteSequence"].as_u64()?))
}

/// The `seq N` of the bridge entry `MAC dev PORT ... master ...` in `tapswitch fdb`'s output.
fn sw_seq(table: &str, mac: &str, port: &str) -> Option<u64> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{mac} dev {port} ")) && l.contains(" master "))?;
    let mut w = line.split_whitespace().skip_while(|w| *w != "seq");
    w.next()?;
    w.next()?.parse().ok()
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Scale: 10,000 MACs behind a Linux VTEP (written on its bridge as `extern_learn`, so its
/// zebra advertises them) reach tapswitch's table through A's zebra; then they are removed and
/// every one is withdrawn. Prints the time and tapswitch's RSS.
#[test]
fn ten_thousand_remote_macs_reach_tapswitch_and_leave_again() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    const N: usize = 10_000;
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = 4000 + u32::from(n);
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    let (sa, sb) = (Netns::new(), Netns::new());
    veth(&sa, &sb, &format!("{ua}/24"), &format!("{ub}/24"));
    let sw = evpn_switch(&sa, &[], vni, &ua);
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
        "nolearning",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    let (lp, lq) = (ifname('p'), ifname('q'));
    sb.ip(&["link", "add", &lp, "type", "veth", "peer", "name", &lq]);
    sb.ip(&["link", "set", &lp, "master", "br0"]);
    for d in [&lp, &lq] {
        sb.ip(&["link", "set", d, "up"]);
    }
    let _fa = Frr::start(&sa, &ua, &[&ub]);
    let fb = Frr::start(&sb, &ub, &[&ua]);
    let v = vni.to_string();
    let l = [("vni", v.as_str())];
    wait_for(
        30,
        "B in tapswitch's flood list",
        || sw.metric("tapswitch_evpn_remote_vteps", &l) == 1.0,
        || fb.vtysh("show bgp l2vpn evpn summary"),
    );
    let rss0 = rss_kib(sw.child.as_ref().expect("running").id());
    let dir = TempDir::new("evpn-scale");
    let mac = |i: usize| {
        format!(
            "02:65:78:{:02x}:{:02x}:{:02x}",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        )
    };
    let batch = |verb: &str| {
        let path = dir.path.join(format!("{verb}.batch"));
        let text: String = (0..N)
            .map(|i| format!("fdb {verb} {} dev {lp} master extern_learn\n", mac(i)))
            .collect();
        std::fs::write(&path, text).expect("batch");
        run_ok(
            "bridge",
            &["-n", &sb.name, "-b", &path.display().to_string()],
        );
    };
    let t = Instant::now();
    batch("add");
    let count = || sw.metric("tapswitch_evpn_remote_macs", &l);
    let took = wait_for(
        180,
        "10,000 remote MACs in tapswitch",
        || count() == N as f64,
        || format!("{} of {N}\n{}", count(), fb.vtysh("show evpn vni")),
    );
    let rss1 = rss_kib(sw.child.as_ref().expect("running").id());
    eprintln!(
        "{N} remote MACs: in tapswitch's table {:?} after they were written at B \
         (of which {took:?} waiting); RSS {rss0} KiB -> {rss1} KiB",
        t.elapsed()
    );
    let table = sw.fdb_show();
    for i in [0, N / 2, N - 1] {
        assert!(
            table.contains(&format!("{} dev vx0 dst {ub} self extern_learn", mac(i))),
            "{} missing",
            mac(i)
        );
    }
    assert_eq!(sw.metric("tapswitch_evpn_sync_errors_total", &[]), 0.0);
    let t = Instant::now();
    batch("del");
    wait_for(
        180,
        "every remote MAC withdrawn",
        || count() == 0.0,
        || format!("{} left", count()),
    );
    eprintln!("{N} remote MACs withdrawn in {:?}", t.elapsed());
    assert!(!sw.fdb_show().contains(&mac(N / 2)));
    assert_eq!(sw.metric("tapswitch_evpn_sync_errors_total", &[]), 0.0);
}

/// Lines of a child's stdout with the time each arrived.
fn timed_lines(mut cmd: Command) -> (common::ChildGuard, mpsc::Receiver<(Instant, String)>) {
    let mut c = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let out = c.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    (common::ChildGuard(c), rx)
}

/// Waits (`secs` at most) for a line containing all of `words`; returns when it arrived.
fn line_within(
    rx: &mpsc::Receiver<(Instant, String)>,
    words: &[&str],
    secs: u64,
) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, l)) if words.iter().all(|w| l.contains(w)) => return Some(t),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// As [`line_within`], 10 s; panics without the line.
fn line_with(rx: &mpsc::Receiver<(Instant, String)>, words: &[&str]) -> Instant {
    line_within(rx, words, 10).unwrap_or_else(|| panic!("no line with {words:?} within 10 s"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Convergence, median of 10 each way: from a frame with a new source MAC sent by a host at
/// tapswitch's site until B's kernel holds the MAC (`bridge monitor fdb`), and from one sent
/// by a host at B until tapswitch's table holds it (`tapswitch monitor`).
#[test]
fn convergence_of_a_new_mac_both_ways() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = 5000 + u32::from(n);
    let hn = n + 1;
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    let (sa, sb) = (Netns::new(), Netns::new());
    veth(&sa, &sb, &format!("{ua}/24"), &format!("{ub}/24"));
    let tap = ifname('a');
    let sw = evpn_switch(&sa, &[&tap], vni, &ua);
    let a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), "02:65:79:00:00:01");
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
        "nolearning",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    let b1 = bridge_host(
        &sb,
        "br0",
        &format!("198.18.{hn}.2/24"),
        "02:65:79:00:00:02",
    );
    let _fa = Frr::start(&sa, &ua, &[&ub]);
    let fb = Frr::start(&sb, &ub, &[&ua]);
    wait_for(
        30,
        "the EVPN session",
        || pings(&a1, &b1.ip),
        || fb.vtysh("show bgp l2vpn evpn summary"),
    );
    let mut bmon = Command::new("bridge");
    bmon.args(["-n", &sb.name, "monitor", "fdb"]);
    let (_bm, at_b) = timed_lines(bmon);
    let mut amon = Command::new(TAPSWITCH);
    amon.args(["monitor", "fdb", "--control", &sw.ctl]);
    let (_am, at_a) = timed_lines(amon);
    // the monitors report changes only: one fresh MAC each way shows both are connected
    let frame = |src: &str| common::frame_hex("ff:ff:ff:ff:ff:ff", src, 0x88b5, &[0; 46]);
    // (a monitor may connect after the first change: fresh MACs until each has seen one)
    let warm = |host: &Host, rx: &mpsc::Receiver<(Instant, String)>, side: u8, words: &[&str]| {
        let ok = (0..10u8).any(|k| {
            let m = format!("02:65:79:{side:02x}:ff:{k:02x}");
            host.send(&frame(&m), 1);
            let mut w = vec![m.as_str()];
            w.extend_from_slice(words);
            line_within(rx, &w, 2).is_some()
        });
        assert!(ok, "the monitor never saw a new MAC");
    };
    warm(&a1, &at_b, 1, &["extern_learn"]);
    warm(&b1, &at_a, 2, &["dev vx0", "extern_learn"]);
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    for i in 1..=10u8 {
        let m = format!("02:65:79:01:00:{i:02x}");
        a1.send(&frame(&m), 1);
        let sent = Instant::now();
        to_b.push(line_with(&at_b, &[&m, &ua, "extern_learn"]).saturating_duration_since(sent));
        let m = format!("02:65:79:02:00:{i:02x}");
        b1.send(&frame(&m), 1);
        let sent = Instant::now();
        to_a.push(
            line_with(&at_a, &[&m, "dev vx0", "extern_learn"]).saturating_duration_since(sent),
        );
    }
    let (mb, ma) = (median(to_b.clone()), median(to_a.clone()));
    eprintln!(
        "new MAC, median of 10: tapswitch site -> B's kernel {mb:?} ({to_b:?}); \
         B -> tapswitch's table {ma:?} ({to_a:?})"
    );
    assert!(mb < Duration::from_secs(5) && ma < Duration::from_secs(5));
}

/// Convergence of a new VTEP, median of 10: B's VNI goes down (B withdraws its type-3
/// route; zebra at A removes B's flood entry, tapswitch's flood list loses B) and comes up
/// again. Measured from zebra at A installing the route's flood entry on the shadow vxlan
/// device (`bridge monitor fdb`) to the first frame tapswitch floods to B (a capture on B's
/// underlay), while a host at A sends a broadcast every 2 ms.
#[test]
fn convergence_of_a_new_vtep() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = 6000 + u32::from(n);
    let hn = n + 1;
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    let (sa, sb) = (Netns::new(), Netns::new());
    veth(&sa, &sb, &format!("{ua}/24"), &format!("{ub}/24"));
    let tap = ifname('a');
    let sw = evpn_switch(&sa, &[&tap], vni, &ua);
    let a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), "02:65:7a:00:00:01");
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
        "nolearning",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    let _fa = Frr::start(&sa, &ua, &[&ub]);
    let fb = Frr::start(&sb, &ub, &[&ua]);
    let flood_b = format!("00:00:00:00:00:00 dev vx0 dst {ub} self permanent");
    wait_for(
        30,
        "B in tapswitch's flood list",
        || sw.fdb_show().contains(&flood_b),
        || fb.vtysh("show bgp l2vpn evpn summary"),
    );
    // zebra's flood entries on A's shadow vxlan device, and what reaches B's underlay from A
    let mut zmon = Command::new("bridge");
    zmon.args(["-n", &sa.name, "monitor", "fdb"]);
    let (_zm, zebra) = timed_lines(zmon);
    let mut cap = Command::new("ip");
    cap.args([
        "netns",
        "exec",
        &sb.name,
        "tcpdump",
        "-l",
        "-n",
        "--immediate-mode",
        "-i",
        "any",
    ])
    .arg(format!("src host {ua} and udp dst port 4789"));
    let (_cap, wire) = timed_lines(cap);
    // broadcasts from a1, every 2 ms (bounded: 300 s)
    let bcast = format!("198.18.{hn}.255");
    let _pinger = common::ChildGuard(
        a1.ns
            .spawn(&["ping", "-b", "-n", "-q", "-i", "0.002", "-w", "300", &bcast]),
    );
    // positive control: they are flooded to B while B is in the flood list
    line_within(&wire, &[&format!("> {ub}.4789")], 10)
        .expect("no broadcast flooded to B before the measurement");
    let shadow = format!("tsx{vni}");
    let zero = "00:00:00:00:00:00";
    let mut took = Vec::new();
    for _ in 0..10 {
        sb.ip(&["link", "set", "vx0", "down"]);
        line_within(
            &zebra,
            &["Deleted", zero, &format!("dev {shadow}"), &ub],
            30,
        )
        .expect("zebra did not remove B's flood entry");
        wait_for(
            10,
            "B out of tapswitch's flood list",
            || !sw.fdb_show().contains(&flood_b),
            || sw.fdb_show(),
        );
        sb.ip(&["link", "set", "vx0", "up"]);
        let installed = loop {
            let (t, l) = zebra
                .recv_timeout(Duration::from_secs(30))
                .expect("zebra did not install B's flood entry again");
            if !l.starts_with("Deleted")
                && [zero, &format!("dev {shadow}"), &ub]
                    .iter()
                    .all(|w| l.contains(w))
            {
                break t;
            }
        };
        let flooded = loop {
            let (t, l) = wire
                .recv_timeout(Duration::from_secs(10))
                .expect("nothing flooded to B after its type-3 route came back");
            if t >= installed && l.contains(&format!("> {ub}.4789")) {
                break t;
            }
        };
        took.push(flooded.saturating_duration_since(installed));
    }
    let m = median(took.clone());
    eprintln!("new VTEP, median of 10: zebra's flood entry to the first frame flooded to it {m:?} ({took:?})");
    assert!(m < Duration::from_secs(5));
}

/// A namespace with IPv6 on.
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

/// The two-site fabric over an IPv6 underlay (2001:2::/48, RFC 5180). FRR 8.4's zebra reads
/// only an IPv4 VTEP address from a vxlan device (`IFLA_VXLAN_LOCAL`; IPv6 came with FRR
/// 10.6), so it advertises no usable type-3 or type-2 route for an IPv6 VTEP. What works is
/// asserted: tapswitch's shadow devices carry the IPv6 VTEP address, the BGP EVPN session
/// runs over IPv6, zebra's routes put nothing wrong into tapswitch's tables (no flood entry,
/// no remote MAC), and with a static flood list on both sides the hosts ping and move TCP
/// data intact over the IPv6 tunnel; the shadow device sends nothing.
#[test]
fn an_evpn_site_over_an_ipv6_underlay() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = 7000 + u32::from(n);
    let hn = n + 1;
    let (ua, ub) = (format!("2001:2:{n:x}::1"), format!("2001:2:{n:x}::2"));
    let (sa, sb) = (netns_v6(), netns_v6());
    let (na, nb) = (ifname('u'), ifname('v'));
    run_ok(
        "ip",
        &[
            "link", "add", &na, "netns", &sa.name, "mtu", "1600", "type", "veth", "peer", "name",
            &nb, "netns", &sb.name, "mtu", "1600",
        ],
    );
    for (ns, d, a) in [(&sa, &na, &ua), (&sb, &nb, &ub)] {
        ns.ip(&["addr", "add", &format!("{a}/64"), "dev", d, "nodad"]);
        ns.ip(&["link", "set", d, "up"]);
    }
    // Site A: tapswitch with B as a static remote (its flood list); B: a Linux VTEP with A
    let tap = ifname('a');
    let vx = format!("vx0=vxlan:{vni},local={ua},remote={ub}");
    let sw = NsSwitch::start(&sa, &["--evpn", "--port", &tap, "--port", &vx]);
    let a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), "02:65:7b:00:00:01");
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    run_ok(
        "bridge",
        &[
            "-n",
            &sb.name,
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vx0",
            "dst",
            &ua,
        ],
    );
    let b1 = bridge_host(
        &sb,
        "br0",
        &format!("198.18.{hn}.2/24"),
        "02:65:7b:00:00:02",
    );
    // the shadow vxlan device has A's IPv6 address, which zebra reads as the VNI's VTEP
    let shadow = format!("tsx{vni}");
    let j: serde_json::Value =
        serde_json::from_str(&sa.ip(&["-d", "-j", "link", "show", "dev", &shadow])).expect("json");
    assert_eq!(j[0]["linkinfo"]["info_data"]["local6"], ua, "{shadow}: {j}");
    // FRR on both sides, the iBGP EVPN session over IPv6 (router ids are IPv4 by nature)
    let fa = Frr::start(&sa, &format!("198.18.{n}.1"), &[&ub]);
    let fb = Frr::start(&sb, &format!("198.18.{n}.2"), &[&ua]);
    let established = |f: &Frr, peer: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&f.vtysh("show bgp l2vpn evpn summary json")).unwrap_or_default();
        v["peers"][peer]["state"] == "Established"
    };
    wait_for(
        30,
        "the EVPN session over IPv6",
        || established(&fa, &ub) && established(&fb, &ua),
        || fa.vtysh("show bgp l2vpn evpn summary"),
    );
    wait_for(
        10,
        "zebra at A serves the shadow VNI",
        || fa.vtysh(&format!("show evpn vni {vni}")).contains(&shadow),
        || fa.vtysh("show evpn vni"),
    );
    // B's type-3 route reaches A, but it names B's router id as the VTEP (zebra gave bgpd
    // no VTEP address): A's zebra installs no flood entry from it, tapswitch gets none
    let t3 = format!("[3]:[0]:[32]:[198.18.{n}.2]");
    wait_for(
        20,
        "B's type-3 route at A",
        || {
            fa.vtysh("show bgp l2vpn evpn route type multicast")
                .contains(&t3)
        },
        || fa.vtysh("show bgp l2vpn evpn route"),
    );
    // the static flood lists carry the hosts' traffic over IPv6
    let diag = || {
        format!(
            "A's switch:\n{}\nB's vx0:\n{}",
            sw.fdb_show(),
            run_ok("bridge", &["-n", &sb.name, "fdb", "show", "dev", "vx0"])
        )
    };
    wait_for(20, "a1 reaches b1", || pings(&a1, &b1.ip), diag);
    a1.ping_ok(&b1.ip, 3);
    b1.ping_ok(&a1.ip, 3);
    tcp_intact(&a1, &b1, 1 << 20);
    tcp_intact(&b1, &a1, 1 << 20);
    let flood_b = format!("00:00:00:00:00:00 dev vx0 dst {ub} self permanent");
    assert!(sw.fdb_show().contains(&flood_b), "{}", diag());
    let v = vni.to_string();
    let l = [("vni", v.as_str())];
    let zebra = || {
        format!(
            "{}\n{}\n{}",
            diag(),
            fa.vtysh(&format!("show evpn vni {vni}")),
            fa.vtysh("show bgp l2vpn evpn route")
        )
    };
    assert_eq!(
        sw.metric("tapswitch_evpn_remote_vteps", &l),
        0.0,
        "{}",
        zebra()
    );
    assert_eq!(
        sw.metric("tapswitch_evpn_remote_macs", &l),
        0.0,
        "{}",
        zebra()
    );
    assert_eq!(sw.metric("tapswitch_evpn_sync_errors_total", &[]), 0.0);
    assert_eq!(tx_packets(&sa, &shadow), 0, "the shadow vxlan device sent");
}

/// `--evpn` refuses what it cannot serve, with a clear error and before touching anything:
/// no `vxlan` port (no VNI), and `--user` (the service needs CAP_NET_ADMIN while it runs).
/// Rootless.
#[test]
fn evpn_refuses_a_switch_without_a_vni_and_dropped_privileges() {
    let ctl = common::ctl_path();
    let (st, log) = common::tapswitch_fails(&[
        "run",
        "--evpn",
        "--user",
        "nobody",
        "--listen",
        "none",
        "--control",
        &ctl,
        "--no-default-ports",
    ]);
    assert!(!st.success());
    assert!(
        log.contains("--evpn cannot be combined with --user"),
        "{log}"
    );
    let (st, log) = common::tapswitch_fails(&[
        "run",
        "--evpn",
        "--listen",
        "none",
        "--control",
        &ctl,
        "--no-default-ports",
    ]);
    assert!(!st.success());
    assert!(log.contains("no vxlan port"), "{log}");
    assert!(!std::path::Path::new(&ctl).exists(), "control socket left");
}

/// ARP suppression (Linux `neigh_suppress`): site A is tapswitch with `neigh-suppress` on its
/// `vxlan` port, site B a Linux bridge with `neigh_suppress on` on its vxlan device. B's host
/// has a MAC+IP binding on B's bridge (its SVI), which B's zebra advertises; tapswitch at A
/// snoops its own host's binding from ARP and writes it on the shadow bridge, which A's zebra
/// advertises (B's FRR lists it in its ARP cache, B's kernel has it on its bridge). Then both
/// hosts forget their neighbours and ping each other: A's host's ARP request is answered by
/// tapswitch (counted), B's by B's bridge, and a capture of the VXLAN traffic on A's underlay
/// shows the pings (the positive control) and no ARP at all.
#[test]
fn arp_suppression_answers_a_remote_hosts_address_locally_and_no_arp_crosses_the_tunnel() {
    neigh_suppression(false);
}

/// The same for IPv6 neighbour discovery: the hosts' solicitations are answered on each side
/// with advertisements, and no solicitation or advertisement crosses the tunnel (addresses from
/// the IPv6 benchmarking prefix 2001:2::/48, RFC 5180).
#[test]
fn nd_suppression_answers_a_remote_hosts_address_locally_and_no_nd_crosses_the_tunnel() {
    neigh_suppression(true);
}

/// The body of the two tests above, for ARP (`v6` false) or ND.
fn neigh_suppression(v6: bool) {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let vni = if v6 { 5000 } else { 4000 } + u32::from(n);
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    let hn = n + 1;
    let family = if v6 { "ipv6" } else { "ipv4" };
    let (sa, sb) = (Netns::new(), Netns::new());
    veth(&sa, &sb, &format!("{ua}/24"), &format!("{ub}/24"));
    let tap = ifname('a');
    let sw_args = [
        "--evpn".to_string(),
        "--port".to_string(),
        tap.clone(),
        "--port".to_string(),
        format!("vx0=vxlan:{vni},local={ua},no-learning,no-flood,neigh-suppress"),
    ];
    let sw_args: Vec<&str> = sw_args.iter().map(String::as_str).collect();
    let sw = NsSwitch::start(&sa, &sw_args);
    let (st, ports) = tapswitch::client::request(&sw.ctl, "GET", "/api/v1/ports", None, None)
        .expect("GET /api/v1/ports");
    assert_eq!(st, 200, "{ports}");
    let ports: serde_json::Value = serde_json::from_str(&ports).expect("json");
    let vx = ports
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "vx0"))
        .unwrap_or_else(|| panic!("no vx0 in {ports}"));
    assert_eq!(vx["flags"]["neigh_suppress"], true, "{vx}");
    let mac_a = format!("02:65:76:{hn:02x}:02:01");
    let mac_b = format!("02:65:76:{hn:02x}:02:02");
    let a1 = tap_host(&sa, &tap, &format!("198.18.{hn}.1/24"), &mac_a);
    if v6 {
        ipv6_on(&sb, &[]);
    }
    sb.ip(&["link", "add", "br0", "type", "bridge"]);
    sb.ip(&["link", "set", "br0", "up"]);
    sb.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "local",
        &ub,
        "dstport",
        "4789",
        "nolearning",
    ]);
    sb.ip(&["link", "set", "vx0", "master", "br0"]);
    sb.ip(&["link", "set", "vx0", "up"]);
    run_ok(
        "bridge",
        &[
            "-n",
            &sb.name,
            "link",
            "set",
            "dev",
            "vx0",
            "neigh_suppress",
            "on",
        ],
    );
    let b1 = bridge_host(&sb, "br0", &format!("198.18.{hn}.2/24"), &mac_b);
    // the addresses the test resolves: the IPv4 ones, or IPv6 ones added now (the namespaces
    // start with IPv6 off; B's bridge needs it for its neighbours)
    let (ip_a, ip_b) = if v6 {
        for (h, i) in [(&a1, 1), (&b1, 2)] {
            ipv6_on(&h.ns, &[h.ifname.as_str()]);
            h.ns.ip(&[
                "addr",
                "add",
                &format!("2001:2:{hn}::{i}/64"),
                "dev",
                &h.ifname,
                "nodad",
            ]);
        }
        (format!("2001:2:{hn}::1"), format!("2001:2:{hn}::2"))
    } else {
        (a1.ip.clone(), b1.ip.clone())
    };
    let fa = Frr::start(&sa, &ua, &[&ub]);
    let fb = Frr::start(&sb, &ub, &[&ua]);
    let b_neigh = || sb.ip(&["neigh", "show", "dev", "br0"]);
    let diag = || {
        format!(
            "A's switch:\n{}\nB's br0 neighbours:\n{}\nB's arp-cache:\n{}\nA's arp-cache:\n{}",
            sw.fdb_show(),
            b_neigh(),
            fb.vtysh("show evpn arp-cache vni all"),
            fa.vtysh("show evpn arp-cache vni all"),
        )
    };
    wait_for(
        30,
        "B in tapswitch's flood list",
        || {
            sw.fdb_show()
                .contains(&format!("00:00:00:00:00:00 dev vx0 dst {ub} self"))
        },
        || format!("{}\n{}", diag(), fb.vtysh("show bgp l2vpn evpn summary")),
    );
    // the fabric works, and both MACs are known on both sides
    wait_for(20, "a1 reaches b1", || pings(&a1, &ip_b), diag);
    b1.ping_ok(&ip_a, 1);
    // B's host's binding on B's bridge (as an SVI or an operator would have it): B advertises it
    sb.ip(&[
        "neigh",
        "replace",
        &ip_b,
        "lladdr",
        &mac_b,
        "dev",
        "br0",
        "nud",
        "permanent",
    ]);
    wait_for(
        20,
        "b1's MAC+IP route installed in tapswitch's neighbour table",
        || sw.metric("tapswitch_neigh_entries", &[("origin", "remote")]) >= 1.0,
        diag,
    );
    // A's host's binding, snooped from its ARP, advertised by A's zebra
    wait_for(
        20,
        "a1's MAC+IP advertised from A",
        || {
            fb.vtysh("show evpn arp-cache vni all").lines().any(|l| {
                l.split_whitespace().next() == Some(ip_a.as_str())
                    && l.contains("remote")
                    && l.contains(&mac_a)
                    && l.contains(&ua)
            }) && b_neigh().contains(&format!("{} lladdr {mac_a} extern_learn", ip_a))
        },
        diag,
    );
    assert!(sw.metric("tapswitch_evpn_local_neighs_advertised_total", &[]) >= 1.0);
    assert_eq!(
        sw.metric(
            "tapswitch_neigh_suppress_answered_total",
            &[("family", family)]
        ),
        0.0
    );

    // The capture of everything VXLAN on A's side of the underlay.
    let mut dump = sa.spawn(&["tcpdump", "-i", "any", "-nn", "-l", "udp", "port", "4789"]);
    let (lines, err) = (Log::default(), Log::default());
    common::collect_stderr(dump.stdout.take().expect("stdout"), lines.clone());
    common::collect_stderr(dump.stderr.take().expect("stderr"), err.clone());
    let dump = common::ChildGuard(dump);
    wait_for(
        10,
        "tcpdump listening",
        || err.text().contains("listening on"),
        || err.text(),
    );
    for h in [&a1, &b1] {
        h.ns.ip(&["neigh", "flush", "all"]);
    }
    a1.ping_ok(&ip_b, 1);
    // the positive control: the echo request and its reply crossed the tunnel, captured
    wait_for(
        10,
        "the pings in the capture",
        || {
            let t = lines.text();
            t.contains("echo request") && t.contains("echo reply")
        },
        || format!("{}\n{}", lines.text(), err.text()),
    );
    drop(dump);
    let captured = lines.text();
    eprintln!("the tunnel while the hosts resolved each other:\n{captured}");
    for what in ["ARP", "neighbor solicitation", "neighbor advertisement"] {
        assert!(
            !captured.contains(what),
            "{what} crossed the tunnel:\n{captured}\n{}",
            diag()
        );
    }
    assert!(
        sw.metric(
            "tapswitch_neigh_suppress_answered_total",
            &[("family", family)]
        ) >= 1.0,
        "tapswitch answered a1's request"
    );
    // a1 holds b1's MAC from tapswitch's answer
    let cache = a1.ns.ip(&["neigh", "show", &ip_b]);
    assert!(cache.contains(&mac_b), "{cache}");
    drop((fa, fb, sw));
}

/// Turns IPv6 on in `ns` (every test namespace starts with it off), for new devices and for
/// `devs`.
fn ipv6_on(ns: &Netns, devs: &[&str]) {
    let mut keys = vec![
        "net.ipv6.conf.all.disable_ipv6=0".to_string(),
        "net.ipv6.conf.default.disable_ipv6=0".to_string(),
    ];
    keys.extend(
        devs.iter()
            .map(|d| format!("net.ipv6.conf.{d}.disable_ipv6=0")),
    );
    let mut args = vec!["sysctl", "-qw"];
    args.extend(keys.iter().map(String::as_str));
    ns.ok(&args);
}

/// Issue 28's "several VNIs per switch": two VNIs mapped to two VLANs on one tapswitch
/// (`vni-map=10:1010;20:1020`, VLAN filtering on, a host in each VLAN), and at site B one Linux
/// bridge per VNI (FRR 8.4 knows one vxlan device per VNI) with a host each, all four hosts in
/// one IP subnet. FRR at both sites. Hosts in VLAN 10 reach only VNI 1010's remote host, hosts
/// in VLAN 20 only VNI 1020's: each VNI has its shadow set, its flood list and its table.
#[test]
fn two_vnis_mapped_to_two_vlans_reach_only_their_own_remote_hosts() {
    if !common::root_or_skip() || !frr_or_skip() {
        return;
    }
    let n = (std::process::id() as usize % 40 + unique() * 3 % 200 + 10) as u8;
    let (ua, ub) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    let hn = n + 1;
    let (sa, sb) = (Netns::new(), Netns::new());
    veth(&sa, &sb, &format!("{ua}/24"), &format!("{ub}/24"));
    let vnis = [(10u16, 1010u32), (20, 1020)];

    // Site A: one tapswitch, a TAP in each VLAN, one vxlan port mapping both.
    let (t10, t20) = (ifname('a'), ifname('a'));
    let args = [
        "--evpn".to_string(),
        "--vlan-filtering".to_string(),
        "--port".to_string(),
        format!("{t10},access=10"),
        "--port".to_string(),
        format!("{t20},access=20"),
        "--port".to_string(),
        format!("vx0=vxlan:local={ua},vni-map=10:1010;20:1020,no-learning,no-flood"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sw = NsSwitch::start(&sa, &args);
    // one shadow set per VNI of the map
    for (_, vni) in vnis {
        for d in [
            format!("tsb{vni}"),
            format!("tsx{vni}"),
            format!("tsl{vni}"),
        ] {
            sa.ip(&["link", "show", "dev", &d]);
        }
    }
    let mac = |vlan: u16, site: u8| format!("02:65:77:{hn:02x}:{vlan:02x}:{site:02x}");
    let ip = |vlan: u16, site: u8| format!("198.18.{hn}.{}/24", vlan + u16::from(site));
    let a10 = tap_host(&sa, &t10, &ip(10, 1), &mac(10, 1));
    let a20 = tap_host(&sa, &t20, &ip(20, 1), &mac(20, 1));

    // Site B: a Linux bridge and vxlan device per VNI, a host on each bridge.
    let mut bhosts = Vec::new();
    for (vlan, vni) in vnis {
        let (br, vx) = (format!("br{vni}"), format!("vx{vni}"));
        sb.ip(&["link", "add", &br, "type", "bridge"]);
        sb.ip(&["link", "set", &br, "up"]);
        let v = vni.to_string();
        sb.ip(&[
            "link",
            "add",
            &vx,
            "type",
            "vxlan",
            "id",
            &v,
            "local",
            &ub,
            "dstport",
            "4789",
            "nolearning",
        ]);
        sb.ip(&["link", "set", &vx, "master", &br]);
        sb.ip(&["link", "set", &vx, "up"]);
        bhosts.push(bridge_host(&sb, &br, &ip(vlan, 2), &mac(vlan, 2)));
    }
    let (b10, b20) = (&bhosts[0], &bhosts[1]);

    let _fa = Frr::start(&sa, &ua, &[&ub]);
    let fb = Frr::start(&sb, &ub, &[&ua]);
    let b_fdb = |vni: u32| {
        run_ok(
            "bridge",
            &["-n", &sb.name, "fdb", "show", "dev", &format!("vx{vni}")],
        )
    };
    let diag = || {
        format!(
            "A's switch:\n{}\nB's vx1010:\n{}\nB's vx1020:\n{}",
            sw.fdb_show(),
            b_fdb(1010),
            b_fdb(1020)
        )
    };

    // Each VNI's type-3 routes: B in both of tapswitch's flood lists, A in both of B's.
    for (_, vni) in vnis {
        let flood = format!("00:00:00:00:00:00 dev vx0 dst {ub} vni {vni} self permanent");
        wait_for(
            40,
            &format!("B in VNI {vni}'s flood list"),
            || sw.fdb_show().contains(&flood),
            || format!("{}\n{}", diag(), fb.vtysh("show bgp l2vpn evpn route")),
        );
        wait_for(
            10,
            &format!("B's flood entry for A in VNI {vni}"),
            || b_fdb(vni).contains(&format!("00:00:00:00:00:00 dst {ua} self permanent")),
            diag,
        );
    }

    // Positive controls: within a VNI, both ways.
    wait_for(20, "a10 reaches b10", || pings(&a10, &b10.ip), diag);
    wait_for(20, "a20 reaches b20", || pings(&a20, &b20.ip), diag);
    b10.ping_ok(&a10.ip, 2);
    b20.ping_ok(&a20.ip, 2);
    tcp_intact(&a10, b10, 256 << 10);

    // Each side's MACs went to its own VNI only: at B, a10 on vx1010 and a20 on vx1020; at A,
    // b10 in VNI 1010's table and b20 in VNI 1020's, in the bridge's VLANs 10 and 20.
    let (ma10, ma20, mb10, mb20) = (mac(10, 1), mac(20, 1), mac(10, 2), mac(20, 2));
    wait_for(
        10,
        "A's hosts extern_learn on their VNI's device at B",
        || {
            b_fdb(1010).contains(&format!("{ma10} dst {ua} self extern_learn"))
                && b_fdb(1020).contains(&format!("{ma20} dst {ua} self extern_learn"))
        },
        diag,
    );
    assert!(
        !b_fdb(1010).contains(&ma20) && !b_fdb(1020).contains(&ma10),
        "{}",
        diag()
    );
    let want = [
        format!("{mb10} dev vx0 dst {ub} vni 1010 self extern_learn"),
        format!("{mb20} dev vx0 dst {ub} vni 1020 self extern_learn"),
        format!("{mb10} dev vx0 vlan 10 extern_learn master"),
        format!("{mb20} dev vx0 vlan 20 extern_learn master"),
    ];
    wait_for(
        10,
        "B's hosts in their VNI's table and VLAN at A",
        || {
            let t = sw.fdb_show();
            want.iter().all(|l| t.contains(l.as_str()))
        },
        diag,
    );
    let t = sw.fdb_show();
    for l in [
        format!("{mb10} dev vx0 dst {ub} vni 1020"),
        format!("{mb20} dev vx0 dst {ub} vni 1010"),
        format!("{mb10} dev vx0 vlan 20"),
        format!("{mb20} dev vx0 vlan 10"),
    ] {
        assert!(!t.contains(&l), "'{l}' in:\n{t}");
    }
    for (_, vni) in vnis {
        let v = vni.to_string();
        let l = [("vni", v.as_str())];
        assert_eq!(sw.metric("tapswitch_evpn_remote_vteps", &l), 1.0);
        assert_eq!(sw.metric("tapswitch_evpn_remote_macs", &l), 1.0);
        let l = [("port", "vx0"), ("vni", v.as_str())];
        assert_eq!(sw.metric("tapswitch_vxlan_remotes", &l), 1.0);
    }

    // Absence across VNIs, after the controls above: same subnet, other VLAN/VNI.
    for (from, to) in [(&a10, b20), (&a20, b10), (b10, &a20), (b20, &a10)] {
        assert!(
            !pings(from, &to.ip),
            "{} reached {} across VNIs",
            from.ip,
            to.ip
        );
    }
    // and the VNIs still work after the failed attempts
    a10.ping_ok(&b10.ip, 1);
    a20.ping_ok(&b20.ip, 1);
    let shadow_tx: u64 = vnis
        .iter()
        .map(|(_, vni)| tx_packets(&sa, &format!("tsx{vni}")))
        .sum();
    assert_eq!(
        shadow_tx, 0,
        "the shadow vxlan devices sent {shadow_tx} packets"
    );
    drop((a10, a20, bhosts));
}
