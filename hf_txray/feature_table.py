"""`FeatureTable`: the sparse (neuron, feature) statistics of one feature type, as a :class:`~hf_txray.profile.Profile`
holds them (``profile.tables[feature_type]``) and :mod:`hf_txray.significance` tests them.

Its own module (below both) so that the significance tests' annotations name the class at runtime.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .errors import ProfileFormatError

NOISE_COLUMNS = ("mass_odd", "count_odd", "mass_sq")  # a FeatureTable's split-half and squared sums


@dataclass
class FeatureTable:
    """Sparse (row, feature) statistics of one feature type; rows are ``layer_position * num_neurons + neuron``.

    Entries are sorted by (row, feature_id) and unique. The optional noise columns (``None`` in profiles saved
    before they existed) hold, per entry, the mass and count of credits from the texts of the odd half (by content
    hash, or example id parity: ``ProfileMeta.split_halves``; the split-half noise
    floor's second half; the first is the total minus it) and the sum of squared credited activations (see
    :class:`~hf_txray.accumulators.NoiseSums`).
    """

    vocab: list[str]
    rows: np.ndarray
    feature_ids: np.ndarray
    mass: np.ndarray
    count: np.ndarray
    corpus_count: np.ndarray
    mass_odd: np.ndarray | None = None
    count_odd: np.ndarray | None = None
    mass_sq: np.ndarray | None = None

    NOISE_COLUMNS = NOISE_COLUMNS

    def __post_init__(self) -> None:
        # Keys are (row << 32) | feature_id: int32 rows (a table built by hand, a column read as int32) overflowed
        # and collided, so their entries were added to other rows' (helper 183). Integers widen; floats are refused.
        for name in ("rows", "feature_ids", "count", "corpus_count", "count_odd"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value)
                if value.size == 0:
                    value = value.astype(np.int64)
                elif value.dtype.kind not in "iu" or not np.can_cast(value.dtype, np.int64):
                    raise ProfileFormatError(f"FeatureTable {name} must hold integers, got {value.dtype}.")
                setattr(self, name, value.astype(np.int64, copy=False))
        for name in ("mass", "mass_odd", "mass_sq"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))
        self._check_entries()

    def _check_entries(self) -> None:
        """Refuse entries out of (row, feature_id) order, repeated, or naming a feature outside the vocabulary:
        lookups (:meth:`Profile.feature_stats`) binary-search the rows, so a hand-built table out of order read as
        empty ({} for a credited neuron), and a repeated entry ended compare in a bare IndexError (helper 199)."""
        lengths = {len(getattr(self, n)) for n in ("rows", "feature_ids", "mass", "count")}
        lengths |= {len(getattr(self, n)) for n in self.NOISE_COLUMNS if getattr(self, n) is not None}
        if len(lengths) > 1:
            raise ProfileFormatError(f"FeatureTable columns must have one length, got lengths {sorted(lengths)}.")
        if len(self.corpus_count) != len(self.vocab):
            raise ProfileFormatError(f"FeatureTable corpus_count has {len(self.corpus_count)} entries for a "
                                     f"vocabulary of {len(self.vocab)} features: one per feature.")
        if len(self.rows) == 0:
            return
        if self.rows.min() < 0 or self.feature_ids.min() < 0 or self.feature_ids.max() >= len(self.vocab):
            raise ProfileFormatError(
                f"FeatureTable rows must be >= 0 and feature ids in [0, {len(self.vocab)}) (its vocabulary), got rows "
                f"from {self.rows.min()} and feature ids in [{self.feature_ids.min()}, {self.feature_ids.max()}].")
        keys = self.keys()
        step = np.diff(keys)
        if np.any(step <= 0):
            i = int(np.flatnonzero(step <= 0)[0])
            what = "repeats" if step[i] == 0 else "is out of order at"
            raise ProfileFormatError(
                f"FeatureTable {what} (row {self.rows[i + 1]}, feature {self.vocab[self.feature_ids[i + 1]]!r}): its "
                "entries must be sorted by (row, feature_id), one per pair. Sum repeated pairs and sort them "
                "(np.lexsort((feature_ids, rows))) before building the table.")

    @property
    def has_noise(self) -> bool:
        return self.mass_odd is not None and self.count_odd is not None and self.mass_sq is not None

    def keys(self) -> np.ndarray:
        return (self.rows << 32) | self.feature_ids

    def half(self, odd: bool) -> "FeatureTable":
        """The table of the credits from odd (or even) example ids only; needs the noise columns.

        Squared masses are not kept per half: the half's ``mass_sq`` is the entry's, scaled by the half's share of
        its credits (the same spread in both halves), so the two halves pool back to the whole.
        """
        if not self.has_noise:
            raise ProfileFormatError("This profile has no split-half sums (saved by an older hf_txray): profile again.")
        mass = self.mass_odd if odd else self.mass - self.mass_odd
        count = self.count_odd if odd else self.count - self.count_odd
        keep = count > 0
        mass_sq = self.mass_sq[keep] * count[keep] / self.count[keep]
        return FeatureTable(self.vocab, self.rows[keep], self.feature_ids[keep], np.maximum(mass[keep], 0.0),
                            count[keep], self.corpus_count, mass_sq=mass_sq)

    def odd_even_swapped(self) -> "FeatureTable":
        """The same table with its split halves exchanged (odd becomes even): what renumbering example ids by an odd
        offset does. The new odd mass is ``mass - mass_odd``: equal to the direct sum up to float rounding."""
        if not self.has_noise:
            return self
        return dataclasses.replace(self, mass_odd=self.mass - self.mass_odd, count_odd=self.count - self.count_odd)

    def by_preference(self) -> np.ndarray:
        """Indices of the entries ordered by row, then mass descending, then feature name: the order in which a
        neuron's features are read (:meth:`Profile.feature_stats`, its top feature, the neuron cards). The name breaks
        ties, not the feature id, which follows the order the features were first seen in (batching, sharding)."""
        names = np.array(self.vocab, dtype=object)
        alphabetical = np.empty(len(names), dtype=np.int64)
        alphabetical[np.argsort(names, kind="stable")] = np.arange(len(names))
        return np.lexsort((alphabetical[self.feature_ids], -self.mass, self.rows))

    def top_entries(self) -> np.ndarray:
        """Index of each row's first entry in :meth:`by_preference`'s order (the row's top feature: most mass, then
        feature name), ascending by row, without sorting the table: names are compared only among a row's entries
        tied at its largest mass (sorting every entry made ``Profile.neuron_stats`` 1.6x slower on 900k entries)."""
        if not len(self.rows):
            return np.empty(0, dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, self.rows[1:] != self.rows[:-1]])
        best = np.repeat(np.fmax.reduceat(self.mass, starts), np.diff(np.r_[starts, len(self.rows)]))
        candidates = np.flatnonzero((self.mass == best) | np.isnan(best))  # a row of NaN masses ties them all
        if len(candidates) == len(starts):
            return candidates
        names = np.array([self.vocab[i] for i in self.feature_ids[candidates]], dtype=object)
        order = np.argsort(names, kind="stable")
        order = order[np.argsort(self.rows[candidates][order], kind="stable")]  # by row, then name
        rows = self.rows[candidates][order]
        return candidates[order][np.r_[True, rows[1:] != rows[:-1]]]

    def remapped(self, vocab: list[str]) -> "FeatureTable":
        """The same table with feature ids taken from `vocab`, a superset of this table's vocabulary."""
        index = {f: i for i, f in enumerate(vocab)}
        mapping = np.array([index[f] for f in self.vocab], dtype=np.int64)
        corpus = np.zeros(len(vocab), dtype=np.int64)
        corpus[mapping] = self.corpus_count
        feature_ids = mapping[self.feature_ids]
        order = np.argsort((self.rows << 32) | feature_ids, kind="stable")
        noise = {n: getattr(self, n)[order] for n in self.NOISE_COLUMNS if getattr(self, n) is not None}
        return FeatureTable(vocab, self.rows[order], feature_ids[order], self.mass[order], self.count[order], corpus,
                            **noise)

    def equals(self, other: "FeatureTable") -> bool:
        """Equal statistics per (row, feature); the order of the vocabulary (the order features were first seen,
        which depends on batching and on the order of merges) does not matter."""
        if self.vocab != other.vocab and len(self.vocab) == len(other.vocab) and set(self.vocab) == set(other.vocab):
            other = other.remapped(self.vocab)
        return (
            self.vocab == other.vocab
            and all(np.array_equal(getattr(self, n), getattr(other, n)) for n in ("rows", "feature_ids", "count", "corpus_count"))
            and np.array_equal(self.mass, other.mass)
            and all(same_optional(getattr(self, n), getattr(other, n)) for n in self.NOISE_COLUMNS)
        )


def same_optional(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Both None, or two equal arrays (an optional column of two tables or profiles)."""
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
