"""Wiring of addresses (class 2): every address an application is told resolves to a Service of the right
namespace, on a port it exposes, forwarding to a port the selected container declares, where the application
listens (not on loopback), speaks the protocol the client expects, and accepts the host name the client uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import yaml

from indmlops.checks.static.apps import UNKNOWN, Apps, Running, decoded, is_loopback, keys_of, running, split_hostport
from indmlops.checks.static.object_rules import prometheus_configs, selected_templates
from indmlops.checks.static.pod_values import is_ip
from indmlops.manifests import Manifests, Obj

_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?:[^@/]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)(?::(?P<port>\d+))?")
_MOSQUITTO_LISTENER = re.compile(r"(?P<port>\d+)(?:\s+(?P<host>\S+))?")
_ANY_URL = re.compile(r"(?<![\w.+-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://[^\s'\"<>`]+")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:.]+\]")
# A cluster DNS name wherever it appears in a string: <service>.<namespace>.svc[.cluster.local][:port].
_SVC_NAME = re.compile(r"(?<![\w.-])(?P<svc>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
                       r"\.svc(?:\.cluster\.local)?\.?(?![\w-])(?::(?P<port>\d+))?")


@dataclass(frozen=True)
class Listener:
    hosts: tuple[str, ...]
    port: int
    protocol: str
    how: str  # the setting that made it, or "default"

    @property
    def loopback_only(self) -> bool:
        return all(is_loopback(h) for h in self.hosts)


@dataclass(frozen=True)
class Address:
    text: str
    where: str  # the setting or key it was found in
    host: str
    port: int | None
    protocol: str | None  # what the client expects to find there (None when found by a scan of any string)


def listeners(r: Running) -> tuple[list[Listener], bool]:
    """Where the application listens, and whether every listen setting could be read (False: a value comes from
    an object the set does not hold, so what is not found cannot be called missing)."""
    out, complete = [], True
    for spec in r.app.entries("listen"):
        protocol = str(spec.get("protocol", ""))
        dhost, dport = split_hostport(str(spec.get("default", "")))
        if isinstance(spec.get("address"), dict):
            values = r.values(spec["address"])
            if UNKNOWN in values:
                complete = False
                continue
            if not values and dport is not None:
                out.append(Listener((dhost,), dport, protocol, "default"))
            for v in values:
                mosq = _MOSQUITTO_LISTENER.fullmatch(v.strip())  # Mosquitto's `listener PORT [HOST]`
                host, port = (mosq.group("host") or "", int(mosq.group("port"))) if mosq else split_hostport(v)
                if port is None:
                    port = dport
                if port is not None:
                    out.append(Listener((str(host),), port, protocol, r.described(spec["address"])))
            continue
        host_v = r.value(spec["host"]) if isinstance(spec.get("host"), dict) else None
        port_v = r.value(spec["port"]) if isinstance(spec.get("port"), dict) else None
        if UNKNOWN in (host_v, port_v):
            complete = False
            continue
        hosts = tuple(h.strip() for h in host_v.strip("'\"").split(",")) if host_v is not None else (dhost,)
        port = int(port_v) if port_v is not None else dport
        how = ", ".join(r.described(spec[k]) for k, v in (("host", host_v), ("port", port_v)) if v is not None)
        if port is not None:
            out.append(Listener(hosts, port, protocol, how or "default"))
    return out, complete


def _client_addresses(r: Running, scheme_ports: dict[str, int]) -> list[Address]:
    out = []
    for spec in r.app.entries("clients"):
        protocol = str(spec.get("protocol", "")) or None
        if isinstance(spec.get("address"), dict):
            for v in r.values(spec["address"]):
                if v != UNKNOWN and v.strip():
                    out.append(parse_address(v, r.described(spec["address"]), protocol, scheme_ports))
        elif isinstance(spec.get("host"), dict):
            host, port = r.value(spec["host"]), r.value(spec["port"]) if isinstance(spec.get("port"), dict) else None
            if host and host != UNKNOWN and port != UNKNOWN:
                where = r.described(spec["host"]) + (f" + {r.described(spec['port'])}" if port else "")
                out.append(Address(f"{host}:{port}" if port else host, where, host,
                                   int(port) if port else scheme_ports.get(protocol or ""), protocol))
    return out


def unset_clients(obj: Obj, m: Manifests, apps: Apps) -> list[str]:
    """Client settings marked `required` that the container leaves unset (the application would connect to its
    built-in default: a local file store, AWS, the developer's machine), and URLs of a scheme that does not speak
    the protocol the setting is for (`sqlite:///mlflow.db` where PostgreSQL is meant: a file in the container)."""
    out = []
    for r in running(obj, m, apps) if obj.pod_spec() is not None else []:
        for spec in r.app.entries("clients"):
            schemes = apps.protocol_schemes.get(str(spec.get("protocol")), ())
            for v in r.values(spec["address"]) if isinstance(spec.get("address"), dict) and schemes else []:
                url = _URL.match(v.strip())
                if url and url.group("scheme").lower() not in schemes:
                    out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(spec['address'])} is a "
                               f"{url.group('scheme')}: URL; expected the stack's {spec.get('protocol')} service "
                               f"({', '.join(s + ':' for s in schemes)})")
            setting = spec.get("address") if isinstance(spec.get("address"), dict) else spec.get("host")
            if spec.get("required") and isinstance(setting, dict) and not r.values(setting):
                fallback = f" and falls back to {spec['unset']}" if spec.get("unset") else ""
                out.append(f"container {r.c.get('name')} ({r.app.name}): {r.described(setting)} is not set{fallback}; "
                           f"expected the address of the stack's {spec.get('protocol')} service")
    return out


def parse_address(text: str, where: str, protocol: str | None, scheme_ports: dict[str, int]) -> Address:
    """A URL (`scheme://user@host:port/path`) or `host:port`; the port of the scheme (or protocol) when absent."""
    url = _URL.match(text.strip())
    if url:
        host, port = url.group("host").strip("[]"), int(url.group("port")) if url.group("port") else None
        scheme = url.group("scheme").split("+")[0].lower()
        return Address(text, where, host, port if port is not None else scheme_ports.get(scheme), protocol)
    try:
        host, port = split_hostport(text)
    except ValueError:
        host, port = text, None
    return Address(text, where, host, port if port is not None else scheme_ports.get(protocol or ""), protocol)


def _strings(obj: Obj, m: Manifests) -> list[tuple[str, str]]:
    """(where, text) of every string an object hands an application: env values, command and args of a workload,
    the values of a ConfigMap or Secret (decoded). Prometheus configs are left to the scrape-target rule."""
    if obj.kind in ("ConfigMap", "Secret"):
        scrape = {key for cm, key, _ in prometheus_configs(m) if cm is obj}
        return [(f"key {k}", text) for k in keys_of(obj) if k not in scrape and (text := decoded(obj, k))]
    out = []
    for c in obj.containers():
        name = c.get("name")
        out += [(f"container {name} {key}", str(w)) for key in ("command", "args")
                if isinstance(c.get(key), list) for w in c[key]]
        out += [(f"container {name} env {e.get('name')}", str(e["value"])) for e in c.get("env") or []
                if isinstance(e, dict) and e.get("value") is not None]
    return out


def _scanned(where: str, text: str, scheme_ports: dict[str, int], keys: frozenset[str]) -> list[Address]:
    """Addresses in any string, whatever application reads it: cluster DNS names (`svc.ns.svc[:port]`), URLs, and
    in a JSON or YAML document the values of address-carrying keys (`url`, `host`, `broker`, … with a sibling
    `port`). Templated values (`${VAR}`, `{{ }}`) are not addresses yet."""
    out = [Address(hit.group(0), where, f"{hit.group('svc')}.{hit.group('ns')}.svc",
                   int(hit.group("port")) if hit.group("port") else None, None) for hit in _SVC_NAME.finditer(text)]
    out += [parse_address(hit.group(0), where, None, scheme_ports) for hit in _ANY_URL.finditer(text)
            if hit.group("scheme").split("+")[0].lower() in scheme_ports]  # not s3://bucket, file://path
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None
        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack += node
            elif isinstance(node, dict):
                stack += list(node.values())
                port = node.get("port")
                for k, v in node.items():
                    if str(k).lower() in keys and isinstance(v, str) and v and not any(t in v for t in ("${", "{{")):
                        a = parse_address(v, f"{where} {k}", None, scheme_ports)
                        if a.port is None and str(port).isdigit():
                            a = Address(f"{v} (port {port})", a.where, a.host, int(str(port)), None)
                        out.append(a)
    return out


def addresses(obj: Obj, m: Manifests, apps: Apps) -> list[Address]:
    """The addresses an object gives: its applications' client settings, then those in any string it carries;
    one per (target, port), leaving out the object's own Service (an allow-list, an advertised URL) and the host
    names the pod maps itself (hostAliases)."""
    found: list[Address] = []
    if obj.pod_spec() is not None:
        for r in running(obj, m, apps):
            found += _client_addresses(r, apps.scheme_ports)
    for where, text in _strings(obj, m):
        found += _scanned(where, text, apps.scheme_ports, apps.address_keys)
    own_ns, namespaces = obj.namespace or "default", _namespaces(m)
    aliases = {str(h) for a in (obj.pod_spec() or {}).get("hostAliases") or [] if isinstance(a, dict)
               for h in a.get("hostnames") or []}
    seen, out = set(), []
    for a in found:
        target = _service_of(a.host, own_ns, namespaces)
        svc = m.get("Service", target[1], target[0]) if target else None
        key = (target or a.host, a.port)
        if key in seen or a.host in aliases or not _HOST.fullmatch(a.host) \
                or (a.protocol is None and svc is not None and obj in selected_templates(svc, m)):
            continue  # seen, mapped by the pod, a path or an id rather than a host, or its own Service
        if target is None and not (is_loopback(a.host) and obj.pod_spec() is not None and a.protocol):
            continue  # an external name or an IP: not the manifests' to resolve
        seen.add(key)
        out.append(a)
    return out


def _namespaces(m: Manifests) -> set[str]:
    return {o.name for o in m.of_kind("Namespace")} | {str(o.namespace) for o in m.objects if o.namespace}


def _service_of(host: str, own_ns: str, namespaces: set[str]) -> tuple[str, str] | None:
    """(service, namespace) a host name resolves to inside the cluster, None for an external name or an IP."""
    h = host.lower().rstrip(".")
    for suffix in (".svc.cluster.local", ".svc"):
        if h.endswith(suffix):
            parts = h[: -len(suffix)].split(".")
            return (parts[0], parts[1]) if len(parts) == 2 else None
    if is_ip(h):
        return None
    parts = h.split(".")
    if len(parts) == 1 and h and not is_loopback(h):
        return h, own_ns
    if len(parts) == 2 and parts[1] in namespaces:
        return parts[0], parts[1]
    return None


def _declares(c: dict[str, Any], target: Any) -> int | None:
    for p in c.get("ports") or []:
        if isinstance(p, dict) and ((isinstance(target, str) and not target.isdigit() and p.get("name") == target)
                                    or str(p.get("containerPort")) == str(target)):
            return int(p["containerPort"])
    return None


def _allowed(app_hosts: str, host: str, port: int | None) -> bool:
    patterns = [p.strip() for p in app_hosts.split(",") if p.strip()]
    return any(fnmatchcase(f"{host}:{port}", p) or (":" not in p and fnmatchcase(host, p)) for p in patterns)


def _judge(a: Address, obj: Obj, m: Manifests, apps: Apps, namespaces: set[str]) -> list[str]:
    own_ns = obj.namespace or "default"
    head = f"{a.where}: {a.text!r}"
    if is_loopback(a.host) and obj.pod_spec() is not None and a.port is not None:
        bound = [ls for r in running(obj, m, apps) for ls in listeners(r)[0] if ls.port == a.port]
        declared = [c for c in obj.containers(init=False) if _declares(c, a.port)]
        return [] if bound or declared else [
            f"{head} is loopback, and no container of this pod listens on {a.port}: a Service address is needed"]
    target = _service_of(a.host, own_ns, namespaces)
    if target is None:
        return []
    name, ns = target
    svc = m.get("Service", ns, name)
    if svc is None:
        have = sorted(s.name for s in m.of_kind("Service") if s.namespace == ns)
        elsewhere = sorted(str(s.namespace) for s in m.of_kind("Service") if s.name == name)
        hint = f"; a Service {name} exists in namespace {', '.join(elsewhere)}" if elsewhere else ""
        return [f"{head} names Service {ns}/{name}, which is not in the manifests (Services in {ns}: "
                f"{have or 'none'}){hint}"]
    ports = [p for p in (svc.body.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    if a.port is None:
        return []
    sp = next((p for p in ports if str(p.get("port")) == str(a.port)), None)
    if sp is None:
        return [f"{head}: Service {ns}/{name} ({svc.source}) exposes ports {[p.get('port') for p in ports]}, "
                f"not {a.port}"]
    target_port = sp.get("targetPort", sp.get("port"))
    out, reached = [], False
    for w in selected_templates(svc, m):
        for c in w.containers(init=False):
            number = _declares(c, target_port)
            if number is None:
                continue
            reached = True
            app = apps.of(c)
            if app is None:
                continue
            r = Running(w, c, app, m)
            found, complete = listeners(r)
            at = [ls for ls in found if ls.port == number]
            if not at:
                if complete and found:
                    out.append(f"{head} reaches {w.ref} container {c.get('name')} port {number}, where {app.name} "
                               f"does not listen (it listens on {sorted({ls.port for ls in found})})")
                continue
            if a.protocol and at[0].protocol and at[0].protocol != a.protocol:
                out.append(f"{head} expects {a.protocol}, but reaches {w.ref} container {c.get('name')} port "
                           f"{number}, where {app.name} speaks {at[0].protocol}")
            allow = app.setting("allowed_hosts")
            hosts = r.value(allow) if allow else None
            if allow and w is not obj and hosts not in (None, UNKNOWN) and not _allowed(str(hosts), a.host, a.port):
                out.append(f"{head}: {app.name} in {w.ref} refuses Host {a.host}:{a.port} (its "
                           f"{r.described(allow)} allows {hosts!r})")
    if not reached:
        out.append(f"{head}: Service {ns}/{name} port {a.port} forwards to {target_port!r}, which no container it "
                   f"selects declares (selected: {[w.ref for w in selected_templates(svc, m)] or 'none'})")
    return out


def check_addresses(obj: Obj, m: Manifests, apps: Apps) -> list[str]:
    namespaces = _namespaces(m)
    judged = [p for a in addresses(obj, m, apps) for p in _judge(a, obj, m, apps, namespaces)]
    return unset_clients(obj, m, apps) + judged


def check_binds(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """Every port a container declares is one its application listens on, on an address other pods reach."""
    out = []
    for r in running(w, m, apps):
        found, complete = listeners(r)
        for p in r.c.get("ports") or []:
            if not isinstance(p, dict) or str(p.get("protocol", "TCP")) != "TCP":
                continue
            number, label = p.get("containerPort"), f"port {p.get('name') or p.get('containerPort')}"
            at = [ls for ls in found if str(ls.port) == str(number)]
            if not at:
                if complete and r.app.entries("listen"):
                    shown = ", ".join(f"{'/'.join(ls.hosts) or '*'}:{ls.port} ({ls.how})" for ls in found) or "nothing"
                    out.append(f"container {r.c.get('name')} {label}: declares {number}, but {r.app.name} listens "
                               f"on {shown}")
            elif all(ls.loopback_only for ls in at):
                out.append(f"container {r.c.get('name')} {label}: {r.app.name} listens on "
                           f"{'/'.join(at[0].hosts)}:{number} ({at[0].how}) only, which the Service, the kubelet's "
                           "probes and other pods cannot reach; expected 0.0.0.0 (every interface)")
    return out


def check_app_protocols(svc: Obj, m: Manifests, apps: Apps) -> list[str]:
    """A Service port's `appProtocol`, when set, names the protocol the application listening behind it speaks."""
    out = []
    for sp in (svc.body.get("spec") or {}).get("ports") or []:
        named = sp.get("appProtocol") if isinstance(sp, dict) else None
        if not named:
            continue
        target = sp.get("port") if sp.get("targetPort") is None else sp.get("targetPort")
        for w in selected_templates(svc, m):
            for r in running(w, m, apps):
                number = _declares(r.c, target)
                for ls in listeners(r)[0] if number is not None else []:
                    allowed = apps.app_protocol_names(ls.protocol)
                    if ls.port == number and str(named).lower() not in allowed:
                        out.append(f"port {sp.get('name') or sp.get('port')}: appProtocol {named!r}, but {w.ref} "
                                   f"container {r.c.get('name')} ({r.app.name}) speaks {ls.protocol} there "
                                   f"(appProtocol names for it: {', '.join(allowed)}; or leave it unset)")
    return out
