"""Back-pressure across the cluster (issue 9, docs/cluster.md "Back-pressure across nodes").

A subscriber on one node that is behind slows the publishers on another instead of losing their
messages: the receiving node stops reading the publisher node's link, TCP pushes back, the publisher
node's queue for that peer passes its high watermark and the local publisher connection is paused.
A killed peer releases the publishers within about the failure-detection time, and what was queued
for it is counted as dropped with reason peer_gone.

Clients are solbench (open loop: --max-lag 0, publishers never wait for subscribers) and raw sockets;
every wait is for an event (a metric value, a count of bytes), never a fixed sleep.
"""
import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import CLIENT_ADDR, REPO, wait_until
from routing_helpers import metric_samples, wait_routes

SOLBENCH = os.path.join(REPO, "build", "solbench")
# Watermarks of a peer's queue are 8 x --backlog-high / --backlog-low: 2 MiB / 512 KiB here, so a
# few hundred thousand messages pass them on a 2-core machine whatever the relative speed of nodes.
SMALL_BACKLOG = ("--backlog-high", "262144", "--backlog-low", "65536")
TINY_BACKLOG = ("--backlog-high", "65536", "--backlog-low", "16384")


def metric(node, name, labels=""):
    return metric_samples(node, name).get(labels, 0.0)


def solbench(args, timeout=120):
    """Run solbench; returns (dict of the RESULT line, full output)."""
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip("no solbench at %s" % SOLBENCH)
    out = subprocess.run([SOLBENCH] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=timeout).stdout.decode("utf-8", "replace")
    m = re.search(r"^RESULT (.*)$", out, re.M)
    assert m, "no RESULT line from solbench:\n" + out
    return dict(kv.split("=", 1) for kv in m.group(1).split()), out


# ---- a minimal raw MQTT client (a socket whose receive buffer is set before connecting) ----

def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pkt(first, body):
    return bytes([first]) + _varint(len(body)) + body


def _str(s):
    return struct.pack("!H", len(s)) + s


def publish_pkt(topic, payload):
    return _pkt(0x30, _str(topic) + payload)


class Raw:
    """MQTT 3.1.1 over a plain socket: connect, subscribe QoS 0, send; read_publishes parses PUBLISH
    packets (QoS 0) from whatever is read."""

    def __init__(self, node, client_id, rcvbuf=None, keepalive=60):
        self.s = socket.socket()
        if rcvbuf:  # before connect, so the window the broker sees is small from the start
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.bind((CLIENT_ADDR, 0))
        self.s.settimeout(10)
        self.s.connect((node.addr, node.mqtt_port))
        self.buf, self.pos = b"", 0
        self.s.sendall(_pkt(0x10, _str(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive)
                            + _str(client_id.encode())))
        first, _ = self._packet()
        assert first == 0x20, "no CONNACK"

    def _fill(self, n=65536):
        data = self.s.recv(n)
        if not data:
            raise ConnectionError("broker closed the connection")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def _packet(self):
        while True:
            buf, p = self.buf, self.pos
            if len(buf) - p >= 2:
                mult, length, i, done = 1, 0, p + 1, False
                while i < len(buf) and i < p + 5:
                    b = buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        done = True
                        break
                if done and len(buf) >= i + length:
                    self.pos = i + length
                    return buf[p], buf[i:i + length]
            self._fill()

    def subscribe(self, topic):
        self.s.sendall(_pkt(0x82, struct.pack("!H", 1) + _str(topic) + b"\x00"))
        first, body = self._packet()
        assert first == 0x90 and body[-1] == 0, "no SUBACK"

    def read_publish(self):
        """(topic, payload) of the next PUBLISH."""
        while True:
            first, body = self._packet()
            if first >> 4 == 3:
                tlen = struct.unpack("!H", body[:2])[0]
                return body[2:2 + tlen], body[2 + tlen:]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Flooder(threading.Thread):
    """Publishes QoS 0 PUBLISHes numbered from 0 on one raw connection as fast as the broker takes
    them (a blocking socket: when the broker stops reading, sendall blocks), until count or stop()."""

    def __init__(self, node, topic, payload_size, count=None, batch=64):
        super().__init__(daemon=True)
        self.c = Raw(node, "flood-%s" % topic.decode().replace("/", "-"))
        self.c.s.settimeout(None)
        self.topic, self.size, self.count, self.batch = topic, payload_size, count, batch
        self.sent = 0
        self.error = None
        self._halt = threading.Event()

    def run(self):
        pad = b"x" * (self.size - 8)
        try:
            while not self._halt.is_set() and (self.count is None or self.sent < self.count):
                n = self.batch if self.count is None else min(self.batch, self.count - self.sent)
                data = b"".join(publish_pkt(self.topic, struct.pack("!Q", self.sent + i) + pad)
                                for i in range(n))
                self.c.s.sendall(data)
                self.sent += n
        except OSError as e:
            if not self._halt.is_set():
                self.error = e

    def stop(self):
        self._halt.set()
        self.c.close()
        self.join(timeout=10)


