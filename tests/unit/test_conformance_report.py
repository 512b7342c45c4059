"""The conformance report's pure parts with fabricated inputs: results folded and counted, verdicts drawn, evidence
files read back (fresh, stale, junk), the page rendered self-contained."""

import json
import os
import re
import time
import tomllib

import pytest

from indmlops.paths import REPO_ROOT
from indmlops.plugin.conformance import evidence, htmlpage
from indmlops.plugin.conformance.model import (
    AREAS,
    Failure,
    Result,
    areas_of,
    first_lines,
    suite_of,
    summarize,
    verdict_of,
)


def result(test_id="suites/mlflow/test_mlflow.py::test_x", areas=("mlflow",), **phases):
    r = Result(test_id, suite_of(test_id), list(areas))
    for when, (outcome, verdict, message) in phases.items():
        r.record(when=when, outcome=outcome, verdict=verdict, message=message, duration_s=0.5)
    return r


def test_every_registered_marker_is_an_area_or_the_option_marker():
    markers = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    names = {m.split(":")[0].split("(")[0].strip() for m in markers}
    assert names - set(AREAS) == set(), "add the new marker to indmlops.plugin.conformance.model.AREAS"


@pytest.mark.parametrize(("nodeid", "suite"), [("suites/static/test_static.py::test_a[x]", "static"),
                                               ("tests/unit/test_x.py::test_b", "unit"),
                                               ("test_x.py::test_c", "test_x")])
def test_suite_is_the_directory_under_suites_or_tests(nodeid, suite):
    assert suite_of(nodeid) == suite


def test_test_without_area_marker_is_other_and_markers_keep_area_order():
    assert areas_of({"parametrize"}) == ["other"]
    assert areas_of({"chaos", "durability"}) == ["durability", "chaos"]


def test_teardown_error_after_pass_is_an_error_of_the_stack():
    r = result(setup=("passed", None, ""), call=("passed", None, ""), teardown=("failed", "stack", "boom\nmore"))
    assert r.outcome == "error" and r.failures[0].when == "teardown" and r.failures[0].kind == "stack"
    assert r.duration_s == pytest.approx(1.5)


def test_environment_verdict_is_counted_apart_from_failures():
    r = result(setup=("passed", None, ""), call=("failed", "environment", "environment, not the stack: ..."))
    assert r.outcome == "environment" and r.failures[0].kind == "environment"


@pytest.mark.parametrize(("counts", "verdict"), [
    ({"passed": 3, "skipped": 1}, "conforms"),
    ({"passed": 3, "failed": 1, "environment": 1}, "does-not-conform"),
    ({"passed": 3, "error": 1}, "does-not-conform"),
    ({"passed": 3, "environment": 1}, "incomplete"),
    ({"passed": 3, "not_run": 2}, "incomplete"),
    ({"skipped": 2}, "not-run"),
    ({}, "not-run"),
])
def test_group_verdict(counts, verdict):
    assert verdict_of(counts) == verdict


def test_summary_counts_per_area_and_suite_and_lists_failures_with_kind():
    results = [
        result(setup=("passed", None, ""), call=("passed", None, "")),
        result("suites/mlflow/test_mlflow.py::test_y", setup=("passed", None, ""),
               call=("failed", "stack", "AssertionError: sha256 differs\nexpected a\nactual b\nline 4\nline 5")),
        result("suites/latency/test_latency.py::test_z", areas=("latency",), setup=("skipped", None, "no inference")),
        result("suites/chaos/test_chaos.py::test_k", areas=("chaos",)),  # collected, never reported
    ]
    doc = summarize(results, exit_status=2, collection_errors=[], interrupted=True)
    assert doc["verdict"] == "does-not-conform"
    assert doc["counts"] == {"tests": 4, "passed": 1, "failed": 1, "error": 0, "environment": 0, "skipped": 1,
                             "not_run": 1}
    assert list(doc["areas"]) == list(AREAS)  # every area, collected or not
    assert doc["areas"]["mlflow"]["verdict"] == "does-not-conform"
    assert (doc["areas"]["latency"]["verdict"], doc["areas"]["chaos"]["verdict"]) == ("not-run", "incomplete")
    assert doc["areas"]["observability"] == {"verdict": "not-run", "tests": 0,
                                             "counts": dict.fromkeys(doc["areas"]["observability"]["counts"], 0)}
    assert doc["suites"]["mlflow"]["counts"]["failed"] == 1
    [failure] = doc["failures"]
    assert failure["kind"] == "stack" and failure["areas"] == ["mlflow"]
    assert failure["message"].splitlines() == ["AssertionError: sha256 differs", "expected a", "actual b", "line 4"]
    assert doc["skips"] == [{"reason": "no inference", "count": 1, "areas": ["latency"]}]
    assert any("interrupted" in r for r in doc["verdict_reasons"])


