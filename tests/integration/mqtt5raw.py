"""MQTT 5 for the integration tests: hand-built v5 packets over a socket, and a paho-mqtt client in
MQTTv5 mode.

The raw side extends mqttraw (3.1.1) with what MQTT 5 adds: a property block in CONNECT, CONNACK,
PUBLISH, the acks, SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, DISCONNECT and AUTH, reason codes, and
Subscription Options. Properties are kept as an ordered list of (identifier, value) so that order
and repeated User Properties can be checked. Nothing here sleeps a fixed time.
"""
import struct
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

import mqttraw
from conftest import client_factory
from mqttclients import PahoThread
from mqttraw import (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
                     DISCONNECT, credentials, enc_str, enc_varint, packet)

AUTH = 15

# Property identifiers [MQTT5 2.2.2.2]
PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUB_AVAILABLE = 0x28
SUBID_AVAILABLE = 0x29
SHARED_SUB_AVAILABLE = 0x2A

BYTE_PROPS = {PAYLOAD_FORMAT, REQUEST_PROBLEM_INFO, REQUEST_RESPONSE_INFO, MAXIMUM_QOS,
              RETAIN_AVAILABLE, WILDCARD_SUB_AVAILABLE, SUBID_AVAILABLE, SHARED_SUB_AVAILABLE}
U16_PROPS = {SERVER_KEEP_ALIVE, RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS}
U32_PROPS = {MESSAGE_EXPIRY, SESSION_EXPIRY, WILL_DELAY, MAXIMUM_PACKET_SIZE}
STR_PROPS = {CONTENT_TYPE, RESPONSE_TOPIC, ASSIGNED_CLIENT_ID, AUTH_METHOD, RESPONSE_INFO,
             REASON_STRING, 0x1C}
BIN_PROPS = {CORRELATION_DATA, AUTH_DATA}
VARINT_PROPS = {SUBSCRIPTION_ID}


def enc_bin(b):
    return struct.pack("!H", len(b)) + b


def enc_props(props):
    """A property block (length + properties) from [(id, value), ...]; USER_PROPERTY values are
    (key, value) pairs. A value of bytes for any id is sent as is (to build bad properties)."""
    out = b""
    for pid, val in props:
        out += enc_varint(pid)
        if isinstance(val, (bytes, bytearray)) and pid not in BIN_PROPS:
            out += bytes(val)
        elif pid in BYTE_PROPS:
            out += bytes([val])
        elif pid in U16_PROPS:
            out += struct.pack("!H", val)
        elif pid in U32_PROPS:
            out += struct.pack("!I", val)
        elif pid in STR_PROPS:
            out += enc_str(val)
        elif pid in BIN_PROPS:
            out += enc_bin(val)
        elif pid in VARINT_PROPS:
            out += enc_varint(val)
        elif pid == USER_PROPERTY:
            out += enc_str(val[0]) + enc_str(val[1])
        else:
            raise ValueError(f"property {pid:#x} needs a bytes value")
    return enc_varint(len(out)) + out


def dec_varint(b, i):
    mult, n = 1, 0
    while True:
        c = b[i]
        i += 1
        n += (c & 0x7F) * mult
        mult *= 128
        if not c & 0x80:
            return n, i


def dec_props(b, i):
    """Decode a property block at b[i:]; returns ([(id, value), ...], index after it)."""
    length, i = dec_varint(b, i)
    end = i + length
    props = []
    while i < end:
        pid, i = dec_varint(b, i)
        if pid in BYTE_PROPS:
            val, i = b[i], i + 1
        elif pid in U16_PROPS:
            val, i = struct.unpack("!H", b[i:i + 2])[0], i + 2
        elif pid in U32_PROPS:
            val, i = struct.unpack("!I", b[i:i + 4])[0], i + 4
        elif pid in STR_PROPS or pid in BIN_PROPS:
            n = struct.unpack("!H", b[i:i + 2])[0]
            val = bytes(b[i + 2:i + 2 + n])
            if pid in STR_PROPS:
                val = val.decode("utf-8")
            i += 2 + n
        elif pid in VARINT_PROPS:
            val, i = dec_varint(b, i)
        elif pid == USER_PROPERTY:
            n = struct.unpack("!H", b[i:i + 2])[0]
            k = b[i + 2:i + 2 + n].decode()
            i += 2 + n
            n = struct.unpack("!H", b[i:i + 2])[0]
            v = b[i + 2:i + 2 + n].decode()
            i += 2 + n
            val = (k, v)
        else:
            raise ValueError(f"unknown property {pid:#x} from the broker")
        props.append((pid, val))
    assert i == end, "property block length does not match its properties"
    return props, end


