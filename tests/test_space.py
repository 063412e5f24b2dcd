"""The Gradio Space (spaces_app/app.py) and its helpers (hf_txray/viewer.py).

- gradio_client against the launched app: every tab's functions return what the Profile and TransferReport say,
  computed independently here;
- a real browser (Debian chromium driven by Playwright) on 127.0.0.1: pick a neuron, see its top tokens and a
  rendered chart, an `<img onerror>` token stays text; screenshots of every tab go to a temporary folder
  (to docs/screenshots/ with HF_TXRAY_UPDATE_SCREENSHOTS=1);
- the Space folder is self-consistent (YAML header, app_file, requirements), and deploys to the local Hub server;
- bad input (unknown repo, not a results dataset, missing configs, out-of-range neuron) gives a readable message.

The fixture: two stages of a tiny BERT (tests/models.py) with a user feature "markup" that labels HTML tags and
markdown in the text, so `<img src=x onerror=alert(1)>` is a feature value and sits in top examples.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import yaml

import hf_txray
import hf_txray.corpora
from hf_txray import metrics, viewer
from hf_txray.errors import ConfigurationError, ProfileFormatError, TXRayError
from hf_txray.tables import MISSING, percent
from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
from models import SAMPLE_TEXTS, bert_tokenizer, tiny_bert
from space_helpers import BROWSER_ARGS, CHROMIUM, NO_CHROMIUM, browser_page, frame, opened_client, serve

# gradio is imported by the tests and fixtures that use it, not at collection (~4 CPU-s): an xdist worker that runs no
# test of this module does not pay it
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="the Space needs gradio: pip install -e '.[space]'")

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces_app"
SCREENSHOTS = ROOT / "docs" / "screenshots"  # tracked: rewritten only with HF_TXRAY_UPDATE_SCREENSHOTS=1


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the browser test saves its screenshots: a temporary folder, so a test run leaves the tree clean,
    unless HF_TXRAY_UPDATE_SCREENSHOTS=1 asks to refresh the README's images in docs/screenshots."""
    return SCREENSHOTS if os.environ.get("HF_TXRAY_UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"
FIRST_ROW = "#{} [role=row][aria-rowindex='2'] [role=gridcell]"  # gradio 6 Dataframe: the first body row's cells
PAYLOAD = "<img src=x onerror=alert(1)>"
MARKUP = re.compile(r"<[^>]*>|\*\*[^*]+\*\*")
# 40 lines of PTB give shared neurons credited >= DEFAULT_MIN_COUNT (20) times in both stages: the Transfer tab's
# default minimum lists some
TEXTS = SAMPLE_TEXTS + list(hf_txray.corpora.penn_treebank("test", num_samples=40)["text"]) + [
    f'Click {PAYLOAD} to see the "quoted" **bold** text.',
    f"{PAYLOAD} {PAYLOAD}",
    f"A tag {PAYLOAD} here and <b>there</b>.",
]


def markup(text: str) -> list[tuple[int, int, str]]:
    """User feature: every HTML tag or **markdown** span, labelled with its own text."""
    return [(m.start(), m.end(), m.group()) for m in MARKUP.finditer(text)]


# ----- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two stages (different seeds and text order), their report, and the export folder (~10 s)."""
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the autouse cache fixture
        mp.setenv("HF_TXRAY_CACHE", str(tmp_path_factory.mktemp("txray-cache")))
        features = ("token", "pos", hf_txray.UserFeature("markup", markup))
        run = lambda seed, texts, stage: hf_txray.analyze(  # noqa: E731
            tiny_bert(seed), texts, tokenizer=bert_tokenizer(), features=features, stage=stage,
            model_id="tiny-org/bert-tiny", show_progress=False)
        a = run(0, TEXTS, "pretrained")
        b = run(1, TEXTS[::-1], "finetuned")
    report = hf_txray.compare(a, b)
    folder = hf_txray.save_to_disk(tmp_path_factory.mktemp("space") / "results", [a, b], [report], plots=False)
    return a, b, report, folder


@pytest.fixture(scope="module")
def payload_neuron(results):
    """A neuron whose top markup value is the payload and one of whose top examples shows it."""
    a = results[0]
    stats = a.neuron_stats()
    examples = a.examples
    shown = examples[(examples["left"] + examples["token"] + examples["right"]).str.contains("<img", regex=False)]
    candidates = stats[(stats["top_markup"] == PAYLOAD) & (stats["count"] >= 2)]
    candidates = candidates[candidates.set_index(["layer", "neuron"]).index.isin(
        shown.set_index(["layer", "neuron"]).index)]
    assert len(candidates), "the fixture should give some neuron the payload as top markup and in its examples"
    row = candidates.sort_values("count", ascending=False).iloc[0]
    return int(row["layer"]), int(row["neuron"])


def _load_app():
    """The app shipped in the package (spaces_app/app.py only imports and launches it)."""
    return importlib.import_module("hf_txray.viewer.app")


@pytest.fixture(scope="module")
def app():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TXRAY_REPO", raising=False)
        mp.delenv("SPACE_ID", raising=False)
        return _load_app()


@pytest.fixture(scope="module")
def served(app, results):
    """The app launched on 127.0.0.1 with the fixture results as its default source."""
    with serve(app.build_demo(str(results[3]))) as url:
        yield url


@pytest.fixture
def client(served, results):
    return opened_client(served, str(results[3]))


def same(x, y, tol=1e-4) -> bool:
    if x is None or x == MISSING or (isinstance(x, float) and math.isnan(x)):  # the UI shows NaN as MISSING
        return y is None or (isinstance(y, float) and math.isnan(y))
    return abs(float(x) - float(y)) <= tol * max(1.0, abs(float(y)))


# ----- (1) every tab through gradio_client ---------------------------------------------------------------------
def test_open_and_overview(client, results):
    a, b, report, folder = results
    opened = client.predict(str(folder), api_name="/open")
    stages = frame(opened[1])
    assert list(stages["stage"]) == ["pretrained", "finetuned"]
    assert set(stages["model"]) == {"tiny-org/bert-tiny"}
    assert list(stages["texts"]) == [a.meta.num_examples, b.meta.num_examples]
    assert list(stages["credited neurons"]) == [int((a.neuron_count > 0).sum()), int((b.neuron_count > 0).sum())]
    reports = frame(opened[2])
    assert list(reports["report"]) == [report.name]
    assert same(reports["lost"].iloc[0], report.summary()["share_lost"])

    message, layers, *figures = client.predict(report.name, "pos", api_name="/overview")
    # the notes say what each figure shows, with the report's headline numbers and noise floor
    summary = report.summary()
    assert message.startswith(f"Report {report.name} (pos): {percent(summary['share_shared'])} of neurons shared")
    assert f"mean Hellinger distance {summary['mean_hellinger_pos']:.3f}" in message
    # the floors are at half size: set beside the distance at half size, not the full one (helper 191)
    assert (f"at half size {summary['matched_hellinger_pos']:.3f}, against a noise floor of "
            f"{summary['noise_floor_hellinger_pos_a']:.3f} between two halves of A and "
            f"{summary['noise_floor_hellinger_pos_b']:.3f} of B") in message
    for note in ("Hellinger distance vs Hellinger length:", "Length shift:", "Mass share vs corpus frequency:",
                 "Per-neuron mass:"):
        assert note in message
    layers = frame(layers)
    assert list(layers["layer"]) == list(report.layers["layer"])
    assert list(layers["lost"]) == list(report.layers["lost"])
    for got, want in zip(layers["mean_hellinger_pos"], report.layers["mean_hellinger_pos"]):
        assert same(got, want)
    assert len(figures) == 4
    # the Hellinger scatter: inline SVG, one link per dot naming its neuron, one dot per shared neuron with a distance
    scatter, *images = figures
    assert scatter.startswith("<svg") and "<script" not in scatter
    shared = report.neurons[(report.neurons["status"] == "shared") & report.neurons["hellinger_pos"].notna()
                            & (report.neurons["hellinger_length_pos"] > 0)]
    links = re.findall(r'<a xlink:href="#neuron-(\d+)-(\d+)"', scatter)
    assert len(links) == len(shared) > 0
    assert sorted((int(la), int(ne)) for la, ne in links) == sorted(zip(shared["layer"], shared["neuron"]))
    for figure in images:
        assert figure["type"] == "matplotlib" and figure["plot"].startswith("data:image/png;base64,")


def test_hellinger_dots_link_only_to_their_own_neurons(results):
    """Dots are matched to neurons by their drawn values: a figure of another feature type is refused."""
    report, folder = results[2], results[3]
    view = viewer.open_results(str(folder))
    drawn = viewer.overview_figures(view, report.name, "token")["hellinger_vs_length"]
    with pytest.raises(ConfigurationError, match="cannot link"):
        viewer.link_hellinger_dots(drawn, view, report.name, "pos")
    svg = viewer.figure_svg(viewer.link_hellinger_dots(drawn, view, report.name, "token"))
    for layer, neuron, length, distance in report.neurons[["layer", "neuron", "hellinger_length_token",
                                                           "hellinger_token"]].dropna().head(5).itertuples(index=False):
        if length > 0:
            assert f'xlink:href="#neuron-{int(layer)}-{int(neuron)}"' in svg


def test_neuron_tab_matches_the_profiles(client, results, payload_neuron):
    a, b, report, _ = results
    layer, neuron = payload_neuron
    title, stats, comparison, chart, spans_a, spans_b, examples, dists = client.predict(
        layer, neuron, "pretrained", "finetuned", api_name="/neuron")
    status = report.neurons.set_index(["layer", "neuron"]).loc[(layer, neuron), "status"]
    assert title.startswith(f"Layer {layer}, neuron {neuron}: {status}")

    stats = frame(stats).set_index("stage")
    for profile in (a, b):
        want = profile.neuron_stats().set_index(["layer", "neuron"]).loc[(layer, neuron)]
        got = stats.loc[profile.stage]
        assert got["count"] == want["count"] and same(got["mass"], want["mass"])
        for ft in ("token", "pos", "markup"):
            assert got[f"length_{ft}"] == want[f"length_{ft}"]
            assert (got[f"top_{ft}"] or None) == (want[f"top_{ft}"] or None)
    assert stats.loc["pretrained", "top_markup"] == PAYLOAD  # the payload arrives as a plain string

    # Hellinger: from the report, and the same as computed directly from the two distributions
    comparison = frame(comparison).set_index("feature type")
    line = report.neurons.set_index(["layer", "neuron"]).loc[(layer, neuron)]
    for ft in ("token", "pos", "markup"):
        assert same(comparison.loc[ft, "hellinger"], line[f"hellinger_{ft}"])
        p, q = a.distribution(layer, neuron, ft), b.distribution(layer, neuron, ft)
        if p and q:
            assert same(comparison.loc[ft, "hellinger"], metrics.hellinger(p, q))
        assert comparison.loc[ft, "length A"] == len(p) and comparison.loc[ft, "length B"] == len(q)

    # bar-chart data (and its table): the top values of each stage with their probabilities
    dists = frame(dists)
    for profile in (a, b):
        for ft in ("token", "pos"):
            want = profile.top_features(layer, neuron, ft, k=10)
            got = dists[(dists["stage"] == profile.stage) & (dists["feature type"] == ft)].set_index("feature")
            for feature, probability in want:
                assert same(got.loc[feature, "probability"], probability)
    assert chart["type"] == "altair"
    spec = json.loads(chart["plot"])
    plotted = {v["feature"] for panel in spec["hconcat"] for v in panel["data"]["values"]}
    assert {f for f, _ in a.top_features(layer, neuron, "token", k=10)} <= plotted
    assert [panel["title"].split(":")[0] for panel in spec["hconcat"]] == ["pos", "markup", "token"]

    # top examples: the winning token highlighted by activation / best activation, in rank order
    for spans, profile in ((spans_a, a), (spans_b, b)):
        want = profile.top_examples(layer, neuron)
        scored = [s for s in spans if s["class_or_confidence"] is not None]
        if want.empty:
            assert scored == []
            continue
        assert [s["token"] for s in scored] == list(want["token"])
        best = want["activation"].max()
        assert [s["class_or_confidence"] for s in scored] == [viewer.activation_bucket(x / best)
                                                               for x in want["activation"]]
        assert scored[0]["class_or_confidence"] == ">= 90% of the best activation"
        assert all(f"#{r + 1}  {x:.4g}   " in "".join(s["token"] for s in spans)
                   for r, x in zip(want["rank"], want["activation"]))
        text = "".join(s["token"] for s in spans)
        for left, token, right in zip(want["left"], want["token"], want["right"]):  # contexts cut to 50 chars
            assert left[-50:] + token + right[:50] in text
    examples = frame(examples)
    want = a.top_examples(layer, neuron)
    got = examples[examples["stage"] == "pretrained"]
    assert list(got["token"]) == list(want["token"]) and list(got["rank"]) == list(want["rank"] + 1)
    assert any("<img" in s for s in (got["left"] + got["token"] + got["right"]))


def _expected_search(profile, ft: str, value: str, by: str) -> list[tuple[int, int]]:
    long = profile.to_pandas(ft)
    long = long[(long["feature"] == value) & (long["mass"] > 0)]
    other = "mass" if by == "probability" else "probability"
    long = long.sort_values([by, other, "layer", "neuron"], ascending=[False, False, True, True], kind="stable")
    return list(zip(long["layer"], long["neuron"]))


def test_search_tab(client, results):
    a, b, report, _ = results
    top_token = a.neuron_stats()["top_token"].value_counts().index[0]
    for ft, value in (("token", top_token), ("pos", "NOUN"), ("markup", PAYLOAD)):
        for by in ("probability", "mass"):
            message, table = client.predict("pretrained", ft, value, by, 1, "all", api_name="/search_feature")
            table = frame(table)
            every = _expected_search(a, ft, value, by)
            want = every[:50]
            assert list(zip(table["layer"], table["neuron"])) == want, (ft, value, by)
            assert set(table["feature"]) == {value}
            probs = a.to_pandas(ft).set_index(["layer", "neuron", "feature"])["probability"]
            assert all(same(p, probs[(la, ne, value)]) for la, ne, p in zip(table["layer"], table["neuron"],
                                                                            table["probability"]))
            assert message.startswith(f"{len(every)} neuron(s)")  # every match, not the rows listed
    # a value differing only in case finds the profiled one (BERT lowercases)
    _, table = client.predict("pretrained", "token", top_token.upper(), "mass", 1, "all", api_name="/search_feature")
    assert set(frame(table)["feature"]) == {top_token}
    # by layer
    _, table = client.predict("pretrained", "pos", "NOUN", "mass", 1, 1, api_name="/search_feature")
    assert set(frame(table)["layer"]) <= {1}
    # a minimum below 1 is 1 (helper 116: "credited >= -5 times")
    message, low = client.predict("pretrained", "pos", "NOUN", "mass", -5, 1, api_name="/search_feature")
    assert "credited >= 1 times" in message and frame(low).equals(frame(table))

    for status in ("lost", "gained"):
        message, table = client.predict(report.name, status, "all", api_name="/search_status")
        table = frame(table)
        want = report.neurons[report.neurons["status"] == status]
        assert set(zip(table["layer"], table["neuron"])) == set(zip(want["layer"], want["neuron"]))
        mass = (table["mass_a"] + table["mass_b"]).to_numpy()
        assert np.all(np.diff(mass) <= 1e-9)

    message, table = client.predict(report.name, "pos", 0.2, 0.9, "all", api_name="/search_hellinger")
    table = frame(table)
    h, n = report.neurons["hellinger_pos"], report.neurons
    enough = (n["count_a"] >= viewer.DEFAULT_MIN_COUNT) & (n["count_b"] >= viewer.DEFAULT_MIN_COUNT)
    want = report.neurons[h.notna() & (h >= 0.2) & (h <= 0.9) & enough]  # thin neurons are never listed
    assert set(zip(table["layer"], table["neuron"])) == set(zip(want["layer"], want["neuron"]))
    assert list(table["hellinger_pos"]) == sorted(table["hellinger_pos"], reverse=True)
    assert f"{report.too_few_credits('pos')} shared neurons have too few credits" in message
    loose = viewer.search_hellinger(viewer.ResultsView("x", {}, {report.name: report}), report.name, "pos", 0.2, 0.9,
                                    min_count=1)
    assert set(zip(loose["layer"], loose["neuron"])) == set(zip(*[report.neurons[h.notna() & (h >= 0.2) & (h <= 0.9)][c]
                                                                  for c in ("layer", "neuron")]))


def test_search_messages_count_every_match_not_the_rows_listed(app, results):
    """Helper 230: a search's message counted the rows it lists as the neurons found: "50 neuron(s) ... credited on
    the pos 'NOUN'" when 78 were (the search lists the first 50), "200 shared neuron(s)" of thousands. It counts
    every match now and says how many are listed."""
    a, _, report, folder = results
    source, view = str(folder), viewer.open_results(str(folder))
    every = _expected_search(a, "pos", "NOUN", "mass")
    assert len(every) > 3
    message, table, _ = app.search_feature(source, "pretrained", "pos", "NOUN", "mass", 1, 3)
    assert len(table) == 3 and message.startswith(f"{len(every)} neuron(s) of stage pretrained credited on the pos "
                                                  f"'NOUN' (the first 3 listed), by mass")
    shared = int((report.neurons["status"] == "shared").sum())
    listed = viewer.search_status(view, report.name, "shared", n=2)
    assert len(listed) == 2 and viewer.tables.matches_text(listed, " shared") == \
        f"{shared} neuron(s) shared (the first 2 listed)"
    assert app.search_status(source, report.name, "shared")[0].startswith(f"{shared} neuron(s) shared in ")
    h = report.neurons["hellinger_pos"]
    enough = (report.neurons[["count_a", "count_b"]] >= viewer.DEFAULT_MIN_COUNT).all(axis=1)
    in_range = int((h.notna() & (h >= 0.0) & enough).sum())
    assert in_range > 2 and viewer.search_hellinger(view, report.name, "pos", 0, 1, n=2).attrs["matches"] == in_range
    assert app.search_hellinger(source, report.name, "pos", 0, 1)[0].startswith(f"{in_range} neuron(s) of ")


def test_the_neuron_tab_names_a_pruned_models_original_neuron(app, tmp_path):
    """Helper 230: a model pruned with mode="remove" numbers its kept neurons afresh; `hf-txray show` and the card say
    which original neuron each is, the Neuron tab said only "Layer 0, neuron 0" (original neuron 3 of the unpruned
    model). Its title names the original neuron now, per stage, from the profiles' provenance."""
    model, _ = hf_txray.prune(tiny_bert(0), None, {0: [0, 1, 2], 1: [5, 6, 7]}, mode="remove")
    run = lambda texts, stage: hf_txray.analyze(  # noqa: E731
        model, texts, tokenizer=bert_tokenizer(), features=("token",), stage=stage, show_progress=False)
    folder = hf_txray.save_to_disk(tmp_path / "r", [run(SAMPLE_TEXTS, "a"), run(SAMPLE_TEXTS[::-1], "b")], plots=False)
    kept = model.config.hf_txray_pruned["kept"]
    for layer, neuron in ((0, 0), (1, 5), (1, 44)):
        title = app.show_neuron(str(folder), layer, neuron, "a", "b")[0]
        assert title.startswith(f"Layer {layer}, neuron {neuron} (pruned model: original neuron "
                                f"{kept[str(layer)][neuron]} of the unpruned layer at stage 'a' and 'b'): "), title
    assert (kept["0"][0], kept["1"][5]) == (3, 8)


def test_the_neuron_tab_names_no_pruned_numbering_of_a_stage_not_profiled_on_the_layer(app, tmp_path):
    """Helper 442: with stage 'one' of a model pruned (mode="remove") on layers 0 and 1 but profiled on layer 1 alone,
    and the unpruned stage 'plain' profiled on layer 0, the layer-0 neuron page shows 'plain' only, and its title said
    "Layer 0, neuron 0 (pruned model: original neuron 3 of the unpruned layer at stage 'one'): shown at stage 'plain'
    only", naming the numbering of a stage that shows nothing beside a neuron that is 'plain''s own neuron 0
    (silent)."""
    pruned, _ = hf_txray.prune(tiny_bert(0), None, {0: [0, 1, 2], 1: [5, 6, 7]}, mode="remove")
    run = lambda model, stage, layers: hf_txray.analyze(  # noqa: E731
        model, SAMPLE_TEXTS, tokenizer=bert_tokenizer(), features=("token",), stage=stage, layers=layers,
        show_progress=False)
    folder = str(hf_txray.save_to_disk(tmp_path / "r", [run(tiny_bert(0), "plain", [0]), run(pruned, "one", [1])],
                                       plots=False))
    for a, b in (("plain", "one"), ("one", "plain")):
        assert app.show_neuron(folder, 0, 0, a, b)[0] == (
            "Layer 0, neuron 0: shown at stage 'plain' only, as layer 0 was not profiled at stage 'one' (its layers: "
            "[1]).")
        assert app.show_neuron(folder, 1, 5, a, b)[0].startswith(  # the pruned stage's own layer: named
            "Layer 1, neuron 5 (pruned model: original neuron 8 of the unpruned layer at stage 'one'): shown at stage "
            "'one' only")


def test_a_folder_with_the_source_separator_in_its_name_opens_as_one_folder(results, tmp_path):
    """Helper 230: sources are joined by ':' (os.pathsep), so a results folder named 'run 12:30' was split into
    'run 12' and '30' and refused ("No folder '30' here"), or, where both exist, opened as those two folders. An
    existing folder is read whole now; joined sources still split."""
    folder = tmp_path / f"run 12{viewer.SOURCE_SEPARATOR}30"
    shutil.copytree(results[3], folder)
    assert viewer.split_sources(str(folder)) == [str(folder)]
    view = viewer.open_results(str(folder), reload=True)
    assert set(view.profiles) == {"pretrained", "finetuned"} and view.source == str(folder)
    assert viewer.split_sources(f"a/x{viewer.SOURCE_SEPARATOR}b/y") == ["a/x", "b/y"]



def test_a_folder_with_the_source_separator_in_its_name_opens_beside_others(results, tmp_path, monkeypatch):
    """`hf-txray view "run 12:30" other` joins its folders into one source ("run 12:30:other"), which was split into
    'run 12', '30' and 'other': with those folders there, other results opened in place of 'run 12:30', without a
    word (else "No folder"). The longest run of parts naming an existing folder is one part."""
    monkeypatch.chdir(tmp_path)
    sep = viewer.SOURCE_SEPARATOR
    shutil.copytree(results[3], tmp_path / f"run 12{sep}30")
    (tmp_path / "run 12").mkdir()
    (tmp_path / "30").mkdir()
    (tmp_path / "other").mkdir()
    joined = sep.join([f"run 12{sep}30", "other"])
    assert viewer.split_sources(joined) == [f"run 12{sep}30", "other"]
    assert viewer.split_sources(sep.join(["other", f"run 12{sep}30"])) == ["other", f"run 12{sep}30"]
    assert viewer.split_sources(sep.join(["a/x", "b/y"])) == ["a/x", "b/y"]  # none exists: split at every separator

def test_view_of_two_folders_opens_them_not_the_folder_their_names_join_into(app, results, tmp_path, monkeypatch):
    """Helper 342: `launch_viewer` (`hf-txray view a b`) joined its sources into "a:b" and split them again, so with
    folders a, b and a:b all there, the folder a:b (one profile) opened in place of a and b (two): a list of sources
    is kept apart now, through the app's page load as well."""
    import gradio as gr

    from hf_txray.cli import main
    from hf_txray.viewer import launch

    monkeypatch.chdir(tmp_path)
    sep = viewer.SOURCE_SEPARATOR
    a, b = results[0], results[1]
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    a.save_pretrained(tmp_path / f"a{sep}b")
    opened = []
    monkeypatch.setattr(launch, "open_results", lambda source: opened.append(source) or viewer.open_results(source))
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: opened.append(self))
    assert main(["view", "a", "b"]) == 0
    assert set(viewer.open_results(opened[0], reload=True).profiles) == {"pretrained", "finetuned"}
    assert set(viewer.open_results(f"a{sep}b", reload=True).profiles) == {"pretrained"}  # one folder, typed alone
    demo = app.build_demo(["a", "b"])
    load = next(fn for fn in demo.fns.values() if fn.name == "page")
    current, _state, message, *_ = load.fn(f"a{sep}b", None)  # the page's text box, as shown
    assert current == f"a{sep}b" and "2 profile(s)" in message, message


