"""The report's words: numbers formatted for reading, and the written summary generated from them.

:func:`summary` returns its sentences as HTML (``Markup``: city and factor names escaped, the key names in
bold); the template puts them in a list, most informative first.
"""

from __future__ import annotations

import html

import numpy as np
from markupsafe import Markup

from .context import Context

# ------------------------------------------------------------------------------------------ numbers


def rank_text(x: float) -> str:
    """A rank statistic: integer when it is one, else one decimal."""
    if not np.isfinite(x):
        return "–"
    return f"{round(x):d}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def pct(p: float) -> str:
    """A probability as a percentage: '37 %', '<1 %', '>99 %'."""
    v = 100 * p
    if 99.5 <= v < 100:
        return ">99 %"
    if 0 < v < 0.5:
        return "<1 %"
    return f"{v:.0f} %"


def coverage(prob: np.ndarray, lo: float, hi: float) -> tuple[int, int, float]:
    """The integer rank range [floor(lo), ceil(hi)] and the probability the rank falls in it."""
    a, b = int(np.floor(lo)), int(np.ceil(hi))
    return a, b, float(prob[a - 1:b].sum())


def rank_range(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}–{b}"


def value_range(a: float, b: float) -> str:
    return f"{a:.2f}" if f"{a:.2f}" == f"{b:.2f}" else f"{a:.2f}–{b:.2f}"


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------------------ summary


def summary(ctx: Context) -> list[Markup]:
    """Sentences (HTML) generated from the numbers, most informative first."""
    a, s = ctx.a, []
    ov = a.sel(field="overall")
    order = ctx.order("overall")
    cities = a["city"].values
    prob = ctx.rank_prob("overall")
    width = ov["rank_interval_width"].values
    nom = ov["nominal_rank"].values.astype(int)
    med = ov["rank_median"].values
    q05, q95 = ov["rank_q05"].values, ov["rank_q95"].values
    rank_sobol = ctx.has_rank_sobol
    const = ctx.constant("overall") if rank_sobol else np.zeros(len(cities), bool)
    near = ctx.nearly_constant("overall") if rank_sobol else np.zeros(len(cities), bool)
    unrel = ctx.unreliable("overall") if rank_sobol else None
    names = ctx.factor_names()

    def p_nom(i) -> str:
        return pct(prob[i][nom[i] - 1]) if nom[i] > 0 else "–"

    def driver(i) -> str:
        """'; the choice of X explains 60 % of the variance of its rank alone, 75 % with interactions'"""
        if not rank_sobol or const[i]:
            return ""
        st, s1 = ctx.sens("ST", "overall")[i], ctx.sens("S1", "overall")[i]
        k = int(np.nanargmax(st))
        if near[i] or unrel[i, k]:
            return "; its Sobol indices are unreliable (the rank moves in very few scenarios)"
        return (f"; {esc(ctx.factor_phrase(names[k]))} explains {pct(max(s1[k], 0))} of the variance of its rank "
                f"alone, {pct(min(max(st[k], 0), 1))} with interactions")

    def within(i) -> str:
        lo, hi, cov = coverage(prob[i], q05[i], q95[i])
        if lo == hi:
            return f"{lo} in every scenario" if cov >= 1 else f"{lo} in {pct(cov)} of scenarios"
        return f"within {rank_range(lo, hi)} in {pct(cov)} of scenarios"

    # the leaders
    parts = []
    for j, i in enumerate(order[:min(3, len(order))]):
        nm = esc(ctx.name(cities[i]))
        if j == 0:
            w = within(i)
            parts.append(f"<b>{possessive(nm)}</b> overall rank (nominal {nom[i]}) is {w}"
                         + ("" if w.startswith(f"{nom[i]} in") else f", and {nom[i]} in {p_nom(i)}"))
        else:
            parts.append(f"{possessive(nm)} (nominal {nom[i]}) {within(i)}")
    if parts:
        s.append("; ".join(parts) + ".")
    # most and least robust
    key = np.lexsort((ov["rank_abs_shift"].values, width))
    robust = [i for i in key if np.isfinite(width[i])][:3]
    if robust:
        txt = ", ".join(f"{possessive(esc(ctx.name(cities[i])))} (nominal {nom[i]}; {within(i)})" for i in robust)
        s.append(f"The most robust overall ranks are {txt}.")
    least = [i for i in key[::-1] if np.isfinite(width[i])][:2]
    if least:
        bits = [f"<b>{possessive(esc(ctx.name(cities[i])))}</b> (nominal {nom[i]}, median {rank_text(med[i])}, "
                f"{within(i)}{driver(i)})" for i in least]
        s.append("The least robust are " + " and ".join(bits) + ".")
    # where the nominal rank is not the typical one
    shift = np.abs(med - nom)
    off = [i for i in np.argsort(-shift, kind="stable") if shift[i] >= 1 and nom[i] > 0]
    if off:
        ex = ", ".join(f"{esc(ctx.name(cities[i]))} (nominal {nom[i]}, median {rank_text(med[i])})" for i in off[:3])
        s.append(f"For {len(off)} of {len(cities)} cities the nominal overall rank differs from the median "
                 f"scenario rank by at least one place, most for {ex}.")
    # rank shift and correlation
    rb = (f"A scenario moves a city's overall rank by R̄s = {float(ov['rbar_mean']):.2f} places on average "
          f"(5–95 % over scenarios: {float(ov['rbar_q05']):.2f}–{float(ov['rbar_q95']):.2f})")
    if "spearman_mean" in ov:
        rb += (f"; the scenario rankings correlate with the nominal one at Spearman ρ = "
               f"{float(ov['spearman_mean']):.3f} (Kendall τ = {float(ov['kendall_mean']):.3f}) on average")
    s.append(rb + ".")
    if str(ctx.attrs.get("nominal_in_space", 1)) == "0":
        s.append(_nominal_outside(ctx))
    if "confidence_factor" in a:
        s.append(_smaa_sentence(ctx))
    flds = [f for f in ctx.fields if f != "overall"]
    if len(flds) > 1:
        rbf = a["rbar_mean"].sel(field=flds).values
        hi, lo = int(np.argmax(rbf)), int(np.argmin(rbf))
        s.append(f"Field rankings are least stable in {esc(ctx.field_label[flds[hi]])} (R̄s = {rbf[hi]:.2f}) and "
                 f"most stable in {esc(ctx.field_label[flds[lo]])} (R̄s = {rbf[lo]:.2f}).")
    if ctx.sobol:
        s.append(_rbar_drivers(ctx, ov, names))
    if rank_sobol:
        s.extend(_rank_drivers(ctx, order, const, near, names))
    if ctx.given:
        s.extend(_given_drivers(ctx, order))
    return [Markup(x) for x in s]


