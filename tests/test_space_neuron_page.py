"""The Space's neuron page (summary, output effects, activation distribution) and Live text tab, through
gradio_client against the launched app, and the Live text tab in a real browser (Chromium via Playwright).

The fixture: a tiny BERT with its MLM head, profiled at two stages with ``output_effects=True``; the viewer gets the
stage-A model, so the Live text tab's winners must equal ``analyze`` on the same text with that model.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hf_txray
from hf_txray.summary import neuron_card, neuron_summary
import reference
from models import SAMPLE_TEXTS, bert_tokenizer, bpe_tokenizer, tiny_llama_lm
from space_helpers import BROWSER_ARGS, CHROMIUM, frame, opened_client, serve

# gradio is imported by the tests that use it (through hf_txray.viewer.app), not at collection (~4 CPU-s)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="the Space needs gradio: pip install -e '.[space]'")

ROOT = Path(__file__).resolve().parents[1]
LIVE_TEXT = "Prices rose 42% in New York last year, and the quick brown fox jumped over it."


def mlm(seed: int):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=128)
    return BertForMaskedLM(config).eval()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TXRAY_CACHE", str(tmp_path_factory.mktemp("txray-cache")))
        model = mlm(0)
        run = lambda net, stage: hf_txray.analyze(  # noqa: E731
            net, SAMPLE_TEXTS, tokenizer=bert_tokenizer(), features=("token", "pos"), stage=stage,
            output_effects=True, output_effects_k=5, show_progress=False)
        a, b = run(model, "pretrained"), run(mlm(1), "finetuned")
    report = hf_txray.compare(a, b)
    folder = hf_txray.save_to_disk(tmp_path_factory.mktemp("pages") / "results", [a, b], [report], plots=False)
    return a, b, report, folder, model


@pytest.fixture(scope="module")
def served(pages):
    from hf_txray.viewer import app

    with serve(app.build_demo(str(pages[3]), model=(pages[4], bert_tokenizer()))) as url:
        yield url


@pytest.fixture
def client(served, pages):
    return opened_client(served, str(pages[3]))


def busiest(profile) -> tuple[int, int]:
    stats = profile.neuron_stats().sort_values(["count", "layer", "neuron"], ascending=[False, True, True])
    return int(stats["layer"].iloc[0]), int(stats["neuron"].iloc[0])


def test_neuron_page_summary_outputs_and_activations(client, pages):
    a, b, report = pages[:3]
    layer, neuron = busiest(a)
    summary, message, outputs, chart, facts = client.predict(layer, neuron, "pretrained", "finetuned",
                                                             api_name="/neuron_page")
    line_a, line_b = summary.split("\n")
    assert line_a == f"pretrained: {neuron_summary(neuron_card(a, layer, neuron))}"
    assert line_b.startswith(f"finetuned: {neuron_summary(neuron_card(b, layer, neuron))[:-1]}")
    outputs = frame(outputs)
    for stage, profile in (("pretrained", a), ("finetuned", b)):
        mine = outputs[outputs["stage"] == stage]
        effects = profile.output_effects
        want = effects[(effects["layer"] == layer) & (effects["neuron"] == neuron)]
        assert list(mine["promoted"]) == list(want[want["direction"] == "promoted"]["token"])
        assert list(mine["suppressed"]) == list(want[want["direction"] == "suppressed"]["token"])
    assert "promoted" in message
    facts = frame(facts).set_index("stage")
    assert facts.loc["pretrained", "credits"] == a.neuron_count[a.layers.index(layer), neuron]
    assert facts.loc["pretrained", "win rate"] == pytest.approx(
        a.neuron_count[a.layers.index(layer), neuron] / a.meta.num_positions, abs=1e-4)
    spec = chart["plot"] if isinstance(chart, dict) else chart
    assert '"count"' in str(spec) and "log" in str(spec)


def test_the_activation_histogram_draws_bars_from_zero(pages):
    """Helper 236: the neuron page's histogram gave each bin x, x2 and y but no y2, so Vega-Lite drew ranged bars
    along x: in Chromium each bin was a thin dash at the height of its count (0.055-0.07 a dash on the axis), not a
    bar. The bars now rise from zero (y2 = 0), and the spec's counts are the stage's histogram."""
    from hf_txray import viewer
    from hf_txray.viewer import figures

    a, b, report, folder, _ = pages
    layer, neuron = busiest(a)
    view = viewer.open_results(str(folder))
    spec = figures.histogram_chart(view, layer, neuron, "pretrained", "finetuned")
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["y"]["field"] == "count"
    assert spec["encoding"].get("y2") == {"datum": 0}, spec["encoding"]
    counts = [v["count"] for v in spec["data"]["values"] if v["stage"] == "pretrained"]
    assert sum(counts) == a.neuron_count[a.layers.index(layer), neuron]


def test_live_tab_winners_equal_analyze_on_the_same_text(client, pages):
    model = pages[4]
    profile = hf_txray.analyze(model, [LIVE_TEXT], tokenizer=bert_tokenizer(), features=("token",),
                               show_progress=False)
    for layer in profile.layers:
        message, spans, trace_spans, table = client.predict(LIVE_TEXT, layer, 7, api_name="/live_text")
        table = frame(table)
        assert message.startswith(f"{len(table)} token(s)")
        credited = table[table["neuron"] >= 0]
        counts = np.bincount(credited["neuron"].astype(int), minlength=profile.num_neurons)
        np.testing.assert_array_equal(counts, profile.neuron_count[profile.layers.index(layer)])
        mass = np.bincount(credited["neuron"].astype(int), weights=credited["activation"],
                           minlength=profile.num_neurons)
        np.testing.assert_allclose(mass, profile.neuron_mass[profile.layers.index(layer)], atol=1e-3)
        # the whole text is shown, token by token, each token followed by its winner's number (subscript)
        shown = "".join(s["token"] for s in spans)
        assert re.sub("[₀-₉]", "", shown) == LIVE_TEXT
        winners = [n for n in table["neuron"].astype(int) if n >= 0]
        assert [int(m.translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789"))) for m in re.findall("[₀-₉]+", shown)] \
            == winners
        assert "".join(s["token"] for s in trace_spans) == LIVE_TEXT
        assert "neuron 7" in table.columns


def test_live_tab_bad_input_gives_messages(client):
    assert client.predict("   ", 0, None, api_name="/live_text")[0] == "Type or paste some text."
    assert "out of range" in client.predict("Some text.", 0, 4800, api_name="/live_text")[0]


def test_live_tab_refuses_a_fractional_layer(client):
    """Helper 220: the Live tab's layer box (a dropdown that takes typed values) was read with int(): layer 1.5 (or
    True) ran layer 1 and 0.99 layer 0, "credited at layer 1" without a word. It is read as the Neuron tab reads
    indices now."""
    for layer in (0.5, 0.99, "0.5"):
        message = client.predict("Some text.", layer, None, api_name="/live_text")[0]
        assert message.startswith("The layer number must hold whole numbers"), (layer, message)
    assert "credited at layer 0" in client.predict("Some text.", 0.0, None, api_name="/live_text")[0]

def test_live_tab_without_a_model_says_how_to_enable_it(pages):
    from hf_txray.viewer import app

    with pytest.raises(hf_txray.ConfigurationError, match="needs the model"):
        app.live_text(str(pages[3]), LIVE_TEXT, 0, None, app.AttributionModel(None))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="!!! BROWSER TEST NOT RUN: /usr/bin/chromium is missing !!!")
def test_live_tab_in_the_browser(served, pages, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    expect = playwright.expect
    update = os.environ.get("HF_TXRAY_UPDATE_SCREENSHOTS") == "1"
    shots = ROOT / "docs" / "screenshots" if update else tmp_path
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served)
            expect(page.locator("#status textarea")).to_have_value(re.compile("^Opened "), timeout=60_000)
            page.get_by_role("tab", name="Live text").click()
            page.locator("#live-input textarea").fill(LIVE_TEXT)
            # helper 236: the optional neuron box (a gr.Number) showed and sent 0 when empty, so every run traced
            # neuron 0 unasked; left empty, nothing is traced
            trace = page.locator("#live-trace-neuron input, #live-trace-neuron textarea").first
            assert trace.input_value() == ""
            page.locator("#live-run").click()
            expect(page.locator("#live-message textarea")).to_have_value(re.compile(r"token\(s\)"), timeout=30_000)
            expect(page.locator("#live-table thead")).to_contain_text("activation")
            assert "neuron 0" not in page.locator("#live-table thead").inner_text()
            trace.fill("7")
            page.locator("#live-run").click()
            expect(page.locator("#live-table thead")).to_contain_text("neuron 7", timeout=30_000)
            expect(page.locator("#live-winners")).to_contain_text("Prices")
            page.screenshot(path=str(shots / "live.png"), full_page=True)
            # click a token: the Neuron tab opens on that token's winner
            first = page.locator("#live-table [role=row][aria-rowindex='2'] [role=gridcell]")
            layer, neuron = first.nth(2).inner_text().strip(), first.nth(3).inner_text().strip()
            page.locator("#live-winners").get_by_text("Prices", exact=True).first.click()
            expect(page.get_by_role("tab", name="Neuron")).to_have_attribute("aria-selected", "true",
                                                                            timeout=30_000)
            expect(page.locator("#neuron-title textarea")).to_have_value(
                re.compile(rf"^Layer {layer}, neuron {neuron}: "), timeout=30_000)
            expect(page.locator("#neuron-summary textarea")).to_have_value(re.compile("^pretrained: Wins "),
                                                                          timeout=30_000)
            expect(page.locator("#output-effects")).to_contain_text("promoted")
            page.screenshot(path=str(shots / "neuron_page.png"), full_page=True)
        finally:
            browser.close()


def test_viewer_summary_adds_the_change_clause_only_with_significance_columns(pages):
    from hf_txray import viewer

    a, b, report = pages[:3]
    layer, neuron = busiest(a)
    bare = report.neurons.drop(columns=[c for c in report.neurons.columns if c.startswith(("changed_", "p_hellinger_"))])
    report = hf_txray.TransferReport(report.meta, bare, report.layers, report.mass_share)
    plain = viewer.ResultsView("x", {"pretrained": a, "finetuned": b}, {report.name: report})
    lines = viewer.neuron_summary(plain, layer, neuron, "pretrained", "finetuned").split("\n")
    assert "noise" not in "".join(lines)
    tested = hf_txray.TransferReport(report.meta, report.neurons.copy(), report.layers, report.mass_share)
    tested.neurons["changed_pos"] = False
    tested.neurons["p_hellinger_pos"] = 0.5
    row = plain.row(layer, neuron)
    tested.neurons.loc[row, "changed_pos"], tested.neurons.loc[row, "p_hellinger_pos"] = True, 0.0002
    view = viewer.ResultsView("y", {"pretrained": a, "finetuned": b}, {report.name: tested})
    first, second = viewer.neuron_summary(view, layer, neuron, "pretrained", "finetuned").split("\n")
    assert first == lines[0]  # said once, on the later stage
    assert second == lines[1][:-1] + "; changed beyond noise between pretrained and finetuned (pos, p < 0.001)."


def test_live_tab_follows_a_stage_profiled_again(pages, tmp_path):
    """The Live text engine is set up with the opened stage's settings; a source read again whose stage was profiled
    again with other settings (top_k=2 here) is run with the new ones. It was kept per source name, so the tab went on
    crediting one winner per token (the old top_k) beside a profile that credits two."""
    from hf_txray.viewer import app

    model = pages[4]
    source = tmp_path / "results"
    run = lambda top_k: hf_txray.analyze(  # noqa: E731
        model, SAMPLE_TEXTS, tokenizer=bert_tokenizer(), features=("token",), stage="pretrained", top_k=top_k,
        show_progress=False)
    attribution = app.AttributionModel((model, bert_tokenizer()))
    hf_txray.save_to_disk(source, [run(1)], plots=False)
    app.open_results(str(source), reload=True)
    assert "neuron_2" not in app.live_text(str(source), LIVE_TEXT, 0, None, attribution)[3].columns
    again = run(2)
    hf_txray.save_to_disk(source, [again], plots=False)
    app.open_results(str(source), reload=True)  # the Open button
    table = app.live_text(str(source), LIVE_TEXT, 0, None, attribution)[3]
    assert "neuron_2" in table.columns


def test_live_tab_defaults_to_a_layer_of_its_stage(pages, tmp_path):
    """With stages profiled on different layers the viewer lists them all; the Live text tab runs the first stage's
    settings, so its layers (and its default, the last) are that stage's."""
    from hf_txray.viewer import app, data

    model = pages[4]
    run = lambda stage, layers: hf_txray.analyze(  # noqa: E731
        model, SAMPLE_TEXTS, tokenizer=bert_tokenizer(), features=("token",), stage=stage, layers=layers,
        show_progress=False)
    source = str(hf_txray.save_to_disk(tmp_path / "results", [run("first", [0]), run("both", "all")], plots=False))
    view = data.open_results(source, reload=True)
    assert view.layers == [0, 1] and app.live_tab_layers(view) == [0]
    message, *_ = app.live_text(source, LIVE_TEXT, None, None, app.AttributionModel((model, bert_tokenizer())))
    assert "credited at layer 0" in message


