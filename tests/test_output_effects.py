"""Output effects (down-projection column through the final norm's scale and the unembedding) vs brute force.

The brute force runs a one-hot intermediate vector through the model's own down-projection module (minus its
bias), multiplies by the final norm's scale written out per architecture (Gemma: ``1 + weight``), and through
the unembedding module (minus its bias): nothing is shared with ``hf_txray.output_effects``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import hf_txray
from hf_txray.errors import ModelError
from tests.models import bert_tokenizer, bpe_tokenizer

K = 5


def _no_bias(module, x):
    return module(x) - module(torch.zeros_like(x))


def _bert_mlm():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=64)
    model = BertForMaskedLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):
        x = _no_bias(model.bert.encoder.layer[layer].output.dense, one_hot)
        t = model.cls.predictions.transform
        x = x @ t.dense.weight.T  # the head's dense, its GELU skipped (linear reading)
        x = x * t.LayerNorm.weight
        return x @ model.cls.predictions.decoder.weight.T

    return model, bert_tokenizer(), brute, 48


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(bpe_tokenizer()), n_embd=32, n_layer=2, n_head=2, n_inner=40, n_positions=64)
    model = GPT2LMHeadModel(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):
        x = _no_bias(model.transformer.h[layer].mlp.c_proj, one_hot) * model.transformer.ln_f.weight
        return x @ model.lm_head.weight.T

    return model, bpe_tokenizer(), brute, 40


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(2)
    config = LlamaConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=44, max_position_embeddings=64,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):
        x = model.model.layers[layer].mlp.down_proj(one_hot) * model.model.norm.weight
        return model.lm_head(x)

    return model, bpe_tokenizer(), brute, 44


def _gemma(tied: bool):
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(3)
    config = GemmaConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16, intermediate_size=36, max_position_embeddings=64,
                         tie_word_embeddings=tied)
    model = GemmaForCausalLM(config).eval()
    _randomize_norms(model)
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    def brute(layer, one_hot):
        x = model.model.layers[layer].mlp.down_proj(one_hot) * (1.0 + model.model.norm.weight)  # Gemma's scale
        return x @ model.lm_head.weight.T

    return model, bpe_tokenizer(), brute, 36


def _mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(4)
    config = MixtralConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, intermediate_size=24,
                           num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64)
    model = MixtralForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.experts.down_proj.normal_(0, 0.5)
    _randomize_norms(model)

    def brute(layer, one_hot):
        # neuron = expert * intermediate + unit: the unit's column of that expert's down projection
        expert, unit = divmod(int(one_hot.argmax()), 24)
        unit_vec = torch.zeros(24)
        unit_vec[unit] = 1.0
        x = torch.nn.functional.linear(unit_vec, model.model.layers[layer].mlp.experts.down_proj[expert])
        return model.lm_head(x * model.model.norm.weight)

    return model, bpe_tokenizer(), brute, 4 * 24


def _logit_change(model, down, unit, ids=(3, 4, 5), position=-1):
    """Brute force, through the model's own forward: its logits at `position` of `ids` with 1 added to input unit
    `unit` of the module `down`, minus those without (float64)."""
    def run(delta):
        def bump(module, args):
            x = args[0].clone()
            x[..., unit] += delta
            return (x,)

        handle = down.register_forward_pre_hook(bump)
        try:
            with torch.no_grad():
                return model(input_ids=torch.tensor([list(ids)])).logits[0, position].double()
        finally:
            handle.remove()

    return (run(1.0) - run(0.0)).numpy()


def _randomize_norms(model):
    """Non-trivial norm scales, so that forgetting (or misreading) the scale changes the result."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():
            if "norm" in type(module).__name__.lower() and getattr(module, "weight", None) is not None:
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) * 2 - 0.5)


def _t5():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(5)
    config = T5Config(vocab_size=len(bpe_tokenizer()), d_model=32, d_kv=8, d_ff=40, num_layers=2,
                      num_decoder_layers=2, num_heads=2, decoder_start_token_id=0, pad_token_id=0)
    model = T5ForConditionalGeneration(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):  # decoder neurons: the decoder's final norm, then the LM head
        x = model.decoder.block[layer].layer[-1].DenseReluDense.wo(one_hot) * model.decoder.final_layer_norm.weight
        x = x * model.model_dim ** -0.5  # T5 scales the decoder output before a tied LM head (scale_decoder_outputs)
        return model.lm_head(x)

    return model, bpe_tokenizer(), brute, 40


def _distilbert_mlm():
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(6)
    config = DistilBertConfig(vocab_size=bert_tokenizer().vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=48,
                              max_position_embeddings=64)
    model = DistilBertForMaskedLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):  # the head's own linear and LayerNorm hang off the model itself
        x = _no_bias(model.distilbert.transformer.layer[layer].ffn.lin2, one_hot)
        x = (x @ model.vocab_transform.weight.T) * model.vocab_layer_norm.weight
        return x @ model.vocab_projector.weight.T

    return model, bert_tokenizer(), brute, 48


def _gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(8)
    config = Gemma2Config(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, head_dim=16, intermediate_size=36, max_position_embeddings=64)
    model = Gemma2ForCausalLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):  # the MLP output is normalised (post-feedforward norm) before the residual sum
        block = model.model.layers[layer]
        x = block.mlp.down_proj(one_hot) * (1.0 + block.post_feedforward_layernorm.weight)
        return (x * (1.0 + model.model.norm.weight)) @ model.lm_head.weight.T

    return model, bpe_tokenizer(), brute, 36


def _hyperclovax():
    """Helper 256: HyperCLOVA X normalises its MLP output with `post_norm2` (and Chameleon with swin_norm with
    `post_attention_layernorm`); only Gemma's names were read, so its scale was skipped and the top-5 promoted
    tokens of all 44 neurons of a layer were other tokens (norm weights in [0.2, 3]), with no error."""
    from transformers import HyperCLOVAXConfig, HyperCLOVAXForCausalLM

    torch.manual_seed(9)
    config = HyperCLOVAXConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16, intermediate_size=44,
                               max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                               residual_multiplier=0.3)
    model = HyperCLOVAXForCausalLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):  # residual + residual_multiplier * post_norm2(mlp(x)) (helper 276: left out)
        block = model.model.layers[layer]
        x = block.mlp.down_proj(one_hot) * block.post_norm2.weight * 0.3
        return (x * model.model.norm.weight) @ model.lm_head.weight.T

    return model, bpe_tokenizer(), brute, 44


def _opt(pre_norm: bool, project: bool):
    """OPT registers its final_layer_norm before its layers (helper 97: the scale was skipped); a post-LN OPT has
    none; OPT-350m projects the residual stream (1024) down to the embeddings' width (512) with project_out."""
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(9)
    config = OPTConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       ffn_dim=40, max_position_embeddings=64, do_layer_norm_before=pre_norm,
                       word_embed_proj_dim=24 if project else 32)
    model = OPTForCausalLM(config).eval()
    _randomize_norms(model)
    decoder = model.model.decoder
    assert (decoder.final_layer_norm is not None) == pre_norm and (decoder.project_out is not None) == project

    def brute(layer, one_hot):
        x = _no_bias(decoder.layers[layer].fc2, one_hot)
        if pre_norm:
            x = x * decoder.final_layer_norm.weight
        if project:
            x = x @ decoder.project_out.weight.T
        return x @ model.lm_head.weight.T

    return model, bpe_tokenizer(), brute, 40


