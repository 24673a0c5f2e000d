#!/usr/bin/env python3
"""Guest to guest TCP through tapswitch, by attachment: vhost-user ports, `stream:` ports, and
QEMU's own `-netdev tap` attached as `packet:` ports. Two QEMU guests (TCG on these machines:
absolute numbers say little, the ratios are the point) send N bytes with nc; each round runs
the three attachments in a rotated order; the table shows medians of the guest-measured
transfer times and throughput, and ratios to `stream:`.

Run as root: python3 benches/qemu_guests.py [--rounds 3] [--bytes 20000000] [--binary PATH]
The guest image is built by tests/qemu/build-guest.sh (cached under /var/cache/tapswitch-tests).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def guest(img, n, role, netdev_args, log, nbytes, extra_dev=""):
    append = ("console=ttyS0 quiet panic=-1 ts_ip=198.18.7.%d ts_peer=198.18.7.1 ts_role=%s "
              "ts_bytes=%d" % (n, role, nbytes))
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none",
            "-no-reboot", "-serial", "file:%s" % log, "-kernel", img[0], "-initrd", img[1],
            "-append", append] + netdev_args + [
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:7a:00:0%d%s" % (n, extra_dev)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def marker(log, key):
    try:
        with open(log) as f:
            for line in f:
                if line.startswith(key):
                    return line[len(key):].strip()
    except OSError:
        pass
    return None


def wait(pred, secs):
    t = time.time()
    while time.time() - t < secs:
        if pred():
            return True
        time.sleep(0.2)
    return False


def run_once(mode, binary, img, nbytes, tag):
    d = tempfile.mkdtemp(prefix="tsw-qbench-")
    procs = []
    try:
        s_log, c_log = os.path.join(d, "s.log"), os.path.join(d, "c.log")
        pid = os.getpid() % 100000
        if mode == "vhost":
            socks = [os.path.join(d, "a.sock"), os.path.join(d, "b.sock")]
            ports = ["va=vhost:%s" % socks[0], "vb=vhost:%s" % socks[1]]
        elif mode == "stream":
            socks = [os.path.join(d, "s.sock")] * 2
            ports = ["vm=stream:%s" % socks[0]]
        else:
            taps = ["tqb%d%s%d" % (pid, tag, i) for i in range(2)]
            ports = ["packet:%s" % t for t in taps]
        if mode == "packet":
            for i, t in enumerate(taps):
                procs.append(guest(img, i + 1, "server" if i == 0 else "client",
                                   ["-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % t],
                                   s_log if i == 0 else c_log, nbytes))
            wait(lambda: all(os.path.exists("/sys/class/net/" + t) for t in taps), 10)
        argv = [binary, "run", "--listen", "none", "--control", "none", "--no-default-ports"]
        for p in ports:
            argv += ["--port", p]
        sw = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sw)
        if mode != "packet":
            wait(lambda: all(os.path.exists(s) for s in socks), 10)
            for i in range(2):
                if mode == "vhost":
                    nd = ["-object", "memory-backend-memfd,id=mem,size=256M,share=on",
                          "-machine", "memory-backend=mem",
                          "-chardev", "socket,id=c0,path=%s" % socks[i],
                          "-netdev", "vhost-user,id=n0,chardev=c0"]
                    extra = ",vectors=0"
                else:
                    nd = ["-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=%s" % socks[i]]
                    extra = ""
                procs.append(guest(img, i + 1, "server" if i == 0 else "client", nd,
                                   s_log if i == 0 else c_log, nbytes, extra))
        ok = wait(lambda: marker(c_log, "TS_DONE") is not None, 300)
        x = marker(c_log, "TS_XFER")
        tx, rx = marker(c_log, "TS_TX_SHA"), marker(s_log, "TS_RX_SHA")
        if not ok or not x or tx != rx:
            print("  %s: failed (done=%s, sha match=%s)" % (mode, ok, tx == rx), flush=True)
            return None
        t0, t1 = (float(v) for v in x.split())
        return t1 - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bytes", type=int, default=20_000_000)
    ap.add_argument("--binary", default=None)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (QEMU makes taps for the packet: case)")
    binary = a.binary
    if binary is None:
        subprocess.run("cd %s && cargo build --release -q" % ROOT, shell=True, check=True)
        binary = os.path.join(ROOT, "target", "release", "tapswitch")
    out = subprocess.run(["bash", os.path.join(ROOT, "tests/qemu/build-guest.sh")],
                         capture_output=True, text=True, check=True).stdout.split()
    img = (out[0], out[1])
    modes = ["vhost", "stream", "packet"]
    res = {m: [] for m in modes}
    for r in range(a.rounds):
        order = modes[r % 3:] + modes[:r % 3]
        for m in order:
            secs = run_once(m, binary, img, a.bytes, "%d%s" % (r, m[0]))
            if secs is not None:
                res[m].append(secs)
                print("round %d %-7s %.2f s, %.1f Mbit/s" % (r + 1, m, secs, a.bytes * 8 / secs / 1e6),
                      flush=True)
    med = {m: statistics.median(v) for m, v in res.items() if v}
    print()
    print("| attachment (median of %d rounds, %d MB guest to guest, TCG) | seconds | Mbit/s | vs stream: |"
          % (a.rounds, a.bytes // 1_000_000))
    print("|---|---|---|---|")
    names = {"vhost": "vhost-user (`vhost:`)", "stream": "`-netdev stream` (`stream:`)",
             "packet": "`-netdev tap` + `packet:`"}
    for m in modes:
        if m in med:
            ratio = med["stream"] / med[m] if "stream" in med else float("nan")
            print("| %s | %.2f | %.1f | %.2fx |" % (names[m], med[m], a.bytes * 8 / med[m] / 1e6, ratio))


if __name__ == "__main__":
    main()
