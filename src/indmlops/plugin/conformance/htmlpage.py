"""reports/conformance.html from the conformance document: one self-contained page (inline CSS, the latency plot
as a data URI, no script, nothing fetched) for a reader without a terminal: the verdict, then the areas, then
the details. Sections whose evidence this session did not produce say so."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from indmlops.plugin.conformance.model import OTHER_AREA, OUTCOMES, VERDICT_TEXT

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:0 24px 48px}
header.verdict{padding:22px 24px;color:#fff}
header.verdict h1{margin:0 0 6px;font-size:30px}
header.verdict p{margin:4px 0}
.v-conforms{background:#1f7a3d}.v-does-not-conform{background:#b3261e}.v-incomplete{background:#a35c00}
.v-not-run{background:#6b7280}
h2{margin:30px 0 10px;padding-bottom:4px;border-bottom:2px solid #d5d9e0}
h3{margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0 12px}
th,td{border:1px solid #d5d9e0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-size:13px;white-space:nowrap}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:13px/1.35 ui-monospace,Menlo,Consolas,monospace}
.na{color:#6b7280;font-style:italic}
.bar{display:flex;height:12px;min-width:140px;background:#e5e7eb;border-radius:3px;overflow:hidden}
.b-passed{background:#2f9e55}.b-failed,.b-error{background:#d93025}.b-environment{background:#e08a00}
.b-skipped{background:#9ca3af}.b-not_run{background:#cbd5e1}
nav a{margin-right:14px}
details{background:#fff;border:1px solid #d5d9e0;margin:6px 0;padding:6px 10px}
summary{cursor:pointer;font-weight:600}
img{max-width:100%;border:1px solid #d5d9e0;background:#fff}
footer{margin-top:36px;color:#6b7280;font-size:13px}
"""

SECTIONS = (("areas", "Areas"), ("failures", "Failures"), ("static", "Static findings"), ("isolation", "Isolation"),
            ("durability", "Durability"), ("latency", "Latency"), ("chaos", "Chaos"), ("environment", "Environment"),
            ("target", "Target and versions"), ("skips", "Skipped"))


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def pill(verdict: str) -> str:
    return f'<span class="pill v-{_e(verdict)}">{_e(VERDICT_TEXT.get(verdict, verdict))}</span>'


