#!/usr/bin/env python3
"""VXLAN benchmark: TCP between hosts on two sites through a VXLAN tunnel, tapswitch against the
Linux bridge with Linux VTEPs, in interleaved rounds.

Both setups have the same shape: two site namespaces joined by a veth underlay (MTU 1550, so
the tunnel carries 1500-byte frames; 198.18.2.1 and .2), one host namespace per site
(198.18.3.1 and .2, MTU 1500), VNI 100, UDP port 4789, the flood list naming the other site:
  linux      in each site a Linux bridge with a veth to its host and a vxlan device
             (`ip link add vx0 type vxlan id 100 local ... dstport 4789` +
             `bridge fdb append 00:00:00:00:00:00 dev vx0 dst OTHER`); offloads as Linux sets
             them (GSO through the tunnel, GRO on receive);
  tapswitch  in each site `tapswitch run --port TAP --port vx0=vxlan:100,local=...,remote=...`
             with the host on the TAP (virtio_net_hdr offloads: the host sends 64 KiB GSO frames,
             which tapswitch cuts into segments and sends as one UDP GSO batch each; the
             receiving hub socket has UDP_GRO on);
  tapswitch no-gso
             the same with `no-gso` on both vxlan ports: one sendmsg per datagram (GSO send
             off; receive unchanged). `--skip-no-gso` leaves this setup out.
The order rotates from round to round. Printed: each round's numbers, then the median per metric
and setup and the ratio of each tapswitch setup to linux.

Metrics: TCP goodput with 1 and 4 streams (iperf3), ping round trip p50 (a ping every 5 ms),
the CPU the two tapswitch processes use during the 1-stream test (cores, summed), and the UDP
GSO sends both tapswitch sites made during the 1-stream test (`tapswitch_vxlan_gso_sends_total`;
0 with no-gso; a check that GSO send was in use, not a speed).

Run as root: python3 benches/vxlan.py [--rounds 5] [--seconds 5] [--binary PATH] [--json FILE]
[--skip-no-gso] [--baseline PATH] (another build as the setup "tapswitch before": a same-run
before/after) (without --binary it runs `cargo build --release` first). Names carry this
process's pid; every namespace and process is removed on exit, on an exception, on Ctrl-C and
on SIGTERM.
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


class Linux:
    name = "linux"

    def __init__(self, tag):
        self.sites = underlay(tag)
        self.ns = []
        for i, site in enumerate(self.sites):
            h = host_ns(tag, i)
            self.ns.append(h)
            local, other = ((U1, U2), (U2, U1))[i]
            sh(f"ip -n {site} link add br0 type bridge")
            sh(f"ip -n {site} link add vx0 mtu 1500 type vxlan id 100 local {local} dstport 4789")
            sh(f"bridge -n {site} fdb append 00:00:00:00:00:00 dev vx0 dst {other}")
            sh(f"ip -n {site} link set vx0 master br0")
            sh(f"ip link add p{i} netns {site} type veth peer name e{i} netns {h}")
            sh(f"ip -n {site} link set p{i} master br0")
            for d in ("br0", "vx0", f"p{i}"):
                sh(f"ip -n {site} link set {d} up")
            configure_host(h, f"e{i}", i)

    def cpu(self):
        return None

    def gso_sends(self):
        return None

    def close(self):
        for ns in self.ns + self.sites:
            quiet(f"ip netns del {ns}")
            if ns in CREATED_NS:
                CREATED_NS.remove(ns)


class Tapswitch:
    def __init__(self, tag, binary, gso=True, name=None):
        self.name = name or ("tapswitch" if gso else "tapswitch no-gso")
        self.sites = underlay(tag)
        self.ns = []
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="tsvx-")
        TMPDIRS.append(self.tmp)
        for i, site in enumerate(self.sites):
            local, other = ((U1, U2), (U2, U1))[i]
            tap = f"tv{PID % 100000}{tag}{i}"[:15]
            argv = ["ip", "netns", "exec", site, binary, "run", "--listen", "none",
                    "--control", f"{self.tmp}/{i}.sock", "--port", tap,
                    "--port", f"vx0=vxlan:100,local={local},remote={other}"
                    + ("" if gso else ",no-gso")]
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            PROCS.append(p)
            self.procs.append(p)
            deadline = time.time() + 15
            while True:
                line = p.stderr.readline()
                if " ready " in line:
                    break
                if not line or time.time() > deadline:
                    raise RuntimeError(f"tapswitch in {site} did not start: {line}")
            # keep stderr drained
            threading_drain(p)
            h = host_ns(tag, i)
            self.ns.append(h)
            sh(f"ip -n {site} link set dev {tap} netns {h}")
            configure_host(h, tap, i)

    def cpu(self):
        total = 0
        for p in self.procs:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def gso_sends(self):
        """UDP GSO sends of both sites' vx0 so far (None if a site's metrics cannot be read)."""
        total = 0
        for i in range(len(self.procs)):
            m = re.search(r'^tapswitch_vxlan_gso_sends_total\{port="vx0"(?:,vni="\d+")?\} (\d+)',
                          unix_get(f"{self.tmp}/{i}.sock", "/metrics"), re.M)
            if m is None:
                return None
            total += int(m.group(1))
        return total

    def close(self):
        for p in self.procs:
            stop_proc(p)
        for ns in self.ns + self.sites:
            quiet(f"ip netns del {ns}")
            if ns in CREATED_NS:
                CREATED_NS.remove(ns)


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
            return
    raise RuntimeError(f"{net.name}: hosts do not reach each other")


def iperf(net, streams, seconds):
    return system.iperf(net, streams, seconds, dst=H2)


def ping_p50(net, seconds):
    n = max(20, int(seconds / 0.005))
    out = sh(f"ip netns exec {net.ns[0]} ping -n -i 0.005 -c {n} -W 1 {H2}", timeout=seconds + 30)
    rtts = sorted(float(m) for m in re.findall(r"time=([\d.]+) ms", out))
    return statistics.median(rtts) * 1000 if rtts else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--binary")
    ap.add_argument("--json")
    ap.add_argument("--skip-no-gso", action="store_true",
                    help="leave out the 'tapswitch no-gso' setup")
    ap.add_argument("--baseline", metavar="PATH",
                    help="add the setup 'tapswitch before': this other build (e.g. the main "
                         "branch's) run as 'tapswitch' is, for a same-run before/after")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    for tool in ("iperf3", "ip", "bridge", "ss", "ping"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install iperf3 iproute2 iputils-ping)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
        binary = os.path.join(root, "target", "release", "tapswitch")
    secs = int(max(1, a.seconds))
    setups = ["linux", "tapswitch"] + ([] if a.skip_no_gso else ["tapswitch no-gso"])
    if a.baseline:
        setups.append("tapswitch before")
    results = {s: {} for s in setups}
    kinds = [lambda tag: Linux(tag), lambda tag: Tapswitch(tag, binary)]
    if not a.skip_no_gso:
        kinds.append(lambda tag: Tapswitch(tag + "n", binary, gso=False))
    if a.baseline:
        kinds.append(lambda tag: Tapswitch(tag + "b", a.baseline, name="tapswitch before"))
    for r in range(a.rounds):
        # rotate the order round by round, so no setup always runs first or last
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for make in order:
            net = make(f"r{r}")
            try:
                warm(net)
                before = net.gso_sends()
                g1, cpu = iperf(net, 1, secs)
                after = net.gso_sends()
                g4, _ = iperf(net, 4, secs)
                p50 = ping_p50(net, min(secs, 3))
            finally:
                net.close()
            gso = after - before if before is not None and after is not None else None
            row = {"tcp1_gbps": g1, "tcp4_gbps": g4, "rtt_p50_us": p50, "cpu_cores_tcp1": cpu,
                   "gso_sends_tcp1": gso}
            for k, v in row.items():
                results[net.name].setdefault(k, []).append(v)
            print(f"round {r + 1} {net.name:16} tcp1 {g1:6.2f} Gbit/s  tcp4 {g4:6.2f} Gbit/s  "
                  f"rtt p50 {p50 or 0:6.0f} us" + (f"  cpu {cpu:.2f}" if cpu is not None else "")
                  + (f"  gso sends {gso}" if gso is not None else ""), flush=True)
    print(f"\nmedians of {a.rounds} rounds of {secs} s; ratios to linux")
    ts = setups[1:]
    print(f"{'metric':18} {'linux':>10}" + "".join(f" {s:>16} {'ratio':>7}" for s in ts))
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    for k in ("tcp1_gbps", "tcp4_gbps", "rtt_p50_us", "cpu_cores_tcp1", "gso_sends_tcp1"):
        med = {}
        for s in setups:
            vals = [v for v in results[s].get(k, []) if v is not None]
            med[s] = statistics.median(vals) if vals else None
        line = f"{k:18} {fmt(med['linux']):>10}"
        for s in ts:
            ratio = (f"{med[s] / med['linux']:.2f}x"
                     if med["linux"] and med[s] is not None else "-")
            line += f" {fmt(med[s]):>16} {ratio:>7}"
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