def _nominal_outside(ctx: Context) -> str:
    """The sentence for a nominal methodology outside the sampled space (COINr's audits)."""
    f = ctx.factors
    outside = []
    if f and "factor" in f.dims:
        for j in range(f.sizes["factor"]):
            kind, nominal = str(f["factor_kind"].values[j]), str(f["factor_nominal"].values[j])
            if kind != "weight" and nominal not in str(f["factor_choices"].values[j]).split("|"):
                outside.append(f"{esc(kind)} “{esc(nominal)}”")
    what = f" ({and_list(list(dict.fromkeys(outside)))} not among the choices)" if outside else ""
    return (f"<b>The nominal methodology is outside the sampled space</b>{what}: no scenario uses it, so R̄s and "
            "every shift from the nominal rank measure the distance to a methodology the sample does not "
            "contain, not only the spread of the scenarios.")


def _smaa_sentence(ctx: Context) -> str:
    """SMAA-2: who ranks first overall, how often, and how confidently with its central weights."""
    ov = ctx.a.sel(field="overall")
    first = ctx.rank_prob("overall")[:, 0]
    conf = ov["confidence_factor"].values
    lead = [i for i in np.argsort(-first, kind="stable") if first[i] > 0][:3]
    if not lead:
        return "SMAA-2: no city ranks first overall in any scenario."
    bits = [f"{esc(ctx.name(ctx.a['city'].values[i]))} in {pct(first[i])} (confidence factor "
            f"{pct(conf[i]) if np.isfinite(conf[i]) else '–'})" for i in lead]
    n = int(ctx.a.attrs.get("confidence_samples", 0))
    return ("SMAA-2 (Lahdelma &amp; Salminen 2001): the overall first rank goes to " + and_list(bits)
            + " of the scenarios; the confidence factor is the probability of still ranking first with the city's "
            f"central weights (its mean weights where it ranks first) and the other choices as sampled, over {n:,} "
            "scenarios.")


def _rbar_drivers(ctx: Context, ov, names: list[str]) -> str:
    """What drives the mean rank shift R̄s (Sobol runs)."""
    st, s1 = ov["ST_rbar"].values, ov["S1_rbar"].values
    stc = ov["ST_conf_rbar"].values
    k = int(np.nanargmax(st))
    txt = (f"<b>{capitalise(esc(ctx.factor_phrase(names[k])))}</b> drives the mean rank shift R̄s most: it explains "
           f"{pct(max(s1[k], 0))} of its variance alone and {pct(min(st[k], 1))} (±{100 * stc[k]:.0f} points) "
           f"with interactions")
    rest = [j for j in np.argsort(-st) if j != k][:2]
    if rest:
        txt += "; next come " + " and ".join(f"{esc(names[j])} (ST {st[j]:.2f})" for j in rest)
    total = float(np.nansum(np.clip(s1, 0, None)))
    txt += f". The first-order indices sum to {total:.2f}"
    txt += (f", so interactions between the choices account for about {pct(1 - total)} of it." if total < 0.95
            else ": the choices act almost additively.")
    return txt


