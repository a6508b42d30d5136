"""TLS listeners (--listener mqtts://): real clients over TLS, client certificates as usernames
checked by an ACL, TLS versions, SIGHUP certificate reload, and bad input on the TLS port."""
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

import mqttclients
from conftest import HOST, SOL_BIN, free_port, wait_port
from mqttraw import connect_pkt

pytestmark = pytest.mark.sol_only


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=30)


def make_cert(d, name, cn, ca="ca", server=False):
    """name.key + name.crt signed by ca (server: SAN 127.0.0.1 and localhost)."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else
                "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "30", "-extfile", ext, cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, a server certificate (CN localhost), a second one for reloads, client certs."""
    d = str(tmp_path_factory.mktemp("pki"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "30", "-subj", "/CN=Sol Test CA", cwd=d)
    make_cert(d, "server", "localhost", server=True)
    make_cert(d, "server2", "localhost", server=True)
    make_cert(d, "client1", "client1")
    make_cert(d, "client2", "client2")
    make_cert(d, "nocn", "x")  # then re-signed without a CN below
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "nocn.key", "-out", "nocn.csr",
            "-subj", "/O=No Common Name", cwd=d)
    openssl("x509", "-req", "-in", "nocn.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "nocn.crt", "-days", "30", "-extfile", "nocn.ext", cwd=d)
    return d


class TlsBroker:
    def __init__(self, b, tls_port, pki):
        self.b, self.tls_port, self.pki = b, tls_port, pki

    def path(self, name):
        return os.path.join(self.pki, name)


@pytest.fixture
def tls_broker(broker_factory, pki, tmp_path):
    """start(*extra_args, **opts) -> TlsBroker with a plain and an mqtts listener."""

    def start(*extra, **opts):
        port = free_port()
        # the server's files are copied, so that a test may replace them and send SIGHUP
        wd = tmp_path / f"srv{port}"
        wd.mkdir()
        for n in ("server.crt", "server.key"):
            with open(os.path.join(pki, n), "rb") as src, open(wd / n, "wb") as dst:
                dst.write(src.read())
        args = ["--listener", f"mqtts://{HOST}:{port}", "--certfile", str(wd / "server.crt"),
                "--keyfile", str(wd / "server.key"), "--cafile", os.path.join(pki, "ca.crt"),
                "--log-level", "debug"] + list(extra)
        b = broker_factory(extra_args=args, **opts)
        assert wait_port(HOST, port, b.proc, time.monotonic() + 10), b.log()
        t = TlsBroker(b, port, pki)
        t.workdir = wd
        return t

    return start


def client_ctx(pki, cert=None, **versions):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, f"{cert}.crt"), os.path.join(pki, f"{cert}.key"))
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(t, cert=None, **versions):
    s = socket.create_connection((HOST, t.tls_port), timeout=5)
    return client_ctx(t.pki, cert, **versions).wrap_socket(s, server_hostname="localhost")


def mqtt_connack(sock, cid):
    """CONNECT over sock; the CONNACK's return code."""
    sock.sendall(connect_pkt(cid))
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            raise ConnectionError("closed before CONNACK")
        data += chunk
    assert data[0] == 0x20, data
    return data[3]


