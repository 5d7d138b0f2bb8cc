#!/usr/bin/env bash
# Reconnect benchmark (issue 6): how long after a dropped source is back do its viewers get
# frames again? One 720p30 capture with one WebRTC viewer (bench/loadclient over WHEP);
# TRIALS times the source drops for GAP_S seconds and returns; each trial measures
# "source back" (nginx logs the new publish, polled every 10 ms) → "first frame sent to
# the viewers" (pullcast's find_all `lastResume.epochMs`: the first frame after the gap fanned
# out to subscribers — the first keyframe, since they resume at one). Prints every trial,
# the median and the max. Server settings are the defaults. See bench/README.md.
#
# Env: MODE (publisher: kill -9 the ffmpeg publisher; nginx: stop nginx itself and restart
# it, then the publisher; default publisher), TRIALS (default 10), GAP_S (default 3),
# GOP (source keyframe interval in frames at 30 fps, default 60), CARGO_TARGET_DIR (default
# /var/tmp/pullcast-target), SERVER_BIN / CLIENT_BIN (skip the build), KEEP=1 (keep logs).
set -euo pipefail

cd "$(dirname "$0")/.."
MODE="${MODE:-publisher}"
TRIALS="${TRIALS:-10}"
GAP_S="${GAP_S:-3}"
GOP="${GOP:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"

BENCH_NAME=reconnect
# shellcheck source=bench/lib.sh
source bench/lib.sh # die, free_port, wait_until, now_ms, start_nginx, stop_nginx, start_server, publish_count
require_peers ffmpeg nginx curl awk sort
case "$MODE" in publisher | nginx) ;; *) die "MODE must be publisher or nginx" ;; esac
[[ "$TRIALS" =~ ^[0-9]+$ ]] && [ "$TRIALS" -ge 1 ] || die "TRIALS must be a positive integer"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-reconnect.XXXXXX")"
NGINX_PID="" PUBLISHER_PID="" SERVER_PID="" CLIENT_PID=""

cleanup() { stop_bench "$CLIENT_PID" "$SERVER_PID" "$PUBLISHER_PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ---------------------------------------------------------------------------------
build_server_and_client

NAME=bench
start_publisher() { # starts ffmpeg and waits until nginx logs the new publish
    local before
    before=$(publish_count "$NAME")
    ffmpeg -hide_banner -nostdin -loglevel warning -re \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000 \
        -c:v libx264 -preset veryfast -tune zerolatency -g "$GOP" -profile:v baseline -bf 0 -pix_fmt yuv420p \
        -b:v 2500k -maxrate 2500k -bufsize 5000k \
        -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$NAME" \
        >>"$WORK/publisher.log" 2>&1 </dev/null &
    PUBLISHER_PID=$!
    local deadline=$(( $(now_ms) + 10000 ))
    while [ "$(publish_count "$NAME")" -le "$before" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || die "ffmpeg did not publish: $(tail -5 "$WORK/publisher.log")"
        sleep 0.01
    done
}
kill_publisher() {
    [ -n "$PUBLISHER_PID" ] || return 0
    kill -9 "$PUBLISHER_PID" 2>/dev/null || true
    wait "$PUBLISHER_PID" 2>/dev/null || true
    PUBLISHER_PID=""
}

api() { curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d "$2" "$API/$1"; }
# The capture's lastResume.epochMs (empty before the first return).
last_resume() { { api find_all '{}' | grep -o '"lastResume":{[^}]*}' | grep -o '"epochMs":[0-9]*' | sed 's/.*://'; } || true; }

echo "== nginx-rtmp, a 720p30 2.5 Mbit/s source (keyframe every $GOP frames), pullcast with its defaults"
start_nginx
start_publisher
RUST_LOG=info start_server bench
api pull "{\"uri\":\"rtmp://127.0.0.1:$RTMP_PORT/live/$NAME\",\"localStreamName\":\"$NAME\"}" >/dev/null
wait_until 15 sh -c "[ \"\$(curl -s -X POST -d '{}' $API/find_all | grep -o '\"status\":\"PROCESSED_REMOTE\"')\" ]" \
    || die "the capture never reached PROCESSED_REMOTE"

# One WebRTC viewer for the whole run (its window is longer than all trials).
"$CLIENT_BIN" --server "http://127.0.0.1:$REST_PORT" --stream "$NAME" --viewers 1 \
    --seconds $(( TRIALS * (GAP_S + 8) + 30 )) --settle-ms 500 \
    >"$WORK/loadclient.json" 2>"$WORK/loadclient.err" &
CLIENT_PID=$!
wait_until 20 grep -qs "window start" "$WORK/loadclient.err" \
    || die "the viewer did not connect: $(tail -5 "$WORK/loadclient.err")"

echo "== $TRIALS trials: drop the source ($MODE) for ${GAP_S} s, bring it back"
results=()
for trial in $(seq "$TRIALS"); do
    before=$(last_resume)
    if [ "$MODE" = nginx ]; then
        stop_nginx
        kill_publisher
        sleep "$GAP_S"
        start_nginx
    else
        kill_publisher
        sleep "$GAP_S"
    fi
    start_publisher
    back=$(now_ms)
    deadline=$(( back + 30000 ))
    resumed=""
    while [ "$(now_ms)" -lt "$deadline" ]; do
        r=$(last_resume)
        [ -n "$r" ] && [ "$r" != "$before" ] && { resumed=$r; break; }
        sleep 0.02
    done
    [ -n "$resumed" ] || die "trial $trial: the viewers got no frame within 30 s of the source's return"
    ms=$(( resumed - back ))
    results+=("$ms")
    printf 'trial %2d: %5d ms (source back → first frame sent to the viewer)\n' "$trial" "$ms"
    sleep 3
done

kill -0 "$CLIENT_PID" 2>/dev/null || die "the viewer died: $(tail -5 "$WORK/loadclient.err")"
sorted=$(printf '%s\n' "${results[@]}" | sort -n)
median=$(awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }' <<<"$sorted")
max=$(tail -n1 <<<"$sorted")
min=$(head -n1 <<<"$sorted")
reconnects=$(api find_all '{}' | grep -o '"reconnects":[0-9]*' | sed 's/.*://' || true)
viewers=$(api find_all '{}' | grep -o '"subscribers":[0-9]*' | sed 's/.*://' || true)
echo
echo "== results ($MODE restart, $TRIALS trials, ${GAP_S} s gap, GOP $GOP frames, default settings)"
echo "reconnect time (source back → first frame sent to viewers): median $median ms, max $max ms, min $min ms"
echo "capture reconnects counted by pullcast: $reconnects; viewers still subscribed: $viewers"
