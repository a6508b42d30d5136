"""CONNECT / CONNACK: validation, return codes, client identifiers, protocol ordering."""
import struct

import pytest

from mqttraw import (CONNACK, PUBLISH, connect_pkt, enc_str, packet, publish_pkt, subscribe_pkt,
                     pingreq_pkt)


def assert_closed_without_connack(c, timeout=3.0):
    got = c.expect_closed(timeout)
    assert not any(p.type == CONNACK for p in got), f"unexpected CONNACK: {got!r}"


def test_connect_accepted(raw):
    """[MQTT-3.1.4-4] valid CONNECT -> CONNACK 0; [MQTT-3.2.0-1] CONNACK is the first packet;
    [MQTT-3.1.3-5] 1-23 alphanumeric client ids are accepted; [MQTT-3.1.3-3] client id first."""
    c = raw()
    c.send(connect_pkt("abcXYZ0123456789abcdefg", clean=True))
    first = c.recv()
    assert first.type == CONNACK and first.body == b"\x00\x00", first
    assert first.flags == 0
    assert c.is_open()


def test_connack_then_other_packets_immediately(raw):
    """[MQTT-3.1.4-4] the client may send packets right after CONNECT without waiting for CONNACK;
    the server processes them in order after accepting the connection."""
    c = raw()
    c.send(connect_pkt("eager") + subscribe_pkt(7, [("eager/t", 0)]) + pingreq_pkt())
    assert c.recv().type == CONNACK
    suback = c.recv()
    assert suback.type == 9 and suback.pid == 7
    assert c.recv().type == 13


@pytest.mark.parametrize("level", [0, 2, 6, 255])
def test_unacceptable_protocol_level(raw, level):
    """[MQTT-3.1.2-2] unsupported protocol level -> CONNACK 0x01 then close;
    [MQTT-3.2.2-4] session present 0 with a non-zero code; [MQTT-3.2.2-5] close after it."""
    c = raw()
    c.send(connect_pkt("lvl", level=level))
    pkt = c.recv()
    assert pkt.type == CONNACK and pkt.body == b"\x00\x01", pkt
    c.expect_closed()


@pytest.mark.parametrize("name", [b"MQTX", b"mqtt", b"MQ", b""])
def test_bad_protocol_name_closes(raw, name):
    """[MQTT-3.1.2-1] a wrong protocol name: the server may close without CONNACK and must not
    go on with the CONNECT as MQTT 3.1.1; [MQTT-3.1.4-1] invalid CONNECT -> close, no CONNACK 0."""
    c = raw()
    c.send(connect_pkt("name", proto_name=name))
    got = c.expect_closed()
    assert not any(p.type == CONNACK and p.body[1] == 0 for p in got), got


def test_reserved_connect_flag_closes(raw):
    """[MQTT-3.1.2-3] CONNECT reserved flag (bit 0) set -> close without CONNACK;
    [MQTT-3.2.2-6] no applicable return code -> close without CONNACK."""
    c = raw()
    c.send(connect_pkt("resv", reserved=True))
    assert_closed_without_connack(c)


@pytest.mark.parametrize("first_byte", [0x11, 0x12, 0x14, 0x18, 0x1F])
def test_connect_fixed_header_flags(raw, first_byte):
    """[MQTT-2.2.2-1] [MQTT-2.2.2-2] CONNECT fixed-header flags must be 0000 -> else close."""
    c = raw()
    c.send(connect_pkt("fh", first_byte=first_byte))
    assert_closed_without_connack(c)


def test_empty_client_id_with_clean_session_0_rejected(raw):
    """[MQTT-3.1.3-8] zero-length client id with CleanSession 0 -> CONNACK 0x02 and close;
    [MQTT-3.1.3-9] rejected client id -> 0x02 then close; [MQTT-3.2.2-4] session present 0."""
    c = raw()
    c.send(connect_pkt("", clean=False))
    pkt = c.recv()
    assert pkt.type == CONNACK and pkt.body == b"\x00\x02", pkt
    c.expect_closed()


def test_empty_client_id_with_clean_session_1_gets_unique_id(raw, broker):
    """[MQTT-3.1.3-6] zero-length client id + CleanSession 1: the server assigns a unique id.
    Two such clients must both stay connected (same id would be a takeover) and be routed apart."""
    a, b = raw(), raw()
    assert a.connect("", clean=True) == (0, 0)
    assert b.connect("", clean=True) == (0, 0)
    assert a.subscribe(1, [("gen/a", 0)]) == [0]
    assert b.subscribe(1, [("gen/b", 0)]) == [0]
    assert a.is_open() and b.is_open()
    b.publish("gen/a", b"to-a")
    assert a.recv_publish().payload == b"to-a"
    a.publish("gen/b", b"to-b")
    assert b.recv_publish().payload == b"to-b"


def test_client_id_invalid_utf8_rejected(raw):
    """[MQTT-3.1.3-4] [MQTT-1.5.3-1] client id must be well-formed UTF-8: ill-formed -> the
    connection is closed (with CONNACK 0x02 or none), never accepted."""
    c = raw()
    c.send(connect_pkt(b"bad\xc3\x28id"))
    got = c.expect_closed()
    assert all(p.type != CONNACK or p.body[1] != 0 for p in got), got


def test_client_id_surrogate_rejected(raw):
    """[MQTT-1.5.3-1] UTF-8 encoded surrogates (U+D800..U+DFFF) are ill-formed -> close."""
    c = raw()
    c.send(connect_pkt(b"sur\xed\xa0\x80"))
    got = c.expect_closed()
    assert all(p.type != CONNACK or p.body[1] != 0 for p in got), got


