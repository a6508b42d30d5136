"""deploy/Dockerfile and docker-compose.yml checked without building: lint, the runtime stage has every
shared library the real binary links, and the compose file has what the deploy issue asks for.

The Dockerfile itself cannot be built here (no registry to pull debian:bookworm-slim from); test_compose.py
runs the shipped compose file on an image assembled locally by deploy/local-image.sh instead."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from .deploy_helpers import REPO, sol_bin

DOCKERFILE = os.path.join(REPO, "deploy", "Dockerfile")
COMPOSE = os.path.join(REPO, "docker-compose.yml")


def instructions():
    """The Dockerfile as (instruction, argument) pairs, continuation lines joined, comments dropped."""
    out, cont = [], ""
    with open(DOCKERFILE) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.lstrip().startswith("#") and not cont:
                continue
            if line.lstrip().startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                cont += line.rstrip()[:-1] + " "
                continue
            line, cont = cont + line, ""
            if line.strip():
                word, _, arg = line.strip().partition(" ")
                out.append((word.upper(), " ".join(arg.split())))
    return out


def stages():
    """Instructions grouped by stage (after each FROM)."""
    result = []
    for word, arg in instructions():
        if word == "FROM":
            result.append([(word, arg)])
        elif result:
            result[-1].append((word, arg))
    return result


def install_deps_packages():
    with open(os.path.join(REPO, "deploy", "install-deps.sh")) as f:
        text = f.read().replace("\\\n", " ")
    pkgs = set()
    for m in re.finditer(r'^PKGS="([^"]*)"', text, re.M):
        pkgs |= set(m.group(1).replace("$PKGS", "").split())
    return pkgs


def apt_packages(stage):
    pkgs = set()
    for word, arg in stage:
        if word == "RUN" and "apt-get install" in arg:
            part = arg.split("apt-get install", 1)[1].split("&&")[0]
            pkgs |= {w for w in part.split() if not w.startswith("-")}
    return pkgs


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed: run deploy/install-deps.sh")
    out = subprocess.run([hadolint, "--no-color", DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_two_stages_from_bookworm_slim():
    st = stages()
    assert len(st) == 2
    args = dict(arg.split("=", 1) for word, arg in instructions() if word == "ARG" and "=" in arg)
    assert args.get("DEBIAN_IMAGE") == "debian:bookworm-slim"
    assert st[0][0][1] == "${DEBIAN_IMAGE} AS build" and st[1][0][1] == "${DEBIAN_IMAGE}"
    build_runs = " ".join(arg for word, arg in st[0] if word == "RUN")
    assert "--target sol" in build_runs
    copies = [arg for word, arg in st[1] if word == "COPY"]
    assert any(a.startswith("--from=build ") and a.endswith(" /usr/local/bin/sol") for a in copies)


def test_build_stage_packages_are_the_projects_build_deps():
    dev = apt_packages(stages()[0])
    assert dev, "the build stage installs nothing"
    assert dev <= install_deps_packages(), dev - install_deps_packages()
    for needed in ("libuv1-dev", "libnng-dev", "libprotobuf-c-dev", "protobuf-c-compiler", "libcjson-dev"):
        assert needed in dev
    runtime = apt_packages(stages()[1])
    assert not [p for p in runtime if p.endswith("-dev")], runtime


# Libraries every debian:bookworm-slim image has (dependencies of its Essential packages).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "zlib1g", "libzstd1", "liblzma5", "libbz2-1.0", "libcrypt1",
                       "libselinux1", "libpcre2-8-0", "libtinfo6", "libacl1", "libattr1", "libmd0"}


def dependency_closure(pkgs):
    """The installed packages pkgs pull in through Depends and Pre-Depends, pkgs included."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                             capture_output=True, text=True).stdout
        for alt in out.split(","):
            for choice in alt.split("|"):
                name = choice.strip().split(" ")[0].split(":")[0]
                if name and subprocess.run(["dpkg-query", "-W", name], capture_output=True).returncode == 0:
                    todo.append(name)
                    break
    return seen


