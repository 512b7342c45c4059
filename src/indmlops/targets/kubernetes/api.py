"""The few Kubernetes API calls the target makes, each turned into an error that names verb, resource and context."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from indmlops.errors import ApiUnauthorized, ApiUnreachable, KubernetesError, NoClusterAtContext, RbacForbidden

T = TypeVar("T")

# A check must learn in seconds that the API is gone: 1 retry and 10 s per request (a watch adds its own window).
REQUEST_TIMEOUT = 10.0
RETRIES = 1


def location_flags(kubeconfig: str | None, context: str | None) -> str:
    """' --kubeconfig K --context C' (each only when given), quoted for a printed command: kubectl and this suite's
    pytest options spell them alike."""
    return (f" --kubeconfig {shlex.quote(kubeconfig)}" if kubeconfig else "") + \
        (f" --context {shlex.quote(context)}" if context else "")


def default_kubeconfig() -> str:
    return str(Path(config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser())


class KubeApi:
    """CoreV1 calls for one kubeconfig context. Every call goes through `_call`, which translates failures."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self.kubeconfig_arg = kubeconfig  # None: $KUBECONFIG (may list several files) or ~/.kube/config
        self.kubeconfig = kubeconfig or default_kubeconfig()
        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=self.kubeconfig, context=context, client_configuration=cfg,
                                    persist_config=False)
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            raise NoClusterAtContext(context or "(current-context)", self.kubeconfig, _first_line(exc),
                                     _contexts(self.kubeconfig)) from None
        self.context = context or _current_context(self.kubeconfig)
        cfg.retries = RETRIES
        self.host = cfg.host
        self.api_client = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api_client)
        self.networking = client.NetworkingV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    def _call(self, verb: str, resource: str, namespace: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise self.translate(exc, verb, resource, namespace) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnreachable(self.context, self.host, f"{verb} {resource} in namespace {namespace}",
                                 _root_cause(exc)) from None

    def translate(self, exc: ApiException, verb: str, resource: str, namespace: str) -> KubernetesError:
        action = f"{verb} {resource} in namespace {namespace}"
        if exc.status == 401:
            return ApiUnauthorized(self.context, self.host, action)
        if exc.status == 403:
            return RbacForbidden(self.context, verb, resource, namespace, _api_message(exc))
        err = KubernetesError(f"{action} failed at {self.host} (context {self.context!r}): HTTP {exc.status} "
                              f"{exc.reason}: {_api_message(exc)}")
        err.status = exc.status
        return err

    # --- the calls -------------------------------------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str) -> tuple[list[client.V1Pod], str]:
        """Pods matching `selector`, and the list's resourceVersion (where a watch starts)."""
        res = self._call("list", "pods", namespace, self.core.list_namespaced_pod, namespace,
                         label_selector=selector)
        return list(res.items or []), res.metadata.resource_version or ""

    def list_all_pods(self) -> list[client.V1Pod]:
        """Every pod of every namespace (what runs the cluster's network, say)."""
        res = self._call("list", "pods", "*", self.core.list_pod_for_all_namespaces)
        return list(res.items or [])

    def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        self._call("delete", "pods", namespace, self.core.delete_namespaced_pod, name, namespace,
                   grace_period_seconds=grace_seconds)

    def scale_owner(self, namespace: str, selector: str, replicas: int) -> tuple[str, str, int]:
        """Scale the one Deployment or StatefulSet whose pod template carries `selector`'s labels to `replicas`;
        return (kind, name, replicas before)."""
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        apps = client.AppsV1Api(self.api_client)
        found = []
        for kind, lister, patcher in (
                ("Deployment", apps.list_namespaced_deployment, apps.patch_namespaced_deployment_scale),
                ("StatefulSet", apps.list_namespaced_stateful_set, apps.patch_namespaced_stateful_set_scale)):
            for obj in self._call("list", kind.lower() + "s", namespace, lister, namespace).items or []:
                labels = (obj.spec.template.metadata.labels or {}) if obj.spec.template.metadata else {}
                if all(labels.get(k) == v for k, v in wanted.items()):
                    found.append((kind, obj.metadata.name, obj.spec.replicas, patcher))
        if len(found) != 1:
            raise KubernetesError(f"scale {selector} in {namespace}: expected one Deployment or StatefulSet whose pods "
                                  f"carry it, found {[f'{k}/{n}' for k, n, _r, _p in found] or 'none'}")
        kind, name, before, patcher = found[0]
        self._call("patch", kind.lower() + "s/scale", namespace, patcher, name, namespace,
                   {"spec": {"replicas": replicas}})
        return kind, name, int(before if before is not None else 1)

    def list_secrets(self, namespace: str) -> list[client.V1Secret]:
        return list(self._call("list", "secrets", namespace, self.core.list_namespaced_secret, namespace).items or [])

    def pod_events(self, namespace: str, pod: str) -> list[client.CoreV1Event]:
        res = self._call("list", "events", namespace, self.core.list_namespaced_event, namespace,
                         field_selector=f"involvedObject.name={pod}")
        return list(res.items or [])

    def namespace_events(self, namespace: str) -> list[client.CoreV1Event]:
        return list(self._call("list", "events", namespace, self.core.list_namespaced_event, namespace).items or [])

    def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int) -> str:
        return str(self._call("get", "pods/log", namespace, self.core.read_namespaced_pod_log, pod, namespace,
                              container=container, tail_lines=tail_lines))

    # --- what probe pods need: scratch namespaces, owner ConfigMaps, pods, a NetworkPolicy --------------------
    def namespace_exists(self, name: str) -> bool:
        try:
            self._call("get", "namespaces", name, self.core.read_namespace, name)
        except KubernetesError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_namespace(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self._call("create", "namespaces", name, self.core.create_namespace, body)

    def delete_namespace(self, name: str, *, missing_ok: bool = False) -> None:
        try:
            self._call("delete", "namespaces", name, self.core.delete_namespace, name)
        except KubernetesError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def list_namespaces(self) -> set[str]:
        res = self._call("list", "namespaces", "(cluster)", self.core.list_namespace)
        return {str(n.metadata.name) for n in res.items or []}

    def create_config_map(self, namespace: str, body: dict[str, Any]) -> str:
        """Create it and return its uid (probe pods name it as their controller)."""
        res = self._call("create", "configmaps", namespace, self.core.create_namespaced_config_map, namespace, body)
        return str(res.metadata.uid)

    def delete_config_map(self, namespace: str, name: str) -> None:
        self._call("delete", "configmaps", namespace, self.core.delete_namespaced_config_map, name, namespace,
                   propagation_policy="Background")

    def create_pod(self, namespace: str, body: dict[str, Any]) -> None:
        self._call("create", "pods", namespace, self.core.create_namespaced_pod, namespace, body)

    def create_network_policy(self, namespace: str, body: dict[str, Any]) -> None:
        self._call("create", "networkpolicies", namespace, self.networking.create_namespaced_network_policy,
                   namespace, body)

    def watch_pods(self, namespace: str, selector: str, resource_version: str,
                   seconds: int) -> Iterator[tuple[str, client.V1Pod]]:
        """(event type, pod) for pod changes over at most `seconds`; ends early when the server closes the stream.
        A 410 Gone (resourceVersion too old) ends the stream too: the caller lists again."""
        w = watch.Watch()
        kwargs: dict[str, Any] = {"label_selector": selector, "timeout_seconds": max(1, seconds),
                                  "_request_timeout": max(1, seconds) + REQUEST_TIMEOUT}
        if resource_version:
            kwargs["resource_version"] = resource_version
        stream = w.stream(self.core.list_namespaced_pod, namespace, **kwargs)
        try:
            while True:
                try:
                    event = next(stream)
                except StopIteration:
                    return
                except ApiException as exc:
                    if exc.status == 410:
                        return
                    raise self.translate(exc, "watch", "pods", namespace) from None
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise ApiUnreachable(self.context, self.host, f"watch pods in namespace {namespace}",
                                         _root_cause(exc)) from None
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    yield event["type"], event["object"]
        finally:
            w.stop()


def _contexts(kubeconfig: str) -> list[str]:
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError, TypeError, ValueError):
        return []
    return [c["name"] for c in contexts or []]


def _current_context(kubeconfig: str) -> str:
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        return str(active["name"])
    except (ConfigException, OSError, TypeError, ValueError, KeyError):
        return "(current-context)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _root_cause(exc: BaseException) -> str:
    """urllib3 wraps 'connection refused' in MaxRetryError(NewConnectionError(...)): name the innermost reason."""
    reason = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = reason.reason  # type: ignore[attr-defined]
    return _first_line(reason if isinstance(reason, BaseException) else exc)


def _api_message(exc: ApiException) -> str:
    """The Status object's message when the body is one, else the raw body (first line)."""
    import json

    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return _first_line(Exception(exc.body or exc.reason))
