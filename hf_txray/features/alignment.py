"""Feature values of token positions: vocabularies, subword-to-span alignment, user feature labels.

Every subword token is aligned to the word (or user span) that contains its first non-space character, using the
tokenizer's offset mapping; tags are word-level and follow the same alignment.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import regex

from ..errors import ConfigurationError

from .registry import UserFeature


class Vocabulary:
    """Interns feature strings to dense integer ids."""

    def __init__(self, items: Iterable[str] = ()):
        self.items: list[str] = []
        self.index: dict[str, int] = {}
        for item in items:
            self.add(item)

    def add(self, item: str) -> int:
        found = self.index.get(item)
        if found is None:
            found = self.index[item] = len(self.items)
            self.items.append(item)
        return found

    def ids(self, values: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.add(v) for v in values), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)


class TokenVocabulary(Vocabulary):
    """Vocabulary of subword token strings, fed with token ids (strings looked up once per distinct id).

    A lookup table indexed by token id makes the mapping one vectorised gather per batch.
    """

    def __init__(self, tokenizer, items: Iterable[str] = ()):
        super().__init__(items)
        self._tokenizer = tokenizer
        self._table = np.full(0, -1, dtype=np.int64)  # token id -> vocabulary id, -1 = not seen yet

    def from_token_ids(self, token_ids: np.ndarray) -> np.ndarray:
        token_ids = np.asarray(token_ids, dtype=np.int64)
        if len(token_ids) == 0:
            return np.zeros(0, dtype=np.int64)
        top = int(token_ids.max()) + 1
        if top > len(self._table):
            self._table = np.concatenate([self._table, np.full(top - len(self._table), -1, dtype=np.int64)])
        mapped = self._table[token_ids]
        if (mapped < 0).any():
            missing = np.unique(token_ids[mapped < 0]).tolist()
            for token_id, token in zip(missing, self._tokenizer.convert_ids_to_tokens(missing)):
                self._table[token_id] = self.add(str(token))
            mapped = self._table[token_ids]
        return mapped


def align_to_spans(starts: np.ndarray, ends: np.ndarray, tok_start: np.ndarray, tok_end: np.ndarray) -> np.ndarray:
    """Index of the span containing each token's first character (spans sorted, non-overlapping); -1 if none.

    Callers pass token starts already moved past leading whitespace (see :func:`first_visible_char`).
    """
    if len(starts) == 0:
        return np.full(len(tok_start), -1, dtype=np.int64)
    candidate = np.searchsorted(ends, tok_start, side="right")
    clipped = np.minimum(candidate, len(starts) - 1)
    ok = (candidate < len(starts)) & (starts[clipped] <= tok_start) & (tok_start < tok_end)
    return np.where(ok, clipped, -1).astype(np.int64)


class BlankPieces:
    """Which token ids are pieces of whitespace alone: the pieces a token's own text is blank for, however the
    tokenizer places its offsets.

    A SentencePiece tokenizer writes the space before a word as ``"▁"``; where no piece joins it to what follows
    (``"▁" "2" "0" ...`` before digits, ``"▁"`` before an emoji), the lone ``"▁"`` is a token of its own, and its
    offsets need not cover a space: Llama's prefix ``"▁"`` takes the text's first character (``(0, 1)``), and T5 (whose
    pre-tokenizer drops the spaces) gives every lone ``"▁"`` the first character of the word after it. Taken from
    the offsets alone, such a token was credited to that word and its tags (a second credit of the first word of
    every such Llama text, while the same ``"▁"`` mid-text covers a space and has no word) and its top examples
    showed the word's first character as its text. A piece is blank when the tokenizer's own decoder turns it alone
    into whitespace or nothing (``"▁"``, ``"Ġ"``, ``"Ċ"``, ``"<0x0A>"``; no WordPiece piece of MiniLM); each id is
    decoded once, when first seen.

    Args:
        tokenizer: a fast tokenizer.
    """

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self._table = np.zeros(0, dtype=np.int8)  # token id -> 0 not decoded yet, 1 blank, 2 not blank

    def __call__(self, token_ids: np.ndarray) -> np.ndarray:
        """A bool per id of `token_ids`: whether its piece is blank."""
        token_ids = np.asarray(token_ids, dtype=np.int64)
        if len(token_ids) == 0:
            return np.zeros(0, dtype=bool)
        top = int(token_ids.max()) + 1
        if top > len(self._table):
            self._table = np.concatenate([self._table, np.zeros(top - len(self._table), dtype=np.int8)])
        unknown = self._table[token_ids] == 0
        if unknown.any():
            missing = np.unique(token_ids[unknown]).tolist()
            for token_id, piece in zip(missing, self._tokenizer.convert_ids_to_tokens(missing)):
                self._table[token_id] = 1 if _blank_piece(self._tokenizer, piece) else 2
        return self._table[token_ids] == 1


def _blank_piece(tokenizer: Any, piece: Any) -> bool:
    if not isinstance(piece, str) or not piece:
        return False
    try:
        return not tokenizer.convert_tokens_to_string([piece]).strip()
    except Exception:  # a decoder that refuses a piece alone: judged by its offsets, as before
        return False


# str.isspace() of every code point up to U+3000 (ideographic space): no code point above it is whitespace
# (tests/test_features.py checks the whole Unicode range).
SPACE_LIMIT = 0x3000
_IS_SPACE = np.array([chr(c).isspace() for c in range(SPACE_LIMIT + 1)] + [False])


def first_visible_char(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Move each token start past leading whitespace (byte-level BPE tokens such as "Ġthe" may include it).

    Args:
        text (`str`): the text the offsets index (in code points).
        starts, ends (`np.ndarray`): int64 ``(tokens,)`` character offsets of the tokens, in ``[0, len(text)]``
            (a start at or past the end is returned as it is).

    Returns:
        ``(tokens,)`` int64: each start moved to the token's first character that is not ``str.isspace()``, or to
        its end when it is all whitespace (``start + len(piece) - len(piece.lstrip())`` for ``piece =
        text[start:end]``), vectorised over the text's code points.
    """
    starts = np.asarray(starts, dtype=np.int64)
    return first_visible_chars([text], np.zeros(len(starts), dtype=np.int64), starts, ends)


