//! Root: live captures and port mirrors on a real switch with namespace hosts, read by the real
//! tools (tcpdump, tshark). Without root they skip (with CI=true they fail).
//!
//! - marker frames injected on one port come back from `GET /api/v1/capture` byte for byte, as
//!   tcpdump (`-xx`) and tshark (fields) read them, with the ports' names and directions;
//! - the filters (direction, port, VLAN, MAC, EtherType) select exactly what they say, with
//!   several captures running at once; `count` and `duration` end the stream;
//! - a reader that stops reading loses frames (counted in the metrics and in the stream's
//!   closing statistics) while a ping between two hosts loses nothing;
//! - `tapswitch capture ... -w - | tcpdump -r -` shows frames live;
//! - a mirror: a monitor host on the output port sees exactly the copies of the selected
//!   traffic, nothing else; the output port's own frames go nowhere; deleting the mirror stops
//!   the copies; `[[mirror]]` in the configuration file, applied again on SIGHUP.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{frame_hex, Switch, Topo};
use tapswitch::capture::pcap::{Direction, Event, Reader};

const BCAST: &str = "ff:ff:ff:ff:ff:ff";
/// IEEE 802 "local experimental" EtherTypes, for test frames nobody else sends.
const EXP1: u16 = 0x88b5;
const EXP2: u16 = 0x88b6;

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is missing (tests/run.sh installs tcpdump and tshark)"
        );
        eprintln!("SKIP: {name} is not installed");
    }
    ok
}

/// A 60-byte frame (46 bytes of payload with `marker` first) as hex and as bytes.
fn marked(dst: &str, src: &str, ethertype: u16, marker: u32) -> (String, Vec<u8>) {
    let mut payload = vec![0u8; 46];
    payload[..4].copy_from_slice(&marker.to_be_bytes());
    payload[4..8].copy_from_slice(b"TSWC");
    let hex = frame_hex(dst, src, ethertype, &payload);
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    (hex, bytes)
}

/// A frame with an 802.1Q tag (VID `vid`, inner EtherType `inner`), 64 bytes.
fn tagged_hex(dst: &str, src: &str, vid: u16, inner: u16, marker: u32) -> String {
    let mut payload = Vec::new();
    payload.extend_from_slice(&vid.to_be_bytes());
    payload.extend_from_slice(&inner.to_be_bytes());
    payload.extend_from_slice(&marker.to_be_bytes());
    payload.extend_from_slice(&[0; 42]);
    frame_hex(dst, src, 0x8100, &payload)
}

/// Opens a capture on the switch's control socket (the capture runs once this returns).
fn open(sw: &Switch, query: &str) -> Box<dyn Read + Send> {
    let path = format!("/api/v1/capture?{query}");
    let (status, mut body) = tapswitch::client::open_stream(&sw.ctl, &path, None)
        .unwrap_or_else(|e| panic!("{path}: {e:#}"));
    if status != 200 {
        let mut t = String::new();
        let _ = body.read_to_string(&mut t);
        panic!("{path}: HTTP {status}: {t}");
    }
    body
}

/// Reads a stream to its end in a thread (bounded by `limit`); returns the bytes.
fn collect(mut body: Box<dyn Read + Send>, limit: Duration) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = body.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    let (tx2, rx2) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx2.send(rx.recv_timeout(limit).unwrap_or_default());
    });
    rx2
}

fn events(bytes: &[u8]) -> Vec<Event> {
    let mut r = Reader::new();
    r.feed(bytes);
    let mut v = Vec::new();
    while let Some(e) = r.next().expect("a valid capture stream") {
        v.push(e);
    }
    assert_eq!(r.buffered(), 0, "the stream ends inside a block");
    v
}

/// A captured frame: port, direction, bytes.
type Seen = (String, Option<Direction>, Vec<u8>);

