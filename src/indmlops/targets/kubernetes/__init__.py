"""The Kubernetes target: any cluster through a kubeconfig, or a kind cluster it creates. API access, pods,
port-forwards, probe pods, the deploy order and the enforcement canary live here; nothing here imports the local
target."""

# The CNI applied to a kind cluster that has none: Calico v3.30.0, as manifests/README.md explains.
CALICO_MANIFEST = "https://raw.githubusercontent.com/projectcalico/calico/v3.30.0/manifests/calico.yaml"
KIND_CONTEXT = "kind-indmlops"  # `kind create cluster --name indmlops` names its context so
