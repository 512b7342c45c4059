"""`--intent FILE`: the isolation intent applies wherever the manifests live; `none` judges without one; a missing
or malformed file fails one test naming it and where the option came from. Driven in a subprocess with pytester."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "suites" / "static"
# The rule cases only (the server-side dry run adds a case of its own, skipped without a cluster).
RULES = f"{SUITE / 'test_static.py'}::test_static_rule_holds"


def deployment(name: str, port: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginxinc/nginx-unprivileged:1.29.1",
                                         "ports": [{"containerPort": port}]}]}}}}


def policy(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


# A shop: deny everything, then web -> db:5432 (both halves).
SHOP = [
    deployment("web", 8080), deployment("db", 5432),
    policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    policy("web-egress", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                          "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                                      "ports": [{"port": 5432}]}]}),
    policy("db-ingress", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                       "ports": [{"port": 5432}]}]}),
]
WORKLOADS = {"shop/web": {"namespace": "shop", "labels": {"app": "web"}},
             "shop/db": {"namespace": "shop", "labels": {"app": "db"}}}


@pytest.fixture
def shop(pytester, monkeypatch):
    d = pytester.path / "shop"
    d.mkdir()
    (d / "shop.yaml").write_text(yaml.safe_dump_all(SHOP))
    monkeypatch.setenv("INDMLOPS_STATE_DIR", str(pytester.path / "state"))
    monkeypatch.delenv("INDMLOPS_INTENT", raising=False)
    return d


def run_isolation(pytester, *args: str):
    return pytester.runpytest_subprocess(str(SUITE), "-k", "isolation or intent", "-p", "no:cacheprovider", *args)


def test_intent_file_applies_to_foreign_manifests(pytester, shop):
    (pytester.path / "intent.yaml").write_text(yaml.safe_dump({"version": 1, "workloads": WORKLOADS, "allow": []}))
    result = run_isolation(pytester, "--manifests", str(shop), "--intent", "intent.yaml")
    result.stdout.fnmatch_lines([
        "*indmlops intent: *intent.yaml (--intent 'intent.yaml' from CLI; isolation)*",
        "*isolation matrix differs from *intent.yaml in 1 cell(s):*",
        "*ALLOWED by policies, intent denies: shop/web -> shop/db:5432/TCP*",
        "*1 failed*",
    ])
    # The same manifests, the intent allowing that flow: it passes.
    (pytester.path / "intent.yaml").write_text(yaml.safe_dump(
        {"version": 1, "workloads": WORKLOADS, "allow": [{"from": "shop/web", "to": "shop/db", "port": 5432}]}))
    assert run_isolation(pytester, "--manifests", str(shop), "--intent", "intent.yaml").ret == 0


def test_foreign_manifests_default_to_no_intent(pytester, shop):
    result = run_isolation(pytester, "--manifests", str(shop))
    result.stdout.fnmatch_lines(["*indmlops intent: none (default: manifests outside the project; isolation)*",
                                 "*1 passed*"])


def test_intent_none_judges_the_project_manifests_without_intent(pytester, monkeypatch):
    monkeypatch.delenv("INDMLOPS_INTENT", raising=False)
    result = run_isolation(pytester, "--manifests", str(REPO / "manifests" / "overlays" / "kind"),
                           "--intent", "none", "-s")
    result.stdout.fnmatch_lines(["*indmlops intent: none (--intent 'none' from CLI; isolation)*",
                                 "*reachability matrix of *kind (* cells allowed; intent: none)*",
                                 "*1 passed*"])


def test_missing_intent_from_environment_fails_one_test_naming_file_and_source(pytester, shop, monkeypatch):
    monkeypatch.setenv("INDMLOPS_INTENT", str(pytester.path / "nowhere.yaml"))
    result = pytester.runpytest_subprocess(RULES, "--manifests", str(shop), "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        ("*the isolation intent could not be read: --intent '*nowhere.yaml' from environment INDMLOPS_INTENT: "
         "intent file *nowhere.yaml is missing*"),
        "*FAILED*test_static_rule_holds?intent:load?*",
    ])
    assert result.parseoutcomes() == {"failed": 1}, result.stdout.str()[-2000:]


@pytest.mark.parametrize("text,needle", [
    ("version: 2\n", "expected a mapping with version: 1"),
    ("version: 1\nworkloads: [a, b]\n", "not an isolation intent"),
    ("version: 1\nallow: [{from: a}]\n", "allow entry 1 needs from, to and port"),
    ("version: [1\n", "is not valid YAML"),
])
def test_malformed_intent_from_ini_fails_one_test_naming_file_and_source(pytester, shop, text, needle):
    (pytester.path / "bad-intent.yaml").write_text(text)
    ini = pytester.path / "custom.ini"
    ini.write_text(f"[pytest]\nmarkers =\n    static: static\nindmlops_intent = {pytester.path / 'bad-intent.yaml'}\n")
    result = pytester.runpytest_subprocess(RULES, "-c", str(ini), "--manifests", str(shop),
                                           "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.parseoutcomes() == {"failed": 1}, out[-2000:]
    assert "intent:load" in out and "from ini indmlops_intent" in out and "bad-intent.yaml" in out, out[-2000:]
    assert needle in out, out[-2000:]
