"""The HTML report: real (reduced) runs, the self-contained page, its figures, and the page in a real headless
Chromium (desktop and phone sizes) with every image decoded and a non-blank screenshot."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.cli import main
from engine.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PNG_SIG = b"\x89PNG\r\n\x1a\n"
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None)


def reduced_spec(tmp: Path, name: str, replace: dict[str, str]) -> Path:
    text = (ROOT / "scenarios" / f"{name}.toml").read_text()
    for old, new in replace.items():
        assert old in text, f"{name}.toml no longer contains {old!r}"
        text = text.replace(old, new)
    path = tmp / f"{name}-reduced.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Small real runs (no analysis yet: the report must run it): cn36 Sobol (256 base samples, 3,072
    scenarios, one field) and GTII Sobol second order (64 base samples, 2,176 scenarios, 7 fields)."""
    tmp = tmp_path_factory.mktemp("report")
    cn36 = tmp / "cn36.zarr"
    gtii = tmp / "gtii.zarr"
    engine.run(reduced_spec(tmp, "cn36-2019", {"n = 4096": "n = 256"}), out=cn36, synchronous=True)
    engine.run(reduced_spec(tmp, "gtii-2019", {"n = 16384": "n = 64"}), out=gtii, synchronous=True)
    return {"tmp": tmp, "cn36": cn36, "gtii": gtii}


@pytest.fixture(scope="module")
def gtii_report(runs):
    return engine.report(runs["gtii"], png_dir=runs["tmp"] / "png-gtii")  # analyses first


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory):
    """A small real Monte Carlo run of GTII (512 scenarios, 16 factors, 7 fields), analysed by the report:
    given-data indices (S1_given, delta) and SMAA-2 measures, no Sobol indices."""
    tmp = tmp_path_factory.mktemp("report-mc")
    store = tmp / "gtii-mc.zarr"
    spec = reduced_spec(tmp, "gtii-2019", {'kind = "sobol"': 'kind = "montecarlo"', "n = 16384": "n = 512",
                                           "second_order = true": "second_order = false"})
    engine.run(spec, out=store, synchronous=True, analyse=False)
    html = engine.report(store, png_dir=tmp / "png").read_text(encoding="utf-8")
    return {"tmp": tmp, "store": store, "html": html}


def images(html: str) -> list[bytes]:
    """The decoded bytes of every <img> (each must be a base64 PNG data URI)."""
    tags = re.findall(r"<img\b[^>]*>", html)
    out = []
    for tag in tags:
        m = re.search(r'\bsrc="data:image/png;base64,([A-Za-z0-9+/=]+)"', tag)
        assert m, f"<img> without an embedded PNG: {tag[:120]}"
        out.append(base64.b64decode(m.group(1), validate=True))
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIG and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert 'name="viewport"' in html and "Content-Security-Policy" in html
    # no external resource of any kind: every src/href is a data URI or an in-page anchor
    for attr, value in re.findall(r'\b(src|href|action|poster|srcset)\s*=\s*"([^"]*)"', html):
        assert value.startswith(("data:", "#")), f"{attr}={value[:80]}"
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", html)
    assert not re.search(r"@import|<link\b|<iframe\b|<object\b|<embed\b|<script\b[^>]*\bsrc=", html, re.I)
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*https?:", html, re.I)
    for svg in re.findall(r"<svg\b.*?</svg>", html, re.S):  # inline SVG, if any, must be well formed
        import xml.etree.ElementTree as ET

        ET.fromstring(svg)


def test_cn36_report_self_contained(runs):
    html_path = engine.report(runs["cn36"])  # no analysis yet: runs it
    assert html_path == runs["tmp"] / "cn36.html" and html_path.stat().st_size > 10_000
    html = html_path.read_text(encoding="utf-8")
    assert_self_contained(html)
    pngs = images(html)
    # overall rank chart (the single field is the overall ranking), Sobol heat map, R-bar bars,
    # rank acceptability, pairwise probabilities
    assert len(pngs) == 5
    for data in pngs:
        w, h = png_size(data)
        assert w > 100 and h > 100
    assert "<title>rankstab report: cn36-2019</title>" in html
    assert "SYNTHETIC DATA" not in html  # real data
    summary = re.search(r'<ul class="summary">(.*?)</ul>', html, re.S).group(1)
    assert "Beijing" in summary and "R̄s" in summary and "drives the mean rank shift" in summary
    for needle in ("Rank uncertainty", "What drives the ranks", "Rank acceptability", "Annex",
                   "w_P1", "arithmetic, geometric", "±50 %", "data hash", "versions", "SALib"):
        assert needle in html, needle


