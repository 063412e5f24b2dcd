"""Figures of credited mass: one profile, or both stages of a transfer report side by side.

- :func:`plot_mass_share`: each tag's share of the credited mass next to its corpus frequency (bars, per stage);
- :func:`plot_neuron_mass`: per-neuron credited mass, sorted, on a log scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..counts import is_int
from ..errors import ConfigurationError
from ..features import tag_features
from ..options import resolve_layer
from .common import STAGE_COLORS, checked_feature_type, labelled_legend, literal, new_axes, value_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..profile import Profile
    from ..report import TransferReport


def _share_series(data: "Profile | TransferReport", ft: str) -> dict[str, pd.Series]:
    """Bars to draw, by legend label; corpus frequency once when both stages saw the same corpus."""
    if hasattr(data, "mass_share") and isinstance(data.mass_share, pd.DataFrame):  # a TransferReport
        table = data.mass_share[data.mass_share["feature_type"] == ft].set_index("feature")
        if table.empty:  # a report keeps mass shares of tag-like features only: the figure was drawn empty
            kept = list(dict.fromkeys(data.mass_share["feature_type"]))
            raise ConfigurationError(
                f"Report {data.name!r} holds no mass share of {ft!r} (it keeps them for tag-like features only: "
                f"{kept or 'none'}): choose one of those, or draw {ft!r} from each stage's profile "
                f"(plot_mass_share(profile, {ft!r})).")
        # "A: ", "B: ": apart even when the stages share a name
        a, b = f"A: {literal(data.meta.stage_a)}", f"B: {literal(data.meta.stage_b)}"
        series = {f"corpus frequency ({a})": table["corpus_frequency_a"], f"mass share ({a})": table["mass_share_a"]}
        if not np.allclose(table["corpus_frequency_a"], table["corpus_frequency_b"]):
            series[f"corpus frequency ({b})"] = table["corpus_frequency_b"]
        series[f"mass share ({b})"] = table["mass_share_b"]
        return series
    frequency = data.feature_frequency(ft)
    stage = literal(data.stage)
    return {f"corpus frequency ({stage})": frequency,
            f"mass share ({stage})": data.mass_share(ft).reindex(frequency.index, fill_value=0.0)}


def plot_mass_share(data: "Profile | TransferReport", feature_type: str | None = None, ax: "Axes | None" = None,
                    top: int | None = None) -> "Figure":
    """Each tag's share of all credited mass next to its corpus frequency (grouped bars, per stage).

    A tag whose mass share exceeds its frequency is over-preferred by the model's neurons.

    Args:
        data (`Profile` or `TransferReport`): one stage, or both stages of a comparison.
        feature_type (`str`, *optional*): a tag-like feature; defaults to ``"pos"`` when profiled.
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        top (`int`, *optional*): only the `top` most frequent tags of the (first) corpus (a positive int).

    Returns:
        `matplotlib.figure.Figure`: one bar per tag and series (corpus frequency and mass share of each stage;
        a report whose stages share a corpus draws its frequency once).

    Raises:
        `ConfigurationError`: a feature type that was not profiled, one a report keeps no mass share of (a report keeps
            them for tag-like features only), or a `top` that is not a positive int.

    Example:
        ```python
        >>> plot_mass_share(profile, "pos", top=12).savefig("pos_share.png")
        ```
    """
    ft = checked_feature_type(data.meta.feature_types, feature_type, True, data.meta.feature_kinds,
                              data.meta.feature_orders)
    if top is not None and (not is_int(top) or top < 1):  # 0 drew nothing, -1 every tag but the rarest
        raise ConfigurationError(f"top must be a positive int (the number of tags drawn) or None for all, got {top!r}.")
    top = None if top is None else int(top)
    series = _share_series(data, ft)
    first = next(iter(series.values()))
    tags = list(first.sort_values(ascending=False, kind="stable").index[:top])
    fig, ax = new_axes(ax, (max(6.0, 0.45 * len(tags) * len(series) / 2), 4.0))
    width = 0.8 / len(series)
    x = np.arange(len(tags))
    for i, (label, values) in enumerate(series.items()):
        frequency = label.startswith("corpus")
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values.reindex(tags, fill_value=0.0).to_numpy(), width,
               label=label, color="lightgray" if frequency else STAGE_COLORS[min(i // 2, 1)],
               edgecolor="gray" if frequency else None, hatch="//" if frequency and i > 0 else None)
    ax.set_xticks(x, value_labels(tags), rotation=45, ha="right")
    ax.set(ylabel="share", title=f"{literal(ft)}: mass share vs corpus frequency")
    ax.legend(fontsize="small")
    return fig


def plot_neuron_mass(data: "Profile | TransferReport", ax: "Axes | None" = None, layer: int | None = None) -> "Figure":
    """Credited mass of every credited neuron, sorted descending, on a log scale (one bar per neuron).

    Args:
        data (`Profile` or `TransferReport`): a profile draws one series; a report draws stage A and stage B.
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        layer (`int`, *optional*): only this layer's neurons.

    Returns:
        `matplotlib.figure.Figure`: per series one filled step patch (``ax.patches``) with one bar per neuron with
        mass > 0.

    Example:
        ```python
        >>> plot_neuron_mass(profile, layer=0).savefig("mass.png")
        ```
    """
    if layer is not None:
        layer = resolve_layer(data.meta.layers, layer, "was not profiled" if hasattr(data, "neuron_stats") else
                              "is not in this report")
    if hasattr(data, "neuron_stats"):  # a Profile
        frame = data.neuron_stats()
        series = {literal(data.stage): frame}
        column = {literal(data.stage): "mass"}
    else:
        frame = data.neurons
        a, b = f"A: {literal(data.meta.stage_a)}", f"B: {literal(data.meta.stage_b)}"  # apart even with one name
        series = {a: frame, b: frame}
        column = {a: "mass_a", b: "mass_b"}
    fig, ax = new_axes(ax, (7.0, 4.0))
    drawn = []
    for i, (stage, table) in enumerate(series.items()):
        values = table if layer is None else table[table["layer"] == layer]
        mass = np.sort(values[column[stage]].to_numpy())[::-1]
        mass = mass[mass > 0]
        # One filled step patch = adjacent width-1 bars, drawn as a single artist (fast for 100k neurons).
        drawn.append(ax.stairs(mass, np.arange(len(mass) + 1), fill=True, alpha=0.6 if len(series) > 1 else 1.0,
                               color=STAGE_COLORS[i], label=stage))
    ax.set_yscale("log")
    scope = "all layers" if layer is None else f"layer {layer}"
    ax.set(xlabel="neurons, sorted by mass", ylabel="credited mass (log)", title=f"Per-neuron mass ({scope})")
    labelled_legend(ax, drawn, fontsize="small")
    return fig


def profile_figures(profile: "Profile") -> dict[str, "Figure"]:
    """The key figures of one profile by file stem: sorted neuron mass, and mass share when a tag was profiled."""
    figures = {"neuron_mass": plot_neuron_mass(profile)}
    if tag_features(profile.feature_types, profile.meta.feature_kinds):
        figures["mass_share"] = plot_mass_share(profile)
    return figures
