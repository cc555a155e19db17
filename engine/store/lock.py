"""The lock beside a store that refuses a second concurrent writer."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError


def lock_path(path: Path) -> Path:
    """The lock file of a store: a hidden sibling, so the store itself stays a pure zarr hierarchy."""
    return path.parent / f".{path.name}.rankstab-lock"


@contextmanager
def lock(path: Path):
    """Refuse a second writer on the same store (a lock file holding host and pid)."""
    lf = lock_path(path)
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lf, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = lf.read_text().strip() if lf.exists() else ""
            host, _, pid = owner.partition(" ")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                lf.unlink(missing_ok=True)  # stale lock from a killed run on this host
                continue
            raise UserError(f"{path} is being written by another rankstab run (host and pid {owner}); wait for it "
                            f"to finish, or delete {lf} if that run is gone") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot create the lock file {lf} ({(exc.strerror or str(exc)).lower()}); "
                            f"choose a writable --out") from None
    else:  # pragma: no cover
        raise UserError(f"cannot lock {path}; delete {lf}")
    os.write(fd, me.encode())
    os.close(fd)
    try:
        yield
    finally:
        lf.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
