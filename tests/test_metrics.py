"""Hellinger distance, entropy and the sparse per-row functions of hf_txray.metrics against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_txray import metrics
from hf_txray.errors import ConfigurationError
from hf_txray.accumulators import make_keys, split_keys

SEEDS = range(5)


def random_distribution(rng: np.random.Generator, size: int, zeros: int = 0) -> np.ndarray:
    p = rng.random(size)
    p[rng.choice(size, zeros, replace=False)] = 0.0
    return p / p.sum()


def brute_hellinger(p, q) -> float:
    return math.sqrt(sum((math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip(p, q)) / 2)


def brute_entropy(p) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


# ----- Hellinger ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_hellinger_of_identical_distributions_is_zero(seed):
    p = random_distribution(np.random.default_rng(seed), 12, zeros=3)
    assert metrics.hellinger(p, p.copy()) == 0.0


@pytest.mark.parametrize("p, q", [
    ([1.0, 0.0], [0.0, 1.0]),
    ([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]),
    ([0.2, 0.0, 0.8, 0.0, 0.0], [0.0, 0.6, 0.0, 0.3, 0.1]),
])
def test_hellinger_of_disjoint_distributions_is_one(p, q):
    assert metrics.hellinger(np.array(p), np.array(q)) == pytest.approx(1.0, abs=1e-12)


def test_disjoint_distributions_are_exactly_one_apart_where_their_sums_round_below_one():
    """Ten probabilities of 0.1 sum to 0.9999999999999999: the distance read 0.9999999999999999, and a viewer's
    search for neurons 1 apart missed them (found by a fresh helper)."""
    p = np.full(10, 0.1)
    assert sum(p.tolist()) < 1.0  # added in order, as bincount adds them
    assert metrics.hellinger(np.r_[p, np.zeros(10)], np.r_[np.zeros(10), p]) == 1.0
    keys_a = make_keys(np.zeros(10, dtype=np.int64), np.arange(10))
    keys_b = make_keys(np.r_[np.zeros(10, dtype=np.int64), [1, 1]], np.r_[np.arange(10, 20), [0, 1]])
    p_b = np.r_[p, [0.5, 0.5]]
    keys_a = np.r_[keys_a, make_keys(np.array([1, 1]), np.array([0, 5]))]
    p_a = np.r_[p, [0.5, 0.5]]
    rows = metrics.hellinger_by_row(keys_a, p_a, keys_b, p_b, lambda k: split_keys(k)[0], 2)
    assert rows[0] == 1.0  # disjoint
    assert rows[1] == pytest.approx(metrics.hellinger(np.array([0.5, 0.0, 0.5]), np.array([0.5, 0.5, 0.0])))
    assert rows[1] < 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_hellinger_is_symmetric(seed):
    rng = np.random.default_rng(seed)
    p, q = random_distribution(rng, 9, zeros=2), random_distribution(rng, 9, zeros=4)
    assert metrics.hellinger(p, q) == metrics.hellinger(q, p)


def test_hellinger_is_bounded_in_unit_interval():
    rng = np.random.default_rng(0)
    values = [metrics.hellinger(random_distribution(rng, 8, zeros=int(rng.integers(0, 7))),
                                random_distribution(rng, 8, zeros=int(rng.integers(0, 7))))
              for _ in range(300)]
    assert min(values) >= 0.0
    assert max(values) <= 1.0
    assert max(values) - min(values) > 0.3  # the sample spans the range, not one corner of it


@pytest.mark.parametrize("seed", SEEDS)
def test_hellinger_matches_brute_formula(seed):
    rng = np.random.default_rng(seed)
    p, q = random_distribution(rng, 15, zeros=4), random_distribution(rng, 15, zeros=5)
    assert metrics.hellinger(p, q) == pytest.approx(brute_hellinger(p, q), rel=1e-12, abs=1e-15)


def test_hellinger_of_dicts_is_taken_over_the_union_of_features():
    p = {"NOUN": 0.5, "VERB": 0.3, "DET": 0.2}
    q = {"VERB": 0.6, "ADJ": 0.4}
    support = ["ADJ", "DET", "NOUN", "VERB"]
    expected = brute_hellinger([p.get(f, 0.0) for f in support], [q.get(f, 0.0) for f in support])
    assert metrics.hellinger(p, q) == pytest.approx(expected, rel=1e-12)
    assert metrics.hellinger(q, p) == pytest.approx(expected, rel=1e-12)


def test_hellinger_of_dicts_ignores_key_order():
    p = {"a": 0.1, "b": 0.2, "c": 0.7}
    q = {"c": 0.5, "a": 0.5}
    assert metrics.hellinger(p, q) == metrics.hellinger(dict(reversed(list(p.items()))), q)


# ----- entropy --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 7, 64])
def test_entropy_of_uniform_distribution_is_log_size(size):
    assert metrics.entropy(np.full(size, 1.0 / size)) == pytest.approx(math.log(size), abs=1e-12)


def test_entropy_of_one_hot_is_zero():
    assert metrics.entropy(np.array([0.0, 1.0, 0.0])) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_ignores_zeros_and_matches_brute_formula(seed):
    p = random_distribution(np.random.default_rng(seed), 20, zeros=6)
    assert metrics.entropy(p) == pytest.approx(brute_entropy(p), rel=1e-12)
    assert metrics.entropy(p) == pytest.approx(metrics.entropy(p[p > 0]), rel=1e-12)


# ----- sparse per-row functions ---------------------------------------------------------------------------------
NUM_ROWS, NUM_FEATURES = 9, 12


def random_table(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique sparse (row, feature) entries with non-negative mass: some rows empty, some masses 0."""
    dense = rng.random((NUM_ROWS, NUM_FEATURES)) * (rng.random((NUM_ROWS, NUM_FEATURES)) < 0.4)
    dense[rng.choice(NUM_ROWS, 2, replace=False)] = 0.0  # rows without entries
    rows, features = np.nonzero(dense)
    mass = dense[rows, features]
    zero = rng.random(len(mass)) < 0.1  # stored entries whose mass is exactly 0
    mass[zero] = 0.0
    return rows.astype(np.int64), features.astype(np.int64), mass


