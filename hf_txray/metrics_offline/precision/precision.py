"""Precision, as an offline `evaluate` metric script (same inputs, options and output as the Hub's `precision`)."""

import datasets
import evaluate
import numpy as np

from hf_txray.metrics_offline._classification import precision_recall_f1

_DESCRIPTION = """
Precision is the fraction of correctly labeled positive examples among all examples labeled positive: TP / (TP + FP).
This copy ships inside hf_txray and loads offline with `evaluate.load(<path to this folder>)`; it follows
scikit-learn's definitions but needs numpy only.
"""

_KWARGS_DESCRIPTION = """
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
    precision (`float`, or an array of floats when `average=None`).

Examples:
    >>> precision = evaluate.load("hf_txray/metrics_offline/precision")
    >>> precision.compute(references=[0, 1, 2, 0], predictions=[0, 1, 1, 0], average="macro")
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=["https://huggingface.co/spaces/evaluate-metric/precision"],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None,
                 zero_division=0.0):
        scores = precision_recall_f1(predictions, references, labels=labels, pos_label=pos_label, average=average,
                                     sample_weight=sample_weight, zero_division=zero_division)
        value = scores[0]
        return {"precision": value if average is None else float(value)}
