"""The dataset layout: profiles and reports <-> parquet configs, a dataset card and plots, on local disk.

THE on-disk format of profiles and reports: ``Profile.save_pretrained`` writes it for one profile,
``TransferReport.save_pretrained`` for one report, :func:`hf_txray.save_to_disk` for a whole analysis (many
profiles and reports in one folder, and one Hub dataset repo). Every config lives in its own folder and is declared in the
README YAML ``configs:``, so ``datasets.load_dataset(folder_or_repo, config)`` and the Hub's dataset viewer both work:

- ``neuron_cards`` (default), one row per (stage, layer, neuron): status, mass, count; per feature type length,
  entropy and top features (list of structs); top activating examples (snippet, highlighted span, activation).
- ``distributions``, one row per (stage, layer, neuron, feature type, feature): mass, count, probability.
- ``neuron_outputs``, one row per (stage, layer, neuron, direction, rank): the vocabulary tokens a neuron promotes
  and suppresses through the unembedding (profiles made with ``analyze(..., output_effects=True)``).
- ``transfer_reports``, one row per (report, layer, neuron): every per-neuron field of :class:`TransferReport`.
- ``summary``, rows of ``kind`` ``model`` (whole model) and ``layer`` (per layer) aggregates of each report, and
  ``mass_share`` rows (tag mass share in A and B vs corpus frequency).
- ``meta``, one row per profile or report: model, site, layers, features, corpus, versions; the exact metadata as
  JSON and each profile's feature vocabularies with their corpus counts (needed for the exact round trip).

``plots/`` holds the key figures as PNG. The round trip is exact: :func:`hf_txray.load` rebuilds Profiles and
TransferReports equal (``==``) to the saved ones. Nothing here talks to the network (see ``hub.py``).

This module sits below the artifacts: it reads their attributes and returns the parts they are built from
(:func:`read_parts`); ``Profile.from_parts`` and ``TransferReport.from_parts`` assemble them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import metrics
from .accumulators import PositionMass, rank_within_groups
from .card import build_card
from .errors import ConfigurationError, ProfileFormatError
from .feature_table import NOISE_COLUMNS
from .io_utils import arrow_path, link_or_copy
from .logging import get_logger
from .summary import TOP_FEATURES
from .tables import counts_as_integers, shell_command, shell_path
from .version import __version__

if TYPE_CHECKING:
    from .profile import Profile
    from .report import TransferReport

logger = get_logger(__name__)

CONFIGS = ("neuron_cards", "distributions", "neuron_outputs", "transfer_reports", "summary", "meta")
OPTIONAL_CONFIGS = ("neuron_outputs",)  # written only when a profile has them (analyze(..., output_effects=True))
PLOTS_DIR = "plots"
OWNED_FOLDERS = CONFIGS + (PLOTS_DIR,)  # what a re-push may replace or delete; everything else is left alone
# Configs that hf_txray.probing adds to an export folder (hf_txray.probing.results.save_probing): a push uploads and
# replaces them when the folder has them and leaves the repo's copies alone when it does not.
EXTRA_CONFIGS = ("probe_rankings", "ablation")
EXPORT_FORMAT_VERSION = 1
# TOP_FEATURES (top features kept per neuron and feature type in `neuron_cards`) is the neuron card's, summary.py
MAX_ROWS_PER_FILE = 1_000_000  # parquet shard size: keeps files well under the Hub's per-file comfort zone

FEATURE_STRUCT = pa.struct([("feature", pa.string()), ("probability", pa.float64()), ("mass", pa.float64()),
                            ("count", pa.int64())])
EXAMPLE_STRUCT = pa.struct([
    ("rank", pa.int64()), ("activation", pa.float64()), ("snippet", pa.string()), ("span_start", pa.int64()),
    ("span_end", pa.int64()), ("token", pa.string()), ("example_id", pa.int64()), ("token_index", pa.int64()),
    ("char_start", pa.int64()), ("char_end", pa.int64()),
])  # fmt: skip
HISTOGRAM_STRUCT = pa.struct([("bin", pa.int64()), ("count", pa.int64())])  # non-empty bins of a neuron
OUTPUTS_SCHEMA = pa.schema([
    ("stage", pa.string()), ("layer", pa.int64()), ("neuron", pa.int64()), ("direction", pa.string()),
    ("rank", pa.int64()), ("token_id", pa.int64()), ("token", pa.string()), ("logit", pa.float64()),
])  # fmt: skip
VOCAB_STRUCT = pa.struct([("feature_type", pa.string()), ("features", pa.list_(pa.string())),
                          ("corpus_counts", pa.list_(pa.int64()))])
DISTRIBUTION_SCHEMA = pa.schema([
    ("stage", pa.string()), ("layer", pa.int64()), ("neuron", pa.int64()), ("feature_type", pa.string()),
    ("feature", pa.string()), ("mass", pa.float64()), ("count", pa.int64()), ("probability", pa.float64()),
    # noise statistics (null for profiles without them): the odd-example-id half, and the sum of squared activations
    ("mass_odd", pa.float64()), ("count_odd", pa.int64()), ("mass_sq", pa.float64()),
])  # fmt: skip
POSITION_STRUCT = pa.struct([("position", pa.int64()), ("mass", pa.float64()), ("count", pa.int64())])
META_SCHEMA = pa.schema([
    ("kind", pa.string()), ("name", pa.string()), ("model_id", pa.string()), ("revision", pa.string()),
    ("site", pa.string()), ("layers", pa.list_(pa.int64())), ("num_neurons", pa.int64()),
    ("feature_types", pa.list_(pa.string())), ("top_k", pa.int64()), ("stage_a", pa.string()),
    ("stage_b", pa.string()), ("dataset", pa.string()), ("dataset_fingerprint", pa.string()),
    ("num_examples", pa.int64()), ("num_positions", pa.int64()), ("hf_txray_version", pa.string()),
    ("created_at", pa.string()), ("format_version", pa.int64()), ("metadata", pa.string()),
    ("columns", pa.string()), ("vocabularies", pa.list_(VOCAB_STRUCT)),
    # What the profile was computed from, pinned (hf_txray.provenance); JSON for the nested parts.
    ("model_commit", pa.string()), ("model_content_hash", pa.string()), ("dataset_revision", pa.string()),
    ("dataset_config", pa.string()), ("dataset_split", pa.string()), ("text_column", pa.string()),
    ("data_files", pa.string()), ("dataset_content_hash", pa.string()), ("texts_hash", pa.string()),
    ("options", pa.string()), ("provenance", pa.string()),
])  # fmt: skip


# ----- inputs ---------------------------------------------------------------------------------------------------
# ----- profile -> tables ------------------------------------------------------------------------------------------
def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """pandas -> arrow with plain `string` columns (pandas 3 gives large_string) and no pandas metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def _row_index(layers: Iterable[int], layer: np.ndarray, neuron: np.ndarray, num_neurons: int) -> np.ndarray:
    """Profile row (``layer position * num_neurons + neuron``) of each (layer, neuron) pair."""
    layers = np.asarray(list(layers), dtype=np.int64)
    position = np.full(int(layers.max(initial=0)) + 1, -1, dtype=np.int64)
    position[layers] = np.arange(len(layers))
    return position[np.asarray(layer, np.int64)] * num_neurons + np.asarray(neuron, np.int64)


LIST_VALUES_LIMIT = (1 << 31) - 1  # values one arrow list array can address (its offsets are int32)
TEXT_BYTES_LIMIT = (1 << 31) - 1  # UTF-8 bytes one arrow string array can hold (its offsets are int32)


def _list_column(rows: np.ndarray, num_rows: int, values: pa.Array | Callable[[int, int], pa.Array],
                 text_bytes: np.ndarray | None = None) -> pa.ListArray | pa.ChunkedArray:
    """Group values (sorted by row) into one list per row 0..num_rows-1.

    Arrow's list and string arrays address their items with int32 offsets: past :data:`LIST_VALUES_LIMIT` values
    (rows x positions of ``mass_by_position``) the list offsets wrapped around to negative numbers, an invalid
    array, and past 2 GB of text (``top_examples``' snippets of a 70B model's 2.3M rows x 10) ``pa.array`` gave a
    chunked array that the struct refused (a bare TypeError). The column is then a chunked array of the same type,
    each chunk a run of whole rows within both limits.

    Args:
        rows (`np.ndarray`): the row of each value, sorted.
        num_rows (`int`): the rows of the column.
        values (`pa.Array` or `Callable[[int, int], pa.Array]`): the values, or a function giving those from
            index `start` to `stop` (built one run at a time: needed where they hold text).
        text_bytes (`np.ndarray`, *optional*): the UTF-8 bytes of each value's text (all its string fields).

    Raises:
        ProfileFormatError: one row alone holds more values or text than one array can.
    """
    offsets = np.searchsorted(rows, np.arange(num_rows + 1))
    made = values if callable(values) else (lambda start, stop: values.slice(start, stop - start))
    runs = _row_runs(offsets, text_bytes)
    chunks = []
    for first, last in zip(runs[:-1], runs[1:]):
        part = offsets[first:last + 1] - offsets[first]
        chunks.append(pa.ListArray.from_arrays(pa.array(part.astype(np.int32), pa.int32()),
                                               made(int(offsets[first]), int(offsets[last]))))
    return chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks, chunks[0].type)