def test_gtii_report_figures_and_png_dir(runs, gtii_report):
    html_path = gtii_report
    assert html_path == runs["tmp"] / "gtii.html"
    html = html_path.read_text(encoding="utf-8")
    assert_self_contained(html)
    pngs = images(html)
    # 8 rank charts + 8 Sobol heat maps (7 fields + overall), R-bar bars, R-bar ST by field, width map,
    # acceptability, pairwise
    assert len(pngs) == 21
    files = sorted((runs["tmp"] / "png-gtii").glob("*.png"))
    assert len(files) == len(pngs)
    assert sorted(f.read_bytes() for f in files) == sorted(pngs)
    for f in files:
        png_size(f.read_bytes())
    assert "SYNTHETIC DATA" in html and "reconstructed demo" in html
    for field in ("IT", "CHIP", "ENERGY", "BIO", "AERO", "MFG", "MAT", "overall"):
        assert f"Rank uncertainty: {field}" in html
    assert "Field rankings are least stable in" in html
    assert "exclude" in html and "normalisation" in html


def test_api_stays_callable(runs, tmp_path):
    """engine.report(...) works before and after the package engine.reporting has been imported."""
    import importlib

    importlib.import_module("engine.reporting")
    assert callable(engine.report)
    assert engine.report(runs["cn36"], out=tmp_path / "a.html") == tmp_path / "a.html"
    assert engine.report(runs["cn36"], out=tmp_path / "b.html") == tmp_path / "b.html"