def wait_log(b, text, count=1, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b.log().count(text) >= count:
            return True
        time.sleep(0.05)
    return False


def expect_closed(sock, timeout=15.0):
    """The server closes sock: EOF or a TLS/socket error, before the deadline."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ssl.SSLError, ConnectionError, OSError) as e:
        if isinstance(e, socket.timeout):
            raise AssertionError("not closed within %s s" % timeout)
    return True


class Paho:
    """A paho client over TLS; messages recorded, waits with deadlines."""

    def __init__(self, t, cid, cert=None, subscribe=None):
        self.cond = threading.Condition()
        self.msgs, self.connected, self.subscribed = [], None, False
        self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311)
        kw = {}
        if cert:
            kw = {"certfile": t.path(f"{cert}.crt"), "keyfile": t.path(f"{cert}.key")}
        self.c.tls_set(ca_certs=t.path("ca.crt"), **kw)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.connect(HOST, t.tls_port, 30)
        self.c.loop_start()
        self.wait(lambda: self.connected is not None)
        assert self.connected == 0, self.connected
        if subscribe:
            self.c.subscribe(subscribe, 1)
            self.wait(lambda: self.subscribed)

    def _on_connect(self, c, u, flags, rc):
        with self.cond:
            self.connected = rc
            self.cond.notify_all()

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append((m.topic, m.payload))
            self.cond.notify_all()

    def _on_subscribe(self, c, u, mid, granted):
        with self.cond:
            self.subscribed = True
            self.cond.notify_all()

    def wait(self, pred, timeout=10.0):
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "timed out"

    def publish(self, topic, payload):
        self.c.publish(topic, payload, 1).wait_for_publish()

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_mosquitto_clients_over_tls(tls_broker):
    """mosquitto_sub and mosquitto_pub authenticate the server with --cafile."""
    t = tls_broker()
    sub = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(t.tls_port), "--cafile",
                            t.path("ca.crt"), "-t", "tls/m", "-C", "1", "-W", "10", "-q", "1",
                            "-i", "msub"], stdout=subprocess.PIPE, text=True)
    # published again each second until the subscriber (connecting meanwhile) gets it
    deadline = time.monotonic() + 10
    out = None
    while out is None and time.monotonic() < deadline:
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(t.tls_port), "--cafile",
                        t.path("ca.crt"), "-t", "tls/m", "-m", "over-tls", "-q", "1"], check=True,
                       timeout=10)
        try:
            out, _ = sub.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    sub.kill()
    assert out == "over-tls\n", out


def test_paho_publish_subscribe_over_tls(tls_broker):
    """paho-mqtt with tls_set publishes and subscribes; a plain client on --port sees it too."""
    t = tls_broker()
    sub = Paho(t, "psub", subscribe="tls/p/#")
    pub = Paho(t, "ppub")
    pub.publish("tls/p/1", b"hello")
    sub.wait(lambda: ("tls/p/1", b"hello") in sub.msgs)
    pub.stop()
    sub.stop()


def test_identity_as_username_acl(tls_broker, broker_factory):
    """With require-certificate and use-identity-as-username the certificate's CN is the username
    the ACL sees: client1 may write client1/#, not client2/#."""
    acl = "topic read #\n\nuser client1\ntopic readwrite client1/#\n"
    t = tls_broker("--require-certificate", "true", "--use-identity-as-username", "true",
                   acl=acl)
    watcher = mqttclients.PahoClient(HOST, t.b.port, "watcher")  # anonymous, on the plain port
    watcher.subscribe("#", 1)
    c1 = Paho(t, "c1", cert="client1")
    c1.publish("client2/x", b"denied")
    c1.publish("client1/x", b"allowed")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(m[0] == "client1/x" for m in _msgs(watcher)):
        time.sleep(0.02)
    got = [m[0] for m in _msgs(watcher)]
    assert "client1/x" in got and "client2/x" not in got, got
    c1.stop()
    watcher.stop()


def test_identity_without_cn_refused(tls_broker):
    """use-identity-as-username: a valid certificate without a CN names no one: not authorized."""
    t = tls_broker("--require-certificate", "true", "--use-identity-as-username", "true")
    s = tls_connect(t, cert="nocn")
    assert mqtt_connack(s, "nocn") == 0x05
    s.close()
    s = tls_connect(t, cert="client1")
    assert mqtt_connack(s, "cn") == 0
    s.close()


def _msgs(pc):
    with pc.cond:
        return [(m[0], m[1]) if isinstance(m, tuple) else (m.topic, m.payload) for m in pc.messages]


def test_client_without_certificate_refused(tls_broker):
    """require-certificate: a client presenting none does not get to speak MQTT."""
    t = tls_broker("--require-certificate", "true")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        s = tls_connect(t)
        mqtt_connack(s, "nocert")
    s2 = tls_connect(t, cert="client2")
    assert mqtt_connack(s2, "withcert") == 0
    s2.close()


def test_tls13_minimum_refuses_tls12_client(tls_broker):
    t = tls_broker("--tls-min-version", "1.3")
    with pytest.raises(ssl.SSLError):
        tls_connect(t, maximum_version=ssl.TLSVersion.TLSv1_2)
    s = tls_connect(t)
    assert s.version() == "TLSv1.3"
    assert mqtt_connack(s, "v13") == 0
    s.close()


def test_tls12_and_alpn(tls_broker):
    """TLS 1.2 is accepted by default; ALPN "mqtt" is selected when offered."""
    t = tls_broker()
    s = tls_connect(t, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert s.version() == "TLSv1.2"
    assert mqtt_connack(s, "v12") == 0
    s.close()
    ctx = client_ctx(t.pki)
    ctx.set_alpn_protocols(["mqtt"])
    s = ctx.wrap_socket(socket.create_connection((HOST, t.tls_port), timeout=5),
                        server_hostname="localhost")
    assert s.selected_alpn_protocol() == "mqtt"
    assert mqtt_connack(s, "alpn") == 0
    s.close()


def fingerprint(t):
    s = tls_connect(t)
    fp = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    s.close()
    return fp


def test_sighup_reloads_certificate(tls_broker):
    """After SIGHUP new connections see the new certificate; an open one keeps working."""
    t = tls_broker()
    old = fingerprint(t)
    sub = Paho(t, "hup-sub", subscribe="hup/#")
    for n in ("server.crt", "server.key"):
        with open(t.path(n.replace("server", "server2")), "rb") as src:
            data = src.read()
        with open(os.path.join(t.workdir, n), "wb") as dst:
            dst.write(data)
    t.b.proc.send_signal(signal.SIGHUP)
    assert wait_log(t.b, "TLS certificates reloaded"), t.b.log()
    new = fingerprint(t)
    assert new != old
    pub = Paho(t, "hup-pub")
    pub.publish("hup/1", b"after")
    sub.wait(lambda: ("hup/1", b"after") in sub.msgs)
    pub.stop()
    sub.stop()


def test_sighup_with_bad_files_keeps_old(tls_broker):
    t = tls_broker()
    old = fingerprint(t)
    with open(os.path.join(t.workdir, "server.crt"), "w") as f:
        f.write("not a certificate\n")
    t.b.proc.send_signal(signal.SIGHUP)
    assert wait_log(t.b, "TLS reload failed"), t.b.log()
    assert fingerprint(t) == old


def test_bad_input_closed_others_unaffected(tls_broker):
    """Garbage, a plain MQTT CONNECT and a silent client on the TLS port are closed (the handshake
    failure logged once each); a TLS client connected meanwhile keeps working."""
    t = tls_broker()
    good = Paho(t, "good", subscribe="bad/#")
    silent = socket.create_connection((HOST, t.tls_port), timeout=15)
    garbage = socket.create_connection((HOST, t.tls_port), timeout=15)
    garbage.sendall(os.urandom(4096))
    plain = socket.create_connection((HOST, t.tls_port), timeout=15)
    plain.sendall(connect_pkt("plain"))
    for s in (garbage, plain):
        expect_closed(s)
    assert wait_log(t.b, "TLS handshake with", 2), t.b.log()
    port = plain.getsockname()[1]
    assert t.b.log().count(f":{port} failed") == 1, t.b.log()
    expect_closed(silent, timeout=15)
    assert wait_log(t.b, "timed out"), t.b.log()
    pub = Paho(t, "bad-pub")
    pub.publish("bad/1", b"still")
    good.wait(lambda: ("bad/1", b"still") in good.msgs)
    pub.stop()
    good.stop()


def run_sol(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env["SOL_CLUSTER_PORT"] = "0"
    return subprocess.run([SOL_BIN, "--bind", HOST, "--port", str(free_port())] + list(args),
                          capture_output=True, text=True, timeout=10, env=env)


@pytest.mark.parametrize("args,named", [
    (["--listener", "mqtt://127.0.0.1:9001/path"], "listener"),  # a path is for ws/wss only
    (["--listener", "wss://127.0.0.1:9001"], "certfile"),
    (["--listener", "http://x:1"], "listener"),
    (["--listener", "mqtts://127.0.0.1:8883"], "certfile"),
    (["--listener", "mqtts://127.0.0.1:8883", "--certfile", "/x"], "keyfile"),
    (["--use-identity-as-username", "true"], "use-identity-as-username"),
    (["--tls-min-version", "1.1"], "tls-min-version"),
])
def test_bad_tls_settings_exit_2(args, named):
    r = run_sol(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert named in r.stderr, r.stderr


def test_unreadable_certificate_exit_2(pki, tmp_path):
    missing = str(tmp_path / "nope.crt")
    r = run_sol("--listener", f"mqtts://{HOST}:{free_port()}", "--certfile", missing,
                "--keyfile", os.path.join(pki, "server.key"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert missing in r.stderr, r.stderr


def test_env_and_config_file(pki, tmp_path):
    """The TLS settings are SOL_* variables and config keys too."""
    port = free_port()
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"listener mqtts://{HOST}:{port}\ncertfile {pki}/server.crt\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env.update(SOL_CLUSTER_PORT="0", SOL_KEYFILE=f"{pki}/server.key")
    p = subprocess.Popen([SOL_BIN, "--bind", HOST, "--port", str(free_port()), "-c", str(cfg)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_port(HOST, port, p, time.monotonic() + 10)
        t = TlsBroker(None, port, pki)
        s = tls_connect(t)
        assert mqtt_connack(s, "envcfg") == 0
        s.close()
    finally:
        p.terminate()
        p.wait(10)


def test_session_resumption(tls_broker):
    """A TLS 1.2 client offering its previous session resumes it (OpenSSL's session cache)."""
    t = tls_broker()
    ctx = client_ctx(t.pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    s = ctx.wrap_socket(socket.create_connection((HOST, t.tls_port), timeout=5),
                        server_hostname="localhost")
    assert mqtt_connack(s, "resume1") == 0
    sess = s.session
    s.close()
    s = ctx.wrap_socket(socket.create_connection((HOST, t.tls_port), timeout=5),
                        server_hostname="localhost", session=sess)
    assert s.session_reused
    assert mqtt_connack(s, "resume2") == 0
    s.close()


def test_large_messages_over_tls(tls_broker):
    """Messages bigger than a TLS record and than a socket buffer arrive whole and in order (the
    write path that queues ciphertext, then hands the buffer back)."""
    t = tls_broker()
    sub = Paho(t, "big-sub", subscribe="big/#")
    pub = Paho(t, "big-pub")
    payloads = [os.urandom(n) for n in (20000, 600000, 5, 900000)]
    for i, p in enumerate(payloads):
        pub.publish(f"big/{i}", p)
    sub.wait(lambda: len(sub.msgs) == len(payloads), timeout=20)
    assert [m[1] for m in sub.msgs] == payloads
    pub.stop()
    sub.stop()


def read_packets(sock, n, timeout=30.0):
    """Read n MQTT packets from sock; their (first byte, body) list."""
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < deadline, f"{len(out)} of {n} packets"
        while True:
            if len(buf) >= 2:
                length, mult, i = 0, 1, 1
                while i < len(buf) and i < 5:
                    length += (buf[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not buf[i - 1] & 0x80:
                        break
                else:
                    i = None
                if i and len(buf) >= i + length:
                    out.append((buf[0], buf[i:i + length]))
                    buf = buf[i + length:]
                    if len(out) == n:
                        break
                    continue
            break
        if len(out) < n:
            chunk = sock.recv(65536)
            assert chunk, "closed"
            buf += chunk
    return out


def test_slow_tls_subscriber_gets_everything(tls_broker):
    """A TLS subscriber with a 4 KiB receive buffer, fed 3 MB faster than it takes them (its
    ciphertext queues, the publisher is paused), gets every message whole and in order."""
    from mqttraw import subscribe_pkt
    t = tls_broker()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect((HOST, t.tls_port))
    s = client_ctx(t.pki).wrap_socket(raw, server_hostname="localhost")
    assert mqtt_connack(s, "slow") == 0
    s.sendall(subscribe_pkt(1, [("slow/#", 0)]))
    assert read_packets(s, 1)[0][0] == 0x90
    pub = Paho(t, "fast-pub")
    payload = os.urandom(50000)
    done = threading.Event()

    def publish():
        for i in range(60):
            pub.publish("slow/x", payload + i.to_bytes(2, "big"))
        done.set()

    th = threading.Thread(target=publish)
    th.start()
    pkts = read_packets(s, 60, timeout=60)
    th.join(30)
    assert done.is_set()
    for i, (fb, body) in enumerate(pkts):
        assert fb == 0x30 and body.endswith(payload + i.to_bytes(2, "big")), i
    pub.stop()
    s.close()


def test_extra_plain_listener(broker_factory):
    """--listener mqtt://ADDR:PORT adds a plain listener beside --port; both carry messages."""
    port = free_port()
    b = broker_factory(extra_args=["--listener", f"mqtt://{HOST}:{port}"])
    assert wait_port(HOST, port, b.proc, time.monotonic() + 10), b.log()
    sub = mqttclients.PahoClient(HOST, port, "extra-sub")
    sub.subscribe("extra/#", 1)
    pub = mqttclients.PahoClient(HOST, b.port, "extra-pub")
    pub.publish("extra/1", b"both", 1)
    sub.wait_messages(1)
    assert _msgs(sub) == [("extra/1", b"both")]
    pub.stop()
    sub.stop()
