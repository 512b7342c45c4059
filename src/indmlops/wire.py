"""MQTT over the wire, as the shipped services and the harness both speak it: endpoints, connect (waiting for the
CONNACK), subscribe (waiting for the SUBACK), close, forget a persistent session, Nagle off."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import uuid
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class NoAnswer(Exception):
    """The service did not answer as expected; the message is the last observed state."""


class MqttRefused(NoAnswer):
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
    # Reached through a local forwarder (kubectl port-forward) that may be restarting: a refused connection is
    # then the transport's, not the service's.
    forwarded: bool = False

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
        raise NoAnswer(f"MQTT {ep.host}:{ep.port}: connection failed ({exc})") from exc
    client.loop_start()
    if not done.wait(timeout):
        mqtt_close(client)
        raise NoAnswer(f"MQTT {ep.host}:{ep.port}: no CONNACK within {timeout:.0f} s")
    rc = result["rc"]
    if rc.is_failure:  # type: ignore[attr-defined]
        mqtt_close(client)
        raise MqttRefused(f"MQTT {ep.host}:{ep.port}: CONNACK refused for user {user!r}: {rc}", str(rc))
    return client


def mqtt_subscribe(client: paho.Client, topic: str, *, qos: int = 1, timeout: float = 5.0) -> None:
    """Subscribe and wait for the SUBACK: messages published before it would pass the subscriber by.

    Raises NoAnswer when the broker does not answer in time or refuses the subscription. (Mosquitto 2.0.11
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
        raise NoAnswer(f"MQTT: no SUBACK for {topic} within {timeout:.0f} s") from None
    finally:
        client.on_subscribe = previous
    if any(c.is_failure for c in codes):
        raise NoAnswer(f"MQTT: the broker refused the subscription to {topic}: {codes}")


def forget_session(ep: Endpoint, user: str | None, password: str | None, client_id: str) -> None:
    """End `client_id`'s persistent session: connecting with clean_session makes the broker drop it and stop
    queueing for it (a session nobody resumes grows the database Mosquitto rewrites on every change)."""
    mqtt_close(mqtt_connect(ep, user, password, client_id=client_id, clean_session=True))


def mqtt_close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()
