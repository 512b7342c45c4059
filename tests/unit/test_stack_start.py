"""How `up` orders the local stack's start: who starts with whom, work beside a start, the bootstrap model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from indmlops import clients, training
from indmlops.targets.local import stack as stack_module
from indmlops.targets.local.layout import StackConfig, resolve_ports
from indmlops.targets.local.services import SERVICES, Service, with_requirements
from indmlops.targets.local.services.inference import ModelBootstrap
from indmlops.targets.local.stack import LocalStack
from indmlops.targets.local.supervisor import ProcInfo
from indmlops.wire import NoAnswer


class FakeSupervisor:
    """Every started program is RUNNING at once; what matters here is the order `up` starts them in."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, name: str) -> None:
        self.started.append(name)

    def info(self, name: str) -> ProcInfo:
        return ProcInfo(name, "RUNNING", 4242, 0.0, 1.0, "", "")


def fake_service(name: str, requires: tuple[str, ...] = (), *, ready=None, start_after=None, beside=None) -> Service:
    return Service(name, requires, prepare=lambda cfg: {}, ready=ready or (lambda cfg: "ok"),
                   start_after=start_after, beside=beside)


@pytest.fixture
def start(monkeypatch, tmp_path):
    """start(services, jobs) -> (programs in start order, progress messages), through LocalStack._start_in_order."""
    def run(services: list[Service], jobs=None) -> tuple[list[str], list[str]]:
        monkeypatch.setattr(stack_module, "SERVICES", {s.name: s for s in services})
        stack = LocalStack(tmp_path / "state")
        stack.supervisor = FakeSupervisor()  # type: ignore[assignment]
        messages: list[str] = []
        stack._start_in_order(StackConfig(tmp_path / "state"), [s.name for s in services], messages.append,
                              timeout=60, jobs=jobs)
        return stack.supervisor.started, messages  # type: ignore[attr-defined]
    return run


def index(messages: list[str], text: str) -> int:
    return next(i for i, m in enumerate(messages) if m == text or m.startswith(text))


def test_service_with_empty_start_after_starts_before_what_it_requires_is_ready(start):
    db_probes = iter([NoAnswer("starting")] * 3)

    def db_ready(cfg):
        exc = next(db_probes, None)
        if exc:
            raise exc
        return "ok"

    order, messages = start([fake_service("db", ready=db_ready), fake_service("server", ("db",), start_after=()),
                             fake_service("client", ("server",))])
    assert order == ["db", "server", "client"]
    assert index(messages, "server: starting") < index(messages, "db: ready in")
    assert index(messages, "client: starting") > index(messages, "server: ready in")


def test_service_is_ready_only_once_the_work_beside_its_start_returned(start):
    release, finished = threading.Event(), threading.Event()
    probes_while_held = []

    def ready(cfg):
        if not release.is_set():
            probes_while_held.append(finished.is_set())
            if len(probes_while_held) == 3:
                release.set()
        return "answers"

    def job() -> str:
        release.wait(60)
        finished.set()
        return "model registered"

    _, messages = start([fake_service("svc", ready=ready)], jobs={"svc": job})
    assert probes_while_held == [False, False, False]  # the probe answered three times while the job was held
    assert messages == ["svc: starting", "svc: model registered", messages[2]]
    assert messages[2].startswith("svc: ready in") and messages[2].endswith("(answers)")


def test_up_fails_with_the_error_of_the_work_beside_a_start(start):
    def job() -> str:
        raise RuntimeError("MLflow refused the model")

    with pytest.raises(RuntimeError, match="MLflow refused the model"):
        start([fake_service("svc")], jobs={"svc": job})


def test_mlflow_starts_with_the_first_services_but_up_mlflow_still_brings_its_stores():
    assert SERVICES["mlflow"].waits_for() == ()
    assert with_requirements(["mlflow"]) == ["postgres", "s3", "mlflow"]
    assert set(SERVICES["inference"].waits_for()) == {"mosquitto", "mlflow", "s3"}
    assert SERVICES["inference"].beside is not None


# -- the bootstrap model -----------------------------------------------------------------------------------------

