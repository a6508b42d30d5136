"""WebSocket listeners (--listener ws:// and wss://): paho-mqtt over ws and wss, MQTT packets split
across frames and several in one frame, ping/pong, the close handshake, refused frames (unmasked,
text, oversized), bad upgrade requests, slow-loris headers, the Origin allow-list, and the client
address from X-Forwarded-For or a PROXY v2 header. After each bad input another client on the same
broker still works."""
import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import HOST, free_port, wait_port
from mqttraw import (PUBLISH, SUBACK, CONNACK, Packet, RawClient, connect_pkt, publish_pkt,
                     subscribe_pkt)
from test_tls import pki, wait_log  # noqa: F401 (the fixture: a test CA and server certificate)

pytestmark = pytest.mark.sol_only

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsBroker:
    def __init__(self, b, ws_port, wss_port, pki):
        self.b, self.ws_port, self.wss_port, self.pki = b, ws_port, wss_port, pki

    def ca(self):
        return os.path.join(self.pki, "ca.crt")


@pytest.fixture
def ws_broker(broker_factory, pki):  # noqa: F811
    """start(*extra_args, path="/mqtt", **opts) -> WsBroker with a plain, a ws and a wss
    listener."""

    def start(*extra, path="/mqtt", **opts):
        ws_port, wss_port = free_port(), free_port()
        while wss_port == ws_port:
            wss_port = free_port()
        suffix = "" if path == "/mqtt" else path
        args = ["--listener", f"ws://{HOST}:{ws_port}{suffix}",
                "--listener", f"wss://{HOST}:{wss_port}{suffix}",
                "--certfile", os.path.join(pki, "server.crt"),
                "--keyfile", os.path.join(pki, "server.key"), "--log-level", "debug"] + list(extra)
        b = broker_factory(extra_args=args, **opts)
        for p in (ws_port, wss_port):
            assert wait_port(HOST, p, b.proc, time.monotonic() + 10), b.log()
        return WsBroker(b, ws_port, wss_port, pki)

    return start


