"""Stopping a run cleanly, with its store resumable: on SIGTERM, SIGUSR1 or SIGHUP (a batch system's
walltime warning, preemption, ``scancel``, a closed terminal), when no Dask worker is left for a while, or when another run took the
store's lease over. The run cancels its tasks, waits a little for the chunks being written, releases the
lease and says how many chunks are stored; the CLI exits 75 (EX_TEMPFAIL), or 130 for Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import EX_TEMPFAIL, Stopped, UserError, per_caller
from ..store import done_chunks

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP)
WORKER_TIMEOUT_ENV = "RANKSTAB_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 600.0
DRAIN_SECONDS = 10.0  # at most this long for the chunks being written when a run stops (Slurm's KillWait: 30 s)


class StopFlag:
    """Why the current run must stop, set once from any thread (the lease's renewer, the worker watch) or
    by a signal. Setting it runs the registered actions (cancelling the run's tasks), so that a loop
    waiting for results wakes up and calls :meth:`check`."""

    def __init__(self) -> None:
        self.reason = ""
        self.code = EX_TEMPFAIL
        self.finishing = False  # every chunk is stored: signals no longer interrupt the finishing steps
        self.deferring = False  # a chunk is being written in this process: a signal waits for its end
        self._actions: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def set(self, reason: str, code: int = EX_TEMPFAIL, act: bool = True) -> None:
        """Note why the run must stop (the first reason wins) and, with ``act``, run the actions."""
        with self._lock:
            if self.reason:
                return
            self.reason, self.code = reason, code
            actions = list(self._actions) if act else []
        for action in actions:
            try:
                action()
            except Exception:  # noqa: BLE001, S112 - a closed client: nothing left to cancel
                continue

    @contextmanager
    def on_set(self, action: Callable[[], None]) -> Iterator[None]:
        """Run ``action`` if the flag is set while the body runs (at once if it is set already)."""
        with self._lock:
            self._actions.append(action)
            already = bool(self.reason)
        if already:
            action()
        try:
            yield
        finally:
            with self._lock:
                self._actions.remove(action)

    def check(self) -> None:
        if self.reason:
            raise Stopped(self.reason, self.code)


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """While the body runs, SIGTERM, SIGUSR1 and SIGHUP (exit 75) and Ctrl-C (SIGINT, exit 130) raise
    :class:`Stopped` in the main thread; later ones are ignored, but for a second Ctrl-C. While
    ``flag.deferring`` (this process is writing a chunk) the first signal only sets the flag, checked once
    the chunk is stored; a second one raises at once. Once
    ``flag.finishing`` (every chunk stored) signals are ignored: the store is finished first. A signal
    already ignored (``nohup``) stays ignored, and a SIGINT handler other than Python's own is kept;
    outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if flag.finishing:
            _say(f"{name}: every chunk is stored; finishing the store first")
            return
        if flag.reason and not flag.deferring and signum != signal.SIGINT:
            return  # already stopping (a second Ctrl-C interrupts the stopping itself)
        if not flag.reason:
            reason = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"
            flag.set(reason, 130 if signum == signal.SIGINT else EX_TEMPFAIL, act=False)  # the main thread cancels
            if flag.deferring:
                _say(f"{name}: stopping once the chunk being written is stored")
                return
        raise Stopped(flag.reason, flag.code)

    wanted = [*SIGNALS, *([signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else [])]
    previous = {sig: signal.signal(sig, handler) for sig in wanted if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def worker_timeout(value: float | None = None) -> float:
    """Seconds a run waits without any Dask worker: ``value``, ``$RANKSTAB_WORKER_TIMEOUT`` or 600."""
    text = str(value) if value is not None else os.environ.get(WORKER_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_WORKER_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:  # also NaN
        where = "--worker-timeout" if value is not None else WORKER_TIMEOUT_ENV
        raise UserError(f"{where} {text!r}: give a positive number of seconds")
    return seconds


class WorkerWatch(threading.Thread):
    """Watches the scheduler's workers while a run waits on them: when none is left (all gone, or none
    started), it says so, waits up to ``timeout`` seconds for new ones (Dask gives them the waiting tasks)
    and then sets the stop flag."""

    def __init__(self, client, timeout: float, flag: StopFlag, poll: float = 1.0) -> None:
        super().__init__(name="rankstab-worker-watch", daemon=True)
        self.client, self.timeout, self.flag, self.poll = client, timeout, flag, poll
        self._halt = threading.Event()

    def run(self) -> None:
        since: float | None = None
        while not self._halt.wait(self.poll):
            try:
                n = len(self.client.nthreads())
            except Exception:  # noqa: BLE001, S112 - the scheduler is gone: the main loop reports it
                continue
            now = time.monotonic()
            if n:
                if since is not None:
                    _say(f"{n} Dask worker{'s' if n != 1 else ''} again: continuing")
                since = None
            elif since is None:
                since = now
                _say(f"no Dask worker left: waiting up to {self.timeout:g} s for new ones (the store is safe)")
            elif now - since >= self.timeout:
                self.flag.set(f"no Dask worker for {self.timeout:g} s (they all left, or none started)")
                return

    def __enter__(self) -> WorkerWatch:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join(timeout=5)


def _say(message: str) -> None:
    print(f"{time.strftime('%F %T')} {message}", file=sys.stderr, flush=True)


def _executing(prefix: str, dask_worker=None) -> int:
    """On a worker: how many tasks whose key starts with ``prefix`` are still running (a cancelled task's
    thread runs to its end)."""
    return sum(1 for ts in dask_worker.state.executing if str(ts.key).startswith(prefix))


def drain(client, prefix: str, timeout: float = DRAIN_SECONDS) -> None:
    """After cancelling a run's chunk tasks: wait, at most ``timeout`` seconds, until no worker still runs
    one (it would write its chunk after the run said how many are stored)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            busy = client.run(_executing, prefix, on_error="ignore")
        except Exception:  # noqa: BLE001 - no scheduler: nothing to wait for
            return
        if not any(isinstance(n, int) and n for n in busy.values()):
            return
        time.sleep(0.2)


def stopped(exc: KeyboardInterrupt, path: Path, replacing: bool = False) -> Stopped:
    """The message of a run that stopped early: why, and how many chunks are stored (exit 75; Ctrl-C 130).
    (zarr writes from its own IO thread: a chunk being written when the signal came is not counted.)"""
    reason, code = (str(exc), exc.exit_code) if isinstance(exc, Stopped) else ("interrupted", 130)
    if replacing:
        return Stopped(f"{reason}: {path} is unchanged (the partial store that was to replace it was removed)", code)
    try:
        done = done_chunks(path)
    except Exception:  # noqa: BLE001 - no store (not created yet, or removed: nothing was computed)
        return Stopped(f"{reason}: nothing was stored in {path}", code)
    again = per_caller("run the same command with --resume to continue", "call again with resume=True to continue")
    return Stopped(f"{reason}: {int(done.sum())} of {done.size} chunks stored in {path}; {again}", code)
