"""User-facing errors: one clear line naming the problem and the fix; the CLI exits with code 2."""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix (bad spec, bad data, wrong path, conflicting run)."""

    exit_code = 2


_STYLE = {"cli": False}


@contextmanager
def cli_messages() -> Iterator[None]:
    """Within the block (the ``rankstab`` command), messages name options as command-line flags
    (``--resume``); outside it, as the Python API's keywords (``resume=True``)."""
    saved = _STYLE["cli"]
    _STYLE["cli"] = True
    try:
        yield
    finally:
        _STYLE["cli"] = saved


def option(name: str) -> str:
    """How the user sets option ``name`` (``resume``, ``overwrite``, ``partial``, ``out``): ``--resume``
    on the command line, ``resume=True`` in Python (``out=...`` for a path)."""
    if _STYLE["cli"]:
        return "--" + name.replace("_", "-")
    return f"{name}=..." if name == "out" else f"{name}=True"


def per_caller(cli: str, api: str) -> str:
    """``cli`` within :func:`cli_messages` (the ``rankstab`` command), else ``api`` (Python callers)."""
    return cli if _STYLE["cli"] else api


def resume_command(path: str | Path) -> str:
    """The command or call that finishes an interrupted run of the store ``path``."""
    return per_caller(f"`rankstab run SPEC --out {path} --resume`", f"`engine.run(spec, out={str(path)!r}, resume=True)`")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean "x"?)' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_output_folder(path: Path, flag: str | None = None, create: tuple[str, ...] = ()) -> None:
    """The folder an output goes into must be an existing, writable folder (tried by creating and removing a
    hidden probe file, which also catches read-only mounts, /proc and root's ``os.access`` optimism).
    ``flag``: the option naming it, default ``--out``/``out=``. A missing folder whose name is in ``create`` (e.g. the default ``results``) is fine when its own
    parent is writable: it is created when the output is written."""
    flag = flag or option("out")  # --out on the command line, out= in Python
    parent = Path(path).expanduser().absolute().parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{path}: {parent} is a file, not a folder; move that file away or choose another {flag}")
    if not parent.exists():
        if parent.name in create and parent.parent.is_dir():
            parent = parent.parent
        else:
            raise UserError(f"{path}: the folder {parent} does not exist; create it or choose another {flag}")
    problem = writable(parent)
    if problem:
        raise UserError(f"{path}: cannot write in the folder {parent} ({problem}); choose another {flag}")


def writable(folder: Path) -> str:
    """'' if a file can be created in ``folder``, else why not (the OS's words)."""
    probe = folder / f".rankstab-probe-{os.getpid()}-{id(folder):x}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        return "not writable" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else \
            (exc.strerror or type(exc).__name__).lower()
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return ""


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: the file it names, what the OS said, and what to do."""
    what = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    name = exc.filename if exc.filename is not None else ""
    fix = {errno.ENOSPC: "free some space or choose another output folder",
           errno.EDQUOT: "free some space or choose another output folder",
           errno.EACCES: "check the permissions or choose another path",
           errno.EPERM: "check the permissions or choose another path",
           errno.EROFS: "the file system is read-only: choose another path",
           errno.ENAMETOOLONG: "choose a shorter name",
           errno.ENOENT: "check the path",
           errno.EISDIR: "give a file path, not a folder",
           errno.ENOTDIR: "a part of the path is a file, not a folder: check the path"}.get(
        exc.errno or 0, "check the path, the permissions and the free space")
    return f"{name}: {what.lower()}; {fix}" if name else f"{what}; {fix}"


def check_choice(value: str, choices: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a UserError listing them."""
    choices = list(choices)
    if value not in choices:
        raise UserError(f'unknown {what} "{value}"{did_you_mean(value, choices)}; '
                        f"choose one of: {', '.join(choices)}")
    return value
