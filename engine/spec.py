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
DESIGN_KEYS = ("kind", "n", "second_order", "second_order_conf", "seed", "chunk", "sampler", "num_resamples",
               "conf_level", "confidence_samples", "sobol_targets")
SOBOL_TARGETS = ("rank", "score")  # the per-cell outputs whose Sobol' indices a Sobol run can estimate
FACTOR_KINDS = ("weight", "weight_scheme", "normalisation", "aggregation", "exclude", "imputation", "outlier")
FACTOR_KEYS = ("name", "kind", "target", "targets", "level", "within", "range", "choices", "group", "prefix",
               "probabilities", "distribution", "concentration")
SHOW_CHOICES = 6  # a factor with more choices is described as a count plus the first three
PROB_TOL = 1e-9  # probabilities must sum to 1 within this
STORE_MODES = ("full", "ranks", "summary")
AGG_LEVELS = ("group", "field", "overall")


@dataclass(frozen=True)
class Factor:
    """One uncertain input, decoded from u in [0, 1) (u = NaN decodes to the nominal).

    ``weight`` (``distribution = "uniform"``): the node's weight is multiplied by 1 - p + 2 p u (uniform on
    [1-p, 1+p]), then all weights are renormalised within their parent. ``weight`` (``"dirichlet"``): one
    column per sibling of a set drawn jointly; u -> a Gamma(``shape``) variate by its inverse CDF, and the
    set's variates divided by their sum are its shares (see :func:`engine.design.dirichlet_shares`).
    Discrete kinds: choice k for u in [P_{k-1}, P_k), P the cumulative ``probabilities`` (default equal:
    ``floor(u * len(choices))``).
    """

    name: str
    kind: str
    group: str
    node: str = ""
    p: float = 0.0
    choices: tuple[str, ...] = ()
    level: str = ""  # aggregation only: "group", "field" or "overall"; "" = every level
    nominal: str = ""
    probabilities: tuple[float, ...] = ()  # discrete: each choice's probability; () = equal
    distribution: str = "uniform"  # weight: "uniform" (range p) or "dirichlet"
    concentration: float = 0.0  # dirichlet: alpha
    shape: float = 0.0  # dirichlet: this sibling's Gamma shape alpha * K * (nominal share in its set)
    joint: str = ""  # dirichlet: the sibling set whose variates are normalised together

    @property
    def discrete(self) -> bool:
        return self.kind != "weight"

    @property
    def dirichlet(self) -> bool:
        return self.distribution == "dirichlet"

    @property
    def in_space(self) -> bool:
        """Whether the nominal is one of the values this factor samples."""
        return not self.discrete or self.nominal in self.choices

    def describe(self) -> str:
        if self.dirichlet:
            return f"Dirichlet(alpha={self.concentration:g}) share of {self.node} in {self.joint.rsplit('#', 1)[1]}"
        if self.discrete:
            shown = [c if not self.probabilities else f"{c} ({q:.3g})"
                     for c, q in zip(self.choices, self.probabilities or self.choices, strict=True)]
            if len(shown) > SHOW_CHOICES:
                return f"{len(shown)} choices: " + " | ".join(shown[:3]) + " | ..."
            return " | ".join(shown)
        return f"x U[{1 - self.p:g}, {1 + self.p:g}] on weight of {self.node}"

    def index(self, u: np.ndarray) -> np.ndarray:
        """Choice index of u: bins of width ``probabilities`` (equal by default)."""
        u = np.asarray(u)
        n = len(self.choices)
        if not self.probabilities:
            return np.minimum((u * n).astype(np.int64), n - 1)
        return np.minimum(np.searchsorted(np.cumsum(self.probabilities), u, side="right"), n - 1)

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
    confidence_samples: int = 1024  # stability rows re-evaluated for SMAA-2 confidence factors; 0 = none
    second_order_conf: bool = False  # bootstrap intervals of S2 too (about 3.7x the bootstrap work at D = 16)
    sobol_targets: tuple[str, ...] = SOBOL_TARGETS  # Sobol: the cell outputs with indices (R-bar's always)


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

    @property
    def nominal_in_space(self) -> bool:
        """Whether every discrete factor samples its nominal value (COINr-style audits may not)."""
        return all(f.in_space for f in self.factors)

    @property
    def notes(self) -> list[str]:
        """One-line notes ``validate`` and ``run`` print (a nominal outside the sampled space)."""
        outside = list({(f.kind, f.nominal): f for f in self.factors if not f.in_space}.values())
        if not outside:
            return []
        what = "; ".join(f'{f.kind} "{f.nominal}"' for f in outside)
        return [f"note: the nominal methodology is outside the sampled space ({what}: not among the choices), so "
                f"R-bar and the rank shifts from nominal measure distances to a methodology no scenario uses"]

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
    _check_weight_overlap(factors, source)
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
    s2_conf = _typed(table.get("second_order_conf", False), bool, f"{where} second_order_conf", "true or false")
    if s2_conf and not second:
        raise UserError(f"{where} second_order_conf = true needs second_order = true (S2 is only estimated then)")
    seed = _typed(table.get("seed", 0), int, f"{where} seed", "a whole number")
    if seed < 0:
        raise UserError(f"{where} seed is {seed}; use a whole number >= 0")
    chunk = _typed(table.get("chunk", 0), int, f"{where} chunk", "a whole number (0 = automatic)")
    if chunk < 0:
        raise UserError(f"{where} chunk is {chunk}; use 0 (automatic) or a positive number of scenarios")
    sampler = str(table.get("sampler", "sobol"))
    check_choice(sampler, ("sobol", "random"), f"{where} sampler")
    nres = _typed(table.get("num_resamples", 100), int, f"{where} num_resamples", "a whole number")
    conf = _typed(table.get("conf_level", 0.95), float, f"{where} conf_level", "a number in (0, 1)")
    if not 0 < conf < 1:
        raise UserError(f"{where} conf_level is {conf}; use a number between 0 and 1, e.g. 0.95")
    n_conf = _typed(table.get("confidence_samples", 1024), int, f"{where} confidence_samples",
                    "a whole number (0 = no SMAA confidence factors)")
    if n_conf < 0:
        raise UserError(f"{where} confidence_samples is {n_conf}; use 0 (none) or a positive number of scenarios")
    targets = _sobol_targets(table, kind, where)
    return Design(kind, n, second, seed, chunk, sampler, nres, conf, n_conf, s2_conf, targets)


