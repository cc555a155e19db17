"""Distributed sweeps with real Dask processes and real zarr stores: identical results whatever the
cluster, the chunking or interruptions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

import engine
from engine.spec import Spec
from engine.store import done_chunks, verify

ROOT = Path(__file__).resolve().parents[1]
PER_SCENARIO = ["score", "rank", "rbar", "design", "weight", "block", "sample", "normalisation", "aggregation",
                "excluded", "outlier", "imputation", "weight_scheme"]


def small_spec(tmp_path: Path, n: int = 64, chunk: int = 0, name: str = "small") -> Path:
    text = (ROOT / "scenarios" / "gtii-2019.toml").read_text()
    text = text.replace("n = 16384", f"n = {n}").replace("chunk = 0 ", f"chunk = {chunk} ")
    text = text.replace('name = "gtii-2019"\ndescription', f'name = "{name}"\ndescription')
    path = tmp_path / f"{name}-{n}-{chunk}.toml"
    path.write_text(text)
    return path


def assert_same(a: str | Path, b: str | Path) -> None:
    x, y = xr.open_zarr(a), xr.open_zarr(b)
    for name in [*PER_SCENARIO, "nominal_score", "nominal_rank", "rank_count", "value"]:
        np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)
    assert x.attrs["complete"] == y.attrs["complete"] == 1
    assert_same_analysis(xr.open_zarr(a, group="analysis"), xr.open_zarr(b, group="analysis"))


def assert_same_analysis(x: xr.Dataset, y: xr.Dataset) -> None:
    """Everything rank-based is summed exactly: identical. Score-based Sobol indices are float sums whose
    order follows the chunks and workers: equal to rounding (float32 bootstrap sums for the intervals)."""
    assert set(x.data_vars) == set(y.data_vars)
    for name in x.data_vars:
        u, v = x[name], y[name]
        if "target" in u.dims:
            np.testing.assert_array_equal(u.sel(target="rank").values, v.sel(target="rank").values, err_msg=name)
            u, v = u.sel(target="score").values, v.sel(target="score").values
            conf = "conf" in name  # from float32 bootstrap sums
            np.testing.assert_allclose(u, v, rtol=1e-4 if conf else 1e-9, atol=1e-6 if conf else 1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(u.values, v.values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed synchronous run of the small GTII spec (64 base samples = 2,176 scenarios)."""
    tmp = tmp_path_factory.mktemp("ref")
    out = tmp / "ref.zarr"
    engine.run(small_spec(tmp, chunk=34 * 5), out=out, synchronous=True)
    return out


def test_store_opens_with_plain_xarray(reference):
    ds = xr.open_zarr(reference)
    assert ds["score"].dims == ("scenario", "city", "field") and ds["score"].dtype == np.float32
    assert ds["rank"].dims == ("scenario", "city", "field") and ds["rank"].dtype == np.int16
    assert ds["design"].dims == ("scenario", "factor") and ds["design"].dtype == np.float64
    assert ds["weight"].dims == ("scenario", "node")
    assert list(ds["field"].values)[-1] == "overall" and ds.sizes["field"] == 8 and ds.sizes["city"] == 45
    assert ds.sizes["scenario"] == 64 * 34 and ds.sizes["factor"] == 16
    assert set(ds["block"].values[:34]) == {"A", "B", *[f"AB_{f}" for f in ds["factor"].values],
                                            *[f"BA_{f}" for f in ds["factor"].values]}
    assert ds["value"].dims == ("city", "field", "indicator")
    assert {"indicator_parent", "direction", "indicator_weight", "city_name"} <= set(ds.coords)
    for key in ("spec_toml", "spec_hash", "seed", "design_kind", "n_scenarios", "data_hash", "versions", "created"):
        assert key in ds.attrs
    assert verify(reference) == []
    # ranks agree with scores, nominal scenario rows reproduce the nominal ranking
    r = ds["rank"].values
    assert r.min() >= 1 and r.max() <= 45
    assert (ds["rank_count"].sum("rank_value") == 2 * 64).all()  # A and B rows of every base sample


def test_scenarios_can_be_recomputed_from_the_store_alone(reference):
    from engine.design import decode, weight_schemes
    from engine.kernel import Prepared, evaluate
    from engine.store import dataset_from_store

    store = xr.open_zarr(reference)
    ds = dataset_from_store(store)
    spec = Spec.from_text(store.attrs["spec_toml"], ds=ds)
    prep = Prepared(ds)
    rows = slice(100, 140)
    dec = decode(spec, prep.tree, store["design"][rows].values, weight_schemes(spec, prep.tree))
    s, r = evaluate(prep, dec.batch)
    np.testing.assert_array_equal(s, store["score"][rows].values)
    np.testing.assert_array_equal(r, store["rank"][rows].values)


@pytest.mark.parametrize("workers,chunk", [(1, 34 * 3), (2, 34 * 7)])  # 3 workers: the fold test
def test_local_cluster_matches_synchronous(reference, tmp_path, workers, chunk):
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        out = tmp_path / "local.zarr"
        engine.run(small_spec(tmp_path, chunk=chunk), out=out, client=client)
    assert_same(reference, out)


