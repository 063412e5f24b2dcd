"""The environment a user runs hf_txray in: interpreter flags (``python -OO``), caches that cannot be written, and
settings of torch made by the user's own script before ``analyze``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import hf_txray
from models import SAMPLE_TEXTS, assert_same_credit, bert_tokenizer, tiny_bert

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [t for t in SAMPLE_TEXTS if t.strip()] + ["Café crème at the naïve façade in Zürich."]
FEATURES = ("token", "word", "pos")


def _profile(model=None, dataset=TEXTS, **options) -> hf_txray.Profile:
    model = tiny_bert() if model is None else model
    tokenizer = bert_tokenizer() if not isinstance(model, (str, Path)) else None
    return hf_txray.analyze(model, dataset, tokenizer=tokenizer, features=FEATURES, show_progress=False, **options)


def test_unwritable_cache_tags_in_memory(tmp_path, monkeypatch):
    """A cache that cannot be written (read-only HF_HOME on a cluster, a container's read-only mount) costs the
    spaCy tagging its cache, as it costs the file hashes theirs: it failed with NotADirectoryError /
    PermissionError '<cache>/annotations', after the model was loaded."""
    expected = _profile()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("HF_TXRAY_CACHE", str(blocker / "cache"))  # no folder can be made there, even by root
    assert_same_credit(_profile(), expected)
    assert not (blocker.parent / "cache").exists()


def test_unwritable_cache_reads_a_local_file_without_its_lock(tmp_path, monkeypatch):
    """A local data file is read through datasets' cache under a lock in hf_txray's cache (processes take turns):
    where that lock cannot be made, the file is read without it, as before."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")  # not the user's
    (tmp_path / "corpus.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    expected = _profile()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("HF_TXRAY_CACHE", str(blocker / "cache"))  # no folder can be made there, even by root
    assert_same_credit(_profile(tiny_bert(), dataset=str(tmp_path / "corpus.txt")), expected)


def test_unwritable_cache_reads_what_it_holds(tmp_path, monkeypatch):
    """A read-only cache that already holds the tags of these texts is read, not tagged again."""
    monkeypatch.setenv("HF_TXRAY_CACHE", str(tmp_path / "cache"))
    expected = _profile()
    import hf_txray.cache as cache

    from hf_txray.features.annotation import WordAnnotator

    monkeypatch.setattr(cache.os, "access", lambda *args, **kwargs: False)  # as root, chmod would not tell
    monkeypatch.setattr(WordAnnotator, "annotate", lambda *args: 1 / 0)  # tagging again would fail
    assert_same_credit(_profile(), expected)


def test_python_OO_imports_analyze():
    """``python -OO`` strips docstrings: ``from hf_txray import analyze`` failed with "AttributeError: 'NoneType'
    object has no attribute 'replace'" (the options table filled into its docstring), so a script that compares
    saved profiles and imports analyze at its top could not start. (transformers itself builds no model class
    under -OO: its auto_docstring refuses, so analyze cannot profile there.)"""
    code = "import hf_txray; from hf_txray import analyze, compare; print(analyze.__doc__, compare.__name__)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-OO", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "compare"]


def test_default_device_set_by_the_caller(saved_bert):
    """A script that set torch's default device to "meta" (to build a big model empty, say) before analyze: the
    inputs hf_txray made were meta tensors and the run was refused as if BertModel could not be profiled
    ("Cannot copy out of meta tensor"); a model path could not be loaded at all. Now analyze makes its tensors on
    the CPU, as where no default was set, and leaves the caller's default as it was."""
    model = tiny_bert()
    expected = _profile(model)
    with torch.device("meta"):
        assert_same_credit(_profile(model), expected)
        assert torch.empty(1).is_meta
    expected = _profile(str(saved_bert))
    torch.set_default_device("meta")
    try:
        got = _profile(str(saved_bert))
        assert torch.get_default_device().type == "meta"
    finally:
        torch.set_default_device(None)
    assert_same_credit(got, expected)


