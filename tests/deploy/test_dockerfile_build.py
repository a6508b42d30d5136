"""deploy/Dockerfile built for real, where no registry serves debian:bookworm-slim: the base is made with
debootstrap (Debian's packages, which this machine reaches) and passed as the DEBIAN_IMAGE build argument.
The build stage then installs the -dev packages from Debian inside the build, compiles the sources of this
tree, and the runtime image must start, pass its own HEALTHCHECK and stay small.

Opt-in, because it downloads Debian packages for a few minutes: SOL_TEST_DOCKERFILE=1. Otherwise skipped,
saying so. To then run the compose tests on the image it built, keep it with SOL_TEST_KEEP_IMAGE=1 and run
test_compose.py with SOL_TEST_IMAGE=sol-dockerfile-test:latest.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from .deploy_helpers import REPO, free_port, http_get, wait_for
from .test_compose import docker_engine, run

BASE_TAG = f"sol-base-test:{os.getpid()}"
RUNTIME_LAYER_MAX_MB = 30  # what the runtime stage adds over the base: the shared libraries and sol


@pytest.fixture(scope="module")
def image():
    if os.environ.get("SOL_TEST_DOCKERFILE") != "1":
        pytest.skip("building deploy/Dockerfile downloads Debian packages for minutes: set SOL_TEST_DOCKERFILE=1")
    reason = docker_engine()
    if reason:
        pytest.skip(reason)
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed (deploy/install-deps.sh installs it)")
    keep = os.environ.get("SOL_TEST_KEEP_IMAGE") == "1"
    tag = "sol-dockerfile-test:latest" if keep else f"sol-dockerfile-test:{os.getpid()}"
    root = tempfile.mkdtemp(prefix="sol-bookworm-")
    try:
        run(["debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian"], timeout=900)
        # Slim it the way debian:bookworm-slim is: no docs, manuals or caches.
        for sub in ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt", "var/lib/apt/lists"):
            shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
        os.makedirs(os.path.join(root, "var/cache/apt/archives/partial"))
        os.makedirs(os.path.join(root, "var/lib/apt/lists/partial"))
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-", BASE_TAG], stdin=tar.stdout, capture_output=True,
                             text=True, timeout=600)
        tar.wait()
        assert imp.returncode == 0, imp.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
    env = dict(os.environ)
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        env["DOCKER_BUILDKIT"] = "0"  # the classic builder, where the buildx plugin is not installed
    try:
        out = run(["docker", "build", "--build-arg", f"DEBIAN_IMAGE={BASE_TAG}", "-f", "deploy/Dockerfile",
                   "-t", tag, REPO], timeout=1800, env=env, check=False)
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        yield tag
    finally:
        if not keep:
            run(["docker", "rmi", "-f", tag], check=False)
        run(["docker", "rmi", BASE_TAG], check=False)
        run(["docker", "image", "prune", "-f", "--filter", "dangling=true"], check=False)


def size_mb(ref):
    return int(run(["docker", "image", "inspect", "-f", "{{.Size}}", ref]).stdout) / 1e6


def test_image_is_small_and_configured(image):
    added = size_mb(image) - size_mb(BASE_TAG)
    print(f"image {size_mb(image):.1f} MB = base {size_mb(BASE_TAG):.1f} MB + runtime stage {added:.1f} MB")
    assert 0 < added < RUNTIME_LAYER_MAX_MB
    conf = json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config}}", image]).stdout)
    assert conf["User"] == "10001:10001"
    assert "/healthz" in " ".join(conf["Healthcheck"]["Test"])
    out = run(["docker", "run", "--rm", image, "--version"])
    assert out.stdout.startswith("sol ")


def test_container_serves_and_turns_healthy(image):
    http, mqtt = free_port(), free_port()
    name = f"sol-dockerfile-{os.getpid()}"
    run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{http}:8080", "-p", f"127.0.0.1:{mqtt}:1883",
         "-e", "SOL_NODE_NAME=solo", image])
    try:
        wait_for(lambda: http_get("127.0.0.1", http, "/readyz")[0] == 200, 20, 0.1, "/readyz")
        doc = json.loads(http_get("127.0.0.1", http, "/cluster")[1])
        assert doc["self"] == "solo"
        # The image's own HEALTHCHECK (bash /dev/tcp, no curl in the image) reports healthy.
        wait_for(lambda: run(["docker", "inspect", "-f", "{{.State.Health.Status}}", name]).stdout.strip()
                 == "healthy", 40, 0.5, "the HEALTHCHECK to pass")
        run(["docker", "stop", "-t", "10", name])
        state = json.loads(run(["docker", "inspect", "-f", "{{json .State}}", name]).stdout)
        assert state["ExitCode"] == 0, state
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)
