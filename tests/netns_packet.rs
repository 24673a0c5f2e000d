//! Root tests of `packet:IFNAME` ports: existing interfaces (veth ends, a TAP held by another
//! process) attached with AF_PACKET, hosts in network namespaces.
//!
//! Self-contained: the namespace, link, process and switch guards below delete what they made
//! in `Drop`, also while a test panics. Names are unique (pid + counter, at most 15 bytes),
//! addresses come from 198.18.0.0/15 only, and every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const TAPSWITCH: &str = env!("CARGO_BIN_EXE_tapswitch");
const PYTHON: &str = "/usr/bin/python3";

// ---------------------------------------------------------------------------------------------
// Guards and helpers.

fn euid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("Uid:"))?;
    l.split_whitespace().nth(2)?.parse().ok()
}

/// True as root; otherwise skips (or fails in CI, which runs these as root).
fn root_or_skip() -> bool {
    if euid() == Some(0) {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("root tests must run in CI");
    }
    eprintln!("SKIP: needs root");
    false
}

/// A unique interface or namespace name: `pk` + tag + pid + counter (at most 15 bytes).
fn uniq(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("pk{tag}{}x{n}", std::process::id());
    assert!(name.len() <= 15, "name {name} too long");
    name
}

fn run(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("30")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed.
fn sh(args: &[&str]) -> Output {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let n = Netns(uniq("n"));
        sh(&["ip", "netns", "add", &n.0]);
        sh(&["ip", "-n", &n.0, "link", "set", "lo", "up"]);
        n
    }

    /// `ip netns exec NS args...` (bounded by `timeout`).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, "timeout", "40"])
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.0))
    }

    fn mac(&self, dev: &str) -> String {
        let o = sh(&["ip", "-n", &self.0, "-j", "link", "show", dev]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["address"].as_str().unwrap().replace(':', "")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// A link in the root namespace, deleted on drop (if still there).
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        if std::path::Path::new(&format!("/sys/class/net/{}", self.0)).exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.0])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A veth pair: `root` in the root namespace (to attach), `eth0` in `ns` with `addr`/24, up.
fn veth_host(ns: &Netns, addr: &str) -> Link {
    let root = uniq("r");
    sh(&[
        "ip", "link", "add", &root, "type", "veth", "peer", "name", "eth0", "netns", &ns.0,
    ]);
    let link = Link(root);
    sh(&[
        "ip",
        "-n",
        &ns.0,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &ns.0, "link", "set", "eth0", "up"]);
    link
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Proc {
    fn spawn(mut c: Command) -> Proc {
        Proc(c.spawn().expect("spawn"))
    }
    fn stdout(&mut self) -> ChildStdout {
        self.0.stdout.take().expect("stdout piped")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first: `timeout` passes it on to its child (a SIGKILL would orphan it)
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t = std::time::Instant::now();
        while self.0.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads lines from a child's stdout on a thread.
fn line_reader(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn expect_line(rx: &mpsc::Receiver<String>, want: &str, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(want) => return,
            Ok(_) => {}
            Err(_) => panic!("no line containing {want:?} within {within:?}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tapswitch run` process; SIGTERM (then SIGKILL) on drop.
struct Switch {
    child: Option<Child>,
    api: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Switch {
    /// Starts a switch with an API on a free loopback port.
    fn start(ports: &[&str]) -> Switch {
        Switch::start_with(ports, true)
    }

    fn start_with(ports: &[&str], api: bool) -> Switch {
        let addr = api.then(|| format!("127.0.0.1:{}", free_port()));
        let mut c = Command::new(TAPSWITCH);
        c.args(["run", "--control", "none"])
            .arg("--listen")
            .arg(addr.as_deref().unwrap_or("none"));
        for p in ports {
            c.arg("--port").arg(p);
        }
        c.env("RUST_LOG", "info")
            .env_remove("TAPSWITCH_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("start tapswitch");
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let ready = l.contains(" ready "); // not "already"
                l2.lock().unwrap().push(l);
                if ready {
                    let _ = tx.send(());
                }
            }
        });
        let mut sw = Switch {
            child: Some(child),
            api: addr,
            log,
        };
        if rx.recv_timeout(Duration::from_secs(15)).is_err() {
            let st = sw.child.as_mut().unwrap().try_wait();
            panic!(
                "tapswitch {ports:?} not ready within 15 s (exit: {st:?}); log:\n{}",
                sw.log_text()
            );
        }
        sw
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn ports(&self) -> Value {
        let api = self.api.as_deref().expect("switch has an API");
        tapswitch::client::get_json(api, "/api/v1/ports").expect("GET /api/v1/ports")
    }

    fn port(&self, name: &str) -> Value {
        self.ports()
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no port {name}"))
    }

    /// SIGTERM; waits up to `within`. Returns the status and how long it took.
    fn stop(&mut self, within: Duration) -> (Option<ExitStatus>, Duration) {
        let mut child = self.child.take().expect("running");
        let t0 = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return (Some(st), t0.elapsed());
            }
            if t0.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                return (None, t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(3));
        }
        if std::thread::panicking() {
            eprintln!("--- tapswitch log ---\n{}", self.log_text());
        }
    }
}

/// Pings until one reply comes (bounded), then requires `count` replies in a row.
fn ping(ns: &Netns, addr: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if ns
            .run(&["ping", "-c", "1", "-W", "1", addr])
            .status
            .success()
        {
            break;
        }
        assert!(
            t0.elapsed() < within,
            "no ping reply from {addr} in {} within {within:?}",
            ns.0
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = ns.run(&["ping", "-c", "3", "-i", "0.2", "-W", "2", addr]);
    assert!(
        o.status.success(),
        "ping {addr} from {}: {}",
        ns.0,
        String::from_utf8_lossy(&o.stdout)
    );
    t0.elapsed()
}

const TCP_SERVER: &str = r#"
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(30)
h = hashlib.sha256()
n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
c.close()
print("got", n, h.hexdigest(), flush=True)
"#;

const TCP_CLIENT: &str = r#"
import hashlib, random, socket, sys, time
data = random.Random(int(sys.argv[3])).randbytes(int(sys.argv[3]))
for i in range(100):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("cannot connect")
c.sendall(data)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print("sent", len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

/// Sends `bytes` of pseudo-random data over TCP from `src` to `dst_addr` in `dst`; checks the
/// SHA-256 at both ends. Returns the time taken.
fn tcp_transfer(src: &Netns, dst: &Netns, dst_addr: &str, bytes: usize) -> Duration {
    let mut srv = Proc::spawn({
        let mut c = dst.cmd(&[PYTHON, "-c", TCP_SERVER, dst_addr, "5001"]);
        c.stdout(Stdio::piped());
        c
    });
    let lines = line_reader(srv.stdout());
    expect_line(&lines, "listening", Duration::from_secs(10));
    let t0 = Instant::now();
    let o = src.run(&[
        PYTHON,
        "-c",
        TCP_CLIENT,
        dst_addr,
        "5001",
        &bytes.to_string(),
    ]);
    let took = t0.elapsed();
    let sent = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        o.status.success(),
        "TCP client failed: {sent} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("server result");
    let sent_parts: Vec<&str> = sent.split_whitespace().collect();
    let got_parts: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(
        sent_parts.get(1..),
        got_parts.get(1..),
        "sent {sent}, got {got}"
    );
    assert_eq!(got_parts[1], bytes.to_string());
    took
}

/// Prints one line per frame received on an interface: src dst ethertype vlan len marker
/// (`vlan`: TPID:VID from PACKET_AUXDATA, or `-`). Skips the namespace's own transmissions.
const SNIFFER: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(263, 8, 1)
s.bind((sys.argv[1], 0))
print("ready", flush=True)
end = time.time() + float(sys.argv[2])
while True:
    t = end - time.time()
    if t <= 0:
        break
    s.settimeout(t)
    try:
        d, anc, fl, addr = s.recvmsg(70000, 256)
    except socket.timeout:
        break
    if addr[2] == 4:
        continue
    vl = "-"
    for lvl, typ, data in anc:
        if lvl == 263 and typ == 8 and len(data) >= 20:
            st, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", data[:20])
            if st & 16:
                vl = "%04x:%d" % (tpid if st & 64 else 0x8100, tci & 0xfff)
    print(d[6:12].hex(), d[0:6].hex(), d[12:14].hex(), vl, len(d), int(b"TSWMARK" in d), flush=True)
print("done", flush=True)
"#;

/// Sends `count` broadcast frames with an 802.1Q/802.1ad tag and a marker payload.
const TAGGED_SENDER: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
src = bytes.fromhex(sys.argv[2])
tpid, vid, count = int(sys.argv[3], 16), int(sys.argv[4]), int(sys.argv[5])
f = b"\xff" * 6 + src + struct.pack("!HH", tpid, vid) + struct.pack("!H", 0x88b5) + b"TSWMARK" + bytes(60)
for i in range(count):
    s.send(f)
    time.sleep(0.05)
"#;

/// A running sniffer; `finish` waits for it and returns its frame lines.
struct Sniffer {
    _proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Sniffer {
    fn start(ns: &Netns, dev: &str, secs: f32) -> Sniffer {
        let mut p = Proc::spawn({
            let mut c = ns.cmd(&[PYTHON, "-c", SNIFFER, dev, &secs.to_string()]);
            c.stdout(Stdio::piped());
            c
        });
        let lines = line_reader(p.stdout());
        expect_line(&lines, "ready", Duration::from_secs(10));
        Sniffer { _proc: p, lines }
    }

    fn finish(self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l == "done" => return out,
                Ok(l) => out.push(l.split_whitespace().map(String::from).collect()),
                Err(_) => panic!("sniffer did not finish"),
            }
        }
    }
}

/// user + system CPU ticks of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ports_table(sw: &Switch) -> String {
    let mut s = String::new();
    for p in sw.ports().as_array().unwrap() {
        s += &format!("{} {} {}\n", p["name"], p["state"], p["counters"]);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Two veth hosts behind packet ports (veth offloads on): ping both ways, iperf3 and a checked
/// TCP transfer (GSO frames with partial checksums pass between two offload ports).
#[test]
fn two_veth_hosts_ping_and_tcp() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.18.1.1");
    let r2 = veth_host(&h2, "198.18.1.2");
    let sw = Switch::start(&[&format!("packet:{}", r1.0), &format!("packet:{}", r2.0)]);
    let t = ping(&h1, "198.18.1.2", Duration::from_secs(10));
    ping(&h2, "198.18.1.1", Duration::from_secs(5));
    eprintln!("first ping answered after {t:?}");

    let _srv = Proc::spawn({
        let mut c = h2.cmd(&["iperf3", "-s", "-B", "198.18.1.2", "-p", "5201"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    });
    let mut bps = None;
    let mut last = String::new();
    for _ in 0..50 {
        let o = h1.run(&["iperf3", "-c", "198.18.1.2", "-p", "5201", "-t", "2", "-J"]);
        // a run that connected before the server was ready can end without a summary
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            bps = v["end"]["sum_received"]["bits_per_second"].as_f64();
            if bps.is_some() {
                break;
            }
        }
        last = String::from_utf8_lossy(&o.stdout).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    let bps = bps.unwrap_or_else(|| panic!("iperf3 never completed a run; last output:\n{last}"));
    eprintln!("iperf3 packet->packet: {:.2} Gbit/s", bps / 1e9);
    assert!(bps > 1e6, "iperf3 {bps} bit/s");

    let took = tcp_transfer(&h1, &h2, "198.18.1.2", 8 << 20);
    eprintln!("8 MiB h1->h2 in {took:?}");
    let took = tcp_transfer(&h2, &h1, "198.18.1.1", 4 << 20);
    eprintln!("4 MiB h2->h1 in {took:?}");
    let table = ports_table(&sw);
    eprintln!("{table}");
    for r in [&r1, &r2] {
        let p = sw.port(&r.0);
        assert_eq!(p["kind"], "packet");
        assert_eq!(p["state"], "up");
        // No false link flap (a pending ENETDOWN from attach) and nothing refused.
        assert_eq!(p["counters"]["link_changes"], 0, "{table}");
        assert_eq!(p["counters"]["tx_dropped"], 0, "{table}");
        assert_eq!(p["counters"]["rx_dropped"], 0, "{table}");
    }
}

/// A packet port with offloads and a plain TAP: GSO frames and partial checksums are finished
/// in software on the way to the TAP, and the data arrives intact.
#[test]
fn packet_to_plain_tap_segments_in_software() {
    if !root_or_skip() {
        return;
    }
    let (ha, hb) = (Netns::new(), Netns::new());
    let ra = veth_host(&ha, "198.18.2.1");
    let tb = uniq("t");
    let sw = Switch::start(&[&format!("packet:{}", ra.0), &format!("{tb},offload=off")]);
    sh(&["ip", "link", "set", &tb, "netns", &hb.0]);
    sh(&[
        "ip",
        "-n",
        &hb.0,
        "addr",
        "add",
        "198.18.2.2/24",
        "dev",
        &tb,
    ]);
    sh(&["ip", "-n", &hb.0, "link", "set", &tb, "up"]);
    ping(&ha, "198.18.2.2", Duration::from_secs(10));

    let took = tcp_transfer(&ha, &hb, "198.18.2.2", 8 << 20);
    eprintln!("8 MiB packet->plain tap in {took:?}");
    let took = tcp_transfer(&hb, &ha, "198.18.2.1", 4 << 20);
    eprintln!("4 MiB plain tap->packet in {took:?}");

    let table = ports_table(&sw);
    eprintln!("{table}");
    let tap = sw.port(&tb);
    let pa = sw.port(&ra.0);
    let drops = &tap["counters"]["tx_dropped_by_reason"];
    assert_eq!(drops["offload"], 0, "{table}");
    assert_eq!(drops["error"], 0, "{table}");
    let tap_tx = tap["counters"]["tx_frames"].as_u64().unwrap();
    let a_rx = pa["counters"]["rx_frames"].as_u64().unwrap();
    assert!(
        tap_tx > a_rx,
        "the TAP sent {tap_tx} frames for {a_rx} read from the packet port: no segmentation?\n{table}"
    );
}

/// A TAP held by another process (a second switch, as QEMU would hold it) is attached; when it
/// is deleted and its holder restarts (a new ifindex), the port re-attaches by itself.
#[test]
fn held_tap_attaches_and_recovers_after_recreation() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.18.3.1");
    let r2 = veth_host(&h2, "198.18.3.2");
    let tn = uniq("t");
    let _tap_link = Link(tn.clone());
    let holder_ports = [tn.clone(), format!("packet:{}", r2.0)];
    let holder_ports: Vec<&str> = holder_ports.iter().map(String::as_str).collect();
    let mut holder = Switch::start_with(&holder_ports, false);
    let sw = Switch::start(&[&format!("packet:{tn}"), &format!("packet:{}", r1.0)]);
    let t = ping(&h1, "198.18.3.2", Duration::from_secs(10));
    eprintln!("through the held TAP: first reply after {t:?}");

    sh(&["ip", "link", "del", &tn]);
    // Traffic while the interface is gone: the port must stay (down, not gone).
    let _ = h1.run(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.3.2"]);
    std::thread::sleep(Duration::from_millis(300));
    let st = sw.port(&tn)["state"].clone();
    assert_ne!(st, "gone", "{}", ports_table(&sw));
    let (status, _) = holder.stop(Duration::from_secs(5));
    assert!(status.is_some(), "holder did not stop");
    drop(holder);

    let t0 = Instant::now();
    let _holder2 = Switch::start_with(&holder_ports, false);
    let t = ping(&h1, "198.18.3.2", Duration::from_secs(15));
    eprintln!(
        "recreated TAP: traffic again {t:?} after the new holder was ready ({:?} since restart)",
        t0.elapsed()
    );
    assert_eq!(sw.port(&tn)["state"], "up", "{}", ports_table(&sw));
    assert!(sw.log_text().contains("re-attached"), "{}", sw.log_text());
}

/// The default busy poll (50 us, adaptive) spins only while frames come close together:
/// after a ping flood the switch goes back to sleeping, and a slow ping costs next to nothing.
#[test]
fn default_busy_poll_sleeps_when_traffic_stops() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.18.4.1");
    let r2 = veth_host(&h2, "198.18.4.2");
    let sw = Switch::start_with(
        &[&format!("packet:{}", r1.0), &format!("packet:{}", r2.0)],
        false,
    );
    ping(&h2, "198.18.4.1", Duration::from_secs(10));
    // Back-to-back frames: the spinner starts.
    let o = h2.run(&[
        "ping",
        "-n",
        "-q",
        "-f",
        "-c",
        "2000",
        "-W",
        "1",
        "198.18.4.1",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2000 received"),
        "ping flood through the switch lost frames: {text}"
    );
    let pid = sw.pid();
    let idle = |what: &str, secs: u64| {
        let c0 = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(secs));
        let used = cpu_ticks(pid) - c0;
        eprintln!("switch CPU over {secs} s {what}: {used} ticks");
        used
    };
    let used = idle("after the flood", 2);
    assert!(
        used < 20,
        "switch used {used} ticks in 2 s of silence: still spinning?"
    );
    // One ping every 0.2 s: frames 200 ms apart never start the spinner.
    let mut slow = h2.cmd(&["ping", "-n", "-q", "-i", "0.2", "-c", "10", "198.18.4.1"]);
    let slow = slow.stdout(Stdio::null()).spawn();
    let used = idle("with a ping every 0.2 s", 2);
    let out = slow.expect("ping").wait_with_output().expect("ping ends");
    assert!(out.status.success(), "slow ping failed");
    assert!(
        used < 20,
        "switch used {used} ticks in 2 s for 10 pings: spinning on light load?"
    );
}

/// The interface disappears just before SIGTERM: no busy loop while it is gone, and the
/// switch exits promptly with status 0.
#[test]
fn interface_deleted_then_sigterm() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.18.4.1");
    let r2 = veth_host(&h2, "198.18.4.2");
    let mut sw = Switch::start(&[&format!("packet:{}", r1.0), &format!("packet:{}", r2.0)]);
    ping(&h2, "198.18.4.1", Duration::from_secs(10));
    sh(&["ip", "link", "del", &r1.0]);
    // Floods towards the deleted interface (ARP for an absent host).
    let _ = h2.run(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.4.9"]);
    let pid = sw.pid();
    let c0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - c0;
    let st = sw.port(&r1.0)["state"].clone();
    eprintln!("CPU over 1 s with the interface gone: {used} ticks; port state {st}");
    assert!(used < 20, "switch used {used} ticks in 1 s: busy loop?");
    assert_ne!(st, "gone");
    let (status, took) = sw.stop(Duration::from_secs(5));
    eprintln!("SIGTERM -> exit in {took:?}: {status:?}");
    let status = status.expect("switch exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// `ip link set X down` on an attached interface stays down (the switch brings it up only at
/// attach); after `ip link set X up`, traffic passes again on the same socket.
#[test]
fn admin_down_is_respected_and_up_recovers() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.18.8.1");
    let r2 = veth_host(&h2, "198.18.8.2");
    let sw = Switch::start(&[&format!("packet:{}", r1.0), &format!("packet:{}", r2.0)]);
    ping(&h1, "198.18.8.2", Duration::from_secs(10));
    sh(&["ip", "link", "set", &r1.0, "down"]);
    let _ = h2.run(&["ping", "-c", "3", "-i", "0.3", "-W", "1", "198.18.8.1"]);
    std::thread::sleep(Duration::from_millis(1500));
    let flags = std::fs::read_to_string(format!("/sys/class/net/{}/flags", r1.0)).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 0, "the switch brought {} back up", r1.0);
    assert_eq!(sw.port(&r1.0)["state"], "down", "{}", ports_table(&sw));
    sh(&["ip", "link", "set", &r1.0, "up"]);
    let t = ping(&h2, "198.18.8.1", Duration::from_secs(10));
    eprintln!("after ip link set up: reply in {t:?}");
    assert_eq!(sw.port(&r1.0)["state"], "up", "{}", ports_table(&sw));
}

/// Frames the host itself sends on an attached interface (ARP, ICMP, IPv6 DAD/RS/MLD) are not
/// forwarded to other ports.
#[test]
fn host_transmissions_are_not_forwarded() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.19.77.1");
    let r2 = veth_host(&h2, "198.19.77.2");
    let _sw = Switch::start(&[&format!("packet:{}", r1.0), &format!("packet:{}", r2.0)]);
    ping(&h1, "198.19.77.2", Duration::from_secs(10));
    let r1_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", r1.0))
        .unwrap()
        .trim()
        .replace(':', "");
    let h1_mac = h1.mac("eth0");
    let tx_path = format!("/sys/class/net/{}/statistics/tx_packets", r1.0);
    let host_tx = || -> u64 {
        std::fs::read_to_string(&tx_path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };

    let sniff = Sniffer::start(&h2, "eth0", 4.0);
    let tx0 = host_tx();
    sh(&["ip", "addr", "add", "198.19.77.100/24", "dev", &r1.0]);
    sh(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "-I",
        &r1.0,
        "198.19.77.1",
    ]);
    let _ = h1.run(&["ping", "-c", "1", "-W", "1", "198.19.77.2"]);
    let host_sent = host_tx() - tx0;
    let frames = sniff.finish();
    let from_host = frames.iter().filter(|f| f[0] == r1_mac).count();
    let from_h1 = frames.iter().filter(|f| f[0] == h1_mac).count();
    eprintln!(
        "host sent {host_sent} frames on {}; h2 saw {from_host} of them and {from_h1} from h1",
        r1.0
    );
    assert!(host_sent >= 4, "the host did not transmit on {}", r1.0);
    assert!(from_h1 >= 1, "sniffer saw nothing from h1: {frames:?}");
    assert_eq!(from_host, 0, "host frames forwarded: {frames:?}");
}

/// Tagged frames keep their tag through packet ports, with and without a virtio_net_hdr.
#[test]
fn vlan_tags_are_restored() {
    if !root_or_skip() {
        return;
    }
    let (h1, h2) = (Netns::new(), Netns::new());
    let r1 = veth_host(&h1, "198.18.6.1");
    let r2 = veth_host(&h2, "198.18.6.2");
    let _sw = Switch::start(&[
        &format!("packet:{},offload=off", r1.0),
        &format!("packet:{}", r2.0),
    ]);
    ping(&h1, "198.18.6.2", Duration::from_secs(10));

    // h1 -> h2: read from the plain port, written to the offload port.
    let sniff = Sniffer::start(&h2, "eth0", 2.0);
    let o = h1.run(&[
        PYTHON,
        "-c",
        TAGGED_SENDER,
        "eth0",
        "020000aa0001",
        "8100",
        "10",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<_> = sniff.finish().into_iter().filter(|f| f[5] == "1").collect();
    eprintln!("h2 got {} tagged frames: {:?}", got.len(), got.first());
    assert!(got.len() >= 4, "{got:?}");
    assert!(
        got.iter().all(|f| f[3] == "8100:10" && f[2] == "88b5"),
        "{got:?}"
    );

    // h2 -> h1: 802.1ad, read with a virtio_net_hdr, written to the plain port.
    let sniff = Sniffer::start(&h1, "eth0", 2.0);
    let o = h2.run(&[
        PYTHON,
        "-c",
        TAGGED_SENDER,
        "eth0",
        "020000bb0002",
        "88a8",
        "20",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<_> = sniff.finish().into_iter().filter(|f| f[5] == "1").collect();
    eprintln!("h1 got {} tagged frames: {:?}", got.len(), got.first());
    assert!(got.len() >= 4, "{got:?}");
    assert!(
        got.iter().all(|f| f[3] == "88a8:20" && f[2] == "88b5"),
        "{got:?}"
    );
}

#[test]
fn missing_or_enslaved_interface_is_refused() {
    if !root_or_skip() {
        return;
    }
    let o = Command::new(TAPSWITCH)
        .args([
            "run",
            "--control",
            "none",
            "--listen",
            "none",
            "--port",
            "packet:pknosuchif0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no interface 'pknosuchif0' in this namespace"),
        "{err}"
    );

    let h1 = Netns::new();
    let r1 = veth_host(&h1, "198.18.7.1");
    let br = Link(uniq("b"));
    sh(&["ip", "link", "add", &br.0, "type", "bridge"]);
    sh(&["ip", "link", "set", &r1.0, "master", &br.0]);
    let mut c = Command::new(TAPSWITCH);
    c.args([
        "run",
        "--control",
        "none",
        "--listen",
        "none",
        "--port",
        &format!("packet:{}", r1.0),
    ]);
    let mut out = String::new();
    let mut child = c
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switch started with an enslaved interface");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("already a port of"), "{out}");
    assert!(out.contains(&br.0), "{out}");
}
