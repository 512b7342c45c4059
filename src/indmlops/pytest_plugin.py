"""The pytest plugin: options, report header, the session `target`, reports and failure evidence."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from indmlops.errors import IndMLOpsError, NotSupportedByTarget
from indmlops.local.layout import default_state_dir
from indmlops.options import OPTIONS, OptionError, Resolved, resolve

if TYPE_CHECKING:
    from indmlops.hostcheck import HostFit, OwnRoots

pytest.register_assert_rewrite("indmlops.checks")

_RESOLVED = pytest.StashKey[dict[str, Resolved]]()
_STARTED_BY_US = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("indmlops", "IndMLOps-Lab (resolution: marker > CLI > INDMLOPS_* env > ini > default)")
    for opt in OPTIONS.values():
        help_text = f"{opt.help} [env {opt.env}, ini {opt.ini}, default {opt.default!r}]"
        if opt.kind == "bool":
            group.addoption(opt.cli, action="store_const", const=True, default=None, dest=f"indmlops_{opt.name}",
                            help=help_text)
        else:
            group.addoption(opt.cli, default=None, dest=f"indmlops_{opt.name}", metavar=opt.name.upper(),
                            help=help_text)
        parser.addini(opt.ini, help=opt.help, default="")


def resolved_options(config: pytest.Config) -> dict[str, Resolved]:
    if _RESOLVED not in config.stash:
        out = {}
        for name in OPTIONS:
            try:
                out[name] = resolve(name, cli=config.getoption(f"indmlops_{name}"), ini=config.getini(OPTIONS[name].ini))
            except OptionError as exc:
                raise pytest.UsageError(str(exc)) from None
        config.stash[_RESOLVED] = out
    return config.stash[_RESOLVED]


def option(config: pytest.Config, name: str, node: pytest.Item | None = None):
    """An option's value for `node`: a `@pytest.mark.indmlops(name=value)` marker beats the session value."""
    if node is not None:
        marker = node.get_closest_marker("indmlops")
        if marker and name in marker.kwargs:
            try:
                return resolve(name, marker=marker.kwargs).value
            except OptionError as exc:
                raise pytest.UsageError(f"{node.nodeid}: {exc}") from None
    return resolved_options(config)[name].value


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "indmlops(**options): per-test option values (highest precedence)")
    opts = resolved_options(config)
    reports = Path(opts["reports_dir"].value)
    if not config.option.xmlpath:
        config.option.xmlpath = str(reports / "junit.xml")
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = str(reports / "report.html")
        config.option.self_contained_html = True


def _state_dir(config: pytest.Config) -> Path:
    value = option(config, "state_dir")
    return Path(value) if value else default_state_dir()


def manifests_dir(config: pytest.Config) -> Path:
    """The --manifests directory: as given when it exists from the working directory, else under the rootdir
    (so `pytest suites/static` finds the project's manifests from anywhere)."""
    raw = Path(option(config, "manifests"))
    if raw.is_absolute() or raw.exists():
        return raw.resolve()
    return (config.rootpath / raw).resolve()


def pytest_report_header(config: pytest.Config) -> list[str]:
    opts = resolved_options(config)
    lines = ["indmlops: " + ", ".join(f"{n}={r.value} ({r.source})" for n, r in opts.items()
                                      if n in ("target", "profile", "reports_dir", "keep_stack", "keep_cluster",
                                               "broker_autosave"))]
    lines.append(f"indmlops manifests: {manifests_dir(config)} ({opts['manifests'].source}; static suite)")
    if opts["target"].value != "local":
        kubeconfig, context = kube_location(config)
        lines.append(f"indmlops endpoints: Kubernetes context {context or '(current-context)'} of kubeconfig "
                     f"{kubeconfig or '(default)'}, through port-forwards the target opens when a test needs them")
        return lines
    from indmlops.local.stack import LocalStack

    stack = LocalStack(_state_dir(config))
    if stack.running():
        from indmlops.targets.local import LocalTarget

        t = LocalTarget(stack.layout.state_dir)
        lines.append("indmlops endpoints: " + ", ".join(f"{c}={t.endpoint(c)}" for c in t.components()))
        lines.append("indmlops versions: " + "; ".join(f"{k}: {v}" for k, v in t.versions().items()))
        lines.append(f"indmlops broker: broker_autosave={t.cfg.broker_autosave} (the running stack's, stack.json)")
    else:
        lines.append(f"indmlops endpoints: local stack not running yet in {stack.layout.state_dir} "
                     "(the `target` fixture starts it when a test needs it)")
    return lines


# MLflow's client retries a failing request 7 times with exponential backoff (minutes in all). A check must
# fail in seconds when a service is down: 2 retries × (1 s, 2 s) backoff, 20 s per request. A value the user
# set in the environment wins.
MLFLOW_CLIENT_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


