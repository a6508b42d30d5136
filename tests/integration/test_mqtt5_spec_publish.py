"""MQTT 5 normative statements about PUBLISH and the QoS flows: packet identifiers, DUP, RETAIN,
Topic Names and string properties, the QoS 1 and 2 protocol on both sides of the server, message
expiry within a QoS 2 flow, and message ordering."""
import time

import pytest

from mqtt5raw import (CONTENT_TYPE, MESSAGE_EXPIRY, RECEIVE_MAXIMUM, RESPONSE_TOPIC,
                      SESSION_EXPIRY, SUBSCRIPTION_ID, TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM, ack5_pkt,
                      disconnect5_pkt, prop, publish5_pkt, r5, subscribe5_pkt,
                      sub_opts)  # noqa: F401
from mqttraw import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, enc_str, packet
from test_mqtt5_spec_packets import case_ids, conn5, sub5c

KEEP = [(SESSION_EXPIRY, 60)]


def persistent_sub(r5, target, client_id, flt, qos):
    """A subscriber whose session outlives its connection."""
    return sub5c(r5, target, client_id, flt, qos, props=KEEP)


def resume(r5, target, client_id):
    """Reconnect client_id with Clean Start 0; asserts the session was found."""
    c = r5(target)
    assert c.connect5(client_id, clean=False, props=KEEP).session_present == 1
    return c


def closed_with_error(c):
    """The server ends the connection because of a bad packet: a DISCONNECT >= 0x80 if any, then
    the close; returns its reason (None without DISCONNECT)."""
    got = c.expect_closed()
    assert all(p.type != PUBACK for p in got), got
    if got:
        assert got[-1].type == 14 and got[-1].reason >= 0x80, got
        return got[-1].reason
    return None


def test_server_packet_ids_and_qos1_sender(r5, broker):
    """The server as QoS 1 sender: each message in flight gets its own non-zero packet id
    [MQTT5-2.2.1-4] [MQTT5-4.3.2-1], QoS 1 and DUP 0 [MQTT5-4.3.2-2]; QoS 0 ones have no packet
    id [MQTT5-2.2.1-2] and DUP 0 [MQTT5-4.3.1-1] [MQTT5-3.3.1-2]; a message stays unacknowledged
    until its PUBACK [MQTT5-4.3.2-3]: re-sent with DUP 1 on reconnect [MQTT5-3.3.1-1], not the one
    acknowledged."""
    s = persistent_sub(r5, broker, "q1s", "q1s/#", 1)
    p = conn5(r5, broker, "q1s-pub")
    for i in range(5):
        p.publish5("q1s/a", b"m%d" % i, qos=1, pid=i + 1)
    got = [s.recv_publish(ack=False) for _ in range(5)]
    assert [m.payload for m in got] == [b"m%d" % i for i in range(5)]
    ids = [m.pid for m in got]
    assert 0 not in ids and len(set(ids)) == 5, ids
    assert all(m.qos == 1 and not m.dup for m in got)
    s.send(ack5_pkt(PUBACK, got[0].pid))
    p.publish5("q1s/zero", b"q0", qos=0)
    z = s.recv_type(PUBLISH)
    assert (z.qos, z.pid, z.dup, z.payload) == (0, None, False, b"q0")
    s.abort()
    s2 = resume(r5, broker, "q1s")
    again = [s2.recv_publish() for _ in range(4)]
    assert [m.payload for m in again] == [b"m%d" % i for i in range(1, 5)]
    assert all(m.dup for m in again), again
    s2.recv_nothing(0.3)


