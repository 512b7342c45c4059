"""A naive first deployment of the stack (tests/data/naive-first-deployment) gets findings in every class of the
static suite, and the mutation catalogue covers every class (issue 16's six classes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from indmlops.checks.static.rules import RULES, StaticPolicy, cases, failing, message
from indmlops.manifests import load

REPO = Path(__file__).resolve().parents[2]
NAIVE = REPO / "tests" / "data" / "naive-first-deployment"

# The classes of faults the static suite judges, and the rules of each.
CLASSES = {
    "1 API invariants": {"schema", "labels", "selector", "requests-limits", "restart-policy", "pod-names",
                         "unique-objects", "field-values", "object-names"},
    "2 wiring": {"addresses", "binds", "references", "setting-refs", "credentials", "service-selects", "service-ports",
                 "scrape-target", "prometheus-rules", "statefulset-service", "bucket-bootstrap"},
    "3 data placement and durability": {"stateful-pvc", "rwo-recreate", "persistence", "shutdown-grace"},
    "4 security": {"security-context", "no-secret-literals", "sa-token", "url-credentials", "default-credentials",
                   "broker-auth", "pod-security", "default-deny", "rbac", "app-auth", "ipblock-scope", "service-type",
                   "project-image"},
    "5 availability": {"pinned-images", "probes", "resources", "pull-policy", "pvc-access-mode", "singleton-replicas",
                       "scheduling", "probe-paths", "startup-probe", "memory-floor", "one-instance"},
    "6 the evaluator": {"isolation"},
}


def class_of(rule: str) -> str:
    return next(name for name, rules in CLASSES.items() if rule in rules)


@pytest.fixture(scope="module")
def policy() -> StaticPolicy:
    return StaticPolicy.from_fixture(yaml.safe_load((REPO / "fixtures" / "static.yaml").read_text()), REPO / "images")


def test_every_rule_belongs_to_exactly_one_class():
    listed = [r for rules in CLASSES.values() for r in rules]
    assert sorted(listed) == sorted(set(listed)), "a rule is listed in two classes"
    assert set(listed) == set(RULES), f"unclassified: {set(RULES) - set(listed)}; stale: {set(listed) - set(RULES)}"


def test_naive_first_deployment_gets_findings_in_every_class(policy):
    m = load(NAIVE)
    found = failing(m, policy, None)
    by_class = Counter(class_of(case_id.split(":", 1)[1].split("/")[0]) for case_id in found)
    assert set(by_class) == set(CLASSES), f"classes without a finding: {set(CLASSES) - set(by_class)}"
    by_id = {c.id: c for c in cases(m, policy)}
    for case_id, problems in found.items():  # each finding names its object and file
        assert message(by_id[case_id], problems).startswith(f"{by_id[case_id].subject} ({NAIVE.name}/") or \
            f"({by_id[case_id].source}" in message(by_id[case_id], problems)


@pytest.mark.parametrize(("case_id", "needle"), [
    ("Deployment/ot-edge/simulator:addresses", "names Service ot-edge/mosquitto-svc, which is not in the manifests"),
    ("Deployment/ot-edge/inference:binds", "127.0.0.1:8088"),
    ("Deployment/it-core/jupyter:addresses", "is loopback"),
    ("Deployment/ot-edge/mosquitto:persistence", "persistence in its config file is 'false'"),
    ("ConfigMap/ot-edge/mosquitto-config:broker-auth/mosquitto.conf", "allow_anonymous"),
    ("Deployment/it-core/jupyter:app-auth", "--IdentityProvider.token"),
    ("Deployment/governance/grafana:app-auth", "GF_AUTH_ANONYMOUS_ENABLED"),
    ("Deployment/it-core/postgres:shutdown-grace", "terminationGracePeriodSeconds 0"),
    ("Deployment/it-core/mlflow:bucket-bootstrap", "no Job creates bucket 'mlflow'"),
    ("Deployment/ot-edge/inference:addresses", "names Service ot-edge/mlflow"),
    ("Deployment/it-core/postgres:stateful-pvc", "nothing is mounted"),
    ("Deployment/ot-edge/nodered:stateful-pvc", "emptyDir"),
    ("Deployment/governance/prometheus:startup-probe", "without a startup probe"),
    ("Deployment/ot-edge/mosquitto:singleton-replicas", "2"),
])
def test_naive_first_deployment_finding_says_why(policy, case_id, needle):
    found = failing(load(NAIVE), policy, None)
    assert case_id in found, f"{case_id} passed; failing: {sorted(found)}"
    assert any(needle in p for p in found[case_id]), found[case_id]
