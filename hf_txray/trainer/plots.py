"""The trainer's timeline plots: mean Hellinger per layer over steps, tag mass share over steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..plots.common import labelled_legend, layer_colors, literal, new_figure, save_figure, slug, value_labels
from ..profile import Profile
from ..features import is_tag_feature
from .arguments import REFERENCES

MAX_PLOTTED_TAGS = 8


def mass_share_file(feature_type: str) -> str:
    """The file name of the mass-share timeline of `feature_type` in ``txray/plots/``: the feature's name as a file
    name can hold it (:func:`~hf_txray.plots.common.slug`). A user feature's name is any string: written as it was,
    ``"polarity/sign"`` made a subfolder and ``"x/../../../../f"`` wrote the figure outside ``output_dir``."""
    return f"mass_share_{slug(feature_type)}.png"


def write_plots(timeline: pd.DataFrame, latest: Profile, folder: str | Path) -> list[Path]:
    """Draw the timeline: mean Hellinger per layer over steps, and tag mass share over steps vs corpus frequency.

    Args:
        timeline (`pd.DataFrame`): :meth:`TXRayCallback.timeline_frame`.
        latest (`Profile`): the last profile, for the corpus frequency of each tag.
        folder (`str` or `Path`): where the PNG files go.

    Returns:
        The paths written: ``hellinger_by_layer.png`` (once two profiles exist) and ``mass_share_<feature>.png``
        (:func:`mass_share_file`).

    Example:
        ```python
        >>> write_plots(callback.timeline_frame(), callback.profiles["step-100"], "out/txray/plots")
        ```
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if any(c.startswith("vs_first/layer_") for c in timeline.columns):
        written.append(_plot_hellinger(timeline, latest, folder / "hellinger_by_layer.png"))
    for ft in latest.feature_types:
        if is_tag_feature(ft, latest.meta.feature_kinds):
            written.append(_plot_mass_share(timeline, latest, ft, folder / mass_share_file(ft)))
    return written


def _plot_hellinger(timeline: pd.DataFrame, latest: Profile, path: Path) -> Path:
    figure, axes = new_figure(len(latest.feature_types), len(REFERENCES), 5.0, 3.2)
    for i, ft in enumerate(latest.feature_types):
        for j, ref in enumerate(REFERENCES):
            ax = axes[i][j]
            for layer, color in zip(latest.layers, layer_colors(len(latest.layers))):
                column = f"vs_{ref}/layer_{layer}/mean_hellinger_{ft}"
                if column in timeline:
                    ax.plot(timeline["step"], pd.to_numeric(timeline[column]), marker="o", ms=3, color=color,
                            label=f"layer {layer}")
            ax.set(title=f"{literal(ft)}: vs {ref} profile", xlabel="step", ylabel="mean Hellinger")
            _whole_steps(ax)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.suptitle("TX-Ray: mean Hellinger distance of shared neurons, per layer")
    return save_figure(figure, path, dpi=100)


def _plot_mass_share(timeline: pd.DataFrame, latest: Profile, ft: str, path: Path) -> Path:
    figure, axes = new_figure(1, 1, 8.0, 4.0)
    ax = axes[0][0]
    frequency = latest.feature_frequency(ft).head(MAX_PLOTTED_TAGS)
    colors = [f"C{i}" for i in range(len(frequency))]
    lines = []
    for (tag, corpus_share), color, label in zip(frequency.items(), colors, value_labels(frequency.index)):
        column = f"mass_share_{ft}/{tag}"
        values = pd.to_numeric(timeline[column]) if column in timeline else [0.0] * len(timeline)
        lines += ax.plot(timeline["step"], values, marker="o", ms=3, color=color, label=label)
        ax.axhline(corpus_share, color=color, linestyle="--", linewidth=0.8)
    ax.set(title=f"TX-Ray: {literal(ft)} mass share over training (dashed: corpus frequency)", xlabel="step",
           ylabel="share of credited mass")
    _whole_steps(ax)
    ax.grid(alpha=0.3)
    labelled_legend(ax, lines, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(figure, path, dpi=100)


def _whole_steps(ax) -> None:
    """Ticks at whole training steps only (matplotlib put ticks at 2.5 and 3.5 between few snapshots: helper 167)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
