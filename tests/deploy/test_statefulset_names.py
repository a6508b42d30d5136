"""The StatefulSet's naming scheme, exercised without Kubernetes.

Three nodes run in a network namespace of their own, configured with the environment the pods of
deploy/k8s/statefulset.yaml get (ConfigMap, then the container's env with fieldRefs and $(VAR) references
filled in as the kubelet does), where the Kubernetes DNS names resolve to the nodes' own addresses: `ip netns
exec` bind-mounts /etc/netns/NS/hosts over /etc/hosts, which maps sol-N.sol-headless.default.svc.cluster.local
to 127.0.0.(N+1) and the headless Service's name to all three, as cluster DNS does for a headless Service.
"""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml

from .deploy_helpers import REPO, sol_bin, wait_for

K8S = os.path.join(REPO, "deploy", "k8s")
NAMESPACE = "default"
PODS = ("sol-0", "sol-1", "sol-2")
ADDR = {p: f"127.0.0.{i + 1}" for i, p in enumerate(PODS)}
JOIN_S = 3.0  # the cluster issue: all alive within 3 s with default settings


def fqdn(name):
    return f"{name}.{NAMESPACE}.svc.cluster.local"


_SECRETS = []


def secrets_dir():
    """The Secret sol-cluster-secrets as its volume shows it: made once by deploy/make-secrets.sh for
    the three pod names."""
    if not _SECRETS:
        d = tempfile.mkdtemp(prefix="sol-secrets-")
        subprocess.run([os.path.join(K8S, "..", "make-secrets.sh"), d, *PODS], check=True,
                       capture_output=True)
        _SECRETS.append(d)
    return _SECRETS[0]


def pod_environment(pod):
    """The SOL_* environment the kubelet gives container "sol" of pod, from the manifests (the
    Secret's mount point is a local directory of the same files)."""
    with open(os.path.join(K8S, "statefulset.yaml")) as f:
        sts = yaml.safe_load(f)
    with open(os.path.join(K8S, "configmap.yaml")) as f:
        cm = yaml.safe_load(f)
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = {}
    for src in c.get("envFrom", []):
        assert src["configMapRef"]["name"] == cm["metadata"]["name"]
        env.update(cm["data"])
    fields = {"metadata.name": pod, "metadata.namespace": NAMESPACE, "status.podIP": ADDR[pod]}
    for e in c["env"]:
        if "valueFrom" in e:
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[e["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)),
                                    e["value"])
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    secret = mounts["cluster-secrets"] + "/"
    for k, v in env.items():
        if v.startswith(secret):
            env[k] = os.path.join(secrets_dir(), v[len(secret):])
    return env


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip"):
        pytest.skip("iproute2 (ip) is not installed")
    # Namespaces of earlier runs that were killed before cleaning up.
    for stale in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        m = re.fullmatch(r"solsts(\d+)", stale)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["ip", "netns", "del", stale], capture_output=True)
            shutil.rmtree(f"/etc/netns/{stale}", ignore_errors=True)
    name = f"solsts{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {out.stderr.strip()}")
    etc = f"/etc/netns/{name}"
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        # The pod addresses as addresses of this host (not only routable through lo's 127.0.0.1/8): without an
        # IPv4 address other than 127.0.0.1, getaddrinfo's AI_ADDRCONFIG would find no IPv4 name at all.
        for addr in list(ADDR.values())[1:]:
            subprocess.run(["ip", "-n", name, "addr", "add", f"{addr}/32", "dev", "lo"], check=True)
        os.makedirs(etc, exist_ok=True)
        lines = ["127.0.0.1 localhost"]
        for pod in PODS:
            lines.append(f"{ADDR[pod]} {fqdn(pod + '.sol-headless')} {fqdn('sol-headless')}")
        with open(f"{etc}/hosts", "w") as f:
            f.write("\n".join(lines) + "\n")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def in_ns(ns, *cmd, timeout=5):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


def cluster_view(ns, pod, http_port):
    import json

    out = in_ns(ns, "curl", "-s", "-m", "1", f"http://{ADDR[pod]}:{http_port}/cluster")
    if out.returncode != 0:
        raise AssertionError(f"{pod}: curl exited {out.returncode}")
    doc = json.loads(out.stdout)
    return doc["self"], {m["name"]: (m["state"], m["address"]) for m in doc["members"]}


