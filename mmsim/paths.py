"""Where output goes and how it is written: safe names, owned directories, atomic files.

Rules every writer in mmsim follows:

- A scenario ``name`` becomes a directory name only through :func:`slug` (letters,
  digits, ``-_.``; bounded length; never ``.``/``..``), so a default output directory
  always lies inside its parent (``runs/``).
- Files are written to a temporary file in the target's directory and renamed over the
  target (:func:`atomic_write`): readers never see half a file, and a symbolic link at
  the target is replaced, never followed.
- Permissions follow the process umask (temporary files are created 0600 and
  temporary directories 0700 by the standard library; they are widened to what
  ``open`` / ``mkdir`` would have given).
- A directory that holds files mmsim did not write is not an output directory
  (:func:`check_output_dir`): mmsim refuses it instead of overwriting or deleting
  someone's files. Each file written through :func:`atomic_write` is listed in the
  directory's ``.mmsim-files`` manifest so a later replacement removes only those.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

from mmsim.errors import OutputError

__all__ = [
    "MANIFEST",
    "atomic_write",
    "atomic_write_text",
    "check_output_dir",
    "fix_mode",
    "owned_files",
    "read_regular",
    "slug",
]

MANIFEST = ".mmsim-files"
"""File in an output directory listing the names mmsim wrote there, one per line."""

MAX_SLUG = 80
"""Longest slug, characters (well below every file system's 255-byte name limit)."""


def slug(name: str, fallback: str = "scenario") -> str:
    """A safe file name for ``name``: letters, digits and ``-_.`` only, other runs of
    characters replaced by ``-``, no leading dot or dash, at most :data:`MAX_SLUG`
    characters (a long or rewritten name keeps an 8-character hash of the original, so
    distinct names stay distinct). Empty results become ``fallback``."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-")
    text = re.sub(r"\.{2,}", ".", text)
    if text != name or len(text) > MAX_SLUG:
        digest = hashlib.sha1(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        text = f"{(text or fallback)[: MAX_SLUG - 9]}-{digest}"
    return text or fallback


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fix_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the permissions ``open`` (0666) or ``mkdir`` (0777) would have under
    the current umask (``mkstemp`` / ``mkdtemp`` create 0600 / 0700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _record(directory: Path, name: str) -> None:
    """Add ``name`` to ``directory``'s manifest of files mmsim wrote."""
    manifest = directory / MANIFEST
    if manifest.is_symlink():
        manifest.unlink()
    known = set(manifest.read_text().split("\n")) if manifest.is_file() else set()
    if name not in known:
        with open(manifest, "a") as fh:
            fh.write(name + "\n")


def owned_files(directory: Path) -> set[str]:
    """Names listed in ``directory``'s manifest (files mmsim wrote there)."""
    manifest = directory / MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        return set()
    names = read_regular(manifest, 1 << 20).decode("utf-8", "replace").split("\n")
    return {n for n in names if n and "/" not in n and n not in (".", "..")}


def _create_temporary(path: Path) -> Path:
    """A new empty file beside ``path`` (mode 0600), named before it is created so that
    an interrupt (Ctrl-C) even inside the call that creates it leaves no file behind
    (``tempfile.mkstemp`` returns the name only once the file exists)."""
    while True:
        tmp = path.parent / f".{path.name[:40]}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:  # another writer's name: never ours to remove
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, record: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename
    it over ``path`` (a symbolic link there is replaced, not followed), and list the name
    in the directory's manifest. On error the temporary file is removed."""
    path = Path(path)
    tmp = _create_temporary(path)
    try:
        yield tmp
        fix_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if record:
        _record(path.parent, path.name)


def atomic_write_text(path: str | os.PathLike, text: str, record: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write`."""
    with atomic_write(path, record) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_save(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(temporary_path)`` and rename the file over ``path`` atomically."""
    with atomic_write(path) as tmp:
        writer(tmp)
    return Path(path)


def read_regular(path: Path, limit: int) -> bytes:
    """Bytes of ``path`` if it is a regular file of at most ``limit`` bytes; raises
    ``OSError`` otherwise (a device such as ``/dev/zero``, a FIFO, or a huge file would
    hang or exhaust memory)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"not a regular file: {path}")
    if st.st_size > limit:
        raise OSError(f"{st.st_size:,} bytes, more than the {limit:,} expected")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"more than the {limit:,} bytes expected")
    return data


def check_output_dir(path: str | os.PathLike, marker: str, what: str) -> bool:
    """Check that ``path`` may receive mmsim output of one kind; returns whether it
    already holds such output (to be replaced or resumed).

    Accepted: a path that does not exist, an empty directory, or a directory holding
    ``marker`` (``meta.json`` of a run, ``sweep.json`` of a sweep). Refused with
    :class:`~mmsim.errors.OutputError`: a file, a symbolic link, or a non-empty directory
    of anything else (someone's files, or the other kind of mmsim output).
    """
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; give the real directory")
    if not path.exists():
        return False
    if not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; choose another -o")
    if (path / marker).is_file() and not (path / marker).is_symlink():
        return True
    if any(path.iterdir()):
        raise OutputError(f"{path}: not empty and not {what} (no {marker}); choose another -o")
    return False
