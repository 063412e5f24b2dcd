"""One option, four entry points: Python's analyze, `hf-txray analyze` flags, a --config file and TXRayArguments read
and refuse each value alike (hf_txray.options)."""

from __future__ import annotations

import numpy as np
import pytest

from hf_txray import AnalyzeOptions, ConfigurationError, TXRayArguments
from hf_txray.cli import main as cli_main
from hf_txray.trainer.callback import TXRayCallback


def trainer_args(tmp_path, **options) -> TXRayArguments:
    return TXRayArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, **options)


def test_features_take_one_form_from_every_entry_point(tmp_path):
    """features="token" was kept as the text "token" by Python's analyze (recorded so in provenance["options"]) and
    as ["token"] by the CLI, a config file and the trainer; TXRayCallback(features="token") split it into letters."""
    assert AnalyzeOptions(features="token").features == ("token",)
    assert AnalyzeOptions(features=["token", "pos"]).features == ("token", "pos")
    assert TXRayCallback(["The cat sat."], features="token").config.features == ("token",)
    assert trainer_args(tmp_path, txray_features="token,pos").txray_features == ["token", "pos"]


@pytest.mark.parametrize("value", [5, None])
def test_features_that_are_no_list_are_refused_in_words_everywhere(tmp_path, capsys, value):
    """features=5 (or None) raised a bare TypeError from analyze and TXRayArguments, and a config file's
    `features: 5` a traceback from hf-txray, while `--features 5` was refused in words."""
    with pytest.raises(ConfigurationError, match="features must be a list of feature names"):
        AnalyzeOptions.build(None, {"features": value})
    with pytest.raises(ConfigurationError, match="^txray_features must be a list of feature names"):
        trainer_args(tmp_path, txray_features=value)
    if value is not None:  # a config file's null is refused as "no value" before
        config = tmp_path / "run.yaml"
        config.write_text(f"features: {value}\n")
        assert cli_main(["analyze", str(tmp_path / "no-model"), "--config", str(config),
                         "--out", str(tmp_path / "out")]) == 2
        assert "features must be a list of feature names" in capsys.readouterr().err


@pytest.mark.parametrize("value", [5, [1], "", "[]"])
def test_model_kwargs_that_are_no_mapping_are_refused_in_words_everywhere(tmp_path, capsys, value):
    """model_kwargs=5 or [1] raised a bare TypeError from analyze, "[]" a ValueError, "" was taken as no keywords
    (the command line and a config file refuse it), and a config file's `model_kwargs: 5` or `[1]` was a traceback
    from hf-txray; `--model-kwargs 5` was refused in words."""
    with pytest.raises(ConfigurationError, match="model_kwargs must be a dict of from_pretrained keywords"):
        AnalyzeOptions.build(None, {"model_kwargs": value}).validate()
    if not isinstance(value, str):  # text in a config file is read as the flag's JSON
        config = tmp_path / "run.yaml"
        config.write_text(f"model_kwargs: {value}\n")
        assert cli_main(["analyze", str(tmp_path / "no-model"), "--config", str(config),
                         "--out", str(tmp_path / "out")]) == 2
        assert "model_kwargs must be a dict of from_pretrained keywords" in capsys.readouterr().err


