"""The evaluator under hostile manifests: junk of any type at any path of the shipped objects, or whole documents of
random shape, gives cases and findings, never an exception (a crashed static test says nothing about the set)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indmlops import manifests
from indmlops.checks.static import schema
from indmlops.checks.static.isolation import load_intent
from indmlops.checks.static.rules import Case, StaticPolicy, cases, run
from indmlops.manifests import WORKLOAD_KINDS, ManifestError, Manifests, Obj, load_cached

REPO = Path(__file__).resolve().parents[2]
POLICY = StaticPolicy.from_fixture(yaml.safe_load((REPO / "fixtures" / "static.yaml").read_text()), REPO / "images")
INTENT = load_intent(REPO / "fixtures" / "isolation" / "intent.yaml")
SHIPPED = load_cached(REPO / "manifests" / "overlays" / "kind")
# derandomize: the same examples on every run, so CI is deterministic and a failure reproduces; no example
# database (nothing written under .hypothesis). Both properties together take ~10-15 s on 2 cores.
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What YAML can put anywhere: scalars of every type (a quoted number, an unquoted date-like string, inf), and
# small nested lists and mappings with keys that are not strings.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63), st.floats(),
                    st.text(max_size=12), st.sampled_from(["5000", "http", "", "None", "ALL", "0.0.0.0/0", "Always"]))
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.none()), inner, max_size=3)), max_leaves=6)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path below `node` to a value (mapping value or list item), the containers themselves included."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def put(body: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    body[path[-1]] = value


def run_all(m: Manifests, selected: list[Case]) -> None:
    for case in selected:
        try:
            problems = run(case, m, POLICY, INTENT)
        except schema.NoSchema:
            continue
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems), (case.id, problems)


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_junk_anywhere_in_the_shipped_objects_gives_findings_never_an_exception(data):
    objects = [Obj(copy.deepcopy(o.body), o.source) for o in SHIPPED.objects]
    touched: list[Obj] = []
    for _ in range(data.draw(st.integers(1, 3), label="replacements")):
        obj = data.draw(st.sampled_from(objects), label="object")
        where = data.draw(st.sampled_from(paths(obj.body)), label="path")
        put(obj.body, where, data.draw(junk, label="junk"))
        touched.append(obj)
    m = Manifests(SHIPPED.root, objects, SHIPPED.rendered_by)
    found = cases(m, POLICY)
    refs = {o.ref for o in touched}
    # Every rule but the schema reads other objects too (a Service's ports read the workloads it selects), and
    # is cheap: run them all; the schema, the slow one, only for the objects that changed.
    run_all(m, [c for c in found if c.rule != "schema" or c.subject in refs])


KINDS = [*WORKLOAD_KINDS, "Service", "ConfigMap", "Secret", "NetworkPolicy", "Namespace", "PersistentVolumeClaim",
         "ServiceAccount", "List", "Widget"]
API_VERSIONS = ["v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "example.com/v1", "x"]
# Keys the accessors and rules look up, so random shapes reach deep paths (spec.template.spec.containers[0]...).
KEYS = ["metadata", "name", "namespace", "labels", "annotations", "spec", "template", "jobTemplate", "containers",
        "initContainers", "volumes", "ports", "port", "targetPort", "containerPort", "selector", "matchLabels",
        "env", "envFrom", "valueFrom", "secretKeyRef", "configMap", "secret", "items", "data", "stringData",
        "replicas", "image", "command", "args", "ingress", "egress", "from", "to", "podSelector", "policyTypes",
        "ipBlock", "cidr", "except", "resources", "limits", "requests", "securityContext", "volumeMounts",
        "persistentVolumeClaim", "claimName", "scrape_configs", "prometheus.yml", "mosquitto.conf", "type"]
shaped = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=12)
documents = st.builds(lambda kind, api, rest: {**rest, "apiVersion": api, "kind": kind},
                      st.sampled_from(KINDS), st.sampled_from(API_VERSIONS),
                      st.dictionaries(st.sampled_from(KEYS), shaped, max_size=4))


@settings(FUZZ, max_examples=100)
@given(docs=st.lists(st.one_of(documents, st.none()), min_size=1, max_size=4))
def test_documents_of_random_shape_give_findings_never_an_exception(docs):
    try:
        objects = manifests._load_docs(yaml.safe_dump_all(docs), "fuzz.yaml")
    except ManifestError:
        return  # refused with a message (a List item that is no object): what a user sees, not a crash
    m = Manifests(REPO, objects, "yaml")
    run_all(m, cases(m, POLICY))


@pytest.mark.parametrize("text", ["", "---\n---\n", "a: &x [*x]\napiVersion: v1\nkind: ConfigMap\n",
                                  "apiVersion: v1\nkind: 5\n", "apiVersion: v1\nkind: List\nitems: [5]\n"])
def test_odd_documents_are_refused_or_skipped_never_a_crash(text):
    try:
        assert manifests._load_docs(text, "odd.yaml") == []
    except ManifestError as exc:
        assert "odd.yaml: document 1" in str(exc)
