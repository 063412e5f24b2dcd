"""What a neuron *writes*: the vocabulary tokens its output pushes up or down through the unembedding.

An MLP neuron adds ``a * W_down[:, j]`` to the residual stream (``a`` its activation, ``j`` its index). Read
through the model's final norm and its unembedding ``W_U``, that column gives one logit per vocabulary token:
``W_U (g * W_down[:, j])``; the highest are the tokens the neuron *promotes*, the lowest those it *suppresses*
(Geva, Caciularu, Wang, Goldberg, "Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in the
Vocabulary Space", EMNLP 2022).

Approximations, as in that paper: the direct path only (later blocks are ignored); of the final norm (and of a
norm on the MLP output before the residual sum, such as Gemma 2/3's ``post_feedforward_layernorm``, found by data
flow: :func:`post_mlp_chains`; in Gemma 4's MoE blocks the dense MLP's and the experts' own norms, then the norm of
their sum) only the elementwise
scale ``g`` is applied, no centring and no division by the norm of the residual stream (those depend on
the whole residual, not on the neuron); biases are dropped (they are the same for every neuron). The scale is
measured by running the norm module itself on probe vectors, so variants such as Gemma's ``(1 + weight)`` are read
as the model computes them. Scalar factors are applied where the model applies them, measured by running it (not
read from config names): one on the MLP output before the residual sum (:func:`residual_gains`: Granite's and
HyperCLOVA X's ``residual_multiplier``, MiniCPM's ``scale_depth / sqrt(num_hidden_layers)``), those by which later
blocks pass the residual stream on (:func:`residual_passthrough`: Gemma 4's ``layer_scalar``, Beam's depth-scaled
residual), and one between the
final norm (an MLM head's last layer) and the logits (:func:`logit_scale`: Granite's ``1 / logits_scaling``, Cohere's ``logit_scale``,
MiniCPM's ``dim_model_base / hidden_size``, T5's ``d_model ** -0.5``); Gemma 2's logit soft-capping is read at 0,
where its slope is 1, and logits transformed otherwise are refused. A MoE router's weight for the expert (it
depends on the input) is not applied; a factor the MoE module applies to its routed experts alone (Laguna's
``routed_scaling_factor``) is not applied to its shared experts (:func:`shared_expert_gains`).

MLM heads (BERT, RoBERTa, DistilBERT, ELECTRA's generator) transform the hidden state before the decoder: ``dense ->
activation -> LayerNorm``. The linear steps are applied (the dense weight, the LayerNorm's scale, in the order the
model runs them, read from one two-token forward pass); the activation function between them is treated as the
identity, so the reading is linear. The final norm is the one the stack runs after its last block (read from that
forward pass too: OPT registers its ``final_layer_norm`` before its layers); a post-LN model without one is read without it, and a projection from
the residual width to the embeddings' (OPT-350m's ``project_out``) follows it.

Mixture-of-experts layers with fused experts (transformers 5: ``experts.down_proj`` of shape
``(experts, hidden, intermediate)``) number their neurons ``expert * intermediate + unit``.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .counts import check_count, refuse_repeats
from .errors import ConfigurationError, ModelError
from .distributed import input_device, refuse_offloaded
from .forward import check_no_forward_adapters, on_own_default_device, own_forward, own_precision, weights_dtype
from .hooks import HookSpec, call_order, module_hooks, module_tensors
from .indices import whole_numbers
from .architectures import hidden_size
from .logging import get_logger
from .modes import enter_eval
from .sites import (Site, block_indices, dynamically_quantized, find_blocks, find_sites, float_rows,
                    is_encoder_decoder, linear_dims, linear_weight, model_inside, named_linears,
                    refuse_dynamic_quantization, resolve_stack, text_config, unwrap_peft)

logger = get_logger(__name__)

OUTPUT_COLUMNS = ["layer", "neuron", "direction", "rank", "token_id", "token", "logit"]
DIRECTIONS = ("promoted", "suppressed")
_CHUNK = 256  # neurons per matrix product in the batched pass: bounds memory at vocab x 256 floats


@dataclass
class Readout:
    """The maps from the residual stream to the logits, applied in order: linear matrices and norm scales.

    Args:
        steps (`list[tuple[str, torch.Tensor]]`): ``("linear", W)`` with ``W`` of shape ``(out, in)`` or
            ``("scale", g)`` with ``g`` of shape ``(hidden,)``.
        unembedding (`torch.Tensor`): ``(vocab, hidden)``.
        names (`list[str]`): the modules read, for messages and docs.
    """

    steps: list[tuple[str, torch.Tensor]]
    unembedding: torch.Tensor
    names: list[str]

    @torch.no_grad()
    def logits(self, directions: torch.Tensor) -> torch.Tensor:
        """``(hidden, n)`` residual directions -> ``(vocab, n)`` logits, in float32 even inside a ``torch.autocast``
        block (which ran the products in bfloat16: other logits, and a bare TypeError where numpy read them); a
        low-precision unembedding is read in float32 blocks of rows (:func:`~hf_txray.sites.float_rows`)."""
        with own_precision():
            x = directions.float()
            for kind, value in self.steps:
                value = value.to(device=x.device, dtype=torch.float32)
                x = value @ x if kind == "linear" else value[:, None] * x
            logits = x.new_empty(self.unembedding.shape[0], x.shape[1])
            for start, rows in float_rows(self.unembedding, x.device):  # not all of a bf16 head in float32 at once
                torch.matmul(rows, x, out=logits[start: start + rows.shape[0]])
            return logits


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower() and isinstance(getattr(module, "weight", None), torch.Tensor)


@torch.no_grad()
def norm_scale(norm: nn.Module, hidden: int) -> torch.Tensor:
    """The elementwise scale a norm module applies after normalising, measured by running it.

    Probes ``x = c * s`` with ``s`` of ±1 values (mean 0, so centring and bias cancel in ``N(x) - N(-x)``) and a
    large ``c`` in full precision (so ``eps`` is negligible). With an odd width one entry of ``s`` is 0 (the mean
    stays 0); a second probe, rolled by one, measures that entry.
    """
    weight = norm.weight
    # c = 1000 makes eps negligible; half precision keeps c = 1 so that sums of squares cannot overflow.
    c = 1e3 if weight.dtype in (torch.float32, torch.float64) else 1.0
    signs = torch.ones(hidden, dtype=torch.float32)
    signs[1::2] = -1
    if hidden % 2:
        signs[-1] = 0
    scale = torch.empty(hidden, dtype=torch.float32)
    for probe in (signs.roll(1), signs) if hidden % 2 else (signs,):
        x = (c * probe).to(device=weight.device, dtype=weight.dtype)[None, None]
        diff = (norm(x) - norm(-x)).float().reshape(-1).cpu()
        nonzero = probe != 0
        # N(x) = g * x / rms(x) and rms(x) = c * sqrt(m / n) with m non-zero entries: undo that factor.
        factor = float(np.sqrt(int(nonzero.sum()) / hidden))
        scale[nonzero] = diff[nonzero] / (2 * probe[nonzero]) * factor
    return scale


def _output_embedding(model: nn.Module) -> nn.Module:
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if head is None or not isinstance(getattr(head, "weight", None), torch.Tensor):
        raise ModelError(
            f"{type(model).__name__} has no LM head (get_output_embeddings() is None): output effects read a "
            "neuron's down-projection column through the unembedding, so they need a causal LM or masked-LM model "
            "(e.g. AutoModelForCausalLM / AutoModelForMaskedLM instead of AutoModel)."
        )
    return head


def _qualified_name(model: nn.Module, target: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is target)


def _head_candidates(model: nn.Module, head: nn.Module, hidden: int) -> list[tuple[str, nn.Module]]:
    """The linears into the decoder's `hidden` width and the norms an LM head may apply before its decoder: those
    outside the base model (BERT's ``cls.predictions.transform``, ELECTRA's ``generator_predictions``, DistilBERT's
    ``vocab_transform``), or the model's direct children when it has no base model of its own (T5)."""
    inner = unwrap_peft(model)
    base = getattr(inner, "base_model", None)
    if base is not None and base is not inner:
        skip = {id(m) for m in base.modules()}
        candidates = [(n, m) for n, m in model.named_modules() if n and id(m) not in skip and m is not head]
    else:
        candidates = [(n, m) for n, m in model.named_children() if m is not head]
    # a PEFT wrapper is the layer (its base layer and LoRA's matrices inside it are not steps of their own)
    linears = {id(m) for _, m, (_, out) in named_linears(model) if out == hidden}
    return [(n, m) for n, m in candidates if id(m) in linears or _is_norm(m)]


