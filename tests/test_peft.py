"""Models adapted with PEFT, as users fine-tune them (fresh helper 105): an adapter on a layer (LoRA, IA3) is read
through its wrapper, so an adapted model and its merged copy (``merge_and_unload``), which compute the same function,
give the same profile, and masking a neuron reaches the adapter's branch; prompt learning, whose virtual tokens the
profiled stack would not add, is refused; removing neurons from a wrapped layer is refused with the fix."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import hf_txray
from hf_txray import ModelError
from hf_txray.sites import find_sites
from models import SAMPLE_TEXTS, assert_same_credit, bpe_tokenizer, save_tiny_model, tiny, tiny_llama_lm

try:
    from .hub_fixtures import hub, hub_server, upload_folder_as  # noqa: F401
except ImportError:
    from hub_fixtures import hub, hub_server, upload_folder_as  # noqa: F401

peft = pytest.importorskip("peft")

OPTIONS = dict(features=("token",), batch_size=4, show_progress=False)


def adapted(kind: str, config) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """A tiny model with the adapter (its trainable weights drawn away from their identity start) and its merge."""
    model, tokenizer = tiny(kind)
    wrapped = peft.get_peft_model(copy.deepcopy(model), config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_" in name or "ia3_" in name:
                weight.copy_(torch.rand(weight.shape, generator=generator) * 2 - (0 if "ia3_" in name else 1))
    return wrapped, copy.deepcopy(wrapped).merge_and_unload().eval(), tokenizer


@pytest.mark.parametrize("kind,config", [
    ("llama", lambda: peft.LoraConfig(r=4, target_modules=["down_proj", "up_proj", "gate_proj"])),
    ("gpt2", lambda: peft.LoraConfig(r=4, target_modules=["c_fc", "c_proj"], fan_in_fan_out=True)),
    ("bert", lambda: peft.LoraConfig(r=4, target_modules=["intermediate.dense", "output.dense"])),
    # IA3 scales the down projection's input inside its wrapper; merging folds the scale into the weights
    ("llama", lambda: peft.IA3Config(target_modules=["down_proj"], feedforward_modules=["down_proj"])),
], ids=["lora-llama", "lora-gpt2", "lora-bert", "ia3-llama"])
def test_an_adapted_model_is_profiled_as_its_merged_copy(kind, config):
    wrapped, merged, tokenizer = adapted(kind, config())
    sites = find_sites(wrapped)
    assert all(hf_txray.sites.peft_base_layer(site.module) is not None for site in sites)  # the wrapper, hooked
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    np.testing.assert_allclose(profile.neuron_mass, reference.neuron_mass, rtol=1e-4, atol=1e-6)
    base = hf_txray.analyze(tiny(kind)[0], SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    assert not np.array_equal(profile.neuron_count, base.neuron_count)  # the adapter changed what is read


def test_lora_on_a_dense_layers_weight_through_target_parameters_is_read_as_its_wrapper():
    """peft's ParamWrapper (LoRA on a parameter, `target_parameters`) of a dense linear layer holds num_experts=1, so
    site='mlp' refused the block as holding experts 'mlp.up_proj' that hf_txray cannot number (naming LongCat-Flash,
    DBRX and Doge, and site='residual' as the fix); the wrapper is read as the layer it wraps, as its merged copy."""
    config = peft.LoraConfig(r=4, target_modules=[], target_parameters=["mlp.down_proj.weight", "mlp.up_proj.weight"],
                             init_lora_weights=False)
    wrapped = peft.get_peft_model(tiny_llama_lm(), config).eval()
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    np.testing.assert_allclose(profile.neuron_mass, reference.neuron_mass, rtol=1e-5, atol=1e-7)
    base = hf_txray.analyze(tiny_llama_lm(), SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    assert not np.array_equal(profile.neuron_count, base.neuron_count)  # the adapter changed what is read


def test_an_adapter_named_by_digits_is_read():
    """The site search walked module paths indexing every digit part as a ModuleList position, so the ModuleDicts
    of an adapter named "0" (as X-LoRA names its adapters) raised a bare KeyError: 0."""
    config = peft.LoraConfig(r=4, target_modules=["down_proj", "up_proj"], init_lora_weights=False)
    wrapped = peft.get_peft_model(tiny_llama_lm(), config, adapter_name="0").eval()
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    np.testing.assert_allclose(profile.neuron_mass, reference.neuron_mass, rtol=1e-5, atol=1e-7)


def test_masking_a_neuron_of_an_adapted_model_reaches_the_adapter_branch():
    """The mask hooked the wrapped base layer, so LoRA's A still read the "pruned" neurons (the logits moved by as
    much as the pruning itself); mode='remove' sliced the base layer only and broke the next forward pass."""
    model = tiny_llama_lm()
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=4, target_modules=["down_proj"])).eval()
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5)
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    ids = torch.tensor([bpe_tokenizer()(SAMPLE_TEXTS[0])["input_ids"]])
    neurons = {0: list(range(0, 24, 3)), 1: list(range(1, 24, 4))}
    with torch.no_grad(), hf_txray.masked(wrapped, neurons), hf_txray.masked(merged, neurons):
        np.testing.assert_allclose(wrapped(input_ids=ids).logits.numpy(), merged(input_ids=ids).logits.numpy(),
                                   atol=1e-5)
    with pytest.raises(ModelError, match=r"cannot slice layers wrapped by a PEFT adapter.*merge_and_unload"):
        hf_txray.prune(wrapped, None, strategy=neurons, mode="remove", uneven="zero")
    ids_out = wrapped(input_ids=ids).logits  # refused before any change: the model still runs
    assert ids_out.shape[-1] == model.config.vocab_size


@pytest.mark.parametrize("config", [
    lambda: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5),
    lambda: peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5),
], ids=["prompt", "prefix"])
def test_prompt_learning_is_refused_not_profiled_without_its_virtual_tokens(config):
    """The profiled stack runs without the PeftModel's forward, which adds the virtual tokens: the profile was the
    base model's, exactly, with no error (and every TXRayTrainer snapshot of a prompt-tuning run the same)."""
    wrapped = peft.get_peft_model(tiny_llama_lm(), config())
    with pytest.raises(ModelError, match=r"PEFT (PROMPT_TUNING|PREFIX_TUNING) adapter, whose virtual tokens"):
        hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)


def test_an_xlora_model_is_refused_as_its_own_forward_computes_its_scalings(tmp_path):
    """X-LoRA's PeftModel forward computes per-token scalings of its LoRA adapters (a first pass with them disabled,
    then its classifier) and injects them into the LoRA layers; the profiled stack run alone applied every adapter at
    full weight: 118 of a tiny Llama's cells moved against its own forward's activations, with no error."""
    adapters = {}
    for name in ("0", "1"):  # X-LoRA's own names for its adapters
        lora = peft.LoraConfig(r=4, target_modules=["down_proj", "up_proj"], init_lora_weights=False)
        peft.get_peft_model(tiny_llama_lm(seed=int(name)), lora).save_pretrained(tmp_path / name)
        adapters[name] = str(tmp_path / name)
    base = tiny_llama_lm()
    base.config.use_cache = False
    config = peft.XLoraConfig(task_type="CAUSAL_LM", hidden_size=32, adapters=adapters, xlora_depth=1)
    wrapped = peft.get_peft_model(base, config).eval()
    with pytest.raises(ModelError, match=r"PEFT X-LoRA adapter, whose scalings.*at full weight"):
        hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    with pytest.raises(ModelError, match=r"PEFT X-LoRA adapter"):
        hf_txray.output_effects_table(wrapped, k=5)


