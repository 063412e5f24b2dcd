"""The pruning plan (:class:`PruningPlan`) and choosing the neurons it holds (:func:`plan_pruning`)."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from ..architectures import neuron_architecture
from ..artifact import Artifact
from ..counts import as_number, check_count, check_switch, is_int
from ..errors import ConfigurationError, ProfileFormatError
from ..indices import whole_number, whole_numbers
from ..io_utils import read_json, write_json
from ..logging import warnings_caught
from ..options import parse_layers, refuse_same_block, resolve_layer
from ..profile import Profile
from ..provenance import pruning_fingerprint, recorded_architecture, recorded_depths, recorded_pruning
from ..report import DEFAULT_MIN_COUNT, TransferReport
from ..rng import drawn_seed
from ..significance import check_min_count
from ..tables import RANKED_MODULES, amount_label, percent
from ..version import __version__
from .strategies import RankingInput, check_feature_type_used, get_pruning_strategy, is_random_strategy, rank

PLAN_FILE = "pruning_plan.json"  # the plan in a folder saved with save_pretrained
MODES = ("mask", "remove")
EXPLICIT = "explicit"

NeuronSpec = Union[Mapping[int, Sequence[int]], Sequence[Sequence[int]], "PruningPlan", pd.DataFrame]

# RANKED_MODULES: the key of a ranking table's ``attrs`` that records the modules it ranked (its home: hf_txray.tables)


# ----- the plan -------------------------------------------------------------------------------------------------
@dataclass
class PruningPlan(Artifact):
    """Which MLP neurons to prune, how they were chosen and how they are applied.

    Args:
        strategy (`str`): ``"lost"``, ``"gained"``, ``"most_changed"``, ``"least_changed"``, ``"low_mass"``,
            ``"random"``, a strategy registered with :func:`~hf_txray.pruning.register_pruning_strategy`, or
            ``"explicit"`` (a neuron list given by the user).
        amount (`int`, `float` or `dict[int, int]`): what was asked for: a count, a fraction, or counts per layer.
        per_layer (`bool`): whether `amount` applied to each layer (True) or to all selected layers together (a
            dict amount is per layer: always True).
        seed (`int`, *optional*): seed of the random choice (``"random"``) and of the tie-breaking order.
        mode (`str`): ``"mask"`` or ``"remove"``.
        neurons (`dict[int, list[int]]`): the pruned neuron indices per layer (sorted; every selected layer listed).
        widths (`dict[int, int]`): neurons per layer when the plan was made (checked when it is applied).
        feature_type (`str`, *optional*): feature type of the Hellinger distance (``most_changed``/``least_changed``).
        min_count (`int`, *optional*): the fewest credits in each stage a neuron needed to be ranked by Hellinger
            distance (``most_changed``/``least_changed``).
        stage (`str`, *optional*): which stage's mass ``low_mass`` used (``"a"``/``"b"`` of a report, or the profile).
        source (`dict`): where the ranking came from: the report's stages, models and corpora, or the profile's.
        site (`str`): the neuron site, always ``"mlp"``; a plan of another site is refused when applied.
        hf_txray_version (`str`, *optional*): the version that made the plan; defaults to this one.
        created_at (`str`, *optional*): ISO 8601 time of creation (UTC); defaults to now.

    Example:
        ```python
        >>> model, plan = hf_txray.prune(model, report, strategy="low_mass", amount=0.1)   # MiniLM: 1,536 a layer
        >>> plan.counts
        {0: 154, 1: 154, 2: 154, 3: 154, 4: 154, 5: 154}
        >>> plan.save_pretrained("results/plans/low-mass-10")
        >>> hf_txray.PruningPlan.from_pretrained("plans/low-mass-10") == plan
        True
        ```

    Saved as one JSON file (``pruning_plan.json``, layer keys as strings).
    """

    artifact_type = "pruning_plan"
    format_version = 1

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
    min_count: int | None = None
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
    def requested(self) -> int:
        """Number of neurons `amount` asked for in the planned layers: more than :attr:`total` where a strategy had
        fewer candidates and ``allow_fewer`` took all it had (an explicit plan: :attr:`total`)."""
        if self.amount is None or not self.widths:
            return self.total
        try:
            with warnings_caught():  # a fraction rounding to no neuron was said when the plan was made
                warnings.simplefilter("ignore")
                counts = _requested_counts(self.amount, self.widths, sorted(self.widths), self.per_layer)
        except ConfigurationError:  # a plan file edited by hand: what it holds is all it says
            return self.total
        return sum(counts.values()) if isinstance(counts, dict) else int(counts)

    @property
    def size(self) -> str:
        """The pruned neurons in words, e.g. ``"922 neurons (10.0%)"``; where fewer were taken than asked
        (``allow_fewer``) both, e.g. ``"258 neurons (2.8%), fewer than the 922 asked (10.0%): all the candidates"``."""
        said = f"{self.total} neurons ({percent(self.fraction)})"
        asked = self.requested
        if asked <= self.total:
            return said
        width = sum(self.widths.values())
        return (f"{said}, fewer than the {asked} asked ({percent(asked / width if width else 0.0)}): all the "
                "candidates the strategy had (allow_fewer)")

    @property
    def name(self) -> str:
        """A short label such as ``"lost@0.1"`` or ``"random@0.1/seed=2"``."""
        label = f"{self.strategy}@{_amount_label(self.amount)}"
        return f"{label}/seed={self.seed}" if is_random_strategy(self.strategy) else label

    def __repr__(self) -> str:
        # the neuron lists run to thousands of indices: counts per layer instead (``plan.neurons`` holds them)
        source = {k: v for k, v in self.source.items() if k in ("kind", "stage", "stage_a", "stage_b")}
        return (f"PruningPlan({self.name}, mode={self.mode!r}, {self.size}, counts "
                f"by layer {self.counts}, source {source})")

    def pairs(self) -> list[tuple[int, int]]:
        """The pruned neurons as sorted ``(layer, index)`` pairs."""
        return [(layer, int(i)) for layer in sorted(self.neurons) for i in self.neurons[layer]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["neurons"] = {str(k): [int(i) for i in v] for k, v in self.neurons.items()}
        data["widths"] = {str(k): int(v) for k, v in self.widths.items()}
        if isinstance(self.amount, Mapping):
            data["amount"] = {str(k): int(v) for k, v in self.amount.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PruningPlan":
        """The plan :meth:`to_dict` wrote.

        Args:
            data (`Mapping[str, Any]`): the saved record.

        Raises:
            ProfileFormatError: `data` is not a dict with ``strategy`` and ``amount``, or its ``neurons``, ``widths``
                or per-layer ``amount`` are not whole numbers by layer (``{"0": [1.5]}`` was read as neuron 1; ``{}``
                failed with a bare TypeError "missing 2 required positional arguments").
        """
        if not isinstance(data, Mapping) or any(key not in data for key in ("strategy", "amount")):
            raise ProfileFormatError(f"A pruning plan is the dict PruningPlan.to_dict() writes, with 'strategy' and "
                                     f"'amount', got {type(data).__name__} {str(data)[:60]!r}.")
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["neurons"] = {k: v.tolist() for k, v in _by_layer(kwargs.get("neurons", {}), "neurons").items()}
        kwargs["widths"] = {k: int(v[0]) for k, v in _by_layer(kwargs.get("widths", {}), "widths", one=True).items()}
        if isinstance(kwargs.get("amount"), Mapping):
            kwargs["amount"] = {k: int(v[0]) for k, v in _by_layer(kwargs["amount"], "amount", one=True).items()}
        return cls(**kwargs)

    def _save_pretrained(self, folder: Path) -> None:
        write_json(folder / PLAN_FILE, self.to_dict())

    @classmethod
    def _from_pretrained(cls, folder: Path) -> "PruningPlan":
        return cls.from_dict(read_json(folder / PLAN_FILE))


def _amount_label(amount: Any) -> str:
    if isinstance(amount, Mapping):
        return "custom"
    if amount is None:
        return "list"
    return amount_label(amount)  # a fraction 1.0 (every neuron) is "1.0", a count 1 "1": both were "1"


# ----- choosing neurons -----------------------------------------------------------------------------------------
def source_info(source: TransferReport | Profile | None) -> dict[str, Any]:
    if isinstance(source, TransferReport):
        m = source.meta
        return {"kind": "report", "stage_a": m.stage_a, "stage_b": m.stage_b, "model_a": m.model_a,
                "model_b": m.model_b, "dataset_a": m.dataset_a, "dataset_b": m.dataset_b,
                **_hooked(m.stack, m.module_pattern), **_recorded("model_types", m.model_types),
                **_recorded("num_hidden_layers", m.num_hidden_layers), **_recorded_once("pruned", m.pruned),
                **({"pruned_layers": list(m.layers)} if any(m.pruned) else {})}
    if isinstance(source, Profile):
        m = source.meta
        return {"kind": "profile", "stage": m.stage, "model": m.model_id,
                "dataset": m.dataset_id or m.dataset_fingerprint,
                **_hooked(m.config.get("stack"), m.config.get("module_pattern")),
                **_recorded("model_types", [neuron_architecture(recorded_architecture(m.provenance))]),
                **_recorded("num_hidden_layers", recorded_depths(m.provenance)), **_pruned(m.provenance, m.layers)}
    return {"kind": "none"}


def _pruned(provenance: dict[str, Any] | None, layers: Sequence[int]) -> dict[str, Any]:
    """``{"pruned": how the profiled model numbers the neurons of the profiled `layers`, "pruned_layers": layers}``
    (:func:`~hf_txray.provenance.pruning_fingerprint`; nothing for a profile saved before it was recorded): a plan
    ranked on a model pruned with ``mode="remove"`` names its neurons by their new numbers, which are other units on a
    model pruned otherwise there, or not pruned (:func:`~hf_txray.pruning.masks.check_plan_sites` refuses it there)."""
    recorded, record = recorded_pruning(provenance)
    return {"pruned": pruning_fingerprint(record, layers), "pruned_layers": list(layers)} if recorded else {}


def _recorded(key: str, values: Sequence[Any]) -> dict[str, list[Any]]:
    """``{key: the distinct values recorded}`` (nothing where none was): the architectures (``model_types``, as
    :func:`~hf_txray.architectures.neuron_architecture` names them) and depths (``num_hidden_layers``) whose neurons
    the ranking describes. A plan is refused on a model of another one
    (:func:`~hf_txray.pruning.masks.check_plan_sites`)."""
    known = sorted({value for value in values if value})
    return {key: known} if known else {}


def _recorded_once(key: str, values: Sequence[Any]) -> dict[str, Any]:
    """``{key: the one value recorded}`` (nothing where none was; the sorted list where several were): a report's
    stages' numbering (``pruned``). compare() records it over the profiled layers, where it lets the stages differ
    only when a profile did not record it; a report saved before that recorded each stage's whole model, which may
    differ in other blocks: the plan is then taken on a model numbered as either stage's."""
    known = sorted({value for value in values if value})
    return {} if not known else {key: known[0] if len(known) == 1 else known}


