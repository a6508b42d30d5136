"""MQTT 5 connections: CONNACK properties, assigned client ids, Session Expiry Interval, Receive
Maximum, Maximum Packet Size both ways, Request Problem Information, authentication method, and the
reason codes of a server DISCONNECT (keepalive, take-over) and of a client DISCONNECT."""
import subprocess
import time

import pytest

from conftest import IS_MOSQUITTO
from mqtt5raw import (ASSIGNED_CLIENT_ID, AUTH_METHOD, MAXIMUM_PACKET_SIZE, MAXIMUM_QOS,
                      PacketTypes, RECEIVE_MAXIMUM, REASON_STRING,
                      REQUEST_PROBLEM_INFO, RETAIN_AVAILABLE, SESSION_EXPIRY,
                      SHARED_SUB_AVAILABLE, SUBID_AVAILABLE, TOPIC_ALIAS_MAXIMUM, USER_PROPERTY,
                      WILDCARD_SUB_AVAILABLE, ack5_pkt, auth_pkt, connect5_pkt, disconnect5_pkt,
                      p5, prop, props_of, publish5_pkt, r5, sub_opts)  # noqa: F401
from mqttraw import PUBACK

NEVER = 0xFFFFFFFF


def sub5(r5, target, client_id, topic, qos=1, props=()):
    c = r5(target)
    c.connect5(client_id, props=props)
    assert c.subscribe5(1, [(topic, sub_opts(qos))]).codes == [qos]
    return c


@pytest.mark.sol_only
def test_connack_says_what_the_server_allows(r5, broker_factory):
    """[MQTT5-3.2.2-8] CONNACK 0x00 with Receive Maximum (= --max-inflight), Topic Alias Maximum
    10, Retain Available 1, Wildcard, Subscription Identifier and Shared Subscription Available 1,
    and no Maximum QoS when QoS 2 is supported [MQTT5-3.2.2-9]; Session Present 0 for
    Clean Start [MQTT5-3.2.2-2]."""
    b = broker_factory(max_inflight=7)
    c = r5(b)
    ack = c.connect5("caps")
    assert ack.session_present == 0 and ack.flags == 0
    p = ack.props
    assert prop(p, RECEIVE_MAXIMUM) == 7
    assert prop(p, TOPIC_ALIAS_MAXIMUM) == 10
    assert prop(p, RETAIN_AVAILABLE) == 1
    assert prop(p, WILDCARD_SUB_AVAILABLE) == 1
    assert prop(p, SUBID_AVAILABLE) == 1
    assert prop(p, SHARED_SUB_AVAILABLE) == 1
    assert prop(p, MAXIMUM_QOS) is None
    assert prop(p, MAXIMUM_PACKET_SIZE) is None or prop(p, MAXIMUM_PACKET_SIZE) > 0
    assert prop(p, ASSIGNED_CLIENT_ID) is None  # the client chose its id


@pytest.mark.sol_only
def test_connack_maximum_packet_size_and_maximum_qos(r5, broker_factory):
    """[MQTT5-3.2.2-9] with --max-qos 1 CONNACK carries Maximum QoS 1, and SUBSCRIBE at QoS 2 is
    still accepted, granted QoS 1 [MQTT5-3.2.2-10]; with --max-packet-size CONNACK carries Maximum
    Packet Size, the limit the client must keep to [MQTT5-3.2.2-15]."""
    b = broker_factory(max_qos=1, max_packet_size=1000)
    c = r5(b)
    ack = c.connect5("limits")
    assert prop(ack.props, MAXIMUM_QOS) == 1
    assert prop(ack.props, MAXIMUM_PACKET_SIZE) == 1000
    assert c.subscribe5(1, [("mq/t", sub_opts(2))]).codes == [1]


