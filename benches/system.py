#!/usr/bin/env python3
"""Side-by-side system benchmark: tapswitch vs the Linux bridge, interleaved rounds.

Two namespace hosts talk through (a) tapswitch with two TAP ports and (b) a Linux bridge over
veth pairs, alternately, for several rounds. Printed: medians per metric and the ratio
tapswitch / bridge.

Metrics: TCP goodput with 1 and 4 streams (iperf3), 60-byte frame forwarding rate (trafgen from
netsniff-ng, counted at the receiving interface), round-trip latency p50/p99 (ping at 5 ms
intervals), and tapswitch's CPU (seconds of CPU per second during TCP, microseconds per frame
during the 60-byte test).

Run as root: python3 benches/system.py [--rounds 5] [--seconds 5] [--binary PATH] [--switch-arg=ARG]...
Addresses come from 198.18.0.0/15; every namespace and link is removed on exit.
"""
import argparse
import atexit
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

PID = os.getpid()
CREATED_NS = []
CREATED_LINKS = []
PROCS = []


def sh(cmd, check=True, capture=True, timeout=120):
    r = subprocess.run(cmd, shell=True, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr.strip()}")
    return r.stdout if capture else ""


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    for ns in CREATED_NS:
        sh(f"ip netns del {ns}", check=False)
    for link in CREATED_LINKS:
        sh(f"ip link del {link}", check=False)


atexit.register(cleanup)


def ensure_tools():
    need = {"iperf3": "iperf3", "trafgen": "netsniff-ng", "ping": "iputils-ping", "ip": "iproute2"}
    missing = [pkg for tool, pkg in need.items() if shutil.which(tool) is None]
    if missing:
        sh("apt-get update -qq", capture=False)
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
           + " ".join(missing), capture=False)


def netns(name):
    sh(f"ip netns add {name}")
    CREATED_NS.append(name)
    sh(f"ip -n {name} link set lo up")
    return name


def host(ns, ifname, addr):
    sh(f"ip -n {ns} addr add {addr}/24 dev {ifname}")
    sh(f"ip -n {ns} link set {ifname} up")


class Bridge:
    label = "bridge"

    def __init__(self, tag):
        self.br = f"tsbb{tag}"
        sh(f"ip link add {self.br} type bridge")
        CREATED_LINKS.append(self.br)
        sh(f"ip link set {self.br} up")
        self.ns = []
        self.ifs = []
        for i in range(2):
            ns = netns(f"tsbench-{PID}-b{tag}{i}")
            a, b = f"tsbv{tag}{i}", f"tsbp{tag}{i}"
            sh(f"ip link add {a} type veth peer name {b}")
            CREATED_LINKS.append(b)
            sh(f"ip link set {a} netns {ns}")
            sh(f"ip link set {b} master {self.br} up")
            host(ns, a, f"198.18.1.{i + 1}")
            self.ns.append(ns)
            self.ifs.append(a)
        self.proc = None

    def cpu(self):
        return None

    def close(self):
        for ns in self.ns:
            sh(f"ip netns del {ns}", check=False)
            CREATED_NS.remove(ns)
        sh(f"ip link del {self.br}", check=False)
        CREATED_LINKS.remove(self.br)


