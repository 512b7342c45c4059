"""A catalogue of realistic single faults for a running local stack, each with the suite that must notice it.

Written from the classes of faults a conformance suite must not let through (issue 25): a durability behaviour
that differs from the declared one, a message contract weakened at runtime, a broken identity contract, a
readiness or credential that says yes when the service cannot do its job, expectations that must come from the
intent and not from what is deployed, an edited access rule, a registry that points at nothing. Each fault changes
one thing in the running stack, the way an operator, a bad build or a drifted config would, and is undone after.

`tests/stack/test_live_mutations.py` applies them one at a time and runs the suite in a fresh pytest process.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from indmlops.targets.local.stack import LocalStack
from indmlops.targets.local.target import LocalTarget


class Live:
    """The handles a fault needs on one running local stack: its files, its supervisor, its services."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.target = LocalTarget(stack.layout.state_dir)
        self.cfg = self.target.cfg
        self.conf = stack.layout.conf

    def restart(self, *services: str, ready: bool = True, timeout: float = 90.0) -> None:
        """Stop and start (SIGTERM: the broker writes its database, nothing is lost), then wait until ready, or
        only until it runs when the fault is one its own readiness check sees."""
        for s in services:
            self.stack.supervisor.stop(s)
            self.stack.supervisor.start(s)
            if ready:
                self.target.wait_ready(s, timeout)
            else:
                time.sleep(3)  # past supervisord's startsecs: the program runs, not yet proven ready

    @contextmanager
    def edited(self, path: Path, edit: Callable[[str], str], *restart: str, ready: bool = True) -> Iterator[None]:
        """`path` rewritten by `edit` for the block (the services restarted to read it), then put back."""
        before = path.read_text()
        after = edit(before)
        assert after != before, f"the edit of {path} changed nothing: the fault would not be applied"
        mode = path.stat().st_mode
        path.write_text(after)
        path.chmod(mode)
        try:
            self.restart(*restart, ready=ready)
            yield
        finally:
            path.write_text(before)
            path.chmod(mode)
            self.restart(*restart)

    @contextmanager
    def program(self, service: str, edit: Callable[[str], str]) -> Iterator[None]:
        """The service's supervisord program section rewritten by `edit` (its command, environment or restart
        policy) for the block, the service started from it; then the section put back and the service restarted."""
        conf = self.stack.layout.supervisor_conf
        before = conf.read_text()
        head = f"[program:{service}]\n"
        start = before.index(head)
        end = before.find("\n[", start + len(head))
        end = len(before) if end < 0 else end + 1
        section = edit(before[start:end])
        assert section != before[start:end], f"the edit of [program:{service}] in {conf} changed nothing"
        conf.write_text(before[:start] + section + before[end:])
        try:
            self.stack.supervisor.reload_config()
            self.stack.supervisor.start(service)
            self.target.wait_ready(service, 90)
            yield
        finally:
            conf.write_text(before)
            self.stack.supervisor.reload_config()
            self.stack.supervisor.start(service)
            self.target.wait_ready(service, 90)

    def sql(self, *statements: str) -> None:
        ep, su = self.target.endpoint("postgres"), self.target.credentials("postgres", "superuser")
        with psycopg.connect(host=ep.host, port=ep.port, user=su.username, password=su.password,
                             dbname=su.extra["database"], autocommit=True, connect_timeout=10) as conn:
            for s in statements:
                conn.execute(s)  # type: ignore[arg-type]  # our own literal statements


def _environment(section: str, **changes: str) -> str:
    """The section's `environment=` line with `changes` set (added or replaced)."""
    m = re.search(r"^environment=(.*)$", section, re.M)
    pairs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))) if m else {}
    pairs.update(changes)
    line = "environment=" + ",".join(f'{k}="{v}"' for k, v in pairs.items())
    return section.replace(m.group(0), line) if m else section.rstrip("\n") + f"\n{line}\n"


def _sitecustomize(live: Live, name: str, code: str) -> Path:
    """A directory holding `sitecustomize.py`: Python imports it at start in any process whose PYTHONPATH has it.
    How a fault changes what a Python service does at runtime without touching the project's sources."""
    d = live.stack.layout.state_dir / "faults" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "sitecustomize.py").write_text(textwrap.dedent(code))
    d.chmod(0o755)
    return d


