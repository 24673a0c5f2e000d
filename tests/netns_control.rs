//! Run-time control against the Linux bridge: every port flag and table-entry kind, changed
//! while the switch carries traffic between namespace hosts, with the kernel bridge's behaviour
//! as the expectation (ANCHORS.md (b): L1-L10, F1-F6).
//!
//! Each test runs one scenario on a "dual rig": first on a kernel bridge (`ip link add BR type
//! bridge`, veth ends enslaved, changed with `bridge link set`, `bridge fdb`, `ip link set BR
//! type bridge`), then on tapswitch (`tapswitch run --no-default-ports --port packet:VETH...`,
//! changed with the `tapswitch port|fdb|config` CLI). Every host is the namespace end of a veth
//! pair (IPv6 off, fixed MACs, addresses from 198.18.0.0/15 only), the other end is the port.
//! A scenario returns what it observed (frames counted by `pkt.py sniff` on the hosts, pings,
//! the table normalised to port index and kind); the test then asserts that the kernel saw what
//! the scenario expects outright, and that tapswitch saw exactly what the kernel saw.
//!
//! Kernel facts of this machine that shape the rigs: iproute2 6.1 has no `fdb_max_learned`
//! option nor prints `fdb_n_learned`, so both are set and read with a raw rtnetlink message
//! (IFLA_BR_FDB_N_LEARNED = 48, IFLA_BR_FDB_MAX_LEARNED = 49, kernel >= 6.8); and the kernel is
//! built without CONFIG_BRIDGE_VLAN_FILTERING, so VLAN table entries cannot be made on it (their
//! `bridge fdb show` format is taken from iproute2's `print_fdb` instead).

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{BufRead, BufReader};
use std::process::{Child, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    frame_hex, free_addr, ifname, root_or_skip, run, run_ok, tapswitch_cmd, unique, wait_until,
    Host, Netns, Switch, PKT_PY,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Addresses and frames.

const BCAST: &str = "ff:ff:ff:ff:ff:ff";
/// A non-IP group address (not 01:80:c2:00:00:0X): unregistered multicast for both switches.
const MCAST: &str = "03:00:5c:00:00:77";
/// A unicast address nobody uses: always unknown.
const UNKNOWN: &str = "02:5c:00:00:ee:01";
/// The experimental EtherType: no host stack answers these frames.
const ETHERTYPE: u16 = 0x88b5;

/// The fixed MAC of host `i` (the same on both rigs).
fn hm(i: usize) -> String {
    format!("02:5c:00:00:00:{:02x}", i + 1)
}

/// An extra (non-host) MAC address.
fn xm(n: u8) -> String {
    format!("02:5c:00:00:a0:{n:02x}")
}

/// A minimum-size test frame.
fn fr(dst: &str, src: &str) -> String {
    frame_hex(dst, src, ETHERTYPE, &[0x5c; 46])
}

/// Sends several frames (hex) with counts from one AF_PACKET socket: `IFACE HEX*COUNT...`.
const SEND_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((sys.argv[1], 0))
for arg in sys.argv[2:]:
    h, c = arg.split("*")
    f = bytes.fromhex(h)
    f = f + bytes(max(0, 60 - len(f)))
    for _ in range(int(c)):
        s.send(f)
print("sent")
"#;

/// Reads (`get BR`: prints `N_LEARNED MAX_LEARNED`) or sets (`set BR N`) a bridge's
/// learned-entry counters over rtnetlink: iproute2 6.1 knows neither attribute.
const BR_LEARNED_PY: &str = r#"
import socket, struct, sys
def nla(t, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, t) + data + b"\0" * ((4 - n % 4) % 4)
def parse(b):
    out, i = {}, 0
    while i + 4 <= len(b):
        n, t = struct.unpack_from("=HH", b, i)
        if n < 4:
            break
        out[t & 0x3fff] = b[i + 4:i + n]
        i += (n + 3) & ~3
    return out
idx = socket.if_nametoindex(sys.argv[2])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
ifi = struct.pack("=BxHiII", 0, 0, idx, 0, 0)
if sys.argv[1] == "set":
    data = nla(49, struct.pack("=I", int(sys.argv[3])))
    body = ifi + nla(18, nla(1, b"bridge\0") + nla(2 | 0x8000, data))
    s.send(struct.pack("=IHHII", 16 + len(body), 16, 0x1 | 0x4, 1, 0) + body)
    r = s.recv(65536)
    err = struct.unpack_from("=i", r, 16)[0]
    if err:
        sys.exit("RTM_NEWLINK fdb_max_learned: errno %d" % -err)
    print("ok")
else:
    s.send(struct.pack("=IHHII", 16 + len(ifi), 18, 0x1, 1, 0) + ifi)
    r = s.recv(65536)
    d = parse(parse(parse(r[32:])[18])[2])
    if 48 not in d or 49 not in d:
        sys.exit("no IFLA_BR_FDB_N_LEARNED/MAX_LEARNED: kernel older than 6.8?")
    print(struct.unpack("=I", d[48])[0], struct.unpack("=I", d[49])[0])
"#;

fn out_text(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// Sniffers started together.

/// How long every sniffer counts.
const WINDOW: Duration = Duration::from_secs(3);

/// A `pkt.py sniff` on one host; stopped on drop. Unlike `Host::sniff` it does not wait for
/// "ready" when started, so several start at once.
struct Sniff {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sniff {
    fn spawn(h: &Host, filter: &[&str]) -> Sniff {
        let secs = format!("{}", WINDOW.as_secs_f64());
        let mut args = vec!["python3", PKT_PY, "sniff", h.ifname.as_str(), secs.as_str()];
        args.extend_from_slice(filter);
        let mut child = h.ns.spawn(&args);
        let out = child.stdout.take().expect("sniffer stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sniff { child, lines: rx }
    }

    fn wait_ready(&self) {
        match self.lines.recv_timeout(Duration::from_secs(15)) {
            Ok(l) if l.trim() == "ready" => {}
            other => panic!("sniffer not ready: {other:?}"),
        }
    }

    fn count(self) -> u64 {
        match self.lines.recv_timeout(WINDOW + Duration::from_secs(15)) {
            Ok(l) => l
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("sniffer printed {l:?}")),
            Err(e) => panic!("sniffer gave no count: {e}"),
        }
    }
}

impl Drop for Sniff {
    fn drop(&mut self) {
        // SIGTERM reaches `timeout`, which passes it on to python.
        let _ = run("kill", &["-TERM", &self.child.id().to_string()]);
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The dual rig.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Kernel,
    Tapswitch,
}

/// A root-namespace link, deleted on drop if still there.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if std::path::Path::new(&format!("/sys/class/net/{}", self.0)).exists() {
            let _ = run("ip", &["link", "del", &self.0]);
        }
    }
}

/// A table entry normalised for comparison: port index and kind (`dynamic` for learned and
/// user-dynamic entries alike: `bridge fdb show` prints both the same way).
type Entry = (usize, String);

/// One switch (kernel bridge or tapswitch) with one veth port per host. Fields drop in order:
/// the switch stops, the bridge goes, the root veth ends go, then the namespaces.
struct Rig {
    kind: Kind,
    sw: Option<Switch>,
    _br: Option<LinkGuard>,
    _links: Vec<LinkGuard>,
    hosts: Vec<Host>,
    /// Root-namespace veth end of each host = the port name on both switches.
    ports: Vec<String>,
    /// The bridge name (kernel) or `--name` (tapswitch).
    name: String,
    /// Attempts the last [`Rig::observe`] took (its frames were sent that many times).
    attempts: std::cell::Cell<u32>,
}

impl Rig {
    /// `n` hosts; the first `attached` are ports from the start, the others wait for
    /// [`Rig::attach`].
    fn new(kind: Kind, n: usize, attached: usize) -> Rig {
        let subnet = (unique() % 250 + 1) as u8;
        let mut hosts = Vec::new();
        let mut links = Vec::new();
        let mut ports = Vec::new();
        for i in 0..n {
            let ns = Netns::new();
            let v = ifname('v');
            run_ok(
                "ip",
                &[
                    "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
                ],
            );
            links.push(LinkGuard(v.clone()));
            // The port end must stay silent (no IPv6 DAD/RS), before it goes up.
            run_ok(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{v}.disable_ipv6=1")],
            );
            let mac = hm(i);
            let cidr = format!("198.18.{subnet}.{}/24", i + 1);
            ns.ip(&["link", "set", "dev", "eth0", "address", &mac]);
            ns.ip(&["addr", "add", &cidr, "dev", "eth0"]);
            ns.ip(&["link", "set", "dev", "eth0", "up"]);
            run_ok("ip", &["link", "set", "dev", &v, "up"]);
            hosts.push(Host {
                ifname: "eth0".into(),
                ip: format!("198.18.{subnet}.{}", i + 1),
                mac,
                ns,
            });
            ports.push(v);
        }
        let name = ifname('b');
        let mut rig = Rig {
            kind,
            sw: None,
            _br: None,
            _links: links,
            hosts,
            ports,
            name,
            attempts: std::cell::Cell::new(0),
        };
        match kind {
            Kind::Kernel => {
                run_ok("ip", &["link", "add", &rig.name, "type", "bridge"]);
                rig._br = Some(LinkGuard(rig.name.clone()));
                run_ok(
                    "sysctl",
                    &["-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", rig.name)],
                );
                run_ok("ip", &["link", "set", "dev", &rig.name, "up"]);
                for i in 0..attached {
                    rig.attach(i);
                }
            }
            Kind::Tapswitch => {
                let specs: Vec<String> = rig.ports[..attached]
                    .iter()
                    .map(|p| format!("packet:{p}"))
                    .collect();
                let mut args = vec!["--no-default-ports", "--name", &rig.name];
                for s in &specs {
                    args.push("--port");
                    args.push(s);
                }
                rig.sw = Some(Switch::start_on(&free_addr(), &args));
            }
        }
        rig
    }

    fn sw(&self) -> &Switch {
        self.sw.as_ref().expect("a tapswitch rig")
    }

    fn h(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// `tapswitch SUB --control PATH REST...`.
    fn cli(&self, sub: &str, rest: &[&str]) -> Output {
        let ctl = self.sw().ctl.clone();
        let mut args = vec![sub, "--control", &ctl];
        args.extend_from_slice(rest);
        tapswitch_cmd(&args)
    }

    fn cli_ok(&self, sub: &str, rest: &[&str]) -> String {
        let o = self.cli(sub, rest);
        assert!(
            o.status.success(),
            "tapswitch {sub} {rest:?}: {}\nswitch log:\n{}",
            out_text(&o),
            self.sw().log.text()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `bridge link set dev P FLAG on|off` / `tapswitch port set P FLAG on|off`.
    fn set_flag(&self, p: usize, flag: &str, on: bool) {
        let v = if on { "on" } else { "off" };
        match self.kind {
            Kind::Kernel => {
                run_ok("bridge", &["link", "set", "dev", &self.ports[p], flag, v]);
            }
            Kind::Tapswitch => {
                self.cli_ok("port", &["set", &self.ports[p], flag, v]);
            }
        }
    }

    /// `bridge fdb add|replace MAC dev P master KIND` / `tapswitch fdb add|replace ...`;
    /// `kind` is static, sticky or dynamic. Returns whether the command succeeded.
    fn fdb_add(&self, mac: &str, p: usize, kind: &str, replace: bool) -> bool {
        let verb = if replace { "replace" } else { "add" };
        let dev = &self.ports[p];
        match self.kind {
            Kind::Kernel => {
                let mut a = vec!["fdb", verb, mac, "dev", dev, "master"];
                match kind {
                    "sticky" => a.extend_from_slice(&["static", "sticky"]),
                    k => a.push(k),
                }
                run("bridge", &a).status.success()
            }
            Kind::Tapswitch => self
                .cli("fdb", &[verb, mac, "dev", dev, kind])
                .status
                .success(),
        }
    }

    /// `bridge fdb del MAC dev P [vlan N] master` / `tapswitch fdb del MAC [vlan N]`.
    fn fdb_del(&self, mac: &str, p: usize, vlan: Option<u16>) -> bool {
        let vs = vlan.map(|v| v.to_string());
        match self.kind {
            Kind::Kernel => {
                let mut a = vec!["fdb", "del", mac, "dev", &self.ports[p]];
                if let Some(v) = &vs {
                    a.extend_from_slice(&["vlan", v]);
                }
                a.push("master");
                run("bridge", &a).status.success()
            }
            Kind::Tapswitch => {
                let mut a = vec!["del", mac];
                if let Some(v) = &vs {
                    a.extend_from_slice(&["vlan", v]);
                }
                self.cli("fdb", &a).status.success()
            }
        }
    }

    /// Flushes one port's entries, or every entry.
    fn fdb_flush(&self, p: Option<usize>) {
        match (self.kind, p) {
            (Kind::Kernel, Some(p)) => {
                run_ok("bridge", &["fdb", "flush", "dev", &self.ports[p], "master"]);
            }
            (Kind::Kernel, None) => {
                run_ok("bridge", &["fdb", "flush", "dev", &self.name]);
            }
            (Kind::Tapswitch, Some(p)) => {
                self.cli_ok("fdb", &["flush", "dev", &self.ports[p]]);
            }
            (Kind::Tapswitch, None) => {
                self.cli_ok("fdb", &["flush"]);
            }
        }
    }

    fn port_index(&self, name: &str) -> usize {
        self.ports
            .iter()
            .position(|p| p == name)
            .unwrap_or(usize::MAX)
    }

    /// The table (VLAN 0, no local/permanent entries), normalised.
    fn table(&self) -> BTreeMap<String, Entry> {
        let mut t = BTreeMap::new();
        match self.kind {
            Kind::Kernel => {
                let js = run_ok("bridge", &["-j", "fdb", "show", "br", &self.name]);
                let v: Value = serde_json::from_str(&js).expect("bridge -j fdb show");
                for e in v.as_array().into_iter().flatten() {
                    if e["master"].as_str() != Some(self.name.as_str())
                        || e["state"].as_str() == Some("permanent")
                        || e["vlan"].as_u64().unwrap_or(0) != 0
                    {
                        continue;
                    }
                    let sticky = e["flags"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == "sticky"));
                    let kind = match (e["state"].as_str().unwrap_or(""), sticky) {
                        ("static", true) => "sticky",
                        ("static", false) => "static",
                        ("", _) => "dynamic",
                        (other, _) => other,
                    };
                    t.insert(
                        e["mac"].as_str().unwrap_or("?").to_string(),
                        (
                            self.port_index(e["ifname"].as_str().unwrap_or("?")),
                            kind.to_string(),
                        ),
                    );
                }
            }
            Kind::Tapswitch => {
                for e in self.sw().fdb() {
                    if e["vlan"].as_u64() != Some(0) {
                        continue;
                    }
                    let kind = match e["kind"].as_str().unwrap_or("?") {
                        "learned" | "dynamic" => "dynamic",
                        k => k,
                    };
                    t.insert(
                        e["mac"].as_str().unwrap_or("?").to_string(),
                        (
                            self.port_index(e["port"].as_str().unwrap_or("?")),
                            kind.to_string(),
                        ),
                    );
                }
            }
        }
        t
    }

    fn entry(&self, mac: &str) -> Option<Entry> {
        self.table().remove(mac)
    }

    /// Waits (3 s at most) for `mac` to be in the table on port `p`.
    fn wait_entry(&self, mac: &str, p: usize) {
        let ok = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            self.entry(mac).map(|e| e.0) == Some(p)
        });
        assert!(
            ok,
            "{:?}: {mac} never showed up on port {p}: {:?}",
            self.kind,
            self.table()
        );
    }

    /// Host `i` sends one broadcast from its own MAC; waits until the switch learned it.
    fn learn(&self, i: usize) {
        self.send(i, &[(fr(BCAST, &hm(i)), 1)]);
        self.wait_entry(&hm(i), i);
    }

    fn set_ageing(&self, secs: u64) {
        match self.kind {
            Kind::Kernel => {
                let cs = (secs * 100).to_string();
                run_ok(
                    "ip",
                    &[
                        "link",
                        "set",
                        "dev",
                        &self.name,
                        "type",
                        "bridge",
                        "ageing_time",
                        &cs,
                    ],
                );
            }
            Kind::Tapswitch => {
                self.cli_ok("config", &["ageing_secs", &secs.to_string()]);
            }
        }
    }

    fn set_max_learned(&self, n: u32) {
        match self.kind {
            Kind::Kernel => {
                run_ok(
                    "timeout",
                    &[
                        "10",
                        "python3",
                        "-c",
                        BR_LEARNED_PY,
                        "set",
                        &self.name,
                        &n.to_string(),
                    ],
                );
            }
            Kind::Tapswitch => {
                self.cli_ok("config", &["fdb_max_learned", &n.to_string()]);
            }
        }
    }

    /// Learned entries (Linux `fdb_n_learned`).
    fn n_learned(&self) -> u64 {
        match self.kind {
            Kind::Kernel => {
                let o = run_ok(
                    "timeout",
                    &["10", "python3", "-c", BR_LEARNED_PY, "get", &self.name],
                );
                o.split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("fdb_n_learned from {o:?}"))
            }
            Kind::Tapswitch => self.sw().get("/api/v1/config")["fdb_n_learned"]
                .as_u64()
                .expect("fdb_n_learned in /api/v1/config"),
        }
    }

    /// `ip link set P master BR` / `tapswitch port add packet:P`.
    fn attach(&self, p: usize) {
        match self.kind {
            Kind::Kernel => {
                run_ok(
                    "ip",
                    &["link", "set", "dev", &self.ports[p], "master", &self.name],
                );
            }
            Kind::Tapswitch => {
                self.cli_ok("port", &["add", &format!("packet:{}", self.ports[p])]);
            }
        }
    }

    /// `ip link set P nomaster` / `tapswitch port del P`.
    fn detach(&self, p: usize) {
        match self.kind {
            Kind::Kernel => {
                run_ok("ip", &["link", "set", "dev", &self.ports[p], "nomaster"]);
            }
            Kind::Tapswitch => {
                self.cli_ok("port", &["del", &self.ports[p]]);
            }
        }
    }

    /// Host `from` sends each frame (hex) its number of times, from one socket.
    fn send(&self, from: usize, frames: &[(String, u32)]) {
        let h = self.h(from);
        let specs: Vec<String> = frames.iter().map(|(f, c)| format!("{f}*{c}")).collect();
        let mut args = vec!["python3", "-c", SEND_PY, h.ifname.as_str()];
        args.extend(specs.iter().map(String::as_str));
        h.ns.ok(&args);
    }

    /// Counts, on each host of `watch`, the frames matching `filter` (pkt.py sniff options)
    /// received while host `from` sends `frames`. The sniffers start together and count for
    /// [`WINDOW`]; an attempt whose send did not end well inside every window (a loaded
    /// machine) is repeated, at most 3 times (the frames are sent again: callers send frames
    /// whose repetition changes nothing but counters, see [`Rig::attempts`]).
    fn observe(
        &self,
        from: usize,
        filter: &[&str],
        frames: &[(String, u32)],
        watch: &[usize],
    ) -> Vec<u64> {
        for attempt in 1..=5 {
            let t = Instant::now();
            let sniffers: Vec<Sniff> = watch
                .iter()
                .map(|&w| Sniff::spawn(self.h(w), filter))
                .collect();
            for s in &sniffers {
                s.wait_ready();
            }
            self.send(from, frames);
            let in_time = t.elapsed() + Duration::from_millis(600) < WINDOW;
            let counts: Vec<u64> = sniffers.into_iter().map(Sniff::count).collect();
            self.attempts.set(attempt);
            if in_time {
                return counts;
            }
            eprintln!(
                "{:?}: sending took until {:?} after the sniffers started (window {WINDOW:?}); again",
                self.kind,
                t.elapsed()
            );
        }
        panic!("the machine is too loaded: 5 observation windows missed their frames");
    }

    /// As [`Rig::observe`], counting frames from `src`.
    fn observe_src(
        &self,
        from: usize,
        src: &str,
        frames: &[(String, u32)],
        watch: &[usize],
    ) -> Vec<u64> {
        self.observe(from, &["--src", src], frames, watch)
    }

    /// Whether one ping from host `a` to host `b` (1 s wait) is answered.
    fn ping1(&self, a: usize, b: usize) -> bool {
        let out = self
            .h(a)
            .ns
            .exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", &self.h(b).ip]);
        out.status.success()
    }
}

