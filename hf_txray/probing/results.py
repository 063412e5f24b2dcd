"""Probing and ablation results in a results repo: the ``probe_rankings`` and ``ablation`` configs.

Both are extra configs of the same dataset layout as :func:`hf_txray.save_to_disk` (one folder per config, declared
in the README YAML), so ``datasets.load_dataset(repo, "probe_rankings")`` works and a TX-Ray push leaves them alone.
Rows are keyed by the run's name (``probe`` / ``ablation`` column): adding a result replaces the rows of the same
name and keeps the others.

``probe_rankings``, one row per ``kind``:

- ``probe``: the run's scores (``accuracy``, ``majority_baseline``, ``control_accuracy``, ``selectivity``,
  ``num_neurons`` = minimal set size) and ``metadata`` (JSON: model, layers, hyperparameters...);
- ``label``: per class ``support`` and test ``accuracy``;
- ``neuron``: every neuron's global ``rank``, ``score``, ``weight_norm``, top ``label`` and its ``weight``;
- ``label_neuron``: per class, its top neurons (``rank`` within the class, signed ``weight``);
- ``subset``: top / random / bottom subsets (``subset``, ``seed``, ``num_neurons``, ``accuracy``);
- ``minimal``: the sizes tried for the minimal set (``num_neurons``, ``accuracy``, ``reached``).

``ablation``: one row per (run, strategy, seed, number ablated) with the metric's ``value``.

The viewer functions at the end (:func:`load_probing`, :func:`probe_overview`, :func:`neuron_probe_rows`...) are what a
Space calls to show these configs when a repo has them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import huggingface_hub
import pandas as pd
import pyarrow as pa

from ..artifact import HEADER_FILE
from ..card import probing_card
from ..counts import as_int
from ..errors import ConfigurationError
from ..logging import get_logger
from ..redaction import shown_url
from ..tables import NEURON_PROBE_COLUMNS
from ..export import as_list
from ..hub_io import (check_repo_id, full_repo_id, local_or_download, pushed_models, refuse_probing_into_other_models,
                      resolve_token, upload_folder)
from ..layout import CONFIGS, check_tables_load, read_config, write_config
from ..options import resolve_layer
from ..version import __version__
from .ablation import AblationCurve
from .layout import ABLATION_CONFIG, PROBE_CONFIG, PROBING_CONFIGS, ablation_table, curve_parts, probe_table
from .pipeline import ProbingResult

logger = get_logger(__name__)


# ----- folder ------------------------------------------------------------------------------------------------------
def _merge(existing: pa.Table | None, new: pa.Table, key: str) -> pa.Table:
    """`new` plus the rows of `existing` whose run name is not in `new`."""
    if existing is None:
        return new
    import pyarrow.compute as pc

    names = pa.array(sorted(set(new[key].to_pylist())), pa.string())
    kept = existing.filter(pc.invert(pc.is_in(existing[key], value_set=names)))
    kept = kept.select([f.name for f in new.schema if f.name in kept.column_names])
    return pa.concat_tables([kept, new], promote_options="default").cast(new.schema)


def check_results_folder(directory: str | Path) -> Path:
    """Refuse a `directory` that :func:`save_probing` cannot add its configs to: a file, or a folder of other files
    (not empty and no results folder). The CLI's ``--export`` is checked with it before the probe is trained or the
    curve measured (it was refused only when saving, after the work).

    Returns:
        `Path`: `directory`.

    Raises:
        ConfigurationError: `directory` is a file, or a folder that is neither empty nor a results folder.
    """
    directory = Path(directory)
    if directory.is_file():
        raise ConfigurationError(f"{directory} is a file; pass a results folder (CLI: --export).")
    if directory.is_dir() and any(directory.iterdir()) and not _holds_results(directory):
        raise ConfigurationError(f"{directory} is neither empty nor a results folder (no README.md beside "
                                 f"{HEADER_FILE} or a results config such as meta/ or {PROBE_CONFIG}/); choose a new "
                                 "folder or an hf_txray export folder (CLI: --export).")
    return directory


def _holds_results(directory: Path) -> bool:
    """Whether `directory` is a results folder hf_txray wrote: its README.md beside the artifact header or a config
    folder. A README.md alone is anyone's (a model's folder, a project's root): taken as a results folder, the model's
    card got a YAML header and a probing section prepended, and an ablation/ folder was added beside its weights."""
    marks = (HEADER_FILE, *CONFIGS, *PROBING_CONFIGS)
    return (directory / "README.md").is_file() and any((directory / mark).exists() for mark in marks)


def save_probing(directory: str | Path, probes: Any = None, ablations: Any = None, *, repo_id: str | None = None
                 ) -> Path:
    """Write probing results and ablation curves into a results folder as the ``probe_rankings`` / ``ablation``
    configs, declared in its README.

    `directory` can be a folder written by :func:`hf_txray.save_to_disk` (the configs are added next to the TX-Ray
    ones; a later ``save_to_disk`` over the folder keeps them; results of another model than its profiles' are
    refused), or a new folder (a README is created). Rows of runs
    with other names already in the folder are kept.

    Args:
        directory (`str` or `Path`): the results folder.
        probes (`ProbingResult` or a list): probing runs (keyed by ``meta.name``).
        ablations (`AblationCurve` or a list): ablation curves (keyed by ``name``).
        repo_id (`str`, *optional*): the Hub repo the card's loading examples name (as :func:`hf_txray.save_to_disk`'s).

    Returns:
        `Path`: `directory`.

    Example:
        ```python
        >>> hf_txray.save_to_disk("results/minilm", profiles=[profile])
        >>> save_probing("results/minilm", probes=[result], ablations=[curve])
        >>> datasets.load_dataset("results/minilm", "probe_rankings", split="train",   # a local folder: read anew
        ...                       download_mode="force_redownload", verification_mode="no_checks")  # (see save_to_disk)
        ```
    """
    probe_list, curve_list = as_list(probes, ProbingResult, "probes"), as_list(ablations, AblationCurve, "ablations")
    if not probe_list and not curve_list:
        raise ConfigurationError("Nothing to save: pass probes=[ProbingResult...] and/or ablations=[AblationCurve...].")
    return _add_probing(check_results_folder(directory), probe_list, curve_list, repo_id)


def _add_probing(directory: Path, probe_list: list, curve_list: list, repo_id: str | None) -> Path:
    """:func:`save_probing`'s writing, into a `directory` already checked (or the copy of a Hub repo that
    :func:`push_probing` staged, whose README may be the repo's own card)."""
    for items, key in ((probe_list, lambda r: r.meta.name), (curve_list, lambda c: c.name)):
        keys = [key(item) for item in items]
        if len(set(keys)) != len(keys):
            raise ConfigurationError(f"Two results share a name ({keys}); give each run a distinct name.")
    if (directory / "meta").is_dir():  # an export: its profiles' model must be the probed one
        refuse_probing_into_other_models([r.meta.model_id for r in probe_list] + [c.model_id for c in curve_list],
                                         pushed_models(directory), f"The results folder {directory}",
                                         "Save them to another folder.")
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, pa.Table] = {}
    if probe_list:
        new = pa.concat_tables([probe_table(r) for r in probe_list])
        tables[PROBE_CONFIG] = _merge(read_config(directory, PROBE_CONFIG), new, "probe")
    if curve_list:
        new = pa.concat_tables([ablation_table(c) for c in curve_list])
        tables[ABLATION_CONFIG] = _merge(read_config(directory, ABLATION_CONFIG), new, "ablation")
    for name, table in tables.items():
        write_config(table, directory / name)
    readme = directory / "README.md"
    probing_card(readme, read_config(directory, PROBE_CONFIG), read_config(directory, ABLATION_CONFIG),
                 repo_id).save(readme)
    return directory


