"""MQTT 5 PUBLISH: properties passed on unchanged (paho v5 and mosquitto_pub/sub -V mqttv5), mixed
3.1.1 / v5 clients, Message Expiry Interval, inbound Topic Aliases, the Payload Format Indicator
check, reason codes in PUBACK/PUBREC/PUBREL/PUBCOMP, the will and DISCONNECT 0x04, and malformed
or protocol-error packets answered with DISCONNECT and a reason code."""
import subprocess
import time

import pytest

from mqttclients import MosquittoSub, PahoClient
from mqtt5raw import (CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY, PAYLOAD_FORMAT,
                      RECEIVE_MAXIMUM, RESPONSE_TOPIC, SESSION_EXPIRY, SUBSCRIPTION_ID,
                      TOPIC_ALIAS, USER_PROPERTY, ack5_pkt, disconnect5_pkt, p5, prop, prop_all,
                      publish_props, publish5_pkt, r5, sub_opts, subscribe5_pkt,
                      unsubscribe5_pkt)  # noqa: F401
from mqttraw import PUBACK, PUBCOMP, PUBREC, PUBREL, connect_pkt

USER_PROPS = [("a", "1"), ("b", "two"), ("a", "3"), ("ünï", "cödé")]


def sub5(r5, target, client_id, topic, qos=1, props=()):
    c = r5(target)
    c.connect5(client_id, props=props)
    assert c.subscribe5(1, [(topic, sub_opts(qos))]).codes == [qos]
    return c


def check_alive(r5, target, name):
    """Another client on the same broker still works: a QoS 1 round trip through it."""
    o = sub5(r5, target, name, name + "/t")
    ack = o.publish5(name + "/t", b"still fine", qos=1, pid=7)
    assert ack.reason == 0
    assert o.recv_publish().payload == b"still fine"


def test_publish_properties_passed_unchanged(p5, r5, broker):
    """paho v5 to paho v5 and a raw v5 subscriber: User Properties unaltered [MQTT5-3.3.2-17] in
    order, repeated keys included [MQTT5-3.3.2-18]; Content Type [MQTT5-3.3.2-20], Payload Format
    Indicator [MQTT5-3.3.2-4], Response Topic [MQTT5-3.3.2-15], Correlation Data [MQTT5-3.3.2-16]
    unaltered; Message Expiry Interval is what is left of it [MQTT5-3.3.2-6]."""
    sub = p5(broker, "ppsub")
    assert sub.subscribe("pp/#", 1) == [1]
    raw = sub5(r5, broker, "ppraw", "pp/#")
    pub = p5(broker, "pppub")
    pub.publish("pp/t", "héllo", 1, props=publish_props(
        UserProperty=USER_PROPS, ContentType="application/json", PayloadFormatIndicator=1,
        ResponseTopic="pp/reply", CorrelationData=b"\x00\x01corr\xff", MessageExpiryInterval=60))
    m = sub.wait_messages(1)[0]
    assert m.payload == "héllo".encode()
    p = m.properties
    assert p.UserProperty == USER_PROPS
    assert p.ContentType == "application/json"
    assert p.PayloadFormatIndicator == 1
    assert p.ResponseTopic == "pp/reply"
    assert p.CorrelationData == b"\x00\x01corr\xff"
    assert 58 <= p.MessageExpiryInterval <= 60
    r = raw.recv_publish()
    assert prop_all(r.props, USER_PROPERTY) == USER_PROPS
    assert prop(r.props, CONTENT_TYPE) == "application/json"
    assert prop(r.props, CORRELATION_DATA) == b"\x00\x01corr\xff"
    assert prop(r.props, RESPONSE_TOPIC) == "pp/reply" and prop(r.props, PAYLOAD_FORMAT) == 1
    # No Topic Alias to a client that allowed none [MQTT5-3.1.2-27], no Subscription Identifier
    # for a subscription without one.
    assert prop(r.props, TOPIC_ALIAS) is None and prop(r.props, SUBSCRIPTION_ID) is None


