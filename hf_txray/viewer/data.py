"""Opening results for the viewer: :class:`ResultsView`, a results repo or folder with the indices the viewer needs
(per-stage neuron stats, per-row totals, example offsets), so that switching neuron or searching only slices arrays;
and the small table helpers the viewer's modules share.
"""

from __future__ import annotations

import collections
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import metrics
from ..architectures import neuron_label
from ..errors import ConfigurationError, IncompatibleProfilesError, ProfileFormatError, TXRayError
from ..export import check_report_of
from ..hub_io import REVISION_SEPARATOR, split_revision
from ..indices import whole_number
from ..io_utils import natural_key
from ..logging import get_logger, warnings_caught
from ..options import resolve_layer
from ..tables import MISSING, untested_unknown

if TYPE_CHECKING:
    from ..profile import Profile
    from ..report import TransferReport

logger = get_logger(__name__)

# floats in the viewer's tables are rounded to this many decimals, or to as many significant digits below 1 in
# magnitude (a win rate of 0.00255 or an activation of 2e-4 is not shown as 0)
DIGITS = 4
ALL_LAYERS = "all"
SOURCE_SEPARATOR = os.pathsep  # between several folders or repos in one source ("a:b" on Linux)


# ----- opening results -------------------------------------------------------------------------------------------
@dataclass
class ResultsView:
    """An opened results repo or folder, with the indices the viewer needs.

    Attributes:
        source (`str`): what was opened (repo id or folder).
        profiles (`dict[str, Profile]`): by stage.
        reports (`dict[str, TransferReport]`): by name (``"a->b"``).
    """

    source: str
    profiles: dict[str, "Profile"]
    reports: dict[str, "TransferReport"]
    probing: Any = None  # ProbingResults: the probe_rankings / ablation configs (both None when absent)
    _stats: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _totals: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    _vocab_index: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict, repr=False)
    _examples: dict[str, tuple[pd.DataFrame, np.ndarray]] = field(default_factory=dict, repr=False)
    _stat_columns: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _example_columns: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _derived: dict[tuple[str, str], "TransferReport | None"] = field(default_factory=dict, repr=False)
    _refused: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for stage, profile in self.profiles.items():
            stats = profile.neuron_stats()
            self._stats[stage] = stats
            self._stat_columns[stage] = {c: stats[c].to_numpy() for c in stats.columns if c not in ("layer", "neuron")}
            for ft, table in profile.tables.items():
                self._totals[stage, ft] = metrics.row_totals(table.rows, table.mass, profile.num_rows)
            ex = profile.examples
            position = np.full(max(profile.layers, default=0) + 1, -1, dtype=np.int64)
            position[profile.layers] = np.arange(len(profile.layers))
            rows = (position[ex["layer"].to_numpy(np.int64)] * profile.num_neurons
                    + ex["neuron"].to_numpy(np.int64)) if len(ex) else np.zeros(0, np.int64)
            order = np.lexsort((ex["rank"].to_numpy(), rows)) if len(ex) else np.zeros(0, np.int64)
            sorted_ex = ex.iloc[order].reset_index(drop=True)
            offsets = np.searchsorted(rows[order], np.arange(profile.num_rows + 1))
            self._examples[stage] = (sorted_ex, offsets)
            self._example_columns[stage] = {c: sorted_ex[c].to_numpy() for c in sorted_ex.columns}

    # ----- shape -----------------------------------------------------------------------------------------------
    @property
    def stages(self) -> list[str]:
        """Stages with a profile, then stages only known from a report."""
        names = list(self.profiles)
        for report in self.reports.values():
            for stage in (report.meta.stage_a, report.meta.stage_b):
                if stage not in names:
                    names.append(stage)
        return names

    @property
    def report_names(self) -> list[str]:
        return list(self.reports)

    def _first_meta(self) -> Any:
        if self.profiles:
            return next(iter(self.profiles.values())).meta
        return next(iter(self.reports.values())).meta

    @property
    def layers(self) -> list[int]:
        """Every layer of these results, sorted: stages may have been profiled on different layers (a profile's
        tables are read with its own layers: :meth:`row`)."""
        metas = [p.meta for p in self.profiles.values()] + [r.meta for r in self.reports.values()]
        return sorted({int(layer) for meta in metas for layer in meta.layers})

    @property
    def num_neurons(self) -> int:
        return int(self._first_meta().num_neurons)

    @property
    def feature_types(self) -> list[str]:
        return list(self._first_meta().feature_types)

    @property
    def feature_kinds(self) -> dict[str, str]:
        """Each feature type's kind as the results recorded it (``meta.feature_kinds``; the first result's where
        several did), which :func:`~hf_txray.features.is_tag_feature` and its kin read before this process's
        registry."""
        return self._recorded("feature_kinds")

    @property
    def feature_orders(self) -> dict[str, float]:
        """Each feature type's reading order as the results recorded it (``meta.feature_orders``; the first
        result's where several did), which :func:`~hf_txray.features.reading_order` and
        :func:`~hf_txray.features.default_feature_type` read before this process's registry."""
        return self._recorded("feature_orders")

    def _recorded(self, field: str) -> dict:
        """The union of every result's `field` mapping of feature types (the first result's value where several
        recorded one)."""
        metas = [p.meta for p in self.profiles.values()] + [r.meta for r in self.reports.values()]
        merged: dict = {}
        for meta in reversed(metas):
            merged.update(getattr(meta, field))
        return merged

    @property
    def expert_width(self) -> int | None:
        """Units per expert for mixture-of-experts profiles (neuron = expert x width + unit), else None."""
        meta = self._first_meta()
        return (getattr(meta, "config", None) or getattr(meta, "experts", None) or {}).get("expert_width")

    def neuron_label(self, neuron: int) -> str:
        """The neuron's label (:func:`~hf_txray.architectures.format_neuron`: expert and unit, shared or routed)."""
        meta = self._first_meta()  # a profile's config, or the numbering a report kept
        return neuron_label(neuron, getattr(meta, "config", None) or getattr(meta, "experts", None) or {})

    # ----- lookups ---------------------------------------------------------------------------------------------
    def profile(self, stage: str) -> "Profile":
        if stage not in self.profiles:
            known = ", ".join(self.profiles) or "none"
            raise ConfigurationError(f"No profile for stage {stage!r} in these results (profiles: {known}).")
        return self.profiles[stage]

    def report(self, name: str) -> "TransferReport":
        if not self.reports:
            raise ConfigurationError("These results hold no transfer report: compare two stages with "
                                     "hf_txray.compare and push the report with them.")
        if not name:
            raise ConfigurationError("Pick a transfer report (a stage pair).")
        if name not in self.reports:
            known = ", ".join(self.reports) or "none"
            raise ConfigurationError(f"No transfer report {name!r} in these results (reports: {known}).")
        return self.reports[name]

    def report_for(self, stage_a: str, stage_b: str) -> "TransferReport | None":
        """The report of the pair: a stored one, else one derived from the two profiles with
        :func:`hf_txray.compare` (no per-neuron test; cached), so the viewer never recomputes what a report owns.
        None when a stage has no profile and no stored report covers the pair, or when ``compare`` refuses the two
        profiles (different top_k, site, layers...: :meth:`comparison_refused` says why)."""
        for report in self.reports.values():
            if (report.meta.stage_a, report.meta.stage_b) == (stage_a, stage_b):
                return report
        if stage_a not in self.profiles or stage_b not in self.profiles:
            return None
        if (stage_a, stage_b) not in self._derived:
            import warnings

            from ..report import compare

            a, b = (_with_feature_types(self.profiles[s], self.shared_feature_types(stage_a, stage_b))
                    for s in (stage_a, stage_b))
            with warnings_caught():  # size and noise warnings belong to a report the user asked for
                warnings.simplefilter("ignore")
                try:
                    self._derived[stage_a, stage_b] = compare(a, b, test=False) if a.meta.feature_types else None
                except IncompatibleProfilesError as err:  # each stage is still shown on its own
                    self._derived[stage_a, stage_b] = None
                    self._refused[stage_a, stage_b] = str(err)
        return self._derived[stage_a, stage_b]

    def pair_report(self, stage_a: str, stage_b: str, layer: int) -> "TransferReport | None":
        """:meth:`report_for` when it holds `layer`, else None: a stage known only from reports is read on the layers
        of all of them (:meth:`stage_layers`), so the pair's own report may lack a layer both stages are shown on
        (the Neuron tab of 'first' (layer 0) beside 'late', known from 'first->late' (layer 0) and 'last->late'
        (layer 1), failed on layer 1 with "Layer 1 was not profiled in report 'first->late'")."""
        report = self.report_for(stage_a, stage_b)
        return report if report is not None and layer in report.meta.layers else None

    def reversed_report(self, stage_a: str, stage_b: str) -> "TransferReport | None":
        """The stored report of the pair the other way round (`stage_b` -> `stage_a`) when no report of `stage_a` ->
        `stage_b` is at hand (none stored, and a stage without a profile to derive one from), else None: what the
        Neuron tab names, and reads, for a pair picked in the other order."""
        if stage_a == stage_b or self.report_for(stage_a, stage_b) is not None or \
                all(s in self.profiles for s in (stage_a, stage_b)):
            return None
        return self.report_for(stage_b, stage_a)

    def comparison_refused(self, stage_a: str, stage_b: str) -> str | None:
        """Why ``compare`` refuses the two stages' profiles (``compare``'s own message: different top_k, site,
        layers...), or None when they compare (or have a stored report)."""
        self.report_for(stage_a, stage_b)
        return self._refused.get((stage_a, stage_b))

    def shared_feature_types(self, stage_a: str, stage_b: str) -> list[str]:
        """The feature types both profiles hold, in stage A's order: a derived report compares those."""
        theirs = set(self.profiles[stage_b].meta.feature_types)
        return [ft for ft in self.profiles[stage_a].meta.feature_types if ft in theirs]

    def check_neuron(self, layer: Any, neuron: Any) -> tuple[int, int]:
        """`(layer, neuron)` as ints, or a :class:`ConfigurationError` saying what is valid: indices by
        :func:`~hf_txray.indices.whole_number` (a fraction such as 3.7 is refused, not read as another neuron; a
        text from a box or a link is read as a number first), the layer one of :attr:`layers` or a negative index
        counted from the last of them, as the viewer's layer filters read it (:func:`chosen_layer`)."""
        layer_i, neuron_i = read_index(layer, "layer"), read_index(neuron, "neuron")
        if layer_i is None or neuron_i is None:
            raise ConfigurationError(f"Pick a layer and a neuron number (got layer {layer!r}, neuron {neuron!r}).")
        # "Layer -1 is not in these results" refused the last layer that every layer filter of the viewer takes, and
        # said neither that nor what to type
        layer_i = resolve_layer(self.layers, layer_i, "is not a layer of these results")
        if not 0 <= neuron_i < self.num_neurons:
            raise ConfigurationError(f"Neuron {neuron_i} is out of range: layers have {self.num_neurons} neurons "
                                     f"(0 to {self.num_neurons - 1}).")
        return layer_i, neuron_i

    def stage_report(self, stage: str, layer: int | None = None, beside: Sequence[str] = ()) -> "TransferReport | None":
        """The report that a stage with no profile is read from (a stage only known from a report: its credits,
        masses and lengths are that report's), else None (a profiled stage, a stage of neither, or one whose reports
        hold none of `layer`). Of the reports that cover `stage` (and hold `layer`, when given), the one that
        compares it with a stage of `beside` (the other stage of the pair on view), else the first: a stage known
        from two reports of different layers was read with the first one's layers, and called "not profiled" on the
        other's (helper 451).

        Args:
            stage (`str`): the stage.
            layer (`int`, *optional*): a layer the report must hold (any, when None).
            beside (`Sequence[str]`, *optional*, defaults to `()`): the stages `stage` is viewed beside; a report that
                compares it with one of them comes first.
        """
        if stage in self.profiles:
            return None
        covering = [r for r in self.reports.values() if stage in (r.meta.stage_a, r.meta.stage_b)
                    and (layer is None or layer in r.meta.layers)]
        paired = [r for r in covering if ({r.meta.stage_a, r.meta.stage_b} - {stage}) & set(beside)]
        return next(iter(paired + covering), None)

    def profile_missing(self, stage: str, layer: int | None = None, beside: Sequence[str] = ()) -> str | None:
        """``"stage 'c' has no profile in these results (it is known only from report 'b->c')"`` for a stage only
        known from a report (the one :meth:`stage_report` reads for `layer` beside `beside`), else None."""
        report = self.stage_report(stage, layer, beside) or self.stage_report(stage, None, beside)
        return None if report is None else (f"stage {stage!r} has no profile in these results (it is known only "
                                            f"from report {report.name!r})")

    def stage_layers(self, stage: str) -> list[int] | None:
        """The layers `stage` was profiled on: its profile's, else those of the reports that cover it (a stage only
        known from reports, sorted: :meth:`stage_report` reads each layer from a report that holds it); None for a
        stage of neither."""
        if stage in self.profiles:
            return [int(layer) for layer in self.profiles[stage].meta.layers]
        layers = [int(layer) for r in self.reports.values() if stage in (r.meta.stage_a, r.meta.stage_b)
                  for layer in r.meta.layers]
        return sorted(set(layers)) or None

    def layer_missing(self, stage: str, layer: int) -> str | None:
        """``"layer L was not profiled at stage 'x' (its layers: [...])"`` when `stage` lacks `layer` (stages may
        have been profiled on different layers: :attr:`layers` is their union), else None (it holds the layer, or
        is no stage of these results)."""
        layers = self.stage_layers(stage)
        if layers is None or layer in layers:
            return None
        return f"layer {layer} was not profiled at stage {stage!r} (its layers: {layers})"

    def stages_with_layer(self, layer: int, stages: Sequence[str]) -> list[str]:
        """`stages` (each once, in order) but those that lack `layer` (:meth:`layer_missing`): what the neuron page
        shows of a layer one stage of the pair was not profiled on, saying so for the other
        (:meth:`layer_missing`); the neuron page failed there with ``Profile.feature_stats``' "Layer 1 was not
        profiled; its layers: [0]", which named no stage.

        Raises:
            ConfigurationError: every stage of `stages` lacks the layer (nothing to show), naming each with its
                layers and the stages that hold it.
        """
        stages = list(dict.fromkeys(stages))
        held = [s for s in stages if self.layer_missing(s, layer) is None]
        if stages and not held:
            notes = "; ".join(str(self.layer_missing(s, layer)) for s in stages)
            holders = [s for s in self.stages if layer in (self.stage_layers(s) or ())]
            whose = "its" if len(stages) == 1 else "their"
            raise ConfigurationError(f"{notes[0].upper()}{notes[1:]}: pick one of {whose} layers, or "
                                     + (f"a stage profiled on layer {layer} ({', '.join(map(repr, holders))})."
                                        if holders else f"another layer ({self.layers})."))
        return held

    def row(self, layer: int, neuron: int, stage: str | None = None) -> int:
        """The row of (layer, neuron) in the tables of `stage` (its profile's layers), or of the first profile or
        report when `stage` is None.

        Raises:
            ConfigurationError: the layer was not profiled at that stage.
        """
        meta = self._first_meta() if stage is None else self.profile(stage).meta
        return layout_row(list(meta.layers), int(meta.num_neurons), layer, neuron,
                          f"stage {meta.stage!r}" if stage is not None else "these results")

    def report_row(self, report: "TransferReport", layer: int, neuron: int) -> int:
        """The row of (layer, neuron) in `report.neurons` (the report's own layers)."""
        return layout_row(list(report.meta.layers), int(report.meta.num_neurons), layer, neuron,
                          f"report {report.name!r}")

    def stats(self, stage: str) -> pd.DataFrame:
        """``Profile.neuron_stats()`` of a stage (computed once)."""
        self.profile(stage)
        return self._stats[stage]

    def row_totals(self, stage: str, feature_type: str) -> np.ndarray:
        return self._totals[stage, self._feature(stage, feature_type)]

    def vocab_index(self, stage: str, feature_type: str) -> dict[str, int]:
        key = (stage, self._feature(stage, feature_type))
        if key not in self._vocab_index:
            self._vocab_index[key] = {f: i for i, f in enumerate(self.profile(stage).tables[key[1]].vocab)}
        return self._vocab_index[key]

    def examples(self, stage: str, layer: int, neuron: int) -> pd.DataFrame:
        """The neuron's top examples in rank order (same rows as ``Profile.top_examples``)."""
        self.profile(stage)
        frame, offsets = self._examples[stage]
        row = self.row(layer, neuron, stage)
        return frame.iloc[offsets[row]:offsets[row + 1]].reset_index(drop=True)

    def stat_row(self, stage: str, layer: int, neuron: int) -> dict[str, Any]:
        """One neuron's ``neuron_stats()`` row of a stage as a dict of Python values (without layer and neuron)."""
        row = self.row(layer, neuron, stage)
        return {c: (v[row].item() if hasattr(v[row], "item") else v[row]) for c, v in self._stat_columns[stage].items()}

    def example_columns(self, stage: str, layer: int, neuron: int) -> dict[str, np.ndarray]:
        """The neuron's top examples (rank order) as columns of arrays: cheaper than :meth:`examples`."""
        self.profile(stage)
        _, offsets = self._examples[stage]
        row = self.row(layer, neuron, stage)
        return {c: v[offsets[row]:offsets[row + 1]] for c, v in self._example_columns[stage].items()}

    def _feature(self, stage: str, feature_type: str) -> str:
        profile = self.profile(stage)
        if feature_type not in profile.tables:
            raise ConfigurationError(f"Feature type {feature_type!r} was not profiled; available: "
                                     f"{', '.join(profile.feature_types)}.")
        return feature_type


