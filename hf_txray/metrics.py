"""Pure functions on preference distributions: Hellinger distance, entropy, length.

Dense functions take probability vectors over the same support; the ``*_by_row`` functions work on sparse
(row, feature) tables and return one value per row, which is how profiles store distributions.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np

from .errors import ConfigurationError

SUM_TOLERANCE = 1e-6  # how far from 1 a probability vector's sum may round (float32 masses summed in float64)


def as_floats(values: Any, name: str, what: str) -> np.ndarray:
    """`values` as a float64 array, or a ConfigurationError naming `name` and `what` it should be.

    numpy's ``could not convert string to float: 'ab'`` and ``float() argument must be ... not 'dict'`` named neither
    the argument nor the fix, and a boolean mask was read as probabilities 1 and 0.
    """
    if isinstance(values, Mapping):
        raise ConfigurationError(f"{name} must be {what}, got a mapping: pass its values, np.array(list(...values())).")
    try:
        array = np.asarray(values)
        floats = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"{name} must be {what} (numbers), got {str(values)[:60]!r}: {error}.") from None
    if array.dtype == bool or array.dtype.kind in "USO" and any(isinstance(v, (bool, np.bool_, str, bytes))
                                                               for v in array.reshape(-1).tolist()):
        raise ConfigurationError(f"{name} must be {what} (numbers), got {array.dtype} values "
                                 f"{array.reshape(-1)[:3].tolist()}.")
    return floats


def check_distribution(p: np.ndarray, name: str = "p") -> np.ndarray:
    """`p` as a float64 vector, or a ConfigurationError: a 1-d, non-empty vector of finite values >= 0 that sum to 1.

    Counts or masses passed where probabilities are expected gave a Hellinger distance above 1 (2.16 between
    ``[10, 1]`` and ``[1, 10]``) and a negative entropy, without an error; normalise them first (``p / p.sum()``).
    """
    p = as_floats(p, name, "a probability vector")
    if p.ndim != 1 or p.size == 0:
        raise ConfigurationError(f"{name} must be a non-empty 1-d probability vector, got shape {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ConfigurationError(f"{name} must hold finite probabilities >= 0, got {p[~np.isfinite(p) | (p < 0)][:3]}.")
    total = float(p.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ConfigurationError(f"{name} must sum to 1 (a probability distribution), got a sum of {total:.6g}: "
                                 "normalise counts or masses first (p / p.sum()).")
    return p


def labelled(values: Any, name: str) -> dict | None:
    """`values` as a dict feature -> probability when it is labelled (a mapping or a pandas Series), else None.

    A Series was read by position: two Series holding the same features in other orders were 0.289 apart instead of
    0 (``{'x': .7, 'y': .3}`` against ``{'y': .3, 'x': .7}``). pandas is only looked up when it is already imported:
    no object can be a Series otherwise.
    """
    if isinstance(values, Mapping):
        return dict(values)
    pandas = sys.modules.get("pandas")
    if pandas is None or not isinstance(values, pandas.Series):
        return None
    if not values.index.is_unique:
        raise ConfigurationError(f"{name} has repeated features in its index "
                                 f"{values.index[values.index.duplicated()][:3].tolist()}: one probability per feature.")
    return values.to_dict()


def feature_order(features: set) -> list:
    """The features of a union in one fixed order, sorted (by type name and text where they do not compare: ``1`` and
    ``"a"``): the sum of a distance must not depend on the order of the dicts or Series it came from, where an
    insertion order gave ``hellinger(p, q)`` and ``hellinger(q, p)`` 1 to 2 ulp apart (0.7804661093703584 vs
    ...582) for one pair in six."""
    try:
        return sorted(features)
    except TypeError:
        return sorted(features, key=lambda f: (type(f).__name__, repr(f)))


def hellinger(p: np.ndarray | Mapping[str, float], q: np.ndarray | Mapping[str, float]) -> float:
    """Hellinger distance H(p, q) = ||sqrt(p) - sqrt(q)||_2 / sqrt(2), in [0, 1].

    The distance TX-Ray compares a neuron's preference distributions with across stages (Rethmeier et al., 2020,
    "TX-Ray: Quantifying and Explaining Model-Knowledge Transfer in (Un-)Supervised NLP", UAI); the definition is
    Hellinger's (1909), normalised by 1/sqrt(2) so that distributions with disjoint supports are 1 apart.

    Args:
        p, q (`np.ndarray`, shape `(n,)`, or mapping `str` -> `float`): probability vectors of the same length,
            matched by position, or labelled distributions (mappings feature -> probability such as
            :meth:`Profile.distribution`, or pandas Series indexed by feature), matched by feature over the union of
            both (missing = 0).

    Returns:
        `float`: the distance, unitless, 0 for equal distributions and 1 for disjoint supports.

    Raises:
        ConfigurationError: `p` or `q` is not a probability distribution (values >= 0, finite, summing to 1 within
            1e-6), the vectors differ in length (numpy would broadcast a vector of one against any other), one is
            labelled and the other not, or a Series repeats a feature.
    """
    p_labels, q_labels = labelled(p, "p"), labelled(q, "q")
    if (p_labels is None) != (q_labels is None):
        raise ConfigurationError("hellinger takes two vectors or two mappings (or pandas Series) feature -> "
                                 "probability, not one of each.")
    if p_labels is not None:
        support = feature_order(set(p_labels) | set(q_labels))
        p = np.array([p_labels.get(f, 0.0) for f in support])
        q = np.array([q_labels.get(f, 0.0) for f in support])
    p, q = check_distribution(p, "p"), check_distribution(q, "q")
    if p.shape != q.shape:
        raise ConfigurationError(f"p and q must have the same length (one support), got {len(p)} and {len(q)}.")
    if p.any() and q.any() and not np.any(p * q):  # disjoint: exactly 1 (the sums can round below it)
        return 1.0
    return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / np.sqrt(2.0))


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats of a probability vector (zeros ignored).

    Args:
        p (`np.ndarray`, shape `(n,)`): a probability vector (values >= 0 summing to 1).

    Returns:
        `float`: ``-sum(p * ln p)`` in nats, between 0 (one feature) and ``ln(n)`` (uniform).

    Raises:
        ConfigurationError: `p` is not a probability distribution (see :func:`hellinger`).
    """
    p = check_distribution(p)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def row_totals(rows: np.ndarray, values: np.ndarray, num_rows: int) -> np.ndarray:
    """Sum of `values` per row, float64 (numpy's weighted bincount of nothing is int64: a feature never credited)."""
    return np.bincount(rows, weights=values, minlength=num_rows).astype(np.float64, copy=False)


