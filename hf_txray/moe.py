"""Mixture-of-experts neurons: every expert's intermediate units, of which a token reaches only its router's choice.

transformers 5 fuses the experts of a MoE layer into one module (``MixtralExperts``, ``Qwen2MoeExperts``,
``OlmoeExperts``...) holding ``gate_up_proj`` (experts, 2 x width, hidden) and ``down_proj`` (experts, hidden, width)
as parameters, called as ``experts(hidden_states, top_k_index, top_k_weights)``. There is no per-expert linear layer
to hook, so a forward pre-hook on the experts module reads the routed tokens and the router's choice and computes
each chosen expert's intermediate ``act(gate) * up`` with the module's own weights and gate function (the same
operations its forward runs next). The units of experts a token was not routed to were never computed and do not
compete.

Numbering: unit ``u`` of routed expert ``e`` is neuron ``e * width + u``; shared experts (an always-on MLP beside
the routed ones, Qwen2-MoE's ``shared_expert``) count as further experts, a shared MLP of ``n x width`` units
being ``n`` experts numbered after the routed ones. A shared expert's units are read where it computes them, at the
input of its down projection: before any scaling of its output, as Qwen2-MoE's sigmoid ``shared_expert_gate`` (the
routed experts' units are likewise read before the router's weights scale their outputs).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from .architectures import FLOAT32_EXPERTS
from .errors import ModelError
from .topk import top_k_lowest_first


@dataclass
class ExpertsLayout:
    """The neurons of one MoE layer.

    Args:
        num_routed (`int`): routed experts.
        num_shared (`int`): shared experts (in units of `width`), numbered after the routed ones.
        width (`int`): intermediate units per expert.
        shared (`nn.Module`, *optional*): the shared experts' down projection, whose input is their intermediate.
        skip_class (`bool`, *optional*, defaults to `False`): the router has a class beyond the experts, a "skip
            expert" without compute (Zaya's), which it hands to the experts as expert 0 with weight 0: such slots
            reach no expert and have no units.
    """

    num_routed: int
    num_shared: int
    width: int
    shared: nn.Module | None = None
    skip_class: bool = False

    @property
    def num_experts(self) -> int:
        return self.num_routed + self.num_shared

    @property
    def shared_units(self) -> int:
        """The shared experts' units (the input width of their down projection `shared`), known from the layout
        without reading that weight (meta, offloaded or quantized)."""
        return self.num_shared * self.width

    @property
    def num_neurons(self) -> int:
        return self.num_experts * self.width


def is_fused_experts(module: nn.Module) -> bool:
    """True for a transformers 5 fused experts module (3-D ``down_proj`` and ``gate_up_proj``/``up_proj``)."""
    down = getattr(module, "down_proj", None)
    up = getattr(module, "gate_up_proj", None)
    if up is None:
        up = getattr(module, "up_proj", None)
    return (isinstance(down, nn.Parameter) and down.dim() == 3 and isinstance(up, nn.Parameter) and up.dim() == 3
            and isinstance(getattr(module, "num_experts", None), int))


def expert_width(experts: nn.Module) -> int:
    """Intermediate units per expert, read from the down projection's shape."""
    down = experts.down_proj
    return int(down.shape[1] if getattr(experts, "is_transposed", False) else down.shape[2])


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool) -> torch.Tensor:
    out = x @ weight if transposed else nn.functional.linear(x, weight)
    return out if bias is None else out + bias


@contextlib.contextmanager
def weights_in_memory(module: nn.Module, name: str) -> Iterator[None]:
    """Within the block, the parameters of `module` (a fused experts module, whose weights hf_txray reads itself)
    are in memory even when Accelerate offloads them (``device_map`` with ``"cpu"``/``"disk"`` offload,
    ``cpu_offload`` or ``disk_offload``, also called on the experts module alone): its hook loads them only around
    the module's own forward, and a read outside it finds them on the meta device, whose values a copy leaves
    uninitialised (half of an offloaded Mixtral layer's credits moved).

    Raises:
        ModelError: a parameter is still on the meta device (a layout of offloading this does not know).
    """
    from accelerate.hooks import AlignDevicesHook, SequentialHook
    from accelerate.utils import align_module_device

    from .distributed import refuse_offloaded

    hook = getattr(module, "_hf_hook", None)
    # `cpu_offload` / `disk_offload` called on the experts module itself chain two hooks on it (one keeping the
    # output's device, one loading the weights): align_module_device looks for a lone loading hook only
    loading = [h for h in hook.hooks if isinstance(h, AlignDevicesHook) and h.offload] if isinstance(
        hook, SequentialHook) else []
    with align_module_device(module) if len(loading) != 1 else _loaded_by(loading[0], module):
        refuse_offloaded(module, f"The experts' units of {name!r} are computed from its weights, which its Accelerate "
                         "hook did not load", "Load the model without offloading these layers, or profile "
                         "site='residual'.")
        yield


@contextlib.contextmanager
def _loaded_by(hook, module: nn.Module) -> Iterator[None]:
    """Within the block, `module`'s weights are loaded by its offloading Accelerate `hook` (as around its forward)."""
    hook.pre_forward(module)
    try:
        yield
    finally:
        hook.post_forward(module, None)


