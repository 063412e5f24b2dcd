"""Readable terminal summaries of profiles and transfer reports (used by `hf-txray show` and the demo). Each is
printed from a view (``profile_view``, ``report_view``, ``neuron_view``, ``report_neuron_view``: the same figures as
data), which `hf-txray show --json` writes as JSON (:func:`json_data`)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigurationError
from .features import default_feature_type, tag_features
from .metrics import mean_length
from .profile import Profile, batch_limits_of_parts
from .provenance import original_neuron, pruning_note, recorded_pruning
from .report import DEFAULT_MIN_COUNT, TransferReport, corpus_text
from .tables import (clip_left, clip_right, one_line, percent, shown_example, text_table, too_few_credits_text,
                     untested_unknown)

LEGEND = """\
legend:
  shared = credited in both stages; lost = only in A (deactivated); gained = only in B; dead = in neither.
  Hellinger distance between a neuron's preference distributions: 0 = the same, 1 = disjoint.
  length = the number of distinct values a neuron was credited on (short = specialised); length shift = B - A.
  noise floor = the same figure between two halves of ONE stage (each text, with its copies, in the half its
    content hash gives): what sampling alone produces. Compare it with "A -> B at half size" (both at half the credits): only the excess is change.
  changed = shared neurons whose A -> B change exceeds sampling noise (chi-square test with the split-half design
    effect, Benjamini-Hochberg at the report's alpha), as a share of the shared neurons; "changed of tested": of
    the neurons with enough credits for the test (two or more feature categories after pooling rare ones)."""


def profile_view(profile: Profile, top: int = 5) -> dict[str, Any]:
    """What :func:`profile_text` prints, as data (`hf-txray show --json` writes it as JSON): ``meta`` (the
    :class:`~hf_txray.ProfileMeta`), ``layers`` (per layer: credited neurons, mass, largest count, mean length per
    feature type) and ``mass_share`` (per tag feature type: the `top` values by mass share beside their corpus
    frequency, and how many values there are)."""
    m = profile.meta
    stats = profile.neuron_stats()
    per_layer = stats.groupby("layer").agg(
        credited=("count", lambda c: int((c > 0).sum())), mass=("mass", "sum"), max_count=("count", "max"))
    for ft in m.feature_types:
        per_layer[f"mean_length_{ft}"] = pd.Series(mean_length(stats[f"length_{ft}"], stats["layer"]))
    shares = {}
    for ft in tag_features(m.feature_types, m.feature_kinds):
        share = pd.DataFrame({"mass_share": profile.mass_share(ft), "corpus_frequency": profile.feature_frequency(ft)})
        share = share.sort_values("mass_share", ascending=False)
        shares[ft] = {"num_values": len(share), "table": share.head(top).reset_index().rename(columns={"index": ft})}
    return {"kind": "profile", "stage": m.stage, "meta": m, "top": top, "layers": per_layer.reset_index(),
            "mass_share": shares}


def profile_text(profile: Profile, top: int = 5) -> str:
    """Header, per-layer credit summary, and the corpus's top feature values (:func:`profile_view`)."""
    view = profile_view(profile, top)
    m = profile.meta
    lines = [
        f"Profile {m.stage!r}: {m.model_id} ({m.site} site, {len(m.layers)} layers x {m.num_neurons} neurons)",
        f"corpus: {m.dataset_id or 'in-memory texts'} [{m.dataset_fingerprint}], {m.num_examples} texts, "
        f"{m.num_positions} token positions, {m.num_truncated} truncated, {m.num_empty} empty; "
        f"features: {', '.join(map(one_line, m.feature_types))}; top_k={m.top_k}",
    ]
    lines.append(_batching_line(m))
    credit = _credit_line(m)
    if credit:
        lines.append(credit)
    if m.provenance:
        from .provenance import reproduce_hint, sources_text

        lines.append(f"pinned: {sources_text(m.provenance, num_examples=m.num_examples)} ({reproduce_hint(profile)})")
    pruned = pruning_note(recorded_pruning(m.provenance)[1])
    if pruned:
        lines.append(pruned)
    lines += [
        "",
    ]
    lines.append(text_table(view["layers"], ".1f"))
    for ft, share in view["mass_share"].items():
        lines += ["", f"{one_line(ft)}: mass share vs corpus frequency (top {top})", text_table(share["table"])]
    return "\n".join(lines)


def _batching_line(m) -> str:
    """How the texts were cut and batched: long texts, the batch limits in effect and the padding share."""
    c = m.config
    long_texts = c.get("long_texts") or "truncate"
    cut = (f"windows of {c.get('max_length')} tokens, stride {c.get('stride')} "
           f"({m.num_windowed} of {m.num_examples} texts split)"
           if long_texts == "window" else f"truncated at {c.get('max_length')} tokens")
    parts = batch_limits_of_parts(m)
    if len(parts) == 1:
        limits = f"batches of {_limits_text(parts[0])}"
    else:  # the config holds the first part's limits only: name each part's
        limits = "merged parts batched differently: " + ", then ".join(
            f"{part['num_examples']} texts in batches of {_limits_text(part)}" for part in parts)
    multiple = (m.provenance or {}).get("options", {}).get("pad_to_multiple_of")
    if multiple == 0:
        limits += "; rows of one length a batch (no padding)"
    elif multiple and multiple > 1:
        limits += f"; widths rounded up to a multiple of {multiple}"
    # from the counts summed over every part: exact for a merged profile too
    padding = f"; padding {percent(1 - m.num_input_tokens / m.num_padded_tokens)}" if m.num_padded_tokens else ""
    return f"batching: {cut}; {limits}{padding}"


def _credit_line(m) -> str:
    """The options that change which positions are credited, when set: skipped first positions, a position quota."""
    c = m.config
    parts = []
    if c.get("skip_first_positions"):
        parts.append(f"first {c['skip_first_positions']} positions of each input not credited (skip_first_positions)")
    quota = c.get("max_positions")
    if quota and m.num_positions >= quota:
        parts.append(f"stopped after {quota} credited positions (max_positions)")
    elif quota:  # the texts ran out first: saying "stopped" would pass a short profile off as a full quota
        parts.append(f"max_positions={quota} not reached: the corpus (or a process's shard) ran out at "
                     f"{m.num_positions} credited positions")
    return "credit: " + "; ".join(parts) if parts else ""


def _limits_text(limits: dict) -> str:
    budget = limits.get("max_tokens_per_batch")
    return f"at most {limits.get('batch_size')} rows" + (f" and {budget} tokens" if budget else "")


def report_view(report: TransferReport, top: int = 5, min_count: int = DEFAULT_MIN_COUNT) -> dict[str, Any]:
    """What :func:`report_text` prints, as data (`hf-txray show --json` writes it as JSON): ``name``, ``meta`` (the
    report's :class:`~hf_txray.report.ReportMeta`), ``summary`` (:meth:`~hf_txray.TransferReport.summary`, which
    holds the noise table's figures), ``feature_type`` (the one the tables rank by), ``layers`` (the per-layer table's
    columns), ``mass_share`` (at most :data:`SHARE_ROWS` values, with how many there are) and ``most_changed`` /
    ``least_changed`` (the `top` neurons credited at least `min_count` times in both stages, with how many shared
    neurons have too few credits; an untested neuron's ``changed_<ft>`` is None, not False)."""
    meta = report.meta
    ft = default_feature_type(meta.feature_types, kinds=meta.feature_kinds, orders=meta.feature_orders)
    columns = ["layer", "share_shared", "share_lost", "share_gained"] + [
        f"mean_hellinger_{f}" for f in meta.feature_types] + [f"mean_length_shift_{ft}"]
    # A -> B at half size beside both floors, as the noise table reads them (the full-size mean beside one floor,
    # computed at half size over fewer neurons, looked like change where there was none; helper 120)
    columns += [c for c in (f"matched_hellinger_{ft}", f"noise_floor_hellinger_{ft}_a", f"noise_floor_hellinger_{ft}_b",
                            f"share_changed_{ft}") if c in report.layers]
    share = report.mass_share
    share = share[share["feature_type"] == ft].drop(columns="feature_type") if len(share) else share.iloc[:0]
    keep = ["layer", "neuron", f"hellinger_{ft}"] + [c for c in (f"p_hellinger_{ft}", f"changed_{ft}")
                                                       if c in report.neurons] + [
        f"length_a_{ft}", f"length_b_{ft}", "count_a", "count_b"]
    thin = report.too_few_credits(ft, min_count)
    ranked = {name: {"feature_type": ft, "top": top, "min_count": min_count, "too_few_credits": thin,
                     "table": untested_unknown(rank(top, ft, min_count=min_count)[keep])}
              for name, rank in (("most_changed", report.most_changed), ("least_changed", report.least_changed))}
    return {"kind": "report", "name": report.name, "meta": meta, "summary": report.summary(), "feature_type": ft,
            "layers": report.layers[columns],
            "mass_share": {"feature_type": ft, "rows": SHARE_ROWS, "num_values": len(share),
                           "table": _largest_shares(share, SHARE_ROWS)},
            **ranked}


def report_text(report: TransferReport, top: int = 5, min_count: int = DEFAULT_MIN_COUNT, legend: bool = True) -> str:
    """Whole-model summary beside its noise floors, per-layer table, POS mass shares, the most/least changed
    neurons among those credited at least `min_count` times with a value of it in both stages, and a legend of the
    terms (:func:`report_view`)."""
    view = report_view(report, top, min_count)
    meta, summary, ft = report.meta, view["summary"], view["feature_type"]
    lines = [
        f"Transfer report {report.name}: {meta.model_a} -> {meta.model_b} ({meta.site} site)",
        f"corpora: {corpus_text(meta.dataset_a)} -> {corpus_text(meta.dataset_b)}"
        + (f"; credits: {meta.credits_a} -> {meta.credits_b}" if meta.credits_a or meta.credits_b else ""),
        "neurons: " + ", ".join(f"{s} {percent(summary[f'share_{s}'])}" for s in ("shared", "lost", "gained", "dead")),
        "mean Hellinger over shared neurons: "
        + ", ".join(f"{one_line(f)} {summary[f'mean_hellinger_{f}']:.3f}" for f in meta.feature_types),
    ]
    noise = report.noise_table()
    if meta.no_noise_reason:
        lines.append(f"(no noise floors or p-values: {meta.no_noise_reason})")
    elif len(noise):
        lines += ["", f"headline figures vs split-half noise floors (changed: Benjamini-Hochberg at alpha={meta.alpha})",
                  text_table(noise)]
    else:
        lines.append("(no noise floors: the profiles were saved without split-half sums; profile again to get them)")
    lines += [f"(no noise floors or p-values of {f}: {why})" for f, why in meta.no_noise_features.items()]
    lines.append("")
    lines.append(text_table(view["layers"]))
    share = view["mass_share"]
    if share["num_values"]:
        shown = _rows_shown(share["num_values"], SHARE_ROWS)
        lines += ["", f"{one_line(ft)} mass share in A and B vs corpus frequency{shown}",
                  text_table(share["table"])]
    lines += ["", f"most changed neurons ({one_line(ft)}, credited >= {min_count} times with a {one_line(ft)} value in both stages; "
                  f"{too_few_credits_text(view['most_changed']['too_few_credits'])})",
              text_table(view["most_changed"]["table"])]
    lines += ["", f"least changed neurons ({one_line(ft)}, credited >= {min_count} times with a {one_line(ft)} value in both stages)",
              text_table(view["least_changed"]["table"])]
    if legend:
        lines += ["", LEGEND]
    return "\n".join(lines)


def neuron_view(profile: Profile, layer: int, neuron: int, top: int = 5, report: TransferReport | None = None,
                ending: TransferReport | None = None) -> dict[str, Any]:
    """What :func:`neuron_text` prints, as data (`hf-txray show --neuron L:N --json` writes it as JSON): the fields
    of the neuron's :class:`~hf_txray.summary.NeuronCard` (``summary`` its sentence, ``positions`` the stage's
    profiled positions), each list cut to its first `top` (``top_features``, ``promoted``, ``suppressed``,
    ``top_examples``), the bins of ``activation_histogram`` holding credits, ``original_neuron`` (of a model pruned
    with ``mode="remove"``, else None) and ``report``: the neuron's row of `report` (this stage as its stage A) with
    the report's ``name`` (``changed_<ft>`` None where the neuron was not tested), or None."""
    from .summary import neuron_card

    card = neuron_card(profile, layer, neuron, reports=[ending] if ending is not None else [])
    layer = card["layer"]  # a negative index resolved: the block it names
    report_row = None
    if report is not None:
        line = report.neurons[(report.neurons["layer"] == layer) & (report.neurons["neuron"] == neuron)]
        report_row = {"name": report.name, **untested_unknown(line).iloc[0].to_dict()} if len(line) else None
    histogram = None
    if profile.activation_histogram is not None and card["count"]:
        histogram = profile.activation_distribution(layer, neuron)
        histogram = histogram[histogram["count"] > 0]
    fields = {f.name: getattr(card, f.name) for f in dataclasses.fields(card)}
    fields.update(
        top_features={ft: values[:top] for ft, values in card.top_features.items()},
        top_examples=card.top_examples[:top], activation_histogram=histogram,
        promoted=None if card.promoted is None else card.promoted[:top],
        suppressed=None if card.suppressed is None else card.suppressed[:top])
    return {"kind": "neuron", **fields, "top": top,
            "original_neuron": original_neuron(profile.meta.provenance, layer, neuron), "report": report_row}


def neuron_text(profile: Profile, layer: int, neuron: int, top: int = 5, report: TransferReport | None = None,
                ending: TransferReport | None = None) -> str:
    """One neuron's page in the terminal, in reading order: summary, input preferences, output effects,
    activation distribution, top examples, and (with `report`) its change between the report's stages
    (:func:`neuron_view`).

    The summary sentence is the neuron's card summary (:func:`~hf_txray.summary.neuron_card`): its change clause
    comes from `ending`, a report whose stage B is this profile's stage, as in the exported ``neuron_cards`` and
    the viewer. `report` (this stage as its stage A) gave that clause to stage A's page while stage B's page, whose
    exported card states it, had none (helper 348)."""
    view = neuron_view(profile, layer, neuron, top, report=report, ending=ending)
    layer = view["layer"]
    lines = [f"Layer {layer}, neuron {neuron} ({profile.stage}): {view['summary']}", "",
             f"credits {view['count']} of {view['positions']} positions, mass {view['mass']:.3f}"]
    if view["original_neuron"] is not None:  # a model pruned with mode="remove" numbers its neurons afresh
        lines.append(f"pruned model: original neuron {view['original_neuron']} of layer {layer}")
    for ft in profile.feature_types:
        top_values = ", ".join(f"{one_line(v['feature'])} {v['probability']:.2f}" for v in view["top_features"][ft])
        lines.append(f"  {ft}: {top_values or '-'}")
    if view["promoted"] is not None:
        lines += [f"promotes: {', '.join(map(one_line, view['promoted']))}",
                  f"suppresses: {', '.join(map(one_line, view['suppressed']))}"]
    hist = view["activation_histogram"]
    if hist is not None:
        lines.append("credited activations: " + ", ".join(
            f"[{lo:.3g}, {hi:.3g}) {int(c)}" for lo, hi, c in zip(hist["low"], hist["high"], hist["count"])))
    if view["top_position"] is not None and view["top_position"] >= 0:
        # as the summary sentence writes it: 99.96% of the mass at one position read "100.0%" here (helper 348)
        lines.append(f"mass from its top token position ({view['top_position']}): "
                     f"{percent(view['top_position_share'])}")
    examples = view["top_examples"]
    if examples:
        lines += ["top examples:"] + [
            f"  {x['activation']:.4g}  {clip_left(l, 30)}[{t}]{clip_right(r, 30)}"
            for x, (l, t, r) in ((x, shown_example(x["left"], x["token"], x["right"])) for x in examples)]
    row = view["report"]
    if row is not None:
        lines.append(f"{row['name']}: {row['status']}; Hellinger " + ", ".join(
            f"{ft} {row[f'hellinger_{ft}']:.3f}" for ft in report.meta.feature_types))
    return "\n".join(lines)


# what a report's status says of a neuron, in the legend's words
STATUS_MEANING = {"shared": "credited in both stages", "lost": "credited only in {a}", "gained": "credited only in {b}",
                  "dead": "credited in neither stage"}


def report_neuron_view(report: TransferReport, layer: int, neuron: int) -> dict[str, Any]:
    """What :func:`report_neuron_text` prints, as data (`hf-txray show REPORT --neuron L:N --json` writes it as
    JSON): the report's ``name`` and the neuron's row of :attr:`~hf_txray.TransferReport.neurons` (its columns:
    layer, neuron, status, counts, masses, per feature type Hellinger distance, p-value, ``changed_<ft>`` (None where
    the neuron was not tested, not False), lengths), with ``status_meaning`` in the legend's words.

    Raises:
        ConfigurationError: a layer not in the report, or a neuron out of range."""
    from .options import resolve_layer

    meta = report.meta
    layer = resolve_layer(meta.layers, layer, "is not in this report")  # -1: the last layer, named as such
    if not 0 <= neuron < meta.num_neurons:
        raise ConfigurationError(f"Neuron {neuron} is out of range: layers have {meta.num_neurons} neurons (0 to "
                                 f"{meta.num_neurons - 1}).")
    rows = report.neurons
    row = untested_unknown(rows[(rows["layer"] == layer) & (rows["neuron"] == neuron)]).iloc[0].to_dict()
    meaning = STATUS_MEANING.get(str(row["status"]), "").format(a=meta.stage_a, b=meta.stage_b)
    return {"kind": "report_neuron", "name": report.name, **row, "status_meaning": meaning or None}


def report_neuron_text(report: TransferReport, layer: int, neuron: int) -> str:
    """One neuron's row of a transfer report in the terminal: its status, credits and mass in both stages, and per
    feature type its Hellinger distance, p-value, 'changed' flag and length (``-`` where the row has none: a neuron
    not shared, or not tested). What `hf-txray show REPORT --neuron L:N` prints (:func:`report_neuron_view`); a
    profile's page has the rest."""
    from .summary import p_text

    row = report_neuron_view(report, layer, neuron)
    layer, status, meaning = row["layer"], str(row["status"]), row["status_meaning"]
    lines = [f"Layer {layer}, neuron {neuron} in report {report.name}: {status}" + (f" ({meaning})" if meaning else ""),
             f"credits {int(row['count_a'])} -> {int(row['count_b'])}, mass {row['mass_a']:.3f} -> {row['mass_b']:.3f}"]

    def shown(column: str, fmt) -> str:
        value = row.get(column)
        return "-" if value is None or pd.isna(value) else fmt(value)

    for ft in report.meta.feature_types:
        p = shown(f"p_hellinger_{ft}", lambda v: p_text(float(v)))
        # an untested neuron (not shared, too few credits, or a report without the test) is not "unchanged"
        changed = "-" if p == "-" else "yes" if bool(row.get(f"changed_{ft}")) else "no"
        lines.append(f"  {ft}: Hellinger {shown(f'hellinger_{ft}', lambda v: f'{v:.3f}')}, "
                     f"{'p -' if p == '-' else p}, changed {changed}; length {shown(f'length_a_{ft}', int)} -> "
                     f"{shown(f'length_b_{ft}', int)}")
    return "\n".join(lines)


SHARE_ROWS = 12  # feature values in the terminal's mass-share table


def _largest_shares(share: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The `rows` values of a mass-share table with the largest share in any of its columns (mass in A or B, corpus
    frequency in A or B), in the table's order: the first rows by A's corpus frequency hid a value that is rare in A's
    corpus but takes much of B's mass (PUNCT on BBC after PTB)."""
    if len(share) <= rows:
        return share
    largest = share[["mass_share_a", "mass_share_b", "corpus_frequency_a", "corpus_frequency_b"]].max(axis=1)
    return share.loc[sorted(largest.nlargest(rows, keep="first").index, key=share.index.get_loc)]


def _rows_shown(total: int, rows: int) -> str:
    return f" ({rows} of {total} values: the largest share in any column)" if total > rows else ""


def json_data(value: Any) -> Any:
    """A view of this module (:func:`profile_view`, :func:`report_view`, :func:`neuron_view`,
    :func:`report_neuron_view`) as JSON data, for `hf-txray show --json`: a table as a list of rows (a dict per row,
    its columns in order), a metadata dataclass as its fields, numpy numbers as Python numbers, and NaN, infinity and
    pandas' missing values as None (``null``: JSON has no NaN; a Hellinger distance or p-value that does not exist)."""
    if isinstance(value, pd.DataFrame):
        return [json_data(row) for row in value.to_dict("records")]
    if isinstance(value, pd.Series):
        return json_data(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_data(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): json_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_data(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is not None and not isinstance(value, (str, int)) and pd.api.types.is_scalar(value) and pd.isna(value):
        return None  # pd.NA, pd.NaT
    return value
