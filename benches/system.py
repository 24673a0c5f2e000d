#!/usr/bin/env python3
"""Side-by-side system benchmark: the Linux bridge, tapswitch and a bare TAP relay, interleaved rounds.

Two namespace hosts (198.18.1.1 and .2) talk through, one setup after the other in each round:
  bridge     a Linux bridge over two veth pairs (forwarding inside the sender's system call);
  tapswitch  tapswitch with two TAP ports;
  relay      benches/relay.c, compiled here with gcc -O2: one thread, epoll, two TAPs opened as
             tapswitch opens them (vnet_hdr, 10-byte header, CSUM/TSO offloads), read -> write,
             no table: the physical reference for a userspace TAP switch;
  tapswitch mq  (only with --multiqueue N) tapswitch with ports NAME,queues=N and
             --dataplane-threads N; if this tapswitch refuses the option the column is dropped.
  tapswitch before  (only with --baseline PATH) another tapswitch build, e.g. the main branch,
             run exactly as `tapswitch` is: the same-run before/after guard for a change on the
             frame path (ratios tapswitch/before; build the old one with
             `git worktree add /tmp/base main && cargo build --release --manifest-path
             /tmp/base/Cargo.toml`).
  tapswitch capture  (only with --capture) tapswitch with a control socket and one capture
             running for the whole test: `tapswitch capture --control PATH -w /dev/null` (every
             port, both directions, full frames), against tapswitch without a capture.
  tapswitch no-snoop, tapswitch 1000 groups  (only with --mcast) tapswitch with
             --mcast-snooping off, and tapswitch as querier with 1,000 static groups (one of them
             the multicast metric's target, on host 2's port); the metric fps_60B_mcast sends
             60-byte frames to that group: a flood for the others, a registered group there.
The order of the setups rotates from round to round. Printed: each round's numbers, then the
median of the rounds per metric and setup, and the ratios tapswitch/bridge and tapswitch/relay
(and tapswitch mq/tapswitch).

Metrics: TCP goodput with 1 and 4 streams (iperf3); 60-byte frame forwarding rate (trafgen from
netsniff-ng, one generator, counted at the receiving interface); ICMP round trip p50/p99 with a
ping every 5 ms, every 1 ms and flood (`ping -i 0`: the next request as soon as the reply is
back, one in flight, i.e. ping -f's pacing, but with a line per reply so p99 can be taken;
`ping -f` itself prints no per-packet times); request/response round trip p50/p99 with sockperf
ping-pong over UDP and TCP (back to back, 14-byte messages, --full-rtt); the switch process's
CPU (cores during 1 TCP stream, microseconds per 60-byte frame; none for the bridge). Every
test lasts about --seconds (sockperf: at least 2 s, its first second is warm-up).

Run as root: python3 benches/system.py [--rounds 5] [--seconds 5] [--binary PATH]
             [--baseline PATH] [--only SETUP,...] [--switch-arg=ARG]... [--multiqueue N]
             [--capture] [--mcast] [--json FILE]
--json writes {setup: {metric: [one value per round, null where none]}}.
Addresses come from 198.18.0.0/15; names carry this process's pid; every namespace, link and
process is removed on exit, on an exception, on Ctrl-C and on SIGTERM.
"""
import argparse
import atexit
import collections
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PID = os.getpid()
NS_PREFIX = f"tsbench-{PID}-"
LINK_PREFIX = f"ts{PID}"  # + kind letter + round + index: at most 14 characters
CREATED_NS = []
CREATED_LINKS = []
PROCS = []
TMPDIRS = []
H1, H2 = "198.18.1.1", "198.18.1.2"


