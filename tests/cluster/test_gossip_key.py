"""Sealed gossip (issue 13): nodes sharing a --cluster-key-file form a cluster and route; a node with
another key, or none, is never admitted and is counted as rejected; random datagrams to the gossip
port are dropped and counted; keys rotate with SIGHUP without the cluster coming apart."""
import base64
import os
import signal
import socket

from conftest import CLIENT_ADDR
from routing_helpers import Client, close_all, wait_routes

REJECTED = "sol_cluster_gossip_rejected_total"


def _key():
    return base64.b64encode(os.urandom(32)).decode()


def _write_keys(path, keys):
    with open(path + ".tmp", "w") as f:
        f.write("".join(k + "\n" for k in keys))
    os.replace(path + ".tmp", path)


def _keyed_nodes(cluster, keys, count=3):
    """count nodes, each with its own key file holding keys; returns (nodes, key file paths)."""
    names = ["n%d" % (i + 1) for i in range(count)]
    addrs = [cluster.next_addr() for _ in names]
    seeds = cluster.seeds_for(addrs)
    nodes, paths = [], []
    for name, addr in zip(names, addrs):
        path = os.path.join(cluster.tmpdir, "%s.keys" % name)
        _write_keys(path, keys)
        paths.append(path)
        nodes.append(cluster.start_node(name, seeds, ("--cluster-key-file", path), addr=addr,
                                        wait_ready=False))
    for n in nodes:
        n.wait_ready()
    return nodes, paths


def _route_one(cluster, pub_node, sub_node, topic):
    sub = Client(sub_node, "sub-%s-%s" % (sub_node.name, topic.replace("/", "-"))).connect()
    pub = Client(pub_node, "pub-%s-%s" % (pub_node.name, topic.replace("/", "-"))).connect()
    try:
        before = len(sub.received)
        sub.subscribe(topic, qos=1)
        cluster.wait_until(lambda: _knows_route(pub_node, sub_node), 5, "route to propagate")
        pub.publish(topic, b"sealed", qos=1)
        got = sub.wait_count(before + 1, 10)
        assert got[-1][2] == b"sealed"
    finally:
        close_all([sub, pub])


def _knows_route(pub_node, sub_node):
    v = pub_node.metric("sol_routes")
    return v is not None and v >= 1


def _rejected(node):
    return node.metric(REJECTED) or 0


def _hup_and_wait(cluster, nodes, count_before):
    for n in nodes:
        n.signal(signal.SIGHUP)
    for n, before in zip(nodes, count_before):
        cluster.wait_until(lambda: n.log_tail(100000).count("gossip keys re-read") > before, 5,
                           "%s to re-read its keys" % n.name)


def _reread_counts(nodes):
    return [n.log_tail(100000).count("gossip keys re-read") for n in nodes]


def test_keyed_cluster_forms_and_routes(cluster):
    """Three nodes with the same key see each other alive and route a message; nothing is rejected."""
    nodes, _ = _keyed_nodes(cluster, [_key()])
    cluster.wait_until(lambda: cluster.converged(nodes), 10, "3 keyed nodes alive")
    _route_one(cluster, nodes[0], nodes[2], "sealed/route")
    assert all(_rejected(n) == 0 for n in nodes)
    for n in nodes:
        assert "gossip is not encrypted" not in n.log_tail()


def _stranger_stays_out(cluster, nodes, stranger):
    """stranger, seeded with nodes, is rejected by them and never listed by any of them."""
    before = [_rejected(n) for n in nodes]
    # The stranger's join requests reach the seeds, which refuse them (nobody sends to a stranger).
    cluster.wait_until(lambda: sum(_rejected(n) for n in nodes) - sum(before) >= 20, 15,
                       "the cluster to reject the stranger's gossip")
    for n in nodes:
        assert stranger.name not in (n.states() or {}), n.states()
    st = stranger.states()
    assert st is not None and set(st) == {stranger.name}, st
    assert cluster.converged(nodes)


def test_other_key_never_admitted(cluster):
    """A 4th node with a different key never joins; both sides count the rejected gossip."""
    nodes, _ = _keyed_nodes(cluster, [_key()])
    cluster.wait_until(lambda: cluster.converged(nodes), 10, "3 keyed nodes alive")
    path = os.path.join(cluster.tmpdir, "other.keys")
    _write_keys(path, [_key()])
    stranger = cluster.start_node("n4", nodes, ("--cluster-key-file", path), wait_ready=False)
    _stranger_stays_out(cluster, nodes, stranger)


def test_no_key_never_admitted(cluster):
    """A 4th node without a key never joins, and warns that its gossip is not encrypted."""
    nodes, _ = _keyed_nodes(cluster, [_key()])
    cluster.wait_until(lambda: cluster.converged(nodes), 10, "3 keyed nodes alive")
    stranger = cluster.start_node("n4", nodes, wait_ready=False)
    _stranger_stays_out(cluster, nodes, stranger)
    assert "cluster gossip is not encrypted: set --cluster-key-file" in stranger.log_tail()


def test_random_datagrams_dropped(cluster):
    """Random UDP datagrams to the gossip port are dropped and counted; the cluster keeps working."""
    nodes, _ = _keyed_nodes(cluster, [_key()])
    cluster.wait_until(lambda: cluster.converged(nodes), 10, "3 keyed nodes alive")
    target = nodes[0]
    before = _rejected(target)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((CLIENT_ADDR, 0))
    try:
        for i in range(200):
            s.sendto(os.urandom(1 + i * 7 % 1400), (target.addr, target.cluster_port))
    finally:
        s.close()
    cluster.wait_until(lambda: _rejected(target) - before >= 200, 5, "200 datagrams counted")
    assert target.running
    cluster.wait_until(lambda: cluster.converged(nodes), 5, "3 nodes still alive")
    _route_one(cluster, nodes[1], nodes[0], "sealed/after-noise")


def test_rotation_with_sighup(cluster):
    """New first key + old second, SIGHUP each; then the old key dropped, SIGHUP: still whole."""
    old, new = _key(), _key()
    nodes, paths = _keyed_nodes(cluster, [old])
    cluster.wait_until(lambda: cluster.converged(nodes), 10, "3 keyed nodes alive")
    counts = _reread_counts(nodes)
    for p in paths:
        _write_keys(p, [new, old])
    _hup_and_wait(cluster, nodes, counts)
    cluster.wait_until(lambda: cluster.converged(nodes), 5, "whole after the new first key")
    _route_one(cluster, nodes[0], nodes[1], "sealed/rotated")
    counts = _reread_counts(nodes)
    for p in paths:
        _write_keys(p, [new])
    _hup_and_wait(cluster, nodes, counts)
    # A push-pull round (5 s) and many probes later, still everyone alive with the new key only.
    base = [n.metric("sol_gossip_messages_total") for n in nodes]
    cluster.wait_until(lambda: all(n.metric("sol_gossip_messages_total") - b > 200
                                   for n, b in zip(nodes, base)), 20, "gossip to flow")
    assert cluster.converged(nodes)
    _route_one(cluster, nodes[2], nodes[0], "sealed/new-only")
    # A bad file on SIGHUP keeps the keys in use.
    counts = [n.log_tail(100000).count("gossip keys not re-read") for n in nodes]
    with open(paths[0], "w") as f:
        f.write("garbage\n")
    nodes[0].signal(signal.SIGHUP)
    cluster.wait_until(lambda: nodes[0].log_tail(100000).count("gossip keys not re-read") > counts[0],
                       5, "the bad file refused")
    assert nodes[0].running
    cluster.wait_until(lambda: cluster.converged(nodes), 5, "still whole")
