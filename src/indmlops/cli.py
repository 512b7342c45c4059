"""The `indmlops` command: manage the local stack (up, down, status)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from indmlops.errors import IndMLOpsError
from indmlops.local.layout import default_state_dir, parse_port_overrides, resolve_ports
from indmlops.local.services import SERVICES
from indmlops.local.stack import LocalStack, format_status


def _progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _ports(args: argparse.Namespace) -> dict[str, int] | None:
    offset_text = os.environ.get("INDMLOPS_PORT_OFFSET", "")
    if offset_text and not offset_text.lstrip("-").isdigit():
        raise IndMLOpsError(f"INDMLOPS_PORT_OFFSET {offset_text!r} from environment: expected an integer")
    offset = int(offset_text or 0)
    overrides = parse_port_overrides(os.environ.get("INDMLOPS_PORTS", ""), "INDMLOPS_PORTS")
    for item in args.port or []:
        overrides.update(parse_port_overrides(item, "--port"))
    if not offset and not overrides:
        return None
    return resolve_ports(offset, overrides)


def _simulate(args: argparse.Namespace, state_dir: Path) -> int:
    import itertools
    import json

    from indmlops.probes import Endpoint, ProbeFailed
    from indmlops.simulator.model import Plant
    from indmlops.simulator.publish import publish

    try:
        plant = Plant(seed=args.seed, lines=args.lines, machines=args.machines, mean_gap_s=args.fault_gap)
    except ValueError as exc:
        raise IndMLOpsError(f"simulate: {exc}") from None
    if args.stdout:
        for reading in itertools.islice(plant.readings(), args.count if args.count is not None else 10):
            print(json.dumps(reading, separators=(",", ":")))
        return 0
    if args.count is None and args.duration is None:
        raise IndMLOpsError("simulate: give --count or --duration (or --stdout to print readings)")
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise IndMLOpsError(f"--mqtt {args.mqtt!r}: expected HOST:PORT")
        endpoint = Endpoint("mosquitto", host, int(port), "mqtt")
    else:
        from indmlops.targets.local import LocalTarget

        endpoint = LocalTarget(state_dir).endpoint("mosquitto")
    if args.password_env:
        if args.password_env not in os.environ:
            raise IndMLOpsError(f"--password-env {args.password_env}: that variable is not set")
        password = os.environ[args.password_env]
    else:
        from indmlops.targets.local import LocalTarget

        password = LocalTarget(state_dir).credentials("mosquitto", args.username).password
    try:
        stats = publish(plant, endpoint=endpoint, username=args.username, password=password, rate=args.rate,
                        count=args.count, duration=args.duration, qos=args.qos, progress=_progress)
    except (ProbeFailed, TimeoutError, ConnectionError, ValueError) as exc:
        raise IndMLOpsError(str(exc)) from None
    print(stats.summary())
    return 0 if stats.qos == 0 or stats.acked == stats.published else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indmlops", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="state directory (default: $INDMLOPS_STATE_DIR or .indmlops/ in the repo)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the local stack (or the named services) and wait until ready")
    up.add_argument("services", nargs="*", metavar="SERVICE",
                    help=f"any of: {', '.join(SERVICES)} (default: all)")
    up.add_argument("--port", action="append", metavar="NAME=PORT",
                    help="override a port, e.g. --port mosquitto=11883 (also INDMLOPS_PORTS, INDMLOPS_PORT_OFFSET)")
    up.add_argument("--timeout", type=float, default=None, help="per-service readiness timeout in seconds")
    sim = sub.add_parser("simulate", help="publish simulated machine telemetry over MQTT (or print it)")
    sim.add_argument("--lines", type=int, default=1, help="production lines (default 1)")
    sim.add_argument("--machines", type=int, default=4, help="machines per line (default 4)")
    sim.add_argument("--seed", type=int, default=0, help="seed: same seed, same readings (default 0)")
    sim.add_argument("--rate", type=float, default=100.0, help="messages per second in all; 0 = unthrottled")
    sim.add_argument("--qos", type=int, choices=(0, 1), default=1)
    sim.add_argument("--count", type=int, help="stop after this many readings")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")
    sim.add_argument("--fault-gap", type=float, default=1800.0,
                     help="mean simulated seconds between fault episodes per machine (default 1800)")
    sim.add_argument("--stdout", action="store_true", help="print readings as JSON lines instead of publishing")
    sim.add_argument("--mqtt", metavar="HOST:PORT", help="broker (default: the local stack's)")
    sim.add_argument("--username", default="simulator", help="MQTT user (default simulator)")
    sim.add_argument("--password-env", metavar="VAR",
                     help="read the MQTT password from this environment variable (default: the local stack's)")
    sub.add_parser("down", help="stop every service and supervisord (data is kept)")
    sub.add_parser("status", help="print service, pid, ready, uptime, restarts, endpoint")
    args = parser.parse_args(argv)
    state_dir = args.state_dir or default_state_dir()
    try:
        if args.cmd == "up":
            stack = LocalStack(state_dir, _ports(args))
            t0 = time.monotonic()
            print(f"indmlops up: state in {stack.layout.state_dir}", file=sys.stderr)
            stack.up(args.services or None, progress=_progress, timeout=args.timeout)
            print(f"indmlops up: all ready in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            print(format_status(stack.status()))
        elif args.cmd == "simulate":
            return _simulate(args, state_dir)
        elif args.cmd == "down":
            stack = LocalStack(state_dir)
            stopped = stack.down(progress=_progress)
            print("indmlops down: stopped" if stopped else f"indmlops down: nothing running in {stack.layout.state_dir}")
        else:
            print(format_status(LocalStack(state_dir).status()))
    except IndMLOpsError as exc:
        print(f"indmlops {args.cmd}: error: {exc}", file=sys.stderr)
        return 2 if args.cmd != "status" else 3
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
