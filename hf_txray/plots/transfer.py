"""The paper's figures of a :class:`TransferReport` (TX-Ray, Rethmeier et al. 2020).

- :func:`plot_hellinger_vs_length`: Hellinger distance vs (log) Hellinger length per shared neuron, coloured by layer;
- :func:`plot_length_shift`: each shared neuron's length in stage A and in stage B (paired dots);
- :func:`report_figures`: those two with the mass figures of :mod:`.profile`, by file stem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..options import resolve_layer
from ..significance import DEFAULT_MIN_COUNT, check_min_count
from .common import STAGE_COLORS, checked_feature_type, fit_title, literal, new_axes
from .profile import plot_mass_share, plot_neuron_mass

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..report import TransferReport


# The arguments every per-neuron report plot takes, documented once (filled into the docstrings below).
REPORT_PLOT_ARGS = """report (`TransferReport`): the comparison to draw.
        feature_type (`str`, *optional*): defaults to ``"pos"`` when profiled, else the first feature type.
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        layer (`int`, *optional*): only this layer's neurons.
        min_count (`int`, *optional*, defaults to 20): only neurons credited at least this many times with a value
            of `feature_type` in both stages, as the report's rankings (``DEFAULT_MIN_COUNT``,
            ``TransferReport.enough_credits``): below it a distance or a length is mostly sampling noise, and such
            neurons would fill the plot (0 draws every shared neuron)."""


def _report_layer(report: "TransferReport", layer: int | None) -> int | None:
    """`layer` checked against the report's layers (negative: counted from the last), for the data and the title."""
    return None if layer is None else resolve_layer(report.meta.layers, layer, "is not in this report")


def _shared(report: "TransferReport", layer: int | None, min_count: int, feature_type: str) -> pd.DataFrame:
    frame = report.neurons[report.neurons["status"] == "shared"]
    if check_min_count(min_count):  # credits with a value of the feature type, as the rankings floor them
        frame = frame[report.enough_credits(feature_type, min_count)[frame.index]]
    return frame if layer is None else frame[frame["layer"] == layer]


def _nothing_to_draw(ax: "Axes", min_count: int) -> None:
    """Say so on an empty report plot (a log axis of no points cannot be drawn)."""
    floor = f" credited at least {min_count} times in both stages (min_count)" if min_count else ""
    ax.text(0.5, 0.5, f"no shared neuron{floor}", ha="center", va="center", transform=ax.transAxes)


def _scope(layer: int | None, min_count: int) -> str:
    """What a report plot's title says it shows: the layer, and the credit floor."""
    parts = ([f"layer {layer}"] if layer is not None else []) + ([f">= {min_count} credits"] if min_count else [])
    return f" ({', '.join(parts)})" if parts else ""


def plot_hellinger_vs_length(report: "TransferReport", feature_type: str | None = None, ax: "Axes | None" = None,
                             layer: int | None = None, min_count: int = DEFAULT_MIN_COUNT) -> "Figure":
    """Hellinger distance against Hellinger length (log x) of every shared neuron, coloured by layer.

    Long, little-changed neurons are general; short, much-changed ones specialised during the transfer.

    Args:
        {report_plot_args}

    Returns:
        `matplotlib.figure.Figure`: one point per shared neuron with a Hellinger distance.

    Example:
        ```python
        >>> fig = plot_hellinger_vs_length(report, "pos")
        >>> fig.savefig("hellinger.png")
        ```
    """
    ft = checked_feature_type(report.meta.feature_types, feature_type, kinds=report.meta.feature_kinds,
                              orders=report.meta.feature_orders)
    layer = _report_layer(report, layer)
    data = _shared(report, layer, min_count, ft)
    data = data[data[f"hellinger_{ft}"].notna() & (data[f"hellinger_length_{ft}"] > 0)]
    import matplotlib
    from matplotlib.ticker import LogFormatter

    layers = sorted(report.meta.layers) if layer is None else [layer]
    # One colour per layer: layers are categories here, a continuous bar would suggest in-between values. Points are
    # coloured by the layer's rank, not its number: with layers [0, 1, 5], numbers binned into 3 colours over 0..5
    # gave layers 0 and 1 one colour (helper 191); the colour bar's ticks name the layers.
    cmap = matplotlib.colormaps["viridis"].resampled(len(layers))
    rank = np.searchsorted(layers, data["layer"].to_numpy())
    fig, ax = new_axes(ax, (6.0, 4.2))
    title = f"{literal(report.name)}: preference change per neuron{_scope(layer, min_count)}"
    if data.empty:
        _nothing_to_draw(ax, min_count)
        fit_title(ax, title)
        return fig
    points = ax.scatter(data[f"hellinger_length_{ft}"], data[f"hellinger_{ft}"], c=rank, cmap=cmap,
                        s=9, alpha=0.7, linewidths=0, vmin=-0.5, vmax=len(layers) - 0.5)
    ax.set_xscale("log")
    # Plain numbers (2, 5, 10) rather than 2x10^0; minor labels only where the axis spans few decades.
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.5)))
    ax.set_ylim(-0.02, 1.02)
    ax.set(xlabel=f"Hellinger length ({literal(ft)} values, log)", ylabel=f"Hellinger distance ({literal(ft)})")
    fit_title(ax, title)
    ticks = np.unique(np.linspace(0, len(layers) - 1, min(len(layers), 12)).round().astype(int))  # 12 at most
    bar = fig.colorbar(points, ax=ax, label="layer", ticks=ticks)
    bar.ax.set_yticklabels([str(layers[i]) for i in ticks])
    return fig


