#!/usr/bin/env bash
# compare.sh - Sol against Mosquitto and rumqttd on this machine, in the same run: every scenario
# against every broker, rotating which goes first, REPS times; prints the medians and the
# Sol/Mosquitto and Sol/rumqttd ratios as a Markdown table and writes it (with every raw RESULT
# line and the exact broker settings) to the results directory.
#
# Every broker runs at its DEFAULT settings (only its listener is set; see broker-settings.txt) and
# every throughput scenario is OPEN LOOP (solbench --open-loop: publishers never wait for
# subscribers; QoS 1 publishers are bounded only by their own window). A result that lost messages
# is shown as "LOST n" and gets no ratio: zero loss is a condition of a result.
#
# Usage: bench/compare.sh [--quick] [--scenarios a,a5,a5p,at,b,b5,bt,c,d,e,f,g,gp,h,i,p] [--reps N] [--duration SEC]
#                         [--brokers sol,mosquitto,rumqttd] [--closed-loop] [--out DIR]
#                         [--no-strace] [--report DIR]
#   (a) 1->1 QoS 0 64 B        (b) 1->1 QoS 1 64 B window 100   (c) 10->1 fan-in QoS 0 wildcard
#   (d) 1->50 fan-out QoS 0    (e) latency at 10,000 msg/s      (f) idle connections: 5,000, 100,000
#   (g) 3-node Sol cluster, publisher on node 1, subscriber on node 2 (vs (a) on one node)
#   (gp) as (g) with (p)'s load: QoS 1, the subscriber a persistent session on node 2 (vs (p) sync)
#   (h) 10->1 QoS 0, 2,000,000 messages in all   (i) 1->1 QoS 1 window 100, 300,000 messages
#   MQTT 5 (solbench --mqtt5), each run right after its 3.1.1 scenario: (a5) = (a), (b5) = (b),
#   (a5p) = (a) with two 16-byte User Properties on every message (--user-props 2, checked by the
#   subscriber); the report adds each broker's v5 cost, (a5)/(a), (b5)/(b) and (a5p)/(a).
#   TLS (solbench --tls, each run right after its plain scenario): (at) = (a), (bt) = (b) over
#       TLS with one certificate made here for every broker (Sol --listener mqtts://, Mosquitto
#       certfile/keyfile); rumqttd is not run for them (its TLS listener is not set up here).
#   (p) durability: (b) with a persistent subscriber (clean session 0), against Sol
#       --durability sync / async / none and Mosquitto with persistence (its default autosave) and
#       without; its own table (asked for by name: not in the default list).
# plus syscalls per message at load (strace -c on the broker during an extra run of (a)).
# --quick: one repetition, 3 s per timed run, (h) and (i) with a tenth of the messages.
# --closed-loop: also (a)-(d) closed loop (solbench --max-lag 10000), as a second table.
# rumqttd: RUMQTTD, else on PATH, else ~/.cargo/bin; if missing and cargo exists, it is installed
# with `cargo install rumqttd --version $RUMQTTD_VERSION` (default 0.20.0; slow on 2 cores);
# without cargo it is skipped with a note.
# Everything listens on 127.0.0.x; every process started here is stopped on exit.
# --report DIR rebuilds DIR/results.md from DIR/raw.txt of an earlier run without running anything.
# Environment: SOL_BIN, SOLBENCH, MOSQUITTO, RUMQTTD (binaries), BUILD (default build/), SOL_REV.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SOL=${SOL_BIN:-$BUILD/sol}
BENCH=${SOLBENCH:-$BUILD/solbench}
MOSQ=${MOSQUITTO:-/usr/sbin/mosquitto}
RUMQTTD=${RUMQTTD:-}
RUMQTTD_VERSION=${RUMQTTD_VERSION:-0.20.0}
SCENARIOS=a,a5,a5p,at,b,b5,bt,c,d,e,f,g,h,i
REPS=3
DURATION=10
QUICK=0
STRACE=1
CLOSED=0
BROKERS=sol,mosquitto,rumqttd
OUT=""
REPORT_ONLY=0
IDLE_SMALL=5000
IDLE_LARGE=100000
H_TOTAL=2000000 # (h): messages over all 10 publishers
I_TOTAL=300000  # (i)

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1; REPS=1; DURATION=3; H_TOTAL=200000; I_TOTAL=30000 ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --brokers) BROKERS=$2; shift ;;
    --closed-loop) CLOSED=1 ;;
    --out) OUT=$2; shift ;;
    --no-strace) STRACE=0 ;;
    --report) REPORT_ONLY=1; OUT=$2; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

has() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- build and environment ---------------------------------------------------------------------
if [ "$REPORT_ONLY" = 0 ] && { { has "$BROKERS" sol && [ ! -x "$SOL" ]; } || [ ! -x "$BENCH" ]; }; then
    log "building (make build)"
    make -C "$ROOT" build >&2 || { echo "compare.sh: make build failed" >&2; exit 1; }
fi
if [ "$REPORT_ONLY" = 0 ]; then
    [ -x "$BENCH" ] || { echo "compare.sh: $BENCH missing" >&2; exit 1; }
    if has "$BROKERS" sol && [ ! -x "$SOL" ]; then echo "compare.sh: $SOL missing" >&2; exit 1; fi
    if has "$BROKERS" mosquitto && [ ! -x "$MOSQ" ]; then
        echo "compare.sh: $MOSQ missing (apt-get install mosquitto)" >&2; exit 1
    fi
