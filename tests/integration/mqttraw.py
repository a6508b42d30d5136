"""Hand-built MQTT 3.1.1 packets over a plain socket.

paho-mqtt only sends well-formed packets in the order it chooses; the tests need malformed packets,
bad flags, packets out of order, server-only packets, half packets and QoS flows with controlled
timing. This module encodes packets byte by byte and reads whole packets back with a deadline.
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT"}


class Closed(Exception):
    """The broker closed the connection."""


class Timeout(Exception):
    """No (complete) packet arrived before the deadline."""


def enc_varint(n):
    """Remaining Length encoding (1-4 bytes, 7 bits each, high bit = more)."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def enc_str(s):
    """Two-byte length prefixed string; s is str (encoded UTF-8) or bytes (sent as is)."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack("!H", len(s)) + s


def packet(first_byte, body=b""):
    """A whole packet: fixed-header byte, remaining length, body."""
    return bytes([first_byte]) + enc_varint(len(body)) + body


def credentials(username, password):
    """CONNECT's user name and password: their flags (0x80, 0x40) and payload fields, each only if
    not None."""
    flags, fields = 0, b""
    if username is not None:
        flags |= 0x80
        fields += enc_str(username)
    if password is not None:
        flags |= 0x40
        fields += enc_str(password)
    return flags, fields


def connect_pkt(client_id="", clean=True, keepalive=60, will=None, username=None, password=None,
                proto_name=b"MQTT", level=4, reserved=False, flags=None, first_byte=0x10):
    """CONNECT. will = (topic, message, qos, retain). flags overrides the computed connect flags."""
    f = 0
    payload = enc_str(client_id)
    if clean:
        f |= 0x02
    if will is not None:
        topic, msg, qos, retain = will
        f |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += enc_str(topic) + enc_str(msg)
    auth_flags, auth = credentials(username, password)
    f |= auth_flags
    payload += auth
    if reserved:
        f |= 0x01
    if flags is not None:
        f = flags
    body = enc_str(proto_name) + bytes([level, f]) + struct.pack("!H", keepalive) + payload
    return packet(first_byte, body)


def publish_pkt(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, first_byte=None):
    """PUBLISH; pid defaults to 1 for QoS > 0."""
    if isinstance(payload, str):
        payload = payload.encode()
    fb = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    if first_byte is not None:
        fb = first_byte
    body = enc_str(topic)
    if qos > 0 or pid is not None:
        body += struct.pack("!H", pid if pid is not None else 1)
    return packet(fb, body + payload)


def subscribe_pkt(pid, filters, first_byte=0x82):
    """SUBSCRIBE; filters = [(filter, qos), ...]; qos may be any byte (to test reserved bits)."""
    body = struct.pack("!H", pid)
    for flt, qos in filters:
        body += enc_str(flt) + bytes([qos])
    return packet(first_byte, body)


def unsubscribe_pkt(pid, filters, first_byte=0xA2):
    body = struct.pack("!H", pid)
    for flt in filters:
        body += enc_str(flt)
    return packet(first_byte, body)


def ack_pkt(ptype, pid, flags=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP (PUBREL's required flags 0b0010 by default)."""
    if flags is None:
        flags = 0x02 if ptype == PUBREL else 0
    return packet((ptype << 4) | flags, struct.pack("!H", pid))


def pingreq_pkt():
    return b"\xc0\x00"


def disconnect_pkt():
    return b"\xe0\x00"


class Packet:
    """One received packet; PUBLISH fields decoded."""

    def __init__(self, first_byte, body):
        self.first_byte = first_byte
        self.type = first_byte >> 4
        self.flags = first_byte & 0x0F
        self.body = body
        self.topic = self.payload = self.pid = None
        self.qos = self.retain = self.dup = None
        if self.type == PUBLISH:
            self.dup = bool(self.flags & 0x08)
            self.qos = (self.flags >> 1) & 0x03
            self.retain = bool(self.flags & 0x01)
            tlen = struct.unpack("!H", body[:2])[0]
            self.topic = body[2:2 + tlen].decode("utf-8")
            rest = body[2 + tlen:]
            if self.qos > 0:
                self.pid = struct.unpack("!H", rest[:2])[0]
                rest = rest[2:]
            self.payload = rest
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) and len(body) >= 2:
            self.pid = struct.unpack("!H", body[:2])[0]

    def __repr__(self):
        if self.type == PUBLISH:
            return (f"<PUBLISH {self.topic!r} {self.payload[:40]!r} qos={self.qos} "
                    f"retain={self.retain} dup={self.dup} pid={self.pid}>")
        return f"<{NAMES.get(self.type, self.type)} flags={self.flags:#x} body={self.body[:40].hex()}>"


