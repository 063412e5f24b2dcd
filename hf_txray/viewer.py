"""What the Space viewer shows, as plain functions returning DataFrames, figures, chart specs and text spans.

The Gradio app (``spaces_app/app.py``) is UI only: every table, figure and search it shows comes from here, so all
of it is testable without gradio. Results are opened once per source (a Hub dataset repo id or a folder written by
:func:`hf_txray.save_to_disk`) into a :class:`ResultsView`, which builds the indices the viewer needs (per-stage
neuron stats, per-row totals, example offsets) so that switching neuron or searching only slices arrays.

Nothing here renders HTML or markdown: strings from a dataset (tokens can be ``<script>``, quotes, markdown) are
returned as they are, for the UI to show as text. The per-neuron bar charts are Vega-Lite specs (plain dicts) that
the browser draws, so a neuron switch sends data rather than an image.

:func:`deploy_space` uploads the Space (``spaces_app/`` plus a copy of this package) to the Hub.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from . import metrics
from .architectures import format_neuron
from .errors import ConfigurationError, ProfileFormatError, TXRayError
from .report import DEFAULT_MIN_COUNT, STATUSES

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo
    from matplotlib.figure import Figure

    from .profile import Profile
    from .report import TransferReport

logger = logging.getLogger("hf_txray")

SPACE_FILES = ("app.py", "README.md", "requirements.txt")
DIGITS = 4  # floats in the viewer's tables are rounded to this many decimals
ALL_LAYERS = "all"


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
        return list(self._first_meta().layers)

    @property
    def num_neurons(self) -> int:
        return int(self._first_meta().num_neurons)

    @property
    def feature_types(self) -> list[str]:
        return list(self._first_meta().feature_types)

    @property
    def expert_width(self) -> int | None:
        """Units per expert for mixture-of-experts profiles (neuron = expert x width + unit), else None."""
        return getattr(self._first_meta(), "config", {}).get("expert_width")

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
        for report in self.reports.values():
            if (report.meta.stage_a, report.meta.stage_b) == (stage_a, stage_b):
                return report
        return None

    def check_neuron(self, layer: Any, neuron: Any) -> tuple[int, int]:
        """`(layer, neuron)` as ints, or a :class:`ConfigurationError` saying what is valid."""
        try:
            layer_i, neuron_i = int(layer), int(neuron)
            if layer_i != float(layer) or neuron_i != float(neuron):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigurationError(f"Pick a layer and a neuron number (got layer {layer!r}, neuron {neuron!r}).") from None
        if layer_i not in self.layers:
            raise ConfigurationError(f"Layer {layer_i} is not in these results; profiled layers: {self.layers}.")
        if not 0 <= neuron_i < self.num_neurons:
            raise ConfigurationError(f"Neuron {neuron_i} is out of range: layers have {self.num_neurons} neurons "
                                     f"(0 to {self.num_neurons - 1}).")
        return layer_i, neuron_i

    def row(self, layer: int, neuron: int) -> int:
        return self.layers.index(layer) * self.num_neurons + neuron

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
        row = self.row(layer, neuron)
        return frame.iloc[offsets[row]:offsets[row + 1]].reset_index(drop=True)

    def stat_row(self, stage: str, layer: int, neuron: int) -> dict[str, Any]:
        """One neuron's ``neuron_stats()`` row of a stage as a dict of Python values (without layer and neuron)."""
        self.profile(stage)
        row = self.row(layer, neuron)
        return {c: (v[row].item() if hasattr(v[row], "item") else v[row]) for c, v in self._stat_columns[stage].items()}

    def example_columns(self, stage: str, layer: int, neuron: int) -> dict[str, np.ndarray]:
        """The neuron's top examples (rank order) as columns of arrays: cheaper than :meth:`examples`."""
        self.profile(stage)
        _, offsets = self._examples[stage]
        row = self.row(layer, neuron)
        return {c: v[offsets[row]:offsets[row + 1]] for c, v in self._example_columns[stage].items()}

    def _feature(self, stage: str, feature_type: str) -> str:
        profile = self.profile(stage)
        if feature_type not in profile.tables:
            raise ConfigurationError(f"Feature type {feature_type!r} was not profiled; available: "
                                     f"{', '.join(profile.feature_types)}.")
        return feature_type


def _load_results(source: str) -> tuple[dict, dict]:
    """``hf_txray.load`` with messages a viewer user can act on."""
    from .hub import load

    path = Path(source).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{source} is a file; open a results folder (written by hf_txray.save_to_disk) "
                                 "or a Hub dataset repo id.")
    if path.is_dir():
        if not (path / "meta").is_dir():
            raise ProfileFormatError(f"{source} is not an hf_txray results folder: it has no meta/ config. Write "
                                     "one with hf_txray.save_to_disk(folder, profiles, reports) or "
                                     "`hf-txray push`.")
        try:
            return load(path)
        except TXRayError as err:
            raise ProfileFormatError(f"{source} is an incomplete hf_txray results folder: {err}") from None
        except Exception as err:  # a corrupt parquet file, a missing column...
            raise ProfileFormatError(f"{source} could not be read as hf_txray results "
                                     f"({type(err).__name__}: {err}).") from None
    try:
        return load(source)
    except ProfileFormatError as err:
        if "no meta" in str(err):
            raise ProfileFormatError(f"The Hub dataset {source!r} is not an hf_txray results dataset: it has no "
                                     "meta/ config (push results with hf_txray.push_to_hub).") from None
        raise ProfileFormatError(f"The Hub dataset {source!r} holds incomplete hf_txray results: {err}") from None


@functools.lru_cache(maxsize=4)
def open_results(source: str) -> ResultsView:
    """Open a results repo id or export folder (cached: the last few sources stay in memory).

    Raises:
        TXRayError: a readable message for an empty source, an unknown repo, a repo or folder that is not an
            hf_txray results dataset, or one missing configs.
    """
    source = (source or "").strip()
    if not source:
        raise ConfigurationError("Enter a Hub dataset repo id (e.g. my-user/minilm-txray) or a local results folder.")
    profiles, reports = _load_results(source)
    if not profiles and not reports:
        raise ProfileFormatError(f"{source} holds no profile and no transfer report.")
    for name, report in reports.items():
        expected = len(report.meta.layers) * report.meta.num_neurons
        if len(report.neurons) != expected:
            raise ProfileFormatError(f"{source} holds incomplete hf_txray results: report {name!r} has "
                                     f"{len(report.neurons)} of its {expected} neuron rows (is the "
                                     "transfer_reports config missing?).")
    return ResultsView(source, profiles, reports, _load_probing(source))


