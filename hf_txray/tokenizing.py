"""Tokenizing a bucket of texts into flat token arrays (ids, special-token mask, offsets, type ids).

A fast tokenizer's ``__call__`` wraps the Rust ``encode_batch`` in a conversion that builds a dict of Python lists per
text, stacks them and wraps them again: on PTB sentences with the MiniLM tokenizer that costs about 1.5 µs per token,
as much as 70% of the Rust encoding itself (``bench/bench_host.py``'s workers). When the tokenizer's class keeps
transformers' own encoding path, :class:`FlatTokenizer` reads the Rust encodings directly. It stays exact by
construction and by check:

* the tokenizer's ``__call__`` / ``_encode_plus`` / ``_convert_encoding`` must be transformers' own (classes that
  override them, e.g. LUKE, LayoutLM, TAPAS, CodeLlama, take the standard path);
* every bucket first runs the standard call on its first text, which sets the backend's truncation, padding,
  special-token splitting and input mode exactly as the standard call of the whole bucket would, and that text's
  arrays must equal the direct ones;
* the first bucket of a process is compared whole (up to :data:`CHECKED_TEXTS` texts).

Any difference switches the tokenizer to the standard path for good (the bucket is tokenized again that way).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterator, Sequence

import numpy as np

from .logging import get_logger

logger = get_logger(__name__)

CHECKED_TEXTS = 64  # texts of a process's first bucket compared whole against the standard call
FIELDS = ("input_ids", "special_tokens_mask", "offset_mapping", "token_type_ids")
# Where transformers' own encoding path is defined: a tokenizer class defining any of these elsewhere is called as is.
_OWN_PATH = {"__call__": "transformers.tokenization_utils_base",
             "_encode_plus": "transformers.tokenization_utils_tokenizers",
             "_convert_encoding": "transformers.tokenization_utils_tokenizers"}


def _keeps_own_path(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or not callable(getattr(backend, "encode_batch", None)):
        return False
    for name, module in _OWN_PATH.items():
        owner = next((c for c in type(tokenizer).__mro__ if name in c.__dict__), None)
        if owner is None or owner.__module__ != module:
            return False
    return True


class FlatTokenizer:
    """Tokenizes texts with offsets and special-token masks into flat int64 arrays, each text's tokens at
    ``bounds[i]:bounds[i + 1]``.

    Args:
        tokenizer: a fast tokenizer (offsets are needed).
        truncate (`bool`): cut texts at `max_length` tokens (the tokenizer's own truncation).
        max_length (`int`, *optional*): with `truncate`.
    """

    def __init__(self, tokenizer: Any, truncate: bool, max_length: int | None):
        self.tokenizer, self.truncate, self.max_length = tokenizer, truncate, max_length
        self.direct = _keeps_own_path(tokenizer)
        self._checked = False  # whether this process compared a whole bucket yet

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_checked": False}  # a new process checks its own first bucket

    def __call__(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``(flat, truncated)``: `flat` holds ``bounds`` and the :data:`FIELDS` the tokenizer returns
        (``offset_mapping`` as ``(tokens, 2)``); `truncated` is a bool per text (the tokenizer's overflow)."""
        texts = list(texts)
        if not self.direct or not texts:
            return self._standard(texts)
        checked = texts if not self._checked else texts[:1]
        reference = self._standard(checked[:CHECKED_TEXTS])  # also sets the backend as the standard call would
        encodings = self.tokenizer._tokenizer.encode_batch(texts, add_special_tokens=True, is_pretokenized=False)
        flat, truncated = _flatten(encodings, "token_type_ids" in reference[0], self.truncate)
        if not _same_head(reference, (flat, truncated)):
            logger.debug("Tokenizer %s: its Rust encodings differ from its standard call; using the standard call.",
                         type(self.tokenizer).__name__)
            self.direct = False
            return self._standard(texts)
        self._checked = True
        return flat, truncated

    def _standard(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        with keeping_first_tokens(self.tokenizer):
            enc = self.tokenizer(
                texts, truncation=self.truncate, max_length=self.max_length if self.truncate else None,
                return_offsets_mapping=True, return_special_tokens_mask=True, return_attention_mask=False,
                verbose=False,
            )
        lists = {name: enc[name] for name in FIELDS if name in enc}
        truncated = np.array([self.truncate and bool(e.overflowing) for e in enc.encodings], dtype=bool)
        return _flat_lists(lists, len(texts)), truncated


@contextlib.contextmanager
def keeping_first_tokens(tokenizer: Any) -> Iterator[None]:
    """Truncate on the right while inside: ``long_texts="truncate"`` keeps a text's first window, and every token
    index refers to the text from its start (a tokenizer whose config says ``truncation_side="left"`` kept the last
    tokens, recorded under the first ones' indices)."""
    side = getattr(tokenizer, "truncation_side", "right")
    if side == "right":
        yield
        return
    tokenizer.truncation_side = "right"
    try:
        yield
    finally:
        tokenizer.truncation_side = side


def _flatten(encodings: list[Any], type_ids: bool, truncate: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    lists = {"input_ids": [e.ids for e in encodings],
             "special_tokens_mask": [e.special_tokens_mask for e in encodings],
             "offset_mapping": [e.offsets for e in encodings]}
    if type_ids:
        lists["token_type_ids"] = [e.type_ids for e in encodings]
    truncated = np.array([truncate and bool(e.overflowing) for e in encodings], dtype=bool)
    return _flat_lists(lists, len(encodings)), truncated


def _flat_lists(lists: dict[str, list], num_texts: int) -> dict[str, np.ndarray]:
    """Per-text token lists as flat int64 arrays: one conversion per field for the whole bucket instead of one per
    text (about a fifth of the encoder's Python time on PTB sentences)."""
    chain = itertools.chain.from_iterable
    lengths = np.fromiter(map(len, lists["input_ids"]), dtype=np.int64, count=num_texts)
    bounds = np.zeros(num_texts + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    total = int(bounds[-1])
    flat = {"bounds": bounds}
    for name, values in lists.items():
        if name == "offset_mapping":
            flat[name] = np.fromiter(chain(chain(values)), dtype=np.int64, count=2 * total).reshape(-1, 2)
        else:
            flat[name] = np.fromiter(chain(values), dtype=np.int64, count=total)
    return flat


def _same_head(reference: tuple[dict[str, np.ndarray], np.ndarray], direct: tuple[dict[str, np.ndarray], np.ndarray]
               ) -> bool:
    """Whether the first texts of `direct` (as many as `reference` holds) equal `reference` exactly."""
    (ref, ref_truncated), (flat, truncated) = reference, direct
    if set(ref) != set(flat):
        return False
    count = len(ref["bounds"]) - 1
    end = int(ref["bounds"][-1])
    return (np.array_equal(ref["bounds"], flat["bounds"][: count + 1])
            and np.array_equal(ref_truncated, truncated[:count])
            and all(np.array_equal(ref[name], flat[name][:end]) for name in ref if name != "bounds"))
