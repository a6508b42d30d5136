"""MQTT 5 on one node: the Will Delay Interval, Server Keep Alive (--max-keepalive), Response
Information, and the DISCONNECT a v5 client gets when the broker shuts down."""
import queue
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import HOST

TIMEOUT = 5.0


class V5:
    """A paho MQTT 5 client that records CONNACK properties, messages and server DISCONNECTs."""

    def __init__(self, port, client_id, will=None, will_props=None, session_expiry=None,
                 keepalive=30, request_response=False):
        self.port = port
        self.connack = None
        self.connected = threading.Event()
        self.messages = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacked = threading.Event()
        self.keepalive = keepalive
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = lambda c, u, mid, rc, p: self.subacked.set()
        self.c.on_disconnect = lambda c, u, rc, p=None: self.disconnects.put((rc, p))
        if will:
            self.c.will_set(*will, properties=will_props)
        self.props = Properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            self.props.SessionExpiryInterval = session_expiry
        if request_response:
            self.props.RequestResponseInformation = 1

    def _on_connect(self, c, u, flags, rc, props):
        self.connack = (rc, props)
        self.connected.set()

    def connect(self, clean_start=True):
        self.connected.clear()
        self.c.connect(HOST, self.port, keepalive=self.keepalive, clean_start=clean_start,
                       properties=self.props if self.props.json() else None)
        self.c.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"
        assert self.connack[0] == 0, self.connack
        return self

    def subscribe(self, topic, qos=1):
        self.subacked.clear()
        self.c.subscribe(topic, qos)
        assert self.subacked.wait(TIMEOUT), "no SUBACK"

    def drop(self):
        """Close the socket without DISCONNECT: the will is due."""
        self.c.loop_stop()
        self.c.socket().close()

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def will_props(delay):
    p = Properties(PacketTypes.WILLMESSAGE)
    p.WillDelayInterval = delay
    p.UserProperty = [("why", "gone")]
    return p


@pytest.mark.sol_only
def test_will_delay_publishes_after_the_delay(broker_factory):
    """[MQTT5-3.1.3-9] the will is published once the Will Delay Interval has passed (not at the
    close), with its properties."""
    b = broker_factory()
    watch = V5(b.port, "wd-watch").connect()
    watch.subscribe("wd/#")
    dev = V5(b.port, "wd-dev", will=("wd/dev", b"offline", 1, False), will_props=will_props(2),
             session_expiry=60).connect()
    dev.drop()
    t0 = time.monotonic()
    assert watch.messages.empty()
    msg = watch.messages.get(timeout=6)
    waited = time.monotonic() - t0
    assert msg.topic == "wd/dev" and msg.payload == b"offline"
    assert msg.properties.UserProperty == [("why", "gone")]
    assert 1.5 <= waited <= 4.5, waited
    watch.close()


@pytest.mark.sol_only
def test_will_delay_cancelled_by_reconnect(broker_factory):
    """[MQTT5-3.1.3-9] a client that reconnects within the Will Delay Interval has no will
    published; the next message after the reconnect is the one it publishes."""
    b = broker_factory()
    watch = V5(b.port, "wc-watch").connect()
    watch.subscribe("wc/#")
    dev = V5(b.port, "wc-dev", will=("wc/dev", b"offline", 1, False), will_props=will_props(3),
             session_expiry=60).connect()
    dev.drop()
    again = V5(b.port, "wc-dev", session_expiry=60).connect(clean_start=False)
    time.sleep(0.1)  # the reconnect is done (CONNACK received): the will was cancelled then
    # Past the delay, a marker: had the will been kept, it would arrive before the marker.
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        try:
            m = watch.messages.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        pytest.fail("will published despite the reconnect: %s" % m.topic)
    again.c.publish("wc/marker", b"m", qos=1)
    assert watch.messages.get(timeout=TIMEOUT).topic == "wc/marker"
    again.close()
    watch.close()


@pytest.mark.sol_only
def test_will_delay_ends_with_the_session(broker_factory):
    """[MQTT5-3.1.3-9] the will goes out when the session ends, if that is before the delay."""
    b = broker_factory()
    watch = V5(b.port, "we-watch").connect()
    watch.subscribe("we/#")
    dev = V5(b.port, "we-dev", will=("we/dev", b"offline", 1, False), will_props=will_props(30),
             session_expiry=1).connect()
    dev.drop()
    t0 = time.monotonic()
    msg = watch.messages.get(timeout=5)
    assert msg.topic == "we/dev"
    assert time.monotonic() - t0 >= 0.7  # at the session's end (1 s), not at the close
    watch.close()


@pytest.mark.sol_only
def test_server_keepalive_caps_a_v5_client(broker_factory):
    """[MQTT5-3.2.2-21] [MQTT5-3.2.2-22] with --max-keepalive, a v5 client asking for more (or none)
    is told the keepalive to use in CONNACK; one within the limit is not told anything."""
    b = broker_factory(extra_args=["--max-keepalive", "20"])
    c = V5(b.port, "ka-long", keepalive=600).connect()
    assert c.connack[1].ServerKeepAlive == 20
    c.close()
    c = V5(b.port, "ka-none", keepalive=0).connect()
    assert c.connack[1].ServerKeepAlive == 20
    c.close()
    c = V5(b.port, "ka-ok", keepalive=10).connect()
    assert not hasattr(c.connack[1], "ServerKeepAlive")
    c.close()


@pytest.mark.sol_only
def test_max_keepalive_refuses_a_311_client(broker_factory):
    """3.1.1 has no way to tell a client another keepalive: refused as Mosquitto does (0x02)."""
    b = broker_factory(extra_args=["--max-keepalive", "20"])
    got = []
    ev = threading.Event()
    c = mqtt.Client(client_id="ka311", protocol=mqtt.MQTTv311)
    c.on_connect = lambda cl, u, f, rc: (got.append(rc), ev.set())
    c.connect(HOST, b.port, keepalive=600)
    c.loop_start()
    assert ev.wait(TIMEOUT)
    c.loop_stop()
    assert got == [2]


@pytest.mark.sol_only
def test_response_information(broker_factory):
    """Request Response Information 1 gets a Response Information: this broker's documented
    prefix, response/<client id>/, usable as a topic the client subscribes to; without the
    request, none [MQTT5-3.1.2-28]."""
    b = broker_factory()
    c = V5(b.port, "rr-1", request_response=True).connect()
    info = c.connack[1].ResponseInformation
    assert info == "response/rr-1/"
    c.subscribe(info + "#")
    c.c.publish(info + "x", b"reply", qos=1)
    assert c.messages.get(timeout=TIMEOUT).payload == b"reply"
    c.close()
    c = V5(b.port, "rr-2").connect()
    assert not hasattr(c.connack[1], "ResponseInformation")
    c.close()


@pytest.mark.sol_only
def test_shutdown_disconnects_v5_clients_with_reason(broker_factory):
    """[MQTT5-4.13.2-1] a single node shutting down tells its v5 clients why: DISCONNECT 0x8B
    (Server shutting down); there is no peer to send them to. Over TCP, as every test here
    [MQTT5-4.2.0-1]."""
    b = broker_factory()
    c = V5(b.port, "sd-1").connect()
    assert b.stop(signal.SIGTERM, timeout=10) == 0
    rc, _ = c.disconnects.get(timeout=TIMEOUT)
    c.c.loop_stop()
    assert rc.value == 0x8B, rc