def _head_steps(candidates: list[tuple[str, nn.Module]], order: dict[int, int], width: int, hidden: int
                ) -> list[tuple[str, nn.Module, str]]:
    """The head's layers the forward pass `order` ran, in that order (ELECTRA registers its head's LayerNorm before
    its dense layer): from the residual `width` to the decoder's `hidden` (ELECTRA's generator head narrows 256 ->
    128), then hidden -> hidden."""
    steps = []
    for name, module in sorted((c for c in candidates if id(c[1]) in order), key=lambda c: order[id(c[1])]):
        dims = linear_dims(module)
        if dims in ((width, hidden), (hidden, hidden)):
            steps.append(("linear", module, name))
            width = hidden
        elif _is_norm(module) and module.weight.shape == (width,):
            steps.append(("scale", module, name))
    return steps


@torch.no_grad()
def _call_order(model: nn.Module, modules: Sequence[nn.Module]) -> dict[int, int]:
    """The position of each of `modules` in the order a two-token forward pass of `model` calls them (by ``id``);
    modules it does not call are absent. Empty when there is nothing to order."""
    if not modules:
        return {}
    with call_order(modules) as order:
        _probe_forward(model, "read the order of its final norm and LM head's layers")
    return order


@torch.no_grad()
def _probe_forward(model: nn.Module, purpose: str, rows: int = 1) -> Any:
    """Run `model` on two tokens (`rows` identical rows) in eval mode (no dropout, no gradient checkpointing), for
    hooks to watch; returns the model's output."""
    restore_modes = enter_eval(model)
    try:
        ids = torch.tensor([[1, 2]] * rows, device=input_device(model))
        # in the weights' dtype, not an autocast's (the scales measured on it are compared at that precision)
        with own_precision(), own_forward(model):
            return model(input_ids=ids, **({"decoder_input_ids": ids} if is_encoder_decoder(model) else {}))
    except Exception as err:  # noqa: BLE001 - any failure of the probe pass is the model's: say so
        raise ModelError(
            f"Output effects run {type(model).__name__} on two tokens to {purpose}, and that forward pass failed "
            f"({type(err).__name__}: {err}). Profile without output_effects.") from err
    finally:
        restore_modes()


def _body_norms(model: nn.Module, blocks: nn.ModuleList, hidden: int) -> list[tuple[str, nn.Module]]:
    """The norms of the base model outside the blocks (an LM head's own norm is a head step): the final norm is
    among them (Llama ``model.norm``, GPT-2 ``ln_f``, OPT's ``final_layer_norm``, RoBERTa-PreLayerNorm's
    ``LayerNorm`` beside its encoder), beside the embeddings' norms."""
    base = getattr(unwrap_peft(model), "base_model", None)
    body = {id(m) for m in (base if base is not None else model).modules()}
    inside = {id(m) for m in blocks.modules()}
    return [(name, module) for name, module in model.named_modules()
            if id(module) in body and id(module) not in inside and _is_norm(module)
            and module.weight.shape == (hidden,)]


def _weightless_norms(model: nn.Module, blocks: nn.ModuleList) -> list[tuple[str, nn.Module]]:
    """The norms of the base model outside the blocks that have no weight (OLMo's ``model.norm``, a LayerNorm without
    elementwise affine): no scale to apply, but the logits are read from their output (:func:`logit_scale`)."""
    base = getattr(unwrap_peft(model), "base_model", None)
    body = {id(m) for m in (base if base is not None else model).modules()}
    inside = {id(m) for m in blocks.modules()}
    return [(name, module) for name, module in model.named_modules()
            if id(module) in body and id(module) not in inside and "norm" in type(module).__name__.lower()
            and not isinstance(getattr(module, "weight", None), torch.Tensor)]


def _final_norm(norms: list[tuple[str, nn.Module]], blocks: nn.ModuleList, order: dict[int, int]
                ) -> tuple[str, nn.Module] | None:
    """Of the body's `norms`, the one run first after the last block in the forward pass `order` (registration
    order is not the order of the calls: OPT registers its ``final_layer_norm`` before its ``layers``); None without
    one (a post-LN model: every block ends with its own norm)."""
    last = order.get(id(blocks[-1]), -1)
    after = [(order[id(module)], name, module) for name, module in norms if order.get(id(module), -1) > last]
    return min(after, key=lambda found: found[0])[1:] if after else None


def _stack_projection(model: nn.Module, blocks_name: str, residual: int, hidden: int
                      ) -> tuple[str, nn.Module] | None:
    """A linear map the blocks' parent applies after its final norm, from the residual width to the unembedding's
    (OPT-350m's ``project_out``, 1024 -> 512), or None."""
    parent_name = blocks_name.rpartition(".")[0]
    parent = model.get_submodule(parent_name) if parent_name else model
    module = getattr(parent, "project_out", None)
    if linear_dims(module) == (residual, hidden):
        return f"{parent_name}.project_out".strip("."), module
    return None


def output_stack(model: nn.Module, stack: str | None = None) -> str | None:
    """The stack whose neurons are read: ``"decoder"`` for encoder-decoders (also when `stack` is None), None for
    models with one stack.

    Raises:
        ConfigurationError: `stack="encoder"` of an encoder-decoder: its neurons reach the LM head only through
            cross-attention, so they have no direct vocabulary reading.
    """
    if stack == "encoder" and is_encoder_decoder(model):
        raise ConfigurationError(
            "Output effects of encoder neurons are not defined: in an encoder-decoder the encoder reaches the LM "
            "head only through cross-attention, not through the residual stream the unembedding reads. Profile "
            "with stack='decoder', or without output_effects.")
    return (stack or "decoder") if is_encoder_decoder(model) else stack


def _blocks(model: nn.Module, stack: str | None) -> tuple[str, nn.ModuleList]:
    """Qualified name (in `model`) and list of the blocks whose neurons are read."""
    _, root = resolve_stack(model, output_stack(model, stack))
    name, blocks = find_blocks(root)
    root_name = _qualified_name(model, root) if root is not model else ""
    return f"{root_name}.{name}".strip("."), blocks


