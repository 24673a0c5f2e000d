//! Shared harness of the root tests: real TAPs moved into network namespaces.
//!
//! Everything it creates has a unique name (process id + counter) and an RAII guard that
//! removes it in `Drop`, also while a test panics: [`Netns`] (a namespace), [`Switch`] (a
//! `tapswitch run` process, stopped with SIGTERM), [`Topo`] (a switch and its hosts; the switch
//! stops first so that its TAPs go before their namespaces), [`TapGuard`] (a persistent TAP) and
//! [`Sniffer`] (a `pkt.py sniff` process). Hosts get addresses from 198.18.0.0/15 only, and
//! every command that could wait runs under `timeout`.
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared harness"
)]

pub mod guest;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The raw-frame tool.
pub const PKT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/pkt.py");
/// The switch binary under test.
pub const TAPSWITCH: &str = env!("CARGO_BIN_EXE_tapswitch");

/// Upper bound for any single command run inside a namespace (seconds, via `timeout`).
const CMD_TIMEOUT_SECS: u32 = 25;

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether root tests can run: as root, yes. Otherwise they skip with a message, or fail when
/// `CI=true` (CI runs them as root, so a skip there would hide them).
pub fn root_or_skip() -> bool {
    if euid() == Some(0) {
        return true;
    }
    let name = test_name();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{name}: root tests must run in CI (CI=true, but the effective uid is not 0)");
    }
    eprintln!("SKIP: {name} needs root (real TAPs and network namespaces)");
    false
}

/// Whether an external tool (promtool, prometheus) is there: missing fails with `CI=true` and
/// skips with a message otherwise.
pub fn tool_or_skip(path: &str) -> bool {
    if std::path::Path::new(path).exists() {
        return true;
    }
    let name = test_name();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{name}: {path} is missing (install Debian's 'prometheus' package)");
    }
    eprintln!("SKIP: {name} needs {path} (Debian package 'prometheus')");
    false
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number unique within this process.
pub fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A unique interface name (at most 15 bytes): `t<pid>x<n><suffix>`.
pub fn ifname(suffix: char) -> String {
    let n = unique();
    let name = format!("t{}x{}{}", std::process::id() % 100_000, n % 1000, suffix);
    assert!(name.len() <= 15, "{name} is too long for an interface");
    name
}

/// A free loopback TCP address (bind port 0, then let it go).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let a = l.local_addr().expect("local_addr");
    format!("127.0.0.1:{}", a.port())
}

fn show(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command and returns its output (a failure to spawn panics).
pub fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog} {args:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(prog: &str, args: &[&str]) -> String {
    let out = run(prog, args);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("{prog} {}", args.join(" ")), &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a network interface of this name exists in the current (host) namespace.
pub fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).status.success()
}

/// Polls `f` every `every` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `tsw-<pid>-<n>` with IPv6 off (so hosts send nothing on their own but ARP).
    pub fn new() -> Netns {
        let name = format!("tsw-{}-{}", std::process::id(), unique());
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ok(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace (under `timeout`); returns its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        let t = CMD_TIMEOUT_SECS.to_string();
        let mut all = vec!["netns", "exec", &self.name, "timeout", &t];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs a command inside the namespace that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{}",
            show(&format!("[{}] {}", self.name, args.join(" ")), &out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n NS ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ok("ip", &all)
    }

    /// Starts a long-running command in the namespace with piped stdout and stderr.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let t = CMD_TIMEOUT_SECS.to_string();
        Command::new("ip")
            .args(["netns", "exec", &self.name, "timeout", &t])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {args:?} in {}: {e}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = run("ip", &["netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!("{}", show(&format!("ip netns del {}", self.name), &out));
        }
    }
}

/// Collected stderr of a child, filled by a reader thread.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<String>>);

impl Log {
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn push(&self, line: &str) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.push_str(line);
        s.push('\n');
    }
}

