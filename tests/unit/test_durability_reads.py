"""How S3 answers are read. The content check: an object the store says is absent is lost; a read the store fails
itself (a 5xx, InternalError, a refused connection) proves nothing and is Unreadable, so it is read again.
Readiness: ListBuckets is not enough, an object must round-trip through the bucket (both targets)."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from indmlops import clients
from indmlops.checks.live.content import it_core
from indmlops.checks.live.content.base import Unreadable
from indmlops.targets.base import Credentials
from indmlops.wire import Endpoint, NoAnswer


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail: Exception | None = None
        self.absent: set[str] = set()

    def put_object(self, Bucket, Key, Body):
        self.objects[Key] = Body

    def get_object(self, Bucket, Key):
        if self.fail is not None:
            raise self.fail
        if Key in self.absent:
            raise ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}},
                              "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def delete_object(self, Bucket, Key):
        self.objects.pop(Key, None)

    def list_buckets(self):
        return {"Buckets": [{"Name": "mlflow-bucket"}]}


class Target:
    def credentials(self, service, role=None):
        return Credentials("s3", "k", "s", {"bucket": "mlflow-bucket", "region": "us-east-1"})

    def endpoint(self, service):
        return Endpoint("s3", "127.0.0.1", 9000, "http")


@pytest.fixture
def store(monkeypatch):
    s = Store()
    monkeypatch.setattr(clients, "s3_client", lambda *a, **k: s)
    return s


def test_all_present_verifies(store):
    assert it_core.s3_objects(Target(), "t", count=3).verify() == 3


@pytest.mark.parametrize("fail", [
    ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject"),
    ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetObject"),
    ClientError({"Error": {"Code": "BadGateway"}, "ResponseMetadata": {"HTTPStatusCode": 502}}, "GetObject"),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9000"),
], ids=["internal-error", "throttled", "bad-gateway", "refused"])
def test_a_read_the_store_fails_is_unreadable_not_lost(store, fail):
    content = it_core.s3_objects(Target(), "t", count=3)
    store.fail = fail
    with pytest.raises(Unreadable, match=r"3 of 3 reads failed in the store"):
        content.verify()


def test_an_object_answered_absent_is_lost(store):
    content = it_core.s3_objects(Target(), "t", count=3)
    store.absent = {"indmlops-durability/t/obj-001"}
    with pytest.raises(AssertionError, match=r"1 of 3 missing \['indmlops-durability/t/obj-001 \(NoSuchKey, "
                                             r"HTTP 404\)'\]") as err:
        content.verify()
    assert not isinstance(err.value, Unreadable)


def test_ready_means_an_object_round_trips_through_the_bucket(store):
    ep = Endpoint("s3", "127.0.0.1", 9000, "http")
    assert clients.s3_ready(ep, "k", "s") == "ListBuckets ok (1 buckets)"
    assert clients.s3_ready(ep, "k", "s", "mlflow-bucket") == "ListBuckets ok (1 buckets), object round trip ok"
    assert not store.objects  # the probe object is deleted again
    store.fail = ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                             "GetObject")  # a SeaweedFS whose volume server has not re-registered yet
    with pytest.raises(NoAnswer, match=r"object round trip in mlflow-bucket failed: InternalError"):
        clients.s3_ready(ep, "k", "s", "mlflow-bucket")
    store.fail = ClientError({"Error": {"Code": "NoSuchBucket"}, "ResponseMetadata": {"HTTPStatusCode": 404}},
                             "GetObject")
    assert clients.s3_ready(ep, "k", "s", "mlflow-bucket").endswith("bucket mlflow-bucket not created yet")
