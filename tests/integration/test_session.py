"""Sessions: clean and persistent sessions, session present, offline queueing, re-delivery with
DUP, client-id takeover, keepalive."""
import time

import pytest

from mqttraw import (PUBLISH, PUBREL, PUBCOMP, ack_pkt, connect_pkt, pingreq_pkt, PINGRESP,
                     Closed, Timeout)


def test_clean_session_discards_subscriptions(raw, broker):
    """[MQTT-3.1.2-6] CleanSession 1: previous session discarded, state not reused;
    [MQTT-3.2.2-1] session present 0 with CleanSession 1."""
    a = raw()
    assert a.connect("cs1", clean=False) == (0, 0)
    a.subscribe(1, [("cs1/t", 1)])
    a.close()
    b = raw()
    assert b.connect("cs1", clean=True) == (0, 0)
    pub = raw()
    pub.connect("cs1pub")
    pub.publish("cs1/t", b"x", qos=1)
    b.recv_nothing(0.3)
    b.send(b"\xe0\x00")
    b.close()
    # The clean session ended; a new persistent one starts empty.
    c = raw()
    assert c.connect("cs1", clean=False) == (0, 0)


def test_persistent_session_present_and_subscriptions_kept(raw, broker):
    """[MQTT-3.1.2-4] CleanSession 0 resumes the stored session, found by client id
    [MQTT-3.1.3-2]; [MQTT-3.2.2-2] session present 1;
    [MQTT-3.2.2-3] no stored session -> session present 0; [MQTT-4.1.0-1] session state kept."""
    a = raw()
    assert a.connect("ps1", clean=False) == (0, 0)
    a.subscribe(1, [("ps1/t", 1)])
    a.send(b"\xe0\x00")
    a.close()
    b = raw()
    assert b.connect("ps1", clean=False) == (1, 0)
    pub = raw()
    pub.connect("ps1pub")
    pub.publish("ps1/t", b"still-subscribed", qos=1)
    msg = b.recv_publish()
    assert msg.payload == b"still-subscribed" and msg.qos == 1


def test_offline_qos12_queued_and_delivered(raw, broker):
    """[MQTT-3.1.2-5] QoS 1 and 2 messages matching an offline persistent session are stored and
    delivered on reconnect, in order [MQTT-4.6.0-5]; [MQTT-4.5.0-1] added to the session."""
    a = raw()
    a.connect("off1", clean=False)
    a.subscribe(1, [("off1/#", 2)])
    a.send(b"\xe0\x00")
    a.close()
    pub = raw()
    pub.connect("off1pub")
    for i in range(5):
        pub.publish("off1/q1", f"one-{i}".encode(), qos=1, pid=i + 1)
    for i in range(3):
        pub.publish("off1/q2", f"two-{i}".encode(), qos=2, pid=100 + i)
    b = raw()
    assert b.connect("off1", clean=False) == (1, 0)
    got = [b.recv_publish() for _ in range(8)]
    assert [m.payload for m in got] == [f"one-{i}".encode() for i in range(5)] + \
        [f"two-{i}".encode() for i in range(3)]
    assert [m.qos for m in got] == [1] * 5 + [2] * 3
    b.recv_nothing(0.3)


def test_unacked_qos1_resent_with_dup(raw, broker):
    """[MQTT-4.4.0-1] on reconnect with CleanSession 0 unacknowledged PUBLISH packets are re-sent
    with their original packet ids; [MQTT-3.3.1-1] DUP=1 on re-delivery."""
    a = raw()
    a.connect("dup1", clean=False)
    a.subscribe(1, [("dup1/t", 1)])
    pub = raw()
    pub.connect("dup1pub")
    pub.publish("dup1/t", b"ack-me", qos=1)
    first = a.recv_publish(ack=False)
    assert first.qos == 1 and not first.dup and first.pid
    a.abort()
    b = raw()
    assert b.connect("dup1", clean=False) == (1, 0)
    again = b.recv_publish(ack=False)
    assert again.payload == b"ack-me" and again.pid == first.pid and again.dup
    b.send(ack_pkt(4, again.pid))
    b.recv_nothing(0.3)