/// Reads `r` line by line into `log` in a thread; sends `()` on `ready` at the first line
/// containing "ready".
fn collect_lines(r: impl Read + Send + 'static, log: Log, ready: Option<mpsc::Sender<()>>) {
    std::thread::spawn(move || {
        let mut ready = ready;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            log.push(&line);
            // the switch's "INFO ready switch=..." line; a bare "ready" also matched the
            // error "address already in use" (a CI run took a failing start for a ready one)
            if line.contains(" ready ") {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
}

/// Collects a child's stderr into `log`, line by line, in a thread.
pub fn collect_stderr(r: impl Read + Send + 'static, log: Log) {
    collect_lines(r, log, None);
}

pub fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for a child up to `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// A running `tapswitch run`, stopped with SIGTERM on drop (SIGKILL after 5 s).
pub struct Switch {
    child: Option<Child>,
    /// Its TCP listener (reads).
    pub api: String,
    /// Its control socket (every call).
    pub ctl: String,
    pub log: Log,
}

/// A unique control socket path for a test switch.
pub fn ctl_path() -> String {
    std::env::temp_dir()
        .join(format!("tsw-ctl-{}-{}.sock", std::process::id(), unique()))
        .display()
        .to_string()
}

impl Switch {
    /// Starts `tapswitch run --listen <free> ARGS` and waits (10 s at most) for its "ready".
    pub fn start(args: &[&str]) -> Switch {
        let api = free_addr();
        Switch::start_on(&api, args)
    }

    /// As [`Switch::start`] with a given listen address.
    pub fn start_on(api: &str, args: &[&str]) -> Switch {
        let ctl = ctl_path();
        let mut child = Command::new(TAPSWITCH)
            .args(["run", "--listen", api, "--control", &ctl])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("TAPSWITCH_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapswitch");
        let log = Log::default();
        let (tx, rx) = mpsc::channel();
        collect_lines(child.stderr.take().expect("stderr"), log.clone(), Some(tx));
        let mut sw = Switch {
            child: Some(child),
            api: api.to_string(),
            ctl,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return sw;
            }
            if let Ok(Some(st)) = sw.child.as_mut().expect("child").try_wait() {
                // Let the reader catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                sw.child = None;
                panic!(
                    "tapswitch {args:?} exited ({st}) before ready:\n{}",
                    sw.log.text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "tapswitch {args:?} not ready within 10 s:\n{}",
                    sw.log.text()
                );
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits (5 s at most; then SIGKILL); returns how it ended.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        sigterm(child.id());
        match wait_timeout(&mut child, Duration::from_secs(5)) {
            Some(s) => Some(s),
            None => {
                let id = child.id();
                let _ = child.kill();
                let _ = child.wait();
                // a switch that does not stop on SIGTERM is a bug every test should catch
                // (unless the test is failing already)
                if !std::thread::panicking() {
                    panic!(
                        "tapswitch {id} ignored SIGTERM for 5 s:\n{}",
                        self.log.text()
                    );
                }
                None
            }
        }
    }

    /// GET of a JSON document of the API.
    pub fn get(&self, path: &str) -> Value {
        tapswitch::client::get_json(&self.api, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}\nswitch log:\n{}", self.log.text()))
    }

    /// Any request, on the control socket; returns status and body.
    pub fn req(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        tapswitch::client::request(&self.ctl, method, path, body, None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
    }

    /// Any request on the TCP listener (with a token, if given); returns status and body.
    pub fn req_tcp(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        tapswitch::client::request(&self.api, method, path, body, token)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let (st, body) = self.req("GET", "/metrics", None);
        assert_eq!(st, 200, "/metrics: {body}");
        body
    }

    /// One sample of `/metrics` (panics if missing).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.metrics();
        sample(&text, name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
    }

    /// The API view of one port.
    pub fn port(&self, name: &str) -> Value {
        self.get(&format!("/api/v1/ports/{name}"))
    }

    /// A counter of one port from the API (`rx_frames`, `tx_dropped`...).
    pub fn counter(&self, port: &str, key: &str) -> u64 {
        self.port(port)["counters"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("port {port}: no counter {key}"))
    }

    /// A by-reason drop counter of one port from the API (`dir` is "rx" or "tx").
    pub fn dropped(&self, port: &str, dir: &str, reason: &str) -> u64 {
        self.port(port)["counters"][format!("{dir}_dropped_by_reason")][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("port {port}: no {dir} drop reason {reason}"))
    }

    /// The forwarding table (every page).
    pub fn fdb(&self) -> Vec<Value> {
        tapswitch::client::get_all_pages(&self.api, "/api/v1/fdb?limit=10000", 10_000)
            .unwrap_or_else(|e| panic!("GET /api/v1/fdb: {e:#}\nswitch log:\n{}", self.log.text()))
    }

    /// The port the table has for `mac` (vlan 0), if any.
    pub fn fdb_port(&self, mac: &str) -> Option<String> {
        self.fdb()
            .iter()
            .find(|e| e["mac"].as_str() == Some(mac) && e["vlan"].as_u64() == Some(0))
            .and_then(|e| e["port"].as_str().map(str::to_string))
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.ctl);
    }
}

/// Runs `tapswitch ARGS` that is expected to fail (10 s at most; becoming ready panics).
/// Returns the exit status and stderr.
pub fn tapswitch_fails(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(TAPSWITCH)
        .args(args)
        .env_remove("TAPSWITCH_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tapswitch");
    let log = Log::default();
    let (tx, rx) = mpsc::channel();
    collect_lines(child.stderr.take().expect("stderr"), log.clone(), Some(tx));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            return (st, log.text());
        }
        if rx.try_recv().is_ok() || Instant::now() >= deadline {
            sigterm(child.id());
            if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!(
                "tapswitch {args:?} was expected to fail but ran:\n{}",
                log.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a `tapswitch` client command (10 s at most via `timeout`); returns the output.
pub fn tapswitch_cmd(args: &[&str]) -> Output {
    let mut all = vec!["10", TAPSWITCH];
    all.extend_from_slice(args);
    run("timeout", &all)
}

/// The value of one sample in Prometheus text: `name{l1="v1",...} value` with the labels in
/// the given order (the order the switch writes them).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_string()
    } else {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", l.join(","))
    };
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// One host: a namespace holding one of the switch's TAPs, with an address and a fixed MAC.
pub struct Host {
    pub ifname: String,
    pub ip: String,
    pub mac: String,
    pub ns: Netns,
}

impl Host {
    /// Moves the switch's TAP `ifname` into `ns`, sets `mac` (if any) and `cidr`, and brings it
    /// and `lo` up.
    pub fn attach(ns: Netns, ifname: &str, cidr: &str, mac: Option<&str>) -> Host {
        run_ok("ip", &["link", "set", "dev", ifname, "netns", &ns.name]);
        Host::attach_here(ns, ifname, cidr, mac)
    }

    /// As [`Host::attach`] for an interface already in `ns`.
    pub fn attach_here(ns: Netns, ifname: &str, cidr: &str, mac: Option<&str>) -> Host {
        if let Some(m) = mac {
            ns.ip(&["link", "set", "dev", ifname, "address", m]);
        }
        ns.ip(&["addr", "add", cidr, "dev", ifname]);
        ns.ip(&["link", "set", "dev", ifname, "up"]);
        ns.ip(&["link", "set", "dev", "lo", "up"]);
        let mac = ns
            .ip(&["-j", "link", "show", "dev", ifname])
            .split("\"address\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("MAC in ip -j link")
            .to_string();
        Host {
            ifname: ifname.to_string(),
            ip: cidr.split('/').next().unwrap_or(cidr).to_string(),
            mac,
            ns,
        }
    }

    /// `ping -c COUNT` to `ip` (0.2 s apart, 2 s reply wait); returns the output.
    pub fn ping(&self, ip: &str, count: u32) -> Output {
        let c = count.to_string();
        self.ns
            .exec(&["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "2", ip])
    }

    /// Pings that must all be answered.
    pub fn ping_ok(&self, ip: &str, count: u32) {
        let out = self.ping(ip, count);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&format!("{count} received")),
            "{}",
            show(&format!("[{}] ping {ip} -c {count}", self.ns.name), &out)
        );
    }

    /// Sends a raw frame COUNT times with pkt.py.
    pub fn send(&self, hex: &str, count: u32) {
        let c = count.to_string();
        self.ns
            .ok(&["python3", PKT_PY, "send", &self.ifname, hex, &c]);
    }

    /// Sends a raw frame COUNT times at PPS frames a second; returns the seconds it took.
    pub fn send_paced(&self, hex: &str, count: u32, pps: u32) -> f64 {
        let (c, r) = (count.to_string(), pps.to_string());
        let out = self
            .ns
            .ok(&["python3", PKT_PY, "send", &self.ifname, hex, &c, &r]);
        out.split_whitespace()
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0)
    }

    /// Starts pkt.py sniff on this host's interface and waits until it listens.
    pub fn sniff(&self, secs: u32, filters: &[&str]) -> Sniffer {
        let s = secs.to_string();
        let mut args = vec!["python3", PKT_PY, "sniff", &self.ifname, &s];
        args.extend_from_slice(filters);
        Sniffer::start(self.ns.spawn(&args))
    }
}

/// A running `pkt.py sniff`; killed on drop.
pub struct Sniffer {
    child: Child,
    lines: mpsc::Receiver<String>,
    err: Log,
}

impl Sniffer {
    fn start(mut child: Child) -> Sniffer {
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = Log::default();
        collect_lines(child.stderr.take().expect("stderr"), err.clone(), None);
        let s = Sniffer {
            child,
            lines: rx,
            err,
        };
        match s.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.trim() == "ready" => s,
            other => panic!(
                "sniffer did not get ready: {other:?}\nstderr:\n{}",
                s.err.text()
            ),
        }
    }

    /// Waits for the count it prints when its time is up.
    pub fn count(self) -> u64 {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("sniffer printed {l:?}\n{}", self.err.text())),
            Err(e) => panic!("sniffer gave no count: {e}\nstderr:\n{}", self.err.text()),
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        // SIGTERM reaches `timeout`, which passes it on to python.
        sigterm(self.child.id());
        if wait_timeout(&mut self.child, Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A switch with one TAP port per host, each host in its own namespace on 198.18.S.0/24
/// (host i: 198.18.S.(i+1), MAC 02:54:53:S:00:(i+1)). Fields drop in order: the switch stops
/// first (its TAPs vanish), then the namespaces go.
pub struct Topo {
    pub sw: Switch,
    pub hosts: Vec<Host>,
    pub subnet: u8,
}

impl Topo {
    /// `n` hosts; `flags` are extra `tapswitch run` arguments.
    pub fn new(n: usize, flags: &[&str]) -> Topo {
        // Namespaces first: if starting the switch panics, they are still removed.
        let nss: Vec<Netns> = (0..n).map(|_| Netns::new()).collect();
        let names: Vec<String> = (0..n).map(|i| ifname(char::from(b'a' + i as u8))).collect();
        let mut args: Vec<&str> = Vec::new();
        for name in &names {
            args.push("--port");
            args.push(name);
        }
        args.extend_from_slice(flags);
        let sw = Switch::start(&args);
        let subnet = (unique() % 250 + 1) as u8;
        let hosts = nss
            .into_iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (ns, name))| {
                let cidr = format!("198.18.{subnet}.{}/24", i + 1);
                let mac = format!("02:54:53:{subnet:02x}:00:{:02x}", i + 1);
                Host::attach(ns, name, &cidr, Some(&mac))
            })
            .collect();
        // The switch follows the links (it reads them every 100 ms): a host's first frame
        // floods only to ports it already sees up, so wait for every port to be up.
        let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            names.iter().all(|n| sw.port(n)["state"] == "up")
        });
        assert!(up, "the hosts' ports did not come up:\n{}", sw.log.text());
        Topo { sw, hosts, subnet }
    }

    /// Host `i`.
    pub fn h(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
}

/// An Ethernet frame in hex: dst, src, ethertype, then a payload of `fill` bytes.
pub fn frame_hex(dst: &str, src: &str, ethertype: u16, payload: &[u8]) -> String {
    let mut s = String::new();
    s.push_str(&dst.replace(':', ""));
    s.push_str(&src.replace(':', ""));
    s.push_str(&format!("{ethertype:04x}"));
    for b in payload {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A persistent TAP made with `ip tuntap add`, deleted on drop.
pub struct TapGuard {
    pub name: String,
}

impl TapGuard {
    pub fn new(name: &str) -> TapGuard {
        run_ok("ip", &["tuntap", "add", "dev", name, "mode", "tap"]);
        TapGuard {
            name: name.to_string(),
        }
    }
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        let _ = run("ip", &["tuntap", "del", "dev", &self.name, "mode", "tap"]);
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "tapswitch-{tag}-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Kills a child on drop (used for Prometheus and helper servers).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        sigterm(self.0.id());
        if wait_timeout(&mut self.0, Duration::from_secs(5)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A TCP sink on port 5001 of `argv[1]`: prints "ready", then "BYTES SHA256" of what it got.
pub const TCP_SERVER: &str = r#"
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001))
s.listen(1)
s.settimeout(20)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(20)
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

/// Sends `argv[2]` pseudo-random bytes to `argv[1]`:5001; prints "BYTES SHA256".
pub const TCP_CLIENT: &str = r#"
import hashlib, random, socket, sys
data = random.Random(20240613).randbytes(int(sys.argv[2]))
s = socket.create_connection((sys.argv[1], 5001), timeout=20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.recv(1)  # the server closes after reading everything
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

/// Sends `size` bytes over TCP from `a` to `b` (port 5001) and returns (sent, received) as
/// "BYTES SHA256" lines; they must be equal.
pub fn tcp_transfer(a: &Host, b: &Host, size: usize) -> (String, String) {
    let mut server = ChildGuard(b.ns.spawn(&["python3", "-c", TCP_SERVER, &b.ip]));
    let (tx, rx) = mpsc::channel();
    let out = server.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).as_deref(),
        Ok("ready"),
        "TCP server did not start"
    );
    let client =
        a.ns.ok(&["python3", "-c", TCP_CLIENT, &b.ip, &size.to_string()]);
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server result");
    (client.trim().to_string(), got.trim().to_string())
}
