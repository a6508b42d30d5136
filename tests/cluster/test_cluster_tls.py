"""Node link TLS (issue 13): nodes with certificates from one CA form a cluster and forward a PUBLISH;
a node whose certificate comes from another CA, or names another node, is never listed and delivers
nothing; a plain TCP connection sending garbage to the cluster port is dropped and counted."""
import datetime
import os
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import CLIENT_ADDR
from routing_helpers import Client, close_all
from wire_helpers import (SP_HELLO_PUSH0, envelope, field_bytes, field_varint, frame, sp_handshake,
                          sp_send)

BAD = "sol_cluster_decode_errors_total"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_cn, issuer, pub, sign_key, ca=False, dns=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject_cn)).issuer_name(issuer)
         .public_key(pub).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return b.sign(sign_key, hashes.SHA256())


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class _CA:
    """A test CA that writes a node's certificate, key and the CA certificate into a directory."""

    def __init__(self, tmpdir, label):
        self.dir = os.path.join(tmpdir, label)
        os.makedirs(self.dir, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _cert("sol test CA " + label, _name("sol test CA " + label), self.key.public_key(),
                          self.key, ca=True)
        self.ca_path = os.path.join(self.dir, "ca.crt")
        with open(self.ca_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def node_args(self, file_name, cert_name):
        """The three settings for a node whose certificate names cert_name."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cert_name, self.cert.subject, key.public_key(),
                     self.key, dns=cert_name)
        crt, kf = (os.path.join(self.dir, file_name + s) for s in (".crt", ".key"))
        with open(crt, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kf, "wb") as f:
            f.write(_pem_key(key))
        return ("--cluster-certfile", crt, "--cluster-keyfile", kf, "--cluster-cafile", self.ca_path)


def _tls_nodes(cluster, ca, count=3):
    names = ["n%d" % (i + 1) for i in range(count)]
    addrs = [cluster.next_addr() for _ in names]
    seeds = cluster.seeds_for(addrs)
    nodes = [cluster.start_node(name, seeds, ca.node_args(name, name), addr=addr, wait_ready=False)
             for name, addr in zip(names, addrs)]
    for n in nodes:
        n.wait_ready()
    cluster.wait_until(lambda: cluster.converged(nodes), 15, "3 TLS nodes alive")
    return nodes


def _route(cluster, pub_node, sub_node, topic):
    """A QoS 1 PUBLISH on pub_node reaches a subscriber on sub_node."""
    sub = Client(sub_node, "sub-" + topic.replace("/", "-")).connect()
    pub = Client(pub_node, "pub-" + topic.replace("/", "-")).connect()
    try:
        sub.subscribe(topic, qos=1)
        cluster.wait_until(lambda: (pub_node.metric("sol_routes") or 0) >= 1, 10, "route to spread")
        pub.publish(topic, b"over tls", qos=1)
        got = sub.wait_count(1, 10)
        assert got[-1][2] == b"over tls"
    finally:
        close_all([sub, pub])


def _never_listed(cluster, nodes, stranger, before):
    """stranger (with the gossip of the others) is kept out: its links are refused (the bad input
    counters of the others grow past before), nobody lists it, and a PUBLISH on it reaches no
    subscriber on the others."""
    cluster.wait_until(lambda: sum(n.metric(BAD) or 0 for n in nodes) > sum(before), 15,
                       "the stranger's links to be refused")
    cluster.wait_until(lambda: "listening on" in stranger.log_tail(), 10, "the stranger to listen")
    subs = [Client(n, "sub-out-" + n.name).connect() for n in nodes]
    pub = Client(stranger, "pub-stranger").connect()
    try:
        for s in subs:
            s.subscribe("tls/out", qos=1)
        for _ in range(10):
            pub.publish("tls/out", b"from the stranger", qos=1)
            for n in nodes:
                assert stranger.name not in (n.states() or {}), n.states()
                members = n.metric("sol_cluster_members")
                assert members == len(nodes), members
        # Its gossip may have spread its name; a frame from it would have arrived by now.
        cluster.wait_until(lambda: all((n.metric("sol_cluster_members") or 0) == len(nodes)
                                       for n in nodes), 2, "member counts")
        for s in subs:
            assert s.received == [], s.received
    finally:
        close_all(subs + [pub])
    assert cluster.converged(nodes)


def test_tls_cluster_forms_and_routes(cluster):
    """Three nodes with certificates from one CA form a cluster over tls+tcp and forward a PUBLISH."""
    ca = _CA(cluster.tmpdir, "ca")
    nodes = _tls_nodes(cluster, ca)
    _route(cluster, nodes[0], nodes[2], "tls/route")
    for n in nodes:
        # Listed (and logged) at the loop tick after its link authenticated: may follow readiness.
        cluster.wait_until(lambda: "authenticated" in n.log_tail(100000), 5,
                           "%s to log an authenticated node link" % n.name)
        assert "node links are not encrypted" not in n.log_tail(100000)


def test_other_ca_never_admitted(cluster):
    """A 4th node whose certificate another CA signed is never listed and delivers nothing."""
    nodes = _tls_nodes(cluster, _CA(cluster.tmpdir, "ca"))
    other = _CA(cluster.tmpdir, "other")
    before = [n.metric(BAD) or 0 for n in nodes]
    stranger = cluster.start_node("n4", nodes, other.node_args("n4", "n4"), wait_ready=False)
    _never_listed(cluster, nodes, stranger, before)
    _route(cluster, nodes[1], nodes[0], "tls/after")


def test_certificate_for_another_name_never_admitted(cluster):
    """A 4th node named n4 with a valid certificate that names n1 is never listed and delivers
    nothing: its frames are dropped as not authenticated."""
    ca = _CA(cluster.tmpdir, "ca")
    nodes = _tls_nodes(cluster, ca)
    before = [n.metric(BAD) or 0 for n in nodes]
    stranger = cluster.start_node("n4", nodes, ca.node_args("n4-as-n1", "n1"), wait_ready=False)
    _never_listed(cluster, nodes, stranger, before)
    _route(cluster, nodes[2], nodes[1], "tls/after")


def test_plain_tcp_garbage_dropped(cluster):
    """Garbage over plain TCP, and a TLS client without a certificate, to a TLS cluster port are
    dropped and counted; the cluster goes on."""
    ca = _CA(cluster.tmpdir, "ca")
    nodes = _tls_nodes(cluster, ca)
    target = nodes[0]
    before = target.metric(BAD) or 0
    for payload in (SP_HELLO_PUSH0 + os.urandom(64), os.urandom(512),
                    b"GET / HTTP/1.1\r\n\r\n"):
        with socket.create_connection((target.addr, target.cluster_port), timeout=2) as s:
            s.sendall(payload)
            s.settimeout(3)
            try:
                while s.recv(4096):
                    pass  # the server closes it (a TLS alert at most)
            except (ConnectionResetError, socket.timeout):
                pass
    # A TLS client that trusts the CA but has no certificate of its own: refused, counted.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca.ca_path)
    raw = socket.create_connection((target.addr, target.cluster_port), timeout=3)
    try:
        with ctx.wrap_socket(raw, server_hostname=target.name) as s:
            s.sendall(SP_HELLO_PUSH0)
            assert s.recv(8) == b"", "a client without a certificate got an SP hello"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass  # refused during or right after the handshake
    cluster.wait_until(lambda: (target.metric(BAD) or 0) >= before + 4, 5,
                       "the garbage connections and the certificate-less client to be counted")
    assert all(n.running for n in nodes)
    _route(cluster, nodes[1], nodes[0], "tls/garbage")


def test_frames_naming_another_node_dropped(cluster):
    """A holder of a valid certificate connecting from elsewhere cannot speak for a member: a TLS
    client with a certificate from the cluster's CA sends a PUBLISH whose envelope names n1 to n2's
    cluster port; it is dropped and counted, and n2's subscriber receives nothing."""
    ca = _CA(cluster.tmpdir, "ca")
    nodes = _tls_nodes(cluster, ca)
    target = nodes[1]
    args = ca.node_args("forger", "n9")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(args[1], args[3])
    ctx.load_verify_locations(args[5])
    sub = Client(target, "sub-forged").connect()
    try:
        sub.subscribe("tls/forged", qos=0)
        before = target.metric("sol_cluster_stranger_messages_total") or 0
        raw = socket.create_connection((target.addr, target.cluster_port), timeout=3,
                                       source_address=(CLIENT_ADDR, 0))
        with ctx.wrap_socket(raw, server_hostname=target.name) as s:
            sp_handshake(s)
            # A bare PUBLISH (topic, payload, QoS 0) in an envelope that names n1.
            forged = field_bytes(1, b"tls/forged") + field_bytes(2, b"forged") + field_varint(3, 0)
            sp_send(s, frame(envelope(b"n1", 14, forged)))
            cluster.wait_until(
                lambda: (target.metric("sol_cluster_stranger_messages_total") or 0) > before, 5,
                "the forged frame to be dropped")
        assert sub.received == [], sub.received
    finally:
        close_all([sub])
    _route(cluster, nodes[0], nodes[1], "tls/real")

