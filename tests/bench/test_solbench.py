"""Benchmark smoke tests: solbench against a real broker for about two seconds.

These check correctness of both sides, never timing: the RESULT line parses, every message published
at QoS 1 (and 2) arrives exactly once, and solbench's loss accounting does see loss when a broker
drops messages. The broker is Sol (SOL_BIN, default build/sol); solbench is SOLBENCH (default: next
to SOL_BIN). Mosquitto (/usr/sbin/mosquitto) is used to check solbench itself.
"""
import os
import socket
import struct
import subprocess
import tempfile
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _abs(path):
    return path if os.path.isabs(path) else os.path.join(REPO, path)


SOL_BIN = _abs(os.environ.get("SOL_BIN", "build/sol"))
SOLBENCH = _abs(os.environ.get("SOLBENCH", os.path.join(os.path.dirname(SOL_BIN), "solbench")))
MOSQUITTO = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
HOST = "127.0.0.1"


def free_port():
    """A port free right now on 127.0.0.1 (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port, proc, deadline_s=10.0):
    """Poll until the broker accepts connections; fail early if it exited."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"broker not listening on {port} after {deadline_s}s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sol_args(port):
    """Sol with queues large enough that nothing is dropped at benchmark rates."""
    args = [SOL_BIN, "--bind", HOST, "--port", str(port), "--max-queued", "1000000",
            "--log-level", "warn", "--data-dir", tempfile.mkdtemp(prefix="sol-bench-")]
    help_text = subprocess.run([SOL_BIN, "--help"], capture_output=True, text=True).stdout
    for flag in ("--cluster-port", "--http-port"):
        if flag in help_text:
            args += [flag, "0"]
    return args


