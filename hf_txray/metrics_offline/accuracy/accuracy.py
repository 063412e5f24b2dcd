"""Accuracy, as an offline `evaluate` metric script (same inputs and output as the Hub's `accuracy`)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among the examples processed:
Accuracy = (TP + TN) / (TP + TN + FP + FN). This copy ships inside hf_txray and loads offline with
`evaluate.load(<path to this folder>)`; it computes the score with scikit-learn, as the Hub's script does.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): ground-truth labels.
    normalize (`bool`, defaults to `True`): if False, return the number of correct predictions instead.
    sample_weight (`list` of `float`, *optional*): example weights.

Returns:
    accuracy (`float` or `int`): in [0, 1], or a count when `normalize=False`.

Examples:
    >>> accuracy = evaluate.load("hf_txray/metrics_offline/accuracy")
    >>> accuracy.compute(references=[0, 1, 2, 0], predictions=[0, 1, 1, 0])
    {'accuracy': 0.75}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=["https://huggingface.co/spaces/evaluate-metric/accuracy"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        if not len(references):
            return {"accuracy": 0.0 if normalize else 0}
        value = float(accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight))
        # a count of correct predictions stays an integer when every example weighs 1
        return {"accuracy": int(value) if not normalize and sample_weight is None else value}