def test_an_activated_lora_model_is_refused_as_its_own_forward_places_the_adapter():
    """aLoRA's PeftModelForCausalLM forward finds the invocation tokens in each text and passes the offsets from
    which the adapter applies to the LoRA layers; the profiled stack run alone passed none, so the adapter never
    applied: the profile was the base model's, 36 cells of site='mlp' away from the model's own activations."""
    invocation = bpe_tokenizer()(" the")["input_ids"]
    config = peft.LoraConfig(r=4, target_modules=["down_proj", "up_proj"], alora_invocation_tokens=invocation,
                             init_lora_weights=False, task_type="CAUSAL_LM")
    wrapped = peft.get_peft_model(tiny_llama_lm(), config).eval()
    with pytest.raises(ModelError, match=r"Activated LoRA \(aLoRA\) adapter \('default'.*never apply"):
        hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    with pytest.raises(ModelError, match=r"Activated LoRA"):
        hf_txray.output_effects_table(wrapped, k=5)


def test_txray_trainer_refuses_a_prompt_learning_model_before_training(tmp_path):
    """Under TXRayTrainer every snapshot of a prompt-tuning run was the base model's: a report of step 0 against
    step 20 said nothing changed while the trained prompt moved a third of the cells."""
    from test_trainer import build_args

    wrapped = peft.get_peft_model(tiny_llama_lm(), peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5))
    with pytest.raises(ModelError, match=r"PEFT PROMPT_TUNING adapter"):
        hf_txray.TXRayTrainer(model=wrapped, args=build_args(tmp_path), txray_dataset=SAMPLE_TEXTS,
                              processing_class=bpe_tokenizer())


def test_lora_on_a_moe_models_shared_expert_is_read_and_on_its_experts_refused():
    """Fresh helper 104: LoRA on Hunyuan's undeclared shared MLP dropped the shared expert (its down projection's
    parent was the LoRA wrapper, no MLP); LoRA on fused experts (peft's ParamWrapper) moved two thirds of the
    credits in DeepSeek-V3: the experts' units are computed from the experts' weights, which the adapter changes
    only inside its forward."""
    from test_architectures import build

    model, tokenizer = build.__wrapped__("qwen2_moe")  # a model of its own: build() is cached and shared
    # named, not a regex: peft 0.22 resolves a regex on a Qwen2-MoE model to its leaf names (gate_proj...), which
    # then target the fused experts too (its transformers v4 -> v5 conversion), and the experts are refused below
    shared = [f"shared_expert.{name}" for name in ("gate_proj", "up_proj", "down_proj")]
    config = peft.LoraConfig(r=8, target_modules=shared, init_lora_weights=False)
    wrapped = peft.get_peft_model(copy.deepcopy(model), config).eval()
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    assert profile.num_neurons == 4 * 16 + 48 and profile.meta.config["num_shared_experts"] == 3
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    np.testing.assert_allclose(profile.neuron_mass, reference.neuron_mass, rtol=1e-4, atol=1e-6)
    on_experts = peft.LoraConfig(r=4, target_modules=[], target_parameters=["mlp.experts.gate_up_proj"])
    with pytest.raises(ModelError, match=r"experts .* are wrapped by a PEFT adapter.*merge_and_unload"):
        hf_txray.analyze(peft.get_peft_model(copy.deepcopy(model), on_experts), SAMPLE_TEXTS, tokenizer=tokenizer,
                         **OPTIONS)
    # Helper 118: modules_to_save on the experts (a copy beside the original) was refused as "several fused experts
    # modules (as ERNIE-4.5-VL's ...)", with site='residual' as the only way out; merging works
    saved = peft.LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["experts"])
    with pytest.raises(ModelError, match=r"experts .* are wrapped by a PEFT adapter.*merge_and_unload"):
        hf_txray.analyze(peft.get_peft_model(copy.deepcopy(model), saved), SAMPLE_TEXTS, tokenizer=tokenizer,
                         **OPTIONS)


def test_modules_to_save_is_read_through_its_wrapper():
    """Fresh helper 106: `modules_to_save=["down_proj"]` keeps a trainable copy beside the original, and both were
    candidates for the site ("several linear layers qualify"); the wrapper is the layer, whichever copy runs."""
    model, tokenizer = tiny("llama")
    config = peft.LoraConfig(r=4, target_modules=["up_proj"], modules_to_save=["down_proj"])
    wrapped = peft.get_peft_model(copy.deepcopy(model), config).eval()
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "modules_to_save" in name or "lora_B" in name:
                weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(2)) * 0.3)
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    np.testing.assert_allclose(profile.neuron_mass, reference.neuron_mass, rtol=1e-4, atol=1e-6)


def test_attribution_refuses_prompt_tuning():
    """Fresh helper 106: attribution ran the PeftModel, whose virtual tokens lengthened the traced tensor (a bare
    reshape RuntimeError)."""
    pytest.importorskip("captum")
    wrapped = peft.get_peft_model(tiny_llama_lm(), peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5))
    with pytest.raises(ModelError, match=r"PEFT PROMPT_TUNING adapter"):
        hf_txray.neuron_attributions(wrapped, bpe_tokenizer(), SAMPLE_TEXTS[0], layer=1, neuron=3)


def _lm(kind: str) -> torch.nn.Module:
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=2, n_inner=40)).eval()
    if kind == "bert":
        return BertForMaskedLM(BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=48)).eval()
    return tiny_llama_lm()


@pytest.mark.parametrize("kind,config", [
    ("gpt2", lambda: peft.LoraConfig(r=4, target_modules=["c_fc", "c_proj"], fan_in_fan_out=True,
                                     init_lora_weights=False)),
    ("llama", lambda: peft.LoraConfig(r=4, target_modules=["down_proj", "lm_head"], init_lora_weights=False)),
    ("llama", lambda: peft.LoraConfig(r=4, target_modules=["down_proj"], use_dora=True, init_lora_weights=False)),
    ("llama", lambda: peft.IA3Config(target_modules=["down_proj"], feedforward_modules=["down_proj"],
                                     init_ia3_weights=False)),
    # the MLM head's transform (a head step) adapted, the decoder trained as a copy beside the original
    ("bert", lambda: peft.LoraConfig(r=4, target_modules=["output.dense", "transform.dense"],
                                     modules_to_save=["decoder"], init_lora_weights=False)),
], ids=["lora-gpt2", "lora-llama-lm-head", "dora-llama", "ia3-llama", "lora-bert-head-transform"])
def test_output_effects_of_an_adapted_model_are_its_merged_copys(kind, config):
    """Output effects read the base weights of wrapped layers (LoRA ignored: 98% of a tiny GPT-2's top tokens
    changed against its merged copy) or crashed on a wrapped nn.Linear (its weight was transposed as a Conv1D's)."""
    wrapped = peft.get_peft_model(copy.deepcopy(_lm(kind)), config()).eval()
    with torch.no_grad():  # IA3 starts from random scales here; LoRA's B from random values (init_lora_weights)
        for name, weight in wrapped.named_parameters():
            if "modules_to_save" in name:
                weight.add_(torch.randn_like(weight))
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    got = hf_txray.output_effects_table(wrapped, k=5)
    expected = hf_txray.output_effects_table(merged, k=5)
    assert got["token_id"].tolist() == expected["token_id"].tolist()
    np.testing.assert_allclose(got["logit"], expected["logit"], rtol=1e-4, atol=1e-6)
    base = hf_txray.output_effects_table(_lm(kind), k=5)
    assert got["token_id"].tolist() != base["token_id"].tolist()  # the adapter changed what the neurons write