fi
NOTES=()
# rumqttd: given, on PATH, in ~/.cargo/bin, or installed now with cargo; else skipped.
without_broker() { BROKERS=$(echo ",$BROKERS," | sed "s/,$1,/,/; s/^,//; s/,$//"); }
if [ "$REPORT_ONLY" = 0 ] && has "$BROKERS" rumqttd; then
    [ -n "$RUMQTTD" ] || RUMQTTD=$(command -v rumqttd 2>/dev/null || true)
    [ -n "$RUMQTTD" ] || { [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/rumqttd" ] && RUMQTTD=${CARGO_HOME:-$HOME/.cargo}/bin/rumqttd; }
    CARGO=$(command -v cargo 2>/dev/null || { [ -x "$HOME/.cargo/bin/cargo" ] && echo "$HOME/.cargo/bin/cargo"; } || true)
    if [ -z "$RUMQTTD" ] && [ -n "$CARGO" ]; then
        log "rumqttd not found: cargo install rumqttd --version $RUMQTTD_VERSION (several minutes on 2 cores; log in $BUILD/rumqttd-install.log)"
        mkdir -p "$BUILD"
        if "$CARGO" install rumqttd --version "$RUMQTTD_VERSION" >"$BUILD/rumqttd-install.log" 2>&1; then
            RUMQTTD=${CARGO_HOME:-$HOME/.cargo}/bin/rumqttd
        else
            log "cargo install rumqttd failed (see $BUILD/rumqttd-install.log)"
        fi
    fi
    if [ -z "$RUMQTTD" ] || [ ! -x "$RUMQTTD" ]; then
        if [ -z "$CARGO" ]; then
            NOTES+=("rumqttd skipped: it is not installed and cargo is not available to install it (install Rust, then \`cargo install rumqttd\`)")
        else
            NOTES+=("rumqttd skipped: cargo install rumqttd failed (see $BUILD/rumqttd-install.log)")
        fi
        log "${NOTES[-1]}"
        without_broker rumqttd
        RUMQTTD=""
    fi
fi
if [ "$REPORT_ONLY" = 1 ] && [ ! -f "$OUT/raw.txt" ]; then
    echo "compare.sh: $OUT/raw.txt not found" >&2; exit 1
fi

# Idle connections need one descriptor each, in the broker and in solbench.
ulimit -n 1048576 2>/dev/null || ulimit -n 300000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
IDLE_NOTE=""
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_LARGE + 1000)) ]; then
    CAP=$(((NOFILE - 1000) / 1000 * 1000))
    IDLE_NOTE="open-file limit here is $NOFILE (hard limit; raising it is not permitted), so the large idle run holds $CAP connections instead of $IDLE_LARGE"
    IDLE_LARGE=$CAP
fi
HZ=$(getconf CLK_TCK)

[ -n "$OUT" ] || OUT="$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
RAW="$OUT/raw.txt"
[ "$REPORT_ONLY" = 1 ] || : >"$RAW"
WORK=$(mktemp -d /tmp/solcompare.XXXXXX)

# (at), (bt): one CA and one server certificate (CN localhost, SAN localhost and 127.0.0.1, RSA
# 2048) for every broker.
make_certs() {
    local d="$WORK/tls"
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
        -subj /CN=solbench-ca >/dev/null 2>&1 &&
        openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" -out "$d/server.csr" \
            -subj /CN=localhost >/dev/null 2>&1 &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/ext" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
            -out "$d/server.crt" -days 2 -extfile "$d/ext" >/dev/null 2>&1 &&
        # Mosquitto started as root reads them as the user "mosquitto" (a throwaway key).
        chmod 711 "$WORK" && chmod 755 "$d" && chmod 644 "$d"/*
}

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- brokers: each at its default settings ------------------------------------------------------
# A port nobody listens on, below the ephemeral range so client sockets never take it.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return; }
    done
}

# Wait until host:port accepts connections (deadline 10 s).
wait_port() {
    local i
    for i in $(seq 1 100); do
        ss -Hltn "( sport = :$2 )" 2>/dev/null | grep -q "$1:$2" && return 0
        sleep 0.1
    done
    return 1
}

# The exact settings of every broker, written once per run next to the results.
SETTINGS="$OUT/broker-settings.txt"
settings_once() { # broker, then the text on stdin
    if ! grep -q "^== $1 " "$SETTINGS" 2>/dev/null; then
        { echo "== $1 =="; cat; echo; } >>"$SETTINGS"
    else
        cat >/dev/null
    fi
}

BROKER_PID=""
# Mosquitto: a listener and no persistence; allow_anonymous because Mosquitto 2.0 refuses anonymous
# clients on a configured listener otherwise. Nothing else: max_inflight_messages 20,
# max_queued_messages 1000 etc. are its defaults.
# MOSQ_PERSIST=1 ((p) only): "persistence true" and a persistence_location instead, with its default
# autosave_interval 1800 (an in-memory database written to disk every 30 minutes and at exit).
MOSQ_PERSIST=0
start_mosquitto() { # port
    local conf="$WORK/mosquitto-$1.conf" name=mosquitto
    if [ "$MOSQ_PERSIST" = 1 ]; then
        name=mosquitto-persistence
        mkdir -p "$WORK/mosq-data-$1"
        chmod 711 "$WORK" && chmod 777 "$WORK/mosq-data-$1" # written as the user "mosquitto"
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n' \
            "$1" "$WORK/mosq-data-$1" >"$conf"
    else
        cat >"$conf" <<MOSQ
listener $1 127.0.0.1
allow_anonymous true
persistence false
MOSQ
    fi
    if [ "$TLSRUN" = 1 ]; then
        name=mosquitto-tls
        printf 'certfile %s\nkeyfile %s\n' "$WORK/tls/server.crt" "$WORK/tls/server.key" >>"$conf"
    fi
    { echo "$MOSQ -c mosquitto.conf"; echo "--- mosquitto.conf"; sed "s/ $1 / PORT /; s#$WORK/mosq-data-$1#DIR#; s#$WORK/tls/##" "$conf"; } | settings_once "$name"
    "$MOSQ" -c "$conf" >"$WORK/mosquitto-$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_port 127.0.0.1 "$1"
}

# Sol: --bind and --port, plus "--cluster-port 0" / "--http-port 0" only where this build's
# defaults would start those listeners (a port the benchmark did not ask for).
sol_no_extra_listeners() {
    local flag def a=""
    for flag in --cluster-port --http-port; do
        def=$("$SOL" --help 2>&1 | grep -- "^ *$flag " | grep -oE 'default: [0-9]+' | grep -oE '[0-9]+')
        [ -n "$def" ] && [ "$def" != 0 ] && a="$a $flag 0"
    done
    echo "$a"
}
SOL_EXTRA=""
[ "$REPORT_ONLY" = 1 ] || ! has "$BROKERS" sol || SOL_EXTRA=$(sol_no_extra_listeners)

SOL_DUR="" # (p): --durability for the Sol being started (empty: its default)
TLSRUN=0   # (at), (bt): the broker being started listens with TLS on its port
start_sol() { # port
    local dur=${SOL_DUR:+ --durability $SOL_DUR} port=$1 tls="" name=sol${SOL_DUR:+-$SOL_DUR}
    if [ "$TLSRUN" = 1 ]; then # its plain listener elsewhere, the TLS one on the port
        port=$(free_port)
        tls=" --listener mqtts://127.0.0.1:$1 --certfile $WORK/tls/server.crt --keyfile $WORK/tls/server.key"
        name=sol-tls
    fi
    # shellcheck disable=SC2086
    "$SOL" --bind 127.0.0.1 --port "$port" --data-dir "$WORK/sol-data-$1" $SOL_EXTRA$dur$tls >"$WORK/sol-$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    echo "$SOL --bind 127.0.0.1 --port PORT --data-dir DIR$SOL_EXTRA$dur$(echo "$tls" | sed "s#$WORK/tls/##g; s#127.0.0.1:$1#127.0.0.1:TLSPORT#")   (DIR on $(df -T "$WORK" | awk 'NR == 2 {print $2}'))" | settings_once "$name"
    wait_port 127.0.0.1 "$1"
}

# rumqttd: its own default configuration (`rumqttd generate-config`, the rumqttd.toml it ships)
# with [router] and one listener as they are, the listener moved to 127.0.0.1:PORT, and the other
# listeners it ships with (websocket 8083, prometheus 9042, console 3030, and the v4 or v5 one not
# used) left out, as Sol's cluster and HTTP listeners are. rumqttd speaks one protocol version per
# listener: [v4.1] (its 1883) for 3.1.1, [v5.1] (its 1884) for the MQTT 5 scenarios; Sol and
# Mosquitto take both on one.
rumqttd_config() { # port listener-section
    "$RUMQTTD" generate-config | awk -v listen="127.0.0.1:$1" -v sec="$2" '
        /^[[:space:]]*\[/ {
            h = $0; sub(/^[[:space:]]*\[/, "", h); sub(/\].*/, "", h)
            keep = (h == "router" || h ~ /^router\./ || h == sec || index(h, sec ".") == 1)
        }
        BEGIN { keep = 1 }
        keep && h == sec && /^[[:space:]]*listen[[:space:]]*=/ { print "listen = \"" listen "\""; next }
        keep && !/^[[:space:]]*#/ { print }' | cat -s
}

