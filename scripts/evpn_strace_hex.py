#!/usr/bin/env python3
"""Reads the hex dumps of `strace -e write=all` / `-e read=all` (one block per system call)
and prints netlink messages as `NAME HEX` lines for tests/data/evpn/netlink.txt.

  evpn_strace_hex.py last NAME FILE     the first message of the last call (a request), its
                                        sequence number zeroed
  evpn_strace_hex.py events "N1 N2 .." FILE
                                        every AF_BRIDGE RTM_NEWNEIGH/RTM_DELNEIGH message read,
                                        named N1, N2, ... in order
  evpn_strace_hex.py ipevents "N1 N2 .." FILE
                                        the same for AF_INET/AF_INET6 neighbours (`ip monitor
                                        neigh`)
"""
import re
import sys

DUMP = re.compile(r"^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}|    ?){16})")


def calls(path):
    out, cur = [], None
    for line in open(path):
        m = DUMP.match(line)
        if m:
            if cur is None:
                cur = bytearray()
                out.append(cur)
            cur += bytes.fromhex(m.group(1).replace(" ", ""))
        elif not line.startswith(" * "):
            cur = None
    return out


def messages(data):
    i = 0
    while i + 16 <= len(data):
        n = int.from_bytes(data[i:i + 4], "little")
        if n < 16 or i + n > len(data):
            return
        yield bytes(data[i:i + n])
        i += (n + 3) & ~3


mode, names, path = sys.argv[1:4]
if mode == "last":
    msg = next(messages(calls(path)[-1]))
    print(names, (msg[:8] + b"\0\0\0\0" + msg[12:]).hex())
else:
    families = (7,) if mode == "events" else (2, 10)
    left = names.split()
    for c in calls(path):
        for msg in messages(c):
            kind = int.from_bytes(msg[4:6], "little")
            if kind in (28, 29) and msg[16] in families and left:
                print(left.pop(0), msg.hex())
