"""MQTT 5 SUBSCRIBE / UNSUBSCRIBE: Subscription Options (No Local, Retain As Published, Retain
Handling), Subscription Identifiers, and the reason codes of SUBACK and UNSUBACK."""
import subprocess
import time

import pytest

from mqttclients import MosquittoSub
from mqtt5raw import (CONTENT_TYPE, MESSAGE_EXPIRY, PacketTypes, SUBSCRIPTION_ID,
                      SubscribeOptions, USER_PROPERTY, p5, prop, prop_all, props_of, r5,
                      sub_opts)  # noqa: F401


def client5(r5, target, client_id):
    c = r5(target)
    c.connect5(client_id)
    return c


def test_no_local(p5, broker):
    """[MQTT5-3.8.3-3] with No Local a client's own PUBLISH is not sent back to it on that
    subscription; another subscriber, and the same client's subscription without No Local on an
    overlapping filter, still get it (the latter once, at the highest QoS [MQTT5-3.3.4-2])."""
    a = p5(broker, "nl-a")
    assert a.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    b = p5(broker, "nl-b")
    assert b.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    a.publish("nl/t", b"from a", 1)
    assert b.wait_messages(1)[0].payload == b"from a"
    b.publish("nl/t", b"from b", 1)
    assert a.wait_messages(1)[0].payload == b"from b"
    # a's own message never came back: after b's, which it did get, there is only that one.
    assert [m.payload for m in a.messages] == [b"from b"]
    assert [m.payload for m in b.messages] == [b"from a"]
    # An overlapping subscription without No Local delivers the client's own message.
    assert a.subscribe("nl/#", options=SubscribeOptions(qos=0, noLocal=False)) == [0]
    a.publish("nl/t", b"own again", 1)
    msgs = a.wait_messages(2)
    assert [m.payload for m in msgs] == [b"from b", b"own again"]
    assert msgs[1].qos == 0  # only the nl/# subscription matched for its own message


def test_retain_as_published(r5, broker):
    """[MQTT5-3.3.1-12] Retain As Published 0: a live message published with RETAIN 1 is forwarded
    with RETAIN 0; [MQTT5-3.3.1-13] with 1 it keeps RETAIN 1. Retained messages sent because of a
    new subscription have RETAIN 1 either way."""
    rap0 = client5(r5, broker, "rap0")
    rap1 = client5(r5, broker, "rap1")
    assert rap0.subscribe5(1, [("rap/t", sub_opts(1, rap=False))]).codes == [1]
    assert rap1.subscribe5(1, [("rap/t", sub_opts(1, rap=True))]).codes == [1]
    p = client5(r5, broker, "rappub")
    p.publish5("rap/t", b"kept", qos=1, retain=True)
    m0, m1 = rap0.recv_publish(), rap1.recv_publish()
    assert (m0.payload, m0.retain) == (b"kept", False)
    assert (m1.payload, m1.retain) == (b"kept", True)
    p.publish5("rap/t", b"plain", qos=1, retain=False, pid=2)
    assert rap1.recv_publish().retain is False
    assert rap0.recv_publish().retain is False
    late = client5(r5, broker, "raplate")
    assert late.subscribe5(1, [("rap/t", sub_opts(1, rap=False))]).codes == [1]
    m = late.recv_publish()
    assert (m.payload, m.retain) == (b"kept", True)


def test_retain_handling(r5, broker):
    """Retain Handling: 0 sends the retained messages at every SUBSCRIBE, re-subscribing too
    [MQTT5-3.3.1-9] [MQTT5-3.8.4-4]; 1 only when the subscription did not exist [MQTT5-3.3.1-10];
    2 never [MQTT5-3.3.1-11]. The SUBACK comes first."""
    p = client5(r5, broker, "rhpub")
    p.publish5("rh/t", b"retained", qos=1, retain=True)
    c = client5(r5, broker, "rh")
    for opts, pid, expect in ((sub_opts(1, rh=0), 1, True), (sub_opts(1, rh=0), 2, True),
                              (sub_opts(1, rh=1), 3, False)):
        assert c.subscribe5(pid, [("rh/t", opts)]).codes == [1]
        if expect:
            m = c.recv_publish()
            assert (m.payload, m.retain) == (b"retained", True)
        else:
            c.recv_nothing(0.3)
    c.unsubscribe5(4, ["rh/t"])
    assert c.subscribe5(5, [("rh/t", sub_opts(1, rh=1))]).codes == [1]
    assert c.recv_publish().payload == b"retained"
    n = client5(r5, broker, "rh2")
    assert n.subscribe5(1, [("rh/#", sub_opts(1, rh=2))]).codes == [1]
    n.recv_nothing(0.3)
    # the subscription itself works: live messages arrive
    p.publish5("rh/t", b"live", qos=1, pid=2)
    assert n.recv_publish().payload == b"live"


