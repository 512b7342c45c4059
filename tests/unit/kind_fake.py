"""Stand-ins for `kind`, `docker`, `podman` and `kubectl apply`, first on PATH: each logs its argv to one log; kind
writes a kubeconfig that points at the fake API server (kube_fake.FakeKindApi). Knobs are files in the state dir."""

from __future__ import annotations

import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

# `kind`: clusters listed in $S/clusters; create/export copy $S/kubeconfig.yaml to --kubeconfig (making its
# directory, as kind does); $S/create-fails
# holds the stderr of a failing create.
KIND = r"""#!/bin/sh
S={state}
echo "kind $* [provider=${{KIND_EXPERIMENTAL_PROVIDER:-docker}}]" >> "$S/log"
kc=""; prev=""
for a in "$@"; do [ "$prev" = "--kubeconfig" ] && kc="$a"; prev="$a"; done
case "$1 $2" in
  "get clusters") cat "$S/clusters" 2>/dev/null; [ -s "$S/clusters" ] || echo "No kind clusters found." >&2 ;;
  "create cluster")
    if [ -f "$S/create-fails" ]; then cat "$S/create-fails" >&2; exit 1; fi
    mkdir -p "$(dirname "$kc")"; cp "$S/kubeconfig.yaml" "$kc"; echo indmlops >> "$S/clusters" ;;
  "export kubeconfig") mkdir -p "$(dirname "$kc")"; cp "$S/kubeconfig.yaml" "$kc" ;;
  "delete cluster") : > "$S/clusters" ;;
  "load image-archive") [ -f "$3" ] || {{ echo "ERROR: no archive $3" >&2; exit 1; }} ;;
esac
"""

# `docker`/`podman`: images that exist are listed in $S/images; podman save writes the archive.
ENGINE = r"""#!/bin/sh
S={state}
echo "{name} $*" >> "$S/log"
case "$1" in
  info) exit 0 ;;
  image) grep -qx "$3" "$S/images" 2>/dev/null || {{ echo "Error: {name}: No such image: $3" >&2; exit 1; }} ;;
  save) echo archive > "$3" ;;
esac
"""

# `kubectl`: `apply -f -` keeps each applied stream as $S/applied-NNN.yaml; `apply -f X` (the CNI) fails when
# $S/cni-fails exists; anything else is the real kubectl, against the fake API server.
KUBECTL = r"""#!/bin/sh
S={state}
echo "kubectl $*" >> "$S/log"
case " $* " in
  *" apply -f - "*)
    n=$(ls "$S" | grep -c '^applied-'); cat > "$S/applied-$(printf %03d "$n").yaml"
    if [ -f "$S/apply-fails" ]; then cat "$S/apply-fails" >&2; exit 1; fi ;;
  *" apply -f "*)
    if [ -f "$S/cni-fails" ]; then cat "$S/cni-fails" >&2; exit 1; fi
    touch "$S/cni-applied" ;;
  *) exec {real} "$@" ;;
esac
"""


@dataclass
class Stubs:
    bin: Path
    state: Path

    @property
    def kubectl(self) -> str:
        return str(self.bin / "kubectl")

    def log(self) -> list[str]:
        path = self.state / "log"
        return path.read_text().splitlines() if path.exists() else []

    def applied(self) -> list[list[tuple[str, str, str]]]:
        """Each `kubectl apply -f -` in order: its objects as (kind, namespace, name)."""
        out = []
        for f in sorted(self.state.glob("applied-*.yaml")):
            out.append([(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
                        for d in yaml.safe_load_all(f.read_text()) if d])
        return out

    def knob(self, name: str, text: str = "") -> None:
        (self.state / name).write_text(text)


def _script(path: Path, body: str) -> None:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def make_stubs(root: Path, kubeconfig_text: str, *, engines: tuple[str, ...] = ("docker",),
               images: list[str] = (), clusters: list[str] = ()) -> Stubs:
    """A bin dir (name with a space: the lifecycle must quote paths) with kind, the engines and kubectl."""
    bin_dir, state = root / "stub bin", root / "kind state"
    bin_dir.mkdir(parents=True)
    state.mkdir(parents=True)
    (state / "kubeconfig.yaml").write_text(kubeconfig_text)
    (state / "images").write_text("".join(f"{i}\n" for i in images))
    (state / "clusters").write_text("".join(f"{c}\n" for c in clusters))
    q = shlex.quote(str(state))
    _script(bin_dir / "kind", KIND.format(state=q))
    for name in engines:
        _script(bin_dir / name, ENGINE.format(state=q, name=name))
    _script(bin_dir / "kubectl", KUBECTL.format(state=q, real=shlex.quote(str(Path(sys.executable).parent /
                                                                              "kubectl"))))
    return Stubs(bin_dir, state)