def table(head: list[str], rows: list[list[Any]], numeric: tuple[int, ...] = ()) -> str:
    """Cells are escaped unless given as ("html", markup)."""
    def cell(i: int, v: Any) -> str:
        body = v[1] if isinstance(v, tuple) and v[:1] == ("html",) else _e(v)
        return f'<td class="n">{body}</td>' if i in numeric else f"<td>{body}</td>"

    return ("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows) + "</table>")


def unavailable(section: dict[str, Any] | None) -> str | None:
    """The line shown instead of a section whose evidence is absent, stale or unreadable; None when it is there."""
    if not section:
        return '<p class="na">Not available: this report was built without it.</p>'
    status = section.get("status")
    if status == "available":
        return None
    label = "Not run in this session" if status == "not-run" else "Not available"
    return f'<p class="na">{label}: {_e(section.get("note", ""))}</p>'


def bar(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    parts = "".join(f'<div class="b-{o}" style="width:{100 * counts.get(o, 0) / total:.2f}%" title="{o}"></div>'
                    for o in OUTCOMES if counts.get(o))
    return f'<div class="bar">{parts}</div>'


def _groups(groups: dict[str, Any], label: str) -> str:
    if not groups:
        return '<p class="na">No test was collected.</p>'
    rows = [[name + (" (no area marker)" if name == OTHER_AREA else ""), ("html", pill(g["verdict"])), g["tests"],
             *[g["counts"][o] for o in OUTCOMES], ("html", bar(g["counts"]))] for name, g in groups.items()]
    return table([label, "verdict", "tests", *[o.replace("_", " ") for o in OUTCOMES], ""], rows,
                 numeric=tuple(range(2, 3 + len(OUTCOMES))))


def _failures(doc: dict[str, Any]) -> str:
    out = []
    for kind, title in (("stack", "Failures of the stack"), ("environment", "Environment verdicts (the host, "
                                                                              "not the stack)")):
        found = [f for f in doc.get("failures", []) if f["kind"] == kind]
        out.append(f"<h3>{title}: {len(found)}</h3>")
        if found:
            out.append(table(["test", "areas", "phase", "message (first lines)"],
                             [[f["test_id"], ", ".join(f["areas"]), f["when"], ("html", f"<pre>{_e(f['message'])}"
                                                                                        "</pre>")] for f in found]))
    return "".join(out)


def _static(section: dict[str, Any]) -> str:
    rules = section.get("rules") or {}
    if not rules:
        return '<p class="na">Not run in this session: no static case was collected.</p>'
    failing = [name for name, r in rules.items() if r["objects"]]
    out = [f"<p>{section.get('findings', 0)} finding(s) in {len(failing)} of {len(rules)} rule(s).</p>"]
    for name in failing:
        out.append(f"<h3>{_e(name)}</h3>")
        for obj, findings in rules[name]["objects"].items():
            body = "".join(f"<pre>{_e(f['message'])}</pre>" for f in findings)
            out.append(f"<details open><summary>{_e(obj)} ({len(findings)})</summary>{body}</details>")
    out.append(f"<details><summary>All {len(rules)} rules</summary>"
               + table(["rule", "verdict", *[o.replace("_", " ") for o in OUTCOMES]],
                       [[name, ("html", pill(r["verdict"])), *[r["counts"][o] for o in OUTCOMES]]
                        for name, r in rules.items()], numeric=tuple(range(2, 2 + len(OUTCOMES)))) + "</details>")
    return "".join(out)


def _isolation(section: dict[str, Any]) -> str:
    out = ["<h3>Static reachability matrix (the NetworkPolicies, evaluated)</h3>"]
    static = section.get("static_matrix") or {}
    out.append(unavailable(static) or f"<p>{_e(static['summary'])}</p><pre>{_e(chr(10).join(static['rows']))}</pre>")
    out.append("<h3>Live reachability (probed on the target)</h3>")
    live = section.get("live_matrix")
    gap = unavailable(live)
    if gap is None and live is not None:
        out.append(f"<p>{live['cells']} cells probed, {live['allowed']} allowed, {len(live['differing'])} differing "
                   f"from the intent or the static matrix, {live['not_probed']} not probed.</p>")
        if live["differing"]:
            keys = ["source", "destination", "port", "protocol", "intent", "static", "observed", "outcome"]
            out.append(table(keys, [[d[k] for k in keys] for d in live["differing"]]))
    return "".join(out + ([gap] if gap else []))


def _durability(section: dict[str, Any]) -> str:
    gap = unavailable(section)
    if gap:
        return gap
    rows = [[c["component"], c["kills"], c["recovery_median_s"], c["recovery_max_s"], c["items_verified"],
             f"{c['bytes_written'] / 1024:.0f} kB", ", ".join(c["kinds"]), c["kills_losing_content"]]
            for c in section["components"]]
    return (f"<p>{pill(section['verdict'])} {section['items_verified']} item(s) verified after the kills.</p>"
            + table(["component", "kills", "recovery median s", "max s", "items verified", "written", "content",
                     "kills losing content"], rows, numeric=(1, 2, 3, 4, 5, 7)))


def _latency(section: dict[str, Any], plot_png: bytes | None) -> str:
    gap = unavailable(section)
    if gap:
        return gap
    out = [f"<p>{pill(section['verdict'])}</p>",
           table(["operation", "measure", "bound", "measured", "verdict"],
                 [[r["operation"], r["measure"], r["bound"], r["measured"], "ok" if r["ok"] else "BREACHED"]
                  for r in section["rows"]])]
    if plot_png:
        data = base64.b64encode(plot_png).decode("ascii")
        out.append(f'<img alt="latency percentiles and throughput over time" src="data:image/png;base64,{data}">')
    else:
        out.append('<p class="na">Plot not available in this session.</p>')
    return "".join(out)


def _chaos(section: dict[str, Any]) -> str:
    gap = unavailable(section)
    if gap:
        return gap
    rec = table(["component", "kills", "recovery median s", "worst s"],
                [[r["component"], r["kills"], r["median_s"], r["worst_s"]] for r in section["recovery"]],
                numeric=(1, 2, 3))
    keys = ["published", "acknowledged", "late", "lost", "undrained", "duplicates"]
    exps = table(["experiment", "runs", "status", "hypothesis", *keys],
                 [[n, e["runs"], "/".join(sorted(set(e["statuses"]))), "met" if e["hypothesis_met"] else "NOT met",
                   *[e[k] for k in keys]] for n, e in section["experiments"].items()],
                 numeric=(1, 4, 5, 6, 7, 8, 9))
    return f"<p>{pill(section['verdict'])}</p><h3>Recovery</h3>{rec}<h3>QoS1 readings across the faults</h3>{exps}"


def _environment(section: dict[str, Any]) -> str:
    gap = unavailable(section)
    if gap:
        return gap
    out = [table(["figure", "value"], [[k, v] for k, v in section["figures"].items()])]
    out.append("<p>Shortfalls before the first run: " + (_e("; ".join(section["shortfalls"])) or "none") + "</p>")
    if section["runs"]:
        out.append(table(["monitored run", "samples", "seconds", "shortfalls"],
                         [[n, r["samples"], f"{r['seconds']:.0f}" if r["seconds"] is not None else "",
                           "; ".join(r["shortfalls"]) or "none"] for n, r in section["runs"].items()],
                         numeric=(1, 2)))
    return "".join(out)


def _target(section: dict[str, Any]) -> str:
    out = [f"<p>{_e(section.get('description') or section.get('note') or '')}</p>"]
    versions = section.get("versions")
    if isinstance(versions, dict) and versions:
        out.append(table(["service", "version"], [[k, v] for k, v in versions.items()]))
    elif versions:
        out.append(f'<p class="na">Versions: {_e(versions)}</p>')
    out.append("<pre>" + _e("\n".join(section.get("header") or [])) + "</pre>")
    opts = section.get("options") or {}
    if opts:
        out.append(table(["option", "value", "from"], [[n, o["value"], o["source"]] for n, o in opts.items()]))
    return "".join(out)


def render(doc: dict[str, Any], *, plot_png: bytes | None = None) -> str:
    verdict = doc.get("verdict", "incomplete")
    counts, session, target = doc.get("counts") or {}, doc.get("session") or {}, doc.get("target") or {}
    summary = ", ".join(f"{counts[o]} {o.replace('_', ' ')}" for o in OUTCOMES if counts.get(o))
    body = {
        "areas": _groups(doc.get("areas") or {}, "area") + "<h3>Suites</h3>" + _groups(doc.get("suites") or {},
                                                                                          "suite"),
        "failures": _failures(doc),
        "static": _static(doc.get("static") or {}),
        "isolation": _isolation(doc.get("isolation") or {}),
        "durability": _durability(doc.get("durability") or {}),
        "latency": _latency(doc.get("latency") or {}, plot_png),
        "chaos": _chaos(doc.get("chaos") or {}),
        "environment": _environment(doc.get("environment") or {}),
        "target": _target(target),
        "skips": table(["reason", "tests", "areas"], [[s["reason"], s["count"], ", ".join(s["areas"])]
                                                       for s in doc.get("skips") or []], numeric=(1,))
        if doc.get("skips") else '<p class="na">No test was skipped.</p>',
    }
    sections = "".join(f'<section id="{key}"><h2>{title}</h2>{body[key]}</section>' for key, title in SECTIONS)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Conformance: {_e(VERDICT_TEXT.get(verdict, verdict))}</title><style>{CSS}</style></head>
<body><header class="verdict v-{_e(verdict)}" id="verdict">
<h1>Conformance: {_e(VERDICT_TEXT.get(verdict, verdict))}</h1>
<p>{_e("; ".join(doc.get("verdict_reasons") or []))}</p>
<p>{_e(counts.get("tests", 0))} test(s): {_e(summary or "none ran")} · target {_e(target.get("name"))} ·
{_e(session.get("started_at"))}, {_e(session.get("duration_s"))} s ·
pytest exit status {_e(session.get("exit_status"))}</p>
</header><main><nav>{nav}</nav>{sections}
<footer>reports/conformance.json, schema version {_e(doc.get("schema_version"))} (docs/conformance-report.md) ·
{_e(doc.get("generated_by"))} · pytest {_e(" ".join(session.get("args") or []))}</footer></main></body></html>
"""
