"""`compare()` and `TransferReport`: how neuron preferences moved from stage A to stage B.

Per neuron: status (shared / lost / gained / dead), Hellinger distance and Hellinger length per feature type,
lengths and length shift, mass and mass shift, and whether the change exceeds sampling noise (a chi-square p-value
and a Benjamini-Hochberg flag, see :mod:`hf_txray.significance`). Per layer and for the whole model: summaries,
each headline figure beside its split-half noise floor. For tag-like features (POS, dep, NER, user features): each
value's mass share in A and B next to its corpus frequency.

**Split-half noise floors.** Every profile keeps its sums separately for the credits of the texts of its "odd" half,
so each stage splits into two halves of its texts: by the lowest bit of each text's content hash
(:func:`hf_txray.hashes.text_halves`: the copies of a text lie in one half, as one unit of independence), or, in
profiles saved before that (``meta.split_halves == "example_id"``), by example id parity. The noise floor of a figure is the same figure
between the two halves of *one* stage: what sampling alone produces. It is computed at half size, so the figure
A -> B is also given at that size (``matched_*``: a half of A against the other half of B, both pairings
averaged; when both stages profiled the same corpus, a half of A against the *same* half of B, so that the same
texts are compared as in the full figure), over the same neurons (credited in all four halves); compare
``matched_hellinger_pos`` with ``noise_floor_hellinger_pos_a`` and ``_b``, and ``matched_share_lost`` with
``noise_floor_share_lost_a``. For two stages on the same texts (e.g. before and after fine-tuning) the noise floor
bounds what a *different* sample of texts would add, and the per-neuron test is conservative.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection

import warnings

import numpy as np
import pandas as pd

from . import metrics, significance
from .significance import DEFAULT_MIN_COUNT, check_min_count  # DEFAULT_MIN_COUNT: its public home was here
from .counts import check_count, check_switch
from .errors import ConfigurationError, IncompatibleProfilesError
from .features import (BUILTIN_FEATURES, check_feature_kinds, check_feature_orders, default_feature_type,
                       is_tag_feature)
from .architectures import expert_numbering
from .artifact import Artifact, meta_from_record
from .layout import OWNED_FOLDERS, read_single, write_folder
from .options import resolve_layer
from .feature_table import FeatureTable
from .profile import (SPLIT_BY_TEXT, USER_FEATURES, Profile, credit_differences, merged_vocab,
                      recorded_texts_multiset_hash, tokenizer_difference, tokenizer_split_difference,
                      user_feature_differences)
from .tables import counts_as_integers, percent
from .provenance import (compared_architectures, pruning_fingerprint, recorded_depths, recorded_hidden_sizes,
                         recorded_pruning)
from .version import __version__

STATUSES = ("shared", "lost", "gained", "dead")
SIZE_RATIO_WARNING = 2.0
# Credit totals further apart than this move the shares lost and gained away from their split-half noise floors by
# size alone (each floor pairs two halves of one stage, of one size): between two samples of one corpus (MiniLM, PTB,
# 400 vs 320 texts, 1.27x in credits) lost at half size read 10.0% against floors of 8.4% / 8.4%, gained 7.0%; at
# 1.09x, 8.9% against 8.5% / 8.4% (helper 445). The full-size shares move alike (a report without split halves has
# no floors): 400 vs 320 PTB texts, layers 0/3/5, token, 1.30x in credits (25374 vs 19575), lost 9.9%, gained 7.9%
# (helper 451)
LOST_GAINED_RATIO_WARNING = 1.1
# Options whose difference between two compared profiles gets a warning: they change which positions are credited
# (windows or truncation, the first positions) or what a word or tag is. max_length and max_positions differ between
# stages by design (each corpus its own length; max_positions to equalise sizes, which the size warning watches).
UNLIKE_POSITIONS = ("long_texts", "stride", "skip_first_positions", "spacy_model", "credit")


@dataclass
class ReportMeta:
    """Which two profiles were compared.

    Args:
        stage_a, stage_b (`str`): the stages' names.
        model_a, model_b (`str`): the stages' model ids.
        dataset_a, dataset_b (`str`): the stages' corpora.
        site (`str`): ``"mlp"`` or ``"residual"``.
        layers (`list[int]`): the compared block indices.
        num_neurons (`int`): neurons per layer.
        feature_types (`list[str]`): the compared feature types.
        hf_txray_version (`str`, *optional*): the version that made the report; defaults to this one.
        created_at (`str`, *optional*): ISO 8601 time of creation (UTC); defaults to now.
        alpha (`float`, *optional*, defaults to 0.05): the false discovery rate of the per-neuron test.
        num_resamples (`int`, *optional*, defaults to 0): 0 since the test is analytic (kept: reports saved before
            read it).
        seed (`int`, *optional*, defaults to 0): kept for reports saved before the test was analytic.
        credits_a, credits_b (`int`, *optional*, defaults to 0): each stage's credits in total (0: not recorded).
        dispersion (`dict[str, list[float]]`, *optional*): feature type -> the design effect of stage A and B.
        same_corpus (`bool`, *optional*, defaults to `False`): both stages profiled the same texts, split alike.
        test (`str`, *optional*, defaults to `""`): the per-neuron test behind ``p_hellinger_<ft>`` (``""`` when
            none ran).
        no_noise_reason (`str`, *optional*, defaults to `""`): why the report has no p-values and noise floors.
        no_noise_features (`dict[str, str]`, *optional*): feature type -> why that feature type alone has none.
        model_types (`list`, *optional*): ``config.model_type`` of stage A's and B's models (None: not recorded).
        num_hidden_layers (`list`, *optional*): the blocks of each stage's model (None: not recorded).
        pruned (`list`, *optional*): how each stage's model numbers the neurons of the report's layers
            (``"unpruned"`` or a hash of what ``mode="remove"`` kept; None: not recorded).
        stack (`str`, *optional*): the stack the stages hooked (an encoder-decoder's ``"decoder"``...).
        module_pattern (`str`, *optional*): the module pattern the stages hooked.
        experts (`dict[str, int]`, *optional*): a mixture-of-experts layer's numbering (``num_experts``,
            ``num_shared_experts``, ``expert_width``); empty for dense layers.
        feature_kinds (`dict[str, str]`, *optional*): each feature type's kind (``"text"`` or ``"tag"``) as the
            profiling runs registered it; ``{}`` in reports saved before.
        feature_orders (`dict[str, float]`, *optional*): each feature type's reading order as registered; ``{}`` in
            reports saved before.
        top_k (`int`, *optional*): the credit rule both stages ran; None in reports saved before.
    """

    stage_a: str
    stage_b: str
    model_a: str
    model_b: str
    dataset_a: str
    dataset_b: str
    site: str
    layers: list[int]
    num_neurons: int
    feature_types: list[str]
    hf_txray_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    alpha: float = 0.05
    num_resamples: int = 0  # 0 since the test is analytic (kept: reports saved before read it)
    seed: int = 0
    credits_a: int = 0
    credits_b: int = 0
    dispersion: dict[str, list[float]] = field(default_factory=dict)  # feature type -> [stage A, stage B]
    same_corpus: bool = False  # both stages profiled the same texts, split alike: like halves are paired
    test: str = ""  # the per-neuron test behind p_hellinger_<ft> ("" when none ran)
    # why the report has no p-values and noise floors, in words ("" when it has them)
    no_noise_reason: str = ""
    # feature type -> why that feature type alone has none (a stage credited its values in texts of one split half
    # only, or none of them)
    no_noise_features: dict[str, str] = field(default_factory=dict)
    # config.model_type of stage A's and B's models (None where a profile did not record it)
    model_types: list[str | None] = field(default_factory=list)
    # and the blocks of each (num_hidden_layers of the text config; None where a profile did not record it)
    num_hidden_layers: list[int | None] = field(default_factory=list)
    # how each stage's model numbers the neurons of the report's layers (provenance.pruning_fingerprint: "unpruned",
    # or a hash of what mode="remove" kept there; None where a profile did not record it; reports saved before
    # hf_txray read the profiled layers only hashed the whole record): a plan ranked on the report is refused on a
    # model numbered otherwise there
    pruned: list[str | None] = field(default_factory=list)
    # which modules the stages hooked (pruning by the report must mask the same ones): the profiles' options
    stack: str | None = None
    module_pattern: str | None = None
    # a mixture-of-experts layer's numbering (num_experts, num_shared_experts, expert_width), as both profiles record
    # it: how neuron numbers read as expert and unit where only the report is at hand (empty for dense layers)
    experts: dict[str, int] = field(default_factory=dict)
    # each feature type's kind ("text" or "tag") as the profiling runs registered it (ProfileMeta.feature_kinds),
    # which is_tag_feature and its kin read instead of this process's registry; {} in reports saved before
    feature_kinds: dict[str, str] = field(default_factory=dict)
    # each feature type's reading order as the profiling runs registered it (ProfileMeta.feature_orders), which
    # reading_order and default_feature_type read instead of this process's registry; {} in reports saved before
    feature_orders: dict[str, float] = field(default_factory=dict)
    # the credit rule both stages ran (compare refuses profiles of different top_k); None in reports saved before
    top_k: int | None = None

    def tested_feature_types(self) -> list[str]:
        """The feature types whose per-neuron test ran: none without the test (``compare(test=False)``) or without
        split halves (:attr:`no_noise_reason`), and none of those whose halves alone are empty
        (:attr:`no_noise_features`); the others, even where it could judge no neuron."""
        if not self.test or self.no_noise_reason:
            return []
        return [ft for ft in self.feature_types if ft not in self.no_noise_features]


def _status(count_a: np.ndarray, count_b: np.ndarray) -> np.ndarray:
    a, b = count_a > 0, count_b > 0
    return np.select([a & b, a & ~b, ~a & b], ["shared", "lost", "gained"], default="dead").astype(object)


def _feature_columns(ta: FeatureTable, tb: FeatureTable, num_rows: int, shared: np.ndarray,
                     test: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Hellinger distance/length and lengths per row for one feature type (vocabularies aligned first); with
    `test` (alpha, test), also p-values, changed flags and the split-half columns."""
    vocab = merged_vocab(ta.vocab, tb.vocab)
    ta, tb = ta.remapped(vocab), tb.remapped(vocab)
    keys_a, keys_b = ta.keys(), tb.keys()
    pa = metrics.probabilities(ta.rows, ta.mass, num_rows)
    pb = metrics.probabilities(tb.rows, tb.mass, num_rows)
    rows_of = lambda keys: keys >> 32  # noqa: E731
    length_a = metrics.length_by_row(ta.rows, ta.mass, num_rows)
    length_b = metrics.length_by_row(tb.rows, tb.mass, num_rows)
    both = shared & (length_a > 0) & (length_b > 0)
    distance = metrics.hellinger_by_row(keys_a, pa, keys_b, pb, rows_of, num_rows)
    out = {
        # credits carrying a value of this feature type: fewer than the neuron's credits where positions have no value
        # (a user feature labelling digits; a token outside every word), and what min_count must floor (helper 273)
        "credits_a": metrics.row_totals(ta.rows, ta.count, num_rows).astype(np.int64),
        "credits_b": metrics.row_totals(tb.rows, tb.count, num_rows).astype(np.int64),
        "hellinger": np.where(both, distance, np.nan),
        "hellinger_length": metrics.union_length_by_row(keys_a[ta.mass > 0], keys_b[tb.mass > 0], rows_of, num_rows),
        "length_a": length_a,
        "length_b": length_b,
        "length_shift": length_b - length_a,
    }
    if test is not None:
        out.update(_noise_columns(ta, tb, num_rows, distance, both, test))
    return out