def prop(props, pid, default=None):
    """The value of the (first) property pid, or default."""
    for p, v in props:
        if p == pid:
            return v
    return default


def prop_all(props, pid):
    return [v for p, v in props if p == pid]


class Packet5:
    """One received MQTT 5 packet, decoded: reason, props, and per type topic/payload/pid/codes."""

    def __init__(self, first_byte, body):
        self.first_byte, self.body = first_byte, body
        self.type, self.flags = first_byte >> 4, first_byte & 0x0F
        self.topic = self.payload = self.pid = self.qos = self.retain = self.dup = None
        self.reason, self.props, self.codes, self.session_present = 0, [], [], None
        b = body
        t = self.type
        if t == CONNACK:
            self.session_present, self.reason = b[0], b[1]
            self.props, _ = dec_props(b, 2)
        elif t == PUBLISH:
            self.dup = bool(self.flags & 0x08)
            self.qos = (self.flags >> 1) & 0x03
            self.retain = bool(self.flags & 0x01)
            n = struct.unpack("!H", b[:2])[0]
            self.topic = b[2:2 + n].decode("utf-8")
            i = 2 + n
            if self.qos:
                self.pid = struct.unpack("!H", b[i:i + 2])[0]
                i += 2
            self.props, i = dec_props(b, i)
            self.payload = bytes(b[i:])
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = struct.unpack("!H", b[:2])[0]
            if len(b) > 2:
                self.reason = b[2]
            if len(b) > 3:
                self.props, _ = dec_props(b, 3)
        elif t in (SUBACK, UNSUBACK):
            self.pid = struct.unpack("!H", b[:2])[0]
            self.props, i = dec_props(b, 2)
            self.codes = list(b[i:])
        elif t in (DISCONNECT, AUTH):
            if len(b) > 0:
                self.reason = b[0]
            if len(b) > 1:
                self.props, _ = dec_props(b, 1)

    def __repr__(self):
        name = mqttraw.NAMES.get(self.type, "AUTH" if self.type == AUTH else self.type)
        if self.type == PUBLISH:
            return (f"<PUBLISH {self.topic!r} {self.payload[:40]!r} qos={self.qos} "
                    f"retain={self.retain} pid={self.pid} props={self.props}>")
        return (f"<{name} reason={self.reason:#x} pid={self.pid} codes={self.codes} "
                f"props={self.props}>")


def connect5_pkt(client_id="", clean=True, keepalive=60, props=(), will=None, username=None,
                 password=None, flags=None):
    """CONNECT level 5. will = (topic, payload, qos, retain, will_props)."""
    f = 0x02 if clean else 0
    payload = enc_str(client_id)
    if will is not None:
        topic, msg, qos, retain, wprops = will
        f |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += enc_props(wprops) + enc_str(topic) + enc_str(msg)
    auth_flags, auth = credentials(username, password)
    f |= auth_flags
    payload += auth
    if flags is not None:
        f = flags
    body = enc_str("MQTT") + bytes([5, f]) + struct.pack("!H", keepalive) + enc_props(props)
    return packet(0x10, body + payload)


def publish5_pkt(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=()):
    if isinstance(payload, str):
        payload = payload.encode()
    fb = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = enc_str(topic)
    if qos:
        body += struct.pack("!H", pid if pid is not None else 1)
    return packet(fb, body + enc_props(props) + payload)


def sub_opts(qos=0, no_local=False, rap=False, rh=0):
    """The Subscription Options byte [MQTT5 3.8.3.1]."""
    return qos | (0x04 if no_local else 0) | (0x08 if rap else 0) | (rh << 4)


