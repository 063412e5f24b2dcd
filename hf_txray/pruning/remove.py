"""Removing MLP neurons for good: slice the up/gate and down projections and shrink the config's intermediate size."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from ..architectures import DENSE_BLOCK_WIDTHS, expected_mlp_widths, hidden_size
from ..distributed import refuse_offloaded
from ..errors import ConfigurationError, ModelError
from ..forward import on_own_default_device
from ..provenance import PRUNED_ATTRIBUTE, pruning_record
from ..sites import (MODEL_WRAPPERS, Site, find_blocks, in_token_mixer, named_linears, peft_base_layer, quantized_weight,
                     resolve_stack, text_model, unwrap_model)
from .masks import check_plan, mlp_sites, refuse_active_masks
from .plan import NeuronSpec

# Wrappers whose model inside may be sliced: DataParallel copies the model's parameters at every forward, and a
# compiled model recompiles for the new shapes. DDP, FSDP and DeepSpeed hold the parameters they synchronise (FSDP
# flattened), which new, sliced ones would escape.
SLICEABLE_WRAPPERS = ("DataParallel", "OptimizedModule")
# Config attributes that hold the MLP intermediate size, in the order they are looked for.
INTERMEDIATE_SIZE_ATTRIBUTES = ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "ffn_hidden_size", "hidden_dim", "dff")
# Fused projections holding the gate and the up halves of a gated MLP, ``[gate; up]`` (Phi-3, GLM; ModernBERT's
# ``Wi``, split ``input, gate = Wi(x).chunk(2)``; the dense Granite-4.0-H's ``shared_mlp.input_linear``, split
# ``gate, up = input_linear(x).chunk(2)``): 2 x width outputs, unit i in row i of each half.
FUSED_GATE_UP = ("gate_up_proj", "Wi", "input_linear")
_ATTENTION_NAMES = ("attn", "attention")


# ----- removing -----------------------------------------------------------------------------------------------------
def _slice_linear(module: nn.Module, keep: torch.Tensor, side: str) -> None:
    """Keep the given output features (side='out') or input features (side='in') of a Linear or Conv1D."""
    is_conv1d = not isinstance(module, nn.Linear)
    weight = module.weight
    # Linear weight is (out, in); GPT-2 Conv1D weight is (in, out).
    dim = (1 if side == "out" else 0) if is_conv1d else (0 if side == "out" else 1)
    new_weight = weight.detach().index_select(dim, keep.to(weight.device)).clone()
    module.weight = nn.Parameter(new_weight, requires_grad=weight.requires_grad)
    if side == "out" and getattr(module, "bias", None) is not None:
        bias = module.bias
        module.bias = nn.Parameter(bias.detach().index_select(0, keep.to(bias.device)).clone(),
                                   requires_grad=bias.requires_grad)
    size = len(keep)
    if is_conv1d:
        if side == "out":
            module.nf = size
        else:
            module.nx = size
    elif side == "out":
        module.out_features = size
    else:
        module.in_features = size


def _up_projections(block: nn.Module, block_path: str, site: Site) -> list[tuple[str, nn.Module, int]]:
    """The linear layers of a block that produce the neurons (BERT intermediate.dense, GPT-2 c_fc, Llama gate_proj
    and up_proj, Phi-3's fused gate_up_proj), with how many halves each holds per neuron (2 for a fused
    ``[gate; up]``): output width == site width (or twice it, fused), not the down projection, not in a token mixer
    (:func:`~hf_txray.sites.in_token_mixer`: attention, a state-space mixer, LFM2's short convolution, whose
    ``in_proj`` is as wide as an MLP of ``intermediate_size = 3 x hidden`` and was taken for an up projection)."""
    found = []
    for name, module, dims in named_linears(block):
        if module is site.module:
            continue
        halves = 2 if name.rsplit(".", 1)[-1] in FUSED_GATE_UP and dims[1] == 2 * site.width else 1
        if dims[1] != halves * site.width:
            continue
        if in_token_mixer(block, name):
            continue
        found.append((f"{block_path}.{name}" if block_path else name, module, halves))
    return found


def _per_unit_parameter(model: nn.Module, site: Site, ups: list[tuple[str, nn.Module, int]],
                        follows_width: set[str] | None = None) -> str | None:
    """A parameter of the MLP holding the down projection, other than the projections' own, that is as long as the
    MLP is wide (BitNet's ``ffn_sub_norm``, an RMSNorm over the units before the down projection; the NormFormer
    ``ffn_layernorm`` of Kosmos-2's text model): slicing the projections would leave it at the old width. Returns its
    qualified name, or None. Attention is never looked into.

    Args:
        follows_width (`set[str]`, *optional*): where the MLP is as wide as the hidden size, the parameters whose
            shape follows the config's MLP width (:func:`_width_followers`): a parameter as long as the hidden size
            but not among them is over the hidden size (OPT's ``final_layer_norm``, beside ``fc2`` in its layer).
    """
    parent_name = site.name.rpartition(".")[0]
    sliced = {id(site.module)} | {id(module) for _, module, _ in ups}
    for name, module in model.get_submodule(parent_name).named_modules():
        if id(module) in sliced or any(token in part.lower() for part in name.split(".") for token in _ATTENTION_NAMES):
            continue
        for parameter_name, parameter in module.named_parameters(recurse=False):
            qualified = ".".join(part for part in (parent_name, name, parameter_name) if part)
            if site.width in parameter.shape and (follows_width is None or qualified in follows_width):
                return qualified
    return None


def _width_followers(model: nn.Module, config: Any, attribute: str | None, width: int) -> set[str] | None:
    """The parameters of `model` whose shape changes with the config's MLP width `attribute`, where that width is
    the hidden size (a parameter of that length may then be over either); None otherwise, or where the model's class
    cannot be rebuilt from its config to tell."""
    if attribute is None or config is None or hidden_size(config) != width:
        return None
    changed = copy.deepcopy(config)
    setattr(changed, attribute, width - 1)
    before, after = _parameter_shapes(model, config), _parameter_shapes(model, changed)
    if before is None or after is None:
        return None
    return {name for name in before if before[name] != after.get(name)}


def _intermediate_attribute(config: Any, width: int) -> str:
    # a model mixing dense and MoE blocks states its dense blocks' width apart (Llama 4's intermediate_size_mlp),
    # and only dense blocks are removed from: that attribute first, even where intermediate_size happens to be equal
    dense = DENSE_BLOCK_WIDTHS.get(getattr(config, "model_type", ""), ())
    for name in dense:
        # left unset (Cohere2-MoE's prefix_dense_intermediate_size, its default), the dense blocks take
        # intermediate_size, which also sizes the experts and the shared experts: cutting that attribute saved a
        # model that failed to load; the dense blocks' own attribute gives them the new width alone
        if (hasattr(config, name) and getattr(config, name) is None
                and getattr(config, "intermediate_size", None) == width):
            return name
    # then the attribute the site search reads for this family (architectures.WIDTH_OVERRIDES: the decoder_ffn_dim of
    # MarianForCausalLM and BartForCausalLM, XLNet's d_inner), which _check_rebuilds checks sets the width
    declared = [name for name in expected_mlp_widths(config, None)[0] if hasattr(config, name)]
    names = tuple(dict.fromkeys((*dense, *INTERMEDIATE_SIZE_ATTRIBUTES, *declared)))
    for name in names:
        if not hasattr(config, name):
            continue
        value = getattr(config, name)
        if value == width or (name == "n_inner" and value is None):
            return name
    raise ModelError(
        f"Could not find the config attribute holding the MLP intermediate size ({width}) among "
        f"{', '.join(names)}, so a model with removed neurons could not be saved and reloaded. "
        "Use mode='mask' (CLI: --mode mask)."
    )


@on_own_default_device
def remove_neurons(model: nn.Module, neurons: NeuronSpec, uneven: str = "error") -> nn.Module:
    """Slice the MLP weights so the planned neurons no longer exist (in place); see :func:`prune` with mode='remove'.

    Args:
        model (`nn.Module`): a transformers model whose config has one intermediate size for all layers (for a model
            mixing dense and mixture-of-experts blocks, such as Qwen-MoE with ``mlp_only_layers``, one for its dense
            blocks, which are the ones removed from; expert units are refused).
        neurons (`dict[int, list[int]]`, list of ``(layer, index)`` pairs, `PruningPlan`, or DataFrame with ``layer``
            and ``neuron`` columns): what to remove.
        uneven (`str`, *optional*, defaults to `"error"`): when layers lose different numbers of neurons:
            ``"error"`` raises; ``"zero"`` removes the smallest per-layer count from every layer and zeroes the
            down-projection columns of the other planned neurons (same outputs as masking, still one width).

    Returns:
        The model (the same object), with a smaller intermediate size in its config.

    Raises:
        ModelError: `model` wraps its model in DistributedDataParallel, FSDP or DeepSpeed (whose parameters slicing
            would replace), or the model cannot be sliced (see :func:`prune`). An exception or Ctrl-C between layers
            leaves the layers already cut as they are (undoing would keep a second copy of the MLP weights); it carries
            a note naming them, and the model should be loaded again.
    """
    model = removable_model(model)  # a DataParallel / compiled wrapper: the model inside is sliced
    sites, chosen, common, width, attribute, config, ups = _prepare_removal(model, neurons, uneven, warn=True)
    sliced: list[int] = []
    try:
        _slice_layers(model, sites, chosen, common, width, ups, sliced)
    except BaseException as error:  # an interrupt between layers leaves some sliced and the config still whole
        if sliced:
            error.add_note(f"hf_txray: prune(mode='remove') was stopped after changing layer(s) {sliced} in place, "
                           f"with the config still at {width} neurons: the model is half-pruned; load it again.")
        raise
    if attribute is not None and (common or pruning_record(model)):
        _own_config(model, config)
        setattr(model.config, attribute, width - common)
        # the neurons are renumbered 0..width-common-1: say which original neuron each one is, so that its profiles
        # say so and compare refuses to match them by number with the unpruned model's (a second removal composes)
        setattr(model.config, PRUNED_ATTRIBUTE, _removal_record(pruning_record(model), sites, chosen, common, width))
    if common:
        _warn_unfound(model, width - common)
    return model


def _slice_layers(model: nn.Module, sites: dict, chosen: dict[int, list[int]], common: int, width: int, ups: dict,
                  sliced: list[int]) -> None:
    """Slice (or zero) each layer's planned neurons in place, appending each layer to `sliced` once it is changed."""
    with torch.no_grad():
        for layer, site in sites.items():
            planned = chosen.get(layer, [])
            removed, zeroed = planned[:common], planned[common:]
            if zeroed:
                down = site.module
                index = torch.as_tensor(zeroed, dtype=torch.long, device=down.weight.device)
                down.weight.index_fill_(0 if not isinstance(down, nn.Linear) else 1, index, 0.0)
                sliced.append(layer)
            if not removed:
                continue
            keep = torch.as_tensor(sorted(set(range(width)) - set(removed)), dtype=torch.long)
            for _, module, halves in ups[layer]:  # a fused [gate; up] loses the unit from both halves
                _slice_linear(module, torch.cat([keep + half * width for half in range(halves)]), "out")
            _slice_linear(site.module, keep, "in")
            if not zeroed:
                sliced.append(layer)
            for module in (model.get_submodule(site.name.rsplit(".", 1)[0]),):
                if getattr(module, "intermediate_size", None) == width:
                    module.intermediate_size = width - common


def _warn_unfound(model: nn.Module, new_width: int) -> None:
    """Warn when the automatic site search no longer finds the MLP of the model left by a removal: an MLP as wide as
    the hidden size, whose up projection has the down projection's shape, where names do not say which is which
    (BERT's ``intermediate.dense`` and ``output.dense``). A narrower MLP is found: its up projection does not return
    the hidden size."""
    try:
        mlp_sites(model)
    except ModelError as err:
        warnings.warn(
            f"After removal the MLP is {new_width} wide: the model works and saves, but hf_txray's automatic site "
            f"search no longer finds its down projections, so profiling or pruning it again needs `module_pattern` "
            f"({err})", UserWarning, stacklevel=4)


def _removal_record(previous: dict[str, Any] | None, layers: Any, chosen: dict[int, list[int]], common: int,
                   width: int) -> dict[str, Any]:
    """The :data:`~hf_txray.provenance.PRUNED_ATTRIBUTE` record after removing ``chosen[layer][:common]`` (and
    zeroing the rest) from each of `layers`, `width` neurons wide, of a model whose earlier removals `previous`
    recorded: indices are the original model's (layer keys as text, as config.json writes them)."""
    previous = previous or {}
    before = previous.get("kept") or {}
    record: dict[str, Any] = {"original_width": int(previous.get("original_width") or width), "kept": {},
                              "zeroed": {}}
    for layer in layers:
        original = [int(i) for i in before.get(str(layer), range(width))]
        planned = chosen.get(layer, [])
        removed = set(planned[:common])
        record["kept"][str(layer)] = [original[i] for i in range(width) if i not in removed]
        zeroed = set(int(i) for i in (previous.get("zeroed") or {}).get(str(layer), []))
        zeroed |= {original[i] for i in planned[common:]}
        zeroed -= {original[i] for i in removed}
        if zeroed:
            record["zeroed"][str(layer)] = sorted(zeroed)
    if not record["zeroed"]:
        del record["zeroed"]
    return record


def check_removable(model: nn.Module, neurons: NeuronSpec, uneven: str = "error") -> None:
    """Raise what :func:`remove_neurons` would raise for `neurons` on `model`, without changing it (so that a list of
    plans is checked before any is evaluated)."""
    _prepare_removal(removable_model(model), neurons, uneven, warn=False)


def removable_model(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel or compiled wrapper (:func:`~hf_txray.sites.unwrap_model`), else `model`.

    Raises:
        ModelError: a DistributedDataParallel, FSDP or DeepSpeed wrapper: it holds the parameters it synchronises,
            and slicing replaces them.
    """
    layer = model
    while unwrap_model(layer) is not layer:  # one wrapper at a time (DataParallel of a compiled model)
        if type(layer).__name__ not in SLICEABLE_WRAPPERS:
            raise ModelError(
                f"mode='remove' cannot slice a model inside a {type(layer).__name__} wrapper: the wrapper holds the "
                "parameters it synchronises, and slicing replaces them. Remove the neurons from the plain model "
                "before wrapping it (prune(wrapper.module, ...)), or use mode='mask' (CLI: --mode mask).")
        layer = getattr(layer, MODEL_WRAPPERS[type(layer).__name__])
    return layer


def _prepare_removal(model: nn.Module, neurons: NeuronSpec, uneven: str, warn: bool) -> tuple:
    """Every check of :func:`remove_neurons` (nothing is changed); returns what the slicing needs."""
    if uneven not in ("error", "zero"):
        raise ConfigurationError(f"uneven must be 'error' or 'zero', got {uneven!r}.")
    refuse_active_masks(model, "removing neurons", "renumbers them and would leave the masks on the wrong neurons")
    refuse_offloaded(model, "mode='remove' slices the MLP weights in place, outside any forward pass",
                     "Load the model without offloading to remove neurons, or use mode='mask' (CLI: --mode mask), "
                     "which masks activations during the forward.")
    if resolve_stack(model, None)[0] is not None:
        raise ModelError(
            f"mode='remove' does not support encoder-decoders ({type(model).__name__}): pruning acts on the encoder's "
            "MLP neurons, and their width is either shared with the decoder in the config (T5's d_ff: a removed "
            "encoder width would no longer match the decoder's weights) or held per stack (BART's encoder_ffn_dim), "
            "which mode='remove' does not update. Use mode='mask' (CLI: --mode mask).")
    if text_model(model) is not None:
        raise ModelError(
            f"mode='remove' does not support composite models ({type(model).__name__}, a vision-language model): "
            "their text model's width lives in a text config nested in the model's config, which slicing would leave "
            "behind, so the saved model would not load. Use mode='mask' (CLI: --mode mask).")
    sites = mlp_sites(model)  # the dense blocks of a model mixing them with mixture-of-experts ones
    check_plan(model, neurons, sites, "Removing neurons")
    widths = sites.widths
    chosen = sites.chosen(neurons, "Removing neurons")
    counts = {layer: len(chosen.get(layer, [])) for layer in sites}
    if len(set(widths.values())) != 1:
        raise ModelError(f"The model's MLP layers already have different widths {widths}; cannot remove neurons.")
    width = next(iter(widths.values()))
    if len(set(counts.values())) != 1 and uneven == "error":
        raise ConfigurationError(
            f"mode='remove' needs the same number of pruned neurons in every layer, because the config holds one "
            f"intermediate size for all layers (BERT, GPT-2, Llama); this plan prunes {counts}. Use per_layer=True "
            "over all layers (the CLI's default), mode='mask' (--mode mask), or uneven='zero' (--uneven zero: remove "
            "the common count, zero the rest)."
        )
    common = min(counts.values())
    if warn and uneven == "zero" and not common and any(counts.values()):  # helper 152: nothing removed, without a word
        warnings.warn(f"uneven='zero': a layer has no planned neuron ({counts}), so none is removed and every planned "
                      "neuron is zeroed: the model keeps its width and its parameters. Plan neurons in every layer "
                      "to shrink it.", UserWarning, stacklevel=4)
    if common == width:
        raise ConfigurationError("mode='remove' cannot remove every neuron of a layer; prune fewer.")
    config = getattr(model, "config", None)
    attribute = _intermediate_attribute(config, width) if config is not None else None
    earlier = pruning_record(model)
    stale = [layer for layer in sites if earlier and len((earlier.get("kept") or {}).get(str(layer), ())) != width]
    if stale:  # the record would name the wrong original neurons after this removal
        raise ModelError(
            f"The model's config records an earlier mode='remove' ({PRUNED_ATTRIBUTE}) that does not match its layer "
            f"{stale[0]}, {width} neurons wide: its weights were changed after that pruning. Delete the record "
            f"(del model.config.{PRUNED_ATTRIBUTE}) if this model's neurons are to be numbered afresh.")
    prefix, blocks = find_blocks(model)
    ups = {layer: _up_projections(blocks[layer], f"{prefix}.{layer}" if prefix else str(layer), site)
           for layer, site in sites.items()}
    wrapped = [site.name for site in sites.values() if peft_base_layer(site.module) is not None] + [
        name for found in ups.values() for name, module, _ in found if peft_base_layer(module) is not None]
    if wrapped:
        raise ModelError(
            f"mode='remove' cannot slice layers wrapped by a PEFT adapter ({wrapped[0]!r}): the adapter's own weights "
            "(LoRA's A and B, IA3's scales) would keep the old width. Merge the adapter first "
            "(model = model.merge_and_unload()), or use mode='mask' (CLI: --mode mask), which masks the wrapper's "
            "input, the adapter's branch included.")
    # An adapter elsewhere (attention) leaves the MLP sliceable, but an adapted model's save_pretrained (PEFT's, or
    # transformers' with load_adapter) writes the adapter alone: reloaded onto its base, the model is unpruned.
    adapted = next((name for name, module in model.named_modules() if peft_base_layer(module) is not None), None)
    if adapted is not None:
        raise ModelError(
            f"mode='remove' cannot prune a model holding PEFT adapter layers ({adapted!r}): its save_pretrained "
            "writes the adapter alone, which reloads onto the unpruned base model, so the removed neurons would come "
            "back without a word. Merge the adapter first (model = model.merge_and_unload()), or use mode='mask' "
            "(CLI: --mode mask), whose logits are the same.")
    quantized = next(((name, how) for name, module in [(site.name, site.module) for site in sites.values()] + [
        (name, module) for found in ups.values() for name, module, _ in found]
        for how in [quantized_weight(module)] if how is not None), None)
    if quantized is not None:  # quanto: the sliced float weight was re-quantized with other scales; torchao: crashed
        raise ModelError(
            f"mode='remove' cannot slice {quantized[0]!r}, {quantized[1]}: its weight is stored quantized (with "
            "scales per row or group), and slicing it would leave a float weight that the layer re-quantizes with "
            "other scales (optimum-quanto: the pruned model's logits moved away from the masked model's, without "
            "an error) or fail. Use mode='mask' (CLI: --mode mask), which zeroes the units before the layer and "
            "leaves its weights as they are; or remove the neurons from the unquantized model, then quantize it.")
    follows_width = _width_followers(model, config, attribute, width)
    for layer, found in ups.items():
        per_unit = _per_unit_parameter(model, sites[layer], found, follows_width)
        if per_unit is not None:  # BitNet's ffn_sub_norm: remove sliced the projections, then every forward failed
            raise ModelError(
                f"mode='remove' cannot remove neurons of {type(model).__name__}: {per_unit!r} holds one value per MLP "
                f"unit ({sites[layer].width}) between the units and the down projection (a normalisation over the "
                "units, as BitNet's ffn_sub_norm), which slicing the projections does not cut; and a normalisation "
                "over fewer units would scale the others otherwise, so the smaller model would not compute what "
                "the masked one does. Use mode='mask' (CLI: --mode mask), which zeroes the units where they are "
                "profiled, after that normalisation.")
        if not found:
            raise ModelError(
                f"Could not find the projection(s) producing the MLP neurons of layer {layer} (linear layers of the "
                f"block with output width {width}); mode='remove' supports BERT, GPT-2 and Llama-style MLPs."
            )
    if attribute is not None and common:
        downs = [site.name for site in sites.values()]
        _check_rebuilds(model, config, attribute, width, width - common, downs,
                        [name for found in ups.values() for name, _, _ in found])
    return sites, chosen, common, width, attribute, config, ups


def _parameter_shapes(model: nn.Module, config: Any) -> dict[str, tuple[int, ...]] | None:
    """The parameter shapes of `model`'s class built from `config` on the meta device (no memory, no weights), as
    ``from_pretrained`` builds it before loading; None where the class cannot be built so."""
    try:
        with torch.device("meta"):
            built = type(model)(config)
    except Exception:  # a class that takes more than its config: nothing to compare with
        return None
    return {name: tuple(p.shape) for name, p in built.named_parameters(remove_duplicate=False)}


def _check_rebuilds(model: nn.Module, config: Any, attribute: str, width: int, new_width: int, downs: list[str],
                    ups: list[str]) -> None:
    """Refuse a removal whose config change would not rebuild the model it leaves: `attribute` set to `new_width`
    must narrow exactly the sliced weights (of the down projections `downs` and the up/gate projections `ups`,
    qualified names, and the latter's biases) from `width` to `new_width` units, and change no other parameter.
    LFM2 computes its MLP width from `intermediate_size` by a rounding rule (where the rule happens to give back the
    declared width, that attribute was cut and the saved model failed to load), and an attribute shared with the
    experts (Cohere2-MoE's intermediate_size) would narrow them too."""
    changed = copy.deepcopy(config)
    setattr(changed, attribute, new_width)
    before, after = _parameter_shapes(model, config), _parameter_shapes(model, changed)
    if before is None or after is None:
        return
    expected = ({f"{module}.weight" for module in downs + ups} | {f"{module}.bias" for module in ups}) & set(before)
    others = sorted(n for n in set(before) | set(after) if n not in expected and before.get(n) != after.get(n))
    narrowed = [n for n in sorted(expected) if n in after and
                int(torch.Size(after[n]).numel()) * width != int(torch.Size(before[n]).numel()) * new_width]
    if not others and not narrowed:
        return
    name = others[0] if others else narrowed[0]
    raise ModelError(
        f"mode='remove' would set config.{attribute} = {new_width} ({width} before), but {type(model).__name__} "
        f"built from that config gives {name!r} the shape {list(after.get(name, ()))} (now "
        f"{list(before.get(name, ()))}; the removal leaves "
        f"{'it unchanged' if others else 'it ' + str(new_width) + ' units wide'}): the attribute "
        f"{'also sizes other layers' if others else 'is not what sets the MLP width'}, so the saved model would not "
        "load. Use mode='mask' (CLI: --mode mask), whose outputs are the same.")


def _own_config(model: nn.Module, config: Any) -> None:
    """Give `model` (and its submodules that hold the same config) a copy of `config` before it changes: models
    built from one config object share it, and the others keep their width."""
    own = copy.deepcopy(config)
    for module in model.modules():
        if getattr(module, "config", None) is config:
            module.config = own
