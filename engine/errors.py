"""User-facing errors: one clear line naming the problem and the fix; the CLI exits with code 2."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix (bad spec, bad data, wrong path, conflicting run)."""

    exit_code = 2


EX_TEMPFAIL = 75  # sysexits.h: a temporary failure, try again later


class Stopped(KeyboardInterrupt):
    """A run stopped before its end with its store resumable: a signal (a batch system's walltime warning,
    preemption), no worker left, Ctrl-C. Derived from KeyboardInterrupt so that no ``except Exception``
    swallows it. The CLI prints the message and exits with ``exit_code``: 75 (EX_TEMPFAIL: run the same
    command again to resume), 130 for Ctrl-C."""

    def __init__(self, message: str, exit_code: int = EX_TEMPFAIL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean "x"?)' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_output_folder(path: Path, flag: str = "--out") -> None:
    """The folder an output goes into must exist and be writable."""
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
