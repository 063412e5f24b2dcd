"""Live text (the Space's live tab, :class:`hf_txray.viewer.LiveProfiler`) against ``analyze`` on the same text.

The live table must hold exactly what ``analyze`` credits for that text, position by position (neuron and
activation): the same skipped first positions (decoders skip position 0 by default) and the same forward pass of
the profiled stack (an encoder-decoder's decoder is run with teacher forcing, not the whole model on the text).
"""

from __future__ import annotations

import numpy as np
import pytest

import hf_txray
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
