"""The max-1 (top-k) credit rule: from recorded winners of one batch to accumulator updates.

For every creditable position and every hooked layer, the winning neuron(s) are credited with their activation.
Only positive winners are credited: mass is a sum of activations, and a preference distribution needs non-negative
mass. With GELU/SiLU MLPs the winner is positive at virtually every position; positions whose best activation
is <= 0 are counted in ``num_uncredited`` (per layer and position) and credit nobody.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .accumulators import (FEATURE_BITS, HISTOGRAM, Accumulator, ActivationHistogram, NoiseSums, PositionMass,
                           SparseSums, StateDict, TopExamples, array_to_strings, histogram_edges, reduce_in_order,
                           split_keys, strings_to_array, sub_state)
from .batching import PositionBatch, to_device
from .errors import ConfigurationError, ModelError
from .features import Vocabulary
from .feature_table import FeatureTable
from .profile import (EXAMPLE_COLUMNS, SPLIT_BY_ID, SPLIT_BY_TEXT, HistogramTable, Profile, ProfileMeta,
                      empty_examples)
from .tables import grapheme_cut

CONTEXT_CHARS = 60

@dataclass
class BatchCredit:
    """One batch's winners under the credit rule, on the device where they were recorded.

    ``rows`` and ``mass`` have shape ``(layers, positions, top_k)``. ``rows`` is ``layer_position * num_neurons +
    neuron`` for a credited winner and ``num_rows`` (one past the last neuron row) for a winner that is not
    credited (activation <= 0): the tensors keep their dense shape, so no boolean selection (a host
    synchronisation on an accelerator, a copy on a CPU) is needed, and the statistics drop that extra row when they
    reach the host. ``mass`` is the winner's activation as float64. Position metadata (``example_id``,
    ``token_index``..., shape ``(positions,)``) broadcasts over layers and winners.
    """

    rows: torch.Tensor
    mass: torch.Tensor
    num_uncredited: torch.Tensor  # scalar: (position, layer) pairs whose best activation is <= 0
    positions: dict[str, torch.Tensor]
    # (layers,): positions whose best activation is NaN or +inf (a NaN or +inf anywhere in a row wins its top-k)
    num_nonfinite: torch.Tensor


def reduce_winners(values: Sequence[torch.Tensor], indices: Sequence[torch.Tensor], num_neurons: int,
                   positions: dict[str, torch.Tensor], device: torch.device) -> BatchCredit:
    """Apply the credit rule to one batch's recorded winners, with torch on `device` (no host synchronisation).

    Args:
        values, indices: per layer, ``(positions, top_k)`` winners from :class:`~hf_txray.sites.WinnerRecorder`,
            values in descending order.
        num_neurons (`int`): neurons per layer (rows of layer ``l`` start at ``l * num_neurons``).
        positions (`dict[str, torch.Tensor]`): per-position metadata already on `device`.
    """
    # Straight to float64: every activation dtype widens to it exactly (a float32 step rounded a float64 model's
    # activations, masses 4.8e-8 off, and credited none below float32's range)
    vals = torch.stack([v.to(device, torch.float64) for v in values])  # (L, P, k)
    idx = torch.stack([i.to(device) for i in indices]).long()
    best = vals[..., 0] if vals.shape[2] == 1 else vals.amax(dim=2)
    offset = (torch.arange(vals.shape[0], device=device, dtype=torch.long) * num_neurons).view(-1, 1, 1)
    rows = torch.where(vals > 0, idx + offset, vals.shape[0] * num_neurons)
    # NaN or +inf winners, checked at the flush (no host synchronisation here); a -inf winner (a row all -inf) is
    # <= 0 and only uncredited
    nonfinite = (best.isnan() | (best == float("inf"))).sum(dim=1)
    return BatchCredit(rows, vals, (best <= 0).sum(), positions, nonfinite)


def reduce_keys(keys: torch.Tensor, columns: Sequence[torch.Tensor], method: str = "auto"
                ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Sorted unique `keys` with the per-key sums of each float64 column and the number of entries per key.

    Args:
        keys (`torch.Tensor`): int64, ``(n,)``.
        columns (`Sequence[torch.Tensor]`): float64, ``(n,)`` each, on the keys' device.
        method (`str`, *optional*, defaults to `"auto"`): ``"hash"`` groups the keys with a hash table
            (``pandas.factorize``: O(n), about twice as fast as sorting every entry on a CPU) and sorts only the
            distinct keys; ``"sort"`` uses ``torch.unique`` on the keys' device. ``"auto"``: hash on a CPU, sort
            elsewhere. Both sum each key's entries in entry order.
    """
    if method == "hash" or (method == "auto" and keys.device.type == "cpu"):
        keys, columns = keys.cpu(), [c.cpu() for c in columns]
        codes, unique = pd.factorize(keys.numpy(), sort=False)
        order = np.argsort(unique)
        n = len(unique)
        sums = [torch.from_numpy(np.bincount(codes, weights=c.numpy(), minlength=n)[order]) for c in columns]
        return torch.from_numpy(unique[order]), sums, torch.from_numpy(np.bincount(codes, minlength=n)[order])
    unique, inverse = torch.unique(keys, return_inverse=True)
    sums = [torch.zeros(len(unique), dtype=c.dtype, device=c.device).index_add_(0, inverse, c) for c in columns]
    return unique, sums, torch.bincount(inverse, minlength=len(unique))


