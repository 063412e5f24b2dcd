"""`TXRayArguments`: `TrainingArguments` plus the TX-Ray options of :class:`TXRayTrainer`, and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from ..analyze import ProfilerConfig
from ..errors import ConfigurationError
from ..features import BUILTIN_FEATURES
from ..sites import SITES

TXRAY_DIR = "txray"
STRATEGIES = ("no", "steps", "epoch")
REFERENCES = ("first", "previous")
TEXT_FEATURES = ("token", "word")  # everything else is tag-like and gets mass-share columns and plots


def parse_layers(value: Any) -> str | list[int]:
    """Normalise a layer selection: ``"all"``, an int, a list of ints, or a string such as ``"0,3,-1"``.

    Args:
        value (`str`, `int` or `list[int]`): the selection as given in Python or on the command line.

    Returns:
        ``"all"`` or a list of ints (negative indices count from the last layer).

    Example:
        ```python
        >>> parse_layers("0, 2,-1")
        [0, 2, -1]
        ```
    """
    if isinstance(value, str):
        text = value.strip()
        if text == "all":
            return "all"
        try:
            return [int(part) for part in text.split(",") if part.strip()] or _raise_empty_layers()
        except ValueError:
            raise ConfigurationError(
                f"txray_layers must be 'all' or comma-separated block indices such as '0,3,-1', got {value!r}."
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise ConfigurationError(f"layers must be 'all', an int or a list of ints, got {value!r}.")
    layers = [value] if isinstance(value, int) else list(value)
    if not layers or not all(isinstance(v, int) and not isinstance(v, bool) for v in layers):
        raise ConfigurationError(f"layers must be 'all', an int or a non-empty list of ints, got {value!r}.")
    return layers


def _raise_empty_layers() -> list[int]:
    raise ConfigurationError("txray_layers is empty: pass 'all' or at least one block index.")


def _check_options(strategy: str, steps: Any, max_samples: Any, site: str, prefix: str) -> None:
    """Validation shared by the arguments (`prefix` "txray_") and the callback (no prefix): names match the caller's."""
    if strategy not in STRATEGIES:
        raise ConfigurationError(f"{prefix}strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigurationError(f"{prefix}steps must be an int >= 1, got {steps!r}.")
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 1):
        raise ConfigurationError(f"{prefix}max_samples must be None or an int >= 1, got {max_samples!r}.")
    if site not in SITES:
        raise ConfigurationError(f"{prefix}site must be one of {', '.join(SITES)}, got {site!r}.")


@dataclass
class TXRayArguments(TrainingArguments):
    """`TrainingArguments` plus the TX-Ray options of :class:`TXRayTrainer`; every field is also a CLI flag.

    Args:
        txray_strategy (`str`, *optional*, defaults to `"steps"`): when to take a profile during training:
            ``"no"`` (never: TX-Ray is off), ``"steps"`` (every `txray_steps` optimizer steps) or ``"epoch"``. With
            ``"steps"`` and ``"epoch"`` a profile is also taken at train begin and at train end.
        txray_steps (`int`, *optional*, defaults to 500): optimizer steps between profiles for ``"steps"``.
        txray_layers (`str`, *optional*, defaults to `"all"`): ``"all"`` or comma-separated block indices.
        txray_site (`str`, *optional*, defaults to `"mlp"`): ``"mlp"`` (MLP intermediate neurons) or ``"residual"``.
        txray_features (`list[str]`, *optional*, defaults to `["token", "pos"]`): built-in feature types.
        txray_top_k (`int`, *optional*, defaults to 1): neurons credited per position and layer.
        txray_max_samples (`int`, *optional*, defaults to 512): probe texts used (the first ones); None for all.
        txray_text_column (`str`, *optional*): text column of the probe corpus (auto-detected when omitted).
        txray_on_train_begin (`bool`, *optional*, defaults to `True`): profile the starting point as ``step-0``.
        txray_batch_size (`int`, *optional*, defaults to 32): probe texts per forward pass.
        txray_max_length (`int`, *optional*): probe texts are truncated to this many tokens.
        txray_skip_first_positions (`str`, *optional*, defaults to `"auto"`): credit nothing at the first N
            positions of each probe text; ``"auto"``: 1 for decoder-only LMs, 0 for encoders (see :func:`analyze`).

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
    txray_layers: str = field(
        default="all", metadata={"help": "'all' or comma-separated block indices, e.g. '0,3,-1'."})
    txray_site: str = field(
        default="mlp", metadata={"help": "Neuron site: 'mlp' (MLP intermediate) or 'residual' (block output).",
                                 "choices": list(SITES)})
    txray_features: list[str] = field(
        default_factory=lambda: ["token", "pos"],
        metadata={"help": f"Feature types credited to the winning neurons, any of {', '.join(BUILTIN_FEATURES)}."})
    txray_top_k: int = field(
        default=1, metadata={"help": "Neurons credited per position and layer (the paper uses 1)."})
    txray_max_samples: int | None = field(
        default=512, metadata={"help": "Profile only the first N probe texts (None: all of them)."})
    txray_text_column: str | None = field(
        default=None, metadata={"help": "Text column of the probe corpus; auto-detected when omitted."})
    txray_on_train_begin: bool = field(
        default=True, metadata={"help": "Profile the starting point (stage 'step-0') when training begins."})
    txray_batch_size: int = field(default=32, metadata={"help": "Probe texts per forward pass while profiling."})
    txray_max_length: int | None = field(
        default=None, metadata={"help": "Truncate probe texts to this many tokens (default: the model's limit)."})
    txray_stack: str | None = field(
        default=None, metadata={"help": "Encoder-decoder models: profile the 'encoder' (default) or the 'decoder' "
                                        "(teacher forcing on the probe text)."})
    txray_skip_first_positions: str = field(
        default="auto", metadata={"help": "Credit nothing at the first N positions of each probe text; 'auto': 1 for "
                                          "decoder-only LMs (massive first-token activations), 0 for encoders."})

    def __post_init__(self):
        _check_options(self.txray_strategy, self.txray_steps, self.txray_max_samples, self.txray_site, "txray_")
        parse_layers(self.txray_layers)
        unknown = [f for f in self.txray_features if f not in BUILTIN_FEATURES]
        if unknown or not self.txray_features:
            raise ConfigurationError(
                f"txray_features must list built-in features ({', '.join(BUILTIN_FEATURES)}), got "
                f"{self.txray_features!r}. "
                "User-defined features are passed to TXRayCallback(features=...) directly."
            )
        self._profiler_config().validate()  # top_k, batch size, max_length
        super().__post_init__()

    def _profiler_config(self) -> ProfilerConfig:
        return ProfilerConfig(layers=parse_layers(self.txray_layers), site=self.txray_site,
                              features=tuple(self.txray_features), top_k=self.txray_top_k,
                              max_length=self.txray_max_length, batch_size=self.txray_batch_size,
                              stack=self.txray_stack, skip_first_positions=_skip(self.txray_skip_first_positions))


def _skip(value: Any) -> int | str:
    """'auto', or an int given as int or digit string (HfArgumentParser passes strings)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value
