"""Fuzz: seeded mutations of every shipped scenario through the real command, in-process.

Each mutation changes a scenario the way a new or hostile user might: a value replaced
by a wrong type, a negative, a huge or tiny number, a long or path-like string; a key
deleted or misspelled; a list item duplicated; a block replaced by a scalar; the YAML
text cut short or given an alias, a tag or a stray bracket. ``mmsim validate`` must then
answer exit 0, or exit 2 with exactly one ``mmsim: error:`` line, never a traceback or
a hang; a sample of the mutations that validate is run (``mmsim run``, with a small
``--max-events`` so a run either finishes quickly or is refused), and must exit 0, 2
(refused) or 3 (diverged) the same way.
"""

from __future__ import annotations

import contextlib
import copy
import io
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mmsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
MUTATIONS = 40
"""Mutations per shipped scenario (all validated)."""
RUNS = 2
"""Validated mutations per scenario that are also run (into the default ``runs/``)."""
HANG = 120
"""Seconds after which one command counts as hung (generous: a loaded 2-core machine
runs a mutated scenario several times slower than a quiet one)."""


class Hung(BaseException):
    """Raised by the hang alarm. Not an ``OSError`` (as ``TimeoutError`` is): the CLI
    reads an ``OSError`` during writing as a write failure, exit 4, which hid a slow run
    behind a wrong status."""


HOSTILE: list[Any] = [
    -1,
    0,
    -0.5,
    1e300,
    -1e300,
    1e-300,
    2**70,
    "abc",
    "",
    None,
    True,
    [],
    {},
    [1, "x"],
    {"a": 1},
    ".nan",
    float("inf"),
    "x" * 300,
    "../../escaped",
    "/etc/passwd",
    "line\nbreak",
    "noise",
    "pool",
    "dealer0",
    1e-9,
    1e9,
    0.5,
    3,
]
TEXT_NOISE = [
    "&a ",
    "*a",
    "!!int ",
    "!!bool ",
    "!!float ",
    "!!timestamp ",
    "!!map ",
    "!!python/object:os.system ",
    "[",
    "{",
    "]",
    ":",
    "\t",
    "- ",
    "\\ud800",
]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list indices) to a node of the tree, the root excluded."""
    found = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _parent(tree: Any, path: tuple) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


def mutate(data: dict, text: str, rng: np.random.Generator) -> str:
    """YAML text of one random mutation of a scenario (``data`` parsed from ``text``)."""
    kind = rng.integers(8)
    if kind == 0:  # text cut short
        return text[: rng.integers(len(text))]
    if kind == 1:  # a token spliced into the text, mostly in front of a value
        values = [i + 2 for i in range(len(text) - 2) if text[i : i + 2] in (": ", "- ")]
        at = int(rng.choice(values)) if values and rng.random() < 0.8 else rng.integers(len(text))
        return text[:at] + str(rng.choice(TEXT_NOISE)) + text[at:]
    tree = copy.deepcopy(data)
    paths = _paths(tree)
    path = paths[rng.integers(len(paths))]
    parent, key = _parent(tree, path), path[-1]
    if kind in (2, 3, 4):  # a value replaced by a hostile one
        parent[key] = copy.deepcopy(HOSTILE[rng.integers(len(HOSTILE))])
    elif kind == 5:  # a key deleted (or a list item)
        del parent[key]
    elif kind == 6:  # a key misspelled, or a list item duplicated
        if isinstance(parent, dict):
            parent[f"{key}x"] = parent.pop(key)
        else:
            parent.append(copy.deepcopy(parent[key]))
    else:  # a number scaled by a wild factor
        value = parent[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            parent[key] = value * float(rng.choice([-1.0, 1e-9, 1e-3, 1e3, 1e9]))
        else:
            parent[key] = copy.deepcopy(HOSTILE[rng.integers(len(HOSTILE))])
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


@contextlib.contextmanager
def _deadline(seconds: int, what: str):
    def hung(signum, frame):
        raise Hung(f"hung for {seconds} s: {what}")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def command(argv: list[str], allowed: set[int]) -> tuple[int, str]:
    """Run ``mmsim argv`` in-process; check its status and that a failure is one line."""
    out, err = io.StringIO(), io.StringIO()
    with _deadline(HANG, " ".join(argv)), contextlib.redirect_stdout(out):
        with contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as done:  # argparse
                status = int(done.code)
    text = err.getvalue()
    assert status in allowed, (argv, status, text)
    if status != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mmsim: error: "), (argv, text)
    assert "Traceback" not in text, (argv, text)
    return status, text


@pytest.mark.skipif(sys.platform == "win32", reason="SIGALRM")
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_mutated_scenarios_never_give_a_traceback_a_hang_or_a_wrong_status(
    path, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    text = path.read_text()
    data = yaml.safe_load(text)
    rng = np.random.default_rng([20_260_101, SCENARIOS.index(path)])
    valid = []
    for i in range(MUTATIONS):
        case = tmp_path / f"m{i}.yaml"
        case.write_text(mutate(data, text, rng), encoding="utf-8")
        status, _ = command(["validate", str(case)], {0, 2})
        if status == 0:
            valid.append(case)
    assert len(valid) < MUTATIONS, "no mutation was refused: the mutations are too tame"
    for case in [valid[i] for i in rng.permutation(len(valid))[:RUNS]]:
        made = set(tmp_path.glob("runs/*"))
        argv = ["run", str(case), "-q", "--no-plot", "--seed", "1", "--max-events", "3e5"]
        status, _ = command(argv, {0, 2, 3})
        new = set(tmp_path.glob("runs/*")) - made
        assert len(new) <= (status == 0), (case, status, new)  # one result, or nothing
        assert all((p / "meta.json").is_file() for p in tmp_path.glob("runs/*"))
        assert {p.name for p in tmp_path.iterdir()} <= {"runs", *(c.name for c in valid)} | {
            f"m{i}.yaml" for i in range(MUTATIONS)
        }  # nothing written outside runs/
