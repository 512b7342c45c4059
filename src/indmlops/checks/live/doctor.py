"""`indmlops doctor`: one line per MLflow + S3 failure cause (bucket, endpoint, credentials, proxy, stale locations)."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import requests

from indmlops import clients
from indmlops.targets.base import Target

S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL")


@dataclass(frozen=True)
class Finding:
    topic: str
    status: str  # ok | warn | FAIL
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def line(self) -> str:
        return f"{self.status:<4} {self.topic}: {self.detail}"


def _code(exc: Exception) -> str:
    resp = getattr(exc, "response", None) or {}
    return resp.get("Error", {}).get("Code") or type(exc).__name__


def _buckets(target: Target) -> tuple[list[Finding], set[str] | None]:
    """The endpoint, the bucket and the server's credentials, as the MLflow server uses them."""
    from botocore.exceptions import BotoCoreError, ClientError

    ep, creds = target.endpoint("s3"), target.credentials("s3")
    bucket = creds.extra["bucket"]
    s3 = clients.s3_client(ep, creds.username, creds.password, creds.extra["region"])
    out: list[Finding] = []
    try:
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    except ClientError as exc:
        out.append(Finding("s3 endpoint", "ok", f"{ep} answers"))
        out.append(Finding("server credentials", "FAIL", f"access key {creds.username!r} refused by {ep}: "
                                                         f"{_code(exc)}"))
        return out, None
    except BotoCoreError as exc:
        out.append(Finding("s3 endpoint", "FAIL", f"{ep} does not answer: {exc}"))
        return out, None
    out.append(Finding("s3 endpoint", "ok", f"{ep} answers ListBuckets ({len(names)} buckets)"))
    if bucket not in names:
        out.append(Finding("bucket", "FAIL", f"{bucket} does not exist at {ep} (buckets: {sorted(names) or 'none'}): "
                                             "MLflow cannot store artifacts; create it (the stack's bootstrap, or "
                                             "the bucket Job on Kubernetes)"))
        return out, names
    out.append(Finding("bucket", "ok", f"{bucket} exists at {ep}"))
    key = f".indmlops/doctor-{uuid.uuid4().hex}"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"doctor")
        s3.delete_object(Bucket=bucket, Key=key)
        out.append(Finding("server credentials", "ok", f"access key {creds.username!r} writes and deletes in {bucket}"))
    except (ClientError, BotoCoreError) as exc:
        out.append(Finding("server credentials", "FAIL", f"access key {creds.username!r} cannot write to {bucket}: "
                                                         f"{_code(exc)}"))
    return out, names


def _destination(base: str) -> tuple[str | None, str]:
    """MLflow names its destination (s3://bucket) when a read of a missing artifact fails; no API tells it.
    Returns (destination or None, the server's message)."""
    try:
        resp = requests.get(f"{base}/.indmlops/doctor-missing-{uuid.uuid4().hex}", timeout=20)
    except requests.RequestException as exc:
        return None, type(exc).__name__
    try:
        message = str(resp.json().get("message", ""))
    except ValueError:
        message = resp.text
    m = re.search(r"(?:from|in) ([a-z0-9]+://[^\s:]+)", message)
    return (m.group(1).rstrip("/") if m else None), message.replace("\n", " ")[:300]


def _proxy(target: Target) -> Finding:
    """MLflow's artifact proxy writes, reads and deletes an object with the server's own credentials, in the
    stack's bucket."""
    bucket = target.credentials("s3").extra["bucket"]
    base = f"{target.endpoint('mlflow').url}/api/2.0/mlflow-artifacts/artifacts"
    url = f"{base}/.indmlops/doctor-{uuid.uuid4().hex}"
    try:
        put = requests.put(url, data=b"doctor", timeout=20)
    except requests.RequestException as exc:
        return Finding("artifact proxy", "FAIL", f"MLflow {target.endpoint('mlflow')} does not answer: "
                                                 f"{type(exc).__name__}")
    text = put.text.replace("\n", " ")[:400]
    if put.status_code == 404 or "not enabled" in text.lower():
        return Finding("artifact proxy", "warn", f"MLflow does not proxy artifacts (HTTP {put.status_code}): "
                                                 "clients need S3 credentials and MLFLOW_S3_ENDPOINT_URL")
    found, message = _destination(base)
    dest = found or "(destination not reported)"
    if put.status_code != 200:
        return Finding("artifact proxy", "FAIL", f"MLflow cannot write to its artifact destination {dest} "
                                                 f"(PUT {url}: HTTP {put.status_code}: {text}; a read says: "
                                                 f"{message})")
    got = requests.get(url, timeout=20)
    requests.delete(url, timeout=20)
    if got.status_code != 200 or got.content != b"doctor":
        return Finding("artifact proxy", "FAIL", f"MLflow stored an artifact in {dest} but reads back HTTP "
                                                 f"{got.status_code} {got.text[:200]!r}")
    if dest.startswith("s3://") and dest.removeprefix("s3://").split("/")[0] != bucket:
        return Finding("artifact proxy", "FAIL", f"MLflow writes artifacts to {dest}, not to the stack's bucket "
                                                 f"{bucket}: check --artifacts-destination")
    return Finding("artifact proxy", "ok", f"MLflow proxies artifacts to {dest}: write, read and delete ok")


