"""The cluster DNS (Debian has no CoreDNS): answers `<svc>.<ns>.svc.<domain>` with the Service's ClusterIP (a
headless Service: its ready endpoints) and `<host>.<svc>.<ns>.svc.<domain>` with that endpoint (StatefulSet pods),
from Services and Endpoints read through the API every second. Every other name gets NXDOMAIN at once: nothing is
forwarded, so no query leaves the machine.

    python -m indmlops.targets.kubernetes.cluster.dns --kubeconfig FILE --listen IP [--port 53] [--domain D]
"""

from __future__ import annotations

import argparse
import socketserver
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

TTL = 5
REFRESH = 1.0


class Records:
    """name (lower case, with the final dot) -> IPv4 addresses; `names` also holds names that exist with none."""

    def __init__(self, domain: str) -> None:
        self.domain = domain.strip(".").lower()
        self.lock = threading.Lock()
        self.a: dict[str, list[str]] = {}
        self.loaded = False

    def replace(self, services: list, endpoints: list) -> None:
        eps = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
        table: dict[str, list[str]] = {}
        for svc in services:
            ns, name = svc.metadata.namespace, svc.metadata.name
            fqdn = f"{name}.{ns}.svc.{self.domain}."
            ip = svc.spec.cluster_ip
            ready = []
            ep = eps.get((ns, name))
            for subset in (ep.subsets or []) if ep is not None else []:
                for addr in subset.addresses or []:
                    ready.append(addr.ip)
                    if addr.hostname:
                        table.setdefault(f"{addr.hostname}.{fqdn}", []).append(addr.ip)
            if svc.spec.type == "ExternalName":
                continue  # a CNAME out of the cluster: not answered here (no name leaves the machine)
            table[fqdn] = [ip] if ip and ip != "None" else sorted(set(ready))
        with self.lock:
            self.a, self.loaded = table, True

    def answer(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply()
        reply.header.aa = 1
        q = request.q
        name = str(q.qname).lower()
        with self.lock:
            addrs = self.a.get(name)
        if addrs is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in addrs:
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
        # AAAA and other types of a name that exists: no data (NOERROR), so a resolver does not wait for more.
        return reply


def refresh_forever(records: Records, kubeconfig: str) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    while True:
        try:
            records.replace(api.list_service_for_all_namespaces(_request_timeout=10).items,
                            api.list_endpoints_for_all_namespaces(_request_timeout=10).items)
        except Exception as exc:  # the API restarting: keep the last table and try again
            print(f"cluster-dns: could not read Services: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        time.sleep(REFRESH)


def handle(records: Records, data: bytes) -> bytes | None:
    try:
        request = DNSRecord.parse(data)
    except Exception:  # not DNS: no answer, as a real server does with junk
        return None
    if not request.questions:
        return None
    return records.answer(request).pack()


def serve(records: Records, host: str, port: int) -> None:
    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            out = handle(records, data)
            if out is not None:
                sock.sendto(out, self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            out = handle(records, self.rfile.read(int.from_bytes(head, "big")))
            if out is not None:
                self.wfile.write(len(out).to_bytes(2, "big") + out)

    socketserver.ThreadingUDPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    udp = socketserver.ThreadingUDPServer((host, port), Udp)
    tcp = socketserver.ThreadingTCPServer((host, port), Tcp)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print(f"cluster-dns: answering on {host}:{port} (udp, tcp)", file=sys.stderr, flush=True)
    udp.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cluster-dns", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--domain", default="cluster.local")
    args = p.parse_args(argv)
    records = Records(args.domain)
    threading.Thread(target=refresh_forever, args=(records, args.kubeconfig), daemon=True).start()
    try:
        serve(records, args.listen, args.port)
    except OSError as exc:
        print(f"cluster-dns: cannot listen on {args.listen}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
