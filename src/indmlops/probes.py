"""Protocol-level probes: a service is ready when it answers its own protocol, not when a port is open."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import uuid
from dataclasses import dataclass

import paho.mqtt.client as paho
import requests
from paho.mqtt.enums import CallbackAPIVersion


class ProbeFailed(Exception):
    """The service did not answer as expected; the message is the last observed state."""


class MqttRefused(ProbeFailed):
    """The broker answered, with a CONNACK that refuses the connection (as opposed to not answering)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    service: str
    host: str
    port: int
    scheme: str = "tcp"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def no_nagle(client: paho.Client) -> paho.Client:
    """Send each MQTT packet at once. With Nagle's algorithm a client that answers a PUBLISH with a PUBACK and then
    publishes its own message holds the second write until the broker ACKs the first, and the broker delays that
    ACK by up to 40 ms: at 100 readings/s the edge's publish → prediction p50 was 44 ms instead of ~1 ms."""

    def on_socket_open(_c, _u, sock) -> None:
        with contextlib.suppress(OSError, AttributeError):  # a unix socket or a websocket wrapper: nothing to tune
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = on_socket_open
    return client


def mqtt_connect(ep: Endpoint, user: str | None, password: str | None, *, timeout: float = 5.0,
                 client_id: str | None = None, clean_session: bool = True, on_message=None) -> paho.Client:
    """Connect and wait for CONNACK; return the running client or raise with the broker's reason.

    Resuming a persistent session, the broker sends the queued messages right after CONNACK: pass `on_message`
    here, or paho acknowledges and drops them before a handler set afterwards exists."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"indmlops-{uuid.uuid4().hex[:10]}",
        protocol=paho.MQTTv311,
        clean_session=clean_session,
    )
    no_nagle(client)
    if on_message is not None:
        client.on_message = on_message
    if user is not None:
        client.username_pw_set(user, password)
    done = threading.Event()
    result: dict[str, object] = {}

    def on_connect(_c, _u, _flags, reason_code, _props):
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(ep.host, ep.port, keepalive=30)
    except OSError as exc:
        raise ProbeFailed(f"MQTT {ep.host}:{ep.port}: connection failed ({exc})") from exc
    client.loop_start()
    if not done.wait(timeout):
        mqtt_close(client)
        raise ProbeFailed(f"MQTT {ep.host}:{ep.port}: no CONNACK within {timeout:.0f} s")
    rc = result["rc"]
    if rc.is_failure:  # type: ignore[attr-defined]
        mqtt_close(client)
        raise MqttRefused(f"MQTT {ep.host}:{ep.port}: CONNACK refused for user {user!r}: {rc}", str(rc))
    return client


def mqtt_subscribe(client: paho.Client, topic: str, *, qos: int = 1, timeout: float = 5.0) -> None:
    """Subscribe and wait for the SUBACK: messages published before it would pass the subscriber by.

    Raises ProbeFailed when the broker does not answer in time or refuses the subscription. (Mosquitto 2.0.11
    grants a subscription its ACL forbids and filters deliveries instead, so an ACL denial shows up as silence.)
    """
    acked: queue.Queue = queue.Queue()
    previous = client.on_subscribe
    client.on_subscribe = lambda _c, _u, mid, codes, _p: acked.put((mid, codes))
    try:
        _, mid = client.subscribe(topic, qos=qos)
        while True:
            got_mid, codes = acked.get(timeout=timeout)
            if got_mid == mid:
                break
    except queue.Empty:
        raise ProbeFailed(f"MQTT: no SUBACK for {topic} within {timeout:.0f} s") from None
    finally:
        client.on_subscribe = previous
    if any(c.is_failure for c in codes):
        raise ProbeFailed(f"MQTT: the broker refused the subscription to {topic}: {codes}")


def forget_session(ep: Endpoint, user: str | None, password: str | None, client_id: str) -> None:
    """End `client_id`'s persistent session: connecting with clean_session makes the broker drop it and stop
    queueing for it (a session nobody resumes grows the database Mosquitto rewrites on every change)."""
    mqtt_close(mqtt_connect(ep, user, password, client_id=client_id, clean_session=True))


def mqtt_close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def mqtt_ready(ep: Endpoint, user: str, password: str) -> str:
    mqtt_close(mqtt_connect(ep, user, password))
    return "CONNACK accepted"


def postgres_ready(ep: Endpoint, user: str, password: str, database: str) -> str:
    import psycopg

    try:
        with psycopg.connect(host=ep.host, port=ep.port, user=user, password=password, dbname=database,
                             connect_timeout=3) as conn:
            value = conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        raise ProbeFailed(f"PostgreSQL {ep.host}:{ep.port} db={database} user={user}: {str(exc).strip()}") from exc
    if value != (1,):
        raise ProbeFailed(f"PostgreSQL answered SELECT 1 with {value!r}")
    return "SELECT 1 ok"


def s3_client(ep: Endpoint, access_key: str, secret_key: str, region: str = "us-east-1"):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=ep.url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )


def s3_ready(ep: Endpoint, access_key: str, secret_key: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        buckets = s3_client(ep, access_key, secret_key).list_buckets()["Buckets"]
    except ClientError as exc:
        raise ProbeFailed(f"S3 {ep.url}: ListBuckets refused: {exc.response['Error'].get('Code')}") from exc
    except BotoCoreError as exc:
        raise ProbeFailed(f"S3 {ep.url}: ListBuckets failed: {exc}") from exc
    return f"ListBuckets ok ({len(buckets)} buckets)"


def http_ready(url: str, expect_status: int = 200, expect_body: str | None = None) -> str:
    try:
        resp = requests.get(url, timeout=3)
    except requests.RequestException as exc:
        raise ProbeFailed(f"GET {url}: {type(exc).__name__}") from exc
    if resp.status_code != expect_status:
        raise ProbeFailed(f"GET {url}: HTTP {resp.status_code}, expected {expect_status}: {resp.text[:200]!r}")
    if expect_body is not None and expect_body not in resp.text:
        raise ProbeFailed(f"GET {url}: body {resp.text[:200]!r} lacks {expect_body!r}")
    return f"HTTP {resp.status_code}"
