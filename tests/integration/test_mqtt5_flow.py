"""MQTT 5 flow control across QoS 2 and reconnects: what counts against the client's Receive
Maximum, failure reason codes in the client's acks, and the limits of a new connection applied to
a resumed session."""
import pytest

from mqtt5raw import (MAXIMUM_PACKET_SIZE, RECEIVE_MAXIMUM, SESSION_EXPIRY, SUBSCRIPTION_ID,
                      ack5_pkt, disconnect5_pkt, prop_all, r5, sub_opts)  # noqa: F401
from mqttraw import PUBACK, PUBCOMP, PUBREC, PUBREL


def sub5(r5, target, client_id, topic, qos=1, props=(), clean=True):
    c = r5(target)
    c.connect5(client_id, clean=clean, props=props)
    assert c.subscribe5(1, [(topic, sub_opts(qos))]).codes == [qos]
    return c


def pub5(r5, target, client_id):
    p = r5(target)
    p.connect5(client_id)
    return p


def test_receive_maximum_counts_qos2_until_pubcomp(r5, broker):
    """[MQTT5-4.9.0-2] a QoS 2 PUBLISH uses the client's send quota until its PUBCOMP: with Receive
    Maximum 1, the next message waits through PUBREC / PUBREL [MQTT5-4.3.3-4] and goes out after
    the PUBCOMP [MQTT5-3.3.4-9]."""
    s = sub5(r5, broker, "q2rm", "q2rm/t", qos=2, props=[(RECEIVE_MAXIMUM, 1)])
    p = pub5(r5, broker, "q2rmpub")
    p.publish5("q2rm/t", b"one", qos=2, pid=1)
    p.publish5("q2rm/t", b"two", qos=2, pid=2)
    m1 = s.recv_publish(ack=False)
    assert m1.payload == b"one"
    s.send(ack5_pkt(PUBREC, m1.pid))
    rel = s.recv_type(PUBREL)
    assert rel.pid == m1.pid
    s.recv_nothing(0.3)
    s.send(ack5_pkt(PUBCOMP, m1.pid))
    assert s.recv_publish().payload == b"two"


@pytest.mark.mosquitto_xfail("2.0.11 sends 2 more PUBLISHes per PUBACK, over Receive Max")
def test_retained_at_subscribe_within_receive_maximum(r5, broker):
    """[MQTT5-3.3.4-9] the retained messages a SUBSCRIBE brings are QoS 1 PUBLISHes like any:
    no more than the client's Receive Maximum (2) unacknowledged; all 5 arrive as it acknowledges
    [MQTT5-3.3.1-9]."""
    p = pub5(r5, broker, "rrmpub")
    for i in range(5):
        p.publish5("rrm/%d" % i, b"r%d" % i, qos=1, retain=True, pid=i + 1)
    s = r5()
    s.connect5("rrm", props=[(RECEIVE_MAXIMUM, 2)])
    assert s.subscribe5(1, [("rrm/#", sub_opts(1))]).codes == [1]
    got = [s.recv_publish(ack=False) for _ in range(2)]
    unacked = list(got)
    while len(got) < 5:
        s.recv_nothing(0.2)  # two in flight: the next waits for a PUBACK
        s.send(ack5_pkt(PUBACK, unacked.pop(0).pid))
        got.append(s.recv_publish(ack=False))
        unacked.append(got[-1])
    assert sorted(m.payload for m in got) == [b"r%d" % i for i in range(5)]
    assert all(m.retain for m in got)


def test_pubrec_failure_ends_flow(r5, broker):
    """[MQTT5-4.3.3-4] a PUBREC with a reason code of 0x80 or more gets no PUBREL; the message is
    done and no longer counts against Receive Maximum (1) [MQTT5-3.3.4-9], so the next one comes."""
    s = sub5(r5, broker, "q2f", "q2f/t", qos=2, props=[(RECEIVE_MAXIMUM, 1)])
    p = pub5(r5, broker, "q2fpub")
    p.publish5("q2f/t", b"refused", qos=2, pid=1)
    p.publish5("q2f/t", b"next", qos=2, pid=2)
    m1 = s.recv_publish(ack=False)
    assert m1.payload == b"refused"
    s.send(ack5_pkt(PUBREC, m1.pid, 0x80))
    m2 = s.recv_publish(ack=False)  # not a PUBREL for m1
    assert m2.payload == b"next"


