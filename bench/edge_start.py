"""Benchmark: the edge inference service from start to serving, phase by phase, with the local model cache against a
cold start from the registry (the baseline, measured in the same run), and kill → ready of the supervised service.

Start part. `indmlops serve` is started against the running local stack the way supervisord starts it (the CLI
finds the broker, credentials and registry through the stack), on a spare HTTP port with its own MQTT client id
and `--forget-session` (and the session is forgotten again at the end), `--runs` times per mode, the modes
interleaved in ABBA order (the machine is shared: one slow minute hits both alike):
  - registry (baseline): `--model-cache ''`: the model comes from MLflow (imports mlflow and onnx);
  - cache: `--model-cache DIR`, filled by a warm-up start: the model comes from disk, MLflow is asked afterwards.
Phases, each timed from the end of the previous one:
  imports      process start → its HTTP port listens (interpreter, imports, the CLI finding the stack)
  model load   → the service prints "serving … version" (cache, or registry)
  MQTT         → /readyz says ready: connected and the subscription acknowledged (SUBACK). Without a cache the
               connection is made while the model loads; what is left after the model is the subscription
  first pred.  one reading published (QoS1) once ready → its prediction from this instance received
Kill part. The supervised inference service is killed (the target's kill(): SIGKILL of its process group) `--kills`
times and timed until the target's wait_ready() sees it ready again (it polls /readyz every 0.1 s); the
baseline kills remove its cache file first, so that start goes to the registry.

    .venv/bin/python bench/edge_start.py [--runs 5] [--kills 10] [--baseline-kills 3]
    (needs a running local stack with a registered model: .venv/bin/indmlops up; INDMLOPS_STATE_DIR and
    INDMLOPS_PORT_OFFSET select the stack as for every other command)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

from indmlops import wire
from indmlops.simulator import Plant
from indmlops.targets.factory import TargetSpec, open_target
from indmlops.targets.local.target import LocalTarget
from indmlops.wire import Endpoint

PHASES = ("imports", "model load", "MQTT connect + SUBACK", "start -> ready", "first prediction")
MODEL_FILE = "edge-anomaly@champion.model"  # indmlops.inference.cache.path_for(…, "edge-anomaly", "champion")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    mqtt: Endpoint
    passwords: dict[str, str]
    state_dir: str


@dataclass
class Start:
    mode: str
    phases: dict[str, float] = field(default_factory=dict)
    model_line: str = ""


class Predictions:
    """The monitor's view of factory/bench/+/prediction: each prediction by (reading id, service)."""

    def __init__(self, stack: Stack) -> None:
        self.got: queue.Queue[tuple[str, str, float]] = queue.Queue()

        def on_message(_c, _u, msg) -> None:
            with contextlib.suppress(ValueError, KeyError):
                doc = json.loads(msg.payload)
                self.got.put((doc["id"], doc["service"], time.monotonic()))

        self.client = wire.mqtt_connect(stack.mqtt, "monitor", stack.passwords["monitor"], on_message=on_message)
        wire.mqtt_subscribe(self.client, "factory/bench/+/prediction", qos=1)
        self.sim = wire.mqtt_connect(stack.mqtt, "simulator", stack.passwords["simulator"])
        self.readings = Plant(seed=11, lines=1, machines=1).readings()

    def first_prediction(self, service: str, timeout: float = 10.0) -> float:
        reading = dict(next(self.readings), id=uuid.uuid4().hex, line="bench", machine="edge-start",
                       ts_ns=time.time_ns())
        t0 = time.monotonic()
        self.sim.publish("factory/bench/edge-start/telemetry", json.dumps(reading), qos=1)
        while (left := t0 + timeout - time.monotonic()) > 0:
            try:
                rid, svc, at = self.got.get(timeout=left)
            except queue.Empty:
                break
            if rid == reading["id"] and svc == service:
                return at - t0
        raise SystemExit(f"no prediction from {service} for reading {reading['id']} within {timeout:.0f} s")

    def close(self) -> None:
        wire.mqtt_close(self.client)
        wire.mqtt_close(self.sim)


def _readyz(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/readyz")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def one_start(stack: Stack, mode: str, cache_dir: str, client_id: str, preds: Predictions | None,
              timeout: float = 90.0) -> Start:
    """Start `indmlops serve` once, time its phases, stop it (forgetting its session)."""
    port = free_port()
    argv = [sys.executable, "-m", "indmlops.cli", "serve", "--http", f"127.0.0.1:{port}", "--client-id", client_id,
            "--forget-session", "--model-cache", cache_dir if mode == "cache" else ""]
    env = dict(os.environ, INDMLOPS_STATE_DIR=stack.state_dir, PYTHONUNBUFFERED="1")
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    res = Start(mode)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((time.monotonic(), line.rstrip()))

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        # Listening: the port is bound in InferenceService.__init__, after every import and the CLI's look-up of
        # the stack; a TCP connect to it involves no Python in the child (the kernel completes it).
        while not _listening(port):
            _check(proc, t0, timeout, "its HTTP port listening", seen, lines)
            time.sleep(0.005)
        t_listen = time.monotonic()
        while not res.model_line:
            _check(proc, t0, timeout, "a model loaded", seen, lines)
            with contextlib.suppress(queue.Empty):
                at, line = lines.get(timeout=0.05)
                seen.append(line)
                if line.startswith("inference: serving"):
                    t_model, res.model_line = at, line
        while True:
            _check(proc, t0, timeout, "/readyz ready", seen, lines)
            with contextlib.suppress(OSError, ValueError):
                if _readyz(port).get("ready"):
                    break
            time.sleep(0.01)  # 10 ms: each poll is a request the child's Python serves
        t_ready = time.monotonic()
        res.phases = {"imports": t_listen - t0, "model load": t_model - t_listen,
                      "MQTT connect + SUBACK": t_ready - t_model, "start -> ready": t_ready - t0}
        if preds is not None:
            res.phases["first prediction"] = preds.first_prediction(client_id)
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _check(proc: subprocess.Popen, t0: float, timeout: float, what: str, seen: list[str],
           lines: queue.Queue[tuple[float, str]]) -> None:
    if proc.poll() is None and time.monotonic() - t0 < timeout:
        return
    time.sleep(0.2)  # its last words
    while not lines.empty():
        seen.append(lines.get()[1])
    state = f"exited {proc.returncode}" if proc.poll() is not None else f"still running after {timeout:.0f} s"
    tail = "\n".join(seen[-10:])
    raise SystemExit(f"indmlops serve {state} before {what}; its output:\n{tail}")