class Reader(threading.Thread):
    """Reads PUBLISHes from a raw subscriber, checking their numbers are 0, 1, 2, ... (nothing lost,
    nothing out of order); optionally slowly (chunk bytes per `delay` seconds)."""

    def __init__(self, raw, chunk=None, delay=0.0):
        super().__init__(daemon=True)
        self.raw, self.chunk, self.delay = raw, chunk, delay
        self.raw.s.settimeout(60)
        self.count = 0
        self.error = None
        self._halt = threading.Event()

    def run(self):
        if self.chunk:
            self.raw._fill = self._slow_fill
        try:
            while not self._halt.is_set():
                _, payload = self.raw.read_publish()
                seq = struct.unpack("!Q", payload[:8])[0]
                if seq != self.count:
                    self.error = "expected message %d, got %d" % (self.count, seq)
                    return
                self.count += 1
        except (OSError, ConnectionError) as e:
            if not self._halt.is_set():
                self.error = repr(e)

    def _slow_fill(self, n=65536):
        time.sleep(self.delay)  # the scenario: a subscriber that reads slowly
        data = self.raw.s.recv(self.chunk)
        if not data:
            raise ConnectionError("broker closed the connection")
        self.raw.buf = self.raw.buf[self.raw.pos:] + data
        self.raw.pos = 0

    def stop(self):
        self._halt.set()
        self.raw.close()
        self.join(timeout=10)


def sub_ready(node_pub, count=1):
    """The publishing node knows the subscriber's route."""
    return lambda: metric(node_pub, "sol_routes") >= count


# ---- (a) open loop through the cluster: nothing lost, nothing out of order ----

@pytest.mark.parametrize("qos", [1, 0])
def test_open_loop_publishers_slowed_across_nodes_lose_nothing(cluster, qos):
    """10 publishers on n1, one subscriber on n2, open loop (publishers never wait for the
    subscriber), 300,000 messages: every message arrives, in order per publisher, and the path was
    under back-pressure at least once: n1 paused its publishers for the peer, or n2 paused n1's link
    for the subscriber (without back-pressure across nodes n2 drops QoS 0 past the subscriber's
    high watermark, and nobody pauses). The watermarks are a quarter of SMALL_BACKLOG's so that a
    subscriber which nearly keeps up still crosses them: the run must exercise the path."""
    n1, n2, n3 = cluster.start_nodes(3, extra_args=TINY_BACKLOG)
    wait_until(lambda: cluster.converged(), 10, "membership converged")
    args = ["--host", n1.addr, "--port", str(n1.mqtt_port), "--sub-host", n2.addr,
            "--sub-port", str(n2.mqtt_port), "--pubs", "10", "--subs", "1", "--qos", str(qos),
            "--window", "100", "--count", "30000", "--size", "128", "--max-lag", "0",
            "--drain-timeout", "60", "--drain-idle", "5", "--check", "--quiet"]
    res, out = solbench(args, timeout=180)
    assert res["errors"] == "0", out
    assert int(res["sent"]) == 300000, out
    assert int(res["lost"]) == 0 and int(res["dup"]) == 0, out
    assert int(res["ooo"]) == 0, out
    pauses = metric(n1, "sol_publisher_pauses_total")
    link_pauses = metric(n2, "sol_publisher_pauses_total")
    assert pauses + link_pauses > 0, \
        "neither n1 (publishers) nor n2 (n1's link) ever paused: back-pressure was not exercised"
    for n in (n1, n2):
        drops = metric_samples(n, "sol_messages_dropped_total")
        assert sum(drops.values()) == 0, (n.name, drops)
        assert metric(n, "sol_cluster_send_dropped_total") == 0
    cluster.figure("back-pressure: 300k msgs QoS %d, 10 pubs n1 -> sub n2, open loop: n1 pauses"
                   % qos, pauses, "pauses")


# ---- (b) a slow subscriber on another node slows a QoS 0 publisher ----

