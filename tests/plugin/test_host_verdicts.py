"""Environment verdicts in the plugin, driven with pytester: the preflight's record, the terminal section that
sets the host's failures apart from the stack's, and the JUnit XML property `verdict`."""

import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

# The preflight times saves in a scratch directory here: the local stack is not needed to prove the plumbing.
CONFTEST = '''
import pytest

pytest_plugins = ["indmlops.plugin"]


@pytest.fixture(scope="session")
def host_fsync_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("broker-data")


@pytest.fixture(scope="session")
def broker_autosave():
    return 1
'''

TESTS = '''
import pytest

from indmlops.hostcheck import Demand, EnvironmentVerdict, Shortfall

SHORT = [Shortfall("fsync", "before", 240, 700,
                   "the broker's disk did 240 fsync/s (p50 4.1 ms), the profile needs >= 700/s")]


def test_late_readings_on_a_slow_disk(host_fit):
    raise EnvironmentVerdict(Demand("quick", 100, 100), SHORT, breach_text="delivery lost ratio 0.03",
                             figures_path=host_fit.path)


def test_readings_lost_by_the_stack(host_fit):
    assert 0 == 45, "delivery lost ratio 0.03 (45/1500)"


def test_calm(host_fit):
    with host_fit.monitor("calm", interval=0.05):
        pass


@pytest.fixture
def run_judged(host_fit):
    raise EnvironmentVerdict(Demand("quick", 100, 100), SHORT)


def test_verdict_from_a_fixture(run_judged):
    pass
'''


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_host=TESTS)
    return pytester


def test_environment_verdicts_set_apart_from_stack_failures(project):
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines([
        "indmlops host: *fsync */s (p50 * ms)*cores*generator*readings/s*",
        "*= indmlops verdicts: the host or the stack =*",
        "host before the first run: *",
        "host during calm (0 samples, 0 s): not sampled*",
        "environment verdicts (the host, not the stack): 2",
        "  test_host.py::test_late_readings_on_a_slow_disk (call): *environment, not the stack: the host could not "
        "carry profile quick: the broker's disk did 240 fsync/s*Figures: *environment.json*",
        "  test_host.py::test_verdict_from_a_fixture (setup): *environment, not the stack*",
        "failures of the stack: 1",
        "  test_host.py::test_readings_lost_by_the_stack (call): *delivery lost ratio 0.03 (45/1500)*",
        "figures: reports/environment.json",
    ])


def test_junit_xml_carries_the_verdict_of_each_failure(project):
    project.runpytest_subprocess("-p", "no:cacheprovider")
    root = ET.parse(project.path / "reports" / "junit.xml").getroot()
    verdicts = {}
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        verdicts[case.get("name")] = props.get("verdict")
    assert verdicts == {"test_late_readings_on_a_slow_disk": "environment", "test_readings_lost_by_the_stack": "stack",
                        "test_calm": None, "test_verdict_from_a_fixture": "environment"}


def test_environment_json_holds_figures_runs_and_verdicts(project):
    project.runpytest_subprocess("-p", "no:cacheprovider")
    doc = json.loads((project.path / "reports" / "environment.json").read_text())
    assert doc["profile"]["profile"] == "quick" and doc["fsync_needed_per_s"] == 700
    assert doc["figures"]["fsync_per_s"] > 0 and doc["figures"]["fsync_dir"].endswith("broker-data0")
    assert doc["runs"]["calm"]["monitor"]["seconds"] >= 0
    assert doc["verdicts"] == {"test_host.py::test_late_readings_on_a_slow_disk": "environment",
                               "test_host.py::test_verdict_from_a_fixture": "environment",
                               "test_host.py::test_readings_lost_by_the_stack": "stack"}


def test_no_verdict_section_when_the_host_was_neither_measured_nor_blamed(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_plain="def test_fails():\n    assert False\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*indmlops verdicts*")
    assert not (pytester.path / "reports" / "environment.json").exists()