class WsRaw:
    """A hand-built WebSocket client: the upgrade request, masked frames out, frames in."""

    def __init__(self, port, tls_ca=None, timeout=5.0, prefix=b""):
        s = socket.create_connection((HOST, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if prefix:
            s.sendall(prefix)
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock, self.buf, self.timeout = s, b"", timeout
        self.mqtt = b""  # binary payload received, not yet parsed as MQTT

    def request(self, path="/mqtt", key=None, version="13", protocol="mqtt", extra=(),
                method="GET"):
        key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket",
                 "Connection: Upgrade"]
        if key:
            lines.append(f"Sec-WebSocket-Key: {key}")
        if version:
            lines.append(f"Sec-WebSocket-Version: {version}")
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        lines += list(extra)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return key

    def response(self):
        """(status, headers dict lower-cased) of the server's HTTP answer."""
        while b"\r\n\r\n" not in self.buf:
            self._fill(time.monotonic() + self.timeout)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs

    def upgrade(self, **kw):
        key = self.request(**kw)
        status, hdrs = self.response()
        assert status == 101, (status, hdrs)
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert hdrs["sec-websocket-accept"] == want
        assert hdrs["sec-websocket-protocol"] == kw.get("protocol", "mqtt")
        return self

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing from the server")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    @staticmethod
    def frame(opcode, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, m | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, m | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))

    def send_frame(self, opcode, payload, **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_mqtt(self, data):
        self.send_frame(2, data)

    def recv_frame(self, timeout=None):
        """(opcode, payload) of the next frame (the server never masks)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames are not masked"
                n, i = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, i = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, i = struct.unpack("!Q", self.buf[2:10])[0], 10
                if n < 126 or i > 2:
                    if len(self.buf) >= i + n:
                        payload, self.buf = self.buf[i:i + n], self.buf[i + n:]
                        return b0 & 0x0F, payload
            self._fill(deadline)

    def recv_packet(self, timeout=None):
        """The next MQTT packet from binary frames (ping/pong frames skipped)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.mqtt) >= 2:
                mult, length, i = 1, 0, 1
                while i < len(self.mqtt):
                    length += (self.mqtt[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not self.mqtt[i - 1] & 0x80:
                        break
                if not self.mqtt[i - 1] & 0x80 and len(self.mqtt) >= i + length:
                    p = Packet(self.mqtt[0], self.mqtt[i:i + length])
                    self.mqtt = self.mqtt[i + length:]
                    return p
            op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == 2:
                self.mqtt += payload
            elif op == 8:
                raise ConnectionError("close frame %r" % payload)

    def closed_with(self, timeout=15.0):
        """Read until the server closes the TCP connection: the close frame's status code (None
        when no close frame came)."""
        code = None
        deadline = time.monotonic() + timeout
        try:
            while True:
                op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
                if op == 8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
        except (ConnectionError, ssl.SSLError, OSError) as e:
            if isinstance(e, (TimeoutError, socket.timeout)):
                raise AssertionError("not closed within %s s" % timeout)
        return code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def ws_connect(port, cid, tls_ca=None, prefix=b"", **kw):
    c = WsRaw(port, tls_ca=tls_ca, prefix=prefix).upgrade(**kw)
    c.send_mqtt(connect_pkt(cid))
    p = c.recv_packet()
    assert p.type == CONNACK and p.body[1] == 0, p
    return c


class Witness:
    """A plain-TCP subscriber connected before the bad input; alive() checks it still gets
    messages, published over ws by a fresh client."""

    def __init__(self, t):
        self.t = t
        self.sub = RawClient(HOST, t.b.port)
        self.sub.send(connect_pkt("witness"))
        self.sub.recv_type(CONNACK)
        self.sub.send(subscribe_pkt(1, [("witness/#", 0)]))
        self.sub.recv_type(SUBACK)

    def alive(self, prefix=b""):
        c = ws_connect(self.t.ws_port, "witness-pub", prefix=prefix)
        c.send_mqtt(publish_pkt("witness/x", b"still here"))
        p = self.sub.recv_type(PUBLISH)
        assert p.payload == b"still here"
        c.close()


class Paho:
    """paho-mqtt over WebSocket (ws or wss); messages recorded."""

    def __init__(self, port, cid, path="/mqtt", ca=None, subscribe=None, qos=0):
        self.cond = threading.Condition()
        self.msgs, self.connected, self.subscribed = [], None, False
        self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, transport="websockets")
        self.c.ws_set_options(path=path)
        if ca:
            self.c.tls_set(ca_certs=ca)
        self.c.on_connect = lambda c, u, f, rc: self._set("connected", rc)
        self.c.on_subscribe = lambda c, u, mid, g: self._set("subscribed", True)
        self.c.on_message = self._on_message
        self.c.connect(HOST, port, 30)
        self.c.loop_start()
        self.wait(lambda: self.connected is not None)
        assert self.connected == 0, self.connected
        if subscribe:
            self.c.subscribe(subscribe, qos)
            self.wait(lambda: self.subscribed)

    def _set(self, k, v):
        with self.cond:
            setattr(self, k, v)
            self.cond.notify_all()

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append((m.topic, m.payload, m.qos))
            self.cond.notify_all()

    def wait(self, pred, timeout=10.0):
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "timed out"

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_paho_round_trip(ws_broker, secure):
    """paho over ws and wss, on a path of our own: subscribe, publish QoS 0/1/2, receive each."""
    # MQTT-6.0.0-4 MQTT5-6.0.0-4: the server selects the mqtt subprotocol (checked in WsRaw too)
    t = ws_broker(path="/mqtt/ws")
    port, ca = (t.wss_port, t.ca()) if secure else (t.ws_port, None)
    sub = Paho(port, "psub", path="/mqtt/ws", ca=ca, subscribe="ws/#", qos=2)
    pub = Paho(port, "ppub", path="/mqtt/ws", ca=ca)
    try:
        for q in (0, 1, 2):
            pub.c.publish(f"ws/q{q}", f"payload {q}".encode() * 100, q).wait_for_publish()
        sub.wait(lambda: len(sub.msgs) == 3)
        assert sorted(sub.msgs) == [(f"ws/q{q}", f"payload {q}".encode() * 100, q)
                                    for q in (0, 1, 2)]
    finally:
        pub.stop()
        sub.stop()
    assert "WebSocket" not in t.b.log() or "refused" not in t.b.log()


def test_packets_split_across_frames_and_shared(ws_broker):
    """One CONNECT in three frames (a fragmented message); then SUBSCRIBE and PUBLISH in one frame,
    and a PUBLISH split in the middle of its topic."""
    # MQTT-6.0.0-2 MQTT5-6.0.0-2: packets not aligned with frames
    t = ws_broker()
    c = WsRaw(t.ws_port).upgrade()
    pkt = connect_pkt("split")
    c.send_frame(2, pkt[:3], fin=False)
    c.send_frame(0, pkt[3:7], fin=False)
    c.send_frame(0, pkt[7:], fin=True)
    assert c.recv_packet().type == CONNACK
    c.send_mqtt(subscribe_pkt(1, [("s/#", 0)]) + publish_pkt("s/one", b"1") +
                publish_pkt("s/two", b"2"))
    assert c.recv_packet().type == SUBACK
    got = [c.recv_packet(), c.recv_packet()]
    assert [(p.topic, p.payload) for p in got] == [("s/one", b"1"), ("s/two", b"2")]
    p3 = publish_pkt("s/three", b"3" * 300)
    c.send_mqtt(p3[:5])
    c.send_mqtt(p3[5:200])
    c.send_mqtt(p3[200:])
    p = c.recv_packet()
    assert (p.topic, p.payload) == ("s/three", b"3" * 300)
    c.close()


def test_ping_pong_and_close_handshake(ws_broker):
    """A ping is answered with a pong of the same payload; a close frame with a close frame, then
    the connection ends."""
    t = ws_broker()
    c = ws_connect(t.ws_port, "pinger")
    c.send_frame(9, b"are you there")
    assert c.recv_frame() == (10, b"are you there")
    c.send_frame(8, struct.pack("!H", 1000))
    assert c.closed_with() == 1000
    c.close()


@pytest.mark.parametrize("case,code,log", [
    ("unmasked", 1002, "WebSocket protocol error"),
    ("text", 1003, "WebSocket text frame refused"),
    ("oversized", 1009, "WebSocket frame too big"),
])
def test_refused_frames(ws_broker, case, code, log):
    """An unmasked, a text or an oversized frame closes that connection with its close code,
    logged once; others go on."""
    # MQTT-6.0.0-1 MQTT5-6.0.0-1: binary frames only, a text frame closes the connection
    t = ws_broker("--max-packet-size", "1000")
    w = Witness(t)
    c = ws_connect(t.ws_port, "bad-" + case)
    if case == "unmasked":
        c.send_frame(2, publish_pkt("x", b"y"), mask=False)
    elif case == "text":
        c.send_frame(1, b"hello")
    else:
        c.send_frame(2, b"\0" * 2000)
    assert c.closed_with() == code
    c.close()
    assert wait_log(t.b, "closed: " + log), t.b.log()
    w.alive()
    assert t.b.log().count("closed: " + log) == 1


@pytest.mark.parametrize("kw,status", [
    ({"key": ""}, 400),
    ({"version": "8"}, 400),
    ({"path": "/other"}, 404),
    ({"protocol": ""}, 400),
    ({"protocol": "chat"}, 400),
    ({"method": "POST"}, 400),
])
def test_bad_upgrade_requests(ws_broker, kw, status):
    """Missing key, wrong version, wrong path, no (or another) subprotocol: an HTTP error, closed,
    logged once."""
    t = ws_broker()
    w = Witness(t)
    c = WsRaw(t.ws_port)
    c.request(**kw)
    got, _ = c.response()
    assert got == status
    assert c.closed_with() is None
    c.close()
    assert wait_log(t.b, "WebSocket upgrade from"), t.b.log()
    w.alive()
    assert t.b.log().count("WebSocket upgrade from") == 1


def test_mqttv31_subprotocol_accepted(ws_broker):
    """Mosquitto also accepts the old subprotocol name."""
    t = ws_broker()
    c = WsRaw(t.ws_port).upgrade(protocol="mqttv3.1")
    c.send_mqtt(connect_pkt("old"))
    assert c.recv_packet().type == CONNACK
    c.close()


def test_garbage_and_huge_headers(ws_broker):
    """Headers beyond 8 KiB and garbage instead of HTTP: 400, closed, others go on."""
    t = ws_broker()
    w = Witness(t)
    c = WsRaw(t.ws_port)
    c.request(extra=["X-Filler: " + "a" * 9000])
    assert c.response()[0] == 400
    c.close()
    g = WsRaw(t.ws_port)
    g.sock.sendall(b"\x10\x20garbage\r\n\r\n")
    assert g.response()[0] == 400
    g.close()
    w.alive()
    assert t.b.log().count("headers over 8192 bytes") == 1


def test_slow_loris_headers_closed(ws_broker):
    """Headers that never finish are cut off at the 10 s limit, on ws and wss; logged once each."""
    t = ws_broker()
    w = Witness(t)
    slow = WsRaw(t.ws_port)
    slow.sock.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")
    slow_tls = WsRaw(t.wss_port, tls_ca=t.ca())
    slow_tls.sock.sendall(b"GET /mqtt HTTP/1.1\r\n")
    start = time.monotonic()
    for s in (slow, slow_tls):
        s.sock.sendall(b"X-A: b\r\n")  # still trickling
        assert s.closed_with(timeout=14) is None
        s.close()
    assert time.monotonic() - start < 13
    w.alive()
    assert t.b.log().count("WebSocket upgrade from") == 2, t.b.log()


def test_origin_allow_list(ws_broker):
    """--ws-origins: a listed Origin is upgraded, another one gets 403; no Origin (not a browser)
    is upgraded."""
    t = ws_broker("--ws-origins", "https://good.example, http://127.0.0.1:8080")
    w = Witness(t)
    WsRaw(t.ws_port).upgrade(extra=["Origin: https://good.example"]).close()
    WsRaw(t.ws_port).upgrade(extra=["Origin: http://127.0.0.1:8080"]).close()
    WsRaw(t.ws_port).upgrade().close()
    c = WsRaw(t.ws_port)
    c.request(extra=["Origin: https://evil.example"])
    assert c.response()[0] == 403
    c.close()
    assert wait_log(t.b, "refused: 403 Origin not allowed"), t.b.log()
    w.alive()


def test_any_origin_by_default(ws_broker):
    t = ws_broker()
    WsRaw(t.ws_port).upgrade(extra=["Origin: https://anywhere.example"]).close()


@pytest.mark.parametrize("trusted", [True, False])
def test_x_forwarded_for(ws_broker, trusted):
    """--trust-x-forwarded-for: the first X-Forwarded-For address is the one logged; without it
    the header is ignored."""
    t = ws_broker(*(["--trust-x-forwarded-for", "true"] if trusted else []))
    c = WsRaw(t.ws_port).upgrade(extra=["X-Forwarded-For: 203.0.113.7, 10.0.0.1"])
    c.send_mqtt(connect_pkt("behind-lb"))
    assert c.recv_packet().type == CONNACK
    assert wait_log(t.b, "client behind-lb connected from"), t.b.log()
    line = [ln for ln in t.b.log().splitlines() if "behind-lb connected from" in ln][0]
    assert ("connected from 203.0.113.7 " in line) == trusted, line
    c.close()


PROXY_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, sport, dst="127.0.0.1", dport=1883, tlvs=b""):
    """A PROXY protocol v2 header (command PROXY, TCP over IPv4 or IPv6) with some TLV bytes."""
    if ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, "::1")
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return PROXY_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def connected_from(b, cid):
    assert wait_log(b, f"client {cid} connected from"), b.log()
    line = [ln for ln in b.log().splitlines() if f"client {cid} connected from" in ln][0]
    return line.split("connected from ")[1].split(" ")[0]


