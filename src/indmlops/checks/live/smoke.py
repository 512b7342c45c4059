"""Smoke checks: each service answers its protocol, refuses bad credentials, and comes back when killed."""

from __future__ import annotations

import hashlib
import os
import queue
import time
import uuid
from dataclasses import dataclass

import requests

from indmlops import clients, wire
from indmlops.targets.base import KillEvidence, ReadyEvidence, Target
from indmlops.wire import MqttRefused, NoAnswer


@dataclass(frozen=True)
class RoundTrip:
    what: str
    seconds: float
    detail: str


def component_ready(target: Target, component: str, *, timeout: float = 10.0) -> ReadyEvidence:
    """The component answers its own protocol within `timeout` (raises NotReady with the last state)."""
    return target.wait_ready(component, timeout)


def mqtt_round_trip(target: Target, *, qos: int = 1, timeout: float = 5.0) -> RoundTrip:
    """A reading published by the simulator role reaches a subscriber with the inference role."""
    ep = target.endpoint("mosquitto")
    sim, inf = target.credentials("mosquitto", "simulator"), target.credentials("mosquitto", "inference")
    topic = f"factory/smoke/m-{uuid.uuid4().hex[:8]}/telemetry"
    payload = uuid.uuid4().hex.encode()
    received: queue.Queue[bytes | bytearray] = queue.Queue()
    sub = wire.mqtt_connect(ep, inf.username, inf.password)
    try:
        sub.on_message = lambda _c, _u, msg: received.put(msg.payload)
        try:
            wire.mqtt_subscribe(sub, topic, qos=qos, timeout=timeout)
        except NoAnswer as exc:
            raise AssertionError(f"broker {ep}, role inference: {exc}; check config/mosquitto/acl.conf "
                                 "(inference must read factory/+/+/telemetry)") from None
        pub = wire.mqtt_connect(ep, sim.username, sim.password)
        try:
            t0 = time.perf_counter()
            pub.publish(topic, payload, qos=qos).wait_for_publish(timeout)
            try:
                got = received.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"a QoS{qos} message published by role simulator on {topic} did not reach role inference "
                    f"within {timeout:.0f} s (broker {ep})"
                ) from None
            elapsed = time.perf_counter() - t0
        finally:
            wire.mqtt_close(pub)
    finally:
        wire.mqtt_close(sub)
    assert got == payload, f"MQTT payload on {topic} changed in transit: sent {payload!r}, got {got!r}"
    return RoundTrip("mqtt", elapsed, f"{topic} qos{qos}")


def mqtt_refuses(target: Target, *, username: str | None, password: str | None) -> str:
    """The broker refuses a connection with these credentials (None, None: anonymous); returns its reason."""
    ep = target.endpoint("mosquitto")
    try:
        client = wire.mqtt_connect(ep, username, password, timeout=5)
    except MqttRefused as exc:
        # Only the broker's own refusal counts: a broker that does not answer proves nothing about auth.
        assert exc.reason in ("Not authorized", "Bad user name or password"), (
            f"broker {ep} refused with {exc.reason!r}; expected 'Not authorized' or 'Bad user name or password'")
        return str(exc)
    wire.mqtt_close(client)
    who = "an anonymous client" if username is None else f"user {username!r} with a wrong password"
    raise AssertionError(f"broker {ep} accepted {who}: expected CONNACK 'Not authorized' "
                         "(allow_anonymous false and a password file)")


def mqtt_publish_denied(target: Target, *, role: str, topic: str, wait: float = 1.5) -> str:
    """A publish by `role` on `topic` is dropped by the ACL: the monitor role (reads all) never sees it."""
    ep = target.endpoint("mosquitto")
    mon, who = target.credentials("mosquitto", "monitor"), target.credentials("mosquitto", role)
    seen: queue.Queue[bytes | bytearray] = queue.Queue()
    watcher = wire.mqtt_connect(ep, mon.username, mon.password)
    try:
        watcher.on_message = lambda _c, _u, msg: seen.put(msg.payload)
        wire.mqtt_subscribe(watcher, topic, qos=1)
        pub = wire.mqtt_connect(ep, who.username, who.password)
        try:
            pub.publish(topic, b"must-not-arrive", qos=1).wait_for_publish(5)
        finally:
            wire.mqtt_close(pub)
        try:
            got = seen.get(timeout=wait)
        except queue.Empty:
            return f"role {role} publish on {topic} dropped by the ACL"
    finally:
        wire.mqtt_close(watcher)
    raise AssertionError(f"role {role!r} could publish on {topic} (monitor received {got!r}): "
                         "config/mosquitto/acl.conf must not grant it that topic")