@torch.no_grad()
def readout(model: nn.Module, stack: str | None = None) -> Readout:
    """The final norm's scale, any LM-head transform, and the unembedding of `model`.

    Raises:
        ModelError: the model has no LM head, or is a PEFT X-LoRA or aLoRA model
            (:func:`~hf_txray.forward.check_no_forward_adapters`).
    """
    check_no_forward_adapters(model)  # X-LoRA's, aLoRA's layers run alone: every adapter at full weight, none
    head = _output_embedding(model)
    unembedding = linear_weight(head) if linear_dims(head) is not None else head.weight.detach()
    hidden = int(unembedding.shape[1])
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and unembedding.shape[0] != vocab:
        raise ModelError(
            f"{type(model).__name__}.get_output_embeddings() returns {_qualified_name(model, head)} "
            f"({tuple(unembedding.shape)}), not a map to its {vocab}-token vocabulary (DeBERTa with legacy=False "
            "returns its head's dense layer): output effects cannot be read for this model. Profile without "
            "output_effects.")
    blocks_name, blocks = _blocks(model, stack)
    steps: list[tuple[str, torch.Tensor]] = []
    names: list[str] = []
    residual = (hidden_size(text_config(model.config)) if hasattr(model, "config") else None) or hidden
    norms, candidates = _body_norms(model, blocks, residual), _head_candidates(model, head, hidden)
    # one two-token forward pass gives the order of the final norm and of the head's layers
    weightless = _weightless_norms(model, blocks)
    order = _call_order(model, [blocks[-1]] + [m for _, m in norms + candidates + weightless]) \
        if norms or candidates or weightless else {}
    final = _final_norm(norms, blocks, order)
    read: list[nn.Module] = [head]
    if final is not None:
        read.append(final[1])
        steps.append(("scale", norm_scale(final[1], residual)))
        names.append(final[0])
    width = residual
    projection = _stack_projection(model, blocks_name, residual, hidden) if residual != hidden else None
    if projection is not None:
        steps.append(("linear", linear_weight(projection[1])))
        names.append(projection[0])
        read.append(projection[1])
        width = hidden
    head_steps = _head_steps(candidates, order, width, hidden)
    for kind, module, name in head_steps:
        weight = linear_weight(module) if kind == "linear" else module.weight.detach()
        steps.append((kind, weight if kind == "linear" else norm_scale(module, int(weight.shape[0]))))
        names.append(name)
        read.append(module)
        width = int(weight.shape[0])
    if width != hidden:  # every step read, the chain still does not reach the unembedding's width
        raise ModelError(
            f"{type(model).__name__}'s residual stream is {residual} wide but its unembedding reads {hidden}, and no "
            "projection between them (OPT's project_out, or a linear layer of the LM head) was found: output "
            "effects cannot be read for this model. Profile without output_effects.")
    if head_steps:  # an LM-head transform (an MLM): a scalar between its last layer's output and the logits
        start, after = head_steps[-1][1], []
    else:  # a causal LM, T5: a scalar between the final norm and the logits
        after = steps[1:] if final is not None else steps  # the projection (OPT-350m's project_out), if any
        # from the final norm's output; a norm without weight (OLMo) has no scale, but normalises what it is given
        found = final or _final_norm(weightless, blocks, order)
        start = found[1] if found is not None else blocks[-1]
    scale = logit_scale(model, start, Readout(after, unembedding, []))
    if scale != 1.0:
        steps.append(("scale", torch.full((hidden,), scale)))
        names.append("logit scale")
    names.append(_qualified_name(model, head))
    _warn_initialized_head(model, read)
    return Readout(steps, unembedding, names)


def _first_tensor(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) and value else value


def _with_first(value: Any, tensor: torch.Tensor) -> Any:
    """`value` (a module's output: a tensor, or a tuple or list led by one) with `tensor` in place of its first."""
    if isinstance(value, tuple):
        return (tensor, *value[1:])
    if isinstance(value, list):
        return [tensor, *value[1:]]
    return tensor


def _probe_vector(shape: Sequence[int], size: float, like: torch.Tensor) -> torch.Tensor:
    """A fixed vector of `shape` added to a probe row: alternating signs, magnitudes from 0.5 to 1 times 8x `size`
    (the largest value beside it, at least 1; at most 2048), so that half-precision rounding of the stream does not
    hide the change it makes; in `like`'s dtype and device."""
    signs = torch.ones(tuple(shape), dtype=torch.float32)
    signs.view(-1)[1::2] = -1
    scale = min(8 * max(size, 1.0), 2048.0)
    return (scale * signs * torch.linspace(0.5, 1.0, signs.numel()).reshape(signs.shape)).to(like)


def _keep_first_output(store: dict[int, torch.Tensor], key: int) -> Callable:
    """A forward hook keeping a copy of the module's first output tensor in ``store[key]`` at its first call (an empty
    tensor when it is called twice or returns none: not measured)."""
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        first = _first_tensor(output)
        store[key] = first.detach().clone() if key not in store and isinstance(first, torch.Tensor) \
            else torch.empty(0)
    return hook


def _collect_outputs(seen: list[torch.Tensor]) -> Callable:
    """A forward hook appending the module's first output tensor to `seen` at every call."""
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        first = _first_tensor(output)
        if isinstance(first, torch.Tensor):
            seen.append(first.detach())
    return hook


def _proportion(y: torch.Tensor, x: torch.Tensor, dtypes: Sequence[torch.dtype]) -> float | None:
    """The scalar ``m`` with ``y = m * x`` (least squares), or None where `y` is not proportional to `x` within
    the precision of the lowest of `dtypes` (those the model computed them in); 1.0 where ``m`` is that close to 1."""
    full = all(dtype in (torch.float32, torch.float64) for dtype in dtypes)
    tol, same = (1e-3, 1e-5) if full else (5e-2, 4e-3)  # `same`: within the rounding of one value of that precision
    y, x = y.detach().double().cpu().reshape(-1), x.detach().double().cpu().reshape(-1)  # may be on two devices
    if not torch.isfinite(y).all() or not torch.isfinite(x).all() or float(x @ x) == 0.0:
        return None
    m = float(y @ x) / float(x @ x)
    if float((y - m * x).norm()) > tol * max(float(y.norm()), abs(m) * float(x.norm())):
        return None
    return 1.0 if abs(m - 1.0) <= same else m


@torch.no_grad()
def logit_scale(model: nn.Module, start: nn.Module, chain: Readout) -> float:
    """The scalar by which `model` multiplies its logits between the output of `start` (the final norm, or the last
    block without one; an MLM head's last layer) and its returned logits, beyond `chain` (the linear maps from there
    to the logits):
    Granite's ``1 / logits_scaling``, Cohere's ``logit_scale``, MiniCPM's ``dim_model_base / hidden_size``,
    T5's ``d_model ** -0.5`` (tied embeddings); a soft-capping (Gemma 2) is read
    at 0, where its slope is 1. Measured, not read from the config: in one forward pass of two rows, `start`'s output
    is replaced by 0 in one and by a small fixed vector ``v`` in the other, and the difference of the logits
    (biases cancel) is compared with ``chain(v)``. In half precision a logit bias (Phi's and GPT-J's LM head bias,
    BART's ``final_logits_bias``) rounds that small difference away: where it is not proportional, it is measured
    once more with ``v`` scaled until ``chain(v)`` is as large as the logits at 0 (so too where the change is lost
    whole: a logit scale is never 0). 1.0 where the model returns no logits.

    Raises:
        ModelError: the logits are not proportional to ``chain(v)``: the model transforms them in a way output
            effects do not read (log-probabilities are named as such).
    """
    dtype = weights_dtype(model) or torch.float32
    measured = _logit_change(model, start, chain, 1.0)
    if measured is None:
        return 1.0
    got, expected, at_zero, dtypes = measured
    _refuse_log_probabilities(model, start, chain, measured, dtype)
    scale = _nonzero(_proportion(got, expected, (dtype, *dtypes)))
    # the logits at 0 hold the biases; a change far below them is lost to their rounding: probe as large as they are
    grow = float(at_zero.abs().max()) / max(float(expected.abs().max()), 1e-30)
    if scale is None and grow > 1.0 and np.isfinite(grow):
        measured = _logit_change(model, start, chain, grow)
        if measured is not None:
            got, expected, _, dtypes = measured
            scale = _nonzero(_proportion(got, expected, (dtype, *dtypes)))
    if scale is None:
        raise ModelError(
            f"{type(model).__name__} transforms its logits after the LM head in a way output effects do not read "
            "(not a scalar factor or a soft-capping): the logit changes they report would be wrong. Profile without "
            "output_effects.")
    return scale


