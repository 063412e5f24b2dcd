"""Linear probes with elastic-net regularisation, neuron rankings from their weights, and the experiments built on
them: minimal neuron sets, top/random/bottom subsets, and the control task.

A probe is a softmax classifier ``y = softmax(W x + b)`` on standardised activations (each neuron scaled to zero mean
and unit variance on the training rows, so weight magnitudes compare across neurons), trained on the loss
``cross-entropy + l1 * |W|_1 + l2 * |W|_2^2`` (NeuroX's elastic net; the L2 term is the squared norm) with Adam on
mini-batches (NeuroX's way, the default) or to the loss's optimum by scikit-learn's saga (``solver="saga"``, see
:class:`ProbeConfig`). Adam's training block (rows x neurons) is copied to the device once when it is small (up to
512 MiB), else read batch by batch from the activation matrix, so disk-backed activations are never loaded whole.

Ranking (as NeuroX's ``get_neuron_ordering``): per class, neurons sorted by ``|w|`` and each given the share of the
class's total ``|w|`` held by the neurons before it; a neuron's global score is the smallest such share over
classes (how early it enters some class's top set), ties broken by its largest own share. The top of the ranking
holds the few neurons that carry most of the weight of at least one class.
"""

from __future__ import annotations

import contextlib
import warnings
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from ..artifact import ValueEquality
from ..counts import check_count, check_number, check_switch, is_int
from ..distributed import check_device
from ..rng import drawn_seed
from ..errors import ConfigurationError, DatasetError
from ..forward import own_autograd, own_precision
from ..logging import warn_caller, warnings_caught
from .data import check_distinct_labels, control_labels
from .extraction import Activations

SOLVERS = ("adam", "saga")
# the options that apply to one solver only, and that solver
SOLVER_OPTIONS = {"epochs": ("adam",), "batch_size": ("adam",), "lr": ("adam",), "tol": ("saga",),
                  "max_iter": ("saga",)}
RESIDENT_BYTES = 512 * 2**20  # a training block up to this size is copied once to the device; larger ones stream