def _hellinger_tables(x: FeatureTable, y: FeatureTable, num_rows: int) -> np.ndarray:
    """Hellinger distance per row between two tables on one vocabulary; NaN where either row has no mass."""
    px = metrics.probabilities(x.rows, x.mass, num_rows)
    py = metrics.probabilities(y.rows, y.mass, num_rows)
    distance = metrics.hellinger_by_row(x.keys(), px, y.keys(), py, lambda k: k >> 32, num_rows)
    has = (metrics.row_totals(x.rows, x.mass, num_rows) > 0) & (metrics.row_totals(y.rows, y.mass, num_rows) > 0)
    return np.where(has, distance, np.nan)


def _noise_columns(ta: FeatureTable, tb: FeatureTable, num_rows: int, distance: np.ndarray, both: np.ndarray,
                   test: dict[str, Any]) -> dict[str, np.ndarray]:
    """p-value and Benjamini-Hochberg flag per shared row; split-half Hellinger of A, of B, and A vs B at half size
    (rows credited in all four halves, NaN elsewhere)."""
    nan = np.full(num_rows, np.nan)
    if not (ta.has_noise and tb.has_noise and test.get("halves", True)) or \
            test["feature_type"] in test.get("one_half", ()):
        return {"p_hellinger": nan, "changed": _flags_where_tested(nan, nan), "split_half_hellinger_a": nan,
                "split_half_hellinger_b": nan, "matched_hellinger": nan}
    if test["test"]:
        # a sparse feature type's design effect is known from the few texts that carry its values, not all texts
        p, design = significance.homogeneity_pvalues(ta, tb, num_rows, both, texts=test["texts"][test["feature_type"]])
        test["dispersion"][test["feature_type"]] = list(design)
    else:
        p = nan
    a0, a1, b0, b1 = ta.half(False), ta.half(True), tb.half(False), tb.half(True)
    within_a, within_b = _hellinger_tables(a0, a1, num_rows), _hellinger_tables(b0, b1, num_rows)
    if test.get("same_corpus"):  # the same texts in both stages: compare like with like
        across = (_hellinger_tables(a0, b0, num_rows) + _hellinger_tables(a1, b1, num_rows)) / 2
    else:
        across = (_hellinger_tables(a0, b1, num_rows) + _hellinger_tables(a1, b0, num_rows)) / 2
    matched = ~np.isnan(within_a) & ~np.isnan(within_b) & ~np.isnan(across) & both
    return {
        "p_hellinger": p,
        "changed": _flags_where_tested(significance.benjamini_hochberg(p, test["alpha"]), p),
        "split_half_hellinger_a": np.where(matched, within_a, np.nan),
        "split_half_hellinger_b": np.where(matched, within_b, np.nan),
        "matched_hellinger": np.where(matched, across, np.nan),
    }


def _flags_where_tested(flags: np.ndarray, p: np.ndarray) -> pd.arrays.BooleanArray:
    """The ``changed_<ft>`` column: a nullable boolean, <NA> where the test did not judge the neuron (no p-value).
    A plain False there read as "unchanged", so ``shared & ~changed`` counted untested neurons as kept (helper 226:
    519 of MiniLM's shared neurons); pandas' indexing takes <NA> as False both ways, and ``.sum()`` skips it."""
    untested = np.isnan(p)
    return pd.arrays.BooleanArray(np.where(untested, False, flags).astype(bool), untested)


def _neuron_table(a: Profile, b: Profile, test: dict[str, Any] | None = None) -> pd.DataFrame:
    count_a, count_b = a.neuron_count.reshape(-1), b.neuron_count.reshape(-1)
    mass_a, mass_b = a.neuron_mass.reshape(-1), b.neuron_mass.reshape(-1)
    status = _status(count_a, count_b)
    frame = pd.DataFrame({
        "layer": np.repeat(np.array(a.layers, dtype=np.int64), a.num_neurons),
        "neuron": np.tile(np.arange(a.num_neurons, dtype=np.int64), len(a.layers)),
        "status": status, "count_a": count_a, "count_b": count_b,
        "mass_a": mass_a, "mass_b": mass_b, "mass_shift": mass_b - mass_a,
    })
    if test is not None:
        halves = test.get("halves", True)
        odd = lambda p: p.neuron_count_odd.reshape(-1) if p.neuron_count_odd is not None and halves \
            else np.full(p.num_rows, -1)  # noqa: E731
        frame["count_a_odd"], frame["count_b_odd"] = odd(a), odd(b)  # -1: no usable split halves in that profile
    for index, ft in enumerate(a.feature_types):
        ft_test = None if test is None else {**test, "feature_type": ft}
        columns = _feature_columns(a.tables[ft], b.tables[ft], a.num_rows, status == "shared", ft_test)
        for name, values in columns.items():
            if name.startswith("split_half_hellinger_"):  # e.g. split_half_hellinger_pos_a
                frame[f"split_half_hellinger_{ft}_{name[-1]}"] = values
            else:
                frame[f"{name}_{ft}"] = values
    return frame