def test_runtime_stage_has_every_library_the_binary_links():
    """Each shared library of the real build/sol comes from a package the runtime stage installs (or one of
    their dependencies, which apt installs with them), or from one every Debian image has."""
    runtime = apt_packages(stages()[1])
    available = dependency_closure(runtime) | BASE_IMAGE_PACKAGES
    ldd = subprocess.run(["ldd", sol_bin()], capture_output=True, text=True, timeout=10).stdout
    libs = re.findall(r"=>\s+(/\S+)", ldd)
    assert libs, ldd
    missing = []
    for lib in libs:
        real = os.path.realpath(lib)
        owner = None
        for path in (lib, real, real.replace("/usr/lib/", "/lib/", 1), lib.replace("/lib/", "/usr/lib/", 1)):
            out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if out.returncode == 0:
                owner = out.stdout.split(":")[0]
                break
        assert owner, f"no package owns {lib}"
        if owner not in available:
            missing.append(f"{lib} ({owner})")
    assert not missing, f"the runtime stage lacks: {missing}"


def test_runtime_configuration():
    final = stages()[1]
    words = {}
    for word, arg in final:
        words.setdefault(word, []).append(arg)
    exposed = set(" ".join(words["EXPOSE"]).split())
    assert {"1883/tcp", "7946/tcp", "7946/udp", "8080/tcp"} <= exposed
    user = words["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert "/var/lib/sol" in words["VOLUME"][-1]
    assert words["ENTRYPOINT"][-1] == '["/usr/local/bin/sol"]'
    (hc,) = words["HEALTHCHECK"]
    assert "/healthz" in hc and "CMD" in hc
    env = " ".join(words["ENV"])
    for setting in ("SOL_BIND=0.0.0.0", "SOL_PORT=1883", "SOL_CLUSTER_PORT=7946", "SOL_HTTP_PORT=8080"):
        assert setting in env


@pytest.fixture(scope="module")
def compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def test_compose_three_nodes_seeded_by_service_name(compose):
    services = compose["services"]
    assert sorted(services) == ["sol1", "sol2", "sol3"]
    host_ports, volumes = set(), set()
    for name, svc in services.items():
        assert svc["image"] == "${SOL_IMAGE:-sol:latest}"
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile" and svc["build"]["context"] == "."
        assert svc["container_name"] == name and svc["hostname"] == name
        env = svc["environment"]
        assert env["SOL_NODE_NAME"] == name
        assert sorted(env["SOL_SEEDS"].split(",")) == [f"{s}:7946" for s in sorted(services)]
        assert svc["healthcheck"]["test"][-1] == "/readyz"
        assert svc["restart"] == "unless-stopped" and svc["stop_grace_period"]
        vol, secrets = svc["volumes"]
        vname, path = vol.split(":")
        assert path == "/var/lib/sol" and vname in compose["volumes"]
        volumes.add(vname)
        # Secured: the key and certificates make-secrets.sh wrote, read-only, named in the settings.
        assert secrets == "${SOL_SECRETS_DIR:-./deploy/secrets}:/etc/sol/secrets:ro"
        assert env["SOL_CLUSTER_KEY_FILE"] == "/etc/sol/secrets/gossip.keys"
        assert env["SOL_CLUSTER_CAFILE"] == "/etc/sol/secrets/ca.crt"
        assert env["SOL_CLUSTER_CERTFILE"] == f"/etc/sol/secrets/{name}.crt"
        assert env["SOL_CLUSTER_KEYFILE"] == f"/etc/sol/secrets/{name}.key"
        mqtt = [p for p in svc["ports"] if p.endswith(":1883")]
        assert len(mqtt) == 1
        host_ports.add(mqtt[0].rsplit(":", 1)[0])
    assert len(volumes) == 3 and len(host_ports) == 3


def test_compose_file_is_accepted_by_the_compose_tool():
    tool = None
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        tool = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        tool = ["docker-compose"]
    if tool is None:
        pytest.skip("no docker compose tool installed")
    out = subprocess.run([*tool, "-f", COMPOSE, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
