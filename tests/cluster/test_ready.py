"""/readyz means "route clients here": a node joining a cluster says 200 only once it holds what its peers
hold (their routes and every retained message), so a subscriber sent to it the instant it is ready misses
nothing. A node alone (no seeds) is ready at once."""
import time

from routing_helpers import Client, close_all, routes_known

COUNT_PER_NODE = 1000  # retained messages set on each of n1 and n2
PAYLOAD = b"r" * 1000  # big enough that the initial sync takes several chunks
# A subscriber to all of them gets 2,000 at once: above the default per-session queue.
ARGS = ("--max-queued", "10000")


def barrier_burst(c, barrier):
    """{topic: payload} of the retained messages c (just subscribed) receives before its own barrier
    message: the node sends every retained message right after the SUBACK, before anything published
    later."""
    c.publish(barrier, b"", qos=1)
    got = {}
    while True:
        msg = c.next_message(10)
        assert msg is not None, "barrier never came back from %s" % c.node.name
        _, topic, payload, _, retain = msg
        if topic == barrier:
            return got
        assert retain, "a message without the retain flag before the barrier: %s" % topic
        got[topic] = payload


def retained_burst(node, client_id, filt, barrier):
    """What a new subscriber to filt on node gets as retained messages (see barrier_burst)."""
    c = Client(node, client_id).connect()
    try:
        c.subscribe(filt, qos=1)
        return barrier_burst(c, barrier)
    finally:
        c.disconnect()


def try_connect(client):
    """Connect client if the node accepts connections yet; False (to poll again) if not."""
    try:
        client.connect()
        return True
    except (OSError, AssertionError):
        client.c.loop_stop()
        return False


def publish_retained(node, prefix, count):
    pub = Client(node, "ready-pub-%s" % node.name).connect()
    try:
        last = None
        for i in range(count):
            last = pub.publish("%s/%d" % (prefix, i), PAYLOAD, qos=1, retain=True, wait=False)
        last.wait_for_publish(30)
        assert last.is_published(), "retained messages on %s not acknowledged" % node.name
    finally:
        pub.disconnect()


def test_ready_only_after_initial_sync(cluster):
    n1, n2 = cluster.start_nodes(2, extra_args=ARGS)
    cluster.wait_until(lambda: cluster.converged(), 5, "2 nodes alive")
    publish_retained(n1, "rd/n1", COUNT_PER_NODE)
    publish_retained(n2, "rd/n2", COUNT_PER_NODE)
    want = {"rd/n%d/%d" % (k, i): PAYLOAD for k in (1, 2) for i in range(COUNT_PER_NODE)}
    for n in (n1, n2):
        cluster.wait_until(lambda: retained_burst(n, "rd-check-%s" % n.name, "rd/#", "rd/barrier") == want,
                           15, "every retained message held by %s" % n.name, interval=0.2)

    # The subscriber connects to n3 before n3 can reach its peers (paused for that moment), so nothing
    # delays it: its SUBSCRIBE can follow the first 200 within a millisecond, as a client sent there by a
    # load balancer the instant it is ready would.
    n1.pause()
    n2.pause()
    sub = None
    try:
        n3 = cluster.start_node("n3", seeds=[n1, n2], extra_args=ARGS, wait_ready=False)
        sub = Client(n3, "rd-sub-n3", clean_session=True)
        cluster.wait_until(lambda: try_connect(sub), 4, "n3 to accept MQTT connections", interval=0.002)
        assert not n3.ready(), "n3 ready before it could reach any peer"
    finally:
        n1.resume()
        n2.resume()
    try:
        deadline = time.monotonic() + 15
        while not n3.ready():
            assert n3.running, "n3 exited:\n" + n3.log_tail(40)
            assert time.monotonic() < deadline, "n3 never ready:\n" + n3.log_tail(40)
            time.sleep(0.001)
        sub.subscribe("#", qos=1)
        took = time.monotonic() - n3.started_at
        got = barrier_burst(sub, "rd/barrier")
    finally:
        sub.disconnect()
    cluster.figure("ready: n3 start -> /readyz 200 (2,000 retained held by peers)", took)
    missing = set(want) - set(got)
    assert not missing, "%d of %d retained messages missing on n3 when it said ready" % (
        len(missing), len(want))
    assert {t: p for t, p in got.items() if t in want} == want

    # Its peers' routes came with the sync: a subscriber on n1 gets what is published on n3 at once.
    sub = Client(n1, "rd-route-sub").connect()
    pub = Client(n3, "rd-route-pub").connect()
    try:
        sub.subscribe("rdroute/#", qos=1)
        cluster.wait_until(lambda: routes_known(n3) >= 1, 5, "n3 to learn n1's route")
        pub.publish("rdroute/a", b"x", qos=1)
        assert sub.wait_count(1, 5)[0][1:3] == ("rdroute/a", b"x")
    finally:
        close_all([sub, pub])


def test_alone_ready_at_once(cluster):
    """No seeds: a cluster of one has no one to sync with, so it is ready as soon as it listens."""
    n = cluster.start_node("solo", wait_ready=False)
    took = cluster.wait_until(n.ready, 3, "solo ready", interval=0.01)
    assert took < 2.0, "a node alone took %.2f s to be ready" % took


def test_ready_bounded_when_a_peer_does_not_answer(cluster):
    """A peer that stops answering right after the join cannot keep the joining node unready forever:
    it turns ready within the sync bound (5 s) plus the join."""
    n1, n2 = cluster.start_nodes(2)
    cluster.wait_until(lambda: cluster.converged(), 5, "2 nodes alive")
    publish_retained(n1, "rdb/n1", 10)
    n2.pause()  # still alive in membership for a few seconds: n3 waits for its sync, in vain
    try:
        n3 = cluster.start_node("n3", seeds=[n1, n2], wait_ready=False)
        took = cluster.wait_until(n3.ready, 9, "n3 ready despite a silent peer", interval=0.02)
        assert took < 9
    finally:
        n2.resume()
