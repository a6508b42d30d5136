#!/usr/bin/env python3
"""Which --shared-policy should be the default: one Sol per policy, a shared group of three QoS 1
members of which one is slow (it takes SLOW_MS per message before acknowledging), one publisher
sending N QoS 1 messages as fast as its window allows. Reports, per policy, the time until every
message arrived, how many each member got, and that none was lost or duplicated.

    python3 bench/shared_policy.py --sol build/sol [--messages 3000] [--slow-ms 2] [--runs 3]

Prints one RESULT line per run and a median summary per policy.
"""
import argparse
import collections
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

POLICIES = ["round_robin", "random", "local_first", "hash_clientid"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("broker did not start")


def member(port, cid, slow_s, got, lock, ready):
    c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311)

    def on_message(cl, u, m):
        if slow_s:
            time.sleep(slow_s)  # paho acknowledges after the callback returns
        with lock:
            got[cid].append(m.payload)

    c.on_message = on_message
    c.on_subscribe = lambda cl, u, mid, q: ready.set()
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    c.subscribe("$share/bench/jobs/#", 1)
    return c


def run(sol, policy, n, slow_ms):
    port = free_port()
    proc = subprocess.Popen([sol, "--bind", "127.0.0.1", "--port", str(port), "--shared-policy",
                             policy, "--data-dir", tempfile.mkdtemp(prefix="sol-share-")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        got, lock = collections.defaultdict(list), threading.Lock()
        members = []
        for i, slow in enumerate((0, 0, slow_ms / 1000.0)):
            ready = threading.Event()
            members.append(member(port, "m%d%s" % (i, "-slow" if slow else ""), slow, got, lock,
                                  ready))
            assert ready.wait(5)
        pub = mqtt.Client(client_id="pub", protocol=mqtt.MQTTv311)
        pub.max_inflight_messages_set(100)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        t0 = time.monotonic()
        for k in range(n):
            pub.publish("jobs/%d" % (k % 10), b"%d" % k, qos=1)
        deadline = t0 + 120
        while time.monotonic() < deadline:
            with lock:
                total = sum(len(v) for v in got.values())
            if total >= n:
                break
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        with lock:
            all_p = [p for v in got.values() for p in v]
            per = {k: len(v) for k, v in sorted(got.items())}
        for c in members + [pub]:
            c.disconnect()
            c.loop_stop()
        lost = n - len(set(all_p))
        dup = len(all_p) - len(set(all_p))
        return elapsed, per, lost, dup
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sol", default="build/sol")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--slow-ms", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    times = collections.defaultdict(list)
    slow_share = collections.defaultdict(list)
    for r in range(a.runs):
        for policy in POLICIES:  # alternating, so machine noise hits every policy alike
            elapsed, per, lost, dup = run(a.sol, policy, a.messages, a.slow_ms)
            slow = sum(v for k, v in per.items() if k.endswith("-slow"))
            print("RESULT policy=%s run=%d seconds=%.3f per_member=%s slow_member=%d lost=%d "
                  "dup=%d" % (policy, r + 1, elapsed, per, slow, lost, dup), flush=True)
            if lost == 0 and dup == 0:
                times[policy].append(elapsed)
                slow_share[policy].append(slow / a.messages)
    for policy in POLICIES:
        if times[policy]:
            print("SUMMARY policy=%s median_seconds=%.3f msgs_per_s=%.0f slow_member_share=%.3f "
                  "runs_ok=%d" % (policy, statistics.median(times[policy]),
                                  a.messages / statistics.median(times[policy]),
                                  statistics.median(slow_share[policy]), len(times[policy])))
        else:
            print("SUMMARY policy=%s no run without loss" % policy)


if __name__ == "__main__":
    main()
