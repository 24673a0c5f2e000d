//! Root: multicast snooping with real peers. Namespace hosts join and leave groups with the
//! kernel's own IGMP (a socket's IP_ADD_MEMBERSHIP), a sender sends UDP to the group, and the
//! receivers show where it went: members get it, non-members do not once a querier exists
//! (the switch's own, or a Linux bridge with `mcast_querier 1` behind a `packet:` port), and a
//! leave stops the traffic within the last-member time. The same with VLAN filtering: the MDB
//! is keyed by group and VLAN. (The kernel's own selftest cases, bridge_igmp.sh and
//! bridge_mld.sh, are in netns_mcast_kernel.rs.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use common::{ifname, run, run_ok, unique, wait_until, Host, Netns, Switch, TempDir};
use serde_json::Value;

/// Joins GROUP on the host's address, prints "joined", then prints each datagram's payload
/// length as it arrives; the socket (and so the membership) closes when stdin closes or the
/// time is up.
const RECV: &str = r#"
import socket, struct, sys, select
group, addr, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((group, 5353))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(group) + socket.inet_aton(addr))
print("joined", flush=True)
import time
end = time.monotonic() + secs
while time.monotonic() < end:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.2)
    if sys.stdin in r and not sys.stdin.readline():
        break
    if s in r:
        d = s.recv(2048)
        print(len(d), flush=True)
s.close()
print("left", flush=True)
"#;

/// RECV for IPv6: joins GROUP on interface IFNAME (the kernel's MLD), same output.
const RECV6: &str = r#"
import socket, struct, sys, select, time
group, ifname, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 5353))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
             socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", idx))
print("joined", flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.2)
    if sys.stdin in r and not sys.stdin.readline():
        break
    if s in r:
        d = s.recv(2048)
        print(len(d), flush=True)
s.close()
print("left", flush=True)
"#;

/// Sends COUNT datagrams to the IPv6 GROUP out of IFNAME (hop limit 1), 5 ms apart.
const SEND6: &str = r#"
import socket, sys, time
group, ifname, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(ifname))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
for i in range(count):
    s.sendto(b"x" * 100, (group, 5353))
    time.sleep(0.005)
"#;

/// Sends COUNT datagrams to GROUP from the host's address (TTL 1), 5 ms apart.
const SEND: &str = r#"
import socket, sys, time
group, addr, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for i in range(count):
    s.sendto(b"x" * 100, (group, 5353))
    time.sleep(0.005)
"#;

/// Short timers, so a querier exists one second after start and a leave ends within 0.4 s
/// (Linux units: centiseconds).
const FAST: &str = "mcast_query_response_interval = 100\nmcast_startup_query_interval = 100\n\
                    mcast_last_member_interval = 20\n";

/// A receiver process in a host: joined to its group until dropped (stdin closes).
struct Receiver {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Receiver {
    fn start(h: &Host, group: &str) -> Receiver {
        let (script, on) = if group.contains(':') {
            (RECV6, &h.ifname)
        } else {
            (RECV, &h.ip)
        };
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &h.ns.name, "timeout", "60"])
            .args(["python3", "-c", script, group, on, "55"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn receiver");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let r = Receiver { child, lines: rx };
        let first = r.lines.recv_timeout(Duration::from_secs(10));
        assert_eq!(first.as_deref(), Ok("joined"), "receiver did not join");
        r
    }

    /// Datagrams received so far (waits up to `quiet` for stragglers).
    fn received(&self, quiet: Duration) -> usize {
        let mut n = 0;
        while let Ok(l) = self.lines.recv_timeout(quiet) {
            if l == "left" {
                break;
            }
            n += 1;
        }
        n
    }

    /// Leaves the group (closes the socket: the kernel sends its leave).
    fn leave(mut self) {
        drop(self.child.stdin.take());
        let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(ok, "receiver did not leave");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(h: &Host, group: &str, count: u32) {
    let (script, on) = if group.contains(':') {
        (SEND6, &h.ifname)
    } else {
        (SEND, &h.ip)
    };
    h.ns.ok(&["python3", "-c", script, group, on, &count.to_string()]);
}

/// The MAC of a group: 01:00:5e + the low 23 bits (IPv4), 33:33 + the low 32 bits (IPv6).
fn group_mac(group: &str) -> String {
    match group.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            format!("01:00:5e:{:02x}:{:02x}:{:02x}", o[1] & 0x7f, o[2], o[3])
        }
        std::net::IpAddr::V6(a) => {
            let o = a.octets();
            format!(
                "33:33:{:02x}:{:02x}:{:02x}:{:02x}",
                o[12], o[13], o[14], o[15]
            )
        }
    }
}

/// With the switch as querier of `family` (`v4`/`v6`): host 1 joins `g` with the kernel's
/// stack, host 0's traffic to `g` reaches it and not host 2, and the leave (`what`: "leave",
/// "MLD done") ends the membership. The caller checks what follows the leave.
fn join_receive_leave(sw: &Switch, h: &[Host], g: &str, family: &str, what: &str) {
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            querier_exists_for(sw, 0, family)
        }),
        "no {family} querier: {}",
        mdb(sw)
    );
    let r = Receiver::start(&h[1], g);
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            member(sw, g, &h[1].ifname, 0)
        }),
        "the join is not in the MDB: {}",
        mdb(sw)
    );
    // the member gets the group's traffic; the other host does not
    let other = h[2].sniff(3, &["--dst", &group_mac(g)]);
    send(&h[0], g, 40);
    let got = r.received(Duration::from_millis(500));
    assert!(got >= 36, "member received {got} of 40");
    assert_eq!(other.count(), 0, "a non-member got the group's traffic");
    // a leave ends the membership within the last-member time (2 x 0.2 s)
    r.leave();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            !member(sw, g, &h[1].ifname, 0)
        }),
        "the {what} did not end the membership: {}",
        mdb(sw)
    );
}

