#!/usr/bin/env bash
# Fuzzing (issue 11): runs each cargo-fuzz target of fuzz/ for RUNS executions, one target at
# a time, and prints per target the executions, seconds, executions per second, coverage
# (libFuzzer's "cov" edges and "ft" features), corpus size, peak memory and the result.
# Each target starts from its committed corpus (fuzz/corpus/<target>/, plus the regressions
# in fuzz/regressions/<target>/); what it finds goes to fuzz/work/<target>/ (not committed),
# a crash to fuzz/artifacts/<target>/ and fails the run. See fuzz/README.md.
#
#   bench/fuzz.sh [TARGET...]          fuzz these targets (default: every target)
#   bench/fuzz.sh --cmin [TARGET...]   merge fuzz/work/<target>/ into fuzz/corpus/<target>/,
#                                      minimised (cargo fuzz cmin): commit the result
#   bench/fuzz.sh --list               the targets
#
# Env: RUNS (executions per target, default 10000000), MAX_TIME (seconds per target, 0 = no
# limit; the run then ends at whichever comes first), SANITIZER (default none: the code is
# safe Rust, and libFuzzer still catches panics, aborts, stack overflows, timeouts and memory
# blow-ups; "address" instruments the unsafe code of dependencies, about 2x slower),
# TIMEOUT (seconds one input may take, default 10), RSS_LIMIT_MB (default 2048), NICE
# (default 15). Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000000}"
MAX_TIME="${MAX_TIME:-0}"
SANITIZER="${SANITIZER:-none}"
TIMEOUT="${TIMEOUT:-10}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-2048}"
NICE="${NICE:-15}"
BENCH_NAME=fuzz
# shellcheck source=bench/lib.sh
source bench/lib.sh # die

cargo +nightly --version >/dev/null 2>&1 || die "the nightly toolchain is missing (rustup toolchain install nightly)"
cargo fuzz --version >/dev/null 2>&1 || die "cargo-fuzz is missing (cargo install cargo-fuzz)"
for v in RUNS MAX_TIME TIMEOUT RSS_LIMIT_MB NICE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done

# The server's parsers need the fuzz crate's `server` feature (pullcast-server: a long build).
SERVER_TARGETS=" ws_message rest_body record_path record_sidecar webrtc_offer auth_hook "
# Longest input per target: the stream-shaped targets need room for several messages.
max_len() {
    case "$1" in
        rtmp_session | rtmp_chunk | rtmp_amf0 | normalize | mp4_writer | flv_file) echo 16384 ;;
        sdp_offer | webrtc_offer | ws_message | rest_body | stream_pattern) echo 8192 ;;
        # Every execution decodes, resamples and Opus-encodes what it holds: a few frames
        # are enough to cross frame and configuration boundaries.
        aac_transcode) echo 256 ;;
        *) echo 4096 ;;
    esac
}

all_targets() {
    find fuzz/fuzz_targets -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort
}

mode=fuzz
case "${1:-}" in
    --list) all_targets; exit 0 ;;
    --cmin) mode=cmin; shift ;;
    -*) die "unknown option $1 (see the head of $0)" ;;
esac
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(all_targets)
features=()
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || die "no fuzz target $t (bench/fuzz.sh --list)"
    case "$SERVER_TARGETS" in *" $t "*) features=(--features server) ;; esac
done

echo "== building the fuzz targets (cargo +nightly fuzz build -s $SANITIZER ${features[*]})"
(cd fuzz && nice -n "$NICE" cargo +nightly fuzz build -s "$SANITIZER" "${features[@]}")

run_fuzz() { # TARGET [CORPUS...] -- ARGS...: the fuzz run, niced, one job
    local target=$1; shift
    (cd fuzz && nice -n "$NICE" cargo +nightly fuzz run -s "$SANITIZER" "${features[@]}" "$target" "$@")
}

if [ "$mode" = cmin ]; then
    for t in "${targets[@]}"; do
        merged="fuzz/work/cmin-$t"
        rm -rf "$merged"; mkdir -p "$merged" "fuzz/corpus/$t"
        cp -n "fuzz/corpus/$t"/* "$merged"/ 2>/dev/null || true
        [ -d "fuzz/work/$t" ] && cp -n "fuzz/work/$t"/* "$merged"/ 2>/dev/null || true
        before=$(find "$merged" -type f | wc -l)
        (cd fuzz && nice -n "$NICE" cargo +nightly fuzz cmin -s "$SANITIZER" "${features[@]}" "$t" "work/cmin-$t" \
            -- -max_len="$(max_len "$t")" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB") \
            >"fuzz/work/cmin-$t.log" 2>&1 || die "cmin of $t failed (fuzz/work/cmin-$t.log)"
        rm -rf "fuzz/corpus/$t"; mv "$merged" "fuzz/corpus/$t"
        printf '%-16s %6d inputs -> %5d (%s)\n' "$t" "$before" "$(find "fuzz/corpus/$t" -type f | wc -l)" \
            "$(du -sh "fuzz/corpus/$t" | cut -f1)"
    done
    echo "corpus total: $(du -sh fuzz/corpus | cut -f1)"
    exit 0
fi

results=()
failed=0
for t in "${targets[@]}"; do
    work="fuzz/work/$t"
    log="fuzz/work/$t.log"
    mkdir -p "$work" "fuzz/artifacts/$t"
    corpora=("work/$t" "corpus/$t")
    [ -d "fuzz/regressions/$t" ] && corpora+=("regressions/$t")
    args=(-runs="$RUNS" -max_total_time="$MAX_TIME" -max_len="$(max_len "$t")" -timeout="$TIMEOUT"
        -rss_limit_mb="$RSS_LIMIT_MB" -print_final_stats=1)
    [ -f "fuzz/dict/$t.dict" ] && args+=(-dict="dict/$t.dict")
    limit=""
    [ "$MAX_TIME" -gt 0 ] && limit=" (at most $MAX_TIME s)"
    echo "== $t: $RUNS runs$limit, log in $log"
    start=$(date +%s)
    status=ok
    run_fuzz "$t" "${corpora[@]}" -- "${args[@]}" >"$log" 2>&1 || status=CRASH
    seconds=$(( $(date +%s) - start ))
    execs=$(awk '/^stat::number_of_executed_units/ { print $2 }' "$log" | tail -n1)
    rate=$(awk '/^stat::average_exec_per_sec/ { print $2 }' "$log" | tail -n1)
    rss=$(awk '/^stat::peak_rss_mb/ { print $2 }' "$log" | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n1 |
        awk '{ print $2 "\t" $4 "\t" $6 }')
    if [ "$status" != ok ]; then
        failed=1
        artifact=$(grep -Eo 'artifacts/[^ ]+' "$log" | tail -n1 || true)
        status="CRASH ${artifact:-see $log}"
        grep -m2 -A1 -E "panicked at|ERROR: libFuzzer|==[0-9]+== ERROR" "$log" >&2 || true
    fi
    results+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$t" "${execs:-?}" "$seconds" "${rate:-?}" \
        "${cov:-?	?	?}" "${rss:-?}" "$status")")
    echo "   ${results[-1]}"
done

echo
echo "== fuzzing results (sanitizer $SANITIZER, $(nproc) cores, one job)"
{
    printf 'target\texecutions\tseconds\texec/s\tcov\tft\tcorpus\tpeak MB\tresult\n'
    printf '%s\n' "${results[@]}"
} | column -t -s $'\t'
exit "$failed"
