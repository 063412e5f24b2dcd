"""The artifact contract: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for everything hf_txray saves.

The shape of huggingface_hub's ``ModelHubMixin`` and peft's ``PushToHubMixin``: a class states its
``artifact_type`` and ``format_version`` and implements two hooks, ``_save_pretrained(folder)`` (write the files into
a fresh folder) and ``_from_pretrained(folder)`` (read them back); the mixin adds the rest:

- ``save_pretrained(dir)`` writes atomically (:func:`hf_txray.io_utils.atomic_dir`) and adds the header
  ``txray_artifact.json`` (artifact type, format version, hf_txray version);
- ``from_pretrained(dir_or_repo_id, revision=...)`` reads a local folder or downloads a Hub dataset repo, and checks
  the header: a missing folder, a folder of another artifact or of a newer format each raise the library's error;
- ``push_to_hub(repo_id)`` saves into a temporary folder and uploads it as one commit (:mod:`hf_txray.hub_io`).

Nothing here imports an artifact or :mod:`hf_txray.hub` (the results repo of many artifacts, one layer up).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Mapping, Sequence, TypeVar

import huggingface_hub  # lazy: CommitInfo (annotations) loads on use

from .counts import check_switch
from .errors import ArtifactNotFoundError, ConfigurationError, ProfileFormatError, TXRayError
from .hub_io import (DATASET_THEN_MODEL, carry_remote_card, check_branch, check_hub_text, check_repo_id,
                     dropped_results, full_repo_id, locate_or_download, naming_the_source,
                     refuse_probing_into_other_models, refuse_probing_of_other_models, remote_models, resolve_token,
                     upload_folder)
from .io_utils import (atomic_dir, check_not_working_directory, check_writable, natural_key, read_json,
                       unfinished_writes, write_json)
from .logging import get_logger
from .version import __version__

logger = get_logger(__name__)

HEADER_FILE = "txray_artifact.json"
# Files that mark folders saved before the contract existed (their formats are no longer read).
LEGACY_MARKERS = {"txray_profile.json": "profile", "txray_report.json": "transfer report",
                  "txray_probe.json": "probing result", "txray_ablation.json": "ablation curve",
                  "txray_pruning_plan.json": "pruning plan", "activations.json": "activations"}
A = TypeVar("A", bound="Artifact")


M = TypeVar("M")


def meta_from_record(cls: type[M], record: Any, what: str) -> M:
    """The metadata dataclass `cls` (``ProfileMeta``, ``ReportMeta``) from its saved `record` (a JSON object).

    Fields this hf_txray does not know (written by a newer one, whose format version says when they must be read)
    are left out; a record that is no object, or lacks a field without a default, is refused: a report's record
    with one more field (or one less) ended in a bare ``TypeError: ReportMeta.__init__() got an unexpected keyword
    argument``, a profile's with one less in ``missing 1 required positional argument``.

    Raises:
        ProfileFormatError: naming `what` and the missing fields.
    """
    if not isinstance(record, Mapping):
        raise ProfileFormatError(f"The saved metadata of the {what} is a {type(record).__name__}, not a record of "
                                 "fields: the meta/ file was changed after saving. Save it again from its source.")
    fields = dataclasses.fields(cls)
    required = {f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}  # type: ignore[misc]
    missing = sorted(required - set(record))
    if missing:
        raise ProfileFormatError(f"The saved metadata of the {what} lacks the field(s) {', '.join(map(repr, missing))}: "
                                 "the meta/ file was changed after saving, or was not written by hf_txray. Save it "
                                 "again from its source.")
    known = {f.name for f in fields}
    return cls(**{k: v for k, v in record.items() if k in known})


def write_header(folder: str | os.PathLike, artifact_type: str, format_version: int) -> None:
    """Write the header that :meth:`Artifact.from_pretrained` checks (for writers that fill a folder themselves,
    e.g. activations streamed to disk)."""
    write_json(Path(folder) / HEADER_FILE, {"artifact": artifact_type, "format_version": format_version,
                                           "hf_txray_version": __version__})


def read_header(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The header of a saved artifact folder, or ``None`` when it has none. A header that is not a JSON object (a
    truncated or overwritten file) reads as ``{"artifact": None, "damaged": why}``: the folder still holds what
    hf_txray saved (a new save may replace it), but ``from_pretrained`` refuses it (:meth:`Artifact.check_header`).
    ``hf_txray.load`` reads a folder's tables by the dataset layout, which holds no header, and checks those."""
    path = Path(folder) / HEADER_FILE
    if not path.is_file():
        return None
    try:
        header = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        return {"artifact": None, "damaged": f"{type(err).__name__}: {err}"}
    if not isinstance(header, dict):
        return {"artifact": None, "damaged": f"a JSON {type(header).__name__}, not an object"}
    # Values edited by hand: a format version that is no whole number (int("abc") raised a bare ValueError, None a
    # TypeError, 2.5 was read as 2) or an artifact type that is no string (a list raised "unhashable type")
    artifact, version = header.get("artifact"), header.get("format_version", 0)
    if artifact is not None and not isinstance(artifact, str):
        return {"artifact": None, "damaged": f"its artifact type is {artifact!r}, not a name"}
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return {"artifact": None, "damaged": f"its format_version is {version!r}, not a whole number >= 0"}
    return header