def s3_round_trip(target: Target, *, size: int = 256 * 1024) -> RoundTrip:
    """An object written to the bucket reads back byte for byte (sha256), then is deleted."""
    creds = target.credentials("s3")
    bucket = creds.extra["bucket"]
    client = clients.s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
    body = os.urandom(size)
    key = f"indmlops-smoke/{uuid.uuid4().hex}.bin"
    t0 = time.perf_counter()
    client.put_object(Bucket=bucket, Key=key, Body=body)
    try:
        back = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        client.delete_object(Bucket=bucket, Key=key)
    elapsed = time.perf_counter() - t0
    want, got = hashlib.sha256(body).hexdigest(), hashlib.sha256(back).hexdigest()
    assert got == want, f"s3://{bucket}/{key}: wrote sha256 {want} ({size} B), read {got} ({len(back)} B)"
    return RoundTrip("s3", elapsed, f"s3://{bucket}/{key} {size} B")


def s3_refuses_wrong_secret(target: Target) -> str:
    from botocore.exceptions import ClientError

    creds = target.credentials("s3")
    ep = target.endpoint("s3")
    client = clients.s3_client(ep, creds.username, creds.password + "-wrong", creds.extra["region"])
    try:
        client.list_buckets()
    except ClientError as exc:
        code = exc.response["Error"].get("Code", "")
        assert code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"), (
            f"S3 {ep} refused a wrong secret with unexpected code {code!r}")
        return code
    raise AssertionError(f"S3 {ep} accepted access key {creds.username!r} with a wrong secret")


def postgres_answers(target: Target) -> str:
    creds = target.credentials("postgres")
    return clients.postgres_ready(target.endpoint("postgres"), creds.username, creds.password,
                                 creds.extra["database"])


def mlflow_run_with_artifact(target: Target, *, size: int = 100 * 1024) -> RoundTrip:
    """A client holding no S3 credentials logs a run with a metric and an artifact, proxied into the bucket."""
    import tempfile

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from indmlops.clients import s3_client

    uri = target.endpoint("mlflow").url
    client = MlflowClient(tracking_uri=uri)
    t0 = time.perf_counter()
    exp_id = client.create_experiment(f"indmlops-smoke-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "smoke", 1.0)
    body = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "smoke.bin")
        with open(path, "wb") as fh:
            fh.write(body)
        try:
            client.log_artifact(run.info.run_id, path)
        except MlflowException as exc:
            raise AssertionError(
                f"MLflow {uri} could not store an artifact for run {run.info.run_id} through its proxy "
                f"({str(exc).splitlines()[0][:200]}); artifact store: {_s3_diagnosis(target)}"
            ) from exc
    client.set_terminated(run.info.run_id)
    elapsed = time.perf_counter() - t0
    fetched = client.get_run(run.info.run_id)
    assert fetched.data.metrics.get("smoke") == 1.0, f"MLflow {uri} run {run.info.run_id}: metric smoke missing"
    assert fetched.info.artifact_uri.startswith("mlflow-artifacts:"), (
        f"MLflow {uri}: artifact URI {fetched.info.artifact_uri} is not proxied (expected mlflow-artifacts:/...)")
    creds = target.credentials("s3")
    s3 = s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
    bucket = creds.extra["bucket"]
    key = f"{exp_id}/{run.info.run_id}/artifacts/smoke.bin"
    from botocore.exceptions import ClientError

    try:
        stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        listing = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{exp_id}/").get("Contents", [])]
        raise AssertionError(f"artifact of run {run.info.run_id} not found at s3://{bucket}/{key} "
                             f"({exc.response['Error'].get('Code')}); objects under {exp_id}/: {listing}") from None
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(body).hexdigest(), (
        f"s3://{bucket}/{key}: content differs from what the MLflow client logged")
    return RoundTrip("mlflow", elapsed, f"run {run.info.run_id} artifact at s3://{bucket}/{key}")


