"""`Profile`: the neuron preferences of one model at one stage, on one corpus.

A profile holds, per hooked layer and neuron, the credited mass and count (max-1 credit, see GUIDE §1), and per
feature type a sparse table of (neuron, feature) -> mass, count, plus each feature's corpus frequency and every
neuron's top activating examples. Everything else (distributions, lengths, entropies) is derived from these.
Saved in the dataset layout (:mod:`hf_txray.layout`: parquet configs and a dataset card); the round trip is exact.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .accumulators import (ActivationHistogram, NoiseSums, PositionMass, SparseSums, TopExamples, merged,
                           split_keys)
from .artifact import Artifact, meta_from_record
from .counts import as_int, check_count
from .errors import ConfigurationError, IncompatibleProfilesError, ProfileFormatError
from .features import check_feature_kinds, check_feature_orders, fingerprints_differ
from .hashes import combined_texts_sum_hash
from .feature_table import FeatureTable, same_optional
from .layout import OWNED_FOLDERS, read_single, write_folder
from .options import resolve_layer
from .provenance import is_embedded, pruning_difference
from .significance import DEFAULT_MIN_COUNT, check_min_count

EXAMPLE_COLUMNS = [
    "layer", "neuron", "rank", "activation", "example_id", "token_index", "char_start", "char_end",
    "token", "left", "right",
]  # fmt: skip


SPLIT_BY_TEXT = "text_hash"  # a text's half is the lowest bit of hf_txray.hashes.text_hashes: copies share one
SPLIT_BY_ID = "example_id"  # a text's half is its example id's parity (profiles saved before SPLIT_BY_TEXT)


@dataclass
class ProfileMeta:
    """What was profiled and how.

    Args:
        model_id (`str`): Hub id or path of the model.
        site (`str`): ``"mlp"`` or ``"residual"``.
        layers (`list[int]`): profiled block indices.
        num_neurons (`int`): neurons per layer.
        feature_types (`list[str]`): e.g. ``["token", "pos"]``.
        top_k (`int`, *optional*, defaults to 1): neurons credited per (layer, position): the credit rule.
        stage (`str`, *optional*, defaults to `"default"`): a name for the training stage, e.g. ``"pretrained"``.
        revision (`str`, *optional*): the model's revision (commit, branch or tag).
        max_examples_per_neuron (`int`, *optional*, defaults to 0): top examples kept per neuron.
        dataset_id (`str`, *optional*): Hub id or path of the corpus.
        dataset_fingerprint (`str`, *optional*, defaults to `""`): content hash of the texts read.
        num_examples (`int`, *optional*, defaults to 0): texts read.
        num_example_ids (`int`, *optional*, defaults to 0): example ids lie in ``[0, num_example_ids)``: more than
            `num_examples` when processes stop inside their shards (``max_positions``); 0 in profiles saved before it
            was recorded (see :attr:`Profile.example_id_span`).
        num_positions (`int`, *optional*, defaults to 0): token positions that could be credited.
        num_uncredited (`int`, *optional*, defaults to 0): (layer, position) pairs whose best activation is <= 0,
            credited to nobody.
        num_truncated (`int`, *optional*, defaults to 0): texts cut at ``max_length``.
        num_empty (`int`, *optional*, defaults to 0): texts without a token to credit (empty, blank, only
            characters the tokenizer drops, or only positions ``skip_first_positions`` leaves out).
        num_windowed (`int`, *optional*, defaults to 0): texts longer than ``max_length`` split into windows
            (``long_texts="window"``).
        num_input_tokens (`int`, *optional*, defaults to 0): non-padding tokens fed to the model (window context
            included).
        num_padded_tokens (`int`, *optional*, defaults to 0): rows x padded width of every batch (padding share =
            1 - input / padded).
        num_feature_texts (`dict[str, int]`, *optional*): per feature type, the texts with a credited position
            that carries a value of it (see :meth:`carrying_texts`); ``{}`` in profiles saved before it was recorded.
        split_halves (`str`, *optional*, defaults to `"example_id"`): how the noise statistics split the texts into two
            halves: :data:`SPLIT_BY_TEXT` (content hash; what ``analyze`` records) or :data:`SPLIT_BY_ID` (example
            id parity: profiles saved before, and merges with one of them).
        config (`dict`, *optional*): the options of the run.
        hf_txray_version (`str`, *optional*, defaults to `""`): the version that made the profile.
        created_at (`str`, *optional*, defaults to `""`): ISO 8601 time of creation (UTC).
        provenance (`dict`): what the numbers were computed from, pinned (model and dataset commits or content
            hashes, every option, versions); see :mod:`hf_txray.provenance`. Empty in profiles made before it existed.
    """

    model_id: str
    site: str
    layers: list[int]
    num_neurons: int
    feature_types: list[str]
    top_k: int = 1
    stage: str = "default"
    revision: str | None = None
    max_examples_per_neuron: int = 0
    dataset_id: str | None = None
    dataset_fingerprint: str = ""
    num_examples: int = 0
    # Example ids lie in [0, num_example_ids): more than num_examples when processes stop inside their shards
    # (max_positions); 0 in profiles saved before it was recorded (see Profile.example_id_span).
    num_example_ids: int = 0
    num_positions: int = 0
    num_uncredited: int = 0  # (layer, position) pairs whose best activation is <= 0: credited to nobody
    num_truncated: int = 0
    num_empty: int = 0  # texts without a token to credit: empty, blank, only characters the tokenizer drops, or
    # only positions skip_first_positions leaves out
    num_windowed: int = 0  # texts longer than max_length, split into windows (long_texts="window")
    num_input_tokens: int = 0  # non-padding tokens of the texts profiled, as fed to the model (window context included)
    num_padded_tokens: int = 0  # rows x padded width of every batch: padding share = 1 - input / padded
    # Per feature type, the texts with at least one credited position that carries a value of it (of a sparse user
    # feature: the few texts its per-neuron test reads a design effect from); {} in profiles saved before it was
    # recorded (see carrying_texts).
    num_feature_texts: dict[str, int] = field(default_factory=dict)
    # How the noise statistics split the texts into two halves: SPLIT_BY_TEXT (the content hash's lowest bit, so
    # copies of a text share a half) or SPLIT_BY_ID (example id parity: profiles saved before SPLIT_BY_TEXT, and
    # merges with one of them: their copies of a text may fall in both halves). analyze records SPLIT_BY_TEXT.
    split_halves: str = SPLIT_BY_ID
    # left out of the repr (a notebook cell showing profile.meta printed ~3.7k characters on one line): read them as
    # the attributes they are
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    hf_txray_version: str = ""
    created_at: str = ""
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)  # pinned sources and options: provenance.py

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProfileMeta":
        """The metadata from its saved record (:func:`~hf_txray.artifact.meta_from_record`).

        Args:
            data (`dict`): the saved record (:meth:`to_dict`).
        """
        return meta_from_record(cls, data, f"profile {data.get('stage')!r}" if isinstance(data, dict) else "profile")

    @property
    def feature_kinds(self) -> dict[str, str]:
        """Each feature type's kind (``"text"`` or ``"tag"``) as the run that profiled it had it registered
        (``config["feature_kinds"]``), which :func:`~hf_txray.features.is_tag_feature` and its kin read instead of
        this process's registry; empty in profiles saved before it was recorded (today's rule: registered, else a
        tag).

        Raises:
            ProfileFormatError: the record is damaged (:func:`~hf_txray.features.check_feature_kinds`).
        """
        return check_feature_kinds(self.config.get(FEATURE_KINDS) or {}, f"profile {self.stage!r}")

    @property
    def feature_orders(self) -> dict[str, float]:
        """Each feature type's reading order (:attr:`~hf_txray.features.FeatureType.order`) as the run that profiled
        it had it registered (``config["feature_orders"]``), which :func:`~hf_txray.features.reading_order` and
        :func:`~hf_txray.features.default_feature_type` read instead of this process's registry; empty in profiles
        saved before it was recorded (today's rule: registered, else a user feature's default order).

        Raises:
            ProfileFormatError: the record is damaged (:func:`~hf_txray.features.check_feature_orders`).
        """
        return check_feature_orders(self.config.get(FEATURE_ORDERS) or {}, f"profile {self.stage!r}")

    def carrying_texts(self, feature_type: str) -> int:
        """The texts with a credited position that carries a value of `feature_type` (the cap of its per-neuron
        test's degrees of freedom, :func:`hf_txray.significance.homogeneity_pvalues`); in a profile saved before
        they were recorded, every text that credits a position (``num_examples - num_empty``).

        Args:
            feature_type (`str`): a profiled feature type.
        """
        recorded = self.num_feature_texts.get(feature_type)
        return self.num_examples - self.num_empty if recorded is None else int(recorded)


# The ProfileMeta run counters that merging two profiles adds up, and with num_example_ids (a maximum) every counter
# Profile.check_statistics requires to be an int >= 0
SUMMED_COUNTERS = ("num_examples", "num_positions", "num_uncredited", "num_truncated", "num_empty", "num_windowed",
                   "num_input_tokens", "num_padded_tokens")
COUNTER_FIELDS = (*SUMMED_COUNTERS, "num_example_ids")


@dataclass
class HistogramTable:
    """Sparse per-neuron histograms of credited activations: the non-empty (row, bin) pairs, sorted by row then
    bin, with their counts. Bins are those of ``meta.config["activation_histogram"]``
    (:func:`hf_txray.accumulators.histogram_edges`), ``num_bins = len(edges) + 1``."""

    num_bins: int
    rows: np.ndarray
    bins: np.ndarray
    counts: np.ndarray

    def of_row(self, row: int) -> np.ndarray:
        """The dense counts of one row, shape ``(num_bins,)``."""
        lo, hi = np.searchsorted(self.rows, [row, row + 1])
        out = np.zeros(self.num_bins, dtype=np.int64)
        out[self.bins[lo:hi]] = self.counts[lo:hi]
        return out

    def dense(self, num_rows: int) -> np.ndarray:
        """All rows as a dense ``(num_rows, num_bins)`` array."""
        out = np.zeros((num_rows, self.num_bins), dtype=np.int64)
        out[self.rows, self.bins] = self.counts
        return out

    def to_accumulator(self, edges: np.ndarray) -> ActivationHistogram:
        """These counts as the :class:`~hf_txray.accumulators.ActivationHistogram` over bin `edges` (its merge and
        state dict are the contract that profile merges use).

        Raises:
            ValueError: `edges` do not give this table's number of bins.
        """
        if len(edges) + 1 != self.num_bins:
            raise ValueError(f"{len(edges)} bin edges give {len(edges) + 1} bins, not {self.num_bins}.")
        return ActivationHistogram(edges).load_state_dict(
            {"edges": edges, "keys": self.rows * self.num_bins + self.bins, "counts": self.counts})

    @classmethod
    def from_accumulator(cls, histogram: ActivationHistogram) -> "HistogramTable":
        return cls(histogram.num_bins, *histogram.entries())

    def equals(self, other: "HistogramTable") -> bool:
        return self.num_bins == other.num_bins and all(
            np.array_equal(getattr(self, n), getattr(other, n)) for n in ("rows", "bins", "counts"))

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.bins.nbytes + self.counts.nbytes


def merged_vocab(*vocabs: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for vocab in vocabs:
        seen.update(dict.fromkeys(vocab))
    return list(seen)


def merge_tables(a: FeatureTable, b: FeatureTable) -> FeatureTable:
    """Sum two tables of one feature type (vocabularies united) through the accumulators' merge contract."""
    vocab = merged_vocab(a.vocab, b.vocab)
    a, b = a.remapped(vocab), b.remapped(vocab)
    sums = merged([_table_sums(a), _table_sums(b)])
    noise = {}
    if a.has_noise and b.has_noise:  # every key of both tables is kept, so the columns align with `sums`
        both = merged([_table_noise(a), _table_noise(b)])
        noise = {"mass_odd": both.odd.mass, "count_odd": both.odd.count, "mass_sq": both.squares.mass}
    rows, feature_ids = split_keys(sums.keys)
    return FeatureTable(vocab, rows, feature_ids, sums.mass, sums.count, a.corpus_count + b.corpus_count, **noise)


def _table_sums(table: FeatureTable) -> SparseSums:
    return SparseSums().load_state_dict({"keys": table.keys(), "mass": table.mass, "count": table.count})


def _table_noise(table: FeatureTable) -> NoiseSums:
    zeros = np.zeros(len(table.rows), dtype=np.int64)  # squared masses carry no counts of their own
    return NoiseSums().load_state_dict({
        "odd.keys": table.keys(), "odd.mass": table.mass_odd, "odd.count": table.count_odd,
        "squares.keys": table.keys(), "squares.mass": table.mass_sq, "squares.count": zeros,
    })


def merge_examples(a: pd.DataFrame, b: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """Keep the `capacity` best examples per neuron of two example tables, through :class:`TopExamples`' merge (the
    same order: activation descending, then example id, then token index; ties keep `a` first).

    Each entry carries its row in ``concat([a, b])``, so its text columns (token, left, right) come along whole.
    """
    both = pd.concat([a, b], ignore_index=True) if len(a) and len(b) else (a if len(a) else b).reset_index(drop=True)
    if len(both) == 0:
        return both[EXAMPLE_COLUMNS]
    # One accumulator row per (layer, neuron) present, numbered in sorted order: the kept entries come out sorted.
    layer, neuron = both["layer"].to_numpy(np.int64), both["neuron"].to_numpy(np.int64)
    pairs, rows = np.unique(layer * (int(neuron.max()) + 1) + neuron, return_inverse=True)
    parts = [_frame_examples(both, rows, len(pairs), capacity, lo, hi) for lo, hi in ((0, len(a)), (len(a), len(both)))]
    kept = merged(parts).entries()
    out = both.iloc[kept["source"]].reset_index(drop=True)
    out["rank"] = kept["rank"]
    return out.sort_values(["layer", "neuron", "rank"], kind="stable")[EXAMPLE_COLUMNS].reset_index(drop=True)


def _frame_examples(frame: pd.DataFrame, rows: np.ndarray, num_rows: int, capacity: int, lo: int,
                    hi: int) -> TopExamples:
    """Rows ``[lo, hi)`` of an example table as :class:`TopExamples`, each entry with its ``source`` row."""
    part = frame.iloc[lo:hi]
    top = TopExamples(num_rows, capacity, extra_fields=("source",))
    top.add(rows[lo:hi], part["activation"].to_numpy(np.float64), source=np.arange(lo, hi, dtype=np.int64),
            **{name: part[name].to_numpy(np.int64) for name in TopExamples.FIELDS})
    return top


def empty_examples() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="int64") for c in EXAMPLE_COLUMNS})
    frame["activation"] = frame["activation"].astype("float64")
    for column in ("token", "left", "right"):
        frame[column] = frame[column].astype(object)
    return frame


