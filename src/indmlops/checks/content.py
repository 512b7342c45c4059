"""Known content per stateful component: write it, then verify every byte of it (used by the durability checks)."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from indmlops import probes
from indmlops.targets.base import Target


@dataclass
class Content:
    """What one writer put into the system, and how to check it is all still there."""

    kind: str
    items: int
    bytes: int
    where: str
    verify: Callable[[], int]  # returns the number of items verified; raises AssertionError naming what is lost
    cleanup: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)


def _lost(kind: str, where: str, lost: list, changed: list, total: int, hint: str = "") -> None:
    if lost or changed:
        raise AssertionError(f"{kind} at {where}: {len(lost)} of {total} missing {lost[:8]}, {len(changed)} "
                             f"changed {changed[:8]}" + (f"; {hint}" if hint else ""))


# --- PostgreSQL --------------------------------------------------------------------------------------------

PG_SCHEMA = "indmlops_durability"


def _pg(target: Target):
    import psycopg

    creds, ep = target.credentials("postgres"), target.endpoint("postgres")
    return psycopg.connect(host=ep.host, port=ep.port, user=creds.username, password=creds.password,
                           dbname=creds.extra["database"], connect_timeout=5, autocommit=True)


def postgres_rows(target: Target, tag: str, *, rows: int = 500, size: int = 1024) -> Content:
    """`rows` committed rows of random bytes in the MLflow database's own schema (not MLflow's tables)."""
    sent = {i: os.urandom(size) for i in range(rows)}
    where = f"{target.endpoint('postgres')} table {PG_SCHEMA}.content (tag {tag})"
    with _pg(target) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.content "
                     "(tag text, i int, payload bytea, sha256 text, PRIMARY KEY (tag, i))")
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {PG_SCHEMA}.content VALUES (%s, %s, %s, %s)",
                            [(tag, i, b, hashlib.sha256(b).hexdigest()) for i, b in sent.items()])

    def verify() -> int:
        import psycopg

        try:
            with _pg(target) as conn:
                got = dict(conn.execute(f"SELECT i, payload FROM {PG_SCHEMA}.content WHERE tag = %s",
                                        (tag,)).fetchall())
        except psycopg.errors.UndefinedTable:
            raise AssertionError(f"postgres rows at {where}: the table does not exist any more: all {rows} rows "
                                 "lost (is the server running on another data directory?)") from None
        _lost("postgres rows", where, sorted(set(sent) - set(got))[:8],
              [i for i in sent if i in got and bytes(got[i]) != sent[i]], rows,
              "committed before the kill, so a restart on the same data directory must keep them")
        return rows

    def cleanup() -> None:
        with _pg(target) as conn:
            conn.execute(f"DELETE FROM {PG_SCHEMA}.content WHERE tag = %s", (tag,))

    return Content("postgres rows", rows, rows * size, where, verify, cleanup)


# --- S3 ----------------------------------------------------------------------------------------------------

def s3_objects(target: Target, tag: str, *, count: int = 12) -> Content:
    """Objects from 1 kB to 2 MB with their sha256, under indmlops-durability/<tag>/ in the bucket."""
    creds = target.credentials("s3")
    bucket = creds.extra["bucket"]
    s3 = probes.s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
    prefix = f"indmlops-durability/{tag}/"
    sizes = [1024 * 2 ** (i % 12) for i in range(count)]  # 1 kB .. 2 MB
    sent: dict[str, str] = {}
    for i, size in enumerate(sizes):
        body = os.urandom(size)
        s3.put_object(Bucket=bucket, Key=f"{prefix}obj-{i:03d}", Body=body)
        sent[f"{prefix}obj-{i:03d}"] = hashlib.sha256(body).hexdigest()
    where = f"s3://{bucket}/{prefix} at {target.endpoint('s3')}"

    def verify() -> int:
        from botocore.exceptions import ClientError

        client = probes.s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
        lost, changed = [], []
        for key, digest in sent.items():
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                lost.append(f"{key} ({exc.response['Error'].get('Code')})")
                continue
            if hashlib.sha256(body).hexdigest() != digest:
                changed.append(key)
        _lost("s3 objects", where, lost, changed, count)
        return count

    def cleanup() -> None:
        for key in sent:
            s3.delete_object(Bucket=bucket, Key=key)

    return Content("s3 objects", count, sum(sizes), where, verify, cleanup)


# --- MLflow ------------------------------------------------------------------------------------------------

DURABILITY_EXPERIMENT = "indmlops-durability"


def mlflow_runs(target: Target, tag: str, *, runs: int = 2, steps: int = 100, artifacts: int = 3) -> Content:
    """Runs with params, tags, three metric histories of `steps` points and artifacts (sha256) through the proxy."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from indmlops.checks.mlflow_store import bucket_hashes

    uri = target.endpoint("mlflow").url
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(DURABILITY_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(DURABILITY_EXPERIMENT)
    written: dict[str, dict] = {}
    total_bytes = 0
    now = int(time.time() * 1000)
    for r in range(runs):
        run_id = client.create_run(exp_id, tags={"indmlops.tag": tag}).info.run_id
        params = {f"p{i}": f"{tag}-{r}-{i}" for i in range(10)}
        metrics = [Metric(f"m{k}", (r + 1) * 1.0 / (s + 1) + k, now + s, s) for k in range(3) for s in range(steps)]
        client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("indmlops.run", str(r))])
        files = {f"out/a-{i}.bin": os.urandom(32 * 1024 * (i + 1)) for i in range(artifacts)}
        with tempfile.TemporaryDirectory() as tmp:
            for rel, body in files.items():
                Path(tmp, rel).parent.mkdir(parents=True, exist_ok=True)
                Path(tmp, rel).write_bytes(body)
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id)
        total_bytes += sum(len(b) for b in files.values())
        written[run_id] = {"params": params,
                           "metrics": {(m.key, m.step): (m.value, m.timestamp) for m in metrics},
                           "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    items = sum(len(w["params"]) + len(w["metrics"]) + len(w["files"]) for w in written.values())
    where = f"MLflow {uri} experiment {DURABILITY_EXPERIMENT} ({exp_id}), runs {sorted(written)}"

    def verify() -> int:
        from mlflow.exceptions import MlflowException

        from indmlops.checks.mlflow_store import compare_hashes, proxied_reads_match

        fresh = MlflowClient(uri)
        for run_id, w in written.items():
            try:
                run = fresh.get_run(run_id)
            except MlflowException as exc:
                raise AssertionError(f"mlflow runs at {where}: run {run_id} unreadable after the kill: "
                                     f"{str(exc).splitlines()[0][:200]}") from None
            assert run.data.params == w["params"], (
                f"run {run_id} params changed: sent {w['params']}, read {run.data.params}")
            got = {(m.key, m.step): (m.value, m.timestamp)
                   for k in ("m0", "m1", "m2") for m in fresh.get_metric_history(run_id, k)}
            lost = sorted(set(w["metrics"]) - set(got))
            changed = [k for k in w["metrics"] if k in got and got[k] != w["metrics"][k]]
            _lost("mlflow metric points", f"run {run_id}", lost, changed, len(w["metrics"]))
            proxied_reads_match(target, run_id, w["files"])
            prefix = f"{exp_id}/{run_id}/artifacts/"
            compare_hashes(f"run {run_id} artifacts in the bucket", w["files"], bucket_hashes(target, prefix))
        return items

    def cleanup() -> None:
        for run_id in written:
            client.delete_run(run_id)

    return Content("mlflow runs", items, total_bytes, where, verify, cleanup,
                   [f"{runs} runs × (10 params, 3×{steps} metric points, {artifacts} artifacts)"])


# --- MQTT --------------------------------------------------------------------------------------------------

def _topic(tag: str, kind: str) -> str:
    # The probe role may read and write indmlops/probe/# only (config/mosquitto/acl.conf).
    return f"indmlops/probe/durability/{tag}/{kind}"


def _collect(target: Target, topic_filter: str, want: int, *, client_id: str | None = None,
             clean_session: bool = True, subscribe: bool = True, timeout: float = 10.0,
             retained_only: bool = False) -> dict[str, bytes]:
    """Messages arriving on `topic_filter` until `want` distinct topics are seen or `timeout` passes."""
    creds = target.credentials("mosquitto", "probe")
    got: queue.Queue = queue.Queue()
    client = probes.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password,
                                 client_id=client_id, clean_session=clean_session,
                                 on_message=lambda _c, _u, m: got.put((m.topic, m.payload, m.retain)))
    out: dict[str, bytes] = {}
    try:
        if subscribe:
            probes.mqtt_subscribe(client, topic_filter, qos=1)
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            try:
                topic, payload, retain = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if retain or not retained_only:
                out[topic] = payload
    finally:
        probes.mqtt_close(client)
    return out


