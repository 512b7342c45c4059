"""Model conformance: the edge serves the version the registry promotes, with the registry's bytes, and answers a
golden set exactly as that version does when loaded on its own through MLflow, over MQTT and HTTP alike."""

from __future__ import annotations

import hashlib
import itertools
import json
import queue
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from indmlops import clients, wire
from indmlops.targets.base import Target


@dataclass(frozen=True)
class Champion:
    name: str
    alias: str
    version: str
    run_id: str | None
    source: str
    onnx_uri: str | None


def champion(target: Target, name: str, alias: str) -> Champion:
    """What the registry promotes: `name@alias`, asked over MLflow's REST API."""
    mv = clients.mlflow_alias(target.endpoint("mlflow").url, name, alias)
    assert mv is not None, f"registry {target.endpoint('mlflow')}: {name}@{alias} points at no version"
    tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
    return Champion(name, alias, str(mv["version"]), mv.get("run_id") or None, mv.get("source", ""),
                    tags.get("onnx_uri"))


def edge_model(target: Target) -> dict:
    """What the edge says it serves (GET /model): name, version, flavour, run, sha256 of its bytes."""
    url = f"{target.endpoint('inference').url}/model"
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200, f"edge {url}: HTTP {resp.status_code} {resp.text[:200]!r}"
    return resp.json()


# --- version and bytes ----------------------------------------------------------------------------------------

def edge_serves_champion(target: Target, *, name: str, alias: str) -> str:
    """The edge's model is the registry's `name@alias`, and a fresh prediction over MQTT names that version."""
    ch, served = champion(target, name, alias), edge_model(target)
    where = f"edge {target.endpoint('inference')} (GET /model)"
    assert (served["name"], served["version"]) == (ch.name, ch.version), (
        f"{where} serves {served['name']} v{served['version']}, the registry promotes {ch.name}@{ch.alias} = "
        f"v{ch.version} (run {ch.run_id}): the edge did not follow the alias")
    answers = mqtt_answers(target, [_probe_reading()], timeout=5)
    (pred,) = answers.values()
    assert (pred.get("model"), pred.get("model_version")) == (ch.name, ch.version), (
        f"a prediction over MQTT names model {pred.get('model')!r} version {pred.get('model_version')!r}; the "
        f"registry promotes {ch.name} v{ch.version}: {json.dumps(pred)[:300]}")
    return f"{ch.name}@{ch.alias} = v{ch.version} ({served['flavor']}), served and named in predictions"


def artifact_sha256(target: Target, ch: Champion) -> tuple[str, str]:
    """(sha256, what) of the champion's ONNX file as the registry stores it, read through MLflow's artifact proxy."""
    import mlflow
    import yaml
    from mlflow.artifacts import download_artifacts

    assert ch.onnx_uri, f"{ch.name} v{ch.version} has no onnx_uri tag: nothing the edge's ONNX bytes can match"
    mlflow.set_tracking_uri(target.endpoint("mlflow").url)  # runs:/ URIs resolve through the tracking server
    with tempfile.TemporaryDirectory(prefix="indmlops-model-") as tmp:
        local = Path(download_artifacts(artifact_uri=ch.onnx_uri, dst_path=tmp))
        data = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["onnx"]["data"]
        return hashlib.sha256((local / data).read_bytes()).hexdigest(), f"{ch.onnx_uri}/{data}"


def edge_bytes_are_the_registry_artifact(target: Target, *, name: str, alias: str) -> str:
    """The bytes the edge serves hash to the champion's artifact in the bucket (its ONNX flavour)."""
    ch, served = champion(target, name, alias), edge_model(target)
    assert served["flavor"] == "onnx", (
        f"edge {target.endpoint('inference')} serves the {served['flavor']} flavour of v{served['version']}: its "
        "bytes are its own pickle, not an artifact of the registry; the ONNX flavour is the one whose bytes can be "
        "compared (training logs both)")
    want, what = artifact_sha256(target, ch)
    assert served["sha256"] == want, (
        f"edge {target.endpoint('inference')} serves {served['name']} v{served['version']} whose bytes hash to "
        f"{served['sha256'][:16]}…, the registry's artifact {what} to {want[:16]}… (the artifact replaced after "
        "registration, or a cache the edge never checked against it)")
    return f"sha256 {want[:16]}… of {what} = what the edge serves"


# --- the golden set -------------------------------------------------------------------------------------------