class Profile(Artifact):
    """Neuron preference profile of one model stage on one corpus.

    Built by :func:`hf_txray.analyze`; loaded with :meth:`from_pretrained`. A neuron's preference distribution over
    feature values is TX-Ray's (Rethmeier et al., 2020, "TX-Ray: Quantifying and Explaining Model-Knowledge Transfer
    in (Un-)Supervised NLP", UAI): each (layer, position) credits its maximally activated neuron(s) with the position's
    feature values, weighted by the activation.

    Args:
        meta (`ProfileMeta`): what was profiled and how.
        neuron_mass (`np.ndarray` of float64, shape `(num_layers, num_neurons)`): credited activation mass per neuron.
        neuron_count (`np.ndarray` of int64, shape `(num_layers, num_neurons)`): credits per neuron.
        tables (`dict[str, FeatureTable]`): per feature type, the sparse (neuron row, feature) mass and count table.
        examples (`pd.DataFrame`, *optional*): top examples per neuron (columns :data:`EXAMPLE_COLUMNS`); defaults to
            none.
        neuron_count_odd (`np.ndarray` of int64, shape `(num_layers, num_neurons)`, *optional*): credits from one
            split half (noise statistics); None in profiles saved before them.
        position_mass (`PositionMass`, *optional*): credited mass by position index (see :meth:`diagnostics`).
        activation_histogram (`HistogramTable`, *optional*): counts of credited activations per log-spaced bin.
        output_effects (`pd.DataFrame`, *optional*): top promoted/suppressed vocabulary tokens
            (:func:`hf_txray.output_effects_table`), present when ``analyze(..., output_effects=True)``.

    Example:
        ```python
        >>> texts = hf_txray.corpora.penn_treebank("train", num_samples=3000)
        >>> profile = hf_txray.analyze("sentence-transformers/all-MiniLM-L6-v2", texts, features=("token", "pos"),
        ...                            max_length=64)
        >>> profile.distribution(layer=3, neuron=119, feature_type="pos")   # rounded here
        {'AUX': 0.94, 'VERB': 0.04, 'PRON': 0.01, 'ADP': 0.01}
        >>> profile.save_pretrained("results/profiles/pretrained")
        ```
    """

    artifact_type = "profile"
    # A push deletes every folder of the dataset layout this save lacks: a previous push's neuron_outputs, or the
    # reports and plots of an analysis pushed there before, would be left beside the profile, undeclared.
    optional_folders = OWNED_FOLDERS
    format_version = 2  # 1: json + safetensors + parquet files (before the dataset layout)

    def __init__(
        self,
        meta: ProfileMeta,
        neuron_mass: np.ndarray,
        neuron_count: np.ndarray,
        tables: dict[str, FeatureTable],
        examples: pd.DataFrame | None = None,
        neuron_count_odd: np.ndarray | None = None,
        position_mass: PositionMass | None = None,
        activation_histogram: HistogramTable | None = None,
        output_effects: pd.DataFrame | None = None,
    ):
        self.meta = meta
        self.neuron_mass = np.asarray(neuron_mass, dtype=np.float64)
        self.neuron_count = np.asarray(neuron_count, dtype=np.int64)
        self.tables = tables
        self.examples = examples if examples is not None else empty_examples()
        # Noise statistics (None in profiles saved before they existed): credits from odd example ids per neuron
        # (split-half status noise floors), and credited mass by position index (see :meth:`diagnostics`).
        self.neuron_count_odd = None if neuron_count_odd is None else np.asarray(neuron_count_odd, dtype=np.int64)
        self.position_mass = position_mass
        # Neuron pages (issue 15), None in profiles written before them: counts of credited activations per
        # log-spaced bin (sparse); top promoted/suppressed vocabulary tokens
        # (hf_txray.output_effects_table), present when analyze(..., output_effects=True).
        self.activation_histogram = activation_histogram
        self.output_effects = output_effects

    # ----- shape and lookup -------------------------------------------------------------------------------------
    @property
    def stage(self) -> str:
        return self.meta.stage

    @property
    def layers(self) -> list[int]:
        return list(self.meta.layers)

    @property
    def num_neurons(self) -> int:
        return self.meta.num_neurons

    @property
    def feature_types(self) -> list[str]:
        return list(self.meta.feature_types)

    @property
    def num_rows(self) -> int:
        return len(self.meta.layers) * self.meta.num_neurons

    def _layer_position(self, layer: int) -> int:
        """Where `layer` (a block index, or negative: counted from the last profiled layer) sits in the tables."""
        return list(self.meta.layers).index(resolve_layer(self.meta.layers, layer, "was not profiled"))

    def _row(self, layer: int, neuron: int) -> int:
        index = as_int(neuron)  # numpy ints and 0-d int arrays or tensors too (``scores.argmax()``)
        if index is None:  # 1.5 passed the range check and failed later with a bare IndexError (helper 188)
            raise ConfigurationError(f"A neuron is an int index, got {neuron!r}.")
        if not 0 <= index < self.num_neurons:
            raise ConfigurationError(f"Neuron {index} is out of range: layers have {self.num_neurons} neurons.")
        return self._layer_position(layer) * self.num_neurons + index

    def _table(self, feature_type: str) -> FeatureTable:
        if not isinstance(feature_type, str) or feature_type not in self.tables:  # ['pos']: a bare "unhashable type"
            raise ConfigurationError(f"Feature type {feature_type!r} was not profiled; available: "
                                     f"{', '.join(self.feature_types)} (one name, a str).")
        return self.tables[feature_type]

    # ----- per-neuron views -------------------------------------------------------------------------------------
    def distribution(self, layer: int, neuron: int, feature_type: str = "pos") -> dict[str, float]:
        """The neuron's preference distribution p(f) = mass(f) / total mass, most preferred first (TX-Ray's, Rethmeier
        et al., UAI 2020).

        Args:
            layer (`int`): a profiled block index (negative: counted from the last profiled layer).
            neuron (`int`): the neuron's index in the layer.
            feature_type (`str`, *optional*, defaults to `"pos"`): a profiled feature type.

        Returns:
            `dict[str, float]`: feature value -> probability (unitless, summing to 1; empty for a neuron never
            credited).

        Raises:
            ConfigurationError: a layer that was not profiled, a neuron that is not an int in range, or a feature type that was
                not profiled.
        """
        stats = self.feature_stats(layer, neuron, feature_type)
        return dict(zip(stats["feature"], stats["probability"]))

    def feature_stats(self, layer: int, neuron: int, feature_type: str = "pos") -> pd.DataFrame:
        """Features of one neuron with mass, count and probability, sorted by mass (descending).

        Args:
            layer (`int`): a profiled block index (negative: counted from the last profiled layer).
            neuron (`int`): the neuron's index in the layer.
            feature_type (`str`, *optional*, defaults to `"pos"`): a profiled feature type.

        Returns:
            `pd.DataFrame`: one row per feature value credited to the neuron, columns ``feature``, ``mass`` (summed
            activations credited), ``count`` (credits) and ``probability`` (mass / the neuron's total mass).

        Raises:
            ConfigurationError: a layer that was not profiled, a neuron that is not an int in range, or a feature type that was
                not profiled.
        """
        table = self._table(feature_type)
        row = self._row(layer, neuron)
        lo, hi = np.searchsorted(table.rows, [row, row + 1])
        mass, count = table.mass[lo:hi], table.count[lo:hi]
        total = mass.sum()
        frame = pd.DataFrame({
            "feature": [table.vocab[i] for i in table.feature_ids[lo:hi]],
            "mass": mass, "count": count, "probability": mass / total if total > 0 else np.zeros_like(mass),
        })
        return frame.sort_values(["mass", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def top_features(self, layer: int, neuron: int, feature_type: str = "token", k: int = 10) -> list[tuple[str, float]]:
        """The `k` most preferred features of a neuron as (feature, probability) pairs.

        Args:
            layer (`int`): a profiled block index (negative: counted from the last profiled layer).
            neuron (`int`): the neuron's index in the layer.
            feature_type (`str`, *optional*, defaults to `"token"`): a profiled feature type.
            k (`int`, *optional*, defaults to 10): how many features, at least 0.

        Returns:
            `list[tuple[str, float]]`: up to `k` (feature, probability) pairs, most preferred first.

        Raises:
            ConfigurationError: a layer that was not profiled, a neuron that is not an int in range, a feature type that was
                not profiled, or `k` not an int >= 0 (pandas' ``head(-1)`` would drop the last feature without a word,
                as ``report.most_changed`` refuses a negative count).
        """
        k = check_count("k", k, minimum=0, note="the number of features")
        stats = self.feature_stats(layer, neuron, feature_type).head(k)
        return list(zip(stats["feature"], stats["probability"].astype(float)))

    def top_examples(self, layer: int, neuron: int) -> pd.DataFrame:
        """The neuron's highest credited positions: activation, token and its left/right context.

        Args:
            layer (`int`): a profiled block index (negative: counted from the last profiled layer).
            neuron (`int`): the neuron's index in the layer.

        Returns:
            `pd.DataFrame`: up to ``meta.max_examples_per_neuron`` rows, highest activation first.

        Raises:
            ConfigurationError: a layer that was not profiled, a neuron that is not an int in range.

        Columns (:data:`EXAMPLE_COLUMNS`): ``example_id`` (the text's index in the corpus read), ``token_index`` (the
        token's index in the whole text's tokenization, the tokenizer's leading special tokens included: 1 for the
        first word piece after BERT's ``[CLS]``, 0 for GPT-2's first token; a window of a long text keeps its tokens'
        indices in the whole text), ``char_start``/``char_end`` (the token's span in the text, from its first visible
        character, and over the combining marks after it that no token covers: an accent an accent-stripping
        tokenizer drops from decomposed (NFD) text stays on its letter; a tokenizer that keeps it gives it tokens of
        its own; a piece of whitespace alone, GPT-2's lone ``"Ġ"`` or ``"Ċ"``: an empty span at the end of its
        whitespace), ``token`` (that span as written, ``eman`` for the word piece ``##eman``, ``""`` for a piece of
        whitespace alone: the ``token`` feature value is the tokenizer's piece), ``rank`` (0 = highest activation),
        ``layer``, ``neuron``, ``activation`` (the neuron's activation there), ``left``/``right`` (up to 60 characters
        of the text on each side)."""
        layer = self.meta.layers[self._row(layer, neuron) // self.num_neurons]  # -1: the block it names
        ex = self.examples
        return ex[(ex["layer"] == layer) & (ex["neuron"] == neuron)].sort_values("rank").reset_index(drop=True)

    def neuron_stats(self) -> pd.DataFrame:
        """One row per neuron: mass, count, and per feature type its length, entropy and top feature."""
        layers = np.repeat(np.array(self.meta.layers, dtype=np.int64), self.num_neurons)
        frame = pd.DataFrame({
            "layer": layers,
            "neuron": np.tile(np.arange(self.num_neurons, dtype=np.int64), len(self.meta.layers)),
            "mass": self.neuron_mass.reshape(-1),
            "count": self.neuron_count.reshape(-1),
        })
        for ft in self.feature_types:
            table = self.tables[ft]
            frame[f"length_{ft}"] = metrics.length_by_row(table.rows, table.mass, self.num_rows)
            frame[f"entropy_{ft}"] = metrics.entropy_by_row(table.rows, table.mass, self.num_rows)
            frame[f"top_{ft}"] = self._top_feature_by_row(table)
        from .tables import with_ranked_modules

        return with_ranked_modules(frame, self.meta.site, self.meta.config.get("stack"),
                                   self.meta.config.get("module_pattern"))

    def _top_feature_by_row(self, table: FeatureTable) -> list[str | None]:
        top: list[str | None] = [None] * self.num_rows
        first = table.top_entries()
        for row, fid in zip(table.rows[first].tolist(), table.feature_ids[first].tolist()):
            top[row] = table.vocab[fid]
        return top

    def feature_frequency(self, feature_type: str = "pos") -> pd.Series:
        """Corpus frequency of each feature value: its share of the profiled positions that have a value of this
        feature type (a position without one, as a token outside any word or a user feature that labels only some
        words, is left out of the total). The positions are the token positions that could be credited: every
        subword (a word of three tokens counts three times), not the special tokens nor the skipped first positions,
        each once whatever its layers credited (a position whose every winner was <= 0 counts too).

        Args:
            feature_type (`str`, *optional*, defaults to `"pos"`): a profiled feature type.

        Returns:
            `pd.Series` of float64: indexed by feature value, shares summing to 1 (all 0 when nothing was counted),
            largest first.

        Raises:
            ConfigurationError: a feature type that was not profiled.
        """
        table = self._table(feature_type)
        counts = pd.Series(table.corpus_count, index=pd.Index(table.vocab, name=feature_type), dtype="float64")
        total = counts.sum()
        return (counts / total if total else counts).sort_values(ascending=False)

    def mass_share(self, feature_type: str = "pos") -> pd.Series:
        """Share of the credited mass (every neuron of every layer) that went to each feature value, among the
        credits whose position has a value of this feature type (as :meth:`feature_frequency` counts positions).

        Args:
            feature_type (`str`, *optional*, defaults to `"pos"`): a profiled feature type (else ConfigurationError).

        Returns:
            `pd.Series` of float64 shaped as :meth:`feature_frequency`'s: mass shares by feature value, largest first.
        """
        table = self._table(feature_type)
        mass = np.bincount(table.feature_ids, weights=table.mass, minlength=len(table.vocab))
        share = pd.Series(mass, index=pd.Index(table.vocab, name=feature_type), dtype="float64")
        total = share.sum()
        return (share / total if total else share).sort_values(ascending=False)

    def diagnostics(self, threshold: float = 0.5, min_count: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
        """Neurons whose credited mass comes mostly from one position index (e.g. a decoder's first token).

        Such a neuron's preference distribution describes a position, not the input ("massive activations",
        Sun et al. 2024); profile with ``skip_first_positions`` to leave such positions out.

        Args:
            threshold (`float`, *optional*, defaults to 0.5): list neurons whose top position index holds more than
                this share of their mass.
            min_count (`int`, *optional*, defaults to 20): list only neurons credited at least this many times, as
                the report's rankings do (see ``DEFAULT_MIN_COUNT``): a neuron credited once holds all its mass at one
                position by construction, so the rarely credited would fill the list.

        Returns:
            `pd.DataFrame`: layer, neuron, count, mass, top_position, top_position_share; largest share first.
            ``attrs["min_count"]`` is the floor used and ``attrs["too_few_credits"]`` how many neurons over the
            threshold the floor left out.

        Raises:
            ProfileFormatError: when the profile has no position statistics (saved by an older hf_txray).
            ConfigurationError: `min_count` is not an int >= 0, or `threshold` is not a share in [0, 1) (a
                percentage, ``threshold=50``, listed no neuron, as if none concentrated on a position).
        """
        min_count = check_min_count(min_count)
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating))
                or not 0 <= threshold < 1):
            raise ConfigurationError(f"threshold must be a share of a neuron's mass in [0, 1), got {threshold!r} "
                                     "(0.5: more than half of it from one position).")
        if self.position_mass is None:
            raise ProfileFormatError("This profile has no mass-by-position statistics (saved by an older hf_txray): "
                                     "profile again to get diagnostics.")
        top, share = self.position_mass.top_share(self.num_rows)
        stats = self.neuron_stats()[["layer", "neuron", "count", "mass"]]
        stats["top_position"], stats["top_position_share"] = top, share
        over = (stats["count"] > 0) & (share > threshold)
        enough = stats["count"] >= min_count
        flagged = stats[over & enough].sort_values(["top_position_share", "layer", "neuron"],
                                                   ascending=[False, True, True], kind="stable").reset_index(drop=True)
        flagged.attrs.update(min_count=min_count, too_few_credits=int((over & ~enough).sum()))
        return flagged

    def to_pandas(self, feature_type: str | None = None) -> pd.DataFrame:
        """Long format: layer, neuron, feature_type, feature, mass, count, probability.

        Rows follow the profile's tables: by layer and neuron, and within a neuron by feature id, the order in which
        the features were first seen, which depends on batching and sharding. Sort by ``["feature_type", "layer",
        "neuron", "feature"]`` before comparing two profiles' frames.

        Args:
            feature_type (`str`, *optional*): one profiled feature type; defaults to all of them.

        Returns:
            `pd.DataFrame`: one row per (neuron, feature value) credited; ``probability`` is mass / the neuron's total
            mass of that feature type.

        Raises:
            ConfigurationError: a feature type that was not profiled.
        """
        frames = []
        for ft in [feature_type] if feature_type else self.feature_types:
            table = self._table(ft)
            position, neuron = np.divmod(table.rows, self.num_neurons)
            frames.append(pd.DataFrame({
                "layer": np.array(self.meta.layers, dtype=np.int64)[position] if len(position) else position,
                "neuron": neuron,
                "feature_type": ft,
                "feature": np.array(table.vocab, dtype=object)[table.feature_ids] if len(table.vocab) else [],
                "mass": table.mass,
                "count": table.count,
                "probability": metrics.probabilities(table.rows, table.mass, self.num_rows),
            }))
        return pd.concat(frames, ignore_index=True)

    @property
    def nbytes(self) -> int:
        """Size of the accumulated state in bytes (dense neuron arrays + sparse tables + examples)."""
        size = self.neuron_mass.nbytes + self.neuron_count.nbytes
        for t in self.tables.values():
            size += t.rows.nbytes + t.feature_ids.nbytes + t.mass.nbytes + t.count.nbytes + t.corpus_count.nbytes
            size += sum(len(v) for v in t.vocab)
        if self.activation_histogram is not None:
            size += self.activation_histogram.nbytes
        if self.position_mass is not None:
            size += sum(v.nbytes for v in self.position_mass.entries().values())
        return size + int(self.examples.memory_usage(deep=True).sum())

    # ----- activation distributions (neuron pages) -------------------------------------------------------------
    def histogram_edges(self) -> np.ndarray:
        """Bin edges of :attr:`activation_histogram` (bin 0: below ``edges[0]``; last bin: ``>= edges[-1]``).

        Raises:
            ConfigurationError: the profile has no activation histograms (profiled before hf_txray kept them).
        """
        from .accumulators import histogram_edges

        settings = self.meta.config.get("activation_histogram")
        if self.activation_histogram is None or not settings:
            raise ConfigurationError(f"Profile {self.stage!r} has no activation histograms (profiled before "
                                     "hf_txray kept them): profile again to get them.")
        return histogram_edges(**settings)

    def activation_distribution(self, layer: int, neuron: int) -> pd.DataFrame:
        """The neuron's credited activations per bin: low and high edge (±inf outside the range) and count.

        Args:
            layer (`int`): a profiled block index (negative: counted from the last profiled layer).
            neuron (`int`): the neuron's index in the layer.

        Returns:
            `pd.DataFrame`: one row per bin (``len(histogram_edges()) + 1`` rows), columns ``low``, ``high``
            (activation units) and ``count`` (credits).

        Raises:
            ConfigurationError: the profile has no activation histograms (profiled before hf_txray kept them), a
                layer that was not profiled, or a neuron that is not an int in range.
        """
        edges = self.histogram_edges()
        counts = self.activation_histogram.of_row(self._row(layer, neuron))
        low, high = np.r_[-np.inf, edges], np.r_[edges, np.inf]
        return pd.DataFrame({"low": low, "high": high, "count": counts})

    def histogram_counts(self) -> np.ndarray:
        """Every neuron's histogram as a dense ``(layers, neurons, bins)`` array (see :meth:`histogram_edges`)."""
        self.histogram_edges()
        return self.activation_histogram.dense(self.num_rows).reshape(len(self.meta.layers), self.num_neurons, -1)

    def win_rate(self) -> np.ndarray:
        """Credits / profiled positions per neuron, shape ``(layers, neurons)`` (0 when nothing was profiled). Of a
        mixture-of-experts unit too: over every position, including those whose router did not choose its expert
        (the positions routed to an expert are not counted per expert)."""
        positions = self.meta.num_positions
        return self.neuron_count / positions if positions else np.zeros_like(self.neuron_mass)

    def position_stats(self) -> pd.DataFrame:
        """Per neuron: the token index that gave it the most credited mass (-1 if none) and that index's share of
        its mass (near 1 for neurons that fire on the first position, e.g. massive activations in causal LMs);
        from :attr:`position_mass` (see also :meth:`diagnostics`).

        Raises:
            ConfigurationError: the profile has no per-position statistics (profiled before hf_txray kept them).
        """
        if self.position_mass is None:
            raise ConfigurationError(f"Profile {self.stage!r} has no per-position statistics (profiled before "
                                     "hf_txray kept them): profile again to get them.")
        top, share = self.position_mass.top_share(self.num_rows)
        return pd.DataFrame({
            "layer": np.repeat(np.array(self.meta.layers, dtype=np.int64), self.num_neurons),
            "neuron": np.tile(np.arange(self.num_neurons, dtype=np.int64), len(self.meta.layers)),
            "top_position": top, "top_position_share": share,
        })

    def check_statistics(self) -> None:
        """Raise :class:`ProfileFormatError` naming the first sum that no profiling run can produce: a mass that is
        NaN, infinite or negative (only positive winners are credited), a negative count, split-half sums outside
        their totals (``0 <= count_odd <= count``, ``mass_odd`` within ``[0, mass]`` up to rounding).

        :func:`hf_txray.compare` runs it on both profiles: a hand-built or damaged profile with such sums compared
        without an error and gave wrong numbers (a NaN mass read as a Hellinger distance of 1 and p = 1, a negative
        one as p = 1e-7, "changed"; helper 183).

        Raises:
            ProfileFormatError: a sum no profiling run produces (a NaN, infinite or negative mass, a negative count, a
                split-half count outside [0, its total]...), naming the first one found.
        """
        def bad(what: str, values: np.ndarray) -> None:
            raise ProfileFormatError(
                f"Profile {self.stage!r} holds {what} (e.g. {values[:3].tolist()}), which no profiling run produces: "
                "its sums were damaged or built by hand. Profile the stage again (hf_txray.analyze).")

        def check_mass(what: str, mass: np.ndarray) -> None:
            if not np.all(np.isfinite(mass)):
                bad(f"a {what} that is NaN or infinite", mass[~np.isfinite(mass)])
            if np.any(mass < 0):
                bad(f"a negative {what}", mass[mass < 0])

        def check_half(what: str, odd: np.ndarray, total: np.ndarray, slack: np.ndarray | int = 0) -> None:
            outside = (odd < -slack) | (odd > total + slack)
            if np.any(outside):
                bad(f"{what} outside [0, its total]", odd[outside])

        check_mass("neuron mass", self.neuron_mass.reshape(-1))
        self._check_counters()
        self._check_feature_texts()
        self.meta.feature_kinds  # noqa: B018 (a damaged record is refused on load, not at the first figure)
        self.meta.feature_orders  # noqa: B018 (likewise)
        count = self.neuron_count.reshape(-1)
        if np.any(count < 0):
            bad("a negative neuron count", count[count < 0])
        if self.neuron_count_odd is not None:
            check_half("a neuron count of odd example ids", self.neuron_count_odd.reshape(-1), count)
        for ft, table in self.tables.items():
            check_mass(f"{ft} mass", table.mass)
            if np.any(table.count < 0):
                bad(f"a negative {ft} count", table.count[table.count < 0])
            if table.has_noise:
                check_half(f"a {ft} count of odd example ids", table.count_odd, table.count)
                if not np.all(np.isfinite(table.mass_odd)):
                    odd = table.mass_odd
                    bad(f"a {ft} mass of odd example ids that is NaN or infinite", odd[~np.isfinite(odd)])
                check_half(f"a {ft} mass of odd example ids", table.mass_odd, table.mass, 1e-9 * table.mass + 1e-12)
                check_mass(f"{ft} squared mass", table.mass_sq)

    def _check_counters(self) -> None:
        """Refuse run counters no run records: a negative or non-integer one, more empty, truncated or windowed texts
        than texts, more uncredited (layer, position) pairs than pairs, and credits that do not fit the positions
        (each credited pair credits 1 to ``top_k`` neurons, so a layer's credits lie in ``[its credited pairs,
        top_k x num_positions]``). A hand-built profile that records no positions, uncredited pairs nor input tokens
        (all 0) is only checked for signs. A metadata file edited to ``num_positions=-5`` loaded and gave negative win rates."""
        m = self.meta

        def bad(what: str) -> None:
            raise ProfileFormatError(
                f"Profile {self.stage!r} records {what}, which no profiling run records: its metadata was damaged or "
                "built by hand. Profile the stage again (hf_txray.analyze).")

        for name in COUNTER_FIELDS:
            n = getattr(m, name)
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                bad(f"{name}={n!r} (not an int >= 0)")
        for name in ("num_empty", "num_truncated", "num_windowed"):
            if getattr(m, name) > m.num_examples:
                bad(f"{name}={getattr(m, name)} of only num_examples={m.num_examples} texts")
        if m.num_positions == 0 and m.num_uncredited == 0 and m.num_input_tokens == 0:
            return  # built by hand: no positions recorded (every run records the tokens it fed the model)
        layers = len(m.layers)
        if m.num_uncredited > layers * m.num_positions:
            bad(f"num_uncredited={m.num_uncredited}, more than its {layers} layers x num_positions={m.num_positions} "
                "(layer, position) pairs")
        per_layer = self.neuron_count.reshape(layers, -1).sum(axis=1)
        credited_pairs = layers * m.num_positions - m.num_uncredited
        if per_layer.size and per_layer.max() > m.top_k * m.num_positions:
            bad(f"{int(per_layer.max())} credits in layer {m.layers[int(per_layer.argmax())]}, more than top_k={m.top_k} "
                f"x num_positions={m.num_positions}")
        if not credited_pairs <= per_layer.sum() <= m.top_k * credited_pairs:
            bad(f"{int(per_layer.sum())} credits for {credited_pairs} credited (layer, position) pairs ({layers} layers x "
                f"num_positions={m.num_positions} - num_uncredited={m.num_uncredited}; each credits 1 to "
                f"top_k={m.top_k} neurons)")

    def _check_feature_texts(self) -> None:
        """Refuse carrying-text counts no run records: for other feature types than the profile's, or not an int in
        ``[0, num_examples - num_empty]`` (the per-neuron test caps its degrees of freedom by them)."""
        recorded, texts = self.meta.num_feature_texts, self.meta.num_examples - self.meta.num_empty
        if not isinstance(recorded, dict) or (recorded and set(recorded) != set(self.feature_types)):
            raise ProfileFormatError(
                f"Profile {self.stage!r} records the texts carrying feature types "
                f"{sorted(recorded) if isinstance(recorded, dict) else recorded!r}, not its own "
                f"{sorted(self.feature_types)}: its metadata was damaged or built by hand. Profile the stage again "
                "(hf_txray.analyze).")
        for ft, n in recorded.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= max(texts, 0):
                raise ProfileFormatError(
                    f"Profile {self.stage!r} records {n!r} texts carrying {ft!r} values, which no run of its "
                    f"{texts} texts that credit a position records: its metadata was damaged or built by hand. "
                    "Profile the stage again (hf_txray.analyze).")

    # ----- combining --------------------------------------------------------------------------------------------
    def check_compatible(self, other: "Profile", what: str = "merge") -> None:
        """Raise :class:`IncompatibleProfilesError` naming the first difference in site, layers, neurons, features or
        credit rule (``top_k``: a top-2 profile credits twice the positions of a top-1 one, so neither a merge nor a
        comparison of them means anything); first, neurons numbered otherwise by ``prune(..., mode="remove")``
        (recorded in each profile's provenance: neuron i of a pruned model is original neuron ``kept[i]``), which are
        never matched by number nor remapped.

        Args:
            other (`Profile`): the profile to check against.
            what (`str`, *optional*, defaults to `"merge"`): the verb the error names (``"compare"``...).

        Raises:
            IncompatibleProfilesError: the first difference found.
        """
        widths = (self.meta.num_neurons, other.meta.num_neurons)
        pruned = pruning_difference(self.meta.provenance, other.meta.provenance, widths, (self.stage, other.stage),
                                    {*self.layers, *other.layers})
        if pruned:
            differ = f"num_neurons differ ({widths[0]} vs {widths[1]}) because " if widths[0] != widths[1] else ""
            raise IncompatibleProfilesError(
                f"Cannot {what} profiles {self.stage!r} and {other.stage!r}: {differ}{pruned}. Their neurons of one "
                "number are other units, and hf_txray does not remap them. To compare neuron by neuron, profile the "
                "unpruned model with the same neurons masked instead (hf_txray.prune(model, ..., mode='mask'), or "
                "apply_plan(model, plan, mode='mask') with the removal's plan): masks zero them and keep every "
                "neuron's number.")
        for name, mine, theirs in credit_differences(self.meta, other.meta, config=False)[:1]:
            raise IncompatibleProfilesError(
                f"Cannot {what} profiles {self.stage!r} and {other.stage!r}: {name} differ ({mine} vs {theirs}). "
                f"Profile both with the same {name}."
            )
        mine, theirs = self.meta.feature_kinds, other.meta.feature_kinds
        for name in [n for n in self.feature_types if n in mine and n in theirs and mine[n] != theirs[n]][:1]:
            raise IncompatibleProfilesError(
                f"Cannot {what} profiles {self.stage!r} and {other.stage!r}: their runs registered the feature "
                f"{name!r} as {mine[name]!r} and as {theirs[name]!r}, so one would get mass-share tables and the other "
                "not. Profile both with the feature registered alike (hf_txray.register_feature).")

    def merge(self, other: "Profile") -> "Profile":
        """Combine the profiles of two disjoint parts of a corpus, `other`'s texts read after this one's.

        What the result guarantees, against one ``analyze`` run of this profile's texts followed by `other`'s (with
        the same options):

        - exact: every count (per neuron, per feature, split-half counts, histograms, position counts), the
          ``num_*`` totals except ``num_padded_tokens`` (it depends on how texts were batched), the top examples of
          every neuron (activation, token, context) and their ``example_id``: `other`'s ids are shifted by this
          profile's :attr:`example_id_span` (its ``num_examples`` after one process), so they number the
          concatenated corpus. The split halves follow each text: drawn from its content (``meta.split_halves``
          :data:`SPLIT_BY_TEXT`, what ``analyze`` records), they stay as they are; by example id parity (profiles
          saved before), they follow the shifted ids (when the shift is odd, `other`'s halves are exchanged). A
          merge of the two kinds is split by parity (:data:`SPLIT_BY_ID`): its copies of a text may lie in both
          halves;
        - equal up to float rounding: the masses (summed in another order; the odd half of a shifted part is
          ``mass - mass_odd``), so ``merged == whole`` may fail on the last bit while counts match exactly;
        - the vocabulary order may differ (it records first sight); :meth:`FeatureTable.equals` ignores it;
        - associative up to float rounding: ``(a.merge(b)).merge(c)`` and ``a.merge(b.merge(c))`` number the texts
          alike; not commutative in example ids (``b.merge(a)`` numbers `a`'s texts after `b`'s);
        - ``max_examples_per_neuron`` is the smaller of the two (the top examples beyond it are not known for the
          other part); ``dataset_fingerprint`` lists both parts' (``"a+b"``), whatever the grouping; the stage,
          model id, provenance and config are this profile's, except that the texts' hash in any order of every part
          together is ``provenance["merged_texts_multiset_hash"]`` (None when a part has none), and parts batched
          with different limits
          (``batch_size``, ``max_tokens_per_batch``) are listed, each with its ``num_examples``, in
          ``config["batch_limits_of_parts"]`` (:func:`batch_limits_of_parts`), whatever the grouping.

        Args:
            other (`Profile`): the profile of the texts read after this one's.

        Returns:
            `Profile`: a new profile of both parts.

        Raises:
            IncompatibleProfilesError: different site, layers, neurons, features or ``top_k``; different options that
                change what is credited (``max_length``, ``long_texts``, ``stride``, ``skip_first_positions``,
                ``max_positions``, ``module_pattern``, ``spacy_model``, ``credit``, ``stack``); parts profiled with
                ``max_positions`` that hold more positions together than that limit; or the same run twice
                (``a.merge(a)``, ``a.merge(b).merge(b)``, or any two runs of the same dataset fingerprint, which
                would count its texts twice), or profiles of different models (different weights, by the sample
                hash recorded in ``provenance["runtime"]``; by model id for profiles saved before it was) or
                different tokenizer vocabularies (``tokenizer_vocab_hash``: token features of two vocabularies) or
                tokenizers of one vocabulary that split texts otherwise (``tokenizer_hash``), or a
                user feature labelled by different functions under one name (``config["user_features"]``,
                :func:`user_feature_differences`).
        """
        self.check_compatible(other, "merge")
        self._check_mergeable(other)
        merged = self._merge_shards([self, other.renumbered(self.example_id_span)])
        merged.meta.dataset_fingerprint = FINGERPRINT_JOIN.join(_fingerprint_parts(self.meta)
                                                               + _fingerprint_parts(other.meta))
        if merged.meta.provenance:  # the record is the first part's: say it covers only part of the texts
            count = sum((p.meta.provenance or {}).get("merged_parts", 1) for p in (self, other))
            # every part's rows, so that a later merge checks them all (not the first part's alone)
            merged.meta.provenance = {**merged.meta.provenance, "merged_parts": count,
                                      MERGED_READS: _reads(self.meta) + _reads(other.meta),
                                      MERGED_TEXTS: combined_texts_sum_hash([recorded_texts_multiset_hash(p.meta)
                                                                            for p in (self, other)])}
            _keep_recorded(merged.meta, other.meta)
        return merged

    def _check_mergeable(self, other: "Profile") -> None:
        for name, mine, theirs in credit_differences(self.meta, other.meta, grid=False)[:1]:
            raise IncompatibleProfilesError(
                f"Cannot merge profiles {self.stage!r} and {other.stage!r}: {name} differ ({mine!r} vs "
                f"{theirs!r}), which changes what is credited. Profile both parts with the same {name}.")
        reasons = [  # (a difference found, why the parts cannot be added up)
            (_model_difference(self.meta, other.meta), "they profile different models ({}). A merge adds up parts of "
             "one model's profile; compare() sets two models side by side."),
            (tokenizer_difference(self.meta, other.meta), "they were profiled with different tokenizers ({}), so their "
             "token features are strings of two vocabularies. Profile both parts with the same tokenizer."),
            (tokenizer_split_difference(self.meta, other.meta), "they were profiled with tokenizers that split texts "
             "into other tokens ({}: another normalizer, pre-tokenizer or post-processor, such as lower-casing or "
             "add_prefix_space), so their positions are no one run's. Profile both parts with the same tokenizer."),
            (", ".join(user_feature_differences(self.meta, other.meta)), "their user feature(s) {} were labelled by "
             "different functions (another code, closure or default arguments under one name), so a value of one "
             "part is not a value of the other. Profile both parts with the same UserFeature function."),
            (_activation_difference(self.meta, other.meta), "their activations were computed otherwise ({}): other "
             "float rounding, and near-ties credited to other neurons, while the merged record would name the first "
             "part's alone (a resume refuses the same change). Profile both parts alike.")]
        for difference, why in reasons:
            if difference:
                raise IncompatibleProfilesError(f"Cannot merge profiles {self.stage!r} and {other.stage!r}: "
                                                + why.format(difference))
        self._check_limit_not_reached(other)
        self._check_disjoint_reads(other)
        shared = sorted(set(_fingerprint_parts(self.meta)) & set(_fingerprint_parts(other.meta)))
        if shared:
            raise IncompatibleProfilesError(
                f"Cannot merge profile {self.stage!r} with itself, or with a profile that already holds one of its "
                f"parts (or another run on the same corpus: dataset fingerprint {shared[0]}): those texts would be "
                "counted twice. Merge profiles of disjoint parts of a corpus.")

    def _check_limit_not_reached(self, other: "Profile") -> None:
        """Refuse parts profiled with ``max_positions`` that hold more positions together than that limit: one run
        over both would have stopped at the limit, so their sum (2 x 300 where a run credits 300) is no run's."""
        limit = self.meta.config.get("max_positions")
        total = self.meta.num_positions + other.meta.num_positions
        if limit is not None and total > int(limit):
            raise IncompatibleProfilesError(
                f"Cannot merge profiles {self.stage!r} and {other.stage!r}: both were profiled with "
                f"max_positions={limit}, and together they hold {self.meta.num_positions} + "
                f"{other.meta.num_positions} positions, more than one run over both parts would credit ({limit}). "
                "Cut the corpus into parts with num_samples or slices and no max_positions, or profile it in one "
                "run with max_positions.")

    def _check_disjoint_reads(self, other: "Profile") -> None:
        """Refuse two reads of one dataset split, by any parts of the two profiles, whose rows overlap (slices,
        num_samples), or that cannot be told apart without the split's size (slices in other units)."""
        for mine in _reads(self.meta):
            for theirs in _reads(other.meta):
                problem = _overlap(mine, theirs)
                if problem:
                    raise IncompatibleProfilesError(
                        f"Cannot merge profiles {self.stage!r} and {other.stage!r}: both read one dataset split "
                        f"({repr(mine[1] or theirs[1]) if mine[1] or theirs[1] else 'read without naming it'}), as "
                        f"{mine[5]} and {theirs[5]}, {problem}")

    @property
    def example_id_span(self) -> int:
        """How many example ids this profile's texts are numbered within (ids ``0 .. span - 1``): ``num_examples``
        for one process, more when the processes of a run stopped inside their shards (``max_positions``), whose
        texts keep their corpus ids. :meth:`merge` numbers `other`'s texts after it, so no two texts share an id."""
        return max(self.meta.num_example_ids, self.meta.num_examples)

    def renumbered(self, offset: int) -> "Profile":
        """This profile with its example ids shifted by `offset` (as if `offset` texts had been read before its
        own); with an odd offset the split halves of a profile split by example id parity (``meta.split_halves``
        :data:`SPLIT_BY_ID`) are exchanged to follow; a profile split by its texts' content keeps them.

        Args:
            offset (`int`): texts read before this profile's, at least 0.

        Returns:
            `Profile`: a new profile (this one when `offset` is 0).

        Raises:
            ConfigurationError: `offset` not an int >= 0 (1.9 gave example ids 1.9, 2.9..., -3 gave ids from -3).
        """
        offset = check_count("offset", offset, minimum=0, note="the number of texts read before this profile's")
        if offset == 0:
            return self
        examples = self.examples.copy()
        examples["example_id"] = examples["example_id"] + offset
        meta = dataclasses.replace(self.meta, num_example_ids=self.example_id_span + offset)
        swap = offset % 2 == 1 and self.meta.split_halves == SPLIT_BY_ID
        tables = {ft: t.odd_even_swapped() for ft, t in self.tables.items()} if swap else self.tables
        odd = self.neuron_count_odd
        if swap and odd is not None:
            odd = self.neuron_count - odd
        return Profile(meta, self.neuron_mass, self.neuron_count, tables, examples, odd, self.position_mass,
                       activation_histogram=self.activation_histogram, output_effects=self.output_effects)

    @staticmethod
    def _merge_shards(parts: list["Profile"]) -> "Profile":
        """Sum profiles whose example ids already number one corpus (the shards of one multi-process run, in rank
        order): no renumbering and no check of the options (they come from one call), hence private: on parts
        profiled apart, example ids collide. :meth:`merge` is the user-facing merge of separately profiled parts."""
        merged = parts[0]
        for other in parts[1:]:
            merged = merged._merge_sums(other)
        return merged

    def _merge_sums(self, other: "Profile") -> "Profile":
        self.check_compatible(other, "merge")
        meta = dataclasses.replace(self.meta, config=dict(self.meta.config))
        for name in SUMMED_COUNTERS:
            setattr(meta, name, getattr(self.meta, name) + getattr(other.meta, name))
        meta.num_example_ids = max(self.meta.num_example_ids, other.meta.num_example_ids)  # ids of one corpus
        # halves drawn from content only when both parts' were: a part split by parity may hold a text's copies in both
        meta.split_halves = SPLIT_BY_TEXT if {self.meta.split_halves, other.meta.split_halves} == {SPLIT_BY_TEXT} \
            else SPLIT_BY_ID
        # disjoint texts: their carrying texts add up; a part saved before they were recorded leaves them unknown
        counts = (self.meta.num_feature_texts, other.meta.num_feature_texts)
        known = all(set(c) >= set(self.feature_types) for c in counts)
        meta.num_feature_texts = {ft: int(counts[0][ft]) + int(counts[1][ft]) for ft in self.feature_types} \
            if known else {}
        # The top examples beyond the smaller capacity are unknown for one part: keep only as many for both.
        capacity = min(self.meta.max_examples_per_neuron, other.meta.max_examples_per_neuron)
        meta.max_examples_per_neuron = capacity
        if "max_examples_per_neuron" in meta.config:
            meta.config["max_examples_per_neuron"] = capacity
        _record_batch_limits(meta.config, self.meta, other.meta)
        both_odd = self.neuron_count_odd is not None and other.neuron_count_odd is not None
        positions = None
        if self.position_mass is not None and other.position_mass is not None:
            positions = merged([self.position_mass, other.position_mass])
        return Profile(
            meta,
            self.neuron_mass + other.neuron_mass,
            self.neuron_count + other.neuron_count,
            {ft: merge_tables(self.tables[ft], other.tables[ft]) for ft in self.feature_types},
            merge_examples(self.examples, other.examples, capacity),
            self.neuron_count_odd + other.neuron_count_odd if both_odd else None,
            positions,
            **self._merge_neuron_pages(other),
        )

    def _merge_neuron_pages(self, other: "Profile") -> dict[str, Any]:
        """Histograms add (when both have them with the same bins); output effects depend on the weights only,
        so either side's is kept."""
        same_bins = self.meta.config.get("activation_histogram") == other.meta.config.get("activation_histogram")
        histogram = None
        if same_bins and self.activation_histogram is not None and other.activation_histogram is not None:
            edges = self.histogram_edges()
            histogram = HistogramTable.from_accumulator(merged([self.activation_histogram.to_accumulator(edges),
                                                                other.activation_histogram.to_accumulator(edges)]))
        effects = self.output_effects if self.output_effects is not None else other.output_effects
        return {"activation_histogram": histogram, "output_effects": effects}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            _same_meta(self.meta, other.meta)
            and np.array_equal(self.neuron_mass, other.neuron_mass)
            and np.array_equal(self.neuron_count, other.neuron_count)
            and self.tables.keys() == other.tables.keys()
            and all(self.tables[ft].equals(other.tables[ft]) for ft in self.tables)
            and self.examples.reset_index(drop=True).equals(other.examples.reset_index(drop=True))
            and same_optional(self.neuron_count_odd, other.neuron_count_odd)
            and ((self.position_mass is None and other.position_mass is None)
                 or (self.position_mass is not None and other.position_mass is not None
                     and self.position_mass.equals(other.position_mass)))
            and _optional_equal(self.activation_histogram, other.activation_histogram, HistogramTable.equals)
            and _optional_equal(self.output_effects, other.output_effects,
                                lambda a, b: a.reset_index(drop=True).equals(b.reset_index(drop=True)))
        )

    def __repr__(self) -> str:
        m = self.meta
        # the empty texts are counted in num_examples and credit nothing: said beside it, as `hf-txray show` does
        empty = f" ({m.num_empty} empty)" if m.num_empty else ""
        return (
            f"Profile(stage={m.stage!r}, model={m.model_id!r}, site={m.site!r}, layers={len(m.layers)}, "
            f"neurons/layer={m.num_neurons}, features={m.feature_types}, examples={m.num_examples}{empty}, "
            f"positions={m.num_positions}, credited_neurons={int((self.neuron_count > 0).sum())})"
        )

    # ----- persistence (save_pretrained / from_pretrained / push_to_hub: hf_txray.artifact.Artifact) ------------
    card_names_repo = True

    def _save_pretrained(self, folder: Path, repo_id: str | None = None, revision: str | None = None) -> None:
        write_folder(folder, {self.stage: self}, {}, repo_id=repo_id, revision=revision)

    @classmethod
    def _from_pretrained(cls, folder: Path) -> "Profile":
        return cls.from_parts(read_single(folder, "profile"), source=folder)

    @classmethod
    def from_parts(cls, parts: dict[str, Any], source: str | Path | None = None) -> "Profile":
        """Assemble a profile from the parts :func:`hf_txray.layout.read_parts` returns.

        Args:
            parts (`dict`): the parts read (``meta``, ``neuron_mass``, ``neuron_count``, ``tables``...).
            source (`str` or `Path`, *optional*): the folder they were read from, named in errors.

        Raises:
            ProfileFormatError: the parts hold sums no profiling run produces (:meth:`check_statistics`), naming
                `source`, the folder they were read from: a mass edited in place keeps the file's rows, columns and
                save stamp, and a negative one loaded and read as a probability of 5.15 (helper 199).
        """
        meta = ProfileMeta.from_dict(parts["meta"])
        histogram = parts.get("activation_histogram")
        examples = parts.get("examples")
        profile = cls(meta, parts["neuron_mass"], parts["neuron_count"],
                      {ft: FeatureTable(**table) for ft, table in parts["tables"].items()},
                      empty_examples() if examples is None else examples[EXAMPLE_COLUMNS],
                      parts.get("neuron_count_odd"), parts.get("position_mass"),
                      activation_histogram=None if histogram is None else HistogramTable(**histogram),
                      output_effects=parts.get("output_effects"))
        try:
            profile.check_statistics()
        except ProfileFormatError as err:
            where = f"{source}: " if source is not None else ""
            raise ProfileFormatError(f"{where}{err} Its files were changed after saving (values edited in place keep "
                                     "the save stamp): save or export the profile again from its source.") from None
        return profile


