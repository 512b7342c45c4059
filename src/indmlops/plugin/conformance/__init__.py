"""One conformance report per pytest session (reports/conformance.json and .html; docs/conformance-report.md):
`model` counts the results and draws the verdicts, `evidence` reads what the suites keep under reports/,
`htmlpage` renders the page, `recorder` is the pytest side that gathers them and writes both files."""
