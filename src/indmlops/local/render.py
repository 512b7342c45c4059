"""Render every service's configuration from the repo's shared files and a StackConfig."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import yaml

from indmlops.broker import DEFAULT_BROKER_AUTOSAVE
from indmlops.local.layout import CONFIG_DIR, HOST, StackConfig


def mosquitto_conf(cfg: StackConfig) -> str:
    lay = cfg.layout
    return mosquitto_conf_text(port=cfg.ports["mosquitto"], conf_dir=lay.conf / "mosquitto",
                               data_dir=lay.data / "mosquitto", autosave_changes=cfg.broker_autosave)


def mosquitto_conf_text(*, port: int, conf_dir: Path, data_dir: Path,
                        autosave_changes: int = DEFAULT_BROKER_AUTOSAVE, host: str = HOST,
                        password_file: Path | None = None) -> str:
    """The broker's configuration, one text for the local target, bench/edge_latency.py (which varies
    `autosave_changes` to measure the durability/throughput trade-off) and Kubernetes (`indmlops kube-config`,
    the base and manifests/components/broker-*)."""
    if autosave_changes < 1:
        raise ValueError(f"autosave_changes {autosave_changes}: Mosquitto needs a whole number of changes ≥ 1")
    return f"""# Rendered by indmlops; edit config/mosquitto/ or the renderer, not this file.
per_listener_settings false
listener {port} {host}
allow_anonymous false
password_file {password_file or conf_dir / 'passwd'}
acl_file {conf_dir / 'acl.conf'}

# Durability (the stack option broker_autosave): save the in-memory database after every
# autosave_interval changes (autosave_on_changes true; there is no timed save besides), so a SIGKILL loses
# what changed since the last write: at 1 at most the last message or so, the most Mosquitto 2.0 allows.
# SIGTERM always writes the database on exit. Loss per SIGKILL by setting: fixtures/slo.yaml.
persistence true
persistence_location {data_dir}/
persistence_file mosquitto.db
autosave_on_changes true
autosave_interval {autosave_changes}

# Queue depth for offline persistent sessions (default 1000 drops readings during a long inference outage).
max_queued_messages 100000
# A persistent session nobody resumes for an hour is dropped: its queue would otherwise grow the database that
# every autosave rewrites whole (a 16 MB database cut QoS1 throughput to ~20 msg/s in our tests).
persistent_client_expiration 1h
max_inflight_messages 100
# Nagle's algorithm holds a small PUBLISH until the previous segment is acknowledged, and the peer delays that
# ACK up to 40 ms: relayed readings at 500 msg/s saw p50 9 ms with it, far above the 0.13 ms QoS1 floor.
set_tcp_nodelay true

log_dest stdout
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
"""


def postgres_hba() -> str:
    # Unix socket (in the 0700 state dir) is trusted for bootstrap; TCP on loopback needs a password.
    return (
        "# Rendered by indmlops.\n"
        "local all all trust\n"
        f"host all all {HOST}/32 scram-sha-256\n"
    )


def seaweed_identities(cfg: StackConfig) -> str:
    s3 = cfg.credentials["s3"]
    return json.dumps(
        {
            "identities": [
                {
                    "name": "indmlops",
                    "credentials": [{"accessKey": s3["access_key"], "secretKey": s3["secret_key"]}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        },
        indent=2,
    )


def scrape_jobs() -> list[dict]:
    return yaml.safe_load((CONFIG_DIR / "prometheus" / "scrape.yaml").read_text())["jobs"]


def prometheus_yml(cfg: StackConfig) -> str:
    scrape_configs = []
    for job in scrape_jobs():
        port = cfg.ports[job.get("port", job["service"])]
        scrape_configs.append(
            {
                "job_name": job["name"],
                "metrics_path": job.get("metrics_path", "/metrics"),
                "static_configs": [{"targets": [f"{HOST}:{port}"], "labels": {"service": job["service"]}}],
            }
        )
    doc = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(CONFIG_DIR / "prometheus" / "rules" / "*.yml")],
        "scrape_configs": scrape_configs,
    }
    return "# Rendered by indmlops from config/prometheus/.\n" + yaml.safe_dump(doc, sort_keys=False)


def nodered_settings(cfg: StackConfig) -> str:
    lay = cfg.layout
    settings = {
        "uiHost": HOST,
        "uiPort": cfg.ports["nodered"],
        "userDir": str(lay.data / "nodered"),
        "flowFile": "flows.json",
        "credentialSecret": False,
        "flowFilePretty": True,
        "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
        # Context (the HMI's machines, alarms, heartbeat sequence) is kept in memory and flushed to disk every
        # flushInterval seconds (default 30): a SIGKILL 2 s after a write lost it all. 1 s bounds the loss.
        "contextStorage": {"default": {"module": "localfilesystem", "config": {"flushInterval": 1}}},
    }
    return "// Rendered by indmlops.\nmodule.exports = " + json.dumps(settings, indent=2) + ";\n"


def nodered_credentials(cfg: StackConfig, broker_node_id: str) -> str:
    """flows_cred.json: the MQTT broker node's login, plain JSON because the settings disable encryption."""
    password = cfg.credentials["mosquitto"]["nodered_password"]
    return json.dumps({broker_node_id: {"user": "nodered", "password": password}}, indent=2)


def launch(cfg: StackConfig, name: str, argv: list[str], user: str | None = None) -> str:
    """The supervisord command line: our launcher reaps a previous incarnation's orphans, then execs argv."""
    pre = [sys.executable, "-m", "indmlops.local.launch", "--pgid-file", str(cfg.layout.run / f"{name}.pgid")]
    if user:
        pre += ["--user", user]
    return shlex.join(pre + ["--"] + argv)


def supervisord_conf(cfg: StackConfig, programs: dict[str, dict[str, str]]) -> str:
    lay = cfg.layout
    out = [
        "; Rendered by indmlops; every program starts on demand (`indmlops up`) and restarts when it dies.",
        "[unix_http_server]",
        f"file={lay.supervisor_sock}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={lay.supervisor_log}",
        "logfile_maxbytes=10MB",
        f"pidfile={lay.supervisor_pid}",
        f"childlogdir={lay.logs}",
        f"directory={lay.state_dir}",
        "identifier=indmlops",
        "loglevel=info",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{lay.supervisor_sock}",
    ]
    for name, prog in programs.items():
        env = prog.get("environment")
        out += [
            "",
            f"[program:{name}]",
            f"command={prog['command'].replace('%', '%%')}",
            "autostart=false",
            f"autorestart={prog.get('autorestart', 'true')}",
            # A process must stay up 1 s to count as started; 5 quick failures in a row mark it FATAL,
            # which `up` reports with the log tail instead of looping forever.
            "startsecs=1",
            "startretries=5",
            f"stopsignal={prog.get('stopsignal', 'TERM')}",
            f"stopwaitsecs={prog.get('stopwaitsecs', '15')}",
            # Whole process groups: MLflow's uvicorn workers must die with their parent.
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={lay.log(name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            f"directory={prog.get('directory', lay.state_dir)}",
        ]
        if env:
            out.append(f"environment={env.replace('%', '%%')}")
    return "\n".join(out) + "\n"


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
