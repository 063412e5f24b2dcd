"""Precision / recall / F1 with scikit-learn's semantics, in numpy (shared by the offline metric scripts)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

AVERAGES = ("binary", "micro", "macro", "weighted", None)


def _labels(predictions: np.ndarray, references: np.ndarray, labels: Sequence[Any] | None) -> np.ndarray:
    if labels is not None:
        return np.asarray(list(labels))
    return np.unique(np.concatenate([references, predictions]))


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    out = np.full(numerator.shape, float(zero_division))
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def precision_recall_f1(predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None,
                        zero_division=0.0) -> tuple[Any, Any, Any]:
    """(precision, recall, f1) as ``sklearn.metrics.precision_recall_fscore_support`` computes them."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.shape != references.shape:
        raise ValueError(f"predictions and references differ in length: {predictions.shape} vs {references.shape}")
    weight = np.ones(len(references)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    present = _labels(predictions, references, None)
    if average == "binary":
        if len(present) > 2:
            raise ValueError(
                f"Target is multiclass ({len(present)} labels) but average='binary'. Choose another average: "
                "'micro', 'macro', 'weighted' or None."
            )
        labels = [pos_label]
    else:
        labels = _labels(predictions, references, labels)
    tp = np.array([weight[(predictions == c) & (references == c)].sum() for c in labels])
    pred = np.array([weight[predictions == c].sum() for c in labels])
    true = np.array([weight[references == c].sum() for c in labels])
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)
    precision = _divide(tp, pred, zero_division)
    recall = _divide(tp, true, zero_division)
    f1 = _divide(2 * tp, pred + true, zero_division)
    if average is None:
        return precision, recall, f1
    if average == "weighted":
        total = true.sum()
        weights = true / total if total else np.zeros_like(true)
        return tuple(float((v * weights).sum()) for v in (precision, recall, f1))
    return tuple(float(v.mean()) for v in (precision, recall, f1))


KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): ground-truth labels.
    labels (`list` of `int`, *optional*): the labels to include when `average != "binary"` (default: every label
        present in references or predictions).
    pos_label (`int`, defaults to 1): the positive class when `average="binary"`.
    average (`str`, defaults to `"binary"`): `"binary"`, `"micro"`, `"macro"`, `"weighted"`, or None for the
        per-class scores.
    sample_weight (`list` of `float`, *optional*): example weights.
    zero_division (`float`, defaults to 0): the value used when a ratio divides by zero.

Returns:
    {name} (`float`, or an array of floats when `average=None`).

Examples:
    >>> {name} = evaluate.load("hf_txray/metrics_offline/{name}")
    >>> {name}.compute(references=[0, 1, 2, 0], predictions=[0, 1, 1, 0], average="macro")
"""
OFFLINE_NOTE = ("This copy ships inside hf_txray and loads offline with `evaluate.load(<path to this folder>)`; it "
                "follows scikit-learn's definitions but needs numpy only.")
SCORE_INDEX = {"precision": 0, "recall": 1, "f1": 2}


def make_metric_class(name: str, description: str):
    """The `evaluate.Metric` subclass of one of precision / recall / f1 (the three share inputs and options).

    Built by a factory rather than inherited from a base class defined here, because `evaluate.load` takes the
    first `evaluate.Metric` subclass it finds in the script's namespace.
    """
    import datasets
    import evaluate

    kwargs_description = KWARGS_DESCRIPTION.format(name=name)
    full_description = f"{description}\n{OFFLINE_NOTE}"

    def _info(self):
        return evaluate.MetricInfo(
            description=full_description, citation="", inputs_description=kwargs_description,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=[f"https://huggingface.co/spaces/evaluate-metric/{name}"],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None,
                 zero_division=0.0):
        value = precision_recall_f1(predictions, references, labels=labels, pos_label=pos_label, average=average,
                                    sample_weight=sample_weight, zero_division=zero_division)[SCORE_INDEX[name]]
        return {name: value if average is None else float(value)}

    cls = type(name.capitalize() if name != "f1" else "F1", (evaluate.Metric,), {"_info": _info, "_compute": _compute})
    cls.__doc__ = full_description + kwargs_description
    return cls
