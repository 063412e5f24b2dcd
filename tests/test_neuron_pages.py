"""Neuron pages: activation histograms, win rate and first-position share (streaming, exact under merge, saved and
exported), checked against the brute-force reference's credited positions; output effects stored by analyze."""

from __future__ import annotations

import shutil

import dataclasses
import copy
import functools
from collections import defaultdict

import numpy as np
import pytest
import torch

import hf_txray
from hf_txray import Profile
from hf_txray.accumulators import HISTOGRAM, histogram_edges
from models import SAMPLE_TEXTS, bpe_tokenizer, tiny
from reference import reference_profile
from test_profile import profile_of, shards

FEATURES = ("token", "word", "pos")


@functools.cache
def brute_force():
    model, tokenizer = tiny("gpt2")
    # profile_of (test_profile) keeps analyze's default skip_first_positions="auto": 1 for this decoder
    assert profile_of(tuple(SAMPLE_TEXTS), 4).meta.config["skip_first_positions"] == 1
    return reference_profile(model, tokenizer, SAMPLE_TEXTS, feature_types=("token",), skip_first_positions=1)


def test_histogram_edges_span_the_activation_range():
    edges = histogram_edges(**HISTOGRAM)
    assert edges[0] <= 0.01 and edges[-1] >= 3000
    ratios = edges[1:] / edges[:-1]
    np.testing.assert_allclose(ratios, ratios[0])  # log-spaced: same relative resolution everywhere


def test_histogram_counts_every_credited_activation_in_its_bin():
    profile = profile_of(tuple(SAMPLE_TEXTS), 4)
    ref = brute_force()
    edges = np.r_[0.0, profile.histogram_edges(), np.inf]
    for (layer, neuron), credits in ref.credits.items():
        # np.histogram bins are [a, b) except the last; credited activations are > 0, below edges[0] -> bin 0
        want, _ = np.histogram([c.activation for c in credits], bins=edges)
        got = profile.activation_distribution(layer, neuron)["count"].to_numpy()
        # the engine pads batches: an activation within float noise of an edge may land next door, never further
        assert got.sum() == want.sum() == len(credits)
        assert np.abs(np.cumsum(got) - np.cumsum(want)).max() <= 1, (layer, neuron)
    uncredited = profile.histogram_counts().sum(-1)[profile.neuron_count == 0]
    assert (uncredited == 0).all()


def test_win_rate_and_top_position_share_match_brute_force():
    profile = profile_of(tuple(SAMPLE_TEXTS), 4)
    ref = brute_force()
    assert profile.meta.num_positions == ref.num_positions
    stats = profile.position_stats().set_index(["layer", "neuron"])
    rates = profile.win_rate()
    for (layer, neuron), credits in ref.credits.items():
        assert rates[layer, neuron] == pytest.approx(len(credits) / ref.num_positions, rel=1e-12)
        by_index = defaultdict(float)
        for c in credits:
            by_index[c.token_index] += c.activation
        best = max(sorted(by_index), key=lambda i: by_index[i])
        row = stats.loc[(layer, neuron)]
        assert row["top_position_share"] == pytest.approx(by_index[best] / sum(by_index.values()), rel=1e-4)
        ranked = sorted(by_index.values(), reverse=True)
        if len(ranked) == 1 or ranked[0] > 1.0001 * ranked[1]:  # a clear winner (not a float-noise tie)
            assert row["top_position"] == best
    silent = stats[profile.neuron_count.reshape(-1) == 0]
    assert (silent["top_position"] == -1).all() and (silent["top_position_share"] == 0).all()


def test_histograms_merge_exactly():
    whole = profile_of(tuple(SAMPLE_TEXTS), 4)
    first, second = shards([0, 4, len(SAMPLE_TEXTS)], 4)
    first.activation_histogram = profile_of(tuple(SAMPLE_TEXTS[:4]), 4).activation_histogram
    second.activation_histogram = profile_of(tuple(SAMPLE_TEXTS[4:]), 4).activation_histogram
    merged = first.merge(second)
    np.testing.assert_array_equal(merged.histogram_counts(), whole.histogram_counts())
    assert merged.activation_histogram.equals(whole.activation_histogram)


def test_merge_with_a_profile_without_histograms_drops_them():
    a, b = shards([0, 4, len(SAMPLE_TEXTS)], 4)  # shards carry no histograms (built without them)
    whole = profile_of(tuple(SAMPLE_TEXTS), 4)
    assert whole.merge(a).activation_histogram is None


def test_histograms_positions_and_output_effects_survive_save_and_load(tmp_path):
    profile = output_profile()
    assert profile.activation_histogram is not None and profile.output_effects is not None
    profile.save_pretrained(tmp_path / "p")
    loaded = Profile.from_pretrained(tmp_path / "p")
    assert loaded == profile
    np.testing.assert_array_equal(loaded.histogram_counts(), profile.histogram_counts())
    assert loaded.output_effects.equals(profile.output_effects)


def test_export_round_trip_keeps_neuron_page_data(tmp_path):
    profile = output_profile()
    hf_txray.save_to_disk(tmp_path / "out", profiles=[profile], plots=False)
    profiles, _ = hf_txray.load(tmp_path / "out")
    assert profiles[profile.stage] == profile
    import datasets

    outputs = datasets.load_dataset(str(tmp_path / "out"), "neuron_outputs", split="train").to_pandas()
    assert len(outputs) == len(profile.output_effects)
    assert set(outputs["direction"]) == {"promoted", "suppressed"}


