"""Probing results and ablation curves <-> the ``probe_rankings`` and ``ablation`` configs of the dataset layout.

The tables of one :class:`~hf_txray.probing.ProbingResult` or :class:`~hf_txray.probing.AblationCurve` (rows keyed by
the run's name), and back: what ``save_pretrained`` writes for one result and :mod:`hf_txray.probing.results` adds to
a results folder or repo. This module sits below the artifacts (it reads their attributes; they import it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..card import probing_card
from ..errors import ConfigurationError, ProfileFormatError
from ..io_utils import json_text
from ..layout import EXTRA_CONFIGS, read_config, write_config

if TYPE_CHECKING:
    from .ablation import AblationCurve
    from .pipeline import ProbingResult

PROBING_CONFIGS = EXTRA_CONFIGS  # ("probe_rankings", "ablation"): a TX-Ray push uploads them when present
PROBE_CONFIG, ABLATION_CONFIG = PROBING_CONFIGS
LABEL_TOP_NEURONS = 20  # top neurons kept per class in the label_neuron rows
CURVE_COLUMNS = ["strategy", "seed", "num_ablated", "value"]


PROBE_SCHEMA = pa.schema([
    ("probe", pa.string()), ("kind", pa.string()), ("model_id", pa.string()), ("property", pa.string()),
    ("site", pa.string()), ("layer", pa.int64()), ("neuron", pa.int64()), ("rank", pa.int64()),
    ("score", pa.float64()), ("weight_norm", pa.float64()), ("label", pa.string()), ("weight", pa.float64()),
    ("support", pa.int64()), ("accuracy", pa.float64()), ("majority_baseline", pa.float64()),
    ("control_accuracy", pa.float64()), ("selectivity", pa.float64()), ("subset", pa.string()),
    ("seed", pa.int64()), ("num_neurons", pa.int64()), ("reached", pa.bool_()), ("metadata", pa.string()),
])  # fmt: skip
ABLATION_SCHEMA = pa.schema([
    ("ablation", pa.string()), ("model_id", pa.string()), ("metric", pa.string()), ("mode", pa.string()),
    ("ranking_source", pa.string()), ("layers", pa.list_(pa.int64())), ("strategy", pa.string()),
    ("seed", pa.int64()), ("num_ablated", pa.int64()), ("value", pa.float64()),
    ("hf_txray_version", pa.string()), ("created_at", pa.string()),
])  # fmt: skip


# ----- objects -> tables ------------------------------------------------------------------------------------------
def _rows_frame(rows: list[dict[str, Any]] | pd.DataFrame, **constant: Any) -> pd.DataFrame:
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for key, value in constant.items():
        frame[key] = value
    return frame


def probe_table(result: "ProbingResult") -> pa.Table:
    """The ``probe_rankings`` rows of one probing run."""
    m = result.meta
    common = {"probe": m.name, "model_id": m.model_id, "property": m.property, "site": m.site}
    # strict, as write_json: default=str wrote numpy integers as text (layers [0, 1] read back as ['0', '1']) and NaN
    metadata = json_text({"meta": dataclasses.asdict(m), "summary": result.summary()},
                         f"the probe_rankings metadata of probe {m.name!r}")
    parts = [
        _rows_frame([{"kind": "probe", "accuracy": result.accuracy, "majority_baseline": result.majority_baseline,
                      "control_accuracy": result.control_accuracy, "selectivity": result.selectivity,
                      "num_neurons": result.minimal_size, "metadata": metadata}], **common),
        _rows_frame(result.per_class[["label", "support", "accuracy"]], kind="label", **common),
        _rows_frame(result.ranking[["rank", "layer", "neuron", "score", "weight_norm"]].assign(
            label=result.ranking["top_label"], weight=result.ranking["top_weight"]), kind="neuron", **common),
    ]
    for label in result.probe.ranked_labels():  # a class without a training word has no ranking (zeroed weights)
        top = result.top_neurons(LABEL_TOP_NEURONS, label=label)
        parts.append(_rows_frame(top.rename(columns={"class_rank": "rank"}), kind="label_neuron", label=label,
                                 **common))
    if len(result.subsets):
        parts.append(_rows_frame(result.subsets[["subset", "seed", "num_neurons", "accuracy"]], kind="subset",
                                 **common))
    if len(result.minimal):
        parts.append(_rows_frame(result.minimal[["num_neurons", "accuracy", "reached"]], kind="minimal", **common))
    return _conform(pd.concat(parts, ignore_index=True), PROBE_SCHEMA)


def ablation_table(curve: "AblationCurve") -> pa.Table:
    """The ``ablation`` rows of one curve."""
    frame = _rows_frame(curve.table[["strategy", "seed", "num_ablated", "value"]], ablation=curve.name,
                        model_id=curve.model_id, metric=curve.metric, mode=curve.mode,
                        ranking_source=curve.ranking_source, hf_txray_version=curve.hf_txray_version,
                        created_at=curve.created_at)
    frame["layers"] = [list(map(int, curve.layers))] * len(frame)
    return _conform(frame, ABLATION_SCHEMA)


def _conform(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    columns = {}
    for f in schema:
        if f.name in frame.columns:
            values = frame[f.name].tolist()
            values = [None if (isinstance(v, float) and np.isnan(v) and not pa.types.is_floating(f.type)) else v
                      for v in values]
            if pa.types.is_integer(f.type):
                values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v) for v in values]
            columns[f.name] = pa.array(values, f.type)
        else:
            columns[f.name] = pa.nulls(len(frame), f.type)
    return pa.table(columns, schema=schema)


def curve_parts(rows: pd.DataFrame) -> dict[str, Any]:
    """The keyword arguments of the ``AblationCurve`` whose ``ablation`` rows are `rows` (one run)."""
    first = rows.iloc[0]
    optional = {k: first[k] for k in ("hf_txray_version", "created_at") if k in rows and isinstance(first[k], str)}
    return {"table": rows[CURVE_COLUMNS].reset_index(drop=True), "name": first["ablation"], "metric": first["metric"],
            "mode": first["mode"], "model_id": first["model_id"], "ranking_source": first["ranking_source"],
            "layers": [int(v) for v in first["layers"]], **optional}


def write_probing_folder(folder: Path, probe: pa.Table | None, ablation: pa.Table | None, repo_id: str | None = None,
                         revision: str | None = None) -> None:
    """Write the two configs (those given) and the dataset card declaring them into `folder` (its loading examples
    naming `repo_id` and `revision` where given: a push)."""
    for name, table in ((PROBE_CONFIG, probe), (ABLATION_CONFIG, ablation)):
        if table is not None:
            write_config(table, folder / name)
    probing_card(folder / "README.md", probe, ablation, repo_id, revision).save(folder / "README.md")


RUN_COLUMNS = {PROBE_CONFIG: "probe", ABLATION_CONFIG: "ablation"}  # the column naming each config's runs


def refuse_exported_rows(folder: str | Path, own: str, what: str, cli_flag: str | None = None) -> None:
    """Refuse to replace a saved probing result or ablation curve (its own config `own`) in `folder` when another run
    exported its rows there (``hf-txray probe --out Y --export X`` into an earlier probe's output X): a save replaces
    the folder as a whole, and took those rows with it without a word (helper 351).

    Raises:
        ConfigurationError: naming the runs whose rows would be lost and the fix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    others = []
    for name, column in RUN_COLUMNS.items():
        table = read_config(folder, name, columns=(column,)) if (folder / name).is_dir() else None
        runs = sorted(set(table[column].to_pylist())) if table is not None else []
        if name != own or len(runs) > 1:  # its own config holds its one run; any other rows were exported into it
            others += [f"{name} {run!r}" for run in runs]
    if others:
        given = f" (CLI: {cli_flag})" if cli_flag else ""
        raise ConfigurationError(
            f"{folder} holds rows that other runs exported into it ({', '.join(others)}: --export {folder}); {what} "
            f"replaces the whole folder, which would delete them: give another folder{given}, or move that folder's "
            "results into a results folder first (hf_txray.probing.save_probing(results_dir, "
            "probes=..., ablations=...)) and delete it.")


def read_curve(folder: Path) -> dict[str, Any]:
    """The parts of the one ablation curve saved in `folder`."""
    table = read_config(folder, ABLATION_CONFIG)
    if table is None or len(set(table["ablation"].to_pylist())) != 1:
        raise ProfileFormatError(f"{folder} has no ablation/ config with exactly one curve.")
    return curve_parts(table.to_pandas())
