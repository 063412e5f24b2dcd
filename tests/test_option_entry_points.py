"""One option, four entry points: Python's analyze, `hf-txray analyze` flags, a --config file and TXRayArguments read
and refuse each value alike (hf_txray.options)."""

from __future__ import annotations

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
