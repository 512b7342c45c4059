"""The cluster's processes, in start order, each as an argv with its configuration files: what the field notes
found each component needs here (containerd without negative oom_score_adj, cgroupfs, a local pause image; a
kubelet that never asks a cloud; kube-proxy leaving conntrack sysctls alone)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from indmlops.targets.kubernetes.cluster import NODE_NAME, NetworkPlan

PAUSE_IMAGE = "localhost/indmlops-pause:3.4"
CNI_BIN = "/usr/lib/cni"
CNI_NETWORK = "indmlops-pods"


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    health: str  # how `status` and `up` know it answers: an http(s) URL, "node" or "socket:<path>"
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """Every path of one cluster, under its state directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd(self) -> Path:
        return self.root / "etcd"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def containerd_sock(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "config" / "resolv.conf"


def cni_conflist(plan: NetworkPlan, layout: Layout) -> dict:
    return {
        "cniVersion": "0.4.0", "name": CNI_NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": plan.pod_bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(layout.cni_data_dir),
                      "ranges": [[{"subnet": plan.pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def containerd_toml(layout: Layout) -> str:
    c = layout.containerd
    return f"""version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
oom_score = 0
[grpc]
  address = "{layout.containerd_sock}"
[ttrpc]
  address = "{layout.containerd_sock}.ttrpc"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{layout.cni_conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"""


def kubelet_config(plan: NetworkPlan, layout: Layout) -> dict:
    pki = layout.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": plan.node_ip, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet.crt"), "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "cgroupDriver": "cgroupfs", "failSwapOn": False,
        "clusterDNS": [plan.node_ip], "clusterDomain": plan.dns_domain, "resolvConf": str(layout.resolv_conf),
        # A shared, noisy machine with a disk that is not ours: evict only when truly short, never GC images.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                         "nodefs.inodesFree": "2%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False, "maxPods": 60, "podPidsLimit": 4096,
        "syncFrequency": "10s", "fileCheckFrequency": "10s", "nodeStatusReportFrequency": "20s",
        "protectKernelDefaults": False, "makeIPTablesUtilChains": True,
        "rotateCertificates": False, "serverTLSBootstrap": False,
        "containerLogMaxSize": "5Mi", "containerLogMaxFiles": 2,
    }


def components(plan: NetworkPlan, layout: Layout, bin_dir: Path, python: str) -> list[Component]:
    pki, cfg = layout.pki, layout.config
    etcd = f"http://127.0.0.1:{plan.etcd_client_port}"
    return [
        Component("etcd", [
            "etcd", "--name", "indmlops", "--data-dir", str(layout.etcd),
            "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
            "--listen-peer-urls", f"http://127.0.0.1:{plan.etcd_peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{plan.etcd_peer_port}",
            "--initial-cluster", f"indmlops=http://127.0.0.1:{plan.etcd_peer_port}",
            "--listen-metrics-urls", "", "--log-level", "warn", "--quota-backend-bytes", str(2 * 1024 ** 3),
        ], f"{etcd}/health"),
        Component("kube-apiserver", [
            str(bin_dir / "kube-apiserver"), "--etcd-servers", etcd,
            "--bind-address", plan.node_ip, "--secure-port", str(plan.api_port), "--advertise-address", plan.node_ip,
            "--service-cluster-ip-range", plan.service_cidr,
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--kubelet-client-certificate", str(pki / "apiserver-kubelet-client.crt"),
            "--kubelet-client-key", str(pki / "apiserver-kubelet-client.key"),
            "--kubelet-certificate-authority", str(pki / "ca.crt"),
            "--kubelet-preferred-address-types", "InternalIP",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-account-issuer", f"https://kubernetes.default.svc.{plan.dns_domain}",
            "--authorization-mode", "Node,RBAC", "--allow-privileged=true", "--profiling=false",
            "--enable-admission-plugins", "NodeRestriction", "--event-ttl", "1h",
        ], f"{plan.api_url}/readyz"),
        Component("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), "--kubeconfig", str(cfg / "controller-manager.kubeconfig"),
            "--bind-address", "127.0.0.1", "--port", "0", "--secure-port", "10257",
            "--authentication-kubeconfig", str(cfg / "controller-manager.kubeconfig"),
            "--authorization-kubeconfig", str(cfg / "controller-manager.kubeconfig"),
            "--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt"),
            "--use-service-account-credentials=true", "--leader-elect=false",
            "--cluster-cidr", plan.cluster_cidr, "--service-cluster-ip-range", plan.service_cidr,
            # Claims are provisioned by the cluster's own volume provisioner (cluster/provisioner.py), not 1.20's
            # hostpath one (root-only directories under a hard-coded /tmp/hostpath_pv).
            "--controllers", "*,-cloud-node-lifecycle",
        ], "https://127.0.0.1:10257/healthz"),
        Component("kube-scheduler", [
            str(bin_dir / "kube-scheduler"), "--kubeconfig", str(cfg / "scheduler.kubeconfig"),
            "--authentication-kubeconfig", str(cfg / "scheduler.kubeconfig"),
            "--authorization-kubeconfig", str(cfg / "scheduler.kubeconfig"),
            "--bind-address", "127.0.0.1", "--port", "0", "--secure-port", "10259", "--leader-elect=false",
        ], "https://127.0.0.1:10259/healthz"),
        Component("containerd", ["containerd", "--config", str(cfg / "containerd.toml")],
                  f"socket:{layout.containerd_sock}"),
        Component("kubelet", [
            str(bin_dir / "kubelet"), "--config", str(cfg / "kubelet.yaml"),
            "--kubeconfig", str(cfg / "kubelet.kubeconfig"), "--root-dir", str(layout.kubelet),
            "--container-runtime", "remote", "--container-runtime-endpoint", f"unix://{layout.containerd_sock}",
            "--node-ip", plan.node_ip, "--hostname-override", NODE_NAME, "--cloud-provider", "",
            "--pod-infra-container-image", PAUSE_IMAGE, "--v", "1",
        ], "http://127.0.0.1:10248/healthz", {"AWS_EC2_METADATA_DISABLED": "true"}),
        Component("kube-proxy", [
            str(bin_dir / "kube-proxy"), "--kubeconfig", str(cfg / "kube-proxy.kubeconfig"),
            "--hostname-override", NODE_NAME, "--bind-address", plan.node_ip, "--proxy-mode", "iptables",
            "--cluster-cidr", plan.cluster_cidr, "--metrics-bind-address", "127.0.0.1:10249",
            "--healthz-bind-address", "127.0.0.1:10256",
            # 0 = leave the host's conntrack settings as they are (nothing to restore afterwards).
            "--conntrack-max-per-core", "0", "--conntrack-tcp-timeout-established", "0",
            "--conntrack-tcp-timeout-close-wait", "0",
        ], "http://127.0.0.1:10256/healthz"),
        Component("cluster-dns", [
            python, "-m", "indmlops.targets.kubernetes.cluster.dns", "--kubeconfig", str(cfg / "dns.kubeconfig"),
            "--listen", plan.node_ip, "--domain", plan.dns_domain,
        ], "node"),
        Component("volume-provisioner", [
            python, "-m", "indmlops.targets.kubernetes.cluster.provisioner",
            "--kubeconfig", str(cfg / "provisioner.kubeconfig"), "--root", str(layout.volumes),
        ], "node"),
    ]


def write_configs(plan: NetworkPlan, layout: Layout) -> None:
    cfg = layout.config
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "containerd.toml").write_text(containerd_toml(layout))
    (cfg / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(plan, layout), sort_keys=False))
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (layout.cni_conf_dir / "10-indmlops.conflist").write_text(json.dumps(cni_conflist(plan, layout), indent=1))
    # Pods with dnsPolicy Default get the node's resolver, which is the cluster DNS: no query leaves the machine.
    layout.resolv_conf.write_text(f"nameserver {plan.node_ip}\noptions ndots:1\n")