// ---------------------------------------------------------------------------------------------
// Observations and the verdict.

/// What a scenario saw, as labelled values (compared as their Debug text).
#[derive(Default, Debug, Clone, PartialEq)]
struct Obs(Vec<(String, String)>);

impl Obs {
    fn put(&mut self, label: &str, v: impl Debug) {
        self.0.push((label.to_string(), format!("{v:?}")));
    }
}

/// Builds the expectation with the same labels: `exp(&[("label", &value), ...])`.
fn exp(items: &[(&str, &dyn Debug)]) -> Obs {
    let mut o = Obs::default();
    for (l, v) in items {
        o.put(l, v);
    }
    o
}

/// Runs `scenario` on a kernel-bridge rig, then on a tapswitch rig (each with its own
/// namespaces), then asserts: the kernel saw `expected` (else the test's assumption about
/// Linux is wrong), and tapswitch saw exactly what the kernel saw (else a divergence).
fn dual(n: usize, attached: usize, expected: Obs, scenario: impl Fn(&Rig) -> Obs) {
    if !root_or_skip() {
        return;
    }
    let mut seen = Vec::new();
    for kind in [Kind::Kernel, Kind::Tapswitch] {
        let t = Instant::now();
        let rig = Rig::new(kind, n, attached);
        let obs = scenario(&rig);
        drop(rig);
        eprintln!("{kind:?} rig: {:.1} s", t.elapsed().as_secs_f64());
        seen.push(obs);
    }
    let (k, t) = (&seen[0], &seen[1]);
    let mut report = String::new();
    let mut kernel_off = false;
    let mut diverges = false;
    let labels: Vec<&String> = expected.0.iter().map(|(l, _)| l).collect();
    for (i, label) in labels.iter().enumerate() {
        let e = &expected.0[i].1;
        let kv = k.0.get(i).map(|x| (&x.0, &x.1));
        let tv = t.0.get(i).map(|x| (&x.0, &x.1));
        let kv_s = kv.map(|(_, v)| v.as_str()).unwrap_or("<missing>");
        let tv_s = tv.map(|(_, v)| v.as_str()).unwrap_or("<missing>");
        let k_bad = kv.map(|(l, v)| (l.as_str(), v)) != Some((label.as_str(), e));
        let t_bad = tv != kv;
        kernel_off |= k_bad;
        diverges |= t_bad;
        report.push_str(&format!(
            "{} {label}\n     expected:  {e}\n     kernel:    {kv_s}\n     tapswitch: {tv_s}\n",
            if k_bad || t_bad { "!!" } else { "  " }
        ));
    }
    if k.0.len() != labels.len() || t.0.len() != labels.len() {
        kernel_off = true;
        report.push_str(&format!(
            "observation counts differ: expected {}, kernel {}, tapswitch {}\n",
            labels.len(),
            k.0.len(),
            t.0.len()
        ));
    }
    assert!(
        !kernel_off && !diverges,
        "{}{}\n{report}",
        if kernel_off {
            "the kernel bridge did not behave as expected. "
        } else {
            ""
        },
        if diverges {
            "DIVERGENCE: tapswitch differs from the kernel bridge."
        } else {
            ""
        }
    );
}