def reduce_stream(parts: Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]]) -> tuple[
        torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """One keyed stream's queued batches (``(keys, columns)`` each) reduced by :func:`reduce_keys` on their device."""
    columns = [torch.cat([c[i] for _, c in parts]) for i in range(len(parts[0][1]))]
    return reduce_keys(torch.cat([k for k, _ in parts]), columns)


POSITION_FIELDS = ("example_id", "token_index", "char_start", "char_end")
HALF = "half"  # the position arrays' split half of each position's text (PositionBatch.half), beside POSITION_FIELDS


def admitted_candidates(rows: torch.Tensor, mass: torch.Tensor, positions: dict[str, torch.Tensor],
                        threshold: torch.Tensor) -> dict[str, torch.Tensor]:
    """One batch's top-example candidates, on its device: the credits at or above their row's admission
    `threshold` (the row's current capacity-th best; once the lists fill up, a tiny share of the batch, so the
    candidates stay few and need no sorting here), with their row, activation and position fields.

    Args:
        rows, mass (`torch.Tensor`): ``(layers, positions, top_k)`` as in :class:`BatchCredit`.
        positions (`dict[str, torch.Tensor]`): the :data:`POSITION_FIELDS`, ``(positions,)`` each.
        threshold (`torch.Tensor`): float64 ``(num_rows + 1,)``.
    """
    admitted = (mass >= threshold[rows]).view(-1).nonzero().squeeze(1)
    where = torch.div(admitted, rows.shape[2], rounding_mode="floor") % rows.shape[1]
    cand = {"row": rows.view(-1)[admitted], "activation": mass.view(-1)[admitted]}
    cand.update({name: positions[name][where] for name in POSITION_FIELDS})
    return cand


def best_per_row(rows: torch.Tensor, activation: torch.Tensor, example_id: torch.Tensor, token_index: torch.Tensor,
                 capacity: int) -> torch.Tensor:
    """Indices of the `capacity` best entries of every row, in :class:`TopExamples` order (activation descending,
    example id, token index ascending), computed with stable sorts on the tensors' device."""
    order = torch.argsort(token_index, stable=True)
    for key in (example_id, -activation, rows):
        order = order[torch.argsort(key[order], stable=True)]
    sorted_rows = rows[order]
    n = len(order)
    first = torch.ones(n, dtype=torch.bool, device=rows.device)
    first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    arange = torch.arange(n, device=rows.device)
    starts = torch.cummax(torch.where(first, arange, torch.zeros_like(arange)), dim=0).values
    return order[(arange - starts) < capacity]


Keyed = tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]  # sorted unique int64 keys, float64 sums, int64 counts


def merge_keyed(parts: Sequence[Keyed], method: str = "auto") -> Keyed:
    """Reduced chunks of one keyed stream (each sorted unique keys, float64 column sums, int64 counts) as one, on
    their device.

    Args:
        parts (`list[Keyed]`): the chunks, in the order they were reduced.
        method (`str`, *optional*, defaults to `"auto"`): ``"merge"`` adds each key's chunks in order with numpy
            (:func:`~hf_txray.accumulators.reduce_in_order`: bit-identical to folding them into the host
            accumulators one by one); ``"sort"``: a stable ``torch.sort`` and ``index_add_`` on the chunks'
            device (float order: the device's). ``"auto"``: merge on a CPU, sort elsewhere.
    """
    if len(parts) == 1:
        return parts[0]
    if method == "merge" or (method == "auto" and parts[0][0].device.type == "cpu"):
        keys, columns, counts = reduce_in_order([(k.numpy(), [c.numpy() for c in cols], n.numpy())
                                                 for k, cols, n in parts])
        return torch.from_numpy(keys), [torch.from_numpy(c) for c in columns], torch.from_numpy(counts)
    keys, order = torch.sort(torch.cat([k for k, _, _ in parts]), stable=True)
    unique, inverse = torch.unique_consecutive(keys, return_inverse=True)
    columns = [torch.zeros(len(unique), dtype=torch.float64, device=keys.device)
               .index_add_(0, inverse, torch.cat([cols[i] for _, cols, _ in parts])[order])
               for i in range(len(parts[0][1]))]
    counts = torch.zeros(len(unique), dtype=torch.long, device=keys.device).index_add_(
        0, inverse, torch.cat([n for _, _, n in parts])[order])
    return unique, columns, counts


class DeviceSums:
    """One keyed stream's sums between two moves to the host, on the device: the reduced chunk of every flush is
    queued and folded into one sorted state (:func:`merge_keyed`) once the queue outgrows it, so folding costs
    amortised O(log) per key and the host receives one compact chunk per move instead of one per flush."""

    def __init__(self) -> None:
        self.parts: list[Keyed] = []  # parts[0] is the folded state once there is one
        self.folded = 0  # keys in parts[0] when it is the folded state, else 0
        self.size = 0  # keys held in all parts

    def add(self, chunk: Keyed) -> None:
        self.parts.append(chunk)
        self.size += len(chunk[0])
        if self.size - self.folded > max(self.folded, 1 << 16):
            self.fold()

    def fold(self) -> Keyed | None:
        """Fold every part into one; returns it (None when empty)."""
        if not self.parts:
            return None
        self.parts = [merge_keyed(self.parts)]
        self.folded = self.size = len(self.parts[0][0])
        return self.parts[0]