def test_output_effects_of_an_adapter_without_a_fixed_matrix_are_refused():
    """Lily averages its router over every row it is given, so the map read from a wrapped down projection on unit
    vectors was not the one it applies to the model's tokens (max error 6.0 in outputs up to 44 on a text's
    positions of a tiny Llama) and output effects were given from it without an error."""
    wrapped = peft.get_peft_model(tiny_llama_lm(), peft.LilyConfig(r=4, target_modules=["down_proj"],
                                                                   init_weights=False)).eval()
    with pytest.raises(ModelError, match=r"Linear \(lily\) applies no fixed matrix.*without output_effects"):
        hf_txray.output_effects_table(wrapped, k=5)


class _TF32Matmuls(torch.overrides.TorchFunctionMode):
    """float32 matmuls as CUDA runs them with TF32 allowed (torch.set_float32_matmul_precision("high"),
    TrainingArguments(tf32=True)): operands rounded to 10 mantissa bits, products summed in float32."""

    OPS = {torch.nn.functional.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm}

    @staticmethod
    def _round(t):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
            return t
        bits = t.contiguous().view(torch.int32)
        return ((bits + 0x1000) & ~0x1FFF).view(torch.float32).view(t.shape)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.OPS:
            args = tuple(self._round(a) if i < 2 else a for i, a in enumerate(args))
        return func(*args, **(kwargs or {}))


def test_output_effects_of_an_adapted_float32_model_are_not_refused_under_tf32_matmuls():
    """The check that a wrapper applies a fixed matrix allowed float32 rounding (1e-4 of the outputs): with TF32
    matmuls (a float32 model on a GPU after torch.set_float32_matmul_precision("high")) LoRA, DoRA and IA3 wrappers
    were refused as applying no fixed matrix (max error 4.6e-4 in outputs up to 2.46 on a 1024-wide layer). The
    tolerance takes the rounding of the matmuls as they run; Lily is still refused."""
    wrapped = peft.get_peft_model(tiny_llama_lm(), peft.LoraConfig(r=4, target_modules=["down_proj"],
                                                                   init_lora_weights=False)).eval()
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    with _TF32Matmuls():
        got = hf_txray.output_effects_table(wrapped, k=5)
    reference = hf_txray.output_effects_table(merged, k=5)
    # the same logits rank by rank (TF32's rounding may swap near-ties)
    np.testing.assert_allclose(got["logit"], reference["logit"], atol=2e-3 * reference["logit"].abs().max())
    lily = peft.get_peft_model(tiny_llama_lm(), peft.LilyConfig(r=4, target_modules=["down_proj"],
                                                                init_weights=False)).eval()
    with _TF32Matmuls(), pytest.raises(ModelError, match=r"applies no fixed matrix"):
        hf_txray.output_effects_table(lily, k=5)


def test_a_bf16_adapter_layers_matrix_is_not_rounded_at_its_bias_scale():
    """Review 441: a wrapper's matrix was read as module(e_j) - module(0), so in bf16 each entry of W e_j + b was
    rounded at the bias's scale: with a bias 50 times the weights' mean, 2% of the largest entry off the merged
    weight (bf16 itself rounds 0.4%), and output effects read that matrix (silent). The base bias is zeroed while the
    wrapper is read, and put back."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_txray.sites import linear_weight

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, mlp_bias=True)).eval()
    down = model.model.layers[0].mlp.down_proj
    with torch.no_grad():
        down.bias.normal_(0, 50 * down.weight.abs().mean().item())
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["down_proj"],
                                                         init_lora_weights=False)).eval()
    exact = copy.deepcopy(wrapped).merge_and_unload().model.layers[0].mlp.down_proj.weight.detach().double()
    low = copy.deepcopy(wrapped).to(torch.bfloat16)
    layer = low.base_model.model.model.layers[0].mlp.down_proj
    bias = layer.base_layer.bias.detach().clone()
    got = linear_weight(layer).double()
    assert float((got - exact).abs().max() / exact.abs().max()) < 0.008  # bf16's own rounding, not the bias's
    assert torch.equal(layer.base_layer.bias, bias)  # put back
    full = linear_weight(wrapped.base_model.model.model.layers[0].mlp.down_proj).double()
    assert float((full - exact).abs().max() / exact.abs().max()) < 1e-5  # float32, as before


class _LargestFloatCopy(TorchDispatchMode):
    """The most entries of a float32 tensor converted from another dtype (``aten._to_copy``) while it is active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default and isinstance(out, torch.Tensor) \
                and out.dtype == torch.float32 and args[0].dtype != torch.float32:
            self.largest = max(self.largest, out.numel())
        return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_low_precision_matrix_is_read_in_float32_blocks_not_copied_whole(dtype, monkeypatch):
    """Helper 447: Readout.logits made a float32 copy of the whole unembedding on each call (2 GB for a 128k x 4096
    bf16 LM head, per 256 neurons) and the input-dependent-map check of a PEFT wrapper one of the matrix read from it;
    both read it in float32 blocks of rows now, with the same numbers as the whole copy gave."""
    from hf_txray import sites
    from hf_txray.output_effects import Readout
    from hf_txray.sites import linear_weight

    monkeypatch.setattr(sites, "_FLOAT_ELEMENTS", 16 * 32)  # blocks of 16 rows of 32
    torch.manual_seed(0)
    unembedding = torch.randn(100, 32).to(dtype)
    directions = torch.randn(32, 7)
    with _LargestFloatCopy() as seen:
        logits = Readout([], unembedding, []).logits(directions)
    assert seen.largest == 16 * 32
    assert torch.equal(logits, unembedding.float() @ directions)
    float32 = torch.randn(100, 32)  # no copy at all: the one product as before
    assert torch.equal(Readout([], float32, []).logits(directions), float32 @ directions)
    model = nn.Sequential(nn.Linear(32, 100)).to(dtype)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["0"], init_lora_weights=False)).eval()
    layer = wrapped.base_model.model[0]
    with _LargestFloatCopy() as seen:
        got = linear_weight(layer)
    assert seen.largest <= 16 * 32
    merged = copy.deepcopy(wrapped).merge_and_unload()[0].weight.detach()
    assert got.dtype == dtype and float((got.double() - merged.double()).abs().max()) <= 0.01 * float(merged.abs().max())

def test_a_wrapped_layer_without_outputs_reads_as_an_empty_map():
    """Helper 451: linear_weight of a LoRA-wrapped nn.Linear(8, 0) raised ZeroDivisionError (the probe's block size
    divided by the number of outputs), where the plain layer reads as its empty (0, 8) weight; so does the wrapper
    now, and one of no inputs as its (8, 0) map."""
    import warnings

    from hf_txray.sites import linear_weight

    for width, out in ((8, 0), (0, 8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
            model = nn.Sequential(nn.Linear(width, out))
            plain = linear_weight(model[0])
            wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["0"], init_lora_weights=False))
        got = linear_weight(wrapped.base_model.model[0])
        assert got.shape == plain.shape == (out, width) and got.dtype == plain.dtype