fn some(p: usize, kind: &str) -> Option<Entry> {
    Some((p, kind.to_string()))
}

// ---------------------------------------------------------------------------------------------
// 1. learning off (L3).

/// `learning off` on P1: H1 is never learned (while H2 is), unicast to it floods to every
/// port, its own frames still pass; `learning on` again learns it on the next frame.
#[test]
fn learning_off_never_learns_and_unicast_to_the_host_floods() {
    let expected = exp(&[
        (
            "H1 entry after learning off and traffic from it",
            &None::<Entry>,
        ),
        ("H2 entry (learning on)", &some(2, "dynamic")),
        ("H0 -> H1 x1, H0 -> H2 x2: seen by [H1, H2]", &vec![1u64, 3]),
        ("H1 -> H0 x1: seen by [H0, H2]", &vec![1u64, 0]),
        ("H1 entry still absent", &None::<Entry>),
        (
            "H1 entry after learning on and one frame",
            &some(1, "dynamic"),
        ),
        ("H0 -> H1 x1 then: seen by [H1, H2]", &vec![1u64, 0]),
        (
            "H0 entry after learning off on P0 (not flushed)",
            &some(0, "dynamic"),
        ),
        ("H1 -> H0 x1 then: seen by [H0, H2]", &vec![1u64, 0]),
    ]);
    dual(3, 3, expected, |r| {
        let mut o = Obs::default();
        r.learn(0);
        r.set_flag(1, "learning", false);
        r.send(1, &[(fr(BCAST, &hm(1)), 2)]);
        r.learn(2);
        o.put(
            "H1 entry after learning off and traffic from it",
            r.entry(&hm(1)),
        );
        o.put("H2 entry (learning on)", r.entry(&hm(2)));
        o.put(
            "H0 -> H1 x1, H0 -> H2 x2: seen by [H1, H2]",
            r.observe_src(
                0,
                &hm(0),
                &[(fr(&hm(1), &hm(0)), 1), (fr(&hm(2), &hm(0)), 2)],
                &[1, 2],
            ),
        );
        o.put(
            "H1 -> H0 x1: seen by [H0, H2]",
            r.observe_src(1, &hm(1), &[(fr(&hm(0), &hm(1)), 1)], &[0, 2]),
        );
        o.put("H1 entry still absent", r.entry(&hm(1)));
        r.set_flag(1, "learning", true);
        r.send(1, &[(fr(&hm(0), &hm(1)), 1)]);
        r.wait_entry(&hm(1), 1);
        o.put("H1 entry after learning on and one frame", r.entry(&hm(1)));
        o.put(
            "H0 -> H1 x1 then: seen by [H1, H2]",
            r.observe_src(0, &hm(0), &[(fr(&hm(1), &hm(0)), 1)], &[1, 2]),
        );
        r.set_flag(0, "learning", false);
        o.put(
            "H0 entry after learning off on P0 (not flushed)",
            r.entry(&hm(0)),
        );
        o.put(
            "H1 -> H0 x1 then: seen by [H0, H2]",
            r.observe_src(1, &hm(1), &[(fr(&hm(0), &hm(1)), 1)], &[0, 2]),
        );
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 2. flood, mcast_flood, bcast_flood (F2).

/// P1 `flood off`, P2 `mcast_flood off`, P3 `bcast_flood off`: each misses exactly its kind
/// of flood and still gets the other kinds and known unicast; the flags are egress-only.
/// Counts encode the kinds: broadcast x1, multicast x2, unknown unicast x4, known unicast x8.
#[test]
fn each_flood_flag_off_removes_exactly_its_kind_of_flood() {
    let expected = exp(&[
        (
            "H0: bcast x1, mcast x2, unknown x4, to H1/H2/H3 x8 each: seen by [H1, H2, H3]",
            &vec![1u64 + 2 + 8, 1 + 4 + 8, 2 + 4 + 8],
        ),
        (
            "H1 (flood off): unknown x1, bcast x2, mcast x4: seen by [H0, H2, H3]",
            &vec![7u64, 1 + 2, 1 + 4],
        ),
        (
            "all flags on again: H0 bcast x1, mcast x2, unknown x4: seen by [H1, H2, H3]",
            &vec![7u64, 7, 7],
        ),
    ]);
    dual(4, 4, expected, |r| {
        let mut o = Obs::default();
        for i in 0..4 {
            r.learn(i);
        }
        r.set_flag(1, "flood", false);
        r.set_flag(2, "mcast_flood", false);
        r.set_flag(3, "bcast_flood", false);
        let m0 = hm(0);
        o.put(
            "H0: bcast x1, mcast x2, unknown x4, to H1/H2/H3 x8 each: seen by [H1, H2, H3]",
            r.observe_src(
                0,
                &m0,
                &[
                    (fr(BCAST, &m0), 1),
                    (fr(MCAST, &m0), 2),
                    (fr(UNKNOWN, &m0), 4),
                    (fr(&hm(1), &m0), 8),
                    (fr(&hm(2), &m0), 8),
                    (fr(&hm(3), &m0), 8),
                ],
                &[1, 2, 3],
            ),
        );
        let m1 = hm(1);
        o.put(
            "H1 (flood off): unknown x1, bcast x2, mcast x4: seen by [H0, H2, H3]",
            r.observe_src(
                1,
                &m1,
                &[
                    (fr(UNKNOWN, &m1), 1),
                    (fr(BCAST, &m1), 2),
                    (fr(MCAST, &m1), 4),
                ],
                &[0, 2, 3],
            ),
        );
        r.set_flag(1, "flood", true);
        r.set_flag(2, "mcast_flood", true);
        r.set_flag(3, "bcast_flood", true);
        o.put(
            "all flags on again: H0 bcast x1, mcast x2, unknown x4: seen by [H1, H2, H3]",
            r.observe_src(
                0,
                &m0,
                &[
                    (fr(BCAST, &m0), 1),
                    (fr(MCAST, &m0), 2),
                    (fr(UNKNOWN, &m0), 4),
                ],
                &[1, 2, 3],
            ),
        );
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 3. isolated (F4).

/// P1 and P2 `isolated`: no flood and no known unicast between them, in either direction;
/// both still reach P0 and P0 reaches both. Broadcast x1, unknown x2, to the other isolated
/// host x4, to H0 x8.
#[test]
fn isolated_ports_never_reach_each_other_but_reach_the_rest() {
    let expected = exp(&[
        (
            "H1: bcast x1, unknown x2, to H2 x4, to H0 x8: seen by [H0, H2]",
            &vec![11u64, 0],
        ),
        (
            "H2: bcast x1, unknown x2, to H1 x4, to H0 x8: seen by [H0, H1]",
            &vec![11u64, 0],
        ),
        (
            "H0: bcast x1, to H1 x2, to H2 x4, unknown x8: seen by [H1, H2]",
            &vec![11u64, 13],
        ),
        (
            "isolated off on P2: H1 to H2 x1, bcast x2: seen by [H2]",
            &vec![3u64],
        ),
    ]);
    dual(3, 3, expected, |r| {
        let mut o = Obs::default();
        for i in 0..3 {
            r.learn(i);
        }
        r.set_flag(1, "isolated", true);
        r.set_flag(2, "isolated", true);
        let (m0, m1, m2) = (hm(0), hm(1), hm(2));
        let mut isolated_expected = 0;
        o.put(
            "H1: bcast x1, unknown x2, to H2 x4, to H0 x8: seen by [H0, H2]",
            r.observe_src(
                1,
                &m1,
                &[
                    (fr(BCAST, &m1), 1),
                    (fr(UNKNOWN, &m1), 2),
                    (fr(&m2, &m1), 4),
                    (fr(&m0, &m1), 8),
                ],
                &[0, 2],
            ),
        );
        isolated_expected += 4 * r.attempts.get() as u64;
        o.put(
            "H2: bcast x1, unknown x2, to H1 x4, to H0 x8: seen by [H0, H1]",
            r.observe_src(
                2,
                &m2,
                &[
                    (fr(BCAST, &m2), 1),
                    (fr(UNKNOWN, &m2), 2),
                    (fr(&m1, &m2), 4),
                    (fr(&m0, &m2), 8),
                ],
                &[0, 1],
            ),
        );
        isolated_expected += 4 * r.attempts.get() as u64;
        o.put(
            "H0: bcast x1, to H1 x2, to H2 x4, unknown x8: seen by [H1, H2]",
            r.observe_src(
                0,
                &m0,
                &[
                    (fr(BCAST, &m0), 1),
                    (fr(&m1, &m0), 2),
                    (fr(&m2, &m0), 4),
                    (fr(UNKNOWN, &m0), 8),
                ],
                &[1, 2],
            ),
        );
        if r.kind == Kind::Tapswitch {
            // Known unicast between the two isolated ports: 4 frames each way (per attempt).
            let n = r.sw().dropped(&r.ports[1], "rx", "isolated")
                + r.sw().dropped(&r.ports[2], "rx", "isolated");
            assert_eq!(
                n, isolated_expected,
                "rx_dropped_by_reason.isolated on P1 + P2"
            );
        }
        r.set_flag(2, "isolated", false);
        o.put(
            "isolated off on P2: H1 to H2 x1, bcast x2: seen by [H2]",
            r.observe_src(1, &m1, &[(fr(&m2, &m1), 1), (fr(BCAST, &m1), 2)], &[2]),
        );
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 4. static vs sticky moves (L4).

/// A `static` entry on P1 moves to P2 when its MAC sends from P2; a `sticky` one does not,
/// and the sticky MAC's frames from P2 are still forwarded.
#[test]
fn static_entries_move_sticky_entries_stay() {
    let (s, t) = (xm(1), xm(2));
    let expected = exp(&[
        ("add S static on P1", &true),
        ("add T sticky on P1", &true),
        (
            "H2 sends S->H0 x1, T->H0 x2: seen by [H0, H1]",
            &vec![3u64, 0],
        ),
        ("S entry", &some(2, "static")),
        ("T entry", &some(1, "sticky")),
        ("H0 -> S x1, H0 -> T x2: seen by [H1, H2]", &vec![2u64, 1]),
    ]);
    dual(3, 3, expected, |r| {
        let mut o = Obs::default();
        r.learn(0);
        o.put("add S static on P1", r.fdb_add(&s, 1, "static", false));
        o.put("add T sticky on P1", r.fdb_add(&t, 1, "sticky", false));
        let m0 = hm(0);
        o.put(
            "H2 sends S->H0 x1, T->H0 x2: seen by [H0, H1]",
            r.observe(
                2,
                &["--dst", &m0],
                &[(fr(&m0, &s), 1), (fr(&m0, &t), 2)],
                &[0, 1],
            ),
        );
        o.put("S entry", r.entry(&s));
        o.put("T entry", r.entry(&t));
        o.put(
            "H0 -> S x1, H0 -> T x2: seen by [H1, H2]",
            r.observe_src(0, &m0, &[(fr(&s, &m0), 1), (fr(&t, &m0), 2)], &[1, 2]),
        );
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 5. ageing (L5).

/// Ageing set to 3 s at run time: a learned and a user-dynamic entry disappear after about
/// 3 s without frames from their MAC (frames to them do not refresh), a static one stays;
/// unicast to the aged MAC floods again.
#[test]
fn ageing_removes_learned_and_dynamic_entries_but_not_static() {
    let (l, d, s) = (xm(0x11), xm(0x12), xm(0x13));
    let expected = exp(&[
        ("L, D, S present", &true),
        ("L and D still present 1.5 s later", &true),
        ("L and D gone within 8 s", &true),
        ("aged between 2.5 s and 6 s", &true),
        ("S entry after ageing", &some(1, "static")),
        ("H0 -> L x1 after ageing: seen by [H1, H2]", &vec![1u64, 1]),
    ]);
    dual(3, 3, expected, |r| {
        let mut o = Obs::default();
        r.set_ageing(3);
        r.learn(0);
        r.send(1, &[(fr(BCAST, &l), 1)]);
        r.wait_entry(&l, 1);
        let t0 = Instant::now();
        assert!(r.fdb_add(&d, 1, "dynamic", false));
        assert!(r.fdb_add(&s, 1, "static", false));
        let t = r.table();
        o.put(
            "L, D, S present",
            t.get(&l) == Some(&(1, "dynamic".into()))
                && t.get(&d) == Some(&(1, "dynamic".into()))
                && t.get(&s) == Some(&(1, "static".into())),
        );
        let m0 = hm(0);
        // Frames *to* L keep flowing: they must not refresh it.
        let mut present_at_1_5 = None;
        let mut gone_at = None;
        while t0.elapsed() < Duration::from_secs(8) {
            r.send(0, &[(fr(&l, &m0), 1)]);
            let t = r.table();
            let both = t.contains_key(&l) && t.contains_key(&d);
            if present_at_1_5.is_none() && t0.elapsed() >= Duration::from_millis(1500) {
                present_at_1_5 = Some(both);
            }
            if !t.contains_key(&l) && !t.contains_key(&d) {
                gone_at = Some(t0.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        eprintln!("{:?}: L and D aged after {gone_at:?}", r.kind);
        o.put(
            "L and D still present 1.5 s later",
            present_at_1_5 == Some(true),
        );
        o.put("L and D gone within 8 s", gone_at.is_some());
        o.put(
            "aged between 2.5 s and 6 s",
            gone_at
                .is_some_and(|g| g >= Duration::from_millis(2500) && g <= Duration::from_secs(6)),
        );
        o.put("S entry after ageing", r.entry(&s));
        o.put(
            "H0 -> L x1 after ageing: seen by [H1, H2]",
            r.observe_src(0, &m0, &[(fr(&l, &m0), 1)], &[1, 2]),
        );
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 6. learned-entry limit (L7).

/// `fdb_max_learned 2`: two static entries do not count; H0 and H1 are learned, H2 is not
/// (its frames still flood, frames to it flood); a static entry can still be added; once a
/// learned entry is deleted, H2 is learned.
#[test]
fn learned_limit_counts_only_learned_entries() {
    let (s1, s2, s3) = (xm(0x21), xm(0x22), xm(0x23));
    let expected = exp(&[
        ("static S1 on P1, S2 on P2 added", &(true, true)),
        ("n_learned after the two static entries", &0u64),
        ("n_learned after H0, H1", &2u64),
        (
            "H2: bcast x1, unknown x2: seen by [H0, H1, H3]",
            &vec![3u64, 3, 3],
        ),
        ("H2 entry at the limit", &None::<Entry>),
        ("n_learned at the limit", &2u64),
        (
            "H0 -> H2 x1 (unknown): seen by [H1, H2, H3]",
            &vec![1u64, 1, 1],
        ),
        ("static S3 added at the limit", &true),
        (
            "S1, S2, S3 entries",
            &vec![some(1, "static"), some(2, "static"), some(3, "static")],
        ),
        ("n_learned with S3", &2u64),
        ("del H0's learned entry", &true),
        ("H2 entry after a slot freed", &some(2, "dynamic")),
        ("n_learned at the end", &2u64),
    ]);
    dual(4, 4, expected, |r| {
        let mut o = Obs::default();
        r.set_max_learned(2);
        o.put(
            "static S1 on P1, S2 on P2 added",
            (
                r.fdb_add(&s1, 1, "static", false),
                r.fdb_add(&s2, 2, "static", false),
            ),
        );
        o.put("n_learned after the two static entries", r.n_learned());
        r.learn(0);
        r.learn(1);
        o.put("n_learned after H0, H1", r.n_learned());
        let m2 = hm(2);
        o.put(
            "H2: bcast x1, unknown x2: seen by [H0, H1, H3]",
            r.observe_src(
                2,
                &m2,
                &[(fr(BCAST, &m2), 1), (fr(UNKNOWN, &m2), 2)],
                &[0, 1, 3],
            ),
        );
        o.put("H2 entry at the limit", r.entry(&m2));
        o.put("n_learned at the limit", r.n_learned());
        o.put(
            "H0 -> H2 x1 (unknown): seen by [H1, H2, H3]",
            r.observe_src(0, &hm(0), &[(fr(&m2, &hm(0)), 1)], &[1, 2, 3]),
        );
        o.put(
            "static S3 added at the limit",
            r.fdb_add(&s3, 3, "static", false),
        );
        o.put(
            "S1, S2, S3 entries",
            vec![r.entry(&s1), r.entry(&s2), r.entry(&s3)],
        );
        o.put("n_learned with S3", r.n_learned());
        o.put("del H0's learned entry", r.fdb_del(&hm(0), 0, None));
        r.send(2, &[(fr(BCAST, &m2), 1)]);
        let _ = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            r.entry(&m2).is_some()
        });
        o.put("H2 entry after a slot freed", r.entry(&m2));
        o.put("n_learned at the end", r.n_learned());
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 7. a port attached and detached at run time (L8).

/// A port attached mid-test joins the traffic (its host pings the others within seconds and
/// is learned on it); detaching it flushes its entries, static ones too, and cuts it off.
#[test]
fn port_attached_mid_test_joins_and_detaching_flushes_it() {
    let s = xm(0x31);
    let expected = exp(&[
        ("H0 pings H1 before", &true),
        ("H2 pings H0 within 8 s of attaching", &true),
        ("H2 pings H1", &true),
        ("H2 entry", &some(2, "dynamic")),
        ("static S on P2 added", &true),
        ("entries on P2 after detaching", &Vec::<String>::new()),
        ("H2 pings H0 after detaching", &false),
        ("H0 pings H1 after", &true),
    ]);
    dual(3, 2, expected, |r| {
        let mut o = Obs::default();
        o.put("H0 pings H1 before", r.ping1(0, 1));
        let t = Instant::now();
        r.attach(2);
        let joined = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
            r.ping1(2, 0)
        });
        eprintln!(
            "{:?}: attached port answered after {:?}",
            r.kind,
            t.elapsed()
        );
        o.put("H2 pings H0 within 8 s of attaching", joined);
        o.put("H2 pings H1", r.ping1(2, 1));
        o.put("H2 entry", r.entry(&hm(2)));
        o.put("static S on P2 added", r.fdb_add(&s, 2, "static", false));
        r.detach(2);
        // The kernel flushes synchronously; tapswitch on the API call.
        let on_p2 = |r: &Rig| -> Vec<String> {
            r.table()
                .into_iter()
                .filter(|(_, e)| e.0 == 2 || e.0 == usize::MAX)
                .map(|(m, _)| m)
                .collect()
        };
        let _ = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
            on_p2(r).is_empty()
        });
        o.put("entries on P2 after detaching", on_p2(r));
        o.put("H2 pings H0 after detaching", r.ping1(2, 0));
        o.put("H0 pings H1 after", r.ping1(0, 1));
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 8. `bridge fdb` compatibility.

/// Replaces port names with P<i> and the bridge name with BR; trims the line.
fn normalise_line(r: &Rig, line: &str) -> String {
    line.split_whitespace()
        .map(|w| {
            if w == r.name {
                "BR".to_string()
            } else if let Some(i) = r.ports.iter().position(|p| p == w) {
                format!("P{i}")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `bridge fdb show br BR` / `tapswitch fdb` lines for the given MACs, normalised and sorted.
fn fdb_lines(r: &Rig, macs: &[&str]) -> Vec<String> {
    let text = match r.kind {
        Kind::Kernel => run_ok("bridge", &["fdb", "show", "br", &r.name]),
        Kind::Tapswitch => r.cli_ok("fdb", &[]),
    };
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| macs.iter().any(|m| l.starts_with(m)))
        .map(|l| normalise_line(r, l))
        .collect();
    v.sort();
    v
}

/// `tapswitch fdb` prints learned, dynamic, static and sticky entries (and VLAN entries)
/// exactly as `bridge fdb show` prints the kernel's (with `--name BR` as the master).
#[test]
fn fdb_show_lines_match_bridge_fdb_show() {
    let (s, t, d, v) = (xm(0x41), xm(0x42), xm(0x43), xm(0x44));
    let m0 = hm(0);
    let expected = exp(&[
        (
            "lines",
            &vec![
                format!("{m0} dev P0 master BR"),
                format!("{s} dev P1 master BR static"),
                format!("{t} dev P1 sticky master BR static"),
                format!("{d} dev P0 master BR"),
            ],
        ),
        (
            "VLAN 5 static entry line",
            &format!("{v} dev P0 vlan 5 master BR static"),
        ),
    ]);
    dual(2, 2, expected, |r| {
        let mut o = Obs::default();
        r.learn(0);
        assert!(r.fdb_add(&s, 1, "static", false));
        assert!(r.fdb_add(&t, 1, "sticky", false));
        assert!(r.fdb_add(&d, 0, "dynamic", false));
        let mut lines = fdb_lines(r, &[&m0, &s, &t, &d]);
        // In the order of the expectation.
        lines.sort_by_key(|l| {
            [&m0, &s, &t, &d]
                .iter()
                .position(|m| l.starts_with(m.as_str()))
                .unwrap_or(9)
        });
        o.put("lines", lines);
        let vline = match r.kind {
            Kind::Kernel => {
                let ok = run(
                    "bridge",
                    &[
                        "fdb",
                        "add",
                        &v,
                        "dev",
                        &r.ports[0],
                        "vlan",
                        "5",
                        "master",
                        "static",
                    ],
                )
                .status
                .success();
                if ok {
                    fdb_lines(r, &[&v]).join("|")
                } else {
                    // No CONFIG_BRIDGE_VLAN_FILTERING: iproute2's print_fdb order is
                    // MAC dev DEV [vlan N] [flags] master BR STATE.
                    format!("{v} dev P0 vlan 5 master BR static")
                }
            }
            Kind::Tapswitch => {
                r.cli_ok(
                    "fdb",
                    &["add", &v, "dev", &r.ports[0], "vlan", "5", "static"],
                );
                fdb_lines(r, &[&v]).join("|")
            }
        };
        o.put("VLAN 5 static entry line", vline);
        o
    });
}

/// `fdb add` of an existing entry (user or learned) fails, `replace` succeeds and changes it;
/// `del` with `vlan 1` does not remove the VLAN-0 entry; `flush dev P` removes only P's
/// entries (static included), a flush without filter removes every entry.
#[test]
fn fdb_add_replace_del_flush_semantics() {
    let (s, a, b, c) = (xm(0x51), xm(0x52), xm(0x53), xm(0x54));
    let expected = exp(&[
        ("add S static P0", &true),
        ("add S static P0 again", &false),
        ("add S sticky P1 (exists)", &false),
        ("replace S sticky P1", &true),
        ("S entry", &some(1, "sticky")),
        ("add H0 static P0 over the learned entry", &false),
        ("replace H0 static P0", &true),
        ("H0 entry", &some(0, "static")),
        ("del S vlan 1", &false),
        ("S entry after del vlan 1", &some(1, "sticky")),
        ("del S", &true),
        ("S entry after del", &None::<Entry>),
        ("del S again", &false),
        (
            "table before flush dev P0",
            &vec![
                (hm(0), (0usize, "static".to_string())),
                (hm(1), (1, "dynamic".to_string())),
                (hm(2), (2, "dynamic".to_string())),
                (a.clone(), (0, "static".to_string())),
                (b.clone(), (0, "dynamic".to_string())),
                (c.clone(), (1, "static".to_string())),
            ],
        ),
        (
            "table after flush dev P0",
            &vec![
                (hm(1), (1usize, "dynamic".to_string())),
                (hm(2), (2, "dynamic".to_string())),
                (c.clone(), (1, "static".to_string())),
            ],
        ),
        ("table after flush", &Vec::<(String, Entry)>::new()),
        ("H1 learned again after the flush", &some(1, "dynamic")),
    ]);
    dual(3, 3, expected, |r| {
        let mut o = Obs::default();
        r.learn(0);
        r.learn(1);
        o.put("add S static P0", r.fdb_add(&s, 0, "static", false));
        o.put("add S static P0 again", r.fdb_add(&s, 0, "static", false));
        o.put(
            "add S sticky P1 (exists)",
            r.fdb_add(&s, 1, "sticky", false),
        );
        o.put("replace S sticky P1", r.fdb_add(&s, 1, "sticky", true));
        o.put("S entry", r.entry(&s));
        o.put(
            "add H0 static P0 over the learned entry",
            r.fdb_add(&hm(0), 0, "static", false),
        );
        o.put("replace H0 static P0", r.fdb_add(&hm(0), 0, "static", true));
        o.put("H0 entry", r.entry(&hm(0)));
        o.put("del S vlan 1", r.fdb_del(&s, 1, Some(1)));
        o.put("S entry after del vlan 1", r.entry(&s));
        o.put("del S", r.fdb_del(&s, 1, None));
        o.put("S entry after del", r.entry(&s));
        o.put("del S again", r.fdb_del(&s, 1, None));
        r.learn(2);
        assert!(r.fdb_add(&a, 0, "static", false));
        assert!(r.fdb_add(&b, 0, "dynamic", false));
        assert!(r.fdb_add(&c, 1, "static", false));
        let table = |r: &Rig| r.table().into_iter().collect::<Vec<_>>();
        o.put("table before flush dev P0", table(r));
        r.fdb_flush(Some(0));
        o.put("table after flush dev P0", table(r));
        r.fdb_flush(None);
        o.put("table after flush", table(r));
        r.send(1, &[(fr(BCAST, &hm(1)), 1)]);
        let _ = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            r.entry(&hm(1)).is_some()
        });
        o.put("H1 learned again after the flush", r.entry(&hm(1)));
        o
    });
}

// ---------------------------------------------------------------------------------------------
// 9. locked port (L9).

/// `locked on` on P1: only sources in the table for P1 pass; an unknown source and a source
/// known on another port are dropped, not learned, and do not move entries; a static entry
/// for P1 lets its MAC pass; `locked off` lets new sources in again.
#[test]
fn locked_port_passes_only_sources_in_the_table_for_it() {
    let (x, y) = (xm(0x61), xm(0x62));
    let expected = exp(&[
        (
            "H1 sends to H2: src H1 x1, src X (unknown) x2, src H0 (other port) x4: seen by [H2, H0]",
            &vec![1u64, 0],
        ),
        ("X entry", &None::<Entry>),
        ("H0 entry (not moved)", &some(0, "dynamic")),
        ("H1 entry", &some(1, "dynamic")),
        ("static X on P1 added", &true),
        ("H1 sends src X to H2 x1: seen by [H2]", &vec![1u64]),
        ("locked off: src Y to H2 x1: seen by [H2]", &vec![1u64]),
        ("Y entry", &some(1, "dynamic")),
    ]);
    dual(3, 3, expected, |r| {
        let mut o = Obs::default();
        for i in 0..3 {
            r.learn(i);
        }
        r.set_flag(1, "locked", true);
        let m2 = hm(2);
        o.put(
            "H1 sends to H2: src H1 x1, src X (unknown) x2, src H0 (other port) x4: seen by [H2, H0]",
            r.observe(
                1,
                &["--dst", &m2],
                &[(fr(&m2, &hm(1)), 1), (fr(&m2, &x), 2), (fr(&m2, &hm(0)), 4)],
                &[2, 0],
            ),
        );
        if r.kind == Kind::Tapswitch {
            assert_eq!(
                r.sw().dropped(&r.ports[1], "rx", "locked"),
                6 * r.attempts.get() as u64,
                "rx_dropped_by_reason.locked on P1"
            );
        }
        o.put("X entry", r.entry(&x));
        o.put("H0 entry (not moved)", r.entry(&hm(0)));
        o.put("H1 entry", r.entry(&hm(1)));
        o.put("static X on P1 added", r.fdb_add(&x, 1, "static", false));
        o.put(
            "H1 sends src X to H2 x1: seen by [H2]",
            r.observe(1, &["--dst", &m2], &[(fr(&m2, &x), 1)], &[2]),
        );
        r.set_flag(1, "locked", false);
        o.put(
            "locked off: src Y to H2 x1: seen by [H2]",
            r.observe(1, &["--dst", &m2], &[(fr(&m2, &y), 1)], &[2]),
        );
        o.put("Y entry", r.entry(&y));
        o
    });
}

/// `tapswitch config KEY VALUE` takes every setting in the API's type (README "VLANs" and
/// "Loop safety": `tapswitch config vlan_filtering true`, `tapswitch config stp rstp`): on a
/// running switch between two hosts, filtering and the spanning tree come on, and act (a
/// VLAN removed from a port cuts its host off; the tree runs), and go off again.
#[test]
fn config_command_turns_vlan_filtering_and_stp_on_and_off() {
    if !root_or_skip() {
        return;
    }
    let t = common::Topo::new(2, &[]);
    let (a, b) = (t.h(0), t.h(1));
    let ctl = t.sw.ctl.clone();
    let config = |words: &[&str]| {
        let mut args = vec!["config", "--control", &ctl];
        args.extend_from_slice(words);
        tapswitch_cmd(&args)
    };
    a.ping_ok(&b.ip, 2);
    let out = config(&[
        "vlan_filtering",
        "true",
        "stp",
        "rstp",
        "group_fwd_mask",
        "lldp",
    ]);
    assert!(out.status.success(), "{}", out_text(&out));
    let c = t.sw.get("/api/v1/config");
    assert_eq!(
        (&c["vlan_filtering"], &c["stp"], &c["group_fwd_mask"]),
        (
            &Value::from(true),
            &Value::from("rstp"),
            &Value::from(0x4000)
        )
    );
    assert!(
        t.sw.get("/api/v1/stp")["bridge"]["bridge_id"].is_string(),
        "the spanning tree runs: {}",
        t.sw.get("/api/v1/stp")
    );
    // both hosts are in VLAN 1 (the default PVID): they talk once the ports forward
    // (auto-edge after 3 s without BPDUs)
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(200), || a
            .ping(&b.ip, 1)
            .status
            .success()),
        "no ping with filtering and STP on:\n{}",
        t.sw.log.text()
    );
    let out = tapswitch_cmd(&[
        "vlan",
        "del",
        "--control",
        &ctl,
        "dev",
        &b.ifname,
        "vid",
        "1",
    ]);
    assert!(out.status.success(), "{}", out_text(&out));
    assert!(
        !a.ping(&b.ip, 2).status.success(),
        "filtering is on: b left VLAN 1"
    );
    // a value of the wrong type is refused before anything is sent
    let out = config(&["vlan_filtering", "maybe", "stp", "off"]);
    assert!(!out.status.success());
    assert!(
        out_text(&out).contains("takes true or false"),
        "{}",
        out_text(&out)
    );
    assert_eq!(t.sw.get("/api/v1/config")["stp"], "rstp");
    // off again (1/0 and on/off spellings): tags pass untouched, b is reachable again
    let out = config(&["vlan_filtering", "0", "stp", "off"]);
    assert!(out.status.success(), "{}", out_text(&out));
    let c = t.sw.get("/api/v1/config");
    assert_eq!(
        (&c["vlan_filtering"], &c["stp"]),
        (&Value::from(false), &Value::from("off"))
    );
    a.ping_ok(&b.ip, 2);
}
