"""Per-neuron significance: did a neuron's preferences change more than sampling explains?

**The statistic: a chi-square of homogeneity on the preference distributions.** For one neuron and one feature type,
stage A credited the neuron ``n_a`` times and stage B ``n_b`` times; ``p_a`` and ``p_b`` are its (mass-weighted)
preference distributions. Features expected fewer than ``min_expected`` (5) credits in the smaller stage under
the pooled distribution are pooled into one "other" category (it counts as a category when it expects at least
one credit, else it is left out and the rest renormalised; a stage with no mass left in the kept categories keeps
them at zero, so its credits all count against homogeneity), so the thousands of once-seen tokens do not swamp the
statistic, as they do a Hellinger distance, which saturates at 1 on sparse token distributions. Over the ``K``
categories left, Pearson's

    X^2 = n_a n_b / (n_a + n_b) * sum_f (p_a(f) - p_b(f))^2 / p(f),   p = (n_a p_a + n_b p_b) / (n_a + n_b),

has ``df = K - 1`` degrees of freedom: a chi-square with ``df`` under the null "A and B draw their credits from
one distribution", if the credits were independent and all weighed the same.

**Design effect (Rao & Scott 1981).** They are not: a text repeats its words, so a neuron's credits come in bursts
of one text, and credits carry different activations. Both inflate ``X^2`` by a factor ``D`` (the design effect)
without changing its shape much. ``p_a - p_b`` has the null variance ``D_a V / n_a + D_b V / n_b`` (``V`` the
multinomial one), so the comparison's design effect is ``D = w_a D_a + w_b D_b`` with ``w_a = n_b / (n_a + n_b)``
and ``w_b = n_a / (n_a + n_b)``: the noise comes mostly from the stage with fewer credits (helper 204: adding both
stages' estimates with equal weight flagged 14-26 of 60 reports of 500 vs 60 WikiText paragraphs under the null).

Each stage measures its own ``D_s`` from its two split halves (a text's half is drawn from its content, so copies
share one: :func:`hf_txray.hashes.text_halves`; example id parity in profiles saved before; every profile keeps them), in two parts that both have expectation ``D_s`` per degree of freedom: the same ``X^2`` between the halves
(``df_halves`` = categories less one), and one more degree of freedom, the chi-square of the neuron's odd-half
share of mass against the stage's (``n (m_odd / m - q)^2 / (q (1 - q))``). The second part sees what the first
cannot: a neuron credited 27 times in 2 texts of a stage has all its credits in one half (no split-half ``X^2``
at all, so the first part alone fell back to the stage's value of about 1.4 while the bursts made it about 13).
Per neuron the estimate rests on few degrees of freedom, and a pooled one (sum of the parts over sum of their
df, over all neurons of the stage: ``D_pooled_s``) ignores that some neurons burst more than others, so each
stage's estimate is moderated, as limma moderates variances (Smyth 2004), with ``d_0 = prior_df / 2`` degrees
of freedom for the pooled value:

    D_s = (d_0 D_pooled_s + X^2_halves_s + X^2_share_s) / (d_0 + df_halves_s + 1),   nu_s <= d_0 + df_halves_s + 1,

(``prior_df = 30`` in all, half per stage, so that a comparison of two equal stages weighs the pooled value as
one estimate of ``prior_df`` degrees of freedom). The design effect is read from how the texts differ, so
``nu_s`` is at most ``texts_s - 1``, and at most ``n_s / D_s - 1``, about the number of texts that carry the
neuron's ``n_s`` credits in bursts of ``D_s`` (a bursty neuron in a small stage is known from a handful of texts:
without this bound, simulated bursts, 400 vs 40 texts, flagged 4 of 12 null reports). ``D`` gets its degrees of
freedom by Satterthwaite's approximation (Satterthwaite 1946),

    nu = D^2 / ((w_a D_a)^2 / nu_a + (w_b D_b)^2 / nu_b),   and

    F = (X^2 / df) / D  ~  F(df, nu)

gives the p-value of "A and B differ more than sampling explains". The column keeps its name
``p_hellinger_<ft>``: it tests the change that the Hellinger column measures, with a statistic that does not
saturate. With 2 to 10 texts per stage an uncapped test flagged 10-13% of reports between two samples of one
corpus (bench/RESULTS.md, "with few texts"). Rows are tested when they have at least one credit in both stages
and ``df >= 1``; others get NaN.

No resampling: all neurons at once in a few sparse passes, deterministic, milliseconds per report. Changed neurons
are flagged with the Benjamini-Hochberg procedure (``scipy.stats.false_discovery_control``) over the tested neurons
of each feature type. Measured calibration and power: bench/RESULTS.md, "Calibration of the per-neuron test".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counts import as_number, check_count, check_number
from .errors import ConfigurationError
from .feature_table import FeatureTable
from .metrics import as_floats, sorted_union

# Rankings skip neurons credited fewer times than this in either stage. Measured on the demo (bench/RESULTS.md,
# "Split-half noise by credit count"): two samples of ONE stage's POS preferences differ by a Hellinger distance of
# 0.52 on average with 1-4 credits per sample, 0.36 with 5-9, 0.29 with 10-19 and 0.23 with 20-49; below 20 credits
# a stage's distribution is mostly sampling noise, and the noise shrinks slowly after, so 20 is where ranking starts.
DEFAULT_MIN_COUNT = 20


def check_min_count(min_count: object) -> int:
    """`min_count` as given, or a ConfigurationError: every per-neuron view that takes a credit floor checks it here."""
    return check_count("min_count", min_count, minimum=0)

MIN_EXPECTED = 5.0  # Cochran's rule for the chi-square approximation: >= 5 expected credits per category
PRIOR_DF = 30.0  # weight of the pooled design effects, in degrees of freedom, half per stage (bench/RESULTS.md)


def on_one_vocabulary(ta: FeatureTable, tb: FeatureTable) -> tuple[FeatureTable, FeatureTable]:
    """Two tables whose feature ids name the same values: each profile numbers its values in the order it first saw
    them (POS ``PROPN`` is 0 in one profile, ``ADJ`` in another), so two profiles' tables are remapped onto their
    united vocabulary before their ids are compared (helper 183: without it, PTB vs BBC flagged 539 neurons, not 74)."""
    if ta.vocab == tb.vocab:
        return ta, tb
    vocab = list(dict.fromkeys([*ta.vocab, *tb.vocab]))
    return ta.remapped(vocab), tb.remapped(vocab)


def check_alpha(alpha: object) -> float:
    """`alpha` as a plain float, or a ConfigurationError: a false discovery rate in (0, 1), a Python or numpy number
    (``compare`` refused ``np.float32(0.1)`` as "not a number in (0, 1)" where :func:`benjamini_hochberg` took it;
    the report saves it in JSON, which holds no numpy float32); a 0-d array or tensor too (:func:`as_number`)."""
    number = as_number(alpha)
    if number is None or not 0 < number < 1:
        raise ConfigurationError(f"alpha must be a number in (0, 1), got {alpha!r}.")
    return float(number)


def check_tested(tested: np.ndarray | None, num_rows: int) -> np.ndarray:
    """`tested` as a bool array of shape ``(num_rows,)`` (all rows when None), or a ConfigurationError."""
    if tested is None:
        return np.ones(num_rows, dtype=bool)
    tested = np.asarray(tested)
    if tested.dtype != bool or tested.shape != (num_rows,):
        raise ConfigurationError(f"tested must be a bool array of shape ({num_rows},), one flag per row, got "
                                 f"{tested.dtype} of shape {tested.shape}: pass e.g. (count_a > 0) & (count_b > 0).")
    return tested


@dataclass
class Homogeneity:
    """Per-row chi-square statistics of homogeneity between two tables (arrays of shape ``(num_rows,)``).

    Attributes:
        statistic (`np.ndarray`): Pearson's X^2 (NaN for rows not tested).
        df (`np.ndarray`): degrees of freedom, categories after pooling less one (0 for rows not tested).
        count_a, count_b (`np.ndarray`): credits per row in each table (of every row, tested or not).
    """

    statistic: np.ndarray
    df: np.ndarray
    count_a: np.ndarray
    count_b: np.ndarray


def homogeneity(ta: FeatureTable, tb: FeatureTable, num_rows: int, tested: np.ndarray | None = None,
                min_expected: float = MIN_EXPECTED) -> Homogeneity:
    """Pearson's chi-square of homogeneity per row between the mass-weighted distributions of two tables.

    Args:
        ta, tb (`FeatureTable`): two tables of one feature type (two profiles' ``tables[ft]``: their vocabularies are
            united first, as ``compare`` does).
        num_rows (`int`): rows (layers x neurons).
        tested (`np.ndarray` of bool, shape `(num_rows,)`, *optional*): rows to compute; defaults to all.
        min_expected (`float`, *optional*, defaults to 5): features expected fewer credits than this in the smaller
            table are pooled into one "other" category (see the module docstring).

    Returns:
        :class:`Homogeneity`.

    Raises:
        ConfigurationError: `tested` is not a bool array of shape `(num_rows,)` (0/1 integers were read as row
            indices, and every row came out untested).
    """
    tested = check_tested(tested, num_rows)
    min_expected = check_number("min_expected", min_expected, 0.0)  # its float: a 0-d tensor failed in numpy below
    ta, tb = on_one_vocabulary(ta, tb)
    keys = sorted_union(ta.keys(), tb.keys())
    columns = {}
    for side, table in (("a", ta), ("b", tb)):
        at = np.searchsorted(keys, table.keys())
        for name in ("count", "mass"):
            columns[name + side] = np.zeros(len(keys))
            columns[name + side][at] = getattr(table, name)
    rows = keys >> 32
    # every row's credits, tested or not (the rows left out read 0 credits, as if never credited; helper 183)
    counts = [np.bincount(rows, weights=columns[name], minlength=num_rows) for name in ("counta", "countb")]
    keep = tested[rows]
    rows = rows[keep]
    c = {name: values[keep] for name, values in columns.items()}

    def per_row(values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        if where is None:
            return np.bincount(rows, weights=values, minlength=num_rows)
        return np.bincount(rows[where], weights=values[where], minlength=num_rows)

    n_a, n_b = per_row(c["counta"]), per_row(c["countb"])
    n = n_a + n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a, p_b = c["massa"] / per_row(c["massa"])[rows], c["massb"] / per_row(c["massb"])[rows]
        # expected credits in the smaller stage, column * smaller / n, compared without dividing: counts are integers,
        # so "exactly 5" and an "other" category expecting exactly 1 credit hold (helper 331: summed float shares
        # read 0.9999999999999999, the category was dropped and the neuron came out untested)
        smaller = np.minimum(n_a, n_b)
        kept = (c["counta"] + c["countb"]) * smaller[rows] >= min_expected * n[rows]
        other_a, other_b = per_row(p_a, ~kept), per_row(p_b, ~kept)
        with_other = per_row(c["counta"] + c["countb"], ~kept) * smaller >= n
        # without an "other" category the kept features are renormalised to sum to 1
        scale_a = np.where(with_other | (other_a >= 1.0), 1.0, 1.0 / (1.0 - other_a))
        scale_b = np.where(with_other | (other_b >= 1.0), 1.0, 1.0 / (1.0 - other_b))
        p_a, p_b = p_a * scale_a[rows], p_b * scale_b[rows]
        pooled = (n_a[rows] * p_a + n_b[rows] * p_b) / n[rows]
        terms = np.where(kept & (pooled > 0), (p_a - p_b) ** 2 / pooled, 0.0)
        other_a, other_b = other_a * scale_a, other_b * scale_b
        other = (n_a * other_a + n_b * other_b) / n
        statistic = per_row(terms, kept) + np.where(with_other & (other > 0), (other_a - other_b) ** 2 / other, 0.0)
        statistic *= n_a * n_b / n
    df = np.bincount(rows[kept], minlength=num_rows) + with_other - 1
    ok = tested & (n_a > 0) & (n_b > 0) & (df >= 1)
    return Homogeneity(np.where(ok, statistic, np.nan), np.where(ok, df, 0).astype(np.int64), *counts)


def split_half_homogeneity(table: FeatureTable, num_rows: int, min_expected: float = MIN_EXPECTED) -> Homogeneity:
    """The chi-square of homogeneity between the two split halves (:func:`hf_txray.hashes.text_halves`) of one stage."""
    return homogeneity(table.half(False), table.half(True), num_rows, min_expected=min_expected)


@dataclass
class StageDesign:
    """One stage's split-half evidence on its design effect, per row (arrays of shape ``(num_rows,)``).

    Attributes:
        statistic (`np.ndarray`): the split-half ``X^2`` plus the chi-square of the row's odd-half share of mass
            (0 for rows without credits).
        df (`np.ndarray`): their degrees of freedom (``df_halves + 1`` for rows with credits, else 0).
        pooled (`float`): the stage's pooled design effect, ``sum statistic / sum df``, at least 1.
    """

    statistic: np.ndarray
    df: np.ndarray
    pooled: float


def half_share_chi_square(table: FeatureTable, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the chi-square (1 df) of the row's odd-half share of mass against the whole stage's share, and its df.

    With independent credits a row's ``n`` credits fall in the odd half as the stage's do; a text's burst puts them
    in one half, which inflates the statistic by the design effect even where the halves have too few credits for
    a split-half ``X^2`` of the feature distributions (helper 207: 27 credits from 2 of 60 texts).

    Returns:
        `tuple`: statistics and df (1 for rows with credits, else 0) of shape `(num_rows,)`; all 0 when one half is
        empty (then no row tells anything).
    """
    n = np.bincount(table.rows, weights=table.count, minlength=num_rows)
    total = float(table.mass.sum())
    q = float(table.mass_odd.sum()) / total if total > 0 else 0.0
    if not 0.0 < q < 1.0:
        return np.zeros(num_rows), np.zeros(num_rows, dtype=np.int64)
    mass = np.bincount(table.rows, weights=table.mass, minlength=num_rows)
    odd = np.bincount(table.rows, weights=table.mass_odd, minlength=num_rows)
    credited = (n > 0) & (mass > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(credited, n * (odd / mass - q) ** 2 / (q * (1.0 - q)), 0.0)
    return statistic, credited.astype(np.int64)


def stage_design(table: FeatureTable, num_rows: int, min_expected: float = MIN_EXPECTED) -> StageDesign:
    """A stage's split-half evidence on its design effect (see the module docstring): per row and pooled."""
    halves = split_half_homogeneity(table, num_rows, min_expected)
    share, share_df = half_share_chi_square(table, num_rows)
    statistic, df = np.nan_to_num(halves.statistic) + share, halves.df + share_df
    ok = df > 0
    pooled = max(1.0, float(statistic[ok].sum() / df[ok].sum())) if ok.any() else 1.0
    return StageDesign(statistic, df, pooled)


def dispersion(table: FeatureTable, num_rows: int, min_expected: float = MIN_EXPECTED) -> float:
    """A stage's pooled design effect: how much more its two halves differ than independent credits would.

    ``sum X^2 / sum df`` of :func:`stage_design` (split-half ``X^2`` and odd-half shares) over its rows, at least 1
    (a design effect in the sense of Rao & Scott, 1981: see the module docstring).

    Args:
        table (`FeatureTable`): one stage's table of one feature type, with its split-half sums.
        num_rows (`int`): rows (layers x neurons).
        min_expected (`float`, *optional*, defaults to 5): features expected fewer credits are pooled into one
            "other" category (see :func:`homogeneity`).

    Returns:
        `float`: the design effect (1.0 when no row qualifies or the table has no split-half sums).
    """
    if not table.has_noise:
        return 1.0
    return stage_design(table, num_rows, min_expected).pooled


def homogeneity_pvalues(ta: FeatureTable, tb: FeatureTable, num_rows: int, tested: np.ndarray,
                        min_expected: float = MIN_EXPECTED, prior_df: float = PRIOR_DF,
                        texts: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """P-values of "A and B differ more than sampling explains" per row: the moderated F test of the module doc.

    Args:
        ta, tb (`FeatureTable`): the two stages' tables of one feature type (vocabularies united first), with their
            split-half sums (``FeatureTable.has_noise``).
        num_rows (`int`): rows (layers x neurons).
        tested (`np.ndarray` of bool, shape `(num_rows,)`): rows to test (e.g. credited in both stages).
        min_expected (`float`, *optional*, defaults to 5): see :func:`homogeneity`.
        prior_df (`float`, *optional*, defaults to 30): weight of the pooled design effects in the neurons'
            moderated design effects, in degrees of freedom, half of it in each stage's.
        texts (`tuple[int, int]`, *optional*): the texts profiled in A and in B. A stage's design effect is read
            from how its texts differ, so it is known to no more degrees of freedom than ``texts_s - 1`` (with 2
            texts per stage, uncapped, 11% of neurons had p < 0.05 between two samples of one corpus); 0 or None:
            not recorded, no cap but the neurons' own.

    Returns:
        `tuple`: p-values of shape `(num_rows,)` (NaN for rows not tested) and the pooled design effects of A and B.

    Raises:
        ConfigurationError: `prior_df` not a number > 0, `texts` not two ints >= 0, or `tested` not a bool array of
            shape `(num_rows,)` (see :func:`homogeneity`).
    """
    from scipy.stats import f as f_distribution

    # 0: a neuron without split-half df had a design of 0 / 0; its float: a 0-d tensor failed in numpy below
    prior_df = check_number("prior_df", prior_df, 0.0, strict=True)
    if texts is not None and (len(texts) != 2 or any(isinstance(t, bool) or not isinstance(t, (int, np.integer))
                                                     or t < 0 for t in texts)):
        raise ConfigurationError(f"texts must be two ints >= 0 (the texts profiled in A and in B), got {texts!r}.")
    ta, tb = on_one_vocabulary(ta, tb)
    observed = homogeneity(ta, tb, num_rows, tested, min_expected)
    stages = [stage_design(t, num_rows, min_expected) for t in (ta, tb)]
    # the null variance of p_a - p_b is D_a V / n_a + D_b V / n_b: a stage's design effect weighs by the other's size
    n = np.maximum(observed.count_a + observed.count_b, 1)
    weights = (observed.count_b / n, observed.count_a / n)
    prior = prior_df / 2  # half per stage: two equal stages weigh the pooled values as prior_df df, as one estimate
    parts, known = [], []
    for stage, credits, weight, recorded in zip(stages, (observed.count_a, observed.count_b), weights,
                                                texts if texts is not None else (0, 0)):
        design = (prior * stage.pooled + stage.statistic) / (prior + stage.df)
        parts.append(weight * design)
        # known to no more df than the texts that carry the neuron's credits, about credits / design effect
        nu = np.minimum(prior + stage.df, np.maximum(credits / design - 1, 1))
        known.append(np.minimum(nu, max(recorded - 1, 1)) if recorded > 0 else nu)  # 0: not recorded (by hand)
    design = parts[0] + parts[1]
    df = np.maximum(observed.df, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nu = design ** 2 / (parts[0] ** 2 / known[0] + parts[1] ** 2 / known[1])  # Satterthwaite (1946)
        p = f_distribution.sf(observed.statistic / df / design, df, nu)
    return np.where(np.isnan(observed.statistic), np.nan, p), (stages[0].pooled, stages[1].pooled)


def benjamini_hochberg(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Flags of the Benjamini-Hochberg procedure at false discovery rate `alpha`; NaN p-values are never flagged.

    The step-up procedure of Benjamini & Hochberg (1995, "Controlling the False Discovery Rate: A Practical and
    Powerful Approach to Multiple Testing", JRSS B), as ``scipy.stats.false_discovery_control(method="bh")``.

    Args:
        p (`np.ndarray`, shape `(n,)`): p-values in [0, 1], NaN for untested.
        alpha (`float`, *optional*, defaults to 0.05): the false discovery rate, in (0, 1).

    Returns:
        `np.ndarray` of bool, shape `(n,)`: True where the hypothesis is rejected.

    Raises:
        ConfigurationError: `alpha` is not a number in (0, 1) (``alpha=5`` flagged every neuron, ``alpha=0`` those
            of p = 0), or `p` is not a 1-d array of p-values in [0, 1] (NaN allowed).
    """
    from scipy.stats import false_discovery_control

    alpha = check_alpha(alpha)
    p = as_floats(p, "p", "a 1-d array of p-values")  # a list was refused with numpy's "only integer scalar arrays"
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):  # NaN compares False: allowed, never flagged
        raise ConfigurationError(f"p must be a 1-d array of p-values in [0, 1] (NaN for untested), got shape "
                                 f"{p.shape} with values {p[(p < 0) | (p > 1)][:3] if p.ndim == 1 else '...'}.")
    flags = np.zeros(len(p), dtype=bool)
    valid = ~np.isnan(p)
    if valid.any():
        flags[valid] = false_discovery_control(p[valid], method="bh") <= alpha
    return flags