def _sobol_targets(table: dict, kind: str, where: str) -> tuple[str, ...]:
    """``sobol_targets``: which city x field outputs (ranks, scores) get Sobol' indices, in SOBOL_TARGETS order."""
    if "sobol_targets" not in table:
        return SOBOL_TARGETS
    if kind != "sobol":
        raise UserError(f'{where} sobol_targets applies to kind = "sobol" only; remove it')
    raw = table["sobol_targets"]
    if not isinstance(raw, list) or not raw:
        raise UserError(f'{where} sobol_targets is {raw!r}; use a list of "rank" and/or "score", e.g. ["rank"]')
    for t in raw:
        check_choice(str(t), SOBOL_TARGETS, f"{where} sobol_targets")
    if len(set(raw)) < len(raw):
        raise UserError(f"{where} sobol_targets repeats a target; list each once")
    return tuple(t for t in SOBOL_TARGETS if t in raw)


def _factor(f: dict, k: int, ds: xr.Dataset, nominal: Methodology, weight_sets: dict,
            source: str) -> list[Factor]:
    where = f"{source}: factor {k + 1}" + (f' ("{f["name"]}")' if "name" in f else "")
    _keys(f, FACTOR_KEYS, where)
    if "kind" not in f:
        raise UserError(f"{where}: missing kind; one of {', '.join(FACTOR_KINDS)}")
    kind = str(f["kind"])
    check_choice(kind, FACTOR_KINDS, f"{where} kind")
    if kind == "weight":
        return _weight_factors(f, where, ds, nominal, weight_sets)
    if "probabilities" in f and "choices" not in f and kind != "exclude":
        raise UserError(f"{where}: probabilities need choices (one probability per choice)")
    for key in ("distribution", "concentration", "range"):
        if key in f:
            raise UserError(f"{where}: {key} applies to weight factors only; remove it")
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
        dup = next(c for c in canon if canon.count(c) > 1)
        raise UserError(f'{where}: choices repeat the option "{dup}"; list each once')
    probs = _probabilities(f.get("probabilities"), len(canon), where)
    # a nominal outside the choices is allowed (COINr's audits): Spec.notes says so
    return [Factor(name=name, kind=kind, group=group, choices=tuple(canon), nominal=nominal_value, level=level,
                   probabilities=probs)]