def _row_runs(offsets: np.ndarray, text_bytes: np.ndarray | None) -> list[int]:
    """Boundaries ``[0, ..., num_rows]`` of runs of whole rows, each holding at most :data:`LIST_VALUES_LIMIT`
    values and :data:`TEXT_BYTES_LIMIT` bytes of text (`offsets`: each row's first value, then the total)."""
    num_rows = len(offsets) - 1
    if num_rows == 0:
        return [0, 0]
    total_bytes = None if text_bytes is None else np.concatenate([[0], np.cumsum(text_bytes)])[offsets]
    runs = [0]
    while runs[-1] < num_rows:
        first = runs[-1]
        last = int(np.searchsorted(offsets, offsets[first] + LIST_VALUES_LIMIT, side="right")) - 1
        if total_bytes is not None:
            last = min(last, int(np.searchsorted(total_bytes, total_bytes[first] + TEXT_BYTES_LIMIT, side="right")) - 1)
        last = min(last, num_rows)
        if last <= first:
            raise ProfileFormatError(f"Row {first} holds {offsets[first + 1] - offsets[first]:,} values, more values "
                                     "or text than one arrow array can hold.")
        runs.append(last)
    return runs


def _top_features_column(profile: Profile, ft: str) -> pa.ListArray | pa.ChunkedArray:
    table = profile.tables[ft]
    probability = metrics.probabilities(table.rows, table.mass, profile.num_rows)
    names = np.array(table.vocab, dtype=object)
    order = table.by_preference()  # as Profile.feature_stats: mass descending, then feature name
    order = order[table.mass[order] > 0]
    keep = order[rank_within_groups(table.rows[order]) < TOP_FEATURES]
    values = pa.StructArray.from_arrays(
        [pa.array(names[table.feature_ids[keep]].tolist(), pa.string()), pa.array(probability[keep], pa.float64()),
         pa.array(table.mass[keep], pa.float64()), pa.array(table.count[keep], pa.int64())],
        fields=list(FEATURE_STRUCT))
    return _list_column(table.rows[keep], profile.num_rows, values)


def _examples_column(profile: Profile) -> pa.ListArray | pa.ChunkedArray:
    ex = profile.examples
    rows = _row_index(profile.layers, ex["layer"].to_numpy(), ex["neuron"].to_numpy(), profile.num_neurons)
    order = np.lexsort((ex["rank"].to_numpy(), rows))
    ex = ex.iloc[order]
    left, token, right = (ex[c].astype(str).tolist() for c in ("left", "token", "right"))
    starts = np.array([len(s) for s in left], dtype=np.int64)
    ends = starts + np.array([len(s) for s in token], dtype=np.int64)
    arrays = {
        "rank": ex["rank"], "activation": ex["activation"],
        "snippet": [a + b + c for a, b, c in zip(left, token, right, strict=True)],
        "span_start": starts, "span_end": ends, "token": token, "example_id": ex["example_id"],
        "token_index": ex["token_index"], "char_start": ex["char_start"], "char_end": ex["char_end"],
    }  # fmt: skip
    arrays = {name: v if isinstance(v, list) else np.asarray(v) for name, v in arrays.items()}

    def values(start: int, stop: int) -> pa.StructArray:  # a run of rows' examples (see _list_column)
        return pa.StructArray.from_arrays([pa.array(arrays[f.name][start:stop], f.type) for f in EXAMPLE_STRUCT],
                                          fields=list(EXAMPLE_STRUCT))

    text_bytes = np.array([len(a.encode("utf-8", "surrogatepass")) + len(b.encode("utf-8", "surrogatepass"))
                           for a, b in zip(arrays["snippet"], token)], dtype=np.int64)
    return _list_column(rows[order], profile.num_rows, values, text_bytes)


def neuron_cards_table(profile: Profile, report: TransferReport | None = None) -> pa.Table:
    """One row per (layer, neuron) of the profile: the neuron's card; its `summary` carries the change clause of
    `report` (one whose stage B is this stage), as :func:`~hf_txray.summary.neuron_card` and ``hf-txray show`` say
    it."""
    stats = profile.neuron_stats()
    columns: dict[str, Any] = {
        "stage": pa.array([profile.stage] * len(stats), pa.string()),
        "layer": stats["layer"].to_numpy(), "neuron": stats["neuron"].to_numpy(),
        "status": pa.array(np.where(stats["count"].to_numpy() > 0, "active", "dead").tolist(), pa.string()),
        "mass": stats["mass"].to_numpy(), "count": stats["count"].to_numpy(),
    }
    for ft in profile.feature_types:
        columns[f"length_{ft}"] = stats[f"length_{ft}"].to_numpy()
        columns[f"entropy_{ft}"] = stats[f"entropy_{ft}"].to_numpy()
        columns[f"top_{ft}"] = _top_features_column(profile, ft)
    columns["top_examples"] = _examples_column(profile)
    # noise statistics: credits from odd example ids, and credited mass by position index (null when absent)
    odd = profile.neuron_count_odd
    columns["count_odd"] = pa.array(odd.reshape(-1), pa.int64()) if odd is not None else \
        pa.nulls(len(stats), pa.int64())
    columns["mass_by_position"] = _positions_column(profile)
    columns.update(_neuron_page_columns(profile))
    return _with_summary(pa.table(columns), report, profile.meta.feature_kinds, profile.meta.feature_orders)


def _with_summary(cards: pa.Table, report: TransferReport | None = None,
                  kinds: Mapping[str, str] | None = None, orders: Mapping[str, float] | None = None) -> pa.Table:
    """Append the plain-words `summary` of every card, built from the card's own columns and, for the change
    clause, the neuron's row of `report` (its ``changed_<ft>`` / ``p_hellinger_<ft>`` columns). Without it, the
    exported summaries lacked the clause that the viewer and ``hf-txray show`` print (helper 215). `kinds`, `orders`:
    the profile's recorded feature kinds and reading orders (``meta.feature_kinds``, ``meta.feature_orders``)."""
    from .summary import neuron_summary

    read = [c for c in cards.column_names if c in ("count", "win_rate", "top_position", "top_position_share",
                                                   "promoted") or (c.startswith("top_") and c != "top_examples")]
    rows: list[dict[str, Any] | None] = [None] * cards.num_rows
    stages = None
    if report is not None:
        stages = (report.meta.stage_a, report.meta.stage_b)
        frame = report.neurons
        change = [c for c in frame.columns if c.startswith(("changed_", "p_hellinger_"))]
        where = {(int(layer), int(neuron)): i for i, (layer, neuron) in enumerate(zip(frame["layer"], frame["neuron"]))}
        records = frame[change].to_dict("records")
        rows = [records[where[key]] if key in where else None
                for key in zip(cards["layer"].to_pylist(), cards["neuron"].to_pylist())]
    sentences = [neuron_summary(card, row, stages, kinds=kinds, orders=orders)
                 for card, row in zip(cards.select(read).to_pylist(), rows)]
    return cards.append_column("summary", pa.array(sentences, pa.string()))


def _neuron_page_columns(profile: Profile) -> dict[str, Any]:
    """Win rate, top position and its share of the mass, activation histogram, output tokens (each only when the
    profile has what it is computed from)."""
    columns: dict[str, Any] = {"win_rate": profile.win_rate().reshape(-1)}
    if profile.position_mass is not None:  # the first-position effect, from mass_by_position
        stats = profile.position_stats()
        columns["top_position"] = stats["top_position"].to_numpy()
        columns["top_position_share"] = stats["top_position_share"].to_numpy()
    if profile.activation_histogram is not None:
        h = profile.activation_histogram
        values = pa.StructArray.from_arrays([pa.array(h.bins, pa.int64()), pa.array(h.counts, pa.int64())],
                                            fields=list(HISTOGRAM_STRUCT))
        columns["activation_histogram"] = _list_column(h.rows, profile.num_rows, values)
    if profile.output_effects is not None:
        for direction in ("promoted", "suppressed"):
            columns[direction] = _output_tokens_column(profile, direction)
    return columns


def _output_tokens_column(profile: Profile, direction: str) -> pa.ListArray | pa.ChunkedArray:
    effects = profile.output_effects
    part = effects[effects["direction"] == direction]
    rows = _row_index(profile.layers, part["layer"].to_numpy(), part["neuron"].to_numpy(), profile.num_neurons)
    order = np.lexsort((part["rank"].to_numpy(), rows))
    tokens = pa.array(part["token"].astype(str).to_numpy()[order].tolist(), pa.string())
    return _list_column(rows[order], profile.num_rows, tokens)


