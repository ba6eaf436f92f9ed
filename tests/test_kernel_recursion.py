"""No compiled kernel calls itself: numba's on-disk cache cannot load a self-recursive
``@njit(cache=True)`` function (numba issue #6061, open): a process that calls it from
Python after another process cached it crashes with a segmentation fault. ``walk_flips``
(:mod:`mmsim.profile_table`) called itself to walk again with exact values when two
crossings were as near within their errors: on main 1865281, a script calling it on a
2,000-line book's table ran once and crashed (exit 139) every time after, the tests that
call it (``tests/test_big_books.py``, ``tests/test_levels_table.py``) and ``python -m
benchmarks.levels_table`` on a warm cache too. It loops now (``_walk_flips_once``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmsim"


def _jitted(fn: ast.FunctionDef) -> bool:
    """Whether ``fn`` carries numba's ``njit`` / ``jit`` decorator (called or not)."""
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("njit", "jit"):
            return True
    return False


def _calls_itself(fn: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == fn.name
        for node in ast.walk(fn)
    )


def test_no_compiled_kernel_calls_itself():
    """Every ``@njit`` function of the package, read from its source: none calls itself
    by name (the walk before this change did: ``walk_flips``)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and _jitted(node) and _calls_itself(node):
                found.append(f"{path.name}:{node.lineno} {node.name}")
    kernels = sum(
        isinstance(n, ast.FunctionDef) and _jitted(n)
        for p in PACKAGE.rglob("*.py")
        for n in ast.walk(ast.parse(p.read_text()))
    )
    assert kernels > 100, f"only {kernels} @njit functions found: the scan misses them"
    assert not found, f"self-recursive @njit kernels (crash when loaded from cache): {found}"