def sh(cmd, check=True, capture=True, timeout=120):
    r = subprocess.run(cmd, shell=True, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {(r.stderr or '').strip()}")
    return r.stdout if capture else ""


def quiet(cmd):
    try:
        sh(cmd, check=False, timeout=30)
    except subprocess.TimeoutExpired:
        pass


def stop_proc(p, sig=signal.SIGTERM):
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except ProcessLookupError:
            pass


def cleanup():
    for p in PROCS:
        try:
            stop_proc(p)
        except Exception:
            pass
    for ns in list(CREATED_NS):
        quiet(f"ip netns del {ns}")
    for link in list(CREATED_LINKS):
        quiet(f"ip link del {link}")
    # anything with this run's prefix that escaped the lists (e.g. a signal between two steps)
    try:
        for ns in sh("ip netns list", check=False, timeout=30).split():
            if ns.startswith(NS_PREFIX):
                quiet(f"ip netns del {ns}")
        for m in re.finditer(r"^\d+: ([^:@\s]+)", sh("ip -o link show", check=False, timeout=30), re.M):
            if m.group(1).startswith(LINK_PREFIX):
                quiet(f"ip link del {m.group(1)}")
    except Exception:
        pass
    for d in TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(cleanup)


def on_signal(sig, _frame):
    # SystemExit unwinds through the `finally` blocks, then atexit runs cleanup()
    sys.exit(128 + sig)


def ensure_tools():
    need = {"iperf3": "iperf3", "trafgen": "netsniff-ng", "ping": "iputils-ping", "ip": "iproute2",
            "ss": "iproute2", "sockperf": "sockperf", "gcc": "gcc"}
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    if missing:
        sh("apt-get update -qq", capture=False)
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
           + " ".join(missing), capture=False, timeout=900)


def build_relay(root):
    d = tempfile.mkdtemp(prefix=f"tsbench-{PID}-")
    TMPDIRS.append(d)
    out = os.path.join(d, "relay")
    sh(f"gcc -O2 -Wall -o {out} {os.path.join(root, 'benches', 'relay.c')}")
    return out


def netns(name):
    sh(f"ip netns add {name}")
    CREATED_NS.append(name)
    sh(f"ip -n {name} link set lo up")
    return name


def host(ns, ifname, addr):
    sh(f"ip -n {ns} addr add {addr}/24 dev {ifname}")
    sh(f"ip -n {ns} link set {ifname} up")


def drop_ns(ns_list):
    for ns in ns_list:
        quiet(f"ip netns del {ns}")
        if ns in CREATED_NS:
            CREATED_NS.remove(ns)
    ns_list.clear()


class StartError(RuntimeError):
    pass


class Bridge:
    def __init__(self, tag):
        self.ns = []
        self.ifs = []
        self.links = []
        try:
            br = f"{LINK_PREFIX}B{tag}"
            self._link(br, f"ip link add {br} type bridge")
            sh(f"ip link set {br} up")
            for i in range(2):
                ns = netns(f"{NS_PREFIX}b{tag}{i}")
                self.ns.append(ns)
                a, b = f"{LINK_PREFIX}v{tag}{i}", f"{LINK_PREFIX}p{tag}{i}"
                self._link(b, f"ip link add {a} type veth peer name {b}")
                sh(f"ip link set {a} netns {ns}")
                sh(f"ip link set {b} master {br} up")
                host(ns, a, f"198.18.1.{i + 1}")
                self.ifs.append(a)
        except BaseException:
            self.close()
            raise

    def _link(self, name, cmd):
        CREATED_LINKS.append(name)
        self.links.append(name)
        sh(cmd)

    def cpu(self):
        return None

    def close(self):
        drop_ns(self.ns)  # takes the veth pairs with it
        for link in self.links:
            quiet(f"ip link del {link}")  # the bridge (the veth ends are gone already)
            CREATED_LINKS.remove(link)
        self.links.clear()


