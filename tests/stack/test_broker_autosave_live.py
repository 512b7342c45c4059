"""broker_autosave on a live scratch stack: a changed value re-renders and restarts the broker alone, and what
the broker acknowledged before the restart is still there."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from indmlops import wire
from indmlops.targets.local import services

pytestmark = pytest.mark.stack


def _conf_autosave(stack) -> str:
    conf = (stack.layout.conf / "mosquitto" / "mosquitto.conf").read_text()
    return next(line.split()[1] for line in conf.splitlines() if line.startswith("autosave_interval "))


def test_changed_broker_autosave_restarts_only_mosquitto_and_keeps_its_data(scratch_stack):
    stack = scratch_stack()
    env = dict(os.environ, INDMLOPS_STATE_DIR=str(stack.layout.state_dir),
               INDMLOPS_PORTS=",".join(f"{k}={v}" for k, v in stack.ports.items()))
    env.pop("INDMLOPS_BROKER_AUTOSAVE", None)
    cli = [sys.executable, "-m", "indmlops.cli"]
    up = subprocess.run(cli + ["up", "mosquitto", "postgres"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert _conf_autosave(stack) == "1" and stack.config().broker_autosave == "1s"
    before = {n: stack.supervisor.info(n).pid for n in ("mosquitto", "postgres")}
    cfg = stack.config()
    ep = services.endpoint(cfg, "mosquitto")
    pw = cfg.credentials["mosquitto"]["probe_password"]
    client = wire.mqtt_connect(ep, "probe", pw)
    try:
        client.publish("indmlops/probe/autosave-test", b"kept", qos=1, retain=True).wait_for_publish(5)
    finally:
        wire.mqtt_close(client)

    up = subprocess.run(cli + ["up", "--broker-autosave", "100"], env=env, capture_output=True, text=True,
                        timeout=120)
    assert up.returncode == 0, up.stderr
    assert "broker_autosave 1s -> 100: restarting it" in up.stderr
    assert _conf_autosave(stack) == "100" and stack.config().broker_autosave == "100"
    after = {n: stack.supervisor.info(n).pid for n in ("mosquitto", "postgres")}
    assert after["postgres"] == before["postgres"], "postgres was restarted for a broker setting"
    assert after["mosquitto"] != before["mosquitto"], "mosquitto still runs the old configuration"
    # Stopped with SIGTERM, Mosquitto wrote its database: the retained message survived the restart.
    got = {}
    client = wire.mqtt_connect(ep, "probe", pw, on_message=lambda _c, _u, m: got.setdefault(m.topic, m.payload))
    try:
        wire.mqtt_subscribe(client, "indmlops/probe/autosave-test", qos=1)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        wire.mqtt_close(client)
    assert got == {"indmlops/probe/autosave-test": b"kept"}

    status = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True, timeout=30)
    assert "broker_autosave 100: mosquitto saves its database after every 100 change(s)" in status.stdout
    # Unset, a running stack keeps its setting: nothing restarts.
    up = subprocess.run(cli + ["up"] + ["mosquitto"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert stack.supervisor.info("mosquitto").pid == after["mosquitto"] and _conf_autosave(stack) == "100"