def test_one_neuron_left_out_of_the_viewer_s_tables_is_said_in_the_singular(app, results, monkeypatch):
    """Helper 352: 981cbaf says one shared neuron left out in the singular in show, compare and the card; the viewer's
    Transfer tab still read "(1 have too few credits and are not ranked)" and its Hellinger search "(1 shared
    neuron(s) have too few credits and are not listed)"."""
    a, b, report, folder = results
    monkeypatch.setattr(hf_txray.TransferReport, "too_few_credits", lambda self, *args, **kwargs: 1)
    message = app.show_transfer(str(folder), report.name, "pos", "most", viewer.DEFAULT_MIN_COUNT, 200, "all")[0]
    assert "(1 shared neuron has too few credits and is not ranked)" in message, message
    message = app.search_hellinger(str(folder), report.name, "pos", 0.0, 1.0, "all")[0]
    assert "(1 shared neuron has too few credits and is not listed)" in message, message


def test_a_one_layer_table_counts_the_neurons_it_leaves_out_in_that_layer(app, results):
    """Helper 236: with the Layer filter set, the Transfer and Hellinger-search messages counted the shared neurons
    left out for too few credits over every layer ("The 4 most changed shared neurons ... (60 have too few credits and
    are not ranked)" beside layer 1's table, where 35 were left out). They count that layer's."""
    a, b, report, folder = results
    shared = report.neurons[report.neurons["hellinger_pos"].notna()]
    thin = (shared["count_a"] < viewer.DEFAULT_MIN_COUNT) | (shared["count_b"] < viewer.DEFAULT_MIN_COUNT)
    for layer in report.meta.layers:
        want = int((thin & (shared["layer"] == layer)).sum())
        assert want != int(thin.sum())  # the fixture leaves out neurons of more than one layer
        message, table = app.show_transfer(str(folder), report.name, "pos", "most", viewer.DEFAULT_MIN_COUNT, 200,
                                           layer)
        assert set(table["layer"]) <= {layer} and f"({want} shared neurons have too few credits and are not ranked)" in message
        message = app.search_hellinger(str(folder), report.name, "pos", 0.0, 1.0, str(layer))[0]
        assert f"({want} shared neurons have too few credits and are not listed)" in message, message
        assert report.too_few_credits("pos", layer=layer) == want
    message = app.show_transfer(str(folder), report.name, "pos", "most", viewer.DEFAULT_MIN_COUNT, 200, "all")[0]
    assert f"({int(thin.sum())} shared neurons have too few credits" in message



def test_a_layer_the_table_filter_takes_is_taken_by_its_message_too(app, results):
    """Helper 402: the Transfer and Hellinger-search tables read their layer filter by data.chosen_layer (the text
    '1.0' is layer 1), but the message beside them counted the neurons left out with int(layer): '1.0' ended in
    "ValueError: invalid literal for int() with base 10: '1.0'" after the table was made. Both read it alike now."""
    a, b, report, folder = results
    for given in ("1.0", 1.0, " 1 "):
        expected = app.show_transfer(str(folder), report.name, "pos", "most", viewer.DEFAULT_MIN_COUNT, 200, 1)
        got = app.show_transfer(str(folder), report.name, "pos", "most", viewer.DEFAULT_MIN_COUNT, 200, given)
        assert got[0] == expected[0] and got[1].equals(expected[1]), given
        expected = app.search_hellinger(str(folder), report.name, "pos", 0.0, 1.0, 1)
        got = app.search_hellinger(str(folder), report.name, "pos", 0.0, 1.0, given)
        assert got[0] == expected[0] and got[1].equals(expected[1]), given


def test_a_negative_or_absent_layer_filter_is_read_as_the_transfer_table_reads_it(app, results):
    """Helper 402: since 9b2abee the Transfer table and a probe's top neurons read layer -1 as the last layer
    (options.resolve_layer), but the status and Hellinger searches filtered their rows on layer == -1: search_status(
    ..., 'shared', -1) said "0 neuron(s) shared" where the last layer has 32 on the fixture, and layer 5 of a 2-layer
    report listed no row without a word. They read the layer among the table's layers now."""
    a, b, report, folder = results
    last = report.meta.layers[-1]
    for search in (lambda layer: app.search_status(str(folder), report.name, "shared", layer),
                   lambda layer: app.search_hellinger(str(folder), report.name, "pos", 0.0, 1.0, layer)):
        expected = search(last)
        assert len(expected[1]) and set(expected[1]["layer"]) == {last}
        for given in (-1, "-1"):
            got = search(given)
            assert got[0] == expected[0] and got[1].equals(expected[1]), given
        with pytest.raises(ConfigurationError, match=re.escape(f"Layer 5 is not a layer of report {report.name!r}")):
            search(5)


def test_the_viewer_says_an_absent_or_boolean_layer_one_way(app, results):
    """The Transfer table said an absent layer "is not in this report" (the report's own wording) where the searches
    said "is not a layer of this table"; a layer True was "a boolean mask of 1 entries" (indices.whole_numbers'
    message for arrays). Helper 440: "this table" named neither the report nor the stage, whose layers may differ
    from another stage's; it names them now."""
    a, b, report, folder = results
    calls = ((lambda layer: app.show_transfer(str(folder), report.name, "pos", "most", 1, 20, layer), "report"),
             (lambda layer: app.search_status(str(folder), report.name, "shared", layer), "report"),
             (lambda layer: app.search_hellinger(str(folder), report.name, "pos", 0.0, 1.0, layer), "report"),
             (lambda layer: app.search_feature(str(folder), a.meta.stage, "pos", "NOUN", "mass", 1, 20, layer),
              "stage"))
    for call, what in calls:
        name = report.name if what == "report" else a.meta.stage
        with pytest.raises(ConfigurationError, match=re.escape(f"Layer 5 is not a layer of {what} {name!r}; its "
                                                               f"layers: {list(report.meta.layers)}")):
            call(5)
        with pytest.raises(ConfigurationError, match=r"^The layer number must be an integer, got True\.$"):
            call(True)
    view = viewer.open_results(str(folder))
    for layer, neuron, what in ((True, 0, "layer"), (0, np.True_, "neuron")):
        with pytest.raises(ConfigurationError, match=rf"^The {what} number must be an integer, got True\.$"):
            view.check_neuron(layer, neuron)

def pos_credits(profile) -> pd.Series:
    """Each neuron's credits that carry a POS tag (brute force over the table's entries), by (layer, neuron)."""
    table, stats = profile.tables["pos"], profile.neuron_stats()
    totals = np.zeros(len(stats), dtype=np.int64)
    for row, count in zip(table.rows, table.count):
        totals[row] += count
    return pd.Series(totals, index=pd.MultiIndex.from_arrays([stats["layer"], stats["neuron"]]))


