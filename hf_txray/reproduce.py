"""`reproduce()`: recompute the profiles of a results repo or folder from their pinned sources, and compare.

Each profile's ``meta.provenance`` (see :mod:`hf_txray.provenance`) says which model commit (or content hash) and
which dataset commit, config, split and files (or content hash) it was computed from, with every option. Reproducing
a stage means: check that what it names is still there and unchanged (before any weight is downloaded), rerun
:func:`hf_txray.analyze` with the recorded options on the recorded device and dtype, and compare: counts exactly,
masses to 1e-6 of their size (of 1 for masses below 1: ``|new - stored| <= 1e-6 * max(1, |stored|)``).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from .artifact import check_save_target
from .errors import ConfigurationError, DatasetError, ModelError, ProfileFormatError, ReproducibilityError, TXRayError
from .profile import BATCH_LIMITS, Profile
from .provenance import (is_embedded, missing_provenance,  # noqa: F401  (hf_txray.reproduce.missing_provenance)
                         needs_texts_again)
from .redaction import holds_masked
from .version import __version__

MASS_TOLERANCE = 1e-6  # relative: |a - b| <= 1e-6 * max(1, |stored|)
COUNT_FIELDS = ("num_examples", "num_positions", "num_uncredited", "num_truncated", "num_empty")
# analyze() keywords that reproduce() sets itself from the record (everything else recorded goes through as is).
_SET_HERE = ("model", "dataset", "revision", "dataset_revision", "dataset_config", "split", "text_column",
             "num_samples", "device", "dtype", "trust_remote_code", "model_kwargs", "stage", "model_id", "token",
             "show_progress", "streaming")


@dataclass
class StageVerdict:
    """The outcome of reproducing one stage.

    Args:
        stage (`str`): the stage name.
        identical (`bool`): counts equal and every mass within :data:`MASS_TOLERANCE`.
        max_mass_difference (`float`): the largest mass difference seen, relative to the stored mass (to 1 for a
            mass below 1), as :data:`MASS_TOLERANCE` bounds it.
        differences (`list[str]`): what differs, first ones only.
        sources (`str`): the pinned model and dataset that were used, in words.
        notes (`list[str]`): e.g. a ref that moved without changing the files.
        profile (`Profile`): the recomputed profile.
    """

    stage: str
    identical: bool
    max_mass_difference: float
    differences: list[str]
    sources: str
    notes: list[str] = field(default_factory=list)
    profile: Profile | None = None

    def __str__(self) -> str:
        if self.identical:
            head = (f"stage {self.stage!r}: identical (counts exact, largest mass difference "
                    f"{self.max_mass_difference:.1e}, tolerance {MASS_TOLERANCE:.0e})")
        else:
            head = f"stage {self.stage!r}: DIFFERENT: " + "; ".join(self.differences[:5])
        return "\n".join([head, f"  from {self.sources}", *[f"  note: {n}" for n in self.notes]])


@dataclass
class ReproduceResult:
    """What :func:`reproduce` returns: one :class:`StageVerdict` per stage."""

    stages: list[StageVerdict]

    @property
    def identical(self) -> bool:
        return bool(self.stages) and all(s.identical for s in self.stages)

    @property
    def verdict(self) -> str:
        """``"identical"`` when every stage is, else ``"different"``."""
        return "identical" if self.identical else "different"

    def __str__(self) -> str:
        return "\n".join([*map(str, self.stages), f"verdict: {self.verdict}"])


# ----- reading what to reproduce -----------------------------------------------------------------------------------
def stored_profiles(results: str | Path, *, revision: str | None = None,
                    token: str | bool | None = None) -> dict[str, Profile]:
    """The profiles of a results repo id, an export folder, a saved profile, or a folder of saved profiles.

    Raises:
        ProfileFormatError: nothing there is hf_txray output.
        ConfigurationError: `revision` with a local folder, or output that holds no profile (a saved transfer
            report: `reproduce` found no stage there and said "verdict: different", exit status 1).
        HubError: a Hub repo that cannot be downloaded.
    """
    profiles = _stored_profiles(results, revision, token)
    if not profiles:
        raise ConfigurationError(f"{str(results)!r} holds no profile: give a saved profile, or a results folder or "
                                 "repo holding one (a transfer report holds none: give the profiles it was made "
                                 "from).")
    return profiles


def _stored_profiles(results: str | Path, revision: str | None, token: str | bool | None) -> dict[str, Profile]:
    """:func:`stored_profiles`, none found included."""
    from .hub import load, saved_results
    from .hub_io import refuse_revision_of_folder
    from .layout import is_export_folder

    path = Path(results)
    if path.is_dir():
        refuse_revision_of_folder(results, revision)  # as typed: a repo id hidden by a folder is said so
        if is_export_folder(path):  # a saved profile, or a results folder
            return load(path).profiles
        profiles = saved_results(path)[0]
        if not profiles:
            raise ProfileFormatError(f"{path} is not hf_txray output: no export (README.md + meta/*.parquet) and no "
                                     "saved profile (Profile.save_pretrained) under it.")
        names = [p.stage for p in profiles]
        shared = sorted({name for name in names if names.count(name) > 1})
        if shared:  # keyed by stage, all but one of them would go unchecked
            raise ConfigurationError(
                f"Several saved profiles under {path} share the stage name {shared[0]!r}: pass one profile's own "
                "folder, or give the stages distinct names (stage=..., --stage).")
        return {p.stage: p for p in profiles}
    try:
        return load(str(results), revision=revision, token=token).profiles
    except ProfileFormatError as err:
        raise ProfileFormatError(f"{results!r} is not an hf_txray results repo: {err}") from None


# ----- what a stage lacks ------------------------------------------------------------------------------------------
def _major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


def _check_process_count(profile: Profile) -> None:
    """Refuse to rerun a ``max_positions`` profile under another process count than made it: each process credits
    its share of the quota from the start of its own shard, so the positions credited differ (the counts would
    differ for that reason alone, and the verdict would say DIFFERENT)."""
    from .distributed import process_info

    made_by = (profile.meta.provenance or {}).get("runtime", {}).get("num_processes")
    if not profile.meta.config.get("max_positions") or made_by is None:
        return
    world = process_info()[1]
    if made_by != world:
        raise ReproducibilityError(
            f"Stage {profile.stage!r} was profiled with max_positions={profile.meta.config['max_positions']} by "
            f"{made_by} process(es), and this is {world}: each process credits its share of the quota from the start "
            f"of its own shard, so another process count credits other positions. Rerun reproduce under "
            f"`torchrun --nproc_per_node {made_by}` (also on a CPU-only machine; on GPUs `accelerate launch "
            f"--num_processes {made_by}` too, which on a CPU-only machine runs one process).")


def _check_stage(profile: Profile, dataset_override: Any, device: Any) -> None:
    record = profile.meta.provenance or {}
    if record.get("merged_parts", 1) > 1:
        raise ReproducibilityError(
            f"Stage {profile.stage!r} was merged from {record['merged_parts']} separately profiled parts "
            f"(Profile.merge): its record describes the first part only. Reproduce each part's saved profile, then "
            "merge them again.")
    lacks = missing_provenance(profile)
    if lacks:
        raise ReproducibilityError(f"Stage {profile.stage!r} cannot be reproduced: it lacks " + "; ".join(lacks) + ".")
    _check_process_count(profile)
    made_with = record.get("versions", {}).get("hf_txray") or profile.meta.hf_txray_version
    if _major(made_with) != _major(__version__):
        raise ReproducibilityError(f"Stage {profile.stage!r} was made with hf_txray {made_with}, this is "
                                   f"{__version__}: another major version computes differently. Install hf_txray "
                                   f"=={made_with} to reproduce it.")
    if needs_texts_again(record) and dataset_override is None:
        raise ReproducibilityError(
            f"Stage {profile.stage!r} was profiled on texts passed in memory ({record['dataset']['num_texts']} texts, "
            f"{record['dataset']['texts_hash']}): they are nowhere to download. Pass them again with dataset=... "
            "(CLI: --dataset PATH); they are checked against that hash.")
    recorded = record.get("runtime", {}).get("device") or "cpu"
    if device is None and recorded.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ReproducibilityError(f"Stage {profile.stage!r} was computed on {recorded}, and there is no CUDA "
                                       "device here. Pass device='cpu' (CLI: --device cpu) to compare anyway; "
                                       "masses may then differ beyond the tolerance.")


# ----- checking the sources before any weight is downloaded ----------------------------------------------------
def _differing(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    changed = [f"{p} (changed)" for p in sorted(set(recorded) & set(current)) if recorded[p] != current[p]]
    return (changed + [f"{p} (removed)" for p in sorted(set(recorded) - set(current))]
            + [f"{p} (added)" for p in sorted(set(current) - set(recorded))])


def _check_local(kind: str, recorded: dict[str, Any], path: str, error) -> None:
    from .provenance import data_path_files, files_hash, model_folder_files

    if not Path(path).exists():
        where = (f"The {kind} was read from local files that the record names only as {path!r} (a pushed record keeps "
                 "no local path whole: its last component, or its path below the folder it was pushed from), and no "
                 f"{path!r} is here, below the current directory" if _recorded_as_name(path) else
                 f"The {kind} {path!r} was read from local files, and they are not here")
        raise error(f"{where}. Pass the folder or file with {kind}=... (CLI: --{kind} PATH); it is checked against "
                    f"{recorded['content_hash']}.")
    files = model_folder_files(path) if kind == "model" else data_path_files(path)
    if files_hash(files) != recorded["content_hash"]:
        raise error(f"The {kind} files at {path} differ from the ones profiled: "
                    + ", ".join(_differing(recorded.get("files") or recorded.get("data_files") or {}, files)) + ".")


def _recorded_as_name(path: str) -> bool:
    """Whether a local source's recorded `path` is a name rather than the path it was read from: analyze records
    local folders and files by their absolute path, and a pushed record (:func:`hf_txray.provenance.public_record`)
    keeps only their last component, or their path relative to the folder they were pushed from."""
    return not (Path(path).expanduser().is_absolute() or PureWindowsPath(path).is_absolute())


def _check_moved_stream(recorded: dict[str, Any], path: str | Path) -> None:
    """A streamed local file passed again from elsewhere (moved, copied, renamed) must have the recorded content when
    the stream has no texts hash (stopped early or resumed): the content hash is all that pins it. A single file is
    compared by content alone, whatever its name now; a folder as :func:`_check_local` does. With a texts hash, the
    texts streamed again are checked instead (:func:`_check_texts`), so a copy with other bytes but the same texts
    (an extra column, other line endings) is accepted."""
    from .loading import data_file_extension
    from .provenance import data_path_files

    path = Path(path).expanduser()
    if not path.exists():
        return  # loading names the missing path
    files = recorded.get("data_files") or recorded.get("files") or {}
    hashed = recorded.get("texts_hash") is not None
    if len(files) != 1:
        return None if hashed else _check_local("dataset", recorded, str(path), DatasetError)
    (profiled, digest), = files.items()
    if path.is_dir():
        raise DatasetError(f"The stage streamed the single file {profiled}, and {path} is a folder (read "
                           f"as a dataset of its own): pass the file itself.")
    suffix, given = data_file_extension(profiled), data_file_extension(path)
    if suffix != given:
        raise DatasetError(f"The dataset file {path} has another extension ({given or 'none'}) than the one "
                           f"profiled ({suffix or 'none'}), and datasets reads a file by its extension. Pass a copy "
                           f"named *{suffix}.")
    if hashed:
        return None
    if next(iter(data_path_files(path).values())) != digest:  # its name may differ: the content may not
        raise DatasetError(f"The dataset file {path} differs in content from the file profiled ({profiled}, "
                           f"streamed from {recorded['id']}), and the stream has no texts hash to check instead "
                           "(stopped early or resumed): pass an unchanged copy.")


def _resolve_pinned(kind: str, recorded: dict[str, Any], token: Any, notes: list[str]) -> str:
    """The commit to load a Hub source at: the recorded one, or (if it is gone) the recorded ref when its files
    are unchanged. Raises when they changed, naming the files."""
    from .loading import resolve_dataset_source, resolve_model_source

    error = ModelError if kind == "model" else DatasetError
    resolve = ((lambda rev: resolve_model_source(recorded["id"], rev, token)) if kind == "model" else
               (lambda rev: resolve_dataset_source(recorded["id"], revision=rev, config=recorded.get("config"),
                                                   split=recorded.get("split"), token=token)))
    files_key = "files" if kind == "model" else "data_files"
    try:
        current = resolve(recorded["commit"])
    except error as err:
        if "does not exist" not in str(err):
            raise
        ref = recorded.get("requested_revision") or "main"
        current = resolve(ref)
        differ = _differing(recorded.get(files_key) or {}, getattr(current, files_key) or {})
        if differ or not recorded.get(files_key):
            raise error(f"The {kind} {recorded['id']!r} no longer has commit {recorded['commit']}, and its ref "
                        f"{ref!r} (now {current.commit}) has different files: "
                        + (", ".join(differ) if differ else "nothing recorded to compare") + ".") from None
        notes.append(f"{kind} commit {recorded['commit'][:12]} is gone; {ref!r} now points to "
                     f"{current.commit[:12]} with the same files")
        return current.commit
    differ = _differing(recorded.get(files_key) or {}, getattr(current, files_key) or {})
    if differ and recorded.get(files_key):
        raise error(f"The {kind} {recorded['id']!r} at commit {recorded['commit']} has different files than recorded: "
                    + ", ".join(differ) + ".")
    return current.commit


def _model_argument(record: dict[str, Any], override: Any, token: Any, notes: list[str]) -> tuple[Any, str | None]:
    model = record["model"]
    if override is None:
        _check_adapter_base(model, token)
    if override is not None:
        if isinstance(override, (str, Path)) and Path(override).exists() and model.get("content_hash"):
            _check_local("model", model, str(override), ModelError)
        return override, None
    if model.get("content_hash"):  # a local folder (or an object loaded from one)
        moved = _embedded_model_moved(model, notes)
        if moved is not None:
            return moved, None
        _check_local("model", model, model["id"], ModelError)
        return model["id"], None
    return model["id"], _resolve_pinned("model", model, token, notes)


def _check_adapter_base(model: dict[str, Any], token: Any) -> None:
    """A PEFT adapter's base model as recorded: analyze reads the base at what it resolves to now (its main commit,
    or its folder's files), so a base that moved would give another model under the same adapter.

    Raises:
        ModelError: the base now resolves to another commit or other files, or cannot be read here."""
    base = model.get("base_model")
    if not base:
        return
    from .loading import resolve_model_source

    key = "commit" if base.get("kind") == "hub" else "content_hash"
    try:
        now = getattr(resolve_model_source(base["id"], None, token), key)
    except TXRayError as err:  # a local base folder gone (or another machine's): say which model, and the way out
        raise ModelError(f"The PEFT adapter {model['id']!r} was profiled on its base model {base['id']!r}, which "
                         f"cannot be read here ({err}). Restore the base model where the adapter's "
                         "adapter_config.json names it (base_model_name_or_path), or pass model=... with the adapted "
                         "model loaded yourself.") from err
    if now != base.get(key):
        raise ModelError(f"The PEFT adapter {model['id']!r} was profiled on its base model {base['id']!r} at "
                         f"{key} {base.get(key)}, which now resolves to {now}: the adapted model would not be the "
                         "one profiled. Restore the base model (or point adapter_config.json's base_model_name_or_path "
                         "at a copy of it), or pass model=... with the adapted model loaded yourself.")


def _embedded_model_moved(model: dict[str, Any], notes: list[str]) -> str | None:
    """The embedded default model's folder in this environment, when the recorded folder is gone and this one holds
    the same files (the CLI's default, profiled in another venv); None otherwise (the usual check then speaks)."""
    from .corpora import default_model_path
    from .provenance import files_hash, model_folder_files

    if Path(model["id"]).exists():
        return None
    try:
        here = default_model_path()
    except ModelError:  # the embedded model's package is not installed: the recorded folder's error says what to do
        return None
    if files_hash(model_folder_files(here)) != model["content_hash"]:
        return None
    recorded = (f"the record names its folder only as {model['id']!r} (a pushed record keeps no local path whole)"
                if _recorded_as_name(model["id"]) else "the recorded folder is gone")
    notes.append(f"model read from the embedded default's folder here ({here}): {recorded}, and this one holds the "
                 "same files")
    return here


def _dataset_argument(record: dict[str, Any], override: Any, token: Any, notes: list[str]) -> tuple[Any, str | None]:
    dataset = record["dataset"]
    if dataset["kind"] == "hub" and override is not None and str(override) == dataset["id"]:
        override = None  # the recorded Hub dataset: read at its pinned commit
    if override is not None:
        if dataset["kind"] == "local" and dataset.get("streaming") and isinstance(override, (str, Path)):
            _check_moved_stream(dataset, override)
        _refuse_unsplit(dataset, override)
        return override, None
    if is_embedded(record):
        from .corpora import embedded_corpus

        notes.append(f"texts reloaded from the embedded corpus {dataset['id']!r}")
        corpus = embedded_corpus(dataset["id"])
        # corpora.penn_treebank(num_samples=n) and bbc_news(num_samples=n) are prefixes of the whole corpus; the
        # texts hash checks that this one is
        count = dataset.get("num_texts")
        return (corpus.select(range(count)) if isinstance(count, int) and 0 < count < len(corpus) else corpus), None
    if dataset["kind"] == "local":
        _check_local("dataset", dataset, dataset["id"], DatasetError)
        return dataset["id"], None
    return dataset["id"], _resolve_pinned("dataset", dataset, token, notes)


def _streams_again(dataset: dict[str, Any], dataset_arg: Any) -> bool:
    """Whether the rerun streams `dataset_arg`: a local data file or folder that was streamed, as it was, or a
    stream object (``datasets.IterableDataset``) passed as ``dataset=``."""
    import datasets

    if isinstance(dataset_arg, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        return True
    return bool(dataset.get("streaming")) and isinstance(dataset_arg, (str, Path))


def _refuse_unsplit(recorded: dict[str, Any], override: Any) -> None:
    """A DatasetDict passed for a stage that recorded no split: reproduce cannot tell which split was profiled."""
    import datasets

    if recorded.get("split") is None and isinstance(override, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise DatasetError(f"dataset= holds the splits {list(override)} and the stage recorded none: choose the "
                           "split that was profiled with split=... (CLI: --split).")


def _split_for(recorded: dict[str, Any], dataset_arg: Any) -> str | None:
    """The recorded split, to choose from a source that has splits (an id, a path, a DatasetDict); None for a single
    dataset passed again as an object (it is that split already, and analyze refuses a split of one)."""
    import datasets

    if isinstance(dataset_arg, (str, Path, datasets.DatasetDict, datasets.IterableDatasetDict)):
        return recorded.get("split")
    return None


def _refuse_split_alone(dataset: Any, split: str | None) -> None:
    if split is not None and dataset is None:
        raise ConfigurationError("split= chooses the split of dataset= (CLI: --split with --dataset): pass "
                                 "dataset= too.")


def _choose_split(profile: Profile, dataset: Any, split: str | None) -> Any:
    """`dataset` narrowed to `split`, the split of the texts for a stage that recorded none (in-memory texts kept
    in a ``DatasetDict`` or a folder of several splits); `dataset` itself without `split`."""
    if split is None:
        return dataset
    recorded = profile.meta.provenance.get("dataset", {}).get("split")
    if recorded is not None:
        if split != recorded:
            raise ConfigurationError(f"Stage {profile.stage!r} was profiled on the split {recorded!r}, not "
                                     f"{split!r}: reproduce reads that split of dataset= by itself; leave split= out.")
        return dataset
    import datasets

    from .loading import load_named_dataset, pick_split

    if isinstance(dataset, (str, Path)):  # a data file or folder (of several splits), or a saved DatasetDict
        dataset = load_named_dataset(str(dataset), split)
        return pick_split(dataset, split) if isinstance(dataset, datasets.DatasetDict) else dataset
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return pick_split(dataset, split)
    raise ConfigurationError(f"split= chooses a split of a DatasetDict or of a data folder, not of a "
                             f"{type(dataset).__name__}: leave split= out.")


def _refuse_unhashed_stream(profile: Profile, dataset_arg: Any) -> None:
    """A stream not read to its end in one run has no texts hash: only its files (content hash) or its Hub commit
    pin it, so texts passed any other way cannot be checked."""
    dataset = profile.meta.provenance["dataset"]
    if not dataset.get("streaming") or dataset.get("texts_hash") is not None:
        return
    if isinstance(dataset_arg, (str, Path)):
        if str(dataset_arg) == dataset["id"]:
            return  # the recorded source: its content hash or its Hub commit was checked
        if dataset["kind"] == "local" and Path(dataset_arg).expanduser().exists():
            return  # a moved copy, checked by its content (_check_moved_stream)
    source = f"the files at {dataset['id']}" if dataset["kind"] == "local" else f"{dataset['id']!r}"
    given = repr(str(dataset_arg)) if isinstance(dataset_arg, (str, Path)) else f"a {type(dataset_arg).__name__}"
    raise DatasetError(
        f"Stage {profile.stage!r} streamed {source} and did not read it to its end in one run (max_positions or a "
        f"resume), so no hash of its texts was recorded, and {given} passed as dataset= cannot be checked. "
        + ("Pass the data file or folder as a path (dataset='...', checked by its content hash), or leave dataset= "
           "out to read the recorded source again." if dataset["kind"] == "local" else
           "Leave dataset= out: the recorded Hub dataset is streamed again at its pinned commit."))


def _hub_config(recorded: dict[str, Any], dataset_arg: Any) -> str | None:
    """The recorded config, for the Hub dataset it belongs to: a local copy passed as dataset= is read without one."""
    named = isinstance(dataset_arg, (str, Path)) and not Path(dataset_arg).expanduser().exists()
    return recorded.get("config") if named else None


def _refuse_one_shot(profile: Profile, dataset_arg: Any) -> None:
    """A generator or iterator is read once, and reproduce reads the texts twice: to check them, then to profile."""
    if hasattr(dataset_arg, "__next__") and not hasattr(dataset_arg, "__len__"):
        raise DatasetError(
            f"reproduce reads the texts of stage {profile.stage!r} twice (to check them against the recorded hash, "
            f"then to profile them), and a {type(dataset_arg).__name__} can be read only once. Pass something it "
            "can read again: a datasets.IterableDataset (e.g. IterableDataset.from_generator(fn)), a Dataset or a "
            "list of texts.")


def _check_texts(profile: Profile, dataset_arg: Any, commit: str | None, token: Any) -> None:
    """Load the corpus (cheap, cached for the run that follows; a streamed file is read once more as a stream) and
    check the hash of the texts profiled. A stream that was not read to its end has no texts hash: its file's
    content hash, checked already, pins it."""
    from .loading import load_corpus, load_pinned_corpus, load_pinned_stream
    from .streaming import stream_texts_hash

    dataset = profile.meta.provenance["dataset"]
    _refuse_unhashed_stream(profile, dataset_arg)
    _refuse_one_shot(profile, dataset_arg)
    if _streams_again(dataset, dataset_arg):
        if dataset.get("texts_hash") is None:
            return
        options = dict(text_column=dataset.get("text_column"), split=_split_for(dataset, dataset_arg),
                       num_samples=dataset.get("num_samples"))
        if isinstance(dataset_arg, (str, Path)):  # a file, folder or Hub id: streamed as pinned (the commit)
            config = _hub_config(dataset, dataset_arg)
            corpus, column = load_pinned_stream(dataset_arg, revision=commit, config=config, token=token,
                                                **options)[:2]
        else:
            corpus, column, _ = load_corpus(dataset_arg, allow_streams=True, **options)
        count, digest = stream_texts_hash(corpus, column)
        if digest != dataset["texts_hash"]:
            raise DatasetError(f"The texts of stage {profile.stage!r} differ from the ones profiled ({count} texts "
                               f"streamed now, {dataset['num_texts']} then; hash {digest} vs {dataset['texts_hash']}).")
        return
    corpus, _, _, source = load_pinned_corpus(
        dataset_arg, text_column=dataset.get("text_column"), split=_split_for(dataset, dataset_arg),
        num_samples=dataset.get("num_samples"), revision=commit, config=_hub_config(dataset, dataset_arg),
        token=token)
    if source.texts_hash != dataset["texts_hash"]:
        raise DatasetError(f"The texts of stage {profile.stage!r} differ from the ones profiled ({len(corpus)} texts "
                           f"now, {dataset['num_texts']} then; hash {source.texts_hash} vs {dataset['texts_hash']}).")


# ----- comparing ---------------------------------------------------------------------------------------------------
def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """The largest ``|a - b| / max(1, |b|)`` of two arrays of one shape (`b` the stored values): infinite where they
    differ and either is NaN or infinite, which no tolerance covers (a NaN's difference is NaN, and ``max(0.0, nan)``
    read it as 0)."""
    if a.size == 0:
        return 0.0
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf and nan: replaced below
        gap = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    gap[a == b] = 0.0  # equal infinities too
    gap[(a != b) & ~(np.isfinite(a) & np.isfinite(b))] = np.inf  # a NaN is never equal, not even to a NaN
    return float(np.max(gap))


def compare_numbers(stored: Profile, new: Profile) -> tuple[bool, float, list[str]]:
    """``(identical, largest relative mass difference, differences)``: counts exact, masses to 1e-6; stored output
    effects token for token, their logits to 1e-6; top examples (their activations to 1e-6), activation histograms and
    per-position mass (to 1e-6) likewise: a neuron's page shows them all."""
    diffs: list[str] = []
    worst = 0.0
    for name in COUNT_FIELDS:
        if getattr(stored.meta, name) != getattr(new.meta, name):
            diffs.append(f"{name} {getattr(new.meta, name)} vs {getattr(stored.meta, name)} stored")
    for ft, count in stored.meta.num_feature_texts.items():  # none in profiles saved before they were recorded
        if new.meta.num_feature_texts.get(ft) != count:
            diffs.append(f"texts carrying {ft} {new.meta.num_feature_texts.get(ft)} vs {count} stored")
    if stored.neuron_count.shape != new.neuron_count.shape:
        return False, float("inf"), diffs + [f"shape {new.neuron_count.shape} vs {stored.neuron_count.shape} stored"]
    changed = np.argwhere(stored.neuron_count != new.neuron_count)
    if len(changed):
        diffs.append(f"credit counts of {len(changed)} neurons (first: layer position {changed[0][0]}, neuron "
                     f"{changed[0][1]})")
    worst = max(worst, _relative(new.neuron_mass, stored.neuron_mass))
    odd_a, odd_b = getattr(stored, "neuron_count_odd", None), getattr(new, "neuron_count_odd", None)
    halves = (stored.meta.split_halves, new.meta.split_halves)
    alike = halves[0] == halves[1]
    if not alike:  # a profile saved before the halves were drawn from texts: its split-half sums cannot match
        diffs.append(f"split halves drawn by {halves[1]} vs by {halves[0]} stored (saved by an older hf_txray): the "
                     "split-half sums (noise floors, the per-neuron test) cannot be compared, every other number is; profile "
                     "again with this version to compare them too")
    if alike and odd_a is not None and odd_b is not None and not np.array_equal(odd_a, odd_b):
        diffs.append("split-half (odd) credit counts differ")
    extra = [ft for ft in new.feature_types if ft not in stored.tables]
    if extra:  # a table the stored profile lacks (its record names more features than it holds) is a difference too
        diffs.append(f"feature type{'s' * (len(extra) > 1)} {', '.join(extra)} recomputed but not stored")
    for ft in stored.feature_types:
        if ft not in new.tables:
            diffs.append(f"feature type {ft} missing")
            continue
        frame = _table_frame(stored, ft).merge(_table_frame(new, ft), on=["row", "feature"], how="outer",
                                               suffixes=("_a", "_b"), indicator=True)
        unmatched = int((frame["_merge"] != "both").sum())
        if unmatched:
            diffs.append(f"{unmatched} (neuron, {ft}) entries present on one side only")
        both = frame[frame["_merge"] == "both"]
        if not np.array_equal(both["count_a"].to_numpy(), both["count_b"].to_numpy()):
            diffs.append(f"{ft} counts differ")
        worst = max(worst, _relative(both["mass_b"].to_numpy(), both["mass_a"].to_numpy()))
        if "count_odd_a" in both and "count_odd_b" in both:  # the noise statistics, when both profiles have them
            if alike and not np.array_equal(both["count_odd_a"].to_numpy(), both["count_odd_b"].to_numpy()):
                diffs.append(f"{ft} split-half counts differ")
            for name in ("mass_odd", "mass_sq")[0 if alike else 1:]:
                worst = max(worst, _relative(both[f"{name}_b"].to_numpy(), both[f"{name}_a"].to_numpy()))
        if _corpus_counts(stored, ft) != _corpus_counts(new, ft):
            diffs.append(f"{ft} corpus frequencies differ")
    diffs += _output_effects_differences(stored.output_effects, new.output_effects)
    example_diffs, example_worst = _example_differences(stored.examples, new.examples)
    diffs += example_diffs + _card_statistics_differences(stored, new)
    worst = max(worst, example_worst)
    if stored.position_mass is not None and new.position_mass is not None:
        a, b = stored.position_mass.entries(), new.position_mass.entries()
        if any(not np.array_equal(a[n], b[n]) for n in ("row", "position", "count")):
            diffs.append("per-position credit counts differ")
        else:
            worst = max(worst, _relative(b["mass"], a["mass"]))
    if worst > MASS_TOLERANCE:
        diffs.append(f"masses differ by up to {worst:.2e} (relative), above {MASS_TOLERANCE:.0e}")
    return not diffs, worst, diffs


def _why_different(stored: Profile, new: Profile, given: str | None = None) -> list[str]:
    """Why a rerun differs, when the runtime records say: the weights or the tokenizer loaded now are not the ones
    profiled (a model object changed after it was loaded from its recorded folder or Hub id, or a tokenizer passed
    to analyze that is not the model's own), the rerun's settings are not the stored profile's
    (:func:`_other_settings`), or the package versions are not the recorded ones (:func:`_other_versions`). Said only
    beside differing numbers: a sample hash can differ on the same computation (weights offloaded to the ``meta``
    device are hashed by shape alone), and another version may compute the same numbers."""
    old, now = ((p.meta.provenance or {}).get("runtime", {}) for p in (stored, new))
    source = given or f"the model loaded from {(stored.meta.provenance or {}).get('model', {}).get('id')!r}"
    reasons = []
    if old.get("weights_sample_hash") and now.get("weights_sample_hash") \
            and old["weights_sample_hash"] != now["weights_sample_hash"]:
        reasons.append(f"{source} holds other weights than the model profiled (weights sample hash "
                       f"{now['weights_sample_hash'][14:26]} vs {old['weights_sample_hash'][14:26]} recorded)"
                       + ("" if given else ": the model profiled was not this one (a model object changed in "
                          "memory after it was loaded, which analyze records by the folder or Hub id it came from, or "
                          "a folder or repo given to pin_model that does not hold the weights profiled)"))
    for key, what in (("tokenizer_vocab_hash", "vocabulary"), ("tokenizer_hash", "normalizer, pre-tokenizer or "
                                                                                  "post-processor")):
        if old.get(key) and now.get(key) and old[key] != now[key]:
            reasons.append(f"the tokenizer of {source} differs from the one profiled (its {what}): it was passed "
                           "to analyze(tokenizer=...) and is not the model's own, which reproduce loads")
            break
    return reasons + _other_settings(stored, new) + _other_versions(stored, new)


# ProfileMeta fields that hold the settings a run used (beside meta.config, the values it resolved)
_RUN_SETTINGS = ("site", "layers", "feature_types", "top_k", "max_examples_per_neuron")


def _run_settings(profile: Profile) -> dict[str, Any]:
    return {**{name: getattr(profile.meta, name) for name in _RUN_SETTINGS}, **profile.meta.config}


def _other_settings(stored: Profile, new: Profile) -> list[str]:
    """The settings the rerun ran with that differ from the stored profile's (both as resolved: ``max_length``,
    ``stride``, ``skip_first_positions``...): the record's options were edited, or this hf_txray resolves a default
    otherwise. Settings a profile saved by an older hf_txray lacks are not compared."""
    a, b = _run_settings(stored), _run_settings(new)
    changed = [key for key in a if key in b and a[key] != b[key]]
    if not changed:
        return []
    return ["the rerun ran with other settings than the stored profile: "
            + ", ".join(f"{key}={b[key]!r} (stored: {a[key]!r})" for key in changed)
            + " (the recorded options were edited, or this hf_txray resolves them otherwise)"]


def _other_versions(stored: Profile, new: Profile) -> list[str]:
    """The package versions (:func:`hf_txray.provenance.versions`: transformers, torch, the spaCy model...) that
    differ between the record and the rerun: another version may compute or tag otherwise."""
    old, now = ((p.meta.provenance or {}).get("versions") or {} for p in (stored, new))
    changed = [key for key in old if key in now and old[key] is not None and old[key] != now[key]]
    if not changed:
        return []
    return ["other package versions than recorded: " + ", ".join(f"{key} {now[key]} here, {old[key]} recorded"
                                                                 for key in changed)]


def _other_rows(what: str, stored: pd.DataFrame, new: pd.DataFrame, keys: list[str]) -> str:
    """Why two tables could not be aligned on `keys`: other row counts, or as many rows under other keys (a table
    whose neurons or layers were renamed)."""
    if len(new) != len(stored):
        return f"{what} have other rows ({len(new)} vs {len(stored)} stored)"
    return f"{what} hold the same number of rows ({len(stored)}) under other ({', '.join(keys)}) keys"


def _aligned(stored: pd.DataFrame, new: pd.DataFrame, keys: list[str]
             ) -> tuple[pd.DataFrame, pd.DataFrame] | tuple[None, None]:
    """Both tables sorted by `keys`, row for row; ``(None, None)`` when they do not hold the same key rows."""
    a, b = (frame.sort_values(keys, kind="stable").reset_index(drop=True) for frame in (stored, new))
    return (a, b) if len(a) == len(b) and a[keys].equals(b[keys]) else (None, None)


def _output_effects_differences(stored: pd.DataFrame | None, new: pd.DataFrame | None) -> list[str]:
    """What differs between two output-effects tables: the same (layer, neuron, direction, rank) rows, token ids
    and strings exact, logits to :data:`MASS_TOLERANCE` (relative, absolute below 1). They come from the LM head and
    the down projections, which the credited numbers never see: a changed head alone changes nothing else."""
    if stored is None:
        return []
    if new is None:
        return ["output effects stored but not recomputed"]
    a, b = _aligned(stored, new, ["layer", "neuron", "direction", "rank"])
    if a is None:
        return [_other_rows("output effects", stored, new, ["layer", "neuron", "direction", "rank"])]
    diffs = []
    ids = a["token_id"].to_numpy() != b["token_id"].to_numpy()
    if ids.any():
        first = a[ids].iloc[0]
        diffs.append(f"output effects: {int(ids.sum())} token ids differ (first: layer {first['layer']}, neuron "
                     f"{first['neuron']}, {first['direction']} rank {first['rank']})")
    elif not a["token"].astype(str).equals(b["token"].astype(str)):
        diffs.append("output effects: token strings differ (another tokenizer)")
    logits = _relative(b["logit"].to_numpy(dtype=np.float64), a["logit"].to_numpy(dtype=np.float64))
    if logits > MASS_TOLERANCE:
        diffs.append(f"output-effect logits differ by up to {logits:.2e} (relative), above {MASS_TOLERANCE:.0e}")
    return diffs


def _example_differences(stored: pd.DataFrame, new: pd.DataFrame) -> tuple[list[str], float]:
    """What differs between two top-example tables (the activations a neuron page lists): the same examples per
    (layer, neuron, rank), ids, positions and tokens exact (a token's trailing combining marks aside:
    :func:`_compared`); and the largest relative activation difference."""
    if stored.empty:  # none kept (max_examples_per_neuron=0, or a profile built without them): nothing to check
        return [], 0.0
    exact = [c for c in ("example_id", "token_index", "token") if c in stored and c in new]
    a, b = _aligned(stored, new, ["layer", "neuron", "rank"])
    if a is None:
        return [_other_rows("top examples", stored, new, ["layer", "neuron", "rank"])], 0.0
    same = [c for c in exact if not _compared(a, c).equals(_compared(b, c))]
    diffs = [f"top examples differ in {', '.join(same)}"] if same else []
    worst = _relative(b["activation"].to_numpy(dtype=np.float64), a["activation"].to_numpy(dtype=np.float64)) \
        if "activation" in a and "activation" in b else 0.0
    return diffs, worst


def _compared(examples: pd.DataFrame, column: str) -> pd.Series:
    """A top-example `column` as compared: text, a ``token`` without the combining marks that end it. Its span covers
    the marks after it that no token covers (an accent an uncased BERT drops from NFD ``"cafe\u0301"``: ``cafe``
    recorded ``cafe\u0301``) since b625810, where a profile saved before ended it at the tokenizer's offset: the same
    position (its example id and token index are compared exactly) read as another token."""
    values = examples[column].astype(str)
    if column != "token":
        return values
    return values.map(lambda token: token[:len(token) - _trailing_marks(token)])


def _trailing_marks(token: str) -> int:
    """How many combining marks (Unicode categories M*) end `token`."""
    count = 0
    while count < len(token) and unicodedata.category(token[-1 - count]).startswith("M"):
        count += 1
    return count


def _card_statistics_differences(stored: Profile, new: Profile) -> list[str]:
    """The activation histograms (exact counts) and whether the per-position statistics the stored profile keeps
    were recomputed."""
    diffs = []
    if stored.activation_histogram is not None:
        if new.activation_histogram is None:
            diffs.append("activation histograms stored but not recomputed")
        elif not stored.activation_histogram.equals(new.activation_histogram):
            diffs.append("activation histogram counts differ")
    if stored.position_mass is not None and new.position_mass is None:
        diffs.append("per-position mass stored but not recomputed")
    return diffs


def _output_effects_options(profile: Profile) -> dict[str, Any]:
    """analyze()'s output_effects options that made `profile`'s stored table (they are not ProfilerConfig fields,
    so the record's options lack them): its `k` is the table's ranks per direction."""
    table = profile.output_effects
    if table is None:
        return {}
    return {"output_effects": True, **({"output_effects_k": int(table["rank"].max()) + 1} if len(table) else {})}


def _table_frame(profile: Profile, ft: str) -> pd.DataFrame:
    table = profile.tables[ft]
    vocab = np.array(table.vocab, dtype=object)
    frame = pd.DataFrame({"row": table.rows, "feature": vocab[table.feature_ids] if len(vocab) else [],
                          "mass": table.mass, "count": table.count})
    for name in ("count_odd", "mass_odd", "mass_sq"):
        if getattr(table, name, None) is not None:
            frame[name] = getattr(table, name)
    return frame


def _corpus_counts(profile: Profile, ft: str) -> dict[str, int]:
    table = profile.tables[ft]
    return {f: int(c) for f, c in zip(table.vocab, table.corpus_count) if c}


# ----- the public functions ----------------------------------------------------------------------------------------
def reproduce_profile(profile: Profile, *, model: Any = None, dataset: Any = None, device: Any = None,
                      token: str | bool | None = None, show_progress: bool | None = None,
                      split: str | None = None) -> StageVerdict:
    """Recompute one profile from its ``meta.provenance`` and compare it with `profile`.

    Args:
        profile (`Profile`): the stored profile.
        model (*optional*): a local folder to use instead of the recorded one (checked against its content hash).
        dataset (*optional*): the texts again, for profiles of in-memory texts or stream objects (checked against
            their hash): a ``Dataset``, a list of texts or a ``datasets.IterableDataset`` (read twice: a generator
            is refused), or a relocated local data file/folder.
        device (*optional*): defaults to the recorded device.
        split (`str`, *optional*): the split of `dataset` that holds the texts (a ``DatasetDict``, a saved one, or a
            data folder of several splits), for a stage that recorded no split (texts passed in memory).
        token (`str`, *optional*): for private Hub repos.
        show_progress (`bool`, *optional*): show progress bars while recomputing (default: the global switch,
            ``hf_txray.logging.enable_progress_bars`` / ``disable_progress_bars``, as :func:`hf_txray.analyze`).

    Raises:
        ReproducibilityError: the stage lacks what is needed (message says what).
        ModelError, DatasetError: a source is gone or changed (the files that differ are named); raised before
            any weight is downloaded.
    """
    from .analyze import analyze
    from .provenance import sources_text

    _refuse_split_alone(dataset, split)
    _check_stage(profile, dataset, device)
    dataset = _choose_split(profile, dataset, split)
    record, notes = profile.meta.provenance, []
    model_arg, model_commit = _model_argument(record, model, token, notes)
    _refuse_lost_quantization(profile, model_arg, model_commit, token)
    dataset_arg, dataset_commit = _dataset_argument(record, dataset, token, notes)
    _check_texts(profile, dataset_arg, dataset_commit, token)
    accepted = set(inspect.signature(analyze).parameters) - set(_SET_HERE)
    options = dict(record["options"])
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ReproducibilityError(f"Stage {profile.stage!r} records options {unknown} that analyze() of this "
                                   f"hf_txray ({__version__}) does not accept: install the version that made it.")
    options.update(_output_effects_options(profile))  # recomputed and compared like the rest
    for limit in BATCH_LIMITS:
        if options.get(limit) is None and profile.meta.config.get(limit):
            # the limits the run resolved: their defaults depend on the device and, on a CPU, on the torch threads,
            # and another batching changes the float sums
            options[limit] = profile.meta.config[limit]
    runtime, data = record.get("runtime", {}), record["dataset"]
    new = analyze(model_arg, dataset_arg, revision=model_commit, dataset_revision=dataset_commit,
                  dataset_config=_hub_config(data, dataset_arg), split=_split_for(data, dataset_arg),
                  text_column=data.get("text_column"), num_samples=data.get("num_samples"),
                  trust_remote_code=_recorded_switch(runtime.get("trust_remote_code")), stage=profile.stage,
                  streaming=_streams_again(data, dataset_arg), model_id=profile.meta.model_id, token=token,
                  show_progress=show_progress, **_placement(profile, model_arg, device), **options)
    identical, worst, diffs = compare_numbers(profile, new)
    if not identical:
        diffs = _why_different(profile, new, "the model passed as model=" if model is not None else None) + diffs
    sources = sources_text(record, model_commit, dataset_commit, profile.meta.num_examples)
    return StageVerdict(profile.stage, identical, worst, diffs, sources, notes, new)


def _refuse_lost_quantization(profile: Profile, model_arg: Any, commit: str | None, token: Any) -> None:
    """Refuse, before any weight is loaded, a stage profiled on a quantized model that `model_arg` does not load
    quantized: one quantized in memory (a backend's own ``quantize()``, ``quantize_dynamic``), or loaded with
    ``quantization_config=`` from a folder or repo whose config holds none (an optimum-quanto model: the rerun
    loaded the float weights, recomputed everything and said the weights had changed in memory).

    A model object passed as ``model=`` is not refused: it is run as given.

    Raises:
        ReproducibilityError: naming the quantization and the ways out.
    """
    quantized = (profile.meta.provenance or {}).get("runtime", {}).get("quantization")
    if not isinstance(quantized, dict) or not isinstance(model_arg, (str, Path)):
        return  # a model object passed as model=... is run as it is, quantized as the caller quantized it
    method = quantized.get("method")
    remedy = ("Pass the model quantized as it was profiled (reproduce(..., stage=..., model=quantized_model)), save "
              "the quantized model where its backend can (torchao's save_pretrained keeps its quantization_config; "
              "optimum-quanto's transformers integration cannot) and pin the profile to that folder "
              "(hf_txray.pin_model(profile, folder)), or profile the unquantized model.")
    if quantized.get("from") != "quantization_config":
        raise ReproducibilityError(
            f"Stage {profile.stage!r} profiled a model quantized in memory ({method}: layer "
            f"{quantized.get('layer')!r}, from a backend's own quantize() or torch's quantize_dynamic), which "
            f"reproduce cannot rebuild: it would load {str(model_arg)!r} as saved, unquantized, and compare another "
            f"model's numbers. {remedy}")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_arg, revision=commit, token=token)
    except (OSError, ValueError, TypeError, KeyError):  # analyze says what is wrong with the source
        return
    if getattr(config, "quantization_config", None) is None:
        raise ReproducibilityError(
            f"Stage {profile.stage!r} profiled a model quantized with {method} (from_pretrained(..., "
            f"quantization_config=...)), but the config of {str(model_arg)!r} holds no quantization_config: "
            f"reproduce would load it unquantized and compare another model's numbers. {remedy}")


def _placement(profile: Profile, model_arg: Any, device: Any) -> dict[str, Any]:
    """How the rerun loads and places the model: with the recorded dtype, model_kwargs (attention, device_map...)
    and device when reproduce loads it (`device`, when given, replaces a recorded device_map); a model object passed
    as ``model=`` is used as it is, so it must hold the recorded dtype."""
    runtime = profile.meta.provenance.get("runtime", {})
    dtype = runtime.get("dtype")
    if not isinstance(model_arg, (str, Path)):
        from .distributed import is_dispatched
        from .forward import weights_dtype

        held = str(weights_dtype(model_arg) or "").removeprefix("torch.")
        if dtype and held and held != dtype:
            raise ReproducibilityError(
                f"Stage {profile.stage!r} was profiled in {dtype}, and the model passed as model= holds {held}: "
                f"convert it (model.to(torch.{dtype})) or pass its folder, which is loaded in {dtype}.")
        return {"device": device or (None if is_dispatched(model_arg) else runtime.get("device"))}
    from .loading import DTYPE_KEYS

    # an entry recorded with a secret masked (a cache_dir with a ?token=) is not what the run was given: left out, as
    # a token and proxies are (never recorded); the comparison of the numbers tells whether it mattered
    model_kwargs = {key: value for key, value in (runtime.get("model_kwargs") or {}).items()
                    if not holds_masked(value, key)}
    for key in DTYPE_KEYS:  # the runtime's dtype is what the weights held; older records may repeat one here
        model_kwargs.pop(key, None)
    if runtime.get("attn_implementation"):
        model_kwargs.setdefault("attn_implementation", runtime["attn_implementation"])
    if device is not None:
        model_kwargs.pop("device_map", None)
    placed = {} if "device_map" in model_kwargs else {"device": device or runtime.get("device")}
    return {"dtype": dtype, "model_kwargs": model_kwargs or None, **placed}


def reproduce(results: str | Path, *, stage: str | None = None, out: str | Path | None = None,
              model: Any = None, dataset: Any = None, device: Any = None, revision: str | None = None,
              token: str | bool | None = None, show_progress: bool | None = None,
              split: str | None = None) -> ReproduceResult:
    """Recompute the profiles of a results repo or folder from their pinned model and dataset, and compare.

    Every stage is checked first (what it lacks, its hf_txray major version, whether its sources still exist
    unchanged); only then are models downloaded and run.

    Args:
        results (`str` or `Path`): a Hub results repo id, an export folder (:func:`hf_txray.save_to_disk`), a saved
            profile, or a folder of saved profiles (e.g. the output of ``hf-txray demo``).
        stage (`str`, *optional*): reproduce only this stage (default: all).
        out (`str` or `Path`, *optional*): save the recomputed profiles to ``out/<stage>/``.
        model, dataset (*optional*): replacements for relocated local sources or in-memory texts (checked against
            the recorded hashes; only with `stage` when there are several stages).
        device (*optional*): defaults to the device each stage was computed on.
        split (`str`, *optional*): the split of `dataset` holding the texts, for a stage that recorded none.
        revision (`str`, *optional*): revision of the results repo.
        token (`str`, *optional*): for private repos (results, model, dataset).
        show_progress (`bool`, *optional*): show progress bars while recomputing (default: the global switch,
            ``hf_txray.logging.enable_progress_bars`` / ``disable_progress_bars``, as :func:`hf_txray.analyze`).

    Returns:
        :class:`ReproduceResult`; ``.verdict`` is ``"identical"`` when every stage is.

    Raises:
        ConfigurationError: `results` is not a repo id or folder (a Profile object: use :func:`reproduce_profile`),
            `out` lies in the results, an unknown `stage`, or `model`/`dataset` given without `stage` when there
            are several stages.
        ArtifactNotFoundError: `results` is a local path that does not exist.
        ProfileFormatError: `results` is not hf_txray output.
        ReproducibilityError, ModelError, DatasetError: see :func:`reproduce_profile`.

    Example:
        ```python
        >>> result = hf_txray.reproduce("my-user/minilm-txray")
        >>> print(result)            # stage 'pretrained': identical (...)
        >>> result.verdict
        'identical'
        ```
    """
    if not isinstance(results, (str, Path)):
        raise ConfigurationError(
            f"reproduce takes a results repo id or folder, got a {type(results).__name__}. For a Profile object use "
            "hf_txray.reproduce_profile(profile), or pass the folder it was saved to with save_pretrained."
        )
    # `~` expanded as stored_profiles and save_pretrained expand it: else "~/res/new" escaped the check below (the
    # literal ./~/res is no folder) and the recomputed profiles were saved among those of "~/res"
    out, local = (None if out is None else Path(out).expanduser()), Path(results).expanduser()
    if out is not None and local.is_dir() and out.resolve().is_relative_to(local.resolve()):
        raise ConfigurationError(f"out={str(out)!r} lies in the results being reproduced ({results}): the recomputed "
                                 "profiles would be written among them. Pass another folder.")
    profiles = stored_profiles(results, revision=revision, token=token)
    if stage is not None:
        if stage not in profiles:
            raise ConfigurationError(f"No stage {stage!r} in {results}; its stages: {', '.join(profiles)}.")
        profiles = {stage: profiles[stage]}
    elif (model is not None or dataset is not None) and len(profiles) > 1:
        raise ConfigurationError("model=/dataset= replace the sources of one stage: pass stage=... too.")
    _refuse_split_alone(dataset, split)
    for profile in profiles.values():  # refuse early, before the first download
        _check_stage(profile, dataset, device)
        if out is not None:  # a folder the recomputed stage could not be saved to: said now, not after the run
            check_save_target(Path(out) / profile.stage, what="reproduce(out=...)")
    verdicts = []
    for profile in profiles.values():
        verdict = reproduce_profile(profile, model=model, dataset=dataset, device=device, token=token,
                                    show_progress=show_progress, split=split)
        if out is not None:
            verdict.profile.save_pretrained(Path(out) / profile.stage)
        verdicts.append(verdict)
    return ReproduceResult(verdicts)


def _recorded_switch(value: Any) -> bool:
    """A recorded on/off option as a bool: earlier hf_txray versions recorded strings as given ("false" is truthy)."""
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no", ""):
            raise ReproducibilityError(f"The stage records trust_remote_code={value!r}, which is neither true nor false.")
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def pin_model(profile: Profile, model: str | Path, *, revision: str | None = None,
              token: str | bool | None = None) -> Profile:
    """`profile` with its model recorded as `model` (a Hub id at `revision`, pinned to a commit, or a local folder,
    pinned by content hash): for a profile of weights that were in memory, e.g. a Trainer's last snapshot, once
    they are saved or pushed. :func:`reproduce` then checks the claim by recomputing.

    Args:
        profile (`Profile`): the profile to pin; left unchanged.
        model (`str` or `Path`): a Hub model id or a local folder holding the profiled weights.
        revision (`str`, *optional*): the Hub revision (branch, tag or commit); Hub models only.
        token (`str` or `bool`, *optional*): for a private Hub model.

    Returns:
        `Profile`: a copy of `profile` (every statistic shared) whose ``meta.provenance["model"]`` and
        ``meta.revision`` name `model`.

    Raises:
        ConfigurationError: a `revision` given with a local folder.
        ModelError: `model` is neither an existing path nor a Hub repo that can be reached (missing, private
            without a token, an unknown revision, or offline with nothing cached).
        ReproducibilityError: `profile` has no provenance record to pin the model into.

    Example:
        ```python
        >>> trainer.save_model("results/finetuned")
        >>> final = hf_txray.pin_model(trainer.txray_profiles["step-300"], "results/finetuned")
        ```
    """
    from .loading import resolve_model_source

    source = resolve_model_source(model, revision, token)
    record = dict(profile.meta.provenance)
    if not record:
        raise ReproducibilityError(f"Stage {profile.stage!r} has no provenance record to pin a model into "
                                   "(made before hf_txray recorded sources): recompute it with analyze().")
    record["model"] = source.to_dict()
    pinned = copy.copy(profile)  # every statistic kept (noise statistics included), only the meta replaced
    # a local folder loads as it is, never at a revision: a Hub cache snapshot's recorded commit is not one to pass
    commit = source.commit if source.kind != "local" else None
    pinned.meta = dataclasses.replace(profile.meta, provenance=record, revision=commit or profile.meta.revision)
    return pinned
