#!/usr/bin/env python3
"""VXLAN benchmark: hosts on two sites through a VXLAN tunnel, tapswitch against the Linux bridge
with Linux VTEPs, in interleaved rounds.

Every setup has the same shape: two site namespaces joined by a veth underlay (MTU 1550, so
the tunnel carries 1500-byte frames; 198.18.2.1 and .2), one host namespace per site
(198.18.3.1 and .2, MTU 1500), VNI 100, UDP port 4789, the flood list naming the other site.
A site is one of:
  linux      a Linux bridge with a veth to its host and a vxlan device
             (`ip link add vx0 type vxlan id 100 local ... dstport 4789` +
             `bridge fdb append 00:00:00:00:00:00 dev vx0 dst OTHER`); offloads as Linux sets
             them (GSO through the tunnel, GRO on receive);
  tapswitch  `tapswitch run --port TAP --port vx0=vxlan:100,local=...,remote=...` with the
             host on the TAP (virtio_net_hdr offloads: the host sends 64 KiB GSO frames,
             which tapswitch cuts into segments and sends as one UDP GSO batch each; the
             receiving hub socket has UDP_GRO on).
Setups (columns): linux (two Linux sites); tapswitch (two tapswitch sites); tapswitch no-gso
(the same with `no-gso` on both vxlan ports: one sendmsg per datagram; `--skip-no-gso` leaves
it out); tapswitch before (with `--baseline PATH`: another build, e.g. main's, run as
tapswitch is: a same-run before/after); mixed (site 1 tapswitch, site 2 Linux: host 1 -> host 2
is tapswitch -> Linux VTEP, the reverse test Linux VTEP -> tapswitch; `--skip-mixed` leaves it
out). The order rotates from round to round. Printed: each round's numbers, then the median
per metric and setup and the ratio of each setup to linux.

Metrics (every test lasts --seconds; pings at most 3 s):
  TCP goodput, 1 stream each way (iperf3, and iperf3 -R) and 4 streams (iperf3 -P 4);
  ICMP RTT p50 and p99 with a ping every 5 ms and back to back (`ping -i 0`: the next request
  as soon as the reply is back, one in flight, a line per reply);
  request/response over UDP and TCP: sockperf ping-pong (one 64-byte message in flight, the
  server echoes it; the same client and server for every setup): transactions/s, RTT p50/p99;
  60-byte frames through the tunnel: trafgen in host 1 (one generator) to host 2's MAC,
  counted at host 2's interface (frames/s), and each tapswitch site's CPU per frame (us);
  the CPU the tapswitch processes use during the 1-stream test (cores, both sites), and the UDP
  GSO sends both tapswitch sites made during it (`tapswitch_vxlan_gso_sends_total`; a check
  that GSO send was in use, not a speed).
`--only METRIC,...` (the TCP, ping and request/response metrics) runs just those, for quick
iterations.

Run as root: python3 benches/vxlan.py [--rounds 5] [--seconds 5] [--binary PATH] [--json FILE]
[--skip-no-gso] [--skip-mixed] [--baseline PATH] [--only METRIC,...] [--switch-arg=ARG]...
[--extra-setup 'NAME=ARG,...']... (without --binary it runs
`cargo build --release` first). Needs iperf3, sockperf, trafgen (netsniff-ng), ping, ip,
bridge, ss. Names carry this process's pid; every namespace and process is removed on exit, on
an exception, on Ctrl-C and on SIGTERM.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# the namespace/process bookkeeping, cleanup (registered with atexit there) and iperf3 runner
# of the system benchmark
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from system import PID, NS_PREFIX, CREATED_NS, PROCS, TMPDIRS, sh, quiet, stop_proc  # noqa: E402
from system import unix_get  # noqa: E402
import system  # noqa: E402

U1, U2 = "198.18.2.1", "198.18.2.2"
H1, H2 = "198.18.3.1", "198.18.3.2"
MACS = ("02:76:78:03:00:01", "02:76:78:03:00:02")


signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))


def netns(name):
    ns = NS_PREFIX + name
    sh(f"ip netns add {ns}")
    CREATED_NS.append(ns)
    sh(f"ip -n {ns} link set lo up")
    sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
    return ns


def underlay(tag):
    """Two site namespaces joined by a veth of MTU 1550."""
    s = [netns(f"{tag}s1"), netns(f"{tag}s2")]
    sh(f"ip link add u1 netns {s[0]} mtu 1550 type veth peer name u2 netns {s[1]} mtu 1550")
    for i, (ns, ip) in enumerate(zip(s, (U1, U2))):
        sh(f"ip -n {ns} addr add {ip}/24 dev u{i + 1}")
        sh(f"ip -n {ns} link set u{i + 1} up")
    return s


def host_ns(tag, i):
    return netns(f"{tag}h{i + 1}")


def configure_host(ns, dev, i):
    sh(f"ip -n {ns} link set dev {dev} address {MACS[i]} mtu 1500")
    sh(f"ip -n {ns} addr add {(H1, H2)[i]}/24 dev {dev}")
    sh(f"ip -n {ns} link set dev {dev} up")


def linux_site(site, h, i, local, other):
    """A Linux bridge with a veth to host `h` and a vxlan device in `site`."""
    sh(f"ip -n {site} link add br0 type bridge")
    sh(f"ip -n {site} link add vx0 mtu 1500 type vxlan id 100 local {local} dstport 4789")
    sh(f"bridge -n {site} fdb append 00:00:00:00:00:00 dev vx0 dst {other}")
    sh(f"ip -n {site} link set vx0 master br0")
    sh(f"ip link add p{i} netns {site} type veth peer name e{i} netns {h}")
    sh(f"ip -n {site} link set p{i} master br0")
    for d in ("br0", "vx0", f"p{i}"):
        sh(f"ip -n {site} link set {d} up")
    configure_host(h, f"e{i}", i)
    return f"e{i}"


class Pair:
    """Two sites joined by the underlay; each site is "linux" (bridge + Linux VTEP) or
    "tapswitch" (the binary `binary`, with `no-gso` unless `gso`)."""

    def __init__(self, name, tag, kinds, binary=None, gso=True, extra=()):
        self.name = name
        self.extra = list(extra)
        self.kinds = kinds
        self.ns = []
        self.ifs = []
        self.procs = []  # (site index, process)
        self.tmp = tempfile.mkdtemp(prefix="tsvx-")
        TMPDIRS.append(self.tmp)
        self.sites = underlay(tag)
        try:
            for i, site in enumerate(self.sites):
                local, other = ((U1, U2), (U2, U1))[i]
                h = host_ns(tag, i)
                self.ns.append(h)
                if kinds[i] == "linux":
                    self.ifs.append(linux_site(site, h, i, local, other))
                else:
                    self.ifs.append(self.tapswitch_site(tag, site, h, i, local, other,
                                                        binary, gso))
        except BaseException:
            self.close()
            raise

    def tapswitch_site(self, tag, site, h, i, local, other, binary, gso):
        tap = f"tv{PID % 100000}{tag}{i}"[:15]
        argv = ["ip", "netns", "exec", site, binary, "run", "--listen", "none",
                "--control", f"{self.tmp}/{i}.sock", *self.extra, "--port", tap,
                "--port", f"vx0=vxlan:100,local={local},remote={other}"
                + ("" if gso else ",no-gso")]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        PROCS.append(p)
        self.procs.append((i, p))
        deadline = time.time() + 15
        while True:
            line = p.stderr.readline()
            if " ready " in line:
                break
            if not line or time.time() > deadline:
                raise RuntimeError(f"tapswitch in {site} did not start: {line}")
        # keep stderr drained
        threading_drain(p)
        sh(f"ip -n {site} link set dev {tap} netns {h}")
        configure_host(h, tap, i)
        return tap

    def cpu_sites(self):
        """CPU seconds so far of each site's tapswitch (None for a Linux site)."""
        out = [None, None]
        for i, p in self.procs:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[i] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def cpu(self):
        """CPU seconds so far of the tapswitch processes, summed (None without one)."""
        if not self.procs:
            return None
        return sum(c for c in self.cpu_sites() if c is not None)

    def gso_sends(self):
        """UDP GSO sends of the tapswitch sites' vx0 so far (None if a site's metrics cannot
        be read, or there is no tapswitch site)."""
        if not self.procs:
            return None
        total = 0
        for i, _ in self.procs:
            m = re.search(r'^tapswitch_vxlan_gso_sends_total\{port="vx0"(?:,vni="\d+")?\} (\d+)',
                          unix_get(f"{self.tmp}/{i}.sock", "/metrics"), re.M)
            if m is None:
                return None
            total += int(m.group(1))
        return total

    def close(self):
        for _, p in self.procs:
            stop_proc(p)
        self.procs.clear()
        for ns in self.ns + self.sites:
            quiet(f"ip netns del {ns}")
            if ns in CREATED_NS:
                CREATED_NS.remove(ns)
        self.ns.clear()
        self.sites.clear()


