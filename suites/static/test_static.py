"""Static conformance of the rendered manifests: one test per object and rule (`Deployment/it-core/mlflow:probes`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.checks.live import server_validation
from indmlops.checks.static import schema
from indmlops.checks.static.isolation import IntentError, computed_matrix
from indmlops.checks.static.netpol import format_matrix
from indmlops.checks.static.rules import message, run
from indmlops.errors import NotSupportedByTarget
from indmlops.manifests import ManifestError, load_cached
from indmlops.plugin import manifests_dir, option

pytestmark = pytest.mark.static


def test_static_rule_holds(static_case, request, static_policy, pytestconfig):
    if isinstance(static_case, ManifestError):
        pytest.fail(f"the manifests could not be read: {static_case}", pytrace=False)
    if isinstance(static_case, IntentError):
        pytest.fail(f"the isolation intent could not be read: {static_case}", pytrace=False)
    static_manifests = request.getfixturevalue("static_manifests")
    isolation_intent = request.getfixturevalue("isolation_intent")
    try:
        problems = run(static_case, static_manifests, static_policy, isolation_intent)
    except schema.NoSchema as exc:
        pytest.skip(f"{static_case.subject}: {exc} (a custom resource: validate it with its CRD's schema)")
    if static_case.rule == "isolation":
        keep_matrix(static_manifests, isolation_intent, Path(option(pytestconfig, "reports_dir")),
                    static_policy.cluster_networks)
    if problems:
        pytest.fail(message(static_case, problems), pytrace=False)


def test_object_accepted_by_the_api_server(server_case, request, pytestconfig):
    if server_case is None:
        pytest.skip("server-side validation needs a cluster: the local target runs no Kubernetes API server; run "
                    "`pytest suites/static --target kubeconfig --kubeconfig FILE` to have it judge every object")
    target = request.getfixturevalue("target")
    declared = server_validation.declared_namespaces(load_cached(manifests_dir(pytestconfig)).objects)
    try:
        server_validation.object_accepted(target, server_case, declared=declared)
    except NotSupportedByTarget as exc:
        pytest.skip(str(exc))


def keep_matrix(manifests, intent, reports: Path, networks=None) -> None:
    """The computed reachability matrix, printed and kept in reports/static/, pass or fail."""
    try:
        cells, _ = computed_matrix(manifests, intent, networks)
    except (TypeError, AttributeError, KeyError, ValueError, IndexError, ArithmeticError) as exc:
        # Junk where the matrix reads: the isolation case has reported it as "cannot be judged".
        text = f"reachability matrix of {manifests.root} cannot be computed: {type(exc).__name__}: {exc}\n"
    else:
        text = (f"reachability matrix of {manifests.root} ({sum(cells.values())} of {len(cells)} cells allowed; "
                f"intent: {intent.source if intent else 'none'})\n{format_matrix(cells)}\n")
    print(text)
    (reports / "static").mkdir(parents=True, exist_ok=True)
    (reports / "static" / "isolation-matrix.txt").write_text(text)
