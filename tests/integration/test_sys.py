"""$SYS/broker/... statistics topics, named as Mosquitto's."""
import re
import time

from mqttraw import Timeout

SYS_TOPICS = ["$SYS/broker/clients/connected", "$SYS/broker/messages/received",
              "$SYS/broker/messages/sent", "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent",
              "$SYS/broker/uptime", "$SYS/broker/version"]


def collect_sys(c, wanted, timeout, until=lambda values: True):
    """Read $SYS publishes until every wanted topic has a value (latest value kept) and until()."""
    values = {}
    deadline = time.monotonic() + timeout
    while not (all(t in values for t in wanted) and until(values)):
        left = deadline - time.monotonic()
        assert left > 0, f"missing $SYS topics: {sorted(set(wanted) - set(values))}"
        try:
            m = c.recv_publish(timeout=left)
        except Timeout:
            continue
        values[m.topic] = m.payload.decode()
    return values


def first_int(text):
    m = re.search(r"\d+", text)
    assert m, text
    return int(m.group())


def test_sys_topics_published(raw, broker_factory):
    """With --sys-interval 1 the broker publishes clients connected, messages received/sent,
    bytes received/sent, uptime and version under $SYS/broker/."""
    b = broker_factory(sys_interval=1)
    c = raw(b)
    c.connect("sys1")
    c.subscribe(1, [("$SYS/broker/#", 0)])
    # The first values may be retained ones from before this client connected: wait for an update
    # that counts this client.
    values = collect_sys(c, SYS_TOPICS, timeout=4, until=lambda v: (
        first_int(v["$SYS/broker/clients/connected"]) >= 1 and
        first_int(v["$SYS/broker/bytes/received"]) > 0 and
        first_int(v["$SYS/broker/messages/sent"]) > 0))
    for t in SYS_TOPICS[:5]:
        assert re.fullmatch(r"\d+", values[t].strip()), (t, values[t])
    assert first_int(values["$SYS/broker/clients/connected"]) >= 1
    assert first_int(values["$SYS/broker/bytes/received"]) > 0
    assert re.match(r"\d+ seconds", values["$SYS/broker/uptime"]), values["$SYS/broker/uptime"]
    assert re.search(r"\d+\.\d+", values["$SYS/broker/version"]), values["$SYS/broker/version"]


def test_sys_counters_move(raw, broker_factory):
    """$SYS counters follow the traffic: more clients and more messages show up in the next
    updates."""
    b = broker_factory(sys_interval=1)
    c = raw(b)
    c.connect("sys2")
    c.subscribe(1, [("$SYS/broker/#", 0)])
    before = collect_sys(c, SYS_TOPICS[:3], timeout=4)
    others = []
    for i in range(3):
        o = raw(b)
        o.connect(f"sys2-{i}")
        others.append(o)
    for i in range(20):
        others[0].publish("sys2/t", b"x" * 100, qos=1, pid=i + 1)
    deadline = time.monotonic() + 5
    want_clients = first_int(before["$SYS/broker/clients/connected"]) + 3
    want_recv = first_int(before["$SYS/broker/messages/received"]) + 20
    seen_clients = seen_recv = False
    while not (seen_clients and seen_recv):
        assert time.monotonic() < deadline, (seen_clients, seen_recv)
        try:
            m = c.recv_publish(timeout=max(0.01, deadline - time.monotonic()))
        except Timeout:
            continue
        if m.topic == "$SYS/broker/clients/connected":
            seen_clients = seen_clients or first_int(m.payload.decode()) >= want_clients
        if m.topic == "$SYS/broker/messages/received":
            seen_recv = seen_recv or first_int(m.payload.decode()) >= want_recv


def test_sys_not_delivered_to_hash(raw, broker_factory):
    """[MQTT-4.7.2-1] '#' and '+/...' subscribers never receive $SYS topics."""
    b = broker_factory(sys_interval=1)
    c = raw(b)
    c.connect("sys3")
    c.subscribe(1, [("#", 0), ("+/broker/#", 0)])
    s = raw(b)
    s.connect("sys3b")
    s.subscribe(1, [("$SYS/#", 0)])
    s.recv_publish(timeout=3)  # $SYS traffic is flowing
    c.recv_nothing(1.2)
