"""Turning a batch of texts into model inputs plus the features of every creditable position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .features import (
    WORD_END,
    WORD_START,
    TokenVocabulary,
    UserFeature,
    Vocabulary,
    align_to_spans,
    first_visible_char,
    tag_column,
    user_feature_labels,
)


@dataclass
class PositionBatch:
    """Model inputs and, for each creditable position (real, non-special token), where it is and its features.

    ``positions`` are flat indices into the padded ``(batch, seq)`` grid; ``feature_ids[ft]`` is -1 where the
    position has no value for feature type ``ft``.
    """

    inputs: dict[str, torch.Tensor]
    positions: torch.Tensor
    example_id: np.ndarray
    token_index: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    feature_ids: dict[str, np.ndarray] = field(default_factory=dict)
    num_truncated: int = 0
    num_empty: int = 0

    @property
    def num_positions(self) -> int:
        return len(self.example_id)

    def select(self, keep: np.ndarray) -> "PositionBatch":
        """The same batch with only the positions where `keep` is true (the model inputs are unchanged)."""
        index = np.nonzero(keep)[0]
        return PositionBatch(
            inputs=self.inputs, positions=self.positions[torch.from_numpy(index)], example_id=self.example_id[index],
            token_index=self.token_index[index], char_start=self.char_start[index], char_end=self.char_end[index],
            feature_ids={ft: ids[index] for ft, ids in self.feature_ids.items()}, num_truncated=self.num_truncated,
            num_empty=self.num_empty,
        )


PAD_MULTIPLE = 16


def _pad(sequences: list[list[int]], value: int, limit: int | None = None) -> torch.Tensor:
    # Widths rounded up to a multiple of 16: few distinct tensor shapes keep the allocator from fragmenting
    # (resident memory would otherwise creep up with the corpus) at the cost of a little extra padding.
    width = max((len(s) for s in sequences), default=0)
    rounded = max(PAD_MULTIPLE, -(-width // PAD_MULTIPLE) * PAD_MULTIPLE)
    width = max(width, 1) if limit is not None and rounded > limit else rounded  # never past max_length
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def encode(tokenizer, texts: Sequence[str], max_length: int) -> tuple[Any, dict[str, torch.Tensor]]:
    """Tokenize with offsets and right-pad ourselves (pad id 0 is masked out), so tokenizers without a pad token
    (GPT-2, Llama) work unchanged."""
    enc = tokenizer(
        list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True,
        return_special_tokens_mask=True, return_attention_mask=True,
    )
    inputs = {name: _pad(enc[name], 0, max_length) for name in ("input_ids", "attention_mask", "token_type_ids")
              if name in enc}
    return enc, inputs


def _is_truncated(text: str, offsets: list[tuple[int, int]], max_length: int) -> bool:
    if len(offsets) < max_length:
        return False
    last_end = max((e for _, e in offsets), default=0)
    return last_end < len(text.rstrip())


def build_batch(
    texts: Sequence[str],
    first_example_id: int,
    tokenizer,
    max_length: int,
    feature_names: Sequence[str],
    vocabs: dict[str, Vocabulary],
    annotations: dict[str, list] | None = None,
    user_features: dict[str, UserFeature] | None = None,
) -> PositionBatch:
    """Encode `texts` and compute the features of every creditable position.

    Args:
        texts: the batch; empty strings yield no position.
        first_example_id: corpus index of ``texts[0]`` (example ids are global so shards merge exactly).
        vocabs: one vocabulary per feature type (``TokenVocabulary`` for ``"token"``), extended in place.
        annotations: word spans and tags from :class:`~hf_txray.features.WordAnnotator`, aligned with `texts`.
    """
    enc, inputs = encode(tokenizer, texts, max_length)
    width = inputs["input_ids"].shape[1]
    flat, ex, tok, cs, ce, token_ids = [], [], [], [], [], []
    word_index: list[np.ndarray] = []
    user_labels: dict[str, list] = {name: [] for name in (user_features or {})}
    truncated = empty = 0
    word_offset = np.cumsum([0] + [len(w) for w in annotations[WORD_START]]) if annotations is not None else None
    for i, text in enumerate(texts):
        if not text.strip():
            empty += 1
            continue
        offsets = enc["offset_mapping"][i]
        truncated += _is_truncated(text, offsets, max_length)
        keep = np.asarray(enc["special_tokens_mask"][i], dtype=np.int64) == 0
        idx = np.nonzero(keep)[0]
        if len(idx) == 0:
            continue
        ends = np.array([offsets[j][1] for j in idx], dtype=np.int64)
        starts = first_visible_char(text, np.array([offsets[j][0] for j in idx], dtype=np.int64), ends)
        flat.append(i * width + idx)
        ex.append(np.full(len(idx), first_example_id + i, dtype=np.int64))
        tok.append(idx.astype(np.int64))
        cs.append(starts)
        ce.append(ends)
        token_ids.append(np.asarray(enc["input_ids"][i], dtype=np.int64)[idx])
        if annotations is not None:
            word_index.append(_words_for_tokens(annotations[WORD_START][i], annotations[WORD_END][i], starts, ends,
                                                offset=int(word_offset[i])))
        for name, feature in (user_features or {}).items():
            user_labels[name].extend(user_feature_labels(feature, text, starts, ends))
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
    batch = PositionBatch(
        inputs=inputs, positions=torch.from_numpy(cat(flat)), example_id=cat(ex), token_index=cat(tok),
        char_start=cat(cs), char_end=cat(ce), num_truncated=truncated, num_empty=empty,
    )
    words = cat(word_index)
    for name in feature_names:
        batch.feature_ids[name] = _feature_ids(name, vocabs[name], cat(token_ids), words, texts, annotations,
                                               batch, user_labels.get(name))
    return batch


def _words_for_tokens(word_starts, word_ends, tok_start, tok_end, offset: int) -> np.ndarray:
    """Index (in the batch's flattened word list) of each token's word, -1 where none."""
    local = align_to_spans(np.asarray(word_starts, dtype=np.int64), np.asarray(word_ends, dtype=np.int64),
                           tok_start, tok_end)
    return np.where(local >= 0, local + offset, -1)


def _feature_ids(name, vocab, token_ids, words, texts, annotations, batch, labels) -> np.ndarray:
    if name == "token":
        assert isinstance(vocab, TokenVocabulary)
        return vocab.from_token_ids(token_ids) if len(token_ids) else np.zeros(0, dtype=np.int64)
    if labels is not None:
        return _ids_or_missing(vocab, labels)
    if name == "word":
        flat_text = [t for i, t in enumerate(texts) for _ in annotations[WORD_START][i]]
        flat_start = [s for i in range(len(texts)) for s in annotations[WORD_START][i]]
        flat_end = [e for i in range(len(texts)) for e in annotations[WORD_END][i]]
        values = [flat_text[w][flat_start[w]:flat_end[w]] if w >= 0 else None for w in words]
        return _ids_or_missing(vocab, values)
    tags = [t for per_text in annotations[tag_column(name)] for t in per_text]
    return _ids_or_missing(vocab, [tags[w] if w >= 0 else None for w in words])


def _ids_or_missing(vocab: Vocabulary, values: list[str | None]) -> np.ndarray:
    return np.fromiter((vocab.add(v) if v is not None else -1 for v in values), dtype=np.int64, count=len(values))
