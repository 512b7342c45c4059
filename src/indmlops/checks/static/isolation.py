"""Isolation intent (fixtures/isolation/intent.yaml) and its comparison with the computed reachability matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indmlops.checks.static.ipblocks import ClusterNetworks, pod_matching_peers
from indmlops.checks.static.netpol import Cell, Pod, Port, format_matrix, matrix, parse_policy, selector_matches
from indmlops.intent import read_yaml
from indmlops.manifests import Manifests, Obj


class IntentError(ValueError):
    """The intent file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    labels: dict[str, str]
    external: bool = False
    ports: tuple[Port, ...] = ()
    source: bool = False  # an external workload whose outgoing connections are evaluated too
    ip: str | None = None  # an endpoint outside the cluster

    def pod(self) -> Pod:
        return Pod(self.name, self.namespace, self.labels, self.ports, self.ip)


# Judged for every manifest set, intent or not: a pod of a namespace the manifests do not define (its own
# egress unrestricted), and an address outside the cluster (TEST-NET-2, RFC 5737) on HTTPS.
DEFAULT_EXTERNALS = (
    Workload("cluster/other-namespace-pod", "indmlops-elsewhere", {}, external=True, source=True),
    Workload("internet", "", {}, external=True, ports=(Port(443),), ip="198.51.100.7"),
)


@dataclass(frozen=True)
class Intent:
    source: str
    workloads: dict[str, Workload]
    allow: tuple[dict[str, Any], ...]


def load_intent(path: str | Path) -> Intent:
    """The intent file; IntentError (naming the file) when it is missing, unreadable or not an intent."""
    p = Path(path)
    try:
        doc = read_yaml(p, missing=IntentError, malformed=IntentError)
    except OSError as exc:  # a directory, no permission
        raise IntentError(f"intent file {p} cannot be read: {exc.strerror or exc}") from None
    try:
        if isinstance(doc, dict) and "extends" in doc:
            return _extended(doc, p)
        return parse_intent(doc, str(p))
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        if isinstance(exc, IntentError):
            raise
        raise IntentError(f"{p}: not an isolation intent: a value has an unexpected type or shape "
                          f"({type(exc).__name__}: {exc})") from None


def _extended(doc: dict, path: Path) -> Intent:
    """`extends: FILE` (relative to this file) with `absent: [workload, ...]`, the base intent for a deployment that
    leaves those workloads out (their flows are not expected, in either direction), and `allow: [...]`, flows it
    adds (entries as the base's)."""
    if doc.get("version") != 1:
        raise IntentError(f"{path}: expected a mapping with version: 1")
    unknown = set(doc) - {"version", "extends", "absent", "allow"}
    if unknown:
        raise IntentError(f"{path}: an intent that extends another takes only version, extends, absent and allow "
                          f"(found {', '.join(sorted(unknown))})")
    base = load_intent((path.parent / str(doc["extends"])).resolve())
    absent = [str(a) for a in doc.get("absent") or []]
    missing = [a for a in absent if a not in base.workloads]
    if missing:
        raise IntentError(f"{path}: absent names workloads {base.source} does not have: {', '.join(missing)}")
    workloads = {k: w for k, w in base.workloads.items() if k not in absent}
    kept = [a for a in base.allow if a["from"] not in absent and a["to"] not in absent]
    added = tuple(doc.get("allow") or ())
    _check_allow(added, workloads, str(path))
    return Intent(f"{path} (extends {base.source}, without {', '.join(absent) or 'nothing'})", workloads,
                  tuple(kept) + added)


def parse_intent(doc: Any, source: str) -> Intent:
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise IntentError(f"{source}: expected a mapping with version: 1")
    workloads = {}
    for name, w in (doc.get("workloads") or {}).items():
        if not isinstance(w, dict) or not (("namespace" in w and isinstance(w.get("labels"), dict)) or "ip" in w):
            raise IntentError(f"{source}: workload {name!r} needs namespace and labels (or, outside the cluster, ip)")
        ports = tuple(Port(int(p["port"]), str(p.get("protocol", "TCP"))) for p in w.get("ports") or [])
        workloads[name] = Workload(name, str(w.get("namespace", "")),
                                   {k: str(v) for k, v in (w.get("labels") or {}).items()},
                                   bool(w.get("external") or "ip" in w), ports, bool(w.get("source")),
                                   str(w["ip"]) if "ip" in w else None)
    allow = tuple(doc.get("allow") or ())
    _check_allow(allow, workloads, source)
    return Intent(source, workloads, allow)


def _check_allow(allow: tuple, workloads: dict[str, Workload], source: str) -> None:
    for i, a in enumerate(allow):
        if not isinstance(a, dict) or not {"from", "to", "port"} <= set(a):
            raise IntentError(f"{source}: allow entry {i + 1} needs from, to and port: {a!r}")
        for end in ("from", "to"):
            if a[end] != "*" and a[end] not in workloads:
                raise IntentError(f"{source}: allow entry {i + 1} names unknown workload {a[end]!r} ({end})")


def _ports(obj: Obj) -> tuple[Port, ...]:
    return tuple(Port(int(p["containerPort"]), str(p.get("protocol") or "TCP"), str(p.get("name") or ""))
                 for c in obj.containers(init=False) for p in c.get("ports") or [] if "containerPort" in p)