def test_collection_error_alone_makes_the_session_incomplete():
    errors = [Failure("suites/x/test_x.py", "collect", "stack", "ImportError: no module named y")]
    doc = summarize([], exit_status=2, collection_errors=errors, interrupted=False)
    assert doc["verdict"] == "incomplete"
    assert doc["failures"][0]["when"] == "collect"
    assert "no test passed: nothing was verified" in doc["verdict_reasons"]


def test_static_findings_grouped_by_rule_and_object():
    failing = result("suites/static/test_static.py::test_static_rule_holds[Deployment/it-core/mlflow:probes]",
                     areas=("static",), call=("failed", "stack", "Deployment/it-core/mlflow (a.yaml) [probes] ..."))
    failing.static = {"rule": "probes", "object": "Deployment/it-core/mlflow", "arg": ""}
    passing = result("suites/static/test_static.py::test_static_rule_holds[Deployment/it-core/x:probes]",
                     areas=("static",), call=("passed", None, ""))
    passing.static = {"rule": "probes", "object": "Deployment/it-core/x", "arg": ""}
    static = summarize([failing, passing], exit_status=1, collection_errors=[], interrupted=False)["static"]
    assert static["findings"] == 1
    probes = static["rules"]["probes"]
    assert probes["verdict"] == "does-not-conform" and probes["counts"]["passed"] == 1
    assert list(probes["objects"]) == ["Deployment/it-core/mlflow"]


def test_first_lines_are_cut_to_lines_and_characters():
    assert first_lines("a\nb\nc", 2) == "a\nb"
    assert first_lines("x" * 50, 1, 10) == "x" * 9 + "…"


# --- evidence ---------------------------------------------------------------------------------------------------


def test_missing_evidence_is_not_run_and_never_raises(tmp_path):
    found = evidence.gather(tmp_path, time.time())
    assert found["durability"]["status"] == "not-run"
    assert found["latency"]["status"] == "not-run"
    assert found["chaos"]["status"] == "not-run"
    assert found["isolation"]["live_matrix"]["status"] == "not-run"
    assert "latency or chaos" in found["environment"]["note"]


def test_evidence_from_an_earlier_session_is_not_taken(tmp_path):
    (tmp_path / "durability").mkdir()
    old = tmp_path / "durability" / "summary.json"
    old.write_text("[]")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    section = evidence.durability(tmp_path, time.time())
    assert section["status"] == "not-run" and "earlier session" in section["note"]


def test_unreadable_evidence_is_not_available_with_the_reason(tmp_path):
    (tmp_path / "latency").mkdir()
    (tmp_path / "latency" / "verdict.csv").write_text("no,header\n1,2\n")
    section = evidence.latency(tmp_path, time.time() - 5)
    assert section["status"] == "not-available" and "KeyError" in section["note"]


