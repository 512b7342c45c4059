"""Send saved payloads again (`python -m indmlops.checks.live.robustness replay DIR`) and check the edge after each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indmlops.checks.live.robustness import payloads as saved
from indmlops.checks.live.robustness.checks import edge_alive
from indmlops.checks.live.robustness.edge import Budget, Edge, budget
from indmlops.targets.base import Target


def replay(target: Target, directory: Path, budget_: Budget, echo: Any = print) -> int:
    """Send every saved payload of `directory` again, each followed by edge_alive; returns the failures."""
    edge = Edge(target, directory / "replayed", budget_)
    failures = 0
    try:
        for path, payload in saved.load(directory):
            if payload.channel == "http":
                status, text = edge.post_framed(payload.where, payload.data, payload.framing) if payload.framing \
                    else edge.post(payload.where, payload.data)
                seen = f"HTTP {status} {text[:100]!r}"
            else:
                acked = edge.publish(payload.where, payload.data)
                seen = "published" if acked else "NOT acknowledged by the broker"
            try:
                if payload.channel == "http" and (status is None or status >= 500):
                    raise AssertionError(f"{seen} (expected a 4xx, never a 5xx or a dropped connection)")
                ms = edge_alive(edge, after=[])
                echo(f"ok   {path.name} on {saved.shorten(payload.where)}: {seen}; /healthz, /readyz 200; valid "
                     f"readings predicted in {', '.join(f'{m:.1f}' for m in ms)} ms")
            except AssertionError as exc:
                failures += 1
                echo(f"FAIL {path.name} on {saved.shorten(payload.where)}: {seen}; {exc}")
    finally:
        edge.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    """`python -m indmlops.checks.live.robustness replay DIR [--profile quick]` against the local stack
    (INDMLOPS_STATE_DIR and the port variables as for `indmlops`); exit 1 when the edge fails after any payload."""
    import argparse

    from indmlops.targets.factory import TargetSpec, open_target

    parser = argparse.ArgumentParser(prog="python -m indmlops.checks.live.robustness")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("replay", help="send saved payloads again and check the edge after each")
    rp.add_argument("directory", type=Path)
    rp.add_argument("--profile", default="quick", help="budget profile of fixtures/robustness.yaml (waits)")
    rp.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    with open_target(TargetSpec("local", state_dir=args.state_dir, start=False)) as target:
        failures = replay(target, args.directory, budget(args.profile))
    return 1 if failures else 0
