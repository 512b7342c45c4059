"""Edge cases of single rules (pure logic): image tags, secret literals, schema lookup, scrape target forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.checks.static import schema
from indmlops.checks.static.object_rules import check_scrape_job
from indmlops.checks.static.workload_rules import check_no_secret_literals, check_pinned_images, image_tag
from indmlops.manifests import Manifests, Obj


def deployment(**container) -> Obj:
    return Obj({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1", **container}]}}}}, "f.yaml")


@pytest.mark.parametrize(("image", "ok"), [
    ("postgres:16.10-alpine3.22", True), ("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", True),
    ("registry:5000/team/app:1.2.3", True), ("app@sha256:" + "a" * 64, True),
    ("app:latest", False), ("app", False), ("registry:5000/team/app", False), ("app:stable", False),
])
def test_pinned_images(image, ok):
    assert (check_pinned_images(deployment(image=image)) == []) == ok


def test_image_tag_splits_registry_ports_from_tags():
    assert image_tag("registry:5000/team/app") == ("registry:5000/team/app", None, None)
    assert image_tag("registry:5000/team/app:1.0@sha256:ab") == ("registry:5000/team/app", "1.0", "sha256:ab")


@pytest.mark.parametrize(("container", "caught"), [
    ({"env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}, True),
    ({"env": [{"name": "API_TOKEN", "value": "abc"}]}, True),
    ({"env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}, False),
    ({"env": [{"name": "DB_PASSWORD", "value": "$(FROM_SECRET)"}]}, False),
    ({"env": [{"name": "MLFLOW_S3_ENDPOINT_URL", "value": "http://minio-svc:9000"}]}, False),
    ({"args": ["--password=hunter2"]}, True),
    ({"args": ["--password", "hunter2"]}, True),
    ({"args": ["--password-env", "MQTT_PASSWORD"]}, False),
    ({"args": ["--db=postgresql://u:hunter2@db/x"]}, True),
    ({"args": ["--db=postgresql://u@db/x"]}, False),
    ({"command": ["sh", "-c", 'mc alias set lab http://m:9000 "$USER" "$MINIO_ROOT_PASSWORD"']}, False),
    ({"command": ["sh", "-c", "export SECRET=abc123"]}, True),
])
def test_secret_literals(container, caught):
    assert bool(check_no_secret_literals(deployment(**container))) == caught


def svc(name: str, ns: str, port: int) -> Obj:
    return Obj({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"port": port}]}}, "s.yaml")


@pytest.mark.parametrize(("target", "ok"), [
    ("web:80", True), ("web.shop:80", True), ("web.shop.svc:80", True), ("web.shop.svc.cluster.local:80", True),
    ("web.shop:81", False), ("web.other:80", False), ("localhost:9090", False), ("web.shop.pod:80", False),
    ("web", False),
])
def test_scrape_target_forms(target, ok):
    cm = Obj({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p", "namespace": "shop"}}, "p.yaml")
    m = Manifests(Path("."), [cm, svc("web", "shop", 80)], "yaml")
    assert (check_scrape_job(cm, {"job_name": "j", "static_configs": [{"targets": [target]}]}, m) == []) == ok


def test_schema_versions_and_custom_resources():
    versions = schema.shipped_versions()
    assert "1.37" in versions and schema.newest_versions(4) == versions[-4:]
    assert schema.is_builtin("v1") and schema.is_builtin("apps/v1") and schema.is_builtin("networking.k8s.io/v1")
    assert not schema.is_builtin("kind.x-k8s.io/v1alpha4") and not schema.is_builtin("monitoring.coreos.com/v1")
    with pytest.raises(schema.NoSchema, match="no schema for Cluster kind.x-k8s.io/v1alpha4"):
        schema.validate({"apiVersion": "kind.x-k8s.io/v1alpha4", "kind": "Cluster"}, "1.37")
    with pytest.raises(ValueError, match="no schemas for Kubernetes 1.99"):
        schema.validate({"apiVersion": "v1", "kind": "ConfigMap"}, "1.99")


def test_schema_is_strict_and_names_the_field():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "datta": {}}
    assert schema.validate(cm, "1.37") == ["(root): Additional properties are not allowed ('datta' was unexpected)"]