class TapProcess:
    """A process that creates two TAPs, says `ready` on stderr, and forwards between them."""

    def __init__(self, tag, letter, argv, taps):
        self.ns = []
        self.ifs = []
        self.tail = collections.deque(maxlen=20)
        self.proc = None
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            PROCS.append(self.proc)
            ready = threading.Event()

            def drain():  # keeps stderr drained for the process's whole life
                for line in self.proc.stderr:
                    self.tail.append(line.rstrip())
                    if re.search(r"\bready\b", line):
                        ready.set()
                ready.set()

            threading.Thread(target=drain, daemon=True).start()
            if not ready.wait(10) or self.proc.poll() is not None:
                time.sleep(0.2)
                raise StartError(f"{os.path.basename(argv[0])} did not start: " + " | ".join(self.tail))
            for i, t in enumerate(taps):
                ns = netns(f"{NS_PREFIX}{letter}{tag}{i}")
                self.ns.append(ns)
                sh(f"ip link set {t} netns {ns}")
                host(ns, t, f"198.18.1.{i + 1}")
                self.ifs.append(t)
        except BaseException:
            self.close()
            raise

    def cpu(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        if self.proc is not None:
            stop_proc(self.proc)  # its TAPs go with its fds
        drop_ns(self.ns)


def tapswitch(tag, binary, extra, queues=None, port_suffix="", letter=None, control="none"):
    letter = letter or ("t" if queues is None else "m")
    taps = [f"{LINK_PREFIX}{letter}{tag}{i}" for i in range(2)]
    argv = [binary, "run", "--listen", "none", "--control", control, *extra]
    if queues is not None:
        argv += ["--dataplane-threads", str(queues)]
    for t in taps:
        argv += ["--port", (t if queues is None else f"{t},queues={queues}") + port_suffix]
    return TapProcess(tag, letter, argv, taps)


def unix_get(path, url):
    """The body of a GET on a unix socket ("" if it fails)."""
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect(path)
            c.sendall(f"GET {url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
        return data.decode(errors="replace")
    except OSError:
        return ""


class CapturingSwitch:
    """tapswitch with a control socket and `tapswitch capture ... -w /dev/null` running on it."""

    def __init__(self, tag, binary, extra):
        d = tempfile.mkdtemp(prefix=f"tsbench-{PID}-")
        TMPDIRS.append(d)
        ctl = os.path.join(d, "ctl.sock")
        self.cap = None
        self.sw = tapswitch(tag, binary, extra, letter="c", control=ctl)
        self.ns, self.ifs = self.sw.ns, self.sw.ifs
        try:
            self.cap = subprocess.Popen([binary, "capture", "--control", ctl, "-w", "/dev/null"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
            PROCS.append(self.cap)
            # the capture is running once the switch counts it
            deadline = time.time() + 10
            while True:
                if "\ntapswitch_captures_active 1\n" in unix_get(ctl, "/metrics"):
                    break
                if self.cap.poll() is not None or time.time() > deadline:
                    raise StartError("tapswitch capture did not start: " + (self.cap.stderr.read() or ""))
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def cpu(self):
        return self.sw.cpu()

    def close(self):
        if self.cap is not None:
            stop_proc(self.cap)
            self.cap = None
        self.sw.close()


def unix_request(path, method, url, body):
    """Status code of a request with a JSON body on a unix socket (0 if it fails)."""
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect(path)
            data = body.encode()
            c.sendall(f"{method} {url} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            head = c.recv(64).decode(errors="replace")
        m = re.match(r"HTTP/1\.1 (\d+)", head)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


class GroupsSwitch:
    """tapswitch as IGMP querier (query response interval 1 s, so a querier exists a second
    after start) with `groups` static MDB entries on host 2's port: 239.2.x.y, the first of
    them the target of the multicast metric, so its frames take the registered-group path."""

    def __init__(self, tag, binary, extra, groups):
        d = tempfile.mkdtemp(prefix=f"tsbench-{PID}-")
        TMPDIRS.append(d)
        ctl = os.path.join(d, "ctl.sock")
        cfg = os.path.join(d, "sw.toml")
        with open(cfg, "w") as f:
            f.write("mcast_querier = true\nmcast_query_response_interval = 100\n"
                    "mcast_startup_query_interval = 100\n")
        self.sw = tapswitch(tag, binary, [*extra, "--config", cfg], letter="g", control=ctl)
        self.ns, self.ifs = self.sw.ns, self.sw.ifs
        try:
            port = self.ifs[1]
            for i in range(groups):
                g = f"239.2.{i // 250}.{i % 250 + 1}"
                st = unix_request(ctl, "POST", "/api/v1/mdb", json.dumps({"port": port, "grp": g}))
                if st != 201:
                    raise StartError(f"POST /api/v1/mdb {g}: HTTP {st}")
            deadline = time.time() + 15
            while True:
                m = unix_get(ctl, "/api/v1/mdb")
                body = m.split("\r\n\r\n", 1)[-1]
                try:
                    q = json.loads(body[body.index("{"):])["querier"]
                except (ValueError, KeyError):
                    q = []
                if any(x.get("vid") == 0 and x.get("family") == "v4" and x.get("exists") for x in q):
                    break
                if time.time() > deadline:
                    raise StartError("no querier within 15 s: " + body[:300])
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def cpu(self):
        return self.sw.cpu()

    def close(self):
        self.sw.close()


class TwoSwitches:
    """Host A - tapswitch 1 - veth pair (packet: ports) - tapswitch 2 - host B. With `vlan`, both
    switches filter VLANs: the hosts are on access ports of VLAN 10 and the veth link is a trunk
    carrying VLAN 10 tagged, so every frame is tagged and untagged once on its way."""

    def __init__(self, tag, binary, extra, vlan):
        self.ns = []
        self.ifs = []
        self.procs = []
        self.links = []
        letter = "q" if vlan else "w"
        try:
            a, b = f"{LINK_PREFIX}{letter}{tag}x", f"{LINK_PREFIX}{letter}{tag}y"
            CREATED_LINKS.append(a)
            self.links.append(a)
            sh(f"ip link add {a} type veth peer name {b}")
            for v in (a, b):
                sh(f"ip link set {v} up")
            access = ",access=10" if vlan else ""
            trunk = ",trunk=10" if vlan else ""
            taps = [f"{LINK_PREFIX}{letter}{tag}{i}" for i in range(2)]
            for i, (t, v) in enumerate(zip(taps, (a, b))):
                argv = [binary, "run", "--listen", "none", "--control", "none", "--name", f"b{tag}{letter}{i}",
                        *extra, "--port", t + access, "--port", f"packet:{v}{trunk}"]
                if vlan:
                    argv.append("--vlan-filtering")
                tp = TapProcess(f"{tag}{i}", letter, argv, [])
                self.procs.append(tp)
                ns = netns(f"{NS_PREFIX}{letter}{tag}{i}")
                self.ns.append(ns)
                sh(f"ip link set {t} netns {ns}")
                host(ns, t, f"198.18.1.{i + 1}")
                self.ifs.append(t)
        except BaseException:
            self.close()
            raise

    def cpu(self):
        return sum(p.cpu() for p in self.procs)

    def close(self):
        for p in self.procs:
            p.close()
        self.procs.clear()
        drop_ns(self.ns)
        for link in self.links:
            quiet(f"ip link del {link}")
            CREATED_LINKS.remove(link)
        self.links.clear()


def relay(tag, relay_bin):
    taps = [f"{LINK_PREFIX}r{tag}{i}" for i in range(2)]
    return TapProcess(tag, "r", [relay_bin, *taps], taps)


def wait_listen(ns, proto, port, timeout=5):
    flag = "t" if proto == "tcp" else "u"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sh(f"ip netns exec {ns} ss -Hln{flag} 'sport = :{port}'", check=False).strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {proto} port {port} in {ns}")


def server(ns, argv, proto, port):
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    wait_listen(ns, proto, port)
    return p


def warm(net):
    sh(f"ip netns exec {net.ns[0]} ping -n -c 3 -i 0.2 -W 1 {H2}")


def iperf(net, streams, seconds, dst=H2):
    """iperf3 from net.ns[0] to a server on `dst` in net.ns[1]: (Gbit/s, net.cpu() cores)."""
    srv = server(net.ns[1], ["iperf3", "-s", "-1", "-B", dst], "tcp", 5201)
    try:
        c0 = net.cpu()
        t0 = time.time()
        out = sh(f"ip netns exec {net.ns[0]} iperf3 -c {dst} -J -t {seconds} -P {streams}",
                 timeout=seconds + 30)
        wall = time.time() - t0
        c1 = net.cpu()
        srv.wait(10)
    finally:
        stop_proc(srv)
    gbps = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    cpu = (c1 - c0) / wall if c0 is not None else None
    return gbps, cpu


def rx_packets(ns, ifname):
    out = sh(f"ip -n {ns} -s -j link show dev {ifname}")
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def mac_of(ns, ifname):
    return json.loads(sh(f"ip -n {ns} -j link show dev {ifname}"))[0]["address"]


def small_frames(net, seconds, group=None):
    """60-byte frames from host 1 to host 2 (or, with `group` "a.b.c.d", to that IPv4
    multicast group and its MAC), counted at host 2's interface."""
    dst = mac_of(net.ns[1], net.ifs[1])
    ip_dst = "198, 18, 1, 2"
    if group:
        g = [int(x) for x in group.split(".")]
        dst = "01:00:5e:%02x:%02x:%02x" % (g[1] & 0x7f, g[2], g[3])
        ip_dst = ", ".join(str(x) for x in g)
    src = mac_of(net.ns[0], net.ifs[0])
    mac = lambda m: ", ".join("0x" + b for b in m.split(":"))
    # 60 bytes: Ethernet + IPv4 + UDP (discard port 9) + payload
    conf = (
        "{ " + mac(dst) + ", " + mac(src) + ", 0x08, 0x00, "
        "0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x01, 0x11, csumip(14, 33), "
        "198, 18, 1, 1, " + ip_dst + ", "
        "0x30, 0x39, 0x00, 0x09, 0x00, 0x1a, 0x00, 0x00, "
        + ", ".join(["0x00"] * 18) + " }\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(conf)
        path = f.name
    try:
        r0 = rx_packets(net.ns[1], net.ifs[1])
        c0 = net.cpu()
        t0 = time.time()
        # one generator process (the machine has few cores; the switch needs one)
        gen = subprocess.Popen(["ip", "netns", "exec", net.ns[0], "trafgen", "-o", net.ifs[0], "-i", path,
                                "-q", "-P", "1", "-n", "100000000"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        PROCS.append(gen)
        try:
            time.sleep(seconds)
        finally:
            try:
                os.killpg(gen.pid, signal.SIGINT)
                gen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(gen.pid, signal.SIGKILL)
                gen.wait(10)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        wall = time.time() - t0 - 0.5
        c1 = net.cpu()
        frames = rx_packets(net.ns[1], net.ifs[1]) - r0
    finally:
        os.unlink(path)
    fps = frames / wall
    us_per_frame = (c1 - c0) / frames * 1e6 if c0 is not None and frames else None
    return fps, us_per_frame


def pct(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    n = len(sorted_values)
    return sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))]


def ping_rtts(net, interval, seconds):
    """p50 and p99 (µs) of the per-reply RTTs of pings every `interval` s (0: flood pacing)."""
    if interval > 0:
        count = max(20, int(seconds / interval))
    else:
        count = 10_000_000  # the deadline ends it
    out = sh(f"ip netns exec {net.ns[0]} ping -n -c {count} -i {interval} -W 1 -w {seconds + 2 if interval else seconds} {H2}",
             check=False, timeout=seconds + 30)
    rtts = sorted(float(m) * 1000 for m in re.findall(r"time[=<]([0-9.]+) ms", out))
    if len(rtts) < 10:
        return None, None, len(rtts)
    return pct(rtts, 0.50), pct(rtts, 0.99), len(rtts)


def sockperf(net, proto, seconds):
    """sockperf ping-pong, back to back: p50 and p99 round trip (µs)."""
    port = 11111
    extra = ["--tcp"] if proto == "tcp" else []
    srv = server(net.ns[1], ["sockperf", "sr", "-i", H2, "-p", str(port), *extra], proto, port)
    try:
        t = max(2, seconds)
        out = sh(f"ip netns exec {net.ns[0]} sockperf pp -i {H2} -p {port} {' '.join(extra)} "
                 f"-t {t} --full-rtt --no-rdtsc 2>&1", check=False, timeout=t + 30)
    finally:
        stop_proc(srv)
    p = {m.group(1): float(m.group(2)) for m in re.finditer(r"percentile (\d+\.\d+) =\s*([0-9.]+)", out)}
    obs = re.search(r"Total (\d+) observations", out)
    return p.get("50.000"), p.get("99.000"), int(obs.group(1)) if obs else 0


METRICS = [
    ("tcp1_gbps", "TCP, 1 stream (Gbit/s)"),
    ("tcp4_gbps", "TCP, 4 streams (Gbit/s)"),
    ("fps_60B", "60-byte frames (frames/s)"),
    ("ping5ms_p50_us", "ping every 5 ms, RTT p50 (µs)"),
    ("ping5ms_p99_us", "ping every 5 ms, RTT p99 (µs)"),
    ("ping1ms_p50_us", "ping every 1 ms, RTT p50 (µs)"),
    ("ping1ms_p99_us", "ping every 1 ms, RTT p99 (µs)"),
    ("pingflood_p50_us", "flood ping, RTT p50 (µs)"),
    ("pingflood_p99_us", "flood ping, RTT p99 (µs)"),
    ("udp_rr_p50_us", "UDP request/response, RTT p50 (µs)"),
    ("udp_rr_p99_us", "UDP request/response, RTT p99 (µs)"),
    ("tcp_rr_p50_us", "TCP request/response, RTT p50 (µs)"),
    ("tcp_rr_p99_us", "TCP request/response, RTT p99 (µs)"),
    ("cpu_tcp1", "switch CPU during 1 TCP stream (cores)"),
    ("us_per_frame", "switch CPU per 60-byte frame (µs)"),
    ("fps_60B_mcast", "60-byte frames to a multicast group (frames/s; with --mcast)"),
    ("us_per_mcast_frame", "switch CPU per 60-byte multicast frame (µs; with --mcast)"),
]

MCAST_GROUP = "239.2.0.1"


def measure(net, seconds, mcast=False):
    warm(net)
    row = {}
    row["tcp1_gbps"], row["cpu_tcp1"] = iperf(net, 1, seconds)
    row["tcp4_gbps"], _ = iperf(net, 4, seconds)
    row["fps_60B"], row["us_per_frame"] = small_frames(net, seconds)
    for name, interval in (("ping5ms", 0.005), ("ping1ms", 0.001), ("pingflood", 0)):
        row[f"{name}_p50_us"], row[f"{name}_p99_us"], _ = ping_rtts(net, interval, seconds)
    for proto in ("udp", "tcp"):
        row[f"{proto}_rr_p50_us"], row[f"{proto}_rr_p99_us"], _ = sockperf(net, proto, seconds)
    if mcast:
        row["fps_60B_mcast"], row["us_per_mcast_frame"] = small_frames(net, seconds, MCAST_GROUP)
    return row


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5, help="length of each test (default 5)")
    ap.add_argument("--binary", default=None, help="tapswitch to test (default: cargo build --release)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--baseline", metavar="PATH",
                    help="add a column: this other tapswitch binary (e.g. the main branch's), run as "
                         "`tapswitch` is; ratios tapswitch / before")
    ap.add_argument("--only", metavar="SETUPS",
                    help="comma-separated setups to run (bridge, tapswitch, relay, before, ...); "
                         "default all")
    ap.add_argument("--switch-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `tapswitch run`, e.g. --switch-arg=--busy-poll-us=50")
    ap.add_argument("--multiqueue", type=int, default=None, metavar="N",
                    help="add a column: tapswitch with ports NAME,queues=N and --dataplane-threads N")
    ap.add_argument("--capture", action="store_true",
                    help="add a column: tapswitch with one capture of every port running "
                         "(tapswitch capture -w /dev/null), against tapswitch without one")
    ap.add_argument("--vlan", action="store_true",
                    help="add VLAN columns: access ports of one VLAN, and two switches joined by a "
                         "trunk (against the same two switches without VLANs)")
    ap.add_argument("--mcast", action="store_true",
                    help="multicast snooping: add the metric of 60-byte frames to a group, and the "
                         "columns `tapswitch no-snoop` (--mcast-snooping off: unicast must cost the "
                         "same) and `tapswitch 1000 groups` (a querier and 1,000 static groups, one "
                         "of them the target on host 2's port: delivery against a flood)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds network namespaces, TAPs and a bridge")
    if a.rounds < 1 or a.seconds < 1 or (a.multiqueue is not None and a.multiqueue < 1):
        sys.exit("--rounds, --seconds and --multiqueue must be at least 1")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    ensure_tools()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.binary
    if binary is None:
        sh(f"cd {root} && cargo build --release -q", capture=False, timeout=1800)
        binary = os.path.join(root, "target", "release", "tapswitch")
    relay_bin = build_relay(root)

    factories = {
        "bridge": lambda r: Bridge(r),
        "tapswitch": lambda r: tapswitch(r, binary, a.switch_arg),
        "relay": lambda r: relay(r, relay_bin),
    }
    if a.baseline:
        if not os.access(a.baseline, os.X_OK):
            sys.exit(f"--baseline {a.baseline}: not an executable")
        factories["before"] = lambda r: tapswitch(r, a.baseline, a.switch_arg, letter="o")
    if a.multiqueue is not None:
        factories["tapswitch mq"] = lambda r: tapswitch(r, binary, a.switch_arg, a.multiqueue)
    if a.capture:
        factories["tapswitch capture"] = lambda r: CapturingSwitch(r, binary, a.switch_arg)
    if a.vlan:
        factories["tapswitch vlan"] = lambda r: tapswitch(
            r, binary, [*a.switch_arg, "--vlan-filtering"], port_suffix=",access=10", letter="a")
        factories["2 switches"] = lambda r: TwoSwitches(r, binary, a.switch_arg, False)
        factories["2 switches trunk"] = lambda r: TwoSwitches(r, binary, a.switch_arg, True)
    if a.mcast:
        factories["tapswitch no-snoop"] = lambda r: tapswitch(
            r, binary, [*a.switch_arg, "--mcast-snooping", "off"], letter="n")
        factories["tapswitch 1000 groups"] = lambda r: GroupsSwitch(r, binary, a.switch_arg, 1000)
    if a.only:
        keep = [s.strip() for s in a.only.split(",")]
        unknown = [s for s in keep if s not in factories]
        if unknown:
            sys.exit(f"--only: unknown setup(s) {', '.join(unknown)}; known: {', '.join(factories)}")
        factories = {k: v for k, v in factories.items() if k in keep}
    setups = list(factories)
    res = {k: {m: [] for m, _ in METRICS} for k in setups}
    started = time.time()
    for r in range(a.rounds):
        order = setups[r % len(setups):] + setups[:r % len(setups)]
        for kind in order:
            if kind not in factories:
                row = {}
            else:
                try:
                    net = factories[kind](r)
                except StartError as e:
                    if kind != "tapswitch mq":
                        raise
                    print(f"round {r + 1} {kind}: {e}", flush=True)
                    if not any(v is not None for v in res[kind]["tcp1_gbps"]):
                        print(f"  ({kind} column dropped: this tapswitch does not take queues=)", flush=True)
                        del factories[kind]
                    row = {}
                else:
                    try:
                        row = measure(net, a.seconds, a.mcast)
                    finally:
                        net.close()
            for m, _ in METRICS:
                res[kind][m].append(row.get(m))
            if row:
                print(f"round {r + 1} {kind:12}: " + ", ".join(
                    f"{m}={v:.3g}" for m, v in row.items() if v is not None), flush=True)
    elapsed = time.time() - started
    shown = [k for k in setups if any(v is not None for vs in res[k].values() for v in vs)]
    med = {k: {m: median(res[k][m]) for m, _ in METRICS} for k in shown}
    names = {"bridge": "Linux bridge", "tapswitch": "tapswitch", "relay": "epoll relay",
             "before": "tapswitch before",
             "tapswitch mq": f"tapswitch mq ({a.multiqueue} queues)",
             "tapswitch capture": "tapswitch, 1 capture running",
             "tapswitch vlan": "tapswitch, access VLAN", "2 switches": "2 tapswitches",
             "2 switches trunk": "2 tapswitches, VLAN trunk",
             "tapswitch no-snoop": "tapswitch, snooping off",
             "tapswitch 1000 groups": "tapswitch, 1,000 groups"}
    ratios = [("tapswitch", "bridge"), ("tapswitch", "relay"), ("tapswitch", "before"),
              ("before", "relay"), ("tapswitch mq", "tapswitch"),
              ("tapswitch capture", "tapswitch"),
              ("tapswitch", "tapswitch no-snoop"), ("tapswitch 1000 groups", "tapswitch no-snoop"),
              ("tapswitch vlan", "tapswitch"), ("2 switches trunk", "2 switches")]
    ratios = [(x, y) for x, y in ratios if x in med and y in med]
    print()
    print(f"| metric (median of {a.rounds} rounds of {a.seconds} s) | "
          + " | ".join(names[k] for k in shown) + " | "
          + " | ".join(f"{x} / {y}" for x, y in ratios) + " |")
    print("|---" * (1 + len(shown) + len(ratios)) + "|")
    for m, label in METRICS:
        cells = [fmt(med[k][m]) for k in shown]
        for x, y in ratios:
            vx, vy = med[x][m], med[y][m]
            cells.append(f"{vx / vy:.2f}x" if vx and vy else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n({elapsed / 60:.1f} min; switch arguments: {' '.join(a.switch_arg) or 'defaults'})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted; removing namespaces, links and processes", file=sys.stderr)
        sys.exit(130)