def test_publish_properties_mosquitto_clients(broker):
    """mosquitto_pub -V mqttv5 -D publish ... to mosquitto_sub -V mqttv5: User Properties
    [MQTT5-3.3.2-17] [MQTT5-3.3.2-18], Content Type [MQTT5-3.3.2-20], Response Topic
    [MQTT5-3.3.2-15], Correlation Data [MQTT5-3.3.2-16], Payload Format Indicator [MQTT5-3.3.2-4]
    and the Message Expiry Interval left [MQTT5-3.3.2-6] reach the subscriber."""
    fmt = "%t|%P|%C|%R|%D|%F|%E|%p"
    s = MosquittoSub(broker.host, broker.port, ["mp/t"], qos=1,
                     extra=["-V", "mqttv5", "-F", fmt], count=1)
    s.wait_subscribed()
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
                    "-q", "1", "-t", "mp/t", "-m", "payload",
                    "-D", "publish", "user-property", "k1", "v1",
                    "-D", "publish", "user-property", "k2", "v2",
                    "-D", "publish", "content-type", "text/plain",
                    "-D", "publish", "response-topic", "mp/resp",
                    "-D", "publish", "correlation-data", "corr-42",
                    "-D", "publish", "payload-format-indicator", "1",
                    "-D", "publish", "message-expiry-interval", "30"],
                   check=True, timeout=10, capture_output=True)
    line = s.wait_line(lambda l: l.startswith("mp/t|"))
    s.stop()
    topic, userprops, ctype, resp, corr, pfi, exp, payload = line.split("|")
    assert userprops.split() == ["k1:v1", "k2:v2"], line
    assert (ctype, resp, corr, pfi, payload) == ("text/plain", "mp/resp", "corr-42", "1",
                                                 "payload"), line
    assert 28 <= int(exp) <= 30, line


def test_mixed_v5_and_311_clients(p5, r5, raw, broker):
    """A v5 PUBLISH with User Properties reaches a 3.1.1 subscriber (raw and paho 3.1.1) as a
    plain 3.1.1 PUBLISH, no property block; a 3.1.1 PUBLISH (mosquitto_pub
    -V mqttv311) reaches a v5 subscriber with an empty property block [MQTT5-2.2.2-1]."""
    old = raw()
    old.connect("old311")
    assert old.subscribe(1, [("mix/#", 1)]) == [1]
    oldp = PahoClient(broker.host, broker.port, "old311paho")
    try:
        assert oldp.subscribe("mix/#", 1) == [1]
        new = p5(broker, "new5")
        new.subscribe("mix/#", 1)
        rawnew = sub5(r5, broker, "new5raw", "mix/#")
        new.publish("mix/from5", b"v5 says hi", 1,
                    props=publish_props(UserProperty=USER_PROPS, ContentType="text/plain"))
        m = old.recv_publish()
        assert (m.topic, m.payload, m.qos) == ("mix/from5", b"v5 says hi", 1)
        assert m.body == b"\x00\x09mix/from5" + m.body[11:13] + b"v5 says hi"
        assert oldp.wait_messages(1)[0].payload == b"v5 says hi"
        assert rawnew.recv_publish().payload == b"v5 says hi"
        assert new.wait_messages(1)[0].properties.UserProperty == USER_PROPS
        subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V",
                        "mqttv311", "-q", "1", "-t", "mix/from311", "-m", "plain"],
                       check=True, timeout=10)
        r = rawnew.recv_publish()
        assert (r.topic, r.payload, r.props) == ("mix/from311", b"plain", [])
        assert r.body[len(b"\x00\x0bmix/from311") + 2] == 0  # property length 0
        got = new.wait_messages(2)[1]
        assert got.payload == b"plain" and not hasattr(got.properties, "UserProperty")
        assert old.recv_publish().payload == b"plain"
    finally:
        oldp.stop()