def test_assigned_client_identifier(p5, broker):
    """[MQTT5-3.1.3-6] [MQTT5-3.1.3-7] [MQTT5-3.2.2-16] a zero-length client id gets a unique
    Assigned Client Identifier in CONNACK, also with Clean Start 0; the session is kept under that
    id (reconnecting with it finds the session)."""
    a = p5(broker, "", clean_start=False,
           props=props_of(PacketTypes.CONNECT, SessionExpiryInterval=60))
    b = p5(broker, "")
    ida = a.connack[2].AssignedClientIdentifier
    idb = b.connack[2].AssignedClientIdentifier
    assert ida and idb and ida != idb
    a.subscribe("assigned/t", 1)
    a.disconnect()
    again = p5(broker, ida, clean_start=False,
               props=props_of(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert again.connack[0] == 1  # session present
    assert not hasattr(again.connack[2], "AssignedClientIdentifier")


def test_session_expiry_absent_means_session_ends_with_connection(r5, broker):
    """[MQTT5-3.1.2-23] only a Session Expiry Interval > 0 keeps the session after the close: with
    none (0) a Clean Start 0 reconnect has Session Present 0 [MQTT5-3.2.2-3] and nothing queued
    while away arrives [MQTT5-3.1.2-6]."""
    s = sub5(r5, broker, "se0", "se0/t", props=())
    s.send(disconnect5_pkt())
    s.expect_closed()
    p = r5()
    p.connect5("se0pub")
    p.publish5("se0/t", b"while away", qos=1)
    s2 = r5()
    assert s2.connect5("se0", clean=False).session_present == 0
    s2.recv_nothing(0.4)


def test_session_expiry_keeps_session_and_queue(r5, broker):
    """[MQTT5-3.1.2-23] a Session Expiry Interval > 0 keeps the session: Clean Start 0 resumes it
    [MQTT5-3.1.2-5] with Session Present 1 [MQTT5-3.2.2-3] and the QoS 1 message queued while away
    (sent by mosquitto_pub -V mqttv5) was added to the session [MQTT5-4.5.0-1] and is delivered;
    Clean Start 1 discards it [MQTT5-3.1.2-4] [MQTT5-3.2.2-2]."""
    s = sub5(r5, broker, "se60", "se60/t", props=[(SESSION_EXPIRY, 60)])
    s.send(disconnect5_pkt())
    s.expect_closed()
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
                    "-q", "1", "-t", "se60/t", "-m", "queued"], check=True, timeout=10)
    s2 = r5()
    assert s2.connect5("se60", clean=False, props=[(SESSION_EXPIRY, 60)]).session_present == 1
    m = s2.recv_publish()
    assert (m.topic, m.payload, m.qos) == ("se60/t", b"queued", 1)
    s2.send(disconnect5_pkt())
    s2.expect_closed()
    s3 = r5()
    assert s3.connect5("se60", clean=True).session_present == 0


def test_session_expiry_elapses(r5, broker):
    """[MQTT5-4.1.0-2] the server discards the session when the connection is closed and the
    Session Expiry Interval (1 s) has passed: reconnecting later finds no session and no queued
    message; one with 0xFFFFFFFF (never expires) is still there after the same wait."""
    short = sub5(r5, broker, "se1", "se1/t", props=[(SESSION_EXPIRY, 1)])
    never = sub5(r5, broker, "seinf", "se1/t", props=[(SESSION_EXPIRY, NEVER)])
    for c in (short, never):
        c.send(disconnect5_pkt())
        c.expect_closed()
    p = r5()
    p.connect5("se1pub")
    p.publish5("se1/t", b"late", qos=1)
    time.sleep(2.6)  # the passage of time is the event: the interval plus the expiry sweep
    s2 = r5()
    assert s2.connect5("se1", clean=False, props=[(SESSION_EXPIRY, 1)]).session_present == 0
    s2.recv_nothing(0.3)
    n2 = r5()
    assert n2.connect5("seinf", clean=False, props=[(SESSION_EXPIRY, NEVER)]).session_present == 1
    assert n2.recv_publish().payload == b"late"


def test_disconnect_sets_session_expiry(r5, broker):
    """A client DISCONNECT with a Session Expiry Interval replaces the one from CONNECT: 60 then
    0 at DISCONNECT ends the session with the connection (reconnect: Session Present 0)
    [MQTT5-4.1.0-2]; 0 then 30 at DISCONNECT is a Protocol Error, answered with DISCONNECT 0x82
    [MQTT5-4.13.1-1]."""
    s = sub5(r5, broker, "sed", "sed/t", props=[(SESSION_EXPIRY, 60)])
    s.send(disconnect5_pkt(0, [(SESSION_EXPIRY, 0)]))
    s.expect_closed()
    s2 = r5()
    assert s2.connect5("sed", clean=False).session_present == 0
    z = r5()
    z.connect5("sedz")
    z.send(disconnect5_pkt(0, [(SESSION_EXPIRY, 30)]))
    z.expect_disconnect(0x82)