def artifact_type_of(folder: str | os.PathLike) -> str | None:
    """The ``artifact_type`` saved in `folder` (e.g. ``"profile"``), or ``None`` when it holds no artifact."""
    header = read_header(folder)
    return None if header is None else header.get("artifact")


def holds_artifact(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds something hf_txray saved: an artifact (any type, old formats included), a results
    folder, or only an ``analyze`` checkpoint (``_checkpoint``) of a run that writes its profile there."""
    folder = Path(folder)
    if read_header(folder) is not None or any((folder / marker).is_file() for marker in LEGACY_MARKERS):
        return True
    return {p.name for p in folder.iterdir()} == {"_checkpoint"}


def check_not_an_input(folder: str | os.PathLike, inputs: Sequence[str | os.PathLike], *, what: str,
                       cli_flag: str | None = None, read_whole: Sequence[str | os.PathLike] = ()) -> None:
    """Refuse an output `folder` that is one of `inputs` or holds one: writing it replaces the whole folder, which
    would delete the input (``hf-txray compare A B --out A``); and one inside an input that hf_txray saved (a report
    written into profile A would be read with it, and deleted with it by the next save there), or inside an input of
    `read_whole`, every file of which is read (a dataset folder: the profile's files would become rows of the corpus,
    or break its loading, for every later run).

    Raises:
        ConfigurationError: naming the input and the flag that gave `folder`.
    """
    target = Path(folder).resolve()
    given = f" (CLI: {cli_flag})" if cli_flag else ""
    whole = {Path(source).resolve() for source in read_whole if Path(source).is_dir()}
    for source in (*inputs, *read_whole):  # a Hub id or a name that is not a local path is no input on disk
        if not Path(source).exists():
            continue
        source_path = Path(source).resolve()
        if target == source_path or target in source_path.parents:
            raise ConfigurationError(f"{folder} holds the input {source}; {what} replaces the whole folder, which "
                                     f"would delete it: give another folder{given}.")
        if source_path in target.parents and source_path in whole:
            raise ConfigurationError(f"{folder} is inside the dataset folder {source}, every file of which is read: "
                                     f"{what}'s files would be read as the corpus by every later run on it; give a "
                                     f"folder outside it{given}.")
        if source_path in target.parents and source_path.is_dir() and holds_artifact(source_path):
            raise ConfigurationError(f"{folder} is inside the input {source}, which hf_txray saved: {what} would "
                                     f"write into that saved folder; give a folder outside it{given}.")


def check_save_target(folder: str | os.PathLike, *, what: str = "save_pretrained", cli_flag: str | None = None,
                      artifact_type: str | None = None, inputs: Sequence[str | os.PathLike] = (),
                      read_whole: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse a folder that saving would wipe: saving replaces the whole folder, so it must be new, empty, or hold
    something hf_txray saved (:func:`holds_artifact`) of the same type, which is then replaced.

    Call it before the work whose result is saved there (e.g. before ``analyze`` when the profile goes to `folder`).

    Args:
        folder (`str` or `os.PathLike`): the output folder.
        what (`str`, *optional*, defaults to ``"save_pretrained"``): the writer, named in the message.
        cli_flag (`str`, *optional*): the command-line flag that gave `folder`, named in the message.
        artifact_type (`str`, *optional*): the type about to be saved (e.g. ``"transfer_report"``): a folder holding
            a saved artifact of another type (a profile that took hours to compute) is refused, not replaced.
        inputs (`list` of paths, *optional*): what the writer reads (a command's input folders): a folder that is
            one of them, or holds one, is refused (replacing it would delete the input).
        read_whole (`list` of paths, *optional*): inputs every file of which is read (a dataset folder): a folder
            inside one is refused too.

    Returns:
        `Path`: `folder`.

    Raises:
        ConfigurationError: `folder` is a file, a non-empty folder of other files, a saved artifact of another
            type, one of `inputs` or a folder holding one, or the current working directory.
        OutputError: `folder` could not be written (a file in its path, a folder that is not writable).
    """
    check_not_working_directory(folder)
    folder = Path(folder)
    given = f" (CLI: {cli_flag})" if cli_flag else ""
    if folder.is_file():
        raise ConfigurationError(f"{folder} is a file; {what} writes a folder: give a new folder{given}.")
    check_not_an_input(folder, inputs, what=what, cli_flag=cli_flag, read_whole=read_whole)
    if folder.is_dir() and any(folder.iterdir()) and not holds_artifact(folder):
        raise ConfigurationError(
            f"{folder} is not empty and holds no hf_txray artifact; {what} replaces the whole folder, which would "
            f"delete those files: give a new or empty folder{given}, e.g. {folder / 'txray'}.")
    held = artifact_type_of(folder) if folder.is_dir() else None
    if artifact_type is not None and held is not None and held != artifact_type:
        raise ConfigurationError(
            f"{folder} holds a saved {held.replace('_', ' ')}; {what} would replace it with a "
            f"{artifact_type.replace('_', ' ')}: give another folder{given}, or delete that one first.")
    foreign = _foreign_entries(folder) if held is not None else []
    if foreign:  # helper 168: a saved profile replaced as a whole took a user's notes and a profile saved inside along
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigurationError(
            f"{folder} holds a saved {held.replace('_', ' ')} and other files ({shown}); {what} replaces the whole "
            f"folder, which would delete them: move them out, or give another folder{given}.")
    check_writable(folder)
    return folder


# What hf_txray's saves write (tables, cards, weights, arrays): anything else in a saved artifact's folder is not its own
OWN_SUFFIXES = frozenset({".json", ".md", ".parquet", ".safetensors", ".bin", ".npz", ".npy", ".png"})


def _foreign_entries(folder: Path) -> list[str]:
    """The entries of a saved artifact's `folder` that its save did not write: files of other kinds and folders
    holding them or another saved artifact (hidden entries, a killed write's temporary files and an interrupted run's
    ``_checkpoint`` left out)."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name == "_checkpoint":
            continue
        if entry.is_dir():
            # a killed write's temporary files are hf_txray's own (the copy of a kept config leaves them out)
            files = [f for f in entry.rglob("*") if f.is_file() and not unfinished_writes(str(f.parent), [f.name])]
            if any(f.name == HEADER_FILE or f.suffix not in OWN_SUFFIXES for f in files):
                foreign.append(f"{entry.name}/")
        elif entry.suffix not in OWN_SUFFIXES:
            foreign.append(entry.name)
    return foreign


def saved_artifacts(root: str | os.PathLike, artifact_type: str) -> list[Path]:
    """The folders under `root` (itself included) holding a saved `artifact_type`, in natural order (``step-3``
    before ``step-10``: a Trainer's snapshots in the order they were taken); checkpoint folders (``_checkpoint``) are
    skipped."""
    root = Path(root)
    return sorted((p.parent for p in root.rglob(HEADER_FILE)
                   if "_checkpoint" not in p.relative_to(root).parts and artifact_type_of(p.parent) == artifact_type),
                  key=lambda folder: natural_key(folder.relative_to(root).as_posix()))


def same_values(a: Any, b: Any) -> bool:
    """Whether `a` and `b` hold the same values, recursively through dataclasses (their ``compare`` fields), dicts,
    lists, numpy arrays (same dtype and shape; NaN equals NaN) and pandas frames: the equality of an artifact and its
    saved and reloaded copy, where a dataclass's generated ``==`` would meet an array and raise."""
    import dataclasses

    import numpy as np
    import pandas as pd

    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):  # a memory-mapped copy equals the in-memory one
        return a.dtype == b.dtype and a.shape == b.shape and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if type(a) is not type(b):
        return False
    if isinstance(a, (pd.DataFrame, pd.Series)):
        return a.reset_index(drop=True).equals(b.reset_index(drop=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if dataclasses.is_dataclass(a):
        return all(same_values(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a) if f.compare)
    return bool(a == b)


# artifact_type -> the class that loads it (all exported by hf_txray), for the error that names another one's folder
CLASS_OF_TYPE = {"profile": "Profile", "transfer_report": "TransferReport", "probing_result": "ProbingResult",
                 "ablation_curve": "AblationCurve", "pruning_plan": "PruningPlan", "activations": "Activations"}


class ValueEquality:
    """Mixin: ``==`` by value (:func:`same_values`), for a dataclass (``@dataclass(eq=False)``) that holds arrays or
    frames, where the generated ``==`` would meet one and raise; not hashable, as a dataclass with eq."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return same_values(self, other)

    __hash__ = None  # mutable values


class Artifact(ValueEquality):
    """Mixin giving a class the three methods of the artifact contract (see the module docstring), and equality by
    value (:class:`ValueEquality`): an artifact equals its saved and reloaded copy.

    Subclasses set ``artifact_type`` (a short name, e.g. ``"profile"``) and ``format_version`` (raise it when the
    files change incompatibly), and implement ``_save_pretrained(folder)`` and ``_from_pretrained(folder)``.
    """

    artifact_type: ClassVar[str]
    format_version: ClassVar[int] = 1
    # Folders a push replaces even when this save has none: an optional config of an earlier push left beside the
    # new save would mix two saves in the repo (a reader refuses that).
    optional_folders: ClassVar[tuple[str, ...]] = ()
    # Whether `_save_pretrained` takes `repo_id` and `revision`, for a dataset card whose loading examples name the
    # repo and branch a push goes to
    card_names_repo: ClassVar[bool] = False
    # Whether the card's text is an hf_txray-marked section that a push puts into the repo's own card (probing
    # results, ablation curves beside TX-Ray results) rather than a card of its own
    card_is_section: ClassVar[bool] = False

    def probed_model_id(self) -> str | None:
        """With `card_is_section`: the model the results are of (checked against a results repo's profiles on
        push); None otherwise."""
        return None

    def _save_pretrained(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _from_pretrained(cls: type[A], folder: Path) -> A:
        raise NotImplementedError

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write this artifact to `save_directory`, atomically (a previous save there is replaced).

        Args:
            save_directory (`str` or `os.PathLike`): the folder: new, empty, or holding a previous hf_txray save
                (replaced as a whole). A folder of other files is refused, never wiped.

        Returns:
            `Path`: `save_directory`.

        Raises:
            ConfigurationError: `save_directory` is a file, a non-empty folder holding no hf_txray artifact, or the
                current working directory.
            OutputError: `save_directory` cannot be written (a file in its path, a folder that is not writable, a
                full disk); what was there is kept.
        """
        # `~` expanded as from_pretrained expands it: "~/x" saved as ./~/x was not found by from_pretrained("~/x")
        save_directory = Path(save_directory).expanduser()
        check_save_target(save_directory, what=f"{type(self).__name__}.save_pretrained",
                          artifact_type=self.artifact_type)
        self.check_replaceable(save_directory, what=f"{type(self).__name__}.save_pretrained")
        return self._write(save_directory)

    @classmethod
    def check_replaceable(cls, folder: str | os.PathLike, *, what: str = "save_pretrained",
                          cli_flag: str | None = None) -> None:
        """Raise :class:`ConfigurationError` when replacing an earlier save of this type in `folder` would delete what
        others wrote into it (:func:`check_save_target` has checked the rest); nothing by default."""

    def _write(self, save_directory: Path, **card: Any) -> Path:
        """Save atomically; `card` (``repo_id``, ``revision``) reaches `_save_pretrained` where it takes them."""
        with atomic_dir(save_directory) as tmp:
            if card and self.card_names_repo:
                self._save_pretrained(tmp, **card)
            else:
                self._save_pretrained(tmp)
            write_header(tmp, self.artifact_type, self.format_version)
        return save_directory

    @classmethod
    def from_pretrained(cls: type[A], dir_or_repo_id: str | os.PathLike, *, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
                        subfolder: str | None = None) -> A:
        """Load an artifact saved with :meth:`save_pretrained` (a folder) or :meth:`push_to_hub` (a Hub dataset repo).

        Args:
            dir_or_repo_id (`str` or `os.PathLike`): a local folder, or a Hub dataset repo id; with `subfolder`, a Hub
                model repo too, where no dataset repo of that id is found (``TXRayTrainer.push_to_hub`` puts its
                snapshots into the model repo, under ``txray/profiles/<stage>`` and ``txray/reports/<a>__<b>``), and
                where a dataset repo of that id holds no such folder.
            revision (`str`, *optional*): branch, tag or commit of the repo (refused with a local folder).
            token (`str` or `bool`, *optional*): for private repos; defaults to ``HF_TOKEN`` / the saved login.
            cache_dir (`str` or `os.PathLike`, *optional*): the Hub cache (default: ``HF_HUB_CACHE``); offline
                (``HF_HUB_OFFLINE=1``) a repo already in the cache loads from it.
            subfolder (`str`, *optional*): the folder of the repo (or of the local folder) that holds the artifact,
                as transformers' ``from_pretrained(..., subfolder=)``; only its files are downloaded.

        Raises:
            ArtifactNotFoundError: a local path that does not exist, or no such subfolder.
            ConfigurationError: `revision` with a local folder (a folder is read as it is).
            HubError: the repo cannot be downloaded.
            ProfileFormatError: the folder holds no artifact, another kind of artifact, the old format, or a format
                newer than this hf_txray reads.
        """
        inside = _subfolder_path(subfolder)
        # a subfolder may be in a model repo: TXRayTrainer.push_to_hub uploads output_dir/txray/ with the model, and
        # its card points at txray/profiles/<stage>/ (a dataset repo of that id is looked in first, as before)
        folder, repo_type = locate_or_download(dir_or_repo_id, revision=revision, token=token, cache_dir=cache_dir,
                                               allow_patterns=[f"{inside.as_posix()}/**"] if inside else None,
                                               repo_types=DATASET_THEN_MODEL if inside else ("dataset",))
        if inside is not None and repo_type == "dataset" and not (folder / inside).is_dir():
            # a dataset repo of that id without the folder (results pushed under the model's id): the model repo's
            # (a missing or unreadable one leaves the dataset repo's "no folder" below)
            try:
                folder, repo_type = locate_or_download(dir_or_repo_id, revision=revision, token=token,
                                                       cache_dir=cache_dir, allow_patterns=[f"{inside.as_posix()}/**"],
                                                       repo_types=("model",))
            except TXRayError:
                pass
        source: str | os.PathLike = dir_or_repo_id
        if inside is not None:
            if not (folder / inside).is_dir():
                raise ArtifactNotFoundError(f"{dir_or_repo_id} has no folder {inside.as_posix()!r}"
                                            f"{f' at {revision!r}' if revision else ''}: check subfolder=.")
            local = repo_type is None
            folder = folder / inside
            # messages name the subfolder: the local path itself, or the repo id followed by it
            source = folder if local else f"{dir_or_repo_id}/{inside.as_posix()}"
        # a loader the message suggests is called as this one was: the repo id, revision and subfolder
        call = ", ".join([repr(str(dir_or_repo_id))] + [f"{key}={value!r}" for key, value in (
            ("revision", revision), ("subfolder", inside.as_posix() if inside else None)) if value])
        with naming_the_source(source, folder, revision, token, repo_type or "dataset", call_args=call):
            cls.check_header(folder)
            return cls._from_pretrained(folder)

    @classmethod
    def check_header(cls, folder: Path) -> dict[str, Any]:
        """The folder's header, checked to hold this class's artifact in a format this hf_txray reads.

        Raises:
            ProfileFormatError: naming what the folder holds instead, and the fix.
        """
        header = read_header(folder)
        what = cls.artifact_type.replace("_", " ")
        # A results folder or repo (save_to_disk, `hf-txray export` / `push`; a push uploads no header) holds many
        # profiles and reports: hf_txray.load reads it.
        legacy = [kind for marker, kind in LEGACY_MARKERS.items() if (folder / marker).is_file()]
        if (header is None and not legacy and (folder / "meta").is_dir()) or (header or {}).get("artifact") == "results":
            raise ProfileFormatError(
                f"{folder} is a results folder (profiles and reports in the dataset layout, as `hf-txray push` and "
                f"hf_txray.save_to_disk write them), not a single saved {what}: load it with hf_txray.load(...) "
                "given the same repo id or folder; it returns (profiles, reports) by stage and report name.")
        if header is None:
            if legacy:
                raise ProfileFormatError(
                    f"{folder} holds a {legacy[0]} saved in the format of hf_txray before the artifact contract "
                    f"(no {HEADER_FILE}); this version no longer reads it. Load it with the hf_txray that wrote it "
                    "and save it again with this one, or recompute it.")
            raise ProfileFormatError(f"{folder} is not a saved hf_txray {what} (no {HEADER_FILE}); save one with "
                                     f"{cls.__name__}.save_pretrained.")
        if "damaged" in header:
            raise ProfileFormatError(f"{folder / HEADER_FILE} is damaged ({header['damaged']}), so {folder} cannot be "
                                     f"read as a saved {what}: save (or push) it again from the object, or recompute it.")
        found = header.get("artifact")
        if found != cls.artifact_type:
            loader = (f"hf_txray.{CLASS_OF_TYPE[found]}.from_pretrained({str(folder)!r})" if found in CLASS_OF_TYPE
                      else "the class of that artifact")
            raise ProfileFormatError(f"{folder} holds a saved hf_txray {str(found).replace('_', ' ')}, not a {what}: "
                                     f"load it with {loader}.")
        version = int(header.get("format_version", 0))
        if version > cls.format_version:
            raise ProfileFormatError(
                f"{folder} holds a {what} in format version {version}, newer than this hf_txray ({__version__}) "
                f"reads ({cls.format_version}); written by hf_txray {header.get('hf_txray_version', '?')}. Upgrade "
                "hf_txray.")
        return header

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str | None = None, revision: str | None = None,
                    create_pr: bool = False) -> huggingface_hub.CommitInfo:
        """Upload this artifact, saved with :meth:`save_pretrained`, to the Hub dataset repo `repo_id` (one commit).

        Files of a previous push in the folders this artifact writes, and in its `optional_folders` (for a profile or
        a report: every folder of the results layout, so that another push's profiles, reports or plots are not left
        beside it), are replaced; other files are left alone. A profile or report pushed onto results of
        :func:`hf_txray.push_to_hub` replaces them: a warning names the stages and reports it drops (its previous
        commit keeps them), as a push of a results folder does.

        Args:
            repo_id (`str`): ``namespace/name`` (or ``name`` for the token's user); created when missing.
            private (`bool`, *optional*, defaults to `False`): visibility of a newly created repo.
            token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login; never written anywhere.
            commit_message (`str`, *optional*): the commit's title.
            revision (`str`, *optional*): the branch to push to (created when missing).
            create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead.

        Returns:
            `huggingface_hub.CommitInfo`: the commit (``.oid`` is what ``from_pretrained(revision=...)`` takes).

        Raises:
            ConfigurationError: an invalid repo id, `private` or `create_pr` not a bool, `commit_message` not a
                string (before anything is written).
            HubError: no token, or the upload failed.
        """
        check_repo_id(repo_id)
        # create_pr="no" opened a pull request and private="no" went on to create_repo (helper 369)
        private, create_pr = check_switch("private", private), check_switch("create_pr", create_pr)
        check_hub_text("commit_message", commit_message)
        revision = check_branch(revision)  # refs/heads/exp: the branch 'exp', as the card names it
        token = resolve_token(token)
        # a pull request against a branch (revision) is merged into it: the card names that branch
        card = {"repo_id": full_repo_id(repo_id, token), "revision": revision} if self.card_names_repo else {}
        with tempfile.TemporaryDirectory(prefix="hf_txray-push-") as tmp:
            folder = self._write(Path(tmp) / self.artifact_type, **card)
            replaced = sorted({p.name for p in folder.iterdir() if p.is_dir()} | set(self.optional_folders))
            what = self.artifact_type.replace("_", " ")
            dropped: list[str] = []  # the repo's stages and reports this push replaces, said once pushed

            def prepare(api: Any, full_id: str) -> None:
                if self.card_is_section:  # probing results into a repo of another model's profiles: refused
                    refuse_probing_into_other_models(
                        [self.probed_model_id()], remote_models(api, full_id, revision), f"The Hub dataset {full_id!r}",
                        "Push them to another repo.")
                # a profile's or report's push keeps the repo's probing configs: refused when of another model
                absent = refuse_probing_of_other_models(api, full_id, revision, folder)
                carry_remote_card(api, full_id, folder, revision, replaced, into_remote=self.card_is_section,
                                  absent=absent)
                if self.optional_folders and not create_pr:  # the results layout, replaced whole: said now
                    dropped.extend(filter(None, [dropped_results(api, full_id, revision, folder)]))

            info = upload_folder(folder, repo_id, token=token, private=private, revision=revision,
                                 create_pr=create_pr, delete_patterns=[f"{name}/*" for name in replaced] or None,
                                 prepare=prepare,
                                 what_uploads=f"the {what}",
                                 retry_hint=f"Nothing was lost: the {what} is unchanged in memory; fix the cause and "
                                            "call push_to_hub again (or save_pretrained it to a folder first).",
                                 commit_message=commit_message or f"Upload hf_txray {self.artifact_type.replace('_', ' ')} "
                                                                  f"(hf_txray {__version__})")
        for warning in dropped:
            logger.warning(warning)
        return info


def _subfolder_path(subfolder: str | None) -> PurePosixPath | None:
    """`subfolder` as a relative path inside a repo or folder; None for none.

    Raises:
        ConfigurationError: an absolute path, one that leaves the folder (``..``), or not a string.
    """
    if subfolder is None or subfolder in ("", "."):
        return None
    if not isinstance(subfolder, str):
        raise ConfigurationError(f"subfolder must be a string (a folder inside the repo), got {subfolder!r}.")
    path = PurePosixPath(subfolder.replace("\\", "/").strip("/"))
    if subfolder.startswith("/") or ".." in path.parts:
        raise ConfigurationError(f"subfolder must be a folder inside the repo or folder, got {subfolder!r}.")
    return path
