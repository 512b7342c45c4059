"""reports/conformance.html as a browser shows it: headless Chromium (Debian package `chromium`) renders a fabricated
report; the DOM holds the verdict and an area row, and the screenshot's top is the verdict's colour. The
screenshot is kept as reports/conformance.png (--reports-dir)."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from indmlops.plugin import option
from indmlops.plugin.conformance import evidence, htmlpage
from indmlops.plugin.conformance.model import Result, summarize

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install -y chromium "
                                                         "(scripts/install-system-packages.sh installs it)")
# Chromium starts in ~1.5 s here; 30 s is a hung browser, not a slow one.
TIMEOUT_S = 30
DOES_NOT_CONFORM_RGB = (0xB3, 0x26, 0x1E)  # .v-does-not-conform in htmlpage.CSS


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    results = []
    for name, outcome in (("test_run_logged", "passed"), ("test_artifact_matches", "failed")):
        r = Result(f"suites/mlflow/test_mlflow.py::{name}", "mlflow", ["mlflow"])
        r.record(when="call", outcome=outcome, verdict="stack" if outcome == "failed" else None,
                 message="sha256 of model.pkl differs" if outcome == "failed" else "", duration_s=0.1)
        results.append(r)
    doc = {"schema_version": 1, "session": {"exit_status": 1}, "target": {"name": "local"}}
    doc |= summarize(results, exit_status=1, collection_errors=[], interrupted=False)
    doc |= evidence.gather(tmp_path_factory.mktemp("no-evidence"), time.time())
    path = tmp_path_factory.mktemp("page") / "conformance.html"
    path.write_text(htmlpage.render(doc))
    return path


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", *args],
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_browser_dom_shows_verdict_and_area_row(page):
    run = chromium("--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Conformance: does not conform" in run.stdout
    assert '<td>mlflow</td><td><span class="pill v-does-not-conform">does not conform</span>' in run.stdout
    assert "Not run in this session" in run.stdout  # no durability evidence: said, not crashed


def test_browser_screenshot_top_is_the_verdict_colour(page, pytestconfig):
    from PIL import Image  # matplotlib's dependency: in the suite environment

    shot = Path(option(pytestconfig, "reports_dir")).resolve() / "conformance.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    run = chromium(f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", page.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert image.convert("RGB").getpixel((640, 10)) == DOES_NOT_CONFORM_RGB
