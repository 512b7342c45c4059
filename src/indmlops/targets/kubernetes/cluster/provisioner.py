"""The cluster's volume provisioner (StorageClass `standard`, provisioner indmlops.io/hostpath): a directory per
claim under the cluster's state directory, mode 0777 as kind's local-path provisioner makes them, so a pod of any
uid can write to its claim (the kubelet changes no ownership of hostPath volumes, and 1.20's built-in hostpath
provisioner makes root-only directories under a hard-coded /tmp/hostpath_pv). A released volume of reclaim policy
Delete is removed with its directory. Claims and volumes are read through the API every second.

    python -m indmlops.targets.kubernetes.cluster.provisioner --kubeconfig FILE --root DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

PROVISIONER = "indmlops.io/hostpath"
REFRESH = 1.0


def volume_for(pvc, storage_class, root: Path) -> dict:
    """The PersistentVolume that satisfies `pvc`, bound to it by claimRef."""
    name = f"pvc-{pvc.metadata.uid}"
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                     "labels": {"app.kubernetes.io/managed-by": "indmlops-cluster"}},
        "spec": {
            "capacity": {"storage": pvc.spec.resources.requests["storage"]},
            "accessModes": list(pvc.spec.access_modes or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": storage_class.reclaim_policy or "Delete",
            "storageClassName": storage_class.metadata.name,
            "volumeMode": pvc.spec.volume_mode or "Filesystem",
            "hostPath": {"path": str(root / name), "type": "Directory"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": pvc.metadata.namespace,
                         "name": pvc.metadata.name, "uid": pvc.metadata.uid},
        },
    }


def make_directory(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)  # any uid, as the pod's securityContext says (umask would narrow mkdir's mode)


def reconcile(core, storage, root: Path, log=print) -> None:
    classes = {sc.metadata.name: sc for sc in storage.list_storage_class(_request_timeout=10).items
               if sc.provisioner == PROVISIONER}
    volumes = core.list_persistent_volume(_request_timeout=10).items
    bound_to = {(pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) for pv in volumes if pv.spec.claim_ref}
    for pvc in core.list_persistent_volume_claim_for_all_namespaces(_request_timeout=10).items:
        sc = classes.get(pvc.spec.storage_class_name or "")
        key = (pvc.metadata.namespace, pvc.metadata.name)
        if sc is None or pvc.status.phase != "Pending" or pvc.spec.volume_name or key in bound_to:
            continue
        body = volume_for(pvc, sc, root)
        make_directory(Path(body["spec"]["hostPath"]["path"]))
        core.create_persistent_volume(body, _request_timeout=10)
        log(f"provisioned {body['metadata']['name']} for {key[0]}/{key[1]} at {body['spec']['hostPath']['path']}")
    for pv in volumes:
        annotations = pv.metadata.annotations or {}
        if (annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and pv.status.phase == "Released"
                and pv.spec.persistent_volume_reclaim_policy == "Delete"):
            path = Path(pv.spec.host_path.path)
            if root in path.parents:  # never a directory outside this provisioner's root
                shutil.rmtree(path, ignore_errors=True)
            core.delete_persistent_volume(pv.metadata.name, _request_timeout=10)
            log(f"deleted {pv.metadata.name} (released) and {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="volume-provisioner", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--root", required=True, type=Path)
    args = p.parse_args(argv)
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=args.kubeconfig)
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    args.root.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"volume-provisioner: {msg}", file=sys.stderr, flush=True)
    log(f"provisioning {PROVISIONER} under {args.root}")
    while True:
        try:
            reconcile(core, storage, args.root.resolve(), log)
        except Exception as exc:  # the API restarting: try again next round
            log(f"{type(exc).__name__}: {exc}")
        time.sleep(REFRESH)


if __name__ == "__main__":
    sys.exit(main())