def test_slow_remote_subscriber_slows_qos0_publisher_instead_of_losing(cluster):
    """A raw subscriber on n2 with a 16 KiB receive buffer that reads at most 32 KiB every 5 ms
    (a few MB/s), a QoS 0 publisher on n1 flooding 24 MiB, sessions capped at 8 MiB: the subscriber
    gets every message in order, nothing is dropped on either node, no session stalls, and the
    publisher was paused on n1 (its link to n2 full). Without back-pressure across nodes n2 cannot
    slow n1: the session passes its cap, stalls, and its QoS 0 messages are dropped."""
    cap = ("--session-max-bytes", str(8 * 1024 * 1024))
    n1, n2 = cluster.start_nodes(2, extra_args=SMALL_BACKLOG + cap)
    wait_until(lambda: cluster.converged(), 10, "membership converged")
    sub = Raw(n2, "slow-sub", rcvbuf=16384)
    sub.subscribe(b"bp/slow")
    wait_routes(cluster, n1, 1)
    reader = Reader(sub, chunk=32768, delay=0.005)
    reader.start()
    total = 24000
    pub = Flooder(n1, b"bp/slow", 1024, count=total)
    pub.start()
    try:
        wait_until(lambda: reader.count >= total or reader.error or not reader.is_alive(), 120,
                   "the slow subscriber to receive %d messages" % total, interval=0.1)
        assert reader.error is None, reader.error
        assert reader.count == total
        assert pub.error is None, pub.error
        assert metric(n1, "sol_publisher_pauses_total") > 0, "the publisher on n1 was never paused"
        assert metric(n2, "sol_subscribers_stalled_total") == 0
        for n in (n1, n2):
            drops = metric_samples(n, "sol_messages_dropped_total")
            assert sum(drops.values()) == 0, (n.name, drops)
    finally:
        pub.stop()
        reader.stop()


# ---- (c) a killed peer releases the publishers ----

def test_killed_peer_releases_paused_publisher(cluster):
    """n1's publisher is paused because n2's subscriber does not read (stall timeouts long, so only
    the failure detector can end it); SIGKILL n2: n1 declares it dead, releases the publisher, which
    goes on publishing to a subscriber on n1; what was queued for n2 is counted as peer_gone."""
    slow = ("--stall-timeout-ms", "60000")
    n1, n2, n3 = cluster.start_nodes(3, extra_args=SMALL_BACKLOG + slow)
    wait_until(lambda: cluster.converged(), 10, "membership converged")
    stuck = Raw(n2, "stuck-sub", rcvbuf=4096)
    stuck.subscribe(b"bp/kill")  # never read from again
    local = Raw(n1, "local-sub")
    local.subscribe(b"bp/kill")
    wait_routes(cluster, n1, 1)
    reader = Reader(local)
    reader.start()
    pub = Flooder(n1, b"bp/kill", 512)
    pub.start()
    try:
        # Paused at the high watermark (2 MiB); it stays paused until the queue is under the low
        # one (512 KiB), and n2 (its link paused, reading on up to 2 MiB) takes a little meanwhile.
        wait_until(lambda: metric(n1, "sol_publishers_paused") >= 1 and
                   metric(n1, "sol_cluster_peer_queue_bytes", 'peer="n2"') > 512 * 1024, 30,
                   "n1 to pause the publisher for n2's full queue", interval=0.05)

        def taken():  # PUBLISHes n1 has read from its clients
            return metric(n1, "sol_messages_received_total")

        # Held for n2, not only for the local subscriber (which drains and releases it at once):
        # n1 takes nothing more from the publisher between two looks.
        last = [taken()]

        def held():
            now = taken()
            same, last[0] = now == last[0], now
            return same and metric(n1, "sol_publishers_paused") >= 1

        wait_until(held, 10, "the publisher on n1 to be held for n2", interval=0.3)
        before = taken()
        assert reader.error is None, reader.error
        t0 = time.monotonic()
        n2.kill()
        wait_until(lambda: taken() > before + 1000, 15,
                   "the publisher on n1 to resume after n2 was killed", interval=0.02)
        released = time.monotonic() - t0
        # The release may come from the broken link (its queue dropped) a moment before the
        # failure detector's verdict; the verdict must follow.
        wait_until(lambda: cluster.sees(n1, "n2", "dead"), 10, "n1 to declare n2 dead")
        assert reader.error is None, reader.error
        wait_until(lambda: metric(n1, "sol_messages_dropped_total", 'reason="peer_gone"') > 0, 5,
                   "drops for n2 counted as peer_gone")
        assert metric(n1, "sol_cluster_peer_queue_bytes", 'peer="n2"') == 0
        # It keeps publishing to the local subscriber.
        now = reader.count
        wait_until(lambda: reader.count > now + 10000, 15, "the local subscriber to keep receiving",
                   interval=0.02)
        assert released < 6, "publisher released %.1f s after the kill" % released
        cluster.figure("back-pressure: publisher released after its peer was killed", released)
    finally:
        pub.stop()
        reader.stop()
        stuck.close()