def layout_row(layers: list[int], num_neurons: int, layer: int, neuron: int, where: str) -> int:
    """The row of (layer, neuron) in tables laid out layer by layer over `layers` (`where` names them in the error)."""
    if layer not in layers:
        raise ConfigurationError(f"Layer {layer} was not profiled in {where} (its layers: {layers}): pick one of "
                                 "those, or a stage profiled on this layer.")
    if not 0 <= neuron < num_neurons:
        raise ConfigurationError(f"Neuron {neuron} is out of range in {where}: its layers have {num_neurons} neurons.")
    return layers.index(layer) * num_neurons + neuron


def artifact_folders(path: Path, depth: int = 3) -> tuple[dict, dict]:
    """The profiles and transfer reports saved with ``save_pretrained`` in `path` or in its sub-folders (up to `depth`
    levels: what ``analyze``/``compare`` write, and the Trainer's ``output_dir/txray/{profiles,reports}/...``), read
    with their own ``from_pretrained``; by stage and by report name.

    Raises:
        ConfigurationError: two profiles of the same stage, or two reports of the same stage pair.
        ProfileFormatError: a profile or report saved there cannot be read (damaged, of an older or newer format),
            rather than leaving its stage out of the viewer without a word.
    """
    from ..artifact import LEGACY_MARKERS, read_header
    from ..profile import Profile
    from ..report import TransferReport

    profiles: dict[str, Profile] = {}
    reports: dict[str, TransferReport] = {}
    level, seen = [path], []
    for _ in range(depth + 1):
        seen += level
        level = [d for f in level for d in sorted(f.iterdir(), key=lambda d: natural_key(d.name))  # step-3, step-10
                 if d.is_dir() and not d.name.startswith((".", "_"))]
    classes = {cls.artifact_type: cls for cls in (Profile, TransferReport)}
    for folder in seen:
        header = read_header(folder)
        # the old formats' markers name their type in words ("transfer report"), refused as such by from_pretrained
        legacy = [LEGACY_MARKERS[m].replace(" ", "_") for m in LEGACY_MARKERS if (folder / m).is_file()]
        kind = classes.get((header or {}).get("artifact") or (legacy[0] if legacy and header is None else ""))
        if kind is None and (header or {}).get("damaged") and (folder / "meta").is_dir():
            kind = Profile  # a header that cannot be read, over the tables of a profile or report: said as damaged
        if kind is None:  # another artifact (a pruning plan, a probe), a results folder, or any other folder
            continue
        try:
            artifact = kind.from_pretrained(folder)
        except TXRayError as err:
            what = "artifact" if (header or {}).get("damaged") else kind.artifact_type.replace("_", " ")
            raise ProfileFormatError(f"{folder} (under {path}) holds a saved {what} that cannot be read, so it would "
                                     f"be missing from the viewer: {err}") from None
        store = profiles if kind is Profile else reports
        name = artifact.stage if kind is Profile else artifact.name
        if name in store:
            raise ConfigurationError(f"Two {'profiles of stage' if kind is Profile else 'reports'} {name!r} "
                                     f"under {path}: open the folders one by one.")
        store[name] = artifact
    return profiles, reports


