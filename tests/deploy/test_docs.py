"""docs/deploy.md, tried as a new user would: the command blocks of "A local cluster" and "Docker Compose" run
line by line as written, with only what this machine forces changed:

- `make cluster` runs the command the Makefile runs for it (deploy/local-cluster.sh with the binary under
  test), inside a private network namespace, so its ports (1883, 7946, 8080 on 127.0.0.1-3) are the
  documented ones and collide with nothing.
- Compose: the image is made with deploy/local-image.sh (the page's no-registry path) and named by SOL_IMAGE;
  the host ports are moved to free ones on 127.0.0.1 through the documented variables, and the page's port
  numbers in the commands are rewritten to match. `docker compose` becomes `docker-compose` where only
  Compose v1 is installed (as the page says).

Between two commands the test waits for what a person would wait for (the nodes up, a subscription in place),
by polling, never by sleeping a fixed time.

Also: docs/architecture.md's module table names every source file of the tree, and only those.
"""

import os
import re
import shutil
import signal
import subprocess

import pytest

from .deploy_helpers import REPO, free_port, http_get, sol_bin, wait_for
from .test_compose import NODES, compose_tool, container_project, docker_engine, run

DOC = os.path.join(REPO, "docs", "deploy.md")


def blocks(section):
    """The ```sh blocks of the "## section" of docs/deploy.md, as lists of command lines."""
    with open(DOC) as f:
        text = f.read()
    parts = re.split(r"^## ", text, flags=re.M)
    (body,) = [p for p in parts if p.startswith(section)]
    return [[l for l in b.splitlines() if l.strip() and not l.strip().startswith("#")]
            for b in re.findall(r"```sh\n(.*?)```", body, re.S)]