def _rank_drivers(ctx: Context, order: np.ndarray, const: np.ndarray, near: np.ndarray,
                  names: list[str]) -> list[str]:
    """What drives the ranks of the top cities, which never move, and which indices are unreliable."""
    s = []
    cities = ctx.a["city"].values
    top = order[:min(10, len(order))]
    st = ctx.sens("ST", "overall")
    moving = [i for i in top if not const[i] and not near[i]]
    if moving:
        drivers = [int(np.nanargmax(st[i])) for i in moving]
        vals, counts = np.unique(drivers, return_counts=True)
        best = int(vals[np.argmax(counts)])
        vs = [min(st[i][best], 1) for i, d in zip(moving, drivers, strict=True) if d == best]
        who = (f"all {len(moving)}" if counts.max() == len(moving) else f"{int(counts.max())} of the {len(moving)}")
        whose = " whose rank really moves" if len(moving) < len(top) else ""
        s.append(f"For {who} top-{len(top)} cities{whose}, {esc(ctx.factor_phrase(names[best]))} has the largest "
                 f"total effect on the rank (ST {value_range(min(vs), max(vs))}).")
    fixed = [i for i in top if const[i]]
    if fixed:
        s.append(and_list([esc(ctx.name(cities[i])) for i in fixed])
                 + (" never moves" if len(fixed) == 1 else " never move") + " in the overall ranking.")
    n_near = sum(int(ctx.nearly_constant(f).sum()) for f in ctx.fields)
    wide = [ctx.sens("ST_conf", f)[ctx.unreliable(f).any(axis=1)] for f in ctx.fields]
    n_wide = sum(len(w) for w in wide)
    if n_wide:
        widest = max(float(np.nanmax(w)) for w in wide if len(w))
        who = ("it almost never moves" if n_wide == 1 else "both almost never move" if n_near == n_wide == 2
               else "they all almost never move" if n_near == n_wide else f"{n_near} of them almost never move")
        near_txt = (f"{who} (the same rank in ≥ {100 * ctx.rare_share:.0f} % of scenarios), so the variance to "
                    "decompose is tiny; " if n_near else "")
        s.append(f"Caution: the Sobol indices of {n_wide} city rank{'s' if n_wide > 1 else ''} (over all fields) "
                 f"are unreliable: {near_txt}bootstrap intervals reach ±{widest:.3g} (marked × in the heat maps, "
                 "and left out of these sentences).")
    return s


def _given_drivers(ctx: Context, order: np.ndarray) -> list[str]:
    """What drives R̄s and the ranks of the top cities, from the given-data indices of a Monte Carlo run."""
    ov = ctx.a.sel(field="overall")
    names = ctx.given_names()
    d, dc = ov["delta_rbar"].values, ov["delta_rbar_conf"].values
    s1, s1c = ov["S1_given_rbar"].values, ov["S1_given_rbar_conf"].values
    by = ctx.given_order("overall")
    k = int(by[0])
    txt = (f"From the Monte Carlo scenarios themselves (given data), <b>{esc(ctx.factor_phrase(names[k]))}</b> "
           f"influences the mean rank shift R̄s most: Borgonovo's δ = {d[k]:.2f} (±{dc[k]:.2f}), and it explains "
           f"{pct(max(s1[k], 0))} (±{100 * s1c[k]:.0f} points) of its variance alone")
    rest = [int(j) for j in by[1:3]]
    if rest:
        txt += "; next come " + " and ".join(f"{esc(names[j])} (δ {d[j]:.2f})" for j in rest)
    floor = float(np.nanmin(d)) if len(d) > 1 else np.nan
    if np.isfinite(floor):
        txt += (f". The smallest δ, {floor:.2f} ({esc(names[int(by[-1])])}), shows the estimate's noise floor: a "
                "factor near it has no detectable influence")
    s = [txt + "."]
    top = order[:min(10, len(order))]
    fixed = ctx.fixed("overall")
    moving = [int(i) for i in top if not fixed[i]]
    if moving:
        delta = ctx.given_sens("delta", "overall")
        drivers = [int(np.nanargmax(delta[i])) for i in moving]
        vals, counts = np.unique(drivers, return_counts=True)
        best = int(vals[np.argmax(counts)])
        vs = [delta[i, best] for i, dr in zip(moving, drivers, strict=True) if dr == best]
        who = f"all {len(moving)}" if counts.max() == len(moving) else f"{int(counts.max())} of the {len(moving)}"
        whose = " whose rank moves" if len(moving) < len(top) else ""
        s.append(f"For {who} top-{len(top)} cities{whose}, {esc(ctx.factor_phrase(names[best]))} has the largest "
                 f"δ on the overall rank (δ {value_range(min(vs), max(vs))}).")
    return s
