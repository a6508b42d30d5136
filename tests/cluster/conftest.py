"""Fixtures for multi-node tests: real `sol` processes, each on its own loopback address, inside a private
network namespace the test creates (and deletes), so partitions and DNS names can be simulated freely.

    def test_x(cluster):
        n1, n2, n3 = cluster.start_nodes(3)           # all seeded with each other, ready (/readyz 200)
        cluster.wait_until(lambda: cluster.all_see(cluster.nodes, "alive"), 3, "all alive")
        n2.kill()                                      # SIGKILL; also stop() (SIGTERM), pause()/resume()
        cluster.isolate(n3); ...; cluster.heal()       # partition one node, then heal
        n1.members()                                   # {"n2": {"state": "dead", "address": ..}, ...}

Nodes get addresses 127.0.1.1, 127.0.1.2, ... and all use the same three ports (MQTT, cluster, HTTP), as
pods of a StatefulSet do, so one DNS name (cluster.set_hosts) with several addresses can seed them all.
The test process talks from 127.0.0.1, which partitions never cut.

Every process is killed in a finalizer, also when the test fails; on failure each node's log is attached
to the report. Root is required (namespaces, iptables): without it the tests are skipped with the reason.
Measured figures (cluster.figure(name, value)) are printed at the end of the run and appended to
$SOL_FIGURES_FILE if set.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import netns as netns_mod  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SOL_BIN = os.environ.get("SOL_BIN", os.path.join(REPO, "build", "sol"))
if not os.path.isabs(SOL_BIN):
    SOL_BIN = os.path.join(REPO, SOL_BIN)
READY_TIMEOUT = 10.0
CLIENT_ADDR = "127.0.0.1"

_FIGURES = []


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs for a minute or more")


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("Sol cluster figures")
    for name, value, unit in _FIGURES:
        terminalreporter.write_line("%-60s %10.3f %s" % (name, value, unit))


def record_figure(name, value, unit="s"):
    """Keep a measured figure for the end-of-run summary (and $SOL_FIGURES_FILE)."""
    _FIGURES.append((name, float(value), unit))
    path = os.environ.get("SOL_FIGURES_FILE")
    if path:
        with open(path, "a") as f:
            f.write("%s\t%.3f\t%s\n" % (name, value, unit))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every node's log."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        cl = getattr(item, "_sol_cluster", None)
        for node in cl.all_nodes if cl else []:
            rc = node.proc.poll()
            status = "running" if rc is None else ("killed by signal %d" % -rc if rc < 0 else
                                                   "exited with %d" % rc)
            rep.sections.append(("node %s (%s) log, %s" % (node.name, node.addr, status),
                                 node.log_tail()))
            stacks = node.stacks()
            if stacks:
                rep.sections.append(("node %s (%s) threads" % (node.name, node.addr), stacks))


def wait_until(predicate, timeout, what="condition", interval=0.05):
    """Poll predicate until it is true; return the seconds it took. AssertionError after timeout."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def _free_port(addr, taken):
    """A port free for TCP and UDP on addr (the cluster port is both: gossip and nng)."""
    while True:
        with socket.socket() as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
        if port in taken:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((addr, port))
        except OSError:
            continue
        taken.add(port)
        return port