def _noise_figures(group: pd.DataFrame, feature_types: list[str], same_corpus: bool = False,
                   tested: Collection[str] | None = None) -> dict[str, float]:
    """Shares changed, and each headline figure at half size beside its split-half noise floors (module doc).
    The counts of tested and changed neurons are ints; for a feature type whose per-neuron test did not run (not in
    `tested`, :meth:`ReportMeta.tested_feature_types`; None: every one; and no p-value in `group`) they are NaN: not
    run, which 0 tested would misread as "tested, none changed"."""
    tested = feature_types if tested is None else tested
    out: dict[str, float] = {}
    if "count_a_odd" not in group:
        return out
    shared = group["status"] == "shared"
    for ft in feature_types:
        if f"changed_{ft}" in group and not (ft in tested or group[f"p_hellinger_{ft}"].notna().any()):
            # the test did not run: compare(test=False) (helper 176: it read "0 tested"), or no split halves to run it
            for name in ("neurons_changed", "share_changed", "neurons_tested", "share_of_tested_changed"):
                out[f"{name}_{ft}"] = float("nan")
        elif f"changed_{ft}" in group:
            # `judged`, not `tested`: that name is the flag "the test ran", read again for the next feature type (a
            # first type with none judged made the next one's neurons_tested NaN, "not run", not 0; helper 183)
            changed, judged = int(group[f"changed_{ft}"].sum()), int(group[f"p_hellinger_{ft}"].notna().sum())
            # none tested (profiles without split-half sums, or too few credits): unknown, not "none changed"
            out[f"neurons_changed_{ft}"] = changed if judged else float("nan")
            out[f"share_changed_{ft}"] = changed / max(int(shared.sum()), 1) if judged else float("nan")
            # most shared neurons of a small profile have too few credits to test: the share among the tested
            out[f"neurons_tested_{ft}"] = judged
            out[f"share_of_tested_changed_{ft}"] = changed / judged if judged else float("nan")
        if f"matched_hellinger_{ft}" in group:
            mean = lambda c: float(group[c].mean()) if group[c].notna().any() else float("nan")  # noqa: E731
            out[f"matched_hellinger_{ft}"] = mean(f"matched_hellinger_{ft}")
            out[f"noise_floor_hellinger_{ft}_a"] = mean(f"split_half_hellinger_{ft}_a")
            out[f"noise_floor_hellinger_{ft}_b"] = mean(f"split_half_hellinger_{ft}_b")
    if (group["count_a_odd"] < 0).any() or (group["count_b_odd"] < 0).any():
        return out
    a1, b1 = group["count_a_odd"].to_numpy() > 0, group["count_b_odd"].to_numpy() > 0
    a0 = (group["count_a"].to_numpy() - group["count_a_odd"].to_numpy()) > 0
    b0 = (group["count_b"].to_numpy() - group["count_b_odd"].to_numpy()) > 0
    only = lambda x, y: float(np.mean(x & ~y)) if len(x) else float("nan")  # noqa: E731
    pairs = ((a0, b0), (a1, b1)) if same_corpus else ((a0, b1), (a1, b0))
    out["matched_share_lost"] = sum(only(x, y) for x, y in pairs) / 2
    out["matched_share_gained"] = sum(only(y, x) for x, y in pairs) / 2
    for stage, (h0, h1) in {"a": (a0, a1), "b": (b0, b1)}.items():
        out[f"noise_floor_share_lost_{stage}"] = (only(h0, h1) + only(h1, h0)) / 2
        out[f"noise_floor_share_gained_{stage}"] = out[f"noise_floor_share_lost_{stage}"]  # symmetric by design
    return out


def _mean_length_shift(shared: pd.DataFrame, feature_type: str) -> float:
    """Mean length shift (B - A) of `feature_type` over the shared neurons with a length in both stages (values of the
    type with positive mass in A and in B), as :func:`hf_txray.plots.plot_length_shift` draws them and as the
    Hellinger distance is defined; NaN when there is none. A neuron without values of a sparse type (a user feature
    on a few tokens) in a stage has no length there, not a length of 0: counted as a shift from or to 0, 99 such
    neurons beside one shifted by +2 read +0.02."""
    a, b = shared[f"length_a_{feature_type}"], shared[f"length_b_{feature_type}"]
    shift = shared[f"length_shift_{feature_type}"][(a > 0) & (b > 0)]
    return float(shift.mean()) if len(shift) else float("nan")


def _layer_table(neurons: pd.DataFrame, feature_types: list[str], same_corpus: bool = False,
                 tested: Collection[str] | None = None) -> pd.DataFrame:
    rows = []
    for layer, group in neurons.groupby("layer", sort=True):
        counts = group["status"].value_counts()
        row: dict[str, Any] = {"layer": int(layer), "neurons": len(group)}
        for status in STATUSES:
            row[status] = int(counts.get(status, 0))
            row[f"share_{status}"] = row[status] / len(group)
        row["mass_a"], row["mass_b"] = float(group["mass_a"].sum()), float(group["mass_b"].sum())
        shared = group[group["status"] == "shared"]
        for ft in feature_types:
            h = shared[f"hellinger_{ft}"].dropna()
            row[f"mean_hellinger_{ft}"] = float(h.mean()) if len(h) else float("nan")
            row[f"median_hellinger_{ft}"] = float(h.median()) if len(h) else float("nan")
            row[f"mean_length_shift_{ft}"] = _mean_length_shift(shared, ft)
        row.update(_noise_figures(group, feature_types, same_corpus, tested))
        rows.append(row)
    return counts_as_integers(pd.DataFrame(rows))


def compared_feature_kinds(a: Profile, b: Profile) -> dict[str, str]:
    """The feature kinds of a comparison: those either profile recorded (``check_compatible`` refused two that
    differ)."""
    return {**b.meta.feature_kinds, **a.meta.feature_kinds}


def compared_feature_orders(a: Profile, b: Profile) -> dict[str, float]:
    """The feature reading orders of a comparison: those either profile recorded, `a`'s where both did."""
    return {**b.meta.feature_orders, **a.meta.feature_orders}


def _mass_share_table(a: Profile, b: Profile) -> pd.DataFrame:
    frames = []
    for ft in a.feature_types:
        if not is_tag_feature(ft, compared_feature_kinds(a, b)):
            continue
        frame = pd.DataFrame({
            "mass_share_a": a.mass_share(ft), "mass_share_b": b.mass_share(ft),
            "corpus_frequency_a": a.feature_frequency(ft), "corpus_frequency_b": b.feature_frequency(ft),
        }).fillna(0.0)
        frame.index.name = "feature"
        frame = frame.reset_index().sort_values("corpus_frequency_a", ascending=False, kind="stable")
        frame.insert(0, "feature_type", ft)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["feature_type", "feature", "mass_share_a", "mass_share_b",
                                     "corpus_frequency_a", "corpus_frequency_b"])
    return pd.concat(frames, ignore_index=True)


