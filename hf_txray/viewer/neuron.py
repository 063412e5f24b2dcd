"""One neuron in the viewer: its stats, status, distributions, top examples, summary sentence, output effects and
activation histogram per stage, as DataFrames and text spans.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from ..features import display_order
from ..provenance import original_neuron
from ..tables import clip_left, clip_right, shown_example
from .data import ResultsView, display_value, rounded


NOT_COMPARABLE = "not comparable"  # the status of a neuron between two stages compare refuses
LAYER_NOT_PROFILED = "layer not profiled"  # the status of a neuron at a stage profiled on other layers


# ----- one neuron ------------------------------------------------------------------------------------------------
def neuron_stats(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """The neuron's stats per stage: credited or dead, mass, count, per feature type length, entropy, top value.

    The status says "credited" (credited at least once), as ``hf-txray show``, the overview's "credited neurons" and
    the README name the count, where the saved ``neuron_cards`` table keeps its value ``"active"``; a stage profiled
    on other layers (:meth:`ResultsView.layer_missing`) has the status "layer not profiled" and no numbers.

    Raises:
        ConfigurationError: no stage of `stages` was profiled on the layer
            (:meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`).
    """
    layer, neuron = view.check_neuron(layer, neuron)
    stages = list(dict.fromkeys(stages))
    view.stages_with_layer(layer, stages)
    rows = []
    for stage in stages:
        if view.layer_missing(stage, layer):
            row = {"stage": stage, "status": LAYER_NOT_PROFILED}
        elif stage in view.profiles:
            stats = view.stat_row(stage, layer, neuron)
            row = {"stage": stage, "status": "credited" if stats["count"] > 0 else "dead", **stats}
        else:  # a stage only known from a report: what the report holds (of the layer, beside the other stage)
            report = view.stage_report(stage, layer, stages)
            side = "a" if stage == report.meta.stage_a else "b"
            line = report.neurons.iloc[view.report_row(report, layer, neuron)]
            row = {"stage": stage, "status": "credited" if line[f"count_{side}"] > 0 else "dead",
                   "mass": float(line[f"mass_{side}"]), "count": int(line[f"count_{side}"])}
            row.update({f"length_{ft}": int(line[f"length_{side}_{ft}"]) for ft in report.meta.feature_types})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame["status"].eq(LAYER_NOT_PROFILED).any():  # counts stay whole numbers beside that stage's missing ones
        frame = frame.astype({c: "Int64" for c in frame.columns if c == "count" or c.startswith("length_")})
    return rounded(frame)


def neuron_status(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str) -> str:
    """``shared`` / ``lost`` / ``gained`` / ``dead`` between two stages; ``not comparable`` when ``compare`` refuses
    their profiles (:meth:`ResultsView.comparison_refused`), or when a stage of the pair was not profiled on the
    layer (:meth:`ResultsView.layer_missing`)."""
    layer, neuron = view.check_neuron(layer, neuron)
    report = view.pair_report(stage_a, stage_b, layer)
    if report is not None:
        return str(report.neurons["status"].iat[view.report_row(report, layer, neuron)])
    # a stage known only from a report of other layers has no row to read (two profiles of other layers are refused
    # by compare: the refusal above)
    if view.comparison_refused(stage_a, stage_b) or any(view.layer_missing(s, layer) for s in (stage_a, stage_b)):
        return NOT_COMPARABLE

    def credited(stage: str) -> bool:
        if stage in view.profiles:
            return view.stat_row(stage, layer, neuron)["count"] > 0
        report = view.stage_report(stage, layer, (stage_a, stage_b))
        side = "a" if stage == report.meta.stage_a else "b"
        return bool(report.neurons[f"count_{side}"].iat[view.report_row(report, layer, neuron)] > 0)

    a, b = credited(stage_a), credited(stage_b)
    return "shared" if a and b else "lost" if a else "gained" if b else "dead"


def pruned_numbering(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> str:
    """Which original neuron `neuron` of `layer` is, at each of `stages` profiled on a model pruned with
    ``mode="remove"`` (which numbers the kept neurons afresh: ``provenance["runtime"]["pruned"]["kept"]``), as
    ``"original neuron 3 of the unpruned layer at stage 'a' and 'b'"``; "" when no stage records such a pruning of
    the layer. The Neuron tab named only the new number, which is another unit of the unpruned model (`hf-txray show`
    and the card say it). A stage not profiled on the layer (:meth:`~hf_txray.viewer.data.ResultsView.layer_missing`)
    shows nothing of it and is not named (the title named the numbering of a pruned stage that showed nothing beside
    an unpruned stage's neuron, helper 442)."""
    originals: dict[int, list[str]] = {}
    for stage in dict.fromkeys(stages):
        if stage in view.profiles and not view.layer_missing(stage, layer):
            original = original_neuron(view.profiles[stage].meta.provenance, layer, neuron)
            if original is not None:
                originals.setdefault(original, []).append(repr(stage))
    return "; ".join(f"original neuron {original} of the unpruned layer at stage {' and '.join(names)}"
                     for original, names in originals.items())


def neuron_comparison(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str) -> pd.DataFrame:
    """Per feature type: the neuron's Hellinger distance A -> B, Hellinger length, lengths and length shift, read
    from the pair's report (stored, or derived from the two profiles over the feature types they share:
    :meth:`ResultsView.report_for`; no rows when they share none, when ``compare`` refuses the two profiles, or when
    no report covers the pair and a stage is known only from another report: :meth:`ResultsView.profile_missing`).

    Raises:
        ConfigurationError: a stage of the pair has neither a profile nor a report covering it.
    """
    layer, neuron = view.check_neuron(layer, neuron)
    report = view.pair_report(stage_a, stage_b, layer)
    known = all(s in view.profiles or view.stage_report(s) is not None for s in (stage_a, stage_b))
    if report is None and known:  # no feature type in common, or a stage whose distributions are not at hand
        return pd.DataFrame(columns=["feature type", "hellinger", "hellinger length", "length A", "length B",
                                     "length shift"])
    if report is None:
        raise ConfigurationError(f"No report compares {stage_a!r} with {stage_b!r}, and one of them is no stage of "
                                 f"these results (stages: {', '.join(view.stages)}).")
    line = report.neurons.iloc[view.report_row(report, layer, neuron)]
    rows = [{"feature type": ft, "hellinger": line[f"hellinger_{ft}"],
             "hellinger length": int(line[f"hellinger_length_{ft}"]),
             "length A": int(line[f"length_a_{ft}"]), "length B": int(line[f"length_b_{ft}"]),
             "length shift": int(line[f"length_shift_{ft}"])} for ft in report.meta.feature_types]
    return rounded(pd.DataFrame(rows))


def neuron_features(view: ResultsView, stage: str, feature_type: str, layer: int,
                    neuron: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """A neuron's credited values of one feature type: (values, mass, count, probability), most mass first (ties
    by value): ``Profile.feature_stats`` as columns.

    Raises:
        ConfigurationError: `stage` was not profiled on the layer (named with the stage and its layers:
            ``Profile.feature_stats`` named neither), or has no profile or no such feature type.
    """
    layer, neuron = view.check_neuron(layer, neuron)
    view.row(layer, neuron, stage)
    stats = view.profile(stage).feature_stats(layer, neuron, view._feature(stage, feature_type))
    return (stats["feature"].tolist(), stats["mass"].to_numpy(np.float64), stats["count"].to_numpy(np.int64),
            stats["probability"].to_numpy(np.float64))


def neuron_distributions(view: ResultsView, layer: int, neuron: int, stages: Iterable[str],
                         feature_types: Iterable[str] | None = None, top: int = 10) -> pd.DataFrame:
    """Long table for the bar charts: per feature type, the union of each stage's `top` values.

    Columns: feature type, feature, stage, probability, mass, count (0 where a stage never credited the value).
    Values are ordered by their highest probability in any stage. A stage profiled on other layers has no rows
    (:meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`: raised when no stage was profiled on the layer).
    """
    layer, neuron = view.check_neuron(layer, neuron)
    stages = [s for s in view.stages_with_layer(layer, stages) if s in view.profiles]
    types = list(feature_types) if feature_types else display_order(view.feature_types, view.feature_kinds)
    columns: dict[str, list] = {c: [] for c in ("feature type", "feature", "stage", "probability", "mass", "count")}
    for ft in types:
        per_stage = {s: neuron_features(view, s, ft, layer, neuron) for s in stages
                     if ft in view.profile(s).tables}
        chosen: dict[str, float] = {}
        for names, _, _, probability in per_stage.values():
            for f, p in zip(names[:top], probability[:top]):
                chosen[f] = max(chosen.get(f, 0.0), float(p))
        order = sorted(chosen, key=lambda f: (-chosen[f], f))
        for stage, (names, mass, count, probability) in per_stage.items():
            where = {f: i for i, f in enumerate(names)}
            for f in order:
                i = where.get(f)
                columns["feature type"].append(ft)
                columns["feature"].append(f)
                columns["stage"].append(stage)
                columns["probability"].append(display_value(probability[i]) if i is not None else 0.0)
                columns["mass"].append(display_value(mass[i]) if i is not None else 0.0)
                columns["count"].append(int(count[i]) if i is not None else 0)
    frame = pd.DataFrame(columns)
    return frame.astype({"probability": "float64", "mass": "float64", "count": "int64"})


# Winning tokens are coloured by their activation relative to the neuron's best example (highlighted-text labels).
ACTIVATION_BUCKETS = (  # (lower bound of activation / best, label, colour), strongest first
    (0.9, ">= 90% of the best activation", "#d7301f"),
    (0.75, "75-90%", "#ef6548"),
    (0.5, "50-75%", "#fc8d59"),
    (0.25, "25-50%", "#fdbb84"),
    (float("-inf"), "< 25%", "#fdd49e"),
)
ACTIVATION_COLORS = {label: color for _, label, color in ACTIVATION_BUCKETS}


def activation_bucket(ratio: float) -> str:
    """The label of :data:`ACTIVATION_BUCKETS` for an activation / best activation ratio."""
    return next(label for low, label, _ in ACTIVATION_BUCKETS if ratio >= low)


def highlighted_examples(view: ResultsView, stage: str, layer: int, neuron: int, limit: int | None = None,
                         context: int | None = 50) -> list[tuple[str, str | None]]:
    """The neuron's top examples as (text, label) spans for a highlighted-text view, one example a line.

    Each line is ``#rank  activation  `` and the left context (no label), the winning token (labelled with its
    :func:`activation_bucket`: its activation over the neuron's best), and the right context. Contexts are cut to
    `context` characters next to the token (marked with ``…``) and their line breaks shown as spaces, so that an
    example fits one line; :func:`examples_table` has them in full.
    """
    layer, neuron = view.check_neuron(layer, neuron)
    if stage not in view.profiles:
        return [(f"No profile for stage {stage} in these results: no examples.", None)]
    missing = view.layer_missing(stage, layer)
    if missing:
        return [(f"No examples: {missing}.", None)]
    ex = view.example_columns(stage, layer, neuron)
    if limit:
        ex = {c: v[:limit] for c, v in ex.items()}
    if not len(ex["rank"]):
        return [("No examples: this neuron was never credited at this stage.", None)]
    best = float(ex["activation"].max())
    spans: list[tuple[str, str | None]] = []
    for i, (rank, activation, left, token, right) in enumerate(
            zip(ex["rank"], ex["activation"], ex["left"], ex["token"], ex["right"])):
        left, token, right = shown_example(left, token, right)
        if context is not None and len(left) > context:
            left = "…" + clip_left(left, context)
        if context is not None and len(right) > context:
            right = clip_right(right, context) + "…"
        prefix = f"{'' if i == 0 else chr(10)}#{rank + 1}  {activation:.4g}   "
        spans.append((prefix + left, None))
        spans.append((token, activation_bucket(float(activation) / best if best > 0 else 0.0)))
        spans.append((right, None))
    return [s for s in spans if s[0]]


def examples_table(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """Top examples of the neuron in each stage: stage, rank, activation, token, left and right context (as
    :func:`~hf_txray.tables.shown_example` shows them: one line); none of a stage profiled on other layers (raised
    when no stage was profiled on the layer: :meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`)."""
    layer, neuron = view.check_neuron(layer, neuron)
    columns: dict[str, list] = {c: [] for c in ("stage", "rank", "activation", "token", "left", "right")}
    for stage in view.stages_with_layer(layer, stages):
        if stage in view.profiles:
            ex = view.example_columns(stage, layer, neuron)
            columns["stage"] += [stage] * len(ex["rank"])
            columns["rank"] += [int(r) + 1 for r in ex["rank"]]
            columns["activation"] += [display_value(a) for a in ex["activation"]]
            for left, token, right in zip(ex["left"], ex["token"], ex["right"]):
                for name, value in zip(("left", "token", "right"), shown_example(left, token, right)):
                    columns[name].append(value)
    return pd.DataFrame(columns).astype({"rank": "int64", "activation": "float64"})


# ----- neuron pages (issue 15): summary, output effects, activation distribution, live text -------------------------
NO_OUTPUT_EFFECTS = ("No output effects for this stage: profile with analyze(..., output_effects=True) on a model "
                     "with an LM head (causal LM or masked LM) to store the tokens each neuron promotes and "
                     "suppresses.")


def neuron_summary(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str) -> str:
    """The plain-words summary of the neuron at each profiled stage of the pair, one line each: each stage's
    :class:`~hf_txray.summary.NeuronCard` summary; the change clause comes from the pair's report (on stage B) when it
    has significance columns (``changed_<ft>``, ``p_hellinger_<ft>``). A stage profiled on other layers says so
    (``"a: layer 1 was not profiled at stage 'a' (its layers: [0])."``). A pair picked the other way round from its
    stored report (:meth:`~hf_txray.viewer.data.ResultsView.reversed_report`) ends with that report's lines, named
    and in its own order.

    Raises:
        ConfigurationError: neither stage was profiled on the layer
            (:meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`).
    """
    from ..summary import neuron_card

    from ..display import report_neuron_text

    layer, neuron = view.check_neuron(layer, neuron)
    view.stages_with_layer(layer, [stage_a, stage_b])
    report = view.pair_report(stage_a, stage_b, layer)
    lines = []
    for stage in dict.fromkeys([stage_a, stage_b]):
        missing = view.layer_missing(stage, layer)
        if missing:
            lines.append(f"{stage}: {missing}.")
        elif stage in view.profiles:
            reports = [report] if report is not None and stage == stage_b else []  # the change is said once
            lines.append(f"{stage}: {neuron_card(view.profile(stage), layer, neuron, reports=reports).summary}")
        # no report of the pair says its change
        elif report is None and (unprofiled := view.profile_missing(stage, layer, (stage_a, stage_b))):
            lines.append(f"{stage}: no summary, as {unprofiled}.")
    if report is not None and stage_b not in view.profiles and not view.layer_missing(stage_b, layer):
        # the report holds the neuron's status, credits, Hellinger distances, p-values and changed flags even where
        # the stages' profiles are not at hand: said as `hf-txray show REPORT --neuron L:N` says them
        lines.append(report_neuron_text(report, layer, neuron))
    reverse = view.reversed_report(stage_a, stage_b) if report is None else None
    if reverse is not None and layer in reverse.meta.layers:
        # the title names the report of the pair the other way round, and the stats read it: said here too, in its
        # own order (the summary named it only as where a stage is known from, and none of its figures)
        lines.append(f"Read from report {reverse.name!r}, which compares the pair the other way round "
                     f"({stage_b} -> {stage_a}):\n{report_neuron_text(reverse, layer, neuron)}")
    return "\n".join(lines) or "No profile for these stages, and no report of the pair."


def neuron_output_effects(view: ResultsView, layer: int, neuron: int, stages: Iterable[str],
                          k: int = 10) -> pd.DataFrame:
    """Per stage, the neuron's top `k` promoted and suppressed tokens side by side: stage, rank, promoted,
    logit (promoted), suppressed, logit (suppressed). Empty when no stage has output effects; none of a stage
    profiled on other layers (raised when no stage was profiled on the layer:
    :meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`)."""
    layer, neuron = view.check_neuron(layer, neuron)
    columns = ["stage", "rank", "promoted", "logit +", "suppressed", "logit -"]
    rows = []
    for stage in view.stages_with_layer(layer, stages):
        effects = view.profiles[stage].output_effects if stage in view.profiles else None
        if effects is None:
            continue
        mine = effects[(effects["layer"] == layer) & (effects["neuron"] == neuron)]
        up = mine[mine["direction"] == "promoted"].sort_values("rank").head(k)
        down = mine[mine["direction"] == "suppressed"].sort_values("rank").head(k)
        for i, (u, d) in enumerate(zip(up.itertuples(), down.itertuples())):
            rows.append([stage, i + 1, str(u.token), float(u.logit), str(d.token), float(d.logit)])
    return rounded(pd.DataFrame(rows, columns=columns))


def activation_facts(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """Per stage: credits, profiled positions, win rate (credits / positions), the token position that gave the
    neuron the most mass and that position's share of its mass (the first-position effect); both missing (drawn
    "–") at a stage where the neuron took no mass, whose card says position -1 and share 0 (the table showed them
    as a position and a share, helper 306). No row for a stage profiled on other layers (raised when no stage was
    profiled on the layer: :meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`)."""
    from ..summary import neuron_card

    layer, neuron = view.check_neuron(layer, neuron)
    rows = []
    for stage in view.stages_with_layer(layer, stages):
        if stage not in view.profiles:
            continue
        profile = view.profile(stage)
        card = neuron_card(profile, layer, neuron, top=1)
        none = card.top_position is None or card.top_position < 0
        rows.append({"stage": stage, "credits": card.count, "positions": card.positions, "win rate": card.win_rate,
                     "top position": None if none else card.top_position,
                     "share from top position": None if none else card.top_position_share})
    frame = pd.DataFrame(rows, columns=["stage", "credits", "positions", "win rate", "top position",
                                        "share from top position"])
    frame["top position"] = frame["top position"].astype("Int64")  # a position stays a whole number beside a gap
    frame["share from top position"] = frame["share from top position"].astype(float)
    return rounded(frame)


def histogram_data(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """The neuron's credited-activation histogram per stage: stage, low, high (finite, to draw: the open-ended
    outer bins get one more bin width), range (the bin in words: ``"< 0.001"`` and ``">= 1e+04"`` for the open
    ones), count; bins between the first and last non-empty bin of any stage. None of a stage profiled on other
    layers (raised when no stage was profiled on the layer:
    :meth:`~hf_txray.viewer.data.ResultsView.stages_with_layer`)."""
    layer, neuron = view.check_neuron(layer, neuron)
    parts = []
    for stage in view.stages_with_layer(layer, stages):
        profile = view.profiles.get(stage)
        if profile is None or profile.activation_histogram is None:
            continue
        hist = profile.activation_distribution(layer, neuron)
        edges = profile.histogram_edges()
        ratio = edges[1] / edges[0]
        hist["low"] = np.r_[edges[0] / ratio, edges]
        hist["high"] = np.r_[edges, edges[-1] * ratio]
        hist["range"] = ([f"< {edges[0]:.3g}"] + [f"{lo:.3g} to {hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:])]
                         + [f">= {edges[-1]:.3g}"])
        hist.insert(0, "stage", stage)
        parts.append(hist)
    if not parts:
        return pd.DataFrame(columns=["stage", "low", "high", "range", "count"])
    frame = pd.concat(parts, ignore_index=True)
    used = frame.groupby(["low"])["count"].transform("sum") > 0
    if used.any():
        lo, hi = frame.loc[used, "low"].min(), frame.loc[used, "low"].max()
        frame = frame[(frame["low"] >= lo) & (frame["low"] <= hi)]
    return frame.reset_index(drop=True)