fn mdb(sw: &Switch) -> Value {
    sw.get("/api/v1/mdb")
}

/// Whether the MDB has GROUP on PORT in VLAN `vid`.
fn member(sw: &Switch, group: &str, port: &str, vid: u64) -> bool {
    mdb(sw)["mdb"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["grp"] == group && r["port"] == port && r["vid"].as_u64() == Some(vid))
}

/// Whether forwarding treats an IGMP querier as present in `vid`.
fn querier_exists(sw: &Switch, vid: u64) -> bool {
    querier_exists_for(sw, vid, "v4")
}

/// Whether forwarding treats a querier of `family` (`v4`: IGMP, `v6`: MLD) as present.
fn querier_exists_for(sw: &Switch, vid: u64, family: &str) -> bool {
    mdb(sw)["querier"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|q| q["vid"].as_u64() == Some(vid) && q["family"] == family && q["exists"] == true)
}

/// Switch with `specs` (name suffixes get a TAP each, `,KEYS` appended), a configuration
/// file with `file`, extra `args`; each TAP in its own namespace host on 198.18.S.(i+1)/24.
fn lab(specs: &[&str], file: &str, args: &[&str]) -> (Switch, Vec<Host>, TempDir) {
    let dir = TempDir::new("mcast");
    let cfg = dir.path.join("sw.toml");
    std::fs::write(&cfg, file).unwrap();
    let nss: Vec<Netns> = specs.iter().map(|_| Netns::new()).collect();
    let names: Vec<String> = (0..specs.len())
        .map(|i| ifname(char::from(b'a' + i as u8)))
        .collect();
    let ports: Vec<String> = names
        .iter()
        .zip(specs)
        .map(|(n, s)| {
            if s.is_empty() {
                n.clone()
            } else {
                format!("{n},{s}")
            }
        })
        .collect();
    let cfg_s = cfg.display().to_string();
    let mut all: Vec<&str> = vec!["--config", &cfg_s];
    for p in &ports {
        all.push("--port");
        all.push(p);
    }
    all.extend_from_slice(args);
    let sw = Switch::start(&all);
    let subnet = (unique() % 250 + 1) as u8;
    let hosts = nss
        .into_iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (ns, n))| {
            let cidr = format!("198.18.{subnet}.{}/24", i + 1);
            Host::attach(ns, n, &cidr, None)
        })
        .collect();
    // the switch follows the links: wait until it sees every host's port up
    let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        names.iter().all(|n| sw.port(n)["state"] == "up")
    });
    assert!(up, "the hosts' ports did not come up");
    (sw, hosts, dir)
}

#[test]
fn kernel_hosts_join_and_leave_with_the_switch_as_querier() {
    if !common::root_or_skip() {
        return;
    }
    let file = format!("mcast_querier = true\n{FAST}");
    let (sw, h, _dir) = lab(&["", "", ""], &file, &[]);
    let g = "239.1.2.3";
    join_receive_leave(&sw, &h, g, "v4", "leave");
    let before = sw.counter(&h[0].ifname, "rx_frames");
    let was = h[1].sniff(3, &["--dst", &group_mac(g)]);
    send(&h[0], g, 20);
    assert!(sw.counter(&h[0].ifname, "rx_frames") >= before + 20);
    assert_eq!(
        was.count(),
        0,
        "traffic still reached the host after its leave"
    );
    // the client shows the same table
    let out = common::tapswitch_cmd(&["mdb", "show", "--control", &sw.ctl]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("querier vid 0 igmp"),
        "{text}"
    );
}

