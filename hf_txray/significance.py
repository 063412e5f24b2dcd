"""Per-neuron significance: did a neuron's preferences change more than sampling explains?

**Null model (parametric bootstrap from the pooled credits).** For one neuron and one feature type, pool the
credits of stages A and B: feature f was credited ``c(f)`` times with total activation ``mass(f)`` and total squared
activation ``mass_sq(f)``. Under the null hypothesis both stages draw their credits from this pooled distribution:
stage A draws ``n_a`` credits and stage B ``n_b`` (each stage's own credit count for this neuron and feature type).
Each credit's feature is drawn with the pooled frequencies ``c(f) / (n_a + n_b)``, and because preference
distributions are *mass*-weighted each credit also carries an activation: a credit of f carries the activation of a
gamma distribution with the pooled mean and variance of f's credit activations (from ``mass`` and ``mass_sq``), so
k credits of f carry Gamma(k * alpha_f, theta_f) with alpha_f = mean^2 / var and theta_f = var / mean (a constant
k * mean when all of f's credits had one activation). The individual activations are not kept by a profile (memory
would grow with the corpus), so the gamma matching the first two moments stands in for them. The statistic is the
Hellinger distance between the two mass-weighted distributions, observed vs. ``num_resamples`` null draws;
``p = (1 + #{H_null >= H_observed}) / (num_resamples + 1)`` (Davison & Hinkley 1997, eq. 4.11), so the smallest
possible p-value is ``1 / (num_resamples + 1)``.

**Credits are not independent.** A text repeats its words, so a neuron's credits come in bursts of one text, and
the null above (independent credits) would call a third of the neurons "changed" between two random halves of one
corpus. Each stage's design effect (:func:`dispersion`: how much more the stage's two interleaved halves differ than
independent credits at their counts would) scales its credit counts down, ``n_effective = n / dispersion``, before
the draws. Measured calibration: bench/RESULTS.md, "Calibration of the per-neuron test".

All neurons are resampled at once (one searchsorted over all pooled entries per resample), seeded with
``numpy.random.SeedSequence([seed, feature type index])``. Changed neurons are flagged with the Benjamini-Hochberg
procedure (``scipy.stats.false_discovery_control``) over the tested neurons of each feature type.
"""

from __future__ import annotations

import numpy as np

from .accumulators import reduce_by_key
from .profile import FeatureTable

MAX_DRAWS_PER_CHUNK = 1 << 22  # credits drawn per vectorised step: bounds memory to ~100 MB


