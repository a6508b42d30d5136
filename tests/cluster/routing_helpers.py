"""Helpers for the routing, retained, takeover and fuzz cluster tests (on top of conftest.py's fixtures).

Client: a paho MQTT client whose calls block until the broker answers (CONNACK, SUBACK, PUBACK), that
timestamps every message it receives, and that waits for messages with a deadline (never fixed sleeps).
"""
import queue
import socket
import threading
import time

import paho.mqtt.client as mqtt

from conftest import CLIENT_ADDR, wait_until

OP_TIMEOUT = 5.0


def metric_samples(node, name):
    """{labels-string: value} for every sample of metric name on node ('' for an unlabelled one)."""
    status, body = node.get("/metrics")
    assert status == 200, "GET /metrics on %s: %s" % (node.name, status)
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        if key == name:
            out[""] = float(value)
        elif key.startswith(name + "{"):
            out[key[len(name) + 1:-1]] = float(value)
    return out


def peer_metric(node, name, peer):
    """The value of metric name{peer="<peer>"} on node (0 if the peer has no sample yet)."""
    return metric_samples(node, name).get('peer="%s"' % peer, 0.0)


def routes_known(node):
    """sol_routes on node: remote filters it knows (sum over peers)."""
    return metric_samples(node, "sol_routes").get("", 0.0)


class Client:
    """A blocking wrapper around paho: connect(), subscribe(), publish() return once acknowledged."""

    def __init__(self, node, client_id, clean_session=True, will=None, keepalive=30):
        self.node = node
        self.client_id = client_id
        self.messages = queue.Queue()
        self.received = []  # (monotonic time, topic, payload, qos, retain) in arrival order
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._acks = {}
        self._ack_times = {}  # mid -> monotonic time the SUBACK was read (on paho's thread)
        self.session_present = None
        self.connack_rc = None
        self.c = mqtt.Client(client_id=client_id, clean_session=clean_session)
        self.c.max_inflight_messages_set(100)
        self.c.max_queued_messages_set(0)
        if will:
            self.c.will_set(*will)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_ack
        self.c.on_publish = self._on_publish
        self.keepalive = keepalive

    # paho callbacks run on paho's network thread.
    def _on_connect(self, c, userdata, flags, rc):
        self.session_present = flags.get("session present")
        self.connack_rc = rc
        self._connected.set()

    def _on_disconnect(self, c, userdata, rc):
        self._disconnected.set()

    def _on_message(self, c, userdata, msg):
        item = (time.monotonic(), msg.topic, msg.payload, msg.qos, msg.retain)
        with self._lock:
            self.received.append(item)
        self.messages.put(item)

    def _on_ack(self, c, userdata, mid, granted_qos):
        self._ack_times[mid] = time.monotonic()
        self._acks.setdefault(mid, threading.Event()).set()

    def _on_publish(self, c, userdata, mid):
        self._acks.setdefault(mid, threading.Event()).set()

    def _wait_ack(self, mid, what):
        ev = self._acks.setdefault(mid, threading.Event())
        assert ev.wait(OP_TIMEOUT), "%s: no %s from %s within %.0f s" % (
            self.client_id, what, self.node.name, OP_TIMEOUT)
        return self._ack_times.get(mid, time.monotonic())

    def connect(self, wait=True):
        self.c.connect(self.node.addr, self.node.mqtt_port, keepalive=self.keepalive,
                       bind_address=CLIENT_ADDR)
        sock = self.c.socket()
        if sock:  # small packets go out at once (no Nagle delay in the measurements)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        if wait:
            assert self._connected.wait(OP_TIMEOUT), "%s: no CONNACK from %s" % (
                self.client_id, self.node.name)
            assert self.connack_rc == 0, "%s: CONNACK rc %s" % (self.client_id, self.connack_rc)
        return self

    def subscribe(self, topic, qos=1):
        """SUBSCRIBE and wait for the SUBACK; returns the monotonic time it arrived."""
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(mid, "SUBACK")

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS

    def publish(self, topic, payload, qos=1, retain=False, wait=True):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, "publish rc %s" % info.rc
        if wait and qos > 0:
            self._wait_ack(info.mid, "PUBACK/PUBCOMP")
        return info

    def wait_count(self, n, timeout, what=None):
        """Wait until at least n messages arrived; returns the list received so far."""
        wait_until(lambda: len(self.received) >= n, timeout,
                   what or "%s to receive %d messages (has %d)" % (self.client_id, n, len(self.received)),
                   interval=0.01)
        with self._lock:
            return list(self.received)

    def next_message(self, timeout):
        """The next message (time, topic, payload, qos, retain), or None after timeout."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_disconnected(self, timeout):
        return self._disconnected.wait(timeout)

    def disconnect(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (the broker treats it as a network failure)."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock:
            sock.close()


def wait_routes(cluster, node, at_least, timeout=5.0):
    """Wait until node knows at least that many remote filters (route propagation finished)."""
    return wait_until(lambda: routes_known(node) >= at_least, timeout,
                      "%s to know %d remote filters" % (node.name, at_least), interval=0.01)


def close_all(clients):
    for c in clients:
        try:
            c.disconnect()
        except Exception:
            pass
