"""Retained messages whose MQTT 5 Message Expiry Interval ends are removed for good (issue 12,
"Bounded disk"): the broker's sweep takes them out of memory and deletes their store record, and
a record that expired while the broker was down is deleted at restore, not just skipped. Counted
by sol_retained_expired_total; docs/persistence.md ("Retained messages that expire")."""
import re
import time
import urllib.request

import pytest

from conftest import free_port
from mqtt5raw import Paho5, publish_props

pytestmark = pytest.mark.sol_only


def metrics(http, timeout=10.0):
    """The broker's /metrics as {name: value} (unlabelled samples), retried until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "no /metrics on port %d" % http
            time.sleep(0.05)
    return {l.split()[0]: float(l.split()[1]) for l in text.decode().splitlines()
            if l.startswith("sol_") and "{" not in l}


def wait_metrics(http, pred, timeout=10.0):
    """Poll /metrics until pred(metrics) holds; returns those metrics."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(http)
        if pred(m):
            return m
        assert time.monotonic() < deadline, "metrics never matched: %r" % {
            k: v for k, v in m.items() if "retained" in k}
        time.sleep(0.05)


def restored_retained(log):
    """What the store's restore line says it brought back."""
    found = re.findall(r"restored \d+ sessions and (\d+) retained messages", log)
    assert found, log
    return int(found[-1])


def publish(c, topic, payload, expiry=None):
    """A retained QoS 1 publish, acknowledged (so durable: --durability sync)."""
    props = publish_props(MessageExpiryInterval=expiry) if expiry else None
    c.publish(topic, payload, qos=1, retain=True, props=props)


def retained_topics(b, prefix):
    """The retained topics a new subscriber to prefix/# gets: it then publishes prefix/end (not
    retained) to itself, which arrives after every retained message the SUBSCRIBE sent."""
    c = Paho5(b.host, b.port, "probe-%s" % prefix)
    try:
        c.subscribe(prefix + "/#", 1)
        c.publish(prefix + "/end", b"", qos=1)
        msgs = c.wait_messages(1)
        while msgs[-1].topic != prefix + "/end":
            msgs = c.wait_messages(len(msgs) + 1)
        assert all(m.retain for m in msgs[:-1])
        return {m.topic for m in msgs[:-1]}
    finally:
        c.stop()


def test_expired_retained_is_swept_from_memory_and_store(broker_factory, tmp_path):
    """A retained message with a 1 s expiry is removed by the sweep (counted, no longer held, not
    sent to a new subscriber) and its record deleted: after kill -9 it is not restored. One replaced
    by a value without expiry before its end stays."""
    store, http = str(tmp_path / "store"), free_port()
    args = ["--data-dir", store, "--http-port", str(http)]
    b = broker_factory(extra_args=args)
    pub = Paho5(b.host, b.port, "rx-pub")
    publish(pub, "rx/replaced", b"first", expiry=1)
    publish(pub, "rx/replaced", b"for good")
    publish(pub, "rx/gone", b"short-lived", expiry=1)
    publish(pub, "rx/kept", b"stays")
    m = wait_metrics(http, lambda m: m.get("sol_retained_expired_total", 0) >= 1)
    assert m["sol_retained_expired_total"] == 1
    assert retained_topics(b, "rx") == {"rx/replaced", "rx/kept"}
    # Acknowledged once its batch is durable: the sweep's delete went in an earlier one.
    publish(pub, "rx/marker", b"m")
    pub.stop()
    b.kill()

    b = broker_factory(port=b.port, extra_args=args)
    assert restored_retained(b.log()) == 3
    m = metrics(http)
    assert m["sol_retained_expired_total"] == 0  # no expired record was left to find
    assert retained_topics(b, "rx") == {"rx/replaced", "rx/kept", "rx/marker"}


def test_retained_expired_while_down_is_deleted_at_restore(broker_factory, tmp_path):
    """A retained message whose expiry ends while the broker is down is not restored, and its
    record is deleted: the start after that finds nothing expired."""
    store, http = str(tmp_path / "store"), free_port()
    args = ["--data-dir", store, "--http-port", str(http)]
    b = broker_factory(extra_args=args)
    pub = Paho5(b.host, b.port, "rd-pub")
    t0 = time.monotonic()
    publish(pub, "rd/gone", b"short-lived", expiry=2)
    publish(pub, "rd/kept", b"stays")
    pub.stop()
    b.kill()
    if time.monotonic() - t0 >= 1.5:
        pytest.skip("the machine is too slow to stop the broker before a 2 s expiry")
    # Its deadline passes while no broker runs (a time, not an event anything could report).
    time.sleep(max(0.0, t0 + 2.3 - time.monotonic()))

    b = broker_factory(port=b.port, extra_args=args)
    assert restored_retained(b.log()) == 1
    m = metrics(http)
    assert m["sol_retained_expired_total"] == 1
    assert retained_topics(b, "rd") == {"rd/kept"}
    pub = Paho5(b.host, b.port, "rd-pub")
    publish(pub, "rd/marker", b"m")  # durable after the restore's delete, in an earlier batch
    pub.stop()
    b.kill()

    b = broker_factory(port=b.port, extra_args=args)
    assert restored_retained(b.log()) == 2
    assert metrics(http)["sol_retained_expired_total"] == 0  # the record was deleted
    assert retained_topics(b, "rd") == {"rd/kept", "rd/marker"}
