#!/usr/bin/env bash
# Installs the Debian packages the tests need; tests/run.sh calls it first. Idempotent: when
# every package is installed it changes nothing. As root on Debian/Ubuntu it installs with
# apt-get; otherwise it says what is missing (tests that need it skip, or fail with CI=true).
#
# Version skew: an image may carry a package from a suite it does not list. Debian 12 images of
# this kind ship qemu-utils 10.0 from bookworm-backports, which Breaks bookworm's qemu-system-x86
# 7.2 (through qemu-system-common), so a plain `apt-get install qemu-system-x86` stops with
# "held broken packages" (or, depending on what else is installed, removes qemu-utils). So for
# each package to install, the installed packages built from the same source package at
# another version are installed at the candidate's version alongside (qemu-utils=<bookworm
# version>, with --allow-downgrades), and the script says so. apt's plan is simulated first:
# a plan that would still remove a package stops here, naming it.
#
# Options (for tests/install_deps.rs):
#   --simulate      plan with `apt-get -s` and print it; changes nothing, needs no root, no
#                   `apt-get update`
#   --admindir DIR  read the installed state from DIR/status instead of /var/lib/dpkg/status
#   --no-align      leave skewed packages alone (shows what a plain install would do)
#   --list          print the packages the tests need, one a line, and stop
set -euo pipefail

me="tests/install-deps.sh"
simulate=0
list=0
align=1
admindir=/var/lib/dpkg
while [ $# -gt 0 ]; do
  case "$1" in
    --simulate) simulate=1 ;;
    --no-align) align=0 ;;
    --admindir) admindir="$2"; shift ;;
    --list) list=1 ;;
    *) echo "$me: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

packages=(iproute2 iputils-ping python3 iperf3 netsniff-ng prometheus mininet qemu-system-x86 frr
  linux-image-cloud-amd64 busybox-static cpio openvswitch-switch tcpdump tshark util-linux
  libvirt-daemon-system libvirt-clients)
# systemd-analyze checks the unit in contrib/systemd; only if it is not there already
command -v systemd-analyze >/dev/null || packages+=(systemd)
if [ "$list" = 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

apt_opts=()
[ "$admindir" = /var/lib/dpkg ] || apt_opts=(-o "Dir::State::status=$admindir/status")
installed() {
  local st
  st=$(dpkg-query --admindir="$admindir" -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
  [[ "$st" == [ih]i* ]]
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "$me: every test package is installed"
  exit 0
fi
if [ "$simulate" = 0 ] && { [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; }; then
  echo "$me: missing packages ${missing[*]} (run as root on Debian/Ubuntu to install them); tests that need them will skip or fail"
  exit 0
fi
echo "$me: to install: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "$simulate" = 0 ]; then
  apt-get update -qq
fi

# Installed packages of the same source as a package to install, at another version.
pins=()
if [ "$align" = 1 ]; then
  # state (i: installed, h: held), package, version, source package and source version
  inst=$(dpkg-query --admindir="$admindir" -W -f='${db:Status-Abbrev} ${Package} ${Version} ${source:Package} ${source:Version}\n' |
    awk '$1 ~ /^[ih]i$/ { print substr($1, 1, 1), $2, $3, $4, $5 }')
  # the candidate version, source package and source version of each package to install
  declare -A cand src srcver
  while read -r pkg c; do cand[$pkg]=$c; done < <(apt-cache "${apt_opts[@]}" policy "${missing[@]}" |
    awk '/^[^ ].*:$/ { sub(/:$/, ""); p = $0 } /^  Candidate:/ { print p, $2 }')
  want=()
  for m in "${missing[@]}"; do
    if [ -z "${cand[$m]-}" ] || [ "${cand[$m]}" = "(none)" ]; then
      echo "$me: no package $m in the configured suites (apt-get update? /etc/apt/sources.list)" >&2
      exit 1
    fi
    want+=("$m=${cand[$m]}")
  done
  while read -r pkg s sv; do src[$pkg]=$s; srcver[$pkg]=$sv; done < <(apt-cache "${apt_opts[@]}" show "${want[@]}" |
    awk '/^Package:/ { p = $2; s = $2; sv = "" } /^Version:/ { v = $2 } /^Source:/ { s = $2; sv = $3 }
         /^$/ && p { gsub(/[()]/, "", sv); print p, s, (sv ? sv : v); p = "" }
         END { if (p) { gsub(/[()]/, "", sv); print p, s, (sv ? sv : v) } }')
  for m in "${missing[@]}"; do
    c=${cand[$m]}
    # same source package, another source version: their dependencies are usually exact
    while read -r want_state pkg ver psrc psrcver; do
      [ "$psrc" = "${src[$m]:-$m}" ] && [ "$psrcver" != "${srcver[$m]:-$c}" ] || continue
      case " ${pins[*]-} " in *" $pkg="*) continue ;; esac
      if [ "$want_state" = h ]; then
        echo "$me: $pkg $ver is installed and held (apt-mark hold) but $m comes at $c (both from source ${src[$m]}; their versions must match): apt will refuse; 'apt-mark unhold $pkg' and run again" >&2
      elif info=$(apt-cache "${apt_opts[@]}" show "$pkg=$c" 2>/dev/null) && grep -q "^Source: ${src[$m]}\b" <<< "$info"; then
        echo "$me: $pkg $ver is installed but $m comes at $c (both from source ${src[$m]}; their versions must match):" \
          "installing $pkg=$c with it (--allow-downgrades)"
        pins+=("$pkg=$c")
      else
        echo "$me: $pkg $ver is installed but $m comes at $c (both from source ${src[$m]}) and no $pkg $c is available; apt may refuse"
      fi
    done <<< "$inst"
  done
fi

cmd=(apt-get "${apt_opts[@]}" install -y -q --no-install-recommends)
[ "${#pins[@]}" -gt 0 ] && cmd+=(--allow-downgrades)
cmd+=("${missing[@]}" "${pins[@]}")

# apt's plan: a failure or a removal stops here, with apt's reason
if ! plan=$("${cmd[@]}" -s 2>&1); then
  echo "$plan" | grep -E '^(E:| )' >&2 || true
  echo "$me: apt-get cannot install ${missing[*]} (above: apt's reason)" >&2
  exit 1
fi
removed=$(echo "$plan" | awk '/^Remv / { print $2 }' | tr '\n' ' ')
if [ "$simulate" = 1 ]; then
  echo "$plan" | grep -E '^(Inst|Remv) '
fi
if [ -n "$removed" ]; then
  echo "$me: installing ${missing[*]} would remove: $removed; not doing that (install or remove them yourself)" >&2
  exit 1
fi
if [ "$simulate" = 1 ]; then
  echo "$me: the plan installs everything and removes nothing (simulated)"
  exit 0
fi
echo "$me: ${cmd[*]}"
"${cmd[@]}" >/dev/null
still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [ "${#still[@]}" -gt 0 ]; then
  echo "$me: still missing after apt-get: ${still[*]}" >&2
  exit 1
fi
echo "$me: installed ${missing[*]}"
