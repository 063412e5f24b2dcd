"""The engine's fast paths give exactly what the plain torch operations give (issue 13's speed work).

The brute-force reference tests (test_reference.py, test_engine.py) check whole profiles; these check the pieces
whose fast path and general path differ: numpy's argmax against torch's max in the hooks, the hash-table
reduction against ``torch.unique``, and flushes forced by the pending-credit bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_txray import credit
from hf_txray.accumulators import SparseSums
from hf_txray.topk import top_k_per_row
from test_engine import TEXTS, analyze, assert_same_profile


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("k", [1, 3])
def test_top_k_per_row_is_torch_max_and_topk(dtype, k):
    torch.manual_seed(0)
    x = torch.randn(64, 37).to(dtype)
    x[0, 3] = x[0, 20] = 9.0  # a tie: the first index wins
    x[1, 5] = x[1, 30] = float("nan")  # NaN wins, as in torch
    x[2] = -1.0  # all equal
    rows = torch.tensor([0, 1, 2, 2, 63, 10])
    expected = x.max(-1, keepdim=True) if k == 1 else x.topk(k, -1)
    for chosen in (None, rows):
        values, indices = top_k_per_row(x, k, chosen)
        want_values, want_indices = (expected if chosen is None else (expected[0][chosen], expected[1][chosen]))
        assert values.dtype == x.dtype and indices.dtype == torch.int64
        torch.testing.assert_close(values, want_values, rtol=0, atol=0, equal_nan=True)
        assert torch.equal(indices, want_indices)


def test_hash_and_sort_reductions_agree():
    rng = np.random.default_rng(0)
    keys = torch.from_numpy(rng.integers(-5, 2000, 20_000) * 7919)
    columns = [torch.from_numpy(rng.random(20_000)), torch.from_numpy(rng.normal(size=20_000))]
    hashed = credit.reduce_keys(keys, columns, method="hash")
    ordered = credit.reduce_keys(keys, columns, method="sort")
    unique, counts = np.unique(keys.numpy(), return_counts=True)
    for got in (hashed, ordered):
        np.testing.assert_array_equal(got[0].numpy(), unique)
        np.testing.assert_array_equal(got[2].numpy(), counts)
    for a, b in zip(hashed[1], ordered[1]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # both sum in entry order: bit-identical
    np.testing.assert_allclose(hashed[1][0].sum(), columns[0].sum(), rtol=1e-12)


def test_flushes_forced_by_pending_credits_do_not_change_the_result(monkeypatch):
    once = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    monkeypatch.setattr(credit, "FLUSH_CREDITS", 7)  # a flush after every batch, mid-way through the candidates
    every_batch = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    assert_same_profile(every_batch, once)


def test_dense_and_keyed_histograms_agree(monkeypatch):
    dense = analyze(texts=TEXTS, batch_size=2)
    monkeypatch.setattr(credit, "DENSE_HISTOGRAM_LIMIT", 0)  # the keyed path of very wide models
    keyed = analyze(texts=TEXTS, batch_size=2)
    rows, bins, counts = dense.activation_histogram.rows, dense.activation_histogram.bins, dense.activation_histogram.counts
    assert counts.sum() == dense.neuron_count.sum() > 0  # every credit is in one bin
    np.testing.assert_array_equal(rows, keyed.activation_histogram.rows)
    np.testing.assert_array_equal(bins, keyed.activation_histogram.bins)
    np.testing.assert_array_equal(counts, keyed.activation_histogram.counts)


def test_keyed_sums_moved_to_the_host_at_every_reduction_do_not_change_the_result(monkeypatch):
    """The reduced keyed sums wait on the device (DeviceSums) until the end; moving them to the host after every
    reduction (DEVICE_KEYS = 0), as a very wide model does, gives the same profile."""
    kept = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    monkeypatch.setattr(credit, "FLUSH_CREDITS", 7)
    monkeypatch.setattr(credit, "DEVICE_KEYS", 0)
    moved = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    assert_same_profile(moved, kept)


def test_device_sums_fold_chunks_in_order_on_the_cpu_and_with_the_sort_path():
    """`merge_keyed` on a CPU sums each key's chunks in order (bit-identical to folding them into the host
    accumulators one by one); the stable-sort path other devices take gives the same keys, counts and sums."""
    rng = np.random.default_rng(1)
    chunks = []
    for _ in range(5):
        keys = np.unique(rng.integers(0, 3_000, rng.integers(1, 2_000)))
        chunks.append((torch.from_numpy(keys), [torch.from_numpy(rng.random(len(keys))) for _ in range(2)],
                       torch.from_numpy(rng.integers(1, 9, len(keys)))))
    sums = credit.DeviceSums()
    for chunk in chunks:
        sums.add(chunk)
    keys, columns, counts = sums.fold()
    state = SparseSums()
    for k, cols, n in chunks:
        state.add(k.numpy(), cols[0].numpy(), n.numpy())
        state.compact()
    np.testing.assert_array_equal(keys.numpy(), state.keys)
    np.testing.assert_array_equal(counts.numpy(), state.count)
    np.testing.assert_array_equal(columns[0].numpy(), state.mass)  # bit-identical
    sorted_keys, sorted_columns, sorted_counts = credit.merge_keyed(chunks, method="sort")
    np.testing.assert_array_equal(sorted_keys.numpy(), state.keys)
    np.testing.assert_array_equal(sorted_counts.numpy(), state.count)
    for got, want in zip(sorted_columns, columns):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    assert sums.size == len(keys) and len(sums.parts) == 1
