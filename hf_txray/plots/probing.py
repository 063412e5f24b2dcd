"""Figures of probing and ablation results: a metric against the number of ablated neurons."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import literal, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..probing.ablation import AblationCurve


def plot_ablation(curve: "AblationCurve", ax: "Axes | None" = None) -> "Figure":
    """An ablation curve: ranked (and bottom) neurons vs random ones (mean and min-max band over seeds) against k.

    Args:
        curve (`AblationCurve`): from :func:`hf_txray.ablation_curve` or loaded results.
        ax (`matplotlib.axes.Axes`, *optional*): where to draw.

    Returns:
        `matplotlib.figure.Figure`: a line per ranked strategy, the random mean with its band, and the unablated
        value as a dotted line; x on a symlog scale (k = 0 stays visible).

    Example:
        ```python
        >>> plot_ablation(curve).savefig("ablation.png")
        ```
    """
    fig, ax = new_axes(ax, (6.0, 4.0))
    summary = curve.summary()
    for strategy, style in (("ranked", "o-"), ("bottom", "s--")):
        part = summary[summary["strategy"] == strategy]
        if len(part):
            ax.plot(part["num_ablated"], part["mean"], style, label=strategy)
    rand = curve.table[curve.table["strategy"] == "random"].groupby("num_ablated")["value"]
    if len(rand):
        stats = rand.agg(["mean", "min", "max"]).reset_index()
        ax.plot(stats["num_ablated"], stats["mean"], "^-", color="gray", label="random (mean)")
        ax.fill_between(stats["num_ablated"], stats["min"], stats["max"], color="gray", alpha=0.2)
    ax.axhline(curve.baseline, color="black", linewidth=0.8, linestyle=":", label="no ablation")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(f"neurons ablated ({curve.mode})")
    ax.set_ylabel(literal(curve.metric))
    ax.set_title(f"Ablation: {literal(curve.name)}")
    ax.legend()
    return fig