@pytest.mark.parametrize("value", [[1], 1.5, True])
def test_a_device_map_from_pretrained_cannot_take_is_refused_in_words(tmp_path, capsys, value):
    """device_map=[1] or 1.5 raised AttributeError ("'list' object has no attribute 'values'") from transformers'
    loading, True a TypeError, and a config file's `device_map: [1]` was a traceback from hf-txray."""
    with pytest.raises(ConfigurationError, match="device_map must be a name"):
        AnalyzeOptions.build(None, {"device_map": value}).validate()
    config = tmp_path / "run.yaml"
    config.write_text(f"device_map: {str(value).lower()}\n")
    assert cli_main(["analyze", str(tmp_path / "no-model"), "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "device_map must be a name" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["auto", 0, {"embeddings": "cpu"}, None])
def test_the_device_maps_from_pretrained_takes_pass_the_options_check(value):
    AnalyzeOptions.build(None, {"device_map": value}).validate()


def cli_code(argv: list[str]) -> int:
    try:
        return cli_main(argv)
    except SystemExit as exit:  # argparse's usage errors
        return exit.code


@pytest.mark.parametrize("flag, value, minimum", [("--top-k", "0", 1), ("--max-length", "1", 2), ("--stride", "-1", 0),
                                                  ("--num-samples", "0", 1), ("--checkpoint-every", "0", 1),
                                                  ("--max-positions", "-3", 1)])
def test_a_count_below_its_minimum_is_refused_naming_the_flag(tmp_path, capsys, flag, value, minimum):
    """`--top-k 0` was refused as "top_k must be an int >= 1, got 0.", in Python's spelling, after the flag's parser
    took it (`--top-k 2.5` named the flag); the minimum is declared with the option and read by both."""
    assert cli_code(["analyze", str(tmp_path / "no-model"), flag, value, "--out", str(tmp_path / "out")]) == 2
    assert f"argument {flag}" in capsys.readouterr().err
    name = flag[2:].replace("-", "_")
    with pytest.raises(ConfigurationError, match=rf"^{name} must be an int >= {minimum}"):
        AnalyzeOptions.build(None, {name: int(value)}).validate()
    config = tmp_path / "run.yaml"
    config.write_text(f'{name}: "{value}"\n')  # text in a config file is read by the flag's parser
    assert cli_code(["analyze", str(tmp_path / "no-model"), "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert f"{name}: '{value}' is not valid: expected an int >= {minimum}" in capsys.readouterr().err


@pytest.mark.parametrize("options, name", [({"txray_stride": -1}, "txray_stride"),
                                           ({"txray_stack": "foo"}, "txray_stack")])
def test_the_trainer_names_its_field_when_a_one_word_option_is_refused(tmp_path, options, name):
    """txray_stride=-1 was refused as "stride must be an int >= 0 ...", txray_stack='foo' as "stack must be
    'encoder' or 'decoder'": the trainer's words name its own fields (txray_top_k=0: "txray_top_k must be ...")."""
    with pytest.raises(ConfigurationError, match=rf"^{name} must be "):
        trainer_args(tmp_path, **options)


@pytest.mark.parametrize("on, off", [(1, 0), (np.int64(1), np.int64(0)), (np.True_, np.False_)])
def test_a_switch_given_as_one_is_the_bool_true_as_the_flag_records_it(on, off):
    """trust_remote_code=1 (a config file's `trust_remote_code: 1`) was kept and recorded as 1, where
    --trust-remote-code records True; numpy 2's np.True_ (type name "bool") and np.int64(1) were refused."""
    options = AnalyzeOptions.build(None, {"trust_remote_code": on, "streaming": off})
    assert options.trust_remote_code is True and options.streaming is False


def test_an_option_error_names_the_flags_typed_and_the_config_file_keys(tmp_path, capsys):
    """Errors of the options check named every option in Python's spelling from the command line too: `--max-length
    5000 --max-tokens-per-batch 100` said "max_tokens_per_batch=100 is smaller than max_length=5000 ... Raise
    max_tokens_per_batch", and a value from a --config file was not said to come from it. Each option is now named
    as the user gave it: a flag as the flag, a key of the file by its key, with the file named."""
    out = str(tmp_path / "out")
    assert cli_code(["analyze", str(tmp_path / "no-model"), "--max-length", "5000", "--max-tokens-per-batch", "100",
                     "--out", out]) == 2
    err = capsys.readouterr().err
    assert ("error: --max-tokens-per-batch=100 is smaller than --max-length=5000: a batch must hold at least one "
            "window of --max-length tokens. Raise --max-tokens-per-batch to 5000 or more") in err
    assert "max_length" not in err and "max_tokens_per_batch" not in err and "config file" not in err
    with pytest.raises(ConfigurationError, match="^max_tokens_per_batch=100 is smaller than max_length=5000"):
        AnalyzeOptions.build(None, {"max_length": 5000, "max_tokens_per_batch": 100}).validate()  # Python's names
    assert cli_code(["analyze", str(tmp_path / "no-model"), "--skip-first-positions", "-1", "--out", out]) == 2
    assert "error: --skip-first-positions must be 'auto' or an int >= 0, got '-1'." in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text("max_tokens_per_batch: 100\nmax_length: 64\n")
    assert cli_code(["analyze", str(tmp_path / "no-model"), "--config", str(config), "--max-length=5000",
                     "--out", out]) == 2  # the file's max_length is overridden by the flag: named as the flag
    assert (f"error: The config file {config}: max_tokens_per_batch=100 is smaller than --max-length=5000"
            in capsys.readouterr().err)


@pytest.mark.parametrize("line, said", [("streaming: maybe", "streaming must be True or False, got 'maybe' (str)"),
                                        ("resume: 2", "resume must be True or False, got 2 (int)"),
                                        ("top_k: 2.0", "top_k must be an int >= 1, got 2.0 (write 2: a count is an int)."),
                                        ("skip_first_positions: -1", "skip_first_positions must be 'auto' or an int")])
def test_a_bad_value_in_a_config_file_is_said_with_the_file(tmp_path, capsys, line, said):
    """`streaming: maybe` in a config file was refused as "analyze(): streaming must be True or False" and `top_k:
    2.0` as "top_k must be an int >= 1", naming no file (`hub_private: maybe`, a key of the command line, named it)."""
    config = tmp_path / "run.yaml"
    config.write_text(line + "\n")
    assert cli_code(["analyze", str(tmp_path / "no-model"), "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert f"hf-txray analyze: error: The config file {config}: {said}" in capsys.readouterr().err


@pytest.mark.parametrize("line, said", [("layers: [0, 0]", "layers [0, 0] repeat 0: each layer once."),
                                        ("layers: 1.5", "layers must be 'all', an int or a list of ints, got 1.5.")])
def test_layers_are_checked_with_the_other_options(tmp_path, capsys, line, said):
    """AnalyzeOptions.validate checked every field but layers: a list that repeats a block or is no list of ints
    passed it and was refused only once the model was read, where a --config file's `layers: [0, 0]` was not said to
    come from the file."""
    with pytest.raises(ConfigurationError, match="^" + said.replace("[", r"\[").replace("]", r"\]")):
        AnalyzeOptions.build(None, {"layers": [0, 0] if "[" in line else 1.5}).validate()
    config = tmp_path / "run.yaml"
    config.write_text(line + "\n")
    assert cli_code(["analyze", str(tmp_path / "no-model"), "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert f"hf-txray analyze: error: The config file {config}: {said}" in capsys.readouterr().err


def test_a_config_files_hub_private_is_overridden_by_a_flag(tmp_path):
    """Flags override a --config file, back to the default too: `hub_private: true` could not be turned off on the
    command line (--hub-private was a store_true flag: --no-hub-private was "unrecognized arguments"), where every
    switch of analyze has its --no- form."""
    from hf_txray.cli import _apply_config_file, _parse, build_parser

    config = tmp_path / "run.yaml"
    config.write_text("hub_private: true\npush_to_hub: me/results\n")
    for flags, private in (([], True), (["--no-hub-private"], False), (["--hub-private"], True)):
        argv = ["analyze", "--config", str(config), "--out", str(tmp_path / "o"), *flags]
        parser = build_parser()
        assert _apply_config_file(parser, argv, _parse(parser, argv)).hub_private is private


@pytest.mark.parametrize("flag, kept", [("--stack", "decoder"), ("--dtype", "bfloat16")])
def test_a_flag_sets_an_option_of_choices_back_to_its_default_over_a_config_file(tmp_path, capsys, flag, kept):
    """`stack: decoder` or `dtype: bfloat16` in a --config file could not be set back to the default (None: the
    model's stack, from_pretrained's dtype) on the command line: argparse's choices refused `--stack none` ("invalid
    choice: 'none'"), and no other value means the default. An option of choices whose default is None takes none."""
    from hf_txray.cli import _apply_config_file, _parse, build_parser

    name = flag[2:]
    config = tmp_path / "run.yaml"
    config.write_text(f"{name}: {kept}\n")
    for flags, value in (([], kept), ([flag, "none"], None), ([f"{flag}=None"], None)):
        argv = ["analyze", "--config", str(config), "--out", str(tmp_path / "o"), *flags]
        parser = build_parser()
        assert getattr(_apply_config_file(parser, argv, _parse(parser, argv)), name) == value
    assert cli_code(["analyze", "--out", str(tmp_path / "o"), flag, "foo"]) == 2
    assert f"argument {flag}: choose one of " in capsys.readouterr().err
    assert cli_code(["analyze", "--out", str(tmp_path / "o"), "--site", "none"]) == 2  # its default is mlp, not none
    assert "argument --site: choose one of mlp, residual, got 'none'" in capsys.readouterr().err


def test_an_option_refused_against_the_model_is_named_as_given(saved_bert, tmp_path, capsys):
    """The checks against the model named the options in Python's spelling too: `--top-k 100` on a layer of 48
    neurons said "top_k=100 exceeds the 48 neurons of a layer.", `--layers 5` "Layer 5 is out of range", and a
    config file's `top_k: 100` named no file."""
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\nA dog ran.\n")
    command = ["analyze", str(saved_bert), str(texts), "--out", str(tmp_path / "o")]
    assert cli_code([*command, "--top-k", "100"]) == 2
    assert "error: --top-k=100 exceeds the 48 neurons of a layer." in capsys.readouterr().err
    assert cli_code([*command, "--layers", "5"]) == 2
    assert "error: --layers: Layer 5 is out of range: the model has 2 layers" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text("top_k: 100\n")
    assert cli_code([*command, "--config", str(config)]) == 2
    assert f"error: The config file {config}: top_k=100 exceeds the 48 neurons of a layer." in capsys.readouterr().err


def test_an_attribute_of_the_model_named_like_an_option_is_not_respelled():
    """Helper 313: respell_options turned every `top_k` of a message into the option, the model's too: the MoE check's
    'a router's top_k changed after the model was built? ... keep the config and the routers' top_k equal' read
    'a router's --top-k ... the routers' --top-k' on the command line (and txray_top_k in the trainer), naming a flag
    that cannot change a router. The option itself is still respelled in the same message."""
    from hf_txray.options import respell_options
    from hf_txray.trainer.arguments import prefixed_option_names

    message = ("top_k=9 exceeds the 8 units a token reaches in 'layers.0.mlp': its router chose 2 experts per token "
               "(4 units each, plus shared experts), not the config's num_experts_per_tok (a router's top_k changed "
               "after the model was built?). Choose top_k <= 8, or keep the config and the routers' top_k equal.")
    flags = respell_options(message, {"top_k": "--top-k"})
    assert flags.startswith("--top-k=9 exceeds") and "Choose --top-k <= 8" in flags
    assert "a router's top_k changed" in flags and "the routers' top_k equal" in flags
    trainer = prefixed_option_names(message)
    assert trainer.startswith("txray_top_k=9") and "Choose txray_top_k <= 8" in trainer
    assert "a router's top_k changed" in trainer and "the routers' top_k equal" in trainer


def _read_with_config(tmp_path, config, name, flags):
    """The value of option `name` after ``hf-txray analyze --config CONFIG ... FLAGS`` is parsed (no run)."""
    from hf_txray.cli import _apply_config_file, _parse, build_parser

    argv = ["analyze", "--config", str(config), "--out", str(tmp_path / "o"), *flags]
    parser = build_parser()
    return getattr(_apply_config_file(parser, argv, _parse(parser, argv)), name)


def test_a_config_file_may_be_a_pipe(tmp_path):
    """Helper 385: `hf-txray analyze --config <(envsubst < run.yaml) ...` or `--config /dev/stdin` (a pipe, not a regular
    file) was refused with "The config file /dev/fd/63 does not exist."; a folder is refused as a folder."""
    import os
    import subprocess
    import sys
    import threading
    from pathlib import Path

    fifo = tmp_path / "run.yaml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("top_k: 2\n",), daemon=True)
    writer.start()
    try:
        assert _read_with_config(tmp_path, fifo, "top_k", []) == 2
    finally:
        if writer.is_alive():  # the pipe was never read: let the writer go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "hf_txray", "analyze", "m", "d", "--config", "/dev/stdin", "--out",
                           str(tmp_path / "o")], input="top_kk: 2\n", capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and "The config file /dev/stdin got an unknown option 'top_kk'" in done.stderr, done.stderr
    assert "Did you mean 'top_k'" in done.stderr, done.stderr
    with pytest.raises(ConfigurationError, match="is a folder"):
        _read_with_config(tmp_path, tmp_path, "top_k", [])


@pytest.mark.parametrize("flag, kept", [("--device", "cuda:1"), ("--device-map", "auto")])
def test_a_flag_sets_device_or_device_map_back_to_its_default_over_a_config_file(tmp_path, flag, kept):
    """`device: cuda:1` or `device_map: auto` in a --config file could not be set back to the default (None: the
    GPU or CPU hf_txray picks, not dispatched) on the command line: `--device none` gave the device "none", and
    `--device-map none` the device_map "none", as options of choices did before they took none."""
    name = flag[2:].replace("-", "_")
    config = tmp_path / "run.yaml"
    config.write_text(f"{name}: {kept}\n")
    for flags, value in (([], kept), ([flag, "none"], None), ([f"{flag}=None"], None), ([flag, "cpu"], "cpu")):
        assert _read_with_config(tmp_path, config, name, flags) == value
    config.write_text(f"{name}: none\n")  # the file's text is read by the flag's parser too
    assert _read_with_config(tmp_path, config, name, []) is None


@pytest.mark.parametrize("flag, kept", [("--text-column", "body"), ("--module-pattern", r"layers\.\d+\.mlp$"),
                                        ("--split", "test"), ("--revision", "v1"), ("--spacy-model", "en_core_web_sm")])
def test_a_flag_sets_a_text_option_back_to_its_default_over_a_config_file(tmp_path, flag, kept):
    """Helper 323: `text_column: body` or `module_pattern: ...` in a --config file could not be set back to the
    default (None: the column auto-detected, the automatic site search) on the command line: `--text-column none`
    gave the column "none" and `--module-pattern none` the regex "none", where `--device none`, `--stack none` and
    `--max-length none` give the default. A text option whose default is None takes none as they do."""
    from hf_txray.cli import _parse, build_parser

    name = flag[2:].replace("-", "_")
    config = tmp_path / "run.yaml"
    config.write_text(f"{name}: '{kept}'\n")
    for flags, value in (([], kept), ([flag, "none"], None), ([f"{flag}=None"], None), ([flag, "null"], None),
                         ([flag, "other"], "other")):
        assert _read_with_config(tmp_path, config, name, flags) == value
    config.write_text(f"{name}: none\n")  # the file's text is read by the flag's parser too
    assert _read_with_config(tmp_path, config, name, []) is None
    # text whose default is not None keeps "none" as text (a stage may be named so)
    argv = ["analyze", "--out", str(tmp_path / "o"), "--stage", "none"]
    assert _parse(build_parser(), argv).stage == "none"


def test_a_refused_feature_names_the_flag_or_the_config_files_key(tmp_path, capsys):
    """`features: [token, foo]` in a --config file said 'Unknown feature 'foo': ...' naming neither the file nor the
    key, where every other refused value of the file says 'The config file run.yaml: ...'; `--features token,foo` did
    not name its flag. Python's message is unchanged (it starts with 'Unknown feature')."""
    out = str(tmp_path / "o")
    config = tmp_path / "run.yaml"
    for listed, said in (("[token, foo]", "Unknown feature 'foo': use one of token"),
                         ("[token, token]", "Feature 'token' is listed twice.")):
        config.write_text(f"features: {listed}\n")
        assert cli_code(["analyze", "--config", str(config), "--out", out]) == 2
        assert f"error: The config file {config}: features: {said}" in capsys.readouterr().err
    assert cli_code(["analyze", "--config", str(config), "--out", out, "--features", "token,foo"]) == 2
    assert "error: --features: Unknown feature 'foo': use one of token" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="^Unknown feature 'foo': use one of token"):
        AnalyzeOptions(features=("token", "foo")).validate()
