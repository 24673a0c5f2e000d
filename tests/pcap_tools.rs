//! The capture writer's output read by real tools: tcpdump (libpcap), tshark and capinfos
//! (Wireshark). Each check is skipped, with a message, when its tool is not installed (with
//! `CI=true` it fails instead).
//!
//! Commands and fields used (Wireshark 4.0, tcpdump 4.99 / libpcap 1.10):
//! - `tcpdump -n -e -tt --time-stamp-precision nano -r FILE` (and `-r -` on a pipe, with `-l`)
//! - `tshark -r FILE -T fields -e frame.interface_name -e frame.packet_flags_direction
//!   -e frame.p2p_dir -e frame.len -e eth.src -e frame.time_epoch`: the EPB direction is
//!   `frame.packet_flags_direction` (0x00000001 inbound, 0x00000002 outbound) and also
//!   `frame.p2p_dir` (1 received, 0 sent); the IDB name is `frame.interface_name`
//! - `capinfos FILE`: interface names and "Number of stat entries" (the ISBs)

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tapswitch::capture::pcap::{Direction, Format, Writer};

const T0: u64 = 1_733_220_000_123_456_789;
const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0A];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0B];
const C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0C];
const BCAST: [u8; 6] = [0xFF; 6];

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        // CI installs them (tests/run.sh): a skip there would hide the test
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed (tests/run.sh installs tcpdump and tshark)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa);
    p
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request with 56 bytes of data and correct checksums: 98 bytes on the wire.
fn ping(src: [u8; 6], dst: [u8; 6], from: [u8; 4], to: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend((0..56).map(|i| i as u8));
    let c = checksum(&icmp).to_be_bytes();
    icmp[2..4].copy_from_slice(&c);
    let mut ip = vec![0x45, 0, 0, 84, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&from);
    ip.extend_from_slice(&to);
    let c = checksum(&ip).to_be_bytes();
    ip[10..12].copy_from_slice(&c);
    ip.extend_from_slice(&icmp);
    eth(dst, src, 0x0800, &ip)
}

const IP_A: [u8; 4] = [198, 18, 0, 1];
const IP_B: [u8; 4] = [198, 18, 0, 2];
const IP_C: [u8; 4] = [198, 18, 0, 3];

/// One captured frame: port, direction, frame.
type Seen = (&'static str, Direction, Vec<u8>);

/// What a switch with ports p1, p2 (and p3, added mid-capture) sees: an ARP exchange and a ping
/// from A (p1) to B (p2), then C (p3) asks for A and its request is flooded.
fn trace() -> Vec<Seen> {
    let who_has_b = eth(BCAST, A, 0x0806, &arp(1, A, IP_A, [0; 6], IP_B));
    let b_is_at = eth(A, B, 0x0806, &arp(2, B, IP_B, A, IP_A));
    let echo = ping(A, B, IP_A, IP_B);
    let who_has_a = eth(BCAST, C, 0x0806, &arp(1, C, IP_C, [0; 6], IP_A));
    use Direction::{Inbound as In, Outbound as Out};
    vec![
        ("p1", In, who_has_b.clone()),
        ("p2", Out, who_has_b),
        ("p2", In, b_is_at.clone()),
        ("p1", Out, b_is_at),
        ("p1", In, echo.clone()),
        ("p2", Out, echo),
        ("p3", In, who_has_a.clone()),
        ("p1", Out, who_has_a.clone()),
        ("p2", Out, who_has_a),
    ]
}

/// The trace as a capture stream, split where a live stream would be flushed: the first part
/// ends after the first packet. p3's IDB comes after packets of p1 and p2; ISBs end the stream.
fn stream(format: Format) -> (Vec<u8>, Vec<u8>) {
    let mut w = Writer::new(format, 0);
    let mut first = Vec::new();
    w.header(&mut first);
    let mut ids = vec![("p1", w.interface("p1", &mut first))];
    ids.push(("p2", w.interface("p2", &mut first)));
    let mut rest = Vec::new();
    for (i, (port, dir, frame)) in trace().into_iter().enumerate() {
        if port == "p3" && !ids.iter().any(|(p, _)| *p == "p3") {
            ids.push(("p3", w.interface("p3", &mut rest)));
        }
        let id = ids
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, id)| *id)
            .unwrap();
        let out = if i == 0 { &mut first } else { &mut rest };
        w.packet(
            out,
            id,
            T0 + i as u64 * 1_000_001,
            dir,
            &frame,
            frame.len() as u32,
        );
    }
    let end = T0 + 10 * 1_000_001;
    w.stats(&mut rest, 0, end, 4, 0);
    w.stats(&mut rest, 2, end, 1, 5);
    (first, rest)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tapswitch-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, format: Format) -> PathBuf {
        let (mut bytes, rest) = stream(format);
        bytes.extend_from_slice(&rest);
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(cmd).args(args).arg(file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What `tcpdump -n -e -tt --time-stamp-precision nano` prints for the trace.
fn tcpdump_expected() -> Vec<String> {
    trace()
        .iter()
        .enumerate()
        .map(|(i, (_, _, frame))| {
            let ts = T0 + i as u64 * 1_000_001;
            let ts = format!("{}.{:09}", ts / 1_000_000_000, ts % 1_000_000_000);
            let src = mac(frame[6..12].try_into().unwrap());
            let dst = mac(frame[0..6].try_into().unwrap());
            // EtherType, then the ARP opcode's low byte.
            let what = match (frame[13], frame[21]) {
                (0x00, _) => "ethertype IPv4 (0x0800), length 98: 198.18.0.1 > 198.18.0.2: \
                     ICMP echo request, id 4660, seq 1, length 64"
                    .to_string(),
                (0x06, 1) => format!(
                    "ethertype ARP (0x0806), length 42: Request who-has {} tell {}, length 28",
                    ip(&frame[38..42]),
                    ip(&frame[28..32])
                ),
                _ => format!(
                    "ethertype ARP (0x0806), length 42: Reply {} is-at {}, length 28",
                    ip(&frame[28..32]),
                    mac(frame[22..28].try_into().unwrap())
                ),
            };
            format!("{ts} {src} > {dst}, {what}")
        })
        .collect()
}

fn ip(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

const TCPDUMP_ARGS: &[&str] = &["-n", "-e", "-tt", "--time-stamp-precision", "nano", "-r"];

#[test]
fn tcpdump_reads_pcapng_and_pcap_files() {
    if !have("tcpdump") {
        return;
    }
    let dir = TempDir::new("tcpdump");
    for (name, format) in [("a.pcapng", Format::Pcapng), ("a.pcap", Format::Pcap)] {
        let file = dir.write(name, format);
        let out = run("tcpdump", TCPDUMP_ARGS, &file);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, tcpdump_expected(), "{name}");
    }
}

#[test]
fn tshark_shows_port_names_and_directions() {
    if !have("tshark") {
        return;
    }
    let dir = TempDir::new("tshark");
    let fields = [
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.packet_flags_direction",
        "-e",
        "frame.p2p_dir",
        "-e",
        "frame.len",
        "-e",
        "eth.src",
        "-e",
        "frame.time_epoch",
        "-r",
    ];
    let expected = |named: bool| -> Vec<String> {
        trace()
            .iter()
            .enumerate()
            .map(|(i, (port, dir, frame))| {
                let ts = T0 + i as u64 * 1_000_001;
                let ts = format!("{}.{:09}", ts / 1_000_000_000, ts % 1_000_000_000);
                let src = mac(frame[6..12].try_into().unwrap());
                let len = frame.len();
                if named {
                    let (flags, p2p) = match dir {
                        Direction::Inbound => ("0x00000001", 1),
                        Direction::Outbound => ("0x00000002", 0),
                    };
                    format!("{port}\t{flags}\t{p2p}\t{len}\t{src}\t{ts}")
                } else {
                    format!("\t\t\t{len}\t{src}\t{ts}")
                }
            })
            .collect()
    };
    let file = dir.write("a.pcapng", Format::Pcapng);
    let out = run("tshark", &fields, &file);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected(true));
    let file = dir.write("a.pcap", Format::Pcap);
    let out = run("tshark", &fields, &file);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected(false));
}

