#!/usr/bin/env bash
# Builds (once, cached outside the repo) a tiny Linux guest for the QEMU tests: Debian's cloud
# kernel plus an initramfs of busybox-static and the virtio-net modules. Its /init reads its
# role from the kernel command line (ts_ip, ts_peer, ts_role=server|client, ts_bytes) and prints
# marker lines on the serial console. Prints "KERNEL INITRD" on stdout.
set -euo pipefail
cache="${TAPSWITCH_CACHE:-/var/cache/tapswitch-tests}"
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && busybox --list 2>/dev/null | grep -qx nc || need+=(busybox-static)
ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1 || need+=(linux-image-cloud-amd64)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)
kver=${kernel#/boot/vmlinuz-}
out="$cache/guest-$kver.cpio.gz"
mkdir -p "$cache"
# one builder at a time (tests run in parallel); the image is replaced atomically
exec 9>"$cache/.lock"
flock 9
if [ ! -s "$out" ] || [ "$out" -ot "$0" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work"/{bin,sbin,proc,sys,dev,tmp,lib/modules}
  cp "$(command -v busybox)" "$work/bin/busybox"
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net llc stp garp mrp 8021q; do
    f=$(find "/lib/modules/$kver" -name "$m.ko*" | head -n 1)
    case "$f" in
      *.xz) xz -dc "$f" > "$work/lib/modules/$m.ko" ;;
      *.zst) zstd -qdc "$f" > "$work/lib/modules/$m.ko" ;;
      *) cp "$f" "$work/lib/modules/$m.ko" ;;
    esac
  done
  cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net llc stp garp mrp 8021q; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
ip link set lo up
ip link set eth0 up
if [ "$ts_role" != trunk ]; then
  ip addr add "$ts_ip/24" dev eth0
fi
# ts_tso_segs=N: the guest's TCP builds GSO frames of at least N segments (tcp_min_tso_segs;
# TSO autosizing alone follows the pacing rate, and a guest slowed by a busy host sends frames
# hardly larger than one segment)
[ -n "$ts_tso_segs" ] && echo "$ts_tso_segs" > /proc/sys/net/ipv4/tcp_min_tso_segs
echo "TS_BOOTED $ts_ip"
if [ "$ts_role" = trunk ]; then
  # VLAN sub-interfaces (the 8021q module): ts_vlans="VID:ADDR:PEER ..." (kernel arguments
  # cannot hold spaces: ',' separates the entries)
  for e in $(echo "$ts_vlans" | tr , ' '); do
    vid=${e%%:*}; rest=${e#*:}; addr=${rest%%:*}; peer=${rest#*:}
    vconfig add eth0 "$vid" >/dev/null 2>&1 || ip link add link eth0 name "eth0.$vid" type vlan id "$vid"
    ip link set "eth0.$vid" up
    ip addr add "$addr/24" dev "eth0.$vid"
  done
  for e in $(echo "$ts_vlans" | tr , ' '); do
    vid=${e%%:*}; peer=${e##*:}
    ok=0
    for i in $(seq 1 60); do
      if ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then ok=1; break; fi
    done
    [ $ok = 1 ] && ping -c 3 -W 2 "$peer" >/dev/null 2>&1 && echo "TS_PING_VLAN_OK $vid"
  done
elif [ "$ts_role" = server ]; then
  # takes ts_rounds TCP transfers one after another (default 1)
  n=0
  while true; do
    nc -l -p 5001 | sha256sum | { read h _; echo "TS_RX_SHA $h"; }
    n=$((n+1))
    [ "$n" -ge "${ts_rounds:-1}" ] && break
  done
elif [ "$ts_role" = pinger ]; then
  # pings until killed
  i=0
  while true; do
    if ping -c 1 -W 1 "$ts_peer" >/dev/null 2>&1; then echo "TS_PONG $i"; fi
    i=$((i+1))
    sleep 0.3
  done
else
  ok=0
  for i in $(seq 1 60); do
    if ping -c 1 -W 1 "$ts_peer" >/dev/null 2>&1; then ok=1; break; fi
  done
  [ $ok = 1 ] && ping -c 3 -W 2 "$ts_peer" >/dev/null 2>&1 && echo "TS_PING_OK"
  head -c "${ts_bytes:-2000000}" /dev/urandom > /tmp/data
  sha256sum /tmp/data | { read h _; echo "TS_TX_SHA $h"; }
  for i in $(seq 1 20); do
    t0=$(cut -d' ' -f1 /proc/uptime)
    nc "$ts_peer" 5001 < /tmp/data && { echo "TS_SENT"; echo "TS_XFER $t0 $(cut -d' ' -f1 /proc/uptime)"; break; }
    sleep 1
  done
fi
echo "TS_DONE"
sync
poweroff -f
INIT
  chmod +x "$work/init"
  tmp=$(mktemp "$cache/.guest.XXXXXX")
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$out"
fi
echo "$kernel $out"
