"""The durability check compares the storage identity the target reports before and after a kill: a replacement
bound to a different claim (a fresh, empty volume) fails it, whatever content checks say."""

from __future__ import annotations

import time

import pytest

from indmlops.checks.live.durability import ContentLost, content_survives_kill
from indmlops.errors import NotSupportedByTarget
from indmlops.targets.base import KillEvidence, ReadyEvidence


class StandIn:
    """Only what content_survives_kill asks of a target when no content kind is written."""

    name = "stand-in"

    def __init__(self, volumes: list[str] | None) -> None:
        self.volumes = volumes
        self.killed = False

    def wait_ready(self, component, timeout):
        return ReadyEvidence(component, "uid-new" if self.killed else "uid-old", 0.1, "ready")

    def identity(self, component):
        return "uid-new" if self.killed else "uid-old"

    def kill(self, component):
        self.killed = True
        return KillEvidence(component, "uid-old", "pod delete", time.time())

    def volume_identity(self, component):
        if self.volumes is None:
            raise NotSupportedByTarget(self.name, "volume identity", "no claims here")
        return self.volumes.pop(0)


def test_same_claim_after_the_kill_is_recorded():
    out = content_survives_kill(StandIn(["it-core/minio-data", "it-core/minio-data"]), "s3", kinds=[], timeout=5)
    assert out.volume == "same (it-core/minio-data)" and not out.failures


def test_replacement_on_another_claim_fails_naming_both():
    with pytest.raises(ContentLost, match=r"s3: the replacement mounts volume it-core/minio-data-2, before the kill "
                                          r"it-core/minio-data: not the same claim"):
        content_survives_kill(StandIn(["it-core/minio-data", "it-core/minio-data-2"]), "s3", kinds=[], timeout=5)


def test_target_without_volume_identity_says_it_was_not_compared():
    out = content_survives_kill(StandIn(None), "s3", kinds=[], timeout=5)
    assert out.volume.startswith("not compared (stand-in target")
