"""The `one-instance` rule on hand-made workloads: an application declared `exclusive` never runs two pods at once,
whatever controller runs it; other applications are not its business."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.checks.static.app_rules import check_one_instance
from indmlops.checks.static.apps import Apps
from indmlops.manifests import Manifests, Obj

APPS = Apps.from_fixture({"applications": {
    "edge": {"images": ["edge"], "exclusive": "one MQTT session under client id edge-1"},
    "web": {"images": ["web"]}}})


def workload(kind: str, image: str = "edge:1", **spec) -> Obj:
    body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "w"}}, **spec,
                     "template": {"metadata": {"labels": {"app": "w"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}
    return Obj(body, "w.yaml")


def judge(obj: Obj) -> list[str]:
    return check_one_instance(obj, Manifests(Path("."), [obj], "yaml"), APPS)


def test_one_replica_rolled_out_by_recreate_holds():
    assert judge(workload("Deployment", replicas=1, strategy={"type": "Recreate"})) == []
    assert judge(workload("StatefulSet", replicas=1)) == []


@pytest.mark.parametrize(("obj", "said"), [
    (workload("Deployment"), "strategy RollingUpdate: a rollout starts the new pod while the old one still runs"),
    (workload("Deployment", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}}),
     "strategy RollingUpdate"),
    (workload("Deployment", replicas=3, strategy={"type": "Recreate"}), "replicas 3; expected 1"),
    (workload("StatefulSet", replicas=2), "replicas 2; expected 1"),
    (workload("DaemonSet"), "a DaemonSet runs one pod on every node"),
], ids=["default-rolling", "rolling-without-surge", "three-replicas", "statefulset-two", "daemonset"])
def test_a_second_instance_is_found_and_says_why(obj, said):
    found = judge(obj)
    assert found and said in " ".join(found)
    assert all("edge: one MQTT session under client id edge-1" in f for f in found)


def test_applications_not_declared_exclusive_are_not_judged():
    assert judge(workload("Deployment", image="web:2", replicas=5)) == []