#[test]
fn a_linux_bridge_querier_behind_a_packet_port_makes_it_a_router_port() {
    if !common::root_or_skip() {
        return;
    }
    // the Linux bridge: br0 with a querier using its own address, in its own namespace,
    // reached through a veth whose other end is a packet: port of the switch
    let rns = Netns::new();
    let n = unique();
    let (outer, inner) = (
        format!("tmq{}o{n}", std::process::id() % 10000),
        format!("tmq{}i{n}", std::process::id() % 10000),
    );
    run_ok(
        "ip",
        &[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ],
    );
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = run("ip", &["link", "del", &self.0]);
        }
    }
    let _del = Del(outer.clone());
    run_ok("ip", &["link", "set", &inner, "netns", &rns.name]);
    run_ok("ip", &["link", "set", &outer, "up"]);
    let subnet = (unique() % 250 + 1) as u8;
    rns.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "1",
        "mcast_querier",
        "1",
        "mcast_query_use_ifaddr",
        "1",
        "mcast_query_response_interval",
        "100",
        "mcast_startup_query_interval",
        "100",
    ]);
    rns.ip(&[
        "addr",
        "add",
        &format!("198.18.{subnet}.254/24"),
        "dev",
        "br0",
    ]);
    rns.ip(&["link", "set", &inner, "master", "br0"]);
    rns.ip(&["link", "set", &inner, "up"]);
    rns.ip(&["link", "set", "br0", "up"]);
    let rp = format!("rp=packet:{outer}");
    let (sw, h, _dir) = lab(&["", ""], FAST, &["--port", &rp]);
    let q = format!("198.18.{subnet}.254");
    let heard = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let m = mdb(&sw);
        let router = m["router"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["port"] == "rp" && r["family"] == "v4");
        let querier = m["querier"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["querier"]["address"] == q.as_str() && x["querier"]["port"] == "rp");
        router && querier && querier_exists(&sw, 0)
    });
    assert!(heard, "the Linux querier was not followed: {}", mdb(&sw));
    // unregistered traffic goes to the router port only
    let g = "239.1.2.4";
    let at_router = Host {
        ifname: "br0".into(),
        ip: q.clone(),
        mac: String::new(),
        ns: rns,
    };
    let router_side = at_router.sniff(3, &["--dst", &group_mac(g)]);
    let other = h[1].sniff(3, &["--dst", &group_mac(g)]);
    send(&h[0], g, 20);
    let routed = router_side.count();
    assert!(routed >= 18, "the router port got {routed} of 20");
    assert_eq!(
        other.count(),
        0,
        "unregistered traffic reached a non-router port"
    );
}

#[test]
fn groups_are_kept_per_vlan() {
    if !common::root_or_skip() {
        return;
    }
    let file = format!("vlan_filtering = true\nmcast_querier = true\n{FAST}");
    let (sw, h, _dir) = lab(
        &["access=10", "access=10", "access=20", "access=20"],
        &file,
        &[],
    );
    let g = "239.1.2.5";
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            querier_exists(&sw, 10) && querier_exists(&sw, 20)
        }),
        "no querier in both VLANs: {}",
        mdb(&sw)
    );
    // a member in VLAN 10 only
    let r = Receiver::start(&h[1], g);
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            member(&sw, g, &h[1].ifname, 10)
        }),
        "{}",
        mdb(&sw)
    );
    assert!(!member(&sw, g, &h[1].ifname, 20));
    // in VLAN 20 the group is unregistered: its traffic reaches no host there
    let v20 = h[3].sniff(3, &["--dst", &group_mac(g)]);
    send(&h[0], g, 20);
    send(&h[2], g, 20);
    let got = r.received(Duration::from_millis(500));
    assert!(got >= 18, "the VLAN 10 member received {got} of 20");
    assert_eq!(
        v20.count(),
        0,
        "VLAN 20 got traffic of a group only VLAN 10 joined"
    );
}

#[test]
fn kernel_hosts_join_and_leave_with_mld() {
    if !common::root_or_skip() {
        return;
    }
    let file = format!("mcast_querier = true\n{FAST}");
    let (sw, h, _dir) = lab(&["", "", ""], &file, &[]);
    // IPv6 on (the harness turns it off), without duplicate address detection, so the
    // link-local addresses MLD needs are there at once
    for x in &h {
        let ifc = format!("net.ipv6.conf.{}.accept_dad=0", x.ifname);
        x.ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", &ifc]);
        let on = format!("net.ipv6.conf.{}.disable_ipv6=0", x.ifname);
        x.ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", &on]);
    }
    let g = "ff0e::1:3";
    join_receive_leave(&sw, &h, g, "v6", "MLD done");
    let was = h[1].sniff(3, &["--dst", &group_mac(g)]);
    send(&h[0], g, 20);
    assert_eq!(
        was.count(),
        0,
        "traffic still reached the host after it left"
    );
}
