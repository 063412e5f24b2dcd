"""The viewer's figures: the paper's overview figures (matplotlib, from :mod:`hf_txray.plots`) and the per-neuron charts
as Vega-Lite specs (plain dicts the browser draws, so a neuron switch sends data rather than an image).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from ..errors import ConfigurationError
from ..features import is_tag_feature
from ..logging import get_logger
from ..tables import percent
from .data import ResultsView
from .neuron import histogram_data, neuron_distributions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = get_logger(__name__)


def overview_figures(view: ResultsView, report_name: str | None = None,
                     feature_type: str | None = None) -> dict[str, "Figure | None"]:
    """The paper's figures: Hellinger vs length, length shift, mass share, sorted neuron mass.

    From the chosen report (default: the first), else from the first profile (mass share and neuron mass only).
    A figure that cannot be drawn for these results (no tag-like feature, no shared neuron) is ``None``.
    """
    from .. import plots

    figures: dict[str, Figure | None] = dict.fromkeys(("hellinger_vs_length", "length_shift", "mass_share",
                                                       "neuron_mass"))
    if report_name or view.reports:
        report = view.report(report_name) if report_name else next(iter(view.reports.values()))
        kinds = report.meta.feature_kinds
        ft = feature_type or plots.default_feature_type(report.meta.feature_types, kinds=kinds,
                                                        orders=report.meta.feature_orders)
        if ft not in report.meta.feature_types:
            raise ConfigurationError(f"Feature type {ft!r} is not in report {report.name!r}: "
                                     f"{report.meta.feature_types}.")
        # Every shared neuron, each dot a link to its page: the figure's note says that rarely credited ones sit high
        # by chance (the library's plots leave them out by default).
        draw = {"hellinger_vs_length": lambda: plots.plot_hellinger_vs_length(report, ft, min_count=0),
                "length_shift": lambda: plots.plot_length_shift(report, ft, min_count=0),
                "mass_share": lambda: plots.plot_mass_share(report, ft if is_tag_feature(ft, kinds) else None),
                "neuron_mass": lambda: plots.plot_neuron_mass(report)}
    else:
        profile = next(iter(view.profiles.values()))
        draw = {"mass_share": lambda: plots.plot_mass_share(profile), "neuron_mass": lambda: plots.plot_neuron_mass(profile)}
    for name, make in draw.items():
        try:
            figures[name] = plots.use_fallback_fonts(make())  # CJK and other scripts DejaVu Sans lacks
        except (ConfigurationError, ValueError) as err:  # e.g. no tag-like feature, nothing shared, mathtext
            logger.info("Figure %s not drawn: %s", name, err)
    return figures


def distribution_chart(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str,
                       feature_types: Iterable[str] | None = None, top: int = 10,
                       data: pd.DataFrame | None = None) -> dict[str, Any]:
    """The bar charts as a Vega-Lite spec (a dict): one panel per feature type, stage A and B side by side.

    Drawn by the browser (Gradio's ``gr.Plot`` renders Vega-Lite), so switching neuron only sends data. Feature
    values are data, drawn as SVG/canvas text: never parsed as HTML, markdown or an expression. `data`: the
    :func:`neuron_distributions` table when already computed.
    """
    from ..plots import STAGE_COLORS

    if data is None:
        data = neuron_distributions(view, layer, neuron, [stage_a, stage_b], feature_types, top)
    stages = list(dict.fromkeys([stage_a, stage_b]))
    colors = {"domain": stages, "range": [_css_color(c) for c in STAGE_COLORS[: len(stages)]]}
    panels = []
    for ft in dict.fromkeys(data["feature type"]):
        part = data[data["feature type"] == ft]
        order = list(dict.fromkeys(part["feature"]))
        values = [{"feature": f, "stage": st, "probability": float(p), "mass": float(m), "count": int(c)}
                  for f, st, p, m, c in zip(part["feature"], part["stage"], part["probability"], part["mass"],
                                            part["count"])]
        panels.append({
            "title": f"{ft}: top {top} per stage",
            "data": {"values": values},
            "mark": {"type": "bar"},
            "height": {"step": 9 if len(stages) > 1 else 14},
            "width": 240,
            "encoding": {
                "y": {"field": "feature", "type": "nominal", "sort": order, "title": None,
                      "axis": {"labelLimit": 160}},
                "yOffset": {"field": "stage", "sort": stages},
                "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]}},
                "color": {"field": "stage", "type": "nominal", "scale": colors, "legend": {"orient": "bottom"}},
                "tooltip": [{"field": "feature"}, {"field": "stage"},
                            {"field": "probability", "format": ".3f"}, {"field": "mass", "format": ".3f"},
                            {"field": "count"}],
            },
        })
    if not panels:
        panels.append({"data": {"values": [{"text": "no profile for these stages"}]}, "mark": "text",
                       "encoding": {"text": {"field": "text"}}})
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": f"Layer {int(layer)}, neuron {view.neuron_label(neuron)}", "hconcat": panels,
            "resolve": {"scale": {"y": "independent"}}}


def _css_color(name: str) -> str:
    from matplotlib.colors import to_hex

    return to_hex(name)


def histogram_chart(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str,
                    data: pd.DataFrame | None = None) -> dict[str, Any]:
    """The histogram as a Vega-Lite spec: bars over log-spaced bins, stages side by side (drawn by the browser)."""
    from ..plots import STAGE_COLORS

    if data is None:
        data = histogram_data(view, layer, neuron, [stage_a, stage_b])
    stages = list(dict.fromkeys([stage_a, stage_b]))
    colors = {"domain": stages, "range": [_css_color(c) for c in STAGE_COLORS[: len(stages)]]}
    values = [{"stage": s, "low": float(lo), "high": float(hi), "range": r, "count": int(c)}
              for s, lo, hi, r, c in zip(data["stage"], data["low"], data["high"], data["range"], data["count"])]
    if not values:
        return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                "data": {"values": [{"text": "no activation histogram for these stages"}]}, "mark": "text",
                "encoding": {"text": {"field": "text"}}}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"Layer {int(layer)}, neuron {view.neuron_label(neuron)}: credited activations "
                 "(log-spaced bins)", "width": 420, "height": 160,
        "data": {"values": values}, "mark": {"type": "bar", "opacity": 0.6},
        "encoding": {
            # log-axis labels of neighbouring powers ran together ("0.030.040.05"): overlapping ones are dropped
            "x": {"field": "low", "type": "quantitative", "scale": {"type": "log"}, "title": "activation (log)",
                  "axis": {"labelOverlap": "greedy", "labelFlush": True}},
            "x2": {"field": "high"},
            "y": {"field": "count", "type": "quantitative", "stack": None, "title": "credits"},
            # bars rise from zero: with x and x2 and no y2, Vega-Lite draws a ranged bar along x, a thin dash at the
            # height of the count (an empty bin a dash on the axis), which read as a line chart, not as bars
            "y2": {"datum": 0},
            "color": {"field": "stage", "type": "nominal", "scale": colors, "legend": {"orient": "bottom"}},
            "tooltip": [{"field": "stage"}, {"field": "range", "title": "activation"}, {"field": "count"}],
        },
    }


FIGURE_NOTES = {
    "hellinger_vs_length": "Hellinger distance vs Hellinger length: one dot per shared neuron (credited in both "
                           "stages); 0 = the same preferences, 1 = disjoint. Neurons with few credits sit high by "
                           "chance: compare with the noise floor.",
    "length_shift": "Length shift: each shared neuron's number of distinct {ft} values in stage A and B (shorter in B "
                    "= specialised); with many neurons, the distribution of log2(length B / length A).",
    "mass_share": "Mass share vs corpus frequency: the share of all credited mass per {ft} value, next to how often "
                  "the value occurs in the corpus (above = preferred).",
    "neuron_mass": "Per-neuron mass: credited activation mass per neuron, sorted (log scale): how unevenly the "
                   "positions are shared out.",
}


def figure_notes(view: ResultsView, report_name: str | None = None, feature_type: str | None = None,
                 drawn: Iterable[str] = tuple(FIGURE_NOTES)) -> str:
    """What the overview figures show, one line each (those in `drawn`), with the report's headline numbers and their
    noise floor (``TransferReport.summary``) when the report has them."""
    from ..plots import default_feature_type

    lines = []
    if report_name or view.reports:
        report = view.report(report_name) if report_name else next(iter(view.reports.values()))
        ft = feature_type or default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds,
                                                  orders=report.meta.feature_orders)
        summary = report.summary()
        head = (f"Report {report.name} ({ft}): {percent(summary['share_shared'])} of neurons shared, "
                f"{percent(summary['share_lost'])} lost, {percent(summary['share_gained'])} gained; mean Hellinger distance "
                f"{summary[f'mean_hellinger_{ft}']:.3f}")
        floors = [summary.get(f"noise_floor_hellinger_{ft}_{stage}", float("nan")) for stage in "ab"]
        no_floor = report.meta.no_noise_reason or report.meta.no_noise_features.get(ft, "")
        if no_floor:  # a stage in one split half: its floor was "nan" between two halves of A (helper 254)
            head += f"; no noise floor, so how much of it is sampling noise is unknown: {no_floor}"
        elif f"noise_floor_hellinger_{ft}_a" in summary and any(map(math.isnan, floors)):
            head += ("; no noise floor: no shared neuron was credited in all four split halves (both of each stage), "
                     "so how much of it is sampling noise is unknown")
        elif f"noise_floor_hellinger_{ft}_a" in summary:
            # The floors are at half the credits: set beside the full-size distance (which shrinks with more credits)
            # they were read against the wrong figure; the distance at half size is the one to compare (helper 191).
            head += (f"; at half size {summary[f'matched_hellinger_{ft}']:.3f}, against a noise floor of "
                     f"{summary[f'noise_floor_hellinger_{ft}_a']:.3f} between two halves of A and "
                     f"{summary[f'noise_floor_hellinger_{ft}_b']:.3f} of B (only the excess is change)")
        lines.append(head + ".")
    else:
        profile = next(iter(view.profiles.values()))
        ft = feature_type or default_feature_type(profile.feature_types, kinds=profile.meta.feature_kinds,
                                                  orders=profile.meta.feature_orders)
        lines.append(f"Stage {profile.stage}: no transfer report, so only the mass figures.")
    lines += [FIGURE_NOTES[name].format(ft=ft) for name in FIGURE_NOTES if name in set(drawn)]
    return "\n".join(lines)


# ----- the clickable Hellinger scatter: the paper's figure as SVG, each dot a link to its neuron ------------------
DOT_LINK = "#neuron-{layer}-{neuron}"  # a dot's link in the SVG; the page's script turns a click into the neuron


def link_hellinger_dots(figure: "Figure", view: ResultsView, report_name: str | None = None,
                        feature_type: str | None = None) -> "Figure":
    """Give each dot of ``plots.plot_hellinger_vs_length`` (drawn by :func:`overview_figures`) the link
    :data:`DOT_LINK` of its neuron, so that its SVG holds one ``<a>`` per dot.

    The dots are matched to the report's shared neurons by their drawn values (length, distance), row by row: a
    figure whose dots do not match raises rather than link a dot to the wrong neuron.

    Raises:
        `ConfigurationError`: the figure's dots are not the report's shared neurons of that feature type.
    """
    import numpy as np

    from ..plots import default_feature_type

    report = view.report(report_name) if report_name else next(iter(view.reports.values()))
    ft = feature_type or default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds,
                                              orders=report.meta.feature_orders)
    n = report.neurons
    shared = n[(n["status"] == "shared") & n[f"hellinger_{ft}"].notna() & (n[f"hellinger_length_{ft}"] > 0)]
    points = figure.axes[0].collections[0]
    drawn = np.asarray(points.get_offsets(), dtype=float)
    wanted = shared[[f"hellinger_length_{ft}", f"hellinger_{ft}"]].to_numpy(dtype=float)
    if drawn.shape != wanted.shape or not np.allclose(drawn, wanted):
        raise ConfigurationError(f"The Hellinger figure's {len(drawn)} dots are not the {len(wanted)} shared neurons "
                                 f"of report {report.name!r} ({ft}): the dots cannot link to their neurons.")
    points.set_urls([DOT_LINK.format(layer=int(la), neuron=int(ne)) for la, ne in zip(shared["layer"],
                                                                                      shared["neuron"])])
    return figure


def figure_svg(figure: "Figure") -> str:
    """`figure` as an inline ``<svg>`` element (no XML header); text drawn as paths, so no string of the results is
    ever markup in the page."""
    import io

    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]
