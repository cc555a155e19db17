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
    assert len(images(html)) == 3  # Monte Carlo: rank chart, acceptability, pairwise; no Sobol figures
    assert "What drives the ranks" not in html


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
def test_report_in_headless_chromium(runs, gtii_report, tmp_path):
    import matplotlib.image as mpimg

    html_path, _ = gtii_report
    url = html_path.resolve().as_uri()
    n_img = len(images(html_path.read_text(encoding="utf-8")))
    dom = chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>rankstab report: gtii-2019</title>" in dom.stdout
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
