#!/bin/bash
# Captures VXLAN traffic between two Linux VTEPs (IPv4 and IPv6 underlay) in two private
# network namespaces joined by a veth. Root only. Everything it creates is removed on exit.
# Usage: vxlan_linux_capture.sh OUTDIR
set -euo pipefail
OUT=${1:?outdir}
mkdir -p "$OUT"
P=$$
A=fmtvxA$P; B=fmtvxB$P; VA=fva$P; VB=fvb$P
cleanup() {
  [ -n "${TD:-}" ] && kill "$TD" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add "$VA" netns "$A" type veth peer name "$VB" netns "$B"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" addr add 198.18.200.1/24 dev "$VA"
ip -n "$B" addr add 198.18.200.2/24 dev "$VB"
# IPv6 underlay from the benchmarking prefix (RFC 5180), the v6 analogue of 198.18.0.0/15.
ip -n "$A" addr add 2001:2::1/64 dev "$VA" nodad
ip -n "$B" addr add 2001:2::2/64 dev "$VB" nodad
ip -n "$A" link set "$VA" up; ip -n "$B" link set "$VB" up
# Finish UDP checksums in software, so the capture shows final values rather than the
# pseudo-header sums that checksum offload leaves on a veth.
HERE=$(dirname "$0")
ip netns exec "$A" /usr/bin/python3 "$HERE/tx_csum_off.py" "$VA"
ip netns exec "$B" /usr/bin/python3 "$HERE/tx_csum_off.py" "$VB"
# IPv4 underlay, VNI 100
ip -n "$A" link add vx4 address 02:00:00:00:64:01 type vxlan id 100 local 198.18.200.1 remote 198.18.200.2 dstport 4789
ip -n "$B" link add vx4 address 02:00:00:00:64:02 type vxlan id 100 local 198.18.200.2 remote 198.18.200.1 dstport 4789
ip -n "$A" addr add 198.18.201.1/24 dev vx4; ip -n "$B" addr add 198.18.201.2/24 dev vx4
# IPv6 underlay, VNI 200
ip -n "$A" link add vx6 address 02:00:00:00:c8:01 type vxlan id 200 local 2001:2::1 remote 2001:2::2 dstport 4789
ip -n "$B" link add vx6 address 02:00:00:00:c8:02 type vxlan id 200 local 2001:2::2 remote 2001:2::1 dstport 4789
ip -n "$A" addr add 198.18.202.1/24 dev vx6; ip -n "$B" addr add 198.18.202.2/24 dev vx6
# IPv4 underlay with UDP checksums turned off, VNI 300
ip -n "$A" link add vx4z address 02:00:00:01:2c:01 type vxlan id 300 local 198.18.200.1 remote 198.18.200.2 dstport 4789 noudpcsum
ip -n "$B" link add vx4z address 02:00:00:01:2c:02 type vxlan id 300 local 198.18.200.2 remote 198.18.200.1 dstport 4789 noudpcsum
ip -n "$A" addr add 198.18.203.1/24 dev vx4z; ip -n "$B" addr add 198.18.203.2/24 dev vx4z
for ns in "$A" "$B"; do
  for d in vx4 vx6 vx4z; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.$d.disable_ipv6=1
    ip -n "$ns" link set $d up
  done
done
for d in vx4 vx6 vx4z; do ip -n "$A" -d link show $d | sed -n 3p; done > "$OUT/vxlan-details.txt"
ip netns exec "$B" tcpdump -i "$VB" --immediate-mode -U -n -s 0 -w "$OUT/underlay.pcap" udp port 4789 2>"$OUT/tcpdump.err" &
TD=$!
# wait until tcpdump is listening
for _ in $(seq 50); do grep -q listening "$OUT/tcpdump.err" && break; sleep 0.1; done
ip netns exec "$A" ping -c 2 -i 0.2 -W 2 198.18.201.2 > "$OUT/ping4.txt"
ip netns exec "$A" ping -c 2 -i 0.2 -W 2 198.18.202.2 > "$OUT/ping6.txt"
ip netns exec "$A" ping -c 2 -i 0.2 -W 2 198.18.203.2 > "$OUT/ping4z.txt"
# A few UDP flows with different ports, to see the outer source ports Linux picks.
for port in 1000 1001 1002 1003 1004 1005 1006 1007; do
  ip netns exec "$A" bash -c "echo flow > /dev/udp/198.18.201.2/$port" || true
done
sleep 1.5
kill -INT "$TD"; wait "$TD" || true; TD=
cat "$OUT/ping4.txt" "$OUT/ping6.txt" "$OUT/ping4z.txt" | grep -E 'packets transmitted'
