#!/usr/bin/env bash
# Fan-out benchmark (issue 3): CPU share and resident memory of pullcast serving 1, 10, 50
# and 100 WebRTC viewers of one 720p30 capture at 600 kbps and at 2.5 Mbps, with the
# viewers' first-packet times. Viewers come from bench/loadclient (webrtc-rs peer
# connections over WHEP: ICE, DTLS-SRTP, every packet decrypted). Source: nginx-rtmp fed by
# ffmpeg. All traffic on 127.0.0.1. See bench/README.md.
#
# Env: DURATION (seconds of the measured window per row, default 20), VIEWERS (default
# "1 10 50 100"; 0 = the capture alone), BITRATES (video kbit/s, default "600 2500"),
# STAGGER_MS (between two viewers' offers, default 50), SETTLE_MS (after the last viewer
# gets video, before the window, default 3000), CARGO_TARGET_DIR (default
# /var/tmp/pullcast-target), SERVER_BIN / CLIENT_BIN (skip the build), KEEP=1 (keep the
# work folder with every log and JSON summary), BFRAMES (default 0: Constrained Baseline;
# N > 0: High profile with N B-frames and B-pyramid, so every viewer goes through the
# capture's B-frame transcode and *srv 1st ms* is the transcoder's first frame), LEAN=1 (the
# load client's lean viewers: the sans-IO rtc core, thousands on one client core), PEERS
# (default "pullcast"; "pullcast janus" runs every row on Debian's Janus too, side by side in
# the same run: its streaming plugin fed the same nginx-rtmp stream over RTP by ffmpeg, watched
# by the same lean viewers — see start_janus in bench/lib.sh), PERF=1 (`perf record` the
# server over each window and print its top functions; needs linux-perf), SERVER_CPUS (the
# cores pullcast runs on, via taskset; e.g. `SERVER_CPUS=0 taskset -c 1 bench/fanout.sh` keeps
# the encoder, nginx and the load client on core 1 and pullcast alone on core 0).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-20}"
VIEWERS="${VIEWERS:-1 10 50 100}"
BITRATES="${BITRATES:-600 2500}"
STAGGER_MS="${STAGGER_MS:-50}"
BFRAMES="${BFRAMES:-0}"
SETTLE_MS="${SETTLE_MS:-3000}"
LEAN_FLAG=()
[ "${LEAN:-0}" = 1 ] && LEAN_FLAG=(--lean)
PEERS="${PEERS:-pullcast}"
for p in $PEERS; do case "$p" in pullcast|janus) ;; *) echo "PEERS: $p is not pullcast or janus" >&2; exit 2 ;; esac; done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"

BENCH_NAME=fanout
# shellcheck source=bench/lib.sh
source bench/lib.sh # die, free_port, wait_until, port_open, now_ms, cpu_ticks, rss_kib, start_nginx, stop_nginx
require_peers ffmpeg nginx curl awk getconf
case " $PEERS " in *" janus "*) command -v janus >/dev/null || die "janus is missing (apt-get install janus)" ;; esac
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 2 ] || die "DURATION must be an integer ≥ 2"
for n in $VIEWERS; do [[ "$n" =~ ^[0-9]+$ ]] || die "VIEWERS: $n is not a number"; done
[[ "$BFRAMES" =~ ^[0-9]+$ ]] || die "BFRAMES must be a number of B-frames (0 = none)"
for b in $BITRATES; do [[ "$b" =~ ^[0-9]+$ ]] || die "BITRATES: $b is not a number (kbit/s)"; done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-fanout.XXXXXX")"
NGINX_PID="" PUBLISHER_PID="" SERVER_PID="" CLIENT_PID="" FEED_PID=""

