"""Stopping and elastic workers, with a real `dask scheduler`, real `dask worker` processes started and
killed while `rankstab run --scheduler-file` works, and real signals: the result never changes (bit for
bit against a synchronous run), a signal stops the run cleanly with an exact "N of M chunks stored" and
exit code 75, and a run left without workers waits for new ones, then stops resumably."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import ROOT, assert_same

from engine.store import done_chunks, lock_path

pytestmark = pytest.mark.slow


class Dask:
    """A `dask scheduler` on 127.0.0.1 and the `dask worker` processes a test starts and stops."""

    def __init__(self, root: Path) -> None:
        self.file = root / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "error"}
        self.scheduler = self._spawn("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(self.file))
        self.workers: list[subprocess.Popen] = []
        deadline = time.monotonic() + 120
        while not self.file.exists():
            assert time.monotonic() < deadline and self.scheduler.poll() is None, "the scheduler did not start"
            time.sleep(0.1)

    def _spawn(self, module: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", module, *args], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def add_worker(self) -> subprocess.Popen:
        w = self._spawn("distributed.cli.dask_worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                        "--no-nanny", "--host", "127.0.0.1", "--no-dashboard")
        self.workers.append(w)
        return w

    def n_workers(self) -> int:
        from distributed import Client

        with Client(scheduler_file=str(self.file), timeout=30) as c:
            return len(c.nthreads())

    def wait_workers(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.n_workers() != n:
            assert time.monotonic() < deadline, f"not {n} workers after {timeout} s"
            time.sleep(0.2)

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture
def dask(tmp_path):
    d = Dask(tmp_path)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def spec(spec_64x34) -> Path:
    return spec_64x34  # 2,176 scenarios, 64 chunks (tests/conftest.py)


@pytest.fixture(scope="module")
def reference(reference_64x34) -> Path:
    return reference_64x34


def run(spec: Path, out: Path, dask: Dask, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out),
                             "--scheduler-file", str(dask.file), "--resume", "--quiet", "--no-report", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dask.env)


def stored(out: Path) -> int:
    try:
        return int(done_chunks(out).sum())
    except Exception:  # noqa: BLE001 - the store is still being created
        return 0


def wait_until(what: str, ok, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"not {what} after {timeout} s"
        time.sleep(0.05)


class StderrLines:
    """The run's stderr, read line by line as it comes (a thread), to wait for a message."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        self._t = threading.Thread(target=lambda: self.lines.extend(iter(proc.stderr.readline, "")), daemon=True)
        self._t.start()

    def text(self) -> str:
        self._t.join(timeout=60)
        return "".join(self.lines)

    def has(self, part: str) -> bool:
        return any(part in line for line in self.lines)


def test_sigterm_stops_cleanly_with_the_exact_count_then_resumes(dask, spec, reference, tmp_path):
    """A batch system's termination (preemption, scancel): tasks cancelled, the chunk being written finished,
    the lease released, "N of M chunks stored" exact, exit 75; the same command with --resume completes."""
    dask.add_worker()
    dask.wait_workers(1)
    out = tmp_path / "run.zarr"
    proc = run(spec, out, dask)
    wait_until("4 chunks are stored", lambda: stored(out) >= 4, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(rf"rankstab run: stopped by SIGTERM: (\d+) of 64 chunks stored in {re.escape(str(out))}; "
                     r"run the same command with --resume to continue", last)
    assert m, err
    time.sleep(3)  # the worker is still alive: no task of the stopped run writes after it said so
    assert stored(out) == int(m.group(1)) < 64
    assert not lock_path(out).exists()
    again = run(spec, out, dask)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"resuming {out}: {64 - int(m.group(1))} of 64 chunks to compute" in err
    assert_same(reference, out)


def test_a_lost_analysis_is_made_again_by_the_workers_that_gave_their_summaries(dask, spec, reference, tmp_path):
    """The worker's summary of a finished run was handed over (it now holds an empty one for the same store);
    the analysis group is lost (a failed write, a user's rm); --resume on the same cluster computes no chunk
    and makes the analysis again, the same bit for bit (seen in CI: the empty summary failed to load)."""
    import shutil

    dask.add_worker()
    dask.wait_workers(1)
    out = tmp_path / "run.zarr"
    first = run(spec, out, dask)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    shutil.rmtree(out / "analysis")
    again = run(spec, out, dask)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"resuming {out}: 0 of 64 chunks to compute" in err
    assert_same(reference, out)


@pytest.mark.parametrize("sig, code, says", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGUSR1, 75, "stopped by SIGUSR1"),
                                             (signal.SIGHUP, 75, "stopped by SIGHUP")])
