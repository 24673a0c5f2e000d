//! Rootless: QEMU's stream and dgram protocols against a running switch (`stream:` and
//! `dgram:` ports), including partial and coalesced frames, bad lengths, disconnect and
//! reconnect, and a peer that stops reading.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tapswitch::client::get_json;

static N: AtomicUsize = AtomicUsize::new(0);

struct Rig {
    child: Child,
    dir: PathBuf,
    api: String,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rig {
    fn start(extra: &[&str]) -> Rig {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tsw-sock-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let api = format!("127.0.0.1:{}", free_port());
        let s = format!("vm=stream:{}", dir.join("s.sock").display());
        let d = format!("g=dgram:{}", dir.join("d.sock").display());
        let mut args = vec![
            "run",
            "--control",
            "none",
            "--no-default-ports",
            "--listen",
            &api,
            "--port",
            &s,
            "--port",
            &d,
        ];
        args.extend_from_slice(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_tapswitch"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rig = Rig { child, dir, api };
        let t = Instant::now();
        while get_json(&rig.api, "/healthz").is_err()
            && tapswitch::client::request(&rig.api, "GET", "/healthz", None, None).is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "switch did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rig
    }

    fn stream(&self) -> UnixStream {
        let s = UnixStream::connect(self.dir.join("s.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    }

    fn ports(&self) -> Vec<String> {
        get_json(&self.api, "/api/v1/ports")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn wait_ports(&self, n: usize) {
        let t = Instant::now();
        while self.ports().len() != n {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "expected {n} ports, have {:?}",
                self.ports()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn fdb_ports(&self) -> Vec<(String, String)> {
        get_json(&self.api, "/api/v1/fdb")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["mac"].as_str().unwrap().to_string(),
                    e["port"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn frame(dst: [u8; 6], src: [u8; 6], len: usize, tag: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.resize(len, tag);
    f
}

fn framed(f: &[u8]) -> Vec<u8> {
    let mut v = (f.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(f);
    v
}

fn read_frame(s: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a frame");
    let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut f).unwrap();
    f
}

const BCAST: [u8; 6] = [0xff; 6];
const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

#[test]
fn stream_peers_exchange_frames_split_and_coalesced() {
    let rig = Rig::start(&[]);
    let mut a = rig.stream();
    let mut b = rig.stream();
    rig.wait_ports(2);
    // A broadcasts, written one byte at a time (half frames per read)
    let f1 = frame(BCAST, A, 60, 1);
    for byte in framed(&f1) {
        a.write_all(&[byte]).unwrap();
    }
    assert_eq!(read_frame(&mut b), f1);
    // B sends two frames to A in one write (coalesced), both unicast now known
    let f2 = frame(A, B, 1514, 2);
    let f3 = frame(A, B, 14, 3); // a runt passes unpadded
    let mut both = framed(&f2);
    both.extend(framed(&f3));
    b.write_all(&both).unwrap();
    assert_eq!(read_frame(&mut a), f2);
    assert_eq!(read_frame(&mut a), f3);
    let fdb = rig.fdb_ports();
    assert!(
        fdb.contains(&("02:00:00:00:00:0a".into(), "vm-1".into())),
        "{fdb:?}"
    );
    assert!(
        fdb.contains(&("02:00:00:00:00:0b".into(), "vm-2".into())),
        "{fdb:?}"
    );
}

#[test]
fn bad_length_ends_only_that_connection_and_reconnect_is_a_new_port() {
    let rig = Rig::start(&[]);
    let mut a = rig.stream();
    let mut b = rig.stream();
    rig.wait_ports(2);
    b.write_all(&framed(&frame(BCAST, B, 60, 1))).unwrap();
    assert_eq!(read_frame(&mut a).len(), 60);
    // a length of 0 is a protocol error: the switch closes B only
    b.write_all(&[0, 0, 0, 0]).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(b.read(&mut buf).unwrap_or(0), 0, "B's connection is closed");
    rig.wait_ports(1);
    assert!(
        !rig.fdb_ports().iter().any(|(_, p)| p == "vm-2"),
        "B's entries are flushed"
    );
    // a length above 65535 too
    let mut c = rig.stream();
    rig.wait_ports(2);
    c.write_all(&[0, 1, 0, 0]).unwrap();
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    rig.wait_ports(1);
    // B reconnects: a new port, and frames flow again
    let mut b2 = rig.stream();
    rig.wait_ports(2);
    assert!(
        rig.ports().contains(&"vm-4".to_string()),
        "{:?}",
        rig.ports()
    );
    b2.write_all(&framed(&frame(A, B, 100, 4))).unwrap();
    assert_eq!(read_frame(&mut a), frame(A, B, 100, 4));
    // A disconnecting flushes its entries
    a.write_all(&framed(&frame(BCAST, A, 60, 5))).unwrap();
    assert_eq!(read_frame(&mut b2).len(), 60);
    drop(a);
    rig.wait_ports(1);
    assert!(!rig
        .fdb_ports()
        .iter()
        .any(|(m, _)| m == "02:00:00:00:00:0a"));
}

#[test]
fn dgram_peers_are_ports_and_talk_to_stream_peers() {
    let rig = Rig::start(&[]);
    let mut a = rig.stream();
    rig.wait_ports(1);
    let g1 = UnixDatagram::bind(rig.dir.join("g1.sock")).unwrap();
    g1.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    g1.connect(rig.dir.join("d.sock")).unwrap();
    let g2 = UnixDatagram::bind(rig.dir.join("g2.sock")).unwrap();
    g2.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    g2.connect(rig.dir.join("d.sock")).unwrap();
    g1.send(&frame(BCAST, B, 60, 1)).unwrap();
    assert_eq!(read_frame(&mut a), frame(BCAST, B, 60, 1));
    g2.send(&frame(BCAST, C, 60, 2)).unwrap();
    assert_eq!(read_frame(&mut a), frame(BCAST, C, 60, 2));
    let mut buf = [0u8; 2000];
    // g1 also got g2's broadcast: each sender path is its own port
    let n = g1.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &frame(BCAST, C, 60, 2)[..]);
    // stream A answers B: only g1 gets it
    a.write_all(&framed(&frame(B, A, 80, 3))).unwrap();
    let n = g1.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &frame(B, A, 80, 3)[..]);
    g2.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        g2.recv(&mut buf).is_err(),
        "known unicast does not reach g2"
    );
    let ports = rig.ports();
    assert!(
        ports.contains(&"g-1".to_string()) && ports.contains(&"g-2".to_string()),
        "{ports:?}"
    );
}

#[test]
fn a_peer_that_stops_reading_does_not_stall_the_others() {
    let rig = Rig::start(&[]);
    let mut a = rig.stream();
    let mut b = rig.stream();
    let slow = rig.stream(); // never reads
    rig.wait_ports(3);
    let big = frame(BCAST, A, 1500, 7);
    let reader = std::thread::spawn(move || {
        for _ in 0..2000 {
            assert_eq!(read_frame(&mut b).len(), 1500);
        }
    });
    // paced bursts a reading peer keeps up with; the silent one's queue fills and overflows
    for _ in 0..40 {
        let mut wire = Vec::new();
        for _ in 0..50 {
            wire.extend(framed(&big));
        }
        a.write_all(&wire).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    reader.join().expect("the reading peer got every frame");
    let ports = get_json(&rig.api, "/api/v1/ports").unwrap();
    let slow_port = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vm-3")
        .unwrap();
    assert!(
        slow_port["counters"]["tx_dropped_by_reason"]["queue_full"]
            .as_u64()
            .unwrap()
            > 0,
        "{slow_port}"
    );
    drop(slow);
}

#[test]
fn max_conns_and_stale_socket_file() {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tsw-stale-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // a stale socket file from an earlier run is replaced
    drop(std::os::unix::net::UnixListener::bind(dir.join("s.sock")).unwrap());
    let api = format!("127.0.0.1:{}", free_port());
    let spec = format!(
        "vm=stream:{},max-conns=2,mode=0600",
        dir.join("s.sock").display()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_tapswitch"))
        .args([
            "run",
            "--control",
            "none",
            "--no-default-ports",
            "--listen",
            &api,
            "--port",
            &spec,
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rig = Rig {
        child,
        api,
        dir: dir.clone(),
    };
    let t = Instant::now();
    while tapswitch::client::request(&rig.api, "GET", "/healthz", None, None).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("s.sock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let _a = rig.stream();
    let _b = rig.stream();
    rig.wait_ports(2);
    let mut c = rig.stream();
    let mut buf = [0u8; 1];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "the third connection is refused"
    );
    assert_eq!(rig.ports().len(), 2);
}

#[test]
fn sighup_reloads_ports_and_settings_from_the_config_file() {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tsw-hup-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sw.toml");
    let api = format!("127.0.0.1:{}", free_port());
    let write = |ports: &[&str], ageing: u32| {
        let mut t = format!("listen = \"{api}\"\nageing_secs = {ageing}\n");
        for p in ports {
            t += &format!(
                "[[port]]\nspec = \"{p}=stream:{}\"\n",
                dir.join(format!("{p}.sock")).display()
            );
        }
        std::fs::write(&cfg, t).unwrap();
    };
    write(&["a", "b"], 300);
    let child = Command::new(env!("CARGO_BIN_EXE_tapswitch"))
        .args(["run", "--control", "none", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rig = Rig {
        child,
        dir: dir.clone(),
        api: api.clone(),
    };
    let t = Instant::now();
    while tapswitch::client::request(&api, "GET", "/healthz", None, None).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let listeners = || {
        let mut v: Vec<String> = get_json(&api, "/api/v1/listeners")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listeners(), ["a", "b"]);
    let _conn_a = UnixStream::connect(dir.join("a.sock")).unwrap();
    write(&["a", "c"], 42);
    Command::new("kill")
        .args(["-HUP", &rig.child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    while listeners() != ["a", "c"] {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "reload did not happen: {:?}",
            listeners()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.join("b.sock").exists(), "b's socket file is removed");
    assert_eq!(get_json(&api, "/api/v1/config").unwrap()["ageing_secs"], 42);
    assert_eq!(rig.ports(), ["a-1"], "a's connection was not disturbed");
    // a broken file keeps the running configuration
    std::fs::write(&cfg, "bogus = 1\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &rig.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listeners(), ["a", "c"]);
    assert!(tapswitch::client::request(&api, "GET", "/healthz", None, None).is_ok());
}

/// Issue 24 item 1, dgram ports: a QEMU that exits leaves its port down (not removed), and
/// a QEMU started again on the same path brings the same port back up and gets floods before
/// its guest sends anything.
#[test]
fn dgram_peer_goes_down_with_its_socket_and_comes_back_on_the_same_path() {
    let rig = Rig::start(&[]);
    let mut a = rig.stream();
    rig.wait_ports(1);
    let gpath = rig.dir.join("g1.sock");
    let g1 = UnixDatagram::bind(&gpath).unwrap();
    g1.connect(rig.dir.join("d.sock")).unwrap();
    g1.send(&frame(BCAST, B, 60, 1)).unwrap();
    assert_eq!(read_frame(&mut a), frame(BCAST, B, 60, 1));
    let port = |key: &str| -> serde_json::Value {
        get_json(&rig.api, "/api/v1/ports/g-1").unwrap()[key].clone()
    };
    assert_eq!(port("state"), "up");
    // QEMU exits: its socket file stays behind with nobody bound to it
    drop(g1);
    let t = Instant::now();
    while port("state") != "down" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still {}",
            port("state")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // a broadcast while it is down is not written to it (no port_down drop)
    a.write_all(&framed(&frame(BCAST, A, 60, 2))).unwrap();
    // QEMU again on the same path; its guest sends nothing
    std::fs::remove_file(&gpath).unwrap();
    let g1 = UnixDatagram::bind(&gpath).unwrap();
    g1.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    while port("state") != "up" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still {}",
            port("state")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.write_all(&framed(&frame(BCAST, A, 60, 3))).unwrap();
    let mut buf = [0u8; 2000];
    let n = g1.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &frame(BCAST, A, 60, 3)[..]);
    assert_eq!(rig.ports(), vec!["vm-1".to_string(), "g-1".to_string()]);
    let c = port("counters");
    assert_eq!(c["tx_dropped_by_reason"]["port_down"], 0, "{c}");
    assert!(c["link_changes"].as_u64().unwrap() >= 2, "{c}");
}