@pytest.mark.sol_only  # Mosquitto sends a copy per subscription, as [MQTT5-3.3.4-5] allows
def test_subscription_identifiers(r5, broker):
    """[MQTT5-3.3.4-3] the Subscription Identifiers of the matching subscriptions are sent with
    the PUBLISH; one copy for overlapping subscriptions carries all of them [MQTT5-3.3.4-4];
    a subscription without one adds none; re-subscribing replaces the subscription and its
    identifier [MQTT5-3.8.4-3]; after UNSUBSCRIBE its identifier is gone."""
    s = client5(r5, broker, "sid")
    assert s.subscribe5(1, [("sid/+", sub_opts(1))], props=[(SUBSCRIPTION_ID, 5)]).codes == [1]
    assert s.subscribe5(2, [("sid/#", sub_opts(0))],
                        props=[(SUBSCRIPTION_ID, 268435455)]).codes == [0]
    assert s.subscribe5(3, [("sid/a", sub_opts(0))]).codes == [0]
    p = client5(r5, broker, "sidpub")
    p.publish5("sid/a", b"1", qos=1)
    m = s.recv_publish()
    assert sorted(prop_all(m.props, SUBSCRIPTION_ID)) == [5, 268435455]
    assert m.qos == 1
    s.recv_nothing(0.2)  # one copy
    p.publish5("sid/a/b", b"2", qos=1, pid=2)
    assert prop_all(s.recv_publish().props, SUBSCRIPTION_ID) == [268435455]
    assert s.subscribe5(4, [("sid/+", sub_opts(1))], props=[(SUBSCRIPTION_ID, 9)]).codes == [1]
    p.publish5("sid/b", b"3", qos=1, pid=3)
    assert sorted(prop_all(s.recv_publish().props, SUBSCRIPTION_ID)) == [9, 268435455]
    s.unsubscribe5(5, ["sid/#"])
    p.publish5("sid/b", b"4", qos=1, pid=4)
    assert prop_all(s.recv_publish().props, SUBSCRIPTION_ID) == [9]
    s.unsubscribe5(6, ["sid/+"])
    p.publish5("sid/a", b"5", qos=1, pid=5)
    m = s.recv_publish()
    assert m.payload == b"5" and prop(m.props, SUBSCRIPTION_ID) is None


def test_subscription_identifiers_real_clients(p5, broker):
    """[MQTT5-3.3.4-3] paho v5 subscribes with a Subscription Identifier and mosquitto_sub -V
    mqttv5 -D subscribe subscription-identifier prints it (%S) with each message."""
    s = MosquittoSub(broker.host, broker.port, ["sidm/#"], qos=1, count=1,
                     extra=["-V", "mqttv5", "-D", "subscribe", "subscription-identifier", "42",
                            "-F", "%S %t %p"])
    s.wait_subscribed()
    ps = p5(broker, "sidpaho")
    assert ps.subscribe("sidm/t", 1,
                        props=props_of(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7)) == [1]
    pub = p5(broker, "sidpahopub")
    pub.publish("sidm/t", b"hello", 1)
    line = s.wait_line(lambda l: l.endswith("sidm/t hello"))
    s.stop()
    assert line == "42 sidm/t hello"
    assert ps.wait_messages(1)[0].properties.SubscriptionIdentifier == [7]


@pytest.mark.mosquitto_xfail("2.0.11 closes the connection for an invalid filter")
def test_suback_reason_codes(r5, broker):
    """[MQTT5-3.9.3-1] one reason code per filter, in order [MQTT5-3.8.4-6]; each the granted QoS
    or a failure [MQTT5-3.8.4-7] [MQTT5-3.9.3-2]: 0x8F (Topic Filter invalid) for a bad filter;
    the good ones in the same SUBSCRIBE are subscribed [MQTT5-3.8.4-5]."""
    c = client5(r5, broker, "subrc")
    ack = c.subscribe5(1, [("ok/a", sub_opts(0)), ("bad/#/x", sub_opts(1)), ("ok/b", sub_opts(2)),
                           ("ba+d", sub_opts(1)), ("ok/c", sub_opts(1))])
    assert ack.codes == [0, 0x8F, 2, 0x8F, 1]
    p = client5(r5, broker, "subrcpub")
    p.publish5("ok/b", b"x", qos=2)
    m = c.recv_publish()
    assert (m.topic, m.qos) == ("ok/b", 2)