@pytest.mark.mosquitto_xfail("2.0.11 sends 2 more PUBLISHes per PUBACK, over Receive Max")
def test_receive_maximum_limits_inflight(r5, broker):
    """[MQTT5-3.3.4-9] [MQTT5-4.9.0-2] the server sends no more than the client's Receive Maximum
    (2) QoS 1 PUBLISHes awaiting PUBACK; each PUBACK lets one more go [MQTT5-4.9.0-1]; QoS 0 and
    other packets are not held back [MQTT5-3.3.4-10] [MQTT5-4.9.0-3]."""
    s = sub5(r5, broker, "rm", "rm/#", props=[(RECEIVE_MAXIMUM, 2)])
    p = r5()
    p.connect5("rmpub")
    for i in range(5):
        p.publish5("rm/t", b"m%d" % i, qos=1, pid=i + 1)
    got = [s.recv_publish(ack=False), s.recv_publish(ack=False)]
    assert [m.payload for m in got] == [b"m0", b"m1"]
    p.publish5("rm/zero", b"q0", qos=0)
    assert s.recv_publish(ack=False).payload == b"q0"
    assert s.is_open()  # PINGRESP still comes
    s.recv_nothing(0.4)
    s.send(ack5_pkt(PUBACK, got[0].pid))
    assert s.recv_publish(ack=False).payload == b"m2"
    s.recv_nothing(0.3)


@pytest.mark.mosquitto_xfail("2.0.11 answers PUBREC 0x97 instead of DISCONNECT 0x93")
def test_receive_maximum_exceeded_by_client(r5, broker_factory):
    """[MQTT5-3.3.4-7] a client must not leave more than the server's Receive Maximum QoS 2
    PUBLISHes unreleased: the next one is answered with DISCONNECT 0x93 (Receive Maximum exceeded)
    and the close [MQTT5-4.13.1-1]; another client keeps working."""
    b = broker_factory(max_inflight=3)
    c = r5(b)
    ack = c.connect5("rmx")
    rm = prop(ack.props, RECEIVE_MAXIMUM)
    assert rm == 3
    for pid in range(1, rm + 1):
        c.send(publish5_pkt("rmx/t", b"x", qos=2, pid=pid))
        assert c.recv_type(5).pid == pid  # PUBREC
    c.send(publish5_pkt("rmx/t", b"x", qos=2, pid=rm + 1))
    c.expect_disconnect(0x93)
    other = sub5(r5, b, "rmxo", "rmxo/t")
    other.publish5("rmxo/t", b"fine", qos=1, pid=9)
    assert other.recv_publish().payload == b"fine"


@pytest.mark.mosquitto_xfail("2.0.11 sends a PUBLISH 1 byte over Maximum Packet Size")
def test_maximum_packet_size_to_client(r5, broker):
    """[MQTT5-3.1.2-24] the server sends nothing larger than the client's Maximum Packet Size
    (100): a too large message is discarded [MQTT5-3.1.2-25] (not queued, not sent later) while
    smaller ones after it are delivered."""
    s = sub5(r5, broker, "mps", "mps/t", props=[(MAXIMUM_PACKET_SIZE, 100)])
    p = r5()
    p.connect5("mpspub")
    p.publish5("mps/t", b"B" * 200, qos=1, pid=1)
    p.publish5("mps/t", b"small", qos=1, pid=2)
    m = s.recv_publish()
    assert m.payload == b"small"
    s.recv_nothing(0.4)
    # 1 + 1 fixed header, 2 + 5 topic, 2 packet id, 1 property length, payload: 101 bytes is
    # dropped, exactly 100 is sent.
    p.publish5("mps/t", b"f" * 89, qos=1, pid=3)
    p.publish5("mps/t", b"e" * 88, qos=1, pid=4)
    m = s.recv_publish()
    assert m.payload == b"e" * 88 and 2 + len(m.body) == 100


@pytest.mark.sol_only
def test_maximum_packet_size_drops_are_counted(r5, broker_factory):
    """[MQTT5-3.1.2-25] the discarded message is counted in
    $SYS/broker/publish/messages/dropped/too_large."""
    b = broker_factory(sys_interval=1)
    s = sub5(r5, b, "mpsc", "mpsc/t", props=[(MAXIMUM_PACKET_SIZE, 64)])
    w = r5(b)
    w.connect5("mpscw")
    w.subscribe5(1, [("$SYS/broker/publish/messages/dropped/too_large", sub_opts(0))])
    p = r5(b)
    p.connect5("mpscpub")
    p.publish5("mpsc/t", b"Z" * 100, qos=0)
    p.publish5("mpsc/t", b"Z" * 100, qos=1, pid=5)
    deadline = time.monotonic() + 5
    val = None
    while time.monotonic() < deadline:
        m = w.recv_publish(timeout=max(0.05, deadline - time.monotonic()))
        val = int(m.payload)
        if val >= 2:
            break
    assert val == 2
    s.recv_nothing(0.2)