# Options recorded in ``meta.config`` that change what is credited: parts profiled with different values do not sum
# to one profile (batching options such as batch_size do not change any credit).
CREDIT_OPTIONS = ("max_length", "long_texts", "stride", "skip_first_positions", "max_positions", "module_pattern",
                  "spacy_model", "credit", "stack")


# The ProfileMeta fields two profiles must share to be compared or merged (what is hooked and how it is credited)
CREDIT_GRID = ("site", "layers", "num_neurons", "feature_types", "top_k")


def credit_differences(a: ProfileMeta, b: ProfileMeta, grid: bool = True, config: bool = True
                       ) -> list[tuple[str, Any, Any]]:
    """``(name, a's, b's)`` for each of :data:`CREDIT_GRID` (with `grid`) and :data:`CREDIT_OPTIONS` (recorded in
    ``meta.config``, with `config`) on which two profiles' metadata differ: what they count is then not the same."""
    pairs = [(name, getattr(a, name), getattr(b, name)) for name in (CREDIT_GRID if grid else ())]
    pairs += [(name, a.config.get(name), b.config.get(name)) for name in (CREDIT_OPTIONS if config else ())]
    unordered = ("feature_types",)  # tables are read by name: ("pos", "token") counts what ("token", "pos") does
    return [(name, x, y) for name, x, y in pairs
            if (sorted(x) != sorted(y) if name in unordered and x and y else x != y)]


