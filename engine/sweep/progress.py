"""Progress of a sweep: a bar on a terminal, a display that updates in place in Jupyter, timestamped
plain lines in logs.

Modes: ``"auto"`` (the Python API's default) picks ``"notebook"`` in a Jupyter kernel, ``"bar"`` when
stderr is a terminal and ``"quiet"`` otherwise; ``None`` (or False) shows nothing. The notebook display is
tqdm's notebook bar when tqdm and ipywidgets are installed, else an HTML ``<progress>`` element updated
in place (IPython's ``display_id``), which needs nothing beyond the kernel.
"""

from __future__ import annotations

import importlib.util
import sys
import time

from ..errors import check_choice
from .job import Job

MODES = ("auto", "bar", "quiet", "notebook")
#: Seconds between two lines with quiet, and between two updates of a notebook display.
QUIET_EVERY, NOTEBOOK_EVERY = 5.0, 0.5


def resolve(mode: str | bool | None) -> str | None:
    """The concrete mode of ``mode`` (see the module docstring)."""
    if mode is None or mode is False:
        return None
    check_choice("auto" if mode is True else str(mode), MODES, "progress mode")
    if mode is True or mode == "auto":
        if in_notebook():
            return "notebook"
        return "bar" if sys.stderr.isatty() else "quiet"
    return str(mode)


def in_notebook() -> bool:
    """True in a Jupyter kernel (JupyterLab, Notebook, VS Code), False in a terminal IPython or a script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """Scenarios done / total, rate and ETA of a sweep's chunks, shown as ``mode`` says."""

    def __init__(self, job: Job, todo: list[int], mode: str | bool | None) -> None:
        self.job, self.mode = job, resolve(mode)
        self.total = job.n
        self.done = job.n - sum(job.bounds(k)[1] - job.bounds(k)[0] for k in todo)
        self.start_done = self.done
        self.t0 = self.last = time.perf_counter()
        self.view = _NotebookView(self.total, self.done) if self.mode == "notebook" else None

    def update(self, k: int) -> None:
        a, b = self.job.bounds(k)
        self.done += b - a
        now = time.perf_counter()
        every = {"bar": 0.0, "quiet": QUIET_EVERY, "notebook": NOTEBOOK_EVERY}.get(self.mode or "")
        if every is not None and now - self.last >= every:
            self.last = now
            self._show(now)

    def message(self, now: float) -> str:
        """``done/total scenarios (pct) rate/s elapsed ETA``; the ETA is ``--`` until a rate is known."""
        el = max(now - self.t0, 1e-9)
        rate = (self.done - self.start_done) / el
        eta = f"{(self.total - self.done) / rate:5.1f}s" if rate > 0 else "   --"
        return (f"{self.done:,}/{self.total:,} scenarios ({self.done / self.total:6.1%}) {rate:,.0f}/s "
                f"elapsed {el:5.1f}s ETA {eta}")

    def _show(self, now: float, end: str = "") -> None:
        msg = self.message(now)
        if self.view is not None:
            self.view.show(self.done, msg)
            return
        if self.mode == "bar":
            width = 28
            fill = int(self.done / self.total * width)
            sys.stderr.write("\r[" + "#" * fill + "." * (width - fill) + "] " + msg + end)
        else:
            sys.stderr.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.mode is not None and self.done > self.start_done:  # nothing to say when no chunk finished
            self._show(time.perf_counter(), end="\n")
        if self.view is not None:
            self.view.close()


class _NotebookView:
    """A progress display that updates in place in a Jupyter notebook."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.bar, self.handle = total, None, None
        if importlib.util.find_spec("tqdm") and importlib.util.find_spec("ipywidgets"):
            from tqdm.notebook import tqdm

            self.bar = tqdm(total=total, initial=done, unit=" scenarios", unit_scale=True, desc="sweep")
        else:
            from IPython.display import display

            self.handle = display(self._bundle(done, ""), raw=True, display_id=True)

    def _bundle(self, done: int, msg: str) -> dict[str, str]:
        html = (f'<progress value="{done}" max="{self.total}" style="width: 20em"></progress> '
                f"<code>{msg or 'starting'}</code>")
        return {"text/plain": msg or "sweep starting", "text/html": html}

    def show(self, done: int, msg: str) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif self.handle is not None:
            self.handle.update(self._bundle(done, msg), raw=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