def test_unacked_qos2_pubrel_resent(raw, broker):
    """[MQTT-4.4.0-1] an unacknowledged PUBREL is re-sent on reconnect with the same packet id;
    [MQTT-4.3.3-1] once PUBREL is sent the PUBLISH is not re-sent."""
    a = raw()
    a.connect("dup2", clean=False)
    a.subscribe(1, [("dup2/t", 2)])
    pub = raw()
    pub.connect("dup2pub")
    pub.publish("dup2/t", b"q2", qos=2)
    msg = a.recv_publish(ack=False)
    assert msg.qos == 2
    a.send(ack_pkt(5, msg.pid))  # PUBREC
    rel = a.recv_type(PUBREL)
    assert rel.pid == msg.pid and rel.flags == 0x02
    a.abort()  # no PUBCOMP
    b = raw()
    assert b.connect("dup2", clean=False) == (1, 0)
    rel2 = b.recv()
    assert rel2.type == PUBREL and rel2.pid == msg.pid, rel2
    b.send(ack_pkt(PUBCOMP, msg.pid))
    b.recv_nothing(0.3)


def test_unacked_qos2_publish_resent_with_dup(raw, broker):
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1] a QoS 2 PUBLISH with no PUBREC is re-sent with DUP=1."""
    a = raw()
    a.connect("dup3", clean=False)
    a.subscribe(1, [("dup3/t", 2)])
    pub = raw()
    pub.connect("dup3pub")
    pub.publish("dup3/t", b"q2again", qos=2)
    msg = a.recv_publish(ack=False)
    a.abort()
    b = raw()
    b.connect("dup3", clean=False)
    again = b.recv_publish(ack=True)
    assert again.payload == b"q2again" and again.dup and again.pid == msg.pid and again.qos == 2
    b.recv_nothing(0.3)


def test_takeover_closes_old_connection(raw, broker):
    """[MQTT-3.1.4-2] a CONNECT with the id of a connected client disconnects the existing one;
    the new connection works and inherits the persistent session [MQTT-3.1.4-3]."""
    a = raw()
    a.connect("take1", clean=False)
    a.subscribe(1, [("take1/t", 1)])
    b = raw()
    assert b.connect("take1", clean=False) == (1, 0)
    a.expect_closed()
    pub = raw()
    pub.connect("take1pub")
    pub.publish("take1/t", b"new-owner", qos=1)
    assert b.recv_publish().payload == b"new-owner"


def test_session_lasts_while_connected(raw, broker):
    """[MQTT-4.1.0-2] a clean session lasts as long as the network connection: its subscription
    keeps receiving while it is open."""
    a = raw()
    a.connect("alive1", clean=True)
    a.subscribe(1, [("alive1/t", 0)])
    pub = raw()
    pub.connect("alive1pub")
    for i in range(3):
        pub.publish("alive1/t", b"%d" % i)
        assert a.recv_publish().payload == b"%d" % i


@pytest.mark.mosquitto_xfail("Mosquitto 2.0.11 checks keepalives coarsely (~4.6 s for keepalive 1)")
def test_keepalive_timeout_closes(raw):
    """[MQTT-3.1.2-24] no packet within 1.5x keepalive -> the server disconnects. Keepalive 1 s:
    not closed before 1 s, closed by 1.5 s plus slack."""
    c = raw()
    c.connect("ka1", keepalive=1)
    t0 = time.monotonic()
    c.expect_closed(timeout=3.5)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.95, f"closed too early: {elapsed:.2f}s"
    assert elapsed <= 2.5, f"closed too late: {elapsed:.2f}s"


def test_keepalive_pings_keep_connection(raw):
    """[MQTT-3.1.2-24] [MQTT-3.12.4-1] PINGREQ within the keepalive keeps the connection open, each
    answered with PINGRESP."""
    c = raw()
    c.connect("ka2", keepalive=1)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        c.send(pingreq_pkt())
        resp = c.recv(1.0)
        assert resp.type == PINGRESP and resp.body == b"" and resp.flags == 0
        try:
            c.recv(0.7)
            raise AssertionError("unexpected packet")
        except Timeout:
            pass
        except Closed:
            raise AssertionError("closed although PINGREQ was sent within the keepalive")


def test_keepalive_zero_not_enforced(raw):
    """[MQTT-3.1.2-24] keepalive 0 turns the mechanism off: an idle connection stays open."""
    c = raw()
    c.connect("ka0", keepalive=0)
    c.recv_nothing(2.2)
    assert c.is_open()


def test_pingreq_answered(raw):
    """[MQTT-3.12.4-1] PINGREQ -> PINGRESP."""
    c = raw()
    c.connect("ping")
    for _ in range(3):
        c.send(pingreq_pkt())
        assert c.recv().type == PINGRESP
