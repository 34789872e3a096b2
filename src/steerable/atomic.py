"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Files and folders are created with the permissions the process's umask allows (0666 and 0777 less
the umask), as ``open`` and ``mkdir`` would create them, so shared caches and result stores stay
readable by whoever may read their folder.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


def _temporary_name(path: Path, suffix: str) -> Path:
    """A fresh hidden name beside ``path``."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path, ".tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = os.stat(tmp).st_mode & 0o777  # 0666 less the umask
    try:
        write(tmp)
        if os.stat(tmp).st_mode & 0o777 != mode:  # a writer that makes its own file (safetensors: 0600)
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` to fill; on success it replaces ``path``.

    An existing ``path`` is moved aside and removed only once the new folder is in place; on an
    error the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path, ".tmp")
    tmp.mkdir(mode=0o777)  # mode: 0777 less the umask
    try:
        yield tmp
        old = None
        if path.exists():
            old = _temporary_name(path, ".old")
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def permit(folder: str | Path) -> None:
    """Give every file under ``folder`` the permissions a new file gets (0666 less the umask), as other
    libraries' writers do not always (safetensors writes 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~mask)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
