"""The Python API and the CLI as users meet them: the README's Python API block run verbatim as a script
(no ``__main__`` guard) and in a real Jupyter kernel, messages that name the caller's own options,
progress lines, ``score``'s output, ``validate``'s table and the spec template."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_sweep import ROOT, small_spec

import engine
from engine.store import verify
from engine.sweep.job import store_job
from engine.sweep.progress import Progress

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
# the README's block runs cn36-2019: a Sobol design with second order, N = 4096
CN36_SCENARIOS = "49,152/49,152 scenarios"


def readme_api_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"### Python API\n\n```python\n(.*?)```", text, re.S)
    assert found, "README.md has no ### Python API code block"
    return found.group(1)


def env(**extra: str) -> dict[str, str]:
    """This checkout's engine for the subprocess (and its workers), wherever the test runs from."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env(),
                          cwd=cwd, timeout=600)


def check_outputs(folder: Path) -> None:
    """What the README block leaves behind: a complete, consistent store with its analysis, and a report."""
    store = folder / "results" / "cn36.zarr"
    assert xr.open_zarr(store).attrs["complete"] == 1
    assert verify(store) == []
    analysis = xr.open_zarr(store, group="analysis")
    assert analysis.sizes["city"] == 36 and "ST" in analysis
    assert (folder / "results" / "cn36.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


# ------------------------------------------------------------------------------ the README's block


@pytest.mark.slow
def test_readme_api_block_runs_as_a_script(tmp_path):
    """Saved as a .py file without a __main__ guard and run: the local workers must not re-run it."""
    script = tmp_path / "my_analysis.py"
    script.write_text(readme_api_block(), encoding="utf-8")
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env(), capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Traceback" not in res.stderr and "Nanny" not in res.stderr
    check_outputs(tmp_path)
    # stderr is no terminal here: the default progress is plain timestamped lines, ending with the total
    lines = [ln for ln in res.stderr.splitlines() if " scenarios (" in ln]
    assert lines and all(re.match(STAMP, ln) for ln in lines), res.stderr[-2000:]
    assert CN36_SCENARIOS in lines[-1] and "inf" not in res.stderr


@pytest.mark.slow
def test_readme_api_block_runs_in_a_notebook(tmp_path, monkeypatch):
    """The same block in one cell of a notebook executed by a real Jupyter kernel (nbclient + ipykernel):
    it runs, and the sweep's progress is a display updated in place (not lines on stderr)."""
    import nbclient
    import nbformat

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel inherits this process's environment
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(readme_api_block())])
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(errors[0].traceback)
    check_outputs(tmp_path)
    displays = [o for o in outputs if o.output_type == "display_data"]
    widgets = [o for o in displays if "application/vnd.jupyter.widget-view+json" in o.data]
    if widgets:  # tqdm's notebook bar (tqdm and ipywidgets installed)
        assert len(widgets) == 1
    else:  # the HTML bar, its final state kept by the notebook
        bars = [o for o in displays if "<progress" in o.data.get("text/html", "")]
        assert len(bars) == 1, displays
        assert CN36_SCENARIOS in bars[0].data["text/plain"] and 'value="49152" max="49152"' in bars[0].data["text/html"]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert " scenarios (" not in streams  # no plain lines on top of the display


@pytest.mark.slow
def test_a_user_chosen_forkserver_says_to_add_the_main_guard(tmp_path):
    """With distributed's own forkserver (the user's choice), workers re-import the calling script: an
    unguarded one gets one clear message instead of "Nanny failed to start"."""
    script = tmp_path / "unguarded.py"
    script.write_text(f"import engine\nengine.run({str(small_spec(tmp_path))!r}, out='s.zarr', workers=1)\n")
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=env(DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD="forkserver"))
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("engine.errors.UserError: the local workers failed to start") and \
        "re-imports" in last and str(script) in last and 'if __name__ == "__main__":' in last, res.stderr[-3000:]
    assert res.stderr.count("Traceback") == 1  # the caller's, ending in that line (workers leave quietly)


# ------------------------------------------------------------------------ messages per caller


def test_messages_name_keywords_in_python_and_flags_on_the_command_line(tmp_path):
    spec = small_spec(tmp_path, n=16)
    out = tmp_path / "s.zarr"
    engine.run(spec, out=out, synchronous=True, progress=None, analyse=False)
    with pytest.raises(engine.UserError) as err:
        engine.run(spec, out=out, synchronous=True, progress=None)
    msg = str(err.value)
    assert "use resume=True to finish it or overwrite=True to replace it" in msg and "--" not in msg
    res = cli("run", str(spec), "--out", str(out), "--synchronous")
    assert res.returncode == 2 and "use --resume to finish it or --overwrite to replace it" in res.stderr
    assert "=True" not in res.stderr and "Traceback" not in res.stderr


# ----------------------------------------------------------------------------------- progress


