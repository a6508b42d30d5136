"""deploy/k8s: validated offline against the Kubernetes JSON schemas (kubernetes-validate bundles them), and the
fields the deploy issue requires checked one by one: the StatefulSet, headless and client Services, PDB and
ConfigMap agree with each other and with the container image."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from .deploy_helpers import REPO, sol_bin

K8S = os.path.join(REPO, "deploy", "k8s")

kv = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed: run deploy/install-deps.sh"
)


def load_all():
    """Every manifest listed in kustomization.yaml, as {(kind, name): document}."""
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    docs = {}
    for res in kust["resources"]:
        with open(os.path.join(K8S, res)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return kust, docs


@pytest.fixture(scope="module")
def manifests():
    return load_all()


@pytest.fixture(scope="module")
def sts(manifests):
    return manifests[1][("StatefulSet", "sol")]


@pytest.fixture(scope="module")
def container(sts):
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def env_of(container):
    return {e["name"]: e for e in container["env"]}


def oldest_supported_version():
    """The oldest schema version bundled that is at least 1.25 (policy/v1 PDB, seccompProfile)."""
    versions = sorted(kv.utils.all_versions(), key=lambda v: tuple(int(x) for x in v.split(".")))
    return next(v for v in versions if tuple(int(x) for x in v.split(".")[:2]) >= (1, 25))


def test_kustomization_lists_every_manifest(manifests):
    kust, _ = manifests
    files = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml")
    assert sorted(kust["resources"]) == files
    kinds = sorted(k for k, _ in manifests[1])
    assert kinds == sorted(["ConfigMap", "PodDisruptionBudget", "Service", "Service", "StatefulSet"])


@pytest.mark.parametrize("version", ["latest", "oldest"])
def test_manifests_match_kubernetes_schemas(manifests, version):
    v = kv.latest_version() if version == "latest" else oldest_supported_version()
    for (kind, name), doc in manifests[1].items():
        try:
            kv.validate(doc, v, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{kind}/{name} does not match the Kubernetes {v} schema: {e.message} at {list(e.path)}")


def test_validator_rejects_a_broken_statefulset(sts):
    """The schema check has teeth: a misspelt field and a wrong type are both caught."""
    import copy

    bad = copy.deepcopy(sts)
    bad["spec"]["replica"] = 3  # unknown field (strict)
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)
    bad = copy.deepcopy(sts)
    bad["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "thirty"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)


def test_kubectl_kustomize_renders_all_resources(tmp_path):
    """As docs/deploy.md says: secrets made by make-secrets.sh into deploy/k8s/secrets (here a copy of
    deploy/k8s), then the kustomization renders every manifest and the Secret the StatefulSet mounts."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed; the kustomization was checked by file list only")
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s, ignore=shutil.ignore_patterns("secrets"))
    subprocess.run([os.path.join(REPO, "deploy", "make-secrets.sh"), str(k8s / "secrets"), "sol-0", "sol-1",
                    "sol-2"], check=True, capture_output=True)
    out = subprocess.run([kubectl, "kustomize", str(k8s)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    want = sorted(load_all()[1]) + [("Secret", "sol-cluster-secrets")]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(want)
    (secret,) = [d for d in rendered if d["kind"] == "Secret"]
    assert {"gossip.keys", "ca.crt", "sol-0.crt", "sol-0.key"} <= set(secret["data"])
    for d in rendered:
        kv.validate(d, kv.latest_version(), strict=True)


def test_statefulset_shape(sts):
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "sol-headless"
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    claims = {c["metadata"]["name"]: c for c in spec["volumeClaimTemplates"]}
    assert "data" in claims and claims["data"]["spec"]["resources"]["requests"]["storage"]


def test_node_name_from_pod_name_and_seeds_from_headless_service(container, manifests):
    env = env_of(container)
    assert env["SOL_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    seeds = env["SOL_SEEDS"]["value"]
    headless = manifests[1][("Service", "sol-headless")]
    m = re.fullmatch(r"sol-headless\.\$\(POD_NAMESPACE\)\.svc\.cluster\.local:(\d+)", seeds)
    assert m, seeds
    assert int(m.group(1)) == int(env["SOL_CLUSTER_PORT"]["value"])
    assert {p["port"] for p in headless["spec"]["ports"]} == {int(m.group(1))}
    # $(VAR) references only expand to variables defined earlier in the list.
    names = [e["name"] for e in container["env"]]
    for e in container["env"]:
        for ref in re.findall(r"\$\(([A-Z_]+)\)", e.get("value", "")):
            assert ref in names[: names.index(e["name"])], f"{e['name']} uses $({ref}) before it is defined"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_headless_service_publishes_not_ready_addresses(manifests, sts):
    svc = manifests[1][("Service", "sol-headless")]["spec"]
    assert svc["clusterIP"] == "None"
    assert svc["publishNotReadyAddresses"] is True
    assert sorted((p["port"], p["protocol"]) for p in svc["ports"]) == [(7946, "TCP"), (7946, "UDP")]
    assert svc["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_client_service_and_ports(manifests, sts, container):
    svc = manifests[1][("Service", "sol")]["spec"]
    (port,) = svc["ports"]
    assert port["port"] == 1883 and port["protocol"] == "TCP"
    named = {p["name"]: p for p in container["ports"]}
    assert named[port["targetPort"]]["containerPort"] == int(env_of(container)["SOL_PORT"]["value"])
    assert svc["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    # The cluster port over both transports, on the number the seeds and the node use.
    cport = int(env_of(container)["SOL_CLUSTER_PORT"]["value"])
    assert (named["gossip"]["containerPort"], named["gossip"]["protocol"]) == (cport, "UDP")
    assert (named["cluster"]["containerPort"], named["cluster"]["protocol"]) == (cport, "TCP")
    assert named["http"]["containerPort"] == int(env_of(container)["SOL_HTTP_PORT"]["value"])


def test_probes(container):
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and live["path"] == "/healthz"
    for probe in (ready, live):
        port = probe["port"]
        assert (named[port] if isinstance(port, str) else port) == named["http"]


def test_termination_path_fits_in_grace_period(sts, container, manifests):
    pod = sts["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == 30
    cmd = container["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep", cmd
    pre_stop = int(cmd[1])
    leave_ms = int(manifests[1][("ConfigMap", "sol-config")]["data"]["SOL_LEAVE_TIMEOUT_MS"])
    # preStop, then SIGTERM: leave announcement and closing clients must end well before SIGKILL.
    assert 0 < pre_stop and pre_stop + leave_ms / 1000 + 5 <= grace


def test_resources_and_security(sts, container):
    res = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(res[kind])
    pod_sc = sts["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # Same uid as the image's USER line (numeric, so that runAsNonRoot can be checked).
    with open(os.path.join(REPO, "deploy", "Dockerfile")) as f:
        users = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", f.read(), re.M)
    assert users and int(users[-1][0]) == pod_sc["runAsUser"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/sol"] == "data"
    if sc.get("readOnlyRootFilesystem"):
        assert "/tmp" in mounts


def test_pdb(manifests, sts):
    pdb = manifests[1][("PodDisruptionBudget", "sol")]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_configmap_is_used_and_names_only_real_settings(manifests, container):
    cm = manifests[1][("ConfigMap", "sol-config")]
    assert {"configMapRef": {"name": "sol-config"}} in container["envFrom"]
    keys = set(cm["data"]) | {n for n in env_of(container) if n.startswith("SOL_")}
    help_text = subprocess.run([sol_bin(), "--help"], capture_output=True, text=True, timeout=10).stdout
    flags = set(re.findall(r"--([a-z][a-z0-9-]*)", help_text))
    assert "node-name" in flags and "seeds" in flags, help_text[:300]
    reserved = {"SOL_DATA_DIR"}  # the durable store's directory: documented as reserved
    unknown = sorted(k for k in keys - reserved if k[4:].lower().replace("_", "-") not in flags)
    assert not unknown, f"settings the broker does not have: {unknown}"