class Recorder:
    def __init__(self, registered: str | None) -> None:
        self.registered = registered
        self.calls: list[str] = []
        self.fitted = threading.Event()

    def lookup(self, url: str) -> str | None:
        self.calls.append(f"lookup {url}")
        return self.registered

    def fit(self) -> training.Candidate:
        self.calls.append("fit")
        self.fitted.set()
        return training.Candidate(None, None, None, None, {"kind": "bootstrap"}, {"f1": 0.9}, 0.1)

    def register(self, url: str, cand: training.Candidate) -> training.TrainResult:
        self.calls.append(f"register {cand.params['kind']}")
        return training.TrainResult("run-1", "1", cand.metrics, 0.2)


@pytest.fixture
def cfg(tmp_path) -> StackConfig:
    return StackConfig(tmp_path, resolve_ports(2000))


def bootstrap(cfg: StackConfig, rec: Recorder, fresh: bool) -> ModelBootstrap:
    return ModelBootstrap(cfg, fresh, fit=rec.fit, register=rec.register, lookup=rec.lookup)


def test_fresh_stack_fits_the_bootstrap_model_before_mlflow_answers_and_registers_it_after(cfg):
    rec = Recorder(registered=None)
    boot = bootstrap(cfg, rec, fresh=True)
    assert rec.fitted.wait(60)  # fitted without anyone asking MLflow
    assert rec.calls == ["fit"]
    message = boot.ensure()
    assert rec.calls == ["fit", f"lookup http://127.0.0.1:{cfg.ports['mlflow']}", "register bootstrap"]
    assert "registered the bootstrap model as edge-anomaly@champion version 1" in message
    assert "`indmlops train` makes the full model" in message


def test_registered_champion_is_left_alone_and_nothing_is_fitted_on_an_existing_stack(cfg):
    rec = Recorder(registered="7")
    assert bootstrap(cfg, rec, fresh=False).ensure() == "model edge-anomaly@champion is version 7"
    assert rec.calls == [f"lookup http://127.0.0.1:{cfg.ports['mlflow']}"]


def test_existing_stack_without_a_model_fits_one_when_the_registry_has_none(cfg):
    rec = Recorder(registered=None)
    bootstrap(cfg, rec, fresh=False).ensure()
    assert rec.calls == [f"lookup http://127.0.0.1:{cfg.ports['mlflow']}", "fit", "register bootstrap"]


def test_bootstrap_candidate_learns_from_a_faultier_plant_and_is_judged_on_the_ordinary_one():
    cand = training.fit_candidate(**{**training.BOOTSTRAP, "n_train": 3000, "n_test": 2000, "trees": 2})
    assert cand.params["kind"] == "bootstrap" and cand.params["train_fault_gap_s"] == 60.0
    assert cand.params["test_seed"] != cand.params["train_seed"]
    assert set(cand.metrics) == {"precision", "recall", "f1", "macro_f1_modes"}
    assert cand.onnx is not None and len(cand.X) == len(cand.y) == 3000
    assert training.fit_candidate(n_train=500, n_test=500, trees=2, depth=4).params["kind"] == "full"


# -- the registry lookup without the MLflow client -----------------------------------------------------------------

@pytest.fixture
def registry() -> Iterator[tuple[str, dict]]:
    """A stand-in for MLflow's REST endpoint GET registered-models/alias; `answer` sets status and body."""
    answer: dict = {"status": 404, "body": {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no alias"}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer["path"] = self.path
            body = json.dumps(answer["body"]).encode()
            self.send_response(answer["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer
    server.shutdown()
    server.server_close()


def test_alias_lookup_answers_none_when_the_registry_has_no_such_alias(registry):
    url, answer = registry
    assert clients.mlflow_alias_version(url, "edge-anomaly", "champion") is None
    assert answer["path"] == "/api/2.0/mlflow/registered-models/alias?name=edge-anomaly&alias=champion"


def test_alias_lookup_answers_the_version_the_alias_points_at(registry):
    url, answer = registry
    answer.update(status=200, body={"model_version": {"name": "edge-anomaly", "version": "3", "aliases": ["champion"]}})
    assert clients.mlflow_alias_version(url, "edge-anomaly", "champion") == "3"


def test_alias_lookup_raises_with_status_and_body_when_mlflow_fails(registry):
    url, answer = registry
    answer.update(status=500, body={"error_code": "INTERNAL_ERROR", "message": "database is down"})
    with pytest.raises(NoAnswer, match=r"edge-anomaly@champion\): HTTP 500: .*database is down"):
        clients.mlflow_alias_version(url, "edge-anomaly", "champion")
