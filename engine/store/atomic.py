"""Replacing files and folders whole or not at all: build the new one beside the old one (same folder, so
the same file system), then rename it into place.

* :func:`write_text`: a temporary file, then ``os.replace`` (atomic on POSIX).
* :func:`staging_path` / :func:`swap_in`: a new store is built as ``.NAME.zarr.new-<id>`` next to
  ``NAME.zarr``; :func:`swap_in` moves the old store aside (``.NAME.zarr.old-<id>``), renames the new one
  into place and only then deletes the old one. Renaming a folder is atomic, so a failure before the swap
  leaves the old store byte for byte as it was, and one during it puts the old store back.
* :func:`stale_siblings`: what a killed writer left beside a store (cleaned by the next writer, under
  the store's lock).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path

STAGE, TRASH = "new", "old"


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:12]}"


def staging_path(path: Path) -> Path:
    """Where a new store for ``path`` is built (a hidden sibling); also a new group of the store."""
    return _sibling(Path(path), STAGE)


def trash_path(path: Path) -> Path:
    """Where an old store (or group) of ``path`` is moved before it is deleted (a hidden sibling)."""
    return _sibling(Path(path), TRASH)


def stale_siblings(path: Path) -> list[Path]:
    """Staged or trashed copies of ``path`` that a killed run left behind."""
    path = Path(path)
    prefixes = tuple(f".{path.name}.{k}-" for k in (STAGE, TRASH))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefixes) and len(p.name) ==
                  len(prefixes[0]) + 12)


def remove_tree(path: Path, settle: float = 0.0) -> None:
    """Delete a folder (or file) if it exists; entries that vanish meanwhile are fine. ``settle`` > 0: then
    watch it for that many seconds and delete it again should it reappear (after a failed zarr write, the
    writes of the same call still in flight on zarr's I/O thread create and remove files for a moment)."""
    path = Path(path)
    deadline = time.monotonic() + settle
    while True:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if path.is_dir() and not path.is_symlink():  # what could not be deleted: the error says why
        shutil.rmtree(path)


def swap_in(new: Path, path: Path, trash: Path | None = None) -> None:
    """Put the folder ``new`` at ``path``, replacing what is there (moved to ``trash`` first, default a
    hidden sibling of ``path``, and deleted last)."""
    new, path = Path(new), Path(path)
    if path.exists() or path.is_symlink():
        trash = trash or trash_path(path)
        os.rename(path, trash)
    else:
        trash = None
    try:
        os.rename(new, path)
    except BaseException:
        if trash is not None:
            os.rename(trash, path)
        raise
    if trash is not None:
        with contextlib.suppress(OSError):  # the new store is in place; a leftover is cleaned next time
            remove_tree(trash)


def write_text(path: Path, text: str) -> None:
    """Write a text file whole or not at all (an existing file stays as it was on failure)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{STAGE}-{uuid.uuid4().hex[:12]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