@dataclass
class ProbeConfig:
    """How a probe is trained.

    The loss is ``mean cross-entropy + l1 * |W|_1 + l2 * |W|_2^2`` on standardised activations (the bias is not
    penalised), NeuroX's elastic net (Dalvi et al., 2019, "What Is One Grain of Sand in the Desert?", AAAI; NeuroX,
    Dalvi et al., 2023). `solver` says how it is minimised:

    - ``"adam"`` (the default, NeuroX's): Adam on mini-batches for `epochs`, as NeuroX trains its probes, so rankings
      compare with NeuroX's. It does not reach the elastic net's optimum: Adam does not set weights to zero under an
      L1 term, and 10 epochs stop early. On MiniLM layer 3 (1,494 words, UPOS) its objective was 0.279 against
      0.211 for scikit-learn's saga, 51% of its weights were above 1e-3 (saga: 17%), and its top-10 neurons shared
      3 with saga's (top-50: 18).
    - ``"saga"``: the optimum of the same objective, fitted by scikit-learn's ``LogisticRegression(solver="saga")``
      (Defazio et al., 2014, "SAGA: A Fast Incremental Gradient Method...", NeurIPS) with ``C = 1 / (n (l1 + 2 l2))``
      and ``l1_ratio = l1 / (l1 + 2 l2)`` for n training rows (two classes: scikit-learn fits one weight vector
      ``w = W[1] - W[0]``, with ``l2 / 2`` in place of `l2`, and the probe holds ``W = [-w / 2, w / 2]``, the
      optimum's split). Use it for a ranking you want to trust as the elastic net's. It runs on the CPU on the whole
      training block (rows x neurons, float64, in memory) until the largest weight change per pass falls below `tol`
      times the largest weight, at most `max_iter` passes (a warning when it stops there). `epochs`, `batch_size`
      and `lr` do not apply and must keep their defaults; `tol` and `max_iter` apply to saga only. On MiniLM layer 3
      (1,507 words) saga at ``tol=1e-4`` came within 0.9% of the optimum's objective (found by a long
      proximal-gradient run), its top-10 neurons 8 of the optimum's, Adam's 3; a lower `tol` comes closer.

    The adam defaults are NeuroX's. Adam moves each weight by at most about `lr` per step, so small training sets
    need more epochs (or a larger `lr`) for the weights, and the ranking, to settle.

    Args:
        l1 (`float`, *optional*, defaults to 1e-3): weight of the L1 penalty (sparsity).
        l2 (`float`, *optional*, defaults to 1e-3): weight of the squared L2 penalty.
        epochs (`int`, *optional*, defaults to 10): passes over the training rows (adam).
        batch_size (`int`, *optional*, defaults to 32): rows per step (adam).
        lr (`float`, *optional*, defaults to 1e-3): Adam learning rate.
        seed (`int`, *optional*, defaults to 0): batch order (adam), sample order (saga). `None` draws one from the
            system's entropy and records it in the config (so in a saved result).
        standardize (`bool`, *optional*, defaults to `True`): scale every neuron to zero mean, unit variance (on the
            training rows only), so that ``|w|``, and the neuron ranking, compare neurons of different scales. With
            False the weights are on each neuron's own scale and the ranking compares scales as much as information:
            on planted data (one informative neuron of scale 0.01 among 19 noise neurons, one of them of scale 1000)
            both solvers ranked it first when standardised; unstandardised, saga ranked it 16th (and stopped at
            `max_iter`) and Adam's probe scored 0.36 on three balanced classes against 0.79.
        device (`str`, *optional*): ``"cpu"``, ``"cuda"``...; defaults to CUDA when available (adam's training and
            every probe's scoring; saga trains on the CPU).
        solver (`str`, *optional*, defaults to `"adam"`): ``"adam"`` (NeuroX's) or ``"saga"`` (the elastic net's
            optimum).
        tol (`float`, *optional*, defaults to 1e-4): saga's stopping tolerance (scikit-learn's `tol`).
        max_iter (`int`, *optional*, defaults to 5000): saga's most passes over the training rows.
    """

    l1: float = 1e-3
    l2: float = 1e-3
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    seed: int | None = 0
    standardize: bool = True
    device: str | None = None
    solver: str = "adam"
    tol: float = 1e-4
    max_iter: int = 5000

    def with_options(self, **options: Any) -> "ProbeConfig":
        """A copy with `options` changed, validated.

        Raises:
            ConfigurationError: an option that is not a field (naming the fields), or a bad value.
        """
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigurationError(f"Unknown probe option(s) {unknown}: ProbeConfig's fields are "
                                     f"{[f.name for f in dataclasses.fields(self)]}.")
        return dataclasses.replace(self, **options).validate()

    def validate(self) -> "ProbeConfig":
        self.device = check_device(self.device)  # device=3.5 was torch's TypeError once training began
        # by the rule of every number (counts.check_number): l1=True trained with l1 1.0 (helper 395), and
        # np.float32(1e-3) or a 0-d tensor was refused where a float was taken
        for name in ("l1", "l2"):
            setattr(self, name, check_number(name, getattr(self, name), 0.0))
        for name in ("lr", "tol"):  # nan passed `lr <= 0` and failed in torch; inf gave NaN weights
            setattr(self, name, check_number(name, getattr(self, name), 0.0, strict=True))
        for name in ("epochs", "batch_size", "max_iter"):  # kept as ints: a 0-d tensor was recorded, unsaveable
            setattr(self, name, check_count(name, getattr(self, name)))
        # seed=1.5, -1 or "1" failed in numpy once the activations were extracted; standardize="no" standardized
        # None draws a seed and records it (as plan_pruning does): it trained with an unrecorded random order once
        self.seed = drawn_seed() if self.seed is None else check_count("seed", self.seed, minimum=0,
                                                                         note="the batch or sample order")
        self.standardize = check_switch("standardize", self.standardize)
        if self.solver not in SOLVERS:
            raise ConfigurationError(f"Unknown probe solver {self.solver!r}: the choices are {list(SOLVERS)} (adam: "
                                     "NeuroX's training; saga: the elastic net's exact optimum, by scikit-learn).")
        # options of the other solver would be ignored without a word: refused unless left at their defaults
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        unused = [name for name, solvers in SOLVER_OPTIONS.items()
                  if self.solver not in solvers and getattr(self, name) != defaults[name]]
        if unused:
            applies = ", ".join(f"{name}: {SOLVER_OPTIONS[name][0]} only" for name in unused)
            raise ConfigurationError(
                f"{unused} do not apply to solver={self.solver!r} ({applies}): leave them at their defaults, or "
                "choose the solver they apply to.")
        return self

    def torch_device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(eq=False)  # == by value (ValueEquality): the generated one raised on the arrays
class ProbeScores(ValueEquality):
    """Accuracy of a probe on some rows, overall and per class (``label``, ``support``, ``correct``, ``accuracy``)."""

    accuracy: float
    per_class: pd.DataFrame
    predictions: np.ndarray = field(repr=False)