# Artifacts that, saved alone (``ProbingResult.save_pretrained``, ``hf-txray probe --out``; an AblationCurve's), hold
# only the probing configs: the Probing tab reads them beside the profiles of the model they are of
PROBING_ARTIFACTS = {"probing_result": "probing result (ProbingResult.save_pretrained, `hf-txray probe --out`)",
                     "ablation_curve": "ablation curve (AblationCurve.save_pretrained, `hf-txray ablate --out`)"}


def probing_folder(path: Path) -> str | None:
    """The artifact type of a probing result or ablation curve saved alone in `path` (:data:`PROBING_ARTIFACTS`), else
    None."""
    from ..artifact import artifact_type_of

    kind = artifact_type_of(path) if path.is_dir() else None
    return kind if kind in PROBING_ARTIFACTS else None


def _load_folder(source: str, path: Path) -> tuple[dict, dict]:
    """A results folder (``meta/``, written by ``save_to_disk``), else the profile and report folders in `path`; a
    probing result or ablation curve saved alone (:func:`probing_folder`) holds neither: it feeds the Probing tab
    (:func:`_load_probing`) of the results opened with it."""
    from ..hub import load

    if probing_folder(path):
        return {}, {}
    if not (path / "meta").is_dir():
        profiles, reports = artifact_folders(path)
        if profiles or reports:
            return profiles, reports
        raise ProfileFormatError(f"{source} is not an hf_txray results folder: it has no meta/ config, and no profile "
                                 "or report folder (save_pretrained: what analyze, compare and the Trainer write) "
                                 "is in it. Write one with hf_txray.save_to_disk(folder, profiles, reports) or "
                                 "`hf-txray push`.")
    try:
        return load(path)
    except TXRayError as err:
        raise ProfileFormatError(f"{source} is an incomplete hf_txray results folder: {err}") from None
    except Exception as err:  # a corrupt parquet file, a missing column...
        raise ProfileFormatError(f"{source} could not be read as hf_txray results "
                                 f"({type(err).__name__}: {err}).") from None