def neuron_outputs_table(profile: Profile) -> pa.Table | None:
    """The profile's output effects keyed by stage (None when it has none)."""
    if profile.output_effects is None:
        return None
    frame = profile.output_effects.copy()
    frame.insert(0, "stage", profile.stage)
    frame["token"] = frame["token"].astype(str)
    return pa.Table.from_pandas(frame, schema=OUTPUTS_SCHEMA, preserve_index=False).replace_schema_metadata(None)


def _positions_column(profile: Profile) -> pa.Array | pa.ChunkedArray:
    if profile.position_mass is None:
        return pa.nulls(profile.num_rows, pa.list_(POSITION_STRUCT))
    e = profile.position_mass.entries()
    values = pa.StructArray.from_arrays([pa.array(e["position"], pa.int64()), pa.array(e["mass"], pa.float64()),
                                         pa.array(e["count"], pa.int64())], fields=list(POSITION_STRUCT))
    return _list_column(e["row"], profile.num_rows, values)


def distributions_table(profile: Profile) -> pa.Table:
    """Long format: every (layer, neuron, feature type, feature) with credited mass."""
    frame = profile.to_pandas()
    frame.insert(0, "stage", profile.stage)
    for column in NOISE_COLUMNS:  # to_pandas lists the tables in this order, entry by entry
        parts = [getattr(profile.tables[ft], column) for ft in profile.feature_types]
        frame[column] = (np.concatenate(parts) if all(p is not None for p in parts)
                         else pd.Series([None] * len(frame), dtype="object"))
    return pa.Table.from_pandas(frame, schema=DISTRIBUTION_SCHEMA, preserve_index=False).replace_schema_metadata(None)


def _profile_meta_row(profile: Profile) -> dict[str, Any]:
    m = profile.meta
    vocabularies = [{"feature_type": ft, "features": list(t.vocab), "corpus_counts": t.corpus_count.tolist()}
                    for ft, t in profile.tables.items()]
    return {
        "kind": "profile", "name": m.stage, "model_id": m.model_id, "revision": m.revision, "site": m.site,
        "layers": list(m.layers), "num_neurons": m.num_neurons, "feature_types": list(m.feature_types),
        "top_k": m.top_k, "dataset": m.dataset_id, "dataset_fingerprint": m.dataset_fingerprint,
        "num_examples": m.num_examples, "num_positions": m.num_positions, "hf_txray_version": m.hf_txray_version,
        "created_at": m.created_at, "format_version": EXPORT_FORMAT_VERSION, "metadata": json.dumps(m.to_dict()),
        # whether the distributions hold noise sums: null columns cannot tell when a feature type has no rows
        "columns": json.dumps({"noise": all(t.has_noise for t in profile.tables.values())}),
        "vocabularies": vocabularies, **_provenance_columns(m.provenance),
    }  # fmt: skip


def _provenance_columns(record: dict[str, Any]) -> dict[str, Any]:
    """The pinned sources of a profile as flat columns of the ``meta`` config (all None before provenance)."""
    model, data = record.get("model", {}), record.get("dataset", {})
    return {
        "model_commit": model.get("commit"), "model_content_hash": model.get("content_hash"),
        "dataset_revision": data.get("commit"), "dataset_config": data.get("config"),
        "dataset_split": data.get("split"), "text_column": data.get("text_column"),
        "data_files": json.dumps(data.get("data_files")) if data else None,
        "dataset_content_hash": data.get("content_hash"), "texts_hash": data.get("texts_hash"),
        "options": json.dumps(record.get("options")) if record else None,
        "provenance": json.dumps(record) if record else None,
    }  # fmt: skip


BOTH = " -> "  # a report row's model_id / dataset when its stages differ: "A -> B"
META_NAME_COLUMNS = ("model_id", "dataset")


def _schema_of(frame: pd.DataFrame) -> list[list[str]]:
    return [[str(c), str(t)] for c, t in frame.dtypes.items()]


def _report_meta_row(report: TransferReport) -> dict[str, Any]:
    m = report.meta
    both = lambda a, b: a if a == b else f"{a}{BOTH}{b}"  # noqa: E731
    columns: dict[str, Any] = {name: _schema_of(getattr(report, name)) for name in ("neurons", "layers", "mass_share")}
    # rows of each table, so that a reader notices a missing or partial file (absent from older saves)
    columns["rows"] = {name: len(getattr(report, name)) for name in ("neurons", "layers", "mass_share")}
    return {
        "kind": "report", "name": report.name, "model_id": both(m.model_a, m.model_b), "site": m.site,
        "layers": list(m.layers), "num_neurons": m.num_neurons, "feature_types": list(m.feature_types),
        "stage_a": m.stage_a, "stage_b": m.stage_b, "dataset": both(m.dataset_a, m.dataset_b),
        "hf_txray_version": m.hf_txray_version, "created_at": m.created_at, "format_version": EXPORT_FORMAT_VERSION,
        "metadata": json.dumps(asdict(m)), "columns": json.dumps(columns), "vocabularies": [],
    }  # fmt: skip


# ----- report -> tables -------------------------------------------------------------------------------------------
def _report_keys(report: TransferReport, frame: pd.DataFrame, **extra: Any) -> pd.DataFrame:
    frame = frame.copy()
    keys = {**extra, "report": report.name, "stage_a": report.meta.stage_a, "stage_b": report.meta.stage_b}
    for i, (name, value) in enumerate(keys.items()):
        frame.insert(i, name, value)
    return frame


def transfer_table(report: TransferReport) -> pa.Table:
    """The report's per-neuron table, keyed by report and stages."""
    return _to_arrow(_report_keys(report, report.neurons))


def _model_row(report: TransferReport) -> dict[str, Any]:
    """Whole-model aggregates in the column names of the per-layer table (counts summed, means from summary())."""
    summary = report.summary()
    row: dict[str, Any] = {"layer": None, "neurons": int(len(report.neurons))}
    for status in ("shared", "lost", "gained", "dead"):
        row[status] = int(report.layers[status].sum())
        row[f"share_{status}"] = summary[f"share_{status}"]
    row["mass_a"], row["mass_b"] = float(report.layers["mass_a"].sum()), float(report.layers["mass_b"].sum())
    for ft in report.meta.feature_types:
        for stat in ("mean_hellinger", "median_hellinger", "mean_length_shift"):
            row[f"{stat}_{ft}"] = summary[f"{stat}_{ft}"]
    # shares changed (of the shared and of the tested neurons) and split-half noise floors, under the same names as
    # in the per-layer rows: a figure left out here reads as null in the model row while every layer row holds it
    row.update({k: v for k, v in summary.items() if k.startswith(("noise_floor_", "matched_", "share_changed_",
                                                                   "neurons_changed_", "neurons_tested_",
                                                                   "share_of_tested_changed_"))})
    return row


def summary_table(report: TransferReport) -> pa.Table:
    """Rows of kind ``model`` (whole model), ``layer`` (one per layer) and ``mass_share`` (one per tag value)."""
    # the counts as ints whatever the report in memory holds: one unpickled from before they were (float64) made the
    # config double, and arrow refused to merge it with another report's int64 (ArrowTypeError in save_to_disk)
    layers = counts_as_integers(report.layers)
    model = pd.DataFrame([_model_row(report)])
    # the model row's columns in the layer rows' types: its count of tested neurons (an int, or NaN when the test did
    # not run) would be int64 or float64 by the row, and arrow does not unify those with the layers' int64
    model = model.astype({c: t for c, t in layers.dtypes.items() if c in model and c != "layer"})
    parts = [_report_keys(report, model, kind="model"),
             _report_keys(report, layers, kind="layer")]
    if len(report.mass_share):
        parts.append(_report_keys(report, report.mass_share, kind="mass_share"))
    tables = [_to_arrow(p) for p in parts]
    tables[0] = tables[0].set_column(4, "layer", pa.nulls(1, pa.int64()))  # None alone would infer a null type
    return pa.concat_tables(tables, promote_options="default")


def build_tables(profiles: Mapping[str, Profile], reports: Mapping[str, TransferReport]) -> dict[str, pa.Table]:
    """All configs that have rows, in :data:`CONFIGS` order."""
    meta = [_profile_meta_row(p) for p in profiles.values()] + [_report_meta_row(r) for r in reports.values()]
    parts: dict[str, list[pa.Table]] = {
        # the change clause of the first report ending at the stage, as neuron_card chooses it
        "neuron_cards": [neuron_cards_table(p, next((r for r in reports.values() if r.meta.stage_b == p.stage), None))
                         for p in profiles.values()],
        "distributions": [distributions_table(p) for p in profiles.values()],
        "neuron_outputs": [t for t in (neuron_outputs_table(p) for p in profiles.values()) if t is not None],
        "transfer_reports": [transfer_table(r) for r in reports.values()],
        "summary": [summary_table(r) for r in reports.values()],
        "meta": [pa.Table.from_pylist(meta, schema=META_SCHEMA)],
    }
    # Profiles (or reports) with different feature types add columns: the union, null where absent.
    return {name: pa.concat_tables(tables, promote_options="default") for name, tables in parts.items() if tables}