def test_auto_skip_reads_an_adapted_decoder_as_its_base_model():
    """Helper 447: skip_first_positions="auto" probed a PeftModel as it runs; a Lily adapter's router averages over
    every token of the text, so the first position read later tokens and the adapted decoder was judged bidirectional:
    profiled from position 0 while its base model was profiled from position 1, and compare() of the two stages warned
    that part of their difference was that. "auto" reads the model with its adapters off now: both skip position 0,
    the Lily profile (each text alone) is the brute force's with that skip, and the adapters run again afterwards."""
    import warnings

    import reference

    tokenizer = bpe_tokenizer()
    run = lambda model, stage: hf_txray.analyze(  # noqa: E731
        model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), stage=stage, batch_size=1,
        pad_to_multiple_of=1, show_progress=False)
    lily = peft.get_peft_model(tiny_llama_lm(), peft.LilyConfig(r=4, target_modules=["down_proj"],
                                                                init_weights=False)).eval()
    base, adapted = run(tiny_llama_lm(), "base"), run(lily, "lily")
    assert base.meta.config["skip_first_positions"] == adapted.meta.config["skip_first_positions"] == 1
    flags = [m._disable_adapters for m in lily.modules() if hasattr(m, "_disable_adapters")]
    assert flags and not any(flags)  # put back
    ref = reference.reference_profile(lily.get_base_model(), tokenizer, [t for t in SAMPLE_TEXTS if t.strip()],
                                      feature_types=("token",), skip_first_positions=1)
    assert reference.profile_table(adapted, "token")[1] == dict(ref.count["token"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*skip_first_positions")
        hf_txray.compare(base, adapted, test=False)

def test_auto_skip_leaves_a_merged_adapter_merged():
    """Review 448: skip_first_positions="auto" set each adapter layer's _disable_adapters flag while it probed the
    model, and peft's LoRA forward unmerges a merged layer it finds disabled: a model profiled after
    merge_adapter() came back unmerged, its bf16 base weights no longer the ones it had (silent). Merged layers are
    left on now (their adapter is in the base weight, one token at a time): the model comes back as it was."""
    torch.manual_seed(0)
    model = peft.get_peft_model(tiny_llama_lm().to(torch.bfloat16), peft.LoraConfig(
        r=4, target_modules=["down_proj"], init_lora_weights=False)).eval()
    model.merge_adapter()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    profile = hf_txray.analyze(model, SAMPLE_TEXTS[:4], tokenizer=bpe_tokenizer(), features=("token",),
                               show_progress=False)
    assert profile.meta.config["skip_first_positions"] == 1
    layers = [m for m in model.modules() if hasattr(m, "merged_adapters")]
    assert layers and all(m.merged for m in layers)
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())


def test_an_adapted_classifier_runs_its_body_only():
    """A PeftModel's base_model is PEFT's tuner, heads included: the profile ran GPT-2's classification head, which
    cannot take a batch without a pad id (a bare ValueError). The body inside the PeftModel runs, as without PEFT."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tokenizer = bpe_tokenizer()
    torch.manual_seed(0)
    model = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2,
                                                     n_inner=40, num_labels=3)).eval()
    config = peft.LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["c_proj"], fan_in_fan_out=True,
                             init_lora_weights=False)
    wrapped = peft.get_peft_model(copy.deepcopy(model), config).eval()
    assert wrapped.config.pad_token_id is None
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS)
    reference = hf_txray.analyze(copy.deepcopy(wrapped).merge_and_unload().eval(), SAMPLE_TEXTS, tokenizer=tokenizer,
                                 **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    np.testing.assert_allclose(profile.neuron_mass, reference.neuron_mass, rtol=1e-4, atol=1e-6)


def test_a_probe_of_the_base_model_refuses_the_adapted_model_with_a_fix_that_works():
    """The refusal told users to pass model.get_base_model(), which keeps the adapter layers (and is refused the
    same way); a probe trained on the adapted model scores it."""
    from hf_txray.probing import ProbeMetric, from_spacy

    model, tokenizer = tiny("bert")
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(
        r=4, target_modules=["intermediate.dense", "output.dense"])).eval()
    texts = ["The cat sat on the mat .", "A dog ran fast .", "Big red cars go home ."] * 4
    held_out = from_spacy(texts[:3], "pos")
    base_probe = hf_txray.probe_neurons(model, texts, "pos", tokenizer=tokenizer, layers=[1])
    for candidate in (wrapped, wrapped.get_base_model()):
        with pytest.raises(ModelError, match=r"PEFT adapter added .*get_base_model\(\) keeps the adapter layers"):
            hf_txray.ablation_curve(candidate, base_probe, ProbeMetric(base_probe, held_out, tokenizer), counts=[2])
    own = hf_txray.probe_neurons(wrapped, texts, "pos", tokenizer=tokenizer, layers=[1])
    curve = hf_txray.ablation_curve(wrapped, own, ProbeMetric(own, held_out, tokenizer), counts=[2])
    assert set(curve.summary()["strategy"]) == {"baseline", "random", "ranked"}


def saved_adapter(tmp_path, with_tokenizer: bool = False):
    """A tiny BERT saved as a base model folder, and a LoRA adapter of it saved on its own (adapter_config.json naming
    the base folder, as peft writes it), with the merged model as the reference."""
    from transformers import AutoModel

    base_dir = save_tiny_model(tmp_path / "base")
    base = AutoModel.from_pretrained(base_dir)
    wrapped = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["intermediate.dense"]))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.rand(weight.shape, generator=generator) * 2 - 1)
    adapter_dir = tmp_path / "adapter"
    wrapped.save_pretrained(adapter_dir)
    if with_tokenizer:
        tiny("bert")[1].save_pretrained(adapter_dir)
    return base_dir, adapter_dir, copy.deepcopy(wrapped).merge_and_unload().eval()


@pytest.mark.parametrize("with_tokenizer", [False, True], ids=["adapter-only", "adapter-with-tokenizer"])
def test_an_adapter_folder_is_profiled_as_its_base_with_the_adapter_and_pins_both(tmp_path, with_tokenizer):
    """A PEFT adapter folder (adapter_config.json, no config.json) was refused as 'not a model folder'. It is loaded
    as transformers loads it (the base model it names, with the adapter's layers), its tokenizer is the base's when
    the adapter saved none, and the provenance pins the base model beside the adapter."""
    base_dir, adapter_dir, merged = saved_adapter(tmp_path, with_tokenizer)
    profile = hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)
    assert_same_credit(profile, hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tiny("bert")[1], **OPTIONS))
    assert not np.array_equal(profile.neuron_count, hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS).neuron_count)
    record = profile.meta.provenance["model"]
    assert record["id"] == str(adapter_dir.resolve()) and "adapter_model.safetensors" in record["files"]
    assert "adapter_config.json" in record["files"]
    assert record["base_model"]["id"] == str(base_dir.resolve())
    assert record["base_model"]["content_hash"] == hf_txray.provenance.files_hash(
        hf_txray.provenance.model_folder_files(base_dir))


def test_an_adapter_without_its_base_model_or_config_is_refused_before_loading(tmp_path, monkeypatch):
    import json

    _, adapter_dir, _ = saved_adapter(tmp_path)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (adapter_dir / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": None}))
    with pytest.raises(ModelError, match="does not name its base model"):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)
    (adapter_dir / "adapter_config.json").write_text("[1, 2")
    with pytest.raises(ModelError, match="not a JSON object"):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else
                        real_find_spec(name, *a))
    with pytest.raises(ModelError, match="pip install peft"):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)


def hub_adapter(tmp_path, hub):
    """:func:`saved_adapter`'s base and adapter as two repos of the test Hub, the adapter naming the base's repo:
    ``(merged model, (base repo, commit), (adapter repo, commit))``."""
    import json

    base_dir, adapter_dir, merged = saved_adapter(tmp_path)
    base_repo, adapter_repo = f"{hub.username}/tiny-base", f"{hub.username}/tiny-lora"
    base_commit = upload_folder_as(hub, base_repo, base_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (adapter_dir / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base_repo}))
    return merged, (base_repo, base_commit), (adapter_repo, upload_folder_as(hub, adapter_repo, adapter_dir))


def test_a_hub_adapter_repo_loads_its_hub_base_model_and_pins_both_commits(tmp_path, hub):
    """An adapter repo on the Hub (only adapter_config.json and the adapter's weights) whose base model is another Hub
    repo: the profile is the adapted model's, and the record pins the adapter's commit and the base's, not the base's
    commit as the adapter's revision."""
    merged, (base_repo, base_commit), (adapter_repo, adapter_commit) = hub_adapter(tmp_path, hub)
    profile = hf_txray.analyze(adapter_repo, SAMPLE_TEXTS, **OPTIONS)
    assert_same_credit(profile, hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tiny("bert")[1], **OPTIONS))
    record = profile.meta.provenance["model"]
    assert (record["kind"], record["id"], record["commit"]) == ("hub", adapter_repo, adapter_commit)
    assert (record["base_model"]["id"], record["base_model"]["commit"]) == (base_repo, base_commit)
    assert "adapter_model.safetensors" in record["files"] and "config.json" in record["base_model"]["files"]
    assert profile.meta.revision in (None, adapter_commit)


def test_an_adapter_of_another_width_is_refused_not_left_out(tmp_path):
    """transformers only logs adapter weights that do not fit the base model (another model's adapter): the adapted
    layers would keep their start values, and the profile would be the base model's under the adapter's name."""
    import json

    from transformers import AutoModel

    _, adapter_dir, _ = saved_adapter(tmp_path)
    wider = AutoModel.from_config(tiny("bert")[0].config.__class__(**{
        **tiny("bert")[0].config.to_dict(), "intermediate_size": 2 * tiny("bert")[0].config.intermediate_size}))
    wider.save_pretrained(tmp_path / "wider")
    tiny("bert")[1].save_pretrained(tmp_path / "wider")
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (adapter_dir / "adapter_config.json").write_text(json.dumps({**config,
                                                                 "base_model_name_or_path": str(tmp_path / "wider")}))
    with pytest.raises(ModelError, match="does not fit its base model"):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)


def test_a_classification_adapter_with_its_saved_head_is_profiled_as_its_merged_body(tmp_path):
    """Fresh helper 292: a LoRA adapter trained with task_type="SEQ_CLS" (TXRayTrainer's checkpoints of a classifier,
    peft's most common setting) saves its head too (modules_to_save=["classifier", "score"]). analyze loads the body
    without a head, and refused the checkpoint as an adapter that "does not fit its base model" (2 adapter weights,
    'classifier.bias'): a head downstream of every profiled neuron. Those weights are left out, said at info level;
    the profile is the merged model's."""
    import json

    from transformers import AutoModelForSequenceClassification

    base_model, tokenizer = tiny("bert")
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_config(base_model.config)
    classifier.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    wrapped = peft.get_peft_model(classifier, peft.LoraConfig(r=4, target_modules=["intermediate.dense"],
                                                              task_type="SEQ_CLS"))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.rand(weight.shape, generator=generator) * 2 - 1)
    wrapped.save_pretrained(tmp_path / "adapter")
    profile = hf_txray.analyze(str(tmp_path / "adapter"), SAMPLE_TEXTS, **OPTIONS)
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    assert_same_credit(profile, hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tokenizer, **OPTIONS))
    # a weight of no saved module that the model lacks is still refused (another model's adapter)
    config_file = tmp_path / "adapter" / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "modules_to_save": ["score"]}))
    with pytest.raises(ModelError, match="does not fit its base model"):
        hf_txray.analyze(str(tmp_path / "adapter"), SAMPLE_TEXTS, **OPTIONS)