def _load_one(source: str, token: bool | None = None) -> tuple[dict, dict]:
    """``hf_txray.load`` (or the artifact folders) with messages a viewer user can act on; Hub repos are read with
    `token` (None: ``HF_TOKEN`` or the saved login; False: anonymously)."""
    from ..hub import load
    from ..hub_io import check_public_repo, empty_repo_note, other_branches

    source, revision = split_revision(source)
    path = Path(source).expanduser()
    if revision is not None and path.exists():
        raise ConfigurationError(f"{source}{REVISION_SEPARATOR}{revision}: {source} is a local path, which has no "
                                 "revision; a revision is of a Hub repo (owner/name@revision).")
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{source} is a file; open a results folder (written by hf_txray.save_to_disk), a "
                                 "profile or report folder, or a Hub dataset repo id.")
    if path.is_dir():
        return _load_folder(source, path)
    if token is False:  # a visitor's source on a Space: the Hub's answer for it, never a private repo in the cache
        check_public_repo(source, revision)
    try:
        return load(source, revision=revision, token=token)
    except ProfileFormatError as err:
        if "no meta" in str(err):
            # results pushed to a branch (push_to_hub(..., revision="exp")) are not on the default one: say where
            at, branches = f" at {revision!r}" if revision else "", [] if revision else other_branches(source, token)
            where = (f"; its other branch(es) {', '.join(map(repr, branches))} may hold them: open "
                     f"{source}{REVISION_SEPARATOR}{branches[0]}" if branches else "")
            empty = "" if branches else empty_repo_note(source, revision, token)
            raise ProfileFormatError(f"The Hub dataset {source!r}{at} is not an hf_txray results dataset: it has no "
                                     f"meta/ config (push results with hf_txray.push_to_hub){where}.{empty}") from None
        raise ProfileFormatError(f"The Hub dataset {source!r} holds incomplete hf_txray results: {err}") from None