class Tapswitch:
    label = "tapswitch"

    def __init__(self, tag, binary, extra=()):
        self.taps = [f"tsbt{tag}{i}" for i in range(2)]
        args = [binary, "run", "--listen", "none", "--control", "none", *extra]
        for t in self.taps:
            args += ["--port", t]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        PROCS.append(self.proc)
        deadline = time.time() + 10
        while True:
            line = self.proc.stderr.readline()
            if "ready" in line:
                break
            if not line or time.time() > deadline:
                raise RuntimeError("tapswitch did not start")
        # keep stderr drained
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.ns = []
        self.ifs = []
        for i, t in enumerate(self.taps):
            ns = netns(f"tsbench-{PID}-t{tag}{i}")
            sh(f"ip link set {t} netns {ns}")
            host(ns, t, f"198.18.1.{i + 1}")
            self.ns.append(ns)
            self.ifs.append(t)

    def cpu(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        for ns in self.ns:
            sh(f"ip netns del {ns}", check=False)
            CREATED_NS.remove(ns)


def warm(net):
    sh(f"ip netns exec {net.ns[0]} ping -c 3 -i 0.2 -W 1 198.18.1.2")


def iperf(net, streams, seconds):
    srv = subprocess.Popen(["ip", "netns", "exec", net.ns[1], "iperf3", "-s", "-1", "-B", "198.18.1.2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(srv)
    time.sleep(0.3)
    c0 = net.cpu()
    t0 = time.time()
    out = sh(f"ip netns exec {net.ns[0]} iperf3 -c 198.18.1.2 -J -t {seconds} -P {streams}",
             timeout=seconds + 30)
    wall = time.time() - t0
    c1 = net.cpu()
    srv.wait(10)
    gbps = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    cpu = (c1 - c0) / wall if c0 is not None else None
    return gbps, cpu


def rx_packets(ns, ifname):
    out = sh(f"ip -n {ns} -s -j link show dev {ifname}")
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def mac_of(ns, ifname):
    return json.loads(sh(f"ip -n {ns} -j link show dev {ifname}"))[0]["address"]


def small_frames(net, seconds):
    dst = mac_of(net.ns[1], net.ifs[1])
    src = mac_of(net.ns[0], net.ifs[0])
    mac = lambda m: ", ".join("0x" + b for b in m.split(":"))
    # 60 bytes: Ethernet + IPv4 + UDP (discard port 9) + payload, to host 2's MAC
    conf = (
        "{ " + mac(dst) + ", " + mac(src) + ", 0x08, 0x00, "
        "0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33), "
        "198, 18, 1, 1, 198, 18, 1, 2, "
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
        time.sleep(seconds)
        os.killpg(gen.pid, signal.SIGINT)
        try:
            gen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(gen.pid, signal.SIGKILL)
            gen.wait(10)
        time.sleep(0.5)
        wall = time.time() - t0 - 0.5
        c1 = net.cpu()
        frames = rx_packets(net.ns[1], net.ifs[1]) - r0
    finally:
        os.unlink(path)
    fps = frames / wall
    us_per_frame = (c1 - c0) / frames * 1e6 if c0 is not None and frames else None
    return fps, us_per_frame


def latency(net, count=400):
    out = sh(f"ip netns exec {net.ns[0]} ping -c {count} -i 0.005 -W 1 -q -D 198.18.1.2 2>&1; "
             f"ip netns exec {net.ns[0]} ping -c {count} -i 0.005 -W 1 198.18.1.2", timeout=60)
    rtts = sorted(float(m) for m in re.findall(r"time=([0-9.]+) ms", out))
    if not rtts:
        return None, None
    p = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))]
    return p(0.50) * 1000, p(0.99) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--binary", default=None)
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--switch-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `tapswitch run`, e.g. --switch-arg=--busy-poll-us=50")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds network namespaces, TAPs and a bridge")
    ensure_tools()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.binary
    if binary is None:
        sh(f"cd {root} && cargo build --release -q", capture=False, timeout=1800)
        binary = os.path.join(root, "target", "release", "tapswitch")
    metrics = ["tcp1_gbps", "tcp4_gbps", "fps_60B", "rtt_p50_us", "rtt_p99_us", "cpu_tcp1", "us_per_frame"]
    res = {"bridge": {m: [] for m in metrics}, "tapswitch": {m: [] for m in metrics}}
    for r in range(a.rounds):
        for kind in (["bridge", "tapswitch"] if r % 2 == 0 else ["tapswitch", "bridge"]):
            net = Bridge(r) if kind == "bridge" else Tapswitch(r, binary, a.switch_arg)
            try:
                warm(net)
                g1, cpu1 = iperf(net, 1, a.seconds)
                g4, _ = iperf(net, 4, a.seconds)
                fps, upf = small_frames(net, a.seconds)
                p50, p99 = latency(net)
            finally:
                net.close()
            row = dict(tcp1_gbps=g1, tcp4_gbps=g4, fps_60B=fps, rtt_p50_us=p50, rtt_p99_us=p99,
                       cpu_tcp1=cpu1, us_per_frame=upf)
            for m, v in row.items():
                if v is not None:
                    res[kind][m].append(v)
            print(f"round {r + 1} {kind:9}: " + ", ".join(
                f"{m}={v:.3g}" for m, v in row.items() if v is not None), flush=True)
    print()
    print(f"| metric (median of {a.rounds} rounds) | Linux bridge | tapswitch | ratio |")
    print("|---|---|---|---|")
    for m in metrics:
        b = statistics.median(res["bridge"][m]) if res["bridge"][m] else None
        t = statistics.median(res["tapswitch"][m]) if res["tapswitch"][m] else None
        ratio = f"{t / b:.2f}x" if b and t else "-"
        fmt = lambda v: "-" if v is None else f"{v:.3g}"
        print(f"| {m} | {fmt(b)} | {fmt(t)} | {ratio} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
