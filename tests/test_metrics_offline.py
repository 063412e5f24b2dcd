"""The offline evaluate metric scripts (scikit-learn inside) against a brute-force count of TP / FP / FN."""

from __future__ import annotations

import numpy as np
import pytest

from hf_txray.evaluation import load_metric


def brute_scores(predictions, references, labels, weights, zero_division):
    """Per-label precision, recall, F1 and support from explicit loops over the examples."""
    out = []
    for label in labels:
        tp = fp = fn = 0.0
        for p, r, w in zip(predictions, references, weights):
            tp += w * (p == label and r == label)
            fp += w * (p == label and r != label)
            fn += w * (p != label and r == label)
        precision = tp / (tp + fp) if tp + fp else zero_division
        recall = tp / (tp + fn) if tp + fn else zero_division
        f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else zero_division
        out.append((precision, recall, f1, tp + fn, tp, fp, fn))
    return out


def brute(name, predictions, references, average, weights, zero_division=0.0, labels=None, pos_label=1):
    index = {"precision": 0, "recall": 1, "f1": 2}[name]
    if average == "binary":
        labels = [pos_label]
    labels = labels if labels is not None else sorted(set(predictions) | set(references))
    rows = brute_scores(predictions, references, labels, weights, zero_division)
    if average == "micro":
        tp, fp, fn = (sum(r[i] for r in rows) for i in (4, 5, 6))
        micro = {"precision": tp / (tp + fp) if tp + fp else zero_division,
                 "recall": tp / (tp + fn) if tp + fn else zero_division,
                 "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else zero_division}
        return micro[name]
    values = [r[index] for r in rows]
    if average is None:
        return values
    if average == "weighted":
        support = [r[3] for r in rows]
        return sum(v * s for v, s in zip(values, support)) / sum(support) if sum(support) else 0.0
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def metrics():
    return {name: load_metric(name) for name in ("accuracy", "precision", "recall", "f1")}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_multiclass_scores_match_brute_counts(metrics, seed, average):
    rng = np.random.default_rng(seed)
    references = rng.integers(0, 4, 40).tolist()
    predictions = rng.integers(0, 5, 40).tolist()  # label 4 is only ever predicted: precision 0, recall 0/0
    weights = rng.uniform(0.1, 2.0, 40).tolist() if seed == 2 else [1.0] * 40
    for name in ("precision", "recall", "f1"):
        got = metrics[name].compute(predictions=predictions, references=references, average=average,
                                    sample_weight=weights if seed == 2 else None)[name]
        np.testing.assert_allclose(got, brute(name, predictions, references, average, weights), rtol=1e-12)


def test_binary_labels_and_zero_division(metrics):
    predictions, references = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    for name in ("precision", "recall", "f1"):
        assert metrics[name].compute(predictions=predictions, references=references)[name] == pytest.approx(
            brute(name, predictions, references, "binary", [1] * 5))
        assert metrics[name].compute(predictions=predictions, references=references, pos_label=0)[name] == \
            pytest.approx(brute(name, predictions, references, "binary", [1] * 5, pos_label=0))
    subset = metrics["f1"].compute(predictions=[0, 1, 2, 2], references=[0, 2, 2, 1], labels=[1, 2],
                                   average="macro")["f1"]
    assert subset == pytest.approx(brute("f1", [0, 1, 2, 2], [0, 2, 2, 1], "macro", [1] * 4, labels=[1, 2]))
    # nothing predicted positive: 0/0, which zero_division decides (0 by default, without a warning)
    assert metrics["precision"].compute(predictions=[0, 0], references=[1, 0])["precision"] == 0.0
    assert metrics["precision"].compute(predictions=[0, 0], references=[1, 0], zero_division=1.0)["precision"] == 1.0
    with pytest.raises(ValueError, match="multiclass"):
        metrics["f1"].compute(predictions=[0, 1, 2], references=[0, 1, 2])


def test_accuracy_counts_weights_and_normalize(metrics):
    predictions, references = [0, 1, 2, 2, 1], [0, 1, 1, 2, 0]
    accuracy = metrics["accuracy"]
    assert accuracy.compute(predictions=predictions, references=references) == {"accuracy": 3 / 5}
    assert accuracy.compute(predictions=predictions, references=references, normalize=False) == {"accuracy": 3}
    weights = [1.0, 2.0, 0.5, 0.5, 1.0]
    weighted = accuracy.compute(predictions=predictions, references=references, sample_weight=weights)["accuracy"]
    assert weighted == pytest.approx((1.0 + 2.0 + 0.5) / sum(weights))