def test_message_expiry_in_offline_queue_mosquitto_clients(broker):
    """[MQTT5-3.3.2-5] a queued message whose Message Expiry Interval (1 s) passed before it could
    be sent is not delivered; one with 60 s is, with what is left of it [MQTT5-3.3.2-6]. Clients:
    mosquitto_sub -V mqttv5 -c -x 60 (a session that outlives its connection) and mosquitto_pub
    -D publish message-expiry-interval."""
    base = ["-h", broker.host, "-p", str(broker.port), "-V", "mqttv5"]
    subprocess.run(["mosquitto_sub"] + base + ["-c", "-i", "mexp", "-x", "60", "-q", "1", "-t",
                                               "mexp/t", "-E"], check=True, timeout=10)
    for exp, msg in (("1", "short"), ("60", "long")):
        subprocess.run(["mosquitto_pub"] + base + ["-q", "1", "-t", "mexp/t", "-m", msg, "-D",
                                                   "publish", "message-expiry-interval", exp],
                       check=True, timeout=10)
    time.sleep(2.2)  # the passage of time is the event: the short interval runs out
    out = subprocess.run(["mosquitto_sub"] + base + ["-c", "-i", "mexp", "-x", "60", "-q", "1",
                                                     "-t", "mexp/t", "-C", "1", "-W", "5", "-F",
                                                     "%E %p"],
                         check=True, timeout=10, capture_output=True, text=True).stdout
    exp, payload = out.split()
    assert payload == "long", out
    assert 55 <= int(exp) <= 58, out


@pytest.mark.mosquitto_xfail("observed: 2.0.11 sends nothing after that PUBACK")
def test_message_expiry_while_queued_online(r5, broker):
    """[MQTT5-3.3.2-5] a message waiting behind the client's Receive Maximum (1) whose expiry
    passes before there is room is not sent; the ones without expiry are, in order."""
    s = sub5(r5, broker, "mq", "mq/t", props=[(RECEIVE_MAXIMUM, 1)])
    p = r5()
    p.connect5("mqpub")
    p.publish5("mq/t", b"first", qos=1, pid=1)
    p.publish5("mq/t", b"expiring", qos=1, pid=2, props=[(MESSAGE_EXPIRY, 1)])
    p.publish5("mq/t", b"third", qos=1, pid=3)
    m1 = s.recv_publish(ack=False)
    assert m1.payload == b"first"
    s.recv_nothing(0.2)
    time.sleep(1.8)  # the passage of time is the event: the queued message expires
    s.send(ack5_pkt(PUBACK, m1.pid))
    m3 = s.recv_publish()
    assert m3.payload == b"third"
    s.recv_nothing(0.3)


def test_topic_alias_inbound(r5, broker):
    """[MQTT5-3.3.2-12] the server accepts Topic Aliases 1..10 (its Topic Alias Maximum): set with
    a topic, used with an empty topic, replaced by a new mapping; subscribers get the full topic
    name and no Topic Alias [MQTT5-3.1.2-27]. Mappings do not carry over to a new connection
    [MQTT5-3.3.2-7]: an unknown alias with an empty topic is a Protocol Error, DISCONNECT 0x82."""
    s = sub5(r5, broker, "tasub", "ta/#", qos=0)
    p = r5()
    p.connect5("tapub")
    p.send(publish5_pkt("ta/one", b"1", props=[(TOPIC_ALIAS, 1)]))
    p.send(publish5_pkt("", b"2", props=[(TOPIC_ALIAS, 1)]))
    p.send(publish5_pkt("ta/ten", b"3", props=[(TOPIC_ALIAS, 10)]))
    p.send(publish5_pkt("ta/uno", b"4", props=[(TOPIC_ALIAS, 1)]))
    p.send(publish5_pkt("", b"5", props=[(TOPIC_ALIAS, 1)]))
    ack = p.publish5("", b"6", qos=1, pid=2, props=[(TOPIC_ALIAS, 10)])
    assert ack.reason == 0
    got = [s.recv_publish() for _ in range(6)]
    assert [(m.topic, m.payload) for m in got] == [
        ("ta/one", b"1"), ("ta/one", b"2"), ("ta/ten", b"3"), ("ta/uno", b"4"), ("ta/uno", b"5"),
        ("ta/ten", b"6")]
    assert all(prop(m.props, TOPIC_ALIAS) is None for m in got)
    p.send(disconnect5_pkt())
    p.expect_closed()
    p2 = r5()
    p2.connect5("tapub")
    p2.send(publish5_pkt("", b"lost", props=[(TOPIC_ALIAS, 1)]))
    p2.expect_disconnect(0x82)
    s.recv_nothing(0.3)



@pytest.mark.parametrize("alias", [
    pytest.param(0, marks=[pytest.mark.mosquitto_xfail("2.0.11 answers 0x81")]),
    11, 0xFFFF])