def _hooked(stack: str | None, module_pattern: str | None) -> dict[str, str]:
    """Which modules the ranking source hooked, when not the automatic MLP sites of the default stack (the masks
    check it: :func:`~hf_txray.pruning.masks.check_plan_sites`)."""
    return {k: v for k, v in (("stack", stack), ("module_pattern", module_pattern)) if v}


def source_widths(source: TransferReport | Profile) -> dict[int, int]:
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


def _given_widths(widths: Any) -> dict[int, int]:
    """`widths` as given to :func:`plan_pruning`: ``{block index >= 0: neurons >= 1}`` (a key may be the index as
    text, as a saved plan writes it).

    Raises:
        ConfigurationError: not a mapping, a key that is not a block index (a negative one included: the widths are
            what a negative layer is counted against, so they cannot hold one themselves; -1 was kept as a layer
            named -1), or a width that is not a positive int.
    """
    if not isinstance(widths, Mapping):
        raise ConfigurationError(f"widths must be a dict {{layer: neurons}}, got {type(widths).__name__}.")
    checked = {}
    for key, width in widths.items():
        layer = int(key) if isinstance(key, str) and key.strip().isdigit() else key
        if not is_int(layer) or layer < 0:
            raise ConfigurationError(
                f"widths names layer {key!r}, which is no block index: widths are keyed by the model's block number "
                "(0 = the first block), never counted from the end, since a negative layer elsewhere counts from the "
                f"last of them. Write the block's number, e.g. {{11: 3072}} for the last block of a 12-block model.")
        if not is_int(width) or width < 1:
            raise ConfigurationError(f"widths[{key!r}] must be a number of neurons (an int >= 1), got {width!r}.")
        if int(layer) in checked and checked[int(layer)] != int(width):
            # {"1": 40, 1: 48} (a saved plan's text keys beside int ones): one of the two was kept by dict order
            raise ConfigurationError(f"widths gives layer {int(layer)} two widths ({checked[int(layer)]} and "
                                     f"{int(width)}, as {key!r} and its number): keep one key per layer.")
        checked[int(layer)] = int(width)
    return checked


