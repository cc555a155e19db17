"""Everything checked before a run touches the disk, in one place that ``rankstab validate`` and
``rankstab run`` (and :func:`engine.run`) share, so that what ``validate`` accepts always runs; and the
human-readable summary ``validate`` prints."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from .data import data_hash
from .design import auto_chunk, check_combinations, scheme_order
from .errors import UserError, check_output_folder, did_you_mean
from .spec import Spec

RESULTS = Path("results")
#: What rankstab adds to a store's name for its hidden siblings: ``.NAME.new-<12 hex>`` is the longest
#: (the lock file ``.NAME.rankstab-lock`` is shorter).
SIBLING_EXTRA = len(".") + len(".new-") + 12


def default_out(spec: Spec) -> Path:
    """Where a spec's store goes without --out: ``results/<name>.zarr``."""
    return RESULTS / f"{spec.name}.zarr"

#: The widest "range / choices" cell of ``validate``'s factor table.
CHOICES_WIDTH = 60


def check(spec: Spec) -> Spec:
    """A parsed spec, checked as a run needs it: the rules below, and every preparation x aggregation it
    can sample computable on its data (each evaluated once). A spec already checked, and not changed
    since, is not checked again (``rankstab run`` checks before its cluster starts, then sweeps it: at
    2000 cities the combinations take a second)."""
    key = _fingerprint(spec)
    if getattr(spec, "_checked", None) != key:
        check_rules(spec)
        check_combinations(spec)
        spec._checked = key  # type: ignore[attr-defined]
    return spec


def _fingerprint(spec: Spec) -> tuple:
    """What the checks depend on: the spec's fields and the content of its data."""
    return (spec.text, spec.source, spec.name, spec.store, data_hash(spec.ds), repr(spec.nominal), repr(spec.design),
            repr(spec.factors), repr(spec.weight_sets))


def check_rules(spec: Spec) -> None:
    """What the spec parser cannot see alone: the design's options together, the nominal choices against
    the spec's own weight sets and indicators, and a name usable as a file name."""
    src, d = spec.source, spec.design
    if d.num_resamples < 1:
        raise UserError(f"{src}: [design] num_resamples is {d.num_resamples}; the bootstrap needs at least 1 "
                        f"resample (100 is usual)")
    if d.second_order and d.kind != "sobol":
        raise UserError(f'{src}: [design] second_order = true needs kind = "sobol" (a Monte Carlo design has no '
                        f'second-order indices); remove second_order or use kind = "sobol"')
    schemes = scheme_order(spec)
    if spec.nominal.weight_scheme not in schemes:
        w = spec.nominal.weight_scheme
        raise UserError(f'{src}: [nominal] weight_scheme "{w}" is unknown{did_you_mean(w, schemes)}; choose one '
                        f"of: {', '.join(schemes)} (named sets go in [weight_sets])")
    indicators = ["none", *map(str, spec.ds["indicator"].values)]
    if spec.nominal.exclude not in indicators:
        x = spec.nominal.exclude
        raise UserError(f'{src}: [nominal] exclude "{x}" is not an indicator{did_you_mean(x, indicators)}; use '
                        f'"none" or an indicator code')
    name = spec.name
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0") or name != name.strip():
        raise UserError(f'{src}: name = "{name}" cannot name a store (results/NAME.zarr); use letters, digits, '
                        f"- and _ without slashes or surrounding spaces")


