"""Retained tombstones are bounded (issue 10, Must-show 2): a clear is remembered as a tombstone only
until every node has it, then reaped, so clearing 100,000 distinct retained topics on a 3-node cluster
leaves the tombstone memory and the size of a full retained sync back near where they started, and a
cleared topic does not come back (not on a node that restarts and syncs again, not from a node that
was cut off while the clear happened)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from mqttraw import PUBACK, RawClient, publish_pkt  # noqa: E402
from test_retained import retained_snapshot  # noqa: E402

CLEARS = 100000


def metric(node, name):
    v = node.metric(name)
    return 0 if v is None else int(v)


def raw_client(node, client_id):
    c = RawClient(node.addr, node.mqtt_port, timeout=30)
    c.connect(client_id)
    return c


def publish_all(client, packets):
    """Pipelined: every packet sent in large writes, then one QoS 1 PUBLISH whose PUBACK says the
    node has handled all of them (a connection's packets are handled in order)."""
    batch = []
    for p in packets:
        batch.append(p)
        if len(batch) >= 5000:
            client.send(b"".join(batch))
            batch = []
    client.send(b"".join(batch) + publish_pkt("tomb/fence", b"", qos=1, pid=1))
    client.recv_ack(PUBACK, 1)


def wait_reaped(cluster, nodes, base, what):
    """Every node holds no more tombstones than at the start, and a full sync no more entries."""
    cluster.wait_until(
        lambda: all(metric(n, "sol_cluster_retained_tombstones") <= base[n.name][0] and
                    metric(n, "sol_cluster_retained_sync_entries") <= base[n.name][1] + 1
                    for n in nodes), 40, what)


def wait_rounds(cluster, node, count):
    """Wait for count more heartbeat rounds on node (each compares digests and moves the floor)."""
    r0 = metric(node, "sol_cluster_retained_rounds_total")
    cluster.wait_until(lambda: metric(node, "sol_cluster_retained_rounds_total") >= r0 + count, 10,
                       "%d heartbeat rounds on %s" % (count, node.name))


def test_tombstones_reaped_once_every_node_has_them(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    nodes = (n1, n2, n3)
    pub = raw_client(n1, "tomb-pub")
    try:
        # A value that stays, and ten that are set and later cleared among the 100,000.
        publish_all(pub, [publish_pkt("keep/a", b"kept", retain=True)] +
                    [publish_pkt("gone/%d" % i, b"old-%d" % i, retain=True) for i in range(10)])
        want_gone = {"gone/%d" % i: b"old-%d" % i for i in range(10)}
        cluster.wait_until(lambda: all(retained_snapshot(n, "gone") == want_gone for n in nodes), 10,
                           "the ten values on every node")
        base = {n.name: (metric(n, "sol_cluster_retained_tombstones"),
                         metric(n, "sol_cluster_retained_sync_entries")) for n in nodes}
        reaped0 = {n.name: metric(n, "sol_cluster_retained_tombstones_reaped_total") for n in nodes}

        t0 = time.monotonic()
        publish_all(pub, [publish_pkt("gone/%d" % i, b"", retain=True) for i in range(10)] +
                    [publish_pkt("tomb/%d" % i, b"", retain=True) for i in range(CLEARS)])
        cluster.figure("tombstones: %d clears published on n1" % CLEARS, time.monotonic() - t0)
        # Every node remembered every clear (reaped or still held) ...
        cluster.wait_until(
            lambda: all(metric(n, "sol_cluster_retained_tombstones") +
                        metric(n, "sol_cluster_retained_tombstones_reaped_total") - reaped0[n.name]
                        >= CLEARS for n in nodes), 30, "every clear held on every node")
        # ... and once all agree, none is left, and a full sync is back to its size.
        wait_reaped(cluster, nodes, base, "tombstones reaped on every node")
        cluster.figure("tombstones: %d clears -> reaped on all 3 nodes" % CLEARS,
                       time.monotonic() - t0)
        for n in nodes:
            assert metric(n, "sol_cluster_retained_tombstone_bytes") <= 64 * (base[n.name][0] + 1)
            assert retained_snapshot(n, "gone") == {}, "a cleared topic came back on %s" % n.name
            assert retained_snapshot(n, "keep") == {"keep/a": b"kept"}

        # A node that restarts takes the whole retained set again: the cleared topics stay cleared.
        n3.stop()
        n3 = cluster.start_node("n3", [n1, n2])
        cluster.wait_until(lambda: cluster.converged(), 10, "n3 back")
        assert retained_snapshot(n3, "gone") == {}
        assert retained_snapshot(n3, "keep") == {"keep/a": b"kept"}
    finally:
        pub.close()


def test_cleared_topic_not_resurrected_by_node_cut_off_during_the_clear(cluster):
    """n3 still holds the values when the others clear them: while it is away the others keep the
    tombstones (it may come back), and after the heal the clears win everywhere and are reaped."""
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    nodes = (n1, n2, n3)
    pub = raw_client(n1, "cut-pub")
    try:
        publish_all(pub, [publish_pkt("gone/%d" % i, b"old", retain=True) for i in range(20)])
        cluster.wait_until(lambda: all(len(retained_snapshot(n, "gone")) == 20 for n in nodes), 10,
                           "the values on every node")
        # The stamp at which all three agreed on the values (it stays while nothing changes).
        cluster.wait_until(lambda: n2.metric("sol_cluster_retained_stable_hlc") > 0, 15,
                           "all three agreeing on the values")
        stable0 = n2.metric("sol_cluster_retained_stable_hlc")
        cluster.isolate(n3)
        cluster.wait_until(lambda: cluster.sees(n1, "n3", "dead") and cluster.sees(n2, "n3", "dead"),
                           30, "n3 dead to n1 and n2")
        publish_all(pub, [publish_pkt("gone/%d" % i, b"", retain=True) for i in range(20)])
        cluster.wait_until(lambda: retained_snapshot(n2, "gone") == {}, 10, "cleared on n2")
        assert len(retained_snapshot(n3, "gone")) == 20  # n3 has not heard of it
        # While n3 is away, n1 and n2 agree with each other (n2's stable stamp passes the clears,
        # and n1 has heard it for two heartbeats: without n3 in the way, they would be reaped) but
        # keep the tombstones for n3.
        r1 = metric(n1, "sol_cluster_retained_tombstones_reaped_total")
        cluster.wait_until(lambda: n2.metric("sol_cluster_retained_stable_hlc") > stable0, 15,
                           "n1 and n2 agreeing after the clears")
        wait_rounds(cluster, n1, 2)
        assert metric(n1, "sol_cluster_retained_tombstones") >= 20, "reaped while n3 was away"
        cluster.heal()
        cluster.wait_until(lambda: cluster.converged(), 30, "n3 back after the heal")
        cluster.wait_until(lambda: all(retained_snapshot(n, "gone") == {} for n in nodes), 15,
                           "the clears win on every node, n3 included")
        cluster.wait_until(lambda: all(metric(n, "sol_cluster_retained_tombstones") == 0
                                       for n in nodes), 30, "tombstones reaped after the heal")
        assert metric(n1, "sol_cluster_retained_tombstones_reaped_total") >= r1 + 20
        for n in nodes:
            assert retained_snapshot(n, "gone") == {}, "a cleared topic came back on %s" % n.name
    finally:
        pub.close()