def _gpt_oss():
    """GPT-OSS stores its experts transposed, ``down_proj`` ``(experts, inter, hidden)`` applied as ``x @ W``
    (helper 129: read as ``(experts, hidden, inter)``, 127 of 128 units wrong at width == hidden, the real shape)."""
    from transformers import GptOssConfig, GptOssForCausalLM

    torch.manual_seed(12)
    config = GptOssConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, num_local_experts=4,
                          num_experts_per_tok=2, max_position_embeddings=64, layer_types=["full_attention"] * 2)
    model = GptOssForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.experts.down_proj.normal_(0, 0.5)
    _randomize_norms(model)

    def brute(layer, one_hot):  # as GptOssExperts.forward: gated_output @ down_proj[expert] (bias left out)
        expert, unit = divmod(int(one_hot.argmax()), 32)
        unit_vec = torch.zeros(32)
        unit_vec[unit] = 1.0
        x = unit_vec @ model.model.layers[layer].mlp.experts.down_proj[expert]
        return model.lm_head(x * model.model.norm.weight)

    return model, bpe_tokenizer(), brute, 4 * 32


def _electra_generator(embedding_size: int):
    """ELECTRA's generator head runs dense -> GELU -> LayerNorm but registers its LayerNorm first (the scale was
    applied before the dense layer); with embedding_size < hidden_size the dense narrows the residual stream."""
    from transformers import ElectraConfig, ElectraForMaskedLM

    torch.manual_seed(10)
    config = ElectraConfig(vocab_size=bert_tokenizer().vocab_size, embedding_size=embedding_size, hidden_size=32,
                           num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                           max_position_embeddings=64)
    model = ElectraForMaskedLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):
        x = _no_bias(model.electra.encoder.layer[layer].output.dense, one_hot)
        head = model.generator_predictions
        x = (x @ head.dense.weight.T) * head.LayerNorm.weight  # the head's GELU skipped (linear reading)
        return x @ model.generator_lm_head.weight.T

    return model, bert_tokenizer(), brute, 48


def _roberta_prelayernorm():
    """RoBERTa-PreLayerNorm's final LayerNorm sits in the base model beside its encoder (helper 100: skipped)."""
    from transformers import RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM

    torch.manual_seed(11)
    config = RobertaPreLayerNormConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=48, max_position_embeddings=64)
    model = RobertaPreLayerNormForMaskedLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):
        body = model.roberta_prelayernorm
        x = _no_bias(body.encoder.layer[layer].output.dense, one_hot) * body.LayerNorm.weight
        head = model.lm_head
        x = (x @ head.dense.weight.T) * head.layer_norm.weight  # the head's GELU skipped (linear reading)
        return x @ head.decoder.weight.T

    return model, bert_tokenizer(), brute, 48


def _granite(moe: bool):
    """Helper 276: Granite adds ``residual_multiplier * mlp(x)`` to the residual stream and divides its logits by
    ``logits_scaling`` (Granite-MoE too): both were left out, and every logit read 36.4 times the model's own change
    (8 / 0.22) with no error."""
    from transformers import GraniteConfig, GraniteForCausalLM, GraniteMoeConfig, GraniteMoeForCausalLM

    torch.manual_seed(13)
    common = dict(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, intermediate_size=24, max_position_embeddings=64, residual_multiplier=0.22,
                  logits_scaling=8.0, embedding_multiplier=12.0, tie_word_embeddings=False)
    if moe:
        model = GraniteMoeForCausalLM(GraniteMoeConfig(num_local_experts=4, num_experts_per_tok=2, **common)).eval()
        with torch.no_grad():
            for layer in model.model.layers:
                layer.block_sparse_moe.experts.down_proj.normal_(0, 0.5)
    else:
        model = GraniteForCausalLM(GraniteConfig(**common)).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):  # hidden = residual + 0.22 * mlp(x); logits = lm_head(norm(hidden)) / 8
        if moe:
            expert, unit = divmod(int(one_hot.argmax()), 24)
            unit_vec = torch.zeros(24)
            unit_vec[unit] = 1.0
            x = torch.nn.functional.linear(unit_vec, model.model.layers[layer].block_sparse_moe.experts.down_proj[expert])
        else:
            x = model.model.layers[layer].mlp.down_proj(one_hot)
        return model.lm_head(0.22 * x * model.model.norm.weight) / 8.0

    return model, bpe_tokenizer(), brute, 4 * 24 if moe else 24


def _cohere():
    """Cohere multiplies its logits by ``logit_scale`` (helper 276: left out)."""
    from transformers import CohereConfig, CohereForCausalLM

    torch.manual_seed(14)
    config = CohereConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, intermediate_size=40, max_position_embeddings=64, logit_scale=0.0625,
                          bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = CohereForCausalLM(config).eval()
    _randomize_norms(model)

    def brute(layer, one_hot):
        x = model.model.layers[layer].mlp.down_proj(one_hot) * model.model.norm.weight
        return (x @ model.lm_head.weight.T) * 0.0625

    return model, bpe_tokenizer(), brute, 40


def _minicpm3():
    """MiniCPM3 scales each residual branch by ``scale_depth / sqrt(num_hidden_layers)`` and the last hidden state by
    ``1 / logits_scaling`` (``hidden_size / dim_model_base``) before its LM head (helper 276: both left out)."""
    from transformers import MiniCPM3Config, MiniCPM3ForCausalLM

    torch.manual_seed(15)
    config = MiniCPM3Config(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=2, intermediate_size=40,
                            max_position_embeddings=64, q_lora_rank=16, kv_lora_rank=8, qk_nope_head_dim=8,
                            qk_rope_head_dim=8, v_head_dim=8, scale_depth=1.4, dim_model_base=8,
                            tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = MiniCPM3ForCausalLM(config).eval()
    _randomize_norms(model)
    gain, logits_scaling = 1.4 / 2 ** 0.5, 32 / 8

    def brute(layer, one_hot):
        x = model.model.layers[layer].mlp.down_proj(one_hot) * gain * model.model.norm.weight
        return (x / logits_scaling) @ model.lm_head.weight.T

    return model, bpe_tokenizer(), brute, 40


def _olmo():
    """OLMo's final norm has no weight (a LayerNorm without elementwise affine): nothing to scale, and the logit scale
    is measured from its output (from the last block's, its normalisation read as a transform of the logits)."""
    from transformers import OlmoConfig, OlmoForCausalLM

    torch.manual_seed(16)
    config = OlmoConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=40, max_position_embeddings=64, pad_token_id=0, bos_token_id=0,
                        eos_token_id=0)
    model = OlmoForCausalLM(config).eval()
    assert getattr(model.model.norm, "weight", None) is None

    def brute(layer, one_hot):
        return model.lm_head(model.model.layers[layer].mlp.down_proj(one_hot))

    return model, bpe_tokenizer(), brute, 40


