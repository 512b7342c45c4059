"""Server-side validation: one rendered object submitted to the API server as a server-side apply with
`dryRun=All`, so the cluster's own validation, defaulting and admission judge it and nothing is stored.

The verdict says *why*: accepted; rejected (the API server's status code, reason and each field cause); not served
(this cluster's version has no such apiVersion/kind, and which versions of the kind it does serve); or not judged
(the API could not be asked: no permission, unreachable), which is never a pass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from indmlops.errors import KubernetesError
from indmlops.targets.base import DryRunVerdict
from indmlops.targets.kubernetes.api import KubeApi

FIELD_MANAGER = "indmlops-dry-run"


@dataclass(frozen=True)
class Resource:
    path: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool


class ServerValidator:
    """Discovery once per validator (which group/version serves which kind), then one PATCH per object."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._served: dict[str, dict[str, Resource]] | None = None  # apiVersion -> kind -> resource
        self.server_version = ""
        self.created_namespaces: list[str] = []

    def close(self) -> None:
        """Remove the namespaces made for the dry runs (each held nothing: dry runs store nothing)."""
        for name in self.created_namespaces:
            self.api.delete_namespace(name, missing_ok=True)
        self.created_namespaces = []

    def _namespace_ready(self, ns: str, declared: frozenset[str]) -> str | None:
        """None when objects can be submitted into `ns`; else why not."""
        if ns in self.created_namespaces or self.api.namespace_exists(ns):
            return None
        if ns not in declared:
            return (f"namespace {ns!r} does not exist on the cluster and the manifests declare no Namespace {ns!r}: "
                    "applying them would fail here")
        self.api.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {"app.kubernetes.io/managed-by": "indmlops-dry-run"}}})
        self.created_namespaces.append(ns)
        return None

    def _get(self, path: str) -> Any:
        resp = self.api.api_client.call_api(path, "GET", header_params={"Accept": "application/json"},
                                            auth_settings=["BearerToken"], _preload_content=False,
                                            _request_timeout=20)
        return json.loads(resp[0].data)

    def served(self) -> dict[str, dict[str, Resource]]:
        if self._served is None:
            out: dict[str, dict[str, Resource]] = {}
            versions = [("v1", "/api/v1")]
            for group in self._get("/apis").get("groups", []):
                versions += [(v["groupVersion"], f"/apis/{v['groupVersion']}") for v in group.get("versions", [])]
            for api_version, path in versions:
                kinds: dict[str, Resource] = {}
                for res in self._get(path).get("resources", []):
                    if "/" not in res["name"]:  # subresources (pods/log) are not objects
                        kinds[res["kind"]] = Resource(path, res["name"], bool(res.get("namespaced")))
                out[api_version] = kinds
            self._served = out
            try:
                self.server_version = self._get("/version").get("gitVersion", "")
            except (ApiException, ValueError, OSError):
                self.server_version = "(version unknown)"
        return self._served

    def validate(self, doc: dict[str, Any], declared: frozenset[str] = frozenset(),
                 default_namespace: str = "default") -> DryRunVerdict:
        api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        raw_meta = doc.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        name = str(meta.get("name", ""))
        try:
            served = self.served()
        except (ApiException, ValueError, OSError) as exc:
            return DryRunVerdict("not-judged", f"API discovery failed at {self.api.host}: {exc}")
        res = served.get(api_version, {}).get(kind)
        if res is None:
            elsewhere = sorted(v for v, kinds in served.items() if kind in kinds)
            also = (f"; it serves {kind} as {', '.join(elsewhere)}" if elsewhere
                    else f"; it serves no {kind} in any API version")
            return DryRunVerdict("not-served", f"this cluster (Kubernetes {self.server_version}) does not serve "
                                               f"{kind} in {api_version}{also}")
        ns = str(meta.get("namespace") or default_namespace)
        if res.namespaced:
            try:
                missing = self._namespace_ready(ns, declared)
            except KubernetesError as exc:
                return DryRunVerdict("not-judged", f"namespace {ns!r} could not be read or made: {exc}")
            if missing:
                return DryRunVerdict("rejected", missing)
        path = (f"{res.path}/namespaces/{ns}/{res.plural}/{name}" if res.namespaced
                else f"{res.path}/{res.plural}/{name}")
        how = "server-side apply"
        try:
            try:
                self._send(path, "PATCH", doc, "application/apply-patch+yaml", force="true")
            except ApiException as exc:
                if not _apply_limitation(exc):
                    raise
                # Kubernetes <= 1.20 cannot build an apply patch for some valid objects (a Service port without
                # `protocol`): that is the server's limitation, not the object's fault. Judge it as `kubectl
                # apply` would send it instead: create, or replace what is there.
                how = "create/replace (this server's apply cannot take the object)"
                self._create_or_replace(res, path, ns, doc)
        except ApiException as exc:
            return _judge(exc, path)
        except OSError as exc:
            return DryRunVerdict("not-judged", f"{path}: the API server did not answer: {exc}")
        return DryRunVerdict("accepted", f"{how} (dryRun=All) of {path} accepted")

    def _send(self, path: str, method: str, doc: dict[str, Any], content_type: str, **query: str) -> Any:
        params = [("dryRun", "All"), ("fieldManager", FIELD_MANAGER), *query.items()]
        return self.api.api_client.call_api(
            path, method, query_params=params, header_params={"Content-Type": content_type,
                                                              "Accept": "application/json"},
            body=doc, auth_settings=["BearerToken"], _preload_content=False, _request_timeout=30)

    def _create_or_replace(self, res: Resource, path: str, ns: str, doc: dict[str, Any]) -> None:
        try:
            current = json.loads(self.api.api_client.call_api(
                path, "GET", header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                _preload_content=False, _request_timeout=20)[0].data)
        except ApiException as exc:
            if exc.status != 404:
                raise
            collection = path.rsplit("/", 1)[0]
            self._send(collection, "POST", doc, "application/json")
            return
        body = json.loads(json.dumps(doc))
        body.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        self._send(path, "PUT", body, "application/json")


def _body(exc: ApiException) -> str:
    body = exc.body or ""
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


def _apply_limitation(exc: ApiException) -> bool:
    return exc.status == 500 and "failed to create typed patch object" in _body(exc)


def _judge(exc: ApiException, path: str) -> DryRunVerdict:
    try:
        status = json.loads(_body(exc) or "{}")
    except ValueError:
        status = {}
    message = status.get("message") or exc.reason or ""
    causes = [f"{c.get('field', '(object)')}: {c.get('message', '')}".strip()
              for c in (status.get("details") or {}).get("causes") or []]
    reason = status.get("reason") or exc.reason
    if exc.status in (401,) or (exc.status == 403 and " cannot patch resource " in message):
        return DryRunVerdict("not-judged", f"the kubeconfig's user may not submit {path} ({exc.status} {reason}): "
                                           f"{message}", status=exc.status)
    if exc.status is not None and exc.status >= 500:
        return DryRunVerdict("not-judged", f"the API server failed on {path} ({exc.status} {reason}): {message}",
                             status=exc.status)
    return DryRunVerdict("rejected", f"{exc.status} {reason}: {message}", tuple(causes), exc.status)
