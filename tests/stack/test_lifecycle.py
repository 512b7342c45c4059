"""`indmlops up | down | status` on scratch stacks: idempotence and the errors bad conditions must get."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from indmlops.errors import IndMLOpsError, MissingDependency, PortInUse, ServiceExited, StateDirError
from indmlops.targets.local import services
from indmlops.targets.local.stack import LocalStack, check_port_free

pytestmark = pytest.mark.stack


def assert_nothing_left(stack: LocalStack) -> None:
    """A failed `up` leaves no supervisord, no service, and every port free again."""
    assert stack.supervisor.pid() is None, f"supervisord still running for {stack.layout.state_dir}"
    for name, port in stack.ports.items():
        check_port_free(name, port)


def test_up_is_idempotent_and_down_then_up_works_twice(scratch_stack):
    stack = scratch_stack()
    for _ in range(2):
        stack.up(["mosquitto"])
        pid = stack.supervisor.info("mosquitto").pid
        stack.up(["mosquitto"])  # already running: nothing restarts
        assert stack.supervisor.info("mosquitto").pid == pid
        rows = {r.name: r for r in stack.status()}
        assert rows["mosquitto"].ready and rows["mosquitto"].restarts == 0
        assert stack.down() is True
        assert stack.down() is False
        assert_nothing_left(stack)


def test_cli_up_status_down_twice_in_a_row(scratch_stack, tmp_path):
    stack = scratch_stack()
    env = dict(os.environ, INDMLOPS_STATE_DIR=str(stack.layout.state_dir),
               INDMLOPS_PORTS=",".join(f"{k}={v}" for k, v in stack.ports.items()))
    cli = [sys.executable, "-m", "indmlops.cli"]
    for _ in range(2):
        up = subprocess.run(cli + ["up", "mosquitto", "postgres"], env=env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        assert "postgres: ready in" in up.stderr and "mosquitto: ready in" in up.stderr
        status = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].split() == ["SERVICE", "PID", "READY", "UPTIME", "RESTARTS", "ENDPOINT"]
        assert {ln.split()[0]: ln.split()[2] for ln in lines[1:3]} == {"postgres": "yes", "mosquitto": "yes"}
        down = subprocess.run(cli + ["down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0 and "stopped" in down.stdout
    status = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True, timeout=30)
    assert status.returncode == 3 and "no local stack is running" in status.stderr


def test_up_fails_naming_port_and_service_when_port_in_use(scratch_stack):
    stack = scratch_stack()
    port = stack.ports["mosquitto"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PortInUse) as err:
            stack.up(["mosquitto"])
    assert f"port 127.0.0.1:{port} for mosquitto is already in use" in str(err.value)
    assert f"pid={os.getpid()}" in str(err.value)  # the holder, as ss reports it
    assert_nothing_left(stack)


def test_up_fails_with_install_command_when_system_package_missing(scratch_stack, monkeypatch):
    real = services.which
    monkeypatch.setattr(services.mosquitto, "which",
                        lambda name, *extra: None if name == "mosquitto" else real(name, *extra))
    stack = scratch_stack()
    with pytest.raises(MissingDependency, match=r"mosquitto is not installed: run `sudo scripts/install-system-"
                                                r"packages.sh` \(Debian: apt-get install mosquitto\)"):
        stack.up(["mosquitto"])
    assert_nothing_left(stack)


def test_up_fails_with_log_tail_when_service_exits_during_start(scratch_stack):
    stack = scratch_stack()
    data = stack.layout.data / "postgres"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")  # looks initialised, so initdb is skipped, but holds no config
    if os.geteuid() == 0:
        import shutil

        shutil.chown(data, "postgres", "postgres")
        shutil.chown(data / "PG_VERSION", "postgres", "postgres")
    with pytest.raises(ServiceExited) as err:
        stack.up(["postgres"])
    message = str(err.value)
    assert message.startswith("postgres exited during start")
    assert str(stack.layout.log("postgres")) in message
    assert "could not access the server configuration file" in message, message  # PostgreSQL's own words
    assert_nothing_left(stack)


def test_up_fails_naming_the_blocking_directory_when_service_user_cannot_reach_state(scratch_stack, is_root):
    if not is_root:
        pytest.skip("only root drops privileges to the postgres user; as a normal user the state dir is ours")
    stack = scratch_stack()
    locked = stack.layout.state_dir.parent / "locked"
    locked.mkdir(mode=0o700)
    blocked = LocalStack(locked / "state", stack.ports)
    with pytest.raises(StateDirError) as err:
        blocked.up(["postgres"])
    assert f"blocked at {locked}" in str(err.value) and "INDMLOPS_STATE_DIR" in str(err.value)
    assert_nothing_left(blocked)


def test_up_fails_clearly_when_state_dir_not_writable(scratch_stack):
    stack = scratch_stack()
    parent = stack.layout.state_dir.parent
    blocker = parent / "a-file"
    blocker.write_text("")
    with pytest.raises(StateDirError, match=f"state directory {blocker}/state is not writable"):
        LocalStack(blocker / "state", stack.ports).up(["mosquitto"])


def test_mosquitto_persistence_file_written_by_unprivileged_broker(scratch_stack, is_root):
    stack = scratch_stack()
    stack.up(["mosquitto"])
    db = stack.layout.data / "mosquitto" / "mosquitto.db"
    assert db.exists() and db.stat().st_size > 0
    if is_root:
        import pwd

        assert pwd.getpwuid(db.stat().st_uid).pw_name == "mosquitto"
        broker_proc = Path(f"/proc/{stack.supervisor.info('mosquitto').pid}")
        assert pwd.getpwuid(broker_proc.stat().st_uid).pw_name == "mosquitto"


def test_up_fails_when_mosquitto_cannot_write_its_persistence(scratch_stack, is_root):
    if not is_root:
        pytest.skip("needs root to hand the persistence directory to another owner")
    stack = scratch_stack()
    original = services.mosquitto.prepare

    def prepare_then_break(cfg):
        program = original(cfg)
        (cfg.layout.data / "mosquitto").chmod(0o500)  # the broker's user may read but not write
        return program

    services.SERVICES["mosquitto"].prepare = prepare_then_break
    try:
        with pytest.raises(IndMLOpsError, match="did not write its persistence file"):
            stack.up(["mosquitto"])
    finally:
        services.SERVICES["mosquitto"].prepare = original
    assert_nothing_left(stack)


def test_cli_up_exits_2_with_one_line_error_when_port_in_use(scratch_stack):
    stack = scratch_stack()
    port = stack.ports["mosquitto"]
    env = dict(os.environ, INDMLOPS_STATE_DIR=str(stack.layout.state_dir), INDMLOPS_PORTS=f"mosquitto={port}")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        res = subprocess.run([sys.executable, "-m", "indmlops.cli", "up", "mosquitto"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"indmlops up: error: port 127.0.0.1:{port} for mosquitto is already in use" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_rejects_unknown_service_by_name(scratch_stack):
    stack = scratch_stack()
    env = dict(os.environ, INDMLOPS_STATE_DIR=str(stack.layout.state_dir))
    res = subprocess.run([sys.executable, "-m", "indmlops.cli", "up", "minio"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert ("unknown service(s) minio: expected postgres, s3, mosquitto, prometheus, nodered, mlflow, inference, "
            "simulator") in res.stderr


def test_up_reaps_services_orphaned_when_supervisord_was_killed(scratch_stack):
    import signal

    stack = scratch_stack()
    stack.up(["mosquitto"])
    orphan = stack.supervisor.info("mosquitto").pid
    os.kill(stack.supervisor.pid(), signal.SIGKILL)
    os.kill(orphan, 0)  # still alive, holding the port, with nobody supervising it
    stack.up(["mosquitto"])
    assert stack.supervisor.info("mosquitto").pid != orphan
    with pytest.raises(ProcessLookupError):
        os.kill(orphan, 0)


def test_stale_pid_file_of_another_process_is_not_mistaken_for_supervisord(scratch_stack):
    stack = scratch_stack()
    stack.layout.ensure()
    stack.layout.supervisor_pid.write_text(str(os.getpid()))  # alive, but not our supervisord
    assert stack.supervisor.pid() is None
    assert stack.down() is False
