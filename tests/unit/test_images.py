"""The container image definitions: static rules on images/*/Dockerfile, and that the rules catch violations."""

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

from indmlops.checks.static.images import ENTRYPOINTS, RULES, SINGLE_STAGE, check_dockerfile, check_image, parse

REPO = Path(__file__).resolve().parents[2]
PYTHON_APP_IMAGES = ["inference", "simulator", "mlflow"]  # a venv built with pip in the builder stage
# The cluster overlay's service images (manifests/overlays/cluster): Debian packages, npm and PyPI.
SERVICE_IMAGES = ["postgres", "mosquitto", "prometheus", "nodered", "s3", "jupyter"]
IMAGES = [*PYTHON_APP_IMAGES, "probe", *SERVICE_IMAGES]  # probe: one standard-library script, nothing installed


def dockerfile(image: str) -> tuple[str, str]:
    name = f"images/{image}/Dockerfile"
    return name, (REPO / name).read_text()


def final_stage(text: str):
    instructions = parse(text)
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from + 1:]


@pytest.mark.parametrize("image", IMAGES, ids=[f"image/{i}" for i in IMAGES])
def test_dockerfile_follows_the_image_rules(image):
    _, text = dockerfile(image)
    assert check_image(image, text) == []


def test_every_image_directory_is_checked():
    assert sorted(p.parent.name for p in (REPO / "images").glob("*/Dockerfile")) == sorted(IMAGES)


@pytest.mark.parametrize(("image", "extra"), [("inference", "serve"), ("simulator", "simulate"),
                                              ("mlflow", "tracking")], ids=["image/inference", "image/simulator",
                                                                            "image/mlflow"])
def test_image_installs_its_extra_and_pins_nothing_itself(image, extra):
    """pyproject.toml is the one source of pins: an image installs its extra's requirements as
    scripts/requirements.py reads them, and no RUN line names a version of its own."""
    _, text = dockerfile(image)
    runs = [i.args for i in parse(text) if i.keyword == "RUN"]
    assert any(f"scripts/requirements.py {extra} " in r and "pip install" in r for r in runs), runs
    pinned = [m for r in runs for m in re.findall(r"[\w.\[\]-]+(?:==|>=)[0-9][\w.]*", r)]
    assert pinned == [], f"images/{image}/Dockerfile pins {pinned}: put them in pyproject.toml's {extra} extra"


def test_requirements_script_expands_extras_from_pyproject():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "scripts" / "requirements.py"), "tracking"], check=True,
                         capture_output=True, text=True).stdout.split()
    for pin in ("mlflow==3.17.2", "psycopg[binary]==3.3.9", "prometheus-flask-exporter==0.23.2", "paho-mqtt==2.2.0"):
        assert pin in out, (pin, out)
    suite = subprocess.run([sys.executable, str(REPO / "scripts" / "requirements.py"), "suite"], check=True,
                           capture_output=True, text=True).stdout.split()
    assert "mlflow-skinny==3.17.2" in suite and "onnxruntime==1.32.0" in suite  # indmlops[serve,...] expanded
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "requirements.py"), "nope"], capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "no extra 'nope'" in bad.stderr


def test_mlflow_image_serves_mlflow_on_5000():
    _, text = dockerfile("mlflow")
    final = final_stage(text)
    assert [json.loads(i.args) for i in final if i.keyword == "ENTRYPOINT"] == [["mlflow"]]
    assert [i.args for i in final if i.keyword == "EXPOSE"] == ["5000"]


@pytest.mark.parametrize(("image", "cmd"), [
    ("inference", ["serve", "--http", "0.0.0.0:8088"]),
    ("simulator", ["simulate", "--duration", "86400", "--rate", "100"]),
    ("mlflow", ["server"]),
], ids=["image/inference", "image/simulator", "image/mlflow"])
def test_default_command_and_labels(image, cmd):
    _, text = dockerfile(image)
    final = final_stage(text)
    assert [json.loads(i.args) for i in final if i.keyword == "ENTRYPOINT"] == [[ENTRYPOINTS.get(image, "indmlops")]]
    assert [json.loads(i.args) for i in final if i.keyword == "CMD"] == [cmd]
    assert [i.args for i in final if i.keyword == "USER"] == ["10001"]
    labels = " ".join(i.args for i in final if i.keyword == "LABEL")
    for key in ("title", "description", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert [i.args for i in final if i.keyword == "COPY"] == ["--from=builder /opt/venv /opt/venv"]


def test_probe_image_ships_one_standard_library_script_and_installs_nothing():
    _, text = dockerfile("probe")
    final = final_stage(text)
    assert [json.loads(i.args) for i in final if i.keyword == "ENTRYPOINT"] == [["indmlops-netprobe"]]
    assert [i.args for i in final if i.keyword == "USER"] == ["10001"]
    assert [i.args for i in final if i.keyword == "COPY"] == [
        "--from=builder /opt/netprobe/indmlops-netprobe /usr/local/bin/indmlops-netprobe"]
    assert "pip" not in text and not [i for i in final if i.keyword == "RUN"]
    source = (REPO / "src" / "indmlops" / "netprobe.py").read_text()
    imported = set(re.findall(r"(?m)^(?:from|import) ([a-z_]+)", source)) - {"__future__"}
    assert imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


def test_only_the_inference_image_installs_onnxruntime_and_exposes_8088():
    _, inference = dockerfile("inference")
    _, simulator = dockerfile("simulator")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(r.startswith("onnxruntime==") for r in extras["serve"])
    assert not any("onnxruntime" in r for r in project["dependencies"] + extras["simulate"])
    assert "scripts/requirements.py serve " in inference and "scripts/requirements.py simulate " in simulator
    assert [i.args for i in final_stage(inference) if i.keyword == "EXPOSE"] == ["8088"]
    assert "http://127.0.0.1:8088/healthz" in inference
    assert "indmlops simulate --stdout --count 1" in simulator


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    entries = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".indmlops", "reports", "node_modules", ".git", "**/__pycache__", ".pytest_cache",
            ".hypothesis"} <= entries


