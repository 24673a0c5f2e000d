//! Root: robustness on real TAPs. A MAC flood against a bounded table (memory flat, known
//! unicast unharmed), the per-port learned limit, a slow port that must not block the others
//! (RFC 2889 5.5, head-of-line blocking), and interfaces that are deleted, re-created, taken
//! down and brought up while the switch runs. Each test runs its own switch and namespaces
//! (addresses from 198.19.0.0/16, inside 198.18.0.0/15), bounds every loop in count and time,
//! and removes what it made in `Drop`, also on panic. Without root they skip (with CI=true they
//! fail). The measured numbers are printed (`cargo test -- --nocapture` shows them).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    frame_hex, ifname, link_exists, run, run_ok, sample, wait_until, Host, Netns, Switch, TapGuard,
    TempDir,
};

const BCAST: &str = "ff:ff:ff:ff:ff:ff";
/// IEEE 802 "local experimental" EtherType, for test frames nobody else sends.
const ETH_EXP: u16 = 0x88b5;

// ---------------------------------------------------------------------------------------------
// Helpers of this file.

/// A switch whose TAP ports carry one host each. `specs[i]` is appended to host i's interface
/// name to make its port spec (`""`, `",max-learned=3"`); `extra` are more `tapswitch run`
/// arguments. Host i: 198.19.S.(i+1)/24, MAC 02:52:42:S:00:(i+1). The switch drops first (its
/// TAPs go), then the namespaces.
struct Lab {
    sw: Switch,
    hosts: Vec<Host>,
    subnet: u8,
}

