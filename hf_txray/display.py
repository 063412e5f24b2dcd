"""Readable terminal summaries of profiles and transfer reports (used by `hf-txray show` and the demo)."""

from __future__ import annotations

import pandas as pd

from .profile import Profile
from .report import DEFAULT_MIN_COUNT, TransferReport

LEGEND = """\
legend:
  shared = credited in both stages; lost = only in A (deactivated); gained = only in B; dead = in neither.
  Hellinger distance between a neuron's preference distributions: 0 = the same, 1 = disjoint.
  length = the number of distinct values a neuron was credited on (short = specialised); length shift = B - A.
  noise floor = the same figure between two interleaved halves of ONE stage (even / odd example ids): what sampling
    alone produces. Compare it with "A -> B at half size" (both at half the credits): only the excess is change.
  changed = shared neurons whose A -> B distance exceeds sampling noise (resampling test, Benjamini-Hochberg at the
    report's alpha), as a share of the shared neurons."""


def _table(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return frame.to_string(index=False, float_format=lambda v: floatfmt.format(v))


def profile_text(profile: Profile, top: int = 5) -> str:
    """Header, per-layer credit summary, and the corpus's top feature values."""
    m = profile.meta
    lines = [
        f"Profile {m.stage!r}: {m.model_id} ({m.site} site, {len(m.layers)} layers x {m.num_neurons} neurons)",
        f"corpus: {m.dataset_id or 'in-memory texts'} [{m.dataset_fingerprint}], {m.num_examples} texts, "
        f"{m.num_positions} token positions, {m.num_truncated} truncated, {m.num_empty} empty; "
        f"features: {', '.join(m.feature_types)}; top_k={m.top_k}",
    ]
    if m.provenance:
        from .provenance import sources_text

        lines.append(f"pinned: {sources_text(m.provenance)} (hf-txray reproduce recomputes it)")
    lines += [
        "",
    ]
    stats = profile.neuron_stats()
    per_layer = stats.groupby("layer").agg(
        credited=("count", lambda c: int((c > 0).sum())), mass=("mass", "sum"), max_count=("count", "max"))
    for ft in m.feature_types:
        per_layer[f"mean_length_{ft}"] = stats[stats["count"] > 0].groupby("layer")[f"length_{ft}"].mean()
    lines.append(_table(per_layer.reset_index(), "{:.1f}"))
    for ft in m.feature_types:
        if ft in ("token", "word"):
            continue
        share = pd.DataFrame({"mass_share": profile.mass_share(ft), "corpus_frequency": profile.feature_frequency(ft)})
        share = share.sort_values("mass_share", ascending=False)
        lines += ["", f"{ft}: mass share vs corpus frequency (top {top})",
                  _table(share.head(top).reset_index().rename(columns={"index": ft}))]
    return "\n".join(lines)


def report_text(report: TransferReport, top: int = 5, min_count: int = DEFAULT_MIN_COUNT, legend: bool = True) -> str:
    """Whole-model summary beside its noise floors, per-layer table, POS mass shares, the most/least changed
    neurons among those credited at least `min_count` times in both stages, and a legend of the terms."""
    meta, summary = report.meta, report.summary()
    ft = "pos" if "pos" in meta.feature_types else meta.feature_types[0]
    lines = [
        f"Transfer report {report.name}: {meta.model_a} -> {meta.model_b} ({meta.site} site)",
        f"corpora: {meta.dataset_a} -> {meta.dataset_b}"
        + (f"; credits: {meta.credits_a} -> {meta.credits_b}" if meta.credits_a or meta.credits_b else ""),
        "neurons: " + ", ".join(f"{s} {summary[f'share_{s}']:.1%}" for s in ("shared", "lost", "gained", "dead")),
        "mean Hellinger over shared neurons: "
        + ", ".join(f"{f} {summary[f'mean_hellinger_{f}']:.3f}" for f in meta.feature_types),
    ]
    noise = report.noise_table()
    if len(noise):
        lines += ["", f"headline figures vs split-half noise floors (changed: Benjamini-Hochberg at alpha={meta.alpha})",
                  _table(noise)]
    else:
        lines.append("(no noise floors: the profiles were saved without split-half sums; profile again to get them)")
    lines.append("")
    columns = ["layer", "share_shared", "share_lost", "share_gained"] + [
        f"mean_hellinger_{f}" for f in meta.feature_types] + [f"mean_length_shift_{ft}"]
    columns += [c for c in (f"noise_floor_hellinger_{ft}_a", f"share_changed_{ft}") if c in report.layers]
    lines.append(_table(report.layers[columns]))
    if len(report.mass_share):
        share = report.mass_share[report.mass_share["feature_type"] == ft].drop(columns="feature_type")
        if len(share):
            lines += ["", f"{ft} mass share in A and B vs corpus frequency", _table(share.head(12))]
    keep = ["layer", "neuron", f"hellinger_{ft}"] + [c for c in (f"p_hellinger_{ft}", f"changed_{ft}")
                                                       if c in report.neurons] + [
        f"length_a_{ft}", f"length_b_{ft}", "count_a", "count_b"]
    thin = report.too_few_credits(ft, min_count)
    lines += ["", f"most changed neurons ({ft}, credited >= {min_count} times in both stages; {thin} shared neurons "
                  f"have too few credits and are not ranked)",
              _table(report.most_changed(top, ft, min_count=min_count)[keep])]
    lines += ["", f"least changed neurons ({ft}, credited >= {min_count} times in both stages)",
              _table(report.least_changed(top, ft, min_count=min_count)[keep])]
    if legend:
        lines += ["", LEGEND]
    return "\n".join(lines)
