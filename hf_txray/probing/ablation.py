"""Ablation: switch MLP neurons off (zero) or to their mean, and measure what the model loses.

:func:`ablate` is a context manager built on the pruning module's masks (:func:`hf_txray.pruning.masked` for
``mode="zero"``; for ``mode="mean"`` the same forward pre-hook on the down projection, a :class:`~hf_txray.hooks.Fill`
of the means registered and removed by :func:`hf_txray.pruning.edit_neurons`), so parameters never change and the
model computes bit for bit as before once the block exits.

:func:`ablation_curve` ablates the top-k neurons of a ranking and k random neurons (several seeds) for growing k and
records a metric each time: a probe's accuracy (:class:`ProbeMetric`), a task metric (:class:`TaskMetric`), the LM
loss (:class:`LMLossMetric`), or any ``callable(model) -> float``.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd
from torch import nn

from ..artifact import Artifact
from ..counts import check_switch, is_int, refuse_repeats
from ..errors import ConfigurationError, ModelError
from ..features.registry import same_function
from ..forward import on_own_default_device
from ..lengths import resolve_max_length
from ..logging import warn_caller
from ..metrics_offline import OFFLINE_METRICS
from ..hooks import Fill
from ..pruning import MaskHandle, edit_neurons, masked, mlp_sites
from ..pruning.masks import check_pattern_sites, check_plan, check_ranked_modules, refuse_active_masks
from ..pruning.plan import table_pairs
from ..sites import unwrap_model
from ..version import __version__
from .data import LabeledCorpus, refuse_single_string
from .extraction import Activations, weights_difference, weights_fingerprint
from .probe import class_ids_by_name
from .layout import ABLATION_CONFIG, CURVE_COLUMNS, ablation_table, read_curve, refuse_exported_rows, write_probing_folder

MODES = ("zero", "mean")


def _as_spec(neurons: Any) -> Any:
    """Accept a DataFrame with ``layer``/``neuron`` columns (e.g. ``result.top_neurons(10)``) too."""
    if isinstance(neurons, pd.DataFrame):
        return table_pairs(neurons)
    return neurons


def _means_for(means: Any, chosen: Mapping[int, list[int]], model: nn.Module,
               widths: Mapping[int, int]) -> dict[int, np.ndarray]:
    """The fill value of each chosen neuron, from `means`, checked: the MLP site of the encoder (or only) stack, the
    weights of `model` (an `Activations` records their sample hash), finite, one per neuron of the layer (`widths`:
    the model's neurons per layer)."""
    if isinstance(means, Activations):
        _check_means_model(means, model)
        if means.site != "mlp":
            raise ConfigurationError(f"mode='mean' ablates MLP neurons; these activations are of the {means.site!r} "
                                     "site. Extract with site='mlp'.")
        if means.stack == "decoder":
            raise ConfigurationError("mode='mean' fills MLP neurons of the encoder (or only) stack, but these are the "
                                     "means of the decoder stack. Extract them with stack='encoder'.")
        if means.num_tokens == 0:  # every sentence one token long on a decoder whose first position is skipped
            raise ConfigurationError(
                "mode='mean' needs neuron means, but these activations averaged no token: every token of their corpus "
                "sits at a position the means leave out (a decoder-only LM's first position, as profiles skip it), so "
                "their means are 0 by default, not measured. Take the means of longer texts (hf_txray.probing."
                "neuron_means(model, texts, tokenizer)), or ablate with mode='zero'.")
        means = means.means_by_layer()
    if not isinstance(means, Mapping):
        raise ConfigurationError("mode='mean' needs means: an Activations object (extract_activations), or a dict "
                                 "{layer: per-neuron means} (hf_txray.probing.neuron_means).")
    out = {}
    for layer, indices in chosen.items():
        if not indices:
            continue
        if layer not in means:
            raise ConfigurationError(f"No means for layer {layer}; means cover layers {sorted(means)}.")
        values = np.asarray(means[layer], dtype=np.float64)
        if values.shape != (widths[layer],):  # helper 369: 40 means filled 2 of a 48-wide layer's neurons silently
            raise ConfigurationError(
                f"The means of layer {layer} have shape {values.shape}, but the layer has {widths[layer]} neurons: "
                "they are the means of another layer or model. Take them from this model (hf_txray.probing."
                "neuron_means), one per neuron of the layer.")
        if not np.isfinite(values[indices]).all():  # helper 151: NaN means made every later activation NaN
            bad = [i for i in indices if not np.isfinite(values[i])]
            raise ConfigurationError(f"The means of layer {layer} are not finite for neurons {bad[:5]}: a NaN or inf "
                                     "fill would spread through every later layer. Compute them again.")
        out[layer] = values[indices]
    return out


def _check_means_model(means: Activations, model: nn.Module) -> None:
    """Refuse means extracted from other weights than `model`'s (helper 151: another model's means were filled in
    silently): the hashes both sides take of the weights that run (:func:`~hf_txray.probing.extraction.
    weights_difference`: a decoder stack's include the encoder that feeds it)."""
    if not means.weights_sample_hash:
        return  # saved before the hash was recorded: cannot be told
    found = weights_fingerprint(model, "mlp", list(means.layers), means.module_pattern, means.stack)
    difference = weights_difference(means, found, means.stack)
    if difference:
        raise ModelError(
            f"These means were extracted from other weights than this model's ({difference}; dtypes "
            f"{means.weights_dtype} and {found.weights_dtype}): "
            "another model of the same widths, another fine-tune, the weights changed since, another dtype, or a "
            "PEFT adapter added or removed (its layers change the model's function and rename its weights), or "
            "another adapter active (set_adapter) or adapters disabled (disable_adapter()). Extract them from this "
            "model as it is (hf_txray.probing.extract_activations).")


def check_mode(mode: str, means: Any) -> None:
    """Refuse an unknown ablation mode, and `means` with ``mode="zero"``: they were ignored, and the neurons zeroed
    where the caller meant to fill in their means (helper 272: ``ablate(model, top, means=acts)`` without
    ``mode="mean"``)."""
    if mode not in MODES:
        raise ConfigurationError(f"Unknown ablation mode {mode!r}: choose one of {', '.join(MODES)}.")
    if mode == "zero" and means is not None:
        raise ConfigurationError(
            "means were given but mode='zero', which sets the neurons to 0 and reads no means: pass mode='mean' to "
            "fill in the means, or leave means unset to zero the neurons.")


@contextlib.contextmanager
def ablate(model: nn.Module, neurons: Any, mode: str = "zero", means: Any = None) -> Iterator[MaskHandle]:
    """Ablate MLP neurons inside a ``with`` block: their activation is replaced by 0 or by its mean.

    The neurons are those TX-Ray profiles and probes read at the ``"mlp"`` site (inputs of each block's MLP down
    projection), addressed by ``(layer, index)``. Parameters are not modified; leaving the block restores the model
    exactly. Hooks of :func:`hf_txray.analyze` or :func:`~hf_txray.probing.extract_activations` added inside the
    block see the ablated values. The ablation acts on the model, so on the forward passes of every thread while the
    block runs (another thread's ``analyze`` of the model refuses its result when one begins or ends during it).

    Args:
        model (`nn.Module`): a transformers model.
        neurons: ``{layer: [index, ...]}``, a list of ``(layer, index)`` pairs, a `PruningPlan`, or a DataFrame with
            ``layer`` and ``neuron`` columns (e.g. ``result.top_neurons(10)``).
        mode (`str`, *optional*, defaults to `"zero"`): ``"zero"`` or ``"mean"``.
        means (*optional*): for ``mode="mean"``: an `Activations` object (its token-level neuron means; refused
            when extracted from other weights, by the sample hash it records) or a dict ``{layer: per-neuron means}``
            from :func:`~hf_txray.probing.neuron_means` (taken as given: a dict does not say which model it came
            from). Refused with ``mode="zero"``, which reads none.

    Yields:
        `MaskHandle`: also listed by :func:`hf_txray.pruning.active_masks` while the block runs.

    Raises:
        ConfigurationError: unknown mode, neurons out of range, missing means, means with ``mode="zero"``, or
            neurons that an active mask or ablation sets to other values (it would override this one).

    Example:
        ```python
        >>> with hf_txray.ablate(model, {3: [17, 42]}):                     # zero
        ...     loss = model(**batch, labels=batch["input_ids"]).loss
        >>> with hf_txray.ablate(model, result.top_neurons(10), mode="mean", means=result.activations):
        ...     ...
        ```
    """
    check_mode(mode, means)
    model = unwrap_model(model)  # helper 367: DataParallel(model) was refused as declaring no MLP width
    check_ranked_modules(neurons, model)
    neurons = _as_spec(neurons)
    if mode == "zero":
        with masked(model, neurons) as handle:
            yield handle
        return
    sites = mlp_sites(model)
    check_plan(model, neurons, sites, "Ablating neurons")  # as masking does (mode="zero")
    chosen = sites.chosen(neurons, "Ablating neurons")
    values = _means_for(means, chosen, model, sites.widths)
    handle = edit_neurons(model, chosen, {layer: Fill(indices, values[layer]) for layer, indices in chosen.items()
                                          if indices}, sites)
    try:
        yield handle
    finally:
        handle.remove()


# ----- metrics ----------------------------------------------------------------------------------------------------
class ProbeMetric:
    """A metric for :func:`ablation_curve`: a trained probe's accuracy on labelled words, re-extracted from the
    (ablated) model each call, from the layers, site, aggregation and stack the probe read (``result.meta``).

    The accuracy is over every word the model reads. A word whose label the probe never saw (a rare tag such as
    ``X`` or ``SYM`` in a held-out split) counts as wrong, never as right: the probe cannot predict that label. A
    ``UserWarning``, once when the metric is built, names those labels and how many words carry them; to leave them
    out, score a corpus without them. Another, also once, says how many of the corpus's sentences the probe was
    trained on (its result records them: ``result.train_sentences``), on which its accuracy reads too high;
    ``result.held_out(corpus)`` leaves them out.

    Args:
        result (`ProbingResult`): the probe and what it reads (layers, site, aggregation).
        corpus (`LabeledCorpus`): words to score (use held-out sentences: ``result.held_out(corpus)``); its labels
            are matched to the probe's by name.
        tokenizer: the model's fast tokenizer.
        batch_size (`int`, *optional*, defaults to 32): sentences per forward pass.
        max_length (`int`, *optional*): truncation.

    Example:
        ```python
        >>> metric = ProbeMetric(result, test_corpus, tokenizer)
        >>> metric(model)   # accuracy with the current model (and any active ablation)
        0.91
        ```
    """

    name = "probe_accuracy"

    def __init__(self, result: Any, corpus: LabeledCorpus, tokenizer: Any, *, batch_size: int = 32,
                 max_length: int | None = None):
        check_probed_tokenizer(result.meta, tokenizer, corpus.texts)
        self.result, self.corpus, self.tokenizer = result, corpus, tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        self._probe_ids = _probe_ids(corpus, result.probe.label_names)
        warn_trained_sentences(result, corpus)
        self._warned = False  # that the probe's weights cannot be checked (saved before they were recorded)

    def check_model(self, model: nn.Module) -> None:
        """Refuse, before any work, a model whose weights are not those the probe was trained on (another model of
        the same layer widths, or the same one in another dtype): the probe would score activations it never saw.
        A probe saved before the fingerprint was recorded cannot be checked: a warning says so, once."""
        self._warned = check_probed_model(self.result.meta, model, warned=self._warned)

    def texts(self, model: nn.Module | None = None) -> list[str]:
        """The texts the metric runs on (e.g. to compute neuron means for ``mode="mean"``)."""
        return list(self.corpus.texts)

    def max_length_for(self, model: nn.Module) -> int | None:
        """The truncation the metric reads its texts at (`max_length`; None: the model's limit, at most 512, as
        :func:`~hf_txray.probing.neuron_means` resolves it): take the means of ``mode="mean"`` at it."""
        return self.max_length

    def __call__(self, model: nn.Module) -> float:
        from .extraction import extract_activations

        meta = self.result.meta
        acts = extract_activations(model, self.corpus, self.tokenizer, layers=list(meta.layers), site=meta.site,
                                   aggregation=meta.aggregation, stack=meta.stack,
                                   module_pattern=meta.module_pattern, batch_size=self.batch_size,
                                   max_length=self.max_length)
        predicted = self.result.probe.predict(acts)  # refuses activations of another width first
        difference = weights_difference(meta, acts, meta.stack)  # called without check_model
        if difference:
            raise _other_weights_error(meta, difference, acts.weights_dtype)
        gold = self._probe_ids[acts.labels]  # -1 for an unseen label: no prediction equals it
        return float(np.mean(predicted == gold))


def _other_weights_error(meta: Any, difference: str, dtype: str | None) -> ModelError:
    """The refusal of a model whose weights fingerprint is not the one the probe recorded when it was trained
    (`difference`: :func:`~hf_txray.probing.extraction.weights_difference`)."""
    if dtype != meta.weights_dtype:
        what = (f"its weights are {dtype}, and the probe was trained on {meta.weights_dtype} activations of "
                f"{meta.model_id!r}")
        fix = f"Load the model in {meta.weights_dtype} (from_pretrained(..., dtype={meta.weights_dtype!r})), or train a probe "
    else:
        what = (f"its weights are not those of {meta.model_id!r} the probe was trained on ({difference}): another "
                "model of the same layer widths, another fine-tune, weights changed since, or a PEFT adapter added "
                "(its weights change the model's function, and the wrapper renames the base weights: "
                "get_base_model() keeps the adapter layers), another adapter active (set_adapter) or adapters "
                "disabled (disable_adapter()); a probe trained on the adapted model, as it runs, scores it")
        fix = "Ablate the model the probe was trained on, or train a probe (hf-txray probe) "
    return ModelError(f"The probe {meta.name!r} cannot score this model: {what}. {fix}on this model.")


def check_probed_tokenizer(meta: Any, tokenizer: Any, texts: Sequence[str] = ()) -> None:
    """Refuse a `tokenizer` whose vocabulary is not that of the tokenizer the probe of `meta` (a `ProbingMeta`) was
    trained with: it splits the words into other tokens, and the probe would score activations it never saw, with no
    error (a BERT probe scored through a BPE tokenizer: 0.149). A probe saved before the vocabulary was recorded, or a
    tokenizer without a vocabulary to read, is not checked. Special tokens added at the vocabulary's end since (a pad
    token added to GPT-2's for batching) are taken when none of `texts` holds them: those texts split alike.

    Raises:
        ModelError: naming the probe and the fix.
    """
    from ..provenance import added_special_tokens_at_end, tokenizer_vocab_hash

    recorded = getattr(meta, "tokenizer_vocab_hash", None)
    found = tokenizer_vocab_hash(tokenizer) if recorded else None
    if recorded and found and found != recorded:
        added = added_special_tokens_at_end(tokenizer)
        for count in range(1, len(added) + 1):
            if tokenizer_vocab_hash(tokenizer, drop_last=count) == recorded:
                held = [token for token in added[:count] if any(token in text for text in texts)]
                if not held:
                    return
                raise ModelError(
                    f"The probe {meta.name!r} cannot score these texts with this tokenizer: its vocabulary is that "
                    f"of the tokenizer the probe was trained with plus the special tokens {added[:count]}, and "
                    f"texts hold {held}, which it splits otherwise. Pass the tokenizer the probe was trained with, "
                    "or score texts without them.")
        # Refused even when the two may agree on every real token (the probe's tokenizer had a pad token added with
        # add_special_tokens, and this one is the model's own without it): the recorded hash covers the whole
        # vocabulary, so it cannot tell that case from another tokenizer, which would give a wrong score silently.
        size = f"; this one holds {len(tokenizer)} tokens" if hasattr(tokenizer, "__len__") else ""
        raise ModelError(
            f"The probe {meta.name!r} cannot score words split by this tokenizer: its vocabulary is not that of the "
            f"tokenizer the probe was trained with ({meta.model_id!r}; vocabulary hashes {found[:20]}... against "
            f"{recorded[:20]}...{size}). Either it is another tokenizer, whose "
            "tokens, and the activations the probe reads, are other ones, or it lacks special tokens that the probe's "
            "tokenizer had added at its end (a pad token added with tokenizer.add_special_tokens({'pad_token': ...}) "
            "before extract_activations): the recorded hash cannot tell the two apart, and a wrong score would pass "
            "silently. Pass the model's own tokenizer (AutoTokenizer.from_pretrained of the model the probe was "
            "trained on), with the special tokens added to it before extraction, in the same order, if any were.")


def check_probed_model(meta: Any, model: nn.Module, *, warned: bool = False) -> bool:
    """Refuse `model` when its weights are not those the probe of `meta` (a `ProbingMeta`) was trained on: the same
    layer widths (checked by ``ablation_curve``) do not make the same neurons. Reads a few KB of the weights
    (:func:`~hf_txray.probing.extraction.weights_fingerprint`). A probe saved before the fingerprint was recorded
    cannot be checked: warns, unless `warned`.

    Returns:
        `bool`: whether the warning has been given (pass it back as `warned`).

    Raises:
        ModelError: other weights (or another dtype).
    """
    if not getattr(meta, "weights_sample_hash", None):
        if not warned:
            warnings.warn(f"The probe {meta.name!r} was saved by an hf_txray that did not record the weights it was "
                          f"trained on: that this model is {meta.model_id!r} cannot be checked. Retrain the probe to "
                          "have it checked.", UserWarning, stacklevel=3)
        return True
    found = weights_fingerprint(model, meta.site, list(meta.layers), meta.module_pattern, meta.stack)
    difference = weights_difference(meta, found, meta.stack)
    if difference:
        raise _other_weights_error(meta, difference, found.weights_dtype)
    return warned


def warn_trained_sentences(result: Any, corpus: LabeledCorpus) -> None:
    """Warn when `corpus` holds sentences the probe of `result` was trained on (any: the accuracy on them is that of
    training words, so every one of them raises the score, by its share times the probe's train - test gap, however
    few). A result that does not record its training sentences is not checked."""
    trained = result.trained_on(corpus.texts)
    if trained is None or not trained.any():
        return
    warn_caller(
        f"{int(trained.sum())} of the {len(corpus)} sentences scored have the text of a sentence the probe "
        f"{result.meta.name!r} was trained on, where its accuracy reads too high (on its training words {result.train_accuracy:.3f}, on its "
        f"held-out words {result.accuracy:.3f}), and so would every value measured on them. Score the sentences it "
        "did not train on: ProbeMetric(result, result.held_out(corpus), tokenizer) (hf-txray ablate: --held-out), "
        "or another split.")


def _probe_ids(corpus: LabeledCorpus, label_names: Sequence[str]) -> np.ndarray:
    """The probe's class id of each label id of `corpus` (matched by name), -1 for a label the probe never saw.

    The probe predicts class ids ``0..len(label_names) - 1``, so a word mapped to -1 is always wrong, and no real
    class is ever credited with it (``Probe.evaluate`` counts per class and takes no such id). Warns once, naming the
    unseen labels that words carry and how many (:func:`~hf_txray.probing.probe.class_ids_by_name`).
    """
    counts = corpus.label_counts()
    return class_ids_by_name(corpus.label_names, label_names, [counts[name] for name in corpus.label_names],
                             f"of the corpus's {corpus.num_words} words", "score a corpus without them (words cut "
                             "off by max_length are not scored)")


class TaskMetric:
    """A metric for :func:`ablation_curve`: a sequence classifier's score, or a causal LM's perplexity, on a dataset,
    computed with hf_txray's offline ``evaluate`` metrics (the same code as pruning evaluation).

    Args:
        tokenizer: the model's tokenizer.
        dataset: a ``datasets.Dataset``, dict of columns or DataFrame (text + label columns), or texts for an LM.
        metric (`str`, *optional*): ``"accuracy"`` (classification default), ``"f1"``, ``"perplexity"`` (LM default).
        task (`str`, *optional*): ``"classification"`` or ``"causal-lm"`` (inferred from the model class otherwise).
        text_column, label_column (`str`, *optional*): the columns.
        batch_size (`int`, *optional*, defaults to 32): texts per forward pass.
        max_length (`int`, *optional*): texts are truncated to this many tokens; default: the model's limit (at
            most 512), as :func:`hf_txray.pruning.evaluate_pruning` does. Above the limit: `ConfigurationError`.
    """

    def __init__(self, tokenizer: Any, dataset: Any, metric: str | None = None, *, task: str | None = None,
                 text_column: str | None = None, label_column: str | None = None, batch_size: int = 32,
                 max_length: int | None = None):
        self.tokenizer, self.dataset, self.metric, self.task = tokenizer, dataset, metric, task
        self.text_column, self.label_column = text_column, label_column
        self.batch_size, self.max_length = batch_size, max_length
        self._prepared: tuple | None = None
        self.name = metric or "metric"

    def _prepare(self, model: nn.Module) -> tuple:
        from ..evaluation import (DEFAULT_METRICS, check_batches_ignore_padding, check_rows_have_tokens,
                                  encode_batches, infer_task, metric_modules, pad_id_of, text_and_labels)

        task = infer_task(model, self.task)
        texts, labels = text_and_labels(self.dataset, self.text_column, self.label_column, task, model)
        metric = self.metric or DEFAULT_METRICS[task][0]
        self.name = metric
        # as evaluate_pruning: truncated at the model's limit by default (longer texts would fail inside the model),
        # and f1/precision/recall averaged over classes (macro)
        max_length = self.max_length_for(model)
        batches = encode_batches(self.tokenizer, texts, self.batch_size, max_length, pad_id_of(model))
        check_rows_have_tokens(batches, task)
        check_batches_ignore_padding(model, batches, self.batch_size, max_length)
        return task, labels, metric, metric_modules([metric], task), batches

    def check_model(self, model: nn.Module) -> None:
        """Refuse, before any work, a model this metric cannot score: a task it cannot tell, labels that are not
        its classes (:func:`hf_txray.evaluation.class_ids`); :class:`LMLossMetric` checks for an LM head."""
        self.texts(model)

    def max_length_for(self, model: nn.Module) -> int:
        """The number of tokens each text is truncated to on `model`: take the neuron means of ``mode="mean"`` at it
        (:func:`~hf_txray.probing.neuron_means`'s `max_length`), so that the means are those of the tokens scored."""
        return resolve_max_length(model, self.tokenizer, self.max_length)

    def texts(self, model: nn.Module) -> list[str]:
        """The texts the metric runs on (e.g. to compute neuron means for ``mode="mean"``)."""
        from ..evaluation import infer_task, text_and_labels

        return list(text_and_labels(self.dataset, self.text_column, self.label_column, infer_task(model, self.task),
                                    model)[0])

    @on_own_default_device
    def __call__(self, model: nn.Module) -> float:
        from ..evaluation import compute_metrics, run_predictions

        if self._prepared is None:
            self._prepared = self._prepare(model)
        task, labels, metric, modules, batches = self._prepared
        row = compute_metrics(modules, run_predictions(model, batches, task), labels)
        value = row.get(metric, next(iter(row.values())))
        return float(value)


LM_LOSS_MAX_LENGTH = 128  # LMLossMetric's default window: the loss of a short context, cheap to recompute per curve point


class LMLossMetric(TaskMetric):
    """A metric for :func:`ablation_curve`: a causal LM's mean next-token loss (nats per token) on `texts`, each
    truncated to `max_length` tokens (default: 128, or the model's limit when that is shorter; a larger value
    than the limit raises `ConfigurationError`).

    For ``mode="mean"``, take the neuron means on the tokens the loss reads, at the same truncation:
    ``neuron_means(model, metric.texts(), tokenizer, max_length=metric.max_length_for(model))`` (``hf-txray ablate``
    does). Means over longer windows average positions the loss never reads (a neuron's mean depends on the position).

    Example:
        ```python
        >>> metric = LMLossMetric(tokenizer, texts)
        >>> means = neuron_means(model, metric.texts(), tokenizer, max_length=metric.max_length_for(model))
        >>> ablation_curve(model, ranking, metric, mode="mean", means=means)
        ```
    """

    def __init__(self, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32, max_length: int | None = None):
        refuse_single_string(texts)  # one text per character: a loss of one-character texts
        super().__init__(tokenizer, list(texts), "lm_loss", task="causal-lm", batch_size=batch_size,
                         max_length=max_length)

    def texts(self, model: nn.Module | None = None) -> list[str]:
        return list(self.dataset)

    def max_length_for(self, model: nn.Module) -> int:
        """128 tokens by default, or the model's limit when it is shorter; `max_length` when given (checked against
        the limit)."""
        if self.max_length is None:
            return min(LM_LOSS_MAX_LENGTH, resolve_max_length(model, self.tokenizer, None))
        return resolve_max_length(model, self.tokenizer, self.max_length)

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model that is not a causal LM with its LM head (a masked LM's logits do not predict the next
        token), before any work (``hf-txray ablate`` calls it before computing neuron means)."""
        check_metric_model("lm-loss", model)

    @on_own_default_device
    def __call__(self, model: nn.Module) -> float:
        from ..evaluation import check_rows_have_tokens, encode_batches, run_predictions

        if self._prepared is None:
            self.check_model(model)
            self._prepared = (encode_batches(self.tokenizer, self.dataset, self.batch_size,
                                             self.max_length_for(model)),)
            check_rows_have_tokens(self._prepared[0], "causal-lm")  # no token to predict: a NaN loss
        outputs = run_predictions(model, self._prepared[0], "causal-lm")
        tokens = sum(outputs["num_tokens"])
        return float(sum(outputs["nll"]) / tokens) if tokens else float("nan")


# ----- the curve --------------------------------------------------------------------------------------------------
@dataclass(eq=False)  # == from Artifact: value equality through arrays and frames
class AblationCurve(Artifact):
    """A metric as a function of the number of ablated neurons, for a ranking and for random neurons.

    Attributes:
        table (`pd.DataFrame`): ``strategy`` (``"baseline"``, ``"ranked"``, ``"random"``, ``"bottom"``), ``seed``
            (-1 unless random), ``num_ablated``, ``value``.
        name (`str`): the run's name (the key in the exported ``ablation`` config).
        metric (`str`): what ``value`` is.
        mode (`str`): ``"zero"`` or ``"mean"``.
        model_id (`str`): the model.
        ranking_source (`str`): where the ranking came from (e.g. ``"probe:upos"``).
        layers (`list[int]`): layers of the random pool.
        hf_txray_version (`str`, *optional*): the version that made the curve; defaults to this one.
        created_at (`str`, *optional*): ISO 8601 time of creation (UTC); defaults to now.

    Saved in the dataset layout: the ``ablation`` config (one row per point, the curve's fields in every row) and a
    dataset card.
    """

    artifact_type = "ablation_curve"
    format_version = 1
    card_is_section = True  # the probing section of a results repo's card
    card_names_repo = True  # its loading example names the repo a push goes to

    table: pd.DataFrame
    name: str
    metric: str
    mode: str
    model_id: str = ""
    ranking_source: str = ""
    layers: list[int] = field(default_factory=list)
    hf_txray_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        # a table built by hand without them was taken, and repr (or summary, plot, save) failed with a bare KeyError
        if not isinstance(self.table, pd.DataFrame):
            raise ConfigurationError(f"An AblationCurve's table is a DataFrame with the columns {CURVE_COLUMNS}, got "
                                     f"a {type(self.table).__name__}.")
        missing = [column for column in CURVE_COLUMNS if column not in self.table.columns]
        if missing:
            raise ConfigurationError(f"An AblationCurve's table needs the columns {CURVE_COLUMNS}; it lacks {missing} "
                                     f"(its columns: {list(self.table.columns)}).")

    def probed_model_id(self) -> str | None:
        return self.model_id

    @property
    def baseline(self) -> float:
        return float(self.table.loc[self.table["strategy"] == "baseline", "value"].iloc[0])

    def summary(self) -> pd.DataFrame:
        """Per strategy and k: mean and std of the value over seeds."""
        grouped = self.table.groupby(["strategy", "num_ablated"])["value"]
        return grouped.agg(["mean", "std", "count"]).reset_index()

    def __repr__(self) -> str:
        # one line, as ProbingResult's: the generated repr put the whole table (a row per point and seed, 25 for the
        # default counts) before the name, metric and mode
        t = self.table
        ablated = t[t["strategy"] != "baseline"]
        counts = sorted(int(k) for k in ablated["num_ablated"].unique())
        parts = [f"name={self.name!r}", f"metric={self.metric!r}", f"mode={self.mode!r}",
                 f"ranking={self.ranking_source!r}", f"counts={counts}",
                 f"random_seeds={ablated.loc[ablated['strategy'] == 'random', 'seed'].nunique()}"]
        baseline = t.loc[t["strategy"] == "baseline", "value"]
        if len(baseline):
            parts.append(f"baseline={float(baseline.iloc[0]):.3f}")
        if counts:  # the largest k, random as its mean over the seeds (summary())
            last = ablated[ablated["num_ablated"] == counts[-1]].groupby("strategy", sort=True)["value"].mean()
            parts.append(f"at {counts[-1]}: " + ", ".join(f"{s} {v:.3f}" for s, v in last.items()))
        return f"AblationCurve({', '.join(parts)})"

    def plot(self, ax: Any = None):
        """The curves against k: see :func:`hf_txray.plots.plot_ablation`."""
        from ..plots.probing import plot_ablation

        return plot_ablation(self, ax)

    @classmethod
    def check_replaceable(cls, folder: str | Path, *, what: str = "save_pretrained", cli_flag: str | None = None
                          ) -> None:
        """Refuse a `folder` into which other runs exported their rows
        (:func:`~hf_txray.probing.layout.refuse_exported_rows`)."""
        refuse_exported_rows(folder, ABLATION_CONFIG, what, cli_flag)

    def _save_pretrained(self, folder: Path, repo_id: str | None = None, revision: str | None = None) -> None:
        write_probing_folder(folder, None, ablation_table(self), repo_id, revision)

    @classmethod
    def _from_pretrained(cls, folder: Path) -> "AblationCurve":
        return cls(**read_curve(folder))


def _ranked_pairs(ranking: Any) -> tuple[list[tuple[int, int]], str]:
    from .pipeline import ProbingResult

    if isinstance(ranking, ProbingResult):
        if ranking.meta.site != "mlp":
            raise ConfigurationError(f"Ablation works on MLP neurons; this probe read the {ranking.meta.site!r} site.")
        if ranking.meta.stack == "decoder":  # its (layer, neuron) pairs would name the encoder's neurons
            raise ConfigurationError(
                "This probe ranked neurons of the decoder stack, but ablation acts on the MLP neurons of the encoder: "
                "it would ablate neurons the ranking never described. Rank them with a probe of stack='encoder' (a "
                "decoder probe can still be the metric: ProbeMetric).")
        frame, source = ranking.ranking, f"probe:{ranking.meta.name}"
    elif isinstance(ranking, pd.DataFrame):
        frame, source = ranking, "table"
    else:
        frame, source = pd.DataFrame(list(ranking), columns=["layer", "neuron"]), "list"
    pairs = table_pairs(frame)
    if not pairs:
        raise ConfigurationError("The ranking is empty.")
    _refuse_repeated(pairs)
    return pairs, source


def _refuse_repeated(pairs: list[tuple[int, int]]) -> None:
    """Refuse a ranking naming one neuron twice: its top k would ablate fewer than k neurons, beside k random ones
    (helper 152)."""
    seen: set[tuple[int, int]] = set()
    repeated = next((pair for pair in pairs if pair in seen or seen.add(pair)), None)
    if repeated is not None:
        raise ConfigurationError(
            f"The ranking names neuron {repeated} (layer, neuron) more than once, so its first k entries would ablate "
            "fewer than k neurons, against k random ones. Rank each neuron once (e.g. drop_duplicates on a table).")


def ablation_counts(counts: Sequence[int], num_ranked: int | None) -> list[int]:
    """The numbers of neurons to ablate, sorted and distinct, clipped to the `num_ranked` neurons of the ranking with
    a warning (a count past them would ablate the same neurons as the last).

    Raises:
        ConfigurationError: no count, a count below 1 (the baseline, 0 ablated, is always measured), or one given
            twice.
    """
    counts = list(counts.tolist() if isinstance(counts, np.ndarray) else counts)
    if not all(is_int(k) for k in counts):  # helper 182: int() made 2.7 two neurons and True one, no error
        raise ConfigurationError(f"counts must be whole numbers of neurons (ints), got {counts}.")
    counts = [int(k) for k in counts]
    if not counts or min(counts) < 1:
        raise ConfigurationError(f"counts must be positive numbers of neurons, got {counts}: the baseline (none "
                                 "ablated) is always measured; drop the counts below 1.")
    refuse_repeats("counts", "count", counts)  # [1, 1]: one point of the curve, read once without a word
    if num_ranked is None:
        return sorted(set(counts))
    above = sorted({k for k in counts if k > num_ranked})
    if above:
        warnings.warn(f"counts {above} exceed the {num_ranked} neurons of the ranking: clipped to {num_ranked} (every "
                      "ranked neuron ablated).", UserWarning, stacklevel=3)
    return sorted({min(k, num_ranked) for k in counts})


def ablation_curve(
    model: nn.Module,
    ranking: Any,
    metric: Callable[[nn.Module], float],
    *,
    counts: Sequence[int] = (1, 2, 5, 10, 20, 50),
    mode: str = "zero",
    means: Any = None,
    seeds: Sequence[int] = (0, 1, 2),
    bottom: bool = False,
    layers: Sequence[int] | None = None,
    name: str = "ablation",
    metric_name: str | None = None,
) -> AblationCurve:
    """Ablate the top-k neurons of `ranking` and k random ones, for each k in `counts`, and record `metric`.

    Random neurons are drawn from every neuron of the ranking's layers (or `layers`), one nested draw per seed
    (the k+1 set contains the k set), so each random curve is as smooth as the ranked one. Ablating a ranking's top
    neurons against random ones is the evaluation of NeuroX (Dalvi et al., 2019, "What Is One Grain of Sand in the
    Desert? Analyzing Individual Neurons in Deep NLP Models", AAAI).

    Args:
        model (`nn.Module`): the model (left unchanged).
        ranking: a `ProbingResult` (its global ranking), a DataFrame with ``layer``/``neuron`` in rank order, or a
            list of ``(layer, neuron)`` pairs.
        metric (`callable(model) -> float`): :class:`ProbeMetric`, :class:`TaskMetric`, :class:`LMLossMetric`, or
            your own.
        counts (`Sequence[int]`, *optional*): numbers of neurons to ablate, each at least 1 (counts above the
            ranking's length are clipped to it, with a warning; counts above the random pool's neurons are
            refused).
        mode (`str`, *optional*, defaults to `"zero"`): ``"zero"`` or ``"mean"`` (needs `means`, see :func:`ablate`).
        means (*optional*): per-neuron means for ``mode="mean"`` (refused with ``mode="zero"``).
        seeds (`Sequence[int]`, *optional*, defaults to (0, 1, 2)): one random curve per seed.
        bottom (`bool`, *optional*, defaults to `False`): also ablate the k lowest-ranked neurons.
        layers (`Sequence[int]`, `int` or `str`, *optional*): the random pool's layers, as ``analyze`` takes them
            (default: the ranking's).
        name (`str`, *optional*, defaults to `"ablation"`): the run's name.
        metric_name (`str`, *optional*): what the metric is (default: the metric's ``name`` attribute).

    Returns:
        `AblationCurve`: its ``table`` holds the metric's value (in the metric's units) per strategy, seed and
        number of ablated neurons, with the unablated ``"baseline"``.

    Raises:
        ConfigurationError: `metric` not callable, `seeds` not ints, `counts` not ints >= 1 or above the random
            pool's neurons, an unknown `mode` or `means` that do not fit it, `layers` that are not MLP layers of the
            model, or a ranking read from layers of another width.
        ModelError: the model cannot be edited at those layers (no MLP site), or is not the model the probe was
            trained on (other weights).

    Example:
        ```python
        >>> curve = ablation_curve(model, result, ProbeMetric(result, test_corpus, tokenizer), counts=[1, 5, 20])
        >>> curve.summary()
        >>> curve.plot().savefig("ablation.png")
        ```
    """
    check_mode(mode, means)
    if not callable(metric):
        raise ConfigurationError("metric must be a callable(model) -> float.")
    ablation_counts(counts, None)  # before the ranking and the model are read
    seeds = seeds.tolist() if isinstance(seeds, np.ndarray) else seeds
    if not isinstance(seeds, (list, tuple, range)) or not all(is_int(s) for s in seeds):
        raise ConfigurationError(f"seeds must be a sequence of ints (one random curve each), e.g. [0, 1, 2]; got "
                                 f"{seeds!r}. For one random curve pass [seed].")
    seeds = [int(s) for s in seeds]
    refuse_repeats("seeds", "seed", seeds)  # [0, 0]: one random curve read as two ("std 0.0, count 2")
    bottom = check_switch("bottom", bottom)  # "no" ablated the bottom neurons too (a truthy string)
    # helper 152: the baseline and every point were measured on top of a mask left on the model
    refuse_active_masks(model, "ablation_curve", "would measure its baseline and every point with them on")
    pairs, source = _ranked_pairs(ranking)
    sites = mlp_sites(model)
    check_ranked_modules(ranking, model, sites)  # a table of a residual or decoder probe (a result is checked above)
    meta = getattr(ranking, "meta", None)  # a ProbingResult
    if getattr(meta, "module_pattern", None):
        check_pattern_sites(model, meta.site, meta.module_pattern, meta.stack, meta.layers, sites, "probe read")
    # a negative layer of the ranking counts from the model's last block, as ablate() and layers= count it
    blocks = {layer: next(iter(sites.chosen({layer: []}, "Ablating neurons"))) for layer in {x for x, _ in pairs}}
    pairs = [(blocks[layer], neuron) for layer, neuron in pairs]
    _refuse_repeated(pairs)  # (-1, 3) and (11, 3) of a 12-block model are one neuron
    if layers is None:
        pool_layers = sorted({layer for layer, _ in pairs})
    else:  # as analyze takes them ("0-3", "all", one int, a list; negative from the model's last block, as prune)
        resolved = sites.resolve_layers(layers)
        pool_layers = sorted(sites) if resolved is None else resolved
    sites.require(pool_layers, "Ablation")
    missing = [layer for layer in pool_layers if layer not in sites]
    if missing:
        raise ConfigurationError(f"Layers {missing} are not MLP layers of the model ({sorted(sites)}).")
    other = {layer: sites[layer].width for layer in pool_layers
             if getattr(meta, "width", None) and meta.site == "mlp" and sites[layer].width != meta.width}
    if other:  # the ranking's (layer, neuron) pairs would name other neurons
        raise ConfigurationError(
            f"The probe read {meta.width} neurons per layer and this model's layers have {other}: it is another "
            "model (or this one after prune(mode='remove')). Ablate the model the probe was trained on.")
    check_scored_model(metric, model)
    if meta is not None and getattr(metric, "result", None) is not ranking:
        check_probed_model(meta, model)  # its neurons are the probed model's (a table ranks any model's)
    pool = [(layer, i) for layer in pool_layers for i in range(sites[layer].width)]
    counts = ablation_counts(counts, len(pairs))
    if counts[-1] > len(pool):  # the random curve's point k ablated the whole pool, fewer than k, recorded as k
        raise ConfigurationError(
            f"counts {[k for k in counts if k > len(pool)]} exceed the {len(pool)} neurons of the random pool "
            f"(layers {pool_layers}): those random points could not ablate k neurons, against k ranked ones. Pass "
            "layers= with more neurons (default: the ranking's layers), or counts of at most "
            f"{len(pool)}.")
    ranked = sites.chosen(_as_spec(pairs), "Ablating neurons")  # its layers and indices, before any pass
    if mode == "mean":  # the means every point may fill, checked before the baseline pass (helper 151)
        _means_for(means, {layer: sorted({*ranked.get(layer, []), *(range(sites[layer].width)
                                                                    if layer in pool_layers else [])})
                           for layer in {*ranked, *pool_layers}}, model, sites.widths)

    def run(chosen: list[tuple[int, int]]) -> float:
        with ablate(model, chosen, mode=mode, means=means):
            return float(metric(model))

    rows = [{"strategy": "baseline", "seed": -1, "num_ablated": 0, "value": float(metric(model))}]
    for k in counts:
        rows.append({"strategy": "ranked", "seed": -1, "num_ablated": k, "value": run(pairs[:k])})
        if bottom:
            rows.append({"strategy": "bottom", "seed": -1, "num_ablated": k, "value": run(pairs[-k:])})
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(pool))
        for k in counts:
            chosen = [pool[i] for i in order[:min(k, len(pool))]]
            rows.append({"strategy": "random", "seed": int(seed), "num_ablated": k, "value": run(chosen)})
    return AblationCurve(pd.DataFrame(rows), name, metric_name or getattr(metric, "name", "metric"), mode,
                         _curve_model_id(model, meta), source, pool_layers)


def _curve_model_id(model: nn.Module, meta: Any) -> str:
    """The model a curve names: the probe's ``model_id`` when its weights fingerprint was checked against `model`
    (the same weights, whatever the folder they were loaded from), else the model's ``name_or_path``, the embedded
    MiniLM's folder by its Hub id (as ``analyze`` and ``extract_activations`` name it). Named by the folder, the
    curve of a probe of the embedded MiniLM was refused beside that probe's own profiles by ``save_probing``."""
    from ..corpora import recorded_model_id

    if meta is not None and getattr(meta, "weights_sample_hash", None) and getattr(meta, "model_id", None):
        return str(meta.model_id)
    model_id = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    return recorded_model_id(model_id)


@dataclass
class MetricOptions:
    """What a metric builder of the registry may use (:func:`metric_from_name` fills it).

    Args:
        probe (`ProbingResult`, *optional*): the probe, for ``"probe"``.
        max_sentences (`int`, *optional*): use only the first rows of the data.
        text_column, label_column, split (`str`, *optional*): how to read the data.
        batch_size (`int`, *optional*, defaults to 32), max_length (`int`, *optional*): batching.
        held_out (`bool`, *optional*, defaults to `False`): for ``"probe"``, score only the data's sentences the
            probe was not trained on (``probe.held_out``).
    """

    probe: Any = None
    max_sentences: int | None = None
    text_column: str | None = None
    label_column: str | None = None
    split: str | None = None
    batch_size: int = 32
    max_length: int | None = None
    held_out: bool = False


@runtime_checkable
class TruncatingMetric(Protocol):
    """A metric that says the truncation it reads its texts at (:class:`ProbeMetric`, :class:`TaskMetric`,
    :class:`LMLossMetric`, and any registered metric that defines the method)."""

    def max_length_for(self, model: nn.Module) -> int | None: ...


def means_max_length(metric: Callable[[nn.Module], float], model: nn.Module, default: int | None) -> int | None:
    """The truncation to read ``mode="mean"``'s neuron means at: the metric's own, so that a neuron's replacement is
    its mean over the tokens the metric scores (lm-loss reads 128 tokens where the model's limit is 512); `default`
    (``--max-length``) for a metric that does not say (:class:`TruncatingMetric`)."""
    return metric.max_length_for(model) if isinstance(metric, TruncatingMetric) else default


def check_scored_model(metric: Callable[[nn.Module], float], model: nn.Module) -> None:
    """Refuse, before any pass, a model the metric cannot score (a probe's metric given a model of other weights), by
    the metric's own ``check_model(model)``: a registered metric without one is not checked."""
    if callable(getattr(metric, "check_model", None)):
        metric.check_model(model)


MetricBuilder = Callable[[str, Any, Any, MetricOptions], Callable[[nn.Module], float]]
_METRICS: dict[str, tuple[MetricBuilder, str]] = {}


def register_ablation_metric(name: str, build: MetricBuilder, description: str = "", *,
                             overwrite: bool = False) -> None:
    """Register a metric that :func:`metric_from_name` (and ``hf-txray ablate --metric NAME``) builds by name.

    Args:
        name (`str`): the metric's name.
        build (`callable(name, tokenizer, data, options) -> metric`): returns a ``metric(model) -> float`` with a
            ``name`` attribute and a ``texts(model)`` method (the texts it runs on, for ``mode="mean"``), and
            optionally ``check_model(model)`` (raises for a model it cannot score, before any pass) and
            ``max_length_for(model)`` (the truncation it reads its texts at, where the means are read too:
            :class:`TruncatingMetric`; without it, ``--max-length``).
        description (`str`, *optional*): one line for help texts.
        overwrite (`bool`, *optional*, defaults to `False`): replace a metric registered under `name`.

    Raises:
        ConfigurationError: `name` is taken by another definition and `overwrite` is False (the same build
            function's code and description again, a notebook cell run twice, is taken), or `build` is not callable.
    """
    if not callable(build):
        raise ConfigurationError(f"build must be a callable(name, tokenizer, data, options), got {build!r}.")
    registered = _METRICS.get(name)
    # the same definition again (a notebook cell run twice: a new function of the same code) is taken (helper 428)
    if registered is not None and not overwrite and (
            registered[1] != description or not same_function(registered[0], build)):
        raise ConfigurationError(f"An ablation metric {name!r} is already registered (with another build function or "
                                 "description): pass overwrite=True to replace it.")
    _METRICS[name] = (build, description)


def ablation_metrics() -> dict[str, str]:
    """The registered ablation metrics: name -> description."""
    return {name: description for name, (_, description) in _METRICS.items()}


def _rows(data: Any, options: MetricOptions) -> Any:
    """A dataset given by id or path loaded (one split), cut to `max_sentences` rows."""
    if isinstance(data, (str, Path)):
        import datasets

        from ..loading import load_named_dataset, pick_split

        data = load_named_dataset(str(data), options.split)
        if isinstance(data, datasets.DatasetDict):
            data = pick_split(data, options.split)
    if options.max_sentences is not None and hasattr(data, "select"):
        data = data.select(range(min(options.max_sentences, len(data))))
    return data


def _probe_metric(name: str, tokenizer: Any, data: Any, options: MetricOptions) -> ProbeMetric:
    from .data import load_labeled

    if options.probe is None:
        raise ConfigurationError("The 'probe' metric needs a probing result (probe=...).")
    corpus = load_labeled(data, options.probe.meta.property, max_sentences=options.max_sentences,
                          text_column=options.text_column, tokenizer=tokenizer)
    if options.held_out:  # before the metric is built, which warns about the training sentences it holds
        corpus = options.probe.held_out(corpus)
    return ProbeMetric(options.probe, corpus, tokenizer, batch_size=options.batch_size, max_length=options.max_length)


def _lm_loss_metric(name: str, tokenizer: Any, data: Any, options: MetricOptions) -> LMLossMetric:
    from ..evaluation import text_and_labels

    data = _rows(data, options)
    texts = data if isinstance(data, (list, tuple)) else text_and_labels(data, options.text_column, None,
                                                                         "causal-lm")[0]
    return LMLossMetric(tokenizer, [t for t in texts if t.strip()], batch_size=options.batch_size,
                        max_length=options.max_length)


def _task_metric(name: str, tokenizer: Any, data: Any, options: MetricOptions) -> TaskMetric:
    return TaskMetric(tokenizer, _rows(data, options), name, text_column=options.text_column,
                      label_column=options.label_column, batch_size=options.batch_size,
                      max_length=options.max_length)


register_ablation_metric("probe", _probe_metric, "the accuracy of a probe on labelled data")
register_ablation_metric("lm-loss", _lm_loss_metric, "a causal LM's mean next-token loss (nats per token)")
for _name in OFFLINE_METRICS:
    register_ablation_metric(_name, _task_metric, f"the offline evaluate metric {_name!r} of the model's task")


def check_metric_name(name: str) -> None:
    """Refuse, before any data or model is read, a metric name that is neither registered
    (:func:`ablation_metrics`) nor an ``evaluate`` metric that loads (a local script path, or a Hub id online).

    Raises:
        ConfigurationError: naming the registered metrics.
    """
    if name in _METRICS:
        return
    from ..evaluation import load_metric

    try:
        load_metric(name)
    except ConfigurationError as err:
        raise ConfigurationError(f"Unknown ablation metric {name!r}: choose one of {', '.join(_METRICS)}, or give a "
                                 f"local evaluate metric script ({err})") from err


def check_metric_model(name: str, model: nn.Module) -> None:
    """Refuse, before the metric's data is read, a model that the metric `name` cannot score: ``"lm-loss"`` needs a
    causal LM with its LM head (a masked LM's logits do not predict the next token). ``hf-txray ablate`` calls it
    once the model is loaded, so that a BERT given ``--metric lm-loss`` and a ``.conllu`` file is told about the
    metric, not about the file (helper 275). Other metrics check their model when built (``metric.check_model``).

    Raises:
        ConfigurationError: naming the metric, the model's class and the metrics that fit it.
    """
    from ..evaluation import model_task

    if name == "lm-loss" and model_task(model) != "causal-lm":
        raise ConfigurationError(
            f"lm-loss is a causal LM's next-token loss, and {type(model).__name__} is not a causal LM with its "
            "LM head (a *ForCausalLM or *LMHeadModel class): choose --metric probe, or a task metric of its head.")


def metric_from_name(name: str, tokenizer: Any, data: Any, *, probe: Any = None, max_sentences: int | None = None,
                     text_column: str | None = None, label_column: str | None = None, split: str | None = None,
                     batch_size: int = 32, max_length: int | None = None,
                     held_out: bool = False) -> Callable[[nn.Module], float]:
    """Build a metric for :func:`ablation_curve` from a name (used by ``hf-txray ablate``).

    Args:
        name (`str`): a registered metric (:func:`ablation_metrics`): ``"probe"`` (the accuracy of `probe` on
            labelled `data`), ``"lm-loss"`` (a causal LM's next-token loss on the texts of `data`), an offline
            ``evaluate`` metric (``"accuracy"``, ``"f1"``, ``"precision"``, ``"recall"``, ``"perplexity"``) of the
            model's task on `data`, or one added with :func:`register_ablation_metric`. Any other name is loaded
            with ``evaluate.load`` as a task metric (a local metric script path).
        tokenizer: the model's tokenizer.
        data: for ``"probe"``, anything :func:`~hf_txray.probing.load_labeled` reads; otherwise a dataset (id, path,
            ``datasets.Dataset``, dict) with text (and label) columns, or a list of texts for ``"lm-loss"``.
        probe (`ProbingResult`, *optional*): needed for ``"probe"``.
        max_sentences (`int`, *optional*): use only the first rows.
        held_out (`bool`, *optional*, defaults to `False`): for ``"probe"``, score only the sentences of `data` the
            probe was not trained on (``probe.held_out``; refused for a probe that does not record them).

    Returns:
        A callable ``metric(model) -> float`` with ``name`` and ``texts(model)``.
    """
    check_metric_name(name)
    options = MetricOptions(probe, max_sentences, text_column, label_column, split, batch_size, max_length, held_out)
    build = _METRICS[name][0] if name in _METRICS else _task_metric
    if held_out and build is not _probe_metric:
        raise ConfigurationError(f"held_out (--held-out) keeps the sentences a probe was not trained on, for the "
                                 f"'probe' metric; the {name!r} metric does not read the probe's sentences. Leave it "
                                 "out, or choose --metric probe.")
    return build(name, tokenizer, data, options)