def test_search_and_transfer_use_the_reports_minimum_credits(app, results):
    """Issue 12: the Space's minimum credits default to DEFAULT_MIN_COUNT, and search_feature applies it to the
    neurons' credits at the stage (a probability from a few credits is noise)."""
    a = results[0]
    view = viewer.open_results(str(results[3]))
    credits = pos_credits(a)
    loose = viewer.search_feature(view, "pretrained", "pos", "NOUN", min_count=1, n=10_000)
    strict = viewer.search_feature(view, "pretrained", "pos", "NOUN", n=10_000)  # default: DEFAULT_MIN_COUNT
    assert len(strict) and len(strict) < len(loose)
    want = [(la, ne) for la, ne in zip(loose["layer"], loose["neuron"]) if credits[(la, ne)] >= viewer.DEFAULT_MIN_COUNT]
    assert list(zip(strict["layer"], strict["neuron"])) == want
    demo = app.build_demo(str(results[3]))
    numbers = {c["props"].get("label"): c["props"].get("value") for c in demo.config["components"]
               if c.get("type") == "number"}
    assert numbers["Min. count in both stages"] == viewer.DEFAULT_MIN_COUNT == 20
    assert numbers["Min. credits with a value of the type"] == viewer.DEFAULT_MIN_COUNT


def test_a_fractional_minimum_count_means_at_least_that_many(app, results):
    """A minimum of 2.5 credits keeps neurons with 3 or more: Gradio's precision=0 rounded it to 2 and int() cut it
    to 2, widening the filter; a NaN is refused."""
    source, a = str(results[3]), results[0]
    credits = pos_credits(a)
    at = {m: app.search_feature(source, "pretrained", "pos", "NOUN", "probability", m, 10_000) for m in (2, 2.5, 3)}
    assert "credited >= 3 times" in at[2.5][0]
    assert at[2.5][1].equals(at[3][1])
    shown = set(zip(at[2.5][1]["layer"], at[2.5][1]["neuron"]))
    assert shown and all(credits[key] >= 3 for key in shown)
    report = next(iter(viewer.open_results(source).reports))
    assert app.show_transfer(source, report, "pos", "most", 2.5, 50)[1].equals(
        app.show_transfer(source, report, "pos", "most", 3, 50)[1])
    with pytest.raises(ConfigurationError, match="minimum count must be a number"):
        app.search_feature(source, "pretrained", "pos", "NOUN", "probability", float("nan"), 10)
    demo = app.build_demo(source)
    precision = {c["props"].get("label"): c["props"].get("precision") for c in demo.config["components"]
                 if c.get("type") == "number"}
    assert precision["Min. count in both stages"] is None and precision["Min. credits with a value of the type"] is None


def test_a_minimum_count_of_minus_infinity_means_every_credited_neuron(app, results):
    """Helper 220: -inf, below 1 as -5 is, failed with a bare OverflowError (math.ceil of it) in search and transfer."""
    source = str(results[3])
    low = app.search_feature(source, "pretrained", "pos", "NOUN", "probability", float("-inf"), 10_000)
    assert "credited >= 1 times" in low[0] and low[1].equals(
        app.search_feature(source, "pretrained", "pos", "NOUN", "probability", -5, 10_000)[1])
    report = next(iter(viewer.open_results(source).reports))
    assert app.show_transfer(source, report, "pos", "most", float("-inf"), 50)[1].equals(
        app.show_transfer(source, report, "pos", "most", 1, 50)[1])

