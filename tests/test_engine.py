"""The profiling engine at scale: streamed input, windows instead of truncation, worker processes, token budgets.

Windows are checked against a brute-force reference written here, on top of tests/reference.py: every window is
built by a plain loop and run through the model alone, and every token takes the activations of the window
where it has the most left context (found by trying all windows).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

import hf_txray
import reference
from hf_txray import ConfigurationError, DatasetError, ModelError, UserFeature
from hf_txray.streaming import BucketPlan, InMemorySource, StreamingSource
from models import SAMPLE_TEXTS, Interrupted, SpanCounter, assert_same_credit, tiny, torch_threads, torchrun
from test_reference import ATOL, CAPACITY, RTOL, assert_same_table

TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]
LONG = [
    " ".join(f"w{i % 7} and the {'quick' if i % 3 else 'slow'} fox" for i in range(30)),
    "Short one.",
    "Prices rose 42% in New York, said Dr. Smith; " * 6,
    "",
    "A middling text that is a little longer than the window of sixteen tokens, surely.",
]
MAX_LENGTH, STRIDE = 16, 4


def analyze(kind="bert", texts=TEXTS, **kwargs):
    model, tokenizer = tiny(kind)
    kwargs.setdefault("features", ("token",))
    return hf_txray.analyze(model, texts, tokenizer=tokenizer, show_progress=False, **kwargs)


def assert_same_profile(a: hf_txray.Profile, b: hf_txray.Profile, exact_vocab: bool = False):
    assert a.meta.num_examples == b.meta.num_examples and a.meta.num_positions == b.meta.num_positions
    np.testing.assert_array_equal(a.neuron_count, b.neuron_count)
    np.testing.assert_allclose(a.neuron_mass, b.neuron_mass, rtol=RTOL, atol=ATOL)
    for ft in a.feature_types:
        mass_a, count_a = reference.profile_table(a, ft)
        mass_b, count_b = reference.profile_table(b, ft)
        assert_same_table(mass_a, count_a, mass_b, count_b)
    cols = ["layer", "neuron", "rank", "example_id", "token_index", "char_start", "char_end", "token", "left", "right"]
    assert a.examples[cols].equals(b.examples[cols])


# ----- streaming ----------------------------------------------------------------------------------------------
@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(SAMPLE_TEXTS)))
    return path


def test_streamed_dataset_gives_the_in_memory_profile(jsonl):
    streamed = datasets.load_dataset("json", data_files=str(jsonl), split="train", streaming=True)
    assert isinstance(streamed, datasets.IterableDataset)
    in_memory = analyze(texts=SAMPLE_TEXTS, features=("token", "word"), max_examples_per_neuron=CAPACITY)
    profile = analyze(texts=streamed, features=("token", "word"), max_examples_per_neuron=CAPACITY)
    assert profile.meta.config["streaming"] and profile.meta.config["text_column"] == "text"
    assert_same_profile(profile, in_memory)


def test_generator_and_num_samples_as_take():
    pulled = []

    def gen():  # a bad row right after the rows asked for: never pulled, never checked (take alone reads one more)
        for text in SAMPLE_TEXTS[:4] + [None]:
            pulled.append(text)
            yield text

    profile = analyze(texts=gen(), num_samples=4)
    assert len(pulled) == 4
    assert profile.meta.num_examples == 4
    assert_same_profile(profile, analyze(texts=SAMPLE_TEXTS[:4]))
    rows = analyze(texts=({"body": t, "n": 1} for t in SAMPLE_TEXTS), text_column="body")
    assert_same_profile(rows, analyze(texts=SAMPLE_TEXTS))

    class Texts:  # iterable, no length (fresh helper 103: refused, though iterables are streams)
        def __iter__(self):
            return iter(SAMPLE_TEXTS)

    assert_same_profile(analyze(texts=Texts()), analyze(texts=SAMPLE_TEXTS))
    with pytest.raises(DatasetError, match=r"an IterableDataset, or a generator or iterable of strings or rows, "
                                           r"got int"):
        analyze(texts=5)


@pytest.mark.parametrize("rows,match", [
    ([{"text": "fine"}, {"text": "fine"}, {"other": "x"}], r"Row 2 has the columns \['other'\], and the first row "
                                                          r"\['text'\].*Pass text_column="),
    ([{"text": "fine"}, {"text": None}], r"missing \(None\) rows, the first at index 1"),
    ([{"text": "fine"}, {"text": "b"}, {"text": 7}], r"Row 2 is int"),
    # helper 137: a generator of bare strings, which datasets accepts lazily (a bare AttributeError before)
    (["a first text", "a second text"], r"Row 0 of the IterableDataset is str \('a first text'\), not a row dict"),
])
def test_streamed_bad_rows_name_the_row(rows, match):
    def gen():
        yield from rows

    with pytest.raises(DatasetError, match=match):
        analyze(texts=datasets.IterableDataset.from_generator(gen), batch_size=1)


def test_a_streamed_none_row_is_named_by_its_place_in_the_stream_as_read(tmp_path):
    """Helper 227: after a filter (or shuffle, skip) the position of a None row in the stream is not its row in the
    file (34 against the file's 37): the message says which it names."""
    rows = [{"text": f"text {i}" if i != 5 else None, "keep": i % 2 == 1} for i in range(8)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = datasets.load_dataset("json", data_files=str(tmp_path / "t.jsonl"), split="train", streaming=True)
    with pytest.raises(DatasetError, match=r"the first at index 2 of the stream as read \(after its shuffle, filter, "
                                           r"skip or take steps, if any: not necessarily the row of a file\)"):
        analyze(texts=data.filter(lambda r: r["keep"]), batch_size=1)


def test_a_stream_whose_later_file_is_broken_names_the_row_and_the_file(tmp_path, caplog):
    """Helper 160: a data file a stream reaches late failed mid-run with datasets' traceback and its log of the
    reader's whole message; a generator's own error the same. One DatasetError now, naming the last row read, the
    file, the reader's cause and the fix, and nothing of datasets' log on the screen."""
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in SAMPLE_TEXTS))
    (tmp_path / "b.jsonl").write_text('{"text": "fine"}\n{broken\n')
    data = datasets.load_dataset("json", data_files=[str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")],
                                 split="train", streaming=True)
    last = len(SAMPLE_TEXTS) - 1
    with caplog.at_level("ERROR"), pytest.raises(
            DatasetError, match=rf"The stream failed after row {last}, in its file '.*b\.jsonl' \(cause: "
                                r"ArrowInvalid: JSON parse error.*\)\. Fix or remove that file.*num_samples"):
        analyze(texts=data, batch_size=1)
    assert not [r for r in caplog.records if "Failed to" in r.getMessage()]

    def failing():
        yield {"text": "fine"}
        raise OSError("the network share went away")

    with pytest.raises(DatasetError, match=r"failed after row 0 \(cause: OSError: the network share went away\).*"
                                           r"Fix the source at fault \(a data file .*; a generator: its own error\)"):
        analyze(texts=datasets.IterableDataset.from_generator(failing), batch_size=1)

    def failing_at_once():  # helper 178: "failed after row (none)"
        raise OSError("the network share went away")
        yield {"text": "never"}

    with pytest.raises(DatasetError, match=r"The stream failed before its first row \(cause: OSError: the network "):
        analyze(texts=datasets.IterableDataset.from_generator(failing_at_once), batch_size=1)


@pytest.mark.parametrize("fmt", ["csv", "json", "list"])
def test_missing_rows_advice_fits_the_format(tmp_path, fmt):
    """The CSV advice (keep_default_na) only for data that datasets read as CSV; JSON's null and a row without the key
    both read as None."""
    texts = ["fine", "NA" if fmt == "csv" else None, "fine"]
    if fmt == "csv":
        (tmp_path / "t.csv").write_text("text\n" + "\n".join(texts) + "\n")
        data = datasets.load_dataset("csv", data_files=str(tmp_path / "t.csv"), split="train", streaming=True)
    elif fmt == "json":
        (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        data = datasets.load_dataset("json", data_files=str(tmp_path / "t.jsonl"), split="train", streaming=True)
    else:
        data = datasets.IterableDataset.from_generator(lambda: ({"text": t} for t in texts))
    with pytest.raises(DatasetError, match=r"missing \(None\) rows, the first at index 1") as raised:
        analyze(texts=data, batch_size=1)
    message = str(raised.value)
    assert ("keep_default_na=False" in message) == (fmt == "csv")
    assert ("In JSON" in message) == (fmt == "json")


def test_progress_counts_the_tokens_the_model_ran(capsys):
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, (t for t in SAMPLE_TEXTS), tokenizer=tokenizer, features=("token",),
                               show_progress=True)
    shown = re.findall(r"tokens=(\d+)", capsys.readouterr().err)
    assert shown and int(shown[-1]) == profile.meta.num_input_tokens > profile.meta.num_positions


def test_a_stream_whose_rows_change_columns_after_the_first_names_the_fix():
    """Fresh helper 103: the text column of a stream that declares no columns is chosen from its first row; a
    first row holding only a title profiled every title, silently, though the later rows held a text."""
    rows = [{"title": "A title"}] + [{"title": "t", "text": text} for text in SAMPLE_TEXTS]
    with pytest.raises(DatasetError, match=r"Row 1 has the columns \['text', 'title'\], and the first row "
                                           r"\['title'\].*text_column=\.\.\. \(CLI: --text-column\)"):
        analyze(texts=iter(rows))
    with pytest.raises(DatasetError, match=r"'text' not found in row 0; its columns are: \['title'\]\. Pass "
                                           r"text_column="):
        analyze(texts=iter(rows), text_column="text")
    assert_same_profile(analyze(texts=iter(rows[1:])), analyze(texts=SAMPLE_TEXTS))


@pytest.mark.parametrize("fmt", ["arrow", "pandas", "numpy"])
def test_a_formatted_stream_is_read_as_rows(jsonl, fmt):
    """Fresh helper 103: a stream formatted as "arrow" or "pandas" yields tables, and was refused with a message
    that blamed its text column; the same Dataset in memory was profiled."""
    streamed = datasets.load_dataset("json", data_files=str(jsonl), split="train", streaming=True)
    assert_same_profile(analyze(texts=streamed.with_format(fmt)), analyze(texts=SAMPLE_TEXTS))


@pytest.mark.parametrize("strategy", ["examples", None])
def test_a_stream_already_split_by_node_is_refused_under_several_processes(jsonl, strategy):
    """Fresh helper 103: a stream the user split with split_dataset_by_node (the datasets recipe for DDP) was split
    again: half the corpus skipped with no error, and its example ids pointing at other texts (or, with the default
    strategy, a bare ValueError from datasets). In one process, a part given on purpose is profiled as given."""
    from datasets.distributed import split_dataset_by_node

    streamed = datasets.load_dataset("json", data_files=str(jsonl), split="train", streaming=True)
    part = split_dataset_by_node(streamed, rank=1, world_size=2, **({"strategy": strategy} if strategy else {}))
    with pytest.raises(DatasetError, match=r"already split with split_dataset_by_node \(the part of rank 1 of 2\)"
                                           r".*Pass the whole stream"):
        StreamingSource(part, "text", 1, 2)
    alone = [t for bucket in StreamingSource(part, "text", 0, 1).buckets(BucketPlan(4), None) for t in bucket.texts]
    assert alone == SAMPLE_TEXTS[1::2]


def test_text_column_messages_name_what_the_user_gave():
    """A text_column for a list of strings names the list, not a 'text' column the user never gave; a nested field
    (a struct column) is pointed to dataset.flatten() (helper 217)."""
    with pytest.raises(DatasetError, match=r"text_column='body' names a column, but the dataset is a sequence of "
                                           r"strings"):
        analyze(texts=["one text", "another"], text_column="body")
    nested = datasets.Dataset.from_list([{"meta": {"text": "a b"}}, {"meta": {"text": "c d"}}])
    for column in (None, "meta.text"):
        with pytest.raises(DatasetError, match=r"dataset\.flatten\(\) names it 'meta\.text'"):
            analyze(texts=nested, text_column=column)
    flat = nested.flatten()
    assert hf_txray.loading.load_corpus(flat, text_column="meta.text")[1] == "meta.text"
    numbers = datasets.Dataset.from_dict({"a": [1, 2], "b": [0.5, 1.0]})  # no struct column: no flatten() hint
    with pytest.raises(DatasetError, match="it has no string column") as refused:
        analyze(texts=numbers)
    assert "flatten" not in str(refused.value)


@pytest.mark.parametrize("options", [{}, {"text_column": "text"}, {"streaming": True}])
def test_a_json_file_keeping_its_rows_in_a_field_is_pointed_to_field(tmp_path, options):
    """Helper 314: a JSON file {"data": [{"text": ...}, ...]} (SQuAD's layout) reads as one row whose column 'data'
    lists the rows; it was refused as "it has no string column: pass text_column=..." (or "Text column 'text' not
    found"), which cannot help: the fix is load_dataset("json", field="data"). With "version": "1" beside (SQuAD
    keeps "version": "v1.1"), that string was the only string column, so the run profiled the one text "1"."""
    path = tmp_path / "nested.json"
    path.write_text(json.dumps({"version": "1", "data": [{"text": "a b"}, {"text": "c d"}]}), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"The column 'data' holds a list of rows.*load_dataset\('json', "
                                           r"data_files=PATH, field='data', split='train'\)"):
        analyze(texts=str(path), **options)
    rows = datasets.load_dataset("json", data_files=str(path), field="data", split="train")
    assert analyze(texts=rows).meta.num_examples == 2


@pytest.mark.parametrize("form", ["dataset", "stream", "generator"])
def test_a_conll_style_dataset_is_refused_not_profiled_by_its_ids(form):
    """Helper 314: CoNLL-style rows (a string 'id', words in 'tokens', tags in 'ner_tags', as conll2003) had one
    string column, 'id', taken as the text column: the ids "0", "1", "2" were profiled as the corpus (3 texts, 6
    credits, no error). The words are the texts: joined into a column, they are profiled."""
    rows = datasets.Dataset.from_dict({"id": ["0", "1", "2"], "tokens": [t.split() for t in TEXTS[:3]],
                                       "ner_tags": [[0] * len(t.split()) for t in TEXTS[:3]]})
    given = {"dataset": rows, "stream": rows.to_iterable_dataset().map(lambda r: r),  # a stream without features
             "generator": (row for row in rows)}[form]
    with pytest.raises(DatasetError, match=r"The column 'tokens' holds lists of strings .*join them into a text "
                                           r"column, dataset\.map\(lambda r: \{'text': ' '\.join\(r\['tokens'\]\)\}\)"):
        analyze(texts=given)
    joined = analyze(texts=rows.map(lambda r: {"text": " ".join(r["tokens"])}))
    assert joined.meta.config["text_column"] == "text" and joined.meta.num_examples == 3


def test_streamed_dataset_without_text_column_lists_the_columns(tmp_path):
    path = tmp_path / "numbers.jsonl"
    path.write_text("".join(json.dumps({"a": i, "b": 0.5}) + "\n" for i in range(3)))
    streamed = datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)
    with pytest.raises(DatasetError, match=r"No text column found among \['a', 'b'\]; it has no string column"):
        analyze(texts=streamed)
    # helper 166: two string columns of no usual name: they are named as the candidates
    two = datasets.Dataset.from_dict({"doc_id": ["d1", "d2"], "utterance": ["hello there", "good bye"]})
    with pytest.raises(DatasetError, match=r"its string columns, one of which holds the texts: 'doc_id', 'utterance'"
                                           r": pass text_column=\.\.\. \(CLI: --text-column"):
        analyze(texts=two)


