"""Live isolation: the cluster enforces NetworkPolicy, and what it lets through is what the intent allows."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.isolation


def test_network_policy_enforced_by_the_cluster(network_policy_enforced):
    evidence = network_policy_enforced
    assert evidence.before and evidence.after, evidence
    print(f"enforcement canary: {evidence.before}; {evidence.after} within {evidence.seconds_to_deny:.1f} s")


def test_observed_reachability_matches_intent_and_static_matrix(reachability_observed):
    from indmlops.checks.live.isolation import verdict

    live = reachability_observed
    assert live.cells, (f"no cell was probed ({len(live.unprobed)} could not be: "
                        f"{'; '.join(f'{c}: {why}' for c, why in live.unprobed[:3])})")
    problems = verdict(live)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