def test_puback_failure_not_resent(r5, broker):
    """[MQTT5-4.4.0-2] a PUBACK with a reason code of 0x80 or more acknowledges the PUBLISH: it is
    not sent again when the session resumes [MQTT5-4.4.0-1], unlike an unacknowledged one."""
    s = sub5(r5, broker, "pf", "pf/#", props=[(SESSION_EXPIRY, 60)])
    p = pub5(r5, broker, "pfpub")
    p.publish5("pf/a", b"refused", qos=1, pid=1)
    p.publish5("pf/b", b"unacked", qos=1, pid=2)
    m1, m2 = s.recv_publish(ack=False), s.recv_publish(ack=False)
    assert (m1.payload, m2.payload) == (b"refused", b"unacked")
    s.send(ack5_pkt(PUBACK, m1.pid, 0x80))
    assert s.is_open()  # the PUBACK was read before the DISCONNECT
    s.send(disconnect5_pkt())
    s.expect_closed()
    s2 = r5()
    assert s2.connect5("pf", clean=False, props=[(SESSION_EXPIRY, 60)]).session_present == 1
    again = s2.recv_publish()
    assert (again.payload, again.dup) == (b"unacked", True)
    s2.recv_nothing(0.3)


@pytest.mark.mosquitto_xfail("2.0.11 re-sends all in-flight messages too")
def test_resume_respects_new_receive_maximum(r5, broker):
    """[MQTT5-4.9.0-1] the send quota starts afresh from the Receive Maximum of each connection:
    a session resumed with Receive Maximum 1 gets one re-sent PUBLISH at a time
    [MQTT5-3.3.4-9], not the 3 left in flight by the connection before (Receive Maximum 5)."""
    s = sub5(r5, broker, "rr", "rr/t", props=[(SESSION_EXPIRY, 60), (RECEIVE_MAXIMUM, 5)])
    p = pub5(r5, broker, "rrpub")
    for i in range(3):
        p.publish5("rr/t", b"m%d" % i, qos=1, pid=i + 1)
    assert [s.recv_publish(ack=False).payload for _ in range(3)] == [b"m0", b"m1", b"m2"]
    s.send(disconnect5_pkt())
    s.expect_closed()
    s2 = r5()
    s2.connect5("rr", clean=False, props=[(SESSION_EXPIRY, 60), (RECEIVE_MAXIMUM, 1)])
    first = s2.recv_publish(ack=False)
    assert first.payload == b"m0"
    s2.recv_nothing(0.4)


def test_resume_respects_new_maximum_packet_size(r5, broker):
    """[MQTT5-3.1.2-24] a PUBLISH left in flight is not re-sent to a resumed session whose new
    connection's Maximum Packet Size it exceeds; it is discarded [MQTT5-3.1.2-25] and the
    smaller one after it still arrives."""
    s = sub5(r5, broker, "rp", "rp/t", props=[(SESSION_EXPIRY, 60)])
    p = pub5(r5, broker, "rppub")
    p.publish5("rp/t", b"L" * 300, qos=1, pid=1)
    p.publish5("rp/t", b"small", qos=1, pid=2)
    assert [len(s.recv_publish(ack=False).payload) for _ in range(2)] == [300, 5]
    s.send(disconnect5_pkt())
    s.expect_closed()
    s2 = r5()
    s2.connect5("rp", clean=False, props=[(SESSION_EXPIRY, 60), (MAXIMUM_PACKET_SIZE, 100)])
    m = s2.recv_publish()
    assert m.payload == b"small"
    s2.recv_nothing(0.3)


def test_no_local_subscription_id_not_sent(r5, broker):
    """[MQTT5-3.3.4-3] the Subscription Identifiers sent are those of the subscriptions the message
    is delivered for: a client's own PUBLISH matching its No Local subscription (id 5)
    [MQTT5-3.8.3-3] and another subscription (id 7) carries only 7."""
    c = r5()
    c.connect5("nlsid")
    assert c.subscribe5(1, [("nlsid/t", sub_opts(1, no_local=True))],
                        props=[(SUBSCRIPTION_ID, 5)]).codes == [1]
    assert c.subscribe5(2, [("nlsid/#", sub_opts(1))], props=[(SUBSCRIPTION_ID, 7)]).codes == [1]
    c.publish5("nlsid/t", b"own", qos=1, pid=3)
    m = c.recv_publish()
    assert m.payload == b"own"
    assert prop_all(m.props, SUBSCRIPTION_ID) == [7]
