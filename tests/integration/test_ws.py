

def test_stalled_ws_reader_does_not_stop_others(ws_broker):
    """A ws subscriber that stops reading while a flood is routed to it: the broker stays
    responsive for everyone else, and the stalled client still gets messages once it reads."""
    t = ws_broker()
    w = Witness(t)
    stalled = ws_connect(t.ws_port, "stalled")
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.send_mqtt(subscribe_pkt(1, [("flood/#", 0)]))
    assert stalled.recv_packet().type == SUBACK
    pub = RawClient(HOST, t.b.port)
    pub.send(connect_pkt("flooder"))
    pub.recv_type(CONNACK)
    for i in range(300):
        pub.send(publish_pkt("flood/x", bytes([i % 256]) * 10000))
    w.alive()  # others are served while the stalled client's output backs up
    got = stalled.recv_packet(timeout=10)
    assert got.type == PUBLISH and got.topic == "flood/x"
    stalled.close()
    pub.sock.close()