# Options recorded in ``meta.config`` that bound a batch: parts batched differently merge (no credit changes), and
# the config keeps the first part's values, so each part's are listed under BATCH_LIMITS_OF_PARTS.
BATCH_LIMITS = ("batch_size", "max_tokens_per_batch")
BATCH_LIMITS_OF_PARTS = "batch_limits_of_parts"


def _model_difference(a: ProfileMeta, b: ProfileMeta) -> str:
    """How two profiles' models differ ("" when they are one): the sample hash of the weights of the body that ran
    (:func:`~hf_txray.provenance.weights_sample_hash`; the same weights match whatever they were loaded from, task
    heads left out), said first as a hidden size when both recorded theirs, their dtype, hf_txray masks on them; the
    model id for profiles saved before the hash was recorded, unless both recorded the same model files by content
    (an earlier hf_txray named the embedded MiniLM by its folder, today's by its Hub id: one model) and were loaded
    from them (:func:`_weights_are_its_files`)."""
    ra, rb = ((m.provenance or {}).get("runtime", {}) for m in (a, b))
    if not (ra.get("weights_sample_hash") and rb.get("weights_sample_hash")):
        sa, sb = (((m.provenance or {}).get("model") or {}) for m in (a, b))
        if sa.get("files") and sa.get("files") == sb.get("files") and all(map(_weights_are_its_files, (sa, sb))) \
                and sa.get("base_model") == sb.get("base_model"):
            return ""
        return f"{a.model_id} vs {b.model_id}" if a.model_id != b.model_id else ""
    for key, what in (("hidden_size", "hidden size"), ("dtype", "dtype"), ("weights_sample_hash", "weights"),
                      ("masks", "hf_txray masks")):
        if key == "hidden_size" and not (ra.get(key) and rb.get(key)):  # a part saved before it was recorded
            continue
        if ra.get(key) != rb.get(key):
            return f"{what} {ra.get(key)} vs {rb.get(key)}"
    return ""


