"""Telling change from sampling noise: the noise statistics kept in profiles (split halves by text content,
squared masses, mass by position index), `skip_first_positions` and `max_positions` against the brute-force
reference, the per-neuron resampling test against a slow per-neuron implementation of the same null, the
split-half noise floors against brute force, `min_count` in every ranking, the size warning, and calibration.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hf_txray
import reference
from hf_txray import Profile, ProfileMeta, significance
from hf_txray import report as report_module
from hf_txray.display import report_text
from hf_txray.profile import FeatureTable
from hf_txray.significance import DEFAULT_MIN_COUNT
from models import SAMPLE_TEXTS, tiny, torch_threads, torchrun

TEXTS = SAMPLE_TEXTS + ["a second sentence about the quick fox", "numbers like 42 and 7 appear here", "the end ."]
FEATURES = ("token", "word", "pos")
RTOL, ATOL = 2e-6, 1e-7  # as in test_reference.py: the reference runs texts alone, the engine padded batches
ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def runs(kind: str):
    model, tokenizer = tiny(kind)
    return reference.run_corpus(model, tokenizer, TEXTS, "mlp", FEATURES)


@functools.cache
def engine(kind: str, skip: int | str = 0, batch_size: int = 3, texts: tuple[str, ...] = tuple(TEXTS),
           max_positions: int | None = None) -> Profile:
    model, tokenizer = tiny(kind)
    return hf_txray.analyze(model, list(texts), tokenizer=tokenizer, features=FEATURES, batch_size=batch_size,
                            skip_first_positions=skip, max_positions=max_positions, max_examples_per_neuron=2,
                            show_progress=False)


def keyed(profile: Profile, ft: str, column: str) -> dict[tuple[int, int, str], float]:
    table = profile.tables[ft]
    values = getattr(table, column)
    out = {}
    for row, fid, value in zip(table.rows.tolist(), table.feature_ids.tolist(), values.tolist()):
        position, neuron = divmod(row, profile.num_neurons)
        out[profile.layers[position], neuron, table.vocab[fid]] = value
    return out


def assert_same(got: dict, want: dict, exact: bool = False) -> None:
    got = {k: v for k, v in got.items() if v != 0}
    assert set(got) == set(want)
    keys = sorted(want)
    if exact:
        assert [got[k] for k in keys] == [want[k] for k in keys]
    else:
        np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=RTOL, atol=ATOL)


# ----- what profiles keep -------------------------------------------------------------------------------------
def odd_half(text: str) -> bool:
    """A text's split half by hand: the lowest bit of the first byte of the sha256 of its length (8 bytes, little
    endian) and UTF-8 bytes, after NFC and without whitespace (what hf_txray.hashes.text_halves promises)."""
    import hashlib
    import unicodedata

    data = "".join(unicodedata.normalize("NFC", text).split()).encode("utf-8")
    return bool(hashlib.sha256(len(data).to_bytes(8, "little") + data).digest()[0] & 1)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_split_half_and_squared_sums_match_reference(kind):
    profile = engine(kind)
    assert profile.meta.split_halves == "text_hash"
    odd = reference.credit([r for r in runs(kind) if odd_half(TEXTS[r.example_id])], 1, FEATURES)
    full = reference.credit(runs(kind), 1, FEATURES)
    assert 0 < sum(odd.neuron_count.values()) < sum(full.neuron_count.values())  # both halves credit something
    for ft in FEATURES:
        assert_same(keyed(profile, ft, "count_odd"), dict(odd.count[ft]), exact=True)
        assert_same(keyed(profile, ft, "mass_odd"), dict(odd.mass[ft]))
        assert_same(keyed(profile, ft, "mass_sq"), dict(full.mass_sq[ft]))
    expected = np.zeros_like(profile.neuron_count)
    for (layer, neuron), count in odd.neuron_count.items():
        expected[layer, neuron] = count
    np.testing.assert_array_equal(profile.neuron_count_odd, expected)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_position_mass_and_diagnostics_match_reference(kind):
    profile = engine(kind)
    ref = reference.credit(runs(kind), 1, FEATURES)
    want_mass, want_count = defaultdict(float), defaultdict(int)
    for (layer, neuron), credits in ref.credits.items():
        for c in credits:
            want_mass[layer * profile.num_neurons + neuron, c.token_index] += c.activation
            want_count[layer * profile.num_neurons + neuron, c.token_index] += 1
    e = profile.position_mass.entries()
    keys = list(zip(e["row"].tolist(), e["position"].tolist()))
    assert dict(zip(keys, e["count"].tolist())) == dict(want_count)
    np.testing.assert_allclose(e["mass"], [want_mass[k] for k in keys], rtol=RTOL, atol=ATOL)
    # diagnostics: neurons whose top position index holds > 50% of their mass and credited at least min_count
    # times, by brute force; the ones over the threshold with fewer credits are counted, not listed
    totals, credits = defaultdict(float), defaultdict(int)
    for (row, _), mass in want_mass.items():
        totals[row] += mass
    for (row, _), count in want_count.items():
        credits[row] += count
    best = {row: max(m for (r, _), m in want_mass.items() if r == row) / totals[row] for row in totals}
    over = {row: share for row, share in best.items() if share > 0.5}
    assert len(over) > 0 and max(credits[row] for row in over) < DEFAULT_MIN_COUNT  # tiny runs: all below the floor
    for min_count in (0, 2, 3, DEFAULT_MIN_COUNT):
        flagged = profile.diagnostics(0.5, min_count=min_count) if min_count != DEFAULT_MIN_COUNT else \
            profile.diagnostics(0.5)
        got = {(int(la), int(ne)): s for la, ne, s in zip(flagged["layer"], flagged["neuron"],
                                                           flagged["top_position_share"])}
        want = {divmod(row, profile.num_neurons): share for row, share in over.items() if credits[row] >= min_count}
        assert set(got) == set(want)
        np.testing.assert_allclose([got[k] for k in sorted(want)], [want[k] for k in sorted(want)], rtol=RTOL)
        assert {k: flagged.attrs[k] for k in ("min_count", "too_few_credits")} == {
            "min_count": min_count, "too_few_credits": len(over) - len(want)}
        assert list(flagged["top_position_share"]) == sorted(flagged["top_position_share"], reverse=True)
        assert (flagged["count"] >= max(min_count, 1)).all()
    assert 0 < len(profile.diagnostics(0.5, min_count=2)) < len(over)  # the floor of 2 drops some, keeps some


@pytest.mark.parametrize("bad", [-1, 2.0, "20", True, None])
def test_diagnostics_refuses_a_bad_min_count(bad):
    with pytest.raises(hf_txray.ConfigurationError, match=r"min_count must be an int >= 0, got"):
        engine("bert").diagnostics(min_count=bad)


@pytest.mark.parametrize("bad", [50, 1.0, -0.1, float("nan"), "0.5", True])
def test_diagnostics_refuses_a_threshold_that_is_not_a_share(bad):
    """Helper 183: threshold=50 (a percentage) listed no neuron, as if none took its mass from one position."""
    with pytest.raises(hf_txray.ConfigurationError, match=r"threshold must be a share"):
        engine("bert").diagnostics(threshold=bad)
    assert len(engine("bert").diagnostics(threshold=0.0, min_count=0)) > 0


def test_noise_statistics_survive_save_load_and_merge(tmp_path):
    profile = engine("gpt2")
    profile.save_pretrained(tmp_path / "p")
    loaded = Profile.from_pretrained(tmp_path / "p")
    assert loaded == profile
    assert np.array_equal(loaded.neuron_count_odd, profile.neuron_count_odd)
    assert loaded.position_mass.equals(profile.position_mass)
    for ft in FEATURES:
        for column in FeatureTable.NOISE_COLUMNS:
            assert np.array_equal(getattr(loaded.tables[ft], column), getattr(profile.tables[ft], column))
    # two shards at an even offset keep every example id's parity: the merge equals the whole run
    merged = engine("gpt2", texts=tuple(TEXTS[:4])).merge(engine("gpt2", texts=tuple(TEXTS[4:])))
    np.testing.assert_array_equal(merged.neuron_count_odd, profile.neuron_count_odd)
    assert np.array_equal(merged.position_mass.entries()["count"], profile.position_mass.entries()["count"])
    for ft in FEATURES:
        for column in ("count_odd", "mass_odd", "mass_sq"):
            assert_same(keyed(merged, ft, column), {k: v for k, v in keyed(profile, ft, column).items() if v},
                        exact=column == "count_odd")
    before = hf_txray.compare(profile, profile, test=False).summary()
    after = hf_txray.compare(loaded, loaded, test=False).summary()
    assert before["noise_floor_hellinger_pos_a"] == after["noise_floor_hellinger_pos_a"]
    assert not math.isnan(before["noise_floor_hellinger_pos_a"])


def test_noise_statistics_of_two_processes_equal_one(tmp_path):
    """Real processes (torchrun, gloo): the split-half sums and mass by position reduce exactly."""
    model, tokenizer = tiny("bert")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    import treebank

    (tmp_path / "t.txt").write_text("\n".join(treebank.penn["valid"].split("\n")[:41]), encoding="utf-8")
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + __import__("os").pathsep + __import__("os").environ.get("PYTHONPATH", "")}
    subprocess.run(torchrun(2, "txray_cli.py", "analyze", str(tmp_path / "model"), str(tmp_path / "t.txt"),
                            "--features", "token", "--batch-size", "4", "--out", str(tmp_path / "two")), check=True,
                   env=env, timeout=300, capture_output=True)
    with torch_threads(1):  # the single process: these options in this process, saved and read back as the two's
        hf_txray.analyze(str(tmp_path / "model"), str(tmp_path / "t.txt"), features=("token",), batch_size=4,
                         show_progress=False).save_pretrained(tmp_path / "one")
    one, two = Profile.from_pretrained(tmp_path / "one"), Profile.from_pretrained(tmp_path / "two")
    assert one.meta.num_examples == two.meta.num_examples == 41
    np.testing.assert_array_equal(one.neuron_count_odd, two.neuron_count_odd)
    assert 0 < one.neuron_count_odd.sum() < one.neuron_count.sum()
    x, y = one.position_mass.entries(), two.position_mass.entries()
    for name in ("row", "position", "count"):
        np.testing.assert_array_equal(x[name], y[name])
    np.testing.assert_allclose(x["mass"], y["mass"], rtol=1e-6)
    a, b = one.tables["token"], two.tables["token"].remapped(one.tables["token"].vocab)
    np.testing.assert_array_equal(a.count_odd, b.count_odd)
    np.testing.assert_allclose(a.mass_odd, b.mass_odd, rtol=1e-6)
    np.testing.assert_allclose(a.mass_sq, b.mass_sq, rtol=1e-6)


# ----- skip_first_positions and max_positions ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_skip_first_positions_matches_reference(kind):
    profile = engine(kind, skip=2)
    ref = reference.credit(runs(kind), 1, FEATURES, skip_first_positions=2)
    assert profile.meta.num_positions == ref.num_positions < reference.credit(runs(kind), 1, FEATURES).num_positions
    assert profile.meta.config["skip_first_positions"] == 2
    for ft in FEATURES:
        assert_same(keyed(profile, ft, "count"), dict(ref.count[ft]), exact=True)
        assert_same(keyed(profile, ft, "mass"), dict(ref.mass[ft]))
        assert dict(zip(profile.tables[ft].vocab, profile.tables[ft].corpus_count.tolist())) == \
            {k: v for k, v in ref.corpus_count[ft].items()} | {
                k: 0 for k in profile.tables[ft].vocab if k not in ref.corpus_count[ft]}
    assert profile.position_mass.entries()["position"].min() >= 2


@pytest.mark.parametrize("kind,expected", [("bert", 0), ("gpt2", 1), ("llama", 1)])
def test_skip_first_positions_auto_is_one_for_decoders_only(kind, expected):
    auto = engine(kind, skip="auto")
    assert auto.meta.config["skip_first_positions"] == expected
    explicit = engine(kind, skip=expected)
    assert keyed(auto, "token", "count") == keyed(explicit, "token", "count")


def test_max_positions_credits_exactly_the_first_positions(caplog):
    import logging

    full = reference.credit(runs("bert"), 1, FEATURES)
    limit = full.num_positions // 2 + 1  # cuts inside a text
    profile = engine("bert", max_positions=limit)
    left, cut = limit, []
    for run in runs("bert"):
        cut.append(dataclasses.replace(run, creditable=run.creditable[:max(left, 0)]))
        left -= len(run.creditable)
    ref = reference.credit(cut, 1, FEATURES)
    assert profile.meta.num_positions == ref.num_positions == limit
    assert profile.meta.config["max_positions"] == limit
    for ft in FEATURES:
        assert_same(keyed(profile, ft, "count"), dict(ref.count[ft]), exact=True)
        assert_same(keyed(profile, ft, "mass"), dict(ref.mass[ft]))
    assert "was not reached" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="hf_txray"):  # a shortfall said (helper 112: it was silent)
        assert engine("bert", max_positions=10 * full.num_positions).meta.num_positions == full.num_positions
    assert (f"max_positions={10 * full.num_positions} was not reached: the corpus gave {full.num_positions} "
            "positions, so a stage") in caplog.text


def test_a_profile_crediting_nothing_says_why(caplog):
    """skip_first_positions beyond every text (but below max_length) left every table empty, with a warning (helper
    124: an empty profile, exit 0): refused as a corpus of empty texts is, naming skip_first_positions."""
    import logging

    model, tokenizer = tiny("bert")
    with pytest.raises(hf_txray.DatasetError, match=rf"Every one of the {len(TEXTS)} texts is empty or whitespace, "
                                                    r"or has no token past the first 60 \(skip_first_positions=60\): "
                                                    r"there is no token to profile.*or lower skip_first_positions"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False,
                         skip_first_positions=60, max_length=64)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert "No neuron was credited" not in caplog.text


def test_a_layer_crediting_nothing_is_named(caplog):
    """Helper 193: a layer whose every winner is <= 0 (its MLP never fires) had empty tables, and only
    meta.num_uncredited said so."""
    import logging

    import torch

    model, tokenizer = tiny("bert")
    dense = model.encoder.layer[1].intermediate.dense
    with torch.no_grad():
        dense.weight.zero_(), dense.bias.fill_(-100.0)  # GELU(-100) is 0: no activation above zero
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert not profile.neuron_count[1].any() and profile.neuron_count[0].any()
    assert "Layer(s) [1] credited no neuron" in caplog.text
    # a list of strings has no column to check (helper 128: "Check the text column ('text')"); a table has
    with pytest.raises(hf_txray.DatasetError, match=r"Every one of the 2 texts is empty or whitespace: there is no "
                                                    r"token to profile\. Pass texts that hold words\.$"):
        hf_txray.analyze(model, ["", "  "], tokenizer=tokenizer, features=("token",), show_progress=False)
    with pytest.raises(hf_txray.DatasetError, match=r"Check the text column \('body'\)\.$"):
        hf_txray.analyze(model, [{"title": "A title", "body": " "}], tokenizer=tokenizer, features=("token",),
                         show_progress=False, text_column="body")
    caplog.clear()
    negative = hf_txray.hooks.trace(model, hf_txray.sites.find_sites(model, "mlp"), edit={0: lambda x: -x.abs() - 1,
                                                                                       1: lambda x: -x.abs() - 1},
                                    once=False)
    with caplog.at_level(logging.WARNING, logger="hf_txray"), negative:  # every winner <= 0: positions, no credit
        silent = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert silent.meta.num_positions > 0 and silent.meta.num_uncredited > 0
    assert "activation <= 0 (num_uncredited)" in caplog.text


@pytest.mark.parametrize("option", [{"skip_first_positions": -1}, {"skip_first_positions": "first"},
                                    {"max_positions": 0}])
def test_bad_position_options_are_refused(option):
    model, tokenizer = tiny("bert")
    with pytest.raises(hf_txray.ConfigurationError, match=next(iter(option))):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False, **option)


# ----- the per-neuron test ------------------------------------------------------------------------------------
VOCAB = ["NOUN", "VERB", "DET", "ADJ"]
# neuron -> (stage A entries, stage B entries); entry = feature -> (count, mass per credit, spread of masses)
HAND_BUILT = {
    0: ({"NOUN": (15, 2.0, 0.0), "VERB": (15, 2.0, 0.0)}, {"NOUN": (14, 2.0, 0.0), "VERB": (16, 2.0, 0.0)}),
    1: ({"NOUN": (40, 1.0, 0.0)}, {"VERB": (35, 1.0, 0.0), "NOUN": (5, 1.0, 0.0)}),
    2: ({"NOUN": (4, 1.5, 0.0), "DET": (2, 1.0, 0.0)}, {"VERB": (3, 1.0, 0.0), "NOUN": (5, 1.2, 0.0)}),
    3: ({"NOUN": (10, 2.0, 1.0), "ADJ": (10, 1.0, 0.5)}, {"NOUN": (6, 2.5, 1.0), "ADJ": (14, 1.0, 0.3)}),
    4: ({"DET": (9, 3.0, 0.0)}, {"DET": (12, 3.0, 0.0)}),
    5: ({"NOUN": (3, 1.0, 0.0)}, {}),  # lost: not tested
    # sparse tails: DET and ADJ expect < 5 credits, pooled into "other" (expects >= 1: a category of its own) ...
    6: ({"NOUN": (20, 1.0, 0.2), "VERB": (20, 2.0, 0.0), "DET": (2, 1.0, 0.0), "ADJ": (1, 1.0, 0.0)},
        {"NOUN": (25, 1.0, 0.2), "VERB": (15, 2.0, 0.0), "ADJ": (2, 3.0, 0.0)}),
    # ... and DET expects < 1 credit: left out, NOUN and VERB renormalised
    7: ({"NOUN": (30, 1.0, 0.0), "VERB": (30, 1.0, 0.0), "DET": (1, 5.0, 0.0)},
        {"NOUN": (20, 1.0, 0.0), "VERB": (40, 1.0, 0.0)}),
}


def hand_table(side: int) -> FeatureTable:
    rows, fids, mass, count, mass_sq = [], [], [], [], []
    for neuron, entries in HAND_BUILT.items():
        for feature in sorted(entries[side], key=VOCAB.index):
            c, m, spread = entries[side][feature]
            # c credits: half at m - spread, half at m + spread (c even) -> mean m, variance spread^2
            values = [m - spread, m + spread] * (c // 2) + [m] * (c % 2)
            rows.append(neuron), fids.append(VOCAB.index(feature)), count.append(c)
            mass.append(sum(values)), mass_sq.append(sum(v * v for v in values))
    odd = np.array(count) // 2
    return FeatureTable(VOCAB, np.array(rows), np.array(fids), np.array(mass), np.array(count),
                        np.ones(len(VOCAB), dtype=np.int64), np.array(mass) * odd / np.array(count), odd,
                        np.array(mass_sq))


def slow_chi_square(a: dict[str, tuple[int, float]], b: dict[str, tuple[int, float]],
                    min_expected: float = 5.0) -> tuple[float, int]:
    """Pearson's X^2 and df of one neuron, written out per category: feature -> (count, mass) in each stage."""
    n_a, n_b = sum(c for c, _ in a.values()), sum(c for c, _ in b.values())
    if not n_a or not n_b:
        return math.nan, 0
    p_a = {f: m / sum(m for _, m in a.values()) for f, (_, m) in a.items()}
    p_b = {f: m / sum(m for _, m in b.values()) for f, (_, m) in b.items()}
    expected = {f: (a.get(f, (0, 0))[0] + b.get(f, (0, 0))[0]) / (n_a + n_b) * min(n_a, n_b) for f in set(a) | set(b)}
    kept = sorted(f for f, e in expected.items() if e >= min_expected)
    rest = [f for f in expected if f not in kept]
    categories = [([f], ) for f in kept]
    if sum(expected[f] for f in rest) >= 1:
        categories.append((rest, ))
    q_a = [sum(p_a.get(f, 0.0) for f in fs) for (fs, ) in categories]
    q_b = [sum(p_b.get(f, 0.0) for f in fs) for (fs, ) in categories]
    q_a, q_b = [q / sum(q_a) for q in q_a], [q / sum(q_b) for q in q_b]  # renormalised when "other" is left out
    if len(categories) < 2:
        return math.nan, 0
    x = 0.0
    for qa, qb in zip(q_a, q_b):
        pooled = (n_a * qa + n_b * qb) / (n_a + n_b)
        x += (qa - qb) ** 2 / pooled if pooled > 0 else 0.0
    return x * n_a * n_b / (n_a + n_b), len(categories) - 1


