"""The durability check compares the storage identity the target reports before and after a kill: a replacement
bound to a different claim (a fresh, empty volume) fails it, whatever content checks say."""

from __future__ import annotations

import time

import pytest

from indmlops.checks.live.durability import ContentLost, ContentNotServed, content_survives_kill
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


def _reads(monkeypatch, answers: list[object]) -> list[object]:
    """A content kind 'probe' whose verify answers, in turn, each of `answers` (an exception is raised)."""
    from indmlops.checks.live import durability
    from indmlops.checks.live.content import WRITERS, Content

    def verify() -> int:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return int(answer)  # type: ignore[arg-type]

    monkeypatch.setitem(WRITERS, "probe", lambda target, tag: Content("probe", 3, 30, "the store", verify))
    monkeypatch.setattr(durability, "READ_RETRY_S", 0.01)
    return answers


def test_reads_the_store_fails_after_ready_are_retried_and_recorded_late(monkeypatch):
    from indmlops.checks.live.content.base import Unreadable

    _reads(monkeypatch, [Unreadable("3 of 3 reads failed in the store (InternalError, HTTP 500)"), 3])
    out = content_survives_kill(StandIn(None), "s3", kinds=["probe"], timeout=5)
    assert out.verified == {"probe": 3} and not out.failures and not out.unserved
    assert len(out.late) == 1 and out.late[0].startswith("probe: reads failed for ")
    assert "InternalError" in out.late[0] and "LATE probe: reads failed" in out.summary()


def test_a_store_that_never_serves_after_ready_is_not_served_not_lost(monkeypatch):
    from indmlops.checks.live import durability
    from indmlops.checks.live.content.base import Unreadable

    monkeypatch.setattr(durability, "SERVING_WINDOW_S", 0.05)
    _reads(monkeypatch, [Unreadable("12 of 12 reads failed in the store ['obj-000 (InternalError, HTTP 500)']")])
    with pytest.raises(ContentNotServed) as err:
        content_survives_kill(StandIn(None), "s3", kinds=["probe"], timeout=5)
    msg = str(err.value)
    assert msg.startswith("s3 is Ready after a kill (pod delete pid uid-old, back as uid-new after ")
    assert "does not serve its content" in msg and "nothing is proven lost or kept" in msg
    assert "12 of 12 reads failed in the store" in msg and "lost content" not in msg
    assert err.value.outcome.unserved and not err.value.outcome.failures


def test_content_answered_absent_is_lost_at_once_without_retries(monkeypatch):
    answers = _reads(monkeypatch, [AssertionError("probe at the store: 3 of 3 missing"), 3])
    with pytest.raises(ContentLost, match=r"(?s)s3 lost content across a kill .*3 of 3 missing") as err:
        content_survives_kill(StandIn(None), "s3", kinds=["probe"], timeout=5)
    assert not isinstance(err.value, ContentNotServed)
    assert answers == [3]  # asked once: an answer about the content is not retried


def test_a_store_serving_only_after_the_ready_grace_has_a_readiness_finding(monkeypatch):
    from indmlops.checks.live import durability
    from indmlops.checks.live.content.base import Unreadable

    monkeypatch.setattr(durability, "READY_GRACE_S", 0.05)
    answers = [Unreadable("3 of 3 reads failed in the store (InternalError, HTTP 500)")] * 20 + [3]
    _reads(monkeypatch, answers)  # 20 failed reads × 10 ms retry ≥ 0.2 s > the grace, then served
    with pytest.raises(ContentNotServed) as err:
        content_survives_kill(StandIn(None), "s3", kinds=["probe"], timeout=5)
    msg = str(err.value)
    assert "s3 said Ready after a kill" in msg and "before it served its content" in msg
    assert "its readiness check answers before its data path works" in msg and "probe: reads failed for" in msg
    assert err.value.outcome.verified == {"probe": 3} and not err.value.outcome.failures


def test_s3_objects_answered_absent_among_store_errors_are_lost_not_unserved():
    from unittest import mock

    from botocore.exceptions import ClientError

    from indmlops.checks.live.content.base import Unreadable
    from indmlops.checks.live.content.it_core import s3_objects

    def error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    creds = mock.Mock(username="u", password="p", extra={"region": "r", "bucket": "b"})
    target = mock.Mock(credentials=mock.Mock(return_value=creds))
    with mock.patch("indmlops.clients.s3_client") as make:
        client = make.return_value
        content = s3_objects(target, "tag", count=4)
        client.get_object.side_effect = [error("InternalError", 500), error("NoSuchKey", 404),
                                         error("InternalError", 500), error("NoSuchKey", 404)]
        with pytest.raises(AssertionError) as err:
            content.verify()
    assert not isinstance(err.value, Unreadable), "a mix of 404 and 5xx was called unreadable: nothing proven lost"
    assert "2 of 4 missing" in str(err.value) and "besides, 2 reads failed in the store" in str(err.value)
