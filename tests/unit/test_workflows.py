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
    assert "pytest suites/ --target kind --profile full" in run
    assert "scripts/build-images.sh" in run and "kind load docker-image" in run
    assert "kubectl apply -k manifests/overlays/kind" in run
    uploads = [s for s in steps("nightly.yml") if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == "reports/" and uploads[0]["if"] == "always()"


def test_nightly_cluster_is_kind_cluster_yaml_with_the_target_default_context():
    from indmlops.targets.kubernetes import KIND_CONTEXT

    doc = yaml.safe_load((WORKFLOWS / "nightly.yml").read_text())
    kind = next(s for s in steps("nightly.yml") if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind["with"]["config"] == "manifests/overlays/kind/kind-cluster.yaml"
    assert f"kind-{doc['env']['CLUSTER']}" == KIND_CONTEXT
    cluster = yaml.safe_load((REPO / "manifests/overlays/kind/kind-cluster.yaml").read_text())
    assert cluster["name"] == doc["env"]["CLUSTER"]


def test_nightly_loads_every_project_image_the_manifests_use():
    run = script("nightly.yml")
    version = re.search(r'^version = "(.*)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    used = set(re.findall(r"image: (indmlops-[a-z]+:\S+)", "\n".join(
        p.read_text() for p in (REPO / "manifests" / "base").rglob("*.yaml"))))
    assert used, "no project image found in manifests/base"
    loaded = set(re.findall(r"indmlops-[a-z]+:[\w.${}]+", run.split("kind load docker-image", 1)[1]))
    loaded = {ref.replace("${version}", version) for ref in loaded}
    assert used <= loaded, f"images the manifests use but nightly does not load: {sorted(used - loaded)}"


def test_pr_workflow_runs_the_static_suite():
    assert "pytest suites/static" in script("pr.yml")
