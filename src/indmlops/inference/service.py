"""The edge inference service: MQTT telemetry → prediction, HTTP /predict, health, readiness and metrics."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from indmlops import probes
from indmlops.features import FeatureState
from indmlops.inference import model as models
from indmlops.inference.parse import ERROR_KINDS, BadPayload, Reading, parse_reading
from indmlops.probes import Endpoint
from indmlops.simulator.model import SIGNALS

TELEMETRY = "factory/+/+/telemetry"
# Latency buckets from 50 µs to 2 s: the service itself takes tens of µs; MQTT hops add ~100 µs each.
BUCKETS = (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.messages = Counter("indmlops_inference_messages", "Readings handled", ["source", "outcome"], registry=r)
        self.errors = Counter("indmlops_inference_errors", "Rejected readings by kind", ["kind"], registry=r)
        self.latency = Histogram("indmlops_inference_latency_seconds", "Receive to prediction published",
                                 ["source"], buckets=BUCKETS, registry=r)
        # The reading's age when its prediction leaves: publisher clock to ours (same host here; NTP-synced nodes on
        # Kubernetes). It is the Prometheus view of the latency suite's mqtt:e2e (fixtures/slo.yaml).
        self.e2e = Histogram("indmlops_inference_e2e_seconds", "Reading published (its ts_ns) to prediction published",
                             buckets=BUCKETS, registry=r)
        self.model = Gauge("indmlops_inference_model_info", "Loaded model (value 1)", ["name", "version", "flavor"],
                           registry=r)
        self.swaps = Counter("indmlops_inference_model_swaps", "Model versions hot-swapped in", registry=r)
        self.drift = Gauge("indmlops_inference_feature_drift",
                           "EWMA of mean |z| of the signals against the first 2,000 readings after start", registry=r)
        for kind in ERROR_KINDS:  # export zeros, so a dashboard shows a flat line rather than no data
            self.errors.labels(kind)
        # Label lookups take a lock and a dict probe; the per-message path uses children bound once here.
        self.predicted = {s: self.messages.labels(s, "predicted") for s in ("mqtt", "http")}
        self.rejected = {s: self.messages.labels(s, "error") for s in ("mqtt", "http")}
        self.latency_of = {s: self.latency.labels(s) for s in ("mqtt", "http")}


class Drift:
    """Mean absolute z-score of the signals against a baseline of the first `n` readings, smoothed by an EWMA."""

    def __init__(self, n: int = 2000, alpha: float = 0.01) -> None:
        self.n, self.alpha = n, alpha
        self.sums = [0.0] * len(SIGNALS)
        self.sq = [0.0] * len(SIGNALS)
        self.count = 0
        self.stats: list[tuple[float, float]] | None = None
        self.value = 0.0

    def update(self, features: dict[str, float]) -> float:
        xs = [features[s] for s in SIGNALS]
        if self.stats is None:
            self.count += 1
            for i, x in enumerate(xs):
                self.sums[i] += x
                self.sq[i] += x * x
            if self.count == self.n:
                self.stats = [(s / self.n, max(1e-9, (q / self.n - (s / self.n) ** 2)) ** 0.5)
                              for s, q in zip(self.sums, self.sq)]
            return self.value
        z = sum(abs(x - m) / sd for x, (m, sd) in zip(xs, self.stats)) / len(xs)
        self.value += self.alpha * (z - self.value)
        return self.value


class InferenceService:
    def __init__(self, *, mqtt: Endpoint, username: str, password: str, tracking_uri: str,
                 model_name: str = "edge-anomaly", alias: str = "champion", http_host: str = "127.0.0.1",
                 http_port: int = 8088, watch_interval: float = 5.0, client_id: str = "indmlops-inference") -> None:
        self.mqtt_ep, self.username, self.password = mqtt, username, password
        self.tracking_uri, self.model_name, self.alias = tracking_uri, model_name, alias
        self.watch_interval = watch_interval
        self.client_id = client_id
        self.metrics = Metrics()
        self.model: models.LoadedModel | None = None
        self.state_mqtt, self.state_http = FeatureState(), FeatureState()
        self.drift = Drift()
        self.mqtt_connected = threading.Event()
        self.subscribed = threading.Event()  # set on SUBACK: before it, readings would pass us by
        self._subscribed = False  # SUBSCRIBE sent on the current connection
        self._ack_after: dict[int, int] = {}  # our publish mid → the reading's mid to acknowledge when it is held
        self.stopping = threading.Event()
        self.last_model_error = "not loaded yet"
        self.client = None
        self.http = ThreadingHTTPServer((http_host, http_port), _handler(self))
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
        old, self.model = self.model, new
        if old is not None:
            self.metrics.model.remove(old.name, old.version, old.flavor)
            self.metrics.swaps.inc()
        self.metrics.model.labels(new.name, new.version, new.flavor).set(1)
        print(f"inference: serving {new.name} version {new.version} ({new.flavor})", flush=True)
        return True

    def _watch(self) -> None:
        while not self.stopping.wait(self.watch_interval if self.model else 1.0):
            if self.load_model() and self.client is not None and not self._subscribed:
                self._subscribe()

    # -- MQTT --------------------------------------------------------------------------------------------

    def _subscribe(self) -> None:
        # Subscribe only once a model is loaded: until then the broker keeps our persistent session's queue.
        self.client.subscribe(TELEMETRY, qos=1)
        self._subscribed = True

    def _on_subscribe(self, _c, _u, _mid, reason_codes, _props) -> None:
        if not any(rc.is_failure for rc in reason_codes):
            self.subscribed.set()
        else:
            print(f"inference: broker refused the subscription to {TELEMETRY}: {reason_codes}", flush=True)

    def _on_connect(self, client, _u, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            return
        self.mqtt_connected.set()
        if self.model is not None:
            self._subscribe()

    def _on_disconnect(self, *_a) -> None:
        self.mqtt_connected.clear()
        self.subscribed.clear()
        self._subscribed = False

    def _on_message(self, client, _u, msg) -> None:
        received = time.perf_counter_ns()
        parts = msg.topic.split("/")
        try:
            reading = parse_reading(msg.payload)
        except BadPayload as exc:
            self._reject("mqtt", exc, parts, ack_mid=msg.mid)
            return
        out = self.predict(reading, self.state_mqtt, "mqtt", received)
        out["published_ns"] = now = time.time_ns()
        info = client.publish(f"factory/{reading.line}/{reading.machine}/prediction",
                              json.dumps(out, separators=(",", ":")), qos=1)
        self._ack_after[info.mid] = msg.mid
        self.metrics.latency_of["mqtt"].observe((time.perf_counter_ns() - received) / 1e9)
        self.metrics.e2e.observe(max(0, now - reading.ts_ns) / 1e9)

    def _on_publish(self, client, _u, mid, _rc, _p) -> None:
        """The broker holds our prediction (or error report): only now acknowledge the reading it answers."""
        reading_mid = self._ack_after.pop(mid, None)
        if reading_mid is not None:
            client.ack(reading_mid, 1)

    def _reject(self, source: str, exc: BadPayload, topic_parts: list[str] | None, ack_mid: int | None = None) -> None:
        self.metrics.errors.labels(exc.kind).inc()
        self.metrics.rejected[source].inc()
        if topic_parts and len(topic_parts) == 4 and self.client is not None:
            report = {"kind": exc.kind, "detail": exc.detail, "topic": "/".join(topic_parts), "ts_ns": time.time_ns(),
                      "service": self.client_id}
            info = self.client.publish(f"factory/{topic_parts[1]}/{topic_parts[2]}/errors",
                                       json.dumps(report, separators=(",", ":")), qos=1)
            if ack_mid is not None:
                self._ack_after[info.mid] = ack_mid
        elif ack_mid is not None and self.client is not None:
            self.client.ack(ack_mid, 1)  # nowhere to report it: the reading is handled once counted

    # -- prediction ---------------------------------------------------------------------------------------

    def predict(self, reading: Reading, state: FeatureState, source: str, received_ns: int) -> dict:
        model = self.model  # one read: a concurrent swap cannot split this prediction across versions
        vector = state.vector(f"{reading.line}/{reading.machine}", reading.features)
        label, p_fault = model.predict(vector)
        self.metrics.drift.set(self.drift.update(reading.features))
        self.metrics.predicted[source].inc()
        return {"id": reading.id, "line": reading.line, "machine": reading.machine, "seq": reading.seq,
                "label": label, "fault": label != "normal", "p_fault": round(p_fault, 4),
                "model_version": model.version, "ts_ns": reading.ts_ns, "service": self.client_id,
                "infer_us": round((time.perf_counter_ns() - received_ns) / 1e3, 1)}

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self.http.serve_forever, name="http", daemon=True).start()
        self.load_model()
        from paho.mqtt.client import Client, MQTTv311
        from paho.mqtt.enums import CallbackAPIVersion

        # A persistent session (clean_session False, fixed client id): QoS1 readings that arrive while the
        # service restarts wait in the broker and are predicted afterwards, not lost.
        # Manual acknowledgement: a reading is acknowledged to the broker only once the broker holds its prediction
        # (see _on_publish). With paho's automatic PUBACK a reading was acknowledged as soon as its callback
        # returned, while its prediction could still wait in paho's outgoing queue (20 in flight by default):
        # a kill then lost acknowledged readings (92 of 1,483 across three kills at 200 readings/s).
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTv311,
                             clean_session=False, manual_ack=True)
        self.client.max_inflight_messages_set(100)  # as many as the broker sends us (max_inflight_messages 100)
        self.client.on_publish = self._on_publish
        probes.no_nagle(self.client)
        self.client.username_pw_set(self.username, self.password)
        self.client.on_connect, self.client.on_disconnect = self._on_connect, self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.2, 5)
        self.client.connect_async(self.mqtt_ep.host, self.mqtt_ep.port, keepalive=30)
        self.client.loop_start()
        threading.Thread(target=self._watch, name="model-watch", daemon=True).start()

    def ready(self) -> tuple[bool, str]:
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
            self.client.loop_stop()
        self.http.shutdown()
        self.http.server_close()
        if forget_session:
            try:
                probes.forget_session(self.mqtt_ep, self.username, self.password, self.client_id)
            except probes.ProbeFailed as exc:  # the broker is gone: nothing will queue for us there anyway
                print(f"inference: could not end the MQTT session {self.client_id}: {exc}", flush=True)


def _handler(svc: InferenceService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK of the
        # headers (40 ms on Linux) on every keep-alive request: 92 req/s at p50 44 ms before this line.
        disable_nagle_algorithm = True

        def log_message(self, *_a) -> None:  # one line per request would dominate the log at load
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, doc: dict) -> None:
            self._send(code, json.dumps(doc, separators=(",", ":")).encode())

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._json(200, {"ok": True})
            elif self.path == "/readyz":
                ok, why = svc.ready()
                self._json(200 if ok else 503, {"ready": ok, "detail": why})
            elif self.path == "/metrics":
                self._send(200, generate_latest(svc.metrics.registry), CONTENT_TYPE_LATEST)
            else:
                self._json(404, {"error": "not_found", "detail": self.path})

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._json(404, {"error": "not_found", "detail": self.path})
                return
            received = time.perf_counter_ns()
            length = int(self.headers.get("Content-Length") or 0)
            if length > 16 * 1024:
                self.rfile.read(min(length, 1 << 20))
                svc._reject("http", BadPayload("too_large", f"{length} bytes"), None)
                self._json(413, {"error": "too_large", "detail": f"{length} bytes"})
                return
            body = self.rfile.read(length)
            try:
                reading = parse_reading(body)
            except BadPayload as exc:
                svc._reject("http", exc, None)
                self._json(400, {"error": exc.kind, "detail": exc.detail})
                return
            if svc.model is None:
                self._json(503, {"error": "no_model", "detail": svc.last_model_error})
                return
            out = svc.predict(reading, svc.state_http, "http", received)
            self._json(200, out)
            svc.metrics.latency_of["http"].observe((time.perf_counter_ns() - received) / 1e9)

    return Handler
