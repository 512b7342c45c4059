"""Security across objects: service-account tokens only where the API is needed, and MQTT brokers that admit
nobody anonymously and check passwords."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from indmlops.checks.static.workload_rules import SECRET_NAME, URL_PASSWORD
from indmlops.manifests import Manifests, Obj


def check_sa_token(w: Obj, m: Manifests, api_access: tuple[str, ...]) -> list[str]:
    """A pod that needs no API access mounts no service-account token: `automountServiceAccountToken: false` on
    the pod, or on the ServiceAccount it runs as (the pod's own setting wins, as the API decides)."""
    if w.ref in api_access:
        return []
    spec = w.pod_spec() or {}
    pod = spec.get("automountServiceAccountToken")
    if pod is False:
        return []
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    sa = m.get("ServiceAccount", w.namespace, account)
    if pod is None and sa is not None and sa.body.get("automountServiceAccountToken") is False:
        return []
    why = ("the pod sets automountServiceAccountToken: true" if pod is True else
           f"neither the pod nor ServiceAccount {w.namespace}/{account} "
           f"({'not in the manifests' if sa is None else sa.source}) sets automountServiceAccountToken: false")
    return [f"mounts a service-account token: {why}; expected false, since it needs no API access (a workload that "
            "does is listed in fixtures/static.yaml, api_access)"]


_DIRECTIVE = re.compile(r"^\s*([a-z_]+)(?:\s+(.*?))?\s*$")
BROKER_KEYS = ("listener", "allow_anonymous", "password_file", "per_listener_settings", "persistence")


def _values(obj: Obj) -> dict[Any, Any]:
    """The values of a ConfigMap or Secret: data, with a Secret's stringData over it (as the API merges them)."""
    data, string_data = obj.body.get("data"), obj.body.get("stringData")
    return {**(data if isinstance(data, dict) else {}), **(string_data if isinstance(string_data, dict) else {})}


def _text(obj: Obj, key: str, value: Any) -> str:
    string_data = obj.body.get("stringData")
    if obj.kind == "Secret" and not (isinstance(string_data, dict) and key in string_data):
        try:
            return base64.b64decode("".join(str(value).split()), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    return str(value)


def broker_configs(m: Manifests) -> list[tuple[Obj, str, str]]:
    """(ConfigMap or Secret, key, text) of every value that is a Mosquitto configuration: a .conf value with a
    `listener` line and at least one other broker directive."""
    out = []
    for obj in m.of_kind("ConfigMap", "Secret"):
        for key, value in _values(obj).items():
            if not str(key).endswith(".conf"):
                continue
            text = _text(obj, str(key), value)
            words = {d.group(1) for line in text.splitlines() if (d := _DIRECTIVE.match(line.split("#", 1)[0]))}
            if "listener" in words and len(words & set(BROKER_KEYS)) >= 2:
                out.append((obj, str(key), text))
    return out


def check_broker_auth(key: str, text: str) -> list[str]:
    """No listener admits anonymous clients, and passwords are checked (a password_file or an auth plugin): for the
    whole broker, or, with per_listener_settings true, for every listener."""
    sections: list[tuple[str, dict[str, str]]] = [("global", {})]
    per_listener = False
    for raw in text.splitlines():
        d = _DIRECTIVE.match(raw.split("#", 1)[0])
        if not d:
            continue
        name, value = d.group(1), (d.group(2) or "").strip()
        if name == "per_listener_settings":
            per_listener = value.lower() == "true"
        if name == "listener":
            sections.append((f"listener {value}", {}))
        sections[-1][1][name] = value
    scopes = sections[1:] if per_listener else [("the broker", {k: v for _, s in sections for k, v in s.items()})]
    out = []
    for where, settings in scopes:
        if settings.get("allow_anonymous", "").lower() == "true":
            out.append(f"{key}: {where} has allow_anonymous true; expected false (every client authenticates)")
        if not any(k in settings for k in ("password_file", "plugin", "auth_plugin")):
            out.append(f"{key}: {where} has no password_file (nor an auth plugin); expected one, so passwords are "
                       "checked")
    return out


def check_url_credentials(obj: Obj) -> list[str]:
    """No URL-valued setting carries a password, whatever the setting is called: env values of every container and
    every value of a ConfigMap (a Secret is where it belongs). Command and args are no-secret-literals' to judge."""
    found: list[tuple[str, str]] = []
    for c in obj.containers():
        for e in c.get("env") or []:
            if isinstance(e, dict) and isinstance(e.get("value"), str):
                found.append((f"container {c.get('name')}: env {e.get('name')}", e["value"]))
    if obj.kind == "ConfigMap":
        found += [(f"data {k}", str(v)) for k, v in (obj.body.get("data") or {}).items()]
    out = []
    for where, text in found:
        for m in URL_PASSWORD.finditer(text):
            shown = m.group(0).rsplit(":", 1)[0] + ":***@"
            out.append(f"{where} has a password in a URL ({shown}…); expected the credential from a Secret")
    return out


def check_default_credentials(secret: Obj, defaults: tuple[str, ...]) -> list[str]:
    """No credential in a Secret is a well-known default (fixtures/static.yaml, default_credentials)."""
    values = {**(secret.body.get("data") or {}), **(secret.body.get("stringData") or {})}
    known = {d.lower() for d in defaults}
    out = []
    for key, value in values.items():
        if not SECRET_NAME.search(str(key)):
            continue
        text = _text(secret, str(key), value).strip()
        if text.lower() in known:
            out.append(f"key {key}: a well-known default credential ({text[:2]}…, {len(text)} characters); expected "
                       "one generated for this deployment")
    return out
