"""Option resolution order (marker > CLI > env > ini > default) and errors that name their source."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indmlops.plugin.options import OPTIONS, OptionError, resolve

SOURCES = ["marker", "cli", "env", "ini"]
PROFILE_VALUES = st.sampled_from(["quick", "full"])


@given(st.fixed_dictionaries({s: st.one_of(st.none(), PROFILE_VALUES) for s in SOURCES}))
def test_first_source_that_sets_an_option_wins(values):
    r = resolve("profile", marker={"profile": values["marker"]} if values["marker"] else None,
                cli=values["cli"], env={"INDMLOPS_PROFILE": values["env"]} if values["env"] else {},
                ini=values["ini"])
    winner = next((s for s in SOURCES if values[s] is not None), None)
    if winner is None:
        assert (r.value, r.source) == ("quick", "default")
    else:
        assert r.value == values[winner]
        assert r.source.lower().startswith({"cli": "cli", "env": "environment", "ini": "ini",
                                            "marker": "marker"}[winner])


@pytest.mark.parametrize("kwargs,source", [
    ({"cli": "kid"}, "from CLI"),
    ({"env": {"INDMLOPS_TARGET": "kid"}}, "from environment INDMLOPS_TARGET"),
    ({"ini": "kid"}, "from ini indmlops_target"),
    ({"marker": {"target": "kid"}}, "from marker"),
])
def test_invalid_target_error_names_its_source(kwargs, source):
    kwargs.setdefault("env", {})
    with pytest.raises(OptionError) as err:
        resolve("target", **kwargs)
    assert str(err.value) == f"--target 'kid' {source}: expected one of local, kind, kubeconfig, cluster"


@pytest.mark.parametrize("raw,value", [("1", True), ("yes", True), ("off", False), ("FALSE", False)])
def test_boolean_option_accepts_common_spellings(raw, value):
    assert resolve("keep_stack", env={"INDMLOPS_KEEP_STACK": raw}).value is value


def test_boolean_option_rejects_other_words():
    with pytest.raises(OptionError, match="--keep-stack 'maybe' from environment INDMLOPS_KEEP_STACK"):
        resolve("keep_stack", env={"INDMLOPS_KEEP_STACK": "maybe"})


def test_every_option_is_documented_in_the_readme_with_its_three_names():
    """docs/options.md's table is what users read: an option added without its row, or a row naming another
    spelling of the flag, environment variable or ini key, fails here."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "options.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines() if line.startswith("| `--")}
    wrong = {opt.name: rows.get(opt.cli, "no row") for opt in OPTIONS.values()
             if opt.cli not in rows or f"`{opt.env}`" not in rows[opt.cli] or f"`{opt.ini}`" not in rows[opt.cli]}
    assert wrong == {}, f"docs/options.md: rows missing or naming other names: {wrong}"
    assert sorted(rows) == sorted(opt.cli for opt in OPTIONS.values()), \
        "docs/options.md documents options that do not exist"