PAIRED_DOTS_MAX = 1000  # above this many neurons the length shift is drawn as a histogram (paired dots merge)


def _zero_edged_bins(shift: np.ndarray, bins: int = 60) -> np.ndarray:
    """About `bins` equal bins over `shift` with 0 on an edge, so that no bin holds both shorter (< 0) and unchanged
    neurons: a bin straddling 0 took the colour of its centre, and with 0 in its upper half drew every neuron of equal
    length as "shorter in B" (1382 green neurons for 555 shorter ones, helper 300)."""
    low, high = float(shift.min()), float(shift.max())
    width = (high - low) / bins or 1.0 / bins
    first, last = np.floor(low / width), np.floor(high / width) + 1
    # low / width rounded up to a whole number puts the first edge just above the smallest shift, which
    # np.histogram would leave out (log2(1/9) against edge -3.169925001442312, helper 302); likewise the last edge
    first -= first * width > low
    last += last * width < high
    return width * np.arange(first, last + 1)


def plot_length_shift(report: "TransferReport", feature_type: str | None = None, ax: "Axes | None" = None,
                      layer: int | None = None, min_count: int = DEFAULT_MIN_COUNT) -> "Figure":
    """Each shared neuron's length in stage A and stage B as paired dots, neurons sorted by their length in A.

    A line going down means the neuron specialised (fewer feature values), up that it generalised. Above
    ``PAIRED_DOTS_MAX`` neurons, a histogram of log2(length B / length A) instead (green: shorter in B).

    Args:
        {report_plot_args}

    Returns:
        `matplotlib.figure.Figure`: two point sets (A and B), one point each per shared neuron with both lengths > 0.

    Example:
        ```python
        >>> plot_length_shift(report, "token", layer=3).savefig("shift.png")
        ```
    """
    ft = checked_feature_type(report.meta.feature_types, feature_type, kinds=report.meta.feature_kinds,
                              orders=report.meta.feature_orders)
    layer = _report_layer(report, layer)
    data = _shared(report, layer, min_count, ft)
    data = data[(data[f"length_a_{ft}"] > 0) & (data[f"length_b_{ft}"] > 0)]
    scope = _scope(layer, min_count)
    data = data.sort_values([f"length_a_{ft}", f"length_b_{ft}"], kind="stable")
    x = np.arange(len(data))
    a, b = data[f"length_a_{ft}"].to_numpy(), data[f"length_b_{ft}"].to_numpy()
    fig, ax = new_axes(ax, (7.0, 4.0))
    if data.empty:
        _nothing_to_draw(ax, min_count)
        fit_title(ax, f"{literal(report.name)}: length shift{scope}")
        return fig
    if len(data) > PAIRED_DOTS_MAX:  # thousands of paired dots merge into solid blocks: the shift's distribution
        shift = np.log2(b / a)
        counts, edges = np.histogram(shift, bins=_zero_edged_bins(shift))
        centers = (edges[:-1] + edges[1:]) / 2
        ax.bar(centers, counts, width=np.diff(edges), color=np.where(centers < 0, "tab:green", "tab:red"),
               alpha=0.7, edgecolor="none")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(xlabel=f"log2(length B / length A), {literal(ft)}", ylabel="shared neurons")
        fit_title(ax, f"{literal(report.name)}: length shift of {len(data)} neurons{scope} (green: shorter in B)")
        return fig
    ax.vlines(x, a, b, colors=np.where(b < a, "tab:green", "tab:red"), linewidths=0.6, alpha=0.5)
    ax.scatter(x, a, s=6, color=STAGE_COLORS[0], label=f"A: {literal(report.meta.stage_a)}")
    ax.scatter(x, b, s=6, color=STAGE_COLORS[1], label=f"B: {literal(report.meta.stage_b)}")
    ax.set_yscale("log")
    ax.set(xlabel="shared neurons, sorted by length in A", ylabel=f"length ({literal(ft)} values, log)")
    fit_title(ax, f"{literal(report.name)}: length shift{scope} (green: shorter in B)")
    ax.legend(loc="upper left", fontsize="small")
    return fig


for _plot in (plot_hellinger_vs_length, plot_length_shift):
    if _plot.__doc__:  # None under python -OO
        _plot.__doc__ = _plot.__doc__.replace("{report_plot_args}", REPORT_PLOT_ARGS)
del _plot


def report_figures(report: "TransferReport", feature_type: str | None = None) -> dict[str, "Figure"]:
    """The key figures of a report by file stem: Hellinger vs length, length shift, mass share (when tags exist)."""
    ft = checked_feature_type(report.meta.feature_types, feature_type, kinds=report.meta.feature_kinds,
                              orders=report.meta.feature_orders)
    figures = {"hellinger_vs_length": plot_hellinger_vs_length(report, ft),
               "length_shift": plot_length_shift(report, ft), "neuron_mass": plot_neuron_mass(report)}
    if len(report.mass_share) and ft in set(report.mass_share["feature_type"]):
        figures["mass_share"] = plot_mass_share(report, ft)
    return figures
