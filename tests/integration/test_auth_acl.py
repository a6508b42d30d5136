"""Authentication (mosquitto_passwd password file, allow_anonymous) and ACLs (acl_file)."""
import os

import pytest

from mqttraw import (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, ack_pkt, connect_pkt, publish_pkt)

USERS = {"alice": "alice-secret", "bob": "b0b:p@ss w0rd"}

ACL = """\
# Lines before any user line apply to anonymous clients.
topic read anon/#
topic readwrite public/#
topic write users/#

user alice
topic readwrite alice/#
topic read shared/#
topic write shared/inbox
topic deny alice/secret/#

user bob
topic readwrite bob/#
topic read alice/public/#
topic readwrite alice/secret/#

pattern readwrite clients/%c/#
pattern read users/%u/#
"""


@pytest.fixture
def auth_broker(broker_factory):
    return broker_factory(passwords=USERS, allow_anonymous=False)


@pytest.fixture
def acl_broker(broker_factory):
    return broker_factory(passwords=USERS, allow_anonymous=True, acl=ACL)


def login(raw, b, cid, user=None, pw=None, expect_rc=0):
    c = raw(b)
    c.connect(cid, username=user, password=pw, expect_rc=expect_rc)
    return c


def test_password_file_is_mosquitto_passwd_format(auth_broker):
    """The password file under test is produced by the real mosquitto_passwd ($7$ hashes)."""
    with open(os.path.join(auth_broker.workdir, "passwd")) as f:
        lines = [l.strip() for l in f if l.strip()]
    assert len(lines) == 2 and all(l.split(":", 1)[1].startswith("$7$") for l in lines), lines


def test_valid_credentials_accepted(raw, auth_broker):
    """[MQTT-3.1.4-4] correct user name and password -> CONNACK 0."""
    for user, pw in USERS.items():
        c = login(raw, auth_broker, f"ok-{user}", user, pw)
        assert c.is_open()


@pytest.mark.mosquitto_xfail("Mosquitto 2.0 answers a wrong password with 0x05, not 0x04")
@pytest.mark.parametrize("user,pw", [("alice", "wrong"), ("alice", ""), ("mallory", "x"),
                                     ("alice", None)])
def test_bad_credentials_0x04(raw, auth_broker, user, pw):
    """CONNACK 0x04 (bad user name or password) for a wrong password or unknown user, then close
    [MQTT-3.2.2-5]; session present 0 [MQTT-3.2.2-4]."""
    c = raw(auth_broker)
    c.send(connect_pkt("badpw", username=user, password=pw))
    pkt = c.recv_type(CONNACK)
    assert pkt.body == b"\x00\x04", pkt
    c.expect_closed()


@pytest.mark.parametrize("user,pw", [("alice", "wrong"), ("mallory", "x")])
def test_bad_credentials_refused(raw, auth_broker, user, pw):
    """Wrong credentials are refused with a non-zero CONNACK code (0x04 or 0x05) and closed."""
    c = raw(auth_broker)
    c.send(connect_pkt("badpw2", username=user, password=pw))
    pkt = c.recv_type(CONNACK)
    assert pkt.body[0] == 0 and pkt.body[1] in (4, 5), pkt
    c.expect_closed()


def test_anonymous_not_authorized_0x05(raw, auth_broker):
    """allow_anonymous false: a CONNECT without user name -> CONNACK 0x05 then close
    [MQTT-3.2.2-5]."""
    c = raw(auth_broker)
    c.send(connect_pkt("anon"))
    pkt = c.recv_type(CONNACK)
    assert pkt.body == b"\x00\x05", pkt
    c.expect_closed()


def test_rejected_connect_stops_processing(raw, auth_broker):
    """[MQTT-3.1.4-5] data sent after a rejected CONNECT is not processed: a PUBLISH in the same
    write as a refused CONNECT is neither delivered nor retained."""
    watcher = login(raw, auth_broker, "watch", "alice", USERS["alice"])
    watcher.subscribe(1, [("leak/#", 0)])
    c = raw(auth_broker)
    c.send(connect_pkt("intruder", username="alice", password="nope") +
           publish_pkt("leak/x", b"smuggled", retain=True))
    got = c.expect_closed()
    assert got and got[0].type == CONNACK and got[0].body[1] != 0
    watcher.recv_nothing(0.3)
    late = login(raw, auth_broker, "late", "bob", USERS["bob"])
    late.subscribe(1, [("leak/#", 0)])
    late.recv_nothing(0.3)


