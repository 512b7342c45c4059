"""Where each component lives on Kubernetes: one table, derived from the labels and Services in manifests/base."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KubeComponent:
    """A component of the seam as deployed by manifests/base.

    `selector` is the pod label selector of its Deployment/StatefulSet (`app.kubernetes.io/name=<name>`),
    `service`/`port` the Service port a check reaches it on, `scheme` the Endpoint scheme the local target uses.
    """

    name: str
    namespace: str
    app: str  # value of app.kubernetes.io/name on the pods and their Service
    service: str | None  # None: the component listens nowhere (the simulator)
    port: int | None
    scheme: str

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/name={self.app}"

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.app} ({self.selector})"


# Seam name → deployment. "s3" is MinIO on Kubernetes (SeaweedFS on the local target); both speak S3.
# tests/unit/test_kubernetes_target.py checks this table against the rendered manifests, so a renamed label,
# Service or port fails there rather than at night on a cluster.
COMPONENTS: dict[str, KubeComponent] = {c.name: c for c in (
    KubeComponent("postgres", "it-core", "postgres", "postgres-svc", 5432, "postgresql"),
    KubeComponent("s3", "it-core", "minio", "minio-svc", 9000, "http"),
    KubeComponent("mlflow", "it-core", "mlflow", "mlflow-svc", 5000, "http"),
    KubeComponent("jupyter", "it-core", "jupyter", "jupyter-svc", 8888, "http"),
    KubeComponent("mosquitto", "ot-edge", "mosquitto", "mosquitto-svc", 1883, "mqtt"),
    KubeComponent("nodered", "ot-edge", "nodered", "nodered-svc", 1880, "http"),
    KubeComponent("inference", "ot-edge", "inference", "inference-svc", 8088, "http"),
    KubeComponent("simulator", "ot-edge", "simulator", None, None, "mqtt"),
    KubeComponent("prometheus", "governance", "prometheus", "prometheus-svc", 9090, "http"),
    KubeComponent("grafana", "governance", "grafana", "grafana-svc", 3000, "http"),
)}

# Secrets (names before kustomize's hash suffix) and their keys, from the secretGenerators of manifests/base.
SECRETS = {
    "postgres": ("it-core", "postgres-credentials"),  # username, password
    "s3": ("it-core", "minio-credentials"),  # root-user, root-password
    "mosquitto": ("ot-edge", "mqtt-credentials"),  # one key per MQTT role
    "grafana": ("governance", "grafana-admin"),  # admin-user, admin-password
}
S3_BUCKET = "mlflow-bucket"  # created by manifests/base/02-it-core/minio-bucket-job.yaml
S3_REGION = "us-east-1"  # MLflow's AWS_DEFAULT_REGION in manifests/base/02-it-core/mlflow.yaml
POSTGRES_DATABASE = "mlflow"  # POSTGRES_DB in manifests/base/02-it-core/postgres.yaml