def subscribe5_pkt(pid, filters, props=()):
    """filters = [(filter, options byte), ...]."""
    body = struct.pack("!H", pid) + enc_props(props)
    for flt, opts in filters:
        body += enc_str(flt) + bytes([opts])
    return packet(0x82, body)


def unsubscribe5_pkt(pid, filters, props=()):
    body = struct.pack("!H", pid) + enc_props(props)
    for flt in filters:
        body += enc_str(flt)
    return packet(0xA2, body)


def ack5_pkt(ptype, pid, reason=None, props=None):
    flags = 0x02 if ptype == PUBREL else 0
    body = struct.pack("!H", pid)
    if reason is not None or props is not None:
        body += bytes([reason or 0])
    if props is not None:
        body += enc_props(props)
    return packet((ptype << 4) | flags, body)


def disconnect5_pkt(reason=None, props=None):
    body = b""
    if reason is not None or props is not None:
        body += bytes([reason or 0])
    if props is not None:
        body += enc_props(props)
    return packet(0xE0, body)


def auth_pkt(reason=0x18, props=()):
    return packet(0xF0, bytes([reason]) + enc_props(props))


class RawClient5(mqttraw.RawClient):
    """A TCP connection speaking hand-built MQTT 5; received packets are Packet5."""

    def _try_parse(self):
        pkt = super()._try_parse()
        return Packet5(pkt.first_byte, pkt.body) if pkt is not None else None

    def connect5(self, client_id="", clean=True, keepalive=60, props=(), expect_rc=0, **kw):
        """CONNECT v5 and read CONNACK; returns the CONNACK Packet5."""
        self.send(connect5_pkt(client_id, clean, keepalive, props, **kw))
        ack = self.recv_type(CONNACK)
        if expect_rc is not None:
            assert ack.reason == expect_rc, f"CONNACK reason {ack.reason:#x}: {ack!r}"
        return ack

    def subscribe5(self, pid, filters, props=()):
        """SUBSCRIBE; returns the SUBACK Packet5 (reason codes in .codes)."""
        self.send(subscribe5_pkt(pid, filters, props))
        return self.recv_ack(SUBACK, pid)

    def unsubscribe5(self, pid, filters):
        self.send(unsubscribe5_pkt(pid, filters))
        return self.recv_ack(UNSUBACK, pid)

    def publish5(self, topic, payload=b"", qos=0, retain=False, pid=1, props=()):
        """PUBLISH and complete the sender's flow; returns the PUBACK / PUBREC (None for QoS 0)."""
        self.send(publish5_pkt(topic, payload, qos, retain, False, pid if qos else None, props))
        if qos == 1:
            return self.recv_ack(PUBACK, pid)
        if qos == 2:
            rec = self.recv_ack(PUBREC, pid)
            if rec.reason < 0x80:
                self.send(ack5_pkt(PUBREL, pid))
                self.recv_ack(PUBCOMP, pid)
            return rec
        return None

    def expect_disconnect(self, reason, timeout=3.0):
        """The broker sends DISCONNECT with reason (as the last packet) and closes the
        connection; returns that DISCONNECT."""
        got = self.expect_closed(timeout)
        assert got and got[-1].type == DISCONNECT, f"no DISCONNECT before the close: {got!r}"
        assert got[-1].reason == reason, \
            f"DISCONNECT reason {got[-1].reason:#x}, expected {reason:#x}: {got!r}"
        return got[-1]

    def expect_connack_refused(self, reason, timeout=3.0):
        """The broker answers CONNECT with CONNACK reason (>= 0x80) and closes."""
        got = self.expect_closed(timeout)
        assert got and got[0].type == CONNACK, f"no CONNACK before the close: {got!r}"
        assert got[0].reason == reason, \
            f"CONNACK reason {got[0].reason:#x}, expected {reason:#x}: {got!r}"
        assert got[0].session_present == 0, got[0]  # [MQTT5-3.2.2-6]
        return got[0]


def raw5(target, timeout=5.0):
    return RawClient5(target.host, target.port, timeout)


def rc_value(rc):
    """A paho ReasonCodes (or int) as an int."""
    return rc if isinstance(rc, int) else rc.value


