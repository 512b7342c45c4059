"""`--manifests DIR`: the static suite judges a foreign directory of YAML, driven in a subprocess with pytester."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "suites" / "static"

WEB = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 101,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{
                     "name": "web", "image": "nginxinc/nginx-unprivileged:1.29.1",
                     "ports": [{"name": "http", "containerPort": 8080}],
                     "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                     "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                   "limits": {"cpu": "100m", "memory": "64Mi"}},
                     "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                     "env": [{"name": "DB_PASSWORD", "value": "hunter2"}],
                 }]}}},
}
SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}


@pytest.fixture
def foreign(pytester, monkeypatch):
    d = pytester.path / "theirs"
    (d / "app").mkdir(parents=True)
    (d / "app" / "web.yaml").write_text(yaml.safe_dump_all([WEB, SVC]))
    (d / "ns.yml").write_text(yaml.safe_dump(NS))
    monkeypatch.setenv("INDMLOPS_STATE_DIR", str(pytester.path / "state"))
    return d


def test_manifests_dir_judges_foreign_yaml_with_named_findings(pytester, foreign):
    result = pytester.runpytest_subprocess(str(SUITE), "--manifests", str(foreign), "-rfEs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*indmlops manifests: *theirs (CLI; static suite)*",
        "*FAILED*test_static_rule_holds?Deployment/shop/web:no-secret-literals?*",
        "*FAILED*test_static_rule_holds?Deployment/shop/web:sa-token?*",  # it mounts the default account's token
        "*FAILED*test_static_rule_holds?Namespace/shop:pod-security?*",
        "*FAILED*test_static_rule_holds?Namespace/shop:default-deny?*",
        "*FAILED*test_static_rule_holds?NetworkPolicies:isolation?*",
    ])
    # Findings name object, file, rule, expected and found.
    assert "Deployment/shop/web (" in out and "app/web.yaml) [no-secret-literals]" in out
    assert "env DB_PASSWORD has a literal value; expected valueFrom.secretKeyRef" in out
    assert "everything can reach everything" in out and "shop/web -> internet:443/TCP, shop/web:8080/TCP" in out
    for ok in ("probes", "resources", "security-context", "pinned-images", "schema/1.37", "service-ports"):
        assert f"{ok}]" not in out.split("short test summary")[-1], ok
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 5 and outcomes["passed"] > 10, outcomes
    # The static suite never brings the local stack up.
    assert "indmlops up:" not in out and not (pytester.path / "state").exists()


def test_manifests_from_environment_and_missing_dir_fail_with_the_reason(pytester, foreign, monkeypatch):
    monkeypatch.setenv("INDMLOPS_MANIFESTS", str(pytester.path / "nothing-here"))
    result = pytester.runpytest_subprocess(str(SUITE), "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        "*indmlops manifests: *nothing-here (environment INDMLOPS_MANIFESTS; static suite)*",
        ("*the manifests could not be read: --manifests '*nothing-here' from environment INDMLOPS_MANIFESTS: "
         "manifest directory *nothing-here does not exist*"),
        "*1 failed*",
    ])


def test_foreign_directory_passes_once_fixed(pytester, foreign):
    web = yaml.safe_load_all((foreign / "app" / "web.yaml").read_text())
    web, svc = list(web)
    web["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    web["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
              "stringData": {"password": "x"}}
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    ns = dict(NS, metadata={"name": "shop", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}})
    (foreign / "app" / "web.yaml").write_text(yaml.safe_dump_all([web, svc, secret, deny]))
    (foreign / "ns.yml").write_text(yaml.safe_dump(ns))
    result = pytester.runpytest_subprocess(str(SUITE), "--manifests", str(foreign), "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
