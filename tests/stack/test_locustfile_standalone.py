"""load/locustfile.py runs on its own with the `locust` command, as a user would run it (headless here)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indmlops.paths import REPO_ROOT

pytestmark = pytest.mark.stack


def test_locust_command_reports_e2e_and_predict_when_run_headless(target, tmp_path):
    ep = target.endpoint("mosquitto")
    env = dict(os.environ, PUB_PW=target.credentials("mosquitto", "simulator").password,
               SUB_PW=target.credentials("mosquitto", "monitor").password)
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(REPO_ROOT / "load" / "locustfile.py"),
           "--headless", "-t", "4s", "--only-summary", "--csv", str(tmp_path / "run"), "--shape", "step",
           "--mqtt-users", "4", "--rate-per-user", "5", "--http-users", "1", "--http-rate-per-user", "20",
           "--mqtt", f"{ep.host}:{ep.port}", "--host", target.endpoint("inference").url,
           "--publisher-password-env", "PUB_PW", "--subscriber-password-env", "SUB_PW"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(cmd)}\nexit {out.returncode}\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
    with open(tmp_path / "run_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    for name in ("mqtt:e2e", "mqtt:publish", "http:predict"):
        assert int(rows[name]["Request Count"]) > 0, f"{name}: no requests in {tmp_path / 'run_stats.csv'}"
        assert int(rows[name]["Failure Count"]) == 0, f"{name}: failures in {tmp_path / 'run_failures.csv'}"


def test_locust_distributed_master_and_worker_report_e2e(target, tmp_path):
    ep = target.endpoint("mosquitto")
    env = dict(os.environ, PUB_PW=target.credentials("mosquitto", "simulator").password,
               SUB_PW=target.credentials("mosquitto", "monitor").password)
    locust = [str(Path(sys.executable).parent / "locust"), "-f", str(REPO_ROOT / "load" / "locustfile.py")]
    common = ["--mqtt", f"{ep.host}:{ep.port}", "--host", target.endpoint("inference").url,
              "--publisher-password-env", "PUB_PW", "--subscriber-password-env", "SUB_PW"]
    port = "15557"  # the master's bind port for workers (below the ephemeral range)
    worker = subprocess.Popen(locust + ["--worker", "--master-port", port] + common, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = subprocess.run(locust + ["--master", "--master-bind-port", port, "--headless", "--expect-workers", "1",
                                       "-t", "4s", "--only-summary", "--csv", str(tmp_path / "dist"),
                                       "--mqtt-users", "2", "--rate-per-user", "5", "--http-users", "1"] + common,
                             env=env, capture_output=True, text=True, timeout=90)
    finally:
        worker.terminate()
        worker_log = worker.communicate(timeout=30)[0]
    assert out.returncode == 0, f"master exit {out.returncode}\n{out.stdout[-1500:]}{out.stderr[-1500:]}\n" \
                                f"worker:\n{worker_log[-1500:]}"
    with open(tmp_path / "dist_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    for name in ("mqtt:e2e", "mqtt:publish", "http:predict"):
        assert int(rows[name]["Request Count"]) > 0 and int(rows[name]["Failure Count"]) == 0, rows.get(name)
