"""The images, built here without a registry, run: as a non-root user, against the local stack's services."""

from __future__ import annotations

import itertools
import json
import queue
import random
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from indmlops import clients, containers, wire
from indmlops.simulator import Plant

pytestmark = pytest.mark.images

REPO = Path(__file__).resolve().parents[2]
# The budget of the issue: the edge inference image is what a plant pulls onto an edge box.
SIZE_BUDGET_MB = {"inference": 400}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], tuple[bool, str]], timeout: float, what: str,
               container: containers.Container | None = None, interval: float = 0.5) -> str:
    """Poll `check` (-> (done, observed state)) until done; on expiry fail with the last state and the logs."""
    deadline = time.monotonic() + timeout
    last = "not polled yet"
    while time.monotonic() < deadline:
        done, last = check()
        if done:
            return last
        if container is not None and not container.running():
            break  # an exited container will not become ready: report now, not at the timeout
        time.sleep(interval)
    where = ""
    if container is not None:
        where = f"\ncontainer {container.name} ({container.ref}): {container.state()}\n--- logs ---\n{container.logs()}"
    pytest.fail(f"{what}: not reached within {timeout:.0f} s; last state: {last}{where}", pytrace=False)


def unique(prefix: str) -> str:
    return f"indmlops-test-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def containers_started(engine, pytestconfig):
    """Factory: start a container on the host network. After the test, each one's log is kept in
    <reports>/images/<container>.log and the container is removed."""
    from indmlops.plugin import option

    made: list[containers.Container] = []

    def start(name: str, args: list[str], env: dict[str, str] | None = None, **kw) -> containers.Container:
        c = containers.Container(engine, containers.image_ref(name), args, env=env, name=unique(name), **kw)
        made.append(c)
        return c

    yield start
    out = Path(option(pytestconfig, "reports_dir")) / "images"
    out.mkdir(parents=True, exist_ok=True)
    for c in made:
        (out / f"{c.name}.log").write_text(f"{c.ref} {c.state()}\n{c.logs(tail=500)}\n")
        c.remove()