class Node:
    """One sol process. Its stderr goes to a log file; HTTP is reached at addr:http_port."""

    starts = 0

    def __init__(self, cluster, name, addr, seeds, extra_args):
        self.cluster = cluster
        self.name = name
        self.addr = addr
        self.mqtt_port = cluster.mqtt_port
        self.cluster_port = cluster.cluster_port
        self.http_port = cluster.http_port
        self.seeds = seeds
        self.log_path = os.path.join(cluster.tmpdir, "%s-%s.log" % (name, addr))
        argv = [SOL_BIN, "--bind", addr, "--port", str(self.mqtt_port), "--node-name", name,
                "--cluster-bind", addr, "--cluster-port", str(self.cluster_port),
                "--http-port", str(self.http_port)]
        if seeds:
            argv += ["--seeds", seeds]
        if "--data-dir" not in extra_args:  # each process its own store unless a test shares one
            Node.starts += 1
            argv += ["--data-dir", os.path.join(cluster.tmpdir, "data-%s-%s-%d" % (name, addr, Node.starts))]
        argv += list(extra_args)
        self.argv = argv
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cluster.ns.exec_argv(argv), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.paused = False
        self.started_at = time.monotonic()

    @property
    def cluster_addr(self):
        return "%s:%d" % (self.addr, self.cluster_port)

    @property
    def running(self):
        return self.proc.poll() is None

    def log_tail(self, n=200):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    # ---- HTTP ----

    def get(self, path, timeout=1.0):
        """(status, body) of GET path, or (None, None) if the node does not answer."""
        conn = http.client.HTTPConnection(self.addr, self.http_port, timeout=timeout,
                                          source_address=(CLIENT_ADDR, 0))
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            return None, None
        finally:
            conn.close()

    def cluster_view(self):
        """The parsed /cluster document, or None."""
        status, body = self.get("/cluster")
        if status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def members(self):
        """{name: {"state", "address", "incarnation"}} from /cluster, or None if unreachable."""
        view = self.cluster_view()
        if view is None:
            return None
        return {m["name"]: m for m in view.get("members", [])}

    def states(self):
        """{name: state} from /cluster, or None."""
        mem = self.members()
        return None if mem is None else {k: v["state"] for k, v in mem.items()}

    def metric(self, name):
        """Sum of every sample of a Prometheus metric from /metrics (any labels), or None if absent."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        total = None
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("#"):
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) == 2 and (parts[0] == name or parts[0].startswith(name + "{")):
                total = (total or 0.0) + float(parts[1])
        return total

    def ready(self):
        return self.get("/readyz")[0] == 200

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError("node %s exited with %s before it was ready:\n%s"
                                     % (self.name, self.proc.returncode, self.log_tail(40)))
            if self.ready():
                return
            time.sleep(0.05)
        raise AssertionError("node %s not ready within %.0f s:\n%s"
                             % (self.name, timeout, self.log_tail(40)))

    # ---- signals ----

    def signal(self, sig):
        if self.running:
            self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL, and reap."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout=10):
        """SIGTERM (announce leave, exit 0); returns the exit code."""
        if self.paused:
            self.resume()
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def stacks(self):
        """Every thread's stack of a node still running (a hung loop names itself), or "" without gdb."""
        if not self.running or self.paused:
            return ""
        try:
            out = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                                  "-ex", "thread apply all bt 20"], stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=30, text=True)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        # One block per thread; the loop thread (LWP = pid) first, threads parked in a condition wait
        # (libuv's pool, nng's task queues) only counted, so a CI log's excerpt keeps what matters.
        blocks, cur = [], None
        for line in out.stdout.splitlines():
            if line.startswith("Thread "):
                cur = [line]
                blocks.append(cur)
            elif line.startswith("#") and cur is not None:
                cur.append(line)
        main = "(LWP %d)" % self.proc.pid
        blocks.sort(key=lambda b: main not in b[0])
        idle = [b for b in blocks[1:] if any("pthread_cond_wait" in l or "epoll_wait" in l for l in b)]
        shown = [b for b in blocks if b not in idle]
        text = "\n".join("\n".join(b) for b in shown)
        return text + "\n(%d more threads parked in a condition or epoll wait)" % len(idle)

    def close(self):
        if self.running:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()


