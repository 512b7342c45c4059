"""Benchmark: publish→prediction latency of edge inference against a bare MQTT relay, and HTTP /predict against
`mlflow models serve` of the same registered model, all in one run.

MQTT part. A private Mosquitto (the stack's rendered configuration text, password file and ACLs, on a free port
and its own data directory) so the supervised stack's simulator and inference are left alone. For each rate, the
reference simulator publishes QoS1 readings (`indmlops simulate` in its own process); the responder is either
  - the edge inference service (`indmlops serve`, its own process, ONNX fast path), or
  - a bare relay (baseline: subscribe QoS1 with a persistent session, republish the reading unchanged, QoS1),
and a receiver (monitor role) times publish → prediction from the reading's `ts_ns` (same clock). The ratio
inference/relay is what the model, features and JSON cost on top of the broker (goal ≤ 1.5×).

Broker durability part (the stack option `broker_autosave`, Mosquitto's `autosave_interval` with
`autosave_on_changes`: the database is saved every N changes, and with QoS1 subscribers every delivered message
is a change). For each setting, `--runs` times in interleaved order (the machine is shared: one slow minute
hits every setting alike), on a fresh private broker: the relay's end-to-end p50/p99 at a fixed rate, the
throughput it sustains (readings delivered end to end per second when offered far more), and `--kills` SIGKILLs,
each right after the last PUBACK of 2000 QoS1 readings queued for an offline persistent session, counting the
acknowledged readings the restarted broker no longer has. Medians, min–max, and ratios against the first
setting (the baseline, measured in the same run). `--curve-only` runs just this part: it needs only the local
stack's broker configuration (`indmlops up mosquitto`), no model.

HTTP part. The same readings as requests: our `POST /predict` (raw reading) against `mlflow models serve
--env-manager local` `POST /invocations` (the reading's feature vector), closed loop, same client, same run
(goal: ≥ 2× throughput).

    .venv/bin/python bench/edge_latency.py [--rates 500,2000] [--seconds 10] [--autosave 1,100,1000]
    (needs a running local stack with a registered model: .venv/bin/indmlops up)
    .venv/bin/python bench/edge_latency.py --curve-only --autosave 1,10,100,1000 --runs 3 --kills 3
    (needs the stack's broker configuration only: .venv/bin/indmlops up mosquitto)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from indmlops import broker as broker_policy
from indmlops import wire
from indmlops.features import FEATURE_NAMES, FeatureState
from indmlops.simulator import Plant
from indmlops.slo import percentile
from indmlops.targets.factory import TargetSpec, open_target
from indmlops.targets.local import render
from indmlops.targets.local.target import LocalTarget
from indmlops.wire import Endpoint

VENV_BIN = Path(sys.executable).parent
INDMLOPS = [str(VENV_BIN / "indmlops")]
LINES, MACHINES = 2, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """user + sys of a live process, from /proc (no psutil in the venv)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- a private broker ------------------------------------------------------------------------------------

class Broker:
    """Mosquitto with the stack's configuration text on a free port; kill() and start() keep its data."""

    def __init__(self, stack_conf: Path, autosave: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="indmlops-bench-broker-", dir="/var/tmp"))
        self.data = self.dir / "data"
        self.data.mkdir()
        self.ep = Endpoint("mosquitto", "127.0.0.1", free_port(), "mqtt")
        self.hostport = f"{self.ep.host}:{self.ep.port}"
        (self.dir / "mosquitto.conf").write_text(render.mosquitto_conf_text(
            port=self.ep.port, conf_dir=stack_conf, data_dir=self.data, autosave=autosave))
        if os.geteuid() == 0:  # the broker drops to user mosquitto, which must write the database
            shutil.chown(self.data, "mosquitto")
            self.dir.chmod(0o755)
        self.proc: subprocess.Popen | None = None
        self.autosave = autosave

    def start(self, user: str, password: str) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                wire.mqtt_close(wire.mqtt_connect(self.ep, user, password, timeout=1))
                return
            except wire.NoAnswer:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"private broker on {self.ep} did not start (exit {self.proc.poll()})") from None
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# -- responders --------------------------------------------------------------------------------------------

