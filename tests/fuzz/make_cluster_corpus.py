#!/usr/bin/env python3
"""Write the seed corpus of fuzz_cluster (tests/fuzz/corpus_cluster/): one small valid Frame of each
kind a node receives, built with the field encoding of tests/cluster/wire_helpers.py
(proto/cluster.proto's field numbers). Run it again after a change to the schema; the .bin files are
committed."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from wire_helpers import envelope, field_bytes, field_varint, frame, publish_body  # noqa: E402

# Envelope body fields (cluster.proto).
ROUTE_DELTA, SYNC_REQUEST, ROUTE_SYNC, ROUTE_VERSION = 10, 11, 12, 13
PUBLISH, RETAIN, RETAIN_SYNC, TAKEOVER_REQUEST, TAKEOVER_REPLY = 14, 15, 16, 17, 18
REPLICA_PUT, REPLICA_DROP, REPLICA_ACK, STUB_PUBLISH, HANDOVER = 19, 20, 21, 22, 23

PERSIST_VERSION = 1


def live_publish(topic, seq, qos=1, props=b"", shares=()):
    """A forwarded PUBLISH as cluster_wire.c writes it: no origin or stamp, a number, shares."""
    body = field_bytes(1, topic) + field_bytes(2, b"hello") + field_varint(3, qos) + field_varint(7, seq)
    if props:
        body += field_bytes(8, props)
    return body + b"".join(field_bytes(10, s) for s in shares)


def persist_msg(topic, payload, qos=1):
    """A message in node/persist.c's record encoding (big-endian fixed widths)."""
    return (struct.pack(">BBQH", qos, 0, 0, len(topic)) + topic + struct.pack(">I", 0) +
            struct.pack(">I", len(payload)) + payload)


def session_state():
    """A session snapshot as a ReplicaPut carries it: a subscription, a message, an inbound id."""
    sub = b"S" + struct.pack(">H", 5) + b"a/b/#" + struct.pack(">BI", 1, 0)
    msg = b"M" + struct.pack(">HBBBB", 7, 1, 1, 0, 1) + persist_msg(b"a/b/c", b"m")
    return (bytes([PERSIST_VERSION]) + sub + b"E" + struct.pack(">I", 3600) + msg + b"R" +
            struct.pack(">H", 9) + b"N" + struct.pack(">H", 8))


def seeds():
    n1 = b"n1"
    pub = envelope(n1, PUBLISH, live_publish(b"a/b", 1))
    yield "publish", frame(pub)
    yield "publish_batch", frame(pub, envelope(n1, PUBLISH, live_publish(b"a/c", 2, qos=2,
                                                                          props=b"\x01\x01")),
                                 envelope(n1, PUBLISH, live_publish(b"s/x", 3, shares=[b"g/s/+"])))
    yield "retain", frame(envelope(n1, RETAIN, publish_body(b"r/t", retain=True)))
    delta = (field_varint(1, 7) + field_varint(2, 1) + field_varint(3, 2) + field_bytes(4, b"a/+") +
             field_bytes(4, b"$share/g/s/#") + field_bytes(5, b"old/#"))
    yield "route_delta", frame(envelope(n1, ROUTE_DELTA, delta),
                               envelope(n1, PUBLISH, live_publish(b"a/z", 4)))
    sync = field_varint(1, 7) + field_varint(2, 2) + field_bytes(3, b"x/#") + field_varint(4, 1) + \
        field_varint(5, 1)
    yield "route_sync", frame(envelope(n1, SYNC_REQUEST, field_varint(1, 1) + field_varint(2, 1)),
                              envelope(n1, ROUTE_SYNC, sync))
    version = (field_varint(1, 7) + field_varint(2, 2) + field_varint(3, 0xdead) + field_varint(4, 1) +
               field_varint(5, 12345) + field_bytes(6, b"10.0.0.1:1883") + field_varint(7, 4))
    yield "route_version", frame(envelope(n1, ROUTE_VERSION, version))
    yield "retain_sync", frame(envelope(n1, RETAIN_SYNC, field_bytes(1, publish_body(b"r/1", retain=True)) +
                                        field_varint(2, 1)))
    yield "takeover_request", frame(envelope(n1, TAKEOVER_REQUEST, field_bytes(1, b"c1") +
                                             field_varint(2, 42)))
    sub = field_bytes(1, b"t/#") + field_varint(2, 1)
    smsg = field_bytes(1, live_publish(b"t/1", 5)) + field_varint(2, 1) + field_varint(3, 3) + \
        field_varint(4, 1)
    reply = (field_bytes(1, b"c1") + field_varint(2, 42) + field_varint(3, 1) + field_bytes(4, sub) +
             field_bytes(5, smsg) + field_varint(6, 1) + field_varint(7, 11) + field_varint(8, 12) +
             field_varint(9, 60))
    yield "takeover_reply", frame(envelope(n1, TAKEOVER_REPLY, reply))
    origins = field_bytes(4, field_bytes(1, b"n2") + field_varint(2, 17)) + \
        field_bytes(4, field_bytes(1, b"n3") + field_varint(2, 3))
    put = field_bytes(1, b"c1") + field_bytes(2, session_state()) + field_varint(3, 5) + origins
    yield "replica_put", frame(envelope(n1, REPLICA_PUT, put))
    yield "replica_drop_ack", frame(envelope(n1, REPLICA_DROP, field_bytes(1, b"c1") + field_varint(2, 6)),
                                    envelope(n1, REPLICA_ACK, field_varint(1, 6) + field_varint(2, 9)))
    ask = field_bytes(1, b"n3") + field_varint(2, 1) + field_varint(5, 7) + field_varint(6, 2)
    yield "handover_ask", frame(envelope(n1, HANDOVER, ask))
    kept = [envelope(b"n3", PUBLISH, live_publish(b"a/b", 20)),
            envelope(b"n3", PUBLISH, live_publish(b"a/c", 21, qos=2))]
    answer = field_bytes(1, b"n3") + b"".join(field_bytes(3, k) for k in kept) + field_varint(4, 1)
    yield "handover_answer", frame(envelope(n1, HANDOVER, answer))
    # An empty kept entry: protobuf-c unpacks it as (NULL, 0), once undefined in wire_parse_envelope.
    empty = field_bytes(1, b"n3") + field_bytes(3, b"") + field_varint(4, 1)
    yield "handover_empty_entry", frame(envelope(n1, HANDOVER, empty))
    stub = (field_bytes(1, b"c1") + field_bytes(2, live_publish(b"a/b", 30)) + field_bytes(3, b"n2") +
            field_varint(4, 30))
    yield "stub_publish", frame(envelope(n1, STUB_PUBLISH, stub))


def main():
    out = os.path.join(HERE, "corpus_cluster")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
