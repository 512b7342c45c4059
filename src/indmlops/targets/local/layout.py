"""Where the local stack keeps its state, which ports it uses, and its generated credentials."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indmlops.broker import DEFAULT_BROKER_AUTOSAVE, canonical
from indmlops.errors import IndMLOpsError, StateDirError
from indmlops.paths import REPO_ROOT

HOST = "127.0.0.1"

# The seed's ports where a service has one (MinIO's S3 API on 9000, MLflow 5000, ...). SeaweedFS's own
# master/volume/filer ports are moved out of the common 8080/8888/9333 range; its gRPC ports are pinned
# explicitly (it would otherwise take port + 10000) and its Iceberg/Lance side listeners are disabled.
DEFAULT_PORTS: dict[str, int] = {
    "mosquitto": 1883,
    "postgres": 5432,
    "s3": 9000,
    "s3-grpc": 19000,
    "s3-master": 19333,
    "s3-master-grpc": 29333,
    "s3-volume": 18080,
    "s3-volume-grpc": 28080,
    "s3-filer": 18888,
    "s3-filer-grpc": 28888,
    "s3-metrics": 19324,
    "mlflow": 5000,
    "prometheus": 9090,
    "nodered": 1880,
    "inference": 8088,
}

BUCKET = "mlflow-bucket"

# One MQTT account per role; the ACLs in config/mosquitto/acl.conf say what each may do.
MQTT_USERS = ("simulator", "inference", "nodered", "monitor", "probe")


def parse_port_overrides(text: str, origin: str) -> dict[str, int]:
    """Parse 'mosquitto=11883,mlflow=15000' into a dict, naming `origin` in any error."""
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in DEFAULT_PORTS:
            raise IndMLOpsError(
                f"port override {item!r} from {origin}: expected NAME=PORT with NAME one of "
                f"{', '.join(DEFAULT_PORTS)}"
            )
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise IndMLOpsError(f"port override {item!r} from {origin}: port must be 1-65535")
        out[name] = int(value)
    return out


def resolve_ports(offset: int = 0, overrides: dict[str, int] | None = None) -> dict[str, int]:
    ports = {k: v + offset for k, v in DEFAULT_PORTS.items()}
    ports.update(overrides or {})
    bad = {k: v for k, v in ports.items() if not 1 <= v <= 65535}
    # Ports in the ephemeral range (32768+ on Linux) work, but any outgoing connection may hold one briefly.
    if bad:
        raise IndMLOpsError(f"ports out of range after offset {offset}: {bad}")
    dupes = {p for p in ports.values() if list(ports.values()).count(p) > 1}
    if dupes:
        clash = {k: v for k, v in ports.items() if v in dupes}
        raise IndMLOpsError(f"two services were given the same port: {clash}")
    return ports


def ports_from_environment(env: Mapping[str, str] | None = None, cli_overrides: list[str] | None = None
                           ) -> dict[str, int] | None:
    """Ports from INDMLOPS_PORT_OFFSET, INDMLOPS_PORTS and `--port` items (later wins); None: the defaults.
    The CLI and the pytest plugin both use it, so `INDMLOPS_PORT_OFFSET=1000 ./lab suites` shifts the stack the
    session starts exactly as it shifts `indmlops up`."""
    env = os.environ if env is None else env
    offset_text = env.get("INDMLOPS_PORT_OFFSET", "")
    if offset_text and not offset_text.lstrip("-").isdigit():
        raise IndMLOpsError(f"INDMLOPS_PORT_OFFSET {offset_text!r} from environment: expected an integer")
    offset = int(offset_text or 0)
    overrides = parse_port_overrides(env.get("INDMLOPS_PORTS", ""), "INDMLOPS_PORTS")
    for item in cli_overrides or []:
        overrides.update(parse_port_overrides(item, "--port"))
    if not offset and not overrides:
        return None
    return resolve_ports(offset, overrides)


# Where the state goes when the clone lies below a directory the services' system users cannot traverse (a clone
# in root's 0700 home): one directory per clone, keyed by its path, in a place every user can traverse.
SHARED_STATE_ROOT = Path("/var/tmp")


def blocked_at(path: Path) -> Path | None:
    """The first directory from `/` down to `path` that other users cannot traverse (no o+x), or None."""
    for p in [*reversed(path.parents), path]:
        try:
            if not os.stat(p).st_mode & 0o001:
                return p
        except OSError:
            return p
    return None


def default_state_dir(env: Mapping[str, str] | None = None, root: Path = REPO_ROOT,
                      as_root: bool | None = None) -> Path:
    """INDMLOPS_STATE_DIR when set; else `.indmlops/` in the clone, unless we run as root (the services then drop
    to their own system users) and they cannot traverse the clone's path: then
    /var/tmp/indmlops-<hash of the clone's path>, the same for every run from that clone."""
    env = os.environ if env is None else env
    if env.get("INDMLOPS_STATE_DIR"):
        return Path(env["INDMLOPS_STATE_DIR"])
    inside = root / ".indmlops"
    as_root = os.geteuid() == 0 if as_root is None else as_root
    if not as_root or blocked_at(root) is None:
        return inside
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return SHARED_STATE_ROOT / f"indmlops-{key}"