def split_sources(source: str | Sequence[str]) -> list[str]:
    """The parts of a source naming several folders or repos, separated by :data:`SOURCE_SEPARATOR`; a list or tuple
    of sources (``hf-txray view a b``) has each of its items split on its own, never joined: joined, ``a`` and ``b``
    were read as the folder ``a:b`` where one exists. An existing
    folder is one part, even with the separator in its name (``runs/12:30``, a time): split, it was read as
    ``runs/12`` and ``30``, and refused with "No folder '30'" (or opened as two other folders where those exist).
    So is one of several parts (``hf-txray view runs/12:30 other``, which the CLI joins into one source): the
    longest run of parts that names an existing path is taken as one folder."""
    if not isinstance(source, (str, os.PathLike)):
        return [part for item in source for part in split_sources(item)]
    source = str(source).strip()
    # Hub addresses as copied from the browser or huggingface_hub (https://huggingface.co/datasets/owner/name,
    # hf://datasets/owner/name@rev) hold a ":" themselves: split at it, such a URL was read as the folder "https"
    # (helper 250). Each is read as the repo id it names, owner/name[@revision].
    repos: list[str] = []
    masked = _HUB_ADDRESS.sub(lambda m: repos.append(hub_address_source(m.group(0))) or f"\0{len(repos) - 1}\0",
                              source)
    pieces, parts = masked.split(SOURCE_SEPARATOR), []
    while pieces:
        end = _existing_run(pieces)
        parts.append(SOURCE_SEPARATOR.join(pieces[:end]))
        pieces = pieces[end:]
    return [re.sub(r"\0(\d+)\0", lambda m: repos[int(m.group(1))], part).strip() for part in parts if part.strip()]


def strip_source(source: str | Sequence[str] | None) -> str | tuple[str, ...]:
    """`source` without surrounding blanks: a string, or a list of sources as a tuple of its non-blank items (kept
    apart, :func:`split_sources`; hashable, for the caches keyed by source)."""
    if source is None or isinstance(source, (str, os.PathLike)):
        return str(source or "").strip()
    return tuple(item for item in (str(s).strip() for s in source) if item)


def source_text(source: str | Sequence[str]) -> str:
    """`source` as one line of text (a list of sources joined by :data:`SOURCE_SEPARATOR`), for messages and the
    viewer's text box."""
    return source if isinstance(source, str) else SOURCE_SEPARATOR.join(strip_source(source))


def _existing_run(pieces: list[str]) -> int:
    """How many of the first `pieces` of a split source, joined by the separator, name an existing path (the most
    that do; 1 when none do): a folder with the separator in its name, given beside others."""
    for end in range(len(pieces), 1, -1):
        joined = SOURCE_SEPARATOR.join(pieces[:end]).strip()
        if "\0" not in joined and joined and Path(joined).expanduser().exists():
            return end
    return 1