MQTT5=0 # the scenario being started is an MQTT 5 one (rumqttd needs its v5 listener)
start_rumqttd() { # port
    local conf="$WORK/rumqttd-$1.toml" sec=v4.1 name=rumqttd
    [ "$MQTT5" = 1 ] && { sec=v5.1; name=rumqttd-mqtt5; }
    rumqttd_config "$1" "$sec" >"$conf"
    grep -q "^listen = \"127.0.0.1:$1\"" "$conf" || { log "  rumqttd: could not make a config from generate-config"; return 1; }
    { echo "$RUMQTTD -q -c rumqttd.toml   ($("$RUMQTTD" --version 2>/dev/null))"; echo "--- rumqttd.toml"; sed "s/:$1\"/:PORT\"/" "$conf"; } | settings_once "$name"
    "$RUMQTTD" -q -c "$conf" >"$WORK/rumqttd-$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_port 127.0.0.1 "$1"
}

CLUSTER_PIDS=()
start_sol_cluster() { # mqtt port, cluster port
    local seeds="127.0.0.1:$2,127.0.0.2:$2,127.0.0.3:$2" i http=""
    case "$SOL_EXTRA" in *--http-port*) http="--http-port 0" ;; esac
    CLUSTER_PIDS=()
    for i in 1 2 3; do
        # shellcheck disable=SC2086
        "$SOL" --bind "127.0.0.$i" --port "$1" --node-name "bench$i" --cluster-port "$2" \
            --seeds "$seeds" --data-dir "$WORK/sol-data-$1-$i" $http >"$WORK/sol-cluster-$i.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        PIDS+=($!)
    done
    echo "$SOL --bind 127.0.0.N --port PORT --node-name benchN --cluster-port CPORT --seeds 127.0.0.1:CPORT,127.0.0.2:CPORT,127.0.0.3:CPORT${http:+ $http}   (N = 1, 2, 3)" | settings_once sol-cluster
    for i in 1 2 3; do wait_port "127.0.0.$i" "$1" || return 1; done
}

stop_pid() {
    kill "$1" 2>/dev/null
    local i
    for i in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_s() { date +%s.%N; }

# ---- scenarios -------------------------------------------------------------------------------------
# Open loop unless the scenario ends in _closed (solbench's default --max-lag 10000).
scenario_args() {
    local sc=${1%_closed} mode="--open-loop" len="--duration $DURATION"
    case "$1" in *_closed) mode="" ;; esac
    case "$sc" in
    a) echo "$mode $len --pubs 1 --subs 1 --qos 0 --size 64" ;;
    a5) echo "$(scenario_args a) --mqtt5" ;;
    a5p) echo "$(scenario_args a) --mqtt5 --user-props 2" ;;
    b) echo "$mode $len --pubs 1 --subs 1 --qos 1 --size 64 --window 100" ;;
    b5) echo "$(scenario_args b) --mqtt5" ;;
    p) echo "$(scenario_args b) --clean 0 --client-prefix durable" ;;
    at) echo "$(scenario_args a) --tls --cafile $WORK/tls/ca.crt --tls-name localhost" ;;
    bt) echo "$(scenario_args b) --tls --cafile $WORK/tls/ca.crt --tls-name localhost" ;;
    c) echo "$mode $len --pubs 10 --subs 1 --qos 0 --size 64 --sub wildcard" ;;
    d) echo "$mode $len --pubs 1 --subs 50 --qos 0 --size 64" ;;
    e) echo "$mode $len --pubs 1 --subs 1 --qos 0 --size 64 --rate 10000" ;;
    h) echo "$mode --count $((H_TOTAL / 10)) --pubs 10 --subs 1 --qos 0 --size 64 --sub wildcard" ;;
    i) echo "$mode --count $I_TOTAL --pubs 1 --subs 1 --qos 1 --size 64 --window 100" ;;
    esac
}