def _client_credentials(direct: list) -> Finding:
    """Proxied artifacts need nothing at the client; direct s3:// locations need working S3 settings here."""
    held = [v for v in S3_ENV if os.environ.get(v)]
    if not direct:
        return Finding("client credentials", "ok", "none needed: artifacts are proxied"
                       + (f" (this client holds {held}, unused)" if held else " (this client holds none)"))
    missing = sorted(set(S3_ENV) - set(held))
    if missing:
        return Finding("client credentials", "warn", f"{len(direct)} experiment(s) use direct s3:// locations, but "
                                                     f"this client lacks {missing}")
    from botocore.exceptions import BotoCoreError, ClientError

    ep = os.environ["MLFLOW_S3_ENDPOINT_URL"]
    try:
        import boto3

        boto3.client("s3", endpoint_url=ep).list_buckets()
    except (ClientError, BotoCoreError) as exc:
        return Finding("client credentials", "FAIL", f"this client's S3 credentials fail at {ep}: {_code(exc)}")
    return Finding("client credentials", "ok", f"this client's S3 credentials work at {ep} "
                                               f"(needed by {len(direct)} direct experiment(s))")


def _locations(target: Target, buckets: set[str] | None) -> list[Finding]:
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(target.endpoint("mlflow").url)
    try:
        exps = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=50000)
    except MlflowException as exc:
        return [Finding("experiments", "FAIL", f"MLflow {target.endpoint('mlflow')} cannot list experiments: "
                                               f"{str(exc).splitlines()[0][:200]}")]
    proxied = [e for e in exps if e.artifact_location.startswith("mlflow-artifacts:")]
    direct = [e for e in exps if urlparse(e.artifact_location).scheme in ("s3", "s3a")]
    default = next((e for e in exps if e.experiment_id == "0"), None)
    mode = "proxied (mlflow-artifacts:/)" if default is None or default.artifact_location.startswith(
        "mlflow-artifacts:") else f"direct ({default.artifact_location})"
    out = [Finding("artifact access", "ok", f"{mode} by default; {len(proxied)} experiment(s) proxied, "
                                            f"{len(direct)} direct s3://")]
    out.append(_client_credentials(direct))
    stale = []
    for e in exps:
        loc = e.artifact_location
        parsed = urlparse(loc)
        if loc.startswith("mlflow-artifacts:"):
            continue
        if parsed.scheme in ("s3", "s3a"):
            if buckets is not None and parsed.netloc not in buckets:
                stale.append(f"{e.experiment_id} {e.name!r} -> {loc} (bucket {parsed.netloc} does not exist)")
        else:
            stale.append(f"{e.experiment_id} {e.name!r} -> {loc} (not in object storage: "
                         f"{parsed.scheme or 'local path'})")
    if stale:
        out.append(Finding("stale artifact locations", "FAIL", f"{len(stale)} experiment(s): " + "; ".join(stale[:10])))
    else:
        out.append(Finding("stale artifact locations", "ok", f"none among {len(exps)} active experiment(s)"))
    return out


def diagnose(target: Target) -> list[Finding]:
    """Every finding, in the order a human would check them; never raises for a broken service."""
    out, buckets = _buckets(target)
    proxy = _proxy(target)
    bucket = target.credentials("s3").extra["bucket"]
    if not proxy.ok and out and all(f.ok for f in out) and f"destination s3://{bucket} " in proxy.detail:
        # The bucket and the credentials the stack declares work from here, the server's proxy does not: the
        # difference is in what the server itself was given.
        proxy = Finding(proxy.topic, proxy.status, f"{proxy.detail}; the S3 endpoint, bucket and credentials the "
                        "stack declares work from here, so MLflow's own S3 settings differ from them "
                        "(MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY in its environment)")
    out.append(proxy)
    out.extend(_locations(target, buckets))
    return out


def render(findings: list[Finding]) -> str:
    return "\n".join(f.line() for f in findings)