def _weights_are_its_files(source: dict[str, Any]) -> bool:
    """Whether a recorded model `source` ran the weights of its recorded files: a model loaded by hf_txray from a
    folder or the Hub. A loaded model's ("object") files are those of the folder it was loaded from, whatever was
    done to it since (fine-tuned in memory, a Trainer snapshot, adapters): a part of a MiniLM fine-tuned in memory
    recorded the embedded MiniLM's files and was merged with a part of the pretrained one saved before the weights
    hash (helper 353)."""
    return source.get("kind") in ("local", "hub") and not source.get("training_step") and not source.get("adapters")


# What a merged profile keeps from whichever part recorded it (a part saved before it was recorded has none).
KEPT_FROM_EITHER_PART = ("tokenizer_vocab_hash", "tokenizer_hash", "num_hidden_layers", "hidden_size", "vocab_size")


def _keep_recorded(merged: ProfileMeta, other: ProfileMeta) -> None:
    """A merged profile's record is its first part's: what only the other part recorded (its tokenizer's vocabulary
    hash, its model's depth and widths, its ``mode="remove"`` numbering) is kept, so later merges, comparisons and plans are checked against what is known."""
    runtime = merged.provenance.get("runtime") or {}
    theirs = (other.provenance or {}).get("runtime", {})
    kept = {key: theirs[key] for key in KEPT_FROM_EITHER_PART if theirs.get(key) and not runtime.get(key)}
    if "pruned" in theirs and "pruned" not in runtime:  # None says "not pruned": kept too (check_compatible reads it)
        kept["pruned"] = theirs["pruned"]
    if kept:
        merged.provenance = {**merged.provenance, "runtime": {**runtime, **kept}}
    # the user features' functions as the part that recorded them did (merge refused two that differ)
    labelled = {**(other.config.get(USER_FEATURES) or {}), **(merged.config.get(USER_FEATURES) or {})}
    if labelled:
        merged.config = {**merged.config, USER_FEATURES: labelled}
    kinds = {**other.feature_kinds, **merged.feature_kinds}  # check_compatible refused two that differ
    if kinds:
        merged.config = {**merged.config, FEATURE_KINDS: kinds}
    orders = {**other.feature_orders, **merged.feature_orders}  # the first part's where both recorded one
    if orders:
        merged.config = {**merged.config, FEATURE_ORDERS: orders}