def test_maximum_packet_size_from_client(r5, broker_factory):
    """[MQTT5-3.2.2-15] a client packet over the server's Maximum Packet Size (200) is answered
    with DISCONNECT 0x95 (Packet too large) and the close [MQTT5-4.13.1-1]; another client keeps
    working."""
    b = broker_factory(max_packet_size=200)
    c = r5(b)
    c.connect5("big")
    c.send(publish5_pkt("big/t", b"x" * 300, qos=0))
    c.expect_disconnect(0x95)
    other = sub5(r5, b, "bigo", "bigo/t")
    other.publish5("bigo/t", b"fine", qos=1, pid=2)
    assert other.recv_publish().payload == b"fine"


@pytest.mark.sol_only
def test_request_problem_information(r5, broker):
    """[MQTT5-3.1.2-29] with Request Problem Information 0 no Reason String or User Property is
    sent on any packet but PUBLISH, CONNACK, DISCONNECT: PUBACK 0x10 and SUBACK/UNSUBACK carry
    none; Sol also leaves the Reason String off its DISCONNECT then, and sends one (the "why")
    when the client left the default (1)."""
    c = r5()
    c.connect5("rpi0", props=[(REQUEST_PROBLEM_INFO, 0)])
    ack = c.publish5("rpi/nobody", b"x", qos=1)
    assert ack.reason == 0x10 and ack.props == []
    sa = c.subscribe5(3, [("rpi/#", sub_opts(1)), ("bad/#/x", sub_opts(0))])
    assert sa.codes == [1, 0x8F] and sa.props == []
    ua = c.unsubscribe5(4, ["never/sub"])
    assert ua.codes == [0x11] and ua.props == []
    c.send(publish5_pkt("rpi/t", b"x", props=[(0x0B, 1)]))  # Subscription Identifier: error
    d = c.expect_disconnect(0x82)
    assert prop(d.props, REASON_STRING) is None and prop(d.props, USER_PROPERTY) is None
    c1 = r5()
    c1.connect5("rpi1")
    c1.send(publish5_pkt("rpi/t", b"x", props=[(0x0B, 1)]))
    d1 = c1.expect_disconnect(0x82)
    assert prop(d1.props, REASON_STRING)


def test_authentication_method_refused(r5, broker):
    """[MQTT5-4.12.0-1] an Authentication Method the server does not support: CONNACK 0x8C (Bad
    authentication method), Session Present 0 [MQTT5-3.2.2-6], then the close [MQTT5-3.2.2-7];
    nothing after the CONNECT is processed [MQTT5-3.1.4-6]; another client keeps working."""
    c = r5()
    c.send(connect5_pkt("am", props=[(AUTH_METHOD, "SCRAM-SHA-1")]) +
           publish5_pkt("am/t", b"must not arrive", qos=0))
    c.expect_connack_refused(0x8C)
    other = sub5(r5, broker, "amo", "am/t")
    other.recv_nothing(0.3)
    other.publish5("am/t", b"fine", qos=1, pid=3)
    assert other.recv_publish().payload == b"fine"


@pytest.mark.mosquitto_xfail("2.0.11 closes without a DISCONNECT")
def test_auth_packet_without_method(r5, broker):
    """[MQTT5-4.12.0-7] a client that gave no Authentication Method must not send AUTH: it is a
    Protocol Error, DISCONNECT 0x82 and the close [MQTT5-4.13.1-1]."""
    c = r5()
    c.connect5("auth")
    c.send(auth_pkt(0x18, [(AUTH_METHOD, "PLAIN")]))
    c.expect_disconnect(0x82)


@pytest.mark.mosquitto_xfail("2.0.11 closes without a DISCONNECT")
def test_second_connect(r5, broker):
    """[MQTT5-3.1.0-2] a second CONNECT is a Protocol Error: DISCONNECT 0x82, then the close."""
    c = r5()
    c.connect5("twice")
    c.send(connect5_pkt("twice"))
    c.expect_disconnect(0x82)