# ----- save stamps -----------------------------------------------------------------------------------------------
# Every parquet file of a save carries a stamp in its schema's key-value metadata (``datasets`` ignores unknown
# keys): which save wrote it, as which shard of which config, with how many rows and what schema. A reader compares
# the stamps of the files it reads (footers only, no data), so a file copied in from another save, an extra or
# duplicated shard, or a file rewritten with rows added or a column dropped or cast is refused, not read.
STAMP_KEY = b"hf_txray"
ANY_SAVE = "*"  # read_config's default: the files of one config agree with each other, whatever save wrote them


@dataclass(frozen=True)
class SaveStamp:
    """What one parquet file of a save says about itself (:data:`STAMP_KEY` in its schema metadata).

    Args:
        save_id (`str`): random, shared by every file one save wrote (:func:`write_folder`).
        config (`str`): the config (folder) the file belongs to.
        shard (`int`), shards (`int`): the file is shard `shard` of `shards` (0-based).
        rows (`int`): rows of this file.
        total_rows (`int`): rows of the whole config (all shards).
        schema (`str`): :func:`schema_fingerprint` of the file's columns.
    """

    save_id: str
    config: str
    shard: int
    shards: int
    rows: int
    total_rows: int
    schema: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, metadata: Mapping[bytes, bytes] | None) -> SaveStamp | None:
        """The stamp in a schema's metadata (None when the file has none: written before stamps, or by hand)."""
        raw = (metadata or {}).get(STAMP_KEY)
        if raw is None:
            return None
        damaged = cls("damaged", "", -1, -1, -1, -1, "")
        try:
            stamp = cls(**json.loads(raw))
        except (ValueError, TypeError):  # not JSON, or other fields: the stamp itself was changed
            return damaged
        typed = all(isinstance(getattr(stamp, f), str) for f in ("save_id", "config", "schema")) and all(
            type(getattr(stamp, f)) is int for f in ("shard", "shards", "rows", "total_rows"))
        return stamp if typed else damaged


def new_save_id() -> str:
    """A random save id (one per :func:`write_folder` call)."""
    import uuid

    return uuid.uuid4().hex


