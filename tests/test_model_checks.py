"""The layers, top_k and max_length are refused from a skeleton of the model built from its config, before the
weights load (hf_txray.model_checks), with the loaded model's own message, and never where the loaded model accepts.
"""

from __future__ import annotations

import functools

import pytest
from transformers import AutoModel

import hf_txray
from hf_txray.cli import main as cli_main
from hf_txray.errors import ConfigurationError
from hf_txray.loading import load_model
from hf_txray.model_checks import check_before_loading, check_model_options
from hf_txray.options import ProfilerConfig
from models import minilm_path
from test_architectures import ENCODER_DECODERS, build

TEXTS = ["The cat sat on the mat.", "A second short text."]


@pytest.fixture
def no_weights(monkeypatch):
    """Fail any load of a model's weights (AutoModel.from_pretrained, which analyze loads with)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(AutoModel, "from_pretrained", refuse)


MINILM_REFUSALS = [
    (dict(layers=[7]), "Layer 7 is out of range: the model has 6 layers (0..5, or negative from the end)."),
    (dict(layers=[-7]), "Layer -7 is out of range: the model has 6 layers"),
    (dict(top_k=1537), "top_k=1537 exceeds the 1536 neurons of a layer."),
    (dict(site="residual", top_k=385), "top_k=385 exceeds the 384 neurons of a layer."),
    (dict(max_length=513), "max_length=513 exceeds what BertModel can take: 512 tokens (position table "
                           "embeddings.position_embeddings (512 rows))."),
]


@pytest.mark.parametrize("options, message", MINILM_REFUSALS)
def test_analyze_refuses_before_the_weights_load(no_weights, options, message):
    """Helper 257: `layers=[7]` on the 6-layer MiniLM (and top_k above a layer's neurons, max_length beyond its 512
    positions) was refused only once the weights were loaded (minutes for a large model or a GGUF file)."""
    with pytest.raises(ConfigurationError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        hf_txray.analyze(minilm_path(), TEXTS, features=("token",), show_progress=False, **options)


@pytest.mark.parametrize("flags, message", [(["--layers", "7"], "--layers: " + MINILM_REFUSALS[0][1]),
                                            (["--top-k", "1537"], "--top-k=1537 exceeds the 1536 neurons"),
                                            (["--max-length", "513"], "--max-length=513 exceeds what BertModel can "
                                                                      "take: 512 tokens")])
def test_cli_analyze_refuses_before_the_weights_load(no_weights, tmp_path, capsys, flags, message):
    """As in Python, with each option named by its flag."""
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    code = cli_main(["analyze", str(minilm_path()), str(text_file), "--out", str(tmp_path / "out"), "--features", "token",
                     *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Loading weights" not in err


def test_the_limits_themselves_are_accepted_before_the_weights_load(monkeypatch):
    """The early checks let the limits through (layer 5 and -6, top_k 1536, max_length 512): the weights load."""
    loaded = []
    real = AutoModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        loaded.append(args[0])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModel, "from_pretrained", classmethod(spy))
    for options in (dict(layers=[5, -6]), dict(top_k=1536, layers=[0]), dict(max_length=512, layers=[0])):
        profile = hf_txray.analyze(minilm_path(), TEXTS, features=("token",), show_progress=False, **options)
        assert profile.layers in ([0, 5], [0])
    assert len(loaded) == 3


@functools.cache
def _saved(family: str, folder: str) -> str:
    model, tokenizer = build(family)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _outcome(check) -> str | None:
    try:
        check()
    except ConfigurationError as err:
        return str(err)
    except hf_txray.TXRayError as err:  # another refusal of the loaded model (not a config option's)
        return f"other: {type(err).__name__}"
    return None


# dense models of one stack (learned, offset and rotary positions; gated and plain MLPs; a recurrent one), a MoE
# model and encoder-decoders, where nothing is refused early
FAMILIES = ("bert", "roberta", "distilbert", "gpt2", "opt", "bloom", "llama", "gemma2", "phi3", "rwkv", "mixtral",
            "qwen2_moe", "t5", "bart")


@pytest.mark.parametrize("family", FAMILIES)
def test_what_is_refused_early_is_refused_late_with_the_same_message(family, tmp_path_factory):
    """On each family: every option value refused from the config skeleton is refused by the loaded model with the
    same message; the limits the loaded model accepts pass the early check; MoE and encoder-decoders are not
    checked early."""
    folder = _saved(family, str(tmp_path_factory.mktemp(family)))
    loaded, tokenizer, _, _ = load_model(folder)
    depth = len(check_model_options(loaded, tokenizer, ProfilerConfig()).sites)
    width = check_model_options(loaded, tokenizer, ProfilerConfig(layers=[0])).sites[0].width
    limit = check_model_options(loaded, tokenizer, ProfilerConfig(layers=[0])).max_length
    grid = [dict(layers=[depth - 1]), dict(layers=[depth]), dict(layers=[-depth]), dict(layers=[-depth - 1]),
            dict(layers=[0], top_k=width), dict(layers=[0], top_k=width + 1),
            dict(layers=[0], site="residual", top_k=loaded.config.get_text_config().hidden_size + 1),
            dict(layers=[0], max_length=limit), dict(layers=[0], max_length=limit + 1),
            dict(layers=[0], max_length=2048), dict(layers=[0], max_length=100_000)]
    early_refusals = 0
    for options in grid:
        config = ProfilerConfig(**options)
        late = _outcome(lambda: check_model_options(loaded, tokenizer, config))
        early = _outcome(lambda: check_before_loading(folder, None, config, revision=None, trust_remote_code=False,
                                                      token=None, model_kwargs=None, adapted=False,
                                                      output_effects=False))
        assert early is None or early == late, (options, early, late)
        early_refusals += early is not None
    if family in ENCODER_DECODERS or family in ("mixtral", "qwen2_moe"):
        assert early_refusals == 0
    else:
        assert early_refusals >= 4  # layers out of range both ways, top_k of both sites
