#!/usr/bin/env python3
"""Recovery time of the durable store (docs/persistence.md): fill a store with N retained messages
and M persistent sessions (one subscription and one queued QoS 1 message each), stop the broker
with kill -9, start it again on the same --data-dir and report the restore time it logs and the
time until its MQTT port accepts.

    bench/recovery.py --sol build/sol --retained 1000000 --sessions 100000
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import mqttraw  # noqa: E402


def wait_port(port, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("broker exited: %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.005)
    raise SystemExit("broker did not listen")


def start(sol, port, store, log):
    return subprocess.Popen([sol, "--bind", "127.0.0.1", "--port", str(port), "--data-dir", store,
                             "--sys-interval", "0", "--max-connections", "0"],
                            stdout=open(log, "a"), stderr=subprocess.STDOUT)


def fill_retained(port, n):
    c = mqttraw.RawClient("127.0.0.1", port, timeout=120)
    c.connect("filler")
    batch = []
    for i in range(n):
        batch.append(mqttraw.publish_pkt("ret/%d/%d" % (i // 1000, i), b"v" * 64, 0, True))
        if len(batch) == 2000:
            c.sock.sendall(b"".join(batch))
            batch = []
    c.sock.sendall(b"".join(batch))
    c.publish("ret/last", b"x", qos=1, retain=True, pid=1)  # after everything before it
    c.close()


def fill_sessions(port, m):
    for i in range(m):
        c = mqttraw.RawClient("127.0.0.1", port, timeout=30)
        c.connect("sess-%d" % i, clean=False)
        c.subscribe(1, [("q/%d" % i, 1)])
        c.close()
    p = mqttraw.RawClient("127.0.0.1", port, timeout=120)
    p.connect("pub")
    for i in range(m):
        p.publish("q/%d" % i, b"queued", qos=1, pid=1 + i % 60000)
    p.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sol", default="build/sol")
    ap.add_argument("--retained", type=int, default=1000000)
    ap.add_argument("--sessions", type=int, default=100000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sol-recovery-")
    store, log = os.path.join(work, "store"), os.path.join(work, "sol.log")
    port = 18000 + os.getpid() % 1000
    proc = start(a.sol, port, store, log)
    wait_port(port, proc)
    t0 = time.monotonic()
    fill_retained(port, a.retained)
    fill_sessions(port, a.sessions)
    fill_s = time.monotonic() - t0
    proc.kill()
    proc.wait()
    size = sum(os.path.getsize(os.path.join(store, f)) for f in os.listdir(store))
    t0 = time.monotonic()
    proc = start(a.sol, port, store, log)
    wait_port(port, proc)
    ready = time.monotonic() - t0
    proc.kill()
    proc.wait()
    line = [l for l in open(log) if "restored" in l][-1].strip()
    ms = re.search(r"in (\d+) ms", line).group(1)
    print("| retained | sessions | store on disk | filled in | restore (logged) | start to MQTT port open |")
    print("|---:|---:|---:|---:|---:|---:|")
    print("| %d | %d | %.0f MiB | %.1f s | %s ms | %.2f s |" % (a.retained, a.sessions, size / 2**20,
                                                               fill_s, ms, ready))
    print(line)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
