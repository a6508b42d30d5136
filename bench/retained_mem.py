#!/usr/bin/env python3
"""bench/retained_mem.py - memory per retained topic: VmRSS growth of sol per retained value.

One broker (--nodes 1) or a local cluster of --nodes N on loopback addresses (--cluster-bind
127.0.0.x, all seeded with the first), every node at its default settings but --sys-interval 0
(no $SYS updates while measuring). Once the nodes are up (and, clustered, /readyz is 200 on each),
every node's VmRSS is read; then one raw-socket client publishes --topics retained QoS 0 messages
of --payload bytes to the first node ("bench/r/000000" ...), and a PINGREQ answered tells that all
were taken. Clustered, the other nodes receive them through retained replication: the script
waits until each node's sol_retained_messages (/metrics) counts them all. After --settle seconds
VmRSS is read again; per node, (after - before) / topics is the memory one retained topic costs
there (topic, payload, the retained store's trie node, and in a cluster the stamp).

What it does not count: memory freed after the burst but kept by malloc (RSS only grows), which
is why the figure is a little above the sum of the allocations; repeat with --runs to see the
spread. The first node of a cluster stamps what it publishes, the others stamp what they receive:
both hold one stamp per topic.

Usage: bench/retained_mem.py [--sol build/sol] [--nodes 1|3] [--topics 100000] [--payload 64]
                             [--runs 1] [--addr 127.0.0.6] [--settle 3]
Prints one line per node and run: "RESULT nodes=N node=nK rss_before_kib=.. rss_after_kib=..
bytes_per_topic=..". Exit 0, or 2 on a setup error (a node that does not start or receive all).
"""
import argparse
import http.client
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

MQTT_PORT = 21883
CLUSTER_PORT = 27946
HTTP_PORT = 28080


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def remaining_length(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    return struct.pack("!H", len(s)) + s


def connect(host, port, client_id):
    s = socket.create_connection((host, port), timeout=30)
    body = mqtt_str(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + mqtt_str(client_id)
    s.sendall(bytes([0x10]) + remaining_length(len(body)) + body)
    ack = recv_exact(s, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError("CONNACK refused: %r" % ack)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def publish_retained(host, port, topics, payload_len):
    """topics retained QoS 0 PUBLISHes, sent in batches; a PINGRESP then says all were read."""
    s = connect(host, port, b"retained-mem")
    payload = b"x" * payload_len
    batch = bytearray()
    for i in range(topics):
        body = mqtt_str(b"bench/r/%06d" % i) + payload
        batch += bytes([0x31]) + remaining_length(len(body)) + body
        if len(batch) >= 1 << 16:
            s.sendall(batch)
            batch.clear()
    s.sendall(bytes(batch) + b"\xc0\x00")
    if recv_exact(s, 2) != b"\xd0\x00":
        raise RuntimeError("no PINGRESP")
    s.sendall(b"\xe0\x00")
    s.close()


def http_get(host, path):
    c = http.client.HTTPConnection(host, HTTP_PORT, timeout=2)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def retained_count(host):
    _, text = http_get(host, "/metrics")
    for line in text.splitlines():
        if line.startswith("sol_retained_messages "):
            return int(float(line.split()[1]))
    raise RuntimeError("no sol_retained_messages on %s" % host)


def wait_until(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return
        except (OSError, RuntimeError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


def start_nodes(sol, n, addr_prefix, logdir):
    nodes = []
    for k in range(n):
        host = "%s%d" % (addr_prefix, k + 1)
        # the in-memory structures alone: the store's own caches are not what this measures
        args = [sol, "--bind", host, "-p", str(MQTT_PORT), "--sys-interval", "0",
                "--log-level", "warn", "--durability", "none"]
        if n > 1:
            args += ["--node-name", "n%d" % (k + 1), "--cluster-bind", host,
                     "--cluster-port", str(CLUSTER_PORT), "--http-port", str(HTTP_PORT),
                     "--seeds", "%s1:%d" % (addr_prefix, CLUSTER_PORT)]
        log = open(os.path.join(logdir, "n%d.log" % (k + 1)), "w")
        nodes.append((host, subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)))
    for host, proc in nodes:
        wait_until(lambda: proc.poll() is None and socket.create_connection(
            (host, MQTT_PORT), timeout=1).close() is None, 10, "MQTT on " + host)
        if n > 1:
            wait_until(lambda: http_get(host, "/readyz")[0] == 200, 20, "/readyz on " + host)
    return nodes


def stop_nodes(nodes):
    for _, proc in nodes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for _, proc in nodes:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(a, logdir):
    nodes = start_nodes(a.sol, a.nodes, a.addr, logdir)
    try:
        time.sleep(1)
        counts = [retained_count(h) for h, _ in nodes] if a.nodes > 1 else None
        before = [rss_kib(p.pid) for _, p in nodes]
        publish_retained(nodes[0][0], MQTT_PORT, a.topics, a.payload)
        if a.nodes > 1:
            for (h, _), c0 in zip(nodes, counts):
                wait_until(lambda: retained_count(h) >= c0 + a.topics, 60, "retained on " + h)
        time.sleep(a.settle)
        after = [rss_kib(p.pid) for _, p in nodes]
        for k, (b, f) in enumerate(zip(before, after)):
            print("RESULT nodes=%d node=n%d rss_before_kib=%d rss_after_kib=%d "
                  "bytes_per_topic=%.1f" % (a.nodes, k + 1, b, f, (f - b) * 1024.0 / a.topics),
                  flush=True)
    finally:
        stop_nodes(nodes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sol", default="build/sol")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--topics", type=int, default=100000)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--addr", default="127.0.0.6", help="node k binds ADDR<k> (127.0.0.61, ...)")
    ap.add_argument("--settle", type=float, default=3.0)
    a = ap.parse_args()
    logdir = tempfile.mkdtemp(prefix="retained-mem-")
    try:
        for _ in range(a.runs):
            one_run(a, logdir)
    except RuntimeError as e:
        print("error: %s (logs in %s)" % (e, logdir), file=sys.stderr)
        return 2
    shutil.rmtree(logdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
