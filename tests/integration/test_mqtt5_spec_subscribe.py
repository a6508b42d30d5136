"""MQTT 5 normative statements about SUBSCRIBE, UNSUBSCRIBE, Topic Filters and wildcards, and
shared subscriptions ($share/{ShareName}/{filter}) on a single node."""
import time

import pytest

from mqtt5raw import (SESSION_EXPIRY, SHARED_SUB_AVAILABLE, ack5_pkt, prop, r5,
                      subscribe5_pkt, sub_opts, unsubscribe5_pkt)  # noqa: F401
from mqttraw import PUBACK, PUBLISH, PUBREC, SUBACK, UNSUBACK, Timeout, enc_str, packet
from test_mqtt5_spec_packets import case_ids, conn5, sub5c


def granted(c, flt, qos=1, pid=1):
    """SUBSCRIBE flt; returns the single SUBACK reason code."""
    return c.subscribe5(pid, [(flt, sub_opts(qos))]).codes[0]


def refused_or_closed(c, flt):
    """An invalid filter: refused with a SUBACK code >= 0x80 or the connection closed; never
    granted."""
    c.send(subscribe5_pkt(1, [(flt, sub_opts(0))]))
    ack = c.recv()
    if ack.type == SUBACK:
        assert ack.codes[0] >= 0x80, ack
        return ack.codes[0]
    assert ack.type == 14 and ack.reason >= 0x80, ack  # DISCONNECT
    c.expect_closed()
    return ack.reason


def members(r5, target, n, flt, qos=1, props=()):
    """n clients subscribed to the shared filter flt."""
    return [sub5c(r5, target, "mem%d" % i, flt, qos, props=props) for i in range(n)]