def threading_drain(p):
    import threading

    def drain():
        for _ in p.stderr:
            pass
    threading.Thread(target=drain, daemon=True).start()


def warm(net):
    for _ in range(50):
        r = subprocess.run(f"ip netns exec {net.ns[0]} ping -c 1 -W 1 {H2}", shell=True,
                           capture_output=True)
        if r.returncode == 0:
            # and back, so both sites (and both hosts) know each other's MACs
            subprocess.run(f"ip netns exec {net.ns[1]} ping -c 1 -W 1 {H1}", shell=True,
                           capture_output=True)
            return
    raise RuntimeError(f"{net.name}: hosts do not reach each other")


def iperf(net, streams, seconds, reverse=False):
    """iperf3 from host 1 to host 2 (`reverse`: host 2 sends): (Gbit/s, tapswitch cores)."""
    srv = system.server(net.ns[1], ["iperf3", "-s", "-1", "-B", H2], "tcp", 5201)
    try:
        c0 = net.cpu()
        t0 = time.time()
        out = sh(f"ip netns exec {net.ns[0]} iperf3 -c {H2} -J -t {seconds} -P {streams}"
                 + (" -R" if reverse else ""), timeout=seconds + 30)
        wall = time.time() - t0
        c1 = net.cpu()
        srv.wait(10)
    finally:
        stop_proc(srv)
    gbps = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    cpu = (c1 - c0) / wall if c0 is not None else None
    return gbps, cpu