def test_stream_refused_where_a_dataset_is_needed():
    from hf_txray.loading import load_corpus

    with pytest.raises(DatasetError, match="from_list"):
        load_corpus(datasets.IterableDataset.from_generator(lambda: iter([{"text": "a"}])))


def expected_buckets(lengths, texts, chars, ramp, start=0, index=0):
    """Bucket boundaries by a plain loop: a bucket closes at `texts` texts, or at the first text whose running
    character count reaches `chars`; ramped buckets start at 1/8, 1/4, 1/2 of both."""
    bounds, lo = [], start
    while lo < len(lengths):
        scale = (1 / 8, 1 / 4, 1 / 2)[index] if ramp and index < 3 else 1
        most, budget = max(1, -(-texts * scale // 1)), max(1, -(-chars * scale // 1))
        hi, total = lo, 0
        while hi < len(lengths) and hi - lo < most and total < budget:
            total += lengths[hi]
            hi += 1
        bounds.append((lo, int(hi)))
        lo, index = int(hi), index + 1
    return bounds


@pytest.mark.parametrize("ramp", [False, True])
def test_buckets_close_by_count_or_characters_the_same_in_memory_and_streamed(ramp):
    rng = np.random.default_rng(0)
    texts = ["é" * int(n) for n in rng.choice([0, 3, 40, 400, 2500], size=150, p=[.05, .4, .3, .2, .05])]
    plan = BucketPlan(texts=16, chars=3000, ramp=ramp)
    want = expected_buckets([len(t) for t in texts], 16, 3000, ramp)
    assert len(want) > 150 / 16 + 2  # the character budget cut some buckets short
    memory = InMemorySource(datasets.Dataset.from_dict({"text": texts}), 0, "text")
    stream = StreamingSource(datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(), "text", 0, 1)
    cut = {name: [(int(b.example_ids[0]), int(b.example_ids[-1]) + 1) for b in source.buckets(plan, None)]
           for name, source in (("memory", memory), ("stream", stream))}
    assert cut["memory"] == cut["stream"] == want
    # Resuming from any bucket's state cuts the same buckets as the uninterrupted run (the ramp included).
    states = [b.state for b in memory.buckets(plan, None)]
    for k in (1, 2, 5):
        resumed = [(int(b.example_ids[0]), int(b.example_ids[-1]) + 1) for b in memory.buckets(plan, states[k - 1])]
        assert resumed == want[k:]
    stream_states = [b.state for b in StreamingSource(
        datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(), "text", 0, 1).buckets(plan, None)]
    fresh = StreamingSource(datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(), "text", 0, 1)
    resumed = [(int(b.example_ids[0]), int(b.example_ids[-1]) + 1) for b in fresh.buckets(plan, stream_states[1])]
    assert resumed == want[2:]
    # A checkpoint of an earlier version has no bucket index: the buckets after it are full-size.
    old = {"processed": want[1][1]}
    assert [(int(b.example_ids[0]), int(b.example_ids[-1]) + 1) for b in memory.buckets(plan, old)] == \
        expected_buckets([len(t) for t in texts], 16, 3000, False, start=want[1][1])


def test_ramped_buckets_give_the_same_profile(monkeypatch):
    """With workers on an accelerator the first buckets are 1/8, 1/4, 1/2 of the full size (forced here on the CPU):
    the same profile as full-size buckets inline."""
    import importlib

    analyze_module = importlib.import_module("hf_txray.analyze")
    sizes = []
    real = analyze_module.encode_buckets

    def recording(encoder, buckets, num_workers, read=None):
        for bucket, batches in real(encoder, buckets, num_workers, read):
            sizes.append(len(bucket.example_ids))
            yield bucket, batches

    texts = (TEXTS * 12)[:70]
    inline = analyze(texts=texts, batch_size=2, num_workers=0)
    monkeypatch.setattr(analyze_module, "UNRAMPED_DEVICES", ())
    monkeypatch.setattr(analyze_module, "encode_buckets", recording)
    analyze(texts=texts, batch_size=2, num_workers=0)
    assert sizes == [16] * 4 + [6]  # no workers: nothing to wait for, no ramp
    sizes.clear()
    ramped = analyze(texts=texts, batch_size=2, num_workers=1)
    assert sizes == [2, 4, 8, 16, 16, 16, 8]
    assert_same_profile(ramped, inline)


@pytest.mark.parametrize("stop", ["inside text 20", "end of text 15", "all positions"])
def test_max_positions_counts_do_not_depend_on_where_buckets_end(monkeypatch, stop):
    """A run that stops at max_positions counts the texts before the first position it leaves uncredited (and the
    text of that position if it credited part of it), and only the values it credited, whatever the bucketing:
    inline, workers (buckets by characters), the accelerator ramp, checkpoint intervals. Ending exactly at a bucket's
    end (text 15 inline) still counts the empty texts after it; a quota of every position equals no quota."""
    import importlib

    from hf_txray.reproduce import COUNT_FIELDS, compare_numbers

    texts = [f"text {i} " + "word " * (30 if i % 8 == 7 else 2 + i % 4) + ("" if i % 6 else "tail of it")
             for i in range(40)]  # texts 7, 15... are longer than a window
    texts[3] = texts[9] = texts[16] = texts[17] = texts[38] = texts[39] = " "  # empty texts, two of them last
    _, tokenizer = tiny("gpt2")
    positions = [len(tokenizer(t)["input_ids"]) if t.strip() else 0 for t in texts]
    quota, reached, empty = {"inside text 20": (sum(positions[:20]) + 3, 21, 4),
                             "end of text 15": (sum(positions[:16]), 18, 4),
                             "all positions": (sum(positions), 40, 6)}[stop]
    options = dict(kind="gpt2", texts=texts, batch_size=2, max_length=24, max_positions=quota,
                   features=("token", "word"), skip_first_positions=0)
    inline = analyze(**options)
    runs = [analyze(**options, num_workers=1), analyze(**options, checkpoint_every=3)]
    monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "UNRAMPED_DEVICES", ())
    runs += [analyze(**options, num_workers=1), analyze(**options, checkpoint_every=1)]
    if stop == "all positions":
        runs.append(analyze(**{**options, "max_positions": None}))
    assert inline.meta.num_positions == quota and inline.meta.num_examples == reached
    assert inline.meta.num_empty == empty and inline.meta.num_windowed == (4 if stop == "all positions" else 2)
    # The input tokens are those of the texts it reached (not of the whole last bucket or batch)
    reached_only = analyze(**{**options, "texts": texts[:reached], "max_positions": None})
    assert inline.meta.num_input_tokens == reached_only.meta.num_input_tokens
    counted = (*COUNT_FIELDS, "num_windowed", "num_input_tokens")
    for run in runs:
        assert [getattr(run.meta, f) for f in counted] == [getattr(inline.meta, f) for f in counted]
        for ft in ("token", "word"):
            assert sorted(run.tables[ft].vocab) == sorted(inline.tables[ft].vocab)
        assert compare_numbers(inline, run)[0] and compare_numbers(inline, run)[2] == []
    # Every vocabulary entry is credited somewhere (nothing from the texts past the stop).
    for ft in ("token", "word"):
        table = inline.tables[ft]
        assert set(np.unique(table.feature_ids)) == set(range(len(table.vocab)))


def test_padding_under_max_positions_is_that_of_the_texts_counted():
    """Helper 127: a stop inside a batch counted the input tokens of the texts reached but the padded grid of every
    row that ran (63.5% padding where the texts counted had 45%): both now count the rows of the texts reached."""
    model, tokenizer = tiny("gpt2")
    texts = ["The quick brown fox jumps over the lazy dog, again and again today.", "she sells sea shells",
             "prices rose 42% in New York last year, and more!"]
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    quota = lengths[0] - 1 + 3  # skip_first_positions 'auto' (1): inside text 1, so texts 0 and 1 are counted
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), show_progress=False,
                               batch_size=2, max_positions=quota)
    assert profile.meta.num_positions == quota and profile.meta.num_examples == 2
    # brute force: rows sorted by length, two per batch, each batch padded to its longest rounded up to 16
    order = sorted(range(3), key=lambda i: lengths[i])
    width = {i: -(-max(lengths[j] for j in order[b:b + 2]) // 16) * 16 for b in (0, 2) for i in order[b:b + 2]}
    assert profile.meta.num_input_tokens == lengths[0] + lengths[1]
    assert profile.meta.num_padded_tokens == width[0] + width[1]


def test_padding_under_max_positions_counts_every_window_of_the_stop_text():
    """Helper 244: the stop text's input tokens counted all its windows, the padded grid only those in batches that
    kept a position (a batch of its later windows does not run): show printed 'padding -19.5%' (612 input tokens
    in a grid of 512) for two processes streaming 56 texts under max_positions=300. Every window now counts in both,
    at its batch's width."""
    model, tokenizer = tiny("gpt2")
    text = " ".join(f"word{i} and more" for i in range(40))  # one text of many windows, alone in its bucket
    options = dict(tokenizer=tokenizer, features=("token",), show_progress=False, batch_size=2, max_length=24)
    whole = hf_txray.analyze(model, [text], **options)
    assert whole.meta.num_windowed == 1 and whole.meta.num_padded_tokens > 4 * 24  # more windows than 2 batches
    stopped = hf_txray.analyze(model, [text], max_positions=10, **options)
    assert stopped.meta.num_positions == 10 and stopped.meta.num_examples == 1
    assert stopped.meta.num_input_tokens == whole.meta.num_input_tokens  # the stop text counts whole
    assert stopped.meta.num_padded_tokens == whole.meta.num_padded_tokens  # in both counts


def test_bucket_plan_of_a_profiler(monkeypatch):
    import importlib

    model, tokenizer = tiny("bert")
    config = hf_txray.ProfilerConfig(features=("token",), max_length=64, batch_size=4)
    profiler = hf_txray.Profiler(model, tokenizer, config)
    assert profiler.bucket_plan(200, workers=0) == BucketPlan(texts=32)  # inline: by count only
    assert profiler.bucket_plan(200, workers=2) == BucketPlan(32, 8 * 4 * 64 * 4)  # 8 batches of 4 x 64 tokens
    budget = hf_txray.ProfilerConfig(features=("token",), max_length=64, batch_size=4, max_tokens_per_batch=100)
    assert hf_txray.Profiler(model, tokenizer, budget).bucket_plan(2, workers=1) == BucketPlan(8, 2 * 100 * 4)
    monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "UNRAMPED_DEVICES", ())  # as on a GPU
    assert profiler.bucket_plan(200, workers=2).ramp and not profiler.bucket_plan(200, workers=0).ramp
    # on an accelerator, long texts close a bucket after 2 batches' worth of characters (spread over the workers)
    assert profiler.bucket_plan(200, workers=2) == BucketPlan(32, 2 * 4 * 64 * 4, ramp=True)


@pytest.mark.parametrize("world,num", [(2, 7), (3, 8), (4, 2)])  # uneven shards, and empty ones (4 > 2)
def test_stream_shards_see_every_example_once(world, num):
    texts = [f"text number {i}" for i in range(num)]
    stream = datasets.IterableDataset.from_generator(lambda: ({"text": t} for t in texts))
    seen = {}
    for rank in range(world):
        for bucket in StreamingSource(stream, "text", rank, world).buckets(BucketPlan(3), None):
            for i, text in zip(bucket.example_ids.tolist(), bucket.texts):
                assert i not in seen
                seen[i] = text
    assert seen == dict(enumerate(texts))  # one data shard: ids are the global stream positions


def test_stream_resumes_from_its_state_dict(jsonl, tmp_path):
    texts = TEXTS * 3
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    stream = lambda: datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)  # noqa: E731
    counting = SpanCounter()
    common = dict(batch_size=2, checkpoint_dir=tmp_path / "state", checkpoint_every=1, max_examples_per_neuron=3)
    with pytest.raises(Interrupted):
        analyze(texts=stream(), features=("token", UserFeature("span", SpanCounter(fail_at=10))), **common)
    progress = json.loads((tmp_path / "state" / "rank-0-of-1" / "progress.json").read_text())
    assert progress["processed"] == 8 and "dataset" in progress  # the stream's state_dict()
    resumed = analyze(texts=stream(), features=("token", UserFeature("span", counting)), resume=True, **common)
    assert counting.calls == len(texts) - 8
    full = analyze(texts=texts, features=("token", UserFeature("span", counting)), batch_size=2,
                   max_examples_per_neuron=3)
    assert_same_profile(resumed, full)