USER_FEATURES = "user_features"  # meta.config key: {feature name: features.recorded_fingerprint of its function}
# meta.config key: {feature name: "text" | "tag"}, each feature type's kind as the profiling run had it registered
FEATURE_KINDS = "feature_kinds"
# meta.config key: {feature name: FeatureType.order}, each feature type's reading order as the profiling run had it
FEATURE_ORDERS = "feature_orders"


def user_feature_differences(a: ProfileMeta, b: ProfileMeta) -> list[str]:
    """The user features that two profiles labelled with different functions under one name (empty when none, or
    when a profile was saved before they were recorded, or read them under another Python version, whose bytecode
    differs): their values are two labellings, which a merge would add up and a comparison set side by side."""
    ra, rb = (m.config.get(USER_FEATURES) or {} for m in (a, b))
    return [name for name in a.feature_types if name in ra and name in rb and fingerprints_differ(ra[name], rb[name])]


def _activation_difference(a: ProfileMeta, b: ProfileMeta) -> str:
    """How two profiles' runs computed the activations otherwise ("" when alike, or when either did not record it):
    the width rounding ``pad_to_multiple_of`` and the attention implementation, which a resume keeps too
    (``analyze._run_key``). Each changes the activations by float rounding and so the winner of a near-tie."""
    pads = [(m.provenance or {}).get("options", {}).get("pad_to_multiple_of") for m in (a, b)]
    attention = [(m.provenance or {}).get("runtime", {}).get("attn_implementation") for m in (a, b)]
    for name, (x, y) in (("pad_to_multiple_of", pads), ("attention implementation", attention)):
        if x is not None and y is not None and x != y:
            return f"{name} {x!r} vs {y!r}"
    return ""


