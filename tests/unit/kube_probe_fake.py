"""A fake Kubernetes API for probe pods (namespaces, ConfigMaps, pods and their logs, NetworkPolicies) with a fake
network behind it: `reach(source pod labels, source namespace, address, port, protocol)` decides each probe."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from kube_fake import ok, status
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from indmlops import netprobe

Reach = Callable[[dict[str, str], str, str, int, str], tuple[bool | None, str]]

CORE = re.compile(r"^/api/v1/namespaces(?:/(?P<ns>[^/]+)(?:/(?P<kind>[a-z]+)"
                  r"(?:/(?P<name>[^/]+)(?:/(?P<sub>log))?)?)?)?$")
ALL_PODS = re.compile(r"^/api/v1/pods$")
NETPOL = re.compile(r"^/apis/networking\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/networkpolicies$")


class FakeProbeCluster:
    """`mode` per created pod name prefix: "ok" (runs to completion), "image-missing", "stuck" (Pending for ever),
    "no-marker" (finishes, prints no result). `forbid` holds (verb, resource) pairs answered with 403."""

    def __init__(self, server: HTTPServer, reach: Reach) -> None:
        self.reach = reach
        self.namespaces = {"it-core", "ot-edge", "governance", "kube-system", "default"}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.config_maps: dict[tuple[str, str], str] = {}
        self.policies: dict[str, list[dict[str, Any]]] = {}
        self.created_namespaces: list[str] = []
        self.deleted_namespaces: list[str] = []
        self.deleted_config_maps: list[tuple[str, str]] = []
        self.created_pods: list[dict[str, Any]] = []
        self.mode = "ok"
        self.forbid: set[tuple[str, str]] = set()
        self.events: list[dict[str, Any]] = []
        self._ips = (f"10.244.9.{i}" for i in itertools.count(10))
        server.expect_request(CORE).respond_with_handler(self._core)
        server.expect_request(NETPOL).respond_with_handler(self._netpol)
        server.expect_request(ALL_PODS).respond_with_handler(self._all_pods)

    # --- workloads the probes look for ---------------------------------------------------------------------
    def add_workload_pod(self, namespace: str, name: str, labels: dict[str, str], ip: str,
                         phase: str = "Running", image: str = "x", ready: bool = True) -> None:
        self.pods[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": dict(labels)},
            "spec": {"containers": [{"name": "main", "image": image}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "main", "image": image, "imageID": "", "ready": ready,
                                              "restartCount": 0, "state": {"running": {}}}]}}

    # --- the API ----------------------------------------------------------------------------------------------
    def _core(self, r: Request) -> Response:
        m = CORE.match(r.path)
        assert m
        ns, kind, name, sub = m["ns"], m["kind"], m["name"], m["sub"]
        verb = {"GET": "list" if kind and not name else "get", "POST": "create", "DELETE": "delete"}[r.method]
        if (verb, kind or "namespaces") in self.forbid:
            return status(403, "Forbidden", f'{kind or "namespaces"} is forbidden: User "ci" cannot {verb} '
                                            f'resource "{kind or "namespaces"}" in the namespace "{ns}"')
        if kind is None:
            return self._namespace(r, ns)
        if ns not in self.namespaces:
            return status(404, "NotFound", f'namespaces "{ns}" not found')
        if kind == "configmaps":
            return self._config_map(r, ns, name)
        if kind == "pods":
            if sub == "log":
                return Response(self.logs.get((ns, name), ""), content_type="text/plain")
            return self._pod(r, ns, name)
        if kind == "events":
            return ok({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": self.events})
        return status(404, "NotFound", f"no {kind} in this fake")

    def _namespace(self, r: Request, ns: str | None) -> Response:
        if r.method == "POST":
            body = json.loads(r.data)
            self.namespaces.add(body["metadata"]["name"])
            self.created_namespaces.append(body["metadata"]["name"])
            return ok(body)
        if r.method == "DELETE":
            self.namespaces.discard(str(ns))
            self.deleted_namespaces.append(str(ns))
            for key in [k for k in self.pods if k[0] == ns]:
                del self.pods[key]
            return ok({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if ns in self.namespaces:
            return ok({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}})
        return status(404, "NotFound", f'namespaces "{ns}" not found')

    def _config_map(self, r: Request, ns: str, name: str | None) -> Response:
        if r.method == "POST":
            body = json.loads(r.data)
            uid = f"cm-uid-{len(self.config_maps)}"
            self.config_maps[(ns, body["metadata"]["name"])] = uid
            body["metadata"]["uid"] = uid
            return ok(body)
        self.config_maps.pop((ns, str(name)), None)
        self.deleted_config_maps.append((ns, str(name)))
        for key, p in list(self.pods.items()):  # the garbage collector: owned pods go with their owner
            if key[0] == ns and any(o["name"] == name for o in p["metadata"].get("ownerReferences", [])):
                del self.pods[key]
        return ok({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def _all_pods(self, _r: Request) -> Response:
        if ("list", "pods@cluster") in self.forbid:  # RBAC that allows pods in a namespace, not cluster-wide
            return status(403, "Forbidden", 'pods is forbidden: User "ci" cannot list resource "pods" at the '
                                            "cluster scope")
        return ok({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                   "items": list(self.pods.values())})

    def _netpol(self, r: Request) -> Response:
        ns = NETPOL.match(r.path)["ns"]  # type: ignore[index]
        if ("create", "networkpolicies") in self.forbid:
            return status(403, "Forbidden", "networkpolicies is forbidden")
        body = json.loads(r.data)
        self.policies.setdefault(ns, []).append(body)
        return ok(body)

    def _pod(self, r: Request, ns: str, name: str | None) -> Response:
        if r.method == "GET":
            selector = dict(kv.split("=", 1) for kv in r.args.get("labelSelector", "").split(",") if kv)
            items = [p for (pns, _), p in self.pods.items() if pns == ns and
                     all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())]
            return ok({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
        body = json.loads(r.data)
        self.created_pods.append(body)
        self._start(ns, body)
        return ok(self.pods[(ns, body["metadata"]["name"])])

    def _start(self, ns: str, body: dict[str, Any]) -> None:
        """What the kubelet would do: schedule, pull (or not), run indmlops-netprobe, record its log."""
        name = body["metadata"]["name"]
        container = body["spec"]["containers"][0]
        body = json.loads(json.dumps(body))
        body["metadata"]["uid"] = f"uid-{name}"
        ip = next(self._ips)
        state: dict[str, Any] = {"terminated": {"reason": "Completed", "exitCode": 0}}
        phase = "Succeeded"
        args = container["args"]
        if self.mode == "image-missing":
            phase, state = "Pending", {"waiting": {"reason": "ErrImageNeverPull",
                                                   "message": f'Container image "{container["image"]}" is not present'}}
        elif self.mode == "stuck":
            phase, state = "Pending", {"waiting": {"reason": "ContainerCreating", "message": ""}}
        elif args[0] == "listen":
            phase, state = "Running", {"running": {}}
        else:
            self.logs[(ns, name)] = self._run_netprobe(ns, body["metadata"]["labels"], args)
        body["status"] = {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": "False"}],
                          "containerStatuses": [{"name": "probe", "image": container["image"], "imageID": "",
                                                 "ready": False, "restartCount": 0, "state": state}]}
        self.pods[(ns, name)] = body

    def _run_netprobe(self, ns: str, labels: dict[str, str], args: list[str]) -> str:
        timeout = float(args[args.index("--timeout") + 1])
        targets = [a for a in args[1:] if re.match(r"^[\d.\[\]:a-f]+:\d+/(TCP|UDP)$", a)]
        results = []
        for t in targets:
            host, port, proto = netprobe.parse_target(t)
            reachable, outcome = self.reach(labels, ns, host, port, proto)
            results.append({"target": f"{host}:{port}/{proto}", "reachable": reachable, "outcome": outcome,
                            "ms": 0.4 if reachable else timeout * 1000, "attempts": 1, "seconds": 0.0})
        if self.mode == "no-marker":
            return "Traceback (most recent call last):\n  ...\nOSError: [Errno 24] Too many open files\n"
        return "\n".join([*(netprobe.human(r) for r in results),
                          netprobe.MARKER + json.dumps({"timeout": timeout, "results": results})]) + "\n"