/// (port, direction, frame) of every packet in a stream.
fn packets(ev: &[Event]) -> Vec<Seen> {
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::new();
    for e in ev {
        match e {
            Event::Interface { id, name, .. } => {
                names.insert(*id, name.clone().unwrap_or_default());
            }
            Event::Packet {
                iface, dir, data, ..
            } => out.push((names[iface].clone(), *dir, data.clone())),
            Event::Stats { .. } => {}
        }
    }
    out
}

fn hex_to_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The frames `tcpdump -r FILE -xx` prints, as bytes.
fn tcpdump_frames(file: &std::path::Path) -> Vec<Vec<u8>> {
    let out = Command::new("tcpdump")
        .args(["-n", "-xx", "-r"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("0x") {
            // "0x0010:  0001 0203 ...  ascii"
            let hex = rest.split_once(":  ").map(|x| x.1).unwrap_or("");
            let hex = hex.split("  ").next().unwrap_or("").replace(' ', "");
            frames
                .last_mut()
                .expect("hex before a header line")
                .extend(hex_to_bytes(&hex));
        } else {
            frames.push(Vec::new());
        }
    }
    frames
}

/// `tshark -r FILE -T fields` lines: interface name, direction flags, and the frame rebuilt
/// from eth.dst, eth.src, eth.type and the payload (data.data).
fn tshark_frames(file: &std::path::Path) -> Vec<(String, String, Vec<u8>)> {
    let out = Command::new("tshark")
        .args([
            "-r",
            &file.display().to_string(),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.packet_flags_direction",
            "-e",
            "eth.dst",
            "-e",
            "eth.src",
            "-e",
            "eth.type",
            "-e",
            "data.data",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let mut frame = hex_to_bytes(&f[2].replace(':', ""));
            frame.extend(hex_to_bytes(&f[3].replace(':', "")));
            let et = u16::from_str_radix(f[4].trim_start_matches("0x"), 16).unwrap();
            frame.extend(et.to_be_bytes());
            frame.extend(hex_to_bytes(f[5]));
            (f[0].to_string(), f[1].to_string(), frame)
        })
        .collect()
}

#[test]
fn marker_frames_come_back_byte_for_byte_in_tcpdump_and_tshark() {
    if !common::root_or_skip() || !tool("tcpdump") || !tool("tshark") {
        return;
    }
    let t = Topo::new(2, &[]);
    let (a, b) = (t.h(0), t.h(1));
    let n = 5u32;
    let body = open(
        &t.sw,
        &format!(
            "port={}&port={}&ethertype=0x88b5&count={}",
            a.ifname,
            b.ifname,
            2 * n
        ),
    );
    let done = collect(body, Duration::from_secs(20));
    let mut expected = Vec::new();
    for i in 0..n {
        let (hex, bytes) = marked(BCAST, &a.mac, EXP1, 0xC0DE_0000 + i);
        a.send(&hex, 1);
        expected.push((a.ifname.clone(), Some(Direction::Inbound), bytes.clone()));
        expected.push((b.ifname.clone(), Some(Direction::Outbound), bytes));
    }
    let t0 = Instant::now();
    let bytes = done.recv().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "count did not end the stream"
    );
    let ev = events(&bytes);
    assert_eq!(packets(&ev), expected, "our reader");
    let dir = common::TempDir::new("cap");
    let file = dir.path.join("c.pcapng");
    std::fs::write(&file, &bytes).unwrap();
    let want: Vec<Vec<u8>> = expected.iter().map(|e| e.2.clone()).collect();
    assert_eq!(tcpdump_frames(&file), want, "tcpdump -xx");
    let ts = tshark_frames(&file);
    let want_ts: Vec<(String, String, Vec<u8>)> = expected
        .iter()
        .map(|(p, d, f)| {
            let flags = if *d == Some(Direction::Inbound) {
                "0x00000001"
            } else {
                "0x00000002"
            };
            (p.clone(), flags.to_string(), f.clone())
        })
        .collect();
    assert_eq!(ts, want_ts, "tshark");
    // classic pcap on request: same bytes, no names
    let body = open(
        &t.sw,
        &format!("port={}&ethertype=0x88b5&count=1&format=pcap", a.ifname),
    );
    let done = collect(body, Duration::from_secs(20));
    let (hex, bytes) = marked(BCAST, &a.mac, EXP1, 0xC0DE_0100);
    a.send(&hex, 1);
    let got = done.recv().unwrap();
    assert_eq!(
        &got[..4],
        &0xa1b2_3c4du32.to_le_bytes(),
        "nanosecond pcap magic"
    );
    let file = dir.path.join("c.pcap");
    std::fs::write(&file, &got).unwrap();
    assert_eq!(tcpdump_frames(&file), [bytes]);
}

