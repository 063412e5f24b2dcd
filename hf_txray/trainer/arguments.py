"""`TXRayArguments`: `TrainingArguments` plus the TX-Ray options of :class:`TXRayTrainer`, and their checks.

The ``txray_*`` fields that are options of :func:`hf_txray.analyze` are generated from their one declaration
(:mod:`hf_txray.options`, :data:`~hf_txray.options.TRAINER_OPTIONS`): same defaults, same help, same checks. Only
the trainer's own fields (when and how often to profile, how many probe texts) are declared here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from transformers import TrainerState, TrainingArguments

from ..counts import check_count, check_switch, is_int
from ..errors import ConfigurationError
from ..features import BUILTIN_FEATURES, registered_features, text_features
from ..options import (SITES, TRAINER_OPTIONS, ProfilerConfig, add_prefixed_options, as_python_ints,
                       parse_layers, parse_optional_int, prefixed_values, respell_options)

TXRAY_DIR = "txray"


def prefixed_option_names(message: str, prefix: str = "txray_") -> str:
    """`message` (an error about analyze's options) with each option written as the trainer's field: ``top_k=100``
    -> ``txray_top_k=100``, ``lower skip_first_positions`` -> ``lower txray_skip_first_positions`` (the names found
    as :func:`~hf_txray.options.respell_options` finds them), ``--text-column`` -> ``--txray_text_column``."""
    import re

    message = respell_options(message, {name: prefix + name for name in TRAINER_OPTIONS})
    # the hf-txray flag of an option (--text-column) as the trainer's flag (--txray_text_column, HfArgumentParser)
    message = re.sub(r"(?<![\w-])--([a-z][a-z0-9_-]*)", lambda m: f"--{prefix}{m[1].replace('-', '_')}"
                     if m[1].replace("-", "_") in TRAINER_OPTIONS else m[0], message)
    if "module_pattern" in message:  # advice the trainer cannot follow: it has no such field
        message += (f" (module_pattern is not a TXRayArguments field: in the trainer use {prefix}site='residual', or "
                    "profile saved checkpoints with hf_txray.analyze(..., module_pattern=...).)")
    return message


def args_without_secrets(args: TrainingArguments) -> TrainingArguments:
    """`args` as it may be written to a file: a shallow copy whose secrets (the ``*_token`` fields, which
    transformers masks in ``to_dict`` and ``str``, e.g. ``hub_token``) are None; `args` itself, when it holds none.

    A copy, not ``dataclasses.replace``: that would run ``__post_init__`` again (device setup, warnings, checks).
    """
    secrets = [f.name for f in fields(args) if f.name.endswith("_token") and getattr(args, f.name, None) is not None]
    if not secrets:
        return args
    redacted = copy.copy(args)
    for name in secrets:
        setattr(redacted, name, None)
    return redacted


STRATEGIES = ("no", "steps", "epoch")
REFERENCES = ("first", "previous")
TEXT_FEATURES = tuple(text_features(BUILTIN_FEATURES))  # kept for imports: hf_txray.features.is_tag_feature decides
PREFIX = "txray_"


def check_trainer_options(strategy: str, steps: Any, max_samples: Any, site: str, prefix: str) -> None:
    """Validation shared by the arguments (`prefix` "txray_") and the callback (no prefix): names match the caller's."""
    if strategy not in STRATEGIES:
        raise ConfigurationError(f"{prefix}strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    check_count(f"{prefix}steps", steps)
    check_count(f"{prefix}max_samples", max_samples, none="all")
    if site not in SITES:
        raise ConfigurationError(f"{prefix}site must be one of {', '.join(SITES)}, got {site!r}.")


def best_checkpoint_gap(args: TrainingArguments, strategy: str, steps: int, prefix: str,
                        state: TrainerState | None = None, steps_per_epoch: int | None = None) -> str | None:
    """Why a checkpoint that ``load_best_model_at_end`` may load at the end of training gets no TX-Ray snapshot of its
    weights (in words, options named with `prefix`), or None: snapshots at every step a checkpoint is saved (or
    ``load_best_model_at_end`` off, or TX-Ray off). Without one, the trained model matches no snapshot and its card
    can only say so, after training (helper 259: a card's first notice of ``txray_steps=3`` beside ``save_steps=2``).
    An interval given as a ratio of the training steps (``save_steps=0.5``) is read from `state` (the Trainer's, at
    ``on_train_begin``: ``state.save_steps`` / ``state.eval_steps``, in steps); without `state` it is not judged.
    `steps_per_epoch` (optimizer steps, :func:`steps_per_epoch`; None where the training data have no length) puts
    epoch checkpoints beside step snapshots, and step checkpoints beside epoch snapshots, at the steps they fall on
    (helper 454: txray_steps=6 beside epochs of 6 steps profiled every checkpoint, and was warned about). With
    `state`, a run of ``state.max_steps`` optimizer steps no longer than that interval saves its only checkpoint at
    its last step, which always gets a snapshot: no gap."""
    if not getattr(args, "load_best_model_at_end", False) or strategy == "no" or (strategy == "steps" and steps == 1):
        return None  # txray_steps=1: a snapshot at every step, so at every checkpoint
    save = str(getattr(args.save_strategy, "value", args.save_strategy))
    if save == "best":  # a checkpoint at each evaluation that improves the metric
        save, interval, name = str(getattr(args.eval_strategy, "value", args.eval_strategy)), args.eval_steps, "eval"
    else:
        interval, name = args.save_steps, "save"
    given = interval
    if not is_int(interval) and state is not None and is_int(getattr(state, f"{name}_steps", None)):
        interval = getattr(state, f"{name}_steps")  # a ratio, in steps once training begins (TrainerState)
    if save == "epoch" and strategy == "epoch":
        return None
    every = steps_per_epoch if save == "epoch" else interval if is_int(interval) else None
    if every and state is not None and is_int(state.max_steps) and 0 < state.max_steps <= every:
        return None  # the only checkpoint is the last step's, and the last step always gets a snapshot
    if steps_per_epoch and save == "epoch" and strategy == "steps" and steps_per_epoch % steps == 0:
        return None  # every epoch's last step is a multiple of txray_steps
    if steps_per_epoch and save == "steps" and strategy == "epoch" and is_int(interval) and \
            interval % steps_per_epoch == 0:
        return None  # every checkpoint falls at an epoch's last step
    if save == "steps" and (not is_int(interval) or (strategy == "steps" and interval % steps == 0)):
        return None  # not is_int: a ratio of the total steps without the Trainer's state, not known yet
    if save not in ("epoch", "steps"):
        return None
    said = f"{given} ({interval} steps)" if given != interval else f"{interval}"
    when = f"{name}_strategy={save!r}" + (f", {name}_steps={said}" if save == "steps" else "")
    fix = (f"{prefix}steps to a divisor of {name}_steps (e.g. {prefix}steps={interval})" if save == "steps"
           else f"{prefix}strategy='epoch'")
    taken = f"{prefix}strategy={strategy!r}" + (f", {prefix}steps={steps}" if strategy == "steps" else "")
    return (f"load_best_model_at_end loads the best checkpoint's weights at the end of training, but TX-Ray snapshots "
            f"({taken}) are not taken at every checkpoint ({when}): the trained model may match no snapshot. Set "
            f"{fix} to profile every checkpoint.")


def steps_per_epoch(args: TrainingArguments, dataloader: Any) -> int | None:
    """Optimizer steps in one pass over `dataloader` (the Trainer's training dataloader), as the Trainer counts them
    (a last, partial accumulation is a step); None where it has no length (an ``IterableDataset``)."""
    try:
        batches = len(dataloader)
    except TypeError:
        return None
    accumulation = max(int(getattr(args, "gradient_accumulation_steps", 1) or 1), 1)
    return max(-(-batches // accumulation), 1)


# repr=False: TrainingArguments' own repr, which shows hub_token (every *_token) as <HUB_TOKEN>; a generated one
# printed the token as typed (a notebook cell showing `args`)
@dataclass(repr=False)
@add_prefixed_options(PREFIX, TRAINER_OPTIONS)
class TXRayArguments(TrainingArguments):
    """`TrainingArguments` plus the TX-Ray options of :class:`TXRayTrainer`; every field is also a CLI flag.

    Args:
        txray_strategy (`str`, *optional*, defaults to `"steps"`): when to take a profile during training:
            ``"no"`` (never: TX-Ray is off), ``"steps"`` (every `txray_steps` optimizer steps) or ``"epoch"``. With
            ``"steps"`` and ``"epoch"`` a profile is also taken at train begin and at train end.
        txray_steps (`int`, *optional*, defaults to 500): optimizer steps between profiles for ``"steps"``.
        txray_max_samples (`int`, *optional*, defaults to 512): probe texts used (the first ones); None for all.
        txray_on_train_begin (`bool`, *optional*, defaults to `True`): profile the starting point as ``step-0``.
        txray_layers, txray_site, txray_features, txray_top_k, txray_text_column, txray_batch_size,
        txray_max_length, txray_stack, txray_skip_first_positions, txray_long_texts, txray_stride, txray_num_workers,
        txray_max_tokens_per_batch, txray_pad_to_multiple_of: the :func:`hf_txray.analyze` options of the same
            name, with the same defaults and help (declared once, in :mod:`hf_txray.options`), typed for the
            command line: ``txray_layers="0-3,-1"``, ``txray_features=["token", "pos"]``,
            ``txray_skip_first_positions="auto"`` or ``"1"``.

    Example:
        ```python
        >>> from transformers import HfArgumentParser
        >>> (args,) = HfArgumentParser(TXRayArguments).parse_args_into_dataclasses(
        ...     ["--output_dir", "out", "--txray_steps", "50", "--txray_layers", "0,-1"])
        ```
    """

    txray_strategy: str = field(
        default="steps", metadata={"help": "When TX-Ray profiles the model: 'no', 'steps' or 'epoch'.",
                                   "choices": list(STRATEGIES)})
    txray_steps: int = field(
        default=500, metadata={"help": "Optimizer steps between profiles when txray_strategy='steps'."})
    txray_max_samples: int | str | None = field(  # text on the command line, so that "None" can be given
        default=512, metadata={"help": "Profile only the first N probe texts (None: all of them)."})
    txray_on_train_begin: bool = field(
        default=True, metadata={"help": "Profile the starting point (stage 'step-0') when training begins."})
    # txray_layers, txray_site, txray_features, ... : added by add_prefixed_options from hf_txray.options. Declared
    # again here for type checkers only, which do not run the decorator (mypy refused TXRayArguments(
    # txray_features=[...]) as an unknown argument); tests/test_type_hints.py checks them against the added fields.
    if TYPE_CHECKING:
        txray_layers: str = "all"
        txray_site: str = "mlp"
        txray_features: list[str] = field(default_factory=lambda: ["token", "pos"])
        txray_top_k: int = 1
        txray_text_column: str | None = None
        txray_batch_size: int | str | None = None
        txray_max_length: int | str | None = None
        txray_stack: str | None = None
        txray_skip_first_positions: str = "auto"
        txray_long_texts: str = "window"
        txray_stride: int | str | None = None
        txray_num_workers: int | str | None = None
        txray_max_tokens_per_batch: int | str | None = None
        txray_pad_to_multiple_of: int = 16

    def __post_init__(self):
        as_python_ints(self)  # numpy ints would reach to_json_string (TensorBoard, the saved training_args)
        # "no" is truthy: the step-0 profile would be taken (a torch bool ended in an AttributeError, 1 was refused)
        self.txray_on_train_begin = check_switch("txray_on_train_begin", self.txray_on_train_begin)
        self._parse_text_values()
        check_trainer_options(self.txray_strategy, self.txray_steps, self.txray_max_samples, self.txray_site, PREFIX)
        unknown = [f for f in self.txray_features if f not in registered_features()]
        if unknown or not self.txray_features:
            raise ConfigurationError(
                f"txray_features must list registered features ({', '.join(registered_features())}), got "
                f"{self.txray_features!r}. "
                "A user feature (hf_txray.UserFeature) is listed here once registered with "
                "hf_txray.register_feature(feature), or passed to TXRayCallback(features=...)."
            )
        try:
            self.profiler_config().validate()  # layers, top_k, batch size, max_length, ...
        except ConfigurationError as err:  # named as the user wrote them: txray_top_k, not top_k (every option named)
            raise ConfigurationError(prefixed_option_names(str(err), PREFIX)) from None
        super().__post_init__()

    def _parse_text_values(self) -> None:
        """Optional ints given as text on the command line (``--txray_max_length None``, ``--txray_stride 32``),
        optional text given as none (``--txray_text_column None``, ``--txray_stack none``) and comma-separated
        features (``--txray_features token,pos``) as the values they name, set back on the fields (the field kept
        "None" while the option read None: the eval_dataset probe looked for a column named 'None')."""
        try:
            self.txray_max_samples = parse_optional_int(self.txray_max_samples)
        except ConfigurationError as err:
            raise ConfigurationError(f"txray_max_samples: {err}") from None
        parsed = self.txray_options()
        for name in ("features", "top_k", "text_column", "max_length", "batch_size", "stack", "stride", "num_workers",
                     "max_tokens_per_batch", "pad_to_multiple_of"):
            setattr(self, PREFIX + name, list(parsed[name]) if name == "features" else parsed[name])
        if not isinstance(self.txray_layers, str):  # an array or range as the list it names ("0-3" kept as written)
            try:
                self.txray_layers = parse_layers(self.txray_layers)
            except ConfigurationError as err:
                raise ConfigurationError(f"{PREFIX}{err}") from None

    def txray_options(self) -> dict[str, Any]:
        """The ``txray_*`` options of :func:`hf_txray.analyze`, by their analyze name, parsed (layers -> list...)."""
        return prefixed_values(self, PREFIX, TRAINER_OPTIONS)

    def profiler_config(self) -> ProfilerConfig:
        options = self.txray_options()
        options.pop("text_column")
        return ProfilerConfig(**options)
