"""Rules on one workload's pod template: images, probes, resources, security, secrets, volumes, references."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from indmlops.manifests import LONG_RUNNING, Manifests, Obj

SECRET_NAME = re.compile(r"(?i)(passw|passwd|secret|token|api[_-]?key|private[_-]?key|credential)")
# `--password=hunter2`, `password: x`, `user:pass@host` — but not `$(VAR)`/`$VAR`/`${VAR}` expansions.
_SECRET_ASSIGN = re.compile(r"(?i)(passw(or)?d|secret|token|api[_-]?key)[\w-]*\s*[=:]\s*(?![$\"'])(\S+)")
URL_PASSWORD = re.compile(r"://[^/\s:@]+:(?!\$)[^@\s/]+@")
_SECRET_FLAG = re.compile(r"(?i)^--?[\w-]*(passw(or)?d|secret|token|api-?key)$")


def image_tag(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag, digest
    return image, None, digest


def image_name(image: str) -> str:
    """The repository's last path segment: `quay.io/minio/minio:RELEASE…@sha256:…` -> `minio`."""
    return image_tag(image)[0].rsplit("/", 1)[-1]


def check_pinned_images(obj: Obj) -> list[str]:
    out = []
    for c in obj.containers():
        image = str(c.get("image", ""))
        _, tag, digest = image_tag(image)
        if digest:
            continue
        if tag is None:
            out.append(f"container {c.get('name')}: image {image!r} has no tag; expected an exact version "
                       "(e.g. name:1.2.3) or an @sha256 digest")
        elif tag.lower() == "latest" or not re.search(r"\d", tag):
            out.append(f"container {c.get('name')}: image {image!r} uses the floating tag {tag!r}; expected an "
                       "exact version (e.g. name:1.2.3) or an @sha256 digest")
    return out


def _declared_port_names(c: Mapping[str, Any]) -> set[str]:
    return {str(p.get("name")) for p in c.get("ports") or [] if p.get("name")}


def check_probes(obj: Obj) -> list[str]:
    if obj.kind not in LONG_RUNNING:
        return []
    out = []
    for c in obj.containers(init=False):
        for probe in ("readinessProbe", "livenessProbe"):
            spec = c.get(probe)
            if not spec:
                out.append(f"container {c.get('name')}: expected a {probe}, found none")
                continue
            action = spec.get("httpGet") or spec.get("tcpSocket") or spec.get("grpc")
            port = (action or {}).get("port")
            # A string is a port name to the API (IntOrString), even "8080": quoted digits name no port.
            if isinstance(port, str) and port not in _declared_port_names(c):
                quoted = " (a quoted number is a port name to the API; write it unquoted)" if port.isdigit() else ""
                out.append(f"container {c.get('name')}: {probe} uses port {port!r}, which the container does not "
                           f"declare (declared: {sorted(_declared_port_names(c)) or 'none'}){quoted}")
    return out


def check_resources(obj: Obj) -> list[str]:
    out = []
    for c in obj.containers():
        res = c.get("resources") or {}
        missing = [f"{kind}.{r}" for kind in ("requests", "limits") for r in ("cpu", "memory")
                   if r not in (res.get(kind) or {})]
        if missing:
            out.append(f"container {c.get('name')}: expected resources {', '.join(missing)}; "
                       f"found {dict(res) or 'none'}")
    return out


def check_security_context(obj: Obj) -> list[str]:
    pod = obj.pod_spec() or {}
    psc = pod.get("securityContext") or {}
    out = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            out.append(f"pod spec: {flag}: true; expected false")
    for v in pod.get("volumes") or []:
        if "hostPath" in v:
            out.append(f"volume {v.get('name')}: hostPath {v['hostPath'].get('path')!r}; expected no host paths")
    for c in obj.containers():
        sc = c.get("securityContext") or {}
        name = f"container {c.get('name')}"
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot is not true (pod or container); expected true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0 (root); expected a non-zero uid")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation is {sc.get('allowPrivilegeEscalation')!r}; expected false")
        if sc.get("privileged"):
            out.append(f"{name}: privileged: true; expected false")
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("hostPort"):
                out.append(f"{name}: port {p.get('name') or p.get('containerPort')} hostPort {p['hostPort']}; "
                           "expected none (a host port bypasses Services and NetworkPolicies)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities.drop is {caps.get('drop')!r}; expected it to contain ALL")
        added = [a for a in caps.get("add") or [] if a != "NET_BIND_SERVICE"]
        if added:
            out.append(f"{name}: capabilities.add {added}; expected none (NET_BIND_SERVICE at most)")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile type {seccomp!r}; expected RuntimeDefault (pod or container)")
    return out


# A value that is not a secret although its key sounds like one: a reference, a placeholder, a flag, a file path.
_NOT_A_SECRET = re.compile(r"(?i)^(|true|false|yes|no|on|off|null|none|\$.*|\{\{.*|__\w+\{.*|/.*|\d{1,5})$")
_FILE_KEY = re.compile(r"(?i)(_file|_path|-file|-path|file|path|dir|secretname|secretref|keyref|length|ttl)$")
_KEY_VALUE = re.compile(r"^\s*[\"']?(?P<key>[\w.-]+)[\"']?\s*[=:]\s*[\"']?(?P<value>[^\"'#,;\s]*)")


