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
    """A tensor subclass standing for a quantized weight (it computes as a plain tensor; its ``dequantize()``, which
    torchao's and optimum-quanto's quantized tensors have, gives the plain tensor)."""

    def dequantize(self) -> torch.Tensor:
        return self.as_subclass(torch.Tensor)


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


class Int8Weight(torch.Tensor):
    """A stand-in for torchao's ``Int8Tensor``: its values are the int8 codes (as floats) and ``dequantize()`` gives
    the matrix the layer applies (codes times a scale per row)."""

    scale: torch.Tensor

    def dequantize(self) -> torch.Tensor:
        return self.as_subclass(torch.Tensor) * self.scale

    def detach(self) -> Int8Weight:  # keeps the scale, as torchao's tensors keep theirs
        detached = super().detach()
        detached.scale = self.scale
        return detached


class Int8Linear(nn.Linear):
    """A linear layer computing with its :class:`Int8Weight`'s dequantized matrix, as torchao's quantized
    ``nn.Linear`` does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.dequantize(), self.bias)


def _int8_linear(layer: nn.Linear) -> tuple[Int8Linear, torch.Tensor]:
    """`layer` quantized to int8 codes per output row, and the float matrix it now applies."""
    weight = layer.weight.detach()
    scale = weight.abs().amax(dim=1, keepdim=True) / 127
    codes = torch.Tensor._make_subclass(Int8Weight, (weight / scale).round())
    codes.scale = scale
    quantized = Int8Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    quantized.weight = nn.Parameter(codes, requires_grad=False)
    if layer.bias is not None:
        quantized.bias = layer.bias
    return quantized, codes.dequantize()


def test_output_effects_read_dequantized_weights():
    """torchao (TorchAoConfig(Int8WeightOnlyConfig())): output_effects crashed with NotImplementedError from
    aten.index_select on the down projection's Int8Tensor; a weight that such an op reads as its raw codes would give
    logits 127 times too large. The weights are read dequantized: the same table as the float model holding the
    dequantized matrices."""
    from models import bpe_tokenizer, tiny_llama_lm

    model, reference = tiny_llama_lm(), tiny_llama_lm()
    for quantized_block, float_block in zip(model.model.layers, reference.model.layers):
        down, matrix = _int8_linear(quantized_block.mlp.down_proj)
        quantized_block.mlp.down_proj = down
        float_block.mlp.down_proj.weight.data.copy_(matrix)
    got = hf_txray.output_effects(model, 1, 5, k=5, tokenizer=bpe_tokenizer())
    expected = hf_txray.output_effects(reference, 1, 5, k=5, tokenizer=bpe_tokenizer())
    assert got["token_id"].tolist() == expected["token_id"].tolist()
    torch.testing.assert_close(torch.tensor(got["logit"].to_numpy()), torch.tensor(expected["logit"].to_numpy()),
                               rtol=1e-6, atol=1e-9)


class Int8CodesLinear(nn.Linear):
    """A stand-in for bitsandbytes' ``Linear8bitLt``: an int8 weight of codes without ``dequantize()``, and the
    scales beside it."""

    def __init__(self, layer: nn.Linear):
        super().__init__(layer.in_features, layer.out_features, bias=False)
        weight = layer.weight.detach()
        self.register_buffer("scale", weight.abs().amax(dim=1, keepdim=True) / 127)
        self.weight = nn.Parameter((weight / self.scale).round().to(torch.int8), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.float() * self.scale)


def test_output_effects_refuse_weights_without_dequantize():
    """A weight stored as int8 codes without a dequantize() method (bitsandbytes' Int8Params) is refused, naming
    what to do, rather than read as the matrix (its codes are about 127 times the weights)."""
    from models import tiny_llama_lm

    model = tiny_llama_lm()
    model.model.layers[1].mlp.down_proj = Int8CodesLinear(model.model.layers[1].mlp.down_proj)
    with pytest.raises(ModelError, match=r"Int8CodesLinear.*int8.*without a dequantize\(\) method.*unquantized"):
        hf_txray.output_effects(model, 1, 5, k=5)


def test_output_effects_of_a_real_torchao_model():
    quantization = pytest.importorskip("torchao.quantization")
    from models import tiny_llama_lm

    model, reference = tiny_llama_lm(), tiny_llama_lm()
    quantization.quantize_(model, quantization.Int8WeightOnlyConfig())
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            reference.get_submodule(name).weight.data.copy_(module.weight.dequantize())
    got = hf_txray.output_effects(model, 1, 5, k=5)
    expected = hf_txray.output_effects(reference, 1, 5, k=5)
    assert got["token_id"].tolist() == expected["token_id"].tolist()
    torch.testing.assert_close(torch.tensor(got["logit"].to_numpy()), torch.tensor(expected["logit"].to_numpy()))


def _saved_and_loaded(tmp_path):
    """A tiny Llama saved to a folder, loaded back (its name_or_path is the folder), with its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    from models import save_tiny_model

    folder = save_tiny_model(tmp_path / "model", kind="llama")
    return AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


TEXTS = ["the company said it will sell the unit", "prices rose in new york last year"]


def test_reproduce_refuses_a_model_quantized_with_a_config_its_folder_lacks(tmp_path):
    """QuantoConfig: a model loaded with from_pretrained(folder, quantization_config=QuantoConfig(...)) was profiled
    with nothing recorded about it; reproduce loaded the folder's float weights, recomputed the whole profile and
    called it DIFFERENT because 'a model object changed in memory'. The profile records the quantization, and
    reproduce refuses before loading any weight."""
    model, tokenizer = _saved_and_loaded(tmp_path)
    model.config.quantization_config = {"quant_method": "quanto", "weights": "int8"}
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert profile.meta.provenance["runtime"]["quantization"] == {"method": "quanto", "from": "quantization_config"}
    profile.save_pretrained(tmp_path / "profile")
    with pytest.raises(hf_txray.ReproducibilityError, match=r"quantized with quanto.*holds no quantization_config"
                                                            r".*pin_model.*unquantized model"):
        hf_txray.reproduce(tmp_path / "profile", dataset=TEXTS)


def test_reproduce_refuses_a_model_quantized_in_memory(tmp_path):
    """optimum-quanto's quantize(), hqq's quantize_model or a weight replaced by a quantized tensor leave no trace in
    the config: the layer is recorded, and reproduce refuses."""
    model, tokenizer = _saved_and_loaded(tmp_path)
    _quantize_downs(model)
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert profile.meta.provenance["runtime"]["quantization"] == {
        "method": PackedWeight.__module__, "from": "layers", "layer": "layers.0.mlp.down_proj"}
    profile.save_pretrained(tmp_path / "profile")
    with pytest.raises(hf_txray.ReproducibilityError, match=r"quantized in memory.*layers\.0\.mlp\.down_proj.*"
                                                            r"model=quantized_model"):
        hf_txray.reproduce(tmp_path / "profile", dataset=TEXTS)
    # the way out the refusal names: the quantized model object, run as given (it was refused, its repr printed as
    # the folder 'it would load as saved')
    assert hf_txray.reproduce(tmp_path / "profile", model=model, dataset=TEXTS).verdict == "identical"


def test_an_unquantized_profile_records_none_and_reproduces(tmp_path):
    model, tokenizer = _saved_and_loaded(tmp_path)
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert profile.meta.provenance["runtime"]["quantization"] is None
    profile.save_pretrained(tmp_path / "profile")
    assert hf_txray.reproduce(tmp_path / "profile", dataset=TEXTS).verdict == "identical"


def test_a_quantized_checkpoint_that_automodel_cannot_convert_is_refused_clearly(tmp_path, monkeypatch):
    """transformers 5.25 loads a LlamaForCausalLM saved with TorchAoConfig only with that class: AutoModel, which
    hf_txray loads a folder with (CLI too), failed with a bare RuntimeError ('We encountered some issues during
    automatic conversion of the weights') and a long report. Refused naming the class that loads it."""
    import json

    import transformers

    from models import save_tiny_model

    folder = save_tiny_model(tmp_path / "model", kind="llama")
    config = json.loads((folder / "config.json").read_text())
    config.update(quantization_config={"quant_method": "torchao"}, architectures=["LlamaForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))

    def fails(*args, **kwargs):
        raise RuntimeError("We encountered some issues during automatic conversion of the weights. For details "
                           "look at the `CONVERSION` entries of the above report!")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fails)
    with pytest.raises(ModelError, match=r"quantized \(torchao\) weights.*LlamaForCausalLM\.from_pretrained"):
        hf_txray.analyze(str(folder), TEXTS, show_progress=False)


def test_batched_runs_refuse_dynamic_activation_quantization():
    """torchao's Int8DynamicActivationInt8WeightConfig rounds each layer's input to int8 with a scale read from it:
    a batch's float rounding moved a text's activations by ~1e-3 of their size, and the padding probe refused the
    model as one whose 'attention takes another form when the mask holds padding (PaliGemma's...)'. Refused naming
    the quantization; each text alone and unpadded matched the brute-force reference on tiny BERT and Llama."""
    model, tokenizer = tiny("llama")
    _quantize_downs(model)
    model.layers[1].mlp.down_proj.weight.act_quant_kwargs = "int8 per row"  # torchao's QuantizeTensorToInt8Kwargs
    with pytest.raises(ModelError, match=r"'layers\.1\.mlp\.down_proj' quantizes its input as it runs.*"
                                         r"batch_size=1 and pad_to_multiple_of=1.*Int8WeightOnlyConfig"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False,
                               batch_size=1, pad_to_multiple_of=1)
    assert profile.meta.num_positions > 0


def test_float8_weights_are_quantized_weights():
    """A float8 weight (transformers' FP8Linear keeps its scales in other parameters) was sliced by remove without its
    scales (silent); refused as a quantized layer."""
    from models import tiny_llama_lm

    model = tiny_llama_lm()
    for block in model.model.layers:
        down = block.mlp.down_proj
        down.weight = nn.Parameter(down.weight.detach().to(torch.float8_e4m3fn), requires_grad=False)
    with pytest.raises(ModelError, match=r"cannot slice 'model\.layers\.0\.mlp\.down_proj'.*float8_e4m3fn"):
        hf_txray.prune(model, None, PLAN, mode="remove")


class LoggedWeight(torch.Tensor):
    """A floating-point tensor subclass a user wraps a weight in to log its uses (it holds the matrix itself)."""


def _logged(model: nn.Module) -> nn.Module:
    for block in model.model.layers:
        for layer in (block.mlp.up_proj, block.mlp.down_proj):
            layer.weight = nn.Parameter(layer.weight.detach().as_subclass(LoggedWeight))
    return model


def test_a_float_tensor_subclass_is_no_quantized_weight(tmp_path):
    """A weight replaced with nn.Parameter(a float tensor subclass) (for logging) was taken for a quantized one:
    prune(mode='remove') and output_effects refused it ('stored quantized', 'without a dequantize() method'), and
    analyze recorded a quantization ({'method': '__main__', 'from': 'layers'}) that reproduce then refused. It holds
    the matrix: removal, output effects and the profile's provenance are the plain model's."""
    from models import bpe_tokenizer, tiny_llama_lm

    model, plain = _logged(tiny_llama_lm()), tiny_llama_lm()
    assert hf_txray.sites.quantized_weight(model.model.layers[0].mlp.down_proj) is None
    got = hf_txray.output_effects(model, 1, 5, k=5, tokenizer=bpe_tokenizer())
    expected = hf_txray.output_effects(plain, 1, 5, k=5, tokenizer=bpe_tokenizer())
    assert got["token_id"].tolist() == expected["token_id"].tolist()
    assert got["logit"].tolist() == expected["logit"].tolist()
    profile = hf_txray.analyze(model, TEXTS, tokenizer=bpe_tokenizer(), features=("token",), show_progress=False)
    assert profile.meta.provenance["runtime"]["quantization"] is None
    hf_txray.prune(model, None, PLAN, mode="remove")
    hf_txray.prune(plain, None, PLAN, mode="remove")
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, plain(ids).logits, rtol=0, atol=0)


def test_an_fsdp2_weight_is_no_quantized_weight(monkeypatch):
    """fully_shard makes every weight a DTensor parameter, which was named 'stored as DTensor ... stored quantized'
    by prune(mode='remove'): the wrong cause (a shard of a float matrix)."""
    import socket
    import sys

    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from models import tiny_llama_lm

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for name, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # init_process_group replaces it
    dist.init_process_group("gloo")
    try:
        model = tiny_llama_lm()
        fully_shard(model)
        down = model.model.layers[0].mlp.down_proj
        assert type(down.weight).__name__ == "DTensor"
        assert hf_txray.sites.quantized_weight(down) is None
        assert hf_txray.sites.quantization_record(model) is None
    finally:
        dist.destroy_process_group()
