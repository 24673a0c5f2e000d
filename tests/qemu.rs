//! Real QEMU guests (busybox initramfs on Debian's cloud kernel, TCG) talking through
//! tapswitch: ping and a TCP transfer with a content check, attached with `stream:` ports and
//! with `-netdev tap` (QEMU's default vnet_hdr=on) plus `packet:` ports.
//!
//! Slow (a guest boots in a few seconds under TCG), so it runs only with TAPSWITCH_QEMU=1;
//! `.ci/run` turns it on. Guest images are built by tests/qemu/build-guest.sh and cached
//! outside the repo.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::guest::{boot, enabled, image, marker, vhost_net, wait_marker};

static N: AtomicUsize = AtomicUsize::new(0);

struct Guard {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The kernel command line of guest `n` (198.18.7.n) in `role`, plus `extra`.
fn guest_append(n: usize, role: &str, extra: &str) -> String {
    format!(
        "console=ttyS0 quiet panic=-1 ts_ip=198.18.7.{n} ts_peer=198.18.7.1 ts_role={role} ts_bytes=3000000 {extra}"
    )
}

fn qemu(img: &(String, String), n: usize, role: &str, netdev: &str, log: &Path) -> Child {
    boot(
        img,
        &guest_append(n, role, ""),
        &["-netdev".into(), netdev.into()],
        &format!("virtio-net-pci,netdev=n0,mac=52:54:00:7a:00:0{n}"),
        log,
    )
}

fn switch(dir: &Path, ports: &[String]) -> Child {
    let mut args = vec![
        "run".to_string(),
        "--control".into(),
        "none".into(),
        "--no-default-ports".into(),
        "--listen".into(),
        "none".into(),
    ];
    for p in ports {
        args.push("--port".into());
        args.push(p.clone());
    }
    Command::new(env!("CARGO_BIN_EXE_tapswitch"))
        .args(&args)
        .stderr(std::fs::File::create(dir.join("switch.log")).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for both guests to finish and checks ping and the transfer.
fn check(g: &mut Guard, server_log: &Path, client_log: &Path) {
    let t = Instant::now();
    while marker(server_log, "TS_DONE").is_none() || marker(client_log, "TS_DONE").is_none() {
        if t.elapsed() > Duration::from_secs(150) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let show = || {
        format!(
            "server:\n{}\nclient:\n{}\nswitch:\n{}",
            std::fs::read_to_string(server_log).unwrap_or_default(),
            std::fs::read_to_string(client_log).unwrap_or_default(),
            std::fs::read_to_string(g.dir.join("switch.log")).unwrap_or_default()
        )
    };
    assert!(
        marker(client_log, "TS_PING_OK").is_some(),
        "guests could not ping\n{}",
        show()
    );
    let tx = marker(client_log, "TS_TX_SHA");
    let rx = marker(server_log, "TS_RX_SHA");
    assert!(
        tx.is_some() && tx == rx,
        "TCP transfer content differs: sent {tx:?}, received {rx:?}\n{}",
        show()
    );
}

fn tmpdir() -> PathBuf {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tsw-qemu-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn guests_on_stream_ports() {
    if !enabled(false) {
        return;
    }
    let img = image();
    let dir = tmpdir();
    let sock = dir.join("sw.sock");
    let mut g = Guard {
        children: vec![],
        dir: dir.clone(),
    };
    g.children
        .push(switch(&dir, &[format!("vm=stream:{}", sock.display())]));
    let t = Instant::now();
    while !sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "switch did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let netdev = format!(
        "stream,id=n0,server=off,addr.type=unix,addr.path={}",
        sock.display()
    );
    let (s, c) = (dir.join("g1.log"), dir.join("g2.log"));
    g.children.push(qemu(&img, 1, "server", &netdev, &s));
    g.children.push(qemu(&img, 2, "client", &netdev, &c));
    check(&mut g, &s, &c);
}

#[test]
fn guests_on_qemu_taps_attached_as_packet_ports() {
    if !enabled(true) {
        return;
    }
    let img = image();
    let dir = tmpdir();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let taps: Vec<String> = (0..2)
        .map(|i| format!("tq{}{n}{i}", std::process::id() % 100000))
        .collect();
    let mut g = Guard {
        children: vec![],
        dir: dir.clone(),
    };
    let (s, c) = (dir.join("g1.log"), dir.join("g2.log"));
    // QEMU owns the taps (default vnet_hdr=on: GSO frames and partial checksums).
    for (i, (t, log)) in taps.iter().zip([&s, &c]).enumerate() {
        let netdev = format!("tap,id=n0,ifname={t},script=no,downscript=no");
        g.children.push(qemu(
            &img,
            i + 1,
            if i == 0 { "server" } else { "client" },
            &netdev,
            log,
        ));
    }
    let t0 = Instant::now();
    while !taps
        .iter()
        .all(|t| Path::new("/sys/class/net").join(t).exists())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "QEMU did not create its taps"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    g.children.push(switch(
        &dir,
        &taps
            .iter()
            .map(|t| format!("packet:{t}"))
            .collect::<Vec<_>>(),
    ));
    check(&mut g, &s, &c);
}

/// Namespaces made for a test; deleted on drop (after the guard's processes stop).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(st.success(), "{args:?}: {st}");
}

/// The better VLAN peer: a Linux guest whose 8021q module makes VLAN sub-interfaces eth0.10
/// and eth0.20 on a trunk port (`packet:` on QEMU's tap, `trunk=10;20`) pings a namespace host
/// on an access port of each VLAN.
#[test]
fn guest_with_vlan_subinterfaces_on_a_trunk() {
    if !enabled(true) {
        return;
    }
    let img = image();
    let dir = tmpdir();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100000;
    let tap = format!("tv{pid}{n}");
    let (a10, a20) = (format!("tva{pid}{n}"), format!("tvb{pid}{n}"));
    let nss = Namespaces(vec![
        format!("tsq-{pid}-{n}-10"),
        format!("tsq-{pid}-{n}-20"),
    ]);
    let mut g = Guard {
        children: vec![],
        dir: dir.clone(),
    };
    let log = dir.join("guest.log");
    let append = "console=ttyS0 quiet panic=-1 ts_ip=0.0.0.0 ts_role=trunk \
                  ts_vlans=10:198.18.40.1:198.18.40.2,20:198.18.41.1:198.18.41.2";
    g.children.push(boot(
        &img,
        append,
        &[
            "-netdev".into(),
            format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ],
        "virtio-net-pci,netdev=n0,mac=52:54:00:7a:01:01",
        &log,
    ));
    let t0 = Instant::now();
    while !Path::new("/sys/class/net").join(&tap).exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "QEMU made no tap");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut args = vec![
        "run".to_string(),
        "--control".into(),
        "none".into(),
        "--listen".into(),
        "none".into(),
        "--vlan-filtering".into(),
    ];
    for p in [
        format!("{a10},access=10"),
        format!("{a20},access=20"),
        format!("packet:{tap},trunk=10;20"),
    ] {
        args.push("--port".into());
        args.push(p);
    }
    g.children.push(
        Command::new(env!("CARGO_BIN_EXE_tapswitch"))
            .args(&args)
            .stderr(std::fs::File::create(dir.join("switch.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while ![&a10, &a20]
        .iter()
        .all(|t| Path::new("/sys/class/net").join(t).exists())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "switch made no taps"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for ((ns, t), addr) in nss
        .0
        .iter()
        .zip([&a10, &a20])
        .zip(["198.18.40.2", "198.18.41.2"])
    {
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "link", "set", t, "netns", ns]);
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            t,
        ]);
        sh(&["ip", "-n", ns, "link", "set", t, "up"]);
    }
    let t = Instant::now();
    while marker(&log, "TS_DONE").is_none() && t.elapsed() < Duration::from_secs(150) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let show = || {
        format!(
            "guest:\n{text}\nswitch:\n{}",
            std::fs::read_to_string(dir.join("switch.log")).unwrap_or_default()
        )
    };
    for vid in ["10", "20"] {
        assert!(
            text.lines()
                .any(|l| l.trim() == format!("TS_PING_VLAN_OK {vid}")),
            "the guest's eth0.{vid} did not reach the access host of VLAN {vid}\n{}",
            show()
        );
    }
    drop(g);
    drop(nss);
}

/// A QEMU guest on a vhost-user socket (shared memfd guest RAM; `vectors=0`: QEMU 7.2 under TCG
/// crashes starting a vhost-user NIC with MSI-X, there is no irqfd without KVM).
fn qemu_vhost(
    img: &(String, String),
    n: usize,
    role: &str,
    sock: &Path,
    log: &Path,
    extra: &str,
) -> Child {
    let (net, device) = vhost_net(sock, &format!("52:54:00:7a:00:0{n}"));
    boot(img, &guest_append(n, role, extra), &net, &device, log)
}

/// A switch with these ports and a control socket in `dir`.
fn switch_ctl(dir: &Path, ports: &[String]) -> (Child, String) {
    let ctl = dir.join("ctl.sock").display().to_string();
    let mut args = vec![
        "run".to_string(),
        "--control".into(),
        ctl.clone(),
        "--no-default-ports".into(),
        "--listen".into(),
        "none".into(),
    ];
    for p in ports {
        args.push("--port".into());
        args.push(p.clone());
    }
    let child = Command::new(env!("CARGO_BIN_EXE_tapswitch"))
        .args(&args)
        .stderr(std::fs::File::create(dir.join("switch.log")).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !Path::new(&ctl).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "switch did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, ctl)
}

fn port_json(ctl: &str, name: &str) -> serde_json::Value {
    tapswitch::client::get_json(ctl, &format!("/api/v1/ports/{name}")).unwrap_or_default()
}

/// Two guests on vhost-user ports ping and move TCP data with a content check; then the client
/// guest is killed while it pings: the port goes down while a namespace host on a TAP port keeps
/// reaching the other guest through the switch, and a new QEMU on the same socket brings the
/// port back (a second transfer arrives intact) without restarting the switch.
#[test]
fn guests_on_vhost_ports_and_a_guest_restart() {
    if !enabled(true) {
        return;
    }
    let img = image();
    let dir = tmpdir();
    let (a, b) = (dir.join("a.sock"), dir.join("b.sock"));
    let mut g = Guard {
        children: vec![],
        dir: dir.clone(),
    };
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tap = format!("tvr{}{n}", std::process::id() % 100000);
    let (sw, ctl) = switch_ctl(
        &dir,
        &[
            format!("va=vhost:{}", a.display()),
            format!("vb=vhost:{}", b.display()),
            tap.clone(),
        ],
    );
    g.children.push(sw);
    assert_eq!(port_json(&ctl, "va")["state"], "down", "no guest yet");
    // a namespace host on a TAP port: "the others" that must keep being served
    let nss = Namespaces(vec![format!("tsr-{}-{n}", std::process::id())]);
    let ns = &nss.0[0];
    sh(&["ip", "netns", "add", ns]);
    sh(&["ip", "link", "set", &tap, "netns", ns]);
    sh(&["ip", "-n", ns, "addr", "add", "198.18.7.9/24", "dev", &tap]);
    sh(&["ip", "-n", ns, "link", "set", &tap, "up"]);
    let (s, c) = (dir.join("g1.log"), dir.join("g2.log"));
    g.children
        .push(qemu_vhost(&img, 1, "server", &a, &s, "ts_rounds=2"));
    g.children.push(qemu_vhost(&img, 2, "client", &b, &c, ""));
    let t0 = Instant::now();
    assert!(
        wait_marker(&c, "TS_DONE", 1, 150),
        "first guest pair did not finish"
    );
    eprintln!(
        "vhost guests: boot, ping and 3 MB over TCP in {:?}",
        t0.elapsed()
    );
    let tx = marker(&c, "TS_TX_SHA");
    assert!(
        marker(&c, "TS_PING_OK").is_some() && tx.is_some() && wait_marker(&s, "TS_RX_SHA", 1, 30),
        "{}",
        std::fs::read_to_string(dir.join("switch.log")).unwrap_or_default()
    );
    assert_eq!(tx, marker(&s, "TS_RX_SHA"), "transfer 1 content");
    assert_eq!(port_json(&ctl, "vb")["kind"], "vhost");
    // the client guest's QEMU is gone (it powered off); a pinger takes its place, then is killed
    let p = dir.join("g3.log");
    g.children.push(qemu_vhost(&img, 2, "pinger", &b, &p, ""));
    assert!(
        wait_marker(&p, "TS_PONG", 3, 150),
        "the pinger got no replies"
    );
    // the host pings the server guest (on the other vhost port) across the kill
    let host_ping = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "30", "-i", "0.2", "-W", "3",
        ])
        .arg("198.18.7.1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // kill in the middle of it: once replies flow to the host
    let t = Instant::now();
    while port_json(&ctl, &tap)["counters"]["tx_frames"]
        .as_u64()
        .unwrap_or(0)
        < 6
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{}",
            port_json(&ctl, &tap)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut pinger = g.children.pop().expect("pinger");
    let _ = pinger.kill();
    let _ = pinger.wait();
    let t1 = Instant::now();
    let t = Instant::now();
    while port_json(&ctl, "vb")["state"] != "down" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}",
            port_json(&ctl, "vb")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = host_ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let replies = text.lines().filter(|l| l.contains("bytes from")).count();
    eprintln!("a TAP host pinging the other guest across the kill: {replies}/30 replies");
    // the first ARP exchange with a TCG guest may cost a request or two; nothing else may go
    assert!(
        replies >= 27,
        "the switch stopped serving the others: {text}"
    );
    assert_eq!(port_json(&ctl, "va")["state"], "up");
    // a new QEMU on the same socket: the same port comes back
    let c2 = dir.join("g4.log");
    g.children.push(qemu_vhost(&img, 2, "client", &b, &c2, ""));
    assert!(
        wait_marker(&c2, "TS_PING_OK", 1, 150),
        "the restarted guest got no ping through"
    );
    assert_eq!(
        port_json(&ctl, "vb")["state"],
        "up",
        "the same port is up again"
    );
    assert!(
        wait_marker(&c2, "TS_DONE", 1, 150),
        "the restarted guest did not finish"
    );
    eprintln!(
        "guest killed, new QEMU on the same socket: ping + TCP again in {:?}",
        t1.elapsed()
    );
    assert!(wait_marker(&s, "TS_RX_SHA", 2, 30));
    let text = std::fs::read_to_string(&s).unwrap_or_default();
    let second = text
        .lines()
        .filter(|l| l.starts_with("TS_RX_SHA"))
        .nth(1)
        .map(|l| l["TS_RX_SHA".len()..].trim().to_string());
    assert_eq!(marker(&c2, "TS_TX_SHA"), second, "transfer 2 content");
    drop(g);
    drop(nss);
}

/// A guest on a vhost-user port and a namespace host on an offload TAP: TCP both ways, with
/// GSO frames crossing without segmentation (frames on the ports average well above the MTU).
#[test]
fn vhost_guest_and_offload_tap_host_pass_gso_frames() {
    if !enabled(true) {
        return;
    }
    let img = image();
    let dir = tmpdir();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tap = format!("tvh{}{n}", std::process::id() % 100000);
    let sock = dir.join("v.sock");
    let mut g = Guard {
        children: vec![],
        dir: dir.clone(),
    };
    let (sw, ctl) = switch_ctl(&dir, &[format!("vg=vhost:{}", sock.display()), tap.clone()]);
    g.children.push(sw);
    let nss = Namespaces(vec![format!("tsv-{}-{n}", std::process::id())]);
    let ns = &nss.0[0];
    sh(&["ip", "netns", "add", ns]);
    sh(&["ip", "link", "set", &tap, "netns", ns]);
    sh(&["ip", "-n", ns, "addr", "add", "198.18.7.1/24", "dev", &tap]);
    sh(&["ip", "-n", ns, "link", "set", &tap, "up"]);
    // guest -> host: the host runs a TCP sink; the guest (client role) pings and sends 3 MB
    let sink = r#"
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.7.1", 5001)); s.listen(1); s.settimeout(150)
c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256()
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b)
print(h.hexdigest(), flush=True)
"#;
    let server = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", sink])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let c = dir.join("g.log");
    g.children
        .push(qemu_vhost(&img, 2, "client", &sock, &c, "ts_tso_segs=16"));
    let out = server.wait_with_output().unwrap();
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(wait_marker(&c, "TS_TX_SHA", 1, 30));
    assert_eq!(
        marker(&c, "TS_TX_SHA").as_deref(),
        Some(got.as_str()),
        "guest -> host content"
    );
    let v = port_json(&ctl, "vg");
    let (frames, bytes) = (
        v["counters"]["rx_frames"].as_u64().unwrap_or(0),
        v["counters"]["rx_bytes"].as_u64().unwrap_or(0),
    );
    eprintln!("guest -> host: {frames} frames, {bytes} bytes read from the vhost port");
    // An average above 1514 bytes (the largest frame of a 1500-byte MTU) can only come from
    // GSO frames. How large they are is the guest's TCP's choice: TSO autosizing follows its
    // pacing rate (176 frames for 3 MB on a quiet machine, 2337 on a busy CI host, too few
    // above 1514 bytes to lift the average), so the guest asks for 16 segments at least.
    assert!(
        bytes > 3_000_000 && bytes / frames.max(1) > 1514,
        "GSO frames from the guest: {v}"
    );
    let t = port_json(&ctl, &tap);
    assert_eq!(t["counters"]["tx_dropped"], 0, "{t}");
    // host -> guest: a new guest (server role) on the same socket takes 3 MB from the host
    assert!(wait_marker(&c, "TS_DONE", 1, 30));
    let s = dir.join("g2.log");
    g.children
        .push(qemu_vhost(&img, 2, "server", &sock, &s, ""));
    let tx_before = port_json(&ctl, "vg")["counters"]["tx_frames"]
        .as_u64()
        .unwrap_or(0);
    let send = r#"
import hashlib, random, socket, sys, time
data = random.Random(7).randbytes(3000000)
for i in range(300):
    try:
        s = socket.create_connection(("198.18.7.2", 5001), timeout=2); break
    except OSError:
        time.sleep(0.5)
s.settimeout(60); s.sendall(data); s.shutdown(socket.SHUT_WR)
try: s.recv(1)
except OSError: pass
print(hashlib.sha256(data).hexdigest(), flush=True)
"#;
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", send])
        .output()
        .unwrap();
    let sent = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(wait_marker(&s, "TS_RX_SHA", 1, 60), "the guest got nothing");
    assert_eq!(
        marker(&s, "TS_RX_SHA").as_deref(),
        Some(sent.as_str()),
        "host -> guest content"
    );
    let v = port_json(&ctl, "vg");
    let frames = v["counters"]["tx_frames"].as_u64().unwrap_or(0) - tx_before;
    eprintln!("host -> guest: {frames} frames written to the vhost port for 3 MB");
    assert!(
        frames < 3_000_000 / 2000,
        "GSO frames to the guest (not segmented): {v}"
    );
    drop(g);
    drop(nss);
}
