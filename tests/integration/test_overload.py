"""Overload without loss (issue 9): back-pressure from slow subscribers to publishers, stalled
subscribers, the connection memory cap, and --overload-policy drop.

Every client here is a raw socket driven by one select loop (Peer, drive): a publisher sends as
fast as its socket takes bytes (open loop), a subscriber reads and acknowledges only while the test
lets it. Push-back is seen from outside as a publisher socket the broker stops taking bytes from,
and in /metrics. Nothing waits a fixed time: every wait is for an event (a metric value, a message,
a socket state) with a deadline; the few "stays so for 0.5 s" checks are negative ones (a socket
that must not become writable).

Sol only: the settings and metrics are Sol's.
"""
import re
import select
import socket
import struct
import time
import urllib.request

import pytest

from conftest import HOST, free_port, listening
from mqttraw import PUBACK, PUBLISH, RawClient, ack_pkt, enc_str, enc_varint, publish_pkt

pytestmark = pytest.mark.sol_only

PAYLOAD = 1000            # bytes per flood message (8-byte sequence number + padding)
FLOOD_LIMIT = 48 << 20    # a publisher not pushed back by then was not pushed back at all
REFILL = 256 << 10        # keep this much queued in a publisher's send buffer


# ---- broker and /metrics ----

def start(broker_factory, *args, **opts):
    """A broker with /metrics on a free port; extra Sol flags in args."""
    http = free_port()
    b = broker_factory(extra_args=["--http-port", str(http)] + [str(a) for a in args], **opts)
    deadline = time.monotonic() + 10
    while not listening(HOST, http):
        assert time.monotonic() < deadline and b.alive(), "HTTP endpoint did not come up"
        time.sleep(0.02)
    b.http = http
    return b


def metrics(b):
    """{name or name{labels}: value} from /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{b.http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric(b, name):
    """One metric's value, None if the broker does not export it."""
    return metrics(b).get(name)


PAUSED = "sol_publishers_paused"
PAUSES = "sol_publisher_pauses_total"
STALLED = "sol_subscribers_stalled_total"
DROP_Q0 = 'sol_messages_dropped_total{reason="qos0_stalled"}'
DROP_QFULL = 'sol_messages_dropped_total{reason="queue_full"}'
MEM_CLOSED = "sol_connections_closed_memory_total"


