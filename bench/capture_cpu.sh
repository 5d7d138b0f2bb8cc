#!/usr/bin/env bash
# Capture cost benchmark: CPU and memory of pullcast pulling one 4 Mbps 720p30 H.264 + AAC
# RTMP stream from nginx-rtmp (fed by ffmpeg), side by side with a peer doing the same job
# (`ffmpeg -i rtmp://... -c copy -f null -`). All traffic on 127.0.0.1. See bench/README.md.
#
# With RECORD=1 the capture also records (fragmented MP4, issue 4) and the peer becomes
# `ffmpeg -i rtmp://... -c copy -f mp4 -movflags frag_keyframe+empty_moov FILE`, recording
# the same source; the ratio of the two CPU figures is printed.
#
# Env: RECORD (0/1, default 0), DURATION (seconds sampled, default 60), CARGO_TARGET_DIR (default
# /var/tmp/pullcast-target), SERVER_BIN (skip the build and use this binary), KEEP=1 (keep
# the work folder with all logs).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-60}"
RECORD="${RECORD:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"

BENCH_NAME=capture_cpu
# shellcheck source=bench/lib.sh
source bench/lib.sh # die, free_port, wait_until, port_open, now_ms, cpu_ticks, rss_kib, start_nginx, stop_nginx
require_peers ffmpeg nginx curl awk getconf
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 2 ] || die "DURATION must be an integer ≥ 2"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-bench.XXXXXX")"
NGINX_PID="" PUBLISHER_PID="" SERVER_PID="" READER_PID=""

cleanup() { stop_bench "$READER_PID" "$SERVER_PID" "$PUBLISHER_PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${SERVER_BIN:-}" ]; then
    BIN="$SERVER_BIN"
    LABEL="pullcast ($(basename "$(dirname "$BIN")"))"
else
    echo "== building the release server"
    LABEL="pullcast (release)"
    cargo build --release -p pullcast-server --bin pullcast
    BIN="$CARGO_TARGET_DIR/release/pullcast"
fi
[ -x "$BIN" ] || die "no server binary at $BIN"

echo "== starting nginx-rtmp"
start_nginx
URI="rtmp://127.0.0.1:$RTMP_PORT/live/bench"

echo "== publishing 1280x720 30 fps H.264 4 Mbps + AAC 48 kHz to $URI"
ffmpeg -hide_banner -nostdin -loglevel warning -re \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000 \
    -c:v libx264 -preset veryfast -tune zerolatency -g 60 -profile:v baseline -bf 0 -pix_fmt yuv420p \
    -b:v 4M -maxrate 4M -bufsize 8M \
    -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$URI" >"$WORK/publisher.log" 2>&1 </dev/null &
PUBLISHER_PID=$!
published() { grep -q "publish: name='bench'" "$WORK/error.log" 2>/dev/null; }
wait_until 10 published || die "ffmpeg did not publish: $(tail -5 "$WORK/publisher.log")"

echo "== starting pullcast ($BIN)"
RUST_LOG="${RUST_LOG:-info}" start_server capture
api() { curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d "$2" "$API/$1"; }

# The value of a numeric JSON field in a find_all answer (the only capture).
field() { grep -o "\"$1\" *: *[0-9.]*" <<<"$2" | head -n1 | sed 's/.*: *//'; }

echo "== pull"
T0=$(now_ms)
if [ "$RECORD" = 1 ]; then
    REPLY=$(api pull "{\"uri\":\"$URI\",\"localStreamName\":\"bench\",\"record\":\"true\"}")
else
    REPLY=$(api pull "{\"uri\":\"$URI\",\"localStreamName\":\"bench\"}")
fi
processed() {
    LIST=$(api find_all '{}' || true)
    grep -Eq '"status" *: *"PROCESSED_REMOTE"' <<<"$LIST"
}
poll_processed() {
    local deadline=$(( $(now_ms) + 15000 ))
    until processed; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}
poll_processed || die "no PROCESSED_REMOTE within 15 s (pull answered: $REPLY; find_all: ${LIST:-})"
T_PROCESSED=$(( $(now_ms) - T0 ))

if [ "$RECORD" = 1 ]; then
    PEER_LABEL="ffmpeg -c copy -f mp4 frag (peer)"
    echo "== peer: ffmpeg -i $URI -c copy -f mp4 -movflags frag_keyframe+empty_moov $WORK/peer.mp4"
    ffmpeg -hide_banner -nostdin -loglevel error -i "$URI" -c copy -f mp4 \
        -movflags frag_keyframe+empty_moov "$WORK/peer.mp4" >"$WORK/reader.log" 2>&1 </dev/null &