def neuron_entries(table: FeatureTable, neuron: int, half: str | None = None) -> dict[str, tuple[int, float]]:
    out = {}
    for r, f, c, m, co, mo in zip(table.rows, table.feature_ids, table.count, table.mass, table.count_odd,
                                  table.mass_odd):
        count, mass = {None: (c, m), "odd": (co, mo), "even": (c - co, m - mo)}[half]
        if r == neuron and count > 0:
            out[VOCAB[f]] = (int(count), float(mass))
    return out


def slow_half_share(table: FeatureTable, neuron: int) -> tuple[float, int]:
    """Chi-square (1 df) of one neuron's odd-half share of mass against the whole stage's, written out."""
    total = sum(float(m) for m in table.mass)
    q = sum(float(m) for m in table.mass_odd) / total
    entries = [(int(c), float(m), float(mo)) for r, c, m, mo in zip(table.rows, table.count, table.mass, table.mass_odd)
               if r == neuron]
    n, mass, odd = sum(e[0] for e in entries), sum(e[1] for e in entries), sum(e[2] for e in entries)
    if n == 0 or mass <= 0:
        return 0.0, 0
    return n * (odd / mass - q) ** 2 / (q * (1 - q)), 1


def slow_pvalues(ta: FeatureTable, tb: FeatureTable, neurons: list[int], prior_df: float = 30.0,
                 texts: tuple[int, int] | None = None) -> dict[int, float]:
    """The moderated F test of hf_txray.significance, neuron by neuron with plain Python sums: each stage's design
    effect from its split halves (X^2 of the distributions + the 1-df odd-half share), moderated with prior_df / 2
    df, combined weighted by the other stage's credits, Satterthwaite df, each stage's at most its texts less 1 and
    its credits over its design effect less 1."""
    from scipy.stats import f as f_distribution

    evidence, pooled = {}, {}
    for name, table in (("a", ta), ("b", tb)):
        evidence[name] = {}
        for n in HAND_BUILT:
            x, df = slow_chi_square(neuron_entries(table, n, "even"), neuron_entries(table, n, "odd"))
            xs, dfs = slow_half_share(table, n)
            evidence[name][n] = ((x if df > 0 else 0.0) + xs, df + dfs)
        tested = [(x, df) for x, df in evidence[name].values() if df > 0]
        pooled[name] = max(1.0, sum(x for x, _ in tested) / sum(df for _, df in tested)) if tested else 1.0
    out = {}
    for n in neurons:
        a, b = neuron_entries(ta, n), neuron_entries(tb, n)
        x, df = slow_chi_square(a, b)
        n_a, n_b = sum(c for c, _ in a.values()), sum(c for c, _ in b.values())
        weight = {"a": n_b / (n_a + n_b), "b": n_a / (n_a + n_b)}
        part, nu = {}, {}
        for i, s in enumerate("ab"):
            x_s, df_s = evidence[s][n]
            design_s = (prior_df / 2 * pooled[s] + x_s) / (prior_df / 2 + df_s)
            part[s] = weight[s] * design_s
            nu[s] = min(prior_df / 2 + df_s, max((n_a, n_b)[i] / design_s - 1, 1))
            if texts is not None:
                nu[s] = min(nu[s], max(texts[i] - 1, 1))
        design = part["a"] + part["b"]
        known = design ** 2 / (part["a"] ** 2 / nu["a"] + part["b"] ** 2 / nu["b"])
        out[n] = float(f_distribution.sf(x / df / design, df, known)) if df else math.nan
    return out


def test_chi_square_matches_scipy_contingency_tables():
    """With one activation per credit the mass-weighted statistic is Pearson's X^2 of the 2 x K count table."""
    from scipy.stats import chi2_contingency

    ta, tb = hand_table(0), hand_table(1)
    h = significance.homogeneity(ta, tb, 8, min_expected=0.0)  # no pooling: every feature is a category
    for neuron in (0, 1, 4):  # equal activations within each neuron, so mass shares are count shares
        a, b = neuron_entries(ta, neuron), neuron_entries(tb, neuron)
        features = sorted(set(a) | set(b))
        table = [[a.get(f, (0, 0))[0] for f in features], [b.get(f, (0, 0))[0] for f in features]]
        if len(features) < 2:
            assert np.isnan(h.statistic[neuron]) and h.df[neuron] == 0
            continue
        want = chi2_contingency(table, correction=False)
        assert h.statistic[neuron] == pytest.approx(want.statistic, rel=1e-12)
        assert h.df[neuron] == want.dof