@pytest.mark.mosquitto_xfail("2.0.11 closes on keepalive timeout without a DISCONNECT")
def test_keepalive_timeout_disconnect(r5, broker):
    """[MQTT5-3.1.2-22] nothing from the client within 1.5 x Keep Alive (1 s): the server closes
    the connection, with DISCONNECT 0x8D (Keep Alive timeout) first [MQTT5-4.13.1-1]."""
    c = r5()
    c.connect5("ka", keepalive=1)
    t0 = time.monotonic()
    c.expect_disconnect(0x8D, timeout=4)
    assert time.monotonic() - t0 >= 1.0


@pytest.mark.mosquitto_xfail("2.0.11 closes the old connection without a DISCONNECT")
def test_session_taken_over(r5, p5, broker):
    """[MQTT5-3.1.4-3] a second connection with the same client id: the existing one gets
    DISCONNECT 0x8E (Session taken over) and is closed; the new one works (and when taken over in
    turn, paho v5 reports 0x8E)."""
    old = r5()
    old.connect5("dup")
    new = p5(broker, "dup")
    old.expect_disconnect(0x8E)
    assert new.subscribe("dup/t", 1) == [1]
    new.publish("dup/t", b"still here", 1)
    assert new.wait_messages(1)[0].payload == b"still here"
    # paho v5 reports the reason of the server's DISCONNECT to the connection taken over
    newer = r5()
    newer.connect5("dup")
    assert new.wait_disconnected()
    assert new.disconnect_rc == 0x8E


BAD_CONNECT = [
    # the reserved flag of the Connect Flags set [MQTT5-3.1.2-3]
    ("reserved flag", connect5_pkt("bc", flags=0x03), 0x81),
    # Receive Maximum 0 and Maximum Packet Size 0 are Protocol Errors
    ("receive maximum 0", connect5_pkt("bc", props=[(RECEIVE_MAXIMUM, 0)]), 0x82),
    ("maximum packet size 0", connect5_pkt("bc", props=[(MAXIMUM_PACKET_SIZE, 0)]), 0x82),
    # a property twice is a Protocol Error
    ("session expiry twice",
     connect5_pkt("bc", props=[(SESSION_EXPIRY, 1), (SESSION_EXPIRY, 2)]), 0x82),
    # Request Problem Information other than 0 or 1
    ("problem information 2", connect5_pkt("bc", props=[(REQUEST_PROBLEM_INFO, 2)]), 0x82),
    # Authentication Data without an Authentication Method
    ("auth data without method", connect5_pkt("bc", props=[(0x16, b"secret")]), 0x82),
    # a property that CONNECT cannot carry (Topic Alias)
    ("PUBLISH property in CONNECT", connect5_pkt("bc", props=[(0x23, 1)]), 0x81),
    # Will Properties: one a will cannot carry (Topic Alias), a Response Topic with a wildcard
    # [MQTT5-3.3.2-14], a payload said to be UTF-8 that is not (0x99, Payload format invalid)
    ("will topic wildcard", connect5_pkt("bc", will=("bc/+", b"x", 0, False, [])), 0x90),
    ("will topic alias", connect5_pkt("bc", will=("bc/w", b"x", 0, False, [(0x23, 1)])), 0x81),
    ("will response topic wildcard",
     connect5_pkt("bc", will=("bc/w", b"x", 0, False, [(0x08, "bc/+")])), 0x82),
    ("will payload not UTF-8",
     connect5_pkt("bc", will=("bc/w", b"\xff", 0, False, [(0x01, 1)])), 0x99),
]


@pytest.mark.mosquitto_xfail("2.0.11 closes without a CONNACK (or accepts the CONNECT)")
@pytest.mark.parametrize("name,data,reason", BAD_CONNECT, ids=[b[0] for b in BAD_CONNECT])
def test_bad_connect_refused(r5, broker, name, data, reason):
    """[MQTT5-3.1.4-1] a CONNECT that is malformed or a Protocol Error (or whose will payload is
    not the UTF-8 it claims) is answered with CONNACK 0x81 / 0x82 / 0x99 (Session Present 0
    [MQTT5-3.2.2-6]) and the close [MQTT5-3.2.2-7] [MQTT5-4.13.1-1] [MQTT5-4.13.2-1]; another
    client keeps working."""
    c = r5()
    c.send(data)
    c.expect_connack_refused(reason)
    o = sub5(r5, broker, "bcok", "bcok/t")
    o.publish5("bcok/t", b"fine", qos=1, pid=2)
    assert o.recv_publish().payload == b"fine"


