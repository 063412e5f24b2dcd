"""The one-call API: :func:`prune` (plan + apply) and :func:`apply_plan`."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
from torch import nn

from ..errors import ConfigurationError
from ..profile import Profile
from ..report import DEFAULT_MIN_COUNT, TransferReport
from ..sites import unwrap_model
from .masks import (ModelT, check_plan, check_plan_fits, check_ranked_modules, mlp_sites, mask_neurons,
                    refuse_decoder_source)
from .plan import MODES, PruningPlan, plan_pruning, resolved_amount, source_info, source_widths
from .remove import check_removable, remove_neurons


# ----- the one-call API ------------------------------------------------------------------------------------------
def prune(
    model: ModelT,
    report_or_profile: TransferReport | Profile | None = None,
    strategy: str | Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | pd.DataFrame = "lost",
    amount: int | float | Mapping[int, int] = 0.1,
    *,
    seed: int | None = 0,
    mode: str = "mask",
    per_layer: bool = True,
    layers: Sequence[int] | None = None,
    feature_type: str | None = None,
    stage: str = "b",
    allow_fewer: bool = False,
    uneven: str = "error",
    min_count: int = DEFAULT_MIN_COUNT,
) -> tuple[ModelT, PruningPlan]:
    """Prune MLP neurons of `model` chosen by TX-Ray (or at random, or from a list), and record a plan.

    Strategies (each ranks candidates; the first `amount` are pruned; ties are broken in a `seed`-ed random order):

    - ``"lost"``: neurons credited in stage A but never in stage B (deactivated), largest mass in A first;
    - ``"gained"``: neurons credited only in stage B, largest mass in B first;
    - ``"most_changed"`` / ``"least_changed"``: shared neurons by Hellinger distance of `feature_type`;
    - ``"low_mass"``: lowest credited mass (stage `stage` of a report, or the profile's); never-credited neurons first;
    - ``"random"``: uniformly at random with `seed`: the baseline to compare every strategy with, at the same amount;
    - a strategy of your own, registered with :func:`~hf_txray.pruning.register_pruning_strategy`;
    - an explicit neuron list: ``{layer: [index, ...]}``, ``[(layer, index), ...]`` or a DataFrame with ``layer``
      and ``neuron`` columns (as :func:`~hf_txray.ablate` takes: a probe's ``top_neurons(k)``, a filtered
      ``neuron_stats()``) (`amount` is ignored).

    Args:
        model (`nn.Module`): the model to prune (in place), whose neurons the report/profile describes (usually the
            stage-B model of the report, e.g. the fine-tuned one). In a model mixing dense and mixture-of-experts
            blocks (Qwen-MoE's ``mlp_only_layers``), the dense blocks: a plan without a source covers those, and a
            source or `layers` naming a mixture-of-experts layer is refused.
        report_or_profile (`TransferReport` or `Profile`, *optional*): the ranking source; a Profile supports only
            ``low_mass``, ``random`` and explicit lists; None only ``random`` and explicit lists.
        strategy (`str` or neuron list, *optional*, defaults to `"lost"`): see above.
        amount (`int`, `float` or `dict[int, int]`, *optional*, defaults to 0.1): a count, a fraction in (0, 1],
            or counts per layer (a negative layer key counts from the model's last block, as `layers`).
        seed (`int`, *optional*, defaults to 0): seed of ``random`` and of tie-breaking; None draws one, which the
            plan records (``plan.seed``).
        mode (`str`, *optional*, defaults to `"mask"`): ``"mask"`` (reversible hooks, see :func:`unprune`) or
            ``"remove"`` (weights sliced; the model saves and reloads with a smaller intermediate size).
        per_layer (`bool`, *optional*, defaults to `True`): apply `amount` to each layer (True) or to all selected
            layers ranked together (False).
        layers (`list[int]` or `str`, *optional*): restrict to these layers: block indices (negative: counted from
            the model's last block, as :func:`hf_txray.analyze`, ``ablation_curve`` and probing count them: -1 of a
            12-block model is block 11, refused when the source did not profile it, or when it is a
            mixture-of-experts block), or text such as ``"0-3,7,-1"`` (default, or ``"all"``: every layer of the
            source/model).
        feature_type (`str`, *optional*): feature type of the Hellinger distance (default: the report's first).
        min_count (`int`, *optional*, defaults to 20): ``most_changed`` / ``least_changed`` rank only the shared
            neurons credited at least this many times with a value of `feature_type` in both stages, as
            :meth:`TransferReport.most_changed` does:
            below it a distance is mostly sampling noise (rarely credited neurons tie at distance 1.0, and the
            ranking became a seeded draw among them).
        stage (`str`, *optional*, defaults to `"b"`): for ``low_mass`` on a report, rank by the mass of stage
            ``"a"`` or ``"b"``.
        allow_fewer (`bool`, *optional*, defaults to `False`): when a strategy has fewer candidates than asked
            (e.g. fewer lost neurons than `amount`), take them all instead of raising.
        uneven (`str`, *optional*, defaults to `"error"`): ``mode="remove"`` with different counts per layer:
            ``"error"`` or ``"zero"`` (see :func:`remove_neurons`).

    Returns:
        `tuple(nn.Module, PruningPlan)`: the model (same object, pruned) and the plan.

    Raises:
        ConfigurationError: unknown strategy or mode, `amount` larger than the neurons available, a two-stage
            strategy given a profile, too few candidates.
        ModelError: the report does not fit the model (layers, widths), names a mixture-of-experts layer (expert
            units have no per-unit input to mask), or the MLP cannot be sliced.

    Example:
        ```python
        >>> report = hf_txray.compare(pretrained_profile, finetuned_profile)
        >>> # allow_fewer: a layer may have fewer lost neurons than 10% (else a ConfigurationError says so)
        >>> model, plan = hf_txray.prune(model, report, strategy="lost", amount=0.1, allow_fewer=True)   # masked
        >>> hf_txray.pruning.unprune(model)   # bit-exact undo
        >>> # remove needs one count in every layer: uneven="zero" removes the common count and zeroes the excess
        >>> model, plan = hf_txray.prune(model, report, strategy="lost", amount=0.1, allow_fewer=True, mode="remove",
        ...                              uneven="zero")
        >>> model.save_pretrained("results/pruned")   # reloads with AutoModel... as a smaller model
        ```
    """
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    # the dense blocks of a model mixing them with mixture-of-experts ones; of the model inside a DataParallel or
    # compiled wrapper (its config declared no MLP width), as apply_plan prunes that one
    sites = mlp_sites(unwrap_model(model))
    model_widths = sites.widths
    if report_or_profile is not None and not isinstance(report_or_profile, (TransferReport, Profile)):
        raise ConfigurationError(
            f"report_or_profile must be a TransferReport, a Profile or None, got {type(report_or_profile).__name__}."
        )
    if report_or_profile is not None:  # before its layers and widths are read as the encoder's (helper 179)
        refuse_decoder_source(source_info(report_or_profile))
    # Mixture-of-experts layers are refused by name before planning (they would read as layers the model lacks).
    if layers is not None:  # negative: from the model's last block, as analyze, ablation_curve and probing count
        layers = sites.resolve_layers(layers)
        sites.require(layers or [], "Pruning")
    if not isinstance(strategy, str):  # its negative layers counted from the model's last block, dense or not
        check_ranked_modules(strategy, unwrap_model(model), sites)  # a table of a residual or decoder probe
        strategy = sites.chosen(strategy, "Pruning")
    if isinstance(amount, Mapping):  # its negative keys likewise ({-1: 3} was refused as "not available")
        amount = resolved_amount(amount, sites.blocks)
        sites.require(amount, "Pruning")
    if report_or_profile is not None:
        widths = source_widths(report_or_profile)
        sites.require(widths, "Pruning")
        check_plan_fits(widths, sites)
    else:
        widths = model_widths
    plan = plan_pruning(report_or_profile, strategy, amount, seed=seed, per_layer=per_layer, layers=layers,
                        feature_type=feature_type, stage=stage, mode=mode, allow_fewer=allow_fewer,
                        widths=widths if isinstance(strategy, str) else model_widths, min_count=min_count)
    apply_plan(model, plan, uneven=uneven)
    return model, plan


def apply_plan(model: ModelT, plan: PruningPlan, mode: str | None = None, uneven: str = "error") -> ModelT:
    """Apply a (saved) :class:`PruningPlan` to `model` in its mode (or in `mode`, overriding it).

    A DataParallel or compiled wrapper is pruned through the model inside (its masks are kept there, and
    ``mode="remove"`` slices its weights); ``mode="remove"`` refuses DistributedDataParallel, FSDP and DeepSpeed.

    Returns:
        The model (the same object). In ``"mask"`` mode the masks are undone by :func:`unprune`.
    """
    mode = mode or plan.mode
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    if mode == "mask":
        mask_neurons(model, plan)
    else:
        remove_neurons(model, plan, uneven=uneven)
    return model


def check_applicable(model: nn.Module, plan: PruningPlan, mode: str | None = None, uneven: str = "error") -> None:
    """Raise what :func:`apply_plan` would raise for `plan` on `model` (in its mode, or `mode`), changing nothing:
    :func:`hf_txray.evaluate_pruning` checks every plan before it evaluates any."""
    mode = mode or plan.mode
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    if mode == "mask":
        model = unwrap_model(model)  # mask_neurons masks the model inside a wrapper
        sites = mlp_sites(model)
        check_plan(model, plan, sites, "Masking neurons")
        sites.chosen(plan, "Masking neurons")
    else:
        check_removable(model, plan, uneven)