def _refuse_log_probabilities(model: nn.Module, start: nn.Module, chain: Readout,
                              measured: tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.dtype, ...]],
                              dtype: torch.dtype) -> None:
    """Refuse a model whose returned logits are log-probabilities (a head ending in ``log_softmax``): at every
    position of both probe rows (`measured`, :func:`_logit_change`: the output of `start` replaced by 0 and by
    ``v``) ``exp`` sums to 1 over the vocabulary, within the rounding of their precision (bfloat16 rounds a
    log-probability of -10 by up to 0.03), and still does with ``v`` grown until it moves the logits by
    :data:`LOG_PROBABILITY_PROBE` units. Their change is the logits' change less an input-dependent constant per
    position, which no scalar reads: refused in float32 as not proportional, and it passed that check in half
    precision (residual about 1 / sqrt(vocab) of the change, under its 5e-2 tolerance). Raw logits sum so at the
    small probe where their bias is itself a normalised distribution (an output bias set to the log unigram
    frequencies): moved by several units, they no longer do.

    Raises:
        ModelError: every position of the probe rows, the grown one's too, has ``logsumexp`` 0.
    """
    got, expected, at_zero, dtypes = measured
    if not _normalised((at_zero, at_zero + got), (dtype, *dtypes)):
        return
    grow = LOG_PROBABILITY_PROBE / max(float(expected.abs().max()), 1e-30)
    again = _logit_change(model, start, chain, grow) if np.isfinite(grow) else None
    # raw logits where the grown change is read (a change overflowing half precision tells nothing: refused)
    if again is not None and bool(torch.isfinite(again[0]).all()) and \
            not _normalised((again[2] + again[0],), (dtype, *again[3])):
        return
    raise ModelError(
        f"{type(model).__name__} returns log-probabilities (exp of its logits sums to 1 at every position), not "
        "logits: their change is the LM head's change less a constant per position that depends on the input, so no "
        "output effect reads it. Profile without output_effects, or pass the model whose forward returns the LM "
        "head's logits.")


# logit units by which the probe moves the logits to tell log-probabilities from raw logits whose bias is normalised
LOG_PROBABILITY_PROBE = 8.0


def _normalised(rows: Sequence[torch.Tensor], dtypes: Sequence[torch.dtype]) -> bool:
    """Whether ``exp`` of every row of `rows` (``(positions, vocab)``) sums to 1 over the vocabulary, within the
    rounding of `dtypes` (False for a vocabulary of one)."""
    full = all(dtype in (torch.float32, torch.float64) for dtype in dtypes)
    tol = 1e-4 if full else 5e-2
    return rows[0].shape[-1] >= 2 and all(bool((torch.logsumexp(r.double(), -1).abs() <= tol).all()) for r in rows)


def _nonzero(scale: float | None) -> float | None:
    """A measured logit scale, or None for 0: the logits are read from the final norm's output, so no change at all
    means the probe's change was lost to the rounding of larger logits (a large logit bias in bfloat16), not that
    the model multiplies its logits by 0."""
    return None if scale == 0.0 else scale


@torch.no_grad()
def _logit_change(model: nn.Module, start: nn.Module, chain: Readout, size: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.dtype, ...]] | None:
    """One forward pass of two rows with `start`'s output replaced by 0 and by ``v`` (``size * 0.01`` times a fixed
    normal vector): ``(logits(v) - logits(0), chain(v), logits(0), dtypes)``, the first three ``(positions, vocab)``,
    `dtypes` those of the logits and of ``v``; None where the model returns no logits (or `start` no output of the
    two rows).

    Raises:
        ModelError: the logits are not one ``(positions, vocab)`` block per row as ``chain(v)`` is (a wrapper
            returning the last position's alone, or rows and positions flattened together).
    """
    probe: dict[str, torch.Tensor] = {}

    def replace(module: nn.Module, args: tuple, output: Any) -> Any:
        first = _first_tensor(output)
        if not isinstance(first, torch.Tensor) or first.shape[0] != 2 or "v" in probe:
            return output
        g = torch.Generator().manual_seed(0)
        v = (torch.randn(first.shape[1:], generator=g) * (1e-2 * size)).to(device=first.device, dtype=first.dtype)
        probe["v"] = v
        return _with_first(output, torch.stack([torch.zeros_like(v), v]))

    with module_hooks([("post", start, replace)]):
        output = _probe_forward(model, "measure the scale of its logits", rows=2)
    logits = getattr(output, "logits", None)
    if "v" not in probe or not isinstance(logits, torch.Tensor):
        return None
    v = probe["v"]
    expected = chain.logits(v.reshape(-1, v.shape[-1]).T.float()).T.double()  # (positions, vocab)
    if logits.shape[0] != 2 or logits[0].numel() != expected.numel() or logits.shape[-1] != expected.shape[-1]:
        raise ModelError(
            f"{type(model).__name__} returns logits of shape {tuple(logits.shape)} for 2 rows of 2 tokens, whose "
            f"final norm's output reads {tuple(expected.shape)} (positions, vocabulary) per row through its LM head: "
            "they cannot be compared, so the scale the model applies to its logits (Granite's 1 / logits_scaling) "
            "cannot be measured, and output effects read without it would be wrong. Profile without "
            "output_effects, or pass the model whose forward returns one logit per position and vocabulary token.")
    got = (logits[1] - logits[0]).reshape(-1, logits.shape[-1])  # (positions, vocab)
    return got, expected, logits[0].reshape(-1, logits.shape[-1]).double(), (logits.dtype, v.dtype)


def _warn_initialized_head(model: nn.Module, read: Sequence[nn.Module]) -> None:
    """Warn (once per model) about a head that ``from_pretrained`` did not load: a checkpoint without an LM head
    (all-MiniLM-L6-v2 loaded with ``AutoModelForMaskedLM``) gets one initialised at random, with transformers' load
    warning only, and its output effects are random tokens. transformers 5 marks each weight it loaded
    (``_is_hf_initialized``); a model without any mark (built from a config, deep-copied) cannot be told apart. A
    warning, not an error: ``resize_token_embeddings`` of an untied head also leaves a new, unmarked weight whose
    rows are the trained ones. :func:`hf_txray.analyze`, which loads a model itself, refuses a missing head."""
    if model in _WARNED_HEADS or not any(getattr(p, "_is_hf_initialized", False) for p in model.parameters()):
        return
    fresh = sorted({_qualified_name(model, m) for m in read if not _loaded(model, m)})
    if fresh:
        _WARNED_HEADS.add(model)
        source = getattr(getattr(model, "config", None), "name_or_path", None) or "its checkpoint"
        logger.warning(
            "The weights of %s's %s were not loaded from %s: if the checkpoint has no such LM head, transformers "
            "initialised them at random and the output effects read through them are noise. Use a checkpoint trained "
            "with its LM head (a *ForCausalLM or *ForMaskedLM model), or profile without output effects. (A head you "
            "resized or trained yourself is read as it is.)", type(model).__name__, ", ".join(fresh), source)


def _loaded(model: nn.Module, module: nn.Module) -> bool:
    """Whether transformers loaded `module`'s weight (the weights only: biases are not read). A PEFT
    ``modules_to_save`` copy (which drops the mark) is judged by the module it copies, its ``original_module``."""
    original = getattr(module, "original_module", None)
    name = _qualified_name(model, module)
    if original is None and ".modules_to_save." in name:
        try:
            original = model.get_submodule(re.sub(r"\.modules_to_save\.[^.]+", ".original_module", name, count=1))
        except AttributeError:
            original = None
    if isinstance(original, nn.Module):
        return _loaded(model, original)
    weight = getattr(module, "weight", None)
    return not isinstance(weight, nn.Parameter) or bool(getattr(weight, "_is_hf_initialized", False))


_WARNED_HEADS: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


@dataclass(frozen=True)
class PostNorms:
    """The norms a block applies to its MLP output before the residual sum (:func:`post_mlp_chains`).

    Args:
        last (`nn.Module`, *optional*): the norm whose output joins the residual stream: fed the MLP output alone
            (Gemma 2/3's ``post_feedforward_layernorm``), or with `routed` and `shared` the sum of their outputs
            (Gemma 4's ``post_feedforward_layernorm`` in its MoE blocks).
        routed (`nn.Module`, *optional*): a norm before `last` fed the routed experts' output alone (Gemma 4's
            ``post_feedforward_layernorm_2``).
        shared (`nn.Module`, *optional*): a norm before `last` fed the shared experts' output alone (Gemma 4's
            ``post_feedforward_layernorm_1``, on its dense MLP, numbered as shared experts).
        shared_units (`int`, *optional*, defaults to 0): the shared experts' units, the layer's last, with `shared`.
    """

    last: nn.Module | None = None
    routed: nn.Module | None = None
    shared: nn.Module | None = None
    shared_units: int = 0