def who_gets(subs, timeout=3.0):
    """Wait until one of subs gets a PUBLISH (not acknowledged); returns (index, packet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, s in enumerate(subs):
            try:
                return i, s.recv(0.05)
            except Timeout:
                pass
    raise AssertionError("no member got the message")


BAD_SUBSCRIBES = [
    # [MQTT5-3.8.1-1] SUBSCRIBE fixed-header flags other than 0010
    ("subscribe flags", packet(0x80, b"\x00\x01\x00" + enc_str("a") + b"\x00")),
    # [MQTT5-3.8.3-1] a Topic Filter that is not UTF-8
    ("filter not utf-8", subscribe5_pkt(1, [(b"a/\xff", 0)])),
    # [MQTT5-3.8.3-2] no Topic Filter at all
    ("no filter", subscribe5_pkt(1, [])),
    # [MQTT5-3.8.3-5] reserved Subscription Options bits
    ("reserved option bits", subscribe5_pkt(1, [("a", 0xC1)])),
    # [MQTT5-3.10.1-1] UNSUBSCRIBE fixed-header flags other than 0010
    ("unsubscribe flags", packet(0xA0, b"\x00\x01\x00" + enc_str("a"))),
    # [MQTT5-3.10.3-1] an UNSUBSCRIBE Topic Filter that is not UTF-8
    ("unsubscribe filter not utf-8", unsubscribe5_pkt(1, [b"a/\xc3"])),
    # [MQTT5-3.10.3-2] UNSUBSCRIBE without a Topic Filter
    ("unsubscribe no filter", unsubscribe5_pkt(1, [])),
    # [MQTT5-4.7.3-2] U+0000 in a Topic Filter
    ("nul in filter", subscribe5_pkt(1, [(b"a/\x00", 0)])),
]


@pytest.mark.parametrize("name,data", BAD_SUBSCRIBES, ids=case_ids(BAD_SUBSCRIBES))
def test_bad_subscribe_unsubscribe_closes(r5, broker, name, data):
    """A malformed SUBSCRIBE or UNSUBSCRIBE ends the connection with DISCONNECT 0x81 or 0x82 and
    no SUBACK / UNSUBACK: [MQTT5-3.8.1-1] [MQTT5-3.10.1-1] fixed-header flags 0010,
    [MQTT5-3.8.3-1] [MQTT5-3.10.3-1] UTF-8 filters, [MQTT5-3.8.3-2] [MQTT5-3.10.3-2] at least one
    filter, [MQTT5-3.8.3-5] reserved option bits 0, [MQTT5-4.7.3-2] no U+0000."""
    c = conn5(r5, broker, "bads")
    c.send(data)
    got = c.expect_closed()
    assert got and got[-1].type == 14 and got[-1].reason in (0x81, 0x82), got
    assert not any(p.type in (SUBACK, UNSUBACK) for p in got), got


@pytest.mark.parametrize("flt", ["a/#/b", "a#", "#/a", "a/b+", "+a", ""])
def test_invalid_wildcard_filters_not_granted(r5, broker, flt):
    """[MQTT5-4.7.1-1] '#' alone in its level and last, [MQTT5-4.7.1-2] '+' a whole level,
    [MQTT5-4.7.3-1] a filter at least one character long: otherwise never granted."""
    c = conn5(r5, broker, "badw")
    refused_or_closed(c, flt)


def test_suback_unsuback_packet_ids(r5, broker):
    """SUBSCRIBE is answered by SUBACK [MQTT5-3.8.4-1] with its packet id [MQTT5-3.8.4-2]
    [MQTT5-2.2.1-6]; UNSUBSCRIBE by UNSUBACK [MQTT5-3.10.4-4] with its packet id, also when
    nothing was subscribed [MQTT5-3.10.4-5]; several filters are handled in sequence with one
    UNSUBACK [MQTT5-3.10.4-6]."""
    c = conn5(r5, broker, "ids")
    assert c.subscribe5(0x4321, [("ids/a", sub_opts(1)), ("ids/b", sub_opts(0))]).codes == [1, 0]
    ack = c.unsubscribe5(0xFEDC, ["ids/none"])
    assert ack.codes == [0x11]
    c.send(unsubscribe5_pkt(0x0102, ["ids/a", "ids/none", "ids/b"]))
    ack = c.recv_ack(UNSUBACK, 0x0102)
    assert ack.codes == [0, 0x11, 0]
    c.recv_nothing(0.2)  # one UNSUBACK only


def test_delivery_qos_is_the_minimum(r5, broker):
    """[MQTT5-3.8.4-8] a message goes out at the lower of its QoS and the granted QoS."""
    s1 = sub5c(r5, broker, "minq1", "minq/t", 1)
    s2 = sub5c(r5, broker, "minq2", "minq/t", 2)
    p = conn5(r5, broker, "minq-pub")
    p.publish5("minq/t", b"two", qos=2)
    assert s1.recv_publish().qos == 1 and s2.recv_publish().qos == 2
    p.publish5("minq/t", b"zero", qos=0)
    assert s1.recv_publish().qos == 0 and s2.recv_publish().qos == 0


def test_unsubscribe_stops_new_but_completes_started(r5, broker):
    """[MQTT5-3.10.4-2] after UNSUBACK no new message is sent for the deleted subscription;
    [MQTT5-3.10.4-3] a QoS 2 delivery already started is completed (PUBREC -> PUBREL)."""
    s = sub5c(r5, broker, "uns", "uns/t", 2)
    p = conn5(r5, broker, "uns-pub")
    p.publish5("uns/t", b"started", qos=2)
    m = s.recv_publish(ack=False)
    assert s.unsubscribe5(2, ["uns/t"]).codes == [0]
    s.send(ack5_pkt(PUBREC, m.pid))
    s.complete_pubrel(m.pid)
    p.publish5("uns/t", b"after", qos=1)
    s.recv_nothing(0.3)


def test_wildcards_match_and_dollar_topics(r5, broker):
    """[MQTT5-4.7.0-1] wildcards are used in filters (granted, matching levels) while a Topic Name
    has none; [MQTT5-4.7.2-1] filters starting with '#' or '+' do not match topics starting with
    '$', a filter starting with '$' does."""
    s = conn5(r5, broker, "wild")
    assert s.subscribe5(1, [("#", sub_opts(0)), ("+/x", sub_opts(0))]).codes == [0, 0]
    d = sub5c(r5, broker, "wild-dollar", "$app/#", 0)
    p = conn5(r5, broker, "wild-pub")
    p.publish5("$app/x", b"dollar")
    assert d.recv_publish().topic == "$app/x"
    s.recv_nothing(0.3)
    p.publish5("plain/x", b"plain")
    assert s.recv_publish().topic == "plain/x"


def test_long_topic_and_no_normalisation(r5, broker):
    """[MQTT5-4.7.3-3] Topic Names and filters up to 65,535 bytes: a 60,000-byte one round-trips;
    [MQTT5-4.7.3-4] matching does no normalisation: case, precomposed vs decomposed characters and a
    trailing '/' make different topics."""
    long = "l/" + "x" * 60000
    s = sub5c(r5, broker, "norm", long, 0)
    assert granted(s, "n/\u00e9", 0, 2) == 0 and granted(s, "n/Case", 0, 3) == 0
    p = conn5(r5, broker, "norm-pub")
    for topic in ("n/e\u0301", "n/case", "n/Case/", "n/\u00e9", long):
        p.publish5(topic, b"m")
    assert [s.recv_publish().topic for _ in range(2)] == ["n/\u00e9", long]
    s.recv_nothing(0.3)


@pytest.mark.mosquitto_xfail("2.0.11 sends retained messages on a shared subscribe")
def test_shared_subscription_one_member_per_message(r5, broker):
    """[MQTT5-4.8.2-1] a "$share/{ShareName}/" filter with a ShareName of at least one character
    makes a shared subscription (CONNACK says Shared Subscription Available 1): each message goes
    to one member of the group only, a plain subscriber to the same filter gets every one; no
    retained message is sent on a shared subscribe."""
    c = r5(broker)
    assert prop(c.connect5("share-caps").props, SHARED_SUB_AVAILABLE) in (None, 1)
    p = conn5(r5, broker, "share-pub")
    p.publish5("sh/t", b"retained", qos=1, retain=True)
    subs = members(r5, broker, 2, "$share/grp/sh/t")
    plain = sub5c(r5, broker, "share-plain", "sh/t", 1)
    assert plain.recv_publish().payload == b"retained"
    for s in subs:
        s.recv_nothing(0.2)
    for i in range(10):
        p.publish5("sh/t", b"%d" % i, qos=1, pid=i + 1)
    assert sorted(plain.recv_publish().payload for _ in range(10)) == sorted(
        b"%d" % i for i in range(10))
    got = []
    for _ in range(10):
        i, m = who_gets(subs)
        subs[i].send(ack5_pkt(PUBACK, m.pid))
        got.append(m.payload)
    assert sorted(got) == sorted(b"%d" % i for i in range(10))
    for s in subs:
        s.recv_nothing(0.2)


@pytest.mark.sol_only
@pytest.mark.parametrize("flt", ["$share//t", "$share/g", "$share/g+/t", "$share/g#/t",
                                 "$share/g/"])
def test_shared_subscription_invalid_share_name(r5, broker, flt):
    """[MQTT5-4.8.2-1] the ShareName is at least one character; [MQTT5-4.8.2-2] it has no '/', '+'
    or '#' and is followed by '/' and a Topic Filter. Otherwise: SUBACK 0x8F (Topic Filter
    invalid)."""
    c = conn5(r5, broker, "shbad")
    assert granted(c, flt) == 0x8F


@pytest.mark.sol_only
def test_shared_subscription_no_local_is_protocol_error(r5, broker):
    """[MQTT5-3.8.3-4] No Local 1 on a shared subscription is a Protocol Error: DISCONNECT 0x82."""
    c = conn5(r5, broker, "shnl")
    c.send(subscribe5_pkt(1, [("$share/g/nl/t", sub_opts(1, no_local=True))]))
    c.expect_disconnect(0x82)


def test_shared_subscription_granted_qos(r5, broker):
    """[MQTT5-4.8.2-3] a shared subscription's granted QoS is respected: QoS 0 granted, a QoS 2
    message arrives at QoS 0."""
    (s,) = members(r5, broker, 1, "$share/q/shq/t", qos=0)
    conn5(r5, broker, "shq-pub").publish5("shq/t", b"x", qos=2)
    m = s.recv_publish()
    assert (m.qos, m.payload) == (0, b"x")


def test_shared_subscription_interrupted_qos2_completed(r5, broker):
    """[MQTT5-4.8.2-4] a QoS 2 message to a shared member whose connection breaks before it is
    acknowledged is delivered to that member when it reconnects to its session."""
    keep = [(SESSION_EXPIRY, 60)]
    (s,) = members(r5, broker, 1, "$share/i/shi/t", qos=2, props=keep)
    conn5(r5, broker, "shi-pub").publish5("shi/t", b"x", qos=2)
    first = s.recv_publish(ack=False)
    s.abort()
    s2 = r5(broker)
    assert s2.connect5("mem0", clean=False, props=keep).session_present == 1
    m = s2.recv_publish()
    assert (m.payload, m.pid, m.dup) == (b"x", first.pid, True)


def test_shared_subscription_session_ended_not_redelivered(r5, broker):
    """[MQTT5-4.8.2-5] when the session of the member that got a QoS 2 message ends before it
    reconnects, the message is not sent to another member of the group."""
    subs = members(r5, broker, 2, "$share/e/she/t", qos=2)
    p = conn5(r5, broker, "she-pub")
    p.publish5("she/t", b"x", qos=2)
    i, m = who_gets(subs)
    assert m.type == PUBLISH and m.payload == b"x"
    subs[i].abort()  # Session Expiry Interval 0: the session ends with the connection
    subs[1 - i].recv_nothing(0.5)


@pytest.mark.parametrize("qos,ack", [(1, PUBACK), (2, PUBREC)])
def test_shared_subscription_negative_ack_discards(r5, broker, qos, ack):
    """[MQTT5-4.8.2-6] a member answering PUBACK / PUBREC with a reason code >= 0x80: the message
    is discarded, not sent to another member."""
    subs = members(r5, broker, 2, "$share/n/shn/t", qos=qos)
    p = conn5(r5, broker, "shn-pub")
    p.publish5("shn/t", b"x", qos=qos)
    i, m = who_gets(subs)
    subs[i].send(ack5_pkt(ack, m.pid, 0x80))
    if qos == 2:
        subs[i].recv_nothing(0.3)  # no PUBREL after a failed PUBREC
    subs[1 - i].recv_nothing(0.5)


def test_bom_kept_in_topics(r5, broker):
    """[MQTT5-1.5.4-3] U+FEFF (EF BB BF) in a Topic Name or filter is neither skipped nor stripped:
    it is part of the topic, which reaches the subscriber with it, and differs from the topic
    without it."""
    bom = "\ufeff"
    s = sub5c(r5, broker, "bom-sub", "bom/%sx" % bom, 0)
    plain = sub5c(r5, broker, "bom-plain", "bom/x", 0)
    conn5(r5, broker, "bom-pub").publish5("bom/%sx" % bom, b"with")
    m = s.recv_publish()
    assert m.topic == "bom/%sx" % bom and m.body[2:2 + 8] == b"bom/\xef\xbb\xbfx"
    plain.recv_nothing(0.3)