#[test]
fn capinfos_sees_interfaces_and_statistics() {
    if !have("capinfos") {
        return;
    }
    let dir = TempDir::new("capinfos");
    let file = dir.write("a.pcapng", Format::Pcapng);
    let out = run("capinfos", &[], &file);
    let grab = |key: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim_start_matches([' ', '=', ':']).trim().to_string())
            .collect()
    };
    assert_eq!(grab("Number of interfaces in file"), ["3"]);
    assert_eq!(grab("Name"), ["p1", "p2", "p3"]);
    assert_eq!(grab("Number of stat entries"), ["1", "0", "1"]);
    assert_eq!(grab("Time precision"), ["nanoseconds (9)"; 3]);
    assert_eq!(
        grab("Capture application"),
        [concat!("tapswitch ", env!("CARGO_PKG_VERSION"))]
    );
}

/// Pipes `first`, waits (bounded) until the tool has printed `wait_lines` lines, then pipes the
/// rest in small chunks and returns everything the tool printed.
fn through_pipe(
    cmd: &str,
    args: &[&str],
    first: &[u8],
    rest: &[u8],
    wait_lines: usize,
) -> Vec<String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first).unwrap();
    stdin.flush().unwrap();
    let mut lines = Vec::new();
    for _ in 0..wait_lines {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("{cmd} printed nothing before the stream ended: {e}");
            }
        }
    }
    for chunk in rest.chunks(7) {
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    lines.extend(rx.iter());
    reader.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

#[test]
fn tcpdump_reads_a_live_stream_from_a_pipe() {
    if !have("tcpdump") {
        return;
    }
    let mut args = vec!["-l"];
    args.extend_from_slice(TCPDUMP_ARGS);
    args.push("-");
    for format in [Format::Pcapng, Format::Pcap] {
        let (first, rest) = stream(format);
        // tcpdump prints the first packet while the stream is still open.
        let lines = through_pipe("tcpdump", &args, &first, &rest, 1);
        assert_eq!(lines, tcpdump_expected(), "{format}");
    }
}

#[test]
fn tshark_reads_a_stream_from_a_pipe() {
    if !have("tshark") {
        return;
    }
    let (first, rest) = stream(Format::Pcapng);
    let args = [
        "-l",
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.p2p_dir",
        "-r",
        "-",
    ];
    let lines = through_pipe("tshark", &args, &first, &rest, 0);
    let expected: Vec<String> = trace()
        .iter()
        .map(|(port, dir, _)| format!("{port}\t{}", u8::from(*dir == Direction::Inbound)))
        .collect();
    assert_eq!(lines, expected);
}
