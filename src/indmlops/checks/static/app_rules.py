"""Rules that follow what an application is told (fixtures/applications.yaml): where it writes its state (class 3),
whether persistence is on and shutdown has time to save (class 3), whether authentication is switched off (class
4), and whether a slow starter is given a startup probe before its liveness probe may kill it (class 5)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote, urlsplit

from kubernetes.utils.quantity import parse_quantity

from indmlops.checks.static.apps import UNKNOWN, Apps, Running, keys_of, mounted_files, running
from indmlops.checks.static.workload_rules import pod_volumes, replica_count, stateful_path
from indmlops.manifests import Manifests, Obj

DEFAULT_GRACE_S = 30  # the API's default terminationGracePeriodSeconds


def _told_path(r: Running) -> tuple[str, str] | None:
    """(path, how) where the application is told to write, when its data setting is set."""
    spec = r.app.setting("data")
    value = r.value(spec) if spec else None
    return (value, r.described(spec)) if spec and value and value != UNKNOWN else None


def check_data_placement(w: Obj, m: Manifests, apps: Apps, stateful_images: Mapping[str, str]) -> list[str]:
    """The path a stateful application writes to (its data setting, else the image's data path) lies on a
    writable mount of a PersistentVolumeClaim."""
    found = stateful_path(w, stateful_images)
    if not found:
        return []
    cname, path = found
    how = f"the image's data path {path}"
    c = next(c for c in w.containers(init=False) if c.get("name") == cname)
    told = next((_told_path(r) for r in running(w, m, apps) if r.c is c), None)
    if told:
        path, how = told[0].rstrip("/") or "/", f"{told[0]} (its {told[1]})"
    mounts = [vm for vm in c.get("volumeMounts") or [] if isinstance(vm, dict)]
    covering = [vm for vm in mounts if path == str(vm.get("mountPath", "")).rstrip("/")
                or path.startswith(str(vm.get("mountPath", "")).rstrip("/") + "/")]
    if not covering:
        return [f"container {cname}: writes to {how}, where nothing is mounted; expected a PersistentVolumeClaim "
                f"(mounts: {[vm.get('mountPath') for vm in mounts] or 'none'})"]
    vm = max(covering, key=lambda v: len(str(v.get("mountPath", ""))))  # the deepest mount is where writes land
    vol = pod_volumes(w).get(str(vm.get("name")), {})
    if "persistentVolumeClaim" not in vol and "volumeClaimTemplate" not in vol:
        kind = next((k for k in vol if k != "name"), "no such volume")
        return [f"container {cname}: writes to {how}, on volume {vm.get('name')!r} ({kind}) mounted at "
                f"{vm.get('mountPath')}; expected a PersistentVolumeClaim (the data would not survive the pod)"]
    if vm.get("readOnly") is True or (vol.get("persistentVolumeClaim") or {}).get("readOnly") is True:
        return [f"container {cname}: writes to {how}, but claim volume {vm.get('name')!r} is mounted read-only at "
                f"{vm.get('mountPath')}"]
    return []


def _holds(r: Running, rule: dict[str, Any]) -> tuple[bool, str | None]:
    value = r.value(rule)
    if value == UNKNOWN:
        return True, value
    if "value" in rule:
        return str(value).lower() == str(rule["value"]).lower(), value
    if "startswith" in rule:
        return value is not None and str(value).startswith(str(rule["startswith"])), value
    if "at_most" in rule:  # a number the application reads, its own default when unset
        raw = value if value is not None else rule.get("default")
        try:
            return float(str(raw).strip("'\"")) <= float(rule["at_most"]), value
        except ValueError:
            return False, value
    return str(value).lower() != str(rule.get("not")).lower(), value


def check_persistence(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """Every durability setting of the application holds (persistence on, fsync not off)."""
    out = []
    for r in running(w, m, apps):
        for rule in r.app.entries("durable"):
            ok, value = _holds(r, rule)
            if not ok:
                want = f"{rule['value']!r}" if "value" in rule else f"{rule['startswith']}…" if "startswith" in rule \
                    else f"at most {rule['at_most']}" if "at_most" in rule else f"anything but {rule.get('not')!r}"
                found = "unset" if value is None else repr(value)
                if value is None and "default" in rule:
                    found += f" (the application's default: {rule['default']})"
                out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(rule)} is {found}; expected "
                           f"{want}, or its state does not survive a restart")
    return out


def check_app_auth(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """No setting switches the application's authentication off."""
    out = []
    for r in running(w, m, apps):
        for rule in r.app.entries("auth"):
            value = r.value(rule)
            if value is not None and value != UNKNOWN and value.strip("'\"").lower() == str(rule["value"]).lower():
                out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(rule)} is {value!r}, which "
                           "lets anyone who reaches it in without credentials")
    return out