# Run solbench against a broker pid; append "scenario broker rep RESULT-fields broker_cpu=..." to RAW.
# Open loop has no drain timeout (it ends when everything arrived or nothing did for 2 s), so the
# outer timeout is generous; a run it kills has no RESULT and counts as failed.
run_bench() { # scenario broker rep broker_pid args...
    local sc=$1 br=$2 rep=$3 pid=$4
    shift 4
    local t0 c0 t1 c1 line d0 d1
    t0=$(now_s)
    c0=$(cpu_ticks "$pid")
    [ -n "${PID2:-}" ] && d0=$(cpu_ticks "$PID2")
    line=$(timeout $((DURATION + 600)) "$BENCH" --quiet "$@" | grep '^RESULT' || true)
    c1=$(cpu_ticks "$pid")
    [ -n "${PID2:-}" ] && d1=$(cpu_ticks "$PID2")
    t1=$(now_s)
    [ -n "$line" ] || line="RESULT errors=1"
    local bcpu extra=""
    pct() { awk -v c0="$1" -v c1="$2" -v t0="$t0" -v t1="$t1" -v hz="$HZ" \
        'BEGIN { printf "%.1f", 100 * (c1 - c0) / hz / (t1 - t0) }'; }
    bcpu=$(pct "$c0" "$c1")
    [ -n "${PID2:-}" ] && extra=" broker2_cpu_pct=$(pct "$d0" "$d1")"
    extra="$extra broker_cpu_s=$(awk -v c0="$c0" -v c1="$c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (c1 - c0) / hz }')"
    echo "$sc $br $rep ${line#RESULT } broker_cpu_pct=$bcpu$extra" >>"$RAW"
    log "  $sc $br #$rep: $(echo "$line" | grep -oE '(recv_rate|lost|dup|p50_us|p99_us|cpu_pct|prop_bad|errors)=[^ ]+' | tr '\n' ' ')broker_cpu=$bcpu%"
}

# A broker that died during a run fails that run (its numbers are kept out of the medians).
broker_check() { # scenario broker rep pid
    if ! kill -0 "$4" 2>/dev/null; then
        log "  $2 DIED during $1 #$3 (log: $OUT/$2-died-$1-$3.log)"
        cat "$WORK"/"$2"*.log >"$OUT/$2-died-$1-$3.log" 2>/dev/null
        echo "$1 $2 $3 errors=1 broker_died=1" >>"$RAW"
    fi
}

is_mqtt5() { case "$1" in a5|a5p|b5) return 0 ;; *) return 1 ;; esac; }
is_tls() { case "$1" in at|bt) return 0 ;; *) return 1 ;; esac; }

run_throughput() { # scenario broker rep
    local port
    port=$(free_port)
    MQTT5=0
    TLSRUN=0
    is_mqtt5 "$1" && MQTT5=1
    is_tls "$1" && TLSRUN=1
    "start_$2" "$port" || { log "  $2 did not start"; echo "$1 $2 $3 errors=1" >>"$RAW"; TLSRUN=0; return; }
    # shellcheck disable=SC2046
    run_bench "$1" "$2" "$3" "$BROKER_PID" --port "$port" $(scenario_args "$1")
    broker_check "$1" "$2" "$3" "$BROKER_PID"
    stop_pid "$BROKER_PID"
    TLSRUN=0
}

# Idle connections: RSS of a fresh broker before and while holding K connections.
run_idle() { # size-label K broker rep
    local label=$1 k=$2 br=$3 rep=$4 port out before after ok
    port=$(free_port)
    "start_$br" "$port" || { log "  $br did not start"; return; }
    sleep 0.5
    before=$(rss_kb "$BROKER_PID")
    out="$WORK/idle-$br-$k-$rep.out"
    local srcs=$(((k + 9999) / 10000 + 1))
    # rumqttd accepts one connection per ms by default and leaves CONNECTs past its 10,010
    # connections unanswered: give connects 3 ms each, then count the stragglers as not held.
    local ct=$((20 + k * 3 / 1000))
    timeout 600 "$BENCH" --port "$port" --pubs 0 --subs 0 --idle "$k" --src-addrs "$srcs" \
        --max-pending 64 --hold 3600 --connect-timeout "$ct" --keepalive 600 >"$out" 2>&1 &
    local bpid=$!
    PIDS+=("$bpid")
    local i
    for i in $(seq 1 3000); do
        grep -q IDLE_READY "$out" 2>/dev/null && break
        kill -0 "$bpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1 # let the broker finish whatever it allocates per connection
    after=$(rss_kb "$BROKER_PID")
    ok=$(grep -oE 'connected=[0-9]+' "$out" | head -1 | cut -d= -f2)
    ok=${ok:-0}
    kill -INT "$bpid" 2>/dev/null
    wait "$bpid" 2>/dev/null
    local alive=1
    kill -0 "$BROKER_PID" 2>/dev/null || alive=0
    local per=0
    [ "$ok" -gt 0 ] && per=$(((after - before) * 1024 / ok))
    echo "$label $br $rep idle_wanted=$k idle_ok=$ok rss_before_kb=$before rss_after_kb=$after bytes_per_conn=$per broker_alive=$alive" >>"$RAW"
    log "  $label $br #$rep: $ok/$k connected, RSS $before -> $after kB, $per B/conn"
    stop_pid "$BROKER_PID"
}

