"""Progress of a sweep: a bar on a terminal, plain lines in logs."""

from __future__ import annotations

import sys
import time

from .job import Job


class Progress:
    """Scenarios done / total, rate and ETA: a bar on a terminal, a line every few seconds with quiet."""

    def __init__(self, job: Job, todo: list[int], mode: str | None) -> None:
        self.job, self.mode = job, mode
        self.total = job.n
        self.done = job.n - sum(job.bounds(k)[1] - job.bounds(k)[0] for k in todo)
        self.start_done = self.done
        self.t0 = self.last = time.perf_counter()

    def update(self, k: int) -> None:
        a, b = self.job.bounds(k)
        self.done += b - a
        now = time.perf_counter()
        if self.mode == "bar" or (self.mode == "quiet" and now - self.last >= 5.0):
            self.last = now
            self._print(now)

    def _print(self, now: float, end: str = "") -> None:
        el = max(now - self.t0, 1e-9)
        rate = (self.done - self.start_done) / el
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        frac = self.done / self.total
        msg = (f"{self.done:,}/{self.total:,} scenarios ({frac:6.1%}) {rate:,.0f}/s "
               f"elapsed {el:5.1f}s ETA {eta:5.1f}s")
        if self.mode == "bar":
            width = 28
            fill = int(frac * width)
            sys.stderr.write("\r[" + "#" * fill + "." * (width - fill) + "] " + msg + end)
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.mode == "bar":
            self._print(time.perf_counter(), end="\n")
        elif self.mode == "quiet":
            self._print(time.perf_counter())