def _fed_by(norms: Sequence[nn.Module], inputs: dict[int, list[torch.Tensor]], outputs: Sequence[torch.Tensor]
            ) -> nn.Module | None:
    """The first of `norms` whose input (one of `inputs`, by ``id``) equals one of `outputs`, or None; up to the
    tokens' layout (fused experts return ``(tokens, hidden)``, which Gemma 4 reshapes to ``(batch, seq, hidden)``)."""
    return next((norm for norm in norms for x in inputs.get(id(norm), []) if any(
        y.shape[-1:] == x.shape[-1:] and y.numel() == x.numel() and torch.equal(y.reshape(x.shape), x)
        for y in outputs)), None)


def _containing(block: nn.Module, target: nn.Module | None) -> list[nn.Module]:
    """The modules of `block` (not itself) that hold `target`: whose output may be `target`'s."""
    return [] if target is None else [module for _, module in block.named_modules() if module is not block
                                      and any(inner is target for inner in module.modules())]


@torch.no_grad()
def post_mlp_chains(model: nn.Module, layers: Sequence[int], stack: str | None = None) -> dict[int, PostNorms]:
    """Per layer, the norms the block applies to its MLP output alone before the residual sum.

    Found by data flow, not by name: in one two-token forward pass, a norm among the block's children whose input
    equals the output of the MLP (the down projection or a module of the block that holds it) is that norm. So
    Gemma 2/3's ``post_feedforward_layernorm`` and HyperCLOVA X's ``post_norm2`` are read (tested), as any norm
    fed the MLP output alone whatever its name (Chameleon's ``post_attention_layernorm`` with ``swin_norm=True``);
    a post-LN norm of the residual sum (``norm(x + mlp(x))``, BERT, post-LN OPT) is not. In a MoE layer with shared
    experts whose output a norm of its own reads apart from the routed experts' (Gemma 4: its dense MLP's
    ``post_feedforward_layernorm_1``, its experts' ``post_feedforward_layernorm_2``), the norm whose input is the sum
    of those two norms' outputs (``post_feedforward_layernorm``) is the one whose output joins the residual stream.

    Raises:
        ModelError: the shared experts' output and the routed experts' pass different norms (or only one of them
            a norm) and no norm of the block reads the sum of the two norms' outputs: which norm scales which units
            on their way to the residual stream is not known.
    """
    _, blocks = _blocks(model, stack)
    norms: dict[int, list[nn.Module]] = {}
    paths: dict[int, tuple[list[nn.Module], list[nn.Module]]] = {}  # routed (or dense) and shared experts
    shared_units: dict[int, int] = {}
    for layer in layers:
        block = blocks[layer]
        found = [module for _, module in block.named_children() if _is_norm(module)]
        if found:
            site = find_sites(model, "mlp", None, output_stack(model, stack), layers=int(layer))[0]
            shared = site.experts.shared if site.capture == "experts" else None
            norms[layer] = found
            paths[layer] = (_containing(block, site.module), _containing(block, shared))
            shared_units[layer] = site.experts.shared_units if shared is not None else 0  # no weight read
    with module_tensors(inputs=[n for found in norms.values() for n in found],
                        outputs=[m for both in paths.values() for path in both for m in path]
                        + [n for found in norms.values() for n in found]) as seen:
        if norms:
            _probe_forward(model, "find the norms on its MLP outputs")
    chains: dict[int, PostNorms] = {}
    for layer in layers:
        found, (routed_path, shared_path) = norms.get(layer, []), paths.get(layer, ([], []))
        outputs = [[y for module in path for y in seen["outputs"].get(id(module), [])] for path in (routed_path,
                                                                                                    shared_path)]
        routed = _fed_by(found, seen["inputs"], outputs[0])
        shared = _fed_by(found, seen["inputs"], outputs[1]) if shared_path else routed
        if shared is routed:  # one norm of the whole MLP output (or none)
            chains[layer] = PostNorms(routed)
            continue
        sums = [a + b for a in seen["outputs"].get(id(routed), []) for b in seen["outputs"].get(id(shared), [])
                if a.shape == b.shape] if routed is not None and shared is not None else []
        last = _fed_by([n for n in found if n is not routed and n is not shared], seen["inputs"], sums)
        if last is None:
            names = {id(m): n for n, m in blocks[layer].named_children()}
            raise ModelError(
                f"In block {layer} of {type(model).__name__} the routed experts' output passes the norm "
                f"{names.get(id(routed))!r} and the shared experts' {names.get(id(shared))!r} (None: no norm of its "
                "own), and no norm of the block reads the sum of the two: which norms scale which units on their "
                "way to the residual stream is not known, and output effects would be wrong. Profile without "
                "output_effects.")
        chains[layer] = PostNorms(last, routed, shared, shared_units[layer])
    return chains


def post_mlp_norms(model: nn.Module, layers: Sequence[int], stack: str | None = None) -> dict[int, nn.Module | None]:
    """Per layer, the norm whose output joins the residual stream after the MLP, or None (the `last` of
    :func:`post_mlp_chains`)."""
    return {layer: chain.last for layer, chain in post_mlp_chains(model, layers, stack).items()}