def test_qos2_sender_flow(r5, broker):
    """The server as QoS 2 sender: a non-zero id per message [MQTT5-4.3.3-1], QoS 2, DUP 0
    [MQTT5-4.3.3-2]; unacknowledged until PUBREC [MQTT5-4.3.3-3] (re-sent with DUP 1 on
    reconnect); after the PUBREC the PUBREL is unacknowledged until PUBCOMP [MQTT5-4.3.3-5] and the
    PUBLISH is not sent again [MQTT5-4.3.3-6]."""
    s = persistent_sub(r5, broker, "q2s", "q2s/#", 2)
    p = conn5(r5, broker, "q2s-pub")
    p.publish5("q2s/a", b"one", qos=2, pid=1)
    p.publish5("q2s/a", b"two", qos=2, pid=2)
    one, two = s.recv_publish(ack=False), s.recv_publish(ack=False)
    assert one.pid and two.pid and one.pid != two.pid
    assert (one.qos, one.dup, two.qos, two.dup) == (2, False, 2, False)
    s.send(ack5_pkt(PUBREC, one.pid))
    assert s.recv_ack(PUBREL, one.pid).flags == 0x02
    s.abort()
    s2 = resume(r5, broker, "q2s")
    got = [s2.recv(), s2.recv()]
    rel = [x for x in got if x.type == PUBREL]
    pub = [x for x in got if x.type == PUBLISH]
    assert [x.pid for x in rel] == [one.pid], got
    assert [(x.payload, x.dup) for x in pub] == [(b"two", True)], got
    s2.send(ack5_pkt(PUBCOMP, one.pid))
    s2.send(ack5_pkt(PUBREC, pub[0].pid))
    s2.complete_pubrel(pub[0].pid)
    s2.recv_nothing(0.3)


def test_receiver_acks_carry_packet_id(r5, broker):
    """The server as receiver answers each PUBLISH as its QoS requires [MQTT5-3.3.4-1]: nothing for
    QoS 0, PUBACK for QoS 1 [MQTT5-4.3.2-4], PUBREC then PUBCOMP for QoS 2 [MQTT5-4.3.3-8], each
    with the PUBLISH's packet id [MQTT5-2.2.1-5]."""
    c = conn5(r5, broker, "acks")
    c.send(publish5_pkt("acks/t", b"0"))
    c.send(publish5_pkt("acks/t", b"1", qos=1, pid=0x1234))
    assert c.recv().type == PUBACK  # the QoS 0 message got nothing before it
    c.send(publish5_pkt("acks/t", b"2", qos=2, pid=0xBEEF))
    c.recv_ack(PUBREC, 0xBEEF)
    c.send(ack5_pkt(PUBREL, 0xBEEF))
    c.recv_ack(PUBCOMP, 0xBEEF)
    c.send(publish5_pkt("acks/t", b"1", qos=1, pid=0xFFFF))
    c.recv_ack(PUBACK, 0xFFFF)


def test_qos1_receiver_same_id_after_puback_is_new(r5, broker):
    """[MQTT5-4.3.2-5] after the PUBACK, a PUBLISH with the same packet id is a new message, even
    with DUP 1; [MQTT5-3.3.1-3] the incoming DUP is not passed on to the subscriber."""
    s = sub5c(r5, broker, "q1r-sub", "q1r/t", 1)
    c = conn5(r5, broker, "q1r")
    c.publish5("q1r/t", b"first", qos=1, pid=5)
    c.send(publish5_pkt("q1r/t", b"second", qos=1, dup=True, pid=5))
    c.recv_ack(PUBACK, 5)
    a, b = s.recv_publish(), s.recv_publish()
    assert (a.payload, b.payload) == (b"first", b"second")
    assert not b.dup


def test_qos2_receiver_no_duplicate_and_id_reuse(r5, broker):
    """[MQTT5-4.3.3-10] a QoS 2 PUBLISH repeated before PUBREL is acknowledged with PUBREC again
    but delivered once; [MQTT5-4.3.3-12] after PUBCOMP the same id is a new message."""
    s = sub5c(r5, broker, "q2r-sub", "q2r/t", 2)
    c = conn5(r5, broker, "q2r")
    c.send(publish5_pkt("q2r/t", b"once", qos=2, pid=9))
    c.recv_ack(PUBREC, 9)
    c.send(publish5_pkt("q2r/t", b"once", qos=2, dup=True, pid=9))
    c.recv_ack(PUBREC, 9)
    c.send(ack5_pkt(PUBREL, 9))
    c.recv_ack(PUBCOMP, 9)
    assert s.recv_publish().payload == b"once"
    s.recv_nothing(0.3)
    c.publish5("q2r/t", b"new", qos=2, pid=9)
    assert s.recv_publish().payload == b"new"


