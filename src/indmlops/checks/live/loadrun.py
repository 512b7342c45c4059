"""Run load/locustfile.py with a fixtures/slo.yaml profile through Locust's library API, in a child process.

Why a child: importing Locust monkey-patches the whole process with gevent (threads become greenlets), which
pytest, supervisor's XML-RPC client and the suite's own MQTT clients must not run under. The parent
(`run(...)`) starts `python -m indmlops.checks.live.loadrun`, which writes into the output directory:
  locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv, locust.html
  result.json   exact samples and the accounting the SLO verdict needs (published, matched, lost, duplicates,
                requested readings, generator CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from indmlops.errors import IndMLOpsError
from indmlops.paths import REPO_ROOT
from indmlops.slo import Profile, requested_readings

LOCUSTFILE = REPO_ROOT / "load" / "locustfile.py"


@dataclass
class LoadResult:
    out_dir: Path
    samples: list[tuple[float, str, float]]  # (wall time s, operation, ms)
    published: int
    matched: int
    lost: int  # acknowledged, never predicted, while a later reading of its machine was (indmlops.delivery)
    duplicates: int
    requested: float
    generator_cpu: float  # cores the generator used during the load (user + sys over wall)
    seconds: float
    failures: dict[str, int]  # operation → failed requests (lost and duplicates included for mqtt:e2e)
    requests: dict[str, int]
    late: int = 0  # predicted, but more than the locustfile's LATE_AFTER_S after being published
    undrained: int = 0  # acknowledged, no prediction when the drain ended: not shown lost
    unacknowledged: int = 0  # published, not acknowledged by the broker when the drain ended
    acknowledged: int = 0
    weak_qos: int = 0  # predictions that arrived below QoS 1 on a QoS 1 subscription
    delivery: str = ""  # indmlops.delivery's summary: counts, late delays, examples, how the drain ended

    @classmethod
    def read(cls, out_dir: Path) -> LoadResult:
        doc = json.loads((out_dir / "result.json").read_text())
        doc["samples"] = [tuple(s) for s in doc["samples"]]
        return cls(out_dir=out_dir, **doc)


def run(profile: Profile, *, mqtt: str, inference_url: str, publisher: tuple[str, str],
        subscriber: tuple[str, str], out_dir: Path, run_tag: str = "", timeout_pad: float = 120.0) -> LoadResult:
    """Apply `profile`'s load to the broker and inference service given; wait, then read the child's result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").unlink(missing_ok=True)
    env = dict(os.environ, INDMLOPS_LOAD_PUB_PASSWORD=publisher[1], INDMLOPS_LOAD_SUB_PASSWORD=subscriber[1])
    cmd = [sys.executable, "-m", "indmlops.checks.live.loadrun", "--out", str(out_dir), "--shape", profile.shape,
           "--duration", str(profile.duration_s), "--mqtt-users", str(profile.mqtt_users),
           "--rate-per-user", str(profile.rate_per_user), "--http-users", str(profile.http_users),
           "--http-rate-per-user", str(profile.http_rate_per_user),
           "--mqtt", mqtt, "--host", inference_url, "--publisher-user", publisher[0],
           "--subscriber-user", subscriber[0], "--run-tag", run_tag or f"load-{os.getpid()}-{int(time.time())}"]
    (out_dir / "reproduce.sh").write_text(
        "#!/bin/sh\n# the load of this run (passwords from the environment variables named below)\n"
        + " ".join(cmd) + "\n")
    with open(out_dir / "locust.log", "w") as log:
        try:
            proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=profile.duration_s + timeout_pad)
        except subprocess.TimeoutExpired:
            raise IndMLOpsError(f"the load generator did not finish within {profile.duration_s + timeout_pad:.0f} s; "
                                f"log: {out_dir / 'locust.log'}") from None
    if proc.returncode != 0 or not (out_dir / "result.json").exists():
        tail = (out_dir / "locust.log").read_text()[-1500:]
        raise IndMLOpsError(f"the load generator failed (exit {proc.returncode}); "
                            f"log {out_dir / 'locust.log'}:\n{tail}")
    return LoadResult.read(out_dir)


def _child(argv: list[str]) -> int:
    import importlib.util
    import resource

    import gevent
    import locust
    from locust import stats as locust_stats
    from locust.argument_parser import get_parser
    from locust.env import Environment
    from locust.html import get_html_report

    own = argparse.ArgumentParser()
    own.add_argument("--out", type=Path, required=True)
    own.add_argument("--duration", type=float, required=True)
    args, rest = own.parse_known_args(argv)
    spec = importlib.util.spec_from_file_location("indmlops_locustfile", LOCUSTFILE)
    if spec is None or spec.loader is None:
        raise IndMLOpsError(f"cannot load the locustfile {LOCUSTFILE} as a module")
    lf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lf)  # registers its options and listeners on locust.events
    # No config files: a locust.conf in the working directory must not change the suite's load.
    opts = get_parser(default_config_files=[]).parse_args([
        "-f", str(LOCUSTFILE), "--headless", "--shape-seconds", str(args.duration),
        "--publisher-password-env", "INDMLOPS_LOAD_PUB_PASSWORD",
        "--subscriber-password-env", "INDMLOPS_LOAD_SUB_PASSWORD",
        *rest])
    users = [lf.EdgeMqttUser] + ([lf.PredictHttpUser] if opts.http_users else [])
    env = Environment(user_classes=users, shape_class=lf.EdgeShape(), events=locust.events, parsed_options=opts,
                      host=opts.host)
    runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    lf.matcher(env)  # subscribe before the first reading goes out
    csv = locust_stats.StatsCSVFileWriter(env, locust_stats.PERCENTILES_TO_REPORT, str(args.out / "locust"),
                                          full_history=True)
    writer = gevent.spawn(csv.stats_writer)
    gevent.spawn(locust_stats.stats_history, runner)

    def usage() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    load: dict[str, float] = {}

    def stop() -> None:
        load["cpu"], load["end"] = usage(), time.monotonic()
        runner.quit()  # fires test_stop: the matcher waits for late predictions, then counts the rest lost

    cpu0, t0 = usage(), time.monotonic()
    runner.start_shape()
    gevent.spawn_later(args.duration, stop)
    runner.greenlet.join()
    gevent.sleep(1.2)  # one more CSV interval (1 s) so the files hold the final numbers
    writer.kill()
    csv.close_files()
    (args.out / "locust.html").write_text(get_html_report(env, show_download_link=False), encoding="utf-8")
    m = lf.matcher(env)
    seconds = load["end"] - t0
    requested = requested_readings(opts.shape, opts.mqtt_users, opts.rate_per_user, opts.shape_seconds, seconds)
    entries = runner.stats.entries.values()
    acc = m.accounting
    result = {"samples": m.samples, "published": m.published, "matched": m.matched, "lost": acc.lost,
              "late": acc.late, "undrained": acc.undrained, "unacknowledged": acc.unacknowledged,
              "acknowledged": acc.acknowledged, "delivery": acc.summary(), "duplicates": m.duplicates,
              "weak_qos": m.weak_qos,
              "requested": requested, "generator_cpu": (load["cpu"] - cpu0) / seconds,
              "seconds": seconds, "failures": {e.name: e.num_failures for e in entries},
              "requests": {e.name: e.num_requests for e in entries}}
    (args.out / "result.json").write_text(json.dumps(result))
    print(f"loadrun: {m.published} readings published ({requested:.0f} requested), {m.matched} predicted, "
          f"{acc.lost} lost, {acc.undrained} undrained, {m.duplicates} duplicates; "
          f"generator {result['generator_cpu']:.2f} cores", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
