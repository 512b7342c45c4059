"""A fake Kubernetes API server on pytest-httpserver (pods: list, watch, delete; Secrets; events; failures), and a
fake `kubectl port-forward`."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

CONTEXT = "kind-indmlops"

# A stand-in for `kubectl port-forward`: logs its argv, announces a fixed local port (or the one it was given),
# and stays up until terminated, as kubectl does.
FAKE_KUBECTL = """#!/bin/sh
echo "$@" >> "{log}"
spec=""
for a in "$@"; do case "$a" in *:*) spec="$a";; esac; done
local="${{spec%%:*}}"; [ -n "$local" ] || local={port}
echo "Forwarding from 127.0.0.1:$local -> ${{spec##*:}}"
echo "Forwarding from [::1]:$local -> ${{spec##*:}}"
exec sleep 60
"""


def fake_kubectl(tmp_path: Path, body: str | None = None, port: int = 45678) -> tuple[str, Path]:
    log = tmp_path / "kubectl.log"
    path = tmp_path / "kubectl"
    path.write_text(body if body is not None else FAKE_KUBECTL.format(log=log, port=port))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), log


def write_kubeconfig(path: Path, server: str, context: str = CONTEXT) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
    }))
    return path


def server_kubeconfig(server: HTTPServer, tmp_path: Path, name: str = "kubeconfig") -> Path:
    """A kubeconfig whose context CONTEXT points at the fake API server."""
    return write_kubeconfig(tmp_path / name, server.url_for("/").rstrip("/"))


@contextlib.contextmanager
def target_at(server: HTTPServer, tmp_path: Path, **kwargs: Any) -> Iterator[Any]:
    """A KubernetesTarget("kind") on the fake API server at context CONTEXT, closed afterwards."""
    from indmlops.targets.kubernetes.target import KubernetesTarget

    t = KubernetesTarget("kind", kubeconfig=str(server_kubeconfig(server, tmp_path)), context=CONTEXT, **kwargs)
    try:
        yield t
    finally:
        t.close()


def pod(name: str, uid: str, *, app: str = "mlflow", namespace: str = "it-core", ready: bool = True,
        phase: str = "Running", restarts: int = 0, deleting: bool = False, waiting: str | None = None,
        unschedulable: bool = False, image: str = "indmlops/mlflow:dev",
        claim: str | None = None) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                       "message": "0/2 nodes are available: 2 Insufficient memory."}]
    state: dict[str, Any] = {"running": {}} if waiting is None else {
        "waiting": {"reason": waiting, "message": f"{waiting} for {image}"}}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid,
                            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/version": "3.17.2"},
                            "creationTimestamp": "2026-11-26T12:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T12:05:00Z"
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"containers": [{"name": app, "image": image}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}] if claim else []},
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": [] if unschedulable else [{
            "name": app, "image": image, "imageID": "", "ready": ready, "restartCount": restarts, "state": state}]},
    }


def status(code: int, reason: str, message: str) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return Response(json.dumps(body), status=code, content_type="application/json")


def ok(body: Any) -> Response:
    return Response(json.dumps(body), status=200, content_type="application/json")


class FakeCluster:
    """State behind the fake API. `replacement` is what the controller creates when a pod is deleted: the pod
    as it first appears, then the watch events that follow (e.g. Pending, then Ready)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.secrets: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.pending_watch: dict[str, list[dict[str, Any]]] = {}
        self.replacement: Callable[[dict[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]] | None = None
        self.deleted: list[tuple[str, str, str]] = []  # (namespace, name, gracePeriodSeconds)
        self.watches = 0
        self.lists = 0
        self.fail: dict[str, Response] = {}  # "<namespace>/events" → the error served instead
        self.watch_response: Response | None = None  # e.g. a 403: served to watches instead of events
        for ns in ("it-core", "ot-edge", "governance"):
            self._route(ns)

    def _route(self, ns: str) -> None:
        base = f"/api/v1/namespaces/{ns}"
        self.server.expect_request(f"{base}/pods", method="GET").respond_with_handler(
            lambda r, ns=ns: self._pods(ns, r))
        self.server.expect_request(f"{base}/secrets", method="GET").respond_with_handler(
            lambda r, ns=ns: ok({"kind": "SecretList", "apiVersion": "v1", "metadata": {},
                                 "items": self.secrets.get(ns, [])}))
        self.server.expect_request(f"{base}/events", method="GET").respond_with_handler(
            lambda r, ns=ns: self.fail.get(f"{ns}/events") or ok({"kind": "EventList", "apiVersion": "v1",
                                                                  "metadata": {}, "items": self.events.get(ns, [])}))

    def serve_discovery(self) -> None:
        """What kubectl asks first: the core API and its resources (no API groups)."""
        self.server.expect_request("/api").respond_with_json({"kind": "APIVersions", "versions": ["v1"],
                                                              "serverAddressByClientCIDRs": []})
        self.server.expect_request("/apis").respond_with_json({"kind": "APIGroupList", "apiVersion": "v1",
                                                               "groups": []})
        resources = [{"name": n, "singularName": n[:-1], "namespaced": True, "kind": k, "shortNames": short,
                      "verbs": ["get", "list", "watch", "delete"]}
                     for n, k, short in (("pods", "Pod", ["po"]), ("services", "Service", ["svc"]),
                                         ("secrets", "Secret", []))]
        self.server.expect_request("/api/v1").respond_with_json({"kind": "APIResourceList", "groupVersion": "v1",
                                                                 "resources": resources})

    def route_delete(self, ns: str, name: str) -> None:
        self.server.expect_request(f"/api/v1/namespaces/{ns}/pods/{name}", method="DELETE").respond_with_handler(
            lambda r: self._delete(ns, name, r))

    def _matching(self, ns: str, request: Request) -> list[dict[str, Any]]:
        selector = request.args.get("labelSelector", "")
        key, _, value = selector.partition("=")
        return [p for p in self.pods.get(ns, []) if not selector or p["metadata"]["labels"].get(key) == value]

    def _pods(self, ns: str, request: Request) -> Response:
        if request.args.get("watch", "").lower() != "true":
            self.lists += 1
            return ok({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "100"},
                       "items": self._matching(ns, request)})
        self.watches += 1
        if self.watch_response is not None:
            return self.watch_response
        events = self.pending_watch.pop(ns, [])
        if not events:
            time.sleep(0.05)  # a quiet watch window; keeps a waiting client from spinning
        for e in events:  # the watch reports what the cluster now holds
            if e["type"] == "ERROR":
                continue
            self.pods[ns] = [p for p in self.pods.get(ns, []) if p["metadata"]["uid"] != e["object"]["metadata"]["uid"]]
            if e["type"] != "DELETED":
                self.pods[ns].append(e["object"])
        return Response("".join(json.dumps(e) + "\n" for e in events), status=200, content_type="application/json")

    def _delete(self, ns: str, name: str, request: Request) -> Response:
        gone = next(p for p in self.pods[ns] if p["metadata"]["name"] == name)
        self.pods[ns].remove(gone)
        self.deleted.append((ns, name, request.args.get("gracePeriodSeconds", "")))
        if self.replacement is not None:
            first, later = self.replacement(gone)
            self.pods[ns].append(first)
            self.pending_watch.setdefault(ns, []).extend(later)
        return ok(gone)

    def add_secret(self, ns: str, name: str, data: dict[str, str], created: str = "2026-11-26T12:00:00Z") -> None:
        self.secrets.setdefault(ns, []).append({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns,
                                                             "creationTimestamp": created},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})

    def add_event(self, ns: str, pod_name: str, reason: str, message: str) -> None:
        self.events.setdefault(ns, []).append({
            "apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
            "metadata": {"name": f"{pod_name}.1", "namespace": ns},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": ns},
            "lastTimestamp": "2026-11-26T12:06:00Z"})


