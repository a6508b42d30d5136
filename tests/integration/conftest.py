"""Fixtures for the single-node integration suite.

The broker under test is Sol (SOL_BIN, default build/sol) unless SOL_TEST_BROKER=mosquitto, in which
case the same tests run against Mosquitto 2.0 with an equivalent mosquitto.conf. Running the suite
against Mosquitto is how the tests themselves are validated.

Markers:
  sol_only            Sol-specific behaviour (flags, exit codes, config): skipped under Mosquitto.
  mosquitto_xfail(r)  Mosquitto deviates from the spec/issue here: xfail under Mosquitto only.
  soak                bounded stress case (seconds, not minutes).
"""
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import mqttraw  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROKER_KIND = os.environ.get("SOL_TEST_BROKER", "sol").lower()
IS_MOSQUITTO = BROKER_KIND == "mosquitto"
SOL_BIN = os.environ.get("SOL_BIN", os.path.join(REPO, "build", "sol"))
if not os.path.isabs(SOL_BIN):
    SOL_BIN = os.path.join(REPO, SOL_BIN)
MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer")


def pytest_configure(config):
    config.addinivalue_line("markers", "sol_only: Sol-specific behaviour, skipped under mosquitto")
    config.addinivalue_line("markers", "mosquitto_xfail(reason): expected to fail under mosquitto only")
    config.addinivalue_line("markers", "soak: bounded stress test")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if IS_MOSQUITTO and item.get_closest_marker("sol_only"):
            item.add_marker(pytest.mark.skip(reason="Sol-only behaviour"))
        m = item.get_closest_marker("mosquitto_xfail")
        if IS_MOSQUITTO and m:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "")
            item.add_marker(pytest.mark.xfail(reason="mosquitto: " + reason, strict=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the stderr of every broker the test started."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "_brokers", []):
            rep.sections.append((f"broker {b.kind} :{b.port} log", b.log()))


def free_port():
    """A port nobody listens on right now (bound then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def listening(host, port):
    """True if host:port is in LISTEN state (read from /proc/net/tcp, so that probing does not open
    a connection the broker would have to count and reap)."""
    want = "%s:%04X" % ("".join("%02X" % int(x) for x in reversed(host.split("."))), port)
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def wait_port(host, port, proc, deadline):
    """Poll until host:port is listening; False if the process exits first or at the deadline."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if listening(host, port):
            return True
        time.sleep(0.02)
    return False


def store_metrics(http_port, timeout=10.0):
    """{name: value} of the sol_store_* samples on the broker's /metrics at HOST:http_port; retried
    until timeout, since the HTTP endpoint may not listen yet right after the broker's MQTT port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen("http://%s:%d/metrics" % (HOST, http_port), timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "no /metrics on port %d" % http_port
            time.sleep(0.05)
    return {l.split()[0]: float(l.split()[1]) for l in text.decode().splitlines()
            if l.startswith("sol_store_")}


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond until it is true; fail naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(interval)


def make_password_file(path, users):
    """A password file made by the real mosquitto_passwd ($7$ PBKDF2-SHA512 hashes)."""
    first = True
    for user, pw in users.items():
        args = ["mosquitto_passwd", "-b"] + (["-c"] if first else []) + [path, user, pw]
        subprocess.run(args, check=True, capture_output=True, timeout=20)
        first = False


class Broker:
    """A running broker: host, port, proc; unpacks as (host, port, proc)."""

    def __init__(self, kind, host, port, proc, logpath, workdir):
        self.kind, self.host, self.port, self.proc = kind, host, port, proc
        self.logpath, self.workdir = logpath, workdir
        self.stopped = False  # stopped on purpose by the test (not a crash)

    def __iter__(self):
        return iter((self.host, self.port, self.proc))

    @property
    def addr(self):
        return (self.host, self.port)

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def raw(self, timeout=5.0):
        return mqttraw.RawClient(self.host, self.port, timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the broker and wait for it; returns the exit code."""
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self):
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def _sol_command(port, workdir, opts):
    args = [SOL_BIN, "--bind", HOST, "--port", str(port)]
    if opts.get("acl") is not None:
        path = os.path.join(workdir, "acl")
        with open(path, "w") as f:
            f.write(opts["acl"])
        args += ["--acl-file", path]
    if opts.get("passwords") is not None:
        path = os.path.join(workdir, "passwd")
        make_password_file(path, opts["passwords"])
        args += ["--password-file", path]
    if opts.get("allow_anonymous") is not None:
        args += ["--allow-anonymous", "true" if opts["allow_anonymous"] else "false"]
    for key, flag in (("max_packet_size", "--max-packet-size"), ("max_inflight", "--max-inflight"),
                      ("max_connections", "--max-connections"),
                      ("max_queued", "--max-queued"), ("sys_interval", "--sys-interval"),
                      ("max_qos", "--max-qos")):
        if opts.get(key) is not None:
            args += [flag, str(opts[key])]
    args += list(opts.get("extra_args", ()))
    return args


def _mosquitto_command(port, workdir, opts):
    lines = [f"listener {port} {HOST}", "persistence false", "log_dest stderr",
             # as root, mosquitto would drop to user "mosquitto", unable to read pytest's tmp dir
             "user " + pwd.getpwuid(os.getuid()).pw_name,
             "log_type error", "log_type warning", "log_type notice", "log_type information"]
    allow = opts.get("allow_anonymous")
    if allow is None:
        allow = True
    lines.append("allow_anonymous " + ("true" if allow else "false"))
    if opts.get("acl") is not None:
        path = os.path.join(workdir, "acl")
        with open(path, "w") as f:
            f.write(opts["acl"])
        lines.append(f"acl_file {path}")
    if opts.get("passwords") is not None:
        path = os.path.join(workdir, "passwd")
        make_password_file(path, opts["passwords"])
        lines.append(f"password_file {path}")
    for key, name in (("max_packet_size", "max_packet_size"),
                      ("max_connections", "max_connections"),
                      ("max_inflight", "max_inflight_messages"),
                      ("max_queued", "max_queued_messages"), ("sys_interval", "sys_interval")):
        if opts.get(key) is not None:
            lines.append(f"{name} {opts[key]}")
    if opts.get("sys_interval") is None:
        lines.append("sys_interval 0")
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return [MOSQUITTO_BIN, "-c", conf]


def start_broker(workdir, **opts):
    """Start the broker under test on a free port; wait until it accepts connections."""
    os.makedirs(workdir, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    # A test node is a cluster of one with no HTTP endpoint: no fixed ports to collide on.
    env["SOL_CLUSTER_PORT"] = "0"
    env["SOL_HTTP_PORT"] = "0"
    last_log = ""
    for attempt in range(3):
        port = opts.get("port") or free_port()
        if IS_MOSQUITTO:
            cmd = _mosquitto_command(port, workdir, opts)
        else:
            if not os.path.exists(SOL_BIN):
                pytest.fail(f"broker binary {SOL_BIN} not found (make build, or set SOL_BIN)")
            cmd = _sol_command(port, workdir, opts)
        logpath = os.path.join(workdir, f"broker-{port}.log")
        logf = open(logpath, "w")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        logf.close()
        b = Broker(BROKER_KIND, HOST, port, proc, logpath, workdir)
        if wait_port(HOST, port, proc, time.monotonic() + START_TIMEOUT):
            return b
        b.kill()
        last_log = b.log()
    pytest.fail(f"broker did not start: {' '.join(cmd)}\n{last_log}")


@pytest.fixture
def broker_factory(request, tmp_path):
    """start(**opts) -> Broker; options: acl, passwords, allow_anonymous, max_packet_size,
    max_inflight, max_queued, max_connections, sys_interval, extra_args (Sol only)."""
    started = []
    request.node._brokers = started

    def start(**opts):
        b = start_broker(str(tmp_path / f"b{len(started)}"), **opts)
        started.append(b)
        return b

    yield start
    problems = []
    for b in started:
        crashed = not b.alive() and not b.stopped
        if b.alive():
            # A graceful stop, so that sanitizer builds report leaks and errors at exit.
            try:
                code = b.stop(signal.SIGTERM, timeout=10)
                if code != 0:
                    problems.append(f"{b.kind} :{b.port} exit code {code} after SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append(f"{b.kind} :{b.port} did not exit within 10 s of SIGTERM")
        b.kill()
        log = b.log()
        if crashed:
            problems.append(f"{b.kind} :{b.port} exited by itself during the test "
                            f"(code {b.proc.returncode})")
        if any(m in log for m in SANITIZER_MARKERS):
            problems.append(f"{b.kind} :{b.port} sanitizer report")
        if problems:
            problems.append(log[-20000:])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    """A broker with default settings."""
    return broker_factory()


def client_factory(request, open_one):
    """The body of a client fixture: (make, made). make(target=None, *args, **kw) opens a client
    with open_one(target, *args, **kw) (target: the `broker` fixture unless given) and keeps it in
    made, for the fixture to close at teardown."""
    made = []

    def make(target=None, *args, **kw):
        if target is None:
            target = request.getfixturevalue("broker")
        c = open_one(target, *args, **kw)
        made.append(c)
        return c

    return make, made


@pytest.fixture
def raw(request):
    """raw(target=None, timeout=5) -> RawClient with a TCP connection (no MQTT yet) to target
    (default: the `broker` fixture). Closed at teardown."""
    make, made = client_factory(request, lambda target, timeout=5.0: target.raw(timeout))
    yield make
    for c in made:
        c.close()


@pytest.fixture
def paho(request):
    """paho(target=None, client_id=..., **kw) -> connected PahoClient; disconnected at teardown."""
    import mqttclients

    def open_one(target, client_id="", **kw):
        return mqttclients.PahoClient(target.host, target.port, client_id, **kw)

    make, made = client_factory(request, open_one)
    yield make
    for c in made:
        c.stop()
