"""Render every service's configuration from the repo's shared files and a StackConfig."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import yaml

from indmlops.configs.mosquitto import mosquitto_conf_text
from indmlops.configs.prometheus import scrape_jobs
from indmlops.paths import CONFIG_DIR
from indmlops.targets.local import slowdisk
from indmlops.targets.local.layout import HOST, StackConfig


def mosquitto_conf(cfg: StackConfig) -> str:
    lay = cfg.layout
    return mosquitto_conf_text(port=cfg.ports["mosquitto"], conf_dir=lay.conf / "mosquitto",
                               data_dir=lay.data / "mosquitto", autosave=cfg.broker_autosave)


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
    pre = [sys.executable, "-m", "indmlops.targets.local.launch", "--pgid-file", str(cfg.layout.run / f"{name}.pgid")]
    if user:
        pre += ["--user", user]
    if cfg.slow_fsync_ms > 0:  # the shim is built (once per source) before the first program needs it
        pre += ["--slow-fsync-us", str(slowdisk.microseconds(cfg.slow_fsync_ms)), "--preload", str(slowdisk.build())]
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
