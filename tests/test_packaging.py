"""A plain ``pip install .`` (not editable) ships every package of the source tree."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"framediff": ROOT / "pipeline", "framediff.kernels": ROOT / "kernels"}


def _packages_in_tree() -> set:
    found = set()
    for name, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            found.add(".".join([name, *rel]))
    return found


def test_every_package_of_the_tree_is_listed_for_installation():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    assert _packages_in_tree() - listed == set()
    # Each listed package maps to a folder that exists.
    dirs = setup["package-dir"]
    for package in listed:
        parent = max((p for p in dirs if package == p or package.startswith(p + ".")), key=len)
        folder = ROOT / dirs[parent] / Path(*package[len(parent) :].lstrip(".").split(".") if package != parent else ())
        assert (folder / "__init__.py").exists(), package
