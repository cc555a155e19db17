"""The store's lease (engine/store/lock.py) with real `rankstab run` processes: renewed while a run is
alive, released at its end, refused to a second live run with the time it expires, taken over from a
dead run on any host (at once on this host or for a later attempt of the same batch job, otherwise when
it expires), and a run whose lease was taken over stops. Plus the idempotent `run --resume` and
`validate --out` that the batch templates rely on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import _wait_for_chunks, assert_same, small_spec

import engine
from engine.store import done_chunks, lock_path
from engine.store.lock import Lease, stale

HOST = socket.gethostname()


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), env={**os.environ, **(env or {})}, **kw)


def popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def write_lease(out: Path, host: str, *, expires_in: float, seconds: float = 60, pid: int = 4242, job: str = "",
                attempt: int = 0) -> None:
    """The lease another run left, as it writes it (host, pid, run id, batch job, expiry)."""
    now = time.time()
    lock_path(out).write_text(json.dumps(dict(host=host, pid=pid, run="0123456789ab", job=job, attempt=attempt,
                                              seconds=seconds, renewed=now + expires_in - seconds,
                                              expires=now + expires_in)) + "\n")


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return small_spec(tmp_path_factory.mktemp("lease"), n=16, chunk=34 * 4)  # 544 scenarios, 4 chunks


@pytest.fixture(scope="module")
def reference(spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    engine.run(spec, out=out, synchronous=True)
    return out


def test_lease_is_renewed_while_the_run_lives_and_released_at_its_end(tmp_path):
    spec = small_spec(tmp_path, n=512, chunk=34 * 2)
    out = tmp_path / "run.zarr"
    run = popen("run", str(spec), "--out", str(out), "--synchronous", "--no-analyze", "--quiet",
                env={"RANKSTAB_LEASE_SECONDS": "1"})
    try:
        _wait_for_chunks(out, 1, run)
        first = json.loads(lock_path(out).read_text())
        assert (first["host"], first["pid"]) == (HOST, run.pid)
        assert first["seconds"] == 1 and first["renewed"] < first["expires"] <= first["renewed"] + 1
        deadline = time.monotonic() + 60
        while json.loads(lock_path(out).read_text())["expires"] == first["expires"]:
            assert run.poll() is None and time.monotonic() < deadline, "the lease was not renewed"
            time.sleep(0.05)
        assert json.loads(lock_path(out).read_text())["run"] == first["run"]  # renewed by the same run
    finally:
        run.terminate()
        _, err = run.communicate(timeout=120)
    assert run.returncode == 75, err
    assert not lock_path(out).exists()
    assert not list(tmp_path.glob(".run.zarr.rankstab-lock*")), "a temporary lease file was left"


def test_live_lease_of_another_host_refuses_then_expires(spec, reference, tmp_path):
    """A run on another host that renewed its lease just now holds the store: refused, with the time the
    lease expires. The same lease once nobody renewed it for its whole duration is taken over."""
    out = tmp_path / "run.zarr"
    write_lease(out, "node-b", expires_in=600, seconds=600)
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-report")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    expiry = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(json.loads(lock_path(out).read_text())["expires"]))
    assert "being written by another rankstab run (host node-b, pid 4242)" in res.stderr
    assert f"renewed every 150 s, expires at {expiry}" in res.stderr, res.stderr
    assert not out.exists() and lock_path(out).exists()  # nothing touched
    res = cli("validate", str(spec), "--out", str(out))  # validate --out says the same before any worker starts
    assert res.returncode == 2 and f"expires at {expiry}" in res.stderr
    write_lease(out, "node-b", expires_in=-1, seconds=600)  # the same lease, last renewed 601 s ago
    expiry = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(json.loads(lock_path(out).read_text())["expires"]))
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-report")
    assert res.returncode == 0, res.stderr
    assert f"took over the lease of {out} from host node-b, pid 4242: it expired at {expiry}" in res.stderr
    assert not lock_path(out).exists()
    assert_same(reference, out)


def test_killed_run_on_this_host_is_taken_over_at_once(spec, reference, tmp_path):
    out = tmp_path / "run.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lease(out, HOST, expires_in=3600, pid=dead.pid)
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-report")
    assert res.returncode == 0, res.stderr
    assert f"its process {dead.pid} on this host has ended" in res.stderr
    assert_same(reference, out)


def test_an_earlier_attempt_of_the_same_batch_job_is_taken_over_at_once():
    """Slurm starts attempt N+1 of a requeued job only after attempt N has ended, on any node."""
    now = time.time()
    holder = Lease("node-b", 4242, "aaaa", "slurm:77", 0, 60, now, now + 60)
    later = Lease(HOST, os.getpid(), "bbbb", "slurm:77", 1, 60, now, now + 60)
    assert "attempt 0 of this batch job" in stale(holder, later, now)
    same_attempt = Lease(HOST, os.getpid(), "bbbb", "slurm:77", 0, 60, now, now + 60)
    other_job = Lease(HOST, os.getpid(), "bbbb", "slurm:78", 1, 60, now, now + 60)
    assert stale(holder, same_attempt, now) is None and stale(holder, other_job, now) is None
    assert "expired" in stale(holder, other_job, now + 61)


def test_the_same_pbs_job_on_another_host_is_taken_over_at_once():
    """PBS reruns a job (qrerun, a failed node) under the same job id and has no attempt counter; a job's
    script runs on one host at a time, so its lease held on another host belonged to an ended run."""
    now = time.time()
    holder = Lease("node-b", 4242, "aaaa", "pbs:123.server", 0, 60, now, now + 60)
    rerun = Lease(HOST, os.getpid(), "bbbb", "pbs:123.server", 0, 60, now, now + 60)
    assert "held by this PBS job on node-b before PBS reran the job" in stale(holder, rerun, now)
    same_host = Lease(HOST, os.getpid(), "bbbb", "pbs:123.server", 0, 60, now, now + 60)
    live_here = Lease(HOST, os.getppid(), "aaaa", "pbs:123.server", 0, 60, now, now + 60)  # a live process
    assert stale(live_here, same_host, now) is None  # two live runs in one PBS job on one host exclude each other
    other_job = Lease(HOST, os.getpid(), "bbbb", "pbs:124.server", 0, 60, now, now + 60)
    assert stale(holder, other_job, now) is None
    slurm = Lease(HOST, os.getpid(), "bbbb", "slurm:77", 0, 60, now, now + 60)
    assert stale(Lease("node-b", 4242, "aaaa", "slurm:77", 0, 60, now, now + 60), slurm, now) is None


def test_a_run_whose_lease_is_taken_over_stops(tmp_path):
    """A run stalled for longer than its lease (suspended, cut off from the filesystem) may see another
    run take the lease over: it notices at its next renewal and stops."""
    spec = small_spec(tmp_path, n=512, chunk=34 * 2)
    out = tmp_path / "run.zarr"
    run = popen("run", str(spec), "--out", str(out), "--synchronous", "--no-analyze", "--quiet",
                env={"RANKSTAB_LEASE_SECONDS": "2"})
    try:
        _wait_for_chunks(out, 1, run)
        write_lease(out, "node-b", expires_in=600)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rankstab run: lost the lease of the store to host node-b, pid 4242"), err
    assert "chunks stored in" in last and "Traceback" not in err
    assert json.loads(lock_path(out).read_text())["host"] == "node-b"  # the new holder's lease stays


def test_resume_starts_a_missing_store_and_leaves_a_complete_one(spec, reference, tmp_path):
    out = tmp_path / "run.zarr"
    res = cli("validate", str(spec), "--out", str(out))
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == \
        f"{out}: no store yet; `rankstab run --resume` starts it"
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-report", "--quiet")
    assert res.returncode == 0 and f"{out} does not exist yet: starting it" in res.stderr, res.stderr
    assert_same(reference, out)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-report", "--quiet")
    assert res.returncode == 0 and f"{out} is already complete: nothing to do" in res.stderr, res.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamp
    res = cli("validate", str(spec), "--out", str(out))
    assert res.stdout.strip().splitlines()[-1] == f"{out}: complete (4 of 4 chunks stored)"
    other = small_spec(tmp_path, n=32, chunk=34 * 4)
    res = cli("validate", str(other), "--out", str(out))
    assert res.returncode == 2 and "was made from a different spec" in res.stderr


def test_partial_store_validates_with_its_count(spec, tmp_path):
    out = tmp_path / "run.zarr"
    engine.run(spec, out=out, synchronous=True, max_chunks=3)
    assert done_chunks(out).sum() == 3
    res = cli("validate", str(spec), "--out", str(out))
    assert res.stdout.strip().splitlines()[-1] == f"{out}: 3 of 4 chunks stored; `rankstab run --resume` continues it"