def test_signals_stop_a_run_in_process(spec, tmp_path, sig, code, says):
    """Ctrl-C keeps exit code 130; a walltime warning (SIGUSR1) or a closed terminal (SIGHUP) is a clean
    stop (75); each says how many chunks are stored."""
    out = tmp_path / "run.zarr"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--synchronous",
                             "--quiet", "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until("2 chunks are stored", lambda: stored(out) >= 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(rf"rankstab run: {says}: {stored(out)} of 64 chunks stored in {re.escape(str(out))}; "
                        r"run the same command with --resume to continue", last), err
    assert not lock_path(out).exists()


def frozen(proc: subprocess.Popen) -> None:
    """SIGSTOP: a stalled worker (the scheduler still counts it, its tasks wait on it)."""
    proc.send_signal(signal.SIGSTOP)


def stalls(out: Path, seconds: float = 1.5) -> bool:
    n = stored(out)
    time.sleep(seconds)
    return stored(out) == n


def test_workers_that_join_and_leave_never_change_the_result(dask, spec, reference, tmp_path):
    """Workers join and leave at every stage of a run; stalled workers (SIGSTOP) make each stage happen
    whatever the machine's speed. Every summary a killed worker held is recomputed; the result is the
    same, bit for bit."""
    a, b = dask.add_worker(), dask.add_worker()
    dask.wait_workers(2)
    out = tmp_path / "run.zarr"
    proc = run(spec, out, dask)
    err = StderrLines(proc)
    wait_until("4 chunks are stored", lambda: stored(out) >= 4, proc)
    frozen(b)
    a.kill()  # A leaves mid-run: its running task and its summaries are lost
    assert stalls(out)
    c = dask.add_worker()  # C joins mid-run and takes the waiting tasks
    n = stored(out)
    wait_until("C computed chunks", lambda: stored(out) >= n + 4, proc)
    frozen(c)
    b.kill()  # B leaves, stalled with tasks assigned
    assert stalls(out)
    c.kill()  # no worker left: the run waits and says so
    wait_until("the run says it has no worker", lambda: err.has("no Dask worker left: waiting up to 600 s"), proc)
    assert stored(out) < 64 and stalls(out)
    d, e = dask.add_worker(), dask.add_worker()
    wait_until("every chunk is stored", lambda: stored(out) == 64, proc)
    frozen(d)  # the run is gathering the summaries: D leaves with its own, E and F recompute them
    frozen(e)
    d.kill()
    dask.add_worker()
    e.send_signal(signal.SIGCONT)
    code = proc.wait(timeout=600)
    text = err.text()
    assert re.search(r"\d Dask workers? again: continuing", text), text
    if code == 75:
        # This test process was slower than the run, which had taken the summaries already and was merging
        # them on D and E when D left: a resumable stop, by design (every chunk is stored); --resume ends it.
        assert "a worker left while the workers were merging the analysis; every chunk is stored" in text, text
        again = run(spec, out, dask)
        _, more = again.communicate(timeout=600)
        assert again.returncode == 0, more
    else:
        assert code == 0, text
    assert_same(reference, out)


def test_no_worker_for_the_timeout_stops_resumably(dask, spec, tmp_path):
    w = dask.add_worker()
    dask.wait_workers(1)
    out = tmp_path / "run.zarr"
    proc = run(spec, out, dask, "--worker-timeout", "3")
    wait_until("4 chunks are stored", lambda: stored(out) >= 4, proc)
    w.kill()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err
    assert "no Dask worker left: waiting up to 3 s for new ones" in err
    last = err.strip().splitlines()[-1]
    done = stored(out)
    assert re.fullmatch(rf"rankstab run: no Dask worker for 3 s \(they all left, or none started\): {done} of "
                        rf"64 chunks stored in {re.escape(str(out))}; run the same command with --resume to continue",
                        last), err
    assert not lock_path(out).exists()
    res = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(spec), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.stdout.strip().splitlines()[-1] == f"{out}: {done} of 64 chunks stored; `rankstab run --resume` " \
        "continues it"