def merge_parity(keys: np.ndarray, columns: Sequence[np.ndarray], counts: np.ndarray
                 ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Sorted unique keys whose lowest bit is the example id's parity -> the sums over both parities per key
    ``keys >> 1`` (still sorted)."""
    base = keys >> 1
    if len(base) == 0:
        return base, list(columns), counts
    first = np.empty(len(base), dtype=bool)
    first[0] = True
    np.not_equal(base[1:], base[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    # A base key holds its even entry, then possibly its odd one: add each odd entry to the even one before it
    # (a + b, as a sum over the pair in order; half the time of reduceat over 10M keys).
    seconds = np.flatnonzero(~first)
    slots = seconds - np.arange(1, len(seconds) + 1)  # the pair's index among the base keys
    if np.any(slots[1:] == slots[:-1]):  # three entries or more for one base: keys that were not unique
        return base[starts], [np.add.reduceat(c, starts) for c in columns], np.add.reduceat(counts, starts)

    def pairs(values: np.ndarray) -> np.ndarray:
        out = values[starts]
        out[slots] += values[seconds]
        return out

    return base[starts], [pairs(c) for c in columns], pairs(counts)


@dataclass
class _Pending:
    """What the device holds between two flushes: the uncredited count, the keyed sums per stream (int64 keys,
    float64 columns, per batch), the feature ids of the corpus counts, the dense histogram's cells and each
    batch's credits (for the top-example candidates)."""

    uncredited: torch.Tensor
    nonfinite: torch.Tensor  # (layers,) positions whose winner was NaN or +inf
    streams: dict[str, list[tuple[torch.Tensor, list[torch.Tensor]]]]
    fids: dict[str, list[np.ndarray]]
    histogram: list[torch.Tensor] = field(default_factory=list)  # per batch, the (row, bin) cell of every credit
    credits: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = field(default_factory=list)


CANDIDATE_LIMIT = 1 << 16  # pending top-example candidates that trigger a merge into the host lists
# Credits (layers x positions x top_k) pending on the device before a move to the host: bounds the memory of the
# pending keyed sums (about 60 bytes per credit and feature type), whatever the batch size and the corpus. On a CPU
# a flush's temporaries stay in the retained heap (hf_txray.allocator) after it: 2**17 rather than 2**19 cut the
# peak RSS growth from 1x to 10x the corpus on MiniLM from 20.9% to 11.7% (medians of 3 rounds), at the same CPU
# time (README, "Memory").
FLUSH_CREDITS = 1 << 17
# On CUDA a flush costs a synchronisation and a host merge whatever its size, and device memory is larger: flush
# less often (about 400 MB of pending state at most).
FLUSH_CREDITS_CUDA = 1 << 22
# Device types whose keyed sums stay on the device between flushes (merged there, moved to the host once at the
# end): on an accelerator the host merges would otherwise be the run's bottleneck. On a CPU too: the sums then
# reach the host accumulators once instead of at every flush, and the folds (:class:`DeviceSums`) cost fewer
# passes than the host merges.
DEVICE_SUMS = ("cpu", "cuda")
# Device types whose flushes run on the builder's flush thread, overlapping the next batches' kernels. On a CPU the
# forward already uses every core and the thread's own malloc arena would hold the flush's temporaries beside the
# main heap (about 100 MB more peak RSS on MiniLM), so flushes run inline there.
FLUSH_THREAD = ("cuda",)
# Unique keys held on the device before they move to the host: an eighth of the device's free memory at the start,
# at about 128 bytes per key while a flush is merged (key, two float64 sums, count, and the merge's temporaries);
# this number where the free memory cannot be read. A move to the host costs a host merge, so hold as many as fit.
DEVICE_SUMS_LIMIT = 1 << 24
CPU_SUMS_LIMIT = 1 << 21  # on a CPU, where the held sums share host memory with everything else (about 64 MB)


def device_sums_limit(device: torch.device) -> int:
    """Unique keys the builder may hold on `device` (see :data:`DEVICE_SUMS_LIMIT`)."""
    if device.type != "cuda":
        return min(DEVICE_SUMS_LIMIT, CPU_SUMS_LIMIT)
    try:
        free, _ = torch.cuda.mem_get_info(device)
    except RuntimeError:
        return DEVICE_SUMS_LIMIT
    return int(min(max(free // 8 // 128, 1 << 20), 1 << 28))
# Keyed sums carry the example id's parity in their lowest bit (the split halves of the noise statistics); a
# position without a value for a feature type gets a key below zero, which the host drops.
DENSE_HISTOGRAM_LIMIT = 1 << 23  # (row, bin) cells counted densely on the device (64 MB of int64 at most)
NO_VALUE = -(1 << 62)  # below every real key while neuron rows stay under 2**29
# Neuron rows (layers x neurons) the keys hold: row ``num_rows`` (the uncredited winners) shifted by 33 bits plus
# NO_VALUE must stay below zero, and every real key below 2**63.
MAX_ROWS = 1 << (62 - FEATURE_BITS - 1)


def check_grid(num_layers: int, num_neurons: int) -> None:
    """Refuse a grid of more neuron rows (``num_layers * num_neurons``) than the credit's int64 keys hold.

    At :data:`MAX_ROWS` rows and above, a position without a value of a feature type got the key of row 0, feature
    0 (``(2**29 << 33) + NO_VALUE == 0``), and from ``2**30`` rows the keys overflowed int64: credits added to
    other neurons' sums, silently. No model reaches it (the widest mixture of experts profiled whole has about 5e7
    rows), so it is refused before any work rather than handled.

    Raises:
        ConfigurationError: ``num_layers * num_neurons >= MAX_ROWS``.
    """
    num_rows = num_layers * num_neurons
    if num_rows >= MAX_ROWS:
        raise ConfigurationError(
            f"{num_layers:,} layers x {num_neurons:,} neurons = {num_rows:,} neuron rows, more than the "
            f"{MAX_ROWS - 1:,} the credit's (neuron, feature) keys can hold: profile fewer layers (layers=...) "
            "in separate runs and merge their profiles.")


class ProfileBuilder:
    """Accumulates credited winners batch by batch; :meth:`to_profile` turns the state into a :class:`Profile`.

    The per-batch work (credit rule, (neuron, feature) keys, top-example candidates above each neuron's current
    admission threshold) runs with torch on `device`, on dense ``(layers, positions, top_k)`` tensors; every
    `flush_every` batches, or sooner when :data:`FLUSH_CREDITS` credits are pending, the keys are reduced to
    unique keys with their sums on the device, on a flush thread of the builder, while the main thread goes on
    with the next batches (no per-batch synchronisation with the device). The reduced sums are folded into
    per-stream :class:`DeviceSums` on the device (devices in :data:`DEVICE_SUMS`) and move to the host
    accumulators at :meth:`flush` (checkpoints, the end of the run) or when too many keys are held; only the
    top-example candidates and the corpus counts go to the host at every flush. Neuron totals are read off the
    (neuron, position) sums when they reach the host.

    Args:
        num_layers (`int`), num_neurons (`int`): the hooked grid.
        vocabs (`dict[str, Vocabulary]`): one vocabulary per feature type, shared with the batch builder.
        capacity (`int`): top examples kept per neuron.
        device (`torch.device`, *optional*, defaults to CPU): where the per-batch reductions run.
        flush_every (`int`, *optional*, defaults to 32): most batches between two moves to the host.
        layer_names (`list[str]`, *optional*): the hooked modules, by layer position, as errors name them.

    Raises:
        ConfigurationError: the grid has :data:`MAX_ROWS` neuron rows or more (:func:`check_grid`).
        ModelError: at a flush, when some position's winning activation was NaN or infinite.
    """

    def __init__(self, num_layers: int, num_neurons: int, vocabs: dict[str, Vocabulary], capacity: int,
                 device: torch.device | str | None = None, flush_every: int = 32,
                 layer_names: Sequence[str] | None = None):
        check_grid(num_layers, num_neurons)
        self.num_layers, self.num_neurons = num_layers, num_neurons
        # how errors name each hooked layer (its module), by layer position
        self.layer_names = list(layer_names) if layer_names else [f"layer position {i}" for i in range(num_layers)]
        self.num_rows = num_layers * num_neurons
        self.vocabs = vocabs
        self.sums = {ft: SparseSums() for ft in vocabs}
        self.corpus_counts = {ft: np.zeros(0, dtype=np.int64) for ft in vocabs}
        self.neuron_mass = np.zeros(self.num_rows, dtype=np.float64)
        self.neuron_count = np.zeros(self.num_rows, dtype=np.int64)
        self.examples = TopExamples(self.num_rows, capacity)
        self.histogram = ActivationHistogram(histogram_edges(**HISTOGRAM))  # credited activations per neuron
        self.num_examples = self.num_positions = self.num_uncredited = self.num_truncated = self.num_empty = 0
        self.num_example_ids = 0  # ids of the texts counted lie below it (saved with the other num_* counters)
        self.num_windowed = self.num_real_tokens = self.num_padded_tokens = 0
        # per feature type, the texts with a position that carries a value of it (the per-neuron test's cap)
        self.feature_texts = {ft: 0 for ft in vocabs}
        # False after resuming a state saved before these counts existed: the texts read before it are not in them,
        # so the profile records none (unknown; the test falls back to all texts, as for a merge with an old part)
        self.feature_texts_known = True
        self.noise = _NoiseState(vocabs, self.num_rows)
        # how the noise statistics split texts into halves: by content (copies of a text in one half); by example
        # id parity only when resuming a state saved before (its texts so far were split that way)
        self.split_halves = SPLIT_BY_TEXT
        device = torch.device(device or "cpu")
        # float64 sums need a device that has float64 (not MPS): elsewhere reduce on the CPU.
        self.device = device if device.type in ("cpu", "cuda") else torch.device("cpu")
        self.flush_every = flush_every
        self.flush_credits = FLUSH_CREDITS_CUDA if self.device.type == "cuda" else FLUSH_CREDITS
        self._flusher: ThreadPoolExecutor | None = None
        # stream name -> its sorted unique keys, per-key column sums and entry counts, held on the device
        self._device_sums: dict[str, DeviceSums] = {}
        self.keep_sums_on_device = self.device.type in DEVICE_SUMS
        self.device_sums_limit = device_sums_limit(self.device)
        self._in_flight: Future | None = None
        self._edges = torch.as_tensor(self.histogram.edges, dtype=torch.float64, device=self.device)
        # A credit below a neuron's current capacity-th best example can never enter its top list; the extra last
        # row (uncredited winners) admits nothing.
        self._threshold = torch.full((self.num_rows + 1,), -np.inf, dtype=torch.float64, device=self.device)
        self._threshold[-1] = np.inf
        # The activation histograms as dense counts per (row, bin) on the device when they are small (MiniLM: 9216
        # rows x 58 bins): one bincount per flush instead of a keyed sum; a keyed stream for very wide models.
        self._dense_histogram = (self.num_rows + 1) * self.histogram.num_bins <= DENSE_HISTOGRAM_LIMIT
        self._reset_device_state()

    def _reset_device_state(self) -> None:
        self._pending = _Pending(torch.zeros((), dtype=torch.long, device=self.device),
                                 torch.zeros(self.num_layers, dtype=torch.long, device=self.device), {},
                                 {ft: [] for ft in self.vocabs})
        self._pending_batches = self._pending_credits = 0

    def position_arrays(self, batch: PositionBatch) -> dict[str, np.ndarray]:
        """The batch's per-position arrays the credit reads on the device: :data:`POSITION_FIELDS`, the split half
        (:data:`HALF`) and each feature type's ids (under ``feature:<name>``, so that a user feature named like a
        position field, ``example_id`` or ``half``, cannot take its place), ``(positions,)`` int64 each."""
        arrays = {**{name: getattr(batch, name) for name in POSITION_FIELDS},
                  **{f"feature:{ft}": ids for ft, ids in batch.feature_ids.items()}}
        if self.split_halves == SPLIT_BY_TEXT:
            if batch.half is None and batch.num_positions:
                raise ValueError("A batch without its texts' split halves (PositionBatch.half) reached a builder that "
                                 "splits by text: encode it with batching.BatchEncoder.")
            arrays[HALF] = batch.half
        return arrays

    def add(self, values: Sequence[torch.Tensor], indices: Sequence[torch.Tensor], batch: PositionBatch,
            num_examples: int | None = None, positions: dict[str, torch.Tensor] | None = None) -> None:
        """Credit one batch. `values`/`indices` are per layer, shape ``(positions, top_k)``; `positions`: the
        batch's :meth:`position_arrays` already on the builder's device (moved here when omitted)."""
        self.num_examples += batch.num_examples if num_examples is None else num_examples
        self.num_example_ids = max(self.num_example_ids, batch.example_id_end)
        self.num_truncated += batch.num_truncated
        self.num_empty += batch.num_empty
        self.num_windowed += batch.num_windowed
        self.num_real_tokens += batch.num_real_tokens
        self.num_padded_tokens += batch.num_padded_tokens
        if batch.num_examples and batch.num_feature_texts.keys() != self.feature_texts.keys():
            # texts counted without their feature counts would leave a cap below the texts that carry a value
            raise ValueError(f"A batch counts {batch.num_examples} texts but the texts carrying feature types "
                             f"{sorted(batch.num_feature_texts)}, not {sorted(self.feature_texts)}: encode it with "
                             "this builder's feature types (batching.count_texts).")
        for ft, n in batch.num_feature_texts.items():
            self.feature_texts[ft] += n
        for ft, fid in batch.feature_ids.items():
            self._pending.fids[ft].append(fid)
        if batch.num_positions == 0:
            return
        self.num_positions += batch.num_positions
        if positions is None:
            positions = {name: to_device(a, self.device) for name, a in self.position_arrays(batch).items()}
        credit = reduce_winners(values, indices, self.num_neurons, positions, self.device)
        self.accumulate(credit)
        self._pending_batches += 1
        self._pending_credits += credit.rows.numel()
        if self._pending_batches >= self.flush_every or self._pending_credits >= self.flush_credits:
            self._hand_off()

    def accumulate(self, credit: BatchCredit) -> None:
        """Fold one batch's credits into the device-side state (keyed sums, histogram, top-example candidates).
        Nothing here waits for the device: the candidates are selected when the batch is flushed."""
        rows, mass, positions = credit.rows, credit.mass, credit.positions
        pending = self._pending
        pending.uncredited += credit.num_uncredited
        pending.nonfinite += credit.num_nonfinite
        # the split halves of the noise statistics, in the keys' lowest bit: the text's (copies share it), or, resumed
        # from a state saved before that, the example id's parity
        odd = positions[HALF] if self.split_halves == SPLIT_BY_TEXT else positions["example_id"] % 2
        squares = mass * mass
        for ft in self.vocabs:
            fid = positions[f"feature:{ft}"]
            self.push(f"feature:{ft}", rows, torch.where(fid >= 0, fid * 2 + odd, NO_VALUE), [mass, squares])
        self.push("positions", rows, positions["token_index"] * 2 + odd, [mass])
        # The neuron pages' activation histograms: bucketize(right=True) bins as np.searchsorted(side="right").
        bins = torch.bucketize(mass, self._edges, right=True)
        if self._dense_histogram:
            # counted at the flush (one bincount): adding into the dense table per batch cost a cache miss per credit
            pending.histogram.append((rows * self.histogram.num_bins + bins).view(-1))
        else:
            self.push("histogram", rows, bins, [], parity=False)
        if self.examples.capacity:
            pending.credits.append((rows, mass, {name: positions[name] for name in POSITION_FIELDS}))

    def push(self, stream: str, rows: torch.Tensor, code: torch.Tensor, columns: list[torch.Tensor],
             parity: bool = True) -> None:
        """Queue one batch of a keyed sum over (neuron row, code): `rows` and the float64 `columns` are
        ``(layers, positions, top_k)``, `code` is per position ``(positions,)`` (broadcast) or per credit.

        Keys are ``rows << (FEATURE_BITS + parity) | code``; with `parity`, the code's lowest bit is the example
        id's parity. They are summed per key on the device at the next flush and handed to :meth:`sink`.
        Statistics that are sums over (neuron, something) keys plug in here: one ``push`` per batch, one ``sink``
        branch."""
        code = code.view(1, -1, 1) if code.dim() == 1 else code
        keys = (rows << (FEATURE_BITS + parity)) + code
        self._pending.streams.setdefault(stream, []).append((keys.view(-1), [c.reshape(-1) for c in columns]))

    def sink(self, stream: str, keys: np.ndarray, sums: list[np.ndarray], counts: np.ndarray) -> None:
        """Fold one flushed stream (sorted unique `keys`, per-key column `sums`, entry `counts`) into the host
        accumulators, after dropping the keys of uncredited winners and of positions without a value."""
        kind, _, name = stream.partition(":")
        parity = kind != "histogram"
        lo, hi = np.searchsorted(keys, [0, self.num_rows << (FEATURE_BITS + parity)])
        keys, sums, counts = keys[lo:hi], [s[lo:hi] for s in sums], counts[lo:hi]
        if parity:
            odd = (keys & 1) == 1
            odd_keys, odd_sums, odd_counts = keys[odd] >> 1, [s[odd] for s in sums], counts[odd]
            keys, sums, counts = merge_parity(keys, sums, counts)
        if kind == "feature":
            self.sums[name].add(keys, sums[0], counts)
            self.noise.sums[name].odd.add(odd_keys, odd_sums[0], odd_counts)
            self.noise.sums[name].squares.add(keys, sums[1], counts)
        elif kind == "positions":  # every credit has a position: the neuron totals are read off these sums
            self.noise.positions.sums.add(keys, sums[0], counts)
            rows = keys >> FEATURE_BITS
            self.neuron_mass += np.bincount(rows, weights=sums[0], minlength=self.num_rows)
            self.neuron_count += np.bincount(rows, weights=counts, minlength=self.num_rows).astype(np.int64)
            self.noise.neuron_count_odd += np.bincount(odd_keys >> FEATURE_BITS, weights=odd_counts,
                                                       minlength=self.num_rows).astype(np.int64)
        elif kind == "histogram":
            rows, bins = split_keys(keys)
            self.histogram.add_counts(rows, bins, counts)
        else:
            raise KeyError(f"no sink for stream {stream!r}")

    def flush(self) -> None:
        """Move everything pending on the device to the host accumulators, and wait until that is done."""
        self.update_examples()
        self._sink_device_sums()

    def update_examples(self) -> None:
        """Flush what is pending and wait for it, so that the host's top examples are up to date; the keyed sums
        held on the device stay there (a streamed run prunes its kept texts this way)."""
        self._hand_off()
        self._wait()

    def _hand_off(self) -> None:
        """Start moving the pending device-side state to the host on the builder's flush thread (on the device types
        of :data:`FLUSH_THREAD`; inline elsewhere), and carry on with fresh state. The flush synchronises with the
        device (unique keys, candidate selection, copies) and runs the host accumulators; on its own thread the main
        thread keeps feeding the model meanwhile. At most one flush is in flight (bounding memory); flushes run in
        order, so the results are those of flushing inline."""
        pending = self._pending
        self._reset_device_state()
        self._wait()
        empty = not pending.streams and not pending.credits and not any(pending.fids.values())
        if empty or self.device.type not in FLUSH_THREAD:  # an empty flush (after close too) starts no thread
            self._drain(pending)
            return
        if self._flusher is None:  # started lazily: after the encoding workers have forked
            self._flusher = ThreadPoolExecutor(1, thread_name_prefix="hf_txray-flush")
        self._in_flight = self._flusher.submit(self._drain, pending)

    def _wait(self) -> None:
        """Wait for the flush in flight, if any; its error, if it failed, is raised here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def close(self, flush: bool = True) -> None:
        """Flush (unless `flush` is False: a run that failed), and stop the flush thread (a later flush starts a
        new one)."""
        try:
            if flush:
                self.flush()
        finally:
            if self._flusher is not None:
                self._flusher.shutdown(wait=True, cancel_futures=True)
                self._flusher, self._in_flight = None, None

    def _drain(self, pending: "_Pending") -> None:
        self._check_finite(pending.nonfinite)
        self.num_uncredited += int(pending.uncredited.item())
        if pending.histogram:
            cells = torch.cat(pending.histogram)
            counts = torch.bincount(cells, minlength=(self.num_rows + 1) * self.histogram.num_bins)
            counts = counts[: self.num_rows * self.histogram.num_bins]  # without the uncredited row
            cells = counts.nonzero().squeeze(1)
            rows, bins = np.divmod(cells.cpu().numpy(), self.histogram.num_bins)
            self.histogram.add_counts(rows, bins, counts[cells].cpu().numpy())
        for name, parts in pending.streams.items():
            unique, sums, counts = reduce_stream(parts)
            if self.keep_sums_on_device:
                self._device_sums.setdefault(name, DeviceSums()).add((unique, sums, counts))
            else:
                self.sink(name, unique.cpu().numpy(), [s.cpu().numpy() for s in sums], counts.cpu().numpy())
        if sum(held.size for held in self._device_sums.values()) > self.device_sums_limit:
            self._sink_device_sums()
        for ft in self.vocabs:
            self._count_corpus(ft, pending.fids[ft])
        candidates: list[dict[str, torch.Tensor]] = []
        num_candidates = 0
        for rows, mass, positions in pending.credits:
            cand = admitted_candidates(rows, mass, positions, self._threshold)
            candidates.append(cand)
            num_candidates += len(cand["row"])
            if num_candidates > max(CANDIDATE_LIMIT, self.examples.num_rows):
                self._add_candidates(candidates)
                candidates, num_candidates = [], 0
        self._add_candidates(candidates)

    def _check_finite(self, nonfinite: torch.Tensor) -> None:
        """Refuse winners that are NaN or +inf: a NaN would be dropped without a trace (it is not > 0) and one +inf
        mass makes every distribution of its neuron NaN, so either way the profile would be wrong silently."""
        counts = nonfinite.cpu().tolist()
        bad = [(i, n) for i, n in enumerate(counts) if n]
        if not bad:
            return
        where = ", ".join(f"{self.layer_names[i]}: {n}" for i, n in bad[:4]) + (" ..." if len(bad) > 4 else "")
        raise ModelError(
            f"The model gave non-finite activations (NaN or inf) as the winning neuron at some positions (positions "
            f"by layer: {where}), so no credit can be computed for them. The weights hold NaN/inf (in a "
            "TXRayTrainer snapshot: training diverged; lower the learning rate or clip gradients), or the forward "
            "overflowed in float16: load the model in float32 or bfloat16 (torch_dtype=torch.float32), or check "
            "its weights (e.g. torch.isfinite(p).all() for every parameter).")

    def _sink_device_sums(self) -> None:
        """Move the keyed sums held on the device to the host accumulators."""
        held, self._device_sums = self._device_sums, {}
        for name, sums in held.items():
            unique, columns, counts = sums.fold()
            self.sink(name, unique.cpu().numpy(), [c.cpu().numpy() for c in columns], counts.cpu().numpy())

    def _add_candidates(self, candidates: list[dict[str, torch.Tensor]]) -> None:
        """Merge top-example candidates into the host lists and raise the admission thresholds."""
        if not candidates:
            return
        cand = {k: torch.cat([c[k] for c in candidates]) for k in candidates[0]}
        if len(cand["row"]) > self.examples.num_rows * self.examples.capacity:
            keep = best_per_row(cand["row"], cand["activation"], cand["example_id"], cand["token_index"],
                                self.examples.capacity)
            cand = {k: v[keep] for k, v in cand.items()}
        host = {k: v.cpu().numpy() for k, v in cand.items()}
        self.examples.add(host.pop("row"), host.pop("activation"), **host)
        last = self.examples.activation[:, self.examples.capacity - 1]
        self._threshold = torch.from_numpy(np.append(last, np.inf)).to(self.device)

    def _count_corpus(self, ft: str, parts: list[np.ndarray]) -> None:
        size = len(self.vocabs[ft])
        current = self.corpus_counts[ft]
        if len(current) < size:
            current = np.concatenate([current, np.zeros(size - len(current), dtype=np.int64)])
        if parts:
            fid = np.concatenate(parts)
            counts = np.bincount(fid[fid >= 0], minlength=size)
            current[: len(counts)] += counts
        self.corpus_counts[ft] = current

    def tables(self) -> dict[str, FeatureTable]:
        self.flush()
        out = {}
        for ft, sums in self.sums.items():
            sums.compact()
            rows, fids = split_keys(sums.keys)
            vocab = list(self.vocabs[ft].items)
            corpus = np.zeros(len(vocab), dtype=np.int64)
            corpus[: len(self.corpus_counts[ft])] = self.corpus_counts[ft]
            mass_odd, count_odd, mass_sq = self.noise.sums[ft].aligned(sums.keys)
            out[ft] = FeatureTable(vocab, rows, fids, sums.mass.copy(), sums.count.copy(), corpus,
                                   mass_odd, count_odd, mass_sq)
        return out

    def examples_frame(self, layers: Sequence[int], fetch_texts: Callable[[np.ndarray], dict[int, str]]) -> pd.DataFrame:
        """Top examples as a table, with the token and its left/right context cut from the source texts."""
        self.flush()
        entries = self.examples.entries()
        if len(entries["row"]) == 0:
            return empty_examples()
        texts = fetch_texts(np.unique(entries["example_id"]))
        position, neuron = np.divmod(entries["row"], self.num_neurons)
        frame = pd.DataFrame({
            "layer": np.asarray(layers, dtype=np.int64)[position], "neuron": neuron, "rank": entries["rank"],
            "activation": entries["activation"], "example_id": entries["example_id"],
            "token_index": entries["token_index"], "char_start": entries["char_start"], "char_end": entries["char_end"],
        })
        # Plain Python ints (tolist) and slices with bounds computed by numpy: these loops run rows x capacity times
        # (92k for MiniLM).
        start, end = entries["char_start"], entries["char_end"]
        example_ids = entries["example_id"].tolist()
        of_entry = [texts[e] for e in example_ids]
        bounds = (np.maximum(start - CONTEXT_CHARS, 0).tolist(), start.tolist(), end.tolist(),
                  (end + CONTEXT_CHARS).tolist())
        # An ASCII text has no grapheme cluster to cut through: its cuts stay as they are, with no call per entry
        # (70k entries' cuts: 13 ms instead of 45).
        plain = {e: text.isascii() for e, text in texts.items()}
        clustered = [not plain[e] for e in example_ids]
        bounds = ([grapheme_cut(text, a, False) if c else a for c, text, a in zip(clustered, of_entry, bounds[0])],
                  *bounds[1:3],
                  [grapheme_cut(text, b, True) if c else b for c, text, b in zip(clustered, of_entry, bounds[3])])
        frame["token"] = [text[s:t] for text, s, t in zip(of_entry, bounds[1], bounds[2])]
        frame["left"] = [text[a:s] for text, a, s in zip(of_entry, bounds[0], bounds[1])]
        frame["right"] = [text[t:b] for text, t, b in zip(of_entry, bounds[2], bounds[3])]
        if np.all(np.diff(layers) > 0):  # entries come in (row, rank) order: already sorted by layer, neuron, rank
            return frame[EXAMPLE_COLUMNS]
        return frame.sort_values(["layer", "neuron", "rank"], kind="stable")[EXAMPLE_COLUMNS].reset_index(drop=True)

    def to_profile(self, meta: ProfileMeta, fetch_texts: Callable[[np.ndarray], dict[int, str]]) -> Profile:
        self.close()
        meta.num_examples, meta.num_positions = self.num_examples, self.num_positions
        meta.num_example_ids = self.num_example_ids
        meta.num_uncredited, meta.num_truncated, meta.num_empty = self.num_uncredited, self.num_truncated, self.num_empty
        meta.num_windowed, meta.num_input_tokens = self.num_windowed, self.num_real_tokens
        meta.num_padded_tokens = self.num_padded_tokens
        meta.num_feature_texts = dict(self.feature_texts) if self.feature_texts_known else {}
        meta.split_halves = self.split_halves
        shape = (self.num_layers, self.num_neurons)
        meta.config = {**meta.config, "activation_histogram": dict(HISTOGRAM)}
        return Profile(meta, self.neuron_mass.reshape(shape).copy(), self.neuron_count.reshape(shape).copy(),
                       self.tables(), self.examples_frame(meta.layers, fetch_texts),
                       self.noise.neuron_count_odd.reshape(shape).copy(), self.noise.positions,
                       activation_histogram=HistogramTable(self.histogram.num_bins, *self.histogram.entries()))

    # ----- state (checkpoints): the accumulators' state dicts, the dense totals, counters and vocabularies -------
    def state_dict(self) -> StateDict:
        """Everything accumulated so far, flat (numpy arrays and ints; see :mod:`hf_txray.accumulators`).

        Pending device-side work is flushed first. Holds each accumulator's own ``state_dict`` under its name
        (``sums.<feature type>``, ``noise.sums.<feature type>``, ``noise.positions``, ``examples``, ``histogram``),
        the dense neuron totals, the ``num_*`` counters, each feature type's corpus counts, the texts that carry
        it (``feature_texts.<feature type>``) and its vocabulary (feature strings in id order: the keys' feature
        ids refer to it). :meth:`load_state_dict` on a fresh
        builder of the same shape continues exactly from here.
        """
        self.flush()
        state: StateDict = {k: v for k, v in vars(self).items() if k.startswith("num_") and isinstance(v, int)}
        state["split_halves_by_text"] = int(self.split_halves == SPLIT_BY_TEXT)
        state.update({"neuron_mass": self.neuron_mass.copy(), "neuron_count": self.neuron_count.copy(),
                      "noise.neuron_count_odd": self.noise.neuron_count_odd.copy()})
        for prefix, accumulator in self._accumulators().items():
            state.update({f"{prefix}.{k}": v for k, v in accumulator.state_dict().items()})
        for ft, vocab in self.vocabs.items():
            state[f"vocab.{ft}"] = strings_to_array(vocab.items)
            state[f"corpus_counts.{ft}"] = self.corpus_counts[ft].copy()
            if self.feature_texts_known:
                state[f"feature_texts.{ft}"] = self.feature_texts[ft]
        return state

    def load_state_dict(self, state: StateDict) -> "ProfileBuilder":
        """Continue from `state` (from :meth:`state_dict`); this builder must be fresh, with the same grid, feature
        types and capacity, and its (empty) vocabularies are filled in place (the batch builder shares them).

        Raises:
            ValueError: the builder is not fresh, or `state` was saved by a builder of another shape.
        """
        saved = {"num_layers": int(state["num_layers"]), "num_neurons": int(state["num_neurons"]),
                 "capacity": int(state["examples.capacity"]),
                 "feature types": sorted(k[len("vocab."):] for k in state if k.startswith("vocab."))}
        mine = {"num_layers": self.num_layers, "num_neurons": self.num_neurons, "capacity": self.examples.capacity,
                "feature types": sorted(self.vocabs)}
        differ = [f"{k} {saved[k]} (saved) vs {mine[k]}" for k in saved if saved[k] != mine[k]]
        if differ:
            raise ValueError(f"Cannot load a builder state of another shape: {'; '.join(differ)}.")
        if self.num_positions or self.num_examples or any(len(v) for v in self.vocabs.values()):
            raise ValueError("load_state_dict needs a fresh builder: this one has already counted something.")
        # a state saved by an hf_txray that did not count them resumes with the counts unknown (a start-over would
        # lose the run's work; a merge with such a part is unknown too)
        self.feature_texts_known = all(f"feature_texts.{ft}" in state for ft in self.vocabs)
        # a state saved before the halves were drawn from texts goes on by example id parity: its texts so far were
        # split that way, and a run split two ways would not know its copies' halves
        self.split_halves = SPLIT_BY_TEXT if int(state.get("split_halves_by_text", 0)) else SPLIT_BY_ID
        for name in state:
            if name.startswith("num_") and "." not in name:
                setattr(self, name, int(state[name]))
        self.neuron_mass = np.asarray(state["neuron_mass"], dtype=np.float64).copy()
        self.neuron_count = np.asarray(state["neuron_count"], dtype=np.int64).copy()
        self.noise.neuron_count_odd = np.asarray(state["noise.neuron_count_odd"], dtype=np.int64).copy()
        for prefix, accumulator in self._accumulators().items():
            accumulator.load_state_dict(sub_state(state, prefix))
        for ft, vocab in self.vocabs.items():
            for item in array_to_strings(state[f"vocab.{ft}"]):
                vocab.add(item)
            self.corpus_counts[ft] = np.asarray(state[f"corpus_counts.{ft}"], dtype=np.int64).copy()
            self.feature_texts[ft] = int(state.get(f"feature_texts.{ft}", 0))
        if self.examples.capacity:  # admission thresholds as after a flush (they only filter candidates)
            last = self.examples.activation[:, self.examples.capacity - 1]
            self._threshold = torch.from_numpy(np.append(last, np.inf)).to(self.device)
        return self

    def _accumulators(self) -> dict[str, Accumulator]:
        """Every accumulator of the builder by its state-dict prefix."""
        return {"examples": self.examples, "histogram": self.histogram, "noise.positions": self.noise.positions,
                **{f"sums.{ft}": sums for ft, sums in self.sums.items()},
                **{f"noise.sums.{ft}": noise for ft, noise in self.noise.sums.items()}}


class _NoiseState:
    """The noise statistics of a profile under construction (split halves by example-id parity, squared masses,
    mass by position index); kept apart from the credit rule itself."""

    def __init__(self, vocabs: dict[str, Vocabulary], num_rows: int):
        self.sums = {ft: NoiseSums() for ft in vocabs}
        self.neuron_count_odd = np.zeros(num_rows, dtype=np.int64)
        self.positions = PositionMass()
