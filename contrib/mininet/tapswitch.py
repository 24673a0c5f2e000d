"""Mininet switch class running one tapswitch process per emulated switch.

Each switch attaches its interfaces (Mininet's veth ends) as `packet:` ports, the way a Linux
bridge enslaves them. No OpenFlow: use it with `--controller none`.

    mn --custom contrib/mininet/tapswitch.py --switch tapswitch --controller none --topo tree,2
    # or from Python:
    from tapswitch import TapSwitch   # with contrib/mininet on sys.path
    net = Mininet(topo=..., switch=TapSwitch, controller=None)

The binary is `tapswitch` on PATH, or the path in $TAPSWITCH_BIN. Options (as `--switch
tapswitch,listen=127.0.0.1:9500,args=--ageing-secs 60` or keyword arguments): `listen` (the
switch's HTTP endpoint; default none, so several switches can run side by side), `args` (extra
command-line arguments), `control` (the control socket; default tapswitch's own for the
switch's name, /run/tapswitch/NAME.sock), `stp` (1: run RSTP; `net.waitConnected()` then waits,
as it does for `lxbr,stp=1`, until every port of the switch is forwarding or discarding, root
and designated ports forwarding). Each switch logs to /tmp/tapswitch-<name>.log.

    mn --custom contrib/mininet/tapswitch.py --switch tapswitch,stp=1 --controller none --topo torus,3,3
"""
import json
import os
import subprocess
import shlex
import time

from mininet.node import Switch


class TapSwitch(Switch):
    """An emulated switch backed by a tapswitch process (Linux-bridge semantics)."""

    def __init__(self, name, listen="none", control=None, stp=False, args="", **params):
        Switch.__init__(self, name, **params)
        self.listen = listen
        self.stp = str(stp).lower() not in ("", "0", "false", "no", "off")
        # the control socket: tapswitch's default for --name (/run/tapswitch/NAME.sock), a
        # path, or "none"
        self.control = control
        self.extra = args
        self.binary = os.environ.get("TAPSWITCH_BIN", "tapswitch")
        self.tspid = None
        self.logfile = "/tmp/tapswitch-%s.log" % name

    def start(self, controllers):
        argv = [self.binary, "run", "--name", self.name, "--listen", str(self.listen),
                "--no-default-ports"]
        if self.control:
            argv += ["--control", str(self.control)]
        if self.stp:
            # host-facing ports forward at once as edge ports once auto-edge sees no BPDU
            argv += ["--stp", "rstp"]
        for intf in self.intfList():
            if intf.name != "lo" and self.ports.get(intf) is not None:
                argv += ["--port", "packet:%s" % intf.name]
        argv += shlex.split(self.extra)
        cmd = " ".join(shlex.quote(a) for a in argv)
        # a log left by an earlier switch of this name says "ready" too: start from none, so
        # the wait below reads this process's log (the shell truncates it only when the
        # background job starts, which may be after the first read)
        try:
            os.unlink(self.logfile)
        except OSError:
            pass
        out = self.cmd("%s > %s 2>&1 & echo $!" % (cmd, shlex.quote(self.logfile)))
        self.tspid = int(out.strip().split()[-1])
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with open(self.logfile) as f:
                    text = f.read()
            except OSError:
                text = ""
            if " ready" in text:
                return
            if "error" in text:
                break
            time.sleep(0.05)
        raise RuntimeError("tapswitch %s did not start: %s" % (self.name, text))

    def stp_roles(self):
        """[(port, role, state)] from the switch's control socket, or None if unreachable."""
        argv = [self.binary, "stp", "--json"]
        if self.control:
            argv += ["--control", str(self.control)]
        else:
            argv += ["--control", "/run/tapswitch/%s.sock" % self.name]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5).stdout
            v = json.loads(out)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
        return [(p.get("name"), p.get("role"), p.get("state")) for p in v.get("ports", [])]

    def connected(self):
        """Ready for traffic: without STP at once; with STP once the tree has settled."""
        if not self.stp:
            return True
        roles = self.stp_roles()
        if not roles:
            return False
        for _name, role, state in roles:
            if role in ("root", "designated") and state != "forwarding":
                return False
            if role in ("alternate", "backup") and state != "discarding":
                return False
        return True

    def stop(self, deleteIntfs=True):
        if self.tspid:
            self.cmd("kill %d 2>/dev/null; while kill -0 %d 2>/dev/null; do sleep 0.05; done"
                     % (self.tspid, self.tspid))
            self.tspid = None
        super(TapSwitch, self).stop(deleteIntfs)


switches = {"tapswitch": TapSwitch}