def _probabilities(raw, n: int, where: str) -> tuple[float, ...]:
    """A discrete factor's choice probabilities, checked (same length as choices, each > 0, sum 1)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) != n:
        got = f"{len(raw)} numbers" if isinstance(raw, list) else repr(raw)
        raise UserError(f"{where}: probabilities must be a list of {n} numbers, one per choice (got {got})")
    for k, q in enumerate(raw):
        if isinstance(q, bool) or not isinstance(q, int | float) or not np.isfinite(q) or q <= 0:
            raise UserError(f"{where}: probability {k + 1} is {q!r}; each must be a number > 0 "
                            f"(remove a choice rather than giving it probability 0)")
    total = float(sum(raw))
    if abs(total - 1.0) > PROB_TOL:
        raise UserError(f"{where}: probabilities sum to {total:.12g}, not 1; make them sum to 1")
    return tuple(float(q) / total for q in raw)


def _weight_factors(f: dict, where: str, ds: xr.Dataset, nominal: Methodology,
                    weight_sets: dict) -> list[Factor]:
    if "probabilities" in f or "choices" in f:
        raise UserError(f"{where}: choices and probabilities apply to discrete factors; a weight factor takes "
                        f"range = p or distribution = \"dirichlet\"")
    dist = check_choice(str(f.get("distribution", "uniform")), ("uniform", "dirichlet"), f"{where} distribution")
    if dist == "dirichlet":
        if "range" in f:
            raise UserError(f"{where}: range applies to uniform weight factors; a Dirichlet factor takes "
                            f"concentration = alpha (1 = flat on the simplex; larger = closer to nominal)")
        alpha = f.get("concentration", 1.0)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not np.isfinite(alpha) or alpha <= 0:
            raise UserError(f"{where}: concentration is {alpha!r}; use a finite number > 0 (1 = flat on the "
                            f"simplex; larger = closer to the nominal weights)")
    else:
        if "concentration" in f:
            raise UserError(f'{where}: concentration applies to distribution = "dirichlet"; remove it or add that')
        if "range" not in f:
            raise UserError(f"{where}: a weight factor needs range = p (weights vary uniformly in [1-p, 1+p]) "
                            f"or distribution = \"dirichlet\"")
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
    prefix = str(f.get("prefix", "w_"))
    if dist == "dirichlet":
        return _dirichlet_factors(f, where, ds, nominal, weight_sets, targets, prefix, key)
    parents = node_parents(ds)
    lone = [t for t in targets if list(parents.values()).count(parents[t]) < 2]
    if lone and (key in ("target", "targets") or len(lone) == len(targets)):
        raise UserError(f"{where}: {lone[0]} is the only child of its parent, so its weight is renormalised to 1 "
                        f"whatever it is and the factor cannot change anything; remove it")
    targets = [t for t in targets if t not in lone]  # a level's lone children: nothing to vary
    if key in ("target",) and "name" in f:
        names = [str(f["name"])]
    else:
        names = [f"{prefix}{t}" for t in targets]
    group = f.get("group")
    return [Factor(name=n, kind="weight", group=str(group) if group else n, node=t, p=float(p))
            for n, t in zip(names, targets, strict=True)]


def _dirichlet_factors(f: dict, where: str, ds: xr.Dataset, nominal: Methodology, weight_sets: dict,
                       targets: list[str], prefix: str, key: str) -> list[Factor]:
    """One column per selected weight; the selected children of each parent form one set drawn jointly,
    Dirichlet(alpha K w) with w their nominal shares in the set (mean w, variance w(1-w)/(alpha K + 1))."""
    alpha = float(f.get("concentration", 1.0))
    nom = nominal_weights(ds, nominal, weight_sets, where)
    parents = node_parents(ds)
    sets: dict[str, list[str]] = {}
    for t in dict.fromkeys(targets):
        sets.setdefault(parents[t], []).append(t)
    sets = {p: ts for p, ts in sets.items() if len(ts) >= 2}  # a lone child's share is always 1
    if not sets:
        raise UserError(f"{where}: a Dirichlet factor draws the weights of siblings jointly, but {key} selects "
                        f"no two children of one parent; select siblings (e.g. within = \"GROUP\" or level = ...)")
    group = str(f.get("group") or f.get("name") or f"{prefix}{f[key] if key in ('level', 'within') else 'dirichlet'}")
    out = []
    for parent, ts in sets.items():
        w = np.array([nom[t] for t in ts])
        shares = w / w.sum()
        for t, s in zip(ts, shares, strict=True):
            out.append(Factor(name=f"{prefix}{t}", kind="weight", group=group, node=t, distribution="dirichlet",
                              concentration=alpha, shape=float(alpha * len(ts) * s),
                              joint=f"{group}:{ts[0]}#{parent or 'the field score'}"))
    return out


def node_parents(ds: xr.Dataset) -> dict[str, str]:
    """Each node's parent code ("" = the field score; fields: "overall")."""
    out = {str(c): str(p) for c, p in zip(ds["indicator"].values, ds["indicator_parent"].values, strict=True)}
    out.update({str(c): str(p) for c, p in zip(ds["group"].values, ds["group_parent"].values, strict=True)})
    out.update({str(c): "overall" for c in ds["field"].values})
    return out