def test_topic_alias_invalid(r5, broker, alias):
    """[MQTT5-3.3.2-8] Topic Alias 0 is not allowed and [MQTT5-3.3.2-9] none above the server's
    Topic Alias Maximum (10): DISCONNECT 0x94 (Topic Alias invalid), then the close
    [MQTT5-4.13.1-1]; the message is not delivered; another client keeps working."""
    s = sub5(r5, broker, "tais", "tai/#", qos=0)
    p = r5()
    p.connect5("taip")
    p.send(publish5_pkt("tai/t", b"x", props=[(TOPIC_ALIAS, alias)]))
    p.expect_disconnect(0x94)
    s.recv_nothing(0.3)
    check_alive(r5, broker, "taiok")


@pytest.mark.mosquitto_xfail("2.0.11 accepts a payload that is not UTF-8")
def test_payload_format_indicator_checked(r5, broker):
    """[MQTT5-3.3.2-4] Payload Format Indicator 1 with UTF-8 data is delivered with the
    indicator; 0 with arbitrary bytes is delivered; 1 with bytes that are not UTF-8 is answered with
    DISCONNECT 0x99 (Payload format invalid) [MQTT5-4.13.1-1] and not delivered."""
    s = sub5(r5, broker, "pfs", "pf/#")
    p = r5()
    p.connect5("pfp")
    p.publish5("pf/t", "ok ✓".encode(), qos=1, pid=1, props=[(PAYLOAD_FORMAT, 1)])
    m = s.recv_publish()
    assert m.payload == "ok ✓".encode() and prop(m.props, PAYLOAD_FORMAT) == 1
    p.publish5("pf/t", b"\xff\xfe", qos=1, pid=2, props=[(PAYLOAD_FORMAT, 0)])
    m = s.recv_publish()
    assert m.payload == b"\xff\xfe" and prop(m.props, PAYLOAD_FORMAT) == 0
    p.send(publish5_pkt("pf/t", b"bad \xc3\x28", qos=1, pid=3, props=[(PAYLOAD_FORMAT, 1)]))
    p.expect_disconnect(0x99)
    s.recv_nothing(0.3)
    check_alive(r5, broker, "pfok")


@pytest.mark.mosquitto_xfail("2.0.11 sends PUBREC 0x00 with no subscribers")
def test_puback_pubrec_no_matching_subscribers(r5, broker):
    """[MQTT5-3.4.2-1] [MQTT5-3.5.2-1] PUBACK / PUBREC reason 0x10 (No matching subscribers) when
    nobody subscribed, 0x00 when somebody did; after PUBREC 0x10 the QoS 2 flow completes
    normally (PUBREL -> PUBCOMP 0x00) [MQTT5-4.3.3-11]."""
    p = r5()
    p.connect5("nms")
    assert p.publish5("nms/t", b"x", qos=1, pid=1).reason == 0x10
    p.send(publish5_pkt("nms/t", b"x", qos=2, pid=2))
    rec = p.recv_ack(PUBREC, 2)
    assert rec.reason == 0x10
    p.send(ack5_pkt(PUBREL, 2))
    assert p.recv_ack(PUBCOMP, 2).reason == 0
    s = sub5(r5, broker, "nmss", "nms/t")
    assert p.publish5("nms/t", b"y", qos=1, pid=3).reason == 0
    assert p.publish5("nms/t", b"z", qos=2, pid=4).reason == 0
    assert [s.recv_publish().payload for _ in range(2)] == [b"y", b"z"]