def push_probing(repo_id: str, probes: Any = None, ablations: Any = None, *, private: bool = False,
                 token: str | None = None, commit_message: str | None = None) -> huggingface_hub.CommitInfo:
    """Add probing results and ablation curves to a Hub results repo (created when missing), in one commit.

    The repo's README and existing ``probe_rankings`` / ``ablation`` rows are fetched first, so runs of other names
    and every TX-Ray config stay as they are; only the README and the two config folders are uploaded.

    Args:
        repo_id (`str`): ``namespace/name`` of the dataset repo.
        probes (`ProbingResult` or a list), ablations (`AblationCurve` or a list): what to add.
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created repo.
        token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login.
        commit_message (`str`, *optional*): the commit's title.

    Returns:
        `huggingface_hub.CommitInfo`.

    Raises:
        ConfigurationError: bad repo id or nothing to push.
        HubError: no token, or the download/upload failed.

    Example:
        ```python
        >>> push_probing("my-user/minilm-txray", probes=[result], ablations=[curve])
        ```
    """
    check_repo_id(repo_id)
    probe_list, curve_list = as_list(probes, ProbingResult, "probes"), as_list(ablations, AblationCurve, "ablations")
    if not probe_list and not curve_list:
        raise ConfigurationError("Nothing to push: pass probes=[ProbingResult...] and/or ablations=[AblationCurve...].")
    token = resolve_token(token)
    repo_id = full_repo_id(repo_id, token)
    written = [name for name, items in ((PROBE_CONFIG, probe_list), (ABLATION_CONFIG, curve_list)) if items]
    with tempfile.TemporaryDirectory(prefix="hf_txray-probing-push-") as tmp:
        folder = Path(tmp) / "repo"

        def merge_remote(api: Any, full_id: str) -> None:  # the repo's README and rows, then ours on top
            from huggingface_hub import snapshot_download

            # meta/ only for save_probing's check of the repo's model (the upload sends README and probing configs)
            snapshot_download(full_id, repo_type="dataset", token=token, local_dir=folder,
                              allow_patterns=["README.md", "meta/*.parquet"]
                              + [f"{n}/*.parquet" for n in PROBING_CONFIGS])
            shutil.rmtree(folder / ".cache", ignore_errors=True)
            if (folder / "meta").is_dir():  # named as the repo, not as this temporary folder (save_probing's check)
                refuse_probing_into_other_models(
                    [r.meta.model_id for r in probe_list] + [c.model_id for c in curve_list], pushed_models(folder),
                    f"The Hub dataset {full_id!r}", "Push them to another repo.")
            _add_probing(folder, probe_list, curve_list, full_id)
            check_tables_load(folder, [n for n in PROBING_CONFIGS if (folder / n).is_dir()])

        folder.mkdir()
        info = upload_folder(folder, repo_id, token=token, private=private, prepare=merge_remote,
                             what_uploads="the probing results",
                             retry_hint="Nothing was lost: the results are unchanged in memory; fix the cause and push "
                                        "them again.",
                             commit_message=commit_message or f"Add probing results (hf_txray {__version__})",
                             allow_patterns=["README.md"] + [f"{n}/*" for n in written],
                             delete_patterns=[f"{n}/*" for n in written])
    logger.info("Pushed probing results to %s", shown_url(info.commit_url))
    return info


