"""Every error a user can cause ends with exit code 2, one or two lines on stderr naming the problem and
the fix, no traceback, and no store that looks complete."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
GTII = (ROOT / "scenarios" / "gtii-2019.toml").read_text()
VALUES = "city,field,indicator,value\na,F,x,1\nb,F,x,2\nc,F,x,3\na,F,y,3\nb,F,y,1\nc,F,y,2\n"
META = '[nominal]\nnormalisation = "minmax"\n[[field]]\ncode = "F"\n[[indicator]]\ncode = "x"\n[[indicator]]\ncode = "y"\n'


def rankstab(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in this process (fast); an exception other than a handled user error fails the test,
    which is what "no traceback" means. A few tests below also run real `rankstab` processes."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    finally:
        logging.disable(logging.NOTSET)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def rankstab_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=300)


def spec_with(tmp_path: Path, old: str, new: str, name: str = "bad.toml") -> Path:
    assert old in GTII, old
    p = tmp_path / name
    p.write_text(GTII.replace(old, new, 1))
    return p


def data_files(tmp_path: Path, values: str = VALUES, meta: str = META) -> tuple[Path, Path]:
    (tmp_path / "v.csv").write_text(values, encoding="utf-8")
    (tmp_path / "m.toml").write_text(meta, encoding="utf-8")
    return tmp_path / "v.csv", tmp_path / "m.toml"


SPEC_CASES = {
    "malformed TOML": ("[design]", "[design", "malformed TOML"),
    "unknown top key": ('name = "gtii-2019"', 'nmae = "gtii-2019"', 'did you mean "name"'),
    "unknown design key": ("second_order = true", "second_ordre = true", 'did you mean "second_order"'),
    "unknown factor key": ("level = \"indicator\"\nrange = 0.5", "levle = \"indicator\"\nrange = 0.5",
                           'did you mean "level"'),
    "S2 intervals without second order": ("second_order = true", "second_order = false\nsecond_order_conf = true",
                                          "second_order_conf = true needs second_order = true"),
    "S2 intervals not a bool": ("second_order = true", "second_order = true\nsecond_order_conf = 1",
                                "second_order_conf must be true or false"),
    "unknown Sobol' target": ("second_order = true", 'second_order = true\nsobol_targets = ["rnak"]',
                              'unknown [design] sobol_targets "rnak" (did you mean "rank"?)'),
    "no Sobol' target": ("second_order = true", "second_order = true\nsobol_targets = []",
                         'use a list of "rank" and/or "score"'),
    "Sobol' target twice": ("second_order = true", 'second_order = true\nsobol_targets = ["rank", "rank"]',
                            "sobol_targets repeats a target"),
    "Sobol' targets of a Monte Carlo design": ('kind = "sobol"', 'kind = "montecarlo"\nsobol_targets = ["rank"]',
                                               'sobol_targets applies to kind = "sobol" only'),
    "wrong type for n": ("n = 16384 ", 'n = "many" ', "n must be a whole number"),
    "n not a power of two": ("n = 16384 ", "n = 1000 ", "power of two"),
    "bad design kind": ('kind = "sobol"', 'kind = "sobel"', 'did you mean "sobol"'),
    "unknown normalisation": ('"minmax:1,100", "rank"', '"minmax:1,100", "ranking"', "unknown normalisation"),
    "unknown aggregation": ('"geometric", "harmonic"', '"geometric", "harmonik"', 'did you mean "harmonic"'),
    "factor that cannot change anything": ('[[factor]]\nname = "exclude"', '[[factor]]\nkind = "imputation"\n'
                                           'choices = ["none", "field_mean"]\n\n[[factor]]\nname = "exclude"',
                                           "cannot change any result"),
    "probabilities not summing to 1": ('"KNOWLEDGE", "COMMERCIAL"]', '"KNOWLEDGE", "COMMERCIAL"]\n'
                                       'probabilities = [0.5, 0.1, 0.1, 0.1, 0.1, 0.2]', "sum to 1.1"),
    "dirichlet with a range": ('level = "field"\nrange = 0.25', 'level = "field"\nrange = 0.25\n'
                               'distribution = "dirichlet"', "range applies to uniform"),
    "range too wide": ("range = 0.25", "range = 1.5", "range is 1.5"),
    "negative range": ("range = 0.25", "range = -0.1", "range is -0.1"),
    "unknown weight target": ('target = "input"', 'target = "inptu"', 'did you mean "input"'),
    "unknown dataset": ('name = "gtii-2019"\n\n[nominal]', 'name = "gtii-2090"\n\n[nominal]', "not an embedded dataset"),
    "geometric with zeros": ('"none", "minmax:1,100"', '"none", "minmax:0,100"', "needs positive values"),
    "exclude unknown indicator": ('"KNOWLEDGE", "COMMERCIAL"]', '"KNOWLEDGE", "COMMERICAL"]', "excluded indicator"),
    "negative nominal weight": ("[nominal]\n", "[nominal]\nweights = { ORG = -1 }\n", "weights must be positive"),
    "zero nominal weight": ("[nominal]\n", "[nominal]\nweights = { ORG = 0 }\n", "weights must be positive"),
    "nan nominal weight": ("[nominal]\n", "[nominal]\nweights = { ORG = nan }\n", "weights must be positive"),
    "weight for unknown node": ("[nominal]\n", "[nominal]\nweights = { ORGG = 1 }\n", 'did you mean "ORG"'),
    "unknown nominal key": ("[nominal]\n", '[nominal]\nnormalization = "none"\n', 'did you mean "normalisation"'),
    "bad store mode": ('name = "gtii-2019"\ndescription', 'store = "everything"\nname = "gtii-2019"\ndescription',
                       "unknown", ),
    "negative chunk": ("chunk = 0 ", "chunk = -5 ", "chunk is -5"),
    "negative seed": ("seed = 2019", "seed = -1", "seed is -1; use a whole number >= 0"),
    "bad factor kind": ('kind = "exclude"', 'kind = "exclusion"', 'did you mean "exclude"'),
    "duplicate choices": ('"arithmetic", "geometric", "harmonic"', '"arithmetic", "arithmetic"', "repeat"),
    "winsorise points not whole": ('outlier = "none"', 'outlier = "winsorise:2.5"', "whole number"),
    "minmax bounds reversed": ('"none", "minmax:1,100"', '"none", "minmax:100,1"', "lower bound"),
    "wrong parameter count": ('"none", "minmax:1,100"', '"none", "minmax:1"', "takes 2 parameter"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_bad_spec(tmp_path, case):
    old, new, message = SPEC_CASES[case]
    res = rankstab("validate", str(spec_with(tmp_path, old, new)))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert message in res.stderr, res.stderr
    assert 1 <= len(res.stderr.strip().splitlines()) <= 2


DATA_CASES = {
    "duplicate rows": (VALUES + "a,F,x,5\n", META, "duplicate rows"),
    "non-numeric value": (VALUES.replace("a,F,x,1", "a,F,x,one"), META, 'non-numeric value "one"'),
    "city missing everywhere": (VALUES + "d,F,x,\nd,F,y,\n", META, "city d has no value"),
    "all-missing indicator": (VALUES.replace(",3\n", ",\n").replace(",1\n", ",\n").replace(",2\n", ",\n")
                              .replace("a,F,x,", "a,F,x,1").replace("b,F,x,", "b,F,x,2").replace("c,F,x,", "c,F,x,3"),
                              META, "missing for every city"),
    "constant indicator": (VALUES.replace("a,F,y,3", "a,F,y,1").replace("c,F,y,2", "c,F,y,1"), META, "constant"),
    "unknown indicator in data": (VALUES + "a,F,z,1\n", META, 'indicator "z" in the data is not in the metadata'),
    "weight zero": (VALUES, META.replace('code = "x"', 'code = "x"\nweight = 0'), "weights must be positive"),
    "weight negative": (VALUES, META.replace('code = "x"', 'code = "x"\nweight = -2'), "weights must be positive"),
    "mismatched direction": (VALUES, META.replace('code = "x"', 'code = "x"\ndirection = 2'), "use 1 or -1"),
    "unknown parent": (VALUES, META.replace('code = "x"', 'code = "x"\nparent = "grp"'), "is not a group"),
    "group without indicators": (VALUES, META + '[[group]]\ncode = "empty"\n', "has no indicators"),
    "missing column": ("city,field,value\na,F,1\n", META, "missing column(s) indicator"),
    "empty data file": ("", META, "empty"),
    "unknown metadata key": (VALUES, META.replace('code = "x"', 'code = "x"\nwieght = 1'), 'did you mean "weight"'),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(tmp_path, case):
    values, meta, message = DATA_CASES[case]
    v, m = data_files(tmp_path, values, meta)
    res = rankstab("score", str(v), "--meta", str(m))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and message in res.stderr, res.stderr


def test_wrong_encoding(tmp_path):
    (tmp_path / "v.csv").write_bytes("city,field,indicator,value\nZürich,F,x,1\n".encode("latin-1"))
    (tmp_path / "m.toml").write_text(META)
    res = rankstab("score", str(tmp_path / "v.csv"), "--meta", str(tmp_path / "m.toml"))
    assert res.returncode == 2 and "UTF-8" in res.stderr


@pytest.mark.parametrize("args,message", [
    (["score", "no/such/file.csv", "--meta", "x.toml"], "neither an embedded dataset"),
    (["score", "gtii2019"], 'did you mean "gtii-2019"'),
    (["validate", "no-such-spec"], "not found"),
    (["score", "asem", "--set", "normalisation=minmax:0,100", "--set", "aggregation=geometric"], "positive"),
    (["score", "asem", "--set", "normalization=rank"], 'did you mean "normalisation"'),
    (["score", "asem", "--set", "aggregation"], "KEY=VALUE"),
    (["score", "asem", "--set", "weight.Physical=-1"], "positive"),
    (["score", "asem", "--out", "/no/such/dir/out.csv"], "does not exist"),
    (["run", "cn36-2019", "--out", "/no/such/dir/x.zarr", "--synchronous"], "does not exist"),
    (["analyze", "/no/such/store.zarr"], "no such store"),
    (["verify", "/no/such/store.zarr"], "no such store"),
])
def test_bad_command_lines(args, message):
    res = rankstab(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and message in res.stderr, res.stderr


def test_output_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = rankstab("run", "cn36-2019", "--out", str(ro / "x.zarr"), "--synchronous")
        import os

        if os.geteuid() == 0:  # root writes anywhere: the check cannot trigger
            assert res.returncode in (0, 2)
        else:
            assert res.returncode == 2 and "not writable" in res.stderr
    finally:
        ro.chmod(0o700)


def test_debug_shows_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "engine.cli", "--debug", "validate", "no-such-spec"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" in res.stderr


@pytest.mark.parametrize("args,message", [
    (["validate", "no-such-spec"], "not found"),
    (["score", "asem", "--set", "aggregation=geometric"], "needs positive values"),
    (["run", "cn36-2019", "--out", "/no/such/dir/x.zarr"], "does not exist"),
])
def test_real_processes_exit_2_without_traceback(args, message):
    res = rankstab_process(*args)
    assert res.returncode == 2 and "Traceback" not in res.stderr and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2
