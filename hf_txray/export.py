"""A whole analysis in one folder: many profiles and reports in the dataset layout (:mod:`hf_txray.layout`).

:func:`save_to_disk` writes the folder that :func:`hf_txray.push_to_hub` uploads and :func:`hf_txray.load` reads
(:func:`read_folder`): the same layout a single ``Profile.save_pretrained`` or ``TransferReport.save_pretrained``
writes, for several stages and reports at once, with plots. The round trip is exact.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .artifact import artifact_type_of, check_save_target, write_header
from .counts import check_switch
from .errors import ConfigurationError, ProfileFormatError
from .hub_io import check_branch, check_hub_text, check_license, check_probed_models, check_repo_id
from .io_utils import atomic_dir, unfinished_writes
from .card import probing_card
from .names import control_characters, one_line_name
from .layout import EXPORT_FORMAT_VERSION, EXTRA_CONFIGS, is_export_folder, read_config, read_parts, write_folder
from .logging import get_logger
from .options import check_stage_name
from .profile import Profile
from .report import TransferReport

logger = get_logger(__name__)


# ----- inputs ---------------------------------------------------------------------------------------------------
def as_list(value: Any, kind: type, name: str, key: Callable[[Any], str] | None = None) -> list:
    """`value` (None, one `kind`, or a list, tuple or dict of them) as a list.

    Args:
        key (`Callable`, *optional*): the name each item is known by in the repo (a profile's stage, a report's
            name): a dict must be keyed by it. Its keys were dropped, so ``profiles={"zero-shot": p}`` of a profile
            of stage ``"pretrained"`` was pushed, and loaded back, as ``"pretrained"``.

    Raises:
        ConfigurationError: anything else, or a dict key that is not its item's `key`.
    """
    if value is None:
        return []
    if isinstance(value, kind):
        return [value]
    if isinstance(value, Mapping):
        for given, item in value.items():
            if key is not None and isinstance(item, kind) and given != key(item):
                raise ConfigurationError(
                    f"{name}[{given!r}] is named {key(item)!r}: the repo names it so, not by the dict's key, and "
                    f"loading gives it back under {key(item)!r}. Key the dict by that name, or pass a list; give a "
                    "profile its stage name when it is computed (analyze(..., stage=...)).")
        value = list(value.values())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, kind) for v in value):
        raise ConfigurationError(f"{name} must be a {kind.__name__}, a list or a dict of them; got {value!r:.80}.")
    return list(value)


def collect(profiles: Any = None, reports: Any = None) -> tuple[dict[str, Profile], dict[str, TransferReport]]:
    """Validate and key the inputs: profiles by stage, reports by name (``"a->b"``).

    Raises:
        ConfigurationError: nothing to export, wrong types, duplicate names, a stage name with a control character
            (a newline would break the card's headings and tables), or an empty profile or report.
    """
    profile_list = as_list(profiles, Profile, "profiles", key=lambda p: p.stage)
    report_list = as_list(reports, TransferReport, "reports", key=lambda r: r.name)
    if not profile_list and not report_list:
        raise ConfigurationError("Nothing to export: pass at least one Profile (profiles=...) or TransferReport "
                                 "(reports=...).")
    by_stage: dict[str, Profile] = {}
    for profile in profile_list:
        check_stage_name(profile.stage, "Profile stage")
        if profile.stage in by_stage:
            raise ConfigurationError(f"Two profiles share the stage name {profile.stage!r}: give each a distinct "
                                     "stage (analyze(..., stage=...)); stages identify profiles in the repo.")
        if int(profile.neuron_count.sum()) == 0:
            raise ConfigurationError(
                f"Profile {profile.stage!r} is empty: no neuron was credited ({profile.meta.num_examples} texts, "
                f"{profile.meta.num_positions} token positions). Profile a corpus with text before exporting.")
        by_stage[profile.stage] = profile
    by_name: dict[str, TransferReport] = {}
    for report in report_list:
        for stage in (report.meta.stage_a, report.meta.stage_b):
            check_stage_name(stage, f"Report {report.name!r}: stage")
        if report.name in by_name:
            raise ConfigurationError(f"Two reports are both named {report.name!r}; reports are identified by their "
                                     "stages.")
        if len(report.neurons) == 0:
            raise ConfigurationError(f"Report {report.name!r} is empty: it has no neurons.")
        by_name[report.name] = report
    for report in by_name.values():
        for side, stage in (("a", report.meta.stage_a), ("b", report.meta.stage_b)):
            if stage in by_stage:
                check_report_of(report, by_stage[stage], side)
    return by_stage, by_name


def check_report_of(report: TransferReport, profile: Profile, side: str) -> None:
    """Refuse a report bundled with a profile of its stage name that it was not computed from (the stage re-run
    after the report, or another model's profile of that name): the card, the tables and the viewer would show the
    report's figures beside another profile's distributions. Its per-neuron counts must be the profile's."""
    frame = report.neurons
    rows = frame["layer"].map({layer: i for i, layer in enumerate(profile.layers)})
    neurons = frame["neuron"].to_numpy()
    fits = (len(frame) == profile.neuron_count.size and not rows.isna().any()
            and bool((neurons < profile.num_neurons).all()))
    differ = (int((profile.neuron_count[rows.to_numpy(dtype=np.int64), neurons] != frame[f"count_{side}"]).sum())
              if fits else len(frame))
    if differ:
        raise ConfigurationError(
            f"Report {report.name!r} was not computed from the profile of stage {profile.stage!r} given with it: "
            + (f"its per-neuron counts of that stage differ at {differ} of {len(frame)} neurons"
               if fits else f"its layers and neurons are not that profile's ({profile.layers}, "
                            f"{profile.num_neurons} neurons per layer)")
            + " (the stage was profiled again after the report, or the profile is another model's). Recompute the "
              "report with hf_txray.compare on these profiles, or leave one of them out.")


# ----- folder ---------------------------------------------------------------------------------------------------
def _check_target(directory: Path) -> None:
    # The folder is replaced as a whole: refuse to wipe a folder that holds anything but a previous export. An export
    # written before the artifact header has none and is still ours; a saved profile or report (the same layout,
    # with a header) is refused by its type.
    if artifact_type_of(directory) is not None or not is_export_folder(directory):
        check_save_target(directory, what="save_to_disk", artifact_type="results")


def check_card_options(repo_id: str | None = None, revision: str | None = None, license: str | None = None,
                       pretty_name: str | None = None) -> str | None:
    """Raise :class:`ConfigurationError`, before anything is read or written, unless the repo id and branch a card's
    loading examples name, and its license, are each None or valid (:func:`~hf_txray.hub_io.check_repo_id`,
    :func:`~hf_txray.hub_io.check_branch`, :func:`~hf_txray.hub_io.check_license`): ``export --repo-id "bad id!"``
    and ``--license "a b"`` were written into the card as they were; its title `pretty_name` is None or a string
    (:func:`~hf_txray.hub_io.check_hub_text`: ``['x']`` was the title) of one line, without a control character
    (:func:`~hf_txray.names.control_characters`: ``"a\\nb"`` went into the YAML metadata as a quoted two-line title).
    Returns the branch as the card names it (:func:`~hf_txray.hub_io.branch_name`: ``refs/heads/exp`` is 'exp')."""
    if repo_id is not None:
        check_repo_id(repo_id)
    branch = check_branch(revision)
    check_license(license)
    check_hub_text("pretty_name", pretty_name)
    bad = control_characters(pretty_name or "")
    if bad:  # as a stage name is (options.check_stage_name)
        raise ConfigurationError(
            f"pretty_name {pretty_name!r} holds the control character(s) {', '.join(map(repr, bad))}: it is the "
            "card's title, in its YAML metadata (the dataset's name on the Hub) and its heading; give one line of "
            f"text, e.g. pretty_name={one_line_name(pretty_name)!r}. Nothing was written.")
    return branch


def save_to_disk(
    directory: str | Path,
    profiles: Any = None,
    reports: Any = None,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    pretty_name: str | None = None,
    plots: bool = True,
    revision: str | None = None,
) -> Path:
    """Write profiles and reports in the Hub dataset layout: parquet configs, README dataset card, PNG plots.

    The folder is written atomically (a previous export there is replaced, less its ``probe_rankings`` and
    ``ablation`` configs, which are kept; when they are of a model this export does not hold, nothing is written and
    a `ConfigurationError` says so where both are named by Hub ids, a warning where a name is a local one) and
    loads with ``datasets.load_dataset(directory, config)`` for every config, and with :func:`hf_txray.load`. A local
    folder is cached by ``datasets`` under its folder name and config alone, not by its files: after a second export
    into the same folder (or into another folder of the same name), ``load_dataset`` returns the first export's
    tables without a word; pass ``download_mode="force_redownload", verification_mode="no_checks"`` (as the card's
    examples do when no `repo_id` is given; force alone raises ``NonMatchingSplitsSizesError`` against the cached
    sizes), or read it with :func:`hf_txray.load`, which reads the files themselves.

    Args:
        directory (`str` or `Path`): the folder to write; must be new, empty, or a previous export.
        profiles (`Profile`, `list[Profile]` or `dict[str, Profile]`, *optional*): stages to export (a dict keyed by
            stage, as :func:`hf_txray.load` returns them).
        reports (`TransferReport`, `list` or `dict`, *optional*): comparisons to export (a dict keyed by report name).
        repo_id (`str`, *optional*): the Hub repo the card's loading examples name.
        license (`str`, *optional*): a Hub license id for the card, e.g. ``"apache-2.0"``.
        pretty_name (`str`, *optional*): the card's title; derived from the model otherwise.
        plots (`bool`, *optional*, defaults to `True`): draw the key figures into ``plots/``.
        revision (`str`, *optional*): the Hub branch the folder will be pushed to, named by the card's loading
            examples (``hf_txray.push_to_hub(..., revision=...)`` sets it).

    Returns:
        `Path`: `directory`.

    Raises:
        ConfigurationError: the first argument is not a folder path (a profile or report passed first), the folder
            holds something other than a previous export, an invalid `repo_id`/`revision`/`license`, or the
            previous export's probing configs are of a model this export does not hold (both named by Hub ids).
        ProfileFormatError: the previous export's probing configs cannot be read.
        OutputError: the folder cannot be written (permissions, a full disk).

    Example:
        ```python
        >>> hf_txray.save_to_disk("results/minilm", profiles=[pretrained, finetuned], reports=[report])
        >>> datasets.load_dataset("results/minilm", "neuron_cards", split="train", download_mode="force_redownload",
        ...                       verification_mode="no_checks")
        ```
    """
    if not isinstance(directory, (str, os.PathLike)):  # the folder given last, or left out: name the order
        raise ConfigurationError(
            f"save_to_disk's first argument is the folder to write, got {type(directory).__name__} {directory!r:.60}: "
            "call hf_txray.save_to_disk(directory, profiles, reports).")
    revision = check_card_options(repo_id, revision, license, pretty_name)
    plots = check_switch("plots", plots)  # plots="no" (a truthy string) drew them
    by_stage, by_name = collect(profiles, reports)
    directory = Path(directory).expanduser()  # as load() and from_pretrained() read it
    _check_target(directory)
    _check_probing_models(directory, by_stage, by_name)
    with atomic_dir(directory) as tmp:
        write_folder(tmp, by_stage, by_name, repo_id=repo_id, license=license, pretty_name=pretty_name, plots=plots,
                     revision=revision)
        _carry_probing(directory, tmp, repo_id, revision)
        write_header(tmp, "results", EXPORT_FORMAT_VERSION)
    return directory


def _held_probing(previous: Path) -> list[str]:
    return [name for name in EXTRA_CONFIGS if previous.is_dir() and any((previous / name).glob("*.parquet"))]


def _check_probing_models(previous: Path, by_stage: dict[str, Profile], by_name: dict[str, TransferReport]) -> None:
    """Refuse (other Hub ids) or warn (other local or class names: :func:`~hf_txray.hub_io.check_probed_models`),
    before anything is written, about probing results of a model the new export does not hold: kept beside another
    model's profiles, its card and the viewer would present them as that model's (helper 197). A table that cannot
    be read is left to :func:`_carry_probing`, which says how to recover."""
    models = {p.meta.model_id for p in by_stage.values()}
    models |= {m for r in by_name.values() for m in (r.meta.model_a, r.meta.model_b)}
    for name in _held_probing(previous):
        try:
            probed = {str(m) for m in read_config(previous, name).column("model_id").to_pylist() if m}
        except (ProfileFormatError, KeyError):
            continue
        check_probed_models(
            probed, models,
            lambda foreign: f"The previous export in {previous} holds {name} results of {foreign}, a model this "
                            f"export does not hold (it holds {sorted(models)}); they are kept and shown as this "
                            "export's.",
            f"Nothing was written. Export to another folder, or delete {previous / name} to drop them.")


def _carry_probing(previous: Path, new: Path, repo_id: str | None = None, revision: str | None = None) -> None:
    """Copy the probing configs (:data:`~hf_txray.layout.EXTRA_CONFIGS`, added by ``hf-txray probe/ablate --export``)
    of the export `previous` into its replacement `new`, declared in its card: a re-export deleted them without a
    word, while a push of the new folder keeps the repo's copies."""
    held = _held_probing(previous)
    if not held:
        return
    tables = {}
    for name in held:
        # read where they lie: a damaged file was reported at its copy in the temporary folder (gone once the export
        # failed), with the advice to export again, which fails the same way
        try:
            tables[name] = read_config(previous, name)
        except ProfileFormatError as err:
            raise ProfileFormatError(
                f"The {name} config of the previous export in {previous} cannot be read ({err}), so it cannot "
                f"be kept in the new export. Delete {previous / name} (or the whole folder) and export again; "
                "write the probing results again with hf_txray.probing.save_probing (CLI: --export) if they are "
                "still wanted.") from err
        shutil.copytree(previous / name, new / name, ignore=unfinished_writes)  # not a killed write's files
    readme = new / "README.md"
    probing_card(readme, tables.get("probe_rankings"), tables.get("ablation"), repo_id, revision).save(readme)
    logger.info("Kept %s of the previous export in %s", ", ".join(held), previous)


def read_folder(directory: str | Path) -> tuple[dict[str, Profile], dict[str, TransferReport]]:
    """Rebuild the profiles (by stage) and reports (by name) of a folder in the dataset layout (written by
    :func:`save_to_disk`, or a saved profile or report).

    Raises:
        ProfileFormatError: the folder is not in the dataset layout, or was written by a newer hf_txray.
    """
    profiles, reports = read_parts(directory)
    return ({stage: Profile.from_parts(parts, source=directory) for stage, parts in profiles.items()},
            {name: TransferReport.from_parts(parts) for name, parts in reports.items()})


def remove_folder(directory: str | Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