@dataclass(eq=False)  # == by value (ValueEquality): the generated one raised on the arrays
class LinearProbe(ValueEquality):
    """A trained probe. Weights live in standardised space: ``logits = W ((x - mean) / scale) + b``.

    Args:
        weight (`np.ndarray`): ``(num_labels, len(columns))``.
        bias (`np.ndarray`): ``(num_labels,)``.
        mean (`np.ndarray`): per-feature centre used for standardising.
        scale (`np.ndarray`): per-feature scale used for standardising.
        columns (`np.ndarray`): the activation columns the probe reads.
        label_names (`list[str]`): the classes.
        config (`ProbeConfig`): how it was trained.
        losses (`list[float]`): mean training loss per epoch (adam); the objective reached (saga, one value).
        num_inputs (`int`, *optional*): the columns of the activations it was trained on (layers x width): other
            activations (another model's, or this one's after ``prune(mode="remove")``) are refused, since their
            columns name other neurons.
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    columns: np.ndarray
    label_names: list[str]
    config: ProbeConfig = field(default_factory=ProbeConfig)
    losses: list[float] = field(default_factory=list)
    num_inputs: int | None = None

    def logits(self, values: np.ndarray | Activations, rows: np.ndarray | None = None,
               batch_size: int = 4096) -> np.ndarray:
        """Class scores of the given rows (all rows when None)."""
        values = values.values if isinstance(values, Activations) else values
        if self.num_inputs is not None and values.shape[1] != self.num_inputs:
            raise ConfigurationError(
                f"The probe was trained on activations of {self.num_inputs} columns (layers x neurons per layer) and "
                f"these have {values.shape[1]}: they come from another model or other layers (or this model after "
                "prune(mode='remove'), which leaves fewer neurons), whose columns are other neurons. Extract them "
                "from the model and layers the probe was trained on.")
        rows = np.arange(values.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        device = self.config.torch_device()
        w = torch.from_numpy(self.weight).to(device)
        b = torch.from_numpy(self.bias).to(device)
        mean, scale = torch.from_numpy(self.mean).to(device), torch.from_numpy(self.scale).to(device)
        out = []
        with _one_cpu_thread(device), own_precision(), torch.no_grad():
            for _, x in _batches(values, rows, self.columns, batch_size, device):
                if not bool(torch.isfinite(x).all()):  # NaN logits were read as class 0
                    _refuse_nonfinite(values, rows, self.columns, "scored")
                out.append((((x - mean) / scale) @ w.T + b).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, values: np.ndarray | Activations, rows: np.ndarray | None = None) -> np.ndarray:
        """Predicted label id of each row."""
        return self.logits(values, rows).argmax(-1)

    def evaluate(self, values: np.ndarray | Activations, labels: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> ProbeScores:
        """Accuracy on `rows`, overall and per class.

        Example:
            ```python
            >>> scores = probe.evaluate(acts, rows=test_rows)
            >>> scores.accuracy, scores.per_class.head(3)
            ```
        """
        if isinstance(values, Activations) and labels is None:
            labels = self.label_ids(values.labels, values.label_names)
        if labels is None:
            raise ConfigurationError("evaluate needs labels (or an Activations object that holds them).")
        predictions = self.predict(values, rows)
        gold = np.asarray(labels)[rows] if rows is not None else np.asarray(labels)
        return scores_of(predictions, gold, self.label_names)

    def label_ids(self, labels: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
        """`labels` (ids into `label_names`, e.g. another corpus's label set) as this probe's class ids, matched by
        name; -1 (always wrong) for a label the probe never saw, with a warning naming them.

        Raises:
            ConfigurationError: a label id outside `label_names`.
        """
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(label_names)):
            raise ConfigurationError(f"Label ids must be in 0..{len(label_names) - 1} (the label names given).")
        mapping = class_ids_by_name(label_names, self.label_names, np.bincount(labels, minlength=len(label_names)),
                                    f"of {len(labels)} words", "score words without them")
        return mapping[labels] if len(mapping) else labels

    def neuron_ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """Columns of the activations, most important first, and their scores (see the module docstring)."""
        order, score = rank_by_weight(self.weight)
        return self.columns[order], score[order]

    def ranked_labels(self) -> list[str]:
        """The classes with neuron weights to rank (a class without a training word has none: zeroed)."""
        return [name for name, row in zip(self.label_names, self.weight) if np.any(row)]

    def class_ranking(self, label: str | int) -> tuple[np.ndarray, np.ndarray]:
        """Columns ordered by ``|w|`` for one class (a label name, or its index in ``label_names``), with the signed
        weights.

        Raises:
            ConfigurationError: an unknown label name, an index out of range (3 of 2 labels ended in numpy's
                IndexError, -1 named the last label), or a label that is neither (``True`` was label 1).
        """
        if is_int(label):
            if not 0 <= label < len(self.label_names):
                raise ConfigurationError(f"Label index {label} is out of range: the probe's labels are "
                                         f"{list(self.label_names)} (indices 0 to {len(self.label_names) - 1}).")
            index = int(label)
        elif isinstance(label, str):
            index = _label_index(self.label_names, label)
        else:
            raise ConfigurationError(f"A label is a name (str) or an index (int), got {label!r}; the probe's labels "
                                     f"are {list(self.label_names)}.")
        weights = self.weight[int(index)]
        if not np.any(weights):
            raise ConfigurationError(f"Probe class {self.label_names[int(index)]!r} had no training word: it has no "
                                     "neuron weights to rank.")
        order = np.lexsort((np.arange(len(weights)), -np.abs(weights)))
        return self.columns[order], weights[order]


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Probe steps are tiny matrix products: on CPU one thread is fastest, and several threads on a busy machine are
    many times slower. Torch's thread count is process-wide, so it is restored afterwards."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def class_ids_by_name(label_names: Sequence[str], probe_labels: Sequence[str], counts: Sequence[int],
                      words: str, leave_out: str) -> np.ndarray:
    """For each of `label_names`, the id of the probe class of that name, or -1 (always wrong) when the probe has
    none; warns once, naming the unseen labels that words carry (`counts`: words per label) and how many.

    `words` describes the words scored (``"of 40 words"``), `leave_out` how to leave the unseen labels out."""
    index = {name: i for i, name in enumerate(probe_labels)}
    mapping = np.array([index.get(name, -1) for name in label_names], dtype=np.int64)
    unseen = {name: int(count) for name, i, count in zip(label_names, mapping, counts) if i < 0 and count > 0}
    if unseen:
        described = ", ".join(f"{name} ({count})" for name, count in sorted(unseen.items()))
        warn_caller(f"{sum(unseen.values())} {words} carry labels the probe never saw: {described}. They count as "
                    f"wrong, since the probe cannot predict them; to leave them out, {leave_out}.")
    return mapping


def _label_index(label_names: Sequence[str], label: str) -> int:
    try:
        return list(label_names).index(label)
    except ValueError:
        raise ConfigurationError(f"Unknown label {label!r}; the probe's labels are {list(label_names)}.") from None


def scores_of(predictions: np.ndarray, gold: np.ndarray, label_names: Sequence[str]) -> ProbeScores:
    """:class:`ProbeScores` of predictions against gold label ids."""
    num = len(label_names)
    seen = gold >= 0  # -1: a label the probe never saw, wrong in the accuracy and no class's support
    support = np.bincount(gold[seen], minlength=num)
    correct = np.bincount(gold[seen & (predictions == gold)], minlength=num)
    per_class = pd.DataFrame({"label": list(label_names), "support": support, "correct": correct,
                              "accuracy": np.where(support > 0, correct / np.maximum(support, 1), np.nan)})
    accuracy = float((predictions == gold).mean()) if len(gold) else float("nan")
    return ProbeScores(accuracy, per_class, predictions)


def rank_by_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global neuron order from a probe's ``(classes, neurons)`` weights (NeuroX-style, see the module docstring).

    Returns:
        `tuple(np.ndarray, np.ndarray)`: positions into the weight's columns, most important first, and each
        column's score (the class-weight share held by the neurons ranked before it in its best class; lower is
        more important).
    """
    magnitude = np.abs(np.asarray(weight, dtype=np.float64))
    if (magnitude.sum(axis=1) > 0).any():  # classes without a training row have all-zero weights: not ranked
        magnitude = magnitude[magnitude.sum(axis=1) > 0]
    total = magnitude.sum(axis=1, keepdims=True)
    share = np.divide(magnitude, total, out=np.zeros_like(magnitude), where=total > 0)
    order = np.argsort(-share, axis=1, kind="stable")
    sorted_share = np.take_along_axis(share, order, axis=1)
    before = np.cumsum(sorted_share, axis=1) - sorted_share
    entry = np.empty_like(share)
    np.put_along_axis(entry, order, before, axis=1)
    score = entry.min(axis=0)
    best = share.max(axis=0)
    ranking = np.lexsort((np.arange(len(score)), -best, score))
    return ranking, score


# ----- training -------------------------------------------------------------------------------------------------
def _batches(values: np.ndarray, rows: np.ndarray, columns: np.ndarray | None, batch_size: int,
             device: torch.device) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Float32 tensors of the given rows (in the given order), reading only those rows from (memmapped) values."""
    full = columns is None or (len(columns) == values.shape[1] and np.array_equal(columns, np.arange(values.shape[1])))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ordered = np.sort(chunk)
        block = np.asarray(values[ordered])
        if not full:
            block = block[:, columns]
        if not np.array_equal(ordered, chunk):
            block = block[np.searchsorted(ordered, chunk)]
        yield chunk, torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)


def _resident(values: np.ndarray, rows: np.ndarray, columns: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The training block (rows x columns) as one float32 tensor when it is at most :data:`RESIDENT_BYTES` (read in
    chunks, so a memmap is never loaded whole), else None (batches are then read from `values` at every step)."""
    if len(rows) * len(columns) * 4 > RESIDENT_BYTES:
        return None
    block = torch.empty(len(rows), len(columns), dtype=torch.float32, device=device)
    start = 0
    for _, x in _batches(values, rows, columns, 4096, device):
        block[start:start + len(x)] = x
        start += len(x)
    return block


def _tensor_moments(block: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    mean = block.mean(0, dtype=torch.float64)
    std = block.var(0, unbiased=False).double().clamp_min(0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float().cpu().numpy(), std.float().cpu().numpy()


def _moments(values: np.ndarray, rows: np.ndarray, columns: np.ndarray, device: torch.device) -> tuple[np.ndarray, ...]:
    """Mean and standard deviation of the columns over the rows, streamed (float64)."""
    total = torch.zeros(len(columns), dtype=torch.float64, device=device)
    squares = torch.zeros_like(total)
    for _, x in _batches(values, np.sort(rows), columns, 8192, device):
        x = x.double()
        total += x.sum(0)
        squares += (x * x).sum(0)
    if not bool(torch.isfinite(total).all() & torch.isfinite(squares).all()):
        _refuse_nonfinite(values, rows, columns)
    n = max(len(rows), 1)
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float().cpu().numpy(), std.float().cpu().numpy()


def _refuse_nonfinite(values: np.ndarray, rows: np.ndarray, columns: np.ndarray, what: str = "training") -> None:
    """Raise naming the first row and column holding NaN or inf: a probe trained on them got NaN weights and ranked
    the neurons in column order, and one scoring them predicted class 0 (helper 182), all without an error."""
    for chunk, x in _batches(values, np.sort(rows), columns, 8192, torch.device("cpu")):
        bad = (~torch.isfinite(x)).nonzero()
        if len(bad):
            row, position = (int(v) for v in bad[0])
            column = int(columns[position]) if columns is not None else position
            raise DatasetError(
                f"The {what} activations hold non-finite values (NaN or inf), first at row {int(chunk[row])}, column "
                f"{column} ({float(x[row, position])}): a probe's weights, its neuron ranking and its predictions "
                "would all be meaningless. Extract them again from a model whose weights are finite, in float32.")
    raise DatasetError(f"The {what} activations hold non-finite values (NaN or inf).")


def _label_ids(labels: Any, label_names: Sequence[str] | None) -> np.ndarray:
    """`labels` as int64 class ids: ints, whole floats, or bools (False 0, True 1: with `label_names`, only two).

    Raises:
        ConfigurationError: a fraction (``int64`` would round 1.7 down to class 1), a label that is not a number (a
            class name: map names to ids first), or bools beside other than two label names.
    """
    raw = np.asarray(labels)
    if raw.dtype.kind == "b" and label_names is not None and len(label_names) != 2:
        raise ConfigurationError(
            f"labels are True/False and label_names has {len(label_names)} names ({list(label_names)[:5]}): a bool "
            "label is the id 0 (False) or 1 (True), which fits two names only. Pass label_names=[name of False, "
            "name of True], or labels as class ids.")
    if raw.dtype.kind == "f" and raw.size and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise ConfigurationError("labels hold fractions or NaN, and they are class ids: int64 would round them to "
                                 "other classes. Pass whole class ids 0..n-1.")
    if raw.dtype.kind not in "biuf" and raw.size:
        raise ConfigurationError(f"labels must be class ids (ints) or bools, got {raw.dtype} values such as "
                                 f"{raw.flat[0]!r}: map class names to their index in label_names first.")
    return raw.astype(np.int64)


def train_probe(
    values: np.ndarray | Activations,
    labels: np.ndarray | None = None,
    *,
    rows: Sequence[int] | np.ndarray | None = None,
    columns: Sequence[int] | np.ndarray | None = None,
    label_names: Sequence[str] | None = None,
    config: ProbeConfig | None = None,
    warn_untrained: bool = True,
    **overrides: Any,
) -> LinearProbe:
    """Train an elastic-net linear probe on activation rows.

    Args:
        values (`np.ndarray` or `Activations`): the activation matrix (may be a memmap) or extracted activations.
        labels (`np.ndarray`, *optional*): label id per row (defaults to the Activations' labels). Pass other labels
            (e.g. control-task labels) to probe for something else on the same rows.
        rows (array of `int`, *optional*): the training rows (default: all).
        columns (array of `int`, *optional*): the neurons (activation columns) to use (default: all).
        label_names (`Sequence[str]`, *optional*): class names (defaults to the Activations' label names). Bool
            labels are ids 0 (False) and 1 (True): ``label_names[0]`` names False, ``label_names[1]`` True.
        config (`ProbeConfig`, *optional*): hyperparameters; keyword `overrides` (``l1=..., epochs=...``) replace
            single fields.
        warn_untrained (`bool`, *optional*, defaults to `True`): warn when a class has no training row (its weights
            are zeroed either way). The experiments of :func:`~hf_txray.probing.probe_neurons` retrain on the rows
            of the probe that warned already, or on control labels, and pass False.

    Returns:
        `LinearProbe`.

    Raises:
        ConfigurationError: bad hyperparameters, rows or columns.
        DatasetError: no training row, or `label_names` naming two classes alike (they would be scored as one).

    Example:
        ```python
        >>> train, test = acts.split(0.2)
        >>> probe = train_probe(acts, rows=train, l1=1e-3, l2=1e-3, epochs=10)
        >>> probe.evaluate(acts, rows=test).accuracy
        0.93
        ```
    """
    config = (config or ProbeConfig()).with_options(**overrides)
    if isinstance(values, Activations):
        labels = values.labels if labels is None else labels
        label_names = values.label_names if label_names is None else label_names
        values = values.values
    if labels is None:
        raise ConfigurationError("train_probe needs labels (or an Activations object that holds them).")
    labels = _label_ids(labels, label_names)
    if values.ndim != 2 or len(labels) != values.shape[0]:
        raise ConfigurationError(f"values must be (rows, neurons) with one label per row; got {values.shape} and "
                                 f"{len(labels)} labels.")
    if label_names is not None:
        check_distinct_labels([str(name) for name in label_names])
    num_labels = len(label_names) if label_names is not None else int(labels.max(initial=-1)) + 1
    label_names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    rows = np.arange(values.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise DatasetError("No training row: the probe needs labelled words.")
    if rows.min() < 0 or rows.max() >= values.shape[0]:
        raise ConfigurationError(f"rows must be in 0..{values.shape[0] - 1}.")
    columns = np.arange(values.shape[1]) if columns is None else np.asarray(columns, dtype=np.int64)
    if len(columns) == 0 or columns.min() < 0 or columns.max() >= values.shape[1]:
        raise ConfigurationError(f"columns must be a non-empty list of neurons in 0..{values.shape[1] - 1}.")
    if labels.min() < 0 or labels.max() >= num_labels:
        raise ConfigurationError(f"labels must be ids in 0..{num_labels - 1}.")
    present = np.unique(labels[rows])
    if len(present) < 2:  # helper 151: every weight stayed 0, accuracy 1.0, and a ranking in column order
        raise DatasetError(
            f"The training rows carry a single label ({label_names[int(present[0])]!r}): a probe needs at least two "
            "classes to tell apart, and would score 1.0 with all its weights 0. Use a corpus whose words carry "
            "several labels.")
    # autograd on inside the caller's torch.no_grad() or torch.inference_mode() too (training failed there with
    # "element 0 of tensors does not require grad")
    with own_autograd():
        device = config.torch_device()
        resident = _resident(values, rows, columns, device)
        if resident is not None:
            if not bool(torch.isfinite(resident).all()):
                _refuse_nonfinite(values, rows, columns)
            mean, scale = _tensor_moments(resident)
        else:
            mean, scale = _moments(values, rows, columns, device)  # also checks that every value is finite
        if not config.standardize:
            mean, scale = np.zeros(len(columns), np.float32), np.ones(len(columns), np.float32)
        mean_t, scale_t = torch.from_numpy(mean).to(device), torch.from_numpy(scale).to(device)
        if resident is not None:
            resident.sub_(mean_t).div_(scale_t)
        if config.solver == "saga":
            block = resident.cpu().numpy() if resident is not None else _standardized_block(values, rows, columns, mean,
                                                                                              scale)
            weight, bias_np, losses = _fit_saga(block, labels[rows], num_labels, config)
            return _finished(weight, bias_np, mean, scale, columns, labels[rows], label_names, config, losses,
                             int(values.shape[1]), warn_untrained)
        weight = torch.zeros(num_labels, len(columns), device=device, requires_grad=True)
        bias = torch.zeros(num_labels, device=device, requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=config.lr)
        labels_t = torch.from_numpy(labels).to(device)
        rows_labels = labels_t[torch.from_numpy(rows).to(device)]
        rng = np.random.default_rng(config.seed)
        losses = []

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            if resident is not None:  # positions into the resident block
                order = torch.from_numpy(rng.permutation(len(rows))).to(device)
                for start in range(0, len(rows), config.batch_size):
                    index = order[start:start + config.batch_size]
                    yield resident.index_select(0, index), rows_labels.index_select(0, index)
            else:
                for chunk, x in _batches(values, rng.permutation(rows), columns, config.batch_size, device):
                    yield (x - mean_t) / scale_t, labels_t[torch.from_numpy(chunk).to(device)]

        # in float32 inside a torch.autocast block too (it ran the products in bfloat16: weights 0.2% off, silently), as
        # the activations were extracted (forward.StackForward turns it off)
        with _one_cpu_thread(device), own_precision():
            for _ in range(config.epochs):
                total, steps = torch.zeros((), device=device), 0
                for x, target in batches():
                    loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, target)
                    if config.l1:
                        loss = loss + config.l1 * weight.abs().sum()
                    if config.l2:
                        loss = loss + config.l2 * (weight * weight).sum()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.detach()
                    steps += 1
                losses.append(float(total) / max(steps, 1))
        return _finished(weight.detach().cpu().numpy(), bias.detach().cpu().numpy(), mean, scale, columns, labels[rows],
                         label_names, config, losses, int(values.shape[1]), warn_untrained)


def _finished(weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, scale: np.ndarray, columns: np.ndarray,
              train_labels: np.ndarray, label_names: list[str], config: ProbeConfig, losses: list[float],
              num_inputs: int, warn_untrained: bool) -> LinearProbe:
    """The probe, with the weights of classes without a training row zeroed (and a warning naming them).

    Raises:
        ConfigurationError: training diverged (a weight or bias is NaN or inf): such a probe ranked the neurons in
            column order and predicted one class for every word, and was saved without a word.
    """
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        step = (f"lr={config.lr!r} is too large for these activations: lower it (CLI: --lr), or use solver='saga' "
                "(--solver saga)") if config.solver == "adam" else "check the activations and the l1/l2 weights"
        raise ConfigurationError(
            f"The probe's training diverged: {int(np.size(weight) - np.isfinite(weight).sum())} of its "
            f"{np.size(weight)} weights are NaN or inf (the last epoch's loss: {losses[-1] if losses else 'none'}), "
            f"so its ranking and predictions would mean nothing; {step}.")
    untrained = np.flatnonzero(np.bincount(train_labels, minlength=len(label_names)) == 0)
    if len(untrained):
        # A class without a training row was only pushed down by the loss and the penalties: its weights say
        # nothing about the neurons, and their largest |w| took places in the global ranking. Zeroed, they are left
        # out of it (rank_by_weight skips all-zero classes); the bias keeps the class from being predicted.
        weight[untrained] = 0.0
    if len(untrained) and warn_untrained:
        warn_caller(
            f"{len(untrained)} probe class(es) have no training word: {[label_names[i] for i in untrained]}. Their "
            "weights are zeroed and left out of the neuron ranking; drop those labels from the corpus to leave them "
            "out of the class set too.")
    return LinearProbe(weight, bias, mean, scale, columns, label_names, config, losses, num_inputs=num_inputs)


def _standardized_block(values: np.ndarray, rows: np.ndarray, columns: np.ndarray, mean: np.ndarray,
                        scale: np.ndarray) -> np.ndarray:
    """The training block (rows x columns), standardised, as one float32 array (saga reads it whole)."""
    block = np.empty((len(rows), len(columns)), dtype=np.float32)
    start = 0
    for _, x in _batches(values, rows, columns, 4096, torch.device("cpu")):
        block[start:start + len(x)] = (x.numpy() - mean) / scale
        start += len(x)
    return block


def saga_parameters(l1: float, l2: float, num_rows: int, num_classes: int) -> tuple[float, float]:
    """scikit-learn's ``(C, l1_ratio)`` whose optimum is the probe's: scikit-learn minimises
    ``C * sum(loss) + l1_ratio * |W|_1 + (1 - l1_ratio) / 2 * |W|_2^2``, i.e. divided by ``C * n``, the mean loss
    plus ``l1_ratio / (C n) * |W|_1 + (1 - l1_ratio) / (2 C n) * |W|_2^2``; equal to ``l1`` and ``l2`` when
    ``1 / (C n) = l1 + 2 l2`` and ``l1_ratio = l1 / (l1 + 2 l2)``. With two classes scikit-learn fits one vector
    ``w = W[1] - W[0]``: the softmax probe's penalty, smallest at ``W = [-w / 2, w / 2]``, is then
    ``l1 |w|_1 + l2 / 2 |w|_2^2``, so ``l2 / 2`` stands for `l2`. No penalty: ``C = inf``."""
    l2 = l2 / 2 if num_classes == 2 else l2
    strength = l1 + 2 * l2
    if strength == 0:
        return math.inf, 0.0
    return 1.0 / (num_rows * strength), l1 / strength


def _fit_saga(block: np.ndarray, train_labels: np.ndarray, num_labels: int,
              config: ProbeConfig) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The elastic net's optimum by scikit-learn's saga, as ``(weight, bias)`` over all `num_labels` classes (a class
    without a training row: weights 0, a bias far below the others', never predicted) and the objective reached."""
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    present = np.unique(train_labels)
    C, l1_ratio = saga_parameters(config.l1, config.l2, len(train_labels), len(present))
    options: dict[str, Any] = {}
    if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 8):  # penalty= deprecated in 1.8
        options["penalty"] = "elasticnet" if math.isfinite(C) else None
    x = np.asarray(block, dtype=np.float64)
    model = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=config.tol, max_iter=config.max_iter,
                               random_state=config.seed, **options)
    with warnings_caught(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, np.searchsorted(present, train_labels))
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        warn_caller(f"The saga probe stopped after max_iter={config.max_iter} passes before its weights settled "
                    f"(tol={config.tol}): its objective is above the optimum and its ranking may not be the elastic "
                    "net's. Raise max_iter.")
    coef, intercept = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
    if len(present) == 2:  # one vector w = W[1] - W[0]: the optimum's split
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    weight = np.zeros((num_labels, x.shape[1]), dtype=np.float32)
    bias = np.full(num_labels, float(intercept.min()) - 1000.0, dtype=np.float32)  # the optimum's is -inf
    weight[present], bias[present] = coef, intercept
    return weight, bias, [elastic_net_objective(x, train_labels, weight, bias, config.l1, config.l2)]


def elastic_net_objective(x: np.ndarray, labels: np.ndarray, weight: np.ndarray, bias: np.ndarray, l1: float,
                          l2: float) -> float:
    """The probe's training objective, ``mean cross-entropy + l1 |W|_1 + l2 |W|_2^2``, in float64.

    Args:
        x (`np.ndarray`): standardised training rows (rows x the probe's columns).
        labels (`np.ndarray`): their class ids.
        weight, bias (`np.ndarray`): a probe's weights and bias.
        l1, l2 (`float`): the penalties.
    """
    weight, bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
    logits = np.asarray(x, np.float64) @ weight.T + bias
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    loss = float(np.mean(log_norm - logits[np.arange(len(labels)), np.asarray(labels, np.int64)]))
    return loss + l1 * float(np.abs(weight).sum()) + l2 * float((weight * weight).sum())


# ----- experiments on top of a ranking --------------------------------------------------------------------------
def _accuracy_with(acts: Activations, train: np.ndarray, test: np.ndarray, columns: np.ndarray,
                   config: ProbeConfig, labels: np.ndarray | None = None) -> float:
    # the same training rows as the probe being examined, which warned of its untrained classes once; control
    # labels are drawn under the real names, so theirs would be misread as the probe's (fix 133)
    probe = train_probe(acts.values, acts.labels if labels is None else labels, rows=train, columns=columns,
                        label_names=acts.label_names, config=config, warn_untrained=False)
    gold = acts.labels if labels is None else labels
    return probe.evaluate(acts.values, gold, rows=test).accuracy


def default_sizes(num_neurons: int) -> list[int]:
    """1, 2, 4, 8... up to (and including) `num_neurons`."""
    sizes = [2**i for i in range(int(math.log2(max(num_neurons, 1))) + 1)]
    return sorted({s for s in sizes if s < num_neurons} | {num_neurons})


def check_share(share: Any, name: str = "share") -> None:
    """Refuse a share of the full accuracy (the minimal set's target) that is not a number in (0, 1]."""
    if isinstance(share, bool) or not isinstance(share, (int, float, np.integer, np.floating)) \
            or not 0.0 < share <= 1.0:
        raise ConfigurationError(f"{name} must be a number in (0, 1], the share of the full probe's accuracy the "
                                 f"minimal neuron set must reach, got {share!r}.")


def minimal_neuron_set(
    acts: Activations,
    train: np.ndarray,
    test: np.ndarray,
    ranking: np.ndarray,
    full_accuracy: float,
    *,
    share: float = 0.9,
    sizes: Sequence[int] | None = None,
    refine_steps: int = 4,
    config: ProbeConfig | None = None,
) -> tuple[int, pd.DataFrame]:
    """The smallest top-ranked neuron set whose retrained probe reaches `share` of the full probe's accuracy.

    Probes are retrained on the top-k neurons for growing k (`sizes`, default 1, 2, 4, ...); between the last size
    that fell short and the first that reached the target, up to `refine_steps` bisection steps narrow k down.

    The search reads the accuracy on `test`, the rows that score it (:func:`~hf_txray.probing.probe_neurons` passes
    its test sentences; there is no separate development split): k is fitted to them, so the accuracy at k is no
    held-out estimate. Pass other rows as `test` for one.

    Args:
        acts (`Activations`): the activations.
        train, test (`np.ndarray`): row indices.
        ranking (`np.ndarray`): activation columns, most important first.
        full_accuracy (`float`): test accuracy of the probe on all neurons.
        share (`float`, *optional*, defaults to 0.9): the fraction of `full_accuracy` to reach, in (0, 1].
        sizes (`Sequence[int]`, *optional*): the k to try, increasing.
        refine_steps (`int`, *optional*, defaults to 4): bisection steps.
        config (`ProbeConfig`, *optional*): probe hyperparameters.

    Returns:
        `tuple(int, pd.DataFrame)`: k (``len(ranking)`` when no smaller set reaches the target) and every k tried
        with its accuracy and whether it reached the target.
    """
    check_share(share)
    config = config or ProbeConfig()
    ranking = np.asarray(ranking, dtype=np.int64)
    target = share * full_accuracy
    if sizes is None:
        sizes = default_sizes(len(ranking))
    else:
        sizes = sorted({int(k) for k in sizes if 0 < int(k) <= len(ranking)})
    tried: dict[int, float] = {}

    def accuracy(k: int) -> float:
        if k not in tried:
            tried[k] = _accuracy_with(acts, train, test, ranking[:k], config)
        return tried[k]

    found, below = len(ranking), 0
    for k in sizes:
        if accuracy(k) >= target:
            found = k
            break
        below = k
    low, high = below, found
    for _ in range(refine_steps):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        if accuracy(middle) >= target:
            high = middle
        else:
            low = middle
    found = high if high in tried and tried[high] >= target else found
    table = pd.DataFrame({"num_neurons": list(tried), "accuracy": list(tried.values())}).sort_values("num_neurons")
    table["reached"] = table["accuracy"] >= target
    return int(found), table.reset_index(drop=True)


def subset_accuracies(
    acts: Activations,
    train: np.ndarray,
    test: np.ndarray,
    ranking: np.ndarray,
    size: int,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    config: ProbeConfig | None = None,
) -> pd.DataFrame:
    """Retrain probes on the top-`size`, `size` random (one per seed) and bottom-`size` neurons of `ranking`.

    If the ranking means something, top >> random >> bottom.

    Returns:
        `pd.DataFrame` with ``subset`` (``top``/``random``/``bottom``), ``seed``, ``num_neurons``, ``accuracy``.
    """
    ranking = np.asarray(ranking, dtype=np.int64)
    if not 0 < size <= len(ranking):
        raise ConfigurationError(f"size must be in 1..{len(ranking)}, got {size}.")
    config = config or ProbeConfig()
    rows = [{"subset": "top", "seed": -1, "num_neurons": size,
             "accuracy": _accuracy_with(acts, train, test, ranking[:size], config)}]
    for seed in seeds:
        chosen = np.random.default_rng(seed).choice(ranking, size=size, replace=False)
        rows.append({"subset": "random", "seed": int(seed), "num_neurons": size,
                     "accuracy": _accuracy_with(acts, train, test, np.sort(chosen), config)})
    rows.append({"subset": "bottom", "seed": -1, "num_neurons": size,
                 "accuracy": _accuracy_with(acts, train, test, ranking[-size:], config)})
    return pd.DataFrame(rows)


def control_task_accuracy(acts: Activations, train: np.ndarray, test: np.ndarray, *, seed: int = 0,
                          config: ProbeConfig | None = None, columns: np.ndarray | None = None) -> float:
    """Test accuracy of the same probe trained on control-task labels (a random label per word type).

    Selectivity is the real task's accuracy minus this (Hewitt & Liang, 2019).
    """
    labels = control_labels(acts.word_types, acts.labels, len(acts.label_names), seed=seed)
    columns = np.arange(acts.num_features) if columns is None else columns
    drawn = np.unique(labels[np.asarray(train, dtype=np.int64)])
    if len(drawn) == 1:
        # helper 182: a few word types can all draw one control label; train_probe then refused "a corpus of one
        # label" after the real probe had run. A probe of one class predicts it everywhere: that is its accuracy.
        warn_caller(f"The control task (seed {seed}) gave every training word type the label "
                    f"{acts.label_names[int(drawn[0])]!r}, so its probe predicts that label for every word; the "
                    f"control accuracy is that share of the test words. With so few word types "
                    f"({len(np.unique(acts.word_types[train]))} in training), selectivity says little.")
        return float(np.mean(labels[np.asarray(test, dtype=np.int64)] == drawn[0])) if len(test) else float("nan")
    return _accuracy_with(acts, train, test, columns, config or ProbeConfig(), labels=labels)
