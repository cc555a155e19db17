"""Everything checked before a run touches the disk, in one place that ``rankstab validate`` and
``rankstab run`` (and :func:`engine.run`) share, so that what ``validate`` accepts always runs; and the
human-readable summary ``validate`` prints."""

from __future__ import annotations

from pathlib import Path

from .design import auto_chunk, check_combinations
from .spec import Spec

#: The widest "range / choices" cell of ``validate``'s factor table.
CHOICES_WIDTH = 60


def check(spec: Spec) -> Spec:
    """A parsed spec, checked as a run needs it: every preparation x aggregation it can sample is
    computable on its data (each evaluated once)."""
    check_combinations(spec)
    return spec


def load(spec: Spec | str | Path) -> Spec:
    """A spec (a path, a shipped spec's name, or a parsed :class:`Spec`), fully checked."""
    return check(spec if isinstance(spec, Spec) else Spec.from_toml(spec))


def store_bytes(spec: Spec) -> int:
    """Uncompressed size of the per-scenario arrays the run will write."""
    n, c, f = spec.n_scenarios, spec.ds.sizes["city"], spec.ds.sizes["field"] + 1
    nodes = spec.ds.sizes["indicator"] + spec.ds.sizes["group"] + spec.ds.sizes["field"]
    per = {"full": c * f * 6, "ranks": c * f * 2, "summary": 0}[spec.store]
    return n * (per + 8 * len(spec.factors) + 8 * nodes + 6 * 16)


def _size(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if b < 1000:
            return f"{b:.1f} {unit}"
        b /= 1000
    return f"{b:.1f} PB"


def choices_text(factor, width: int = CHOICES_WIDTH) -> str:
    """A factor's range or choices; many choices as their count and the first few (a 101-choice factor
    would otherwise fill a 1,000-character line)."""
    text = factor.describe()
    if not factor.discrete or len(text) <= width:
        return text
    shown: list[str] = []
    for c in factor.choices:
        if len(" | ".join([*shown, c])) > width - 20:
            break
        shown.append(c)
    return f"{len(factor.choices)} choices: {' | '.join(shown)} | ..."


def describe(spec: Spec) -> str:
    ds = spec.ds
    des = spec.design
    rows = [("name", "kind", "range / choices", "nominal", "group")]
    for f in spec.factors:
        rows.append((f.name, f.kind, choices_text(f), f.nominal if f.discrete else "x1", f.group))
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    table = "\n".join(("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip() for r in rows)
    synthetic = " (SYNTHETIC demo data)" if ds.attrs.get("synthetic") else ""
    size = "Sobol (Saltelli)" if des.kind == "sobol" else f"Monte Carlo ({des.sampler})"
    n_line = (f"N = {des.n} base samples x {spec.block_size} rows per block"
              f"{' (second order)' if des.second_order else ''}" if des.kind == "sobol" else f"n = {des.n}")
    chunk = auto_chunk(spec, ds.sizes["city"], ds.sizes["field"])
    return "\n".join([
        f"spec {spec.name}: OK ({spec.source})",
        f"dataset {spec.dataset_ref}{synthetic}: {ds.sizes['city']} cities x {ds.sizes['field']} fields x "
        f"{ds.sizes['indicator']} indicators, {ds.sizes['group']} groups",
        "nominal: " + ", ".join(f"{k}={v}" for k, v in spec.nominal.as_mapping().items()),
        f"factors ({len(spec.factors)}, {len(spec.groups)} groups):",
        table,
        f"design: {size}, {n_line}, seed {des.seed}",
        f"scenarios: {spec.n_scenarios:,} in chunks of {chunk:,} ({-(-spec.n_scenarios // chunk)} tasks)",
        f"store: {spec.store}, about {_size(store_bytes(spec))} uncompressed",
    ])
