#!/bin/bash
# local-cluster.sh BIN: a three-node Sol cluster of plain local processes (no Docker), in the foreground.
# Node N (1..3) listens on 127.0.0.N: MQTT 1883, cluster 7946 (UDP gossip + TCP), HTTP 8080, and is
# seeded with all three. Ctrl-C (or SIGTERM) stops every node gracefully and waits for them.
#
#   make cluster          (or: deploy/local-cluster.sh build/sol)
#   mosquitto_sub -h 127.0.0.3 -t 'demo/#' -v &  mosquitto_pub -h 127.0.0.1 -t demo/x -m hello
#   curl -s http://127.0.0.2:8080/cluster
#
# Ports can be moved with SOL_LOCAL_MQTT_PORT, SOL_LOCAL_CLUSTER_PORT, SOL_LOCAL_HTTP_PORT, the address
# prefix with SOL_LOCAL_NET (default 127.0.0), and extra flags for every node appended after BIN.
# Each node keeps its store in ${SOL_DATA_ROOT:-./data}/nodeN.
# 127.0.0.2 and .3 answer without setup on Linux; elsewhere, alias them to the loopback interface first.
set -u

bin=${1:?usage: local-cluster.sh BIN [extra sol flags...]}
shift
net=${SOL_LOCAL_NET:-127.0.0}
mqtt=${SOL_LOCAL_MQTT_PORT:-1883}
cport=${SOL_LOCAL_CLUSTER_PORT:-7946}
hport=${SOL_LOCAL_HTTP_PORT:-8080}
seeds="$net.1:$cport,$net.2:$cport,$net.3:$cport"

pids=()
stop_all() {
    trap - INT TERM
    echo "local-cluster: stopping ${pids[*]}" >&2
    kill -TERM "${pids[@]}" 2>/dev/null
    rc=0
    for p in "${pids[@]}"; do
        wait "$p" || rc=$?
    done
    exit "$rc"
}
trap stop_all INT TERM

for i in 1 2 3; do
    "$bin" --bind "$net.$i" --port "$mqtt" --node-name "node$i" --cluster-bind "$net.$i" \
        --cluster-port "$cport" --seeds "$seeds" --http-port "$hport" \
        --data-dir "${SOL_DATA_ROOT:-./data}/node$i" "$@" &
    pids+=($!)
    echo "local-cluster: node$i pid $! on $net.$i (mqtt $mqtt, cluster $cport, http $hport)" >&2
done

# Wait until one node exits on its own (then stop the others) or a signal arrives.
wait -n "${pids[@]}"
rc=$?
echo "local-cluster: a node exited with status $rc; stopping the others" >&2
kill -TERM "${pids[@]}" 2>/dev/null
wait
exit "$rc"
