"""The edge inference service: MQTT telemetry → prediction, HTTP /predict, health, readiness and metrics."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import traceback
from collections import OrderedDict
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

from indmlops import wire
from indmlops.features import FeatureState
from indmlops.inference import model as models
from indmlops.inference.http import handler
from indmlops.inference.metrics import Drift, Metrics
from indmlops.inference.parse import FLOAT32_MAX, BadPayload, Reading, parse_reading
from indmlops.wire import Endpoint

if TYPE_CHECKING:
    from paho.mqtt.client import Client

TELEMETRY = "factory/+/+/telemetry"
class InferenceService:
    def __init__(self, *, mqtt: Endpoint, username: str, password: str, tracking_uri: str,
                 model_name: str = "edge-anomaly", alias: str = "champion", http_host: str = "127.0.0.1",
                 http_port: int = 8088, watch_interval: float = 5.0, client_id: str = "indmlops-inference",
                 stall_after: float = 20.0, model_cache: str | os.PathLike[str] | None = None,
                 registry_wait: float = 5.0) -> None:
        self.mqtt_ep, self.username, self.password = mqtt, username, password
        # The last good model on local disk (None: no cache). Served at start while the registry is asked in the
        # background, once the subscription is acknowledged or `registry_wait` s have passed: importing MLflow takes
        # ~2 s of a core, which would otherwise compete with connecting and subscribing.
        self.model_cache, self.registry_wait = model_cache, registry_wait
        self.tracking_uri, self.model_name, self.alias = tracking_uri, model_name, alias
        self.watch_interval = watch_interval
        self.client_id = client_id
        self.metrics = Metrics()
        self.model: models.LoadedModel | None = None
        self.state_mqtt, self.state_http = FeatureState(), FeatureState()
        self.drift = Drift()
        self.mqtt_connected = threading.Event()
        self.subscribed = threading.Event()  # set on SUBACK: before it, readings would pass us by
        self._ack_after: dict[int, int] = {}  # our publish mid → the reading's mid to acknowledge when it is held
        self._answered: OrderedDict[tuple, str] = OrderedDict()  # a reading's identity → its prediction
        self.stopping = threading.Event()
        # Liveness: the network loop runs in a thread of ours (so its end is seen, with the exception that ended
        # it), and a reading whose handling has not returned after `stall_after` s means the loop is stuck.
        self.stall_after = stall_after
        self._loop_thread: threading.Thread | None = None  # started by _connect_once, with the first model
        self._connect_lock = threading.Lock()
        self.loop_error = ""
        self._handling_since: float | None = None
        self.last_model_error = "not loaded yet"
        self.client: Client | None = None  # made by start()
        self.http = ThreadingHTTPServer((http_host, http_port), handler(self))
        self.http.daemon_threads = True

    # -- model -------------------------------------------------------------------------------------------

    def load_model(self) -> bool:
        """Load the alias's version if it differs from the loaded one. The swap is one reference assignment,
        made between two messages of the single MQTT callback thread: none is dropped or predicted twice."""
        try:
            version = models.current_version(self.tracking_uri, self.model_name, self.alias)
            if self.model is not None and self.model.version == version:
                return False
            new = models.load(self.tracking_uri, self.model_name, self.alias)
        except Exception as exc:  # MLflow down, alias missing, artifact store down: keep serving the old model
            self.last_model_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            return False
        self._swap(new, "")
        self._save_cache(new)
        return True

    def _swap(self, new: models.LoadedModel, source: str) -> None:
        old, self.model = self.model, new
        if old is not None:
            self.metrics.model.remove(old.name, old.version, old.flavor)
            self.metrics.swaps.inc()
        self.metrics.model.labels(new.name, new.version, new.flavor).set(1)
        print(f"inference: serving {new.name} version {new.version} ({new.flavor}){source}", flush=True)

    def _load_cached(self) -> bool:
        """Serve the model the cache holds, with no MLflow import (model.from_cache). Whatever is wrong with the
        cache is printed and ignored: the registry is asked next, as without a cache."""
        if not self.model_cache:
            return False
        try:
            cached = models.load_cached(self.model_cache, self.model_name, self.alias)
        except Exception as exc:  # CacheUnusable says why; anything else must not stop the start either
            print(f"inference: model cache ignored: {exc}; asking the registry", flush=True)
            return False
        self._swap(cached, f" from the cache {self.model_cache}")
        return True

    def _save_cache(self, model: models.LoadedModel) -> None:
        if not self.model_cache:
            return
        try:
            models.save_cached(self.model_cache, model, self.alias)
        except Exception as exc:  # a full or read-only disk costs the next start its head start, not this service
            print(f"inference: could not cache version {model.version} in {self.model_cache}: {exc}", flush=True)

    def _watch(self) -> None:
        if self.model is not None:  # served from the cache: let connecting and subscribing go first (__init__)
            self.subscribed.wait(self.registry_wait)
        while not self.stopping.is_set():
            if self.load_model():
                self._connect_once()  # the first model: only now may the session's queue come to us
            self.stopping.wait(self.watch_interval if self.model else 1.0)

    # -- MQTT --------------------------------------------------------------------------------------------

    @property
    def _mqtt(self) -> Client:
        if self.client is None:
            raise RuntimeError("the MQTT client is made by start(), which has not run")
        return self.client

    def _connect_once(self) -> None:
        """Connect (once; paho reconnects by itself afterwards) when a model is there to answer. Not before: the
        session is persistent, so the broker delivers its queue on CONNECT, before any SUBSCRIBE of ours. A pod
        whose cache is empty (a new emptyDir) once took that queue with no model and dead-lettered it as
        `predict_failed` (acknowledged, never predicted: 304 readings after one kill on the cluster)."""
        with self._connect_lock:
            if self._loop_thread is not None or self.stopping.is_set():
                return
            self._mqtt.connect_async(self.mqtt_ep.host, self.mqtt_ep.port, keepalive=30)
            self._loop_thread = threading.Thread(target=self._loop, name="mqtt-loop", daemon=True)
            self._loop_thread.start()

    def _on_subscribe(self, _c, _u, _mid, reason_codes, _props) -> None:
        if not any(rc.is_failure for rc in reason_codes):
            self.subscribed.set()
        else:
            print(f"inference: broker refused the subscription to {TELEMETRY}: {reason_codes}", flush=True)

    def _on_connect(self, client, _u, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            return
        self.mqtt_connected.set()
        client.subscribe(TELEMETRY, qos=1)  # on every (re)connection; there is a model: see _connect_once

    def _on_disconnect(self, *_a) -> None:
        self.mqtt_connected.clear()
        self.subscribed.clear()

    def _on_message(self, client, _u, msg) -> None:
        """Handle one reading. Whatever goes wrong with it stays with it: counted by kind, reported on the errors
        topic of the topic it came on, and the reading acknowledged (dead-lettered). An exception escaping here
        would end paho's network loop, and the unacknowledged reading would be redelivered to every restart."""
        self._handling_since = time.monotonic()
        received = time.perf_counter_ns()
        try:
            self._handle(client, msg, received)
        except Exception as exc:
            self._dead_letter(msg, BadPayload("internal", f"{type(exc).__name__}: {str(exc)[:160]}"))
        finally:
            self._handling_since = None

    def _handle(self, client, msg, received: int) -> None:
        # The subscription (factory/+/+/telemetry) admits exactly four levels, each accepted by the broker: the
        # output topics are built from them, never from the payload.
        _, line, machine, _ = msg.topic.split("/")
        try:
            reading = parse_reading(msg.payload)
            if (reading.line, reading.machine) != (line, machine):
                raise BadPayload("topic_mismatch", f"payload names {reading.line!r}/{reading.machine!r}, "
                                                   f"the topic {line!r}/{machine!r}")
        except BadPayload as exc:
            self._dead_letter(msg, exc)
            return
        # The reading's whole identity: a re-send is the same reading byte for byte, while a restarted publisher
        # starts its sequence numbers again (new ids and timestamps): those must not get an old answer.
        key = (line, machine, reading.seq, reading.id, reading.ts_ns)
        if self.model is None:  # cannot happen (_connect_once waits for a model); were it to, keep it unacknowledged:
            return  # the broker delivers it again on the next connection, rather than it being dead-lettered here
        if (answered := self._answered.get(key)) is not None:
            self._answer_again(client, msg, line, machine, answered)
            return
        try:
            out = self.predict(reading, self.state_mqtt, "mqtt", received)
        except Exception as exc:
            self._dead_letter(msg, BadPayload("predict_failed", f"{type(exc).__name__}: {str(exc)[:160]}"))
            return
        out["received_ns"] = self._wall_ns(received)
        out["published_ns"] = now = time.time_ns()
        body = json.dumps(out, separators=(",", ":"))
        if not self._publish_prediction(client, msg, line, machine, body):
            return
        self._remember(key, body)
        self.metrics.latency_of["mqtt"].observe((time.perf_counter_ns() - received) / 1e9)
        self.metrics.e2e.observe(max(0, now - reading.ts_ns) / 1e9)

    # -- idempotence ---------------------------------------------------------------------------------------------
    # A publisher re-sends a reading whose prediction it never saw (indmlops.outbox): the broker lost the reading
    # or the prediction. The answer is the prediction already given, byte for byte (same model version, same
    # published_ns), not a new one: a reading has one prediction, however often it arrives. Bounded memory: the
    # newest ANSWERED_MAX answers (~300 B each: 50,000 ≈ 15 MB); an older re-send is predicted again, without
    # touching the machine's feature history (FeatureState ignores a reading older than its newest).
    ANSWERED_MAX = 50_000

    def _remember(self, key: tuple, body: str) -> None:
        answered = self._answered
        answered[key] = body
        if len(answered) > self.ANSWERED_MAX:
            answered.popitem(last=False)

    def _answer_again(self, client, msg, line: str, machine: str, answered: str) -> None:
        self.metrics.answered_again.inc()
        self._publish_prediction(client, msg, line, machine, answered)

    def _publish_prediction(self, client, msg, line: str, machine: str, body: str) -> bool:
        """Publish a reading's prediction (QoS 1) and acknowledge the reading once the broker holds it
        (_on_publish); False when paho refused to send it and the reading was dead-lettered instead."""
        try:
            info = client.publish(f"factory/{line}/{machine}/prediction", body, qos=1)
        except (ValueError, TypeError) as exc:  # paho refuses a topic or payload it cannot send
            self._dead_letter(msg, BadPayload("publish_failed", f"{type(exc).__name__}: {str(exc)[:160]}"))
            return False
        self._ack_after[info.mid] = msg.mid
        return True

    def _wall_ns(self, perf_ns: int) -> int:
        """A perf_counter_ns stamp as wall-clock ns (the clock of the reading's ts_ns), for where-the-time-went."""
        return time.time_ns() - (time.perf_counter_ns() - perf_ns)

    def _on_publish(self, client, _u, mid, _rc, _p) -> None:
        """The broker holds our prediction (or error report): only now acknowledge the reading it answers."""
        reading_mid = self._ack_after.pop(mid, None)
        if reading_mid is not None:
            client.ack(reading_mid, 1)

    def _count(self, source: str, exc: BadPayload) -> None:
        self.metrics.errors.labels(exc.kind).inc()
        self.metrics.rejected[source].inc()

    def _dead_letter(self, msg, exc: BadPayload) -> None:
        """Count an MQTT reading that gets no prediction, report it on the errors topic of the topic it came on, and
        acknowledge it once the broker holds that report (at once when there is no report to wait for)."""
        self._count("mqtt", exc)
        client = self._mqtt
        try:
            parts = msg.topic.split("/")
            if len(parts) != 4:
                raise ValueError(f"topic {msg.topic!r} is not factory/<line>/<machine>/telemetry")
            report = {"kind": exc.kind, "detail": exc.detail, "topic": msg.topic, "ts_ns": time.time_ns(),
                      "service": self.client_id}
            info = client.publish(f"factory/{parts[1]}/{parts[2]}/errors",
                                  json.dumps(report, separators=(",", ":")), qos=1)
            self._ack_after[info.mid] = msg.mid
        except Exception as report_exc:
            print(f"inference: a {exc.kind} reading (mid {msg.mid}) not reported: {report_exc!r}", flush=True)
            with contextlib.suppress(Exception):  # disconnected: the broker redelivers it, and we dead-letter it again
                client.ack(msg.mid, 1)

    # -- prediction ---------------------------------------------------------------------------------------

    def predict(self, reading: Reading, state: FeatureState, source: str, received_ns: int) -> dict:
        model = self.model  # one read: a concurrent swap cannot split this prediction across versions
        # MQTT readings are a stream per machine, ordered by time (a re-sent one may come late); HTTP ones stand alone.
        vector = state.vector(f"{reading.line}/{reading.machine}", reading.features,
                              order=reading.ts_ns if source == "mqtt" else None)
        if not all(abs(x) <= FLOAT32_MAX for x in vector):  # two extreme readings in a row: their change overflows
            raise BadPayload("out_of_range", "a change since the machine's previous reading is beyond float32")
        if model is None:
            raise RuntimeError("no model loaded")
        label, p_fault = model.predict(vector)
        if not math.isfinite(p_fault):  # NaN is not JSON: the HMI and every strict consumer would reject the message
            raise ValueError(f"the model answered p_fault={p_fault} for {reading.id!r}")
        self.metrics.drift.set(self.drift.update(reading.features))
        self.metrics.predicted[source].inc()
        return {"id": reading.id, "line": reading.line, "machine": reading.machine, "seq": reading.seq,
                "label": label, "fault": label != "normal", "p_fault": round(p_fault, 4),
                "model": model.name, "model_version": model.version, "ts_ns": reading.ts_ns, "service": self.client_id,
                "infer_us": round((time.perf_counter_ns() - received_ns) / 1e3, 1)}

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self.http.serve_forever, name="http", daemon=True).start()
        self._load_cached()  # the registry is asked in the model-watch thread, started below
        from paho.mqtt.client import Client, MQTTv311
        from paho.mqtt.enums import CallbackAPIVersion

        # A persistent session (clean_session False, fixed client id): QoS1 readings that arrive while the
        # service restarts wait in the broker and are predicted afterwards, not lost.
        # Manual acknowledgement: a reading is acknowledged to the broker only once the broker holds its prediction
        # (see _on_publish). With paho's automatic PUBACK a reading was acknowledged as soon as its callback
        # returned, while its prediction could still wait in paho's outgoing queue (20 in flight by default):
        # a kill then lost acknowledged readings (92 of 1,483 across three kills at 200 readings/s).
        self.client = client = Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTv311,
                                      clean_session=False, manual_ack=True)
        client.max_inflight_messages_set(100)  # as many as the broker sends us (max_inflight_messages 100)
        client.on_publish = self._on_publish
        wire.no_nagle(client)
        client.username_pw_set(self.username, self.password)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]  # paho types the delays int; floats work
        if self.model is not None:
            self._connect_once()
        threading.Thread(target=self._watch, name="model-watch", daemon=True).start()

    def _loop(self) -> None:
        try:
            self._mqtt.loop_forever(retry_first_connection=True)
        except BaseException as exc:
            self.loop_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            traceback.print_exc()

    def liveness(self) -> tuple[bool, str]:
        """Alive unless the MQTT loop has ended or is stuck in one reading. A broker that is away is not our
        failure (readiness says so): restarting us would not bring it back."""
        if self._loop_thread is not None and not self._loop_thread.is_alive() and not self.stopping.is_set():
            return False, f"the MQTT network loop has ended ({self.loop_error or 'no exception recorded'})"
        since = self._handling_since
        if since is not None and (stuck := time.monotonic() - since) > self.stall_after:
            return False, f"stuck handling one reading for {stuck:.0f} s (limit {self.stall_after:g} s)"
        return True, "MQTT loop running"

    def watchdog(self, until: threading.Event, interval: float = 1.0) -> None:
        """Until `until` is set, exit the process when liveness fails, so the supervisor (supervisord, the kubelet)
        starts a fresh one; exit code 70 (EX_SOFTWARE). Runs in the main thread of `indmlops serve`."""
        while not until.wait(interval):
            ok, why = self.liveness()
            if not ok:
                print(f"inference: not alive: {why}; exiting so the supervisor restarts the service", flush=True)
                os._exit(70)

    def ready(self) -> tuple[bool, str]:
        alive, why = self.liveness()
        if not alive:
            return False, why
        since = self._handling_since
        if since is not None and time.monotonic() - since > 2.0:  # a reading takes ~100 µs: 2 s is a stall
            return False, f"handling one reading for {time.monotonic() - since:.1f} s"
        if self.model is None:
            return False, f"no model loaded: {self.last_model_error}"
        if not self.mqtt_connected.is_set():
            return False, f"not connected to MQTT {self.mqtt_ep}"
        if not self.subscribed.is_set():
            return False, f"subscription to {TELEMETRY} not acknowledged yet"
        return True, f"{self.model.name} v{self.model.version} ({self.model.flavor})"

    def stop(self, forget_session: bool = False) -> None:
        """Stop; the broker keeps queueing readings for our persistent session unless `forget_session`.

        A session nobody resumes grows the broker's database with every reading, and Mosquitto rewrites that
        whole database on each change (autosave_on_changes): throwaway instances must forget theirs.
        """
        self.stopping.set()
        if self.client is not None:
            self.client.disconnect()
            if self._loop_thread is not None:
                self._loop_thread.join(5)
        self.http.shutdown()
        self.http.server_close()
        if forget_session:
            try:
                wire.forget_session(self.mqtt_ep, self.username, self.password, self.client_id)
            except wire.NoAnswer as exc:  # the broker is gone: nothing will queue for us there anyway
                print(f"inference: could not end the MQTT session {self.client_id}: {exc}", flush=True)
