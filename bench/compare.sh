#!/usr/bin/env bash
# compare.sh - Sol against Mosquitto on this machine, in the same run: every scenario against both
# brokers, alternating which goes first, REPS times; prints the medians and the Sol/Mosquitto ratios
# as a Markdown table and writes it (with every raw RESULT line) to the results directory.
#
# Usage: bench/compare.sh [--quick] [--scenarios a,b,c,d,e,f,g] [--reps N] [--duration SEC]
#                         [--brokers sol,mosquitto] [--out DIR] [--no-strace] [--report DIR]
#   (a) 1->1 QoS 0 64 B        (b) 1->1 QoS 1 64 B          (c) 10->1 fan-in QoS 0
#   (d) 1->50 fan-out QoS 0    (e) latency at 10,000 msg/s   (f) idle connections: 5,000 and 100,000
#   (g) 3-node Sol cluster, publisher on node 1, subscriber on node 2 (vs (a) on one node)
# plus syscalls per message at load (strace -c on the broker during an extra run of (a)).
# Everything listens on 127.0.0.x; every process started here is stopped on exit.
# --report DIR rebuilds DIR/results.md from DIR/raw.txt of an earlier run without running anything.
# Environment: SOL_BIN, SOLBENCH, MOSQUITTO (binaries), BUILD (default build/), SOL_REV (label).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SOL=${SOL_BIN:-$BUILD/sol}
BENCH=${SOLBENCH:-$BUILD/solbench}
MOSQ=${MOSQUITTO:-/usr/sbin/mosquitto}
SCENARIOS=a,b,c,d,e,f,g
REPS=3
DURATION=10
QUICK=0
STRACE=1
BROKERS=sol,mosquitto
OUT=""
REPORT_ONLY=0
IDLE_SMALL=5000
IDLE_LARGE=100000

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1; REPS=1; DURATION=3 ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --brokers) BROKERS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-strace) STRACE=0 ;;
    --report) REPORT_ONLY=1; OUT=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
elif [ ! -f "$OUT/raw.txt" ]; then
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

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- brokers -------------------------------------------------------------------------------------
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

BROKER_PID=""
start_mosquitto() { # port
    local conf="$WORK/mosquitto-$1.conf"
    cat >"$conf" <<EOF
listener $1 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
max_inflight_messages 20
max_queued_messages 1000000
max_keepalive 65535
log_dest none
EOF
    "$MOSQ" -c "$conf" >"$WORK/mosquitto-$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_port 127.0.0.1 "$1"
}

# Flags this build of sol knows (older builds may lack the cluster ones).
sol_flag() { "$SOL" --help 2>&1 | grep -q -- "$1"; }

sol_common_args() {
    local a="--max-queued 1000000 --max-inflight 20 --max-connections 0 --log-level warn"
    sol_flag --http-port && a="$a --http-port 0"
    echo "$a"
}

start_sol() { # port
    local extra=""
    sol_flag --cluster-port && extra="--cluster-port 0"
    # shellcheck disable=SC2046
    "$SOL" --bind 127.0.0.1 --port "$1" $(sol_common_args) $extra >"$WORK/sol-$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_port 127.0.0.1 "$1"
}

CLUSTER_PIDS=()
start_sol_cluster() { # mqtt port, cluster port
    local seeds="127.0.0.1:$2,127.0.0.2:$2,127.0.0.3:$2" i
    CLUSTER_PIDS=()
    for i in 1 2 3; do
        # shellcheck disable=SC2046
        "$SOL" --bind "127.0.0.$i" --port "$1" --node-name "bench$i" --cluster-port "$2" \
            --seeds "$seeds" $(sol_common_args) >"$WORK/sol-cluster-$i.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        PIDS+=($!)
    done
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
scenario_args() {
    case "$1" in
    a) echo "--pubs 1 --subs 1 --qos 0 --size 64" ;;
    b) echo "--pubs 1 --subs 1 --qos 1 --size 64 --window 100" ;;
    c) echo "--pubs 10 --subs 1 --qos 0 --size 64 --sub wildcard" ;;
    d) echo "--pubs 1 --subs 50 --qos 0 --size 64" ;;
    e) echo "--pubs 1 --subs 1 --qos 0 --size 64 --rate 10000" ;;
    esac
}

# Run solbench against a broker pid; append "scenario broker rep RESULT-fields broker_cpu=..." to RAW.
run_bench() { # scenario broker rep broker_pid args...
    local sc=$1 br=$2 rep=$3 pid=$4
    shift 4
    local t0 c0 t1 c1 line d0 d1
    t0=$(now_s)
    c0=$(cpu_ticks "$pid")
    [ -n "${PID2:-}" ] && d0=$(cpu_ticks "$PID2")
    line=$(timeout $((DURATION + 90)) "$BENCH" --quiet "$@" | grep '^RESULT' || true)
    c1=$(cpu_ticks "$pid")
    [ -n "${PID2:-}" ] && d1=$(cpu_ticks "$PID2")
    t1=$(now_s)
    [ -n "$line" ] || line="RESULT errors=1"
    local bcpu extra=""
    pct() { awk -v c0="$1" -v c1="$2" -v t0="$t0" -v t1="$t1" -v hz="$HZ" \
        'BEGIN { printf "%.1f", 100 * (c1 - c0) / hz / (t1 - t0) }'; }
    bcpu=$(pct "$c0" "$c1")
    [ -n "${PID2:-}" ] && extra=" broker2_cpu_pct=$(pct "$d0" "$d1")"
    echo "$sc $br $rep ${line#RESULT } broker_cpu_pct=$bcpu$extra" >>"$RAW"
    log "  $sc $br #$rep: $(echo "$line" | grep -oE '(recv_rate|lost|dup|p50_us|p99_us|cpu_pct|errors)=[^ ]+' | tr '\n' ' ')broker_cpu=$bcpu%"
}

