"""The max-1 (top-k) credit rule: from recorded winners of one batch to accumulator updates.

For every creditable position and every hooked layer, the winning neuron(s) are credited with their activation.
Only positive winners are credited: mass is a sum of activations, and a preference distribution needs non-negative
mass. With GELU/SiLU MLPs the winner is positive at virtually every position; positions whose best activation
is <= 0 are counted in ``num_uncredited`` (per layer and position) and credit nobody.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .accumulators import (HISTOGRAM, ActivationHistogram, NoiseSums, PositionMass, SparseSums, TopExamples,
                           histogram_edges, make_keys, reduce_by_key, split_keys)
from .batching import PositionBatch
from .features import Vocabulary
from .profile import EXAMPLE_COLUMNS, FeatureTable, HistogramTable, Profile, ProfileMeta, empty_examples

CONTEXT_CHARS = 60


class ProfileBuilder:
    """Accumulates credited winners batch by batch; :meth:`to_profile` turns the state into a :class:`Profile`.

    Args:
        num_layers (`int`), num_neurons (`int`): the hooked grid.
        vocabs (`dict[str, Vocabulary]`): one vocabulary per feature type, shared with the batch builder.
        capacity (`int`): top examples kept per neuron.
    """

    def __init__(self, num_layers: int, num_neurons: int, vocabs: dict[str, Vocabulary], capacity: int):
        self.num_layers, self.num_neurons = num_layers, num_neurons
        self.vocabs = vocabs
        self.sums = {ft: SparseSums() for ft in vocabs}
        self.corpus_counts = {ft: np.zeros(0, dtype=np.int64) for ft in vocabs}
        self.neuron_mass = np.zeros(num_layers * num_neurons, dtype=np.float64)
        self.neuron_count = np.zeros(num_layers * num_neurons, dtype=np.int64)
        self.examples = TopExamples(num_layers * num_neurons, capacity)
        self.histogram = ActivationHistogram(histogram_edges(**HISTOGRAM))  # credited activations per neuron
        self.num_examples = self.num_positions = self.num_uncredited = self.num_truncated = self.num_empty = 0
        self.noise = _NoiseState(vocabs, num_layers * num_neurons)

    def add(self, values: Sequence[torch.Tensor], indices: Sequence[torch.Tensor], batch: PositionBatch,
            num_examples: int) -> None:
        """Credit one batch. `values`/`indices` are per layer, shape ``(positions, top_k)``."""
        self.num_examples += num_examples
        self.num_truncated += batch.num_truncated
        self.num_empty += batch.num_empty
        self._count_corpus(batch)
        if batch.num_positions == 0:
            return
        device = values[0].device  # layers of a dispatched model may sit on several devices
        vals = torch.stack([v.float().to(device) for v in values]).cpu().numpy().astype(np.float64)  # (L, P, k)
        idx = torch.stack([i.to(device) for i in indices]).cpu().numpy().astype(np.int64)
        self.num_positions += batch.num_positions
        self.num_uncredited += int((vals.max(axis=2) <= 0).sum())
        layer_offset = (np.arange(self.num_layers, dtype=np.int64) * self.num_neurons)[:, None, None]
        positive = vals > 0
        rows = (idx + layer_offset)[positive]
        mass = vals[positive]
        where = np.broadcast_to(np.arange(batch.num_positions)[None, :, None], vals.shape)[positive]
        self.neuron_mass += np.bincount(rows, weights=mass, minlength=len(self.neuron_mass))
        self.neuron_count += np.bincount(rows, minlength=len(self.neuron_count))
        for ft, sums in self.sums.items():
            fid = batch.feature_ids[ft][where]
            has = fid >= 0
            sums.add(*reduce_by_key(make_keys(rows[has], fid[has]), mass[has], np.ones(int(has.sum()), np.int64)))
        self.noise.add(rows, mass, where, batch)
        self.examples.add(rows, mass, example_id=batch.example_id[where], token_index=batch.token_index[where],
                          char_start=batch.char_start[where], char_end=batch.char_end[where])
        self.histogram.add(rows, mass)  # the neuron pages' activation histograms (mass by position: self.noise)

    def _count_corpus(self, batch: PositionBatch) -> None:
        for ft, fid in batch.feature_ids.items():
            size = len(self.vocabs[ft])
            counts = np.bincount(fid[fid >= 0], minlength=size)
            current = self.corpus_counts[ft]
            if len(current) < size:
                current = np.concatenate([current, np.zeros(size - len(current), dtype=np.int64)])
            current[: len(counts)] += counts
            self.corpus_counts[ft] = current

    def tables(self) -> dict[str, FeatureTable]:
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
        meta.num_examples, meta.num_positions = self.num_examples, self.num_positions
        meta.num_uncredited, meta.num_truncated, meta.num_empty = self.num_uncredited, self.num_truncated, self.num_empty
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

    def add(self, rows: np.ndarray, mass: np.ndarray, where: np.ndarray, batch: PositionBatch) -> None:
        """`rows`/`mass`: the credits; `where`: each credit's position in `batch`."""
        odd = batch.example_id[where] % 2 == 1
        self.neuron_count_odd += np.bincount(rows[odd], minlength=len(self.neuron_count_odd))
        for ft, sums in self.sums.items():
            fid = batch.feature_ids[ft][where]
            has = fid >= 0
            sums.add(make_keys(rows[has], fid[has]), mass[has], odd[has])
        self.positions.add(rows, batch.token_index[where], mass)


def _snippet(text: str, start: int, end: int) -> tuple[str, str, str]:
    left = text[max(0, start - CONTEXT_CHARS): start]
    right = text[end: end + CONTEXT_CHARS]
    return text[start:end], left, right
