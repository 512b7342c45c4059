"""The cluster's parts that need no root: certificates, the pause image archive, the DNS answers, component flags,
the iptables ledger's parsing, the process records."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

from cryptography import x509
from dnslib import RCODE, DNSRecord

from indmlops.targets.kubernetes.cluster import PLAN, dns, host, images, pki, processes
from indmlops.targets.kubernetes.cluster.components import Layout, cni_conflist, components


def test_pki_names_each_identity_and_the_api_server_answers_to_its_service_names(tmp_path):
    pki.ensure(tmp_path, PLAN)
    api = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    sans = api.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} >= {PLAN.node_ip, PLAN.api_service_ip}
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    kubelet = x509.load_pem_x509_certificate((tmp_path / "kubelet-client.crt").read_bytes())
    assert kubelet.subject.rfc4514_string() == "O=system:nodes,CN=system:node:indmlops-node"
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    kubelet.verify_directly_issued_by(ca)
    first = (tmp_path / "admin.crt").read_bytes()
    pki.ensure(tmp_path, PLAN)  # a second `up` keeps what is there
    assert (tmp_path / "admin.crt").read_bytes() == first
    assert oct(tmp_path.stat().st_mode & 0o777) == "0o700"


def test_pause_archive_is_an_oci_image_with_one_executable_layer(tmp_path):
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF-not-really")
    with tarfile.open(fileobj=io.BytesIO(images.pause_archive(binary, "localhost/x:1"))) as tar:
        index = json.load(tar.extractfile("index.json"))
        ref = index["manifests"][0]
        assert ref["annotations"]["io.containerd.image.name"] == "localhost/x:1"
        manifest = json.load(tar.extractfile(f"blobs/sha256/{ref['digest'].split(':')[1]}"))
        layer = tar.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}").read()
        config = json.load(tar.extractfile(f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"))
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755 and inner.extractfile(member).read() == binary.read_bytes()
    assert config["config"]["Entrypoint"] == ["/pause"]


def _svc(ns, name, ip, kind="ClusterIP"):
    return SimpleNamespace(metadata=SimpleNamespace(namespace=ns, name=name),
                           spec=SimpleNamespace(cluster_ip=ip, type=kind))


def _eps(ns, name, *addrs):
    return SimpleNamespace(metadata=SimpleNamespace(namespace=ns, name=name), subsets=[SimpleNamespace(
        addresses=[SimpleNamespace(ip=ip, hostname=h) for ip, h in addrs])])


def _ask(records, name, qtype="A"):
    reply = DNSRecord.parse(dns.handle(records, DNSRecord.question(name, qtype).pack()))
    return RCODE.get(reply.header.rcode), [str(r.rdata) for r in reply.rr]


def test_dns_answers_services_headless_pods_and_nothing_else():
    r = dns.Records("cluster.local")
    r.replace([_svc("it-core", "mlflow", "10.215.0.9"), _svc("it-core", "postgres", "None"),
               _svc("x", "out", "", "ExternalName")],
              [_eps("it-core", "postgres", ("10.214.0.7", "postgres-0"))])
    assert _ask(r, "mlflow.it-core.svc.cluster.local") == ("NOERROR", ["10.215.0.9"])
    assert _ask(r, "MLflow.IT-core.svc.cluster.local.") == ("NOERROR", ["10.215.0.9"])
    assert _ask(r, "postgres.it-core.svc.cluster.local") == ("NOERROR", ["10.214.0.7"])
    assert _ask(r, "postgres-0.postgres.it-core.svc.cluster.local") == ("NOERROR", ["10.214.0.7"])
    assert _ask(r, "mlflow.it-core.svc.cluster.local", "AAAA") == ("NOERROR", [])  # exists, no IPv6: no wait
    assert _ask(r, "mlflow.ot-edge.svc.cluster.local")[0] == "NXDOMAIN"
    assert _ask(r, "out.x.svc.cluster.local")[0] == "NXDOMAIN"  # ExternalName: nothing leaves the machine
    assert _ask(r, "169.254.169.254.in-addr.arpa", "PTR")[0] == "NXDOMAIN"
    assert dns.handle(r, b"\x00\x01junk") is None  # not DNS: no answer, no crash


def test_components_keep_the_kubelet_off_the_cloud_and_kube_proxy_off_conntrack(tmp_path):
    comps = {c.name: c for c in components(PLAN, Layout(tmp_path), tmp_path / "bin", sys.executable)}
    assert comps["kubelet"].env == {"AWS_EC2_METADATA_DISABLED": "true"}
    assert "--cloud-provider" in comps["kubelet"].argv
    proxy = comps["kube-proxy"].argv
    assert proxy[proxy.index("--conntrack-max-per-core") + 1] == "0"
    api = comps["kube-apiserver"].argv
    assert api[api.index("--bind-address") + 1] == PLAN.node_ip  # never 0.0.0.0: only the node bridge
    for c in comps.values():
        assert not any(a in ("true", "false") for a in c.argv), f"{c.name}: booleans need --flag=value"
    net = cni_conflist(PLAN, Layout(tmp_path))
    assert net["plugins"][0]["ipMasq"] is False  # pods reach nothing beyond the cluster (and the guard drops it)


def test_new_chains_and_the_rules_jumping_to_them_are_dropped_and_nothing_else(monkeypatch):
    saved = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-OLD - [0:0]
:PODMAN - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -j PODMAN
-A KUBE-SERVICES -d 10.215.0.1/32 -j KUBE-SVC-X
COMMIT
"""
    calls = []

    def fake_run(argv, check=True):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, saved if argv[0].endswith("-save") else "", "")
    monkeypatch.setattr(host, "run", fake_run)
    monkeypatch.setattr(host.shutil, "which", lambda tool: f"/usr/sbin/{tool}")
    assert host._drop_chains("iptables", {"nat": ["KUBE-OLD", "PODMAN", "PREROUTING"]}) == []
    assert ["iptables", "-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals",
            "-j", "KUBE-SERVICES"] in calls
    assert ["iptables", "-t", "nat", "-X", "KUBE-SERVICES"] in calls
    touched = " ".join(" ".join(c) for c in calls if c[0] == "iptables")
    assert "PODMAN" not in touched and "KUBE-OLD" not in touched  # not ours, or there before `up`


