#!/usr/bin/env bash
# LL-HLS benchmark (issue 14): CPU share and resident memory of pullcast serving N LL-HLS
# clients of one 720p30 capture (each doing what an LL-HLS player does at the live edge: a
# blocking playlist reload for the next part, then the part), and the delay behind the
# source as hls.js in headless Chromium plays it, in low-latency and in plain mode (Date.now()
# − hls.playingDate, i.e. by PROGRAM-DATE-TIME, which is when each frame reached pullcast).
# Source: nginx-rtmp fed by ffmpeg; clients: bench/loadclient's pullcast-hls-load. All on
# 127.0.0.1.
#
# Env: CLIENTS (default "0 100 300"), BITRATE (video kbit/s, default 2500), DURATION
# (seconds of the window, default 20), PLAY_MS (how long Chromium plays per mode, default
# 15000), SERVER_BIN / HLS_LOAD_BIN (skip the build), KEEP=1, CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
CLIENTS="${CLIENTS:-0 100 300}"
BITRATE="${BITRATE:-2500}"
DURATION="${DURATION:-20}"
PLAY_MS="${PLAY_MS:-15000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"

BENCH_NAME=hls_load
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_peers ffmpeg nginx curl awk getconf node
[ -d integration_tests/browser/node_modules/hls.js ] || die "npm ci in integration_tests/browser first (hls.js, playwright-core)"
ulimit -n 65536 2>/dev/null || true

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-hls-load.XXXXXX")"
NGINX_PID="" PUBLISHER_PID="" SERVER_PID="" CLIENT_PID=""
cleanup() { stop_bench "$CLIENT_PID" "$SERVER_PID" "$PUBLISHER_PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${SERVER_BIN:-}" ] && [ -n "${HLS_LOAD_BIN:-}" ]; then
    BIN="$SERVER_BIN"
else
    echo "== building the release server and HLS load client"
    cargo build --release -p pullcast-server -p pullcast-loadclient --bin pullcast --bin pullcast-hls-load
    BIN="${SERVER_BIN:-$CARGO_TARGET_DIR/release/pullcast}"
    HLS_LOAD_BIN="${HLS_LOAD_BIN:-$CARGO_TARGET_DIR/release/pullcast-hls-load}"
fi

echo "== nginx-rtmp, the ${BITRATE} kbit/s source, pullcast"
start_nginx
publish_source "$BITRATE"
HLS_PORT=$(free_port)
start_server hls
capture_source bench
PLAYLIST="http://127.0.0.1:$HLS_PORT/bench/bench.m3u8"
curl -s --max-time 20 -o /dev/null "$PLAYLIST" || die "no playlist at $PLAYLIST"
HZ=$(getconf CLK_TCK)

ROWS=()
for n in $CLIENTS; do
    err="$WORK/load-$n.log" out="$WORK/load-$n.json"
    : >"$err"
    if [ "$n" -gt 0 ]; then
        "$HLS_LOAD_BIN" --url "$PLAYLIST" --clients "$n" --seconds "$DURATION" >"$out" 2>"$err" </dev/null &
        CLIENT_PID=$!
        started() { grep -q 'window start' "$err"; }
        wait_until 60 started || die "no window: $(tail -3 "$err")"
    fi
    t0=$(cpu_ticks "$SERVER_PID"); w0=$(now_ms)
    if [ "$n" -gt 0 ]; then
        ended() { grep -q 'window end' "$err"; }
        wait_until $(( DURATION + 30 )) ended || die "the window did not end"
    else
        sleep "$DURATION"
    fi
    t1=$(cpu_ticks "$SERVER_PID"); w1=$(now_ms); rss=$(rss_kib "$SERVER_PID")
    if [ "$n" -gt 0 ]; then kill "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; CLIENT_PID=""; fi
    cpu=$(awk -v t=$(( t1 - t0 )) -v hz="$HZ" -v ms=$(( w1 - w0 )) 'BEGIN { printf "%.1f", 100 * t / hz / (ms / 1000) }')
    parts=$(grep -o '"partsPerSecondPerClient":[0-9.]*' "$out" 2>/dev/null | cut -d: -f2 || true)
    kbps=$(grep -o '"kbitPerSecond":[0-9.]*' "$out" 2>/dev/null | cut -d: -f2 || true)
    errors=$(grep -o '"errors":[0-9]*' "$out" 2>/dev/null | cut -d: -f2 || true)
    ROWS+=("$(printf '%7s %8s %8s %12s %10s %7s' "$n" "$cpu" "$(( rss / 1024 ))" "${parts:--}" "${kbps:--}" "${errors:--}")")
    echo "   ${ROWS[-1]}"
    sleep 2
done

delay() { # delay LOW_LATENCY: p50 and p95 of hls.js's delay behind the source, ms
    local spec out
    spec="{\"pageUrl\":\"http://127.0.0.1:$HLS_PORT/\",\"playlistUrl\":\"$PLAYLIST\",\"scripts\":[\"node_modules/hls.js/dist/hls.min.js\"],\"lowLatency\":$1,\"runMs\":$PLAY_MS,\"timeoutMs\":$(( PLAY_MS + 60000 ))}"
    out=$(cd integration_tests/browser && node hls_driver.js "$spec" | tail -n1)
    node -e '
        const r = JSON.parse(process.argv[1]);
        if (!r.ok) { console.log("failed: " + r.error); process.exit(0); }
        const d = (r.delaysMs || []).slice().sort((a, b) => a - b);
        const q = (p) => d.length ? d[Math.min(d.length - 1, Math.round(p * (d.length - 1)))] : "-";
        const s = r.start || {}, f = r.final || {};
        const fps = (f.totalVideoFrames - s.totalVideoFrames) / ((f.t - s.t) / 1000);
        console.log(`p50 ${q(0.5)} ms, p95 ${q(0.95)} ms (${d.length} samples), first frame ${r.firstFrameMs} ms, ${fps.toFixed(1)} fps`);
    ' "$out"
}
echo "== hls.js in headless Chromium"
LL=$(delay true)
PLAIN=$(delay false)

echo
echo "LL-HLS, ${BITRATE} kbit/s 720p30 + AAC, window ${DURATION} s"
printf '%7s %8s %8s %12s %10s %7s\n' clients "cpu %" "rss MB" "parts/s each" "kbit/s" errors
for r in "${ROWS[@]}"; do echo "$r"; done
echo "delay behind the source (hls.js, PROGRAM-DATE-TIME): low-latency $LL"
echo "                                                    plain       $PLAIN"
