"""The conformance report written by the plugin, driven with pytester: every session, pass or fail, collection error
or interrupt, leaves reports/conformance.json and .html with the right verdicts and a terminal section."""

import json

import pytest

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["indmlops.plugin"]\n'
INI = "[pytest]\nmarkers =\n    mlflow: m\n    latency: l\n"


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def report(pytester) -> dict:
    return json.loads((pytester.path / "reports" / "conformance.json").read_text())


def test_pass_and_stack_failure_give_does_not_conform_with_area_counts(project):
    project.makepyfile(test_x="""
        import pytest

        @pytest.mark.mlflow
        def test_run_logged():
            pass

        @pytest.mark.mlflow
        def test_artifact_matches():
            assert "a" == "b", "sha256 of model.pkl differs from the one logged"

        @pytest.mark.latency
        def test_skipped_here():
            pytest.skip("no inference on this target")
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*= indmlops conformance =*", "verdict: does not conform (1 failure(s) of the stack*",
                                 "  mlflow*does not conform*1 passed, 1 failed*", "  latency*not run*1 skipped*",
                                 "report: reports/conformance.html (schema: reports/conformance.json)"])
    doc = report(project)
    assert doc["schema_version"] == 1 and doc["verdict"] == "does-not-conform"
    assert doc["areas"]["mlflow"]["counts"]["passed"] == 1 and doc["areas"]["mlflow"]["counts"]["failed"] == 1
    assert doc["areas"]["latency"]["verdict"] == "not-run"
    [failure] = doc["failures"]
    assert failure["test_id"] == "test_x.py::test_artifact_matches" and failure["kind"] == "stack"
    assert "sha256 of model.pkl differs" in failure["message"] and failure["areas"] == ["mlflow"]
    assert doc["skips"][0]["reason"] == "no inference on this target"
    assert doc["durability"]["status"] == "not-run" and doc["target"]["name"] == "local"
    page = (project.path / "reports" / "conformance.html").read_text()
    assert "<h1>Conformance: does not conform</h1>" in page and "test_artifact_matches" in page


def test_all_passing_session_conforms(project):
    project.makepyfile(test_ok="""
        import pytest

        @pytest.mark.mlflow
        def test_run_logged():
            pass
    """)
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    doc = report(project)
    assert doc["verdict"] == "conforms" and doc["verdict_reasons"] == ["1 test(s) passed"]


def test_collection_error_still_writes_an_incomplete_report(project):
    project.makepyfile(test_broken="import no_such_module_here\n\ndef test_a():\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = report(project)
    assert doc["verdict"] == "incomplete"
    assert doc["failures"][0]["when"] == "collect" and "no_such_module_here" in doc["failures"][0]["message"]
    result.stdout.fnmatch_lines(["verdict: incomplete (*1 collection error(s)*"])


def test_stop_at_first_failure_counts_the_tests_not_run(project):
    project.makepyfile(test_x="""
        def test_a():
            assert False, "broken"

        def test_b():
            pass
    """)
    project.runpytest_subprocess("-p", "no:cacheprovider", "-x")
    doc = report(project)
    assert doc["verdict"] == "does-not-conform" and doc["counts"]["not_run"] == 1
    assert doc["areas"]["other"]["verdict"] == "does-not-conform"


def test_interrupted_session_writes_an_incomplete_report(project):
    project.makepyfile(test_x="""
        def test_a():
            pass

        def test_b():
            raise KeyboardInterrupt

        def test_c():
            pass
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = report(project)
    assert doc["verdict"] == "incomplete" and doc["session"]["interrupted"] is True
    assert (doc["counts"]["passed"], doc["counts"]["not_run"]) == (1, 2)
    assert "Conformance: incomplete" in (project.path / "reports" / "conformance.html").read_text()