def _load_probing(source: str) -> Any:
    """The probing configs of `source`; ``ProbingResults(None, None)`` when absent or unreadable (logged)."""
    from .probing.results import ProbingResults, load_probing

    try:
        return load_probing(source)
    except Exception as err:  # TX-Ray results still open without their probing configs
        logger.warning("Probing results of %s not read: %s", source, err)
        return ProbingResults(None, None)


# ----- overview --------------------------------------------------------------------------------------------------
def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].round(DIGITS)
    return frame.reset_index(drop=True)


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
        else:
            report = next(r for r in view.reports.values() if stage in (r.meta.stage_a, r.meta.stage_b))
            a = stage == report.meta.stage_a
            rows.append({"stage": stage, "model": report.meta.model_a if a else report.meta.model_b,
                         "site": report.meta.site, "corpus": report.meta.dataset_a if a else report.meta.dataset_b,
                         "texts": None, "positions": None, "features": ", ".join(report.meta.feature_types),
                         "credited neurons": int((report.neurons["count_a" if a else "count_b"] > 0).sum()),
                         "neurons": len(report.neurons)})
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
    return _rounded(pd.DataFrame(rows, columns=["report", "stage A", "stage B", *STATUSES]) if not rows
                    else pd.DataFrame(rows))


def layer_summary(view: ResultsView, report_name: str | None = None) -> pd.DataFrame:
    """Per-layer summary: the report's (status counts and shares, mean/median Hellinger, mean length shift), or
    without reports the first profile's (credited neurons, mass, mean length per feature type)."""
    if report_name:
        return _rounded(view.report(report_name).layers)
    if view.reports:
        return _rounded(next(iter(view.reports.values())).layers)
    stage = next(iter(view.profiles))
    stats = view.stats(stage)
    credited = stats[stats["count"] > 0]
    frame = stats.groupby("layer").agg(credited=("count", lambda c: int((c > 0).sum())), mass=("mass", "sum"))
    for ft in view.profiles[stage].feature_types:
        frame[f"mean_length_{ft}"] = credited.groupby("layer")[f"length_{ft}"].mean()
    return _rounded(frame.reset_index())


def overview_figures(view: ResultsView, report_name: str | None = None,
                     feature_type: str | None = None) -> dict[str, "Figure | None"]:
    """The paper's figures: Hellinger vs length, length shift, mass share, sorted neuron mass.

    From the chosen report (default: the first), else from the first profile (mass share and neuron mass only).
    A figure that cannot be drawn for these results (no tag-like feature, no shared neuron) is ``None``.
    """
    from . import plots

    figures: dict[str, Figure | None] = dict.fromkeys(("hellinger_vs_length", "length_shift", "mass_share",
                                                       "neuron_mass"))
    if report_name or view.reports:
        report = view.report(report_name) if report_name else next(iter(view.reports.values()))
        ft = feature_type or plots.default_feature_type(report.meta.feature_types)
        if ft not in report.meta.feature_types:
            raise ConfigurationError(f"Feature type {ft!r} is not in report {report.name!r}: "
                                     f"{report.meta.feature_types}.")
        draw = {"hellinger_vs_length": lambda: plots.plot_hellinger_vs_length(report, ft),
                "length_shift": lambda: plots.plot_length_shift(report, ft),
                "mass_share": lambda: plots.plot_mass_share(report, ft if ft not in ("token", "word") else None),
                "neuron_mass": lambda: plots.plot_neuron_mass(report)}
    else:
        profile = next(iter(view.profiles.values()))
        draw = {"mass_share": lambda: plots.plot_mass_share(profile), "neuron_mass": lambda: plots.plot_neuron_mass(profile)}
    for name, make in draw.items():
        try:
            figures[name] = make()
        except (ConfigurationError, ValueError) as err:  # e.g. no tag-like feature, nothing shared, mathtext
            logger.info("Figure %s not drawn: %s", name, err)
    return figures


