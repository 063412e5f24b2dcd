"""How many tokens a model can take: its position table (with the offsets some architectures add to position ids),
else its config, and never more than its tokenizer's limit.

Feeding more positions than the table holds fails deep inside the model with a raw index or size error (or, on
some devices, reads past the table), so the limit is checked before any work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from .counts import check_count
from .errors import ConfigurationError
from .logging import get_logger

logger = get_logger(__name__)

DEFAULT_MAX_LENGTH = 512
# Learned or fixed position tables, by the last part of their module name: GPT-2 ``wpe``, BERT-style
# ``position_embeddings``, BART/OPT/Whisper ``embed_positions``.
POSITION_TABLE = re.compile(r"(^|\.)(wpe|position_embeddings?|embed_positions|pos_emb(ed|edding|eddings)?)$")
# Parts of a vision-language or speech model that never see the text: their patch or frame position tables are no
# limit on it (a 28-pixel SigLIP tower's 4 rows truncated Gemma 3's texts to 4 tokens).
OTHER_MODALITIES = ("vision", "visual", "image", "audio", "speech", "video")
CONFIG_LIMITS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx", "seq_length")
UNBOUNDED = 1_000_000  # tokenizers without a limit report int(1e30)


@dataclass
class LengthLimit:
    """The most tokens per text a model takes, and where that figure comes from (for messages).

    Args:
        tokens (`int` or `None`): the limit; `None` when neither the model nor the tokenizer states one.
        source (`str`): e.g. ``"position table embeddings.position_embeddings (514 rows, ids start at 2)"``.
    """

    tokens: int | None
    source: str


def _table_limit(name: str, table: nn.Embedding) -> tuple[int, str]:
    rows = int(table.num_embeddings)
    # OPT, BART, mBART, BioGPT... shift position ids by `offset` and size the table to match.
    offset = int(getattr(table, "offset", 0) or 0)
    # RoBERTa-style tables (RoBERTa, XLM-R, CamemBERT, MPNet, ESM...) number positions from padding_idx + 1.
    if table.padding_idx is not None:
        offset = max(offset, int(table.padding_idx) + 1)
    detail = f", ids start at {offset}" if offset else ""
    return rows - offset, f"position table {name} ({rows} rows{detail})"


def _shifted_limit(tokens: int, source: str) -> tuple[int, str]:
    return tokens - 1, f"{source}, less 1 for the decoder start token"


def model_length_limit(model: nn.Module, shifted: nn.Module | None = None, runs: nn.Module | None = None
                       ) -> LengthLimit:
    """The positions `model` can take: the smallest position table among its stacks, else the config's figure.

    Args:
        model (`nn.Module`): the model the tokens go through.
        shifted (`nn.Module`, *optional*): a part of `model` fed one position more than the text (the decoder of
            a ``stack="decoder"`` profile: the start token goes first, see :mod:`hf_txray.forward`); its position
            tables hold one text token less. Relative positions (T5) have no table and no such limit.
        runs (`nn.Module`, *optional*): the part of `model` that runs (the encoder of a ``stack="encoder"``
            profile): only its tables bound the text. All of `model` when omitted.
    """
    inside = {id(m) for m in shifted.modules()} if shifted is not None else set()
    part = model if runs is None else runs
    names = {id(m): n for n, m in model.named_modules()}  # named as in the model (decoder.embed_positions)
    tables = [_shifted_limit(*_table_limit(names.get(id(m), n), m)) if id(m) in inside
              else _table_limit(names.get(id(m), n), m)
              for n, m in part.named_modules() if isinstance(m, nn.Embedding) and POSITION_TABLE.search(n)
              and not _other_modality(names.get(id(m), n))]
    if tables:
        tokens, source = min(tables)
        return LengthLimit(tokens, source)
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else None
    for where, found in (("config", config), ("text config", text_config)):  # a composite config keeps it there
        for attribute in CONFIG_LIMITS:
            value = getattr(found, attribute, None)
            if isinstance(value, int) and 1 < value < UNBOUNDED:
                return LengthLimit(value, f"{where}.{attribute}")
    return LengthLimit(None, "no position table or config limit")


def _other_modality(name: str) -> bool:
    """Whether module `name` lies in a tower of another modality (``model.vision_tower.embeddings...``)."""
    return any(modality in part.lower() for part in name.split(".")[:-1] for modality in OTHER_MODALITIES)


def tokenizer_length_limit(tokenizer) -> LengthLimit:
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 1 < value < UNBOUNDED:
        return LengthLimit(value, "tokenizer.model_max_length")
    return LengthLimit(None, "tokenizer without model_max_length")


# What happens to a longer text, said in the error: analyze windows it; the probing, pruning and ablation metrics
# truncate.
WINDOWED = "longer texts are split into windows (or truncated with long_texts='truncate')"
TRUNCATED = "longer texts are truncated"


def resolve_max_length(model: nn.Module, tokenizer, requested: int | None, shifted: nn.Module | None = None,
                       longer: str = TRUNCATED, runs: nn.Module | None = None) -> int:
    """The `max_length` to tokenize with, checked against the model's and the tokenizer's limits.

    Args:
        model (`nn.Module`): the model the tokens go through.
        tokenizer: its tokenizer.
        requested (`int`, *optional*): the user's `max_length`. When omitted: the usable limit, at most 512.
        shifted (`nn.Module`, *optional*): the part of `model` fed one position more than the text (see
            :func:`model_length_limit`): the decoder when profiling ``stack="decoder"``.
        longer (`str`, *optional*): what the caller does with longer texts, for the error (:data:`WINDOWED` for
            analyze, :data:`TRUNCATED` by default).
        runs (`nn.Module`, *optional*): the part of `model` that runs, when not all of it (see
            :func:`model_length_limit`): the encoder when profiling ``stack="encoder"``.

    Returns:
        `int`: tokens per text, special tokens included.

    Raises:
        ConfigurationError: `requested` exceeds the usable limit (raised before any forward pass).
    """
    known = [lim for lim in (model_length_limit(model, shifted, runs), tokenizer_length_limit(tokenizer))
             if lim.tokens is not None]
    usable = min(known, key=lambda lim: lim.tokens) if known else None
    if requested is not None:
        requested = check_count("max_length", requested, minimum=2, none="the model's limit")
        if usable is not None and requested > usable.tokens:
            raise ConfigurationError(
                f"max_length={requested} exceeds what {type(model).__name__} can take: {usable.tokens} tokens "
                f"({usable.source}). Pass max_length<={usable.tokens}; {longer}."
            )
        return requested
    if usable is None:
        logger.warning("Neither %s nor its tokenizer states a maximum length: using max_length=%d (pass max_length "
                       "to change it).", type(model).__name__, DEFAULT_MAX_LENGTH)
        return DEFAULT_MAX_LENGTH
    return min(usable.tokens, DEFAULT_MAX_LENGTH)
