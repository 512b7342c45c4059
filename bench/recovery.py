"""Benchmark: how long each supervised component takes from SIGKILL to answering its protocol again, the figure the
recovery bounds in fixtures/slo.yaml (`recovery_s`) are derived from: bound = ceil(margin × the worst kill here).

Each component is killed `--kills` times through the target (the same kill() and wait_ready() the smoke, durability
and chaos suites use), the components interleaved round by round so a slow minute of this shared machine hits all
alike. Printed per component: median and worst kill → ready, the bound the fixtures give now, the bound the worst
would give, and the ratio of the shipped bound to the worst (the comment in slo.yaml says ≤ margin). `--yaml` prints
the `measured` block to paste.

    .venv/bin/python bench/recovery.py [--kills 5] [--target local|cluster|kubeconfig] [--yaml]
    (local: needs a running stack, `indmlops up` (with `--slow-fsync-ms 3` for the slower disk); INDMLOPS_STATE_DIR
    and INDMLOPS_PORT_OFFSET select it. cluster: `indmlops cluster up` and the stack deployed, as root)
"""

from __future__ import annotations

import argparse
import statistics
import time

from indmlops import slo
from indmlops.targets.factory import TargetSpec, open_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--target", default="local", choices=["local", "cluster", "kubeconfig"])
    ap.add_argument("--components", nargs="*", default=None)
    ap.add_argument("--yaml", action="store_true")
    a = ap.parse_args()
    spec = TargetSpec(name=a.target, start=False)
    with open_target(spec, print) as target:
        kind = slo.recovery_kind(target.name)
        components = a.components or list(slo.recovery_table()["measured"][kind])
        took: dict[str, list[float]] = {c: [] for c in components}
        for round_ in range(a.kills):
            for c in components:
                target.wait_ready(c, 300)
                kill = target.kill(c)
                while target.identity(c) == kill.identity:
                    time.sleep(0.05)
                target.wait_ready(c, 300)
                took[c].append(time.time() - kill.at)
                print(f"round {round_ + 1}: {c} back in {took[c][-1]:.2f} s", flush=True)
        print(f"\n{target.name} ({kind}), {a.kills} kills each; margin {slo.recovery_table()['margin']}")
        print(f"{'component':<11} {'median':>7} {'worst':>7} {'bound now':>9} {'from worst':>10} {'now/worst':>9}")
        for c, xs in took.items():
            worst = max(xs)
            print(f"{c:<11} {statistics.median(xs):>6.2f}s {worst:>6.2f}s {slo.recovery_bound(kind, c):>8g}s "
                  f"{slo.bound_from(worst):>9g}s {slo.recovery_bound(kind, c) / worst:>8.1f}x")
        if a.yaml:
            print(f"    {kind}:")
            for c, xs in took.items():
                print(f"      {c}: {max(xs):.1f}")


if __name__ == "__main__":
    main()