# A broker that died during a run fails that run (its numbers are kept out of the medians).
broker_check() { # scenario broker rep pid
    if ! kill -0 "$4" 2>/dev/null; then
        log "  $2 DIED during $1 #$3 (log: $OUT/$2-died-$1-$3.log)"
        cat "$WORK"/"$2"*.log >"$OUT/$2-died-$1-$3.log" 2>/dev/null
        echo "$1 $2 $3 errors=1 broker_died=1" >>"$RAW"
    fi
}

run_throughput() { # scenario broker rep
    local port
    port=$(free_port)
    "start_$2" "$port" || { log "  $2 did not start"; echo "$1 $2 $3 errors=1" >>"$RAW"; return; }
    # shellcheck disable=SC2046
    run_bench "$1" "$2" "$3" "$BROKER_PID" --port "$port" --duration "$DURATION" $(scenario_args "$1")
    broker_check "$1" "$2" "$3" "$BROKER_PID"
    stop_pid "$BROKER_PID"
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
    timeout 600 "$BENCH" --port "$port" --pubs 0 --subs 0 --idle "$k" --src-addrs "$srcs" \
        --max-pending 64 --hold 3600 --connect-timeout 300 --keepalive 600 >"$out" 2>&1 &
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

run_cluster() { # rep
    local port cport
    port=$(free_port)
    cport=$(free_port)
    if ! start_sol_cluster "$port" "$cport"; then
        log "  cluster did not start"
        echo "g sol $1 errors=1" >>"$RAW"
    else
        # shellcheck disable=SC2046
        PID2=${CLUSTER_PIDS[1]} run_bench g sol "$1" "${CLUSTER_PIDS[0]}" --host 127.0.0.1 --port "$port" \
            --sub-host 127.0.0.2 --sub-port "$port" --sync-timeout 30 --duration "$DURATION" \
            $(scenario_args a)
    fi
    local p
    for p in "${CLUSTER_PIDS[@]}"; do broker_check g sol "$1" "$p"; done
    for p in "${CLUSTER_PIDS[@]}"; do stop_pid "$p"; done
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
    line=$(timeout 120 "$BENCH" --quiet --port "$port" --duration 5 $(scenario_args a) | grep '^RESULT')
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
[ "$REPORT_ONLY" = 1 ] || log "results in $OUT; scenarios $SCENARIOS; $REPS repetition(s); ${DURATION}s per throughput run"
for rep in $(seq 1 "$REPS"); do
    # Alternate which broker goes first, so drift in machine load hits both alike.
    order=("${BLIST[@]}")
    if [ $((rep % 2)) -eq 0 ] && [ ${#BLIST[@]} -eq 2 ]; then order=("${BLIST[1]}" "${BLIST[0]}"); fi
    for sc in a b c d e; do
        has "$SCENARIOS" "$sc" || continue
        for br in "${order[@]}"; do run_throughput "$sc" "$br" "$rep"; done
    done
    if has "$SCENARIOS" f; then
        for br in "${order[@]}"; do run_idle f5k "$IDLE_SMALL" "$br" "$rep"; done
        for br in "${order[@]}"; do run_idle f100k "$IDLE_LARGE" "$br" "$rep"; done
    fi
    if has "$SCENARIOS" g && has "$BROKERS" sol; then run_cluster "$rep"; fi
done
if [ "$REPORT_ONLY" = 0 ] && [ "$STRACE" = 1 ] && has "$SCENARIOS" a && command -v strace >/dev/null; then
    for br in "${BLIST[@]}"; do run_strace "$br"; done
fi

# ---- report ----------------------------------------------------------------------------------------
# median SCENARIO BROKER KEY: median over repetitions of KEY=value in RAW ("-" if none).
median() {
    awk -v s="$1" -v b="$2" -v k="$3" '
        $1 == s && $2 == b && !/ errors=[1-9]/ { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) v[n++] = kv[2] + 0 } }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            print m
        }' "$RAW"
}
sumk() { awk -v s="$1" -v b="$2" -v k="$3" '$1 == s && $2 == b && !/ errors=[1-9]/ { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) t += kv[2] } } END { print t + 0 }' "$RAW"; }
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) { print "-"; exit }
        r = a / b
        printf (r >= 10 ? "%.1fx" : r >= 0.1 ? "%.2fx" : "%.4fx"), r
    }'
}
fmt() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else if (v >= 1000) printf "%\047.0f", v; else printf "%.1f", v }'; }
failed_runs() { awk -v s="$1" -v b="$2" '$1 == s && $2 == b && / errors=[1-9]/ && !seen[$3]++ { n++ } END { print n + 0 }' "$RAW"; }
lossdup() { # scenario broker: lost/dup summed over all runs, and how many runs failed
    local f
    f=$(failed_runs "$1" "$2")
    if [ "$(median "$1" "$2" recv)" = "-" ]; then
        [ "$f" -gt 0 ] && echo "$f run(s) FAILED" || echo "-"
        return
    fi
    echo "$(sumk "$1" "$2" lost)/$(sumk "$1" "$2" dup)$([ "$f" -gt 0 ] && echo ", $f run(s) FAILED")"
}

