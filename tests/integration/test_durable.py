"""Durable state (issue 12): what Sol acknowledged survives kill -9 (--durability sync, the default).

The store lives under --data-dir; every test here restarts one broker on the same directory and
port. Publishers count what was acknowledged (PUBACK; PUBREC for QoS 2), never what they sent."""
import os
import random
import threading
import time

import pytest

import mqttraw
from mqttraw import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Closed, Timeout, ack_pkt, publish_pkt

pytestmark = pytest.mark.sol_only


class Publisher(threading.Thread):
    """Open-loop QoS 1 or 2 publisher: keeps up to `window` PUBLISHes unacknowledged, records the
    payloads the broker acknowledged, and stops when the broker goes away or `count` are sent."""

    def __init__(self, host, port, client_id, topic, qos, prefix, count, window=64):
        super().__init__(daemon=True)
        self.c = mqttraw.RawClient(host, port, timeout=5)
        self.c.connect(client_id, clean=True)
        self.topic, self.qos, self.prefix, self.count, self.window = topic, qos, prefix, count, window
        self.acked = []
        self.lock = threading.Lock()

    def run(self):
        inflight = {}  # pid -> payload, until PUBACK / PUBCOMP
        free = list(range(1, 1 + self.window))
        n = 0
        try:
            while n < self.count or inflight:
                while free and n < self.count:
                    pid = free.pop()
                    payload = b"%s-%d" % (self.prefix, n)
                    n += 1
                    inflight[pid] = payload
                    self.c.send(publish_pkt(self.topic, payload, self.qos, pid=pid))
                pkt = self.c.recv(2.0)
                if pkt.type in (PUBACK, PUBREC) and pkt.pid in inflight:
                    with self.lock:
                        self.acked.append(inflight[pkt.pid])
                    if pkt.type == PUBREC:
                        self.c.send(ack_pkt(PUBREL, pkt.pid))
                        continue
                if pkt.type in (PUBACK, PUBCOMP) and pkt.pid in inflight:
                    del inflight[pkt.pid]
                    free.append(pkt.pid)
        except (Closed, Timeout, OSError):
            pass
        finally:
            self.c.close()

    def n_acked(self):
        with self.lock:
            return len(self.acked)


class Subscriber(threading.Thread):
    """A persistent (clean session 0) subscriber with its own QoS 2 state (ids awaiting PUBREL),
    which, like a real client's, outlives each connection. Delivers QoS 2 at PUBREL."""

    def __init__(self, host, port, client_id, state):
        super().__init__(daemon=True)
        self.state = state
        self.c = mqttraw.RawClient(host, port, timeout=5)
        self.session_present, _ = self.c.connect(client_id, clean=False)

    def run(self):
        st = self.state
        try:
            while True:
                pkt = self.c.recv(30)
                if pkt.type == PUBLISH and pkt.qos == 1:
                    with st["lock"]:
                        st["q1"][pkt.payload] = st["q1"].get(pkt.payload, 0) + 1
                    self.c.send(ack_pkt(PUBACK, pkt.pid))
                elif pkt.type == PUBLISH and pkt.qos == 2:
                    st["pending"][pkt.pid] = pkt.payload
                    self.c.send(ack_pkt(PUBREC, pkt.pid))
                elif pkt.type == PUBLISH:
                    with st["lock"]:
                        st["retained"].add(pkt.payload)
                elif pkt.type == PUBREL:
                    payload = st["pending"].pop(pkt.pid, None)
                    if payload is not None:
                        with st["lock"]:
                            st["q2"][payload] = st["q2"].get(payload, 0) + 1
                    self.c.send(ack_pkt(PUBCOMP, pkt.pid))
        except (Closed, Timeout, OSError):
            pass
        finally:
            self.c.close()