def test_report_out_and_cli(runs, capsys):
    out = runs["tmp"] / "sub" / "custom.html"
    with pytest.raises(UserError, match="does not exist"):
        engine.report(runs["cn36"], out=out)
    out.parent.mkdir()
    assert main(["report", str(runs["cn36"]), "--out", str(out), "--png-dir", str(runs["tmp"] / "p" / "q")]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.exists() and len(list((runs["tmp"] / "p" / "q").glob("*.png"))) == 5
    # an existing folder as --out: NAME.html inside it
    assert engine.report(runs["cn36"], out=out.parent) == out.parent / "cn36.html"
    # the Dataset engine.run returns works too
    import xarray as xr

    assert engine.report(xr.open_zarr(runs["cn36"]), out=out) == out


def test_report_user_errors(runs, tmp_path, capsys):
    with pytest.raises(UserError, match="no such store"):
        engine.report(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a rankstab store"):
        engine.report(tmp_path / "plain")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        engine.report(runs["cn36"], out=tmp_path / "r.html", png_dir=tmp_path / "file")
    assert main(["report", str(tmp_path / "missing.zarr")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such store" in err[0]
    assert main(["report", str(runs["cn36"]), "--out", str(tmp_path / "nope" / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_incomplete_and_partial_monte_carlo(tmp_path):
    spec = reduced_spec(tmp_path, "asem-jrc", {"n = 8192": "n = 512\nchunk = 128"})
    store = tmp_path / "asem.zarr"
    engine.run(spec, out=store, synchronous=True, max_chunks=2)
    with pytest.raises(UserError, match=r"incomplete \(2 of 4 chunks"):
        engine.report(store)
    engine.analyze(store, partial=True)
    html = engine.report(store).read_text(encoding="utf-8")
    assert "PARTIAL" in html and "256 scenarios" in html
    # Monte Carlo: rank chart, delta/S1 of R-bar and by city (given data), acceptability, pairwise; no Sobol figures
    assert len(images(html)) == 5
    assert "sensitivity from the Monte Carlo scenarios" in html and "Sobol indices attribute" not in html


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The cells (text, HTML unescaped) of every row of the table with this id, header row first."""
    import html as h

    m = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert m, f"no table {table_id}"
    return [[h.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)]


def pm(cell: str) -> tuple[float, float]:
    """'0.39 ± 0.01' -> (0.39, 0.01)."""
    v, c = cell.split("±")
    return float(v), float(c)


def figure_vars(html: str) -> dict[str, list[str]]:
    """Each figure's id and the analysis variables it says it draws."""
    return {m.group(1): m.group(2).split() for m in re.finditer(r'<figure id="fig-([^"]+)"[^>]*?data-vars="([^"]*)"', html)}


def nominal_order(a, fld: str) -> np.ndarray:
    """Cities by nominal rank in a field, ties by median rank (a plain reference of the report's order)."""
    nom = a["nominal_rank"].sel(field=fld).values.astype(float)
    return np.lexsort((a["rank_median"].sel(field=fld).values, np.where(nom <= 0, np.inf, nom)))


def test_monte_carlo_report_shows_given_data_sensitivity_and_smaa(mc_run):
    """A Monte Carlo report has the given-data section: its charts plot the store's delta and S1_given (read here
    with xarray), its tables carry the same numbers with their half-widths, and the SMAA-2 table the store's
    first-rank probabilities, confidence factors and central weights."""
    import xarray as xr

    from engine.reporting.context import Context
    from engine.reporting.figures import plan

    html, store = mc_run["html"], mc_run["store"]
    a = xr.open_zarr(store, group="analysis").load()
    meta = xr.open_zarr(store)
    assert_self_contained(html)
    fields = [str(f) for f in a["field"].values]
    factors = [str(f) for f in a["factor"].values]
    assert "ST" not in a and "delta" in a and len(factors) == 16 and len(fields) == 8
    # the figures: 8 rank charts, delta/S1 of R-bar (bars and by field), 8 city x factor heat maps, width map,
    # acceptability, pairwise; every figure names analysis variables that the store has
    pngs = images(html)
    assert len(pngs) == 21 and len(list((mc_run["tmp"] / "png").glob("*.png"))) == 21
    shown = figure_vars(html)
    assert len(shown) == 21
    for fig, names in shown.items():
        assert names and all(n in a for n in names), (fig, names)
    assert sum(k.startswith(tuple(f"{i:02d}-given-" for i in range(30))) for k in shown) == 10
    assert "What drives the ranks (sensitivity from the Monte Carlo scenarios)" in html
    order_rbar = np.argsort(-a["delta_rbar"].sel(field="overall").values, kind="stable")

    # the charts plot the store's numbers
    ctx = Context.load(store)
    figs = {p.key: p.draw(ctx, *p.args) for p in plan(ctx) if p.key.startswith("given")}
    assert sorted(figs) == sorted(["given rbar", "given rbar fields", *(f"given {f}" for f in fields)])
    ax = figs["given rbar"].axes[0]
    from matplotlib.container import BarContainer

    delta_bars, s1_bars = (c for c in ax.containers if isinstance(c, BarContainer))
    want = a.sel(field="overall", factor=[factors[j] for j in order_rbar])
    for bars, var in ((delta_bars, "delta_rbar"), (s1_bars, "S1_given_rbar")):
        np.testing.assert_allclose(bars.datavalues, want[var].values, rtol=0, atol=1e-12)
        errs = [seg[:, 0] for seg in bars.errorbar.lines[2][0].get_segments()]  # the x-error segments
        np.testing.assert_allclose([e[1] - e[0] for e in errs], 2 * want[f"{var}_conf"].values, atol=1e-12)
    from engine.reporting.canvas import Texts

    labels = [p.texts for g in ax.artists for p in g.parts if isinstance(p, Texts)]
    assert labels == [[factors[j] for j in order_rbar]]  # the y labels, in the order of the bars
    heat = figs["given rbar fields"].axes
    for ax, var in zip(heat[:2], ("delta_rbar", "S1_given_rbar"), strict=True):
        got = np.ma.getdata(ax.images[0].get_array())
        ref = np.clip(a[var].transpose("factor", "field").values[order_rbar], 0, 1)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    for fld in fields:
        cities = nominal_order(a, fld)
        d = a["delta"].sel(target="rank", field=fld).transpose("city", "factor").values
        moving = a["rank_prob_max"].sel(field=fld).values < 1
        cols = np.argsort(-d[moving].mean(axis=0), kind="stable")
        for ax, var in zip(figs[f"given {fld}"].axes[:2], ("delta", "S1_given"), strict=True):
            ref = a[var].sel(target="rank", field=fld).transpose("city", "factor").values[cities][:, cols]
            got = ax.images[0].get_array()
            np.testing.assert_allclose(np.ma.getdata(got)[~np.ma.getmaskarray(got)],
                                       np.clip(ref, 0, 1)[np.repeat(moving[cities][:, None], 16, 1)], atol=1e-12)

    # the table of every factor x field: delta and S1 of R-bar with their half-widths
    rows = table_rows(html, "t-given-rbar")
    head, body = rows[0], rows[1:]
    assert [r[0] for r in body] == [factors[j] for j in order_rbar]
    for r in body:
        x = a.sel(factor=r[0])
        assert int(r[1]) == int(x["factor_bins"])
        for h, cell in zip(head[2:], r[2:], strict=True):
            what, fld = h.split()
            var = {"δ": "delta_rbar", "S1": "S1_given_rbar"}[what]
            v, c = pm(cell)
            assert v == pytest.approx(float(x[var].sel(field=fld)), abs=0.005 + 1e-9), (r[0], h)
            assert c == pytest.approx(float(x[f"{var}_conf"].sel(field=fld)), abs=0.005 + 1e-9), (r[0], h)
    assert {h.split()[1] for h in head[2:]} == set(fields)
    # the top cities' most influential factors by delta of the overall rank
    rows = table_rows(html, "t-given-cities")[1:]
    top = nominal_order(a, "overall")[:10]
    assert [r[1] for r in rows] == [str(meta["city_name"].values[i]) for i in top]
    for r, i in zip(rows, top, strict=True):
        x = a.sel(target="rank", field="overall").isel(city=i)
        best = np.argsort(-x["delta"].values, kind="stable")[:3]
        for cell, j in zip(r[3:], best, strict=True):
            name, rest = cell.split(": δ ")
            assert name == factors[j]
            dv, sv = rest.split(", S1 ")
            assert pm(dv)[0] == pytest.approx(float(x["delta"][j]), abs=0.005 + 1e-9)
            assert pm(dv)[1] == pytest.approx(float(x["delta_conf"][j]), abs=0.005 + 1e-9)
            assert pm(sv)[0] == pytest.approx(float(x["S1_given"][j]), abs=0.005 + 1e-9)
    # the fields table and the summary name the factor of largest delta
    top_factor = factors[order_rbar[0]]
    for r in table_rows(html, "t-fields")[1:]:
        fld = "overall" if r[0] == "overall" else r[0].split(":")[0]
        assert r[-1].split(" (")[0] == factors[int(np.argmax(a["delta_rbar"].sel(field=fld).values))]
    summary = re.search(r'<ul class="summary">(.*?)</ul>', html, re.S).group(1)
    assert f"δ = {float(a['delta_rbar'].sel(field='overall', factor=top_factor)):.2f}" in summary
    assert top_factor in summary and "noise floor" in summary

    # SMAA-2: the cities that rank first overall, their P(rank 1), confidence factors and central weights
    rows = table_rows(html, "t-smaa")
    head, nominal_row, body = rows[0], rows[1], rows[2:]
    first = a["rank_prob"].sel(field="overall", rank_value=1).values
    leaders = [i for i in np.argsort(-first, kind="stable") if first[i] > 0][:10]
    assert [r[1] for r in body] == [str(meta["city_name"].values[i]) for i in leaders]
    nodes = [h.removeprefix("w ") for h in head[4:]]
    assert nodes and set(nodes) <= set(map(str, a["node"].values))
    parent = dict(zip(map(str, meta["node"].values), map(str, meta["node_parent"].values), strict=True))
    weight = dict(zip(map(str, meta["node"].values), meta["node_nominal_weight"].values, strict=True))
    for n, cell in zip(nodes, nominal_row[4:], strict=True):
        siblings = sum(w for m, w in weight.items() if parent[m] == parent[n])
        assert float(cell) == pytest.approx(weight[n] / siblings, abs=5e-4 + 1e-9)
    for r, i in zip(body, leaders, strict=True):
        x = a.sel(field="overall").isel(city=i)
        assert float(r[2].rstrip(" %")) == pytest.approx(100 * first[i], abs=0.05 + 1e-9)
        assert float(r[3].rstrip(" %")) == pytest.approx(100 * float(x["confidence_factor"]), abs=0.05 + 1e-9)
        for n, cell in zip(nodes, r[4:], strict=True):
            assert float(cell) == pytest.approx(float(x["central_weight"].sel(node=n)), abs=5e-4 + 1e-9)


def chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / f"chromium-profile-{len(list(tmp.glob('chromium-profile-*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium); "
                    "the browser check of the report is skipped")
@pytest.mark.parametrize("which", ["sobol", "monte carlo"])
def test_report_in_headless_chromium(which, request, tmp_path):
    import matplotlib.image as mpimg

    if which == "sobol":
        html_path = request.getfixturevalue("gtii_report")
        tables = ["t-fields", "t-cities", "t-smaa"]
    else:
        html_path = request.getfixturevalue("mc_run")["store"].with_suffix(".html")
        tables = ["t-fields", "t-cities", "t-smaa", "t-given-rbar", "t-given-cities"]
    url = html_path.resolve().as_uri()
    n_img = len(images(html_path.read_text(encoding="utf-8")))
    dom = chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>rankstab report: gtii-2019</title>" in dom.stdout
    for t in tables:  # the browser parsed every table
        assert len(table_rows(dom.stdout, t)) > 1, t
    assert 'data-images-ok="yes"' in dom.stdout, re.findall(r"data-images[-a-z]*=\"[^\"]*\"", dom.stdout)
    assert f'data-images="{n_img}"' in dom.stdout
    assert console_messages(dom.stderr) == []  # no script error, no blocked resource
    for name, size in (("desktop", "1280,2000"), ("phone", "390,844")):
        shot = tmp_path / f"{name}.png"
        r = chromium(["--hide-scrollbars", f"--screenshot={shot}", f"--window-size={size}", url], tmp_path)
        assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
        assert console_messages(r.stderr) == []
        img = mpimg.imread(shot)
        w, h = (int(v) for v in size.split(","))
        assert img.shape[:2] == (h, w)
        gray = img[..., :3].mean(axis=-1)
        assert gray.std() > 0.05, f"{name} screenshot looks blank"
        assert (gray < 0.5).mean() > 0.01  # there is dark text
        # the page is not wider than the window (no horizontal overflow): the right edge is background
        assert np.allclose(img[:, -3:, :3], img[0, -1, :3], atol=0.02)


def test_figures_drawn_in_parallel_equal_serial_and_survive_a_lost_child(runs):
    """The figures drawn by forked children are the ones drawn in this process; a child that dies makes the
    report draw them here instead."""
    import os
    from dataclasses import replace

    from engine.reporting.context import Context
    from engine.reporting.drawing import draw_all
    from engine.reporting.figures import plan

    ctx = Context.load(runs["cn36"])
    plans = plan(ctx)
    serial = draw_all(ctx, plans, workers=1)
    parallel = draw_all(ctx, plans, workers=2)
    assert list(parallel) == list(serial) == [p.key for p in plans]
    assert [f.png for f in parallel.values()] == [f.png for f in serial.values()]
    parent = os.getpid()

    def dies_in_a_child(ctx, *args):
        if os.getpid() != parent:
            os._exit(3)
        return plans[0].draw(ctx, *args)

    again = draw_all(ctx, [replace(plans[0], draw=dies_in_a_child), *plans[1:]], workers=2)
    assert [f.png for f in again.values()] == [f.png for f in serial.values()]