def check_run_options(spec: Spec, *, until_ci: float | None = None, max_doublings: int = 3,
                      workers: int | None = None) -> None:
    """The numbers on a ``run`` command line, against each other and the spec."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"--workers must be a whole number of at least 1, not {workers!r}")
    if until_ci is not None:
        if not math.isfinite(until_ci) or until_ci <= 0:
            raise UserError(f"--until-ci {until_ci:g}: give the target confidence half-width of ST, a positive "
                            f"number such as 0.05")
        if spec.design.kind != "sobol":
            raise UserError('--until-ci needs a Sobol design (kind = "sobol")')
    if isinstance(max_doublings, bool) or not isinstance(max_doublings, int) or max_doublings < 0:
        raise UserError(f"--max-doublings must be a whole number of at least 0, not {max_doublings!r}")


def check_target(spec: Spec, path: str | Path, flag: str | None = "--out", new: bool = True) -> None:
    """A store path a run can use, checked without writing anything: a .zarr name (or an existing folder),
    in a writable folder, short enough for the file system with rankstab's hidden siblings, and (for a
    ``new`` store) room for it. ``flag`` is the option that named the path (None: the spec's default)."""
    path = Path(path).expanduser()
    fix = f"choose another {flag}" if flag else f"change name = in {spec.source} or give --out"
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a store; {fix}")
    if path.suffix != ".zarr" and not path.is_dir():
        raise UserError(f"{path}: a store path ends in .zarr (e.g. {path.with_suffix('.zarr')}; the HTML report "
                        f"is written next to it); {fix}")
    check_output_folder(path, flag or "--out", create=(RESULTS.name,))
    folder = existing_folder(path)
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    size = len(os.fsencode(path.name))
    if size + SIBLING_EXTRA > name_max and not flag:
        short = spec.name if len(spec.name) <= 40 else spec.name[:37] + "..."
        raise UserError(f'{spec.source}: name = "{short}" ({len(spec.name)} characters) is too long for a store '
                        f"name on this file system (at most {name_max - SIBLING_EXTRA - len('.zarr')} bytes, as rankstab "
                        f"adds .zarr and its lock and staging files); shorten it or give --out")
    if size + SIBLING_EXTRA > name_max:
        shown = path.parent / (path.name[:40] + "...") if len(path.name) > 43 else path
        raise UserError(f"{shown}: the store name is {size} bytes; this file system allows {name_max} and "
                        f"rankstab adds {SIBLING_EXTRA} for its lock and staging files, so at most "
                        f"{name_max - SIBLING_EXTRA}; {fix}")
    if new:
        check_space(spec, path, flag)


def existing_folder(path: Path) -> Path:
    """The nearest existing folder at or above ``path``'s parent."""
    folder = Path(path).expanduser().absolute().parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_space(spec: Spec, path: Path, flag: str | None = "--out") -> None:
    """Refuse a store larger (uncompressed) than the free space where it goes, saying what would fit."""
    need = store_bytes(spec)
    folder = existing_folder(path)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # no statistics (some network file systems): nothing to compare
    if need <= free:
        return
    per = need / spec.n_scenarios  # bytes per scenario
    if spec.design.kind == "sobol":
        n = int(free // (per * spec.block_size))
        n = 1 << (n.bit_length() - 1) if n >= 4 else 0
        fits = f"n = {n:,} base samples fit" if n else "not even n = 4 base samples fit"
    else:
        n = int(free // per)
        fits = f"n = {n:,} scenarios fit" if n else "not even one scenario fits"
    raise UserError(f"{path}: the store needs about {_size(need)} (uncompressed) but {folder} has {_size(free)} "
                    f"free; at most {fits} ([design] n in {spec.source}); lower n, use store = \"ranks\" or "
                    f"\"summary\", or choose another {flag or '--out'}")


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


def describe(spec: Spec, out: str | Path | None = None) -> str:
    ds = spec.ds
    des = spec.design
    rows = [("name", "kind", "range / choices", "nominal", "group")]
    for f in spec.factors:
        nominal = (f.nominal if f.in_space else f"{f.nominal} (not sampled)") if f.discrete else \
            "mean" if f.dirichlet else "x1"
        rows.append((f.name, f.kind, choices_text(f), nominal, f.group))
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
        f"store: {spec.store}, about {_size(store_bytes(spec))} uncompressed" + _free(out),
        *spec.notes,
    ])


def _free(out: str | Path | None) -> str:
    if out is None:
        return ""
    folder = existing_folder(Path(out))
    try:
        return f"; {_size(shutil.disk_usage(folder).free)} free in {folder}"
    except OSError:
        return ""
