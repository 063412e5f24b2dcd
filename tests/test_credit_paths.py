"""The engine's fast paths give exactly what the plain torch operations give (issue 13's speed work).

The brute-force reference tests (test_reference.py, test_engine.py) check whole profiles; these check the pieces
whose fast path and general path differ: numpy's argmax against torch's max in the hooks, the hash-table
reduction against ``torch.unique``, flushes forced by the pending-credit bound, and the flush thread (errors reach
the caller, the thread stops with the run).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_txray
from hf_txray import credit
from hf_txray.accumulators import SparseSums
from hf_txray.topk import top_k_per_row
from test_engine import TEXTS, analyze, assert_same_profile


def lowest_first(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: each row ranked by value (NaN first, as torch ranks it), ties to the lowest index."""
    rows = []
    for row in x.double().tolist():
        rows.append(sorted(range(len(row)), key=lambda j: (0 if row[j] != row[j] else 1, -row[j], j))[:k])
    index = torch.tensor(rows, dtype=torch.int64)
    return x.gather(1, index), index


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("k", [1, 3])
def test_top_k_per_row_ranks_ties_to_the_lowest_index(dtype, k):
    """torch.topk picks among equal values in no stated order (in bf16 ties are common): every path ranks them by
    index, as top-1's argmax does."""
    torch.manual_seed(0)
    x = (torch.randn(64, 37) * 4).round().to(dtype)  # many ties
    x[0, 3] = x[0, 20] = 9.0  # a tie at the top
    x[1, 5] = x[1, 30] = float("nan")  # NaN wins, as in torch
    x[2] = -1.0  # all equal
    x[3] = -0.0
    x[3, 7] = 0.0  # -0.0 and 0.0 are equal
    rows = torch.tensor([0, 1, 2, 2, 63, 10, 3])
    expected = lowest_first(x, k)
    for chosen in (None, rows):
        values, indices = top_k_per_row(x, k, chosen)
        want_values, want_indices = (expected if chosen is None else (expected[0][chosen], expected[1][chosen]))
        assert values.dtype == x.dtype and indices.dtype == torch.int64
        torch.testing.assert_close(values, want_values, rtol=0, atol=0, equal_nan=True)
        assert torch.equal(indices, want_indices)


@pytest.mark.parametrize("k", [1, 2])
def test_mixture_of_experts_ties_go_to_the_lowest_neuron_number(k):
    """A token's units come in router-slot order (the top-weighted expert first): a tie went to that expert's unit,
    not to the lowest neuron number the dense layers and the reference use."""
    from hf_txray.moe import ExpertsLayout, moe_top_k

    layout = ExpertsLayout(num_routed=4, num_shared=1, width=3)
    routed = torch.tensor([[[0.5, 2.0, 0.1], [2.0, 0.2, 0.3]]], dtype=torch.bfloat16)  # slots: expert 3, expert 1
    shared = torch.tensor([[2.0, 0.0, 1.0]], dtype=torch.bfloat16)  # units 12-14
    values, neurons = moe_top_k(layout, routed, torch.tensor([[3, 1]]), shared, k)
    assert neurons.tolist() == [[3, 10][:k]] and values.float().tolist() == [[2.0] * k]  # expert 1 unit 0 is #3


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


def flush_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("hf_txray-flush")]


@pytest.fixture
def flush_thread(monkeypatch):
    """Flushes on the flush thread, as on CUDA."""
    monkeypatch.setattr(credit, "FLUSH_THREAD", ("cpu", "cuda"))


@pytest.mark.parametrize("on_thread", [True, False])
def test_flushes_run_on_the_flush_thread_only_where_asked_and_it_stops(monkeypatch, on_thread):
    import threading

    monkeypatch.setattr(credit, "FLUSH_THREAD", ("cpu", "cuda") if on_thread else ("cuda",))
    monkeypatch.setattr(credit, "FLUSH_CREDITS", 7)
    seen, reduce = set(), credit.reduce_keys
    monkeypatch.setattr(credit, "reduce_keys", lambda *a, **k: (seen.add(threading.current_thread().name),
                                                                 reduce(*a, **k))[1])
    before = len(flush_threads())
    profile = analyze(texts=TEXTS, batch_size=2)
    assert profile.neuron_count.sum() > 0
    assert all(name.startswith("hf_txray-flush") == on_thread for name in seen) and seen
    assert len(flush_threads()) == before


