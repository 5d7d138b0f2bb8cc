#!/usr/bin/env bash
# RTMP fan-out benchmark (issue 14): N RTMP players of one 720p30 stream at BITRATE kbit/s,
# served by pullcast (which pulls the stream from nginx-rtmp) and by nginx-rtmp itself (the
# players connect to the nginx that receives the stream), side by side in one run: CPU share
# and resident memory of the serving process over a measured window, per player, and what
# the players got. Players come from bench/loadclient's pullcast-rtmp-load (pullcast's own
# sans-IO play session, one current-thread runtime). All traffic on 127.0.0.1.
#
# Env: PLAYERS (default "0 100 300 600"; 0 = the stream alone), BITRATE (video kbit/s,
# default 2500), DURATION (seconds of the window, default 20), STAGGER_MS (default 5),
# SETTLE_MS (default 3000), CARGO_TARGET_DIR (default /var/tmp/pullcast-target), SERVER_BIN /
# RTMP_LOAD_BIN (skip the build), KEEP=1 (keep the work folder), PEERS (default
# "pullcast nginx").
set -euo pipefail

cd "$(dirname "$0")/.."
PLAYERS="${PLAYERS:-0 100 300 600}"
BITRATE="${BITRATE:-2500}"
DURATION="${DURATION:-20}"
STAGGER_MS="${STAGGER_MS:-5}"
SETTLE_MS="${SETTLE_MS:-3000}"
PEERS="${PEERS:-pullcast nginx}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"
export NGINX_CONNECTIONS=4096

BENCH_NAME=rtmp_fanout
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_peers ffmpeg nginx curl awk getconf
for n in $PLAYERS; do [[ "$n" =~ ^[0-9]+$ ]] || die "PLAYERS: $n is not a number"; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-rtmp-fanout.XXXXXX")"
NGINX_PID="" PUBLISHER_PID="" SERVER_PID="" CLIENT_PID=""
cleanup() { stop_bench "$CLIENT_PID" "$SERVER_PID" "$PUBLISHER_PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${SERVER_BIN:-}" ] && [ -n "${RTMP_LOAD_BIN:-}" ]; then
    BIN="$SERVER_BIN"
else
    echo "== building the release server and RTMP load client"
    cargo build --release -p pullcast-server -p pullcast-loadclient --bin pullcast --bin pullcast-rtmp-load
    BIN="${SERVER_BIN:-$CARGO_TARGET_DIR/release/pullcast}"
    RTMP_LOAD_BIN="${RTMP_LOAD_BIN:-$CARGO_TARGET_DIR/release/pullcast-rtmp-load}"
fi

echo "== nginx-rtmp and the ${BITRATE} kbit/s source"
start_nginx
publish_source "$BITRATE"

echo "== pullcast pulling it"
SERVER_RTMP_PORT=$(free_port)
start_server fanout
capture_source bench
sleep 2.5
NGINX_WORKER=$(pgrep -P "$NGINX_PID" nginx | head -n1)
[ -n "$NGINX_WORKER" ] || die "no nginx worker process"
HZ=$(getconf CLK_TCK)

ROWS=()
run_row() { # run_row PEER N
    local peer=$1 n=$2 url pids
    if [ "$peer" = pullcast ]; then
        url="rtmp://127.0.0.1:$SERVER_RTMP_PORT/live/bench"; pids="$SERVER_PID"
    else
        url="rtmp://127.0.0.1:$RTMP_PORT/live/src"; pids="$NGINX_PID $NGINX_WORKER"
    fi
    local out="$WORK/$peer-$n.json" err="$WORK/$peer-$n.log"
    : >"$err"
    if [ "$n" -gt 0 ]; then
        "$RTMP_LOAD_BIN" --url "$url" --players "$n" --seconds "$DURATION" \
            --stagger-ms "$STAGGER_MS" --settle-ms "$SETTLE_MS" >"$out" 2>"$err" </dev/null &
        CLIENT_PID=$!
        started() { grep -q 'window start' "$err"; }
        wait_until $(( n * STAGGER_MS / 1000 + 60 )) started || die "$peer $n: no window: $(tail -3 "$err")"
    else
        CLIENT_PID=""
    fi
    local t0 t1 p w0 w1 rss=0
    t0=0; for p in $pids; do t0=$(( t0 + $(cpu_ticks "$p") )); done
    w0=$(now_ms)
    if [ -n "$CLIENT_PID" ]; then
        ended() { grep -q 'window end' "$err"; }
        wait_until $(( DURATION + 30 )) ended || die "$peer $n: the window did not end"
    else
        sleep "$DURATION"
    fi
    t1=0; for p in $pids; do t1=$(( t1 + $(cpu_ticks "$p") )); done
    w1=$(now_ms)
    for p in $pids; do rss=$(( rss + $(rss_kib "$p") )); done
    if [ -n "$CLIENT_PID" ]; then wait "$CLIENT_PID" 2>/dev/null || true; CLIENT_PID=""; fi
    local cpu playing fps kbps first
    cpu=$(awk -v t=$(( t1 - t0 )) -v hz="$HZ" -v ms=$(( w1 - w0 )) 'BEGIN { printf "%.1f", 100 * t / hz / (ms / 1000) }')
    if [ "$n" -gt 0 ]; then
        playing=$(grep -o '"playing":[0-9]*' "$out" | cut -d: -f2)
        fps=$(grep -o '"videoFps":{[^}]*}' "$out" | grep -o '"min":[0-9.]*' | cut -d: -f2)
        kbps=$(grep -o '"kbitPerSecond":[0-9.]*' "$out" | cut -d: -f2)
        first=$(grep -o '"firstVideoMs":{[^}]*}' "$out" | grep -o '"p50":[0-9.]*' | cut -d: -f2)
    else
        playing=0 fps=- kbps=- first=-
    fi
    ROWS+=("$(printf '%-9s %7s %8s %8s %9s %9s %10s %10s' "$peer" "$n" "$cpu" "$(( rss / 1024 ))" "$playing" "${fps:--}" "${kbps:--}" "${first:--}")")
    echo "   ${ROWS[-1]}"
    sleep 2
}

echo "== rows (CPU % of one core and RSS of the serving process over ${DURATION} s)"
for n in $PLAYERS; do
    for peer in $PEERS; do run_row "$peer" "$n"; done
done

echo
echo "RTMP fan-out, ${BITRATE} kbit/s 720p30 + AAC, window ${DURATION} s"
printf '%-9s %7s %8s %8s %9s %9s %10s %10s\n' peer players "cpu %" "rss MB" playing "min fps" "kbit/s" "1st ms"
for r in "${ROWS[@]}"; do echo "$r"; done
