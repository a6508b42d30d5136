"""MQTT 5 outbound Topic Aliases: a client that allows them (Topic Alias Maximum in CONNECT) gets the
topic once with an alias, then the alias alone; the least recently used alias is reused when all are
taken; a client that allows none always gets the topic."""
import socket
import struct

import paho.mqtt.client as mqtt
import pytest

from conftest import HOST


def _varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _read_varint(buf, i):
    mult, val = 1, 0
    while True:
        b = buf[i]
        val += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            return val, i


class RawV5:
    """A raw MQTT 5 subscriber that returns each PUBLISH as (topic, alias, payload)."""

    def __init__(self, port, client_id, alias_max):
        self.s = socket.create_connection((HOST, port), timeout=5)
        cid = client_id.encode()
        props = b"\x22" + struct.pack(">H", alias_max) if alias_max else b""
        body = (b"\x00\x04MQTT\x05\x02\x00\x1e" + _varint(len(props)) + props +
                struct.pack(">H", len(cid)) + cid)
        self.s.sendall(b"\x10" + _varint(len(body)) + body)
        self.buf = b""
        kind, _ = self.packet()
        assert kind == 2
        f = b"al/#"
        body = struct.pack(">H", 1) + b"\x00" + struct.pack(">H", len(f)) + f + b"\x00"
        self.s.sendall(b"\x82" + _varint(len(body)) + body)
        kind, _ = self.packet()
        assert kind == 9

    def packet(self):
        while True:
            if len(self.buf) >= 2:
                try:
                    rl, i = _read_varint(self.buf, 1)
                except IndexError:
                    rl = None
                if rl is not None and len(self.buf) >= i + rl:
                    kind, body = self.buf[0] >> 4, self.buf[i:i + rl]
                    self.buf = self.buf[i + rl:]
                    return kind, body
            data = self.s.recv(65536)
            assert data, "closed"
            self.buf += data

    def publish(self):
        kind, body = self.packet()
        assert kind == 3
        tl = struct.unpack(">H", body[:2])[0]
        topic = body[2:2 + tl].decode()
        plen, i = _read_varint(body, 2 + tl)  # QoS 0: no packet id
        props, alias, k = body[i:i + plen], None, 0
        while k < len(props):
            pid = props[k]
            if pid == 0x23:
                alias = struct.unpack(">H", props[k + 1:k + 3])[0]
                k += 3
            else:
                pytest.fail("unexpected property 0x%02x" % pid)
        return topic, alias, body[i + plen:]

    def close(self):
        self.s.close()


def _publisher(port):
    p = mqtt.Client("al-pub", protocol=mqtt.MQTTv311)
    p.connect(HOST, port)
    return p


@pytest.mark.sol_only
def test_outbound_topic_alias(broker_factory):
    """[MQTT5-3.3.2-11] the server sends no alias above the client's Topic Alias Maximum; a topic
    is sent once with its alias, then the alias stands for it; with all aliases taken the least
    recently used one is set again to the new topic."""
    b = broker_factory()
    sub = RawV5(b.port, "al-sub", alias_max=2)
    p = _publisher(b.port)
    sent = [("al/a", b"1"), ("al/a", b"2"), ("al/b", b"3"), ("al/a", b"4"), ("al/c", b"5"),
            ("al/c", b"6"), ("al/a", b"7")]
    for t, pl in sent:
        p.publish(t, pl, qos=0)
        p.loop(0.05)
    got = [sub.publish() for _ in sent]
    p.disconnect()
    sub.close()
    assert got[0] == ("al/a", 1, b"1")
    assert got[1] == ("", 1, b"2")
    assert got[2] == ("al/b", 2, b"3")
    assert got[3] == ("", 1, b"4")
    assert got[4] == ("al/c", 2, b"5")  # al/b was used least recently
    assert got[5] == ("", 2, b"6")
    assert got[6] == ("", 1, b"7")
    assert all(a is None or 1 <= a <= 2 for _, a, _ in got)


@pytest.mark.sol_only
def test_no_outbound_alias_without_client_maximum(broker_factory):
    """[MQTT5-3.3.2-11] a client that sends no Topic Alias Maximum (0) gets no alias, ever."""
    b = broker_factory()
    sub = RawV5(b.port, "al-none", alias_max=0)
    p = _publisher(b.port)
    for k in range(3):
        p.publish("al/x", b"%d" % k, qos=0)
        p.loop(0.05)
    got = [sub.publish() for _ in range(3)]
    p.disconnect()
    sub.close()
    assert got == [("al/x", None, b"%d" % k) for k in range(3)]