@pytest.fixture(scope="session", autouse=True)
def mlflow_client_bounded():
    with pytest.MonkeyPatch.context() as mp:
        for key, value in MLFLOW_CLIENT_BOUNDS.items():
            if key not in os.environ:
                mp.setenv(key, value)
        yield


@pytest.fixture
def no_s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients in the test process hold no S3 credentials: artifact access must go through MLflow's proxy."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def indmlops_options(pytestconfig: pytest.Config) -> dict[str, object]:
    return {n: r.value for n, r in resolved_options(pytestconfig).items()}


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> str:
    return option(pytestconfig, "profile")


@pytest.fixture(scope="session")
def broker_autosave(pytestconfig: pytest.Config, target) -> int:
    """The broker's durability setting under test, for loss bounds (indmlops.broker): the local stack's own
    (stack.json), else what --broker-autosave says the cluster was deployed with (manifests/components/)."""
    cfg = getattr(target, "cfg", None)
    return int(cfg.broker_autosave) if cfg is not None else int(option(pytestconfig, "broker_autosave"))


def kube_location(config: pytest.Config) -> tuple[str | None, str | None]:
    """(kubeconfig, context) for a Kubernetes target: --target kind defaults the context to kind's."""
    from indmlops.targets.kubernetes import KIND_CONTEXT

    context = option(config, "context")
    if context is None and option(config, "target") == "kind":
        context = KIND_CONTEXT
    return option(config, "kubeconfig"), context


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config):
    """The system under test. On --target local (the default) a local stack that was not running is started, and
    stopped again at the end; on --target kind|kubeconfig a KubernetesTarget whose port-forwards close at the end."""
    name = option(pytestconfig, "target")
    if name == "kind":
        yield from _kind_target(pytestconfig)
        return
    if name != "local":
        from indmlops.targets.kubernetes import KubernetesTarget

        kubeconfig, context = kube_location(pytestconfig)
        try:
            kube = KubernetesTarget(name, kubeconfig=kubeconfig, context=context, **_kube_options(pytestconfig))
        except IndMLOpsError as exc:
            pytest.exit(f"the {name} target could not be reached: {exc}", returncode=3)
        yield kube
        kube.close()
        return
    yield from _local_target(pytestconfig)


def _kube_options(config: pytest.Config) -> dict:
    """KubernetesTarget's keyword arguments from the options: the probe image, and progress shown live."""
    out: dict = {"progress": _live_printer(config, "indmlops kube")}
    if option(config, "probe_image"):
        out["probe_image"] = option(config, "probe_image")
    return out


def _kind_target(pytestconfig: pytest.Config):
    """--target kind: create or reuse the kind cluster, CNI, images, manifests in the seed's order (progress shown
    live); at the end remove what this session created unless --keep-cluster."""
    from indmlops.targets.kind_cluster import KindCluster, kind_kubeconfig
    from indmlops.targets.kubernetes import KIND_CONTEXT, KubernetesTarget

    progress = _live_printer(pytestconfig, "indmlops kind")
    kubeconfig, context = kube_location(pytestconfig)
    if context != KIND_CONTEXT:
        raise pytest.UsageError(f"--context {context!r} with --target kind: kind's cluster has context "
                                f"{KIND_CONTEXT!r}; use --target kubeconfig for another cluster")
    keep = option(pytestconfig, "keep_cluster")
    try:
        cluster = KindCluster(kind_kubeconfig(kubeconfig), cni_manifest=option(pytestconfig, "cni_manifest"),
                              progress=progress)
    except IndMLOpsError as exc:
        pytest.exit(f"the kind target could not be set up: {exc}", returncode=3)
    try:
        cluster.up()
        kube = KubernetesTarget("kind", kubeconfig=str(cluster.kubeconfig), context=cluster.context,
                                **_kube_options(pytestconfig))
    except BaseException as exc:
        try:
            cluster.down(keep=keep)
        except IndMLOpsError as cleanup:
            progress(f"could not remove what this session created: {cleanup}")
        if isinstance(exc, IndMLOpsError):
            kept = "" if keep else " (pass --keep-cluster to keep the cluster for a look)"
            pytest.exit(f"the kind target could not be set up: {exc}{kept}", returncode=3)
        raise
    yield kube
    kube.close()
    cluster.down(keep=keep)