class Paho5(PahoThread):
    """A paho-mqtt 1.6 client in MQTTv5 mode on its own network thread, recording what it gets:
    messages (with .properties), the CONNACK (flags, reason, properties), SUBACK / UNSUBACK
    reason codes, and the server's DISCONNECT reason."""

    def __init__(self, host, port, client_id="", clean_start=True, keepalive=30, props=None,
                 will=None, connect=True, timeout=5.0, username=None, password=None):
        self.cond = threading.Condition()
        self.messages = []
        self.connack = None
        self.disconnect_rc = None
        self.subacks, self.unsubacks = {}, {}
        self.timeout = timeout
        self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain, wprops = will
            self.client.will_set(topic, payload, qos, retain, properties=wprops)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_disconnect = self._on_disconnect
        self.host, self.port, self.keepalive = host, port, keepalive
        self.clean_start, self.props = clean_start, props
        self.started = False
        if connect:
            self.connect()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.connack = (flags.get("session present", 0), rc_value(rc), properties)
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, rcs, properties=None):
        with self.cond:
            self.subacks[mid] = [rc_value(r) for r in rcs]
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, properties=None, rcs=None):
        with self.cond:
            if rcs is None:
                rcs = []
            elif not isinstance(rcs, list):
                rcs = [rcs]
            self.unsubacks[mid] = [rc_value(r) for r in rcs]
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cond:  # the first report: a server DISCONNECT's reason, not the close after it
            if self.disconnect_rc is None:
                self.disconnect_rc = rc_value(rc)
            self.cond.notify_all()

    def connect(self, expect_rc=0):
        """Connect and wait for CONNACK; returns (session_present, reason, properties)."""
        self.client.connect(self.host, self.port, self.keepalive, clean_start=self.clean_start,
                            properties=self.props)
        self._start_loop()
        assert self._wait(lambda: self.connack is not None), "no CONNACK"
        if expect_rc is not None:
            assert self.connack[1] == expect_rc, f"CONNACK reason {self.connack[1]:#x}"
        return self.connack

    def subscribe(self, topic, qos=0, options=None, props=None):
        """Subscribe and wait for SUBACK; returns its reason codes."""
        if options is not None:
            rc, mid = self.client.subscribe(topic, options=options, properties=props)
        else:
            rc, mid = self.client.subscribe(topic, qos, properties=props)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self._wait(lambda: mid in self.subacks), "no SUBACK"
        return self.subacks[mid]

    def unsubscribe(self, topic):
        rc, mid = self.client.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self._wait(lambda: mid in self.unsubacks), "no UNSUBACK"
        return self.unsubacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        """Publish and wait until its flow completes."""
        info = self.client.publish(topic, payload, qos, retain, properties=props)
        info.wait_for_publish(self.timeout)
        assert info.is_published(), f"publish of {topic} not completed"
        return info

    def wait_disconnected(self, timeout=None):
        return self._wait(lambda: self.disconnect_rc is not None, timeout)

    def disconnect(self, reason=None, props=None):
        """DISCONNECT (with a paho ReasonCodes or None for 0x00) and stop the loop."""
        self.client.disconnect(reasoncode=reason, properties=props)
        self.wait_disconnected(2)
        self.stop_loop()


def publish_props(**kw):
    """paho Properties for a PUBLISH: Properties(PacketTypes.PUBLISH) with the given fields
    (UserProperty as a list of pairs)."""
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def props_of(ptype, **kw):
    p = Properties(ptype)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


@pytest.fixture
def r5(request):
    """r5(target=None, timeout=5) -> RawClient5 connected by TCP (no MQTT yet) to target (default:
    the `broker` fixture); closed at teardown."""
    make, made = client_factory(request, raw5)
    yield make
    for c in made:
        c.close()


@pytest.fixture
def p5(request):
    """p5(target=None, client_id="", **kw) -> connected Paho5; disconnected at teardown."""
    def open_one(target, client_id="", **kw):
        return Paho5(target.host, target.port, client_id, **kw)

    make, made = client_factory(request, open_one)
    yield make
    for c in made:
        c.stop()


__all__ = ["r5", "p5", "Paho5", "RawClient5", "raw5", "Packet5", "SubscribeOptions", "PacketTypes",
           "Properties"]
