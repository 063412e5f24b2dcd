"""The default token budget of a CPU forward pass (hf_txray.budget)."""

from __future__ import annotations

import pytest
import torch

import hf_txray
from hf_txray.budget import CPU_MAX_TOKENS, resolve_token_budget, widest_activation
from models import SAMPLE_TEXTS, assert_same_credit, bert_tokenizer, tiny_gpt2
from models import torch_threads as threads


def bert(intermediate_size: int = 48):
    """A tiny BERT with an MLP of `intermediate_size` (MiniLM's is 1536)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=intermediate_size,
                                max_position_embeddings=1024)).eval()

CPU = torch.device("cpu")


def test_widest_activation_is_the_mlp_not_the_vocabulary_head():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert widest_activation(bert(1536)) == 1536
    assert widest_activation(tiny_gpt2()) == 3 * 32  # Conv1D (its `nf`): the fused q, k, v projection, wider than n_inner 40
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=500, n_embd=32, n_layer=1, n_head=2, n_inner=96, n_positions=64))
    assert widest_activation(lm) == 96  # lm_head (500 = vocab_size) left out
    assert widest_activation(torch.nn.Sequential(torch.nn.ReLU())) == 0


def test_cpu_budget_follows_the_widest_activation_and_the_threads():
    """6 MiB of the widest activation per thread, as a power of two: MiniLM's 1536-wide float32 MLP gets 1024 tokens
    a thread; bf16 twice that; at most 4096 tokens; never below max_length; None where it would not bind, on
    accelerators, and when the user chose a budget (returned as given)."""
    wide = bert(1536)
    with threads(1):
        assert resolve_token_budget(None, wide, CPU, 128, 32) == 1024
        assert resolve_token_budget(None, bert(1536).to(torch.bfloat16), CPU, 128, 32) == 2048
        assert resolve_token_budget(None, bert(3072), CPU, 128, 32) == 512
        assert resolve_token_budget(None, bert(3072), CPU, 1024, 32) == 1024  # a window fits
        assert resolve_token_budget(None, bert(), CPU, 512, 32) == CPU_MAX_TOKENS  # narrow: the cap
        assert resolve_token_budget(None, bert(), CPU, 128, 4) is None  # 4 x 128 tokens: nothing to bind
        assert resolve_token_budget(300, wide, CPU, 128, 32) == 300
        assert resolve_token_budget(None, wide, torch.device("cuda"), 128, 32) is None  # batch_size rows, as given
    with threads(2):
        assert resolve_token_budget(None, wide, CPU, 128, 32) == 2048


def test_accelerator_defaults_fill_batches_with_short_texts_within_the_old_bound():
    """On an accelerator, 32 texts of PTB sentences made ~1000-token batches: with neither limit given, the budget
    is 32 windows of max_length (the most 32 rows held: no batch needs more memory) and the rows up to budget / 16
    (at most 1024); a given batch_size or budget is kept; a CPU keeps 32 rows."""
    from hf_txray.budget import resolve_batch_size

    wide, cuda = bert(1536), torch.device("cuda")
    for max_length, budget, rows in ((128, 4096, 256), (512, 16384, 1024), (2048, 65536, 1024), (16, 512, 32)):
        assert resolve_token_budget(None, wide, cuda, max_length, None) == budget
        assert resolve_batch_size(None, cuda, budget) == rows
    assert resolve_batch_size(None, cuda, 1024) == 64  # a small budget given alone: 16-token rows
    assert resolve_batch_size(None, cuda, 100) == 32  # never fewer rows than on a CPU
    assert resolve_batch_size(8, cuda, 65536) == 8 and resolve_token_budget(4096, wide, cuda, 128, None) == 4096
    with threads(1):
        assert resolve_batch_size(None, CPU, resolve_token_budget(None, wide, CPU, 128, None)) == 32
        assert resolve_token_budget(None, wide, CPU, 128, None) == 1024  # as with batch_size=32


def test_analyze_records_the_batch_size_it_resolved_and_the_one_given():
    model, tokenizer = bert(), bert_tokenizer()
    options = dict(tokenizer=tokenizer, features=("token",), max_length=32, show_progress=False)
    default = hf_txray.analyze(model, SAMPLE_TEXTS, **options)
    assert default.meta.config["batch_size"] == 32 and default.meta.provenance["options"]["batch_size"] is None
    given = hf_txray.analyze(model, SAMPLE_TEXTS, batch_size=3, **options)
    assert given.meta.config["batch_size"] == 3 and given.meta.provenance["options"]["batch_size"] == 3
    assert_same_credit(default, given)


def test_analyze_records_the_budget_and_its_batches_give_the_same_profile():
    """The default budget is recorded in meta.config, binds the batches (more of them, less padding than batches of
    `batch_size` texts), and leaves the profile as it is: counts exact and masses to 1e-6, one thread."""
    model, tokenizer = bert(1536), bert_tokenizer()
    texts = [" ".join([t] * (1 + i % 7)) for i, t in enumerate(SAMPLE_TEXTS * 4) if t.strip()]
    options = dict(tokenizer=tokenizer, features=("token",), max_length=128, show_progress=False)
    with threads(1):
        budgeted = hf_txray.analyze(model, texts, **options)
        rows_only = hf_txray.analyze(model, texts, max_tokens_per_batch=32 * 128, **options)
    assert budgeted.meta.config["max_tokens_per_batch"] == 1024
    assert rows_only.meta.config["max_tokens_per_batch"] == 32 * 128
    assert budgeted.meta.num_padded_tokens < rows_only.meta.num_padded_tokens
    assert_same_credit(budgeted, rows_only)


@pytest.mark.parametrize("budget", [0, -5, 1.5])
def test_a_bad_explicit_budget_is_still_refused(budget):
    with pytest.raises(hf_txray.ConfigurationError, match="max_tokens_per_batch"):
        hf_txray.analyze(bert(), ["a text"], tokenizer=bert_tokenizer(), max_tokens_per_batch=budget,
                         show_progress=False)


def test_a_budget_below_a_padded_window_is_refused():
    # max_length=17 runs 32 wide (widths rounded up to 16): a budget of 17 tokens was accepted, recorded, and every
    # batch of a full window held 32 tokens.
    options = dict(tokenizer=bert_tokenizer(), features=("token",), show_progress=False, max_length=17)
    with pytest.raises(hf_txray.ConfigurationError, match="max_length=17 tokens padded .* are 32 tokens wide"):
        hf_txray.analyze(bert(), ["word " * 40], max_tokens_per_batch=17, **options)
    profile = hf_txray.analyze(bert(), ["word " * 40], max_tokens_per_batch=17, pad_to_multiple_of=1, **options)
    assert profile.meta.config["max_tokens_per_batch"] == 17


def test_the_default_budget_holds_a_padded_window():
    """Helper 200: the CPU default was floored at max_length, not at a window's padded width: max_length=600 on a
    GPT-2-width MLP (512 tokens a thread) gave a 600-token budget, which every 608-wide window exceeded (the budget
    an explicit max_tokens_per_batch=600 is refused for)."""
    with threads(1):
        # a 6144-wide MLP: 256 tokens a thread, below max_length=300, which runs 304 wide
        assert resolve_token_budget(None, bert(6144), CPU, 300, 32, 304) == 304
        assert resolve_token_budget(None, bert(6144), CPU, 300, 32) == 300  # no padding known: the window itself
        profile = hf_txray.analyze(bert(6144), ["word " * 400], tokenizer=bert_tokenizer(), features=("token",),
                                   max_length=300, show_progress=False)
    assert profile.meta.config["max_tokens_per_batch"] == 304
