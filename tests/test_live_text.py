"""Live text (the Space's live tab, :class:`hf_txray.viewer.LiveProfiler`) against ``analyze`` on the same text.

The live table must hold exactly what ``analyze`` credits for that text, position by position (neuron and
activation): the same skipped first positions (decoders skip position 0 by default) and the same forward pass of
the profiled stack (an encoder-decoder's decoder is run with teacher forcing, not the whole model on the text).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import hf_txray
from hf_txray.errors import ConfigurationError
from hf_txray.viewer import LiveProfiler
from models import tiny
from test_architectures import build

TEXT = "The quick brown fox jumps over the lazy dog."
CASES = [("bert", None, 0), ("gpt2", None, 1), ("llama", None, 1), ("t5", "decoder", 0), ("bart", "decoder", 0),
         ("t5", "encoder", 0)]


def model_of(kind: str):
    return build(kind) if kind in ("t5", "bart") else tiny(kind)


@pytest.mark.parametrize("kind,stack,skipped", CASES, ids=[f"{k}-{s}" if s else k for k, s, _ in CASES])
def test_live_table_is_what_analyze_credits(kind, stack, skipped):
    model, tokenizer = model_of(kind)
    profile = hf_txray.analyze(model, [TEXT], tokenizer=tokenizer, features=("token",), stack=stack,
                               max_examples_per_neuron=1000, show_progress=False)
    assert profile.meta.config["skip_first_positions"] == skipped
    live = LiveProfiler(model, tokenizer, profile.meta)
    for layer in profile.layers:
        table = live.run(TEXT, layer).table
        assert len(table) == profile.meta.num_positions  # the same creditable positions
        assert table["position"].min() >= skipped
        credited = table[table["neuron"] >= 0].set_index("position").sort_index()
        examples = profile.examples[profile.examples["layer"] == layer].set_index("token_index").sort_index()
        assert len(credited) > 0
        assert credited.index.tolist() == examples.index.tolist()
        assert credited["neuron"].tolist() == examples["neuron"].tolist()
        np.testing.assert_allclose(credited["activation"], examples["activation"], rtol=1e-6, atol=1e-6)
        # a traced neuron is read at the same positions: where it wins, its traced activation is the winner's
        neuron = int(credited["neuron"].iloc[0])
        traced = live.run(TEXT, layer, trace_neuron=neuron).table.set_index("position")
        wins = credited[credited["neuron"] == neuron]
        np.testing.assert_allclose(traced.loc[wins.index, "traced"], wins["activation"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_live_table_of_a_top_k_profile_holds_every_credited_winner(kind):
    model, tokenizer = tiny(kind)
    profile = hf_txray.analyze(model, [TEXT], tokenizer=tokenizer, features=("token",), top_k=3,
                               max_examples_per_neuron=1000, show_progress=False)
    live = LiveProfiler(model, tokenizer, profile.meta)
    for layer in profile.layers:
        table = live.run(TEXT, layer).table
        live_credits = {}
        for rank in ("", "_2", "_3"):
            won = table[table[f"neuron{rank}"] >= 0]
            live_credits.update({(int(p), int(n)): float(a) for p, n, a in
                                 zip(won["position"], won[f"neuron{rank}"], won[f"activation{rank}"])})
            if rank:  # ranks in descending order of activation
                assert (table[f"activation{rank}"] <= table["activation"]).all()
        examples = profile.examples[profile.examples["layer"] == layer]
        credits = {(int(p), int(n)): float(a) for p, n, a in
                   zip(examples["token_index"], examples["neuron"], examples["activation"])}
        assert sorted(live_credits) == sorted(credits)
        np.testing.assert_allclose([live_credits[k] for k in sorted(credits)], [credits[k] for k in sorted(credits)],
                                   rtol=1e-6, atol=1e-6)
        assert len(credits) > len(table)  # more than one winner credited at some positions


def test_live_text_refuses_a_text_of_skipped_positions_only():
    model, tokenizer = tiny("gpt2")
    profile = hf_txray.analyze(model, [TEXT], tokenizer=tokenizer, features=("token",), show_progress=False)
    with pytest.raises(hf_txray.ConfigurationError, match="first 1 positions"):
        LiveProfiler(model, tokenizer, profile.meta).run("a", profile.layers[0])  # one token


def test_live_text_shows_a_character_several_tokens_cover_with_the_strongest_of_them():
    """Helper 334: overlapping token spans kept only the first token: NFKC "\\ufb02ow" read as ``f`` (9, 10) and
    ``low`` (9, 12) showed f's score on the ligature and "ow" unscored (low's 0.8 lost); the byte-level pieces of one
    emoji showed only the first piece's score. A character several tokens cover shows the token of largest |score|,
    and the text stays whole."""
    from hf_txray.viewer.live import _text_spans

    text = "a bit of \ufb02ow ."
    spans, rows = _text_spans(text, np.array([0, 2, 6, 9, 9, 13]), np.array([1, 5, 8, 10, 12, 14]),
                              np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.0]), marks=["a", "b", "c", "d", "e", ""])
    assert spans[-4:] == [("\ufb02ow", 1.0), ("e", None), (" ", None), (".", 0.0)] and rows[-4:] == [4, 4, None, 5]
    spans, rows = _text_spans(text, np.array([9, 9]), np.array([10, 12]), np.array([-0.9, 0.5]), signed=True)
    assert spans == [("a bit of ", None), ("\ufb02", -1.0), ("ow", pytest.approx(0.5 / 0.9)), (" .", None)]
    assert rows == [None, 0, 1, None]
    # a real byte-level BPE: every piece of each emoji covers it; brute force from the tokenizer's own offsets
    model, tokenizer = tiny("gpt2")
    profile = hf_txray.analyze(model, [TEXT], tokenizer=tokenizer, features=("token",), show_progress=False)
    live = LiveProfiler(model, tokenizer, profile.meta)
    text = "so \U0001F600 and \U0001F680\U0001F600 fox"
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    for neuron in range(3):
        out = live.run(text, profile.layers[-1], trace_neuron=neuron)
        traced = out.table.set_index("position")["traced"]
        assert "".join(s for s, _ in out.trace_spans) == text
        shown = [v for s, v in out.trace_spans for _ in s]  # the value shown on each character
        scale = traced.abs().max()
        for char in range(len(text)):
            covering = [traced[p] for p in traced.index if offsets[p][0] <= char < offsets[p][1]]
            want = max(covering, key=abs) / scale if covering else None
            assert shown[char] == (pytest.approx(want) if covering else None), (char, covering)
        pieces = [p for p in traced.index if offsets[p] == (3, 4)]
        assert len(pieces) == 4 and len({traced[p] for p in pieces}) > 1  # four pieces of their own scores


def test_a_fractional_traced_neuron_or_a_bool_layer_is_refused_not_read_as_another():
    """helper 395: LiveProfiler.run(text, layer, trace_neuron=2.7) traced neuron 2 (int() of it) and layer=True ran
    layer 1 (True == 1), without a word. Both are read as ints (counts.as_int); numpy ints are taken."""
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, [TEXT], tokenizer=tokenizer, features=("token",), show_progress=False)
    live = LiveProfiler(model, tokenizer, profile.meta)
    layer = profile.layers[-1]
    plain = live.run(TEXT, layer, trace_neuron=2).table
    given = live.run(TEXT, np.int64(layer), trace_neuron=np.int64(2)).table
    np.testing.assert_array_equal(plain["traced"], given["traced"])
    with pytest.raises(ConfigurationError, match=r"The traced neuron must be an int .*got 2\.7"):
        live.run(TEXT, layer, trace_neuron=2.7)
    with pytest.raises(ConfigurationError, match=r"Layer True was not profiled"):
        live.run(TEXT, True)


def test_the_live_tab_reads_a_negative_layer_among_the_layers_it_runs(tmp_path):
    """Brief 438: the Live tab read its layer through check_neuron, among every stage's layers: with a first stage
    profiled on layer 0 and a second on [0, 1], layer -1 ran as layer 1 and was refused ("Layer 1 was not profiled;
    layers: [0]") though the tab's default (the last layer it runs) is 0, and a layer out of range was refused naming
    layers the tab cannot run. -1 is the last layer of the stage it runs now, and a refusal names that stage's."""
    from hf_txray.viewer import app

    model, tokenizer = tiny("bert")
    run = lambda stage, layers: hf_txray.analyze(model, [TEXT] * 2, tokenizer=tokenizer, features=("token",),  # noqa: E731
                                                 layers=layers, stage=stage, show_progress=False)
    folder = str(hf_txray.save_to_disk(tmp_path / "results", [run("a", [0]), run("b", [0, 1])], [], plots=False))
    runner = app.AttributionModel((model, tokenizer))
    expected = app.live_text(folder, TEXT, 0, None, runner)
    for layer in (-1, "-1", None, ""):
        got = app.live_text(folder, TEXT, layer, None, runner)
        assert got[0] == expected[0] and "at layer 0 " in got[0] and got[3].equals(expected[3]), layer
    for layer in (1, 5, -2):
        with pytest.raises(ConfigurationError, match=re.escape(f"Layer {layer} is not a layer the Live tab runs "
                                                               "(those of stage 'a'); its layers: [0]")):
            app.live_text(folder, TEXT, layer, None, runner)
    with pytest.raises(ConfigurationError, match=re.escape("Pick a layer of [0] (got 'first')")):
        app.live_text(folder, TEXT, "first", None, runner)
