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
