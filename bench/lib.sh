# Helpers shared by the benchmark scripts (sourced, not run): free loopback ports, polling,
# clocks, and /proc readings of a process's CPU time and resident memory.
#
# The sourcing script sets BENCH_NAME (the prefix of its error messages) before sourcing.

die() { echo "${BENCH_NAME:-bench}: $*" >&2; exit 1; }

# A loopback port nobody listens on (checked in /proc/net/tcp), never handed out twice.
TAKEN=" "
free_port() {
    local port hex
    while :; do
        port=$(( 20000 + RANDOM % 40000 ))
        hex=$(printf '%04X' "$port")
        case "$TAKEN" in *" $port "*) continue ;; esac
        if ! awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' \
            /proc/net/tcp /proc/net/tcp6; then
            TAKEN="$TAKEN$port "
            echo "$port"
            return
        fi
    done
}

# wait_until SECONDS COMMAND...: poll every 50 ms.
wait_until() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# utime + stime of a process, in clock ticks.
cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $(( ${12} + ${13} ))
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
