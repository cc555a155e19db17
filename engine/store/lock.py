"""The lease beside a store that refuses a second concurrent writer, and that no human has to clear.

The run writing a store holds a lease: the hidden file ``.NAME.zarr.rankstab-lock`` next to it, one JSON
line naming the holder (host, pid, run id, batch job and attempt) and when the lease expires. A thread
renews it every quarter of its duration (:data:`LEASE_ENV`, default 60 s). Another run takes the lease
over, from any host, once it is no longer held:

* its holder ran on this host and its process has ended (a killed run: at once);
* its holder was an earlier attempt of the same Slurm job (a requeued job: Slurm ends an attempt
  before it starts the next), or the same PBS job on another host (a rerun job: PBS has no attempt
  counter, but runs a job script on one host at a time), at once;
* it expired: nobody renewed it for its whole duration (a node that died or lost the filesystem).

Otherwise the lease is fresh and the second run stops with one line saying who holds it and when it
expires. The file appears atomically (written aside, then hard-linked into place, which works on NFS),
and the holder checks on every renewal that the lease is still its own; if another run took it over
(this one was stalled or suspended longer than the lease), ``on_lost`` is called. Expiry compares wall
clocks of different hosts: they must agree to well under the lease duration (NTP does).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError

LEASE_ENV = "RANKSTAB_LEASE_SECONDS"
DEFAULT_LEASE = 60.0


def lock_path(path: Path) -> Path:
    """The lock file of a store: a hidden sibling, so the store itself stays a pure zarr hierarchy."""
    return path.parent / f".{path.name}.rankstab-lock"


def lease_seconds() -> float:
    """The lease duration: ``$RANKSTAB_LEASE_SECONDS`` or 60 s."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 86400:
        raise UserError(f"{LEASE_ENV}={text!r}: the lease duration must be a number of seconds between 1 and 86400")
    return value


def batch_job() -> tuple[str, int]:
    """(batch job id, attempt) of this process: Slurm's job id and restart count, PBS's job id, or ("", 0)."""
    if os.environ.get("SLURM_JOB_ID"):
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        return f"slurm:{os.environ['SLURM_JOB_ID']}", int(restarts) if restarts.isdigit() else 0
    if os.environ.get("PBS_JOBID"):
        return f"pbs:{os.environ['PBS_JOBID']}", 0
    return "", 0


@dataclass
class Lease:
    """One holder's lease, as written in the lock file (``expires`` and ``renewed`` are Unix times)."""

    host: str
    pid: int
    run: str
    job: str = ""
    attempt: int = 0
    seconds: float = DEFAULT_LEASE
    renewed: float = 0.0
    expires: float = 0.0

    def text(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def mine(cls, seconds: float) -> Lease:
        job, attempt = batch_job()
        now = time.time()
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12], job, attempt, seconds, now,
                   now + seconds)

    @classmethod
    def parse(cls, text: str, mtime: float, seconds: float) -> Lease:
        """A lock file's lease. Older rankstab versions wrote "HOST PID": their lease counts from the file's
        modification time; an empty or unreadable file (being written) likewise."""
        try:
            d = json.loads(text)
            return cls(str(d["host"]), int(d["pid"]), str(d["run"]), str(d.get("job", "")), int(d.get("attempt", 0)),
                       float(d["seconds"]), float(d["renewed"]), float(d["expires"]))
        except (ValueError, KeyError, TypeError):
            host, _, pid = text.strip().partition(" ")
            return cls(host or "?", int(pid) if pid.isdigit() else 0, "?", seconds=seconds, renewed=mtime,
                       expires=mtime + seconds)

    def describe(self) -> str:
        job = f", batch job {self.job.partition(':')[2]} attempt {self.attempt}" if self.job else ""
        return f"host {self.host}, pid {self.pid}{job}"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))


def _read(lf: Path, seconds: float) -> Lease | None:
    try:
        st = lf.stat()
        return Lease.parse(lf.read_text(), st.st_mtime, seconds)
    except FileNotFoundError:
        return None