BUILDERS = {"bert_mlm": _bert_mlm, "gpt2": _gpt2, "llama": _llama, "gemma_tied": lambda: _gemma(True),
            "gemma_untied": lambda: _gemma(False), "mixtral_moe": _mixtral, "gpt_oss_moe": _gpt_oss, "t5_decoder": _t5,
            "distilbert_mlm": _distilbert_mlm, "gemma2_post_norm": _gemma2, "hyperclovax_post_norm2": _hyperclovax,
            "opt": lambda: _opt(True, False), "opt_post_norm_projected": lambda: _opt(False, True),
            "electra_generator": lambda: _electra_generator(32), "electra_generator_narrow": lambda: _electra_generator(24),
            "roberta_prelayernorm": _roberta_prelayernorm, "granite": lambda: _granite(False),
            "granitemoe": lambda: _granite(True), "cohere_logit_scale": _cohere, "minicpm3": _minicpm3,
            "olmo_weightless_norm": _olmo}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_output_effects_match_brute_force(kind):
    model, tokenizer, brute, width = BUILDERS[kind]()
    neurons = [0, width // 2 + 1, width - 1]
    table = hf_txray.output_effects_table(model, [0, 1], k=K, tokenizer=tokenizer, neurons=neurons)
    assert len(table) == 2 * len(neurons) * 2 * K
    for layer in (0, 1):
        for neuron in neurons:
            one_hot = torch.zeros(width)
            one_hot[neuron] = 1.0
            with torch.no_grad():
                logits = brute(layer, one_hot).double().numpy()
            rows = table[(table["layer"] == layer) & (table["neuron"] == neuron)]
            promoted = rows[rows["direction"] == "promoted"].sort_values("rank")
            suppressed = rows[rows["direction"] == "suppressed"].sort_values("rank")
            order = np.argsort(-logits, kind="stable")
            np.testing.assert_allclose(promoted["logit"], logits[order[:K]], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(suppressed["logit"], logits[order[::-1][:K]], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(logits[promoted["token_id"]], promoted["logit"], rtol=1e-4, atol=1e-5)
            assert list(promoted["token"]) == tokenizer.convert_ids_to_tokens(promoted["token_id"].tolist())


@pytest.mark.parametrize("kind", ["llama", "granite", "cohere_logit_scale", "minicpm3"])
def test_output_effects_are_the_models_own_logit_change(kind):
    """Through the model's own forward pass, not a formula: +1 on a neuron of the last block changes the logits by
    its output effects once the final norm is replaced by its elementwise scale (the one approximation left), with
    every scalar the architecture applies (Granite's residual_multiplier and logits_scaling, Cohere's logit_scale,
    MiniCPM3's scale_depth and dim_model_base) where the model applies it."""
    model, tokenizer, _, width = BUILDERS[kind]()
    norm, block = model.model.norm, model.model.layers[-1]
    scale = norm.weight.detach()  # x * weight after normalising, in all four
    table = hf_txray.output_effects_table(model, [len(model.model.layers) - 1], k=K, neurons=[0, width - 1])
    original = norm.forward
    norm.forward = lambda x: x * scale.to(x.dtype)
    try:
        for neuron in (0, width - 1):
            change = _logit_change(model, block.mlp.down_proj, neuron)
            rows = table[(table["neuron"] == neuron) & (table["direction"] == "promoted")].sort_values("rank")
            np.testing.assert_allclose(rows["logit"], change[rows["token_id"]], rtol=1e-3, atol=1e-6)
            assert set(rows["token_id"]) == set(np.argsort(-change)[:K])
    finally:
        norm.forward = original


# Masked-LM families read through the model's own forward: (config class, model class, config extras, the last
# block's down projection, norms ending a post-LN block (dropped: not read through), norms read by their scale (a
# pre-LN stack's final norm, the head's norm), the head's activation as a module or as a function of its module)
MLM_FORWARDS = {
    "bert": ("BertConfig", "BertForMaskedLM", {}, "bert.encoder.layer.1.output.dense",
             ["bert.encoder.layer.1.output.LayerNorm"], ["cls.predictions.transform.LayerNorm"],
             "cls.predictions.transform.transform_act_fn"),
    "roberta": ("RobertaConfig", "RobertaForMaskedLM", {"pad_token_id": 1}, "roberta.encoder.layer.1.output.dense",
                ["roberta.encoder.layer.1.output.LayerNorm"], ["lm_head.layer_norm"], "roberta:gelu"),
    "deberta_v2": ("DebertaV2Config", "DebertaV2ForMaskedLM", {"legacy": True},
                   "deberta.encoder.layer.1.output.dense", ["deberta.encoder.layer.1.output.LayerNorm"],
                   ["cls.predictions.transform.LayerNorm"], "cls.predictions.transform.transform_act_fn"),
    "mpnet": ("MPNetConfig", "MPNetForMaskedLM", {}, "mpnet.encoder.layer.1.output.dense",
              ["mpnet.encoder.layer.1.output.LayerNorm"], ["lm_head.layer_norm"], "mpnet:gelu"),
    "roformer": ("RoFormerConfig", "RoFormerForMaskedLM", {"embedding_size": 32},
                 "roformer.encoder.layer.1.output.dense", ["roformer.encoder.layer.1.output.LayerNorm"],
                 ["cls.predictions.transform.LayerNorm"], "cls.predictions.transform.transform_act_fn"),
    "modernbert": ("ModernBertConfig", "ModernBertForMaskedLM", {"pad_token_id": 0, "bos_token_id": 101,
                   "eos_token_id": 102, "cls_token_id": 101, "sep_token_id": 102, "global_attn_every_n_layers": 1,
                   "local_attention": 8}, "model.layers.1.mlp.Wo", [], ["model.final_norm", "head.norm"], "head.act"),
    "esm": ("EsmConfig", "EsmForMaskedLM", {"pad_token_id": 1, "mask_token_id": 2,
            "position_embedding_type": "absolute"}, "esm.encoder.layer.1.output.dense", [],
            ["esm.encoder.emb_layer_norm_after", "lm_head.layer_norm"], "esm:gelu"),
    "megatron_bert": ("MegatronBertConfig", "MegatronBertForMaskedLM", {}, "bert.encoder.layer.1.output.dense", [],
                      ["bert.encoder.ln", "cls.predictions.transform.LayerNorm"],
                      "cls.predictions.transform.transform_act_fn"),
    "xlm_roberta_xl": ("XLMRobertaXLConfig", "XLMRobertaXLForMaskedLM", {"pad_token_id": 1},
                       "roberta.encoder.layer.1.output.dense", [], ["roberta.encoder.LayerNorm", "lm_head.layer_norm"],
                       "xlm_roberta_xl:gelu"),
    "convbert": ("ConvBertConfig", "ConvBertForMaskedLM", {"embedding_size": 32},
                 "convbert.encoder.layer.1.output.dense", ["convbert.encoder.layer.1.output.LayerNorm"],
                 ["generator_predictions.LayerNorm"], "generator_predictions.activation"),
    "rembert": ("RemBertConfig", "RemBertForMaskedLM", {"input_embedding_size": 32, "output_embedding_size": 24},
                "rembert.encoder.layer.1.output.dense", ["rembert.encoder.layer.1.output.LayerNorm"],
                ["cls.predictions.LayerNorm"], "cls.predictions.activation"),
    "fnet": ("FNetConfig", "FNetForMaskedLM", {}, "fnet.encoder.layer.1.output.dense",
             ["fnet.encoder.layer.1.output.LayerNorm"], ["cls.predictions.transform.LayerNorm"],
             "cls.predictions.transform.transform_act_fn"),
}


@pytest.mark.parametrize("family", list(MLM_FORWARDS))
def test_masked_lm_output_effects_are_the_models_own_logit_change(family, monkeypatch):
    """Masked-LM heads get no measured logit-scale check (their head is read step by step): through each family's own
    forward pass, +1 on a neuron of the last block changes the logits by its output effects once the approximations
    are made in the model itself: a post-LN block's closing norm dropped (not read through), the final and head
    norms replaced by their elementwise scales, the head's activation by the identity (linear reading)."""
    import importlib

    import transformers

    config_class, model_class, extra, down, dropped, scaled, activation = MLM_FORWARDS[family]
    torch.manual_seed(24)
    config = getattr(transformers, config_class)(
        vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=64, **extra)
    model = getattr(transformers, model_class)(config).eval()
    _randomize_norms(model)
    width = model.get_submodule(down).in_features
    table = hf_txray.output_effects_table(model, [1], k=K, neurons=[0, width - 1])
    for name in dropped:
        monkeypatch.setattr(model.get_submodule(name), "forward", lambda x: x)
    for name in scaled:
        norm = model.get_submodule(name)
        monkeypatch.setattr(norm, "forward", lambda x, weight=norm.weight.detach(): x * weight)
    if ":" in activation:  # a function of the modeling module (RoBERTa's gelu)
        family_module, function = activation.split(":")
        modeling = importlib.import_module(f"transformers.models.{family_module}.modeling_{family_module}")
        monkeypatch.setattr(modeling, function, lambda x: x)
    else:
        parent, _, attribute = activation.rpartition(".")
        monkeypatch.setattr(model.get_submodule(parent), attribute, torch.nn.Identity())

    for neuron in (0, width - 1):
        change = _logit_change(model, model.get_submodule(down), neuron, ids=(101, 3000, 4000, 102), position=1)
        for direction, order in (("promoted", np.argsort(-change)), ("suppressed", np.argsort(change))):
            rows = table[(table["neuron"] == neuron) & (table["direction"] == direction)].sort_values("rank")
            np.testing.assert_allclose(rows["logit"], change[order[:K]], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("transform", ["halved", "log_softmax"])
def test_masked_lm_logits_transformed_after_the_head_are_measured(transform):
    """A masked LM's head is read step by step and its logits were never measured: a model whose forward multiplies
    the decoder's logits by 0.5 read every output effect twice the model's own change, and one returning
    log-probabilities read as logits, with no error. The logit scale is now measured from the head's last step's
    output, as a causal LM's is from its final norm's."""
    model, tokenizer, brute, width = _bert_mlm()
    forward = model.forward

    def transformed(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = 0.5 * out.logits if transform == "halved" else torch.log_softmax(out.logits, dim=-1)
        return out

    model.forward = transformed
    if transform == "log_softmax":
        with pytest.raises(ModelError, match="BertForMaskedLM returns log-probabilities"):
            hf_txray.output_effects_table(model, [1], k=K, tokenizer=tokenizer)
        return
    table = hf_txray.output_effects_table(model, [1], k=K, tokenizer=tokenizer, neurons=[0])
    one_hot = torch.zeros(width)
    one_hot[0] = 1.0
    with torch.no_grad():
        logits = 0.5 * brute(1, one_hot).double().numpy()
    rows = table[table["direction"] == "promoted"].sort_values("rank")
    np.testing.assert_allclose(rows["logit"], np.sort(logits)[::-1][:K], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["granite", "minicpm3"])
def test_scalars_are_measured_in_half_precision(kind, dtype):
    """In half precision the measured scalars hold (Granite's embedding_multiplier=12 makes the residual stream large
    beside the MLP output, whose change a doubled MLP output left under bfloat16's rounding: 1.0 for 0.22)."""
    model, tokenizer, _, _ = BUILDERS[kind]()
    full = hf_txray.output_effects_table(model, [0, 1], k=K, neurons=[0, 1])
    half = hf_txray.output_effects_table(model.to(dtype), [0, 1], k=K, neurons=[0, 1])
    scale = np.abs(full["logit"]).max()
    np.testing.assert_allclose(half["logit"], full["logit"], atol=1e-2 * scale)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["phi_head_bias", "granite_logits_bias", "granite_large_logits_bias"])
def test_a_logit_bias_in_half_precision_is_not_read_as_a_transform(kind, dtype):
    """Helper 277: Phi's and GPT-J's LM heads have a bias (BART a final_logits_bias); in half precision the logit
    change of the scale probe (about 1e-3 here) was lost to the rounding of logits of about 1, and every such model
    was refused ("transforms its logits") though it only adds a bias. Measured again with a probe as large as the
    logits at 0, it reads as in float32 (Granite's 1/8 too). With a bias 100 times larger (logits of about 300) the
    change was lost whole in bfloat16 and read as a logit scale of 0: every output effect 0.0, no error; a change of
    0 is measured again too."""
    if kind == "phi_head_bias":
        from transformers import PhiConfig, PhiForCausalLM

        torch.manual_seed(17)
        model = PhiForCausalLM(PhiConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=40,
                                         max_position_embeddings=64)).eval()
        _randomize_norms(model)
        with torch.no_grad():
            model.lm_head.bias.normal_(0, 1.0)
    else:
        model = _granite(False)[0]
        bias = torch.randn(model.config.vocab_size, generator=torch.Generator().manual_seed(3))
        bias = 100 * bias if kind == "granite_large_logits_bias" else bias
        forward = model.forward

        def biased(*args, **kwargs):
            out = forward(*args, **kwargs)
            out.logits = out.logits + bias.to(out.logits)
            return out

        model.forward = biased
    full = hf_txray.output_effects_table(model, [0, 1], k=K, neurons=[0, 5])
    half = hf_txray.output_effects_table(model.to(dtype), [0, 1], k=K, neurons=[0, 5])
    np.testing.assert_allclose(half["logit"], full["logit"], atol=1e-2 * np.abs(full["logit"]).max())


def test_logits_transformed_otherwise_than_by_a_scalar_are_refused():
    """A model whose logits are not its LM head's output times a scalar (here each mixed with its neighbour) has no
    reading of the kind output effects give: refused, not read as if the head's output were the logits."""
    model, tokenizer, _, _ = _llama()
    forward = model.forward

    def mixed(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = out.logits + out.logits.roll(1, dims=-1)
        return out

    model.forward = mixed
    with pytest.raises(ModelError, match="transforms its logits after the LM head"):
        hf_txray.output_effects_table(model, [1], k=K, tokenizer=tokenizer)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_logits_that_are_log_probabilities_are_refused(dtype):
    """A model whose forward returns ``log_softmax`` of its logits: their change is the LM head's less a constant per
    position that depends on the input. In float32 it was refused as not proportional; in float16 (2,000 tokens,
    residual about 1 / sqrt(2000) of the change, under the 5e-2 tolerance) it passed as a logit scale of 1.0 with no
    error. Detected exactly (exp sums to 1 at every position of both probe rows) and refused, named as such."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(2)
    config = LlamaConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=44, max_position_embeddings=64,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 1.0)
    forward = model.forward

    def log_probabilities(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = torch.log_softmax(out.logits, dim=-1)
        return out

    model.forward = log_probabilities
    with pytest.raises(ModelError, match="LlamaForCausalLM returns log-probabilities"):
        hf_txray.output_effects_table(model.to(dtype), [1], k=K, neurons=[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_raw_logits_whose_bias_is_a_normalised_distribution_are_not_taken_for_log_probabilities(dtype):
    """An MLM whose decoder bias is the log of a distribution (an output bias set to the log unigram frequencies)
    returns raw logits whose exp sums to 1 at the scale probe's small change too: in bfloat16 and float16 it was
    refused as "returns log-probabilities" (float32 passed, 1e-4 tolerance). A second probe that moves the logits by
    several units tells them apart: they are read, as the model's own change."""
    model, tokenizer, brute, width = _bert_mlm()
    with torch.no_grad():
        frequencies = torch.rand(model.config.vocab_size, generator=torch.Generator().manual_seed(0)) ** 4 + 1e-3
        model.cls.predictions.bias.copy_(torch.log(frequencies / frequencies.sum()))
    one_hot = torch.zeros(width)
    one_hot[0] = 1.0
    with torch.no_grad():
        expected = np.sort(brute(1, one_hot).double().numpy())[::-1][:K]
    table = hf_txray.output_effects_table(model.to(dtype), [1], k=K, tokenizer=tokenizer, neurons=[0])
    rows = table[table["direction"] == "promoted"].sort_values("rank")
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    np.testing.assert_allclose(rows["logit"], expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("reshape", ["last_position", "flattened"])
def test_logits_of_another_shape_than_the_probe_are_refused(reshape):
    """A model (here a wrapped Granite) whose returned logits are not one row of positions x vocabulary per input row
    (only the last position's, or rows and positions flattened together): the scale probe could not compare them
    with its readout and read 1.0, so Granite's 1 / logits_scaling was dropped and every logit read 8 times the
    model's own change, with no error. Refused, naming the model class."""
    model, tokenizer, _, _ = _granite(False)
    forward = model.forward

    def wrapped(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = out.logits[:, -1:] if reshape == "last_position" else out.logits.reshape(-1, out.logits.shape[-1])
        return out

    model.forward = wrapped
    with pytest.raises(ModelError, match=r"GraniteForCausalLM returns logits of shape .* cannot be compared"):
        hf_txray.output_effects_table(model, [1], k=K, tokenizer=tokenizer)


def test_a_model_passing_on_several_residual_streams_is_refused():
    """Helper 277: Gemma 3n's blocks pass on a stack of AltUp streams, which the MLP output reaches through
    input-dependent corrections and the model mixes through projections before its final norm; the gain measurement
    skipped that block output (not one row per input) and read 1.0, and its output effects were 129% off the model's
    own logit change (final norm and post-feedforward norm replaced by their scales), top-5 tokens differing, with no
    error. Refused, before profiling too."""
    from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

    from hf_txray.output_effects import check_output_effects

    torch.manual_seed(18)
    config = Gemma3nTextConfig(vocab_size=len(bpe_tokenizer()), vocab_size_per_layer_input=len(bpe_tokenizer()),
                               hidden_size=32, hidden_size_per_layer_input=8, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16, intermediate_size=40,
                               max_position_embeddings=64, num_kv_shared_layers=0, laurel_rank=4, altup_num_inputs=2,
                               layer_types=["full_attention"] * 2, activation_sparsity_pattern=[0.0, 0.0])
    model = Gemma3nForCausalLM(config).eval()
    with pytest.raises(ModelError, match="2 residual streams"):
        hf_txray.output_effects_table(model, [1], k=K, neurons=[0])
    with pytest.raises(ModelError, match="2 residual streams"):
        check_output_effects(model, "mlp")


def test_an_mlp_output_transformed_before_the_residual_sum_is_refused():
    """Helper 277: Inkling adds ``x + conv(x)`` of its MLP output (``mlp_sconv``, a depthwise causal convolution:
    per channel and across positions) to the residual stream; the gain measurement found no scalar, read 1.0 as it
    does for a post-LN block, and the output effects were 3.7% off the model's own logit change (norms replaced by
    their scales; 43%, top-5 tokens differing, with convolution weights drawn from N(0, 0.5)), with no error. Refused where no norm ends the block (post-LN blocks, whose
    output is their norm's, are read as before: BERT, DistilBERT, post-LN OPT above)."""
    from transformers import InklingForCausalLM, InklingTextConfig

    from hf_txray.output_effects import check_output_effects

    torch.manual_seed(19)
    config = InklingTextConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16, swa_num_attention_heads=2,
                               swa_num_key_value_heads=1, swa_head_dim=16, sliding_window_size=8, d_rel=4,
                               rel_extent=16, max_position_embeddings=64, intermediate_size=40,
                               mlp_layer_types=["dense", "dense"], layer_types=["hybrid", "hybrid"], pad_token_id=0,
                               bos_token_id=0, eos_token_id=0)
    model = InklingForCausalLM(config).eval()
    with pytest.raises(ModelError, match="mlp_sconv"):
        hf_txray.output_effects_table(model, [1], k=K, neurons=[0])
    with pytest.raises(ModelError, match="does not reach the block's output as a scalar multiple"):
        check_output_effects(model, "mlp")


def _laguna():
    """A tiny Laguna causal LM (routed experts scaled by 2.5, shared experts added after), seeded."""
    from transformers import LagunaConfig, LagunaForCausalLM

    torch.manual_seed(20)
    config = LagunaConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                          moe_intermediate_size=16, shared_expert_intermediate_size=32, num_experts_per_tok=2,
                          num_experts=4, moe_routed_scaling_factor=2.5, mlp_layer_types=["sparse", "sparse"],
                          sliding_window=8, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    model = LagunaForCausalLM(config).eval()
    return model


def test_shared_experts_are_read_without_the_routed_experts_own_factor():
    """Helper 277: Laguna (and Step 3.7, MiniMax-M3) multiply the routed experts' sum by ``routed_scaling_factor``
    and add the shared experts' output after it; the gain measured on the routed experts' output (2.5) was applied to
    the shared experts' units too, which read 2.5 times the model's own logit change, with no error. Against the
    model's forward (+1 on a shared unit of the last block, the final norm replaced by its scale); the routed units
    keep the factor (their router weight aside), and GraniteMoeShared's shared units keep its residual_multiplier."""
    model = _laguna()
    _randomize_norms(model)
    mlp, norm = model.model.layers[1].mlp, model.model.norm
    scale = norm.weight.detach()
    table = hf_txray.output_effects_table(model, [1], k=K, neurons=[3, 64, 95])

    original = norm.forward
    norm.forward = lambda x: x * scale.to(x.dtype)
    try:
        for neuron in (64, 95):  # shared units 0 and 31, after the 4 x 16 routed ones
            change = _logit_change(model, mlp.shared_experts.down_proj, neuron - 64)
            rows = table[(table["neuron"] == neuron) & (table["direction"] == "promoted")].sort_values("rank")
            np.testing.assert_allclose(rows["logit"], change[rows["token_id"]], rtol=1e-4, atol=1e-7)
    finally:
        norm.forward = original
    expert, unit = divmod(3, 16)
    column = mlp.experts.down_proj[expert, :, unit].detach()
    routed = (model.lm_head.weight @ (2.5 * column * scale)).detach().double().numpy()
    rows = table[(table["neuron"] == 3) & (table["direction"] == "promoted")].sort_values("rank")
    np.testing.assert_allclose(rows["logit"], routed[rows["token_id"]], rtol=1e-4, atol=1e-7)


def test_the_shared_experts_width_is_read_without_their_weight(monkeypatch):
    """Helper 451: post_mlp_chains and shared_expert_gains read the shared experts' whole down-projection matrix
    (linear_weight: a PEFT wrapper run on unit vectors, a quantized weight dequantized, an offloaded one fetched) only
    to learn its width; the layout knows it (num_shared x width). The table reads the matrix once now, for the
    shared units' columns, with the same numbers."""
    import importlib

    import pandas as pd

    output_effects = importlib.import_module("hf_txray.output_effects")  # the package's name is a function's
    model = _laguna()
    shared = model.model.layers[1].mlp.shared_experts.down_proj
    expected = hf_txray.output_effects_table(model, [1], k=K, neurons=[64, 95])
    reads, original = [], output_effects.linear_weight
    monkeypatch.setattr(output_effects, "linear_weight", lambda m: reads.append(m) or original(m))
    table = hf_txray.output_effects_table(model, [1], k=K, neurons=[64, 95])
    assert sum(m is shared for m in reads) == 1
    pd.testing.assert_frame_equal(table, expected)
    reads.clear()
    output_effects.post_mlp_chains(model, [1])
    assert output_effects.shared_expert_gains(model, [1], None, {1: 1.0}, {1: None})[1][1] == 32
    assert not [m for m in reads if m is shared]


@pytest.mark.parametrize("kind", ["gemma4_layer_scalar", "beam_depth_scaled"])
def test_later_blocks_scaling_the_residual_stream_scale_earlier_neurons(kind):
    """Helper 277: Gemma 4 multiplies each block's whole output by its ``layer_scalar`` and Beam scales the residual
    by ``sqrt((k - 1) / k)`` at its k-th residual sum; a neuron's direct path runs through every later block's
    residual connection, but only its own block's factor was applied: with layer scalars 0.5 and 0.7, layer 0 read
    0.5 for 0.35 (43% too large); a 3-block Beam's layer 0 read 1/sqrt(3) for 1/sqrt(7) (1.53 times), no error."""
    torch.manual_seed(21)
    common = dict(vocab_size=len(bpe_tokenizer()), hidden_size=32, intermediate_size=40, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, max_position_embeddings=64, pad_token_id=0, bos_token_id=0,
                  eos_token_id=0)
    if kind == "gemma4_layer_scalar":
        from transformers import Gemma4ForCausalLM, Gemma4TextConfig

        config = Gemma4TextConfig(num_hidden_layers=2, vocab_size_per_layer_input=len(bpe_tokenizer()),
                                  hidden_size_per_layer_input=0, layer_types=["full_attention"] * 2, global_head_dim=16,
                                  **common)
        model = Gemma4ForCausalLM(config).eval()
        with torch.no_grad():
            model.model.layers[0].layer_scalar.fill_(0.5)
            model.model.layers[1].layer_scalar.fill_(0.7)
        expected = [0.5 * 0.7, 0.7]
    else:
        from transformers import BeamConfig, BeamForCausalLM

        config = BeamConfig(num_hidden_layers=3, mlp_layer_types=["dense"] * 3, layer_types=["full_attention"] * 3,
                            n_group=1, topk_group=1, moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2,
                            **common)
        model = BeamForCausalLM(config).eval()
        expected = [7 ** -0.5] * 3  # 1/sqrt(2l + 3) at the sum, sqrt((2l + 3) / 7) through the later blocks
    _randomize_norms(model)
    layers = model.model.layers
    table = hf_txray.output_effects_table(model, list(range(len(layers))), k=K, neurons=[7])
    for layer, factor in enumerate(expected):
        block = layers[layer]
        column = block.mlp.down_proj.weight[:, 7] * block.post_feedforward_layernorm.weight * model.model.norm.weight
        logits = (factor * model.lm_head(column)).detach().double().numpy()
        rows = table[(table["layer"] == layer) & (table["direction"] == "promoted")].sort_values("rank")
        np.testing.assert_allclose(rows["logit"], np.sort(logits)[::-1][:K], rtol=1e-4, atol=1e-7)


def _gemma4_moe():
    """A tiny Gemma 4 with MoE blocks: per block, the dense MLP's output through ``post_feedforward_layernorm_1``,
    the experts' through ``post_feedforward_layernorm_2``, and their sum through ``post_feedforward_layernorm``;
    the dense MLP's 48 units are numbered after the 4 x 16 routed ones (three shared experts)."""
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    torch.manual_seed(22)
    config = Gemma4TextConfig(vocab_size=len(bpe_tokenizer()), vocab_size_per_layer_input=len(bpe_tokenizer()),
                              hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                              num_key_value_heads=1, head_dim=16, global_head_dim=16, max_position_embeddings=64,
                              hidden_size_per_layer_input=0, layer_types=["full_attention"] * 2,
                              enable_moe_block=True, num_experts=4, top_k_experts=2, moe_intermediate_size=16,
                              final_logit_softcapping=None, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    model = Gemma4ForCausalLM(config).eval()
    _randomize_norms(model)
    with torch.no_grad():
        for layer, scalar in zip(model.model.layers, (0.5, 0.7)):
            layer.layer_scalar.fill_(scalar)
            layer.experts.down_proj.normal_(0, 0.5)  # logits of about 1, not 1e-4
            layer.mlp.down_proj.weight.normal_(0, 0.5)
        model.lm_head.weight.normal_(0, 1.0)
    return model


def _gemma4_moe_brute(model, layer, neuron):
    """Logits of one unit's column written out: Gemma 4's norms scale by their weight (not 1 + weight); the later
    blocks' layer_scalar multiplies the residual stream; a routed unit's router weight is not applied."""
    block = model.model.layers[layer]
    if neuron < 64:
        expert, unit = divmod(neuron, 16)
        column = block.experts.down_proj[expert, :, unit] * block.post_feedforward_layernorm_2.weight
    else:
        column = block.mlp.down_proj.weight[:, neuron - 64] * block.post_feedforward_layernorm_1.weight
    column = column * block.post_feedforward_layernorm.weight * model.model.norm.weight
    factor = float(np.prod([float(b.layer_scalar) for b in model.model.layers[layer:]]))
    return (factor * model.lm_head(column)).detach().double().numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gemma4_moe_blocks_read_both_norms_of_each_branch(dtype):
    """Gemma 4's MoE blocks normalise the dense MLP's output (``post_feedforward_layernorm_1``) and the experts'
    (``post_feedforward_layernorm_2``) apart, then their sum (``post_feedforward_layernorm``): the gain measured after
    the experts' own norm was not a scalar and every such model was refused. Against the model's own forward (+1 on a
    dense unit of the last block, the three norms and the final norm replaced by their scales) and against the
    columns written out (routed units: their router weight aside), in float32 and bfloat16."""
    model = _gemma4_moe()
    neurons = [5, 37, 64, 111]  # routed units of experts 0 and 2, the dense MLP's units 0 and 47
    full = hf_txray.output_effects_table(model, [0, 1], k=K, neurons=neurons)
    for layer in (0, 1):
        for neuron in neurons:
            logits = _gemma4_moe_brute(model, layer, neuron)
            rows = full[(full["layer"] == layer) & (full["neuron"] == neuron)]
            promoted = rows[rows["direction"] == "promoted"].sort_values("rank")
            np.testing.assert_allclose(promoted["logit"], np.sort(logits)[::-1][:K], rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(promoted["logit"], logits[promoted["token_id"]], rtol=1e-4, atol=1e-7)
    block = model.model.layers[1]
    linearized = [block.post_feedforward_layernorm_1, block.post_feedforward_layernorm_2,
                  block.post_feedforward_layernorm, model.model.norm]
    originals = [norm.forward for norm in linearized]

    for norm in linearized:
        norm.forward = lambda x, weight=norm.weight.detach(): x * weight
    try:
        for neuron in (64, 111):
            change = _logit_change(model, block.mlp.down_proj, neuron - 64)
            rows = full[(full["layer"] == 1) & (full["neuron"] == neuron) & (full["direction"] == "promoted")]
            np.testing.assert_allclose(rows["logit"], change[rows["token_id"]], rtol=1e-4, atol=1e-6)
    finally:
        for norm, original in zip(linearized, originals):
            norm.forward = original
    if dtype != torch.float32:
        half = hf_txray.output_effects_table(model.to(dtype), [0, 1], k=K, neurons=neurons)
        np.testing.assert_allclose(half["logit"], full["logit"], atol=1e-2 * np.abs(full["logit"]).max())


def test_falcon_h1_multipliers_are_the_models_own():
    """Falcon-H1 multiplies its MLP output by ``mlp_multipliers[1]`` (``down_multiplier``) and its logits by
    ``lm_head_multiplier`` (its gate multiplier acts before the neuron, and the attention and SSM multipliers on other
    paths): measured, never tested. Against the columns written out (0.3 x 0.25) and the model's own logit change (+1
    on a neuron of the last block, the final norm replaced by its scale), and bfloat16 against float32."""
    from transformers import FalconH1Config, FalconH1ForCausalLM

    torch.manual_seed(23)
    config = FalconH1Config(vocab_size=len(bpe_tokenizer()), hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                            mamba_d_ssm=32, mamba_n_heads=4, mamba_d_head=8, mamba_n_groups=1, mamba_d_state=8,
                            mamba_d_conv=4, mamba_chunk_size=16, mlp_multipliers=[1.5, 0.3], lm_head_multiplier=0.25,
                            embedding_multiplier=3.0, attention_in_multiplier=1.3, attention_out_multiplier=0.6,
                            ssm_in_multiplier=1.1, ssm_out_multiplier=0.4, key_multiplier=0.8, pad_token_id=0,
                            bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    model = FalconH1ForCausalLM(config).eval()
    _randomize_norms(model)
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 1.0)
    neurons = [0, 39]
    table = hf_txray.output_effects_table(model, [0, 1], k=K, neurons=neurons)
    norm = model.model.final_layernorm
    for layer in (0, 1):
        for neuron in neurons:
            column = model.model.layers[layer].feed_forward.down_proj.weight[:, neuron] * norm.weight
            logits = (0.3 * 0.25 * model.lm_head(column)).detach().double().numpy()
            rows = table[(table["layer"] == layer) & (table["neuron"] == neuron) & (table["direction"] == "promoted")]
            np.testing.assert_allclose(rows["logit"], np.sort(logits)[::-1][:K], rtol=1e-4, atol=1e-7)
    down = model.model.layers[1].feed_forward.down_proj

    original, scale = norm.forward, norm.weight.detach()
    norm.forward = lambda x: x * scale
    try:
        for neuron in neurons:
            change = _logit_change(model, down, neuron)
            rows = table[(table["layer"] == 1) & (table["neuron"] == neuron) & (table["direction"] == "promoted")]
            np.testing.assert_allclose(rows["logit"], change[rows["token_id"]], rtol=1e-4, atol=1e-6)
    finally:
        norm.forward = original
    half = hf_txray.output_effects_table(model.to(torch.bfloat16), [0, 1], k=K, neurons=neurons)
    np.testing.assert_allclose(half["logit"], table["logit"], atol=1e-2 * np.abs(table["logit"]).max())


def test_single_neuron_api_equals_table():
    model, tokenizer, _, _ = _gpt2()
    one = hf_txray.output_effects(model, 1, 7, k=3, tokenizer=tokenizer)
    table = hf_txray.output_effects_table(model, [1], k=3, tokenizer=tokenizer)
    expected = table[table["neuron"] == 7].reset_index(drop=True)
    assert one.drop(columns="logit").equals(expected.drop(columns="logit"))
    np.testing.assert_allclose(one["logit"], expected["logit"], rtol=1e-5)  # batched matmul: float rounding
    assert list(one["direction"]) == ["promoted"] * 3 + ["suppressed"] * 3


def test_output_effects_inside_torch_autocast_are_the_float32_table():
    # helper 197: an ambient torch.autocast ran the readout's products in bfloat16, and numpy could not read the
    # logits (a bare TypeError: Got unsupported ScalarType BFloat16), also at the end of analyze(output_effects=True)
    model, tokenizer, _, _ = _llama()
    plain = hf_txray.output_effects_table(model, k=3, tokenizer=tokenizer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = hf_txray.output_effects_table(model, k=3, tokenizer=tokenizer)
    assert inside.drop(columns="logit").equals(plain.drop(columns="logit"))
    np.testing.assert_array_equal(inside["logit"], plain["logit"])


def test_an_output_embedding_that_is_not_the_vocabulary_is_refused():
    """Helper 100: DeBERTa with legacy=False returns its head's dense layer from get_output_embeddings(); it was read
    as a 32-token vocabulary (every promoted id below the hidden size, no error)."""
    from transformers import DebertaV2Config, DebertaV2ForMaskedLM

    config = DebertaV2Config(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=48, max_position_embeddings=64, legacy=False)
    model = DebertaV2ForMaskedLM(config).eval()
    with pytest.raises(ModelError, match=r"get_output_embeddings\(\) returns lm_predictions.lm_head.dense .*not a map "
                                         r"to its 30522-token vocabulary"):
        hf_txray.output_effects_table(model, [0], k=3, tokenizer=bert_tokenizer())


@pytest.mark.parametrize("graft", ["post_expert_proj", "post_expert_norm"])
def test_experts_whose_output_is_transformed_are_refused(graft):
    """Helper 201: Muse Spark normalises each expert's output (`experts.post_expert_norm`) and projects their sum out
    of its expert space (`mlp.post_expert_proj`) before the residual; the expert units' output effects were read as
    their bare down_proj columns through the unembedding: wrong logits without an error where the expert space is as
    wide as the hidden size (a RuntimeError where not). A tiny Muse Spark needs vision and audio towers (42M
    parameters), so its two modules are grafted onto layer 0 of a tiny Mixtral, as Muse Spark holds them."""
    model, tokenizer, _, _ = _mixtral()
    mlp = model.model.layers[0].mlp
    if graft == "post_expert_proj":
        mlp.post_expert_proj = torch.nn.Linear(32, 32, bias=False)
    else:
        mlp.experts.post_expert_norm = torch.nn.RMSNorm(32)
    with pytest.raises(ModelError, match=rf"expert units of 'model.layers.0.mlp.experts'.*{graft}"):
        hf_txray.output_effects(model, 0, 5, k=3, tokenizer=tokenizer)
    assert len(hf_txray.output_effects(model, 1, 5, k=3, tokenizer=tokenizer)) == 6  # layer 1 is untouched


def test_model_without_lm_head_is_refused():
    from tests.models import tiny_bert

    with pytest.raises(ModelError, match="no LM head.*AutoModelForMaskedLM"):
        hf_txray.output_effects(tiny_bert(), 0, 0)


def test_neuron_out_of_range_is_refused():
    model, tokenizer, _, width = _llama()
    with pytest.raises(hf_txray.errors.ConfigurationError, match="out of range"):
        hf_txray.output_effects(model, 0, width, tokenizer=tokenizer)


def test_a_list_for_one_neuron_and_no_neurons_are_refused():
    """Helper 369: output_effects(neuron=[1, 2]) gave two neurons' rows from the one-neuron API (whole_numbers
    flattened the list), and output_effects_table(neurons=[]) an empty frame that read as "no effects"."""
    model, tokenizer, _, _ = _llama()
    for neuron in ([1], [1, 2], np.array([1]), torch.tensor([2])):
        with pytest.raises(hf_txray.errors.ConfigurationError, match="takes one neuron index"):
            hf_txray.output_effects(model, 1, neuron, k=2, tokenizer=tokenizer)
    for neurons in ([], np.array([], dtype=np.int64)):
        with pytest.raises(hf_txray.errors.ConfigurationError, match="neurons is empty"):
            hf_txray.output_effects_table(model, [1], k=2, tokenizer=tokenizer, neurons=neurons)
    assert set(hf_txray.output_effects(model, 1, np.int64(1), k=2, tokenizer=tokenizer)["neuron"]) == {1}


def test_layers_and_neurons_named_twice_or_as_fractions():
    """Helper 188: layers=[1, -1] of a 2-block model gave every row twice, and neuron 1.5 was read as neuron 1.
    Helper 290: it was then read once without a word, as analyze read it; refused as analyze refuses it, and a neuron
    named twice (neurons=[3, 5, 3], read as [3, 5]) too, as counts.refuse_repeats refuses a count or a seed twice."""
    model, tokenizer, _, _ = _llama()
    once = hf_txray.output_effects_table(model, [1], k=2, tokenizer=tokenizer, neurons=[3])
    with pytest.raises(hf_txray.errors.ConfigurationError, match=re.escape("layers [1, -1] repeat 1: each layer once")):
        hf_txray.output_effects_table(model, [1, -1], k=2, tokenizer=tokenizer, neurons=[3])
    with pytest.raises(hf_txray.errors.ConfigurationError, match=re.escape("neurons [3, 5, 3] repeat 3: each neuron "
                                                                           "once.")):
        hf_txray.output_effects_table(model, [1], k=2, tokenizer=tokenizer, neurons=[3, 5, 3])  # read as [3, 5]
    assert hf_txray.output_effects_table(model, [1], k=2, tokenizer=tokenizer, neurons=[3, 5]).equals(
        hf_txray.output_effects_table(model, [1], k=2, tokenizer=tokenizer, neurons=np.array([5, 3])))
    # the one rule of hf_txray.indices: a whole float (a CSV's 3.0) is neuron 3, as Fill and ablation read it
    assert hf_txray.output_effects_table(model, [1], k=2, tokenizer=tokenizer, neurons=[3.0]).equals(once)
    for call in (lambda: hf_txray.output_effects(model, 1, 1.5, tokenizer=tokenizer),
                 lambda: hf_txray.output_effects_table(model, [1.5], tokenizer=tokenizer)):
        with pytest.raises(hf_txray.errors.ConfigurationError):
            call()


def test_encoder_neurons_of_an_encoder_decoder_are_refused():
    model, tokenizer, _, _ = _t5()
    with pytest.raises(hf_txray.errors.ConfigurationError, match="cross-attention"):
        hf_txray.output_effects(model, 0, 0, tokenizer=tokenizer, stack="encoder")


@pytest.mark.parametrize("offloaded", (("model.layers.1",), ("model.norm", "lm_head")))
def test_an_offloaded_model_is_refused_before_profiling(tmp_path, monkeypatch, offloaded):
    """Helper 118: analyze(output_effects=True) on a model with a block offloaded to disk computed the whole profile,
    then stopped with torch's bare "Cannot copy out of meta tensor" (the weights are read outside the forward);
    helper 119: with the final norm and LM head offloaded, output_effects_table read them before refusing."""
    from transformers import LlamaForCausalLM

    from hf_txray.output_effects import output_effects_table
    from hf_txray.profile import Profile
    from tests.models import tiny_llama_lm

    tiny_llama_lm().save_pretrained(tmp_path / "model")
    device_map = {"model.embed_tokens": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                  "model.layers.1": "cpu", "lm_head": "cpu"} | dict.fromkeys(offloaded, "disk")
    model = LlamaForCausalLM.from_pretrained(tmp_path / "model", offload_folder=str(tmp_path / "offload"),
                                             device_map=device_map).eval()
    texts = ["a first text", "and a second one"]
    plain = hf_txray.analyze(model, texts, tokenizer=bpe_tokenizer(), features=("token",), show_progress=False)
    assert plain.meta.num_positions > 0  # the model itself profiles
    monkeypatch.setattr(Profile, "__init__", lambda *a, **k: pytest.fail("profiled before refusing"))
    with pytest.raises(ModelError, match=f"weights are offloaded \\(on the meta device, e.g. '{offloaded[0]}"):
        hf_txray.analyze(model, texts, tokenizer=bpe_tokenizer(), features=("token",), output_effects=True,
                         show_progress=False)
    with pytest.raises(ModelError, match="Load the model without offloading"):
        output_effects_table(model, [0])


def test_a_head_the_checkpoint_did_not_hold_is_named(tmp_path, caplog):
    """Helper 188: a checkpoint without an LM head (all-MiniLM-L6-v2 loaded with AutoModelForMaskedLM) gets one
    initialised at random, with transformers' load warning only, and output_effects returned its random tokens
    silently. It warns now, once per model, naming the head (not an error: resizing an untied head leaves a new,
    unmarked weight too); a checkpoint saved with its head, or PEFT's modules_to_save copy of it, raise nothing."""
    from peft import LoraConfig, get_peft_model
    from transformers import BertForMaskedLM
    from transformers.utils import logging as hf_logging

    model, tokenizer, _, _ = _bert_mlm()
    model.bert.save_pretrained(tmp_path / "encoder")  # the encoder alone: no cls.predictions weights
    model.save_pretrained(tmp_path / "mlm")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' warning about the missing head is what users got alone
    try:
        headless = BertForMaskedLM.from_pretrained(tmp_path / "encoder").eval()
        loaded = BertForMaskedLM.from_pretrained(tmp_path / "mlm").eval()
        adapted = get_peft_model(BertForMaskedLM.from_pretrained(tmp_path / "mlm").eval(),
                                 LoraConfig(target_modules=["query"], modules_to_save=["decoder", "transform"]))
    finally:
        hf_logging.set_verbosity(verbosity)
    message = ("The weights of BertForMaskedLM's cls.predictions.transform.LayerNorm, cls.predictions.transform.dense "
               "were not loaded from ")
    with caplog.at_level("WARNING", logger="hf_txray"):
        hf_txray.output_effects(headless, 1, 3, k=2, tokenizer=tokenizer)
        hf_txray.output_effects_table(headless, [0], k=2, tokenizer=tokenizer)
    assert sum(message in r.getMessage() for r in caplog.records) == 1, caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_txray"):
        expected = hf_txray.output_effects_table(model, [1], k=3, tokenizer=tokenizer)
        got = hf_txray.output_effects_table(loaded, [1], k=3, tokenizer=tokenizer)
        hf_txray.output_effects_table(adapted, [1], k=3, tokenizer=tokenizer)
    assert "were not loaded" not in caplog.text
    assert got[["layer", "neuron", "direction", "rank", "token_id"]].equals(
        expected[["layer", "neuron", "direction", "rank", "token_id"]])
    np.testing.assert_allclose(got["logit"], expected["logit"], rtol=1e-6)


def test_output_effects_of_a_data_parallel_wrapper_are_those_of_the_model_inside():
    # helper 355: DataParallel(model) was refused as "DataParallel has no LM head (get_output_embeddings() is None)"
    from tests.models import tiny_llama_lm

    model = tiny_llama_lm()
    plain = hf_txray.output_effects(model, 0, 1, k=3, tokenizer=bpe_tokenizer())
    assert hf_txray.output_effects(torch.nn.DataParallel(model), 0, 1, k=3, tokenizer=bpe_tokenizer()).equals(plain)


@pytest.mark.parametrize("family", ["gemma2", "granite"])
def test_a_layers_scaled_columns_are_made_float32_a_chunk_at_a_time(family, monkeypatch):
    """Review 448: the post-MLP norm's scale (Gemma 2's post_feedforward_layernorm) and the residual gain (Granite's
    residual_multiplier) were applied to a float32 copy of each layer's whole down projection (a second one for the
    gain); they are applied to the 256-neuron chunk being read now, with the same numbers."""
    import sys

    import transformers

    from hf_txray import sites
    from hf_txray.output_effects import _CHUNK
    from test_peft import _LargestFloatCopy

    torch.manual_seed(0)
    common = dict(vocab_size=len(bpe_tokenizer()), hidden_size=32, intermediate_size=600, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    model = (transformers.Gemma2ForCausalLM(transformers.Gemma2Config(head_dim=16, **common)) if family == "gemma2"
             else transformers.GraniteForCausalLM(transformers.GraniteConfig(residual_multiplier=0.3, **common)))
    model = model.to(torch.bfloat16).eval()
    monkeypatch.setattr(sites, "_FLOAT_ELEMENTS", 16 * 32)  # the unembedding in blocks of 16 rows
    with _LargestFloatCopy() as seen:
        table = hf_txray.output_effects_table(model, [1], k=3)
    assert seen.largest <= _CHUNK * 32  # a chunk of columns, not all 600
    monkeypatch.setattr(sys.modules["hf_txray.output_effects"], "_CHUNK", 10_000)  # every neuron in one product: the same numbers
    assert table.equals(hf_txray.output_effects_table(model, [1], k=3))