def test_client_id_with_nul_rejected(raw):
    """[MQTT-1.5.3-2] U+0000 in a string -> close."""
    c = raw()
    c.send(connect_pkt(b"nul\x00id"))
    got = c.expect_closed()
    assert all(p.type != CONNACK or p.body[1] != 0 for p in got), got


def test_second_connect_closes(raw):
    """[MQTT-3.1.0-2] a second CONNECT is a protocol violation -> close."""
    c = raw()
    c.connect("twice")
    c.send(connect_pkt("twice"))
    c.expect_closed()


@pytest.mark.parametrize("pkt", [
    publish_pkt("before/connect", b"x"),
    subscribe_pkt(1, [("a", 0)]),
    pingreq_pkt(),
    b"\xe0\x00",  # DISCONNECT
    b"\x40\x02\x00\x01",  # PUBACK
], ids=["publish", "subscribe", "pingreq", "disconnect", "puback"])
def test_packet_before_connect_closes(raw, pkt):
    """[MQTT-3.1.0-1] the first packet from a client must be CONNECT; anything else -> close."""
    c = raw()
    c.send(pkt)
    got = c.expect_closed()
    assert not any(p.type == CONNACK for p in got)


def test_publish_before_connect_not_delivered(raw, broker):
    """[MQTT-3.1.0-1] a PUBLISH sent before CONNECT is not processed."""
    s = raw()
    s.connect("watch")
    s.subscribe(1, [("pre/#", 0)])
    c = raw()
    c.send(publish_pkt("pre/x", b"sneaky", retain=True))
    c.expect_closed()
    s.recv_nothing(0.3)
    late = raw()
    late.connect("late")
    late.subscribe(1, [("pre/#", 0)])
    late.recv_nothing(0.3)


def test_will_flags_without_will_flag(raw):
    """[MQTT-3.1.2-11] [MQTT-3.1.2-13] Will QoS set while Will Flag is 0 -> close, no CONNACK."""
    c = raw()
    c.send(connect_pkt("wq", flags=0x02 | 0x08))
    assert_closed_without_connack(c)


def test_will_retain_without_will_flag(raw):
    """[MQTT-3.1.2-15] Will Retain set while Will Flag is 0 -> close, no CONNACK."""
    c = raw()
    c.send(connect_pkt("wr", flags=0x02 | 0x20))
    assert_closed_without_connack(c)


def test_will_qos_3(raw):
    """[MQTT-3.1.2-14] Will QoS 3 -> close, no CONNACK."""
    c = raw()
    c.send(connect_pkt("wq3", will=("w/t", b"m", 3, False)))
    assert_closed_without_connack(c)


def test_will_flag_without_will_fields(raw):
    """[MQTT-3.1.2-9] Will Flag 1 but no Will Topic / Will Message in the payload -> close."""
    c = raw()
    body = enc_str("MQTT") + bytes([4, 0x02 | 0x04]) + struct.pack("!H", 60) + enc_str("nowill")
    c.send(packet(0x10, body))
    assert_closed_without_connack(c)


def test_username_flag_without_username(raw):
    """[MQTT-3.1.2-19] User Name flag 1 but no user name in the payload -> close."""
    c = raw()
    c.send(connect_pkt("nouser", flags=0x02 | 0x80))
    assert_closed_without_connack(c)


def test_password_flag_without_password(raw):
    """[MQTT-3.1.2-21] Password flag 1 but no password in the payload -> close."""
    c = raw()
    body = (enc_str("MQTT") + bytes([4, 0x02 | 0x80 | 0x40]) + struct.pack("!H", 60) +
            enc_str("nopw") + enc_str("user"))
    c.send(packet(0x10, body))
    assert_closed_without_connack(c)


def test_password_without_username(raw):
    """[MQTT-3.1.2-22] Password flag 1 with User Name flag 0 -> close, no CONNACK 0."""
    c = raw()
    body = (enc_str("MQTT") + bytes([4, 0x02 | 0x40]) + struct.pack("!H", 60) +
            enc_str("pwonly") + enc_str("secret"))
    c.send(packet(0x10, body))
    got = c.expect_closed()
    assert all(p.type != CONNACK or p.body[1] != 0 for p in got), got


def test_username_invalid_utf8(raw):
    """[MQTT-3.1.3-11] user name must be UTF-8 -> ill-formed closes the connection."""
    c = raw()
    c.send(connect_pkt("baduser", username=b"\xff\xfe"))
    got = c.expect_closed()
    assert all(p.type != CONNACK or p.body[1] != 0 for p in got), got


def test_will_topic_invalid(raw):
    """[MQTT-3.1.3-10] will topic must be a valid UTF-8 topic name (no wildcards, no U+0000)."""
    for i, topic in enumerate([b"w/\xff", b"w/+", b"w/#", b"w\x00t"]):
        c = raw()
        c.send(connect_pkt(f"badwill{i}", will=(topic, b"m", 0, False)))
        got = c.expect_closed()
        assert all(p.type != CONNACK or p.body[1] != 0 for p in got), (topic, got)


def test_connect_truncated_payload(raw):
    """[MQTT-3.1.4-1] a CONNECT whose strings run past the remaining length -> close."""
    c = raw()
    body = enc_str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + b"\x00\x10abc"
    c.send(packet(0x10, body))
    assert_closed_without_connack(c)


def test_username_password_accepted_without_password_file(raw):
    """[MQTT-3.1.2-18] [MQTT-3.1.2-20] user name / password fields parsed when flagged, in the
    payload order of [MQTT-3.1.3-1]; without a password file any credentials are accepted."""
    c = raw()
    assert c.connect("creds", username="someone", password=b"\x00\x01binary") == (0, 0)
    assert c.is_open()