impl Lab {
    fn new(specs: &[&str], extra: &[&str]) -> Lab {
        let nss: Vec<Netns> = specs.iter().map(|_| Netns::new()).collect();
        let names: Vec<String> = (0..specs.len())
            .map(|i| ifname(char::from(b'a' + i as u8)))
            .collect();
        let mut args: Vec<String> = Vec::new();
        for (name, spec) in names.iter().zip(specs) {
            args.push("--port".into());
            args.push(format!("{name}{spec}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let sw = Switch::start(&refs);
        let subnet = (common::unique() % 250 + 1) as u8;
        let hosts = nss
            .into_iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (ns, name))| {
                let cidr = format!("198.19.{subnet}.{}/24", i + 1);
                let mac = format!("02:52:42:{subnet:02x}:00:{:02x}", i + 1);
                Host::attach(ns, name, &cidr, Some(&mac))
            })
            .collect();
        Lab { sw, hosts, subnet }
    }

    fn h(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
}

/// A background command, stopped with SIGTERM (then SIGKILL) on drop. Its stdout and stderr
/// are collected by threads.
struct Bg {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    what: String,
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Bg {
    /// Runs `args` in `ns` under `timeout secs`.
    fn spawn(ns: &Netns, secs: u32, args: &[&str]) -> Bg {
        let t = secs.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "timeout", &t])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {args:?} in {}: {e}", ns.name));
        let out = lines_of(child.stdout.take().expect("stdout"));
        let err = lines_of(child.stderr.take().expect("stderr"));
        Bg {
            child,
            out,
            err,
            what: format!("[{}] {}", ns.name, args.join(" ")),
        }
    }

    /// The next stdout line, waiting `timeout` at most.
    fn line(&self, timeout: Duration) -> Option<String> {
        self.out.recv_timeout(timeout).ok()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end (`timeout` at most; then it is stopped) and returns its stdout and
    /// stderr.
    fn finish(mut self, timeout: Duration) -> (String, String) {
        let deadline = Instant::now() + timeout;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let ended = !self.running();
        if !ended {
            self.stop();
        }
        // The reader threads end at EOF, right after the process.
        std::thread::sleep(Duration::from_millis(50));
        let out: Vec<String> = self.out.try_iter().collect();
        let err: Vec<String> = self.err.try_iter().collect();
        assert!(
            ended,
            "{} did not end within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            out.join("\n"),
            err.join("\n")
        );
        (out.join("\n"), err.join("\n"))
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A ping running in the background: `ping -c count -i interval -W 2 ip` from `h`.
fn ping_bg(h: &Host, ip: &str, count: u32, interval: &str) -> Bg {
    let c = count.to_string();
    Bg::spawn(
        &h.ns,
        60,
        &["ping", "-n", "-q", "-c", &c, "-i", interval, "-W", "2", ip],
    )
}

/// `(transmitted, received)` from ping's summary.
fn ping_counts(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in:\n{out}"));
    let num = |key: &str| -> u64 {
        line.split(',')
            .find(|p| p.contains(key))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no '{key}' in {line:?}"))
    };
    (num("transmitted"), num("received"))
}

/// Resident memory of a process in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Whether the process still runs (not exited, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// A kernel counter of an interface inside a namespace (`rx_packets`, `tx_dropped`...).
fn if_stat(ns: &Netns, ifname: &str, stat: &str) -> u64 {
    ns.ok(&["cat", &format!("/sys/class/net/{ifname}/statistics/{stat}")])
        .trim()
        .parse()
        .expect("a number")
}

/// Sends frames from `iface` at `rate` frames/s (0: as fast as it goes): each argument pair is
/// a frame in hex and how many times to send it; the frames are interleaved. Prints the counts.
const PACED_SENDER: &str = r#"
import socket, sys, time
iface, rate = sys.argv[1], float(sys.argv[2])
a = sys.argv[3:]
frames = [[bytes.fromhex(a[i]), int(a[i + 1])] for i in range(0, len(a), 2)]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0))
sent = [0] * len(frames)
n, start = 0, time.monotonic()
while True:
    more = False
    for i, (f, c) in enumerate(frames):
        if sent[i] < c:
            s.send(f)
            sent[i] += 1
            n += 1
            more = True
    if not more:
        break
    if rate > 0 and n % 50 == 0:
        ahead = n / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
print(" ".join(map(str, sent)), flush=True)
"#;

/// Counts frames received on IFACE for SECONDS with a given destination and source MAC, on a
/// socket with a 32 MiB receive buffer (so a slow python does not lose frames). Prints "ready",
/// then the count.
const BIG_SNIFFER: &str = r#"
import socket, sys, time
iface, secs = sys.argv[1], float(sys.argv[2])
dst = bytes.fromhex(sys.argv[3].replace(":", ""))
src = bytes.fromhex(sys.argv[4].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
s.bind((iface, 3))
print("ready", flush=True)
deadline, n = time.monotonic() + secs, 0
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        d, addr = s.recvfrom(65536)
    except socket.timeout:
        break
    if addr[2] != 4 and d[0:6] == dst and d[6:12] == src:
        n += 1
print(n, flush=True)
"#;

fn mac_bytes(mac: &str) -> Vec<u8> {
    mac.split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC"))
        .collect()
}

/// `02:52:42:S:K:N`: test source MACs of one subnet.
fn test_mac(subnet: u8, k: u8, n: u8) -> String {
    format!("02:52:42:{subnet:02x}:{k:02x}:{n:02x}")
}

// ---------------------------------------------------------------------------------------------
// a. MAC flood against a bounded table.

#[test]
fn mac_flood_keeps_table_and_memory_bounded_and_unicast_flowing() {
    if !common::root_or_skip() {
        return;
    }
    const FDB_MAX: f64 = 4096.0;
    const FRAMES: u32 = 1_000_000;
    const RATE_PPS: u32 = 50_000; // 1,000,000 frames in 20 s
    let lab = Lab::new(&["", "", ""], &["--fdb-max", "4096"]);
    let (a, b, x) = (lab.h(0), lab.h(1), lab.h(2));
    a.ping_ok(&b.ip, 2);
    let pid = lab.sw.pid();
    let rss_before = rss_kib(pid);
    let x_rx_before = lab.sw.counter(&x.ifname, "rx_frames");

    // Random unicast sources (02 then 5 random bytes per frame) to an unknown unicast MAC, so
    // every frame is learned (or hits the limit) and floods to A and B.
    let dir = TempDir::new("flood");
    let cfg = dir.path.join("flood.cfg");
    std::fs::write(
        &cfg,
        "{ 0x02, 0xee, 0x00, 0x00, 0x00, 0x01, 0x02, drnd(5), c16(0x88b5), fill(0x00, 46) }\n",
    )
    .expect("write trafgen config");
    let ping = ping_bg(a, &b.ip, 100, "0.2");
    let started = Instant::now();
    let n = FRAMES.to_string();
    let rate = format!("{RATE_PPS}pps");
    let cfg_s = cfg.display().to_string();
    let mut flood = Bg::spawn(
        &x.ns,
        30,
        &[
            "trafgen",
            "--no-sock-mem",
            "-Q",
            "-P",
            "1",
            "-o",
            &x.ifname,
            "-c",
            &cfg_s,
            "-n",
            &n,
            "-b",
            &rate,
        ],
    );

    // Sample the table and the memory while the flood runs (bounded: 35 s, 4 samples/s).
    struct S {
        t: f64,
        learned: f64,
        hits: f64,
        rss: u64,
    }
    let mut samples: Vec<S> = Vec::new();
    let deadline = started + Duration::from_secs(35);
    while flood.running() && Instant::now() < deadline {
        let m = lab.sw.metrics();
        samples.push(S {
            t: started.elapsed().as_secs_f64(),
            learned: sample(&m, "tapswitch_fdb_learned_entries", &[]).expect("learned"),
            hits: sample(&m, "tapswitch_fdb_learn_limit_hits_total", &[]).expect("hits"),
            rss: rss_kib(pid),
        });
        std::thread::sleep(Duration::from_millis(250));
    }
    let (flood_out, flood_err) = flood.finish(Duration::from_secs(5));
    let flood_secs = started.elapsed().as_secs_f64();
    let (ping_out, _) = ping.finish(Duration::from_secs(30));
    // Let the switch drain what is queued, then take the final numbers.
    std::thread::sleep(Duration::from_millis(300));
    let m = lab.sw.metrics();
    let learned_end = sample(&m, "tapswitch_fdb_learned_entries", &[]).expect("learned");
    let hits_end = sample(&m, "tapswitch_fdb_learn_limit_hits_total", &[]).expect("hits");
    let learned_total = sample(&m, "tapswitch_fdb_learned_total", &[]).expect("learned_total");
    let unknown = sample(
        &m,
        "tapswitch_frames_flooded_total",
        &[("kind", "unknown_unicast")],
    )
    .unwrap_or(0.0);
    let x_rx = lab.sw.counter(&x.ifname, "rx_frames") - x_rx_before;
    let rss_end = rss_kib(pid);
    let x_if_dropped = if_stat(&x.ns, &x.ifname, "tx_dropped");
    let (tx, rx) = ping_counts(&ping_out);

    let full_at = samples.iter().position(|s| s.learned >= FDB_MAX);
    let rss_full = full_at.map(|i| samples[i].rss).unwrap_or(rss_end);
    let rss_max_after_full = full_at
        .map(|i| samples[i..].iter().map(|s| s.rss).max().unwrap_or(rss_end))
        .unwrap_or(rss_end)
        .max(rss_end);
    let rss_min = samples.iter().map(|s| s.rss).min().unwrap_or(rss_end);
    let max_learned_seen = samples.iter().map(|s| s.learned).fold(0.0, f64::max);
    eprintln!(
        "mac flood: trafgen: {} / {}\n  {flood_secs:.1} s, switch read {x_rx} frames from the \
         flooding port (kernel tx_dropped counter of its TAP in the namespace: {x_if_dropped}), {} samples\n  table: \
         learned max seen {max_learned_seen}, end {learned_end}, full after {:.1} s; \
         learned_total {learned_total}, learn_limit_hits {hits_end}, unknown_unicast floods \
         {unknown}\n  VmRSS KiB: before {rss_before}, min {rss_min}, at full {rss_full}, max \
         after full {rss_max_after_full}, end {rss_end}\n  ping A->B during the flood: {tx} \
         sent, {rx} received",
        flood_out.replace('\n', " | "),
        flood_err.lines().last().unwrap_or(""),
        samples.len(),
        full_at.map(|i| samples[i].t).unwrap_or(f64::NAN),
    );

    assert!(
        samples.len() >= 10,
        "too few samples ({}): the flood ended early\n{flood_out}\n{flood_err}",
        samples.len()
    );
    assert!(
        x_rx >= 100_000,
        "the switch read only {x_rx} frames of the flood"
    );
    for s in &samples {
        assert!(
            s.learned <= FDB_MAX,
            "learned entries {} above --fdb-max 4096 at {:.1} s",
            s.learned,
            s.t
        );
    }
    assert!(
        learned_end <= FDB_MAX,
        "learned entries {learned_end} at the end"
    );
    let full = full_at.expect("the table never reached its limit of 4096");
    assert!(
        hits_end > samples[full].hits && hits_end >= (x_rx as f64) - 2.0 * FDB_MAX,
        "learn_limit_hits must grow with every new source once full: {} at full, {hits_end} at \
         the end, {x_rx} frames read",
        samples[full].hits
    );
    let growth = rss_max_after_full.saturating_sub(rss_full);
    assert!(
        growth < 10 * 1024,
        "VmRSS grew {growth} KiB after the table filled ({rss_full} -> {rss_max_after_full})"
    );
    assert_eq!(
        (tx, rx),
        (100, 100),
        "A<->B ping lost packets during the flood"
    );
    // Known unicast still known and forwarded after the flood.
    assert_eq!(lab.sw.fdb_port(&a.mac).as_deref(), Some(a.ifname.as_str()));
    assert_eq!(lab.sw.fdb_port(&b.mac).as_deref(), Some(b.ifname.as_str()));
    a.ping_ok(&b.ip, 2);
    assert!(alive(pid), "the switch died");
}

// ---------------------------------------------------------------------------------------------
// b. Per-port learned limit.

#[test]
fn per_port_max_learned_limits_one_port_only() {
    if !common::root_or_skip() {
        return;
    }
    let lab = Lab::new(&["", "", ",max-learned=3"], &[]);
    let (a, b, l) = (lab.h(0), lab.h(1), lab.h(2));
    let s = lab.subnet;
    let srcs: Vec<String> = (1..=4).map(|n| test_mac(s, 0xa0, n)).collect();
    let port = |h: &Host| lab.sw.port(&h.ifname);
    assert_eq!(port(l)["max_learned"], 3, "{}", port(l));
    assert_eq!(port(a)["max_learned"], 0, "{}", port(a));

    // The TAPs are up in the switch's namespace for a moment before they move, and that
    // namespace's IPv6 may send from their first (random) MAC: start from an empty table.
    let (st, body) = lab.sw.req("DELETE", "/api/v1/fdb", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(port(l)["learned"], 0, "{}", port(l));

    // Three sources are learned on the limited port.
    for src in &srcs[..3] {
        l.send(&frame_hex(BCAST, src, ETH_EXP, b"learn me"), 1);
    }
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            port(l)["learned"] == 3
        }),
        "{}",
        port(l)
    );
    let hits_before = lab.sw.metric("tapswitch_fdb_learn_limit_hits_total", &[]);
    let unknown = [("kind", "unknown_unicast")];
    let uu_before = lab.sw.metric("tapswitch_frames_flooded_total", &unknown);

    // A 4th source: not learned, but its frames still pass (broadcast and unknown unicast),
    // and frames to it are flooded.
    let s4 = srcs[3].as_str();
    let from4_at_a = a.sniff(3, &["--src", s4]);
    let from4_at_b = b.sniff(3, &["--src", s4]);
    let to4_at_b = b.sniff(3, &["--dst", s4]);
    let to4_at_l = l.sniff(3, &["--dst", s4]);
    l.send(&frame_hex(BCAST, s4, ETH_EXP, b"fourth"), 5);
    l.send(&frame_hex(&test_mac(s, 0xee, 1), s4, ETH_EXP, b"fourth"), 5);
    a.send(&frame_hex(s4, &a.mac, ETH_EXP, b"to the fourth"), 4);
    let (fa, fb, tb, tl) = (
        from4_at_a.count(),
        from4_at_b.count(),
        to4_at_b.count(),
        to4_at_l.count(),
    );
    let hits = lab.sw.metric("tapswitch_fdb_learn_limit_hits_total", &[]) - hits_before;
    let uu = lab.sw.metric("tapswitch_frames_flooded_total", &unknown) - uu_before;
    eprintln!(
        "max-learned=3: frames of the 4th source seen at A {fa}, at B {fb}; frames to it seen at \
         B {tb}, at L {tl}; limit hits +{hits}; unknown_unicast floods +{uu}"
    );
    assert_eq!(
        (fa, fb),
        (10, 10),
        "frames of the 4th source must still pass"
    );
    assert_eq!(
        (tb, tl),
        (4, 4),
        "frames to the unlearned source must flood"
    );
    assert_eq!(hits, 10.0, "every frame of the 4th source hits the limit");
    assert!(uu >= 9.0, "unknown unicast floods: +{uu}");
    assert_eq!(lab.sw.fdb_port(s4), None, "the 4th source was learned");
    for src in &srcs[..3] {
        assert_eq!(
            lab.sw.fdb_port(src).as_deref(),
            Some(l.ifname.as_str()),
            "{src}"
        );
    }
    let pl = port(l);
    assert_eq!(
        (pl["learned"].as_u64(), pl["max_learned"].as_u64()),
        (Some(3), Some(3)),
        "{pl}"
    );

    // Other ports are unaffected: B learns 10 sources of its own.
    for n in 1..=10 {
        b.send(&frame_hex(BCAST, &test_mac(s, 0xb0, n), ETH_EXP, b"b"), 1);
    }
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            port(b)["learned"] == 10
        }),
        "{}",
        port(b)
    );
    assert_eq!(port(b)["max_learned"], 0);
    a.ping_ok(&b.ip, 2);
    assert_eq!(port(l)["learned"], 3, "{}", port(l));
}

