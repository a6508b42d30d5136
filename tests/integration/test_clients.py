"""Interoperability with real third-party clients: paho-mqtt 1.6 and mosquitto_pub/mosquitto_sub."""
import socket
import subprocess

import pytest

from mqttclients import MosquittoSub, mosquitto_pub

USERS = {"carol": "c4rol-pw"}


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_to_mosquitto_sub(broker, qos):
    """mosquitto_pub -> broker -> mosquitto_sub at each QoS."""
    sub = MosquittoSub(broker.host, broker.port, ["cli/#"], qos=qos, count=1)
    try:
        sub.wait_subscribed()
        mosquitto_pub(broker.host, broker.port, "cli/x", f"hello-{qos}", qos=qos)
        line = sub.wait_line(lambda l: l.startswith("cli/x "))
        assert line == f"cli/x hello-{qos}"
        assert sub.proc.wait(5) == 0
    finally:
        sub.stop()


def test_mosquitto_retained(broker):
    """mosquitto_pub -r then a later mosquitto_sub --retained-only receives it; -n -r clears it."""
    mosquitto_pub(broker.host, broker.port, "cli/ret", "kept", qos=1, retain=True)
    r = subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t",
                        "cli/ret", "-C", "1", "-W", "5", "--retained-only", "-v"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.strip() == "cli/ret kept", (r.stdout, r.stderr)
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", "cli/ret",
                    "-r", "-n"], check=True, timeout=10)
    r = subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t",
                        "cli/ret", "-C", "1", "-W", "1", "--retained-only"],
                       capture_output=True, text=True, timeout=10)
    assert r.stdout.strip() == "", r.stdout


def test_mosquitto_clients_with_password(broker_factory):
    """mosquitto_pub/sub -u/-P against a mosquitto_passwd file; a wrong password is refused."""
    b = broker_factory(passwords=USERS, allow_anonymous=False)
    auth = ["-u", "carol", "-P", USERS["carol"]]
    sub = MosquittoSub(b.host, b.port, ["auth/t"], qos=1, count=1, extra=auth)
    try:
        sub.wait_subscribed()
        mosquitto_pub(b.host, b.port, "auth/t", "secret-msg", qos=1, extra=auth)
        assert sub.wait_line(lambda l: l.startswith("auth/t ")) == "auth/t secret-msg"
    finally:
        sub.stop()
    with pytest.raises(subprocess.CalledProcessError):
        mosquitto_pub(b.host, b.port, "auth/t", "x", extra=["-u", "carol", "-P", "wrong"])
    with pytest.raises(subprocess.CalledProcessError):
        mosquitto_pub(b.host, b.port, "auth/t", "x")


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_pub_sub(paho, qos):
    """paho publisher -> paho subscriber at each QoS, 50 messages in order."""
    s = paho(client_id=f"paho-sub-{qos}")
    assert s.subscribe("paho/t", qos) == [qos]
    p = paho(client_id=f"paho-pub-{qos}")
    for i in range(50):
        p.publish("paho/t", f"{i}", qos=qos)
    msgs = s.wait_messages(50)
    assert [int(m.payload) for m in msgs] == list(range(50))
    assert all(m.qos == qos for m in msgs)


def test_paho_persistent_session(paho, broker):
    """paho clean_session=False: QoS 1 messages published while it is offline are delivered on
    reconnect, with session present set."""
    s = paho(client_id="paho-persist", clean_session=False)
    s.subscribe("persist/t", 1)
    s.disconnect()
    p = paho(client_id="paho-persist-pub")
    for i in range(10):
        p.publish("persist/t", f"{i}", qos=1)
    s2 = paho(client_id="paho-persist", clean_session=False)
    assert s2.connack[0] == 1
    assert [int(m.payload) for m in s2.wait_messages(10)] == list(range(10))


def test_paho_will(paho, broker):
    """paho will_set: published when the client's socket drops without DISCONNECT."""
    w = paho(client_id="paho-will-watch")
    w.subscribe("pwill/#", 1)
    c = paho(client_id="paho-will", will=("pwill/c", b"paho-gone", 1, False))
    c.client.socket().shutdown(socket.SHUT_RDWR)  # drop the connection without DISCONNECT
    msgs = w.wait_messages(1)
    assert msgs[0].topic == "pwill/c" and msgs[0].payload == b"paho-gone"


def test_paho_unsubscribe_and_retained(paho, broker):
    """paho: retained delivery with retain flag, unsubscribe stops delivery."""
    p = paho(client_id="paho-r-pub")
    p.publish("pr/t", b"r", qos=1, retain=True)
    s = paho(client_id="paho-r-sub")
    s.subscribe("pr/t", 1)
    m = s.wait_messages(1)[0]
    assert m.retain and m.payload == b"r"
    s.unsubscribe("pr/t")
    p.publish("pr/t", b"after", qos=1)
    s.subscribe("pr/x", 1)
    p.publish("pr/x", b"sentinel", qos=1)
    msgs = s.wait_messages(2)
    assert [m.payload for m in msgs] == [b"r", b"sentinel"]


def test_mosquitto_sub_sees_paho_and_raw(broker, paho):
    """Mixed clients on one broker: paho and mosquitto_pub messages reach mosquitto_sub."""
    sub = MosquittoSub(broker.host, broker.port, ["mix/+"], qos=1, count=2)
    try:
        sub.wait_subscribed()
        paho(client_id="mix-paho").publish("mix/paho", b"from-paho", qos=1)
        mosquitto_pub(broker.host, broker.port, "mix/cli", "from-cli", qos=1)
        sub.wait_line(lambda l: l == "mix/paho from-paho")
        sub.wait_line(lambda l: l == "mix/cli from-cli")
    finally:
        sub.stop()
