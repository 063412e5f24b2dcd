"""Masking MLP neurons with forward pre-hooks (reversible): :func:`mask_neurons`, :func:`masked`, :func:`unprune`."""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from ..errors import ModelError
from ..sites import Site, find_sites, require_dense
from .plan import NeuronSpec, PruningPlan, _explicit_neurons

_MASKS_ATTRIBUTE = "_txray_masks"


# ----- masking ----------------------------------------------------------------------------------------------------
class _NeuronMask:
    """Forward pre-hook that zeroes some input features of a down projection (exact zeros, out of place)."""

    def __init__(self, indices: Sequence[int]):
        self.indices = torch.as_tensor(sorted(indices), dtype=torch.long)
        self._on: dict[torch.device, torch.Tensor] = {}

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        if not args or len(self.indices) == 0:
            return None
        x = args[0]
        index = self._on.get(x.device)
        if index is None:
            index = self._on[x.device] = self.indices.to(x.device)
        return (x.index_fill(-1, index, 0),) + tuple(args[1:])


class MaskHandle:
    """The masks that :func:`mask_neurons` registered; :meth:`remove` takes them off again.

    Attributes:
        neurons (`dict[int, list[int]]`): the masked neurons per layer.
        plan (`PruningPlan`, *optional*): the plan the masks came from.
    """

    def __init__(self, model: nn.Module, neurons: dict[int, list[int]], handles: list, plan: PruningPlan | None = None):
        self.model, self.neurons, self.plan = model, neurons, plan
        self._handles = handles

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def remove(self) -> None:
        """Remove the masks (idempotent); the model computes exactly as before they were added."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        registry = getattr(self.model, _MASKS_ATTRIBUTE, None)
        if registry is not None and self in registry:
            registry.remove(self)

    def __enter__(self) -> "MaskHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        total = sum(len(v) for v in self.neurons.values())
        return f"MaskHandle(neurons={total}, layers={sorted(self.neurons)}, active={self.active})"


def _mlp_sites(model: nn.Module) -> dict[int, Site]:
    sites = find_sites(model, "mlp")
    require_dense(sites, "Pruning or ablating neurons")
    return {site.layer: site for site in sites}


def _check_plan_fits(plan_widths: Mapping[int, int], sites: dict[int, Site]) -> None:
    for layer, width in plan_widths.items():
        if layer not in sites:
            raise ModelError(f"The plan prunes layer {layer}, but the model has MLP layers 0..{len(sites) - 1}.")
        if sites[layer].width != width:
            raise ModelError(
                f"The plan was made for {width} neurons in layer {layer}, but the model's layer has "
                f"{sites[layer].width} (a different model, or one already pruned with mode='remove')."
            )


def mask_neurons(model: nn.Module, neurons: NeuronSpec) -> MaskHandle:
    """Zero the output of the given MLP neurons until :meth:`MaskHandle.remove` (or :func:`unprune`) is called.

    The mask is a forward pre-hook on each layer's down projection that sets the planned input features to exactly
    0; it is registered first (``prepend=True``), so TX-Ray profiling hooks on the same module see the masked
    activations. Parameters are not modified.

    Args:
        model (`nn.Module`): a transformers model (BERT, GPT-2, Llama-style...).
        neurons (`dict[int, list[int]]`, list of ``(layer, index)`` pairs, or `PruningPlan`): what to mask.

    Returns:
        :class:`MaskHandle`.
    """
    sites = _mlp_sites(model)
    widths = {layer: site.width for layer, site in sites.items()}
    plan = neurons if isinstance(neurons, PruningPlan) else None
    if plan is not None:
        _check_plan_fits(plan.widths, sites)
    chosen = _explicit_neurons(neurons, widths)
    handles = []
    for layer, indices in chosen.items():
        if indices:
            handles.append(sites[layer].module.register_forward_pre_hook(_NeuronMask(indices), prepend=True))
    handle = MaskHandle(model, chosen, handles, plan)
    registry = getattr(model, _MASKS_ATTRIBUTE, None)
    if registry is None:
        registry = []
        object.__setattr__(model, _MASKS_ATTRIBUTE, registry)
    registry.append(handle)
    return handle


@contextlib.contextmanager
def masked(model: nn.Module, neurons: NeuronSpec) -> Iterator[MaskHandle]:
    """Context manager: the given MLP neurons output 0 inside the block, and the model is unchanged after it.

    Args:
        model (`nn.Module`): a transformers model.
        neurons (`dict[int, list[int]]`, list of ``(layer, index)`` pairs, or `PruningPlan`): what to mask.

    Example:
        ```python
        >>> from hf_txray.pruning import masked
        >>> with masked(model, {3: [17, 42]}):
        ...     ablated = model(**inputs).logits
        >>> original = model(**inputs).logits  # masks are gone
        ```
    """
    handle = mask_neurons(model, neurons)
    try:
        yield handle
    finally:
        handle.remove()


def active_masks(model: nn.Module) -> list[MaskHandle]:
    """The masks hf_txray has registered on `model` and not yet removed."""
    return list(getattr(model, _MASKS_ATTRIBUTE, None) or [])


def unprune(model: nn.Module, plan: PruningPlan | MaskHandle | None = None) -> nn.Module:
    """Undo ``mode="mask"`` pruning: remove the masks of `plan` (or of every plan when None).

    The parameters were never modified, so the model computes bit for bit as before. ``mode="remove"`` cannot be
    undone (the weights are gone): reload the original model instead.

    Args:
        model (`nn.Module`): the pruned model.
        plan (`PruningPlan` or `MaskHandle`, *optional*): which pruning to undo; defaults to all of them.

    Returns:
        The model (the same object).
    """
    for handle in active_masks(model):
        if plan is None or handle is plan or handle.plan is plan:
            handle.remove()
    return model
