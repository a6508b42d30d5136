"""Command line, config file, environment, exit codes and signals."""
import os
import re
import signal
import subprocess
import tempfile

import pytest

from conftest import IS_MOSQUITTO, SOL_BIN, free_port, start_broker, wait_port, HOST
import mqttraw

FLAGS = ["--bind", "--port", "--config", "--acl-file", "--password-file", "--allow-anonymous",
         "--max-packet-size", "--max-connections", "--max-inflight", "--max-queued",
         "--log-level", "--sys-interval", "--help", "--version"]


def sol_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env["SOL_CLUSTER_PORT"] = "0"
    env["SOL_HTTP_PORT"] = "0"
    env["SOL_DATA_DIR"] = tempfile.mkdtemp(prefix="sol-cli-")  # never the repository's ./data
    env.update(extra)
    return env


def run_sol(args, env=None, timeout=10):
    if not os.path.exists(SOL_BIN):
        pytest.fail(f"{SOL_BIN} not found")
    return subprocess.run([SOL_BIN] + args, capture_output=True, text=True, timeout=timeout,
                          env=env or sol_env())


def setting_named(text, name):
    """True if text names the setting (flag, config key or env spelling)."""
    pats = [name, name.replace("-", "_"), "SOL_" + name.replace("-", "_").upper()]
    return any(p in text for p in pats)


@pytest.mark.sol_only
def test_help_lists_every_flag():
    r = run_sol(["--help"])
    assert r.returncode == 0, r.stderr
    for flag in FLAGS:
        assert flag in r.stdout, f"--help does not mention {flag}"


@pytest.mark.sol_only
def test_version():
    r = run_sol(["--version"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+", r.stdout), r.stdout


@pytest.mark.sol_only
def test_unknown_flag_exit_2():
    r = run_sol(["--bind", HOST, "--port", str(free_port()), "--no-such-flag"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "no-such-flag" in r.stderr + r.stdout


@pytest.mark.sol_only
@pytest.mark.parametrize("flag,value", [
    ("port", "notaport"), ("port", "70000"), ("port", "-1"),
    ("max-inflight", "abc"), ("max-inflight", "70000"), ("max-queued", "-5"),
    ("max-packet-size", "huge"), ("max-packet-size", "300000000"), ("max-connections", "x"),
    ("allow-anonymous", "maybe"), ("log-level", "loud"), ("sys-interval", "soon"),
])
def test_bad_flag_value_exit_2(flag, value):
    """A bad value: exit code 2 and one error naming the setting."""
    r = run_sol(["--bind", HOST, "--port", str(free_port()), f"--{flag}", value]
                if flag != "port" else ["--bind", HOST, "--port", value])
    assert r.returncode == 2, (flag, value, r.returncode, r.stderr)
    assert setting_named(r.stderr, flag), r.stderr


@pytest.mark.sol_only
def test_flag_missing_value_exit_2():
    r = run_sol(["--bind", HOST, "--port"])
    assert r.returncode == 2 and setting_named(r.stderr, "port"), r.stderr


@pytest.mark.sol_only
@pytest.mark.parametrize("flag", ["acl-file", "password-file", "config"])
def test_missing_file_exit_2(flag, tmp_path):
    r = run_sol(["--bind", HOST, "--port", str(free_port()), f"--{flag}",
                 str(tmp_path / "does-not-exist")])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert setting_named(r.stderr, flag) or "does-not-exist" in r.stderr, r.stderr


@pytest.mark.sol_only
def test_bad_config_key_exit_2(tmp_path):
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"# comment\nbind {HOST}\nport {free_port()}\nno_such_setting 1\n")
    r = run_sol(["--config", str(cfg)])
    assert r.returncode == 2 and "no_such_setting" in r.stderr, r.stderr


@pytest.mark.sol_only
def test_bad_config_value_exit_2(tmp_path):
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"bind {HOST}\nport {free_port()}\nmax_inflight lots\n")
    r = run_sol(["--config", str(cfg)])
    assert r.returncode == 2 and setting_named(r.stderr, "max-inflight"), r.stderr


@pytest.mark.sol_only
def test_bad_env_value_exit_2():
    r = run_sol(["--bind", HOST, "--port", str(free_port())], env=sol_env(SOL_MAX_QUEUED="many"))
    assert r.returncode == 2 and setting_named(r.stderr, "max-queued"), r.stderr


def listening(port, proc):
    import time
    return wait_port(HOST, port, proc, time.monotonic() + 10)


def spawn(args, env, tmp_path):
    log = open(tmp_path / "sol.log", "w")
    return subprocess.Popen([SOL_BIN] + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=tmp_path)


@pytest.mark.sol_only
def test_config_env_flag_precedence(tmp_path):
    """Every setting is a flag, a config key and a SOL_* variable: flag > env > file."""
    p_file, p_env, p_flag = free_port(), free_port(), free_port()
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"# test config\nbind {HOST}\nport {p_file}\nmax-inflight 5\n")
    cases = [([], {}, p_file), ([], {"SOL_PORT": str(p_env)}, p_env),
             (["--port", str(p_flag)], {"SOL_PORT": str(p_env)}, p_flag)]
    for args, env, expect in cases:
        proc = spawn(["--config", str(cfg)] + args, sol_env(**env), tmp_path)
        try:
            assert listening(expect, proc), (args, env, (tmp_path / "sol.log").read_text())
            c = mqttraw.RawClient(HOST, expect)
            c.connect("prec")
            c.close()
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.sol_only
def test_config_file_via_env(tmp_path):
    """SOL_CONFIG names the config file."""
    port = free_port()
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"bind {HOST}\nport {port}\n")
    proc = spawn([], sol_env(SOL_CONFIG=str(cfg)), tmp_path)
    try:
        assert listening(port, proc), (tmp_path / "sol.log").read_text()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero(broker_factory, sig):
    """SIGTERM / SIGINT: listeners closed, exit code 0."""
    b = broker_factory()
    c = b.raw()
    c.connect("sig")
    assert b.stop(sig, timeout=10) == 0
    c.expect_closed(3)


