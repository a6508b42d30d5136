"""`make cluster` (deploy/local-cluster.sh): three local nodes on 127.0.0.1-3 that form one cluster, and
Ctrl-C stops them all."""

import os
import re
import signal
import subprocess
import uuid

import pytest

from .deploy_helpers import (REPO, Collector, http_get, pids_gone, port_free_on, publish_once, sol_bin,
                             view_is, wait_for)

ADDRS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@pytest.fixture
def local_cluster(tmp_path):
    ports = {}
    while len(set(ports.values())) < 3:
        ports = {k: port_free_on(ADDRS) for k in ("mqtt", "cluster", "http")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env.update(SOL_LOCAL_MQTT_PORT=str(ports["mqtt"]), SOL_LOCAL_CLUSTER_PORT=str(ports["cluster"]),
               SOL_LOCAL_HTTP_PORT=str(ports["http"]), SOL_DATA_ROOT=str(tmp_path / "data"))
    log = open(tmp_path / "local-cluster.log", "w+")
    # Its own process group, as in a terminal, so that "Ctrl-C" can go to the whole group.
    proc = subprocess.Popen([os.path.join(REPO, "deploy", "local-cluster.sh"), sol_bin()], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, ports, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def node_pids(log):
    log.seek(0)
    return [int(p) for p in re.findall(r"node\d pid (\d+)", log.read())]


def test_three_nodes_form_a_cluster_and_ctrl_c_stops_them(local_cluster):
    proc, ports, log = local_cluster
    for a in ADDRS:
        wait_for(lambda: http_get(a, ports["http"], "/healthz")[0] == 200, 10, 0.05, f"{a} /healthz")
    pids = node_pids(log)
    assert len(pids) == 3

    names = {f"node{i}": "alive" for i in (1, 2, 3)}
    for a in ADDRS:
        wait_for(lambda: view_is(a, ports["http"], names), 5, 0.05, f"{a} to see all three alive")

    topic = f"local/{uuid.uuid4().hex}"
    sub = Collector(ADDRS[2], ports["mqtt"], "local-sub", [topic])
    try:
        def delivered():
            publish_once(ADDRS[0], ports["mqtt"], topic, b"x")
            try:
                wait_for(lambda: sub.payloads(topic), 0.5, 0.02)
                return True
            except AssertionError:
                return False
        wait_for(delivered, 5, 0, "node1 -> node3 delivery")
    finally:
        sub.close()

    # Ctrl-C in a terminal: SIGINT to the foreground process group.
    os.killpg(proc.pid, signal.SIGINT)
    rc = proc.wait(15)
    log.seek(0)
    out = log.read()
    assert rc == 0, out[-3000:]
    wait_for(lambda: pids_gone(pids), 5, 0.05, "every node process to end")
    with pytest.raises(OSError):
        http_get(ADDRS[0], ports["http"], "/healthz", timeout=1)


def test_ctrl_c_stops_all_even_before_they_join(local_cluster):
    proc, ports, log = local_cluster
    wait_for(lambda: len(node_pids(log)) == 3, 10, 0.05, "three nodes started")
    pids = node_pids(log)
    wait_for(lambda: http_get(ADDRS[1], ports["http"], "/healthz")[0] == 200, 10, 0.05, "node2 /healthz")
    # SIGINT to the script alone (as `kill -INT`): its trap must still stop every node.
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(15)
    assert rc == 0
    wait_for(lambda: pids_gone(pids), 5, 0.05, "every node process to end")