@pytest.fixture
def sol():
    if not os.access(SOL_BIN, os.X_OK):
        pytest.skip(f"{SOL_BIN} not built")
    port = free_port()
    proc = subprocess.Popen(sol_args(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield port
    finally:
        stop(proc)


def start_mosquitto(extra_conf=""):
    port = free_port()
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
               f"log_dest none\n{extra_conf}")
    conf.close()
    proc = subprocess.Popen([MOSQUITTO, "-c", conf.name], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
    except AssertionError:
        stop(proc)
        os.unlink(conf.name)
        raise
    return port, proc, conf.name


@pytest.fixture
def mosquitto():
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto not installed")
    port, proc, conf = start_mosquitto("max_queued_messages 1000000\n")
    try:
        yield port
    finally:
        stop(proc)
        os.unlink(conf)


def solbench(*args, timeout=60):
    """Run solbench; return (exit code, RESULT fields as a dict of strings, full output)."""
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip(f"{SOLBENCH} not built")
    proc = subprocess.run([SOLBENCH, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    fields = dict(kv.split("=", 1) for kv in lines[0].split()[1:])
    return proc.returncode, fields, proc.stdout + proc.stderr


def check_result(fields, out):
    """Fields every run reports, and their arithmetic."""
    for key in ("sent", "recv", "expected", "lost", "dup", "ooo", "sent_rate", "recv_rate",
                "p50_us", "p99_us", "max_us", "cpu_user_s", "cpu_sys_s", "errors"):
        assert key in fields, f"RESULT lacks {key}: {out}"
    assert fields["errors"] == "0", out
    sent, recv = int(fields["sent"]), int(fields["recv"])
    assert sent > 0 and recv > 0, out
    assert int(fields["expected"]) == sent * int(fields["subs"]), out
    assert int(fields["lost"]) == int(fields["expected"]) - recv, out
    assert float(fields["p50_us"]) <= float(fields["p99_us"]) <= float(fields["max_us"]), out


def test_self_test():
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip(f"{SOLBENCH} not built")
    proc = subprocess.run([SOLBENCH, "--self-test"], capture_output=True, text=True, timeout=30)
    rc, out = proc.returncode, proc.stdout + proc.stderr
    assert rc == 0 and "self-test ok" in out, out


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_sol_exactly_once_where_qos_allows(sol, qos):
    """QoS 1 and 2: nothing lost, nothing duplicated. QoS 0 on an unloaded broker: nothing lost."""
    rc, fields, out = solbench("--port", sol, "--duration", 2, "--qos", qos, "--window", 20,
                               "--pubs", 2, "--subs", 2, "--check")
    assert rc == 0, out
    check_result(fields, out)
    assert fields["lost"] == "0" and fields["dup"] == "0", out
    if qos > 0:
        assert fields["bad_acks"] == "0", out


def test_sol_fanout_wildcard_shared(sol):
    rc, fields, out = solbench("--port", sol, "--count", 2000, "--pubs", 3, "--subs", 5,
                               "--topic", "shared", "--sub", "wildcard", "--qos", 1, "--check")
    assert rc == 0, out
    check_result(fields, out)
    assert int(fields["recv"]) == 3 * 2000 * 5, out


def test_sol_idle_connections(sol):
    rc, fields, out = solbench("--port", sol, "--pubs", 0, "--subs", 0, "--idle", 200,
                               "--src-addrs", 4, "--hold", 0.2)
    assert rc == 0, out
    assert "IDLE_READY connected=200 failed=0" in out, out
    assert fields["idle_ok"] == "200", out


@pytest.mark.parametrize("qos", [0, 1])
def test_solbench_against_mosquitto(mosquitto, qos):
    """solbench's own correctness: scenarios (a) and (b) against Mosquitto lose and duplicate nothing."""
    rc, fields, out = solbench("--port", mosquitto, "--duration", 2, "--qos", qos, "--check")
    assert rc == 0, out
    check_result(fields, out)
    assert fields["lost"] == "0" and fields["dup"] == "0" and fields["ooo"] == "0", out


def test_solbench_sees_loss():
    """A Mosquitto allowed to queue one QoS 1 message per client beyond its 20 in flight drops under
    fan-out with publishers that do not wait (--max-lag 0): solbench must count it as lost, not
    report a clean run. (Mosquitto's max_queued_messages does not limit QoS 0 to online clients.)"""
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto not installed")
    port, proc, conf = start_mosquitto("max_queued_messages 1\n")
    try:
        rc, fields, out = solbench("--port", port, "--duration", 1, "--subs", 20, "--max-lag", 0,
                                   "--qos", 1, "--window", 100, "--drain-idle", 1, "--check")
    finally:
        stop(proc)
        os.unlink(conf)
    assert rc == 3, out  # --check fails the run
    assert int(fields["lost"]) > 0, out
    assert int(fields["recv"]) + int(fields["lost"]) == int(fields["expected"]), out


def test_bad_option_is_usage_error():
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip(f"{SOLBENCH} not built")
    proc = subprocess.run([SOLBENCH, "--size", "8"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "--size" in proc.stderr


def solbench_while_publishing(port, bench_args, injections):
    """Run solbench with bench_args while mosquitto_pub publishes each (extra args, payload) of
    injections every 0.2 s until it ends; return (exit code, RESULT fields, output)."""
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip(f"{SOLBENCH} not built")
    bench = subprocess.Popen([SOLBENCH, "--port", str(port), *map(str, bench_args)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while bench.poll() is None and time.monotonic() < deadline:
            for extra, payload in injections:
                subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-s", *extra],
                               input=payload, timeout=5, check=True)
            time.sleep(0.2)
        out = bench.communicate(timeout=30)[0]
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    fields = dict(kv.split("=", 1) for kv in next(
        l for l in out.splitlines() if l.startswith("RESULT ")).split()[1:])
    return bench.returncode, fields, out


def test_foreign_payloads_are_ignored(sol):
    """Someone else publishing junk, a short payload, or a solbench header of another run on the
    run's topic: counted as foreign, never as received, lost or duplicated, and no crash."""
    run_id = 0x5eed
    topic = ["-t", f"solbench/{run_id:08x}/p/0"]
    other_run = struct.pack("<IIIB3xQQ", 0x424C4F53, run_id + 1, 0, 1, 0, 0) + b"x" * 32
    rc, fields, out = solbench_while_publishing(
        sol, ["--run-id", f"{run_id:x}", "--duration", 3, "--rate", 1000, "--check"],
        [(topic, b"junk"), (topic, other_run)])
    assert rc == 0, out
    assert int(fields["foreign"]) >= 2, out
    assert fields["lost"] == "0" and fields["dup"] == "0", out
    assert int(fields["recv"]) == int(fields["sent"]), out


def test_open_loop_reports_what_a_dropping_broker_loses():
    """Open loop, QoS 1, window 100, against a Mosquitto that queues one message per client beyond
    its 20 in flight: the publisher never waits for the subscriber, so Mosquitto acknowledges and
    drops the rest, and solbench must count them as lost (exit 3 with --check). The same broker
    closed loop (at most 10 deliveries on their way) loses nothing, so the loss is the mode's."""
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto not installed")
    port, proc, conf = start_mosquitto("max_queued_messages 1\n")
    try:
        rc, fields, out = solbench("--port", port, "--open-loop", "--qos", 1, "--window", 100,
                                   "--count", 20000, "--drain-idle", 1, "--check")
        rc_closed, closed, out_closed = solbench("--port", port, "--max-lag", 10, "--qos", 1,
                                                 "--window", 100, "--count", 2000, "--check")
    finally:
        stop(proc)
        os.unlink(conf)
    assert fields["open_loop"] == "1" and fields["max_lag"] == "0", out
    assert fields["errors"] == "0" and fields["bad_acks"] == "0", out
    assert int(fields["sent"]) == 20000 and fields["expected"] == "20000", out
    assert rc == 3, out  # --check fails the run
    assert int(fields["lost"]) > 0, out
    assert int(fields["recv"]) + int(fields["lost"]) == int(fields["expected"]), out
    assert fields["dup"] == "0" and fields["ooo"] == "0", out
    assert rc_closed == 0 and closed["open_loop"] == "0", out_closed
    assert closed["lost"] == "0" and closed["recv"] == "2000", out_closed


def test_open_loop_is_max_lag_zero():
    """--max-lag 0 is open loop too; --open-loop with a non-zero --max-lag is a usage error."""
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip(f"{SOLBENCH} not built")
    proc = subprocess.run([SOLBENCH, "--open-loop", "--max-lag", "5"], capture_output=True,
                          text=True, timeout=10)
    assert proc.returncode == 2 and "--open-loop" in proc.stderr, proc.stderr
    out = subprocess.run([SOLBENCH, "--help"], capture_output=True, text=True, timeout=10).stdout
    assert "--open-loop" in out and "0 = open loop" in out, out


def test_open_loop_exactly_once_against_mosquitto(mosquitto):
    """Open loop against a broker with room to queue: QoS 1 from 3 publishers with window 100,
    every message arrives exactly once and in order, and the drain waits for all of them."""
    rc, fields, out = solbench("--port", mosquitto, "--open-loop", "--qos", 1, "--window", 100,
                               "--pubs", 3, "--count", 5000, "--check")
    assert rc == 0, out
    check_result(fields, out)
    assert fields["open_loop"] == "1", out
    assert fields["recv"] == str(3 * 5000) and fields["lost"] == "0", out
    assert fields["dup"] == "0" and fields["ooo"] == "0", out


@pytest.mark.parametrize("qos,props", [(0, 0), (0, 2), (1, 2), (2, 3)])
def test_sol_mqtt5_exactly_once_with_user_props(sol, qos, props):
    """MQTT 5 (--mqtt5) end to end through Sol: every message arrives once, and every delivery
    carries the publisher's User Properties as sent (the subscriber checks each one)."""
    args = ["--port", sol, "--mqtt5", "--count", 2000, "--pubs", 2, "--subs", 2, "--qos", qos,
            "--window", 20, "--check"]
    if props:
        args += ["--user-props", props]
    rc, fields, out = solbench(*args)
    assert rc == 0, out
    check_result(fields, out)
    assert fields["mqtt"] == "5" and fields["user_props"] == str(props), out
    assert fields["recv"] == str(2 * 2000 * 2) and fields["lost"] == "0", out
    assert fields["dup"] == "0" and fields["prop_bad"] == "0" and fields["ack_fail"] == "0", out
    assert int(fields["recv_max"]) > 0, out  # Sol's CONNACK carries its Receive Maximum


def test_mqtt5_missing_or_wrong_user_props_fail_the_run(sol):
    """The property check is real: copies of message 0 published by someone else, one without User
    Properties and one with a wrong value, are caught (prop_bad) and fail the run."""
    run_id = 0x5eed5
    v5 = ["-V", "mqttv5", "-t", f"solbench/{run_id:08x}/p/0"]
    copy_of_0 = struct.pack("<IIIB3xQQ", 0x424C4F53, run_id, 0, 1, 0, 0) + b"x" * 32
    rc, fields, out = solbench_while_publishing(
        sol, ["--run-id", f"{run_id:x}", "--mqtt5", "--user-props", 1, "--duration", 3, "--rate",
              1000],
        [(v5, copy_of_0), (v5 + ["-D", "publish", "user-property", "k00", "00000001"], copy_of_0)])
    assert rc == 1 and fields["errors"] == "1", out
    assert int(fields["prop_bad"]) >= 2 and "without the User Properties" in out, out
    assert fields["lost"] == "0", out  # solbench's own messages all arrived, properties intact


def test_mqtt5_against_mosquitto_keeps_its_receive_maximum(mosquitto):
    """Mosquitto's CONNACK says Receive Maximum 20 (its max_inflight_messages): a v5 publisher with
    --window 100 must keep 20 in flight at most, and then nothing is refused or lost."""
    rc, fields, out = solbench("--port", mosquitto, "--mqtt5", "--user-props", 2, "--qos", 1,
                               "--window", 100, "--count", 5000, "--check")
    assert rc == 0, out
    check_result(fields, out)
    assert fields["recv_max"] == "20" and "the publishers' window" in out, out
    assert fields["recv"] == "5000" and fields["prop_bad"] == "0" and fields["ack_fail"] == "0", out


@pytest.mark.parametrize("args,needs", [(["--user-props", "2"], "--mqtt5"),
                                        (["--cafile", "/nonexistent"], "--tls")])
def test_option_needs_another(args, needs):
    """--user-props needs --mqtt5; --cafile (and --tls-name) need --tls: usage errors naming it."""
    if not os.access(SOLBENCH, os.X_OK):
        pytest.skip(f"{SOLBENCH} not built")
    proc = subprocess.run([SOLBENCH, *args], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and needs in proc.stderr, proc.stderr


def connack_session_present(port, client_id):
    """CONNECT (3.1.1, clean session 0) as client_id; return CONNACK's session-present flag."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x00\x00\x3c" + struct.pack("!H", len(cid)) + cid
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            assert chunk, "closed before CONNACK"
            ack += chunk
        s.sendall(b"\xe0\x00")
    assert ack[0] == 0x20 and ack[3] == 0, ack
    return ack[2] & 1


def test_persistent_subscriber_keeps_its_session(sol):
    """--clean 0 with --client-prefix: the subscriber's session outlives the run (session present
    when its client id comes back), the publisher's does not, and nothing is lost."""
    rc, fields, out = solbench("--port", sol, "--open-loop", "--qos", 1, "--count", 3000,
                               "--clean", 0, "--client-prefix", "smoke", "--check")
    assert rc == 0, out
    check_result(fields, out)
    assert fields["clean"] == "0" and fields["recv"] == "3000", out
    assert connack_session_present(sol, "smoke-s0") == 1
    assert connack_session_present(sol, "smoke-p0") == 0
    rc, fields, out = solbench("--port", sol, "--mqtt5", "--qos", 1, "--count", 1000, "--clean", 0,
                               "--client-prefix", "smoke5", "--check")
    assert rc == 0 and fields["clean"] == "0" and fields["recv"] == "1000", out


def make_certs(d):
    """A CA and a server certificate for localhost / 127.0.0.1, made with openssl in d."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=smoke-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
        "other.crt", "-days", "2", "-subj", "/CN=other-ca")
    return d


def test_tls_against_sol_mqtts():
    """--tls against Sol's mqtts listener: QoS 0 and QoS 1 with a persistent subscriber over TLS
    lose nothing; a CA that did not sign the broker's certificate, a wrong --tls-name and a plain
    port each fail the run with the reason."""
    if not os.access(SOL_BIN, os.X_OK) or not os.access(SOLBENCH, os.X_OK):
        pytest.skip("sol or solbench not built")
    d = make_certs(tempfile.mkdtemp(prefix="solbench-tls-"))
    plain, tls = free_port(), free_port()
    proc = subprocess.Popen(sol_args(plain) + ["--listener", f"mqtts://{HOST}:{tls}", "--certfile",
                                               os.path.join(d, "server.crt"), "--keyfile",
                                               os.path.join(d, "server.key")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(tls, proc)
        ca = os.path.join(d, "ca.crt")
        for extra in (["--qos", 0, "--duration", 1], ["--qos", 1, "--count", 3000, "--clean", 0]):
            rc, fields, out = solbench("--port", tls, "--tls", "--cafile", ca, "--tls-name",
                                       "localhost", "--open-loop", *extra, "--check")
            assert rc == 0, out
            check_result(fields, out)
            assert fields["tls"].startswith("TLSv1."), out
        rc, fields, out = solbench("--port", tls, "--tls", "--cafile", os.path.join(d, "other.crt"),
                                   "--count", 10, "--connect-timeout", 5)
        assert rc == 1 and "TLS handshake" in out and "certificate" in out, out
        rc, fields, out = solbench("--port", tls, "--tls", "--cafile", ca, "--tls-name",
                                   "wrong.example", "--count", 10, "--connect-timeout", 5)
        assert rc == 1 and "hostname mismatch" in out, out
        rc, fields, out = solbench("--port", plain, "--tls", "--count", 10, "--connect-timeout", 5)
        assert rc == 1 and "TLS" in out, out
    finally:
        stop(proc)