# ----- windows ------------------------------------------------------------------------------------------------
def _keep_activations(model, input_ids: list[int], site: str) -> np.ndarray:
    kind = reference.model_kind(model)
    kept = [None] * model.config.num_hidden_layers
    handles = []
    for layer in range(len(kept)):
        if site == "mlp":
            module = model.get_submodule(reference.MLP_MODULE[kind].format(layer))
            handles.append(module.register_forward_pre_hook(
                lambda m, args, layer=layer: kept.__setitem__(layer, args[0].detach().clone())))
        else:
            module = model.get_submodule(reference.BLOCK_MODULE[kind].format(layer))
            handles.append(module.register_forward_hook(
                lambda m, args, out, layer=layer: kept.__setitem__(
                    layer, (out[0] if isinstance(out, (tuple, list)) else out).detach().clone())))
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([input_ids]))
    finally:
        for handle in handles:
            handle.remove()
    return np.stack([k[0].float().numpy() for k in kept])  # (layers, window tokens, neurons)


def windowed_run(model, tokenizer, text, example_id, site, max_length, stride, with_words, with_pos):
    """A TextRun of the whole text whose activations come, per token, from its best window."""
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    content = [i for i in range(len(ids)) if not special[i]]
    if len(ids) <= max_length:
        windows = [list(range(len(ids)))]
    else:
        first, last = content[0], content[-1] + 1
        frame_before, frame_after = list(range(first)), list(range(last, len(ids)))
        room = max_length - len(frame_before) - len(frame_after)
        windows, start = [], first
        while True:
            stop = min(start + room, last)
            windows.append(frame_before + list(range(start, stop)) + frame_after)
            if stop == last:
                break
            start = stop - stride
    best: dict[int, tuple[int, np.ndarray]] = {}
    for window in windows:
        acts = _keep_activations(model, [ids[i] for i in window], site) if window else None
        for position, i in enumerate(window):
            if not special[i] and (i not in best or position > best[i][0]):
                best[i] = (position, acts[:, position])
    num_layers = model.config.num_hidden_layers
    width = next(iter(best.values()))[1].shape[1] if best else 0
    activations = np.zeros((num_layers, len(ids), width), dtype=np.float32)
    for i, (_, acts) in best.items():
        activations[:, i] = acts
    return reference.TextRun(
        example_id=example_id, text=text, tokens=tokenizer.convert_ids_to_tokens(ids),
        offsets=[tuple(o) for o in enc["offset_mapping"]], creditable=sorted(best) if text.strip() else [],
        activations=activations, words=reference.words_of(text, with_pos) if with_words else [],
    )


