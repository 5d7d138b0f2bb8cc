#!/usr/bin/env bash
# Soak benchmark (issue 11): does pullcast leak under churn? CAPTURES captures pulled from
# nginx-rtmp, VIEWERS WebRTC viewers (bench/loadclient, WHEP) spread over them that keep
# joining and leaving (each stays a random STAY_MIN_S..STAY_MAX_S after its first video
# packet and is replaced at once: ~VIEWERS / mean stay joins and leaves per second), and
# now and then one source drops (its ffmpeg publisher is killed for a few seconds; every
# LONG_EVERY-th drop lasts LONG_GAP_S, past capture.media_timeout_ms, so pullcast also drops
# its connection and pulls again). Every SAMPLE_S the server's resident memory, open file
# descriptors and threads go to a CSV; at the end it prints the least-squares slopes after
# the warm-up, the viewers' joins/leaves/failures and the drops done and recovered.
# All traffic on 127.0.0.1. See bench/README.md.
#
# Env: DURATION (seconds of churn, default 3600), CAPTURES (10), VIEWERS (200),
# STAY_MIN_S / STAY_MAX_S (5 / 30), WARMUP_S (samples before it are left out of the slopes;
# default 300, at most DURATION / 4), SAMPLE_S (10), DROP_MIN_S / DROP_MAX_S (60 / 120
# between two drops), GAP_MIN_S / GAP_MAX_S (2 / 6, a drop's length), LONG_EVERY (3; 0 =
# never) and LONG_GAP_S (13), VIDEO_KBPS (600), CARGO_TARGET_DIR (default
# /var/tmp/pullcast-target), SERVER_BIN / CLIENT_BIN (skip the build), CSV (where the
# samples go; default soak.csv in the work folder, which is then kept), KEEP=1 (keep the
# work folder with every log).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-3600}"
CAPTURES="${CAPTURES:-10}"
VIEWERS="${VIEWERS:-200}"
STAY_MIN_S="${STAY_MIN_S:-5}"
STAY_MAX_S="${STAY_MAX_S:-30}"
SAMPLE_S="${SAMPLE_S:-10}"
DROP_MIN_S="${DROP_MIN_S:-60}"
DROP_MAX_S="${DROP_MAX_S:-120}"
GAP_MIN_S="${GAP_MIN_S:-2}"
GAP_MAX_S="${GAP_MAX_S:-6}"
LONG_EVERY="${LONG_EVERY:-3}"
LONG_GAP_S="${LONG_GAP_S:-13}"
VIDEO_KBPS="${VIDEO_KBPS:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pullcast-target}"

BENCH_NAME=soak
# shellcheck source=bench/lib.sh
source bench/lib.sh # die, free_port, wait_until, cpu_ticks, rss_kib, fd_count, thread_count, start_nginx, start_server, ...
require_peers ffmpeg nginx curl awk node getconf
for v in DURATION CAPTURES VIEWERS STAY_MIN_S STAY_MAX_S SAMPLE_S DROP_MIN_S DROP_MAX_S \
    GAP_MIN_S GAP_MAX_S LONG_EVERY LONG_GAP_S VIDEO_KBPS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
[ "$DURATION" -ge 60 ] || die "DURATION must be ≥ 60 s"
[ "$CAPTURES" -ge 1 ] && [ "$VIEWERS" -ge 1 ] && [ "$SAMPLE_S" -ge 1 ] || die "CAPTURES, VIEWERS and SAMPLE_S must be ≥ 1"
[ "$STAY_MIN_S" -le "$STAY_MAX_S" ] && [ "$DROP_MIN_S" -le "$DROP_MAX_S" ] && [ "$GAP_MIN_S" -le "$GAP_MAX_S" ] \
    && [ "$DROP_MIN_S" -ge 1 ] || die "each *_MIN_S must be ≤ its *_MAX_S (and DROP_MIN_S ≥ 1)"
