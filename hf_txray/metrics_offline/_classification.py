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
