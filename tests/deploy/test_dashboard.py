"""deploy/grafana-dashboard.json graphs only what a real node's /metrics exposes, with the labels it uses."""

import json
import os
import re

import pytest

from .deploy_helpers import REPO, Node, free_port, free_port_both, http_get, wait_for

DASHBOARD = os.path.join(REPO, "deploy", "grafana-dashboard.json")


@pytest.fixture
def metrics_text(tmp_path):
    host = "127.0.0.4"
    node = Node("dash", host, free_port(host), free_port_both(host), free_port(host), "", tmp_path).start()
    try:
        wait_for(lambda: http_get(host, node.http_port, "/metrics")[0] == 200, 10, 0.05, "/metrics")
        yield http_get(host, node.http_port, "/metrics")[1]
    finally:
        assert node.stop() == 0


def exposed(text):
    """{metric name: set of label names} from the # TYPE lines and samples of a Prometheus text page."""
    names = {m: set() for m in re.findall(r"^# TYPE (\S+) ", text, re.M)}
    for name, labels in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", text, re.M):
        names.setdefault(name, set()).update(re.findall(r"(\w+)=", labels))
    return names


def test_dashboard_queries_exist_in_metrics(metrics_text):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    have = exposed(metrics_text)
    assert "sol_connections" in have and "sol_cluster_members" in have
    # Per-peer series appear only once the node has a peer (this one is alone); their label is "peer".
    per_peer = {"sol_cluster_messages_forwarded_total", "sol_cluster_bytes_forwarded_total",
                "sol_cluster_messages_received_total", "sol_cluster_bytes_received_total"}
    used = set()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            names = re.findall(r"\b(sol_[a-z_]+)\b", t["expr"])
            for name in names:
                used.add(name)
                assert name in have, f"panel {panel['title']!r} graphs {name}, which /metrics does not expose"
                labels = have[name] | ({"peer"} if name in per_peer else set())
                for by in re.findall(r"by \(([^)]*)\)", t["expr"]):
                    for label in (l.strip() for l in by.split(",")):
                        assert label in labels | {"instance", "job"}, f"{name} has no label {label}"
    # Every family an operator graphs is on the dashboard.
    for family in ("sol_messages_received_total", "sol_messages_dropped_total", "sol_routes",
                   "sol_cluster_messages_forwarded_total", "sol_gossip_messages_total",
                   "sol_cluster_decode_errors_total"):
        assert family in used