def golden_set(*, seed: int, machines: int, per_machine: int, mean_gap_s: float) -> list[dict]:
    """Per-machine sequences of a seeded plant, in the order sent, on a line of their own (a fresh feature history
    at the edge); every fault mode must be in it."""
    from indmlops.simulator import Plant

    line = f"golden-{uuid.uuid4().hex[:8]}"
    plant = Plant(seed=seed, lines=1, machines=machines, mean_gap_s=mean_gap_s)
    out: list[dict] = []
    now = time.time_ns()
    for i, r in enumerate(plant.readings()):
        if len(out) >= machines * per_machine:
            break
        out.append({**r, "line": line, "id": str(uuid.uuid4()), "ts_ns": now + i * 1_000_000})
    from indmlops.simulator.model import FAULT_MODES

    seen = {r["label"] for r in out}
    missing = sorted(set(FAULT_MODES) - {"dropout"} - seen)  # a dropout sends no reading: nothing to predict
    assert not missing, (f"golden set (seed {seed}, {machines} machines × {per_machine}) lacks fault modes {missing}: "
                         "raise per_machine or lower mean_gap_s in fixtures/model.yaml")
    return out


def features_of(readings: list[dict]) -> list[list[float]]:
    """The training code's features (indmlops.features) for each reading, machine by machine in order."""
    from indmlops.features import FeatureState

    state = FeatureState()
    return [state.vector(f"{r['line']}/{r['machine']}", r["features"]) for r in readings]


def reference_answers(target: Target, ch: Champion, vectors: list[list[float]]) -> list[tuple[str, float]]:
    """(label, p_fault) of the champion loaded on its own through MLflow (its scikit-learn flavour, the model the
    run logged) on the training code's features."""
    import mlflow
    import mlflow.sklearn
    import numpy as np

    mlflow.set_tracking_uri(target.endpoint("mlflow").url)
    est = mlflow.sklearn.load_model(f"models:/{ch.name}/{ch.version}")
    classes = list(est.classes_)
    proba = est.predict_proba(np.asarray(vectors, dtype=np.float32))
    normal = classes.index("normal")
    return [(classes[int(p.argmax())], 1.0 - float(p[normal])) for p in proba]


def _probe_reading() -> dict:
    from indmlops.simulator import Plant

    r = next(Plant(seed=11, machines=1).readings())
    return {**r, "line": f"model-{uuid.uuid4().hex[:8]}", "id": str(uuid.uuid4()), "ts_ns": time.time_ns()}


def mqtt_answers(target: Target, readings: list[dict], *, timeout: float) -> dict[str, dict]:
    """Each reading published as the simulator would (QoS 1, in order), its prediction collected by id."""
    creds = target.credentials("mosquitto", "simulator")
    got: queue.Queue = queue.Queue()
    ep = target.endpoint("mosquitto")
    sub = wire.mqtt_connect(ep, creds.username, creds.password,
                            on_message=lambda _c, _u, m: got.put(json.loads(m.payload)))
    pub = wire.mqtt_connect(ep, creds.username, creds.password)
    want = {r["id"] for r in readings}
    out: dict[str, dict] = {}
    try:
        for line in {r["line"] for r in readings}:
            wire.mqtt_subscribe(sub, f"factory/{line}/+/prediction", qos=1)
        infos = [pub.publish(f"factory/{r['line']}/{r['machine']}/telemetry", json.dumps(r), qos=1)
                 for r in readings]
        for info in infos:
            info.wait_for_publish(timeout)
        deadline = time.monotonic() + timeout
        while len(out) < len(want) and time.monotonic() < deadline:
            try:
                p = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if p.get("id") in want:
                out.setdefault(p["id"], p)
    finally:
        wire.mqtt_close(pub)
        wire.mqtt_close(sub)
    missing = len(want) - len(out)
    assert not missing, (f"{missing} of {len(want)} readings got no prediction over MQTT within {timeout:g} s "
                         f"(broker {ep}, inference {target.endpoint('inference')})")
    return out


def http_answers(target: Target, readings: list[dict]) -> dict[str, dict]:
    """Each reading POSTed to /predict in order, its answer by id."""
    url = f"{target.endpoint('inference').url}/predict"
    out = {}
    with requests.Session() as s:
        for r in readings:
            resp = s.post(url, data=json.dumps(r), headers={"Content-Type": "application/json"}, timeout=10)
            assert resp.status_code == 200, f"POST {url} reading {r['id']}: HTTP {resp.status_code} {resp.text[:200]}"
            out[r["id"]] = resp.json()
    return out


@dataclass
class Parity:
    readings: int
    checked: dict[str, int] = field(default_factory=dict)  # transport → answers compared
    worst_p_diff: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.readings} golden readings ({', '.join(f'{k} {v}' for k, v in sorted(self.labels.items()))}); "
                f"answers equal to the registry's model over {', '.join(self.checked)}; worst |Δp_fault| "
                f"{self.worst_p_diff:.2g}")


