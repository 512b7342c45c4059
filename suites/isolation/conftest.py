"""Wiring of the live isolation suite: the enforcement canary once, then one observation of the whole matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops import intent as fixtures
from indmlops.checks.live import isolation as isolation_live
from indmlops.checks.static.ipblocks import ClusterNetworks
from indmlops.errors import IsolationNotEnforced, NotSupportedByTarget
from indmlops.plugin import option
from indmlops.targets.base import EnforcementEvidence


@pytest.fixture(scope="session")
def network_policy_enforced(target, pytestconfig) -> EnforcementEvidence:
    """The canary's evidence; a cluster that ignores NetworkPolicy fails the suite (or, with --allow-unenforced,
    skips it): observations of an unenforcing network would pass or fail by accident."""
    try:
        return target.enforcement_canary(isolation_live.CANARY_TIMEOUT)
    except NotSupportedByTarget as exc:  # a session fixture caches its skip: every test here says why
        pytest.skip(f"{exc} (choose a target that supports it with --target)")
    except IsolationNotEnforced as exc:
        if option(pytestconfig, "allow_unenforced"):
            pytest.skip(f"{exc} (skipped: --allow-unenforced)")
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def reachability_observed(target, network_policy_enforced, static_manifests, isolation_intent,
                          pytestconfig) -> isolation_live.LiveMatrix:
    """Every cell of the static matrix probed on the target; kept under reports/isolation/ pass or fail."""
    # The static column judges ipBlocks against the cluster networks the static suite uses (fixtures/static.yaml).
    networks = ClusterNetworks.parse(fixtures.load("static")["cluster_networks"], "fixtures/static.yaml")
    live = isolation_live.observe(target, static_manifests, isolation_intent, networks=networks)
    header = (f"live reachability on the {target.name} target of {static_manifests.root}, intent "
              f"{isolation_intent.source if isolation_intent else 'none'}; enforcement canary: "
              f"{network_policy_enforced.before}, then {network_policy_enforced.after}")
    where = isolation_live.write_report(live, Path(option(pytestconfig, "reports_dir")) / "isolation", header)
    print(f"{header}\n{live.table()}\n(kept under {where})")
    return live
