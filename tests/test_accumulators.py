"""The accumulators' one contract (issue 11, item 5): add, exact merge, state_dict / load_state_dict."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
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
from hf_txray.profile import EXAMPLE_COLUMNS, HistogramTable, empty_examples, merge_examples

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
    if kind == "top+source":
        fields["source"] = rng.integers(0, 1000, N)
    return (rows, np.round(rng.normal(size=N), 1)), fields  # rounded: many exact ties


BUILD = {
    "sums": SparseSums,
    "noise": NoiseSums,
    "positions": PositionMass,
    "histogram": lambda: ActivationHistogram(histogram_edges()),
    "top": lambda: TopExamples(12, 4),
    "top+source": lambda: TopExamples(12, 4, extra_fields=("source",)),  # an extra field rides along
}


def _add(acc, kind, data):
    if kind.startswith("top"):
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


# ----- the profile's parts on the contract: histogram tables and example tables ---------------------------------
def _histogram_table(seed: int) -> HistogramTable:
    acc = _add(ActivationHistogram(histogram_edges()), "histogram", _chunks("histogram", seed))
    return HistogramTable.from_accumulator(acc)


def test_histogram_table_round_trips_and_merges_through_the_accumulator():
    edges = histogram_edges()
    tables = [_histogram_table(seed) for seed in range(3)]
    back = HistogramTable.from_accumulator(tables[0].to_accumulator(edges))
    assert back.equals(tables[0]) and len(back.rows) > 0
    both = HistogramTable.from_accumulator(merged([t.to_accumulator(edges) for t in tables]))
    np.testing.assert_array_equal(both.dense(30), sum(t.dense(30) for t in tables))
    with pytest.raises(ValueError, match="bins"):
        tables[0].to_accumulator(edges[:-1])


def _example_frame(seed: int, capacity: int) -> pd.DataFrame:
    """A profile's examples table: per (layer, neuron) the `capacity` best of random credits, with text columns
    that differ per entry (so a merge that lost track of them would show)."""
    rng = np.random.default_rng(seed)
    n = 300
    frame = pd.DataFrame({
        "layer": rng.choice([0, 2, 5], n), "neuron": rng.integers(0, 6, n), "rank": 0,
        "activation": np.round(rng.normal(size=n), 1), "example_id": rng.integers(0, 20, n),
        "token_index": rng.integers(0, 10, n), "char_start": rng.integers(0, 50, n), "char_end": 0,
    })
    frame["char_end"] = frame["char_start"] + 3
    frame = frame.drop_duplicates(["layer", "neuron", "example_id", "token_index"])
    frame = _sorted_examples(frame, capacity)
    for column in ("token", "left", "right"):
        frame[column] = [f"{column}-{seed}-{i}" for i in range(len(frame))]
    return frame[EXAMPLE_COLUMNS]


def _sorted_examples(frame: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """The brute-force definition: sort by activation (descending), example id, token index; keep `capacity`."""
    frame = frame.sort_values(["layer", "neuron", "activation", "example_id", "token_index"],
                              ascending=[True, True, False, True, True], kind="stable")
    frame = frame.groupby(["layer", "neuron"], sort=False).head(capacity).copy()
    frame["rank"] = frame.groupby(["layer", "neuron"], sort=False).cumcount().astype(np.int64)
    return frame.reset_index(drop=True)


@pytest.mark.parametrize("capacity", [1, 3])
def test_merge_examples_is_exact_and_associative_and_keeps_the_text_columns(capacity):
    a, b, c = (_example_frame(seed, capacity) for seed in range(3))
    got = merge_examples(a, b, capacity)
    want = _sorted_examples(pd.concat([a, b], ignore_index=True), capacity)[EXAMPLE_COLUMNS]
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    left = merge_examples(merge_examples(a, b, capacity), c, capacity)
    right = merge_examples(a, merge_examples(b, c, capacity), capacity)
    pd.testing.assert_frame_equal(left, right, check_exact=True)
    pd.testing.assert_frame_equal(merge_examples(a, empty_examples(), capacity), a, check_exact=True)


@pytest.mark.parametrize("seed", range(5))
def test_compacting_sorted_chunks_by_merging_equals_one_reduce_over_everything(seed):
    """`SparseSums.compact` merges sorted unique chunks into its state instead of re-sorting everything: the sums
    must be exactly those of one `reduce_by_key` over the state and the chunks in order (float64 addition order)."""
    from hf_txray.accumulators import SparseSums, reduce_by_key

    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(4):
        keys = rng.integers(0, 5_000, size=rng.integers(0, 3_000))
        chunks.append(reduce_by_key(keys, rng.random(len(keys)) * 10 ** rng.uniform(-3, 3, len(keys)),
                                    np.ones(len(keys), dtype=np.int64)))
    sums = SparseSums()
    for keys, mass, count in chunks:
        sums.add(keys, mass, count)
        sums.compact()
    expected = reduce_by_key(*(np.concatenate(parts) for parts in zip(*chunks)))
    assert np.array_equal(sums.keys, expected[0])
    assert np.array_equal(sums.mass, expected[1])  # bit-identical, not just close
    assert np.array_equal(sums.count, expected[2])


def _sums_in_order(parts):
    """Brute force: each key's entries added one by one, in part order then entry order, from 0.0."""
    sums: dict[int, list] = {}
    for keys, columns, counts in parts:
        for i, key in enumerate(keys.tolist()):
            entry = sums.setdefault(key, [0.0] * len(columns) + [0])
            for j, column in enumerate(columns):
                entry[j] += float(column[i])
            entry[-1] += int(counts[i])
    keys = sorted(sums)
    return keys, [[sums[k][j] for k in keys] for j in range(len(parts[0][1]))], [sums[k][-1] for k in keys]