run_cluster() { # rep [g|gp]
    local sc=${2:-g} load=a port cport
    [ "$sc" = gp ] && load=p
    port=$(free_port)
    cport=$(free_port)
    if ! start_sol_cluster "$port" "$cport"; then
        log "  cluster did not start"
        echo "$sc sol $1 errors=1" >>"$RAW"
    else
        # shellcheck disable=SC2046
        PID2=${CLUSTER_PIDS[1]} run_bench "$sc" sol "$1" "${CLUSTER_PIDS[0]}" --host 127.0.0.1 --port "$port" \
            --sub-host 127.0.0.2 --sub-port "$port" --sync-timeout 30 $(scenario_args $load)
    fi
    local p
    for p in "${CLUSTER_PIDS[@]}"; do broker_check "$sc" sol "$1" "$p"; done
    for p in "${CLUSTER_PIDS[@]}"; do stop_pid "$p"; done
}

# (p): one broker variant (sol-sync, sol-async, sol-none, mosquitto-persistence, mosquitto) on a
# fresh port and data directory, scenario (p); recorded as "p VARIANT rep ...".
DUR_VARIANTS=()
for v in sol-sync sol-async sol-none; do has "$BROKERS" sol && DUR_VARIANTS+=("$v"); done
has "$BROKERS" mosquitto && DUR_VARIANTS+=(mosquitto-persistence mosquitto)
run_durable() { # variant rep
    local port br=${1%%-*}
    port=$(free_port)
    SOL_DUR=""
    MOSQ_PERSIST=0
    case "$1" in sol-*) SOL_DUR=${1#sol-} ;; mosquitto-persistence) MOSQ_PERSIST=1 ;; esac
    "start_$br" "$port" || { log "  $1 did not start"; echo "p $1 $2 errors=1" >>"$RAW"; SOL_DUR=""; MOSQ_PERSIST=0; return; }
    # shellcheck disable=SC2046
    run_bench p "$1" "$2" "$BROKER_PID" --port "$port" $(scenario_args p)
    broker_check p "$1" "$2" "$BROKER_PID"
    stop_pid "$BROKER_PID"
    SOL_DUR=""
    MOSQ_PERSIST=0
}

# Syscalls per message: strace -c on the broker during an extra, unmeasured run of (a).
run_strace() { # broker
    local port
    port=$(free_port)
    "start_$1" "$port" || return
    local st="$OUT/strace-$1.txt"
    strace -c -f -p "$BROKER_PID" -o "$st" 2>/dev/null &
    local spid=$!
    PIDS+=("$spid")
    sleep 0.5
    local line
    # shellcheck disable=SC2046
    line=$(timeout 300 "$BENCH" --quiet --port "$port" $(DURATION=5 scenario_args a) | grep '^RESULT')
    kill -INT "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    local calls recv
    calls=$(awk '$NF == "total" {print $4}' "$st" 2>/dev/null)
    recv=$(echo "$line" | grep -oE ' recv=[0-9]+' | cut -d= -f2)
    local per
    per=$(awk -v c="${calls:-0}" -v m="${recv:-0}" 'BEGIN { if (m > 0) printf "%.4f", c / m; else print "n/a" }')
    echo "strace $1 1 syscalls=${calls:-0} msgs=${recv:-0} syscalls_per_msg=$per" >>"$RAW"
    log "  strace $1: ${calls:-?} syscalls for ${recv:-?} messages = $per per message"
    stop_pid "$BROKER_PID"
}

# ---- the run ---------------------------------------------------------------------------------------
IFS=, read -r -a BLIST <<<"$BROKERS"
[ "$REPORT_ONLY" = 1 ] && REPS=0
[ "$REPORT_ONLY" = 1 ] || log "results in $OUT; brokers $BROKERS; scenarios $SCENARIOS$([ "$CLOSED" = 1 ] && echo " + closed loop a-d"); $REPS repetition(s); ${DURATION}s per timed run; (h) $H_TOTAL, (i) $I_TOTAL messages"
# Each MQTT 5 scenario right after its 3.1.1 one, so the pair sees the same machine.
THROUGHPUT="a a5 a5p at b b5 bt c d e h i"
if [ "$REPORT_ONLY" = 0 ] && { has "$SCENARIOS" at || has "$SCENARIOS" bt; }; then
    make_certs || { echo "compare.sh: could not make the TLS certificates (openssl)" >&2; exit 1; }
    has "$BROKERS" rumqttd && NOTES+=("rumqttd is not run in (at) and (bt): compare.sh does not set up its TLS listener")
