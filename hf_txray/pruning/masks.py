"""Masking MLP neurons with forward pre-hooks (reversible): :func:`mask_neurons`, :func:`masked`, :func:`unprune`.

The hooks are a :class:`~hf_txray.hooks.Trace` holding one edit per layer (:func:`edit_neurons`); ablation fills
(:func:`hf_txray.probing.ablate`) use the same function, so every mask and fill is listed by :func:`active_masks`.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import warnings
from typing import Any, Iterable, Iterator, Mapping, Sequence, TypeVar

import pandas as pd
from torch import nn

from ..architectures import neuron_architecture
from ..errors import BlocksNotFoundError, ConfigurationError, ModelError
from ..hooks import Edit, Fill, Trace
from ..options import parse_layers, refuse_same_block, resolve_layer
from ..provenance import PRUNED_ATTRIBUTE, pruning_fingerprint, pruning_record
from ..sites import Site, find_sites, readable_sites, require_dense, text_config, text_depth, unwrap_model
from .plan import RANKED_MODULES, NeuronSpec, PruningPlan, explicit_neurons, table_pairs

ModelT = TypeVar("ModelT", bound=nn.Module)  # prune, apply_plan and unprune return the model they were given
# The model attribute listing the MaskHandles registered on it (set with object.__setattr__: not a submodule).
MASKS_ATTRIBUTE = "_txray_masks"
# And the number of times one was registered or removed (masks_version).
MASKS_VERSION_ATTRIBUTE = "_txray_masks_version"


def _warn_masks_not_saved(module: nn.Module, state_dict: Any, prefix: str, local_metadata: Any) -> None:
    warnings.warn(
        "This model has active hf_txray masks (mode='mask'): they are hooks, so its state dict and save_pretrained "
        "hold the unpruned weights. Save the plan too (plan.save_pretrained) and apply it after loading "
        "(hf_txray.pruning.apply_plan), or prune with mode='remove' to save a smaller model.", UserWarning,
        stacklevel=2)


class MaskHandle:
    """The masks (or fills) that :func:`mask_neurons` / :func:`edit_neurons` registered; :meth:`remove` takes them
    off again.

    Attributes:
        neurons (`dict[int, list[int]]`): the masked neurons per layer.
        plan (`PruningPlan`, *optional*): the plan the masks came from.
        trace (`Trace`): the hooks.
    """

    def __init__(self, model: nn.Module, neurons: dict[int, list[int]], trace: Trace, plan: PruningPlan | None = None):
        self.model, self.neurons, self.plan = model, neurons, plan
        self.trace = trace
        # masks are hooks, not weights: a state dict (save_pretrained, a Trainer checkpoint) holds the unpruned model
        self._save_warning = model.register_state_dict_post_hook(_warn_masks_not_saved)

    @property
    def active(self) -> bool:
        return self.trace.active

    def remove(self) -> None:
        """Remove the masks (idempotent); the model computes exactly as before they were added."""
        was_active = self.trace.active
        self.trace.remove()
        self._save_warning.remove()
        registry = getattr(self.model, MASKS_ATTRIBUTE, None)
        if registry is not None and self in registry:
            registry.remove(self)
            _count_change(self.model)
        if was_active:  # last: the model's own state is complete whatever interrupts it
            drop_compiled_graphs()

    def __enter__(self) -> "MaskHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        total = sum(len(v) for v in self.neurons.values())
        return f"MaskHandle(neurons={total}, layers={sorted(self.neurons)}, active={self.active})"


class MlpSites(dict):
    """The MLP sites that masks, fills and removal edit, by layer: the model's dense blocks.

    Mixture-of-experts layers have no per-unit input to edit (their units live inside fused experts), so they are
    left out; a model mixing both kinds (Qwen-MoE's ``mlp_only_layers``, ``decoder_sparse_step`` > 1) gives its dense
    blocks. The MoE sites are kept in `moe`, so that a request naming one is refused as such (:meth:`require`), not as
    a layer the model lacks.
    """

    def __init__(self, sites: Sequence[Site], unreadable: Mapping[int, ModelError] | None = None):
        super().__init__((site.layer, site) for site in sites if site.capture != "experts")
        self.moe: dict[int, Site] = {site.layer: site for site in sites if site.capture == "experts"}
        # blocks that cannot be read at all (Llama 4's MoE blocks beside its dense ones), with their refusal
        self.unreadable: dict[int, ModelError] = dict(unreadable or {})

    @property
    def widths(self) -> dict[int, int]:
        """Neurons per dense layer."""
        return {layer: site.width for layer, site in self.items()}

    def resolve_layers(self, layers: Any) -> list[int] | None:
        """`layers` as analyze takes them (``"0-3,7,-1"``, ``"all"``, an int, a list) as block indices, None for
        all: a negative index counts from the model's last block, dense or not, as analyze, probing and extraction
        count it (a mixture-of-experts or unreadable block resolves, so that :meth:`require` says why it is refused).

        Raises:
            ConfigurationError: an index that is no block of the model, or two naming one block.
        """
        chosen = parse_layers(layers)
        if chosen == "all":
            return None
        blocks = [resolve_layer(self.blocks, layer, "is not an MLP layer of the model") for layer in chosen]
        refuse_same_block(chosen, blocks, len(self.blocks))  # [1, -1] of 2 blocks was read as [1] without a word
        return sorted(blocks)

    @property
    def blocks(self) -> list[int]:
        """Every block of the model (dense, mixture-of-experts or unreadable): what a negative layer counts from."""
        return sorted({*self, *self.moe, *self.unreadable})

    def require(self, layers: Iterable[Any], what: str) -> None:
        """Refuse `what` on any of `layers` that is a mixture-of-experts layer (a ModelError naming the dense ones)."""
        wanted = set(layers)
        unreadable = sorted(wanted & set(self.unreadable))
        if unreadable:
            raise ModelError(f"{what} is not possible on layer {unreadable[0]}, which hf_txray cannot read: "
                             f"{self.unreadable[unreadable[0]]} Layers {sorted(self)} are dense MLP layers: those "
                             "can be.")
        require_dense([site for layer, site in sorted(self.moe.items()) if layer in wanted], what, sorted(self))

    def chosen(self, neurons: NeuronSpec, what: str) -> dict[int, list[int]]:
        """`neurons` as ``{layer: sorted indices}`` (:func:`~hf_txray.pruning.explicit_neurons`; a negative layer
        counts from the model's last block, as :meth:`resolve_layers`), refusing mixture-of-experts layers by name."""
        widths = {layer: site.width for layer, site in {**self.moe, **self}.items()}
        # unreadable layers have no width to check against: taken here, so that require() says why they are refused
        widths.update({layer: sys.maxsize for layer in self.unreadable})
        # every block has a width here (dense, MoE or unreadable): a negative layer counts from the last of them, as
        # resolve_layers counts layers= (explicit_neurons' default blocks)
        chosen = explicit_neurons(neurons, widths)
        self.require(chosen, what)
        return chosen


def mlp_sites(model: nn.Module, what: str = "Pruning or ablating neurons") -> MlpSites:
    """The model's dense MLP sites by layer (:class:`MlpSites`: the dense blocks of a model that mixes them with
    mixture-of-experts blocks, or with blocks hf_txray cannot read); refuses a model without a dense block (nothing
    per unit to mask)."""
    try:
        found, unreadable = readable_sites(model, "mlp")
    except BlocksNotFoundError as err:
        # its advice (pass `module_pattern`) is analyze's: these functions take no pattern and edit only the sites
        # the automatic search finds
        raise ModelError(
            f"{what} is not possible on {type(model).__name__}: it edits the MLP sites that hf_txray's automatic "
            "search finds, and that search finds no stack of identical transformer blocks (a hybrid stack of blocks "
            "of several classes, as Jamba's or Zamba2's, is not searched). A `module_pattern` profile of such a "
            "model can be analyzed and compared, but not pruned, masked or ablated.") from err
    sites = MlpSites(found, unreadable)
    if not sites:
        require_dense(found, what)
    return sites


def refuse_decoder_source(source: dict[str, Any]) -> None:
    """Refuse a ranking (a plan's ``source``) of an encoder-decoder's decoder stack: pruning acts on the encoder.

    Raises:
        ConfigurationError: `source` profiled the decoder stack.
    """
    if source.get("stack") == "decoder":
        raise ConfigurationError(
            "This plan was ranked on the decoder stack of an encoder-decoder, but pruning, masking and ablation act on "
            "the MLP neurons of the encoder: they would edit neurons the ranking never described. Rank them by "
            "profiles of the encoder (stack='encoder').")


def check_plan_sites(model: nn.Module, plan: PruningPlan, sites: dict[int, Site]) -> None:
    """Refuse a plan ranked on other modules than those its masks would edit: masks act on the MLP sites of the
    encoder (or only) stack that the automatic search finds, so a ranking of an encoder-decoder's decoder, or of
    modules a `module_pattern` named elsewhere, would prune neurons it never described (T5's stacks share their
    width, so nothing else catches it).

    Raises:
        ConfigurationError: the plan's source profiled the decoder stack, or other modules than the MLP sites.
        ModelError: the plan was ranked on a model of another architecture (``config.model_type``) or depth
            (``num_hidden_layers``), or numbered otherwise by ``prune(..., mode="remove")`` (its profile's
            ``provenance["runtime"]["pruned"]`` against this model's ``config.hf_txray_pruned``).
    """
    source = plan.source or {}
    config = getattr(model, "config", None)
    # the model's own type or its text model's (a plan ranked on Llama applies to LLaVA's Llama, and back)
    types = [neuron_architecture(t) for t in (getattr(config, "model_type", None),
                                              getattr(text_config(config), "model_type", None)) if t]
    model_type = types[-1] if types else None
    ranked = sorted({neuron_architecture(t) for t in source.get("model_types") or []})
    if len(ranked) > 1:  # a report saved before compare refused two architectures
        raise ModelError(
            f"This plan was ranked on a report between a {' and a '.join(ranked)} model, whose neurons with the same "
            "numbers are unrelated: it describes neither model's neurons. Rank them by profiles of one architecture.")
    if ranked and model_type and not set(types) & set(ranked):
        raise ModelError(
            f"This plan was ranked on the neurons of a {' / '.join(ranked)} model, and this model is a {model_type}: "
            "the same layer and neuron numbers are other neurons there. Rank them by profiles of this model.")
    refuse_decoder_source(source)
    depths, depth = source.get("num_hidden_layers") or [], text_depth(config, source.get("stack"))
    if depths and depth and depth not in depths:  # helper 152: MiniLM-L6's plan pruned layers 0-5 of a 12-layer BERT
        raise ModelError(
            f"This plan was ranked on the neurons of a {' / '.join(map(str, depths))}-block model, and this model has "
            f"{depth} blocks: it is another model, whose neurons with the same layer and number are others (a "
            "checkpoint loaded with fewer layers counts as another model too). Rank them by profiles of this model.")
    # helper 221: a plan ranked on a model pruned with mode="remove" names neurons by their new numbers; on a model
    # pruned otherwise to the same width (or not pruned) those numbers are other units, and the widths still fit
    # over the layers the source profiled (pruned_layers; every recorded layer for a plan saved before it was
    # recorded), where a whole-model match also holds (a report saved before compare recorded the profiled layers')
    ranked_on, record = source.get("pruned"), pruning_record(model)
    numbered = pruning_fingerprint(record, source.get("pruned_layers"))
    allowed = {ranked_on} if isinstance(ranked_on, str) else set(ranked_on or ())
    if allowed and not allowed & {numbered, pruning_fingerprint(record)}:
        ranked_on = " or ".join(sorted(allowed))
        def described(fingerprint: str, otherwise: str = "") -> str:
            return ("not pruned with mode='remove'" if fingerprint == "unpruned"
                    else f"pruned with mode='remove'{otherwise} (record {fingerprint})")

        raise ModelError(
            f"This plan was ranked on a model {described(ranked_on)}, and this model is "
            f"{described(numbered, ' otherwise' if ranked_on != 'unpruned' else '')} (config.hf_txray_pruned): its "
            "neurons with the same layer and number are other units. Rank them by profiles of this model, or apply "
            "the plan to the model it was ranked on.")
    pattern = source.get("module_pattern")
    if pattern:
        check_pattern_sites(model, "mlp", pattern, source.get("stack"), plan.neurons, sites, "plan was ranked on")


def check_pattern_sites(model: nn.Module, site: str, pattern: str, stack: str | None, layers: Iterable[int],
                        sites: Mapping[int, Site], ranked: str) -> None:
    """Refuse a ranking of the modules `pattern` names where, in one of `layers`, they are not the MLP site that
    masks and ablation edit (`sites`): the edit would hit neurons the ranking never described. `ranked` says what
    read them ("plan was ranked on", "probe read").

    Raises:
        ConfigurationError: naming the layer, the module read and the site edited.
    """
    read = {s.layer: s.name for s in find_sites(model, site, pattern, stack)}
    for layer in layers:
        if layer in sites and read.get(layer) != sites[layer].name:
            raise ConfigurationError(
                f"This {ranked} {read.get(layer)!r} (module_pattern {pattern!r}), but editing layer {layer} acts on "
                f"its MLP site {sites[layer].name!r}: it would hit neurons the ranking never described. Rank them "
                "on the MLP sites (no module_pattern).")


def check_ranked_modules(neurons: Any, model: nn.Module, sites: Mapping[int, Site] | None = None) -> None:
    """Refuse a ranking table (``result.top_neurons(k)``, ``result.ranking``) that records other units than the
    MLP neurons of the encoder (or only) stack, which ablation, masks and pruning edit: a residual or decoder probe's
    (layer, neuron) pairs name other units with the same numbers (helper 173: a residual probe's top neurons were
    ablated as MLP neurons, silently). The site and stack are checked where the table is read
    (:func:`~hf_txray.pruning.plan.table_pairs`), the modules of a `module_pattern` here, against `model`. A table
    without the record (one of your own) is taken as ranking the MLP sites."""
    record = neurons.attrs.get(RANKED_MODULES) if isinstance(neurons, pd.DataFrame) else None
    if not record:
        return
    table_pairs(neurons)  # its site and stack, before the modules are searched
    if record.get("module_pattern"):
        layers = sorted({int(layer) for layer in neurons["layer"]})
        check_pattern_sites(model, "mlp", record["module_pattern"], record.get("stack"), layers,
                            mlp_sites(model) if sites is None else sites, "probe read")


def check_plan(model: nn.Module, neurons: NeuronSpec, sites: "MlpSites", what: str) -> PruningPlan | None:
    """When `neurons` is a plan, refuse it where it does not fit `model` (its layers and widths:
    :func:`check_plan_fits`; what it was ranked on: :func:`check_plan_sites`), and a ranking table of other modules
    (:func:`check_ranked_modules`), before `what` (e.g. "Masking neurons") edits anything; returns the plan (None
    for a plain neuron list). Every edit of planned neurons goes through it."""
    check_ranked_modules(neurons, model, sites)
    plan = neurons if isinstance(neurons, PruningPlan) else None
    if plan is not None:
        if plan.site != "mlp":  # helper 186: a saved plan of another site was applied to the MLP neurons
            raise ConfigurationError(
                f"This plan is of the {plan.site!r} site, but {what[0].lower() + what[1:]} acts on MLP neurons (inputs "
                "of each block's down projection): its indices would name other units there. Plan MLP neurons "
                "(plan_pruning of a report or profile with site='mlp').")
        sites.require(plan.widths, what)
        check_plan_fits(plan.widths, sites)
        check_plan_sites(model, plan, sites)
    return plan


def check_plan_fits(plan_widths: Mapping[int, int], sites: dict[int, Site]) -> None:
    """Raise :class:`ModelError` when a plan's layers or widths differ from the model's MLP sites."""
    for layer, width in plan_widths.items():
        if layer not in sites:
            raise ModelError(f"The plan prunes layer {layer}, but the model's (dense) MLP layers are {sorted(sites)}.")
        if sites[layer].width != width:
            raise ModelError(
                f"The plan was made for {width} neurons in layer {layer}, but the model's layer has "
                f"{sites[layer].width} (a different model, or one already pruned with mode='remove')."
            )


def edit_neurons(model: nn.Module, neurons: dict[int, list[int]], edits: Mapping[int, Edit],
                 sites: dict[int, Site] | None = None, plan: PruningPlan | None = None) -> MaskHandle:
    """Keep `edits` (``{layer: Fill or function}``) on the MLP sites of `model` until the handle is removed.

    The hooks are registered first (``prepend=True``), so TX-Ray profiling hooks on the same modules see the edited
    activations, and they stay on across forward passes. The handle is listed by :func:`active_masks`.

    Args:
        model (`nn.Module`): a transformers model.
        neurons (`dict[int, list[int]]`): the edited neurons per layer (recorded on the handle).
        edits (`dict[int, Edit]`): the edit of each layer (layers without neurons need none).
        sites (`dict[int, Site]`, *optional*): the model's :func:`mlp_sites`, when already found.
        plan (`PruningPlan`, *optional*): the plan the edits come from.

    Returns:
        :class:`MaskHandle`.

    Raises:
        ConfigurationError: neurons that an active mask or fill of `model` sets to other values (it would run last
            and override these edits).
    """
    model = unwrap_model(model)  # a DataParallel / compiled wrapper: its model's sites, and masks kept on its model
    sites = mlp_sites(model) if sites is None else sites
    _refuse_overridden_edits(model, edits, sites)
    trace = Trace([sites[layer] for layer in edits], edit=edits, once=False, prepend=True)
    handle = MaskHandle(model, neurons, trace, plan)
    registry = getattr(model, MASKS_ATTRIBUTE, None)
    if registry is None:
        registry = []
        object.__setattr__(model, MASKS_ATTRIBUTE, registry)
    try:  # an interrupt once the hooks are on takes them off: no mask is left that no handle was returned for
        trace.attach()
        registry.append(handle)
        _count_change(model)
        drop_compiled_graphs()
    except BaseException:
        handle.remove()
        raise
    return handle


def _count_change(model: nn.Module) -> None:
    object.__setattr__(model, MASKS_VERSION_ATTRIBUTE, getattr(model, MASKS_VERSION_ATTRIBUTE, 0) + 1)


def masks_version(model: nn.Module) -> int:
    """How many times hf_txray masks or fills were put on `model` or taken off (on the model inside a DataParallel or
    compiled wrapper, where they are kept): a run that reads activations compares it at its start and end
    (:func:`refuse_changed_masks`)."""
    return getattr(unwrap_model(model), MASKS_VERSION_ATTRIBUTE, 0)


def refuse_changed_masks(model: nn.Module, version: int, what: str) -> None:
    """Refuse the result of a run whose model had hf_txray masks or ablations put on or taken off while it ran (in
    another thread: masks edit every thread's forward passes), `version` being :func:`masks_version` at its start.

    Raises:
        ModelError: naming `what` ran and the fix.
    """
    if masks_version(model) != version:
        raise ModelError(
            f"hf_txray masks or ablations were put on or taken off the model while {what} ran on it (another thread's "
            "`with hf_txray.ablate(...)` / `masked(...)`, or mask_neurons / unprune): masks edit the forward passes "
            "of every thread, so part of its forward passes ran with other neurons masked, and its numbers would "
            "mix two models. Run it again with no mask changing meanwhile (ablate in the same thread, before or "
            "after it), or use a copy of the model for the ablations (copy.deepcopy(model)).")


def _set_values(edit: Edit) -> dict[int, float | None]:
    """What a :class:`~hf_txray.hooks.Fill` sets each of its neurons to (a function edit: unknown, None each)."""
    if not isinstance(edit, Fill):
        return {}
    values = [0.0] * len(edit.indices) if edit.values is None else edit.values.tolist()
    return {int(i): float(v) for i, v in zip(edit.indices.tolist(), values)}


def _refuse_overridden_edits(model: nn.Module, edits: Mapping[int, Edit], sites: Mapping[int, Site]) -> None:
    """Refuse an edit of neurons that an active mask or fill of `model` already sets to another value.

    Each edit is a pre-hook registered first (``prepend=True``), so an earlier edit of the same neuron runs after a
    later one and overrides it: inside ``with ablate(model, n, mode="mean", ...)``, ``masked(model, n)`` left the
    neuron at its mean, not 0, and the other way round (helper 338), silently. Two edits that set a neuron to the
    same value (two masks) agree and are accepted."""
    for handle in active_masks(model):
        for slot, old in enumerate(handle.trace.edits):
            layer = handle.trace.sites[slot].layer
            new = edits.get(layer)
            if old is None or new is None or handle.trace.sites[slot].module is not sites[layer].module:
                continue
            before, after = _set_values(old), _set_values(new)
            if before and after:
                clash = [i for i in sorted(set(before) & set(after)) if before[i] != after[i]]
            else:  # a function edit may set any neuron of the layer
                clash = sorted(set(before) | set(after)) or ["all"]
            if clash:
                raise ConfigurationError(
                    f"Neurons {clash[:10]} of layer {layer} are already set by an active mask or ablation ({handle!r}) "
                    "to other values than this one sets: the earlier edit runs last and would override this one, "
                    "silently. Leave the other `with` block (or call unprune(model, handle)) first, or edit every "
                    "neuron in one call.")


def drop_compiled_graphs() -> None:
    """Make compiled code (``torch.compile(model)``, ``model.compile()``, or a compiled wrapper of a model that the
    model does not know of) see hooks added or removed since it was compiled: torch (``skip_nnmodule_hook_guards``) does
    not recompile for a new hook, so the cached graph ran without the masks (helper 142: a masked row of
    ``evaluate_pruning`` equal to the unpruned one, an ablation that changed nothing; helper 144: the wrapper of a
    model masked directly). Resets torch's compile caches (``torch._dynamo.reset()``) whenever torch's compiler is
    loaded, so the next compiled call compiles again with the hooks as they are; every compiled function of the
    process recompiles once."""
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()


def mask_neurons(model: nn.Module, neurons: NeuronSpec) -> MaskHandle:
    """Zero the output of the given MLP neurons until :meth:`MaskHandle.remove` (or :func:`unprune`) is called.

    The mask is a forward pre-hook on each layer's down projection (a :class:`~hf_txray.hooks.Fill`, see
    :func:`edit_neurons`) that sets the planned input features to exactly 0; it is registered first
    (``prepend=True``), so TX-Ray profiling hooks on the same module see the masked activations. Parameters are not
    modified.

    Args:
        model (`nn.Module`): a transformers model (BERT, GPT-2, Llama-style...; the dense blocks of a model that
            mixes them with mixture-of-experts blocks, such as Qwen-MoE with ``mlp_only_layers``).
        neurons (`dict[int, list[int]]`, list of ``(layer, index)`` pairs, `PruningPlan`, or DataFrame with ``layer``
            and ``neuron`` columns): what to mask.

    Returns:
        :class:`MaskHandle`.

    Raises:
        ModelError: a mixture-of-experts layer (no per-unit input to mask), or a plan that does not fit the model.
        ConfigurationError: a neuron out of range, a plan ranked on other modules than the MLP sites, or neurons
            that an active mask or ablation sets to other values (it would override this one).
    """
    model = unwrap_model(model)  # helper 367: DataParallel(model) was refused as declaring no MLP width
    sites = mlp_sites(model)
    plan = check_plan(model, neurons, sites, "Masking neurons")
    chosen = sites.chosen(neurons, "Masking neurons")
    edits = {layer: Fill(indices) for layer, indices in chosen.items() if indices}
    return edit_neurons(model, chosen, edits, sites, plan)


@contextlib.contextmanager
def masked(model: nn.Module, neurons: NeuronSpec) -> Iterator[MaskHandle]:
    """Context manager: the given MLP neurons output 0 inside the block, and the model is unchanged after it.

    The masks are the model's: every thread's forward passes run with them while the block runs (use a copy of the
    model for work that must not see them, e.g. a Gradio app's other requests).

    Args:
        model (`nn.Module`): a transformers model.
        neurons (`dict[int, list[int]]`, list of ``(layer, index)`` pairs, `PruningPlan`, or DataFrame with ``layer``
            and ``neuron`` columns): what to mask.

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
    """The masks hf_txray has registered on `model` (on the model inside a DataParallel or compiled wrapper, where
    they are kept) and not yet removed."""
    return list(getattr(unwrap_model(model), MASKS_ATTRIBUTE, None) or [])


def refuse_active_masks(model: nn.Module, what: str, why: str) -> None:
    """Refuse to run `what` on a model with hf_txray masks or fills on: `why` says what they would spoil.

    Raises:
        ConfigurationError: naming the active masks and ``hf_txray.unprune(model)``.
    """
    handles = active_masks(model)
    if handles:
        named = ", ".join(repr(h.plan) if h.plan is not None else "a mask" for h in handles[:2])
        raise ConfigurationError(
            f"The model has {len(handles)} active hf_txray mask(s) ({named}{', ...' if len(handles) > 2 else ''}): "
            f"{what} {why}. Remove them first: hf_txray.unprune(model).")


def masks_fingerprint(model: nn.Module) -> str | None:
    """A short digest of the hf_txray masks and fills active on `model` (which neurons, which values), None when
    there are none: a masked model computes other activations from the same weights."""
    handles = active_masks(model)
    if not handles:
        return None
    edits = [repr(edit) for handle in handles for edit in handle.trace.edits if edit is not None]
    return hashlib.sha256("|".join(edits).encode()).hexdigest()[:16]


def _removed(model: nn.Module, plan: PruningPlan) -> bool:
    """Whether the model's config records every neuron of `plan` removed (or zeroed) with ``mode="remove"``: a plan
    applied with ``apply_plan(model, plan, mode="remove")`` whatever its own mode. Only for a plan numbered as the
    unpruned model (ranked on one), whose indices are the record's."""
    record = pruning_record(model)
    if record is None or plan.source.get("pruned", "unpruned") != "unpruned" or not plan.total:
        return False
    kept, zeroed = record.get("kept") or {}, record.get("zeroed") or {}
    for layer, neurons in plan.neurons.items():
        if str(layer) not in kept and str(layer) not in zeroed:
            return False
        left = set(int(i) for i in kept.get(str(layer), [])) - set(int(i) for i in zeroed.get(str(layer), []))
        if set(int(i) for i in neurons) & left:
            return False
    return True


def unprune(model: ModelT, plan: PruningPlan | MaskHandle | None = None) -> ModelT:
    """Undo ``mode="mask"`` pruning: remove the masks of `plan` (or of every plan when None).

    The parameters were never modified, so the model computes bit for bit as before. ``mode="remove"`` cannot be
    undone (the weights are gone): reload the original model instead. Asked to undo a ``mode="remove"`` plan that
    is not masked on the model, unprune raises; with no plan, on a model whose config records a removal
    (``config.hf_txray_pruned``) and holds no mask, it warns that the model stays pruned.

    Args:
        model (`nn.Module`): the pruned model.
        plan (`PruningPlan` or `MaskHandle`, *optional*): which pruning to undo; defaults to all of them.

    Returns:
        The model (the same object).

    Raises:
        ModelError: `plan` is a ``mode="remove"`` plan (or one whose neurons the model's config records removed)
            that no active mask of the model comes from.
    """
    active, inner = active_masks(model), unwrap_model(model)
    matched = [h for h in active if plan is None or h is plan or h.plan is plan
               or (isinstance(plan, PruningPlan) and h.plan is not None and h.plan == plan)]  # e.g. reloaded from disk
    # helper 263: unprune after mode="remove" returned without a word, and the model stayed pruned
    # helper 265: a mode='mask' plan applied with apply_plan(model, plan, mode='remove') was 'undone' silently too
    if not matched and isinstance(plan, PruningPlan) and (plan.mode == "remove" or _removed(inner, plan)):
        raise ModelError(
            f"unprune cannot undo {plan!r}: {'it was' if plan.mode == 'remove' else 'its neurons were'} applied with "
            "mode='remove', which slices the MLP weights in place (or zeroes them, uneven='zero'), so nothing is left "
            "to restore. Reload the original model; to prune reversibly, apply the plan with mode='mask' "
            "(hf_txray.pruning.apply_plan(model, plan, mode='mask')).")
    if not matched and (plan is None or not active) and pruning_record(inner) is not None:
        warnings.warn("unprune: the model holds no hf_txray mask, and its config records neurons removed with "
                      f"mode='remove' ({PRUNED_ATTRIBUTE}): they cannot be restored, so the model stays pruned. "
                      "Reload the original model to undo a removal.", UserWarning, stacklevel=2)
    if plan is not None and active and not matched:
        warnings.warn(f"unprune: none of the model's {len(active)} active hf_txray mask(s) comes from this plan "
                      f"({plan!r}), so nothing was removed. unprune(model) removes every mask.", UserWarning,
                      stacklevel=2)
    for handle in matched:
        handle.remove()
    return model
