"""The applications' semantics (fixtures/applications.yaml) applied to a container: which application an image
runs, and the values its settings get from args, env (followed into ConfigMaps and Secrets) and config files."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from indmlops.checks.static.workload_rules import image_name
from indmlops.manifests import Manifests, Obj

SHELLS = ("sh", "bash", "ash", "dash", "/bin/sh", "/bin/bash", "/bin/ash", "/usr/bin/env")
LOOPBACK = re.compile(r"^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$")
# A value from a Secret or ConfigMap the manifests do not hold: known to be set, not what to.
UNKNOWN = "\0unknown"


@dataclass(frozen=True)
class App:
    name: str
    spec: dict[str, Any]

    def entries(self, key: str) -> list[dict[str, Any]]:
        raw = self.spec.get(key)
        return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []

    def setting(self, key: str) -> dict[str, Any] | None:
        raw = self.spec.get(key)
        return raw if isinstance(raw, dict) else None

    def number(self, key: str) -> int | None:
        raw = self.spec.get(key)
        return int(raw) if isinstance(raw, int) else None


@dataclass(frozen=True)
class Apps:
    by_image: dict[str, App]
    scheme_ports: dict[str, int]
    address_keys: frozenset[str] = frozenset()
    protocol_schemes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    app_protocols: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_fixture(cls, doc: dict[str, Any]) -> Apps:
        by_image = {}
        for name, spec in (doc.get("applications") or {}).items():
            for image in spec.get("images") or []:
                by_image[str(image)] = App(str(name), dict(spec))
        return cls(by_image, {str(k): int(v) for k, v in (doc.get("scheme_ports") or {}).items()},
                   frozenset(str(k).lower() for k in doc.get("address_keys") or ()),
                   {str(k): tuple(str(s).lower() for s in v) for k, v in (doc.get("protocol_schemes") or {}).items()},
                   {str(k): tuple(str(s).lower() for s in v) for k, v in (doc.get("app_protocols") or {}).items()})

    def app_protocol_names(self, protocol: str) -> tuple[str, ...]:
        """The `appProtocol` values that name `protocol` (fixtures/applications.yaml app_protocols)."""
        family = "http" if protocol in self.app_protocols.get("http_based", ()) else protocol
        return self.app_protocols.get("any", ()) + self.app_protocols.get(family, ())

    def of(self, c: Any) -> App | None:
        """The application a container runs: its image's repository name, unless a shell replaces the entrypoint
        (then the container runs a script, not the application's command line)."""
        if not isinstance(c, dict):
            return None
        command = c.get("command")
        if isinstance(command, list) and command and str(command[0]) in SHELLS:
            return None
        return self.by_image.get(image_name(str(c.get("image", ""))))


def decoded(obj: Obj, key: str) -> str | None:
    """The text of `key` in a ConfigMap or Secret (Secret `data` base64-decoded, `stringData` as is)."""
    body = obj.body
    for part in ("stringData", "data") if obj.kind == "Secret" else ("data",):
        data = body.get(part)
        if isinstance(data, dict) and key in data:
            value = data[key]
            if part == "data" and obj.kind == "Secret":
                try:
                    return base64.b64decode("".join(str(value).split()), validate=True).decode("utf-8", "replace")
                except (binascii.Error, ValueError):
                    return None
            return str(value)
    return None


def keys_of(obj: Obj) -> list[str]:
    fields = ("data", "stringData") if obj.kind == "Secret" else ("data",)
    return [str(k) for f in fields if isinstance(obj.body.get(f), dict) for k in obj.body[f]]


def _volume_sources(vol: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(kind, source) of each ConfigMap or Secret a volume projects: a configMap or secret volume has one, a projected
    volume one per source (the same `items` semantics; its Secret names itself `name`, not `secretName`)."""
    out = []
    if isinstance(vol.get("configMap"), dict):
        out.append(("ConfigMap", vol["configMap"]))
    if isinstance(vol.get("secret"), dict):
        out.append(("Secret", {**vol["secret"], "name": vol["secret"].get("secretName")}))
    for src in (vol.get("projected") or {}).get("sources") or [] if isinstance(vol.get("projected"), dict) else []:
        for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
            if isinstance(src, dict) and isinstance(src.get(key), dict):
                out.append((kind, src[key]))
    return out


def mounted_files(w: Obj, c: dict[str, Any], m: Manifests) -> dict[str, tuple[Obj, str]]:
    """Path -> (ConfigMap or Secret, key) of every file the container sees from those volumes, projected ones
    included (items and subPath honoured). Volumes of other kinds and objects missing from the set contribute
    nothing."""
    volumes = {str(v.get("name")): v for v in (w.pod_spec() or {}).get("volumes") or [] if isinstance(v, dict)}
    out: dict[str, tuple[Obj, str]] = {}
    for mount in c.get("volumeMounts") or []:
        if not isinstance(mount, dict):
            continue
        seen: dict[str, tuple[Obj, str]] = {}  # the volume's files, relative to its root
        for kind, source in _volume_sources(volumes.get(str(mount.get("name"))) or {}):
            obj = m.get(kind, w.namespace, str(source.get("name")))
            if obj is None:
                continue
            keys = keys_of(obj)
            items = source.get("items")
            files = {str(i.get("path")): str(i.get("key")) for i in items if isinstance(i, dict)} \
                if isinstance(items, list) and items else {k: k for k in keys}
            seen.update({rel: (obj, key) for rel, key in files.items() if key in keys})
        path = str(mount.get("mountPath", ""))
        if mount.get("subPath"):
            if (hit := seen.get(str(mount["subPath"]))) is not None:
                out[path] = hit
            continue
        for rel, hit in seen.items():
            out[posixpath.join(path, rel)] = hit
    return out


@dataclass
class Running:
    """One container of a workload running a known application: where its settings' values come from."""

    w: Obj
    c: dict[str, Any]
    app: App
    m: Manifests

    @property
    def words(self) -> list[str]:
        return [str(x) for key in ("command", "args") if isinstance(self.c.get(key), list) for x in self.c[key]]

    def env(self) -> dict[str, str]:
        """Literal env of the container, envFrom and valueFrom followed into the set's ConfigMaps and Secrets."""
        out: dict[str, str] = {}
        for ef in self.c.get("envFrom") or []:
            for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                src = ef.get(ref) if isinstance(ef, dict) else None
                obj = self.m.get(kind, self.w.namespace, str(src.get("name"))) if isinstance(src, dict) else None
                if obj is not None:
                    prefix = str(ef.get("prefix") or "")
                    out.update({prefix + k: decoded(obj, k) or UNKNOWN for k in keys_of(obj)})
        for e in self.c.get("env") or []:
            if not isinstance(e, dict) or "name" not in e:
                continue
            if "value" in e:
                out[str(e["name"])] = "" if e["value"] is None else str(e["value"])
                continue
            out[str(e["name"])] = UNKNOWN
            vf = e["valueFrom"] if isinstance(e.get("valueFrom"), dict) else {}
            for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                src = vf.get(ref)
                obj = self.m.get(kind, self.w.namespace, str(src.get("name"))) if isinstance(src, dict) else None
                if obj is not None and isinstance(src, dict):
                    out[str(e["name"])] = decoded(obj, str(src.get("key"))) or UNKNOWN
        return out

    def config_text(self) -> str | None:
        spec = self.app.setting("config")
        path = self.value(spec) if spec else None
        if not path or path == UNKNOWN:
            return None
        found = mounted_files(self.w, self.c, self.m).get(path)
        return decoded(*found) if found else None

    def values(self, setting: dict[str, Any]) -> list[str]:
        """Every value `setting` gets, in order ([] when unset)."""
        words = self.words
        if isinstance(setting.get("any"), list):  # alternatives: what any of them gets, in the order listed
            return [v for s in setting["any"] if isinstance(s, dict) for v in self.values(s)]
        if "arg" in setting:
            flag, out = str(setting["arg"]), []
            for i, word in enumerate(words):
                if word == flag and i + 1 < len(words):
                    out.append(words[i + 1])
                elif word.startswith(flag + "="):
                    out.append(word[len(flag) + 1:])
            return out
        if "after" in setting:
            word = str(setting["after"])
            return [words[i + 1] for i, x in enumerate(words[:-1]) if x == word][:1]
        if "env" in setting:
            env = self.env()
            return [env[str(setting["env"])]] if str(setting["env"]) in env else []
        if "pgconf" in setting:
            name, out = str(setting["pgconf"]), []
            for i, word in enumerate(words):
                pair = words[i + 1] if word == "-c" and i + 1 < len(words) else word[2:] if word.startswith("--") \
                    else word[2:] if word.startswith("-c") else ""
                if pair.startswith(name + "="):
                    out.append(pair[len(name) + 1:].strip("'\""))
                elif name == "port" and word == "-p" and i + 1 < len(words):
                    out.append(words[i + 1])
            return out
        if "conf" in setting:
            text, key = self.config_text(), str(setting["conf"])
            if text is None:
                return [UNKNOWN] if self.app.setting("config") else []
            lines = (line.split("#", 1)[0].split(None, 1) for line in text.splitlines())
            return [parts[1].strip() if len(parts) > 1 else "" for parts in lines if parts and parts[0] == key]
        return []

    def value(self, setting: dict[str, Any]) -> str | None:
        found = self.values(setting)
        return found[-1] if found else None

    def described(self, setting: dict[str, Any]) -> str:
        """How a user finds the setting: `--port`, `env PGDATA`, `persistence in the config file`."""
        for key, text in (("arg", "{}"), ("after", "the argument after {!r}"), ("env", "env {}"),
                          ("pgconf", "-c {}=…"), ("conf", "{} in its config file")):
            if key in setting:
                return text.format(setting[key])
        if isinstance(setting.get("any"), list):
            return " or ".join(self.described(s) for s in setting["any"] if isinstance(s, dict))
        return str(setting)


def running(w: Obj, m: Manifests, apps: Apps) -> list[Running]:
    """The long-running containers of `w` that run a known application."""
    out = []
    for c in w.containers(init=False):
        app = apps.of(c)
        if app is not None:
            out.append(Running(w, c, app, m))
    return out


def split_hostport(text: str) -> tuple[str, int | None]:
    """`host:port`, `:port`, `[v6]:port`, `host` -> (host, port or None). ValueError on a non-numeric port."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:] else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port) if port else None
    return text, None


def is_loopback(host: str) -> bool:
    return bool(LOOPBACK.match(host))
