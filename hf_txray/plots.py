"""The paper's figures from a :class:`Profile` or :class:`TransferReport`, drawn with matplotlib.

Every function returns a ``matplotlib.figure.Figure`` and accepts an optional ``ax`` to draw into (e.g. a subplot
of a larger figure, or a Gradio ``gr.Plot``). Figures are built with ``Figure()`` rather than ``pyplot``: no global
state, no backend switch, nothing kept alive after the caller drops the figure, so a Trainer callback or a Space
can draw thousands of them; saving to PNG uses the Agg renderer whatever the session's backend is.

Figures (TX-Ray, Rethmeier et al. 2020):
- :func:`plot_hellinger_vs_length`: Hellinger distance vs (log) Hellinger length per shared neuron, coloured by layer;
- :func:`plot_length_shift`: each shared neuron's length in stage A and in stage B (paired dots);
- :func:`plot_mass_share`: each tag's share of the credited mass next to its corpus frequency (bars, per stage);
- :func:`plot_neuron_mass`: per-neuron credited mass, sorted, on a log scale.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

from .errors import ConfigurationError

if TYPE_CHECKING:  # the figures only need these for type hints; importing plots must not import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .profile import Profile
    from .report import TransferReport

TAG_PREFERENCE = ("pos", "dep", "ner")
STAGE_COLORS = ("tab:blue", "tab:orange")


def default_feature_type(feature_types: list[str], categorical: bool = False) -> str:
    """``"pos"`` when profiled, else the first tag-like feature, else (unless `categorical`) the first feature."""
    for ft in TAG_PREFERENCE:
        if ft in feature_types:
            return ft
    tags = [ft for ft in feature_types if ft not in ("token", "word")]
    if tags:
        return tags[0]
    if categorical or not feature_types:
        raise ConfigurationError(f"No tag-like feature (pos, dep, ner or a user feature) among {feature_types}.")
    return feature_types[0]


def _axes(ax: "Axes | None", figsize: tuple[float, float]) -> tuple["Figure", "Axes"]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _checked_feature(feature_types: list[str], feature_type: str | None, categorical: bool = False) -> str:
    ft = feature_type or default_feature_type(feature_types, categorical)
    if ft not in feature_types:
        raise ConfigurationError(f"Feature type {ft!r} is not available; choose one of {feature_types}.")
    return ft


def _shared(report: "TransferReport", layer: int | None) -> pd.DataFrame:
    frame = report.neurons[report.neurons["status"] == "shared"]
    return frame if layer is None else frame[frame["layer"] == layer]


def plot_hellinger_vs_length(report: "TransferReport", feature_type: str | None = None, ax: "Axes | None" = None,
                             layer: int | None = None) -> "Figure":
    """Hellinger distance against Hellinger length (log x) of every shared neuron, coloured by layer.

    Long, little-changed neurons are general; short, much-changed ones specialised during the transfer.

    Args:
        report (`TransferReport`): the comparison to draw.
        feature_type (`str`, *optional*): defaults to ``"pos"`` when profiled, else the first feature type.
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        layer (`int`, *optional*): only this layer's neurons.

    Returns:
        `matplotlib.figure.Figure`: one point per shared neuron with a Hellinger distance.

    Example:
        ```python
        >>> fig = plot_hellinger_vs_length(report, "pos")
        >>> fig.savefig("hellinger.png")
        ```
    """
    ft = _checked_feature(report.meta.feature_types, feature_type)
    data = _shared(report, layer)
    data = data[data[f"hellinger_{ft}"].notna() & (data[f"hellinger_length_{ft}"] > 0)]
    import matplotlib
    from matplotlib.ticker import LogFormatter

    layers = sorted(report.meta.layers)
    # One colour per layer: layers are categories here, a continuous bar would suggest in-between values.
    cmap = matplotlib.colormaps["viridis"].resampled(max(len(layers), 2))
    fig, ax = _axes(ax, (6.0, 4.2))
    points = ax.scatter(data[f"hellinger_length_{ft}"], data[f"hellinger_{ft}"], c=data["layer"], cmap=cmap,
                        s=9, alpha=0.7, linewidths=0, vmin=layers[0] - 0.5, vmax=layers[-1] + 0.5)
    ax.set_xscale("log")
    # Plain numbers (2, 5, 10) rather than 2x10^0; minor labels only where the axis spans few decades.
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.5)))
    ax.set_ylim(-0.02, 1.02)
    ax.set(xlabel=f"Hellinger length ({ft} values, log)", ylabel=f"Hellinger distance ({ft})",
           title=f"{report.name}: preference change per neuron")
    fig.colorbar(points, ax=ax, label="layer", ticks=layers if len(layers) <= 12 else None)
    return fig


PAIRED_DOTS_MAX = 1000  # above this many neurons the length shift is drawn as a histogram (paired dots merge)


def plot_length_shift(report: "TransferReport", feature_type: str | None = None, ax: "Axes | None" = None,
                      layer: int | None = None) -> "Figure":
    """Each shared neuron's length in stage A and stage B as paired dots, neurons sorted by their length in A.

    A line going down means the neuron specialised (fewer feature values), up that it generalised. Above
    ``PAIRED_DOTS_MAX`` neurons, a histogram of log2(length B / length A) instead (green: shorter in B).

    Args:
        report (`TransferReport`): the comparison to draw.
        feature_type (`str`, *optional*): defaults to ``"pos"`` when profiled, else the first feature type.
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        layer (`int`, *optional*): only this layer's neurons.

    Returns:
        `matplotlib.figure.Figure`: two point sets (A and B), one point each per shared neuron with both lengths > 0.

    Example:
        ```python
        >>> plot_length_shift(report, "token", layer=3).savefig("shift.png")
        ```
    """
    ft = _checked_feature(report.meta.feature_types, feature_type)
    data = _shared(report, layer)
    data = data[(data[f"length_a_{ft}"] > 0) & (data[f"length_b_{ft}"] > 0)]
    data = data.sort_values([f"length_a_{ft}", f"length_b_{ft}"], kind="stable")
    x = np.arange(len(data))
    a, b = data[f"length_a_{ft}"].to_numpy(), data[f"length_b_{ft}"].to_numpy()
    fig, ax = _axes(ax, (7.0, 4.0))
    if len(data) > PAIRED_DOTS_MAX:  # thousands of paired dots merge into solid blocks: the shift's distribution
        shift = np.log2(b / a)
        edges = np.histogram_bin_edges(shift, bins=60)
        counts, edges = np.histogram(shift, bins=edges)
        centers = (edges[:-1] + edges[1:]) / 2
        ax.bar(centers, counts, width=np.diff(edges), color=np.where(centers < 0, "tab:green", "tab:red"),
               alpha=0.7, edgecolor="none")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(xlabel=f"log2(length B / length A), {ft}", ylabel="shared neurons",
               title=f"{report.name}: length shift of {len(data)} neurons (green: shorter in B)")
        return fig
    ax.vlines(x, a, b, colors=np.where(b < a, "tab:green", "tab:red"), linewidths=0.6, alpha=0.5)
    ax.scatter(x, a, s=6, color=STAGE_COLORS[0], label=f"A: {report.meta.stage_a}")
    ax.scatter(x, b, s=6, color=STAGE_COLORS[1], label=f"B: {report.meta.stage_b}")
    ax.set_yscale("log")
    ax.set(xlabel="shared neurons, sorted by length in A", ylabel=f"length ({ft} values, log)",
           title=f"{report.name}: length shift (green: shorter in B)")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def _share_series(data: "Profile | TransferReport", ft: str) -> dict[str, pd.Series]:
    """Bars to draw, by legend label; corpus frequency once when both stages saw the same corpus."""
    if hasattr(data, "mass_share") and isinstance(data.mass_share, pd.DataFrame):  # a TransferReport
        table = data.mass_share[data.mass_share["feature_type"] == ft].set_index("feature")
        a, b = data.meta.stage_a, data.meta.stage_b
        series = {f"corpus frequency ({a})": table["corpus_frequency_a"], f"mass share ({a})": table["mass_share_a"]}
        if not np.allclose(table["corpus_frequency_a"], table["corpus_frequency_b"]):
            series[f"corpus frequency ({b})"] = table["corpus_frequency_b"]
        series[f"mass share ({b})"] = table["mass_share_b"]
        return series
    frequency = data.feature_frequency(ft)
    return {f"corpus frequency ({data.stage})": frequency,
            f"mass share ({data.stage})": data.mass_share(ft).reindex(frequency.index, fill_value=0.0)}


def plot_mass_share(data: "Profile | TransferReport", feature_type: str | None = None, ax: "Axes | None" = None,
                    top: int | None = None) -> "Figure":
    """Each tag's share of all credited mass next to its corpus frequency (grouped bars, per stage).

    A tag whose mass share exceeds its frequency is over-preferred by the model's neurons.

    Args:
        data (`Profile` or `TransferReport`): one stage, or both stages of a comparison.
        feature_type (`str`, *optional*): a tag-like feature; defaults to ``"pos"`` when profiled.
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        top (`int`, *optional*): only the `top` most frequent tags of the (first) corpus.

    Returns:
        `matplotlib.figure.Figure`: one bar per tag and series (corpus frequency and mass share of each stage;
        a report whose stages share a corpus draws its frequency once).

    Example:
        ```python
        >>> plot_mass_share(profile, "pos", top=12).savefig("pos_share.png")
        ```
    """
    ft = _checked_feature(data.meta.feature_types, feature_type, categorical=True)
    series = _share_series(data, ft)
    first = next(iter(series.values()))
    tags = list(first.sort_values(ascending=False, kind="stable").index[:top])
    fig, ax = _axes(ax, (max(6.0, 0.45 * len(tags) * len(series) / 2), 4.0))
    width = 0.8 / len(series)
    x = np.arange(len(tags))
    for i, (label, values) in enumerate(series.items()):
        frequency = label.startswith("corpus")
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values.reindex(tags, fill_value=0.0).to_numpy(), width,
               label=label, color="lightgray" if frequency else STAGE_COLORS[min(i // 2, 1)],
               edgecolor="gray" if frequency else None, hatch="//" if frequency and i > 0 else None)
    ax.set_xticks(x, tags, rotation=45, ha="right")
    ax.set(ylabel="share", title=f"{ft}: mass share vs corpus frequency")
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
    if hasattr(data, "neuron_stats"):  # a Profile
        frame = data.neuron_stats()
        series = {data.stage: frame}
        column = {data.stage: "mass"}
    else:
        frame = data.neurons
        series = {data.meta.stage_a: frame, data.meta.stage_b: frame}
        column = {data.meta.stage_a: "mass_a", data.meta.stage_b: "mass_b"}
    fig, ax = _axes(ax, (7.0, 4.0))
    for i, (stage, table) in enumerate(series.items()):
        values = table if layer is None else table[table["layer"] == layer]
        mass = np.sort(values[column[stage]].to_numpy())[::-1]
        mass = mass[mass > 0]
        # One filled step patch = adjacent width-1 bars, drawn as a single artist (fast for 100k neurons).
        ax.stairs(mass, np.arange(len(mass) + 1), fill=True, alpha=0.6 if len(series) > 1 else 1.0,
                  color=STAGE_COLORS[i], label=stage)
    ax.set_yscale("log")
    scope = "all layers" if layer is None else f"layer {layer}"
    ax.set(xlabel="neurons, sorted by mass", ylabel="credited mass (log)", title=f"Per-neuron mass ({scope})")
    ax.legend(fontsize="small")
    return fig


def report_figures(report: "TransferReport", feature_type: str | None = None) -> dict[str, "Figure"]:
    """The key figures of a report by file stem: Hellinger vs length, length shift, mass share (when tags exist)."""
    ft = _checked_feature(report.meta.feature_types, feature_type)
    figures = {"hellinger_vs_length": plot_hellinger_vs_length(report, ft),
               "length_shift": plot_length_shift(report, ft), "neuron_mass": plot_neuron_mass(report)}
    if len(report.mass_share) and ft in set(report.mass_share["feature_type"]):
        figures["mass_share"] = plot_mass_share(report, ft)
    return figures


def profile_figures(profile: "Profile") -> dict[str, "Figure"]:
    """The key figures of one profile by file stem: sorted neuron mass, and mass share when a tag was profiled."""
    figures = {"neuron_mass": plot_neuron_mass(profile)}
    if any(ft not in ("token", "word") for ft in profile.feature_types):
        figures["mass_share"] = plot_mass_share(profile)
    return figures


def slug(name: str) -> str:
    """A file-name-safe version of a stage or report name (``"a->b"`` -> ``"a__b"``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("->", "__")).strip("-") or "unnamed"


def save_figures(figures: Mapping[str, "Figure"], directory: str | Path, prefix: str = "",
                 dpi: int = 100) -> list[Path]:
    """Save figures as ``{directory}/{prefix}{name}.png``.

    Args:
        figures (`Mapping[str, Figure]`): figures by name, e.g. from :func:`report_figures`.
        directory (`str` or `Path`): created when missing.
        prefix (`str`, *optional*): prepended to every file name.
        dpi (`int`, *optional*, defaults to 100): resolution.

    Returns:
        `list[Path]`: the written files, in the order of `figures`.

    Example:
        ```python
        >>> save_figures(report_figures(report), "plots", prefix="pretrained__finetuned_")
        ```
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        path = directory / f"{prefix}{slug(name)}.png"
        figure.savefig(path, dpi=dpi, format="png")
        paths.append(path)
    return paths