def test_anonymous_allowed_with_password_file(raw, broker_factory):
    """allow_anonymous true + password file: anonymous connects, wrong passwords still refused."""
    b = broker_factory(passwords=USERS, allow_anonymous=True)
    assert login(raw, b, "anon-ok").is_open()
    c = raw(b)
    c.send(connect_pkt("anon-bad", username="alice", password="bad"))
    assert c.recv_type(CONNACK).body[1] in (4, 5)


@pytest.mark.mosquitto_xfail("Mosquitto 2.0.11 grants SUBSCRIBEs the ACL denies and filters at "
                             "delivery time instead of returning 0x80")
def test_acl_subscribe_denied_0x80(raw, acl_broker):
    """A SUBSCRIBE denied by the ACL gets return code 0x80 [MQTT-3.9.3-2] (deny wins, %c/%u
    patterns, anonymous section); allowed filters in the same packet are granted
    [MQTT-3.8.4-5] [MQTT-3.9.3-1]."""
    a = login(raw, acl_broker, "a1", "alice", USERS["alice"])
    assert a.subscribe(1, [("alice/x", 1), ("bob/x", 1), ("shared/news", 2)]) == [1, 0x80, 2]
    assert a.subscribe(2, [("alice/secret/x", 0), ("alice/#", 0)]) == [0x80, 0]
    assert a.subscribe(3, [("anon/#", 0)]) == [0x80]
    d = login(raw, acl_broker, "dev1", "bob", USERS["bob"])
    assert d.subscribe(1, [("clients/dev1/#", 1), ("clients/dev2/#", 1)]) == [1, 0x80]
    assert d.subscribe(2, [("users/bob/x", 0), ("users/alice/x", 0)]) == [0, 0x80]
    anon = login(raw, acl_broker, "anon1")
    assert anon.subscribe(1, [("anon/#", 0), ("public/#", 0), ("alice/#", 0)]) == [0, 0, 0x80]
    assert a.is_open() and d.is_open() and anon.is_open()


def can_read(raw, b, cid, user, flt, topic, writer):
    """Subscribe cid to flt, have writer publish to topic; True if the message arrives."""
    c = login(raw, b, cid, user, USERS.get(user))
    codes = c.subscribe(1, [(flt, 1)])
    writer.publish(topic, b"probe-" + cid.encode(), qos=1)
    try:
        m = c.recv_publish(timeout=0.4)
    except Exception:
        return False
    assert codes != [0x80], "delivered on a refused subscription"
    return m.payload == b"probe-" + cid.encode()


def test_acl_publish_denied_dropped_but_acknowledged(raw, acl_broker):
    """[MQTT-3.3.5-2] a PUBLISH the ACL denies is acknowledged (PUBACK / PUBREC-PUBREL-PUBCOMP)
    and dropped; the connection stays open."""
    bob = login(raw, acl_broker, "b1", "bob", USERS["bob"])
    assert bob.subscribe(1, [("bob/#", 2)]) == [2]
    alice = login(raw, acl_broker, "a2", "alice", USERS["alice"])
    alice.send(publish_pkt("bob/inbox", b"denied-q1", qos=1, pid=5))
    assert alice.recv_type(PUBACK).pid == 5
    alice.send(publish_pkt("bob/inbox", b"denied-q2", qos=2, pid=6))
    assert alice.recv_type(PUBREC).pid == 6
    alice.send(ack_pkt(PUBREL, 6))
    assert alice.recv_type(PUBCOMP).pid == 6
    alice.send(publish_pkt("bob/inbox", b"denied-q0"))
    assert alice.is_open()
    bob.recv_nothing(0.3)
    bob.publish("bob/inbox", b"allowed", qos=1)
    assert bob.recv_publish().payload == b"allowed"


