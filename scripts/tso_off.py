#!/usr/bin/env python3
"""Turns off TCP segmentation offload and generic segmentation offload on an interface
(ETHTOOL_STSO, ETHTOOL_SGSO), like `ethtool -K IF tso off gso off`, leaving TX checksum offload
as it is: the host then sends wire-size segments whose checksums it may still leave partial."""
import ctypes, fcntl, socket, struct, sys

SIOCETHTOOL = 0x8946
ETHTOOL_STSO = 0x1F
ETHTOOL_SGSO = 0x24
name = sys.argv[1].encode()
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for cmd in (ETHTOOL_STSO, ETHTOOL_SGSO):
        value = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
        ifr = struct.pack("16sP16x", name, ctypes.addressof(value))
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
