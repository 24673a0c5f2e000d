#!/usr/bin/env bash
# Runs every tapswitch test: unit, rootless scenario, and (as root) real TAPs in network
# namespaces, a real Prometheus, and the dashboard checks. On a fresh Debian/Ubuntu machine run
# as root: it installs the test peers it needs with apt-get first.
# Root tests skip with a message when not root; with CI=true they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 iputils-ping python3 iperf3 netsniff-ng prometheus mininet qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio openvswitch-switch tcpdump tshark util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "tests/run.sh: missing packages ${missing[*]} (run as root to install them); tests that need them will skip or fail"
  fi
fi

cargo test --all-targets "$@"
