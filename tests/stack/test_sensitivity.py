"""Each smoke check fails when the thing it checks is broken: a stopped service, a wrong expectation."""

from __future__ import annotations

import psycopg
import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError
from mlflow.exceptions import MlflowException

from indmlops import wire
from indmlops.checks.live import smoke
from indmlops.errors import IndMLOpsError, NotReady

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("component", ["mosquitto", "postgres", "s3", "mlflow", "prometheus", "nodered"])
def test_component_ready_fails_with_last_state_when_stopped(target, stopped, component):
    with stopped(component), pytest.raises(NotReady) as err:
        smoke.component_ready(target, component, timeout=2)
    assert f"{component} was not ready after 2 s" in str(err.value)
    assert "STOPPED" in str(err.value)


# How a check may fail when its service is down: an assertion, or the error its client raises for an unreachable or
# refusing service. A TypeError or KeyError is a bug in the check, not the check noticing: it must not count.
SERVICE_DOWN = (AssertionError, IndMLOpsError, wire.NoAnswer, OSError, requests.RequestException, MlflowException,
                BotoCoreError, ClientError, psycopg.Error)

CHECKS_AND_SERVICE = {
    "mqtt_round_trip": ("mosquitto", lambda t: smoke.mqtt_round_trip(t, timeout=2)),
    "mqtt_refuses": ("mosquitto", lambda t: smoke.mqtt_refuses(t, username=None, password=None)),
    "mqtt_publish_denied": ("mosquitto", lambda t: smoke.mqtt_publish_denied(t, role="simulator",
                                                                             topic="factory/x/y/prediction")),
    "s3_round_trip": ("s3", smoke.s3_round_trip),
    "s3_refuses_wrong_secret": ("s3", smoke.s3_refuses_wrong_secret),
    "postgres_answers": ("postgres", smoke.postgres_answers),
    "mlflow_run_with_artifact": ("mlflow", smoke.mlflow_run_with_artifact),
    "mlflow_artifact_store_down": ("s3", smoke.mlflow_run_with_artifact),
    "nodered_flow_loaded": ("nodered", smoke.nodered_flow_loaded),
}


@pytest.mark.parametrize("check", list(CHECKS_AND_SERVICE), ids=[f"{c}/{s}-stopped" for c, (s, _) in
                                                                   CHECKS_AND_SERVICE.items()])
def test_check_fails_when_its_service_is_stopped(target, stopped, check):
    service, run = CHECKS_AND_SERVICE[check]
    with stopped(service), pytest.raises(SERVICE_DOWN) as err:
        run(target)
    print(f"{check} with {service} stopped: {type(err.value).__name__}: {str(err.value)[:600]}")
    # The failure must point at the broken service: its port (or name) appears in the message.
    assert str(target.endpoint(service).port) in str(err.value) or service in str(err.value), str(err.value)


