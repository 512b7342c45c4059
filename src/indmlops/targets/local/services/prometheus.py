"""Prometheus: scrapes every service (config/prometheus/)."""

from __future__ import annotations

from indmlops import clients
from indmlops.errors import MissingDependency
from indmlops.targets.local import render
from indmlops.targets.local.layout import HOST, StackConfig
from indmlops.targets.local.services.common import SYSTEM_INSTALL, endpoint, which


def prepare(cfg: StackConfig) -> dict[str, str]:
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


def ready(cfg: StackConfig) -> str:
    return clients.http_ready(f"{endpoint(cfg, 'prometheus').url}/-/ready")