def test_unwritable_cache_keeps_large_activations_in_the_temporary_folder(tmp_path, monkeypatch):
    """Activations over memmap_threshold go to a memmap under the cache; a cache that cannot be written failed
    extract_activations with NotADirectoryError / PermissionError '<cache>/activations': now the system's temporary
    folder holds them, and they equal the in-memory ones."""
    import numpy as np

    from hf_txray.probing import LabeledCorpus, extract_activations

    texts = ["a cat sat", "the dog ran far"]
    starts = [np.array([0, 2, 6]), np.array([0, 4, 8, 12])]
    ends = [np.array([1, 5, 9]), np.array([3, 7, 11, 15])]
    corpus = LabeledCorpus(texts, starts, ends, [np.array([0, 1, 2]), np.array([0, 1, 2, 3])],
                           ["DET", "NOUN", "VERB", "ADV"])
    model, tokenizer = tiny_bert(), bert_tokenizer()
    expected = extract_activations(model, corpus, tokenizer, show_progress=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("HF_TXRAY_CACHE", str(blocker / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    got = extract_activations(model, corpus, tokenizer, show_progress=False, memmap_threshold=0)
    assert got.path is not None and got.path.parent == tmp_path
    np.testing.assert_array_equal(np.asarray(got.values), np.asarray(expected.values))


def test_default_device_set_by_the_caller_around_extraction_and_pruning_evaluation():
    """extract_activations (so probe_neurons) and evaluate_pruning tokenize and run the model as analyze does: under
    a caller's `with torch.device("meta")` they ended with ModelError "... Cannot copy out of meta tensor"."""
    import datasets
    import numpy as np
    from transformers import BertConfig, BertForSequenceClassification

    from hf_txray.probing import LabeledCorpus, extract_activations
    from hf_txray.pruning import plan_pruning

    corpus = LabeledCorpus(["a cat sat"], [np.array([0, 2, 6])], [np.array([1, 5, 9])], [np.array([0, 1, 2])],
                           ["DET", "NOUN", "VERB"])
    model, tokenizer = tiny_bert(), bert_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=128, num_labels=2)
    classifier = BertForSequenceClassification(config).eval()
    data = datasets.Dataset.from_dict({"text": TEXTS, "label": [i % 2 for i in range(len(TEXTS))]})
    plans = [plan_pruning(None, "random", 0.25, seed=0, widths={0: 48, 1: 48})]

    def run():
        return (extract_activations(model, corpus, tokenizer, show_progress=False).values,
                hf_txray.evaluate_pruning(classifier, plans, data, tokenizer=tokenizer, max_length=32))

    values, table = run()
    with torch.device("meta"):
        got_values, got_table = run()
    np.testing.assert_array_equal(np.asarray(got_values), np.asarray(values))
    assert got_table[["plan", "accuracy", "f1"]].equals(table[["plan", "accuracy", "f1"]])


def test_default_device_set_by_the_caller_around_output_effects_and_attributions():
    """output_effects, output_effects_table and neuron_attributions under a caller's `with torch.device("meta")`
    ended with NotImplementedError "Cannot copy out of meta tensor; no data!"."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from models import bpe_tokenizer

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(bpe_tokenizer()), n_embd=32, n_layer=2, n_head=2, n_inner=40, n_positions=64)
    lm, bert = GPT2LMHeadModel(config).eval(), tiny_bert()

    def run():
        return (hf_txray.output_effects(lm, 0, 3, k=5, tokenizer=bpe_tokenizer()),
                hf_txray.output_effects_table(lm, [0], k=3, tokenizer=bpe_tokenizer()),
                hf_txray.neuron_attributions(bert, bert_tokenizer(), TEXTS[0], 0, 3))

    expected = run()
    with torch.device("meta"):
        got = run()
    for a, b in zip(got, expected):
        assert a.equals(b) if hasattr(a, "equals") else str(a) == str(b)


def test_default_device_set_by_the_caller_around_masks_and_ablation():
    """masked, ablate (zero and mean) and prune(mode="mask") under a caller's `with torch.device("meta")`: the Fill
    they make held meta tensors and each failed with RuntimeError "Tensor.item() cannot be called on meta tensors".
    The masked outputs are checked against the neurons zeroed by hand (a hook of this test's own)."""
    import numpy as np

    from hf_txray.pruning import masked, prune, unprune

    model, tokenizer = tiny_bert(), bert_tokenizer()
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    site = model.encoder.layer[0].output.dense

    def zeroed(module, args):
        x = args[0].clone()
        x[..., [1, 2]] = 0
        x[..., [5]] = 0.5
        return (x,)

    handle = site.register_forward_pre_hook(zeroed)
    with torch.no_grad():
        expected = model(**batch).last_hidden_state
    handle.remove()
    means = {0: np.full(48, 0.5, dtype=np.float32)}
    with torch.device("meta"), torch.no_grad():
        with masked(model, {0: [1, 2]}), hf_txray.ablate(model, {0: [5]}, mode="mean", means=means):
            got = model(**batch).last_hidden_state
        _, plan = prune(model, None, {0: [1, 2]}, mode="mask")
        with hf_txray.ablate(model, {0: [5]}, mode="mean", means=means):
            pruned = model(**batch).last_hidden_state
        unprune(model, plan)
        assert torch.empty(1).is_meta
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(pruned, expected, rtol=0, atol=0)


def test_default_device_set_by_the_caller_around_neuron_removal():
    """prune(mode="remove") under a caller's `with torch.device("meta")`: the kept indices were a meta tensor and it
    failed with NotImplementedError "Cannot copy out of meta tensor; no data!". The sliced model is checked against
    the same neurons zeroed in the down projection by hand (removing a neuron = its column of the down projection)."""
    model, tokenizer = tiny_bert(), bert_tokenizer()
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    reference = tiny_bert()
    with torch.no_grad():
        for layer, removed in ((0, [1, 2]), (1, [0, 7])):
            reference.encoder.layer[layer].output.dense.weight[:, removed] = 0
        expected = reference(**batch).last_hidden_state
    with torch.device("meta"):
        pruned, _ = hf_txray.prune(model, None, {0: [1, 2], 1: [0, 7]}, mode="remove")
    assert not any(p.is_meta for p in pruned.parameters())
    assert pruned.encoder.layer[0].output.dense.in_features == 46
    with torch.no_grad():
        torch.testing.assert_close(pruned(**batch).last_hidden_state, expected)


def test_default_device_set_by_the_caller_around_ablation_metrics():
    """TaskMetric and LMLossMetric (what ablation_curve calls at every point) under a caller's
    `with torch.device("meta")`: their token batches were meta tensors and they failed with NotImplementedError
    "Cannot copy out of meta tensor; no data!". Checked against an accuracy and a next-token loss computed by hand."""
    import torch.nn.functional as F
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    from hf_txray.probing import LMLossMetric, TaskMetric
    from models import bpe_tokenizer

    tokenizer, bpe = bert_tokenizer(), bpe_tokenizer()
    torch.manual_seed(0)
    classifier = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=128, num_labels=2)).eval()
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe), n_embd=32, n_layer=2, n_head=2, n_inner=40,
                                    n_positions=64)).eval()
    labels = [i % 2 for i in range(len(TEXTS))]
    with torch.no_grad():
        predicted = [int(classifier(**tokenizer(t, return_tensors="pt")).logits.argmax()) for t in TEXTS]
        losses = [F.cross_entropy(lm(ids).logits[0, :-1], ids[0, 1:], reduction="sum")
                  for ids in (torch.tensor([bpe(t)["input_ids"][:64]]) for t in TEXTS)]
    accuracy = sum(p == y for p, y in zip(predicted, labels)) / len(TEXTS)
    loss = float(sum(losses)) / sum(len(bpe(t)["input_ids"][:64]) - 1 for t in TEXTS)
    with torch.device("meta"):
        got_accuracy = TaskMetric(tokenizer, {"text": TEXTS, "label": labels})(classifier)
        got_loss = LMLossMetric(bpe, TEXTS, max_length=64)(lm)
    assert got_accuracy == accuracy
    assert abs(got_loss - loss) < 1e-4 * loss