def kills(target: LocalTarget, n: int, settle: float, remove_cache: str | None) -> list[float]:
    out = []
    for _ in range(n):
        if remove_cache:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(remove_cache)
        t0 = time.monotonic()
        target.kill("inference")
        target.wait_ready("inference", 60)
        out.append(time.monotonic() - t0)
        # The service asks the registry once ready (importing MLflow, ~2 s of a core): let that and supervisord's
        # startsecs (1 s) pass, so each kill finds the same settled service.
        time.sleep(settle)
    return out


def _stats(xs: list[float]) -> tuple[float, float, float]:
    return statistics.median(xs), min(xs), max(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="starts per mode (median, min, max are quoted)")
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs of the supervised service with its cache")
    ap.add_argument("--baseline-kills", type=int, default=3,
                    help="SIGKILLs of the supervised service with its cache file removed first (0: none)")
    ap.add_argument("--settle", type=float, default=4.0, help="seconds between kills")
    args = ap.parse_args()

    with open_target(TargetSpec("local", start=False)) as target:
        if not isinstance(target, LocalTarget):
            raise SystemExit("bench/edge_start.py measures the local target")
        stack = Stack(target.endpoint("mosquitto"),
                      {r: target.credentials("mosquitto", r).password for r in ("inference", "simulator", "monitor")},
                      str(target.state_dir))
        target.wait_ready("inference", 60)  # the registry has a model the supervised service serves
        client_id = f"indmlops-bench-edge-start-{os.getpid()}"
        cache_dir = tempfile.mkdtemp(prefix="indmlops-bench-edge-cache-", dir="/var/tmp")
        preds = Predictions(stack)
        results: dict[str, list[Start]] = {"registry": [], "cache": []}
        try:
            warm = one_start(stack, "cache", cache_dir, client_id, None)  # fills the cache; warms the page cache
            print(f"warm-up: {warm.model_line} in {warm.phases['start -> ready']:.2f} s", flush=True)
            if not os.path.exists(os.path.join(cache_dir, MODEL_FILE)):
                raise SystemExit(f"the warm-up start left no {MODEL_FILE} in {cache_dir}")
            for i in range(args.runs):
                for mode in ("registry", "cache") if i % 2 == 0 else ("cache", "registry"):  # no order effect
                    r = one_start(stack, mode, cache_dir, client_id, preds)
                    results[mode].append(r)
                    print(f"run {i + 1} {mode:<8}: " + ", ".join(f"{k} {v:.3f} s" for k, v in r.phases.items()),
                          flush=True)
        finally:
            preds.close()
            with contextlib.suppress(wire.NoAnswer):  # --forget-session did it already unless a start failed
                wire.forget_session(stack.mqtt, "inference", stack.passwords["inference"], client_id)
            shutil.rmtree(cache_dir, ignore_errors=True)

        print(f"\n`indmlops serve` start, {args.runs} runs per mode (seconds; ratio = registry median / cache "
              f"median)")
        print(f"{'phase':<24}{'registry (baseline)':>24}{'cache':>24}{'ratio':>8}")
        for ph in PHASES:
            reg = _stats([r.phases[ph] for r in results["registry"]])
            cac = _stats([r.phases[ph] for r in results["cache"]])
            cell = "{:.3f} ({:.3f}-{:.3f})"
            print(f"{ph:<24}{cell.format(*reg):>24}{cell.format(*cac):>24}{reg[0] / cac[0]:>7.2f}x")

        supervised_cache = os.path.join(stack.state_dir, "data", "model-cache", MODEL_FILE)
        base: list[float] = []
        if args.baseline_kills:
            base = kills(target, args.baseline_kills, args.settle, supervised_cache)
            deadline = time.monotonic() + 60
            while not os.path.exists(supervised_cache):  # written once the registry's model is loaded
                if time.monotonic() > deadline:
                    raise SystemExit(f"the supervised service wrote no {supervised_cache} within 60 s")
                time.sleep(0.2)
        cached = kills(target, args.kills, args.settle, None)
        print("\nkill -> ready of the supervised inference service (SIGKILL of its process group, supervisord "
              "restarts it; seconds)")
        print(f"{'start':<34}{'kills':>6}{'median':>8}{'min':>8}{'worst':>8}")
        for name, xs in (("registry (cache file removed)", base), ("cache", cached)):
            if xs:
                med, lo, hi = _stats(xs)
                print(f"{name:<34}{len(xs):>6}{med:>8.2f}{lo:>8.2f}{hi:>8.2f}")
        med, _, worst = _stats(cached)
        ok = med <= 2.0 and worst <= 3.0
        print(f"\ngoal: kill -> ready median <= 2 s, worst <= 3 s: {'met' if ok else 'NOT met'} "
              f"(median {med:.2f} s, worst {worst:.2f} s over {len(cached)} kills)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
