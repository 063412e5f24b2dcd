"""Evaluating pruned models with the `evaluate` library: the unpruned model and every plan, same data, same metrics.

`evaluate.load("accuracy")` downloads the metric's code from the Hub at run time, which fails offline. The metrics
used here are `evaluate` metric scripts shipped inside hf_txray (``hf_txray/metrics_offline/<name>/<name>.py``) and
loaded with ``evaluate.load(<local path>)``, which imports the local script without network access; any other name
or path is passed to ``evaluate.load`` unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .counts import refuse_repeats
from .errors import ConfigurationError, DatasetError, ModelError
from .forward import on_own_default_device, own_forward, own_precision
from .lengths import resolve_max_length
from .metrics_offline import OFFLINE_METRICS, metric_path
from .modes import enter_eval
from .pruning import PruningPlan, apply_plan, is_random_strategy, masked, plan_pruning
from .pruning.apply import check_applicable
from .pruning.strategies import check_feature_type_used, ranks_by_feature_type
from .pruning.masks import refuse_active_masks
from .sites import unwrap_model
from .tables import amount_kind, amount_label, amount_labels

TASKS = ("classification", "causal-lm")
# The logits each task reads: their number of dimensions, and in words.
TASK_LOGITS = {"classification": (2, "logits per example (batch, classes)"),
               "causal-lm": (3, "logits per token (batch, tokens, vocabulary)")}
DEFAULT_METRICS = {"classification": ("accuracy", "f1"), "causal-lm": ("perplexity",)}
AVERAGED = ("f1", "precision", "recall")
BASELINE = "unpruned"


def load_metric(metric: Any, **kwargs: Any):
    """An `evaluate` module: the offline copy for ``accuracy``/``f1``/``precision``/``recall``/``perplexity``,
    else whatever ``evaluate.load(metric)`` loads (a local script path, or a Hub id when online).

    Args:
        metric (`str` or `evaluate.EvaluationModule`): a name, a path, or an already loaded module (returned as is).
        **kwargs: passed to ``evaluate.load`` (``keep_in_memory`` defaults to True: no cache files are written).

    Returns:
        `evaluate.EvaluationModule`.

    Example:
        ```python
        >>> accuracy = load_metric("accuracy")   # works offline, same API as evaluate.load("accuracy")
        >>> accuracy.compute(predictions=[0, 1, 1], references=[0, 1, 0])
        {'accuracy': 0.666...}
        ```
    """
    import evaluate

    if isinstance(metric, evaluate.EvaluationModule):
        return metric
    if not isinstance(metric, str):
        raise ConfigurationError(f"metric must be a name, a path or an evaluate module, got {type(metric).__name__}.")
    kwargs.setdefault("keep_in_memory", True)
    path = metric_path(metric) if metric in OFFLINE_METRICS else metric
    try:
        return evaluate.load(path, **kwargs)
    except (FileNotFoundError, ConnectionError, OSError) as err:
        raise ConfigurationError(
            f"Could not load the evaluate metric {metric!r}: {str(err).splitlines()[0][:200] if str(err) else err!r}. "
            f"Offline, use one of hf_txray's own metrics ({', '.join(OFFLINE_METRICS)}) or a local metric script path."
        ) from err


def model_task(model: Any) -> str | None:
    """The task a model's class names: ``"classification"`` (``*ForSequenceClassification``), ``"causal-lm"``
    (``*ForCausalLM``, ``*LMHeadModel``), or None; read through a ``torch.compile`` or data-parallel wrapper."""
    name = type(unwrap_model(model)).__name__
    if name.endswith("ForSequenceClassification"):
        return "classification"
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return "causal-lm"
    return None


def infer_task(model: Any, task: str | None) -> str:
    """`task`, checked against the task the model's class names (:func:`model_task`), else that task.

    Raises:
        ConfigurationError: an unknown task, one the model's head does not give (``task="causal-lm"`` for a
            ``*ForSequenceClassification``: its logits per example failed in the loss as an IndexError), or none
            given for a model whose class names none.
    """
    found = model_task(model)
    if task is not None:
        if task not in TASKS:
            raise ConfigurationError(f"Unknown task {task!r}: choose one of {', '.join(TASKS)}.")
        if found is not None and found != task:
            raise ConfigurationError(
                f"task={task!r} does not fit a {type(unwrap_model(model)).__name__}, whose head gives "
                f"{TASK_LOGITS[found][1]}, the {found} task's: leave the task unset (it is read from the model's "
                f"class; CLI: drop --task), or give a model with the head of the {task} task.")
        return task
    if found is not None:
        return found
    name = type(model).__name__
    raise ConfigurationError(
        f"Cannot tell the task of a {name}: pass task='classification' (a model with .logits per example) or "
        "task='causal-lm' (a model with .logits per token)."
    )


def text_and_labels(dataset: Any, text_column: str | None, label_column: str | None,
             task: str, model: Any = None) -> tuple[list[str], list[int] | None]:
    """The texts, and for a classification the class id of each text (:func:`class_ids`, checked against `model`'s
    classes when it is given)."""
    import datasets

    from .streaming import TEXT_COLUMN_CANDIDATES

    # a list, or one column of texts: a datasets Column (dataset["text"] in datasets 5), a Series, an array
    if isinstance(dataset, (Sequence, pd.Series, np.ndarray)) and not isinstance(dataset, (str, bytes)):
        if task == "classification":
            raise DatasetError("Classification needs labels: pass a Dataset (or dict) with text and label columns.")
        dataset = {"text": list(dataset)}
    if isinstance(dataset, pd.DataFrame):
        dataset = {c: dataset[c].tolist() for c in dataset.columns}
    if isinstance(dataset, datasets.Dataset):
        columns = list(dataset.column_names)
        get = lambda c: dataset[c]  # noqa: E731
    elif isinstance(dataset, Mapping):
        columns = list(dataset)
        get = lambda c: list(dataset[c])  # noqa: E731
    else:
        raise DatasetError(
            f"dataset must be a datasets.Dataset, a dict of columns, a DataFrame or (for LMs) a list of strings, got "
            f"{type(dataset).__name__}."
        )
    if text_column is None:
        text_column = next((c for c in TEXT_COLUMN_CANDIDATES if c in columns), None)
        if text_column is None:
            raise DatasetError(f"No text column found among {columns}: pass text_column=....")
    elif text_column not in columns:
        raise DatasetError(f"Text column {text_column!r} not found; the dataset's columns are: {columns}.")
    texts = get(text_column)
    if not texts:
        raise DatasetError("The evaluation dataset is empty.")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise DatasetError(f"Row {bad} of {text_column!r} is not a string: every text must be a str.")
    labels = None
    if task == "classification":
        label_column = label_column or "label"
        if label_column not in columns:
            raise DatasetError(f"Label column {label_column!r} not found; the dataset's columns are: {columns}.")
        labels = class_ids(get(label_column), label_column, model)
    return list(texts), labels


def _class_names(config: Any) -> dict[str, int]:
    """A classifier's class names (``config.label2id``), as strings."""
    label2id = getattr(config, "label2id", None) or {}
    return {str(name): int(index) for name, index in label2id.items()}