def has_skip_class(scope: nn.Module, experts: nn.Module) -> bool:
    """Whether a router in `scope` (the experts' MoE module or block) chooses among more classes than there are
    experts: the extra one is a skip expert (Zaya's `num_router_classes` = experts + 1)."""
    return any(isinstance(getattr(m, "num_router_classes", None), int) and m.num_router_classes > experts.num_experts
               for m in scope.modules())


def unskipped(top_k_index: torch.Tensor, top_k_weights: torch.Tensor | None) -> torch.Tensor:
    """`top_k_index` with the slots of a skip choice (weight exactly 0, see :class:`ExpertsLayout`) set to -1, an
    expert that is never computed."""
    if top_k_weights is None:
        raise ModelError("The router of these experts has a skip class, and the experts' call did not pass "
                         "top_k_weights, which tell skip choices apart: profile site='residual'.")
    return top_k_index.masked_fill(top_k_weights.reshape(top_k_index.shape) == 0, -1)


@torch.no_grad()
def expert_intermediates(experts: nn.Module, hidden: torch.Tensor, top_k_index: torch.Tensor) -> torch.Tensor:
    """Each token's chosen experts' intermediate activations, shape ``(tokens, router_top_k, width)``.

    Args:
        experts (`nn.Module`): a fused experts module.
        hidden (`torch.Tensor`): the routed tokens, ``(tokens, hidden)``, as passed to ``experts``.
        top_k_index (`torch.Tensor`): the router's choice, ``(tokens, router_top_k)``.
    """
    has_gate = getattr(experts, "has_gate", True)
    weights = experts.gate_up_proj if has_gate else experts.up_proj
    biases = getattr(experts, "gate_up_proj_bias" if has_gate else "up_proj_bias", None)
    transposed = getattr(experts, "is_transposed", False)
    dtype = compute_dtype(experts, hidden.dtype)
    out = hidden.new_zeros((*top_k_index.shape, expert_width(experts)), dtype=dtype)
    for expert in torch.unique(top_k_index).tolist():
        if not 0 <= expert < experts.num_experts:
            continue  # expert-parallel sentinels: not computed here
        token, slot = torch.where(top_k_index == expert)
        bias = biases[expert] if isinstance(biases, torch.Tensor) and getattr(experts, "has_bias", False) else None
        weight, tokens = weights[expert], hidden[token]
        if dtype != hidden.dtype:  # the family computes in float32 (see compute_dtype)
            weight, tokens, bias = weight.to(dtype), tokens.to(dtype), None if bias is None else bias.to(dtype)
        projected = _project(tokens, weight, bias, transposed)
        out[token, slot] = (_gate(experts, projected) if has_gate else experts.act_fn(projected)).to(out.dtype)
    return out


def compute_dtype(experts: nn.Module, dtype: torch.dtype) -> torch.dtype:
    """The dtype `experts` compute their units in for tokens of `dtype`: float32 for the families whose own forward
    casts to it (:data:`~hf_txray.architectures.FLOAT32_EXPERTS`; a float64 model's too) when that forward runs,
    else `dtype` itself."""
    implementation = getattr(getattr(experts, "config", None), "_experts_implementation", None)
    if type(experts).__name__ in FLOAT32_EXPERTS and implementation in (None, "eager"):
        return torch.float32
    return dtype


def _gate(experts: nn.Module, projected: torch.Tensor) -> torch.Tensor:
    # The module's own gate when it has one (interleaved layouts define their own); else [gate; up] halves.
    if hasattr(experts, "_apply_gate"):
        return experts._apply_gate(projected)
    gate, up = projected.chunk(2, dim=-1)
    return experts.act_fn(gate) * up


@torch.no_grad()
def moe_top_k(layout: ExpertsLayout, routed: torch.Tensor, top_k_index: torch.Tensor,
              shared: torch.Tensor | None, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest computed units of each token and their layer-wide neuron numbers.

    Args:
        layout (`ExpertsLayout`): the layer's numbering.
        routed (`torch.Tensor`): ``(tokens, router_top_k, width)`` from :func:`expert_intermediates`.
        top_k_index (`torch.Tensor`): ``(tokens, router_top_k)``, the expert of each slot.
        shared (`torch.Tensor`, *optional*): the shared experts' intermediate, ``(tokens, num_shared * width)``.
        k (`int`): winners per token.

    Returns:
        ``(values, neurons)``, both ``(tokens, k)``.
    """
    tokens, slots, width = routed.shape
    units = torch.arange(width, device=routed.device)
    index = top_k_index.long()
    numbers = (index[:, :, None] * width + units).reshape(tokens, slots * width)
    if slots > 1:
        # A router may choose one expert twice (DeepSeek-V4's hash routing; the model runs it twice): its units are
        # one set of neurons, so a repeated slot competes with -inf instead of a second copy of each unit.
        repeated = (index[:, :, None] == index[:, None, :]).tril(diagonal=-1).any(dim=2)
        routed = routed.masked_fill(repeated[:, :, None], float("-inf"))
    values = routed.reshape(tokens, slots * width)
    if shared is not None:
        base = layout.num_routed * width
        values = torch.cat([values, shared.reshape(tokens, -1).to(values.dtype)], dim=1)
        shared_numbers = base + torch.arange(shared.shape[-1], device=routed.device)
        numbers = torch.cat([numbers, shared_numbers.expand(tokens, -1)], dim=1)
    # ties go to the lowest neuron number, as in dense layers (not to the router's first slot)
    return top_k_lowest_first(values, k, numbers)
