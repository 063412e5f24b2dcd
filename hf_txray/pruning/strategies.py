"""Pruning strategies: how each ranks a layer's neurons (first = pruned first), from a report, a profile or at random."""

from __future__ import annotations

import numpy as np

from ..profile import Profile
from ..report import TransferReport

STRATEGIES = ("lost", "gained", "most_changed", "least_changed", "low_mass", "random")
REPORT_STRATEGIES = ("lost", "gained", "most_changed", "least_changed")


def _tie_break(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.permutation(size)


def _ranking(source: TransferReport | Profile | None, strategy: str, layers: list[int], widths: dict[int, int],
             feature_type: str | None, stage: str | None,
             rng: np.random.Generator) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per layer: candidate neuron indices in pruning order (first = pruned first) and their scores."""
    if strategy == "random":
        order, scores = {}, {}
        for layer in layers:
            score = rng.random(widths[layer])
            order[layer] = np.argsort(-score, kind="stable")
            scores[layer] = score[order[layer]]
        return order, scores
    if strategy == "low_mass":
        if isinstance(source, Profile):
            mass = {layer: source.neuron_mass[source.layers.index(layer)] for layer in layers}
        else:
            column = "mass_a" if stage == "a" else "mass_b"
            frame = source.neurons
            mass = {layer: frame.loc[frame["layer"] == layer].sort_values("neuron")[column].to_numpy()
                    for layer in layers}
        frame_scores = {layer: -np.asarray(values, dtype=np.float64) for layer, values in mass.items()}
        candidates = {layer: np.ones(widths[layer], dtype=bool) for layer in layers}
    else:
        frame = source.neurons
        frame_scores, candidates = {}, {}
        for layer in layers:
            rows = frame.loc[frame["layer"] == layer].sort_values("neuron")
            if strategy == "lost":
                candidates[layer] = (rows["status"] == "lost").to_numpy()
                frame_scores[layer] = rows["mass_a"].to_numpy(np.float64)
            elif strategy == "gained":
                candidates[layer] = (rows["status"] == "gained").to_numpy()
                frame_scores[layer] = rows["mass_b"].to_numpy(np.float64)
            else:
                h = rows[f"hellinger_{feature_type}"].to_numpy(np.float64)
                candidates[layer] = ~np.isnan(h)
                frame_scores[layer] = h if strategy == "most_changed" else -h
    order, scores = {}, {}
    for layer in layers:
        score = np.where(candidates[layer], frame_scores[layer], -np.inf)
        tie = _tie_break(rng, len(score))
        ranked = np.lexsort((tie, -score))  # highest score first, ties in a seeded random order
        ranked = ranked[candidates[layer][ranked]]
        order[layer], scores[layer] = ranked, score[ranked]
    return order, scores