def relay_main(host: str, port: int) -> int:
    """Child mode: the baseline responder. Same session semantics and QoS as the inference service."""
    ep, password = Endpoint("mosquitto", host, port, "mqtt"), os.environ["BENCH_MQTT_PASSWORD"]
    stop = threading.Event()

    def on_message(c, _u, msg):
        line, machine = msg.topic.split("/")[1:3]
        c.publish(f"factory/{line}/{machine}/prediction", msg.payload, qos=1)

    client = wire.mqtt_connect(ep, "inference", password, client_id="indmlops-bench-relay", clean_session=False,
                                 on_message=on_message)
    wire.mqtt_subscribe(client, "factory/+/+/telemetry", qos=1)
    print("relay ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())
    stop.wait()
    wire.mqtt_close(client)
    wire.forget_session(ep, "inference", password, "indmlops-bench-relay")  # or the broker queues for it forever
    return 0


def wait_http(url_host: str, port: int, path: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[:3]} exited {proc.returncode} before {path} answered")
        try:
            conn = http.client.HTTPConnection(url_host, port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            last = f"HTTP {resp.status} {resp.read()[:200]!r}"
            if resp.status == 200:
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise SystemExit(f"http://{url_host}:{port}{path} not ready after {timeout:.0f} s: {last}")


@contextlib.contextmanager
def responder(kind: str, broker: Broker, password: str, tracking_uri: str, http_port: int | None = None):
    env = dict(os.environ, BENCH_MQTT_PASSWORD=password)
    if kind == "relay":
        proc = subprocess.Popen([sys.executable, __file__, "relay", str(broker.ep.port)], env=env,
                                stdout=subprocess.PIPE, text=True)
        if proc.stdout.readline().strip() != "relay ready":
            raise SystemExit("relay did not subscribe")
    else:
        http_port = http_port or free_port()
        proc = subprocess.Popen(INDMLOPS + ["serve", "--mqtt", broker.hostport, "--password-env", "BENCH_MQTT_PASSWORD",
                                            "--tracking-uri", tracking_uri, "--http", f"127.0.0.1:{http_port}",
                                            "--client-id", "indmlops-bench-inference", "--forget-session"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_http("127.0.0.1", http_port, "/readyz", 60, proc)
    try:
        yield proc, http_port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the MQTT measurement -----------------------------------------------------------------------------------

@dataclass
class Row:
    responder: str
    rate: float
    achieved: float
    published: int
    received: int
    duplicates: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    responder_cores: float
    delivered: float = 0.0  # readings whose prediction arrived, per second from the first publish to the last arrival


class Receiver:
    def __init__(self, ep: Endpoint, password: str) -> None:
        self.lat_ns: dict[str, int] = {}
        self.duplicates = 0
        self.last_ns = 0
        self.first_ts_ns = 0  # the earliest reading's publish time
        self.client = wire.mqtt_connect(ep, "monitor", password)
        self.client.on_message = self._on
        wire.mqtt_subscribe(self.client, "factory/+/+/prediction", qos=1)

    def _on(self, _c, _u, msg) -> None:
        now = time.time_ns()
        doc = json.loads(msg.payload)
        if doc["id"] in self.lat_ns:
            self.duplicates += 1
        else:
            self.lat_ns[doc["id"]] = now - doc["ts_ns"]
            self.last_ns = now
            self.first_ts_ns = min(self.first_ts_ns or doc["ts_ns"], doc["ts_ns"])

    def close(self) -> None:
        wire.mqtt_close(self.client)


def run_mqtt(kind: str, broker: Broker, creds: dict[str, str], tracking_uri: str, rate: float,
             seconds: float) -> Row:
    with responder(kind, broker, creds["inference"], tracking_uri) as (proc, _):
        receiver = Receiver(broker.ep, creds["monitor"])
        cpu0, t0, wall0 = cpu_seconds(proc.pid), time.monotonic(), time.time_ns()
        sim = subprocess.run(INDMLOPS + ["simulate", "--no-outbox", "--mqtt", broker.hostport,
                                         "--password-env", "BENCH_SIM_PASSWORD",
                                         "--rate", str(rate), "--duration", str(seconds), "--qos", "1",
                                         "--lines", str(LINES), "--machines", str(MACHINES), "--seed", "11"],
                             env=dict(os.environ, BENCH_SIM_PASSWORD=creds["simulator"]), capture_output=True,
                             text=True)
        if sim.returncode != 0:
            raise SystemExit(f"simulator failed: {sim.stderr[-500:]}{sim.stdout[-500:]}")
        published = int(sim.stdout.split("published ")[1].split()[0])
        sim_seconds = float(sim.stdout.split(" readings in ")[1].split()[0])
        deadline = time.monotonic() + 10
        while len(receiver.lat_ns) < published and time.monotonic() < deadline:
            time.sleep(0.05)
        cores = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        receiver.close()
    lat = sorted(receiver.lat_ns.values())
    ms = [x / 1e6 for x in lat]  # every reading, warm-up included
    # The simulator process starts (imports) before it publishes: time from the first reading's ts_ns instead.
    first_ns = receiver.first_ts_ns or wall0
    span = (receiver.last_ns - first_ns) / 1e9 if receiver.last_ns else 0.0
    return Row(kind, rate, published / sim_seconds, published, len(lat), receiver.duplicates,
               percentile(ms, 50), percentile(ms, 95), percentile(ms, 99), cores, len(lat) / span if span else 0.0)


def kill_loss(broker: Broker, creds: dict[str, str], n: int = 2000, kill_no: int = 0) -> int:
    """Queue n acknowledged QoS1 readings for an offline persistent session, SIGKILL the broker right after the
    last PUBACK, restart it, resume the session: how many never arrive. Each kill has its own session and seed,
    so nothing restored from an earlier kill's database is counted; the session is forgotten afterwards."""
    client_id = f"indmlops-bench-offline-{kill_no}"
    sub = wire.mqtt_connect(broker.ep, "inference", creds["inference"], client_id=client_id, clean_session=False)
    wire.mqtt_subscribe(sub, "factory/+/+/telemetry", qos=1)
    wire.mqtt_close(sub)
    sim = subprocess.run(INDMLOPS + ["simulate", "--no-outbox", "--mqtt", broker.hostport,
                                     "--password-env", "BENCH_SIM_PASSWORD", "--rate", "0", "--count", str(n),
                                     "--qos", "1", "--seed", str(5 + kill_no)],
                         env=dict(os.environ, BENCH_SIM_PASSWORD=creds["simulator"]), capture_output=True, text=True)
    if sim.returncode != 0:  # exit 1: not every reading was acknowledged, so loss could not be attributed
        raise SystemExit(f"simulator failed: {sim.stdout[-300:]}{sim.stderr[-300:]}")
    broker.kill()
    broker.start("monitor", creds["monitor"])
    got: set[str] = set()
    # Resuming the session delivers the queue right after CONNACK: on_message must be set before connecting.
    sub = wire.mqtt_connect(broker.ep, "inference", creds["inference"], client_id=client_id,
                              clean_session=False, on_message=lambda _c, _u, m: got.add(json.loads(m.payload)["id"]))
    quiet_since, last = time.monotonic(), -1
    while time.monotonic() - quiet_since < 1.0:  # until nothing new arrives for 1 s
        if len(got) != last:
            quiet_since, last = time.monotonic(), len(got)
        time.sleep(0.05)
    wire.mqtt_close(sub)
    wire.forget_session(broker.ep, "inference", creds["inference"], client_id)
    return n - len(got)


@dataclass
class CurvePoint:
    autosave: str
    delivered: list[float]   # msg/s sustained, one per run
    p50_ms: list[float]      # at the fixed rate, one per run
    p99_ms: list[float]
    lost: list[int]          # acknowledged readings lost, one per kill


def _spread(xs: list[float], fmt: str) -> str:
    return f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}–{max(xs):{fmt}})"


def durability_curve(stack_conf: Path, creds: dict[str, str], settings: list[str], *, runs: int, kills: int,
                     fixed_rate: float, offered_rate: float, seconds: float, queued: int) -> list[CurvePoint]:
    points = {n: CurvePoint(n, [], [], [], []) for n in settings}
    print(f"\nbroker durability: throughput vs loss ({runs} runs per setting, interleaved; {kills} SIGKILLs per "
          f"run, each right after the last PUBACK of {queued} QoS1 readings queued for an offline session)")
    print(f"{'run':>4}{'autosave':>9}{'msg/s':>8}{'p50 ms':>8}{'p99 ms':>8}  lost per kill")
    for run in range(1, runs + 1):
        for n in settings:
            broker = Broker(stack_conf, n)
            try:
                broker.start("monitor", creds["monitor"])
                fixed = run_mqtt("relay", broker, creds, "", fixed_rate, seconds)
                top = run_mqtt("relay", broker, creds, "", offered_rate, seconds)
                lost = [kill_loss(broker, creds, queued, kill_no=k) for k in range(kills)]
            finally:
                broker.close()
            pt = points[n]
            pt.delivered.append(top.delivered)
            pt.p50_ms.append(fixed.p50_ms)
            pt.p99_ms.append(fixed.p99_ms)
            pt.lost.extend(lost)
            missing = fixed.published - fixed.received
            print(f"{run:>4}{n:>9}{top.delivered:>8.0f}{fixed.p50_ms:>8.2f}{fixed.p99_ms:>8.2f}  {lost}"
                  + (f"  ({missing} readings of the fixed-rate run unrelayed)" if missing else ""), flush=True)
    base = points[settings[0]]
    print(f"\nsummary: median (min–max); ratios of medians against autosave {settings[0]} (baseline, same run); "
          f"p50/p99 at {fixed_rate:.0f} readings/s, msg/s = readings relayed end to end when {offered_rate:.0f}/s "
          f"are offered")
    print(f"{'autosave':>9}  {'msg/s':<20}{'p50 ms':<26}{'p99 ms':<26}{'lost per SIGKILL':<22}"
          f"{'msg/s ×':>8}{'p50 ×':>8}{'p99 ×':>8}")
    for n in settings:
        pt = points[n]
        print(f"{n:>9}  {_spread(pt.delivered, '.0f'):<20}{_spread(pt.p50_ms, '.2f'):<26}"
              f"{_spread(pt.p99_ms, '.1f'):<26}{_spread([float(x) for x in pt.lost], '.0f') + f' n={len(pt.lost)}':<22}"
              f"{statistics.median(pt.delivered) / statistics.median(base.delivered):>8.3g}"
              f"{statistics.median(pt.p50_ms) / statistics.median(base.p50_ms):>8.3g}"
              f"{statistics.median(pt.p99_ms) / statistics.median(base.p99_ms):>8.3g}")
    return list(points.values())


# -- HTTP ------------------------------------------------------------------------------------------------------

def _http_worker(port: int, path: str, bodies: list[bytes], seconds: float, out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    lat, errors, i = [], 0, 0
    stop = time.perf_counter() + seconds
    while (t := time.perf_counter()) < stop:
        conn.request("POST", path, bodies[i % len(bodies)], {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        lat.append(time.perf_counter() - t)
        errors += resp.status != 200
        i += 1
    out.put((lat, errors))


def http_load(port: int, path: str, bodies: list[bytes], seconds: float,
              concurrency: int) -> tuple[float, float, float, int]:
    """Closed loop from `concurrency` client processes (no GIL shared with each other): req/s, p50, p99 (ms), errors."""
    q: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_http_worker, args=(port, path, bodies, seconds, q))
             for _ in range(concurrency)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = [x * 1e3 for r in results for x in r[0]]
    return len(lat) / seconds, percentile(lat, 50), percentile(lat, 99), sum(r[1] for r in results)


def http_bodies(n: int = 500) -> tuple[list[bytes], list[bytes]]:
    state = FeatureState()
    ours, theirs = [], []
    for reading in Plant(seed=3, lines=LINES, machines=MACHINES).readings():
        ours.append(json.dumps(reading).encode())
        vec = state.vector(f"{reading['line']}/{reading['machine']}", reading["features"])
        theirs.append(json.dumps({"dataframe_split": {"columns": FEATURE_NAMES, "data": [vec]}}).encode())
        if len(ours) == n:
            return ours, theirs
    raise AssertionError("unreachable")


@contextlib.contextmanager
def mlflow_serve(tracking_uri: str):
    port = free_port()
    # `mlflow models serve --env-manager local` execs `uvicorn` through bash: the venv's bin must be on PATH.
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/edge-anomaly@champion",
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            try:
                wait_http("127.0.0.1", port, "/ping", 120, proc)
            except SystemExit:
                log.seek(0)
                print(log.read()[-2000:].decode(errors="replace"), file=sys.stderr)
                raise
            yield port
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


# -- main -------------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="500,2000", help="publish rates, msg/s (comma-separated)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each MQTT run")
    ap.add_argument("--autosave", default="1,1s,10,100,1000",
                    help="broker_autosave policies for the durability part (N changes, Ns seconds), the first "
                         "is the baseline of the ratios ('' to skip)")
    ap.add_argument("--curve-only", action="store_true",
                    help="only the broker durability part (needs `indmlops up mosquitto`, no model)")
    ap.add_argument("--runs", type=int, default=3, help="durability part: runs per setting (shared machine: ≥ 3)")
    ap.add_argument("--kills", type=int, default=3, help="durability part: SIGKILLs per setting and run")
    ap.add_argument("--fixed-rate", type=float, default=200.0,
                    help="durability part: readings/s for the p50/p99 (every setting must carry it)")
    ap.add_argument("--offered-rate", type=float, default=5000.0,
                    help="durability part: readings/s offered to measure the sustained throughput")
    ap.add_argument("--queued", type=int, default=2000, help="durability part: readings queued before each kill")
    ap.add_argument("--broker-autosave",
                    help="broker_autosave policy for the latency part (default: the stack's own)")
    ap.add_argument("--http-seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=4, help="HTTP client processes")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    with open_target(TargetSpec("local", start=False)) as target:
        assert isinstance(target, LocalTarget)  # this bench renders its brokers from the local stack's config
        stack_conf = target.stack.layout.conf / "mosquitto"
        creds = {r: target.credentials("mosquitto", r).password for r in ("simulator", "inference", "monitor")}
        tracking_uri = target.endpoint("mlflow").url
    if args.autosave:
        durability_curve(stack_conf, creds, [broker_policy.canonical(x) for x in args.autosave.split(",")],
                         runs=args.runs,
                         kills=args.kills, fixed_rate=args.fixed_rate, offered_rate=args.offered_rate,
                         seconds=args.seconds, queued=args.queued)
    if args.curve_only:
        return 0
    shipped = str(broker_policy.from_conf((stack_conf / "mosquitto.conf").read_text()))
    if args.broker_autosave is not None:
        shipped = broker_policy.canonical(args.broker_autosave)
    print(f"edge latency bench: {LINES}×{MACHINES} machines, QoS1, {args.seconds:.0f} s per run; "
          f"private broker with the shipped config, broker_autosave {shipped}; model from {tracking_uri}")

    print(f"\n{'rate':>6} {'responder':<10}{'achieved':>9}{'lost':>6}{'dup':>5}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'p99 ms':>8}{'cores':>7}")
    rows: dict[tuple[float, str], Row] = {}
    broker = Broker(stack_conf, shipped)
    try:
        broker.start("monitor", creds["monitor"])
        for rate in rates:
            for kind in ("relay", "inference"):
                r = run_mqtt(kind, broker, creds, tracking_uri, rate, args.seconds)
                rows[rate, kind] = r
                print(f"{rate:>6.0f} {kind:<10}{r.achieved:>9.0f}{r.published - r.received:>6}{r.duplicates:>5}"
                      f"{r.p50_ms:>8.2f}{r.p95_ms:>8.2f}{r.p99_ms:>8.2f}{r.responder_cores:>7.2f}")
    finally:
        broker.close()
    print("\ninference / relay (goal ≤ 1.5×):")
    for rate in rates:
        a, b = rows[rate, "inference"], rows[rate, "relay"]
        print(f"  {rate:>6.0f} msg/s: p50 {a.p50_ms / b.p50_ms:.2f}×, p99 {a.p99_ms / b.p99_ms:.2f}×")

    ours_b, theirs_b = http_bodies()
    print(f"\nHTTP, closed loop, {args.concurrency} client processes, {args.http_seconds:.0f} s each:")
    print(f"{'server':<22}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>8}")
    broker = Broker(stack_conf, shipped)
    try:
        broker.start("monitor", creds["monitor"])
        with responder("inference", broker, creds["inference"], tracking_uri) as (_p, port):
            ours = http_load(port, "/predict", ours_b, args.http_seconds, args.concurrency)
    finally:
        broker.close()
    print(f"{'indmlops /predict':<22}{ours[0]:>8.0f}{ours[1]:>8.2f}{ours[2]:>8.2f}{ours[3]:>8}")
    with mlflow_serve(tracking_uri) as port:
        theirs = http_load(port, "/invocations", theirs_b, args.http_seconds, args.concurrency)
    print(f"{'mlflow models serve':<22}{theirs[0]:>8.0f}{theirs[1]:>8.2f}{theirs[2]:>8.2f}{theirs[3]:>8}")
    print(f"ours / mlflow (goal ≥ 2×): throughput {ours[0] / theirs[0]:.1f}×, p99 {theirs[2] / ours[2]:.1f}× lower")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "relay":
        sys.exit(relay_main("127.0.0.1", int(sys.argv[2])))
    sys.exit(main())
