"""Loading engine images into the cluster's containerd: by what was built, not by name (a rebuilt image keeps its
tag). The engine and ctr are faked at subprocess.run: this is the adapter's own logic."""

from __future__ import annotations

import subprocess
from pathlib import Path

from indmlops.targets.kubernetes.cluster import images
from indmlops.targets.kubernetes.cluster.components import Layout


class FakeEngine:
    def __init__(self) -> None:
        self.image_id = "sha256:aaa"
        self.loaded: dict[str, str] = {}  # containerd: ref -> image id
        self.imports = 0

    def run(self, argv, **_kw):
        if argv[:3] == ["podman", "image", "inspect"]:
            return subprocess.CompletedProcess(argv, 0, self.image_id + "\n", "")
        if argv[:2] == ["podman", "save"]:
            Path(argv[argv.index("-o") + 1]).write_text(self.image_id)
            return subprocess.CompletedProcess(argv, 0, "", "")
        if "import" in argv:
            self.imports += 1
            self.loaded["localhost/indmlops-inference:dev"] = Path(argv[-1]).read_text()
            return subprocess.CompletedProcess(argv, 0, "", "")
        if "ls" in argv:
            return subprocess.CompletedProcess(argv, 0, "\n".join(self.loaded), "")
        return subprocess.CompletedProcess(argv, 0, "", "")  # podman tag


def test_a_rebuilt_image_with_the_same_tag_is_loaded_again_and_an_unchanged_one_is_not(tmp_path, monkeypatch):
    fake = FakeEngine()
    monkeypatch.setattr(images.subprocess, "run", fake.run)
    layout, said = Layout(tmp_path), []
    load = lambda: images.load_from_engine(layout, "podman", "localhost/indmlops-inference:dev",
                                           "localhost/indmlops-inference:dev", said.append)
    load()
    assert fake.imports == 1 and fake.loaded["localhost/indmlops-inference:dev"] == "sha256:aaa"
    assert load() == 0.0 and fake.imports == 1  # the same build: nothing to do
    fake.image_id = "sha256:bbb"  # rebuilt, same tag
    load()
    assert fake.imports == 2 and fake.loaded["localhost/indmlops-inference:dev"] == "sha256:bbb"
    assert len(said) == 2 and all("imported from podman" in s for s in said)