def pod_env(pod):
    """The environment of pod's process here: the manifests' SOL_* (pod_environment), a data directory
    of its own, and its pod IP to bind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env.update(pod_environment(pod))
    # every pod has its own volume at /var/lib/sol: here, its own directory
    env["SOL_DATA_DIR"] = tempfile.mkdtemp(prefix="sol-%s-" % pod)
    # Each pod has its own network namespace, where 0.0.0.0 means its pod IP; these pods share
    # one namespace, so each binds its pod IP instead.
    env["SOL_BIND"] = ADDR[pod]
    return env


def start_pod(procs, ns, tmp_path, pod, env):
    """Run sol as pod inside ns with env, its output in tmp_path/POD.log; recorded in procs."""
    log = open(tmp_path / f"{pod}.log", "wb")
    procs[pod] = (subprocess.Popen(["ip", "netns", "exec", ns, sol_bin()], env=env, stdout=log,
                                   stderr=subprocess.STDOUT), log)


@contextlib.contextmanager
def running_pods():
    """A dict for start_pod to fill. When an assertion fails, every pod's log tail is printed; at the
    end every pod is stopped (SIGTERM, SIGKILL after 10 s)."""
    procs = {}
    try:
        yield procs
    except AssertionError:
        for pod, (p, log) in procs.items():
            log.flush()
            print(f"--- {pod}\n" + open(log.name, "rb").read()[-2000:].decode(errors="replace"))
        raise
    finally:
        for p, log in procs.values():
            p.terminate()
        for p, log in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()


@pytest.mark.parametrize("seeds", ["statefulset", "pod-names"])
def test_statefulset_names_as_seeds(netns, tmp_path, seeds):
    # The names resolve inside the namespace as cluster DNS would resolve them.
    out = in_ns(netns, "getent", "ahostsv4", fqdn("sol-headless"))
    assert {l.split()[0] for l in out.stdout.splitlines()} == set(ADDR.values()), out.stdout

    with running_pods() as procs:
        for pod in PODS:
            env = pod_env(pod)
            if seeds == "pod-names":
                port = env["SOL_CLUSTER_PORT"]
                env["SOL_SEEDS"] = ",".join(f"{fqdn(p + '.sol-headless')}:{port}" for p in PODS)
            else:
                assert env["SOL_SEEDS"] == f"{fqdn('sol-headless')}:7946"
            start_pod(procs, netns, tmp_path, pod, env)
        started = time.monotonic()
        http_port = pod_environment(PODS[0])["SOL_HTTP_PORT"]

        def all_alive(pod):
            self_name, members = cluster_view(netns, pod, http_port)
            assert self_name == pod
            states = {n: s for n, (s, _) in members.items()}
            if states == {p: "alive" for p in PODS}:
                return members
            raise AssertionError(f"{pod} sees {states}")

        for pod in PODS:
            left = JOIN_S - (time.monotonic() - started)
            members = wait_for(lambda: all_alive(pod), max(left, 0.05), 0.05,
                               f"{pod} to see all three alive within {JOIN_S}s")
            # Each member is known at its own pod address.
            assert {n: a.rsplit(":", 1)[0] if ":" in a else a for n, (_, a) in members.items()} == ADDR
        print(f"{seeds}: all alive on all after {time.monotonic() - started:.2f}s")


def write_hosts(ns, headless_addrs):
    """Rewrite the namespace's hosts file in place (the bind mount follows the inode): pod names for all
    pods, the headless Service name for headless_addrs only, as cluster DNS answers while pods start."""
    lines = ["127.0.0.1 localhost"]
    for pod in PODS:
        names = [fqdn(pod + ".sol-headless")]
        if ADDR[pod] in headless_addrs:
            names.append(fqdn("sol-headless"))
        lines.append(f"{ADDR[pod]} {' '.join(names)}")
    with open(f"/etc/netns/{ns}/hosts", "w") as f:
        f.write("\n".join(lines) + "\n")


def test_pods_started_alone_find_each_other_when_dns_catches_up(netns, tmp_path):
    """sol-0 and sol-1 start while the headless name resolves, for each, only to itself (DNS lagging behind
    the pods); once it resolves to both, they find each other by re-resolving the seed name."""
    pods = PODS[:2]
    with running_pods() as procs:
        for pod in pods:
            write_hosts(netns, {ADDR[pod]})
            env = pod_env(pod)
            start_pod(procs, netns, tmp_path, pod, env)
            http_port = env["SOL_HTTP_PORT"]
            wait_for(lambda: cluster_view(netns, pod, http_port)[0] == pod, 5, 0.05, f"{pod} serving")
        # Each is alone.
        for pod in pods:
            assert set(cluster_view(netns, pod, http_port)[1]) == {pod}
        write_hosts(netns, {ADDR[p] for p in pods})
        t0 = time.monotonic()
        dns_s = int(pod_environment(pods[0])["SOL_DNS_INTERVAL_MS"]) / 1000
        for pod in pods:
            wait_for(lambda: {n: s for n, (s, _) in cluster_view(netns, pod, http_port)[1].items()}
                     == {p: "alive" for p in pods}, dns_s + JOIN_S, 0.05, f"{pod} to find the other")
        print(f"found each other {time.monotonic() - t0:.2f}s after the name resolved to both")
