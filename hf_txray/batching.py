"""Turning texts into model inputs plus the features of every creditable position.

Two stages, so the expensive one can run in DataLoader-style worker processes:

* :class:`BatchEncoder` (worker side): tokenize a bucket of texts with offsets, split texts longer than
  ``max_length`` into overlapping windows (or truncate them), align words, compute feature *values* with a
  per-bucket local vocabulary, sort the windows by length and pack them into padded batches under a row and a
  token budget. Only numpy arrays and strings leave it, so it pickles cheaply and needs no shared state.
* :func:`resolve_feature_ids` (main process): map the bucket-local feature values to the run's global
  vocabularies, one dictionary lookup per *distinct* value of a bucket (never per position).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .features import (
    WORD_END,
    WORD_START,
    BlankPieces,
    TokenVocabulary,
    UserFeature,
    Vocabulary,
    align_to_spans,
    first_visible_chars,
    tag_column,
    user_feature_labels,
    with_stripped_marks,
)
from .hashes import text_halves
from .tokenizing import FlatTokenizer, keeping_first_tokens


@dataclass
class PositionBatch:
    """Model inputs and, for each creditable position (real, non-special token), where it is and its features.

    ``positions`` are flat indices into the padded ``(rows, seq)`` grid; ``feature_ids[ft]`` is -1 where the
    position has no value for feature type ``ft``. ``example_id``/``token_index``/``char_start``/``char_end``
    always refer to the original text, also when the row is a window of a longer text; ``half`` is the split half
    of that text (:func:`hf_txray.hashes.text_halves`, the same for all its windows), None in a batch built
    without its texts (the builder then splits by example id parity, as before the halves were drawn from texts).
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
    num_examples: int = 0
    example_id_end: int = 0  # 1 + the largest example id of the texts counted (num_examples), on the first batch
    num_windowed: int = 0  # texts split into several windows (counted on the bucket's first batch)
    # Non-padding input tokens (specials and window context included) of the bucket's texts, on its first batch,
    # counted per text (text_flags) so that a run stopping inside the bucket counts those of the texts it reached.
    num_real_tokens: int = 0
    num_padded_tokens: int = 0  # rows x padded width
    token_ids: np.ndarray | None = None
    local_features: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    # On a bucket's first batch: one row per text of the bucket, (example id, truncated, empty, windowed, input
    # tokens), so that a run that stops inside the bucket (max_positions) counts only the texts it reached.
    text_flags: np.ndarray | None = None
    # On a bucket's first batch: per feature type, the texts with at least one position of the batches that carries
    # a value of it (count_feature_texts), the texts its per-neuron test reads a design effect from.
    num_feature_texts: dict[str, int] = field(default_factory=dict)
    half: np.ndarray | None = None

    @property
    def num_positions(self) -> int:
        return len(self.example_id)

    def select(self, keep: np.ndarray) -> "PositionBatch":
        """The same batch with only the positions where `keep` is true (the model inputs are unchanged)."""
        index = np.nonzero(keep)[0]
        return dataclasses.replace(
            self, positions=self.positions[torch.from_numpy(index)], example_id=self.example_id[index],
            token_index=self.token_index[index], char_start=self.char_start[index], char_end=self.char_end[index],
            feature_ids={ft: ids[index] for ft, ids in self.feature_ids.items()},
            token_ids=None if self.token_ids is None else self.token_ids[index],
            local_features={ft: (ids[index], items) for ft, (ids, items) in self.local_features.items()},
            half=None if self.half is None else self.half[index],
        )


PAD_MULTIPLE = 16  # padded widths are rounded up to this by default (the `pad_to_multiple_of` option)
# pad_to_multiple_of=0: no padding at all; a batch holds rows of one length (bench/RESULTS.md, "Same-length batches")
SAME_LENGTH = 0


