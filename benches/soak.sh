#!/usr/bin/env bash
# Soak test of tapswitch (not a cargo test): a release switch with 4 TAP ports and a stream
# listener, 4 namespace hosts, and for the whole duration, at once:
#   - TCP streams (iperf3 in chunks): host 0 -> host 1 (stable) and host 2 -> host 3 (flapping),
#   - MAC churn: trafgen on host 2 with random source MACs at a modest rate (--fdb-max 8192,
#     --ageing-secs 20, so the table fills, hits its limit, ages and refills),
#   - port flaps: host 3's interface goes down and up every few seconds (ping keeps writing to
#     it, so the switch sees EIO and recovery),
#   - API calls in a loop: GET ports/fdb/metrics/config, PATCH a port flag back and forth,
#     PUT/DELETE a static entry,
#   - a stream peer that stays connected, reads everything and sends a frame each second.
# Every 10 s it samples the switch's VmRSS, open fds and counters. At the end (traffic
# stopped, switch idle) it checks, from one /metrics scrape, the counter identity
#   sum(rx_frames) == frames_forwarded + sum(frames_flooded) + sum(rx_dropped), and per port
#   rx_frames == rx_forwarded + rx_flooded + rx_dropped,
# and exits non-zero if VmRSS is not flat (medians, see the report section: the last two
# minutes against the second minute and against half time), the fd count grew, or the
# identity fails. Everything it creates is removed on exit (trap EXIT).
#
# Usage (root): benches/soak.sh [--minutes 10]
# Addresses: 198.18.251.0/24 (inside 198.18.0.0/15).
set -euo pipefail
set -m # job control: every background job gets its own process group, stopped as a whole

MINUTES=10
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES="${2:?--minutes needs a number}"; shift 2 ;;
    --minutes=*) MINUTES="${1#--minutes=}"; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (usage: benches/soak.sh [--minutes N])" >&2; exit 2 ;;
  esac
done
case "$MINUTES" in ''|*[!0-9]*|0) echo "soak.sh: --minutes must be a positive whole number" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
  echo "soak.sh: needs root (TAPs and network namespaces)" >&2
  exit 2