def test_viewer_sends_no_analytics_even_when_the_environment_allows_it(app, results, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")  # gradio's default when the variable is unset
    assert app.build_demo(str(results[3])).get_config_file()["analytics_enabled"] is False


def test_length_shift_of_thousands_of_neurons_is_a_histogram(results):
    """With 4,000 neurons, paired dots and lines merge into solid blocks: the figure is a histogram of the shift."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PathCollection

    from hf_txray.plots.transfer import PAIRED_DOTS_MAX, plot_length_shift

    report = results[2]
    rng = np.random.default_rng(0)
    big = report.neurons.sample(4000, replace=True, random_state=0).reset_index(drop=True)
    big["neuron"], big["status"] = np.arange(4000), "shared"
    big["length_a_pos"], big["length_b_pos"] = rng.integers(1, 12, 4000), rng.integers(1, 12, 4000)
    many = type(report)(report.meta, big, report.layers, report.mass_share)
    figure = plot_length_shift(many, "pos", min_count=0)
    ax = figure.axes[0]
    assert not [c for c in ax.collections if isinstance(c, (LineCollection, PathCollection))]  # no dots, no lines
    heights = [bar.get_height() for bar in ax.patches]
    assert 10 <= len(heights) <= 100 and sum(heights) == 4000  # every neuron in one readable bar
    assert "4000 neurons" in ax.get_title()
    plt.close(figure)
    small = plot_length_shift(report, "pos", min_count=0)  # a few neurons: the paired dots, as before
    assert len(report.neurons) <= PAIRED_DOTS_MAX and small.axes[0].collections
    plt.close(small)


def test_transfer_tab(client, results):
    report = results[2]
    for which, rank in (("most", report.most_changed), ("least", report.least_changed)):
        message, table = client.predict(report.name, "pos", which, 2, 10, "all", api_name="/transfer")
        table = frame(table)
        want = rank(10, "pos", min_count=2)
        assert list(zip(table["layer"], table["neuron"])) == list(zip(want["layer"], want["neuron"]))
        assert all(same(x, y) for x, y in zip(table["hellinger_pos"], want["hellinger_pos"]))
        assert message.startswith(f"The {len(want)} {which} changed")
    stats = results[0].neuron_stats().set_index(["layer", "neuron"])
    assert all(stats.loc[(la, ne), "top_pos"] == top for la, ne, top in
               zip(table["layer"], table["neuron"], table["top pos A"]))


def test_viewer_computes_pairs_without_a_report(results, payload_neuron):
    """The reverse pair has no report: status and Hellinger come from a report derived from the two profiles by
    compare (the viewer computes nothing a report owns; Hellinger is symmetric)."""
    a, b, report, folder = results
    view = viewer.open_results(str(folder))
    derived = view.report_for("finetuned", "pretrained")
    assert (derived.meta.stage_a, derived.meta.stage_b) == ("finetuned", "pretrained")
    assert derived.name not in view.reports and view.report_for("finetuned", "pretrained") is derived  # cached
    layer, neuron = payload_neuron
    direct = viewer.neuron_comparison(view, layer, neuron, "finetuned", "pretrained").set_index("feature type")
    line = report.neurons.set_index(["layer", "neuron"]).loc[(layer, neuron)]
    for ft in report.meta.feature_types:
        assert same(direct.loc[ft, "hellinger"], line[f"hellinger_{ft}"])
        assert direct.loc[ft, "length A"] == line[f"length_b_{ft}"]
    flipped = {"lost": "gained", "gained": "lost"}.get(line["status"], line["status"])
    assert viewer.neuron_status(view, layer, neuron, "finetuned", "pretrained") == flipped


# ----- (4) bad input: a readable message, never a traceback ------------------------------------------------------
def test_bad_input_gives_messages(client, results, tmp_path):
    folder = results[3]
    not_results = tmp_path / "plain"
    not_results.mkdir()
    (not_results / "data.csv").write_text("a,b\n1,2\n")
    no_cards = shutil.copytree(folder, tmp_path / "no_cards")
    shutil.rmtree(no_cards / "neuron_cards")
    no_reports = shutil.copytree(folder, tmp_path / "no_reports")
    shutil.rmtree(no_reports / "transfer_reports")
    cases = {
        "nobody/no-such-results": "Could not download the Hub dataset 'nobody/no-such-results'",
        str(not_results): "is not an hf_txray results folder",
        str(no_cards): "lacks neuron_cards/",
        str(no_reports): f"neurons has 0 rows, saved with 96 (in {no_reports}/transfer_reports/)",
        str(not_results / "data.csv"): "is a file",
        "": "No results open: enter a Hub dataset repo id",
        "not a repo id!": "neither a folder nor a valid Hub repo id",
    }
    for source, expected in cases.items():
        message = client.predict(source, api_name="/open")[0]
        assert expected in message, (source, message)
        assert "Traceback" not in message
    # the results opened before stay usable
    title = client.predict(0, 999, "pretrained", "finetuned", api_name="/neuron")[0]
    assert title == "Neuron 999 is out of range: layers have 48 neurons (0 to 47)."
    assert client.predict(0, -1, "pretrained", "finetuned", api_name="/neuron")[0].startswith("Neuron -1 is out")
    assert client.predict(1, 3, "pretrained", "finetuned", api_name="/neuron")[0].startswith("Layer 1, neuron 3")
    # Helper 215: Gradio's precision=0 rounded a fraction sent through the API: 3.7 showed neuron 4
    for api in ("/neuron", "/neuron_page"):
        message = client.predict(1, 3.7, "pretrained", "finetuned", api_name=api)[0]
        assert message.startswith("The neuron number must hold whole numbers, got 3.7"), (api, message)
    assert client.predict(1, 3.7, api_name="/neuron_probes")[0].startswith("The neuron number must hold whole")
    message = client.predict("pretrained", "token", "zzqqxx", "mass", 1, "all", api_name="/search_feature")[0]
    assert message == "No neuron was credited on the token 'zzqqxx' at stage 'pretrained'."
    message = client.predict(results[2].name, "pos", 0.9, 0.1, "all", api_name="/search_hellinger")[0]
    assert message.startswith("The Hellinger range must satisfy")
    assert client.predict("pretrained", "token", "  ", "mass", 1, "all", api_name="/search_feature")[0] == \
        "Type a token value to search for."


def test_the_neuron_page_reads_a_negative_layer_as_the_layer_filters_do_and_says_what_to_type(app, results,
                                                                                                  monkeypatch):
    """The neuron page refused layer -1, which every layer filter of the viewer reads as the last layer, with "Layer
    -1 is not in these results; profiled layers: [0, 1]"; it reads it so now, and a layer it cannot read says which
    to type. A neuron no probe ranked read "in 0 probe(s)", saying neither why nor which neurons the probes hold."""
    from hf_txray.probing.results import ProbingResults

    a, _, _, folder = results
    view = viewer.open_results(str(folder))
    assert view.layers == [0, 1]
    assert view.check_neuron(-1, 3) == view.check_neuron("-1", 3) == (1, 3) and view.check_neuron(-2, 3) == (0, 3)
    assert viewer.neuron_stats(view, -1, 3, ["pretrained"]).equals(viewer.neuron_stats(view, 1, 3, ["pretrained"]))
    for layer in (-3, 2):
        with pytest.raises(ConfigurationError, match=re.escape(f"Layer {layer} is not a layer of these results; its "
                                                               "layers: [0, 1] (or negative indices")):
            view.check_neuron(layer, 0)
    with pytest.raises(ConfigurationError, match=re.escape(f"({0} to {a.num_neurons - 1})")):
        view.check_neuron(0, a.num_neurons)
    rows = pd.DataFrame([{"probe": "tags", "property": "pos", "kind": "neuron", "rank": rank, "layer": 0,
                          "neuron": neuron, "score": 1.0, "weight_norm": 1.0, "label": "NOUN", "weight": 0.5}
                         for rank, neuron in enumerate([2, 3])])
    view.probing = ProbingResults(rows, None)
    monkeypatch.setattr(app, "_view", lambda source: view)
    message, found = app.show_neuron_probes(str(folder), -1, 3)
    assert message == ("No probe ranked layer 1, neuron 3: the probes ranked the neurons of layers [0]; pick a "
                       "neuron there (the Probing tab lists each probe's top neurons).") and found.empty
    assert app.show_neuron_probes(str(folder), 0, 3)[0].startswith("Layer 0, neuron 3 in 1 probe(s)")


def test_viewer_errors_are_typed(results, tmp_path):
    view = viewer.open_results(str(results[3]))
    with pytest.raises(ConfigurationError, match="out of range"):
        viewer.neuron_stats(view, 0, 48, ["pretrained"])
    with pytest.raises(ConfigurationError, match=re.escape("Layer 7 is not a layer of these results; its layers: "
                                                           "[0, 1] (or negative indices, counted from the last")):
        view.check_neuron(7, 0)
    assert view.check_neuron(1, 3.0) == view.check_neuron("1", "3") == (1, 3)
    for neuron in (3.7, "3.7", True, float("inf"), float("nan")):  # by indices.whole_numbers (True was neuron 1)
        with pytest.raises(ConfigurationError, match="The neuron number must"):
            view.check_neuron(1, neuron)
    with pytest.raises(ConfigurationError, match="No transfer report"):
        viewer.transfer_table(view, "a->b")
    with pytest.raises(ProfileFormatError, match="not an hf_txray results folder"):
        viewer.open_results(str(tmp_path))


def test_hub_repos_open_or_say_why(client, hub, results):  # noqa: F811
    """A pushed results repo opens by id; a dataset that is not hf_txray results, or no repo, says so."""
    a, b, report, folder = results
    hf_txray.hub.push_folder(folder, "test-user/space-results")
    opened = client.predict("test-user/space-results", api_name="/open")
    assert opened[0].startswith("Opened test-user/space-results: 2 profile(s), 1 report(s)")
    assert frame(client.predict(report.name, "pos", "most", 1, 5, "all", api_name="/transfer")[1]).shape[0] > 0

    hub.api.create_repo("test-user/other-data", repo_type="dataset")
    hub.api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id="test-user/other-data",
                        repo_type="dataset")
    message = client.predict("test-user/other-data", api_name="/open")[0]
    assert "The Hub dataset 'test-user/other-data' is not an hf_txray results dataset" in message
    message = client.predict("test-user/missing-results", api_name="/open")[0]
    assert message.startswith("Could not download the Hub dataset 'test-user/missing-results'")


# ----- (3) the Space folder ----------------------------------------------------------------------------------------
def _header(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---", 2)[1])


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~;\[ @]", line)[0].lower().replace("_", "-"))
    return names


def test_space_folder_is_self_consistent():
    import gradio

    header = _header(SPACE / "README.md")
    assert header["sdk"] == "gradio"
    assert header["sdk_version"] == gradio.__version__  # pinned to the version we test
    assert header["title"] and header["emoji"]
    assert (SPACE / header["app_file"]).is_file()
    assert header["datasets"] and all("/" in d for d in header["datasets"])

    tree = ast.parse((SPACE / "app.py").read_text())
    app_tree = ast.parse((ROOT / "hf_txray" / "viewer" / "app.py").read_text())  # the app the launcher imports
    imported = {alias.name.split(".")[0] for t in (tree, app_tree) for node in ast.walk(t)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for t in (tree, app_tree) for node in ast.walk(t)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    distributions = {"yaml": "pyyaml", "huggingface_hub": "huggingface-hub"}  # module -> distribution
    required = _requirement_names(SPACE / "requirements.txt")
    # gradio comes from sdk_version; hf_txray is uploaded next to app.py by deploy_space
    assert third_party - {"gradio", "hf_txray"} and all(
        distributions.get(m, m) in required for m in third_party - {"gradio", "hf_txray"}), third_party
    assert "gradio" not in required
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {re.split(r"[<>=!~;\[ ]", d)[0].lower().replace("_", "-") for d in dependencies} <= required
    assert "app.py" in (SPACE / "README.md").read_text()
    # the Space's app.py is a launcher of the app shipped in hf_txray: it defines nothing of its own
    assert not [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert "hf_txray.viewer.app" in {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_space_folder_is_what_the_package_writes(tmp_path):
    """spaces_app/ is generated by the package (so a wheel install deploys the same Space): byte for byte, with the
    README a huggingface_hub SpaceCard."""
    from huggingface_hub import SpaceCard

    written = viewer.write_space_files(tmp_path / "space")
    assert sorted(p.name for p in written.iterdir()) == sorted(viewer.SPACE_FILES)
    for name in viewer.SPACE_FILES:
        assert (written / name).read_bytes() == (SPACE / name).read_bytes(), name
    card = SpaceCard.load(SPACE / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py" and card.data.datasets == [viewer.EXAMPLE_RESULTS]
    other = viewer.write_space_files(tmp_path / "other", "me/results", title="Mine")
    assert SpaceCard.load(other / "README.md").data.datasets == ["me/results"]
    assert SpaceCard.load(other / "README.md").data.title == "Mine"


def test_the_space_installs_a_cjk_font_and_an_older_app_dir_still_stages(tmp_path):
    """The figures fall back to a CJK font (plots.FALLBACK_FONTS) that a Space's image lacks: packages.txt has apt
    install it. A custom app_dir written before packages.txt existed stages without one."""
    from hf_txray.plots import FALLBACK_FONTS

    written = viewer.write_space_files(tmp_path / "space")
    packages = (written / "packages.txt").read_text().split()
    assert packages == ["fonts-noto-cjk"] and FALLBACK_FONTS[0].startswith("Noto Sans CJK")
    (written / "packages.txt").unlink()
    staged = viewer.stage_space(tmp_path / "staged", "me/results", app_dir=written)
    assert (staged / "app.py").is_file() and not (staged / "packages.txt").exists()


def test_deploy_space_to_the_hub_and_run_it(hub, results, tmp_path):  # noqa: F811
    from huggingface_hub import snapshot_download

    hf_txray.hub.push_folder(results[3], "test-user/deployed-results")
    info = viewer.deploy_space("test-user/txray-viewer", "test-user/deployed-results")
    assert info.oid
    files = hub.server.repo_files("test-user/txray-viewer", repo_type="space")
    for name in ("app.py", "README.md", "requirements.txt", "packages.txt", "hf_txray/__init__.py",
                 "hf_txray/viewer/app.py", "hf_txray/py.typed"):
        assert name in files, name
    assert not any("__pycache__" in name for name in files)
    assert files["app.py"] == (SPACE / "app.py").read_bytes()
    remote = yaml.safe_load(files["README.md"].decode().split("---", 2)[1])
    assert remote["datasets"] == ["test-user/deployed-results"] and remote["sdk"] == "gradio"
    assert hub.api.repo_info("test-user/txray-viewer", repo_type="space").card_data is not None

    # a file the package no longer has disappears at the next deploy; other files stay
    hub.api.upload_file(path_or_fileobj=b"x = 1\n", path_in_repo="hf_txray/stale.py", repo_id="test-user/txray-viewer",
                        repo_type="space")
    hub.api.upload_file(path_or_fileobj=b"notes\n", path_in_repo="NOTES.txt", repo_id="test-user/txray-viewer",
                        repo_type="space")
    viewer.deploy_space("test-user/txray-viewer", "test-user/deployed-results")
    files = hub.server.repo_files("test-user/txray-viewer", repo_type="space")
    assert "hf_txray/stale.py" not in files and "NOTES.txt" in files

    # the deployed Space runs: its app imports the uploaded hf_txray and opens the results named in its README
    local = Path(snapshot_download("test-user/txray-viewer", repo_type="space", local_dir=tmp_path / "space"))
    script = ("import os, app, hf_txray; from hf_txray.viewer import app as viewer_app; "
              "assert hf_txray.__file__.startswith(os.getcwd()), hf_txray.__file__; "
              "source = viewer_app.default_source(); print(source); print(viewer_app.open_results(source)[1])")
    env = {**os.environ, "SPACE_ID": "test-user/txray-viewer", "PYTHONPATH": ""}
    env.pop("TXRAY_REPO", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=local, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "test-user/deployed-results"
    assert lines[-1].startswith("Opened test-user/deployed-results: 2 profile(s), 1 report(s)")


def test_a_private_deploy_into_an_existing_public_space_is_refused(hub, tmp_path):  # noqa: F811
    """Helper 283: deploy_space(..., private=True) into a Space that exists and is public kept it public (create_repo
    keeps an existing repo as it is) and uploaded without a word: the viewer, and with its HF_TOKEN secret the private
    results it opens, stayed public. Refused before the upload now, as a private push of results is."""
    hub.api.create_repo("test-user/public-viewer", repo_type="space", space_sdk="gradio")
    with pytest.raises(ConfigurationError, match="already exists and is public"):
        viewer.deploy_space("test-user/public-viewer", "test-user/results", private=True)
    assert "app.py" not in hub.server.repo_files("test-user/public-viewer", repo_type="space")
    viewer.deploy_space("test-user/private-viewer", "test-user/results", private=True)  # a new Space: made private
    assert hub.api.repo_info("test-user/private-viewer", repo_type="space").private
    viewer.deploy_space("test-user/private-viewer", "test-user/results", private=True)  # and deployed again


def test_default_source_from_env_and_space_readme(app, monkeypatch, tmp_path):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("TXRAY_REPO", raising=False)
    assert app.default_source() == ""  # locally: nothing unless asked
    monkeypatch.setenv("SPACE_ID", "me/viewer")  # on a Space: the README's first dataset (Spaces run in their root)
    monkeypatch.chdir(SPACE)
    assert app.default_source() == _header(SPACE / "README.md")["datasets"][0]
    monkeypatch.setenv("TXRAY_REPO", " me/other-results ")  # the variable wins
    assert app.default_source() == "me/other-results"
    readme = tmp_path / "README.md"
    readme.write_text(viewer.set_space_datasets((SPACE / "README.md").read_text(), ["me/x"], title="T"))
    assert app.space_datasets(readme) == ["me/x"] and _header(readme)["title"] == "T"
    assert (SPACE / "README.md").read_text().split("---", 2)[2] == readme.read_text().split("---", 2)[2]


def test_cli_view_launches_the_app(results, monkeypatch):
    import gradio as gr

    from hf_txray.cli import main

    launched = {}

    def fake_launch(self, **kwargs):
        launched.update(kwargs, blocks=self)

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    assert main(["view", str(results[3]), "--port", "7999"]) == 0
    assert launched["server_port"] == 7999 and launched["server_name"] == "127.0.0.1"
    assert isinstance(launched["blocks"], gr.Blocks)
    assert main(["view", "not a repo id!"]) == 2  # fails fast, before launching


def test_cli_view_refuses_a_taken_port_or_a_foreign_host_before_reading_the_results(results, monkeypatch, capsys):
    """helper 284: `hf-txray view DIR --port P` with P taken (a viewer still running there) ended in gradio's OSError
    traceback, after the results were read and the app built, naming GRADIO_SERVER_PORT rather than --port."""
    import socket

    import gradio as gr

    from hf_txray.cli import main
    from hf_txray.viewer import launch

    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: pytest.fail("launched"))
    monkeypatch.setattr(launch, "open_results", lambda source: pytest.fail("the results were read first"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", str(results[3]), "--port", str(port)]) == 2
    assert f"Port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    for host, said in (("no such host!", "is not an address"), ("192.0.2.1", "Cannot serve on 192.0.2.1")):
        assert main(["view", str(results[3]), "--host", host]) == 2  # 192.0.2.1: TEST-NET, no machine's own
        assert said in capsys.readouterr().err


def test_view_opens_profile_and_report_folders(results, tmp_path, monkeypatch):
    """What analyze / compare / the Trainer write (save_pretrained folders) opens directly, alone, together, or as one
    folder holding them; it shows what the exported results folder shows."""
    import gradio as gr

    from hf_txray.cli import main

    a, b, report, folder = results
    a.save_pretrained(tmp_path / "run" / "profiles" / "a")
    b.save_pretrained(tmp_path / "run" / "profiles" / "b")
    report.save_pretrained(tmp_path / "run" / "reports" / "a__b")
    exported = viewer.open_results(str(folder))
    parts = [str(tmp_path / "run" / "profiles" / "a"), str(tmp_path / "run" / "profiles" / "b"),
             str(tmp_path / "run" / "reports" / "a__b")]
    for source in (viewer.SOURCE_SEPARATOR.join(parts), str(tmp_path / "run")):
        view = viewer.open_results(source)
        assert sorted(view.profiles) == ["finetuned", "pretrained"] and view.report_names == [report.name]
        pd.testing.assert_frame_equal(viewer.transfer_table(view, report.name, "pos", n=10),
                                      viewer.transfer_table(exported, report.name, "pos", n=10))
        assert viewer.neuron_stats(view, 0, 3, view.stages).equals(viewer.neuron_stats(exported, 0, 3, view.stages))
    only_a = viewer.open_results(parts[0])
    assert list(only_a.profiles) == ["pretrained"] and not only_a.reports
    with pytest.raises(ConfigurationError, match="more than one"):
        viewer.open_results(viewer.SOURCE_SEPARATOR.join([parts[0], str(tmp_path / "run")]))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ProfileFormatError, match="no profile or report folder"):
        viewer.open_results(str(tmp_path / "empty"))

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, blocks=self))
    assert main(["view", *parts, "--port", "7998"]) == 0
    assert launched["server_port"] == 7998


def test_view_refuses_a_saved_profile_or_report_it_cannot_read_rather_than_leaving_it_out(results, tmp_path):
    """Helper 268: a folder holding profile and report folders (what analyze, compare and the Trainer write) in which
    one saved profile could not be read (a table deleted, a damaged header, the format before the artifact contract)
    opened as "1 profile(s), 1 report(s)": that stage was left out without a word (`hf-txray export` of the same
    folder refuses it). It is refused now, naming the folder and why; folders of other artifacts are still skipped."""
    import shutil

    a, b, report, _ = results
    run = tmp_path / "run"
    a.save_pretrained(run / "a")
    b.save_pretrained(run / "b")
    report.save_pretrained(run / "report")
    hf_txray.pruning.plan_pruning(report, "lost", 1, allow_fewer=True).save_pretrained(run / "plan")
    (run / "notes").mkdir()
    assert sorted(viewer.open_results(str(run), reload=True).profiles) == ["finetuned", "pretrained"]
    for damage, said in ((lambda: shutil.rmtree(run / "b" / "distributions"), "lacks neuron_cards/ or distributions/"),
                         (lambda: (run / "b" / "txray_artifact.json").write_text("{trunc"), "is damaged"),
                         (lambda: (shutil.rmtree(run / "b"), (run / "b").mkdir(),
                                   (run / "b" / "txray_profile.json").write_text("{}")), "before the artifact contract")):
        damage()
        with pytest.raises(ProfileFormatError) as err:
            viewer.open_results(str(run), reload=True)
        assert f"{run / 'b'} (under {run}) holds a saved" in str(err.value) and said in str(err.value), str(err.value)
        shutil.rmtree(run / "b")
        b.save_pretrained(run / "b")
    shutil.rmtree(run / "report" / "transfer_reports")
    with pytest.raises(ProfileFormatError, match="holds a saved transfer report that cannot be read"):
        viewer.open_results(str(run), reload=True)
    shutil.rmtree(run / "report")
    (run / "report").mkdir()
    (run / "report" / "txray_report.json").write_text("{}")  # a report saved before the artifact contract
    with pytest.raises(ProfileFormatError, match="holds a saved transfer report that cannot be read.*before the "
                                                 "artifact contract"):
        viewer.open_results(str(run), reload=True)


def test_view_refuses_a_report_beside_a_profile_it_was_not_computed_from(results, tmp_path):
    """A stage profiled again after its report was made: opened together (folders, or one folder holding them), the
    report's Hellinger distances and counts would sit beside the new profile's stats and distributions (the neuron
    page said count 0 at a stage where its comparison said length 1). Refused as save_to_disk refuses it."""
    a, b, report, _ = results
    again = hf_txray.analyze(tiny_bert(1), TEXTS[:20], tokenizer=bert_tokenizer(), features=("token",),
                             stage=b.stage, model_id="tiny-org/bert-tiny", show_progress=False)
    a.save_pretrained(tmp_path / "run" / "a")
    again.save_pretrained(tmp_path / "run" / "b")
    report.save_pretrained(tmp_path / "run" / "report")
    parts = [str(tmp_path / "run" / name) for name in ("a", "b", "report")]
    for source in (viewer.SOURCE_SEPARATOR.join(parts), str(tmp_path / "run")):
        with pytest.raises(ConfigurationError, match=f"not computed from the profile of stage '{b.stage}'"):
            viewer.open_results(source, reload=True)
    b.save_pretrained(tmp_path / "run" / "b")  # the profile the report was computed from: opens
    assert viewer.open_results(viewer.SOURCE_SEPARATOR.join(parts), reload=True).report_names == [report.name]

def test_view_reads_each_stage_with_its_own_layers(tmp_path):
    """Stages profiled on different layers, in one results folder: each profile's rows are found with its own layers.
    The viewer read every stage with the first profile's layers, so with a profile of layer 1 alone first, layer 1
    of a profile of both layers showed that profile's layer-0 counts, mass and examples (and layer 0 was not
    offered at all)."""
    run = lambda stage, layers: hf_txray.analyze(  # noqa: E731
        tiny_bert(0), TEXTS, tokenizer=bert_tokenizer(), features=("token",), stage=stage, layers=layers,
        model_id="tiny-org/bert-tiny", show_progress=False)
    top, both = run("top", [1]), run("both", "all")
    view = viewer.open_results(str(hf_txray.save_to_disk(tmp_path / "results", [top, both], plots=False)))
    assert view.layers == [0, 1]
    neuron = int(np.argmax(both.neuron_count[1] != both.neuron_count[0]))
    assert both.neuron_count[1, neuron] != both.neuron_count[0, neuron]
    for layer, stages in ((1, ["top", "both"]), (0, ["both"])):
        stats = viewer.neuron_stats(view, layer, neuron, stages).set_index("stage")
        for profile in (top, both):
            if profile.stage in stages:
                want = profile.neuron_stats().set_index(["layer", "neuron"]).loc[(layer, neuron)]
                assert stats.loc[profile.stage, "count"] == want["count"]
                # Helper 359: a credited neuron's status said "active", the count show and the overview call credited
                assert stats.loc[profile.stage, "status"] == ("credited" if want["count"] > 0 else "dead")
                assert same(stats.loc[profile.stage, "mass"], want["mass"])
                got = viewer.examples_table(view, layer, neuron, [profile.stage])
                assert len(got) == len(profile.top_examples(layer, neuron))
    with pytest.raises(ConfigurationError, match="Layer 0 was not profiled at stage 'top' \\(its layers: \\[1\\]\\)"):
        viewer.neuron_stats(view, 0, neuron, ["top"])

def test_overview_figures_are_of_the_results_read(results, tmp_path):
    """A page load reads a source again once it has left the few kept in memory (results pushed anew show their new
    numbers); the overview figures are drawn from that reading too. They were cached by source name: the new tables
    came with the Hellinger scatter of the results first read (dots of neurons no longer shared, or missing)."""
    app = _load_app()
    a, b, report, _ = results
    source = tmp_path / "results"
    hf_txray.save_to_disk(source, [a, b], [report], plots=False)
    scatter = lambda: app.show_overview(str(source), report.name, "pos")[2]  # noqa: E731
    dots = lambda svg: sorted(map(tuple, re.findall(r'#neuron-(\d+)-(\d+)"', svg)))  # noqa: E731
    def shared(r):  # the scatter's dots: shared neurons with a distance (as test_open_and_overview counts them)
        n = r.neurons[(r.neurons["status"] == "shared") & r.neurons["hellinger_pos"].notna()
                      & (r.neurons["hellinger_length_pos"] > 0)]
        return sorted((str(la), str(ne)) for la, ne in zip(n["layer"], n["neuron"]))
    assert dots(scatter()) == shared(report)
    again = hf_txray.analyze(tiny_bert(1), TEXTS[:30], tokenizer=bert_tokenizer(),
                             features=("token", "pos", hf_txray.UserFeature("markup", markup)), stage=b.stage,
                             model_id="tiny-org/bert-tiny", show_progress=False)
    new_report = hf_txray.compare(a, again)
    assert new_report.name == report.name and shared(new_report) != shared(report)
    hf_txray.save_to_disk(source, [a, again], [new_report], plots=False)
    for i in range(viewer.data.OPENED_KEPT):  # other sources opened since: this one is read again when next shown
        a.save_pretrained(tmp_path / f"other{i}")
        viewer.open_results(str(tmp_path / f"other{i}"))
    assert app.open_results(str(source))[1].startswith("Opened")  # a page load (no reload)
    assert dots(scatter()) == shared(new_report)

# ----- (2) a real browser --------------------------------------------------------------------------------------
@pytest.mark.timeout(240)
@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_browser(served, results, payload_neuron, two_probes, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    expect = playwright.expect
    layer, neuron = payload_neuron
    dialogs: list[str] = []
    shots = screenshot_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(served)
            expect(page.locator("#status textarea")).to_have_value(re.compile("^Opened "), timeout=60_000)
            expect(page.locator("#hellinger_vs_length svg")).to_be_visible(timeout=60_000)
            expect(page.locator("#mass_share img")).to_be_visible(timeout=30_000)
            expect(page.locator("#overview-message textarea")).to_have_value(re.compile(r"^Report .*noise floor"),
                                                                             timeout=30_000)  # notes are not empty
            # plot labels are headings above the images, not badges drawn over the plots' titles
            for name in ("length_shift", "mass_share", "neuron_mass"):  # (the Hellinger scatter has no label)
                image = page.locator(f"#{name} img").bounding_box()
                for label in page.locator(f"#{name} [data-testid=block-label]").all():
                    box = label.bounding_box() if label.is_visible() else None
                    assert box is None or box["y"] + box["height"] <= image["y"] or box["y"] >= image["y"] + \
                        image["height"] or box["x"] + box["width"] <= image["x"], (name, box, image)
            # tables fit the page: their right edge is inside the viewport
            for table in ("#stages-table", "#reports-table", "#layers-table"):
                box = page.locator(table).bounding_box()
                assert box and box["x"] + box["width"] <= 1400, (table, box)
            page.screenshot(path=str(shots / "overview.png"), full_page=True)

            # pick a neuron: layer from the dropdown, neuron typed + Enter
            page.get_by_role("tab", name="Neuron").click()
            expect(page.locator("#neuron-title textarea")).to_have_value(re.compile("^Layer "), timeout=30_000)
            page.locator("#layer input").click()
            page.get_by_role("option", name=str(layer), exact=True).click()
            expect(page.locator("#neuron-title textarea")).to_have_value(re.compile(f"^Layer {layer}, "),
                                                                         timeout=30_000)
            page.locator("#neuron input").fill(str(neuron))
            expect(page.locator("#neuron input")).to_have_value(str(neuron))
            page.locator("#neuron input").press("Enter")
            expect(page.locator("#neuron-title textarea")).to_have_value(
                re.compile(rf"^Layer {layer}, neuron {neuron}: "), timeout=30_000)
            stats = page.locator("#neuron-stats")
            top_token = results[0].top_features(layer, neuron, "token", k=1)[0][0]
            expect(stats).to_contain_text(top_token)
            expect(stats).to_contain_text(PAYLOAD)  # the payload as text, in the top_markup cell
            expect(page.locator("#chart canvas, #chart svg").first).to_be_visible(timeout=30_000)  # Vega drew it
            winners = results[0].top_examples(layer, neuron)["token"]
            expect(page.locator("#examples-a")).to_contain_text(winners.iloc[0])
            page.screenshot(path=str(shots / "neuron.png"), full_page=True)

            # search for the payload itself: shown as text in the results; a row click opens that neuron
            page.get_by_role("tab", name="Search").click()
            page.locator("#search-ft input").click()
            page.get_by_role("option", name="markup", exact=True).click()
            page.locator("#search-value textarea, #search-value input").first.fill(PAYLOAD)
            page.locator("#search-value textarea, #search-value input").first.press("Enter")
            expect(page.locator("#search-message textarea")).to_have_value(re.compile(r"neuron\(s\) of stage"),
                                                                           timeout=30_000)
            expect(page.locator("#search-results")).to_contain_text(PAYLOAD)
            page.screenshot(path=str(shots / "search.png"), full_page=True)
            first = page.locator(FIRST_ROW.format("search-results"))
            first_layer, first_neuron = (first.nth(i).inner_text().strip() for i in (0, 1))
            first.nth(1).click()
            expect(page.get_by_role("tab", name="Neuron")).to_have_attribute("aria-selected", "true", timeout=30_000)
            expect(page.locator("#neuron-title textarea")).to_have_value(
                re.compile(rf"^Layer {first_layer}, neuron {first_neuron}: "), timeout=30_000)

            # transfer: the table, and a row click opens the neuron
            page.get_by_role("tab", name="Transfer").click()
            expect(page.locator("#transfer-message textarea")).to_have_value(re.compile("changed shared neurons"))
            page.screenshot(path=str(shots / "transfer.png"), full_page=True)
            row = page.locator(FIRST_ROW.format("transfer-table"))
            t_layer, t_neuron = (row.nth(i).inner_text().strip() for i in (0, 1))
            row.nth(2).click()
            expect(page.locator("#neuron-title textarea")).to_have_value(
                re.compile(rf"^Layer {t_layer}, neuron {t_neuron}: "), timeout=30_000)

            # an out-of-range neuron: a message, the page stays
            page.locator("#neuron input").fill("4800")
            page.locator("#neuron input").press("Enter")
            expect(page.locator("#neuron-title textarea")).to_have_value(re.compile("is out of range"),
                                                                         timeout=30_000)
            time.sleep(2)  # every handler of the event has answered
            toasts = page.locator("[data-testid=toast-body]").filter(has_text="out of range")
            assert toasts.count() == 1, toasts.all_inner_texts()  # one mistake, one toast
            # emptied tables keep their real headers (no placeholder table headed "1 2 3")
            for table in ("#neuron-stats", "#output-effects", "#activation-facts", "#neuron-probes"):
                headers = page.locator(f"{table} thead").first.inner_text()
                assert not re.search(r"^\s*1\s+2\s+3\s*$", headers), (table, headers)
            assert "stage" in page.locator("#neuron-stats thead").first.inner_text()
            page.get_by_role("tab", name="Probing").click()
            expect(page.locator("#probing-message textarea")).to_have_value(re.compile("no probing results"))
            for table in ("#probing-overview", "#probe-labels", "#probe-top", "#ablation-table"):
                headers = page.locator(f"{table} thead").first.inner_text()
                assert not re.search(r"^\s*1\s+2\s+3\s*$", headers) and headers.strip(), (table, headers)
            page.screenshot(path=str(shots / "probing-empty.png"), full_page=True)
            page.get_by_role("tab", name="Neuron").click()

            # the Probing tab's layer list follows the chosen probe; the chosen layer stays where the new probe has it
            # (helper 442: a switch to a probe without it made Gradio refuse the repeated event's layer in a toast)
            source, both, _ = two_probes
            page.goto(served + "?repo=" + quote(source))
            expect(page.locator("#status textarea")).to_have_value(re.compile("^Opened "), timeout=60_000)
            page.get_by_role("tab", name="Probing").click()
            top_message = page.locator("#probe-top-message textarea")

            def pick(box: str, option: str) -> list[str]:  # the options listed, then `option` chosen
                page.locator(f"{box} input").click()
                expect(page.get_by_role("option", name=option, exact=True)).to_be_visible()
                listed = [o.strip().split("\n")[-1] for o in page.get_by_role("option").all_inner_texts()]
                page.get_by_role("option", name=option, exact=True).click()
                return listed

            expect(top_message).to_have_value(re.compile("probe 'layer-1-only' globally"), timeout=30_000)
            assert pick("#probe-layer", "1") == [viewer.ALL_LAYERS, "1"]
            expect(top_message).to_have_value(re.compile("'layer-1-only' globally in layer 1"), timeout=30_000)
            pick("#probe", both.meta.name)
            expect(top_message).to_have_value(re.compile(f"{both.meta.name}' globally in layer 1"), timeout=30_000)
            assert pick("#probe-layer", "0") == [viewer.ALL_LAYERS, "0", "1"]
            expect(top_message).to_have_value(re.compile("globally in layer 0"), timeout=30_000)
            pick("#probe", "layer-1-only")
            expect(top_message).to_have_value(re.compile(r"'layer-1-only' globally \(click"), timeout=30_000)
            expect(page.locator("#probe-layer input")).to_have_value(viewer.ALL_LAYERS)
            time.sleep(1)  # every handler of the event has answered
            assert page.locator("[data-testid=toast-body]").all_inner_texts() == []

            # the payload never became markup: no such element, no dialog, while it shows as text
            assert page.locator('img[src="x"]').count() == 0
            assert page.locator("img[onerror]").count() == 0

            # an unknown repo in the URL: a readable message on a working page
            page.goto(served + "?repo=nobody/no-such-results")
            expect(page.locator("#status textarea")).to_have_value(
                re.compile("Could not download the Hub dataset 'nobody/no-such-results'"), timeout=60_000)
            expect(page.get_by_role("heading", name="hf_txray neuron viewer")).to_be_visible()
            time.sleep(0.5)
            assert page.locator('img[src="x"]').count() == 0
        finally:
            browser.close()
    assert dialogs == []


# Where a table's last header cell can be read: inside the window, or inside a sideways-scrolling frame (itself
# inside the window) that draws its scrollbar and brings the cell into the frame when scrolled to the end.
READABLE_JS = """th => {
  const win = document.documentElement.clientWidth, box = th.getBoundingClientRect();
  if (box.right <= win) return {ok: true, how: 'inside the window'};
  let n = th.parentElement;
  while (n && !(n.scrollWidth > n.clientWidth && ['auto', 'scroll'].includes(getComputedStyle(n).overflowX)))
    n = n.parentElement;
  if (!n) return {ok: false, how: 'cut off: no scroll container', right: box.right};
  const style = getComputedStyle(n), frame = n.getBoundingClientRect();
  const bar = n.offsetHeight - n.clientHeight - parseFloat(style.borderTopWidth) - parseFloat(style.borderBottomWidth);
  n.scrollLeft = n.scrollWidth;
  const after = th.getBoundingClientRect();
  n.scrollLeft = 0;
  return {ok: frame.right <= win && bar >= 8 && after.right <= frame.right + 1 && after.left >= frame.left - 1,
          how: 'scrolls', frame: [frame.left, frame.right], bar: bar, after: [after.left, after.right]};
}"""
# Lines each header's text takes, and its words: a header broken inside a word ("la/ye/r") takes more lines.
HEADER_LINES_JS = """th => Array.from(th.querySelectorAll('.header')).map(span => {
  const range = document.createRange(); range.selectNodeContents(span);
  const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
  return [span.textContent.trim(), lines.size, span.textContent.trim().split(/\\s+/).length];
})"""


@pytest.mark.timeout(240)
@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_browser_dot_click_and_wide_tables(app, served, results, tmp_path):
    """A click on a dot of the Hellinger scatter opens that dot's neuron; every overview table shows all its columns
    (inside the window or by scrolling inside its frame, with a drawn scrollbar) and breaks headers between words."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    expect = playwright.expect
    report = results[2]
    with browser_page(playwright, scrollbars=True) as page:
        page.goto(served)
        expect(page.locator("#overview-message textarea")).to_have_value(re.compile(r"^Report "), timeout=60_000)
        view = viewer.open_results(str(results[3]))
        wanted = {"#stages-table": viewer.stages_table(view), "#reports-table": viewer.reports_table(view),
                  "#layers-table": viewer.layer_summary(view, report.name)}
        for table, content in wanted.items():
            expect(page.locator(f"{table} tbody")).to_contain_text(re.compile(r"\d"), timeout=30_000)
            headers = page.locator(f"{table} thead th")
            assert headers.last.inner_text().strip() == str(content.columns[-1]), table
            where = headers.last.evaluate(READABLE_JS)
            assert where["ok"], (table, where)
            for text, lines, words in (x for th in headers.all() for x in th.evaluate(HEADER_LINES_JS)):
                assert lines <= words, (table, text, lines)
        # click a dot that nothing covers, of a neuron other than the one shown
        shown = "Layer {}, neuron {}:".format(*app.default_neuron(view))  # what the Neuron tab shows already
        target = page.evaluate("""(shown) => {
          for (const link of document.querySelectorAll('#hellinger_vs_length a')) {
            const m = (link.getAttribute('xlink:href') || '').match(/^#neuron-(\\d+)-(\\d+)$/);
            const r = link.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
            if (!m || shown.startsWith(`Layer ${m[1]}, neuron ${m[2]}:`)) continue;
            link.scrollIntoView({block: 'center'});
            const s = link.getBoundingClientRect(), cx = s.left + s.width / 2, cy = s.top + s.height / 2;
            const hit = document.elementFromPoint(cx, cy);
            if (hit && hit.closest('a') === link) return {layer: +m[1], neuron: +m[2], x: cx, y: cy};
          }
          return null;
        }""", shown)
        assert target, "no uncovered dot in the Hellinger scatter"
        page.mouse.click(target["x"], target["y"])
        expect(page.get_by_role("tab", name="Neuron")).to_have_attribute("aria-selected", "true", timeout=30_000)
        expect(page.locator("#neuron-title textarea")).to_have_value(
            re.compile(rf"^Layer {target['layer']}, neuron {target['neuron']}: shared from stage A "
                       rf"\({report.meta.stage_a}\) to stage B \({report.meta.stage_b}\)"), timeout=30_000)
        expect(page.locator("#neuron input")).to_have_value(str(target["neuron"]))
        page.screenshot(path=str(tmp_path / "dot-click.png"), full_page=True)


