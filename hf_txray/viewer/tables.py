"""The viewer's overview, search and transfer tables, as DataFrames (strings from a dataset are returned as they are,
for the UI to show as text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from ..metrics import mean_length, row_totals
from ..report import DEFAULT_MIN_COUNT, STATUSES, corpus_text
from .data import ResultsView, chosen_layer, display_values, layer_filter, rounded, yes_no

if TYPE_CHECKING:
    from ..report import TransferReport


# ----- overview --------------------------------------------------------------------------------------------------
def stages_table(view: ResultsView) -> pd.DataFrame:
    """One row per stage: model, site, corpus and its size, features, credited neurons."""
    rows = []
    for stage in view.stages:
        if stage in view.profiles:
            p = view.profiles[stage]
            m = p.meta
            rows.append({"stage": stage, "model": m.model_id, "site": m.site, "corpus": m.dataset_id or "in-memory texts",
                         "texts": m.num_examples, "positions": m.num_positions, "features": ", ".join(m.feature_types),
                         "credited neurons": int((p.neuron_count > 0).sum()),
                         "neurons": p.num_rows})
        else:  # known only from reports: each layer's neurons from a report that holds it (ResultsView.stage_report)
            report = view.stage_report(stage)
            a = stage == report.meta.stage_a
            credited = neurons = 0
            for layer in view.stage_layers(stage):
                held = view.stage_report(stage, layer)
                lines = held.neurons[held.neurons["layer"].to_numpy() == layer]
                credited += int((lines["count_a" if stage == held.meta.stage_a else "count_b"] > 0).sum())
                neurons += len(lines)
            rows.append({"stage": stage, "model": report.meta.model_a if a else report.meta.model_b,
                         "site": report.meta.site,
                         # a fingerprint (texts given without a dataset_id) as a profile's row words it
                         "corpus": corpus_text(report.meta.dataset_a if a else report.meta.dataset_b),
                         "texts": None, "positions": None, "features": ", ".join(report.meta.feature_types),
                         "credited neurons": credited, "neurons": neurons})
    return pd.DataFrame(rows)


def reports_table(view: ResultsView) -> pd.DataFrame:
    """One row per report: stages, status shares, mean Hellinger per feature type, and beside them the split-half
    noise floors (``H half``: A -> B at half size; ``floor A`` / ``floor B``: the same between two halves of one
    stage) and the share of shared neurons changed beyond sampling noise."""
    rows = []
    for name, report in view.reports.items():
        summary = report.summary()
        row = {"report": name, "stage A": report.meta.stage_a, "stage B": report.meta.stage_b}
        row.update({status: summary[f"share_{status}"] for status in STATUSES})
        for status in ("lost", "gained"):
            if f"matched_share_{status}" in summary:
                row[f"{status} half"] = summary[f"matched_share_{status}"]
                row[f"{status} floor A"] = summary[f"noise_floor_share_{status}_a"]
                row[f"{status} floor B"] = summary[f"noise_floor_share_{status}_b"]
        for ft in report.meta.feature_types:
            row[f"mean H {ft}"] = summary[f"mean_hellinger_{ft}"]
            if f"matched_hellinger_{ft}" in summary:
                row[f"H half {ft}"] = summary[f"matched_hellinger_{ft}"]
                row[f"floor A {ft}"] = summary[f"noise_floor_hellinger_{ft}_a"]
                row[f"floor B {ft}"] = summary[f"noise_floor_hellinger_{ft}_b"]
            if f"share_changed_{ft}" in summary:
                row[f"changed {ft}"] = summary[f"share_changed_{ft}"]
        rows.append(row)
    return rounded(pd.DataFrame(rows, columns=["report", "stage A", "stage B", *STATUSES]) if not rows
                    else pd.DataFrame(rows))


def layer_summary(view: ResultsView, report_name: str | None = None) -> pd.DataFrame:
    """Per-layer summary: the report's (status counts and shares, mean/median Hellinger, mean length shift), or
    without reports the first profile's (credited neurons, mass, mean length per feature type)."""
    if report_name:
        return rounded(view.report(report_name).layers)
    if view.reports:
        return rounded(next(iter(view.reports.values())).layers)
    stage = next(iter(view.profiles))
    stats = view.stats(stage)
    frame = stats.groupby("layer").agg(credited=("count", lambda c: int((c > 0).sum())), mass=("mass", "sum"))
    for ft in view.profiles[stage].feature_types:
        frame[f"mean_length_{ft}"] = pd.Series(mean_length(stats[f"length_{ft}"], stats["layer"]))
    return rounded(frame.reset_index())


