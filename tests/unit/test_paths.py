"""The project tree is found from the environment, the installed package or the working directory, in that order."""

from __future__ import annotations

from pathlib import Path

from indmlops import paths


def make_tree(root: Path) -> Path:
    (root / "fixtures").mkdir(parents=True)
    (root / "fixtures" / "slo.yaml").write_text("{}\n")
    (root / "manifests").mkdir()
    (root / "config").mkdir()
    return root


def test_the_environment_wins(tmp_path: Path):
    assert paths.find_project_root({"INDMLOPS_PROJECT_DIR": str(tmp_path)}, cwd=Path("/")) == tmp_path.resolve()


def test_this_checkout_is_found_from_the_package():
    root = paths.find_project_root({}, cwd=Path("/"))
    assert paths.is_project_tree(root) and (root / "src" / "indmlops" / "paths.py").exists()
    assert root == paths.REPO_ROOT


def test_a_tree_above_the_working_directory_is_found_when_the_package_is_not_in_one(tmp_path: Path, monkeypatch):
    tree = make_tree(tmp_path / "clone")
    deep = tree / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "indmlops" / "paths.py"))
    assert paths.find_project_root({}, cwd=deep) == tree.resolve()


def test_without_any_tree_the_working_directory_is_returned(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "indmlops" / "paths.py"))
    assert paths.find_project_root({}, cwd=tmp_path) == tmp_path.resolve()