# ----- (3) probing results and attribution (issue 7) ------------------------------------------------------------
@pytest.fixture(scope="module")
def probing_results(results, tmp_path_factory):
    """The fixture results plus a probe on tiny_bert(0) (the "pretrained" stage's model) and an ablation curve,
    saved with save_probing into a copy of the folder (~3 s); the original folder stays without probing configs."""
    from hf_txray.probing import AblationCurve, ProbeConfig, extract_activations, from_columns, load_probing, \
        probe_neurons, save_probing

    words = [t.split() for t in TEXTS if t.split()]
    rows = {"tokens": words, "tags": [["CAP" if w[:1].isupper() else "LOW" for w in ws] for ws in words]}
    corpus = from_columns(rows, "tokens", "tags")
    acts = extract_activations(tiny_bert(0), corpus, bert_tokenizer(), layers=[0, 1])
    probe = probe_neurons(None, acts, config=ProbeConfig(epochs=5), subset_seeds=(0,))
    curve = AblationCurve(pd.DataFrame({"strategy": ["baseline", "ranked", "random", "ranked", "random"],
                                        "seed": [-1, -1, 0, -1, 0], "num_ablated": [0, 1, 1, 4, 4],
                                        "value": [0.9, 0.7, 0.88, 0.5, 0.85]}),
                          "caps", "probe_accuracy", "zero", "tiny-org/bert-tiny", f"probe:{probe.meta.name}", [0, 1])
    folder = tmp_path_factory.mktemp("space-probing") / "results"
    shutil.copytree(results[3], folder)
    save_probing(folder, probes=[probe], ablations=[curve])
    return folder, probe, curve, load_probing(folder)