def pooled_entries(ta: FeatureTable, tb: FeatureTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pooled (row, feature) entries of two tables on one vocabulary: keys, count, mass, mass_sq (sorted by key)."""
    keys = np.concatenate([ta.keys(), tb.keys()])
    keys_u, mass, count = reduce_by_key(keys, np.concatenate([ta.mass, tb.mass]), np.concatenate([ta.count, tb.count]))
    _, mass_sq, _ = reduce_by_key(keys, np.concatenate([ta.mass_sq, tb.mass_sq]), np.zeros(len(keys), dtype=np.int64))
    return keys_u, count, mass, mass_sq


def gamma_parameters(count: np.ndarray, mass: np.ndarray, mass_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry: the mean and variance of one credit's activation (variance 0 when all credits were equal)."""
    mean = mass / count
    var = np.maximum(mass_sq / count - mean * mean, 0.0)
    var = np.where(var > 1e-12 * mean * mean, var, 0.0)  # rounding noise of equal activations
    return mean, var


def draw_mass(rng: np.random.Generator, k: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Total activation of `k` credits per entry: Gamma(k mean^2/var, var/mean), or k * mean when var == 0."""
    out = k * mean
    spread = (k > 0) & (var > 0)
    shape = k[spread] * mean[spread] ** 2 / var[spread]
    out[spread] = rng.gamma(shape, var[spread] / mean[spread])
    return out


def resampled_pvalues(ta: FeatureTable, tb: FeatureTable, num_rows: int, observed: np.ndarray, tested: np.ndarray,
                      num_resamples: int = 1000, seed: int = 0, dispersion: tuple[float, float] = (1.0, 1.0)
                      ) -> np.ndarray:
    """P-values of "A and B differ more than sampling explains" for every tested row, vectorised over rows.

    Args:
        ta, tb (`FeatureTable`): the two stages' tables of one feature type, remapped to one vocabulary, with
            their noise columns (``mass_sq``).
        num_rows (`int`): rows (layers x neurons).
        observed (`np.ndarray` of shape `(num_rows,)`): the observed Hellinger distance per row.
        tested (`np.ndarray` of bool, shape `(num_rows,)`): rows to test (credited in both stages).
        num_resamples (`int`, *optional*, defaults to 1000): null draws per row.
        seed (`int` or `Sequence[int]`, *optional*, defaults to 0): seeds ``numpy.random.default_rng``.
        dispersion (`tuple[float, float]`, *optional*): each stage's design effect (see :func:`dispersion`): a
            stage draws ``round(n / dispersion)`` credits (at least 1) instead of its `n`.

    Returns:
        `np.ndarray` of shape `(num_rows,)`: p-values, NaN for untested rows.
    """
    p = np.full(num_rows, np.nan)
    if not tested.any() or num_resamples < 1:
        return p
    exceed = np.zeros(num_rows, dtype=np.int64)
    for null in _null_distances(ta, tb, num_rows, tested, num_resamples, np.random.default_rng(seed), dispersion):
        exceed += (null >= observed[None, :] - 1e-9).sum(axis=0)  # ties (e.g. one-feature neurons) count
    p[tested] = (1.0 + exceed[tested]) / (num_resamples + 1.0)
    return p


def dispersion(table: FeatureTable, num_rows: int, num_resamples: int = 20, seed: int = 0,
               min_count: int = 2) -> float:
    """A stage's design effect: how much more its two interleaved halves differ than independent credits would.

    Credits are not independent: a text repeats its words, so a neuron's credits come in bursts of one text. Both
    halves (even / odd example ids) of one stage are samples of the same distribution, so their squared Hellinger
    distances measure the real sampling noise; the same null as the test, drawn at the halves' own counts, gives
    what independent credits would produce. Their ratio (sums over rows with at least `min_count` credits in each
    half, at least 1) scales the credit counts of the test down: ``n_effective = n / dispersion``.

    Returns:
        `float`: the design effect (1.0 when no row qualifies or the table has no split-half sums).
    """
    if not table.has_noise:
        return 1.0
    even, odd = table.half(False), table.half(True)
    count_even = np.bincount(even.rows, weights=even.count, minlength=num_rows)
    count_odd = np.bincount(odd.rows, weights=odd.count, minlength=num_rows)
    rows = (count_even >= min_count) & (count_odd >= min_count)
    if not rows.any():
        return 1.0
    pe = _probabilities(even, num_rows)
    po = _probabilities(odd, num_rows)
    observed = 1.0 - np.bincount(*_overlap(even, pe, odd, po), minlength=num_rows)
    null = np.zeros(num_rows)
    for draws in _null_distances(even, odd, num_rows, rows, num_resamples, np.random.default_rng(seed)):
        null += (draws ** 2).sum(axis=0)
    expected = null[rows].sum() / num_resamples
    return max(1.0, float(np.clip(observed[rows], 0, 1).sum() / expected)) if expected > 0 else 1.0


def _probabilities(table: FeatureTable, num_rows: int) -> np.ndarray:
    totals = np.bincount(table.rows, weights=table.mass, minlength=num_rows)
    return np.where(totals[table.rows] > 0, table.mass / np.maximum(totals[table.rows], 1e-300), 0.0)


def _overlap(x: FeatureTable, px: np.ndarray, y: FeatureTable, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    common, ix, iy = np.intersect1d(x.keys(), y.keys(), assume_unique=True, return_indices=True)
    return common >> 32, np.sqrt(px[ix] * py[iy])


def _null_distances(ta: FeatureTable, tb: FeatureTable, num_rows: int, tested: np.ndarray, num_resamples: int,
                    rng: np.random.Generator, dispersion: tuple[float, float] = (1.0, 1.0)):
    """Null Hellinger distances, in chunks of shape ``(reps, num_rows)`` (rows not tested are 0)."""
    keys, count, mass, mass_sq = pooled_entries(ta, tb)
    rows = keys >> 32
    keep = tested[rows]
    rows, count, mass, mass_sq = rows[keep], count[keep], mass[keep], mass_sq[keep]
    cdf = _row_cdf(rows, count, num_rows)
    mean, var = gamma_parameters(count, mass, mass_sq)
    tested_rows = np.nonzero(tested)[0]
    draws = {}
    for side, table, scale in (("a", ta, dispersion[0]), ("b", tb, dispersion[1])):
        n = np.bincount(table.rows, weights=table.count, minlength=num_rows)[tested_rows]
        draws[side] = np.repeat(tested_rows, np.maximum(np.rint(n / scale), 1).astype(np.int64))
    chunk = max(1, MAX_DRAWS_PER_CHUNK // max(len(draws["a"]) + len(draws["b"]), len(rows), 1))
    for start in range(0, num_resamples, chunk):
        reps = min(chunk, num_resamples - start)
        side = {s: _draw_stage(rng, cdf, d, reps, rows, mean, var, num_rows) for s, d in draws.items()}
        overlap = np.bincount((rows + np.arange(reps)[:, None] * num_rows).ravel(),
                              weights=np.sqrt(side["a"] * side["b"]).ravel(), minlength=reps * num_rows)
        yield np.sqrt(np.clip(1.0 - overlap.reshape(reps, num_rows), 0.0, 1.0))


def _row_cdf(rows: np.ndarray, count: np.ndarray, num_rows: int) -> np.ndarray:
    """``row + (cumulative count within the row) / (row's count)`` per entry: one sorted array for all rows, whose
    last entry per row is exactly ``row + 1``, so ``searchsorted(cdf, row + u, "right")`` draws within the row."""
    totals = np.bincount(rows, weights=count, minlength=num_rows)
    cumulative = np.cumsum(count)
    before = np.r_[0, cumulative[:-1]]
    first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, dtype=bool)
    row_start = np.maximum.accumulate(np.where(first, before, 0))
    return rows + (cumulative - row_start) / totals[rows]


def _draw_stage(rng, cdf, draw_rows, reps, rows, mean, var, num_rows) -> np.ndarray:
    """One stage's resampled probabilities per pooled entry, shape ``(reps, entries)``."""
    num_entries = len(rows)
    u = rng.random((reps, len(draw_rows))) + draw_rows[None, :]
    entry = np.minimum(np.searchsorted(cdf, u, side="right"), num_entries - 1)  # u < row + 1 always: a guard only
    k = np.bincount((entry + np.arange(reps)[:, None] * num_entries).ravel(),
                    minlength=reps * num_entries).reshape(reps, num_entries)
    m = draw_mass(rng, k.ravel().astype(np.float64), np.tile(mean, reps), np.tile(var, reps)).reshape(reps, num_entries)
    offsets = (rows + np.arange(reps)[:, None] * num_rows).ravel()
    totals = np.bincount(offsets, weights=m.ravel(), minlength=reps * num_rows).reshape(reps, num_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals[:, rows] > 0, m / totals[:, rows], 0.0)


def benjamini_hochberg(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Flags of the Benjamini-Hochberg procedure at false discovery rate `alpha`; NaN p-values are never flagged."""
    from scipy.stats import false_discovery_control

    flags = np.zeros(len(p), dtype=bool)
    valid = ~np.isnan(p)
    if valid.any():
        flags[valid] = false_discovery_control(p[valid], method="bh") <= alpha
    return flags