# ----- search ----------------------------------------------------------------------------------------------------
def matching_features(view: ResultsView, stage: str, feature_type: str, value: str) -> list[str]:
    """The feature values `value` names: itself when profiled, else those equal ignoring case and surrounding
    spaces (``"##ing"`` and ``"Ġthe"`` style markers are part of the value)."""
    index = view.vocab_index(stage, feature_type)
    if value in index:
        return [value]
    wanted = value.strip().casefold()
    return [f for f in index if f.strip().casefold() == wanted]


def search_feature(view: ResultsView, stage: str, feature_type: str, value: str, by: str = "probability",
                   min_count: int = DEFAULT_MIN_COUNT, n: int = 50, layer: Any = None) -> pd.DataFrame:
    """Which neurons prefer `value`: neurons credited on it at `stage`, ranked by probability or by mass, among the
    neurons credited at least `min_count` times with a value of `feature_type` at `stage` (a probability from fewer
    credits is mostly sampling noise: the floor of the transfer report's rankings, ``DEFAULT_MIN_COUNT``, which
    counts the same credits: :meth:`~hf_txray.TransferReport.enough_credits`).

    Columns: layer, neuron, feature, probability (its share of the neuron's mass for this feature type), mass,
    count, neuron mass, neuron count, and the neuron's top value.

    Raises:
        ConfigurationError: empty value, unknown feature type, or a value never credited (with close values).
    """
    if by not in ("probability", "mass"):
        raise ConfigurationError(f"Rank by 'probability' or 'mass', not {by!r}.")
    value = "" if value is None else str(value)
    if not value.strip():
        raise ConfigurationError(f"Type a {feature_type} value to search for.")
    profile = view.profile(stage)
    table = profile.tables[view._feature(stage, feature_type)]
    names = matching_features(view, stage, feature_type, value)
    if not names:
        wanted = value.strip().casefold()
        close = sorted(f for f in view.vocab_index(stage, feature_type) if f.casefold().startswith(wanted[:3]))[:8]
        hint = f" Values starting alike: {', '.join(map(repr, close))}." if close else ""
        raise ConfigurationError(f"No neuron was credited on the {feature_type} {value!r} at stage {stage!r}.{hint}")
    index = view.vocab_index(stage, feature_type)
    # the credits the probabilities rest on: of a sparse feature type (a user feature labelling digits) a few of the
    # neuron's, where its top values came from 7 to 17 digit credits under a floor of 20 (helper 273)
    credits = row_totals(table.rows, table.count, len(view.stats(stage)))
    mask = np.isin(table.feature_ids, [index[f] for f in names]) & (table.mass > 0)
    mask &= credits[table.rows] >= int(min_count or 1)
    rows, fids = table.rows[mask], table.feature_ids[mask]
    mass, count = table.mass[mask], table.count[mask]
    totals = view.row_totals(stage, feature_type)[rows]
    stats = view.stats(stage).iloc[rows]
    frame = pd.DataFrame({
        "layer": stats["layer"].to_numpy(), "neuron": stats["neuron"].to_numpy(),
        "feature": np.array(table.vocab, dtype=object)[fids] if len(fids) else np.array([], dtype=object),
        "probability": np.where(totals > 0, mass / np.where(totals > 0, totals, 1), 0.0), "mass": mass,
        "count": count, "neuron mass": stats["mass"].to_numpy(), "neuron count": stats["count"].to_numpy(),
        f"top {feature_type}": stats[f"top_{feature_type}"].to_numpy(),
    })
    frame = layer_filter(frame, layer, list(profile.meta.layers), f"stage {stage!r}")
    other = "mass" if by == "probability" else "probability"
    frame = frame.sort_values([by, other, "layer", "neuron"], ascending=[False, False, True, True], kind="stable")
    return first_rows(frame, n, rounded)


MATCHES = "matches"  # attrs key of a search's result: how many rows matched, of which the first n are returned


def first_rows(frame: pd.DataFrame, n: Any, shown: Any) -> pd.DataFrame:
    """The first `n` rows of the ranked `frame`, formatted by `shown`, with ``attrs[MATCHES]`` = how many rows matched
    in all: a search lists its first rows, and its message counts every match (the app said "50 neuron(s) ...
    credited on the pos 'NOUN'" of the 50 listed when 78 were credited on it)."""
    out = shown(frame.head(int(n)))
    out.attrs[MATCHES] = len(frame)
    return out


def matches_text(table: pd.DataFrame, what: str) -> str:
    """``"78 neuron(s)<what> (the first 50 listed)"``: the number of matches of a search (:func:`first_rows`), and how
    many of them the table lists when it lists fewer."""
    total = int(table.attrs.get(MATCHES, len(table)))
    return f"{total} neuron(s){what}" + (f" (the first {len(table)} listed)" if total > len(table) else "")


def _report_columns(report: "TransferReport") -> list[str]:
    columns = ["layer", "neuron", "status", "count_a", "count_b", "mass_a", "mass_b"]
    return columns + [f"hellinger_{ft}" for ft in report.meta.feature_types]


