"""Models quantized by the Hugging Face quantization backends (``from_pretrained(..., quantization_config=...)``
with QuantoConfig or TorchAoConfig, or the backend's own ``quantize()``).

Profiling, masking and ablation read and change activations, which these layers compute in floating point: they
matched the brute-force reference on optimum-quanto (int8, int4, int8 activations) and torchao (int8 weight-only)
models (helper 429). What reads or slices the quantized weights themselves is tested here on a stand-in that CI has
without the backends: a layer whose weight is a tensor subclass, as torchao's ``Int8Tensor`` and optimum-quanto's
``WeightQBytesTensor`` are (:func:`hf_txray.sites.quantized_weight` reads the weight's type). Tests that need a
backend import it with ``pytest.importorskip``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hf_txray
from hf_txray import ModelError
from models import tiny

PLAN = {0: [3, 7], 1: [5, 6]}


class PackedWeight(torch.Tensor):
    """A tensor subclass standing for a quantized weight (it computes as a plain tensor)."""


def _quantize_downs(model: nn.Module) -> nn.Module:
    """`model` with every down projection's weight made a :class:`PackedWeight`."""
    for layer in model.layers:
        down = layer.mlp.down_proj
        down.weight = nn.Parameter(torch.Tensor._make_subclass(PackedWeight, down.weight.detach()),
                                   requires_grad=False)
    return model


def test_remove_refuses_quantized_layers_before_any_change():
    """optimum-quanto: prune(mode='remove') sliced a QLinear's quantized weight into a float one, which the layer
    re-quantized with other scales: logits 7e-3 away from the masked model's (an effect of 2.6e-2), no error
    (silent); torchao: a NotImplementedError from aten.index_select inside the slicing."""
    model, _ = tiny("llama")
    _quantize_downs(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(ModelError, match=r"mode='remove' cannot slice 'layers\.0\.mlp\.down_proj'.*PackedWeight"
                                         r".*mode='mask'.*unquantized model"):
        hf_txray.prune(model, None, PLAN, mode="remove")
    assert model.config.intermediate_size == 44
    for name, p in model.named_parameters():
        assert p.shape == before[name].shape and torch.equal(p, before[name]), name
    hf_txray.prune(model, None, PLAN, mode="mask")  # masking reads activations: still offered
    hf_txray.unprune(model)


def test_remove_refuses_a_real_quanto_model():
    quanto = pytest.importorskip("optimum.quanto")
    model, _ = tiny("llama")
    quanto.quantize(model, weights=quanto.qint8)
    with pytest.raises(ModelError, match="mode='remove' cannot slice"):
        hf_txray.prune(model, None, PLAN, mode="remove")
    quanto.freeze(model)
    with pytest.raises(ModelError, match="mode='remove' cannot slice"):
        hf_txray.prune(model, None, PLAN, mode="remove")