# ----- one neuron ------------------------------------------------------------------------------------------------
def neuron_stats(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """The neuron's stats per stage: credited or dead, mass, count, per feature type length, entropy, top value."""
    layer, neuron = view.check_neuron(layer, neuron)
    rows = []
    for stage in dict.fromkeys(stages):
        if stage in view.profiles:
            stats = view.stat_row(stage, layer, neuron)
            row = {"stage": stage, "status": "active" if stats["count"] > 0 else "dead", **stats}
        else:  # a stage only known from a report: what the report holds
            report = next(r for r in view.reports.values() if stage in (r.meta.stage_a, r.meta.stage_b))
            side = "a" if stage == report.meta.stage_a else "b"
            line = report.neurons.iloc[view.row(layer, neuron)]
            row = {"stage": stage, "status": "active" if line[f"count_{side}"] > 0 else "dead",
                   "mass": float(line[f"mass_{side}"]), "count": int(line[f"count_{side}"])}
            row.update({f"length_{ft}": int(line[f"length_{side}_{ft}"]) for ft in report.meta.feature_types})
        rows.append(row)
    return _rounded(pd.DataFrame(rows))


def neuron_status(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str) -> str:
    """``shared`` / ``lost`` / ``gained`` / ``dead`` between two stages."""
    layer, neuron = view.check_neuron(layer, neuron)
    report = view.report_for(stage_a, stage_b)
    if report is not None:
        return str(report.neurons["status"].iat[view.row(layer, neuron)])

    def credited(stage: str) -> bool:
        if stage in view.profiles:
            return view.stat_row(stage, layer, neuron)["count"] > 0
        report = next(r for r in view.reports.values() if stage in (r.meta.stage_a, r.meta.stage_b))
        side = "a" if stage == report.meta.stage_a else "b"
        return bool(report.neurons[f"count_{side}"].iat[view.row(layer, neuron)] > 0)

    a, b = credited(stage_a), credited(stage_b)
    return "shared" if a and b else "lost" if a else "gained" if b else "dead"


def neuron_comparison(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str) -> pd.DataFrame:
    """Per feature type: the neuron's Hellinger distance A -> B, Hellinger length, lengths and length shift.

    Read from the report of the pair when there is one; otherwise computed from the two profiles' distributions
    (the same formula; NaN unless the neuron is credited in both stages, as in reports).
    """
    layer, neuron = view.check_neuron(layer, neuron)
    report = view.report_for(stage_a, stage_b)
    rows = []
    if report is not None:
        line = report.neurons.iloc[view.row(layer, neuron)]
        for ft in report.meta.feature_types:
            rows.append({"feature type": ft, "hellinger": line[f"hellinger_{ft}"],
                         "hellinger length": int(line[f"hellinger_length_{ft}"]),
                         "length A": int(line[f"length_a_{ft}"]), "length B": int(line[f"length_b_{ft}"]),
                         "length shift": int(line[f"length_shift_{ft}"])})
        return _rounded(pd.DataFrame(rows))
    a, b = view.profile(stage_a), view.profile(stage_b)
    for ft in a.feature_types:
        if ft not in b.tables:
            continue
        p = {f: float(x) for f, x in zip(*neuron_features(view, stage_a, ft, layer, neuron)[::3]) if x > 0}
        q = {f: float(x) for f, x in zip(*neuron_features(view, stage_b, ft, layer, neuron)[::3]) if x > 0}
        rows.append({"feature type": ft, "hellinger": metrics.hellinger(p, q) if p and q else float("nan"),
                     "hellinger length": len(set(p) | set(q)), "length A": len(p), "length B": len(q),
                     "length shift": len(q) - len(p)})
    return _rounded(pd.DataFrame(rows))


def neuron_features(view: ResultsView, stage: str, feature_type: str, layer: int,
                    neuron: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """A neuron's credited values of one feature type: (values, mass, count, probability), most mass first (ties
    by value), as ``Profile.feature_stats`` orders them; read straight from the sparse table (no DataFrame)."""
    table = view.profile(stage).tables[view._feature(stage, feature_type)]
    row = view.row(layer, neuron)
    lo, hi = np.searchsorted(table.rows, [row, row + 1])
    names = [table.vocab[i] for i in table.feature_ids[lo:hi]]
    mass, count = table.mass[lo:hi], table.count[lo:hi]
    order = sorted(range(len(names)), key=lambda i: (-mass[i], names[i]))
    total = mass.sum()
    mass, count = mass[order], count[order]
    return [names[i] for i in order], mass, count, (mass / total if total > 0 else np.zeros_like(mass))


def neuron_distributions(view: ResultsView, layer: int, neuron: int, stages: Iterable[str],
                         feature_types: Iterable[str] | None = None, top: int = 10) -> pd.DataFrame:
    """Long table for the bar charts: per feature type, the union of each stage's `top` values.

    Columns: feature type, feature, stage, probability, mass, count (0 where a stage never credited the value).
    Values are ordered by their highest probability in any stage.
    """
    layer, neuron = view.check_neuron(layer, neuron)
    stages = [s for s in dict.fromkeys(stages) if s in view.profiles]
    types = list(feature_types) if feature_types else _display_order(view.feature_types)
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
                columns["probability"].append(round(float(probability[i]), DIGITS) if i is not None else 0.0)
                columns["mass"].append(round(float(mass[i]), DIGITS) if i is not None else 0.0)
                columns["count"].append(int(count[i]) if i is not None else 0)
    frame = pd.DataFrame(columns)
    return frame.astype({"probability": "float64", "mass": "float64", "count": "int64"})


def _display_order(feature_types: list[str]) -> list[str]:
    """Tags first (pos, dep, ner, user features), then token and word: the order of the bar charts."""
    return [ft for ft in feature_types if ft not in ("token", "word")] + \
        [ft for ft in ("token", "word") if ft in feature_types]


def distribution_chart(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str,
                       feature_types: Iterable[str] | None = None, top: int = 10,
                       data: pd.DataFrame | None = None) -> dict[str, Any]:
    """The bar charts as a Vega-Lite spec (a dict): one panel per feature type, stage A and B side by side.

    Drawn by the browser (Gradio's ``gr.Plot`` renders Vega-Lite), so switching neuron only sends data. Feature
    values are data, drawn as SVG/canvas text: never parsed as HTML, markdown or an expression. `data`: the
    :func:`neuron_distributions` table when already computed.
    """
    from .plots import STAGE_COLORS

    if data is None:
        data = neuron_distributions(view, layer, neuron, [stage_a, stage_b], feature_types, top)
    stages = list(dict.fromkeys([stage_a, stage_b]))
    colors = {"domain": stages, "range": [_css_color(c) for c in STAGE_COLORS[: len(stages)]]}
    panels = []
    for ft in dict.fromkeys(data["feature type"]):
        part = data[data["feature type"] == ft]
        order = list(dict.fromkeys(part["feature"]))
        values = [{"feature": f, "stage": st, "probability": float(p), "mass": float(m), "count": int(c)}
                  for f, st, p, m, c in zip(part["feature"], part["stage"], part["probability"], part["mass"],
                                            part["count"])]
        panels.append({
            "title": f"{ft}: top {top} per stage",
            "data": {"values": values},
            "mark": {"type": "bar"},
            "height": {"step": 9 if len(stages) > 1 else 14},
            "width": 240,
            "encoding": {
                "y": {"field": "feature", "type": "nominal", "sort": order, "title": None,
                      "axis": {"labelLimit": 160}},
                "yOffset": {"field": "stage", "sort": stages},
                "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]}},
                "color": {"field": "stage", "type": "nominal", "scale": colors, "legend": {"orient": "bottom"}},
                "tooltip": [{"field": "feature"}, {"field": "stage"},
                            {"field": "probability", "format": ".3f"}, {"field": "mass", "format": ".3f"},
                            {"field": "count"}],
            },
        })
    if not panels:
        panels.append({"data": {"values": [{"text": "no profile for these stages"}]}, "mark": "text",
                       "encoding": {"text": {"field": "text"}}})
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": f"Layer {int(layer)}, neuron {format_neuron(neuron, view.expert_width)}", "hconcat": panels,
            "resolve": {"scale": {"y": "independent"}}}


def _css_color(name: str) -> str:
    from matplotlib.colors import to_hex

    return to_hex(name)


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
    ex = view.example_columns(stage, layer, neuron)
    if limit:
        ex = {c: v[:limit] for c, v in ex.items()}
    if not len(ex["rank"]):
        return [("No examples: this neuron was never credited at this stage.", None)]
    flat = lambda text: re.sub(r"[\r\n\t]", " ", str(text))  # noqa: E731
    best = float(ex["activation"].max())
    spans: list[tuple[str, str | None]] = []
    for i, (rank, activation, left, token, right) in enumerate(
            zip(ex["rank"], ex["activation"], ex["left"], ex["token"], ex["right"])):
        left, right = flat(left), flat(right)
        if context is not None and len(left) > context:
            left = "…" + left[-context:]
        if context is not None and len(right) > context:
            right = right[:context] + "…"
        prefix = f"{'' if i == 0 else chr(10)}#{rank + 1}  {activation:.3f}   "
        spans.append((prefix + left, None))
        spans.append((flat(token), activation_bucket(float(activation) / best if best > 0 else 0.0)))
        spans.append((right, None))
    return [s for s in spans if s[0]]


def examples_table(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """Top examples of the neuron in each stage: stage, rank, activation, token, left and right context."""
    layer, neuron = view.check_neuron(layer, neuron)
    columns: dict[str, list] = {c: [] for c in ("stage", "rank", "activation", "token", "left", "right")}
    for stage in dict.fromkeys(stages):
        if stage in view.profiles:
            ex = view.example_columns(stage, layer, neuron)
            columns["stage"] += [stage] * len(ex["rank"])
            columns["rank"] += [int(r) + 1 for r in ex["rank"]]
            columns["activation"] += [round(float(a), DIGITS) for a in ex["activation"]]
            for name in ("token", "left", "right"):
                columns[name] += [str(v) for v in ex[name]]
    return pd.DataFrame(columns).astype({"rank": "int64", "activation": "float64"})


# ----- search ----------------------------------------------------------------------------------------------------
def _layer_filter(frame: pd.DataFrame, layer: Any) -> pd.DataFrame:
    if layer in (None, "", ALL_LAYERS):
        return frame
    return frame[frame["layer"] == int(layer)]


def matching_features(view: ResultsView, stage: str, feature_type: str, value: str) -> list[str]:
    """The feature values `value` names: itself when profiled, else those equal ignoring case and surrounding
    spaces (``"##ing"`` and ``"Ġthe"`` style markers are part of the value)."""
    index = view.vocab_index(stage, feature_type)
    if value in index:
        return [value]
    wanted = value.strip().casefold()
    return [f for f in index if f.strip().casefold() == wanted]


def search_feature(view: ResultsView, stage: str, feature_type: str, value: str, by: str = "probability",
                   min_count: int = 1, n: int = 50, layer: Any = None) -> pd.DataFrame:
    """Which neurons prefer `value`: neurons credited on it at `stage`, ranked by probability or by mass.

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
    mask = np.isin(table.feature_ids, [index[f] for f in names]) & (table.mass > 0) & (table.count >= int(min_count or 1))
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
    frame = _layer_filter(frame, layer)
    other = "mass" if by == "probability" else "probability"
    frame = frame.sort_values([by, other, "layer", "neuron"], ascending=[False, False, True, True], kind="stable")
    return _rounded(frame.head(int(n)))


def _report_columns(report: "TransferReport") -> list[str]:
    columns = ["layer", "neuron", "status", "count_a", "count_b", "mass_a", "mass_b"]
    return columns + [f"hellinger_{ft}" for ft in report.meta.feature_types]


def search_status(view: ResultsView, report_name: str, status: str, n: int = 200, layer: Any = None) -> pd.DataFrame:
    """Neurons of a report with the given status (lost, gained, shared, dead), by mass in A plus B (descending)."""
    if status not in STATUSES:
        raise ConfigurationError(f"Status must be one of {', '.join(STATUSES)}, not {status!r}.")
    report = view.report(report_name)
    frame = _layer_filter(report.neurons[report.neurons["status"] == status], layer)
    order = (frame["mass_a"] + frame["mass_b"]).to_numpy()
    frame = frame.iloc[np.lexsort((frame["neuron"].to_numpy(), frame["layer"].to_numpy(), -order))]
    return _rounded(frame[_report_columns(report)].head(int(n)))


def search_hellinger(view: ResultsView, report_name: str, feature_type: str, low: float, high: float,
                     n: int = 200, layer: Any = None, min_count: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
    """Shared neurons whose Hellinger distance (for `feature_type`) lies in [low, high], highest first, among those
    credited at least `min_count` times in both stages (the others have too few credits to rank)."""
    report = view.report(report_name)
    if feature_type not in report.meta.feature_types:
        raise ConfigurationError(f"Feature type {feature_type!r} is not in report {report_name!r}: "
                                 f"{report.meta.feature_types}.")
    low, high = float(low), float(high)
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigurationError(f"The Hellinger range must satisfy 0 <= low <= high <= 1 (got {low} to {high}).")
    column = f"hellinger_{feature_type}"
    h = report.neurons[column]
    enough = (report.neurons["count_a"] >= int(min_count or 1)) & (report.neurons["count_b"] >= int(min_count or 1))
    frame = _layer_filter(report.neurons[h.notna() & (h >= low) & (h <= high) & enough], layer)
    frame = frame.sort_values([column, "layer", "neuron"], ascending=[False, True, True], kind="stable")
    columns = _report_columns(report) + [f"hellinger_length_{feature_type}", f"length_shift_{feature_type}"]
    columns += [c for c in (f"p_hellinger_{feature_type}", f"changed_{feature_type}") if c in report.neurons]
    return _rounded(_yes_no(frame[list(dict.fromkeys(columns))].head(int(n))))


def _yes_no(frame: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns as "yes" / "no" text (a table of plain values: rows stay clickable in the Space)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == bool:
            out[column] = np.where(out[column].to_numpy(), "yes", "no")
    return out


# ----- transfer --------------------------------------------------------------------------------------------------
def transfer_table(view: ResultsView, report_name: str, feature_type: str | None = None, which: str = "most",
                   n: int = 20, min_count: int = DEFAULT_MIN_COUNT, layer: Any = None) -> pd.DataFrame:
    """The `n` most (or least) changed shared neurons of a report credited at least `min_count` times in both
    stages, with each neuron's top value in A and B, and whether the change exceeds sampling noise."""
    if which not in ("most", "least"):
        raise ConfigurationError(f"Choose 'most' or 'least' changed, not {which!r}.")
    report = view.report(report_name)
    ft = feature_type or report.meta.feature_types[0]
    layer = None if layer in (None, "", ALL_LAYERS) else int(layer)
    rank = report.most_changed if which == "most" else report.least_changed
    frame = rank(int(n), ft, layer=layer, min_count=int(min_count or 1))
    columns = ["layer", "neuron", "status", f"hellinger_{ft}", f"hellinger_length_{ft}", f"length_a_{ft}",
               f"length_b_{ft}", "count_a", "count_b", "mass_a", "mass_b"]
    columns += [c for c in (f"p_hellinger_{ft}", f"changed_{ft}") if c in frame]
    out = frame[columns].copy()
    for side, stage in (("A", report.meta.stage_a), ("B", report.meta.stage_b)):
        if stage in view.profiles:
            stats = view.stats(stage)
            rows = [view.row(int(la), int(ne)) for la, ne in zip(out["layer"], out["neuron"])]
            out[f"top {ft} {side}"] = stats[f"top_{ft}"].to_numpy()[rows] if rows else []
    return _rounded(_yes_no(out))


def neuron_from_row(columns: list[str], row: list[Any]) -> tuple[int, int]:
    """The (layer, neuron) of a table row given its column names (for 'click a row to open the neuron')."""
    try:
        values = dict(zip(columns, row))
        return int(values["layer"]), int(values["neuron"])
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError("This row names no neuron (it has no layer and neuron).") from None


# ----- probing, ablation and attribution (issue 7) -------------------------------------------------------------
ALL_LABELS = "all labels (global ranking)"
NO_PROBING = ("This results repo has no probing results (no probe_rankings or ablation config). Add them with "
              "`hf-txray probe MODEL DATA --property pos --out PROBE_DIR --export RESULTS_DIR` (or --push-to-hub "
              "REPO_ID) and `hf-txray ablate MODEL PROBE_DIR DATA --out DIR --export RESULTS_DIR`, or from Python "
              "with hf_txray.probing.save_probing / push_probing.")
NO_MODEL = ("Attribution needs the model: start the viewer with `hf-txray view DIR_OR_REPO --model MODEL_PATH` "
            "(or build_demo(source, model=...)).")


def has_probing(view: ResultsView) -> bool:
    return view.probing is not None and not view.probing.empty


def _probing(view: ResultsView, config: str = "probe_rankings") -> Any:
    if not has_probing(view):
        raise ConfigurationError(NO_PROBING)
    if getattr(view.probing, config) is None:
        raise ConfigurationError(f"These results have no {config} config.")
    return view.probing


def probe_names(view: ResultsView) -> list[str]:
    """Probe runs in the results (sorted); empty without a probe_rankings config."""
    frame = view.probing.probe_rankings if has_probing(view) else None
    return [] if frame is None else sorted(set(frame["probe"]))


def probe_label_names(view: ResultsView, probe: str | None) -> list[str]:
    """The classes of a probe, in the order of its per-class table."""
    from .probing.results import probe_labels

    if not probe or probe not in probe_names(view):
        return []
    return list(dict.fromkeys(probe_labels(view.probing, probe)["label"]))


def ablation_names(view: ResultsView) -> list[str]:
    frame = view.probing.ablation if has_probing(view) else None
    return [] if frame is None else sorted(set(frame["ablation"]))


def probing_overview(view: ResultsView) -> pd.DataFrame:
    """One row per probe (``probe_overview``): accuracy vs majority and control, selectivity, minimal set."""
    from .probing.results import probe_overview

    return _rounded(probe_overview(_probing(view)))


def probing_labels(view: ResultsView, probe: str) -> pd.DataFrame:
    """Per class of `probe`: support and test accuracy."""
    from .probing.results import probe_labels

    return _rounded(probe_labels(_probing(view), probe or None))


def probing_top_neurons(view: ResultsView, probe: str, label: str | None = None, layer: Any = None,
                        n: int = 50) -> pd.DataFrame:
    """A probe's top `n` neurons, globally (`label` None or :data:`ALL_LABELS`) or for one class; `layer` filters."""
    from .probing.results import probe_top_neurons

    label = None if label in (None, "", ALL_LABELS) else label
    layer = None if layer in (None, "", ALL_LAYERS) else int(layer)
    if label is not None and label not in probe_label_names(view, probe):
        raise ConfigurationError(f"Probe {probe!r} has no label {label!r}; labels: "
                                 f"{', '.join(probe_label_names(view, probe))}.")
    frame = probe_top_neurons(_probing(view), probe or None, label=label, layer=layer, n=n)
    columns = ["layer", "neuron", *[c for c in frame.columns if c not in ("layer", "neuron")]]
    return _rounded(frame[columns])


def probing_ablation(view: ResultsView, name: str | None = None) -> tuple["Figure", pd.DataFrame]:
    """One ablation curve (the first, or `name`): its figure and its summary table."""
    from .probing.results import ablation_curves, ablation_figure

    results = _probing(view, "ablation")
    figure = ablation_figure(results, name or None)
    curve = next(c for c in ablation_curves(results) if c.name == (name or ablation_names(view)[0]))
    return figure, _rounded(curve.summary())


def neuron_probes(view: ResultsView, layer: int, neuron: int) -> pd.DataFrame:
    """What each probe says about a neuron: its global rank (of how many), score, top label and weight, and the
    classes whose top neurons include it (``NOUN#3``). Empty without probing results."""
    from .probing.results import neuron_probe_rows

    if not has_probing(view):
        return neuron_probe_rows(_empty_probing(), layer, neuron)
    return _rounded(neuron_probe_rows(view.probing, layer, neuron))


def _empty_probing() -> Any:
    from .probing.results import ProbingResults

    return ProbingResults(None, None)


def load_attribution_model(model: Any) -> tuple[Any, Any]:
    """`model` as ``(model, tokenizer)``: a path or Hub id (loaded with ``AutoModel``/``AutoTokenizer``), or a
    ``(model, tokenizer)`` pair used as is."""
    if isinstance(model, (tuple, list)) and len(model) == 2:
        return model[0].eval(), model[1]
    if isinstance(model, (str, Path)):
        from transformers import AutoModel, AutoTokenizer

        try:
            return AutoModel.from_pretrained(str(model)).eval(), AutoTokenizer.from_pretrained(str(model))
        except Exception as err:
            raise ConfigurationError(f"Could not load the model {str(model)!r} for attribution: {err}") from None
    raise ConfigurationError("model must be a path or Hub id, or a (model, tokenizer) pair.")


def explain_top_examples(view: ResultsView, model: Any, tokenizer: Any, stage: str, layer: int, neuron: int,
                         k: int = 3, **kwargs: Any) -> list[Any]:
    """Integrated-gradients attribution of the neuron on its first `k` top examples of `stage`
    (:func:`hf_txray.probing.explain_examples`, at the profile's site); ``TokenAttribution`` objects."""
    from .probing import explain_examples

    layer, neuron = view.check_neuron(layer, neuron)
    examples = view.examples(stage, layer, neuron)
    if examples.empty:
        raise ConfigurationError(f"Neuron {neuron} of layer {layer} has no top examples in stage {stage}.")
    kwargs.setdefault("site", view.profile(stage).meta.site)
    return explain_examples(model, tokenizer, examples, layer, neuron, k=int(k), **kwargs)


def attribution_spans(attributions: list[Any]) -> list[tuple[str, float | None]]:
    """``HighlightedText`` spans of the examples, one line each (``#rank``), every token's score divided by the
    largest absolute score of its example (so in [-1, 1]); text between tokens unscored."""
    spans: list[tuple[str, float | None]] = []
    for rank, attribution in enumerate(attributions):
        pieces = attribution.highlight_spans()
        scale = max((abs(v) for _, v in pieces if v is not None), default=0.0) or 1.0
        spans.append((("\n" if rank else "") + f"#{rank + 1}  ", None))
        spans.extend((text, None if v is None else float(v) / scale) for text, v in pieces)
    return spans


def attribution_table(attributions: list[Any]) -> pd.DataFrame:
    """One row per scored token: example (1-based rank), token, raw score (not rounded: scores can be tiny), and
    whether the neuron is read there."""
    rows = []
    for rank, attribution in enumerate(attributions):
        t = attribution.table
        for row in t[~t["special"]].itertuples(index=False):
            rows.append({"example": rank + 1, "token": row.token, "score": float(row.score),
                         "read here": int(row.token_index) == attribution.position})
    return pd.DataFrame(rows, columns=["example", "token", "score", "read here"])


# ----- neuron pages (issue 15): summary, output effects, activation distribution, live text -------------------------
NO_OUTPUT_EFFECTS = ("No output effects for this stage: profile with analyze(..., output_effects=True) on a model "
                     "with an LM head (causal LM or masked LM) to store the tokens each neuron promotes and "
                     "suppresses.")


def neuron_summary(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str) -> str:
    """The plain-words summary of the neuron at each profiled stage of the pair, one line each; the change clause
    comes from the pair's report when it has significance columns (``changed_<ft>``, ``p_hellinger_<ft>``)."""
    from .summary import neuron_card
    from .summary import neuron_summary as sentence

    layer, neuron = view.check_neuron(layer, neuron)
    report = view.report_for(stage_a, stage_b)
    report_row = report.neurons.iloc[view.row(layer, neuron)].to_dict() if report is not None else None
    lines = []
    for stage in dict.fromkeys([stage_a, stage_b]):
        if stage in view.profiles:
            card = neuron_card(view.profile(stage), layer, neuron)
            row = report_row if stage == stage_b else None  # the change is said once, on the later stage
            lines.append(f"{stage}: {sentence(card, row, (stage_a, stage_b))}")
    return "\n".join(lines) or "No profile for these stages."


def neuron_output_effects(view: ResultsView, layer: int, neuron: int, stages: Iterable[str],
                          k: int = 10) -> pd.DataFrame:
    """Per stage, the neuron's top `k` promoted and suppressed tokens side by side: stage, rank, promoted,
    logit (promoted), suppressed, logit (suppressed). Empty when no stage has output effects."""
    layer, neuron = view.check_neuron(layer, neuron)
    columns = ["stage", "rank", "promoted", "logit +", "suppressed", "logit -"]
    rows = []
    for stage in dict.fromkeys(stages):
        effects = view.profiles[stage].output_effects if stage in view.profiles else None
        if effects is None:
            continue
        mine = effects[(effects["layer"] == layer) & (effects["neuron"] == neuron)]
        up = mine[mine["direction"] == "promoted"].sort_values("rank").head(k)
        down = mine[mine["direction"] == "suppressed"].sort_values("rank").head(k)
        for i, (u, d) in enumerate(zip(up.itertuples(), down.itertuples())):
            rows.append([stage, i + 1, str(u.token), float(u.logit), str(d.token), float(d.logit)])
    return _rounded(pd.DataFrame(rows, columns=columns))


def activation_facts(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """Per stage: credits, profiled positions, win rate (credits / positions), the token position that gave the
    neuron the most mass and that position's share of its mass (the first-position effect)."""
    from .summary import neuron_card

    layer, neuron = view.check_neuron(layer, neuron)
    rows = []
    for stage in dict.fromkeys(stages):
        if stage not in view.profiles:
            continue
        profile = view.profile(stage)
        card = neuron_card(profile, layer, neuron, top=1)
        rows.append({"stage": stage, "credits": card["count"], "positions": profile.meta.num_positions,
                     "win rate": card["win_rate"], "top position": card.get("top_position"),
                     "share from top position": card.get("top_position_share")})
    return _rounded(pd.DataFrame(rows, columns=["stage", "credits", "positions", "win rate", "top position",
                                                "share from top position"]))


def histogram_data(view: ResultsView, layer: int, neuron: int, stages: Iterable[str]) -> pd.DataFrame:
    """The neuron's credited-activation histogram per stage: stage, low, high (finite: the open-ended outer bins
    get one more bin width), count; bins between the first and last non-empty bin of any stage."""
    layer, neuron = view.check_neuron(layer, neuron)
    parts = []
    for stage in dict.fromkeys(stages):
        profile = view.profiles.get(stage)
        if profile is None or profile.activation_histogram is None:
            continue
        hist = profile.activation_distribution(layer, neuron)
        edges = profile.histogram_edges()
        ratio = edges[1] / edges[0]
        hist["low"] = np.r_[edges[0] / ratio, edges]
        hist["high"] = np.r_[edges, edges[-1] * ratio]
        hist.insert(0, "stage", stage)
        parts.append(hist)
    if not parts:
        return pd.DataFrame(columns=["stage", "low", "high", "count"])
    frame = pd.concat(parts, ignore_index=True)
    used = frame.groupby(["low"])["count"].transform("sum") > 0
    if used.any():
        lo, hi = frame.loc[used, "low"].min(), frame.loc[used, "low"].max()
        frame = frame[(frame["low"] >= lo) & (frame["low"] <= hi)]
    return frame.reset_index(drop=True)


def histogram_chart(view: ResultsView, layer: int, neuron: int, stage_a: str, stage_b: str,
                    data: pd.DataFrame | None = None) -> dict[str, Any]:
    """The histogram as a Vega-Lite spec: bars over log-spaced bins, stages side by side (drawn by the browser)."""
    from .plots import STAGE_COLORS

    if data is None:
        data = histogram_data(view, layer, neuron, [stage_a, stage_b])
    stages = list(dict.fromkeys([stage_a, stage_b]))
    colors = {"domain": stages, "range": [_css_color(c) for c in STAGE_COLORS[: len(stages)]]}
    values = [{"stage": s, "low": float(lo), "high": float(hi), "count": int(c)}
              for s, lo, hi, c in zip(data["stage"], data["low"], data["high"], data["count"])]
    if not values:
        return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                "data": {"values": [{"text": "no activation histogram for these stages"}]}, "mark": "text",
                "encoding": {"text": {"field": "text"}}}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"Layer {int(layer)}, neuron {int(neuron)}: credited activations", "width": 420, "height": 160,
        "data": {"values": values}, "mark": {"type": "bar", "opacity": 0.6},
        "encoding": {
            "x": {"field": "low", "type": "quantitative", "scale": {"type": "log"}, "title": "activation (log)"},
            "x2": {"field": "high"},
            "y": {"field": "count", "type": "quantitative", "stack": None, "title": "credits"},
            "color": {"field": "stage", "type": "nominal", "scale": colors, "legend": {"orient": "bottom"}},
            "tooltip": [{"field": "stage"}, {"field": "low", "format": ".3g"}, {"field": "high", "format": ".3g"},
                        {"field": "count"}],
        },
    }


@dataclass
class LiveText:
    """The winners of one typed text at one layer, computed with the profiling engine.

    Attributes:
        table (`pd.DataFrame`): one row per creditable token: position, token, layer, neuron (the winner; -1 when
            no neuron is credited, i.e. the best activation is <= 0), activation, and ``traced`` (the traced
            neuron's activation there, when one was asked for).
        spans (`list[tuple[str, float | None]]`): the text cut into tokens and the text between them, each token
            scored by its winner's activation over the text's largest (for ``HighlightedText``) and followed by
            its winner's number in subscript digits (:func:`neuron_mark`).
        span_rows (`list[int | None]`): for each span, its row of `table` (None between tokens).
        trace_spans (`list[tuple[str, float | None]]`): the same with the traced neuron's activation over its
            largest absolute value in the text (empty without a traced neuron).
    """

    table: pd.DataFrame
    spans: list[tuple[str, float | None]]
    trace_spans: list[tuple[str, float | None]]
    span_rows: list[int | None]
    truncated: bool = False  # the text was longer than the model's limit and was cut


class LiveProfiler:
    """Runs typed text through the engine with the settings of a stage's profile (site, layers, module_pattern):
    the same tokenisation and creditable positions (``build_batch``) and the same winner hooks
    (:class:`~hf_txray.sites.WinnerRecorder`) as :func:`hf_txray.analyze`, so a token's winner here is the neuron
    ``analyze`` credits on that text."""

    def __init__(self, model: Any, tokenizer: Any, meta: Any):
        from .analyze import Profiler, ProfilerConfig

        # max_length: the model's own limit, not the profile's (a typed text may be longer than the corpus
        # windows); a text within the profile's max_length gets exactly the winners analyze credits.
        config = ProfilerConfig(layers=list(meta.layers), site=meta.site, features=("token",), top_k=1,
                                module_pattern=meta.config.get("module_pattern"))
        self.profiler = Profiler(model, tokenizer, config, model_id=meta.model_id)
        self.layers = [s.layer for s in self.profiler.sites]

    def run(self, text: str, layer: int, trace_neuron: int | None = None) -> LiveText:
        import torch

        from .batching import build_batch
        from .features import TokenVocabulary
        from .sites import WinnerRecorder

        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError("Type or paste some text.")
        if layer not in self.layers:
            raise ConfigurationError(f"Layer {layer} was not profiled; layers: {self.layers}.")
        p = self.profiler
        vocabs = {"token": TokenVocabulary(p.tokenizer)}
        batch = build_batch([text], 0, p.tokenizer, p.max_length, ["token"], vocabs)
        if batch.num_positions == 0:
            raise ConfigurationError("The text has no token to credit (only special tokens or spaces).")

        slot = self.layers.index(layer)
        site = p.sites[slot]
        recorder = WinnerRecorder([site], top_k=1).attach()
        traced: list[torch.Tensor] = []
        handle = _trace_hook(site, trace_neuron, batch.positions.to(p.device), traced) if trace_neuron is not None \
            else None
        recorder.positions = batch.positions.to(p.device)
        recorder.enabled = True
        was_training = p.model.training
        p.model.eval()
        try:
            with torch.no_grad():
                p.model(**{k: v.to(p.device) for k, v in batch.inputs.items()})
        finally:
            recorder.enabled = False
            recorder.detach()
            if handle is not None:
                handle.remove()
            p.model.train(was_training)
        values = recorder.values[0][:, 0].float().cpu().numpy().astype(np.float64)
        indices = recorder.indices[0][:, 0].cpu().numpy().astype(np.int64)
        credited = values > 0  # the credit rule of hf_txray.credit: only positive winners are credited
        tokens = [vocabs["token"].items[i] for i in batch.feature_ids["token"]]
        table = pd.DataFrame({"position": batch.token_index, "token": tokens, "layer": layer,
                              "neuron": np.where(credited, indices, -1), "activation": values})
        if traced:
            table["traced"] = traced[0].float().cpu().numpy().astype(np.float64)
        marks = [neuron_mark(n) for n in table["neuron"]]
        spans, rows = _text_spans(text, batch.char_start, batch.char_end, np.where(credited, values, 0.0),
                                  marks=marks)
        trace_spans = _text_spans(text, batch.char_start, batch.char_end, table["traced"].to_numpy(),
                                  signed=True)[0] if traced else []
        return LiveText(table, spans, trace_spans, rows, bool(batch.num_truncated))


def _trace_hook(site: Any, neuron: int, positions: Any, out: list) -> Any:
    """A hook keeping one neuron's activation at the creditable positions (the site's captured tensor)."""
    if not 0 <= int(neuron) < site.width:
        raise ConfigurationError(f"Neuron {neuron} is out of range: layer {site.layer} has {site.width} neurons.")

    def keep(slot: int, tensor: Any) -> None:
        out.append(tensor.detach().reshape(-1, tensor.shape[-1])[:, int(neuron)].index_select(0, positions))

    from .hooks import Trace

    return Trace([site], read=keep).attach()


SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def neuron_mark(neuron: int) -> str:
    """A winner's number as subscript digits, shown after its token in the live text (``"Paris₁₇"``)."""
    return str(int(neuron)).translate(SUBSCRIPT) if neuron >= 0 else ""


def _text_spans(text: str, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, signed: bool = False,
                marks: list[str] | None = None) -> tuple[list[tuple[str, float | None]], list[int | None]]:
    """The whole text as spans: each token's span scored by score / largest (absolute) score, gaps unscored, each
    token followed by its mark (unscored) when `marks` are given; and each span's token row (None otherwise)."""
    scale = float(np.abs(scores).max()) if len(scores) else 0.0
    scale = scale or 1.0
    spans: list[tuple[str, float | None]] = []
    rows: list[int | None] = []
    cursor = 0
    order = sorted(range(len(starts)), key=lambda i: (int(starts[i]), i))
    for i in order:
        start, end = int(starts[i]), int(ends[i])
        if start < cursor or end <= start:  # overlapping or empty offsets (byte-level pieces): text kept once
            continue
        if start > cursor:
            spans.append((text[cursor:start], None))
            rows.append(None)
        value = float(scores[i]) / scale
        spans.append((text[start:end], value if signed else max(value, 0.0)))
        rows.append(i)
        if marks and marks[i]:
            spans.append((marks[i], None))
            rows.append(i)  # clicking the mark opens the same neuron
        cursor = end
    if cursor < len(text):
        spans.append((text[cursor:], None))
        rows.append(None)
    return spans, rows


# ----- deploying the Space ---------------------------------------------------------------------------------------
def default_app_dir() -> Path:
    """``spaces_app/`` of the hf_txray checkout this package is imported from."""
    return Path(__file__).resolve().parents[1] / "spaces_app"


def set_space_datasets(readme: str, datasets: list[str], title: str | None = None) -> str:
    """The Space README with its YAML header's ``datasets:`` (and optionally ``title``) replaced."""
    import yaml

    match = re.match(r"^---\n(.*?)\n---\n?", readme, re.S)
    if not match:
        raise ConfigurationError("The Space README.md has no YAML header (--- ... ---).")
    header = yaml.safe_load(match.group(1)) or {}
    header["datasets"] = list(datasets)
    if title:
        header["title"] = title
    dumped = yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip()
    return f"---\n{dumped}\n---\n{readme[match.end():]}"


def stage_space(folder: str | Path, results_repo_id: str | None = None, app_dir: str | Path | None = None,
                title: str | None = None) -> Path:
    """Write the Space's files into `folder`: app.py, README.md (``datasets:`` set to `results_repo_id`),
    requirements.txt, and a copy of the ``hf_txray`` package (the Space imports it from its own root)."""
    app_dir = Path(app_dir) if app_dir is not None else default_app_dir()
    missing = [name for name in SPACE_FILES if not (app_dir / name).is_file()]
    if missing:
        raise ConfigurationError(f"{app_dir} lacks the Space file(s) {', '.join(missing)}; pass app_dir= the "
                                 "spaces_app folder of an hf_txray checkout.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(app_dir / name, folder / name)
    readme = (app_dir / "README.md").read_text(encoding="utf-8")
    if results_repo_id:
        from .hub import check_repo_id

        readme = set_space_datasets(readme, [check_repo_id(results_repo_id)], title)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    package = Path(__file__).resolve().parent
    shutil.copytree(package, folder / "hf_txray", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return folder


def deploy_space(space_repo_id: str, results_repo_id: str | None = None, *, token: str | None = None,
                 private: bool = False, app_dir: str | Path | None = None, title: str | None = None,
                 commit_message: str | None = None) -> "CommitInfo":
    """Create (or update) a Gradio Space that browses `results_repo_id`, in one commit.

    hf_txray is not on PyPI, so the Space carries it: the upload holds ``app.py``, ``README.md`` (its YAML
    ``datasets:`` names the results repo, which the app opens by default), ``requirements.txt`` (hf_txray's
    dependencies) and a copy of the ``hf_txray`` package folder. Files of an earlier deploy under ``hf_txray/``
    that the package no longer has are deleted; other files of the Space are left alone.

    Args:
        space_repo_id (`str`): ``namespace/name`` of the Space (created with ``sdk: gradio`` when missing).
        results_repo_id (`str`, *optional*): the results dataset repo the Space opens by default (the app's
            ``?repo=`` parameter and text box still open others).
        token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login.
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created Space. A Space that
            opens a private results repo needs the ``HF_TOKEN`` secret set in its settings.
        app_dir (`str` or `Path`, *optional*): the ``spaces_app`` folder (default: the one of this checkout).
        title (`str`, *optional*): the Space's title in its README header.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Example:
        ```python
        >>> from hf_txray.viewer import deploy_space
        >>> deploy_space("my-user/minilm-txray-viewer", "my-user/minilm-txray")
        ```
    """
    from huggingface_hub import HfApi

    from .errors import HubError
    from .hub import check_repo_id, resolve_token, scrub

    check_repo_id(space_repo_id)
    token = resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="hf_txray-space-") as tmp:
        folder = stage_space(Path(tmp) / "space", results_repo_id, app_dir, title)
        api = HfApi(token=token)
        try:
            repo_id = api.create_repo(space_repo_id, repo_type="space", space_sdk="gradio", private=private,
                                      exist_ok=True).repo_id
            return api.upload_folder(
                repo_id=repo_id, repo_type="space", folder_path=folder,
                commit_message=commit_message or f"Deploy the hf_txray viewer for {results_repo_id or 'results'}",
                delete_patterns=["hf_txray/**"],
            )
        except Exception as err:
            raise HubError(f"Deploying the Space {space_repo_id!r} failed: {scrub(str(err), token)}") from None


# ----- running the app locally -----------------------------------------------------------------------------------
def load_app(app_dir: str | Path | None = None) -> Any:
    """Import the Space's ``app.py`` (from `app_dir`, default ``spaces_app/`` of this checkout) as a module."""
    import importlib.util

    path = (Path(app_dir) if app_dir is not None else default_app_dir()) / "app.py"
    if not path.is_file():
        raise ConfigurationError(f"The viewer app {path} is missing: run from an hf_txray checkout (the Space lives "
                                 "in spaces_app/) or pass the folder holding app.py.")
    spec = importlib.util.spec_from_file_location("hf_txray_space_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_viewer(source: str, *, port: int | None = None, host: str = "127.0.0.1",
                  app_dir: str | Path | None = None, model: Any = None, **launch_kwargs: Any) -> Any:
    """Open `source` (fails fast with a readable error) and launch the Space app on `host`:`port`.

    Backs ``hf-txray view DIR_OR_REPO [--port PORT] [--model MODEL_PATH]`` (`model` enables attribution of top
    examples in the Neuron tab, loaded on the first request). Blocks until the server stops unless
    ``prevent_thread_lock=True`` is passed; returns the ``gr.Blocks``.
    """
    open_results(source)
    app = load_app(app_dir)
    demo = app.build_demo(source, model=model)
    demo.launch(server_name=host, server_port=port, **launch_kwargs)
    return demo
