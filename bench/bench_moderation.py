"""Moderation of the per-neuron design effects (helper 245): fixed prior df against limma's estimated and robust ones.

    python bench/bench_moderation.py [--texts 1200] [--sizes 40,300] [--reps 60] [--power-reps 20] [--noise 0.03,0.1]
        [--cache moderation.npz] [--data ../shared/data/wikitext-2/valid.txt]
    python bench/bench_moderation.py --synthetic

Credits as in bench_heavy_neurons.py (MiniLM, MLP site, random WikiText-2 validation paragraphs), taken once from the
model and once from each perturbed copy (`--noise`: Gaussian noise of that many standard deviations of each encoder
weight matrix added to it). Null reports: two disjoint random samples of n paragraphs through the model. Power
reports: sample A through the model, a disjoint sample B through a perturbed copy. Each report is tested as
`significance.homogeneity_pvalues(..., texts=(n, n))` tests it, with each stage's per-neuron design effects
moderated four ways: "fixed" (the library: the stage's pooled value with PRIOR_DF / 2 prior df; checked against
`homogeneity_pvalues` on every report), "estimated" (scale and prior df fitted to the stage's neurons by the moments
of their log design effects, Smyth 2004, limma's fitFDist), "robust" (the same from Winsorized moments, outlying
neurons given fewer prior df, Phipson et al. 2016, limma's fitFDistRobustly) and "binned" (fitFDist within bins of
log2 credits, merged from the heaviest down to >= 40 neurons). The tables give, per feature type and bin of the
smaller credit count, the share of tested neurons with p < 0.05 and p < 0.001 (null) and the share with p < 0.05
and flagged by Benjamini-Hochberg at 0.05 (power).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_heavy_neurons as heavy  # noqa: E402
from hf_txray import significance  # noqa: E402

BINS = [1, 20, 100, 300, 1000, 10**9]
MODERATIONS = ("fixed", "estimated", "robust", "binned")
BINNED_UNITS = 40  # "binned": log2 credit bins merged from the heaviest down to at least this many rows

WINSOR_TAILS = (0.05, 0.1)  # Phipson et al. (2016): the lower 5% and upper 10% of the log design effects Winsorized


def trigamma_inverse(x: float) -> float:
    """The y > 0 with trigamma(y) = x: Newton's method on 1 / trigamma, which is convex and nearly linear, so the
    steps from y = 0.5 + 1 / x converge monotonically (Smyth 2004)."""
    from scipy.special import polygamma

    if x > 1e7:
        return 1.0 / np.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(60):
        tri = float(polygamma(1, y))
        step = tri * (1.0 - tri / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-10:
            break
    return y


def _f_quantile(df1: float, df2: float, probabilities: np.ndarray, upper: bool, log: bool = False
                     ) -> np.ndarray:
    """Quantiles of F(df1, df2) (chi2(df1) / df1 when df2 is infinite) at lower or upper tail `probabilities`."""
    from scipy.stats import chi2, f as f_distribution

    if np.isinf(df2):
        return (chi2.isf(probabilities, df1) if upper else chi2.ppf(probabilities, df1)) / df1
    return f_distribution.isf(probabilities, df1, df2) if upper else f_distribution.ppf(probabilities, df1, df2)


def _log_f_tail(values: np.ndarray, df1: float, df2: float) -> np.ndarray:
    """log P(F > values) for F(df1, df2) (chi2(df1) / df1 when df2 is infinite)."""
    from scipy.stats import chi2, f as f_distribution

    return chi2.logsf(values * df1, df1) if np.isinf(df2) else f_distribution.logsf(values, df1, df2)


def _winsorized_log_moments(df1: float, df2: float) -> tuple[float, float]:
    """Mean and variance of log F(df1, df2) Winsorized at WINSOR_TAILS, by 128-point Gauss-Legendre quadrature on
    the scale F / (1 + F) between the two quantiles (Phipson et al. 2016)."""
    from scipy.stats import chi2, f as f_distribution

    low, high = WINSOR_TAILS
    fq = np.array([_f_quantile(df1, df2, np.array([low]), False)[0],
                   _f_quantile(df1, df2, np.array([high]), True)[0]])
    zq, q = np.log(fq), fq / (1 + fq)
    nodes, weights = np.polynomial.legendre.leggauss(128)
    nodes, weights = q[0] + (q[1] - q[0]) * (nodes + 1) / 2, weights / 2
    values = nodes / (1 - nodes)
    density = (chi2.pdf(values * df1, df1) * df1 if np.isinf(df2) else f_distribution.pdf(values, df1, df2))
    density = density / (1 - nodes) ** 2
    z, width, tails = np.log(values), q[1] - q[0], np.array([low, high])
    mean = width * np.sum(weights * density * z) + np.sum(zq * tails)
    variance = width * np.sum(weights * density * (z - mean) ** 2) + np.sum((zq - mean) ** 2 * tails)
    return float(mean), float(variance)


def fit_prior(statistic: np.ndarray, df: np.ndarray, robust: bool = False) -> tuple[float, np.ndarray]:
    """The scaled inverse chi-square prior of per-row design effects ``statistic / df`` (each a scaled
    ``F(df, d_0)`` draw under it): scale ``s_0^2`` and prior df ``d_0`` by the moments of their logs (Smyth 2004,
    limma's fitFDist); `robust`: by the moments of the Winsorized logs, and each row's own prior df, smaller the
    more it is an outlier above the others (Phipson, Lee, Majewski, Alexander, Smyth 2016).

    Args:
        statistic, df (`np.ndarray`): chi-square statistics and their df (> 0) of the rows that have some.

    Returns:
        `tuple`: the scale and the prior df of each row (``inf``: the scale alone; all equal unless `robust`).
    """
    from scipy.optimize import brentq
    from scipy.special import digamma, polygamma
    from scipy.stats import rankdata, trim_mean

    n = len(df)
    if n < 2:
        return (float(statistic.sum() / df.sum()) if n else 1.0), np.full(n, np.inf)
    x = statistic / df
    median = float(np.median(x))
    # limma floors at 1e-5 x the median; with 1-df rows (the share term alone) that cut 0.2% of the values and took
    # the prior df of a d_0 = 10 sample to 13.9 (1e-12: 10.9)
    x = np.maximum(x, 1e-12 * (median if median > 0 else 1.0))
    e = np.log(x) - digamma(df / 2) + np.log(df / 2)
    excess = float(e.var(ddof=1)) - float(np.mean(polygamma(1, df / 2)))
    if excess <= 0:
        return float(statistic.sum() / df.sum()), np.full(n, np.inf)
    d0 = 2 * trigamma_inverse(excess)
    scale = float(np.exp(e.mean() + digamma(d0 / 2) - np.log(d0 / 2)))
    if not robust:
        return scale, np.full(n, d0)
    # robust: every row's value moved to the quantile it has, under the fit so far, of F(max df, d0)
    df1 = float(df.max())
    short = df < df1
    if short.any():
        from scipy.stats import f as f_distribution

        ratio = x[short] / scale
        upper = f_distribution.logsf(ratio, df[short], d0)
        lower = f_distribution.logcdf(ratio, df[short], d0)
        moved = np.where(upper < lower, f_distribution.isf(np.exp(upper), df1, d0),
                         f_distribution.ppf(np.exp(lower), df1, d0))
        x = x.copy()
        x[short] = np.maximum(moved, 1e-300) * scale
    z = np.log(x)
    trend = float(trim_mean(z, WINSOR_TAILS[1]))
    residual = z - trend
    bounds = np.quantile(residual, [WINSOR_TAILS[0], 1 - WINSOR_TAILS[1]])
    winsorized = np.clip(residual, *bounds)
    w_mean, w_var = float(winsorized.mean()), float(winsorized.var(ddof=1))

    def gap(t: float) -> float:  # t = d / (1 + d) in [0, 1]: log of observed over theoretical Winsorized variance
        return np.log(w_var / _winsorized_log_moments(df1, t / (1 - t) if t < 1 else np.inf)[1])

    if gap(1.0) <= 0:
        d_robust = np.inf
    else:
        low = d0 / (1 + d0)
        d_robust = d0 if gap(low) >= 0 else (lambda t: t / (1 - t))(brentq(gap, low, 1.0, xtol=1e-10))
    centre = trend + w_mean - _winsorized_log_moments(df1, d_robust)[0]
    scale = float(np.exp(centre))
    ratios = np.exp(z - centre)
    log_tail = _log_f_tail(ratios, df1, d_robust)
    log_empirical = np.log(n - rankdata(ratios) + 0.5) - np.log(n)
    log_not_outlier = np.minimum(log_tail - log_empirical, 0.0)
    if not (log_not_outlier < 0).any():
        return scale, np.full(n, d_robust)
    not_outlier = np.exp(log_not_outlier)
    if np.isinf(d_robust):  # no excess spread among the others: outliers get a share of the pooled df
        shrunk = np.where(not_outlier < 1, not_outlier * n * df1, np.inf)
        order = np.argsort(log_tail)
        shrunk[order] = np.maximum.accumulate(shrunk[order])
        return scale, shrunk
    lowest = float(log_tail.min())
    if lowest == -np.inf:
        d_outlier = 0.0
    else:  # the prior df under which the largest ratio is the median
        d_outlier = np.log(0.5) / lowest * d_robust
        d_outlier = np.log(0.5) / float(_log_f_tail(np.array([ratios.max()]), df1, d_outlier)[0]) * d_outlier
    shrunk = not_outlier * d_robust + (1 - not_outlier) * d_outlier
    order = np.argsort(log_tail, kind="stable")  # monotone in the tail probability
    ordered = shrunk[order]
    running = np.cumsum(ordered) / np.arange(1, n + 1)
    lowest_mean = int(np.argmin(running))
    ordered[:lowest_mean + 1] = running[lowest_mean]
    shrunk[order] = np.maximum.accumulate(ordered)
    return scale, shrunk


def stage_prior(stage: significance.StageDesign, credits: np.ndarray, moderation: str
                ) -> tuple[np.ndarray | float, np.ndarray]:
    """Scale and per-row prior df of one stage's design effects: the library's (pooled value, PRIOR_DF / 2),
    fitted to the stage's rows (estimated, robust), or fitted per bin of the rows' credits (binned)."""
    ok = stage.df > 0
    if moderation == "fixed":
        return stage.pooled, np.full(len(stage.df), significance.PRIOR_DF / 2)
    if moderation in ("estimated", "robust"):
        scale, fitted = fit_prior(stage.statistic[ok], stage.df[ok].astype(float), robust=moderation == "robust")
        prior = np.full(len(stage.df), fitted.max() if len(fitted) else np.inf)
        prior[ok] = fitted
        return max(1.0, scale), prior
    bins = np.floor(np.log2(np.maximum(credits, 1))).astype(int)
    scale, prior = np.full(len(credits), stage.pooled), np.full(len(credits), np.inf)
    groups, current = [], []
    for edge in sorted(set(bins[ok]), reverse=True):
        current.append(edge)
        if (ok & np.isin(bins, current)).sum() >= BINNED_UNITS:
            groups, current = groups + [current], []
    if current:
        groups = groups[:-1] + [groups[-1] + current] if groups else [current]
    for group in groups:
        rows = ok & np.isin(bins, group)
        s, d = fit_prior(stage.statistic[rows], stage.df[rows].astype(float))
        scale[rows], prior[rows] = max(1.0, s), d
    return scale, prior


def moderated_pvalues(observed: significance.Homogeneity, stages, n: int, moderation: str) -> np.ndarray:
    """`homogeneity_pvalues`' F test with the stages' design effects moderated as `moderation` says (its formula,
    repeated here with the prior swapped; "fixed" is checked against the library on every report)."""
    from scipy.stats import f as f_distribution

    total = np.maximum(observed.count_a + observed.count_b, 1)
    parts, known = [], []
    for stage, credits, weight in zip(stages, (observed.count_a, observed.count_b),
                                      (observed.count_b / total, observed.count_a / total)):
        scale, prior = stage_prior(stage, credits, moderation)
        with np.errstate(invalid="ignore"):
            design = np.where(np.isinf(prior), scale, (prior * scale + stage.statistic) / (prior + stage.df))
        parts.append(weight * design)
        nu = np.minimum(prior + stage.df, np.maximum(credits / design - 1, 1))
        known.append(np.minimum(nu, max(n - 1, 1)))
    design = parts[0] + parts[1]
    df = np.maximum(observed.df, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nu = design ** 2 / (parts[0] ** 2 / known[0] + parts[1] ** 2 / known[1])
        p = f_distribution.sf(observed.statistic / df / design, df, nu)
    return np.where(np.isnan(observed.statistic), np.nan, p)




def load(args: argparse.Namespace) -> tuple[dict[float, list[np.ndarray]], int, dict[str, list[str]]]:
    """Credits per noise level (0: the model itself), taken once and kept in `--cache`."""
    levels = [0.0, *map(float, filter(None, args.noise.split(",")))]
    if args.cache and Path(args.cache).exists():
        z = np.load(args.cache)
        ntexts = int(z["ntexts"])
        credited = {lv: [z[f"{lv}_{i}"] for i in range(ntexts)] for lv in levels}
        vocab = {"token": [str(i) for i in range(int(z["vocab"]))], "word": [str(i) for i in range(int(z["nwords"]))],
                 "pos": list(z["pos"])}
        return credited, int(z["num_rows"]), vocab
    lines = [x.strip() for x in open(args.data) if x.strip() and not x.strip().startswith("=")]
    texts = [str(x) for x in np.random.default_rng(0).choice(lines, args.texts, replace=False)]
    words: dict[str, int] = {}
    credited = {}
    for lv in levels:
        t0 = time.time()
        credited[lv], num_rows, vocab = heavy.credits(texts, noise=lv, seed=1, words=words)
        print(f"credits at noise {lv}: {time.time() - t0:.0f} s", flush=True)
    vocab["word"] = [str(i) for i in range(len(words))]
    if args.cache:
        np.savez_compressed(args.cache, **{f"{lv}_{i}": c for lv, cs in credited.items() for i, c in enumerate(cs)},
                            pos=np.array(vocab["pos"]), ntexts=len(texts), num_rows=num_rows,
                            nwords=len(words), vocab=len(vocab["token"]))
    return credited, num_rows, vocab


def tested_pvalues(ta, tb, num_rows: int, n: int, moderations: tuple[str, ...]
                   ) -> tuple[dict[str, np.ndarray], np.ndarray, list]:
    """Each moderation's p-values (statistics taken once), the smaller credit count of each row, and per stage its
    split-half evidence with its credits."""
    ta, tb = significance.on_one_vocabulary(ta, tb)
    na = np.bincount(ta.rows, weights=ta.count, minlength=num_rows)
    nb = np.bincount(tb.rows, weights=tb.count, minlength=num_rows)
    tested = (na > 0) & (nb > 0)
    observed = significance.homogeneity(ta, tb, num_rows, tested)
    stages = (significance.stage_design(ta, num_rows), significance.stage_design(tb, num_rows))
    out = {m: moderated_pvalues(observed, stages, n, m) for m in moderations}
    library, _ = significance.homogeneity_pvalues(ta, tb, num_rows, tested, texts=(n, n))
    fixed = out["fixed"] if "fixed" in out else moderated_pvalues(observed, stages, n, "fixed")
    assert np.allclose(fixed, library, rtol=1e-12, atol=0, equal_nan=True), "the repeated formula left the library's"
    return out, np.minimum(na, nb), [(stages[0], na), (stages[1], nb)]


def synthetic(moderations: tuple[str, ...], reps: int = 20, units: int = 6000, hyper: int = 60) -> None:
    """Split-half statistics drawn by hand: `units` neurons with 0, 4, 8 or 16 split-half df (+ 1 for the share),
    design effects 1.45 (log sd 0.1), `hyper` of them 2.3; 2,000 credits a stage, 300 texts. Prints the share with
    p < 0.05 of the hypervariable neurons and of the others under each moderation."""
    rng = np.random.default_rng(1)
    df_halves = rng.choice([0, 4, 8, 16], units, p=[0.4, 0.2, 0.2, 0.2])
    design = 1.45 * np.exp(rng.normal(0, 0.1, units))
    outlying = np.zeros(units, dtype=bool)
    outlying[rng.choice(units, hyper, replace=False)] = True
    design[outlying] = 2.3
    rates = {m: [] for m in moderations}
    for _ in range(reps):
        df = np.maximum(df_halves, 1)
        observed = significance.Homogeneity(design * rng.chisquare(df), df, np.full(units, 2000.0),
                                            np.full(units, 2000.0))
        stages = []
        for _ in range(2):
            x = design * rng.chisquare(df_halves + 1)
            stages.append(significance.StageDesign(x, df_halves + 1, max(1.0, x.sum() / (df_halves + 1).sum())))
        for m in moderations:
            p = moderated_pvalues(observed, stages, 300, m)
            rates[m].append(((p[outlying] < 0.05).mean(), (p[~outlying] < 0.05).mean()))
    print(f"\nsynthetic, {reps} reports: share with p < 0.05, hypervariable / others\n")
    for m, v in rates.items():
        print(f"- {m}: {np.mean(v, axis=0)[0]:.3f} / {np.mean(v, axis=0)[1]:.3f}")


def row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=1200)
    ap.add_argument("--sizes", default="40,300")
    ap.add_argument("--reps", type=int, default=60, help="null reports a size")
    ap.add_argument("--power-reps", type=int, default=20, help="reports a size and noise level")
    ap.add_argument("--noise", default="0.03,0.1")
    ap.add_argument("--moderations", default=",".join(MODERATIONS))
    ap.add_argument("--heavy", type=int, default=1000, help="POS neurons credited this often are listed one by one")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/wikitext-2/valid.txt"))
    ap.add_argument("--cache", help="an .npz to keep the credits in (taken once, reused when it exists)")
    ap.add_argument("--synthetic", action="store_true", help="only the hand-drawn statistics (no model)")
    args = ap.parse_args()
    moderations = tuple(args.moderations.split(","))
    if args.synthetic:
        return synthetic(moderations)
    t0 = time.time()
    credited, num_rows, vocab = load(args)
    levels = [lv for lv in credited if lv > 0]
    print(f"credits: {time.time() - t0:.0f} s", flush=True)
    for n in map(int, args.sizes.split(",")):
        rng = np.random.default_rng(n * 7 + 1)
        null: dict = {}  # (ft, moderation, bin) -> tested, p < 0.05, p < 0.001
        per_neuron: dict = {}  # (moderation, row) -> p-values of a heavy POS neuron
        power: dict = {}  # (level, ft, moderation, bin) -> tested, p < 0.05, BH flagged
        fitted: dict = {}  # (ft, moderation) -> per stage: scale, median prior df, share of rows given fewer
        for level, reps in [(0.0, args.reps)] + [(lv, args.power_reps) for lv in levels]:
            for _ in range(reps):
                perm = rng.permutation(len(credited[0.0]))
                for ft in heavy.COLUMNS:
                    ta = heavy.table(credited[0.0], perm[:n], ft, vocab[ft])
                    tb = heavy.table(credited[level], perm[n:2 * n], ft, vocab[ft])
                    ps, smaller, evidence = tested_pvalues(ta, tb, num_rows, n, moderations)
                    if level == 0:
                        for stage, credits in evidence:
                            for m in ("estimated", "robust"):
                                scale, prior = stage_prior(stage, credits, m)
                                fitted.setdefault((ft, m), []).append(
                                    (scale, np.median(prior[stage.df > 0]), (prior[stage.df > 0] < np.max(prior)).mean()))
                    b = np.searchsorted(BINS, smaller, side="right") - 1
                    for m, p in ps.items():
                        ok = ~np.isnan(p)
                        flags = significance.benjamini_hochberg(p)
                        for k in range(len(BINS) - 1):
                            w = ok & (b == k)
                            if level == 0:
                                null.setdefault((ft, m, k), np.zeros(3))[:] += [
                                    w.sum(), (p[w] < 0.05).sum(), (p[w] < 0.001).sum()]
                            else:
                                power.setdefault((level, ft, m, k), np.zeros(3))[:] += [
                                    w.sum(), (p[w] < 0.05).sum(), flags[w].sum()]
                        if level == 0 and ft == "pos":
                            for i in np.flatnonzero(ok & (smaller >= args.heavy)):
                                per_neuron.setdefault((m, i), []).append(p[i])
        labels = [f"{BINS[k]}-{BINS[k + 1] - 1}" if BINS[k + 1] < 10**8 else f">= {BINS[k]}"
                  for k in range(len(BINS) - 1)]
        print(f"\n{n} vs {n} texts: null, {args.reps} reports ({time.time() - t0:.0f} s so far); "
              f"share of tested neurons with p < 0.05 / p < 0.001 by credits per stage (the smaller)\n")
        print(row(["feature", "moderation", *labels]))
        print(row(["---"] * (2 + len(labels))))
        for ft in heavy.COLUMNS:
            for m in moderations:
                cells = []
                for k in range(len(BINS) - 1):
                    x = null.get((ft, m, k), np.zeros(3))
                    cells.append(f"{x[1] / x[0]:.3f} / {x[2] / x[0]:.4f} ({int(x[0])})" if x[0] else "-")
                print(row([ft, m, *cells]))
        print(f"\nPOS neurons credited >= {args.heavy} times per stage, null: the largest share with p < 0.05, "
              "neurons with a share >= 0.10 (tested in >= half the reports)\n")
        for m in moderations:
            rates = {i: (np.array(v) < 0.05).mean() for (mm, i), v in per_neuron.items()
                     if mm == m and len(v) >= args.reps / 2}
            if rates:
                print(f"- {m}: {len(rates)} neurons, max {max(rates.values()):.2f}, "
                      f"{sum(r >= 0.10 for r in rates.values())} at >= 0.10, mean {np.mean(list(rates.values())):.3f}")
        print("\nFitted priors, null stages (scale; median prior df; stages with prior df inf; share of rows the "
              "robust fit gave fewer prior df than the others)\n")
        for (ft, m), v in fitted.items():
            v = np.array(v)
            print(f"- {ft}, {m}: scale {np.median(v[:, 0]):.3f} (median), prior df median {np.median(v[:, 1]):.1f}, "
                  f"inf in {int(np.isinf(v[:, 1]).sum())} of {len(v)}, rows given fewer {v[:, 2].mean():.4f}")
        for level in levels:
            print(f"\n{n} vs {n} texts: B through the model with weight noise {level}, {args.power_reps} reports; share "
                  "of tested neurons with p < 0.05 / flagged by BH at 0.05\n")
            print(row(["feature", "moderation", *labels, "all"]))
            print(row(["---"] * (3 + len(labels))))
            for ft in heavy.COLUMNS:
                for m in moderations:
                    cells, total = [], np.zeros(3)
                    for k in range(len(BINS) - 1):
                        x = power.get((level, ft, m, k), np.zeros(3))
                        total += x
                        cells.append(f"{x[1] / x[0]:.3f} / {x[2] / x[0]:.3f}" if x[0] else "-")
                    cells.append(f"{total[1] / total[0]:.3f} / {total[2] / total[0]:.3f} ({int(total[0])})")
                    print(row([ft, m, *cells]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