# ----- loading and viewing ------------------------------------------------------------------------------------------
class ProbingResults(NamedTuple):
    """What :func:`load_probing` returns: each config as a DataFrame, or None where the repo has none."""

    probe_rankings: pd.DataFrame | None
    ablation: pd.DataFrame | None

    @property
    def empty(self) -> bool:
        return self.probe_rankings is None and self.ablation is None


def load_probing(source: str | Path, *, revision: str | None = None, token: str | bool | None = None) -> ProbingResults:
    """Read the ``probe_rankings`` and ``ablation`` configs of a results folder or Hub dataset repo.

    A source without them gives ``ProbingResults(None, None)`` (not an error), so a viewer can call this on any
    results repo and show probing tabs only when present.

    Example:
        ```python
        >>> results = load_probing("my-user/minilm-txray")
        >>> if not results.empty:
        ...     probe_overview(results)
        ```
    """
    path = local_or_download(source, revision=revision, token=token,
                             allow_patterns=[f"{n}/*.parquet" for n in PROBING_CONFIGS])
    frames = []
    for name in PROBING_CONFIGS:
        table = read_config(path, name)
        frames.append(None if table is None else table.to_pandas())
    return ProbingResults(*frames)


def _probe_rows(results: ProbingResults, kind: str, probe: str | None) -> pd.DataFrame:
    frame = results.probe_rankings
    if frame is None:
        raise ConfigurationError("These results have no probe_rankings config.")
    rows = frame[frame["kind"] == kind]
    if probe is not None:
        if probe not in set(frame["probe"]):
            raise ConfigurationError(f"No probe named {probe!r}; probes: {sorted(set(frame['probe']))}.")
        rows = rows[rows["probe"] == probe]
    return rows


def probe_overview(results: ProbingResults) -> pd.DataFrame:
    """One row per probe: model, property, site, layers, accuracy vs majority and control, selectivity, minimal set."""
    rows = _probe_rows(results, "probe", None)
    layers = [json.loads(m)["meta"]["layers"] for m in rows["metadata"]]
    out = rows[["probe", "model_id", "property", "site", "accuracy", "majority_baseline", "control_accuracy",
                "selectivity", "num_neurons"]].rename(columns={"num_neurons": "minimal_set"}).copy()
    out.insert(4, "layers", [", ".join(map(str, v)) for v in layers])
    return out.reset_index(drop=True)


