"""An intent that extends another (`extends`, `absent`, `allow`): the cluster overlay's, and bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.checks.static.isolation import IntentError, load_intent

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "fixtures" / "isolation" / "intent.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "isolation-intent.yaml"
    path.write_text(f"version: 1\nextends: {PROJECT}\n{text}")
    return path


def test_the_cluster_overlays_intent_is_the_projects_without_grafana_and_with_the_s3_metrics_port():
    base = load_intent(PROJECT)
    mine = load_intent(REPO / "manifests" / "overlays" / "cluster" / "isolation-intent.yaml")
    assert set(base.workloads) - set(mine.workloads) == {"governance/grafana"}
    gone = [a for a in base.allow if "governance/grafana" in (a["from"], a["to"])]
    assert gone and not any(a in mine.allow for a in gone)
    assert {"from": "governance/prometheus", "to": "it-core/minio", "service": "minio-svc", "port": 9001} in mine.allow
    assert "without governance/grafana" in mine.source


@pytest.mark.parametrize("text,needle", [
    ("absent: [governance/nothing]\n", "absent names workloads"),
    ("allow: [{from: it-core/mlflow, to: governance/grafana, port: 3000}]\nabsent: [governance/grafana]\n",
     "names unknown workload 'governance/grafana'"),
    ("allow: [{from: it-core/mlflow}]\n", "needs from, to and port"),
    ("workloads: {}\n", "takes only version, extends, absent and allow"),
])
def test_a_bad_extending_intent_names_file_and_problem(tmp_path, text, needle):
    with pytest.raises(IntentError, match=needle):
        load_intent(write(tmp_path, text))


def test_extending_a_missing_file_names_it(tmp_path):
    path = tmp_path / "i.yaml"
    path.write_text("version: 1\nextends: nowhere.yaml\n")
    with pytest.raises(IntentError, match="nowhere.yaml"):
        load_intent(path)