fi
[ "$CLOSED" = 1 ] && THROUGHPUT="$THROUGHPUT a_closed b_closed c_closed d_closed"
for rep in $(seq 1 "$REPS"); do
    # Rotate which broker goes first, so drift in machine load hits them all alike.
    order=()
    n=${#BLIST[@]}
    for ((k = 0; k < n; k++)); do order+=("${BLIST[$(((k + rep - 1) % n))]}"); done
    for sc in $THROUGHPUT; do
        has "$SCENARIOS" "${sc%_closed}" || continue
        for br in "${order[@]}"; do
            is_tls "$sc" && [ "$br" = rumqttd ] && continue
            run_throughput "$sc" "$br" "$rep"
        done
    done
    if has "$SCENARIOS" f; then
        for br in "${order[@]}"; do run_idle f5k "$IDLE_SMALL" "$br" "$rep"; done
        for br in "${order[@]}"; do run_idle f100k "$IDLE_LARGE" "$br" "$rep"; done
    fi
    if has "$SCENARIOS" g && has "$BROKERS" sol; then run_cluster "$rep"; fi
    if has "$SCENARIOS" gp && has "$BROKERS" sol; then run_cluster "$rep" gp; fi
    if has "$SCENARIOS" p; then
        # Rotate the five broker variants too.
        nv=${#DUR_VARIANTS[@]}
        for ((k = 0; k < nv; k++)); do run_durable "${DUR_VARIANTS[$(((k + rep - 1) % nv))]}" "$rep"; done
    fi
done
if [ "$REPORT_ONLY" = 0 ] && [ "$STRACE" = 1 ] && has "$SCENARIOS" a && command -v strace >/dev/null; then
    for br in "${BLIST[@]}"; do run_strace "$br"; done
fi

# ---- report ----------------------------------------------------------------------------------------
# Brokers in the table: all three columns always; one that did not run shows "-".
ok_runs() { awk -v s="$1" -v b="$2" '$1 == s && $2 == b && !/ errors=[1-9]/' "$RAW"; }
# median SCENARIO BROKER KEY: median over successful repetitions of KEY=value in RAW ("-" if none).
# KEY recv_per_cpu_s is derived: messages received per second of broker CPU (recv / broker_cpu_s),
# what a broker's work costs whatever else shares the machine.
median() {
    ok_runs "$1" "$2" | awk -v k="$3" '
        {
            delete f
            for (i = 4; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (k == "recv_per_cpu_s") { if (f["broker_cpu_s"] + 0 > 0) v[n++] = f["recv"] / f["broker_cpu_s"] }
            else if (k in f) v[n++] = f[k] + 0
        }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            print m
        }'
}
sumk() { ok_runs "$1" "$2" | awk -v k="$3" '{ for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) t += kv[2] } } END { print t + 0 }'; }
# runs with lost > 0
lossy_runs() { ok_runs "$1" "$2" | awk '/ lost=[1-9]/ { n++ } END { print n + 0 }'; }
all_runs() { awk -v s="$1" -v b="$2" '$1 == s && $2 == b && !seen[$3]++ { n++ } END { print n + 0 }' "$RAW"; }
failed_runs() { awk -v s="$1" -v b="$2" '$1 == s && $2 == b && / errors=[1-9]/ && !seen[$3]++ { n++ } END { print n + 0 }' "$RAW"; }
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9]/ || b !~ /^[0-9]/ || b + 0 == 0) { print "-"; exit }
        r = a / b
        printf (r >= 10 ? "%.1fx" : r >= 0.1 ? "%.2fx" : "%.4fx"), r
    }'
}
fmt() { awk -v v="$1" 'BEGIN { if (v !~ /^[0-9]/) print v; else if (v >= 1000) printf "%\047.0f", v; else printf "%.1f", v }'; }
# value SCENARIO BROKER KEY: the median, or "-" (not run), "FAILED", "LOST n" (zero loss is a
# condition of a result: any run that lost messages fails the cell, and it gets no ratio).
value() {
    local n f l
    n=$(all_runs "$1" "$2")
    [ "$n" -gt 0 ] || { echo "-"; return; }
    f=$(failed_runs "$1" "$2")
    l=$(lossy_runs "$1" "$2")
    if [ "$l" -gt 0 ]; then
        echo "LOST $(fmt "$(sumk "$1" "$2" lost)")$([ "$n" -gt 1 ] && echo " ($l of $n runs)")"
    elif [ "$(median "$1" "$2" "$3")" = "-" ]; then
        echo "FAILED"
    else
        median "$1" "$2" "$3"
    fi
}
# cell: value formatted, with failed runs and duplicates noted
cell() {
    local v f d n
    v=$(value "$1" "$2" "$3")
    n=$(all_runs "$1" "$2")
    f=$(failed_runs "$1" "$2")
    d=$(sumk "$1" "$2" dup)
    printf '%s' "$(fmt "$v")"
    case "$v" in FAILED|-) echo; return ;; esac
    [ "$f" -gt 0 ] && printf ' (%s of %s runs FAILED)' "$f" "$n"
    [ "$d" -gt 0 ] && printf ' (dup %s)' "$(fmt "$d")"
    echo
}
BR3="sol mosquitto rumqttd"
cpus() { # scenario: "S / M / R (solbench S / M / R)" broker CPU % of one core
    local b s="" t=""
    for b in $BR3; do
        s="$s${s:+ / }$(fmt "$(median "$1" "$b" broker_cpu_pct)")"
        t="$t${t:+ / }$(fmt "$(median "$1" "$b" cpu_pct)")"
    done
    echo "$s ($t)"
}
row() { # scenario label metric-key metric-label target
    local s m r
    s=$(value "$1" sol "$3")
    m=$(value "$1" mosquitto "$3")
    r=$(value "$1" rumqttd "$3")
    echo "| $2 | $4 | $(cell "$1" sol "$3") | $(cell "$1" mosquitto "$3") | $(cell "$1" rumqttd "$3") | $(ratio "$s" "$m") | $(ratio "$s" "$r") | $5 | $(cpus "$1") |"
}
header() {
    echo "| Scenario | Metric | Sol | Mosquitto | rumqttd | Sol/Mosquitto | Sol/rumqttd | Target | broker CPU% Sol / Mosq / rumqttd (solbench) |"
    echo "|---|---|---:|---:|---:|---:|---:|---|---|"
}

# --report: the scenarios are the ones in raw.txt.
if [ "$REPORT_ONLY" = 1 ]; then
    SCENARIOS=$(awk '{ s = $1; sub(/_closed$/, "", s); if (s ~ /^f/) s = "f"; if (s != "strace" && !seen[s]++) printf "%s%s", (n++ ? "," : ""), s }' "$RAW")
    grep -q '^strace ' "$RAW" && SCENARIOS="$SCENARIOS,a"
fi
# Messages in all of a count scenario, as run (a --quick run sends a tenth).
total_of() { # scenario default
    local b v
    for b in $BR3; do
        v=$(median "$1" "$b" sent)
        [ "$v" != "-" ] && { fmt "$v"; return; }
    done
    fmt "$2"
}

