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
events { worker_connections ${NGINX_CONNECTIONS:-256}; }
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
# Every WebRTC viewer is served on UDP_BASE. MAX_VIEWERS (default 10 000) raises the viewer
# limits.
start_server() {
    local tag=$1
    REST_PORT=$(free_port)
    UDP_BASE=$(( 20000 + RANDOM % 9000 )) # below the ephemeral range the load client binds in
    mkdir -p "$WORK/tls"
    (
        cd "$WORK"
        export RUST_LOG="${RUST_LOG:-warn,rtc_dtls::config=error}"
        export PULLCAST_SERVER__BIND=127.0.0.1
        export PULLCAST_SERVER__REST_HTTP_PORT="$REST_PORT"
        export PULLCAST_SERVER__REST_HTTPS_PORT="$(free_port)"
        export PULLCAST_SERVER__WS_PORT="$(free_port)"
        export PULLCAST_SERVER__WSS_PORT="$(free_port)"
        export PULLCAST_SERVER__HLS_HTTP_PORT="${HLS_PORT:=$(free_port)}"
        export PULLCAST_SERVER__HLS_HTTPS_PORT="$(free_port)"
        export PULLCAST_SERVER__RTMP_PORT="${SERVER_RTMP_PORT:=$(free_port)}"
        export PULLCAST_TLS__SELF_SIGNED_DIR="$WORK/tls"
        export PULLCAST_WEBRTC__UDP_PORT="$UDP_BASE"
        # A bench may ask for more viewers than the defaults allow (1 000, 500 per capture).
        export PULLCAST_LIMITS__MAX_VIEWERS="${MAX_VIEWERS:-10000}"
        export PULLCAST_LIMITS__MAX_VIEWERS_PER_CAPTURE="${MAX_VIEWERS:-10000}"
        # SERVER_CPUS: the cores pullcast may run on (taskset), e.g. to keep the encoder and
        # the load client (run the bench under `taskset -c …` for them) off its core.
        local pin=()
        [ -n "${SERVER_CPUS:-}" ] && pin=(taskset -c "$SERVER_CPUS")
        exec "${pin[@]}" "$BIN" </dev/null >"$WORK/pullcast-$tag.log" 2>&1
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


# ---- Janus (Debian's janus package: its streaming plugin, HTTP API) --------------------------
# start_janus TAG RTMP_URL: Janus with only the streaming plugin and the HTTP transport, on
# free ports, its config written to $WORK/janus; mountpoint 1 takes H.264 (42e01f,
# packetization-mode 1, the latest keyframe kept for new viewers like pullcast's cache) and
# Opus over RTP on loopback, fed by an ffmpeg that pulls RTMP_URL (video copied with its
# parameter sets in-band, AAC transcoded to Opus as pullcast does). Janus leaves loopback out
# of ICE, so its candidates (and the load client) use HOST_IP, this machine's first address
# (the packets still never leave it). Its event loops are a static pool of one per core
# (event_loops): with its default thread per viewer it crashed in glib near 600 viewers here. Sets SERVER_PID (janus), FEED_PID, JANUS_URL. Runs
# Janus as nobody when we are root.
start_janus() {
    local tag=$1 url=$2 dir="$WORK/janus"
    mkdir -p "$dir"; chmod 755 "$WORK" "$dir"
    local http_port vport aport
    http_port=$(free_port); vport=$(free_port); aport=$(free_port)
    HOST_IP="${HOST_IP:-$(hostname -I | awk '{ print $1 }')}"
    [ -n "$HOST_IP" ] || die "no host address for Janus's ICE (hostname -I is empty)"
    cat > "$dir/janus.jcfg" <<CONF
general: { configs_folder = "$dir" plugins_folder = "/usr/lib/x86_64-linux-gnu/janus/plugins"
  transports_folder = "/usr/lib/x86_64-linux-gnu/janus/transports"
  events_folder = "/usr/lib/x86_64-linux-gnu/janus/events" loggers_folder = "/usr/lib/x86_64-linux-gnu/janus/loggers"
  debug_level = 3 session_timeout = 60 event_loops = $(nproc) }
media: { rtp_port_range = "40000-49999" ipv6 = false }
nat: { ice_lite = false ice_tcp = false full_trickle = false ignore_mdns = true ice_enforce_list = "$HOST_IP" }
plugins: { disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_voicemail.so" }
transports: { disable = "libjanus_websockets.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_rabbitmq.so,libjanus_pfunix.so" }
loggers: { disable = "libjanus_jsonlog.so" }
events: { broadcast = false }
CONF
    cat > "$dir/janus.transport.http.jcfg" <<CONF
general: { json = "compact" base_path = "/janus" http = true port = $http_port ip = "127.0.0.1" https = false acl = "127." }
admin: { admin_http = false admin_https = false }
CONF
    cat > "$dir/janus.plugin.streaming.jcfg" <<CONF
general: { rtp_port_range = "50000-50999" events = false }
bench: { type = "rtp" id = 1 description = "pullcast bench"
  media = (
    { type = "video" mid = "v" label = "video" port = $vport iface = "127.0.0.1" pt = 96 codec = "h264"
      fmtp = "profile-level-id=42e01f;packetization-mode=1" bufferkf = true },
    { type = "audio" mid = "a" label = "audio" port = $aport iface = "127.0.0.1" pt = 111 codec = "opus" }
  ) }
CONF
    chmod 644 "$dir"/*.jcfg
    local run=()
    [ "$(id -u)" = 0 ] && { touch "$WORK/janus-$tag.log"; chown nobody "$WORK/janus-$tag.log"; run=(runuser -u nobody --); }
    "${run[@]}" janus -F "$dir" -L "$WORK/janus-$tag.log" -N -o </dev/null >/dev/null 2>&1 &
    local launcher=$!
    JANUS_URL="http://127.0.0.1:$http_port/janus"
    janus_up() { curl -s --max-time 2 "$JANUS_URL/info" | grep -q '"janus.plugin.streaming"'; }
    wait_until 20 janus_up || die "Janus did not answer within 20 s: $(tail -5 "$WORK/janus-$tag.log")"
    SERVER_PID=$(pgrep -x -P "$launcher" janus || echo "$launcher")
    ffmpeg -hide_banner -nostdin -loglevel warning -i "$url" \
        -map 0:v -c:v copy -bsf:v h264_mp4toannexb -payload_type 96 -ssrc 1111 \
        -f rtp "rtp://127.0.0.1:$vport?pkt_size=1200" \
        -map 0:a -c:a libopus -b:a 96k -ac 2 -ar 48000 -payload_type 111 -ssrc 2222 \
        -f rtp "rtp://127.0.0.1:$aport?pkt_size=1200" >"$WORK/janus-feed-$tag.log" 2>&1 </dev/null &
    FEED_PID=$!
}

# janus_fed: mountpoint 1 has had video within the last second (Janus's own "info").
janus_fed() {
    local s h body
    s=$(curl -s -X POST -d '{"janus":"create","transaction":"i1"}' "$JANUS_URL" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
    [ -n "$s" ] || return 1
    h=$(curl -s -X POST -d '{"janus":"attach","plugin":"janus.plugin.streaming","transaction":"i2"}' "$JANUS_URL/$s" \
        | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
    body=$(curl -s -X POST -d '{"janus":"message","transaction":"i3","body":{"request":"info","id":1}}' "$JANUS_URL/$s/$h")
    curl -s -X POST -d '{"janus":"destroy","transaction":"i4"}' "$JANUS_URL/$s" >/dev/null
    grep -Eq '"type":"video"[^}]*"age_ms":[0-9]{1,3}[,}]' <<<"$body"
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

# ---- one 720p30 source and one capture of it ------------------------------------------------
# publish_source KBPS: ffmpeg publishes 1280x720 30 fps Constrained Baseline (2 s GOP) at KBPS
# + AAC 48 kHz stereo to nginx's live/src (start_nginx first); sets PUBLISHER_PID, waits for
# nginx to log the publish.
publish_source() {
    local kbps=$1
    ffmpeg -hide_banner -nostdin -loglevel warning -re \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000 \
        -c:v libx264 -preset veryfast -g 60 -tune zerolatency -profile:v baseline -pix_fmt yuv420p \
        -b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$(( kbps * 2 ))k" \
        -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/src" \
        >"$WORK/publisher.log" 2>&1 </dev/null &
    PUBLISHER_PID=$!
    source_published() { grep -q "publish: name='src'" "$WORK/error.log" 2>/dev/null; }
    wait_until 10 source_published || die "ffmpeg did not publish: $(tail -5 "$WORK/publisher.log")"
}

# capture_source NAME: the running pullcast (start_server) pulls live/src as NAME and waits
# until it is PROCESSED_REMOTE.
capture_source() {
    API="http://127.0.0.1:$REST_PORT/rest-api/pull/rtmp"
    curl -s --max-time 5 -X POST -H 'Content-Type: application/json' \
        -d "{\"uri\":\"rtmp://127.0.0.1:$RTMP_PORT/live/src\",\"localStreamName\":\"$1\"}" "$API/pull" >/dev/null
    capture_processed() { curl -s --max-time 2 -X POST -H 'Content-Type: application/json' -d '{}' "$API/find_all" | grep -q '"PROCESSED_REMOTE"'; }
    wait_until 15 capture_processed || die "pullcast's capture did not start"
}
