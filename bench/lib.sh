# Helpers shared by the benchmark scripts (sourced, not run): free loopback ports, polling,
# clocks, and /proc readings of a process's CPU time and resident memory.
#
# The sourcing script sets BENCH_NAME (the prefix of its error messages) before sourcing.

die() { echo "${BENCH_NAME:-bench}: $*" >&2; exit 1; }

# nginx's RTMP module as Debian's libnginx-mod-rtmp installs it; nginx lives in /usr/sbin.
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

# require_peers TOOL...: each tool on PATH and nginx's RTMP module, or die naming the packages.
require_peers() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install ffmpeg nginx libnginx-mod-rtmp curl)"
    done
    [ -f "$RTMP_MODULE" ] || die "$RTMP_MODULE is missing (apt-get install libnginx-mod-rtmp)"
}

# stop_bench PID...: the exit trap of a benchmark — TERM these processes, stop nginx, KILL
# what is left, reap, and remove $WORK unless KEEP=1.
stop_bench() {
    set +e
    local pid
    for pid in "$@"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
    stop_nginx
    for pid in "$@"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}

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
# Open file descriptors and threads of a process (0 when it is gone).
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
thread_count() { awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- nginx-rtmp (a minimal live application) --------------------------------------------------
# start_nginx: writes $WORK/nginx.conf on a free loopback port (sets RTMP_PORT the first time,
# keeps it on a restart), starts nginx in the foreground, sets NGINX_PID, waits until it
# listens. Needs WORK and RTMP_MODULE.
start_nginx() {
    RTMP_PORT="${RTMP_PORT:-$(free_port)}"
    cat > "$WORK/nginx.conf" <<CONF
load_module $RTMP_MODULE;
daemon off; master_process on; worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log info;
events { worker_connections 256; }
rtmp { server { listen 127.0.0.1:$RTMP_PORT; chunk_size 4096;
  application live { live on; record off; } } }
CONF
    nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" >>"$WORK/nginx.out" 2>&1 </dev/null &
    NGINX_PID=$!
    wait_until 10 port_open "$RTMP_PORT" || die "nginx did not listen on $RTMP_PORT: $(tail -5 "$WORK/error.log")"
}

# stop_nginx: fast shutdown (its connections drop), then SIGKILL after 5 s.
stop_nginx() {
    [ -n "${NGINX_PID:-}" ] || return 0
    nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
    return 0
}

# publish_count NAME: how many times nginx logged a publish of NAME.
publish_count() { grep -c "publish: name='$1'" "$WORK/error.log" 2>/dev/null || true; }

# ---- pullcast ------------------------------------------------------------------------------
# start_server TAG: a fresh release pullcast ($BIN) on free ports, run in $WORK, logging to
# $WORK/pullcast-TAG.log (RUST_LOG default warn); sets REST_PORT, SERVER_PID and API.
# UDP_PORT_COUNT (default 400) sizes its WebRTC port range.
start_server() {
    local tag=$1
    REST_PORT=$(free_port)
    UDP_BASE=$(( 20000 + RANDOM % 9000 )) # below the ephemeral range the load client binds in
    mkdir -p "$WORK/tls"
    (
        cd "$WORK"
        export RUST_LOG="${RUST_LOG:-warn}"
        export PULLCAST_SERVER__BIND=127.0.0.1
        export PULLCAST_SERVER__REST_HTTP_PORT="$REST_PORT"
        export PULLCAST_SERVER__REST_HTTPS_PORT="$(free_port)"
        export PULLCAST_SERVER__WS_PORT="$(free_port)"
        export PULLCAST_SERVER__WSS_PORT="$(free_port)"
        export PULLCAST_TLS__SELF_SIGNED_DIR="$WORK/tls"
        export PULLCAST_WEBRTC__UDP_PORT="$UDP_BASE"
        export PULLCAST_WEBRTC__UDP_PORT_COUNT="${UDP_PORT_COUNT:-400}"
        exec "$BIN" </dev/null >"$WORK/pullcast-$tag.log" 2>&1
    ) &
    SERVER_PID=$!
    API="http://127.0.0.1:$REST_PORT/rest-api/pull/rtmp"
    local code
    ready() {
        kill -0 "$SERVER_PID" 2>/dev/null || die "pullcast exited: $(tail -20 "$WORK/pullcast-$tag.log")"
        code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' -X POST -d '{}' "$API/find_all" || true)
        [ "$code" != 000 ]
    }
    wait_until 20 ready || die "pullcast did not answer within 20 s: $(tail -20 "$WORK/pullcast-$tag.log")"
}


# build_server_and_client: the release pullcast and load client (skipped when SERVER_BIN and
# CLIENT_BIN are both given); sets BIN and CLIENT_BIN and checks both exist.
build_server_and_client() {
    if [ -n "${SERVER_BIN:-}" ] && [ -n "${CLIENT_BIN:-}" ]; then
        BIN="$SERVER_BIN"
    else
        echo "== building the release server and load client"
        cargo build --release -p pullcast-server -p pullcast-loadclient --bin pullcast --bin pullcast-loadclient
        BIN="${SERVER_BIN:-$CARGO_TARGET_DIR/release/pullcast}"
        CLIENT_BIN="${CLIENT_BIN:-$CARGO_TARGET_DIR/release/pullcast-loadclient}"
    fi
    [ -x "$BIN" ] || die "no server binary at $BIN"
    [ -x "$CLIENT_BIN" ] || die "no load client binary at $CLIENT_BIN"
}
