"""The cluster's certificates and kubeconfigs: one CA, a serving certificate for the API server and the kubelet, a
client certificate per component (its Kubernetes identity is the certificate's CN and O), the ServiceAccount
signing key. Made once per state directory; a later `up` reuses them."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from indmlops.targets.kubernetes.cluster import CONTEXT, NODE_NAME, NetworkPlan

VALID_DAYS = 365


@dataclass(frozen=True)
class Identity:
    file: str  # <file>.crt / <file>.key
    cn: str
    org: str | None = None
    server: bool = False
    client: bool = True


def identities(plan: NetworkPlan) -> list[Identity]:
    return [
        Identity("apiserver", "kube-apiserver", server=True, client=False),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Identity("admin", "indmlops-admin", "system:masters"),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("kubelet-client", f"system:node:{NODE_NAME}", "system:nodes"),
        Identity("kubelet", NODE_NAME, server=True, client=False),
        Identity("dns", "indmlops-cluster-dns"),  # reads Services and Endpoints (a ClusterRole up() applies)
        Identity("provisioner", "indmlops-volume-provisioner"),  # claims and volumes (likewise)
    ]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def _sans(ident: Identity, plan: NetworkPlan) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address(plan.node_ip)), x509.DNSName("localhost")]
    if ident.file == "apiserver":
        names.append(x509.IPAddress(ipaddress.ip_address(plan.api_service_ip)))
        names += [x509.DNSName(n) for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                            f"kubernetes.default.svc.{plan.dns_domain}")]
    else:
        names.append(x509.DNSName(NODE_NAME))
    return names


def ensure(pki: Path, plan: NetworkPlan) -> None:
    """Write what is missing under `pki` (0700): ca.crt/key, <identity>.crt/key, sa.key/sa.pub."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if not (pki / "ca.crt").exists():
        new_key = _key()
        now = datetime.datetime.now(datetime.UTC)
        ca = (x509.CertificateBuilder().subject_name(_name("indmlops-cluster-ca")).issuer_name(_name(
            "indmlops-cluster-ca")).public_key(new_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS * 10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(new_key, hashes.SHA256()))
        (pki / "ca.key").write_bytes(_pem_key(new_key))
        (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        for ident in identities(plan):  # a new CA: every certificate is made again
            (pki / f"{ident.file}.crt").unlink(missing_ok=True)
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki / 'ca.key'}: not the EC key this module writes; remove {pki} to start over")
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    for ident in identities(plan):
        if not (pki / f"{ident.file}.crt").exists():
            _issue(pki, ident, plan, ca, ca_key)
    if not (pki / "sa.key").exists():
        sa = _key()
        (pki / "sa.key").write_bytes(_pem_key(sa))
        (pki / "sa.pub").write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for f in pki.iterdir():
        f.chmod(0o600)


def _issue(pki: Path, ident: Identity, plan: NetworkPlan, ca: x509.Certificate, ca_key) -> None:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if ident.server else []) + \
             ([ExtendedKeyUsageOID.CLIENT_AUTH] if ident.client else [])
    builder = (x509.CertificateBuilder().subject_name(_name(ident.cn, ident.org)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if ident.server:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(ident, plan)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    (pki / f"{ident.file}.key").write_bytes(_pem_key(key))
    (pki / f"{ident.file}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def kubeconfig(pki: Path, ident: str, server: str, context: str = CONTEXT) -> str:
    """A kubeconfig for one identity, its files referenced by absolute path (the state directory stays put)."""
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": server,
                                                   "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": f"{context}-{ident}", "user": {"client-certificate": str(pki / f"{ident}.crt"),
                                                          "client-key": str(pki / f"{ident}.key")}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-{ident}"}}],
    }
    return yaml.safe_dump(doc, sort_keys=False)
