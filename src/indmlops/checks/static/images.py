"""Static checks on the project's Dockerfiles (images/*/Dockerfile): plain text, no container engine needed."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

# Rule ids, as they appear in violation messages ("<file>: [<rule>] <detail>").
RULES = {
    "base-image-arg": "the first instruction is ARG BASE_IMAGE=<image:pinned-tag> (not :latest)",
    "multi-stage": "at least two FROM lines (a builder stage and a runtime stage)",
    "from-base-image": "every FROM uses ${BASE_IMAGE}",
    "non-root-user": "the final stage sets USER to a numeric, non-zero uid",
    "healthcheck": "the final stage has a HEALTHCHECK",
    "no-pip-in-final": "no pip install in the final stage (installs happen in the builder)",
    "entrypoint": "the final stage's ENTRYPOINT runs the image's program (indmlops, or e.g. mlflow)",
}

_PIP_INSTALL = re.compile(r"\bpip[0-9.]*(?:\s+-\S+)*\s+install\b")
_BASE_REF = re.compile(r"^(?:\$\{BASE_IMAGE\}|\$BASE_IMAGE)$")


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line of the instruction's first line
    keyword: str  # upper case
    args: str  # continuation lines joined, comment lines inside a continuation dropped


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: `\\` continuations joined, comments and blank lines skipped."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and (not stripped or stripped.startswith("#")):  # inside a continuation, as docker does
            continue
        if not parts:
            start = n
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        joined = " ".join(p for p in parts if p)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    if parts:  # a trailing continuation at end of file
        joined = " ".join(p for p in parts if p)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def _from_image(args: str) -> str:
    words = [w for w in args.split() if not w.startswith("--")]  # drop --platform=...
    return words[0] if words else ""


def _words(args: str) -> list[str]:
    if args.startswith("["):
        try:
            value = json.loads(args)
            if isinstance(value, list):
                return [str(v) for v in value]
        except json.JSONDecodeError:
            pass
    try:
        return shlex.split(args)
    except ValueError:
        return args.split()


# The program each image's ENTRYPOINT must run; images not listed run the project's own CLI. The cluster overlay's
# service images (manifests/overlays/cluster) run the service they stand for.
ENTRYPOINTS = {"mlflow": "mlflow", "probe": "indmlops-netprobe", "postgres": "docker-entrypoint.sh",
               "mosquitto": "mosquitto", "prometheus": "prometheus", "nodered": "node", "s3": "indmlops-s3",
               "jupyter": "env"}
# Images that install one Debian package and build nothing: a builder stage would hold nothing to leave behind.
SINGLE_STAGE = frozenset({"postgres", "mosquitto", "prometheus"})


def check_image(name: str, text: str) -> list[str]:
    """check_dockerfile with what images/<name>/Dockerfile is held to."""
    return check_dockerfile(f"images/{name}/Dockerfile", text, entrypoint=ENTRYPOINTS.get(name, "indmlops"),
                            multi_stage=name not in SINGLE_STAGE)


def check_dockerfile(name: str, text: str, *, entrypoint: str = "indmlops", multi_stage: bool = True) -> list[str]:
    """The rules in RULES that `text` (the Dockerfile called `name`) breaks, one message each; [] when clean.

    `entrypoint` is the program the final ENTRYPOINT must run (`indmlops` for the project's own images)."""
    problems: list[str] = []

    def bad(rule: str, detail: str) -> None:
        problems.append(f"{name}: [{rule}] {detail} (rule: {RULES[rule]})")

    instructions = parse(text)
    if not instructions:
        bad("base-image-arg", "no instructions at all")
        return problems

    first = instructions[0]
    key, sep, value = first.args.partition("=")
    value = value.strip().strip("\"'")
    if first.keyword != "ARG" or key.strip() != "BASE_IMAGE" or not sep:
        bad("base-image-arg", f"line {first.line}: first instruction is {first.keyword} {first.args!r}")
    elif ":" not in value.rsplit("/", 1)[-1] and "@sha256:" not in value:
        bad("base-image-arg", f"line {first.line}: BASE_IMAGE={value!r} has no pinned tag")
    elif "latest" in value.lower():
        bad("base-image-arg", f"line {first.line}: BASE_IMAGE={value!r} uses 'latest'")

    froms = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    if len(froms) < (2 if multi_stage else 1):
        bad("multi-stage", f"{len(froms)} FROM line(s)")
    for i in froms:
        image = _from_image(instructions[i].args)
        if not _BASE_REF.match(image):
            bad("from-base-image", f"line {instructions[i].line}: FROM {image!r} instead of ${{BASE_IMAGE}}")
    if not froms:
        return problems

    final = instructions[froms[-1] + 1:]
    users = [ins for ins in final if ins.keyword == "USER"]
    if not users:
        bad("non-root-user", "the final stage has no USER instruction (it would run as root)")
    else:
        uid = users[-1].args.split(":", 1)[0].strip()
        if not uid.isdigit():
            bad("non-root-user", f"line {users[-1].line}: USER {users[-1].args!r} is not a numeric uid")
        elif int(uid) == 0:
            bad("non-root-user", f"line {users[-1].line}: USER {users[-1].args!r} is root")

    checks = [ins for ins in final if ins.keyword == "HEALTHCHECK"]
    if not checks:
        bad("healthcheck", "the final stage has no HEALTHCHECK")
    elif checks[-1].args.strip().upper() == "NONE":
        bad("healthcheck", f"line {checks[-1].line}: HEALTHCHECK NONE disables the health check")

    for ins in final:
        if ins.keyword == "RUN" and _PIP_INSTALL.search(ins.args):
            bad("no-pip-in-final", f"line {ins.line}: RUN {ins.args[:80]!r} installs in the final stage")

    entrypoints = [ins for ins in final if ins.keyword == "ENTRYPOINT"]
    if not entrypoints:
        bad("entrypoint", "the final stage has no ENTRYPOINT")
    else:
        words = _words(entrypoints[-1].args)
        if not any(w.rsplit("/", 1)[-1] == entrypoint or w.startswith(f"{entrypoint}.") for w in words):
            bad("entrypoint",
                f"line {entrypoints[-1].line}: ENTRYPOINT {entrypoints[-1].args!r} does not run {entrypoint}")
    return problems