def stale(holder: Lease, me: Lease, now: float | None = None) -> str | None:
    """Why ``holder``'s lease may be taken over by ``me`` (a sentence), or None while it is held."""
    now = time.time() if now is None else now
    if holder.host == me.host and holder.pid and holder.pid != me.pid and not _alive(holder.pid):
        return f"its process {holder.pid} on this host has ended"
    if holder.job and holder.job == me.job and holder.attempt < me.attempt:
        return f"it was held by attempt {holder.attempt} of this batch job, which the batch system ended"
    if holder.job.startswith("pbs:") and holder.job == me.job and holder.host != me.host:
        return f"it was held by this PBS job on {holder.host} before PBS reran the job (a job script runs on one host)"
    if now > holder.expires:
        return f"it expired at {_when(holder.expires)} (not renewed by {holder.host} for {holder.seconds:g} s)"
    return None


def check_lease(path: Path) -> None:
    """Raise the UserError a run would raise if ``path``'s lease is held by another live run (takes nothing)."""
    seconds = lease_seconds()
    holder = _read(lock_path(path), seconds)
    if holder is not None and stale(holder, Lease.mine(seconds)) is None:
        raise _held(path, holder)


def _held(path: Path, holder: Lease) -> UserError:
    every = holder.seconds / 4
    return UserError(f"{path} is being written by another rankstab run ({holder.describe()}); its lease, renewed "
                     f"every {every:g} s, expires at {_when(holder.expires)} unless renewed: wait for that run to "
                     f"finish, or run again after that time to take over if it is gone")


@contextmanager
def lock(path: Path, on_lost: Callable[[str], None] | None = None) -> Iterator[Holding]:
    """Hold the store's lease while the body runs (see the module docstring). The :class:`Holding` yielded
    says whose lease was taken over and why (``took_over``, or ''); ``on_lost(message)`` is called from the
    renewing thread if another run takes the lease over meanwhile."""
    lf = lock_path(path)
    seconds = lease_seconds()
    me = Lease.mine(seconds)
    took_over = _acquire(path, lf, me)
    holding = Holding(lf, me, on_lost, took_over)
    holding.start()
    try:
        yield holding
    finally:
        holding.stop()
        with suppress(OSError):
            holder = _read(lf, seconds)
            if holder is not None and holder.run == me.run:
                lf.unlink()


def _acquire(path: Path, lf: Path, me: Lease) -> str:
    """Create the lock file atomically, taking over a lease that is no longer held; '' or the takeover note."""
    note = ""
    for _ in range(10):
        tmp = lf.with_name(f"{lf.name}.{me.run}")
        try:
            tmp.write_text(me.text())
            os.link(tmp, lf)  # atomic, fails if the lock exists; safe on NFS unlike O_EXCL on old servers
            return note
        except FileExistsError:
            pass
        except OSError as exc:
            raise UserError(f"{path}: cannot create the lock file {lf} ({(exc.strerror or str(exc)).lower()}); "
                            f"choose a writable --out") from None
        finally:
            tmp.unlink(missing_ok=True)
        holder = _read(lf, me.seconds)
        if holder is None:
            continue  # released meanwhile
        reason = stale(holder, me)
        if reason is None:
            raise _held(path, holder)
        note = f"took over the lease of {path} from {holder.describe()}: {reason}"
        with suppress(FileNotFoundError):
            lf.unlink()
    raise UserError(f"cannot take the lease of {path}: other runs keep taking it ({lf}); run one at a time")


class Holding(threading.Thread):
    """A held lease: the thread that rewrites it every quarter of its duration while it is still ours."""

    def __init__(self, lf: Path, me: Lease, on_lost: Callable[[str], None] | None, took_over: str = "") -> None:
        super().__init__(name="rankstab-lease", daemon=True)
        self.lf, self.me, self.on_lost, self.took_over = lf, me, on_lost, took_over
        self.lost = ""
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(max(self.me.seconds / 4, 0.2)):
            try:
                self.renew()
            except OSError:
                continue  # a filesystem hiccup: try again at the next tick (the lease lasts 4 ticks)
            if self.lost:
                if self.on_lost is not None:
                    self.on_lost(self.lost)
                return

    def renew(self) -> None:
        holder = _read(self.lf, self.me.seconds)
        if holder is None or holder.run != self.me.run:
            who = "nobody" if holder is None else holder.describe()
            self.lost = (f"lost the lease of the store to {who} (this run did not renew it for {self.me.seconds:g} s: "
                         f"was it suspended or cut off from the filesystem?)")
            return
        now = time.time()
        self.me.renewed, self.me.expires = now, now + self.me.seconds
        tmp = self.lf.with_name(f"{self.lf.name}.{self.me.run}")
        tmp.write_text(self.me.text())
        os.replace(tmp, self.lf)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=10)  # a renewal in progress, or an on_lost callback


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