def pods(m: Manifests, intent: Intent | None = None) -> tuple[list[Pod], list[str]]:
    """One Pod per workload, named by the intent workload whose namespace and labels match its template
    (else `namespace/name`), and the problems of that mapping (intent workloads matching 0 or 2+ templates)."""
    problems: list[str] = []
    names: dict[str, str] = {}
    if intent:
        for w in intent.workloads.values():
            if w.external:
                continue
            hits = [o for o in m.workloads()
                    if o.namespace == w.namespace and selector_matches({"matchLabels": w.labels}, o.pod_labels())]
            if len(hits) != 1:
                problems.append(f"intent workload {w.name} ({w.namespace}, labels {w.labels}) matches "
                                f"{len(hits)} pod templates ({', '.join(o.ref for o in hits) or 'none'}); expected 1")
            for o in hits[:1]:
                names[o.ref] = w.name
    out = [Pod(names.get(o.ref, f"{o.namespace}/{o.name}"), str(o.namespace), o.pod_labels(), _ports(o))
           for o in m.workloads()]
    return out, problems


def computed_matrix(m: Manifests, intent: Intent | None = None, networks: ClusterNetworks | None = None
                    ) -> tuple[dict[Cell, bool], list[str]]:
    workload_pods, problems = pods(m, intent)
    policies = [parse_policy(p.body, str(p.namespace)) for p in m.of_kind("NetworkPolicy")]
    ns_labels = {n.name: dict(n.meta.get("labels") or {}) for n in m.of_kind("Namespace")}
    externals = [w for w in intent.workloads.values() if w.external] if intent else list(DEFAULT_EXTERNALS)
    return matrix(workload_pods, policies, ns_labels, [w.pod() for w in externals if w.ports],
                  [w.pod() for w in externals if w.source], networks), problems


def expected_cells(intent: Intent, sources: list[str]) -> set[Cell]:
    out = set()
    for a in intent.allow:
        for src in (sources if a["from"] == "*" else [a["from"]]):
            out.add(Cell(src, a["to"], int(a["port"]), str(a.get("protocol", "TCP"))))
    return out


def check_isolation(m: Manifests, intent: Intent | None, networks: ClusterNetworks | None = None
                    ) -> tuple[dict[Cell, bool], list[str]]:
    """The computed matrix and what is wrong with it: against the intent cell by cell, or, without intent,
    whether every workload can reach every port of every other. `networks`: the cluster's pod and service
    networks, against which ipBlock peers are judged (None: every ipBlock may match pods)."""
    cells, problems = computed_matrix(m, intent, networks)
    computed = "computed from the NetworkPolicies:\n" + format_matrix(cells) + _ip_block_note(m, networks)
    if intent is None:
        if cells and all(cells.values()):
            problems.append(f"everything can reach everything: all {len(cells)} cells are allowed (no "
                            f"NetworkPolicy restricts any flow); expected default-deny and explicit allows\n{computed}")
        return cells, problems
    external = {w.name for w in intent.workloads.values() if w.external}
    expected = expected_cells(intent, sorted({c.src for c in cells} - external))
    unknown = sorted(str(c) for c in expected - set(cells))
    if unknown:
        problems.append(f"{intent.source} allows cells the manifests do not have (workload missing or port not "
                        f"declared by the destination): {'; '.join(unknown)}")
    problems += check_intent_services(m, intent)
    opened = sorted(str(c) for c, ok in cells.items() if ok and c not in expected)
    closed = sorted(str(c) for c, ok in cells.items() if not ok and c in expected)
    if opened or closed:
        diff = [f"  ALLOWED by policies, intent denies: {c}" for c in opened]
        diff += [f"  DENIED by policies, intent allows: {c}" for c in closed]
        want = "\n".join(f"  {c}" for c in sorted(map(str, expected)))
        problems.append(f"isolation matrix differs from {intent.source} in {len(opened) + len(closed)} cell(s):\n"
                        + "\n".join(diff) + f"\nexpected (intent allows exactly):\n{want}\n{computed}")
    return cells, problems


def _ip_block_note(m: Manifests, networks: ClusterNetworks | None) -> str:
    peers = pod_matching_peers([(p.ref, p.body) for p in m.of_kind("NetworkPolicy")], networks)
    if not peers:
        return ""
    basis = ("each overlaps the cluster's pod network, or in egress its service network" if networks else
             "the cluster's networks are unknown")
    return ("\nipBlock peers counted as matching every pod (pod IPs are not known statically; " + basis + "):\n"
            + "\n".join(f"  {p}" for p in peers))


def check_intent_services(m: Manifests, intent: Intent) -> list[str]:
    """Each `service` the intent names exists in the destination's namespace,
    selects the destination's pods and forwards a port to the allowed one."""
    out = []
    for a in intent.allow:
        if "service" not in a:
            continue
        dst = intent.workloads[a["to"]]
        svc = m.get("Service", dst.namespace, str(a["service"]))
        where = f"{intent.source}: {a['from']} -> {a['to']}:{a['port']} via Service {dst.namespace}/{a['service']}"
        if not svc:
            out.append(f"{where}: no such Service in the manifests")
            continue
        spec = svc.body.get("spec") or {}
        if not spec.get("selector") or not selector_matches({"matchLabels": spec["selector"]}, dst.labels):
            out.append(f"{where}: its selector {spec.get('selector')} does not select {a['to']} ({dst.labels})")
            continue
        templates = [o for o in m.workloads() if o.namespace == dst.namespace
                     and selector_matches({"matchLabels": dst.labels}, o.pod_labels())]
        names = {p.name: p.number for o in templates for p in _ports(o) if p.name}
        # targetPort absent or null forwards to the port number; a string is a name, even "5000" (IntOrString).
        targets = {names.get(t) if isinstance(t, str) else int(t) for p in spec.get("ports") or []
                   for t in [p.get("port") if p.get("targetPort") is None else p["targetPort"]]}
        if int(a["port"]) not in targets:
            out.append(f"{where}: no Service port targets {a['port']} (targets: {sorted(x for x in targets if x)})")
    return out