@pytest.mark.parametrize("name", containers.IMAGES, ids=[f"image/{n}" for n in containers.IMAGES])
def test_image_runs_as_non_root_user_10001(engine, images_built, name):
    ref = containers.image_ref(name)
    assert containers.image_user(engine, ref) == "10001", f"{ref}: image config User"
    proc = subprocess.run([*containers.run_argv(engine), "--rm", "--network", "host", "--entrypoint", "id", ref, "-u"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{ref}: `id -u` failed (exit {proc.returncode}): {proc.stderr.strip()}"
    assert proc.stdout.strip() == "10001", f"{ref}: runs as uid {proc.stdout.strip()!r}, expected 10001 (not root)"


def test_inference_image_is_within_its_size_budget(engine, images_built):
    """The other images' sizes are reported (session header, README); this one has a budget."""
    ref = containers.image_ref("inference")
    size = containers.image_size_mb(engine, ref)
    assert size <= SIZE_BUDGET_MB["inference"], f"{ref}: {size} MB, budget {SIZE_BUDGET_MB['inference']} MB"


def test_inference_image_becomes_ready_and_answers_predict(target, images_built, containers_started):
    mqtt = target.endpoint("mosquitto")
    creds = target.credentials("mosquitto", "inference")
    port = free_port()
    client_id = unique("inference")  # its own persistent session: the stack's inference service keeps its own
    c = containers_started("inference", [
        "serve", "--http", f"127.0.0.1:{port}", "--mqtt", f"{mqtt.host}:{mqtt.port}", "--username", creds.username,
        "--password-env", "MQTT_PASSWORD", "--tracking-uri", target.endpoint("mlflow").url,
        "--client-id", client_id, "--forget-session",
    ], env={"MQTT_PASSWORD": creds.password})
    try:
        def ready() -> tuple[bool, str]:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
            except requests.RequestException as exc:
                return False, f"GET /readyz: {type(exc).__name__}"
            return r.status_code == 200, f"GET /readyz: HTTP {r.status_code} {r.text[:200]}"

        # Model download from MLflow + ONNX session + MQTT subscribe: a few seconds here; 120 s is the budget.
        wait_until(ready, 120, "inference container /readyz 200", c)
        reading = next(Plant(seed=random.randrange(1 << 30), machines=1).readings())
        r = requests.post(f"http://127.0.0.1:{port}/predict", json=reading, timeout=10)
        assert r.status_code == 200, f"POST /predict: HTTP {r.status_code} {r.text[:300]}\nlogs:\n{c.logs()}"
        out = r.json()
        assert out["id"] == reading["id"] and out["service"] == client_id, out
        assert out["label"] and 0.0 <= out["p_fault"] <= 1.0, out
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "inference" in metrics or "predict" in metrics, metrics[:300]
    finally:
        c.stop()
        # --forget-session ends the session on SIGTERM; this also covers a container that had to be killed,
        # or the broker would queue every reading for it forever.
        wire.forget_session(mqtt, creds.username, creds.password, client_id)


def test_simulator_image_publishes_readings_that_arrive(target, images_built, containers_started):
    mqtt = target.endpoint("mosquitto")
    sim = target.credentials("mosquitto", "simulator")
    mon = target.credentials("mosquitto", "monitor")
    seed, count = random.randrange(1 << 30), 20
    # Everything but ts_ns is deterministic for a seed: these are the ids the container will publish. The
    # stack's background simulator publishes on the same topics with other ids.
    plant = Plant(seed=seed, lines=1, machines=2)
    expected = {r["id"] for r in itertools.islice(plant.readings(), count)}
    seen: queue.Queue = queue.Queue()
    sub = wire.mqtt_connect(mqtt, mon.username, mon.password)
    try:
        sub.on_message = lambda _c, _u, m: seen.put(json.loads(m.payload).get("id"))
        wire.mqtt_subscribe(sub, "factory/+/+/telemetry", qos=1)
        c = containers_started("simulator", [
            "simulate", "--mqtt", f"{mqtt.host}:{mqtt.port}", "--password-env", "MQTT_PASSWORD",
            "--lines", "1", "--machines", "2", "--seed", str(seed), "--count", str(count), "--rate", "40",
            "--qos", "1",
        ], env={"MQTT_PASSWORD": sim.password})
        arrived: set[str] = set()

        def all_arrived() -> tuple[bool, str]:
            while not seen.empty():
                rid = seen.get()
                if rid in expected:
                    arrived.add(rid)
            return arrived == expected, f"{len(arrived)}/{count} of the container's readings arrived"

        # 20 readings at 40/s take 0.5 s; start-up of the container and Python a few seconds; 60 s budget.
        wait_until(all_arrived, 60, "simulator container readings at a subscriber", interval=0.2)
        code = c.wait_exit(30)
        assert code == 0, f"simulator container exited {code}; logs:\n{c.logs()}"

        def summary_logged() -> tuple[bool, str]:
            logs = c.logs()
            return bool(re.search(rf"published {count} readings", logs)), repr(logs[-300:])

        # Podman 4.3 (conmon, k8s-file) can answer `podman logs` of a just-exited container before it has written
        # the last lines (CI on 3974db1: exit 0, every reading arrived, logs ''): the summary gets a short wait.
        wait_until(summary_logged, 10, f"the simulator container's summary 'published {count} readings'")
    finally:
        wire.mqtt_close(sub)


def test_mlflow_image_answers_health_and_writes_an_artifact_to_the_bucket(target, images_built,
                                                                          containers_started):
    from mlflow.tracking import MlflowClient

    pg, pg_ep = target.credentials("postgres"), target.endpoint("postgres")
    s3, s3_ep = target.credentials("s3"), target.endpoint("s3")
    port = free_port()
    # The same database and bucket as the stack's MLflow (a second replica of the server): its schema is
    # current, so the container starts in seconds; the run lands in an experiment of its own.
    c = containers_started("mlflow", [], env={
        "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg://{pg.username}@{pg_ep.host}:{pg_ep.port}/{pg.extra['database']}",
        "PGPASSWORD": pg.password,
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{s3.extra['bucket']}",
        "MLFLOW_S3_ENDPOINT_URL": s3_ep.url,
        "AWS_ACCESS_KEY_ID": s3.username, "AWS_SECRET_ACCESS_KEY": s3.password,
        "AWS_DEFAULT_REGION": s3.extra["region"],
        "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1",
    })
    url = f"http://127.0.0.1:{port}"

    def healthy() -> tuple[bool, str]:
        try:
            return True, clients.http_ready(f"{url}/health", expect_body="OK")
        except wire.NoAnswer as exc:
            return False, str(exc)

    # MLflow's import and uvicorn start: ~10 s here; 120 s budget.
    wait_until(healthy, 120, "MLflow container /health OK", c)
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 200, "/metrics (prometheus-flask-exporter)"

    client = MlflowClient(url)
    exp = client.create_experiment(unique("mlflow-image"))
    run = client.create_run(exp)
    body = f"written through the MLflow image {uuid.uuid4().hex}"
    client.log_text(run.info.run_id, body, "smoke/hello.txt")
    client.set_terminated(run.info.run_id)
    key = f"{exp}/{run.info.run_id}/artifacts/smoke/hello.txt"
    bucket = clients.s3_client(s3_ep, s3.username, s3.password, s3.extra["region"])
    try:
        got = bucket.get_object(Bucket=s3.extra["bucket"], Key=key)["Body"].read().decode()
    except Exception as exc:  # name the key and what the bucket holds for this run
        listing = bucket.list_objects_v2(Bucket=s3.extra["bucket"], Prefix=f"{exp}/").get("Contents", [])
        pytest.fail(f"s3://{s3.extra['bucket']}/{key}: {exc}; objects under {exp}/: "
                    f"{[o['Key'] for o in listing]}\ncontainer logs:\n{c.logs()}", pytrace=False)
    assert got == body
    client.delete_experiment(exp)


def test_broken_dockerfile_fails_the_build_naming_the_step(engine, images_built, tmp_path):
    """A Dockerfile whose step fails makes the build fail, and the output names that step. Cheap: the broken
    step comes right after FROM, on the base that is already there."""
    broken = (REPO / "images/simulator/Dockerfile").read_text().replace(
        "FROM ${BASE_IMAGE} AS builder\n",
        "FROM ${BASE_IMAGE} AS builder\nRUN echo deliberately-broken-step && exit 3\n", 1)
    (tmp_path / "images/simulator").mkdir(parents=True)
    (tmp_path / "images/simulator/Dockerfile").write_text(broken)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "src").mkdir()
    res = containers.build(["simulator"], engine=engine, base=images_built.base, tag="broken-test",
                           context=tmp_path)
    assert res.returncode == 1, f"build of a broken Dockerfile exited {res.returncode}:\n{res.output[-2000:]}"
    assert "FAILED: images/simulator/Dockerfile" in res.failing_step, res.output[-2000:]
    # Podman names the step ("STEP 2/9: RUN echo ..."), BuildKit the process ("/bin/sh -c echo ...").
    assert "echo deliberately-broken-step && exit 3" in res.failing_step, res.failing_step


def test_probe_image_reports_a_broker_a_closed_port_and_its_own_listener(target, engine, images_built,
                                                                          containers_started):
    """What the live isolation suite asks of it in a pod: read-only, no capabilities, one machine line per run."""
    from indmlops import netprobe

    mqtt = target.endpoint("mosquitto")
    closed, listening = free_port(), free_port()
    listener = containers_started("probe", ["listen", str(listening), "--host", "127.0.0.1"])
    wait_until(lambda: (netprobe.probe_tcp("127.0.0.1", listening, 0.5) == (True, "connected"), "not accepting"),
               30, f"probe image listening on 127.0.0.1:{listening}", listener)
    ref = containers.image_ref("probe")
    argv = [*containers.run_argv(engine), "--rm", "--network", "host", "--read-only", "--cap-drop", "ALL", ref,
            "probe", "--timeout", "1", f"127.0.0.1:{mqtt.port}", f"127.0.0.1:{closed}", f"127.0.0.1:{listening}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}"
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(netprobe.MARKER)), None)
    assert line, f"no {netprobe.MARKER.strip()} line in: {proc.stdout!r}"
    results = json.loads(line[len(netprobe.MARKER):])["results"]
    assert [(r["reachable"], r["outcome"]) for r in results] == [(True, "connected"), (True, "refused"),
                                                                 (True, "connected")], proc.stdout