#[test]
fn filters_select_exactly_and_duration_ends_the_stream() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(3, &[]);
    let (a, b, c) = (t.h(0), t.h(1), t.h(2));
    let secs = 4.0;
    // several captures at once, each ended by its duration
    let q = |extra: &str| format!("ethertype=0x88b5&duration={secs}{extra}");
    let qs = [
        // every frame of EtherType 0x88b5 (also inside a tag), both directions, every port
        q(""),
        // VLAN 10 only
        format!("vlan=10&duration={secs}"),
        // a's MAC, received only
        format!("mac={}&direction=rx&duration={secs}", a.mac),
        // written to b only
        format!("port={}&direction=tx&duration={secs}", b.ifname),
    ];
    let started = Instant::now();
    let streams: Vec<_> = qs
        .iter()
        .map(|q| collect(open(&t.sw, q), Duration::from_secs(30)))
        .collect();
    // a: 5 untagged 0x88b5 and 4 tagged VLAN 10 (inner 0x88b5), broadcast: to b and c
    // b: 3 untagged 0x88b6 to a's MAC (unknown unicast: flooded to a and c)
    let (h1, _) = marked(BCAST, &a.mac, EXP1, 1);
    a.send(&h1, 5);
    a.send(&tagged_hex(BCAST, &a.mac, 10, EXP1, 2), 4);
    let (h3, _) = marked(&a.mac, &b.mac, EXP2, 3);
    b.send(&h3, 3);
    let results: Vec<Vec<Seen>> = streams
        .into_iter()
        .map(|s| packets(&events(&s.recv().unwrap())))
        .collect();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs_f64(secs - 0.5) && took < Duration::from_secs_f64(secs + 5.0),
        "duration {secs} s took {took:?}"
    );
    let count = |r: &Vec<Seen>, port: &str, d: Direction| {
        r.iter()
            .filter(|(p, dir, _)| p == port && *dir == Some(d))
            .count()
    };
    use Direction::{Inbound as In, Outbound as Out};
    // 1: 9 in on a, 9 out on b, 9 out on c; b's 0x88b6 not at all
    let r = &results[0];
    assert_eq!(r.len(), 27, "{r:?}");
    assert_eq!(
        (
            count(r, &a.ifname, In),
            count(r, &b.ifname, Out),
            count(r, &c.ifname, Out)
        ),
        (9, 9, 9)
    );
    // 2: VLAN 10: 4 in on a, 4 out on b and on c
    let r = &results[1];
    assert_eq!(r.len(), 12, "{r:?}");
    assert!(r
        .iter()
        .all(|(_, _, f)| f[12..16] == [0x81, 0x00, 0x00, 0x0a]));
    // 3: a's MAC, received: a's 9 in on a, and b's 3 (to a) in on b
    let r = &results[2];
    assert_eq!(
        (r.len(), count(r, &a.ifname, In), count(r, &b.ifname, In)),
        (12, 9, 3),
        "{r:?}"
    );
    // 4: written to b: a's 9
    let r = &results[3];
    assert_eq!((r.len(), count(r, &b.ifname, Out)), (9, 9), "{r:?}");
    assert_eq!(
        t.sw.metric("tapswitch_captures_active", &[]),
        0.0,
        "ended captures free their slots"
    );
}