def test_message_expiry_does_not_break_qos2_flows(r5, broker):
    """[MQTT5-4.3.3-7] once a QoS 2 PUBLISH is sent, its Message Expiry no longer applies: the
    unacknowledged message is re-sent after its 1 s expiry; [MQTT5-4.3.3-13] as receiver the
    server completes the flow of a message that has expired (PUBREL -> PUBCOMP 0x00)."""
    s = persistent_sub(r5, broker, "exp2-sub", "exp2/t", 2)
    p = conn5(r5, broker, "exp2")
    p.publish5("exp2/t", b"short", qos=2, pid=1, props=[(MESSAGE_EXPIRY, 1)])
    first = s.recv_publish(ack=False)
    s.abort()
    p.send(publish5_pkt("exp2/t", b"in flight", qos=2, pid=2, props=[(MESSAGE_EXPIRY, 1)]))
    p.recv_ack(PUBREC, 2)
    time.sleep(1.3)  # let both messages' 1 s Message Expiry Interval pass: no event marks it
    p.send(ack5_pkt(PUBREL, 2))
    assert p.recv_ack(PUBCOMP, 2).reason == 0
    s2 = resume(r5, broker, "exp2-sub")
    m = s2.recv_publish()
    assert (m.payload, m.dup, m.pid) == (b"short", True, first.pid)


def test_retained_message_rules(r5, broker):
    """[MQTT5-3.3.1-5] RETAIN 1 replaces the topic's retained message; [MQTT5-3.3.1-8] RETAIN 0
    is not stored and leaves it as it is; [MQTT5-3.3.1-6] RETAIN 1 with an empty payload removes
    it and [MQTT5-3.3.1-7] is not stored itself."""
    p = conn5(r5, broker, "ret-pub")
    p.publish5("ret/t", b"v1", qos=1, retain=True)
    p.publish5("ret/t", b"v2", qos=1, retain=True)
    p.publish5("ret/t", b"live", qos=1, retain=False)

    def retained(name):
        c = conn5(r5, broker, name)
        c.subscribe5(1, [("ret/t", sub_opts(1))])
        return c

    a = retained("ret-a")
    m = a.recv_publish()
    assert (m.payload, m.retain) == (b"v2", True)
    a.recv_nothing(0.2)
    p.publish5("ret/t", b"", qos=1, retain=True)
    m = a.recv_publish()  # the live copy goes to the subscriber
    assert m.payload == b""
    retained("ret-b").recv_nothing(0.3)


BAD_PUBLISH = [
    # [MQTT5-3.3.1-4] both QoS bits set
    ("qos 3", packet(0x36, enc_str("bad/q") + b"\x00\x01\x00x"), (0x81,)),
    # [MQTT5-3.3.2-1] a Topic Name that is not UTF-8
    ("topic not utf-8", publish5_pkt(b"bad/\xff", b"x"), (0x81,)),
    # [MQTT5-3.3.2-2] a wildcard in the Topic Name
    ("wildcard topic", publish5_pkt("bad/+", b"x", qos=1), (0x81, 0x82, 0x90)),
    # [MQTT5-3.3.2-13] a Response Topic that is not UTF-8
    ("response topic not utf-8", publish5_pkt("bad/r", b"x", props=[
        (RESPONSE_TOPIC, enc_str(b"r/\xc3"))]), (0x81,)),
    # [MQTT5-3.3.2-14] a Response Topic with a wildcard
    ("response topic wildcard",
     publish5_pkt("bad/r", b"x", props=[(RESPONSE_TOPIC, "r/#")]), (0x81, 0x82, 0x90)),
    # [MQTT5-3.3.2-19] a Content Type that is not UTF-8
    ("content type not utf-8", publish5_pkt("bad/c", b"x", props=[
        (CONTENT_TYPE, enc_str(b"\xed\xa0\x80"))]), (0x81,)),
    # [MQTT5-3.3.4-6] a Subscription Identifier from the client
    pytest.param("subscription id", publish5_pkt("bad/s", b"x", props=[(SUBSCRIPTION_ID, 1)]),
                 (0x82,), marks=pytest.mark.mosquitto_xfail("2.0.11 accepts it")),
    # [MQTT5-3.6.1-1] PUBREL fixed-header flags other than 0010
    ("pubrel flags", packet(0x60, b"\x00\x01"), (0x81,)),
    # [MQTT5-2.2.1-3] a QoS 1 PUBLISH with packet id 0
    ("publish id 0", publish5_pkt("bad/i", b"x", qos=1, pid=0), (0x81, 0x82)),
    # [MQTT5-2.2.1-3] a SUBSCRIBE with packet id 0
    ("subscribe id 0", subscribe5_pkt(0, [("bad/#", 0)]), (0x81, 0x82)),
    # [MQTT5-3.2.2-17] a Topic Alias above the server's Topic Alias Maximum (10)
    ("alias above maximum", publish5_pkt("bad/a", b"x", props=[(TOPIC_ALIAS, 11)]), (0x94,)),
]


