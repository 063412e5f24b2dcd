"""Word and POS alignment of the engine checked on gold data: UD English EWT dev, with the real MiniLM tokenizer.

Each sentence's text is rebuilt from its CoNLL-U tokens (a space after each unless ``SpaceAfter=No``), so the
character span of every gold word is known. The texts go through the engine's own path: `WordAnnotator` (spaCy
words and UPOS) and `build_batch` (subword tokens -> word and POS feature of every position).
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hf_txray.batching import build_batch
from hf_txray.features import WORD_END, WORD_START, TokenVocabulary, Vocabulary, WordAnnotator, tag_column
from models import bert_tokenizer
from reference import spacy_pipeline

NUM_SENTENCES = 300
CONLLU = Path("ud-english-ewt") / "en_ewt-ud-dev.conllu"
FEATURES = ["token", "word", "pos"]
MIN_GOLD_AGREEMENT = 0.92  # measured 0.944 on these 300 sentences (spaCy en_core_web_sm 3.8.0)


@dataclass
class GoldWord:
    start: int
    end: int
    form: str
    upos: str


def rebuild_sentence(rows: list[list[str]]) -> tuple[str, list[GoldWord]]:
    """The sentence text and its gold words with character spans. Multi-word tokens ("didn't" = did + n't) put
    their surface form in the text; their words get spans only when the word forms spell the surface form."""
    text, words, i = "", [], 0
    while i < len(rows):
        ident, form, misc = rows[i][0], rows[i][1], rows[i][9]
        if "." in ident:  # empty node: no surface text
            i += 1
            continue
        start = len(text)
        text += form
        if "-" in ident:
            first, last = map(int, ident.split("-"))
            parts = rows[i + 1: i + 2 + last - first]
            if "".join(p[1] for p in parts) == form:
                at = start
                for part in parts:
                    words.append(GoldWord(at, at + len(part[1]), part[1], part[3]))
                    at += len(part[1])
            i += 1 + len(parts)
        else:
            words.append(GoldWord(start, len(text), form, rows[i][3]))
            i += 1
        if "SpaceAfter=No" not in misc.split("|"):
            text += " "
    return text.rstrip(" "), words


def read_conllu(path: Path, limit: int) -> list[tuple[str, list[GoldWord]]]:
    sentences, rows = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line:
            if rows:
                sentences.append(rebuild_sentence(rows))
                rows = []
                if len(sentences) == limit:
                    break
        elif not line.startswith("#"):
            rows.append(line.split("\t"))
    return sentences


@dataclass
class Aligned:
    texts: list[str]
    gold: list[list[GoldWord]]
    annotations: dict
    batch: object
    vocabs: dict
    word_of_position: np.ndarray  # index of each position's word in its text's annotated words (-1: none)


@functools.cache
def aligned(data_dir: Path) -> Aligned:
    sentences = read_conllu(data_dir / CONLLU, NUM_SENTENCES)
    texts = [text for text, _ in sentences]
    tokenizer = bert_tokenizer()
    annotations = WordAnnotator(["pos"]).annotate(texts)
    vocabs = {"token": TokenVocabulary(tokenizer), "word": Vocabulary(), "pos": Vocabulary()}
    batch = build_batch(texts, 0, tokenizer, tokenizer.model_max_length, FEATURES, vocabs, annotations)
    # Recover which annotated word the engine gave each position: the one whose text it reports and that contains
    # the token's first character. Exactly one must qualify, otherwise the word is shifted.
    word_of_position = np.full(batch.num_positions, -1, dtype=np.int64)
    for p in range(batch.num_positions):
        e, start, fid = int(batch.example_id[p]), int(batch.char_start[p]), int(batch.feature_ids["word"][p])
        if fid < 0:
            continue
        word = vocabs["word"].items[fid]
        spans = zip(annotations[WORD_START][e], annotations[WORD_END][e])
        matches = [j for j, (ws, we) in enumerate(spans) if ws <= start < we and texts[e][ws:we] == word]
        if len(matches) == 1:
            word_of_position[p] = matches[0]
    return Aligned(texts, [gold for _, gold in sentences], annotations, batch, vocabs, word_of_position)


@pytest.fixture
def ewt(shared_data) -> Aligned:
    return aligned(shared_data)


def fold(s: str) -> str:
    """Lower case without accents, as the uncased MiniLM tokenizer sees text."""
    return "".join(c for c in unicodedata.normalize("NFD", s.lower()) if not unicodedata.combining(c))


def test_rebuilt_texts_match_the_treebank_text_comments(shared_data):
    comments = [line[len("# text = "):] for line in (shared_data / CONLLU).read_text(encoding="utf-8").splitlines()
                if line.startswith("# text = ")][:NUM_SENTENCES]
    texts = [text for text, _ in read_conllu(shared_data / CONLLU, NUM_SENTENCES)]
    assert len(texts) == NUM_SENTENCES
    same = sum(t == c for t, c in zip(texts, comments))
    assert same / NUM_SENTENCES > 0.95  # a few comments keep double spaces that the tokens do not record


def test_every_subword_token_is_aligned_to_a_word_and_a_tag(ewt):
    assert ewt.batch.num_positions > 5000
    assert (ewt.batch.feature_ids["word"] >= 0).all()
    assert (ewt.batch.feature_ids["pos"] >= 0).all()
    assert (ewt.word_of_position >= 0).all(), "a token's reported word does not contain its first character"


def test_tokens_are_not_shifted_from_their_words(ewt):
    """A token's word contains the token's characters (modulo case, accents and '##'); a token that runs past its
    word's end (BERT's "didn" over spaCy's "did" + "n't") starts with the whole word."""
    tokens = ewt.vocabs["token"].items
    checked = 0
    for p in range(ewt.batch.num_positions):
        token = tokens[ewt.batch.feature_ids["token"][p]]
        if token == "[UNK]":
            continue
        e, j = int(ewt.batch.example_id[p]), int(ewt.word_of_position[p])
        start, end = int(ewt.batch.char_start[p]), int(ewt.batch.char_end[p])
        word_start, word_end = ewt.annotations[WORD_START][e][j], ewt.annotations[WORD_END][e][j]
        piece, word = fold(token.removeprefix("##")), fold(ewt.texts[e][word_start:word_end])
        assert fold(ewt.texts[e][start:end]) == piece, (ewt.texts[e], token, start, end)
        if end <= word_end:
            assert piece in word, (ewt.texts[e], token, word)
        else:
            assert piece.startswith(word), (ewt.texts[e], token, word)
        checked += 1
    assert checked > 0.99 * ewt.batch.num_positions


def test_tags_follow_the_word(ewt):
    """A token's POS is its word's tag."""
    for p in range(ewt.batch.num_positions):
        e, j = int(ewt.batch.example_id[p]), int(ewt.word_of_position[p])
        assert ewt.vocabs["pos"].items[ewt.batch.feature_ids["pos"][p]] == ewt.annotations[tag_column("pos")][e][j]


def test_no_word_is_lost(ewt):
    """Every word gets at least one token, except a word wholly inside a token that began in the word before it
    (BERT's "cannot" over spaCy's "can" + "not"): a token belongs to one word only."""
    used = {(int(e), int(j)) for e, j in zip(ewt.batch.example_id, ewt.word_of_position)}
    spans_by_text: dict[int, list[tuple[int, int]]] = {}
    for e, s, t in zip(ewt.batch.example_id, ewt.batch.char_start, ewt.batch.char_end):
        spans_by_text.setdefault(int(e), []).append((int(s), int(t)))
    num_words = lost = 0
    for e, text in enumerate(ewt.texts):
        for j, (ws, we) in enumerate(zip(ewt.annotations[WORD_START][e], ewt.annotations[WORD_END][e])):
            num_words += 1
            if (e, j) in used:
                continue
            lost += 1
            assert any(s < ws and t >= we for s, t in spans_by_text[e]), f"word {text[ws:we]!r} of {text!r} lost"
    assert lost <= 0.001 * num_words


def test_every_gold_word_is_covered_by_a_token(ewt):
    for e, gold in enumerate(ewt.gold):
        spans = [(int(s), int(t)) for s, t, x in zip(ewt.batch.char_start, ewt.batch.char_end, ewt.batch.example_id)
                 if x == e]
        for word in gold:
            assert any(s < word.end and t > word.start for s, t in spans), (ewt.texts[e], word.form)


def test_tags_are_spacys_own_tags(ewt):
    """The engine runs only some pipeline components; the UPOS it gets must equal the full pipeline's."""
    for doc, tags in zip(spacy_pipeline().pipe(ewt.texts), ewt.annotations[tag_column("pos")]):
        assert tags == [t.pos_ for t in doc if not t.is_space], doc.text


def test_spacy_pos_agrees_with_gold_upos(ewt):
    """For every gold word: the POS the engine gives the first token starting inside it, against gold UPOS."""
    agree = total = 0
    starts = {}
    for p, (e, s) in enumerate(zip(ewt.batch.example_id.tolist(), ewt.batch.char_start.tolist())):
        starts.setdefault(e, []).append((s, p))
    for e, gold in enumerate(ewt.gold):
        for word in gold:
            position = next((p for s, p in starts[e] if word.start <= s < word.end), None)
            total += 1
            if position is not None:
                agree += ewt.vocabs["pos"].items[ewt.batch.feature_ids["pos"][position]] == word.upos
    rate = agree / total
    print(f"spaCy UPOS agreement with EWT gold on {total} words of {NUM_SENTENCES} sentences: {rate:.4f}")
    assert rate >= MIN_GOLD_AGREEMENT
