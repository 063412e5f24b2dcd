"""The streaming engine (`hf_txray.analyze`) against the brute-force reference in tests/reference.py.

Every combination of tiny architecture (BERT, GPT-2, Llama), site (mlp, residual), top_k (1, 3) and batch size
(1, 3, 8) is profiled with the token, word and POS features and must give the reference's result.

Tolerance on masses: the reference runs each text alone while the engine runs padded batches, so a credited
activation can differ by a few float32 ulps (different matmul shapes; measured <= 3.3e-7 relative on these
models). A mass is a sum of positive activations, so its relative error is bounded by the worst term's:
rtol 2e-6 (~16 float32 ulps). float32 rounding is relative to the unit-scale operands, not to the result, so a
tiny activation carries an absolute error of a few 1e-9 (measured 1.9e-9): atol 1e-7 covers it. A lost or
double-counted credit cannot hide in the tolerance: it changes a count, and counts, keys and example positions
must be exactly equal.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import hf_txray
import reference
from models import SAMPLE_TEXTS, tiny

# The shared samples plus texts with double spaces, a tab, non-ASCII characters (multi-byte for byte-level BPE,
# accent-stripped by uncased BERT) and leading/trailing whitespace.
TEXTS = SAMPLE_TEXTS + [
    "Two  spaces and a tab\there.",
    "Café naïve — “quoted” 😀",
    "  leading and trailing spaces  ",
]
KINDS = ("bert", "gpt2", "llama")
SITES = ("mlp", "residual")
TOP_KS = (1, 3)
BATCH_SIZES = (1, 3, 8)
FEATURES = ("token", "word", "pos")
CAPACITY = 4  # top examples kept per neuron
RTOL, ATOL = 2e-6, 1e-7


@functools.cache
def model_and_tokenizer(kind: str):
    return tiny(kind)


@functools.cache
def engine(kind: str, site: str, top_k: int, batch_size: int) -> hf_txray.Profile:
    model, tokenizer = model_and_tokenizer(kind)
    return hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, site=site, top_k=top_k, features=FEATURES,
                            batch_size=batch_size, max_examples_per_neuron=CAPACITY, show_progress=False,
                            skip_first_positions=0)  # the credit rule at every position; skipping: test_noise.py


@functools.cache
def kept_activations(kind: str, site: str):
    model, tokenizer = model_and_tokenizer(kind)
    return reference.run_corpus(model, tokenizer, TEXTS, site, FEATURES)


@functools.cache
def brute(kind: str, site: str, top_k: int) -> reference.Reference:
    return reference.credit(kept_activations(kind, site), top_k, FEATURES)


def assert_same_table(mass, count, expected_mass, expected_count):
    assert set(mass) == set(expected_mass), (
        f"missing {sorted(set(expected_mass) - set(mass))[:5]}, unexpected {sorted(set(mass) - set(expected_mass))[:5]}"
    )
    keys = sorted(mass)
    assert [count[k] for k in keys] == [expected_count[k] for k in keys]
    np.testing.assert_allclose([mass[k] for k in keys], [expected_mass[k] for k in keys], rtol=RTOL, atol=ATOL)


def over_grid(test):
    """Parametrize `test` over every architecture, site, top_k and batch size."""
    for name, values in (("kind", KINDS), ("site", SITES), ("top_k", TOP_KS), ("batch_size", BATCH_SIZES)):
        test = pytest.mark.parametrize(name, values)(test)
    return test


@over_grid
@pytest.mark.parametrize("feature", FEATURES)
def test_feature_table_matches_reference(kind, site, top_k, batch_size, feature):
    profile = engine(kind, site, top_k, batch_size)
    ref = brute(kind, site, top_k)
    mass, count = reference.profile_table(profile, feature)
    assert_same_table(mass, count, ref.mass[feature], ref.count[feature])


@over_grid
def test_neuron_totals_match_reference(kind, site, top_k, batch_size):
    profile = engine(kind, site, top_k, batch_size)
    ref = brute(kind, site, top_k)
    assert profile.neuron_mass.shape == profile.neuron_count.shape == (ref.num_layers, ref.num_neurons)
    expected_mass = np.zeros((ref.num_layers, ref.num_neurons))
    expected_count = np.zeros((ref.num_layers, ref.num_neurons), dtype=np.int64)
    for (layer, neuron), value in ref.neuron_mass.items():
        expected_mass[layer, neuron] = value
        expected_count[layer, neuron] = ref.neuron_count[layer, neuron]
    np.testing.assert_array_equal(profile.neuron_count, expected_count)
    np.testing.assert_allclose(profile.neuron_mass, expected_mass, rtol=RTOL, atol=ATOL)


@over_grid
def test_top_examples_match_reference(kind, site, top_k, batch_size):
    profile = engine(kind, site, top_k, batch_size)
    expected = brute(kind, site, top_k).top_examples(CAPACITY)
    by_neuron = {key: group.sort_values("rank") for key, group in profile.examples.groupby(["layer", "neuron"])}
    assert set(by_neuron) == set(expected)
    for key, want in expected.items():
        got = by_neuron[key]
        assert got["rank"].tolist() == list(range(len(want)))
        assert list(zip(got["example_id"], got["token_index"], got["char_start"], got["char_end"])) == [
            (e.example_id, e.token_index, e.char_start, e.char_end) for e in want
        ]
        np.testing.assert_allclose(got["activation"], [e.activation for e in want], rtol=RTOL, atol=ATOL)
        assert got["token"].tolist() == [TEXTS[e.example_id][e.char_start:e.char_end] for e in want]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("feature", FEATURES)
def test_corpus_frequency_matches_reference(kind, batch_size, feature):
    table = engine(kind, "mlp", 1, batch_size).tables[feature]
    assert dict(zip(table.vocab, table.corpus_count.tolist())) == dict(brute(kind, "mlp", 1).corpus_count[feature])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("top_k", TOP_KS)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_positions_are_counted_like_reference(kind, top_k, batch_size):
    meta = engine(kind, "mlp", top_k, batch_size).meta
    ref = brute(kind, "mlp", top_k)
    assert meta.num_examples == len(TEXTS)
    assert meta.num_positions == ref.num_positions
    assert meta.num_empty == sum(1 for t in TEXTS if not t.strip())
    assert meta.num_uncredited == ref.num_uncredited


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("top_k", TOP_KS)
@pytest.mark.parametrize("feature", FEATURES)
def test_profile_does_not_depend_on_batch_size(kind, site, top_k, feature):
    mass_1, count_1 = reference.profile_table(engine(kind, site, top_k, 1), feature)
    for batch_size in BATCH_SIZES[1:]:
        mass, count = reference.profile_table(engine(kind, site, top_k, batch_size), feature)
        assert_same_table(mass, count, mass_1, count_1)


@pytest.mark.parametrize("kind", KINDS)
def test_inputs_exercise_the_credit_rule(kind):
    """Guards against a vacuous comparison: every layer credits, top-3 credits more than top-1, and (byte-level
    BPE) some credited whitespace tokens carry a token but no word."""
    one, three = brute(kind, "mlp", 1), brute(kind, "mlp", 3)
    assert {layer for layer, _ in one.neuron_count} == set(range(one.num_layers))
    assert sum(three.neuron_count.values()) > sum(one.neuron_count.values()) > 0
    assert any(len(run.creditable) > 0 for run in kept_activations(kind, "mlp"))
    if kind != "bert":
        assert sum(one.count["token"].values()) > sum(one.count["word"].values())


@pytest.mark.parametrize("kind", KINDS)
def test_non_positive_activations_are_never_credited(kind):
    """With top_k = every neuron of the layer, the ranking reaches negative residual values: only the positive
    ones may be credited (GUIDE §1: mass is a sum of positive activations)."""
    model, tokenizer = model_and_tokenizer(kind)
    width = model.config.hidden_size
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, site="residual", top_k=width, features=("token",),
                               batch_size=4, max_examples_per_neuron=0, show_progress=False, skip_first_positions=0)
    ref = reference.credit(kept_activations(kind, "residual"), width, ("token",))
    assert sum(ref.neuron_count.values()) < ref.num_positions * ref.num_layers * width  # negatives were ranked
    mass, count = reference.profile_table(profile, "token")
    assert_same_table(mass, count, ref.mass["token"], ref.count["token"])
    assert (profile.tables["token"].mass > 0).all()


def test_tied_activations_are_ranked_by_example_id():
    """The same text three times gives bit-identical activations when run one text per batch: the tied top
    examples must come in example-id order, as in the reference."""
    texts = ["the cat sat on the mat", "a dog barked", "the cat sat on the mat", "the cat sat on the mat"]
    model, tokenizer = model_and_tokenizer("gpt2")
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), batch_size=1,
                               max_examples_per_neuron=CAPACITY, show_progress=False, skip_first_positions=0)
    expected = reference.credit(reference.run_corpus(model, tokenizer, texts, "mlp", ("token",)), 1,
                                ("token",)).top_examples(CAPACITY)
    ties = 0
    for (layer, neuron), want in expected.items():
        got = profile.top_examples(layer, neuron)
        assert list(zip(got["example_id"], got["token_index"])) == [(e.example_id, e.token_index) for e in want]
        ties += sum(a.activation == b.activation for a, b in itertools.pairwise(want))
    assert ties > 0


@pytest.mark.parametrize("seed,example_offset,token_offset", [(0, 0, 0), (1, 0, 0), (2, 0, 0),
                                                               (3, 2**31 - 3, 0), (4, 2**40, 0), (5, 0, 2**32 - 8),
                                                               (6, 0, 2**32 - 3)])
def test_streaming_top_examples_match_a_full_sort(seed, example_offset, token_offset):
    """TopExamples fed in random chunks (with many exact ties) keeps what sorting everything would keep:
    activation descending, then example id, then token index ascending; also for ids past the one-key sort's
    bounds (2**31 example ids, 2**32 token indices), alone or mixed with smaller ones in one chunk."""
    from hf_txray.accumulators import TopExamples

    rng = np.random.default_rng(seed)
    n, rows, capacity = 400, 5, 7
    data = {
        "row": rng.integers(0, rows, n), "activation": rng.choice([0.5, 1.0, 2.0], n),
        "example_id": rng.integers(0, 6, n) + example_offset, "token_index": rng.integers(0, 6, n) + token_offset,
    }
    data["char_start"], data["char_end"] = data["token_index"] * 2, data["token_index"] * 2 + 1
    top = TopExamples(rows, capacity)
    cuts = np.sort(rng.choice(np.arange(1, n), 6, replace=False))
    for part in np.split(np.arange(n), cuts):
        top.add(data["row"][part], data["activation"][part],
                **{k: data[k][part] for k in ("example_id", "token_index", "char_start", "char_end")})
    kept = top.entries()
    for row in range(rows):
        everything = sorted((-a, e, t) for r, a, e, t in zip(data["row"], data["activation"], data["example_id"],
                                                            data["token_index"]) if r == row)
        mine = kept["row"] == row
        order = np.argsort(kept["rank"][mine])
        got = list(zip(-kept["activation"][mine][order], kept["example_id"][mine][order],
                       kept["token_index"][mine][order]))
        assert got == everything[:capacity]