def densify(rows, features, mass) -> np.ndarray:
    dense = np.zeros((NUM_ROWS, NUM_FEATURES))
    dense[rows, features] = mass
    return dense


def normalise_rows(dense: np.ndarray) -> np.ndarray:
    totals = dense.sum(axis=1, keepdims=True)
    return np.divide(dense, totals, out=np.zeros_like(dense), where=totals > 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_row_totals_match_dense_sums(seed):
    rows, features, mass = random_table(np.random.default_rng(seed))
    np.testing.assert_allclose(metrics.row_totals(rows, mass, NUM_ROWS), densify(rows, features, mass).sum(axis=1),
                               rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_probabilities_match_dense_normalisation(seed):
    rows, features, mass = random_table(np.random.default_rng(seed))
    expected = normalise_rows(densify(rows, features, mass))[rows, features]
    np.testing.assert_allclose(metrics.probabilities(rows, mass, NUM_ROWS), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_length_by_row_counts_features_with_positive_mass(seed):
    rows, features, mass = random_table(np.random.default_rng(seed))
    expected = (densify(rows, features, mass) > 0).sum(axis=1)
    np.testing.assert_array_equal(metrics.length_by_row(rows, mass, NUM_ROWS), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_by_row_matches_dense_entropy(seed):
    rows, features, mass = random_table(np.random.default_rng(seed))
    # a row without mass has no distribution: NaN (0 read as a neuron fully specialised)
    expected = [brute_entropy(p) if p.sum() > 0 else math.nan for p in normalise_rows(densify(rows, features, mass))]
    assert np.isnan(expected).sum() >= 2  # random_table leaves two rows empty
    np.testing.assert_allclose(metrics.entropy_by_row(rows, mass, NUM_ROWS), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_hellinger_by_row_matches_dense_hellinger(seed):
    rng = np.random.default_rng(seed)
    rows_a, feat_a, mass_a = random_table(rng)
    rows_b, feat_b, mass_b = random_table(rng)
    keys_a, keys_b = make_keys(rows_a, feat_a), make_keys(rows_b, feat_b)
    p_a = metrics.probabilities(rows_a, mass_a, NUM_ROWS)
    p_b = metrics.probabilities(rows_b, mass_b, NUM_ROWS)
    got = metrics.hellinger_by_row(keys_a, p_a, keys_b, p_b, lambda k: split_keys(k)[0], NUM_ROWS)
    dense_a, dense_b = normalise_rows(densify(rows_a, feat_a, mass_a)), normalise_rows(densify(rows_b, feat_b, mass_b))
    both = (dense_a.sum(axis=1) > 0) & (dense_b.sum(axis=1) > 0)
    assert both.sum() >= 3
    expected = np.array([brute_hellinger(p, q) for p, q in zip(dense_a, dense_b)])
    # from squared differences, no 1 - sum sqrt(p q) cancellation: the brute force's digits
    np.testing.assert_allclose(got[both], expected[both], rtol=0, atol=1e-14)


def test_hellinger_by_row_of_identical_tables_is_zero_and_of_disjoint_ones_one():
    rows, features, mass = random_table(np.random.default_rng(7))
    keys, p = make_keys(rows, features), metrics.probabilities(rows, mass, NUM_ROWS)
    rows_of = lambda k: split_keys(k)[0]  # noqa: E731
    got = metrics.hellinger_by_row(keys, p, keys, p, rows_of, NUM_ROWS)
    has_mass = metrics.row_totals(rows, mass, NUM_ROWS) > 0
    assert (got[has_mass] == 0.0).all()
    # no feature in common (numpy's bincount of no entries is int64: the sums must stay float)
    other = make_keys(rows, features + 1000)
    apart = metrics.hellinger_by_row(keys, p, other, p, rows_of, NUM_ROWS)
    np.testing.assert_allclose(apart[has_mass], 1.0, rtol=0, atol=1e-12)
    assert apart.dtype == np.float64


@pytest.mark.parametrize("seed", SEEDS)
def test_union_length_by_row_is_size_of_union_of_supports(seed):
    rng = np.random.default_rng(seed)
    rows_a, feat_a, _ = random_table(rng)
    rows_b, feat_b, _ = random_table(rng)
    got = metrics.union_length_by_row(make_keys(rows_a, feat_a), make_keys(rows_b, feat_b),
                                      lambda k: split_keys(k)[0], NUM_ROWS)
    support_a = {row: set(feat_a[rows_a == row].tolist()) for row in range(NUM_ROWS)}
    support_b = {row: set(feat_b[rows_b == row].tolist()) for row in range(NUM_ROWS)}
    np.testing.assert_array_equal(got, [len(support_a[r] | support_b[r]) for r in range(NUM_ROWS)])


# ----- inputs that are not probability distributions (helper 183) ----------------------------------------------
@pytest.mark.parametrize("p, q", [
    (np.array([1.0]), np.array([0.5, 0.5])),  # numpy broadcast the one against the two: 0.29
    ([10.0, 1.0], [1.0, 10.0]),  # counts, not probabilities: 2.16, above Hellinger's maximum of 1
    ({"a": 3.0}, {"a": 1.0}),  # masses: 0.52 between two identical distributions
    ([0.0, 0.0], [0.5, 0.5]),  # no distribution at all: 0.71
    ([np.nan, 1.0], [0.5, 0.5]),  # NaN
    ([-0.5, 1.5], [0.5, 0.5]),  # negative
    ([], []),
])
def test_hellinger_refuses_what_is_not_a_distribution(p, q):
    with pytest.raises(ConfigurationError):
        metrics.hellinger(p, q)


@pytest.mark.parametrize("p", [[2.0, 2.0], [-1.0, 2.0], [np.nan, 1.0], [np.inf, 0.0], []])
def test_entropy_refuses_what_is_not_a_distribution(p):
    with pytest.raises(ConfigurationError):  # [2, 2] gave -2.77 nats
        metrics.entropy(np.array(p))


@pytest.mark.parametrize("p", ["ab", ["0.5", "0.5"], {"a": 1.0}, [True, False], [{"a": 1}], None])
def test_entropy_hellinger_and_benjamini_hochberg_refuse_what_is_not_numbers(p):
    """entropy('ab') raised numpy's bare ValueError 'could not convert string to float', entropy({'a': 1.0}) float()'s
    TypeError, entropy(['0.5', '0.5']) read the strings as 0.693 nats and entropy([True, False]) a mask as 0 nats;
    benjamini_hochberg('x') failed as entropy('ab') did and took [True] as p = 1."""
    with pytest.raises(ConfigurationError, match=r"p must be a (non-empty 1-d )?probability vector"):
        metrics.entropy(p)
    with pytest.raises(ConfigurationError, match=r"p must be a (non-empty 1-d )?probability vector|two mappings"):
        metrics.hellinger(p, [0.5, 0.5])
    if not isinstance(p, dict):
        from hf_txray.significance import benjamini_hochberg

        with pytest.raises(ConfigurationError, match=r"p must be a 1-d array of p-values"):  # None: shape ()
            benjamini_hochberg(p)


def test_distributions_that_round_off_one_are_accepted():
    p = np.full(3, 1 / 3) * (1 + 1e-9)
    assert metrics.hellinger(p, p) == 0.0 and metrics.entropy(p) == pytest.approx(math.log(3), rel=1e-8)


def test_hellinger_matches_pandas_series_by_feature_not_by_position():
    """Two Series holding the same features in other orders were 0.289 apart (read by position), not 0."""
    import pandas as pd
    p = pd.Series({"x": 0.7, "y": 0.3})
    assert metrics.hellinger(p, pd.Series({"y": 0.3, "x": 0.7})) == 0.0
    q = pd.Series({"z": 0.5, "x": 0.5})  # union x, y, z, missing = 0
    expected = brute_hellinger([0.7, 0.3, 0.0], [0.5, 0.0, 0.5])
    assert metrics.hellinger(p, q) == pytest.approx(expected, rel=1e-12)
    assert metrics.hellinger(p, {"z": 0.5, "x": 0.5}) == pytest.approx(expected, rel=1e-12)
    assert metrics.hellinger(np.array([0.7, 0.3]), np.array([0.3, 0.7])) > 0  # vectors stay positional
    with pytest.raises(ConfigurationError, match="not one of each"):
        metrics.hellinger(p, np.array([0.7, 0.3]))
    with pytest.raises(ConfigurationError, match="repeated features"):
        metrics.hellinger(pd.Series([0.5, 0.5], index=["x", "x"]), p)


def test_hellinger_of_labelled_distributions_is_symmetric_and_ignores_order_exactly():
    # the union of features was summed in insertion order: one pair in six gave hellinger(p, q) != hellinger(q, p)
    # (0.7804661093703584 vs ...582 for a shuffled p); the sorted union gives the same sum whatever the order
    import pandas as pd

    rng = np.random.default_rng(0)
    for _ in range(200):
        keys = [f"f{i}" for i in range(int(rng.integers(3, 30)))]
        p, q = ({str(k): float(v) for k, v in zip(chosen, random_distribution(rng, len(chosen)))}
                for chosen in (rng.choice(keys, size=int(rng.integers(1, len(keys) + 1)), replace=False)
                               for _ in range(2)))
        shuffled = dict(sorted(p.items(), key=lambda _: rng.random()))
        assert metrics.hellinger(p, q) == metrics.hellinger(q, p) == metrics.hellinger(shuffled, q)
        assert metrics.hellinger(pd.Series(shuffled), pd.Series(q)) == metrics.hellinger(p, q)
    mixed = metrics.hellinger({1: 0.5, "a": 0.5}, {"a": 1.0})  # keys that do not compare with each other
    assert mixed == pytest.approx(math.sqrt(((math.sqrt(0.5) - 1) ** 2 + 0.5) / 2), rel=1e-12)


def test_sorted_union_is_union1d():
    """compare's (row, feature) key unions: numpy 2.4's np.union1d hashes and grew superlinearly (70 of 110 s of a
    compare of two 1M-word profiles, helper 420); sorted_union gives the same array by one sort."""
    rng = np.random.default_rng(0)
    for a, b in ((np.zeros(0, np.int64), np.zeros(0, np.int64)), (np.array([3, 1, 3]), np.zeros(0, np.int64)),
                 (make_keys(rng.integers(0, 9, 500), rng.integers(0, 50, 500)),
                  make_keys(rng.integers(0, 9, 300), rng.integers(0, 50, 300)))):
        got = metrics.sorted_union(a, b)
        want = np.union1d(a, b)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    n = 1_500_000
    keys = np.sort(make_keys(rng.integers(0, 256, n), rng.permutation(n)))
    assert np.array_equal(metrics.sorted_union(keys, keys[::2]), keys)  # its speed: measured, not timed here