# A URL (scheme://...) up to the next space or source separator (a host may name its port: host:8080/...)
_HUB_ADDRESS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/\s]*/)?[^\s" + re.escape(SOURCE_SEPARATOR) + "]*")
# What it may be: hf://datasets/owner/name[@revision], or http(s)://host/datasets/owner/name[/tree/revision], with
# at most a trailing slash
_DATASET_ADDRESS = re.compile(r"(?:hf://|https?://([^/\s]+)/)datasets/([^/@\s]+/[^/@\s]+?)"
                              r"(?:@([^/\s]+)|/tree/([^/\s]+))?/?")
HUB_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")  # and the host of huggingface_hub's endpoint


def hub_address_source(address: str) -> str:
    """The source ``owner/name`` (``owner/name@revision``) that the address of a Hub dataset repo names: its page's
    URL (``https://huggingface.co/datasets/owner/name``, at a revision ``.../tree/revision``) or its ``hf://`` path
    (``hf://datasets/owner/name@revision``).

    Raises:
        ConfigurationError: a URL that is not the address of a Hub dataset repo (a model's page, a file in a repo).
    """
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    match = _DATASET_ADDRESS.fullmatch(address.strip())
    if match is None:
        raise ConfigurationError(f"{address!r} is not the address of a Hub dataset repo: write its repo id, "
                                 "owner/name (or owner/name@revision), e.g. my-user/minilm-txray.")
    host, repo, revision = match.group(1), match.group(2), match.group(3) or match.group(4)
    endpoint = urlsplit(constants.ENDPOINT).netloc
    if host is not None and host.lower() not in (*HUB_HOSTS, endpoint.lower()):  # a repo of that id elsewhere
        raise ConfigurationError(f"{address!r} is on {host}, not on the Hub this viewer reads ({constants.ENDPOINT}): "
                                 "a repo of the same id there may hold other files. Set HF_ENDPOINT to read that "
                                 f"host, or write the repo id, {repo}.")
    return repo + (f"{REVISION_SEPARATOR}{revision}" if revision else "")


def _load_results(source: str | Sequence[str], token: bool | None = None) -> tuple[dict, dict]:
    """The profiles and reports of every part of `source`, merged (a stage or report found twice is an error, and
    so is a report opened beside a profile of its stage that it was not computed from: its Hellinger distances and
    counts would be shown beside another profile's distributions)."""
    profiles: dict = {}
    reports: dict = {}
    for part in split_sources(source):
        more_profiles, more_reports = _load_one(part, token)
        for name, store, more in (("stage", profiles, more_profiles), ("report", reports, more_reports)):
            twice = sorted(set(store) & set(more))
            if twice:
                raise ConfigurationError(f"The {name} {twice[0]!r} is in more than one of {source_text(source)!r}: "
                                         "open them one by one.")
            store.update(more)
    for report in reports.values():  # a report opened beside a profile of its stage must be of that profile
        for side, stage in (("a", report.meta.stage_a), ("b", report.meta.stage_b)):
            if stage in profiles:
                check_report_of(report, profiles[stage], side)
    return profiles, reports


class RecentlyUsed:
    """The viewer's in-memory caches (results opened, figures drawn): the `kept` most recently used entries, behind
    one lock, the least recently used dropped first.

    Args:
        kept (`int`): entries kept.
    """

    def __init__(self, kept: int):
        self.kept = kept
        self._entries: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()
        self.lock = threading.RLock()  # held across a get and a put by callers that compute between them

    def get(self, key: Any) -> Any:
        """The entry of `key` (now the most recently used), or None."""
        with self.lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> Any:
        """Keep `value` for `key` as the most recently used entry; returns `value`."""
        with self.lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.kept:
                self._entries.popitem(last=False)
            return value

    def clear(self) -> None:
        with self.lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


OPENED_KEPT = 4  # the last few sources opened stay in memory
_opened = RecentlyUsed(OPENED_KEPT)


def open_results(source: str | Sequence[str], reload: bool = False, token: bool | None = None) -> ResultsView:
    """Open a results repo id or export folder, or profile and report folders (what ``analyze``, ``compare`` and the
    Trainer write); several of them joined by :data:`SOURCE_SEPARATOR` open as one (cached: the last few sources stay
    in memory).

    Args:
        source (`str` or `Sequence[str]`): the repo id, folder, or several joined by :data:`SOURCE_SEPARATOR`, or a
            list of them (each item split on its own: :func:`split_sources`).
        reload (`bool`, *optional*, defaults to `False`): read `source` again even when it is in memory (the
            viewer's Open button: results saved or pushed again since showed their old numbers).
        token (`bool`, *optional*): `False` reads Hub repos anonymously (a visitor's source on a public Space,
            :func:`hf_txray.viewer.app.source_token`); None (the default) with ``HF_TOKEN`` or the saved login.

    Raises:
        TXRayError: a readable message for an empty source, an unknown repo, a repo or folder that is not an
            hf_txray results dataset, or one missing configs.
    """
    source = strip_source(source)
    if not source:
        raise ConfigurationError("Enter a Hub dataset repo id (e.g. my-user/minilm-txray) or a local results folder.")
    key = (source, token)  # what was read with a token is never handed to a reader without one
    view = None if reload else _opened.get(key)
    if view is not None:
        return view
    profiles, reports = _load_results(source, token)
    if not profiles and not reports:
        _refuse_probing_alone(source)
        raise ProfileFormatError(f"{source_text(source)} holds no profile and no transfer report.")
    probing = _load_probing(source, token)
    _check_probed_model(probing, profiles, reports, source)
    return _opened.put(key, ResultsView(source, profiles, reports, probing))