def test_kill9_twenty_times_loses_nothing_acknowledged(broker_factory, tmp_path):
    """Must-show 1: 20 kill -9 at random moments under QoS 1 and QoS 2 load; the subscriber is
    online for half the runs and offline for the others; afterwards it has every acknowledged
    message (QoS 2 exactly once), and the retained message and subscriptions are back."""
    rng = random.Random(int(os.environ.get("SOL_TEST_SEED", time.time())))
    store = str(tmp_path / "store")
    args = ["--data-dir", store, "--max-queued", "1000000"]
    b = broker_factory(extra_args=args)
    port = b.port
    st = {"lock": threading.Lock(), "q1": {}, "q2": {}, "pending": {}, "retained": set()}
    first = Subscriber(b.host, port, "durable-sub", st)
    assert first.session_present == 0
    first.c.subscribe(1, [("dur/q1/#", 1), ("dur/q2/#", 2)])
    first.start()
    r = b.raw()
    r.connect("retainer")
    r.publish("dur/keep", b"kept", qos=1, retain=True)
    r.close()
    acked1, acked2 = [], []
    for cycle in range(20):
        online = cycle % 2 == 0
        sub = None
        if cycle > 0:
            b = broker_factory(port=port, extra_args=args)
            if online:
                sub = Subscriber(b.host, port, "durable-sub", st)
                assert sub.session_present == 1, "session lost at cycle %d" % cycle
                sub.start()
        else:
            sub = first
        pubs = [Publisher(b.host, port, "p1-%d" % cycle, "dur/q1/x", 1, b"a%d" % cycle, 3000),
                Publisher(b.host, port, "p2-%d" % cycle, "dur/q2/x", 2, b"b%d" % cycle, 1500)]
        for p in pubs:
            p.start()
        # The random moment: after a random number of acknowledgements (an event, not a sleep).
        target = rng.randint(20, 1200)
        deadline = time.monotonic() + 20
        while sum(p.n_acked() for p in pubs) < target and any(p.is_alive() for p in pubs):
            assert time.monotonic() < deadline, "publishers stuck at cycle %d" % cycle
            time.sleep(0.002)
        b.kill()
        for p in pubs:
            p.join(10)
            acked1 += p.acked if p.qos == 1 else []
            acked2 += p.acked if p.qos == 2 else []
        if sub is not None:
            sub.join(10)
    b = broker_factory(port=port, extra_args=args)
    sub = Subscriber(b.host, port, "durable-sub", st)
    assert sub.session_present == 1
    sub.start()
    deadline = time.monotonic() + 30
    while True:
        with st["lock"]:
            missing1 = [m for m in acked1 if m not in st["q1"]]
            missing2 = [m for m in acked2 if m not in st["q2"]]
        if not missing1 and not missing2:
            break
        assert time.monotonic() < deadline, (
            "%d of %d acknowledged QoS 1 and %d of %d QoS 2 messages never arrived (e.g. %r %r)"
            % (len(missing1), len(acked1), len(missing2), len(acked2), missing1[:3], missing2[:3]))
        time.sleep(0.02)
    with st["lock"]:
        twice = [m for m, n in st["q2"].items() if n > 1]
    assert not twice, "QoS 2 delivered more than once: %r" % twice[:5]
    assert len(acked1) > 1000 and len(acked2) > 500, (len(acked1), len(acked2))
    # Retained message and the subscription itself came back.
    c = b.raw()
    c.connect("late")
    c.subscribe(1, [("dur/keep", 1)])
    got = c.recv_publish()
    assert got.payload == b"kept" and got.retain
    c.close()
    sub.c.close()
    sub.join(5)