// ---------------------------------------------------------------------------------------------
// c. A slow port does not block the others (head-of-line blocking, RFC 2889 5.5).

#[test]
fn slow_stream_port_drops_without_blocking_others() {
    if !common::root_or_skip() {
        return;
    }
    const N: u32 = 3000;
    let dir = TempDir::new("hol");
    let sock = dir.path.join("p3.sock");
    let p3_spec = format!("p3=stream:{}", sock.display());
    // P1, P2, P4 are TAP hosts; P3 is a stream connection whose peer never reads.
    let lab = Lab::new(&["", "", ""], &["--port", &p3_spec]);
    let (p1, p2, p4) = (lab.h(0), lab.h(1), lab.h(2));
    let mut p3 = UnixStream::connect(&sock).expect("connect p3.sock");
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            lab.sw.req("GET", "/api/v1/ports/p3-1", None).0 == 200
        }),
        "the stream connection did not become port p3-1"
    );
    // Teach the switch where P3's and P4's MACs are.
    let m3 = test_mac(lab.subnet, 0x33, 3);
    let hello = mac_bytes(BCAST)
        .into_iter()
        .chain(mac_bytes(&m3))
        .chain([0x88, 0xb5])
        .chain([0u8; 46])
        .collect::<Vec<u8>>();
    p3.write_all(&(hello.len() as u32).to_be_bytes())
        .and_then(|_| p3.write_all(&hello))
        .expect("write to p3.sock");
    p4.send(&frame_hex(BCAST, &p4.mac, ETH_EXP, b"here"), 1);
    p1.send(&frame_hex(BCAST, &p1.mac, ETH_EXP, b"here"), 1);
    p2.send(&frame_hex(BCAST, &p2.mac, ETH_EXP, b"here"), 1);
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            lab.sw.fdb_port(&m3).as_deref() == Some("p3-1")
                && lab.sw.fdb_port(&p4.mac).as_deref() == Some(p4.ifname.as_str())
        }),
        "fdb: {:?}",
        lab.sw.fdb()
    );

    let payload = [0x5au8; 1000];
    let to3_from1 = frame_hex(&m3, &p1.mac, ETH_EXP, &payload);
    let to4_from1 = frame_hex(&p4.mac, &p1.mac, ETH_EXP, &payload);
    let to3_from2 = frame_hex(&m3, &p2.mac, ETH_EXP, &payload);
    let p1_rx0 = lab.sw.counter(&p1.ifname, "rx_frames");
    let p2_rx0 = lab.sw.counter(&p2.ifname, "rx_frames");
    let p4_tx0 = lab.sw.counter(&p4.ifname, "tx_frames");
    let p1_if_drop0 = if_stat(&p1.ns, &p1.ifname, "tx_dropped");
    let p2_if_drop0 = if_stat(&p2.ns, &p2.ifname, "tx_dropped");

    let sniff = Bg::spawn(
        &p4.ns,
        30,
        &[
            "python3",
            "-c",
            BIG_SNIFFER,
            &p4.ifname,
            "8",
            &p4.mac,
            &p1.mac,
        ],
    );
    assert_eq!(
        sniff.line(Duration::from_secs(10)).as_deref(),
        Some("ready"),
        "sniffer"
    );
    let n = N.to_string();
    let started = Instant::now();
    let s1 = Bg::spawn(
        &p1.ns,
        25,
        &[
            "python3",
            "-c",
            PACED_SENDER,
            &p1.ifname,
            "4000",
            &to3_from1,
            &n,
            &to4_from1,
            &n,
        ],
    );
    let s2 = Bg::spawn(
        &p2.ns,
        25,
        &[
            "python3",
            "-c",
            PACED_SENDER,
            &p2.ifname,
            "2000",
            &to3_from2,
            &n,
        ],
    );
    let (o1, e1) = s1.finish(Duration::from_secs(20));
    let (o2, e2) = s2.finish(Duration::from_secs(20));
    let send_secs = started.elapsed().as_secs_f64();
    let (got, serr) = sniff.finish(Duration::from_secs(20));
    let got: u64 = got
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("sniffer: {got}\n{serr}"));

    let p1_rx = lab.sw.counter(&p1.ifname, "rx_frames") - p1_rx0;
    let p2_rx = lab.sw.counter(&p2.ifname, "rx_frames") - p2_rx0;
    let p4_tx = lab.sw.counter(&p4.ifname, "tx_frames") - p4_tx0;
    let p3v = lab.sw.port("p3-1");
    let p4v = lab.sw.port(&p4.ifname);
    let p3_queue_full = p3v["counters"]["tx_dropped_by_reason"]["queue_full"]
        .as_u64()
        .unwrap_or(0);
    let p3_tx = p3v["counters"]["tx_frames"].as_u64().unwrap_or(0);
    let p1_if_drop = if_stat(&p1.ns, &p1.ifname, "tx_dropped") - p1_if_drop0;
    let p2_if_drop = if_stat(&p2.ns, &p2.ifname, "tx_dropped") - p2_if_drop0;
    eprintln!(
        "head-of-line: senders P1 [{o1}] P2 [{o2}] in {send_secs:.1} s; switch read P1 {p1_rx}, \
         P2 {p2_rx} (TAP drops before the switch: P1 {p1_if_drop}, P2 {p2_if_drop})\n  P3 \
         (stream, never read): tx {p3_tx}, tx_dropped {}\n  P4: sent to it {N}, written by \
         the switch {p4_tx}, received by its host {got}, tx_dropped {}",
        p3v["counters"]["tx_dropped_by_reason"], p4v["counters"]["tx_dropped"]
    );
    assert!(e1.is_empty() && e2.is_empty(), "senders: {e1}\n{e2}");
    assert_eq!(o1.trim(), format!("{N} {N}"));
    assert_eq!(o2.trim(), format!("{N}"));
    assert_eq!(
        (p1_if_drop, p2_if_drop),
        (0, 0),
        "frames were lost in the senders' TAP queues, before the switch: pace slower"
    );
    assert_eq!(
        p1_rx,
        2 * N as u64,
        "the switch did not read every frame of P1"
    );
    assert_eq!(p2_rx, N as u64, "the switch did not read every frame of P2");
    assert!(
        p3_queue_full > 0,
        "P3 was not overloaded: {}",
        p3v["counters"]
    );
    assert_eq!(p4v["counters"]["tx_dropped"], 0, "{}", p4v["counters"]);
    assert_eq!(p4_tx, N as u64, "frames the switch wrote to P4");
    assert_eq!(got, N as u64, "frames P4's host received");
    // P3 is still attached, and still learned where it is.
    assert_eq!(lab.sw.fdb_port(&m3).as_deref(), Some("p3-1"));
    drop(p3);
}

