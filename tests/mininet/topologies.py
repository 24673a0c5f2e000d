#!/usr/bin/python3
"""Mininet with TapSwitch on single, linear and tree topologies: pingall without loss and an
iperf3 TCP test between the two farthest hosts. Run as root with the system python3; prints
`RESULT <topo> loss=<percent> gbps=<value>` lines and exits non-zero on any failure.

Cleans up only what it started (never `mn -c`, never Mininet's iperf helper, which kills every
iperf on the machine)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "mininet"))

from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from mininet.topo import LinearTopo, SingleSwitchTopo  # noqa: E402
from mininet.topolib import TreeTopo  # noqa: E402
from tapswitch import TapSwitch  # noqa: E402


def run(name, topo):
    net = Mininet(topo=topo, switch=TapSwitch, controller=None, autoSetMacs=True, waitConnected=False)
    ok = True
    try:
        net.start()
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
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