@functools.cache
def windowed_reference(kind, site, top_k):
    model, tokenizer = tiny(kind)
    runs = [windowed_run(model, tokenizer, t, i, site, MAX_LENGTH, STRIDE, True, False) for i, t in enumerate(LONG)]
    return reference.credit(runs, top_k, ("token", "word"))


@pytest.mark.parametrize("kind,site,top_k,batch_size", [("bert", "mlp", 1, 3), ("gpt2", "residual", 3, 2),
                                                        ("llama", "mlp", 2, 8)])
def test_windows_match_the_brute_force_reference(kind, site, top_k, batch_size):
    profile = analyze(kind, LONG, site=site, top_k=top_k, features=("token", "word"), max_length=MAX_LENGTH,
                      stride=STRIDE, batch_size=batch_size, max_examples_per_neuron=CAPACITY, skip_first_positions=0)
    ref = windowed_reference(kind, site, top_k)
    # Positions credited = the real tokens of the corpus (every non-special token of the full tokenization).
    _, tokenizer = tiny(kind)
    real = sum(sum(1 for m in tokenizer(t, return_special_tokens_mask=True)["special_tokens_mask"] if not m)
               for t in LONG if t.strip())
    assert profile.meta.num_positions == ref.num_positions == real
    assert profile.meta.num_truncated == 0 and profile.meta.num_windowed == 3
    assert profile.meta.num_uncredited == ref.num_uncredited
    for ft in ("token", "word"):
        mass, count = reference.profile_table(profile, ft)
        assert_same_table(mass, count, ref.mass[ft], ref.count[ft])
    expected = ref.top_examples(CAPACITY)
    got = {key: list(zip(g["example_id"], g["token_index"], g["char_start"], g["char_end"]))
           for key, g in profile.examples.sort_values("rank").groupby(["layer", "neuron"])}
    assert got == {key: [(e.example_id, e.token_index, e.char_start, e.char_end) for e in want]
                   for key, want in expected.items()}


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("stride", [0, STRIDE, MAX_LENGTH - 3])
def test_windows_are_the_tokenizers_own_overflow_windows(kind, stride):
    """An independent reference for the windows: transformers' own ``return_overflowing_tokens=True`` with `stride`
    cuts the same windows (each after the first repeats `stride` tokens of left context, framed by the special
    tokens), so crediting each token in the first window that holds it, top-1 and positive, must give the profile's
    counts per neuron and its top examples (example id, token index in the whole text, character end); the texts
    hold accents, CJK, emoji and whitespace runs, across window edges."""
    model, tokenizer = tiny(kind)
    texts = LONG + ["Café déjà vu — naïve résumé 東京 日本語 😀😀 emoji.   \n\n\t   lots    of     space  " * 3]
    profile = analyze(kind, texts, max_length=MAX_LENGTH, stride=stride, skip_first_positions=0,
                      max_examples_per_neuron=CAPACITY)
    counts: dict[tuple[int, int], int] = {}
    credited: dict[tuple[int, int], list[tuple[float, int, int, int]]] = {}
    for example_id, text in enumerate(texts):
        if not text.strip():
            continue
        whole = tokenizer(text, return_special_tokens_mask=True, return_offsets_mapping=True)
        content = [i for i, special in enumerate(whole["special_tokens_mask"]) if not special]
        windows = tokenizer(text, truncation=True, max_length=MAX_LENGTH, stride=stride,
                            return_overflowing_tokens=True, return_special_tokens_mask=True)
        room = sum(1 for special in windows["special_tokens_mask"][0] if not special)
        for k, (ids, special) in enumerate(zip(windows["input_ids"], windows["special_tokens_mask"])):
            acts = _keep_activations(model, ids, "mlp")
            own = [position for position, s in enumerate(special) if not s]
            for c, position in enumerate(own):
                if k and c < stride:  # left context, credited in an earlier window
                    continue
                token = content[k * (room - stride) + c]
                assert whole["input_ids"][token] == ids[position]
                for layer in range(acts.shape[0]):
                    neuron = int(acts[layer, position].argmax())
                    value = float(acts[layer, position, neuron])
                    if value > 0:
                        counts[layer, neuron] = counts.get((layer, neuron), 0) + 1
                        credited.setdefault((layer, neuron), []).append(
                            (value, example_id, token, whole["offset_mapping"][token][1]))
    got = {(layer, int(n)): int(profile.neuron_count[i][n]) for i, layer in enumerate(profile.layers)
           for n in np.flatnonzero(profile.neuron_count[i])}
    assert got == counts
    for (layer, neuron), group in profile.examples.groupby(["layer", "neuron"]):
        want = sorted(credited[layer, neuron], key=lambda c: -c[0])[:len(group)]
        np.testing.assert_allclose(group.sort_values("rank")["activation"], [w[0] for w in want], rtol=1e-5)
        got_places = set(zip(group["example_id"], group["token_index"], group["char_end"]))
        assert got_places == {w[1:] for w in want}


def test_skipped_first_positions_of_later_windows_are_never_credited():
    """skip_first_positions leaves out a model input's first positions (a decoder's attention sink): with windows,
    those of every window. GPT-2 puts no special token first, so a window after the first starts with `stride`
    context tokens: a stride below the skip is refused (it credited a sink position in every later window), the
    default stride rises to the skip, and a profile equals the windowed reference with the text's first positions
    skipped."""
    skip = 5  # above MAX_LENGTH // 4, the default stride
    with pytest.raises(ConfigurationError, match=rf"stride=2 credits tokens at the first positions .* stride >= {skip}"):
        analyze("gpt2", LONG, max_length=MAX_LENGTH, stride=2, skip_first_positions=skip)
    for bert_or_gpt2, too_many in (("gpt2", MAX_LENGTH), ("bert", MAX_LENGTH - 1)):  # BERT: [CLS] first, [SEP] last
        for long_texts in ("window", "truncate"):  # truncated texts too would credit nothing
            with pytest.raises(ConfigurationError, match=rf"skip_first_positions={too_many} leaves no token to credit"):
                analyze(bert_or_gpt2, LONG, max_length=MAX_LENGTH, skip_first_positions=too_many, long_texts=long_texts)
    profile = analyze("gpt2", LONG, features=("token", "word"), max_length=MAX_LENGTH, skip_first_positions=skip,
                      max_examples_per_neuron=CAPACITY)
    assert profile.meta.config["stride"] == skip and profile.meta.num_windowed == 3
    model, tokenizer = tiny("gpt2")
    runs = [windowed_run(model, tokenizer, t, i, "mlp", MAX_LENGTH, skip, True, False) for i, t in enumerate(LONG)]
    ref = reference.credit(runs, 1, ("token", "word"), skip_first_positions=skip)
    assert profile.meta.num_positions == ref.num_positions
    for ft in ("token", "word"):
        mass, count = reference.profile_table(profile, ft)
        assert_same_table(mass, count, ref.mass[ft], ref.count[ft])
    # the text's tokens after its first `skip` are all credited, none of them at a window's first positions
    real = sum(max(0, len(tokenizer(t)["input_ids"]) - skip) for t in LONG if t.strip())
    assert profile.meta.num_positions == real