def _scraped_down(target, job: str, timeout: float = 20) -> None:
    """Wait until Prometheus's own last scrape of `job` failed (scrape interval 5 s: 20 s is four chances)."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    url = f"{target.endpoint('prometheus').url}/api/v1/targets?state=active"
    while time.monotonic() < deadline:
        active = requests.get(url, timeout=5).json()["data"]["activeTargets"]
        if any(t["labels"]["job"] == job and t["health"] == "down" for t in active):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never scraped {job} as down within {timeout} s")


def test_prometheus_check_fails_naming_the_job_when_its_target_is_down(target, stopped):
    with stopped("mlflow"):
        _scraped_down(target, "mlflow")
        with pytest.raises(AssertionError) as err:
            smoke.prometheus_targets_up(target, jobs=["prometheus", "mlflow", "seaweedfs"], timeout=1)
    assert "not up [('mlflow', 'down http://127.0.0.1:" in str(err.value)


def test_prometheus_check_fails_when_an_expected_job_is_not_configured(target):
    with pytest.raises(AssertionError, match=r"missing \['grafana'\]"):
        smoke.prometheus_targets_up(target, jobs=["prometheus", "grafana"], timeout=1)


def test_mqtt_refuses_check_fails_when_credentials_are_right(target):
    good = target.credentials("mosquitto", "simulator")
    with pytest.raises(AssertionError, match="accepted user 'simulator'"):
        smoke.mqtt_refuses(target, username=good.username, password=good.password)


def test_mqtt_publish_denied_check_fails_when_the_acl_allows_the_topic(target):
    with pytest.raises(AssertionError, match="role 'simulator' could publish on factory/x/m-1/telemetry"):
        smoke.mqtt_publish_denied(target, role="simulator", topic="factory/x/m-1/telemetry")


def test_recovery_check_fails_when_autorestart_is_disabled(scratch_stack):
    from indmlops.targets.local.target import LocalTarget

    stack = scratch_stack(no_autorestart=frozenset({"mosquitto"}))
    stack.up(["mosquitto"])
    with pytest.raises(NotReady) as err:
        smoke.killed_component_recovers(LocalTarget(stack.layout.state_dir), "mosquitto", timeout=5)
    assert "mosquitto was not ready after" in str(err.value)


def test_recovery_check_passes_on_scratch_stack_with_autorestart(scratch_stack):
    from indmlops.targets.local.target import LocalTarget

    stack = scratch_stack()
    stack.up(["mosquitto"])
    rec = smoke.killed_component_recovers(LocalTarget(stack.layout.state_dir), "mosquitto", timeout=15)
    assert rec.restarts_after == 1 and rec.ready.identity != rec.kill.identity



def test_identity_check_fails_when_a_publisher_reuses_an_id(target):
    """A second publisher on the live broker that stamps every reading with one id: the smoke check names it."""
    import itertools
    import json
    import threading
    import time

    from indmlops.checks.live import identity
    from indmlops.simulator import Plant

    sim = target.credentials("mosquitto", "simulator")
    pub = wire.mqtt_connect(target.endpoint("mosquitto"), sim.username, sim.password)
    stop = threading.Event()

    def publish() -> None:
        for r in itertools.islice(Plant(seed=3, machines=1).readings(), 200):
            if stop.is_set():
                return
            r.update(line="identity-breach", id="00000000-0000-4000-8000-000000000000", ts_ns=time.time_ns())
            pub.publish(f"factory/identity-breach/{r['machine']}/telemetry", json.dumps(r), qos=1)
            time.sleep(0.05)

    worker = threading.Thread(target=publish, daemon=True)
    worker.start()
    try:
        with pytest.raises(AssertionError, match=r"id 00000000-0000-4000-8000-000000000000 names two readings"):
            identity.publishers_keep_reading_identity(target, seconds=2)
    finally:
        stop.set()
        worker.join(5)
        wire.mqtt_close(pub)


@pytest.mark.parametrize(("component", "broken", "says"), [
    ("inference", "inference", "no prediction on factory/smoke/"),  # the edge is gone: no reading is answered
    # MLflow's /health answers OK with its database down: its readiness says nothing about the registry.
    ("mlflow", "postgres", "registered-models/search"),
    ("simulator", "simulator", "no reading on factory/+/+/telemetry"),
], ids=["inference-gone", "mlflow-without-database", "simulator-gone"])
def test_ready_means_working_fails_when_the_component_cannot_do_its_job(target, stopped, component, broken, says):
    """`ready_means_working` asks each component's job once, right after it said ready: a readiness that says ready
    before the service can work fails the recovery check, with the readiness it claimed."""
    from indmlops.targets.base import ReadyEvidence

    claimed = ReadyEvidence(component, "pid 1", 0.5, "HTTP 200 (a readiness that only says the process is up)")
    with stopped(broken):
        if component == "mlflow":
            assert "OK" in requests.get(f"{target.endpoint('mlflow').url}/health", timeout=5).text
        with pytest.raises(AssertionError, match=f"{component}: said ready") as err:
            smoke.ready_means_working(target, component, claimed)
    assert says in str(err.value) and "Readiness that says ready before the service can work" in str(err.value)


def test_mlflow_is_not_ready_while_its_database_is_down(target, stopped):
    """Its readiness asks the tracking store (clients.MLFLOW_READY_PATH), not /health, which says OK regardless."""
    with stopped("postgres"):
        assert "OK" in requests.get(f"{target.endpoint('mlflow').url}/health", timeout=5).text
        with pytest.raises(NotReady) as err:
            target.wait_ready("mlflow", 5)
    assert "experiments/search" in str(err.value) and "HTTP 5" in str(err.value), str(err.value)
