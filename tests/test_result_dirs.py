"""Output directories: names become safe slugs, nothing mmsim did not write is touched,
writes are atomic and never follow links, permissions follow the umask, damaged
directories are one-line ResultErrors (issue 10, items 2-5, 16, 17, 20)."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest

import mmsim
from mmsim.cli import main
from mmsim.paths import atomic_write_text, slug

TINY = """\
name: {name}
clock: {{days: 0.004}}
market: {{S0: 100, impact: {{lam: 1.0e-5}}}}
dealers:
  - band: 50
    positions:
      - {{type: call, strike: 100, expiry_days: 21, qty: -100}}
record: {{every: 30, levels_every: 600}}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def scenario(tmp_path: Path, name: str = "tiny") -> str:
    path = tmp_path / "s.yaml"
    path.write_text(TINY.format(name=json.dumps(name)), encoding="utf-8")
    return str(path)


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mmsim: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A tiny result directory saved by the command (with its figures)."""
    root = tmp_path_factory.mktemp("saved")
    src = root / "s.yaml"
    src.write_text(TINY.format(name="tiny"))
    assert main(["run", str(src), "-o", str(root / "run"), "-q", "--seed", "1", "--no-plot"]) == 0
    return root / "run"


# -- item 3: names are slugs, the output stays inside runs/ --------------------------------
@pytest.mark.parametrize(
    "name",
    ["../escaped", "/abs/path", "a/b", "new\nline", "", "x" * 300, "nul\0byte", "..", "é ü"],
)
def test_scenario_names_become_safe_directory_names_inside_runs(in_tmp, capsys, name):
    assert main(["run", scenario(in_tmp, name), "-q", "--no-plot", "--seed", "1"]) == 0
    (made,) = (in_tmp / "runs").iterdir()  # exactly one directory, inside runs/
    assert made.resolve().parent == (in_tmp / "runs").resolve()
    assert set(made.name) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
    )
    assert len(made.name) <= 100 and not made.name.startswith(".")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["runs", "s.yaml"]  # nothing else


def test_slugs_keep_distinct_names_distinct():
    names = ["a/b", "a-b", "a b", "a\nb", "x" * 300, "x" * 301]
    assert len({slug(n) for n in names}) == len(names)  # a-b stays a-b; others hashed
    assert slug("long_gamma") == "long_gamma"  # ordinary names are unchanged


# -- item 2: refuse what mmsim did not write; replace only what it wrote --------------------
def test_sweep_refuses_a_directory_holding_someone_elses_files(in_tmp, capsys):
    out = in_tmp / "mine"
    out.mkdir()
    (out / "scenario.yaml").write_text("my own notes\n")
    assert main(["sweep", scenario(in_tmp), "--seeds", "1", "-o", str(out), "-q"]) == 2
    assert "mine" in one_error_line(capsys.readouterr().err)
    assert [p.name for p in out.iterdir()] == ["scenario.yaml"]
    assert (out / "scenario.yaml").read_text() == "my own notes\n"


def test_run_over_a_result_keeps_files_mmsim_did_not_write(in_tmp, capsys):
    out = in_tmp / "out"
    args = ["run", scenario(in_tmp), "-o", str(out), "--seed", "1"]
    assert main([*args, "-q", "--no-plot"]) == 0
    (out / "notes.md").write_text("mine")
    atomic_write_text(out / "price.png", "a figure")  # as mmsim's figures are written
    assert main([*args, "--no-plot"]) == 0  # replaced, and said so
    assert f"replacing the earlier result in {out}" in capsys.readouterr().err
    assert (out / "notes.md").read_text() == "mine"  # untouched
    assert not (out / "price.png").exists()  # mmsim's own figure of the old run: removed
    assert mmsim.load_result(out).seed == 1


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_output_that_is_a_file_or_a_link_is_refused(in_tmp, capsys, kind):
    afile = in_tmp / "afile"
    afile.write_text("x")
    link = in_tmp / "link"
    link.symlink_to(in_tmp / "elsewhere")
    for out in (afile, link):
        extra = ["--seeds", "1"] if kind == "sweep" else []
        assert main([kind, scenario(in_tmp), *extra, "-o", str(out), "-q"]) == 2
        assert str(out) in one_error_line(capsys.readouterr().err)
    assert afile.read_text() == "x" and not (in_tmp / "elsewhere").exists()


# -- item 4: overrides get their own directory and are recorded -----------------------------
def test_overrides_never_overwrite_the_base_run(in_tmp, capsys):
    src = scenario(in_tmp)
    assert main(["run", src, "-q", "--no-plot", "--seed", "7"]) == 0
    base = in_tmp / "runs" / "tiny-seed7"
    before = (base / "metrics.json").read_text()
    override = "dealers.0.positions.0.qty=0"
    assert main(["run", src, "-q", "--no-plot", "--seed", "7", "--set", override]) == 0
    assert (base / "metrics.json").read_text() == before  # the base run is intact
    (other,) = [p for p in (in_tmp / "runs").iterdir() if p != base]
    assert other.name.startswith("tiny-seed7-set")
    assert f"--set {override}" in (other / "scenario.yaml").read_text()
    assert mmsim.load_result(other).meta["overrides"] == [override]


# -- item 5: plots never write through a symbolic link --------------------------------------
def test_figures_replace_a_symlink_instead_of_writing_through_it(saved, in_tmp):
    from matplotlib.figure import Figure

    from mmsim.plotkit import save as _save

    victim = in_tmp / "victim.txt"
    victim.write_text("precious")
    png = saved / "price.png"
    png.symlink_to(victim)
    _save(Figure(figsize=(1, 1)), png)  # what every figure of `mmsim plot` goes through
    assert victim.read_text() == "precious"
    assert not png.is_symlink() and png.read_bytes().startswith(b"\x89PNG")


def test_atomic_write_replaces_links_and_leaves_no_temporary_on_failure(tmp_path):
    target = tmp_path / "x.json"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target.symlink_to(victim)
    atomic_write_text(target, "new")
    assert victim.read_text() == "keep" and target.read_text() == "new"
    with pytest.raises(RuntimeError), mmsim.paths.atomic_write(tmp_path / "y.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mmsim-files", "victim", "x.json"]


def test_ctrl_c_while_the_temporary_is_created_leaves_no_file(tmp_path, monkeypatch):
    """An interrupt that lands just after the temporary file exists, before its name
    is known to the caller (``tempfile.mkstemp``'s window: an interrupted sweep left a
    ``.<run>.json.*.tmp`` in its runs directory), still removes it."""
    real_open = os.open

    def open_then_interrupt(path, flags, mode=0o777, **kw):
        os.close(real_open(path, flags, mode, **kw))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt), mmsim.paths.atomic_write(tmp_path / "y.json"):
        pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# -- item 20: permissions follow the umask --------------------------------------------------
def test_result_directories_follow_the_umask(in_tmp):
    old = os.umask(0o022)
    try:
        out = mmsim.run(scenario(in_tmp), seed=1).save(in_tmp / "r")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755, oct(out.stat().st_mode)
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f.name, oct(f.stat().st_mode))


def test_sweep_files_follow_the_umask(in_tmp):
    old = os.umask(0o027)
    try:
        mmsim.sweep(scenario(in_tmp), seeds=1, executor="serial", out="sw", progress=False)
    finally:
        os.umask(old)
    for f in [*Path("sw").iterdir(), *Path("sw/runs").iterdir()]:
        want = 0o750 if f.is_dir() else 0o640
        assert stat.S_IMODE(f.stat().st_mode) == want, (f, oct(f.stat().st_mode))


# -- item 16: damaged directories are one-line errors, never a traceback or a hang ----------
def _damage(directory: Path, how: str) -> None:
    if how == "empty parquet":
        (directory / "series.parquet").write_bytes(b"")
    elif how == "stub meta":
        (directory / "meta.json").write_text("{}")
    elif how == "bad json":
        (directory / "metrics.json").write_text("{not json")
    elif how == "metrics not numbers":
        (directory / "metrics.json").write_text('{"realized_vol": "high"}')
    elif how == "metrics is /dev/zero":
        (directory / "metrics.json").unlink()
        (directory / "metrics.json").symlink_to("/dev/zero")
    elif how == "metrics is a fifo":
        (directory / "metrics.json").unlink()
        os.mkfifo(directory / "metrics.json")
    elif how == "renamed dealer":
        text = (directory / "scenario.yaml").read_text()
        (directory / "scenario.yaml").write_text(text.replace("name: null", "name: ghost", 1))
    elif how == "series without price":
        pd.DataFrame({"t": [0.0]}).to_parquet(directory / "series.parquet")


DAMAGE = [
    "empty parquet",
    "stub meta",
    "bad json",
    "metrics not numbers",
    "metrics is /dev/zero",
    "metrics is a fifo",
    "renamed dealer",
    "series without price",
]


@pytest.mark.skipif(sys.platform == "win32", reason="devices, FIFOs and SIGALRM")
@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_result_directories_are_one_line_errors(saved, tmp_path, capsys, how):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    _damage(broken, how)

    def hung(signum, frame):
        raise TimeoutError(f"{how}: still reading after 10 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(mmsim.ResultError) as info:
            mmsim.load_result(broken)
        assert str(broken) in str(info.value) and "\n" not in str(info.value)
        assert main(["plot", str(broken)]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    one_error_line(capsys.readouterr().err)


def test_damaged_sweep_run_files_are_run_again(in_tmp):
    src = scenario(in_tmp)
    first = mmsim.sweep(src, seeds=3, executor="serial", out="sw", progress=False)
    files = sorted(Path("sw/runs").glob("*.json"))
    files[0].write_text("")  # empty
    files[1].write_text('{"status": "ok"}')  # a stub: no metrics, no run id
    files[2].unlink()
    files[2].symlink_to("/dev/zero")
    again = mmsim.sweep(src, seeds=3, executor="serial", out="sw", progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert again.attrs["reused"] == 0


# -- item 17: a full or read-only disk: one line, exit 4, nothing half-written --------------
def test_a_full_disk_is_one_line_and_leaves_nothing(in_tmp, capsys, monkeypatch):
    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    src = scenario(in_tmp)
    assert main(["run", src, "-o", "out", "-q"]) == 4
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "out" in line
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]  # no partial output


def test_a_sweep_that_cannot_write_its_table_keeps_its_saved_runs(in_tmp, capsys, monkeypatch):
    src = scenario(in_tmp)
    real = pd.DataFrame.to_parquet

    def full(self, path, *a, **k):
        if "results" in str(path) or ".results" in Path(path).name:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    assert main(["sweep", src, "--seeds", "2", "-o", "sw", "-q", "--executor", "serial"]) == 4
    assert "Read-only file system" in one_error_line(capsys.readouterr().err)
    assert len(list(Path("sw/runs").glob("*.json"))) == 2  # the finished runs are intact
    assert not [p for p in Path("sw").iterdir() if p.name.endswith(".tmp")]