def test_sigterm_publishes_wills_of_connected_clients(broker_factory):
    """On SIGTERM the server closes client connections without a DISCONNECT from them, so, like
    Mosquitto, it publishes their wills [MQTT-3.1.2-8] (observable by a subscriber still connected
    while the broker shuts down); clients that sent DISCONNECT have no will [MQTT-3.14.4-3]."""
    b = broker_factory()
    w = b.raw()
    w.connect("term-watch")
    w.subscribe(1, [("term/#", 1)])
    gone = b.raw()
    gone.connect("term-gone", will=("term/gone", b"disconnected", 1, False))
    gone.send(b"\xe0\x00")
    gone.expect_closed()
    live = b.raw()
    live.connect("term-live", will=("term/live", b"broker-stopped", 1, False))
    assert b.stop(signal.SIGTERM) == 0
    got = w.expect_closed(5)
    wills = [(p.topic, p.payload) for p in got if p.type == mqttraw.PUBLISH]
    assert wills == [("term/live", b"broker-stopped")], got


def test_listener_closed_after_sigterm(broker_factory):
    b = broker_factory()
    assert b.stop(signal.SIGTERM) == 0
    import socket
    with pytest.raises(OSError):
        socket.create_connection(b.addr, timeout=1).close()


BAD_VALUES = {"port": "notaport", "allow-anonymous": "maybe", "max-packet-size": "huge",
              "max-connections": "x", "max-inflight": "abc", "max-queued": "-5",
              "log-level": "loud", "sys-interval": "soon", "cluster-key-file": "/nonexistent/keys"}


@pytest.mark.sol_only
@pytest.mark.parametrize("source", ["env", "config"])
@pytest.mark.parametrize("setting", sorted(BAD_VALUES))
def test_every_setting_from_env_and_config(tmp_path, setting, source):
    """Each setting is also a config key (underscore spelling) and a SOL_* variable: a bad value
    there is rejected with exit code 2, naming the setting."""
    key = setting.replace("-", "_")
    args = ["--bind", HOST] + (["--port", str(free_port())] if setting != "port" else [])
    env = sol_env()
    if source == "env":
        env["SOL_" + key.upper()] = BAD_VALUES[setting]
    else:
        cfg = tmp_path / "sol.conf"
        cfg.write_text(f"{key} {BAD_VALUES[setting]}\n")
        args += ["--config", str(cfg)]
    r = run_sol(args, env=env)
    assert r.returncode == 2, (setting, source, r.returncode, r.stderr)
    assert setting_named(r.stderr, setting), r.stderr


@pytest.mark.sol_only
@pytest.mark.parametrize("content,line", [("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\nbad!\n", 2),
                                          ("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==\n", 1),
                                          ("# no key\n", 1)])