#[test]
fn a_slow_reader_loses_frames_not_the_switch() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(3, &[]);
    let (a, b, c) = (t.h(0), t.h(1), t.h(2));
    a.ping_ok(&b.ip, 1);
    // c's big frames go to a MAC the table has on c's own port: dropped by the switch
    // (same_port), so they load the capture and nothing else
    let sink = "02:00:00:00:ee:01";
    let (st, body) = t.sw.req(
        "POST",
        "/api/v1/fdb",
        Some(&format!(
            r#"{{"mac": "{sink}", "port": "{}", "kind": "static"}}"#,
            c.ifname
        )),
    );
    assert_eq!(st, 201, "{body}");
    // a capture of every port that nobody reads until its 10 s are over
    let slow = open(&t.sw, "duration=10");
    let started = Instant::now();
    let ping = {
        let ns = a.ns.name.clone();
        let ip = b.ip.clone();
        std::thread::spawn(move || {
            common::run(
                "ip",
                &[
                    "netns", "exec", &ns, "ping", "-n", "-q", "-c", "30", "-i", "0.1", "-W", "2",
                    &ip,
                ],
            )
        })
    };
    let big = frame_hex(sink, &c.mac, EXP1, &[0x5a; 1486]);
    for _ in 0..3 {
        c.send(&big, 20_000);
    }
    let out = ping.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("30 received"),
        "ping during the slow capture: {text}"
    );
    let dropped = t.sw.metric("tapswitch_capture_dropped_total", &[]);
    assert!(dropped > 0.0, "a reader that does not read loses frames");
    // what the switch read from c (the TAP's queue may have dropped some of the 60,000)
    let c_rx = t.sw.counter(&c.ifname, "rx_frames");
    let flood = t.sw.dropped(&c.ifname, "rx", "same_port");
    assert!(
        c_rx - flood < 5,
        "c sent little else: {c_rx} read, {flood} of its flood"
    );
    assert!(c_rx > 10_000, "c's flood reached the switch: {c_rx}");
    // read it now: the stream ends at its duration with the drops in its statistics
    let left = Duration::from_secs(10).saturating_sub(started.elapsed());
    let bytes = collect(slow, left + Duration::from_secs(20))
        .recv()
        .unwrap();
    let ev = events(&bytes);
    let isb_dropped: u64 = ev
        .iter()
        .filter_map(|e| match e {
            Event::Stats { dropped, .. } => *dropped,
            _ => None,
        })
        .sum();
    assert_eq!(
        isb_dropped as f64, dropped,
        "the stream reports what it lost"
    );
    // c's frames in, 30 pings and 30 replies in and out; a few ARP frames may come too
    let seen = packets(&ev).len() as u64 + isb_dropped;
    assert!(
        (c_rx + 120..c_rx + 140).contains(&seen),
        "every frame delivered or counted as dropped: {seen}"
    );
}

#[test]
fn the_capture_command_pipes_into_tcpdump_live() {
    if !common::root_or_skip() || !tool("tcpdump") {
        return;
    }
    let t = Topo::new(2, &[]);
    let (a, b) = (t.h(0), t.h(1));
    let cmd = format!(
        "{} capture --control {} {} --ethertype 0x88b5 -c 4 -w - | tcpdump -n -l -e -r -",
        common::TAPSWITCH,
        t.sw.ctl,
        b.ifname
    );
    let mut child = common::ChildGuard(
        Command::new("timeout")
            .args(["30", "sh", "-c", &cmd])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let stderr = common::Log::default();
    common::collect_stderr(child.0.stderr.take().unwrap(), stderr.clone());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // the capture starts before the command prints anything: wait until the switch has it
    assert!(
        common::wait_until(Duration::from_secs(10), Duration::from_millis(50), || t
            .sw
            .metric("tapswitch_captures_active", &[])
            == 1.0),
        "the capture did not start: {}",
        stderr.text()
    );
    let (h1, _) = marked(BCAST, &a.mac, EXP1, 7);
    a.send(&h1, 1);
    // live: tcpdump prints the frame while the capture still runs
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("tcpdump printed nothing live; stderr: {}", stderr.text()));
    assert!(
        first.contains(&format!("{} > ff:ff:ff:ff:ff:ff", a.mac)) && first.contains("0x88b5"),
        "{first}"
    );
    assert_eq!(t.sw.metric("tapswitch_captures_active", &[]), 1.0);
    // b answers three times (to a: b's port sees them inbound); 4 frames end it
    let (h2, _) = marked(&a.mac, &b.mac, EXP1, 8);
    b.send(&h2, 3);
    let mut lines = vec![first];
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
        // (tcpdump adds the payload in hex for an unknown EtherType)
        if !l.starts_with('\t') {
            lines.push(l);
        }
    }
    assert_eq!(lines.len(), 4, "{lines:?}\n{}", stderr.text());
    let st = child.0.wait().unwrap();
    assert!(st.success(), "{}", stderr.text());
    assert!(
        stderr.text().contains("4 frames captured, 0 dropped"),
        "{}",
        stderr.text()
    );
}

