"""Retained messages across the cluster (issue 3, Must-show 7): replicated to every node, last writer wins
by hybrid logical clock (ties by node name), and a node that joins later receives them all."""
import time

from routing_helpers import Client, close_all


_seq = [0]


def retained_snapshot(node, prefix):
    """{topic: payload} of the retained messages under prefix/# that a new subscriber on node gets.
    Barrier: after the SUBACK the client publishes a plain message under the same prefix; the node sends
    the retained burst before it, so whatever precedes the barrier is the whole retained set."""
    _seq[0] += 1
    c = Client(node, "snap-%s-%d" % (node.name, _seq[0])).connect()
    try:
        c.subscribe(prefix + "/#", qos=1)
        barrier = "%s/barrier-%d" % (prefix, _seq[0])
        c.publish(barrier, b"", qos=1)
        got = {}
        while True:
            msg = c.next_message(5)
            assert msg is not None, "barrier never came back from %s" % node.name
            _, topic, payload, _, retain = msg
            if topic == barrier:
                return got
            assert retain, "a message under %s/ without the retain flag: %s" % (prefix, topic)
            got[topic] = payload
    finally:
        c.disconnect()


def retained_value(node, topic):
    return retained_snapshot(node, topic.rsplit("/", 1)[0]).get(topic)


def test_retained_reaches_new_subscriber_on_other_node(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    pub = Client(n1, "ret-pub").connect()
    try:
        t0 = time.monotonic()
        pub.publish("ret/a", b"hello", qos=1, retain=True)
        cluster.wait_until(lambda: all(retained_snapshot(n, "ret") == {"ret/a": b"hello"}
                                       for n in (n1, n2, n3)), 5, "retained message on every node")
        cluster.figure("retained: set on n1 -> held by all 3 nodes", time.monotonic() - t0)
        sub = Client(n3, "ret-sub3").connect()
        sub.subscribe("ret/#", qos=1)
        msg = sub.next_message(5)
        assert msg is not None, "no retained message on n3"
        _, topic, payload, qos, retain = msg
        assert (topic, payload, retain) == ("ret/a", b"hello", True)
        sub.disconnect()

        # Replace, then clear: every node follows.
        pub.publish("ret/a", b"v2", qos=1, retain=True)
        cluster.wait_until(lambda: retained_value(n3, "ret/a") == b"v2", 5, "v2 on n3")
        pub.publish("ret/a", b"", qos=1, retain=True)
        cluster.wait_until(lambda: all(retained_snapshot(n, "ret") == {} for n in (n1, n2, n3)), 5,
                           "clear on every node")
    finally:
        close_all([pub])


def test_retained_reaches_node_that_joins_later(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    pub = Client(n1, "late-pub").connect()
    try:
        for i in range(50):
            pub.publish("late/%d" % i, b"value-%d" % i, qos=1, retain=True)
        pub.publish("late/cleared", b"x", qos=1, retain=True)
        pub.publish("late/cleared", b"", qos=1, retain=True)
        want = {"late/%d" % i: b"value-%d" % i for i in range(50)}
        cluster.wait_until(lambda: all(retained_snapshot(n, "late") == want for n in (n1, n2, n3)), 5,
                           "50 retained on every node")
        t0 = time.monotonic()
        n4 = cluster.start_node("n4", [n1])
        cluster.wait_until(lambda: cluster.converged(), 5, "4 nodes alive")
        cluster.wait_until(lambda: retained_snapshot(n4, "late") == want, 5, "n4 to hold the 50")
        cluster.figure("retained: late joiner holds all 50 retained after start", time.monotonic() - t0)
    finally:
        close_all([pub])


def test_retained_last_writer_wins_everywhere(cluster):
    """The same topic set on two nodes at once: every node ends with the same value."""
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    p1 = Client(n1, "lww-1").connect()
    p2 = Client(n2, "lww-2").connect()
    try:
        for round_ in range(5):
            p1.publish("lww/t", b"from-n1-%d" % round_, qos=0, retain=True, wait=False)
            p2.publish("lww/t", b"from-n2-%d" % round_, qos=0, retain=True, wait=False)

        def agreed():
            vals = [retained_value(n, "lww/t") for n in (n1, n2, n3)]
            return vals[0] is not None and vals[0].endswith(b"-4") and len(set(vals)) == 1

        cluster.wait_until(agreed, 10, "all nodes to agree on one value of lww/t")
    finally:
        close_all([p1, p2])


def test_retained_heals_after_partition(cluster):
    """A retained message set while a node is cut off reaches it after the heal."""
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    pub = Client(n1, "heal-pub").connect()
    try:
        cluster.isolate(n3)
        cluster.wait_until(lambda: cluster.sees(n1, "n3", "dead"), 15, "n1 to mark n3 dead")
        pub.publish("healed/r", b"during-partition", qos=1, retain=True)
        cluster.wait_until(lambda: retained_value(n2, "healed/r") == b"during-partition", 5, "n2 has it")
        assert retained_value(n3, "healed/r") is None
        cluster.heal()
        t0 = time.monotonic()
        cluster.wait_until(lambda: retained_value(n3, "healed/r") == b"during-partition", 15,
                           "n3 has it after heal")
        cluster.figure("retained: reaches a healed node after the heal", time.monotonic() - t0)
    finally:
        close_all([pub])


def test_retained_divergence_is_repaired(cluster):
    """Anti-entropy: a retained message that reached one node only (here injected into n1's cluster port
    under n2's name, as a frame lost on a link that never broke would leave it) reaches every node once
    the heartbeats' retained digests have differed for a few quiet seconds."""
    from test_fuzz_cluster import SpPeer, envelope, frame, publish_body

    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    peer = SpPeer(n1)
    peer.send(frame(envelope(b"n2", 15, publish_body(b"dg/x", b"only-on-n1", origin=b"n2",
                                                                  retain=True))))
    peer.close()
    cluster.wait_until(lambda: retained_value(n1, "dg/x") == b"only-on-n1", 5, "n1 to hold it")
    t0 = time.monotonic()
    cluster.wait_until(lambda: all(retained_value(n, "dg/x") == b"only-on-n1" for n in (n2, n3)), 15,
                       "the other nodes to get it through anti-entropy")
    cluster.figure("retained: divergence repaired by digest anti-entropy", time.monotonic() - t0)
