"""Faults and concurrent use: a lost scheduler, a full disk, two runs on one store, analysing an incomplete
store, verification, and fuzzing of the spec parser and the data loader."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sweep import ROOT, _wait_for_chunks, assert_same, small_spec

import engine
from engine.errors import UserError
from engine.spec import Spec
from engine.store import done_chunks, lock_path, verify


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


@pytest.fixture
def tmpfs(tmp_path):
    """An 80 MB tmpfs: a disk that fills up (needs root; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder, leave: int):
    """A ballast file taking all but ``leave`` bytes of the free space of ``folder``'s file system."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(0, shutil.disk_usage(folder).free - leave))
    return ballast


@pytest.mark.slow
def test_disk_full_then_resume(tmp_path, tmpfs):
    # a store larger than the free space is refused before anything is written
    big = small_spec(tmp_path, n=8192, chunk=34 * 8)  # ~280k scenarios, ~0.9 GB uncompressed
    res = cli("run", str(big), "--out", str(tmpfs / "big.zarr"), "--synchronous", "--no-analyze")
    assert res.returncode == 2 and "needs about" in res.stderr and "at most n = " in res.stderr, res.stderr
    assert list(tmpfs.iterdir()) == []
    # the disk fills up during a run (someone else's files): the run stops cleanly and resumes later
    spec = small_spec(tmp_path, n=512, chunk=34 * 8)  # ~17k scenarios, ~54 MB uncompressed: fits
    out = tmpfs / "run.zarr"
    engine.run(spec, out=out, synchronous=True, max_chunks=2, analyse=False)
    ballast = fill(tmpfs, leave=3 * 2**20)
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-analyze")
    assert res.returncode == 2, res.stderr
    assert "write failed" in res.stderr and "--resume" in res.stderr and "Traceback" not in res.stderr
    assert not xr.open_zarr(out).attrs["complete"] and done_chunks(out).sum() > 2
    assert cli("analyze", str(out)).returncode == 2
    ballast.unlink()  # space is freed: resume
    res = cli("run", str(spec), "--out", str(out), "--synchronous", "--resume", "--no-report")
    assert res.returncode == 0, res.stderr
    ref = tmp_path / "ref.zarr"
    engine.run(spec, out=ref, synchronous=True)
    assert_same(ref, out)
    assert verify(out) == []


@pytest.mark.slow
def test_scheduler_lost_then_resume(tmp_path, spec_64x34, reference_64x34):
    spec = spec_64x34
    sched_file = tmp_path / "sched.json"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        t0 = time.time()
        while not sched_file.exists() and time.time() - t0 < 60:
            time.sleep(0.1)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(sched_file), "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = tmp_path / "run.zarr"
        run = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out),
                                "--scheduler-file", str(sched_file), "--quiet", "--no-analyze"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_chunks(out, 3, run)
        sched.send_signal(signal.SIGKILL)
        _, err = run.communicate(timeout=240)
        assert run.returncode == 2, err
        assert "scheduler" in err and "--resume" in err and "Traceback" not in err
    finally:
        for p in (sched, worker):
            if p is not None:
                p.kill()
                p.wait(timeout=30)
    assert 0 < done_chunks(out).sum() < done_chunks(out).size
    res = cli("run", str(spec), "--out", str(out), "--resume", "--workers", "2", "--no-report")
    assert res.returncode == 0, res.stderr
    assert_same(reference_64x34, out)


@pytest.mark.slow
def test_second_run_on_the_same_store_is_refused(tmp_path):
    spec = small_spec(tmp_path, n=2048, chunk=34 * 2)
    out = tmp_path / "run.zarr"
    first = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--synchronous",
                              "--no-analyze"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_chunks(out, 1, first)
        refused = 0
        for flags in (["--resume"], ["--overwrite"], []):
            running = first.poll() is None
            res = cli("run", str(spec), "--out", str(out), "--synchronous", *flags)
            if running and first.poll() is None:  # (a slow machine may let the first run finish meanwhile)
                assert res.returncode == 2 and "Traceback" not in res.stderr
                assert "being written by another rankstab run" in res.stderr, res.stderr
                refused += 1
        assert refused >= 1
        if first.poll() is None:  # a store being written is never reported as complete
            assert not xr.open_zarr(out).attrs["complete"]
            first.send_signal(signal.SIGTERM)  # the refusals are what this test is about: stop the first run
    finally:
        first.wait(timeout=300)
    # the first run was not disturbed by the refused ones: it stopped cleanly (or finished), its chunks whole
    assert first.returncode in (0, 75), first.stderr.read()
    problems = verify(out)
    if first.returncode == 75:
        assert len(problems) == 2 and "not complete (run with --resume)" in problems[0], problems
        assert "not finalised" in problems[1], problems
    else:
        assert problems == []
    assert not lock_path(out).exists()


def test_partial_analysis_of_a_monte_carlo_run(tmp_path):
    text = (ROOT / "scenarios" / "cn36-2019.toml").read_text().replace('kind = "sobol"', 'kind = "montecarlo"')
    text = text.replace("n = 4096", "n = 3000\nchunk = 500").replace("second_order = true", "")
    spec = tmp_path / "mc.toml"
    spec.write_text(text)
    out = tmp_path / "mc.zarr"
    engine.run(spec, out=out, synchronous=True, max_chunks=2)
    with pytest.raises(UserError, match=r"2 of 6 chunks done.*resume=True.*partial=True"):
        engine.analyze(out)
    res = cli("analyze", str(out))
    assert res.returncode == 2 and "incomplete" in res.stderr and "nothing was analysed" in res.stderr
    assert "--resume" in res.stderr and "--partial" in res.stderr
    res = cli("verify", str(out))
    assert res.returncode == 1 and "4 of 6 chunks are not complete" in res.stdout
    res = engine.analyze(out, partial=True)
    assert res.attrs["partial"] == 1 and res.attrs["n_stability_scenarios"] == 1000
    stored = xr.open_zarr(out)["rank"][:1000].values
    np.testing.assert_allclose(res["rank_median"].values, np.percentile(stored, 50, axis=0))
    out2 = cli("analyze", str(out), "--partial")
    assert out2.returncode == 0 and "PARTIAL" in out2.stdout


def test_verify_detects_tampering(tmp_path):
    spec = small_spec(tmp_path, n=16, chunk=34 * 4)
    out = tmp_path / "v.zarr"
    engine.run(spec, out=out, synchronous=True)
    assert cli("verify", str(out)).returncode == 0
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    r = g["rank"][0:5]
    g["rank"][0:5] = r[:, ::-1]  # ranks no longer match scores
    res = cli("verify", str(out))
    assert res.returncode == 1 and "not consistent with scores" in res.stdout


# ------------------------------------------------------------------------------------------- fuzzing

BASE = (ROOT / "scenarios" / "cn36-2019.toml").read_text()
TOKENS = ['"', "=", "[", "]", "{", "}", ",", "\n", "-1", "0", "1e9", "nan", "true", '"x"', "[[factor]]",
          "kind", "range", "choices", "n", "seed", '"geometric"', '"minmax:0,100"', "level", "target"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(BASE)), st.integers(0, 12), st.sampled_from(TOKENS)), max_size=4))
def test_fuzz_spec_parser(edits):
    text = BASE
    for pos, cut, token in edits:
        pos = min(pos, len(text))
        text = text[:pos] + token + text[pos + cut:]
    try:
        spec = Spec.from_text(text)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:
        assert spec.n_scenarios > 0


CSV = "city,field,indicator,value\na,F,x,1\nb,F,x,2\nc,F,x,3\na,F,y,3\nb,F,y,1\nc,F,y,2\n"
META = '[[field]]\ncode = "F"\n[[indicator]]\ncode = "x"\n[[indicator]]\ncode = "y"\ndirection = -1\n'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list(",\n.-e5xyzabcF\"' NA")), max_size=30), st.integers(0, len(CSV)),
       st.integers(0, 10), st.booleans())
def test_fuzz_data_loader(tmp_path, insert, pos, cut, in_meta):
    values, meta = CSV, META
    if in_meta:
        pos = min(pos, len(meta))
        meta = meta[:pos] + insert + meta[pos + cut:]
    else:
        values = values[:pos] + insert + values[pos + cut:]
    (tmp_path / "v.csv").write_text(values)
    (tmp_path / "m.toml").write_text(meta)
    try:
        ds = engine.load_dataset(tmp_path / "v.csv", meta=tmp_path / "m.toml")
    except UserError as exc:
        assert str(exc)
    else:
        engine.score(ds)


def test_lock_is_released_and_stale_locks_are_taken_over(tmp_path):
    spec = small_spec(tmp_path, n=16, chunk=34 * 4)
    out = tmp_path / "l.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = lock_path(out)
    lock.write_text(f"{os.uname().nodename} {dead.pid}")
    engine.run(spec, out=out, synchronous=True)
    assert not lock.exists()
    assert not any("rankstab-lock" in p.name for p in out.iterdir())
