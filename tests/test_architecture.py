"""The package's shape: no import cycles, no source-tree path lookups, a cheap public API.

Cycles are found on grimp's import graph (every import statement, including those
inside functions and under ``if TYPE_CHECKING:``: a type-only circle still ties two
modules together, and turns into a real one the day a hint is needed at run time) as
the strongly connected components of the directed graph, computed by SciPy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

import valuesim

PACKAGE = Path(valuesim.__file__).resolve().parent


def import_cycles(*packages: str) -> list[list[str]]:
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=False)
    modules = sorted(graph.modules)
    index = {m: i for i, m in enumerate(modules)}
    edges = [
        (index[m], index[t]) for m in modules for t in graph.find_modules_directly_imported_by(m)
    ]
    rows, cols = zip(*edges, strict=True) if edges else ((), ())
    adjacency = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(modules),) * 2)
    _, labels = connected_components(adjacency, directed=True, connection="strong")
    groups = [[modules[i] for i in np.flatnonzero(labels == lab)] for lab in np.unique(labels)]
    return [g for g in groups if len(g) > 1]


def test_no_import_cycles_among_core_modules() -> None:
    assert import_cycles("valuesim") == []


def test_no_import_cycles_within_the_bundled_plugins() -> None:
    # each plugin's package lists providers without its SDK and imports its provider
    # module lazily; options live in a module of their own so the two never import
    # each other (not even for type hints)
    for plugin in ("valuesim_openai", "valuesim_anthropic", "valuesim_google"):
        assert import_cycles(plugin) == [], plugin


def test_the_cycle_check_finds_a_planted_cycle(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclepkg import a\n")
    (pkg / "c.py").write_text("from cyclepkg import a\n")
    # a circle of type-only imports counts too
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclepkg import e\n"
    )
    (pkg / "e.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclepkg.d import X\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclepkg") == [["cyclepkg.a", "cyclepkg.b"], ["cyclepkg.d", "cyclepkg.e"]]


def test_no_source_tree_path_lookups() -> None:
    # package data goes through importlib.resources; project files through the
    # working directory: never relative to where the source happens to sit
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == "__file__":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_public_api_is_listed_and_imports_lazily() -> None:
    code = (
        "import sys, valuesim\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('valuesim.'))\n"
        "assert loaded == [], loaded\n"
        "for name in valuesim.__all__:\n"
        "    getattr(valuesim, name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'transformers', 'openai', 'anthropic', 'google'})\n"
        "assert heavy == [], heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
