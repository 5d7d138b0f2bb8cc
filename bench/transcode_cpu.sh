#!/usr/bin/env bash
# What the per-capture transcodes cost (issue 5): CPU per second of media of the B-frame
# transcode (OpenH264 decode → Constrained Baseline encode, what WebRTC viewers of a B-frame
# source get) and of the audio transcode (AAC → 48 kHz → Opus, what every WebRTC viewer
# gets), each run once per capture whatever the number of viewers. Sources are made by
# ffmpeg (x264 High with 3 B-frames and B-pyramid; its native AAC encoder), then replayed
# through pullcast's own pure code by examples/transcode_cpu.rs, single-threaded, as fast
# as it goes: CPU seconds / media seconds = the share of one core a live capture needs.
#
# Env: DURATION (seconds of each source, default 30), SIZES (default "1280x720 1920x1080"),
# CARGO_TARGET_DIR (default /var/tmp/pullcast-target), KEEP=1 (keep the sources).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-30}"
SIZES="${SIZES:-1280x720 1920x1080}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"
BENCH_NAME=transcode_cpu
# shellcheck source=bench/lib.sh
source bench/lib.sh # die
command -v ffmpeg >/dev/null 2>&1 || die "ffmpeg is missing (apt-get install ffmpeg)"
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 2 ] || die "DURATION must be an integer ≥ 2"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-transcode.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "sources kept in $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

echo "== building examples/transcode_cpu (release)"
cargo build --release -p pullcast --example transcode_cpu
BIN="$CARGO_TARGET_DIR/release/examples/transcode_cpu"

# source NAME SIZE RATE CHANNELS: 30 fps H.264 High (3 B-frames) + AAC-LC.
source_file() {
    local name=$1 size=$2 rate=$3 channels=$4
    ffmpeg -hide_banner -loglevel error -nostdin -y \
        -f lavfi -i "testsrc2=size=$size:rate=30" -f lavfi -i "sine=frequency=1000:sample_rate=$rate" \
        -t "$DURATION" -c:v libx264 -profile:v high -preset veryfast -g 60 -bf 3 \
        -x264-params b-pyramid=normal -b:v 2500k -maxrate 2500k -bufsize 5000k -pix_fmt yuv420p \
        -c:a aac -b:a 96k -ar "$rate" -ac "$channels" -f flv "$WORK/$name.flv"
}

echo "== $DURATION s sources; nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
for size in $SIZES; do
    echo
    echo "-- $size 30 fps High profile, 3 B-frames, 2.5 Mbit/s + AAC-LC 48 kHz stereo"
    source_file "v$size" "$size" 48000 2
    "$BIN" "$WORK/v$size.flv" 2>/dev/null
done
for spec in "44100 2" "22050 1" "11025 1"; do
    set -- $spec
    echo
    echo "-- audio AAC-LC $1 Hz, $2 channel(s)"
    source_file "a$1" 320x180 "$1" "$2"
    "$BIN" "$WORK/a$1.flv" 2>/dev/null | grep -E '^audio'
done
