"""Figures of pruning experiments: a metric against the share of MLP neurons pruned, per strategy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pandas as pd

from ..errors import ConfigurationError
from ..tables import amount_labels
from .common import literal, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_sweep(table: pd.DataFrame, metric: str = "accuracy", ax: "Axes | None" = None,
               strategies: Sequence[str] | None = None, baseline_plan: str = "unpruned") -> "Figure":
    """Metric vs fraction of neurons pruned: one line per strategy through its mean at each requested amount (error
    bars: ±1 std where several runs, e.g. seeds, share an amount; none for an amount of a single run), and the unpruned
    model as a dashed line.

    Args:
        table (`pd.DataFrame`): rows of :func:`hf_txray.evaluation.evaluate_pruning`, possibly concatenated over
            several runs (columns ``plan``, ``strategy``, ``amount``, ``fraction`` and the metric).
        metric (`str`, *optional*, defaults to `"accuracy"`): the metric column to plot.
        ax (`matplotlib.axes.Axes`, *optional*): where to draw.
        strategies (`list[str]`, *optional*): the strategies to draw (default: all).
        baseline_plan (`str`, *optional*, defaults to `"unpruned"`): the ``plan`` of the unpruned row, as
            ``hf_txray.evaluation.BASELINE`` names it (a parameter, not an import: plots stays below evaluation).

    Returns:
        `matplotlib.figure.Figure`: one error-bar line per strategy (dotted for random baselines) and, when the table
        has the unpruned row, a horizontal line at its mean.

    Raises:
        `ConfigurationError`: `metric` is not a column of `table`.

    Example:
        ```python
        >>> plot_sweep(evaluate_pruning(model, plans, data), "accuracy").savefig("accuracy.png")
        ```
    """
    if metric not in table.columns:
        raise ConfigurationError(f"Metric {metric!r} is not a column of the table: {list(table.columns)}.")
    fig, ax = new_axes(ax, (6.4, 4.2))
    base = table[table["plan"] == baseline_plan][metric]
    if len(base):
        ax.axhline(float(base.mean()), color="black", linestyle="--", linewidth=1,
                   label=f"unpruned ({base.mean():.3f})")
    pruned = table[table["plan"] != baseline_plan].copy()
    if strategies is not None:
        pruned = pruned[pruned["strategy"].isin(list(strategies))]
    pruned["_amount"] = amount_labels(pruned)  # 1 (a count) and 1.0 (a fraction) apart
    # one series per mode too, as summarize groups: a plan masked and removed is one model measured twice (helper 398)
    modes = "mode" in pruned and pruned["mode"].nunique(dropna=False) > 1
    # dropna=False: a row without a mode was left out of the plot without a word; it is drawn as its own series
    for key, group in pruned.groupby(["strategy", "mode"] if modes else ["strategy"], sort=False, dropna=False):
        strategy = key[0]
        stats = group.groupby("_amount").agg(x=("fraction", "mean"), mean=(metric, "mean"), std=(metric, "std"))
        stats = stats.sort_values("x")
        # std is NaN for an amount of one run: no bar there (a bar of 0 drew its caps, as if the runs agreed)
        ax.errorbar(stats["x"], stats["mean"], yerr=stats["std"].to_numpy(dtype=float), marker="o", capsize=3,
                    label=literal(f"{strategy} ({key[1]})" if modes else strategy),
                    linestyle=":" if strategy.startswith("random") else "-")
    # PruningPlan.fraction: over the neurons of the layers the plan covers, not the whole model's (helper 191)
    ax.set_xlabel("fraction of the planned layers' MLP neurons pruned (mean over runs)")
    ax.set_ylabel(literal(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