def test_bad_cluster_key_file(tmp_path, content, line):
    """A key file with a line that is not base64 of 32 bytes (or no key): exit 2, one message naming
    the setting and the line."""
    keys = tmp_path / "keys"
    keys.write_text(content)
    r = run_sol(["--bind", HOST, "--port", str(free_port()), "--cluster-key-file", str(keys)])
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--cluster-key-file" in r.stderr and "line %d" % line in r.stderr, r.stderr


@pytest.mark.sol_only
def test_config_file_all_keys(tmp_path):
    """A config file using every single-node key (comments and both spellings) starts a node."""
    port = free_port()
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\n")
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"""# full single-node config
bind {HOST}
port {port}
acl_file {acl}
allow_anonymous true
max_packet_size 65536
max-connections 100
max_inflight 10
max_queued 100
log_level warn
sys_interval 0
""")
    proc = spawn(["--config", str(cfg)], sol_env(), tmp_path)
    try:
        assert listening(port, proc), (tmp_path / "sol.log").read_text()
        c = mqttraw.RawClient(HOST, port)
        c.connect("allkeys")
        c.subscribe(1, [("k/t", 1)])
        c.publish("k/t", b"x", qos=1)
        assert c.recv_publish().payload == b"x"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


@pytest.mark.sol_only
def test_log_level_error_is_quiet(tmp_path):
    """--log-level error: informational lines (startup, closed connections) are not logged."""
    port = free_port()
    proc = spawn(["--bind", HOST, "--port", str(port), "--log-level", "error"], sol_env(),
                 tmp_path)
    try:
        assert listening(port, proc)
        c = mqttraw.RawClient(HOST, port)
        c.connect("quiet")
        c.send(b"\xf0\x00")
        c.expect_closed()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    log = (tmp_path / "sol.log").read_text()
    assert "INFO" not in log and "quiet" not in log, log


# ---- Side by side: only the MQTT listener unless more is asked for (issue 9) ----

def clean_env(**extra):
    """The environment without any SOL_* variable: a node with nothing set but its flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env["SOL_DATA_DIR"] = tempfile.mkdtemp(prefix="sol-cli-")  # the store: never the repository's
    env.update(extra)
    return env


def bound_ports(pid):
    """{("tcp", port)} for the process's listening TCP sockets and {("udp", port)} for its UDP
    sockets, from /proc (so that no probe connection is made)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{proto}") as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            if parts[9] in inodes and (proto.startswith("udp") or parts[3] == "0A"):
                found.add((proto[:3], int(parts[1].rsplit(":", 1)[1], 16)))
    return found


def wait_listening_any(port, proc):
    """Wait for a listener on 0.0.0.0:port (the default --bind)."""
    import time
    return wait_port("0.0.0.0", port, proc, time.monotonic() + 10)


def pubsub_round_trip(port, name):
    """A real client (paho-mqtt) subscribes and receives its own QoS 1 publish on port."""
    import mqttclients
    c = mqttclients.PahoClient(HOST, port, client_id=name)
    try:
        c.subscribe(f"side/{name}", 1)
        c.publish(f"side/{name}", name.encode(), qos=1)
        assert c.wait_messages(1)[0].payload == name.encode()
    finally:
        c.stop()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(10)


@pytest.mark.sol_only
def test_two_nodes_side_by_side_with_defaults(tmp_path):
    """`sol --port A` and `sol --port B` with nothing else set run together on one host, as two
    `mosquitto -p` do: neither opens a cluster or HTTP port it was not asked for."""
    ports = [free_port(), free_port()]
    procs = []
    try:
        for i, port in enumerate(ports):
            log = open(tmp_path / f"sol{i}.log", "w")
            procs.append(subprocess.Popen([SOL_BIN, "--port", str(port), "--data-dir",
                                           str(tmp_path / f"data{i}")], stdout=log,
                                          stderr=subprocess.STDOUT, env=clean_env()))
            log.close()
        for i, (port, proc) in enumerate(zip(ports, procs)):
            assert wait_listening_any(port, proc), (tmp_path / f"sol{i}.log").read_text()
        for i, (port, proc) in enumerate(zip(ports, procs)):
            pubsub_round_trip(port, f"node{i}")
            assert bound_ports(proc.pid) == {("tcp", port)}, (tmp_path / f"sol{i}.log").read_text()
        for proc in procs:
            assert stop(proc) == 0
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _request_busy(setting, source, busy, tmp_path):
    """Run a node asking for port `busy` through `setting` from `source` (flag, env or file)."""
    key = setting.replace("-", "_")
    args = ["--bind", HOST] + ([] if setting == "port" else ["--port", str(free_port())])
    env = clean_env()
    if source == "flag":
        args += [f"--{setting}", str(busy)]
    elif source == "env":
        env["SOL_" + key.upper()] = str(busy)
    else:
        cfg = tmp_path / "sol.conf"
        cfg.write_text(f"# busy\n{key} {busy}\n")
        args += ["--config", str(cfg)]
    return run_sol(args, env=env)


