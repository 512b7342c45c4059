"""The flow Node-RED runs, compared node by node with the project's flow file it was deployed from."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from indmlops.paths import CONFIG_DIR
from indmlops.targets.base import Target

FLOWS_FILE = CONFIG_DIR / "nodered" / "flows.json"
# Where a node sits in the editor: moving it changes nothing the flow does.
LAYOUT_KEYS = frozenset({"x", "y", "w", "h"})


def _label(node: dict) -> str:
    return f"{node.get('type', '?')} {node.get('name') or node.get('url') or node.get('topic') or node['id']!r}"


def differences(project: list[dict], deployed: list[dict]) -> list[str]:
    """Each node of the project's flow that the deployed flow lacks or runs otherwise (its type, code, topic, wiring,
    any setting but its place in the editor). Nodes the deployment adds are its own and not judged here."""
    running = {n.get("id"): n for n in deployed}
    out = []
    for node in project:
        got = running.get(node["id"])
        if got is None:
            out.append(f"{_label(node)} (id {node['id']}) is not deployed")
            continue
        changed = sorted(k for k in (set(node) | set(got)) - LAYOUT_KEYS if node.get(k) != got.get(k))
        if changed:
            out.append(f"{_label(node)} (id {node['id']}) differs in {', '.join(changed)}: deployed "
                       + "; ".join(f"{k}={json.dumps(got.get(k))[:80]}" for k in changed))
    return out


def flow_runs(target: Target, *, flows_file: Path = FLOWS_FILE) -> str:
    """Node-RED runs every node of the project's flow as the file has it (its admin API, GET /flows), and serves
    the flow's own health endpoint. An admin API that asks for a login is said, and only the endpoint judged."""
    from indmlops import clients

    base = target.endpoint("nodered").url
    resp = requests.get(f"{base}/flows", headers={"Node-RED-API-Version": "v1"}, timeout=10)
    project = json.loads(flows_file.read_text())
    if resp.status_code in (401, 403):
        compared = f"deployed flow not compared: the admin API {base}/flows answers HTTP {resp.status_code}"
    else:
        assert resp.status_code == 200, f"Node-RED {base}: GET /flows answered HTTP {resp.status_code}: " \
                                        f"{resp.text[:200]!r}"
        found = differences(project, resp.json())
        assert not found, (
            f"Node-RED {base} does not run the project's flow {flows_file}: {len(found)} of its {len(project)} "
            "nodes are missing or changed:\n  " + "\n  ".join(found[:12])
            + f"\nreproduce: curl -s {base}/flows | diff <(jq -S . {flows_file}) <(jq -S . -)")
        compared = f"the deployed flow has every node of {flows_file.name} ({len(project)}) unchanged"
    health = clients.http_ready(f"{base}/indmlops/health", expect_body='"ok":true')
    return f"{compared}; {health}"