fi
for t in ip iperf3 trafgen curl python3 ping; do
  command -v "$t" >/dev/null || { echo "soak.sh: '$t' is missing (iproute2, iperf3, netsniff-ng, curl, python3, iputils-ping)" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=$((MINUTES * 60))
TAG="sk$(($$ % 100000))"
NS=("tsoak-$$-0" "tsoak-$$-1" "tsoak-$$-2" "tsoak-$$-3")
IF=("${TAG}p0" "${TAG}p1" "${TAG}p2" "${TAG}p3")
IP=(198.18.251.1 198.18.251.2 198.18.251.3 198.18.251.4)
MAC=(02:50:4b:fb:00:01 02:50:4b:fb:00:02 02:50:4b:fb:00:03 02:50:4b:fb:00:04)
DIR=$(mktemp -d /tmp/tapswitch-soak.XXXXXX)
JOBS=()       # background jobs (process group leaders)
SW_PID=""
STOP="$DIR/stop"

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*"; }

stop_job() { # PID: SIGTERM its process group, wait up to 5 s, then SIGKILL
  local p=$1 i
  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

cleanup() {
  local rc=$? p n i
  trap - EXIT INT TERM
  touch "$STOP" 2>/dev/null || true
  for p in "${JOBS[@]}"; do stop_job "$p"; done
  if [ -n "$SW_PID" ] && kill -0 "$SW_PID" 2>/dev/null; then
    kill -TERM "$SW_PID" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$SW_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SW_PID" 2>/dev/null || true
    wait "$SW_PID" 2>/dev/null || true
  fi
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  for i in "${IF[@]}"; do ip link del "$i" 2>/dev/null || true; done
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building release (cargo build --release)"
cargo build --release --quiet --bin tapswitch
BIN=$ROOT/target/release/tapswitch

API_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
API="http://127.0.0.1:$API_PORT"

log "starting the switch: ports ${IF[*]} + stream listener, API on $API"
RUST_LOG=info "$BIN" run --listen "127.0.0.1:$API_PORT" --control "$DIR/ctl.sock" --fdb-max 8192 --ageing-secs 20 \
  --port "${IF[0]}" --port "${IF[1]}" --port "${IF[2]}" --port "${IF[3]}" \
  --port "strm=stream:$DIR/strm.sock" 2>"$DIR/switch.log" &
SW_PID=$!
for i in $(seq 100); do
  grep -q ready "$DIR/switch.log" && break
  kill -0 "$SW_PID" 2>/dev/null || { cat "$DIR/switch.log" >&2; echo "soak.sh: the switch exited" >&2; exit 1; }
  sleep 0.1
done
grep -q ready "$DIR/switch.log" || { cat "$DIR/switch.log" >&2; echo "soak.sh: the switch did not get ready" >&2; exit 1; }

for i in 0 1 2 3; do
  ip netns add "${NS[$i]}"
  ip netns exec "${NS[$i]}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip link set dev "${IF[$i]}" netns "${NS[$i]}"
  ip -n "${NS[$i]}" link set dev "${IF[$i]}" address "${MAC[$i]}"
  ip -n "${NS[$i]}" addr add "${IP[$i]}/24" dev "${IF[$i]}"
  ip -n "${NS[$i]}" link set dev "${IF[$i]}" up
  ip -n "${NS[$i]}" link set dev lo up
done
for i in 1 2 3; do
  ip netns exec "${NS[0]}" ping -n -q -c 2 -i 0.2 -W 2 "${IP[$i]}" >/dev/null \
    || { echo "soak.sh: host 0 cannot ping host $i through the switch" >&2; exit 1; }
done

END=$(( $(date +%s) + DURATION ))
running() { [ ! -e "$STOP" ] && [ "$(date +%s)" -lt "$END" ]; }

# --- workloads ---------------------------------------------------------------------------

# The stream peer: reads and discards everything, sends one broadcast a second.
python3 - "$DIR/strm.sock" "$STOP" >"$DIR/stream.log" 2>&1 <<'EOF' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(0.2)
frame = bytes.fromhex("ffffffffffff" "02504bfb0005" "88b5") + bytes(46)
got, sent, last = 0, 0, 0.0
while True:
    now = time.monotonic()
    if now - last >= 1.0:
        s.sendall(len(frame).to_bytes(4, "big") + frame)
        sent, last = sent + 1, now
    try:
        b = s.recv(1 << 16)
        if not b:
            break
        got += len(b)
    except socket.timeout:
        pass
    if os.path.exists(sys.argv[2] + ".stream"):
        break
print("stream peer: sent", sent, "frames, read", got, "bytes", flush=True)
# stay connected (the port must still exist at the final scrape) until stopped
while True:
    time.sleep(1)
EOF
JOBS+=($!)

# iperf3 servers.
ip netns exec "${NS[1]}" iperf3 -s -B "${IP[1]}" >"$DIR/iperf-s1.log" 2>&1 &
JOBS+=($!)
ip netns exec "${NS[3]}" iperf3 -s -B "${IP[3]}" >"$DIR/iperf-s3.log" 2>&1 &
JOBS+=($!)
sleep 1

tcp_loop() { # FROM TO LOG
  local from=$1 to=$2 out=$3 left
  while running; do
    left=$(( END - $(date +%s) ))
    [ "$left" -ge 3 ] || break
    [ "$left" -le 15 ] || left=15
    if r=$(timeout $((left + 10)) ip netns exec "${NS[$from]}" iperf3 -c "${IP[$to]}" -t "$left" -b 300M -f m 2>&1); then
      echo "ok $(grep receiver <<<"$r" | awk '{for (i=1;i<=NF;i++) if ($i ~ /bits\/sec/) print $(i-1)}')" >>"$out"
    else
      echo "fail" >>"$out"
      sleep 1
    fi
  done
}
tcp_loop 0 1 "$DIR/tcp01.log" &
JOBS+=($!)
tcp_loop 2 3 "$DIR/tcp23.log" &
JOBS+=($!)

# MAC churn: random unicast sources to an unknown unicast MAC, 2000 frames/s.
cat >"$DIR/churn.cfg" <<'EOF'
{ 0x02, 0xee, 0x00, 0x00, 0x00, 0x01, 0x02, drnd(5), c16(0x88b5), fill(0x00, 46) }
EOF
timeout $((DURATION + 5)) ip netns exec "${NS[2]}" trafgen --no-sock-mem -Q -P 1 -o "${IF[2]}" \
  -c "$DIR/churn.cfg" -n $((DURATION * 2000)) -b 2000pps >"$DIR/trafgen.log" 2>&1 &
JOBS+=($!)

# Port flaps on host 3, with a ping to it so the switch writes to the downed TAP.
(
  while running; do
    sleep 3
    ip -n "${NS[3]}" link set dev "${IF[3]}" down
    sleep 1
    ip -n "${NS[3]}" link set dev "${IF[3]}" up
    echo flap >>"$DIR/flaps.log"
  done
) &
JOBS+=($!)
PINGS=()
ip netns exec "${NS[0]}" ping -n -q -i 0.2 -W 1 -w "$DURATION" "${IP[3]}" >"$DIR/ping03.log" 2>&1 &
JOBS+=($!); PINGS+=($!)
ip netns exec "${NS[0]}" ping -n -q -i 0.2 -W 1 -w "$DURATION" "${IP[1]}" >"$DIR/ping01.log" 2>&1 &
JOBS+=($!); PINGS+=($!)

# API calls.
api() { # METHOD PATH [BODY] -> prints the status (reads on TCP, changes on the control socket)
  local m=$1 p=$2 b=${3:-}
  if [ -n "$b" ]; then
    curl -s -o /dev/null -w '%{http_code}' -m 5 --unix-socket "$DIR/ctl.sock" -X "$m" -H 'content-type: application/json' -d "$b" "http://localhost$p" || echo 000
  elif [ "$m" = GET ]; then
    curl -s -o /dev/null -w '%{http_code}' -m 5 -X "$m" "$API$p" || echo 000
  else
    curl -s -o /dev/null -w '%{http_code}' -m 5 --unix-socket "$DIR/ctl.sock" -X "$m" "http://localhost$p" || echo 000
  fi
}
(
  n=0
  while running; do
    for c in "GET /api/v1/ports" "GET /api/v1/fdb" "GET /metrics" "GET /api/v1/config" \
             "GET /api/v1/ports/${IF[1]}"; do
      echo "$c $(api $c)" >>"$DIR/api.log"
    done
    h=$([ $((n % 2)) -eq 0 ] && echo true || echo false)
    echo "PATCH hairpin=$h $(api PATCH "/api/v1/ports/${IF[1]}" "{\"hairpin\": $h}")" >>"$DIR/api.log"
    echo "PUT static $(api PUT /api/v1/fdb/02:50:4b:fb:00:99 "{\"port\": \"${IF[0]}\", \"kind\": \"static\"}")" >>"$DIR/api.log"
    echo "DELETE static $(api DELETE /api/v1/fdb/02:50:4b:fb:00:99)" >>"$DIR/api.log"
    n=$((n + 1))
    sleep 0.5
  done
) &
JOBS+=($!)

# --- sampling ------------------------------------------------------------------------------

metric() { # TEXT NAME [LABEL-MATCH]: the sum of the samples of NAME (whose labels contain MATCH)
  awk -v n="$2" -v l="${3:-}" '
    $1 !~ /^#/ { k = $1; sub(/\{.*/, "", k); if (k == n && (l == "" || index($1, l))) s += $2 }
    END { printf "%.0f\n", s }' <<<"$1"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SW_PID/status"; }
fds() { ls "/proc/$SW_PID/fd" | wc -l; }

SAMPLES="$DIR/samples.txt" # t rss fds learned entries rx forwarded
START=$(date +%s)
printf '%6s %10s %5s %8s %8s %12s %12s %10s\n' t_s rss_kib fds learned entries rx_frames forwarded limit_hits
while running; do
  sleep 10 &
  wait $! || true
  kill -0 "$SW_PID" 2>/dev/null || { echo "soak.sh: the switch died" >&2; tail -20 "$DIR/switch.log" >&2; exit 1; }
  t=$(( $(date +%s) - START ))
  r=$(rss_kib); f=$(fds)
  m=$(curl -s -m 5 "$API/metrics" || true)
  line=$(printf '%6s %10s %5s %8s %8s %12s %12s %10s' "$t" "$r" "$f" \
    "$(metric "$m" tapswitch_fdb_learned_entries)" "$(metric "$m" tapswitch_fdb_entries)" \
    "$(metric "$m" tapswitch_port_rx_frames_total)" "$(metric "$m" tapswitch_frames_forwarded_total)" \
    "$(metric "$m" tapswitch_fdb_learn_limit_hits_total)")
  echo "$line" | tee -a "$SAMPLES"
done

# --- stop traffic, let the switch go idle, one final scrape --------------------------------

log "stopping the traffic"
touch "$STOP"
touch "$STOP.stream"
for p in "${PINGS[@]}"; do kill -INT -- "-$p" 2>/dev/null || true; done # SIGINT: ping prints its summary
sleep 0.5
for p in "${JOBS[@]:1}"; do stop_job "$p"; done # all but the stream peer
for i in 0 1 2 3; do ip -n "${NS[$i]}" link set dev "${IF[$i]}" up 2>/dev/null || true; done
sleep 2
# Idle: take scrapes until two in a row (1 s apart) show the same rx total; use that one.
FINAL=$(curl -s -m 5 "$API/metrics")
for i in $(seq 15); do
  sleep 1
  FINAL2=$(curl -s -m 5 "$API/metrics")
  [ "$(metric "$FINAL" tapswitch_port_rx_frames_total)" = "$(metric "$FINAL2" tapswitch_port_rx_frames_total)" ] && break
  FINAL=$FINAL2
done
RSS_END=$(rss_kib)
FDS_END=$(fds)
kill -0 "$SW_PID" 2>/dev/null || { echo "soak.sh: the switch died" >&2; exit 1; }

RX=$(metric "$FINAL" tapswitch_port_rx_frames_total)
RX2=$(metric "$FINAL2" tapswitch_port_rx_frames_total)
FWD=$(metric "$FINAL" tapswitch_frames_forwarded_total)
FLD=$(metric "$FINAL" tapswitch_frames_flooded_total)
DROP=$(metric "$FINAL" tapswitch_port_rx_dropped_total)
TXD=$(metric "$FINAL" tapswitch_port_tx_dropped_total)
RHS=$((FWD + FLD + DROP))

# --- report --------------------------------------------------------------------------------

read -r RSS_MIN RSS_MAX FDS_MIN FDS_MAX < <(awk '{ if (NR == 1 || $2 < a) a = $2; if ($2 > b) b = $2;
  if (NR == 1 || $3 < c) c = $3; if ($3 > d) d = $3 } END { print a, b, c, d }' "$SAMPLES")
# RSS is judged on medians, so a transient buffer (a full-table JSON answer is about 1 MiB) does
# not count as growth, but a leak does:
#   baseline = median of the samples of the second minute (60..120 s; the last sample for short runs),
#   mid      = median of the samples within 60 s of half time,
#   steady   = median of the samples of the last two minutes.
# FAIL if steady - baseline > max(20% of baseline, 2 MiB) (not flat), or steady - mid >
# max(5% of mid, 1 MiB) (still growing in the second half).
median_rss() { # FROM TO: median RSS of the samples with FROM <= t < TO
  awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { print $2 }' "$SAMPLES" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
LAST_T=$(tail -1 "$SAMPLES" | awk '{ print $1 }')
BASE_RSS=$(median_rss 60 120)
[ "$BASE_RSS" = 0 ] && BASE_RSS=$(tail -1 "$SAMPLES" | awk '{ print $2 }')
read -r BASE_FDS < <(awk '$1 >= 60 { print $3; exit }' "$SAMPLES"; tail -1 "$SAMPLES" | awk '{ print $3 }')
HALF=$((LAST_T / 2))
MID_RSS=$(median_rss $((HALF - 60)) $((HALF + 60)))
[ "$MID_RSS" = 0 ] && MID_RSS=$BASE_RSS
STEADY_RSS=$(median_rss $((LAST_T - 120)) $((LAST_T + 1)))
MAX_AFTER=$(awk '$1 >= 60 && $2 > m { m = $2 } END { print m + 0 }' "$SAMPLES")
GROWTH_PCT=$(awk -v a="$BASE_RSS" -v b="$STEADY_RSS" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
LATE_PCT=$(awk -v a="$MID_RSS" -v b="$STEADY_RSS" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')

tcp_summary() {
  awk '$1 == "ok" { n++; s += $2 } $1 == "fail" { f++ }
       END { printf "%d chunks ok (mean %.0f Mbit/s), %d failed", n, (n ? s / n : 0), f }' "$1" 2>/dev/null || echo "no chunks"
}
API_CALLS=$(wc -l <"$DIR/api.log" 2>/dev/null || echo 0)
API_BAD=$(awk '$NF !~ /^2/ { n++ } END { print n + 0 }' "$DIR/api.log" 2>/dev/null || echo 0)

echo
echo "================ tapswitch soak: $MINUTES min ================"
printf '%-34s %s\n' "VmRSS KiB min / max (samples)" "$RSS_MIN / $RSS_MAX"
printf '%-34s %s\n' "VmRSS KiB median 60-120 s / half time / last 2 min" "$BASE_RSS / $MID_RSS / $STEADY_RSS  (growth ${GROWTH_PCT}% overall, ${LATE_PCT}% in the second half)"
printf '%-34s %s\n' "VmRSS KiB max after 60 s / idle at the end" "$MAX_AFTER / $RSS_END"
printf '%-34s %s\n' "open fds min / max (samples)" "$FDS_MIN / $FDS_MAX"
printf '%-34s %s\n' "open fds baseline / end (idle)" "$BASE_FDS / $FDS_END"
printf '%-34s %s\n' "TCP host0->host1 (stable)" "$(tcp_summary "$DIR/tcp01.log")"
printf '%-34s %s\n' "TCP host2->host3 (flapping)" "$(tcp_summary "$DIR/tcp23.log")"
printf '%-34s %s\n' "ping host0->host1" "$(grep -h 'packets transmitted' "$DIR/ping01.log" 2>/dev/null || echo '(stopped before summary)')"
printf '%-34s %s\n' "ping host0->host3 (flapping)" "$(grep -h 'packets transmitted' "$DIR/ping03.log" 2>/dev/null || echo '(stopped before summary)')"
printf '%-34s %s\n' "port flaps" "$(wc -l <"$DIR/flaps.log" 2>/dev/null || echo 0)"
printf '%-34s %s\n' "MAC churn (trafgen)" "$(grep -h 'packets outgoing' "$DIR/trafgen.log" 2>/dev/null | head -1 | xargs || echo 'stopped at the end')"
printf '%-34s %s\n' "API calls / not 2xx" "$API_CALLS / $API_BAD"
printf '%-34s %s\n' "fdb learned / limit hits / aged" "$(metric "$FINAL" tapswitch_fdb_learned_total) / $(metric "$FINAL" tapswitch_fdb_learn_limit_hits_total) / $(metric "$FINAL" tapswitch_fdb_aged_total)"
printf '%-34s %s\n' "link changes (all ports)" "$(metric "$FINAL" tapswitch_port_link_changes_total)"
printf '%-34s %s\n' "tx dropped (all ports, reasons)" "$TXD ($(awk '$1 ~ /^tapswitch_port_tx_dropped_total/ && $2 > 0 { r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); s[r] += $2 } END { for (k in s) printf "%s=%d ", k, s[k] }' <<<"$FINAL"))"
echo
echo "per port (final scrape; rx_frames must equal rx_forwarded + rx_flooded + rx_dropped):"
printf '  %-12s %12s %12s %12s %12s %12s %12s\n' port rx_frames rx_forwarded rx_flooded rx_dropped tx_frames tx_dropped
PORT_BAD=""
for p in $(awk '$1 ~ /^tapswitch_port_info\{/ { s = $1; sub(/.*port="/, "", s); sub(/".*/, "", s); print s }' <<<"$FINAL"); do
  m() { metric "$FINAL" "$1" "port=\"$p\""; }
  P_RX=$(m tapswitch_port_rx_frames_total) P_FW=$(m tapswitch_port_rx_forwarded_total)
  P_FL=$(m tapswitch_port_rx_flooded_total) P_DR=$(m tapswitch_port_rx_dropped_total)
  printf '  %-12s %12s %12s %12s %12s %12s %12s\n' "$p" "$P_RX" "$P_FW" "$P_FL" "$P_DR" \
    "$(m tapswitch_port_tx_frames_total)" "$(m tapswitch_port_tx_dropped_total)"
  [ "$P_RX" = $((P_FW + P_FL + P_DR)) ] || PORT_BAD="$PORT_BAD $p"
done
echo
echo "identity (one scrape with the switch idle: rx total $RX, 1 s later $RX2):"
echo "  sum(rx_frames) = $RX"
echo "  forwarded + sum(flooded) + sum(rx_dropped) = $FWD + $FLD + $DROP = $RHS"

FAIL=0
if [ "$RX" != "$RHS" ]; then echo "FAIL: the counter identity does not hold (difference $((RX - RHS)))"; FAIL=1; fi
if [ -n "$PORT_BAD" ]; then echo "FAIL: the per-port identity does not hold for:$PORT_BAD"; FAIL=1; fi
if [ "$RX" != "$RX2" ]; then echo "FAIL: the switch was not idle at the final scrape ($RX then $RX2)"; FAIL=1; fi
if awk -v a="$BASE_RSS" -v b="$STEADY_RSS" 'BEGIN { d = b - a; l = a * 0.2; if (l < 2048) l = 2048; exit !(d > l) }'; then
  echo "FAIL: VmRSS not flat: median $BASE_RSS KiB in the second minute, $STEADY_RSS KiB in the last two"; FAIL=1; fi
if awk -v a="$MID_RSS" -v b="$STEADY_RSS" 'BEGIN { d = b - a; l = a * 0.05; if (l < 1024) l = 1024; exit !(d > l) }'; then
  echo "FAIL: VmRSS still growing: median $MID_RSS KiB at half time, $STEADY_RSS KiB in the last two minutes"; FAIL=1; fi
if [ "$FDS_END" -gt "$BASE_FDS" ]; then echo "FAIL: open fds grew ($BASE_FDS -> $FDS_END)"; FAIL=1; fi
if [ "$FAIL" = 0 ]; then echo "PASS"; fi
exit "$FAIL"
