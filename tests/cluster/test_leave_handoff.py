"""A node that leaves (SIGTERM) hands its persistent sessions to the nodes that stay: a client that reconnects
anywhere else finds its session (session present 1), its subscriptions, and every message queued for it
while it was offline, exactly once."""
from routing_helpers import Client, close_all, metric_samples, peer_metric, wait_routes

QUEUED = 50


def local_routes(node):
    return metric_samples(node, "sol_local_routes").get("", 0.0)


def test_sigterm_hands_persistent_sessions_to_peers(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    sub = Client(n1, "handoff-sub", clean_session=False).connect()
    pub = Client(n2, "handoff-pub").connect()
    others = [Client(n1, "handoff-other-%d" % i, clean_session=False).connect() for i in range(8)]
    back = None
    try:
        sub.subscribe("ho/#", qos=1)
        for i, o in enumerate(others):  # more sessions, so both remaining nodes receive some
            o.subscribe("hoo/%d" % i, qos=1)
            o.disconnect()
        wait_routes(cluster, n2, 9)
        sub.disconnect()  # offline persistent session on n1: messages queue there
        for i in range(QUEUED):
            pub.publish("ho/q", b"queued-%d" % i, qos=1)
        cluster.wait_until(lambda: peer_metric(n1, "sol_cluster_messages_received_total", "n2") >= QUEUED,
                           5, "n1 to receive the %d forwarded messages" % QUEUED)

        assert n1.stop() == 0, "n1 did not exit 0 on SIGTERM"
        # The sessions now live on n2 and n3 (and announce their routes from there).
        cluster.wait_until(lambda: local_routes(n2) + local_routes(n3) >= 9, 5,
                           "the handed-over subscriptions to be held by n2 and n3")
        assert local_routes(n2) > 0 and local_routes(n3) > 0, "sessions should spread over both peers"

        back = Client(n3, "handoff-sub", clean_session=False).connect()
        assert back.session_present, "the session of a client of a node that left should be present"
        got = back.wait_count(QUEUED, 5)
        payloads = [p for _, t, p, _, _ in got if t == "ho/q"]
        assert payloads[:QUEUED] == [b"queued-%d" % i for i in range(QUEUED)]

        # Its subscription still delivers, and nothing queued came twice.
        pub.publish("ho/after", b"new", qos=1)
        got = back.wait_count(QUEUED + 1, 5)
        assert got[-1][1:3] == ("ho/after", b"new")
        assert len(got) == QUEUED + 1, "duplicates: %d messages" % len(got)
        cluster.wait_until(lambda: cluster.sees(n2, "n1", "left"), 5, "n2 to see n1 left")
    finally:
        close_all([c for c in [sub, pub, back] + others if c])