@pytest.mark.mosquitto_xfail("2.0.11 acknowledges an ACL-denied PUBLISH with 0x00")
def test_puback_pubrec_not_authorized(r5, broker_factory):
    """[MQTT5-3.4.2-1] [MQTT5-3.5.2-1] a PUBLISH the ACL refuses: PUBACK / PUBREC 0x87 (Not
    authorized), nothing delivered; a PUBREC of 0x80 or more ends the QoS 2 flow
    [MQTT5-4.3.3-9]: no packet id is kept, so PUBREL for it gets PUBCOMP 0x92."""
    b = broker_factory(acl="topic readwrite open/#\ntopic read closed/#\n")
    s = sub5(r5, b, "acls", "closed/#")
    p = r5(b)
    p.connect5("aclp")
    assert p.publish5("closed/t", b"x", qos=1, pid=1).reason == 0x87
    p.send(publish5_pkt("closed/t", b"x", qos=2, pid=2))
    assert p.recv_ack(PUBREC, 2).reason == 0x87
    p.send(ack5_pkt(PUBREL, 2))
    assert p.recv_ack(PUBCOMP, 2).reason == 0x92
    s.recv_nothing(0.3)
    assert p.publish5("open/t", b"x", qos=1, pid=3).reason == 0x10


@pytest.mark.mosquitto_xfail("2.0.11 answers PUBCOMP 0x00 for an unknown id")
def test_pubrel_pubrec_unknown_packet_id(r5, broker):
    """[MQTT5-3.7.2-1] PUBREL for a packet id the server does not hold: PUBCOMP 0x92 (Packet
    Identifier not found); [MQTT5-3.6.2-1] PUBREC for an id it never sent: PUBREL 0x92. The
    connection stays open."""
    c = r5()
    c.connect5("pid")
    c.send(ack5_pkt(PUBREL, 4321))
    comp = c.recv_ack(PUBCOMP, 4321)
    assert comp.reason == 0x92
    c.send(ack5_pkt(PUBREC, 999))
    rel = c.recv_ack(PUBREL, 999)
    assert rel.reason == 0x92 and rel.flags == 0x02
    assert c.is_open()


def test_disconnect_with_will_and_normal(p5, r5, broker):
    """DISCONNECT 0x04 (Disconnect with Will Message) publishes the will, with its properties (User
    Property, Content Type, the Message Expiry Interval left) passed on [MQTT5-3.1.2-8]; DISCONNECT
    0x00 discards it [MQTT5-3.14.4-3] [MQTT5-3.1.2-10]."""
    w = p5(broker, "willsub")
    w.subscribe("will/#", 1)
    c = r5()
    c.connect5("willer", will=("will/a", b"gone", 1, False,
                               [(USER_PROPERTY, ("why", "test")), (CONTENT_TYPE, "text/x"),
                                (MESSAGE_EXPIRY, 60)]))
    c.send(disconnect5_pkt(0x04))
    c.expect_closed()
    m = w.wait_messages(1)[0]
    assert (m.topic, m.payload) == ("will/a", b"gone")
    assert m.properties.UserProperty == [("why", "test")]
    assert m.properties.ContentType == "text/x"
    assert 58 <= m.properties.MessageExpiryInterval <= 60  # counted from its publication
    c2 = r5()
    c2.connect5("willer2", will=("will/b", b"must not", 1, False, []))
    c2.send(disconnect5_pkt(0x00))
    c2.expect_closed()
    # a message sent after the close arrives after the will would have
    p = r5()
    p.connect5("willpub")
    p.publish5("will/marker", b"marker", qos=1)
    msgs = w.wait_messages(2)
    assert [m.topic for m in msgs] == ["will/a", "will/marker"]