@pytest.mark.sol_only
@pytest.mark.parametrize("source", ["flag", "env", "file"])
@pytest.mark.parametrize("setting", ["port", "cluster-port", "http-port"])
def test_requested_busy_port_exit_2(tmp_path, setting, source):
    """A port the user asked for that is busy: exit 2 and one line naming the setting as given."""
    import socket
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        busy = holder.getsockname()[1]
        r = _request_busy(setting, source, busy, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("sol: ")]
    assert len(errors) == 1, r.stderr
    assert setting_named(errors[0], setting) and str(busy) in errors[0], errors[0]
    assert "in use" in errors[0].lower(), errors[0]
    if source == "file":
        assert "sol.conf line 2" in errors[0], errors[0]


@pytest.mark.sol_only
def test_cluster_and_http_ports_when_asked(tmp_path):
    """--cluster-port alone turns clustering on (TCP and UDP on that port), still without HTTP;
    --http-port alone serves /metrics without clustering."""
    import http.client
    import time
    mqtt, cport, hport = free_port(), free_port(), free_port()
    proc = spawn(["--bind", HOST, "--port", str(mqtt), "--cluster-port", str(cport)], clean_env(),
                 tmp_path)
    try:
        assert listening(cport, proc), (tmp_path / "sol.log").read_text()
        assert listening(mqtt, proc), (tmp_path / "sol.log").read_text()
        assert bound_ports(proc.pid) == {("tcp", mqtt), ("tcp", cport), ("udp", cport)}
        assert stop(proc) == 0
    finally:
        proc.kill()
        proc.wait()
    proc = spawn(["--bind", HOST, "--port", str(mqtt), "--http-port", str(hport)], clean_env(),
                 tmp_path)
    try:
        assert listening(hport, proc), (tmp_path / "sol.log").read_text()
        assert listening(mqtt, proc), (tmp_path / "sol.log").read_text()
        assert bound_ports(proc.pid) == {("tcp", mqtt), ("tcp", hport)}
        conn = http.client.HTTPConnection(HOST, hport, timeout=5)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and b"sol_" in resp.read()
        conn.close()
        assert stop(proc) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.sol_only
def test_short_port_flag(tmp_path):
    """Mosquitto's -p PORT."""
    port = free_port()
    proc = spawn(["--bind", HOST, "-p", str(port)], clean_env(), tmp_path)
    try:
        assert listening(port, proc), (tmp_path / "sol.log").read_text()
        pubsub_round_trip(port, "short-p")
        assert stop(proc) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.sol_only
def test_short_config_flag(tmp_path):
    """Mosquitto's -c FILE."""
    port = free_port()
    cfg = tmp_path / "sol.conf"
    cfg.write_text(f"bind {HOST}\nport {port}\n")
    proc = spawn(["-c", str(cfg)], clean_env(), tmp_path)
    try:
        assert listening(port, proc), (tmp_path / "sol.log").read_text()
        pubsub_round_trip(port, "short-c")
        assert stop(proc) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.sol_only
def test_help_ends_with_newline():
    """--help (and -h) output ends with a newline, so the shell prompt starts on its own line."""
    for flag in ("--help", "-h"):
        r = subprocess.run([SOL_BIN, flag], capture_output=True, timeout=10, env=clean_env())
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith(b"\n") and not r.stdout.endswith(b"\n\n"), r.stdout[-80:]
        for short in (b"-p PORT", b"-c FILE"):
            assert short in r.stdout, short


@pytest.mark.sol_only
def test_fatal_signal_is_reported(tmp_path):
    """A node that dies of a fatal signal says so in its log, with its stack, and still dies of that
    signal (exit status and core dump as without the report). Under AddressSanitizer its own report
    stands in for ours."""
    port = free_port()
    proc = spawn(["--bind", HOST, "--port", str(port)], sol_env(), tmp_path)
    try:
        assert listening(port, proc)
        proc.send_signal(signal.SIGSEGV)
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "sol.log").read_text()
    if "AddressSanitizer" in log:
        assert rc != 0, log
    else:
        assert rc == -signal.SIGSEGV, (rc, log)
        assert "sol: fatal signal %d" % signal.SIGSEGV in log, log
        assert re.search(r"\(main\+0x[0-9a-f]+\)", log), log