def _by_layer(values: Any, what: str, one: bool = False) -> dict[int, np.ndarray]:
    """A saved plan's ``{layer: indices}`` (or, `one`, ``{layer: count}``) with int layers and whole-number values,
    or a ProfileFormatError naming `what`."""
    try:
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"not a dict by layer: {type(values).__name__}")
        read = {}
        for key, value in values.items():
            if isinstance(key, bool) or not (is_int(key) or isinstance(key, str) and key.lstrip("-").isdigit()):
                raise ConfigurationError(f"layer {key!r} is not an int")
            if one and np.ndim(value) != 0 or not one and (isinstance(value, (str, bytes)) or np.ndim(value) != 1):
                raise ConfigurationError(f"layer {key!r} holds {value!r}")
            read[int(key)] = whole_numbers(value, f"layer {key!r}")
        return read
    except ConfigurationError as error:
        raise ProfileFormatError(f"A pruning plan's {what} must be {'a count' if one else 'a list of neuron indices'} "
                                 f"per layer: {str(error).rstrip('.')}.") from None


def _check_int(value: Any, what: str) -> int:
    if not is_int(value):
        raise ConfigurationError(f"{what} must be an int, got {value!r}.")
    return int(value)


def _warn_rounded_to_none(amount: float, counts: list[int], neurons: int) -> None:
    """A positive fraction that rounds to no neuron anywhere (helper 152: 0.0003 of 1,536 pruned nothing, silently)."""
    if counts and not any(counts):
        warnings.warn(f"amount={amount!r} of {neurons:,} neurons rounds to 0: the plan prunes no neuron. Pass a larger "
                      "fraction, or an int count.", UserWarning, stacklevel=4)


