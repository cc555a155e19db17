"""User-facing errors: one clear line naming the problem and the fix; the CLI exits with code 2."""

from __future__ import annotations

import difflib
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


def check_output_folder(path: Path, flag: str | None = None) -> None:
    """The folder an output goes into must exist and be writable (``flag``: the option naming it, default
    ``--out``/``out=``)."""
    flag = flag or option("out")
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise UserError(f"{path}: the folder {parent} does not exist; create it or choose another {flag}")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{path}: the folder {parent} is not writable; choose another {flag}")


def check_choice(value: str, choices: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a UserError listing them."""
    choices = list(choices)
    if value not in choices:
        raise UserError(f'unknown {what} "{value}"{did_you_mean(value, choices)}; '
                        f"choose one of: {', '.join(choices)}")
    return value