def _canonical_type(dtype: pa.DataType) -> pa.DataType:
    """`dtype` with nested field names and nullability made plain: parquet names a list's items ``element`` where
    arrow says ``item``, which is no change of the data."""
    if pa.types.is_large_list(dtype):
        return pa.large_list(_canonical_type(dtype.value_type))
    if pa.types.is_list(dtype):
        return pa.list_(_canonical_type(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _canonical_type(f.type)) for f in dtype])
    return dtype


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short hash of a schema's column names and types (not its metadata): a dropped, renamed or cast column
    changes it."""
    import hashlib

    text = "\n".join(f"{f.name}: {_canonical_type(f.type)}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----- folder ---------------------------------------------------------------------------------------------------
def write_config(table: pa.Table, folder: Path, *, save_id: str | None = None, stamp: bool = True) -> None:
    """Write `table` as the parquet shards of one config folder, replacing the shards already there.

    Args:
        table (`pa.Table`): the config's rows.
        folder (`Path`): the config's folder; its name is the config's name.
        save_id (`str`, *optional*): the save the files belong to (:func:`write_folder` passes one for all its
            configs); a new one when not given (a config that stands alone, e.g. probing results).
        stamp (`bool`, *optional*, defaults to `True`): write a :class:`SaveStamp` into each file. `False` only to
            rewrite a config of a folder saved before stamps, whose other configs have none.
    """
    folder.mkdir(parents=True, exist_ok=True)
    save_id = save_id or new_save_id()
    shards = max(1, -(-table.num_rows // MAX_ROWS_PER_FILE))
    # written under temporary names, then renamed over the old shards: a write that fails (a full disk) keeps them.
    # Removed first, a failed write lost the rows they held (save_probing merges the earlier runs' rows into
    # `table`: all of them were gone, helper 324).
    written: list[tuple[Path, Path]] = []
    try:
        for i in range(shards):
            part = table.slice(i * MAX_ROWS_PER_FILE, MAX_ROWS_PER_FILE)
            metadata = {k: v for k, v in (part.schema.metadata or {}).items() if k != STAMP_KEY}  # a read table's
            if stamp:
                metadata[STAMP_KEY] = SaveStamp(save_id, folder.name, i, shards, part.num_rows, table.num_rows,
                                                schema_fingerprint(part.schema)).encode()
            part = part.replace_schema_metadata(metadata or None)
            final = folder / f"train-{i:05d}-of-{shards:05d}.parquet"
            written.append((folder / f".{final.name}.tmp-{os.getpid()}", final))
            pq.write_table(part, arrow_path(written[-1][0]), compression="zstd")
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    for old in set(folder.glob("*.parquet")) - {final for _, final in written}:
        old.unlink()
    for tmp, final in written:
        os.replace(tmp, final)


def is_export_folder(directory: str | Path) -> bool:
    """Whether `directory` holds a folder in the dataset layout (a ``meta`` config and a README): written by
    :func:`hf_txray.save_to_disk`, or a saved profile or report."""
    directory = Path(directory)
    return (directory / "README.md").is_file() and any((directory / "meta").glob("*.parquet"))


@contextlib.contextmanager
def public_folder(folder: Path) -> Iterator[Path]:
    """`folder` as it may be uploaded: when its configs, JSON records or README name local paths, a staged copy
    (files linked, or copied across file systems) that shows them as the card does (:func:`_public_configs`,
    :func:`_public_json_files`, :func:`_public_card_text`); else `folder` itself. The folder is never changed
    (reproduce reads its full paths)."""
    changes = public_changes(folder)
    if changes.empty:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="hf_txray-public-") as tmp:
        staged = Path(tmp) / folder.name
        shutil.copytree(folder, staged, copy_function=link_or_copy)
        changes.apply(staged)
        yield staged


@dataclass
class PublicChanges:
    """What an upload of one folder must show differently from the local files: the configs (config name -> table)
    and text files (relative path -> text) that name local paths, in their public form."""

    tables: dict[str, pa.Table]
    texts: dict[Path, str]

    @property
    def empty(self) -> bool:
        return not self.tables and not self.texts

    def apply(self, staged: Path) -> None:
        """Write the changes into `staged`, a linked copy of the folder: a linked file is replaced, never written
        through (that would change the local folder)."""
        for name, public_table in self.tables.items():
            # the rewritten config keeps the save id of the files it replaces (unstamped when they were), so the
            # staged folder still reads as one save
            save_id = config_save_id(staged, name)
            # written under temporary names renamed over the linked shards (or removing them): never written through
            write_config(public_table, staged / name, save_id=save_id, stamp=save_id is not None)
        for relative, content in self.texts.items():
            (staged / relative).unlink()
            (staged / relative).write_text(content, encoding="utf-8")


def public_changes(folder: Path) -> PublicChanges:
    """The :class:`PublicChanges` of one folder in the dataset layout (or of artifact JSON records)."""
    meta = read_config(folder, "meta")
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else None
    public_text = None if text is None else _public_card_text(text, meta.to_pylist() if meta is not None else [])
    texts = _public_json_files(folder)
    if public_text != text:
        texts[Path("README.md")] = public_text
    return PublicChanges(_public_configs(folder), texts)


# Columns of the configs (meta, probe rankings, ablation curves) that name sources ("A -> B" in a report's meta row),
# and columns holding a JSON record of them.
SOURCE_COLUMNS = ("model_id", "dataset_id", "data_source", "model", "dataset")
RECORD_COLUMNS = ("metadata", "provenance", "options")


def _public_configs(folder: Path) -> dict[str, pa.Table]:
    """The configs whose source-name or record columns name local paths, as they may be uploaded (config name ->
    table): names by :func:`~hf_txray.provenance.public_name`, JSON records by
    :func:`~hf_txray.provenance.public_sources` (data in them, such as label names, is left as it is). Only those
    columns are read to decide; tables without them (the distributions) are never rewritten."""
    from .provenance import public_name, public_sources

    out: dict[str, pa.Table] = {}
    for config in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(config.glob("*.parquet"))
        names = set(pq.read_schema(arrow_path(files[0])).names) if files else set()
        columns = [c for c in (*SOURCE_COLUMNS, *RECORD_COLUMNS) if c in names]
        if not columns:
            continue
        table = read_config(folder, config.name)
        changed = False
        for column in columns:
            values = table[column].to_pylist()
            if column in RECORD_COLUMNS:
                public = [v if not isinstance(v, str) or not v.startswith("{") else
                          json.dumps(public_sources(json.loads(v), column), default=str) for v in values]
            else:
                public = [BOTH.join(public_name(part) for part in v.split(BOTH)) if isinstance(v, str) else v
                          for v in values]
            if public != values:
                changed = True
                table = table.set_column(table.schema.get_field_index(column), column,
                                         pa.array(public, table.schema.field(column).type))
        if changed:
            out[config.name] = table
    return out


PUBLIC_JSON_LIMIT = 8 << 20  # JSON files larger than this are data, not records naming sources: left as they are


def _public_json_files(folder: Path) -> dict[Path, str]:
    """The JSON records of `folder` (artifact headers, probing and pruning metadata, plans) that name local paths in
    their source fields, as :func:`~hf_txray.provenance.public_sources` shows them: relative path -> the public
    text. Data in them (vocabularies, label names) is never rewritten."""
    from .provenance import public_sources

    out: dict[Path, str] = {}
    for path in sorted(folder.rglob("*.json")):
        if not path.is_file() or path.stat().st_size > PUBLIC_JSON_LIMIT:
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        public = public_sources(record)
        if public != record:
            out[path.relative_to(folder)] = json.dumps(public, indent=2, ensure_ascii=False) + "\n"
    return out


def _public_card_text(text: str, rows: list[dict[str, Any]]) -> str:
    """A README with the local paths its meta rows name shown as :func:`_public_configs` shows them (cards of this
    hf_txray already are; an export of an older one printed them whole), and the home directory as ``~``."""
    from .provenance import is_local_path, public_name, public_record

    names = set()
    for row in rows:
        names.update(part for column in META_NAME_COLUMNS for part in (row.get(column) or "").split(BOTH))
        record = json.loads(row["provenance"]) if row.get("provenance") else {}
        names.update(str(record.get(part, {}).get("id") or "") for part in ("model", "dataset"))
    named = (n for n in names if re.search(r"\w", n) and is_local_path(n))  # never "." or "~" alone: everywhere
    for name in sorted(named, key=len, reverse=True):  # longest first
        # whole names only: not inside a longer path or word
        text = re.sub(r"(?<![\w./~-])" + re.escape(name) + r"(?![\w/-])", public_name(name).replace("\\", "\\\\"),
                      text)
    return public_record(text)


def write_folder(folder: Path, profiles: Mapping[str, "Profile"], reports: Mapping[str, "TransferReport"], *,
                 repo_id: str | None = None, license: str | None = None, pretty_name: str | None = None,
                 plots: bool = False, revision: str | None = None) -> None:
    """Write profiles and reports into the empty folder `folder`: one folder of parquet files per config, the
    dataset card ``README.md`` declaring them and, with `plots`, the key figures (callers make it atomic).

    Args:
        folder (`Path`): an empty folder.
        profiles (`Mapping[str, Profile]`): by stage.
        reports (`Mapping[str, TransferReport]`): by name.
        repo_id (`str`, *optional*): the Hub repo the card's loading examples name.
        license (`str`, *optional*): a Hub license id for the card.
        pretty_name (`str`, *optional*): the card's title.
        plots (`bool`, *optional*, defaults to `False`): draw the key figures into ``plots/`` and the card.
        revision (`str`, *optional*): the Hub branch the card's loading examples name.
    """
    tables = build_tables(profiles, reports)
    save_id = new_save_id()  # one for every config: a reader refuses a folder mixing files of two saves
    for name, table in tables.items():
        write_config(table, folder / name, save_id=save_id)
    figures = _write_plots(folder / PLOTS_DIR, profiles, reports) if plots else {}
    card = build_card(profiles, reports, {n: t.num_rows for n, t in tables.items()}, figures,
                      repo_id=repo_id, license=license, pretty_name=pretty_name, revision=revision)
    card.save(folder / "README.md")


def _write_plots(folder: Path, profiles: Mapping[str, Profile],
                 reports: Mapping[str, TransferReport]) -> dict[str, list[str]]:
    """Draw the key figures of every report, and of the profiles no report covers (a report's figures already
    show both its stages); returns repo-relative PNG paths by report name or stage."""
    from .plots import profile_figures, report_figures, save_figures, slug

    covered = {s for r in reports.values() for s in (r.meta.stage_a, r.meta.stage_b)}
    drawn = [*(("report", r.name, r, report_figures) for r in reports.values()),
             *(("stage", p.stage, p, profile_figures) for p in profiles.values() if p.stage not in covered)]
    keys = [key for _, key, _, _ in drawn]
    slugs = [slug(key) for key in keys]
    written: dict[str, list[str]] = {}
    taken: set[str] = set()
    for (kind, key, item, draw), name in zip(drawn, slugs):
        try:
            figures = draw(item)
        except ConfigurationError as err:  # e.g. no neuron shared: the data is still worth exporting
            logger.warning("No plots for %s: %s", key, err)
            continue
        # names of one slug ('a/b', 'a-b'; a stage 'x__y', or 'x->y', beside the report 'x->y') would overwrite
        # each other's files, and a stage named as a report would take its card section
        if slugs.count(name) > 1 or any(f"{name}_{slug(n)}.png" in taken for n in figures):
            name = f"{name}-{hashlib.sha256(f'{kind}:{key}'.encode()).hexdigest()[:8]}"
        paths = save_figures(figures, folder, prefix=f"{name}_")
        taken.update(p.name for p in paths)
        written[key if keys.count(key) == 1 else f"{key} ({kind})"] = [f"{PLOTS_DIR}/{p.name}" for p in paths]
    return written


# ----- folder -> profiles and reports ------------------------------------------------------------------------------
def check_tables_load(folder: Path, configs: Iterable[str]) -> dict[str, int]:
    """Load each config with ``datasets.load_dataset(folder, config)`` (as a Hub user will, into a throw-away cache
    and without progress bars) before anything is uploaded; returns rows per config.

    Raises:
        ProfileFormatError: a config does not load, or loads a different number of rows than its parquet files hold,
            or its files are not of one save (:func:`check_config_files`: an upload would give a repo that
            :func:`read_parts` refuses).
    """
    import tempfile

    import datasets

    rows = {}
    configs = list(configs)
    # our configs come from the save meta/ does; others (probing results) need only agree among themselves
    save_id = config_save_id(folder, "meta") if any((folder / "meta").glob("*.parquet")) else ANY_SAVE
    for config in configs:
        files = sorted((folder / config).glob("*.parquet"))
        if files:
            check_config_files(files, config, save_id=save_id if config in CONFIGS else ANY_SAVE)
    bars_were_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a check, not a user-facing load: no "Generating train split" bars
    try:
        with tempfile.TemporaryDirectory(prefix="hf_txray-check-") as cache:  # keeps the user's datasets cache clean
            view = _checked_view(folder, configs, Path(cache) / "view")
            for config in configs:
                files = (folder / config).glob("*.parquet")
                expected = sum(pq.ParquetFile(arrow_path(f)).metadata.num_rows for f in files)
                try:
                    loaded = datasets.load_dataset(str(view), config, split="train", cache_dir=cache)
                except Exception as err:  # any loader failure means the folder is broken: never upload it
                    raise ProfileFormatError(f"Config {config!r} of {folder} does not load with datasets: "
                                             f"{err}") from err
                if loaded.num_rows != expected:
                    raise ProfileFormatError(f"Config {config!r} of {folder} loads {loaded.num_rows} rows, expected "
                                             f"{expected}.")
                rows[config] = loaded.num_rows
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()
    return rows


def _checked_view(folder: Path, configs: list[str], view: Path) -> Path:
    """`folder` as :func:`check_tables_load` loads it: the checked configs (linked) under a README whose YAML declares
    only them. ``datasets`` resolves the files of every declared config, so a folder holding part of a repo (a
    probing push downloads the repo's README and its own configs only) failed on configs it never meant to check."""
    from huggingface_hub import DatasetCard

    readme = folder / "README.md"
    if not readme.is_file():
        return folder
    card = DatasetCard.load(readme)
    declared = card.data.to_dict().get("configs") or []
    kept = [c for c in declared if c.get("config_name") in configs]
    if len(kept) == len(declared):
        return folder
    view.mkdir(parents=True)
    for config in configs:
        if (folder / config).is_dir():
            shutil.copytree(folder / config, view / config, copy_function=link_or_copy)
    card.data.configs = kept
    (view / "README.md").write_text(f"---\n{card.data.to_yaml()}\n---\n", encoding="utf-8")
    return view


def read_config(directory: Path, name: str, *, save_id: str | None = ANY_SAVE, columns: Iterable[str] = (),
                stamps: bool = True) -> pa.Table | None:
    """The parquet shards of config `name` in `directory` as one table (None when the config is absent), once
    :func:`check_config_files` has passed them.

    Args:
        directory (`Path`): the folder in the dataset layout.
        name (`str`): the config.
        save_id (`str`, *optional*): the save every file must come from (the ``meta`` config's,
            :func:`config_save_id`); None: files without a stamp (a folder saved before stamps); by default
            (:data:`ANY_SAVE`) the config's files need only agree with each other.
        columns (`Iterable[str]`, *optional*): columns every file must have (those the loader reads).
        stamps (`bool`, *optional*, defaults to `True`): check the stamps; `False` for a caller that checks them
            itself, after checks of its own that say better what is wrong.

    Raises:
        ProfileFormatError: a file is damaged, lacks one of `columns`, or was not written with the others.
    """
    files = sorted((directory / name).glob("*.parquet"))
    if not files:
        return None
    check_config_files(files, name, save_id=save_id, columns=columns, stamps=stamps)
    # in the order they were saved (renamed files keep their stamp's shard index; read with the data, not again);
    # the stamps differ from shard to shard and are checked: the table carries none of them
    tables = sorted((_read_parquet(f) for f in files),
                    key=lambda t: getattr(SaveStamp.decode(t.schema.metadata), "shard", -1))
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables], promote_options="default")


