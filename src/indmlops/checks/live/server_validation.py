"""Server-side validation: the cluster's API server judges each rendered object (server-side apply, dryRun=All),
so what only a real server knows — its version's APIs, its Service and node-port ranges, its admission — is
checked too. Nothing is stored."""

from __future__ import annotations

from indmlops.manifests import Obj
from indmlops.targets.base import DryRunVerdict, Target

WHY = {
    "rejected": "the API server rejects it",
    "not-served": "this cluster does not serve its API",
    "not-judged": "the API server could not judge it (not a pass)",
}


def declared_namespaces(objects: list[Obj]) -> frozenset[str]:
    return frozenset(o.name for o in objects if o.kind == "Namespace")


def object_accepted(target: Target, obj: Obj, *, declared: frozenset[str]) -> DryRunVerdict:
    """The verdict when accepted; else AssertionError naming the object, its file, why and each field cause."""
    verdict = target.server_dry_run(obj.body, declared)
    if verdict.accepted:
        return verdict
    causes = "".join(f"\n  - {c}" for c in verdict.causes)
    raise AssertionError(
        f"{obj.ref} ({obj.source}): {WHY.get(verdict.outcome, verdict.outcome)}: {verdict.detail}{causes}\n"
        f"expected: accepted by a server-side dry run; reproduce: kubectl apply --server-side --dry-run=server "
        f"-f <the rendered object> (the object is as rendered from {obj.source})")