def test_a_pid_file_of_a_process_that_is_gone_or_replaced_names_no_process(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "x.pid").write_text(f"{proc.pid} {processes.start_time(proc.pid)}\n")
        assert processes.running("x", tmp_path) == proc.pid
        (tmp_path / "x.pid").write_text(f"{proc.pid} 1\n")  # same pid, another start time: a reused pid
        assert processes.running("x", tmp_path) is None
    finally:
        proc.kill()
        proc.wait()
    (tmp_path / "x.pid").write_text(f"{proc.pid} {processes.start_time(proc.pid)}\n")
    assert processes.running("x", tmp_path) is None



class _FakeVolumes:
    """The three lists the provisioner reads, and what it creates and deletes."""

    def __init__(self, claims, volumes, classes):
        self.claims, self.volumes, self.classes = claims, volumes, classes
        self.created, self.deleted = [], []

    def list_storage_class(self, **_):
        return SimpleNamespace(items=self.classes)

    def list_persistent_volume(self, **_):
        return SimpleNamespace(items=self.volumes)

    def list_persistent_volume_claim_for_all_namespaces(self, **_):
        return SimpleNamespace(items=self.claims)

    def create_persistent_volume(self, body, **_):
        self.created.append(body)

    def delete_persistent_volume(self, name, **_):
        self.deleted.append(name)


def _claim(name, phase="Pending", sc="standard", volume=None):
    spec = SimpleNamespace(storage_class_name=sc, volume_name=volume, access_modes=["ReadWriteOnce"],
                           volume_mode=None, resources=SimpleNamespace(requests={"storage": "1Gi"}))
    return SimpleNamespace(metadata=SimpleNamespace(name=name, namespace="it-core", uid=f"uid-{name}"), spec=spec,
                           status=SimpleNamespace(phase=phase))


def test_provisioner_makes_a_world_writable_directory_and_a_bound_volume_per_pending_claim(tmp_path):
    from indmlops.targets.kubernetes.cluster import provisioner

    sc = SimpleNamespace(metadata=SimpleNamespace(name="standard"), provisioner=provisioner.PROVISIONER,
                         reclaim_policy="Delete")
    other = SimpleNamespace(metadata=SimpleNamespace(name="fast"), provisioner="example.com/other",
                            reclaim_policy="Delete")
    released = SimpleNamespace(metadata=SimpleNamespace(name="pvc-old", annotations={
        "pv.kubernetes.io/provisioned-by": provisioner.PROVISIONER}), status=SimpleNamespace(phase="Released"),
        spec=SimpleNamespace(claim_ref=None, persistent_volume_reclaim_policy="Delete",
                             host_path=SimpleNamespace(path=str(tmp_path / "pvc-old"))))
    outside = SimpleNamespace(metadata=SimpleNamespace(name="pvc-evil", annotations={
        "pv.kubernetes.io/provisioned-by": provisioner.PROVISIONER}), status=SimpleNamespace(phase="Released"),
        spec=SimpleNamespace(claim_ref=None, persistent_volume_reclaim_policy="Delete",
                             host_path=SimpleNamespace(path="/etc")))
    (tmp_path / "pvc-old").mkdir()
    api = _FakeVolumes([_claim("data"), _claim("bound", phase="Bound", volume="pv-1"), _claim("x", sc="fast")],
                       [released, outside], [sc, other])
    provisioner.reconcile(api, api, tmp_path, log=lambda _m: None)
    assert [v["spec"]["claimRef"]["name"] for v in api.created] == ["data"]  # not bound, not another provisioner's
    path = tmp_path / "pvc-uid-data"
    assert api.created[0]["spec"]["hostPath"]["path"] == str(path)
    assert oct(path.stat().st_mode & 0o777) == "0o777"  # any uid: the kubelet changes no hostPath ownership
    assert api.deleted == ["pvc-old", "pvc-evil"] and not (tmp_path / "pvc-old").exists()
    assert Path("/etc").is_dir()  # a volume pointing outside the root loses its object, never a file