def test_an_error_on_the_flush_thread_reaches_the_caller(monkeypatch, flush_thread):
    def broken(*args, **kwargs):
        raise RuntimeError("reduce failed on the flush thread")

    monkeypatch.setattr(credit, "reduce_keys", broken)
    monkeypatch.setattr(credit, "FLUSH_CREDITS", 7)  # flushes mid-run, on the thread, before the last batch
    with pytest.raises(RuntimeError, match="reduce failed on the flush thread"):
        analyze(texts=TEXTS, batch_size=2)
    assert not flush_threads()  # stopped although the run failed


def test_sums_held_on_the_device_between_flushes_give_the_same_profile(monkeypatch):
    inline = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    monkeypatch.setattr(credit, "DEVICE_SUMS", ("cpu", "cuda"))  # the CUDA path, here on the CPU
    monkeypatch.setattr(credit, "FLUSH_THREAD", ("cpu", "cuda"))
    monkeypatch.setattr(credit, "FLUSH_CREDITS", 7)  # many flushes, each merged into the held sums
    held = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    monkeypatch.setattr(credit, "device_sums_limit", lambda device: 10)  # moved to the host mid-run as they grow
    moved = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    for profile in (held, moved):
        assert_same_profile(profile, inline)
        np.testing.assert_array_equal(profile.neuron_count_odd, inline.neuron_count_odd)
        for ft, table in inline.tables.items():
            other = profile.tables[ft]
            np.testing.assert_array_equal(other.keys(), table.keys())
            np.testing.assert_array_equal(other.count_odd, table.count_odd)
            np.testing.assert_allclose(other.mass_odd, table.mass_odd, rtol=1e-12)
            np.testing.assert_allclose(other.mass_sq, table.mass_sq, rtol=1e-12)
        mine, theirs = profile.position_mass.sums, inline.position_mass.sums
        np.testing.assert_array_equal(mine.keys, theirs.keys)
        np.testing.assert_array_equal(mine.count, theirs.count)
        np.testing.assert_allclose(mine.mass, theirs.mass, rtol=1e-12)
        assert profile.activation_histogram.counts.sum() == inline.activation_histogram.counts.sum()