@pytest.mark.sol_only
def test_bad_connect_reason_string(r5, broker):
    """The refusing CONNACK of a CONNECT that did not decode says why in a Reason String (the
    client's Request Problem Information was not read, so its default 1 applies)
    [MQTT5-3.1.2-29]."""
    c = r5()
    c.send(connect5_pkt("bcrs", props=[(RECEIVE_MAXIMUM, 0)]))
    ack = c.expect_connack_refused(0x82)
    assert prop(ack.props, REASON_STRING)


# Not implemented yet: these document the gap and start passing when it is closed.

def test_will_delay_interval(r5, p5, broker):
    """[MQTT5-3.1.3-9] a new connection for the session before the Will Delay Interval (3 s)
    passed: the will is not sent [MQTT5-3.1.2-8]."""
    w = p5(broker, "wdsub")
    w.subscribe("wd/#", 1)
    c = r5()
    c.connect5("wd", clean=True, props=[(SESSION_EXPIRY, 60)],
               will=("wd/will", b"late", 1, False, [(0x18, 3)]))
    c.abort()
    c2 = r5()
    c2.connect5("wd", clean=False, props=[(SESSION_EXPIRY, 60)])
    p = r5()
    p.connect5("wdpub")
    p.publish5("wd/marker", b"m", qos=1)
    assert [m.topic for m in w.wait_messages(1)] == ["wd/marker"]
    assert not w._wait(lambda: len(w.messages) > 1, 0.5), [m.topic for m in w.messages]


@pytest.mark.mosquitto_xfail("2.0.11 closes without a DISCONNECT on SIGTERM")
def test_shutdown_disconnect(r5, broker):
    """On shutdown the server tells v5 clients: DISCONNECT 0x8B (Server shutting down)
    [MQTT5-3.14.2-1], then the close."""
    c = r5()
    c.connect5("bye")
    broker.stop()
    c.expect_disconnect(0x8B)


@pytest.mark.sol_only
def test_publish_above_maximum_qos(r5, broker_factory):
    """[MQTT5-3.2.2-11] a client must not publish above the Maximum QoS of CONNACK (1): a QoS 2
    PUBLISH is answered with DISCONNECT 0x9B (QoS not supported) [MQTT5-4.13.1-1]; QoS 1 works."""
    b = broker_factory(max_qos=1)
    c = r5(b)
    assert prop(c.connect5("mq2").props, MAXIMUM_QOS) == 1
    assert c.publish5("mq2/t", b"ok", qos=1).reason == 0x10
    c.send(publish5_pkt("mq2/t", b"too high", qos=2, pid=2))
    c.expect_disconnect(0x9B)


@pytest.mark.sol_only
def test_will_above_maximum_qos(r5, broker_factory):
    """[MQTT5-3.2.2-12] a CONNECT whose Will QoS (2) exceeds what the server supports (--max-qos
    1) is refused with CONNACK 0x9B (QoS not supported) and the close; Will QoS 1 is accepted."""
    b = broker_factory(max_qos=1)
    c = r5(b)
    c.send(connect5_pkt("wq2", will=("wq/t", b"w", 2, False, [])))
    c.expect_connack_refused(0x9B)
    ok = r5(b)
    ok.connect5("wq1", will=("wq/t", b"w", 1, False, []))


def test_refusals_keep_to_client_maximum_packet_size(r5, broker):
    """[MQTT5-3.1.2-24] not even a DISCONNECT or a refusing CONNACK exceeds the client's Maximum
    Packet Size: a Reason String that would make it larger is left out [MQTT5-3.14.2-3]
    [MQTT5-3.2.2-19]; the reason code still comes."""
    c = r5()
    c.connect5("mpd", props=[(MAXIMUM_PACKET_SIZE, 12)])
    c.send(publish5_pkt("mpd/t", b"x", props=[(0x23, 11)]))  # Topic Alias above the maximum
    d = c.expect_disconnect(0x94)
    assert 2 + len(d.body) <= 12, d
    r = r5()
    r.send(connect5_pkt("mpc", props=[(MAXIMUM_PACKET_SIZE, 10), (AUTH_METHOD, "X-UNKNOWN")]))
    ack = r.expect_connack_refused(0x8C)
    assert 2 + len(ack.body) <= 10, ack