def test_probing_tab_and_neuron_probe_rows(served, probing_results):
    from hf_txray.probing import results as pr

    folder, probe, curve, loaded = probing_results
    from gradio_client import Client

    name = probe.meta.name
    c = Client(served, verbose=False)
    assert c.predict(str(folder), api_name="/open")[0].startswith("Opened")
    message, overview, probe_choice, label_choice, curve_choice, layer_choice = c.predict(api_name="/probing")
    assert name in message and "caps" in message
    overview = frame(overview)
    assert list(overview["probe"]) == [name]
    assert same(overview.loc[0, "accuracy"], probe.accuracy) and same(overview.loc[0, "selectivity"],
                                                                       probe.selectivity)
    assert overview.loc[0, "minimal_set"] == probe.minimal_size
    assert [u["value"] for u in (probe_choice, label_choice, curve_choice)] == [name, viewer.ALL_LABELS, "caps"]
    assert [c[0] for c in label_choice["choices"]] == [viewer.ALL_LABELS, *probe.meta.label_names]

    # global ranking, then per label and per layer: the rows of the loaded results, computed here
    for label, layer in ((viewer.ALL_LABELS, viewer.ALL_LAYERS), ("CAP", viewer.ALL_LAYERS), ("LOW", 1)):
        top_message, labels, top, _ = c.predict(name, label, layer, api_name="/probe")
        top = frame(top)
        want = pr.probe_top_neurons(loaded, name, label=None if label == viewer.ALL_LABELS else label,
                                    layer=None if layer == viewer.ALL_LAYERS else layer, n=50)
        assert f"Top {len(want)} neuron(s)" in top_message
        assert list(zip(top["layer"], top["neuron"], top["rank"])) == list(zip(want["layer"], want["neuron"],
                                                                               want["rank"]))
        weights = want["weight"] if "weight" in want else want["top_weight"]
        got = top["weight"] if "weight" in top else top["top_weight"]
        assert all(same(x, y) for x, y in zip(got, weights))
        assert set(frame(labels)["label"]) == {"CAP", "LOW"}
    top_global = probe.ranking.sort_values("rank").iloc[0]
    first = pr.probe_top_neurons(loaded, name, n=1).iloc[0]
    assert (first["layer"], first["neuron"]) == (top_global["layer"], top_global["neuron"])

    ablation_message, plot, summary = c.predict("caps", api_name="/ablation")
    assert "caps" in ablation_message and plot["plot"].startswith("data:image/png;base64,")
    summary = frame(summary).set_index(["strategy", "num_ablated"])
    for key, value in curve.summary().set_index(["strategy", "num_ablated"])["mean"].items():
        assert same(summary.loc[key, "mean"], value)

    # the Neuron tab: the neuron's rank / weight per probe
    layer, neuron = int(top_global["layer"]), int(top_global["neuron"])
    probe_message, rows = c.predict(layer, neuron, api_name="/neuron_probes")
    rows = frame(rows)
    want = pr.neuron_probe_rows(loaded, layer, neuron)
    assert list(rows["probe"]) == [name] and rows.loc[0, "rank"] == want.loc[0, "rank"] == 0
    assert rows.loc[0, "of"] == len(probe.ranking) and same(rows.loc[0, "top_weight"], want.loc[0, "top_weight"])
    assert rows.loc[0, "label_ranks"] == want.loc[0, "label_ranks"]
    assert f"Layer {layer}, neuron {neuron} in 1 probe(s)" in probe_message


@pytest.fixture(scope="module")
def two_probes(results, probing_results, tmp_path_factory):
    """The fixture results with two probes: the probing fixture's (of layers 0 and 1) and "layer-1-only" (of layer 1
    alone, listed first), saved with save_probing into a copy of the folder (~2 s)."""
    from hf_txray.probing import ProbeConfig, extract_activations, from_columns, probe_neurons, save_probing

    both = probing_results[1]
    words = [t.split() for t in TEXTS if t.split()]
    corpus = from_columns({"tokens": words, "tags": [["CAP" if w[:1].isupper() else "LOW" for w in ws]
                                                      for ws in words]}, "tokens", "tags")
    acts = extract_activations(tiny_bert(0), corpus, bert_tokenizer(), layers=[1])
    top = probe_neurons(None, acts, config=ProbeConfig(epochs=2), subset_seeds=(0,), name="layer-1-only")
    source = tmp_path_factory.mktemp("space-two-probes") / "results"
    shutil.copytree(results[3], source)
    save_probing(source, probes=[both, top])
    return str(source), both, top


def test_the_probing_tab_offers_the_layers_of_the_chosen_probe(app, two_probes):
    """Helper 440: the Probing tab's layer dropdown listed the profiled layers (0 and 1 here) whichever probe was
    chosen, so a probe of layer 1 alone offered layer 0, refused when picked. It offers the chosen probe's layers
    (probing.results.probed_layers), updated when the probe changes; a layer the probe lacks is still refused.

    Helper 442: Gradio fires a dropdown's input twice per pick, so a switch to a probe without the chosen layer sent
    that layer once more after the first event had taken it out of the choices, and Gradio refused it in a toast
    ("Value: 0 is not in the list of choices: ['all', 1]"): the dropdown takes a value it does not list (browser check
    in test_browser)."""
    source, both, top = two_probes
    values = lambda dropdown: [c[1] for c in dropdown.choices]  # noqa: E731
    assert sorted({int(x) for x in top.ranking["layer"]}) == [1]
    assert sorted({int(x) for x in both.ranking["layer"]}) == [0, 1]
    assert viewer.probe_names(viewer.open_results(source, reload=True)) == ["layer-1-only", both.meta.name]
    layers = {both.meta.name: [0, 1], "layer-1-only": [1]}
    assert values(app.show_probing(source)[5]) == [viewer.ALL_LAYERS, 1]  # the first probe's
    for name, kept in ((both.meta.name, 0), ("layer-1-only", 1)):
        for given in (kept, str(kept)):
            choices = app.probe_layers(source, name, given)
            assert values(choices) == [viewer.ALL_LAYERS, *layers[name]] and choices.value == kept
    # switched to the probe of layer 1 alone with layer 0 chosen: every layer of it, not a refusal
    assert app.probe_layers(source, "layer-1-only", 0).value == viewer.ALL_LAYERS
    with pytest.raises(ConfigurationError, match=re.escape("Layer 0 was not probed by probe 'layer-1-only'; its "
                                                           "layers: [1]")):
        app.show_probe(source, "layer-1-only", viewer.ALL_LABELS, 0)
    message, _, table, _ = app.show_probe(source, "layer-1-only", viewer.ALL_LABELS, 1)
    assert len(table) and set(table["layer"]) == {1}, message
    # the stale layer that the repeated probe change sends, read by the dropdown the update leaves
    import gradio

    update = app.probe_layers(source, "layer-1-only", 0)
    demo = app.build_demo(source)
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "probe-layer")
    left = gradio.Dropdown(choices=update.choices, value=update.value, allow_custom_value=box.allow_custom_value)
    assert left.preprocess(0) == 0


def test_a_probing_result_saved_alone_opens_beside_the_results_or_says_how(app, results, probing_results, tmp_path):
    """Helper 288: `hf-txray view PROBE_DIR` of what `hf-txray probe --out` (ProbingResult.save_pretrained) writes was
    refused as "not an hf_txray results folder: it has no meta/ config, and no profile or report folder", and opened
    beside results (RESULTS:PROBE_DIR) as well: its probing configs were never read. Alone, it is refused naming what
    it is and how to open it; beside the results of its model, the Probing tab shows it (merged with the results' own
    probing runs); a probe of another Hub model is refused."""
    import dataclasses

    from hf_txray.probing import ProbingResult, load_probing
    from hf_txray.probing.results import probe_overview
    from hf_txray.viewer import data

    folder, probe, curve, _ = probing_results
    alone = probe.save_pretrained(tmp_path / "probe")
    with pytest.raises(ConfigurationError, match=r"is a saved probing result \(ProbingResult.save_pretrained, "
                                                 rf"`hf-txray probe --out`\).*`hf-txray view RESULTS {alone}`"):
        data.open_results(str(alone))
    with pytest.raises(ConfigurationError, match="is a saved ablation curve"):
        data.open_results(str(curve.save_pretrained(tmp_path / "curve")))

    view = data.open_results(f"{results[3]}{data.SOURCE_SEPARATOR}{alone}")
    assert set(view.profiles) == {"pretrained", "finetuned"}
    overview = probe_overview(view.probing)
    assert list(overview["probe"]) == [probe.meta.name] and overview.loc[0, "accuracy"] == probe.accuracy
    pd.testing.assert_frame_equal(view.probing.probe_rankings, load_probing(alone).probe_rankings)
    message, shown, *_ = app.show_probing(view.source)
    assert probe.meta.name in message and list(shown["probe"]) == [probe.meta.name]

    other = ProbingResult(**{**probe.__dict__, "meta": dataclasses.replace(probe.meta, name="other-probe")})
    other_dir = other.save_pretrained(tmp_path / "other")
    view = data.open_results(f"{folder}{data.SOURCE_SEPARATOR}{other_dir}")  # the results' own probe and this one
    assert sorted(probe_overview(view.probing)["probe"]) == sorted([probe.meta.name, "other-probe"])
    with pytest.raises(ConfigurationError, match="is in both"):
        data.open_results(f"{folder}{data.SOURCE_SEPARATOR}{alone}")
    foreign = ProbingResult(**{**probe.__dict__, "meta": dataclasses.replace(probe.meta, model_id="other-org/model")})
    with pytest.raises(ConfigurationError, match="are of 'other-org/model', not of the model of its profiles"):
        data.open_results(f"{results[3]}{data.SOURCE_SEPARATOR}{foreign.save_pretrained(tmp_path / 'foreign')}")


def test_a_list_of_sources_is_named_in_messages_as_typed(results, probing_results, tmp_path):
    """Opened as a list (``hf-txray view a b``), the sources were named as a Python tuple in the probing messages
    ("opened as ('/x/results', '/x/probe')"): named as the viewer's box reads them, joined by the separator."""
    import dataclasses

    from hf_txray.probing import ProbingResult
    from hf_txray.viewer import data

    folder, probe, _, _ = probing_results
    alone = str(probe.save_pretrained(tmp_path / "probe"))
    typed = f"{folder}{data.SOURCE_SEPARATOR}{alone}"
    with pytest.raises(ConfigurationError, match=rf"\(opened as {re.escape(repr(typed))}\)") as err:
        data.open_results([str(folder), alone])
    assert "(" + repr(str(folder)) not in str(err.value)
    foreign = ProbingResult(**{**probe.__dict__, "meta": dataclasses.replace(probe.meta, model_id="other-org/model")})
    foreign_dir = str(foreign.save_pretrained(tmp_path / "foreign"))
    typed = f"{results[3]}{data.SOURCE_SEPARATOR}{foreign_dir}"
    with pytest.raises(ConfigurationError, match=rf"opened with {re.escape(typed)} are of 'other-org/model'"):
        data.open_results([str(results[3]), foreign_dir])


def test_probing_tab_without_probing_results(client, results):
    message, overview, *_ = client.predict(api_name="/probing")
    assert message == viewer.NO_PROBING and "hf-txray probe" in message and frame(overview).empty
    assert client.predict(None, None, viewer.ALL_LAYERS, api_name="/probe")[0] == viewer.NO_PROBING
    probe_message, rows = client.predict(0, 1, api_name="/neuron_probes")
    assert probe_message == viewer.NO_PROBING and frame(rows).empty
    # no model given to build_demo: the attribution button says how to enable it
    assert client.predict(0, 1, "pretrained", 3, api_name="/explain")[0] == viewer.NO_MODEL


def test_attribution_through_the_viewer(app, results, payload_neuron):
    pytest.importorskip("captum")
    from hf_txray.probing import explain_examples

    a, _, _, folder = results
    layer, neuron = payload_neuron
    model, tokenizer = tiny_bert(0), bert_tokenizer()  # the model of stage "pretrained"
    view = viewer.open_results(str(folder))
    message, spans, table = app.explain_neuron(str(folder), layer, neuron, "pretrained", 2,
                                               app.AttributionModel((model, tokenizer)), n_steps=8)
    direct = explain_examples(model, tokenizer, a.top_examples(layer, neuron), layer, neuron, k=2, n_steps=8)
    assert len(direct) == min(2, len(a.top_examples(layer, neuron))) and "Integrated gradients" in message
    assert table["score"].tolist() == pytest.approx(
        [float(s) for d in direct for s in d.table.loc[~d.table["special"], "score"]], rel=1e-6, abs=1e-12)
    # the spans: each example's text, its tokens' scores divided by the largest |score| of the example
    assert [t for t, _ in spans if not t.startswith(("#", "\n#"))] == [t for d in direct for t, _ in
                                                                      d.highlight_spans()]
    scored = [v for _, v in spans if v is not None]
    want = [v / max(abs(x) for _, x in d.highlight_spans() if x is not None)
            for d in direct for _, v in d.highlight_spans() if v is not None]
    assert scored == pytest.approx(want, abs=1e-6) and max(map(abs, scored)) == pytest.approx(1.0)
    again = viewer.explain_top_examples(view, model, tokenizer, "pretrained", layer, neuron, k=2, n_steps=8)
    assert np.allclose(np.concatenate([x.scores for x in again]), np.concatenate([d.scores for d in direct]))
    with pytest.raises(ConfigurationError, match="--model"):
        app.explain_neuron(str(folder), layer, neuron, "pretrained", 2, app.AttributionModel(None))


def test_viewer_edges_found_by_a_fresh_helper(results, tmp_path):
    """Fresh helper 85: the histogram's open outer bins showed finite ranges; a shown Hellinger distance typed as a
    search range's end left its neuron out; small values were shown as 0; two stages of different feature types broke
    the neuron tab; some line breaks stayed inside a one-line example."""
    import dataclasses

    from hf_txray.tables import one_line
    from hf_txray.viewer import data as viewer_data
    from hf_txray.viewer import neuron as neuron_view

    a, b, report, folder = results
    view = viewer.open_results(str(folder))
    layer, neuron = (int(x) for x in a.neuron_stats().sort_values("count").iloc[-1][["layer", "neuron"]])
    hist = neuron_view.histogram_data(view, layer, neuron, ["pretrained", "finetuned"])
    edges = a.histogram_edges()
    want = [f"< {edges[0]:.3g}"] + [f"{lo:.3g} to {hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:])] + [
        f">= {edges[-1]:.3g}"]
    assert set(hist["range"]) <= set(want) and len(hist)
    spec = viewer.figures.histogram_chart(view, layer, neuron, "pretrained", "finetuned")
    assert {"field": "range", "title": "activation"} in spec["encoding"]["tooltip"]
    # the chart carries its title (the block's label covered it: helper 116), and drops overlapping axis labels
    assert spec["title"] == f"Layer {layer}, neuron {neuron}: credited activations (log-spaced bins)"
    assert spec["encoding"]["x"]["axis"]["labelOverlap"] == "greedy"
    # small values keep 4 significant digits; larger ones 4 decimals
    assert list(viewer_data.display_values([0.000213456, 0.00255, 0.414372, 12.345678, 0.0, np.nan])[:5]) == [
        0.0002135, 0.00255, 0.4144, 12.3457, 0.0]
    # the Hellinger range search reads the values as shown: a shown value typed as an end includes its neuron
    column = f"hellinger_{report.meta.feature_types[0]}"
    shared = report.neurons[report.neurons[column].notna()]
    shown = viewer_data.display_value(shared[column].iloc[0])
    found = viewer.tables.search_hellinger(view, next(iter(view.reports)), report.meta.feature_types[0], shown,
                                           shown, min_count=1)
    assert len(found) and (found[column] == shown).all()
    # stages of different feature types: compared on those they share; the neuron tab's parts all answer
    token_only = dataclasses.replace(b.meta, feature_types=["token"], stage="tokens",
                                     num_feature_texts={k: v for k, v in b.meta.num_feature_texts.items() if k == "token"})
    tokens = hf_txray.Profile(token_only, b.neuron_mass, b.neuron_count, {"token": b.tables["token"]}, b.examples)
    mixed = tmp_path / "mixed"
    hf_txray.save_to_disk(mixed, [a, tokens], [], plots=False)
    view = viewer.open_results(str(mixed))
    assert view.shared_feature_types("pretrained", "tokens") == ["token"]
    comparison = neuron_view.neuron_comparison(view, layer, neuron, "pretrained", "tokens")
    assert list(comparison["feature type"]) == ["token"]
    assert neuron_view.neuron_status(view, layer, neuron, "pretrained", "tokens") in ("shared", "lost", "gained",
                                                                                        "dead")
    assert neuron_view.neuron_summary(view, layer, neuron, "pretrained", "tokens")
    # an accent the tokenizer stripped (its token's offsets end before it) is highlighted with its letter
    from hf_txray.viewer.live import _text_spans

    text = "bru\u0302le\u0301e"
    spans, _ = _text_spans(text, np.array([0, 2, 7]), np.array([2, 6, 8]), np.array([1.0, 2.0, 3.0]),
                           marks=["1", "2", "3"])
    assert [s for s, _ in spans] == ["br", "1", "u\u0302le\u0301", "2", "e", "3"]
    from hf_txray.tables import shown_example

    # the recorded span as it is (a stripped accent is in it: char_end covers it; test_tables, helper 334)
    assert shown_example("le\u2028", "cafe\u0301", " noir") == ("le ", "cafe\u0301", " noir")
    assert shown_example("le caf", "e", "\u0301 noir") == ("le caf", "e", "\u0301 noir")
    # every line break str.splitlines() knows, and tabs, become spaces
    text = "a\rb\nc\x0bd\x0ce\x1cf\x85g\u2028h\u2029i\tj"
    assert one_line(text) == "a b c d e f g h i j" and len(one_line(text).splitlines()) == 1