def test_reproducing_an_adapters_profile_checks_its_base_model(tmp_path):
    """analyze reads an adapter's base model as it is now: reproduce recomputes when the base is unchanged and refuses
    when it changed, where it would have recomputed another model under the same adapter."""
    base_dir, adapter_dir, _ = saved_adapter(tmp_path)
    profile = hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)
    assert hf_txray.reproduce_profile(profile, dataset=SAMPLE_TEXTS).identical
    save_tiny_model(base_dir, seed=7)  # other weights in the base's folder
    with pytest.raises(ModelError, match="now resolves to"):
        hf_txray.reproduce_profile(profile, dataset=SAMPLE_TEXTS)
    shutil.rmtree(base_dir)  # a helper: a local base gone (another machine) was said as a bare missing path
    with pytest.raises(ModelError, match=r"profiled on its base model .*cannot be read here \(The model path .* does "
                                         r"not exist.*pass model=\.\.\. with the adapted model loaded yourself"):
        hf_txray.reproduce_profile(profile, dataset=SAMPLE_TEXTS)


def saved_lm_adapter(tmp_path, config):
    """A tiny Llama with its LM head saved as a base folder, an adapter of it trained as users train one (task
    CAUSAL_LM: keys under the LM's body) saved on its own, and the merged model as the reference."""
    from transformers import AutoModelForCausalLM

    base_dir = tmp_path / "lm-base"
    tiny_llama_lm().save_pretrained(base_dir)
    bpe_tokenizer().save_pretrained(base_dir)
    wrapped = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.rand(weight.shape, generator=generator) * 2 - 1 + ("magnitude" in name))
    wrapped.save_pretrained(tmp_path / "lm-adapter")
    return base_dir, tmp_path / "lm-adapter", copy.deepcopy(wrapped).merge_and_unload().eval()


def test_output_effects_of_an_adapter_of_a_base_without_lm_head_are_refused(tmp_path):
    """Fresh helper 179: transformers reports only the adapter's weights when it loads an adapter onto its base, so
    output_effects=True of an adapter of a headless encoder read a head initialised at random (its base alone is
    refused)."""
    _, adapter_dir, _ = saved_adapter(tmp_path)
    with pytest.raises(ModelError, match=r"with an LM head.*weights missing from the checkpoint \(cls\.predictions"):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, output_effects=True, output_effects_k=3, **OPTIONS)


def test_output_effects_of_a_hub_adapter_are_its_merged_copys(tmp_path, hub):
    """Fresh helper 179: with output_effects=True transformers loaded the adapter repo, asking the base repo for
    the adapter's commit: 'loads as neither a causal LM nor a masked LM (... not a valid git identifier)'."""
    import json

    base_dir, adapter_dir, merged = saved_lm_adapter(tmp_path, peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, target_modules=["up_proj", "down_proj"]))
    base_repo, adapter_repo = f"{hub.username}/lm-base", f"{hub.username}/lm-lora"
    base_commit = upload_folder_as(hub, base_repo, base_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (adapter_dir / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base_repo}))
    adapter_commit = upload_folder_as(hub, adapter_repo, adapter_dir)
    effects = dict(output_effects=True, output_effects_k=5)
    profile = hf_txray.analyze(adapter_repo, SAMPLE_TEXTS, **effects, **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **effects, **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    assert profile.output_effects["token_id"].tolist() == reference.output_effects["token_id"].tolist()
    np.testing.assert_allclose(profile.output_effects["logit"], reference.output_effects["logit"], rtol=1e-4,
                               atol=1e-6)
    record = profile.meta.provenance["model"]
    assert (record["commit"], record["base_model"]["commit"]) == (adapter_commit, base_commit)


def test_a_dora_adapter_by_name_is_refused_naming_the_peft_load_that_works(tmp_path):
    """Fresh helper 179: transformers' load_adapter leaves DoRA's magnitude vectors out (their saved keys lack the
    '.weight' it looks for); the refusal said the adapter 'does not fit its base model', for the adapter of that
    very base. The fix it names gives the merged model's profile."""
    refused_by_folder_exact_through_peft(tmp_path, peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, target_modules=["down_proj"], use_dora=True),
        r"is a DoRA adapter .*PeftModel\.from_pretrained")