def test_acl_deny_wins(raw, acl_broker):
    """'topic deny' overrides a broader readwrite grant, for reading and for publishing."""
    a = login(raw, acl_broker, "a3", "alice", USERS["alice"])
    a.subscribe(1, [("alice/#", 0)])
    a.publish("alice/secret/x", b"hidden", qos=1)
    a.publish("alice/open", b"visible", qos=1)
    m = a.recv_publish()
    assert m.topic == "alice/open"
    a.recv_nothing(0.3)
    bob = login(raw, acl_broker, "w3", "bob", USERS["bob"])
    assert can_read(raw, acl_broker, "b3r", "bob", "alice/secret/#", "alice/secret/y", bob)
    assert not can_read(raw, acl_broker, "a3r", "alice", "alice/secret/#", "alice/secret/z", bob)


def test_acl_read_only_and_write_only(raw, acl_broker):
    """read grants receiving but not publishing; write grants publishing but not receiving."""
    a = login(raw, acl_broker, "a4", "alice", USERS["alice"])
    bob = login(raw, acl_broker, "b4", "bob", USERS["bob"])
    assert bob.subscribe(1, [("alice/public/#", 0)]) == [0]
    a.subscribe(1, [("alice/public/#", 0)])
    # bob has read-only access to alice/public/#: his publish there is dropped.
    bob.publish("alice/public/x", b"bob-write", qos=1)
    bob.recv_nothing(0.2)
    a.recv_nothing(0.2)
    a.publish("alice/public/x", b"alice-write", qos=1)
    assert bob.recv_publish().payload == b"alice-write"
    assert a.recv_publish().payload == b"alice-write"
    # alice: shared/inbox is write-only plus read via shared/#; shared/other is read-only.
    a.subscribe(2, [("shared/#", 0)])
    a.publish("shared/inbox", b"w", qos=1)
    assert a.recv_publish().topic == "shared/inbox"
    a.publish("shared/other", b"ro", qos=1)
    a.recv_nothing(0.3)
    # bob cannot read alice/private (only alice/public/#).
    assert not can_read(raw, acl_broker, "b4r", "bob", "alice/private", "alice/private", a)


def test_acl_anonymous_section(raw, acl_broker):
    """Lines before any 'user' line apply to anonymous clients only."""
    anon = login(raw, acl_broker, "anon1")
    anon.subscribe(1, [("anon/#", 0), ("public/#", 0)])
    anon.publish("public/x", b"pub", qos=1)
    assert anon.recv_publish().payload == b"pub"
    anon.publish("anon/x", b"readonly", qos=1)
    anon.recv_nothing(0.3)
    writer = login(raw, acl_broker, "w5")
    assert not can_read(raw, acl_broker, "anon2", None, "alice/#", "alice/x",
                        login(raw, acl_broker, "w5a", "alice", USERS["alice"]))
    # alice does not get the anonymous grants: public/# (written by anonymous) is not readable.
    assert can_read(raw, acl_broker, "anon3", None, "public/#", "public/z", writer)
    assert not can_read(raw, acl_broker, "a5", "alice", "public/#", "public/y", writer)


def test_acl_pattern_client_id(raw, acl_broker):
    """pattern lines substitute %c with the client id."""
    d = login(raw, acl_broker, "dev1", "bob", USERS["bob"])
    d.subscribe(1, [("clients/dev1/#", 1)])
    d.publish("clients/dev1/t", b"mine", qos=1)
    assert d.recv_publish().payload == b"mine"
    dev2 = login(raw, acl_broker, "dev2")
    dev2.subscribe(1, [("clients/dev2/#", 1)])
    d.publish("clients/dev2/t", b"not-mine", qos=1)  # dropped: dev1 cannot write there
    dev2.recv_nothing(0.3)
    dev2.publish("clients/dev2/t", b"own", qos=1)
    assert dev2.recv_publish().payload == b"own"
    assert not can_read(raw, acl_broker, "dev3", None, "clients/dev2/#", "clients/dev2/u", dev2)


def test_acl_pattern_username(raw, acl_broker):
    """pattern lines substitute %u with the user name (read-only here)."""
    a = login(raw, acl_broker, "au", "alice", USERS["alice"])
    a.subscribe(1, [("users/alice/#", 0)])
    a.publish("users/alice/x", b"ro", qos=1)  # read-only for alice: dropped
    a.recv_nothing(0.3)
    writer = login(raw, acl_broker, "uw")  # anonymous: write users/#
    assert can_read(raw, acl_broker, "bu", "bob", "users/bob/#", "users/bob/x", writer)
    assert not can_read(raw, acl_broker, "au2", "alice", "users/bob/#", "users/bob/y", writer)