def test_open_reads_results_saved_again_into_the_same_folder(client, results, tmp_path):
    """Helper 174: opened sources were cached by name for the server's life, so pressing Open on a folder saved
    again (or a repo pushed again) showed the first save's stages, reports and numbers without a word."""
    a, b, report, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "again", [a, b], [report], plots=False)
    assert list(frame(client.predict(str(folder), api_name="/open")[1])["stage"]) == ["pretrained", "finetuned"]
    hf_txray.save_to_disk(folder, [b], plots=False)
    opened = client.predict(str(folder), api_name="/open")
    assert "1 profile(s), 0 report(s)" in opened[0]
    assert list(frame(opened[1])["stage"]) == ["finetuned"]


def test_a_public_space_opens_hub_repos_only(app, results, monkeypatch, tmp_path):
    """On a Space a visitor's source (text box, ?repo=, the open API) names Hub repos only: a local path would let
    anyone probe the Space's file system for results folders. The deployer's default source may be a folder."""
    folder = str(results[3])
    monkeypatch.setenv("SPACE_ID", "me/viewer")
    monkeypatch.setenv("TXRAY_REPO", folder)
    assert "finetuned" in str(app.open_results(folder))  # the deployer's own folder opens
    for visitor in (str(tmp_path), "/etc", "../results", folder + viewer.SOURCE_SEPARATOR + "me/results"):
        with pytest.raises(ConfigurationError, match="Hub dataset repo id"):
            app.open_results(visitor)
    (tmp_path / "me" / "results").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="names a path on this Space"):
        app.open_results("me/results", reload=True)
    monkeypatch.delenv("SPACE_ID")  # run locally, folders open as before
    assert "finetuned" in str(app.open_results(folder))


def test_a_repo_opens_at_a_revision(app, hub, results, monkeypatch, tmp_path):  # noqa: F811
    """Helper 187: results pushed to a branch (push_to_hub(..., revision="exp")) could not be opened: the source box,
    ?repo= and `hf-txray view` take owner/name@revision now (hf:// paths' form), also on a public Space and beside
    another part; a malformed one is refused with the form to write."""
    a, b, report, folder = results
    repo_id = "test-user/branch-results"
    hf_txray.hub.push_folder(hf_txray.save_to_disk(tmp_path / "main", [a], [], plots=False), repo_id)
    hf_txray.hub.push_folder(folder, repo_id, revision="exp")
    monkeypatch.setenv("SPACE_ID", "me/viewer")  # a visitor's source: the revision form is a Hub repo id too
    monkeypatch.delenv("TXRAY_REPO", raising=False)
    assert app.open_results(f"{repo_id}@exp")[1].startswith(f"Opened {repo_id}@exp: 2 profile(s), 1 report(s)")
    assert app.open_results(repo_id)[1].startswith(f"Opened {repo_id}: 1 profile(s), 0 report(s)")
    sha = hub.api.list_repo_refs(repo_id, repo_type="dataset").branches
    sha = next(branch.target_commit for branch in sha if branch.name == "exp")
    assert viewer.open_results(f"{repo_id}@{sha}").report_names == [report.name]
    with pytest.raises(ConfigurationError, match="owner/name@revision"):
        app.open_results(f"{repo_id}@")
    for bad in (f"{repo_id}@", "@exp", f"{repo_id}@exp@v1", f"{repo_id}@a b"):
        with pytest.raises(ConfigurationError, match="owner/name@revision"):
            viewer.open_results(bad)
    with pytest.raises(TXRayError, match="nope"):
        viewer.open_results(f"{repo_id}@nope")
    hf_txray.hub.push_folder(hf_txray.save_to_disk(tmp_path / "b", [b], [], plots=False), repo_id, revision="b")
    two = viewer.open_results(f"{repo_id}{viewer.SOURCE_SEPARATOR}{repo_id}@b")  # the parts' separator still works
    assert sorted(two.stages) == ["finetuned", "pretrained"]
    monkeypatch.delenv("SPACE_ID")
    with pytest.raises(ConfigurationError, match="a local path, which has no revision"):
        viewer.open_results(f"{folder}@exp")


def test_results_pushed_only_to_a_branch_are_named_when_the_default_one_is_opened(app, hub, results,  # noqa: F811
                                                                                     monkeypatch):
    """Helper 268: results pushed only to a branch (the default one holding none) opened as "is not an hf_txray
    results dataset: it has no meta/ config (push results with hf_txray.push_to_hub)", dropping the branch that
    hf_txray.load names: the viewer says which branch holds them, in its owner/name@revision form."""
    repo_id = "test-user/only-on-a-branch"
    hf_txray.hub.push_folder(results[3], repo_id, revision="exp")
    monkeypatch.delenv("TXRAY_REPO", raising=False)
    with pytest.raises(ProfileFormatError) as err:
        viewer.open_results(repo_id)
    message = str(err.value)
    assert f"The Hub dataset {repo_id!r} is not an hf_txray results dataset" in message
    assert f"its other branch(es) 'exp' may hold them: open {repo_id}@exp." in message, message
    assert app.open_results(f"{repo_id}@exp")[1].startswith(f"Opened {repo_id}@exp: 2 profile(s), 1 report(s)")
    with pytest.raises(ProfileFormatError) as err:  # at a revision: no other branch is named
        viewer.open_results(f"{repo_id}@main")
    assert f"The Hub dataset {repo_id!r} at 'main' is not an hf_txray results dataset" in str(err.value)
    assert "other branch" not in str(err.value)


def test_a_repo_opens_from_its_hub_address(app, hub, results, monkeypatch, tmp_path):  # noqa: F811
    """Helper 250: a dataset's URL pasted from the browser (or its hf:// path) was split at its ":" into sources and
    refused as "No folder 'https' here"; it opens the repo it names now (at the revision of /tree/REV or @REV), on a
    public Space too; the URL of no dataset repo, or of a repo on another host than the Hub read, is refused."""
    a, b, report, folder = results
    repo_id = "test-user/address-results"
    hf_txray.hub.push_folder(hf_txray.save_to_disk(tmp_path / "main", [a], [], plots=False), repo_id)
    hf_txray.hub.push_folder(folder, repo_id, revision="exp")
    monkeypatch.setenv("SPACE_ID", "me/viewer")
    monkeypatch.delenv("TXRAY_REPO", raising=False)
    for address, stages in ((f"https://huggingface.co/datasets/{repo_id}", 1), (f"{hub.url}/datasets/{repo_id}/", 1),
                            (f"https://huggingface.co/datasets/{repo_id}/tree/exp", 2),
                            (f"hf://datasets/{repo_id}@exp", 2), (f"hf://datasets/{repo_id}", 1)):
        assert app.open_results(address)[1].startswith(f"Opened {address}: {stages} profile(s)"), address
    hf_txray.hub.push_folder(hf_txray.save_to_disk(tmp_path / "b", [b], [], plots=False), repo_id, revision="b")
    two = viewer.open_results(f"https://hf.co/datasets/{repo_id}{viewer.SOURCE_SEPARATOR}hf://datasets/{repo_id}@b")
    assert two.profiles["pretrained"] == a and two.profiles["finetuned"] == b and not two.reports
    for bad, said in ((f"https://huggingface.co/{repo_id}", "is not the address of a Hub dataset repo"),
                      (f"https://huggingface.co/datasets/{repo_id}/blob/main/README.md", "is not the address of a Hub"),
                      (f"https://hf-mirror.example/datasets/{repo_id}", "is on hf-mirror.example, not on the Hub")):
        with pytest.raises(ConfigurationError, match=said):
            app.open_results(bad)


def test_neuron_tab_of_two_stages_compare_refuses(tmp_path):
    """Helper 187: two stages profiled with different top_k (which compare refuses) made the whole Neuron tab an
    error. It shows each stage's own stats, distributions, examples and page sections now, and says once that the
    two stages cannot be compared (compare's own reason), with no status or distance between them."""
    app = _load_app()
    run = lambda stage, top_k: hf_txray.analyze(  # noqa: E731
        tiny_bert(0), TEXTS, tokenizer=bert_tokenizer(), features=("token", "pos"), stage=stage, top_k=top_k,
        model_id="tiny-org/bert-tiny", show_progress=False)
    one, two = run("top1", 1), run("top2", 2)
    with pytest.raises(hf_txray.errors.IncompatibleProfilesError) as refused:
        hf_txray.compare(one, two)
    source = str(hf_txray.save_to_disk(tmp_path / "results", [one, two], plots=False))
    app.open_results(source)
    view_of = viewer.open_results
    layer, neuron = 1, int(np.argmax((one.neuron_count[1] > 0) & (two.neuron_count[1] > 0)))
    title, stats, comparison, chart, ex_a, ex_b, examples, distributions = app.show_neuron(
        source, layer, neuron, "top1", "top2")
    assert "cannot be compared" in title and str(refused.value).split(":")[0] in title
    assert "shared" not in title and "Hellinger distance" not in title
    assert len(comparison) == 0  # no distance between them
    assert viewer.neuron_status(view_of(source), layer, neuron, "top1", "top2") == "not comparable"
    want = {p.stage: p.neuron_stats().set_index(["layer", "neuron"]).loc[(layer, neuron)] for p in (one, two)}
    got = stats.set_index("stage")
    assert [got.loc[s, "count"] for s in ("top1", "top2")] == [want[s]["count"] for s in ("top1", "top2")]
    assert set(distributions["stage"]) == {"top1", "top2"} and len(examples) > 0 and ex_a and ex_b
    summary, *_ = app.show_neuron_page(source, layer, neuron, "top1", "top2")
    assert summary.startswith("top1: ") and "\ntop2: " in summary


def test_the_viewer_caches_keep_the_most_recently_used():
    """One cache class for results opened and figures drawn: the least recently used entry leaves first."""
    cache = viewer.data.RecentlyUsed(2)
    cache.put("a", 1), cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), len(cache)) == (None, 1, 3, 2)
    cache.clear()
    assert cache.get("a") is None and len(cache) == 0


def test_report_only_results_say_what_the_report_knows(app, results, tmp_path):
    """Helper 234: results holding a report but not the stages' profiles showed the in-memory corpus as a bare
    fingerprint ("5c4966148fd30784", where a profile's row says "in-memory texts"), and the neuron summary said "No
    profile for these stages." though the report holds the neuron's status, Hellinger distances, p-values and changed
    flags (which `hf-txray show REPORT --neuron` prints)."""
    from hf_txray.display import report_neuron_text
    from hf_txray.viewer import neuron as neuron_view

    a, b, report, folder = results
    only = hf_txray.save_to_disk(tmp_path / "report-only", [], [report], plots=False)
    view = viewer.open_results(str(only))
    stages = viewer.stages_table(view).set_index("stage")
    assert stages.loc["pretrained", "corpus"] == f"in-memory texts [{a.meta.dataset_fingerprint}]"
    assert stages.loc["finetuned", "corpus"] == f"in-memory texts [{b.meta.dataset_fingerprint}]"
    with_profiles = viewer.stages_table(viewer.open_results(str(folder))).set_index("stage")
    assert with_profiles.loc["pretrained", "corpus"] == "in-memory texts"
    tested = report.neurons[report.neurons["p_hellinger_pos"].notna()].iloc[0]
    layer, neuron = int(tested["layer"]), int(tested["neuron"])
    summary = neuron_view.neuron_summary(view, layer, neuron, "pretrained", "finetuned")
    assert summary == report_neuron_text(view.report("pretrained->finetuned"), layer, neuron)
    assert f"Layer {layer}, neuron {neuron} in report pretrained->finetuned: shared" in summary
    assert "pos: Hellinger" in summary and ("changed yes" in summary or "changed no" in summary)
    # a named corpus stays as it is named
    from hf_txray.report import corpus_text

    assert corpus_text("stanfordnlp/imdb") == "stanfordnlp/imdb" and corpus_text("") == "in-memory texts"
    assert corpus_text("0123456789abcdef+fedcba9876543210") == "in-memory texts [0123456789abcdef+fedcba9876543210]"


def test_viewer_tables_show_missing_values_as_a_dash(app, results):
    """Helper 234: the viewer's tables drew NaN (the Hellinger distance of a lost or gained neuron, the p-value of an
    untested one) and None (a report-only stage's texts) as blank cells, beside "–" for an untested changed flag;
    every table shows them as tables.MISSING, and the viewer's functions still return numbers to Python callers."""
    from hf_txray.tables import MISSING

    a, b, report, folder = results
    view = viewer.open_results(str(folder))
    status = next(s for s in ("lost", "gained") if (report.neurons["status"] == s).any())
    raw = viewer.search_status(view, "pretrained->finetuned", status)
    assert raw["hellinger_pos"].isna().all() and raw["hellinger_pos"].dtype == float
    shown = app._table("t", ()).postprocess(raw)
    column = shown.headers.index("hellinger_pos")
    assert [row[column] for row in shown.metadata["display_value"]] == [MISSING] * len(raw)
    counts = shown.headers.index("count_a")
    assert [row[counts] for row in shown.data] == list(raw["count_a"])  # numbers stay numbers
    assert app._table("t", ()).postprocess(app.empty("a", "b")).headers == ["a", "b"]