def serving_parity(target: Target, *, name: str, alias: str, golden: list[dict], tolerance: float,
                   transports: tuple[str, ...] = ("mqtt", "http")) -> Parity:
    """Every answer of the edge to the golden set equals the champion's own on the training code's features: the
    same label, p_fault within `tolerance`. Each mismatch is reported with the reading, both answers and the
    feature vector."""
    from indmlops.features import FEATURE_NAMES

    ch = champion(target, name, alias)
    vectors = features_of(golden)
    expected = reference_answers(target, ch, vectors)
    out = Parity(len(golden))
    for r in golden:
        out.labels[r["label"]] = out.labels.get(r["label"], 0) + 1
    wrong: list[str] = []
    for transport in transports:
        # Each transport gets the set on a line of its own: the edge keeps one feature history per transport and
        # machine, and a fresh line starts it empty, as the reference does.
        line = f"{golden[0]['line']}-{transport}"
        sent = [{**r, "line": line, "id": str(uuid.uuid4())} for r in golden]
        answers = (mqtt_answers(target, sent, timeout=30) if transport == "mqtt" else http_answers(target, sent))
        for r, vec, (label, p) in zip(sent, vectors, expected):
            a = answers[r["id"]]
            diff = abs(float(a.get("p_fault", float("nan"))) - p)
            out.worst_p_diff = max(out.worst_p_diff, diff if diff == diff else float("inf"))
            if a.get("label") != label or not diff <= tolerance or a.get("model_version") != ch.version:
                wrong.append(f"{transport} {r['machine']} seq {r['seq']} (truth {r['label']}): edge "
                             f"{a.get('label')} p={a.get('p_fault')} v{a.get('model_version')}, {ch.name} "
                             f"v{ch.version} {label} p={p:.4f}; features "
                             + ", ".join(f"{n}={v:.4g}" for n, v in zip(FEATURE_NAMES, vec)))
        out.checked[transport] = len(sent)
    assert not wrong, (
        f"the edge {target.endpoint('inference')} answers {len(wrong)} of {len(golden) * len(transports)} golden "
        f"readings otherwise than {ch.name} v{ch.version} loaded through MLflow on the training code's features "
        f"(label equal, |Δp_fault| ≤ {tolerance:g}):\n  " + "\n  ".join(wrong[:12])
        + ("\n  …" if len(wrong) > 12 else ""))
    return out


# --- following the alias --------------------------------------------------------------------------------------

@dataclass
class AliasMove:
    to_version: str
    seconds: float  # from the alias move until every prediction names the new version
    versions_seen: list[str]


def _follow(target: Target, want: str, bound: float) -> AliasMove:
    """Predict one fresh reading every 0.2 s until the edge answers with `want`; the versions named must switch once
    (old … old, new … new): a reading is never answered by a mix, and no answer goes back."""
    t0 = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - t0 < bound:
        (pred,) = mqtt_answers(target, [_probe_reading()], timeout=5).values()
        seen.append(str(pred.get("model_version")))
        if seen[-1] == want:
            break
        time.sleep(0.2)
    took = time.monotonic() - t0
    assert seen and seen[-1] == want, (
        f"the edge {target.endpoint('inference')} still answered with v{seen[-1] if seen else '?'} {took:.1f} s "
        f"after the alias moved to v{want} (bound {bound:g} s; versions named in order: {seen[-8:]})")
    switches = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert switches <= 1, f"the edge's answers went back and forth between versions while following: {seen}"
    return AliasMove(want, took, seen)


def edge_follows_alias(target: Target, *, name: str, alias: str, bound: float) -> tuple[AliasMove, AliasMove]:
    """The champion's model registered again as a new version (a retrain with the same result, so the answers do
    not change), the alias moved to it: within `bound` s every prediction names the new version; then the alias
    moved back, and the edge follows back. The scratch version is deleted at the end."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(target.endpoint("mlflow").url)
    client = MlflowClient()
    was = client.get_model_version_by_alias(name, alias)
    again = mlflow.register_model(was.source, name, tags={**was.tags, "indmlops-check": "alias-follow"})
    try:
        client.set_registered_model_alias(name, alias, again.version)
        there = _follow(target, str(again.version), bound)
    finally:
        client.set_registered_model_alias(name, alias, was.version)
    try:
        back = _follow(target, str(was.version), bound)
    finally:
        client.delete_model_version(name, again.version)
    return there, back
