"""QoS 2 exactly once across a cross-node takeover (issue 10, Must-show 1): the session that moves
carries its whole state, so a client that reconnects on another node completes every flow where
it left off, with the original packet ids, and nothing is delivered twice.

On node 1 the client holds: a message it received but did not acknowledge (the broker waits for
PUBREC), one it answered with PUBREC (the broker sent PUBREL and waits for PUBCOMP), and a QoS 2
PUBLISH of its own that the broker answered with PUBREC (the broker holds its id until PUBREL).
It then drops the connection and reconnects on node 2."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from mqttraw import (PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient, Timeout,  # noqa: E402
                     ack_pkt, publish_pkt)
from routing_helpers import wait_routes  # noqa: E402


def test_qos2_exactly_once_across_takeover(cluster):
    n1, n2 = cluster.start_nodes(2)
    cluster.wait_until(lambda: cluster.converged(), 5, "2 nodes alive")
    clients = []

    def raw(node):
        c = RawClient(node.addr, node.mqtt_port)
        clients.append(c)
        return c

    try:
        watcher = raw(n2)  # subscribes to what the moving client publishes
        watcher.connect("q2-watch")
        assert watcher.subscribe(1, [("q2/out", 2)]) == [2]
        mover = raw(n1)
        assert mover.connect("q2-mover", clean=False) == (0, 0)
        assert mover.subscribe(1, [("q2/in", 2)]) == [2]
        wait_routes(cluster, n2, 1)  # n2 knows n1 wants q2/in
        wait_routes(cluster, n1, 1)  # n1 knows n2 wants q2/out

        pub = raw(n2)
        pub.connect("q2-pub")
        pub.publish("q2/in", b"first", qos=2, pid=11)
        pub.publish("q2/in", b"second", qos=2, pid=12)
        m1 = mover.recv_type(PUBLISH)
        m2 = mover.recv_type(PUBLISH)
        assert (m1.payload, m2.payload) == (b"first", b"second")
        # second: PUBREC -> the broker sends PUBREL; we keep the PUBCOMP back.
        mover.send(ack_pkt(PUBREC, m2.pid))
        rel = mover.recv_type(PUBREL)
        assert rel.pid == m2.pid
        # Our own QoS 2 PUBLISH: delivered on first receipt; we keep the PUBREL back.
        mover.send(publish_pkt("q2/out", b"mine", qos=2, pid=7))
        assert mover.recv_type(PUBREC).pid == 7
        got = watcher.recv_publish()
        assert got.payload == b"mine"

        mover.abort()  # gone without DISCONNECT: the session (persistent) stays on n1
        cluster.wait_until(lambda: n1.metric("sol_connections") == 0, 5,
                           "n1 to see the client gone")

        again = raw(n2)
        sp, rc = again.connect("q2-mover", clean=False)
        assert (sp, rc) == (1, 0), "the moved session should be present"
        # [MQTT-4.4.0-1]: the PUBREL first (PUBREC order), then the unacknowledged PUBLISH with DUP,
        # each with the packet id the client already knows.
        p = again.recv()
        assert p.type == PUBREL and p.pid == m2.pid, p
        p = again.recv()
        assert p.type == PUBLISH and p.pid == m1.pid and p.dup and p.payload == b"first", p
        again.send(ack_pkt(PUBCOMP, m2.pid))
        again.send(ack_pkt(PUBREC, m1.pid))
        assert again.recv_type(PUBREL).pid == m1.pid
        again.send(ack_pkt(PUBCOMP, m1.pid))
        # The client re-sends its own PUBLISH (DUP, same id): acknowledged, not delivered again.
        again.send(publish_pkt("q2/out", b"mine", qos=2, pid=7, dup=True))
        assert again.recv_type(PUBREC).pid == 7
        again.send(ack_pkt(PUBREL, 7))
        assert again.recv_type(PUBCOMP).pid == 7
        # Nothing else arrives on either side: no re-delivery with a new id, no second "mine".
        again.recv_nothing(0.5)
        try:
            extra = watcher.recv(0.5)
            assert extra.type != PUBLISH, f"delivered twice: {extra}"
        except Timeout:
            pass
        # The session keeps working on n2 with fresh ids that do not collide.
        pub.publish("q2/in", b"third", qos=2, pid=13)
        m3 = again.recv_publish()
        assert m3.payload == b"third" and m3.pid not in (m1.pid, m2.pid)
    finally:
        for c in clients:
            c.close()