@pytest.mark.sol_only
def test_suback_shared_and_not_authorized(r5, broker_factory):
    """[MQTT5-3.9.3-2] SUBACK with one code per filter, in order [MQTT5-3.9.3-1]: a shared
    subscription is granted when the ACL lets the client read its filter and refused with 0x87
    (Not authorized) when it does not, like a plain one; a "$share/" that is no valid shared
    subscription is 0x8F (Topic Filter invalid)."""
    b = broker_factory(acl="topic readwrite open/#\ntopic write wo/#\n")
    c = client5(r5, b, "subacl")
    ack = c.subscribe5(1, [("open/a", sub_opts(1)), ("$share/g/open/a", sub_opts(1)),
                           ("wo/x", sub_opts(1)), ("open/b", sub_opts(2)),
                           ("$share/g/wo/x", sub_opts(1)), ("$share/g+/open/a", sub_opts(1))])
    assert ack.codes == [1, 1, 0x87, 2, 0x87, 0x8F]


def test_unsuback_reason_codes(p5, r5, broker):
    """[MQTT5-3.11.3-1] [MQTT5-3.11.3-2] UNSUBACK has one reason code per filter, in order: 0x00
    for a subscription that existed (and is deleted [MQTT5-3.10.4-1]), 0x11 (No subscription
    existed) otherwise; paho v5 reports the same codes."""
    c = client5(r5, broker, "unsub")
    c.subscribe5(1, [("un/a", sub_opts(1)), ("un/+", sub_opts(0))])
    ack = c.unsubscribe5(2, ["un/a", "un/none", "un/+"])
    assert ack.codes == [0x00, 0x11, 0x00]
    assert c.unsubscribe5(3, ["un/a"]).codes == [0x11]
    p = client5(r5, broker, "unsubpub")
    p.publish5("un/a", b"x", qos=1)
    c.recv_nothing(0.3)
    pc = p5(broker, "unsubpaho")
    pc.subscribe("un/p", 1)
    assert pc.unsubscribe("un/p") == [0x00]
    assert pc.unsubscribe("un/p") == [0x11]


def test_retained_mosquitto_clients_v5(broker):
    """mosquitto_pub -V mqttv5 -r, then mosquitto_sub -V mqttv5 (Retain Handling 0, its default)
    gets the retained message at SUBSCRIBE [MQTT5-3.3.1-9] with RETAIN 1 (-F %r)."""
    base = ["-h", broker.host, "-p", str(broker.port), "-V", "mqttv5"]
    subprocess.run(["mosquitto_pub"] + base + ["-t", "mr/t", "-m", "kept", "-r", "-q", "1"],
                   check=True, timeout=10)
    out = subprocess.run(["mosquitto_sub"] + base + ["-t", "mr/t", "-C", "1", "-W", "5", "-F",
                                                     "%r %t %p"],
                         check=True, timeout=10, capture_output=True, text=True).stdout
    assert out.strip() == "1 mr/t kept"


def test_retained_message_keeps_properties_and_expiry(r5, broker):
    """A retained message sent at SUBSCRIBE carries the publisher's properties unaltered
    [MQTT5-3.3.2-17] [MQTT5-3.3.2-20] and what is left of its Message Expiry Interval
    [MQTT5-3.3.2-6]; one whose interval has passed is not sent [MQTT5-3.3.2-5]."""
    p = client5(r5, broker, "rprops")
    p.publish5("rp/keep", b"k", qos=1, retain=True, pid=1,
               props=[(USER_PROPERTY, ("x", "1")), (CONTENT_TYPE, "text/k"),
                      (MESSAGE_EXPIRY, 60)])
    p.publish5("rp/short", b"s", qos=1, retain=True, pid=2, props=[(MESSAGE_EXPIRY, 1)])
    time.sleep(2.2)  # the passage of time is the event: rp/short expires
    s = client5(r5, broker, "rpsub")
    assert s.subscribe5(1, [("rp/#", sub_opts(1))]).codes == [1]
    m = s.recv_publish()
    assert (m.topic, m.payload, m.retain) == ("rp/keep", b"k", True)
    assert prop_all(m.props, USER_PROPERTY) == [("x", "1")]
    assert prop(m.props, CONTENT_TYPE) == "text/k"
    assert 55 <= prop(m.props, MESSAGE_EXPIRY) <= 58
    s.recv_nothing(0.3)