def tokenizer_difference(a: ProfileMeta, b: ProfileMeta) -> str:
    """How two profiles' tokenizer vocabularies differ ("" when they agree, or when either profile was saved before
    the vocabulary hash was recorded): their token features are the strings of different vocabularies."""
    ha, hb = ((m.provenance or {}).get("runtime", {}).get("tokenizer_vocab_hash") for m in (a, b))
    if ha and hb and ha != hb:
        return f"tokenizer vocabularies {ha[:25]} vs {hb[:25]}"
    return ""


def tokenizer_split_difference(a: ProfileMeta, b: ProfileMeta) -> str:
    """How two profiles' tokenizers of one vocabulary split texts differently ("" when they agree, when their
    vocabularies differ, :func:`tokenizer_difference`, or when either profile lacks the hash): the whole tokenizer's
    hash (``provenance["runtime"]["tokenizer_hash"]``: normalizer, pre-tokenizer, post-processor) differs, as a
    normalizer that no longer lower-cases, or ``add_prefix_space``, makes other tokens of the same texts (a resumed
    run refuses the same difference)."""
    if tokenizer_difference(a, b):
        return ""
    ha, hb = ((m.provenance or {}).get("runtime", {}).get("tokenizer_hash") for m in (a, b))
    if ha and hb and ha != hb:
        return f"tokenizers {ha[:27]} vs {hb[:27]}, of one vocabulary"
    return ""