WARMUP_S="${WARMUP_S:-300}"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "WARMUP_S must be a whole number"
[ "$WARMUP_S" -le $(( DURATION / 4 )) ] || WARMUP_S=$(( DURATION / 4 ))

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pullcast-soak.XXXXXX")"
CSV="${CSV:-$WORK/soak.csv}"
[ "$CSV" != "$WORK/soak.csv" ] || KEEP=1 # the CSV is the result: keep its folder
NGINX_PID="" SERVER_PID="" CLIENT_PID=""
PUB_PIDS=()
for i in $(seq 0 $(( CAPTURES - 1 ))); do PUB_PIDS[i]=""; done

cleanup() { stop_bench "$CLIENT_PID" "$SERVER_PID" "${PUB_PIDS[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

rand_between() { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); } # rand_between MIN MAX (MAX - MIN < 32768)

# ---- build ---------------------------------------------------------------------------------
build_server_and_client

# ---- the source: encoded once, then only copied ----------------------------------------------
echo "== encoding a 60 s 640x360 30 fps source (H.264 Constrained Baseline ${VIDEO_KBPS} kbit/s, 2 s GOP, AAC 48 kHz)"
SOURCE="$WORK/source.flv"
ffmpeg -hide_banner -nostdin -loglevel error \
    -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 \
    -c:v libx264 -preset veryfast -profile:v baseline -bf 0 -g 60 -keyint_min 60 -sc_threshold 0 \
    -pix_fmt yuv420p -b:v "${VIDEO_KBPS}k" -maxrate "${VIDEO_KBPS}k" -bufsize "$(( VIDEO_KBPS * 2 ))k" \
    -c:a aac -b:a 96k -ar 48000 -ac 2 -f flv "$SOURCE" </dev/null >"$WORK/encode.log" 2>&1 \
    || die "could not encode the source: $(tail -5 "$WORK/encode.log")"

echo "== nginx-rtmp and $CAPTURES publishers (ffmpeg -re -stream_loop -1 -c copy)"
start_nginx
name_of() { echo "soak$(( $1 + 1 ))"; }
# start_publisher I: publishes the source as soak<I+1>; does not wait (see publish_count).
start_publisher() {
    local name
    name=$(name_of "$1")
    ffmpeg -hide_banner -nostdin -loglevel warning -re -stream_loop -1 -i "$SOURCE" -c copy \
        -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$name" >>"$WORK/publisher-$name.log" 2>&1 </dev/null &
    PUB_PIDS[$1]=$!
}
kill_publisher() { # kill_publisher I: SIGKILL, the source vanishes without a goodbye
    local pid=${PUB_PIDS[$1]}
    [ -n "$pid" ] || return 0
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PUB_PIDS[$1]=""
}
for i in $(seq 0 $(( CAPTURES - 1 ))); do start_publisher "$i"; done
all_published() {
    local i
    for i in $(seq 0 $(( CAPTURES - 1 ))); do
        [ "$(publish_count "$(name_of "$i")")" -ge 1 ] || return 1
    done
}
wait_until 30 all_published || die "not every publisher reached nginx within 30 s: $(tail -3 "$WORK"/publisher-*.log)"

# ---- pullcast and the captures ---------------------------------------------------------------
echo "== pullcast (release, RUST_LOG=${RUST_LOG:-warn}) pulling the $CAPTURES streams over REST"
start_server soak
api() { curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d "$2" "$API/$1"; }
for i in $(seq 0 $(( CAPTURES - 1 ))); do
    name=$(name_of "$i")
    reply=$(api pull "{\"uri\":\"rtmp://127.0.0.1:$RTMP_PORT/live/$name\",\"localStreamName\":\"$name\"}") \
        || die "the pull of $name got no answer"
    grep -q '"localMediaSessionId"' <<<"$reply" || die "the pull of $name was refused: $reply"
done