TABLE="$OUT/results.md"
{
    echo "| Scenario | Metric | Sol | Mosquitto | Sol/Mosquitto | Target | lost/dup Sol | lost/dup Mosq | CPU% Sol / Mosq (solbench) |"
    echo "|---|---|---:|---:|---:|---|---|---|---|"
    row() { # scenario name metric-key label target
        local s m r
        s=$(median "$1" sol "$3")
        m=$(median "$1" mosquitto "$3")
        r=$(ratio "$s" "$m")
        echo "| $2 | $4 | $(fmt "$s") | $(fmt "$m") | $r | $5 | $(lossdup "$1" sol) | $(lossdup "$1" mosquitto) | $(fmt "$(median "$1" sol broker_cpu_pct)") / $(fmt "$(median "$1" mosquitto broker_cpu_pct)") ($(fmt "$(median "$1" sol cpu_pct)") / $(fmt "$(median "$1" mosquitto cpu_pct)")) |"
    }
    has "$SCENARIOS" a && row a "(a) 1->1 QoS 0, 64 B" recv_rate "msgs/s received" ">= 2.5x"
    has "$SCENARIOS" b && row b "(b) 1->1 QoS 1, 64 B" recv_rate "msgs/s received" ">= 1.5x"
    has "$SCENARIOS" c && row c "(c) 10->1 fan-in QoS 0" recv_rate "msgs/s received" ">= 2.5x"
    has "$SCENARIOS" d && row d "(d) 1->50 fan-out QoS 0" recv_rate "msgs/s delivered" ">= 2.5x"
    if has "$SCENARIOS" e; then
        row e "(e) 10,000 msg/s QoS 0" p50_us "latency p50 (us)" "-"
        row e "(e) 10,000 msg/s QoS 0" p99_us "latency p99 (us)" "<= 1.0x"
    fi
    if has "$SCENARIOS" f; then
        for lab in f5k f100k; do
            k=$(median $lab sol idle_wanted)
            [ "$k" = "-" ] && k=$(median $lab mosquitto idle_wanted)
            s=$(median $lab sol bytes_per_conn)
            m=$(median $lab mosquitto bytes_per_conn)
            echo "| (f) $k idle connections | broker RSS bytes/conn | $(fmt "$s") | $(fmt "$m") | $(ratio "$s" "$m") | <= 1.0x | held $(median $lab sol idle_ok) | held $(median $lab mosquitto idle_ok) | |"
        done
    fi
    if has "$SCENARIOS" g && has "$BROKERS" sol; then
        g=$(median g sol recv_rate)
        a=$(median a sol recv_rate)
        echo "| (g) 3-node cluster, pub node 1 -> sub node 2 | msgs/s received | $(fmt "$g") | (Sol (a): $(fmt "$a")) | $(ratio "$g" "$a") of (a) | >= 0.5x of (a) | $(lossdup g sol) | | $(fmt "$(median g sol broker_cpu_pct)") node 1, $(fmt "$(median g sol broker2_cpu_pct)") node 2 ($(fmt "$(median g sol cpu_pct)")) |"
    fi
    if grep -q '^strace ' "$RAW"; then
        echo "| strace -c during (a) | broker syscalls/msg | $(median strace sol syscalls_per_msg) | $(median strace mosquitto syscalls_per_msg) | $(ratio "$(median strace sol syscalls_per_msg)" "$(median strace mosquitto syscalls_per_msg)") | < 1.0x | | | |"
    fi
} >"$TABLE"
{
    echo
    nrep=$(awk '$1 != "strace" && $3 > n { n = $3 } END { print n + 0 }' "$RAW")
    secs=$(median a sol duration_s)
    [ "$secs" = "-" ] && secs=$(median a mosquitto duration_s)
    echo "Medians of $nrep run(s), about ${secs%.*} s of publishing each; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
    if [ "$REPORT_ONLY" = 0 ]; then
        {
            echo "Sol ${SOL_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)} ($SOL), $("$MOSQ" -h 2>/dev/null | head -1), machine load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
            [ -n "$IDLE_NOTE" ] && echo "Note: $IDLE_NOTE."
        } >"$OUT/meta.txt"
    fi
    cat "$OUT/meta.txt" 2>/dev/null
    echo "Raw RESULT lines: $RAW"
} >>"$TABLE"
cat "$TABLE"