TABLE="$OUT/results.md"
{
    if echo ",$SCENARIOS," | grep -qE ',(a|a5|a5p|b|b5|c|d|e|f|g|gp|h|i),'; then
        echo "Open loop (publishers never wait for subscribers), every broker at its default settings:"
        echo
        header
    fi
    has "$SCENARIOS" a && row a "(a) 1->1 QoS 0, 64 B" recv_rate "msgs/s received" ">= 2.5x M"
    has "$SCENARIOS" a5 && row a5 "(a5) = (a), MQTT 5" recv_rate "msgs/s received" "-"
    has "$SCENARIOS" a5p && row a5p "(a5p) = (a), MQTT 5, 2 user properties" recv_rate "msgs/s received" "-"
    has "$SCENARIOS" at && row at "(at) = (a) over TLS" recv_rate "msgs/s received" "-"
    has "$SCENARIOS" b && row b "(b) 1->1 QoS 1, 64 B, window 100" recv_rate "msgs/s received" ">= 1.5x M"
    has "$SCENARIOS" b5 && row b5 "(b5) = (b), MQTT 5" recv_rate "msgs/s received" "-"
    has "$SCENARIOS" bt && row bt "(bt) = (b) over TLS" recv_rate "msgs/s received" "-"
    has "$SCENARIOS" c && row c "(c) 10->1 fan-in QoS 0, wildcard" recv_rate "msgs/s received" ">= 2.5x M"
    has "$SCENARIOS" d && row d "(d) 1->50 fan-out QoS 0" recv_rate "msgs/s delivered" ">= 2.5x M"
    if has "$SCENARIOS" e; then
        row e "(e) 10,000 msg/s QoS 0" p50_us "latency p50 (us)" "-"
        row e "(e) 10,000 msg/s QoS 0" p99_us "latency p99 (us)" "<= 1.0x M"
    fi
    has "$SCENARIOS" h && row h "(h) 10->1 QoS 0, $(total_of h "$H_TOTAL") msgs, 64 B" recv_rate "msgs/s received" ">= 3x M, >= 2x R"
    has "$SCENARIOS" i && row i "(i) 1->1 QoS 1, window 100, $(total_of i "$I_TOTAL") msgs, 64 B" recv_rate "msgs/s received" ">= 3x M, >= 2x R"
    if has "$SCENARIOS" f; then
        for lab in f5k f100k; do
            k="-"
            for b in $BR3; do [ "$k" = "-" ] && k=$(median $lab "$b" idle_wanted); done
            [ "$k" = "-" ] && continue
            idle_cell() { # broker
                local v
                v=$(median $lab "$1" bytes_per_conn)
                [ "$v" = "-" ] && { echo "-"; return; }
                echo "$(fmt "$v") (held $(median $lab "$1" idle_ok))"
            }
            s=$(median $lab sol bytes_per_conn)
            m=$(median $lab mosquitto bytes_per_conn)
            r=$(median $lab rumqttd bytes_per_conn)
            echo "| (f) $k idle connections | broker RSS bytes/conn | $(idle_cell sol) | $(idle_cell mosquitto) | $(idle_cell rumqttd) | $(ratio "$s" "$m") | $(ratio "$s" "$r") | <= 1.0x M, all held | |"
        done
    fi
    if has "$SCENARIOS" g && [ "$(all_runs g sol)" -gt 0 ]; then
        g=$(value g sol recv_rate)
        a=$(value a sol recv_rate)
        echo "| (g) 3-node Sol cluster, pub node 1 -> sub node 2 | msgs/s received | $(cell g sol recv_rate) | | | (Sol (a): $(fmt "$a")) $(ratio "$g" "$a") of (a) | | >= 0.5x of (a) | $(fmt "$(median g sol broker_cpu_pct)") node 1, $(fmt "$(median g sol broker2_cpu_pct)") node 2 ($(fmt "$(median g sol cpu_pct)")) |"
    fi
    if has "$SCENARIOS" gp && [ "$(all_runs gp sol)" -gt 0 ]; then
        g=$(value gp sol recv_rate)
        a=$(value p sol-sync recv_rate)
        echo "| (gp) 3-node Sol cluster, QoS 1 to a persistent session, pub node 1 -> sub node 2 | msgs/s received | $(cell gp sol recv_rate) | | | (Sol (p) sync: $(fmt "$a")) $(ratio "$g" "$a") of (p) | | | $(fmt "$(median gp sol broker_cpu_pct)") node 1, $(fmt "$(median gp sol broker2_cpu_pct)") node 2 ($(fmt "$(median gp sol cpu_pct)")) |"
    fi
    if grep -q '^strace ' "$RAW"; then
        s=$(median strace sol syscalls_per_msg)
        m=$(median strace mosquitto syscalls_per_msg)
        r=$(median strace rumqttd syscalls_per_msg)
        echo "| strace -c during (a) | broker syscalls/msg | $s | $m | $r | $(ratio "$s" "$m") | $(ratio "$s" "$r") | < 1.0x M | |"
    fi
    if grep -qE '^(a5|a5p|b5) ' "$RAW"; then
        echo
        echo "MQTT 5 against 3.1.1, each broker against itself (msgs/s received, v5 / 3.1.1; the v5 cost is 1 minus this):"
        echo
        echo "| Ratio | Sol | Mosquitto | rumqttd | Target |"
        echo "|---|---:|---:|---:|---|"
        v5row() { # v5-scenario 3.1.1-scenario label target metric
            grep -q "^$1 " "$RAW" || return
            local line="| $3 |" b
            for b in $BR3; do line="$line $(ratio "$(value "$1" "$b" "$5")" "$(value "$2" "$b" "$5")") |"; done
            echo "$line $4 |"
        }
        v5row a5 a "(a5)/(a) QoS 0, no properties" "Sol >= 0.90x" recv_rate
        v5row b5 b "(b5)/(b) QoS 1, no properties" "Sol >= 0.90x" recv_rate
        v5row a5p a "(a5p)/(a) QoS 0, 2 user properties" "-" recv_rate
        percpu=0
        if grep -qE '^(a5|a5p|b5) .* broker_cpu_s=' "$RAW"; then
            percpu=1
            v5row a5 a "(a5)/(a) per broker CPU second" "-" recv_per_cpu_s
            v5row b5 b "(b5)/(b) per broker CPU second" "-" recv_per_cpu_s
            v5row a5p a "(a5p)/(a) per broker CPU second" "-" recv_per_cpu_s
        fi
        # A v5 publisher keeps within the broker's Receive Maximum [MQTT-3.3.4-7]: say what each
        # broker sent, since below 100 it is (b5)'s window, and who did not take MQTT 5 at all.
        rmax=""
        for b in $BR3; do
            [ "$(all_runs b5 "$b")" -gt 0 ] || continue
            v=$(median b5 "$b" recv_max)
            case "$v" in -) v="unknown" ;; 0) v="none (65,535)" ;; esac
            rmax="$rmax${rmax:+, }$b $v"
        done
        echo
        [ -n "$rmax" ] && echo "(b5): an MQTT 5 publisher leaves at most the broker's Receive Maximum unacknowledged, so its window is min(100, Receive Maximum); the CONNACKs said: $rmax."
        for b in $BR3; do
            for sc in a5 a5p b5; do
                n=$(all_runs "$sc" "$b")
                [ "$n" -gt 0 ] && [ "$(failed_runs "$sc" "$b")" = "$n" ] && echo "($sc): every $b run FAILED: it did not take MQTT 5 as configured (raw.txt has the RESULT lines)."
            done
        done
        [ "$percpu" = 1 ] && echo "Per broker CPU second: messages received / broker CPU seconds of each run (median), the ratio that does not move with what else runs on the machine."
        echo "(a5p): every subscriber checked both User Properties (values: the message's sequence number) on every message; a run with a mismatch (prop_bad > 0) FAILED."
    fi
    if grep -qE '^(at|bt) ' "$RAW"; then
        echo
        echo "TLS against plain TCP, each broker against itself (msgs/s received, TLS / plain):"
        echo
        echo "| Ratio | Sol | Mosquitto |"
        echo "|---|---:|---:|"
        for pr in "at a" "bt b"; do
            set -- $pr
            grep -q "^$1 " "$RAW" || continue
            echo "| ($1)/($2) | $(ratio "$(value "$1" sol recv_rate)" "$(value "$2" sol recv_rate)") | $(ratio "$(value "$1" mosquitto recv_rate)" "$(value "$2" mosquitto recv_rate)") |"
            echo "| ($1)/($2) per broker CPU second | $(ratio "$(value "$1" sol recv_per_cpu_s)" "$(value "$2" sol recv_per_cpu_s)") | $(ratio "$(value "$1" mosquitto recv_per_cpu_s)" "$(value "$2" mosquitto recv_per_cpu_s)") |"
        done
        echo
        echo "TLS: $(grep -m1 -oE '^at .* tls=[^ ]+|^bt .* tls=[^ ]+' "$RAW" | grep -oE 'tls=[^ ]+' | cut -d= -f2), one RSA 2048 server certificate for every broker, verified by solbench (--cafile, --tls-name localhost)."
    fi
    if grep -q '^p ' "$RAW"; then
        echo
        echo "(p) durability: 1->1 QoS 1, 64 B, window 100, open loop, the subscriber a persistent session (clean session 0); Sol's PUBACK waits for the fsync in sync mode:"
        echo
        echo "| Broker | msgs/s received | / Mosquitto without persistence | / Mosquitto with persistence | broker CPU% (solbench) |"
        echo "|---|---:|---:|---:|---|"
        mn=$(value p mosquitto recv_rate)
        mp=$(value p mosquitto-persistence recv_rate)
        for v in sol-sync sol-async sol-none mosquitto-persistence mosquitto; do
            [ "$(all_runs p "$v")" -gt 0 ] || continue
            x=$(value p "$v" recv_rate)
            case $v in
            sol-*) lab="Sol --durability ${v#sol-}" ;;
            mosquitto-persistence) lab="Mosquitto, persistence true (autosave 1800 s)" ;;
            *) lab="Mosquitto, persistence false" ;;
            esac
            echo "| $lab | $(cell p "$v" recv_rate) | $(ratio "$x" "$mn") | $(ratio "$x" "$mp") | $(fmt "$(median p "$v" broker_cpu_pct)") ($(fmt "$(median p "$v" cpu_pct)")) |"
        done
    fi
    if grep -q '^[a-d]_closed ' "$RAW"; then
        echo
        echo "Closed loop (solbench --max-lag 10000: a publisher stays at most 10,000 deliveries ahead of its subscribers), default settings:"
        echo
        header
        for sc in a b c d; do
            grep -q "^${sc}_closed " "$RAW" || continue
            case $sc in
            a) row a_closed "(a) 1->1 QoS 0, closed loop" recv_rate "msgs/s received" "-" ;;
            b) row b_closed "(b) 1->1 QoS 1, window 100, closed loop" recv_rate "msgs/s received" "-" ;;
            c) row c_closed "(c) 10->1 fan-in QoS 0, closed loop" recv_rate "msgs/s received" "-" ;;
            d) row d_closed "(d) 1->50 fan-out QoS 0, closed loop" recv_rate "msgs/s delivered" "-" ;;
            esac
        done
    fi
} >"$TABLE"
{
    echo
    nrep=$(awk '$1 != "strace" && $3 > n { n = $3 } END { print n + 0 }' "$RAW")
    echo "Medians of $nrep run(s); a cell \"LOST n\" sums the messages lost over all runs and fails the result (no ratio). Targets are against Mosquitto (M) and rumqttd (R) and all require 0 lost. $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
    if [ "$REPORT_ONLY" = 0 ]; then
        {
            vers="Sol ${SOL_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)} ($SOL)"
            has "$BROKERS" mosquitto && vers="$vers, $("$MOSQ" -h 2>/dev/null | head -1)"
            has "$BROKERS" rumqttd && vers="$vers, $("$RUMQTTD" --version 2>/dev/null)"
            echo "$vers; (h) $H_TOTAL and (i) $I_TOTAL messages, ${DURATION} s per timed run; machine load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
            echo "Broker settings (defaults; only the listener is set): $SETTINGS."
            [ -n "$SOL_EXTRA" ] && echo "Note: Sol ran with$SOL_EXTRA: this build's defaults start those listeners."
            [ -n "$IDLE_NOTE" ] && echo "Note: $IDLE_NOTE."
            for n in "${NOTES[@]}"; do echo "Note: $n."; done
        } >"$OUT/meta.txt"
    fi
    cat "$OUT/meta.txt" 2>/dev/null
    echo "Raw RESULT lines: $RAW"
} >>"$TABLE"
cat "$TABLE"