def config_save_id(directory: Path, name: str) -> str | None:
    """The save id of config `name` in `directory`, its files checked to agree (None: absent, or saved before
    stamps)."""
    files = sorted((directory / name).glob("*.parquet"))
    return check_config_files(files, name) if files else None


def check_config_files(files: list[Path], config: str, *, save_id: str | None = ANY_SAVE,
                       columns: Iterable[str] = (), stamps: bool = True) -> str | None:
    """Check, from the files' footers alone (no data is read), that the parquet files of one config were written
    together by one save and not changed since: one save id (`save_id` when given), shards 0..n-1 each once, the
    rows and schema each stamp records. Files without stamps (saved before them) pass when none has one and
    `save_id` asks for none in particular. Returns the files' save id (None: no stamps).

    Raises:
        ProfileFormatError: naming the file(s), what is wrong, and the fix.
    """
    footers = {path: _footer(path) for path in files}
    needed = list(columns)
    for path, (schema, _) in footers.items():
        missing = [c for c in needed if c not in schema.names]
        if missing:
            raise ProfileFormatError(
                f"{path} lacks the column(s) {', '.join(map(repr, missing))} that loading reads: it was changed after "
                "saving, or comes from something else than hf_txray. Save (or push, or export) the profiles and "
                "reports again.")
    if not stamps:
        return None
    stamped = {path: SaveStamp.decode(schema.metadata) for path, (schema, _) in footers.items()}
    unstamped = [path for path, stamp in stamped.items() if stamp is None]
    if unstamped:
        if len(unstamped) < len(files) or save_id not in (None, ANY_SAVE):
            raise _not_one_save(unstamped, "no save stamp, while the other files read with them have one")
        return None
    first = stamped[files[0]].save_id
    expected = first if save_id == ANY_SAVE else save_id
    if expected is None:
        raise _not_one_save(files, f"a save stamp, while {_meta_files(files[0])} have none")
    others = [path for path, stamp in stamped.items() if stamp.save_id != expected]
    if others:
        said = _meta_files(files[0]) if save_id != ANY_SAVE else str(files[0])
        raise _not_one_save(others, f"written by another save than {said}")
    _check_shards(stamped, footers, config)
    return expected


def _meta_files(path: Path) -> str:
    """The meta config's files next to the config file `path`, as an error names them."""
    return ", ".join(str(p) for p in sorted((path.parent.parent / "meta").glob("*.parquet"))) or "meta/"


def _footer(path: Path) -> tuple[pa.Schema, int]:
    """A parquet file's schema (with its metadata) and row count, from the footer alone."""
    try:
        file = pq.ParquetFile(arrow_path(path))
        return file.schema_arrow, file.metadata.num_rows
    except (pa.ArrowException, OSError) as err:  # truncated, overwritten, not parquet
        raise _damaged(path, err) from err


def _check_shards(stamps: Mapping[Path, SaveStamp], footers: Mapping[Path, tuple[pa.Schema, int]],
                  config: str) -> None:
    """The stamped files of one save's config: each in its config, shards 0..n-1 once each, rows and schema as
    stamped."""
    for path, stamp in stamps.items():
        schema, rows = footers[path]
        if stamp.config != config:
            raise _not_one_save([path], f"saved as a file of {stamp.config}/, not of {config}/")
        if rows != stamp.rows:
            raise _not_one_save([path], f"{rows} rows, saved with {stamp.rows}")
        if schema_fingerprint(schema) != stamp.schema:
            raise _not_one_save([path], "a schema (columns or their types) other than the one it was saved with")
    by_shard: dict[tuple[int, int], list[Path]] = {}
    for path, stamp in stamps.items():
        by_shard.setdefault((stamp.shard, stamp.shards), []).append(path)
    for (shard, shards), paths in by_shard.items():
        if len(paths) > 1:
            raise _not_one_save(paths, f"the same shard (index {shard} of {shards}) twice")
    counts = {shards for _, shards in by_shard}
    held = sorted(shard for shard, _ in by_shard)
    if len(counts) != 1 or held != list(range(next(iter(counts)))):
        raise _not_one_save(list(stamps), f"shard indices {held} of {' or '.join(map(str, sorted(counts)))} shards: "
                                          "a shard is missing or left over")
    total = {stamp.total_rows for stamp in stamps.values()}
    if total != {sum(rows for _, rows in footers.values())}:
        raise _not_one_save(list(stamps), f"{sum(r for _, r in footers.values())} rows together, saved with "
                                          f"{' or '.join(map(str, sorted(total)))}")


def _not_one_save(paths: list[Path], what: str) -> ProfileFormatError:
    named = ", ".join(str(p) for p in paths)
    return ProfileFormatError(f"{named}: {what}. The folder mixes files of different saves, or was changed after "
                              "saving, so it is not read: save (or push, or export) the profiles and reports again "
                              "into an empty folder (or recompute them).")


def _damaged(path: Path, err: Exception) -> ProfileFormatError:
    return ProfileFormatError(f"{path} is damaged and cannot be read ({type(err).__name__}: {err}): save (or push, or "
                              "export) the profiles and reports again, or recompute them.")


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(arrow_path(path))
    except (pa.ArrowException, OSError) as err:  # truncated, overwritten, not parquet
        raise _damaged(path, err) from err


def _where(table: pa.Table | None, **equal: str) -> pa.Table | None:
    """Rows whose columns equal the given values (all of them)."""
    if table is None:
        return None
    mask = None
    for column, value in equal.items():
        condition = pc.equal(table[column], value)
        mask = condition if mask is None else pc.and_(mask, condition)
    return table.filter(mask)


def _vocabularies(row: dict[str, Any]) -> dict[str, tuple[list[str], np.ndarray]]:
    return {v["feature_type"]: (list(v["features"]), np.asarray(v["corpus_counts"], dtype=np.int64))
            for v in row["vocabularies"] or []}


def _feature_table(dist: pa.Table, meta: dict[str, Any], vocab: list[str], corpus: np.ndarray,
                   has_noise: bool | None, where: Path) -> dict[str, Any]:
    """The keyword arguments of one ``FeatureTable`` (`has_noise`: None for folders written before it was stored,
    then inferred from the columns) from the rows of `dist`, read from the config folder `where`."""
    index = {f: i for i, f in enumerate(vocab)}
    try:
        fids = np.fromiter((index[f] for f in dist["feature"].to_pylist()), dtype=np.int64, count=dist.num_rows)
    except KeyError as err:
        raise ProfileFormatError(f"Feature {err.args[0]!r} of stage {meta['stage']!r} is not in its vocabulary: the "
                                 "distributions/ and meta/ files are damaged or from different saves. Save (or push, "
                                 "or export) the profile again.") from None
    rows = _checked_rows(meta, dist, where)
    order = np.argsort((rows << 32) | fids, kind="stable")
    noise = {}
    names = dist.column_names
    if has_noise is None:
        has_noise = all(c in names and dist[c].null_count == 0 for c in NOISE_COLUMNS)
    if has_noise:
        noise = {c: dist[c].to_numpy()[order].astype(np.int64 if c == "count_odd" else np.float64)
                 for c in NOISE_COLUMNS}
    return {"vocab": vocab, "rows": rows[order], "feature_ids": fids[order],
            "mass": dist["mass"].to_numpy()[order].astype(np.float64),
            "count": dist["count"].to_numpy()[order].astype(np.int64), "corpus_count": corpus, **noise}


def _checked_rows(meta: dict[str, Any], table: pa.Table, where: Path) -> np.ndarray:
    """The profile rows (:func:`_row_index`) of `table`'s (layer, neuron) pairs, each checked to be a neuron of the
    profile: a pair outside it indexed past the arrays or, worse, into another layer's neurons."""
    layer, neuron = table["layer"].to_numpy(), table["neuron"].to_numpy()
    outside = ~np.isin(layer, np.asarray(meta["layers"], np.int64)) | (neuron < 0) | (neuron >= meta["num_neurons"])
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ProfileFormatError(
            f"{where} has a row of stage {meta['stage']!r} at layer {layer[i]}, neuron {neuron[i]}: outside the saved "
            f"layers {list(meta['layers'])} x {meta['num_neurons']} neurons. The file was changed after saving or is "
            "from another save: save (or push, or export) the profile again.")
    return _row_index(meta["layers"], layer, neuron, meta["num_neurons"])