@torch.no_grad()
def residual_gains(model: nn.Module, layers: Sequence[int], stack: str | None = None,
                   posts: dict[int, nn.Module | None] | None = None,
                   points: dict[int, nn.Module] | None = None) -> dict[int, float | None]:
    """Per layer, the scalar by which the block multiplies its MLP output (after a post-MLP norm, `posts`, where it
    has one) before adding it to the residual stream: Granite's and HyperCLOVA X's ``residual_multiplier``,
    MiniCPM's ``scale_depth / sqrt(num_hidden_layers)``; 1.0 for most models.

    Measured, not read from the config: one forward pass of ``len(layers) + 1`` identical rows, where row ``i + 1``
    has a fixed vector ``u`` added to the MLP output of the ``i``-th layer; the change of that block's output against
    row 0 is the gain times ``u``. ``u`` is large beside the block's input, so that in half precision the rounding
    of the residual stream does not hide the change (a Granite with ``embedding_multiplier=12`` in bfloat16 read 1.0
    for 0.22 with a doubled MLP output). 1.0 where the change is not proportional to ``u`` and the block's output is
    a norm's (a post-LN block, ``norm(x + mlp(x))``, BERT, whose final norm is not read through: module docstring),
    or where the MLP output or the block output is not one tensor.

    With `points` (per layer, the module whose output is moved instead of the MLP's: :func:`shared_expert_gains`),
    nothing is refused and a change that is not proportional reads None.

    Raises:
        ModelError: a block passes on more than one residual stream (Gemma 3n's AltUp: a stack of streams that its MLP
            output reaches through input-dependent corrections, and that the model mixes through projections before
            its final norm), or the change is not proportional to ``u`` where no norm ends the block (Inkling's short
            convolution of the MLP output, per channel and across positions): there is no direct path of the kind
            output effects read.
    """
    layers = [int(layer) for layer in layers]
    posts = post_mlp_norms(model, layers, stack) if posts is None else posts
    _, blocks = _blocks(model, stack)
    strict = points is None
    if points is None:
        points = {layer: posts.get(layer) or find_sites(model, "mlp", None, output_stack(model, stack),
                                                        layers=layer)[0].module for layer in layers}
    gains: dict[int, float | None] = dict.fromkeys(layers, 1.0)
    # a module shared between layers (ALBERT's one block) is called once per layer: its rows cannot be told apart
    if not layers or len({id(m) for m in points.values()}) < len(layers) or \
            len({id(blocks[layer]) for layer in layers}) < len(layers):
        return gains
    rows = len(layers) + 1
    size: dict[int, float] = {}  # the largest entry of each block's input
    added: dict[int, torch.Tensor] = {}
    out: dict[int, torch.Tensor] = {}
    normed: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}  # outputs of the norms in each block

    def measure(layer: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            first = args[0] if args else kwargs.get("hidden_states")
            if layer not in size and isinstance(first, torch.Tensor) and first.is_floating_point():
                size[layer] = float(first.detach().abs().max())
        return hook

    def add(layer: int, row: int) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            first = _first_tensor(output)
            if layer in added or not isinstance(first, torch.Tensor) or first.shape[0] % rows:
                added[layer] = torch.empty(0)  # called twice, or not a tensor of the rows: not measured
                return output
            shaped = first.reshape(rows, -1, first.shape[-1])  # (rows * tokens, hidden) for fused experts too
            u = _probe_vector(shaped.shape[1:], max(size.get(layer, 0.0), float(shaped[0].abs().max())), first)
            added[layer] = u
            moved = shaped.clone()
            moved[row] = shaped[row] + u
            return _with_first(output, moved.reshape(first.shape))
        return hook

    hooks = [("pre_kwargs", blocks[layer], measure(layer)) for layer in layers]
    hooks += [("post", points[layer], add(layer, i + 1)) for i, layer in enumerate(layers)]
    hooks += [("post", blocks[layer], _keep_first_output(out, layer)) for layer in layers]
    hooks += [("post", module, _collect_outputs(normed[layer])) for layer in layers
              for module in blocks[layer].modules() if "norm" in type(module).__name__.lower()]
    with module_hooks(hooks):
        _probe_forward(model, "measure the scale of its MLP outputs in the residual stream", rows=rows)
    dtype = weights_dtype(model) or torch.float32
    for i, layer in enumerate(layers):
        u, y = added.get(layer), out.get(layer)
        if u is None or y is None or not u.numel():
            continue
        if y.numel() > rows * u.numel() and y.numel() % (rows * u.numel()) == 0 and y.shape[-1] == u.shape[-1]:
            streams = y.numel() // (rows * u.numel())
            raise ModelError(
                f"Block {layer} of {type(model).__name__} passes on {streams} residual streams, not one (Gemma 3n's "
                f"AltUp, output of shape {tuple(y.shape)}): its MLP output reaches them through input-dependent "
                "corrections and the model mixes them before its final norm, so a neuron has no direct path to the "
                "logits for output effects to read. Profile without output_effects.")
        if y.shape[:1] != (rows,) or y[0].numel() != u.numel():
            continue
        gain = _proportion((y[i + 1] - y[0]).reshape(u.shape), u, (dtype, u.dtype, y.dtype))
        if not strict:
            gains[layer] = gain
            continue
        if gain is None and not any(x.shape == y.shape and torch.equal(x, y) for x in normed[layer]):
            raise ModelError(
                f"The MLP output of block {layer} of {type(model).__name__} does not reach the block's output as a "
                "scalar multiple (a per-channel scale or a convolution over positions, such as Inkling's mlp_sconv, "
                "lies between them), and no norm ends the block: output effects, which read the MLP's "
                "down-projection columns as they join the residual stream, would be wrong. Profile without "
                "output_effects.")
        gains[layer] = 1.0 if gain is None else gain
    return gains


@torch.no_grad()
def residual_passthrough(model: nn.Module, first: int, stack: str | None = None) -> dict[int, float]:
    """Per block after block `first`, the scalar by which it passes its input on to its output along the residual
    connection: Gemma 4's ``layer_scalar`` (the whole block output multiplied), Beam's depth-scaled residual
    (``sqrt((k - 1) / k)`` per sum); 1.0 for most models. A neuron's direct path runs through every later block's
    residual connection, so its output effects carry the product of these factors.

    Measured as :func:`residual_gains` measures: one forward pass of one row per block plus a reference row, where
    row ``i + 1`` has a fixed large vector ``u`` added to the input of the ``i``-th block, and every norm inside that
    block is given the reference row's input (so the block's sublayers, which read the residual stream through its
    norms, see no change): the change of the block's output is the factor times ``u``. 1.0 where that change is not
    proportional to ``u``, where the block's output is a norm's (a post-LN block, whose norms are not read through:
    module docstring), or where the rows cannot be told apart (a block shared between layers, or called twice).
    """
    _, blocks = _blocks(model, stack)
    later = list(range(int(first) % len(blocks) + 1, len(blocks)))
    factors = dict.fromkeys(later, 1.0)
    if not later or len({id(blocks[m]) for m in later}) < len(later):
        return factors
    rows = len(later) + 1
    added: dict[int, torch.Tensor] = {}
    out: dict[int, torch.Tensor] = {}
    normed: dict[int, list[torch.Tensor]] = {m: [] for m in later}

    def perturb(m: int, row: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
            positional = bool(args)
            x = args[0] if positional else kwargs.get("hidden_states")
            if m in added or not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.shape[0] != rows:
                added[m] = torch.empty(0)
                return None
            u = _probe_vector(x.shape[1:], float(x.detach().abs().max()), x)
            added[m] = u
            moved = x.clone()
            moved[row] = x[row] + u
            return ((moved, *args[1:]), kwargs) if positional else (args, {**kwargs, "hidden_states": moved})
        return hook

    def unmoved(row: int) -> Callable:
        def hook(module: nn.Module, args: tuple) -> Any:
            x = args[0] if args else None
            if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() % rows:
                return None
            shaped = x.reshape(rows, -1, x.shape[-1]).clone()
            shaped[row] = shaped[0]
            return (shaped.reshape(x.shape), *args[1:])
        return hook

    hooks: list[HookSpec] = []
    for i, m in enumerate(later):
        hooks += [("pre_kwargs", blocks[m], perturb(m, i + 1)), ("post", blocks[m], _keep_first_output(out, m))]
        for module in blocks[m].modules():
            if "norm" in type(module).__name__.lower():
                hooks += [("pre", module, unmoved(i + 1)), ("post", module, _collect_outputs(normed[m]))]
    with module_hooks(hooks):
        _probe_forward(model, "measure how its blocks pass the residual stream on", rows=rows)
    dtype = weights_dtype(model) or torch.float32
    for i, m in enumerate(later):
        u, y = added.get(m), out.get(m)
        if u is None or y is None or not u.numel() or y.shape != (rows, *u.shape) or \
                any(x.shape == y.shape and torch.equal(x, y) for x in normed[m]):
            continue
        factor = _proportion(y[i + 1] - y[0], u, (dtype, u.dtype, y.dtype))
        factors[m] = 1.0 if factor is None else factor
    return factors


@torch.no_grad()
def shared_expert_gains(model: nn.Module, layers: Sequence[int], stack: str | None, gains: dict[int, float],
                        posts: dict[int, nn.Module | None]) -> dict[int, tuple[float, int]]:
    """Per MoE layer with shared experts and no post-MLP norm, the gain of the shared experts' output (with the number
    of their units, the last of the layer's, :func:`down_columns`): 1.0 where the
    routed experts' own gain (:func:`residual_gains`, measured on their output) is a factor the MoE module applies to
    them alone (Laguna's and Step 3.7's ``routed_scaling_factor``, 2.5: the shared units read 2.5 times the model's
    change), else the routed experts' gain (GraniteMoeShared's ``residual_multiplier`` multiplies their sum; a shared
    expert's input-dependent gate, Qwen2-MoE's ``shared_expert_gate``, is not applied, as a router's weight is not).
    Measured as :func:`residual_gains` measures, on the shared experts' down projection."""
    sites = {int(layer): find_sites(model, "mlp", None, output_stack(model, stack), layers=int(layer))[0]
             for layer in layers if posts.get(int(layer)) is None}
    shared = {layer: site.experts.shared for layer, site in sites.items()
              if site.capture == "experts" and site.experts.shared is not None}
    measured = residual_gains(model, list(shared), stack, posts, points=shared) if shared else {}
    return {layer: (1.0 if measured.get(layer) == 1.0 else gains[layer], sites[layer].experts.shared_units)
            for layer in shared}


@torch.no_grad()
def down_columns(model: nn.Module, layer: int, stack: str | None = None) -> torch.Tensor:
    """The write directions of a layer's neurons: ``(hidden, neurons)``, column ``j`` = neuron ``j``'s output.

    The neurons are those :func:`hf_txray.sites.find_sites` verifies and profiles: a dense MLP's down projection
    input; fused MoE experts (``down_proj`` ``(experts, hidden, inter)``, or ``(experts, inter, hidden)`` where the
    module is ``is_transposed``) laid out ``expert * inter + unit``, then
    the shared experts' units (their down projection's input).
    """
    site = find_sites(model, "mlp", None, output_stack(model, stack), layers=int(layer))[0]
    if site.capture != "experts":
        return linear_weight(site.module)
    _refuse_transformed_experts(model, site, _blocks(model, stack)[1][layer])
    fused = site.module.down_proj.detach()
    if getattr(site.module, "is_transposed", False):  # (experts, inter, hidden), applied as x @ W (GPT-OSS)
        experts, inter, hidden = fused.shape
        columns = fused.permute(2, 0, 1).reshape(hidden, experts * inter)
    else:
        experts, hidden, inter = fused.shape
        columns = fused.permute(1, 0, 2).reshape(hidden, experts * inter)
    if site.experts.shared is not None:
        columns = torch.cat([columns, linear_weight(site.experts.shared).to(columns.device)], dim=1)
    return columns


def _refuse_transformed_experts(model: nn.Module, site: Site, block: nn.Module) -> None:
    """Refuse experts whose summed output is transformed before it joins the residual stream.

    The write direction of an expert unit is its ``down_proj`` column only where the experts' output is added to the
    residual as it is (up to the router's weight, a positive scalar). Muse Spark normalises each expert's output
    (``experts.post_expert_norm``, a norm over the whole output: not a fixed direction per unit) and projects the sum
    back from its own expert space (``mlp.post_expert_proj``): its columns read through the unembedding gave logits
    of the wrong space, silently where that space is as wide as the hidden size.

    Raises:
        ModelError: the experts hold a module with weights of their own (a norm on their output), their output is
            not the hidden size, or their MoE module holds a linear layer beside them from their output width to the
            hidden size (a projection of their sum).
    """
    experts = site.module
    hidden = hidden_size(text_config(model.config))
    transposed = getattr(experts, "is_transposed", False)
    out_width = int(experts.down_proj.shape[2] if transposed else experts.down_proj.shape[1])
    inner = [n for n, m in experts.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    parent = next((m for m in block.modules() if any(c is experts for c in m.children())), None)
    after = [n for n, m in (parent.named_children() if parent is not None else ())
             if isinstance(m, nn.Linear) and m is not site.experts.shared and m.in_features == out_width
             and m.out_features == hidden]
    if inner or after or out_width != hidden:
        why = (f"they apply {inner} to their output" if inner else f"their MoE module applies {after} to their sum"
               if after else f"their output is {out_width} wide, not the hidden size ({hidden})")
        raise ModelError(
            f"Output effects of the expert units of {site.name!r} are not their down projection's columns: {why} "
            "before it joins the residual stream, which hf_txray does not read through. Read output effects of "
            "this model's dense layers only, or profile it without output_effects.")


def _post_norm_scaled(columns: torch.Tensor, chain: PostNorms, units: torch.Tensor, width: int) -> torch.Tensor:
    """The `columns` of a layer's `units` (of its `width`: :func:`down_columns`) times the scales of the norms its
    MLP output passes before the residual sum: the routed experts' own norm on theirs, the shared experts' own norm on
    theirs (the layer's last units), then the norm of their sum on all (or the one norm of the whole MLP output).
    Read a chunk of units at a time: float32 columns of that chunk, not of the whole down projection."""
    if chain.last is None:
        return columns
    columns = columns.float()
    if chain.routed is not None and chain.shared is not None:  # Gemma 4's MoE blocks: each branch normalised first
        shared = (units >= width - chain.shared_units).to(columns.device)
        own = torch.where(shared[None, :], norm_scale(chain.shared, columns.shape[0])[:, None].to(columns.device),
                          norm_scale(chain.routed, columns.shape[0])[:, None].to(columns.device))
        columns = own * columns
    return norm_scale(chain.last, columns.shape[0]).to(columns.device)[:, None] * columns


def _token_strings(tokenizer: Any, ids: np.ndarray) -> list[str]:
    if tokenizer is None:
        return [str(int(i)) for i in ids]
    return [str(t) for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids])]


def _top_frame(logits: torch.Tensor, layer: int, first_neuron: int, k: int,
               tokens: Callable[[np.ndarray], list[str]]) -> pd.DataFrame:
    """Top-k and bottom-k rows of ``(vocab, n)`` logits as a long table."""
    k = min(k, logits.shape[0])
    parts = []
    for direction, largest in zip(DIRECTIONS, (True, False)):
        values, ids = logits.topk(k, dim=0, largest=largest)  # (k, n), best first
        n = values.shape[1]
        parts.append(pd.DataFrame({
            "layer": np.full(k * n, layer, dtype=np.int64),
            "neuron": np.repeat(np.arange(first_neuron, first_neuron + n, dtype=np.int64), k),
            "direction": direction, "rank": np.tile(np.arange(k, dtype=np.int64), n),
            "token_id": ids.T.reshape(-1).cpu().numpy().astype(np.int64),
            "logit": values.T.reshape(-1).cpu().numpy().astype(np.float64),
        }))
    frame = pd.concat(parts, ignore_index=True)
    frame["token"] = tokens(frame["token_id"].to_numpy())
    return frame


@torch.no_grad()
@on_own_default_device
def output_effects_table(model: nn.Module, layers: Sequence[int] | None = None, k: int = 20,
                         tokenizer: Any = None, neurons: Sequence[int] | None = None,
                         stack: str | None = None) -> pd.DataFrame:
    """Top-`k` promoted and suppressed tokens of every neuron of `layers`, in one batched pass per layer.

    Args:
        model (`PreTrainedModel`): a model with an LM head (``*ForCausalLM``, ``*ForMaskedLM``).
        layers (`Sequence[int]`, *optional*): block indices (default: all blocks).
        k (`int`, *optional*, defaults to 20): tokens per direction.
        tokenizer (*optional*): turns token ids into token strings (else the ids as strings).
        neurons (`Sequence[int]`, *optional*): only these neuron indices (default: all of each layer).
        stack (`str`, *optional*): for encoder-decoders, ``"decoder"`` (the default; ``"encoder"`` is refused: its
            neurons have no direct path to the LM head).

    Returns:
        `pd.DataFrame` with columns layer, neuron, direction (``promoted``/``suppressed``), rank (0 = strongest),
        token_id, token, logit (the logit change per unit of activation, see the module docstring).

    Raises:
        ModelError: no LM head, or a block without a down projection.
        ConfigurationError: `k` < 1, a layer or neuron out of range, or one named twice, or no neuron
            (``neurons=[]``).
    """
    k = check_count("k", k)
    model = model_inside(model)  # DataParallel's own attributes held no LM head: "has no LM head" was the refusal
    if neurons is not None:  # [3, 3] was read as [3] without a word
        neurons = whole_numbers(neurons, "Neurons")
        if not neurons.size:  # an empty frame read as "no effects" (helper 369)
            raise ConfigurationError("neurons is empty: pass None for every neuron of the layers, or at least one "
                                     "neuron index.")
        refuse_repeats("neurons", "neuron", neurons.tolist())
    _refuse_offloaded(model)  # first: readout reads the final norm and the LM head, which may be offloaded
    _refuse_quantized_head(model)
    read = readout(model, stack)
    _, blocks = _blocks(model, stack)
    tokenizer = tokenizer if tokenizer is not None else _default_tokenizer(model)
    # sorted, range-checked, ints only, each block once (layers=[1, -1] of a 2-block model gave every row twice)
    layers = block_indices("all" if layers is None else layers, len(blocks))
    cache: dict[int, str] = {}

    def tokens(ids: np.ndarray) -> list[str]:
        missing = sorted({int(i) for i in ids} - cache.keys())
        cache.update(zip(missing, _token_strings(tokenizer, np.array(missing, dtype=np.int64))))
        return [cache[int(i)] for i in ids]

    frames = []
    chains = post_mlp_chains(model, layers, stack)
    posts = {layer: chain.last for layer, chain in chains.items()}
    gains = {layer: 1.0 if gain is None else gain for layer, gain in residual_gains(model, layers, stack, posts).items()}
    shared_gains = shared_expert_gains(model, layers, stack, gains, posts)
    passed = residual_passthrough(model, min(layers), stack) if layers else {}
    for layer in layers:  # the later blocks' residual connections scale what the layer wrote (Gemma 4's layer_scalar)
        onward = float(np.prod([passed[m] for m in passed if m > layer]))
        if onward != 1.0:
            gains[layer] *= onward
            if layer in shared_gains:
                shared_gains[layer] = (shared_gains[layer][0] * onward, shared_gains[layer][1])
    for layer in layers:
        columns = down_columns(model, layer, stack)  # scaled a chunk at a time: no float32 copy of all of it
        shared_gain, shared_units = shared_gains.get(layer, (gains[layer], 0))
        scale = None
        if gains[layer] != 1.0 or shared_gain != gains[layer]:
            # multiplied by a scalar there (Granite's residual_multiplier), the shared experts' units by their own
            scale = torch.full((columns.shape[1],), gains[layer], device=columns.device)
            scale[columns.shape[1] - shared_units:] = shared_gain
        width = columns.shape[1]
        chosen = np.arange(width) if neurons is None else np.sort(neurons)
        if len(chosen) and not (0 <= chosen.min() and chosen.max() < width):
            raise ConfigurationError(f"Neuron out of range: layer {layer} has {width} neurons (0 to {width - 1}).")
        for start in range(0, len(chosen), _CHUNK):
            picked = torch.as_tensor(chosen[start: start + _CHUNK], device=columns.device)
            directions = _post_norm_scaled(columns.index_select(1, picked), chains[layer], picked, width)
            if scale is not None:
                directions = scale[picked][None, :] * directions.float()
            logits = read.logits(directions)
            part = _top_frame(logits, layer % len(blocks), 0, k, tokens)
            part["neuron"] = picked.cpu().numpy()[part["neuron"].to_numpy()]  # chunk position -> neuron index
            frames.append(part)
    if not frames:
        return empty_output_effects()
    frame = pd.concat(frames, ignore_index=True)
    return normalize_output_effects(frame.sort_values(["layer", "neuron", "direction", "rank"], kind="stable"))


@on_own_default_device
def output_effects(model: nn.Module, layer: int, neuron: int, k: int = 20, tokenizer: Any = None,
                   stack: str | None = None) -> pd.DataFrame:
    """The top-`k` vocabulary tokens one MLP neuron promotes and suppresses (Geva et al., EMNLP 2022).

    Its down-projection column read through the final norm's scale and the unembedding; see the module docstring
    for what is approximated. MoE layers number neurons ``expert * intermediate + unit``.

    Args:
        model (`PreTrainedModel`): a causal-LM or masked-LM model (one with ``get_output_embeddings()``).
        layer (`int`): block index.
        neuron (`int`): neuron index in that block's MLP intermediate layer.
        k (`int`, *optional*, defaults to 20): tokens per direction.
        tokenizer (*optional*): for token strings; defaults to ``AutoTokenizer`` of ``model.name_or_path`` when
            that loads, else token ids are shown.
        stack (`str`, *optional*): ``"decoder"`` for encoder-decoders (the default there).

    Returns:
        `pd.DataFrame`: columns layer, neuron, direction, rank, token_id, token, logit; `k` promoted rows (highest
        logit first) then `k` suppressed rows (lowest first).

    Raises:
        ConfigurationError: `neuron` is not one index (a list: use :func:`output_effects_table`), or out of range.

    Example:
        ```python
        >>> model = AutoModelForCausalLM.from_pretrained("gpt2")
        >>> hf_txray.output_effects(model, layer=10, neuron=42, k=5, tokenizer=tokenizer)
        ```
    """
    if np.ndim(neuron) != 0 or isinstance(neuron, (str, bytes)):  # [1, 2] gave two neurons' rows (helper 369)
        raise ConfigurationError(f"output_effects takes one neuron index, got {neuron!r}: for several neurons, "
                                 "use output_effects_table(model, [layer], neurons=[...]).")
    return output_effects_table(model, [layer], k, tokenizer, neurons=[neuron], stack=stack)


def _default_tokenizer(model: nn.Module) -> Any:
    """``AutoTokenizer`` of the model's ``name_or_path`` when it loads (offline, local), else None (ids shown)."""
    name = getattr(model, "name_or_path", None)
    if not name:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name)
    except Exception:  # no tokenizer there: token ids are shown instead
        return None