def test_progress_shows_no_eta_before_a_rate_is_known(tmp_path):
    out = tmp_path / "s.zarr"
    engine.run(small_spec(tmp_path, n=16, chunk=34 * 2), out=out, synchronous=True, progress=None, analyse=False)
    job = store_job(out, False)
    bar = Progress(job, list(range(job.n_chunks)), "quiet")
    first = bar.message(time.perf_counter())
    assert first.startswith(f"0/{job.n:,} scenarios") and first.endswith("ETA    --"), first
    bar.update(0)
    a, b = job.bounds(0)
    assert re.search(r"ETA +\d+\.\ds$", bar.message(time.perf_counter() + 1.0)) and bar.done == b - a


def test_quiet_progress_lines_have_timestamps(tmp_path):
    res = cli("run", str(small_spec(tmp_path, n=64, chunk=34 * 5)), "--out", str(tmp_path / "q.zarr"), "--quiet",
              "--synchronous", "--no-analyze")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if " scenarios (" in ln]
    assert lines and all(re.match(STAMP + r"[\d,]+/[\d,]+ scenarios \( *\d+\.\d%\)", ln) for ln in lines), lines
    assert "inf" not in res.stderr and lines[-1].split(" ")[2] == "2,176/2,176"  # 64 x 34 rows per block


# -------------------------------------------------------------------------------------- score


def test_score_prints_names_and_writes_the_stored_float32_scores(tmp_path):
    settings = ["aggregation=geometric", "normalisation=minmax:1,100"]
    ds = engine.load_dataset("gtii-2019")
    ref = engine.score(ds, settings=settings)["score"]
    assert ref.dtype == np.float32
    out = tmp_path / "s.csv"
    res = cli("score", "gtii-2019", *sum((["--set", s] for s in settings), []), "--out", str(out))
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out, dtype={"score": str}, keep_default_na=False)
    assert list(df.columns) == ["city", "city_name", "field", "score", "rank"]
    got = np.array([np.float32(float(s)) for s in df["score"]])  # as another tool reads a CSV: via float64
    want = np.array([ref.sel(city=c, field=f).item() for c, f in zip(df["city"], df["field"], strict=True)],
                    dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    assert (np.float32(np.round(want.astype(np.float64), 4)) != want).any()  # 4 decimals would not do
    assert max(len(s.replace(".", "").lstrip("0")) for s in df["score"]) <= 9  # shortest float32 digits
    names = dict(zip(ds["city"].values, ds["city_name"].values, strict=True))
    assert (df["city_name"] == df["city"].map(names)).all() and "Xi'an" in set(df["city_name"])
    printed = pd.read_csv(io.StringIO(cli("score", "gtii-2019").stdout))
    assert list(printed.columns) == list(df.columns)
    assert printed["score"].map(lambda x: len(repr(x).split(".")[-1]) <= 4).all()


# ------------------------------------------------------------------------------ validate, template


def test_validate_summarises_a_factor_with_many_choices(tmp_path):
    sets = "\n".join(f"set{i:03d} = {{ ORG = {1 + i / 50:.2f} }}" for i in range(99))
    choices = ", ".join(f'"{c}"' for c in ["nominal", "equal", *(f"set{i:03d}" for i in range(99))])
    spec = tmp_path / "ws.toml"
    spec.write_text(f'[dataset]\nname = "gtii-2019"\n[design]\nkind = "montecarlo"\nn = 64\n[weight_sets]\n{sets}\n'
                    f'[[factor]]\nkind = "weight_scheme"\nchoices = [{choices}]\n')
    res = cli("validate", str(spec))
    assert res.returncode == 0, res.stderr
    row = next(ln for ln in res.stdout.splitlines() if ln.lstrip().startswith("weight_scheme"))
    assert "101 choices: nominal | equal | set000" in row and len(row) < 120, row
    assert max(map(len, res.stdout.splitlines())) < 200


def test_template_store_key_can_be_uncommented(tmp_path):
    text = (ROOT / "scenarios" / "TEMPLATE.toml").read_text(encoding="utf-8")
    assert text.count('# store = "full"') == 1
    spec = tmp_path / "t.toml"
    spec.write_text(text.replace('# store = "full"', 'store = "ranks"'), encoding="utf-8")
    res = cli("validate", str(spec))
    assert res.returncode == 0, res.stderr
    assert "store: ranks" in res.stdout


def test_analyze_report_verify_take_the_default_store_alike(tmp_path):
    """Without a STORE, each names the default run's store (results/gtii-2019.zarr)."""
    for command in ("analyze", "report", "verify"):
        res = cli(command, cwd=tmp_path)
        assert res.returncode == 2 and "results/gtii-2019.zarr: no such store" in res.stderr, (command, res.stderr)
    res = cli("analyze", "x.zarr", "--remove-one", "cn36-2019", cwd=tmp_path)
    assert res.returncode == 2 and "not both" in res.stderr
    res = cli("verify", "--help")
    assert "a run's zarr store" in res.stdout