def _class_id(value: Any, names: Mapping[str, int]) -> int | None:
    """One label as a class id: an int, a whole float, an integer string, or one of `names`; None if none of
    these (a missing value, a fraction, an unknown name)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # NaN (a missing CSV cell) is not
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        return _class_id(value.item(), names)
    if isinstance(value, str):
        text = value.strip()
        if text in names:
            return names[text]
        try:
            return int(text)
        except ValueError:
            return None
    return None


def _as_integer(value: Any) -> int | None:
    """`value` as an integer when it is one (an int, a whole float, an integer written as text), else None."""
    return _class_id(value, {})


def _integer_reading(values: Sequence[Any], column: str, names: Mapping[str, int], num_labels: Any) -> str | None:
    """How integer labels read when the class names are integers other than their ids (star ratings: class 0 named
    "1"): an integer label is then two classes, its id and the class of that name (a CSV read by ``datasets`` gives
    ints, the same rows as JSON strings), and either way every label could move by a class without an error. All
    labels integers: ``"ids"`` or ``"names"``, the one reading that fits every label; None when the names are not
    such integers or some label is not an integer (each is read as :func:`_class_id` reads it).

    Raises:
        DatasetError: both readings fit every label and they differ.
    """
    renamed = {name: index for name, index in names.items() if _as_integer(name) not in (None, index)}
    integers = [_as_integer(v) for v in values]
    if not renamed or not isinstance(num_labels, int) or any(i is None for i in integers):
        return None
    as_ids = all(0 <= i < num_labels for i in integers)
    as_names = all(str(i) in names for i in integers)
    differ = [r for r, i in enumerate(integers) if names.get(str(i)) != i]
    if as_ids and as_names and differ:
        row = differ[0]
        raise DatasetError(
            f"The labels of {column!r} are integers, and the model's class names are integers other than their ids "
            f"({dict(sorted(renamed.items(), key=lambda item: item[1]))}): row {row}'s {values[row]!r} is class id "
            f"{integers[row]} and also the class named {str(integers[row])!r} (id {names[str(integers[row])]}), and "
            "both readings fit every label. Give the classes names that are not integers (config.id2label and "
            "label2id, e.g. 'stars=1'), and write the labels as those names or as ids.")
    return "names" if as_names and not as_ids else "ids" if as_ids else None


def _bool_ids(values: Sequence[Any], column: str, names: Mapping[str, int], num_labels: Any) -> list[int]:
    """True/False labels as class ids 1/0, as probing reads them (``label_names[0]`` names False, ``[1]`` True):
    only for two classes, every label a bool, and class names "True"/"False", if the model has them, of those ids.

    Raises:
        DatasetError: bools beside other labels, a model of other than two classes, or class names "True"/"False"
            of other ids."""
    other = next((row for row, value in enumerate(values) if not isinstance(value, (bool, np.bool_))), None)
    if other is not None:
        raise DatasetError(
            f"The label column {column!r} mixes True/False with other labels (row {other}: {values[other]!r}; None or "
            "NaN: a missing label): write every label as a class id, a class name, or a bool, and drop unlabelled "
            "rows (e.g. with Dataset.filter).")
    if isinstance(num_labels, int) and num_labels != 2:
        raise DatasetError(
            f"The labels of {column!r} are True/False, class ids 0 (False) and 1 (True), and the model has "
            f"num_labels={num_labels}: bools fit a classifier of two classes only. Write the labels as class ids or "
            "class names.")
    swapped = {name: names[name] for name in ("False", "True") if name in names and names[name] != (name == "True")}
    if swapped:
        raise DatasetError(
            f"The labels of {column!r} are True/False, class ids 0 (False) and 1 (True), but the model names its "
            f"classes {swapped} (config.label2id): each bool would be two classes. Write the labels as class names "
            "(strings) or as class ids.")
    return [int(bool(value)) for value in values]


def class_ids(values: Sequence[Any], column: str, model: Any = None) -> list[int]:
    """The class id of each label of a classification dataset.

    A label is a class id (an int, a whole float, an integer written as text) or one of the model's class names
    (``config.label2id``, e.g. ``"business"``). Bools are ids 0 (False) and 1 (True) of a two-class model, as probing
    reads them with two label names (every label then a bool). With `model`, every id must be one of its
    ``config.num_labels`` classes: a label it cannot output would be counted wrong for every model, pruned or not.

    Raises:
        DatasetError: a missing label (an empty CSV cell), a name that is not a class of the model, a fraction, or a
            class id the model does not have; naming the first such row and value, before any forward pass.
    """
    config = getattr(model, "config", None)
    names = _class_names(config)
    if any(isinstance(value, (bool, np.bool_)) for value in values):
        return _bool_ids(values, column, names, getattr(config, "num_labels", None))
    reading = _integer_reading(values, column, names, getattr(config, "num_labels", None))
    known = f"its class names are {sorted(names, key=names.get)}" if names else "it has no class names"
    ids = []
    for row, value in enumerate(values):
        index = (names[str(_as_integer(value))] if reading == "names" else _as_integer(value) if reading == "ids"
                 else _class_id(value, names))
        if index is None and (value is None or str(value).strip() in ("", "nan", "None", "<NA>")):
            raise DatasetError(
                f"Row {row} of the label column {column!r} has no label ({value!r}, an empty cell): every row of a "
                "classification needs one. Drop unlabelled rows (e.g. with Dataset.filter) or label them.")
        if index is None:
            raise DatasetError(
                f"Row {row} of the label column {column!r} holds {value!r}, which is neither a class id nor a class "
                f"name of the model ({known}, config.label2id). Write labels as class ids 0..n-1 or as those names "
                "(a model's names are set by config.id2label and label2id).")
        ids.append(index)
    num_labels = getattr(config, "num_labels", None)
    if isinstance(num_labels, int):
        outside = [(row, index) for row, index in enumerate(ids) if not 0 <= index < num_labels]
        if outside:
            row, index = outside[0]
            raise DatasetError(
                f"{len(outside)} of the {len(ids)} labels of {column!r} are class ids the model does not have (row "
                f"{row}: {index}; {type(model).__name__} has num_labels={num_labels}, classes 0..{num_labels - 1}): it "
                "can never predict them, so every metric would count them wrong. Evaluate a model with those "
                "classes, or keep only rows of its classes (e.g. with Dataset.filter).")
    return ids


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def pad_id_of(model: Any) -> int:
    """The id to pad `model`'s batches with: its ``config.pad_token_id`` when set, else 0 (masked out either way).

    A decoder's classifier (``GPT2ForSequenceClassification``, Llama's...) pools each row at its last token, found as
    the last id that is not ``config.pad_token_id`` whatever the attention mask says: padding of another id was
    classified (31% of a GPT-2 classifier's predictions changed with pad id 599)."""
    config = getattr(model, "config", None)
    pad = getattr(config, "pad_token_id", None)
    if pad is None and hasattr(config, "get_text_config"):  # a composite config (Gemma 3) keeps it with the text
        pad = getattr(config.get_text_config(), "pad_token_id", None)
    return pad if isinstance(pad, int) and pad >= 0 else 0


def check_batches_ignore_padding(model: Any, batches: Sequence[dict[str, torch.Tensor]], batch_size: int,
                                 max_length: int | None) -> None:
    """Refuse, before any work, padded batches for a model whose outputs move with its padding (FNet, ConvBERT:
    :func:`hf_txray.padding.check_outputs_ignore_padding`); one text per batch is never padded."""
    from .lengths import model_length_limit
    from .padding import check_outputs_ignore_padding

    if batch_size > 1 and batches:
        limit = max_length or model_length_limit(model).tokens or int(batches[0]["input_ids"].shape[1]) * 2
        # the probe runs a row's real tokens: the first row that has some (an empty first text failed inside it)
        first = next(({name: tensor[i:i + 1] for name, tensor in batch.items()} for batch in batches
                      for i in range(len(batch["input_ids"])) if batch["attention_mask"][i].any()), None)
        if first is not None:
            check_outputs_ignore_padding(model, first, _device_of(model), limit, remedy="batch_size=1")


def check_rows_have_tokens(batches: Sequence[dict[str, torch.Tensor]], task: str) -> None:
    """Refuse, before any pass, a classification text that encodes to no token (an empty text with a tokenizer that
    adds no special token, as GPT-2's): the model would classify a row of padding alone, and the metric count that
    guess (helper 182); and a causal LM corpus without a token to predict (every text shorter than two tokens), whose
    perplexity would be NaN. An LM's empty texts are kept: they add no token to the perplexity."""
    if task == "classification":
        row = 0
        for batch in batches:
            lengths = batch["attention_mask"].sum(-1).tolist()
            empty = next((i for i, length in enumerate(lengths) if length == 0), None)
            if empty is not None:
                raise DatasetError(
                    f"Text {row + empty} of the evaluation data encodes to no token (an empty text, and the tokenizer "
                    "adds no special token): the classifier would classify padding alone, and the metrics count that "
                    "guess. Drop empty texts (e.g. with Dataset.filter).")
            row += len(lengths)
    elif not any(int((batch["attention_mask"].sum(-1) - 1).clamp_min(0).sum()) for batch in batches):
        raise DatasetError("No text of the evaluation data has two tokens, so a causal LM has no token to predict "
                           "after the first and the perplexity is undefined. Give longer texts.")


def encode_batches(tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int | None,
                   pad_id: int = 0) -> list[dict[str, torch.Tensor]]:
    """Tokenize once (truncating to `max_length`) into right-padded batches; padding (`pad_id`, the model's
    :func:`pad_id_of`) is masked out, so tokenizers without a pad token (GPT-2, Llama) work."""
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}.")
    batches, cut, kept, total = [], 0, 0, 0
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start: start + batch_size])
        enc = tokenizer(chunk, truncation=max_length is not None, max_length=max_length, return_attention_mask=True)
        batch = {"input_ids": _pad(enc["input_ids"], pad_id), "attention_mask": _pad(enc["attention_mask"], 0)}
        if "token_type_ids" in enc:
            batch["token_type_ids"] = _pad(enc["token_type_ids"], 0)
        batches.append(batch)
        lengths = [len(ids) for ids in enc["input_ids"]]
        kept, total = kept + sum(lengths), total + sum(lengths)
        full = [i for i, length in enumerate(lengths) if max_length is not None and length >= max_length]
        if full:  # only a text that filled max_length may have been cut: tokenized again whole to tell
            whole = [len(ids) for ids in tokenizer([chunk[i] for i in full], verbose=False)["input_ids"]]
            cut += sum(length > max_length for length in whole)
            total += sum(length - lengths[i] for i, length in zip(full, whole))
    if cut:  # helper 218: a 668-token text scored on its first 128 tokens, 40% of the corpus left out, without a word
        warnings.warn(
            f"{cut} of {len(texts)} texts are longer than max_length={max_length} tokens and were cut to it: the "
            f"metrics read {kept:,} of their {total:,} tokens (a perplexity covers each text's first {max_length} "
            "tokens; a classifier sees only them). Pass a larger max_length (up to the model's limit), or split long "
            "texts into rows of at most that length.", UserWarning, stacklevel=3)
    return batches


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def run_predictions(model: Any, batches: Sequence[dict[str, torch.Tensor]], task: str) -> dict[str, list]:
    """Forward every batch: predicted labels (classification) or per-sequence summed NLL and token counts (LM).

    The model runs its own forward, in the dtype of its weights: a model that a `Trainer` (Accelerate) prepared with
    ``bf16``/``fp16`` keeps an autocast wrapper as its ``forward`` after training, which is taken off for the
    passes (:func:`hf_txray.forward.own_forward`, as :func:`hf_txray.analyze` and ``ProbeMetric`` run it) and put
    back: the figures are those of the weights as saved, the same for ``trainer.model`` and for the checkpoint
    reloaded (helper 182: a tiny GPT-2's perplexity moved from 589.18 to 589.17, and the pruning effect by 9%). A
    ``torch.autocast`` block around the call is turned off for the passes likewise."""
    device = _device_of(model)
    out: dict[str, list] = {"predictions": []} if task == "classification" else {"nll": [], "num_tokens": []}
    restore_modes = enter_eval(model)
    try:
        with contextlib.ExitStack() as forwards:  # every wrapper put back, even if taking one off fails
            for module in {id(m): m for m in (model, unwrap_model(model))}.values():
                forwards.enter_context(own_forward(module))
            forwards.enter_context(own_precision())  # a torch.autocast block around the call too
            for batch in batches:
                inputs = {k: v.to(device) for k, v in batch.items()}
                logits = getattr(_forward(model, inputs), "logits", None)
                if logits is None:
                    raise ModelError(f"{type(model).__name__} returns no logits: the {task} metrics need the model "
                                     "with its head (e.g. *ForSequenceClassification, *ForCausalLM).")
                if logits.dim() != TASK_LOGITS[task][0]:  # a class infer_task cannot read the task from
                    raise ModelError(f"{type(model).__name__} returns logits of shape {tuple(logits.shape)}, and the "
                                     f"{task} metrics need {TASK_LOGITS[task][1]}: pass the task of the model's "
                                     f"head (one of {', '.join(TASKS)}), or a model with the head of this one.")
                if task == "classification":
                    out["predictions"].extend(logits.argmax(-1).tolist())
                    continue
                targets = inputs["input_ids"][:, 1:]
                mask = inputs["attention_mask"][:, 1:].to(torch.float64)
                losses = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2), targets, reduction="none"
                ).to(torch.float64)
                out["nll"].extend((losses * mask).sum(-1).tolist())
                out["num_tokens"].extend(mask.sum(-1).to(torch.long).tolist())
    finally:
        restore_modes()
    return out