def empty_output_effects() -> pd.DataFrame:
    return normalize_output_effects(pd.DataFrame({c: [] for c in OUTPUT_COLUMNS}))


def neuron_tokens(frame: pd.DataFrame | None, layer: int, neuron: int, direction: str) -> list[str]:
    """The tokens of one neuron and direction of an output-effects table, strongest first (empty when absent)."""
    if frame is None or frame.empty:
        return []
    rows = frame[(frame["layer"] == layer) & (frame["neuron"] == neuron) & (frame["direction"] == direction)]
    return rows.sort_values("rank")["token"].astype(str).tolist()


def check_output_effects(model: nn.Module, site: str, module_pattern: str | None = None, k: int = 20,
                         stack: str | None = None) -> None:
    """Refuse before profiling when output effects cannot be computed (wrong site or k, custom sites, an encoder
    stack, no LM head)."""
    check_count("output_effects_k", k)
    if module_pattern:
        raise ConfigurationError("output_effects=True numbers layers as the model's blocks; with module_pattern the "
                                 "layers are the matched modules instead. Drop one of the two.")
    if site != "mlp":
        raise ConfigurationError(f"output_effects=True reads MLP neurons' down-projection columns; site={site!r} "
                                 "has no such column. Use site='mlp' or output_effects=False.")
    _refuse_offloaded(model)  # first: readout reads the final norm and the LM head, which may be offloaded
    _refuse_quantized_head(model)
    readout(model, stack)
    residual_gains(model, range(len(_blocks(model, stack)[1])), stack)  # refuses blocks without one residual stream


