"""The shipped docker-compose.yml, run for real on a Docker engine with no registry.

The image is assembled locally by deploy/local-image.sh (a root filesystem made of build/sol, its shared
libraries and bash, fed to `docker import`, with the runtime settings of deploy/Dockerfile), then the
compose file runs unchanged with SOL_IMAGE pointing at it, on its own project (network and volumes), with
the host ports moved to free ones on 127.0.0.1. Traffic goes only to those published ports and to the
project's private network.

Where no Docker engine answers, every test here is skipped with the reason; none passes.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from .deploy_helpers import REPO, Collector, free_port, http_get, publish_once, sol_bin, view_is, wait_for

NODES = ("sol1", "sol2", "sol3")
CONVERGE_S = 20  # containers starting from cold, then gossip
HOST = "127.0.0.1"


def run(cmd, timeout=120, check=True, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    return out


def docker_engine():
    """None when a Docker engine answers, else the reason it does not."""
    if not shutil.which("docker"):
        return "the docker command is not installed"
    try:
        out = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if out.returncode != 0 or not out.stdout.strip():
        return f"no Docker engine answers: {out.stderr.strip()[:300]}"
    return None


def compose_tool():
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def container_project(name):
    """The compose project label of container name, "" when unlabelled, None when there is no container."""
    out = subprocess.run(
        ["docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.project"}}', name],
        capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


class Cluster:
    """The compose project under test: its ports, and commands on it."""

    def __init__(self, tool, project, env):
        self.tool, self.project, self.env = tool, project, env
        self.mqtt = {n: int(env[f"{n.upper()}_MQTT_PORT"]) for n in NODES}
        self.http = {n: int(env[f"{n.upper()}_HTTP_PORT"]) for n in NODES}
        self.network = f"{project}_default"

    def compose(self, *args, timeout=180, check=True):
        return run([*self.tool, "-p", self.project, "-f", os.path.join(REPO, "docker-compose.yml"), *args],
                   timeout=timeout, check=check, env=self.env)

    def wait_states(self, observers, expected, timeout, what):
        """Poll each observer's /cluster until it shows expected ({name: state}); return the time taken."""
        start = time.monotonic()
        for obs in observers:
            left = max(0.1, timeout - (time.monotonic() - start))
            wait_for(lambda: view_is(HOST, self.http[obs], expected), left, 0.05,
                     f"{obs} to see {expected} ({what})")
        return time.monotonic() - start

    def wait_all_alive(self, timeout=CONVERGE_S):
        return self.wait_states(NODES, {n: "alive" for n in NODES}, timeout, "all alive")

    def logs(self):
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout[-6000:]


