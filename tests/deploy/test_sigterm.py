"""SIGTERM under load (what Kubernetes and `docker compose stop` do to a node): the node leaves the cluster
(peers mark it "left"), its clients are disconnected and reconnect to another node, no QoS 1 message that was
acknowledged (PUBACK) is lost, and the process exits 0 within the grace period."""

import os
import signal
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from .deploy_helpers import Collector, Node, free_port, free_port_both, publish_once, view_is, wait_for

GRACE_S = 10  # Docker's default stop timeout; the StatefulSet allows 30 s, less a 5 s preStop
ADDRS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@pytest.fixture
def nodes(tmp_path):
    tag = uuid.uuid4().hex[:6]
    ports = [dict(mqtt=free_port(a), cluster=free_port_both(a), http=free_port(a)) for a in ADDRS]
    seeds = ",".join(f"{a}:{p['cluster']}" for a, p in zip(ADDRS, ports))
    ns = [Node(f"sig{i + 1}-{tag}", a, p["mqtt"], p["cluster"], p["http"], seeds, tmp_path)
          for i, (a, p) in enumerate(zip(ADDRS, ports))]
    for n in ns:
        n.start()
    try:
        expected = {n.name: "alive" for n in ns}
        for n in ns:
            wait_for(lambda: view_is(n.host, n.http_port, expected), 10, 0.05, f"{n.name} to see all alive")
        yield ns
    except BaseException:
        for n in ns:
            print(f"--- {n.name}\n{n.log_tail()}")
        raise
    finally:
        for n in ns:
            n.stop()


class Publisher:
    """QoS 1 publisher of numbered messages that moves to the next node when its connection drops.
    acked() is the set of sequence numbers whose PUBACK arrived."""

    def __init__(self, nodes, topic, interval=0.002):
        self.nodes, self.topic, self.interval = list(nodes), topic, interval
        self.lock = threading.Lock()
        self.sent = []  # per connection: (mid -> seq, acked mids)
        self.disconnects = []
        self.stop_evt = threading.Event()
        self.seq = 0
        self.error = None
        self.thread = threading.Thread(target=self.run_safe, daemon=True)

    def connect(self, node):
        c = mqtt.Client(client_id=f"sig-pub-{uuid.uuid4().hex[:8]}", clean_session=True)
        up, down = threading.Event(), threading.Event()
        mids, acked = {}, set()
        c.on_connect = lambda cl, u, f, rc: rc == 0 and up.set()
        c.on_disconnect = lambda cl, u, rc: down.set()
        c.on_publish = lambda cl, u, mid: acked.add(mid)
        c.connect(node.host, node.port, keepalive=10)
        c.loop_start()
        if not up.wait(10):
            raise AssertionError(f"publisher could not connect to {node.name}")
        with self.lock:
            self.sent.append((mids, acked))
        return c, down, mids

    def run_safe(self):
        try:
            self.run()
        except BaseException as e:  # reported by the test through self.error
            self.error = e

    def run(self):
        for node in self.nodes:
            c, down, mids = self.connect(node)
            while not self.stop_evt.is_set() and not down.is_set():
                info = c.publish(self.topic, str(self.seq).encode(), qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    mids[info.mid] = self.seq
                self.seq += 1
                time.sleep(self.interval)
            if self.stop_evt.is_set():
                # Let the last PUBACKs arrive before hanging up.
                wait_for(lambda: set(mids) <= self.acked_mids(mids), 5, 0.02, "last PUBACKs")
                c.disconnect()
                c.loop_stop()
                return
            self.disconnects.append((node.name, time.monotonic()))
            c.loop_stop()

    def acked_mids(self, mids):
        with self.lock:
            for m, a in self.sent:
                if m is mids:
                    return set(a)
        return set()

    def acked(self):
        with self.lock:
            return {m[mid] for m, a in self.sent for mid in list(a) if mid in m}


def test_sigterm_under_load_loses_no_acknowledged_message(nodes):
    n1, n2, n3 = nodes
    topic = f"load/{uuid.uuid4().hex}"
    marker = f"{topic}/marker"
    sub2 = Collector(n2.host, n2.port, f"sig-sub2-{uuid.uuid4().hex[:6]}", [topic, marker], clean_session=False)
    sub1_id = f"sig-sub1-{uuid.uuid4().hex[:6]}"
    sub1 = Collector(n1.host, n1.port, sub1_id, [topic, marker], clean_session=False)
    pub = Publisher([n1, n2], topic)
    try:
        # Routes in place: a message published on n1 reaches the subscriber on n2.
        def routed():
            publish_once(n1.host, n1.port, marker, b"ready")
            try:
                return wait_for(lambda: b"ready" in sub2.payloads(marker), 0.5, 0.02)
            except AssertionError:
                return False
        wait_for(routed, 10, 0, "n1 -> n2 route")

        pub.thread.start()
        wait_for(lambda: len(pub.acked()) >= 200 or pub.error, 10, 0.02, "200 acknowledged before SIGTERM")
        assert pub.error is None, pub.error
        t_term = time.monotonic()
        n1.signal(signal.SIGTERM)

        # The node exits 0 within the grace period.
        rc = n1.proc.wait(GRACE_S)
        exit_s = time.monotonic() - t_term
        assert rc == 0, f"exit status {rc}\n{n1.log_tail()}"

        # Its clients were disconnected (not left hanging until keepalive) and the publisher moved on.
        wait_for(lambda: pub.disconnects, 5, 0.02, "the publisher to be disconnected from n1")
        assert sub1.disconnected.wait(5), "the subscriber on n1 was not disconnected"

        # Peers mark it "left", not "dead".
        for n in (n2, n3):
            wait_for(lambda: view_is(n.host, n.http_port, {n1.name: "left"}), 5, 0.05, f"{n.name}: n1 left")

        # The subscriber reconnects elsewhere with its client id and receives again.
        sub1.close()
        sub1 = Collector(n3.host, n3.port, sub1_id, [topic, marker], clean_session=False)
        publish_once(n2.host, n2.port, marker, b"after")
        wait_for(lambda: b"after" in sub1.payloads(marker), 5, 0.02, "the moved subscriber to receive on n3")

        # Keep publishing on n2 for a while, then stop.
        before = len(pub.acked())
        wait_for(lambda: len(pub.acked()) >= before + 200 or pub.error, 10, 0.02, "200 more acknowledged on n2")
        assert pub.error is None, pub.error
        pub.stop_evt.set()
        pub.thread.join(15)
        assert not pub.thread.is_alive()

        acked = pub.acked()
        got = lambda: {int(p) for p in sub2.payloads(topic)}
        try:
            wait_for(lambda: acked <= got(), 10, 0.05, "every acknowledged message at the subscriber on n2")
        except AssertionError:
            lost = sorted(acked - got())
            raise AssertionError(f"{len(lost)} of {len(acked)} acknowledged messages lost: {lost[:20]}")
        print(f"n1 exited 0 after {exit_s:.2f}s; {len(acked)} acknowledged, all received on n2")
    finally:
        pub.stop_evt.set()
        sub1.close()
        sub2.close()