def _forward(model: Any, inputs: dict[str, torch.Tensor]) -> Any:
    try:
        return model(**inputs)
    except ValueError as err:
        if "padding token" not in str(err):
            raise
        raise ConfigurationError(
            f"{type(model).__name__} classifies each text at its last token, which it finds by config.pad_token_id, "
            "and the config sets none, so it cannot take batches of several texts: set model.config.pad_token_id "
            "(e.g. to the tokenizer's eos_token_id), or pass batch_size=1.") from err


def metric_modules(metrics: Sequence[Any], task: str, metric_kwargs: dict[str, dict] | None = None
                   ) -> list[tuple[str, Any, dict]]:
    """``(name, evaluate module, compute kwargs)`` per metric spec: f1/precision/recall of a classification
    average over classes (``average="macro"``) unless `metric_kwargs` says otherwise, whatever the number of classes
    (sklearn's default, binary, fails on three).

    Raises:
        ConfigurationError: a key of `metric_kwargs` that names none of the metrics (its arguments would be ignored).
    """
    metric_kwargs = dict(metric_kwargs or {})
    modules = []
    for spec in metrics:
        module = load_metric(spec)
        name = spec if isinstance(spec, str) else module.name
        kwargs = dict(metric_kwargs.get(name, {}))
        if name in AVERAGED and task == "classification":
            kwargs.setdefault("average", "macro")
        modules.append((name, module, kwargs))
    unused = [key for key in metric_kwargs if key not in [name for name, _, _ in modules]]
    if unused:  # {"F1": {"average": "micro"}} beside metric "f1": the macro F1 was reported, without a word
        raise ConfigurationError(
            f"metric_kwargs names {unused}, none of the metrics evaluated ({[name for name, _, _ in modules]}): "
            "their arguments would be ignored. Key metric_kwargs by the metrics' names, as given in metric=.")
    return modules