@pytest.fixture(scope="module")
def cluster():
    reason = docker_engine()
    if reason:
        pytest.skip(reason)
    tool = compose_tool()
    if tool is None:
        pytest.skip("a Docker engine answers but neither `docker compose` nor `docker-compose` is installed")
    binary = sol_bin() if not os.environ.get("SOL_TEST_IMAGE") else None

    project = f"solt{os.getpid()}"
    # SOL_TEST_IMAGE: run an image built elsewhere (e.g. from deploy/Dockerfile) instead of assembling one.
    given = os.environ.get("SOL_TEST_IMAGE")
    tag = given or f"sol-test:{os.getpid()}"
    # container_name is fixed (sol1..sol3): remove leftovers of an earlier run of this test, and never
    # touch containers of that name that belong to anything else.
    for name in NODES:
        owner = container_project(name)
        if owner is None:
            continue
        if owner.startswith("solt") and owner[4:].isdigit():
            run(["docker", "rm", "-f", "-v", name], check=False)
            for vol in ("sol1-data", "sol2-data", "sol3-data"):
                run(["docker", "volume", "rm", f"{owner}_{vol}"], check=False)
            run(["docker", "network", "rm", f"{owner}_default"], check=False)
        else:
            pytest.skip(f"a container named {name} exists (project {owner!r}) and is not ours to remove")

    # Images of earlier runs of this test that were killed before their finalizer ran.
    for ref in run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "sol-test"]).stdout.split():
        pid = ref.rsplit(":", 1)[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            run(["docker", "rmi", "-f", ref], check=False)

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL")}
    secrets = tempfile.mkdtemp(prefix="sol-secrets-")
    run([os.path.join(REPO, "deploy", "make-secrets.sh"), secrets])
    env.update(SOL_IMAGE=tag, SOL_PUBLISH_ADDR=HOST, SOL_LOG_LEVEL="debug", SOL_SECRETS_DIR=secrets)
    for n in NODES:
        env[f"{n.upper()}_MQTT_PORT"] = str(free_port(HOST))
        env[f"{n.upper()}_HTTP_PORT"] = str(free_port(HOST))
    c = Cluster(tool, project, env)
    try:
        if not given:
            run([os.path.join(REPO, "deploy", "local-image.sh"), binary, tag], timeout=120)
        up = ["up", "-d", "--no-build"]
        if tool == ["docker", "compose"]:
            up += ["--pull", "never"]
        c.compose(*up, timeout=300)
        yield c
    finally:
        c.compose("down", "-v", "--remove-orphans", "-t", "10", timeout=300, check=False)
        if not given:
            run(["docker", "rmi", "-f", tag], check=False)
        shutil.rmtree(secrets, ignore_errors=True)


def test_image_matches_the_dockerfile_runtime_settings(cluster):
    conf = json.loads(run(["docker", "image", "inspect", cluster.env["SOL_IMAGE"], "--format",
                           "{{json .Config}}"]).stdout)
    assert conf["Entrypoint"] == ["/usr/local/bin/sol"]
    assert conf["User"].split(":")[0] == "10001"
    assert {"1883/tcp", "7946/tcp", "7946/udp", "8080/tcp"} <= set(conf["ExposedPorts"])
    assert "/var/lib/sol" in conf["Volumes"]


def test_nodes_start_non_root_and_serve(cluster):
    for n in NODES:
        wait_for(lambda: http_get(HOST, cluster.http[n], "/healthz")[0] == 200, CONVERGE_S, 0.1,
                 f"{n} /healthz on its published port")
        # The process runs as the image's non-root user and can write its state volume.
        out = run(["docker", "exec", n, "/bin/bash", "-c",
                   "while read -r k v _; do [ \"$k\" = Uid: ] && echo \"$v\"; done </proc/1/status; "
                   ": >/var/lib/sol/.write-probe && echo writable"]).stdout.split()
        assert out == ["10001", "writable"], out
        # The probe the compose healthcheck uses works inside the image.
        wait_for(lambda: run(["docker", "exec", n, "/usr/local/bin/sol-http", "/healthz"], check=False)
                 .returncode == 0, 10, 0.2, f"sol-http /healthz inside {n}")
    for n in NODES:
        publish_once(HOST, cluster.mqtt[n], f"deploy/hello/{n}", b"hi")


def test_three_alive_members_on_every_node(cluster):
    try:
        took = cluster.wait_all_alive()
    except AssertionError:
        print(cluster.logs())
        raise
    for n in NODES:
        assert json.loads(http_get(HOST, cluster.http[n], "/cluster")[1])["self"] == n
    # Docker's own view agrees: the compose healthchecks (/readyz) turn healthy.
    for n in NODES:
        wait_for(lambda: run(["docker", "inspect", "-f", "{{.State.Health.Status}}", n]).stdout.strip()
                 == "healthy", 30, 0.5, f"{n} healthy by its /readyz healthcheck")
    print(f"converged in {took:.2f}s")


def test_publish_on_sol1_received_on_sol3(cluster):
    cluster.wait_all_alive()
    topic = f"deploy/cross/{uuid.uuid4().hex}"
    sub = Collector(HOST, cluster.mqtt["sol3"], f"sub-{uuid.uuid4().hex[:8]}", [topic])
    try:
        # A subscription needs a moment to reach sol1; republish until it arrives (bounded).
        def delivered():
            publish_once(HOST, cluster.mqtt["sol1"], topic, b"from-sol1")
            return wait_ok(lambda: b"from-sol1" in sub.payloads(topic), 0.5)
        wait_for(delivered, 10, 0, "a message published on sol1 to reach a subscriber on sol3")
    finally:
        sub.close()


def wait_ok(pred, timeout):
    try:
        wait_for(pred, timeout, 0.02)
        return True
    except AssertionError:
        return False


def test_kill_sol2_marked_dead_within_5s(cluster):
    cluster.wait_all_alive()
    run(["docker", "kill", "sol2"])
    try:
        took = cluster.wait_states(("sol1", "sol3"), {"sol2": "dead"}, 5.0, "sol2 killed")
        print(f"sol2 marked dead by both after {took:.2f}s")
    finally:
        run(["docker", "start", "sol2"])
    cluster.wait_all_alive()


def flows(cluster, src, dst, timeout=10):
    topic = f"deploy/flow/{uuid.uuid4().hex}"
    sub = Collector(HOST, cluster.mqtt[dst], f"sub-{uuid.uuid4().hex[:8]}", [topic])
    try:
        def delivered():
            publish_once(HOST, cluster.mqtt[src], topic, src.encode())
            return wait_ok(lambda: src.encode() in sub.payloads(topic), 0.5)
        wait_for(delivered, timeout, 0, f"a message from {src} to reach {dst}")
    finally:
        sub.close()


def test_network_partition_heals(cluster):
    cluster.wait_all_alive()
    run(["docker", "network", "disconnect", cluster.network, "sol3"])
    try:
        # Cut off: the others stop seeing sol3 alive.
        cluster.wait_states(("sol1",), {"sol3": "dead"}, 15, "sol3 cut off")
    finally:
        run(["docker", "network", "connect", "--alias", "sol3", cluster.network, "sol3"])
    took = cluster.wait_all_alive(30)
    print(f"healed in {took:.2f}s")
    flows(cluster, "sol1", "sol3")
    flows(cluster, "sol3", "sol1")


def test_stop_marks_left_and_restart_rejoins_with_retained(cluster):
    cluster.wait_all_alive()
    before = f"deploy/retained/before/{uuid.uuid4().hex}"
    during = f"deploy/retained/during/{uuid.uuid4().hex}"
    publish_once(HOST, cluster.mqtt["sol1"], before, b"set-before-stop", retain=True)
    # sol3 has it before it stops (retained messages are replicated to every node).
    wait_for(lambda: retained_on(cluster, "sol3", before) == b"set-before-stop", 10, 0.2,
             "the retained message to reach sol3")

    cluster.compose("stop", "sol3", timeout=120)
    state = json.loads(run(["docker", "inspect", "-f", "{{json .State}}", "sol3"]).stdout)
    assert state["Running"] is False and state["ExitCode"] == 0, state
    cluster.wait_states(("sol1", "sol2"), {"sol3": "left"}, 5, "sol3 stopped")

    publish_once(HOST, cluster.mqtt["sol2"], during, b"set-while-down", retain=True)
    cluster.compose("start", "sol3", timeout=120)
    cluster.wait_all_alive()
    wait_for(lambda: retained_on(cluster, "sol3", before) == b"set-before-stop", 10, 0.2,
             "sol3 to have the retained message set before it stopped")
    wait_for(lambda: retained_on(cluster, "sol3", during) == b"set-while-down", 10, 0.2,
             "sol3 to have the retained message set while it was down")


def retained_on(cluster, node, topic):
    """The retained payload a new subscriber on node gets for topic, or None."""
    sub = Collector(HOST, cluster.mqtt[node], f"ret-{uuid.uuid4().hex[:8]}", [topic])
    try:
        if wait_ok(lambda: sub.payloads(topic), 1.0):
            return sub.payloads(topic)[0]
        return None
    finally:
        sub.close()


def test_restarted_node_has_retained_messages_once_ready(cluster):
    """What Kubernetes does: route clients to a pod as soon as /readyz says 200. A client subscribing then
    must get the retained messages."""
    cluster.wait_all_alive()
    topic = f"deploy/retained/ready/{uuid.uuid4().hex}"
    publish_once(HOST, cluster.mqtt["sol1"], topic, b"kept", retain=True)
    wait_for(lambda: retained_on(cluster, "sol3", topic) == b"kept", 10, 0.2, "the retained message on sol3")
    cluster.compose("stop", "sol3", timeout=120)
    cluster.compose("start", "sol3", timeout=120)
    wait_for(lambda: http_get(HOST, cluster.http["sol3"], "/readyz")[0] == 200, CONVERGE_S, 0.02, "sol3 ready")
    sub = Collector(HOST, cluster.mqtt["sol3"], f"ready-{uuid.uuid4().hex[:8]}", [topic])
    try:
        assert wait_ok(lambda: sub.payloads(topic) == [b"kept"], 3), "no retained message for a subscriber on a ready node"
    finally:
        sub.close()


def test_image_runs_under_the_statefulsets_security_context(cluster):
    """deploy/k8s/statefulset.yaml runs the image with a read-only root filesystem, no capabilities, no
    privilege escalation, uid 10001 and an emptyDir at /tmp; its volume at /var/lib/sol is writable for
    the pod (fsGroup): the node must serve like that."""
    name, http = f"sol-ro-{os.getpid()}", free_port(HOST)
    run(["docker", "run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
         "--security-opt", "no-new-privileges", "--user", "10001:10001", "--tmpfs", "/tmp",
         "--tmpfs", "/var/lib/sol:uid=10001,gid=10001,mode=0750", "-p", f"{HOST}:{http}:8080",
         "-e", "SOL_NODE_NAME=ro", cluster.env["SOL_IMAGE"]])
    try:
        try:
            wait_for(lambda: http_get(HOST, http, "/readyz")[0] == 200, 15, 0.05,
                     "/readyz of the read-only node")
        except AssertionError as e:
            logs = run(["docker", "logs", name], check=False)
            raise AssertionError("%s\n%s%s" % (e, logs.stdout, logs.stderr))
        run(["docker", "exec", name, "sleep", "0"])  # the preStop hook's command exists in the image
        run(["docker", "stop", "-t", "10", name])
        assert run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name]).stdout.strip() == "0"
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)
