"""The live isolation suite's wiring, run in a subprocess with a stand-in target: an unenforcing network fails
the suite (or, with --allow-unenforced, skips it); a target without isolation skips it with its reason."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[2] / "suites" / "isolation"

CONFTEST = '''
import pytest
from indmlops.errors import IsolationNotEnforced, NotSupportedByTarget

pytest_plugins = ["indmlops.plugin"]


class StandIn:
    name = "stand-in"

    def __init__(self, mode):
        self.mode = mode

    def enforcement_canary(self, timeout):
        if self.mode == "unenforced":
            raise IsolationNotEnforced("NetworkPolicy is not enforced on this cluster: canary still reachable")
        raise NotSupportedByTarget(self.name, "the NetworkPolicy enforcement canary", "one shared network")


@pytest.fixture(scope="session")
def target(request):
    return StandIn(request.config.getoption("--stand-in"))


def pytest_addoption(parser):
    parser.addoption("--stand-in", default="unenforced")


@pytest.fixture(scope="session")
def static_manifests():
    raise AssertionError("the matrix must not be observed before the canary passed")


@pytest.fixture(scope="session")
def isolation_intent():
    return None
'''


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    isolation: isolation\n")
    iso = pytester.mkpydir("isolation")
    for name in ("conftest.py", "test_live_isolation.py"):
        (iso / name).write_text((SUITE / name).read_text())
    return pytester


def test_unenforced_network_fails_the_suite_loudly(suite):
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0 and outcomes.get("skipped", 0) == 0
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == 2
    result.stdout.fnmatch_lines(["*NetworkPolicy is not enforced on this cluster: canary still reachable*"])


def test_allow_unenforced_turns_it_into_a_skip_that_says_so(suite):
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--allow-unenforced")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*NetworkPolicy is not enforced*(skipped: --allow-unenforced)*"])


def test_target_without_isolation_skips_with_its_reason(suite):
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--stand-in", "local")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*enforcement canary is not supported by the stand-in target: one shared network*"])