def compute_metrics(modules: list[tuple[str, Any, dict]], outputs: dict[str, list],
             labels: list[int] | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, module, kwargs in modules:
        wanted = list(module._feature_names()) if hasattr(module, "_feature_names") else ["predictions", "references"]
        inputs = {}
        for key in wanted:
            if key == "references" and labels is not None:
                inputs[key] = labels
            elif key in outputs:
                inputs[key] = outputs[key]
            else:
                raise ConfigurationError(
                    f"Metric {name!r} needs input {key!r}, which this task does not produce (it gives "
                    f"{sorted(outputs) + (['references'] if labels is not None else [])})."
                )
        result = module.compute(**inputs, **kwargs)
        for key, value in (result or {}).items():
            row[key] = value
    return row


def _named_plans(plans: Any) -> list[tuple[str, PruningPlan]]:
    if isinstance(plans, PruningPlan):
        plans = [plans]
    if isinstance(plans, Mapping):
        items = [(str(k), v) for k, v in plans.items()]
    else:
        items, seen = [], {}
        for plan in plans:
            if not isinstance(plan, PruningPlan):
                raise ConfigurationError(f"plans must hold PruningPlan objects, got {type(plan).__name__}.")
            name = plan.name
            seen[name] = seen.get(name, 0) + 1
            items.append((name if seen[name] == 1 else f"{name}#{seen[name]}", plan))
    for name, plan in items:
        if not isinstance(plan, PruningPlan):
            raise ConfigurationError(f"Plan {name!r} is a {type(plan).__name__}, not a PruningPlan.")
    return items


def _num_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@on_own_default_device
def evaluate_pruning(
    model: Any,
    plans: PruningPlan | Sequence[PruningPlan] | Mapping[str, PruningPlan],
    dataset: Any,
    metric: Any = None,
    *,
    tokenizer: Any = None,
    task: str | None = None,
    text_column: str | None = None,
    label_column: str | None = "label",
    batch_size: int = 32,
    max_length: int | None = None,
    metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    include_baseline: bool = True,
    mode: str | None = None,
    uneven: str = "error",
) -> pd.DataFrame:
    """Evaluate the unpruned model and every pruning plan on the same data with the same `evaluate` metrics.

    The data are tokenized once. ``mask`` plans are applied to `model` with :func:`hf_txray.pruning.masked` and taken
    off again (the model is unchanged afterwards); ``remove`` plans are applied to a deep copy.
    Every plan is checked against the model (:func:`hf_txray.pruning.apply.check_applicable`) before any is evaluated.

    Args:
        model (`PreTrainedModel`): a sequence classifier (``...ForSequenceClassification``) or a causal LM.
        plans (`PruningPlan`, list or dict name -> plan): the plans to compare (names default to ``plan.name``).
        dataset (`datasets.Dataset`, dict of columns, DataFrame, or list of str for LMs): the evaluation data;
            classification needs a label column. A classification text without a token is refused (see
            :func:`check_rows_have_tokens`).
        metric (`str`, `evaluate.EvaluationModule` or a list of them, *optional*): defaults to
            ``["accuracy", "f1"]`` for classification and ``"perplexity"`` for causal LMs; these names load
            hf_txray's offline `evaluate` scripts (see :func:`load_metric`).
        tokenizer (*optional*): defaults to ``AutoTokenizer.from_pretrained(model.name_or_path)``.
        task (`str`, *optional*): ``"classification"`` or ``"causal-lm"``; inferred from the model class.
        text_column (`str`, *optional*): defaults to the first of ``text``, ``sentence``... found.
        label_column (`str`, *optional*, defaults to `"label"`): labels for classification.
        batch_size (`int`, *optional*, defaults to 32): texts per forward pass.
        max_length (`int`, *optional*): texts are truncated to this many tokens; defaults to the model's limit (its
            position table, config or tokenizer), at most 512, as :func:`hf_txray.analyze` resolves it; more than
            the model takes is refused before any work.
        metric_kwargs (`dict[str, dict]`, *optional*): extra ``compute`` arguments per metric name;
            ``f1``/``precision``/``recall`` default to ``average="macro"``.
        include_baseline (`bool`, *optional*, defaults to `True`): add the unpruned model as the first row.
        mode (`str`, *optional*): apply every plan in this mode instead of its own.
        uneven (`str`, *optional*, defaults to `"error"`): passed to ``remove`` (see :func:`hf_txray.prune`).

    Returns:
        `pd.DataFrame`: one row per model: ``plan``, ``strategy``, ``amount`` (as given; a per-layer amount as the
        text of its counts, ``"{0: 2, 1: 5}"``, and explicit neurons as ``"list <digest> (N neurons)"``, so that
        only the same amount is averaged by :func:`summarize`), ``amount_kind``
        (``count``, ``fraction``, ``custom``, ``list``; ``none`` for the unpruned row), ``seed``, ``mode``, ``pruned``
        (neurons), ``fraction``, the metric values (``accuracy``, ``f1``, ``perplexity``...), ``num_parameters``,
        ``seconds`` (inference time of the evaluation).

    Raises:
        ConfigurationError: an unknown `mode` (``"mask"`` or ``"remove"``), masks already active on the model, or a
            plan that cannot be applied to it (checked for every plan before any is evaluated).
        ModelError: a plan that does not fit the model, or no tokenizer can be loaded for it (pass `tokenizer`).
        DatasetError: texts that give no token to score.

    Example:
        ```python
        >>> plans = [hf_txray.pruning.plan_pruning(report, s, 0.1, seed=k, allow_fewer=True)  # lost: may be fewer
        ...          for s, k in [("lost", 0), ("random", 0)]]
        >>> table = hf_txray.evaluate_pruning(classifier, plans, test_set, tokenizer=tokenizer, max_length=128)
        >>> table[["plan", "pruned", "accuracy", "f1"]]
        ```
    """
    task = infer_task(model, task)
    named = _named_plans(plans)
    if mode is not None and mode not in ("mask", "remove"):
        raise ConfigurationError(f"Unknown mode {mode!r}: choose 'mask' or 'remove'.")
    # helper 152: the "unpruned" row and every masked plan were measured on top of a mask left on the model
    refuse_active_masks(model, "evaluate_pruning", "would measure its 'unpruned' row and every plan with them on")
    for name, plan in named:  # helper 186: a plan that did not fit was refused after the others were evaluated
        try:
            check_applicable(model, plan, mode, uneven)
        except (ConfigurationError, ModelError) as err:
            raise type(err)(f"Plan {name!r} cannot be applied to this model, so nothing was evaluated: {err}") from err
    if tokenizer is None:
        from transformers import AutoTokenizer

        source = getattr(model, "name_or_path", None)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except Exception as err:
            raise ModelError(f"Could not load a tokenizer for {source!r}: pass tokenizer=....") from err
    from .loading import check_tokenizer_vocabulary

    check_tokenizer_vocabulary(tokenizer)  # one without a vocabulary scored every text as [UNK]s
    # A text past the model's positions failed inside the model (a tensor size mismatch): truncate at its limit
    max_length = resolve_max_length(model, tokenizer, max_length)
    texts, labels = text_and_labels(dataset, text_column, label_column, task, model)
    metrics = metric if metric is not None else DEFAULT_METRICS[task]
    if isinstance(metrics, (str,)) or not isinstance(metrics, Sequence):
        metrics = [metrics]
    modules = metric_modules(metrics, task, metric_kwargs)
    batches = encode_batches(tokenizer, texts, batch_size, max_length, pad_id_of(model))
    check_rows_have_tokens(batches, task)
    check_batches_ignore_padding(model, batches, batch_size, max_length)

    def evaluate_one(target: Any) -> dict[str, Any]:
        start = time.perf_counter()
        outputs = run_predictions(target, batches, task)
        seconds = time.perf_counter() - start
        row = compute_metrics(modules, outputs, labels)
        row["num_parameters"] = _num_parameters(target)
        row["seconds"] = seconds
        return row

    rows = []
    if include_baseline:
        rows.append({"plan": BASELINE, "strategy": "none", "amount": 0, "amount_kind": "none", "seed": None,
                     "mode": "none", "pruned": 0, "fraction": 0.0, **evaluate_one(model)})
    for name, plan in named:
        plan_mode = mode or plan.mode
        if plan_mode == "mask":
            with masked(model, plan):
                result = evaluate_one(model)
        else:
            pruned = copy.deepcopy(model)
            apply_plan(pruned, plan, mode="remove", uneven=uneven)
            result = evaluate_one(pruned)
            del pruned
        rows.append({"plan": name, "strategy": plan.strategy, "amount": table_amount(plan),
                     "amount_kind": amount_kind(plan.amount),
                     "seed": plan.seed, "mode": plan_mode, "pruned": plan.total, "fraction": plan.fraction, **result})
    table = pd.DataFrame(rows)
    # as given, counts written as ints; a count (int) and a fraction (float) stay apart by amount_kind, which a CSV
    # keeps (it reads 1 and 1.0 back alike: helper 156 saw summarize() average "prune 6 neurons" with "prune all")
    table["amount"] = pd.Series([row["amount"] for row in rows], index=table.index, dtype=object)
    table.attrs["task"] = task
    table.attrs["metrics"] = [name for name, _, _ in modules]
    return table


def table_amount(plan: PruningPlan) -> Any:
    """A plan's ``amount`` cell: the amount as given, and for a per-layer amount (``custom``) its counts as text
    (``"{0: 2, 1: 5}"``), for explicit neurons (``list``) ``"list "`` and a digest of them: two plans of different
    sizes or neurons were both "custom" (or None), one group in :func:`summarize` and one point in ``plot_sweep``
    (helper 176: pruning 4 neurons and 80 averaged as one amount, n=2)."""
    if isinstance(plan.amount, Mapping):
        return "{" + ", ".join(f"{int(k)}: {int(v)}" for k, v in sorted(plan.amount.items())) + "}"
    if plan.amount is None:
        pairs = ",".join(f"{layer}:{neuron}" for layer, neuron in sorted(plan.pairs()))
        return f"list {hashlib.sha256(pairs.encode()).hexdigest()[:12]} ({plan.total} neurons)"
    return plan.amount


# ----- sweeps ------------------------------------------------------------------------------------------------------
def sweep_plans(
    source: Any,
    strategies: Sequence[str],
    amounts: Sequence[int | float],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    mode: str = "mask",
    per_layer: bool = True,
    allow_fewer: bool = False,
    **kwargs: Any,
) -> list[PruningPlan]:
    """Plans for every strategy x amount; ``random`` (and any registered random strategy) once per seed, the TX-Ray
    strategies once (seed ``seeds[0]``, which only breaks ties). Extra keyword arguments go to
    :func:`hf_txray.pruning.plan_pruning`."""
    if not strategies or not amounts or not seeds:
        raise ConfigurationError("A sweep needs at least one strategy, one amount and one seed.")
    # the same plans twice would read as two runs of one setting in summarize() (n=2, std 0); 1 and 1.0 are two
    # amounts (a count and a fraction), told apart by type
    # (helper 284: strategies and seeds alike: random,random or seeds 0,0 gave "random n 2, std 0.0000")
    refuse_repeats("amounts", "amount", amounts, [amount_label(a) for a in amounts],
                   " (an int is a count of neurons, a float a fraction)")
    refuse_repeats("strategies", "strategy", strategies)
    refuse_repeats("seeds", "seed", seeds)
    # a feature type is for the strategies that rank by it: refused when none of the sweep's does
    check_feature_type_used(kwargs.get("feature_type"), strategies)
    plans, planned = [], {}
    for amount in amounts:
        at_amount = [plan_pruning(source, strategy, amount, seed=seed, mode=mode, per_layer=per_layer,
                                  allow_fewer=allow_fewer, **{**kwargs, "feature_type": kwargs.get("feature_type")
                                                              if ranks_by_feature_type(strategy) else None})
                     for strategy in strategies for seed in (seeds if is_random_strategy(strategy) else seeds[:1])]
        # per-layer amounts are told apart as planned (keys resolved and sorted, as table_amount writes them):
        # {-1: 3} and {1: 3} of a 2-block model, or {0: 2, 1: 3} and {1: 3, 0: 2}, are one amount
        label = table_amount(at_amount[0]) if isinstance(amount, Mapping) else None
        if label in planned:
            raise ConfigurationError(f"amounts {planned[label]!r} and {amount!r} both plan {label} (a negative layer "
                                     "key counts from the last block): each amount once.")
        if label is not None:
            planned[label] = amount
        _warn_unmatched_random(at_amount, amount)
        plans += at_amount
    return plans


def _warn_unmatched_random(plans: Sequence[PruningPlan], amount: int | float) -> None:
    """Say where a strategy pruned fewer neurons than the random plans of its amount (``allow_fewer``): a random
    baseline of another size is no baseline (helper 150: 18 neurons against 924 read as "close to random")."""
    random_sizes = {plan.total for plan in plans if is_random_strategy(plan.strategy)}
    smaller = [plan for plan in plans if not is_random_strategy(plan.strategy) and random_sizes
               and plan.total < min(random_sizes)]
    if smaller:
        described = ", ".join(f"{plan.strategy} {plan.total}" for plan in smaller)
        warnings.warn(
            f"At amount {amount}, fewer neurons than asked were pruned by {described} (allow_fewer), against "
            f"{max(random_sizes)} by random: their random baseline is not of the same size. Compare each with random "
            "plans of its own per-layer counts: plan_pruning(source, 'random', plan.counts, seed=k).",
            UserWarning, stacklevel=3)


def summarize(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Mean, std and count of `metric` (and of every metric when None) per strategy and amount.

    Args:
        table (`pd.DataFrame`): rows as returned by :func:`evaluate_pruning`, possibly concatenated over several
            runs (e.g. fine-tuning seeds), with a ``strategy`` and an ``amount`` column.
        metric (`str`, *optional*): one metric column.

    Returns:
        `pd.DataFrame` with ``<metric>_mean``, ``<metric>_std`` and ``n`` per (strategy, amount, mode). Rows are
        averaged only at the same amount: 1 (a count) and 1.0 (a fraction) apart, each per-layer amount and neuron
        list apart; and in the same mode (``mask`` and ``remove`` rows of one plan are one model measured twice, not
        two runs; a table without a ``mode`` column is grouped by strategy and amount).

    Raises:
        ConfigurationError: a metric not in the table; rows of one ``custom``/``list`` amount that pruned
            different numbers of neurons (a table where per-layer amounts were all written "custom").
    """
    metrics = [metric] if metric else list(table.attrs.get("metrics") or [])
    if not metrics:
        metrics = [c for c in table.columns if c in ("accuracy", "f1", "precision", "recall", "perplexity")]
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise ConfigurationError(f"Metric column(s) {missing} not in the table: {list(table.columns)}.")
    frame = table.copy()
    frame["amount"] = amount_labels(frame)
    # helper 398: a plan evaluated in both modes (mask, then remove for size) is one model measured twice, and was
    # averaged as two runs: random at 0.2, seeds 0-4 in mask and seed 0 in remove, read "n 6" (seed 0 twice), and
    # low_mass "n 2, std 0.0000". Each mode is its own setting.
    keys = ["strategy", "amount"] + (["mode"] if "mode" in frame else [])
    # dropna=False: a row without a mode (a table joined with one that has no mode column) was left out of every
    # group without a word (n 2 of 3 runs); it is its own group, shown with its missing mode
    grouped = frame.groupby(keys, sort=False, dropna=False)
    if "amount_kind" in frame and "pruned" in frame:  # a table of an older version: every per-layer amount "custom"
        kinds = frame["amount_kind"].isin(["custom", "list"])
        sizes = frame[kinds].groupby(keys, sort=False, dropna=False)["pruned"].nunique()
        if (sizes > 1).any():
            strategy, amount = sizes[sizes > 1].index[0][:2]
            raise ConfigurationError(
                f"summarize: the rows of strategy {strategy!r} and amount {amount!r} pruned different numbers of "
                f"neurons ({sorted(set(frame[kinds & (frame['strategy'] == strategy)]['pruned']))}): they are "
                "different per-layer amounts or neuron lists, not runs of one setting. Evaluate them again with "
                "evaluate_pruning, which records each per-layer amount apart, or set the amount column per plan.")
    out = grouped[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n"] = grouped.size()
    out["pruned"] = grouped["pruned"].mean()
    return out.reset_index()


__all__ = ["evaluate_pruning", "load_metric", "sweep_plans", "summarize", "encode_batches", "pad_id_of",
           "check_batches_ignore_padding", "run_predictions"]
