"""The container image definitions: static rules on images/*/Dockerfile, and that the rules catch violations."""

import json
import re
from pathlib import Path

import pytest

from indmlops.checks.images import ENTRYPOINTS, RULES, check_dockerfile, parse

REPO = Path(__file__).resolve().parents[2]
IMAGES = ["inference", "simulator", "mlflow"]


def dockerfile(image: str) -> tuple[str, str]:
    name = f"images/{image}/Dockerfile"
    return name, (REPO / name).read_text()


def final_stage(text: str):
    instructions = parse(text)
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from + 1:]


@pytest.mark.parametrize("image", IMAGES, ids=[f"image/{i}" for i in IMAGES])
def test_dockerfile_follows_the_image_rules(image):
    name, text = dockerfile(image)
    assert check_dockerfile(name, text, entrypoint=ENTRYPOINTS.get(image, "indmlops")) == []


def test_every_image_directory_is_checked():
    assert sorted(p.parent.name for p in (REPO / "images").glob("*/Dockerfile")) == sorted(IMAGES)


def test_mlflow_image_installs_its_drivers_at_build_time_pinned_like_pyproject():
    _, text = dockerfile("mlflow")
    pyproject = (REPO / "pyproject.toml").read_text()
    for pin in ("mlflow==3.17.2", "psycopg[binary]==3.3.9", "prometheus-flask-exporter==0.23.2"):
        assert f'"{pin}"' in pyproject and f'"{pin}"' in text, pin
    assert re.search(r'"boto3==[0-9.]+"', text)
    final = final_stage(text)
    assert [json.loads(i.args) for i in final if i.keyword == "ENTRYPOINT"] == [["mlflow"]]
    assert [i.args for i in final if i.keyword == "EXPOSE"] == ["5000"]


@pytest.mark.parametrize(("image", "cmd"), [
    ("inference", ["serve", "--http", "0.0.0.0:8088"]),
    ("simulator", ["simulate", "--duration", "86400", "--rate", "100"]),
], ids=["image/inference", "image/simulator"])
def test_default_command_and_labels(image, cmd):
    _, text = dockerfile(image)
    final = final_stage(text)
    assert [json.loads(i.args) for i in final if i.keyword == "ENTRYPOINT"] == [["indmlops"]]
    assert [json.loads(i.args) for i in final if i.keyword == "CMD"] == [cmd]
    assert [i.args for i in final if i.keyword == "USER"] == ["10001"]
    labels = " ".join(i.args for i in final if i.keyword == "LABEL")
    for key in ("title", "description", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert [i.args for i in final if i.keyword == "COPY"] == ["--from=builder /opt/venv /opt/venv"]


def test_only_the_inference_image_installs_the_onnx_extra_and_exposes_8088():
    _, inference = dockerfile("inference")
    _, simulator = dockerfile("simulator")
    assert '[onnx]"' in inference and "[onnx]" not in simulator
    assert [i.args for i in final_stage(inference) if i.keyword == "EXPOSE"] == ["8088"]
    assert "http://127.0.0.1:8088/healthz" in inference
    assert "indmlops simulate --stdout --count 1" in simulator
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^onnx = \["onnxruntime==[^"]+"\]$', pyproject, re.M)


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    entries = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".indmlops", "reports", "node_modules", ".git", "**/__pycache__", ".pytest_cache",
            ".hypothesis"} <= entries


# Each mutation breaks the given rule(s) of a clean Dockerfile, and no other; every message names the file and
# the rule.
MUTATIONS = {
    "user-removed": (lambda t: t.replace("USER 10001\n", ""), "non-root-user"),
    "user-root": (lambda t: t.replace("USER 10001\n", "USER 0\n"), "non-root-user"),
    "user-by-name": (lambda t: t.replace("USER 10001\n", "USER indmlops\n"), "non-root-user"),
    "user-commented-out": (lambda t: t.replace("USER 10001\n", "# USER 10001\n"), "non-root-user"),
    "base-latest": (lambda t: re.sub(r"(?m)^ARG BASE_IMAGE=.*$", "ARG BASE_IMAGE=python:latest", t),
                    "base-image-arg"),
    "base-untagged": (lambda t: re.sub(r"(?m)^ARG BASE_IMAGE=.*$", "ARG BASE_IMAGE=python", t), "base-image-arg"),
    "arg-not-first": (lambda t: t.replace("ARG BASE_IMAGE=", "ARG OTHER=1\nARG BASE_IMAGE=", 1), "base-image-arg"),
    "from-hardcoded": (lambda t: t.replace("FROM ${BASE_IMAGE} AS builder", "FROM python:3.11 AS builder"),
                       "from-base-image"),
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
    mutate, rules = MUTATIONS[mutation]
    broken = mutate(text)
    assert broken != text, f"mutation {mutation} did not change {name}"
    problems = check_dockerfile(name, broken, entrypoint=ENTRYPOINTS.get(image, "indmlops"))
    assert problems, f"{mutation}: no violation reported"
    assert all(p.startswith(f"{name}: [") for p in problems), problems
    assert {re.match(r".*?: \[([a-z-]+)\]", p).group(1) for p in problems} == set(rules.split()), problems


def test_rule_ids_are_documented():
    assert {rule for _, rules in MUTATIONS.values() for rule in rules.split()} == set(RULES)
