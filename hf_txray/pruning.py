"""TX-Ray-guided pruning of MLP neurons: choose neurons from a transfer report or a profile, then mask or remove them.

A neuron here is what TX-Ray profiles at the ``"mlp"`` site: one input feature of a block's MLP down projection
(BERT ``intermediate`` output, GPT-2 ``mlp.c_proj`` input, Llama ``mlp.down_proj`` input), addressed by
``(layer, index)`` exactly as in :class:`~hf_txray.TransferReport` and :class:`~hf_txray.Profile`.

Choosing (:func:`plan_pruning`) and applying (:func:`apply_plan`) are separate steps joined by :func:`prune`; the
:class:`PruningPlan` in between records exactly what was chosen, saves as JSON and can be applied again.

Two modes:

- ``"mask"``: a forward pre-hook on the down projection zeroes the planned activations. Parameters are untouched,
  so the model's weights, ``state_dict`` and saved files do not change and :func:`unprune` restores the original
  model bit for bit. :func:`masked` is the same mechanism as a context manager, for ablation studies.
- ``"remove"``: the MLP weights are sliced (the up/gate projections lose output rows, the down projection loses input
  columns), so the intermediate size really shrinks; the config's intermediate size is updated and the model saves
  with ``save_pretrained`` and reloads with the Auto classes. BERT, GPT-2 and Llama configs hold *one* intermediate
  size for all layers, so ``remove`` needs the same number of pruned neurons in every layer (``per_layer=True``
  plans over all layers). For uneven plans, ``uneven="zero"`` removes the common count from every layer and zeroes
  the down-projection columns of the remaining planned neurons (still exact, still a normal saved model).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn

from .errors import ConfigurationError, ModelError, ProfileFormatError
from .profile import Profile
from .report import TransferReport
from .sites import Site, _linear_dims, find_sites, require_dense
from .version import __version__

PLAN_FORMAT = "hf_txray.pruning_plan"
PLAN_FORMAT_VERSION = 1
PLAN_FILE = "txray_pruning_plan.json"
STRATEGIES = ("lost", "gained", "most_changed", "least_changed", "low_mass", "random")
REPORT_STRATEGIES = ("lost", "gained", "most_changed", "least_changed")
MODES = ("mask", "remove")
EXPLICIT = "explicit"
# Config attributes that hold the MLP intermediate size, in the order they are looked for.
INTERMEDIATE_SIZE_ATTRIBUTES = ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "ffn_hidden_size")
_ATTENTION_NAMES = ("attn", "attention")
_MASKS_ATTRIBUTE = "_txray_masks"

NeuronSpec = Union[Mapping[int, Sequence[int]], Sequence[Sequence[int]], "PruningPlan"]


# ----- the plan -------------------------------------------------------------------------------------------------
@dataclass
class PruningPlan:
    """Which MLP neurons to prune, how they were chosen and how they are applied.

    Args:
        strategy (`str`): ``"lost"``, ``"gained"``, ``"most_changed"``, ``"least_changed"``, ``"low_mass"``,
            ``"random"`` or ``"explicit"`` (a neuron list given by the user).
        amount (`int`, `float` or `dict[int, int]`): what was asked for: a count, a fraction, or counts per layer.
        per_layer (`bool`): whether `amount` applied to each layer (True) or to all selected layers together.
        seed (`int`, *optional*): seed of the random choice (``"random"``) and of the tie-breaking order.
        mode (`str`): ``"mask"`` or ``"remove"``.
        neurons (`dict[int, list[int]]`): the pruned neuron indices per layer (sorted; every selected layer listed).
        widths (`dict[int, int]`): neurons per layer when the plan was made (checked when it is applied).
        feature_type (`str`, *optional*): feature type of the Hellinger distance (``most_changed``/``least_changed``).
        stage (`str`, *optional*): which stage's mass ``low_mass`` used (``"a"``/``"b"`` of a report, or the profile).
        source (`dict`): where the ranking came from: the report's stages, models and corpora, or the profile's.
        site (`str`): the neuron site, always ``"mlp"``.

    Example:
        ```python
        >>> model, plan = hf_txray.prune(model, report, strategy="lost", amount=0.1)
        >>> plan.counts
        {0: 154, 1: 154, 2: 154, 3: 154, 4: 154, 5: 154}
        >>> plan.save("plans/lost-10.json")
        >>> hf_txray.PruningPlan.load("plans/lost-10.json") == plan
        True
        ```
    """

    strategy: str
    amount: Any
    per_layer: bool = True
    seed: int | None = None
    mode: str = "mask"
    neurons: dict[int, list[int]] = field(default_factory=dict)
    widths: dict[int, int] = field(default_factory=dict)
    feature_type: str | None = None
    stage: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    site: str = "mlp"
    hf_txray_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def counts(self) -> dict[int, int]:
        """Number of pruned neurons per layer."""
        return {layer: len(indices) for layer, indices in self.neurons.items()}

    @property
    def total(self) -> int:
        """Number of pruned neurons over all layers."""
        return sum(self.counts.values())

    @property
    def fraction(self) -> float:
        """Pruned neurons over the neurons of the planned layers."""
        width = sum(self.widths.get(layer, 0) for layer in self.neurons)
        return self.total / width if width else 0.0

    @property
    def name(self) -> str:
        """A short label such as ``"lost@0.1"`` or ``"random@0.1/seed=2"``."""
        label = f"{self.strategy}@{_amount_label(self.amount)}"
        return f"{label}/seed={self.seed}" if self.strategy == "random" else label

    def pairs(self) -> list[tuple[int, int]]:
        """The pruned neurons as sorted ``(layer, index)`` pairs."""
        return [(layer, int(i)) for layer in sorted(self.neurons) for i in self.neurons[layer]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["neurons"] = {str(k): [int(i) for i in v] for k, v in self.neurons.items()}
        data["widths"] = {str(k): int(v) for k, v in self.widths.items()}
        if isinstance(self.amount, Mapping):
            data["amount"] = {str(k): int(v) for k, v in self.amount.items()}
        return {"format": PLAN_FORMAT, "format_version": PLAN_FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PruningPlan":
        data = dict(data)
        fmt = data.pop("format", PLAN_FORMAT)
        version = data.pop("format_version", PLAN_FORMAT_VERSION)
        if fmt != PLAN_FORMAT:
            raise ProfileFormatError(f"Expected a {PLAN_FORMAT!r} document, got format {fmt!r}.")
        if version > PLAN_FORMAT_VERSION:
            raise ProfileFormatError(
                f"Pruning plan format version {version} is newer than this hf_txray supports ({PLAN_FORMAT_VERSION})."
            )
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["neurons"] = {int(k): [int(i) for i in v] for k, v in kwargs.get("neurons", {}).items()}
        kwargs["widths"] = {int(k): int(v) for k, v in kwargs.get("widths", {}).items()}
        if isinstance(kwargs.get("amount"), Mapping):
            kwargs["amount"] = {int(k): int(v) for k, v in kwargs["amount"].items()}
        return cls(**kwargs)

    def to_json(self, indent: int | None = 2) -> str:
        """The plan as a JSON string (layer keys become strings; :meth:`from_json` turns them back into ints)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "PruningPlan":
        """Rebuild a plan from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ProfileFormatError(f"Not a JSON pruning plan: {err}") from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the plan as JSON to `path` (a ``.json`` file, or a folder that gets ``txray_pruning_plan.json``)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / PLAN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PruningPlan":
        """Read a plan written by :meth:`save` (a file, or a folder holding ``txray_pruning_plan.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / PLAN_FILE
        if not path.exists():
            raise ProfileFormatError(f"No pruning plan at {path}.")
        return cls.from_json(path.read_text(encoding="utf-8"))


def _amount_label(amount: Any) -> str:
    if isinstance(amount, Mapping):
        return "custom"
    if amount is None:
        return "list"
    return f"{amount:g}" if isinstance(amount, float) else str(amount)


# ----- choosing neurons -----------------------------------------------------------------------------------------
def _source_info(source: TransferReport | Profile | None) -> dict[str, Any]:
    if isinstance(source, TransferReport):
        m = source.meta
        return {"kind": "report", "stage_a": m.stage_a, "stage_b": m.stage_b, "model_a": m.model_a,
                "model_b": m.model_b, "dataset_a": m.dataset_a, "dataset_b": m.dataset_b}
    if isinstance(source, Profile):
        m = source.meta
        return {"kind": "profile", "stage": m.stage, "model": m.model_id,
                "dataset": m.dataset_id or m.dataset_fingerprint}
    return {"kind": "none"}


def _source_widths(source: TransferReport | Profile) -> dict[int, int]:
    if isinstance(source, TransferReport):
        if source.meta.site != "mlp":
            raise ConfigurationError(
                f"Pruning works on MLP neurons, but this report compares the {source.meta.site!r} site. Profile the "
                "model with site='mlp'."
            )
        return {int(layer): int(source.meta.num_neurons) for layer in source.meta.layers}
    if source.meta.site != "mlp":
        raise ConfigurationError(
            f"Pruning works on MLP neurons, but this profile is of the {source.meta.site!r} site. Profile the model "
            "with site='mlp'."
        )
    return {int(layer): int(source.num_neurons) for layer in source.layers}


def _check_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigurationError(f"{what} must be an int, got {value!r}.")
    return int(value)


def _requested_counts(amount: Any, widths: dict[int, int], layers: list[int], per_layer: bool) -> dict[int, int] | int:
    """Per-layer counts (per_layer) or one total count, validated against the widths."""
    if isinstance(amount, Mapping):
        counts = {}
        for layer, count in amount.items():
            layer = _check_int(layer, "A layer key of amount")
            if layer not in widths:
                raise ConfigurationError(f"amount names layer {layer}, which is not available: {sorted(widths)}.")
            counts[layer] = _check_int(count, f"amount[{layer}]")
        layers = sorted(counts)
        per_layer = True
        amount_of = counts.get
    elif isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise ConfigurationError(
            f"amount must be an int (a count), a float in (0, 1] (a fraction) or a dict {{layer: count}}, got "
            f"{amount!r}."
        )
    elif isinstance(amount, (float, np.floating)):
        if not 0.0 < float(amount) <= 1.0:
            raise ConfigurationError(
                f"A float amount is a fraction of the neurons and must be in (0, 1], got {amount!r}. Pass an int for "
                "a count."
            )
        if per_layer:
            amount_of = lambda layer: int(round(float(amount) * widths[layer]))  # noqa: E731
        else:
            return int(round(float(amount) * sum(widths[layer] for layer in layers)))
    else:
        if int(amount) < 0:
            raise ConfigurationError(f"amount must be >= 0, got {amount!r}.")
        if not per_layer:
            total = sum(widths[layer] for layer in layers)
            if int(amount) > total:
                raise ConfigurationError(
                    f"amount={amount} is more than the {total} neurons of layers {layers}. Pass at most {total}, or a "
                    "fraction."
                )
            return int(amount)
        amount_of = lambda layer: int(amount)  # noqa: E731
    counts = {layer: amount_of(layer) for layer in layers}
    for layer, count in counts.items():
        if count < 0 or count > widths[layer]:
            raise ConfigurationError(
                f"amount asks for {count} neurons in layer {layer}, which has {widths[layer]}. Pass at most "
                f"{widths[layer]} per layer, or a fraction."
            )
    return counts


def _tie_break(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.permutation(size)


def _ranking(source: TransferReport | Profile | None, strategy: str, layers: list[int], widths: dict[int, int],
             feature_type: str | None, stage: str | None,
             rng: np.random.Generator) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per layer: candidate neuron indices in pruning order (first = pruned first) and their scores."""
    if strategy == "random":
        order, scores = {}, {}
        for layer in layers:
            score = rng.random(widths[layer])
            order[layer] = np.argsort(-score, kind="stable")
            scores[layer] = score[order[layer]]
        return order, scores
    if strategy == "low_mass":
        if isinstance(source, Profile):
            mass = {layer: source.neuron_mass[source.layers.index(layer)] for layer in layers}
        else:
            column = "mass_a" if stage == "a" else "mass_b"
            frame = source.neurons
            mass = {layer: frame.loc[frame["layer"] == layer].sort_values("neuron")[column].to_numpy()
                    for layer in layers}
        frame_scores = {layer: -np.asarray(values, dtype=np.float64) for layer, values in mass.items()}
        candidates = {layer: np.ones(widths[layer], dtype=bool) for layer in layers}
    else:
        frame = source.neurons
        frame_scores, candidates = {}, {}
        for layer in layers:
            rows = frame.loc[frame["layer"] == layer].sort_values("neuron")
            if strategy == "lost":
                candidates[layer] = (rows["status"] == "lost").to_numpy()
                frame_scores[layer] = rows["mass_a"].to_numpy(np.float64)
            elif strategy == "gained":
                candidates[layer] = (rows["status"] == "gained").to_numpy()
                frame_scores[layer] = rows["mass_b"].to_numpy(np.float64)
            else:
                h = rows[f"hellinger_{feature_type}"].to_numpy(np.float64)
                candidates[layer] = ~np.isnan(h)
                frame_scores[layer] = h if strategy == "most_changed" else -h
    order, scores = {}, {}
    for layer in layers:
        score = np.where(candidates[layer], frame_scores[layer], -np.inf)
        tie = _tie_break(rng, len(score))
        ranked = np.lexsort((tie, -score))  # highest score first, ties in a seeded random order
        ranked = ranked[candidates[layer][ranked]]
        order[layer], scores[layer] = ranked, score[ranked]
    return order, scores


def _explicit_neurons(spec: Any, widths: dict[int, int]) -> dict[int, list[int]]:
    if isinstance(spec, PruningPlan):
        spec = spec.neurons
    if isinstance(spec, Mapping):
        items = [(layer, index) for layer, indices in spec.items() for index in indices]
        chosen: dict[int, set[int]] = {_check_int(layer, "A layer key"): set() for layer in spec}
    else:
        try:
            items = [tuple(pair) for pair in spec]
        except TypeError:
            raise ConfigurationError(
                f"An explicit neuron list is a dict {{layer: [index, ...]}} or a list of (layer, index) pairs, got "
                f"{spec!r}."
            ) from None
        chosen = {}
    for item in items:
        if len(item) != 2:
            raise ConfigurationError(f"An explicit neuron is a (layer, index) pair, got {item!r}.")
        layer, index = _check_int(item[0], "A neuron's layer"), _check_int(item[1], "A neuron's index")
        if layer not in widths:
            raise ConfigurationError(f"Layer {layer} is not available: the model has MLP layers {sorted(widths)}.")
        if not 0 <= index < widths[layer]:
            raise ConfigurationError(f"Neuron {index} is out of range: layer {layer} has {widths[layer]} neurons.")
        chosen.setdefault(layer, set()).add(index)
    return {layer: sorted(indices) for layer, indices in sorted(chosen.items())}


def plan_pruning(
    source: TransferReport | Profile | None,
    strategy: str | Mapping[int, Sequence[int]] | Sequence[Sequence[int]] = "lost",
    amount: int | float | Mapping[int, int] = 0.1,
    *,
    seed: int = 0,
    per_layer: bool = True,
    layers: Sequence[int] | None = None,
    feature_type: str | None = None,
    stage: str = "b",
    mode: str = "mask",
    allow_fewer: bool = False,
    widths: Mapping[int, int] | None = None,
) -> PruningPlan:
    """Choose the neurons to prune, without touching a model (arguments as :func:`prune`).

    `widths` (``{layer: neurons}``) is needed only when `source` is None (a ``random`` or explicit plan).

    Returns:
        :class:`PruningPlan`.
    """
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    if widths is None:
        if source is None:
            raise ConfigurationError("plan_pruning needs a report, a profile, or widths={layer: neurons}.")
        widths = _source_widths(source)
    widths = {int(k): int(v) for k, v in widths.items()}
    info = _source_info(source)
    if not isinstance(strategy, str):
        neurons = _explicit_neurons(strategy, widths)
        return PruningPlan(strategy=EXPLICIT, amount=None, per_layer=True, seed=None, mode=mode, neurons=neurons,
                           widths={layer: widths[layer] for layer in neurons}, source=info)
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"Unknown pruning strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}, or pass an explicit "
            "neuron list ({layer: [index, ...]} or [(layer, index), ...])."
        )
    if strategy in REPORT_STRATEGIES and not isinstance(source, TransferReport):
        what = "a Profile" if isinstance(source, Profile) else "no report"
        raise ConfigurationError(
            f"Strategy {strategy!r} compares two stages and needs a TransferReport (hf_txray.compare(a, b)), but got "
            f"{what}. With a single profile use 'low_mass' or 'random'."
        )
    if strategy == "low_mass" and source is None:
        raise ConfigurationError("Strategy 'low_mass' needs a TransferReport or a Profile to read neuron masses from.")
    if stage not in ("a", "b"):
        raise ConfigurationError(f"stage must be 'a' or 'b' (which stage's mass 'low_mass' ranks by), got {stage!r}.")
    if strategy in ("most_changed", "least_changed"):
        feature_types = source.meta.feature_types
        feature_type = feature_type or feature_types[0]
        if feature_type not in feature_types:
            raise ConfigurationError(f"Feature type {feature_type!r} is not in this report: {feature_types}.")
    else:
        feature_type = None
    if layers is None:
        selected = sorted(widths)
    else:
        selected = sorted({_check_int(layer, "A layer") for layer in layers})
        missing = [layer for layer in selected if layer not in widths]
        if missing or not selected:
            raise ConfigurationError(
                f"layers {list(layers)} are not all available; available layers: {sorted(widths)}.")
    requested = _requested_counts(amount, widths, selected, per_layer)
    if isinstance(requested, dict):
        selected = sorted(requested)
    rng = np.random.default_rng(seed)
    order, scores = _ranking(source, strategy, selected, widths, feature_type, stage, rng)
    if isinstance(requested, dict):
        neurons = {}
        for layer in selected:
            want, have = requested[layer], len(order[layer])
            if want > have and not allow_fewer:
                raise ConfigurationError(
                    f"Strategy {strategy!r} has only {have} candidate neurons in layer {layer}, fewer than the {want} "
                    f"asked for. Ask for fewer, pass per_layer=False, or allow_fewer=True to take all {have}."
                )
            neurons[layer] = sorted(int(i) for i in order[layer][:want])
    else:
        pool = [(float(s), layer, int(i)) for layer in selected for s, i in zip(scores[layer], order[layer])]
        have = len(pool)
        if requested > have and not allow_fewer:
            raise ConfigurationError(
                f"Strategy {strategy!r} has only {have} candidate neurons in layers {selected}, fewer than the "
                f"{requested} asked for. Ask for fewer, or pass allow_fewer=True to take all {have}."
            )
        tie = rng.permutation(len(pool))
        ranked = sorted(range(len(pool)), key=lambda k: (-pool[k][0], tie[k]))[:requested]
        neurons = {layer: [] for layer in selected}
        for k in ranked:
            neurons[pool[k][1]].append(pool[k][2])
        neurons = {layer: sorted(v) for layer, v in neurons.items()}
    return PruningPlan(
        strategy=strategy, amount=dict(amount) if isinstance(amount, Mapping) else amount, per_layer=per_layer,
        seed=seed, mode=mode, neurons=neurons, widths={layer: widths[layer] for layer in selected},
        feature_type=feature_type, stage=("profile" if isinstance(source, Profile) else stage)
        if strategy == "low_mass" else None, source=info,
    )


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


def _blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    from .sites import _find_blocks

    return _find_blocks(model)


def _up_projections(block: nn.Module, block_path: str, site: Site) -> list[tuple[str, nn.Module]]:
    """The linear layers of a block that produce the neurons (BERT intermediate.dense, GPT-2 c_fc, Llama gate_proj
    and up_proj): output width == site width, not the down projection, not inside attention."""
    found = []
    for name, module in block.named_modules():
        dims = _linear_dims(module)
        if dims is None or module is site.module or dims[1] != site.width:
            continue
        if any(token in part.lower() for part in name.split(".") for token in _ATTENTION_NAMES):
            continue
        found.append((f"{block_path}.{name}" if block_path else name, module))
    return found


def _intermediate_attribute(config: Any, width: int) -> str:
    for name in INTERMEDIATE_SIZE_ATTRIBUTES:
        if not hasattr(config, name):
            continue
        value = getattr(config, name)
        if value == width or (name == "n_inner" and value is None):
            return name
    raise ModelError(
        f"Could not find the config attribute holding the MLP intermediate size ({width}) among "
        f"{', '.join(INTERMEDIATE_SIZE_ATTRIBUTES)}, so a model with removed neurons could not be saved and reloaded. "
        "Use mode='mask'."
    )


def remove_neurons(model: nn.Module, neurons: NeuronSpec, uneven: str = "error") -> nn.Module:
    """Slice the MLP weights so the planned neurons no longer exist (in place); see :func:`prune` with mode='remove'.

    Args:
        model (`nn.Module`): a transformers model whose config has one intermediate size for all layers.
        neurons (`dict[int, list[int]]`, list of ``(layer, index)`` pairs, or `PruningPlan`): what to remove.
        uneven (`str`, *optional*, defaults to `"error"`): when layers lose different numbers of neurons:
            ``"error"`` raises; ``"zero"`` removes the smallest per-layer count from every layer and zeroes the
            down-projection columns of the other planned neurons (same outputs as masking, still one width).

    Returns:
        The model (the same object), with a smaller intermediate size in its config.
    """
    if uneven not in ("error", "zero"):
        raise ConfigurationError(f"uneven must be 'error' or 'zero', got {uneven!r}.")
    if active_masks(model):
        raise ConfigurationError(
            "The model has active hf_txray masks: remove them first (hf_txray.unprune(model)); removing neurons "
            "renumbers them and would leave the masks on the wrong neurons."
        )
    sites = _mlp_sites(model)
    if isinstance(neurons, PruningPlan):
        _check_plan_fits(neurons.widths, sites)
    widths = {layer: site.width for layer, site in sites.items()}
    chosen = _explicit_neurons(neurons, widths)
    counts = {layer: len(chosen.get(layer, [])) for layer in sites}
    if len(set(widths.values())) != 1:
        raise ModelError(f"The model's MLP layers already have different widths {widths}; cannot remove neurons.")
    width = next(iter(widths.values()))
    if len(set(counts.values())) != 1 and uneven == "error":
        raise ConfigurationError(
            f"mode='remove' needs the same number of pruned neurons in every layer, because the config holds one "
            f"intermediate size for all layers (BERT, GPT-2, Llama); this plan prunes {counts}. Use per_layer=True "
            "over all layers, mode='mask', or uneven='zero' (remove the common count, zero the rest)."
        )
    common = min(counts.values())
    if common == width:
        raise ConfigurationError("mode='remove' cannot remove every neuron of a layer; prune fewer.")
    config = getattr(model, "config", None)
    attribute = _intermediate_attribute(config, width) if config is not None else None
    hidden = getattr(config, "hidden_size", None) if config is not None else None
    if hidden and common and width - common <= hidden:
        warnings.warn(
            f"After removal the MLP is {width - common} wide, not wider than the hidden size {hidden}: the model "
            "works and saves, but hf_txray's automatic site search (the widest linear layer that narrows) no longer "
            "finds its down projections, so profiling or pruning it again needs `module_pattern`.", UserWarning, stacklevel=3)
    prefix, blocks = _blocks(model)
    ups = {layer: _up_projections(blocks[layer], f"{prefix}.{layer}" if prefix else str(layer), site)
           for layer, site in sites.items()}
    for layer, found in ups.items():
        if not found:
            raise ModelError(
                f"Could not find the projection(s) producing the MLP neurons of layer {layer} (linear layers of the "
                f"block with output width {width}); mode='remove' supports BERT, GPT-2 and Llama-style MLPs."
            )
    with torch.no_grad():
        for layer, site in sites.items():
            planned = chosen.get(layer, [])
            removed, zeroed = planned[:common], planned[common:]
            if zeroed:
                down = site.module
                index = torch.as_tensor(zeroed, dtype=torch.long, device=down.weight.device)
                down.weight.index_fill_(0 if not isinstance(down, nn.Linear) else 1, index, 0.0)
            if not removed:
                continue
            keep = torch.as_tensor(sorted(set(range(width)) - set(removed)), dtype=torch.long)
            for _, module in ups[layer]:
                _slice_linear(module, keep, "out")
            _slice_linear(site.module, keep, "in")
            for module in (model.get_submodule(site.name.rsplit(".", 1)[0]),):
                if getattr(module, "intermediate_size", None) == width:
                    module.intermediate_size = width - common
    if attribute is not None and common:
        setattr(config, attribute, width - common)
    return model


# ----- the one-call API ------------------------------------------------------------------------------------------
def prune(
    model: nn.Module,
    report_or_profile: TransferReport | Profile | None = None,
    strategy: str | Mapping[int, Sequence[int]] | Sequence[Sequence[int]] = "lost",
    amount: int | float | Mapping[int, int] = 0.1,
    *,
    seed: int = 0,
    mode: str = "mask",
    per_layer: bool = True,
    layers: Sequence[int] | None = None,
    feature_type: str | None = None,
    stage: str = "b",
    allow_fewer: bool = False,
    uneven: str = "error",
) -> tuple[nn.Module, PruningPlan]:
    """Prune MLP neurons of `model` chosen by TX-Ray (or at random, or from a list), and record a plan.

    Strategies (each ranks candidates; the first `amount` are pruned; ties are broken in a `seed`-ed random order):

    - ``"lost"``: neurons credited in stage A but never in stage B (deactivated), largest mass in A first;
    - ``"gained"``: neurons credited only in stage B, largest mass in B first;
    - ``"most_changed"`` / ``"least_changed"``: shared neurons by Hellinger distance of `feature_type`;
    - ``"low_mass"``: lowest credited mass (stage `stage` of a report, or the profile's); never-credited neurons first;
    - ``"random"``: uniformly at random with `seed`: the baseline to compare every strategy with, at the same amount;
    - an explicit neuron list: ``{layer: [index, ...]}`` or ``[(layer, index), ...]`` (`amount` is ignored).

    Args:
        model (`nn.Module`): the model to prune (in place), whose neurons the report/profile describes (usually the
            stage-B model of the report, e.g. the fine-tuned one).
        report_or_profile (`TransferReport` or `Profile`, *optional*): the ranking source; a Profile supports only
            ``low_mass``, ``random`` and explicit lists; None only ``random`` and explicit lists.
        strategy (`str` or neuron list, *optional*, defaults to `"lost"`): see above.
        amount (`int`, `float` or `dict[int, int]`, *optional*, defaults to 0.1): a count, a fraction in (0, 1],
            or counts per layer.
        seed (`int`, *optional*, defaults to 0): seed of ``random`` and of tie-breaking.
        mode (`str`, *optional*, defaults to `"mask"`): ``"mask"`` (reversible hooks, see :func:`unprune`) or
            ``"remove"`` (weights sliced; the model saves and reloads with a smaller intermediate size).
        per_layer (`bool`, *optional*, defaults to `True`): apply `amount` to each layer (True) or to all selected
            layers ranked together (False).
        layers (`list[int]`, *optional*): restrict to these layers (default: every layer of the source/model).
        feature_type (`str`, *optional*): feature type of the Hellinger distance (default: the report's first).
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
        ModelError: the report does not fit the model (layers, widths), or the MLP cannot be sliced.

    Example:
        ```python
        >>> report = hf_txray.compare(pretrained_profile, finetuned_profile)
        >>> model, plan = hf_txray.prune(model, report, strategy="lost", amount=0.1)   # masked, reversible
        >>> hf_txray.pruning.unprune(model)
        >>> model, plan = hf_txray.prune(model, report, strategy="lost", amount=0.1, mode="remove")
        >>> model.save_pretrained("pruned")   # reloads with AutoModel... as a smaller model
        ```
    """
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    sites = _mlp_sites(model)
    model_widths = {layer: site.width for layer, site in sites.items()}
    if report_or_profile is not None and not isinstance(report_or_profile, (TransferReport, Profile)):
        raise ConfigurationError(
            f"report_or_profile must be a TransferReport, a Profile or None, got {type(report_or_profile).__name__}."
        )
    if report_or_profile is not None:
        _check_plan_fits(_source_widths(report_or_profile), sites)
        widths = _source_widths(report_or_profile)
    else:
        widths = model_widths
    plan = plan_pruning(report_or_profile, strategy, amount, seed=seed, per_layer=per_layer, layers=layers,
                        feature_type=feature_type, stage=stage, mode=mode, allow_fewer=allow_fewer,
                        widths=widths if isinstance(strategy, str) else model_widths)
    apply_plan(model, plan, uneven=uneven)
    return model, plan


def apply_plan(model: nn.Module, plan: PruningPlan, mode: str | None = None, uneven: str = "error") -> nn.Module:
    """Apply a (saved) :class:`PruningPlan` to `model` in its mode (or in `mode`, overriding it).

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


def load_pretrained_with_head(name_or_path: str, **kwargs: Any) -> nn.Module:
    """Load a saved model with the class named in its config (``architectures``), so task heads are kept.

    Falls back to ``AutoModel``. Used by the CLI; raises :class:`ModelError` when nothing loads.
    """
    import transformers
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err
    cls = None
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            break
    try:
        return (cls or AutoModel).from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err


__all__ = [
    "PruningPlan", "prune", "plan_pruning", "apply_plan", "mask_neurons", "masked", "unprune", "remove_neurons",
    "active_masks", "MaskHandle", "STRATEGIES", "load_pretrained_with_head",
]
