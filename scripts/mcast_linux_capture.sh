#!/bin/bash
# Captures IGMP and MLD messages made by the kernel itself: a host's stack joining and leaving
# groups (IGMPv3/v2 reports and leaves, MLDv2/v1 reports and dones, with and without source
# filters) and a Linux bridge querier's queries (IGMPv3/v2, MLDv2/v1, general and
# group-specific). The test vectors in src/wire/igmp.rs and src/wire/mld.rs come from it.
# Two private network namespaces joined by a veth; root only; everything is removed on exit.
# Usage: mcast_linux_capture.sh OUTDIR  (writes OUTDIR/mcast.pcap)
set -euo pipefail
OUT=${1:?outdir}
mkdir -p "$OUT"
P=$$
H=mcapH$P; B=mcapB$P; VH=mch$P; VB=mcb$P
cleanup() {
  [ -n "${TD:-}" ] && kill "$TD" 2>/dev/null || true
  ip netns del "$H" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$H"; ip netns add "$B"
ip link add "$VH" netns "$H" address 02:00:00:00:00:02 type veth peer name "$VB" netns "$B" address 02:00:00:00:00:03
for ns in "$H" "$B"; do ip -n "$ns" link set lo up; done
# The bridge: snooping on, querier on, IGMPv3/MLDv2 first, its own IPv4 address as query source.
ip -n "$B" link add br0 address 02:00:00:00:00:01 type bridge mcast_snooping 1 mcast_querier 0 \
  mcast_igmp_version 3 mcast_mld_version 2 mcast_query_use_ifaddr 1 mcast_startup_query_interval 100
ip -n "$B" link set "$VB" master br0
ip -n "$B" addr add 198.18.0.1/24 dev br0
ip -n "$H" addr add 198.18.0.2/24 dev "$VH"
ip -n "$B" link set "$VB" up; ip -n "$B" link set br0 up; ip -n "$H" link set "$VH" up
sleep 2 # IPv6 link-local addresses (DAD)
ip netns exec "$H" tcpdump -i "$VH" -U -w "$OUT/mcast.pcap" 'igmp or (ip6 and not icmp6)' 2>/dev/null &
TD=$!
sleep 1
# Queries: IGMPv3 + MLDv2 general queries at start-up
ip -n "$B" link set br0 type bridge mcast_querier 1
sleep 2
# Host joins with its own stack (IGMPv3 / MLDv2 by default)
ip netns exec "$H" python3 - "$VH" <<'EOF'
import socket, struct, sys, time
dev = sys.argv[1]
ifidx = socket.if_nametoindex(dev)
IP_ADD_SOURCE_MEMBERSHIP = 39
IP_DROP_SOURCE_MEMBERSHIP = 40
MCAST_JOIN_SOURCE_GROUP = 46
MCAST_LEAVE_SOURCE_GROUP = 47
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# EXCLUDE {} join of 239.10.10.10, then leave: TO_EX({}), then TO_IN({})
mreq = struct.pack("4s4si", socket.inet_aton("239.10.10.10"), socket.inet_aton("0.0.0.0"), ifidx)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
time.sleep(1.5)
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
time.sleep(1.5)
# INCLUDE {198.18.0.11, 198.18.0.12} for 232.1.1.1: ALLOW records, then BLOCK
for src in ("198.18.0.11", "198.18.0.12"):
    m = struct.pack("4s4s4s", socket.inet_aton("232.1.1.1"), socket.inet_aton("198.18.0.2"), socket.inet_aton(src))
    s.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, m)
    time.sleep(0.5)
time.sleep(1.5)
m = struct.pack("4s4s4s", socket.inet_aton("232.1.1.1"), socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.0.11"))
s.setsockopt(socket.IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP, m)
time.sleep(1.5)
# MLDv2: EXCLUDE {} join of ff0e::1234, then an SSM INCLUDE join of ff3e::4321 from 2001:2::11
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, "ff0e::1234") + struct.pack("I", ifidx))
time.sleep(1.5)
def gsr(group, src):
    sin6 = lambda a: struct.pack("HHI16sI", socket.AF_INET6, 0, 0, socket.inet_pton(socket.AF_INET6, a), 0).ljust(128, b"\0")
    return struct.pack("I4x", ifidx) + sin6(group) + sin6(src)
s6.setsockopt(socket.IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, gsr("ff3e::4321", "2001:2::11"))
time.sleep(1.5)
s6.setsockopt(socket.IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP, gsr("ff3e::4321", "2001:2::11"))
time.sleep(1.5)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, socket.inet_pton(socket.AF_INET6, "ff0e::1234") + struct.pack("I", ifidx))
time.sleep(1.5)
EOF
# IGMPv2 / MLDv1 hosts: reports and leaves
ip netns exec "$H" sysctl -q -w "net.ipv4.conf.$VH.force_igmp_version=2"
ip netns exec "$H" sysctl -q -w "net.ipv6.conf.$VH.force_mld_version=1"
ip netns exec "$H" python3 - "$VH" <<'EOF'
import socket, struct, sys, time
ifidx = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
mreq = struct.pack("4s4si", socket.inet_aton("239.10.10.10"), socket.inet_aton("0.0.0.0"), ifidx)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
m6 = socket.inet_pton(socket.AF_INET6, "ff0e::1234") + struct.pack("I", ifidx)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, m6)
time.sleep(1.5)
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, m6)
time.sleep(2.5)
EOF
# IGMPv2 / MLDv1 queries: switch the bridge's versions and restart its querier
ip -n "$B" link set br0 type bridge mcast_querier 0 mcast_igmp_version 2 mcast_mld_version 1
ip -n "$B" link set br0 type bridge mcast_querier 1
sleep 2
ip -n "$B" link set br0 type bridge mcast_querier 0
sleep 1
kill "$TD"; wait "$TD" 2>/dev/null || true
TD=
echo "wrote $OUT/mcast.pcap"
