#!/usr/bin/env python3
"""indmlops-netprobe: can this pod open a connection to HOST:PORT? Standard library only (the probe image runs it).

    indmlops-netprobe probe [--timeout S] [--until-blocked S] HOST:PORT[/TCP|/UDP] ...
    indmlops-netprobe listen PORT          # the enforcement canary's listener: accept, close, repeat
    indmlops-netprobe --self-test          # listen on loopback, probe it, exit 0 when that works

`probe` prints one line per destination for people, then one machine line `INDMLOPS-PROBE {json}`; it exits 0
whatever it observed (the observation is the result) and 2 on bad arguments.

What an outcome means for NetworkPolicy:
- connected: the handshake completed → the flow is allowed.
- refused: the destination's kernel answered with a reset → the packet reached it → the flow is allowed (nothing
  listened on the port).
- timeout: no answer within the timeout → dropped on the way → denied (Calico and Cilium drop denied packets).
- unreachable: an ICMP host/network unreachable came back → a policy that rejects rather than drops → denied.
- error: anything else (no route configured, bad address) → unknown; the caller reports it, never counts it.
UDP is judged only on port 53, by a DNS query that any DNS server answers (even with NXDOMAIN); other UDP ports
have no protocol reply to wait for, so they come back unknown.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MARKER = "INDMLOPS-PROBE "
DENIED_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


def parse_target(text: str) -> tuple[str, int, str]:
    """'10.0.0.1:5432', '10.0.0.1:53/UDP', '[fd00::1]:80/tcp' → (host, port, protocol)."""
    spec, _, proto = text.partition("/")
    proto = (proto or "TCP").upper()
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("TCP", "UDP"):
        raise ValueError(f"bad destination {text!r}: expected HOST:PORT or HOST:PORT/UDP (port 1-65535)")
    return host.strip("[]"), int(port), proto


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _attempt(kind: int, host: str, port: int, timeout: float, exchange) -> tuple[bool | None, str]:
    """Open a socket of `kind` to host:port, run `exchange` on it, and classify what the network did."""
    s = socket.socket(_family(host), kind)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return exchange(s)
    except ConnectionRefusedError:  # a TCP reset or an ICMP port unreachable: the packet got to the host
        return True, "refused"
    except TimeoutError:
        return False, "timeout"
    except OSError as exc:
        if exc.errno in DENIED_ERRNOS:
            return False, f"unreachable ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
        return None, f"error ({exc})"
    finally:
        s.close()


def probe_tcp(host: str, port: int, timeout: float) -> tuple[bool | None, str]:
    return _attempt(socket.SOCK_STREAM, host, port, timeout, lambda _s: (True, "connected"))


def dns_query(name: str = "kubernetes.default.svc.cluster.local", ident: int = 0x1d1d) -> bytes:
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack(">HH", 1, 1)  # type A, class IN


def probe_udp(host: str, port: int, timeout: float, dns_ports: tuple[int, ...] = (53,)) -> tuple[bool | None, str]:
    if port not in dns_ports:
        return None, "error (UDP is judged on port 53 only: other ports have no reply to wait for)"

    def ask(s: socket.socket) -> tuple[bool | None, str]:
        query = dns_query()
        s.send(query)
        reply = s.recv(4096)
        if reply[:2] == query[:2]:
            return True, "dns-reply"
        return None, f"error (a reply that is not our DNS answer: {reply[:12].hex()})"

    return _attempt(socket.SOCK_DGRAM, host, port, timeout, ask)


def probe_one(target: str, timeout: float, until_blocked: float = 0.0) -> dict[str, object]:
    """One destination. With `until_blocked` > 0 it is probed again every second until it is denied or that many
    seconds pass (the canary waits for a fresh policy to be programmed)."""
    host, port, proto = parse_target(target)
    fn = probe_tcp if proto == "TCP" else probe_udp
    t0 = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        start = time.monotonic()
        reachable, outcome = fn(host, port, timeout)
        ms = (time.monotonic() - start) * 1000
        if until_blocked <= 0 or reachable is False or time.monotonic() - t0 >= until_blocked:
            break
        time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    return {"target": f"{host}:{port}/{proto}", "reachable": reachable, "outcome": outcome, "ms": round(ms, 2),
            "attempts": attempts, "seconds": round(time.monotonic() - t0, 2)}


def probe_all(targets: list[str], timeout: float, until_blocked: float = 0.0) -> list[dict[str, object]]:
    """Every destination at once: a denied one costs `timeout`, so 30 of them in a row would cost 30 × that."""
    with ThreadPoolExecutor(max_workers=max(1, min(64, len(targets)))) as pool:
        return list(pool.map(lambda t: probe_one(t, timeout, until_blocked), targets))


def human(result: dict[str, object]) -> str:
    verdict = {True: "REACHABLE", False: "DENIED", None: "UNKNOWN"}[result["reachable"]]  # type: ignore[index]
    return f"{result['target']:<28} {verdict:<9} {result['outcome']} after {result['ms']} ms"


def listen(port: int, host: str = "0.0.0.0", ready: threading.Event | None = None,
           stop: threading.Event | None = None, bound: list[int] | None = None) -> None:
    srv = socket.socket(_family(host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(64)
    srv.settimeout(0.2)
    print(f"listening on {host}:{srv.getsockname()[1]}", flush=True)
    if bound is not None:
        bound.append(srv.getsockname()[1])
    if ready is not None:
        ready.set()
    try:
        while stop is None or not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conn.close()
    finally:
        srv.close()


def self_test(timeout: float = 2.0) -> int:
    ready, stop = threading.Event(), threading.Event()
    bound: list[int] = []
    t = threading.Thread(target=listen, args=(0, "127.0.0.1", ready, stop, bound), daemon=True)
    t.start()
    if not ready.wait(timeout):
        print("self-test: the listener did not start", file=sys.stderr)
        return 1
    result = probe_one(f"127.0.0.1:{bound[0]}", timeout)
    stop.set()
    print(human(result))
    return 0 if result["outcome"] == "connected" else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="indmlops-netprobe", description=__doc__.splitlines()[0])
    ap.add_argument("--self-test", action="store_true",
                    help="probe a loopback listener of its own; exit 0 if connected")
    sub = ap.add_subparsers(dest="command")
    p = sub.add_parser("probe", help="try each HOST:PORT[/UDP] at once and report what happened")
    p.add_argument("targets", nargs="+")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per attempt (default 2)")
    p.add_argument("--until-blocked", type=float, default=0.0, metavar="S",
                   help="probe again every second until denied or S seconds pass")
    ls = sub.add_parser("listen", help="accept TCP connections on PORT and close them")
    ls.add_argument("port", type=int)
    ls.add_argument("--host", default="0.0.0.0")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    if args.command == "listen":
        listen(args.port, args.host)
        return 0
    if args.command != "probe":
        ap.print_usage(sys.stderr)
        return 2
    try:
        for t in args.targets:
            parse_target(t)
    except ValueError as exc:
        print(f"indmlops-netprobe: {exc}", file=sys.stderr)
        return 2
    results = probe_all(args.targets, args.timeout, args.until_blocked)
    for r in results:
        print(human(r))
    print(MARKER + json.dumps({"timeout": args.timeout, "results": results}, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