def _config_secret_literals(obj: Obj) -> list[str]:
    """Secret-looking literals in a ConfigMap: a key named like a credential with a value, or such a `key: value`
    / `key = value` line in a file it holds (a Secret is where they belong)."""
    out = []
    for key, text in (obj.body.get("data") or {}).items() if isinstance(obj.body.get("data"), dict) else []:
        lines = str(text).splitlines() if "\n" in str(text) else [f"{key}: {text}"]
        for n, line in enumerate(lines, 1):
            hit = _KEY_VALUE.match(line)
            if hit and SECRET_NAME.search(hit.group("key")) and not _FILE_KEY.search(hit.group("key")) \
                    and not _NOT_A_SECRET.match(hit.group("value")):
                where = f"key {key}" + (f" line {n}" if len(lines) > 1 else "")
                out.append(f"{where}: {hit.group('key')} has a literal value (not shown); expected it in a Secret")
    return out


def check_no_secret_literals(obj: Obj) -> list[str]:
    if obj.kind == "ConfigMap":
        return _config_secret_literals(obj)
    out = []
    for c in obj.containers():
        name = f"container {c.get('name')}"
        for e in c.get("env") or []:
            value = e.get("value")
            if value and SECRET_NAME.search(str(e.get("name", ""))) and not str(value).startswith("$("):
                out.append(f"{name}: env {e.get('name')} has a literal value; expected valueFrom.secretKeyRef")
        words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
        for i, w in enumerate(words):
            for m in _SECRET_ASSIGN.finditer(w):
                out.append(f"{name}: argument contains a secret-looking literal {m.group(0)[:40]!r}; expected a "
                           "reference to an environment variable fed from a Secret")
            if URL_PASSWORD.search(w):
                out.append(f"{name}: argument has a password in a URL ({w[:60]!r}); expected it from a Secret")
            if _SECRET_FLAG.match(w) and i + 1 < len(words) and not words[i + 1].startswith(("$", "-")):
                out.append(f"{name}: {w} is followed by the literal {words[i + 1][:20]!r}; expected a Secret")
    return out


def pod_volumes(obj: Obj) -> dict[str, dict[str, Any]]:
    """Volume name -> volume of the pod spec, with a StatefulSet's claim templates as volumes of their own."""
    volumes = (obj.pod_spec() or {}).get("volumes")
    vols = {str(v.get("name")): v for v in volumes if isinstance(v, dict)} if isinstance(volumes, list) else {}
    spec = obj.body.get("spec")
    templates = spec.get("volumeClaimTemplates") if obj.kind == "StatefulSet" and isinstance(spec, dict) else None
    for t in templates if isinstance(templates, list) else []:
        meta = t.get("metadata") if isinstance(t, dict) else None
        if isinstance(meta, dict):
            vols[str(meta.get("name"))] = {"volumeClaimTemplate": t}
    return vols


def stateful_path(obj: Obj, stateful_images: Mapping[str, str]) -> tuple[str, str] | None:
    """(container, data path) when a container runs an image known to keep state, else None."""
    for c in obj.containers(init=False):
        repo = image_name(str(c.get("image", "")))
        if repo in stateful_images:
            return str(c.get("name")), stateful_images[repo]
    return None


def check_rwo_recreate(obj: Obj, m: Manifests) -> list[str]:
    if obj.kind != "Deployment":
        return []
    rwo = []
    for v in pod_volumes(obj).values():
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        pvc = m.get("PersistentVolumeClaim", obj.namespace, str(claim))
        modes = ((pvc.body.get("spec") or {}).get("accessModes") or []) if pvc else ["ReadWriteOnce (assumed)"]
        if any(str(mode).startswith(("ReadWriteOnce", "ReadWriteOncePod")) for mode in modes):
            rwo.append(str(claim))
    spec = obj.body.get("spec") or {}
    # null is absent to the API: it defaults strategy.type to RollingUpdate and replicas to 1.
    strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"
    replicas = replica_count(obj)
    out = []
    if rwo and strategy != "Recreate":
        out.append(f"mounts ReadWriteOnce claim(s) {rwo} with strategy {strategy}; expected Recreate (a rolling "
                   "update starts the new pod while the old one holds the volume)")
    if rwo and replicas is None:
        out.append(f"replicas {spec.get('replicas')!r} is not a whole number; expected 1 (it mounts ReadWriteOnce "
                   f"claim(s) {rwo})")
    elif rwo and replicas is not None and replicas > 1:
        out.append(f"mounts ReadWriteOnce claim(s) {rwo} with {replicas} replicas; expected 1")
    return out


