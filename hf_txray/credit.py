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

from .accumulators import (HISTOGRAM, ActivationHistogram, SparseSums, TopExamples, histogram_edges, make_keys,
                           reduce_by_key, split_keys)
from .batching import PositionBatch
from .features import Vocabulary
from .profile import (EXAMPLE_COLUMNS, FeatureTable, HistogramTable, Profile, ProfileMeta, empty_examples,
                      position_table_from_arrays)

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
        self.histogram = ActivationHistogram(histogram_edges(**HISTOGRAM))
        self.position_sums = SparseSums()  # (row, token index) -> mass, count: the first-position effect
        self.position_corpus = np.zeros(0, dtype=np.int64)  # creditable positions per token index
        self.num_examples = self.num_positions = self.num_uncredited = self.num_truncated = self.num_empty = 0

    def add(self, values: Sequence[torch.Tensor], indices: Sequence[torch.Tensor], batch: PositionBatch,
            num_examples: int) -> None:
        """Credit one batch. `values`/`indices` are per layer, shape ``(positions, top_k)``."""
        self.num_examples += num_examples
        self.num_truncated += batch.num_truncated
        self.num_empty += batch.num_empty
        self._count_corpus(batch)
        self._count_positions(batch)
        if batch.num_positions == 0:
            return
        vals = torch.stack([v.float() for v in values]).cpu().numpy().astype(np.float64)  # (L, P, k)
        idx = torch.stack(list(indices)).cpu().numpy().astype(np.int64)
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
        self.examples.add(rows, mass, example_id=batch.example_id[where], token_index=batch.token_index[where],
                          char_start=batch.char_start[where], char_end=batch.char_end[where])
        self._add_distributions(rows, mass, batch.token_index[where])

    def _add_distributions(self, rows: np.ndarray, mass: np.ndarray, token_index: np.ndarray) -> None:
        """Streaming per-neuron distributions of the credited values: activation histogram, mass per position."""
        self.histogram.add(rows, mass)
        self.position_sums.add(*reduce_by_key(make_keys(rows, token_index), mass, np.ones(len(rows), np.int64)))

    def _count_positions(self, batch: PositionBatch) -> None:
        counts = np.bincount(batch.token_index, minlength=len(self.position_corpus)) if batch.num_positions else []
        if len(counts) > len(self.position_corpus):
            self.position_corpus = np.concatenate([self.position_corpus,
                                                   np.zeros(len(counts) - len(self.position_corpus), np.int64)])
        self.position_corpus[: len(counts)] += np.asarray(counts, dtype=np.int64)

    def position_table(self) -> FeatureTable:
        """Credited mass and count per (neuron row, token index); the vocabulary is the indices as strings."""
        sums = self.position_sums.compact()
        rows, index = split_keys(sums.keys)
        size = max(len(self.position_corpus), int(index.max()) + 1 if len(index) else 0)
        corpus = np.zeros(size, dtype=np.int64)
        corpus[: len(self.position_corpus)] = self.position_corpus
        return position_table_from_arrays(rows, index, sums.mass.copy(), sums.count.copy(), corpus)

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
            out[ft] = FeatureTable(vocab, rows, fids, sums.mass.copy(), sums.count.copy(), corpus)
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
                       activation_histogram=HistogramTable(self.histogram.num_bins, *self.histogram.entries()),
                       position_table=self.position_table())


def _snippet(text: str, start: int, end: int) -> tuple[str, str, str]:
    left = text[max(0, start - CONTEXT_CHARS): start]
    right = text[end: end + CONTEXT_CHARS]
    return text[start:end], left, right