def probe_labels(results: ProbingResults, probe: str | None = None) -> pd.DataFrame:
    """Per class: ``probe``, ``label``, ``support``, ``accuracy``."""
    return _probe_rows(results, "label", probe)[["probe", "label", "support", "accuracy"]].reset_index(drop=True)


def probe_top_neurons(results: ProbingResults, probe: str | None = None, label: str | None = None,
                      layer: int | None = None, n: int = 50) -> pd.DataFrame:
    """The top `n` neurons of a probe (globally, or for one `label`), optionally of one `layer`."""
    if label is None:
        rows = _probe_rows(results, "neuron", probe)[["probe", "rank", "layer", "neuron", "score", "weight_norm",
                                                      "label", "weight"]]
        rows = rows.rename(columns={"label": "top_label", "weight": "top_weight"})
    else:
        rows = _probe_rows(results, "label_neuron", probe)
        rows = rows[rows["label"] == label][["probe", "label", "rank", "layer", "neuron", "weight"]]
    if layer is not None:  # int() read layer 1.7 (and True) as layer 1, without a word (helper 395)
        # among this probe's layers: those of every probe let a layer only another probe had through, to an empty
        # table, and their message said "has no probed neuron" without naming the probe
        which = "any probe" if probe is None else f"probe {probe!r}"
        rows = rows[rows["layer"] == resolve_layer(probed_layers(results, probe), layer, f"was not probed by {which}")]
    return rows.sort_values(["probe", "rank"]).groupby("probe").head(n).reset_index(drop=True)


def probed_layers(results: ProbingResults, probe: str | None = None) -> list[int]:
    """The layers whose neurons `probe` ranked (every probe's when None), sorted; empty without probe rankings."""
    if results.probe_rankings is None:
        return []
    return sorted({int(v) for v in _probe_rows(results, "neuron", probe)["layer"].dropna()})


def neuron_probe_rows(results: ProbingResults, layer: int, neuron: int) -> pd.DataFrame:
    """What the probes say about one neuron (for a viewer's Neuron tab): per probe its global ``rank`` and ``score``,
    its top label and weight, and the classes whose top neurons include it (``label_ranks``, e.g. ``"NOUN#3"``)."""
    if results.probe_rankings is None:
        return pd.DataFrame(columns=list(NEURON_PROBE_COLUMNS))
    frame = results.probe_rankings
    # int() read layer 1.7, neuron 3.9 as layer 1, neuron 3 (and True as 1), without a word (helper 395)
    if as_int(layer) is None or as_int(neuron) is None:
        raise ConfigurationError(f"A neuron is named by its layer and index, two ints; got layer {layer!r}, neuron "
                                 f"{neuron!r}.")
    mine = frame[(frame["layer"] == as_int(layer)) & (frame["neuron"] == as_int(neuron))]
    out = []
    for probe, rows in mine.groupby("probe", sort=True):
        ranked = rows[rows["kind"] == "neuron"]
        if ranked.empty:
            continue
        r = ranked.iloc[0]
        labels = rows[rows["kind"] == "label_neuron"].sort_values("rank")
        out.append({"probe": probe, "property": r["property"], "rank": int(r["rank"]),
                    "of": int(((frame["probe"] == probe) & (frame["kind"] == "neuron")).sum()), "score": r["score"],
                    "top_label": r["label"], "top_weight": r["weight"],
                    "label_ranks": ", ".join(f"{a}#{int(b)}" for a, b in zip(labels["label"], labels["rank"]))})
    return pd.DataFrame(out, columns=list(NEURON_PROBE_COLUMNS))


def ablation_curves(results: ProbingResults) -> list[AblationCurve]:
    """The ablation curves of the results, as :class:`AblationCurve` objects (``.summary()``, ``.plot()``)."""
    frame = results.ablation
    if frame is None:
        return []
    return [AblationCurve(**curve_parts(rows)) for _, rows in frame.groupby("ablation", sort=True)]


def ablation_figure(results: ProbingResults, name: str | None = None):
    """A matplotlib figure of one ablation curve (the first, or `name`)."""
    curves = ablation_curves(results)
    if not curves:
        raise ConfigurationError("These results have no ablation config.")
    chosen = next((c for c in curves if c.name == name), None) if name else curves[0]
    if chosen is None:
        raise ConfigurationError(f"No ablation named {name!r}; curves: {[c.name for c in curves]}.")
    return chosen.plot()