# Every credit has a token: the token table's sums per neuron are the neuron card's count and mass. A credit may lack
# a value of the other feature types (a token outside every span of a user feature): their sums are at most those.
COMPLETE_FEATURE = "token"
# Sums taken in another order (on a device, over merged parts) differ in the last bits; a table cut short, copied
# from another profile or with rows repeated is off by whole credits.
SUM_RTOL = 1e-6


def _check_feature_sums(meta: dict[str, Any], ft: str, table: dict[str, Any], mass: np.ndarray, count: np.ndarray,
                        directory: Path) -> None:
    """Refuse a stage whose distributions/ rows of feature type `ft` (:func:`_feature_table`'s, sorted by row and
    feature) do not add up to its neuron_cards/ rows (`mass`, `count` per profile row). Folders saved before the save
    stamps have nothing else to tell a truncated or swapped file by; a few vectorised passes over arrays already
    read."""
    rows = table["rows"]
    sums = np.bincount(rows, weights=table["count"], minlength=len(count))
    masses = np.bincount(rows, weights=table["mass"], minlength=len(mass))
    slack = SUM_RTOL * np.abs(mass) + 1e-12
    if ft == COMPLETE_FEATURE:
        off = (sums != count) | (np.abs(masses - mass) > slack)
        rule = f"every credit has a {ft!r} value, so they add up to the card"
    else:
        off = (sums > count) | (masses - mass > slack)
        rule = f"a credit has at most one {ft!r} value, so they add up to no more than the card"
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise _disagrees(meta, directory, row, f"its {ft!r} rows in distributions/ add up to {int(sums[row])} credits "
                         f"of mass {masses[row]:.6g}, its neuron_cards/ row says {int(count[row])} of mass "
                         f"{mass[row]:.6g} ({int(off.sum())} neurons disagree; {rule})")


def _check_unique_features(meta: dict[str, Any], ft: str, table: dict[str, Any], directory: Path) -> None:
    """Refuse a stage whose distributions/ rows repeat a (layer, neuron, feature) of feature type `ft` (`table`
    sorted by row and feature): no save writes two, whatever its stamps say, and a stamped folder with a feature name
    edited in place into another's loaded and ended compare in a bare IndexError (helper 199)."""
    rows, features = table["rows"], table["feature_ids"]
    repeated = np.flatnonzero((rows[1:] == rows[:-1]) & (features[1:] == features[:-1]))
    if len(repeated):
        i = int(repeated[0])
        raise _disagrees(meta, directory, int(rows[i]), f"its {ft!r} feature {table['vocab'][features[i]]!r} has "
                         f"more than one row in distributions/ ({len(repeated)} repeated rows; one per (layer, "
                         "neuron, feature) is saved)")


def _disagrees(meta: dict[str, Any], directory: Path, row: int, what: str) -> ProfileFormatError:
    layer, neuron = meta["layers"][row // meta["num_neurons"]], row % meta["num_neurons"]
    return ProfileFormatError(
        f"{directory}: the distributions/ and neuron_cards/ tables of stage {meta['stage']!r} disagree at layer "
        f"{layer}, neuron {neuron}: {what}. A file was cut short, has rows repeated, or comes from another profile "
        "or stage: re-save it from its source, or profile again.")


def _noise_of_cards(cards: pa.Table, rows: np.ndarray, num_rows: int) -> tuple[np.ndarray | None, PositionMass | None]:
    """The neuron cards' noise statistics (split-half counts, mass by position) when present."""
    odd = positions = None
    if "count_odd" in cards.column_names and cards["count_odd"].null_count == 0:
        odd = np.zeros(num_rows, np.int64)
        odd[rows] = cards["count_odd"].to_numpy()
    if "mass_by_position" in cards.column_names and cards["mass_by_position"].null_count == 0:
        column = cards["mass_by_position"].combine_chunks()
        flat = pc.list_flatten(column)
        parents = rows[pc.list_parent_indices(column).to_numpy()]
        positions = PositionMass.from_entries(parents, flat.field("position").to_numpy(), flat.field("mass").to_numpy(),
                                              flat.field("count").to_numpy())
    return odd, positions


def _examples(cards: pa.Table) -> pd.DataFrame | None:
    """The top examples of the cards in the columns of ``Profile.examples`` (None when there are none)."""
    column = cards["top_examples"].combine_chunks()
    parents = pc.list_parent_indices(column).to_numpy()
    flat = pc.list_flatten(column)
    if len(flat) == 0:
        return None
    get = lambda name: flat.field(name).to_numpy(zero_copy_only=False)  # noqa: E731
    snippets, starts, ends = flat.field("snippet").to_pylist(), get("span_start"), get("span_end")
    frame = pd.DataFrame({
        "layer": cards["layer"].to_numpy()[parents], "neuron": cards["neuron"].to_numpy()[parents],
        "rank": get("rank"), "activation": get("activation"), "example_id": get("example_id"),
        "token_index": get("token_index"), "char_start": get("char_start"), "char_end": get("char_end"),
        "token": [s[a:b] for s, a, b in zip(snippets, starts, ends, strict=True)],
        "left": [s[:a] for s, a in zip(snippets, starts, strict=True)],
        "right": [s[b:] for s, b in zip(snippets, ends, strict=True)],
    })  # fmt: skip
    return frame.sort_values(["layer", "neuron", "rank"], kind="stable").reset_index(drop=True)


def _profile(row: dict[str, Any], cards: pa.Table, dist: pa.Table, outputs: pa.Table | None,
             directory: Path, check_sums: bool = True) -> dict[str, Any]:
    """The parts of one stage's profile (see ``Profile.from_parts``) read from `directory`."""
    meta = json.loads(row["metadata"])
    cards, dist = _where(cards, stage=meta["stage"]), _where(dist, stage=meta["stage"])
    num_rows = len(meta["layers"]) * meta["num_neurons"]
    if cards.num_rows != num_rows:
        raise ProfileFormatError(f"{directory / 'neuron_cards'} has {cards.num_rows} rows for stage "
                                 f"{meta['stage']!r}, and its meta row says {num_rows} (layers x neurons): the meta or "
                                 "the cards were changed after saving. Save (or push, or export) the profile again.")
    rows = _checked_rows(meta, cards, directory / "neuron_cards")
    if len(np.unique(rows)) != num_rows:  # as many rows as neurons, but one of them twice
        raise ProfileFormatError(f"{directory / 'neuron_cards'} lists a neuron of stage {meta['stage']!r} twice (and "
                                 "misses another): its files were changed after saving. Save (or push, or export) "
                                 "the profile again.")
    mass, count = np.zeros(num_rows, np.float64), np.zeros(num_rows, np.int64)
    mass[rows], count[rows] = cards["mass"].to_numpy(), cards["count"].to_numpy()
    vocabularies = _vocabularies(row)
    unsaved = [ft for ft in meta["feature_types"] if ft not in vocabularies]
    if unsaved:  # helper 250: a feature type edited into the metadata ended the load in a bare KeyError
        raise ProfileFormatError(
            f"{directory / 'meta'}: stage {meta['stage']!r} lists the feature type(s) {unsaved} in its metadata but "
            f"meta/ holds no vocabulary for them (it holds {sorted(vocabularies)}): the metadata was edited after "
            "saving or comes from another save. Save (or push, or export) the profile again.")
    has_noise = json.loads(row["columns"] or "{}").get("noise")
    tables = {ft: _feature_table(_where(dist, feature_type=ft), meta, *vocabularies[ft], has_noise,
                                 directory / "distributions") for ft in meta["feature_types"]}
    for ft, table in tables.items():
        _check_unique_features(meta, ft, table, directory)
        if check_sums:
            _check_feature_sums(meta, ft, table, mass, count, directory)
    shape = (len(meta["layers"]), meta["num_neurons"])
    odd, positions = _noise_of_cards(cards, rows, num_rows)
    return {"meta": meta, "neuron_mass": mass.reshape(shape), "neuron_count": count.reshape(shape), "tables": tables,
            "examples": _examples(cards), "neuron_count_odd": None if odd is None else odd.reshape(shape),
            "position_mass": positions, **_neuron_pages(cards, rows, meta, outputs)}


def _neuron_pages(cards: pa.Table, rows: np.ndarray, meta: dict[str, Any], outputs: pa.Table | None) -> dict[str, Any]:
    """Histogram (the keyword arguments of a ``HistogramTable``) and output effects of one stage, from its
    neuron_cards rows (in `rows` order); None where absent."""
    out: dict[str, Any] = {"activation_histogram": None, "output_effects": None}
    names = cards.column_names
    settings = meta.get("config", {}).get("activation_histogram")
    if "activation_histogram" in names and cards["activation_histogram"].null_count == 0 and settings:
        from .accumulators import histogram_edges

        column = cards["activation_histogram"].combine_chunks()
        parents = pc.list_parent_indices(column).to_numpy()
        flat = pc.list_flatten(column)
        bins = flat.field("bin").to_numpy(zero_copy_only=False).astype(np.int64)
        counts = flat.field("count").to_numpy(zero_copy_only=False).astype(np.int64)
        hist_rows = rows[parents] if len(parents) else np.zeros(0, np.int64)
        order = np.lexsort((bins, hist_rows)) if len(parents) else np.zeros(0, np.int64)
        out["activation_histogram"] = {"num_bins": len(histogram_edges(**settings)) + 1, "rows": hist_rows[order],
                                       "bins": bins[order], "counts": counts[order]}
    stage_outputs = _where(outputs, stage=meta["stage"]) if outputs is not None else None
    if stage_outputs is not None and stage_outputs.num_rows:
        from .output_effects import normalize_output_effects

        out["output_effects"] = normalize_output_effects(stage_outputs.to_pandas())
    return out


def _frame(table: pa.Table | None, schema: list[list[str]]) -> pd.DataFrame:
    """Select a report table's columns and restore its dtypes (union tables turn ints with nulls into floats)."""
    names = [c for c, _ in schema]
    if table is None or table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema})
    return table.select(names).to_pandas().astype(dict(map(tuple, schema))).reset_index(drop=True)