# Malformed packets and Protocol Errors after CONNACK: DISCONNECT with the reason, then the close
# [MQTT5-4.13.1-1]; another client on the broker is unaffected.
BAD = [
    # an unknown property identifier (0x7F)
    ("unknown property", publish5_pkt("bad/t", b"x", props=[(0x7F, b"\x00")]), 0x81),
    # a property allowed only elsewhere: Session Expiry Interval in PUBLISH
    ("property of another packet", publish5_pkt("bad/t", b"x", props=[(SESSION_EXPIRY, 5)]),
     0x81),
    # the property length runs past the end of the packet
    ("property length too long", b"\x30\x08\x00\x05bad/t\x09", 0x81),
    # Payload Format Indicator other than 0 or 1
    pytest.param("payload format 2", publish5_pkt("bad/t", b"x", props=[(PAYLOAD_FORMAT, 2)]),
                 0x81, marks=pytest.mark.mosquitto_xfail("2.0.11 accepts it")),
    # the same property twice is a Protocol Error
    pytest.param("content type twice",
                 publish5_pkt("bad/t", b"x", props=[(CONTENT_TYPE, "a"), (CONTENT_TYPE, "b")]),
                 0x82, marks=pytest.mark.mosquitto_xfail("2.0.11 closes without a DISCONNECT")),
    # a Subscription Identifier from a client [MQTT5-3.3.4-6]
    pytest.param("subscription id in PUBLISH",
                 publish5_pkt("bad/t", b"x", props=[(SUBSCRIPTION_ID, 3)]), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 accepts it")),
    # an empty topic without a Topic Alias
    ("empty topic, no alias", publish5_pkt("", b"x"), 0x82),
    # a PUBACK reason code PUBACK does not define [MQTT5-3.4.2-1]
    pytest.param("undefined PUBACK reason", ack5_pkt(PUBACK, 1, 0x05), 0x81,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 accepts it")),
    # a Topic Name with a wildcard [MQTT5-3.3.2-2]: 0x90 (Topic Name invalid)
    pytest.param("wildcard topic", publish5_pkt("bad/#", b"x"), 0x90,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 answers 0x82")),
    # a Response Topic with a wildcard [MQTT5-3.3.2-14]
    pytest.param("response topic wildcard",
                 publish5_pkt("bad/t", b"x", props=[(RESPONSE_TOPIC, "bad/#")]), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 accepts it")),
    # Subscription Identifier 0 in SUBSCRIBE
    pytest.param("subscription id 0",
                 subscribe5_pkt(1, [("bad/t", sub_opts(0))], props=[(SUBSCRIPTION_ID, 0)]), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 answers 0x81")),
    # Retain Handling 3
    pytest.param("retain handling 3", subscribe5_pkt(1, [("bad/t", sub_opts(0, rh=3))]), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 answers 0x81")),
    # No Local on a Shared Subscription [MQTT5-3.8.3-4]
    pytest.param("no local on $share",
                 subscribe5_pkt(1, [("$share/g/bad", sub_opts(0, no_local=True))]), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 accepts it")),
    # SUBSCRIBE / UNSUBSCRIBE without a filter [MQTT5-3.8.3-2] [MQTT5-3.10.3-2]
    pytest.param("SUBSCRIBE without filters", subscribe5_pkt(1, []), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 answers 0x81")),
    pytest.param("UNSUBSCRIBE without filters", unsubscribe5_pkt(1, []), 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 answers 0x81")),
    # reserved bits of the Subscription Options set [MQTT5-3.8.3-5]
    ("subscription option reserved bits", b"\x82\x0a\x00\x01\x00\x00\x04bad/\xc0", 0x81),
    # DISCONNECT reserved flags [MQTT5-3.14.1-1]
    pytest.param("DISCONNECT flags", b"\xe1\x00", 0x81,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 closes without a DISCONNECT")),
    # a server-only packet from the client (CONNACK)
    pytest.param("CONNACK from client", b"\x20\x03\x00\x00\x00", 0x82,
                 marks=pytest.mark.mosquitto_xfail("2.0.11 closes without a DISCONNECT")),
]


@pytest.mark.parametrize("name,data,reason", BAD,
                         ids=[b.values[0] if hasattr(b, "marks") else b[0] for b in BAD])
def test_bad_packet_gets_disconnect_reason(r5, broker, name, data, reason):
    """[MQTT5-4.13.1-1] a Malformed Packet (0x81) or Protocol Error (0x82) after CONNACK: the server
    sends DISCONNECT with that reason code [MQTT5-3.14.2-1] and closes [MQTT5-4.13.2-1]; a
    DISCONNECT from the server carries no Session Expiry Interval [MQTT5-3.14.2-2]; other clients
    keep working."""
    c = r5()
    c.connect5("bad")
    c.send(data)
    d = c.expect_disconnect(reason)
    assert prop(d.props, SESSION_EXPIRY) is None
    check_alive(r5, broker, "badok")


def test_311_connection_unchanged_by_v5_errors(raw, broker):
    """A 3.1.1 client's protocol error still closes without a DISCONNECT (3.1.1 has no server
    DISCONNECT)."""
    c = raw()
    c.send(connect_pkt("old"))
    c.recv_type(2)
    c.send(b"\x20\x02\x00\x00")  # CONNACK from the client
    assert c.expect_closed() == []