class Cluster:
    """The nodes of one test, in one namespace. See the module docstring."""

    def __init__(self, ns, tmpdir):
        self.ns = ns
        self.tmpdir = tmpdir
        self.all_nodes = []  # every process started, for cleanup and logs
        self.nodes = []      # the current incarnation of each name
        taken = set()
        self.mqtt_port = _free_port(CLIENT_ADDR, taken)
        self.cluster_port = _free_port(CLIENT_ADDR, taken)
        self.http_port = _free_port(CLIENT_ADDR, taken)
        self._next_host = 1

    def figure(self, name, value, unit="s"):
        record_figure(name, value, unit)

    wait_until = staticmethod(wait_until)

    def next_addr(self):
        addr = "127.0.1.%d" % self._next_host
        self._next_host += 1
        return addr

    def seeds_for(self, addrs):
        return ",".join("%s:%d" % (a, self.cluster_port) for a in addrs)

    def start_node(self, name, seeds=None, extra_args=(), addr=None, wait_ready=True):
        """Start one node (a fresh address unless addr is given). seeds is a seeds string, or a list of
        Nodes/addresses to seed with; None = no seeds."""
        addr = addr or self.next_addr()
        if isinstance(seeds, (list, tuple)):
            seeds = self.seeds_for([s.addr if isinstance(s, Node) else s for s in seeds])
        node = Node(self, name, addr, seeds, extra_args)
        self.all_nodes.append(node)
        self.nodes = [n for n in self.nodes if n.name != name] + [node]
        if wait_ready:
            node.wait_ready()
        return node

    def start_nodes(self, count, names=None, seeds="all", extra_args=(), wait_ready=True):
        """Start count nodes at once, each seeded with every one of them (seeds="all"), or with the
        given seeds string; then wait until each is ready."""
        names = names or ["n%d" % (i + 1) for i in range(count)]
        addrs = [self.next_addr() for _ in names]
        seed_str = self.seeds_for(addrs) if seeds == "all" else seeds
        started = [self.start_node(n, seed_str, extra_args, addr=a, wait_ready=False)
                   for n, a in zip(names, addrs)]
        if wait_ready:
            for n in started:
                n.wait_ready()
        return started

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def set_hosts(self, name, addrs):
        """Make a DNS name resolve (inside the namespace) to these addresses or nodes."""
        self.ns.set_hosts(name, [a.addr if isinstance(a, Node) else a for a in addrs])

    # ---- views ----

    @staticmethod
    def sees(observer, name, state):
        """True if observer's /cluster lists name in state."""
        st = observer.states()
        return st is not None and st.get(name) == state

    def all_see(self, nodes, state="alive", names=None):
        """True if each node lists every one of names (default: the nodes' names) in state, and nothing
        else alive that is not expected."""
        names = set(names if names is not None else [n.name for n in nodes])
        for obs in nodes:
            st = obs.states()
            if st is None or any(st.get(n) != state for n in names):
                return False
        return True

    def converged(self, nodes=None):
        """Every node lists exactly the given nodes, all alive."""
        nodes = nodes or self.nodes
        want = {n.name for n in nodes}
        for obs in nodes:
            st = obs.states()
            if st is None:
                return False
            alive = {k for k, v in st.items() if v == "alive"}
            if alive != want:
                return False
        return True

    # ---- partitions ----

    def partition(self, side_a, side_b):
        """Cut every node of side_a off from every node of side_b (both directions)."""
        self.ns.cut([n.addr for n in side_a], [n.addr for n in side_b])

    def isolate(self, node):
        """Cut one node off from all the others."""
        self.partition([node], [n for n in self.nodes if n is not node])

    def heal(self):
        self.ns.heal()

    def close(self):
        for n in self.all_nodes:
            n.close()

    def sanitizer_reports(self):
        """Lines of AddressSanitizer / UBSan / LeakSanitizer reports in any node's log (a sanitizer build
        keeps running tests green otherwise: a report must fail the test)."""
        found = []
        for n in self.all_nodes:
            for line in n.log_tail(100000).splitlines():
                if "Sanitizer" in line or "runtime error:" in line:
                    found.append("%s: %s" % (n.name, line))
        return found


@pytest.fixture
def cluster(request):
    """A Cluster in a private network namespace; everything is torn down afterwards."""
    reason = netns_mod.unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not os.access(SOL_BIN, os.X_OK):
        pytest.fail("no sol binary at %s (build it, or set SOL_BIN)" % SOL_BIN)
    ns = netns_mod.NetNS("sol-test-%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000))
    tmpdir = tempfile.mkdtemp(prefix="sol-cluster-")
    cl = None
    try:
        try:
            ns.create()
            ns.enter()
        except (OSError, subprocess.SubprocessError) as e:
            ns.delete()
            pytest.skip("cannot create a network namespace here: %s" % e)
        cl = Cluster(ns, tmpdir)
        request.node._sol_cluster = cl
        yield cl
    finally:
        reports = []
        if cl:
            cl.close()
            reports = cl.sanitizer_reports()
        ns.delete()
        # Node logs are attached to a failed test's report before teardown; the stores (RocksDB
        # preallocates its log: tens of MB a node) must not pile up over a whole run.
        shutil.rmtree(tmpdir, ignore_errors=True)
    assert not reports, "sanitizer reports in node logs:\n" + "\n".join(reports[:20])


class MqttLoad:
    """Steady MQTT load: a paho client per node publishing QoS 1 messages at `rate` per second each, on a
    background thread, until stop(). Counts what it published."""

    def __init__(self, nodes, rate=200, payload=b"x" * 100, topic="load/%s"):
        import paho.mqtt.client as mqtt
        self.published = 0
        self.errors = 0
        self._stop = threading.Event()
        self._clients = []
        for i, n in enumerate(nodes):
            c = mqtt.Client(client_id="load-%s-%d" % (n.name, i), clean_session=True)
            c.max_inflight_messages_set(100)
            c.connect(n.addr, n.mqtt_port, keepalive=30)
            c.subscribe(topic % "#", qos=1)
            c.loop_start()
            self._clients.append((c, topic % n.name))
        self._rate = rate
        self._payload = payload
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        period = 1.0 / self._rate
        nxt = time.monotonic()
        while not self._stop.is_set():
            for c, topic in self._clients:
                info = c.publish(topic, self._payload, qos=1)
                if info.rc == 0:
                    self.published += 1
                else:
                    self.errors += 1
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for c, _ in self._clients:
            c.loop_stop()
            c.disconnect()
