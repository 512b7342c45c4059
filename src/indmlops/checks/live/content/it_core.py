"""Known content in the IT plane's stores: PostgreSQL rows, S3 objects, MLflow runs with metrics and artifacts."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

from indmlops import clients
from indmlops.checks.live.content.base import Content, Unreadable, _lost
from indmlops.targets.base import Target

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
        except psycopg.OperationalError as exc:  # refused, "the database system is starting up", reset
            said = str(exc).strip()
            # The server answered that the database or the role is not there: an answer about the content (a fresh
            # initdb, another data directory), not a failure to read it.
            if re.search(r'(database|role) "[^"]*" does not exist', said):
                raise AssertionError(f"postgres rows at {where}: all {rows} rows lost: {said[:200]} (the server "
                                     "answers without the database the rows were committed to: a fresh data "
                                     "directory?)") from None
            raise Unreadable(f"postgres rows at {where}: the read failed: {said[:200]}") from None
        _lost("postgres rows", where, sorted(set(sent) - set(got)),
              [i for i in sent if i in got and bytes(got[i]) != sent[i]], rows,
              "committed before the kill, so a restart on the same data directory must keep them")
        return rows

    def cleanup() -> None:
        with _pg(target) as conn:
            conn.execute(f"DELETE FROM {PG_SCHEMA}.content WHERE tag = %s", (tag,))

    return Content("postgres rows", rows, rows * size, where, verify, cleanup)


# --- S3 ----------------------------------------------------------------------------------------------------

# Error codes of the store itself, whatever the HTTP status says (some stores answer them with 4xx).
S3_STORE_ERRORS = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"})


def s3_objects(target: Target, tag: str, *, count: int = 12) -> Content:
    """Objects from 1 kB to 2 MB with their sha256, under indmlops-durability/<tag>/ in the bucket."""
    creds = target.credentials("s3")
    bucket = creds.extra["bucket"]
    s3 = clients.s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
    prefix = f"indmlops-durability/{tag}/"
    sizes = [1024 * 2 ** (i % 12) for i in range(count)]  # 1 kB .. 2 MB
    sent: dict[str, str] = {}
    for i, size in enumerate(sizes):
        body = os.urandom(size)
        s3.put_object(Bucket=bucket, Key=f"{prefix}obj-{i:03d}", Body=body)
        sent[f"{prefix}obj-{i:03d}"] = hashlib.sha256(body).hexdigest()
    where = f"s3://{bucket}/{prefix} at {target.endpoint('s3')}"

    def verify() -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        client = clients.s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
        lost: list[str] = []
        changed: list[str] = []
        unreadable: list[str] = []
        for key, digest in sent.items():
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                code = exc.response["Error"].get("Code")
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                # The store's own failure (5xx, throttling) says nothing of the object; an answer about it does.
                failed = status >= 500 or code in S3_STORE_ERRORS
                (unreadable if failed else lost).append(f"{key} ({code}, HTTP {status})")
                continue
            except BotoCoreError as exc:  # refused, reset, timed out
                unreadable.append(f"{key} ({type(exc).__name__})")
                continue
            if hashlib.sha256(body).hexdigest() != digest:
                changed.append(key)
        # An object the store answers for as absent or different is lost, whatever it failed to read besides: a mix
        # of 404 and 5xx is a loss (with the unreadable named), not "nothing proven".
        _lost("s3 objects", where, lost, changed, count,
              f"besides, {len(unreadable)} reads failed in the store {unreadable[:4]}" if unreadable else "")
        if unreadable:
            raise Unreadable(f"s3 objects at {where}: {len(unreadable)} of {count} reads failed in the store "
                             f"{unreadable[:4]}")
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

    from indmlops.checks.live.mlflow_store import bucket_hashes

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

        from indmlops.checks.live.mlflow_store import compare_hashes, proxied_reads_match

        fresh = MlflowClient(uri)
        for run_id, w in written.items():
            try:
                run = fresh.get_run(run_id)
            except MlflowException as exc:
                said = str(exc).splitlines()[0][:200]
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    raise AssertionError(f"mlflow runs at {where}: run {run_id} does not exist after the kill: "
                                         f"{said}") from None
                raise Unreadable(f"mlflow runs at {where}: reading run {run_id} failed ({exc.error_code}): "
                                 f"{said}") from None
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