# captures_tsv: one line per capture from find_all: name, status, reconnects, subscribers.
captures_tsv() {
    api find_all '{}' | node -e '
        let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
            let d; try { d = JSON.parse(s); } catch (e) { process.exit(1); }
            const list = Array.isArray(d) ? d : (d.captures || d.streams || Object.values(d));
            for (const c of list)
                console.log([c.localStreamName, c.status, c.reconnects, c.subscribers].join("\t"));
        });'
}
all_streaming() { [ "$(captures_tsv | awk -F'\t' '$2 == "PROCESSED_REMOTE"' | wc -l)" -eq "$CAPTURES" ]; }
wait_until 30 all_streaming || die "not every capture reached PROCESSED_REMOTE within 30 s: $(captures_tsv | tr '\t\n' ' ;')"
sleep 3 # > one GOP: every keyframe cache filled

# ---- sampling --------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# The load client's latest progress line as "active joins connected failed dropped leaves".
client_progress() {
    local line
    line=$(tac "$WORK/loadclient.err" 2>/dev/null | grep -m1 'loadclient: churn ' || true)
    [ -n "$line" ] || { echo "0 0 0 0 0 0"; return; }
    awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
         END { print v["active"] + 0, v["joins"] + 0, v["connected"] + 0, v["failed"] + 0, v["dropped"] + 0, v["leaves"] + 0 }' <<<"$line"
}
echo "t_s,rss_kib,fds,threads,cpu_pct,machine_busy_pct,client_rss_kib,viewers_active,subscribers,captures_streaming,joins,connected,failed,dropped,leaves,drops_done" >"$CSV"
LAST_CPU=0 LAST_M=0 LAST_T=0 LAST_WALL=0
sample() { # sample T: one CSV row (T = seconds since the churn started; negative before it)
    local t=$1 cpu m mt wall tsv subs streaming crss
    cpu=$(cpu_ticks "$SERVER_PID"); read -r m mt < <(machine_ticks); wall=$(now_ms)
    tsv=$(captures_tsv || true)
    subs=$(awk -F'\t' '{ s += $4 } END { print s + 0 }' <<<"$tsv")
    streaming=$(awk -F'\t' '$2 == "PROCESSED_REMOTE"' <<<"$tsv" | wc -l)
    crss=0; [ -z "$CLIENT_PID" ] || crss=$(rss_kib "$CLIENT_PID")
    local cpu_pct=0 busy=0
    if [ "$LAST_WALL" -gt 0 ] && [ "$wall" -gt "$LAST_WALL" ]; then
        cpu_pct=$(awk -v c=$(( cpu - LAST_CPU )) -v hz="$HZ" -v ms=$(( wall - LAST_WALL )) 'BEGIN { printf "%.1f", c / hz / (ms / 1000) * 100 }')
        busy=$(awk -v b=$(( m - LAST_M )) -v t=$(( mt - LAST_T )) 'BEGIN { printf "%.0f", (t > 0 ? b / t * 100 : 0) }')
    fi
    LAST_CPU=$cpu LAST_M=$m LAST_T=$mt LAST_WALL=$wall
    local p
    p=$(client_progress)
    local active joins connected failed dropped leaves
    read -r active joins connected failed dropped leaves <<<"$p"
    echo "$t,$(rss_kib "$SERVER_PID"),$(fd_count "$SERVER_PID"),$(thread_count "$SERVER_PID"),$cpu_pct,$busy,$crss,$active,$subs,$streaming,$joins,$connected,$failed,$dropped,$leaves,$DROPS_DONE" >>"$CSV"
}

