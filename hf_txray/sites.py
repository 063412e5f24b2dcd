"""Finding the neuron sites of a model and recording which neuron wins each position.

A *site* is one layer's vector of neurons. ``"mlp"`` is the MLP intermediate activation of every block (the input
of the down/output projection: BERT ``intermediate`` output, GPT-2 ``mlp.c_proj`` input, Llama ``mlp.down_proj``
input, T5 ``DenseReluDense.wo`` input, BART ``fc2`` input; for mixture-of-experts layers every expert's
intermediate, see :mod:`hf_txray.moe`); ``"residual"`` is the output of every block.

Resolution is explicit and *verified*: the stack (the encoder or the decoder of an encoder-decoder, else the model),
its blocks (the largest ``nn.ModuleList`` of identical modules), and in each block the MLP's down projection, found
by structure and then checked: its input must be exactly as wide as the MLP intermediate width the config declares
(:func:`hf_txray.architectures.expected_mlp_widths`) and it must not sit inside attention (an MLP as wide as the hidden
size, whose up projection has that shape too: the one named as a down projection,
:func:`~hf_txray.architectures.named_down_projection`). A failed check raises
:class:`~hf_txray.errors.ModelError` before any forward pass. A module that runs more than once per forward pass
(shared layers, as in ALBERT) is refused, never silently overwritten.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .architectures import (DOWN_PROJECTION_NAMES, KERNEL_ONLY_ATTENTION, TOKEN_MIXER_NAME_PARTS, dense_block_widths,
                            expected_mlp_widths, hidden_size, named_down_projection)
from .errors import BlocksNotFoundError, ConfigurationError, ModelError, UnreadExpertsError
from .hooks import ExpertsCall, Site, Trace, refuse_skipped_pre_hooks
from .modes import enter_eval
from .options import SITES, STACKS, parse_layers, refuse_same_block
from .moe import (ExpertsLayout, expert_intermediates, expert_width, has_skip_class, is_fused_experts, moe_top_k,
                  weights_in_memory)
from .topk import ArgmaxThreads, Runs, contiguous_runs, top_k_per_row


def peft_base_layer(module: nn.Module) -> nn.Module | None:
    """The layer a PEFT adapter wrapper (LoRA, DoRA, IA3... on a linear layer; `modules_to_save`'s copies) wraps,
    or None for any other module.

    The wrapper is the layer: its input is what the model feeds the layer (IA3 scales it inside, and merging folds
    the scale into the weights), and masking it reaches the adapter's branch too."""
    base = getattr(module, "base_layer", None)
    if callable(getattr(module, "get_base_layer", None)) and isinstance(base, nn.Module):
        return base
    # modules_to_save: a trainable copy beside the original, one of them run; both take the wrapper's input
    original = getattr(module, "original_module", None)
    return original if isinstance(getattr(module, "modules_to_save", None), nn.ModuleDict) else None


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model inside a ``PeftModel`` (its layers keep their adapter wrappers), else `model`: a
    PeftModel's ``base_model`` is the tuner holding the whole model, heads included, not the model's body."""
    getter = getattr(model, "get_base_model", None)
    return getter() if callable(getter) and hasattr(model, "peft_config") else model


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """Within the block, every PEFT adapter layer of `model` (LoRA, Lily... wrappers, `modules_to_save` copies) runs
    its base layer alone, as inside peft's ``disable_adapter()``, and runs as before afterwards. Each layer's own
    ``_disable_adapters`` flag is set and put back: peft's ``enable_adapters`` would also change which adapter
    weights require grad. A layer whose adapters are merged into its base weight is left on: disabled, peft's
    forward unmerges it (the model stayed unmerged afterwards, its bf16 base weight no longer the one it had). A
    model without adapter layers runs as it is."""
    layers = [m for m in model.modules() if isinstance(getattr(m, "_disable_adapters", None), bool)
              and not getattr(m, "merged", False)]
    kept = [m._disable_adapters for m in layers]
    try:
        for layer in layers:
            layer._disable_adapters = True
        yield
    finally:
        for layer, flag in zip(layers, kept):
            layer._disable_adapters = flag


# Wrappers that run a model as it is (compiled, or replicated over devices): profiling reads the model inside.
MODEL_WRAPPERS = {"OptimizedModule": "_orig_mod", "DataParallel": "module", "DistributedDataParallel": "module",
                  "FullyShardedDataParallel": "module", "DeepSpeedEngine": "module"}


def refuse_model_holder(model: Any) -> None:
    """Refuse an object that holds a transformers model and runs it its own way: a transformers ``Pipeline`` (no
    module at all) or a sentence-transformers model (``SentenceTransformer``, ``CrossEncoder``...: a module that
    exposes its inner model's ``config`` but whose forward takes a features dict and adds pooling). hf_txray hooks and
    runs the transformers model itself, with its tokenizer; the message names both.

    Raises:
        ModelError: `model` is such a holder.
    """
    kind = None
    if any(cls.__name__ == "Pipeline" and cls.__module__.startswith("transformers.") for cls in type(model).__mro__):
        kind, inner = "transformers", "pipe.model"
        example = "hf_txray.analyze(pipe.model, dataset, tokenizer=pipe.tokenizer)"
        holder = "pipe"
    elif any(cls.__module__.split(".")[0] == "sentence_transformers" for cls in type(model).__mro__) \
            and hasattr(model, "named_modules"):  # a subclass of the user's too
        from transformers import PreTrainedModel

        if isinstance(model, PreTrainedModel):  # a transformers model itself, run as any other
            return
        name = next((n for n, m in model.named_modules() if isinstance(m, PreTrainedModel)), None)
        if name is None:
            return
        inner = "model" + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in name.split("."))
        kind, holder = "sentence-transformers", "model"
        example = f"hf_txray.analyze({inner}, dataset, tokenizer=model.tokenizer)"
    if kind is not None:
        raise ModelError(
            f"model is a {kind} {type(model).__name__}, not a model: pass the model it runs and its tokenizer, "
            f"`{inner}` with `tokenizer={holder}.tokenizer` (e.g. {example}).")


def unwrap_model(model: Any) -> Any:
    """The model inside ``torch.compile``'s ``OptimizedModule`` and DataParallel / DDP / FSDP wrappers (nested ones
    too), else `model`: the wrapper's name would stand for the model in the profile and its modules' names would
    carry ``_orig_mod.`` / ``module.``.

    Raises:
        ModelError: `model` is a transformers ``Pipeline`` or a sentence-transformers model
            (:func:`refuse_model_holder`).
    """
    refuse_model_holder(model)
    while type(model).__name__ in MODEL_WRAPPERS:
        inner = getattr(model, MODEL_WRAPPERS[type(model).__name__], None)
        if inner is None:
            return model
        model = inner
    return model


def model_inside(model: Any) -> Any:
    """:func:`unwrap_model`, for an entry point that runs the model inside the wrapper: a forward pre-hook on the
    wrapper, which would never run, is refused (:func:`~hf_txray.hooks.refuse_skipped_pre_hooks`).

    Raises:
        ModelError: a wrapper around the model has a forward pre-hook.
    """
    inner = unwrap_model(model)
    if inner is not model and hasattr(inner, "named_modules"):
        refuse_skipped_pre_hooks(model, inner, f"the model inside its {type(model).__name__} wrapper")
    return inner


def linear_dims(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) features of a linear-like module (``nn.Linear`` or GPT-2's ``Conv1D``, or a PEFT adapter wrapping
    one), else None."""
    base = peft_base_layer(module)
    if base is not None:
        module = base
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return int(module.weight.shape[0]), int(module.nf)
    return None


_PROBE_ROWS = 1024  # unit vectors per pass (at most) when a wrapped layer's weight is read by running it
_FLOAT_ELEMENTS = 1 << 22  # entries of a low-precision matrix made float32 at a time (16 MiB)


@torch.no_grad()
def linear_weight(module: nn.Module) -> torch.Tensor:
    """The ``(out, in)`` matrix a linear-like layer applies: ``nn.Linear``'s weight, GPT-2's ``Conv1D`` weight
    transposed, and for a PEFT adapter wrapper the map it computes as the model runs it (LoRA's ``W + s B A``, IA3's
    scaled columns, DoRA's normalised weight; nothing added when its adapters are merged or disabled), read by
    running the wrapper in eval mode on unit vectors (its base layer's bias zeroed meanwhile, so that a bf16 entry is
    not rounded at the bias's scale), less its output at zero (an adapter's own bias). A wrapper of a layer with no
    outputs gives its empty ``(0, in)`` map, as ``nn.Linear`` does.

    Raises:
        ModelError: `module` is not linear-like, or is a PEFT wrapper whose map depends on the inputs it is given
            (:func:`_refuse_input_dependent_map`).
    """
    base = peft_base_layer(module)
    dims = linear_dims(module)
    if dims is None:
        raise ModelError(f"{type(module).__name__} is not a linear layer (nn.Linear, Conv1D or a PEFT wrapper of one).")
    if base is None:
        weight = float_weight(module)
        return weight if isinstance(module, nn.Linear) else weight.T
    width, reference = dims[0], base.weight
    if dims[1] == 0:  # no outputs: an empty map, as nn.Linear's own weight (the probe's block size divided by 0)
        dtype = reference.dtype if reference.is_floating_point() else torch.float32
        return torch.zeros(0, width, dtype=dtype, device=reference.device)
    restore_modes = enter_eval(module)  # no LoRA dropout
    restore_bias = _without_bias(base)
    try:
        bias = module(reference.new_zeros(1, width))
        # filled in place (a list of the parts and their concatenation held the matrix twice), by passes whose
        # outputs hold at most as many entries as a block of float_rows
        weight = bias.new_empty(bias.shape[-1], width)
        step = max(1, min(_PROBE_ROWS, _FLOAT_ELEMENTS // weight.shape[0]))
        for start in range(0, width, step):
            rows = min(step, width - start)
            units = reference.new_zeros(rows, width)
            units[torch.arange(rows), torch.arange(start, start + rows)] = 1
            weight[:, start: start + rows] = (module(units) - bias).T
        _refuse_input_dependent_map(module, weight, bias)
    finally:
        restore_bias()
        restore_modes()
    return weight


def float_rows(matrix: torch.Tensor, device: torch.device | str) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, rows)``: the rows of a 2-D `matrix` as float32 on `device`, in blocks of at most
    ``_FLOAT_ELEMENTS`` entries, for a product that reads the matrix in float32 without a float32 copy of all of it
    (a 128k x 4096 bf16 LM head made one of 2 GB); a float32 matrix already on `device` comes as one block, itself
    (no copy, the product as one)."""
    if matrix.dtype == torch.float32 and matrix.device == torch.device(device):
        yield 0, matrix
        return
    step = max(1, _FLOAT_ELEMENTS // max(1, matrix.shape[1]))
    for start in range(0, matrix.shape[0], step):
        yield start, matrix[start: start + step].to(device=device, dtype=torch.float32)


def _without_bias(layer: nn.Module) -> Callable[[], None]:
    """Zero `layer`'s bias while a wrapper of it is read on unit vectors; returns the function that puts it back.
    Read with its bias, each entry of a bf16 layer was rounded at the bias's scale (``W e_j + b`` less ``b``): 2%
    of the largest entry off with a bias 50 times the weights' mean (silent), as much as bf16 itself rounds 10
    times. A bias that cannot be written (a tensor made under ``torch.inference_mode()``) is left as it is."""
    bias = getattr(layer, "bias", None)
    if not isinstance(bias, torch.Tensor) or bias.is_meta:
        return lambda: None
    kept = bias.detach().clone()
    try:
        with torch.no_grad():
            bias.zero_()
    except RuntimeError:
        return lambda: None

    def restore() -> None:
        with torch.no_grad():
            bias.copy_(kept)
    return restore


def _refuse_input_dependent_map(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Refuse a PEFT wrapper whose output is not its input times `weight` (read on unit vectors) plus `bias`: checked
    on a few seeded random rows run together. An adapter whose map depends on the inputs it is given (Lily averages
    its router's choice of up-projections over every row of the batch) has no matrix; the one read on unit vectors
    is the map applied to that batch of unit vectors, not to the model's tokens.

    Raises:
        ModelError: the wrapper's output on the probe rows is not so given.
    """
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(4, weight.shape[1], generator=generator).to(device=weight.device, dtype=weight.dtype)
    got = (module(probe) - bias).float()
    expected = got.new_empty(got.shape)
    for start, rows in float_rows(weight, got.device):
        expected[:, start: start + rows.shape[0]] = probe.float() @ rows.T
    error = float((got - expected).abs().max())
    # the matrix read on unit vectors carries the rounding of the bias left in it (an adapter's own: the base
    # layer's is zeroed while it is read, _without_bias) in each entry, summed over the input width
    scale = float(got.abs().max()) + weight.shape[1] ** 0.5 * float(bias.abs().max())
    # float32 matmuls may run in TF32 or bf16 (torch.set_float32_matmul_precision("high"), allow_tf32,
    # TrainingArguments(tf32=True)): their rounding, measured on a few rows against float64 on the CPU
    rows = weight[:64]
    exact = probe.cpu().double() @ rows.cpu().double().T
    rounding = float(((probe @ rows.T).cpu().double() - exact).abs().max()) / max(float(exact.abs().max()), 1e-30)
    if error > max(1e-4, 4 * torch.finfo(weight.dtype).eps, 8 * rounding) * scale:
        tuner = type(module).__module__.removeprefix("peft.tuners.").split(".")[0]
        raise ModelError(
            f"The PEFT adapter layer {type(module).__name__} ({tuner}) applies no fixed matrix: its output for four "
            f"rows run together is not those rows times the matrix read from it on unit vectors (max error "
            f"{error:.3g} in outputs up to {scale:.3g}), as an adapter whose map depends on the inputs it is given "
            "does (Lily averages its router over all tokens of the batch). Output effects read that matrix, so they "
            "would be wrong: profile without output_effects.")


def named_linears(root: nn.Module) -> Iterator[tuple[str, nn.Module, tuple[int, int]]]:
    """``(name, module, (in, out))`` of every linear-like module of `root`, in module order; a PEFT adapter wrapper
    counts as the layer it wraps, and the modules inside it (its base layer, LoRA's A and B) are not listed."""
    wrapper = None  # the name of the last PEFT wrapper seen: its submodules follow it in named_modules' order
    for name, module in root.named_modules():
        if wrapper is not None and name.startswith(wrapper + "."):
            continue
        dims = linear_dims(module)
        if peft_base_layer(module) is not None:
            wrapper = name
        if dims is not None:
            yield name, module, dims


# Packages whose layers quantize a model (their layers need not be linear-like: hqq's HQQLinear is a plain Module).
QUANTIZATION_PACKAGES = ("optimum.quanto", "torchao", "hqq", "bitsandbytes", "awq", "auto_gptq", "gptqmodel",
                         "compressed_tensors", "torch.ao.nn.quantized", "torch.nn.quantized")


def quantized_tensor(weight: torch.Tensor) -> bool:
    """Whether `weight` is stored quantized: not floating point, of one byte per value (float8), a tensor type of a
    quantization package (:data:`QUANTIZATION_PACKAGES`), or a type with its own ``dequantize()`` (a quantized tensor
    subclass of another package). Other floating-point tensor subclasses hold their values as they are: FSDP2's
    ``DTensor`` (a shard of the matrix), a subclass wrapped around a weight to log or trace its uses (such weights
    were refused as quantized by prune(mode='remove') and output effects, and recorded as a quantization)."""
    kind = type(weight)
    return (not weight.is_floating_point() or weight.element_size() == 1
            or kind.__module__.startswith(QUANTIZATION_PACKAGES)
            or getattr(kind, "dequantize", torch.Tensor.dequantize) is not torch.Tensor.dequantize)


# Packages whose linear layers quantize a floating-point weight as they run (optimum-quanto's QLinear before
# freeze(): its weight is still a float Parameter, which it quantizes at every forward).
QUANTIZING_LAYERS = ("optimum.quanto",)


def quantized_weight(module: nn.Module) -> str | None:
    """What quantizes a linear-like layer's weight (the layer a PEFT wrapper wraps, for one), in words, or None for a
    plain floating-point weight: a weight that :func:`quantized_tensor` names (torchao's ``Int8Tensor``,
    optimum-quanto's ``WeightQBytesTensor``, bitsandbytes' ``Int8Params``, a float8 weight whose scales other
    parameters hold: transformers' ``FP8Linear``), or a layer of a package that quantizes its float weight at every
    forward (:data:`QUANTIZING_LAYERS`). Such layers are what ``from_pretrained(..., quantization_config=...)``
    (QuantoConfig, TorchAoConfig, BitsAndBytesConfig) or a backend's own ``quantize()`` leave. A floating-point
    tensor subclass of another kind (FSDP2's ``DTensor``, a subclass a user wraps a weight in to log or trace its
    uses) holds the matrix itself: not quantized."""
    layer = peft_base_layer(module) or module
    weight = getattr(layer, "weight", None)
    if isinstance(weight, torch.Tensor) and quantized_tensor(weight):
        package = type(weight).__module__.split(".")[0]
        return f"a {type(layer).__name__} whose weight is stored as {type(weight).__name__} ({package}, {weight.dtype})"
    if type(layer).__module__.startswith(QUANTIZING_LAYERS):
        return f"a {type(layer).__name__} ({type(layer).__module__.split('.nn')[0]}), which quantizes its weight as it runs"
    return None


def float_weight(layer: nn.Module) -> torch.Tensor:
    """The floating-point weight `layer` (a linear-like layer, not a PEFT wrapper) computes with, detached, in its own
    layout: a quantized weight dequantized (a tensor subclass with a ``dequantize()`` method: torchao's, optimum-
    quanto's), and for a layer that quantizes its float weight as it runs (optimum-quanto's QLinear before
    ``freeze()``) the weight so quantized. Plain weights are returned as they are.

    Raises:
        ModelError: the weight is quantized in a form without ``dequantize()`` (bitsandbytes' ``Int8Params``, a
            float8 weight whose scales other parameters hold), whose values are not the matrix the layer applies.
    """
    weight = layer.weight.detach()
    packed = getattr(layer, "qweight", None) if type(layer).__module__.startswith(QUANTIZING_LAYERS) else None
    if isinstance(packed, torch.Tensor):
        weight = packed.detach()
    if type(weight) is not torch.Tensor and quantized_tensor(weight) and callable(getattr(weight, "dequantize", None)):
        weight = weight.dequantize()
    if quantized_tensor(weight):
        raise ModelError(
            f"hf_txray cannot read the matrix that {quantized_weight(layer) or type(layer).__name__} applies: its "
            f"weight ({type(weight).__name__}, {weight.dtype}) is quantized without a dequantize() method. Output "
            "effects read weights: "
            "compute them on the unquantized model (profiling, masking and ablation read activations and work "
            "on the quantized one).")
    return weight


def quantization_record(model: nn.Module) -> dict[str, Any] | None:
    """How `model` is quantized, for its profile's provenance, or None: the method of its config's
    ``quantization_config`` (``from_pretrained(..., quantization_config=...)``: ``{"method": "quanto", "from":
    "quantization_config"}``), else the first layer of a quantization package or with a quantized weight
    (:func:`quantized_weight`), as a backend's own ``quantize()`` or ``quantize_dynamic`` leave it (``{"method":
    "hqq", "from": "layers", "layer": ...}``): a model quantized in memory, which reloading its folder does not give
    back."""
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if config is not None:
        method = config.get("quant_method") if isinstance(config, dict) else getattr(config, "quant_method", None)
        return {"method": str(getattr(method, "value", method)), "from": "quantization_config"}
    for name, module in model.named_modules():
        package = type(module).__module__
        if package.startswith(QUANTIZATION_PACKAGES) or (linear_dims(module) is not None
                                                         and quantized_weight(module) is not None):
            weight = getattr(peft_base_layer(module) or module, "weight", None)
            if not package.startswith(QUANTIZATION_PACKAGES) and isinstance(weight, torch.Tensor):
                package = type(weight).__module__
            parts = package.split(".")  # optimum.quanto, torch.ao, else the package's own name
            return {"method": ".".join(parts[:2]) if parts[0] in ("optimum", "torch") else parts[0],
                    "from": "layers", "layer": name}
    return None


DYNAMIC_QUANTIZATION = ("torch.ao.nn.quantized.dynamic", "torch.nn.quantized.dynamic")


def dynamically_quantized(model: nn.Module) -> str | None:
    """The name of `model`'s first module converted by ``torch.ao.quantization.quantize_dynamic`` (``""`` for
    `model` itself), or None."""
    return next((n for n, m in model.named_modules() if type(m).__module__.startswith(DYNAMIC_QUANTIZATION)), None)


def activation_quantized(model: nn.Module) -> str | None:
    """The name of `model`'s first layer whose weight quantizes the layer's input at every forward, with a scale
    read from that input (torchao's dynamic-activation configs, ``Int8DynamicActivationInt8WeightConfig``: the
    weight's ``act_quant_kwargs``; ``""`` for `model` itself), or None."""
    return next((n for n, m in model.named_modules()
                 if getattr(getattr(m, "weight", None), "act_quant_kwargs", None) is not None), None)


def refuse_dynamic_quantization(model: nn.Module, name: str) -> None:
    """Refuse a model converted by ``torch.ao.quantization.quantize_dynamic``, whose linear layers the site search
    does not read (they are no ``nn.Linear``), naming the conversion rather than a missing block structure.

    Raises:
        ModelError: `model` holds a dynamically quantized module.
    """
    quantized = dynamically_quantized(model)
    if quantized is not None:
        quantized = quantized or name
        raise ModelError(
            f"{quantized!r} is dynamically quantized (torch.ao.quantization.quantize_dynamic): such a layer quantizes "
            "its input with a scale computed over the whole batch, so a text's activations depend on the texts "
            "batched with it, and its units are not read by site='mlp'. Profile the model before quantize_dynamic; "
            "or profile the quantized one with site='residual', module_pattern naming its blocks (e.g. "
            "r'layers\\.\\d+$'), batch_size=1 and pad_to_multiple_of=1.")


def refuse_kernel_less_attention(model: nn.Module) -> None:
    """Refuse a model whose attention returns zeros without its custom kernel (MRA's, see
    :data:`~hf_txray.architectures.KERNEL_ONLY_ATTENTION`): its profile would be a model whose tokens never see each
    other, not the model (and `skip_first_positions="auto"` took it for causal).

    Raises:
        ModelError: naming the model, the missing kernel and what loads it.
    """
    for source in {type(module).__module__ for module in model.modules()}:
        for kind, kernel in KERNEL_ONLY_ATTENTION.items():
            holder = sys.modules.get(source)
            if holder is not None and hasattr(holder, kernel) and getattr(holder, kernel) is None:
                raise ModelError(
                    f"{type(model).__name__} ({kind}) computes its attention with a custom CUDA kernel, which is not "
                    f"loaded ({source}.{kernel} is None: no CUDA device, or the `kernels` package is missing), and "
                    "without it transformers' attention returns zeros with no error: every token would see only "
                    "itself, and the profile would not be this model's. Load the model on a CUDA device with the "
                    "`kernels` package installed (the kernel loads when the model is built).")


def refuse_sliced_down_projection(model: nn.Module) -> None:
    """Refuse a model whose MLP multiplies by slices of its down projection's weight instead of calling the module
    (BLOOM with ``pretraining_tp`` > 1 and ``slow_but_exact=True``): hooks on the down projection never run there, so
    masks, ablation fills and profiling hooks would do nothing, without an error (helper 186: a BLOOM with every
    neuron masked gave the unmasked logits).

    Raises:
        ModelError: naming the module and the reload that fixes it.
    """
    for name, module in model.named_modules():
        if (getattr(module, "slow_but_exact", False) and (getattr(module, "pretraining_tp", 1) or 1) > 1
                and hasattr(module, "dense_4h_to_h")):
            raise ModelError(
                f"{name or type(module).__name__!r} computes its down projection with slices of "
                f"dense_4h_to_h's weight (pretraining_tp={module.pretraining_tp}, slow_but_exact=True), without "
                "calling the module, so its MLP neurons cannot be read, masked or ablated (the hooks would never "
                "run). Load the model with slow_but_exact=False (from_pretrained(..., slow_but_exact=False)): the "
                "same weights, one matrix product instead of the slices, equal up to rounding.")


def other_modality(model: nn.Module) -> list[str]:
    """The submodules of `model` that are towers of another modality than text: those whose ``config`` is one of
    the sub-configs of `model`'s config (``config.sub_configs``: GIT's ``vision_config``, Phi-4-multimodal's
    ``vision_config`` and ``audio_config``) other than its text config. A forward on ``input_ids`` alone never calls
    them (the text stack of such a model holds fewer blocks than its vision or audio encoder)."""
    config = getattr(model, "config", None)
    names = getattr(config, "sub_configs", None)
    if config is None or not isinstance(names, dict):
        return []
    text = text_config(config)
    subs = [sub for key in names for sub in [getattr(config, key, None)]
            if sub is not None and sub is not text and sub is not config]
    return [name for name, module in model.named_modules()
            if name and any(getattr(module, "config", None) is sub for sub in subs)]


def find_blocks(model: nn.Module, mixed: bool = False, site: str = "mlp") -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer blocks: the ModuleList of same-class modules with the most parameters, among
    those whose modules hold linear layers (MarkupLM's list of 50 xpath embedding tables outweighed a tiny encoder).
    A list inside a member of another list is a part of one block (Zamba2's adapters of its shared transformer,
    inside the hybrid stack), never the stack. A list inside a tower of another modality (:func:`other_modality`:
    GIT's and Phi-4-multimodal's vision and audio encoders, which a text-only forward never calls) is taken only
    where no other list qualifies.

    Args:
        mixed (`bool`, *optional*, defaults to `False`): take lists of blocks of several classes too (a hybrid
            stack of Mamba and attention blocks): how a `module_pattern`'s matches are numbered; the automatic
            search verifies each block alike and needs one class.
        site (`str`, *optional*, defaults to `"mlp"`): the site whose `module_pattern` an error suggests
            (:func:`example_pattern`).
    """
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    nested = {id(inner) for _, outer in lists for member in outer for inner in member.modules()
              if inner is not member and isinstance(inner, nn.ModuleList)}
    towers = other_modality(model)
    best: tuple[tuple[bool, int], str, nn.ModuleList] | None = None
    unread: tuple[int, str] | None = None  # the largest list of identical modules without linear layers
    for name, module in lists:
        if id(module) in nested or not (mixed or len({type(m) for m in module}) == 1):
            continue
        size = sum(p.numel() for p in module.parameters())
        if not any(next(named_linears(m), None) is not None for m in (module if mixed else module[:1])):
            unread = max(unread or (size, name), (size, name))
            continue
        rank = (not any(name == tower or name.startswith(tower + ".") for tower in towers), size)
        if best is None or rank > best[0]:
            best = (rank, name, module)
    if best is None and unread is not None and unread[0] > 0:
        # I-BERT's QuantLinear, SqueezeBERT's convolutions: blocks whose layers the site search cannot read
        raise ModelError(
            f"The blocks of {type(model).__name__} ({unread[1]!r}) hold no linear layer hf_txray reads (nn.Linear, "
            "GPT-2's Conv1D, or a PEFT wrapper of one): quantized or convolutional layers, whose units site='mlp' "
            "cannot read. Profile the blocks' outputs: site='residual' with module_pattern naming them, e.g. "
            f"r'{re.escape(unread[1])}\\.\\d+$' (where the model calls its blocks: SqueezeBERT calls their forward "
            "method directly, past any hook, and cannot be profiled).")
    if best is None:
        # example_pattern searches again with mixed=True: a model with no list of blocks at all gets no example
        example = "" if mixed else f", e.g. {example_pattern(model, site)}"
        raise BlocksNotFoundError(
            f"Could not find the transformer blocks of {type(model).__name__} (no nn.ModuleList of identical "
            "blocks; a hybrid stack of blocks of several classes, as Jamba's or Zamba2's, is not searched). Pass "
            f"`module_pattern`, a regex matching the modules to hook{example}.")
    return best[1], best[2]


def example_pattern(model: nn.Module, site: str) -> str:
    """The `module_pattern` suggested for `site` of a model whose blocks the automatic search does not take (a hybrid
    stack): its list of blocks of several classes numbered ``\\d+``, and for ``"mlp"`` the first linear layer of
    those blocks named as a down projection outside any token mixer's path (Jamba's ``feed_forward.down_proj``, Zamba2's
    ``shared_transformer.feed_forward.down_proj``), else their first fused experts (a Jamba whose every MLP is a
    mixture of experts: ``feed_forward.experts``); the generic Llama names where the model has neither."""
    generic = r"r'layers\.\d+$'" if site == "residual" else r"r'layers\.\d+\.mlp\.down_proj'"
    try:
        blocks_name, blocks = find_blocks(model, mixed=True)
    except ModelError:
        return generic
    if site == "residual":
        return f"r'{re.escape(blocks_name)}\\.\\d+$'"
    downs = ((index, name) for index, block in enumerate(blocks) for name, _, _ in named_linears(block)
             if name.rpartition(".")[2] in DOWN_PROJECTION_NAMES and not _in_mixer_path(name))
    experts = ((index, name) for index, block in enumerate(blocks) for name, module in block.named_modules()
               if is_fused_experts(module) and not _in_mixer_path(name))
    found = next(downs, None) or next(experts, None)
    if found is None:
        return generic
    index, name = found
    return f"r'{_every_block(_join(blocks_name, f'{index}.{name}'), blocks_name, index)}'"


def _in_mixer_path(name: str) -> bool:
    """Whether a module's path names a token mixer (attention, a state-space mixer), by path name only: Zamba2's MLP
    lies in its `shared_transformer`, of an attention layer's class."""
    return any(token in part.lower() for part in name.split(".") for token in TOKEN_MIXER_NAME_PARTS)


def _down_projection(block: nn.Module) -> tuple[str, nn.Module, int] | None:
    """The block's linear layer with the widest input among those that narrow (in > out): the structural guess,
    named in error messages when the verified search finds nothing."""
    best: tuple[int, str, nn.Module] | None = None
    for name, module, dims in named_linears(block):
        if dims[0] <= dims[1]:
            continue
        if best is None or dims[0] > best[0]:
            best = (dims[0], name, module)
    return None if best is None else (best[1], best[2], best[0])


def convolves_positions(module: nn.Module) -> bool:
    """True when `module` holds a depthwise 1-D convolution (``nn.Conv1d`` with one group per channel): a convolution
    along the positions, one channel at a time, as LFM2's short convolution (``Lfm2ShortConv``: ``in_proj``, ``conv``,
    ``out_proj``) and Mamba's mixer mix tokens."""
    return any(isinstance(child, nn.Conv1d) and child.in_channels > 1 and child.groups == child.in_channels
               for child in module.children())


def in_token_mixer(block: nn.Module, name: str) -> bool:
    """True when submodule `name` of `block` lies in a token mixer: an attention module (by path name or by class
    name), a state-space mixer (by path name, :data:`~hf_txray.architectures.TOKEN_MIXER_NAME_PARTS`) or a
    convolution along the positions (by structure, :func:`convolves_positions`: LFM2's ``conv``, whose ``in_proj``
    is 3 x hidden wide, as wide as an MLP of ``intermediate_size = 3 x hidden``)."""
    parts = name.split(".") if name else []
    module = block
    for part in parts:
        if any(token in part.lower() for token in TOKEN_MIXER_NAME_PARTS):
            return True
        module = getattr(module, part, None)  # a ModuleList's index too; a ModuleDict's key may be digits (a LoRA adapter "0")
        if module is None or "attention" in type(module).__name__.lower() or convolves_positions(module):
            return module is not None
    return False


def is_encoder_decoder(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return bool(getattr(config, "is_encoder_decoder", False)) and hasattr(model, "get_encoder")


def resolve_stack(model: nn.Module, stack: str | None) -> tuple[str | None, nn.Module]:
    """The stack to profile: ``(name, module)``; ``(None, model)`` for models with one stack.

    Args:
        stack (`str`, *optional*): ``"encoder"`` (the default for encoder-decoders) or ``"decoder"``.

    Raises:
        ConfigurationError: an unknown stack, or a stack named for a model that has only one.
    """
    if stack is not None and stack not in STACKS:
        raise ConfigurationError(f"Unknown stack {stack!r}: choose 'encoder' or 'decoder' (encoder-decoder models).")
    if not is_encoder_decoder(model):
        if stack is not None:
            raise ConfigurationError(
                f"stack={stack!r} applies to encoder-decoder models (T5, BART...); {type(model).__name__} has one "
                "stack. Leave stack unset."
            )
        return None, text_model(model) or model
    stack = stack or "encoder"
    text = text_config(model.config)
    if stack == "decoder" and text is not model.config:
        # BLIP-2's get_decoder() is its whole T5, Florence-2's its whole BART: not a decoder stack to feed
        inner = next((name for name, m in model.named_modules() if getattr(m, "config", None) is text), "")
        raise ModelError(
            f"{type(model).__name__} is a composite model around an encoder-decoder text model: its decoder stack is "
            f"profiled from the text model itself, e.g. hf_txray.analyze(model.{inner or 'language_model'}, texts, "
            "stack='decoder', tokenizer=...). stack='encoder' profiles the text model's encoder here.")
    module = model.get_encoder() if stack == "encoder" else model.get_decoder()
    if module is None or module is model:
        raise ModelError(f"Could not find the {stack} of {type(model).__name__} (get_{stack}() gave nothing).")
    # a multimodal stack (T5Gemma2's encoder: a text model beside a vision tower) is profiled on text: its blocks are
    # the text model's, the submodule holding the stack's text config (a deeper vision tower was taken for its blocks)
    own = getattr(module, "config", None)
    text = text_config(own)
    if text is not own:
        module = next((m for m in module.modules() if m is not module and getattr(m, "config", None) is text), module)
    return stack, module


# The config attributes holding an encoder-decoder's decoder depth (T5's num_decoder_layers, BART's decoder_layers):
# num_hidden_layers maps to the encoder's.
DECODER_DEPTHS = ("num_decoder_layers", "decoder_layers")


def text_depth(config: Any, stack: str | None = None) -> int | None:
    """The number of blocks of the profiled text stack, as its config declares it (``num_hidden_layers`` of
    :func:`text_config`: an encoder-decoder's encoder; with ``stack="decoder"`` its decoder's), None where it
    declares none."""
    found = stack_config(config, stack) if config is not None else None
    names = (*DECODER_DEPTHS, "num_hidden_layers") if stack == "decoder" else ("num_hidden_layers",)
    value = next((v for v in (getattr(found, n, None) for n in names) if v is not None), None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def text_shape(config: Any, stack: str | None = None) -> dict[str, int | None]:
    """The residual width (``hidden_size``, :func:`~hf_txray.architectures.hidden_size`) and the vocabulary size
    (``vocab_size``) of the profiled text stack's config (:func:`stack_config`), each None where it declares none:
    with :func:`text_depth`, the shape a profile records of its model (``provenance["runtime"]``)."""
    found = stack_config(config, stack) if config is not None else None
    shape = {"hidden_size": hidden_size(found) if found is not None else None,
             "vocab_size": getattr(found, "vocab_size", None) or getattr(config, "vocab_size", None)}
    return {key: value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
            for key, value in shape.items()}


def text_config(config: Any) -> Any:
    """The config that describes the profiled text stack: a composite (vision-language) model's text config
    (``config.get_text_config()``: BLIP-2's T5, Florence-2's BART too), else `config` itself (an encoder-decoder's
    describes both stacks; one made of two models, as ``EncoderDecoderModel``'s, is left as it is)."""
    get = getattr(config, "get_text_config", None)
    if config is None or not callable(get) or all(hasattr(config, part) for part in ("encoder", "decoder")):
        return config
    try:
        found = get()
    except (AttributeError, ValueError):  # a config whose sub-configs do not name one text config
        return config
    return found if found is not None else config


def stack_config(config: Any, stack: str | None) -> Any:
    """The config that describes `stack` (``"encoder"`` or ``"decoder"``) of an encoder-decoder whose config holds
    one config per stack, as attributes named after them (T5Gemma's ``encoder`` and ``decoder``, where its MLP width,
    hidden size and depth live; an ``EncoderDecoderModel``'s two models); else :func:`text_config` of `config`.
    A stack's config that is itself composite is read through its text config (T5Gemma2's encoder keeps its text
    stack's widths in ``config.encoder.text_config``, beside a vision config)."""
    found = text_config(config)
    if stack in STACKS and found is config and config is not None:
        sub = getattr(config, stack, None)
        if sub is not None and callable(getattr(sub, "to_dict", None)) and isinstance(getattr(sub, "model_type", None),
                                                                                      str):
            return text_config(sub)
    return found


def text_model(model: nn.Module) -> nn.Module | None:
    """The language model inside a composite (vision-language) model, profiled on text alone: the module
    ``get_decoder()`` returns, when its config is the text config (LLaVA's, PaliGemma's, Qwen2-VL's, Idefics3's
    text model); None for other models. Its vision tower may hold more blocks than it, so the blocks are searched
    there, and its widths are read from the text config."""
    config = getattr(model, "config", None)
    text = text_config(config)
    if text is config:
        return None
    get = getattr(model, "get_decoder", None)
    decoder = get() if callable(get) else None
    if isinstance(decoder, nn.Module) and decoder is not model and getattr(decoder, "config", None) is text:
        return decoder
    return None


def _qualified(model: nn.Module, module: nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ModelError(f"{type(module).__name__} is not a submodule of {type(model).__name__}.")


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _refuse_unread_experts(model: nn.Module, block: nn.Module, block_name: str) -> None:
    """A block whose experts are not in the fused layout hf_txray reads (3-D `gate_up_proj`/`down_proj` and
    `num_experts`): LongCat-Flash's (3-D weights, identity experts, no `num_experts`), DBRX's (experts packed in 2-D
    `w1`/`v1`/`w2`), Doge's (one-unit experts in embedding tables beside a dense MLP, whose units alone would be
    profiled: a routed unit won 84% of the positions). Say so, rather than that no experts were found, or than
    profile the dense part alone."""
    # a linear-like layer is none: peft's ParamWrapper (LoRA on a parameter, `target_parameters`) of a dense linear
    # layer's weight holds num_experts=1
    unread = [n for n, m in block.named_modules() if not in_token_mixer(block, n) and linear_dims(m) is None
              and not any(is_fused_experts(inner) for inner in m.modules()) and (
        type(m).__name__.endswith("Experts")
        or (isinstance(getattr(m, "down_proj", None), nn.Parameter) and m.down_proj.dim() == 3)
        or (isinstance(getattr(m, "num_experts", None), int) and m.num_experts > 0))]
    if unread:
        raise ModelError(
            f"Block {block_name!r} of {type(model).__name__} holds experts {_join(block_name, unread[0])!r} "
            f"({type(block.get_submodule(unread[0])).__name__}) that hf_txray cannot number: they are not in the "
            "fused layout it reads (3-D gate_up_proj/up_proj and down_proj, num_experts), e.g. LongCat-Flash's, "
            "whose zero-computation experts have no units, DBRX's, packed in 2-D w1/v1/w2, or Doge's, one-unit "
            "experts in embedding tables. Profile this model with site='residual', or name dense MLP down "
            "projections of the block with `module_pattern`.")


def _moe_site(model: nn.Module, block: nn.Module, block_name: str, widths: dict[str, int], described: str) -> tuple[str, nn.Module, ExpertsLayout] | None:
    """The block's fused experts module and its numbering (with shared experts), or None for a dense block."""
    found = [(n, m) for n, m in block.named_modules() if is_fused_experts(m) and not in_token_mixer(block, n)]
    if not found:
        return None
    name, experts = found[0]
    if any(hasattr(m, "zero_expert_num") for m in block.modules()):
        # transformers >= 5.25 gives LongCat-Flash's experts the fused interface; its MoE hands a token routed to a
        # zero-computation (identity) expert to a real expert with weight 0, and the block holds dense MLPs beside
        raise ModelError(
            f"Block {block_name!r} of {type(model).__name__} holds experts {_join(block_name, name)!r} "
            f"({type(experts).__name__}) that hf_txray cannot number: LongCat-Flash's zero-computation experts reach "
            "the experts as a real expert with weight 0, and the block's dense MLPs run beside them. Profile this "
            "model with site='residual', or name dense MLP down projections of the block with `module_pattern`.")
    parts = name.split(".")
    # checked first: PEFT's modules_to_save holds a copy of the experts beside the original, two experts modules
    wrapped = next((".".join(parts[:i]) for i in range(1, len(parts) + 1)
                    if peft_base_layer(block.get_submodule(".".join(parts[:i]))) is not None), None)
    if wrapped is None and len(found) > 1:
        raise ModelError(f"Block {block_name!r} has several fused experts modules {[n for n, _ in found]} (as "
                         "ERNIE-4.5-VL's text and vision experts): hf_txray numbers one experts module per block, "
                         "so this layout is not read. Profile this model with site='residual'.")
    if wrapped is not None:
        raise ModelError(
            f"The experts {_join(block_name, name)!r} are wrapped by a PEFT adapter ({_join(block_name, wrapped)!r}): "
            "hf_txray computes each chosen expert's units from the experts' weights, which the adapter changes only "
            "inside its own forward, so they would be the base model's. Merge the adapter first "
            "(model = model.merge_and_unload()), or profile site='residual'.")
    width = expert_width(experts)
    if width not in widths.values():
        raise UnreadExpertsError(
            f"The experts {_join(block_name, name)!r} ({type(experts).__name__}, down_proj of shape "
            f"{tuple(experts.down_proj.shape)}) read as {width} units each, but the config declares an MLP width of "
            f"{described}: refusing to guess which units are the experts' (a layout "
            "hf_txray does not read, such as Llama 4's experts, which run every token through every expert). "
            "Profile this model with site='residual', or only its dense blocks (Llama 4 interleaves them with its "
            "MoE blocks) with `layers=`."
        )
    layout = shared_experts_layout(model, block, block_name, name, experts)
    return _join(block_name, name), experts, replace(layout, skip_class=has_skip_class(block, experts))


def shared_experts_layout(model: nn.Module, block: nn.Module, block_name: str, name: str, experts: nn.Module,
                          whole_block: bool = True) -> ExpertsLayout:
    """The numbering of a MoE layer's units: its routed experts (``block.<name>``), then the shared expert(s) found
    outside the experts and the token mixer: in the whole block where the config declares their width (and
    `whole_block`), else in the experts' MoE module (their parent).

    A shared expert sits beside the routed ones in the MoE module (Qwen2-MoE's `mlp.shared_expert`) or in the block
    itself (GraniteMoeShared's `shared_mlp`). Where the config declares its width, the linear layer taking that
    width to the hidden size is its down projection (where that width is the hidden size, its gate, up and down
    projections all qualify: the one named as a down projection is taken where the others are named as input
    projections, :func:`~hf_txray.architectures.named_down_projection`). Where it declares none, the MoE module
    holds one where one of its submodules, holding no experts, is an MLP: a linear layer into the hidden size and
    one from the hidden size to its width (or twice it, gate and up fused; as wide as the hidden size, named as
    above). A projection the MoE module applies to
    the experts' sum (Muse Spark's `post_expert_proj`) or an adapter added beside them is no shared expert.

    Raises:
        ModelError: a declared shared expert cannot be found; several linear layers could be its down projection
            (then its units cannot be told apart; names settle it only as said above); its width is not a multiple
            of the routed experts'.
    """
    width = expert_width(experts)
    hidden = hidden_size(text_config(model.config))
    declared = declared_shared_width(text_config(model.config), width)
    scope_name = "" if whole_block and declared is not None else name.rpartition(".")[0]
    scope = block.get_submodule(scope_name) if scope_name else block
    found = []
    for sub_name, sub, dims in named_linears(scope):
        full = _join(scope_name, sub_name)
        if dims[0] == 0 or full == name or full.startswith(name + ".") or in_token_mixer(scope, sub_name):
            continue  # a zero-width shared expert (shared_expert_intermediate_size=0) has no units
        if dims[1] != hidden:
            continue
        if dims[0] == declared if declared is not None else _is_mlp_output(scope, sub_name, dims[0], hidden):
            found.append((full, sub, dims[0]))
    if declared and not found:
        raise ModelError(
            f"Block {block_name!r}: the config declares a shared expert {declared} units wide, but no linear layer "
            f"of block {block_name!r} outside its experts and attention takes {declared} inputs to the hidden size "
            f"({hidden}), so its units cannot be read: leaving them out would change every winner. Profile this "
            "model with site='residual'.")
    if len(found) > 1 and all(w == hidden for _, _, w in found):
        # as wide as the hidden size (declared, or found in the MoE module where the config declares none): its
        # gate, up and down projections all take `hidden` inputs to `hidden`
        down = named_down_projection([n for n, _, _ in found])
        found = [f for f in found if f[0] == down] if down is not None else found
    if len(found) > 1:
        raise ModelError(
            f"Block {block_name!r}: several linear layers could be the shared expert's down projection "
            f"{[n for n, _, _ in found]} (taking {[w for _, _, w in found]} inputs to the hidden size, {hidden}), so the "
            "shared expert's units cannot be told apart and numbered beside the routed experts'. Profile this "
            "model with site='residual'.")
    shared, num_shared = None, 0
    if found:
        shared_name, shared, shared_width = found[0]
        if shared_width % width:
            raise ModelError(
                f"The shared expert {_join(block_name, shared_name)!r} has {shared_width} units, not a multiple of the "
                f"routed experts' {width}: its units cannot be numbered as whole experts. Profile with site='residual'."
            )
        num_shared = shared_width // width
    return ExpertsLayout(int(experts.num_experts), num_shared, width, shared)


def _is_mlp_output(scope: nn.Module, name: str, width: int, hidden: int) -> bool:
    """Whether linear layer `name` of `scope` is the output of an MLP `width` units wide: its parent is a submodule
    of `scope` that holds no fused experts and a linear layer from the hidden size to `width` (or ``2 * width``)."""
    if "." not in name:
        return False  # directly in the MoE module, beside its experts
    parent = scope.get_submodule(name.rsplit(".", 1)[0])
    return not any(is_fused_experts(m) for m in parent.modules()) and any(
        dims[0] == hidden and dims[1] in (width, 2 * width) for _, _, dims in named_linears(parent))


# Config attributes declaring the total width of a MoE layer's shared expert(s): Qwen2-MoE, GraniteMoeShared,
# Nemotron-H; and the count of shared experts as wide as a routed one: DeepSeek, GLM-4 MoE, ERNIE 4.5 MoE, Aria,
# AFMoE, Cohere2-MoE, EXAONE-MoE, Hunyuan v3.
SHARED_WIDTH_ATTRIBUTES = ("shared_expert_intermediate_size", "shared_intermediate_size",
                           "moe_shared_expert_intermediate_size")
SHARED_COUNT_ATTRIBUTES = ("n_shared_experts", "moe_num_shared_experts", "num_shared_experts")


def declared_shared_width(config, expert_width: int) -> int | None:
    """The shared experts' total width the config declares (0: none), or None when it declares none.

    Args:
        expert_width (`int`): a routed expert's units, the width of each shared expert a count declares.
    """
    for attribute in SHARED_WIDTH_ATTRIBUTES:
        value = getattr(config, attribute, None)
        if isinstance(value, int):
            return value
    for attribute in SHARED_COUNT_ATTRIBUTES:
        count = getattr(config, attribute, None)
        if isinstance(count, int):
            each = getattr(config, "shared_experts_intermediate_size", None)  # Dots3-Note: each shared expert's
            return count * (each if isinstance(each, int) else expert_width)
    return None


def _mlp_site(model: nn.Module, layer: int, block: nn.Module, block_name: str, stack: str | None) -> Site:
    """The verified MLP site of one block: fused experts, or the one linear layer outside attention whose input is
    the config's MLP width and whose output is the hidden size (of several, as in an MLP as wide as the hidden
    size, the one named as a down projection beside input projections)."""
    config = stack_config(getattr(model, "config", None), stack)
    widths, described = expected_mlp_widths(config, stack) if config is not None else ({}, "none")
    if not widths:
        raise ModelError(
            f"The config of {type(model).__name__} declares no MLP intermediate width (intermediate_size, ffn_dim, "
            "d_ff, n_inner...), so the MLP site cannot be verified. Pass `module_pattern` naming the down projections."
        )
    moe = _moe_site(model, block, block_name, widths, described)
    if moe is not None:
        name, experts, layout = moe
        return Site(layer, name, experts, layout.num_neurons, "experts", layout)
    widths, described = dense_block_widths(config) or (widths, described)  # a dense block of a MoE model
    hidden = hidden_size(config)
    candidates = []
    for name, module, dims in named_linears(block):
        if dims[0] not in widths.values() or in_token_mixer(block, name):
            continue
        if (dims[1] == hidden) if hidden else dims[0] > dims[1]:
            candidates.append((name, module, dims[0]))
    _refuse_unread_experts(model, block, block_name)  # beside a dense MLP too: their units would be left out
    if len(candidates) > 1 and hidden and all(c[2] == hidden for c in candidates):
        # an MLP as wide as the hidden size: its up (and gate) projections take as many inputs to as many outputs
        down = named_down_projection([c[0] for c in candidates])
        candidates = [c for c in candidates if c[0] == down] if down is not None else candidates
    if len(candidates) == 1:
        name, module, width = candidates[0]
        return Site(layer, _join(block_name, name), module, width, "input")
    if candidates:
        _refuse_several_down_projections(model, block, block_name, candidates, described, hidden)
    guess = _down_projection(block)
    found = (f"the widest narrowing linear layer is {_join(block_name, guess[0])!r} ({guess[2]} inputs)"
             if guess else "it has no narrowing linear layer")
    raise ModelError(
        f"Could not verify the MLP of block {block_name!r} ({type(block).__name__}) of {type(model).__name__}: "
        f"{found}, but the config declares an MLP width of {described}, and no linear layer outside "
        f"attention (or a state-space mixer: a Mamba block has no MLP) both takes that many inputs and returns the "
        f"hidden size ({hidden}), nor are there fused experts{_experts_in_mixers(model)}. "
        "Pass `module_pattern`, a regex matching the MLP down projections (e.g. r'layers\\.\\d+\\.mlp\\.down_proj'), "
        "or use site='residual'."
    )


def _refuse_several_down_projections(model: nn.Module, block: nn.Module, block_name: str,
                                     candidates: list[tuple[str, nn.Module, int]], described: str,
                                     hidden: int | None) -> None:
    """Refuse a block where several linear layers outside attention take the declared MLP width to the hidden size
    (BERT's ``intermediate.dense`` and ``output.dense`` where ``intermediate_size == hidden_size``) and their names
    do not settle which is the down projection: the patterns naming each, in every block."""
    names = [_join(block_name, c[0]) for c in candidates]
    blocks_name, _, index = block_name.rpartition(".")
    patterns = ", ".join(f"r'{_every_block(name, blocks_name, int(index))}'" for name in names)
    same = " (as wide as the hidden size, so its up projection has the down projection's shape)" if all(
        c[2] == hidden for c in candidates) else ""
    raise ModelError(
        f"Could not tell the MLP down projection of block {block_name!r} ({type(block).__name__}) of "
        f"{type(model).__name__}: the config declares an MLP width of {described}{same}, and {len(names)} linear "
        f"layers outside attention take that many inputs to the hidden size ({hidden}): {names}; neither their shape "
        "nor their names say which one's input is the MLP's intermediate activation. Pass `module_pattern` naming the "
        f"down projection, one of {patterns}, or use site='residual'.")


def _experts_in_mixers(model: nn.Module) -> str:
    """A hint for fused experts the automatic search does not look for, inside a block's token mixer (Nemotron-H's
    MoE is its block's `mixer`): the pattern that names them."""
    names = [n for n, m in model.named_modules() if is_fused_experts(m) and in_token_mixer(model, n)]
    if not names:
        return ""
    pattern = re.sub(r"\.\d+(?=\.|$)", r"\\.\\d+", names[0]).replace(".", "\\.").replace("\\\\.", "\\.")
    return (f" outside its token mixer (the model's experts {names[0]!r} are inside one, where the search does not "
            f"look: name them with module_pattern=r'{pattern}$')")


def _hidden_size(model: nn.Module, stack: str | None = None) -> int:
    config = stack_config(getattr(model, "config", None), stack)
    size = getattr(config, "hidden_size", None) if config is not None else None
    if not size:
        raise ModelError(
            "The model's config has no `hidden_size`, so the residual width is unknown. Use site='mlp' or a model "
            "with a transformers config."
        )
    return int(size)


def _sites_from_pattern(model: nn.Module, site: str, pattern: str, root: nn.Module, stack: str | None = None
                        ) -> list[Site]:
    regex = re.compile(pattern)
    matched = [(n, m) for n, m in model.named_modules() if n and regex.search(n)]
    if not matched:
        raise ModelError(f"module_pattern {pattern!r} matches no module of {type(model).__name__}.")
    for name, _ in matched:
        _refuse_inside_experts(model, name, pattern)
    sites = []
    numbers, blocks = _pattern_layers(root, matched, pattern)
    for layer, (name, module) in zip(numbers, matched):
        if site == "mlp" and is_fused_experts(module):
            block = blocks[layer] if blocks is not None and layer < len(blocks) else None
            layout = _pattern_experts_layout(model, block, module)
            sites.append(Site(layer, name, module, layout.num_neurons, "experts", layout))
        elif site == "mlp":
            dims = linear_dims(module)
            if dims is None:
                refuse_dynamic_quantization(module, name)
                raise ModelError(
                    f"module_pattern matched {name!r} ({type(module).__name__}), which is not linear: site='mlp' "
                    "hooks the input of a linear down projection. Match the linear layer, or use site='residual'."
                )
            sites.append(Site(layer, name, module, dims[0], "input"))
        else:
            dims = linear_dims(module)
            sites.append(Site(layer, name, module, dims[1] if dims else _hidden_size(model, stack), "output"))
    return sorted(sites, key=lambda s: s.layer)


def _refuse_inside_experts(model: nn.Module, name: str, pattern: str) -> None:
    """A module inside an experts container (an `experts` list or dict, or an `...Experts` module: NLLB-MoE's
    `experts.expert_1.fc2`) sees only the tokens routed to its expert, in the router's order: its rows are not the
    batch's positions even when their count happens to be (NLLB's expert ran every token once, by expert then token:
    41% of the mass on other tokens' cells)."""
    parts = name.split(".")
    for end in range(1, len(parts)):
        container = ".".join(parts[:end])
        if parts[end - 1] == "experts" or type(model.get_submodule(container)).__name__.endswith("Experts"):
            raise ModelError(
                f"module_pattern {pattern!r} matched {name!r}, inside the experts {container!r}: a module of one "
                "expert sees only the tokens routed to it, in the router's order, so its rows cannot be credited to "
                "positions. Name the fused experts module itself (hf_txray numbers every expert's units), or use "
                "site='residual'.")


def _pattern_experts_layout(model: nn.Module, block: nn.Module | None, experts: nn.Module) -> ExpertsLayout:
    """The numbering of fused experts a `module_pattern` named: with the shared expert(s) of their `block`, found by
    structure as the automatic search finds them (a layer's units are the same whichever way it was found); the
    routed experts alone outside a block.

    Raises:
        ModelError: the block's layout is refused as by the automatic search (a shared expert that cannot be
            numbered as whole experts): leaving it out would change every winner.
    """
    config = text_config(getattr(model, "config", None))
    if block is not None and config is not None:
        block_name = _qualified(model, block)
        found = _moe_site(model, block, block_name, *expected_mlp_widths(config, None))
        if found is not None and found[1] is experts:
            return found[2]
        # Experts the automatic search does not take (in a block's `mixer`, as Nemotron-H's): their shared expert
        # is searched beside them, in their MoE module (a declared one left out would change every winner).
        name = next(n for n, m in block.named_modules() if m is experts)
        layout = shared_experts_layout(model, block, block_name, name, experts, whole_block=False)
        return replace(layout, skip_class=has_skip_class(block, experts))
    return ExpertsLayout(int(experts.num_experts), 0, expert_width(experts), skip_class=has_skip_class(model, experts))


def _pattern_layers(root: nn.Module, matched: list[tuple[str, nn.Module]], pattern: str
                    ) -> tuple[list[int], nn.ModuleList | None]:
    """The layer number of each module a `module_pattern` matched: the index of the block of the stack that holds
    it, as the automatic search numbers layers, so that a profile's layers name the same blocks whatever found them
    (pruning and comparing by layer rely on it); a module of a list of the same length beside the blocks (XLM keeps
    its layers' parts in parallel lists) takes its index in that list. Modules outside the blocks (a head; the other stack of an
    encoder-decoder, which is refused later) are numbered after the last block, in model order; a model without a
    recognisable stack of blocks numbers the matches in model order. Returns the numbers and the blocks (None
    without a stack of blocks).

    Raises:
        ModelError: two matched modules lie in the same block (one site per block).
    """
    try:  # a hybrid stack (Mamba and attention blocks) numbers its matches as well
        blocks_name, blocks = find_blocks(root, mixed=True)
    except ModelError:
        return list(range(len(matched))), None
    block_of = {id(m): index for index, block in enumerate(blocks) for m in block.modules()}
    # lists beside the blocks holding the layers' other parts (XLM's layer_norm2 beside its ffns): their index
    parent_name = blocks_name.rpartition(".")[0]
    for sibling in (root.get_submodule(parent_name) if parent_name else root).children():
        if isinstance(sibling, nn.ModuleList) and sibling is not blocks and len(sibling) == len(blocks):
            for index, part in enumerate(sibling):
                for m in part.modules():
                    block_of.setdefault(id(m), index)
    numbers, outside, taken = [], len(blocks), {}
    for name, module in matched:
        index = block_of.get(id(module))
        if index is None:
            index, outside = outside, outside + 1
        elif index in taken:
            example = _one_per_block(_in_block(matched, block_of, index), blocks_name, index)
            raise ModelError(
                f"module_pattern {pattern!r} matches two modules of block {index} ({taken[index]!r} and {name!r}): "
                "hf_txray hooks one site per block, numbered by its block. Narrow the pattern to one module per block"
                + (" (end it with $)." if not pattern.endswith("$") else
                   f", e.g. r'{example}' (a block with several feed-forward networks, as MobileBERT's, is profiled "
                   "one network per run)."))
        taken[index] = name
        numbers.append(index)
    return numbers, blocks


def _in_block(matched: list[tuple[str, nn.Module]], block_of: dict[int, int], index: int
              ) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in matched if block_of.get(id(module)) == index]


def _one_per_block(candidates: list[tuple[str, nn.Module]], blocks_name: str, index: int) -> str:
    """A pattern naming one of the modules a pattern matched in block `index`, in every block, with the block index
    as ``\\d+``: fused experts where they are among them, else the MLP's down projection (outside a token mixer,
    narrowing to more than one output: the widest input; BERT's pattern 'dense$' also matched the up projection,
    whose input is the attention's output, and Qwen2-MoE's 'gate$' a one-output gate), else the first module
    outside a token mixer, else the first."""
    def mixer(name: str) -> bool:
        return any(token in part.lower() for part in name.split(".") for token in TOKEN_MIXER_NAME_PARTS)

    outside = [(name, module) for name, module in candidates if not mixer(name)]
    experts = [name for name, module in outside if is_fused_experts(module)]
    narrowing = [(dims[0], name) for name, module in outside
                 for dims in [linear_dims(module)] if dims is not None and dims[0] > dims[1] > 1]
    chosen = experts[0] if experts else max(narrowing)[1] if narrowing else (outside or candidates)[0][0]
    return _every_block(chosen, blocks_name, index)


def _every_block(name: str, blocks_name: str, index: int) -> str:
    """A pattern naming module `name` of block `index` of `blocks_name` in every block (the index as ``\\d+``)."""
    block = re.escape(f"{blocks_name}.")
    return re.escape(name).replace(f"{block}{index}\\.", f"{block}\\d+\\.", 1) + "$"


def find_sites(model: nn.Module, site: str = "mlp", module_pattern: str | None = None,
               stack: str | None = None, layers: str | int | Sequence[int] = "all") -> list[Site]:
    """Locate and verify the neuron sites of the blocks of one stack of `model`.

    Args:
        model (`nn.Module`): a transformers model (see the README's table of supported families).
        site (`str`, *optional*, defaults to `"mlp"`): ``"mlp"`` for MLP intermediate neurons, ``"residual"`` for
            block outputs.
        module_pattern (`str`, *optional*): regex on qualified module names that overrides the automatic search
            (and its checks); each matched module is numbered by the block of the stack that holds it, as the
            automatic search numbers them (one module per block).
        stack (`str`, *optional*): ``"encoder"`` (default) or ``"decoder"`` for encoder-decoder models.
        layers (`str`, `int` or `list[int]`, *optional*, defaults to `"all"`): the blocks to return, as
            :func:`select_layers` takes them. The automatic search verifies only these blocks, so a model whose other
            blocks cannot be profiled (Llama 4's interleaved MoE blocks) is profiled on the ones that can; every
            module a `module_pattern` matches is checked, and negative indices then count from the last block it
            matched.

    Returns:
        `list[Site]`, one per chosen layer, in model order.

    Raises:
        ConfigurationError: an unknown `site`.
        ModelError: when the MLP found by structure fails the width or attention check, or a module would be
            hooked twice.
    """
    if site not in SITES:
        raise ConfigurationError(f"Unknown site {site!r}: choose one of {', '.join(SITES)}.")
    stack, root = resolve_stack(model, stack)
    refuse_kernel_less_attention(root)
    if site == "mlp" and not module_pattern:  # a pattern's module is refused at the first batch if never called
        refuse_sliced_down_projection(root)
    if module_pattern:
        return select_layers(_sites_from_pattern(model, site, module_pattern, root, stack), layers)
    # the modules a profiling run may reach: a head outside the base model never runs (an LM head alone may be
    # quantized); output effects, which read the head, check the whole model
    refuse_dynamic_quantization(getattr(model, "base_model", model), type(model).__name__)
    root_name = _qualified(model, root) if root is not model else ""
    prefix, blocks = find_blocks(root, site=site)
    prefix = _join(root_name, prefix)
    sites = []
    # an encoder-decoder's stacks may differ in depth: "the model has N layers" named the other one's
    described = f"its {stack} stack has {len(blocks)} layers" if stack else None
    for layer in block_indices(layers, len(blocks), described):
        block, block_name = blocks[layer], _join(prefix, str(layer))
        if site == "residual":
            _check_block_is_called(block, block_name)
            _check_block_mixes_tokens(model, block, block_name, prefix)
            config = getattr(model, "config", None)
            width = hidden_size(stack_config(config, stack)) if config is not None else None
            sites.append(Site(layer, block_name, block, width or _hidden_size(model, stack), "output"))
        else:
            sites.append(_mlp_site(model, layer, block, block_name, stack))
    _check_distinct(sites)
    return sites


def readable_sites(model: nn.Module, site: str = "mlp", stack: str | None = None
                   ) -> tuple[list[Site], dict[int, UnreadExpertsError]]:
    """The sites of every block, except blocks whose experts hf_txray does not read (Llama 4's MoE blocks, beside
    its dense blocks, which pruning and ablation edit), returned with their refusal. Any other refusal of any block,
    and the checks across blocks (a module shared by two blocks), refuse the whole model, as :func:`find_sites`.
    """
    try:
        return find_sites(model, site, None, stack), {}
    except UnreadExpertsError as whole:
        count = len(find_blocks(resolve_stack(model, stack)[1])[1])
        found, refused = [], {}
        for layer in range(count):
            try:
                found += find_sites(model, site, None, stack, layers=layer)
            except UnreadExpertsError as err:
                refused[layer] = err
        if not found:
            raise whole from None
        _check_distinct(found)
        return found, refused


def _check_block_is_called(block: nn.Module, block_name: str) -> None:
    """Refuse a residual site on a "block" that is a list of layers (Funnel's ``encoder.blocks``): a ModuleList has
    no forward, so its hook would never fire (it was reported as "not called" after the first batch)."""
    if isinstance(block, (nn.ModuleList, nn.ModuleDict)):
        raise ModelError(
            f"The blocks of this model ({block_name!r}, a {type(block).__name__}) are lists of layers (as Funnel's), "
            "which are never called themselves, so their outputs cannot be read. Name one layer inside each with "
            "`module_pattern` (layers that see every input position: Funnel's later blocks pool positions away).")


def _check_block_mixes_tokens(model: nn.Module, block: nn.Module, block_name: str, blocks_name: str) -> None:
    """Refuse a residual site on a "block" without a token mixer: XLM and FlauBERT keep their layers' parts in
    parallel lists (``attentions``, ``ffns``, ``layer_norm2``), the largest is ``ffns``, and its output is the MLP's,
    before the residual sum and the norm (98% of credits on other neurons than the block output's)."""
    if any(any(token in part.lower() for token in TOKEN_MIXER_NAME_PARTS)
           for name, _ in block.named_modules() for part in name.split(".")):
        return
    parent_name, _, list_name = blocks_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    blocks = parent.get_submodule(list_name)
    if not any(isinstance(other, nn.ModuleList) and other is not blocks and len(other) == len(blocks)
               for other in parent.children()):
        return  # a block of its own (LFM2's convolution blocks): its output is the residual stream
    raise ModelError(
        f"site='residual' reads the output of each block, but {block_name!r} ({type(block).__name__}), the largest "
        f"list of identical modules of {type(model).__name__}, holds no attention or other token mixer: the model "
        "keeps its layers' parts in separate lists (as XLM and FlauBERT do), so that module's output is not the "
        "residual stream. Pass `module_pattern`, a regex matching the modules whose output is the residual stream "
        "(e.g. r'layer_norm2\\.\\d+'), or use site='mlp'.")


def _check_distinct(sites: Sequence[Site]) -> None:
    seen: dict[int, str] = {}
    for site in sites:
        if id(site.module) in seen:
            raise ModelError(
                f"{site.name!r} and {seen[id(site.module)]!r} are the same module (shared layers, as in ALBERT): its "
                "hook would fire once per use and mix layers. Shared-layer models are not supported."
            )
        seen[id(site.module)] = site.name


def check_one_kind(sites: Sequence[Site]) -> None:
    """Refuse a selection that mixes mixture-of-experts and dense layers, or layers of different widths: a profile
    numbers the neurons of every layer alike (``expert E unit U`` in MoE layers)."""
    kinds: dict[str, list[int]] = {}
    for site in sites:
        kinds.setdefault("mixture-of-experts" if site.capture == "experts" else "dense", []).append(site.layer)
    if len(kinds) > 1:
        raise ConfigurationError(
            f"Layers {kinds['mixture-of-experts']} are mixture-of-experts layers and {kinds['dense']} dense ones: a "
            "profile holds layers of one kind (their neurons are numbered differently). Pass `layers=` of one kind.")
    widths: dict[int, list[int]] = {}
    for site in sites:
        widths.setdefault(site.width, []).append(site.layer)
    if len(widths) > 1:
        described = ", ".join(f"{width} (layers {layers})" for width, layers in sorted(widths.items()))
        raise ConfigurationError(f"Hooked layers have different widths, {described}: pass `layers=` of one width.")


def require_dense(sites: Sequence[Site], what: str, dense_layers: Sequence[int] = ()) -> None:
    """Refuse `what` (pruning, ablation, probing...) on mixture-of-experts sites, whose units have no linear
    layer input to mask or read; `dense_layers` (a model mixing both kinds) are named as the ones that work."""
    moe = [s.name for s in sites if s.capture == "experts"]
    if moe:
        dense = (f" Layers {list(dense_layers)} of this model are dense: those are supported (profile them with "
                 f"analyze(layers={list(dense_layers)})).") if dense_layers else ""
        raise ModelError(
            f"{what} is not supported for mixture-of-experts layers ({moe[0]}...): their units live inside fused "
            "experts, with no per-unit input to mask or read. Profile them with analyze(); probing and attribution can "
            "read these blocks' outputs with site='residual'."
            f"{dense}"
        )


def select_layers(sites: Sequence[Site], layers: str | int | Sequence[int]) -> list[Site]:
    """Keep the sites of the requested layers: ``"all"``, an int or a list of block indices; negative indices count
    from the last hooked block (``-1``: the model's last block, or the last one a `module_pattern` matched).

    Raises:
        ConfigurationError: an index out of range, or a block without a site (one a `module_pattern` did not match).
    """
    if parse_layers(layers) == "all":
        return list(sites)
    by_layer = {site.layer: site for site in sites}
    count = max(by_layer) + 1 if by_layer else 0
    hooked = None if len(by_layer) == count else f"module_pattern matched the blocks {sorted(by_layer)}"
    chosen = []
    for index in block_indices(layers, count, hooked):
        if index not in by_layer:
            raise ConfigurationError(
                f"Layer {index} has no site: {hooked}. Pass layers among them, or a pattern that matches that block.")
        chosen.append(by_layer[index])
    return chosen


def block_indices(layers: str | int | Sequence[int], count: int, hooked: str | None = None) -> list[int]:
    """The sorted block indices `layers` names among `count` blocks (negative ones count from the end).

    Raises:
        ConfigurationError: an index out of range (`hooked` describes the blocks when they are not all of them), or
            two naming one block (``[1, -1]`` of 2 blocks).
    """
    wanted = parse_layers(layers)
    if wanted == "all":
        return list(range(count))
    for index in wanted:
        if not -count <= index < count:
            raise ConfigurationError(f"Layer {index!r} is out of range: {hooked or f'the model has {count} layers'} "
                                     f"(0..{count - 1}, or negative from the end).")
    blocks = [int(index) % count for index in wanted]
    refuse_same_block(wanted, blocks, count)  # [1, -1] of 2 blocks was read as [1] without a word
    return sorted(blocks)


def check_unchunked(model: nn.Module, sites: Sequence[Site]) -> None:
    """Refuse reading sites inside a block that runs its feed-forward part in chunks of positions
    (``chunk_size_feed_forward`` > 0, which BERT-style layers copy from the config when built): the MLP then runs once
    per chunk, so its modules see a few positions per call, not the input's grid (a block's own output, the
    residual site, is whole). Chunking saves memory and changes no result; masking works through it.

    Raises:
        ModelError: naming the chunking module, its chunk size and how to turn it off; before any forward pass.
    """
    chunked = [(name, size) for name, module in model.named_modules()
               if isinstance(size := getattr(module, "chunk_size_feed_forward", 0), int) and size > 0]
    for site in sites:
        for name, size in chunked:
            if site.name.startswith(f"{name}." if name else ""):
                raise ModelError(
                    f"{site.name!r} lies in {name or type(model).__name__!r}, which runs its feed-forward part in "
                    f"chunks of {size} positions (chunk_size_feed_forward={size}): that module sees {size} positions "
                    "per call, several calls per forward pass, so its activations cannot be read per input position. "
                    "Chunking saves memory and changes no result: turn it off, by loading with "
                    "from_pretrained(..., chunk_size_feed_forward=0), or by setting chunk_size_feed_forward = 0 on "
                    "every module of the loaded model that has it (each layer copied the config's value when built). "
                    "site='residual', the blocks' outputs, is read whole.")


def check_hooked_rows(name: str, shape: Sequence[int], grid: tuple[int, int]) -> None:
    """Refuse activations that do not hold one row per input position, batch-major: a model that shortens the
    sequence inside its stack (CANINE's downsampling, Funnel's pooling) or runs it sequence-first (XLNet, FSMT) would
    have its rows credited to the wrong tokens.

    Args:
        name (`str`): the site, for messages.
        shape (`Sequence[int]`): the hooked activation's shape, ``(..., width)``.
        grid (`tuple[int, int]`): ``(batch, sequence)`` of the input the model ran.

    Raises:
        ModelError: naming the site and both counts, or the sequence-first layout.
    """
    rows, expected = math.prod(shape[:-1]), grid[0] * grid[1]
    if len(shape) >= 3 and tuple(shape[:2]) == (grid[1], grid[0]) != tuple(grid):
        # (sequence, batch, width): flattened as batch-major, 82-98% of XLNet's and FSMT's credits went to other tokens
        raise ModelError(
            f"{name!r} received activations of shape {tuple(shape)} for an input of {grid[0]} texts x {grid[1]} "
            "positions: the model runs its layers sequence-first (time-major, as XLNet and FSMT do), and hf_txray "
            "reads activations batch-first, so its rows would be credited to other tokens. This architecture is not "
            "supported.")
    if rows != expected:
        raise ModelError(
            f"{name!r} received {rows} positions for an input of {expected} (batch x sequence): the model changes the "
            "number of positions inside its layers (downsampling, pooling or character blocks, as in CANINE or Funnel; "
            "padding to an attention window, as Longformer; extra streams or tokens, as ProphetNet's n-gram streams, "
            "PegasusX's global tokens or Gemma3n's AltUp copies), so its activations cannot be credited to input tokens. This architecture is not supported; name modules "
            "that see every input position with `module_pattern`.")


def check_hooked_width(site: Site, shape: Sequence[int]) -> None:
    """Refuse activations of another width than the site's neuron count: a layer's winners are numbered from
    ``layer * width``, so a wider activation credited its units past the width to the next layer's neurons.

    The width of a `module_pattern` match that is not a linear layer, with ``site='residual'``, is the model's hidden
    size: a match that outputs another width (an MLP's activation function, 44 units against a hidden size of 32 in a
    tiny Llama) credited 96 of its 553 positions to the next layer, without an error while the last layer's winners
    stayed within the width.

    Raises:
        ModelError: naming the site and both widths.
    """
    if shape[-1] != site.width:
        raise ModelError(
            f"{site.name!r} gave activations {shape[-1]} units wide, but its layer was numbered as {site.width} "
            f"neurons ({'the hidden size' if site.capture == 'output' else 'its input width'}), so its units "
            "cannot be numbered. With site='residual', a module_pattern must match modules whose output has the "
            "hidden size (the blocks, or linear layers, whose output width is read from their weights); to read an "
            "MLP's units, use site='mlp' with a pattern naming the linear layer that takes them as input.")


class WinnerRecorder:
    """Hooks (a :class:`~hf_txray.hooks.Trace`) that record, for each site, the top-k neurons of every real position.

    Hooks do nothing unless :attr:`enabled` is set, so they can stay registered during training without cost and
    without counting the forward recomputed by gradient checkpointing. Before each recorded forward pass the caller
    sets :attr:`positions`, the flat (batch x sequence) indices of the positions to credit, and calls :meth:`reset`;
    each hook reduces its activations on the device to ``(values, indices)`` of shape ``(len(positions), top_k)``.
    A site that fires twice in one forward pass is refused by the trace.
    """

    def __init__(self, sites: Sequence[Site], top_k: int = 1):
        self.sites = list(sites)
        self.top_k = top_k
        self.positions: torch.Tensor | None = None
        self.grid: tuple[int, int] | None = None  # (batch, sequence) of every hooked activation; None: unchecked
        self.values: list[torch.Tensor | None] = [None] * len(self.sites)
        self.indices: list[torch.Tensor | None] = [None] * len(self.sites)
        self.trace = Trace(self.sites, read=self._read)
        self.trace.enabled = False
        self._argmax = ArgmaxThreads()  # its threads start at the first large top-1 and stop at detach

    @property
    def enabled(self) -> bool:
        return self.trace.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.trace.enabled = value

    def attach(self) -> "WinnerRecorder":
        self.trace.attach()
        return self

    def detach(self) -> None:
        self.trace.remove()
        self._argmax.close()

    def reset(self) -> None:
        self.values = [None] * len(self.sites)
        self.indices = [None] * len(self.sites)
        self._runs = None  # the positions may have been rewritten in place since the last forward pass
        self.trace.reset()

    def _read(self, slot: int, value: torch.Tensor | ExpertsCall) -> None:
        if isinstance(value, ExpertsCall):
            self._record_experts(slot, self.sites[slot].module, value)
        else:
            self._record(slot, value)

    @torch.no_grad()
    def _record_experts(self, slot: int, experts: nn.Module, call: ExpertsCall) -> None:
        site = self.sites[slot]
        layout = site.experts
        hidden = call.hidden.detach().reshape(-1, call.hidden.shape[-1])
        self._check_rows(slot, call.hidden.shape)
        top_k_index = call.top_k_index.reshape(hidden.shape[0], -1)
        shared = None if call.shared is None else call.shared.reshape(-1, call.shared.shape[-1])
        if layout.shared is not None and shared is None:  # the trace reads a call once both have run
            raise ModelError(f"The shared expert of {site.name!r} was not read with its routed experts: profile "
                             "site='residual'.")
        reached = top_k_index.shape[1] * layout.width + (0 if shared is None else shared.shape[-1])
        if self.top_k > reached:  # the config's num_experts_per_tok (checked before the run) is not what routed
            raise ConfigurationError(
                f"top_k={self.top_k} exceeds the {reached} units a token reaches in {site.name!r}: its router chose "
                f"{top_k_index.shape[1]} experts per token ({layout.width} units each, plus shared experts), not the "
                "config's num_experts_per_tok (a router's top_k changed after the model was built?). Choose "
                f"top_k <= {reached}, or keep the config and the routers' top_k equal.")
        if self.positions is not None:  # reduce only the creditable tokens, on the device the experts run on
            positions = self.positions.to(hidden.device)
            hidden, top_k_index = hidden.index_select(0, positions), top_k_index.index_select(0, positions)
            shared = shared.index_select(0, positions) if shared is not None else None
        with weights_in_memory(experts, site.name):
            routed = expert_intermediates(experts, hidden, top_k_index)
        values, indices = moe_top_k(layout, routed, top_k_index, shared, self.top_k)
        self._store(slot, values, indices)

    @torch.no_grad()
    def _record(self, slot: int, activations: torch.Tensor) -> None:
        flat = activations.detach().reshape(-1, activations.shape[-1])
        self._check_rows(slot, activations.shape)
        check_hooked_width(self.sites[slot], activations.shape)
        # Reduce before selecting rows: top-k reads the activations once and leaves a tiny tensor to index.
        # A dispatched model runs each block on its own device: select there (a no-op copy when it is the same).
        positions = None if self.positions is None else self.positions.to(flat.device)
        values, indices = top_k_per_row(flat, self.top_k, positions, self._argmax, self._runs_of(positions, flat))
        self._store(slot, values, indices)

    def _check_rows(self, slot: int, shape: Sequence[int]) -> None:
        if self.grid is not None:
            check_hooked_rows(self.sites[slot].name, shape, self.grid)

    def _runs_of(self, positions: torch.Tensor | None, flat: torch.Tensor) -> Runs | None:
        """The creditable rows as runs of consecutive rows (padding and special tokens left out of a CPU top-1),
        computed once per forward pass, at its first hooked layer: every layer's activations have the same rows.
        :meth:`reset` and setting :attr:`positions` start a new pass, so positions rewritten in place between
        two passes (even through a numpy view, which leaves the tensor's version as it was) are read again; comparing
        them at every layer instead cost a fifth of the top-1 of a narrow model."""
        if positions is None or self.top_k != 1 or flat.device.type != "cpu":
            return None
        cached = self._runs
        if cached is None or cached[0] != len(flat):
            self._runs = cached = (len(flat), contiguous_runs(positions.numpy(), *flat.shape))
        return cached[1]

    @property
    def positions(self) -> torch.Tensor | None:
        """The flat (batch x sequence) indices of the positions to credit in the next forward pass."""
        return self._positions

    @positions.setter
    def positions(self, value: torch.Tensor | None) -> None:
        self._positions = value
        # (activation rows, the positions' runs), set at the first top-1 of a forward pass
        self._runs: tuple[int, Runs | None] | None = None

    def check_complete(self) -> None:
        """Raise when a hooked module did not run in the forward pass (a pattern naming modules outside the stack
        or the body that runs): its layer would silently credit nothing."""
        waiting = [site.name for site in self.trace.waiting_for_shared()]
        if waiting:
            raise ModelError(
                f"The routed experts of {waiting[0]!r} ran, but its shared expert did not in the same forward pass, "
                "so their units cannot compete: profile site='residual'.")
        missing = [site.name for site in self.trace.missing()]
        if missing:
            raise ModelError(
                f"{missing[0]!r} was not called in the profiled forward pass: it lies outside the part that runs (the "
                "base model, or the chosen stack of an encoder-decoder), or the model uses its weights without "
                "calling it (Bloom's slow_but_exact), or it calls the module's forward method directly, past its hooks "
                "(SqueezeBERT's blocks). Name modules that run with `module_pattern`, use "
                "site='residual', or choose the other `stack` of an encoder-decoder."
            )

    def _store(self, slot: int, values: torch.Tensor, indices: torch.Tensor) -> None:
        self.values[slot], self.indices[slot] = values, indices

    def __enter__(self) -> "WinnerRecorder":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()
