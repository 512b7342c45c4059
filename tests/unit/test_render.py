"""Rendered service configuration: durability, authentication, ACLs, supervision and scrape targets."""

import json
import re
import shutil
import subprocess

import pytest
import yaml
from paho.mqtt.client import topic_matches_sub

from indmlops.paths import CONFIG_DIR
from indmlops.targets.local import render
from indmlops.targets.local.layout import MQTT_USERS, StackConfig, new_credentials, resolve_ports


@pytest.fixture
def cfg(tmp_path):
    return StackConfig(state_dir=tmp_path, ports=resolve_ports(7), credentials=new_credentials())


def conf_lines(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out.setdefault(key, []).append(value)
    return out


def test_mosquitto_conf_saves_every_second_and_refuses_anonymous(cfg):
    c = conf_lines(render.mosquitto_conf(cfg))
    assert c["persistence"] == ["true"]
    assert c["autosave_on_changes"] == ["false"]  # timed: a save costs the same whatever the backlog
    assert c["autosave_interval"] == ["1"]
    assert c["persistence_location"] == [f"{cfg.state_dir}/data/mosquitto/"]
    assert c["allow_anonymous"] == ["false"]
    assert c["listener"] == [f"{cfg.ports['mosquitto']} 127.0.0.1"]
    assert c["password_file"] and c["acl_file"]
    # Without it a relayed reading waited for delayed ACKs: p50 9 ms instead of 0.3 ms (bench/edge_latency.py).
    assert c["set_tcp_nodelay"] == ["true"]


def test_mosquitto_conf_autosave_interval_is_the_given_number_of_changes(tmp_path):
    c = conf_lines(render.mosquitto_conf_text(port=1, conf_dir=tmp_path, data_dir=tmp_path, autosave=100))
    assert c["autosave_interval"] == ["100"]
    assert c["autosave_on_changes"] == ["true"]


def test_mosquitto_conf_autosave_interval_in_seconds_is_timed(tmp_path):
    c = conf_lines(render.mosquitto_conf_text(port=1, conf_dir=tmp_path, data_dir=tmp_path, autosave="5s"))
    assert c["autosave_interval"] == ["5"]
    assert c["autosave_on_changes"] == ["false"]


def parse_acl() -> dict[str, set[tuple[str, str]]]:
    acl: dict[str, set[tuple[str, str]]] = {}
    user = None
    for line in (CONFIG_DIR / "mosquitto" / "acl.conf").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            user = words[1]
            acl[user] = set()
        elif words[0] == "topic":
            acl[user].add((words[1], words[2]))
    return acl


def test_acl_grants_each_role_exactly_its_data_flow():
    acl = parse_acl()
    assert set(acl) == set(MQTT_USERS)
    # The simulator reads predictions only to confirm its own readings (its outbox); it writes nothing else.
    assert acl["simulator"] == {("write", "factory/+/+/telemetry"), ("read", "factory/+/+/prediction")}
    assert acl["inference"] == {("read", "factory/+/+/telemetry"), ("write", "factory/+/+/prediction"),
                                ("write", "factory/+/+/errors")}
    assert all(access == "read" for access, _ in acl["monitor"]) and ("read", "#") in acl["monitor"]


def test_supervisord_restarts_every_program_and_kills_whole_groups(cfg):
    programs = {"a": {"command": "/bin/a --x=50%"}, "b": {"command": "/bin/b", "stopsignal": "INT",
                                                          "environment": 'K="v%"'}}
    text = render.supervisord_conf(cfg, programs)
    for name in programs:
        section = text.split(f"[program:{name}]", 1)[1].split("\n\n", 1)[0]
        for line in ("autorestart=true", "stopasgroup=true", "killasgroup=true", "autostart=false"):
            assert line in section, f"[program:{name}] lacks {line}"
    assert "command=/bin/a --x=50%%" in text  # supervisord expands %(...)s: a bare % must be escaped
    assert 'environment=K="v%%"' in text
    assert "stopsignal=INT" in text


def test_supervisord_leaves_program_down_when_autorestart_disabled(cfg):
    text = render.supervisord_conf(cfg, {"a": {"command": "/bin/a", "autorestart": "false"}})
    assert "autorestart=false" in text


def test_prometheus_scrapes_each_job_on_its_local_port(cfg):
    doc = yaml.safe_load(render.prometheus_yml(cfg))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in doc["scrape_configs"]}
    assert jobs == {
        "prometheus": [f"127.0.0.1:{cfg.ports['prometheus']}"],
        "mlflow": [f"127.0.0.1:{cfg.ports['mlflow']}"],
        "seaweedfs": [f"127.0.0.1:{cfg.ports['s3-metrics']}"],
        "inference": [f"127.0.0.1:{cfg.ports['inference']}"],
    }


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool missing: run sudo scripts/install-system-packages.sh (Debian prometheus)")
def test_rendered_prometheus_config_and_rules_pass_promtool(cfg, tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(render.prometheus_yml(cfg))
    res = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    rules = sorted((CONFIG_DIR / "prometheus" / "rules").glob("*.yml"))
    res = subprocess.run(["promtool", "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_nodered_listens_on_loopback_only(cfg):
    text = render.nodered_settings(cfg)
    assert '"uiHost": "127.0.0.1"' in text
    assert f'"uiPort": {cfg.ports["nodered"]}' in text


def test_seaweed_identity_carries_generated_keys(cfg):
    text = render.seaweed_identities(cfg)
    assert cfg.credentials["s3"]["access_key"] in text and cfg.credentials["s3"]["secret_key"] in text


def test_credentials_are_random_per_stack():
    a, b = new_credentials(), new_credentials()
    assert a["s3"]["secret_key"] != b["s3"]["secret_key"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", a["postgres"]["password"])


def flow_nodes() -> list[dict]:
    return json.loads((CONFIG_DIR / "nodered" / "flows.json").read_text())


def test_nodered_credentials_live_beside_the_flow_not_in_it(cfg):
    nodes = flow_nodes()
    brokers = [n for n in nodes if n["type"] == "mqtt-broker"]
    assert len(brokers) == 1
    broker = brokers[0]
    password = cfg.credentials["mosquitto"]["nodered_password"]
    creds = json.loads(render.nodered_credentials(cfg, broker["id"]))
    assert creds == {broker["id"]: {"user": "nodered", "password": password}}
    # Every MQTT node uses the broker node the credentials are written for.
    mqtt_nodes = [n for n in nodes if n["type"] in ("mqtt in", "mqtt out")]
    assert mqtt_nodes and {n["broker"] for n in mqtt_nodes} == {broker["id"]}
    text = (CONFIG_DIR / "nodered" / "flows.json").read_text()
    assert password not in text
    assert not any("credentials" in n or "user" in n or "password" in n for n in nodes)
    # Host and port come from the environment, so Kubernetes can reuse the same file.
    assert (broker["broker"], broker["port"]) == ("${INDMLOPS_MQTT_HOST}", "${INDMLOPS_MQTT_PORT}")
    assert broker["clientid"] == "indmlops-nodered" and str(broker["protocolVersion"]) == "4"


def test_nodered_flow_stays_within_its_acl():
    acl = parse_acl()["nodered"]
    nodes = flow_nodes()
    subscribed = {n["topic"] for n in nodes if n["type"] == "mqtt in"}
    assert subscribed == {"factory/+/+/prediction", "factory/+/+/errors"}
    assert all(("read", t) in acl for t in subscribed)
    published = {n["topic"] for n in nodes if n["type"] == "mqtt out"}
    assert published == {"factory/line-1/plc/heartbeat"}
    writable = [t for access, t in acl if access in ("write", "readwrite")]
    assert all(any(topic_matches_sub(w, t) for w in writable) for t in published)