class TransferReport(Artifact):
    """The comparison of two profiles (stage A -> stage B) of the same site: TX-Ray's transfer analysis (Rethmeier et
    al., 2020, "TX-Ray: Quantifying and Explaining Model-Knowledge Transfer in (Un-)Supervised NLP", UAI): per neuron,
    whether it is lost, gained or shared, and the Hellinger distance between its preference distributions.

    Attributes:
        meta (`ReportMeta`): stages, models, corpora.
        neurons (`pd.DataFrame`): one row per (layer, neuron) with every per-neuron field.
        layers (`pd.DataFrame`): per-layer summaries (status shares, mean/median Hellinger, mean length shift).
        mass_share (`pd.DataFrame`): per tag-like feature value: mass share in A and B and corpus frequency.
    """

    artifact_type = "transfer_report"
    optional_folders = OWNED_FOLDERS  # as Profile's: a previous push's profiles and plots are not left beside it
    format_version = 2  # 1: json + parquet files (before the dataset layout)
    DEFAULT_MIN_COUNT = DEFAULT_MIN_COUNT  # for readers that only hold a report (the dataset card)

    def __init__(self, meta: ReportMeta, neurons: pd.DataFrame, layers: pd.DataFrame, mass_share: pd.DataFrame):
        self.meta, self.neurons, self.layers, self.mass_share = meta, neurons, layers, mass_share

    @property
    def name(self) -> str:
        return f"{self.meta.stage_a}->{self.meta.stage_b}"

    def made_from(self, profile: Profile, side: str = "a") -> bool:
        """Whether this report may have been made with `profile` as its stage A (`side` ``"b"``: as its stage B):
        stage, model, corpus, site, layers, layer width, feature types and credits all agree (reports saved before
        the credits were recorded match on the others). Profiles of one site differ from those of another only
        there: each credits one neuron per position and layer.

        Args:
            profile (`Profile`): the profile to check.
            side (`str`, *optional*, defaults to `"a"`): ``"a"`` or ``"b"``, the stage to check it against.

        Raises:
            ConfigurationError: `side` is neither ``"a"`` nor ``"b"``, or `profile` is not a :class:`Profile`.
        """
        if side not in ("a", "b"):
            raise ConfigurationError(f"side must be 'a' or 'b', got {side!r}.")
        if not isinstance(profile, Profile):  # a report failed "'TransferReport' object has no attribute 'stage'"
            raise ConfigurationError(f"made_from takes a Profile (a stage of this report), got "
                                     f"{type(profile).__name__}.")
        meta = self.meta
        stage, model, corpus, credits = ((meta.stage_a, meta.model_a, meta.dataset_a, meta.credits_a) if side == "a"
                                         else (meta.stage_b, meta.model_b, meta.dataset_b, meta.credits_b))
        return (stage == profile.stage and model == profile.meta.model_id
                and corpus == _corpus_of(profile) and meta.site == profile.meta.site
                and list(meta.layers) == list(profile.layers) and meta.num_neurons == profile.num_neurons
                and set(meta.feature_types) <= set(profile.feature_types)
                and credits in (0, int(profile.neuron_count.sum())))

    def summary(self) -> dict[str, float]:
        """Whole-model figures: shares of each status, mean/median Hellinger over shared neurons, mean length shift;
        per feature type the share of shared neurons changed beyond sampling noise (``share_changed_<ft>``), how many
        the test could judge (``neurons_tested_<ft>``; it and ``neurons_changed_<ft>`` are ints, as ``neurons``) and
        the share changed among those (``share_of_tested_changed_<ft>``), all four NaN when the test did not run (``compare(test=False)``, or no
        split halves to run it on: ``meta.no_noise_reason``, ``meta.no_noise_features``); and the
        headline figures at half size beside their split-half noise floors (``matched_hellinger_<ft>`` vs
        ``noise_floor_hellinger_<ft>_a`` / ``_b``, ``matched_share_lost`` vs ``noise_floor_share_lost_a`` / ``_b``,
        the same for gained; see the module docstring)."""
        n = self.neurons
        out: dict[str, float] = {"neurons": len(n)}
        counts = n["status"].value_counts()
        for status in STATUSES:
            out[f"share_{status}"] = float(counts.get(status, 0)) / len(n)
        shared = n[n["status"] == "shared"]
        for ft in self.meta.feature_types:
            h = shared[f"hellinger_{ft}"].dropna()
            out[f"mean_hellinger_{ft}"] = float(h.mean()) if len(h) else float("nan")
            out[f"median_hellinger_{ft}"] = float(h.median()) if len(h) else float("nan")
            out[f"mean_length_shift_{ft}"] = _mean_length_shift(shared, ft)
        out.update(_noise_figures(n, self.meta.feature_types, self.meta.same_corpus, self.meta.tested_feature_types()))
        return out

    def noise_table(self) -> pd.DataFrame:
        """The headline figures beside their split-half noise floors, one row per figure.

        Columns: ``figure``; ``A -> B`` (full size); ``A -> B at half size`` (matched to the noise floors: a half of
        A against a half of B, see the module docstring); ``noise floor A`` and ``noise floor B`` (the same figure
        between the two halves of one stage); ``changed`` (share of shared neurons changed beyond sampling noise
        at ``meta.alpha``, Hellinger rows only) and ``changed of tested`` (the same among the neurons the test could
        judge: credited in both stages with two or more feature categories after pooling). Empty when the profiles had no split-half sums.
        """
        s = self.summary()
        columns = ["figure", "A -> B", "A -> B at half size", "noise floor A", "noise floor B", "changed",
                   "changed of tested"]
        rows = []
        for ft in self.meta.feature_types:
            if f"matched_hellinger_{ft}" in s:
                rows.append([f"mean Hellinger {ft}", s[f"mean_hellinger_{ft}"], s[f"matched_hellinger_{ft}"],
                             s[f"noise_floor_hellinger_{ft}_a"], s[f"noise_floor_hellinger_{ft}_b"],
                             s.get(f"share_changed_{ft}", float("nan")),
                             s.get(f"share_of_tested_changed_{ft}", float("nan"))])
        for status in ("lost", "gained"):
            if f"matched_share_{status}" in s:
                rows.append([f"share {status}", s[f"share_{status}"], s[f"matched_share_{status}"],
                             s[f"noise_floor_share_{status}_a"], s[f"noise_floor_share_{status}_b"], float("nan"),
                             float("nan")])
        return pd.DataFrame(rows, columns=columns)

    def enough_credits(self, feature_type: str | None = None, min_count: int = DEFAULT_MIN_COUNT) -> pd.Series:
        """Which neurons (rows of :attr:`neurons`) were credited at least `min_count` times with a value of
        `feature_type` (default: the report's first) in both stages: the floor of every ranking by Hellinger distance
        (:meth:`most_changed`, the ``most_changed`` / ``least_changed`` pruning strategies, the report plots).

        A neuron's distribution of one feature type rests on its credits that carry a value of it
        (``credits_a_<ft>``, ``credits_b_<ft>``), which for a sparse feature type (a user feature labelling digits)
        are a few of its credits: a neuron credited 149 and 42 times held 8 and 2 digit credits, and ranked first by
        a Hellinger distance of 0.84 between two samples of one corpus. Reports saved before those columns existed
        floor the neuron's credits (``count_a``, ``count_b``), as they did.

        Args:
            feature_type (`str`, *optional*): a compared feature type; defaults to the report's first.
            min_count (`int`, *optional*, defaults to 20): the fewest credits in each stage, at least 0.

        Returns:
            `pd.Series` of bool, indexed as :attr:`neurons`.

        Raises:
            ConfigurationError: a feature type not in the report, or `min_count` not an int >= 0.
        """
        ft = self._hellinger_column(feature_type)[len("hellinger_"):]
        min_count = check_min_count(min_count)
        frame = self.neurons
        a, b = (f"credits_{side}_{ft}" if f"credits_{side}_{ft}" in frame else f"count_{side}" for side in "ab")
        return (frame[a] >= min_count) & (frame[b] >= min_count)

    def too_few_credits(self, feature_type: str | None = None, min_count: int = DEFAULT_MIN_COUNT,
                        layer: int | None = None) -> int:
        """How many shared neurons rankings leave out: credited fewer than `min_count` times with a value of
        `feature_type` in a stage (:meth:`enough_credits`; of `layer` only when given, as a ranking of one layer
        leaves out only that layer's).

        Args:
            feature_type (`str`, *optional*): a compared feature type; defaults to the report's first.
            min_count (`int`, *optional*, defaults to 20): the fewest credits in each stage, at least 0.
            layer (`int`, *optional*): count one layer's neurons only; defaults to every layer.

        Returns:
            `int`: the number of shared neurons left out.

        Raises:
            ConfigurationError: a feature type or layer not in the report, or `min_count` not an int >= 0.
        """
        column = self._hellinger_column(feature_type)
        enough = self.enough_credits(feature_type, min_count)
        frame = self.neurons[self.neurons[column].notna()]
        if layer is not None:
            frame = frame[frame["layer"] == resolve_layer(self.meta.layers, layer, "is not in this report")]
        return int((~enough[frame.index]).sum())

    def _hellinger_column(self, feature_type: str | None) -> str:
        ft = feature_type or self.meta.feature_types[0]
        if f"hellinger_{ft}" not in self.neurons:
            raise ConfigurationError(f"Feature type {ft!r} is not in this report: {self.meta.feature_types}.")
        return f"hellinger_{ft}"

    def _ranked(self, n: int, feature_type: str | None, layer: int | None, ascending: bool,
                min_count: int) -> pd.DataFrame:
        column = self._hellinger_column(feature_type)
        # numpy ints too (a count computed with numpy), as min_count and every int option take them
        n = check_count("n", n, minimum=0)
        layer = None if layer is None else resolve_layer(self.meta.layers, layer, "is not in this report")
        frame = self.neurons[self.neurons[column].notna() & self.enough_credits(feature_type, min_count)]
        if layer is not None:
            frame = frame[frame["layer"] == layer]
        return frame.sort_values([column, "layer", "neuron"], ascending=[ascending, True, True], kind="stable").head(n)

    def most_changed(self, n: int = 10, feature_type: str | None = None, layer: int | None = None,
                     min_count: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
        """Shared neurons with the highest Hellinger distance.

        Args:
            n (`int`, *optional*, defaults to 10): how many.
            feature_type (`str`, *optional*): defaults to the first profiled feature type.
            layer (`int`, *optional*): restrict to one layer.
            min_count (`int`, *optional*, defaults to 20): ignore neurons credited fewer times with a value of
                `feature_type` in either stage ("too few credits", :meth:`enough_credits`): their distance is mostly
                sampling noise (see ``DEFAULT_MIN_COUNT``). The
                ``changed_<ft>`` column says whether a neuron's change exceeds sampling noise.

        Returns:
            `pd.DataFrame`: up to `n` rows of :attr:`neurons`, highest ``hellinger_<ft>`` (unitless, in [0, 1])
            first, ties by layer and neuron.

        Raises:
            ConfigurationError: `n` or `min_count` not an int >= 0, or a feature type or layer not in the report.
        """
        return self._with_modules(self._ranked(n, feature_type, layer, False, min_count).reset_index(drop=True))

    def least_changed(self, n: int = 10, feature_type: str | None = None, layer: int | None = None,
                      min_count: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
        """Shared neurons with the lowest Hellinger distance.

        Args:
            n (`int`, *optional*, defaults to 10): how many.
            feature_type (`str`, *optional*): defaults to the first profiled feature type.
            layer (`int`, *optional*): restrict to one layer.
            min_count (`int`, *optional*, defaults to 20): ignore neurons credited fewer times with a value of
                `feature_type` in either stage (:meth:`enough_credits`).

        Returns:
            `pd.DataFrame`: up to `n` rows of :attr:`neurons`, lowest ``hellinger_<ft>`` first, ties by layer and
            neuron.

        Raises:
            ConfigurationError: `n` or `min_count` not an int >= 0, or a feature type or layer not in the report.
        """
        return self._with_modules(self._ranked(n, feature_type, layer, True, min_count).reset_index(drop=True))

    def _with_modules(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` recording the modules its neurons are (:func:`~hf_txray.pruning.plan.with_ranked_modules`)."""
        from .tables import with_ranked_modules

        return with_ranked_modules(frame, self.meta.site, self.meta.stack, self.meta.module_pattern)

    def to_pandas(self) -> pd.DataFrame:
        return self._with_modules(self.neurons.copy())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransferReport):
            return NotImplemented
        # created_at says when, not what: two identical compare() calls a second apart are equal (as profiles are)
        return dataclasses.replace(self.meta, created_at="") == dataclasses.replace(other.meta, created_at="") and all(
            getattr(self, t).reset_index(drop=True).equals(getattr(other, t).reset_index(drop=True))
            for t in ("neurons", "layers", "mass_share")
        )

    def __repr__(self) -> str:
        # the feature type `hf-txray show` leads with (pos when profiled), and the mean Hellinger beside what the
        # noise table compares: A -> B at half size against the split-half noise floors (when the report has them)
        s, m = self.summary(), self.meta
        ft = default_feature_type(m.feature_types, kinds=m.feature_kinds, orders=m.feature_orders)
        noise = [s.get(f"{name}_hellinger_{ft}{end}") for name, end in
                 (("matched", ""), ("noise_floor", "_a"), ("noise_floor", "_b"))]
        floors = ("" if any(v is None or np.isnan(v) for v in noise) else
                  f" (at half size {noise[0]:.3f}, noise floors {noise[1]:.3f} / {noise[2]:.3f})")
        return (f"TransferReport({self.name}, shared={percent(s['share_shared'])}, lost={percent(s['share_lost'])}, "
                f"gained={percent(s['share_gained'])}, mean_hellinger_{ft}={s[f'mean_hellinger_{ft}']:.3f}{floors})")

    # ----- persistence (save_pretrained / from_pretrained / push_to_hub: hf_txray.artifact.Artifact) ------------
    # A report is saved alone, without the two profiles it compares (save them too, or keep them together in one
    # results folder with hf_txray.save_to_disk / hf_txray.push_to_hub).
    card_names_repo = True

    def _save_pretrained(self, folder: Path, repo_id: str | None = None, revision: str | None = None) -> None:
        write_folder(folder, {}, {self.name: self}, repo_id=repo_id, revision=revision)

    @classmethod
    def _from_pretrained(cls, folder: Path) -> "TransferReport":
        return cls.from_parts(read_single(folder, "report"))

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> "TransferReport":
        """Assemble a report from the parts :func:`hf_txray.layout.read_parts` returns.

        Args:
            parts (`dict`): the parts read (``meta``, ``neurons``, ``layers``, ``mass_share``).
        """
        neurons = _untested_flags_unknown(parts["neurons"])
        record = parts["meta"]
        what = f"report {record.get('stage_a')!r} -> {record.get('stage_b')!r}" if isinstance(record, dict) else "report"
        meta = meta_from_record(ReportMeta, record, what)
        meta.feature_kinds = check_feature_kinds(meta.feature_kinds, what)
        meta.feature_orders = check_feature_orders(meta.feature_orders, what)
        return cls(meta, neurons, _current_layer_table(neurons, meta, parts["layers"]), parts["mass_share"])


def _untested_flags_unknown(neurons: pd.DataFrame) -> pd.DataFrame:
    """`neurons` with each plain-bool ``changed_<ft>`` column made the nullable boolean that :func:`compare` writes.
    Reports saved before it (same format version) hold False where the test did not judge a neuron, so loaded as they
    were, ``shared & ~changed`` counted those untested neurons as kept again (measured: 68 kept instead of 28, 40 of
    them untested, on a tiny BERT PTB -> BBC report saved at 8521438)."""
    out = neurons
    for column in neurons.columns:
        p = f"p_hellinger_{column[len('changed_'):]}"
        if column.startswith("changed_") and p in neurons and neurons[column].dtype == bool:
            out = out.copy() if out is neurons else out
            out[column] = _flags_where_tested(neurons[column].to_numpy(), neurons[p].to_numpy(dtype=float))
    return out


def _current_layer_table(neurons: pd.DataFrame, meta: ReportMeta, stored: pd.DataFrame) -> pd.DataFrame:
    """The per-layer table of a loaded report as this hf_txray defines it, recomputed from its per-neuron table as
    :meth:`TransferReport.summary` is. A report saved by an earlier hf_txray (same format version) holds the layer
    figures of that version: ``mean_length_shift_<ft>`` averaged over every shared neuron before 40e3c06 (a report
    saved at 90fb2e0, MiniLM with a user feature for capitalised words, read 0.167 in layer 0 where its summary and a
    compare of its own profiles say -0.75), and ``neurons_changed_<ft>`` 0 where the test judged none. `stored` is
    kept only when the neuron table lacks a column the layer table is computed from."""
    needed = ["layer", "status", "mass_a", "mass_b"] + [f"{name}_{ft}" for ft in meta.feature_types
                                                        for name in ("hellinger", "length_a", "length_b",
                                                                     "length_shift")]
    if any(column not in neurons for column in needed):
        return counts_as_integers(stored)  # saves before the counts were ints hold them as floats
    return _layer_table(neurons, meta.feature_types, meta.same_corpus, meta.tested_feature_types())


def _check_same_stack(a: Profile, b: Profile) -> None:
    """The encoder's and the decoder's neurons of an encoder-decoder are different neurons with the same numbers."""
    stack_a, stack_b = a.meta.config.get("stack"), b.meta.config.get("stack")
    if stack_a != stack_b:
        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: one profiles the {stack_a or 'only'} stack, the other "
            f"the {stack_b or 'only'} stack. Profile both with the same stack=."
        )


def _check_same_modules(a: Profile, b: Profile) -> None:
    """A `module_pattern` chooses which modules are hooked: two patterns (or one and the automatic site search) may
    hook different modules of the same width, e.g. the attention output projection and the block output, whose
    neuron n is not the same unit. The report records A's pattern (pruning masks those modules), so it must be B's."""
    pattern_a, pattern_b = a.meta.config.get("module_pattern"), b.meta.config.get("module_pattern")
    if pattern_a != pattern_b:
        def said(pattern: str | None) -> str:
            return f"module_pattern {pattern!r}" if pattern else "the automatic site search (no module_pattern)"

        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: one hooked the modules of {said(pattern_a)}, the "
            f"other those of {said(pattern_b)}, so neuron n may not be the same unit in both. Profile both stages "
            "with the same module_pattern.")


def _warn_unlike_truncation(a: Profile, b: Profile) -> None:
    """Texts cut at different `max_length` (``long_texts="truncate"``) lose different positions: the stages read
    different parts of the texts, a difference that is not the model's (helper 146: 10% "gained" neurons between
    two stages of one model on the same texts cut at 16 and 64 tokens). Windows read every position at any length."""
    lengths = [p.meta.config.get("max_length") for p in (a, b)]
    cut = [p.meta.num_truncated for p in (a, b)]
    if lengths[0] != lengths[1] and any(cut):
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} cut long texts at different max_length ({lengths[0]!r} vs "
            f"{lengths[1]!r}; {cut[0]} and {cut[1]} texts truncated), so they read different parts of their texts: "
            "part of any difference between them is that, not the model. Profile both with the same max_length, or "
            "with long_texts='window' (the default), which reads every position.", UserWarning, stacklevel=3)


def _check_same_architecture(a: Profile, b: Profile) -> None:
    """Two architectures' neurons with the same numbers are unrelated (BERT-base's and GPT-2's 12 x 3,072): the
    report would pair them, and pruning would then accept it for either model (helper 146)."""
    type_a, type_b = compared_architectures(a.meta.provenance, b.meta.provenance)
    if type_a and type_b and type_a != type_b:
        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: they are of a {type_a} and a {type_b} model "
            "(config.model_type, a composite's text model's), whose neurons with the same layer and number are "
            "unrelated. TX-Ray compares one model's neurons across stages: profile both stages with one architecture.")
    depth_a, depth_b = recorded_depths(a.meta.provenance, b.meta.provenance)
    if depth_a and depth_b and depth_a != depth_b:  # helper 152: MiniLM-L6's layers 0-5 are not a 12-layer model's
        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: they are of a {depth_a}-block and a {depth_b}-block "
            "model (the profiled stack's num_hidden_layers), two different models whose neurons with the same layer "
            "and number are unrelated (a checkpoint loaded with fewer layers counts as another model too). TX-Ray "
            "compares one model's neurons across stages: profile both stages with one model.")
    width_a, width_b = recorded_hidden_sizes(a.meta.provenance, b.meta.provenance)
    if width_a and width_b and width_a != width_b:  # one type, depth and MLP width: e.g. two tiny BERTs, 32 vs 64 wide
        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: they are of models of hidden size {width_a} and "
            f"{width_b} (the profiled stack's hidden_size), two different models whose neurons with the same layer "
            "and number are unrelated, though their type, depth and MLP width agree. TX-Ray compares one model's "
            "neurons across stages: profile both stages with one model.")


def _check_same_experts(a: Profile, b: Profile) -> None:
    """Neuron n is unit n mod width of expert n // width: two numberings of the same count are different neurons."""
    experts_a, experts_b = expert_numbering(a.meta.config), expert_numbering(b.meta.config)
    if experts_a != experts_b:  # a dense layer ({}) is a numbering of its own
        def said(experts: dict) -> str:
            return str(experts) if experts else "dense layers"

        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: their layers number neurons differently "
            f"({said(experts_a)} vs {said(experts_b)}), so neuron n is not the same unit in both. Compare profiles "
            "of models with the same experts (a MoE profile saved by an hf_txray that did not record its experts: "
            "profile it again).")


def _same_corpus(a: Profile, b: Profile) -> bool:
    """Whether two profiles read the same texts: by the hashes of the texts they read when both have one (in any
    order where both split their halves by each text's content: :func:`_same_texts_reordered`; a merged profile's of
    all its parts, :func:`~hf_txray.profile.recorded_texts_multiset_hash`), else by their
    dataset fingerprints; warns when that cannot be told (one side or both merged from parts, the same number of
    texts, and no sign of other texts in their positions: :func:`_read_other_texts`)."""
    fa, fb = a.meta.dataset_fingerprint, b.meta.dataset_fingerprint
    # the hash of the texts read decides: a Trainer's probe and analyze of the same texts may differ in
    # fingerprint only (another select of the same rows), and two datasets may share a fingerprint with other texts
    # (a `map` that reads a file outside its function: helper 165)
    ha, hb = (((p.meta.provenance or {}).get("dataset") or {}).get("texts_hash") for p in (a, b))
    merged = "+" in (fa or "") or "+" in (fb or "")  # a profile merged from parts: the hash of one part, or none
    if ha and hb and not merged:
        return a.meta.num_examples == b.meta.num_examples and (ha == hb or _same_texts_reordered(a, b))
    sa, sb = recorded_texts_multiset_hash(a.meta), recorded_texts_multiset_hash(b.meta)
    if merged and sa and sb:  # every part's texts known, in any order (a merge keeps no order of the whole)
        if sa != sb or a.meta.num_examples != b.meta.num_examples:
            return False
        if _same_texts_reordered(a, b):
            return True
    if a.meta.num_examples == b.meta.num_examples and ((fa and fa == fb) or (ha and ha == hb)):
        return True  # max_positions may stop one early
    # either side merged (both: the same texts split into other parts have other fingerprints, "a+b" vs "c+d")
    if merged and a.meta.num_examples == b.meta.num_examples and not _read_other_texts(a, b):
        which = "both were" if "+" in (fa or "") and "+" in (fb or "") else "one was"
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} have as many texts ({a.meta.num_examples}) but {which} merged from "
            "parts, so hf_txray cannot tell whether they are the same texts: compared as different corpora. If they "
            "are the same texts (in any order: each text's half is drawn from its content), pass "
            "compare(..., same_corpus=True) (hf-txray compare --same-corpus): the noise figures then pair like "
            "halves.", UserWarning, stacklevel=3)
    return False


def _same_texts_reordered(a: Profile, b: Profile) -> bool:
    """Whether two profiles read the same texts in another order: the same
    :func:`~hf_txray.hashes.texts_multiset_hash`, and both split their halves by each text's content
    (:data:`~hf_txray.profile.SPLIT_BY_TEXT`), so that a text lies in the same half in both and like halves hold the
    same texts. Halves split by example id parity hold other texts once the order differs: never reordered then."""
    sa, sb = recorded_texts_multiset_hash(a.meta), recorded_texts_multiset_hash(b.meta)
    return bool(sa) and sa == sb and a.meta.split_halves == b.meta.split_halves == SPLIT_BY_TEXT


def _read_other_texts(a: Profile, b: Profile) -> bool:
    """Whether two profiles certainly read other texts, whatever their fingerprints (a merged profile's, ``"a+b"``,
    never equals the whole corpus's): both split their texts into positions alike (the same tokenizer,
    ``provenance["runtime"]["tokenizer_hash"]``, and the same options that choose positions: ``max_length``,
    ``long_texts``, ``stride``, ``skip_first_positions``..., with no ``max_positions`` to stop either early) and yet
    counted another number of positions, or other values over their corpus (``corpus_count``) of a feature type
    hf_txray labels (token, word, spaCy tags; user features are left out), which the same texts cannot give.
    False when that cannot be told."""
    hashes = [(p.meta.provenance or {}).get("runtime", {}).get("tokenizer_hash") for p in (a, b)]
    if not hashes[0] or hashes[0] != hashes[1] or credit_differences(a.meta, b.meta, grid=False) \
            or any(p.meta.config.get("max_positions") is not None for p in (a, b)):
        return False
    if a.meta.num_positions != b.meta.num_positions:
        return True
    users = {*(a.meta.config.get(USER_FEATURES) or {}), *(b.meta.config.get(USER_FEATURES) or {})}
    return any(_corpus_counts(a.tables[ft]) != _corpus_counts(b.tables[ft]) for ft in a.feature_types
               if ft in BUILTIN_FEATURES and ft not in users and ft in b.tables)


def _corpus_counts(table: FeatureTable) -> dict[str, int]:
    """``{value: corpus count}`` of the values a table counted in its corpus."""
    return {value: int(n) for value, n in zip(table.vocab, table.corpus_count.tolist()) if n}


def _token_count_difference(a: Profile, b: Profile) -> float | None:
    """How far two profiles of the same texts split them into other tokens: the total variation between their token
    corpus counts, as a share of the larger count of positions (0.0: every token string as often in both, so the
    tokenizers agree on this corpus, whatever other entries their vocabularies hold). None without token tables."""
    if "token" not in a.tables or "token" not in b.tables:
        return None
    ca, cb = _corpus_counts(a.tables["token"]), _corpus_counts(b.tables["token"])
    total = max(sum(ca.values()), sum(cb.values()))
    if not total:
        return None
    return sum(abs(ca.get(value, 0) - cb.get(value, 0)) for value in {*ca, *cb}) / 2 / total


def _tokenized_alike(a: Profile, b: Profile) -> tuple[bool, str]:
    """Whether two profiles of the same texts fed the model the same tokens, and what was measured, for the
    tokenizer warnings: every token string counted alike (:func:`_token_count_difference` 0) and as many input tokens
    (``num_input_tokens``, the special tokens included: a post-processor that drops [SEP] or adds a BOS changes what
    the model reads, never a credited token; 0 where not recorded, so not known alike)."""
    moved = _token_count_difference(a, b)
    inputs = a.meta.num_input_tokens, b.meta.num_input_tokens
    notes = [] if moved is None else [f"their token frequencies differ by {moved:.1%} (total variation)"]
    if inputs[0] != inputs[1]:
        notes.append(f"the model read {inputs[0]:,} vs {inputs[1]:,} input tokens (special tokens included)")
    alike = moved == 0 and inputs[0] == inputs[1] and inputs[0] > 0
    return alike, f"; on these same texts {' and '.join(notes)}" if notes else ""


def _no_noise_reason(a: Profile, b: Profile) -> str:
    """Why two profiles' split halves (odd vs even example ids) give no noise statistics, in words ("" when they
    do): sums missing (saved by an older hf_txray), or a stage credited in one half only (one text, or
    ``max_positions`` reached within its first text), whose other half is empty, so a split-half floor would count
    every active neuron as "lost between halves" and the test's design effect cannot be measured."""
    missing = [p.stage for p in (a, b) if p.neuron_count_odd is None or not all(t.has_noise for t in p.tables.values())]
    if missing:
        return f"profile(s) {missing} have no noise statistics (saved by an older hf_txray); profile again to get them"
    one_half = [p.stage for p in (a, b)
                if p.neuron_count.sum() > 0 and int(p.neuron_count_odd.sum()) in (0, int(p.neuron_count.sum()))]
    if one_half:
        return (f"stage(s) {one_half} credited texts of one split half only (one text or copies of it, a few texts "
                "whose contents drew one half, or max_positions reached within the first text), so one of their split "
                "halves is empty; profile more distinct texts per stage (split long documents, e.g. into paragraphs)")
    return ""


def _one_half_features(a: Profile, b: Profile) -> dict[str, str]:
    """Feature types that a stage credited in texts of one split half only, with why they get no p-values or noise
    floors, in words. A value carried by few texts (a user feature labelling the digits of one text) leaves that
    feature's odd or even half empty although the stage's are not: its design effect cannot be measured, and the test
    fell back to 1, as if its credits were independent (a fresh tester: 6 neurons flagged between two stages whose
    digits came from one text each). Only asked when the stages' own halves are not empty (`_no_noise_reason`).
    A stage that credited no value of a feature type at all (a user feature for capitalised words, on lower-cased
    text) has no distribution of it: no Hellinger distance, floor or test, said so rather than left to read as
    "too few credits" (the card said so, and the summary "0 tested")."""
    out = {}
    for ft in a.feature_types:
        never = [p.stage for p in (a, b) if int(p.tables[ft].count.sum()) == 0]
        if never:
            out[ft] = (f"stage(s) {never} credited no {ft} value (none of the positions it credited carries one), so "
                       f"its neurons have no {ft} distribution to compare: no Hellinger distances either; profile "
                       f"texts that hold {ft} values")
            continue
        stages = [p.stage for p in (a, b) if p.tables[ft].has_noise and int(p.tables[ft].count.sum()) > 0
                  and int(p.tables[ft].count_odd.sum()) in (0, int(p.tables[ft].count.sum()))]
        if stages:
            out[ft] = (f"stage(s) {stages} credited {ft} values in texts of one split half only (one text holds them "
                       "all, say, or a few texts whose contents drew one half), so the split halves of "
                       f"{ft} are empty and the design effect of its credits cannot be measured; profile more texts "
                       f"that hold {ft} values")
    return out


def _as_profile(value: Any, name: str) -> Profile:
    """`value` itself, or the profile saved in the folder it names."""
    if isinstance(value, Profile):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Profile.from_pretrained(value)
    raise ConfigurationError(f"compare's {name} must be a Profile or a saved profile's folder, got "
                             f"{type(value).__name__}: load one with hf_txray.Profile.from_pretrained(path).")


def _corpus_of(profile: Profile) -> str:
    """How a report names a profile's corpus: its Hub id, else its fingerprint."""
    return profile.meta.dataset_id or profile.meta.dataset_fingerprint


# A corpus fingerprint as _corpus_of records it: a datasets fingerprint or analyze's hash of a stream (16 hex digits),
# or a merged profile's parts joined by FINGERPRINT_JOIN
CORPUS_FINGERPRINT = re.compile(r"[0-9a-f]{16}(\+[0-9a-f]{16})*")


def corpus_text(name: str | None) -> str:
    """A report's ``dataset_a`` / ``dataset_b`` in words: a dataset id as it is, a fingerprint (what the report
    records for texts given without a ``dataset_id``) as ``in-memory texts [5c4966148fd30784]``, as a profile's
    corpus reads in the viewer and the card; a bare fingerprint read as the name of a dataset."""
    if not name:
        return "in-memory texts"
    return f"in-memory texts [{name}]" if CORPUS_FINGERPRINT.fullmatch(name) else name


def _warn_same_stage_name(a: Profile, b: Profile) -> None:
    """Warn when two profiles (not one compared with itself) share a stage name: two ``analyze`` calls without
    ``stage=`` are both 'default', and the report was named 'default->default' without a word (helper 351), its
    tables, card and plots unable to tell A from B; a push or save_to_disk of both profiles is refused. One profile
    given twice (one folder, or a profile and its reloaded copy: equal) is one stage compared with itself."""
    if a.stage != b.stage or a is b or a == b:
        return
    warnings.warn(
        f"Both profiles are named stage {a.stage!r}, so the report is {a.stage + '->' + b.stage!r} and its tables, "
        "card and plots cannot tell stage A from stage B (hf_txray.save_to_disk and push_to_hub of both profiles "
        "refuse two profiles of one stage name). Name each stage when profiling: analyze(..., stage='pretrained') "
        "and analyze(..., stage='finetuned') (CLI: --stage).", UserWarning, stacklevel=3)


def compare(a: Profile | str | os.PathLike, b: Profile | str | os.PathLike, alpha: float = 0.05, test: bool = True, num_resamples: int | None = None,
            seed: int | None = None, same_corpus: bool | None = None) -> TransferReport:
    """Compare two profiles of the same layers and features: stage `a` -> stage `b`.

    Warns when the stages' credit totals differ by more than 2x: lengths, lost/gained shares and Hellinger all move
    with sample size alone; profile both with ``analyze(..., max_positions=N)`` to compare equal sizes. Between 1.1x
    and 2x it warns that the shares lost and gained at half size stand off their split-half noise floors by the size
    difference alone (the floors pair two halves of one stage, of one size); for profiles without split halves (no
    noise floors: ``meta.no_noise_reason``), that the shares lost and gained move by the size difference alone. Warns when
    token features were profiled with different tokenizer vocabularies (``provenance["runtime"]
    ["tokenizer_vocab_hash"]``): the token distributions then describe unlike units; and when tokenizers of one
    vocabulary split texts otherwise (``tokenizer_hash``: another normalizer, pre-tokenizer or post-processor). On the
    same texts neither is given where both stages counted every token string alike and fed the model as many input
    tokens (a pad token added to the vocabulary changes no text's tokens; a post-processor that drops [SEP] changes
    the input tokens alone), and each gives the total variation between the stages' token frequencies.

    Args:
        a (`Profile` or `str`): the earlier stage (e.g. pretrained on its own corpus); a saved profile's folder is
            loaded (``Profile.from_pretrained``), as ``hf-txray compare A B`` does.
        b (`Profile` or `str`): the later stage (e.g. the same model on a new domain, or after fine-tuning).
        alpha (`float`, *optional*, defaults to 0.05): false discovery rate of the Benjamini-Hochberg flags
            ``changed_<ft>``, per feature type over the tested neurons.
        test (`bool`, *optional*, defaults to `True`): run the per-neuron test (``p_hellinger_<ft>``: "A and B
            differ more than sampling explains", a chi-square of homogeneity with a moderated split-half design
            effect, see :mod:`hf_txray.significance`; analytic, milliseconds). `False` leaves the p-values NaN,
            flags nothing, and the summary's tested and changed counts NaN (not run, rather than 0 tested).
        num_resamples (`int`, *optional*): deprecated (the test no longer resamples): 0 means ``test=False``, any
            other value is ignored with a `FutureWarning`.
        seed (`int`, *optional*): deprecated and ignored (the test is deterministic).
        same_corpus (`bool`, *optional*): whether both stages profiled the same texts (a model before and after
            fine-tuning on one probe; in any order, since each text's half is drawn from its content, except in
            profiles split by example id, ``meta.split_halves == "example_id"``): the noise figures then pair like
            halves (odd with odd). Detected when None: the same hash of the texts read, in order or, for profiles
            split by content, in any order (``texts_multiset_hash``, where ``max_positions`` stopped neither run);
            else equal dataset fingerprints. A profile merged from parts (fingerprint ``"a+b"``) is matched by the
            sum of its parts' hashes in any order (``provenance["merged_texts_multiset_hash"]``) when both split by
            content; where a part lacks it, it cannot be matched to one profile of the whole corpus, nor to a merge
            split otherwise: pass True (a warning says so when the example counts agree, unless the stages' positions
            or corpus counts show other texts).

    Returns:
        :class:`TransferReport`.

    Raises:
        IncompatibleProfilesError: when site, stack (encoder/decoder of an encoder-decoder), module_pattern, layers,
            neuron counts, feature types or the model's shape (``config.model_type``, depth and ``hidden_size``,
            where both profiles recorded them) differ.
        ProfileFormatError: when a profile holds sums no profiling run produces (NaN, infinite or negative masses,
            split halves outside their totals: :meth:`Profile.check_statistics`), or `a` or `b` is a folder that
            holds no saved profile (a report, a results folder of several stages: :meth:`Profile.from_pretrained`).
        ConfigurationError: when `alpha` is not in (0, 1) or `num_resamples` is negative, or `a` or `b` is neither a
            `Profile` nor a path.
        ArtifactNotFoundError: when `a` or `b` is a path that does not exist.

    Example:
        ```python
        >>> report = hf_txray.compare(pretrained, finetuned)
        >>> report.layers[["layer", "share_lost", "mean_hellinger_pos", "share_changed_pos"]]
        >>> report.most_changed(10, feature_type="pos")
        ```
    """
    a, b = _as_profile(a, "a"), _as_profile(b, "b")
    # What was hooked first (stack, modules, model): two models' or stacks' profiles differ in layers or widths too,
    # where check_compatible's advice ("profile both with the same layers") cannot help.
    _check_same_stack(a, b)
    _check_same_modules(a, b)
    _check_same_architecture(a, b)
    a.check_compatible(b, "compare")
    a.check_statistics()
    b.check_statistics()
    _check_same_experts(a, b)
    alpha = significance.check_alpha(alpha)
    test = check_switch("test", test)  # "no" or "false" is truthy: the test ran
    same_corpus = check_switch("same_corpus", same_corpus, none="detect")
    if num_resamples is not None:
        num_resamples = check_count("num_resamples", num_resamples, minimum=0)
        if num_resamples == 0:
            test = False
        else:
            warnings.warn("compare(num_resamples=...) is deprecated and ignored: the per-neuron test is analytic now "
                          "(hf_txray.significance). Use test=False to skip it.", FutureWarning, stacklevel=2)
    if seed is not None:
        warnings.warn("compare(seed=...) is deprecated and ignored: the per-neuron test is deterministic.",
                      FutureWarning, stacklevel=2)
    _warn_same_stage_name(a, b)
    reason = _no_noise_reason(a, b)  # no split halves: no noise floors for the size warning to speak of
    credits_a, credits_b = int(a.neuron_count.sum()), int(b.neuron_count.sum())
    for stage, credits, profile in ((a.stage, credits_a, a), (b.stage, credits_b, b)):
        if credits == 0:  # every neuron of the other stage would be "gained" (or "lost"): no transfer to report
            raise IncompatibleProfilesError(
                f"Stage {stage!r} credited no position ({profile.meta.num_examples} texts, {profile.meta.num_empty} "
                "empty): there is nothing to compare it with. Profile it on texts that hold tokens (check the text "
                "column, max_length and skip_first_positions).")
    if min(credits_a, credits_b) * SIZE_RATIO_WARNING < max(credits_a, credits_b):
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} differ {max(credits_a, credits_b) / max(min(credits_a, credits_b), 1):.1f}x "
            f"in credits ({credits_a} vs {credits_b}): lengths, lost/gained shares and Hellinger move with sample size. "
            "Profile both with analyze(..., max_positions=N) for equal sizes.", UserWarning, stacklevel=2)
    elif min(credits_a, credits_b) * LOST_GAINED_RATIO_WARNING < max(credits_a, credits_b):
        # below 2x the Hellinger figures at half size stay between their floors, but lost and gained do not; a report
        # without split halves has no floors (nor figures at half size): its full-size shares move alike
        raised, lowered = ("lost", "gained") if credits_a > credits_b else ("gained", "lost")
        effect = (f"raises the share {raised} (at half size) against its split-half noise floors and lowers the share "
                  f"{lowered}, without any change (two samples of one corpus, 1.27x apart: lost 10.0% against floors "
                  "of 8.4% / 8.4%, gained 7.0%; 1.26x apart: lost 10.1% against 7.4% / 7.7%, gained 7.5%)"
                  if not reason else
                  f"raises the share {raised} and lowers the share {lowered}, without any change (two samples of one "
                  "corpus, 1.30x apart: lost 9.9%, gained 7.9%)")
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} differ {max(credits_a, credits_b) / min(credits_a, credits_b):.2f}x "
            f"in credits ({credits_a} vs {credits_b}): the shares lost and gained move with sample size, so the size "
            f"difference alone {effect}. Profile both with analyze(..., max_positions=N) for equal sizes.",
            UserWarning, stacklevel=2)
    same = _same_corpus(a, b) if same_corpus is None else same_corpus
    # on the same texts, the token counts show whether the tokenizers split them alike (a pad token added at the end
    # of the vocabulary for fine-tuning, or added words the texts never hold, change no token of them)
    alike, measured = _tokenized_alike(a, b) if same else (False, "")
    vocabularies = tokenizer_difference(a.meta, b.meta)
    if vocabularies and "token" in a.feature_types and not alike:
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} were profiled with different tokenizers ({vocabularies}{measured}): "
            "their token features are strings of different vocabularies, so the token distributions, their Hellinger "
            "distances and lengths compare unlike units. Compare the tokenizer-independent features (word, pos), or "
            "profile both stages with one tokenizer.", UserWarning, stacklevel=2)
    split = tokenizer_split_difference(a.meta, b.meta)
    if split and not alike:
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} were profiled with tokenizers that split texts into other tokens "
            f"({split}: another normalizer, pre-tokenizer or post-processor, such as lower-casing or "
            f"add_prefix_space{measured}): the same texts give other token features and other positions to credit, so "
            "part of any difference between the stages is the tokenizer's, not the model's. Profile both stages with "
            "one tokenizer.", UserWarning, stacklevel=2)
    relabelled = user_feature_differences(a.meta, b.meta)
    if relabelled:
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} labelled their user feature(s) {', '.join(relabelled)} with different "
            "functions (another code, closure or default arguments under one name): a value of one stage is not "
            "that of the other, so their distributions, Hellinger distances and p-values compare two labellings. "
            "Profile both stages with the same UserFeature function, or give the new one another name.",
            UserWarning, stacklevel=2)
    # a truncating run has no stride, and the default stride follows max_length (which may differ)
    stride_follows = "truncate" in (a.meta.config.get("long_texts"), b.meta.config.get("long_texts")) or \
        a.meta.config.get("max_length") != b.meta.config.get("max_length")
    for name, mine, theirs in credit_differences(a.meta, b.meta, grid=False):
        if name in UNLIKE_POSITIONS and not (name == "stride" and stride_follows):
            warnings.warn(
                f"Stages {a.stage!r} and {b.stage!r} were profiled with different {name} ({mine!r} vs {theirs!r}), "
                "which changes which positions are credited and how: part of any difference between them is that, "
                f"not the model. Profile both stages with the same {name}.", UserWarning, stacklevel=2)
    _warn_unlike_truncation(a, b)
    if reason:
        warnings.warn(f"The report has no p-values or noise floors: {reason}.", UserWarning, stacklevel=2)
    one_half = {} if reason else _one_half_features(a, b)
    for ft, why in one_half.items():
        warnings.warn(f"The report has no p-values or noise floors of {ft}: {why}.", UserWarning, stacklevel=2)
    meta = ReportMeta(
        stage_a=a.stage, stage_b=b.stage, model_a=a.meta.model_id, model_b=b.meta.model_id,
        dataset_a=_corpus_of(a), dataset_b=_corpus_of(b),
        site=a.meta.site, layers=list(a.layers), num_neurons=a.num_neurons, feature_types=list(a.feature_types),
    )
    meta.alpha, meta.credits_a, meta.credits_b = alpha, credits_a, credits_b
    meta.top_k = a.meta.top_k  # the card says max-1 or top-k by it (a report alone said "top-k" for k = 1)
    meta.stack, meta.module_pattern = a.meta.config.get("stack"), a.meta.config.get("module_pattern")
    meta.experts = expert_numbering(a.meta.config)
    meta.feature_kinds = compared_feature_kinds(a, b)
    meta.feature_orders = compared_feature_orders(a, b)
    meta.test = (f"chi-square of homogeneity, moderated split-half design effect (min expected "
                 f"{significance.MIN_EXPECTED:g}, prior df {significance.PRIOR_DF:g}, per stage, weighted by the other "
                 "stage's credits, Satterthwaite df, each stage's at most its texts (those that carry the feature "
                 "type, where recorded) less 1)") if test else ""
    meta.same_corpus = same
    if meta.same_corpus and a.meta.split_halves != b.meta.split_halves:
        # one stage's halves by content, the other's by example id parity: their halves hold other texts
        warnings.warn(
            f"Stages {a.stage!r} and {b.stage!r} profiled the same texts but split them into halves differently "
            f"({a.meta.split_halves} vs {b.meta.split_halves}: one was saved by an older hf_txray, or merged with such "
            "a part), so their noise figures pair the halves as for different corpora. Profile both with this "
            "hf_txray to pair like halves.", UserWarning, stacklevel=2)
        meta.same_corpus = False
    meta.no_noise_reason, meta.no_noise_features = reason, one_half
    meta.model_types = compared_architectures(a.meta.provenance, b.meta.provenance)
    meta.num_hidden_layers = recorded_depths(a.meta.provenance, b.meta.provenance)
    # over the profiled layers, as check_compatible reads the records: blocks renumbered alike in both stages are
    # the same units, whatever other blocks lost, and a plan ranked on the report is taken on a model numbered alike
    meta.pruned = [pruning_fingerprint(record, meta.layers) if known else None
                   for known, record in (recorded_pruning(p.meta.provenance) for p in (a, b))]
    neurons = _neuron_table(a, b, {"alpha": alpha, "test": bool(test), "dispersion": meta.dispersion,
                                   "same_corpus": meta.same_corpus, "halves": not reason, "one_half": set(one_half),
                                   "texts": {ft: (a.meta.carrying_texts(ft), b.meta.carrying_texts(ft))
                                             for ft in a.feature_types}})
    return TransferReport(meta, neurons, _layer_table(neurons, meta.feature_types, meta.same_corpus,
                                                      meta.tested_feature_types()),
                          _mass_share_table(a, b))