def test_truncate_keeps_the_first_window_only():
    windows = analyze(texts=LONG, max_length=MAX_LENGTH, stride=STRIDE)
    truncated = analyze(texts=LONG, max_length=MAX_LENGTH, long_texts="truncate")
    assert truncated.meta.num_truncated == 3 and windows.meta.num_truncated == 0
    assert truncated.meta.num_positions < windows.meta.num_positions
    assert truncated.examples["token_index"].max() < MAX_LENGTH <= windows.examples["token_index"].max()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_truncate_keeps_the_first_window_of_a_left_truncating_tokenizer(kind):
    """A tokenizer configured with truncation_side="left" kept the last tokens, credited under the first ones'
    token indices and with the tail's character spans (found by a fresh helper): truncation keeps the first window
    whatever the tokenizer's side, and the tokenizer's setting is left as it was."""
    right = analyze(kind, texts=LONG, max_length=MAX_LENGTH, long_texts="truncate", max_examples_per_neuron=CAPACITY)
    _, tokenizer = tiny(kind)
    tokenizer.truncation_side = "left"
    try:
        left = analyze(kind, texts=LONG, max_length=MAX_LENGTH, long_texts="truncate",
                       max_examples_per_neuron=CAPACITY)
        assert tokenizer.truncation_side == "left"
    finally:
        tokenizer.truncation_side = "right"
    assert_same_profile(left, right, exact_vocab=True)
    examples = left.examples
    assert len(examples) and (examples["char_end"] <= max(map(len, LONG))).all()
    for row in examples.itertuples():  # every example's span is the head of its text
        assert row.token_index < MAX_LENGTH and row.char_start < 80


def test_a_text_of_max_length_tokens_ending_in_characters_without_tokens_is_not_truncated():
    """A text of exactly max_length tokens followed by characters the tokenizer drops (a zero-width space, a soft
    hyphen, NUL) loses nothing: it is not counted as truncated (the offsets' end fell short of the text's)."""
    _, tokenizer = tiny("bert")
    words = " ".join(f"w{i}" for i in range(40))
    ids = tokenizer(words)["input_ids"]
    exact = tokenizer.decode(ids[1:MAX_LENGTH - 1])  # MAX_LENGTH tokens with [CLS] and [SEP]
    assert len(tokenizer(exact)["input_ids"]) == MAX_LENGTH
    texts = [exact + tail for tail in ("", "\u200b", "\xad", "\x00")] + [exact + " more"]
    profile = analyze(texts=texts, max_length=MAX_LENGTH, long_texts="truncate")
    assert profile.meta.num_truncated == 1  # only the one with a word past max_length
    assert profile.meta.num_positions == 5 * (MAX_LENGTH - 2)


@pytest.mark.parametrize("stride", [MAX_LENGTH, MAX_LENGTH + 3, MAX_LENGTH - 2])  # BERT adds 2 specials
def test_stride_leaving_no_new_token_is_refused(stride):
    with pytest.raises(ConfigurationError, match="stride"):
        analyze(texts=LONG, max_length=MAX_LENGTH, stride=stride)


def test_bad_engine_options_are_refused():
    for bad in (dict(long_texts="cut"), dict(num_workers=-1), dict(max_tokens_per_batch=0), dict(stride=-1),
                dict(num_workers=True), dict(max_tokens_per_batch=True), dict(stride=True), dict(stride=2.5),
                dict(max_positions=True), dict(batch_size=True), dict(top_k=True), dict(max_length=32.5),
                dict(max_examples_per_neuron=2.5), dict(skip_first_positions=True)):
        with pytest.raises(ConfigurationError):
            analyze(**bad)
        with pytest.raises(ConfigurationError):  # before any model is loaded
            hf_txray.ProfilerConfig(**bad).validate()
    with pytest.raises(ConfigurationError, match="max_tokens_per_batch=3 is smaller than max_length=32"):
        hf_txray.ProfilerConfig(max_tokens_per_batch=3, max_length=32).validate()
    with pytest.raises(ConfigurationError, match="at least one window"):  # max_length resolved from the model
        analyze(max_tokens_per_batch=3)


# ----- workers and token budgets -------------------------------------------------------------------------------
def test_workers_and_token_budget_give_the_same_profile():
    texts = LONG + TEXTS
    features = ("token", "word", "pos", UserFeature("case", lambda t: [(0, len(t), "x" if t[:1].isupper() else "y")]))
    common = dict(texts=texts, features=features, max_length=MAX_LENGTH, max_examples_per_neuron=CAPACITY)
    inline = analyze(num_workers=0, batch_size=4, **common)
    pooled = analyze(num_workers=1, batch_size=32, max_tokens_per_batch=48, **common)
    assert_same_profile(pooled, inline)
    assert inline.meta.num_input_tokens == pooled.meta.num_input_tokens
    # Length-sorted buckets and a budget of 48 tokens per batch: padding stays small.
    assert pooled.meta.num_padded_tokens >= pooled.meta.num_input_tokens
    assert 1 - pooled.meta.num_input_tokens / pooled.meta.num_padded_tokens < 0.5


@pytest.mark.timeout(120)  # the bug hangs; the test takes ~10 s
def test_workers_run_large_decoder_batches_after_the_parent_used_its_thread_pool():
    """A forked worker inherits the parent's OpenMP state without its threads: its first parallel torch op (a
    decoder batch's position select, past 32768 elements) waited for ever at the pool's barrier, unless the worker
    runs one intra-op thread (the GPU check hung so on its GPT-2-size model)."""
    torch.ones(1 << 20).mul_(2)  # the parent's thread pool is started, as any forward starts it
    texts = [" ".join(["the quick brown fox jumps over the lazy dog"] * 40)] * 40  # windows of 128: ~37k positions
    options = dict(kind="gpt2", texts=texts, batch_size=1024, max_tokens_per_batch=1 << 16)
    pooled = analyze(num_workers=1, **options)
    assert pooled.meta.num_positions > 32768
    assert_same_profile(pooled, analyze(num_workers=0, **options))