def _refuse_probing_alone(source: str | Sequence[str]) -> None:
    """Raise, for a `source` whose parts are probing results or ablation curves saved alone, what they are and how to
    open them: the viewer shows probes beside the neurons of the model they probed, whose profiles they lack."""
    parts = [part for part in split_sources(source) if probing_folder(Path(part).expanduser())]
    if not parts:
        return
    from ..tables import shell_command, shell_path

    kind = PROBING_ARTIFACTS[probing_folder(Path(parts[0]).expanduser())]
    raise ConfigurationError(
        f"{parts[0]} is a saved {kind}: it holds no profile or transfer report, and the viewer shows probes beside the "
        f"neurons of the model they probed. Open it with that model's results: `hf-txray view RESULTS "
        f"{shell_command(shell_path(parts[0]))}` (RESULTS: an export, profile or report folder, or a Hub repo; in the viewer's box "
        f"RESULTS{SOURCE_SEPARATOR}{parts[0]}), or add it to the results with hf_txray.probing.save_probing(RESULTS, "
        f"probes=[hf_txray.probing.ProbingResult.from_pretrained({parts[0]!r})]) (CLI: `hf-txray probe ... --export "
        "RESULTS`) and open RESULTS.")


def _check_probed_model(probing: Any, profiles: dict, reports: dict, source: str | Sequence[str]) -> None:
    """Refuse (Hub ids) or warn about (local names) probing results of a model that the opened profiles and reports
    are not of (:func:`~hf_txray.hub_io.check_probed_models`): the Probing tab and the Neuron tab would show its
    neurons' ranks as those of the model profiled."""
    from ..hub_io import check_probed_models

    probed = {str(m) for frame in (probing.probe_rankings, probing.ablation) if frame is not None
              for m in frame.get("model_id", pd.Series(dtype=object)).dropna()}
    models = {p.meta.model_id for p in profiles.values()} | {m for r in reports.values()
                                                            for m in (r.meta.model_a, r.meta.model_b)}
    check_probed_models(probed, models, lambda other: (
        f"The probing results opened with {source_text(source)} are of {', '.join(map(repr, other))}, not of the "
        f"model of its profiles and reports ({', '.join(map(repr, sorted(m for m in models if m)))})."),
        "Open them with that model's results.")


def forget_opened() -> None:
    """Drop every source kept in memory by :func:`open_results` (the next opening reads it again)."""
    _opened.clear()


def _load_probing(source: str | Sequence[str], token: bool | None = None) -> Any:
    """The probing configs of every part of `source` that has them (a results folder or repo, or a probing result or
    ablation curve saved alone: :func:`probing_folder`), each config's rows of all parts together;
    ``ProbingResults(None, None)`` when none has (or they are unreadable: logged). Only the first part's were read, so
    a probe opened beside results that held probing configs of their own was left out without a word.

    Raises:
        ConfigurationError: a probe or ablation run of one name in two parts.
    """
    from ..probing.results import ProbingResults, load_probing

    found: list[tuple[str, Any]] = []
    for part in split_sources(source):
        folder = Path(part).expanduser()
        if folder.is_dir() and not (folder / "meta").is_dir() and not probing_folder(folder):
            continue  # profile and report folders hold no probing configs
        try:
            repo, revision = split_revision(part)
            results = load_probing(repo, revision=revision, token=token)
        except Exception as err:  # TX-Ray results still open without their probing configs
            logger.warning("Probing results of %s not read: %s", part, err)
            continue
        if not results.empty:
            found.append((part, results))
    if len(found) < 2:
        return found[0][1] if found else ProbingResults(None, None)
    merged = []
    for config, key in zip(ProbingResults._fields, ("probe", "ablation")):
        frames = [(part, getattr(results, config)) for part, results in found if getattr(results, config) is not None]
        seen: dict[str, str] = {}
        for part, frame in frames:
            for name in dict.fromkeys(frame[key]):
                if name in seen:
                    raise ConfigurationError(f"The {key} run {name!r} is in both {seen[name]} and {part} (opened as "
                                             f"{source_text(source)!r}): open them one by one.")
                seen[name] = part
        merged.append(pd.concat([f for _, f in frames], ignore_index=True) if frames else None)
    return ProbingResults(*merged)


def _with_feature_types(profile: "Profile", feature_types: list[str]) -> "Profile":
    """A shallow copy of `profile` that holds only `feature_types` (the viewer compares stages profiled with
    different feature types on those they share)."""
    if list(profile.meta.feature_types) == feature_types:
        return profile
    import copy
    import dataclasses

    view = copy.copy(profile)
    counts = profile.meta.num_feature_texts  # {}: not recorded
    view.meta = dataclasses.replace(profile.meta, feature_types=list(feature_types),
                                    num_feature_texts={ft: counts[ft] for ft in feature_types if ft in counts})
    view.tables = {ft: profile.tables[ft] for ft in feature_types}
    return view


# ----- table helpers -----------------------------------------------------------------------------------------------
def display_values(values: Any) -> np.ndarray:
    """Floats as the viewer shows them (see :data:`DIGITS`), as a float64 array."""
    array = np.asarray(values, dtype=np.float64)
    out = np.round(array, DIGITS)
    small = np.isfinite(array) & (np.abs(array) < 1) & (array != 0)
    if small.any():  # vectorised: a search rounds every neuron's value
        x = array[small]
        decimals = np.clip(DIGITS - 1 - np.floor(np.log10(np.abs(x))), DIGITS, 300)
        scale = 10.0 ** decimals
        out[small] = np.round(x * scale) / scale
    return out