def probabilities(rows: np.ndarray, mass: np.ndarray, num_rows: int) -> np.ndarray:
    """p = mass / (row's total mass), aligned with the sparse entries."""
    totals = row_totals(rows, mass, num_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals[rows] > 0, mass / totals[rows], 0.0)


def length_by_row(rows: np.ndarray, mass: np.ndarray, num_rows: int) -> np.ndarray:
    """Number of distinct features with positive mass per row (TX-Ray's "length")."""
    return np.bincount(rows[mass > 0], minlength=num_rows).astype(np.int64)


def mean_length(lengths: np.ndarray, groups: np.ndarray | None = None) -> "float | dict[int, float]":
    """Mean length over the neurons with a length (> 0: values of the feature type with positive mass): a neuron
    without any value of a sparse type (a user feature on a few tokens) has no length, and counted as 0 it pulled
    the mean down (three such neurons beside one of length 3 read 0.75). NaN when none has one; with `groups` (the
    layer of each neuron), the mean per group, NaN for a group without any."""
    lengths = np.asarray(lengths, dtype=np.float64)
    has = lengths > 0
    if groups is None:
        return float(lengths[has].mean()) if has.any() else float("nan")
    groups = np.asarray(groups)
    return {int(g): float(lengths[has & (groups == g)].mean()) if (has & (groups == g)).any() else float("nan")
            for g in np.unique(groups)}


def entropy_by_row(rows: np.ndarray, mass: np.ndarray, num_rows: int) -> np.ndarray:
    """Entropy (nats) of each row's preference distribution; NaN for a row without mass (no distribution: a neuron
    never credited, or without any value of a sparse feature type), where 0 read as a neuron fully specialised."""
    p = probabilities(rows, mass, num_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    entropy = np.bincount(rows, weights=terms, minlength=num_rows).astype(np.float64, copy=False)
    entropy[row_totals(rows, mass, num_rows) <= 0] = np.nan
    return entropy


def hellinger_by_row(
    keys_a: np.ndarray, p_a: np.ndarray, keys_b: np.ndarray, p_b: np.ndarray, rows_of, num_rows: int
) -> np.ndarray:
    """Hellinger distance per row between two sparse distributions sharing one key space.

    ``2 H^2 = sum over common keys of (sqrt(p) - sqrt(q))^2 + the mass of each side's own keys``: no union is
    materialised, and unlike ``1 - sum(sqrt(p*q))`` (Bhattacharyya) there is no cancellation, so two equal
    distributions are exactly 0 apart (that form left about 1e-8) and small distances keep their digits; rows without
    a value of positive probability on both sides are exactly 1 apart. Rows with no mass on either side should be
    masked by the caller.

    Args:
        keys_a, keys_b (`np.ndarray`): sorted unique int64 keys (row and feature).
        p_a, p_b (`np.ndarray`): probabilities aligned with the keys.
        rows_of (`Callable`): maps keys to rows.
    """
    common, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    squares = np.zeros(num_rows)  # float: bincount of no entries returns int64 whatever its weights
    squares += np.bincount(rows_of(common), weights=(np.sqrt(p_a[ia]) - np.sqrt(p_b[ib])) ** 2, minlength=num_rows)
    for keys, p, shared in ((keys_a, p_a, ia), (keys_b, p_b, ib)):
        own = np.ones(len(keys), dtype=bool)
        own[shared] = False
        squares += np.bincount(rows_of(keys[own]), weights=p[own], minlength=num_rows)
    # Disjoint supports are exactly 1 apart: the sum of each side's probabilities can round to 1 - 1e-16, which
    # read 0.9999999999999999 (a viewer's search for 1 missed it)
    overlap = np.bincount(rows_of(common), weights=p_a[ia] * p_b[ib], minlength=num_rows)
    return np.where(overlap > 0, np.sqrt(np.clip(squares / 2.0, 0.0, 1.0)), 1.0)


def sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct values of `a` and `b` (what ``np.union1d`` returns), by one sort of their concatenation.

    numpy 2.4's ``np.union1d`` (``np.unique`` without ``return_*``) groups by a hash table that grows superlinearly
    with the keys of two feature tables: 4.6 s for 3M (row, feature) keys where this takes 0.08 s (helper 420:
    ``compare`` of two 1M-word profiles spent 70 of its 110 s there)."""
    values = np.concatenate([np.asarray(a).ravel(), np.asarray(b).ravel()])
    values.sort(kind="stable")
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def union_length_by_row(keys_a: np.ndarray, keys_b: np.ndarray, rows_of, num_rows: int) -> np.ndarray:
    """Size of the union of two rows' supports (the "Hellinger length")."""
    union = sorted_union(keys_a, keys_b)
    return np.bincount(rows_of(union), minlength=num_rows).astype(np.int64)