// ---------------------------------------------------------------------------------------------
// d. Interfaces deleted and re-created, ports removed and added at run time.

#[test]
fn deleted_tap_goes_gone_and_ports_come_and_go_without_loss() {
    if !common::root_or_skip() {
        return;
    }
    let cname = ifname('p');
    let tap = TapGuard::new(&cname);
    let no_v6 = format!("net.ipv6.conf.{cname}.disable_ipv6=1");
    let _ = run("sysctl", &["-qw", &no_v6]);
    let lab = Lab::new(&["", ""], &["--port", &cname]);
    let (a, b) = (lab.h(0), lab.h(1));
    let pid = lab.sw.pid();
    let c = lab.sw.port(&cname);
    assert_eq!(
        (c["state"].as_str(), c["created"].as_bool()),
        (Some("up"), Some(false)),
        "{c}"
    );
    a.ping_ok(&b.ip, 1);

    // Continuous ping A->B across everything below (150 x 0.1 s).
    let ping = ping_bg(a, &b.ip, 150, "0.1");
    std::thread::sleep(Duration::from_millis(300));

    // 1. The persistent TAP is deleted under the switch.
    run_ok("ip", &["link", "del", "dev", &cname]);
    let gone = |sw: &Switch| {
        let st = sw.port(&cname)["state"].as_str().unwrap_or("").to_string();
        st == "gone" || st == "down"
    };
    let noticed_alone = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
        gone(&lab.sw)
    });
    if !noticed_alone {
        // No read woke it: a flood (a broadcast from A) makes it write.
        a.send(&frame_hex(BCAST, &a.mac, ETH_EXP, b"wake"), 1);
    }
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || gone(
            &lab.sw
        )),
        "deleted TAP: {}",
        lab.sw.port(&cname)
    );
    let state_after_del = lab.sw.port(&cname)["state"].clone();
    assert!(alive(pid), "the switch died when the TAP was deleted");
    assert_eq!(lab.sw.req("GET", "/healthz", None).0, 200);

    // 2. Detach it, re-create the interface, attach it again.
    let (st, body) = lab
        .sw
        .req("DELETE", &format!("/api/v1/ports/{cname}"), None);
    assert_eq!(st, 204, "{body}");
    assert_eq!(
        lab.sw.req("GET", &format!("/api/v1/ports/{cname}"), None).0,
        404
    );
    run_ok("ip", &["tuntap", "add", "dev", &cname, "mode", "tap"]);
    let _ = run("sysctl", &["-qw", &no_v6]);
    let (st, body) = lab.sw.req(
        "POST",
        "/api/v1/ports",
        Some(&format!("{{\"spec\": \"{cname}\"}}")),
    );
    assert_eq!(st, 201, "{body}");
    let c = lab.sw.port(&cname);
    assert_eq!(
        (c["state"].as_str(), c["created"].as_bool()),
        (Some("up"), Some(false)),
        "{c}"
    );

    // 2b. Deleted again: a `gone` port is replaced by attaching it again, no DELETE needed.
    run_ok("ip", &["link", "del", "dev", &cname]);
    let is_gone = |sw: &Switch| sw.port(&cname)["state"].as_str() == Some("gone");
    for _ in 0..3 {
        if wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
            is_gone(&lab.sw)
        }) {
            break;
        }
        a.send(&frame_hex(BCAST, &a.mac, ETH_EXP, b"wake"), 1);
    }
    assert!(is_gone(&lab.sw), "{}", lab.sw.port(&cname));
    run_ok("ip", &["tuntap", "add", "dev", &cname, "mode", "tap"]);
    let _ = run("sysctl", &["-qw", &no_v6]);
    let (st, body) = lab.sw.req(
        "POST",
        "/api/v1/ports",
        Some(&format!("{{\"spec\": \"{cname}\"}}")),
    );
    assert_eq!(st, 201, "a gone port is replaced: {body}");
    assert_eq!(lab.sw.port(&cname)["state"].as_str(), Some("up"));
    // A port that is not gone still conflicts.
    let (st, body) = lab.sw.req(
        "POST",
        "/api/v1/ports",
        Some(&format!("{{\"spec\": \"{cname}\"}}")),
    );
    assert_eq!(st, 409, "{body}");

    // 3. More ports come and go (TAPs the switch creates and removes).
    let mut cycles = 0;
    for i in 0..5 {
        let name = ifname(char::from(b'q' + i));
        let (st, body) = lab.sw.req(
            "POST",
            "/api/v1/ports",
            Some(&format!("{{\"spec\": \"{name},hairpin\"}}")),
        );
        assert_eq!(st, 201, "{body}");
        assert!(link_exists(&name), "{name} was not created");
        std::thread::sleep(Duration::from_millis(200));
        let (st, body) = lab.sw.req("DELETE", &format!("/api/v1/ports/{name}"), None);
        assert_eq!(st, 204, "{body}");
        assert!(
            wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
                !link_exists(&name)
            }),
            "{name} stayed after DELETE"
        );
        cycles += 1;
    }

    // 4. The re-attached TAP carries traffic: move it into a namespace and ping A from it.
    let cns = Netns::new();
    let chost = Host::attach(cns, &cname, &format!("198.19.{}.3/24", lab.subnet), None);
    chost.ping_ok(&a.ip, 2);
    let (out, _) = ping.finish(Duration::from_secs(30));
    let (tx, rx) = ping_counts(&out);
    let c = lab.sw.port(&cname);
    eprintln!(
        "delete/re-create: state after delete {state_after_del} (noticed without traffic: \
         {noticed_alone}); re-attached state {}; {cycles} add/remove cycles; ping A->B \
         throughout: {tx} sent, {rx} received",
        c["state"]
    );
    assert_eq!(
        (tx, rx),
        (150, 150),
        "A<->B lost pings while ports came and went"
    );
    assert_eq!(c["state"], "up", "{c}");
    assert!(c["counters"]["rx_frames"].as_u64() >= Some(2), "{c}");
    assert!(alive(pid));
    // The switch stops before the namespaces go (fields of `lab`); then the host with the
    // persistent TAP, which deletes it; the guard finds nothing left.
    drop(lab);
    drop(chost);
    drop(tap);
    assert!(!link_exists(&cname));
}

