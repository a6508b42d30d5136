"""Shared subscriptions across the cluster (issue 11, must-show 3): a group with members on all three
nodes gets each message once in total, spread over its members; a member that closes with QoS 1
messages in flight loses none of them (another member gets them)."""
import collections
import socket
import struct
import threading

import paho.mqtt.client as mqtt

from conftest import CLIENT_ADDR, wait_until
from routing_helpers import Client, close_all, metric_samples, routes_known

GROUP = "$share/workers/jobs/#"
N = 10000


class Member:
    """A paho member of the group (MQTT 3.1.1 or 5) that records every payload it gets."""

    def __init__(self, node, client_id, v5=False):
        self.payloads = []
        self.lock = threading.Lock()
        self.subacked = threading.Event()
        self.connected = threading.Event()
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.c.on_message = self._on_message
        if v5:
            self.c.on_connect = lambda c, u, f, rc, p: self.connected.set()
            self.c.on_subscribe = lambda c, u, mid, rc, p: self.subacked.set()
        else:
            self.c.on_connect = lambda c, u, f, rc: self.connected.set()
            self.c.on_subscribe = lambda c, u, mid, q: self.subacked.set()
        self.c.max_inflight_messages_set(100)
        self.c.connect(node.addr, node.mqtt_port, keepalive=30, bind_address=CLIENT_ADDR)
        self.c.loop_start()
        assert self.connected.wait(5)
        self.c.subscribe(GROUP, 1)
        assert self.subacked.wait(5)

    def _on_message(self, c, u, msg):
        with self.lock:
            self.payloads.append(msg.payload)

    def count(self):
        with self.lock:
            return len(self.payloads)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    disconnect = close  # for close_all


class SilentMember:
    """A raw 3.1.1 member that reads its PUBLISHes and never acknowledges them: whatever it holds
    is in flight, and closing it must not lose it."""

    def __init__(self, node, client_id):
        self.s = socket.create_connection((node.addr, node.mqtt_port), timeout=5,
                                          source_address=(CLIENT_ADDR, 0))
        cid = client_id.encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x1e" + struct.pack(">H", len(cid)) + cid
        self.s.sendall(bytes([0x10, len(body)]) + body)
        assert self.s.recv(4)[:2] == b"\x20\x02"
        f = GROUP.encode()
        body = struct.pack(">H", 1) + struct.pack(">H", len(f)) + f + b"\x01"
        self.s.sendall(bytes([0x82, len(body)]) + body)
        self.buf = b""
        self.got = 0
        self.suback = False
        while not self.suback:
            self._read_some()

    def _read_some(self):
        data = self.s.recv(65536)
        assert data, "closed by the broker"
        self.buf += data
        while len(self.buf) >= 2:
            mult, rl, i = 1, 0, 1
            while True:
                if i >= len(self.buf):
                    return
                b = self.buf[i]
                rl += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if len(self.buf) < i + rl:
                return
            kind = self.buf[0] >> 4
            self.buf = self.buf[i + rl:]
            if kind == 9:
                self.suback = True
            elif kind == 3:
                self.got += 1

    def read_until(self, n):
        while self.got < n:
            self._read_some()

    def close(self):
        self.s.close()

    disconnect = close


def _publish_all(cluster, pub_node, start, count):
    pub = Client(pub_node, "share-pub").connect()
    try:
        for k in range(start, start + count):
            pub.publish("jobs/%d" % (k % 7), b"%d" % k, qos=1, wait=(k % 200 == 199))
        pub.publish("jobs/end", b"end", qos=1)  # waits: every earlier PUBLISH was acknowledged
    finally:
        close_all([pub])


def _wait_groups_known(cluster, node, peers):
    wait_until(lambda: routes_known(node) >= peers, 5,
               "%s to know the group on %d peers" % (node.name, peers), interval=0.01)


def test_group_on_three_nodes_gets_each_message_once(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    members = [Member(n1, "w1"), Member(n2, "w2", v5=True), Member(n3, "w3"),
               Member(n3, "w4", v5=True)]
    try:
        _wait_groups_known(cluster, n1, 2)
        _publish_all(cluster, n1, 0, N)
        wait_until(lambda: sum(m.count() for m in members) >= N + 1, 20,
                   "all %d messages to reach the group" % N, interval=0.05)
        got = [p for m in members for p in m.payloads if p != b"end"]
        counts = collections.Counter(got)
        assert len(got) == N, "total %d, want %d" % (len(got), N)
        assert set(counts.values()) == {1}, "duplicates: %s" % [p for p, c in counts.items() if c > 1][:5]
        assert set(got) == {b"%d" % k for k in range(N)}
        per_member = [m.count() for m in members]
        # Spread: every member, on every node, took a real share of them.
        assert min(per_member) >= N // 20, per_member
        cluster.figure("shared group: messages per member (min of 4)", min(per_member), "msgs")
    finally:
        close_all(members)


def test_member_closed_mid_stream_loses_nothing(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    silent = SilentMember(n2, "silent")
    members = [Member(n1, "k1"), Member(n3, "k3", v5=True)]
    try:
        _wait_groups_known(cluster, n1, 2)
        t = threading.Thread(target=_publish_all, args=(cluster, n1, 0, 3000))
        t.start()
        silent.read_until(50)  # it holds at least 50 unacknowledged PUBLISHes
        silent.close()         # mid-stream: they must go to k1 or k3
        t.join(30)
        assert not t.is_alive()
        try:
            wait_until(lambda: len({p for m in members for p in m.payloads}) >= 3001, 20,
                       "every message to reach a live member", interval=0.05)
        except AssertionError:
            drops = {n.name: metric_samples(n, "sol_messages_dropped_total") for n in (n1, n2, n3)}
            raise AssertionError("missing %d; drops per node: %s" % (
                3001 - len({p for m in members for p in m.payloads}), drops))
        got = [p for m in members for p in m.payloads if p != b"end"]
        assert {b"%d" % k for k in range(3000)} <= set(got)
        # Redelivered ones may repeat at QoS 1 only between the closed member and the others;
        # among live members each message came once.
        assert len(got) == len(set(got)), "a live member got a message twice"
        assert silent.got >= 50
    finally:
        close_all(members)
