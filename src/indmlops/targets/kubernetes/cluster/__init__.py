"""The single-node Kubernetes cluster this machine can run (`indmlops cluster up | down | status`): server binaries
built from Debian's source package, etcd, containerd with runc, the CNI bridge, kube-proxy and a cluster DNS, all
state under one directory, on loopback and a bridge of its own.

The network plan is fixed and private: nothing here routes to any address but loopback, the node bridge, and the
pods and Services the cluster itself creates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkPlan:
    node_bridge: str = "indk8s0"  # an empty bridge holding the node IP (no dummy links here; loopback cannot be it)
    node_ip: str = "10.213.0.1"
    node_prefix: int = 24
    pod_bridge: str = "indk8s-cni0"  # the CNI bridge plugin's, made when the first pod starts
    pod_cidr: str = "10.214.0.0/24"
    cluster_cidr: str = "10.214.0.0/16"
    service_cidr: str = "10.215.0.0/16"
    api_service_ip: str = "10.215.0.1"  # the first address of service_cidr: Service default/kubernetes
    dns_domain: str = "cluster.local"
    api_port: int = 6443
    etcd_client_port: int = 12379
    etcd_peer_port: int = 12380

    @property
    def api_url(self) -> str:
        return f"https://{self.node_ip}:{self.api_port}"


NODE_NAME = "indmlops-node"
CONTEXT = "indmlops-cluster"
PLAN = NetworkPlan()