#[test]
fn link_down_and_up_is_seen_and_others_keep_forwarding() {
    if !common::root_or_skip() {
        return;
    }
    let lab = Lab::new(&["", "", ""], &[]);
    let (a, b, d) = (lab.h(0), lab.h(1), lab.h(2));
    a.ping_ok(&d.ip, 1);
    a.ping_ok(&b.ip, 1);
    let ping = ping_bg(a, &b.ip, 60, "0.1");
    let changes0 = lab.sw.counter(&d.ifname, "link_changes");
    let mut down_seen = 0;
    let mut up_seen = 0;
    for _ in 0..3 {
        d.ns.ip(&["link", "set", "dev", &d.ifname, "down"]);
        // The switch follows the link itself: no frame has to be written to the downed TAP.
        assert!(
            wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
                lab.sw.port(&d.ifname)["state"] == "down"
            }),
            "{}",
            lab.sw.port(&d.ifname)
        );
        down_seen += 1;
        assert!(
            wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
                lab.sw.fdb_port(&d.mac).is_none()
            }),
            "a down port keeps its entries"
        );
        d.ns.ip(&["link", "set", "dev", &d.ifname, "up"]);
        assert!(
            wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
                a.ping(&d.ip, 1).status.success() && lab.sw.port(&d.ifname)["state"] == "up"
            }),
            "{}",
            lab.sw.port(&d.ifname)
        );
        up_seen += 1;
    }
    let (out, _) = ping.finish(Duration::from_secs(20));
    let (tx, rx) = ping_counts(&out);
    let dv = lab.sw.port(&d.ifname);
    let changes = dv["counters"]["link_changes"].as_u64().unwrap_or(0) - changes0;
    eprintln!(
        "link flaps: {down_seen} down / {up_seen} up seen, link_changes +{changes}, port_down \
         drops {}; ping A->B throughout: {tx} sent, {rx} received",
        dv["counters"]["tx_dropped_by_reason"]["port_down"]
    );
    assert_eq!(changes, 6, "{dv}");
    assert_eq!((tx, rx), (60, 60), "A<->B lost pings while D flapped");
}