def refused_by_folder_exact_through_peft(tmp_path, config, refusal: str):
    """An adapter folder of `config` that analyze refuses by path (`refusal`), and that the peft load the refusal
    names profiles as the merged model does; returns that profile and the base model's folder."""
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir, merged = saved_lm_adapter(tmp_path, config)
    with pytest.raises(ModelError, match=refusal):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)
    wrapped = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir)).eval()
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)
    return profile, base_dir


def test_an_adapter_whose_base_folder_is_gone_is_refused_naming_the_adapters_config(tmp_path):
    """Fresh helper 179: the refusal named only the base's path ('The model path ... does not exist'), a path the
    user never gave, without saying that the adapter's config names it."""
    import shutil

    base_dir, adapter_dir, _ = saved_adapter(tmp_path)
    shutil.rmtree(base_dir)
    with pytest.raises(ModelError, match=r"PEFT adapter .* names its base model .*base_model_name_or_path.*does not "
                                         r"exist"):
        hf_txray.analyze(str(adapter_dir), SAMPLE_TEXTS, **OPTIONS)


def test_a_cached_hub_adapter_loads_offline_with_its_cached_base(tmp_path, hub, monkeypatch):
    """Fresh helper 179: offline (HF_HUB_OFFLINE=1, both repos cached by an earlier run) a Hub adapter was read as a
    model repo (its files are not listed offline): transformers asked for the base at the adapter's commit, 'could
    not be fetched from the Hub'."""
    import datasets
    from huggingface_hub import constants

    merged, (base_repo, base_commit), (adapter_repo, adapter_commit) = hub_adapter(tmp_path, hub)
    online = hf_txray.analyze(adapter_repo, SAMPLE_TEXTS, **OPTIONS)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = hf_txray.analyze(adapter_repo, SAMPLE_TEXTS, **OPTIONS)
    assert_same_credit(offline, online)
    record = offline.meta.provenance["model"]
    assert (record["commit"], record["base_model"]["id"], record["base_model"]["commit"]) == (
        adapter_commit, base_repo, base_commit)


def test_a_hub_repo_with_a_model_and_an_adapter_is_refused_naming_both_loads(tmp_path, hub):
    """Fresh helper 179: a Hub repo with config.json beside adapter_config.json was read by transformers as the
    adapter's base model with the adapter (the repo's own weights left out) while the record named the repo's files
    and no base model; with a Hub base it failed as 'could not be fetched from the Hub' (the base asked for at the
    repo's commit). The same files in a folder load as the folder's weights with the adapter."""
    import shutil

    _, adapter_dir, _ = saved_adapter(tmp_path)
    full = save_tiny_model(tmp_path / "full", seed=5)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(adapter_dir / name, full / name)
    repo = f"{hub.username}/full-and-lora"
    upload_folder_as(hub, repo, full)
    with pytest.raises(ModelError, match=r"holds both a model \(config\.json\) and a PEFT adapter.*snapshot_download"):
        hf_txray.analyze(repo, SAMPLE_TEXTS, **OPTIONS)


def test_a_folder_with_its_own_weights_and_an_adapter_is_both_and_each_is_checked(tmp_path):
    """A folder holding a model and, beside it, a PEFT adapter loads as its own weights with the adapter on top (as
    transformers loads it); transformers' load report then covers the adapter only, so a model weight missing from
    the folder was initialised at random without a word (helper 179). Now the model's weights are checked too."""
    from safetensors.torch import load_file, save_file

    base_dir, adapter_dir, merged = saved_adapter(tmp_path)
    for item in adapter_dir.iterdir():  # the adapter saved into the model's own folder
        if item.name.startswith("adapter_"):
            item.rename(base_dir / item.name)
    profile = hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS)
    assert_same_credit(profile, hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=tiny("bert")[1], **OPTIONS))
    assert profile.meta.provenance["model"]["base_model"] is None
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(profile.meta.provenance["model"]["files"])
    weights = load_file(base_dir / "model.safetensors")
    dropped = next(k for k in weights if "intermediate.dense.weight" in k)
    save_file({k: v for k, v in weights.items() if k != dropped}, base_dir / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ModelError, match="lacks 1 weights"):
        hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS)


def test_output_effects_of_a_folder_with_its_own_weights_and_an_adapter_check_its_head(tmp_path):
    """With output_effects=True the LM-head model of such a folder was transformers' load of it too: its report is
    the adapter's, so a head missing from the folder was drawn at random without a word."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "lm"
    model = tiny_llama_lm()
    model.save_pretrained(folder)
    bpe_tokenizer().save_pretrained(folder)
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=4, target_modules=["down_proj"]))
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.rand(weight.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    wrapped.save_pretrained(folder)
    options = dict(OPTIONS, output_effects=True, output_effects_k=3)
    profile = hf_txray.analyze(str(folder), SAMPLE_TEXTS, **options)
    merged = copy.deepcopy(wrapped).merge_and_unload().eval()
    reference = hf_txray.analyze(merged, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **options)
    assert_same_credit(profile, reference)
    pd.testing.assert_frame_equal(profile.output_effects.reset_index(drop=True),
                                  reference.output_effects.reset_index(drop=True), check_exact=False, rtol=1e-5)
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k != "lm_head.weight"}, folder / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ModelError, match="lm_head.weight"):
        hf_txray.analyze(str(folder), SAMPLE_TEXTS, **options)


def test_means_of_one_adapter_are_refused_under_another_adapter_or_with_adapters_disabled():
    """Fresh helper 194: the weights fingerprint hashed the tensors only, and a model holding two adapters holds the
    same tensors whichever runs: means extracted with adapter "a" active were filled in under adapter "b" (layer 0's
    first means 2.28 / 16.7 / 24.5 against b's own 0 / 6.1 / 11.4) and inside disable_adapter(), without a word."""
    from hf_txray.probing import extract_activations, from_spacy

    model, tokenizer = tiny("bert")
    config = peft.LoraConfig(r=4, target_modules=["intermediate.dense", "output.dense"], init_lora_weights=False)
    wrapped = peft.get_peft_model(copy.deepcopy(model), config, adapter_name="a")
    wrapped.add_adapter("b", copy.deepcopy(config))
    wrapped.eval()
    corpus = from_spacy(["The cat sat on the mat .", "A dog ran fast ."], "pos")
    means = extract_activations(wrapped, corpus, tokenizer=tokenizer)
    with hf_txray.ablate(wrapped, {0: [1, 2]}, mode="mean", means=means):
        pass  # the model the means were read from
    wrapped.set_adapter("b")
    with pytest.raises(ModelError, match=r"other weights than this model's.*another adapter active \(set_adapter\)"):
        with hf_txray.ablate(wrapped, {0: [1, 2]}, mode="mean", means=means):
            pass
    wrapped.set_adapter("a")
    with wrapped.disable_adapter(), pytest.raises(ModelError, match="other weights than this model's"):
        with hf_txray.ablate(wrapped, {0: [1, 2]}, mode="mean", means=means):
            pass
    with hf_txray.ablate(wrapped, {0: [1, 2]}, mode="mean", means=means):
        pass  # adapter "a" runs again


def test_an_adaloras_adapter_by_name_is_refused_as_adalora_naming_the_peft_load_that_works(tmp_path):
    """Fresh helper 194: an AdaLoRA adapter folder of this very base was refused as one that 'does not fit its base
    model ... Check that adapter_config.json names the model the adapter was trained on' (peft never saves AdaLoRA's
    constant ranknum, which transformers' load_adapter reports missing). The fix it names gives the merged model's
    profile."""
    profile, base_dir = refused_by_folder_exact_through_peft(tmp_path, peft.AdaLoraConfig(
        task_type="CAUSAL_LM", init_r=4, target_r=2, target_modules=["up_proj", "down_proj"], total_step=10),
        r"is an AdaLoRA adapter.*PeftModel\.from_pretrained")
    assert not np.array_equal(profile.neuron_count, hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS).neuron_count)