def test_pad_to_multiple_of_sets_the_batch_widths():
    from hf_txray.batching import BatchEncoder, EncodeOptions

    _, tokenizer = tiny("bert")
    texts = LONG + TEXTS
    # max_length 21: windows are padded past it, to 32, up to the model's position limit (pad_limit)
    for multiple, max_length, limit in ((1, MAX_LENGTH, None), (16, MAX_LENGTH, None), (16, 21, None), (16, 21, 21)):
        encoder = BatchEncoder(tokenizer, EncodeOptions(max_length, ("token",), stride=STRIDE, batch_size=3,
                                                        pad_multiple=multiple, pad_limit=limit))
        widths = set()
        for batch in encoder(texts, np.arange(len(texts))):
            width, longest = batch.inputs["input_ids"].shape[1], int(batch.inputs["attention_mask"].sum(1).max())
            rounded = -(-longest // 16) * 16
            assert width == (longest if multiple == 1 else limit if limit and rounded > limit else rounded)
            widths.add(width)
        assert max(widths) == (32 if (multiple, max_length, limit) == (16, 21, None) else max_length)
    common = dict(texts=texts, max_length=MAX_LENGTH, batch_size=3, max_examples_per_neuron=CAPACITY)
    rounded, tight = analyze(**common), analyze(pad_to_multiple_of=1, **common)
    assert tight.meta.num_padded_tokens < rounded.meta.num_padded_tokens
    assert tight.meta.num_input_tokens == rounded.meta.num_input_tokens
    np.testing.assert_array_equal(tight.neuron_count, rounded.neuron_count)  # the same winners...
    np.testing.assert_allclose(tight.neuron_mass, rounded.neuron_mass, rtol=1e-5)  # ...to float32 rounding
    assert tight.meta.provenance["options"]["pad_to_multiple_of"] == 1
    for bad in (-1, -16, 2.5, True, "16"):
        with pytest.raises(ConfigurationError, match="pad_to_multiple_of"):
            analyze(pad_to_multiple_of=bad)


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_same_length_batches_pad_nothing_and_give_one_profile_whatever_the_batching(kind):
    """pad_to_multiple_of=0: a batch holds rows of one length (windows and texts sorted by length within a bucket,
    under the same row and token budgets), so no row is padded, a text runs at its own length in any batch, and the
    winners and top examples (their activations included) are the same bit for bit whatever the batching."""
    from hf_txray.batching import BatchEncoder, EncodeOptions

    _, tokenizer = tiny(kind)
    texts = LONG + TEXTS + [text[: 7 * n] for n in range(3, 30) for text in LONG[:1]] + TEXTS
    encoder = BatchEncoder(tokenizer, EncodeOptions(MAX_LENGTH, ("token",), stride=STRIDE, batch_size=4,
                                                    max_tokens_per_batch=40, pad_multiple=0))
    batches = [b for b in encoder(texts, np.arange(len(texts))) if b.inputs]
    rows = [b.inputs["attention_mask"] for b in batches]
    assert all(bool(mask.all()) for mask in rows)  # no padding anywhere
    assert max(len(mask) for mask in rows) > 1 and len({mask.shape[1] for mask in rows}) > 3
    assert all(len(mask) <= 4 and mask.numel() <= 40 for mask in rows)  # the budgets hold
    common = dict(kind=kind, texts=texts, max_length=MAX_LENGTH, max_examples_per_neuron=CAPACITY,
                  pad_to_multiple_of=0)
    runs = [analyze(batch_size=b, max_tokens_per_batch=t, **common) for b, t in ((1, None), (3, None), (64, 64))]
    assert runs[0].meta.num_padded_tokens == runs[0].meta.num_input_tokens
    assert "rows of one length a batch (no padding); padding 0.0%" in hf_txray.display.profile_text(runs[0])
    for other in runs[1:]:
        assert other.meta.num_padded_tokens == other.meta.num_input_tokens
        np.testing.assert_array_equal(other.neuron_count, runs[0].neuron_count)
        np.testing.assert_allclose(other.neuron_mass, runs[0].neuron_mass, rtol=RTOL)  # float32 sums, other order
        assert other.examples.equals(runs[0].examples)
    padded = analyze(**{**common, "pad_to_multiple_of": 16})
    assert padded.meta.num_padded_tokens > runs[0].meta.num_padded_tokens
    np.testing.assert_array_equal(padded.neuron_count, runs[0].neuron_count)  # the same winners...
    np.testing.assert_allclose(padded.neuron_mass, runs[0].neuron_mass, rtol=1e-5)  # ...to float32 rounding


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_a_max_length_off_the_padding_multiple_keeps_activations_independent_of_the_batch(kind):
    """Fresh helper 103: with max_length=21 a batch whose longest row rounded past it (to 32) was padded to that
    row's own length, so the same window ran 19, 20 or 21 wide with its batch, and its activations (top examples,
    near-tied winners) moved by float rounding. Rows are now padded past max_length, up to the model's positions."""
    texts = LONG + TEXTS + [text[: 7 * n] for n in range(3, 12) for text in LONG[:1]]
    common = dict(kind=kind, texts=texts, max_length=21, stride=STRIDE, max_examples_per_neuron=CAPACITY,
                  top_k=2)
    alone, batched = analyze(batch_size=1, **common), analyze(batch_size=32, **common)
    np.testing.assert_array_equal(alone.neuron_count, batched.neuron_count)
    np.testing.assert_array_equal(alone.neuron_mass, batched.neuron_mass)  # bit for bit
    pd.testing.assert_frame_equal(alone.examples, batched.examples)
    assert batched.meta.num_padded_tokens % 16 == 0 and alone.meta.num_padded_tokens % 16 == 0  # no 19-21 wide row


def test_every_module_gets_its_own_mode_back():
    """Fresh helper 105: analyze restored modes with model.train(was_training), which sets every module to the root's
    mode: embeddings frozen in eval mode inside a training model came back training, and Monte Carlo dropout left on
    in an eval model came back off. The profile itself runs in eval mode (no dropout: the same as a model in eval)."""
    model, tokenizer = tiny("bert")
    reference = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    model.train()
    model.embeddings.eval()
    before = {name: module.training for name, module in model.named_modules()}
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert {name: module.training for name, module in model.named_modules()} == before
    assert not model.embeddings.training and model.encoder.training
    np.testing.assert_array_equal(profile.neuron_count, reference.neuron_count)  # dropout was off
    model.eval()
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for dropout in dropouts:
        dropout.train()
    hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert not model.training and all(dropout.training for dropout in dropouts)


class MergingLinear(torch.nn.Linear):
    """A loralib-style layer whose own ``train()`` does more than set a flag: its low-rank update is merged into the
    weight in eval mode and taken out again in train mode."""

    def __init__(self, base: torch.nn.Linear):
        super().__init__(base.in_features, base.out_features)
        self.load_state_dict(base.state_dict())
        generator = torch.Generator().manual_seed(0)
        self.lora_a = torch.nn.Parameter(torch.randn(2, base.in_features, generator=generator) * 0.3)
        self.lora_b = torch.nn.Parameter(torch.randn(base.out_features, 2, generator=generator) * 0.3)
        self.merged = False

    def train(self, mode: bool = True):
        super().train(mode)
        with torch.no_grad():
            if mode == self.merged:  # unmerge for training, merge for eval
                self.weight.add_(self.lora_b @ self.lora_a, alpha=-1.0 if mode else 1.0)
                self.merged = not mode
        return self

    def forward(self, x):
        out = super().forward(x)
        return out if self.merged else out + x @ (self.lora_b @ self.lora_a).T


def test_a_modules_own_train_override_runs_when_its_mode_is_given_back():
    """Fresh helper 292: modes were given back by setting each module's ``training`` flag, past the module's own
    ``train()``: a loralib-style layer merged for the profile stayed merged in a training model (its weight off by the
    update, max |diff| 0.59; a TXRayTrainer run ended with it, and ``save_model`` wrote the merged weight beside the
    update), and transformers' own ``PreTrainedModel.train`` (kernels mode) was skipped the same way."""
    model, tokenizer = tiny("bert")
    layer = MergingLinear(model.encoder.layer[0].intermediate.dense)
    model.encoder.layer[0].intermediate.dense = layer
    model.train()
    weight = layer.weight.detach().clone()
    hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert layer.training and not layer.merged
    torch.testing.assert_close(layer.weight.detach(), weight)
    model.eval()  # merged for eval, and left merged by a profile of the model in eval mode
    hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert not layer.training and layer.merged


class AlwaysOnDropout(torch.nn.Dropout):
    """Monte Carlo dropout whose own ``train()`` refuses eval mode."""

    def train(self, mode: bool = True):
        return super().train(True)


def test_a_module_that_stays_training_after_eval_is_refused_and_every_mode_given_back():
    """Fresh helper 292 (found, not fixed there): a dropout whose own train() refuses eval mode ran its dropout in
    every profile: two runs of analyze on these texts gave masses up to 0.003 apart, without an error. It is refused,
    naming the module, before any forward, with every module's mode and no hook left behind."""
    model, tokenizer = tiny("bert")
    model.encoder.layer[0].output.dropout = AlwaysOnDropout(0.5)
    model.eval()
    assert model.encoder.layer[0].output.dropout.training
    forwards = []
    model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    with pytest.raises(ModelError, match=r"stay in training mode after model.eval\(\) \('encoder.layer.0.output."
                                         r"dropout'\): their own train\(\) keeps them training"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert not forwards
    assert not model.training and model.encoder.layer[0].output.dropout.training
    assert all(not module._forward_hooks and not module._forward_pre_hooks
               for name, module in model.named_modules() if name)  # the recorder's hooks are off again


def test_token_budget_bounds_every_batch():
    from hf_txray.batching import BatchEncoder, EncodeOptions

    _, tokenizer = tiny("bert")
    encoder = BatchEncoder(tokenizer, EncodeOptions(MAX_LENGTH, ("token",), stride=STRIDE, batch_size=32,
                                                    max_tokens_per_batch=40))
    batches = encoder(LONG + TEXTS, np.arange(len(LONG + TEXTS)))
    assert sum(b.num_examples for b in batches) == len(LONG + TEXTS)
    for batch in batches:
        rows, width = batch.inputs["input_ids"].shape
        assert rows * width <= 40 or rows == 1
    widths = [b.inputs["input_ids"].shape[1] for b in batches]
    assert widths == sorted(widths)  # length-sorted


KILLED_RUN = """
import importlib, signal, sys, time
# Ctrl-C raises KeyboardInterrupt even when this test runs in the background: a shell's background jobs (and
# `nohup ... &`) start with SIGINT ignored, which Python then keeps.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
import hf_txray
from models import tiny
analyze_module = importlib.import_module("hf_txray.analyze")
def stuck(self, batch, builder, recorder):  # the main process hangs in its first batch, its worker alive
    print("processing", flush=True)
    time.sleep(120)
analyze_module.Profiler._process = stuck
model, tokenizer = tiny("bert")
hf_txray.analyze(model, ["a text"] * 40, tokenizer=tokenizer, features=("token",), batch_size=2, num_workers=1,
                 show_progress=False)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM", "SIGINT to the group"])
def test_workers_exit_when_the_main_process_is_killed(signal_name):
    """A killed main process cannot stop its pool: each worker notices its parent is gone and exits. Ctrl-C (SIGINT
    to the whole process group) stops the run with the main process's traceback only."""
    import signal
    import subprocess
    import sys

    import psutil

    tests = os.path.dirname(os.path.abspath(__file__))
    main = subprocess.Popen([sys.executable, "-c", KILLED_RUN.format(tests=tests)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    workers: list[int] = []
    try:
        assert main.stdout.readline().strip() == "processing"
        workers = [child.pid for child in psutil.Process(main.pid).children(recursive=True)]
        assert workers and all(_alive(pid) for pid in workers)
        if signal_name.startswith("SIGINT"):
            os.killpg(main.pid, signal.SIGINT)
            try:  # generous: on a loaded 2-core machine a torch process's exit alone can take many seconds
                _, errors = main.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                tree = [psutil.Process(main.pid)] + psutil.Process(main.pid).children(recursive=True)
                states = [(p.pid, p.status(), p.cmdline()[:3]) for p in tree]
                raise AssertionError(f"no exit 120 s after Ctrl-C: {states}") from None
            assert "KeyboardInterrupt" in errors and errors.count("Traceback") == 1, errors
        else:
            main.send_signal(getattr(signal, signal_name))
        main.wait(timeout=30)
        deadline = time.time() + 20
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), f"workers {workers} outlived their parent"
    finally:
        main.kill()
        main.wait()
        for pid in workers:  # a failing run must not leave orphans behind either
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("attempt", range(3))
def test_ctrl_c_while_the_workers_start_stops_the_run(attempt):
    """Ctrl-C as the pool forks its workers (helper 115): it was lost in the parent's fork hooks (the run finished)
    or broke a worker before it ignored SIGINT (a bare BrokenProcessPool). Now it stops the run with one traceback,
    the KeyboardInterrupt, and no worker left."""
    import signal
    import subprocess
    import sys

    import psutil

    tests = os.path.dirname(os.path.abspath(__file__))
    main = subprocess.Popen([sys.executable, "-c", KILLED_RUN.format(tests=tests)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while not workers and main.poll() is None and time.time() < deadline:
            workers = [child.pid for child in psutil.Process(main.pid).children(recursive=True)]
        assert workers, "no worker started"
        os.killpg(main.pid, signal.SIGINT)  # as the first worker appears
        _, errors = main.communicate(timeout=120)
        assert main.returncode != 0 and "KeyboardInterrupt" in errors, errors
        assert errors.count("Traceback") == 1 and "BrokenProcessPool" not in errors, errors
        deadline = time.time() + 20
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        main.kill()
        main.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


CTRL_C_TO_ANOTHER_THREAD = """
import os, signal, sys, threading, time
import numpy as np
sys.path.insert(0, {root!r})
from hf_txray import workers
from hf_txray.streaming import Bucket
signal.signal(signal.SIGINT, signal.default_int_handler)
other = threading.Thread(target=time.sleep, args=(60,), daemon=True)  # as tqdm's monitor: SIGINT not blocked
other.start()
fired = []
def ctrl_c():  # Ctrl-C as the pool forks its first worker, handed by the kernel to the other thread
    if not fired:
        fired.append(True)
        signal.pthread_kill(other.ident, signal.SIGINT)
        time.sleep(0.5)  # Python's handler runs in the main thread at its next check: here, in a fork hook
os.register_at_fork(after_in_parent=ctrl_c)
def encode(texts, example_ids, annotations):
    return []
def read(lo, hi):
    return ["a text"] * (hi - lo), None
buckets = (Bucket(None, np.array([k]), None, {{}}, rows=(k, k + 1)) for k in range(20))
try:
    for _ in workers.encode_buckets(encode, buckets, 1, read):
        pass
except KeyboardInterrupt:
    print("interrupted", fired)
else:
    print("finished", fired)
"""


def test_ctrl_c_handed_to_another_thread_as_the_workers_start_stops_the_run():
    """Ctrl-C goes to the whole process, and the kernel hands it to any thread that does not block it: blocking
    SIGINT in the main thread did not hold it over the fork, and Python's handler raised KeyboardInterrupt in the
    parent's fork hooks, where it was dropped ("Exception ignored in ..."), so the run went on (helper 161: the
    rare CI failure of test_ctrl_c_while_the_workers_start_stops_the_run, a main process still running 120 s
    after Ctrl-C). Deferred, it stops the run once the workers are started."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", CTRL_C_TO_ANOTHER_THREAD.format(root=root)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "interrupted [True]", (done.stdout, done.stderr)
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def _slow_encoder(texts, example_ids, annotations):
    time.sleep(60)  # a bucket still in work when the run stops
    return []


def test_a_stopped_run_stops_its_workers_and_their_manager_at_once(monkeypatch):
    """An error, Ctrl-C or a consumer that stops early terminates the encoding workers, even one in the middle of a
    bucket, and waits for the pool's manager thread to close its wake-up pipe, so the interpreter's exit hook cannot
    write to it while it closes (Python 3.11: a second traceback, "Bad file descriptor", after Ctrl-C)."""
    from concurrent.futures import ProcessPoolExecutor

    from hf_txray import workers
    from hf_txray.streaming import Bucket

    seen = []

    class Recorded(ProcessPoolExecutor):  # the real pool; it only notes what it held when shut down
        def shutdown(self, *args, **kwargs):
            if self._processes is not None:  # not after the first shutdown
                seen.append((self._executor_manager_thread, list(self._processes.values()),
                             self._executor_manager_thread_wakeup))
            super().shutdown(*args, **kwargs)

    def interrupted():
        yield Bucket(["a text"], np.array([0]), None, {})
        time.sleep(1.0)  # the worker is inside its bucket
        raise KeyboardInterrupt

    monkeypatch.setattr(workers, "ProcessPoolExecutor", Recorded)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        list(workers.encode_buckets(_slow_encoder, interrupted(), num_workers=1))
    assert time.perf_counter() - started < 30  # not the 60 s of the bucket in work
    (manager, processes, wakeup), *_ = seen
    assert manager is not None and not manager.is_alive()
    assert wakeup._closed
    assert processes and not any(process.is_alive() for process in processes)


def test_too_many_workers_are_clamped_once(caplog):
    from hf_txray import workers

    monkey = workers._warned_clamp
    workers._warned_clamp = False
    try:
        with caplog.at_level(logging.WARNING, logger="hf_txray"):
            assert workers.resolve_num_workers(10_000, "cpu") == workers.available_cores()
            assert workers.resolve_num_workers(10_000, "cpu") == workers.available_cores()
        assert len([r for r in caplog.records if "num_workers" in r.getMessage()]) == 1
    finally:
        workers._warned_clamp = monkey
    assert workers.resolve_num_workers(None, "cpu") == 0


def test_workers_share_the_cores_among_the_processes_of_a_machine(monkeypatch):
    """Under torchrun / accelerate launch each process starts its own workers: the default and the clamp use this
    process's share of the cores, unless it is bound to fewer cores than its launcher (then that is its share). A
    container's CPU limit binds the launcher too."""
    from hf_txray import workers

    monkeypatch.setattr(workers, "available_cores", lambda: 16)
    monkeypatch.setattr(workers, "_parent_cores", lambda: 16)  # the launcher sees the same 16 cores (a container)
    monkeypatch.setattr(workers, "_warned_clamp", True)
    assert workers.resolve_num_workers(None, "cuda") == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert workers.cores_per_process() == 4
    assert workers.resolve_num_workers(None, "cuda") == 3 and workers.resolve_num_workers(None, "cpu") == 0
    assert workers.resolve_num_workers(10, "cuda") == 4 and workers.resolve_num_workers(2, "cuda") == 2
    for odd in ("", "abc", "0", "-2"):  # not a launcher's value: one process
        monkeypatch.setenv("LOCAL_WORLD_SIZE", odd)
        assert workers.cores_per_process() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert workers.resolve_num_workers(None, "cuda") == 0 and workers.resolve_num_workers(3, "cuda") == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(workers, "_parent_cores", lambda: 64)  # bound to 16 of the launcher's 64 (numactl, Slurm)
    assert workers.cores_per_process() == 16 and workers.resolve_num_workers(None, "cuda") == 8
    monkeypatch.setattr(workers, "_parent_cores", lambda: 32)  # 2 of the 4 on each 16-core NUMA node
    assert workers.cores_per_process() == 8
    monkeypatch.setattr(workers, "_parent_cores", lambda: 0)  # unreadable: share
    assert workers.cores_per_process() == 4


def test_default_workers_are_no_more_than_the_buckets_left(monkeypatch):
    """Left at its default (as on an accelerator, forced here), num_workers starts no worker for a corpus of one
    bucket and at most one per bucket; an explicit value is kept."""
    import importlib

    analyze_module = importlib.import_module("hf_txray.analyze")
    started = []
    real = analyze_module.encode_buckets

    def recording(encoder, buckets, num_workers, read=None):
        started.append(num_workers)
        return real(encoder, buckets, num_workers, read)

    monkeypatch.setattr(analyze_module, "resolve_num_workers", lambda requested, device: 4 if requested is None else requested)
    monkeypatch.setattr(analyze_module, "encode_buckets", recording)
    texts = TEXTS * 3  # 18 texts: buckets of 8 x batch_size texts
    one_bucket = analyze(texts=texts, batch_size=4)
    explicit = analyze(texts=texts, batch_size=4, num_workers=2)
    two_buckets = analyze(texts=texts, batch_size=2)
    inline = analyze(texts=texts, batch_size=2, num_workers=0)
    # 8 texts of 619 characters are one bucket by count (32 texts) but two by characters: the 4th text of a bucket
    # reaches its 2048 (8 batches x 4 rows x 16 tokens x 4 characters)
    long_docs = analyze(texts=[LONG[0]] * 8, batch_size=4, max_length=MAX_LENGTH, stride=STRIDE)
    assert started == [0, 2, 2, 0, 2]
    assert long_docs.meta.num_windowed == 8
    assert_same_profile(explicit, one_bucket)  # the same batches, encoded inline or by the workers
    assert_same_profile(two_buckets, inline)


def test_device_flushes_do_not_change_the_result(monkeypatch):
    from hf_txray import credit

    init = credit.ProfileBuilder.__init__

    def flushing_every_batch(self, *args, **kwargs):  # move to the host after every batch
        init(self, *args, **{**kwargs, "flush_every": 1})

    monkeypatch.setattr(credit.ProfileBuilder, "__init__", flushing_every_batch)
    every_batch = analyze(texts=LONG + TEXTS, max_length=MAX_LENGTH, batch_size=2, max_examples_per_neuron=2)
    monkeypatch.undo()
    once = analyze(texts=LONG + TEXTS, max_length=MAX_LENGTH, batch_size=2, max_examples_per_neuron=2)
    assert_same_profile(every_batch, once)


def test_two_processes_stream_every_example_once(tmp_path):
    """torchrun, 2 gloo processes, --streaming: split_dataset_by_node splits the stream; the gathered profile is
    the single-process in-memory one. The corpus is two data files, one per process: datasets' default would give
    each process one whole file, so example ids (and the split halves of the noise statistics) would not be corpus
    positions, and --num-samples (a take) would be cut per file; examples are interleaved instead."""
    import subprocess

    import treebank
    from test_analyze import _env

    model, tokenizer = tiny("bert")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    lines = treebank.penn["valid"].split("\n")[:41]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-0.txt").write_text("\n".join(lines[:17]), encoding="utf-8")
    (tmp_path / "data" / "part-1.txt").write_text("\n".join(lines[17:]), encoding="utf-8")
    args = ["analyze", str(tmp_path / "model"), str(tmp_path / "data"), "--features", "token,word", "--batch-size",
            "4", "--max-length", "24"]
    for name, extra in (("two", []), ("two-7", ["--num-samples", "7"])):
        subprocess.run(torchrun(2, "txray_cli.py", *args, "--streaming", "--out", str(tmp_path / name), *extra),
                       check=True, env=_env(), timeout=300, capture_output=True)
    with torch_threads(1):  # the single process: the folder in memory in this process, saved and read back
        hf_txray.analyze(str(tmp_path / "model"), str(tmp_path / "data"), features=("token", "word"), batch_size=4,
                         max_length=24, show_progress=False).save_pretrained(tmp_path / "one")
    one = hf_txray.Profile.from_pretrained(tmp_path / "one")
    two = hf_txray.Profile.from_pretrained(tmp_path / "two")
    assert two.meta.config["streaming"] and not one.meta.config["streaming"]
    assert one.meta.num_examples == two.meta.num_examples == 41
    assert one.meta.num_windowed > 0
    assert_same_profile(two, one)
    assert set(two.examples["example_id"]) <= set(range(41))
    np.testing.assert_array_equal(two.neuron_count_odd, one.neuron_count_odd)  # the same split halves
    first_7 = hf_txray.analyze(str(tmp_path / "model"), lines[:7], features=("token", "word"), batch_size=4,
                               max_length=24, show_progress=False)
    assert_same_profile(hf_txray.Profile.from_pretrained(tmp_path / "two-7"), first_7)


def test_a_generator_is_profiled_whole_with_checkpoints_and_is_read_once(tmp_path):
    texts = [f"text number {i} here." for i in range(40)]  # more than the head a checkpoint hashes (16 texts)
    profile = analyze(texts=(t for t in texts), checkpoint_dir=tmp_path / "state")
    assert profile.meta.num_examples == 40
    assert_same_profile(profile, analyze(texts=texts))
    def one_dict():  # one row object, changed between rows: the replayed head must hold each row as it was
        row = {}
        for text in texts:
            row["text"] = text
            yield row

    assert_same_profile(analyze(texts=one_dict(), checkpoint_dir=tmp_path / "dicts"), analyze(texts=texts))
    from hf_txray.loading import load_corpus

    stream, _, _ = load_corpus(iter(texts), allow_streams=True)
    assert [r["text"] for r in stream] == [r["text"] for r in stream] == texts  # its first 64 rows are kept
    stream, _, _ = load_corpus(iter(texts * 2), allow_streams=True)
    assert len(list(stream)) == 80
    with pytest.raises(DatasetError, match="generator can be read only once"):
        next(iter(stream))


def test_the_tag_cache_follows_the_texts_not_the_fingerprint(tmp_path):
    """Helper 165: a `map` whose output depends on a file outside its function keeps the dataset's fingerprint
    while the texts change; the tag cache, keyed by the fingerprint, served the earlier dataset's texts (tokens,
    counts and tags all wrong). Keyed by the texts' hash and holding the tags alone, it tags the new texts, and
    the dataset's other columns are its own."""
    source = tmp_path / "source.txt"
    base = datasets.Dataset.from_dict({"n": list(range(4))})

    def load(row):
        return {"text": source.read_text().split("\n")[row["n"]]}

    source.write_text("I run fast .\nThe dog barks .\nA cat sleeps .\nWe sing .")
    first = base.map(load)
    options = dict(features=("token", "word", "pos"), max_examples_per_neuron=CAPACITY)
    assert_same_profile(analyze(texts=first, **options), analyze(texts=list(first["text"]), **options))
    source.write_text("She quickly left the room .\nBig red cars honk loudly .\nRain fell all night .\nNo .")
    second = base.map(load)
    assert second._fingerprint == first._fingerprint and second["text"] != first["text"]
    profile = analyze(texts=second, **options)
    assert_same_profile(profile, analyze(texts=list(second["text"]), **options))
    assert "quickly" in profile.tables["word"].vocab and "barks" not in profile.tables["word"].vocab


def test_the_tag_cache_tells_a_customised_pipeline_from_its_original(tmp_path):
    """Helper 166: the tag cache was keyed by the pipeline's name, version and components, which a customised
    pipeline saved to a folder keeps: it was served the original's tags (and the original, later, the custom ones).
    The pipeline's files are part of the key now."""
    import spacy

    from hf_txray.features import DEFAULT_SPACY_MODEL

    nlp = spacy.load(DEFAULT_SPACY_MODEL)
    nlp.get_pipe("attribute_ruler").add([[{"LOWER": "the"}]], {"POS": "PROPN"})
    nlp.to_disk(tmp_path / "custom")
    texts = ["The cat sat on the mat .", "The dog ran to the house ."]
    options = dict(features=("token", "pos"), max_examples_per_neuron=CAPACITY)
    default = analyze(texts=texts, **options)
    custom = analyze(texts=texts, spacy_model=str(tmp_path / "custom"), **options)
    assert "PROPN" in custom.tables["pos"].vocab and "PROPN" not in default.tables["pos"].vocab
    assert "PROPN" not in analyze(texts=texts, **options).tables["pos"].vocab  # and the original's cache is its own
    # helper 167: saved again to the same folder, in the same process: the pipeline loaded first was served
    nlp = spacy.load(DEFAULT_SPACY_MODEL)
    nlp.get_pipe("attribute_ruler").add([[{"LOWER": "the"}]], {"POS": "INTJ"})
    nlp.to_disk(tmp_path / "custom")
    again = analyze(texts=texts, spacy_model=str(tmp_path / "custom"), **options)
    assert "INTJ" in again.tables["pos"].vocab and "PROPN" not in again.tables["pos"].vocab


@pytest.mark.parametrize("skip, long_texts", [(0, "window"), (2, "truncate")])
def test_max_positions_tags_only_the_texts_it_reads(monkeypatch, skip, long_texts):
    """spaCy tags the in-memory corpus before the run: under max_positions only the leading texts the run reads
    (through the text of the first position left uncredited), not the whole corpus; the profile is unchanged."""
    import importlib

    module = importlib.import_module("hf_txray.analyze")
    tagged: list[int] = []
    real = module.annotated_with_markup
    monkeypatch.setattr(module, "annotated_with_markup", lambda corpus, *a, **k: tagged.append(len(corpus)) or
                        real(corpus, *a, **k))
    texts = [f"text {i} " + "word " * (30 if i % 8 == 7 else 2 + i % 4) for i in range(60)]
    texts[12] = " "
    _, tokenizer = tiny("gpt2")
    options = dict(kind="gpt2", batch_size=2, max_length=24, features=("token", "pos"), skip_first_positions=skip,
                   long_texts=long_texts)
    full = analyze(texts=texts, **options)
    # positions per text, brute force: the tokenizer's tokens (windows cover all; truncation keeps max_length)
    lengths = [len(tokenizer(t, truncation=long_texts == "truncate", max_length=24)["input_ids"]) if t.strip()
               else 0 for t in texts]
    positions = np.maximum(np.array(lengths) - skip, 0)
    assert positions[20] > 1
    quota = int(positions[:20].sum()) + 1  # the first position of text 20: position quota + 1 is in text 20 too
    tagged.clear()
    stopped = analyze(texts=texts, max_positions=quota, **options)
    assert tagged == [21] and stopped.meta.num_positions == quota and stopped.meta.num_examples == 21
    # the same credit as the run over the texts it reached, stopped at the same position (brute force of the
    # credit itself: tests/test_noise.py::test_max_positions_credits_exactly_the_first_positions)
    reached = analyze(texts=texts[:21], max_positions=quota, **options)
    assert_same_profile(stopped, reached)
    tagged.clear()
    assert analyze(texts=texts, max_positions=int(positions.sum()) + 5, **options).meta.num_positions == \
        full.meta.num_positions and tagged == [len(texts)]


def test_a_stream_stopped_by_max_positions_records_no_texts_hash(jsonl):
    """The stream is read ahead of the credit (a whole bucket): its texts hash covers only a stream profiled whole."""
    def stream():
        return datasets.load_dataset("json", data_files=str(jsonl), split="train", streaming=True)

    stopped = analyze(texts=stream(), max_positions=5)
    record = stopped.meta.provenance["dataset"]
    assert record["texts_hash"] is None and record["num_texts"] == stopped.meta.num_examples < len(SAMPLE_TEXTS)
    assert record["texts_multiset_hash"] is None
    whole = analyze(texts=stream()).meta.provenance["dataset"]
    assert whole["texts_hash"] is not None and whole["num_texts"] == len(SAMPLE_TEXTS)
    assert whole["texts_multiset_hash"] is not None


def test_an_autocast_context_around_analyze_is_turned_off_and_reported(caplog):
    """analyze under ``torch.autocast`` ran a float32 model in bfloat16 and recorded 'float32' (a tiny Llama on PTB:
    40 of 88 neurons' counts moved, masses up to 11% off): it now runs in the weights' dtype, as recorded."""
    model, tokenizer = tiny("llama")
    plain = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    with caplog.at_level("WARNING"), torch.autocast("cpu", dtype=torch.bfloat16):
        cast = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert cast.meta.provenance["runtime"]["dtype"] == "float32"
    np.testing.assert_array_equal(cast.neuron_count, plain.neuron_count)
    np.testing.assert_array_equal(cast.neuron_mass, plain.neuron_mass)
    warned = [r.getMessage() for r in caplog.records if "autocast" in r.getMessage()]
    assert len(warned) == 1 and "'cpu', bfloat16" in warned[0] and "(float32)" in warned[0]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_left_padding_tokenizer_gives_the_profile_of_a_right_padding_one(kind):
    """Decoder tokenizers are often set to ``padding_side="left"`` for generation; the engine pads its batches itself
    (right, masked), so such a tokenizer must credit the same positions with the same values: no pad credited, no
    position id shifted. Measured on EWT sentences (helper 397): 0 credits moved in every batching, as here."""
    import copy

    model, tokenizer = tiny(kind)
    left = copy.deepcopy(tokenizer)
    left.padding_side = "left"
    texts = TEXTS * 2
    options = dict(features=("token",), show_progress=False, batch_size=3, pad_to_multiple_of=1)
    expected = hf_txray.analyze(model, texts, tokenizer=tokenizer, **options)
    assert_same_credit(hf_txray.analyze(model, texts, tokenizer=left, **options), expected)