# ----- stages profiled on different layers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """One tiny Llama LM profiled at three stages on different layers ('first' on [0], 'both' on [0, 1], 'last' on
    [1]), with output effects, saved together."""
    model, tokenizer = tiny_llama_lm(0), bpe_tokenizer()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TXRAY_CACHE", str(tmp_path_factory.mktemp("txray-cache")))
        run = lambda stage, layers: hf_txray.analyze(  # noqa: E731
            model, SAMPLE_TEXTS, tokenizer=tokenizer, features=("token",), stage=stage, layers=layers,
            output_effects=True, output_effects_k=3, show_progress=False)
        profiles = {p.stage: p for p in (run("first", [0]), run("both", [0, 1]), run("last", [1]))}
    folder = hf_txray.save_to_disk(tmp_path_factory.mktemp("layered") / "results", list(profiles.values()),
                                   plots=False)
    return model, tokenizer, profiles, str(folder)


def test_the_neuron_page_of_a_layer_one_stage_lacks_shows_the_other_and_says_why(layered):
    """Helper 440: with stage 'first' profiled on layer 0 only and 'both' on layers 0 and 1, the Neuron tab of a
    layer-1 neuron with stages 'first' and 'both' failed as a whole with Profile.feature_stats' "Layer 1 was not
    profiled; its layers: [0] (or negative indices, counted from the last of them).", which named no stage (the
    summary, facts and histogram of the neuron page too). It now shows what 'both' holds, checked against a
    brute-force count, and says for 'first' that layer 1 was not profiled there."""
    from hf_txray import viewer
    from hf_txray.viewer import app

    model, tokenizer, profiles, source = layered
    ref = reference.reference_profile(model, tokenizer, SAMPLE_TEXTS, feature_types=("token",))
    neuron = max(range(profiles["both"].num_neurons), key=lambda n: (ref.neuron_count[1, n], -n))
    note = "layer 1 was not profiled at stage 'first' (its layers: [0])"
    title, stats, comparison, _, shown_a, shown_b, examples, distributions = app.show_neuron(
        source, 1, neuron, "first", "both")
    assert title == f"Layer 1, neuron {neuron}: shown at stage 'both' only, as {note}."
    stats = stats.set_index("stage")
    assert stats.loc["first", "status"] == "layer not profiled" and pd.isna(stats.loc["first", "count"])
    assert stats.loc["both", "count"] == ref.neuron_count[1, neuron] > 0
    assert stats.loc["both", "mass"] == pytest.approx(ref.neuron_mass[1, neuron], rel=1e-3)
    assert not len(comparison)  # compare refuses profiles of different layers
    assert shown_a == [(f"No examples: {note}.", None)] and shown_b[0][0].startswith("#1 ")
    best = ref.top_examples(len(examples))[1, neuron]
    assert set(examples["stage"]) == {"both"}
    np.testing.assert_allclose(examples["activation"], [e.activation for e in best], rtol=1e-3)
    mine = {value: count for (la, ne, value), count in ref.count["token"].items() if (la, ne) == (1, neuron)}
    assert set(distributions["stage"]) == {"both"}
    assert dict(zip(distributions["feature"], distributions["count"])) == {
        f: mine[f] for f in distributions["feature"]}
    summary, message, outputs, _, facts = app.show_neuron_page(source, 1, neuron, "first", "both")
    assert summary.split("\n")[0] == f"first: {note}."
    assert summary.split("\n")[1].startswith("both: Wins ")
    assert message.endswith(f" {note[0].upper()}{note[1:]}.")
    effects = profiles["both"].output_effects
    want = effects[(effects["layer"] == 1) & (effects["neuron"] == neuron) & (effects["direction"] == "promoted")]
    assert set(outputs["stage"]) == {"both"} and list(outputs["promoted"]) == list(want["token"])
    assert list(facts["stage"]) == ["both"] and facts["credits"].iat[0] == ref.neuron_count[1, neuron]

    # a stage profiled on layer 1 alone, at layer 0
    title = app.show_neuron(source, 0, neuron, "last", "both")[0]
    assert "shown at stage 'both' only, as layer 0 was not profiled at stage 'last' (its layers: [1])." in title
    # neither stage of the pair holds the layer: nothing to show, one error naming the stage and its layers
    message = ("Layer 1 was not profiled at stage 'first' (its layers: [0]): pick one of its layers, or a stage "
               "profiled on layer 1 ('both', 'last').")
    for call in (app.show_neuron, app.show_neuron_page):
        with pytest.raises(hf_txray.ConfigurationError, match=re.escape(message)):
            call(source, 1, neuron, "first", "first")
    view = viewer.open_results(source)
    with pytest.raises(hf_txray.ConfigurationError, match="Layer 1 was not profiled in stage 'first'"):
        viewer.neuron_features(view, "first", "token", 1, neuron)


def test_the_search_tab_names_the_stage_a_layer_was_not_profiled_at(layered):
    """Helper 440: the Search tab's layer filter (every layer of the results) on a layer the searched stage was not
    profiled on said "Layer 1 is not a layer of this table; its layers: [0]", naming no stage; the Transfer tab and
    the status and Hellinger searches name their report the same way (tests/test_space.py)."""
    from hf_txray.viewer import app

    *_, source = layered
    with pytest.raises(hf_txray.ConfigurationError, match=re.escape(
            "Layer 1 is not a layer of stage 'first'; its layers: [0]")):
        app.search_feature(source, "first", "token", "Ġthe", "mass", 1, 10, 1)
    message, table, _ = app.search_feature(source, "both", "token", "Ġthe", "mass", 1, 10, 1)
    assert len(table) and set(table["layer"]) == {1}, message


def test_a_stage_known_only_from_a_report_beside_a_profiled_stage(pages, tmp_path):
    """Helper 447: with stage 'third' profiled and stage 'finetuned' known only from report 'pretrained->finetuned'
    (no report of the pair), the Neuron tab refused the pair on every layer ("No report compares 'third' with
    'finetuned', and one of them has no profile"), while the neuron page showed 'third' alone and said nothing of
    'finetuned'. Both show what is known now: 'third''s profile, 'finetuned''s credits from its report, and say what
    is missing for it (no distributions, examples, Hellinger distance, summary, output effects or activations)."""
    import copy
    import dataclasses

    from hf_txray.viewer import app

    a, b, report = pages[:3]
    third = copy.copy(b)  # the fine-tuned model's profile, under another stage name
    third.meta = dataclasses.replace(b.meta, stage="third")
    source = str(hf_txray.save_to_disk(tmp_path / "results", [third], [report], plots=False))
    layer, neuron = busiest(b)
    stats_b = b.neuron_stats().set_index(["layer", "neuron"]).loc[(layer, neuron)]
    missing = "stage 'finetuned' has no profile in these results (it is known only from report 'pretrained->finetuned')"
    for pair in (("third", "finetuned"), ("finetuned", "third")):
        title, stats, comparison, _, shown_a, shown_b, examples, distributions = app.show_neuron(
            source, layer, neuron, *pair)
        assert title == (f"Layer {layer}, neuron {neuron}: no report compares stage A ({pair[0]}) with stage B "
                         f"({pair[1]}), and {missing}: its credits, mass and lengths are that report's, with no "
                         "distributions, examples or Hellinger distance.")
        stats = stats.set_index("stage")
        for stage in pair:  # the same model's numbers: from the profile at 'third', from the report at 'finetuned'
            assert stats.loc[stage, "status"] == "credited" and stats.loc[stage, "count"] == stats_b["count"] > 0
            assert stats.loc[stage, "mass"] == pytest.approx(stats_b["mass"], rel=1e-3)
            assert stats.loc[stage, "length_token"] == stats_b["length_token"]
        assert not len(comparison)
        shown = dict(zip(pair, (shown_a, shown_b)))
        assert shown["finetuned"] == [("No profile for stage finetuned in these results: no examples.", None)]
        assert shown["third"][0][0].startswith("#1 ")
        assert set(examples["stage"]) == set(distributions["stage"]) == {"third"}
        np.testing.assert_allclose(examples["activation"], b.top_examples(layer, neuron)["activation"], rtol=1e-3)
        summary, message, outputs, _, facts = app.show_neuron_page(source, layer, neuron, *pair)
        lines = dict(line.split(": ", 1) for line in summary.split("\n"))
        assert lines["finetuned"] == f"no summary, as {missing}."
        assert lines["third"] == neuron_summary(neuron_card(b, layer, neuron))
        assert message.endswith(f" {missing[0].upper()}{missing[1:]}: no output effects or activations.")
        assert set(outputs["stage"]) == set(facts["stage"]) == {"third"}


def test_a_profiled_stage_beside_a_report_only_stage_of_other_layers(layered, tmp_path):
    """Review 448: with stage 'first' profiled on layer 0 and stage 'late' known only from report 'last->late' of
    layer 1, the Neuron tab of a layer-0 neuron failed as a whole with "Layer 0 was not profiled in report
    'last->late'" (neuron_status read the report's row of a layer it does not hold), where a profiled stage of other
    layers is shown beside the other one. It shows 'first' now and says layer 0 was not profiled at 'late'."""
    import copy
    import dataclasses

    from hf_txray.viewer import app

    _, _, profiles, _ = layered
    late = copy.copy(profiles["last"])
    late.meta = dataclasses.replace(late.meta, stage="late")
    source = str(hf_txray.save_to_disk(tmp_path / "results", [profiles["first"]],
                                       [hf_txray.compare(profiles["last"], late)], plots=False))
    layer, neuron = busiest(profiles["first"])
    assert layer == 0
    for pair in (("first", "late"), ("late", "first")):
        title, stats, comparison, *_ = app.show_neuron(source, layer, neuron, *pair)
        assert title == (f"Layer 0, neuron {neuron}: shown at stage 'first' only, as layer 0 was not profiled at "
                         "stage 'late' (its layers: [1]).")
        stats = stats.set_index("stage")
        assert stats.loc["late", "status"] == "layer not profiled"
        want = profiles["first"].neuron_stats().set_index(["layer", "neuron"]).loc[(layer, neuron)]
        assert stats.loc["first", "count"] == want["count"] > 0 and not len(comparison)


def test_a_report_only_stage_of_two_reports_of_other_layers_is_read_on_each(late_known_from_two_reports):
    """Helper 451: stage 'late' known only from reports 'last->late' (layer 1) and 'first->late' (layer 0) was read
    with the first report's layers alone: the Neuron tab of a layer-0 neuron said "layer 0 was not profiled at stage
    'late' (its layers: [1])" (silent: the second report holds it) and showed no numbers for it. Each layer is read
    from a report that holds it now, checked against a brute-force count; the pair's own report comes first."""
    from hf_txray import viewer
    from hf_txray.viewer import app

    source, ref = late_known_from_two_reports
    report_of = {0: "first->late", 1: "last->late"}  # the report holding each layer
    view = viewer.open_results(source)
    assert view.stage_layers("late") == [0, 1]
    assert [view.stage_report("late", layer).name for layer in (0, 1)] == ["first->late", "last->late"]
    assert view.stage_report("late", beside=["first"]).name == "first->late"  # the pair's report first
    for layer in (0, 1):
        neuron = max((n for la, n in ref.neuron_count if la == layer), key=lambda n: ref.neuron_count[layer, n])
        for pair in (("both", "late"), ("late", "both")):
            title, stats, *_ = app.show_neuron(source, layer, neuron, *pair)
            assert "not profiled" not in title and f"known only from report '{report_of[layer]}'" in title
            stats = stats.set_index("stage")
            assert stats.loc["late", "status"] == "credited"
            assert stats.loc["late", "count"] == stats.loc["both", "count"] == ref.neuron_count[layer, neuron] > 0
            summary = app.show_neuron_page(source, layer, neuron, *pair)[0]
            assert f"late: no summary, as stage 'late' has no profile in these results (it is known only from " \
                   f"report '{report_of[layer]}')." in summary.split("\n")


@pytest.fixture(scope="module")
def late_known_from_two_reports(layered, tmp_path_factory):
    """Profile 'both' (layers 0 and 1) saved with reports 'last->late' (layer 1) and 'first->late' (layer 0) alone:
    stages 'first', 'last' and 'late' are known only from them. Returns the source and a brute-force reference."""
    import copy
    import dataclasses

    model, tokenizer, profiles, _ = layered

    def late(profile):
        renamed = copy.copy(profile)
        renamed.meta = dataclasses.replace(profile.meta, stage="late")
        return renamed

    reports = [hf_txray.compare(profiles["last"], late(profiles["last"])),
               hf_txray.compare(profiles["first"], late(profiles["first"]))]
    source = hf_txray.save_to_disk(tmp_path_factory.mktemp("late") / "results", [profiles["both"]], reports,
                                   plots=False)
    skip = profiles["both"].meta.config["skip_first_positions"]
    ref = reference.reference_profile(model, tokenizer, SAMPLE_TEXTS, feature_types=("token",),
                                      skip_first_positions=skip)
    return str(source), ref


def test_the_stages_table_counts_a_report_only_stage_on_every_layer_of_its_reports(layered,
                                                                                  late_known_from_two_reports):
    """Review 455: with stage 'late' known only from reports 'last->late' (layer 1) and 'first->late' (layer 0), the
    Neuron tab reads it on both layers (helper 451), but the overview's stages table counted its neurons and credited
    neurons in the first report alone: 24 neurons, those of layer 1 (silent). Each layer is counted from a report that
    holds it now, checked against a brute-force count."""
    from hf_txray import viewer
    from hf_txray.viewer import tables

    source, ref = late_known_from_two_reports
    width = layered[2]["both"].num_neurons
    credited = sum(1 for layer in (0, 1) for n in range(width) if ref.neuron_count[layer, n] > 0)
    row = tables.stages_table(viewer.open_results(source)).set_index("stage").loc["late"]
    assert (row["neurons"], row["credited neurons"]) == (2 * width, credited)
    assert credited > sum(ref.neuron_count[1, n] > 0 for n in range(width))  # more than layer 1's alone


def test_a_pair_whose_report_lacks_the_layer_shows_the_stage_that_holds_it(layered, late_known_from_two_reports):
    """Review 455: 'late' is read on layers 0 and 1 (its reports' union, helper 451), and 'first' on layer 0 alone.
    The Neuron tab of the pair ('first', 'late') on layer 1 failed as a whole with "Layer 1 was not profiled in report
    'first->late' (its layers: [0])": the status, Hellinger table and summary read the pair's report on a layer it
    lacks. It shows 'late' now (from 'last->late', checked against a brute-force count) and says 'first' lacks it."""
    from hf_txray.viewer import app

    source, ref = late_known_from_two_reports
    neuron = max(range(layered[2]["both"].num_neurons), key=lambda n: (ref.neuron_count[1, n], -n))
    note = "layer 1 was not profiled at stage 'first' (its layers: [0])"
    for pair in (("first", "late"), ("late", "first")):
        title, stats, comparison, *_ = app.show_neuron(source, 1, neuron, *pair)
        assert title == f"Layer 1, neuron {neuron}: shown at stage 'late' only, as {note}."
        assert stats.set_index("stage").loc["late", "count"] == ref.neuron_count[1, neuron] > 0
        assert not len(comparison)
        summary = app.show_neuron_page(source, 1, neuron, *pair)[0].split("\n")
        assert sorted(summary) == [f"first: {note}.", "late: no summary, as stage 'late' has no profile in these "
                                   "results (it is known only from report 'last->late')."]


def test_a_report_only_stage_before_its_reports_other_stage_names_that_report(pages, tmp_path):
    """Review 448: with stage 'finetuned' known only from report 'pretrained->finetuned', the Neuron tab of the pair
    the other way round (A 'finetuned', B 'pretrained') said "no report compares stage A (finetuned) with stage B
    (pretrained)" while that report compares them (silent). The title names it and says to swap the stages."""
    from hf_txray.viewer import app

    a, b, report = pages[:3]
    source = str(hf_txray.save_to_disk(tmp_path / "results", [a], [report], plots=False))
    layer, neuron = busiest(b)
    title, stats, *_ = app.show_neuron(source, layer, neuron, "finetuned", "pretrained")
    assert title.startswith(f"Layer {layer}, neuron {neuron}: no report compares stage A (finetuned) with stage B "
                            "(pretrained) in this order (report 'pretrained->finetuned' compares them the other way: "
                            "swap stage A and stage B for its status and Hellinger distance), and stage 'finetuned' "
                            "has no profile in these results")
    assert stats.set_index("stage").loc["finetuned", "count"] == b.neuron_count[b.layers.index(layer), neuron]
    # helper 451: the summary said 'finetuned' was known from that report, and nothing of what the report holds (the
    # title and the stats read it): it names the report, in its own order, and gives its lines
    summary = app.show_neuron_page(source, layer, neuron, "finetuned", "pretrained")[0].split("\n")
    i = a.layers.index(layer)
    start = summary.index("Read from report 'pretrained->finetuned', which compares the pair the other way round "
                          "(pretrained -> finetuned):")
    assert summary[start + 1].startswith(f"Layer {layer}, neuron {neuron} in report pretrained->finetuned: ")
    assert summary[start + 2].startswith(f"credits {a.neuron_count[i, neuron]} -> {b.neuron_count[i, neuron]}, ")
    assert summary[:start] == [
        "finetuned: no summary, as stage 'finetuned' has no profile in these results (it is known only from report "
        "'pretrained->finetuned').", f"pretrained: {neuron_summary(neuron_card(a, layer, neuron))}"]
    title, *_ = app.show_neuron(source, layer, neuron, "pretrained", "finetuned")  # the report's own order
    status = report.neurons.set_index(["layer", "neuron"]).loc[(layer, neuron), "status"]
    assert title.startswith(f"Layer {layer}, neuron {neuron}: {status} from stage A (pretrained)")
    assert not [line for line in app.show_neuron_page(source, layer, neuron, "pretrained", "finetuned")[0].split("\n")
                if "other way round" in line]