def test_pooling_thresholds_are_exact_at_their_boundaries():
    """The "other" category counts when it expects at least one credit: here exactly one (6 of 36 credits in the
    smaller stage, 1 + 5 pooled credits: 6 * 6 / 36 = 1). Computed as a sum of float shares it read
    0.9999999999999999, the category was dropped, df fell to 0 and the neuron came out untested (NaN, changed <NA>)
    where it has p = 0.306 (helper 331: row 2605 of MiniLM, PTB vs WikiText, POS: DET 6 vs DET 24, ADP 1, VERB 5)."""
    vocab = ["DET", "ADP", "VERB"]
    a = FeatureTable(vocab, np.array([0]), np.array([0]), np.array([12.0]), np.array([6]), np.zeros(3, np.int64))
    b = FeatureTable(vocab, np.array([0, 0, 0]), np.array([0, 1, 2]), np.array([48.0, 2.0, 10.0]),
                     np.array([24, 1, 5]), np.zeros(3, np.int64))
    h = significance.homogeneity(a, b, 1)
    assert h.df[0] == 1  # DET (30 * 6 / 36 = 5 expected) and "other" (1)
    # by hand: p_a = (1, 0), p_b = (0.8, 0.2), pooled (5/6, 1/6): X^2 = 6 * 30 / 36 * (0.04 / (5/6) + 0.04 / (1/6))
    assert h.statistic[0] == pytest.approx(5.0 * (0.04 * 6 / 5 + 0.04 * 6), rel=1e-12)
    # Cochran's threshold alike: two features expected exactly 5 credits each (77 * 10 / 154) are kept (they read
    # 4.999999999999999, both were pooled into one category: df 0, untested); 76 and 78 credits: one kept, one
    # pooled into "other" (expects 4.9); exactly 5 (40 * 7 / 56) and an "other" of 16 * 7 / 56 = 2
    for n_a, n_b, column in ((10, 144, 77), (10, 144, 76), (7, 49, 40)):
        ta = FeatureTable(["x", "y"], np.array([0, 0]), np.array([0, 1]), np.array([1.0, n_a - 1.0]),
                          np.array([1, n_a - 1]), np.zeros(2, np.int64))
        tb = FeatureTable(["x", "y"], np.array([0, 0]), np.array([0, 1]), np.array([column - 1.0, n_b - column + 1.0]),
                          np.array([column - 1, n_b - column + 1]), np.zeros(2, np.int64))
        assert significance.homogeneity(ta, tb, 1).df[0] == 1, (n_a, n_b, column)


def test_pvalues_match_a_slow_per_neuron_reference():
    ta, tb = hand_table(0), hand_table(1)
    tested = np.zeros(8, dtype=bool)
    tested[[n for n, (a, b) in HAND_BUILT.items() if a and b]] = True
    fast, design = significance.homogeneity_pvalues(ta, tb, 8, tested)
    slow = slow_pvalues(ta, tb, [int(n) for n in np.nonzero(tested)[0]])
    assert np.isnan(fast[~tested]).all()
    for neuron, p in slow.items():
        if math.isnan(p):
            assert math.isnan(fast[neuron]), neuron
        else:
            assert fast[neuron] == pytest.approx(p, rel=1e-9, abs=1e-15), neuron
    # not vacuous: neuron 1 moved from NOUN to VERB, neuron 0 kept its 50/50 split, neurons 2 and 4 have one
    # category (after pooling), 6 has an "other" category, 7 leaves DET out
    assert fast[1] < 1e-6 and fast[0] > 0.5 and math.isnan(fast[4]) and math.isnan(fast[2])
    h = significance.homogeneity(ta, tb, 8)
    assert h.df[6] == 2 and h.df[7] == 1 and 0 < fast[6] < 1 and 0 < fast[7] < 1
    for n in (0, 1, 2, 3, 6, 7):
        x, df = slow_chi_square(neuron_entries(ta, n), neuron_entries(tb, n))
        assert np.isnan(x) == np.isnan(h.statistic[n]) and (np.isnan(x) or h.statistic[n] == pytest.approx(x, rel=1e-12))
    assert design[0] >= 1.0 and design[1] >= 1.0
    # Helper 120: with a few texts per stage the design effect rests on them, not on prior_df + df_within degrees of
    # freedom: uncapped, 11% of neurons had p < 0.05 between two samples of 2 texts of one corpus
    for texts in ((2, 2), (5, 6), (400, 400)):
        capped, _ = significance.homogeneity_pvalues(ta, tb, 8, tested, texts=texts)
        slow = slow_pvalues(ta, tb, [int(n) for n in np.nonzero(tested)[0]], texts=texts)
        for neuron, p in slow.items():
            assert (math.isnan(p) and math.isnan(capped[neuron])) or capped[neuron] == pytest.approx(p, rel=1e-9)
    few, _ = significance.homogeneity_pvalues(ta, tb, 8, tested, texts=(2, 2))
    many, _ = significance.homogeneity_pvalues(ta, tb, 8, tested, texts=(400, 400))
    assert few[1] > 100 * fast[1] and np.array_equal(many, fast, equal_nan=True)



def test_min_expected_and_prior_df_taken_by_the_rule_of_one_number_are_used_as_floats():
    """Helper 402: counts.check_number (b39cda4) takes a 0-d tensor or a Fraction, but homogeneity and
    homogeneity_pvalues went on with the value given: min_expected=torch.tensor(5.0) ended in "TypeError: '>=' not
    supported between instances of 'numpy.ndarray' and 'Tensor'", prior_df=torch.tensor(30.0) and Fraction(30) in
    bare TypeErrors (at fb52d66 each was a ConfigurationError). Each is now its float: the p-values of 5.0 and 30.0."""
    import torch
    from fractions import Fraction

    ta, tb = hand_table(0), hand_table(1)
    tested = np.zeros(8, dtype=bool)
    tested[[n for n, (a, b) in HAND_BUILT.items() if a and b]] = True
    expected, design = significance.homogeneity_pvalues(ta, tb, 8, tested, min_expected=5.0, prior_df=30.0)
    for options in ({"min_expected": torch.tensor(5.0)}, {"min_expected": Fraction(5)},
                    {"prior_df": torch.tensor(30.0)}, {"prior_df": Fraction(30)}, {"prior_df": np.array(30.0)}):
        got, got_design = significance.homogeneity_pvalues(ta, tb, 8, tested, **options)
        assert type(got) is np.ndarray and np.array_equal(got, expected, equal_nan=True), options
        assert got_design == design and all(type(d) is float for d in got_design), options
    h = significance.homogeneity(ta, tb, 8, min_expected=torch.tensor(5.0))
    assert np.array_equal(h.statistic, significance.homogeneity(ta, tb, 8).statistic, equal_nan=True)

def test_tables_of_two_vocabularies_are_aligned_before_their_ids_are_compared():
    """Each profile numbers its values in the order it first saw them: hf_txray.homogeneity(a.tables["pos"],
    b.tables["pos"], ...) on two real profiles compared PROPN with ADJ (helper 183: PTB vs BBC flagged 539 neurons
    instead of compare's 74), without an error."""
    ta, tb = hand_table(0), hand_table(1)
    renumbered = tb.remapped(list(reversed(VOCAB)))  # the same statistics, ids in another order
    assert renumbered.vocab != ta.vocab
    tested = np.zeros(8, dtype=bool)
    tested[[n for n, (a, b) in HAND_BUILT.items() if a and b]] = True
    want, got = significance.homogeneity(ta, tb, 8), significance.homogeneity(ta, renumbered, 8)
    np.testing.assert_allclose(got.statistic, want.statistic, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(got.df, want.df)
    p_want, d_want = significance.homogeneity_pvalues(ta, tb, 8, tested)
    p_got, d_got = significance.homogeneity_pvalues(ta, renumbered, 8, tested)
    np.testing.assert_allclose(p_got, p_want, rtol=1e-12, equal_nan=True)
    assert d_got == pytest.approx(d_want)


@pytest.mark.parametrize("tested", [np.ones(8, dtype=np.int64), np.ones(7, dtype=bool), np.array([0, 1])])
def test_tested_rows_must_be_one_bool_flag_per_row(tested):
    """0/1 integers were read as row indices: every row came out untested (NaN), without an error."""
    with pytest.raises(hf_txray.ConfigurationError, match="bool array"):
        significance.homogeneity(hand_table(0), hand_table(1), 8, tested)


def test_benjamini_hochberg_matches_brute_force():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.003, 10), rng.uniform(0, 1, 90), [np.nan]])
    flags = significance.benjamini_hochberg(p, 0.05)
    valid = np.sort(p[~np.isnan(p)])
    m = len(valid)
    k = max([i for i in range(1, m + 1) if valid[i - 1] <= i / m * 0.05], default=0)
    expected = ~np.isnan(p) & (p <= (valid[k - 1] if k else -1))
    np.testing.assert_array_equal(flags, expected)
    assert 10 <= flags.sum() < 100 and not flags[-1]

@pytest.mark.parametrize("alpha", [5.0, 0.0, 1.0, -0.1, True, "0.05", float("nan")])
def test_benjamini_hochberg_refuses_an_alpha_outside_zero_one(alpha):
    """alpha=5 flagged every p-value and alpha=0 those of p = 0, without an error (compare checked its own alpha,
    the public function did not)."""
    with pytest.raises(hf_txray.ConfigurationError, match="alpha"):
        significance.benjamini_hochberg(np.array([0.01, 0.5, 0.9]), alpha)


def test_benjamini_hochberg_takes_a_list_and_refuses_what_is_not_a_p_value():
    assert significance.benjamini_hochberg([0.001, 0.9, float("nan")]).tolist() == [True, False, False]
    for p in ([0.01, 1.5], [0.01, float("inf")], [[0.01]]):
        with pytest.raises(hf_txray.ConfigurationError, match="p-values"):
            significance.benjamini_hochberg(p)

@pytest.mark.parametrize("option", [{"min_expected": math.nan}, {"min_expected": -1.0}, {"prior_df": -30.0},
                                    {"prior_df": 0.0}, {"prior_df": math.nan}, {"texts": (-5, 3)},
                                    {"texts": (4,)}])
def test_the_test_refuses_options_that_made_every_p_value_nan(option):
    """Helper 183: a NaN min_expected or prior_df, or a negative prior_df, gave p-values that were all NaN ("not
    tested"), without an error."""
    tested = np.ones(8, dtype=bool)
    with pytest.raises(hf_txray.ConfigurationError, match=next(iter(option))):
        significance.homogeneity_pvalues(hand_table(0), hand_table(1), 8, tested, **option)

def test_homogeneity_counts_every_row_tested_or_not():
    """Helper 183: rows left out of `tested` read count_a = count_b = 0, as if never credited."""
    ta, tb = hand_table(0), hand_table(1)
    tested = np.zeros(8, dtype=bool)
    tested[[0, 1]] = True
    h = significance.homogeneity(ta, tb, 8, tested)
    np.testing.assert_array_equal(h.count_a, np.bincount(ta.rows, weights=ta.count, minlength=8))
    np.testing.assert_array_equal(h.count_b, np.bincount(tb.rows, weights=tb.count, minlength=8))
    assert np.isnan(h.statistic[2:]).all() and not np.isnan(h.statistic[:2]).any()


