"""Pruning strategies: a registry of named rankings of a layer's neurons, from a report, a profile or at random.

A strategy scores every neuron of a layer and says which are candidates; :func:`rank` orders the candidates by
score (highest first = pruned first), ties in a seeded random order. The built-in strategies are registered below;
:func:`register_pruning_strategy` adds a user's own, which :func:`hf_txray.prune`, :func:`hf_txray.pruning.
plan_pruning`, :func:`hf_txray.evaluation.sweep_plans` and the CLI then accept by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..features.registry import same_definition
from ..profile import Profile
from ..report import DEFAULT_MIN_COUNT, TransferReport

# What a strategy needs to rank: a report (two stages), a report or a profile (one stage's masses), or nothing.
NEEDS = ("report", "report_or_profile", "none")


@dataclass(frozen=True)
class RankingInput:
    """What a strategy sees.

    Args:
        source (`TransferReport`, `Profile` or None): the ranking source (what the strategy's `needs` allow).
        layers (`list[int]`): the layers to rank.
        widths (`dict[int, int]`): neurons per layer.
        feature_type (`str`, *optional*): feature type of the Hellinger distance (strategies with
            ``uses_feature_type``).
        stage (`str`): ``"a"`` or ``"b"``: which stage of a report a one-stage statistic reads.
        rng (`np.random.Generator`): the plan's seeded generator (for random strategies).
        min_count (`int`, *optional*): strategies that rank shared neurons by Hellinger distance leave out those
            credited fewer times with a value of `feature_type` in either stage (their distance is mostly sampling
            noise; ``TransferReport.enough_credits``).
    """

    source: TransferReport | Profile | None
    layers: list[int]
    widths: dict[int, int]
    feature_type: str | None
    stage: str
    rng: np.random.Generator
    min_count: int = DEFAULT_MIN_COUNT


# scores[layer]: float64 (width,), higher = pruned first; candidates[layer]: bool (width,).
Scores = tuple[dict[int, np.ndarray], dict[int, np.ndarray]]


@dataclass(frozen=True)
class PruningStrategy:
    """A named pruning strategy.

    Args:
        name (`str`): the name passed as ``strategy=``.
        score (`callable(RankingInput) -> (scores, candidates)`): per layer, a float64 score for every neuron
            (higher = pruned first) and a boolean mask of the candidates.
        needs (`str`): ``"report"``, ``"report_or_profile"`` or ``"none"``.
        description (`str`): one line for help texts.
        uses_feature_type (`bool`): the score reads a feature type's Hellinger distance (validated against the
            report's feature types).
        random (`bool`): the scores are random draws from the plan's generator (a baseline): each seed gives its
            own plan (sweeps run every seed, plan names show it), and no ties need breaking. Otherwise the seed
            only breaks score ties.
    """

    name: str
    score: Callable[[RankingInput], Scores]
    needs: str
    description: str
    uses_feature_type: bool = False
    random: bool = False


_REGISTRY: dict[str, PruningStrategy] = {}


def register_pruning_strategy(name: str, score: Callable[[RankingInput], Scores], *, needs: str = "report",
                              description: str = "", uses_feature_type: bool = False, random: bool = False,
                              overwrite: bool = False) -> PruningStrategy:
    """Register a pruning strategy under `name` (see :class:`PruningStrategy`).

    Args:
        name (`str`): the name passed as ``strategy=``, non-empty.
        score (`callable(RankingInput) -> (scores, candidates)`): per layer, a float64 score for every neuron
            (higher = pruned first) and a boolean mask of the candidates.
        needs (`str`, *optional*, defaults to `"report"`): ``"report"``, ``"report_or_profile"`` or ``"none"``.
        description (`str`, *optional*, defaults to `""`): one line for help texts.
        uses_feature_type (`bool`, *optional*, defaults to `False`): the score reads a feature type's Hellinger
            distance (validated against the report's feature types).
        random (`bool`, *optional*, defaults to `False`): the scores are random draws from the plan's generator (a
            baseline): each seed gives its own plan; otherwise the seed only breaks score ties.
        overwrite (`bool`, *optional*, defaults to `False`): replace a strategy registered under `name`.

    Returns:
        `PruningStrategy`: the registered strategy.

    Raises:
        ConfigurationError: `name` is empty or not a string, `name` is taken by another definition (pass
            ``overwrite=True`` to replace it; the same score function's code and options again, a notebook cell run
            twice, is taken), `needs` is unknown, or `score` is not callable.

    Example:
        ```python
        >>> def high_mass(inputs):   # prune the neurons with the most credited mass in stage B
        ...     scores = {l: masses(inputs.source, l) for l in inputs.layers}
        ...     return scores, {l: np.ones(inputs.widths[l], bool) for l in inputs.layers}
        >>> register_pruning_strategy("high_mass", high_mass, needs="report", description="most mass first")
        >>> hf_txray.prune(model, report, strategy="high_mass", amount=0.1)
        ```
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"A strategy name must be a non-empty string, got {name!r}.")
    if needs not in NEEDS:
        raise ConfigurationError(f"needs must be one of {', '.join(NEEDS)}, got {needs!r}.")
    if not callable(score):
        raise ConfigurationError(f"score must be a function of RankingInput, got {score!r}.")
    strategy = PruningStrategy(name, score, needs, description, uses_feature_type, random)
    # the same definition again (a notebook cell run twice) is taken: it failed on the cell's second run (helper 428)
    if name in _REGISTRY and not overwrite and not same_definition(_REGISTRY[name], strategy, "score"):
        raise ConfigurationError(f"A pruning strategy {name!r} is already registered (with another score function or "
                                 "options): pass overwrite=True to replace it.")
    _REGISTRY[name] = strategy
    return strategy