def replica_count(obj: Obj) -> int | None:
    """spec.replicas as the API reads it: absent or null is 1; None when it is no whole number (the API rejects
    a string, a fraction or a boolean)."""
    spec = obj.body.get("spec")
    value = spec.get("replicas") if isinstance(spec, dict) else None
    if value is None:
        return 1
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _near(name: str, names: list[str]) -> str | None:
    """The one of `names` one character edit away from `name` (a typo), if any. Not further: an optional object may
    be one the operator adds (`grafana-dashboards-extra`), and its name may resemble one of ours."""
    def distance(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]
    close = sorted((distance(name, n), n) for n in names if n != name and abs(len(n) - len(name)) <= 1)
    return close[0][1] if close and close[0][0] <= 1 else None


def check_references(obj: Obj, m: Manifests) -> list[str]:
    """Every ConfigMap, Secret (and key) and PVC a pod references exists; a reference marked optional that can
    never resolve in this set (the object is here without the key, or only a near name of it is) is a finding too:
    the kubelet starts the container without the value, so `optional: true` hides the misspelling. A Secret value
    a container takes (a key reference, the items of a volume, or a whole Secret as envFrom or volume) is not
    empty: a blank credential fails at the first login, or worse, is accepted."""
    from indmlops.checks.static.apps import decoded  # apps reads image names from here

    ns, out = obj.namespace, []

    def need(kind: str, name: Any, where: str, key: Any = None, optional: Any = False, items: Any = None,
             whole: bool = False) -> None:
        if not name:
            return
        found = m.get(kind, ns, str(name))
        if not found:
            if not optional:
                out.append(f"{where}: {kind} {ns}/{name} does not exist in the manifests")
            # A generated object is named in the sources without its hash (kustomize adds it where a name matches).
            elif near := _near(str(name), [n for o in m.of_kind(kind) if o.namespace == ns
                                           for n in {o.name, o.display_name}]):
                out.append(f"{where}: optional {kind} {ns}/{name} does not exist, but {kind} {ns}/{near} does: "
                           "`optional: true` hides a misspelt name (the container starts without it)")
            return
        if kind not in ("Secret", "ConfigMap"):
            return
        keys = set(found.body.get("data") or {}) | set(found.body.get("stringData") or {}) \
            | set(found.body.get("binaryData") or {})
        # A volume's items project chosen keys: a missing one keeps the pod from starting, like a key ref's.
        wanted = ([] if key is None else [key]) + [i.get("key") for i in items or [] if isinstance(i, dict)]
        for k in wanted:
            if str(k) in keys:
                continue
            hidden = ("; `optional: true` hides it: the container starts without it" if optional else "")
            out.append(f"{where}: {kind} {ns}/{name} has no key {k!r} (keys: {sorted(keys)}){hidden}")
        if kind == "Secret":
            taken = [str(k) for k in wanted] if wanted else (sorted(keys) if whole else [])
            # An undecodable value is field-values' finding (the API rejects it), not a blank one.
            out.extend(f"{where}: Secret {ns}/{name} key {k!r} is empty: a blank credential (set a value)"
                       for k in taken if k in keys and (value := decoded(found, k)) is not None and not value.strip())

    claims = {str((t.get("metadata") or {}).get("name"))
              for t in (obj.body.get("spec") or {}).get("volumeClaimTemplates") or []}
    for v in (obj.pod_spec() or {}).get("volumes") or []:
        where = f"volume {v.get('name')}"
        if "configMap" in v:
            need("ConfigMap", v["configMap"].get("name"), where, optional=v["configMap"].get("optional"),
                 items=v["configMap"].get("items"))
        if "secret" in v:
            need("Secret", v["secret"].get("secretName"), where, optional=v["secret"].get("optional"),
                 items=v["secret"].get("items"), whole=True)
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"].get("claimName") not in claims:
            need("PersistentVolumeClaim", v["persistentVolumeClaim"].get("claimName"), where)
        for src in (v.get("projected") or {}).get("sources") or []:
            for kind, field in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if kind in src:
                    need(field, src[kind].get("name"), where, optional=src[kind].get("optional"),
                         items=src[kind].get("items"), whole=True)
    for c in obj.containers():
        cname = f"container {c.get('name')}"
        for ef in c.get("envFrom") or []:
            if "configMapRef" in ef:
                need("ConfigMap", ef["configMapRef"].get("name"), cname, optional=ef["configMapRef"].get("optional"))
            if "secretRef" in ef:
                need("Secret", ef["secretRef"].get("name"), cname, optional=ef["secretRef"].get("optional"),
                     whole=True)
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if ref in vf:
                    need(kind, vf[ref].get("name"), f"{cname} env {e.get('name')}", vf[ref].get("key"),
                         vf[ref].get("optional"))
    for s in (obj.pod_spec() or {}).get("imagePullSecrets") or []:
        need("Secret", s.get("name"), "imagePullSecrets")
    account = (obj.pod_spec() or {}).get("serviceAccountName") or (obj.pod_spec() or {}).get("serviceAccount")
    if account and account != "default":
        need("ServiceAccount", account, "serviceAccountName")
    return out