def test_default_device_set_by_the_caller_around_a_profiler():
    """hf_txray.Profiler, which TXRayCallback runs at every snapshot of a training script, under a default device set
    by that script (torch.set_default_device): its one-text probe run was refused with ModelError "BertModel failed on
    a one-text probe run before it is profiled ... Cannot copy out of meta tensor". The credit counts per neuron are
    checked against max-1 winners counted by hand (a pre-hook of this test's own on each down projection)."""
    import datasets
    import numpy as np

    model, tokenizer = tiny_bert(), bert_tokenizer()
    expected = np.zeros((2, 48), dtype=np.int64)
    captured = []
    handles = [layer.output.dense.register_forward_pre_hook(lambda module, args: captured.append(args[0][0]))
               for layer in model.encoder.layer]
    with torch.no_grad():
        for text in TEXTS:
            captured.clear()
            model(**tokenizer(text, return_tensors="pt"))
            for layer, values in enumerate(captured):
                expected[layer] += np.bincount(values[1:-1].argmax(-1).numpy(), minlength=48)  # no [CLS], [SEP]
    for handle in handles:
        handle.remove()
    corpus = datasets.Dataset.from_dict({"text": TEXTS})
    torch.set_default_device("meta")
    try:
        profiler = hf_txray.Profiler(model, tokenizer, hf_txray.ProfilerConfig(features=("token",)))
        got = profiler.run(corpus, text_column="text", show_progress=False)
        assert torch.get_default_device().type == "meta"
    finally:
        torch.set_default_device(None)
    np.testing.assert_array_equal(got.neuron_count, expected)


def test_default_device_set_by_the_caller_around_neuron_means():
    """neuron_means (the values of ablate(mode="mean")) under a caller's `with torch.device("meta")`: refused with
    ModelError "BertModel failed on a one-text probe run ... Cannot copy out of meta tensor". Checked against the mean
    over real tokens taken by hand (a pre-hook of this test's own)."""
    import numpy as np

    from hf_txray.probing import neuron_means

    model, tokenizer = tiny_bert(), bert_tokenizer()
    rows = []
    handle = model.encoder.layer[1].output.dense.register_forward_pre_hook(lambda m, args: rows.append(args[0][0]))
    with torch.no_grad():
        for text in TEXTS:
            model(**tokenizer(text, return_tensors="pt"))
    handle.remove()
    expected = torch.cat([r[1:-1] for r in rows]).double().mean(0).numpy()  # no [CLS], [SEP]
    with torch.device("meta"):
        got = neuron_means(model, TEXTS, tokenizer, layers=[1])
    np.testing.assert_allclose(got[1], expected, rtol=1e-4, atol=1e-6)