DROPS_DONE=0 LONG_DROPS=0
DROPS=()
for i in $(seq 0 $(( CAPTURES - 1 ))); do DROPS[i]=0; done
BASE_REC=()
while IFS=$'\t' read -r n _ r _; do BASE_REC[${n#soak} - 1]=$r; done < <(captures_tsv)

echo "== baseline: $CAPTURES captures, no viewers"
sample -10; sleep 2; sample 0
BASE_RSS=$(rss_kib "$SERVER_PID") BASE_FD=$(fd_count "$SERVER_PID") BASE_THREADS=$(thread_count "$SERVER_PID")

# ---- the churn -------------------------------------------------------------------------------
STREAM_ARGS=()
for i in $(seq 0 $(( CAPTURES - 1 ))); do STREAM_ARGS+=(--stream "$(name_of "$i")"); done
echo "== $VIEWERS viewers joining and leaving (stay ${STAY_MIN_S}-${STAY_MAX_S} s) for $DURATION s; a source drops every ${DROP_MIN_S}-${DROP_MAX_S} s"
"$CLIENT_BIN" --server "http://127.0.0.1:$REST_PORT" "${STREAM_ARGS[@]}" --viewers "$VIEWERS" \
    --seconds "$DURATION" --stagger-ms 50 --churn-min-s "$STAY_MIN_S" --churn-max-s "$STAY_MAX_S" \
    --connect-timeout-ms 30000 --report-s "$(awk -v s="$SAMPLE_S" 'BEGIN { print s / 2 }')" \
    >"$WORK/loadclient.json" 2>"$WORK/loadclient.err" </dev/null &
CLIENT_PID=$!

START=$(date +%s)
END=$(( START + DURATION ))
NEXT_SAMPLE=$(( START + SAMPLE_S ))
NEXT_DROP=$(( START + $(rand_between "$DROP_MIN_S" "$DROP_MAX_S") ))
NEXT_REPORT=$(( START + 60 ))
DOWN="" UP_AT=0
while :; do
    now=$(date +%s)
    [ "$now" -lt "$END" ] || break
    kill -0 "$SERVER_PID" 2>/dev/null || die "pullcast died $(( now - START )) s in: $(tail -5 "$WORK/pullcast-soak.log")"
    kill -0 "$CLIENT_PID" 2>/dev/null || die "the load client died $(( now - START )) s in: $(tail -5 "$WORK/loadclient.err")"
    if [ -n "$DOWN" ] && [ "$now" -ge "$UP_AT" ]; then
        start_publisher "$DOWN"; DOWN=""
    fi
    # No drop starts in the last 60 s: each has time to come back before the end.
    if [ -z "$DOWN" ] && [ "$now" -ge "$NEXT_DROP" ] && [ "$now" -lt $(( END - 60 )) ]; then
        DOWN=$(( RANDOM % CAPTURES ))
        DROPS_DONE=$(( DROPS_DONE + 1 ))
        DROPS[DOWN]=$(( DROPS[DOWN] + 1 ))
        if [ "$LONG_EVERY" -gt 0 ] && [ $(( DROPS_DONE % LONG_EVERY )) -eq 0 ]; then
            gap=$LONG_GAP_S; LONG_DROPS=$(( LONG_DROPS + 1 ))
        else
            gap=$(rand_between "$GAP_MIN_S" "$GAP_MAX_S")
        fi
        kill_publisher "$DOWN"
        UP_AT=$(( now + gap ))
        NEXT_DROP=$(( now + $(rand_between "$DROP_MIN_S" "$DROP_MAX_S") ))
        echo "   $(( now - START )) s: source $(name_of "$DOWN") dropped for $gap s (drop $DROPS_DONE)"
    fi
    if [ "$now" -ge "$NEXT_SAMPLE" ]; then
        sample $(( now - START ))
        NEXT_SAMPLE=$(( NEXT_SAMPLE + SAMPLE_S ))
    fi
    if [ "$now" -ge "$NEXT_REPORT" ]; then
        IFS=, read -r _ rss fds thr cpu busy _ act subs str joins _ failed dropped leaves _ < <(tail -n1 "$CSV")
        printf '   %5d s: RSS %6.1f MiB, %4d fds, %3d threads, CPU %5s %%, machine %3s %%; viewers %3d (server %3d), joins %d, leaves %d, failed %d, dropped %d; %d/%d captures streaming\n' \
            $(( now - START )) "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$fds" "$thr" "$cpu" "$busy" \
            "$act" "$subs" "$joins" "$leaves" "$failed" "$dropped" "$str" "$CAPTURES"
        NEXT_REPORT=$(( NEXT_REPORT + 60 ))
    fi
    sleep 0.5
done
[ -z "$DOWN" ] || start_publisher "$DOWN"

# ---- the end: every viewer leaves; then the server alone again ---------------------------------
echo "== churn over; waiting for the load client to end its sessions"
client_gone() { ! kill -0 "$CLIENT_PID" 2>/dev/null; }
wait_until 90 client_gone || echo "!! the load client did not exit within 90 s; killing it"
kill -9 "$CLIENT_PID" 2>/dev/null || true
wait "$CLIENT_PID" 2>/dev/null || true
CLIENT_PID=""
# What the server still holds once the viewers are gone: wait (bounded) until it has no
# subscribers and its descriptors are back near the baseline, then sample.
settled() {
    [ "$(captures_tsv | awk -F'\t' '{ s += $4 } END { print s + 0 }')" -eq 0 ] \
        && [ "$(fd_count "$SERVER_PID")" -le $(( BASE_FD + 2 )) ]
}
wait_until 60 settled || true
sleep 5
sample $(( $(date +%s) - START ))
AFTER_RSS=$(rss_kib "$SERVER_PID") AFTER_FD=$(fd_count "$SERVER_PID") AFTER_THREADS=$(thread_count "$SERVER_PID")
AFTER_SUBS=$(captures_tsv | awk -F'\t' '{ s += $4 } END { print s + 0 }')
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)

# Drops recovered: per capture, reconnects counted since the baseline vs drops done on it.
RECOVERED=0 EXTRA=0 STATUSES=""
while IFS=$'\t' read -r n st r _; do
    idx=$(( ${n#soak} - 1 ))
    got=$(( r - ${BASE_REC[idx]:-0} ))
    want=${DROPS[idx]:-0}
    RECOVERED=$(( RECOVERED + (got < want ? got : want) ))
    [ "$got" -le "$want" ] || EXTRA=$(( EXTRA + got - want ))
    [ "$st" = PROCESSED_REMOTE ] || STATUSES="$STATUSES $n=$st"
done < <(captures_tsv)

# ---- summary ---------------------------------------------------------------------------------
J="$WORK/loadclient.json"
jget() { node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    let v = JSON.parse(s); for (const k of process.argv[1].split(".")) v = v == null ? v : v[k];
    console.log(typeof v === "object" ? JSON.stringify(v) : String(v)); });' "$1" <"$J" 2>/dev/null || echo "?"; }
stats() { # stats COLUMN [FROM]: first last max of the churn's rows, slope/h (and rows) from FROM s (the warm-up)
    awk -F, -v col="$1" -v warm="${2:-$WARMUP_S}" -v dur="$DURATION" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        $1 <= 0 || $1 > dur { next }
        { v = $c + 0; if (n == 0) first = v; last = v; if (v > max || n == 0) max = v; n++
          if ($1 >= warm) { m++; sx += $1; sy += v; sxx += $1 * $1; sxy += $1 * v } }
        END { slope = (m > 1 && m * sxx - sx * sx != 0) ? (m * sxy - sx * sy) / (m * sxx - sx * sx) * 3600 : 0
              printf "%s %s %s %.3f %d\n", first, last, max, slope, m }' "$CSV"
}
read -r RSS_FIRST RSS_LAST RSS_MAX RSS_SLOPE N_SLOPE < <(stats rss_kib)
HALF=$(( (WARMUP_S + DURATION) / 2 ))
read -r _ _ _ RSS_SLOPE2 N_SLOPE2 < <(stats rss_kib "$HALF")
read -r CL_FIRST CL_LAST CL_MAX CL_SLOPE _ < <(stats client_rss_kib)
read -r FD_FIRST FD_LAST FD_MAX FD_SLOPE _ < <(stats fds)
read -r TH_FIRST TH_LAST TH_MAX TH_SLOPE _ < <(stats threads)
SAMPLES=$(awk -F, 'NR > 1 && $1 > 0 && $1 <= '"$DURATION"'' "$CSV" | wc -l)
CPU_AVG=$(awk -F, 'NR > 1 && $1 > 0 && $1 <= '"$DURATION"' { s += $5; n++ } END { printf "%.1f", n ? s / n : 0 }' "$CSV")
BUSY_AVG=$(awk -F, 'NR > 1 && $1 > 0 && $1 <= '"$DURATION"' { s += $6; n++ } END { printf "%.0f", n ? s / n : 0 }' "$CSV")
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo
echo "pullcast log (WARN/ERROR by message, ids and numbers blanked):"
grep -E ' (WARN|ERROR) ' "$WORK/pullcast-soak.log" | sed -E 's/^\[[^ ]+ //; s/[0-9a-f]{8}-[0-9a-f-]{27}/<id>/g; s/[0-9]+/N/g' \
    | sort | uniq -c | sort -rn | head -n 8 | sed 's/^/  /' || true
echo
echo "== soak summary ($(nproc) cores; pullcast release; $CAPTURES captures of 640x360 30 fps ${VIDEO_KBPS} kbit/s + AAC; $VIEWERS viewers)"
echo "duration:        $DURATION s of churn, $SAMPLES samples every $SAMPLE_S s (CSV: $CSV)"
echo "RSS MiB:         baseline $(mib "$BASE_RSS") (captures, no viewers); first $(mib "$RSS_FIRST"), last $(mib "$RSS_LAST"), max $(mib "$RSS_MAX") (VmHWM $(mib "$HWM")); after all viewers left $(mib "$AFTER_RSS")"
echo "RSS slope:       $(awk -v s="$RSS_SLOPE" 'BEGIN { printf "%+.2f", s / 1024 }') MiB/h (least squares over the $N_SLOPE samples after the ${WARMUP_S} s warm-up); $(awk -v s="$RSS_SLOPE2" 'BEGIN { printf "%+.2f", s / 1024 }') MiB/h over the last $N_SLOPE2 (from $HALF s)"
echo "FDs:             baseline $BASE_FD; first $FD_FIRST, last $FD_LAST, max $FD_MAX; slope $(printf '%+.2f' "$FD_SLOPE")/h; after all viewers left $AFTER_FD"
echo "threads:         baseline $BASE_THREADS; first $TH_FIRST, last $TH_LAST, max $TH_MAX; slope $(printf '%+.2f' "$TH_SLOPE")/h; after all viewers left $AFTER_THREADS"
echo "load client RSS: first $(mib "$CL_FIRST"), last $(mib "$CL_LAST"), max $(mib "$CL_MAX") MiB; slope $(awk -v s="$CL_SLOPE" 'BEGIN { printf "%+.2f", s / 1024 }') MiB/h"
echo "CPU:             pullcast $CPU_AVG % of one core on average; machine ${BUSY_AVG} % busy (all cores)"
echo "viewers:         joins $(jget joins) ($(jget joins_per_s)/s), connected $(jget connected), leaves $(jget leaves), failed $(jget failed), dropped $(jget dropped), DELETE errors $(jget delete_errors); subscribers left on the server: $AFTER_SUBS"
echo "                 first video p50 $(jget first_video_ms.p50) ms, p99 $(jget first_video_ms.p99) ms, max $(jget first_video_ms.max) ms; $(jget video_fps_while_watching) fps while watching; loss $(jget loss_pct_total) %"
[ "$(jget failed)" = 0 ] && [ "$(jget dropped)" = 0 ] || echo "                 failure reasons: $(jget failure_reasons)"
echo "source drops:    $DROPS_DONE done ($LONG_DROPS of ${LONG_GAP_S} s, past the media timeout), $RECOVERED recovered (find_all reconnects); unexpected reconnects: $EXTRA"
[ -z "$STATUSES" ] || echo "                 captures not streaming at the end:$STATUSES"