def _report(row: dict[str, Any], transfer: pa.Table | None, summary: pa.Table | None, directory: Path
            ) -> dict[str, Any]:
    """The parts of one report (see ``TransferReport.from_parts``)."""
    meta = json.loads(row["metadata"])
    schema = json.loads(row["columns"])
    neurons = _frame(_where(transfer, report=row["name"]), schema["neurons"])
    layers = _frame(_where(summary, report=row["name"], kind="layer"), schema["layers"])
    mass_share = _frame(_where(summary, report=row["name"], kind="mass_share"), schema["mass_share"])
    parts = {"neurons": neurons, "layers": layers, "mass_share": mass_share}
    layer_list = meta.get("layers") or []  # saves before the row counts: one neuron row per (layer, neuron)
    expected = schema.get("rows") or {"neurons": len(layer_list) * int(meta.get("num_neurons") or 0),
                                      "layers": len(layer_list)}
    short = {name: (len(parts[name]), rows) for name, rows in expected.items() if len(parts[name]) != rows}
    if short:
        where = {"neurons": "transfer_reports/", "layers": "summary/", "mass_share": "summary/"}
        raise ProfileFormatError(
            f"Report {row['name']!r} is incomplete: " + ", ".join(f"{n} has {got} rows, saved with {want} (in "
                                                                   f"{directory}/{where[n]})"
                                                                   for n, (got, want) in short.items())
            + ": a file is missing or from another save. Save (or push, or export) the report again.")
    return {"meta": meta, **parts}


def read_parts(directory: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The parts of the profiles (by stage) and reports (by name) of a folder in the dataset layout.

    Raises:
        ProfileFormatError: the folder is not an hf_txray export, was written by a newer hf_txray, mixes files of
            different saves or was changed after saving (:func:`check_config_files`), or lacks a column it reads.
    """
    directory = Path(directory)
    meta = read_config(directory, "meta", columns=META_COLUMNS, stamps=False)  # its stamps: after the rows' checks
    if meta is None:
        held = [name for name in EXTRA_CONFIGS if any((directory / name).glob("*.parquet"))]
        if held:  # a push of probing results or ablation curves alone
            what = {"probe_rankings": "probing results", "ablation": "ablation curves"}
            raise ProfileFormatError(
                f"{directory} holds {' and '.join(f'{n}/ ({what[n]})' for n in held)} but no profiles or reports: "
                "read them with hf_txray.probing.load_probing(...) given the same repo id or folder.")
        saved = [p.parent for p in directory.rglob("txray_artifact.json")] if directory.is_dir() else []
        if directory in saved:  # its own header: a save_pretrained folder that lost meta/ (helper 199: the hint
            # below told Profile.from_pretrained's caller to load it with Profile.from_pretrained)
            raise ProfileFormatError(f"{directory} is a saved artifact (txray_artifact.json) without its meta/*.parquet: "
                                     "a file was deleted after saving. Save it again from its source.")
        hint = (f" It holds profiles or reports saved one by one ({len(saved)}, e.g. {str(saved[0])!r}: a "
                "TXRayTrainer's txray/ folder or save_pretrained's): load each with Profile.from_pretrained / "
                "TransferReport.from_pretrained, or collect them into an export with "
                f"`{shell_command('hf-txray', 'export', shell_path(directory), '--out', 'DIR')}`." if saved else "")
        raise ProfileFormatError(f"{directory} is not an hf_txray export: no meta/*.parquet.{hint}")
    rows = meta.to_pylist()
    names = [(r["kind"], r["name"]) for r in rows]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ProfileFormatError(f"{directory} lists {twice[0][0]} {twice[0][1]!r} more than once in meta/: a meta file "
                                 "from another save was copied in. Keep one save per folder (save or export again).")
    newest = max((r["format_version"] or 0) for r in rows)
    if newest > EXPORT_FORMAT_VERSION:
        raise ProfileFormatError(f"{directory} was written in export format {newest}, newer than this hf_txray "
                                 f"({__version__}) reads ({EXPORT_FORMAT_VERSION}). Upgrade hf_txray.")
    save_id = config_save_id(directory, "meta")  # every config read below must come from the save meta/ does
    profiles: dict[str, dict[str, Any]] = {}
    reports: dict[str, dict[str, Any]] = {}
    profile_rows = [r for r in rows if r["kind"] == "profile"]
    if profile_rows:
        noise = any(json.loads(r["columns"] or "{}").get("noise") for r in profile_rows)
        cards = read_config(directory, "neuron_cards", save_id=save_id, columns=CARD_COLUMNS)
        dist = read_config(directory, "distributions", save_id=save_id,
                           columns=DISTRIBUTION_COLUMNS + (NOISE_COLUMNS if noise else ()))
        if cards is None or dist is None:
            raise ProfileFormatError(f"{directory} lists profiles but lacks neuron_cards/ or distributions/.")
        outputs = read_config(directory, "neuron_outputs", save_id=save_id, columns=OUTPUTS_SCHEMA.names)
        # a folder saved before the stamps has nothing else to tell a cut or mixed table by (stamped ones are
        # checked by their stamps; a hand-built Profile need not hold the engine's sums)
        profiles = {r["name"]: _profile(r, cards, dist, outputs, directory, check_sums=save_id is None)
                    for r in profile_rows}
    report_rows = [r for r in rows if r["kind"] == "report"]
    if report_rows:
        neurons, summarized = _report_columns(report_rows)
        transfer = read_config(directory, "transfer_reports", save_id=save_id, columns=neurons)
        summary = read_config(directory, "summary", save_id=save_id, columns=summarized)
        reports = {r["name"]: _report(r, transfer, summary, directory) for r in report_rows}
    return profiles, reports


# Columns the loader reads from each config (a file without one is refused, naming it and the column). The
# neuron cards' noise, position, histogram and output columns are optional: the loader looks for them.
META_COLUMNS = ("kind", "name", "format_version", "metadata", "columns", "vocabularies")
CARD_COLUMNS = ("stage", "layer", "neuron", "mass", "count", "top_examples")
DISTRIBUTION_COLUMNS = ("stage", "layer", "neuron", "feature_type", "feature", "mass", "count")


def _report_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The columns of ``transfer_reports`` and of ``summary`` that the reports of `rows` (meta rows) read: those of
    their tables that have rows (a report without mass-share rows added no columns for them)."""
    neurons, summary = ["report"], ["report", "kind"]
    for row in rows:
        schema = json.loads(row["columns"])
        held = schema.get("rows") or {"neurons": 1, "layers": 1, "mass_share": 0}  # saves before the row counts
        neurons += [c for c, _ in schema["neurons"]] if held.get("neurons") else []
        for part in ("layers", "mass_share"):
            summary += [c for c, _ in schema[part]] if held.get(part) else []
    return list(dict.fromkeys(neurons)), list(dict.fromkeys(summary))


def read_single(directory: str | Path, kind: str) -> dict[str, Any]:
    """The parts of the one profile (`kind` ``"profile"``) or report (``"report"``) a ``save_pretrained`` folder holds.

    Raises:
        ProfileFormatError: the folder holds anything else (a whole results folder: load it with hf_txray.load).
    """
    profiles, reports = read_parts(directory)
    wanted = profiles if kind == "profile" else reports
    if len(wanted) != 1 or len(profiles) + len(reports) != 1:
        raise ProfileFormatError(f"{directory} holds {len(profiles)} profiles and {len(reports)} reports, expected "
                                 f"one {kind}: load a results folder with hf_txray.load.")
    return next(iter(wanted.values()))

