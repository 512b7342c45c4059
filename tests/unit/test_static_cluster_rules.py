"""Rules against the target cluster as data: pods that fit no node, RBAC bindings broader than the need."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.checks.static.cluster_rules import check_rbac, check_scheduling
from indmlops.manifests import Manifests, Obj

NODES = [
    {"name": "cp", "labels": {"kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": "",
                              "kubernetes.io/arch": ["amd64", "arm64"]},
     "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
    {"name": "worker", "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": ["amd64", "arm64"], "zone": "a"}},
]


def pod(**spec) -> Obj:
    return Obj({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "lab"},
                "spec": {"containers": [{"name": "c", "image": "x:1"}], **spec}}, "t.yaml")


def term(key: str, op: str, *values: str) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": key, "operator": op, **({"values": list(values)} if values else {})}]}]}}}


@pytest.mark.parametrize(("spec", "fits"), [
    ({}, True),
    ({"nodeSelector": {"kubernetes.io/arch": "arm64"}}, True),  # the machine's arch is not known: either fits
    ({"nodeSelector": {"zone": "b"}}, False),
    ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}, False),  # tainted, not tolerated
    ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
      "tolerations": [{"operator": "Exists"}]}, True),  # an Exists toleration without key tolerates every taint
    ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
      "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoExecute",
                       "operator": "Exists"}]}, False),  # the wrong effect
    ({"affinity": term("zone", "In", "a", "c")}, True),
    ({"affinity": term("zone", "NotIn", "a")}, False),
    ({"affinity": term("disktype", "DoesNotExist")}, True),
    ({"affinity": term("disktype", "Exists")}, False),
    ({"nodeName": "worker"}, True),
    ({"nodeName": "plant-node-7"}, False),
])
def test_scheduling_fits_a_node_or_names_why_not(spec, fits):
    problems = check_scheduling(pod(**spec), NODES)
    assert (problems == []) is fits, problems
    if not fits:
        assert "never runs" in problems[0] or ("cp:" in problems[0] and "worker:" in problems[0])


def binding(role: str, *subjects: dict, kind: str = "ClusterRole") -> Obj:
    return Obj({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "b", "namespace": "lab"}, "roleRef": {"kind": kind, "name": role},
                "subjects": list(subjects)}, "t.yaml")


def test_rbac_allows_listed_api_users_a_narrow_role_only():
    sa = {"kind": "ServiceAccount", "name": "operator", "namespace": "lab"}
    w = Obj({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "op", "namespace": "lab"},
             "spec": {"template": {"spec": {"serviceAccountName": "operator", "containers": []}}}}, "t.yaml")
    role, wild = (Obj({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": {"name": name, "namespace": "lab"},
                       "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]}, "t.yaml")
                  for name, resource in (("r", "pods"), ("w", "*")))
    m = Manifests(Path("."), [w, role, wild], "yaml")
    assert check_rbac(binding("r", sa, kind="Role"), m, ("Deployment/lab/op",)) == []
    assert "need no API access" in check_rbac(binding("r", sa, kind="Role"), m, ())[0]
    assert "broad" in check_rbac(binding("w", sa, kind="Role"), m, ("Deployment/lab/op",))[0]
    assert "broad" in check_rbac(binding("edit", sa), m, ("Deployment/lab/op",))[0]
    everyone = {"kind": "Group", "name": "system:serviceaccounts"}
    assert "every account" in check_rbac(binding("view", everyone), m, ())[0]