def test_proxy_protocol_v2(ws_broker):
    """--proxy-protocol: on mqtt://, ws:// and wss:// listeners the header's source address is the
    client's (IPv4 and IPv6, TLVs skipped, the header split across writes); bind:port is not
    affected; a connection without a valid header is closed, logged once; others go on."""
    plain = free_port()
    t = ws_broker("--proxy-protocol", "true", "--listener", f"mqtt://{HOST}:{plain}")
    assert wait_port(HOST, plain, t.b.proc, time.monotonic() + 10)
    w = Witness(t)  # on bind:port, without a header
    hdr = proxy_v2("198.51.100.9", 4242, tlvs=b"\x04\x00\x03abc")
    c = RawClient(HOST, plain)
    c.send(hdr[:7])  # the header in two writes (TCP_NODELAY: two segments)
    c.send(hdr[7:] + connect_pkt("px-plain"))
    c.recv_type(CONNACK)
    assert connected_from(t.b, "px-plain") == "198.51.100.9:4242"
    c6 = RawClient(HOST, plain)
    c6.send(proxy_v2("2001:db8::7", 5555) + connect_pkt("px-six"))
    c6.recv_type(CONNACK)
    assert connected_from(t.b, "px-six") == "2001:db8::7:5555"
    ws_connect(t.ws_port, "px-ws", prefix=proxy_v2("198.51.100.10", 1000)).close()
    assert connected_from(t.b, "px-ws") == "198.51.100.10:1000"
    ws_connect(t.wss_port, "px-wss", tls_ca=t.ca(), prefix=proxy_v2("198.51.100.11", 1001)).close()
    assert connected_from(t.b, "px-wss") == "198.51.100.11:1001"
    # no header: closed at once, logged once
    bad = RawClient(HOST, plain)
    bad.send(connect_pkt("no-header"))
    bad.expect_closed(5)
    bad_ws = WsRaw(t.ws_port)
    bad_ws.request()
    assert bad_ws.closed_with(timeout=5) is None
    assert wait_log(t.b, "no valid PROXY protocol v2 header", count=2), t.b.log()
    w.alive(prefix=proxy_v2("198.51.100.12", 1002))
    assert t.b.log().count("no valid PROXY protocol v2 header") == 2
    assert "no-header" not in t.b.log()
    c.sock.close()
    c6.sock.close()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_large_messages_both_ways(ws_broker, secure):
    """Messages of 300 KB (frames larger than one read, output larger than one write) arrive
    whole and in order, over ws and wss."""
    t = ws_broker()
    port, ca = (t.wss_port, t.ca()) if secure else (t.ws_port, None)
    sub = Paho(port, "bigsub", ca=ca, subscribe="big/#", qos=1)
    pub = Paho(port, "bigpub", ca=ca)
    try:
        payloads = [bytes([i]) * 300000 for i in range(5)]
        for p in payloads:
            pub.c.publish("big/x", p, 1)
        sub.wait(lambda: len(sub.msgs) == 5, timeout=30)
        assert [m[1] for m in sub.msgs] == payloads
    finally:
        pub.stop()
        sub.stop()


def test_stalled_ws_reader_does_not_stop_others(ws_broker):
    """A ws subscriber that stops reading while a flood is routed to it: the broker stays
    responsive for everyone else, and the stalled client still gets messages once it reads."""
    t = ws_broker()
    w = Witness(t)
    stalled = ws_connect(t.ws_port, "stalled")
    stalled.send_mqtt(subscribe_pkt(1, [("flood/#", 0)]))
    assert stalled.recv_packet().type == SUBACK
    pub = RawClient(HOST, t.b.port)
    pub.send(connect_pkt("flooder"))
    pub.recv_type(CONNACK)
    for i in range(300):
        pub.send(publish_pkt("flood/x", bytes([i % 256]) * 10000))
    w.alive()  # others are served while the stalled client's output backs up
    got = stalled.recv_packet(timeout=10)
    assert got.type == PUBLISH and got.topic == "flood/x"
    stalled.close()
    pub.sock.close()