#[test]
fn capture_errors_and_authorization() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(1, &[]);
    let (st, body) = t.sw.req("GET", "/api/v1/capture?port=nope", None);
    assert_eq!(st, 404, "{body}");
    let (st, body) = t.sw.req("GET", "/api/v1/capture?count=0", None);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("'count'"), "{body}");
    // over TCP a capture needs the token, as changes do
    let (st, body) = t.sw.req_tcp("GET", "/api/v1/capture", None, None);
    assert_eq!(st, 403, "{body}");
    // the ninth at once is refused; closing one frees its slot
    let mut open_ones: Vec<_> = (0..8).map(|_| open(&t.sw, "")).collect();
    let (st, body) = t.sw.req("GET", "/api/v1/capture", None);
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("8 captures are running already"), "{body}");
    open_ones.pop();
    assert!(
        common::wait_until(Duration::from_secs(5), Duration::from_millis(20), || t
            .sw
            .metric("tapswitch_captures_active", &[])
            == 7.0),
        "a closed capture keeps its slot"
    );
    drop(open(&t.sw, "count=1"));
}

#[test]
fn a_mirror_copies_exactly_the_selected_traffic() {
    if !common::root_or_skip() {
        return;
    }
    let t = Topo::new(4, &[]);
    let (a, b, c, mon) = (t.h(0), t.h(1), t.h(2), t.h(3));
    // every MAC known, so unicast goes to one port
    for h in [a, b, c, mon] {
        let (x, _) = marked(BCAST, &h.mac, EXP2, 0);
        h.send(&x, 1);
    }
    let add = common::tapswitch_cmd(&[
        "mirror",
        "add",
        "m1",
        "src",
        &a.ifname,
        "dst",
        &b.ifname,
        "output",
        &mon.ifname,
        "--control",
        &t.sw.ctl,
    ]);
    assert!(add.status.success(), "{add:?}");
    let show = common::tapswitch_cmd(&["mirror", "show", "--control", &t.sw.ctl]);
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        show.contains(&format!(
            "m1: src {} dst {} output {} frames 0 dropped 0",
            a.ifname, b.ifname, mon.ifname
        )),
        "{show}"
    );
    let sniff = mon.sniff(4, &["--ethertype", "0x88b5"]);
    let (ab, _) = marked(&b.mac, &a.mac, EXP1, 1);
    let (cb, _) = marked(&b.mac, &c.mac, EXP1, 2);
    let (ca, _) = marked(&a.mac, &c.mac, EXP1, 3);
    let (ac, _) = marked(&c.mac, &a.mac, EXP1, 4);
    a.send(&ab, 20); // received on a and sent to b: 20 copies (once each)
    c.send(&cb, 7); // sent to b: 7 copies
    c.send(&ca, 5); // neither: none
    a.send(&ac, 6); // received on a: 6 copies
    assert_eq!(sniff.count(), 33, "copies on the monitor port");
    assert_eq!(
        t.sw.metric("tapswitch_mirror_frames_total", &[("mirror", "m1")]),
        33.0
    );
    assert_eq!(
        t.sw.metric("tapswitch_mirror_dropped_total", &[("mirror", "m1")]),
        0.0
    );
    // the monitor's own frames go nowhere (a positive control first: c's frame reaches a)
    let sniff_a = a.sniff(3, &["--ethertype", "0x88b6"]);
    let (x, _) = marked(BCAST, &mon.mac, EXP2, 9);
    mon.send(&x, 5);
    let (y, _) = marked(&a.mac, &c.mac, EXP2, 10);
    c.send(&y, 1);
    assert_eq!(sniff_a.count(), 1, "only c's frame reaches a");
    assert_eq!(t.sw.dropped(&mon.ifname, "rx", "mirror_output"), 5);
    // deleting the mirror stops it
    let del = common::tapswitch_cmd(&["mirror", "del", "m1", "--control", &t.sw.ctl]);
    assert!(del.status.success(), "{del:?}");
    let sniff = mon.sniff(3, &["--ethertype", "0x88b5"]);
    let sniff_b = b.sniff(3, &["--ethertype", "0x88b5"]);
    a.send(&ab, 10);
    assert_eq!(sniff_b.count(), 10, "positive control: b gets a's frames");
    assert_eq!(sniff.count(), 0, "no copies once the mirror is gone");
    let (st, body) = t.sw.req("GET", "/api/v1/mirrors/m1", None);
    assert_eq!(st, 404, "{body}");
}