def ping_rtts(net, interval, seconds):
    """p50 and p99 (us) of the RTTs of pings from host 1 to host 2 every `interval` s, or
    back to back (`interval` 0: `ping -i 0`, the next request as soon as the reply is back,
    one in flight, with a line per reply so p99 can be taken)."""
    count = max(20, int(seconds / interval)) if interval > 0 else 10_000_000
    deadline = seconds + 2 if interval else seconds
    out = sh(f"ip netns exec {net.ns[0]} ping -n -c {count} -i {interval} -W 1 -w {deadline} "
             f"{H2}", check=False, timeout=seconds + 30)
    rtts = sorted(float(m) * 1000 for m in re.findall(r"time[=<]([0-9.]+) ms", out))
    if len(rtts) < 10:
        return None, None
    return system.pct(rtts, 0.50), system.pct(rtts, 0.99)


def request_response(net, proto, seconds, size=64):
    """sockperf ping-pong from host 1 to a server on host 2, back to back (one message of
    `size` bytes in flight, the server echoes it): transactions/s, RTT p50 and p99 (us)."""
    port = 11111
    extra = ["--tcp"] if proto == "tcp" else []
    srv = system.server(net.ns[1], ["sockperf", "sr", "-i", H2, "-p", str(port), *extra],
                        proto, port)
    try:
        t = max(2, seconds)
        out = sh(f"ip netns exec {net.ns[0]} sockperf pp -i {H2} -p {port} {' '.join(extra)} "
                 f"-m {size} -t {t} --full-rtt --no-rdtsc 2>&1", check=False, timeout=t + 30)
    finally:
        stop_proc(srv)
    pcts = {m.group(1): float(m.group(2))
            for m in re.finditer(r"percentile (\d+\.\d+) =\s*([0-9.]+)", out)}
    valid = re.search(r"\[Valid Duration\] RunTime=([0-9.]+) sec; SentMessages=\d+; "
                      r"ReceivedMessages=(\d+)", out)
    tps = int(valid.group(2)) / float(valid.group(1)) if valid and float(valid.group(1)) else None
    return tps, pcts.get("50.000"), pcts.get("99.000")


