"""The robustness edge tells the transport from the edge: a port-forward being restarted refuses or resets
connections on the local port for a moment (sent again once); a request the edge drops twice is the edge's."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from indmlops.checks.live.robustness.edge import _through_forward


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class _Drop(_Ok):
    def do_GET(self):
        self.connection.close()  # the edge hangs up without an answer


def _serve_later(port: int, handler, delay: float) -> ThreadingHTTPServer:
    box: list[ThreadingHTTPServer] = []

    def run():
        time.sleep(delay)
        box.append(ThreadingHTTPServer(("127.0.0.1", port), handler))
        box[0].serve_forever()
    threading.Thread(target=run, daemon=True).start()
    return box


def test_a_forward_that_comes_back_within_the_gap_is_waited_for():
    port = _free_port()
    box = _serve_later(port, _Ok, 0.6)
    try:
        resp = _through_forward(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2), gap=5.0)
        assert resp.status_code == 200
    finally:
        time.sleep(0.1)
        box[0].shutdown()


def test_a_service_that_listens_itself_is_not_waited_for():
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        _through_forward(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2), gap=0.0)
    assert time.monotonic() - t0 < 1.0


def test_a_request_the_edge_drops_twice_is_the_edges():
    port = _free_port()
    box = _serve_later(port, _Drop, 0)
    time.sleep(0.3)
    calls = []

    def send():
        calls.append(1)
        return requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    try:
        with pytest.raises(requests.ConnectionError):
            _through_forward(send, gap=5.0)
        assert len(calls) == 2  # once more on a new connection: a forward being restarted resets one too
        with pytest.raises(requests.ConnectionError):
            _through_forward(send, gap=0.0)
        assert len(calls) == 3  # where the service listens itself, the first drop is the verdict
    finally:
        box[0].shutdown()