@pytest.mark.parametrize("case", ["overlapping", "one sorted chunk", "one sorted chunk among empty ones", "disjoint",
                                  "one unsorted chunk with repeats"])
def test_reduce_in_order_is_the_sum_in_part_then_entry_order(case):
    from hf_txray.accumulators import reduce_in_order

    rng = np.random.default_rng(len(case))

    def part(keys):
        keys = np.asarray(keys, dtype=np.int64)
        return keys, [rng.random(len(keys)) * 10, rng.random(len(keys))], rng.integers(1, 5, len(keys))

    empty = part([])
    parts = {
        "overlapping": [part(np.unique(rng.integers(0, 50, 30))) for _ in range(4)],
        "one sorted chunk": [part(np.unique(rng.integers(0, 10**12, 500)))],
        "one sorted chunk among empty ones": [empty, part(np.unique(rng.integers(0, 100, 60))), empty],
        "disjoint": [part(np.arange(0, 40, 2)), part(np.arange(1, 40, 2)), part([100, 200])],
        "one unsorted chunk with repeats": [part(rng.integers(0, 20, 200))],
    }[case]
    keys, columns, counts = reduce_in_order(parts)
    want_keys, want_columns, want_counts = _sums_in_order(parts)
    assert keys.tolist() == want_keys and counts.tolist() == want_counts
    for got, want in zip(columns, want_columns):
        assert got.dtype == np.float64 and got.tolist() == want  # bit for bit


def test_merge_parity_adds_the_two_halves_of_each_key():
    from hf_txray.credit import merge_parity

    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 400, 300))  # many keys hold both parities, some one
    mass, counts = rng.random(len(keys)), rng.integers(1, 9, len(keys))
    base, (summed,), summed_counts = merge_parity(keys, [mass], counts)
    want: dict[int, list] = {}
    for key, m, c in zip(keys.tolist(), mass.tolist(), counts.tolist()):
        entry = want.setdefault(key >> 1, [0.0, 0])
        entry[0], entry[1] = entry[0] + m, entry[1] + c
    assert base.tolist() == sorted(want)
    assert summed.tolist() == [want[k][0] for k in sorted(want)]
    assert summed_counts.tolist() == [want[k][1] for k in sorted(want)]
    assert len(base) < len(keys)  # the pairs were merged


def test_merge_parity_and_reduce_in_order_take_their_slow_paths_when_their_inputs_are_not_as_promised():
    """merge_parity is for sorted unique keys and reduce_in_order's shortcut for one sorted chunk of distinct keys:
    repeated keys (three entries for one base) and unsorted lists still give the plain sums (fresh helper 93)."""
    from hf_txray.accumulators import reduce_in_order
    from hf_txray.credit import merge_parity

    base, (mass,), counts = merge_parity(np.array([2, 2, 3]), [np.array([1.0, 2.0, 4.0])], np.array([1, 1, 1]))
    assert base.tolist() == [1] and mass.tolist() == [7.0] and counts.tolist() == [3]
    keys, (column,), counts = reduce_in_order([([1, 3, 2], [[1.0, 3.0, 2.0]], [1, 1, 1])])
    assert keys.tolist() == [1, 2, 3] and column.tolist() == [1.0, 2.0, 3.0] and counts.tolist() == [1, 1, 1]


def test_noise_sums_aligned_with_their_feature_keys_match_a_dictionary_lookup():
    """NoiseSums.aligned places each odd-half and squared sum at its key among the feature table's keys (a merge
    join, and no search at all when the squares hold every key); a key the table lacks is refused, not misplaced."""
    from hf_txray.accumulators import subset_positions

    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(0, 1 << 40, 3000))
    noise = NoiseSums()
    odd = rng.random(len(keys)) < 0.4
    noise.odd.add(keys[odd], _masses(rng, int(odd.sum())), rng.integers(1, 5, int(odd.sum())))
    for squares_keys in (keys, keys[::3]):  # every key (the engine's case), then a subset
        noise.squares = SparseSums()
        noise.squares.add(squares_keys, _masses(rng, len(squares_keys)))
        mass_odd, count_odd, mass_sq = noise.aligned(keys)
        odd_of = dict(zip(noise.odd.keys.tolist(), zip(noise.odd.mass.tolist(), noise.odd.count.tolist())))
        sq_of = dict(zip(noise.squares.keys.tolist(), noise.squares.mass.tolist()))
        assert mass_odd.tolist() == [odd_of.get(k, (0.0, 0))[0] for k in keys.tolist()]
        assert count_odd.tolist() == [odd_of.get(k, (0.0, 0))[1] for k in keys.tolist()]
        assert mass_sq.tolist() == [sq_of.get(k, 0.0) for k in keys.tolist()]
    assert subset_positions(keys, keys).tolist() == list(range(len(keys)))
    assert subset_positions(keys, keys[:0]).tolist() == []
    with pytest.raises(ValueError, match="does not"):
        subset_positions(keys[1:], keys[:2])