def test_keyed_sums_sunk_at_every_flush_give_the_profile_of_sums_held_on_the_device(monkeypatch):
    """Without held sums (a device type not in DEVICE_SUMS) every flush goes to the host accumulators; held sums
    reach them once, at the end: the same keys and counts, float sums equal to rounding (the two parities of a key
    are added once instead of at every flush)."""
    monkeypatch.setattr(credit, "FLUSH_CREDITS", 7)
    held = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    monkeypatch.setattr(credit, "DEVICE_SUMS", ())
    sunk = analyze(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    assert_same_profile(held, sunk)
    for ft, table in sunk.tables.items():
        np.testing.assert_array_equal(held.tables[ft].keys(), table.keys())
        np.testing.assert_array_equal(held.tables[ft].count, table.count)
        np.testing.assert_allclose(held.tables[ft].mass, table.mass, rtol=1e-12)


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


def test_stage_packs_a_batch_into_one_buffer_without_changing_a_value():
    from hf_txray.batching import stage

    arrays = {"ids": torch.arange(12).view(3, 4), "example_id": np.array([5, 6, 7], dtype=np.int64),
              "empty": np.zeros(0, dtype=np.int64), "mask": np.array([True, False]), "scores": torch.rand(2, 2)}
    packed = stage(arrays, torch.device("cpu"), packed=True)
    assert set(packed) == set(arrays)
    for name, value in arrays.items():
        want = torch.as_tensor(value)
        assert packed[name].shape == want.shape and packed[name].dtype == want.dtype
        assert torch.equal(packed[name], want)
    # the int64 arrays are views of one buffer: one allocation (pinned on CUDA) and one copy per batch
    bases = {packed[n].untyped_storage().data_ptr() for n in ("ids", "example_id")}
    assert len(bases) == 1


def test_batches_staged_in_one_packed_buffer_give_the_same_profile(monkeypatch):
    """The CUDA staging path (inputs, hooked positions and the credit's position fields in one buffer), forced on
    a CPU: the profile is the per-array path's, bit for bit."""
    import importlib

    from hf_txray.batching import stage

    analyze_module = importlib.import_module("hf_txray.analyze")  # the package's `analyze` is the function

    kwargs = dict(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    separate = analyze(**kwargs)
    calls = []

    def packed(arrays, device):
        calls.append(sorted(arrays))
        return stage(arrays, device, packed=True)

    monkeypatch.setattr(analyze_module, "stage", packed)
    together = analyze(**kwargs)
    assert calls and {"hooked", "input.input_ids", "credit.example_id", "credit.half", "credit.feature:token",
                     "credit.feature:word"} <= set(calls[0])
    assert_same_profile(together, separate)
    np.testing.assert_array_equal(together.neuron_mass, separate.neuron_mass)


def test_threaded_argmax_is_numpy_argmax_and_its_threads_stop(monkeypatch):
    import threading

    from hf_txray import topk

    monkeypatch.setattr(topk, "PARALLEL_ELEMENTS", 0)
    rng = np.random.default_rng(0)
    split = topk.ArgmaxThreads(3)
    for rows, width in ((7, 5), (64, 37), (1000, 3)):
        array = rng.normal(size=(rows, width)).astype(np.float32)
        array[0, :2] = 9.0  # a tie: the first index wins
        array[-1, 1] = np.nan  # NaN wins, as in numpy and torch
        np.testing.assert_array_equal(split(array), array.argmax(axis=1))
    assert any(t.name.startswith("hf_txray-topk") for t in threading.enumerate())
    split.close()
    assert not any(t.name.startswith("hf_txray-topk") for t in threading.enumerate())


def test_top_1_split_over_threads_gives_the_same_profile(monkeypatch):
    import threading

    from hf_txray import topk

    kwargs = dict(texts=TEXTS, batch_size=2, max_examples_per_neuron=2, features=("token", "word"))
    single = analyze(**kwargs)
    monkeypatch.setattr(topk, "PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # read by the recorder: the forward is unchanged
    calls = []
    real = topk.ArgmaxThreads.__call__
    monkeypatch.setattr(topk.ArgmaxThreads, "__call__", lambda self, a, runs=None: calls.append(self.threads) or real(self, a, runs))
    split = analyze(**kwargs)
    assert calls and set(calls) == {3}
    assert_same_profile(split, single)
    np.testing.assert_array_equal(split.neuron_mass, single.neuron_mass)
    assert not any(t.name.startswith("hf_txray-topk") for t in threading.enumerate())  # stopped with the run


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_top_1_over_runs_of_rows_is_torch_max_of_the_chosen_rows(monkeypatch, threads):
    from hf_txray import topk

    monkeypatch.setattr(topk, "PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(topk, "RUN_SKIPPED_ELEMENTS", 0)
    rng = np.random.default_rng(threads)
    x = torch.from_numpy(rng.normal(size=(200, 23)).astype(np.float32))
    x[5, :3] = 4.0  # a tie: the first index wins
    x[7, 2] = float("nan")
    split = topk.ArgmaxThreads(threads)
    patterns = [np.arange(3, 60), np.r_[1:9, 20:21, 30:90, 150:199], np.r_[40:50, 0:5, 5:7, 7:8],
                np.array([5, 5, 6, 7, 7, 199])]  # runs in any order, single rows, repeated rows
    for rows in patterns:
        runs = topk.contiguous_runs(rows, *x.shape)
        assert runs is not None and [r for lo, hi in runs for r in range(lo, hi)] == rows.tolist()
        chosen = torch.from_numpy(rows)
        values, indices = topk.top_k_per_row(x, 1, chosen, split, runs)
        want_values, want_indices = x.max(-1, keepdim=True)
        torch.testing.assert_close(values, want_values[chosen], rtol=0, atol=0, equal_nan=True)
        assert torch.equal(indices, want_indices[chosen])
    split.close()


def test_runs_are_used_only_when_they_skip_enough_rows():
    from hf_txray import topk

    assert topk.contiguous_runs(np.arange(95), 100, 64) is None  # 5 rows skipped: one plain argmax
    assert topk.contiguous_runs(np.arange(95), 100, 1536) == [(0, 95)]  # but 5 wide rows pay for a call
    assert topk.contiguous_runs(np.arange(0, 2000, 2), 2000, 64) is None  # a call per row costs more
    assert topk.contiguous_runs(np.r_[1:40, 51:90], 100, 1536) == [(1, 40), (51, 90)]
    for total, parts in ((10, 3), (7, 7), (1000, 4)):
        runs = [(0, total // 2), (total, total + total - total // 2)]
        groups = topk.split_runs(runs, parts)
        assert len(groups) == parts
        assert [r for g in groups for lo, hi in g for r in range(lo, hi)] == \
            [r for lo, hi in runs for r in range(lo, hi)]
        sizes = [sum(hi - lo for lo, hi in g) for g in groups]
        assert max(sizes) - min(sizes) <= 1


def test_top_1_over_runs_gives_the_same_profile(monkeypatch):
    from hf_txray import topk

    kwargs = dict(texts=TEXTS, batch_size=4, max_examples_per_neuron=2, features=("token", "word"))
    monkeypatch.setattr(topk, "RUN_SKIPPED_ELEMENTS", float("inf"))  # never
    every_row = analyze(**kwargs)
    monkeypatch.setattr(topk, "RUN_SKIPPED_ELEMENTS", 0)  # always, however short the runs
    calls = []
    real = topk.argmax_runs
    monkeypatch.setattr(topk, "argmax_runs", lambda a, runs: calls.append(len(runs)) or real(a, runs))
    runs = analyze(**kwargs)
    assert calls and max(calls) > 1  # several runs per batch were reduced apart
    assert_same_profile(runs, every_row)
    np.testing.assert_array_equal(runs.neuron_mass, every_row.neuron_mass)


def test_the_runs_of_the_hooked_positions_follow_every_change_of_them():
    from hf_txray import topk
    from hf_txray.sites import WinnerRecorder

    recorder = WinnerRecorder([], top_k=1)
    flat = torch.randn(400, 64)
    recorder.positions = torch.arange(10, 200)
    assert recorder._runs_of(recorder.positions, flat) == [(10, 200)]
    assert recorder._runs_of(recorder.positions, flat) == [(10, 200)]  # the next layer of the same pass
    recorder.positions = torch.arange(50, 100)  # a new tensor
    assert recorder._runs_of(recorder.positions, flat) == [(50, 100)]
    recorder.positions[:] = torch.arange(300, 350)  # changed in place, then the next forward pass
    recorder.reset()
    assert recorder._runs_of(recorder.positions, flat) == [(300, 350)]
    recorder.positions.numpy()[:] = np.arange(0, 50)  # changed through a numpy view: the version stays the same
    recorder.reset()
    assert recorder._runs_of(recorder.positions, flat) == [(0, 50)]
    assert recorder._runs_of(recorder.positions, torch.randn(2000, 64)) == topk.contiguous_runs(
        np.arange(0, 50), 2000, 64)  # other activations' rows


def test_a_float64_winner_is_credited_with_its_own_value():
    """Winners were widened through float32 on their way to the float64 masses: a float64 model's masses were its
    activations rounded to float32 (4.8e-8 relative off a tiny Llama in float64), and a positive winner below
    float32's range was rounded to 0 and left uncredited."""
    values = torch.tensor([[1.0 + 2.0 ** -40], [1e-50], [-1e-50]], dtype=torch.float64)
    got = credit.reduce_winners([values], [torch.zeros(3, 1, dtype=torch.int64)], 4, {}, torch.device("cpu"))
    assert got.mass.dtype == torch.float64 and got.mass.view(-1).tolist() == values.view(-1).tolist()
    assert got.rows.view(-1).tolist() == [0, 0, 4] and int(got.num_uncredited) == 1


def test_a_float64_model_s_masses_are_its_activations_summed_in_float64():
    """End to end, against plain forward pre-hooks on the down projections, each text run alone."""
    from models import tiny

    model, tokenizer = tiny("llama")
    model = model.double()
    mass = np.zeros((2, model.config.intermediate_size))
    kept = {}
    handles = [layer.mlp.down_proj.register_forward_pre_hook(lambda m, a, i=i: kept.__setitem__(i, a[0][0]))
               for i, layer in enumerate(model.layers)]
    with torch.no_grad():
        for text in TEXTS:
            model(torch.tensor([tokenizer(text)["input_ids"]]))
            for layer, acts in kept.items():
                for row in acts[1:]:  # skip_first_positions="auto": 1 for a decoder
                    best = int(row.argmax())
                    mass[layer, best] += float(row[best]) if row[best] > 0 else 0.0
    for handle in handles:
        handle.remove()
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), batch_size=1,
                               pad_to_multiple_of=1, show_progress=False)
    np.testing.assert_allclose(profile.neuron_mass, mass, rtol=1e-13)


def test_grids_wider_than_the_keys_hold_are_refused_before_any_work(monkeypatch):
    """Keys are ``row << 33 | feature id * 2 + half``, and a position without a feature value gets ``NO_VALUE``: at
    2**29 rows the uncredited row's no-value key was 0, the key of row 0, feature 0 (a credit added to neuron 0
    silently), and from 2**30 rows the keys overflowed int64. No model has that many rows: refused, not handled."""
    no_value_at = lambda rows: int((torch.tensor([rows]) << (credit.FEATURE_BITS + 1)) + credit.NO_VALUE)  # noqa: E731
    assert no_value_at(credit.MAX_ROWS - 1) < 0  # the largest grid accepted: its uncredited row's key stays out
    assert no_value_at(credit.MAX_ROWS) == 0  # one more row: row 0, feature 0
    with pytest.raises(hf_txray.ConfigurationError, match="neuron rows"):
        credit.check_grid(1 << 10, 1 << 19)
    with pytest.raises(hf_txray.ConfigurationError, match="neuron rows"):  # before its (rows,) arrays are allocated
        credit.ProfileBuilder(1 << 10, 1 << 19, {}, 0)
    monkeypatch.setattr(credit, "MAX_ROWS", 64)  # the tiny BERT's 2 x 48 rows: refused before the forward
    monkeypatch.setattr(credit, "reduce_winners", None)
    with pytest.raises(hf_txray.ConfigurationError, match="2 layers x 48 neurons = 96 neuron rows"):
        analyze()


def test_a_bfloat16_model_s_masses_are_its_activations_summed_in_float64():
    """In bfloat16 a sum of 1000 ones stops at 256: a neuron credited hundreds of times must have its bfloat16
    activations summed in float64 (measured: 600 credits of one (neuron, token) summed to 7.59 in float64, 4.0 in
    bfloat16)."""
    from models import tiny

    model, tokenizer = tiny("llama")
    model = model.to(torch.bfloat16)
    texts = TEXTS[:4] * 100
    mass, count = np.zeros((2, model.config.intermediate_size)), np.zeros((2, model.config.intermediate_size), int)
    kept = {}
    handles = [layer.mlp.down_proj.register_forward_pre_hook(lambda m, a, i=i: kept.__setitem__(i, a[0][0]))
               for i, layer in enumerate(model.layers)]
    with torch.no_grad():
        for text in TEXTS[:4]:
            model(torch.tensor([tokenizer(text)["input_ids"]]))
            for layer, acts in kept.items():
                for row in acts[1:].double():  # skip_first_positions="auto": 1 for a decoder
                    best = int(row.argmax())
                    if row[best] > 0:
                        mass[layer, best] += 100 * float(row[best])  # exact: 100 x a bfloat16 value in float64
                        count[layer, best] += 100
    for handle in handles:
        handle.remove()
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), batch_size=8,
                               pad_to_multiple_of=0, show_progress=False)
    assert count.max() > 300
    np.testing.assert_array_equal(profile.neuron_count, count)
    np.testing.assert_allclose(profile.neuron_mass, mass, rtol=1e-12)