def pruning_strategies() -> dict[str, PruningStrategy]:
    """The registered strategies by name (built-in first, then the user's, in registration order)."""
    return dict(_REGISTRY)


def is_random_strategy(name: str) -> bool:
    """Whether the strategy registered as `name` draws its ranking at random (False for unknown names, such as a
    saved plan's ``"explicit"``)."""
    strategy = _REGISTRY.get(name)
    return strategy is not None and strategy.random


def ranks_by_feature_type(name: Any) -> bool:
    """Whether the strategy registered as `name` ranks by a feature type's Hellinger distance; an unknown name is
    refused as such (:func:`get_pruning_strategy`), and an explicit neuron list ranks by nothing (False)."""
    return isinstance(name, str) and get_pruning_strategy(name).uses_feature_type


def check_feature_type_used(feature_type: str | None, strategies: Sequence[str]) -> None:
    """Raise :class:`ConfigurationError` when `feature_type` is given but none of `strategies` (registered names:
    an unknown one is refused as such) ranks by a feature type's Hellinger distance: ``--feature-type token`` with
    the random strategy (or lost, gained, low_mass) was ignored without a word."""
    if feature_type is None:
        return
    if not any(ranks_by_feature_type(name) for name in strategies):
        using = [name for name, strategy in _REGISTRY.items() if strategy.uses_feature_type]
        raise ConfigurationError(
            f"feature_type={feature_type!r} (--feature-type) has no effect with strategy "
            f"{', '.join(map(repr, strategies))}: only {', '.join(using)} rank by a feature type's Hellinger "
            "distance. Leave it out, or choose one of those strategies.")


def get_pruning_strategy(name: str) -> PruningStrategy:
    """The strategy registered as `name`; raises :class:`ConfigurationError` listing the registered names."""
    if name not in _REGISTRY:
        raise ConfigurationError(
            f"Unknown pruning strategy {name!r}: choose one of {', '.join(_REGISTRY)}, or pass an explicit neuron "
            "list ({layer: [index, ...]} or [(layer, index), ...]); register your own with "
            "hf_txray.pruning.register_pruning_strategy."
        )
    return _REGISTRY[name]