class RawClient:
    """A TCP connection speaking hand-built MQTT."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout
        self.pending = []  # packets read ahead (while waiting for a PUBREL) but not yet consumed

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes into buf before deadline; raise Closed on EOF/reset, Timeout on deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout()
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            raise Closed()
        if not data:
            raise Closed()
        self.buf += data

    def _try_parse(self):
        """One complete packet from buf, or None."""
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise ValueError("broker sent a remaining length longer than 4 bytes")
        if len(self.buf) < i + length:
            return None
        pkt = Packet(self.buf[0], self.buf[i:i + length])
        self.buf = self.buf[i + length:]
        return pkt

    def recv(self, timeout=None):
        """Next packet; raises Timeout or Closed."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            pkt = self._try_parse()
            if pkt is not None:
                return pkt
            self._fill(deadline)

    def recv_type(self, ptype, timeout=None):
        """Next packet, asserting its type."""
        pkt = self.recv(timeout)
        assert pkt.type == ptype, f"expected {NAMES[ptype]}, got {pkt!r}"
        return pkt

    def recv_ack(self, ptype, pid, timeout=None):
        """Wait for an acknowledgement (type, pid); PUBLISH packets that arrive first are kept for
        later recv() calls (a broker may route a client's own message before acknowledging it)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        ahead = []
        try:
            while True:
                pkt = self.recv(max(0.01, deadline - time.monotonic()))
                if pkt.type == PUBLISH:
                    ahead.append(pkt)
                    continue
                assert pkt.type == ptype, f"expected {NAMES[ptype]}, got {pkt!r}"
                assert pkt.pid == pid, f"expected {NAMES[ptype]} for id {pid}, got {pkt!r}"
                return pkt
        finally:
            self.pending = ahead + self.pending

    def recv_nothing(self, timeout):
        """Assert no packet arrives within timeout (the connection may stay open)."""
        try:
            pkt = self.recv(timeout)
        except Timeout:
            return
        raise AssertionError(f"unexpected packet {pkt!r}")

    def expect_closed(self, timeout=3.0):
        """Wait until the broker closes the connection; return packets received before the close.

        Fails if the connection is still open at the deadline."""
        got, self.pending = self.pending, []
        deadline = time.monotonic() + timeout
        while True:
            try:
                while True:
                    pkt = self._try_parse()
                    if pkt is None:
                        break
                    got.append(pkt)
                self._fill(deadline)
            except Closed:
                return got
            except Timeout:
                raise AssertionError(f"connection still open after {timeout}s (got {got!r})")

    def is_open(self, timeout=0.3):
        """Probe with PINGREQ: True if PINGRESP arrives (skipping other packets)."""
        try:
            self.send(pingreq_pkt())
            deadline = time.monotonic() + timeout
            while True:
                pkt = self.recv(max(0.01, deadline - time.monotonic()))
                if pkt.type == PINGRESP:
                    return True
        except (Closed, Timeout, OSError):
            return False

    def connect(self, client_id="", clean=True, keepalive=60, expect_rc=0, **kw):
        """Send CONNECT and read CONNACK; returns (session_present, return_code)."""
        self.send(connect_pkt(client_id, clean, keepalive, **kw))
        pkt = self.recv_type(CONNACK)
        assert len(pkt.body) == 2, pkt
        sp, rc = pkt.body[0], pkt.body[1]
        if expect_rc is not None:
            assert rc == expect_rc, f"CONNACK return code {rc:#x}, expected {expect_rc:#x}"
        return sp, rc

    def subscribe(self, pid, filters):
        """SUBSCRIBE and wait for its SUBACK; returns the return codes."""
        self.send(subscribe_pkt(pid, filters))
        return list(self.recv_ack(SUBACK, pid).body[2:])

    def unsubscribe(self, pid, filters):
        self.send(unsubscribe_pkt(pid, filters))
        pkt = self.recv_ack(UNSUBACK, pid)
        assert len(pkt.body) == 2, pkt
        return pkt

    def publish(self, topic, payload=b"", qos=0, retain=False, pid=None, dup=False):
        """PUBLISH and complete the sender side of the flow (PUBACK or PUBREC/PUBREL/PUBCOMP)."""
        if qos and pid is None:
            pid = 1
        self.send(publish_pkt(topic, payload, qos, retain, dup, pid if qos else None))
        if qos == 1:
            self.recv_ack(PUBACK, pid)
        elif qos == 2:
            self.recv_ack(PUBREC, pid)
            self.send(ack_pkt(PUBREL, pid))
            self.recv_ack(PUBCOMP, pid)

    def recv_publish(self, timeout=None, ack=True):
        """Next PUBLISH; with ack, answer it as a well-behaved client (PUBACK / PUBREC+PUBCOMP)."""
        pkt = self.recv_type(PUBLISH, timeout)
        if ack and pkt.qos == 1:
            self.send(ack_pkt(PUBACK, pkt.pid))
        elif ack and pkt.qos == 2:
            self.send(ack_pkt(PUBREC, pkt.pid))
            self.complete_pubrel(pkt.pid)
        return pkt

    def complete_pubrel(self, pid, timeout=None):
        """Wait for the PUBREL of pid (keeping other packets for later) and answer PUBCOMP."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        ahead = []
        while True:
            pkt = self.recv(max(0.01, deadline - time.monotonic()))
            if pkt.type == PUBREL and pkt.pid == pid:
                assert pkt.flags == 0x02, pkt
                break
            ahead.append(pkt)
        self.pending = ahead + self.pending
        self.send(ack_pkt(PUBCOMP, pid))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Drop the connection with a TCP RST (no FIN, no DISCONNECT)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()
