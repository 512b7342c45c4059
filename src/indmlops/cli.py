"""The `indmlops` command: manage the local stack (up, down, status), diagnose it (doctor), run its services,
build its images."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from indmlops.errors import IndMLOpsError
from indmlops.targets.base import Target
from indmlops.targets.local.layout import default_state_dir, ports_from_environment, state_dir_note
from indmlops.targets.local.services import SERVICES
from indmlops.wire import Endpoint

if TYPE_CHECKING:
    from indmlops.targets.local.stack import LocalStack


def _progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _ports(args: argparse.Namespace) -> dict[str, int] | None:
    return ports_from_environment(cli_overrides=args.port)


def _broker_autosave(args: argparse.Namespace) -> str | None:
    """--broker-autosave, else INDMLOPS_BROKER_AUTOSAVE (the plugin's resolution, errors naming the source);
    None when neither is set: a running stack keeps its setting."""
    from indmlops.plugin.options import OptionError, resolve

    try:
        res = resolve("broker_autosave", cli=args.broker_autosave)
    except OptionError as exc:
        raise IndMLOpsError(str(exc)) from None
    return None if res.source == "default" else res.value


def _status_text(stack: LocalStack) -> str:
    from indmlops.targets.local.stack import format_status

    rows = stack.status()
    from indmlops import broker

    autosave = stack.config().broker_autosave
    return (format_status(rows) + f"\nbroker_autosave {autosave}: {broker.parse(autosave).describe()} "
            f"(stack.json; `indmlops up --broker-autosave N|Ns` changes it)")


class _SlowFsyncArg(TypedDict, total=False):
    slow_fsync_ms: float


def _slow_fsync(args: argparse.Namespace) -> _SlowFsyncArg:
    """LocalStack's `slow_fsync_ms` from --slow-fsync-ms (checked before anything starts); nothing when not given:
    the stack then reads INDMLOPS_SLOW_FSYNC_MS, else keeps a running stack's setting (a new stack: off)."""
    from indmlops.targets.local.slowdisk import parse_ms

    return {} if args.slow_fsync_ms is None else {"slow_fsync_ms": parse_ms(args.slow_fsync_ms, "--slow-fsync-ms")}


def _slow_fsync_text(stack: LocalStack) -> str:
    ms = stack.config().slow_fsync_ms
    what = (f"slow-fsync shim: {ms:g} ms per fsync in every service (fdatasync, syncfs, sync, msync MS_SYNC too)"
            if ms > 0 else "no slow-fsync shim: the disk's own fsync")
    return f"\nslow_fsync_ms {ms:g}: {what} (stack.json; `indmlops up --slow-fsync-ms X` on a stopped stack sets it)"


def _hostport(text: str, flag: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise IndMLOpsError(f"{flag} {text!r}: expected HOST:PORT")
    return host, int(port)


@contextlib.contextmanager
def _local(state_dir: Path) -> Iterator[Target]:
    """The local stack in `state_dir` as it is (not started here), from the one factory."""
    from indmlops.targets.factory import TargetSpec, open_target

    with open_target(TargetSpec("local", state_dir=state_dir, start=False)) as target:
        yield target


def _mqtt_endpoint(args: argparse.Namespace, state_dir: Path) -> Endpoint:
    if args.mqtt:
        return Endpoint("mosquitto", *_hostport(args.mqtt, "--mqtt"), "mqtt")
    with _local(state_dir) as target:
        return target.endpoint("mosquitto")


def _mqtt_password(args: argparse.Namespace, state_dir: Path) -> str:
    if args.password_env:
        if args.password_env not in os.environ:
            raise IndMLOpsError(f"--password-env {args.password_env}: that variable is not set")
        return os.environ[args.password_env]
    with _local(state_dir) as target:
        return target.credentials("mosquitto", args.username).password


def _tracking_uri(args: argparse.Namespace, state_dir: Path) -> str:
    if args.tracking_uri:
        return str(args.tracking_uri)
    with _local(state_dir) as target:
        return target.endpoint("mlflow").url


def _train(args: argparse.Namespace, state_dir: Path) -> int:
    from mlflow.exceptions import MlflowException

    from indmlops import training
    from indmlops.inference.model import current_version

    uri = _tracking_uri(args, state_dir)
    if args.if_missing:
        try:
            version = current_version(uri, training.MODEL_NAME, training.ALIAS)
            print(f"indmlops train: {training.MODEL_NAME}@{training.ALIAS} is version {version}; nothing to do")
            return 0
        except MlflowException:
            pass
    try:
        res = training.train_and_register(uri, train_seed=args.train_seed, test_seed=args.test_seed,
                                          n_train=args.samples)
    except MlflowException as exc:
        raise IndMLOpsError(f"MLflow at {uri}: {str(exc).splitlines()[0][:300]}") from None
    m = res.metrics
    print(f"indmlops train: registered {training.MODEL_NAME} version {res.version} as @{training.ALIAS} "
          f"(run {res.run_id}) in {res.seconds:.1f} s; held-out seed {args.test_seed}: precision "
          f"{m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1']:.3f} (macro F1 over modes "
          f"{m['macro_f1_modes']:.3f})")
    return 0


def _model_cache(args: argparse.Namespace, state_dir: Path) -> str | None:
    """--model-cache, else INDMLOPS_MODEL_CACHE, else (serving the local stack) its data directory's model-cache;
    an empty value turns the cache off."""
    if args.model_cache is not None:
        return args.model_cache or None
    if "INDMLOPS_MODEL_CACHE" in os.environ:
        return os.environ["INDMLOPS_MODEL_CACHE"] or None
    if args.tracking_uri:
        return None
    from indmlops.targets.local.layout import Layout

    return str(Layout(state_dir).data / "model-cache")


def _serve(args: argparse.Namespace, state_dir: Path) -> int:
    import signal

    from indmlops.inference.service import InferenceService

    host, port = _hostport(args.http, "--http")
    try:
        svc = InferenceService(mqtt=_mqtt_endpoint(args, state_dir), username=args.username,
                               password=_mqtt_password(args, state_dir), tracking_uri=_tracking_uri(args, state_dir),
                               http_host=host, http_port=port, watch_interval=args.watch_interval,
                               client_id=args.client_id, stall_after=args.stall_after,
                               model_cache=_model_cache(args, state_dir))
    except OSError as exc:
        raise IndMLOpsError(f"cannot listen on {args.http}: {exc.strerror}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())
    signal.signal(signal.SIGINT, lambda *_a: stop.set())
    svc.start()
    print(f"inference: HTTP on http://{host}:{port}, MQTT {svc.mqtt_ep}, model {svc.model_name}@{svc.alias}",
          flush=True)
    svc.watchdog(stop)
    svc.stop(forget_session=args.forget_session)
    return 0


def _images(args: argparse.Namespace) -> int:
    from indmlops import containers

    if args.images_cmd != "build":
        raise IndMLOpsError(f"images {args.images_cmd}: unknown")
    res = containers.build(args.names, engine=args.engine, base=args.base, rebuild_base=args.rebuild_base,
                           tag=args.tag, echo=True)
    if res.returncode == 2:
        return 2  # usage: the script said what is wrong
    if res.returncode == 3:
        raise IndMLOpsError("no container engine or build tool (see above)")
    if res.returncode != 0:
        print(f"indmlops images build: failed after {res.seconds:.0f} s\n{res.failing_step}", file=sys.stderr)
        return 1
    print(f"indmlops images build: {', '.join(res.images)} built in {res.seconds:.1f} s (base {res.base})")
    return 0


def _cluster(args: argparse.Namespace) -> int:
    from indmlops.targets.kubernetes.cluster.lifecycle import SingleNodeCluster, render_status

    cluster = SingleNodeCluster(args.cluster_dir, progress=lambda m: print(f"indmlops cluster: {m}", file=sys.stderr,
                                                                           flush=True))
    if args.cluster_cmd == "up":
        cluster.up(**({"timeout": args.timeout} if args.timeout else {}))
        return 0
    if args.cluster_cmd == "down":
        return 1 if cluster.down(purge=args.purge) else 0
    rows = cluster.status()
    print(render_status(rows))
    return 0 if all(r.healthy for r in rows) else 3


def _doctor(args: argparse.Namespace, state_dir: Path) -> int:
    from indmlops.checks.live import doctor

    with _local(state_dir) as target:
        findings = doctor.diagnose(target)
    print(doctor.render(findings))
    return 0 if all(f.ok for f in findings) else 1


def _simulate(args: argparse.Namespace, state_dir: Path) -> int:
    import itertools
    import json

    from indmlops.simulator.model import Plant
    from indmlops.simulator.publish import publish
    from indmlops.wire import NoAnswer

    try:
        seed = time.time_ns() if args.seed == -1 else args.seed
        plant = Plant(seed=seed, lines=args.lines, machines=args.machines, mean_gap_s=args.fault_gap)
    except ValueError as exc:
        raise IndMLOpsError(f"simulate: {exc}") from None
    if args.stdout:
        for reading in itertools.islice(plant.readings(), args.count if args.count is not None else 10):
            print(json.dumps(reading, separators=(",", ":")))
        return 0
    if args.count is None and args.duration is None:
        raise IndMLOpsError("simulate: give --count or --duration (or --stdout to print readings)")
    endpoint = _mqtt_endpoint(args, state_dir)
    password = _mqtt_password(args, state_dir)
    try:
        stats = publish(plant, endpoint=endpoint, username=args.username, password=password, rate=args.rate,
                        count=args.count, duration=args.duration, qos=args.qos, outbox=args.outbox,
                        confirm_wait=args.confirm_wait, progress=_progress)
    except (NoAnswer, TimeoutError, ConnectionError, ValueError) as exc:
        raise IndMLOpsError(str(exc)) from None
    print(stats.summary())
    return 0 if stats.qos == 0 or stats.acked == stats.published else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indmlops", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="state directory (default: $INDMLOPS_STATE_DIR, else .indmlops/ in the repo, or "
                             "/var/tmp/indmlops-<hash> when the services' users cannot traverse the repo's path)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the local stack (or the named services) and wait until ready")
    up.add_argument("services", nargs="*", metavar="SERVICE",
                    help=f"any of: {', '.join(SERVICES)} (default: all)")
    up.add_argument("--port", action="append", metavar="NAME=PORT",
                    help="override a port, e.g. --port mosquitto=11883 (also INDMLOPS_PORTS, INDMLOPS_PORT_OFFSET)")
    up.add_argument("--timeout", type=float, default=None, help="per-service readiness timeout in seconds")
    up.add_argument("--broker-autosave", metavar="N|Ns", default=None,
                    help="the broker's save policy: Ns saves every N seconds, N after every N changes (also "
                         "INDMLOPS_BROKER_AUTOSAVE; default: a running stack's setting, else 1s); a changed value "
                         "restarts only mosquitto")
    up.add_argument("--slow-fsync-ms", metavar="MS", default=None,
                    help="a slow disk on purpose: every service's fsync sleeps MS milliseconds first (an LD_PRELOAD "
                         "shim built with gcc; also INDMLOPS_SLOW_FSYNC_MS; default: a running stack's setting, else "
                         "0 = off); a running stack must be stopped to change it")
    sim = sub.add_parser("simulate", help="publish simulated machine telemetry over MQTT (or print it)")
    sim.add_argument("--lines", type=int, default=1, help="production lines (default 1)")
    sim.add_argument("--machines", type=int, default=4, help="machines per line (default 4)")
    sim.add_argument("--seed", type=int, default=0,
                     help="seed: same seed, same readings (default 0); -1 draws one from the clock, so a restarted "
                          "simulator never repeats reading ids")
    sim.add_argument("--rate", type=float, default=100.0, help="messages per second in all; 0 = unthrottled")
    sim.add_argument("--qos", type=int, choices=(0, 1), default=1)
    sim.add_argument("--no-outbox", dest="outbox", action="store_false",
                     help="QoS 1 without the outbox: by default every reading is kept until its prediction arrives and "
                          "re-sent when a broker kill lost it (the user needs read access to the predictions)")
    sim.add_argument("--confirm-wait", type=float, default=10.0,
                     help="at the end, seconds to wait for the last readings' predictions (default 10)")
    sim.add_argument("--count", type=int, help="stop after this many readings")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")
    sim.add_argument("--fault-gap", type=float, default=1800.0,
                     help="mean simulated seconds between fault episodes per machine (default 1800)")
    sim.add_argument("--stdout", action="store_true", help="print readings as JSON lines instead of publishing")
    sim.add_argument("--mqtt", metavar="HOST:PORT", help="broker (default: the local stack's)")
    sim.add_argument("--username", default="simulator", help="MQTT user (default simulator)")
    sim.add_argument("--password-env", metavar="VAR",
                     help="read the MQTT password from this environment variable (default: the local stack's)")
    tr = sub.add_parser("train", help="train the fault model on simulator data, log it to MLflow, register it")
    tr.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local stack's)")
    tr.add_argument("--train-seed", type=int, default=1)
    tr.add_argument("--test-seed", type=int, default=2, help="held-out plant for precision/recall/F1")
    tr.add_argument("--samples", type=int, default=120_000, help="training readings (default 120000)")
    tr.add_argument("--if-missing", action="store_true", help="do nothing when the alias already points somewhere")
    sv = sub.add_parser("serve", help="run the edge inference service (MQTT + HTTP)")
    sv.add_argument("--tracking-uri", help="MLflow tracking URI (default: the local stack's)")
    sv.add_argument("--mqtt", metavar="HOST:PORT", help="broker (default: the local stack's)")
    sv.add_argument("--username", default="inference", help="MQTT user (default inference)")
    sv.add_argument("--password-env", metavar="VAR", help="environment variable holding the MQTT password")
    sv.add_argument("--http", metavar="HOST:PORT", default="127.0.0.1:8088", help="HTTP listen address")
    sv.add_argument("--watch-interval", type=float, default=5.0, help="seconds between alias checks")
    sv.add_argument("--client-id", default="indmlops-inference",
                    help="MQTT client id of the persistent session (default indmlops-inference)")
    sv.add_argument("--forget-session", action="store_true",
                    help="end the persistent session on exit (for throwaway instances: the broker stops queueing)")
    sv.add_argument("--model-cache", metavar="DIR",
                    help="keep the last good model here and serve it at once on start while the registry is asked "
                         "(default: $INDMLOPS_MODEL_CACHE, else the local stack's data/model-cache when serving "
                         "it; '' turns it off)")
    sv.add_argument("--stall-after", type=float, default=20.0,
                    help="seconds one reading may be in handling before the service counts itself stuck: /healthz "
                         "answers 503 and the process exits (code 70) for its supervisor to restart it")
    im = sub.add_parser("images", help="container images: build the simulator, inference and MLflow images")
    im_sub = im.add_subparsers(dest="images_cmd", required=True)
    imb = im_sub.add_parser("build", help="build with Docker (an engine answers) or Podman, on a local Debian "
                                          "base made with mmdebstrap when none is given (scripts/build-images.sh)")
    imb.add_argument("names", nargs="*", metavar="NAME", help="simulator, inference, mlflow (default: all)")
    imb.add_argument("--engine", choices=("docker", "podman"), help="default: docker if it answers, else podman")
    imb.add_argument("--base", metavar="IMAGE", help="BASE_IMAGE to build on (default: the local base)")
    imb.add_argument("--rebuild-base", action="store_true", help="make the local base again (fresh packages)")
    imb.add_argument("--tag", default="dev", help="tag of localhost/indmlops-NAME (default dev)")
    cl = sub.add_parser("cluster", help="the single-node Kubernetes 1.20 cluster this machine runs (root): server "
                                        "binaries built from Debian's source package once, etcd, containerd, "
                                        "kubelet, kube-proxy, CNI bridge, cluster DNS")
    cl.add_argument("cluster_cmd", choices=("up", "down", "status"),
                    help="up: build if needed, start, wait for the node to be Ready; down: stop all and put the host "
                         "back (sysctls, links, iptables chains, mounts, directories); status: each component")
    cl.add_argument("--cluster-dir", type=Path, default=None,
                    help="the cluster's state (default: $INDMLOPS_CLUSTER_DIR, else /var/lib/indmlops-cluster)")
    cl.add_argument("--timeout", type=float, default=None, help="seconds `up` may take once binaries are built")
    cl.add_argument("--purge", action="store_true",
                    help="down: also remove the state directory (certificates, imported images, logs)")
    sub.add_parser("doctor", help="diagnose MLflow's artifact store: bucket, S3 endpoint, credentials, proxy, "
                                  "stale experiment locations (one line each; exit 1 on a failure)")
    sub.add_parser("down", help="stop every service and supervisord (data is kept)")
    sub.add_parser("kube-config", help="derive the Kubernetes variants of config/ (prometheus.kubernetes.yml)")
    sub.add_parser("status", help="print service, pid, ready, uptime, restarts, endpoint")
    args = parser.parse_args(argv)
    state_dir = args.state_dir or default_state_dir()
    if args.cmd in ("up", "down", "status"):  # the stack's machinery (supervisor) is not in the images' extras
        from indmlops.targets.local.stack import LocalStack
    try:
        if args.cmd == "up":
            stack = LocalStack(state_dir, _ports(args), broker_autosave=_broker_autosave(args),
                               **_slow_fsync(args))
            t0 = time.monotonic()
            note = state_dir_note(stack.layout.state_dir)
            print(f"indmlops up: {note or f'state in {stack.layout.state_dir}'}", file=sys.stderr)
            stack.up(args.services or None, progress=_progress, timeout=args.timeout)
            print(f"indmlops up: all ready in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            print(_status_text(stack) + _slow_fsync_text(stack))
        elif args.cmd == "train":
            return _train(args, state_dir)
        elif args.cmd == "serve":
            return _serve(args, state_dir)
        elif args.cmd == "doctor":
            return _doctor(args, state_dir)
        elif args.cmd == "simulate":
            return _simulate(args, state_dir)
        elif args.cmd == "images":
            return _images(args)
        elif args.cmd == "cluster":
            return _cluster(args)
        elif args.cmd == "kube-config":
            from indmlops.configs.kubernetes import write_all

            for path in write_all():
                print(f"indmlops kube-config: wrote {path}")
        elif args.cmd == "down":
            stack = LocalStack(state_dir)
            stopped = stack.down(progress=_progress)
            print("indmlops down: stopped" if stopped
                  else f"indmlops down: nothing running in {stack.layout.state_dir}")
        else:
            local = LocalStack(state_dir)
            print(_status_text(local) + _slow_fsync_text(local))
    except IndMLOpsError as exc:
        print(f"indmlops {args.cmd}: error: {exc}", file=sys.stderr)
        return 2 if args.cmd != "status" else 3
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
