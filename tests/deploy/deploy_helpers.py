"""Helpers for the deploy tests: Sol processes on 127.0.0.x, their HTTP endpoint, MQTT clients, polling.

Every wait polls with a deadline; nothing sleeps a fixed time to "let things settle".
"""

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import tempfile
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sol_bin():
    """Path of the broker under test: $SOL_BIN, else build/sol; fails (not skips) when it is missing."""
    path = os.environ.get("SOL_BIN") or os.path.join(REPO, "build", "sol")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"broker binary {path} is missing: run `make build` first")
    return path


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Call pred() until it returns a truthy value (returned) or timeout seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except Exception as exc:  # an endpoint not up yet counts as "not yet"
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port that is free right now on host, for TCP (default) or UDP."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _free_both(host, port):
    """True if port is free for both TCP and UDP on host (bound then released)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM
        ) as u:
            t.bind((host, port))
            u.bind((host, port))
        return True
    except OSError:
        return False


def free_port_both(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (the cluster port serves both)."""
    for _ in range(100):
        port = random.randint(20000, 60000)
        if _free_both(host, port):
            return port
    raise RuntimeError("no free TCP+UDP port")


def port_free_on(addrs):
    """A port free for TCP and UDP on every address in addrs (nodes that share one port number)."""
    for _ in range(100):
        port = free_port_both(addrs[0])
        if all(_free_both(a, port) for a in addrs):
            return port
    raise RuntimeError(f"no port free on all of {addrs}")


def pids_gone(pids):
    """True when none of pids is a live process (zombies count as gone)."""
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return False
        except OSError:
            continue
    return True


def http_get(host, port, path, timeout=2.0):
    """GET http://host:port/path; returns (status, body text). Raises OSError when nothing answers."""
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def cluster_states(host, port):
    """The node's view from /cluster as {name: state}, plus its self name."""
    status, body = http_get(host, port, "/cluster")
    if status != 200:
        raise AssertionError(f"/cluster answered {status}: {body[:200]}")
    doc = json.loads(body)
    return doc["self"], {m["name"]: m["state"] for m in doc["members"]}


def view_is(host, port, expected):
    """True when the node's /cluster shows every name in expected with that state; else AssertionError
    naming what it shows (so a timed-out wait_for reports the last view)."""
    _, states = cluster_states(host, port)
    if all(states.get(n) == s for n, s in expected.items()):
        return True
    raise AssertionError(f"{host}:{port} sees {states}")


class Node:
    """One sol process on a 127.0.0.x address, its log in a file under tmpdir."""

    def __init__(self, name, host, port, cluster_port, http_port, seeds, tmpdir, extra=(), netns=None):
        self.name, self.host, self.port = name, host, port
        self.cluster_port, self.http_port, self.seeds = cluster_port, http_port, seeds
        self.log_path = os.path.join(str(tmpdir), f"{name}.log")
        self.args = [
            sol_bin(),
            "--bind", host,
            "--port", str(port),
            "--node-name", name,
            "--cluster-bind", host,
            "--cluster-port", str(cluster_port),
            "--seeds", seeds,
            "--http-port", str(http_port),
            *extra,
        ]
        if netns:
            self.args = ["ip", "netns", "exec", netns, *self.args]
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
        if "--data-dir" not in self.args:  # each process its own store, never a shared ./data
            env["SOL_DATA_DIR"] = tempfile.mkdtemp(prefix="sol-deploy-")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.log.close()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Collector:
    """A paho subscriber that records (topic, payload, retain) of every message it receives."""

    def __init__(self, host, port, client_id, topics, clean_session=True, qos=1):
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.topics = topics
        self.qos = qos
        self.c = mqtt.Client(client_id=client_id, clean_session=clean_session)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_disconnect = lambda c, u, rc: self.disconnected.set()
        self.suback = threading.Event()
        self.c.on_subscribe = lambda c, u, mid, q: self.suback.set()
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise AssertionError(f"subscriber {client_id} could not connect to {host}:{port}")
        if not self.suback.wait(10):
            raise AssertionError(f"subscriber {client_id} got no SUBACK from {host}:{port}")

    def _on_connect(self, c, userdata, flags, rc):
        if rc == 0:
            c.subscribe([(t, self.qos) for t in self.topics])
            self.connected.set()

    def _on_message(self, c, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def payloads(self, topic=None):
        with self.lock:
            return [p for t, p, _ in self.messages if topic is None or t == topic]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def publish_once(host, port, topic, payload, qos=1, retain=False, timeout=10):
    """Connect, publish one message, wait for its PUBACK (QoS 1), disconnect."""
    c = mqtt.Client(client_id=f"pub-{os.getpid()}-{random.randrange(1 << 30)}", clean_session=True)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError(f"publish to {host}:{port} {topic} was not acknowledged")
    finally:
        c.disconnect()
        c.loop_stop()
