"""FlatTokenizer: the Rust encodings read directly equal the tokenizer's standard call, or the standard call is used."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from models import bert_tokenizer, bpe_tokenizer

TEXTS = ["The quick brown fox.", "", "   ", "Prices rose 42% [SEP] in New York <|endoftext|> said Dr. Smith; " * 4,
         "Zero\u200bwidth, caf\u00e9, \u6f22\u5b57 and \U0001f642 emoji\r\n\ttabs", "a"]


def standard(tokenizer, texts, truncate, max_length):
    from hf_txray.tokenizing import FlatTokenizer

    flat = FlatTokenizer(tokenizer, truncate, max_length)
    flat.direct = False
    return flat(texts)


def assert_same(got, expected):
    (flat, truncated), (ref, ref_truncated) = got, expected
    assert set(flat) == set(ref)
    for name in ref:
        np.testing.assert_array_equal(flat[name], ref[name], err_msg=name)
    np.testing.assert_array_equal(truncated, ref_truncated)


@pytest.mark.parametrize("which", ["bert", "bpe", "bert-split-specials"])
@pytest.mark.parametrize("truncate", [False, True])
def test_direct_encodings_equal_the_standard_call(which, truncate):
    from hf_txray.tokenizing import FlatTokenizer

    tokenizer = copy.deepcopy(bpe_tokenizer() if which == "bpe" else bert_tokenizer())
    tokenizer.split_special_tokens = which.endswith("split-specials")
    flat = FlatTokenizer(tokenizer, truncate, 12 if truncate else None)
    assert flat.direct
    for texts in (TEXTS, TEXTS[::-1], TEXTS[3:4] * 3):  # the first bucket is compared whole, later ones by a text
        assert_same(flat(texts), standard(tokenizer, texts, truncate, 12 if truncate else None))
        assert flat.direct
    assert flat(TEXTS)[1].any() == truncate  # the long text overflows 12 tokens
    split = "token_type_ids" in flat(TEXTS)[0]
    assert split == ("token_type_ids" in tokenizer.model_input_names)


def test_a_tokenizer_class_with_its_own_encoding_path_is_called_as_is():
    from transformers import PreTrainedTokenizerFast

    from hf_txray.tokenizing import FlatTokenizer

    class Suffixing(PreTrainedTokenizerFast):
        def _encode_plus(self, text, *args, **kwargs):
            text = [t + " and more" for t in text] if isinstance(text, list) else text + " and more"
            return super()._encode_plus(text, *args, **kwargs)

    tokenizer = Suffixing(tokenizer_object=copy.deepcopy(bert_tokenizer().backend_tokenizer))
    flat = FlatTokenizer(tokenizer, False, None)
    assert not flat.direct
    ids = flat(["abc def"])[0]["input_ids"]
    np.testing.assert_array_equal(ids, tokenizer("abc def")["input_ids"])
    assert len(ids) == len(tokenizer._tokenizer.encode("abc def and more").ids)


def test_encodings_that_differ_from_the_standard_call_switch_to_it_for_good():
    """A difference the class check cannot see (here forced): the bucket is tokenized again the standard way."""
    from transformers import PreTrainedTokenizerFast

    from hf_txray.tokenizing import FlatTokenizer

    class Suffixing(PreTrainedTokenizerFast):
        def __call__(self, text, *args, **kwargs):
            return super().__call__([t + " and more" for t in text], *args, **kwargs)

    tokenizer = Suffixing(tokenizer_object=copy.deepcopy(bert_tokenizer().backend_tokenizer))
    flat = FlatTokenizer(tokenizer, False, None)
    flat.direct = True  # as if the class check had passed
    texts = ["lower first", "Then UPPER Case"]
    got = flat(texts)
    assert not flat.direct
    assert_same(got, standard(tokenizer, texts, False, None))
    # Another process checks its own first bucket whole
    flat = FlatTokenizer(bert_tokenizer(), False, None)
    flat(TEXTS)
    assert flat._checked and not pickle.loads(pickle.dumps(flat))._checked
