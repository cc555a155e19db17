"""Where a report goes: the output paths (checked before any work) and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from ..errors import UserError, check_output_folder, writable


def store_path(store: str | Path | xr.Dataset) -> Path:
    """The store's path (a Dataset must have been opened from one)."""
    if isinstance(store, xr.Dataset):
        src = store.encoding.get("source")
        if not src:
            raise UserError("this Dataset was not opened from a store; pass the store path instead")
        return Path(src)
    return Path(store)


def html_path(store: Path, out: str | Path | None) -> Path:
    """The page's path: ``out``, NAME.html inside ``out`` when it is a folder, or NAME.html beside the store."""
    name = (store.stem if store.suffix == ".zarr" else store.name) + ".html"
    if out is None:
        target = store.parent / name
    else:
        target = Path(out).expanduser()
        if target.is_dir() or str(out).endswith(("/", os.sep)):
            target = target / name
    check_output_folder(target)
    if target.is_dir():
        raise UserError(f"{target} is a folder; give an .html file path as --out")
    return target


def png_folder(png_dir: str | Path) -> Path:
    """``--png-dir``, checked before any work (an existing writable folder, or one that can be made in a
    writable folder) but made only when the figures are written (:func:`make_folder`)."""
    d = Path(png_dir).expanduser()
    if d.exists() and not d.is_dir():
        raise UserError(f"--png-dir {d} is a file, not a folder; choose a folder")
    near = d if d.is_dir() else next((p for p in d.absolute().parents if p.exists()), Path("/"))
    if not near.is_dir():
        raise UserError(f"--png-dir {d}: {near} is a file, not a folder; choose another folder")
    problem = writable(near)
    if problem:
        raise UserError(f"--png-dir {d}: cannot write in {near} ({problem}); choose another folder")
    return d


def make_folder(d: Path) -> None:
    """Create ``--png-dir`` (and its parents) when the figures are written."""
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--png-dir {d}: cannot create the folder ({exc.strerror}); choose another") from None


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (a temporary file renamed into place); a clear error when it fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror}); check space and permissions") from None


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