def display_value(value: float) -> float:
    """One float as the viewer shows it (see :data:`DIGITS`)."""
    return float(display_values(np.atleast_1d(float(value)))[0])


def rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its float columns as the viewer shows them (:func:`display_values`)."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = display_values(frame[column].to_numpy())
    return frame.reset_index(drop=True)


def read_index(value: Any, what: str) -> int | None:
    """A layer or neuron number as the viewer reads it from a box, a link or a call: a text read as a number first,
    then :func:`~hf_txray.indices.whole_number` (a whole float such as 3.0 taken, a fraction such as 3.7 refused, not
    read as another index); None where nothing is given (None, an empty text, a text that is no number).

    Raises:
        ConfigurationError: a fraction, a bool, inf or NaN (``"The <what> number must hold whole numbers..."``), or
            several numbers (a list, an array: its first was read as the one, without a word).
    """
    if isinstance(value, str):
        try:
            value = float(value) if value.strip() else None
        except ValueError:
            value = None
    return None if value is None else whole_number(value, f"The {what} number")


def chosen_layer(layer: Any, layers: Sequence[int] | None = None, where: str = "this table") -> int | None:
    """A layer filter's choice: None for every layer (None, an empty text or :data:`ALL_LAYERS`), else the layer as
    :func:`read_index` reads it (``int()`` read layer 1.7 as layer 1, and True as 1: helper 395), and, where `layers`
    (those of the table filtered) are given, one of them: a negative index counted from the last, as the Transfer
    table and a probe's top neurons read it (:func:`~hf_txray.options.resolve_layer`); `where` names what has those
    layers in the refusal (``"report 'a->b'"``, ``"stage 'a'"``: stages may have been profiled on different layers,
    and "is not a layer of this table" named neither).

    Raises:
        ConfigurationError: a fraction, a bool, a text that is no layer, or a layer not among `layers`.
    """
    if layer is None or isinstance(layer, str) and layer in ("", ALL_LAYERS):  # (`in` on an array raised)
        return None
    index = read_index(layer, "layer")
    if index is None:
        raise ConfigurationError(f"Pick a layer, or {ALL_LAYERS!r} for every layer (got {layer!r}).")
    return index if layers is None else resolve_layer(layers, index, f"is not a layer of {where}")


def layer_filter(frame: pd.DataFrame, layer: Any, layers: Sequence[int] | None = None,
                 where: str = "this table") -> pd.DataFrame:
    """The rows of `frame` in the chosen layer (:func:`chosen_layer`, among `layers` where given: -1 the last of
    them, a layer not among them refused, naming `where`; it listed no row), all of them for every layer."""
    chosen = chosen_layer(layer, layers, where)
    return frame if chosen is None else frame[frame["layer"] == chosen]


def missing_shown(value: Any) -> Any:
    """A table (`value`, a DataFrame; anything else is returned as it is) as the viewer's UI shows it: a missing
    number (NaN: the Hellinger distance of a lost neuron, the p-value of an untested one) or value (None) drawn as
    :data:`~hf_txray.tables.MISSING`, as the ``changed`` column, the cards and the terminal show it (Gradio drew them
    as blank cells, which read as "no value recorded" beside a "–" meaning "not tested").

    The "–" is the cell's display value only (Gradio's ``metadata["display_value"]``); the cell's value stays null.
    Sent as the value, the string "–" in a numeric column made the browser sort that column wrongly: Gradio sorts a
    column as text when it holds a string (0.00001045 after 0.00001389 and "–", 10 before 9) and otherwise compares
    the string with numbers as neither smaller nor larger, leaving the "–" rows anywhere. Null sorts with the numbers
    (as zero, Gradio's comparison), and API callers read it as a missing number, not as text. Nothing a cell can
    hold sorts last both ways in Gradio 6.31's Dataframe (its comparator is flipped for a descending sort, and it
    has no per-column sort option: gradio-app/gradio#10916), so the viewer ranks its tables itself on columns without
    missing values.

    Returns:
        `value` itself when nothing is missing, else the dict Gradio's Dataframe takes: ``headers``, ``data`` (missing
        cells None) and ``metadata`` (``display_value``: MISSING for the missing cells, None for the others).
    """
    if not isinstance(value, pd.DataFrame):
        return value
    missing = value.isna().to_numpy()
    if not missing.any():
        return value
    cells = value.astype(object).where(~missing, None)
    shown = [[MISSING if m else None for m in row] for row in missing.tolist()]
    return {"headers": list(value.columns), "data": cells.to_dict(orient="split")["data"],
            "metadata": {"display_value": shown}}


def yes_no(frame: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns as "yes" / "no" text (a table of plain values: rows stay clickable in the Space); a
    ``changed_<ft>`` flag the per-neuron test did not judge (no ``p_hellinger_<ft>``) as "–", not "no"
    (:func:`~hf_txray.tables.untested_unknown`)."""
    out = untested_unknown(frame)
    for column in out.columns:
        values = out[column]
        if values.dtype == bool:
            out[column] = np.where(values.to_numpy(), "yes", "no")
        elif values.dtype == object and len(values) and values.map(lambda v: v is None or isinstance(v, bool)).all():
            out[column] = values.map(lambda v: MISSING if v is None else "yes" if v else "no")
    return out
