"""The package's layers and import graph, checked from the source (no imports run).

- ``framediff.kernels`` knows arrays only: it imports no pipeline module, no Dask, no
  pandas/pyarrow and no file-I/O library;
- framediff's own modules import each other at module level (so tools and readers see
  every dependency), with no import cycle;
- pytest imports each module once, under its package name only.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"framediff": ROOT / "pipeline", "framediff.kernels": ROOT / "kernels"}

#: Third-party and standard modules the array layer must not use.
KERNEL_FORBIDDEN = (
    "dask",
    "distributed",
    "pandas",
    "pyarrow",
    "fsspec",
    "imageio",
    "PIL",
    "simplejpeg",
    "io",
    "pathlib",
    "shutil",
    "glob",
    "tempfile",
    "matplotlib",
)
#: Own modules that may only be imported lazily: they import CuPy, or numba (whose import
#: and first call would cost a small scan 0.4 s), when imported.
LAZY_OK = {"framediff.kernels._gpu_fused", "framediff.kernels._cpu_fused", "framediff.kernels._cpu_background"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if name.startswith("framediff.kernels") and package == "framediff":
                continue  # pipeline/ holds no kernels
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path):
    """``(imported module, at module level?)`` for every import in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # 'from . import x' / 'from framediff import kernels': x may be a module.
            submodules = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]
            # 'from . import x' inside a package needs x, not the package (which is running).
            targets = submodules if node.level and not node.module and submodules else [module, *submodules]
            for target in targets:
                yield target, id(node) in top_level


def _own(target: str) -> str | None:
    """The framediff module an import names (a package's submodule when it exists)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set]:
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target, _ in _imports(name, path):
            own = _own(target)
            if own and own != name and own != "framediff":
                edges.add(own)
        graph[name] = edges
    return graph


def test_the_modules_are_found():
    assert {"framediff.scan", "framediff.kernels.norms", "framediff.modes.base"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("framediff.kernels")))
def test_kernels_know_arrays_only(name):
    for target, _ in _imports(name, MODULES[name]):
        root = target.split(".")[0]
        assert root not in KERNEL_FORBIDDEN, f"{name} imports {target}"
        own = _own(target)
        assert own is None or own.startswith("framediff.kernels"), f"{name} imports the pipeline module {own}"


def test_own_modules_are_imported_at_module_level():
    lazy = sorted(
        f"{name} -> {_own(target)}"
        for name, path in MODULES.items()
        for target, top in _imports(name, path)
        if not top and _own(target) not in (None, "framediff") and _own(target) not in LAZY_OK
    )
    assert lazy == []


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_pytest_imports_each_module_once_under_its_package_name():
    import framediff.kernels  # noqa: F401

    stray = sorted(m for m in sys.modules if m.split(".")[0] in ("kernels", "pipeline"))
    assert stray == []
    assert Path(sys.modules["framediff.kernels"].__file__).parent == ROOT / "kernels"
