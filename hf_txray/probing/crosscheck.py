"""Cross-checking probing with TX-Ray: do the neurons a probe relies on for a tag also *prefer* that tag?

For a POS tag, two top-k lists of the same neurons (same site, same layers): the probe's (by ``|weight|`` for the tag's
class) and TX-Ray's (by the neuron's preference ``p(tag) = mass(tag) / mass`` in a :class:`~hf_txray.Profile`, over
credited neurons). Their overlap is compared with what two random k-sets of the same pool share by chance:
``expected overlap = k^2 / N``, the lift over it, and the hypergeometric probability of an overlap at least as large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .. import metrics
from ..artifact import ValueEquality
from ..counts import check_count
from ..errors import ConfigurationError, IncompatibleProfilesError
from ..profile import Profile
from ..significance import DEFAULT_MIN_COUNT, check_min_count
from .extraction import WeightsFingerprint, weights_difference
from .pipeline import ProbingResult


@dataclass(eq=False)  # == by value (ValueEquality): the generated one raised on the table
class CrossCheck(ValueEquality):
    """Overlap of the probe's and TX-Ray's top-k neurons for one tag.

    Attributes:
        tag (`str`): the tag (a probe label and a profile feature value).
        k (`int`): size of each top list.
        num_neurons (`int`): the pool both lists are drawn from (neurons of the common layers).
        overlap (`int`): neurons in both lists.
        jaccard (`float`): overlap / size of the union.
        precision_at_k (`float`): overlap / k (share of the probe's top-k that TX-Ray also ranks top-k).
        expected_overlap (`float`): overlap of two random sets of the lists' sizes, ``len(a) len(b) / N``: ``k^2 / N``
            unless fewer than k neurons pass `min_count` (the TX-Ray list is then shorter, and so is this).
        lift (`float`): overlap / expected overlap.
        p_value (`float`): hypergeometric P(overlap >= observed) for random lists of the same two sizes.
        table (`pd.DataFrame`): the union of both lists: ``layer``, ``neuron``, ``probe_rank``, ``probe_weight``,
            ``txray_rank``, ``txray_preference``, ``txray_mass``, ``in_both``.
    """

    tag: str
    k: int
    num_neurons: int
    overlap: int
    jaccard: float
    precision_at_k: float
    expected_overlap: float
    lift: float
    p_value: float
    table: pd.DataFrame

    def summary(self) -> dict[str, float | int | str]:
        return {"tag": self.tag, "k": self.k, "num_neurons": self.num_neurons, "overlap": self.overlap,
                "jaccard": self.jaccard, "precision_at_k": self.precision_at_k,
                "expected_overlap": self.expected_overlap, "expected_precision": self.expected_overlap / self.k,
                "lift": self.lift, "p_value": self.p_value}


def overlap_p_value(overlap: int, k: int, n: int, m: int | None = None) -> float:
    """P(X >= overlap) for X ~ Hypergeometric(N=n, K=k, draws=m): a random k-subset and a random m-subset (m = k
    by default) of n items."""
    from scipy.stats import hypergeom

    if overlap <= 0:
        return 1.0
    return float(min(1.0, hypergeom.sf(overlap - 1, n, k, k if m is None else m)))


def txray_preferences(profile: Profile, tag: str, feature_type: str = "pos",
                      layers: Sequence[int] | None = None) -> pd.DataFrame:
    """Each neuron's TX-Ray preference for `tag`: ``layer``, ``neuron``, ``preference`` (p(tag)), ``mass`` (of the
    tag), ``count`` (credited positions of the neuron, any feature)."""
    table = profile._table(feature_type)
    if tag not in table.vocab:
        raise ConfigurationError(f"{feature_type} value {tag!r} never occurs in profile {profile.stage!r}; values: "
                                 f"{sorted(table.vocab)[:30]}.")
    fid = table.vocab.index(tag)
    tag_mass = np.zeros(profile.num_rows)
    hit = table.feature_ids == fid
    np.add.at(tag_mass, table.rows[hit], table.mass[hit])
    total = metrics.row_totals(table.rows, table.mass, profile.num_rows)
    preference = np.divide(tag_mass, total, out=np.zeros_like(tag_mass), where=total > 0)
    frame = pd.DataFrame({
        "layer": np.repeat(np.asarray(profile.layers, np.int64), profile.num_neurons),
        "neuron": np.tile(np.arange(profile.num_neurons, dtype=np.int64), len(profile.layers)),
        "preference": preference, "mass": tag_mass, "count": profile.neuron_count.reshape(-1),
    })
    if layers is not None:
        frame = frame[frame["layer"].isin(list(layers))]
    return frame.reset_index(drop=True)


def _check_same_weights(result: ProbingResult, profile: Profile) -> None:
    """Refuse a profile of other weights (or another stack) than the probe's (helper 151: a random model of the same
    widths scored a higher overlap than the probed model's own profile). Both record the sample hash of the weights
    of the stack read (a single-stack model's body, heads left out; an encoder-decoder's profiled stack) and, for an
    encoder-decoder, of its two stacks (``model_weights_sample_hash``, heads left out): a decoder stack reads its
    encoder's output, so two models differing only in their encoders are told apart (helper 157). A hash either side
    did not record (saved before it was) is not compared."""
    meta = result.meta
    runtime = (profile.meta.provenance or {}).get("runtime", {})
    stack = profile.meta.config.get("stack")
    if meta.stack and stack and meta.stack != stack:
        raise IncompatibleProfilesError(
            f"The probe {meta.name!r} read the {meta.stack} stack and the profile {profile.stage!r} the {stack} "
            "stack: their neurons with the same numbers are not the same units. Profile and probe one stack.")
    if (stack is None) != (meta.stack is None):
        return  # one side predates the stack's record: its hashes cover other modules
    # a stack profile records its stack's hash beside its two stacks', as a stack probe does
    profiled = WeightsFingerprint(runtime.get("stack_weights_sample_hash" if stack else "weights_sample_hash"),
                                  runtime.get("dtype"), runtime.get("model_weights_sample_hash"))
    difference = weights_difference(meta, profiled, stack)
    if difference:
        dtypes = f" (weights in {meta.weights_dtype} and {runtime.get('dtype')})" if (
            meta.weights_dtype != str(runtime.get("dtype")).removeprefix("torch.")) else ""
        raise IncompatibleProfilesError(
            f"The probe {meta.name!r} was trained on other weights than the profile {profile.stage!r} read "
            f"({difference}){dtypes}: their neurons with the same numbers do not compute the same values. Profile "
            "and probe the same model.")


def crosscheck(result: ProbingResult, profile: Profile, tag: str, k: int = 20, *, feature_type: str = "pos",
               min_count: int = DEFAULT_MIN_COUNT) -> CrossCheck:
    """Compare the probe's top-k neurons for `tag` with the k neurons whose TX-Ray preference for `tag` is highest.

    Args:
        result (`ProbingResult`): a probe of the property (e.g. POS) on the model.
        profile (`Profile`): a TX-Ray profile of the same model and site (any corpus).
        tag (`str`): a label of the probe that is also a value of `feature_type` in the profile, e.g. ``"NOUN"``.
        k (`int`, *optional*, defaults to 20): size of each top list.
        feature_type (`str`, *optional*, defaults to `"pos"`): the profile's feature type holding the tags.
        min_count (`int`, *optional*, defaults to 20): TX-Ray ranks only neurons credited at least this often, as
            the report's rankings do (preferences of rarely credited neurons are noise: with 1, neurons credited a
            few times, all with p(tag) = 1, topped the list).

    Returns:
        `CrossCheck`.

    Raises:
        IncompatibleProfilesError: different site, stack or neuron count, other weights (their sample hashes,
            where both recorded them), or no common layer.
        ConfigurationError: `tag` unknown to the probe or the profile, bad `k`.

    Example:
        ```python
        >>> check = crosscheck(result, profile, "DET", k=50)   # probe_neurons' example; 3000 PTB sentences' profile
        >>> check.precision_at_k, check.expected_overlap / check.k, check.p_value   # rounded here (2026-12-06)
        (0.16, 0.016, 8.8e-07)
        >>> crosscheck(result, profile, "NOUN", k=50).p_value   # NOUN: 3 common neurons, 0.8 expected by chance
        0.047
        ```
    """
    meta = result.meta
    if profile.meta.site != meta.site or profile.num_neurons != meta.width:
        raise IncompatibleProfilesError(
            f"The probe reads the {meta.site!r} site ({meta.width} neurons per layer) but the profile holds the "
            f"{profile.meta.site!r} site ({profile.num_neurons}); profile and probe the same site of the same model.")
    _check_same_weights(result, profile)
    layers = sorted(set(meta.layers) & set(profile.layers))
    if not layers:
        raise IncompatibleProfilesError(f"No common layer: the probe read layers {meta.layers}, the profile "
                                        f"{profile.layers}.")
    if tag not in meta.label_names:
        raise ConfigurationError(f"{tag!r} is not a label of the probe; labels: {meta.label_names}.")
    k = check_count("k", k)
    n = len(layers) * meta.width
    k = min(k, n)
    columns, weights = result.probe.class_ranking(tag)
    probe_frame = pd.DataFrame({"layer": np.asarray(meta.layers, np.int64)[columns // meta.width],
                                "neuron": columns % meta.width, "probe_weight": weights})
    probe_frame = probe_frame[probe_frame["layer"].isin(layers)].reset_index(drop=True)
    probe_frame["probe_rank"] = np.arange(len(probe_frame))
    prefs = txray_preferences(profile, tag, feature_type, layers)
    eligible = prefs[prefs["count"] >= check_min_count(min_count)]
    eligible = eligible.sort_values(["preference", "mass", "layer", "neuron"], ascending=[False, False, True, True])
    eligible = eligible.reset_index(drop=True)
    eligible["txray_rank"] = np.arange(len(eligible))
    top_probe = probe_frame.head(k)
    top_txray = eligible.head(k).rename(columns={"preference": "txray_preference", "mass": "txray_mass"})
    key = lambda f: set(zip(f["layer"].tolist(), f["neuron"].tolist()))  # noqa: E731
    a, b = key(top_probe), key(top_txray)
    both = a & b
    union = sorted(a | b)
    table = pd.DataFrame(union, columns=["layer", "neuron"])
    table = table.merge(probe_frame[["layer", "neuron", "probe_rank", "probe_weight"]], how="left")
    table = table.merge(prefs.rename(columns={"preference": "txray_preference", "mass": "txray_mass"})
                        [["layer", "neuron", "txray_preference", "txray_mass"]], how="left")
    table = table.merge(eligible[["layer", "neuron", "txray_rank"]], how="left")
    table["in_probe_top"] = [(x, y) in a for x, y in zip(table["layer"], table["neuron"])]
    table["in_txray_top"] = [(x, y) in b for x, y in zip(table["layer"], table["neuron"])]
    table["in_both"] = table["in_probe_top"] & table["in_txray_top"]
    table = table.sort_values(["in_both", "probe_rank"], ascending=[False, True]).reset_index(drop=True)
    table["txray_rank"] = table["txray_rank"].astype("Int64")
    expected = len(a) * len(b) / n
    return CrossCheck(tag, k, n, len(both), len(both) / len(a | b) if a | b else 0.0, len(both) / k, expected,
                      len(both) / expected if expected else float("nan"), overlap_p_value(len(both), len(a), n, len(b)),
                      table)


def crosscheck_tags(result: ProbingResult, profile: Profile, tags: Sequence[str] | None = None, k: int = 20, *,
                    feature_type: str = "pos", min_count: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
    """:func:`crosscheck` for several tags (default: every probe label the profile also has), one row per tag.

    Example:
        ```python
        >>> crosscheck_tags(result, profile, k=50).sort_values("lift", ascending=False).head()
        ```
    """
    vocab = set(profile._table(feature_type).vocab)
    tags = [t for t in result.meta.label_names if t in vocab] if tags is None else list(tags)
    if not tags:
        raise ConfigurationError("No tag is both a probe label and a profile feature value.")
    return pd.DataFrame([crosscheck(result, profile, t, k, feature_type=feature_type,
                                    min_count=min_count).summary() for t in tags])
