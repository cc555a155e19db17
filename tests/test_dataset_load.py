"""Loading a tidy CSV: values equal a plain reading (Python's csv module and float()), and every data
error gives its exact one-line message, whichever of the loader's fast or text paths reads the file."""

from __future__ import annotations

import csv
import io
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.load import from_frames, load_dataset
from engine.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

META = {"name": "t", "field": [{"code": "F"}, {"code": "G"}], "group": [{"code": "g"}],
        "indicator": [{"code": "x", "parent": "g"}, {"code": "y"}, {"code": "z", "direction": -1}]}
MISSING = ("", "NA", "NaN", "nan")


def load(tmp: Path, rows: list[str], meta: dict = META):
    (tmp / "m.toml").write_text(tomli_w.dumps(meta), encoding="utf-8")
    (tmp / "v.csv").write_text("city,field,indicator,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return load_dataset(tmp / "v.csv", meta=tmp / "m.toml")


def message(tmp: Path, rows: list[str], meta: dict = META) -> str:
    with pytest.raises(UserError) as exc:
        load(tmp, rows, meta)
    text = str(exc.value)  # messages name the data file; the checks below compare the rest, after "t: "
    return text.replace(f"{tmp / 'v.csv'}: ", "t: ", 1)


def full(cities=("a", "b", "c"), value=lambda c, f, i: 1 + c + 3 * f + 7 * i) -> list[str]:
    return [f"{city},{fld},{ind},{value(c, f, i)}" for c, city in enumerate(cities)
            for f, fld in enumerate("FG") for i, ind in enumerate("xyz")]


def plain_cube(text: str) -> dict[tuple[str, str, str], float]:
    """The reference: csv module, stripped codes, float() of each value (missing marks -> NaN)."""
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        v = row["value"]
        out[row["city"].strip(), row["field"].strip(), row["indicator"].strip()] = (
            math.nan if v.strip() in MISSING else float(v))
    return out


number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.integers(0, 20).flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p)).map(
        lambda d: f"{d:f}"),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: f"{x:.17e}"),
    st.sampled_from([*MISSING, " NA ", " 4.5 ", "-0.0", "+3", ".5", "5."]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_values_equal_a_plain_reading(tmp_path, data):
    cities = data.draw(st.lists(st.sampled_from(["a", " b", "c ", "007", "7", "True", "Zürich", "x y"]),
                                min_size=2, max_size=5, unique_by=str.strip))
    rows = [f"{city},{fld},{ind},{data.draw(number)}" for city in cities for fld in ("F", " G") for ind in "xyz"]
    rows = data.draw(st.permutations(rows))
    text = "city,field,indicator,value\n" + "\n".join(rows) + "\n"
    ref = plain_cube(text)
    try:
        ds = load(tmp_path, rows)
    except UserError as exc:  # the random values may make an indicator constant or missing: check that
        col = {}
        for (_, f, i), v in ref.items():
            col.setdefault((f, i), []).append(v)
        present = [[v for v in vs if not math.isnan(v)] for vs in col.values()]
        assert any(len(p) == 0 or (len(p) > 1 and min(p) == max(p)) for p in present) or any(
            not any(not math.isnan(v) for (c, _, _), v in ref.items() if c == city.strip()) for city in cities), exc
        return
    cube = ds["value"].values
    assert sorted(ds.city.values.tolist()) == sorted(c.strip() for c in cities)
    for (c, f, i), v in ref.items():
        got = cube[list(ds.city.values).index(c), list(ds.field.values).index(f), list(ds.indicator.values).index(i)]
        assert (math.isnan(v) and math.isnan(got)) or np.float64(got).tobytes() == np.float64(v).tobytes(), (c, f, i)


def test_large_generated_dataset_loads_and_equals_pandas(tmp_path):
    from large_data import write_large_dataset

    meta = write_large_dataset(tmp_path / "big", cities=60, fields=4, indicators=10, groups=5, seed=3)
    ds = load_dataset(meta.parent)
    assert ds.attrs["synthetic"] == 1 and "SYNTHETIC" in ds.attrs["description"]
    ref = pd.read_csv(meta.parent / "values.csv", dtype={"city": str, "field": str, "indicator": str})
    cube = ref.set_index(["city", "field", "indicator"])["value"].unstack("indicator")
    assert ds["value"].shape == (60, 4, 10)
    np.testing.assert_array_equal(ds["value"].values.reshape(-1, 10), cube.loc[:, list(ds.indicator.values)].values)
    again = write_large_dataset(tmp_path / "again", cities=60, fields=4, indicators=10, groups=5, seed=3)
    assert (again.parent / "values.csv").read_bytes() == (meta.parent / "values.csv").read_bytes()
    shutil.rmtree(tmp_path / "again")


def test_non_numeric_value_names_the_first_bad_row(tmp_path):
    rows = full()
    rows[4] = "b,F,y,one"  # the first in file order (b is 4th row after the replacement below)
    rows[3] = " a ,G,x, two"
    assert message(tmp_path, rows) == ('t: non-numeric value " two" for city a, field G, indicator x; '
                                       "write a number or leave it empty for missing")


@pytest.mark.parametrize("token", ["true", "FALSE", "tRuE", "NAN", "null", "1,5", "0x1A", "--1"])
def test_texts_the_float_parser_would_take_or_reject_are_non_numeric(tmp_path, token):
    rows = full()
    rows[7] = f'b,F,y,"{token}"' if "," in token else f"b,F,y,{token}"
    assert message(tmp_path, rows).startswith(f't: non-numeric value "{token}" for city b, field F, indicator y;')


def test_missing_marks_with_spaces_are_missing(tmp_path):
    rows = full()
    rows[0] = "a,F,x, NA "
    rows[1] = "a,F,y,NaN"
    rows[2] = "a,F,z,"
    ds = load(tmp_path, rows)
    assert np.isnan(ds["value"].values[0, 0]).all() and not np.isnan(ds["value"].values[1:]).any()


def test_numeric_looking_codes_stay_text(tmp_path):
    ds = load(tmp_path, full(cities=("007", "7", "True")))
    assert sorted(ds.city.values.tolist()) == ["007", "7", "True"]


def test_duplicate_rows_message(tmp_path):
    rows = full()
    rows += ["b ,F,y,5", "b,F, y,6"]
    assert message(tmp_path, rows) == ("t: duplicate rows for city b, field F, indicator y (3 rows in all); "
                                       "keep one row per city/field/indicator")


def test_duplicates_among_many_distinct_codes(tmp_path):
    """Codes too many to count every cell densely: the same message."""
    n = 300
    values = pd.DataFrame({"city": [f"c{k}" for k in range(n)], "field": [f"f{k}" for k in range(n)],
                           "indicator": [f"i{k}" for k in range(n)], "value": np.arange(n, dtype=float)})
    values = pd.concat([values, values.iloc[[17]], values.iloc[[5]]], ignore_index=True)
    with pytest.raises(UserError) as exc:
        from_frames(values, META)
    assert str(exc.value) == ("t: duplicate rows for city c5, field f5, indicator i5 (4 rows in all); "
                              "keep one row per city/field/indicator")


def test_unknown_codes_messages(tmp_path):
    assert message(tmp_path, [*full(), "a,F,w,1", "a,F,v,1"]).startswith(
        't: indicator "v" in the data is not in the metadata')
    assert message(tmp_path, [*full(), "a,H,x,1"]).startswith('t: field "H" in the data is not in the metadata')


def test_first_problem_column_in_field_then_indicator_order(tmp_path):
    rows = full(value=lambda c, f, i: 5 if (f, i) in ((1, 0), (0, 2)) else 1 + c)
    assert message(tmp_path, rows) == ("t: indicator z in field F is constant (5 for every city) and cannot be "
                                       "normalised; remove the indicator or check the data")
    rows = full(value=lambda c, f, i: "" if (f, i) == (1, 1) else (9 if (f, i) == (1, 2) else 1 + c))
    assert message(tmp_path, rows) == ("t: indicator y in field G is missing for every city; remove the "
                                       "indicator or give it data")
    rows = full(value=lambda c, f, i: "" if c == 1 else 1 + c + i)
    assert message(tmp_path, rows).startswith("t: city b has no value in any field")
    rows = full(value=lambda c, f, i: "inf" if (c, f, i) == (2, 1, 2) else 1 + c + i)
    assert message(tmp_path, rows).startswith("t: the value of city c, field G, indicator z is infinite")


def test_parquet_numbers_and_text(tmp_path):
    pytest.importorskip("pyarrow")
    rows = [r.split(",") for r in full()]
    df = pd.DataFrame(rows, columns=["city", "field", "indicator", "value"])
    (tmp_path / "m.toml").write_text(tomli_w.dumps(META))
    df.assign(value=df["value"].astype(float)).to_parquet(tmp_path / "n.parquet")
    df.to_parquet(tmp_path / "t.parquet")
    a = load_dataset(tmp_path / "n.parquet", meta=tmp_path / "m.toml")
    b = load_dataset(tmp_path / "t.parquet", meta=tmp_path / "m.toml")
    np.testing.assert_array_equal(a["value"].values, b["value"].values)
    df.loc[5, "value"] = "n/a"
    df.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(UserError, match='non-numeric value "n/a" for city a, field G, indicator z'):
        load_dataset(tmp_path / "bad.parquet", meta=tmp_path / "m.toml")