def visible_spans(text: str, starts: np.ndarray, ends: np.ndarray, blank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The character spans of one text's tokens as profiles record them (``char_start``/``char_end``).

    Args:
        text (`str`): the text the offsets index.
        starts, ends (`np.ndarray`): int64 ``(tokens,)``, the tokenizer's offsets.
        blank (`np.ndarray`): bool ``(tokens,)``, the pieces of whitespace alone (:class:`BlankPieces`).

    Returns:
        ``(starts, ends)``: each start moved to the token's first visible character (:func:`first_visible_char`), and
        a blank piece's span empty at that start: nothing of the text is its own (Llama's prefix ``"▁"`` has the
        offsets of the text's first character, and T5's lone ``"▁"`` those of the next word's).
    """
    starts = first_visible_char(text, starts, ends)
    return starts, np.where(np.asarray(blank, dtype=bool), starts, np.asarray(ends, dtype=np.int64))


_COMBINING_MARK = regex.compile(r"\p{M}")  # regex, not re: re has no Unicode categories


def with_stripped_marks(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The ends of one text's token spans moved over the combining marks (Unicode categories M*) right after them
    that no token's span covers: an accent-stripping tokenizer (uncased BERT, MiniLM) drops the accent of decomposed
    (NFD) ``"cafe\u0301"`` and ends ``cafe`` before it, so the accent belongs to its letter's token; a tokenizer that
    keeps it (byte-level BPE, byte fallback) gives it tokens of its own, and every token keeps its span.

    Args:
        text (`str`): the text the spans index.
        starts, ends (`np.ndarray`): int64 ``(tokens,)``, the tokens' spans (an empty span is left as it is).

    Returns:
        ``(tokens,)`` int64: the ends.
    """
    import unicodedata

    ends = np.asarray(ends, dtype=np.int64)
    if text.isascii() or len(ends) == 0 or _COMBINING_MARK.search(text) is None:  # most texts: no per-character pass
        return ends
    starts = np.asarray(starts, dtype=np.int64)
    size = len(text)
    depth = np.zeros(size + 1, dtype=np.int64)  # how many tokens cover each character
    np.add.at(depth, np.clip(starts, 0, size), 1)
    np.add.at(depth, np.clip(ends, 0, size), -1)
    covered = np.cumsum(depth)[:size] > 0
    out = ends.copy()
    after = np.minimum(ends, size - 1)  # a non-empty span followed by a character no token covers: few per text
    for i in np.flatnonzero((ends > starts) & (ends < size) & ~covered[after]).tolist():
        end = int(ends[i])
        while end < size and not covered[end] and unicodedata.category(text[end]).startswith("M"):
            end += 1
        out[i] = end
    return out


JOINED_CHARS = 1 << 18  # texts are joined in runs of about this many code points: temporary arrays of a few MB


def first_visible_chars(texts: Sequence[str], owner: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """:func:`first_visible_char` for the tokens of many texts at once (one pass over runs of joined texts instead
    of a dozen numpy calls per text).

    Args:
        texts (`Sequence[str]`): the texts.
        owner (`np.ndarray`): int64 ``(tokens,)``, the text of each token, in non-decreasing order.
        starts, ends (`np.ndarray`): int64 ``(tokens,)`` character offsets of each token in its own text.

    Returns:
        ``(tokens,)`` int64: as :func:`first_visible_char` of each token's text.
    """
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    out = starts.copy()
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if len(starts) == 0 or not sizes.any():
        return out
    chars = np.cumsum(sizes)
    first = 0
    while first < len(texts):  # runs of whole texts of about JOINED_CHARS code points
        last = max(first + 1, int(np.searchsorted(chars, (chars[first] - sizes[first]) + JOINED_CHARS, "right")))
        lo, hi = np.searchsorted(owner, [first, last])
        if hi > lo:
            out[lo:hi] = _visible_in_run(texts[first:last], sizes[first:last], owner[lo:hi] - first,
                                         starts[lo:hi], ends[lo:hi])
        first = last
    return out


def _visible_in_run(texts: Sequence[str], sizes: np.ndarray, owner: np.ndarray, starts: np.ndarray,
                    ends: np.ndarray) -> np.ndarray:
    joined = "".join(texts)
    if joined.isascii():
        codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:  # lone surrogates (never whitespace) pass through as their code points
        codes = np.minimum(np.frombuffer(joined.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32),
                           SPACE_LIMIT + 1)
    space = _IS_SPACE[codes]
    size = sizes[owner]
    base = (np.cumsum(sizes) - sizes)[owner]  # where each token's text starts in `joined`
    inside = (ends > starts) & (starts < size)  # a non-empty piece of its text
    at = base + np.clip(starts, 0, np.maximum(size - 1, 0))
    if not space[at[inside]].any():  # WordPiece and trimmed BPE offsets: nothing to move
        return starts
    # The first visible character at or after every position (past the end when none), capped at its text's end.
    total = len(joined)
    visible = np.where(np.append(space, False), total, np.arange(total + 1))
    next_visible = np.minimum.accumulate(visible[::-1])[::-1]
    moved = np.minimum(next_visible[np.where(inside, at, total)] - base, size)
    return np.where(inside, np.minimum(moved, ends), starts)


USER_FEATURE_SAMPLE = 8  # leading texts a user feature is tried on before the model loads (check_user_features)


def check_user_features(features: Iterable[UserFeature], texts: Iterable[Any]) -> None:
    """Run each user feature on a few sample `texts` (those that are strings) and check what it returns, as the run
    does at every text: a function that raises, returns no list of spans, spans outside the text, overlapping ones
    or labels that are not strings or numbers fails here, before a model is loaded or a corpus tagged, rather than
    at the first batch after both.

    Raises:
        ConfigurationError: as :func:`user_feature_spans`, naming the feature and the text.
        Exception: the function's own, with a note naming the feature and the text.
    """
    texts = [text for text in texts if isinstance(text, str)]
    for feature in features:
        for text in texts:
            user_feature_spans(feature, text)


def user_feature_labels(feature: UserFeature, text: str, tok_start: np.ndarray, tok_end: np.ndarray) -> list[str | None]:
    """Labels of a user feature for the tokens of one text (None where no span covers the token).

    Raises:
        ConfigurationError: `feature.fn` did not return ``(start, end, label)`` spans within the text, in any order
            but without overlaps (a token takes one label), with labels that are not None (named, with the text).
    """
    spans = user_feature_spans(feature, text)
    if not spans:
        return [None] * len(tok_start)
    starts = np.array([s for s, _, _ in spans])
    ends = np.array([e for _, e, _ in spans])
    where = align_to_spans(starts, ends, tok_start, tok_end)
    return [spans[i][2] if i >= 0 else None for i in where]


def _missing_label(label: object) -> bool:
    """None, NaN, pandas' NA or NaT: a missing value (a DataFrame column of labels with gaps), which ``str`` would
    turn into a label "nan" or "<NA>" counted like any other."""
    if label is None or type(label).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(label, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(label))
    return isinstance(label, (float, np.floating)) and bool(np.isnan(label))


def user_feature_spans(feature: UserFeature, text: str) -> list[tuple[int, int, str]]:
    """`feature.fn(text)` checked and sorted: non-empty ``(start, end, label)`` spans (empty ones cover nothing)."""
    def refuse(problem: str) -> ConfigurationError:
        return ConfigurationError(f"UserFeature {feature.name!r}: {problem}, for the text {text[:60]!r}. Its function "
                                  "must return (start, end, label) character spans with 0 <= start <= end <= "
                                  "len(text), that do not overlap (a token takes one label), and labels that are "
                                  "strings or numbers, not missing values such as None or NaN (leave a token without "
                                  "a label by leaving it out of every span).")

    try:
        returned = feature.fn(text)
    except Exception as err:  # kept as raised; a bare KeyError from a worker named neither the feature nor the text
        err.add_note(f"hf_txray: raised by the function of UserFeature {feature.name!r}, for the text {text[:60]!r}.")
        raise
    if returned is None:
        raise refuse("the function returned None (return [] for a text without spans)")
    if isinstance(returned, (str, bytes)) or not hasattr(returned, "__iter__"):
        raise refuse(f"the function returned {type(returned).__name__} {returned!r:.60}, not a list of spans")
    spans = []
    for span in returned:
        if isinstance(span, (str, bytes)) or not hasattr(span, "__len__") or len(span) != 3:
            raise refuse(f"{span!r} is not a (start, end, label) triple")
        start, end, label = span
        if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in (start, end)):
            raise refuse(f"the bounds of {span!r} are not integers")
        if _missing_label(label):
            raise refuse(f"{span!r} has the label {label!r}, a missing value")
        if not isinstance(label, (str, int, float, np.generic)):  # a list or dict would be counted by its repr
            raise refuse(f"{span!r} has a label of type {type(label).__name__}; labels are strings (or numbers)")
        if not 0 <= start <= end <= len(text):
            raise refuse(f"{span!r} is not within the text (0 <= start <= end <= {len(text)})")
        if end > start:
            spans.append((int(start), int(end), str(label)))
    spans.sort()
    for before, after in zip(spans, spans[1:]):
        if after[0] < before[1]:
            raise refuse(f"the spans {before!r} and {after!r} overlap")
    return spans
