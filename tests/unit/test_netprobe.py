"""indmlops-netprobe on real loopback sockets: what each outcome means, its output, its bad input."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from indmlops import netprobe


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def dns_server():
    """Answers any query with the same id (as every DNS server does, NXDOMAIN included)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            sock.sendto(data[:2] + b"\x81\x83" + data[4:], peer)  # NXDOMAIN

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join()
    sock.close()


@pytest.fixture
def silent_udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_listening_port_is_reachable_connected(listener):
    assert netprobe.probe_tcp("127.0.0.1", listener, 1.0) == (True, "connected")


def test_closed_port_is_reachable_refused_because_the_host_answered(closed_port):
    assert netprobe.probe_tcp("127.0.0.1", closed_port, 1.0) == (True, "refused")


def test_dns_reply_is_reachable_and_silence_is_denied(dns_server, silent_udp):
    assert netprobe.probe_udp("127.0.0.1", dns_server, 1.0, dns_ports=(dns_server,)) == (True, "dns-reply")
    assert netprobe.probe_udp("127.0.0.1", silent_udp, 0.3, dns_ports=(silent_udp,)) == (False, "timeout")


def test_udp_without_a_protocol_reply_is_unknown_never_denied(silent_udp):
    reachable, outcome = netprobe.probe_udp("127.0.0.1", silent_udp, 0.3)
    assert reachable is None and "port 53 only" in outcome


def test_until_blocked_retries_a_reachable_target_until_its_budget(listener):
    r = netprobe.probe_one(f"127.0.0.1:{listener}", 0.5, until_blocked=1.5)
    assert r["reachable"] is True and r["attempts"] >= 2 and r["seconds"] >= 1.5


@pytest.mark.parametrize("bad", ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:53/SCTP", ":80", "h:x"])
def test_bad_destination_is_refused_with_the_expected_form(bad, capsys):
    assert netprobe.main(["probe", bad]) == 2
    assert f"bad destination {bad!r}: expected HOST:PORT" in capsys.readouterr().err


def test_output_has_a_line_per_destination_and_one_machine_line(listener, closed_port, capsys):
    assert netprobe.main(["probe", "--timeout", "1", f"127.0.0.1:{listener}", f"127.0.0.1:{closed_port}/tcp"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == [f"127.0.0.1:{listener}/TCP", "REACHABLE", "connected"]
    assert out[1].split()[:3] == [f"127.0.0.1:{closed_port}/TCP", "REACHABLE", "refused"]
    doc = json.loads(out[2].removeprefix(netprobe.MARKER))
    assert [r["outcome"] for r in doc["results"]] == ["connected", "refused"] and doc["timeout"] == 1.0


def test_self_test_proves_the_probe_can_connect():
    assert netprobe.self_test() == 0


def test_ipv6_destination_is_parsed():
    assert netprobe.parse_target("[fd00::1]:5432/udp") == ("fd00::1", 5432, "UDP")


def test_dropped_syn_is_denied_timeout():
    """A listener whose accept queue is full drops new SYNs, as a NetworkPolicy that drops would."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    held = []
    for _ in range(3):  # fill the queue: later connections get no SYN-ACK
        c = socket.socket()
        c.settimeout(0.3)
        try:
            c.connect(("127.0.0.1", port))
        except TimeoutError:
            pass
        held.append(c)
    try:
        assert netprobe.probe_tcp("127.0.0.1", port, 0.5) == (False, "timeout")
    finally:
        for c in held:
            c.close()
        srv.close()