# ----- noise floors and rankings in the report ----------------------------------------------------------------
def hand_profile(stage: str, side: int) -> Profile:
    table = hand_table(side)
    count = np.bincount(table.rows, weights=table.count, minlength=8).astype(np.int64).reshape(1, 8)
    mass = np.bincount(table.rows, weights=table.mass, minlength=8).reshape(1, 8)
    meta = ProfileMeta(model_id="m", site="mlp", layers=[0], num_neurons=8, feature_types=["pos"], stage=stage)
    return Profile(meta, mass, count, {"pos": table}, None, count // 2)


def test_noise_floors_match_brute_force():
    a, b = hand_profile("A", 0), hand_profile("B", 1)
    report = hf_txray.compare(a, b)
    s = report.summary()

    def dist(table: FeatureTable, neuron: int, half: str | None) -> dict[str, float]:
        out = {}
        for r, f, m, mo in zip(table.rows, table.feature_ids, table.mass, table.mass_odd):
            value = {"odd": mo, "even": m - mo, None: m}[half]
            if r == neuron and value > 0:
                out[VOCAB[f]] = value
        total = sum(out.values())
        return {k: v / total for k, v in out.items()}

    within_a, within_b, across = [], [], []
    for n, (ea, eb) in HAND_BUILT.items():
        halves = [dist(t, n, h) for t in (a.tables["pos"], b.tables["pos"]) for h in ("even", "odd")]
        if ea and eb and all(halves):
            ae, ao, be, bo = halves
            within_a.append(hf_txray.metrics.hellinger(ae, ao))
            within_b.append(hf_txray.metrics.hellinger(be, bo))
            across.append((hf_txray.metrics.hellinger(ae, bo) + hf_txray.metrics.hellinger(ao, be)) / 2)
    assert len(within_a) >= 4
    assert s["noise_floor_hellinger_pos_a"] == pytest.approx(np.mean(within_a))
    assert s["noise_floor_hellinger_pos_b"] == pytest.approx(np.mean(within_b))
    assert s["matched_hellinger_pos"] == pytest.approx(np.mean(across))
    # statuses at half size: neuron 5 is credited in A's both halves (3 credits: 1 odd, 2 even) and not in B
    assert s["matched_share_lost"] == pytest.approx(1 / 8)
    assert s["noise_floor_share_lost_a"] == 0.0
    assert s["share_changed_pos"] == pytest.approx(report.neurons["changed_pos"].sum() / 7)
    assert s["neurons_tested_pos"] == 5  # 2 and 4 have one category after pooling, 5 is lost
    assert s["share_of_tested_changed_pos"] == pytest.approx(report.neurons["changed_pos"].sum() / 5)
    # the report's test knows how many texts each stage holds (helper 120: 2 texts per stage flagged too often)
    for texts in ((2, 3), (400, 400)):
        few = [hand_profile(stage, side) for stage, side in (("A", 0), ("B", 1))]
        for profile, n in zip(few, texts):
            profile.meta.num_examples = n
        tested = report.neurons["p_hellinger_pos"].notna().to_numpy()
        want, _ = significance.homogeneity_pvalues(a.tables["pos"], b.tables["pos"], 8, tested, texts=texts)
        np.testing.assert_allclose(hf_txray.compare(*few).neurons["p_hellinger_pos"], want, rtol=1e-12)
    table = report.noise_table()
    assert list(table["figure"]) == ["mean Hellinger pos", "share lost", "share gained"]


def test_one_neuron_left_out_of_the_rankings_is_said_in_the_singular():
    """Helper 348: with one shared neuron under the credit floor, `hf-txray show`/`compare` and the dataset card said
    "1 shared neurons have too few credits and are not ranked"; they say "1 shared neuron has ... and is not ranked"."""
    from hf_txray.card import _report_tables

    report = hf_txray.compare(hand_profile("A", 0), hand_profile("B", 1))
    # credits (A, B) of the thin neurons: 2 (6, 8) and 4 (9, 12): at a floor of 9, neuron 2 alone is left out
    assert report.too_few_credits("pos", 9) == 1
    assert "; 1 shared neuron has too few credits and is not ranked)" in report_text(report, min_count=9)
    report.DEFAULT_MIN_COUNT = 9  # the card ranks at the report's floor
    assert "(1 shared neuron has too few credits and is not ranked):" in "\n".join(_report_tables(report))


def test_rankings_respect_min_count(tmp_path):
    a, b = hand_profile("A", 0), hand_profile("B", 1)
    report = hf_txray.compare(a, b)
    # counts (A, B): 0 (30, 30), 1 (40, 40), 2 (6, 8), 3 (20, 20), 4 (9, 12), 6 (43, 42), 7 (61, 60): only 2 and 4
    # have fewer than 20 credits in a stage
    assert set(report.most_changed(10, "pos")["neuron"]) == {0, 1, 3, 6, 7}
    assert set(report.least_changed(10, "pos")["neuron"]) == {0, 1, 3, 6, 7}
    assert set(report.most_changed(10, "pos", min_count=1)["neuron"]) == {0, 1, 2, 3, 4, 6, 7}
    assert report.too_few_credits("pos") == 2
    text = report_text(report)
    assert "2 shared neurons have too few credits" in text and "credited >= 20 times" in text
    assert "Hellinger distance between a neuron's preference distributions: 0 = the same, 1 = disjoint" in text
    # the per-layer table shows A -> B at half size beside both floors (helper 120: the full-size mean beside A's
    # floor alone read as change)
    header = next(line for line in text.splitlines() if line.lstrip().startswith("layer ") and "share_lost" in line)
    assert header.split()[-4:] == ["matched_hellinger_pos", "noise_floor_hellinger_pos_a",
                                   "noise_floor_hellinger_pos_b", "share_changed_pos"]
    from hf_txray import viewer
    from hf_txray.card import _report_tables

    view = viewer.ResultsView(source="x", profiles={"A": a, "B": b}, reports={report.name: report})
    assert set(viewer.transfer_table(view, report.name, "pos")["neuron"]) == {0, 1, 3, 6, 7}
    assert set(viewer.search_hellinger(view, report.name, "pos", 0.0, 1.0)["neuron"]) == {0, 1, 3, 6, 7}
    assert set(viewer.search_hellinger(view, report.name, "pos", 0.0, 1.0, min_count=1)["neuron"]) == \
        {0, 1, 2, 3, 4, 6, 7}
    card = "\n".join(_report_tables(report))
    assert "2 shared neurons have too few credits" in card and "noise floor A" in card
    # 17 tag values: the terminal shows 12, the largest share in any column (PUNCT, rare in A's corpus, takes much
    # of B's mass; the 12 most frequent in A's corpus hid it), and says so
    tags = [f"T{i:02d}" for i in range(16)] + ["PUNCT"]
    freq_a = [0.1 - 0.005 * i for i in range(16)] + [0.001]
    report.mass_share = pd.DataFrame({"feature_type": "pos", "feature": tags, "mass_share_a": freq_a,
                                      "mass_share_b": [f * 0.5 for f in freq_a[:16]] + [0.3],
                                      "corpus_frequency_a": freq_a, "corpus_frequency_b": freq_a})
    shown = report_text(report).split("pos mass share in A and B vs corpus frequency")[1].split("\n\n")[0]
    assert "(12 of 17 values: the largest share in any column)" in shown
    assert "PUNCT" in shown and "T00" in shown and "T11" not in shown and "T15" not in shown


def test_compare_warns_when_stage_sizes_differ_more_than_twice():
    a = hand_profile("A", 0)
    b = hand_profile("B", 1)
    bigger = Profile(dataclasses.replace(b.meta), b.neuron_mass, b.neuron_count * 3, b.tables, None, b.neuron_count_odd)
    with pytest.warns(UserWarning, match="max_positions"):
        hf_txray.compare(a, bigger, test=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hf_txray.compare(a, b, test=False)


# ----- calibration --------------------------------------------------------------------------------------------
@functools.cache
def text_profiles(source: str, num_texts: int) -> list[Profile]:
    """One profile per text (so that random splits are merges), each counted in its text's half."""
    from hf_txray import corpora

    texts = (corpora.penn_treebank("valid")["text"] if source == "ptb"
             else [t[:300] for t in corpora.bbc_news(num_samples=num_texts)["text"]])
    model, tokenizer = tiny("bert")
    return [as_example(hf_txray.analyze(model, texts[i:i + 1], tokenizer=tokenizer, features=("token", "pos"),
                                        max_examples_per_neuron=0, show_progress=False), i) for i in range(num_texts)]


def as_example(profile: Profile, example_id: int) -> Profile:
    """A one-text profile (example id 0) as the text `example_id` of a larger run: an odd id moves every credit
    into the odd half, as one run over the whole corpus would have counted it."""
    if example_id % 2 == 0:
        return profile
    tables = {ft: dataclasses.replace(t, mass_odd=t.mass.copy(), count_odd=t.count.copy())
              for ft, t in profile.tables.items()}
    return Profile(profile.meta, profile.neuron_mass, profile.neuron_count, tables, profile.examples,
                   profile.neuron_count.copy(), profile.position_mass)


def merged(parts: list[Profile]) -> Profile:
    return Profile._merge_shards(parts)  # the parts already carry their place in the corpus (as_example)


def test_calibration_random_half_splits_and_a_real_domain_shift():
    """20 seeded random half-splits of one corpus (64 PTB sentences, each to a random half): the share of shared
    neurons flagged at alpha = 0.05 stays within alpha + 0.02 (the tolerance covers the estimated design effect).
    PTB against BBC News at a similar size flags clearly more."""
    parts = text_profiles("ptb", 64)
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(20):
        order = rng.permutation(len(parts))
        a, b = merged([parts[i] for i in order[:32]]), merged([parts[i] for i in order[32:]])
        summary = hf_txray.compare(a, b).summary()
        shares += [summary["share_changed_token"], summary["share_changed_pos"]]
    assert np.mean(shares) <= 0.05 + 0.02
    from hf_txray import corpora

    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token", "pos"), show_progress=False, max_examples_per_neuron=0)
    ptb = hf_txray.analyze(model, corpora.penn_treebank("valid")["text"][:200], **options)
    bbc = hf_txray.analyze(model, [t[:600] for t in corpora.bbc_news(num_samples=30)["text"]],
                           max_positions=ptb.meta.num_positions, **options)
    shift = hf_txray.compare(ptb, bbc).summary()
    null = max(np.mean(shares), 0.01)
    # measured: 11 (token) and 21 (pos) of the 79 shared neurons at a0e4ec2, against none on random halves, the same
    # with the BBC texts read before or after the UTF-8 fix 238fdf1 (12 and 18 on 2026-12-05, 9 and 18 before 42d3984)
    assert shift["share_changed_token"] > max(0.08, 4 * null) and shift["share_changed_pos"] > max(0.15, 4 * null)


def test_same_corpus_compares_the_same_halves():
    """Two stages on the same texts: their half-size figure pairs even with even and odd with odd, so a profile
    against itself shows no change at half size either, while its noise floor (other texts) is well above 0."""
    profile = engine("gpt2")
    report = hf_txray.compare(profile, profile)
    s = report.summary()
    assert report.meta.same_corpus
    assert s["matched_hellinger_pos"] == pytest.approx(0.0, abs=1e-6)
    assert s["matched_share_lost"] == s["matched_share_gained"] == 0.0
    # helper 135: a Trainer's probe (num_samples=512 of fewer texts) and analyze of the same texts had other dataset
    # fingerprints (a select of every row), and were compared as other corpora with crossed halves, silently
    model, tokenizer = tiny("gpt2")
    common = dict(tokenizer=tokenizer, features=FEATURES, batch_size=3, max_examples_per_neuron=2,
                  show_progress=False, skip_first_positions=0)
    capped = hf_txray.analyze(model, list(TEXTS), num_samples=512, **common)
    assert capped.meta.dataset_fingerprint == profile.meta.dataset_fingerprint
    first = hf_txray.analyze(model, list(TEXTS)[:4], **common)
    other = copy.deepcopy(profile)
    other.meta = dataclasses.replace(profile.meta, dataset_fingerprint="another")
    assert hf_txray.compare(profile, other).meta.same_corpus  # the same texts by their hash
    # helper 165: a dataset whose fingerprint stayed while its texts changed (a map reading a file): not the same
    changed = copy.deepcopy(profile)
    dataset = dict(profile.meta.provenance["dataset"], texts_hash="sha256:" + "0" * 64,
                   texts_multiset_hash="sha256-sum:" + "0" * 64)  # other texts: in order and in any order
    changed.meta = dataclasses.replace(profile.meta, provenance={**profile.meta.provenance, "dataset": dataset})
    assert changed.meta.dataset_fingerprint == profile.meta.dataset_fingerprint
    assert not hf_txray.compare(profile, changed).meta.same_corpus
    assert not hf_txray.compare(profile, first).meta.same_corpus
    # helper 137: a stage stopped early by max_positions read fewer of the same dataset's texts: not the same corpus
    stopped = hf_txray.analyze(model, list(TEXTS), max_positions=20, **common)
    assert stopped.meta.dataset_fingerprint == profile.meta.dataset_fingerprint
    assert stopped.meta.num_examples < profile.meta.num_examples
    assert not hf_txray.compare(profile, stopped).meta.same_corpus
    assert s["noise_floor_hellinger_pos_a"] > 0.1 and s["share_changed_pos"] == 0.0


def test_a_merged_profile_against_the_whole_corpus_pairs_like_halves_when_told():
    """A merged profile's fingerprint ("a+b") never equals the whole corpus's: its half-size figure paired other
    texts and sat at the noise floor, silently. Now a warning says so, and same_corpus=True pairs like halves
    (where a part lacks texts_multiset_hash: with it, the merge is told the same corpus, as tested below)."""
    whole = engine("gpt2")
    half = len(TEXTS) // 2
    merged = without_texts_multiset_hash(engine("gpt2", texts=tuple(TEXTS[:half]))).merge(
        engine("gpt2", texts=tuple(TEXTS[half:])))
    with pytest.warns(UserWarning, match="merged from parts.*same_corpus=True"):
        guessed = hf_txray.compare(whole, merged)
    assert not guessed.meta.same_corpus and guessed.summary()["matched_hellinger_pos"] > 0.1
    told = hf_txray.compare(whole, merged, same_corpus=True)
    assert told.meta.same_corpus and told.summary()["matched_hellinger_pos"] == pytest.approx(0.0, abs=1e-6)
    for bad in (dict(same_corpus="yes"), dict(alpha="0.1"), dict(alpha=True), dict(num_resamples=True)):
        with pytest.raises(hf_txray.ConfigurationError, match=next(iter(bad))):
            hf_txray.compare(whole, merged, **bad)


def test_the_same_texts_shuffled_are_the_same_corpus():
    """Helper 310: the same texts in another order were compared as other corpora (the texts' hash is in order), so
    the half-size figures crossed the halves: matched_hellinger_pos 0.832 (matched share lost 0.138) for a profile
    against itself reversed, where like halves give 0. A text's half is drawn from its content, so like halves hold the same texts in any
    order: the texts' hash in any order (`texts_multiset_hash`) tells them, in memory and streamed; halves split by
    example id hold other texts once shuffled, and stay other corpora."""
    profile = engine("gpt2")
    shuffled = engine("gpt2", texts=tuple(reversed(TEXTS)))
    reordered = hf_txray.compare(profile, shuffled)
    assert reordered.meta.same_corpus
    assert reordered.summary()["matched_hellinger_pos"] == pytest.approx(0.0, abs=1e-6)
    model, tokenizer = tiny("gpt2")
    streamed = hf_txray.analyze(model, (t for t in reversed(TEXTS)), tokenizer=tokenizer, features=FEATURES,
                                batch_size=3, skip_first_positions=0, max_examples_per_neuron=2, show_progress=False)
    assert hf_txray.compare(profile, streamed).meta.same_corpus
    assert not hf_txray.compare(profile, engine("gpt2", texts=tuple(TEXTS[:-1]) + ("the end !",))).meta.same_corpus
    by_id = [copy.deepcopy(p) for p in (profile, shuffled)]
    for p in by_id:
        p.meta = dataclasses.replace(p.meta, split_halves="example_id")
    assert not hf_txray.compare(*by_id).meta.same_corpus


def without_texts_multiset_hash(profile: Profile) -> Profile:
    """`profile` as saved before texts_multiset_hash was recorded (or a stream not read whole)."""
    profile = copy.deepcopy(profile)
    dataset = {**profile.meta.provenance["dataset"], "texts_multiset_hash": None}
    profile.meta.provenance = {**profile.meta.provenance, "dataset": dataset}
    return profile


def test_a_merged_profile_of_the_same_texts_is_the_same_corpus_by_its_parts_hashes(tmp_path):
    """texts_multiset_hash (a sum of per-text sha256, modulo 2**256) was left out of a merge: the merged profile kept
    its first part's, which compare never read, so a merge of the same texts as a whole profile (or as another
    merge, split otherwise) warned 'cannot tell whether they are the same texts' and compared them as other corpora:
    matched_hellinger_pos 0.82 where like halves give 0. The merge now adds up its parts' sums (saved, and carried
    by a later merge); a part without one leaves it unknown, and compare warns as before."""
    import hashlib

    whole = engine("gpt2")
    half, third = len(TEXTS) // 2, len(TEXTS) // 3
    merged = engine("gpt2", texts=tuple(TEXTS[:half])).merge(engine("gpt2", texts=tuple(TEXTS[half:])))
    # own reference: each text's sha256 (its UTF-8 length, 8 bytes little endian, then its bytes), summed
    total = sum(int.from_bytes(hashlib.sha256(len(t.encode()).to_bytes(8, "little") + t.encode()).digest(), "little")
                for t in TEXTS) % (1 << 256)
    recorded = merged.meta.provenance["merged_texts_multiset_hash"]
    assert recorded == whole.meta.provenance["dataset"]["texts_multiset_hash"]
    assert recorded == "sha256-sum:" + total.to_bytes(32, "little").hex()
    merged.save_pretrained(tmp_path / "merged")
    regrouped = engine("gpt2", texts=tuple(TEXTS[third:])).merge(engine("gpt2", texts=tuple(TEXTS[:third])))
    for a, b in ((whole, merged), (merged, whole), (Profile.from_pretrained(tmp_path / "merged"), regrouped)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", message="Both profiles are named stage")  # 901b4da: both "default"
            report = hf_txray.compare(a, b)
        assert report.meta.same_corpus
        assert report.summary()["matched_hellinger_pos"] == pytest.approx(0.0, abs=1e-6)
    three = engine("gpt2", texts=tuple(TEXTS[:third])).merge(engine("gpt2", texts=tuple(TEXTS[third:half])))
    assert three.merge(engine("gpt2", texts=tuple(TEXTS[half:]))).meta.provenance[
        "merged_texts_multiset_hash"] == recorded
    unknown = without_texts_multiset_hash(engine("gpt2", texts=tuple(TEXTS[:half]))).merge(
        engine("gpt2", texts=tuple(TEXTS[half:])))
    assert unknown.meta.provenance["merged_texts_multiset_hash"] is None
    with pytest.warns(UserWarning, match="merged from parts"):
        assert not hf_txray.compare(whole, unknown).meta.same_corpus


def test_the_same_texts_in_another_order_stopped_by_max_positions_are_other_corpora():
    """Helper 317: `max_positions` stops a run at a prefix of its texts, and the prefixes of the same texts in two
    orders are other texts: yet the texts' hash in any order (of the whole corpus) and the same count of texts read
    (4 of 11 at max_positions=60) made compare pair them as the same corpus (`same_corpus` True, matched Hellinger
    of POS 0.937 between halves of other texts; 0.854 crossed, as other corpora)."""
    a = engine("gpt2", max_positions=60)
    b = engine("gpt2", texts=tuple(reversed(TEXTS)), max_positions=60)
    assert a.meta.num_examples == b.meta.num_examples < len(TEXTS)
    assert a.meta.provenance["dataset"]["texts_multiset_hash"] == b.meta.provenance["dataset"]["texts_multiset_hash"]
    assert not hf_txray.compare(a, b).meta.same_corpus
    assert hf_txray.compare(a, engine("gpt2", max_positions=60)).meta.same_corpus  # the same order: the same prefix
    # what a merge adds up for a part (hf_txray.merge reads it so): no hash of a part stopped at a prefix
    from hf_txray.profile import recorded_texts_multiset_hash
    assert recorded_texts_multiset_hash(a.meta) is None
    assert recorded_texts_multiset_hash(engine("gpt2").meta) is not None


def test_the_same_texts_in_another_order_stopped_inside_their_last_text_are_other_corpora():
    """Fresh eyes on 0ed7c22: a run that `max_positions` stops inside its last text counts that text, so it reads
    as many texts as the corpus holds (num_examples == num_texts) though it credited only part of that text. Two
    orders of the same 8 texts (two long ones, each last in one order), stopped at max_positions 520 of 815:
    each read all 8 texts and left ~300 positions of another long text uncredited, yet compare paired them as the
    same corpus (same_corpus True, matched Hellinger of tokens 0.589 between halves of other positions; 0.753 as
    other corpora)."""
    short = [t for t in SAMPLE_TEXTS if t.strip()]
    first, second = " ".join(short * 2), " ".join(reversed(short * 2)) + " end"
    model, tokenizer = tiny("gpt2")
    common = dict(features=("token",), show_progress=False)
    whole = hf_txray.analyze(model, short + [second, first], tokenizer=tokenizer, **common)
    limit = whole.meta.num_positions - 300  # both long texts hold more than 300 positions (328 and 330)
    a = hf_txray.analyze(model, short + [second, first], tokenizer=tokenizer, stage="a", max_positions=limit,
                         **common)
    b = hf_txray.analyze(model, short + [first, second], tokenizer=tokenizer, stage="b", max_positions=limit,
                         **common)
    assert a.meta.num_examples == b.meta.num_examples == len(short) + 2  # the last text counts: part of it read
    assert a.meta.num_positions == b.meta.num_positions == limit
    assert not hf_txray.compare(a, b).meta.same_corpus
    from hf_txray.profile import recorded_texts_multiset_hash
    assert recorded_texts_multiset_hash(a.meta) is None
    # a limit the corpus does not reach credits every position: the same corpus, in any order
    c, d = (hf_txray.analyze(model, texts, tokenizer=tokenizer, stage=stage, max_positions=whole.meta.num_positions + 1,
                             **common) for texts, stage in ((short + [second, first], "c"), (short + [first, second], "d")))
    assert hf_txray.compare(c, d).meta.same_corpus


def test_a_merged_profile_of_other_texts_of_the_same_count_is_compared_without_a_same_corpus_warning():
    """A stage merged from parts, compared with a stage of as many other texts (a pretrained corpus against a task
    corpus of the same size), warned "cannot tell whether they are the same texts": the fingerprints cannot tell
    (a merge's "a+b" never equals the whole's), but the positions can. Both stages split their texts alike (one
    tokenizer, the same options), and the same texts give the same number of positions and the same corpus counts
    of every feature value; these differ, so the corpora do. The whole corpus against its merged parts still warns."""
    half = len(TEXTS) // 2
    merged = engine("gpt2", texts=tuple(TEXTS[:half])).merge(engine("gpt2", texts=tuple(TEXTS[half:])))
    other = engine("gpt2", texts=tuple(f"{text} And then some more words." for text in TEXTS))
    assert other.meta.num_examples == merged.meta.num_examples and "+" in merged.meta.dataset_fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Both profiles are named stage")  # 901b4da: both "default"
        warnings.filterwarnings("ignore", message=r".* in credits")  # longer texts: 1.7x the credits (helper 445)
        for pair in ((other, merged), (merged, other)):
            assert not hf_txray.compare(*pair).meta.same_corpus
    # as many positions but other texts: told apart by the counts of their feature values
    swapped = engine("gpt2", texts=tuple(TEXTS[:-1]) + ("the end !",))
    assert swapped.meta.num_positions == merged.meta.num_positions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Both profiles are named stage")  # 901b4da: both "default"
        assert not hf_txray.compare(swapped, merged).meta.same_corpus
    unknown = without_texts_multiset_hash(engine("gpt2", texts=tuple(TEXTS[:half]))).merge(
        engine("gpt2", texts=tuple(TEXTS[half:])))
    with pytest.warns(UserWarning, match="merged from parts"):  # the same texts, a part's hash unknown: cannot be told
        hf_txray.compare(engine("gpt2"), unknown)


def test_test_option_and_deprecated_resampling_arguments():
    a, b = hand_profile("A", 0), hand_profile("B", 1)
    tested = hf_txray.compare(a, b)
    assert tested.neurons["p_hellinger_pos"].notna().sum() == 5 and tested.meta.test.startswith("chi-square")
    for skipped in (hf_txray.compare(a, b, test=False), hf_txray.compare(a, b, num_resamples=0)):
        assert skipped.neurons["p_hellinger_pos"].isna().all() and not skipped.neurons["changed_pos"].any()
        assert skipped.meta.test == "" and skipped.summary()["noise_floor_hellinger_pos_a"] == \
            tested.summary()["noise_floor_hellinger_pos_a"]
    with pytest.warns(FutureWarning, match="num_resamples"):
        old = hf_txray.compare(a, b, num_resamples=1000)
    with pytest.warns(FutureWarning, match="seed"):
        hf_txray.compare(a, b, seed=3)
    np.testing.assert_array_equal(old.neurons["p_hellinger_pos"], tested.neurons["p_hellinger_pos"])
    with pytest.raises(hf_txray.ConfigurationError, match="num_resamples"):
        hf_txray.compare(a, b, num_resamples=-1)


def test_no_neuron_tested_gives_unknown_shares_not_zero(tmp_path):
    """Two tiny profiles where no shared neuron has enough credits to test: the changed figures are NaN (unknown),
    not 0.0 ("none changed"), in the summary, the layer table and the card."""
    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token", "word"), show_progress=False)
    # two texts a stage, one in each split half (odd_half: the halves are drawn from the texts' content)
    a = hf_txray.analyze(model, ["A short text.", "One more text."], **options)
    b = hf_txray.analyze(model, ["Some other words now.", "And more of them."], **options)
    assert [odd_half(t) for t in ("A short text.", "One more text.", "Some other words now.", "And more of them.")] \
        == [False, True, True, False]
    report = hf_txray.compare(a, b)
    s = report.summary()
    for ft in ("token", "word"):  # helper 183: the second feature type's count read NaN ("not run"), the first's 0
        assert s[f"neurons_tested_{ft}"] == 0 and (report.layers[f"neurons_tested_{ft}"] == 0).all(), ft
        assert np.isnan(s[f"share_changed_{ft}"]) and np.isnan(s[f"neurons_changed_{ft}"])
        assert report.layers[f"share_changed_{ft}"].isna().all()
    report.save_pretrained(tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    assert "no shared neuron could be tested for change beyond sampling noise (too few credits" in card
    assert "0.0% of the shared" not in card


def test_untested_neurons_are_neither_changed_nor_kept(tmp_path):
    """Helper 226: a shared neuron the test could not judge (no p-value) had changed_<ft> False, so the README's
    "kept: shared and not changed" (``shared & ~changed``) counted it as kept. Its flag is <NA> now, which pandas'
    indexing takes as False both ways; the judged neurons keep True/False, and the flags survive save and load."""
    parts = text_profiles("ptb", 40)
    a, b = merged(parts[:20]), merged(parts[20:])
    report = hf_txray.compare(a, b)
    frame = report.neurons
    for ft in ("token", "pos"):
        changed, tested = frame[f"changed_{ft}"], frame[f"p_hellinger_{ft}"].notna()
        assert changed.dtype == "boolean"
        assert (tested & (frame.status == "shared")).any() and (~tested & (frame.status == "shared")).any(), ft
        assert changed.isna().equals(~tested), ft
        kept = frame[(frame.status == "shared") & ~changed]
        assert kept[f"p_hellinger_{ft}"].notna().all() and len(kept) == int((tested & ~changed.fillna(True)).sum())
    report.save_pretrained(tmp_path / "r")
    again = type(report).from_pretrained(tmp_path / "r")
    pd.testing.assert_series_equal(again.neurons["changed_pos"], frame["changed_pos"])


def test_report_saved_with_plain_bool_flags_loads_untested_as_unknown(tmp_path):
    """A report saved before changed_<ft> was nullable holds False for untested neurons (bool column, same format
    version): loaded as it was, ``shared & ~changed`` counted them as kept again. Loading gives them <NA>."""
    parts = text_profiles("ptb", 20)
    report = hf_txray.compare(merged(parts[:10]), merged(parts[10:]))
    untested = report.neurons["changed_pos"].isna()
    assert untested.any() and (~untested).any()
    report.neurons["changed_pos"] = report.neurons["changed_pos"].fillna(False).astype(bool)  # as 8521438 saved it
    report.save_pretrained(tmp_path / "old")
    again = type(report).from_pretrained(tmp_path / "old").neurons["changed_pos"]
    assert again.dtype == "boolean" and again.isna().equals(untested)
    assert again[~untested].tolist() == report.neurons["changed_pos"][~untested].tolist()


def test_with_the_test_switched_off_the_tested_and_changed_counts_are_unknown_not_zero(tmp_path):
    """Helper 176: compare(test=False) gave neurons_tested 0 ("no neuron could be tested") in the summary, the layer
    table and the card, as if the test had run and found too few credits; the counts are NaN and the card says the
    test was not run. The same report with the test keeps its counts."""
    a, b = hand_profile("A", 0), hand_profile("B", 1)
    tested = hf_txray.compare(a, b).summary()
    assert tested["neurons_tested_pos"] == 5 and not math.isnan(tested["share_of_tested_changed_pos"])
    for skipped in (hf_txray.compare(a, b, test=False), hf_txray.compare(a, b, num_resamples=0)):
        s = skipped.summary()
        for name in ("neurons_tested", "neurons_changed", "share_changed", "share_of_tested_changed"):
            assert math.isnan(s[f"{name}_pos"]), name
            assert skipped.layers[f"{name}_pos"].isna().all(), name
        assert s["noise_floor_hellinger_pos_a"] == tested["noise_floor_hellinger_pos_a"]  # the floors still are
    skipped.save_pretrained(tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    assert "the per-neuron test of change beyond sampling noise was not run (compare(test=False))" in card
    assert "could be tested" not in card
    loaded = type(skipped).from_pretrained(tmp_path / "r")
    assert math.isnan(loaded.summary()["neurons_tested_pos"])


def test_counts_of_tested_and_changed_neurons_are_integers_in_memory_on_disk_and_in_datasets(tmp_path):
    """The counts neurons_changed_<ft> and neurons_tested_<ft> (and the summary's neurons) were float64 in the
    summary, the layer table and the Hub's summary config (3.0 tested). They are ints, null where the test did not
    run, and ``datasets`` reads them back as int64 with nulls. A report saved with float counts still loads."""
    import datasets

    a, b, c = hand_profile("A", 0), hand_profile("B", 1), hand_profile("C", 1)
    tested, untested = hf_txray.compare(a, b), hf_txray.compare(a, c, test=False)
    s = tested.summary()
    assert [type(s[k]) for k in ("neurons", "neurons_tested_pos", "neurons_changed_pos")] == [int, int, int]
    assert s["neurons_tested_pos"] == 5 and s["neurons_changed_pos"] == int(tested.neurons["changed_pos"].sum())
    for report in (tested, untested):
        for name in ("neurons_tested_pos", "neurons_changed_pos"):
            assert report.layers[name].dtype == "Int64", name
    assert untested.layers["neurons_tested_pos"].isna().all() and math.isnan(untested.summary()["neurons_tested_pos"])
    folder = hf_txray.save_to_disk(tmp_path / "export", [a, b, c], [tested, untested], plots=False)
    rows = datasets.load_dataset("parquet", data_files=str(folder / "summary" / "*.parquet"), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    for name in ("neurons", "neurons_tested_pos", "neurons_changed_pos"):
        assert rows.features[name].dtype == "int64", name
    got = {(r["report"], r["kind"]): (r["neurons_tested_pos"], r["neurons_changed_pos"]) for r in rows
           if r["kind"] != "mass_share"}
    assert got[(tested.name, "model")] == (5, s["neurons_changed_pos"])
    assert got[(tested.name, "layer")] == (5, s["neurons_changed_pos"])  # one layer
    assert got[(untested.name, "model")] == got[(untested.name, "layer")] == (None, None)
    assert hf_txray.load(folder).reports[tested.name] == tested
    # saved before the counts were ints: the layer table held float64 counts (recomputed, or cast when it is kept)
    old = copy.copy(tested)
    old.layers = tested.layers.astype({"neurons_tested_pos": float, "neurons_changed_pos": float})
    old.save_pretrained(tmp_path / "old")
    assert hf_txray.TransferReport.from_pretrained(tmp_path / "old").layers.equals(tested.layers)
    kept = report_module._current_layer_table(tested.neurons.drop(columns="length_a_pos"), tested.meta, old.layers)
    assert kept["neurons_tested_pos"].dtype == "Int64" and kept.equals(tested.layers)


def test_a_report_holding_float_counts_in_memory_exports_beside_a_current_one(tmp_path):
    """Brief 438: a report object from before the counts were ints (unpickled from a file an earlier hf_txray wrote:
    its layer table keeps float64 neurons_tested_<ft> / neurons_changed_<ft>) wrote them as double in the summary
    config, and save_to_disk of it beside a current report failed with ArrowTypeError ("Unable to merge: Field
    neurons_changed_pos has incompatible types: double vs int64"). The config holds them as int64 with nulls."""
    import pyarrow.parquet as pq

    a, b, c = hand_profile("A", 0), hand_profile("B", 1), hand_profile("C", 1)
    old_tested, untested = hf_txray.compare(a, b), hf_txray.compare(a, c, test=False)
    counts = {"neurons_tested_pos": float, "neurons_changed_pos": float}
    old_tested.layers = old_tested.layers.astype(counts)
    old_untested = copy.copy(untested)
    old_untested.layers = untested.layers.astype(counts)
    for reports in ([old_tested, untested], [old_untested, hf_txray.compare(a, b)]):
        folder = hf_txray.save_to_disk(tmp_path / reports[0].name.replace(">", ""), [a, b, c], reports, plots=False)
        table = pq.read_table(next((folder / "summary").glob("*.parquet")))
        rows = table.to_pandas()
        for name in counts:
            assert table.schema.field(name).type == "int64", name
        got = {(r, k): v for r, k, v in zip(rows["report"], rows["kind"], rows["neurons_tested_pos"])
               if k != "mass_share"}
        assert got[("A->B", "model")] == got[("A->B", "layer")] == 5
        assert np.isnan(got[("A->C", "model")]) and np.isnan(got[("A->C", "layer")])


def test_a_stage_credited_in_one_half_only_has_no_noise_figures_and_says_why(tmp_path):
    """A stage of one text (or max_positions reached within the first text) has an empty odd half: every active
    neuron counted as "lost between halves" (a 31% floor), and the design effect fell back to 1 silently (found by a
    fresh helper). The report now has no p-values or floors, warns, and its card says why."""
    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token",), show_progress=False)
    texts = [t for t in SAMPLE_TEXTS if t.strip()]
    a = hf_txray.analyze(model, texts, **options)
    one = hf_txray.analyze(model, [" ".join(texts)], **options)
    assert one.neuron_count_odd.sum() == 0 < one.neuron_count.sum()
    with pytest.warns(UserWarning, match=r"no p-values or noise floors: stage\(s\) \['default'\] credited texts of "
                                         r"one split half only"):
        report = hf_txray.compare(a, one)
    s = report.summary()
    assert "matched_share_lost" not in s and "noise_floor_share_lost_a" not in s
    assert report.neurons["p_hellinger_token"].isna().all() and not report.neurons["changed_token"].any()
    assert np.isnan(s["share_changed_token"]) and report.meta.dispersion == {}
    report.save_pretrained(tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    assert "No noise floors or per-neuron test: stage(s) ['default'] credited texts of one split half only" in card
    assert hf_txray.TransferReport.from_pretrained(tmp_path / "r").meta.no_noise_reason == report.meta.no_noise_reason
    assert "(no noise floors or p-values: stage(s) ['default'] credited texts of one split half only" in report_text(report)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        both = hf_txray.compare(a, a)  # two halves each: figures as before
    assert not both.meta.no_noise_reason and "matched_share_lost" in both.summary()


@pytest.mark.parametrize("num_texts", [2, 5])
def test_a_stage_of_a_few_texts_that_all_drew_one_half_shows_no_noise_floor_anywhere(num_texts):
    """Gap 2 (helper 254): a stage of 2-5 distinct texts has all of them in one split half with probability 2 / 2^n
    (50% for 2 texts, 6% for 5). The report has no floors then (NaN, with the reason), but the viewer's notes read
    "at half size nan, against a noise floor of nan between two halves of A and nan of B (only the excess is
    change)"; they now say that no noise floor exists and why, as `show` and the card do."""
    from hf_txray.hashes import text_halves
    from hf_txray.viewer import ResultsView
    from hf_txray.viewer.figures import figure_notes

    pool = [f"sentence number {i} about a {word} cat ." for i, word in enumerate(["black", "white", "grey"] * 8)]
    halves = text_halves(pool)
    few = [text for text, half in zip(pool, halves) if half == halves[0]][:num_texts]
    assert len(set(few)) == num_texts and len(set(text_halves(few).tolist())) == 1  # distinct, one half
    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token",), show_progress=False)
    a = hf_txray.analyze(model, [t for t in SAMPLE_TEXTS if t.strip()], stage="a", **options)
    b = hf_txray.analyze(model, few, stage="b", **options)
    with pytest.warns(UserWarning, match=r"no p-values or noise floors: stage\(s\) \['b'\]"):
        report = hf_txray.compare(a, b)
    s = report.summary()
    assert all(math.isnan(s[name]) for name in ("matched_hellinger_token", "noise_floor_hellinger_token_a",
                                                 "noise_floor_hellinger_token_b", "share_changed_token"))
    assert report.noise_table()[["A -> B at half size", "noise floor A", "noise floor B"]].isna().all().all()
    assert "(no noise floors or p-values: stage(s) ['b']" in report_text(report)
    notes = figure_notes(ResultsView("here", {"a": a, "b": b}, {"a->b": report}), feature_type="token")
    assert "nan" not in notes.split("\n")[0]  # was: "at half size nan, against a noise floor of nan ..."
    assert "no noise floor, so how much of it is sampling noise is unknown: stage(s) ['b']" in notes


def test_a_feature_credited_in_one_half_only_has_no_test_of_its_own_and_says_why(tmp_path):
    """The same for one feature type: a user feature whose values all come from one text per stage (its digits) has
    an empty half while the stages' own halves are not, so its design effect fell back to 1 and 6 neurons were
    flagged "changed beyond sampling noise" between two stages whose digits came from one text each (a fresh tester).
    That feature now has no p-values or floors, with a warning, and the card and `show` say why; tokens keep theirs."""
    def digit_parity(text):
        return [(i, i + 1, "odd" if int(c) % 2 else "even") for i, c in enumerate(text) if c.isdigit()]

    feature = hf_txray.UserFeature("digit_parity", digit_parity)
    plain = ["the cat sat on the mat today", "a dog ran in the park", "the bird sang in a tree", "my cat likes the sun",
             "she reads a book at night", "we walk to the old town", "he plays the piano well",
             "they ate lunch outside", "it rained all day long"]
    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token", feature), show_progress=False)
    a = hf_txray.analyze(model, [" ".join("1 3 5 7 9 1 3 5 2".split() * 10)] + plain, stage="A", **options)
    b = hf_txray.analyze(model, [" ".join("2 4 6 8 0 2 4 6 1".split() * 10)] + plain, stage="B", **options)
    assert a.tables["digit_parity"].count_odd.sum() == 0 < a.tables["digit_parity"].count.sum()
    with pytest.warns(UserWarning, match=r"no p-values or noise floors of digit_parity: stage\(s\) \['A', 'B'\] "
                                         r"credited digit_parity values in texts of one split half only"):
        report = hf_txray.compare(a, b)
    neurons, s = report.neurons, report.summary()
    assert neurons["p_hellinger_digit_parity"].isna().all() and not neurons["changed_digit_parity"].any()  # was 6
    assert neurons["hellinger_digit_parity"].notna().sum() >= 6  # the distances themselves stay
    assert np.isnan(s["share_changed_digit_parity"]) and np.isnan(s["noise_floor_hellinger_digit_parity_a"])
    assert neurons["p_hellinger_token"].notna().any() and not report.meta.no_noise_reason
    assert list(report.meta.no_noise_features) == ["digit_parity"] and "digit_parity" not in report.meta.dispersion
    assert "(no noise floors or p-values of digit_parity: stage(s) ['A', 'B'] credited" in report_text(report)
    report.save_pretrained(tmp_path / "r")
    # the feature's name is markdown text in the card (digit\_parity renders as digit_parity)
    assert "No noise floors or per-neuron test of digit\\_parity: stage(s) ['A', 'B']" in \
        (tmp_path / "r" / "README.md").read_text()
    assert hf_txray.TransferReport.from_pretrained(tmp_path / "r") == report


def test_a_test_that_could_not_run_counts_no_neuron_tested_as_unknown_not_zero(tmp_path):
    """Without split halves (a stage of one text; a feature credited in texts of one half only) the per-neuron test
    does not run, yet the summary and every layer row read neurons_tested 0, which reads "tested, none changed".
    They are NaN, as for compare(test=False); a feature type whose test ran keeps its count."""
    def digit_parity(text):
        return [(i, i + 1, "odd" if int(c) % 2 else "even") for i, c in enumerate(text) if c.isdigit()]

    model, tokenizer = tiny("bert")
    feature = hf_txray.UserFeature("digit_parity", digit_parity)
    options = dict(tokenizer=tokenizer, features=("token", feature), show_progress=False)
    texts = [t for t in SAMPLE_TEXTS if t.strip()] + ["the cat sat on the mat today", "a dog ran in the park",
                                                       "the bird sang in a tree", "she reads a book at night"]
    a = hf_txray.analyze(model, [" ".join("1 3 5 7 9 1 3 5 2".split() * 10)] + texts, stage="A", **options)
    b = hf_txray.analyze(model, [" ".join("2 4 6 8 0 2 4 6 1".split() * 10)] + texts, stage="B", **options)
    one = hf_txray.analyze(model, [" ".join(texts)], stage="one", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        per_feature, whole = hf_txray.compare(a, b), hf_txray.compare(a, one)
    assert list(per_feature.meta.no_noise_features) == ["digit_parity"] and whole.meta.no_noise_reason
    for report, untested in ((per_feature, ["digit_parity"]), (whole, ["token", "digit_parity"])):
        report.save_pretrained(tmp_path / report.meta.stage_b)
        loaded = hf_txray.TransferReport.from_pretrained(tmp_path / report.meta.stage_b)
        for r in (report, loaded):
            s = r.summary()
            for ft in untested:
                assert np.isnan(s[f"neurons_tested_{ft}"]) and r.layers[f"neurons_tested_{ft}"].isna().all(), ft
            if "token" not in untested:
                assert s["neurons_tested_token"] > 0 and (r.layers["neurons_tested_token"] >= 0).all()
        assert report.meta.tested_feature_types() == [ft for ft in ("token", "digit_parity") if ft not in untested]


def test_texts_that_credit_nothing_count_as_empty_and_not_toward_the_tests_cap():
    """Helper 123: one-word texts whose only position skip_first_positions leaves out counted as texts in the per-
    neuron test's degrees of freedom (3 texts per stage plus 40 such: a cap of 84 for 4, 13% of null tests p < .05)."""
    import treebank
    from models import tiny

    model, tokenizer = tiny("bert")
    texts = [t for t in treebank.penn["valid"].split("\n") if len(t.split()) > 8][:20]
    common = dict(tokenizer=tokenizer, features=("token",), skip_first_positions=2, show_progress=False)
    runs = {}
    for name, extra in (("plain", []), ("padded", ["Yes"] * 6)):
        a = hf_txray.analyze(model, texts[:10] + extra, stage="A", **common)
        b = hf_txray.analyze(model, texts[10:] + extra, stage="B", **common)
        assert (a.meta.num_examples - a.meta.num_empty, b.meta.num_examples - b.meta.num_empty) == (10, 10)
        runs[name] = (a, hf_txray.compare(a, b))
    assert runs["padded"][0].meta.num_empty == 6 and runs["padded"][0].meta.num_positions == \
        runs["plain"][0].meta.num_positions
    # Helper 124: such texts were still run, and their tokens counted as input (padding share -101.6%)
    for field in ("num_input_tokens", "num_padded_tokens", "num_truncated", "num_windowed"):
        assert getattr(runs["padded"][0].meta, field) == getattr(runs["plain"][0].meta, field), field
    p_plain, p_padded = (runs[n][1].neurons["p_hellinger_token"] for n in ("plain", "padded"))
    assert p_plain.notna().any()
    np.testing.assert_allclose(p_padded, p_plain, rtol=1e-12)


def bursty_table(rng: np.random.Generator, texts: int, dists: np.ndarray, rate: np.ndarray, burst: np.ndarray,
                 shift: dict[int, np.ndarray] | None = None) -> FeatureTable:
    """Credits of `texts` simulated texts: neuron i is credited in a text with probability rate[i], then in a burst
    of 1 + Poisson(burst[i]) credits that all carry one feature drawn from dists[i] (a text repeats its words);
    example ids alternate halves. `shift` replaces some neurons' distributions (a planted change)."""
    vocab = VOCAB
    # rng.choice(len(vocab), p=...) draws one rng.random() and finds it in p's cumulative sums normalised to end at
    # 1: done here with the sums made once per neuron, the same draws and features (it checked and summed p on each
    # of ~125k calls, 3/4 of the simulation's time)
    cdfs = [np.asarray((shift or {}).get(i, dists[i]), dtype=np.float64).cumsum() for i in range(len(rate))]
    for cdf in cdfs:
        cdf /= cdf[-1]
    sums: dict[tuple[int, int], list[float]] = {}
    for t in range(texts):
        for i in np.flatnonzero(rng.random(len(rate)) < rate):
            k = 1 + int(rng.poisson(burst[i]))
            f = int(cdfs[i].searchsorted(rng.random(), side="right"))
            acts = rng.gamma(4.0, 0.5, k)
            entry = sums.setdefault((int(i), f), [0, 0.0, 0, 0.0, 0.0])
            total = acts.sum()
            entry[0] += k
            entry[1] += total
            entry[4] += (acts ** 2).sum()
            if t % 2:
                entry[2] += k
                entry[3] += total
    keys = sorted(sums)
    column = [np.array([sums[k][j] for k in keys]) for j in range(5)]
    return FeatureTable(vocab, np.array([k[0] for k in keys]), np.array([k[1] for k in keys]), column[1],
                        column[0].astype(np.int64), np.ones(len(vocab), dtype=np.int64), column[3],
                        column[2].astype(np.int64), column[4])


def test_bursty_neurons_in_stages_of_unequal_size_are_not_flagged_by_chance():
    """Helper 207: in a stage of few texts a bursty neuron's design effect is known from the handful of texts that
    carry its credits, not from prior_df / 2 + df degrees of freedom. Simulated under the null (one process for both
    stages), 400 vs 40 texts and back, 12 reports: without the bound nu_s <= n_s / D_s - 1, 6.0% of the tested
    neurons had p < 0.05 and 4 reports had a flag."""
    neurons, flagged, below, tested = 300, 0, 0, 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        dists, rate = rng.dirichlet(np.ones(len(VOCAB)), neurons), rng.uniform(0.02, 0.3, neurons)
        burst = rng.choice([0.0, 1.0, 8.0], neurons)
        for texts in ((400, 40), (40, 400)):
            ta, tb = (bursty_table(rng, n, dists, rate, burst) for n in texts)
            counts = significance.homogeneity(ta, tb, neurons)
            p, _ = significance.homogeneity_pvalues(ta, tb, neurons, (counts.count_a > 0) & (counts.count_b > 0),
                                                    texts=texts)
            flagged += bool(significance.benjamini_hochberg(p).any())
            below, tested = below + int(np.sum(p < 0.05)), tested + int(np.sum(~np.isnan(p)))
    assert tested > 1000 and below / tested <= 0.05 and flagged <= 2, (below / tested, flagged)


def test_a_planted_change_between_unequal_stages_is_still_found():
    """The same simulation with 20 neurons moved to another feature in B: the test still finds them."""
    neurons = 300
    rng = np.random.default_rng(100)
    dists, rate = rng.dirichlet(np.ones(len(VOCAB)), neurons), rng.uniform(0.1, 0.3, neurons)
    burst = rng.choice([0.0, 1.0], neurons)
    moved = {int(i): np.roll(dists[i], 1) for i in rng.choice(neurons, 20, replace=False)}
    ta, tb = bursty_table(rng, 400, dists, rate, burst), bursty_table(rng, 80, dists, rate, burst, shift=moved)
    counts = significance.homogeneity(ta, tb, neurons)
    p, _ = significance.homogeneity_pvalues(ta, tb, neurons, (counts.count_a > 0) & (counts.count_b > 0),
                                            texts=(400, 80))
    flags = significance.benjamini_hochberg(p)
    found = sum(flags[i] for i in moved)
    assert found >= 5 and flags.sum() - found <= 1, (found, flags.sum())


def test_a_burst_of_one_text_in_the_small_stage_is_not_a_change():
    """Helper 207, from a WikiText null report (MiniLM, 60 vs 500 paragraphs): a neuron credited 27 times in 2 of the
    60 texts of A, all of them in one half, so A's halves had no split-half chi-square and the old design effect
    came from B's halves alone (about 1): p = 2e-6, flagged. Its odd-half share now counts as A's evidence of
    bursts, A's design effect weighs with B's size, and its df are those of about two texts."""
    rows, fids, count, count_odd = [0], [0], [27], [27]  # neuron 0 in A: 27 NOUN credits, all from odd ids
    for neuron in range(1, 41):  # 40 ordinary neurons: credits spread evenly over features and halves
        rows += [neuron] * 3
        fids += [0, 1, 2]
        count += [10, 10, 10]
        count_odd += [5, 5, 5]
    a = FeatureTable(VOCAB, np.array(rows), np.array(fids), np.array(count, dtype=float), np.array(count),
                     np.ones(4, dtype=np.int64), np.array(count_odd, dtype=float), np.array(count_odd),
                     np.array(count, dtype=float))
    b_counts = [20, 20, 20] + [80, 80, 80] * 40  # B: neuron 0 spread over NOUN, VERB, DET; 8x A's credits
    b_rows = [0, 0, 0] + [n for n in range(1, 41) for _ in range(3)]
    b_fids = [0, 1, 2] * 41
    b = FeatureTable(VOCAB, np.array(b_rows), np.array(b_fids), np.array(b_counts, dtype=float),
                     np.array(b_counts), np.ones(4, dtype=np.int64), np.array(b_counts) / 2.0,
                     np.array(b_counts) // 2, np.array(b_counts, dtype=float))
    tested = np.ones(41, dtype=bool)
    p, _ = significance.homogeneity_pvalues(a, b, 41, tested, texts=(60, 500))
    assert p[0] > 1e-3 and not significance.benjamini_hochberg(p)[0], p[0]  # was 6e-6, flagged
    assert np.nanmin(p[1:]) > 0.5  # the ordinary neurons did not change


def test_bench_noise_per_text_profiles_merge_into_the_halves_of_one_run():
    """Helper 210: bench_noise's calibration profiles texts one by one and merges them. It marked odd texts' credits
    odd, as before `Profile.merge` numbered the merged texts; merge now exchanges the halves of a part shifted by an
    odd count, so every text landed in the even half: the merged PTB profile had no odd half, its report against BBC
    no test (the calibration failed on a KeyError) and the cost part timed a `compare` whose test never ran."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_noise.py"
    spec = importlib.util.spec_from_file_location("bench_noise_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model, tokenizer = tiny("bert")
    texts = [t for t in TEXTS if t.strip()][:6]
    merged = bench._merge_all(bench._per_text_profiles(model, tokenizer, texts))
    whole = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token", "pos"), max_length=64,
                             max_examples_per_neuron=0, show_progress=False)
    assert 0 < merged.neuron_count_odd.sum() < merged.neuron_count.sum()  # was 0: no odd half
    np.testing.assert_array_equal(merged.neuron_count_odd, whole.neuron_count_odd)
    for ft in ("token", "pos"):
        assert keyed(merged, ft, "count_odd") == keyed(whole, ft, "count_odd")


def test_a_sparse_feature_reads_its_design_effect_from_the_texts_that_carry_it():
    """A user feature whose values only 3 texts per stage carry: its design effect is known from those 3 texts, not
    from all the stage's texts. Adding texts without its values (of the same length, after the carriers, so that their
    example ids and the feature's table stay the same) left the feature's p-values smaller: the cap of its degrees of
    freedom counted all 23 texts (helper 231: on WikiText with 3-10 carrying texts per stage, 5.5-8% of null reports
    were flagged, against at most 5%). Profiles now record the texts that carry each feature type."""
    digit = hf_txray.UserFeature("digit_value", lambda text: [(i, i + 1, c) for i, c in enumerate(text) if c.isdigit()])
    rng = np.random.default_rng(0)
    carriers = [" ".join(rng.choice(list("0123456789"), 60)) for _ in range(6)]
    fillers = [" ".join(rng.choice(list("abcdefghij"), 60)) for _ in range(40)]
    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token", digit), show_progress=False, max_examples_per_neuron=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        alone = [hf_txray.analyze(model, texts, **options) for texts in (carriers[:3], carriers[3:])]
        padded = [hf_txray.analyze(model, texts, **options) for texts in (carriers[:3] + fillers[:20],
                                                                          carriers[3:] + fillers[20:])]
        assert [p.meta.num_feature_texts for p in padded] == [{"token": 23, "digit_value": 3}] * 2
        want, got = (hf_txray.compare(*pair).neurons for pair in (alone, padded))
        for p in padded:  # a profile saved before the counts were recorded: every text, as before
            p.meta.num_feature_texts = {}
        before = hf_txray.compare(*padded).neurons
    assert want["p_hellinger_digit_value"].notna().sum() >= 5
    np.testing.assert_allclose(got["p_hellinger_digit_value"], want["p_hellinger_digit_value"], rtol=1e-9)
    # was 0.123 for 0.190: with all 23 texts counted the p-values were smaller (the fallback still is)
    assert (before["p_hellinger_digit_value"] < want["p_hellinger_digit_value"] - 1e-3).any()
    np.testing.assert_allclose(got["p_hellinger_token"], before["p_hellinger_token"], rtol=1e-12)  # dense: all texts


# ----- split halves drawn from the texts' content (copies of a text in one half) ---------------------------------
def test_copies_of_a_text_fall_in_one_split_half_and_leave_the_noise_figures_as_one_text():
    """The split halves were example-id parity, so the copies of a text fell in both halves alike: a stage of 5 tweets
    repeated 8 times had a noise floor of 0.000 and 10.3% of its shared neurons flagged against another stage (a
    tester). A text's half is now the lowest bit of its content hash: every copy lies where the text does, by hand
    (odd_half), and a stage of each text twice has exactly twice the counts of each half, so the same noise floor."""
    model, tokenizer = tiny("bert")
    texts = [t for t in TEXTS if t.strip()]
    halves = [odd_half(t) for t in texts]
    assert 0 < sum(halves) < len(texts)  # both halves hold texts
    options = dict(tokenizer=tokenizer, features=("token", "pos"), max_examples_per_neuron=0, batch_size=1,
                   show_progress=False)
    once = hf_txray.analyze(model, texts, **options)
    twice = hf_txray.analyze(model, texts + [texts[1]] + texts[:1] + texts[2:], **options)  # copies at other parities
    assert twice.meta.split_halves == once.meta.split_halves == "text_hash"
    np.testing.assert_array_equal(twice.neuron_count_odd, 2 * once.neuron_count_odd)
    for ft in ("token", "pos"):
        np.testing.assert_array_equal(twice.tables[ft].count_odd, 2 * once.tables[ft].count_odd)
        np.testing.assert_allclose(twice.tables[ft].mass_odd, 2 * once.tables[ft].mass_odd, rtol=1e-9)
    # each text's credits lie in its own half, by hand: the odd half is the sum of the odd texts' profiles
    odd = [t for t, h in zip(texts, halves) if h]
    alone = hf_txray.analyze(model, odd, **options)
    np.testing.assert_array_equal(once.neuron_count_odd, alone.neuron_count)
    floor = lambda p: hf_txray.compare(p, p, test=False).summary()["noise_floor_hellinger_pos_a"]  # noqa: E731
    assert floor(twice) == pytest.approx(floor(once), abs=1e-12) and floor(once) > 0


def test_a_windowed_text_keeps_its_windows_in_its_half_and_merges_keep_the_halves_at_any_offset():
    """A text longer than max_length is split into windows: all of them in the text's half. Merging parts at an odd
    offset used to exchange the second part's halves (parity followed the renumbered ids); halves drawn from the
    texts stay, so the merge equals one run whatever the offset."""
    model, tokenizer = tiny("bert")
    long = " ".join(TEXTS[:4]) * 2
    options = dict(tokenizer=tokenizer, features=("token",), max_length=16, long_texts="window",
                   max_examples_per_neuron=0, batch_size=1, show_progress=False)
    alone = hf_txray.analyze(model, [long], **options)
    assert alone.meta.num_windowed == 1
    assert alone.neuron_count_odd.sum() == (alone.neuron_count.sum() if odd_half(long) else 0)
    texts = [t for t in TEXTS if t.strip()] + [long]
    whole = hf_txray.analyze(model, texts, **options)
    for cut in (1, 3, 4):  # odd and even offsets
        merged = hf_txray.analyze(model, texts[:cut], **options).merge(hf_txray.analyze(model, texts[cut:], **options))
        assert merged.meta.split_halves == "text_hash"
        np.testing.assert_array_equal(merged.neuron_count_odd, whole.neuron_count_odd)
        assert keyed(merged, "token", "count_odd") == keyed(whole, "token", "count_odd")  # vocabularies in other orders


def test_profiles_split_by_example_id_load_and_merge_as_before():
    """A profile saved before the halves were drawn from texts has no ``split_halves``: it reads as split by example
    id parity, a renumbering by an odd offset still exchanges its halves, and a merge with a part split by content is
    marked as split by parity (its copies may lie in both halves)."""
    profile = engine("bert")
    data = profile.meta.to_dict()
    del data["split_halves"]
    old_meta = ProfileMeta.from_dict(data)
    assert old_meta.split_halves == "example_id"
    old = Profile(old_meta, profile.neuron_mass, profile.neuron_count, profile.tables, profile.examples,
                  profile.neuron_count_odd, profile.position_mass)
    moved = old.renumbered(3)
    np.testing.assert_array_equal(moved.neuron_count_odd, profile.neuron_count - profile.neuron_count_odd)
    np.testing.assert_array_equal(profile.renumbered(3).neuron_count_odd, profile.neuron_count_odd)
    assert Profile._merge_shards([old, profile]).meta.split_halves == "example_id"
    assert Profile._merge_shards([profile, profile]).meta.split_halves == "text_hash"
    with pytest.warns(UserWarning, match="split them into halves differently"):
        report = hf_txray.compare(old, profile, same_corpus=True, test=False)
    assert not report.meta.same_corpus  # halves of other texts are not paired as like halves


def test_a_builder_resumed_from_a_state_split_by_example_id_goes_on_that_way():
    """A checkpoint written before the halves were drawn from texts resumes with example id parity (its texts so far
    were split that way); a new one records and resumes the content split."""
    from hf_txray.credit import ProfileBuilder
    from hf_txray.features import Vocabulary

    builder = ProfileBuilder(1, 4, {"token": Vocabulary()}, 0)
    state = builder.state_dict()
    assert state["split_halves_by_text"] == 1
    assert ProfileBuilder(1, 4, {"token": Vocabulary()}, 0).load_state_dict(state).split_halves == "text_hash"
    del state["split_halves_by_text"]
    assert ProfileBuilder(1, 4, {"token": Vocabulary()}, 0).load_state_dict(state).split_halves == "example_id"


def test_reproduce_says_that_split_halves_drawn_by_parity_cannot_match():
    """A profile saved when the halves were example-id parity, profiled again now: its split-half sums differ by
    construction; reproduce names that cause and still compares every other number."""
    from hf_txray.reproduce import compare_numbers

    profile = engine("bert")
    assert compare_numbers(profile, profile)[0]
    stored = Profile(dataclasses.replace(profile.meta, split_halves="example_id"), profile.neuron_mass,
                     profile.neuron_count, {ft: t.odd_even_swapped() for ft, t in profile.tables.items()},
                     profile.examples, profile.neuron_count - profile.neuron_count_odd, profile.position_mass,
                     activation_histogram=profile.activation_histogram)
    identical, worst, diffs = compare_numbers(stored, profile)
    assert not identical and worst < 1e-9
    assert diffs == ["split halves drawn by text_hash vs by example_id stored (saved by an older hf_txray): the "
                     "split-half sums (noise floors, the per-neuron test) cannot be compared, every other number is; profile "
                     "again with this version to compare them too"]


def test_two_merges_of_the_same_texts_split_otherwise_warn_that_they_cannot_be_matched():
    """The same 11 texts merged 5+6 and 6+5 were compared as different corpora without a word (the warning asked
    for exactly one merged side): their fingerprints ("a+b" vs "c+d") cannot tell, and their positions and corpus
    counts agree, so it warns as for the whole corpus against its parts (where a part lacks texts_multiset_hash: with
    it, they are told the same corpus); two merges of other texts stay silent."""
    split_5 = without_texts_multiset_hash(engine("gpt2", texts=tuple(TEXTS[:5]))).merge(
        engine("gpt2", texts=tuple(TEXTS[5:])))
    split_6 = engine("gpt2", texts=tuple(TEXTS[:6])).merge(engine("gpt2", texts=tuple(TEXTS[6:])))
    assert split_5.meta.num_examples == split_6.meta.num_examples == len(TEXTS)
    with pytest.warns(UserWarning, match="both were merged from parts"):
        assert not hf_txray.compare(split_5, split_6).meta.same_corpus
    assert hf_txray.compare(split_5, split_6, same_corpus=True).meta.same_corpus
    longer = tuple(f"{text} And then some more words." for text in TEXTS)
    other = engine("gpt2", texts=longer[:5]).merge(engine("gpt2", texts=longer[5:]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Both profiles are named stage")  # 901b4da: both "default"
        warnings.filterwarnings("ignore", message=r".* in credits")  # longer texts: 1.7x the credits (helper 445)
        assert not hf_txray.compare(other, split_6).meta.same_corpus


@pytest.mark.parametrize("alpha", [np.float32(0.1), np.float16(0.1), np.float64(0.1)])
def test_compare_takes_a_numpy_float_alpha_as_benjamini_hochberg_does(tmp_path, alpha):
    """compare refused np.float32(0.1) with "alpha must be a number in (0, 1), got np.float32(0.1)", a number in
    (0, 1), where benjamini_hochberg took it: one check now, and the report records a plain float (its meta is saved
    as JSON, which a numpy float32 is not)."""
    a, b = hand_profile("A", 0), hand_profile("B", 1)
    report = hf_txray.compare(a, b, alpha=alpha)
    plain = hf_txray.compare(a, b, alpha=float(alpha))
    assert type(report.meta.alpha) is float and report.meta.alpha == float(alpha)
    pd.testing.assert_frame_equal(report.neurons, plain.neurons)
    report.save_pretrained(tmp_path / "report")
    assert hf_txray.TransferReport.from_pretrained(tmp_path / "report").meta.alpha == float(alpha)
    for bad in (np.float32(1.5), np.float64("nan"), np.bool_(True), "0.1"):
        with pytest.raises(hf_txray.ConfigurationError, match="alpha"):
            hf_txray.compare(a, b, alpha=bad)
        with pytest.raises(hf_txray.ConfigurationError, match="alpha"):
            significance.benjamini_hochberg(np.array([0.01, 0.5]), bad)


def test_a_feature_type_that_a_stage_never_credited_says_so_rather_than_too_few_credits(tmp_path):
    """A user feature with no value in one stage (capitalised words, in lower-cased PTB against BBC News) has no
    distribution there: no Hellinger distance, noise floor or test. compare said nothing, the summary read
    neurons_tested 0 ("tested, none changed"), and the card gave the wrong cause: "no shared neuron could be tested
    ... (too few credits in both stages, or one feature category left after pooling rare ones)", beside "nan"
    noise floors. It now warns naming the stage, records why in meta.no_noise_features (so the tested and changed
    counts are NaN: not run), and the card and `show` say so."""
    def capitalised(text):
        return [(i, i + len(w), "cap") for i, w in ((m.start(), m.group()) for m in re.finditer(r"\w+", text))
                if w[0].isupper()]

    model, tokenizer = tiny("bert")
    feature = hf_txray.UserFeature("caps", capitalised)
    options = dict(tokenizer=tokenizer, features=("token", feature), show_progress=False)
    lower = ["the cat sat on the mat today", "a dog ran in the park", "the bird sang in a tree",
             "my cat likes the sun", "she reads a book at night", "we walk to the old town"]
    a = hf_txray.analyze(model, lower, stage="A", **options)
    b = hf_txray.analyze(model, [t.title() for t in lower], stage="B", **options)
    assert a.tables["caps"].count.sum() == 0 < b.tables["caps"].count.sum()
    with pytest.warns(UserWarning, match=r"no p-values or noise floors of caps: stage\(s\) \['A'\] credited no caps "
                                         r"value"):
        report = hf_txray.compare(a, b)
    s = report.summary()
    assert np.isnan(s["neurons_tested_caps"]) and np.isnan(s["share_changed_caps"])  # not run, not "0 tested"
    assert report.meta.tested_feature_types() == ["token"] and list(report.meta.no_noise_features) == ["caps"]
    assert "(no noise floors or p-values of caps: stage(s) ['A'] credited no caps value" in report_text(report)
    report.save_pretrained(tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    assert "too few credits in both stages" not in card and "credited no caps value" in card
    assert hf_txray.TransferReport.from_pretrained(tmp_path / "r") == report