def metric(text, name):
    m = re.search(rf"^{name} (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_makefile_cluster_target_runs_local_cluster_script():
    with open(os.path.join(REPO, "Makefile")) as f:
        mk = f.read()
    recipe = re.search(r"^cluster:.*\n((?:\t.*\n)+)", mk, re.M)
    assert recipe and "./deploy/local-cluster.sh $(BUILD)/sol" in recipe.group(1)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 for a private network namespace")
    name = f"soldoc{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {out.stderr.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_local_cluster_section_as_written(netns, tmp_path):
    (start,), (cmds,) = blocks("A local cluster")[:1], blocks("A local cluster")[1:2]
    assert start == ["make cluster"], start
    ns = ["ip", "netns", "exec", netns]
    log = open(tmp_path / "cluster.log", "w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    cluster = subprocess.Popen([*ns, os.path.join(REPO, "deploy", "local-cluster.sh"), sol_bin()], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    background = []
    try:
        def alive_on(addr):
            out = subprocess.run([*ns, "curl", "-s", "-m", "1", f"http://{addr}:8080/cluster"],
                                 capture_output=True, text=True)
            return out.stdout.count('"alive"') == 3

        for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            wait_for(lambda: alive_on(a), 10, 0.1, f"{a} to see three alive members")
        outputs = run_lines(cmds, ns, tmp_path, background, route_check=lambda: node_routes(ns, "127.0.0.1"))
        assert outputs[-1].count('"alive"') == 3, outputs[-1]
        sub_out = background[0][1]
        wait_for(lambda: "demo/hello published on node1" in open(sub_out).read(), 5, 0.05,
                 "the subscriber on 127.0.0.3 to print the message")
        # Ctrl-C stops them all.
        os.killpg(cluster.pid, signal.SIGINT)
        assert cluster.wait(15) == 0
    finally:
        stop_background(background)
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
        log.close()


def stop_background(background):
    for p, _ in background:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def node_routes(ns, addr):
    out = subprocess.run([*ns, "curl", "-s", "-m", "1", f"http://{addr}:8080/metrics"], capture_output=True,
                         text=True).stdout
    return metric(out, "sol_routes") > 0


def run_lines(lines, prefix, tmp_path, background, route_check=None, rewrite=lambda l: l, env=None,
              after=None, cwd=None):
    """Run each documented command; a line ending in & runs in the background. Returns the outputs."""
    outputs = []
    for line in lines:
        cmd = rewrite(line)
        if cmd.endswith("&"):
            out = str(tmp_path / f"bg{len(background)}.out")
            p = subprocess.Popen([*prefix, "bash", "-c", cmd[:-1]], stdout=open(out, "w"),
                                 stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
            background.append((p, out))
            outputs.append("")
            continue
        if "mosquitto_pub" in cmd and route_check and background:
            # A person starts the subscriber, then types the next command: its subscription is in place.
            wait_for(route_check, 10, 0.05, "the background subscription to reach the publishing node")
        res = subprocess.run([*prefix, "bash", "-c", cmd], capture_output=True, text=True, timeout=120, env=env,
                             cwd=cwd)
        assert res.returncode == 0, f"`{line}` (run as `{cmd}`) exited {res.returncode}: {res.stdout}{res.stderr}"
        outputs.append(res.stdout)
        if after:
            after(line, res.stdout)
    return outputs


def test_compose_section_as_written(tmp_path):
    reason = docker_engine()
    if reason:
        pytest.skip(reason)
    tool = compose_tool()
    if tool is None:
        pytest.skip("no docker compose tool installed")
    for name in NODES:
        owner = container_project(name)
        if owner is not None and not (owner.startswith("solt") and owner[4:].isdigit()):
            pytest.skip(f"a container named {name} exists (project {owner!r}) and is not ours to remove")
        if owner is not None:
            run(["docker", "rm", "-f", "-v", name], check=False)
    (cmds,) = [b for b in blocks("Docker Compose") if any("up -d" in l for l in b)]

    project, tag = f"solt{os.getpid()}1", f"sol-test:{os.getpid()}1"
    mqtt = {n: free_port() for n in NODES}
    http = {n: free_port() for n in NODES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL")}
    # The page's make-secrets.sh writes where SOL_SECRETS_DIR says (the page's default: deploy/secrets).
    env.update(SOL_IMAGE=tag, SOL_PUBLISH_ADDR="127.0.0.1", COMPOSE_PROJECT_NAME=project,
               SOL_SECRETS_DIR=str(tmp_path / "secrets"))
    for n in NODES:
        env[f"{n.upper()}_MQTT_PORT"], env[f"{n.upper()}_HTTP_PORT"] = str(mqtt[n]), str(http[n])
    documented = {"1883": "sol1", "1884": "sol2", "1885": "sol3"}
    documented_http = {"8081": "sol1", "8082": "sol2", "8083": "sol3"}

    def rewrite(line):
        line = line.replace("docker compose", " ".join(tool))
        line = re.sub(r"-p (188[345])\b", lambda m: f"-p {mqtt[documented[m.group(1)]]}", line)
        return re.sub(r"127\.0\.0\.1:(808[123])\b", lambda m: f"127.0.0.1:{http[documented_http[m.group(1)]]}", line)

    def ready():
        return all(http_get("127.0.0.1", http[n], "/readyz")[0] == 200 for n in NODES)

    def after(line, out):
        if " up -d" in line or " start " in line:
            wait_for(ready, 30, 0.1, "the three nodes to be ready")
            secured(line)
            wait_for(lambda: all(http_get("127.0.0.1", http[n], "/cluster")[1].count('"alive"') == 3
                                 for n in NODES), 20, 0.1, "three alive members on every node")
            # A moment later, as for a person typing: every node holds the same retained messages. (Ready
            # comes a little before a restarted node has them all: see test_compose.py.)
            wait_for(lambda: len({retained_count(http[n]) for n in NODES}) == 1, 10, 0.05,
                     "the nodes to hold the same number of retained messages")
        if " stop sol3" in line:
            wait_for(lambda: '"left"' in http_get("127.0.0.1", http["sol1"], "/cluster")[1], 5, 0.05,
                     "sol1 to see sol3 left")

    def secured(line):
        """The cluster as the page starts it is secured: every node seals gossip and has authenticated
        a TLS link to each of the others, and none warns of anything in the clear."""
        for n in NODES:
            others = [o for o in NODES if o != n]
            def linked():
                out = run(["docker", "logs", n], check=False)
                log = out.stdout + out.stderr
                return all(f"node link to {o} authenticated" in log for o in others)
            wait_for(linked, 20, 0.2, f"{n}'s TLS links to {others} after `{line}`")
            out = run(["docker", "logs", n], check=False)
            log = out.stdout + out.stderr
            assert "not encrypted" not in log, log[-3000:]

    def retained_count(port):
        return metric(http_get("127.0.0.1", port, "/metrics")[1], "sol_retained_messages")

    def routed():
        return metric(http_get("127.0.0.1", http["sol1"], "/metrics")[1], "sol_routes") > 0

    background = []
    try:
        run([os.path.join(REPO, "deploy", "local-image.sh"), sol_bin(), tag], timeout=120)
        # From the repository root, as the page assumes.
        outputs = run_lines(cmds, [], tmp_path, background, route_check=routed, rewrite=rewrite, env=env,
                            after=after, cwd=REPO)
        by_line = dict(zip(cmds, outputs))
        assert all(n in by_line["docker compose ps"] for n in NODES)
        curls = [o for l, o in zip(cmds, outputs) if l.startswith("curl")]
        assert curls[0].count('"alive"') == 3 and '"left"' in curls[1], curls
        assert [o for l, o in zip(cmds, outputs) if "-C 1" in l] == ["demo/status up\n"]
        sub_out = background[0][1]
        wait_for(lambda: "demo/hello published on sol1, received through sol3" in open(sub_out).read(), 5, 0.05,
                 "the background subscriber on sol3 to print the message")
        assert cmds[-1] == "docker compose down"
    finally:
        stop_background(background)
        run([*tool, "-p", project, "-f", os.path.join(REPO, "docker-compose.yml"), "down", "-v", "-t", "10"],
            check=False, env=env, timeout=300)
        run(["docker", "rmi", "-f", tag], check=False)


def test_readme_deploy_section_is_the_tested_compose_block():
    """README's Deploy commands are the block test_compose_section_as_written runs, line for line, so
    running that test is running the README as written."""
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    (section,) = [p for p in re.split(r"^## ", readme, flags=re.M) if p.startswith("Deploy")]
    readme_blocks = [[l for l in b.splitlines() if l.strip() and not l.strip().startswith("#")]
                     for b in re.findall(r"```sh\n(.*?)```", section, re.S)]
    (tested,) = [b for b in blocks("Docker Compose") if any("up -d" in l for l in b)]
    assert tested in readme_blocks, readme_blocks


# docs/architecture.md's module table, against the tree: one row per .c/.h file of node/, cluster/, ops/ and
# app/ (and per proto/*.proto), named in the first column, and no row for a file that is not there.

ARCH = os.path.join(REPO, "docs", "architecture.md")
MODULE_DIRS = ("node", "cluster", "ops", "app")


def tracked_sources():
    """The tracked .c/.h files under MODULE_DIRS and proto/*.proto, as repository paths."""
    res = subprocess.run(["git", "-C", REPO, "ls-files", "--", *MODULE_DIRS, "proto"], capture_output=True,
                         text=True)
    if res.returncode == 0 and res.stdout.strip():
        paths = res.stdout.split()
    else:  # not a git checkout (an exported tree): what is on disk
        paths = [os.path.relpath(os.path.join(d, f), REPO) for top in (*MODULE_DIRS, "proto")
                 for d, _, fs in os.walk(os.path.join(REPO, top)) for f in fs]
    return {p for p in paths
            if (p.split("/")[0] in MODULE_DIRS and p.endswith((".c", ".h")))
            or (p.startswith("proto/") and p.endswith(".proto"))}


def module_table_files():
    """The files the "## Modules" table of docs/architecture.md names in its first column, with the row
    each is on."""
    with open(ARCH) as f:
        text = f.read()
    (section,) = [p for p in re.split(r"^## ", text, flags=re.M) if p.startswith("Modules")]
    rows = [l for l in section.splitlines() if l.startswith("|")]
    assert rows and re.match(r"^\|\s*file\s*\|", rows[0]), "the Modules section has no file table"
    named = {}
    for row in rows[2:]:  # after the header and the |---| line
        first = row.split("|")[1]
        for path in re.findall(r"`([^`]+)`", first):
            assert path not in named, f"{path} has two rows in the module table"
            named[path] = row
    return named


def test_architecture_module_table_lists_every_source_file():
    named = module_table_files()
    missing = sorted(tracked_sources() - set(named))
    assert not missing, f"docs/architecture.md's module table has no row for: {missing}"


def test_architecture_module_table_names_only_files_that_exist():
    gone = sorted(p for p in module_table_files() if not os.path.isfile(os.path.join(REPO, p)))
    assert not gone, f"docs/architecture.md's module table names files that do not exist: {gone}"


def test_architecture_module_table_rows_say_concern_and_face():
    for path, row in module_table_files().items():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 3 and cells[1] and cells[2], f"{path}: a row needs a concern and a face: {row}"
