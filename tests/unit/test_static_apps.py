"""The application semantics (fixtures/applications.yaml) read from containers: settings from args, env (followed
into ConfigMaps and Secrets) and config files; addresses and listeners; unknown values give no verdict."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from indmlops.checks.static.address_rules import addresses, check_addresses, check_binds, listeners, parse_address
from indmlops.checks.static.apps import Apps, Running, running, split_hostport
from indmlops.manifests import Manifests, Obj

REPO = Path(__file__).resolve().parents[2]
APPS = Apps.from_fixture(yaml.safe_load((REPO / "fixtures" / "applications.yaml").read_text()))


def deployment(name: str, container: dict, ns: str = "lab", volumes: list | None = None) -> Obj:
    return Obj({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [container], "volumes": volumes or []}}}}, "t.yaml")


def service(name: str, app: str, port: int, target: object = None, ns: str = "lab") -> Obj:
    p = {"port": port} | ({"targetPort": target} if target is not None else {})
    return Obj({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"app": app}, "ports": [p]}}, "t.yaml")


def cm(name: str, data: dict, kind: str = "ConfigMap", ns: str = "lab") -> Obj:
    if kind == "Secret":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return Obj({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "data": data}, "t.yaml")


def the(objs: list[Obj], index: int = 0) -> Running:
    m = Manifests(Path("."), objs, "yaml")
    return running(m.workloads()[index], m, APPS)[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["server", "--port=5001"], ["5001"]),
    (["server", "--port", "5002"], ["5002"]),
    (["server", "--port=1", "--port", "2"], ["1", "2"]),
    (["server"], []),
])
def test_arg_setting_reads_both_forms_in_order(args, expected):
    r = the([deployment("mlflow", {"name": "m", "image": "indmlops-mlflow:1", "args": args})])
    assert r.values({"arg": "--port"}) == expected


def test_env_setting_follows_config_map_and_secret_refs():
    c = {"name": "g", "image": "grafana/grafana:12", "envFrom": [{"configMapRef": {"name": "gf"}}],
         "env": [{"name": "GF_SERVER_HTTP_ADDR", "valueFrom": {"secretKeyRef": {"name": "s", "key": "addr"}}}]}
    r = the([deployment("grafana", c), cm("gf", {"GF_SERVER_HTTP_PORT": "3001"}),
             cm("s", {"addr": "127.0.0.1"}, "Secret")])
    assert r.value({"env": "GF_SERVER_HTTP_PORT"}) == "3001" and r.value({"env": "GF_SERVER_HTTP_ADDR"}) == "127.0.0.1"
    [listener], complete = listeners(r)
    assert complete and listener.port == 3001 and listener.loopback_only


def test_a_value_from_an_object_outside_the_set_gives_no_verdict():
    c = {"name": "g", "image": "grafana/grafana:12", "ports": [{"containerPort": 3000}],
         "env": [{"name": "GF_SERVER_HTTP_PORT", "valueFrom": {"configMapKeyRef": {"name": "elsewhere", "key": "p"}}}]}
    m = Manifests(Path("."), [deployment("grafana", c)], "yaml")
    assert listeners(running(m.workloads()[0], m, APPS)[0]) == ([], False)
    assert check_binds(m.workloads()[0], m, APPS) == []


@pytest.mark.parametrize(("conf", "expected"), [
    ("listener 1883 0.0.0.0\n", [(("0.0.0.0",), 1883)]),
    ("listener 1883\nlistener 9001 127.0.0.1  # websockets\n", [(("",), 1883), (("127.0.0.1",), 9001)]),
    ("# no listener: local only mode\nallow_anonymous false\n", [(("127.0.0.1",), 1883)]),
])
def test_mosquitto_listeners_come_from_its_config_file(conf, expected):
    c = {"name": "b", "image": "eclipse-mosquitto:2.0.22", "command": ["mosquitto", "-c", "/cfg/m.conf"],
         "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}
    r = the([deployment("broker", c, volumes=[{"name": "cfg", "secret": {"secretName": "conf"}}]),
             cm("conf", {"m.conf": conf}, "Secret")])
    assert [(ls.hosts, ls.port) for ls in listeners(r)[0]] == expected


def test_postgres_settings_from_dash_c_and_dash_p():
    c = {"name": "pg", "image": "postgres:16",
         "args": ["-c", "fsync=off", "-p", "5433", "--listen_addresses=localhost"]}
    r = the([deployment("db", c)])
    assert r.value({"pgconf": "fsync"}) == "off"
    [listener], _ = listeners(r)
    assert (listener.hosts, listener.port) == (("localhost",), 5433)


def test_a_shell_entrypoint_is_not_the_application():
    c = {"name": "init", "image": "eclipse-mosquitto:2.0.22", "command": ["sh", "-c"], "args": ["mosquitto_passwd …"]}
    m = Manifests(Path("."), [deployment("broker", c)], "yaml")
    assert running(m.workloads()[0], m, APPS) == []


@pytest.mark.parametrize(("text", "host", "port"), [
    ("postgresql+psycopg://mlflow@postgres-svc.it-core.svc:5432/mlflow", "postgres-svc.it-core.svc", 5432),
    ("http://user:pw@mlflow:5000/path?q=1", "mlflow", 5000),
    ("https://minio.lab", "minio.lab", 443),
    ("mqtt://[::1]:1884", "::1", 1884),
    ("broker:1883", "broker", 1883),
    ("broker", "broker", 1883),
])
def test_parse_address_forms(text, host, port):
    a = parse_address(text, "x", "mqtt", APPS.scheme_ports)
    assert (a.host, a.port) == (host, port)


@given(st.text(max_size=30))
def test_parse_address_and_split_hostport_never_raise_unexpectedly(text):
    parse_address(text, "x", None, APPS.scheme_ports)
    try:
        split_hostport(text)
    except ValueError:
        pass


def test_short_name_resolves_in_the_clients_namespace_only():
    client = deployment("sim", {"name": "s", "image": "indmlops-simulator:0.1.0", "args": ["--mqtt", "broker:1883"]})
    broker = deployment("broker", {"name": "b", "image": "eclipse-mosquitto:2", "ports": [{"containerPort": 1883}]},
                        ns="other")
    m = Manifests(Path("."), [client, broker, service("broker", "broker", 1883, ns="other")], "yaml")
    [problem] = check_addresses(m.workloads()[0], m, APPS)
    assert "names Service lab/broker, which is not in the manifests" in problem
    assert "a Service broker exists in namespace other" in problem


def test_structured_config_addresses_skip_templates_paths_and_other_schemes():
    flows = '[{"type": "mqtt-broker", "host": "${MQTT_HOST}", "url": "/hmi"}, {"url": "http://api:8080"}]'
    text = "artifacts: s3://bucket/x\nsee https://example.com/docs\n"
    m = Manifests(Path("."), [cm("flows", {"flows.json": flows, "notes.txt": text})], "yaml")
    assert [(a.host, a.port) for a in addresses(m.objects[0], m, APPS)] == [("api", 8080)]
