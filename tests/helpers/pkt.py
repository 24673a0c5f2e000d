#!/usr/bin/env python3
"""Raw Ethernet frame tool for the tapswitch root tests (python3, stdlib only).

Run it inside a network namespace (``ip netns exec NS python3 pkt.py ...``):

  send IFACE HEXFRAME [COUNT [PPS]]
      Sends the frame (hex, separators ':' '-' ' ' '.' allowed) COUNT times (default 1)
      on an AF_PACKET SOCK_RAW socket bound to IFACE, at PPS frames a second if given (else
      as fast as it can). Frames shorter than 60 bytes are zero-padded to 60. Prints
      "sent N SECONDS".

  sniff IFACE SECONDS [--src MAC] [--dst MAC] [--ethertype 0xNNNN] [--vlan N|none]
      Counts frames *received* on IFACE (outgoing ones, pkttype PACKET_OUTGOING, are ignored)
      that match every given filter, for SECONDS. Prints "ready" once the socket is bound,
      then the count on a line of its own when the time is up. --vlan N matches frames that
      arrived with an 802.1Q/802.1ad tag of VID N, --vlan none frames that arrived untagged (the
      kernel moves the outer tag to the packet auxdata; --ethertype then matches the EtherType
      after it).
"""

import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def usage(msg):
    sys.stderr.write("pkt.py: %s\n%s" % (msg, __doc__))
    sys.exit(2)


def parse_mac(s):
    parts = s.replace("-", ":").split(":")
    if len(parts) != 6:
        usage("bad MAC %r" % s)
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        usage("bad MAC %r" % s)


def parse_hex(s):
    for sep in ": -.":
        s = s.replace(sep, "")
    try:
        return bytes.fromhex(s)
    except ValueError:
        usage("bad hex frame")


def send(args):
    if len(args) not in (2, 3, 4):
        usage("send needs IFACE HEXFRAME [COUNT [PPS]]")
    iface, frame = args[0], parse_hex(args[1])
    count = int(args[2]) if len(args) >= 3 else 1
    pps = float(args[3]) if len(args) == 4 else 0.0
    if len(frame) < 14:
        usage("a frame needs at least 14 bytes")
    if len(frame) < 60:
        frame = frame + bytes(60 - len(frame))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((iface, 0))
    start = time.monotonic()
    for i in range(count):
        if pps > 0:
            due = start + i / pps
            while True:
                left = due - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.01))
        s.send(frame)
    s.close()
    print("sent %d %.3f" % (count, time.monotonic() - start), flush=True)


def sniff(args):
    if len(args) < 2:
        usage("sniff needs IFACE SECONDS")
    iface, secs = args[0], float(args[1])
    src = dst = etype = vlan = None
    rest = args[2:]
    while rest:
        opt = rest.pop(0)
        if not rest:
            usage("%s needs a value" % opt)
        val = rest.pop(0)
        if opt == "--src":
            src = parse_mac(val)
        elif opt == "--dst":
            dst = parse_mac(val)
        elif opt == "--ethertype":
            etype = int(val, 0).to_bytes(2, "big")
        elif opt == "--vlan":
            vlan = -1 if val == "none" else int(val)
        else:
            usage("unknown option %s" % opt)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # the outer VLAN tag comes back in the auxdata (SOL_PACKET 263, PACKET_AUXDATA 8)
    s.setsockopt(263, 8, 1)
    # Python converts the protocol of the address to network order itself.
    s.bind((iface, ETH_P_ALL))
    print("ready", flush=True)
    deadline = time.monotonic() + secs
    count = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, anc, _flags, addr = s.recvmsg(65536, 64)
        except socket.timeout:
            break
        vid = -1
        for level, typ, cdata in anc:
            if level == 263 and typ == 8 and len(cdata) >= 20:
                status, _l, _sl, _mac, _net, tci, _tpid = struct.unpack("IIIHHHH", cdata[:20])
                if status & 0x10:  # TP_STATUS_VLAN_VALID
                    vid = tci & 0xFFF
        # addr = (ifname, proto, pkttype, hatype, hwaddr)
        if addr[0] != iface or addr[2] == PACKET_OUTGOING or len(data) < 14:
            continue
        if dst is not None and data[0:6] != dst:
            continue
        if src is not None and data[6:12] != src:
            continue
        if etype is not None and data[12:14] != etype:
            continue
        if vlan is not None and vid != vlan:
            continue
        count += 1
    s.close()
    print(count, flush=True)


def main():
    if len(sys.argv) < 2:
        usage("missing command")
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "send":
        send(args)
    elif cmd == "sniff":
        sniff(args)
    else:
        usage("unknown command %r" % cmd)


if __name__ == "__main__":
    main()