def rank(strategy: PruningStrategy, inputs: RankingInput) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per layer: candidate neuron indices in pruning order (first = pruned first) and their scores."""
    frame_scores, candidates = strategy.score(inputs)
    order, scores = {}, {}
    for layer in inputs.layers:
        score = np.where(candidates[layer], np.asarray(frame_scores[layer], dtype=np.float64), -np.inf)
        # Highest score first; ties in a seeded random order, or in index order for random scores.
        tie = np.arange(len(score)) if strategy.random else inputs.rng.permutation(len(score))
        ranked = np.lexsort((tie, -score))
        ranked = ranked[candidates[layer][ranked]]
        order[layer], scores[layer] = ranked, score[ranked]
    return order, scores


# ----- the built-in strategies ----------------------------------------------------------------------------------
def _layer_rows(report: TransferReport, layer: int):
    frame = report.neurons
    return frame.loc[frame["layer"] == layer].sort_values("neuron")


def _status(status: str, mass_column: str) -> Callable[[RankingInput], Scores]:
    def score(inputs: RankingInput) -> Scores:
        scores, candidates = {}, {}
        for layer in inputs.layers:
            rows = _layer_rows(inputs.source, layer)
            candidates[layer] = (rows["status"] == status).to_numpy()
            scores[layer] = rows[mass_column].to_numpy(np.float64)
        return scores, candidates

    return score


def _hellinger(sign: float) -> Callable[[RankingInput], Scores]:
    def score(inputs: RankingInput) -> Scores:
        scores, candidates = {}, {}
        for layer in inputs.layers:
            rows = _layer_rows(inputs.source, layer)
            h = rows[f"hellinger_{inputs.feature_type}"].to_numpy(np.float64)
            # credited min_count times with a value of the feature type, as the report's rankings floor them
            counted = inputs.source.enough_credits(inputs.feature_type, inputs.min_count)[rows.index].to_numpy()
            candidates[layer] = ~np.isnan(h) & counted
            scores[layer] = h if sign > 0 else -h
        return scores, candidates

    return score


def _low_mass(inputs: RankingInput) -> Scores:
    source = inputs.source
    if isinstance(source, Profile):
        mass = {layer: source.neuron_mass[source.layers.index(layer)] for layer in inputs.layers}
    else:
        column = "mass_a" if inputs.stage == "a" else "mass_b"
        mass = {layer: _layer_rows(source, layer)[column].to_numpy() for layer in inputs.layers}
    scores = {layer: -np.asarray(values, dtype=np.float64) for layer, values in mass.items()}
    return scores, {layer: np.ones(inputs.widths[layer], dtype=bool) for layer in inputs.layers}


def _random(inputs: RankingInput) -> Scores:
    scores = {layer: inputs.rng.random(inputs.widths[layer]) for layer in inputs.layers}
    return scores, {layer: np.ones(inputs.widths[layer], dtype=bool) for layer in inputs.layers}


register_pruning_strategy("lost", _status("lost", "mass_a"), needs="report",
                          description="credited in stage A but never in B (deactivated), largest mass in A first")
register_pruning_strategy("gained", _status("gained", "mass_b"), needs="report",
                          description="credited only in stage B, largest mass in B first")
register_pruning_strategy("most_changed", _hellinger(1.0), needs="report", uses_feature_type=True,
                          description="shared neurons credited min_count times in both stages, largest Hellinger "
                                      "distance first")
register_pruning_strategy("least_changed", _hellinger(-1.0), needs="report", uses_feature_type=True,
                          description="shared neurons credited min_count times in both stages, smallest Hellinger "
                                      "distance first")
register_pruning_strategy("low_mass", _low_mass, needs="report_or_profile",
                          description="lowest credited mass first (never-credited neurons first)")
register_pruning_strategy("random", _random, needs="none", random=True,
                          description="uniformly at random with the seed: the baseline of every strategy")

# The built-in names (kept for code that lists them; the registry also holds the user's strategies).
STRATEGIES = tuple(_REGISTRY)
REPORT_STRATEGIES = tuple(name for name, s in _REGISTRY.items() if s.needs == "report")

__all__ = ["PruningStrategy", "RankingInput", "register_pruning_strategy", "pruning_strategies",
           "get_pruning_strategy", "is_random_strategy", "rank", "STRATEGIES", "REPORT_STRATEGIES"]