def _refuse_quantized_head(model: nn.Module) -> None:
    """Output effects read the LM head's (and the down projections') weights, which quantize_dynamic packs: say so
    (the profile itself never runs the head)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, nn.Module) and dynamically_quantized(head) is not None:
        raise ModelError(
            f"The LM head of {type(model).__name__} is dynamically quantized (torch.ao.quantization.quantize_dynamic): "
            "output effects read its weights, which the conversion packed. Profile with output_effects=False (the "
            "profile never runs the head), or pass the model before quantize_dynamic.")
    refuse_dynamic_quantization(model, type(model).__name__)


def _refuse_offloaded(model: nn.Module) -> None:
    refuse_offloaded(model, "Output effects read the MLP down projections' and the LM head's weights directly",
                     "Load the model without offloading for output_effects=True, or profile with output_effects=False.")


def normalize_output_effects(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with :data:`OUTPUT_COLUMNS` in order and fixed dtypes (strings as ``object``), so tables read
    back from parquet compare equal to computed ones."""
    frame = frame[OUTPUT_COLUMNS].reset_index(drop=True)
    types = {"layer": "int64", "neuron": "int64", "rank": "int64", "token_id": "int64", "logit": "float64"}
    frame = frame.astype(types)
    for column in ("direction", "token"):
        frame[column] = pd.Series([str(v) for v in frame[column]], dtype=object)
    return frame
