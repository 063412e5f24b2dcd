"""Precision / recall / F1 through scikit-learn, as the Hub's metric scripts compute them (shared by the offline
precision, recall and f1 scripts)."""

from __future__ import annotations

from typing import Any

SCORES = {"precision": "precision_score", "recall": "recall_score", "f1": "f1_score"}


def classification_score(name: str, predictions, references, labels=None, pos_label=1, average="binary",
                         sample_weight=None, zero_division=0.0) -> Any:
    """``sklearn.metrics.<name>_score(references, predictions, ...)``: a float, or one per label when `average` is
    None.

    Args:
        name (`str`): ``"precision"``, ``"recall"`` or ``"f1"``.
        zero_division (`float`, *optional*, defaults to 0.0): the value where a ratio divides by zero (scikit-learn
            would warn and give 0 by default; the offline scripts give 0 without a warning).
        The other arguments are scikit-learn's.

    Raises:
        `ValueError`: scikit-learn's, e.g. a multiclass target with ``average="binary"``.
    """
    import sklearn.metrics

    score = getattr(sklearn.metrics, SCORES[name])
    value = score(references, predictions, labels=labels, pos_label=pos_label, average=average,
                  sample_weight=sample_weight, zero_division=zero_division)
    return value if average is None else float(value)


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
                "computes the score with scikit-learn, as the Hub's script does.")


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
        return {name: classification_score(name, predictions, references, labels=labels, pos_label=pos_label,
                                           average=average, sample_weight=sample_weight, zero_division=zero_division)}

    cls = type(name.capitalize() if name != "f1" else "F1", (evaluate.Metric,), {"_info": _info, "_compute": _compute})
    cls.__doc__ = full_description + kwargs_description
    return cls
