"""The HTML page: ``templates/report.html.j2`` rendered with Jinja2 (autoescaped), its CSS and script inlined.

The page is self-contained: every figure is a base64 PNG ``data:`` URI, the CSS and the one tiny script
are inline, and a Content-Security-Policy forbids any network access.
"""

from __future__ import annotations

from functools import cache

from .. import __version__
from .context import CONF_LIMIT, Context
from .drawing import DrawnFigure
from .figures import SECTIONS
from .tables import (
    city_table,
    factor_table,
    field_table,
    given_city_table,
    given_rbar_table,
    run_table,
    smaa_table,
    spec_description,
)
from .text import summary


@cache
def environment():
    """The Jinja2 environment of the package's templates (HTML autoescaped)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)


def render(ctx: Context, figs: dict[str, DrawnFigure], elapsed: float) -> str:
    """The report page of a loaded run and its drawn figures (``elapsed``: seconds taken so far)."""
    at = ctx.attrs
    return environment().get_template("report.html.j2").render(
        ctx=ctx,
        title=f"rankstab report: {at.get('spec_name') or ctx.path.stem}",
        subtitle=spec_description(at) or ctx.dataset.get("title", ""),
        tiles=[(f"{int(at.get('n_scenarios', 0)):,}", "scenarios"),
               ("Sobol" if at.get("design_kind") == "sobol" else "Monte Carlo", "design"),
               (str(ctx.factors.sizes.get("factor", 0)), "factors"),
               (str(ctx.a.sizes["city"]), "cities"), (f"{ctx.n_fields} + 1", "fields + overall"),
               (f"{float(ctx.a['rbar_mean'].sel(field='overall')):.2f}", "mean rank shift R̄s")],
        dataset=at.get("dataset", ""),
        partial_scenarios=(f"{int(ctx.a.attrs.get('n_stability_scenarios', 0)):,}" if ctx.a.attrs.get("partial")
                           else None),
        summary=summary(ctx),
        figures={section: [f for f in figs.values() if f.section == section] for section in SECTIONS},
        rare_pct=f"{100 * ctx.rare_share:.0f}", conf_limit=f"{CONF_LIMIT:g}",
        field_table=field_table(ctx), city_table=city_table(ctx), run_table=run_table(ctx),
        given_rbar_table=given_rbar_table(ctx), given_city_table=given_city_table(ctx), smaa_table=smaa_table(ctx),
        conf_level=f"{ctx.conf_level:.0%}", confidence_samples=f"{int(ctx.a.attrs.get('confidence_samples', 0)):,}",
        factor_table=factor_table(ctx), spec_toml=at.get("spec_toml", ""),
        version=__version__, store_name=ctx.path.name, elapsed=elapsed)
