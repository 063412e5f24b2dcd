"""Long texts as model inputs: the modes (cut into overlapping windows, or truncate), the default stride, and the
checks of these options and of the token budget.

Torch-free, so the options are checked (and ``hf-txray --help`` lists them) without importing torch;
:mod:`hf_txray.batching` cuts the texts.
"""

from __future__ import annotations

from .counts import check_count
from .errors import ConfigurationError

LONG_TEXT_MODES = ("window", "truncate")


def default_stride(max_length: int) -> int:
    """Left-context tokens repeated at the start of every window after the first: a quarter of ``max_length``.

    Each window then credits ``3/4`` of its tokens, so long texts cost at most a third more forward compute
    than truncation, and every credited token (after the first window) sees at least ``max_length / 4`` tokens
    of left context.
    """
    return max_length // 4


def check_token_budget(max_tokens_per_batch: int | None, max_length: int, window_width: int | None = None,
                       pad_multiple: int | None = None) -> None:
    """Refuse a token budget that one window does not fit in.

    A batch's tokens are rows x *padded* width, and a window of `max_length` tokens runs `window_width` wide
    (rounded up to `pad_multiple`): a budget between the two would be accepted, recorded, and exceeded by every
    batch holding a full window.

    Args:
        max_tokens_per_batch (`int`, *optional*): the requested budget; None: no check.
        max_length (`int`): tokens per window.
        window_width (`int`, *optional*): the padded width of a window of `max_length` tokens
            (:func:`~hf_txray.batching.padded_width`); None before the model is known (then `max_length`).
        pad_multiple (`int`, *optional*): `pad_to_multiple_of`, named in the message.

    Raises:
        ConfigurationError: ``max_tokens_per_batch`` below the width of one window.
    """
    if max_tokens_per_batch is None:
        return
    if max_tokens_per_batch < max_length:
        raise ConfigurationError(
            f"max_tokens_per_batch={max_tokens_per_batch} is smaller than max_length={max_length}: a batch must hold "
            f"at least one window of max_length tokens. Raise max_tokens_per_batch to {max_length} or more, or lower "
            "max_length."
        )
    if window_width is not None and max_tokens_per_batch < window_width:
        raise ConfigurationError(
            f"max_tokens_per_batch={max_tokens_per_batch} is smaller than one window as it runs: max_length="
            f"{max_length} tokens padded to a multiple of pad_to_multiple_of={pad_multiple} are {window_width} "
            f"tokens wide, so every batch holding a full window would exceed the budget. Raise max_tokens_per_batch "
            f"to {window_width} or more, pass a max_length that is a multiple of {pad_multiple}, or "
            "pad_to_multiple_of=1."
        )


def check_window_options(long_texts: str, stride: int | None, max_length: int, num_special: int | None,
                         skip_first_positions: int = 0, num_prefix: int | None = None) -> int:
    """Validate `long_texts` and `stride`; returns the stride in effect.

    A stride is used by ``long_texts="window"`` only; under ``"truncate"`` it is ignored but still checked, as
    transformers' tokenizers check ``stride`` when they truncate.

    `skip_first_positions` leaves out the first positions of a model input (a decoder's attention sink). In a
    window after the first, the first positions are its `num_prefix` special tokens and `stride` tokens of context,
    which are never credited; a stride shorter than that would credit tokens at a later window's first positions.
    The default stride is raised to ``skip_first_positions - num_prefix`` then, and a smaller stride given
    explicitly is refused.

    Args:
        long_texts (`str`): one of ``LONG_TEXT_MODES``.
        stride (`int`, *optional*): left-context tokens per later window; None: :func:`default_stride`.
        max_length (`int`): tokens per window, special tokens included.
        num_special (`int`, *optional*): special tokens the tokenizer adds per input; None where no tokenizer is
            known yet (options checked before loading): then only ``stride < max_length`` is checked, and the
            message states no count of special tokens.
        skip_first_positions (`int`, *optional*, defaults to 0): the profile's setting, resolved.
        num_prefix (`int`, *optional*): :func:`num_prefix_specials`; None before the tokenizer is known.

    Raises:
        ConfigurationError: unknown mode, negative stride, a stride that leaves no new token per window
            (``stride >= max_length`` minus the special tokens the tokenizer adds), or, with windows, a stride
            that would credit a later window's skipped first positions.
    """
    if long_texts not in LONG_TEXT_MODES:
        raise ConfigurationError(f"long_texts must be one of {LONG_TEXT_MODES}, got {long_texts!r}.")
    explicit = stride is not None
    stride = default_stride(max_length) if stride is None else stride
    stride = check_count("stride", stride, minimum=0)
    if num_special is not None and max_length - num_special < 1:
        raise ConfigurationError(
            f"max_length={max_length} leaves no room for a text token: the tokenizer adds {num_special} special "
            f"tokens per input. Pass max_length >= {num_special + 1} (a few dozen tokens or more in practice)."
        )
    sink = skip_first_positions - (num_prefix or 0)  # the least stride that keeps them out of the credit
    if long_texts == "window" and num_prefix is not None and stride < sink:
        if explicit:
            raise ConfigurationError(
                f"stride={stride} credits tokens at the first positions of every window after the first, which "
                f"skip_first_positions={skip_first_positions} leaves out of every model input (a decoder's "
                f"attention sink; the tokenizer puts {num_prefix} special tokens first). Pass stride >= {sink}, or "
                "a lower skip_first_positions."
            )
        stride = sink
    room = max_length - (num_special or 0)
    if num_prefix is not None and sink >= room:  # under "truncate" too: every text would credit nothing
        raise ConfigurationError(
            f"skip_first_positions={skip_first_positions} leaves no token to credit: a model input (a window, or a "
            f"truncated text) holds max_length={max_length} tokens ({num_special} of them special), and its first "
            f"{skip_first_positions} positions are skipped. Lower skip_first_positions or raise max_length."
        )
    if stride >= room:
        holds = (f"({num_special} of them special), so the stride (left context) must be < {room}" if num_special
                 is not None else "(the tokenizer's special tokens included), so the stride (left context) must be "
                 "smaller than max_length minus those special tokens")
        unused = ("" if long_texts == "window" else " A stride only applies to long_texts='window'; under "
                  "'truncate' it is unused but checked all the same (as a tokenizer checks its stride): drop it.")
        raise ConfigurationError(
            f"stride={stride} leaves no new token per window: a window holds max_length={max_length} tokens "
            f"{holds}. Lower stride or raise max_length.{unused}"
        )
    return stride
