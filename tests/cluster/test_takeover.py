"""One client id, one connection, cluster-wide (issue 3, Must-show 8): connecting on node 2 with an id
connected (or with a persistent session) on node 1 closes it there, publishes its will there (which reaches
subscribers on every node), and moves a persistent session's subscriptions and queued messages to node 2."""
import time

from routing_helpers import routes_known, Client, close_all, peer_metric, wait_routes


def test_takeover_moves_persistent_session(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    first = Client(n1, "mover", clean_session=False).connect()
    pub = Client(n3, "tk-pub").connect()
    second = None
    try:
        first.subscribe("tk/a/#", qos=1)
        first.subscribe("tk/b", qos=0)
        wait_routes(cluster, n3, 2)
        first.disconnect()  # offline persistent session on n1: messages queue there
        for i in range(20):
            pub.publish("tk/a/x", b"queued-%d" % i, qos=1)
        cluster.wait_until(lambda: peer_metric(n1, "sol_cluster_messages_received_total", "n3") >= 20,
                           5, "n1 to receive the 20 forwarded messages")

        t0 = time.monotonic()
        second = Client(n2, "mover", clean_session=False).connect()
        connack = time.monotonic() - t0
        cluster.figure("takeover: CONNACK on n2 for an id with a session on n1", connack * 1000, "ms")
        assert second.session_present, "the moved session should be reported present"
        got = second.wait_count(20, 5)
        assert [p for _, _, p, _, _ in got[:20]] == [b"queued-%d" % i for i in range(20)]
        assert all(q == 1 for _, _, _, q, _ in got[:20])

        # The subscriptions moved with it: new publishes from n3 now reach the client on n2, at the granted
        # QoS, once (n1 keeps a stub for 5 s that passes on what still reaches it; n2 skips what it had).
        wait_routes(cluster, n3, 2)
        pub.publish("tk/a/y", b"after", qos=1)
        pub.publish("tk/b", b"qos0", qos=1)
        got = second.wait_count(22, 5)
        assert {(t, p, q) for _, t, p, q, _ in got[20:22]} == {("tk/a/y", b"after", 1), ("tk/b", b"qos0", 0)}
        # Once the stub ends, n1's routes go and n1 no longer gets them.
        cluster.wait_until(lambda: routes_known(n3) == 2, 8, "n1's routes gone once its stub ended")
        before_n1 = peer_metric(n3, "sol_cluster_messages_forwarded_total", "n1")
        pub.publish("tk/a/z", b"later", qos=1)
        second.wait_count(23, 5)
        assert peer_metric(n3, "sol_cluster_messages_forwarded_total", "n1") == before_n1
        time.sleep(0.3)
        assert len(second.received) == 23, "duplicates: %d messages" % len(second.received)
    finally:
        close_all([c for c in (first, pub, second) if c])


def test_takeover_closes_live_connection_and_publishes_will(cluster):
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    watcher = Client(n3, "will-watch").connect()
    old = new = None
    try:
        watcher.subscribe("wills/#", qos=1)
        wait_routes(cluster, n1, 1)
        old = Client(n1, "dup-id", will=("wills/dup-id", b"gone", 1, False)).connect()
        new = Client(n2, "dup-id").connect()
        assert old.wait_disconnected(5), "the connection on n1 was not closed"
        msg = watcher.next_message(5)
        assert msg is not None and msg[1:3] == ("wills/dup-id", b"gone"), msg
        # The new connection is the one that stays.
        new.subscribe("dup/check", qos=1)
        new.publish("dup/check", b"alive", qos=1)
        assert new.wait_count(1, 5)[0][2] == b"alive"
    finally:
        if old:
            old.c.loop_stop()
        close_all([c for c in (watcher, new) if c])


def test_clean_connect_discards_remote_session(cluster):
    """A clean-session connect elsewhere closes the old session and does not inherit it."""
    n1, n2 = cluster.start_nodes(2)
    cluster.wait_until(lambda: cluster.converged(), 5, "2 nodes alive")
    first = Client(n1, "cleaner", clean_session=False).connect()
    pub = Client(n2, "cl-pub").connect()
    second = None
    try:
        first.subscribe("cl/#", qos=1)
        wait_routes(cluster, n2, 1)
        first.disconnect()
        second = Client(n2, "cleaner", clean_session=True).connect()
        assert not second.session_present
        cluster.wait_until(lambda: peer_metric(n1, "sol_cluster_envelopes_received_total", "n2") > 0
                           and n1.metric("sol_local_routes") == 0, 5,
                           "the old session's route withdrawn on n1")
        second.subscribe("cl-barrier", qos=1)
        pub.publish("cl/x", b"nobody", qos=1)
        pub.publish("cl-barrier", b"end", qos=1)
        got = second.wait_count(1, 5)
        assert [t for _, t, _, _, _ in got] == ["cl-barrier"], got
    finally:
        close_all([c for c in (first, pub, second) if c])


def test_will_of_a_dropped_client_reaches_every_node(cluster):
    """A will published on one node (client gone without DISCONNECT) reaches subscribers on all others."""
    n1, n2, n3 = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    watchers = [Client(n, "ww-%s" % n.name).connect() for n in (n2, n3)]
    victim = None
    try:
        for w in watchers:
            w.subscribe("lastwill/#", qos=1)
        wait_routes(cluster, n1, 2)
        victim = Client(n1, "victim", will=("lastwill/victim", b"bye", 1, False)).connect()
        victim.drop()
        for w in watchers:
            msg = w.next_message(5)
            assert msg is not None and msg[1:3] == ("lastwill/victim", b"bye"), msg
    finally:
        close_all(watchers)


def test_wills_published_at_shutdown_reach_other_nodes(cluster):
    """SIGTERM on a node: it leaves the cluster, closes its clients, and their wills (published as the
    connections close) still reach subscribers on the nodes that stay."""
    n1, n2 = cluster.start_nodes(2)
    cluster.wait_until(lambda: cluster.converged(), 5, "2 nodes alive")
    watcher = Client(n2, "sd-watch").connect()
    victims = []
    try:
        watcher.subscribe("sdwill/#", qos=1)
        wait_routes(cluster, n1, 1)
        victims = [Client(n1, "sd-%d" % i, will=("sdwill/%d" % i, b"down", 1, False)).connect()
                   for i in range(5)]
        assert n1.stop() == 0
        got = watcher.wait_count(5, 5)
        assert sorted(t for _, t, _, _, _ in got) == ["sdwill/%d" % i for i in range(5)]
        cluster.wait_until(lambda: cluster.sees(n2, "n1", "left"), 5, "n2 to see n1 left")
    finally:
        for v in victims:
            v.c.loop_stop()
        close_all([watcher])


def test_server_assigned_ids_never_collide_across_nodes(cluster):
    """[MQTT-3.1.3-6] An id the server assigns to a client that sent none is unique cluster-wide, so
    anonymous clients on different nodes never take one another over. Ids used to be made from the
    node's start time: nodes started in the same millisecond (deploy/local-cluster.sh) handed out the
    same ids, and a publisher on one node closed a subscriber on another."""
    nodes = cluster.start_nodes(3)
    cluster.wait_until(lambda: cluster.converged(), 5, "3 nodes alive")
    subs = [Client(n, "").connect() for n in nodes for _ in range(3)]
    pubs = []
    try:
        for s in subs:
            s.subscribe("anon/#", qos=1)
        for n in nodes:
            wait_routes(cluster, n, 1)
        pubs = [Client(n, "").connect() for n in nodes]
        for i, p in enumerate(pubs):
            p.publish("anon/%d" % i, b"from %d" % i, qos=1)
        for s in subs:
            got = s.wait_count(len(pubs), 5)
            assert sorted(t for _, t, _, _, _ in got) == ["anon/%d" % i for i in range(len(pubs))]
        assert not any(c.wait_disconnected(0) for c in subs + pubs), "an anonymous client was closed"
        for n in nodes:
            assert "taken over" not in n.log_tail(), n.log_tail()
    finally:
        close_all(subs + pubs)