def wait_metric(b, name, pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(b, name)
        if v is not None and pred(v):
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {name} = {v}"
        time.sleep(0.02)


# ---- raw clients in one select loop ----

def seq_payload(seq, size=PAYLOAD):
    return b"%08d" % seq + b"." * (size - 8)


class Peer:
    """A connected RawClient driven by drive(): sends what refill() queues whenever the socket
    takes bytes, and (while reading) parses every packet that arrives, answering QoS 1 PUBLISHes
    with PUBACK (if ack). PUBLISHes are kept as (topic, seq, qos) in pubs; PUBACKs counted."""

    def __init__(self, rc, reading=True, ack=True):
        self.rc = rc
        self.sock = rc.sock
        self.reading, self.ack = reading, ack
        self.out = bytearray()
        self.inbuf = bytearray(rc.buf)
        rc.buf = b""
        self.pubs = []
        self.pubacks = 0
        self.unacked = []       # ids of QoS 1 PUBLISHes received while not acknowledging
        self.sent = 0           # bytes the socket took
        self.refill = None      # callable queueing more output; None: nothing more
        self.closed = False
        for p in rc.pending:    # packets RawClient read ahead
            self._handle(p.type, p.flags, p.body)
        rc.pending = []
        self.sock.setblocking(False)

    def seqs(self, topic=None, qos=None):
        return [s for t, s, q in self.pubs if (topic is None or t == topic) and
                (qos is None or q == qos)]

    def _handle(self, ptype, flags, body):
        if ptype == PUBLISH:
            qos = (flags >> 1) & 3
            tlen = struct.unpack_from("!H", body)[0]
            topic = bytes(body[2:2 + tlen]).decode()
            off = 2 + tlen
            if qos:
                pid = struct.unpack_from("!H", body, off)[0]
                off += 2
                if self.ack:
                    self.out += ack_pkt(PUBACK, pid)
                else:
                    self.unacked.append(pid)
            payload = bytes(body[off:off + 8])
            seq = int(payload) if payload.isdigit() else payload
            self.pubs.append((topic, seq, qos))
        elif ptype == PUBACK:
            self.pubacks += 1

    def _parse(self):
        buf, i, n = self.inbuf, 0, len(self.inbuf)
        while True:
            length, mult, j = 0, 1, i + 1
            while j < n and j - i <= 4:
                c = buf[j]
                length += (c & 0x7F) * mult
                mult *= 128
                j += 1
                if not c & 0x80:
                    break
            else:
                break  # header incomplete
            if n - j < length:
                break
            self._handle(buf[i] >> 4, buf[i] & 0x0F, bytes(buf[j:j + length]))
            i = j + length
        del self.inbuf[:i]

    def on_readable(self):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except (ConnectionResetError, ConnectionAbortedError):
            data = b""
        if not data:
            self.closed = True
            return
        self.inbuf += data
        self._parse()

    def on_writable(self):
        if self.refill and len(self.out) < REFILL:
            self.refill()
        if not self.out:
            return
        try:
            n = self.sock.send(memoryview(self.out)[:1 << 20])
        except BlockingIOError:
            return
        del self.out[:n]
        self.sent += n

    def wants_write(self):
        if self.refill and len(self.out) < REFILL:
            self.refill()
        return bool(self.out)


def drive(peers, until, timeout, what, every=None):
    """Run the peers until until() is true; every(), if given, runs at most each 50 ms and may
    also end the loop by returning True. Fails at the deadline."""
    deadline = time.monotonic() + timeout
    last_every = 0.0
    while True:
        if until():
            return
        now = time.monotonic()
        if every and now - last_every >= 0.05:
            last_every = now
            if every():
                return
        assert now < deadline, f"timed out waiting for {what() if callable(what) else what}"
        for p in peers:
            assert not p.closed, f"broker closed a connection while waiting for {what}"
        r = [p for p in peers if p.reading]
        w = [p for p in peers if p.wants_write()]
        rr, ww, _ = select.select([p.sock for p in r], [p.sock for p in w], [], 0.02)
        for p in r:
            if p.sock in rr:
                p.on_readable()
        for p in w:
            if p.sock in ww:
                p.on_writable()


def drive_expecting_nothing(peers, cond, duration, what):
    """Run the peers for duration seconds; fail if cond() becomes true meanwhile."""
    end = time.monotonic() + duration
    drive(peers, lambda: cond() or time.monotonic() >= end, duration + 5, what)
    assert not cond(), f"unexpected: {what}"


def writable(sock, timeout):
    return bool(select.select([], [sock], [], timeout)[1])


def flooder(peer, topic, qos=0, size=PAYLOAD, limit=None, lag=None, other=None):
    """Make peer publish seq 0, 1, 2 ... to topic, open loop (stops at limit messages; with lag,
    at most lag messages ahead of what other has received). Returns a state dict whose 'next' is
    the next sequence number; set state['limit'] to stop early."""
    st = {"next": 0, "limit": limit}

    def refill():
        chunk = bytearray()
        while len(chunk) < REFILL:
            seq = st["next"]
            if st["limit"] is not None and seq >= st["limit"]:
                break
            if lag is not None and seq - len(other.pubs) >= lag:
                break
            pid = (seq % 65535) + 1 if qos else None
            chunk += publish_pkt(topic, seq_payload(seq, size), qos=qos, pid=pid)
            st["next"] = seq + 1
        peer.out += chunk
    peer.refill = refill
    return st


def raw_client(b, rcvbuf=None, timeout=10):
    """A RawClient; with rcvbuf, a receive buffer that small from before the handshake (set after
    it, the window already advertised is larger than the buffer: the kernel drops segments and the
    broker's retransmissions back off for seconds)."""
    if not rcvbuf:
        return b.raw(timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(b.addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rc = RawClient.__new__(RawClient)
    rc.sock, rc.buf, rc.timeout, rc.pending = sock, b"", timeout, []
    return rc


def connect(b, cid, subs=(), clean=True, rcvbuf=None, timeout=10):
    rc = raw_client(b, rcvbuf, timeout)
    rc.connect(cid, clean=clean)
    if subs:
        assert rc.subscribe(1, list(subs)) == [q for _, q in subs]
    return rc


def flood_until_pushed_back(b, pub, st, others=()):
    """Flood until the broker reports the publisher paused and its socket stops taking data (no
    room for 0.5 s: the broker's receive buffer and the publisher's send buffer are full), or
    until FLOOD_LIMIT bytes went out (the broker took everything: no push-back). Returns whether
    the publisher was pushed back."""
    def check():
        if pub.sent >= FLOOD_LIMIT:
            return True
        return bool(pub.out) and not writable(pub.sock, 0) and (metric(b, PAUSED) or 0) >= 1
    while True:
        drive([pub, *others], lambda: False, 30, "the publisher to be pushed back", every=check)
        if pub.sent >= FLOOD_LIMIT:
            pushed = False
            break
        if not writable(pub.sock, 0.5):
            pushed = True
            break
    st["limit"] = st["next"]  # generate nothing more; what is queued is still sent later
    return pushed


# ---- a, b: back-pressure engages and releases ----

@pytest.mark.parametrize("qos", [0, 1])
def test_backpressure_engages_and_releases(broker_factory, qos):
    """A subscriber that does not read (small receive buffer; at QoS 1 it does not acknowledge
    either) and a publisher flooding open loop: the broker stops reading the publisher (its socket
    stops taking data and stays unwritable; sol_publishers_paused 1) instead of dropping. Then the
    subscriber reads: it receives every message, in order, and the pause ends (paused 0, one pause
    or more counted, nothing dropped). At QoS 1 the messages are 4 KB, so the byte watermark
    (--backlog-high) pauses the publisher well before --max-queued does. Without back-pressure
    the broker takes the whole flood and drops past its limits."""
    size = PAYLOAD if qos == 0 else 4000
    b = start(broker_factory, "--stall-timeout-ms", 30000)
    sub = Peer(connect(b, "bp-sub", [("bp/t", qos)], rcvbuf=4096), reading=False)
    pub = Peer(connect(b, "bp-pub"))
    st = flooder(pub, "bp/t", qos=qos, size=size)
    assert flood_until_pushed_back(b, pub, st), \
        f"publisher never pushed back: the broker took {pub.sent} bytes for a non-reading subscriber"
    assert metric(b, PAUSED) == 1
    total = st["limit"]
    assert metric(b, DROP_Q0) == 0 and metric(b, DROP_QFULL) == 0

    sub.reading = True
    drive([pub, sub], lambda: len(sub.pubs) >= total, 30,
          lambda: f"{total} messages at the subscriber (got {len(sub.pubs)}, "
                  f"last {sub.pubs[-1:]}, publisher has {len(pub.out)} bytes unsent)")
    assert sub.seqs() == list(range(total)), "lost, duplicated or reordered messages"
    assert {q for _, _, q in sub.pubs} == {qos}
    if qos:
        drive([pub, sub], lambda: pub.pubacks >= total, 10, "every PUBACK at the publisher")
    wait_metric(b, PAUSED, lambda v: v == 0, 10, "the pause to end")
    m = metrics(b)
    assert m[PAUSES] >= 1 and m["sol_publisher_paused_seconds_total"] > 0
    assert m[DROP_Q0] == 0 and m[DROP_QFULL] == 0 and m[STALLED] == 0


def test_max_queued_pauses_publisher_until_acks(broker_factory):
    """The back-pressure version of test_limits.py::test_max_queued_slow_consumer: --max-queued 5,
    --max-inflight 2, one subscriber that does not acknowledge and one that does. The queue limit
    (not bytes) pauses the publisher, whose PUBLISHes wait in TCP; when the slow subscriber
    acknowledges, both subscribers get all 40, in order, and the publisher all 40 PUBACKs.
    Without back-pressure the slow subscriber gets about 7 of 40."""
    b = start(broker_factory, "--stall-timeout-ms", 30000, max_queued=5, max_inflight=2)
    slow = Peer(connect(b, "slow-sub", [("slow/t", 1)]), ack=False)
    fast = Peer(connect(b, "fast-sub", [("slow/t", 1)]))
    pub = Peer(connect(b, "slow-pub"))
    flooder(pub, "slow/t", qos=1, size=16, limit=40)
    drive([pub, slow, fast], lambda: pub.pubacks >= 40, 10, "the publisher to be paused",
          every=lambda: (metric(b, PAUSED) or 0) >= 1)
    assert pub.pubacks < 40, "the broker took all 40 PUBLISHes for a subscriber that holds 7"
    assert len(slow.pubs) == 2  # the in-flight window, unacknowledged
    # While nobody acknowledges it stays paused: no further PUBACK (a negative check).
    acks = pub.pubacks
    drive_expecting_nothing([pub, slow, fast], lambda: pub.pubacks > acks, 0.5,
                            "a PUBACK to a publisher paused for an unacknowledging subscriber")
    assert metric(b, PAUSED) == 1

    slow.ack = True
    slow.out += b"".join(ack_pkt(PUBACK, pid) for pid in slow.unacked)
    drive([pub, slow, fast], lambda: len(slow.pubs) >= 40 and len(fast.pubs) >= 40 and
          pub.pubacks >= 40, 10, "all 40 at both subscribers")
    assert slow.seqs() == list(range(40)) and fast.seqs() == list(range(40))
    wait_metric(b, PAUSED, lambda v: v == 0, 10, "the pause to end")
    assert metric(b, DROP_QFULL) == 0