def resolved_amount(amount: Any, blocks: Sequence[int]) -> Any:
    """A dict `amount` with its negative layer keys counted from the last of `blocks` (the model's blocks), as a
    neuron list's keys and ``layers=`` count them: ``{-1: 3}`` of a 12-block model is ``{11: 3}``. Any other amount is
    returned as it is; other keys are checked against the widths later (:func:`_requested_counts`).

    Raises:
        ConfigurationError: a key that is not an int or no block, or two keys naming one block (``{11: 3, -1: 2}``).
    """
    if not isinstance(amount, Mapping):
        return amount
    counts: dict[int, Any] = {}
    for key, count in amount.items():
        layer = _check_int(key, "A layer key of amount")
        if layer < 0:
            layer = resolve_layer(blocks, layer, "is not an MLP layer of the model")
        if layer in counts:
            raise ConfigurationError(f"amount={dict(amount)} gives two counts for block {layer} (a negative key counts "
                                     "from the last block): give one count per layer.")
        counts[layer] = count
    return counts


_NOTHING = (": a plan of no neuron prunes nothing (its model is the unpruned one; an evaluation measures that as its "
            "baseline). Pass a count of at least 1, or a fraction")


def _requested_counts(amount: Any, widths: dict[int, int], layers: list[int], per_layer: bool) -> dict[int, int] | int:
    """Per-layer counts (per_layer) or one total count, validated against the widths (a count of 0 everywhere is
    refused: it prunes nothing)."""
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
        # a fraction becomes the nearest count (Python's round: halves to even, 2.5 -> 2)
        if per_layer:
            amount_of = lambda layer: int(round(float(amount) * widths[layer]))  # noqa: E731
            _warn_rounded_to_none(amount, [amount_of(layer) for layer in layers], min(widths[x] for x in layers))
        else:
            total = int(round(float(amount) * sum(widths[layer] for layer in layers)))
            _warn_rounded_to_none(amount, [total], sum(widths[layer] for layer in layers))
            return total
    else:
        if int(amount) < 1:  # 0 planned no neuron: prune --amount 0 wrote the unpruned model as "pruned"
            raise ConfigurationError(f"amount must be >= 1 (a count of neurons), or a fraction in (0, 1], got "
                                     f"{amount!r}{_NOTHING if int(amount) == 0 else ''}.")
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
    if isinstance(amount, Mapping) and counts and not any(counts.values()):
        raise ConfigurationError(f"amount={dict(amount)} asks for no neuron in any layer{_NOTHING}.")
    return counts