@pytest.mark.parametrize("name,data,reasons", BAD_PUBLISH, ids=case_ids(BAD_PUBLISH))
def test_bad_publish_ends_connection(r5, broker, name, data, reasons):
    """A PUBLISH, PUBREL or SUBSCRIBE breaking a rule ends the connection (after a DISCONNECT
    >= 0x80, if any) and is not delivered: [MQTT5-3.3.1-4] no QoS 3, [MQTT5-3.3.2-1] the Topic
    Name UTF-8 and [MQTT5-3.3.2-2] without wildcards, [MQTT5-3.3.2-13] [MQTT5-3.3.2-14] the
    Response Topic UTF-8 without wildcards, [MQTT5-3.3.2-19] the Content Type UTF-8,
    [MQTT5-3.3.4-6] no Subscription Identifier from a client, [MQTT5-3.6.1-1] PUBREL flags 0010,
    [MQTT5-2.2.1-3] non-zero packet ids, [MQTT5-3.2.2-17] no Topic Alias above the server's
    maximum."""
    s = sub5c(r5, broker, "badp-sub", "bad/#", 0)
    c = conn5(r5, broker, "badp")
    c.send(data)
    reason = closed_with_error(c)
    assert reason is None or reason in reasons, reason  # a DISCONNECT first is a MAY
    s.recv_nothing(0.2)


def test_topic_name_sent_matches_filter(r5, broker):
    """[MQTT5-3.3.2-3] the Topic Name a subscriber gets is the one published, which matches its
    filter (not the filter itself)."""
    s = sub5c(r5, broker, "tn-sub", "tn/+/x/#", 0)
    p = conn5(r5, broker, "tn-pub")
    for topic in ("tn/a/x", "tn/b/x/y/z"):
        p.publish5(topic, b"p")
        assert s.recv_publish().topic == topic


def test_ordered_topics(r5, broker):
    """[MQTT5-4.6.0-5] [MQTT5-4.6.0-6] on a non-shared subscription, messages reach the consumer
    in the order the publishing client sent them, across topics and QoS 0 and 1."""
    s = sub5c(r5, broker, "ord-sub", "ord/#", 2, props=[(RECEIVE_MAXIMUM, 100)])
    p = conn5(r5, broker, "ord-pub")
    sent = []
    for i in range(60):
        topic, qos = "ord/%s" % "abc"[i % 3], i % 2
        p.send(publish5_pkt(topic, b"%d" % i, qos=qos, pid=i + 1 if qos else None))
        sent.append((topic, b"%d" % i))
    got = [s.recv_publish() for _ in range(60)]
    assert [(m.topic, m.payload) for m in got] == sent
    p.send(disconnect5_pkt())


@pytest.mark.sol_only  # Mosquitto 2.0.11 sends no Topic Aliases to clients
def test_outbound_topic_aliases_within_client_maximum(r5, broker):
    """[MQTT5-3.1.2-26] [MQTT5-3.3.2-11] a client that sends Topic Alias Maximum 2 gets Topic
    Aliases, none above 2; each alias is one from 1 to the client's maximum [MQTT5-3.3.2-10], set
    with the topic and then sent with an empty Topic Name, so that every topic can be rebuilt."""
    s = sub5c(r5, broker, "alo-sub", "alo/#", 0, props=[(TOPIC_ALIAS_MAXIMUM, 2)])
    p = conn5(r5, broker, "alo-pub")
    topics = ["alo/a", "alo/b", "alo/a", "alo/c", "alo/b", "alo/a", "alo/a"]
    aliases, seen, used = {}, [], set()
    for t in topics:
        p.publish5(t, b"m")
        m = s.recv_publish()
        alias = prop(m.props, TOPIC_ALIAS)
        if alias is not None:
            assert 1 <= alias <= 2, m
            used.add(alias)
            if m.topic:
                aliases[alias] = m.topic
            else:
                assert alias in aliases, m
        seen.append(m.topic or aliases[alias])
    assert seen == topics
    assert used, "no Topic Alias sent to a client that allows 2"
