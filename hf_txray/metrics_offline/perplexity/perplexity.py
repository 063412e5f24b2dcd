"""Corpus perplexity from language-model losses, as an offline `evaluate` metric script."""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Perplexity of a causal language model over a corpus: exp(total negative log-likelihood / total predicted tokens),
i.e. tokens are weighted equally across sequences. Unlike the Hub's `perplexity` (which loads a model by id and runs
it), this metric takes the losses, so any model, batching and device can produce them; it ships inside hf_txray and
loads offline with `evaluate.load(<path to this folder>)`.
"""

_KWARGS_DESCRIPTION = """
Args:
    nll (`list` of `float`): per sequence, the SUM of the negative log-likelihoods (natural log) of its predicted
        tokens.
    num_tokens (`list` of `int`): per sequence, the number of predicted tokens in that sum.

Returns:
    perplexity (`float`): exp(sum(nll) / sum(num_tokens)).
    mean_nll (`float`): sum(nll) / sum(num_tokens), the mean loss per token.
    num_tokens (`int`): the number of tokens evaluated.

Examples:
    >>> perplexity = evaluate.load("hf_txray/metrics_offline/perplexity")
    >>> perplexity.compute(nll=[2.0, 4.0], num_tokens=[2, 2])
    {'perplexity': 4.4816..., 'mean_nll': 1.5, 'num_tokens': 4}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll": datasets.Value("float64"), "num_tokens": datasets.Value("int64")}),
            reference_urls=["https://huggingface.co/docs/transformers/perplexity"],
        )

    def _compute(self, nll, num_tokens):
        total_nll = float(np.sum(np.asarray(nll, dtype=np.float64)))
        total = int(np.sum(np.asarray(num_tokens, dtype=np.int64)))
        if total == 0:
            return {"perplexity": float("nan"), "mean_nll": float("nan"), "num_tokens": 0}
        mean = total_nll / total
        return {"perplexity": float(math.exp(mean)), "mean_nll": mean, "num_tokens": total}
