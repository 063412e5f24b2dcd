"""The max-1 (top-k) credit rule: from recorded winners of one batch to accumulator updates.

For every creditable position and every hooked layer, the winning neuron(s) are credited with their activation.
Only positive winners are credited: mass is a sum of activations, and a preference distribution needs non-negative
mass. With GELU/SiLU MLPs the winner is positive at virtually every position; positions whose best activation
is <= 0 are counted in ``num_uncredited`` (per layer and position) and credit nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .accumulators import (FEATURE_BITS, HISTOGRAM, ActivationHistogram, NoiseSums, PositionMass, SparseSums,
                           TopExamples, histogram_edges, split_keys)
from .batching import PositionBatch, to_device
from .features import Vocabulary
from .profile import EXAMPLE_COLUMNS, FeatureTable, HistogramTable, Profile, ProfileMeta, empty_examples

CONTEXT_CHARS = 60


@dataclass
class BatchCredit:
    """The credited (position, layer, neuron) triples of one batch, on the device where they were recorded.

    Everything a statistic needs per credit: ``rows`` (``layer_position * num_neurons + neuron``), ``mass`` (the
    credited activation, float64), ``where`` (index into the batch's creditable positions). Position metadata
    of the batch (``example_id``, ``token_index``... shape ``(positions,)``) is indexed with ``where``.
    """

    rows: torch.Tensor
    mass: torch.Tensor
    where: torch.Tensor
    num_uncredited: torch.Tensor  # scalar: (position, layer) pairs whose best activation is <= 0
    positions: dict[str, torch.Tensor]


def reduce_winners(values: Sequence[torch.Tensor], indices: Sequence[torch.Tensor], num_neurons: int,
                   positions: dict[str, torch.Tensor], device: torch.device) -> BatchCredit:
    """Apply the credit rule to one batch's recorded winners, with torch on `device` (no host synchronisation
    beyond what boolean indexing needs).

    Args:
        values, indices: per layer, ``(positions, top_k)`` winners from :class:`~hf_txray.sites.WinnerRecorder`.
        num_neurons (`int`): neurons per layer (rows of layer ``l`` start at ``l * num_neurons``).
        positions (`dict[str, torch.Tensor]`): per-position metadata already on `device`.
    """
    vals = torch.stack([v.to(device, torch.float32) for v in values])  # (L, P, k)
    idx = torch.stack([i.to(device) for i in indices]).long()
    num_uncredited = (vals.amax(dim=2) <= 0).sum()
    positive = vals > 0
    offset = (torch.arange(vals.shape[0], device=device, dtype=torch.long) * num_neurons).view(-1, 1, 1)
    rows = (idx + offset)[positive]
    mass = vals[positive].double()
    where = torch.arange(vals.shape[1], device=device).view(1, -1, 1).expand_as(vals)[positive]
    return BatchCredit(rows, mass, where, num_uncredited, positions)


def reduce_keys(keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted unique `keys` with the per-key sums of `values` (``(n, columns)``, float64) and the number of
    entries per key, on the keys' device."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    summed = torch.zeros((len(unique), values.shape[1]), dtype=values.dtype, device=keys.device)
    summed.index_add_(0, inverse, values)
    return unique, summed, torch.bincount(inverse, minlength=len(unique))


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


POSITION_FIELDS = ("example_id", "token_index", "char_start", "char_end")
CANDIDATE_LIMIT = 1 << 16  # pending top-example candidates that trigger a merge into the host lists


class ProfileBuilder:
    """Accumulates credited winners batch by batch; :meth:`to_profile` turns the state into a :class:`Profile`.

    The per-batch work (credit rule, neuron totals, (neuron, feature) keys, top-example candidates above each
    neuron's current admission threshold) runs with torch on `device`; every `flush_every` batches the compact
    results (unique keys with their sums, a few candidates) move to the host accumulators.

    Args:
        num_layers (`int`), num_neurons (`int`): the hooked grid.
        vocabs (`dict[str, Vocabulary]`): one vocabulary per feature type, shared with the batch builder.
        capacity (`int`): top examples kept per neuron.
        device (`torch.device`, *optional*, defaults to CPU): where the per-batch reductions run.
        flush_every (`int`, *optional*, defaults to 32): batches between two moves to the host.
    """

    def __init__(self, num_layers: int, num_neurons: int, vocabs: dict[str, Vocabulary], capacity: int,
                 device: torch.device | str | None = None, flush_every: int = 32):
        self.num_layers, self.num_neurons = num_layers, num_neurons
        self.vocabs = vocabs
        self.sums = {ft: SparseSums() for ft in vocabs}
        self.corpus_counts = {ft: np.zeros(0, dtype=np.int64) for ft in vocabs}
        self.neuron_mass = np.zeros(num_layers * num_neurons, dtype=np.float64)
        self.neuron_count = np.zeros(num_layers * num_neurons, dtype=np.int64)
        self.examples = TopExamples(num_layers * num_neurons, capacity)
        self.histogram = ActivationHistogram(histogram_edges(**HISTOGRAM))  # credited activations per neuron
        self.num_examples = self.num_positions = self.num_uncredited = self.num_truncated = self.num_empty = 0
        self.num_windowed = self.num_real_tokens = self.num_padded_tokens = 0
        self.noise = _NoiseState(vocabs, num_layers * num_neurons)
        device = torch.device(device or "cpu")
        # float64 sums need a device that has float64 (not MPS): elsewhere reduce on the CPU.
        self.device = device if device.type in ("cpu", "cuda") else torch.device("cpu")
        self.flush_every = flush_every
        self._edges = torch.as_tensor(self.histogram.edges, dtype=torch.float64, device=self.device)
        # A credit below a neuron's current capacity-th best example can never enter its top list.
        self._threshold = torch.full((num_layers * num_neurons,), -np.inf, dtype=torch.float64, device=self.device)
        self._reset_device_state()

    def _reset_device_state(self) -> None:
        rows = self.num_layers * self.num_neurons
        self._mass = torch.zeros(rows, dtype=torch.float64, device=self.device)
        self._count = torch.zeros(rows, dtype=torch.long, device=self.device)
        self._uncredited = torch.zeros((), dtype=torch.long, device=self.device)
        self._count_odd = torch.zeros(rows, dtype=torch.long, device=self.device)
        # Keyed sums waiting for the next flush: stream name -> [(int64 keys, float64 values (n, columns))].
        self._streams: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._fids: dict[str, list[np.ndarray]] = {ft: [] for ft in self.vocabs}
        self._candidates: list[dict[str, torch.Tensor]] = []
        self._num_candidates = 0
        self._pending_batches = 0

    def add(self, values: Sequence[torch.Tensor], indices: Sequence[torch.Tensor], batch: PositionBatch,
            num_examples: int | None = None) -> None:
        """Credit one batch. `values`/`indices` are per layer, shape ``(positions, top_k)``."""
        self.num_examples += batch.num_examples if num_examples is None else num_examples
        self.num_truncated += batch.num_truncated
        self.num_empty += batch.num_empty
        self.num_windowed += batch.num_windowed
        self.num_real_tokens += batch.num_real_tokens
        self.num_padded_tokens += batch.num_padded_tokens
        for ft, fid in batch.feature_ids.items():
            self._fids[ft].append(fid)
        if batch.num_positions == 0:
            return
        self.num_positions += batch.num_positions
        positions = {name: to_device(getattr(batch, name), self.device) for name in POSITION_FIELDS}
        for ft, fid in batch.feature_ids.items():
            positions[ft] = to_device(fid, self.device)
        self.accumulate(reduce_winners(values, indices, self.num_neurons, positions, self.device))
        self._pending_batches += 1
        if self._pending_batches >= self.flush_every:
            self.flush()

    def accumulate(self, credit: BatchCredit) -> None:
        """Fold one batch's credits into the device-side state (sums and top-example candidates)."""
        rows, mass, where = credit.rows, credit.mass, credit.where
        self._uncredited += credit.num_uncredited
        self._mass.index_add_(0, rows, mass)
        self._count.index_add_(0, rows, torch.ones_like(rows))
        # Noise statistics ride along: odd-example-id half (split-half noise floors) and squared masses.
        odd = (credit.positions["example_id"][where] % 2 == 1).double()
        self._count_odd.index_add_(0, rows, odd.long())
        columns = torch.stack([mass, mass * odd, odd, mass * mass], dim=1)
        for ft in self.vocabs:
            fid = credit.positions[ft][where]
            has = fid >= 0
            self.push(f"feature:{ft}", (rows[has] << FEATURE_BITS) | fid[has], columns[has])
        self.push("positions", (rows << FEATURE_BITS) | credit.positions["token_index"][where], mass.unsqueeze(1))
        # The neuron pages' activation histograms: bucketize(right=True) bins as np.searchsorted(side="right").
        bins = torch.bucketize(mass, self._edges, right=True)
        self.push("histogram", (rows << FEATURE_BITS) | bins, torch.ones_like(mass).unsqueeze(1))
        if self.examples.capacity:
            # Only credits at or above a neuron's current capacity-th best can enter its top list; once the lists
            # fill up, that is a tiny share of the batch, so the candidates stay few and need no sorting here.
            admit = mass >= self._threshold[rows]
            cand = {"row": rows[admit], "activation": mass[admit]}
            cand.update({name: credit.positions[name][where[admit]] for name in POSITION_FIELDS})
            self._candidates.append(cand)
            self._num_candidates += len(cand["row"])
            if self._num_candidates > max(CANDIDATE_LIMIT, self.examples.num_rows):
                self.flush_candidates()

    def push(self, stream: str, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Queue per-credit `values` (float64, ``(n, columns)``) under int64 `keys` of a keyed sum; they are summed
        per key on the device at the next flush and handed to :meth:`sink`. Statistics that are sums over
        (neuron, something) keys plug in here: one ``push`` per batch, one ``sink`` branch."""
        self._streams.setdefault(stream, []).append((keys, values))

    def sink(self, stream: str, keys: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
        """Fold one flushed stream (sorted unique `keys`, per-key column `sums`, entry `counts`) into the host
        accumulators."""
        kind, _, name = stream.partition(":")
        if kind == "feature":
            self.sums[name].add(keys, sums[:, 0], counts)
            self.noise.add_reduced(name, keys, sums[:, 1], sums[:, 2], sums[:, 3], counts)
        elif kind == "positions":
            self.noise.positions.sums.add(keys, sums[:, 0], counts)
        elif kind == "histogram":
            rows, bins = split_keys(keys)
            self.histogram.add_counts(rows, bins, counts)
        else:
            raise KeyError(f"no sink for stream {stream!r}")

    def flush(self) -> None:
        """Move the compact device-side results to the host accumulators."""
        self.neuron_mass += self._mass.cpu().numpy()
        self.neuron_count += self._count.cpu().numpy()
        self.num_uncredited += int(self._uncredited.item())
        self.noise.neuron_count_odd += self._count_odd.cpu().numpy()
        for name, parts in self._streams.items():
            unique, sums, counts = reduce_keys(torch.cat([k for k, _ in parts]), torch.cat([v for _, v in parts]))
            self.sink(name, unique.cpu().numpy(), sums.cpu().numpy(), counts.cpu().numpy())
        for ft in self.vocabs:
            self._count_corpus(ft, self._fids[ft])
        self.flush_candidates()
        self._reset_device_state()

    def flush_candidates(self) -> None:
        """Merge the pending top-example candidates into the host lists and raise the admission thresholds."""
        if not self._candidates:
            return
        cand = {k: torch.cat([c[k] for c in self._candidates]) for k in self._candidates[0]}
        if len(cand["row"]) > self.examples.num_rows * self.examples.capacity:
            keep = best_per_row(cand["row"], cand["activation"], cand["example_id"], cand["token_index"],
                                self.examples.capacity)
            cand = {k: v[keep] for k, v in cand.items()}
        host = {k: v.cpu().numpy() for k, v in cand.items()}
        self.examples.add(host.pop("row"), host.pop("activation"), **host)
        last = self.examples.activation[:, self.examples.capacity - 1]
        self._threshold = torch.from_numpy(last.copy()).to(self.device)
        self._candidates, self._num_candidates = [], 0

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
        snippets = [_snippet(texts[e], s, t) for e, s, t in zip(frame["example_id"], frame["char_start"], frame["char_end"])]
        frame["token"], frame["left"], frame["right"] = (list(col) for col in zip(*snippets))
        return frame.sort_values(["layer", "neuron", "rank"], kind="stable")[EXAMPLE_COLUMNS].reset_index(drop=True)

    def to_profile(self, meta: ProfileMeta, fetch_texts: Callable[[np.ndarray], dict[int, str]]) -> Profile:
        self.flush()
        meta.num_examples, meta.num_positions = self.num_examples, self.num_positions
        meta.num_uncredited, meta.num_truncated, meta.num_empty = self.num_uncredited, self.num_truncated, self.num_empty
        meta.num_windowed, meta.num_input_tokens = self.num_windowed, self.num_real_tokens
        meta.num_padded_tokens = self.num_padded_tokens
        shape = (self.num_layers, self.num_neurons)
        meta.config = {**meta.config, "activation_histogram": dict(HISTOGRAM)}
        return Profile(meta, self.neuron_mass.reshape(shape).copy(), self.neuron_count.reshape(shape).copy(),
                       self.tables(), self.examples_frame(meta.layers, fetch_texts),
                       self.noise.neuron_count_odd.reshape(shape).copy(), self.noise.positions,
                       activation_histogram=HistogramTable(self.histogram.num_bins, *self.histogram.entries()))


class _NoiseState:
    """The noise statistics of a profile under construction (split halves by example-id parity, squared masses,
    mass by position index); kept apart from the credit rule itself."""

    def __init__(self, vocabs: dict[str, Vocabulary], num_rows: int):
        self.sums = {ft: NoiseSums() for ft in vocabs}
        self.neuron_count_odd = np.zeros(num_rows, dtype=np.int64)
        self.positions = PositionMass()

    def add_reduced(self, ft: str, keys: np.ndarray, mass_odd: np.ndarray, count_odd: np.ndarray,
                    mass_sq: np.ndarray, count: np.ndarray) -> None:
        """Per-key sums already reduced on the device (:meth:`ProfileBuilder.sink`): the odd half and the squares."""
        odd = count_odd > 0
        self.sums[ft].odd.add(keys[odd], mass_odd[odd], np.rint(count_odd[odd]).astype(np.int64))
        self.sums[ft].squares.add(keys, mass_sq, count)


def _snippet(text: str, start: int, end: int) -> tuple[str, str, str]:
    left = text[max(0, start - CONTEXT_CHARS): start]
    right = text[end: end + CONTEXT_CHARS]
    return text[start:end], left, right