def small_frames(net, seconds):
    """60-byte frames (Ethernet, IPv4, UDP to the discard port) from host 1 to host 2's MAC as
    fast as one trafgen sends them, counted at host 2's interface: frames/s, and each
    tapswitch site's CPU per frame received (us; None for a Linux site)."""
    dst = system.mac_of(net.ns[1], net.ifs[1])
    src = system.mac_of(net.ns[0], net.ifs[0])
    mac = lambda m: ", ".join("0x" + b for b in m.split(":"))
    ip = lambda a: a.replace(".", ", ")
    conf = (
        "{ " + mac(dst) + ", " + mac(src) + ", 0x08, 0x00, "
        "0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33), "
        + ip(H1) + ", " + ip(H2) + ", "
        "0x30, 0x39, 0x00, 0x09, 0x00, 0x1a, 0x00, 0x00, "
        + ", ".join(["0x00"] * 18) + " }\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(conf)
        path = f.name
    try:
        r0 = system.rx_packets(net.ns[1], net.ifs[1])
        c0 = net.cpu_sites()
        t0 = time.time()
        gen = subprocess.Popen(["ip", "netns", "exec", net.ns[0], "trafgen", "-o", net.ifs[0],
                                "-i", path, "-q", "-P", "1", "-n", "100000000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
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
        c1 = net.cpu_sites()
        frames = system.rx_packets(net.ns[1], net.ifs[1]) - r0
    finally:
        os.unlink(path)
    per = [(b - a) / frames * 1e6 if a is not None and frames else None
           for a, b in zip(c0, c1)]
    return frames / wall, per[0], per[1]


METRICS = [
    ("tcp1_gbps", "TCP, 1 stream, host 1 -> host 2 (Gbit/s)"),
    ("tcp1_rev_gbps", "TCP, 1 stream, host 2 -> host 1 (Gbit/s)"),
    ("tcp4_gbps", "TCP, 4 streams (Gbit/s)"),
    ("ping5ms_p50_us", "ping every 5 ms, RTT p50 (us)"),
    ("ping5ms_p99_us", "ping every 5 ms, RTT p99 (us)"),
    ("pingb2b_p50_us", "ping back to back (-i 0), RTT p50 (us)"),
    ("pingb2b_p99_us", "ping back to back (-i 0), RTT p99 (us)"),
    ("udp_rr_tps", "UDP request/response, 64 bytes (transactions/s)"),
    ("udp_rr_p50_us", "UDP request/response, RTT p50 (us)"),
    ("udp_rr_p99_us", "UDP request/response, RTT p99 (us)"),
    ("tcp_rr_tps", "TCP request/response, 64 bytes (transactions/s)"),
    ("tcp_rr_p50_us", "TCP request/response, RTT p50 (us)"),
    ("tcp_rr_p99_us", "TCP request/response, RTT p99 (us)"),
    ("fps_60B", "60-byte frames through the tunnel (frames/s at host 2)"),
    ("us_per_frame_s1", "site 1 (sending) tapswitch CPU per 60-byte frame (us)"),
    ("us_per_frame_s2", "site 2 (receiving) tapswitch CPU per 60-byte frame (us)"),
    ("cpu_cores_tcp1", "tapswitch CPU during 1 TCP stream, both sites (cores)"),
    ("gso_sends_tcp1", "UDP GSO sends during 1 TCP stream (a check, not a speed)"),
]


def measure(net, secs):
    warm(net)
    row = {}
    before = net.gso_sends()
    row["tcp1_gbps"], row["cpu_cores_tcp1"] = iperf(net, 1, secs)
    after = net.gso_sends()
    row["gso_sends_tcp1"] = after - before if before is not None and after is not None else None
    row["tcp1_rev_gbps"], _ = iperf(net, 1, secs, reverse=True)
    row["tcp4_gbps"], _ = iperf(net, 4, secs)
    row["ping5ms_p50_us"], row["ping5ms_p99_us"] = ping_rtts(net, 0.005, min(secs, 3))
    row["pingb2b_p50_us"], row["pingb2b_p99_us"] = ping_rtts(net, 0, min(secs, 3))
    for proto in ("udp", "tcp"):
        (row[f"{proto}_rr_tps"], row[f"{proto}_rr_p50_us"],
         row[f"{proto}_rr_p99_us"]) = request_response(net, proto, secs)
    row["fps_60B"], row["us_per_frame_s1"], row["us_per_frame_s2"] = small_frames(net, secs)
    return row


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--binary")
    ap.add_argument("--json")
    ap.add_argument("--skip-no-gso", action="store_true",
                    help="leave out the 'tapswitch no-gso' setup")
    ap.add_argument("--skip-mixed", action="store_true",
                    help="leave out the 'mixed' setup (site 1 tapswitch, site 2 Linux)")
    ap.add_argument("--baseline", metavar="PATH",
                    help="add the setup 'tapswitch before': this other build (e.g. the main "
                         "branch's) run as 'tapswitch' is, for a same-run before/after")
    ap.add_argument("--switch-arg", action="append", default=[], metavar="ARG",
                    help="one more argument for every tapswitch `run` (repeatable), e.g. "
                         "--switch-arg=--busy-poll-us=0")
    ap.add_argument("--extra-setup", metavar="NAME=ARG[,ARG...]", action="append", default=[],
                    help="one more tapswitch column run with these extra arguments, e.g. "
                         "'busy 200=--busy-poll-us=200'")
    ap.add_argument("--only", metavar="METRIC,...",
                    help="measure only these metrics (quick iterations), e.g. tcp1_gbps")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    for tool in ("iperf3", "ip", "bridge", "ss", "ping", "sockperf", "trafgen"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install iperf3 iproute2 iputils-ping sockperf "
                     "netsniff-ng)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
        binary = os.path.join(root, "target", "release", "tapswitch")
    secs = int(max(1, a.seconds))
    ts, lx = "tapswitch", "linux"
    ex = a.switch_arg
    kinds = [("linux", lambda tag: Pair("linux", tag, (lx, lx))),
             ("tapswitch", lambda tag: Pair("tapswitch", tag + "t", (ts, ts), binary, extra=ex))]
    if not a.skip_no_gso:
        kinds.append(("tapswitch no-gso", lambda tag: Pair("tapswitch no-gso", tag + "n", (ts, ts),
                                                           binary, False, extra=ex)))
    if a.baseline:
        kinds.append(("tapswitch before", lambda tag: Pair("tapswitch before", tag + "b", (ts, ts),
                                                           a.baseline, extra=ex)))
    if not a.skip_mixed:
        kinds.append(("mixed", lambda tag: Pair("mixed", tag + "m", (ts, lx), binary, extra=ex)))
    for k, spec in enumerate(a.extra_setup):
        name, _, args = spec.partition("=")
        more = ex + [x for x in args.split(",") if x]
        kinds.append((name, lambda tag, name=name, more=more, k=k: Pair(
            name, f"{tag}x{k}", (ts, ts), binary, extra=more)))
    setups = [k for k, _ in kinds]
    results = {s: {} for s in setups}
    only = set(a.only.split(",")) if a.only else None
    for r in range(a.rounds):
        # rotate the order round by round, so no setup always runs first or last
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for name, make in order:
            net = make(f"r{r}")
            try:
                if only:
                    warm(net)
                    row = {}
                    if only & {"tcp1_gbps", "cpu_cores_tcp1", "gso_sends_tcp1"}:
                        row["tcp1_gbps"], row["cpu_cores_tcp1"] = iperf(net, 1, secs)
                    if "tcp4_gbps" in only:
                        row["tcp4_gbps"], _ = iperf(net, 4, secs)
                    if "tcp1_rev_gbps" in only:
                        row["tcp1_rev_gbps"], _ = iperf(net, 1, secs, reverse=True)
                    if only & {"ping5ms_p50_us", "ping5ms_p99_us"}:
                        row["ping5ms_p50_us"], row["ping5ms_p99_us"] = ping_rtts(
                            net, 0.005, min(secs, 3))
                    if only & {"pingb2b_p50_us", "pingb2b_p99_us"}:
                        row["pingb2b_p50_us"], row["pingb2b_p99_us"] = ping_rtts(
                            net, 0, min(secs, 3))
                    for proto in ("udp", "tcp"):
                        if only & {f"{proto}_rr_tps", f"{proto}_rr_p50_us", f"{proto}_rr_p99_us"}:
                            (row[f"{proto}_rr_tps"], row[f"{proto}_rr_p50_us"],
                             row[f"{proto}_rr_p99_us"]) = request_response(net, proto, secs)
                else:
                    row = measure(net, secs)
            finally:
                net.close()
            for k, v in row.items():
                results[name].setdefault(k, []).append(v)
            print(f"round {r + 1} {name:16} " + "  ".join(
                f"{k} {fmt(v)}" for k, v in row.items()), flush=True)
    print(f"\nmedians of {a.rounds} rounds of {secs} s; ratios to linux (for RTTs and CPU, "
          "lower is better)")
    others = setups[1:]
    print(f"{'metric':18} {'linux':>10}" + "".join(f" {s:>16} {'ratio':>7}" for s in others))
    for k, _ in METRICS:
        med = {}
        for s in setups:
            vals = [v for v in results[s].get(k, []) if v is not None]
            med[s] = statistics.median(vals) if vals else None
        if all(v is None for v in med.values()):
            continue
        line = f"{k:18} {fmt(med['linux']):>10}"
        for s in others:
            ratio = (f"{med[s] / med['linux']:.2f}x"
                     if med["linux"] and med[s] is not None else "-")
            line += f" {fmt(med[s]):>16} {ratio:>7}"
        print(line)
    print()
    for k, label in METRICS:
        print(f"{k:18} {label}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