def _s3_diagnosis(target: Target) -> str:
    creds = target.credentials("s3")
    ep = target.endpoint("s3")
    try:
        return f"S3 {ep} answers ({clients.s3_ready(ep, creds.username, creds.password)})"
    except NoAnswer as exc:
        return f"S3 {ep} does not answer: {exc}"


def prometheus_targets_up(target: Target, *, jobs: list[str], timeout: float = 20.0) -> dict[str, str]:
    """Every expected scrape job has an active target whose last scrape succeeded."""
    url = f"{target.endpoint('prometheus').url}/api/v1/targets?state=active"
    deadline = time.monotonic() + timeout
    health: dict[str, str] = {}
    while True:
        active = requests.get(url, timeout=5).json()["data"]["activeTargets"]
        health = {t["labels"]["job"]: f"{t['health']} {t['scrapeUrl']} {t.get('lastError', '')}".strip()
                  for t in active}
        missing = [j for j in jobs if j not in health]
        down = [j for j in jobs if j in health and not health[j].startswith("up")]
        if not missing and not down:
            return health
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    raise AssertionError(
        f"Prometheus {target.endpoint('prometheus')}: expected jobs {jobs} up after {timeout:.0f} s; "
        f"missing {missing}, not up {[(j, health[j]) for j in down]} (scrape config: config/prometheus/scrape.yaml)"
    )


def nodered_flow_loaded(target: Target) -> str:
    """Node-RED runs the project's flow file, node for node, and serves the flow's own health endpoint."""
    from indmlops.checks.live import nodered_flow

    return nodered_flow.flow_runs(target)


@dataclass(frozen=True)
class Recovery:
    kill: KillEvidence
    ready: ReadyEvidence
    restarts_before: int
    restarts_after: int


def killed_component_recovers(target: Target, component: str, *, timeout: float) -> Recovery:
    """Kill the component; it must come back under a new identity, answer its protocol, and count a restart."""
    target.wait_ready(component, timeout)
    before = target.restarts(component)
    kill = target.kill(component)
    # The old identity must disappear before "ready" means anything: otherwise a probe racing the kill
    # could pass against the dying process.
    deadline = time.monotonic() + timeout
    while target.identity(component) == kill.identity and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = target.wait_ready(component, max(0.1, deadline - time.monotonic()))
    after = target.restarts(component)
    assert ready.identity != kill.identity, (
        f"{component}: identity still {kill.identity} after the kill: it was not restarted")
    assert after == before + 1, f"{component}: restarts {before} before the kill, {after} after; expected {before + 1}"
    ready_means_working(target, component, ready)
    return Recovery(kill, ready, before, after)


def _mlflow_registry_answers(target: Target) -> str:
    url = f"{target.endpoint('mlflow').url}/api/2.0/mlflow/registered-models/search?max_results=1"
    resp = requests.get(url, timeout=10)  # its first request opens the store (database connection, schema check)
    if resp.status_code != 200:
        raise AssertionError(f"GET {url}: HTTP {resp.status_code} {resp.text[:160]!r}")
    return f"registry search answered ({len(resp.json().get('registered_models', []))} model(s))"


def _prometheus_query_answers(target: Target) -> str:
    url = f"{target.endpoint('prometheus').url}/api/v1/query?query=up"
    resp = requests.get(url, timeout=5)
    if resp.status_code != 200 or resp.json().get("status") != "success":
        raise AssertionError(f"GET {url}: HTTP {resp.status_code} {resp.text[:160]!r}")
    return "query API answered"


