#!/usr/bin/python3
"""Mininet with TapSwitch on single, linear and tree topologies, and a ring of four switches with
the spanning tree on (stp=1): pingall without loss and an
iperf3 TCP test between the two farthest hosts. Run as root with the system python3; prints
`RESULT <topo> loss=<percent> gbps=<value>` lines and exits non-zero on any failure. Then
multicast through three snooping switches (the querier on the first): `RESULT mcast
received=<of 20> leaked=<frames at a non-member>`.

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


class McastTopo(Topo):
    """s1 - s2 - s3, the querier on s1 (turned on once all run): h1 (sender) on s1, h2 (non-member) on s2, h3 (member)
    on s3, so the group's traffic crosses two switches that learned h3's membership from its
    reports and the router ports from s1's queries."""

    def build(self):
        s1 = self.addSwitch("s1")
        s2, s3 = self.addSwitch("s2"), self.addSwitch("s3")
        self.addLink(s1, s2)
        self.addLink(s2, s3)
        for h, s in (("h1", s1), ("h2", s2), ("h3", s3)):
            self.addLink(self.addHost(h), s)


RECV = (
    "import socket,struct,sys,select,time\n"
    "g,a=sys.argv[1],sys.argv[2]\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind((g,5353));s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,socket.inet_aton(g)+socket.inet_aton(a))\n"
    "n=0;end=time.time()+float(sys.argv[3])\n"
    "while time.time()<end:\n"
    " r,_,_=select.select([s],[],[],0.1)\n"
    " if r: s.recv(2048);n+=1\n"
    "print(n)\n"
)
SNIFF = (
    "import socket,sys,time\n"
    "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3));s.bind((sys.argv[1],0))\n"
    "mac=bytes.fromhex(sys.argv[2].replace(':',''));n=0;end=time.time()+float(sys.argv[3])\n"
    "while time.time()<end:\n"
    " s.settimeout(max(0.01,end-time.time()))\n"
    " try: d=s.recv(2048)\n"
    " except socket.timeout: break\n"
    " n+=d[:6]==mac\n"
    "print(n)\n"
)
SEND = (
    "import socket,sys,time\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
    "s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton(sys.argv[2]))\n"
    "[(s.sendto(b'x'*100,(sys.argv[1],5353)),time.sleep(0.01)) for _ in range(20)]\n"
)


def run_mcast(binary_note="mcast"):
    """Multicast through three snooping switches: the member gets the group's traffic, the
    non-member's port does not, once s1's querier exists."""
    net = Mininet(topo=McastTopo(), switch=TapSwitch, controller=None, autoSetMacs=True,
                  waitConnected=False)
    ok = False
    try:
        net.start()
        h1, h2, h3 = net.get("h1", "h2", "h3")
        g, gmac = "239.1.1.9", "01:00:5e:01:01:09"
        for h, code in (("h1", RECV), ("h2", SNIFF), ("h3", SEND)):
            with open("/tmp/ts-mn-%s-%d.py" % (h, os.getpid()), "w") as f:
                f.write(code)
        recv, sniff, send = ("/tmp/ts-mn-%s-%d.py" % (h, os.getpid()) for h in ("h1", "h2", "h3"))
        # a querier exists one max response time (10 s) after the first query: on s1 its own,
        # on s2 and s3 s1's (until then they flood, as Linux bridges do)
        tsbin = os.environ.get("TAPSWITCH_BIN", "tapswitch")
        deadline = time.time() + 40
        import json
        import subprocess

        def exists(sw):
            out = subprocess.run([tsbin, "mdb", "--json", "--control", "/run/tapswitch/%s.sock" % sw],
                                 capture_output=True, text=True).stdout
            try:
                q = json.loads(out)["querier"]
            except (ValueError, KeyError):
                q = []
            return any(x["vid"] == 0 and x["family"] == "v4" and x["exists"] for x in q)

        # s1 becomes querier once every switch runs (Mininet starts them one after the other;
        # a startup query sent before s2 and s3 read their ports would be lost), with short
        # timers (centiseconds, as Linux takes them)
        for _ in range(100):  # s1 answers once its control socket is bound (at most 10 s)
            r = subprocess.run([tsbin, "config", "mcast_query_response_interval", "100",
                                "mcast_startup_query_interval", "100", "mcast_querier", "on",
                                "--control", "/run/tapswitch/s1.sock"], capture_output=True,
                               text=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        if r.returncode != 0:
            print("RESULT mcast received=0 leaked=0 (config: %s)" % r.stderr.strip(), flush=True)
            return False
        while time.time() < deadline:
            if all(exists(sw) for sw in ("s1", "s2", "s3")):
                break
            time.sleep(0.2)
        else:
            print("RESULT mcast received=0 leaked=0 (no querier on every switch)", flush=True)
            return False
        h3.cmd("python3 %s %s %s 8 > /tmp/ts-mn-recv-%d &" % (recv, g, h3.IP(), os.getpid()))
        h2.cmd("python3 %s %s %s 7 > /tmp/ts-mn-sniff-%d &" % (sniff, h2.defaultIntf().name, gmac,
                                                              os.getpid()))
        # the join's reports reach s1 through s3 and s2 (their MDBs learn the way to h3)
        deadline = time.time() + 5
        while time.time() < deadline:
            out = subprocess.run([tsbin, "mdb", "--json", "--control", "/run/tapswitch/s1.sock"],
                                 capture_output=True, text=True).stdout
            if '"grp": "%s"' % g in out:
                break
            time.sleep(0.05)
        h1.cmd("python3 %s %s %s" % (send, g, h1.IP()))
        h3.cmd("wait")
        h2.cmd("wait")
        got = int((open("/tmp/ts-mn-recv-%d" % os.getpid()).read() or "0").strip() or 0)
        leaked = int((open("/tmp/ts-mn-sniff-%d" % os.getpid()).read() or "0").strip() or 0)
        print("RESULT mcast received=%d leaked=%d" % (got, leaked), flush=True)
        ok = got >= 18 and leaked == 0
    finally:
        net.stop()
        for f in ("h1", "h2", "h3", "recv", "sniff"):
            try:
                os.unlink("/tmp/ts-mn-%s-%d%s" % (f, os.getpid(), ".py" if f.startswith("h") else ""))
            except OSError:
                pass
    return ok


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
        run_mcast(),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
