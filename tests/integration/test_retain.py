"""Retained messages: set, replace, clear, RETAIN flag on delivery, QoS of retained delivery."""
from mqttraw import publish_pkt


def sub(raw, cid, flt, qos=1):
    c = raw()
    c.connect(cid)
    assert c.subscribe(1, [(flt, qos)]) == [qos]
    return c


def pub(raw, cid="rpub"):
    p = raw()
    p.connect(cid)
    return p


def test_retained_set_and_sent_to_new_subscriber(raw, broker):
    """[MQTT-3.3.1-5] RETAIN=1 stores message and QoS; [MQTT-3.3.1-6] a new subscription gets the
    retained message of every matching topic; [MQTT-3.3.1-8] with RETAIN=1."""
    p = pub(raw)
    p.publish("ret/a", b"A", qos=1, retain=True)
    p.publish("ret/b", b"B", qos=1, retain=True)
    s = sub(raw, "rs1", "ret/+", qos=1)
    got = sorted((m.topic, m.payload, m.retain, m.qos) for m in
                 [s.recv_publish(), s.recv_publish()])
    assert got == [("ret/a", b"A", True, 1), ("ret/b", b"B", True, 1)]
    s.recv_nothing(0.2)


def test_retained_flag_zero_on_established_subscription(raw, broker):
    """[MQTT-3.3.1-9] a message matching an established subscription is sent with RETAIN=0 even
    if it was published with RETAIN=1."""
    s = sub(raw, "rs2", "ret2/t")
    p = pub(raw)
    p.publish("ret2/t", b"live", qos=1, retain=True)
    m = s.recv_publish()
    assert m.payload == b"live" and not m.retain


def test_retained_replace(raw, broker):
    """[MQTT-3.3.1-5] a new retained message replaces the old one."""
    p = pub(raw)
    p.publish("ret3/t", b"old", qos=1, retain=True)
    p.publish("ret3/t", b"new", qos=1, retain=True)
    s = sub(raw, "rs3", "ret3/t")
    m = s.recv_publish()
    assert m.payload == b"new" and m.retain
    s.recv_nothing(0.2)


def test_retained_qos0_replaces(raw, broker):
    """[MQTT-3.3.1-7] a retained QoS 0 message discards the previously retained one."""
    p = pub(raw)
    p.publish("ret4/t", b"q1", qos=1, retain=True)
    p.publish("ret4/t", b"q0", qos=0, retain=True)
    s = sub(raw, "rs4", "ret4/t")
    m = s.recv_publish()
    assert m.payload == b"q0" and m.qos == 0
    s.recv_nothing(0.2)


def test_retained_clear_with_empty_payload(raw, broker):
    """[MQTT-3.3.1-10] empty retained payload is forwarded to current subscribers and removes the
    retained message; [MQTT-3.3.1-11] the empty message is not stored."""
    p = pub(raw)
    p.publish("ret5/t", b"value", qos=1, retain=True)
    live = sub(raw, "rs5live", "ret5/t")
    assert live.recv_publish().payload == b"value"
    p.publish("ret5/t", b"", qos=1, retain=True)
    m = live.recv_publish()
    assert m.payload == b"" and not m.retain
    s = sub(raw, "rs5", "ret5/#")
    s.recv_nothing(0.3)


def test_non_retained_does_not_touch_retained(raw, broker):
    """[MQTT-3.3.1-12] RETAIN=0: not stored, existing retained message not replaced or removed."""
    p = pub(raw)
    p.publish("ret6/t", b"kept", qos=1, retain=True)
    p.publish("ret6/t", b"transient", qos=1, retain=False)
    p.publish("ret6/t", b"", qos=1, retain=False)
    p.publish("ret6/other", b"not-retained", qos=1, retain=False)
    s = sub(raw, "rs6", "ret6/#")
    m = s.recv_publish()
    assert (m.topic, m.payload, m.retain) == ("ret6/t", b"kept", True)
    s.recv_nothing(0.3)


def test_retained_resent_on_resubscribe(raw, broker):
    """[MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-3] a re-subscription gets the retained message
    again, with RETAIN=1."""
    p = pub(raw)
    p.publish("ret7/t", b"again", qos=1, retain=True)
    s = sub(raw, "rs7", "ret7/t")
    assert s.recv_publish().retain
    assert s.subscribe(2, [("ret7/t", 1)]) == [1]
    m = s.recv_publish()
    assert m.retain and m.payload == b"again"
    s.unsubscribe(3, ["ret7/t"])
    assert s.subscribe(4, [("ret7/#", 0)]) == [0]
    m = s.recv_publish()
    assert m.retain and m.payload == b"again" and m.qos == 0


def test_retained_delivered_at_min_qos(raw, broker):
    """[MQTT-3.8.4-6] retained delivery QoS is min(stored QoS, granted QoS)."""
    p = pub(raw)
    p.publish("ret8/t", b"q2", qos=2, retain=True)
    s0 = sub(raw, "rs8a", "ret8/t", qos=0)
    assert s0.recv_publish().qos == 0
    s2 = sub(raw, "rs8b", "ret8/t", qos=2)
    m = s2.recv_publish()
    assert m.qos == 2 and m.retain


def test_retained_survives_session_end(raw, broker):
    """[MQTT-3.1.2-7] retained messages are not session state: they outlive the publisher's
    (clean) session."""
    p = raw()
    p.connect("ret9pub", clean=True)
    p.publish("ret9/t", b"outlives", qos=1, retain=True)
    p.send(b"\xe0\x00")
    p.close()
    s = sub(raw, "rs9", "ret9/t")
    assert s.recv_publish().payload == b"outlives"


def test_retained_not_matched_across_dollar(raw, broker):
    """[MQTT-4.7.2-1] a '#' subscription receives no retained '$' topics."""
    p = pub(raw)
    p.publish("$rtest/t", b"dollar", qos=1, retain=True)
    p.publish("rtest10/t", b"plain", qos=1, retain=True)
    s = sub(raw, "rs10", "#")
    got = []
    try:
        while True:
            got.append(s.recv_publish(timeout=0.4))
    except Exception:
        pass
    topics = [m.topic for m in got]
    assert "rtest10/t" in topics and not any(t.startswith("$") for t in topics), topics