@functools.cache
def _lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(bpe_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=44, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


@functools.cache
def output_profile() -> Profile:
    return hf_txray.analyze(_lm(), SAMPLE_TEXTS, tokenizer=bpe_tokenizer(), features=("token",), batch_size=4,
                            output_effects=True, output_effects_k=4, show_progress=False, stage="lm")


def test_analyze_stores_output_effects_of_every_neuron():
    profile = output_profile()
    effects = profile.output_effects
    assert len(effects) == 2 * 44 * 2 * 4
    direct = hf_txray.output_effects(_lm(), 1, 5, k=4, tokenizer=bpe_tokenizer())
    stored = effects[(effects["layer"] == 1) & (effects["neuron"] == 5)].reset_index(drop=True)
    assert stored[["direction", "rank", "token_id", "token"]].equals(direct[["direction", "rank", "token_id", "token"]])


def test_analyze_refuses_output_effects_without_lm_head_before_profiling():
    model, tokenizer = tiny("llama")
    with pytest.raises(hf_txray.ModelError, match="no LM head"):
        hf_txray.analyze(model, ["never profiled"], tokenizer=tokenizer, output_effects=True, show_progress=False)
    with pytest.raises(hf_txray.ConfigurationError, match="site='residual'"):
        hf_txray.analyze(_lm(), ["x"], tokenizer=bpe_tokenizer(), site="residual", output_effects=True,
                         show_progress=False)


# ----- the plain-words summary ---------------------------------------------------------------------------------
from hf_txray.summary import neuron_card, neuron_summary  # noqa: E402


def _card(**fields):
    card = {"count": 120, "win_rate": 0.0213,
            "top_pos": [{"feature": "NOUN", "probability": 0.61}, {"feature": "PROPN", "probability": 0.22},
                        {"feature": "VERB", "probability": 0.05}],
            "top_token": [{"feature": "year", "probability": 0.3}, {"feature": "years", "probability": 0.2},
                          {"feature": "months", "probability": 0.1}, {"feature": "days", "probability": 0.05}],
            "promoted": ["ago", "later", "earlier", "before"]}
    card.update(fields)
    return card


def test_neuron_summary_refuses_what_is_not_a_card():
    """Helper 369: neuron_summary(None) and neuron_summary("x") failed with an AttributeError ('NoneType' object has
    no attribute 'get'), a pandas row with one about its values, and a string report_row was ignored."""
    import pandas as pd

    for card in (None, "x", 3, pd.Series(_card())):
        with pytest.raises(hf_txray.ConfigurationError, match="card must be a mapping of its fields"):
            neuron_summary(card)
    with pytest.raises(hf_txray.ConfigurationError, match="report_row must be a mapping of its fields"):
        neuron_summary(_card(), "changed", ("a", "b"))
    assert neuron_summary(pd.Series(_card()).to_dict()) == neuron_summary(_card())


def test_summary_sentence_of_a_hand_built_card():
    report_row = {"changed_pos": True, "p_hellinger_pos": 0.0004, "hellinger_pos": 0.4}
    assert neuron_summary(_card(), report_row, ("pretrained", "fine-tuned")) == (
        "Wins 2.1% of positions, mostly NOUN (61.0%) and PROPN (22.0%); prefers 'year', 'years', 'months'; "
        "promotes 'ago', 'later', 'earlier'; changed beyond noise between pretrained and fine-tuned "
        "(pos, p < 0.001).")


def test_summary_leaves_out_clauses_whose_fields_are_absent():
    card = _card(top_pos=[{"feature": "DET", "probability": 0.93}, {"feature": "NOUN", "probability": 0.04}])
    del card["promoted"]
    # no p-value columns in the report: no change clause, however the neuron moved
    assert neuron_summary(card, {"hellinger_pos": 0.9}, ("a", "b")) == \
        "Wins 2.1% of positions, mostly DET (93.0%); prefers 'year', 'years', 'months'."
    assert neuron_summary({"count": 5, "win_rate": 0.0004, "top_token": [{"feature": "<s>", "probability": 1.0}],
                           "top_position": 0, "top_position_share": 0.98}) == \
        "Wins 0.04% of positions; prefers '<s>'; 98.0% of its mass from token position 0."
    assert neuron_summary(_card(count=0)) == "Never wins a position at this stage (dead)."
    p_large = neuron_summary(_card(), {"changed_pos": False, "p_hellinger_pos": 0.43}, ("a", "b"))
    assert p_large.endswith("no change beyond noise between a and b (pos, p = 0.43 before the Benjamini-Hochberg "
                            "correction).")



def test_summary_writes_a_tag_with_control_characters_on_one_line_shown_not_obeyed():
    """Helper 356: the sentence named the top tags as they were: a user tag "\\x1b[31mred" put its ESC into the
    exported summary, and `hf-txray show --neuron` turned the terminal red; a tag "a\\nb" broke the sentence in two.
    They are written as the tables write them now: line breaks as spaces, other control characters as "\\x1b"."""
    card = _card(top_pos=[{"feature": "\x1b[31mred", "probability": 0.6}, {"feature": "a\nb", "probability": 0.4}])
    sentence = neuron_summary(card)
    assert sentence.startswith("Wins 2.1% of positions, mostly \\x1b[31mred (60.0%) and a b (40.0%); ")
    assert not any(c in sentence for c in "\x1b\n\r\t")

def test_an_unflagged_neuron_s_sentence_says_its_p_value_is_before_the_correction():
    """Helper 348: on MiniLM PTB -> WikiText, 36 tested pos neurons have a p-value below 0.05 but no 'changed' flag
    (Benjamini-Hochberg over the report's neurons at alpha 0.05 flags p <= 0.0087 there); their sentence read "no
    change beyond noise between pretrained and wiki (pos, p = 0.012)", a contradiction for anyone reading p against
    alpha. It says the p-value is the neuron's own, before the correction; a flagged neuron's sentence is unchanged."""
    unflagged = neuron_summary(_card(), {"changed_pos": False, "p_hellinger_pos": 0.0117}, ("pretrained", "wiki"))
    assert unflagged.endswith("no change beyond noise between pretrained and wiki (pos, p = 0.012 before the "
                              "Benjamini-Hochberg correction).")
    flagged = neuron_summary(_card(), {"changed_pos": True, "p_hellinger_pos": 0.0087}, ("pretrained", "wiki"))
    assert flagged.endswith("changed beyond noise between pretrained and wiki (pos, p = 0.009).")


def test_neuron_card_fields_equal_the_exported_row_and_feed_the_summary(tmp_path):
    profile = output_profile()
    folder = hf_txray.save_to_disk(tmp_path / "out", profiles=[profile], plots=False)
    import pyarrow.parquet as pq

    rows = pq.read_table(next((folder / "neuron_cards").glob("*.parquet"))).to_pylist()
    checked = 0
    for exported in rows:
        if exported["count"] == 0 and checked > 3:
            continue
        card = neuron_card(profile, exported["layer"], exported["neuron"])
        for key in ("count", "win_rate", "top_position", "top_position_share", "promoted", "suppressed", "top_token"):
            assert card[key] == pytest.approx(exported[key]) if isinstance(card[key], float) else \
                card[key] == exported[key], key
        assert exported["summary"] == neuron_summary(card)
        checked += 1
    assert checked >= 10


def test_exported_summaries_carry_the_change_clause_of_the_report_ending_at_their_stage(tmp_path):
    """Helper 215: the exported `summary` column was built from the card alone, so it lacked the "changed beyond
    noise" clause that neuron_card, the viewer and `hf-txray show` give the same neuron (here 2 of stage B's 88
    neurons have one; none of the exported summaries had it). Each row equals neuron_card's summary now."""
    import pyarrow.parquet as pq

    b = output_profile()
    a = hf_txray.analyze(_lm(), SAMPLE_TEXTS[::-1], tokenizer=bpe_tokenizer(), features=("token",), batch_size=4,
                         output_effects=True, output_effects_k=4, stage="before", show_progress=False)
    report = hf_txray.compare(a, b)
    folder = hf_txray.save_to_disk(tmp_path / "out", profiles=[a, b], reports=[report], plots=False)
    rows = pq.read_table(next((folder / "neuron_cards").glob("*.parquet"))).to_pylist()
    profiles = {"before": a, "lm": b}
    clauses = 0
    for row in rows:
        card = neuron_card(profiles[row["stage"]], row["layer"], row["neuron"], reports=[report])
        assert row["summary"] == card.summary, (row["stage"], row["layer"], row["neuron"])
        clauses += "beyond noise" in row["summary"]
        assert row["stage"] == "lm" or "beyond noise" not in row["summary"]  # said once, on stage B
    assert len(rows) == 2 * 2 * 44 and clauses > 0


def test_neuron_card_refuses_a_fractional_neuron():
    """Helper 188: neuron 1.5 passed the range check and failed later with a bare IndexError."""
    with pytest.raises(hf_txray.errors.ConfigurationError, match="int index, got 1.5"):
        neuron_card(output_profile(), 0, 1.5)


def test_neuron_card_refuses_a_top_that_is_not_a_count():
    """top=-1 kept every feature but the last (pandas' head(-1)) and top=0 the default 10 without a word; top=2.5,
    True and '1' failed in pandas' positional indexing with a TypeError."""
    profile = output_profile()
    layer, neuron = profile.layers[0], int(np.argmax(profile.neuron_count[0]))
    every = neuron_card(profile, layer, neuron, top=1000).top_features["token"]
    assert len(every) >= 2 and neuron_card(profile, layer, neuron, top=np.int64(1)).top_features["token"] == every[:1]
    for top in (-1, 0, 2.5, 1.0, True, "1", float("nan")):
        with pytest.raises(hf_txray.ConfigurationError, match=r"top must be an int >= 1"):
            neuron_card(profile, layer, neuron, top=top)


def test_neuron_card_refuses_reports_that_are_not_a_list_of_reports():
    """neuron_card(profile, l, n, reports=report) (one report, not in a list) failed with a bare TypeError
    "'TransferReport' object is not iterable", and reports=[None] with an AttributeError."""
    profile = output_profile()
    report = hf_txray.compare(profile, profile)
    assert list(neuron_card(profile, 0, 0, reports=(r for r in [report])).status) == [report.name]
    for reports in (report, [None], [profile], "a->b", 3):
        with pytest.raises(hf_txray.ConfigurationError, match=r"reports must (be an iterable of|hold) TransferReport"):
            neuron_card(profile, 0, 0, reports=reports)


def test_neuron_card_record_holds_the_neuron_from_profile_and_reports():
    """The NeuronCard record: identity, stats, distributions, examples, histogram, output effects, status per report
    and summary, each equal to what the Profile and the TransferReport say."""
    from hf_txray.summary import NeuronCard

    b = output_profile()
    a = hf_txray.analyze(_lm(), SAMPLE_TEXTS[::-1][:5], tokenizer=bpe_tokenizer(), features=("token",),
                         output_effects=True, output_effects_k=3, stage="before", show_progress=False)
    report = hf_txray.compare(a, b)
    stats = b.neuron_stats()
    best = stats.sort_values("count", ascending=False).iloc[0]
    layer, neuron = int(best["layer"]), int(best["neuron"])
    card = neuron_card(b, layer, neuron, reports=[report])
    assert isinstance(card, NeuronCard) and (card.stage, card.layer, card.neuron) == (b.stage, layer, neuron)
    assert (card.expert, card.unit) == (None, None)  # a dense MLP
    assert card.count == int(best["count"]) and card.mass == pytest.approx(float(best["mass"]))
    assert card.positions == b.meta.num_positions and card.win_rate == pytest.approx(card.count / card.positions)
    want = b.feature_stats(layer, neuron, "token").head(10)
    assert [v["feature"] for v in card.top_features["token"]] == list(want["feature"])
    assert [v["probability"] for v in card.top_features["token"]] == pytest.approx(list(want["probability"]))
    examples = b.top_examples(layer, neuron)
    assert [e["token"] for e in card.top_examples] == list(examples["token"])
    assert [e["activation"] for e in card.top_examples] == pytest.approx(list(examples["activation"]))
    assert card.activation_histogram["count"].tolist() == b.activation_distribution(layer, neuron)["count"].tolist()
    assert card.activation_histogram["count"].sum() == card.count
    assert card.promoted == b.output_effects.query(
        "layer == @layer and neuron == @neuron and direction == 'promoted'").sort_values("rank")["token"].tolist()
    row = report.neurons[(report.neurons["layer"] == layer) & (report.neurons["neuron"] == neuron)].iloc[0]
    assert card.status == {report.name: row["status"]}
    assert card.summary == neuron_summary(card, row.to_dict(), (report.meta.stage_a, report.meta.stage_b))
    # the earlier stage: its status too, but no change clause (said once, on the later stage)
    early = neuron_card(a, layer, neuron, reports=[report])
    assert early.status == {report.name: row["status"]} and early.summary == neuron_summary(early)
    # a mixture-of-experts profile names expert and unit
    b.meta.config["expert_width"] = 4
    try:
        assert (neuron_card(b, layer, neuron).expert, neuron_card(b, layer, neuron).unit) == divmod(neuron, 4)
    finally:
        del b.meta.config["expert_width"]
    with pytest.raises(hf_txray.ConfigurationError, match="out of range"):
        neuron_card(b, layer, b.num_neurons)
    # helper 183: a report that names this stage but was made from another profile (another corpus under the same
    # stage name) gave the card its status and its "changed beyond noise" clause, without an error
    other = hf_txray.analyze(_lm(), SAMPLE_TEXTS[:3], tokenizer=bpe_tokenizer(), features=("token",),
                             stage=b.stage, show_progress=False)
    assert report.made_from(b, "b") and report.made_from(a) and not report.made_from(other, "b")
    for given in (report, None, "b"):  # a report failed "'TransferReport' object has no attribute 'stage'"
        with pytest.raises(hf_txray.ConfigurationError, match="made_from takes a Profile"):
            report.made_from(given)
    with pytest.raises(hf_txray.ConfigurationError, match="was not made from this profile"):
        neuron_card(other, layer, neuron, reports=[report])


def test_cli_show_neuron_prints_the_summary_and_output_effects(tmp_path, capsys):
    from hf_txray.cli import main as cli_main
    from hf_txray.display import profile_text

    profile = output_profile()
    profile.save_pretrained(tmp_path / "p")
    stats = profile.neuron_stats()
    best = stats.sort_values("count", ascending=False).iloc[0]
    layer, neuron = int(best["layer"]), int(best["neuron"])
    assert cli_main(["show", str(tmp_path), "--neuron", f"{layer}:{neuron}"]) == 0
    shown = capsys.readouterr().out
    card = neuron_card(profile, layer, neuron)
    assert neuron_summary(card) in shown
    assert "promotes: " + ", ".join(card["promoted"][:5]) in shown
    assert f"credits {card['count']} of {profile.meta.num_positions} positions" in shown
    assert cli_main(["show", str(tmp_path), "--neuron", "3-1"]) == 2
    # a results folder, and a folder holding one: show (and --neuron) found nothing in either
    hf_txray.save_to_disk(tmp_path / "runs" / "export", profiles=[profile])
    for where in (tmp_path / "runs" / "export", tmp_path / "runs"):
        assert cli_main(["show", str(where), "--neuron", f"{layer}:{neuron}"]) == 0
        assert neuron_summary(card) in capsys.readouterr().out
        assert cli_main(["show", str(where)]) == 0
        assert profile_text(profile).splitlines()[0] in capsys.readouterr().out


def test_cli_show_neuron_of_a_report_folder_prints_the_neuron_s_row(tmp_path, capsys):
    """`show REPORT --neuron L:N` said only "No hf_txray profile found" (helper 160's tester): a report's folder
    shows the neuron's row (status, credits, Hellinger, p-value, changed) and where its full page is."""
    from hf_txray.cli import main as cli_main
    from test_compare import make_pair

    with pytest.warns(UserWarning, match="no p-values"):  # hand-built profiles: the p-value is set below
        report = hf_txray.compare(*make_pair())
    rows = report.neurons
    tested = rows.index[(rows["layer"] == 4) & (rows["neuron"] == 0)][0]  # a shared neuron, tested by hand
    rows.loc[tested, "p_hellinger_pos"], rows.loc[tested, "changed_pos"] = 0.0004, True
    report.save_pretrained(tmp_path / "r")
    assert cli_main(["show", str(tmp_path / "r"), "--neuron", "4:0"]) == 0
    shown = capsys.readouterr().out
    row = rows.loc[tested]
    assert shown.startswith(f"Layer 4, neuron 0 in report {report.name}: shared (credited in both stages)\n")
    assert f"credits {row['count_a']} -> {row['count_b']}, mass {row['mass_a']:.3f} -> {row['mass_b']:.3f}" in shown
    assert (f"  pos: Hellinger {row['hellinger_pos']:.3f}, p < 0.001, changed yes; length {row['length_a_pos']} -> "
            f"{row['length_b_pos']}") in shown
    assert f"  token: Hellinger {row['hellinger_token']:.3f}, p -, changed -" in shown  # untested: not "no"
    assert "hf-txray show PROFILE_FOLDER --neuron 4:0" in shown
    lost = rows[(rows["status"] == "lost") & (rows["layer"] == 4)].iloc[0]  # -1: the last layer, as for profiles
    assert cli_main(["show", str(tmp_path / "r"), f"--neuron=-1:{lost['neuron']}"]) == 0
    shown = capsys.readouterr().out
    assert f"Layer 4, neuron {lost['neuron']} in report {report.name}: lost (credited only in A)" in shown
    assert "  token: Hellinger -, p -, changed -" in shown and f"--neuron 4:{lost['neuron']})" in shown
    # helper 162: every report of the folder is checked before any is printed, and the error names the report
    (tmp_path / "r" / "b").mkdir()
    report.save_pretrained(tmp_path / "r" / "b" / "again")
    assert cli_main(["show", str(tmp_path / "r"), "--neuron", "2:0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"Layer 2 is not in the report '{tmp_path / 'r'}'; its layers: [1, 4]" in err, (out, err)
    assert cli_main(["show", str(tmp_path / "r"), "--neuron", "4:0"]) == 0
    assert capsys.readouterr().out.count(f"Layer 4, neuron 0 in report {report.name}") == 2
    assert cli_main(["show", str(tmp_path / "r"), "--neuron", "4:6"]) == 2
    assert "Neuron 6 is out of range: layers have 6 neurons (0 to 5)." in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["show", str(tmp_path / "empty"), "--neuron", "4:0"]) == 2
    assert "No hf_txray profile or report found under" in capsys.readouterr().err


def test_analyze_by_path_loads_the_lm_head_and_refuses_a_checkpoint_without_one(tmp_path):
    _lm().save_pretrained(tmp_path / "lm")
    bpe_tokenizer().save_pretrained(tmp_path / "lm")
    profile = hf_txray.analyze(str(tmp_path / "lm"), SAMPLE_TEXTS[:3], features=("token",), output_effects=True,
                               output_effects_k=3, show_progress=False)
    direct = hf_txray.output_effects(_lm(), 0, 2, k=3, tokenizer=bpe_tokenizer())
    stored = profile.output_effects[(profile.output_effects["layer"] == 0) & (profile.output_effects["neuron"] == 2)]
    assert list(stored["token_id"]) == list(direct["token_id"])
    base, tokenizer = tiny("llama")  # a base model saved without an LM head
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    with pytest.raises(hf_txray.ModelError, match="missing from the checkpoint"):
        hf_txray.analyze(str(tmp_path / "base"), SAMPLE_TEXTS[:3], features=("token",), output_effects=True,
                         show_progress=False)


def test_activation_histogram_bins_edges_and_outliers_like_a_loop():
    from hf_txray.accumulators import ActivationHistogram

    edges = histogram_edges(**HISTOGRAM)
    rng = np.random.default_rng(0)
    values = np.r_[10 ** rng.uniform(-4, 5, 500), edges[[0, 5, -1]], 1e-9, 1e9]
    rows = rng.integers(0, 3, len(values))
    hist = ActivationHistogram(edges)
    hist.add(rows[:200], values[:200])
    hist.add(rows[200:], values[200:])
    want = np.zeros((3, len(edges) + 1), dtype=np.int64)
    for row, v in zip(rows, values):
        b = 0
        while b < len(edges) and v >= edges[b]:  # bin b holds edges[b-1] <= v < edges[b]
            b += 1
        want[row, b] += 1
    def dense(h):
        r, b, c = h.entries()
        out = np.zeros_like(want)
        out[r, b] = c
        return out

    np.testing.assert_array_equal(dense(hist), want)
    other = ActivationHistogram(edges)
    other.add(rows, values)
    np.testing.assert_array_equal(dense(hist.merge(other)), 2 * want)
    with pytest.raises(ValueError, match="different bin edges"):
        hist.merge(ActivationHistogram(edges[:-1]))


def test_cli_show_pairs_each_profile_with_its_own_report_and_lists_exports_beside_saved_folders(tmp_path, capsys):
    """Two experiments with the same stage names: `show --neuron` printed the first one's change line on the other's
    pages (helper 113); `show DIR` skipped a results folder as soon as DIR held a saved profile."""
    from hf_txray.cli import main as cli_main

    def experiment(seed: int):
        torch.manual_seed(seed)
        model = copy.deepcopy(_lm())  # _lm() is cached and shared: edited below
        torch.manual_seed(seed + 1)
        model.model.layers[0].mlp.up_proj.weight.data.normal_()
        options = dict(tokenizer=bpe_tokenizer(), features=("token",), show_progress=False)
        a = hf_txray.analyze(model, SAMPLE_TEXTS[:4], stage="pretrained", **options)
        b = hf_txray.analyze(model, SAMPLE_TEXTS[4:], stage="zeroshot", **options)
        return a, b, hf_txray.compare(a, b, test=False)

    runs = {name: experiment(seed) for name, seed in (("exp1", 0), ("exp2", 5))}
    for name, (a, b, report) in runs.items():
        hf_txray.save_to_disk(tmp_path / "all" / name, profiles=[a, b], reports=[report])
    rows = {name: r.neurons.set_index(["layer", "neuron"]) for name, (_, _, r) in runs.items()}
    layer, neuron = next((l, n) for l, n in rows["exp1"].index
                         if rows["exp1"].loc[(l, n), "status"] != rows["exp2"].loc[(l, n), "status"])
    assert cli_main(["show", str(tmp_path / "all"), "--neuron", f"{layer}:{neuron}"]) == 0
    pages = capsys.readouterr().out.split("== ")[1:]
    for name in runs:
        page = next(p for p in pages if p.startswith(str(tmp_path / "all" / name)) and "(pretrained)" in p)
        assert f"pretrained->zeroshot: {rows[name].loc[(layer, neuron), 'status']}" in page
    # the same experiments as saved folders (a report beside its profiles, not in one results folder): each page
    # takes the report nearest its folder (helper 114: the first report found was taken for both)
    for name, (a, b, report) in runs.items():
        for artifact, folder in ((a, "pretrained"), (b, "zeroshot"), (report, "report")):
            artifact.save_pretrained(tmp_path / "saved" / name / folder)
    assert cli_main(["show", str(tmp_path / "saved"), "--neuron", f"{layer}:{neuron}"]) == 0
    pages = capsys.readouterr().out.split("== ")[1:]
    for name in runs:
        page = next(p for p in pages if p.startswith(str(tmp_path / "saved" / name / "pretrained")))
        assert f"pretrained->zeroshot: {rows[name].loc[(layer, neuron), 'status']}" in page
    # an experiment without a report of its own does not take the other's (helper 115: exp1's Hellinger printed on
    # exp2's page), nor does a profile of another site
    shutil.rmtree(tmp_path / "saved" / "exp2" / "report")
    assert cli_main(["show", str(tmp_path / "saved"), "--neuron", f"{layer}:{neuron}"]) == 0
    pages = capsys.readouterr().out.split("== ")[1:]
    page = {name: next(p for p in pages if p.startswith(str(tmp_path / "saved" / name / "pretrained")))
            for name in runs}
    assert f"pretrained->zeroshot: {rows['exp1'].loc[(layer, neuron), 'status']}" in page["exp1"]
    assert "pretrained->zeroshot" not in page["exp2"]
    a, _, _ = runs["exp1"]
    residual = hf_txray.analyze(_lm(), SAMPLE_TEXTS[:4], stage="pretrained", site="residual", features=("token",),
                                tokenizer=bpe_tokenizer(), show_progress=False)
    assert residual.meta.model_id == a.meta.model_id and residual.neuron_count.sum() == a.neuron_count.sum()
    residual.save_pretrained(tmp_path / "saved" / "exp1" / "pretrained_residual")
    assert cli_main(["show", str(tmp_path / "saved" / "exp1"), "--neuron", f"{layer}:{neuron}"]) == 0
    pages = capsys.readouterr().out.split("== ")[1:]
    page = next(p for p in pages if p.startswith(str(tmp_path / "saved" / "exp1" / "pretrained_residual")))
    assert "pretrained->zeroshot" not in page
    # a saved profile beside results folders: both listed, the export of the same profile once, and a different
    # profile exported in the same second listed too
    runs["exp1"][0].save_pretrained(tmp_path / "all" / "saved")
    assert cli_main(["show", str(tmp_path / "all")]) == 0
    assert capsys.readouterr().out.count("Profile 'pretrained'") == 2
    other = hf_txray.Profile.from_pretrained(tmp_path / "all" / "saved")
    other.meta.stage = "renamed"
    hf_txray.save_to_disk(tmp_path / "all" / "other", profiles=[other])
    assert cli_main(["show", str(tmp_path / "all")]) == 0
    assert capsys.readouterr().out.count("Profile 'renamed'") == 1


def test_cli_show_neuron_of_a_stage_with_two_reports_prints_both_rows(tmp_path, capsys):
    """Helper 269: on the demo's export, `hf-txray show results/demo/hub --neuron 3:119` printed for pretrained-ptb
    (stage A of -> zeroshot-bbc and -> finetuned-bbc) "no change line: 2 reports under this folder may have been
    made from stage 'pretrained-ptb', and none is nearer this profile's folder than another's; show one
    experiment's folder": the folder shown was that one experiment. The neuron's row of each report follows."""
    from hf_txray.cli import main as cli_main
    from hf_txray.display import report_neuron_text

    options = dict(tokenizer=bpe_tokenizer(), features=("token",), show_progress=False)
    torch.manual_seed(0)
    model = _lm()
    a = hf_txray.analyze(model, SAMPLE_TEXTS[:4], stage="pretrained", **options)
    b = hf_txray.analyze(model, SAMPLE_TEXTS[4:], stage="zeroshot", **options)
    c = hf_txray.analyze(model, SAMPLE_TEXTS[2:6], stage="other", **options)
    ab, ac = hf_txray.compare(a, b, test=False), hf_txray.compare(a, c, test=False)
    hf_txray.save_to_disk(tmp_path / "hub", profiles=[a, b, c], reports=[ab, ac])
    layer, neuron = (int(v) for v in ab.neurons.loc[ab.neurons["status"] == "shared", ["layer", "neuron"]].iloc[0])
    assert cli_main(["show", str(tmp_path / "hub"), "--neuron", f"{layer}:{neuron}"]) == 0
    shown = capsys.readouterr().out
    page = next(p for p in shown.split("== ")[1:] if "(pretrained)" in p)
    assert "none is nearer" not in page
    assert "stage 'pretrained' is stage A of 2 reports here: pretrained->zeroshot, pretrained->other" in page
    assert report_neuron_text(ab, layer, neuron) in page and report_neuron_text(ac, layer, neuron) in page


def test_cli_show_neuron_states_the_change_of_the_first_report_ending_at_a_stage_b_of_several(tmp_path, capsys):
    """Helper 352: a results folder of three stages and the reports sa->sb, sb->sc, sa->sc: the exported card of
    stage sc says "changed beyond noise between sb and sc (token, p < 0.001)" (the first report ending there), but
    `hf-txray show --neuron` printed stage sc's summary without it: the two reports ending at sc tied, and the tie
    (written for the reports a stage A starts) left the page without a change clause. The page now says the
    exported card's sentence, on every stage."""
    import pandas as pd

    from hf_txray.cli import main as cli_main

    options = dict(tokenizer=bpe_tokenizer(), features=("token",), show_progress=False)
    torch.manual_seed(0)
    model = _lm()
    texts = [t for t in SAMPLE_TEXTS if t.strip()]
    a, b, c = (hf_txray.analyze(model, part, stage=stage, **options)
               for part, stage in ((texts[:2], "sa"), (texts[2:4], "sb"), (texts[4:], "sc")))
    reports = []
    for first, second in ((a, b), (b, c), (a, c)):
        with pytest.warns(UserWarning, match="no p-values"):  # a few texts: the p-value is set by hand below
            report = hf_txray.compare(first, second)
        rows = report.neurons
        shared = rows.index[rows["status"] == "shared"][0]
        rows.loc[shared, "p_hellinger_token"], rows.loc[shared, "changed_token"] = 0.0004, True
        reports.append(report)
    layer, neuron = int(rows.loc[shared, "layer"]), int(rows.loc[shared, "neuron"])
    hf_txray.save_to_disk(tmp_path / "hub", profiles=[a, b, c], reports=reports, plots=False)
    cards = pd.read_parquet(tmp_path / "hub" / "neuron_cards")
    cards = cards[(cards["layer"] == layer) & (cards["neuron"] == neuron)].set_index("stage")["summary"]
    assert "changed beyond noise between sb and sc (token, p < 0.001)" in cards["sc"]
    assert cli_main(["show", str(tmp_path / "hub"), "--neuron", f"{layer}:{neuron}"]) == 0
    pages = capsys.readouterr().out.split("== ")[1:]
    for stage in ("sa", "sb", "sc"):
        page = next(p for p in pages if f"({stage}): " in p)
        assert f"Layer {layer}, neuron {neuron} ({stage}): {cards[stage]}\n" in page


def test_cli_show_neuron_states_the_change_on_stage_b_s_page_as_the_exported_card(tmp_path, capsys):
    """Helper 348: `hf-txray show RESULTS --neuron 4:1167` (MiniLM, PTB -> WikiText) printed "changed beyond noise
    between pretrained and wiki (pos, p < 0.001)" in the summary of stage A's page (pretrained) and none on stage B's,
    while the exported neuron_cards summary, neuron_card() and the viewer state it on stage B's card only: the same
    neuron and stage read two sentences. Each page's summary is now its exported card's."""
    import pandas as pd

    from hf_txray.cli import main as cli_main

    options = dict(tokenizer=bpe_tokenizer(), features=("token",), show_progress=False)
    torch.manual_seed(0)
    model = _lm()
    a = hf_txray.analyze(model, SAMPLE_TEXTS[:4], stage="pretrained", **options)
    b = hf_txray.analyze(model, SAMPLE_TEXTS[4:], stage="zeroshot", **options)
    with pytest.warns(UserWarning, match="no p-values"):  # a few texts: the p-value is set by hand below
        report = hf_txray.compare(a, b)
    rows = report.neurons
    first = rows.index[rows["status"] == "shared"][0]
    rows.loc[first, "p_hellinger_token"], rows.loc[first, "changed_token"] = 0.0004, True
    layer, neuron = int(rows.loc[first, "layer"]), int(rows.loc[first, "neuron"])
    hf_txray.save_to_disk(tmp_path / "hub", profiles=[a, b], reports=[report], plots=False)
    cards = pd.read_parquet(tmp_path / "hub" / "neuron_cards")
    cards = cards[(cards["layer"] == layer) & (cards["neuron"] == neuron)].set_index("stage")["summary"]
    assert "changed beyond noise between pretrained and zeroshot (token, p < 0.001)" in cards["zeroshot"]
    assert "changed beyond noise" not in cards["pretrained"]
    assert cli_main(["show", str(tmp_path / "hub"), "--neuron", f"{layer}:{neuron}"]) == 0
    pages = capsys.readouterr().out.split("== ")[1:]
    for stage in ("pretrained", "zeroshot"):
        page = next(p for p in pages if f"({stage}): " in p)
        assert f"Layer {layer}, neuron {neuron} ({stage}): {cards[stage]}\n" in page
    # stage A's page keeps the neuron's row of the report it starts
    assert "pretrained->zeroshot: shared" in next(p for p in pages if "(pretrained): " in p)


def test_neuron_page_writes_shares_as_its_summary_does_never_a_rounded_100_percent(tmp_path):
    """Helper 348: a neuron taking 99.96% of its mass from position 0 (a decoder's first-token neuron) read "99.96% of
    its mass from token position 0" in its page's summary sentence but "mass from its top token position (0): 100.0%"
    a few lines below, and `show`'s padding share read "0.0%" for one padded token in 100,000: both are now written
    as hf_txray.tables.percent writes shares."""
    from hf_txray.accumulators import PositionMass
    from hf_txray.display import neuron_text, profile_text

    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    live = profile.neuron_stats().sort_values("count", ascending=False).iloc[0]
    layer, neuron = int(live["layer"]), int(live["neuron"])
    row = profile._row(layer, neuron)
    mass = PositionMass()
    mass.add(np.array([row, row]), np.array([0, 3]), np.array([9996.0, 4.0]))
    profile.position_mass = mass
    page = neuron_text(profile, layer, neuron)
    assert "99.96% of its mass from token position 0" in page.splitlines()[0]
    assert "mass from its top token position (0): 99.96%" in page and "100.0%" not in page
    profile.meta.num_input_tokens, profile.meta.num_padded_tokens = 99_999, 100_000
    assert "; padding 0.001%" in profile_text(profile)


def test_the_card_names_the_entropy_unit_of_the_neuron_cards(tmp_path):
    """Helper 348: the dataset card described the neuron_cards columns as "length, entropy" with no unit, though
    entropy_<ft> is in nats (a neuron split 0.60 / 0.24 / 0.16 has 0.944 there, 1.36 in bits): a reader of the card
    could not tell which. It says nats, as the values are."""
    from hf_txray.metrics import entropy

    assert entropy(np.array([0.5, 0.5])) == pytest.approx(np.log(2))  # nats, not 1 bit
    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    card = hf_txray.save_to_disk(tmp_path / "x", profiles=[profile], plots=False).joinpath("README.md").read_text()
    assert "entropy (nats)" in card


def test_tables_show_an_untested_neuron_s_changed_flag_as_unknown_not_no(tmp_path):
    """A neuron the per-neuron test did not judge (no p-value) has changed_<ft> False: the card's, the terminal's and
    the viewer's most-changed tables showed it as False / "no", read as "unchanged" (19 of MiniLM PTB -> BBC's 20
    most changed token neurons were untested). They show it as unknown; judged neurons keep True / False."""
    from hf_txray.display import report_text
    from hf_txray.tables import MISSING
    from hf_txray.viewer import ResultsView, transfer_table
    from test_compare import make_pair

    pair = make_pair()
    for profile in pair:  # the card ranks neurons credited 20 times with a POS (helper 273): three times the credits
        profile.tables["pos"] = dataclasses.replace(profile.tables["pos"], count=profile.tables["pos"].count * 3)
    with pytest.warns(UserWarning, match="no p-values"):  # hand-built profiles: two p-values are set below
        report = hf_txray.compare(*pair)
    rows = report.neurons
    ranked = report.most_changed(3, "pos", min_count=1)
    first, second = (rows.index[(rows["layer"] == la) & (rows["neuron"] == ne)][0]
                     for la, ne in zip(ranked["layer"][:2], ranked["neuron"][:2]))
    rows.loc[first, "p_hellinger_pos"], rows.loc[first, "changed_pos"] = 0.0004, True
    rows.loc[second, "p_hellinger_pos"], rows.loc[second, "changed_pos"] = 0.43, False

    shown = transfer_table(ResultsView("x", {}, {report.name: report}), report.name, "pos", n=3, min_count=1)
    assert list(shown["changed_pos"]) == ["yes", "no", MISSING]
    lines = report_text(report, top=3, min_count=1, legend=False).split("most changed neurons (pos")[1].splitlines()
    assert [line.split()[4] for line in lines[3:6]] == ["True", "False", MISSING]  # layer, neuron, H, p, changed
    card = hf_txray.save_to_disk(tmp_path / "export", reports=[report], plots=False).joinpath("README.md").read_text()
    table = card.split("Most changed neurons (pos)")[1].split("\n\n")[1].splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    flags = [[c.strip() for c in line.strip("|").split("|")][header.index("changed_pos")] for line in table[2:]]
    assert flags[:2] == ["True", "False"] and set(flags[2:]) == {MISSING}


def test_activation_facts_show_no_top_position_where_the_neuron_took_no_mass():
    """Helper 306: the neuron page's "win rate and first-position share" table gave a stage where the neuron was never
    credited the card's placeholders as figures: top position -1 and share from top position 0.0, read as a position
    (Python's "last") and a measured share. Both are missing there (drawn "–"); a credited neuron keeps its position
    (an integer) and share, as position_stats gives them."""
    from hf_txray.tables import MISSING
    from hf_txray.viewer import ResultsView, activation_facts
    from hf_txray.viewer.data import missing_shown

    model, tokenizer = tiny("bert")
    profile = hf_txray.analyze(model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False)
    view = ResultsView("x", {profile.stage: profile}, {})
    stats = profile.position_stats()
    dead = stats[profile.neuron_count.reshape(-1) == 0].iloc[0]
    live = stats[profile.neuron_count.reshape(-1) > 0].iloc[0]
    facts = activation_facts(view, int(dead["layer"]), int(dead["neuron"]), [profile.stage])
    assert facts["credits"].tolist() == [0] and facts[["top position", "share from top position"]].isna().all(None)
    shown = missing_shown(facts)
    assert shown["metadata"]["display_value"][0][-2:] == [MISSING, MISSING] and shown["data"][0][-2:] == [None, None]
    facts = activation_facts(view, int(live["layer"]), int(live["neuron"]), [profile.stage])
    assert facts["top position"].tolist() == [int(live["top_position"])]
    assert facts["share from top position"].tolist() == pytest.approx([live["top_position_share"]], abs=1e-4)


def test_a_neuron_card_reads_on_one_line_as_a_notebook_shows_it():
    """Helper 428: a notebook cell ending with ``neuron_card(...)`` showed the dataclass's repr, which held the
    activation histogram's table (its rows in the middle of a line) and every top example: about 5000 characters on
    58 lines for a MiniLM neuron. The repr is now one line, as a Profile's: identity, credits, top value per feature
    type, status and summary; the fields stay attributes."""
    profile = output_profile()
    layer, neuron = profile.layers[0], int(np.argmax(profile.neuron_count[0]))
    card = neuron_card(profile, layer, neuron)
    assert card.activation_histogram is not None and card.top_examples
    text = repr(card)
    assert "\n" not in text and len(text) < 400, text
    top = card.top_features["token"][0]["feature"]
    assert text.startswith(f"NeuronCard(stage='lm', layer={layer}, neuron={neuron}, count={card.count}, ")
    assert f"token={top!r}" in text and f"summary={card.summary!r}" in text
    long = dataclasses.replace(card, top_features={"token": [{"feature": "x" * 500}]})
    assert len(repr(long)) < 400  # a long value (a user feature's) is cut


def test_a_neuron_card_built_by_hand_has_a_repr():
    """Helper 434: the one-line repr read ``win_rate`` with ``:.4g`` and ``top_features[ft][0]["feature"]``, so a
    card built by hand with win_rate None, top values as plain strings, a table of them or no mapping at all raised
    (TypeError, KeyError, ValueError) where a notebook shows the card; it now shows what the card holds."""
    import pandas as pd

    from hf_txray.summary import NeuronCard

    base = dict(stage="s", layer=1, neuron=2, count=3, mass=1.0, win_rate=0.5, positions=6)
    cards = [NeuronCard(**{**base, "win_rate": None}, top_features={}),
             NeuronCard(**base, top_features={"pos": ["NOUN"]}),
             NeuronCard(**base, top_features={"pos": pd.DataFrame({"feature": ["NOUN"], "count": [3]})}),
             NeuronCard(**base, top_features={"pos": [{"value": "NOUN"}], "token": []}),
             NeuronCard(**base, top_features=None)]
    texts = [repr(card) for card in cards]
    assert "win_rate=None, top: -" in texts[0]
    assert "top: pos='NOUN'," in texts[1] and "top: pos='NOUN'," in texts[2] and "NOUN" in texts[3]
    assert "top: -" in texts[4] and not any("\n" in text for text in texts)
