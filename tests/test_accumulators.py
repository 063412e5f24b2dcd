"""The accumulators' one contract (issue 11, item 5): add, exact merge, state_dict / load_state_dict."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hf_txray.accumulators import (
    Accumulator,
    ActivationHistogram,
    NoiseSums,
    PositionMass,
    SparseSums,
    TopExamples,
    copy_of,
    histogram_edges,
    merged,
)

N = 400  # entries per chunk


def _masses(rng, n):
    # Multiples of 1/8 below 64: every float64 sum of a few thousand of them is exact in any order, so "merge equals
    # adding everything at once" can be asserted bit for bit.
    return rng.integers(1, 512, n) / 8.0


def _chunks(kind, seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 60, N).astype(np.int64) << 32 | rng.integers(0, 5, N)
    if kind == "sums":
        return (keys, _masses(rng, N), rng.integers(1, 3, N))
    if kind == "noise":
        return (keys, _masses(rng, N), rng.random(N) < 0.5)
    if kind == "positions":
        return (rng.integers(0, 30, N), rng.integers(0, 16, N), _masses(rng, N))
    if kind == "histogram":
        return (rng.integers(0, 30, N), 10.0 ** rng.uniform(-4, 5, N))
    rows = rng.integers(0, 12, N)
    fields = {name: rng.integers(0, 50, N) for name in TopExamples.FIELDS}
    return (rows, np.round(rng.normal(size=N), 1)), fields  # rounded: many exact ties


BUILD = {
    "sums": SparseSums,
    "noise": NoiseSums,
    "positions": PositionMass,
    "histogram": lambda: ActivationHistogram(histogram_edges()),
    "top": lambda: TopExamples(12, 4),
}


def _add(acc, kind, data):
    if kind == "top":
        args, fields = data
        acc.add(*args, **fields)
    else:
        acc.add(*data)
    return acc


def _equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", list(BUILD))
def test_merge_equals_adding_everything_to_one(kind):
    chunks = [_chunks(kind, seed) for seed in range(4)]
    whole = BUILD[kind]()
    for data in chunks:
        _add(whole, kind, data)
    parts = [_add(BUILD[kind](), kind, data) for data in chunks]
    before = [p.state_dict() for p in parts]
    together = merged(parts)
    assert isinstance(together, Accumulator)
    assert _equal(together, whole)
    assert all(np.array_equal(b[k], p.state_dict()[k]) for b, p in zip(before, parts) for k in b)  # parts untouched
    # Associative: ((0 1) (2 3)) == (((0 1) 2) 3).
    assert _equal(merged([merged(parts[:2]), merged(parts[2:])]), together)


@pytest.mark.parametrize("kind", list(BUILD))
def test_state_dict_round_trip_is_exact_and_flat(kind):
    acc = _add(_add(BUILD[kind](), kind, _chunks(kind, 0)), kind, _chunks(kind, 1))
    state = acc.state_dict()
    assert state and all(isinstance(v, (np.ndarray, int)) for v in state.values())
    restored = type(acc).empty_like(acc).load_state_dict(pickle.loads(pickle.dumps(state)))
    assert _equal(restored, acc)
    # The restored accumulator keeps working: adding the same chunk to both keeps them equal.
    more = _chunks(kind, 2)
    assert _equal(_add(restored, kind, more), _add(acc, kind, more))
    copy = copy_of(acc)
    _add(copy, kind, _chunks(kind, 3))
    assert not _equal(copy, acc)  # a copy is independent


def test_merging_different_kinds_or_shapes_is_refused():
    with pytest.raises(ValueError, match="different kinds"):
        merged([SparseSums(), PositionMass()])
    with pytest.raises(ValueError, match="Nothing"):
        merged([])
    with pytest.raises(ValueError, match="10 rows into 12"):
        TopExamples(12, 4).merge(TopExamples(10, 4))
    with pytest.raises(ValueError, match="bin edges"):
        ActivationHistogram(histogram_edges()).merge(ActivationHistogram(histogram_edges(high=1e3)))
