"""Documentation a reader can follow: notebooks cite only files that exist in the
repository, and their executed pages in docs/notebooks/ exist with their figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CITED = re.compile(r"[\w./-]+\.(?:md|yaml|yml|py|ipynb|csv|json|png|parquet)\b")
WRITTEN = {
    "results.parquet",
    "series.parquet",
    "trades.parquet",
    "episodes.parquet",
    "metrics.json",
    "meta.json",
    "scenario.yaml",
    "sweep.json",
    "price.png",
    "option_trades.parquet",
    "accounts.parquet",
    "results.csv",
}
"""Files a run or sweep writes: cited as outputs, not as repository files."""


def cited_files(path: Path) -> set[str]:
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells)
    return set(CITED.findall(text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_cite_only_files_in_the_repository(path):
    missing = []
    for name in cited_files(path):
        base = Path(name).name
        if base in WRITTEN or name.startswith(("runs/", "http")):
            continue
        candidates = [ROOT / name, ROOT / "notebooks" / name, ROOT / "scenarios" / name]
        candidates += list(ROOT.glob(f"**/{base}")) if "/" not in name else []
        if not any(c.exists() for c in candidates):
            missing.append(name)
    assert not missing, f"{path.name} cites files not in the repository: {missing}"
    assert "DESIGN.md" not in path.read_text()  # the design notes are not shipped


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_an_executed_page_with_its_figures(path):
    page = ROOT / "docs" / "notebooks" / f"{path.stem}.md"
    assert page.is_file(), f"run: python docs/render_notebooks.py {path.stem}"
    text = page.read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (page.parent / link).is_file(), link