MERGED_READS = "merged_reads"  # provenance key of a merged profile: the rows every part read (see _reads)
# provenance key of a merged profile: the texts_multiset_hash of every part's texts together (None if a part had none)
MERGED_TEXTS = "merged_texts_multiset_hash"


def recorded_texts_multiset_hash(meta: ProfileMeta) -> str | None:
    """The :func:`~hf_txray.hashes.texts_multiset_hash` of every text a profile read, in any order: a merged
    profile's of all its parts together (:data:`MERGED_TEXTS`; its ``dataset`` record is its first part's), else its
    ``dataset`` record's. None where it is not known (a part without it, a stream not read whole, a merge saved
    before it was recorded), or where the run did not read every text the hash covers (``num_examples`` short of
    the dataset's ``num_texts``: `max_positions` stops a run at a prefix of its texts, and the prefixes of the same
    texts in two orders are other texts; a merge of such a part knows none either), or where `max_positions` may
    have stopped it inside its last text (as many positions as the limit: that text counts, part of it read, and
    the same texts in another order end in another text)."""
    record = meta.provenance or {}
    if record.get("merged_parts", 1) > 1:
        return record.get(MERGED_TEXTS)
    dataset = record.get("dataset") or {}
    limit = (meta.config or {}).get("max_positions")
    if dataset.get("num_texts") != meta.num_examples or (limit is not None and meta.num_positions >= limit):
        return None
    return dataset.get("texts_multiset_hash")


def _reads(meta: ProfileMeta) -> list[list]:
    """The rows of dataset splits a profile read, one entry per merged part (:func:`_rows_read`); none for texts
    hf_txray cannot place."""
    record = meta.provenance or {}
    if MERGED_READS in record:
        return [list(read) for read in record[MERGED_READS]]
    read = _rows_read(record.get("dataset") or {})
    return [] if read is None else [read]


def _rows_read(record: dict[str, Any]) -> list | None:
    """The rows of a dataset split one read covered (a provenance ``dataset`` record), as ``[source, split, unit,
    start, end, what was read]``: ``source`` a hash of the dataset's kind, id, config and version (no local path is
    kept: merged records go to the Hub); ``split`` its name (None: the only split, read without naming it); ``unit``
    ``"abs"`` (rows), ``"%..."`` (percent, with its rounding) or ``"any"`` (the whole split); ``end`` None for "to the
    end". None for texts passed in memory or a dataset object, which hf_txray cannot place."""
    import hashlib

    from .loading import read_slice, split_and_slice

    name, part = split_and_slice(record.get("split") or "")
    known = record.get("kind") in ("hub", "local") or (record.get("kind") and is_embedded({"dataset": record}))
    if not known or not record.get("id"):
        return None
    version = record.get("commit") or record.get("content_hash")
    source = hashlib.sha256(repr((record["kind"], record["id"], record.get("config"), version)).encode()).hexdigest()
    unit, start, end = "any", 0, None
    if part:
        (rows,) = read_slice(record["split"])[0]._relative_instructions
        unit, start, end = ("abs" if rows.unit == "abs" else f"%{rows.rounding}"), rows.from_ or 0, rows.to
    read = repr(record.get("split") or "the whole split")
    count = record.get("num_samples")
    if count is not None and unit in ("abs", "any"):  # num_samples takes the first texts
        if start >= 0:
            end = start + count if end is None or end < 0 else min(end, start + count)
        elif end is None or end < 0:  # counted from the end: so is where its first texts stop
            end = min(0 if end is None else end, start + count)
        unit = "abs"
        read += f" (its first {count} texts)"
    return [source[:16], name or None, unit, start, end, read]


def _overlap(a: list, b: list) -> str | None:
    """Why reads `a` and `b` (:func:`_rows_read`) cannot be merged: their rows overlap, or whether they do depends
    on the split's size; None when they are of other splits or disjoint."""
    (source_a, split_a, unit_a, start_a, end_a, _), (source_b, split_b, unit_b, start_b, end_b, _) = a, b
    if source_a != source_b or (split_a and split_b and split_a != split_b):
        return None
    overlapping = ("whose rows overlap, so their shared texts would be counted twice. Profile disjoint parts, e.g. "
                   "split slices 'train[:50%]' and 'train[50%:]'.")
    if "any" in (unit_a, unit_b):
        return overlapping
    from_start = min(start_a, start_b) >= 0 and all(end is None or end >= 0 for end in (end_a, end_b))
    from_end = max(start_a, start_b) < 0 and all(end is None or end < 0 for end in (end_a, end_b))
    if unit_a != unit_b or not (from_start or from_end):
        return ("and whether those rows overlap depends on the split's size, which is not recorded (slices in "
                "different units, or one counted from the start and one from the end). Give both slices in one "
                "unit from the same end ('train[:1000]' and 'train[1000:]').")
    last = 0 if from_end else float("inf")  # an open end: the split's end
    if start_a < (last if end_b is None else end_b) and start_b < (last if end_a is None else end_a):
        return overlapping
    return None


def batch_limits_of_parts(meta: ProfileMeta) -> list[dict[str, Any]]:
    """The batch limits of the merged parts of a profile, in text order, each with its ``num_examples``; one entry
    when every part was batched alike (or the profile was not merged)."""
    recorded = meta.config.get(BATCH_LIMITS_OF_PARTS)
    if recorded:
        return [dict(part) for part in recorded]
    return [{**{name: meta.config.get(name) for name in BATCH_LIMITS}, "num_examples": meta.num_examples}]


def _record_batch_limits(config: dict[str, Any], first: ProfileMeta, second: ProfileMeta) -> None:
    """List in `config` (the merge of `first` and `second`'s) the batch limits of every part, when they differ;
    adjacent parts batched alike are one entry, so the list does not depend on the order of merging."""
    parts: list[dict[str, Any]] = []
    for part in batch_limits_of_parts(first) + batch_limits_of_parts(second):
        if parts and all(parts[-1][name] == part[name] for name in BATCH_LIMITS):
            parts[-1]["num_examples"] += part["num_examples"]
        else:
            parts.append(part)
    config.pop(BATCH_LIMITS_OF_PARTS, None)
    if len(parts) > 1:
        config[BATCH_LIMITS_OF_PARTS] = parts


FINGERPRINT_JOIN = "+"  # a merged profile's dataset fingerprint lists its parts' ("a+b")


def _fingerprint_parts(meta: ProfileMeta) -> list[str]:
    """The dataset fingerprints of the parts a profile holds (one for an unmerged profile; none when unknown)."""
    return [part for part in meta.dataset_fingerprint.split(FINGERPRINT_JOIN) if part]


def _same_meta(a: ProfileMeta, b: ProfileMeta) -> bool:
    """Equal metadata apart from when each was computed: two runs of the same computation are equal profiles."""
    return dataclasses.replace(a, created_at="") == dataclasses.replace(b, created_at="")


def _optional_equal(a: Any, b: Any, equal) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and bool(equal(a, b)))
