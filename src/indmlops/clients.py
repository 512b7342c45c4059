"""Readiness by protocol: a service is ready when it answers its own protocol (MQTT CONNACK, SELECT 1, S3
ListBuckets, an HTTP status), not when a port is open. Each raises `NoAnswer` with the last observed state."""

from __future__ import annotations

import requests

from indmlops.wire import Endpoint, NoAnswer, mqtt_close, mqtt_connect


def mqtt_ready(ep: Endpoint, user: str, password: str) -> str:
    mqtt_close(mqtt_connect(ep, user, password))
    return "CONNACK accepted"


def postgres_ready(ep: Endpoint, user: str, password: str, database: str) -> str:
    import psycopg

    try:
        with psycopg.connect(host=ep.host, port=ep.port, user=user, password=password, dbname=database,
                             connect_timeout=3) as conn:
            value = conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        raise NoAnswer(f"PostgreSQL {ep.host}:{ep.port} db={database} user={user}: {str(exc).strip()}") from exc
    if value != (1,):
        raise NoAnswer(f"PostgreSQL answered SELECT 1 with {value!r}")
    return "SELECT 1 ok"


def s3_client(ep: Endpoint, access_key: str, secret_key: str, region: str = "us-east-1"):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=ep.url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )


S3_READY_KEY = ".indmlops/readiness-probe"


def s3_ready(ep: Endpoint, access_key: str, secret_key: str, bucket: str | None = None) -> str:
    """ListBuckets; with `bucket`, then a 32-byte object round trip through it (written, read back, deleted) once
    the bucket exists. ListBuckets alone is not ready: a restarted SeaweedFS answers it seconds before its volume
    server has re-registered, and in that window every GET of a stored object fails with InternalError."""
    import os

    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(ep, access_key, secret_key)
    try:
        buckets = client.list_buckets()["Buckets"]
    except ClientError as exc:
        raise NoAnswer(f"S3 {ep.url}: ListBuckets refused: {exc.response['Error'].get('Code')}") from exc
    except BotoCoreError as exc:
        raise NoAnswer(f"S3 {ep.url}: ListBuckets failed: {exc}") from exc
    listed = f"ListBuckets ok ({len(buckets)} buckets)"
    if bucket is None:
        return listed
    body = os.urandom(32)
    try:
        client.put_object(Bucket=bucket, Key=S3_READY_KEY, Body=body)
        back = client.get_object(Bucket=bucket, Key=S3_READY_KEY)["Body"].read()
        client.delete_object(Bucket=bucket, Key=S3_READY_KEY)
    except ClientError as exc:
        if exc.response["Error"].get("Code") == "NoSuchBucket":
            return f"{listed}; bucket {bucket} not created yet"
        raise NoAnswer(f"S3 {ep.url}: object round trip in {bucket} failed: "
                       f"{exc.response['Error'].get('Code')}") from exc
    except BotoCoreError as exc:
        raise NoAnswer(f"S3 {ep.url}: object round trip in {bucket} failed: {exc}") from exc
    if back != body:
        raise NoAnswer(f"S3 {ep.url}: object {bucket}/{S3_READY_KEY} read back different bytes")
    return f"{listed}, object round trip ok"


# MLflow's readiness: a search the tracking store must answer. Its /health says OK with the database down, so a
# server that cannot reach its store would take clients (found by the smoke suite's ready-means-working check).
# Liveness stays /health: a database outage must not get the server restarted.
MLFLOW_READY_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
MLFLOW_READY_BODY = '"experiments"'


def http_ready(url: str, expect_status: int = 200, expect_body: str | None = None) -> str:
    try:
        resp = requests.get(url, timeout=3)
    except requests.RequestException as exc:
        raise NoAnswer(f"GET {url}: {type(exc).__name__}") from exc
    if resp.status_code != expect_status:
        raise NoAnswer(f"GET {url}: HTTP {resp.status_code}, expected {expect_status}: {resp.text[:200]!r}")
    if expect_body is not None and expect_body not in resp.text:
        raise NoAnswer(f"GET {url}: body {resp.text[:200]!r} lacks {expect_body!r}")
    return f"HTTP {resp.status_code}"


def mlflow_alias_version(tracking_url: str, name: str, alias: str) -> str | None:
    """The version `name@alias` points at in MLflow's registry, or None when there is none: one REST call
    (GET registered-models/alias), without importing the MLflow client (1.2 s here)."""
    mv = mlflow_alias(tracking_url, name, alias)
    return None if mv is None else str(mv["version"])


def mlflow_alias(tracking_url: str, name: str, alias: str) -> dict | None:
    """The model version `name@alias` points at (the REST answer's `model_version`: version, run_id, source,
    tags), or None when there is none; NoAnswer for any other failure."""
    url = f"{tracking_url}/api/2.0/mlflow/registered-models/alias"
    try:
        resp = requests.get(url, params={"name": name, "alias": alias}, timeout=10)
    except requests.RequestException as exc:
        raise NoAnswer(f"GET {url}: {type(exc).__name__}") from exc
    if resp.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in resp.text:
        return None
    if resp.status_code != 200:
        raise NoAnswer(f"GET {url} ({name}@{alias}): HTTP {resp.status_code}: {resp.text[:200]!r}")
    return resp.json()["model_version"]