def mqtt_retained(target: Target, tag: str, *, count: int = 100) -> Content:
    """`count` retained QoS1 messages, one per topic, each acknowledged by the broker."""
    creds = target.credentials("mosquitto", "probe")
    base = _topic(tag, "retained")
    sent = {f"{base}/{i}": os.urandom(16).hex().encode() for i in range(count)}
    pub = probes.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password)
    try:
        for info in [pub.publish(t, p, qos=1, retain=True) for t, p in sent.items()]:
            info.wait_for_publish(10)
    finally:
        probes.mqtt_close(pub)
    where = f"broker {target.endpoint('mosquitto')} topics {base}/#"

    def verify() -> int:
        got = _collect(target, f"{base}/#", count, retained_only=True)
        _lost("retained MQTT messages", where, sorted(set(sent) - set(got))[:8],
              [t for t in sent if t in got and got[t] != sent[t]], count,
              "each was acknowledged (PUBACK) before the kill")
        return count

    def cleanup() -> None:
        c = probes.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password)
        try:
            for info in [c.publish(t, b"", qos=1, retain=True) for t in sent]:  # empty retained = delete
                info.wait_for_publish(10)
        finally:
            probes.mqtt_close(c)

    return Content("retained MQTT messages", count, sum(len(p) for p in sent.values()), where, verify, cleanup)