def state_dir_note(state_dir: Path, root: Path = REPO_ROOT, env: Mapping[str, str] | None = None,
                   as_root: bool | None = None) -> str:
    """Why the state is where it is when the default moved it out of the clone (empty otherwise: in the clone,
    or a directory the user chose)."""
    env = os.environ if env is None else env
    inside = root / ".indmlops"
    chosen = default_state_dir(env, root, as_root)
    if env.get("INDMLOPS_STATE_DIR") or state_dir != chosen or chosen == inside:
        return ""
    return (f"state directory {state_dir} (not {inside}: the services' system users cannot traverse "
            f"{blocked_at(root)}; INDMLOPS_STATE_DIR chooses another)")


@dataclass
class Layout:
    """Paths under one state directory; nothing of the stack lives outside it."""

    state_dir: Path

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).absolute()

    @property
    def conf(self) -> Path:
        return self.state_dir / "conf"

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run(self) -> Path:
        return self.state_dir / "run"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def supervisor_conf(self) -> Path:
        return self.conf / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.run / "supervisord.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisord.log"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def ensure(self) -> None:
        """Create the state tree, or say exactly why it cannot be."""
        try:
            for d in (self.state_dir, self.conf, self.data, self.logs, self.run):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.state_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise StateDirError(
                f"state directory {self.state_dir} is not writable ({exc.strerror}: {exc.filename}): "
                "choose another with --state-dir or INDMLOPS_STATE_DIR"
            ) from exc
        # A Unix socket path is limited to 107 bytes (sun_path); fail here rather than inside supervisord.
        if len(str(self.supervisor_sock)) > 100:
            raise StateDirError(
                f"state directory {self.state_dir} is too deep: the supervisor socket path "
                f"{self.supervisor_sock} exceeds 100 bytes; choose a shorter --state-dir"
            )


@dataclass
class StackConfig:
    """What `up` decided: ports, credentials and the broker's durability setting, persisted so status, targets
    and tests read the same."""

    state_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    broker_autosave: str = DEFAULT_BROKER_AUTOSAVE  # a save policy (indmlops.broker): N changes or Ns seconds
    # A slow disk on purpose (slowdisk.py): every supervised program's fsync sleeps this long first; 0: off.
    slow_fsync_ms: float = 0.0

    @property
    def layout(self) -> Layout:
        return Layout(self.state_dir)

    @classmethod
    def create(cls, state_dir: Path, ports: dict[str, int],
               broker_autosave: str = DEFAULT_BROKER_AUTOSAVE) -> StackConfig:
        """A config for `state_dir`, keeping credentials from an earlier run so data stays readable."""
        layout = Layout(state_dir)
        previous = cls.load(state_dir) if layout.stack_file.exists() else None
        creds = previous.credentials if previous else new_credentials()
        return cls(state_dir=layout.state_dir, ports=ports, credentials=creds, broker_autosave=broker_autosave)

    @classmethod
    def load(cls, state_dir: Path) -> StackConfig:
        layout = Layout(state_dir)
        try:
            raw = json.loads(layout.stack_file.read_text())
        except FileNotFoundError:
            raise IndMLOpsError(
                f"{layout.stack_file} does not exist: the local stack was never started here (`indmlops up`)"
            ) from None
        except json.JSONDecodeError as exc:
            raise IndMLOpsError(
                f"{layout.stack_file} is not valid JSON ({exc}): remove it and run `indmlops up`") from exc
        # A stack.json written before the option existed ran the then hard-wired value: 1 change. One written
        # before policies had units holds a number of changes (an int), which reads as the same policy.
        try:
            autosave = canonical(raw.get("broker_autosave", 1))
        except ValueError as exc:
            raise IndMLOpsError(f"{layout.stack_file}: broker_autosave {exc}: fix it, or `indmlops down` and remove "
                                f"the file") from None
        return cls(state_dir=layout.state_dir, ports=raw["ports"], credentials=raw["credentials"],
                   broker_autosave=autosave,
                   slow_fsync_ms=float(raw.get("slow_fsync_ms", 0.0)))  # absent: written before it existed, off

    def save(self) -> None:
        path = self.layout.stack_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ports": self.ports, "credentials": self.credentials,
                                   "broker_autosave": self.broker_autosave,
                                   "slow_fsync_ms": self.slow_fsync_ms}, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)


def new_credentials() -> dict[str, dict[str, str]]:
    def pw() -> str:
        return secrets.token_urlsafe(18)

    creds: dict[str, dict[str, str]] = {
        "postgres": {"superuser": "postgres", "superuser_password": pw(), "user": "mlflow", "password": pw(),
                     "database": "mlflow"},
        "s3": {"access_key": "indmlops" + secrets.token_hex(6), "secret_key": pw(), "region": "us-east-1",
               "bucket": BUCKET},
    }
    creds["mosquitto"] = {f"{u}_password": pw() for u in MQTT_USERS}
    return creds
