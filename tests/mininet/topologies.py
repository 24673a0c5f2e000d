#!/usr/bin/python3
"""Mininet with TapSwitch on single, linear and tree topologies, and a ring of four switches with
the spanning tree on (stp=1): pingall without loss and an
iperf3 TCP test between the two farthest hosts. Run as root with the system python3; prints
`RESULT <topo> loss=<percent> gbps=<value>` lines and exits non-zero on any failure.

Cleans up only what it started (never `mn -c`, never Mininet's iperf helper, which kills every
iperf on the machine)."""
import functools
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "mininet"))

from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from mininet.topo import LinearTopo, SingleSwitchTopo, Topo  # noqa: E402
from mininet.topolib import TreeTopo  # noqa: E402
from tapswitch import TapSwitch  # noqa: E402


class RingTopo(Topo):
    """k switches in a ring, one host each: a loop only a spanning tree makes safe."""

    def build(self, k=4):
        sws = [self.addSwitch("s%d" % (i + 1)) for i in range(k)]
        for i, s in enumerate(sws):
            self.addLink(self.addHost("h%d" % (i + 1)), s)
        for i in range(k):
            self.addLink(sws[i], sws[(i + 1) % k])


def run(name, topo, stp=False):
    switch = functools.partial(TapSwitch, stp=stp)
    net = Mininet(topo=topo, switch=switch, controller=None, autoSetMacs=True, waitConnected=False)
    ok = True
    try:
        net.start()
        if stp:
            t = time.time()
            if not net.waitConnected(timeout=60, delay=0.2):
                print("RESULT %s loss=100 gbps=0 (spanning tree did not settle)" % name, flush=True)
                return False
            print("spanning tree settled in %.1f s" % (time.time() - t), flush=True)
        loss = net.pingAll(timeout=2)
        h1, hn = net.hosts[0], net.hosts[-1]
        hn.cmd("iperf3 -s -1 -D -B %s" % hn.IP())
        out = h1.cmd("sleep 0.3; iperf3 -c %s -t 2 -f g | grep receiver" % hn.IP())
        try:
            gbps = float(out.split()[6])
        except (IndexError, ValueError):
            gbps = 0.0
        print("RESULT %s loss=%s gbps=%.2f" % (name, loss, gbps), flush=True)
        ok = loss == 0 and gbps > 0
        if not ok:
            print("iperf output: %r" % out)
    finally:
        net.stop()
    return ok


def main():
    setLogLevel("warning")
    results = [
        run("single", SingleSwitchTopo(k=3)),
        run("linear", LinearTopo(k=3, n=1)),
        run("tree", TreeTopo(depth=2, fanout=2)),
        run("ring", RingTopo(k=4), stp=True),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
