"""The cluster's wire, built by hand for the tests that speak to a node's cluster port as a peer (or a
forger): protobuf fields (proto/cluster.proto), envelopes and frames, and nng's SP over TCP (an
8-byte handshake, then each message as an 8-byte big-endian length and the body). Shared by
test_fuzz_cluster.py and test_cluster_tls.py, so that both build the same bytes."""
import struct

SP_PUSH0 = 0x50
SP_PULL0 = 0x51
SP_HELLO_PUSH0 = b"\x00SP\x00" + struct.pack(">H", SP_PUSH0) + b"\x00\x00"


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def publish_body(topic, payload=b"x", qos=0, origin=b"n1", retain=False):
    return (field_bytes(1, topic) + field_bytes(2, payload) + field_varint(3, qos) +
            field_varint(4, int(retain)) + field_bytes(5, origin) + field_varint(6, 1) +
            field_varint(7, 1))


def envelope(sender, body_field, body):
    return field_bytes(1, sender) + field_bytes(body_field, body)


def frame(*envelopes):
    return b"".join(field_bytes(1, e) for e in envelopes)


def sp_handshake(sock):
    """Send a push0 hello on sock (plain or TLS) and return the peer's 8-byte hello; ConnectionError
    if the peer closes first."""
    sock.sendall(SP_HELLO_PUSH0)
    hello = b""
    while len(hello) < 8:
        chunk = sock.recv(8 - len(hello))
        if not chunk:
            raise ConnectionError("closed during the SP handshake")
        hello += chunk
    return hello


def sp_send(sock, body):
    """One SP message: the 8-byte big-endian length, then the body."""
    sock.sendall(struct.pack(">Q", len(body)) + body)
