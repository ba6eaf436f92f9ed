"""The README's commands and examples still work, and its schema file is current."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from mmsim.cli import main
from mmsim.scenario import scenario_json_schema

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def mmsim_commands() -> list[list[str]]:
    """Every ``mmsim ...`` command in the README's bash blocks, in order (comments and
    a leading ``pip install ... &&`` dropped)."""
    commands = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("&&")[-1].strip()
            if line.startswith("mmsim "):
                commands.append(shlex.split(line, comments=True)[1:])
    return commands


@pytest.fixture
def in_scratch(tmp_path, monkeypatch):
    """A scratch working directory that sees the repository's scenarios/."""
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_names_every_subcommand():
    used = {argv[0] for argv in mmsim_commands()}
    assert {"run", "sweep", "plot"} <= used
    for sub in ("run", "sweep", "plot", "validate", "gex", "schema"):
        assert f"mmsim {sub}" in README


def test_every_mmsim_command_in_the_readme_runs(in_scratch, capsys):
    """In order, as a newcomer would type them; sweeps shortened (a 0.02-day clock, one
    seed, in-process) so the test stays quick: their arguments are checked all the same."""
    commands = mmsim_commands()
    assert len(commands) >= 5
    for argv in commands:
        if argv[0] == "sweep":
            argv = [*argv, "--seeds", "1", "--set", "clock.days=0.02", "--executor", "serial"]
        assert main(argv) == 0, f"mmsim {shlex.join(argv)}"
    assert (in_scratch / "runs" / "long_gamma-seed7" / "price.png").is_file()
    assert (in_scratch / "runs" / "band_sweep-sweep" / "results.parquet").is_file()


def test_the_python_example_runs(in_scratch, capsys):
    (example,) = blocks("python")
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "4.76" in out  # the textbook call value it prints
    assert (in_scratch / "runs" / "short" / "meta.json").is_file()


def test_the_committed_schema_file_is_what_mmsim_schema_prints():
    committed = json.loads((ROOT / "scenario.schema.json").read_text())
    assert committed == scenario_json_schema(), "regenerate: mmsim schema > scenario.schema.json"