def test_durability_latency_and_matrices_read_back(tmp_path):
    since = time.time() - 5
    (tmp_path / "durability").mkdir()
    outcome = {"component": "postgres", "recovery_s": 1.2, "verified": {"postgres rows": 500},
               "written": {"postgres rows": {"items": 500, "bytes": 512000, "where": "t"}}, "failures": []}
    (tmp_path / "durability" / "summary.json").write_text(json.dumps([outcome, outcome | {"recovery_s": 2.0}]))
    (tmp_path / "latency").mkdir()
    (tmp_path / "latency" / "verdict.csv").write_text(
        "operation,measure,bound,measured,ok\nmqtt:e2e,p50,≤ 50 ms,7.8 ms (n=10),True\n"
        "delivery,lost ratio,≤ 0,0.1 (1/10),False\n")
    (tmp_path / "latency" / "latency.png").write_bytes(b"\x89PNG")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "isolation-matrix.txt").write_text(
        "reachability matrix of m (3 of 9 cells allowed; intent: none)\n  a/b -> c/d:1/TCP  [2 of 3 denied]\n")
    (tmp_path / "isolation").mkdir()
    (tmp_path / "isolation" / "matrix.csv").write_text(
        "source,destination,port,protocol,intent,static,observed,outcome,address,reproduce\n"
        "a/b,c/d,1,TCP,allow,allow,allow,connected,1.2.3.4,x\n"
        "a/b,c/e,2,TCP,deny,deny,allow,connected,1.2.3.5,y\n"
        "a/b,c/f,3,TCP,,,not probed,no pod,,\n")
    dur = evidence.durability(tmp_path, since)
    assert dur["verdict"] == "conforms" and dur["components"][0]["kills"] == 2
    assert dur["components"][0]["recovery_median_s"] == pytest.approx(1.6) and dur["items_verified"] == 1000
    lat = evidence.latency(tmp_path, since)
    assert lat["verdict"] == "does-not-conform" and lat["plot"].endswith("latency.png")
    assert [r["ok"] for r in lat["rows"]] == [True, False]
    iso = evidence.isolation(tmp_path, since)
    assert (iso["static_matrix"]["allowed"], iso["static_matrix"]["cells"]) == (3, 9)
    live = iso["live_matrix"]
    assert (live["cells"], live["allowed"], live["not_probed"]) == (2, 2, 1)
    assert [d["destination"] for d in live["differing"]] == ["c/e"]


# --- the page -----------------------------------------------------------------------------------------------------


def fabricated_doc(tmp_path) -> dict:
    results = [result(setup=("passed", None, ""), call=("passed", None, "")),
               result("suites/mlflow/test_mlflow.py::test_y", setup=("passed", None, ""),
                      call=("failed", "stack", "AssertionError: <script>alert(1)</script> bucket gone"))]
    doc = {"schema_version": 1, "generated_by": "test", "session": {"exit_status": 1, "args": ["suites"]},
           "target": {"name": "local", "versions": {"mlflow": "mlflow 3.17.2"}, "header": ["indmlops: target=local"]}}
    doc |= summarize(results, exit_status=1, collection_errors=[], interrupted=False)
    doc |= evidence.gather(tmp_path, time.time())
    return doc


def test_page_shows_verdict_areas_and_failures_escaped_and_self_contained(tmp_path):
    page = htmlpage.render(fabricated_doc(tmp_path), plot_png=b"\x89PNG fake")
    assert "<h1>Conformance: does not conform</h1>" in page
    assert re.search(r"<td>mlflow</td><td><span class=\"pill v-does-not-conform\">", page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "Not run in this session" in page  # durability, chaos: no evidence in tmp_path
    assert "mlflow 3.17.2" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "the page must fetch nothing"
    assert "<link" not in page


def test_page_inlines_the_latency_plot_as_a_data_uri(tmp_path):
    doc = fabricated_doc(tmp_path)
    doc["latency"] = {"status": "available", "verdict": "conforms", "plot": "x.png",
                      "rows": [{"operation": "mqtt:e2e", "measure": "p50", "bound": "≤ 50 ms",
                                "measured": "7.8 ms", "ok": True}]}
    page = htmlpage.render(doc, plot_png=b"\x89PNG fake")
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in page


def test_page_renders_a_minimal_document_from_a_failed_build():
    page = htmlpage.render({"schema_version": 1, "verdict": "incomplete",
                            "verdict_reasons": ["the conformance report could not be built: KeyError: 'x'"]})
    assert "Conformance: incomplete" in page and "could not be built" in page
