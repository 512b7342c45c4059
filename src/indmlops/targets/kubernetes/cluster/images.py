"""Images into the cluster's containerd without a registry: the pod sandbox image made here from the built `pause`
binary (one layer, an OCI archive written by hand), and any OCI archive `ctr images import` takes."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from indmlops import containers
from indmlops.errors import IndMLOpsError
from indmlops.targets.kubernetes.cluster.components import PAUSE_IMAGE, Layout

Progress = Callable[[str], None]


def ctr(layout: Layout) -> list[str]:
    return ["ctr", "--address", str(layout.containerd_sock), "--namespace", "k8s.io"]


def present(layout: Layout) -> set[str]:
    res = subprocess.run(ctr(layout) + ["images", "ls", "-q"], capture_output=True, text=True, timeout=60,
                         check=False)
    return set(res.stdout.split()) if res.returncode == 0 else set()


def import_archive(layout: Layout, archive: Path, name: str) -> None:
    res = subprocess.run(ctr(layout) + ["images", "import", "--no-unpack=false", str(archive)], capture_output=True,
                         text=True, timeout=900, check=False)
    if res.returncode != 0:
        raise IndMLOpsError(f"containerd could not import {name} from {archive}: {res.stderr.strip()[-800:]}")


def load_from_engine(layout: Layout, engine: str, source: str, ref: str, progress: Progress) -> float:
    """An image of the container engine (Podman or Docker) into the cluster's containerd as `ref`, the name the
    kubelet looks up (`qualified`: `indmlops-probe:0.1.0` is docker.io/library/indmlops-probe:0.1.0). Returns the
    seconds it took."""
    t0 = time.monotonic()
    full = containers.qualified(ref)
    image_id = ""
    for argv in ([engine, "image", "inspect", "--format", "{{.Id}}", source], [engine, "tag", source, full]):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise IndMLOpsError(f"image {source}: `{' '.join(argv)}` failed: {res.stderr.strip() or 'no such image'}"
                                f"; build it with `indmlops images build` (scripts/build-images.sh)")
        if "inspect" in argv:
            image_id = res.stdout.strip()
    # By what was built, not by name: a rebuilt image keeps its tag (dev, 0.1.0), and a check by name alone left the
    # cluster running the previous build of the edge after a fix was rebuilt.
    stamp = layout.root / "images" / hashlib.sha256(full.encode()).hexdigest()[:16]
    if full in present(layout) and stamp.is_file() and stamp.read_text().split()[0] == image_id:
        return 0.0
    with tempfile.TemporaryDirectory(prefix="indmlops-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        res = subprocess.run([engine, "save", "-o", str(archive), full], capture_output=True, text=True,
                             timeout=900, check=False)
        if res.returncode != 0:
            raise IndMLOpsError(f"`{engine} save {full}` failed: {res.stderr.strip()}")
        import_archive(layout, archive, full)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"{image_id} {full}\n")
    took = time.monotonic() - t0
    progress(f"containerd: {full} imported from {engine} {source} in {took:.1f} s")
    return took


def _blob(out: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    _add(out, f"blobs/sha256/{digest}", data)
    return f"sha256:{digest}", len(data)


def _add(out: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    out.addfile(info, io.BytesIO(data))


def pause_archive(binary: Path, name: str = PAUSE_IMAGE) -> bytes:
    """An OCI image archive: /pause as the only file and the entrypoint."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        _add(layer, "pause", binary.read_bytes(), 0o755)
    layer_bytes = layer_buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        layer_digest, layer_size = _blob(out, layer_bytes)
        cfg_digest, cfg_size = _blob(out, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                               "size": cfg_size},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                                "size": layer_size}]}
        m_digest, m_size = _blob(out, json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_digest, "size": m_size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}]}
        _add(out, "index.json", json.dumps(index).encode())
        _add(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return buf.getvalue()


def ensure_pause(binary: Path, layout: Layout, progress: Progress) -> None:
    if PAUSE_IMAGE in present(layout):
        return
    with tempfile.TemporaryDirectory(prefix="indmlops-pause-") as tmp:
        archive = Path(tmp) / "pause.tar"
        archive.write_bytes(pause_archive(binary))
        import_archive(layout, archive, PAUSE_IMAGE)
    progress(f"containerd: sandbox image {PAUSE_IMAGE} imported")