def nominal_weights(ds: xr.Dataset, nominal: Methodology, weight_sets: dict, where: str) -> dict[str, float]:
    """The raw nominal weight of every node: the nominal scheme's, with [nominal.weights] overrides."""
    out = {str(c): float(w) for kind in ("indicator", "group", "field")
           for c, w in zip(ds[kind].values, ds[f"{kind}_weight"].values, strict=True)}
    out.update({str(k): float(v) for k, v in nominal.weights.items()})
    scheme = nominal.weight_scheme  # as engine.design.weight_schemes builds them
    if scheme == "pca":
        raise UserError(f"{where}: a Dirichlet factor is centred on the nominal weights, which pca makes "
                        f"data-dependent; use another nominal weight_scheme")
    if scheme == "equal":
        out = dict.fromkeys(out, 1.0)
    out.update(weight_sets.get(scheme, {}))
    return out


def _check_weight_overlap(factors: list[Factor], source: str) -> None:
    """A weight drawn by a Dirichlet factor cannot also be varied by another weight factor."""
    drawn: dict[str, str] = {}
    for f in factors:
        if f.kind == "weight" and f.dirichlet:
            drawn[f.node] = f.group
    for f in factors:
        if f.kind == "weight" and f.node in drawn and (not f.dirichlet or f.group != drawn[f.node]):
            raise UserError(f'{source}: the weight of {f.node} is drawn by the Dirichlet factor "{drawn[f.node]}" '
                            f'and varied by "{f.group}" too; vary each weight with one factor')


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


