"""The inference service's HTTP side: /predict, /healthz, /readyz, /model, /metrics, strict about framing
(Content-Length only; chunked 411, a bad length 400, over 16 KiB 413), answering every failure with its kind."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from indmlops.inference.parse import MAX_PAYLOAD_BYTES, BadPayload, parse_reading

if TYPE_CHECKING:
    from indmlops.inference.service import InferenceService


def handler(svc: InferenceService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK of the
        # headers (40 ms on Linux) on every keep-alive request: 92 req/s at p50 44 ms before this line.
        disable_nagle_algorithm = True

        # A client that stops sending mid-request frees its thread after this many seconds.
        timeout = 10

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
                ok, why = svc.liveness()
                self._json(200 if ok else 503, {"ok": ok, "detail": why})
            elif self.path == "/readyz":
                ok, why = svc.ready()
                self._json(200 if ok else 503, {"ready": ok, "detail": why})
            elif self.path == "/model":
                model = svc.model  # one read: a swap between two looks cannot mix two models' fields
                if model is None:
                    self._json(503, {"error": "no_model", "detail": svc.last_model_error})
                else:
                    self._json(200, {**model.describe(), "alias": svc.alias})
            elif self.path == "/metrics":
                self._send(200, generate_latest(svc.metrics.registry), CONTENT_TYPE_LATEST)
            else:
                self._json(404, {"error": "not_found", "detail": self.path[:200]})

        def _refuse(self, code: int, exc: BadPayload, *, close: bool = False) -> None:
            svc._count("http", exc)
            self.close_connection = self.close_connection or close
            self._json(code, {"error": exc.kind, "detail": exc.detail})

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._json(404, {"error": "not_found", "detail": self.path[:200]})
                return
            received = time.perf_counter_ns()
            try:
                body = self._body()
                if body is None:
                    return
                reading = parse_reading(body)
                if svc.model is None:
                    self._json(503, {"error": "no_model", "detail": svc.last_model_error})
                    return
                try:
                    out = svc.predict(reading, svc.state_http, "http", received)
                except BadPayload:
                    raise
                except Exception as exc:
                    self._refuse(500, BadPayload("predict_failed", f"{type(exc).__name__}: {str(exc)[:160]}"))
                    return
            except BadPayload as exc:
                self._refuse(400, exc)
                return
            except (TimeoutError, ConnectionError):
                raise  # the client went away or stalled: http.server closes the connection
            except Exception as exc:
                self._refuse(500, BadPayload("internal", f"{type(exc).__name__}: {str(exc)[:160]}"), close=True)
                return
            try:
                self._json(200, out)
            except ConnectionError:  # the client left before its answer: nothing to tell it, nothing to log
                self.close_connection = True
                return
            svc.metrics.latency_of["http"].observe((time.perf_counter_ns() - received) / 1e9)

        def _body(self) -> bytes | None:
            """The request body, or None once a refusal was sent. Only Content-Length framing is accepted: a body we
            cannot delimit leaves the connection unusable, so those refusals close it."""
            if self.headers.get("Transfer-Encoding"):
                self._refuse(411, BadPayload("bad_request", "Transfer-Encoding is not accepted: send Content-Length"),
                             close=True)
                return None
            raw = (self.headers.get("Content-Length") or "0").strip()
            if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is True, and int("²") raises
                self._refuse(400, BadPayload("bad_request", f"Content-Length {raw[:40]!r} is not a byte count"),
                             close=True)
                return None
            length = int(raw)
            if length > MAX_PAYLOAD_BYTES:
                self._refuse(413, BadPayload("too_large", f"{length} bytes > {MAX_PAYLOAD_BYTES}"), close=True)
                return None
            return self.rfile.read(length)

    return Handler