def _pad(sequences: list[Any], value: int, limit: int | None = None, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    width = padded_width(int(lengths.max(initial=0)), limit, multiple)
    out = np.full((len(sequences), width), value, dtype=np.int64)
    if lengths.any():  # row by row in one assignment: the mask's true cells, in order, are the rows' tokens
        out[np.arange(width)[None, :] < lengths[:, None]] = np.concatenate([np.asarray(s, dtype=np.int64)
                                                                            for s in sequences])
    return torch.from_numpy(out)


def pads_rows(batch_size: int, multiple: int) -> bool:
    """Whether a run of batches of at most `batch_size` rows, widths rounded up to `multiple`, may feed a row beside
    padding: never with same-length batches (:data:`SAME_LENGTH`) or each row alone at its own width."""
    return multiple != SAME_LENGTH and not (batch_size == 1 and multiple == 1)


def batches_rows(batch_size: int, multiple: int) -> bool:
    """Whether such a run may feed a row with anything beside it (other rows, or padding)."""
    return not (batch_size == 1 and multiple in (1, SAME_LENGTH))


def padded_width(width: int, limit: int | None, multiple: int = PAD_MULTIPLE) -> int:
    """The padded width of a batch whose longest row holds `width` tokens: rounded up to `multiple`, unless that
    passes `limit` (then `limit` itself, so that every batch whose rows round past it runs at one width: a position
    table of 77 rows runs a 66-token row 77 wide in any batch, not 66 alone and 77 beside a longer row). `multiple`
    0 (no padding: a batch holds rows of one length, :data:`SAME_LENGTH`): `width` itself."""
    if multiple == SAME_LENGTH:
        return width
    rounded = max(multiple, -(-width // multiple) * multiple)
    return max(limit, 1) if limit is not None and rounded > limit else rounded  # never past `limit`


def encode(tokenizer, texts: Sequence[str], max_length: int,
           multiple: int = PAD_MULTIPLE) -> tuple[Any, dict[str, torch.Tensor]]:
    """Tokenize with offsets and right-pad ourselves (pad id 0 is masked out; widths rounded up to `multiple`), so
    tokenizers without a pad token (GPT-2, Llama) work unchanged. Texts longer than `max_length` keep their first
    tokens whatever the tokenizer's ``truncation_side``: a word cut at the end is what callers detect and skip, and
    under ``truncation_side="left"`` the word cut at the start was kept with a "first" vector read at a later piece
    of it (``##arian`` of ``antidisestablishmentarianism``: helper 189)."""
    with keeping_first_tokens(tokenizer):
        enc = tokenizer(
            list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True,
            return_special_tokens_mask=True, return_attention_mask=True,
        )
    inputs = {name: _pad(enc[name], 0, max_length, multiple) for name in ("input_ids", "attention_mask", "token_type_ids")
              if name in enc}
    return enc, inputs


def num_prefix_specials(tokenizer) -> int:
    """Special tokens the tokenizer puts before a text's first token (``[CLS]``, BOS): the first positions of every
    model input, window or whole text, before the text's own tokens."""
    mask = tokenizer("a", return_special_tokens_mask=True)["special_tokens_mask"]
    return next((i for i, special in enumerate(mask) if not special), len(mask))


def window_spans(length: int, budget: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows over `length` content tokens: ``(start, credit_from, end)``, half-open.

    A window holds at most `budget` tokens; each window after the first starts `stride` tokens before the end of
    the previous one, and those tokens are context only. Every token is credited exactly once, in the first
    window that holds it, which is the window where it has the most left context.
    """
    spans, start = [], 0
    while True:
        end = min(start + budget, length)
        spans.append((start, start + stride if start else 0, end))
        if end >= length:
            return spans
        start = end - stride


@dataclass
class EncodeOptions:
    """What :class:`BatchEncoder` needs besides the tokenizer (see :func:`hf_txray.analyze` for each field)."""

    max_length: int
    feature_names: tuple[str, ...]
    user_features: dict[str, UserFeature] = field(default_factory=dict)
    long_texts: str = "window"
    stride: int = 0
    batch_size: int = 32
    max_tokens_per_batch: int | None = None
    sort_by_length: bool = True
    pad_multiple: int = PAD_MULTIPLE  # padded widths are rounded up to this (`pad_to_multiple_of`; 0: same-length rows)
    # The widest a padded row may be: the model's position limit (None: no limit), not max_length. A window of
    # max_length=37 tokens then runs 48 wide in every batch: capped at 37, it ran 37 wide in one batch and 35 in
    # another (its own length), and its activations moved by float rounding with the batch it landed in.
    pad_limit: int | None = None
    skip_first_positions: int = 0  # positions with a smaller token index are not credited (still run as context)


@dataclass
class _Segment:
    """One model row: a whole text or one window of it, and which of the text's positions it credits."""

    text: int
    input_ids: np.ndarray
    token_type_ids: np.ndarray | None
    local: np.ndarray  # credited positions within the row
    select: np.ndarray | None  # indices into the text's creditable positions; None: all of them (a whole text)


class _LocalVocab:
    """A bucket's own vocabulary of one feature type; the main process maps it once to global ids."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def ids(self, values: Sequence[str | None]) -> np.ndarray:
        out = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values):
            if value is None:
                out[i] = -1
                continue
            found = self.index.get(value)
            if found is None:
                found = self.index[value] = len(self.items)
                self.items.append(value)
            out[i] = found
        return out


class BatchEncoder:
    """Encodes a bucket of texts into ready-to-run :class:`PositionBatch` es (without global feature ids).

    Args:
        tokenizer: a fast tokenizer (offsets are needed).
        options (`EncodeOptions`): lengths, windows, features and batch budgets.
        annotator (`WordAnnotator`, *optional*): used when a bucket arrives without cached word/tag columns
            (streaming input); in-memory corpora are annotated once, with an on-disk cache, before the run.
    """

    def __init__(self, tokenizer, options: EncodeOptions, annotator=None):
        self.tokenizer, self.options, self.annotator = tokenizer, options, annotator
        truncate = options.long_texts == "truncate"
        self.tokenize = FlatTokenizer(tokenizer, truncate, options.max_length if truncate else None)
        self.blank = BlankPieces(tokenizer)

    def __call__(self, texts: Sequence[str], example_ids: np.ndarray,
                 annotations: dict[str, list] | None = None) -> list[PositionBatch]:
        opts = self.options
        if annotations is None and self.annotator is not None:
            annotations = self.annotator.annotate(list(texts), example_ids.tolist())
        flat, truncated = self.tokenize(texts)
        columns, text_bounds = _creditable(texts, flat, self.blank)
        vocabs = self._add_features(texts, columns, text_bounds, annotations)
        counts = np.diff(text_bounds)
        flags = np.zeros((len(texts), 5), dtype=np.int64)  # example id, truncated, empty, windowed, input tokens
        flags[:, 0] = example_ids
        # no token to credit: blank, only characters the tokenizer drops (zero-width), or only positions that
        # skip_first_positions leaves out (one token under 1): the per-neuron test counts the texts that credit
        skipped = columns["index"] < (opts.skip_first_positions or 0)
        flags[:, 2] = (counts - np.bincount(np.repeat(np.arange(len(texts)), counts)[skipped],
                                            minlength=len(texts))) == 0
        flags[:, 1] = truncated & (flags[:, 2] == 0)
        bounds, cb = flat["bounds"].tolist(), text_bounds.tolist()
        ids, types, index = flat["input_ids"], flat.get("token_type_ids"), columns["index"]
        segments: list[_Segment] = []
        for i in np.flatnonzero(flags[:, 2] == 0).tolist():  # a text that credits nothing is not run at all
            lo, hi = bounds[i], bounds[i + 1]
            new = self._segments(i, ids[lo:hi], None if types is None else types[lo:hi], index[cb[i]: cb[i + 1]])
            flags[i, 3] = len(new) > 1
            flags[i, 4] = hi - lo if len(new) == 1 else sum(len(segment.input_ids) for segment in new)
            segments.extend(new)
        batches = self._pack(segments, columns, text_bounds, (example_ids, text_halves(texts)), vocabs)
        if opts.skip_first_positions:  # here, in the workers, rather than on the main process
            batches = [b.select(b.token_index >= opts.skip_first_positions) for b in batches]
        if not batches:
            batches = [_empty_batch()]
        count_texts(batches[0], flags, count_feature_texts(batches, opts.feature_names))
        return batches

    # ----- per text ---------------------------------------------------------------------------------------------
    def _add_features(self, texts, columns, text_bounds, annotations) -> dict[str, _LocalVocab]:
        """Add to `columns` (see :func:`_creditable`) the bucket-local value ids of every feature type but tokens,
        text by text (the local vocabularies grow in text order); returns those vocabularies."""
        names = [name for name in self.options.feature_names if name != "token"]
        vocabs = {name: _LocalVocab() for name in names}
        if not names:
            return vocabs
        for name in names:
            columns[name] = np.full(len(columns["index"]), -1, dtype=np.int64)
        cb = text_bounds.tolist()
        for i, text in enumerate(texts):
            lo, hi = cb[i], cb[i + 1]
            if lo == hi:
                continue
            starts, ends = columns["start"][lo:hi], columns["end"][lo:hi]
            words = None
            if annotations is not None:
                word_starts = np.asarray(annotations[WORD_START][i], dtype=np.int64)
                word_ends = np.asarray(annotations[WORD_END][i], dtype=np.int64)
                words = align_to_spans(word_starts, word_ends, starts, ends)
            for name in names:
                if name in self.options.user_features:
                    values = user_feature_labels(self.options.user_features[name], text, starts, ends)
                    columns[name][lo:hi] = vocabs[name].ids(values)
                    continue
                if name == "word":
                    per_word = [text[s:e] for s, e in zip(annotations[WORD_START][i], annotations[WORD_END][i])]
                else:
                    per_word = annotations[tag_column(name)][i]
                word_ids = np.append(vocabs[name].ids(per_word), -1)  # index -1 (no word) -> -1
                columns[name][lo:hi] = word_ids[words]
        return vocabs

    def _segments(self, text: int, ids: np.ndarray, types: np.ndarray | None, index: np.ndarray) -> list[_Segment]:
        opts = self.options
        if len(ids) <= opts.max_length:
            return [_Segment(text, ids, types, index, None)]
        # Specials before the first / after the last content token frame every window (e.g. [CLS] ... [SEP]).
        first, last = int(index[0]), int(index[-1]) + 1
        budget = opts.max_length - first - (len(ids) - last)
        out = []
        for start, credit_from, end in window_spans(last - first, budget, opts.stride):
            pick = lambda a: None if a is None else np.concatenate([a[:first], a[first + start: first + end], a[last:]])  # noqa: E731
            select = np.nonzero((index >= first + credit_from) & (index < first + end))[0]
            local = index[select] - (first + start) + first
            out.append(_Segment(text, pick(ids), pick(types), local, select))
        return out

    # ----- packing ----------------------------------------------------------------------------------------------
    def _pack(self, segments, columns, text_bounds, per_text, vocabs) -> list[PositionBatch]:
        opts = self.options
        order = sorted(range(len(segments)), key=lambda s: len(segments[s].input_ids)) if opts.sort_by_length \
            else list(range(len(segments)))
        groups: list[list[_Segment]] = []
        current: list[_Segment] = []
        longest = 0  # of `current`
        for s in order:
            seg = segments[s]
            width = padded_width(max(longest, len(seg.input_ids)), opts.pad_limit, opts.pad_multiple)
            over_tokens = opts.max_tokens_per_batch is not None and width * (len(current) + 1) > opts.max_tokens_per_batch
            # same-length rows (pad_to_multiple_of=0): a row of another length starts the next batch, unpadded
            other_length = opts.pad_multiple == SAME_LENGTH and longest != len(seg.input_ids)
            if current and (len(current) >= opts.batch_size or over_tokens or other_length):
                groups.append(current)
                current, longest = [], 0
            current.append(seg)
            longest = max(longest, len(seg.input_ids))
        if current:
            groups.append(current)
        local_vocabs = {name: vocab.items for name, vocab in vocabs.items()}
        return [self._batch(group, columns, text_bounds, per_text, local_vocabs) for group in groups]

    def _batch(self, group, columns, text_bounds, per_text, local_vocabs) -> PositionBatch:
        """One batch of `group`'s segments; `per_text`: the bucket's (example ids, split halves), text by text."""
        pad = lambda rows: _pad(rows, 0, self.options.pad_limit, self.options.pad_multiple)  # noqa: E731
        input_ids = pad([seg.input_ids for seg in group])
        width = input_ids.shape[1]
        lengths = np.array([len(seg.input_ids) for seg in group])
        inputs = {"input_ids": input_ids,
                  "attention_mask": torch.from_numpy((np.arange(width)[None, :] < lengths[:, None]).astype(np.int64))}
        if group[0].token_type_ids is not None:
            inputs["token_type_ids"] = pad([seg.token_type_ids for seg in group])
        counts = np.array([len(seg.local) for seg in group], dtype=np.int64)
        texts = np.array([seg.text for seg in group], dtype=np.int64)
        take = _group_rows(group, text_bounds, texts)  # rows of `columns`, segment by segment
        positions = np.repeat(np.arange(len(group)) * width, counts) + _cat([seg.local for seg in group])
        batch = PositionBatch(
            inputs=inputs, positions=torch.from_numpy(positions),
            example_id=np.repeat(np.asarray(per_text[0], dtype=np.int64)[texts], counts),
            half=np.repeat(per_text[1][texts], counts),
            token_index=columns["index"][take], char_start=columns["start"][take], char_end=columns["shown_end"][take],
            token_ids=columns["token_id"][take], num_padded_tokens=int(len(group) * width),
        )
        for name, items in local_vocabs.items():
            batch.local_features[name] = (columns[name][take], items)
        return batch


def _creditable(texts: Sequence[str], flat: dict[str, np.ndarray], blank_pieces: BlankPieces | None = None
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The creditable positions (non-special tokens of non-blank texts) of a bucket, text by text: ``(columns,
    text_bounds)``, with ``columns`` holding ``index`` (the token's index in its text's encoding), ``start`` /
    ``end`` (its characters, the start past leading whitespace; an empty span at its start for a piece that
    `blank_pieces` finds blank, such as a lone ``"▁"`` whose offsets cover the next word's first character),
    ``shown_end`` (``end`` moved over the combining marks after it that no token covers, :func:`with_stripped_marks`:
    the ``char_end`` of top examples and the live text, so an accent an accent-stripping tokenizer dropped stays on
    its letter; features keep ``end``) and ``token_id``, text ``i``'s positions at ``text_bounds[i]:text_bounds[i + 1]``. `flat`:
    :class:`~hf_txray.tokenizing.FlatTokenizer`'s arrays."""
    bounds = flat["bounds"]
    num_texts = len(texts)
    text_of = np.repeat(np.arange(num_texts), np.diff(bounds))
    blank = np.fromiter((not text.strip() for text in texts), dtype=bool, count=num_texts)
    chosen = np.flatnonzero((flat["special_tokens_mask"] == 0) & ~blank[text_of])
    owner = text_of[chosen]
    offsets = flat["offset_mapping"]
    ends = offsets[chosen, 1]
    starts = first_visible_chars(texts, owner, offsets[chosen, 0], ends)
    token_ids = flat["input_ids"][chosen]
    if blank_pieces is not None:  # nothing of the text is the token's own: no word, tag or label; an empty span
        ends = np.where(blank_pieces(token_ids), starts, ends)
    columns = {"index": chosen - bounds[owner], "start": starts, "end": ends, "token_id": token_ids}
    text_bounds = np.zeros(num_texts + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=num_texts), out=text_bounds[1:])
    columns["shown_end"] = ends.copy()
    for i in (i for i, text in enumerate(texts) if not text.isascii()):
        lo, hi = text_bounds[i], text_bounds[i + 1]
        columns["shown_end"][lo:hi] = with_stripped_marks(texts[i], starts[lo:hi], ends[lo:hi])
    return columns, text_bounds


def _group_rows(group: Sequence[_Segment], text_bounds: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Indices into a bucket's columns of the positions a batch's segments credit, in segment order."""
    if all(seg.select is None for seg in group):  # whole texts: one run of rows each
        return _ranges(text_bounds[texts], text_bounds[texts + 1])
    return _cat([np.arange(text_bounds[s.text], text_bounds[s.text + 1]) if s.select is None
                 else text_bounds[s.text] + s.select for s in group])


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])``, without a call per range."""
    sizes = ends - starts
    return np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, dtype=np.int64)


def count_texts(first: PositionBatch, flags: np.ndarray, feature_texts: dict[str, int]) -> None:
    """Set a bucket's per-text counts on its `first` batch from the texts' `flags` (rows of :attr:`text_flags`) and
    the texts that carry each feature type (:func:`count_feature_texts` of the bucket's batches)."""
    first.text_flags = flags
    first.num_feature_texts = dict(feature_texts)
    first.num_examples = len(flags)
    first.example_id_end = int(flags[:, 0].max()) + 1 if len(flags) else 0
    first.num_truncated, first.num_empty, first.num_windowed, first.num_real_tokens = (
        int(n) for n in flags[:, 1:].sum(axis=0))


def count_feature_texts(batches: Sequence[PositionBatch], feature_names: Sequence[str]) -> dict[str, int]:
    """Per feature type, the texts of a bucket's `batches` with at least one position that carries a value of it.

    Counted on the positions the batches hold (after ``skip_first_positions`` and the ``max_positions`` selection),
    by example id, so a text split into several windows, in one batch or several, counts once: a bucket holds whole
    texts, so the counts of buckets add up. Every position carries a ``token``; other types are read from the
    bucket-local ids (-1: no value), before :func:`resolve_feature_ids`.
    """
    out = {}
    for name in feature_names:
        ids = [b.example_id if name == "token" else b.example_id[b.local_features[name][0] >= 0]
               for b in batches if b.num_positions]
        out[name] = len(np.unique(np.concatenate(ids))) if ids else 0
    return out


def _empty_batch() -> PositionBatch:
    empty = np.zeros(0, dtype=np.int64)
    return PositionBatch(inputs={}, positions=torch.zeros(0, dtype=torch.long), example_id=empty, token_index=empty,
                         char_start=empty, char_end=empty, token_ids=empty, half=empty)


def to_device(tensor: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """A batch tensor on `device`: pinned memory and a non-blocking copy on CUDA, so the copy overlaps the
    previous batch's kernels."""
    if isinstance(tensor, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(tensor))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def stage(arrays: dict[str, torch.Tensor | np.ndarray], device: torch.device, packed: bool | None = None
          ) -> dict[str, torch.Tensor]:
    """A batch's arrays (model inputs, positions, feature ids) on `device`.

    On CUDA the int64 arrays travel together: packed into one pinned host buffer and moved by one non-blocking
    copy, then viewed apart on the device. One pinned allocation and one copy per batch instead of one per array
    (pinning each of a batch's nine small arrays took 0.6 s of a 12 s GPT-2-size run on an H200). Elsewhere each
    array is moved as by :func:`to_device` (on a CPU: shared, not copied).

    Args:
        arrays (`dict[str, torch.Tensor | np.ndarray]`): host arrays of any shape.
        device (`torch.device`): where they go.
        packed (`bool`, *optional*): pack even off CUDA (the buffer is then not pinned); defaults to CUDA only.

    Returns:
        `dict[str, torch.Tensor]`: the same names, shapes and values, on `device`.
    """
    if not (device.type == "cuda" if packed is None else packed):
        return {name: to_device(value, device) for name, value in arrays.items()}
    host = {name: value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            for name, value in arrays.items()}
    out = {name: to_device(a, device) for name, a in host.items() if a.dtype != np.int64}
    together = {name: a for name, a in host.items() if a.dtype == np.int64}
    buffer = torch.empty(sum(a.size for a in together.values()), dtype=torch.int64, pin_memory=device.type == "cuda")
    flat, start, spans = buffer.numpy(), 0, {}
    for name, a in together.items():
        flat[start: start + a.size] = a.reshape(-1)
        spans[name] = (start, a.shape)
        start += a.size
    moved = buffer.to(device, non_blocking=True)  # the host allocator keeps the buffer until the copy is done
    out.update({name: moved[lo: lo + int(np.prod(shape))].view(shape) for name, (lo, shape) in spans.items()})
    return out


def resolve_feature_ids(batches: Sequence[PositionBatch], vocabs: dict[str, Vocabulary]) -> None:
    """Fill ``feature_ids`` of a bucket's batches from their local values, extending the global `vocabs` with the
    values their positions use (in the order of the local lists).

    Batches of one bucket share their local vocabulary lists, so each is mapped once.
    """
    used: dict[tuple[str, int], np.ndarray] = {}  # (feature type, local list) -> which values some position uses
    for batch in batches:
        for name, (local, items) in batch.local_features.items():
            seen = used.setdefault((name, id(items)), np.zeros(len(items) + 1, dtype=bool))
            seen[local] = True  # -1 (no value) marks the extra last slot
    maps: dict[tuple[str, int], np.ndarray] = {}
    for batch in batches:
        for name, vocab in vocabs.items():
            if name == "token":
                assert isinstance(vocab, TokenVocabulary)
                batch.feature_ids[name] = vocab.from_token_ids(batch.token_ids)
                continue
            if name not in batch.local_features:  # a bucket of empty texts: one batch without positions
                batch.feature_ids[name] = np.zeros(0, dtype=np.int64)
                continue
            local, items = batch.local_features[name]
            mapping = maps.get((name, id(items)))
            if mapping is None:
                seen = used[(name, id(items))]
                mapping = maps[(name, id(items))] = np.append(
                    np.array([vocab.add(v) if seen[i] else -1 for i, v in enumerate(items)], dtype=np.int64), -1)
            batch.feature_ids[name] = mapping[local]


def build_batch(
    texts: Sequence[str],
    first_example_id: int,
    tokenizer,
    max_length: int,
    feature_names: Sequence[str],
    vocabs: dict[str, Vocabulary],
    annotations: dict[str, list] | None = None,
    user_features: dict[str, UserFeature] | None = None,
    skip_first_positions: int = 0,
) -> PositionBatch:
    """Encode `texts` as one truncated batch, in order, and compute the features of every creditable position.

    Args:
        texts: the batch; empty strings yield no position.
        first_example_id: corpus index of ``texts[0]`` (example ids are global so shards merge exactly).
        vocabs: one vocabulary per feature type (``TokenVocabulary`` for ``"token"``), extended in place.
        annotations: word spans and tags from :class:`~hf_txray.features.WordAnnotator`, aligned with `texts`.
        skip_first_positions: positions with a smaller token index are not creditable (a profile's setting).
    """
    options = EncodeOptions(max_length, tuple(feature_names), dict(user_features or {}), long_texts="truncate",
                            batch_size=max(len(texts), 1), sort_by_length=False,
                            skip_first_positions=skip_first_positions)
    batches = BatchEncoder(tokenizer, options)(texts, first_example_id + np.arange(len(texts)), annotations)
    resolve_feature_ids(batches, vocabs)
    return batches[0]
