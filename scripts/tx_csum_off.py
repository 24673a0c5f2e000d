#!/usr/bin/env python3
"""Turns off TX checksum offload on an interface (ETHTOOL_STXCSUM), like `ethtool -K IF tx off`,
so that the kernel finishes checksums in software before a capture sees them."""
import ctypes, fcntl, socket, struct, sys

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
name = sys.argv[1].encode()
value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
ifr = struct.pack("16sP16x", name, ctypes.addressof(value))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
