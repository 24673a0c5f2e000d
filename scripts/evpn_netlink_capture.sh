#!/bin/bash
# Captures the rtnetlink bytes iproute2 sends for what tapswitch's EVPN layer writes (a shadow
# bridge's extern_learn FDB entries, the shadow vxlan device, veth, bridge) and the events the
# kernel sends `bridge monitor fdb` for what zebra installs on a vxlan device (remote MACs with
# NDA_DST and NTF_EXT_LEARNED, the all-zero flood entries), as test vectors for
# src/evpn/netlink.rs (tests/data/evpn/netlink.txt). Root only; everything happens in a private
# network namespace, removed on exit. Usage: evpn_netlink_capture.sh OUTFILE
#
# Each vector is one line `NAME HEX` (the whole netlink message, header included). Requests
# are read from `strace -e write=FD` of the iproute2 command (the sequence number is zeroed,
# since it is the time), events from `strace -e read=FD` of `bridge monitor fdb`.
set -euo pipefail
OUT=${1:?outfile}
NS=evcap$$
cleanup() {
  [ -n "${MON:-}" ] && kill "$MON" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
run() { ip netns exec "$NS" "$@"; }
run ip link set lo up
run ip link add und0 type veth peer name und1
run ip addr add 198.18.0.1/24 dev und0
run ip link set und0 up
run ip link set und1 up

# the last netlink message an iproute2 command writes (the request; earlier ones are probes),
# sequence number zeroed
req() {
  local name=$1
  shift
  run strace -qq -e trace=sendmsg,sendto -e write=all -o "/tmp/evcap-req.$$" "$@" >/dev/null
  python3 "$HERE/evpn_strace_hex.py" last "$name" "/tmp/evcap-req.$$" >>"$OUT"
  rm -f "/tmp/evcap-req.$$"
}
HERE=$(dirname "$0")

: >"$OUT"
req link_add_bridge ip link add tsb1010 type bridge
req link_add_vxlan ip link add tsx1010 type vxlan id 1010 local 198.18.0.1 dstport 47890 nolearning
req link_add_veth ip link add tsl1010 type veth peer name tsp1010
req link_addrgenmode_none ip link set tsb1010 addrgenmode none
run ip link set tsx1010 addrgenmode none
run ip link set tsl1010 addrgenmode none
run ip link set tsp1010 addrgenmode none
req link_set_master ip link set tsx1010 master tsb1010
run ip link set tsl1010 master tsb1010
for d in tsb1010 tsx1010 tsl1010 tsp1010; do run ip link set "$d" up; done

# the events, as `bridge monitor fdb` reads them
run strace -qq -e trace=recvmsg -e read=all -o /tmp/evcap-mon.$$ bridge monitor fdb >/dev/null &
MON=$!
sleep 0.5

req fdb_local_add bridge fdb replace 02:00:5e:10:00:01 dev tsl1010 master extern_learn
req fdb_remote_add bridge fdb replace 02:00:5e:20:00:02 dev tsx1010 dst 198.18.0.2 self extern_learn
req fdb_flood_append bridge fdb append 00:00:00:00:00:00 dev tsx1010 dst 198.18.0.2 self permanent
req fdb_remote_del bridge fdb del 02:00:5e:20:00:02 dev tsx1010 dst 198.18.0.2 self
req fdb_flood_del bridge fdb del 00:00:00:00:00:00 dev tsx1010 dst 198.18.0.2 self
req fdb_local_del bridge fdb del 02:00:5e:10:00:01 dev tsl1010 master
req neigh_bridge_add ip neigh replace 198.18.1.5 lladdr 02:00:5e:20:00:05 dev tsb1010 extern_learn
req neigh_bridge_add6 ip neigh replace 2001:2::5 lladdr 02:00:5e:20:00:05 dev tsb1010 extern_learn
sleep 0.5
kill "$MON"
wait "$MON" 2>/dev/null || true
MON=
# one line per received AF_BRIDGE neighbour message, named in the order the commands ran
python3 "$HERE/evpn_strace_hex.py" events "ev_local_add ev_remote_add ev_flood_add ev_remote_del ev_flood_del ev_local_del" "/tmp/evcap-mon.$$" >>"$OUT"
rm -f "/tmp/evcap-mon.$$"

# MAC+IP neighbours on the shadow bridge (ARP/ND suppression): what tapswitch writes for its
# local bindings (permanent, no extern_learn: zebra takes extern_learn neighbours as remote),
# and what zebra installs for a remote MAC+IP route (extern_learn, noarp), as `ip monitor
# neigh` reads them. A delete is reported twice: RTM_NEWNEIGH in state failed, then
# RTM_DELNEIGH (zebra withdraws on the first: it ignores a RTM_DELNEIGH in state permanent)
run strace -qq -e trace=recvmsg -e read=all -o /tmp/evcap-nmon.$$ ip monitor neigh >/dev/null &
MON=$!
sleep 0.5
req neigh_local_add ip neigh replace 198.18.1.7 lladdr 02:00:5e:10:00:07 dev tsb1010 nud permanent
req neigh_local_add6 ip neigh replace 2001:2::7 lladdr 02:00:5e:10:00:07 dev tsb1010 nud permanent
req neigh_local_del ip neigh del 198.18.1.7 dev tsb1010
run ip neigh replace 198.18.1.5 lladdr 02:00:5e:20:00:05 dev tsb1010 extern_learn nud noarp
run ip neigh replace 2001:2::5 lladdr 02:00:5e:20:00:05 dev tsb1010 extern_learn nud noarp
run ip neigh del 198.18.1.5 dev tsb1010
sleep 0.5
kill "$MON"
wait "$MON" 2>/dev/null || true
MON=
python3 "$HERE/evpn_strace_hex.py" ipevents "nev_local_add nev_local_add6 nev_local_fail nev_local_del nev_remote_add nev_remote_add6 nev_remote_fail nev_remote_del" "/tmp/evcap-nmon.$$" >>"$OUT"
rm -f "/tmp/evcap-nmon.$$"
run ip -d link show tsx1010 >/dev/null
echo "wrote $(wc -l <"$OUT") vectors to $OUT"