else
    PEER_LABEL="ffmpeg -c copy -f null (peer)"
    echo "== peer: ffmpeg -i $URI -c copy -f null -"
    ffmpeg -hide_banner -nostdin -loglevel error -i "$URI" -c copy -f null - >"$WORK/reader.log" 2>&1 </dev/null &
fi
READER_PID=$!
sleep 3 # let the peer connect and finish probing; both are then in steady state
kill -0 "$READER_PID" 2>/dev/null || die "the ffmpeg reader exited: $(tail -5 "$WORK/reader.log")"

echo "== sampling for $DURATION s"
HZ=$(getconf CLK_TCK)
S_CPU0=$(cpu_ticks "$SERVER_PID"); R_CPU0=$(cpu_ticks "$READER_PID")
processed || true; BYTES0=$(field bytesReceived "$LIST")
W0=$(now_ms)
S_RSS_SUM=0 S_RSS_PEAK=0 R_RSS_SUM=0 R_RSS_PEAK=0 N=0
for _ in $(seq "$DURATION"); do
    sleep 1
    kill -0 "$SERVER_PID" 2>/dev/null || die "pullcast exited during the run: $(tail -20 "$WORK/pullcast-capture.log")"
    s=$(rss_kib "$SERVER_PID"); r=$(rss_kib "$READER_PID")
    S_RSS_SUM=$(( S_RSS_SUM + s )); R_RSS_SUM=$(( R_RSS_SUM + r )); N=$(( N + 1 ))
    if [ "$s" -gt "$S_RSS_PEAK" ]; then S_RSS_PEAK=$s; fi
    if [ "$r" -gt "$R_RSS_PEAK" ]; then R_RSS_PEAK=$r; fi
done
S_CPU1=$(cpu_ticks "$SERVER_PID"); R_CPU1=$(cpu_ticks "$READER_PID")
W1=$(now_ms)
processed || die "the capture is no longer PROCESSED_REMOTE: $LIST"
BYTES1=$(field bytesReceived "$LIST"); BITRATE=$(field bitrateKbps "$LIST")

awk -v hz="$HZ" -v ms=$(( W1 - W0 )) -v n="$N" -v tp="$T_PROCESSED" \
    -v sc=$(( S_CPU1 - S_CPU0 )) -v rc=$(( R_CPU1 - R_CPU0 )) \
    -v ss="$S_RSS_SUM" -v sp="$S_RSS_PEAK" -v rs="$R_RSS_SUM" -v rp="$R_RSS_PEAK" \
    -v label="$LABEL" -v peer="$PEER_LABEL" -v rec="$RECORD" \
    -v b0="${BYTES0:-0}" -v b1="${BYTES1:-0}" -v br="${BITRATE:-?}" '
BEGIN {
    s = ms / 1000
    printf "\n== results (%.1f s window, one 4 Mbps 720p30 H.264 + AAC stream)\n", s
    printf "time from pull to PROCESSED_REMOTE: %d ms\n", tp
    printf "pullcast bytesReceived: %d (%.0f during the window = %.0f kbit/s); bitrateKbps: %s\n", b1, b1 - b0, (b1 - b0) * 8 / s / 1000, br
    printf "%-34s %12s %14s %14s\n", "process", "CPU % (1 core)", "avg RSS (MiB)", "peak RSS (MiB)"
    printf "%-34s %12.2f %14.1f %14.1f\n", label, sc / hz / s * 100, ss / n / 1024, sp / 1024
    printf "%-34s %12.2f %14.1f %14.1f\n", peer, rc / hz / s * 100, rs / n / 1024, rp / 1024
    if (rec == 1 && rc > 0) printf "recording CPU ratio pullcast / ffmpeg: %.2f (capture and recording together vs ffmpeg reading and recording)\n", sc / rc
}'
if [ "$RECORD" = 1 ]; then
    echo "recordings: pullcast $(du -sh "$WORK/records" 2>/dev/null | cut -f1) in $(ls "$WORK/records" 2>/dev/null | grep -c '\.mp4$') file(s); ffmpeg $(du -sh "$WORK/peer.mp4" 2>/dev/null | cut -f1)"
fi
