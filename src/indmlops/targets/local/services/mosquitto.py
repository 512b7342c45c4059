"""Mosquitto: the MQTT broker, with its password file and ACLs from config/mosquitto/."""

from __future__ import annotations

import shutil
import subprocess
import time

from indmlops import broker, clients, wire
from indmlops.errors import IndMLOpsError, MissingDependency
from indmlops.paths import CONFIG_DIR
from indmlops.targets.local import render
from indmlops.targets.local.layout import MQTT_USERS, StackConfig
from indmlops.targets.local.services.common import (
    SYSTEM_INSTALL,
    assert_reachable,
    endpoint,
    own_for,
    service_user,
    which,
)


def prepare(cfg: StackConfig) -> dict[str, str]:
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


def ready(cfg: StackConfig) -> str:
    return clients.mqtt_ready(endpoint(cfg, "mosquitto"), "monitor", cfg.credentials["mosquitto"]["monitor_password"])


def bootstrap(cfg: StackConfig) -> str:
    """Prove persistence is really written: a broker that cannot write its location saves nothing, silently."""
    db = cfg.layout.data / "mosquitto" / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    policy = broker.parse(cfg.broker_autosave)
    client = wire.mqtt_connect(endpoint(cfg, "mosquitto"), "probe", cfg.credentials["mosquitto"]["probe_password"])
    # By changes, the broker saves after N of them; one retained QoS1 message is one change (measured: 9 did not
    # save at 10, 10 did), so that many of them must produce a write. Timed, one change and N + 2 s do.
    try:
        infos = [client.publish("indmlops/probe/persistence", f"written {time.time():.3f} #{i}", qos=1, retain=True)
                 for i in range(1 if policy.timed else policy.every)]
        for info in infos:
            info.wait_for_publish(timeout=5)
    finally:
        wire.mqtt_close(client)
    # The save happens on the next housekeeping pass (~1 s) or timed save; allow 10 s more.
    deadline = time.monotonic() + 10 + (policy.every + 2 if policy.timed else 0)
    while time.monotonic() < deadline:
        if db.exists() and db.stat().st_mtime_ns > before and db.stat().st_size > 0:
            return f"persistence written to {db}"
        time.sleep(0.2)
    raise IndMLOpsError(
        f"mosquitto accepted {len(infos)} retained QoS1 message(s) (broker_autosave {cfg.broker_autosave}) "
        f"but did not write its persistence file {db} within 10 s: "
        f"check that the broker's user can write {db.parent} (see {cfg.layout.log('mosquitto')})"
    )