def _replace(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"{old!r} not found: the fault's premise no longer holds"
        return text.replace(old, new, count)
    return edit


def _drop_lines(pattern: str) -> Callable[[str], str]:
    return lambda text: "".join(line for line in text.splitlines(keepends=True) if not re.search(pattern, line))


# --- the faults -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """One realistic change to the running stack and the suite that must fail naming it."""

    name: str
    kind: str  # the class of fault it stands for
    what: str  # the change, in an operator's words
    suite: str  # the suite (path) that ought to notice
    select: str  # pytest -k: the tests of that suite that judge this behaviour
    names: str  # a regex the failure must match: it names what is wrong, not only that something is
    inject: Callable[[Live], AbstractContextManager[None]]


def _mosquitto_conf(edit: Callable[[str], str]) -> Callable[[Live], AbstractContextManager[None]]:
    return lambda live: live.edited(live.conf / "mosquitto" / "mosquitto.conf", edit, "mosquitto")


def _acl(edit: Callable[[str], str]) -> Callable[[Live], AbstractContextManager[None]]:
    return lambda live: live.edited(live.conf / "mosquitto" / "acl.conf", edit, "mosquitto")


@contextmanager
def _predictions_at_qos0(live: Live) -> Iterator[None]:
    # A build of the edge whose MQTT layer publishes its answers at QoS 0: fire and forget, so a broker restart
    # or a slow subscriber drops them with nobody told.
    site = _sitecustomize(live, "predictions-qos0", """
        import paho.mqtt.client as _mqtt
        _publish = _mqtt.Client.publish
        def publish(self, topic, payload=None, qos=0, retain=False, properties=None):
            if topic.endswith("/prediction"):
                qos = 0
            return _publish(self, topic, payload, qos, retain, properties)
        _mqtt.Client.publish = publish
    """)
    with live.program("inference", lambda s: _environment(s, PYTHONPATH=str(site))):
        yield


@contextmanager
def _ids_from_sequence(live: Live) -> Iterator[None]:
    # A simulator whose reading id is derived from the sequence number alone: every machine's reading n gets the
    # same id, so the edge's idempotency cache answers one machine's reading with another's prediction.
    site = _sitecustomize(live, "ids-from-sequence", """
        import uuid
        from indmlops.simulator import model as _model
        _model.Machine.new_id = lambda self: str(uuid.UUID(int=self.seq, version=4))
    """)
    with live.program("simulator", lambda s: _environment(s, PYTHONPATH=str(site))):
        yield


@contextmanager
def _no_restart(live: Live) -> Iterator[None]:
    # What a restartPolicy that does not restart does: the edge, once killed, stays down.
    with live.program("inference", _replace("autorestart=true", "autorestart=false")):
        yield


@contextmanager
def _mlflow_env(live: Live, **env: str) -> Iterator[None]:
    with live.program("mlflow", lambda s: _environment(s, **env)):
        yield


@contextmanager
def _database(live: Live, on: list[str], off: list[str]) -> Iterator[None]:
    live.sql(*on)
    try:
        yield
    finally:
        live.sql(*off)


@contextmanager
def _rotated_database_password(live: Live) -> Iterator[None]:
    # The role's password rotated in the database but not in the secret its clients read.
    role, password = live.cfg.credentials["postgres"]["user"], live.cfg.credentials["postgres"]["password"]
    with _database(live, [f"ALTER ROLE {role} PASSWORD 'rotated-elsewhere-7'"],
                   [f"ALTER ROLE {role} PASSWORD '{password}'"]):
        yield


@contextmanager
def _durability_off(live: Live) -> Iterator[None]:
    with _database(live, ["ALTER SYSTEM SET synchronous_commit = off", "SELECT pg_reload_conf()"],
                   ["ALTER SYSTEM RESET synchronous_commit", "SELECT pg_reload_conf()"]):
        yield


@contextmanager
def _prometheus_conf(live: Live, edit: Callable[[str], str]) -> Iterator[None]:
    path = live.conf / "prometheus" / "prometheus.yml"
    before = path.read_text()
    url = f"{live.target.endpoint('prometheus').url}/-/reload"
    path.write_text(edit(before))
    try:
        requests.post(url, timeout=10).raise_for_status()
        yield
    finally:
        path.write_text(before)
        requests.post(url, timeout=10).raise_for_status()


def _drop_job(job: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        jobs = re.split(r"(?m)^(?=- job_name: )", text)
        kept = [j for j in jobs if not j.startswith(f"- job_name: {job}\n")]
        assert len(kept) == len(jobs) - 1, f"job {job} not found in the scrape configuration"
        return "".join(kept)
    return edit


def _flow_deployed(edit: Callable[[list[dict]], list[dict]]) -> Callable[[Live], AbstractContextManager[None]]:
    """The flow as `edit` makes it, deployed through Node-RED's admin API (as the editor's Deploy does) for the
    block; then the flow that ran before deployed again."""
    @contextmanager
    def inject(live: Live) -> Iterator[None]:
        url = f"{live.target.endpoint('nodered').url}/flows"
        full = {"Node-RED-Deployment-Type": "full"}
        flows = requests.get(url, timeout=10).json()
        edited = edit(flows)
        assert edited != flows, "the edit changed nothing in the deployed flow: the fault's premise does not hold"
        requests.post(url, json=edited, headers=full, timeout=10).raise_for_status()
        try:
            yield
        finally:
            requests.post(url, json=flows, headers=full, timeout=10).raise_for_status()
    return inject


def _emptied(_flows: list[dict]) -> list[dict]:
    # Someone deploys an empty flow from the editor: Node-RED runs, answers, and does nothing.
    return []


def _topic_typo(flows: list[dict]) -> list[dict]:
    # The HMI's prediction input edited to a misspelt topic: the flow runs, its health endpoint answers, the HMI
    # shows nothing new.
    return [{**n, "topic": "factory/+/+/predictions"} if n.get("topic") == "factory/+/+/prediction" else n
            for n in flows]


@contextmanager
def _ready_before_model(live: Live) -> Iterator[None]:
    # An edge whose readiness only says the process is up, on a node without its model cache: after a restart it
    # says ready seconds before it has a model to answer with.
    site = _sitecustomize(live, "ready-before-model", """
        import time
        from indmlops.inference import service as _service
        _load = _service.InferenceService.load_model
        def load_model(self):
            time.sleep(5)  # the registry fetch of a cold node
            return _load(self)
        _service.InferenceService.load_model = load_model
        _service.InferenceService._load_cached = lambda self: False
        _service.InferenceService.ready = lambda self: (True, "process up")
    """)
    with live.program("inference", lambda s: _environment(s, PYTHONPATH=str(site))):
        yield


def _edge_patched(name: str, code: str) -> Callable[[Live], AbstractContextManager[None]]:
    """The edge started with `code` run at its start (a build of the serving code that differs from training's)."""
    @contextmanager
    def inject(live: Live) -> Iterator[None]:
        site = _sitecustomize(live, name, code)
        with live.program("inference", lambda s: _environment(s, PYTHONPATH=str(site))):
            yield
    return inject


_CONSTANT_MODEL = """
    from indmlops.inference import model as _model
    _model.LoadedModel.predict = lambda self, vector: ("normal", 0.0)
"""

# Serving computes the vector with two signals swapped: training/serving skew in the feature order.
_SWAPPED_FEATURES = """
    from indmlops import features as _features
    _vector = _features.FeatureState.vector
    def vector(self, key, features, order=None):
        v = _vector(self, key, features, order)
        v[0], v[1] = v[1], v[0]
        v[4], v[5] = v[5], v[4]
        return v
    _features.FeatureState.vector = vector
"""

# The edge loads a model once and never follows the alias again.
_ALIAS_IGNORED = """
    from indmlops.inference import service as _service
    _load = _service.InferenceService.load_model
    def load_model(self):
        if self.model is not None:
            return False
        return _load(self)
    _service.InferenceService.load_model = load_model
"""


@contextmanager
def _alias_moved_and_ignored(live: Live) -> Iterator[None]:
    import mlflow
    from mlflow import MlflowClient

    with _edge_patched("alias-ignored", _ALIAS_IGNORED)(live):
        mlflow.set_tracking_uri(live.target.endpoint("mlflow").url)
        client = MlflowClient()
        name, alias = "edge-anomaly", "champion"
        was = client.get_model_version_by_alias(name, alias)
        # The same model registered again (a retrain with the same result): the alias moves to its new version.
        again = mlflow.register_model(was.source, name, tags=was.tags)
        client.set_registered_model_alias(name, alias, again.version)
        try:
            time.sleep(12)  # two of the edge's registry looks (watch_interval 5 s): a following edge would swap
            yield
        finally:
            client.set_registered_model_alias(name, alias, was.version)
            client.delete_model_version(name, again.version)


@contextmanager
def _artifact_replaced(live: Live) -> Iterator[None]:
    # Someone overwrites the registered model's file in the bucket after registration: the registry still points
    # at the same path, the bytes are not the ones that were registered (and served).
    import hashlib

    from indmlops.checks.live.mlflow_store import s3_for

    served = requests.get(f"{live.target.endpoint('inference').url}/model", timeout=10).json()["sha256"]
    s3, bucket = s3_for(live.target)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", []) if o["Key"].endswith("/model.onnx")]
    bodies = {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
    key = next((k for k, b in bodies.items() if hashlib.sha256(b).hexdigest() == served), None)
    assert key, f"no model.onnx in {bucket} has the served sha256 {served[:16]}: the fault's premise does not hold"
    s3.put_object(Bucket=bucket, Key=key, Body=bodies[key] + b"\n")
    try:
        yield
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=bodies[key])


def _s3_identity(edit: Callable[[dict], None]) -> Callable[[Live], AbstractContextManager[None]]:
    def text(before: str) -> str:
        doc = json.loads(before)
        edit(doc)
        return json.dumps(doc)
    # The S3 server's readiness is an object round trip with these credentials: it sees the fault itself.
    return lambda live: live.edited(live.conf / "s3" / "identities.json", text, "s3", ready=False)


def _writes_revoked(doc: dict) -> None:
    for ident in doc["identities"]:
        ident["actions"] = [a for a in ident["actions"] if a not in ("Admin", "Write")]


FAULTS: list[Fault] = [
    # Access rules: a role loses what the data flow needs, or someone gets what nobody should have.
    Fault("acl-denies-predictions", "an access rule that breaks the data flow",
          "the broker's ACL no longer lets the edge write predictions (the broker drops them silently)",
          "suites/smoke", "prediction_within_one_second", r"no prediction on factory/smoke/",
          _acl(_replace("topic write factory/+/+/prediction\n", ""))),
    Fault("broker-allows-anonymous", "an access rule that opens the broker",
          "allow_anonymous true on the broker", "suites/smoke", "refused_when_anonymous", r"anonymous",
          _mosquitto_conf(_replace("allow_anonymous false", "allow_anonymous true"))),
    # Durability deployed differently from what the stack declares.
    Fault("broker-persistence-off", "a deployed durability behaviour that differs from the declared one",
          "persistence false on the broker", "suites/durability", "mosquitto",
          r"100 of 100 missing.*persistence is off",
          _mosquitto_conf(_replace("persistence true", "persistence false"))),
    Fault("broker-saves-hourly", "a deployed durability behaviour that differs from the declared one",
          "the broker saves its database every hour, not every second", "suites/durability", "mosquitto",
          r"every 3600 s",
          _mosquitto_conf(_replace("autosave_interval 1\n", "autosave_interval 3600\n"))),
    Fault("broker-queue-limit", "a limit that drops what was acknowledged",
          "max_queued_messages 50: an offline subscriber's queue is cut at 50 readings", "suites/durability",
          "mosquitto", r"150 of 200 missing.*150 of them the broker never queued",
          _mosquitto_conf(_replace("max_queued_messages 100000", "max_queued_messages 50"))),
    Fault("database-commits-not-durable", "a deployed durability behaviour that differs from the declared one",
          "ALTER SYSTEM SET synchronous_commit = off (no file of ours shows it)", "suites/durability",
          "durable_commits", r"synchronous_commit", _durability_off),
    # Message contracts weakened at runtime.
    Fault("predictions-at-qos0", "a message contract weakened at runtime",
          "the edge publishes its predictions at QoS 0", "suites/smoke", "prediction_within_one_second",
          r"QoS 0", _predictions_at_qos0),
    Fault("ids-from-sequence", "a publisher that breaks the reading identity contract",
          "the simulator derives each reading's id from its sequence number only", "suites/smoke",
          "keep_their_identity", r"names two readings", _ids_from_sequence),
    # Recovery.
    Fault("edge-not-restarted", "a supervisor that does not bring a killed service back",
          "the edge's program has autorestart=false", "suites/smoke", "kill/inference",
          r"inference was not ready after", _no_restart),
    # Credentials and endpoints that do not match.
    Fault("database-password-rotated", "a credential the service no longer accepts",
          "the mlflow role's password rotated in PostgreSQL, not in the secret", "suites/smoke",
          "postgres_answers_select", r"password authentication failed", _rotated_database_password),
    Fault("registry-wrong-s3-secret", "a credential the service no longer accepts",
          "MLflow's S3 secret key is wrong", "suites/mlflow", "run_artifacts_land_in_bucket",
          r"artifact proxy.*signature we calculated does not match",
          lambda live: _mlflow_env(live, AWS_SECRET_ACCESS_KEY="not-the-secret-key-0000")),
    Fault("registry-s3-endpoint-on-filer", "a client pointed at a port that speaks another protocol",
          "MLflow's S3 endpoint is the SeaweedFS filer's HTTP port, not the S3 gateway", "suites/mlflow",
          "run_artifacts_land_in_bucket", r"MLflow's own S3 settings differ",
          lambda live: _mlflow_env(
              live, MLFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{live.cfg.ports['s3-filer']}")),
    Fault("s3-writes-revoked", "a credential the service no longer accepts",
          "the stack's S3 identity loses its Write and Admin actions", "suites/smoke",
          "s3_object_reads_back", r"AccessDenied", _s3_identity(_writes_revoked)),
    # Readiness that says ready before the service can do its job.
    Fault("edge-ready-before-model", "readiness that says ready before the service can do its job",
          "the edge's /readyz says ready while it still fetches its model", "suites/smoke", "kill/inference",
          r"inference: said ready", _ready_before_model),
    # Observability: expectations from the intent, never from the deployed configuration.
    Fault("scrape-job-dropped", "an expectation read from the configuration under test",
          "the inference job removed from the deployed scrape configuration", "suites/observability",
          "target_up_for_every_scrape_job", r"missing \['inference'\]",
          lambda live: _prometheus_conf(live, _drop_job("inference"))),
    Fault("alert-rules-dropped", "an expectation read from the configuration under test",
          "rule_files removed from the deployed Prometheus configuration", "suites/observability",
          "every_declared_rule_loaded", r"20 of 20 rules from .* not loaded",
          lambda live: _prometheus_conf(live, _drop_lines(r"^rule_files:|^- .*/rules/"))),
    # The HMI.
    Fault("hmi-flow-emptied", "a service that answers but does not do its job",
          "an empty flow deployed to Node-RED", "suites/smoke", "nodered_runs_project_flow",
          r"23 of its 23 nodes are missing",
          _flow_deployed(_emptied)),
    # The model the edge serves (issue 26's classes, proven on the live stack here).
    Fault("edge-constant-model", "a model that answers without looking",
          "the edge's model answers normal, p_fault 0, whatever the reading", "suites/model", "golden_set",
          r"answers \d+ of 2000 golden readings otherwise than edge-anomaly",
          _edge_patched("constant-model", _CONSTANT_MODEL)),
    Fault("edge-feature-order-swapped", "training/serving skew",
          "serving computes the feature vector with two signals (and their changes) swapped", "suites/model",
          "golden_set", r"answers \d+ of 2000 golden readings otherwise than .*features temperature_c=",
          _edge_patched("swapped-features", _SWAPPED_FEATURES)),
    Fault("edge-ignores-alias-move", "a registry the edge stopped following",
          "the champion alias moves to a new version; the edge keeps the one it loaded", "suites/model",
          "version_the_registry_promotes", r"the edge did not follow the alias", _alias_moved_and_ignored),
    Fault("model-artifact-replaced", "an artifact replaced after registration",
          "the served model's file in the bucket overwritten after registration", "suites/model",
          "bytes_of_the_registry_artifact", r"whose bytes hash to [0-9a-f]{16}…, the registry's artifact",
          _artifact_replaced),
    Fault("hmi-topic-typo", "a service that answers but does not do its job",
          "the HMI's prediction input deployed with a misspelt topic", "suites/smoke", "nodered_runs_project_flow",
          r"differs in topic: deployed topic=\"factory/\+/\+/predictions\"", _flow_deployed(_topic_typo)),
]


def describe(fault: Fault) -> str:
    return f"{fault.name} ({fault.kind}): {fault.what}"


def command(fault: Fault, state_dir: Path, reports: Path) -> list[str]:
    return ["-m", "pytest", fault.suite, "-k", fault.select, "--target", "local", "--state-dir", str(state_dir),
            "--profile", "quick", "--reports-dir", str(reports), "-p", "no:cacheprovider", "-q"]