def mqtt_queued(target: Target, tag: str, *, count: int = 200) -> Content:
    """`count` acknowledged QoS1 messages queued for an offline persistent session (client id of its own)."""
    creds = target.credentials("mosquitto", "probe")
    ep = target.endpoint("mosquitto")
    base, client_id = _topic(tag, "queued"), f"indmlops-durability-{tag}"
    sub = probes.mqtt_connect(ep, creds.username, creds.password, client_id=client_id, clean_session=False)
    try:
        probes.mqtt_subscribe(sub, f"{base}/#", qos=1)
    finally:
        probes.mqtt_close(sub)
    sent = {f"{base}/{i}": os.urandom(16).hex().encode() for i in range(count)}
    pub = probes.mqtt_connect(ep, creds.username, creds.password)
    try:
        for info in [pub.publish(t, p, qos=1) for t, p in sent.items()]:
            info.wait_for_publish(10)
    finally:
        probes.mqtt_close(pub)
    where = f"broker {ep} session {client_id} ({base}/#)"

    def verify() -> int:
        got = _collect(target, f"{base}/#", count, client_id=client_id, clean_session=False, subscribe=False)
        _lost("queued QoS1 messages", where, sorted(set(sent) - set(got))[:8],
              [t for t in sent if t in got and got[t] != sent[t]], count,
              "each was acknowledged (PUBACK) before the kill; Mosquitto persists on its next autosave")
        return count

    def cleanup() -> None:
        # Resume the session with clean_session: the broker forgets it and stops queueing for it.
        probes.forget_session(ep, creds.username, creds.password, client_id)

    return Content("queued QoS1 messages", count, sum(len(p) for p in sent.values()), where, verify, cleanup)


# --- Node-RED ----------------------------------------------------------------------------------------------