def search_status(view: ResultsView, report_name: str, status: str, n: int = 200, layer: Any = None) -> pd.DataFrame:
    """Neurons of a report with the given status (lost, gained, shared, dead), by mass in A plus B (descending)."""
    if status not in STATUSES:
        raise ConfigurationError(f"Status must be one of {', '.join(STATUSES)}, not {status!r}.")
    report = view.report(report_name)
    frame = layer_filter(report.neurons[report.neurons["status"] == status], layer, report.meta.layers,
                         f"report {report.name!r}")
    order = (frame["mass_a"] + frame["mass_b"]).to_numpy()
    frame = frame.iloc[np.lexsort((frame["neuron"].to_numpy(), frame["layer"].to_numpy(), -order))]
    return first_rows(frame[_report_columns(report)], n, rounded)


def search_hellinger(view: ResultsView, report_name: str, feature_type: str, low: float, high: float,
                     n: int = 200, layer: Any = None, min_count: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
    """Shared neurons whose Hellinger distance (for `feature_type`), as the viewer shows it (:func:`display_values`),
    lies in [low, high], highest first, among those credited at least `min_count` times with a value of it in both
    stages (the others have too few credits to rank: ``TransferReport.enough_credits``)."""
    report = view.report(report_name)
    if feature_type not in report.meta.feature_types:
        raise ConfigurationError(f"Feature type {feature_type!r} is not in report {report_name!r}: "
                                 f"{report.meta.feature_types}.")
    low, high = float(low), float(high)
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigurationError(f"The Hellinger range must satisfy 0 <= low <= high <= 1 (got {low} to {high}).")
    column = f"hellinger_{feature_type}"
    h = display_values(report.neurons[column].to_numpy())  # the values as shown: a shown value typed as an end is in
    enough = report.enough_credits(feature_type, int(min_count or 1))  # with a value of it, as the rankings
    frame = layer_filter(report.neurons[~np.isnan(h) & (h >= low) & (h <= high) & enough.to_numpy()], layer,
                         report.meta.layers, f"report {report.name!r}")
    frame = frame.sort_values([column, "layer", "neuron"], ascending=[False, True, True], kind="stable")
    columns = _report_columns(report) + [f"hellinger_length_{feature_type}", f"length_shift_{feature_type}"]
    columns += [c for c in (f"p_hellinger_{feature_type}", f"changed_{feature_type}") if c in report.neurons]
    return first_rows(frame[list(dict.fromkeys(columns))], n, lambda rows: rounded(yes_no(rows)))


# ----- transfer --------------------------------------------------------------------------------------------------
def transfer_table(view: ResultsView, report_name: str, feature_type: str | None = None, which: str = "most",
                   n: int = 20, min_count: int = DEFAULT_MIN_COUNT, layer: Any = None) -> pd.DataFrame:
    """The `n` most (or least) changed shared neurons of a report credited at least `min_count` times in both
    stages, with each neuron's top value in A and B, and whether the change exceeds sampling noise."""
    if which not in ("most", "least"):
        raise ConfigurationError(f"Choose 'most' or 'least' changed, not {which!r}.")
    report = view.report(report_name)
    ft = feature_type or report.meta.feature_types[0]
    # int() read layer 1.7 as layer 1; among the report's layers, said as the searches say it (not "is not in this
    # report", the report's own wording)
    layer = chosen_layer(layer, report.meta.layers, f"report {report.name!r}")
    rank = report.most_changed if which == "most" else report.least_changed
    frame = rank(int(n), ft, layer=layer, min_count=int(min_count or 1))
    columns = ["layer", "neuron", "status", f"hellinger_{ft}", f"hellinger_length_{ft}", f"length_a_{ft}",
               f"length_b_{ft}", "count_a", "count_b", "mass_a", "mass_b"]
    columns += [c for c in (f"p_hellinger_{ft}", f"changed_{ft}") if c in frame]
    out = frame[columns].copy()
    for side, stage in (("A", report.meta.stage_a), ("B", report.meta.stage_b)):
        if stage in view.profiles:
            stats = view.stats(stage)
            rows = [view.row(int(la), int(ne), stage) for la, ne in zip(out["layer"], out["neuron"])]
            out[f"top {ft} {side}"] = stats[f"top_{ft}"].to_numpy()[rows] if rows else []
    return rounded(yes_no(out))


def neuron_from_row(columns: list[str], row: list[Any]) -> tuple[int, int]:
    """The (layer, neuron) of a table row given its column names (for 'click a row to open the neuron')."""
    try:
        values = dict(zip(columns, row))
        return int(values["layer"]), int(values["neuron"])
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError("This row names no neuron (it has no layer and neuron).") from None