def table_pairs(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """The ``(layer, neuron)`` pairs of a neuron table (``layer`` and ``neuron`` columns, e.g. a probe's
    ``result.top_neurons(10)`` or a filtered ``neuron_stats()``): the one reader of such tables, for ablation,
    masks, removal and plans alike. Whole numbers (ints, or floats such as 3.0 that a merge or a CSV made) only:
    ``astype(int)`` made a neuron 2.7 neuron 2 (helper 182), as a dict or a list of pairs refuses.

    Raises:
        ConfigurationError: a table lacking the ``layer`` or ``neuron`` column, one whose record (a probe's ranking)
            says it ranks another site than the MLP neurons or the decoder stack (its pairs would name other units
            with the same numbers, helper 173), or a value that is not a whole number.
    """
    missing = [column for column in ("layer", "neuron") if column not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"A neuron table needs 'layer' and 'neuron' columns (one row per neuron); this one lacks "
            f"{' and '.join(map(repr, missing))} (its columns: {[str(c) for c in frame.columns]}).")
    record = frame.attrs.get(RANKED_MODULES)
    if record and record.get("site") != "mlp":
        raise ConfigurationError(
            f"This neuron table ranks the {record.get('site')!r} site, but ablation acts on MLP neurons (as pruning "
            "and masking do): it would edit other units with the same numbers. Rank them with a probe (or profile) of site='mlp'.")
    if record and record.get("stack") == "decoder":
        raise ConfigurationError(
            "This neuron table ranks the decoder stack, but ablation acts on the MLP neurons of the encoder (as "
            "pruning and masking do): it would edit neurons the ranking never described. Rank them with a probe (or "
            "profile) of stack='encoder'.")
    if frame.empty:
        return []
    layers, neurons = (whole_numbers(frame[column].to_numpy(), f"The neuron table's {column!r} column")
                       for column in ("layer", "neuron"))
    return list(zip(layers.tolist(), neurons.tolist()))


def explicit_neurons(spec: Any, widths: dict[int, int], blocks: Sequence[int] | None = None
                     ) -> dict[int, list[int]]:
    """A neuron list (``{layer: [index, ...]}``, ``[(layer, index), ...]``, a plan, or a DataFrame with ``layer`` and
    ``neuron`` columns, read by :func:`table_pairs`) as ``{layer: sorted indices}``,
    checked against `widths` (``{layer: neurons}``): the one place where every function taking a neuron list
    (masks, ablation, removal, plans) reads its layers.

    A negative layer counts from the last of `blocks` (the model's blocks; default: the layers of `widths`), as
    ``layers=`` arguments count it (:func:`~hf_txray.options.resolve_layer`): -1 of a 12-block model is block 11.

    Layers and indices are read as :func:`~hf_txray.indices.whole_number` reads one index: ints, or whole floats
    such as 3.0 (a DataFrame's, as a merge or a CSV makes them).

    Raises:
        ConfigurationError: a layer or index that is not a whole number (a bool, a fraction, text), a layer that is
            no block, or has no width (not available), an index out of range, a neuron named twice, or a table
            lacking its ``layer`` or ``neuron`` column (or ranking other modules, :func:`table_pairs`).
    """
    blocks = sorted(widths) if blocks is None else list(blocks)

    def layer_of(value: Any, what: str) -> int:
        # 10**20 was refused as "A neuron's layer must be indices of neurons": named as any layer out of range
        number = whole_number(value, what, lambda huge: f"Layer {huge} is out of range: the model has MLP layers "
                                                        f"{blocks} (or negative indices, counted from the last of them).")
        layer = resolve_layer(blocks, number, "is not an MLP layer of the model")
        if layer not in widths:
            raise ConfigurationError(f"Layer {value} is not available: the model has MLP layers {sorted(widths)}.")
        return layer

    if isinstance(spec, PruningPlan):
        spec = spec.neurons
    if isinstance(spec, pd.DataFrame):  # iterated, it gave its column names: ('l', 'a', 'y', 'e', 'r') was refused
        spec = table_pairs(spec)
    if isinstance(spec, Mapping):
        listed = {layer: indices for layer, indices in spec.items()
                  if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__")
                  or getattr(indices, "ndim", None) == 0}  # np.array(1), torch.tensor(1): "iteration over a 0-d array"
        if listed:  # {0: 1} failed "'int' object is not iterable", {0: "12"} named its characters
            layer, indices = next(iter(listed.items()))
            raise ConfigurationError(f"An explicit neuron list is a dict {{layer: [index, ...]}}: layer {layer!r} maps "
                                     f"to {indices!r}, not a list of indices (write {{{layer!r}: [{indices!r}]}}).")
        items = [(layer, index) for layer, indices in spec.items() for index in indices]
        chosen: dict[int, set[int]] = {layer_of(layer, "A layer key"): set() for layer in spec}
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
        layer = layer_of(item[0], "A neuron's layer")

        def out_of_range(index: int) -> str:
            return f"Neuron {index} is out of range: layer {layer} has {widths[layer]} neurons."

        index = whole_number(item[1], "A neuron's index", out_of_range)
        if not 0 <= index < widths[layer]:
            raise ConfigurationError(out_of_range(index))
        if index in chosen.setdefault(layer, set()):  # {0: [1, 1]} was read as {0: [1]}: a plan of fewer neurons
            raise ConfigurationError(
                f"The neuron list names neuron {index} of layer {layer} more than once (a negative layer counts "
                "from the last block): name each neuron once (a table joined from several rankings, such as two "
                "probes' top_neurons: frame.drop_duplicates(['layer', 'neuron'])).")
        chosen[layer].add(index)
    return {layer: sorted(indices) for layer, indices in sorted(chosen.items())}


def _fewer_hint(strategy: Any, min_count: int) -> str:
    """How a Hellinger ranking can get more candidates: its credit floor."""
    if not strategy.uses_feature_type or not min_count:
        return ""
    return (f" (candidates are shared neurons credited at least min_count={min_count} times with a value of the "
            "feature type in both stages)")


def plan_pruning(
    source: TransferReport | Profile | None,
    strategy: str | Mapping[int, Sequence[int]] | Sequence[Sequence[int]] = "lost",
    amount: int | float | Mapping[int, int] = 0.1,
    *,
    seed: int | None = 0,
    per_layer: bool = True,
    layers: Sequence[int] | None = None,
    feature_type: str | None = None,
    stage: str = "b",
    mode: str = "mask",
    allow_fewer: bool = False,
    widths: Mapping[int, int] | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
) -> PruningPlan:
    """Choose the neurons to prune, without touching a model (the strategies of :func:`prune`).

    `seed` None draws a seed from the system's entropy (as ``datasets``' ``shuffle(seed=None)`` draws one), which the
    plan records (``plan.seed``): passing it again makes the same plan.

    A negative index in `layers` counts from the last block of the model the source describes (its recorded
    ``num_hidden_layers``), as :func:`prune` counts it on the model; without a recorded depth, from the last of the
    source's (or `widths`') layers.

    Args:
        source (`TransferReport` or `Profile`, *optional*): the ranking source (`report_or_profile` of
            :func:`prune`); None only for ``random`` and explicit lists, with `widths`.
        strategy (`str` or neuron list, *optional*, defaults to `"lost"`): as :func:`prune`.
        amount (`int`, `float` or `dict[int, int]`, *optional*, defaults to 0.1): a count, a fraction in (0, 1], or
            counts per layer.
        seed (`int`, *optional*, defaults to 0): seed of ``random`` and of tie-breaking; None draws one.
        per_layer (`bool`, *optional*, defaults to `True`): apply `amount` to each layer (True) or to all selected
            layers ranked together (False).
        layers (`list[int]`, *optional*): restrict to these layers (default: every layer of the source).
        feature_type (`str`, *optional*): feature type of the Hellinger distance (default: the report's first).
        stage (`str`, *optional*, defaults to `"b"`): for ``low_mass`` on a report, rank by the mass of stage
            ``"a"`` or ``"b"``.
        mode (`str`, *optional*, defaults to `"mask"`): ``"mask"`` or ``"remove"``, recorded in the plan.
        allow_fewer (`bool`, *optional*, defaults to `False`): when a strategy has fewer candidates than asked,
            take them all instead of raising.
        widths (`dict[int, int]`, *optional*): ``{layer: neurons}``, needed only when `source` is None (a
            ``random`` or explicit plan); given with a source, it must match the source's.
        min_count (`int`, *optional*, defaults to 20): ``most_changed`` / ``least_changed`` rank only neurons
            credited at least this many times with a value of `feature_type` in both stages.

    Returns:
        :class:`PruningPlan`.

    Raises:
        ConfigurationError: unknown strategy or mode, no source and no `widths`, `widths` unlike the source's,
            `amount` larger than the neurons available, a two-stage strategy given a profile, too few candidates.
    """
    if mode not in MODES:
        raise ConfigurationError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    # per_layer="no" ranked per layer and allow_fewer="no" allowed fewer (truthy strings)
    per_layer, allow_fewer = check_switch("per_layer", per_layer), check_switch("allow_fewer", allow_fewer)
    # seed=1.5 and "1" failed in numpy's SeedSequence ("expects int or sequence of ints"), True ran as seed 1
    seed = drawn_seed() if seed is None else check_count("seed", seed, minimum=0,
                                                          note="of the random choice and the tie-breaking order")
    if widths is None:
        if source is None:
            raise ConfigurationError("plan_pruning needs a report, a profile, or widths={layer: neurons}.")
        widths = source_widths(source)
    else:
        widths = _given_widths(widths)
        if source is not None:  # the source's site and widths are checked all the same: they say what was ranked
            described = source_widths(source)
            if any(described.get(layer) != width for layer, width in widths.items()):
                raise ConfigurationError(
                    f"widths {widths} differ from the layers and widths the ranking source describes {described}: "
                    "leave widths out when planning from a report or profile (they come from it).")
    widths = {int(k): int(v) for k, v in widths.items()}
    if isinstance(amount, Mapping) and not per_layer:  # the plan recorded per_layer=False beside counts per layer
        raise ConfigurationError(
            f"amount={dict(amount)} gives a count for each layer, and per_layer=False asks for one count over all "
            "layers together: pass one of them (a dict amount is per layer; an int or a fraction with "
            "per_layer=False is ranked over all layers).")
    info = source_info(source)
    # negative layers (layers=, a neuron list's keys) count from the model's last block: its recorded depth, else the
    # last of the source's (or widths') layers
    depths = info.get("num_hidden_layers") or []
    blocks = list(range(depths[0])) if len(depths) == 1 else sorted(widths)
    # one number by the rule of every number: np.float32(0.1) was recorded unsaveable in JSON, and a 0-d array or
    # tensor (torch.tensor(0.1), np.array(5)) refused where its Python value was taken; its kind kept (a count, a
    # fraction); a bool is still refused below
    number = as_number(amount)
    amount = amount if number is None else number
    asked = amount
    amount = resolved_amount(amount, blocks)  # a dict amount's negative keys count from the last block too
    if not isinstance(strategy, str):
        neurons = explicit_neurons(strategy, widths, blocks)
        if not any(neurons.values()):  # helper 152: {}, [] and {0: []} were accepted, mode="remove" included
            raise ConfigurationError(f"The neuron list {strategy!r} names no neuron: nothing to prune. Name (layer, "
                                     "index) pairs, or {layer: [index, ...]}.")
        record = strategy.attrs.get(RANKED_MODULES) if isinstance(strategy, pd.DataFrame) else None
        if record:  # a probe's table of a module_pattern: kept, so that applying the plan checks those modules (it
            # was dropped, and the plan masked the automatic MLP sites of any model of those widths, silently)
            info = {**info, **_hooked(record.get("stack"), record.get("module_pattern"))}
        return PruningPlan(strategy=EXPLICIT, amount=None, per_layer=True, seed=None, mode=mode, neurons=neurons,
                           widths={layer: widths[layer] for layer in neurons}, source=info)
    chosen = get_pruning_strategy(strategy)
    if chosen.needs == "report" and not isinstance(source, TransferReport):
        what = "a Profile" if isinstance(source, Profile) else "no report"
        raise ConfigurationError(
            f"Strategy {strategy!r} compares two stages and needs a TransferReport (hf_txray.compare(a, b)), but got "
            f"{what}. With a single profile use 'low_mass' or 'random'."
        )
    if chosen.needs == "report_or_profile" and source is None:
        raise ConfigurationError(
            f"Strategy {strategy!r} needs a TransferReport or a Profile to read neuron masses from.")
    if stage not in ("a", "b"):
        raise ConfigurationError(f"stage must be 'a' or 'b' (which stage's mass 'low_mass' ranks by), got {stage!r}.")
    min_count = check_min_count(min_count)
    if chosen.uses_feature_type:
        feature_types = source.meta.feature_types
        feature_type = feature_type or feature_types[0]
        if feature_type not in feature_types:
            raise ConfigurationError(f"Feature type {feature_type!r} is not in this report: {feature_types}.")
    else:
        check_feature_type_used(feature_type, [strategy])
        feature_type = None

    if layers is not None:  # as analyze takes them: "0-3,7,-1", "all", one int, a list
        parsed = parse_layers(layers)
        layers = None if parsed == "all" else parsed
    available = sorted(widths)
    if layers is None:
        selected = available
    else:  # negative: counted from the model's last block (its recorded depth), as prune and analyze count
        named = [blocks[layer] if -len(blocks) <= layer < 0 else layer for layer in layers]
        refuse_same_block(layers, named, len(blocks))  # [1, -1] of 2 blocks was read as [1] without a word
        selected = sorted(named)
        # compared once both are block indices: {1: 3} beside layers=[-1] (block 1 of 2) was refused as a mismatch
        if isinstance(amount, Mapping) and sorted(amount) != selected:
            raise ConfigurationError(f"amount={dict(asked)} names block(s) {sorted(amount)} and layers= names "
                                     f"{selected}: a dict amount chooses the layers itself; pass one of them.")
        missing = [layer for layer in selected if layer not in widths]
        if missing or not selected:
            raise ConfigurationError(
                f"layers {list(layers)} are not all available (block(s) {missing or selected}); available layers: "
                f"{sorted(widths)} (a negative index counts from the model's last block).")
    requested = _requested_counts(amount, widths, selected, per_layer)
    if isinstance(requested, dict):
        selected = sorted(requested)
    rng = np.random.default_rng(seed)
    order, scores = rank(chosen, RankingInput(source, selected, widths, feature_type, stage, rng, min_count))
    if isinstance(requested, dict):
        neurons = {}
        for layer in selected:
            want, have = requested[layer], len(order[layer])
            if want > have and not allow_fewer:
                raise ConfigurationError(
                    f"Strategy {strategy!r} has only {have} candidate neurons in layer {layer}, fewer than the {want} "
                    f"asked for. Ask for fewer, "
                    + ("" if isinstance(amount, Mapping) else "pass per_layer=False (CLI: --overall), ")
                    + f"or allow_fewer=True (--allow-fewer) to take all {have}{_fewer_hint(chosen, min_count)}."
                )
            neurons[layer] = sorted(int(i) for i in order[layer][:want])
    else:
        pool = [(float(s), layer, int(i)) for layer in selected for s, i in zip(scores[layer], order[layer])]
        have = len(pool)
        if requested > have and not allow_fewer:
            raise ConfigurationError(
                f"Strategy {strategy!r} has only {have} candidate neurons in layers {selected}, fewer than the "
                f"{requested} asked for. Ask for fewer, or pass allow_fewer=True (CLI: --allow-fewer) to take all "
                f"{have}{_fewer_hint(chosen, min_count)}."
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
        if chosen.needs == "report_or_profile" else None, source=info,
        min_count=min_count if chosen.uses_feature_type else None,
    )