def _local_target(pytestconfig: pytest.Config):
    from indmlops.local.layout import ports_from_environment
    from indmlops.local.stack import LocalStack
    from indmlops.targets.local import LocalTarget

    try:
        ports = ports_from_environment()
    except IndMLOpsError as exc:
        raise pytest.UsageError(str(exc)) from None
    autosave = resolved_options(pytestconfig)["broker_autosave"]
    wanted = None if autosave.source == "default" else autosave.value
    stack = LocalStack(_state_dir(pytestconfig), ports, broker_autosave=wanted)
    if wanted and stack.running() and stack.config().broker_autosave != wanted:
        # The session leaves a stack it did not start as it found it: it will not restart its broker.
        raise pytest.UsageError(
            f"--broker-autosave {wanted} from {autosave.source}: the running stack in {stack.layout.state_dir} has "
            f"broker_autosave {stack.config().broker_autosave}; run `indmlops up --broker-autosave {wanted}` first")
    started = False
    if not stack.running():
        progress = _live_printer(pytestconfig, "indmlops up")
        t0 = time.monotonic()
        try:
            stack.up(progress=progress)
        except IndMLOpsError as exc:
            pytest.exit(f"the local stack could not start: {exc}", returncode=3)
        progress(f"all ready in {time.monotonic() - t0:.1f} s")
        started = True
    pytestconfig.stash[_STARTED_BY_US] = started
    yield LocalTarget(stack.layout.state_dir)
    if started and not option(pytestconfig, "keep_stack"):
        stack.down()


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """A check that needs what the target cannot do is skipped with the target's reason, never passed."""
    try:
        return (yield)
    except NotSupportedByTarget as exc:
        pytest.skip(f"{exc} (choose a target that supports it with --target)")