def check_shutdown_grace(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """terminationGracePeriodSeconds leaves each application the time its clean shutdown needs."""
    raw = (w.pod_spec() or {}).get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE_S if raw is None else int(raw)
    out = []
    for r in running(w, m, apps):
        need = r.app.number("shutdown_seconds")
        if need is not None and grace < need:
            origin = "the pod spec" if raw is not None else "the API's default"
            out.append(f"terminationGracePeriodSeconds {grace} (from {origin}): {r.app.name} needs {need} s after "
                       "SIGTERM to save its state; a shorter grace ends in SIGKILL and loses what it had not written")
    return out


def check_probe_paths(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """Every httpGet probe asks a path the application serves (fixtures/applications.yaml http_paths)."""
    out = []
    for r in running(w, m, apps):
        served = [str(p) for p in r.app.spec.get("http_paths") or []]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = (r.c.get(kind) or {}).get("httpGet") if isinstance(r.c.get(kind), dict) else None
            if not served or not isinstance(get, dict):
                continue
            path = str(get.get("path") or "/").split("?")[0]
            if not any(fnmatchcase(path, p) for p in served):
                out.append(f"container {r.c.get('name')} {kind}: httpGet path {path!r} is not one {r.app.name} serves "
                           f"({', '.join(served)}): the probe fails on a healthy server")
    return out


def _budget(probe: dict[str, Any]) -> int:
    """Seconds a probe waits before giving up on a starting container: initialDelay + period x failureThreshold."""
    return int(probe.get("initialDelaySeconds") or 0) + int(probe.get("periodSeconds") or 10) \
        * int(probe.get("failureThreshold") or 3)


def check_startup_probe(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """A slow starter with a liveness probe has a startup probe that waits as long as its worst start."""
    out = []
    for r in running(w, m, apps):
        need, name = r.app.number("start_seconds"), r.c.get("name")
        live, start = r.c.get("livenessProbe"), r.c.get("startupProbe")
        if need is None or not isinstance(live, dict):
            continue
        if not isinstance(start, dict):
            if _budget(live) < need:
                out.append(f"container {name} ({r.app.name}): liveness probe without a startup probe gives up after "
                           f"{_budget(live)} s (initialDelay + period x failureThreshold); {r.app.name} may take "
                           f"{need} s to start on a busy node, so the kubelet kills it mid-start; expected a "
                           f"startupProbe waiting >= {need} s")
        elif _budget(start) < need:
            out.append(f"container {name} ({r.app.name}): startup probe waits {_budget(start)} s (initialDelay + "
                       f"period x failureThreshold); expected >= {need} s, its worst start on a busy node")
    return out


_VAR_REF = re.compile(r"(?<!\$)\$\((?P<name>[-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def _env_names(w: Obj, c: dict[str, Any], m: Manifests) -> tuple[list[str], bool]:
    """The env var names a container defines, in order, and whether all are known (an envFrom object outside the
    set defines names nobody can list)."""
    names, complete = [], True
    for ef in c.get("envFrom") or []:
        for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            src = ef.get(ref) if isinstance(ef, dict) else None
            if isinstance(src, dict):
                obj = m.get(kind, w.namespace, str(src.get("name")))
                if obj is None:
                    complete = False
                else:
                    names += [str(ef.get("prefix") or "") + k for k in keys_of(obj)]
    names += [str(e.get("name")) for e in c.get("env") or [] if isinstance(e, dict)]
    return names, complete


def check_setting_refs(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """Names a container is told resolve inside it: every `$(VAR)` of its command, args and env values is an env
    var defined before it (Kubernetes leaves an undefined one as literal text), every env var an application is
    told to read exists, and every file it is told to read is a mounted file or lies on a mounted volume."""
    out = []
    for c in w.containers():
        names, complete = _env_names(w, c, m)
        cname = f"container {c.get('name')}"
        words = [str(x) for key in ("command", "args") if isinstance(c.get(key), list) for x in c[key]]
        for name in sorted({hit.group("name") for word in words for hit in _VAR_REF.finditer(word)}):
            if complete and name not in names:
                out.append(f"{cname}: command/args use $({name}), which is not an env var of the container (it stays "
                           f"literal text); env: {names or 'none'}")
        for i, e in enumerate(c.get("env") or []):
            value = e.get("value") if isinstance(e, dict) else None
            before = names[: len(names) - len(c.get("env") or []) + i]
            for hit in _VAR_REF.finditer(str(value or "")):
                if complete and hit.group("name") not in before:
                    out.append(f"{cname} env {e.get('name')}: $({hit.group('name')}) is not an env var defined before "
                               "it (it stays literal text)")
    for r in running(w, m, apps):
        names, complete = _env_names(w, r.c, m)
        for spec in r.app.entries("env_names"):
            name = r.value(spec)
            if name and name != UNKNOWN and complete and name not in names:
                out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(spec)} names env var {name!r}, "
                           f"which the container does not define (env: {names or 'none'})")
        files = mounted_files(w, r.c, m)
        mounts = [vm for vm in r.c.get("volumeMounts") or [] if isinstance(vm, dict)]
        for spec in r.app.entries("files"):
            path = r.value(spec) or spec.get("default")
            if path and path != UNKNOWN and spec.get("glob"):
                pattern = posixpath.join(str(path), str(spec["glob"]))
                if not any(fnmatchcase(f, pattern) for f in files):
                    out.append(f"container {r.c.get('name')} ({r.app.name}): no mounted file matches {pattern} "
                               f"({spec.get('why') or 'where it reads its configuration'}); mounted files: "
                               f"{sorted(files) or 'none'}")
                continue
            if not path or path == UNKNOWN or path in files:
                continue
            under = [vm for vm in mounts if path.startswith(str(vm.get("mountPath", "")).rstrip("/") + "/")]
            vm = max(under, key=lambda v: len(str(v.get("mountPath", ""))), default=None)
            vol = pod_volumes(w).get(str(vm.get("name"))) if vm else None
            if vm is None:
                out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(spec)} is {path}, on no mounted "
                           f"volume (mounts: {[v.get('mountPath') for v in mounts] or 'none'})")
            elif vol and ("configMap" in vol or "secret" in vol or _only_objects(vol.get("projected"))):
                out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(spec)} is {path}, but volume "
                           f"{vm.get('name')!r} mounted at {vm.get('mountPath')} has no such file")
    return out