/// The kernel tells a TAP's reader at once that its interface was deleted: the fd polls as
/// EPOLLERR (no EPOLLIN), and a read returns EBADFD. The switch waits for error readiness as
/// well as readability, so the port becomes `gone` without any frame written to it.
#[test]
fn deleted_tap_is_seen_gone_without_traffic() {
    if !common::root_or_skip() {
        return;
    }
    let cname = ifname('g');
    let _tap = TapGuard::new(&cname);
    let _ = run(
        "sysctl",
        &["-qw", &format!("net.ipv6.conf.{cname}.disable_ipv6=1")],
    );
    let lab = Lab::new(&[""], &["--port", &cname]);
    assert_eq!(lab.sw.port(&cname)["state"], "up");
    run_ok("ip", &["link", "del", "dev", &cname]);
    // Nothing is sent to the port: only the kernel's notice can tell the switch.
    let seen = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        lab.sw.port(&cname)["state"] == "gone"
    });
    assert!(
        seen,
        "5 s after its interface was deleted the port is still {}",
        lab.sw.port(&cname)["state"]
    );
}

#[test]
fn sighup_attaches_declared_taps_that_are_gone_or_detached() {
    if !common::root_or_skip() {
        return;
    }
    let name = ifname('h');
    let dir = TempDir::new("hup");
    let cfg = dir.path.join("sw.toml");
    std::fs::write(&cfg, format!("[[port]]\nname = \"{name}\"\n")).expect("write config");
    let cfg = cfg.to_str().expect("utf-8 path");
    let sw = Switch::start(&["--config", cfg]);
    let hup = || run_ok("kill", &["-HUP", &sw.pid().to_string()]);
    // None while the port does not exist: a reload replaces a gone port by removing it and
    // attaching it again, so a GET can fall between the two.
    let state = |sw: &Switch| {
        let (st, body) = sw.req("GET", &format!("/api/v1/ports/{name}"), None);
        (st == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
            .flatten()
            .and_then(|v| v["state"].as_str().map(str::to_string))
    };
    assert_eq!(state(&sw).as_deref(), Some("up"));

    // Detached through the API: the file still declares it, so a reload attaches it again.
    let (st, body) = sw.req("DELETE", &format!("/api/v1/ports/{name}"), None);
    assert_eq!(st, 204, "{body}");
    assert_eq!(sw.req("GET", &format!("/api/v1/ports/{name}"), None).0, 404);
    hup();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            sw.req("GET", &format!("/api/v1/ports/{name}"), None).0 == 200
        }),
        "not attached again after SIGHUP"
    );
    assert_eq!(state(&sw).as_deref(), Some("up"));

    // Its interface deleted: `gone`; a reload re-creates it.
    run_ok("ip", &["link", "del", "dev", &name]);
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            state(&sw).as_deref() == Some("gone")
        }),
        "{:?}",
        state(&sw)
    );
    hup();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            state(&sw).as_deref() == Some("up") && link_exists(&name)
        }),
        "not re-created after SIGHUP: {:?}",
        state(&sw)
    );
}
