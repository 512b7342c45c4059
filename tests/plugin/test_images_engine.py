"""The image tests' engine fixture, in a subprocess with pytester: no engine fails loudly; opting out skips."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

IMAGES_CONFTEST = Path(__file__).resolve().parents[1] / "images" / "conftest.py"


@pytest.fixture
def no_engine(pytester, monkeypatch, tmp_path):
    """A project using tests/images/conftest.py, run with a PATH holding neither docker nor podman."""
    pytester.makeconftest(IMAGES_CONFTEST.read_text() + '\npytest_plugins = ["indmlops.plugin"]\n')
    pytester.makepyfile(test_x="def test_needs_engine(engine):\n    pass\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("INDMLOPS_ENGINE", raising=False)
    monkeypatch.delenv("INDMLOPS_SKIP_IMAGES", raising=False)
    return pytester


def test_image_tests_fail_when_no_engine_is_installed(no_engine):
    result = no_engine.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no container engine*podman is not installed*INDMLOPS_SKIP_IMAGES=1*"])


def test_image_tests_skip_with_the_reason_when_opted_out(no_engine, monkeypatch):
    monkeypatch.setenv("INDMLOPS_SKIP_IMAGES", "1")
    result = no_engine.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*INDMLOPS_SKIP_IMAGES=1 from environment: image build and smoke tests opted out*"])