def _simulator_publishes(target: Target, within: float = 3.0) -> str:
    mon = target.credentials("mosquitto", "monitor")
    got: queue.Queue[str] = queue.Queue()
    watcher = wire.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password)
    try:
        watcher.on_message = lambda _c, _u, msg: got.put(msg.topic)
        wire.mqtt_subscribe(watcher, "factory/+/+/telemetry", qos=0)
        try:
            return f"a reading on {got.get(timeout=within)}"
        except queue.Empty:
            raise AssertionError(f"no reading on factory/+/+/telemetry within {within:g} s") from None
    finally:
        wire.mqtt_close(watcher)


# What each component is for, asked once, right after it said ready: a readiness that says "ready" before the
# service can do its job (an edge not yet subscribed, a registry whose database is not reachable) fails here.
JOBS = {
    "postgres": postgres_answers,
    "mosquitto": lambda t: mqtt_round_trip(t).detail,
    "s3": lambda t: s3_round_trip(t, size=4096).detail,
    "mlflow": _mlflow_registry_answers,
    "prometheus": _prometheus_query_answers,
    "nodered": nodered_flow_loaded,
    "inference": lambda t: reading_gets_prediction(t, within=1.0).detail,
    "simulator": _simulator_publishes,
}


def ready_means_working(target: Target, component: str, ready: ReadyEvidence) -> str:
    """Right after `ready`, the component does its job, asked once (no retries: ready means able now)."""
    job = JOBS.get(component)
    if job is None:
        return "no job check for this component"
    t0 = time.monotonic()
    try:
        return job(target)
    except (AssertionError, NoAnswer, MqttRefused, requests.RequestException, OSError) as exc:
        raise AssertionError(
            f"{component}: said ready ({ready.detail}) {ready.seconds:.1f} s after the kill, but could not do its job "
            f"right after ({time.monotonic() - t0:.1f} s later): {exc}. Readiness that says ready before the "
            f"service can work lets clients in too early (fixtures/smoke.yaml; reproduce: .venv/bin/pytest "
            f"suites/smoke -k 'kill/{component}')") from exc


def reading_gets_prediction(target: Target, *, within: float = 1.0) -> RoundTrip:
    """A reading published as the simulator role comes back as a prediction for its id within `within` s."""
    import json

    from indmlops.simulator import Plant

    ep = target.endpoint("mosquitto")
    sim, mon = target.credentials("mosquitto", "simulator"), target.credentials("mosquitto", "monitor")
    reading = next(Plant(seed=time.time_ns()).readings())
    reading.update(line="smoke", machine=f"m-{uuid.uuid4().hex[:8]}")
    topic = f"factory/smoke/{reading['machine']}"
    got: queue.Queue[dict] = queue.Queue()
    watcher = wire.mqtt_connect(ep, mon.username, mon.password)
    try:
        watcher.on_message = lambda _c, _u, msg: got.put({**json.loads(msg.payload), "_qos": msg.qos})
        wire.mqtt_subscribe(watcher, f"{topic}/prediction", qos=1)
        pub = wire.mqtt_connect(ep, sim.username, sim.password)
        try:
            t0 = time.perf_counter()
            reading["ts_ns"] = time.time_ns()
            pub.publish(f"{topic}/telemetry", json.dumps(reading), qos=1).wait_for_publish(within)
            try:
                pred = got.get(timeout=within)
            except queue.Empty:
                raise AssertionError(
                    f"no prediction on {topic}/prediction within {within:.1f} s of a reading published on "
                    f"{topic}/telemetry (inference at {target.endpoint('inference')}, broker {ep})") from None
            elapsed = time.perf_counter() - t0
        finally:
            wire.mqtt_close(pub)
    finally:
        wire.mqtt_close(watcher)
    assert pred["id"] == reading["id"], f"prediction for id {pred['id']}, expected {reading['id']}"
    assert pred["_qos"] >= 1, (f"the prediction on {topic}/prediction arrived at QoS {pred['_qos']} on a QoS 1 "
                               "subscription: the edge publishes predictions weaker than the contract (QoS 1)")
    return RoundTrip("prediction", elapsed, f"{topic} -> {pred['label']} (model {pred['model_version']})")
