"""The GitHub workflows, validated offline: the vendored workflow schema, and what nightly must do on kind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def steps(name: str) -> list[dict]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def script(name: str) -> str:
    return "\n".join(s.get("run", "") for s in steps(name))


@pytest.mark.parametrize("name", ["nightly.yml", "pr.yml"])
def test_workflow_is_valid_under_the_github_workflow_schema(name):
    res = check(WORKFLOWS / name)
    assert res.returncode == 0, (f"{WORKFLOWS / name} fails the GitHub workflow schema; reproduce with "
                                 f"`{CHECK_JSONSCHEMA} --builtin-schema vendor.github-workflows {WORKFLOWS / name}`:"
                                 f"\n{res.stdout}{res.stderr}")


def test_schema_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text((WORKFLOWS / "pr.yml").read_text().replace("steps:", "stepz:", 1))
    res = check(broken)
    assert res.returncode == 1
    assert "'stepz' was unexpected" in res.stdout


@pytest.mark.parametrize("name", ["nightly.yml", "pr.yml"])
def test_every_action_is_pinned_to_a_version(name):
    for step in steps(name):
        if "uses" in step:
            assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", step["uses"]), f"{name}: unpinned {step['uses']}"


def test_nightly_runs_the_suites_on_kind_with_the_full_profile_and_keeps_reports():
    run = script("nightly.yml")
    assert "pytest suites/ --target kind --profile full --keep-cluster" in run
    assert "scripts/build-images.sh" in run
    uploads = [s for s in steps("nightly.yml") if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == "reports/" and uploads[0]["if"] == "always()"
    dump = next(s for s in steps("nightly.yml") if s.get("if") == "failure()")
    assert "kubectl" in dump["run"] and "reports/cluster" in dump["run"]


def test_nightly_leaves_cluster_cni_loading_and_deploy_to_the_lifecycle():
    """One way to set up kind: the one `pytest --target kind` does (and the project's tests prove)."""
    run = script("nightly.yml")
    for step_done_by_pytest in ("kind create cluster", "kind load", "kubectl apply", "rollout status", "calico"):
        assert step_done_by_pytest not in run.lower(), f"nightly.yml does {step_done_by_pytest!r} itself"
    kind = next(s for s in steps("nightly.yml") if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind["with"]["install_only"] is True and kind["with"]["version"] == "${{ env.KIND_VERSION }}"


def test_nightly_kind_version_is_the_lifecycles_pin_and_cluster_is_kind_cluster_yaml():
    from indmlops.targets.kubernetes.kind import KIND_VERSION
    from indmlops.targets.kubernetes.target import KIND_CONTEXT

    doc = yaml.safe_load((WORKFLOWS / "nightly.yml").read_text())
    assert doc["env"]["KIND_VERSION"] == KIND_VERSION
    assert f"kind-{doc['env']['CLUSTER']}" == KIND_CONTEXT
    cluster = yaml.safe_load((REPO / "manifests/overlays/kind/kind-cluster.yaml").read_text())
    assert cluster["name"] == doc["env"]["CLUSTER"]


def test_nightly_builds_every_project_image_the_lifecycle_loads():
    """build-images.sh with no names builds all of them; the lifecycle then loads every one of containers.IMAGES."""
    build = next(line for line in script("nightly.yml").splitlines() if "scripts/build-images.sh" in line)
    assert not re.search(r"build-images\.sh(\s+--\S+\s+\S+)*\s+[a-z]+\s*$", build), f"builds only some: {build}"


def test_pr_workflow_runs_the_static_suite():
    assert "pytest suites/static" in script("pr.yml")
