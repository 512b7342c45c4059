"""The pytest plugin (entry point `indmlops`, and the root conftest.py): options, the report header, the session
`target`, reports, failure evidence and the host-or-stack verdicts. Its parts:

- `config`: the options resolved once (marker > CLI > INDMLOPS_* env > ini > default) and the target they ask for;
- `session`: the header, the `target` fixture and the option fixtures, evidence and `reproduce.sh`;
- `verdicts`: the host's figures and the environment-or-stack verdict of each failure;
- `conformance`: one report per session, reports/conformance.{json,html} (docs/conformance-report.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indmlops.plugin.config import manifests_dir, option, resolved_options
from indmlops.plugin.conformance import recorder as conformance_recorder
from indmlops.plugin.options import OPTIONS
from indmlops.plugin.session import (
    broker_autosave,
    indmlops_options,
    keep_evidence,
    mlflow_client_bounded,
    no_s3_credentials,
    profile,
    pytest_pyfunc_call,
    pytest_report_header,
    target,
)
from indmlops.plugin.verdicts import host_fit, host_fsync_dir, pytest_terminal_summary, record_verdict

__all__ = [  # the hooks and fixtures pytest collects from this module, and what the suites import
    "broker_autosave", "host_fit", "host_fsync_dir", "indmlops_options", "manifests_dir", "mlflow_client_bounded",
    "no_s3_credentials", "option", "profile", "pytest_addoption", "pytest_collection_modifyitems", "pytest_configure",
    "pytest_pyfunc_call", "pytest_report_header", "pytest_runtest_makereport", "pytest_terminal_summary",
    "resolved_options", "target",
]

pytest.register_assert_rewrite("indmlops.checks")


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


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "indmlops(**options): per-test option values (highest precedence)")
    # The harness's MLflow clients stand for clients that reach MLflow only (the edge; a notebook without S3
    # credentials): artifacts through the tracking server, never from presigned S3 URLs (inference/model.py).
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    opts = resolved_options(config)
    reports = Path(opts["reports_dir"].value)
    if not config.option.xmlpath:
        config.option.xmlpath = str(reports / "junit.xml")
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = str(reports / "report.html")
        config.option.self_contained_html = True
    conformance_recorder.register(config)  # reports/conformance.{json,html} at the end of every session


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Disruptive tests (marker `chaos`) run last, in their collected order, so others see a calm stack."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        record_verdict(item, call, report)
    if report.failed and call.when == "call" and "target" in getattr(item, "fixturenames", ()):
        try:
            where = keep_evidence(item)
            report.sections.append(("indmlops evidence", f"kept under {where}"))
        except Exception as exc:  # evidence is a courtesy; never mask the real failure
            report.sections.append(("indmlops evidence", f"could not keep evidence: {exc!r}"))
    return report