def test_removing_neurons_of_a_model_adapted_outside_its_mlp_is_refused_as_its_save_would_lose_them(tmp_path):
    """Fresh helper 194: with LoRA on the attention only, mode='remove' sliced the MLP of the PeftModel, whose
    save_pretrained then wrote the adapter alone (adapter_config.json, adapter_model.safetensors): reloaded onto its
    base, the model had all 24 neurons of every layer back, without a word. Refused before any change; masking works."""
    wrapped = peft.get_peft_model(tiny_llama_lm(), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    neurons = {0: [1, 5], 1: [3, 4]}
    with pytest.raises(ModelError, match=r"cannot prune a model holding PEFT adapter layers.*merge_and_unload"):
        hf_txray.prune(wrapped, None, strategy=neurons, mode="remove")
    assert wrapped.get_base_model().model.layers[0].mlp.down_proj.in_features == 24  # untouched
    merged = copy.deepcopy(wrapped).merge_and_unload()
    pruned, _ = hf_txray.prune(merged, None, strategy=neurons, mode="remove")  # the fix the message names
    assert pruned.model.layers[0].mlp.down_proj.in_features == 22


def _refuse_weight_loads(monkeypatch):
    """Make any weight load of the pruning CLI's loader fail the test: the refusals below come before it."""
    import hf_txray.pruning.load as pruning_load

    def loaded(*args, **kwargs):
        raise AssertionError("weights were loaded before the refusal")

    monkeypatch.setattr(pruning_load, "load_checked", loaded)


def test_prune_of_an_adapter_folder_is_refused_before_loading_naming_the_merge_that_works(tmp_path, monkeypatch,
                                                                                          capsys):
    """Reported by earlier testers: `hf-txray prune ADAPTER_FOLDER` failed with transformers' bare 'Unrecognized
    model ... Should have a `model_type` key in its config.json', a message about a model folder (prune-sweep and
    ablate load the same way). Refused before any weight is read, naming the merge; the merged folder it names
    prunes."""
    from hf_txray.cli import main

    base_dir, adapter_dir, _ = saved_adapter(tmp_path)
    profile_dir = tmp_path / "profile"
    hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS).save_pretrained(profile_dir)
    with monkeypatch.context() as patched:
        _refuse_weight_loads(patched)
        for mode in ("mask", "remove"):
            assert main(["prune", str(adapter_dir), str(profile_dir), "--strategy", "low_mass", "--amount", "2",
                         "--mode", mode, "--out", str(tmp_path / f"out-{mode}")]) == 2
            err = capsys.readouterr().err
            assert "is a PEFT adapter of" in err and "AutoPeftModel.from_pretrained" in err, err
            assert "model_type" not in err
    merged = tmp_path / "merged"
    peft.AutoPeftModel.from_pretrained(str(adapter_dir)).merge_and_unload().save_pretrained(merged)
    tiny("bert")[1].save_pretrained(merged)
    assert main(["prune", str(merged), str(profile_dir), "--strategy", "low_mass", "--amount", "2", "--mode", "remove",
                 "--out", str(tmp_path / "pruned")]) == 0


def test_prune_of_a_hub_adapter_repo_is_refused_before_loading(tmp_path, hub, monkeypatch):
    _, _, (adapter_repo, _) = hub_adapter(tmp_path, hub)
    _refuse_weight_loads(monkeypatch)
    with pytest.raises(ModelError, match=r"is a PEFT adapter of .*tiny-base.*merge_and_unload"):
        hf_txray.pruning.load_pretrained_with_head(adapter_repo)


def test_a_vera_adapter_by_name_is_refused_before_loading_naming_the_peft_load_that_works(tmp_path, monkeypatch):
    """Reported by earlier testers: a VeRA adapter folder failed with peft's own advice, wrapped in 'Could not load
    the model': "`inject_adapter_in_model` does not support PeftType.VERA because it uses shared state stored on the
    tuner. Please use `get_peft_model` instead" (get_peft_model builds a new, untrained adapter). Refused by name
    from its config, before the base model's weights are read, as AdaLoRA is; the fix it names gives the merged
    model's profile."""
    import hf_txray.loading as loading

    def loaded(*args, **kwargs):
        raise AssertionError("the base model was loaded before the refusal")

    config = peft.VeraConfig(task_type="CAUSAL_LM", r=4, target_modules=["down_proj", "up_proj"],
                             init_weights=False)
    with monkeypatch.context() as patched:
        patched.setattr(loading, "load_checked", loaded)
        profile, base_dir = refused_by_folder_exact_through_peft(
            tmp_path, config, r"is a VERA adapter, which transformers' load_adapter cannot load.*"
                              r"PeftModel\.from_pretrained")
    base = hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS)
    assert not np.array_equal(profile.neuron_count, base.neuron_count)  # the adapter changed what is read
    with pytest.raises(ModelError, match=r"is a PEFT adapter of .*AutoPeftModelForCausalLM.*merge_and_unload"):
        hf_txray.pruning.load_pretrained_with_head(str(tmp_path / "lm-adapter"))  # the merge, which works for VeRA
    for item in (tmp_path / "lm-adapter").iterdir():  # the adapter saved into the model's own folder
        item.rename(base_dir / item.name)
    with pytest.raises(ModelError, match=r"is a VERA adapter, which transformers' load_adapter cannot load"):
        hf_txray.analyze(str(base_dir), SAMPLE_TEXTS, **OPTIONS)


def test_a_prompt_tuning_adapter_by_name_is_refused_as_its_peft_model_is(tmp_path):
    """A prompt-tuning adapter folder failed with peft's 'create_and_replace does not support prompt learning',
    where the same adapter as a PeftModel is refused for its virtual tokens, which the profiled stack does not add."""
    from transformers import AutoModelForCausalLM

    base_dir = tmp_path / "lm-base"
    tiny_llama_lm().save_pretrained(base_dir)
    peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), peft.PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=5)).save_pretrained(tmp_path / "prompt")
    with pytest.raises(ModelError, match=r"is a PROMPT_TUNING adapter \(prompt learning\), whose virtual tokens"):
        hf_txray.analyze(str(tmp_path / "prompt"), SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)