def test_sums_folded_in_a_tree_before_the_reduce_scatter(reference, tmp_path, monkeypatch):
    """A cluster larger than MAX_PARTS first adds its workers' Sobol' sums in a tree (here 3 workers, 2 at a
    time, down to 1): the same analysis as one process."""
    from engine.sweep import gather

    monkeypatch.setattr(gather, "MAX_PARTS", 1)
    monkeypatch.setattr(gather, "FAN_IN", 2)
    folds = []
    real_fold = gather.fold
    monkeypatch.setattr(gather, "fold", lambda client, tag, held: folds.append(len(held)) or real_fold(client, tag, held))
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        out = tmp_path / "folded.zarr"
        engine.run(small_spec(tmp_path, chunk=34 * 4), out=out, client=client)
    assert folds and folds[0] >= 2, folds  # the workers that held sums (each ran some of the 16 chunks)
    assert_same(reference, out)


def test_interrupted_then_resumed_equals_undisturbed(reference, tmp_path):
    spec = small_spec(tmp_path, chunk=34 * 5)
    out = tmp_path / "partial.zarr"
    engine.run(spec, out=out, synchronous=True, max_chunks=3)
    assert done_chunks(out).sum() == 3 and not xr.open_zarr(out).attrs["complete"]
    with pytest.raises(engine.UserError, match=r"use resume=True to finish it or overwrite=True"):
        engine.run(spec, out=out, synchronous=True)
    engine.run(spec, out=out, synchronous=True, resume=True)
    assert_same(reference, out)


def test_resume_refuses_another_spec(reference, tmp_path):
    other = small_spec(tmp_path, n=128, chunk=34 * 5)
    with pytest.raises(engine.UserError, match="different spec"):
        engine.run(other, out=reference, synchronous=True, resume=True)


def _wait_for_chunks(out: Path, n: int, proc=None, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.returncode}")
        try:
            if done_chunks(out).sum() >= n:
                return
        except Exception:  # noqa: BLE001 - the store is still being created
            pass
        time.sleep(0.05)
    raise AssertionError("run made no progress")


@pytest.mark.slow
def test_killed_run_resumes(tmp_path, spec_64x34, reference_64x34):
    """SIGKILL the `rankstab run` process mid-run (a node failure); `--resume` recomputes only unfinished chunks."""
    spec, ref = spec_64x34, reference_64x34
    out = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--workers", "2", "--quiet",
           "--no-report"]  # the resumed run's analysis also summarises the chunks of the killed run
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for_chunks(out, 2, proc)
        # Freeze the run and its local workers at once: whatever the machine's speed, the run is mid-way (its
        # workers, orphaned by the kill, would otherwise go on computing the chunks they were given).
        os.killpg(proc.pid, signal.SIGSTOP)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned local workers of the killed run
        except ProcessLookupError:
            pass
        time.sleep(1.0)  # killed processes are gone before the store is read
    done_before = int(done_chunks(out).sum())
    n_chunks = done_chunks(out).size
    assert 0 < done_before < n_chunks
    res = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{n_chunks - done_before} of {n_chunks} chunks to compute" in res.stderr
    assert_same(ref, out)


@pytest.fixture
def dask_processes(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    t0 = time.time()
    while not sched_file.exists() and time.time() - t0 < 60:
        time.sleep(0.1)
    workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                 str(sched_file), "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                 "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    procs += workers
    yield sched_file, workers
    for p in procs:
        p.kill()
        p.wait(timeout=30)


@pytest.mark.slow
def test_worker_killed_mid_run(tmp_path, dask_processes, spec_64x34, reference_64x34):
    sched_file, workers = dask_processes
    spec, ref = spec_64x34, reference_64x34
    out = tmp_path / "cluster.zarr"
    with Client(scheduler_file=str(sched_file), timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        errors = []

        def go():
            try:
                engine.run(spec, out=out, client=client)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=go)
        t.start()
        _wait_for_chunks(out, 4)
        workers[0].send_signal(signal.SIGKILL)
        t.join(timeout=300)
    assert not errors, errors
    assert done_chunks(out).all()
    assert_same(ref, out)


def test_until_ci_doubles_along_the_same_sequence(tmp_path):
    """`--until-ci` grows N along the same Sobol' sequence: the grown store equals a fresh run at that N."""
    text = (ROOT / "scenarios" / "cn36-2019.toml").read_text().replace("second_order = true", "second_order = false")
    (tmp_path / "a.toml").write_text(text.replace("n = 4096", "n = 32\nchunk = 100"))
    (tmp_path / "b.toml").write_text(text.replace("n = 4096", "n = 128\nchunk = 100"))
    grown = tmp_path / "grown.zarr"
    res = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "a.toml"), "--out", str(grown),
                          "--synchronous", "--no-report", "--quiet", "--until-ci", "0.0001", "--max-doublings", "2"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "not reached after 2 doublings (N = 128)" in res.stdout
    fresh = tmp_path / "fresh.zarr"
    engine.run(tmp_path / "b.toml", out=fresh, synchronous=True)
    assert_same(fresh, grown)
    assert verify(grown) == []


@pytest.mark.parametrize("mode", ["ranks", "summary"])
def test_analyze_recomputes_what_the_store_does_not_keep(tmp_path, mode):
    """`analyze` of a store without scores recomputes them from the store alone: the same analysis as the run's."""
    spec = tmp_path / f"{mode}.toml"
    spec.write_text(f'store = "{mode}"\n' + small_spec(tmp_path, chunk=34 * 5).read_text())
    out = tmp_path / f"{mode}.zarr"
    engine.run(spec, out=out, synchronous=True)
    assert "score" not in xr.open_zarr(out)
    in_run = xr.open_zarr(out, group="analysis").load()
    assert_same_analysis(in_run, engine.analyze(out, write=False))