def _live_printer(config: pytest.Config, prefix: str):
    """A progress callback that prints past pytest's capture, so long waits show what they wait for."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")

    def progress(msg: str) -> None:
        if reporter and capman:
            with capman.global_and_fixture_disabled():
                reporter.write_line(f"{prefix}: {msg}")

    return progress


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Disruptive tests (marker `chaos`) run last, in their collected order, so others see a calm stack."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        _record_verdict(item, call, report)
    if report.failed and call.when == "call" and "target" in getattr(item, "fixturenames", ()):
        try:
            where = keep_evidence(item)
            report.sections.append(("indmlops evidence", f"kept under {where}"))
        except Exception as exc:  # evidence is a courtesy; never mask the real failure
            report.sections.append(("indmlops evidence", f"could not keep evidence: {exc!r}"))
    return report


def keep_evidence(item: pytest.Item) -> Path:
    """Copy service log tails, stack status and the command to reproduce into reports/<test id>/."""
    from indmlops.local.services import SERVICES
    from indmlops.local.stack import LocalStack, format_status, tail

    config = item.config
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:150]
    out = Path(option(config, "reports_dir")) / safe
    out.mkdir(parents=True, exist_ok=True)
    name = option(config, "target")
    if name != "local":
        kubeconfig, context = kube_location(config)
        from indmlops.targets.kube_api import location_flags

        flags = location_flags(kubeconfig, context)
        kube = getattr(item, "funcargs", {}).get("target")
        if hasattr(kube, "evidence"):
            for fname, text in kube.evidence().items():
                (out / fname).write_text(text + "\n")
        (out / "reproduce.sh").write_text(
            f"#!/bin/sh\n# Re-run this test alone against the same cluster, and show what ran there.\n"
            f"kubectl{location_flags(None, context)} get pods,events -A -o wide\n"
            f"cd {shlex.quote(str(config.rootpath))} && {shlex.quote(sys.executable)} -m pytest "
            f"{shlex.quote(item.nodeid)} --target {name}{flags}\n"
        )
        return out
    stack = LocalStack(_state_dir(config))
    for name in SERVICES:
        (out / f"{name}.log.tail").write_text(tail(stack.layout.log(name), 200) + "\n")
    try:
        status = format_status(stack.status())
    except IndMLOpsError as exc:
        status = str(exc)
    (out / "status.txt").write_text(status + "\n")
    (out / "reproduce.sh").write_text(
        "#!/bin/sh\n# Re-run this test alone against the same local stack.\n"
        f"cd {shlex.quote(str(config.rootpath))} && {shlex.quote(sys.executable)} -m pytest "
        f"{shlex.quote(item.nodeid)} --target local\n"
    )
    return out


# Environment verdicts (src/indmlops/hostcheck/, fixtures/host.yaml): the host's figures before the first latency or
# chaos test, and every failure labelled `verdict=environment` (the host could not carry the profile) or
# `verdict=stack`, in JUnit XML (a property) and in a terminal section of its own.
_HOST_FIT = pytest.StashKey["HostFit"]()


@pytest.fixture(scope="session")
def host_fsync_dir(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Path:
    """Where the preflight times saves: the local broker's persistence directory (the stack is started for it);
    on a Kubernetes target, the reports directory (kind's nodes write to this host's disk)."""
    if option(pytestconfig, "target") == "local":
        request.getfixturevalue("target")
        from indmlops.local.layout import Layout

        broker = Layout(_state_dir(pytestconfig)).data / "mosquitto"
        if broker.is_dir():
            return broker
    reports = Path(option(pytestconfig, "reports_dir"))
    reports.mkdir(parents=True, exist_ok=True)
    return reports


def _own_roots(config: pytest.Config) -> "OwnRoots | None":
    """The pids heading our own process trees, asked again at each sample: this pytest (the xdist controller when in
    a worker) with Locust and the chaos clients below it, and on the local target the stack's supervisord (from its
    pid file, checked against its command line) with every service below it. None on Kubernetes: the stack runs in
    containers whose processes we do not map, so neither the host's CPU nor its disk writes are attributed
    there."""
    if option(config, "target") != "local":
        return None
    from indmlops.local.layout import Layout
    from indmlops.local.supervisor import Supervisor

    supervisor = Supervisor(Layout(_state_dir(config)))
    harness = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()

    def roots() -> list[int]:
        stack = supervisor.pid()
        return [harness] if stack is None else [harness, stack]

    return roots


@pytest.fixture(scope="session")
def host_fit(pytestconfig: pytest.Config, host_fsync_dir: Path, broker_autosave: int) -> "HostFit":
    """The host measured once per session (~1.3 s) against the session's profile and the broker's save interval,
    in reports/environment.json; `host_fit.monitor(name)` watches a run, `host_fit.judging(summary)` around the
    asserts (or `host_fit.judge(text, summary)`) raises the right verdict."""
    from indmlops import hostcheck, slo

    prof = slo.profile(option(pytestconfig, "profile"))
    peak = max(slo.mqtt_users_at(prof.shape, prof.mqtt_users, i / 100, 1.0) for i in range(100)) * prof.rate_per_user
    try:
        thresholds = hostcheck.Thresholds.load()
    except hostcheck.HostFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    roots = _own_roots(pytestconfig)
    figures = hostcheck.preflight(fsync_dir=host_fsync_dir, own_roots=roots)
    fit = hostcheck.HostFit(figures, hostcheck.Demand(prof.name, prof.rate, peak, broker_autosave), thresholds,
                            Path(option(pytestconfig, "reports_dir")) / "environment.json", own_roots=roots)
    pytestconfig.stash[_HOST_FIT] = fit
    _live_printer(pytestconfig, "indmlops host")(fit.line())
    return fit


def _record_verdict(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    from indmlops.hostcheck import EnvironmentVerdict

    env = call.excinfo is not None and call.excinfo.errisinstance(EnvironmentVerdict)
    prop = ("verdict", "environment" if env else "stack")
    if prop not in item.user_properties:  # the teardown report carries it into JUnit XML
        item.user_properties.append(prop)
    if prop not in report.user_properties:
        report.user_properties.append(prop)


def _crash_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.splitlines()[0] if text else ""


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Environment verdicts apart from failures of the stack, whenever the host was measured or blamed."""
    env, stack = [], []
    for rep in terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", []):
        verdict = dict(getattr(rep, "user_properties", ())).get("verdict")
        if verdict:
            (env if verdict == "environment" else stack).append(rep)
    fit = config.stash.get(_HOST_FIT, None)
    if fit is None and not env:
        return
    tr = terminalreporter
    tr.write_sep("=", "indmlops verdicts: the host or the stack")
    if fit is not None:
        tr.write_line(f"host before the first run: {fit.line()}")
        for name, run in fit.runs.items():
            mon = run["monitor"]
            found = "; ".join(s["text"] for s in run["shortfalls"]) or (
                "carried it" if mon["samples"] else "not sampled (shorter than the monitor's interval)")
            if run.get("context"):  # e.g. a slow disk that our own writes explain: not held against the host
                found += f"; not the host's: {'; '.join(run['context'])}"
            tr.write_line(f"host during {name} ({mon['samples']} samples, {mon['seconds']:.0f} s): {found}")
    tr.write_line(f"environment verdicts (the host, not the stack): {len(env)}")
    for rep in env:
        tr.write_line(f"  {rep.nodeid} ({rep.when}): {_crash_line(rep)}")
    tr.write_line(f"failures of the stack: {len(stack)}")
    for rep in stack:
        tr.write_line(f"  {rep.nodeid} ({rep.when}): {_crash_line(rep)}")
    if fit is not None:
        fit.verdicts.update({rep.nodeid: "environment" for rep in env} | {rep.nodeid: "stack" for rep in stack})
        fit.write()
        tr.write_line(f"figures: {fit.path}")
