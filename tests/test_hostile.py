"""Hostile input and faults, by category (spec, data, metadata, CLI, store, cluster, file system), tried as
a new user would: every case exits with the expected code, prints one line on stderr naming the culprit
(the file, key or option) and the fix, shows no traceback, and leaves every file that existed before byte
for byte as it was (refusals create nothing either). Cases run in this process through
``engine.cli.main``; the few that need a real process (an interrupted run) or a full disk run last.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.cli import main
from engine.store import done_chunks

ROOT = Path(__file__).resolve().parents[1]
CN36 = (ROOT / "scenarios" / "cn36-2019.toml").read_text()
MC = (CN36.replace('kind = "sobol"', 'kind = "montecarlo"').replace("n = 4096", "n = 8")
      .replace("second_order = true", "chunk = 4"))
SOBOL = CN36.replace("n = 4096", "n = 4").replace("second_order = true", "second_order = false")
VALUES = "city,field,indicator,value\na,F,x,1\nb,F,x,2\nc,F,x,3\na,F,y,3\nb,F,y,1\nc,F,y,2\n"
META = '[nominal]\nnormalisation = "minmax"\n\n[[field]]\ncode = "F"\n\n[[indicator]]\ncode = "x"\n\n' \
       '[[indicator]]\ncode = "y"\n'
CITIES = "city,name\na,A\nb,B\nc,C\n"


# ------------------------------------------------------------------------------------------- helpers

@dataclass
class Result:
    code: int
    out: str
    err: str


def rankstab(*args: str) -> Result:
    """``rankstab ARGS`` in this process; any exception escaping ``main`` fails the test (a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse (usage errors, --version)
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        logging.disable(logging.NOTSET)
    return Result(code, out.getvalue(), err.getvalue())


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``: relative path -> SHA-256 of its bytes ('dir' for folders)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def dataset(ws: Path, values: str | bytes = VALUES, meta: str | bytes = META, **files: str | bytes) -> str:
    """A data folder (values.csv + meta.toml + other files) in the case's workspace; returns its path."""
    d = ws / "data"
    write(d / "values.csv", values)
    write(d / "meta.toml", meta)
    for name, text in files.items():
        write(d / name.replace("_", "."), text)
    return str(d)


def spec(ws: Path, text: str, name: str = "case.toml") -> str:
    return str(write(ws / name, text))


def cluster_file(ws: Path, text: str) -> str:
    return str(write(ws / "cluster.yaml", text))


def closed_port() -> int:
    """A local TCP port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------- cases

@dataclass
class Case:
    """One hostile input: ``args(ws)`` builds the command line (and its files) in the workspace ``ws``;
    ``culprit`` and ``fix`` must both appear in the one-line message."""

    category: str
    args: Callable[[Path], list[str]]
    culprit: str
    fix: str
    code: int = 2
    store: bool = False  # the workspace also holds a complete, analysed store ``base.zarr``
    marks: list = field(default_factory=list)


def _s(text: str, *rest: str, cmd: str = "validate") -> Callable[[Path], list[str]]:
    return lambda ws: [cmd, spec(ws, text), *rest]


def _mc(old: str, new: str, cmd: str = "validate", *rest: str) -> Callable[[Path], list[str]]:
    return _s(edit(MC, old, new), *rest, cmd=cmd)


def _data(**kw) -> Callable[[Path], list[str]]:
    return lambda ws: ["score", dataset(ws, **kw)]


def _meta(old: str, new: str, **kw) -> Callable[[Path], list[str]]:
    return _data(meta=edit(META, old, new), **kw)


def _run(*rest: str, text: str = MC) -> Callable[[Path], list[str]]:
    return lambda ws: ["run", spec(ws, text), "--synchronous", *rest]


def _cluster(yaml: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["run", spec(ws, MC), "--out", "c.zarr", "--cluster", cluster_file(ws, yaml)]


def _lock_held(ws: Path) -> list[str]:
    write(ws / ".base.zarr.rankstab-lock", f"{socket.gethostname()} {os.getpid()}")  # this live process
    return ["analyze", "base.zarr"]


def _leased_elsewhere(ws: Path) -> list[str]:
    """The lease of a live run on another host (renewed just now): `run --resume` is refused at once."""
    now = time.time()
    write(ws / ".base.zarr.rankstab-lock", json.dumps(dict(host="node-b", pid=4242, run="0123456789ab", job="",
                                                           attempt=0, seconds=60, renewed=now, expires=now + 60)))
    return ["run", spec(ws, MC), "--out", "base.zarr", "--resume", "--synchronous"]


def _lose_chunk(ws: Path) -> list[str]:
    (ws / "base.zarr" / "score" / "c" / "1" / "0" / "0").unlink()
    return ["analyze", "base.zarr"]


def _truncate_chunk(ws: Path) -> list[str]:
    f = ws / "base.zarr" / "rank" / "c" / "0" / "0" / "0"
    f.write_bytes(f.read_bytes()[:7])
    return ["analyze", "base.zarr"]


def _drop_attr(key: str, cmd: str) -> Callable[[Path], list[str]]:
    def build(ws: Path) -> list[str]:
        g = zarr.open_group(str(ws / "base.zarr"), mode="r+")
        del g.attrs[key]
        zarr.consolidate_metadata(str(ws / "base.zarr"))
        return [cmd, "base.zarr"]
    return build


def _unflag_last(ws: Path) -> list[str]:
    g = zarr.open_group(str(ws / "base.zarr"), mode="r+")
    g["chunk_done"][1] = 0
    g.attrs["complete"] = 0
    return ["analyze", "base.zarr"]


def _scheduler_file(content: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["run", spec(ws, MC), "--out", "c.zarr",
                       "--scheduler-file", str(write(ws / "sched.json", content))]


BIG = edit(MC, "n = 8", "n = 1099511627776")  # 2^40 scenarios: petabytes
LONG = edit(MC, 'name = "cn36-2019"', f'name = "{"x" * 300}"')
DEN_META = 'denominators = "den.csv"\n' + edit(META, 'code = "x"', 'code = "x"\ndenominator = "pop"')
CITY_META = 'cities = "cities.csv"\n' + META

CASES: dict[str, Case] = {
    # ---------------------------------------------------------------------------------------- spec
    "spec: num_resamples negative": Case("spec", _mc("chunk = 4", "chunk = 4\nnum_resamples = -5"),
                                         "num_resamples", "at least 1"),
    "spec: num_resamples zero (run)": Case("spec", _mc("chunk = 4", "chunk = 4\nnum_resamples = 0", "run",
                                                       "--synchronous"), "num_resamples", "at least 1"),
    "spec: second order with Monte Carlo": Case("spec", _mc("chunk = 4", "chunk = 4\nsecond_order = true"),
                                                "second_order", 'kind = "sobol"'),
    "spec: typo in nominal weight_scheme": Case("spec", _mc("[design]", '[nominal]\nweight_scheme = "equall"\n\n'
                                                        "[design]"), "weight_scheme", 'did you mean "equal"'),
    "spec: typo in nominal weight_scheme (run)": Case(
        "spec", _mc("[design]", '[nominal]\nweight_scheme = "equall"\n\n[design]', "run", "--synchronous"),
        "weight_scheme", 'did you mean "equal"'),
    "spec: nominal exclude not an indicator": Case("spec", _mc("[design]", '[nominal]\nexclude = "P9"\n\n[design]'),
                                                   "exclude", "indicator code"),
    "spec: name with a slash": Case("spec", _mc('name = "cn36-2019"', 'name = "a/b"'), "name", "slashes"),
    "spec: name too long for the file system": Case("spec", _s(LONG), "name", "too long"),
    "spec: n = 2^40 (validate)": Case("spec", _s(BIG), "[design] n", "at most n = "),
    "spec: n = 2^40 (run)": Case("spec", _s(BIG, "--synchronous", cmd="run"), "[design] n", "at most n = "),
    "spec: infinite normalisation bound": Case("spec", _mc('choices = ["arithmetic", "geometric"]',
                                                           'choices = ["arithmetic", "geometric"]\n\n[[factor]]\n'
                                                           'kind = "normalisation"\n'
                                                           'choices = ["none", "minmax:1,inf"]'),
                                               "minmax:1,inf", "finite"),
    "spec: nan normalisation parameter": Case("spec", _mc('[design]', '[nominal]\nnormalisation = "zscore:nan,1"\n\n'
                                                          '[design]'), "zscore:nan,1", "finite"),
    "spec: bounds beyond float32": Case("spec", _mc('choices = ["arithmetic", "geometric"]',
                                                    'choices = ["arithmetic", "geometric"]\n\n[[factor]]\n'
                                                    'kind = "normalisation"\nchoices = ["none", "minmax:1,1e39"]'),
                                        "minmax:1,1e+39", "infinite scores"),
    "spec: conf_level above 1": Case("spec", _mc("chunk = 4", "chunk = 4\nconf_level = 1.5"), "conf_level",
                                     "between 0 and 1"),
    "spec: seed is text": Case("spec", _mc("seed = 36", 'seed = "x"'), "seed", "whole number"),
    "spec: chunk is fractional": Case("spec", _mc("chunk = 4", "chunk = 1.5"), "chunk", "whole number"),
    "spec: n zero": Case("spec", _mc("n = 8", "n = 0"), "n is 0", "at least 1"),
    "spec: design is a number": Case("spec", _s('name = "x"\ndesign = 5\n[dataset]\nname = "cn36-2019"\n'),
                                     "[design]", "a table"),
    "spec: no factors": Case("spec", _s('name = "x"\n[dataset]\nname = "cn36-2019"\n[design]\nn = 8\n'),
                             "[[factor]]", "add at least one"),
    "spec: sampler typo": Case("spec", _mc("chunk = 4", 'chunk = 4\nsampler = "sobel"'), "sampler",
                               'did you mean "sobol"'),
    "spec: built-in weight set name": Case("spec", _mc("[design]", "[weight_sets.equal]\nP1 = 2\n\n[design]"),
                                           "equal", "built in"),
    "spec: negative weight in a weight set": Case("spec", _mc("[design]", "[weight_sets.mine]\nP1 = -2\n\n[design]"),
                                                  "weight_sets.mine", "positive"),
    "spec: level on a normalisation factor": Case("spec", _mc('choices = ["arithmetic", "geometric"]',
                                                              'choices = ["arithmetic", "geometric"]\n\n[[factor]]\n'
                                                              'kind = "normalisation"\nlevel = "group"\n'
                                                              'choices = ["none", "rank"]'), "level", "remove it"),
    "spec: empty file": Case("spec", _s(""), "[dataset]", "gtii-2019"),
    "spec: Latin-1 text": Case("spec", lambda ws: ["validate", str(write(ws / "l1.toml", ("# Zürich\n" + MC)
                                                                        .encode("latin-1")))], "l1.toml", "UTF-8"),
    "spec: byte-order mark (accepted)": Case("spec", lambda ws: ["validate", str(write(ws / "bom.toml", b"\xef\xbb\xbf"
                                                                                    + MC.encode()))], "", "", code=0),
    "spec: dataset file missing": Case("spec", _mc('name = "cn36-2019"\n\n[design]', 'path = "nope.csv"\n\n[design]'),
                                       "nope.csv", "existing path"),
    "spec: one Sobol factor": Case("spec", _s(SOBOL.split("[[factor]]")[0] + "[[factor]]" + SOBOL.split("[[factor]]")[2]),
                                   "Sobol design needs at least 2", "montecarlo"),
    # ---------------------------------------------------------------------------------------- data
    "data: blank city code": Case("data", _data(values=VALUES.replace("a,F,x", ",F,x")), "values.csv",
                                  "blank city"),
    "data: blank indicator code": Case("data", _data(values=VALUES.replace("a,F,x", "a,F, ")), "values.csv",
                                       "blank indicator"),
    "data: zero denominator": Case("data", _data(meta=DEN_META, den_csv="city,pop\na,0\nb,2\nc,3\n"), "den.csv",
                                   "denominator pop of city a"),
    "data: negative denominator": Case("data", _data(meta=DEN_META, den_csv="city,pop\na,1\nb,-2\nc,3\n"),
                                       "den.csv", "positive number"),
    "data: text denominator": Case("data", _data(meta=DEN_META, den_csv="city,pop\na,1\nb,many\nc,3\n"), "den.csv",
                                   '"many"'),
    "data: denominators file missing": Case("data", _data(meta=DEN_META), "den.csv", "does not exist"),
    "data: infinite value": Case("data", _data(values=VALUES.replace("a,F,x,1", "a,F,x,inf")), "city a",
                                 "indicator x is infinite"),
    "data: empty cities.csv": Case("data", _data(meta=CITY_META, cities_csv=""), "cities.csv", "empty"),
    "data: Latin-1 cities.csv": Case("data", _data(meta=CITY_META, cities_csv="city,name\na,Zürich\nb,B\nc,C\n"
                                                   .encode("latin-1")), "cities.csv", "UTF-8"),
    "data: cities.csv without a city column": Case("data", _data(meta=CITY_META, cities_csv="town,name\na,A\n"),
                                                   "cities.csv", "'city' column"),
    "data: blank code in cities.csv": Case("data", _data(meta=CITY_META, cities_csv=CITIES + ",D\n"), "cities.csv",
                                           "blank city"),
    "data: city missing from cities.csv": Case("data", _data(meta=CITY_META, cities_csv="city,name\na,A\nb,B\n"),
                                               "cities.csv", "city c has data but no row"),
    "data: city listed twice": Case("data", _data(meta=CITY_META, cities_csv=CITIES + "a,A2\n"), "cities.csv",
                                    "listed twice"),
    "data: header only": Case("data", _data(values="city,field,indicator,value\n"), "data", "missing for every city"),
    "data: decimal comma": Case("data", _data(values=VALUES.replace("a,F,x,1", 'a,F,x,"1,5"')), "values.csv",
                                'non-numeric value "1,5"'),
    "data: unknown field in the data": Case("data", _data(values=VALUES + "a,G,x,1\n"), "values.csv",
                                            'field "G"'),
    "data: values file named in meta missing": Case("data", _data(meta='values = "nope.csv"\n' + META), "nope.csv",
                                                    "no such file"),
    "data: corrupt Parquet": Case("data", lambda ws: ["score", str(write(ws / "v.parquet", "not parquet")), "--meta",
                                                      str(write(ws / "m.toml", META))], "v.parquet", "cannot be read"),
    "data: corrupt NetCDF": Case("data", lambda ws: ["score", str(write(ws / "v.nc", "not netcdf"))], "v.nc",
                                 "cannot be read as NetCDF"),
    "data: byte-order marks (accepted)": Case("data", _data(values=b"\xef\xbb\xbf" + VALUES.encode(),
                                                            meta=b"\xef\xbb\xbf" + META.encode()), "", "", code=0),
    # ------------------------------------------------------------------------------------ metadata
    "metadata: [field] instead of [[field]]": Case("metadata", _meta("[[field]]", "[field]"), "meta.toml",
                                                   "[[field]] (double brackets)"),
    "metadata: [group] instead of [[group]]": Case("metadata", _meta('[[indicator]]\ncode = "x"', '[group]\ncode = '
                                                                     '"g"\n\n[[indicator]]\ncode = "x"'),
                                                   "meta.toml", "[[group]]"),
    "metadata: field code overall": Case("metadata", _data(values=VALUES.replace(",F,", ",overall,"),
                                                           meta=edit(META, 'code = "F"', 'code = "overall"')),
                                         'field code "overall"', "reserved"),
    "metadata: blank code": Case("metadata", _meta('code = "y"', 'code = ""'), "meta.toml", "non-blank"),
    "metadata: code with spaces": Case("metadata", _meta('code = "y"', 'code = " y"'), "meta.toml", "non-blank"),
    "metadata: direction zero": Case("metadata", _meta('code = "y"', 'code = "y"\ndirection = 0'), "indicator y",
                                     "use 1 or -1"),
    "metadata: weight is text": Case("metadata", _meta('code = "y"', 'code = "y"\nweight = "heavy"'), "indicator y",
                                     "positive numbers"),
    "metadata: infinite weight": Case("metadata", _meta('code = "y"', 'code = "y"\nweight = inf'), "indicator y",
                                      "positive numbers"),
    "metadata: group cycle": Case("metadata", _meta('[[indicator]]\ncode = "x"',
                                                    '[[group]]\ncode = "g"\nparent = "h"\n\n[[group]]\ncode = "h"\n'
                                                    'parent = "g"\n\n[[indicator]]\ncode = "x"\nparent = "g"'),
                                  "meta.toml", "cycle"),
    "metadata: code used twice": Case("metadata", _meta('code = "y"', 'code = "F"'), '"F"', "used twice"),
    "metadata: entry without code": Case("metadata", _meta('code = "y"', 'name = "y"'), "meta.toml", "no code"),
    "metadata: Latin-1 meta.toml": Case("metadata", _data(meta=("# Zürich\n" + META).encode("latin-1")),
                                        "meta.toml", "UTF-8"),
    "metadata: malformed TOML": Case("metadata", _meta("[[field]]", "[[field]"), "meta.toml", "malformed TOML"),
    "metadata: unknown denominator column": Case("metadata", _data(meta=DEN_META, den_csv="city,area\na,1\nb,2\nc,3\n"),
                                                 "den.csv: no column pop", "indicator x"),
    "metadata: denominator without a table": Case("metadata", _meta('code = "x"', 'code = "x"\ndenominator = "pop"'),
                                                  "meta.toml", "denominators ="),
    "metadata: CSV missing columns": Case("metadata", lambda ws: ["score", str(write(ws / "v.csv", VALUES)), "--meta",
                                                                  str(write(ws / "m.csv", "kind,code\nfield,F\n"))],
                                          "m.csv", "kind,code,weight"),
    "metadata: CSV unknown kind": Case("metadata", lambda ws: ["score", str(write(ws / "v.csv", VALUES)), "--meta",
                                                               str(write(ws / "m.csv", "kind,code,weight\nfeild,F,1\n"))],
                                       "m.csv", 'did you mean "field"'),
    "metadata: CSV text weight": Case("metadata", lambda ws: ["score", str(write(ws / "v.csv", VALUES)), "--meta",
                                                              str(write(ws / "m.csv", "kind,code,weight\nfield,F,x\n"))],
                                      "weight of F", "not a number"),
    "metadata: empty CSV": Case("metadata", lambda ws: ["score", str(write(ws / "v.csv", VALUES)), "--meta",
                                                        str(write(ws / "m.csv", ""))], "m.csv", "empty"),
    # ------------------------------------------------------------------------------------ CLI
    "cli: --until-ci 0": Case("cli", _run("--until-ci", "0", text=SOBOL), "--until-ci", "positive"),
    "cli: --until-ci -1": Case("cli", _run("--until-ci", "-1", text=SOBOL), "--until-ci", "positive"),
    "cli: --until-ci nan": Case("cli", _run("--until-ci", "nan", text=SOBOL), "--until-ci", "positive"),
    "cli: --until-ci with Monte Carlo": Case("cli", _run("--until-ci", "0.1"), "--until-ci", "Sobol design"),
    "cli: --max-doublings -1": Case("cli", _run("--until-ci", "0.1", "--max-doublings", "-1", text=SOBOL),
                                    "--max-doublings", "at least 0"),
    "cli: --workers 0": Case("cli", lambda ws: ["run", spec(ws, MC), "--workers", "0"], "--workers", "at least 1"),
    "cli: --workers -3": Case("cli", lambda ws: ["run", spec(ws, MC), "--workers", "-3"], "--workers", "at least 1"),
    "cli: --workers abc": Case("cli", lambda ws: ["run", spec(ws, MC), "--workers", "abc"], "--workers",
                               "--help"),
    "cli: unknown command": Case("cli", lambda ws: ["rnu"], "rnu", "--help"),
    "cli: unknown option": Case("cli", lambda ws: ["run", "--fast"], "--fast", "--help"),
    "cli: --resume with --overwrite": Case("cli", _run("--resume", "--overwrite"), "--overwrite", "not allowed"),
    "cli: --scheduler with --scheduler-file": Case("cli", lambda ws: ["run", "--scheduler", "a:1", "--scheduler-file",
                                                                      "b"], "--scheduler", "not allowed"),
    "cli: --set infinite bound": Case("cli", lambda ws: ["score", "cn36-2019", "--set", "normalisation=minmax:1,inf"],
                                      "minmax:1,inf", "finite"),
    "cli: --set weight_scheme typo": Case("cli", lambda ws: ["score", "cn36-2019", "--set", "weight_scheme=equall"],
                                          "equall", "nominal, equal or pca"),
    "cli: --set exclude unknown": Case("cli", lambda ws: ["score", "cn36-2019", "--set", "exclude=P9"], "P9",
                                       "not an indicator"),
    "cli: --set denominate maybe": Case("cli", lambda ws: ["score", "cn36-2019", "--set", "denominate=maybe"],
                                        "denominate", "true or false"),
    "cli: score --out a folder": Case("cli", lambda ws: (ws / "d").mkdir() or ["score", "cn36-2019", "--out", "d"],
                                      "--out d", "is a folder"),
    "cli: score --out ending in a slash": Case("cli", lambda ws: ["score", "cn36-2019", "--out", "new/"], "new",
                                               "folder"),
    "cli: report --png-dir a file": Case("cli", lambda ws: write(ws / "f", "x") and ["report", "base.zarr",
                                                                                     "--png-dir", "f"],
                                         "--png-dir", "not a folder", store=True),
    "cli: analyze without a store": Case("cli", lambda ws: ["analyze"], "results/gtii-2019.zarr",
                                          "rankstab run SPEC --out results/gtii-2019.zarr"),
    "cli: --remove-one unknown dataset": Case("cli", lambda ws: ["analyze", "--remove-one", "gtii2019"], "gtii2019",
                                              'did you mean "gtii-2019"'),
    "cli: validate without a spec": Case("cli", lambda ws: ["validate"], "spec", "--help"),
    "cli: run --out sweep.html": Case("cli", _run("--out", "sweep.html"), "sweep.html", "ends in .zarr"),
    "cli: run --out without suffix": Case("cli", _run("--out", "mystore"), "mystore", "ends in .zarr"),
    "cli: malformed --scheduler": Case("cli", lambda ws: ["run", spec(ws, MC), "--scheduler", "tcp://host:port:9"],
                                       "tcp://host:port:9", "not a scheduler address"),
    # ------------------------------------------------------------------------------------ store
    "store: a lost chunk file": Case("store", _lose_chunk, "score/c/1/0/0", "nothing was analysed", store=True),
    "store: a truncated chunk file": Case("store", _truncate_chunk, "chunk 0", "cannot be read", store=True),
    "store: attribute missing (analyze)": Case("store", _drop_attr("factor_groups", "analyze"), "factor_groups",
                                               "--overwrite", store=True),
    "store: attribute missing (report)": Case("store", _drop_attr("design_n", "report"), "design_n", "--overwrite",
                                              store=True),
    "store: attribute missing (verify)": Case("store", _drop_attr("block_size", "verify"), "block_size",
                                              "--overwrite", store=True),
    "store: attribute missing (--resume)": Case("store", lambda ws: _drop_attr("chunk", "x")(ws) and [
        "run", spec(ws, MC), "--out", "base.zarr", "--resume", "--synchronous"], "chunk", "--overwrite", store=True),
    "store: resume with another spec": Case("store", lambda ws: ["run", spec(ws, edit(MC, "seed = 36", "seed = 7")),
                                                                 "--out", "base.zarr", "--resume", "--synchronous"],
                                            "different spec", "--overwrite", store=True),
    "store: existing complete store": Case("store", _run("--out", "base.zarr"), "base.zarr", "--overwrite", store=True),
    "store: bad spec with --overwrite": Case("store", _mc("[design]", '[nominal]\nweight_scheme = "equall"\n\n[design]',
                                                          "run", "--out", "base.zarr", "--overwrite", "--synchronous"),
                                             "weight_scheme", "equal", store=True),
    "store: --overwrite a folder of other files": Case("store", lambda ws: write(ws / "keep.zarr" / "notes.txt", "mine")
                                                       and ["run", spec(ws, MC), "--out", "keep.zarr", "--overwrite",
                                                            "--synchronous"], "keep.zarr", "not a rankstab store"),
    "store: analyze a folder that is no store": Case("store", lambda ws: (ws / "x.zarr").mkdir() or
                                                     ["analyze", "x.zarr"], "x.zarr", "not a rankstab store"),
    "store: analyze a file": Case("store", lambda ws: write(ws / "f.zarr", "x") and ["analyze", "f.zarr"], "f.zarr",
                                  "a file, not a store"),
    "store: analysis group deleted (verify)": Case("store", lambda ws: shutil.rmtree(
        ws / "base.zarr" / "analysis") or ["verify", "base.zarr"], "", "", code=0, store=True),
    "store: locked by a live run": Case("store", _lock_held, "base.zarr", "another rankstab run", store=True),
    "store: leased by a run on another host": Case("store", _leased_elsewhere, "host node-b", "expires at",
                                                   store=True),
    "store: incomplete Monte Carlo store": Case("store", _unflag_last, "incomplete", "--partial", store=True),
    "store: verify a lost chunk": Case("store", lambda ws: _lose_chunk(ws) and ["verify", "base.zarr"],
                                       "score/c/1/0/0", "lost", code=1, store=True),
    # ------------------------------------------------------------------------------------ cluster
    "cluster: memory_limit in lots": Case("cluster", _cluster("kind: local\nworkers: 1\noptions:\n  memory_limit: 4 lots\n"),
                                          "options.memory_limit", "4GB"),
    "cluster: slurm memory in lots": Case("cluster", _cluster("kind: slurm\nworkers: 1\noptions:\n  cores: 1\n"
                                                              "  memory: 4 lots\n"), "options.memory", "4GB"),
    "cluster: local_directory in a missing folder": Case("cluster", _cluster("kind: local\noptions:\n  local_directory: "
                                                                             "/no/such/dir/x\n"),
                                                         "options.local_directory", "does not exist"),
    "cluster: local_directory is a file": Case("cluster", lambda ws: write(ws / "scratch", "x") and _cluster(
        f"kind: local\noptions:\n  local_directory: {ws / 'scratch'}\n")(ws), "options.local_directory", "a file"),
    "cluster: threads_per_worker 0": Case("cluster", _cluster("kind: local\noptions:\n  threads_per_worker: 0\n"),
                                          "options.threads_per_worker", "at least 1"),
    "cluster: workers 0": Case("cluster", _cluster("kind: local\nworkers: 0\n"), "workers:", "at least 1"),
    "cluster: kind typo": Case("cluster", _cluster("kind: sluurm\n"), "cluster.yaml", 'did you mean "slurm"'),
    "cluster: unknown key": Case("cluster", _cluster("kind: local\nwokers: 2\n"), "cluster.yaml",
                                 'did you mean "workers"'),
    "cluster: unknown option": Case("cluster", _cluster("kind: local\noptions:\n  n_threads: 2\n"), "n_threads",
                                    "unknown option"),
    "cluster: malformed YAML": Case("cluster", _cluster("kind: local\n  workers: [2\n"), "cluster.yaml",
                                    "malformed YAML"),
    "cluster: a list, not a mapping": Case("cluster", _cluster("- local\n- 2\n"), "cluster.yaml", "YAML mapping"),
    "cluster: adapt on a local cluster": Case("cluster", _cluster("kind: local\nadapt:\n  maximum: 2\n"),
                                              "cluster.yaml", "batch clusters"),
    "cluster: lifetime beyond walltime": Case("cluster", _cluster('kind: slurm\nworkers: 1\noptions:\n  cores: 1\n'
                                                                  '  memory: 1GB\n  walltime: "01:00:00"\n'
                                                                  '  worker_extra_args: ["--lifetime", "2h"]\n'),
                                              "--lifetime", "walltime"),
    "cluster: file missing": Case("cluster", lambda ws: ["run", spec(ws, MC), "--cluster", "nope.yaml"], "nope.yaml",
                                  "does not exist"),
    "cluster: unreachable --scheduler": Case("cluster", lambda ws: ["run", spec(ws, MC), "--out", "c.zarr",
                                                                    "--scheduler", f"127.0.0.1:{closed_port()}"],
                                             "cannot reach scheduler", "dask scheduler"),
    "cluster: stale scheduler file": Case("cluster", lambda ws: _scheduler_file(json.dumps(
        {"address": f"tcp://127.0.0.1:{closed_port()}"}))(ws), "cannot reach scheduler", "stale"),
    "cluster: scheduler file is not JSON": Case("cluster", _scheduler_file("not json"), "sched.json",
                                                "not a Dask scheduler file"),
    "cluster: scheduler file in a missing folder": Case("cluster", lambda ws: ["run", spec(ws, MC), "--scheduler-file",
                                                                               "/no/such/dir/s.json"], "/no/such/dir",
                                                        "does not exist"),
    # ------------------------------------------------------------------------------------ file system
    "fs: --out /proc/x.zarr": Case("fs", _run("--out", "/proc/x.zarr"), "/proc", "choose another --out"),
    "fs: a file named results": Case("fs", lambda ws: write(ws / "results", "x") and _run()(ws), "results",
                                     "is a file, not a folder"),
    "fs: --out in a missing folder": Case("fs", _run("--out", "no/such/x.zarr"), "no/such", "does not exist"),
    "fs: --out is a regular file": Case("fs", lambda ws: write(ws / "x.zarr", "x") and _run("--out", "x.zarr")(ws),
                                        "x.zarr", "is a file"),
    "fs: --out under a file": Case("fs", lambda ws: write(ws / "f.txt", "x") and _run("--out", "f.txt/x.zarr")(ws),
                                   "f.txt", "not a folder"),
    "fs: --out name too long": Case("fs", _run("--out", "y" * 250 + ".zarr"), "store name", "at most"),
    "fs: score --out /proc/x.csv": Case("fs", lambda ws: ["score", "cn36-2019", "--out", "/proc/x.csv"], "/proc",
                                        "choose another --out"),
    "fs: report --out /proc/x.html": Case("fs", lambda ws: ["report", "base.zarr", "--out", "/proc/x.html"], "/proc",
                                          "choose another --out", store=True),
    "fs: report --png-dir under /proc": Case("fs", lambda ws: ["report", "base.zarr", "--png-dir", "/proc/figs"],
                                             "/proc/figs", "choose another", store=True),
    "fs: spec path is a folder": Case("fs", lambda ws: (ws / "specs").mkdir() or ["validate", "specs"], "specs",
                                      "not found"),
    "fs: validate a store path too long": Case("fs", lambda ws: ["validate", spec(ws, MC), "--out",
                                                                 "z" * 250 + ".zarr"], "store name", "at most"),
}
CATEGORIES = ("spec", "data", "metadata", "cli", "store", "cluster", "fs")


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> Path:
    """A complete, analysed Monte Carlo store (2 chunks), copied into the cases that need one."""
    folder = tmp_path_factory.mktemp("base")
    path = folder / "base.zarr"
    engine.run(write(folder / "mc.toml", MC), out=path, synchronous=True)
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    return ws


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, workspace, base_store):
    case = CASES[name]
    if case.store:
        shutil.copytree(base_store, workspace / "base.zarr")
    args = case.args(workspace)
    before = tree(workspace)
    res = rankstab(*args)
    assert "Traceback" not in res.err + res.out
    assert res.code == case.code, (res.code, res.err, res.out)
    if case.code == 2:
        lines = res.err.strip().splitlines()
        assert len(lines) == 1, res.err
        assert ": error: " in lines[0], lines[0]
        assert case.culprit in lines[0] and case.fix in lines[0], lines[0]
    elif case.code == 1:  # verify's "problems found"
        assert case.culprit in res.out and case.fix in res.out, res.out
    if case.code != 0:
        assert tree(workspace) == before  # nothing changed, nothing created


def test_corpus_covers_every_category():
    counts = {c: sum(case.category == c for case in CASES.values()) for c in CATEGORIES}
    assert set(counts) == set(CATEGORIES) and min(counts.values()) >= 10, counts


# ------------------------------------------------------------------------------------------- error boundary

@pytest.mark.parametrize("exc, code, words", [
    (RuntimeError("boom"), 1, ["internal error", "RuntimeError: boom", "--debug"]),
    (KeyError("x"), 1, ["internal error", "--debug"]),
    (FileNotFoundError(2, "No such file or directory", "/data/x.csv"), 2, ["/data/x.csv", "check the path"]),
    (OSError(28, "No space left on device", "/scratch/s.zarr/score/c/0"), 2, ["/scratch/s.zarr", "free some space"]),
    (PermissionError(13, "Permission denied", "/etc/x"), 2, ["/etc/x", "permissions"]),
    (ValueError("bad\nthing"), 2, ["bad thing", "--debug"]),
    (MemoryError(), 2, ["not enough memory", "chunk"]),
])
def test_error_boundary(monkeypatch, exc, code, words):
    """Whatever escapes a command becomes one line: exit 2 for what a user can cause (files, values),
    exit 1 and a pointer to --debug for anything else."""
    import engine.cli as cli

    def fail(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_datasets", fail)  # the parser looks the command up when it is built
    res = rankstab("datasets")
    assert res.code == code
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), res.err


# ------------------------------------------------------------------------------------------- fuzzing

POOL_DIR = "fz"


@pytest.fixture(scope="module")
def fuzz_ws(tmp_path_factory, base_store) -> Path:
    ws = tmp_path_factory.mktemp("fuzz")
    write(ws / "ok.toml", MC)
    write(ws / "big.toml", BIG)
    write(ws / "bad.toml", MC.replace("[design]", "[design"))
    write(ws / "f.txt", "x")
    (ws / "d").mkdir()
    write(ws / "c.yaml", "kind: local\nworkers: 0\n")
    dataset(ws)
    shutil.copytree(base_store, ws / "s.zarr")
    return ws


PATHS = ["ok.toml", "big.toml", "bad.toml", "f.txt", "d", "d/", "nope", "/proc/x", "s.zarr", "data", "c.yaml",
         "cn36-2019", "asem", "x" * 260, "", "-", "results/r.zarr", "/proc/x.zarr", "f.txt/x.zarr", "new.zarr"]
#: What ``run`` and ``report`` may be given first: no shipped spec (a real sweep of 10^5 scenarios) and no
#: valid store to report on (rendering the figures): those work, slowly, and are tested elsewhere.
SLOW = {"cn36-2019", "asem", "s.zarr"}
WORDS = st.one_of(st.sampled_from(PATHS), st.text(alphabet="ab.:/=-_,0 9é\\", max_size=12),
                  st.sampled_from(["0", "-1", "nan", "inf", "1e400", "3", "0.05", "abc", "normalisation=minmax:1,inf",
                                   "aggregation=geometric", "weight.P1=-1", "exclude=P2", "weight_scheme=pca",
                                   "outlier=winsorise:1e9", "=", "tcp://127.0.0.1:1", "local"]))
FLAGS = {
    "validate": ["--out"],
    "run": ["--out", "--cluster", "--scheduler", "--workers", "--until-ci", "--max-doublings", "--resume",
            "--overwrite", "--quiet", "--no-analyze", "--no-report"],
    "analyze": ["--partial", "--remove-one"],
    "report": ["--out", "--png-dir"],
    "verify": [],
    "score": ["--set", "--set", "--meta", "--out"],
    "datasets": [],
}
SWITCHES = {"--resume", "--overwrite", "--quiet", "--no-analyze", "--no-report", "--partial"}


@st.composite
def command_lines(draw) -> list[str]:
    cmd = draw(st.sampled_from(sorted(FLAGS)))
    args = [cmd]
    if cmd in ("run", "report"):  # (without a spec, run sweeps the shipped gtii-2019)
        args.append(draw(WORDS.filter(lambda w: w not in SLOW)))
    elif cmd != "datasets" and (draw(st.booleans()) or cmd != "analyze"):
        args.append(draw(WORDS))
    for flag in draw(st.lists(st.sampled_from(FLAGS[cmd]), max_size=4)) if FLAGS[cmd] else []:
        args.append(flag)
        if flag not in SWITCHES:
            args.append(draw(WORDS))
    if cmd == "run" and "--scheduler" not in args:
        args.append("--synchronous")  # no cluster start-up in a fuzz example
    return args


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_fuzz_command_lines(fuzz_ws, argv):
    """Random command lines never crash: exit 0, or exit 2 with one line and nothing changed (never the
    internal-error exit 1, except verify's 'problems found')."""
    here = os.getcwd()
    os.chdir(fuzz_ws)
    try:
        inputs = {k: v for k, v in tree(fuzz_ws).items() if not k.startswith(("results", "new.zarr", "d/"))}
        res = rankstab(*argv)
        after = {k: v for k, v in tree(fuzz_ws).items() if not k.startswith(("results", "new.zarr", "d/"))}
    finally:
        os.chdir(here)
    assert "Traceback" not in res.err, (argv, res.err)
    assert res.code in (0, 2) or (res.code == 1 and argv[0] == "verify"), (argv, res.code, res.err)
    if res.code == 2:
        lines = res.err.strip().splitlines()
        assert len(lines) >= 1 and ": error: " in lines[-1], (argv, res.err)
        assert len([x for x in lines if "error" in x]) == 1, (argv, res.err)
        assert after == inputs, argv


# ------------------------------------------------------------------------------------------- faults

def _ctrl_c_as_a_shell() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a user's shell starts a command.
    Both are inherited, and twice in the full suite (pytest-xdist, 2 processes) a child ignored this test's
    SIGINT and ran to its end, while it never did alone (the state of the test process is in the message)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_state() -> str:
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    masks = " ".join(line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn")))
    return f"SIGINT handler {signal.getsignal(signal.SIGINT)!r}; {masks}"


def test_interrupted_overwrite_keeps_the_old_store(tmp_path, base_store):
    """`--overwrite` builds the new store beside the old one: Ctrl-C in the middle of the run leaves the old
    store byte for byte as it was, and removes the partial new one; a leftover of a killed run (a staged
    store beside the old one) is cleaned by the next run."""
    old = tmp_path / "base.zarr"
    shutil.copytree(base_store, old)
    stale = tmp_path / ".base.zarr.new-0123456789ab"  # what a run killed by SIGKILL leaves
    shutil.copytree(base_store, stale)
    before = tree(old)
    # 200,000 scenarios: minutes, far longer than the test waits for its first chunks
    long = write(tmp_path / "long.toml", edit(MC, "n = 8", "n = 200000").replace("chunk = 4", "chunk = 400"))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(long), "--out", str(old), "--overwrite",
                             "--synchronous", "--no-analyze"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_ctrl_c_as_a_shell)
    try:
        t0 = time.time()
        staged = []
        while time.time() - t0 < 240 and proc.poll() is None:
            staged = [p for p in tmp_path.glob(".base.zarr.new-*") if p != stale]
            if staged and not stale.exists():
                with contextlib.suppress(Exception):
                    if done_chunks(staged[0]).sum() >= 2:
                        break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        assert not stale.exists()  # cleaned under the lock before the new store was made
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, f"{err}\n(this process: {_sigint_state()})"
    assert "interrupted" in err and "Traceback" not in err
    assert tree(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.zarr", "long.toml"]


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MB tmpfs (needs root; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_during_analysis_keeps_the_old_analysis(tmpfs, base_store):
    store = tmpfs / "base.zarr"
    shutil.copytree(base_store, store)
    before = tree(store)
    ballast = tmpfs / "ballast"
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(0, shutil.disk_usage(tmpfs).free - 16 * 1024))
    res = rankstab("analyze", str(store))
    assert res.code == 2 and "cannot write the analysis" in res.err and "unchanged" in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1
    assert tree(store) == before
    assert sorted(p.name for p in tmpfs.iterdir()) == ["ballast", "base.zarr"]
    ballast.unlink()
    assert rankstab("analyze", str(store)).code == 0


def test_a_staged_folder_is_removed_while_a_failed_write_settles(tmp_path, monkeypatch):
    """After a failed zarr write, the writes of the same call still in flight on zarr's I/O thread remove
    their temporary files while rankstab deletes the staged folder, and may recreate it (seen once in CI:
    "zarr.<id>.partial: no such file or directory" instead of "cannot write the analysis"). A file that
    vanishes meanwhile is fine, and a folder written again within the settling time is deleted again."""
    import threading

    from engine.store.atomic import remove_tree

    staged = tmp_path / ".run.zarr.new-0123456789ab"
    (staged / "analysis").mkdir(parents=True)
    for name in ("zarr.0123.partial", "zarr.json", "c0"):
        (staged / "analysis" / name).write_text("x")
    real = os.unlink
    seen = {"vanished": 0, "late write after removal": False}

    def unlink_after_zarr(name, *args, **kwargs):  # zarr's thread removes its temporary file first
        if str(name).endswith(".partial"):
            real(name, *args, **kwargs)
            seen["vanished"] += 1
        return real(name, *args, **kwargs)

    def late_write() -> None:  # a write still in flight makes its folder again after the first removal
        seen["late write after removal"] = not staged.exists()
        (staged / "analysis").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(os, "unlink", unlink_after_zarr)
    late = threading.Timer(0.15, late_write)
    late.start()
    remove_tree(staged, settle=0.5)
    late.join()
    assert seen == {"vanished": 1, "late write after removal": True}  # both races did happen
    assert not staged.exists()


def test_overwrite_failing_while_the_store_is_created(tmp_path, base_store, monkeypatch):
    """A spec that passes every check but whose store cannot be created (here: the disk fills up once
    the layout is written) leaves the store it was to replace byte for byte as it was."""
    import errno

    import engine.sweep.core as core

    old = tmp_path / "base.zarr"
    shutil.copytree(base_store, old)
    before = tree(tmp_path)
    real = core.create_store

    def create_then_fail(spec, path):
        real(spec, path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path / "score" / "zarr.json"))

    monkeypatch.setattr(core, "create_store", create_then_fail)
    other = write(tmp_path / "other.toml", edit(MC, "seed = 36", "seed = 7"))
    res = rankstab("run", other, "--out", old, "--overwrite", "--synchronous")
    assert res.code == 2 and "no space left" in res.err and "Traceback" not in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1
    other.unlink()
    assert tree(tmp_path) == before  # the old store as it was, and no staged leftover


def test_new_store_is_removed_when_no_chunk_could_be_computed(tmp_path, monkeypatch):
    """A failure before the first chunk (a cluster that never came up, a disk that is full) leaves no
    store behind: the next run needs neither --resume nor --overwrite."""
    import errno

    import engine.sweep.execute as execute

    def no_space(job, todo, bar, gather, flag):
        raise OSError(errno.ENOSPC, "No space left on device", f"{job.path}/score/c/0/0/0")

    monkeypatch.setattr(execute, "_in_process", no_space)
    monkeypatch.chdir(tmp_path)
    res = rankstab("run", write(tmp_path / "mc.toml", MC), "--out", "new.zarr", "--synchronous")
    assert res.code == 2 and "no chunk was computed" in res.err and "--resume" not in res.err, res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc.toml"]