def _only_objects(projected: Any) -> bool:
    """A projected volume made only of ConfigMaps and Secrets: every file it holds is one of theirs, so a path it
    lacks is missing (a downwardAPI or token source would add files the manifests do not list)."""
    sources = projected.get("sources") if isinstance(projected, dict) else None
    if not isinstance(sources, list) or not sources:
        return False
    return all(isinstance(s, dict) and set(s) <= {"configMap", "secret"} for s in sources)


def _url_part(url: str, part: str) -> str | None:
    """`user`, `password` or `database` of a URL such as `postgresql+psycopg://mlflow@db:5432/mlflow`."""
    parsed = urlsplit(url)
    value = {"user": parsed.username, "password": parsed.password,
             "database": parsed.path.lstrip("/").split("/")[0] if parsed.path else None}.get(part)
    return unquote(value) if value else None


def check_credentials(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """A credential or name a client is told (a password, a user, a database) equals what its server is given:
    compared after following both into the set's Secrets, never printed."""
    out = []
    for r in running(w, m, apps):
        for rule in r.app.entries("credentials"):
            client = r.value(rule.get("client") or {})
            schemes = apps.protocol_schemes.get(str(rule.get("protocol")), ())
            if client not in (None, UNKNOWN) and schemes and urlsplit(client).scheme.lower() not in schemes:
                continue  # a URL for another kind of store: the addresses rule says so
            if client is not None and rule.get("part"):
                client = _url_part(client, str(rule["part"])) if client != UNKNOWN else client
            if client in (None, UNKNOWN):
                continue
            servers = [s for o in m.workloads() for s in running(o, m, apps) if s.app.name == rule.get("server")]
            wanted = [_server_value(s, rule) for s in servers]
            known = [v for v in wanted if v != UNKNOWN]
            if servers and len(known) == len(wanted) and client not in known:
                told = r.described(rule["client"]) + (f" ({rule['part']})" if rule.get("part") else "")
                given = ", ".join(f"{s.w.ref}" for s in servers)
                settings = " or ".join(servers[0].described(s) for s in _settings(rule))
                out.append(f"container {r.c.get('name')} ({r.app.name}): {told} differs from the {settings} its "
                           f"{rule.get('server')} server is given ({given}); the connection is refused (values not "
                           "shown)")
    return out


def _settings(rule: dict[str, Any]) -> list[dict[str, Any]]:
    same = rule.get("same_as")
    return [s for s in (same if isinstance(same, list) else [same]) if isinstance(s, dict)]


def _server_value(s: Running, rule: dict[str, Any]) -> str:
    """The first of the rule's server settings that is set, else its default."""
    for setting in _settings(rule):
        value = s.value(setting)
        if value is not None:
            return value
    return str(rule.get("default", UNKNOWN))


def check_memory_floor(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """A container's memory limit leaves its application at least what it takes idle (fixtures/applications.yaml
    min_memory, measured): below it the kernel kills it at start, again and again."""
    out = []
    for r in running(w, m, apps):
        floor = r.app.spec.get("min_memory")
        limit = ((r.c.get("resources") or {}).get("limits") or {}).get("memory")
        if floor is None or limit is None:
            continue
        try:
            below = parse_quantity(str(limit)) < parse_quantity(str(floor))
        except ValueError:
            continue  # not a quantity: requests-limits says so
        if below:
            out.append(f"container {r.c.get('name')} ({r.app.name}): limits.memory {limit} is below the {floor} "
                       f"{r.app.name} takes idle; it is OOM-killed at start (expected >= {floor})")
    return out


def check_one_instance(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """An application that must never run twice (fixtures/applications.yaml `exclusive`: it holds a session under a
    fixed identity) runs in one pod, and a rollout never starts the new pod while the old one runs."""
    held = [r for r in running(w, m, apps) if isinstance(r.app.spec.get("exclusive"), str)]
    if not held:
        return []
    why = "; ".join(f"{r.app.name}: {r.app.spec['exclusive']}" for r in held)
    spec = w.body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    out = []
    if w.kind == "DaemonSet":
        out.append(f"a DaemonSet runs one pod on every node, so two or more instances on a cluster of more than one "
                   f"node; expected a Deployment with one replica and strategy Recreate ({why})")
    count = replica_count(w)
    if count is not None and count > 1:
        out.append(f"replicas {count}; expected 1: every instance beyond the first takes the session from the "
                   f"others ({why})")
    if w.kind == "Deployment":
        strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"  # null is absent to the API
        if strategy != "Recreate":
            out.append(f"strategy {strategy}: a rollout starts the new pod while the old one still runs, and the two "
                       f"take the session from each other until the old one is gone; expected Recreate ({why})")
    return out