def nodered_context(target: Target, tag: str, *, machines: int = 5) -> Content:
    """Predictions published as the inference role land in the flow's persisted context (the HMI's state)."""
    creds = target.credentials("mosquitto", "inference")
    ep = target.endpoint("mosquitto")
    # A fixed set of machine keys, overwritten by every run: the flow context does not grow with each test.
    sent = {f"durability/m-{i}": {"id": f"{tag}-{i}", "label": "normal", "fault": False, "p_fault": i / 10,
                                  "model_version": tag} for i in range(machines)}
    url = f"{target.endpoint('nodered').url}/hmi/api/state"

    def state() -> dict:
        return requests.get(url, timeout=5).json().get("machines", {})

    # Node-RED subscribes with a clean session and reconnects 5 s after losing the broker (after a mosquitto
    # kill, say): predictions published meanwhile never reach it. Publish again every 2 s until the flow has
    # recorded them all (the same ids: idempotent), within 30 s.
    pub = probes.mqtt_connect(ep, creds.username, creds.password)
    deadline, seen, sent_at = time.monotonic() + 30, {}, 0.0
    try:
        while True:
            if time.monotonic() - sent_at > 2:
                for info in [pub.publish(f"factory/{k}/prediction", json.dumps(v), qos=1) for k, v in sent.items()]:
                    info.wait_for_publish(10)
                sent_at = time.monotonic()
            seen = state()
            if all(seen.get(k, {}).get("id") == v["id"] for k, v in sent.items()):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"Node-RED {url}: the flow did not record {sorted(sent)} within 30 s "
                                     f"(last state had {sorted(seen)[:10]})")
            time.sleep(0.2)
    finally:
        probes.mqtt_close(pub)
    where = f"Node-RED flow context 'machines' via {url}"

    def verify() -> int:
        got = state()
        lost = [k for k in sent if k not in got]
        changed = [f"{k}: id {got[k].get('id')!r} != {v['id']!r}" for k, v in sent.items()
                   if k in got and any(got[k].get(f) != v[f] for f in v)]
        _lost("Node-RED context entries", where, lost, changed, machines,
              "recorded before the kill; localfilesystem context flushes every flushInterval seconds")
        return machines

    size = sum(len(json.dumps(v)) for v in sent.values())
    return Content("Node-RED context entries", machines, size, where, verify)


# --- Prometheus --------------------------------------------------------------------------------------------

PROM_SERIES = '{__name__=~"up|scrape_samples_scraped|scrape_duration_seconds"}'


def prometheus_samples(target: Target, tag: str, *, window: str = "2m") -> Content:
    """Every raw sample of the scrape-health series in the last `window`, read before the kill."""
    url = f"{target.endpoint('prometheus').url}/api/v1/query"
    at = time.time() - 1  # a fixed evaluation time: the same range before and after the restart
    query = f"{PROM_SERIES}[{window}]"

    def read() -> dict[tuple, list]:
        body = requests.get(url, params={"query": query, "time": f"{at:.3f}"}, timeout=10).json()
        assert body.get("status") == "success", f"Prometheus {url} query {query!r}: {body}"
        return {tuple(sorted(s["metric"].items())): s["values"] for s in body["data"]["result"]}

    before = read()
    samples = sum(len(v) for v in before.values())
    assert samples > 0, f"Prometheus {url}: no samples for {query} at {at:.0f}: nothing to prove durability with"
    where = f"Prometheus {target.endpoint('prometheus')} {query} at {at:.0f}"

    def verify() -> int:
        after = read()
        lost, changed = [], []
        for series, values in before.items():
            got = {ts: v for ts, v in after.get(series, [])}
            for ts, v in values:
                if ts not in got:
                    lost.append(f"{dict(series).get('__name__')}{{job={dict(series).get('job')}}}@{ts}")
                elif got[ts] != v:
                    changed.append(f"{dict(series).get('__name__')}@{ts}: {v} -> {got[ts]}")
        _lost("Prometheus samples", where, lost, changed, samples, "scraped before the kill (WAL)")
        return samples

    return Content("Prometheus samples", samples, samples * 16, where, verify,
                   notes=[f"{len(before)} series"])


WRITERS: dict[str, Callable[[Target, str], Content]] = {
    "postgres-rows": postgres_rows,
    "s3-objects": s3_objects,
    "mlflow-runs": mlflow_runs,
    "mqtt-retained": mqtt_retained,
    "mqtt-queued": mqtt_queued,
    "nodered-context": nodered_context,
    "prometheus-samples": prometheus_samples,
}