stop_pid() { # stop_pid PID: TERM, up to 3 s, then KILL
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() { stop_bench "$CLIENT_PID" "$SERVER_PID" "$FEED_PID" "$PUBLISHER_PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# One value from the load client's one-line JSON: jnum FILE KEY [SUBKEY].
jnum() {
    local obj
    if [ $# -eq 3 ]; then
        obj=$(grep -o "\"$2\":{[^}]*}" "$1" | head -n1) || true
        grep -o "\"$3\":[^,}]*" <<<"$obj" | head -n1 | sed 's/.*://' || true
    else
        grep -o "\"$2\":[^,}]*" "$1" | head -n1 | sed 's/.*://' || true
    fi
}
fmt1() { [ -z "$1" ] || [ "$1" = null ] && echo "-" || printf '%.0f' "$1"; }

# Busy ticks and total ticks of the whole machine (all cores), from /proc/stat.
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# ---- build ---------------------------------------------------------------------------------
build_server_and_client

# ---- nginx-rtmp ----------------------------------------------------------------------------
echo "== starting nginx-rtmp"
start_nginx

if [ "$BFRAMES" -gt 0 ]; then
    PROFILE=(-profile:v high -bf "$BFRAMES" -b_strategy 0 -x264-params b-pyramid=normal)
else
    PROFILE=(-tune zerolatency -profile:v baseline -bf 0)
fi

start_publisher() { # start_publisher KBPS NAME
    local kbps=$1 name=$2
    ffmpeg -hide_banner -nostdin -loglevel warning -re \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000 \
        -c:v libx264 -preset veryfast -g 60 "${PROFILE[@]}" -pix_fmt yuv420p \
        -b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$(( kbps * 2 ))k" \
        -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$name" \
        >"$WORK/publisher-$name.log" 2>&1 </dev/null &
    PUBLISHER_PID=$!
    published() { grep -q "publish: name='$name'" "$WORK/error.log" 2>/dev/null; }
    wait_until 10 published || die "ffmpeg did not publish $name: $(tail -5 "$WORK/publisher-$name.log")"
}

api() { curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d "$2" "$API/$1"; }
processed() { api find_all '{}' | grep -Eq '"status" *: *"PROCESSED_REMOTE"'; }

# ---- one row -------------------------------------------------------------------------------
ROWS=()
HZ=$(getconf CLK_TCK)

# run_row KBPS NAME VIEWERS PEER
run_row() {
    local kbps=$1 name=$2 n=$3 peer=$4 tag="${1}k-$3-$4" row
    local target=()
    if [ "$peer" = janus ]; then
        start_janus "$tag" "rtmp://127.0.0.1:$RTMP_PORT/live/$name"
        wait_until 20 janus_fed || die "Janus's mountpoint got no video within 20 s: $(tail -5 "$WORK/janus-feed-$tag.log")"
        target=(--server "$JANUS_URL" --janus 1 --bind "$HOST_IP")
    else
        start_server "$tag"
        local reply
        reply=$(api pull "{\"uri\":\"rtmp://127.0.0.1:$RTMP_PORT/live/$name\",\"localStreamName\":\"$name\"}")
        wait_until 15 processed || die "no PROCESSED_REMOTE within 15 s (pull answered: $reply)"
        target=(--server "http://127.0.0.1:$REST_PORT")
    fi
    sleep 2.5 # > one GOP (2 s): a keyframe is in the cache, the capture in steady state

    local out="$WORK/client-$tag.json" err="$WORK/client-$tag.log"
    : >"$err"
    if [ "$n" -gt 0 ]; then
        echo "== ${kbps} kbit/s, $n viewers"
        "$CLIENT_BIN" "${target[@]}" --stream "$name" --viewers "$n" \
            --seconds "$DURATION" --stagger-ms "$STAGGER_MS" --settle-ms "$SETTLE_MS" "${LEAN_FLAG[@]}" \
            >"$out" 2>"$err" </dev/null &
        CLIENT_PID=$!
        # Setup: staggered offers, up to 15 s each to connect; then the settle time.
        local limit=$(( n * STAGGER_MS / 1000 + 15 + SETTLE_MS / 1000 + 30 ))
        window_started() { grep -q 'window start' "$err"; }
        if ! wait_until "$limit" window_started; then
            kill -0 "$SERVER_PID" 2>/dev/null || echo "!! $peer died: $(tail -5 "$WORK/$peer-$tag.log")"
            die "the load client did not start its window within $limit s: $(tail -5 "$err")"
        fi
    else
        echo "== ${kbps} kbit/s, no viewers (the capture alone)"
        CLIENT_PID=""
    fi

    local s0 m0 t0 s1 m1 t1 w0 w1 rss sum=0 samples=0 next died="" perf_pid=""
    if [ "${PERF:-0}" = 1 ]; then
        perf record -F 199 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$WORK/perf-$tag.data" -- sleep "$DURATION" \
            >"$WORK/perf-$tag.log" 2>&1 &
        perf_pid=$!
    fi
    s0=$(cpu_ticks "$SERVER_PID")
    read -r m0 t0 < <(machine_ticks)
    w0=$(now_ms); next=$(( w0 + 1000 ))
    while :; do
        if [ -n "$CLIENT_PID" ]; then
            grep -q 'window end' "$err" && break
            kill -0 "$CLIENT_PID" 2>/dev/null || break
        elif [ "$(now_ms)" -ge $(( w0 + DURATION * 1000 )) ]; then
            break
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then died=1; break; fi
        if [ "$(now_ms)" -ge "$next" ]; then
            rss=$(rss_kib "$SERVER_PID"); sum=$(( sum + rss )); samples=$(( samples + 1 ))
            next=$(( next + 1000 ))
        fi
        sleep 0.05
    done
    s1=$(cpu_ticks "$SERVER_PID")
    read -r m1 t1 < <(machine_ticks)
    w1=$(now_ms)
    local hwm
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    [ "$samples" -gt 0 ] || { samples=1; sum=$(rss_kib "$SERVER_PID"); }
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" 2>/dev/null || true
        echo "   perf: $peer's top functions over the window (self time, % of its samples)"
        perf report -i "$WORK/perf-$tag.data" --no-children --sort symbol --percent-limit 1.5 --stdio 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | head -n 25 | sed 's/^/   /' || true
    fi

    if [ -n "$CLIENT_PID" ]; then
        wait_until 60 bash -c "! kill -0 $CLIENT_PID 2>/dev/null" || echo "!! the load client did not exit; killing it"
        stop_pid "$CLIENT_PID"; CLIENT_PID=""
    fi
    if [ -n "$died" ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "!! $peer died during the ${kbps}k/$n row: $(tail -5 "$WORK/$peer-$tag.log")"
    fi
    # pullcast's warnings and errors, counted by message (timestamps and ids stripped).
    # The server's own measurements of this row (find_all "webrtc"): latency it added per
    # live video frame (RTMP message parsed → last RTP packet handed over) and first-frame
    # times (connection up → first frame handed over).
    if [ "$peer" = pullcast ]; then
        api find_all '{}' >"$WORK/find_all-$tag.json" 2>/dev/null || true
        grep -E ' (WARN|ERROR) ' "$WORK/pullcast-$tag.log" | sed -E 's/^\[[^ ]+ //; s/[0-9a-f]{8}-[0-9a-f-]{27}/<id>/g' \
            | sort | uniq -c | sort -rn | head -n 6 | sed 's/^/   pullcast log: /' || true
    else
        : >"$WORK/find_all-$tag.json"
    fi
    grep -E 'failed' "$err" | head -n 3 | sed 's/^/   loadclient: /' || true
    stop_pid "$SERVER_PID"; SERVER_PID=""
    stop_pid "$FEED_PID"; FEED_PID=""

    local ms=$(( w1 - w0 ))
    row=$(awk -v hz="$HZ" -v ms="$ms" -v sc=$(( s1 - s0 )) \
        -v mb=$(( m1 - m0 )) -v mt=$(( t1 - t0 )) -v avg=$(( sum / samples )) -v hwm="$hwm" \
        'BEGIN { s = ms / 1000;
                 printf "%.1f|%.1f / %.1f|%.0f", sc / hz / s * 100, avg / 1024, hwm / 1024,
                        (mt > 0 ? mb / mt * 100 : 0) }')
    local sc_pct rss busy cl_pct
    IFS='|' read -r sc_pct rss busy <<<"$row"
    if [ "$n" -gt 0 ] && [ -s "$out" ]; then
        local conn kmin kavg loss fp50 fmax fpsmin fpsavg
        conn=$(jnum "$out" connected)
        kmin=$(jnum "$out" kbps_per_viewer min); kavg=$(jnum "$out" kbps_per_viewer avg)
        loss="$(jnum "$out" loss_pct_window) / $(jnum "$out" loss_pct_total)"
        fp50=$(jnum "$out" first_video_rtp p50); fmax=$(jnum "$out" first_video_rtp max)
        fpsmin=$(jnum "$out" video_fps_per_viewer min); fpsavg=$(jnum "$out" video_fps_per_viewer avg)
        cl_pct=$(jnum "$out" client_cpu_pct_window)
        local fa="$WORK/find_all-$tag.json" lp50 lp99 lcount ff50
        lp50=$(jnum "$fa" frameLatencyMs p50); lp99=$(jnum "$fa" frameLatencyMs p99)
        lcount=$(jnum "$fa" frameLatencyMs count); ff50=$(jnum "$fa" firstFrameMs p50)
        ROWS+=("$(printf '%-8s %-8s %7s %9s %13s %20s %15s %13s %15s %10s %11s %7s %24s %10s' \
            "$peer" "${kbps}k" "$n" "$conn/$n" "$sc_pct" "$rss" "$(fmt1 "$kmin") / $(fmt1 "$kavg")" \
            "$loss" "$(fmt1 "$fp50") / $(fmt1 "$fmax")" "$cl_pct" \
            "$(fmt1 "$fpsmin") / $(fmt1 "$fpsavg")" "$busy" \
            "${lp50:--} / ${lp99:--} (${lcount:-0})" "${ff50:--}")")
    elif [ "$n" -gt 0 ]; then
        ROWS+=("$(printf '%-8s %-8s %7s %9s %13s %20s   load client gave no summary: %s' \
            "$peer" "${kbps}k" "$n" "?/$n" "$sc_pct" "$rss" "$(tail -1 "$err")")")
    else
        ROWS+=("$(printf '%-8s %-8s %7s %9s %13s %20s %15s %13s %15s %10s %11s %7s' \
            "$peer" "${kbps}k" 0 - "$sc_pct" "$rss" - - - - - "$busy")")
    fi
    echo "   ${ROWS[-1]}"
}

for kbps in $BITRATES; do
    name="bench${kbps}k"
    echo "== publishing 1280x720 30 fps H.264 ${kbps} kbit/s + AAC 48 kHz (rtmp://127.0.0.1:$RTMP_PORT/live/$name)"
    start_publisher "$kbps" "$name"
    for n in $VIEWERS; do
        for peer in $PEERS; do
            run_row "$kbps" "$name" "$n" "$peer"
        done
    done
    stop_pid "$PUBLISHER_PID"; PUBLISHER_PID=""
done

echo
echo "== fan-out: ${DURATION} s window per row, after every viewer has video + ${SETTLE_MS} ms; offers ${STAGGER_MS} ms apart; $(nproc) cores"
printf '%-8s %-8s %7s %9s %13s %20s %15s %13s %15s %10s %11s %7s %24s %10s\n' \
    server bitrate viewers connected "server CPU%" "server RSS MiB" "kbit/s/viewer" "loss%" \
    "1st RTP ms" "client CPU%" "video fps" "busy%" "srv latency ms" "srv 1st ms"
printf '%-8s %-8s %7s %9s %13s %20s %15s %13s %15s %10s %11s %7s %24s %10s\n' \
    "" "(video)" "" "" "(1 core=100)" "(avg / peak)" "(min / avg)" "(window / all)" "(p50 / max)" "" "(min / avg)" "(mach.)" \
    "(p50 / p99 (frames))" "(p50)"
for row in "${ROWS[@]}"; do echo "$row"; done
