"""Model suite: the edge serves the registry's champion, its very bytes, and answers as that model does."""

from __future__ import annotations

import pytest

from indmlops import intent
from indmlops.checks.live import model

pytestmark = pytest.mark.model

PLAN = intent.load("model")


def test_edge_serves_the_version_the_registry_promotes(target):
    print(model.edge_serves_champion(target, name=PLAN["name"], alias=PLAN["alias"]))


def test_edge_serves_the_bytes_of_the_registry_artifact(target):
    print(model.edge_bytes_are_the_registry_artifact(target, name=PLAN["name"], alias=PLAN["alias"]))


def test_edge_follows_the_alias_within_its_bound_and_back(target):
    there, back = model.edge_follows_alias(target, name=PLAN["name"], alias=PLAN["alias"],
                                           bound=PLAN["alias_follow_s"])
    print(f"alias moved to v{there.to_version}: every prediction named it after {there.seconds:.1f} s; moved back to "
          f"v{back.to_version}: {back.seconds:.1f} s (bound {PLAN['alias_follow_s']} s)")


def test_edge_answers_the_golden_set_as_the_registry_model_does_over_mqtt_and_http(target):
    g = PLAN["golden"]
    golden = model.golden_set(seed=g["seed"], machines=g["machines"], per_machine=g["per_machine"],
                              mean_gap_s=g["mean_gap_s"])
    parity = model.serving_parity(target, name=PLAN["name"], alias=PLAN["alias"], golden=golden,
                                  tolerance=PLAN["parity"]["p_fault_tolerance"])
    print(parity.summary())