def workload(obj_body: dict[str, Any], *, ready: bool = True) -> dict[str, Any]:
    """A rendered workload as the API returns it: generation observed, replicas (not) ready, a Job (not) complete."""
    body = json.loads(json.dumps(obj_body))
    body["metadata"]["generation"] = 1
    if body["kind"] == "Job":
        body["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1} if ready \
            else {"active": 1}
        return body
    n = 1 if ready else 0
    body["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": n,
                      "availableReplicas": n}
    return body


def node(name: str, ready: bool) -> dict[str, Any]:
    cond = {"type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else
            "container runtime network not ready: NetworkPluginNotReady message:Network plugin returns error: "
            "cni plugin not initialized"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"conditions": [cond]}}


class FakeKindApi:
    """What the kind lifecycle reads besides pods: /readyz and the default ServiceAccount (pytest-kubernetes' ready
    check, through the real kubectl), nodes, namespaces (list, delete), DaemonSets, Deployments, StatefulSets and
    Jobs by name. `workloads[path]` is a list of bodies served in turn (the last one stays): a rollout in steps."""

    def __init__(self, server: HTTPServer) -> None:
        self.nodes: list[dict[str, Any]] = [node("indmlops-control-plane", True), node("indmlops-worker", True)]
        self.nodes_after_cni: list[dict[str, Any]] | None = None  # nodes once `cni_marker` exists
        self.cni_marker: Path | None = None  # the stub kubectl touches it when it applies a CNI manifest
        self.namespaces: set[str] = {"default", "kube-system"}
        self.workloads: dict[str, list[dict[str, Any]]] = {}
        self.deleted_namespaces: list[str] = []
        self.requests: list[str] = []
        server.expect_request("/readyz").respond_with_data("[+]ping ok\nreadyz check passed\n")
        server.expect_request("/api").respond_with_json({"kind": "APIVersions", "versions": ["v1"]})
        server.expect_request("/apis").respond_with_json({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        server.expect_request("/api/v1").respond_with_json({"kind": "APIResourceList", "groupVersion": "v1",
                                                            "resources": [{"name": "serviceaccounts",
                                                                           "singularName": "serviceaccount",
                                                                           "namespaced": True,
                                                                           "kind": "ServiceAccount",
                                                                           "shortNames": ["sa"], "verbs": ["get"]}]})
        server.expect_request("/api/v1/namespaces/default/serviceaccounts/default").respond_with_json(
            {"kind": "ServiceAccount", "apiVersion": "v1",
             "metadata": {"name": "default", "namespace": "default", "creationTimestamp": "2026-11-26T12:00:00Z"}})
        server.expect_request(re.compile(r"^/(api/v1/nodes|api/v1/namespaces(/[^/]+)?|apis/.*)$")) \
            .respond_with_handler(self._handle)

    def set_workloads(self, bodies: list[dict[str, Any]]) -> None:
        for b in bodies:
            m = b["metadata"]
            group = "batch/v1" if b["kind"] == "Job" else "apps/v1"
            plural = {"Deployment": "deployments", "StatefulSet": "statefulsets", "Job": "jobs",
                      "DaemonSet": "daemonsets"}[b["kind"]]
            self.workloads.setdefault(f"/apis/{group}/namespaces/{m['namespace']}/{plural}/{m['name']}", []).append(b)

    def _handle(self, request: Request) -> Response:
        path = request.path
        self.requests.append(f"{request.method} {path}")
        if path == "/api/v1/nodes":
            if self.cni_marker is not None and self.cni_marker.exists() and self.nodes_after_cni is not None:
                self.nodes = self.nodes_after_cni
            return ok({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": self.nodes})
        if path == "/api/v1/namespaces":
            return ok({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {},
                       "items": [{"metadata": {"name": n}} for n in sorted(self.namespaces)]})
        if path.startswith("/api/v1/namespaces/") and request.method == "DELETE":
            name = path.rsplit("/", 1)[1]
            self.deleted_namespaces.append(name)
            self.namespaces.discard(name)
            return ok({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        served = self.workloads.get(path)
        if not served:
            return status(404, "NotFound", f"{path} not found")
        return ok(served.pop(0) if len(served) > 1 else served[0])
