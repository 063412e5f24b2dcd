"""Finding the neuron sites of a model and recording which neuron wins each position.

A *site* is one layer's vector of neurons. ``"mlp"`` is the MLP intermediate activation of every block (the input
of the down/output projection: BERT ``intermediate`` output, GPT-2 ``mlp.c_proj`` input, Llama ``mlp.down_proj``
input); ``"residual"`` is the output of every block. Architectures are found from module structure, not names:
the blocks are the largest ``nn.ModuleList`` of identical modules, and the down projection of a block is its
linear layer with the widest input that is wider than its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .errors import ConfigurationError, ModelError

SITES = ("mlp", "residual")


@dataclass
class Site:
    """One hooked layer.

    Args:
        layer (`int`): index of the block in the model (0-based), used to match neurons across stages.
        name (`str`): the hooked module's qualified name.
        module (`nn.Module`): the hooked module.
        width (`int`): number of neurons.
        capture (`str`): ``"input"`` (forward pre-hook, the module's first argument) or ``"output"``.
    """

    layer: int
    name: str
    module: nn.Module
    width: int
    capture: str


def _linear_dims(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) features of a linear-like module (``nn.Linear`` or GPT-2's ``Conv1D``), else None."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return int(module.weight.shape[0]), int(module.nf)
    return None


def _find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer blocks: the ModuleList of same-class modules with the most parameters."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        size = sum(p.numel() for p in module.parameters())
        if best is None or size > best[0]:
            best = (size, name, module)
    if best is None:
        raise ModelError(
            f"Could not find the transformer blocks of {type(model).__name__} (no nn.ModuleList of identical "
            "blocks). Pass `module_pattern`, a regex matching the modules to hook, e.g. r'layers\\.\\d+\\.mlp\\.down_proj'."
        )
    return best[1], best[2]


def _down_projection(block: nn.Module) -> tuple[str, nn.Module, int] | None:
    """The block's linear layer with the widest input among those that narrow (in > out)."""
    best: tuple[int, str, nn.Module] | None = None
    for name, module in block.named_modules():
        dims = _linear_dims(module)
        if dims is None or dims[0] <= dims[1]:
            continue
        if best is None or dims[0] > best[0]:
            best = (dims[0], name, module)
    return None if best is None else (best[1], best[2], best[0])


def _hidden_size(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    size = getattr(config, "hidden_size", None) if config is not None else None
    if not size:
        raise ModelError(
            "The model's config has no `hidden_size`, so the residual width is unknown. Use site='mlp' or a model "
            "with a transformers config."
        )
    return int(size)


def _sites_from_pattern(model: nn.Module, site: str, pattern: str) -> list[Site]:
    regex = re.compile(pattern)
    matched = [(n, m) for n, m in model.named_modules() if n and regex.search(n)]
    if not matched:
        raise ModelError(f"module_pattern {pattern!r} matches no module of {type(model).__name__}.")
    sites = []
    for layer, (name, module) in enumerate(matched):
        if site == "mlp":
            dims = _linear_dims(module)
            if dims is None:
                raise ModelError(
                    f"module_pattern matched {name!r} ({type(module).__name__}), which is not linear: site='mlp' "
                    "hooks the input of a linear down projection. Match the linear layer, or use site='residual'."
                )
            sites.append(Site(layer, name, module, dims[0], "input"))
        else:
            dims = _linear_dims(module)
            sites.append(Site(layer, name, module, dims[1] if dims else _hidden_size(model), "output"))
    return sites


def find_sites(model: nn.Module, site: str = "mlp", module_pattern: str | None = None) -> list[Site]:
    """Locate the neuron sites of every block of `model`.

    Args:
        model (`nn.Module`): a transformers model (BERT, GPT-2, Llama-style and others with the same structure).
        site (`str`, *optional*, defaults to `"mlp"`): ``"mlp"`` for MLP intermediate neurons, ``"residual"`` for
            block outputs.
        module_pattern (`str`, *optional*): regex on qualified module names that overrides the automatic search;
            matched modules are numbered as layers in model order.

    Returns:
        `list[Site]`, one per layer, in model order.
    """
    if site not in SITES:
        raise ConfigurationError(f"Unknown site {site!r}: choose one of {', '.join(SITES)}.")
    if module_pattern:
        return _sites_from_pattern(model, site, module_pattern)
    prefix, blocks = _find_blocks(model)
    sites = []
    for layer, block in enumerate(blocks):
        block_name = f"{prefix}.{layer}" if prefix else str(layer)
        if site == "residual":
            sites.append(Site(layer, block_name, block, _hidden_size(model), "output"))
            continue
        found = _down_projection(block)
        if found is None:
            raise ModelError(
                f"Block {block_name!r} ({type(block).__name__}) has no MLP down projection (a linear layer whose "
                "input is wider than its output). Pass `module_pattern` to name the modules to hook."
            )
        name, module, width = found
        sites.append(Site(layer, f"{block_name}.{name}", module, width, "input"))
    return sites


def select_layers(sites: Sequence[Site], layers: str | int | Sequence[int]) -> list[Site]:
    """Keep the sites of the requested layers (``"all"``, an int or a list; negative indices count from the end)."""
    if isinstance(layers, str):
        if layers != "all":
            raise ConfigurationError(f"layers must be 'all', an int or a list of ints, got {layers!r}.")
        return list(sites)
    wanted = [layers] if isinstance(layers, int) else list(layers)
    if not wanted:
        raise ConfigurationError("layers is empty: pass 'all' or at least one layer index.")
    chosen = []
    for index in wanted:
        if not isinstance(index, int) or not -len(sites) <= index < len(sites):
            raise ConfigurationError(
                f"Layer {index!r} is out of range: the model has {len(sites)} layers (0..{len(sites) - 1}, or "
                f"negative from the end)."
            )
        site = sites[index % len(sites)]
        if site not in chosen:
            chosen.append(site)
    return sorted(chosen, key=lambda s: s.layer)


class WinnerRecorder:
    """Forward hooks that record, for each site, the top-k neurons of every real position.

    Hooks do nothing unless :attr:`enabled` is set, so they can stay registered during training without cost and
    without counting the forward recomputed by gradient checkpointing. Before each recorded forward pass the caller
    sets :attr:`positions`, the flat (batch x sequence) indices of the positions to credit; each hook reduces its
    activations on the device to ``(values, indices)`` of shape ``(len(positions), top_k)``.
    """

    def __init__(self, sites: Sequence[Site], top_k: int = 1):
        self.sites = list(sites)
        self.top_k = top_k
        self.enabled = False
        self.positions: torch.Tensor | None = None
        self.values: list[torch.Tensor | None] = [None] * len(self.sites)
        self.indices: list[torch.Tensor | None] = [None] * len(self.sites)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def attach(self) -> "WinnerRecorder":
        for slot, site in enumerate(self.sites):
            if site.capture == "input":
                hook = self._make_pre_hook(slot)
                self._handles.append(site.module.register_forward_pre_hook(hook))
            else:
                hook = self._make_post_hook(slot)
                self._handles.append(site.module.register_forward_hook(hook))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.values = [None] * len(self.sites)
        self.indices = [None] * len(self.sites)

    def _make_pre_hook(self, slot: int):
        def hook(module, args):
            if self.enabled:
                self._record(slot, args[0])

        return hook

    def _make_post_hook(self, slot: int):
        def hook(module, args, output):
            if self.enabled:
                self._record(slot, output[0] if isinstance(output, (tuple, list)) else output)

        return hook

    @torch.no_grad()
    def _record(self, slot: int, activations: torch.Tensor) -> None:
        flat = activations.detach().reshape(-1, activations.shape[-1])
        # Reduce before selecting rows: top-k reads the activations once and leaves a tiny tensor to index.
        if self.top_k == 1:
            values, indices = flat.max(dim=-1, keepdim=True)
        else:
            values, indices = flat.topk(self.top_k, dim=-1)
        if self.positions is not None:
            # A dispatched model runs each block on its own device: select there (a no-op copy when it is the same).
            positions = self.positions.to(values.device)
            values, indices = values.index_select(0, positions), indices.index_select(0, positions)
        self.values[slot], self.indices[slot] = values, indices

    def __enter__(self) -> "WinnerRecorder":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()