def _wal(store):
    logs = sorted((os.path.getmtime(os.path.join(store, f)), f) for f in os.listdir(store)
                  if f.endswith(".log"))
    assert logs, os.listdir(store)
    return os.path.join(store, logs[-1][1])


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_torn_tail_loses_only_the_last_record(broker_factory, tmp_path, damage):
    """Must-show 5: the store's log ends in a torn (truncated) or garbled record: the broker still
    starts, says so in its log, and everything before that record is there."""
    store = str(tmp_path / "store")
    args = ["--data-dir", store]
    b = broker_factory(extra_args=args)
    c = b.raw()
    c.connect("writer")
    for i in range(40):  # one acknowledged batch each: the PUBACK waits for it
        c.publish("torn/%d" % i, b"value-%d" % i, qos=1, retain=True, pid=i + 1)
    c.close()
    b.kill()
    wal = _wal(store)
    size = os.path.getsize(wal)
    with open(wal, "r+b") as f:
        if damage == "truncated":
            f.truncate(size - 5)
        else:
            f.seek(size - 12)
            f.write(b"\xff" * 8)
    b = broker_factory(port=b.port, extra_args=args)
    assert "damaged log tail" in b.log()
    c = b.raw()
    c.connect("reader")
    c.subscribe(1, [("torn/#", 0)])
    got = set()
    try:
        while True:
            got.add(c.recv_publish(timeout=1).topic)
    except Timeout:
        pass
    c.close()
    want = {"torn/%d" % i for i in range(39)}
    assert want <= got, sorted(want - got)


def test_unreadable_store_exits_2_naming_it(tmp_path):
    """A data directory that cannot be a store (here: a plain file): one line naming it, exit 2."""
    import subprocess
    from conftest import SOL_BIN, free_port
    bad = tmp_path / "notadir"
    bad.write_text("x")
    r = subprocess.run([SOL_BIN, "--port", str(free_port()), "--data-dir", str(bad)], capture_output=True,
                       text=True, timeout=20,
                       env={k: v for k, v in os.environ.items() if not k.startswith("SOL_")})
    assert r.returncode == 2, r
    assert str(bad) in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_metrics_show_the_store(broker_factory, tmp_path):
    """/metrics: store size, write batches and fsync time grow with acknowledged writes."""
    from conftest import free_port, store_metrics
    http = free_port()
    b = broker_factory(extra_args=["--data-dir", str(tmp_path / "store"), "--http-port", str(http)])
    before = store_metrics(http)
    c = b.raw()
    c.connect("m")
    for i in range(5):
        c.publish("m/%d" % i, b"x" * 100, qos=1, retain=True, pid=i + 1)
    c.close()
    after = store_metrics(http)
    assert after["sol_store_batches_total"] >= before["sol_store_batches_total"] + 5
    assert after["sol_store_fsyncs_total"] >= before["sol_store_fsyncs_total"] + 5
    assert after["sol_store_fsync_microseconds_total"] > before["sol_store_fsync_microseconds_total"]
    assert after["sol_store_bytes"] > 0 and after["sol_store_acks_held"] == 0


def test_delayed_will_survives_kill9(broker_factory, tmp_path):
    """The pending MQTT 5 delayed will of an offline session is part of its record: kill -9 while
    it waits, restart, and it is still published when its delay ends (not at once, not never)."""
    from test_mqtt5_will_keepalive import V5, will_props
    store = str(tmp_path / "store")
    b = broker_factory(extra_args=["--data-dir", store])
    dev = V5(b.port, "dw-dev", will=("dw/dev", b"offline", 1, False), will_props=will_props(4),
             session_expiry=300).connect()
    dev.drop()  # no DISCONNECT: the will waits 4 s
    t0 = time.monotonic()
    c = b.raw()  # one acknowledged write after the drop: the will's record is durable by then
    c.connect("dw-writer")
    c.publish("dw/marker", b"m", qos=1, retain=True, pid=1)
    c.close()
    b.kill()
    b = broker_factory(port=b.port, extra_args=["--data-dir", store])
    watch = V5(b.port, "dw-watch").connect()
    watch.subscribe("dw/dev")
    msg = watch.messages.get(timeout=10)
    waited = time.monotonic() - t0
    assert msg.topic == "dw/dev" and msg.payload == b"offline"
    assert msg.properties.UserProperty == [("why", "gone")]
    assert 3.0 <= waited <= 8.0, "published %.1f s after the drop (delay 4 s)" % waited
    watch.close()