def test_a_missing_number_is_shown_as_a_dash_but_sent_as_null(app, results):
    """Helper 236: the "–" of a missing number went to the browser as the cell's value, a string in a numeric column,
    and Gradio's sort broke on it. Sorted ascending in Chromium, the Hellinger search's p_hellinger_pos column read
    0.00001389, –, –, –, 0.00001045, 0.00007885, ... (a string compares as neither smaller nor larger than a number;
    past 10 rows a column holding a string is sorted as text: 10 before 9). The value is now null, with "–" as the
    cell's display value only: every numeric column sends numbers or nulls."""
    from hf_txray.tables import MISSING

    view = viewer.open_results(str(results[3]))
    raw = viewer.search_hellinger(view, results[2].name, "pos", 0.0, 1.0, min_count=1)
    assert raw["p_hellinger_pos"].isna().any() and raw["p_hellinger_pos"].notna().any()
    shown = app._table("t", ()).postprocess(raw)
    columns = {name: [row[shown.headers.index(name)] for row in shown.data] for name in raw.columns}
    for name, values in columns.items():
        if pd.api.types.is_numeric_dtype(raw[name]):
            assert all(v is None or isinstance(v, (int, float)) for v in values), (name, values)
    display = shown.metadata["display_value"]
    for name, values in columns.items():
        column = shown.headers.index(name)
        for value, cell, want in zip(values, (row[column] for row in display), raw[name]):
            assert (cell == MISSING) == pd.isna(want) and (value is None) == pd.isna(want), (name, value, cell, want)
    p = shown.headers.index("p_hellinger_pos")
    assert [row[p] for row in shown.data] == [None if math.isnan(x) else x for x in raw["p_hellinger_pos"]]


def test_every_table_has_real_headers_before_it_is_filled(app):
    """Helper 236: every table of a viewer opened without results, and the Search, Live text and attribution tables
    until first used, showed Gradio's placeholder table headed "1 2 3". Each starts with the headers its handler
    gives it."""
    import gradio

    demo = app.build_demo("")
    tables = [b for b in demo.blocks.values() if isinstance(b, gradio.Dataframe)]
    assert len(tables) >= 18
    for table in tables:
        headers = table.value["headers"]
        assert headers and headers != ["1", "2", "3"], (table.label, headers)
    by_id = {t.elem_id: t.value["headers"] for t in tables}
    assert by_id["search-results"][:2] == ["layer", "neuron"] and by_id["stages-table"][0] == "stage"
    assert by_id["live-table"] == list(app.LIVE_COLUMNS) and by_id["attribution-table"] == list(app.ATTRIBUTION_COLUMNS)


def test_deploy_space_pins_a_results_revision(app, hub, results, monkeypatch, tmp_path):  # noqa: F811
    """Helper 234: deploy_space refused a results repo at a revision ("owner/name@exp": 'Invalid Hub repo id'),
    though the viewer opens one. The README names the repo in ``datasets:`` (which the Hub links) and the repo at its
    revision as ``txray_source``, which the Space opens; a later deploy without a revision drops the pin, and a
    ``datasets:`` edited by hand wins over a pin of another repo."""
    from huggingface_hub import hf_hub_download

    a, b, report, folder = results
    repo_id = "test-user/pinned-results"
    hf_txray.hub.push_folder(hf_txray.save_to_disk(tmp_path / "main", [a], [], plots=False), repo_id)
    hf_txray.hub.push_folder(folder, repo_id, revision="exp")
    viewer.deploy_space("test-user/pinned-viewer", f"{repo_id}@exp")
    readme = Path(hf_hub_download("test-user/pinned-viewer", "README.md", repo_type="space",
                                  local_dir=tmp_path / "space"))
    header = _header(readme)
    assert header["datasets"] == [repo_id] and header["txray_source"] == f"{repo_id}@exp"
    monkeypatch.chdir(readme.parent)  # a Space runs app.py in its root
    monkeypatch.setenv("SPACE_ID", "test-user/pinned-viewer")
    monkeypatch.delenv("TXRAY_REPO", raising=False)
    assert app.default_source() == f"{repo_id}@exp"
    assert app.open_results(app.default_source())[1].startswith(f"Opened {repo_id}@exp: 2 profile(s), 1 report(s)")
    edited = readme.read_text().replace(f"- {repo_id}\n", "- test-user/other\n")
    (tmp_path / "edited.md").write_text(edited)
    assert app.space_source(tmp_path / "edited.md") == "test-user/other"
    viewer.deploy_space("test-user/pinned-viewer", repo_id)  # no revision: the pin goes
    readme = Path(hf_hub_download("test-user/pinned-viewer", "README.md", repo_type="space",
                                  local_dir=tmp_path / "again"))
    assert "txray_source" not in _header(readme) and app.space_source(readme) == repo_id
    staged = viewer.stage_space(tmp_path / "custom", f"{repo_id}@v1", app_dir=viewer.write_space_files(tmp_path / "w"))
    assert _header(staged / "README.md")["txray_source"] == f"{repo_id}@v1"
    for bad in (f"{repo_id}@", "@exp", f"{repo_id}@a b", "not a repo@exp"):
        with pytest.raises(ConfigurationError):
            viewer.deploy_space("test-user/pinned-viewer", bad)


def test_search_by_value_floors_the_credits_that_carry_the_feature_type(tmp_path):
    """Helper 273: on a sparse feature type (a user feature labelling digits) search_feature floored the neuron's
    credits of every position, so a neuron credited 50 times, 2 of them on a digit, ranked first on '1' with a
    probability of 1.0 from those 2: the same floor as the report's rankings now (credits with a value of the type)."""
    from test_compare import build_profile

    vocab = {"token": ["a", "b", "1", "2", "3"], "digits": ["1", "2", "3"]}
    tokens = {(0, 0): {"a": (40.0, 40), "b": (8.0, 8), "1": (2.0, 2)},  # 50 credits, 2 on a digit
              (0, 2): {"b": (20.0, 20), "1": (10.0, 10), "3": (10.0, 10)}}  # 40 credits, 20 on digits
    digits = {key: {v: mc for v, mc in values.items() if v.isdigit()} for key, values in tokens.items()}
    corpus = {ft: {v: 10 for v in vocab[ft]} for ft in vocab}
    profile = build_profile("A", {"token": tokens, "digits": digits}, vocab, corpus, feature_types=["token", "digits"])
    profile.save_pretrained(tmp_path / "a")
    view = viewer.open_results(str(tmp_path / "a"), reload=True)
    found = viewer.search_feature(view, "A", "digits", "1", n=50)  # the default floor: DEFAULT_MIN_COUNT (20)
    assert found["neuron"].tolist() == [2]
    assert sorted(viewer.search_feature(view, "A", "digits", "1", min_count=2, n=50)["neuron"]) == [0, 2]


def test_a_visitor_of_a_space_reads_no_private_repo_with_the_spaces_token(app, hub, results, monkeypatch):  # noqa: F811
    """Helper 283: a Space that opens a private results repo holds its owner's token as the `HF_TOKEN` secret (as the
    Space's README says to set), and the viewer read every source with it: a visitor typing the id of another of the
    owner's private repos (text box, ?repo=, the open API) saw its neurons. A visitor's source is read without a token
    now; the deployer's default source is still read with it."""
    a, b, report, folder = results
    hf_txray.hub.push_folder(folder, "test-user/shown", private=True)
    hf_txray.hub.push_folder(folder, "test-user/secret", private=True)
    monkeypatch.setenv("SPACE_ID", "test-user/viewer")
    monkeypatch.setenv("TXRAY_REPO", "test-user/shown")
    viewer.forget_opened()
    assert app.open_results("test-user/shown")[1].startswith("Opened test-user/shown: 2 profile(s)")
    for visitor in ("test-user/secret", "test-user/secret@main", f"test-user/shown{viewer.SOURCE_SEPARATOR}test-user/secret"):
        with pytest.raises(TXRayError, match="no such repo, or a private one") as err:
            app.open_results(visitor)
        assert "pretrained" not in str(err.value)
        with pytest.raises(TXRayError, match="no such repo, or a private one"):
            app.show_neuron(visitor, 0, 0, "pretrained", "finetuned")  # a handler given the source by the API
    monkeypatch.delenv("SPACE_ID")  # run locally, the user's token reads their private repos as before
    assert app.open_results("test-user/secret")[1].startswith("Opened test-user/secret: 2 profile(s)")
    viewer.forget_opened()


def test_a_visitor_of_a_space_reads_no_private_repo_from_the_spaces_hub_cache(app, hub, results, monkeypatch):  # noqa: F811
    """A visitor's source is read without a token, but snapshot_download answers a refused (private) repo with the
    copy in the Hub cache, without a word: a Space whose cache held a private repo its owner's token had read (an
    earlier default source, on persistent storage) showed it to any visitor who typed its id ('Opened
    test-user/old: 2 profile(s)'). The Hub's answer without a token is asked first; the cache never stands in."""
    a, b, report, folder = results
    hf_txray.hub.push_folder(folder, "test-user/old", private=True)
    hf_txray.hub.push_folder(folder, "test-user/shown", private=True)
    hf_txray.hub.push_folder(folder, "test-user/public")
    monkeypatch.setenv("SPACE_ID", "test-user/viewer")
    monkeypatch.setenv("TXRAY_REPO", "test-user/old")  # the first default: read with the token, into the cache
    viewer.forget_opened()
    assert app.open_results("test-user/old")[1].startswith("Opened test-user/old: 2 profile(s)")
    monkeypatch.setenv("TXRAY_REPO", "test-user/shown")  # deployed again with another default, the cache kept
    viewer.forget_opened()
    for visitor in ("test-user/old", "test-user/old@main"):
        with pytest.raises(TXRayError, match="no such repo, or a private one"):
            app.open_results(visitor)
    assert app.open_results("test-user/shown")[1].startswith("Opened test-user/shown: 2 profile(s)")
    assert app.open_results("test-user/public")[1].startswith("Opened test-user/public: 2 profile(s)")
    viewer.forget_opened()


def test_the_view_command_for_a_probe_folder_named_with_a_dash_runs_as_printed(probing_results, tmp_path,
                                                                              monkeypatch):
    """Helper 347: a probing result saved alone in a relative folder '-probe', opened alone, was refused with the
    command `hf-txray view RESULTS -probe`, which the CLI reads as an unknown option; it prints ./-probe."""
    import shlex

    from hf_txray.viewer import data

    _, probe, _, _ = probing_results
    monkeypatch.chdir(tmp_path)
    probe.save_pretrained("-probe")
    with pytest.raises(ConfigurationError, match="is a saved probing result") as caught:
        data.open_results("-probe")
    said = re.search(r"`(hf-txray view RESULTS [^`]*)`", str(caught.value)).group(1)
    assert shlex.split(said) == ["hf-txray", "view", "RESULTS", "./-probe"], said


def test_space_names_a_results_branch_as_the_repo_lists_it(tmp_path):
    """Helper 351: deploy_space (write_space_files, stage_space) with a results source ``owner/name@refs/heads/exp``
    wrote ``txray_source: owner/name@refs/heads/exp`` into the Space's README, and named it so in its commit message,
    where the repo's branch list and the viewer's box say 'exp' (:func:`hf_txray.hub_io.branch_name`)."""
    source = "test-user/results@refs/heads/exp"
    assert viewer.space.results_source(source) == ("test-user/results", "test-user/results@exp")
    written = viewer.write_space_files(tmp_path / "built-in", source)
    assert _header(written / "README.md")["txray_source"] == "test-user/results@exp"
    staged = viewer.stage_space(tmp_path / "custom", source, app_dir=viewer.write_space_files(tmp_path / "app"))
    assert _header(staged / "README.md")["txray_source"] == "test-user/results@exp"
    assert viewer.space.results_source("test-user/results@refs/tags/v1")[1] == "test-user/results@refs/tags/v1"


def test_space_of_a_results_source_naming_no_branch_after_refs_heads_is_refused(tmp_path):
    """results_source('owner/name@refs/heads/') gave ('owner/name', 'owner/name@') since e5f591a (the branch name of
    'refs/heads/' is ''): the Space's README was written with a source its app refuses. Refused before anything is
    written, naming the fix."""
    with pytest.raises(ConfigurationError, match="names no branch after 'refs/heads/'"):
        viewer.space.results_source("test-user/results@refs/heads/")
    with pytest.raises(ConfigurationError, match="names no branch"):
        viewer.write_space_files(tmp_path / "built-in", "test-user/results@refs/heads/")
    assert not (tmp_path / "built-in" / "README.md").exists()


def test_a_deployed_space_names_the_requirements_of_the_space_folder():
    """xxhash became a dependency (b320dc9) and spaces_app/requirements.txt lacked it (caught by
    test_space_folder_is_self_consistent); deploy_space writes its own copy (viewer.space.REQUIREMENTS_TXT), which
    nothing compared: a Space deployed from it would fail at `import hf_txray`. Both say the same."""
    from hf_txray.viewer.space import REQUIREMENTS_TXT

    assert REQUIREMENTS_TXT == (SPACE / "requirements.txt").read_text(encoding="utf-8")


def test_a_fractional_layer_filter_is_refused_not_read_as_the_layer_below():
    """helper 395: the viewer's layer filters (search by status or Hellinger, the transfer table, a probe's top
    neurons) read the layer with int(): 1.7 filtered layer 1 and True layer 1, without a word, where the Neuron tab
    (check_neuron) refuses a fraction. Both read it by one rule now (data.read_index)."""
    from hf_txray.viewer.data import chosen_layer, layer_filter

    frame = pd.DataFrame({"layer": [0, 1, 1], "neuron": [4, 5, 6]})
    for every in (None, "", viewer.ALL_LAYERS):
        assert chosen_layer(every) is None and len(layer_filter(frame, every)) == 3
    for one in (1, 1.0, "1", "1.0", np.int64(1)):
        assert layer_filter(frame, one)["neuron"].tolist() == [5, 6]
    for fraction in (1.7, "1.7", np.float64(0.5)):
        with pytest.raises(ConfigurationError, match=r"The layer number must hold whole numbers, got"):
            layer_filter(frame, fraction)
    for other in (True, "first"):
        with pytest.raises(ConfigurationError, match=r"layer"):
            layer_filter(frame, other)


def test_a_probes_top_neurons_message_names_the_layer_its_table_lists(app, probing_results):
    """Helper 407: show_probe read layer -1 as the last layer for the table (data.chosen_layer, resolve_layer) but
    wrote the layer as given beside it: "Top 48 neuron(s) of probe 'tags' globally in layer -1" (and "in layer 1.0")
    above layer 1's rows. The message names the layer listed."""
    folder = probing_results[0]
    name = probing_results[1].meta.name
    expected = app.show_probe(str(folder), name, viewer.ALL_LABELS, 1)
    assert " in layer 1 " in expected[0] and set(expected[2]["layer"]) == {1}
    for given in (-1, "-1", "1.0", 1.0):
        got = app.show_probe(str(folder), name, viewer.ALL_LABELS, given)
        assert got[0] == expected[0] and got[2].equals(expected[2]), (given, got[0])


def test_a_layer_or_neuron_given_as_several_numbers_is_refused_not_read_as_the_first():
    """The viewer read a layer or neuron through indices.whole_numbers and took its first entry: a layer [1, 0] (a
    list, an array, a tensor) filtered layer 1 and check_neuron((1,), [3, 4]) read neuron 3, without a word
    (silent). One index is read by the rule for one index (indices.whole_number)."""
    import torch

    from hf_txray.viewer.data import chosen_layer, read_index

    for several in ([1, 0], (1,), np.array([1, 0]), torch.tensor([1.0, 0.0])):
        with pytest.raises(ConfigurationError, match=r"The layer number must be one integer"):
            chosen_layer(several)
        with pytest.raises(ConfigurationError, match=r"The neuron number must be one integer"):
            read_index(several, "neuron")
    for one in (1, 1.0, "1.0", np.float64(1.0), torch.tensor(1.0), np.array(1)):
        assert read_index(one, "layer") == 1
    with pytest.raises(ConfigurationError, match=r"must be an integer, got True"):
        read_index(True, "layer")