def _last_user(text: str, new) -> str:
    """The final stage's USER line replaced by `new` (a line, or a function of the old line)."""
    lines = text.splitlines(keepends=True)
    i = max(n for n, line in enumerate(lines) if line.startswith("USER "))
    lines[i] = new(lines[i]) if callable(new) else new
    return "".join(lines)


# Each mutation breaks the given rule(s) of a clean Dockerfile, and no other; every message names the file and
# the rule.
MUTATIONS = {
    "user-removed": (lambda t: _last_user(t, ""), "non-root-user"),
    "user-root": (lambda t: _last_user(t, "USER 0\n"), "non-root-user"),
    "user-by-name": (lambda t: _last_user(t, "USER indmlops\n"), "non-root-user"),
    "user-commented-out": (lambda t: _last_user(t, lambda line: f"# {line}"), "non-root-user"),
    "base-latest": (lambda t: re.sub(r"(?m)^ARG BASE_IMAGE=.*$", "ARG BASE_IMAGE=python:latest", t),
                    "base-image-arg"),
    "base-untagged": (lambda t: re.sub(r"(?m)^ARG BASE_IMAGE=.*$", "ARG BASE_IMAGE=python", t), "base-image-arg"),
    "arg-not-first": (lambda t: t.replace("ARG BASE_IMAGE=", "ARG OTHER=1\nARG BASE_IMAGE=", 1), "base-image-arg"),
    "from-hardcoded": (lambda t: t.replace("FROM ${BASE_IMAGE}", "FROM python:3.11", 1), "from-base-image"),
    # Without the runtime FROM, the builder is the final stage: its pip install now lands in the image.
    "single-stage": (lambda t: t.replace("FROM ${BASE_IMAGE} AS runtime\n", ""), "multi-stage no-pip-in-final"),
    "healthcheck-removed": (lambda t: re.sub(r"(?ms)^HEALTHCHECK .*?(?<!\\)\n", "", t), "healthcheck"),
    "healthcheck-none": (lambda t: re.sub(r"(?ms)^HEALTHCHECK .*?(?<!\\)\n", "HEALTHCHECK NONE\n", t),
                         "healthcheck"),
    "pip-in-final": (lambda t: t + "RUN pip install requests\n", "no-pip-in-final"),
    "pip-in-final-continued": (lambda t: t + "RUN set -e \\\n    && python -m pip --no-cache-dir install x\n",
                               "no-pip-in-final"),
    "entrypoint-changed": (lambda t: re.sub(r'(?m)^ENTRYPOINT .*$', 'ENTRYPOINT ["python"]', t), "entrypoint"),
}


@pytest.mark.parametrize("image", IMAGES, ids=[f"image/{i}" for i in IMAGES])
@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=[f"mutation/{m}" for m in MUTATIONS])
def test_check_catches_a_broken_dockerfile(image, mutation):
    name, text = dockerfile(image)
    if mutation == "single-stage" and image in SINGLE_STAGE:
        pytest.skip(f"{name} is one stage by design (a Debian package, nothing built): see SINGLE_STAGE")
    mutate, rules = MUTATIONS[mutation]
    broken = mutate(text)
    assert broken != text, f"mutation {mutation} did not change {name}"
    if mutation == "single-stage" and image in ("probe", "nodered"):
        rules = "multi-stage"  # its builder has no pip install to land in the final stage (none, or npm)
    problems = check_image(image, broken)
    assert problems, f"{mutation}: no violation reported"
    assert all(p.startswith(f"{name}: [") for p in problems), problems
    assert {re.match(r".*?: \[([a-z-]+)\]", p).group(1) for p in problems} == set(rules.split()), problems


def test_rule_ids_are_documented():
    assert {rule for _, rules in MUTATIONS.values() for rule in rules.split()} == set(RULES)


def test_entrypoint_rule_names_the_expected_program():
    name, text = dockerfile("inference")
    problems = check_dockerfile(name, text, entrypoint="mlflow")
    line = next(i.line for i in parse(text) if i.keyword == "ENTRYPOINT")
    expected = (f"{name}: [entrypoint] line {line}: ENTRYPOINT '[\"indmlops\"]' does not run mlflow "
                f"(rule: {RULES['entrypoint']})")
    assert problems == [expected]
