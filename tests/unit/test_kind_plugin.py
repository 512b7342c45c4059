"""`pytest --target kind` end to end through the plugin (pytester subprocess): the lifecycle's progress shows live,
tests get the kind target, and the cluster the session created is deleted at the end; failures exit with the reason."""

from __future__ import annotations

import os

import pytest
from kind_fake import make_stubs
from kube_fake import FakeCluster, FakeKindApi, server_kubeconfig, workload

from indmlops.manifests import load
from indmlops.targets.kubernetes import deploy as kube_deploy
from indmlops.targets.kubernetes.kind import KIND_OVERLAY, project_images

pytest_plugins = ["pytester"]

OBJECTS = load(KIND_OVERLAY).objects


@pytest.fixture
def project(pytester, httpserver, tmp_path, monkeypatch):
    FakeCluster(httpserver)
    FakeKindApi(httpserver).set_workloads([workload(o.body) for o in OBJECTS if o.kind in kube_deploy.WORKLOAD_KINDS])
    kc = server_kubeconfig(httpserver, tmp_path, "fake.kubeconfig")
    stubs = make_stubs(tmp_path, kc.read_text(), images=[im.source for im in project_images(OBJECTS)])
    monkeypatch.setenv("PATH", f"{stubs.bin}:/usr/bin:/bin")
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    # kubectl apply cannot run against the fake API (no OpenAPI): the stub records it instead. The fake serves no
    # MLflow to register the bootstrap model in (tests/cluster does that on a real cluster).
    pytester.makeconftest('import indmlops.targets.kubernetes.kind as k\n'
                          f'k.kubectl_binary = lambda: {stubs.kubectl!r}\n'
                          'k.ensure_champion = lambda *a: "1"\n'
                          'pytest_plugins = ["indmlops.plugin"]\n')
    pytester.makepyfile(test_x="def test_on_kind(target):\n    assert target.name == 'kind'\n")
    pytester.stubs = stubs
    pytester.kubeconfig = tmp_path / "user.kubeconfig"
    return pytester


def test_target_kind_creates_deploys_runs_and_deletes_the_cluster(project):
    result = project.runpytest_subprocess("--target", "kind", "--kubeconfig", str(project.kubeconfig),
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "indmlops kind: created cluster indmlops (docker, context kind-indmlops) in *",
        "indmlops kind: loaded indmlops-mlflow:3.17.2 (from localhost/indmlops-mlflow:3.17.2)*",
        "indmlops kind: it-core/postgres ready in * s (1/1 ready, 1 updated, 1 total)",
        "indmlops kind: all ready in *",
        "*indmlops kind: deleted cluster indmlops (created by this session)*"])
    assert [x for x in project.stubs.log() if x.startswith("kind delete cluster")]


def test_keep_cluster_from_the_environment_leaves_it(project, monkeypatch):
    monkeypatch.setenv("INDMLOPS_KEEP_CLUSTER", "1")
    result = project.runpytest_subprocess("--target", "kind", "--kubeconfig", str(project.kubeconfig),
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*indmlops kind: kept cluster indmlops (--keep-cluster)*"])
    assert not [x for x in project.stubs.log() if x.startswith("kind delete")]


def test_set_up_failure_exits_the_session_with_the_reason(project):
    project.stubs.knob("images", "")
    result = project.runpytest_subprocess("--target", "kind", "--kubeconfig", str(project.kubeconfig),
                                          "-p", "no:cacheprovider")
    assert result.ret == 3
    result.stdout.fnmatch_lines([("*the kind target could not be set up: image localhost/indmlops-*:* is not built*"
                                  "`indmlops images build *`*")])


def test_context_other_than_kinds_is_a_usage_error(project):
    result = project.runpytest_subprocess("--target", "kind", "--context", "prod", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*--context 'prod' with --target kind: kind's cluster has context 'kind-indmlops'*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_target_kind_deploys_the_overlay_given_with_manifests(project, tmp_path):
    overlay = tmp_path / "their-overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(  # kustomize takes relative paths only
        f"resources: [{os.path.relpath(KIND_OVERLAY, overlay)}]\nlabels: [{{pairs: {{plant: hall-3}}}}]\n")
    result = project.runpytest_subprocess("--target", "kind", "--kubeconfig", str(project.kubeconfig),
                                          "--manifests", str(overlay), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"indmlops kind: deploying {overlay} (* objects)"])
    applied = "".join(p.read_text() for p in sorted(project.stubs.state.glob("applied-*.yaml")))
    assert "plant: hall-3" in applied  # their objects, not the project's overlay


def test_target_kind_without_manifests_deploys_the_projects_overlay(project):
    result = project.runpytest_subprocess("--target", "kind", "--kubeconfig", str(project.kubeconfig),
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"indmlops kind: deploying {KIND_OVERLAY} (* objects)"])
