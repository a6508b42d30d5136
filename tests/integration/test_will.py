"""Last will: published on every close that is not a DISCONNECT, never after DISCONNECT."""
import pytest

from mqttraw import connect_pkt, publish_pkt, Timeout


def watcher(raw, topic="will/#", qos=1, cid="willwatch"):
    w = raw()
    w.connect(cid)
    assert w.subscribe(1, [(topic, qos)]) == [qos]
    return w


def test_will_on_socket_drop(raw, broker):
    """[MQTT-3.1.2-8] will stored and published when the connection closes without DISCONNECT;
    [MQTT-3.1.2-16] Will Retain 0 -> published as non-retained; will QoS honoured."""
    w = watcher(raw)
    c = raw()
    c.connect("wd1", will=("will/wd1", b"gone", 1, False))
    c.abort()
    m = w.recv_publish(timeout=3)
    assert (m.topic, m.payload, m.retain, m.qos) == ("will/wd1", b"gone", False, 1)


def test_will_on_tcp_close_without_disconnect(raw, broker):
    """[MQTT-3.1.2-8] a plain TCP close (FIN) without DISCONNECT also triggers the will."""
    w = watcher(raw)
    c = raw()
    c.connect("wd2", will=("will/wd2", b"fin", 0, False))
    c.close()
    m = w.recv_publish(timeout=3)
    assert (m.topic, m.payload) == ("will/wd2", b"fin")


def test_no_will_after_disconnect(raw, broker):
    """[MQTT-3.14.4-3] [MQTT-3.1.2-10] DISCONNECT discards the will: nothing published."""
    w = watcher(raw)
    c = raw()
    c.connect("wd3", will=("will/wd3", b"should-not", 0, False))
    c.send(b"\xe0\x00")
    c.expect_closed()
    w.recv_nothing(0.5)


def test_no_will_without_will_flag(raw, broker):
    """[MQTT-3.1.2-12] Will Flag 0 -> nothing is published when the connection ends."""
    w = watcher(raw, topic="#")
    c = raw()
    c.connect("wd4")
    c.abort()
    w.recv_nothing(0.5)


def test_will_on_keepalive_timeout(raw, broker):
    """[MQTT-3.1.2-8] [MQTT-3.1.2-24] keepalive expiry closes the connection and publishes the will."""
    w = watcher(raw)
    c = raw()
    c.connect("wd5", keepalive=1, will=("will/wd5", b"timeout", 0, False))
    # The 1.5x bound itself is checked in test_session; here only that the will follows
    # (generous deadline: Mosquitto's keepalive check is coarse).
    m = w.recv_publish(timeout=7)
    assert (m.topic, m.payload) == ("will/wd5", b"timeout")
    c.expect_closed(1)


def test_will_on_protocol_error(raw, broker):
    """[MQTT-3.1.2-8] [MQTT-4.8.0-1] a protocol violation closes the connection and the will is
    published (the close is not a DISCONNECT)."""
    w = watcher(raw)
    c = raw()
    c.connect("wd6", will=("will/wd6", b"violation", 0, False))
    c.send(publish_pkt("bad/+/topic", b"x"))
    c.expect_closed()
    m = w.recv_publish(timeout=3)
    assert (m.topic, m.payload) == ("will/wd6", b"violation")


def test_will_on_takeover(raw, broker):
    """[MQTT-3.1.4-2] [MQTT-3.1.2-8] takeover closes the old connection without DISCONNECT, so its
    will is published; the new connection's will is not."""
    w = watcher(raw)
    a = raw()
    a.connect("wd7", will=("will/wd7", b"old", 0, False))
    b = raw()
    b.connect("wd7", will=("will/wd7", b"new", 0, False))
    a.expect_closed()
    m = w.recv_publish(timeout=3)
    assert m.payload == b"old"
    w.recv_nothing(0.3)
    b.send(b"\xe0\x00")
    w.recv_nothing(0.3)


def test_will_retained(raw, broker):
    """[MQTT-3.1.2-17] Will Retain 1 -> the will is published as a retained message: a later
    subscriber receives it with RETAIN=1; [MQTT-3.1.2-10] published once only."""
    c = raw()
    c.connect("wd8", will=("will/ret/wd8", b"retained-will", 1, True))
    w = watcher(raw, topic="will/ret/#", cid="wd8watch")
    c.abort()
    live = w.recv_publish(timeout=3)
    assert live.payload == b"retained-will"
    later = raw()
    later.connect("wd8late")
    later.subscribe(1, [("will/ret/#", 1)])
    m = later.recv_publish()
    assert (m.topic, m.payload, m.retain) == ("will/ret/wd8", b"retained-will", True)
    w.recv_nothing(0.3)


def test_will_qos2_delivered(raw, broker):
    """[MQTT-3.1.2-14] Will QoS 2 is accepted and the will is delivered at QoS 2."""
    w = watcher(raw, qos=2)
    c = raw()
    c.connect("wd9", will=("will/wd9", b"q2", 2, False))
    c.abort()
    m = w.recv_publish(timeout=3)
    assert m.qos == 2 and m.payload == b"q2"