#[test]
fn mirrors_from_the_configuration_file_and_sighup() {
    if !common::root_or_skip() {
        return;
    }
    let dir = common::TempDir::new("mircfg");
    let names: Vec<String> = "abm".chars().map(common::ifname).collect();
    let file = dir.path.join("t.toml");
    let write = |select: &str| {
        std::fs::write(
            &file,
            format!(
                "[[port]]\nname = \"{}\"\n[[port]]\nname = \"{}\"\n[[port]]\nname = \"{}\"\n\
                 [[mirror]]\nname = \"cfg\"\n{select}\noutput = \"{}\"\n",
                names[0], names[1], names[2], names[2]
            ),
        )
        .unwrap();
    };
    write(&format!("select_src = [\"{}\"]", names[0]));
    let sw = Switch::start(&["--config", &file.display().to_string()]);
    let (st, body) = sw.req("GET", "/api/v1/mirrors", None);
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["name"], "cfg");
    assert_eq!(v[0]["select_src"][0], names[0].as_str());
    assert_eq!(v[0]["source"], "config");
    assert_eq!(v[0]["active"], true);
    // an API mirror stays across a reload; the file's one changes
    let (st, body) = sw.req(
        "POST",
        "/api/v1/mirrors",
        Some(&format!(
            r#"{{"name": "api", "select_dst": ["{}"], "output": "{}"}}"#,
            names[1], names[2]
        )),
    );
    assert_eq!(st, 201, "{body}");
    let (st, body) = sw.req(
        "POST",
        "/api/v1/mirrors",
        Some(&format!(
            r#"{{"name": "api", "select_dst": ["{}"], "output": "{}"}}"#,
            names[1], names[2]
        )),
    );
    assert_eq!(st, 409, "{body}");
    let (st, body) = sw.req(
        "POST",
        "/api/v1/mirrors",
        Some(r#"{"name": "x", "select_src": ["nope"], "output": "nope2"}"#),
    );
    assert_eq!(st, 404, "{body}");
    let (st, body) = sw.req("POST", "/api/v1/mirrors", Some(r#"{"name": "x"}"#));
    assert_eq!(st, 400, "{body}");
    write("select_all = true");
    Command::new("kill")
        .args(["-HUP", &sw.pid().to_string()])
        .status()
        .unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let v = sw.get("/api/v1/mirrors");
            v.as_array().is_some_and(|a| a.len() == 2)
                && v[0]["name"] == "cfg"
                && v[0]["select_all"] == true
                && v[1]["name"] == "api"
        }),
        "{}",
        sw.get("/api/v1/mirrors")
    );
}
