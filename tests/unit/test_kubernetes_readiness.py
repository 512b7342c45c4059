"""Protocol readiness on the Kubernetes target: a Ready pod must also answer its protocol through the forward.

The fake kubectl "forwards" to the fake API server's own port, which then plays the component's HTTP answer."""

from __future__ import annotations

import pytest
from kube_fake import FakeCluster, fake_kubectl, pod, target_at

from indmlops.errors import NotReady
from indmlops.targets.kubernetes.components import COMPONENTS
from indmlops.targets.kubernetes.readiness import HTTP_READY


@pytest.fixture
def kube(httpserver, tmp_path):
    FakeCluster(httpserver).pods.update({
        "it-core": [pod("mlflow-a", "uid-a")],
        "ot-edge": [pod("simulator-a", "uid-s", app="simulator", namespace="ot-edge")],
    })
    kubectl, _ = fake_kubectl(tmp_path, port=httpserver.port)
    with target_at(httpserver, tmp_path, kubectl=kubectl) as t:
        yield t


def test_ready_pod_that_answers_its_protocol_is_ready(kube, httpserver):
    httpserver.expect_request("/api/2.0/mlflow/experiments/search").respond_with_data('{"experiments": []}')
    ready = kube.wait_ready("mlflow", timeout=5)
    assert ready.identity == "uid-a"
    assert ready.detail == "pod it-core/mlflow-a Ready; answers: HTTP 200"


def test_ready_pod_that_does_not_answer_is_not_ready_with_its_last_answer(kube, httpserver):
    httpserver.expect_request("/api/2.0/mlflow/experiments/search").respond_with_data("starting", status=503)
    with pytest.raises(NotReady) as err:
        kube.wait_ready("mlflow", timeout=1)
    assert "pod it-core/mlflow-a Ready, but its protocol probe failed: GET http://127.0.0.1:" in str(err.value)
    assert "/api/2.0/mlflow/experiments/search?max_results=1: HTTP 503, expected 200: 'starting'" in str(err.value)


def test_component_that_listens_nowhere_is_ready_with_its_pod(kube):
    assert kube.wait_ready("simulator", timeout=5).detail == "pod ot-edge/simulator-a Ready"


def test_every_component_with_a_service_has_a_protocol_probe():
    probed = set(HTTP_READY) | {"mosquitto", "postgres", "s3"}
    assert {c.name for c in COMPONENTS.values() if c.service} == probed


def test_pod_that_stays_unready_is_not_ready_with_what_its_container_said(httpserver, tmp_path):
    # The kubelet's event says "HTTP probe failed with statuscode: 503" only; the container's log says why.
    FakeCluster(httpserver).pods["ot-edge"] = [pod("inference-b", "uid-b", app="inference", namespace="ot-edge",
                                                   ready=False)]
    httpserver.expect_request("/api/v1/namespaces/ot-edge/pods/inference-b/log").respond_with_data(
        "inference: serving on 0.0.0.0:8088\ninference: model edge-anomaly@champion: ConnectionError: refused\n")
    with target_at(httpserver, tmp_path) as kube, pytest.raises(NotReady) as err:
        kube.wait_ready("inference", timeout=1)
    msg = str(err.value)
    assert "pod ot-edge/inference-b uid=uid-b, phase=Running" in msg
    assert ("log of container inference (last 6 lines): inference: serving on 0.0.0.0:8088 | inference: model "
            "edge-anomaly@champion: ConnectionError: refused") in msg
    assert msg.endswith("reproduce with `kubectl -n ot-edge describe pod inference-b`")


def test_an_unreadable_log_is_said_in_its_place(httpserver, tmp_path):
    FakeCluster(httpserver).pods["ot-edge"] = [pod("inference-b", "uid-b", app="inference", namespace="ot-edge",
                                                   ready=False)]
    httpserver.expect_request("/api/v1/namespaces/ot-edge/pods/inference-b/log").respond_with_json(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
         "message": "pods/log is forbidden"}, status=403)
    with target_at(httpserver, tmp_path) as kube, pytest.raises(NotReady, match=r"log of container inference "
                                                                                r"unavailable \(.*forbidden"):
        kube.wait_ready("inference", timeout=1)
