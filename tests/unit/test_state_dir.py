"""The local stack's default state directory: in the clone, unless the services' users cannot reach it there."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from indmlops.targets.local.layout import SHARED_STATE_ROOT, blocked_at, default_state_dir, state_dir_note


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own base lies below a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="indmlops-state-dir-test-", dir=SHARED_STATE_ROOT))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def clone_under_private_home(base: Path) -> Path:
    home = base / "home"
    clone = home / "src" / "indmlops-lab"
    clone.mkdir(parents=True)
    home.chmod(0o700)  # a fresh Debian machine's /root
    return clone


def test_environment_variable_wins(clone_under_private_home):
    chosen = default_state_dir({"INDMLOPS_STATE_DIR": "/srv/lab"}, clone_under_private_home, as_root=True)
    assert chosen == Path("/srv/lab")


def test_clone_under_private_home_as_root_gets_a_traversable_directory_keyed_by_the_clone(clone_under_private_home,
                                                                                          base):
    assert blocked_at(clone_under_private_home) == base / "home"
    chosen = default_state_dir({}, clone_under_private_home, as_root=True)
    assert chosen.parent == SHARED_STATE_ROOT and chosen.name.startswith("indmlops-")
    assert default_state_dir({}, clone_under_private_home, as_root=True) == chosen  # the same on every run
    other = base / "home" / "src" / "other-clone"
    other.mkdir()
    assert default_state_dir({}, other, as_root=True) != chosen  # and one per clone
    note = state_dir_note(chosen, clone_under_private_home, {}, as_root=True)
    assert str(chosen) in note and str(base / "home") in note
    # A directory the user chose (--state-dir, INDMLOPS_STATE_DIR) needs no explanation.
    assert state_dir_note(base / "mine", clone_under_private_home, {}, as_root=True) == ""
    assert state_dir_note(chosen, clone_under_private_home, {"INDMLOPS_STATE_DIR": str(chosen)}, as_root=True) == ""


def test_clone_under_private_home_as_a_normal_user_keeps_state_in_the_clone(clone_under_private_home):
    # The services run as the user itself then: the home is theirs to traverse.
    assert default_state_dir({}, clone_under_private_home, as_root=False) == clone_under_private_home / ".indmlops"


def test_traversable_clone_keeps_state_in_the_clone(clone_under_private_home, base):
    (base / "home").chmod(0o755)
    assert blocked_at(clone_under_private_home) is None
    assert default_state_dir({}, clone_under_private_home, as_root=True) == clone_under_private_home / ".indmlops"
    assert state_dir_note(clone_under_private_home / ".indmlops", clone_under_private_home, {}, as_root=True) == ""


def test_blocked_at_names_a_missing_directory(base):
    assert blocked_at(base / "gone" / "deeper") == base / "gone"
