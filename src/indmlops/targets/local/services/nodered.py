"""Node-RED: the PLC simulation and HMI flow (config/nodered/)."""

from __future__ import annotations

import shutil

from indmlops import clients
from indmlops.errors import IndMLOpsError, MissingDependency
from indmlops.paths import CONFIG_DIR
from indmlops.targets.local import render
from indmlops.targets.local.layout import HOST, StackConfig
from indmlops.targets.local.services.common import PROJECT_INSTALL, SYSTEM_INSTALL, endpoint, which

NODERED_JS = CONFIG_DIR / "nodered" / "node_modules" / "node-red" / "red.js"


def prepare(cfg: StackConfig) -> dict[str, str]:
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


def ready(cfg: StackConfig) -> str:
    return clients.http_ready(f"{endpoint(cfg, 'nodered').url}/indmlops/health", expect_body='"ok":true')
