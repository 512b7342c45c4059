"""Rendered service configuration: durability, authentication, ACLs, supervision and scrape targets."""

import re
import shutil
import subprocess

import pytest
import yaml

from indmlops.local import render
from indmlops.local.layout import CONFIG_DIR, MQTT_USERS, StackConfig, new_credentials, resolve_ports


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


def test_mosquitto_conf_persists_every_change_and_refuses_anonymous(cfg):
    c = conf_lines(render.mosquitto_conf(cfg))
    assert c["persistence"] == ["true"]
    assert c["autosave_on_changes"] == ["true"]
    assert c["autosave_interval"] == ["1"]
    assert c["persistence_location"] == [f"{cfg.state_dir}/data/mosquitto/"]
    assert c["allow_anonymous"] == ["false"]
    assert c["listener"] == [f"{cfg.ports['mosquitto']} 127.0.0.1"]
    assert c["password_file"] and c["acl_file"]


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
    assert acl["simulator"] == {("write", "factory/+/+/telemetry")}
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
