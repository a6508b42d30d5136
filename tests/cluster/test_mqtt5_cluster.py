"""MQTT 5 across the cluster (issue 11, must-show 4 and 5): what a v5 publisher attaches to a message
(user properties in order, content type, response topic, correlation data, message expiry) reaches v5
subscribers on other nodes, in retained messages replicated to other nodes and in a persistent session
that moves to another node; a node that shuts down sends its v5 clients to a live peer (DISCONNECT 0x9C
with a Server Reference) and they reconnect there."""
import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import CLIENT_ADDR
from routing_helpers import peer_metric, wait_routes

OP_TIMEOUT = 5.0
USER = [("k1", "v1"), ("k2", "v2"), ("k1", "again")]  # order and repeats must survive


class Client5:
    """A blocking paho MQTT 5 client: connect/subscribe/publish return once acknowledged."""

    def __init__(self, node, client_id, clean_start=True, session_expiry=None):
        self.node = node
        self.client_id = client_id
        self.messages = queue.Queue()
        self.disconnects = queue.Queue()  # (reason code, properties) of a server DISCONNECT
        self._connected = threading.Event()
        self._acks = {}
        self.session_present = None
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = lambda c, u, mid, rc, props: self._ack(mid)
        self.c.on_publish = lambda c, u, mid: self._ack(mid)

    def _on_connect(self, c, userdata, flags, rc, props):
        self.session_present = flags.get("session present")
        self.connack_rc = rc
        self._connected.set()

    def _on_disconnect(self, c, userdata, rc, props=None):
        self.disconnects.put((rc, props))

    def _ack(self, mid):
        self._acks.setdefault(mid, threading.Event()).set()

    def _wait(self, mid, what):
        assert self._acks.setdefault(mid, threading.Event()).wait(OP_TIMEOUT), \
            "%s: no %s from %s" % (self.client_id, what, self.node.name)

    def connect(self, node=None):
        self.node = node or self.node
        self._connected.clear()
        props = None
        if self.session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
        self.c.connect(self.node.addr, self.node.mqtt_port, keepalive=30, bind_address=CLIENT_ADDR,
                       clean_start=self.clean_start, properties=props)
        self.c.loop_start()
        assert self._connected.wait(OP_TIMEOUT), "%s: no CONNACK from %s" % (
            self.client_id, self.node.name)
        assert self.connack_rc == 0, self.connack_rc
        return self

    def subscribe(self, topic, qos=1):
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        self._wait(mid, "SUBACK")

    def publish(self, topic, payload, qos=1, retain=False, props=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        if qos:
            self._wait(info.mid, "PUBACK")

    def next_message(self, timeout=OP_TIMEOUT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def rich_props(expiry=600):
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = list(USER)
    p.ContentType = "application/x-sol-test"
    p.ResponseTopic = "reply/to/me"
    p.CorrelationData = b"\x00corr\xff"
    p.MessageExpiryInterval = expiry
    return p


def assert_rich(msg, expiry=600):
    """The properties of rich_props, as a subscriber on another node got them."""
    assert msg is not None, "no message"
    p = msg.properties
    assert getattr(p, "UserProperty", None) == USER, p
    assert p.ContentType == "application/x-sol-test", p
    assert p.ResponseTopic == "reply/to/me", p
    assert p.CorrelationData == b"\x00corr\xff", p
    # What is left of the expiry interval: never more than was set, and not expired.
    assert 0 < p.MessageExpiryInterval <= expiry, p


def test_properties_survive_a_hop(cluster):
    """[MQTT5-3.3.2-17] [MQTT5-3.3.2-18] user properties in order; response topic and correlation
    data unchanged; [MQTT5-3.3.2-6] the expiry left, published on n1, received on n2."""
    n1, n2, _ = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    sub = Client5(n2, "p-sub").connect()
    pub = Client5(n1, "p-pub").connect()
    try:
        sub.subscribe("hop/#", qos=1)
        wait_routes(cluster, n1, 1)
        pub.publish("hop/a", b"payload", qos=1, props=rich_props())
        msg = sub.next_message()
        assert_rich(msg)
        assert msg.payload == b"payload" and msg.qos == 1
        # A message whose expiry ends while it waits for an offline subscriber is not delivered.
        assert peer_metric(n1, "sol_cluster_messages_forwarded_total", "n2") >= 1
    finally:
        sub.close()
        pub.close()


def test_properties_survive_retained_replication(cluster):
    """[MQTT5-3.3.2-17] [MQTT5-3.3.2-18] a retained message set on n1 with properties, replicated:
    a subscriber arriving later on n3 gets them with it."""
    n1, _, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    pub = Client5(n1, "r-pub").connect()
    sub = None
    try:
        pub.publish("ret/a", b"kept", qos=1, retain=True, props=rich_props())
        cluster.wait_until(lambda: _retained_count(n3) >= 1, 5, "n3 to hold the retained message")
        sub = Client5(n3, "r-sub").connect()
        sub.subscribe("ret/#", qos=1)
        msg = sub.next_message()
        assert_rich(msg)
        assert msg.retain and msg.payload == b"kept"
    finally:
        pub.close()
        if sub:
            sub.close()


def _retained_count(node):
    from routing_helpers import metric_samples
    return metric_samples(node, "sol_retained_messages").get("", 0.0)


def test_properties_survive_a_session_takeover(cluster):
    """[MQTT5-3.1.2-23] a session with an expiry interval outlives its connection; messages queued
    for it on n1 keep their properties when it moves to n2 [MQTT5-3.3.2-17] [MQTT5-3.3.2-18]."""
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    first = Client5(n1, "mover5", clean_start=True, session_expiry=300).connect()
    pub = Client5(n3, "t-pub").connect()
    second = None
    try:
        first.subscribe("tk5/#", qos=1)
        wait_routes(cluster, n3, 1)
        first.close()  # offline: messages queue on n1
        for i in range(5):
            pub.publish("tk5/x", b"q%d" % i, qos=1, props=rich_props())
        cluster.wait_until(lambda: peer_metric(n1, "sol_cluster_messages_received_total", "n3") >= 5,
                           5, "n1 to receive the 5 forwarded messages")
        second = Client5(n2, "mover5", clean_start=False, session_expiry=300).connect()
        assert second.session_present, "the moved session should be present on n2"
        for i in range(5):
            msg = second.next_message()
            assert_rich(msg)
            assert msg.payload == b"q%d" % i
    finally:
        pub.close()
        if second:
            second.close()


def test_sigterm_sends_v5_clients_to_a_live_peer(cluster):
    """[MQTT5-4.13.2-1] a node that shuts down tells its v5 clients to use another
    server (DISCONNECT 0x9C with a Server Reference naming a live peer's MQTT listener), and the client
    reconnects there and works."""
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    peers = {"%s:%d" % (n.addr, n.mqtt_port): n for n in (n2, n3)}
    # Each node learns its peers' client addresses from their heartbeats.
    c = Client5(n1, "mover-sig").connect()
    watcher = Client5(n3, "sig-watch").connect()
    try:
        watcher.subscribe("sig/#", qos=1)
        cluster.wait_until(lambda: _knows_client_addresses(n1), 5, "n1 to know its peers' addresses")
        assert n1.stop() == 0
        rc, props = c.disconnects.get(timeout=OP_TIMEOUT)
        assert rc.value == 0x9C, rc
        ref = props.ServerReference
        assert ref in peers, (ref, list(peers))
        c.c.loop_stop()
        c.connect(peers[ref])
        c.publish("sig/after", b"moved", qos=1)
        msg = watcher.next_message()
        assert msg is not None and msg.payload == b"moved"
    finally:
        c.close()
        watcher.close()


def _knows_client_addresses(node):
    """/cluster on node lists a client address for every member (peers' come with heartbeats)."""
    mem = node.members() or {}
    return len(mem) == 3 and all(m.get("client_address") for m in mem.values())


def test_retain_as_published_across_a_hop(cluster):
    """[MQTT5-3.3.1-13] a subscription with Retain As Published on n2 gets the retain flag of a
    retained message published on n1 as it was; one without gets it cleared [MQTT5-3.3.1-12]."""
    from paho.mqtt.subscribeoptions import SubscribeOptions
    n1, n2, _ = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    rap = Client5(n2, "rap-yes").connect()
    plain = Client5(n2, "rap-no").connect()
    pub = Client5(n1, "rap-pub").connect()
    try:
        rc, mid = rap.c.subscribe("rap/#", options=SubscribeOptions(qos=1, retainAsPublished=True))
        rap._wait(mid, "SUBACK")
        plain.subscribe("rap/#", qos=1)
        wait_routes(cluster, n1, 1)
        pub.publish("rap/t", b"r", qos=1, retain=True)
        got_rap, got_plain = rap.next_message(), plain.next_message()
        assert got_rap is not None and got_rap.retain, "Retain As Published lost across the hop"
        assert got_plain is not None and not got_plain.retain
    finally:
        for c in (rap, plain, pub):
            c.close()
