"""Scenario specs: a TOML file naming the dataset, the nominal methodology, the design and the factors.

See ``scenarios/TEMPLATE.toml`` for every key. ``Spec.from_toml`` validates the text up front and
raises a one-line ``UserError`` naming the key and the fix.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .data import embedded_names, load_dataset
from .errors import UserError, check_choice, did_you_mean
from .methods import OPTION_KINDS, Methodology, nominal_methodology, parse_option

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TOP_KEYS = ("name", "description", "dataset", "nominal", "design", "factor", "weight_sets", "store")
DESIGN_KEYS = ("kind", "n", "second_order", "seed", "chunk", "sampler", "num_resamples", "conf_level")
FACTOR_KINDS = ("weight", "weight_scheme", "normalisation", "aggregation", "exclude", "imputation", "outlier")
FACTOR_KEYS = ("name", "kind", "target", "targets", "level", "within", "range", "choices", "group", "prefix")
STORE_MODES = ("full", "ranks", "summary")
AGG_LEVELS = ("group", "field", "overall")


@dataclass(frozen=True)
class Factor:
    """One uncertain input, decoded from u in [0, 1).

    ``weight``: the node's weight is multiplied by 1 - p + 2 p u (uniform on [1-p, 1+p]), then all weights
    are renormalised within their parent. Discrete kinds: choice ``floor(u * len(choices))``.
    """

    name: str
    kind: str
    group: str
    node: str = ""
    p: float = 0.0
    choices: tuple[str, ...] = ()
    level: str = ""  # aggregation only: "group", "field" or "overall"; "" = every level
    nominal: str = ""

    @property
    def discrete(self) -> bool:
        return self.kind != "weight"

    def describe(self) -> str:
        if self.discrete:
            return " | ".join(self.choices)
        return f"x U[{1 - self.p:g}, {1 + self.p:g}] on weight of {self.node}"

    def index(self, u: np.ndarray) -> np.ndarray:
        """Equal-probability bins of u -> choice index."""
        return np.minimum((np.asarray(u) * len(self.choices)).astype(np.int64), len(self.choices) - 1)

    def multiplier(self, u: np.ndarray) -> np.ndarray:
        return 1.0 - self.p + 2.0 * self.p * np.asarray(u)


@dataclass(frozen=True)
class Design:
    kind: str = "montecarlo"
    n: int = 1024
    second_order: bool = False
    seed: int = 0
    chunk: int = 0
    sampler: str = "sobol"
    num_resamples: int = 100
    conf_level: float = 0.95


@dataclass
class Spec:
    """A validated scenario spec."""

    text: str
    source: str
    name: str
    dataset_ref: str
    ds: xr.Dataset
    nominal: Methodology
    design: Design
    factors: list[Factor]
    weight_sets: dict[str, dict[str, float]] = field(default_factory=dict)
    store: str = "full"
    description: str = ""

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def groups(self) -> list[str]:
        """Distinct factor group labels in first-seen order."""
        return list(dict.fromkeys(f.group for f in self.factors))

    @property
    def grouped(self) -> bool:
        return len(self.groups) < len(self.factors)

    @property
    def block_size(self) -> int:
        d = len(self.groups)
        return (2 * d + 2 if self.design.second_order else d + 2) if self.design.kind == "sobol" else 1

    @property
    def n_scenarios(self) -> int:
        return self.design.n * self.block_size

    def choices_of(self, kind: str) -> list[str]:
        """Every choice of this spec's factors of one kind (e.g. every normalisation sampled)."""
        return [c for f in self.factors if f.kind == kind for c in f.choices]

    @classmethod
    def from_toml(cls, path: str | Path) -> Spec:
        path = resolve_spec_path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is accepted
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; save the spec as UTF-8") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot be read ({exc.strerror}); check the path and permissions") from None
        return cls.from_text(text, source=str(path), base=path.parent)

    @classmethod
    def from_text(cls, text: str, source: str = "<spec>", base: Path | None = None,
                  ds: xr.Dataset | None = None) -> Spec:
        """Parse and validate spec text; ``ds`` replaces loading its [dataset] (e.g. the copy in a store).
        That every preparation x aggregation is computable is checked one floor down, where the kernel is
        known: :func:`engine.validate.check`."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{source}: malformed TOML ({exc}); fix the syntax there") from None
        return _build(raw, text, source, base or Path("."), ds)


def resolve_spec_path(path: str | Path) -> Path:
    """A spec path, or the name of a shipped spec in ``scenarios/`` (e.g. ``gtii-2019``)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    shipped = SCENARIOS / f"{path}.toml"
    if shipped.is_file():
        return shipped
    names = [q.stem for q in SCENARIOS.glob("*.toml")] if SCENARIOS.is_dir() else []
    raise UserError(f'spec "{path}" not found{did_you_mean(str(path), names)}; give a TOML path or one of: '
                    f"{', '.join(sorted(names)) or '(no shipped specs)'}")


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Prefix a UserError raised inside with ``where`` (the spec file, the factor) unless it names it."""
    try:
        yield
    except UserError as exc:
        if where.split(": ")[0] in str(exc):
            raise
        raise UserError(f"{where}: {exc}") from None


def _keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise UserError(f'{where}: unknown key "{key}"{did_you_mean(key, allowed)}; '
                            f"allowed: {', '.join(allowed)}")


def _typed(value, types, where: str, what: str):
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise UserError(f"{where} must be {what} (got {value!r})")
    return value


def _as_tuple(t) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def _build(raw: dict, text: str, source: str, base: Path, ds: xr.Dataset | None = None) -> Spec:
    _keys(raw, TOP_KEYS, source)
    if ds is None:
        ds, ref = _dataset(raw.get("dataset"), source, base)
    else:
        ref = str(ds.attrs.get("name", "dataset"))
    nominal_table = _typed(raw.get("nominal", {}), dict, f"{source}: [nominal]", "a table")
    with _at(source):
        nominal = nominal_methodology(ds, nominal_table)
    weight_sets = _weight_sets(raw.get("weight_sets", {}), ds, source)
    _check_weights(nominal.weights, ds, f"{source}: [nominal.weights]")
    design = _design(_typed(raw.get("design", {}), dict, f"{source}: [design]", "a table"), source)
    factors_raw = raw.get("factor", [])
    if not isinstance(factors_raw, list) or not factors_raw:
        raise UserError(f"{source}: no [[factor]] entries; add at least one uncertain factor")
    factors: list[Factor] = []
    for k, f in enumerate(factors_raw):
        factors.extend(_factor(_typed(f, dict, f"{source}: factor {k + 1}", "a table"), k, ds, nominal,
                               weight_sets, source))
    names = [f.name for f in factors]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f'{source}: factor name "{dup[0]}" is used twice; give each factor a unique name')
    store = raw.get("store", "full")
    check_choice(str(store), STORE_MODES, f"{source}: store mode")
    spec = Spec(text=text, source=source, name=str(raw.get("name", Path(source).stem)), dataset_ref=ref, ds=ds,
                nominal=nominal, design=design, factors=factors, weight_sets=weight_sets, store=str(store),
                description=str(raw.get("description", "")))
    if design.kind == "sobol" and len(spec.groups) < 2:
        raise UserError(f"{source}: a Sobol design needs at least 2 factors (or factor groups); "
                        f"add factors or use kind = \"montecarlo\"")
    _check_levels(spec)
    return spec


def _dataset(table, source: str, base: Path) -> tuple[xr.Dataset, str]:
    if table is None:
        raise UserError(f'{source}: missing [dataset]; add name = "gtii-2019" (embedded) or path = "FILE"')
    if isinstance(table, str):
        table = {"name": table}
    _typed(table, dict, f"{source}: [dataset]", "a table with name or path")
    _keys(table, ("name", "path", "meta"), f"{source}: [dataset]")
    if "name" in table:
        name = str(table["name"])
        if name not in embedded_names():
            raise UserError(f'{source}: [dataset] name "{name}" is not an embedded dataset'
                            f"{did_you_mean(name, embedded_names())}; choose one of: {', '.join(embedded_names())}"
                            f" or give path = ...")
        return load_dataset(name), name
    if "path" not in table:
        raise UserError(f"{source}: [dataset] needs name = ... (embedded) or path = ... (a file)")
    path = (base / str(table["path"])).resolve()
    meta = (base / str(table["meta"])).resolve() if "meta" in table else None
    return load_dataset(path, meta), str(path)


def _weight_sets(table, ds: xr.Dataset, source: str) -> dict[str, dict[str, float]]:
    _typed(table, dict, f"{source}: [weight_sets]", "a table of named weight sets")
    out = {}
    for name, weights in table.items():
        if name in ("nominal", "equal", "pca"):
            raise UserError(f'{source}: weight set name "{name}" is built in; choose another name')
        _typed(weights, dict, f"{source}: [weight_sets.{name}]", "a table of node = weight")
        _check_weights(weights, ds, f"{source}: [weight_sets.{name}]")
        out[name] = {str(k): float(v) for k, v in weights.items()}
    return out


def _check_weights(weights: dict, ds: xr.Dataset, where: str) -> None:
    nodes = [*map(str, ds["indicator"].values), *map(str, ds["group"].values), *map(str, ds["field"].values)]
    for node, w in weights.items():
        if node not in nodes:
            raise UserError(f'{where}: "{node}" is not an indicator, group or field{did_you_mean(node, nodes)}')
        if isinstance(w, bool) or not isinstance(w, int | float) or not np.isfinite(w) or w <= 0:
            raise UserError(f"{where}: weight of {node} is {w!r}; weights must be positive numbers")


def _design(table: dict, source: str) -> Design:
    where = f"{source}: [design]"
    _keys(table, DESIGN_KEYS, where)
    kind = str(table.get("kind", "montecarlo"))
    check_choice(kind, ("montecarlo", "sobol"), f"{where} kind")
    if "n" not in table:
        raise UserError(f"{where}: missing n (Monte Carlo: number of scenarios; Sobol: base samples, a power of 2)")
    n = _typed(table["n"], int, f"{where} n", "a whole number")
    if n < 1:
        raise UserError(f"{where} n is {n}; it must be at least 1")
    if kind == "sobol" and (n < 4 or n & (n - 1)):
        lo = 1 << max(2, (n.bit_length() - 1))
        raise UserError(f"{where} n = {n}: a Sobol design needs a power of two >= 4 base samples "
                        f"(e.g. {lo} or {lo * 2})")
    second = _typed(table.get("second_order", False), bool, f"{where} second_order", "true or false")
    seed = _typed(table.get("seed", 0), int, f"{where} seed", "a whole number")
    chunk = _typed(table.get("chunk", 0), int, f"{where} chunk", "a whole number (0 = automatic)")
    if chunk < 0:
        raise UserError(f"{where} chunk is {chunk}; use 0 (automatic) or a positive number of scenarios")
    sampler = str(table.get("sampler", "sobol"))
    check_choice(sampler, ("sobol", "random"), f"{where} sampler")
    nres = _typed(table.get("num_resamples", 100), int, f"{where} num_resamples", "a whole number")
    conf = _typed(table.get("conf_level", 0.95), float, f"{where} conf_level", "a number in (0, 1)")
    if not 0 < conf < 1:
        raise UserError(f"{where} conf_level is {conf}; use a number between 0 and 1, e.g. 0.95")
    return Design(kind, n, second, seed, chunk, sampler, nres, conf)


def _factor(f: dict, k: int, ds: xr.Dataset, nominal: Methodology, weight_sets: dict,
            source: str) -> list[Factor]:
    where = f"{source}: factor {k + 1}" + (f' ("{f["name"]}")' if "name" in f else "")
    _keys(f, FACTOR_KEYS, where)
    if "kind" not in f:
        raise UserError(f"{where}: missing kind; one of {', '.join(FACTOR_KINDS)}")
    kind = str(f["kind"])
    check_choice(kind, FACTOR_KINDS, f"{where} kind")
    if kind == "weight":
        return _weight_factors(f, where, ds)
    name = str(f.get("name", kind))
    group = str(f.get("group", name))
    choices = f.get("choices")
    if choices is None and kind == "exclude":
        choices = ["none", *map(str, ds["indicator"].values)]
    if not isinstance(choices, list) or len(choices) < 2:
        raise UserError(f"{where}: choices must be a list of at least two options")
    choices = [str(c) for c in choices]
    level = ""
    if "level" in f:
        if kind != "aggregation":
            raise UserError(f"{where}: level applies to weight and aggregation factors only; remove it")
        level = check_choice(str(f["level"]), AGG_LEVELS, f"{where} level")
    if kind in OPTION_KINDS:
        with _at(where):
            canon = [str(parse_option(kind, c)) for c in choices]
        nominal_value = str(getattr(nominal, kind))
    elif kind == "weight_scheme":
        known = ["nominal", "equal", "pca", *weight_sets]
        canon = [check_choice(c, known, f"{where} weight scheme") for c in choices]
        nominal_value = nominal.weight_scheme
    else:  # exclude
        known = ["none", *map(str, ds["indicator"].values)]
        canon = [check_choice(c, known, f"{where} excluded indicator") for c in choices]
        nominal_value = nominal.exclude
        _check_exclusions(canon, ds, where)
    if len(set(canon)) < len(canon):
        raise UserError(f"{where}: choices repeat an option ({', '.join(canon)}); list each once")
    if nominal_value not in canon:
        raise UserError(f'{where}: the nominal {kind} "{nominal_value}" is not among the choices '
                        f"({', '.join(canon)}); add it to choices or change [nominal]")
    return [Factor(name=name, kind=kind, group=group, choices=tuple(canon), nominal=nominal_value, level=level)]


def _weight_factors(f: dict, where: str, ds: xr.Dataset) -> list[Factor]:
    if "range" not in f:
        raise UserError(f"{where}: a weight factor needs range = p (weights vary uniformly in [1-p, 1+p])")
    p = f["range"]
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1:
        raise UserError(f"{where}: range is {p!r}; use a number between 0 and 1 (e.g. 0.25 for +-25 %)")
    ind = [str(c) for c in ds["indicator"].values]
    grp = [str(c) for c in ds["group"].values]
    fld = [str(c) for c in ds["field"].values]
    nodes = ind + grp + fld
    given = [key for key in ("target", "targets", "level", "within") if key in f]
    if len(given) != 1:
        raise UserError(f"{where}: a weight factor needs exactly one of target, targets, level, within")
    key = given[0]
    if key == "target":
        targets = [str(f["target"])]
    elif key == "targets":
        targets = [str(t) for t in _typed(f["targets"], list, f"{where} targets", "a list of node codes")]
    elif key == "level":
        level = check_choice(str(f["level"]), ("indicator", "group", "field"), f"{where} level")
        targets = {"indicator": ind, "group": grp, "field": fld}[level]
    else:
        parent = str(f["within"])
        if parent not in grp:
            raise UserError(f'{where}: within = "{parent}" is not a group{did_you_mean(parent, grp)}')
        targets = [c for c, p_ in zip(ind + grp, [*ds["indicator_parent"].values, *ds["group_parent"].values],
                                      strict=True) if str(p_) == parent]
    for t in targets:
        if t not in nodes:
            raise UserError(f'{where}: "{t}" is not an indicator, group or field{did_you_mean(t, nodes)}')
    if not targets:
        raise UserError(f"{where}: selects no weights; check {key}")
    if key in ("target",) and "name" in f:
        names = [str(f["name"])]
    else:
        prefix = str(f.get("prefix", "w_"))
        names = [f"{prefix}{t}" for t in targets]
    group = f.get("group")
    return [Factor(name=n, kind="weight", group=str(group) if group else n, node=t, p=float(p))
            for n, t in zip(names, targets, strict=True)]


def _check_exclusions(choices: list[str], ds: xr.Dataset, where: str) -> None:
    parents = [str(p) for p in ds["indicator_parent"].values]
    inds = [str(c) for c in ds["indicator"].values]
    for c in choices:
        if c != "none":
            siblings = parents.count(parents[inds.index(c)])
            if siblings < 2:
                raise UserError(f"{where}: excluding {c} would leave its group empty; remove it from choices")


def _check_levels(spec: Spec) -> None:
    levels = [f.level or "*" for f in spec.factors if f.kind == "aggregation"]
    if len(levels) > 1 and ("*" in levels or len(set(levels)) < len(levels)):
        raise UserError(f"{spec.source}: aggregation factors overlap ({', '.join(levels)}); give each its own "
                        f"level (group, field or overall), or use one factor for every level")


