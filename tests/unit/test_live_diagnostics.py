"""What a live failure says: a loss counted whole, a Node-RED flow compared node by node."""

from __future__ import annotations

import json

import pytest

from indmlops.checks.live.content.base import _lost
from indmlops.checks.live.nodered_flow import FLOWS_FILE, differences


def test_a_loss_message_counts_every_lost_item_and_lists_the_first_eight():
    lost = [f"topic/{i}" for i in range(150)]
    with pytest.raises(AssertionError) as err:
        _lost("queued QoS1 messages", "broker x", lost, [], 200)
    said = str(err.value)
    assert "150 of 200 missing" in said, said  # the count is the whole loss, not the length of the listing
    assert "topic/7'" in said and "topic/8'" not in said, said


def test_no_loss_says_nothing():
    _lost("queued QoS1 messages", "broker x", [], [], 200)


PROJECT = json.loads(FLOWS_FILE.read_text())


def test_the_project_flow_deployed_as_is_has_no_difference_even_when_moved_in_the_editor():
    moved = [{**n, "x": n.get("x", 0) + 40, "y": n.get("y", 0) + 20} for n in PROJECT]
    assert differences(PROJECT, moved) == []


def test_a_node_missing_from_the_deployed_flow_is_named_with_its_type_and_id():
    deployed = [n for n in PROJECT if n.get("type") != "mqtt out"]
    found = differences(PROJECT, deployed)
    assert len(found) == 1 and found[0].startswith("mqtt out 'factory/line-1/plc/heartbeat'"), found
    assert "is not deployed" in found[0]


def test_a_changed_setting_is_named_with_what_is_deployed():
    deployed = [{**n, "func": "return null;"} if n.get("name") == "latest per machine + alarms" else n
                for n in PROJECT]
    found = differences(PROJECT, deployed)
    assert len(found) == 1 and "differs in func: deployed func=\"return null;\"" in found[0], found


def test_nodes_the_deployment_adds_are_not_judged():
    extra = {"id": "site-debug", "type": "debug", "z": PROJECT[0]["id"], "wires": []}
    assert differences(PROJECT, [*PROJECT, extra]) == []


def test_an_empty_deployment_lacks_every_node():
    assert len(differences(PROJECT, [])) == len(PROJECT)
