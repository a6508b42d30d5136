"""Retained messages that expire in a cluster (issue 12): each node removes its own copy when the
MQTT 5 Message Expiry Interval ends; nothing is gossiped as a clear, the moment the nodes differ
starts no exchange of retained sets, and the stamps left without a value are reaped
(docs/cluster.md, "Expired retained messages are a local event")."""
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from test_mqtt5_cluster import Client5
from test_retained import retained_snapshot

EXPIRING = 20


def metric(node, name):
    v = node.metric(name)
    return 0 if v is None else int(v)


def test_expiry_is_local_on_every_node_not_a_clear(cluster):
    nodes = cluster.start_nodes(3)
    n1 = nodes[0]
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    pub = Client5(n1, "exp-pub").connect()
    try:
        pub.publish("keep/a", b"kept", qos=1, retain=True)
        cluster.wait_until(lambda: all(retained_snapshot(n, "keep") == {"keep/a": b"kept"}
                                       for n in nodes), 10, "the lasting value on every node")
        base = {n.name: metric(n, "sol_cluster_retained_sync_entries") for n in nodes}
        reaped = {n.name: metric(n, "sol_cluster_retained_tombstones_reaped_total") for n in nodes}
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = 2
        for i in range(EXPIRING):
            pub.publish("exp/%d" % i, b"short-lived", qos=1, retain=True, props=props)
        # Every node held them (replicated) and expired each of them itself.
        cluster.wait_until(lambda: all(metric(n, "sol_retained_expired_total") >= EXPIRING
                                       for n in nodes), 15, "every node expiring its copies")
        stable = {n.name: metric(n, "sol_cluster_retained_stable_hlc") for n in nodes}
        # The nodes agree again (each one's stable stamp moves on) and the valueless stamps are
        # gone: a full sync is back to its size.
        cluster.wait_until(
            lambda: all(metric(n, "sol_cluster_retained_stable_hlc") > stable[n.name] and
                        metric(n, "sol_cluster_retained_sync_entries") <= base[n.name]
                        for n in nodes), 20, "digests agreeing and the expired stamps reaped")
        for n in nodes:
            assert metric(n, "sol_retained_expired_total") == EXPIRING, n.name
            # Not a clear: no tombstone was made anywhere (none held, none reaped).
            assert metric(n, "sol_cluster_retained_tombstones") == 0, n.name
            assert metric(n, "sol_cluster_retained_tombstones_reaped_total") == reaped[n.name]
            assert "retained messages differ" not in n.log_tail(100000), n.name
            assert retained_snapshot(n, "exp") == {}, "an expired message came back on %s" % n.name
            assert retained_snapshot(n, "keep") == {"keep/a": b"kept"}
    finally:
        pub.close()