def test_an_in_memory_peft_models_provenance_records_its_adapters_and_reproduce_asks_for_them(tmp_path):
    """Reported by earlier testers: a PeftModel passed to analyze was recorded as its base model's folder alone
    (kind 'object', the base's files and content hash, nothing about the adapters), so hf-txray show said 'reproduce
    recomputes it' and reproduce_profile recomputed the base model without the adapter: 'DIFFERENT: credit counts of
    19 neurons...'. The adapters are recorded (type, rank, targets, own base, which ran); reproduce asks for their
    weights, and the saved adapter pinned with pin_model reproduces."""
    from transformers import AutoModelForCausalLM

    from hf_txray.provenance import missing_provenance, public_record

    base_dir, adapter_dir, _ = saved_lm_adapter(tmp_path, peft.LoraConfig(task_type="CAUSAL_LM", r=4,
                                                                          target_modules=["down_proj"]))
    wrapped = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir)).eval()
    wrapped.add_adapter("spare", peft.LoraConfig(r=2, target_modules=r".*\.up_proj"))  # held, not active
    profile = hf_txray.analyze(wrapped, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), **OPTIONS)
    adapters = profile.meta.provenance["model"]["adapters"]
    assert adapters == {
        "default": {"peft_type": "LORA", "r": 4, "target_modules": ["down_proj"],
                    "base_model_name_or_path": str(base_dir), "active": True},
        "spare": {"peft_type": "LORA", "r": 2, "target_modules": r".*\.up_proj", "base_model_name_or_path": None,
                  "active": False}}
    shown = public_record(profile.meta.provenance)["model"]["adapters"]["default"]["base_model_name_or_path"]
    assert shown == base_dir.name  # a local path, as the model's own id is shown in public
    assert any("weights of the PEFT adapters ['default', 'spare']" in lack for lack in missing_provenance(profile))
    with pytest.raises(hf_txray.ReproducibilityError, match=r"PEFT adapters .*pin_model"):
        hf_txray.reproduce_profile(profile, dataset=SAMPLE_TEXTS)
    with wrapped.disable_adapter():
        assert not any(a["active"] for a in hf_txray.provenance.peft_adapters(wrapped).values())
    wrapped.delete_adapter("spare")
    wrapped.save_pretrained(tmp_path / "saved")
    pinned = hf_txray.pin_model(profile, tmp_path / "saved")
    assert hf_txray.reproduce_profile(pinned, dataset=SAMPLE_TEXTS).identical
    assert hf_txray.analyze(base_dir, SAMPLE_TEXTS, **OPTIONS).meta.provenance["model"]["adapters"] is None


def test_an_adapter_on_another_base_model_of_the_same_shapes_is_warned_once_naming_both(tmp_path, caplog):
    """Reported by earlier testers: an adapter loaded onto another base model of the same shapes (here a Llama of
    another seed) was profiled without a word; nothing compared the adapter's own base_model_name_or_path with the
    model it runs on. Warned once, naming both, for a PeftModel and for a folder holding a model with an adapter
    beside it; not for the adapter's own base, nor for a copy of it under another folder of the same name."""
    import logging
    import shutil

    from transformers import AutoModelForCausalLM

    from hf_txray.loading import may_be_same_model

    base_dir, adapter_dir, _ = saved_lm_adapter(tmp_path, peft.LoraConfig(task_type="CAUSAL_LM", r=4,
                                                                          target_modules=["down_proj"]))
    other_dir = tmp_path / "other-base"
    tiny_llama_lm(seed=5).save_pretrained(other_dir)
    bpe_tokenizer().save_pretrained(other_dir)
    copy_dir = tmp_path / "copies" / base_dir.name
    shutil.copytree(base_dir, copy_dir)

    def warnings_for(model) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hf_txray"):
            hf_txray.analyze(model, SAMPLE_TEXTS, **({} if isinstance(model, str) else {"tokenizer": bpe_tokenizer()}),
                             **OPTIONS)
        return [r.getMessage() for r in caplog.records if "base_model_name_or_path" in r.getMessage()]

    on_other = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(other_dir), str(adapter_dir))
    found = warnings_for(on_other.eval())
    assert len(found) == 1 and str(other_dir) in found[0] and f"'default' was made for '{base_dir}'" in found[0]
    for base in (base_dir, copy_dir):  # its own base, and a copy of it
        assert warnings_for(peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base),
                                                           str(adapter_dir)).eval()) == []
    for item in adapter_dir.iterdir():  # the adapter saved beside the other model's own weights
        shutil.copy(item, other_dir / item.name)
    found = warnings_for(str(other_dir))
    assert len(found) == 1 and f"'default' was made for '{base_dir}'" in found[0]
    assert may_be_same_model("gpt2", "openai-community/gpt2") and not may_be_same_model("org/llama", "other/llama")
    assert may_be_same_model("HuggingFaceTB/SmolLM2-135M", "/data/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/"
                             + "1" * 40)
    assert may_be_same_model("HuggingFaceTB/SmolLM2-135M", str(tmp_path / "SmolLM2-135M"))  # a local copy
    assert may_be_same_model("gpt2", "/data/hub/models--gpt2/snapshots/" + "2" * 40)  # a legacy id's snapshot


def test_trainer_snapshots_of_a_lora_model_are_its_adapter_checkpoints_and_name_the_adapter_and_base(tmp_path):
    """Helper 346: a LoRA model (``get_peft_model``) trained by a plain `Trainer` with `TXRayCallback`,
    ``gradient_accumulation_steps=2`` and ``max_steps`` off the snapshot interval: each snapshot equals `analyze` of the
    adapter checkpoint saved at its step (loaded as its base with the adapter), exactly, and its merged copy's credit
    counts; the snapshot's record names the base model folder and the adapter (type, rank, targets)."""
    import datasets
    from transformers import DataCollatorForLanguageModeling, LlamaForCausalLM, Trainer, TrainingArguments

    base_folder = tmp_path / "base"
    tiny_llama_lm().save_pretrained(base_folder)
    tokenizer = copy.deepcopy(bpe_tokenizer())
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(base_folder)
    texts = [t for t in SAMPLE_TEXTS if t.strip()]
    model = peft.get_peft_model(LlamaForCausalLM.from_pretrained(base_folder),
                                peft.LoraConfig(r=4, target_modules=["up_proj", "down_proj"], lora_dropout=0.0))
    data = datasets.Dataset.from_dict({"text": [texts[i % len(texts)] for i in range(16)]}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=24), batched=True, remove_columns=["text"])
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, max_steps=5, learning_rate=3e-2, report_to="none",
                             use_cpu=True, disable_tqdm=True, save_strategy="steps", save_steps=2, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    callback = hf_txray.TXRayCallback(texts, trainer=trainer, steps=2, features=("token",))
    trainer.add_callback(callback)
    trainer.train()
    assert list(callback.profiles) == ["step-0", "step-2", "step-4", "step-5"]
    first = callback.profiles["step-0"]
    for stage in ("step-2", "step-4", "step-5"):
        profile, checkpoint = callback.profiles[stage], tmp_path / "run" / f"checkpoint-{stage[5:]}"
        assert not np.array_equal(profile.neuron_mass, first.neuron_mass)  # the adapter moved the credits
        saved = hf_txray.analyze(checkpoint, texts, **OPTIONS)
        np.testing.assert_array_equal(profile.neuron_count, saved.neuron_count)
        np.testing.assert_array_equal(profile.neuron_mass, saved.neuron_mass)
        merged = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base_folder), checkpoint)
        merged = hf_txray.analyze(merged.merge_and_unload(), texts, tokenizer=tokenizer, **OPTIONS)
        np.testing.assert_array_equal(profile.neuron_count, merged.neuron_count)
        np.testing.assert_allclose(profile.neuron_mass, merged.neuron_mass, rtol=1e-5, atol=1e-5)
        record = profile.meta.provenance["model"]
        assert record["id"] == str(base_folder) and record["training_step"] == int(stage[5:])
        adapter = record["adapters"]["default"]
        assert (adapter["peft_type"], adapter["r"], adapter["active"]) == ("LORA", 4, True)
        assert sorted(adapter["target_modules"]) == ["down_proj", "up_proj"]
