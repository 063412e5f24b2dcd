"""The plots home: shared helpers, pruning-sweep and ablation figures (the report/profile figures: test_hub.py)."""

from __future__ import annotations

import inspect
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import hf_txray
from hf_txray import plots
from hf_txray.errors import ConfigurationError
from hf_txray.evaluation import BASELINE
from hf_txray.probing import AblationCurve


def _sweep_table() -> pd.DataFrame:
    rows = [{"plan": BASELINE, "strategy": "none", "amount": 0, "seed": None, "fraction": 0.0, "accuracy": 0.9}]
    for amount, fraction in ((0.1, 0.1), (0.3, 0.3)):
        rows.append({"plan": f"lost-{amount}", "strategy": "lost", "amount": amount, "seed": None,
                     "fraction": fraction, "accuracy": 0.9 - fraction / 2})
        for seed in range(3):
            rows.append({"plan": f"random-{amount}-{seed}", "strategy": "random", "amount": amount, "seed": seed,
                         "fraction": fraction, "accuracy": 0.8 - fraction - 0.01 * seed})
    return pd.DataFrame(rows)


def test_plot_sweep_draws_strategy_means_std_and_the_unpruned_line():
    table = _sweep_table()
    fig = plots.plot_sweep(table, "accuracy")
    ax = fig.axes[0]
    labels = [c.get_label() for c in ax.containers]
    assert labels == ["lost", "random"]
    random = ax.containers[1]
    x, y = (np.asarray(v, dtype=float) for v in random.lines[0].get_data())
    pruned = table[table["strategy"] == "random"]
    np.testing.assert_allclose(x, [0.1, 0.3])
    np.testing.assert_allclose(y, pruned.groupby("fraction")["accuracy"].mean().to_numpy())
    assert random.lines[0].get_linestyle() == ":"  # random baselines dotted, TX-Ray strategies solid
    assert ax.containers[0].lines[0].get_linestyle() == "-"
    unpruned = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(unpruned) == 1 and unpruned[0].get_ydata()[0] == pytest.approx(0.9)
    only = plots.plot_sweep(table, "accuracy", strategies=["lost"]).axes[0]
    assert [c.get_label() for c in only.containers] == ["lost"]
    with pytest.raises(ConfigurationError, match="f1"):
        plots.plot_sweep(table, "f1")
    # plots stays below evaluation: its default names evaluate_pruning's unpruned row
    assert inspect.signature(plots.plot_sweep).parameters["baseline_plan"].default == BASELINE


def test_plot_sweep_draws_no_error_bar_for_an_amount_of_one_run():
    """Helper 306: an amount with a single run (a TX-Ray strategy, no seeds) has no standard deviation, but its std
    (NaN) was filled with 0 and drawn as a bar of length 0 with its caps, as if several runs had agreed exactly. Now
    no bar is drawn there; an amount of several runs keeps its ±1 std bar (random: 3 seeds, std 0.01)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plots.plot_sweep(_sweep_table(), "accuracy").axes[0]
    lost, random = ax.containers
    assert all(len(segment) == 0 for segment in lost.lines[2][0].get_segments())
    assert all(np.isnan(np.asarray(cap.get_ydata(), dtype=float)).all() for cap in lost.lines[1])
    bars = random.lines[2][0].get_segments()
    np.testing.assert_allclose([b[1, 1] - b[0, 1] for b in bars], [0.02, 0.02])  # 2 std of 0.79, 0.78, 0.77 (ddof 1)


def _curve() -> AblationCurve:
    rows = [("baseline", -1, 0, 0.95)]
    rows += [("ranked", -1, k, 0.95 - 0.1 * k) for k in (1, 2, 4)]
    rows += [("random", s, k, 0.95 - 0.01 * k * (s + 1)) for s in range(3) for k in (1, 2, 4)]
    table = pd.DataFrame(rows, columns=["strategy", "seed", "num_ablated", "value"])
    return AblationCurve(table, "upos-ablation", "accuracy", "zero")


def test_plot_ablation_draws_ranked_random_band_and_baseline(tmp_path):
    curve = _curve()
    fig = curve.plot()
    assert isinstance(fig, Figure)  # no pyplot: nothing is kept alive after the caller drops the figure
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["ranked"].get_ydata(), [0.85, 0.75, 0.55])
    random = curve.table[curve.table["strategy"] == "random"].groupby("num_ablated")["value"].mean()
    np.testing.assert_allclose(lines["random (mean)"].get_ydata(), random.to_numpy())
    assert lines["no ablation"].get_ydata()[0] == pytest.approx(0.95)
    assert len(ax.collections) == 1  # the min-max band of the random seeds
    assert ax.get_xscale() == "symlog" and ax.get_title() == "Ablation: upos-ablation"
    path = plots.save_figure(fig, tmp_path / "sub" / "ablation.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_common_helpers_grid_axes_and_names(tmp_path):
    fig, axes = plots.new_figure(2, 3, width=2.0, height=1.5)
    assert axes.shape == (2, 3) and tuple(fig.get_size_inches()) == (6.0, 3.0)
    fig2, ax = plots.new_axes(axes[1][2])
    assert fig2 is fig and ax is axes[1][2]
    assert plots.slug("pretrained->finetuned_v2") == "pretrained__finetuned_v2"  # nothing lost: no hash
    # helper 187: a lossy name ("n-code-stage-___" for any non-ASCII stage) is followed by a hash of the whole name,
    # so names differing only in the characters a file name drops no longer overwrite each other's plots
    lossy = ["pretrained->fine tuned/v2", "pretrained->fine-tuned-v2", "stage α", "stage β", "段階", "ステージ", ""]
    names = [plots.slug(n) for n in lossy]
    assert len(set(names)) == len(names) and names == [plots.slug(n) for n in lossy]  # unique, stable
    assert names[0].startswith("pretrained__fine-tuned-v2-") and re.fullmatch(r"stage-[0-9a-f]{8}", names[2])
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    written = plots.save_figures({"a->b": fig}, tmp_path, prefix="x_")
    assert [p.name for p in written] == ["x_a__b.png"] and written[0].stat().st_size > 0


def test_moved_names_keep_working():
    assert hf_txray.AblationCurve.plot is AblationCurve.plot
    for name in ("plot_hellinger_vs_length", "plot_length_shift", "plot_mass_share", "plot_neuron_mass",
                 "report_figures", "profile_figures", "save_figures", "slug", "default_feature_type", "STAGE_COLORS"):
        assert hasattr(plots, name), name


@pytest.mark.parametrize("name", ["plot_hellinger_vs_length", "plot_length_shift"])
def test_report_plots_document_every_argument(name):
    """The shared Args block is filled into each report plot's docstring, one entry per parameter."""
    function = getattr(plots, name)
    doc = inspect.getdoc(function)
    assert "{" not in doc.split("Returns:")[0]
    for parameter in inspect.signature(function).parameters:
        assert f"\n    {parameter} (`" in doc, parameter


def test_labels_in_scripts_dejavu_lacks_use_an_installed_fallback_or_say_so(tmp_path, monkeypatch, caplog):
    """Helper 187: CJK labels were drawn as boxes (DejaVu Sans only), with one matplotlib warning per glyph. Figures
    are drawn with DejaVu Sans then any installed font of FALLBACK_FONTS; characters no installed font has are still
    drawn (the label whole), and one warning names them with the fix. This machine has no CJK font: STIXGeneral
    (shipped with matplotlib) stands in for an installed fallback, with a character DejaVu Sans lacks."""
    import warnings

    from hf_txray.plots import common

    def draw(label):
        fig, ax = plots.new_axes()
        ax.plot([0, 1], [0, 1], label=label)
        ax.set_title(f"stage {label}")
        ax.legend()
        return fig

    cjk = "事前学習"
    assert plots.font_families()[0] == "DejaVu Sans"
    with warnings.catch_warnings(record=True) as said, caplog.at_level("WARNING", logger="hf_txray"):
        warnings.simplefilter("always")
        fig = draw(cjk)
        path = plots.save_figure(fig, tmp_path / "cjk.png")
    assert path.stat().st_size > 0 and not [w for w in said if "Glyph" in str(w.message)]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [cjk]  # the label is kept whole
    assert list(fig.axes[0].get_title(loc="center")) == list(f"stage {cjk}")
    missing = [r.getMessage() for r in caplog.records if "No installed font has" in r.getMessage()]
    assert len(missing) == 1 and "事 前 学 習" in missing[0] and "fonts-noto-cjk" in missing[0]

    monkeypatch.setattr(common, "FALLBACK_FONTS", ("No Such Font", "STIXGeneral"))
    common.font_families.cache_clear()
    try:
        assert plots.font_families() == ("DejaVu Sans", "STIXGeneral")
        assert plots.missing_characters("ℊ⌒ é " + cjk) == cjk
        caplog.clear()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            fig = draw("ℊ⌒")
            plots.use_fallback_fonts(fig).savefig(tmp_path / "stix.png")  # matplotlib finds each glyph in it
        assert not [w for w in said if "Glyph" in str(w.message)]
        assert all(t.get_fontfamily() == ["DejaVu Sans", "STIXGeneral"] for t in fig.axes[0].get_legend().get_texts())
    finally:
        common.font_families.cache_clear()


def test_save_figure_replaces_a_file_whole_never_rewriting_it_in_place(tmp_path):
    """A TXRayTrainer push uploads a staged copy of output_dir made of hard links while training goes on: a plot
    rewritten in place would change under the upload. save_figure writes a new file and renames it over the old
    one, so a hard link to the old file keeps the old picture whole (helper 219)."""
    first, _ = plots.new_axes()
    first.axes[0].plot([0, 1], [0, 1])
    path = plots.save_figure(first, tmp_path / "plots" / "shares.png")
    old = path.read_bytes()
    staged = tmp_path / "staged.png"
    staged.hardlink_to(path)
    second, _ = plots.new_axes()
    second.axes[0].bar(["a", "b", "c"], [3, 1, 2])
    plots.save_figure(second, path)
    assert staged.read_bytes() == old and path.read_bytes() != old
    assert [p.name for p in path.parent.iterdir()] == ["shares.png"]  # no temporary file left


def test_figures_saved_under_a_tilde_go_to_the_home_folder(tmp_path, monkeypatch):
    """`~` in a figure's path is the home folder, as in every output folder (helper 223: ./~/x was written)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    fig, _ = plots.new_axes()
    assert plots.save_figure(fig, "~/one.png") == tmp_path / "home" / "one.png"
    assert plots.save_figures({"two": fig}, "~/figs") == [tmp_path / "home" / "figs" / "two.png"]
    assert (tmp_path / "home" / "one.png").is_file() and not (tmp_path / "~").exists()


def _shared_report(length_a, length_b, layers=(0,)) -> "hf_txray.TransferReport":
    """A report of shared neurons with the given pos lengths (enough credits each), layers in turn."""
    from hf_txray.report import ReportMeta, TransferReport

    n = len(length_a)
    neurons = pd.DataFrame({"layer": np.resize(np.asarray(layers), n), "neuron": np.arange(n), "status": "shared",
                            "count_a": 50, "count_b": 50, "credits_a_pos": 50, "credits_b_pos": 50,
                            "mass_a": 1.0, "mass_b": 1.0, "hellinger_pos": 0.3,
                            "hellinger_length_pos": np.maximum(length_a, length_b),
                            "length_a_pos": length_a, "length_b_pos": length_b})
    meta = ReportMeta("a", "b", "m", "m", "c1", "c2", "mlp", list(layers), n, ["pos"])
    return TransferReport(meta, neurons, pd.DataFrame({"layer": list(layers)}), pd.DataFrame())


def test_length_shift_histogram_never_draws_unchanged_neurons_as_shorter():
    """Above PAIRED_DOTS_MAX neurons the shift is a histogram coloured by bin centre: the bin holding 0 had its centre
    below 0, so its 827 neurons of unchanged length were drawn green ("shorter in B"): 1382 green for 555 shorter."""
    from matplotlib.colors import to_rgb

    rng = np.random.default_rng(0)
    length_a = rng.integers(1, 18, 1500)
    length_b = np.where(rng.random(1500) < 0.5, length_a, rng.integers(1, 8, 1500))
    ax = plots.plot_length_shift(_shared_report(length_a, length_b)).axes[0]
    shift = np.log2(length_b / length_a)
    green = [p for p in ax.patches if np.allclose(p.get_facecolor()[:3], to_rgb("tab:green"))]
    assert sum(p.get_height() for p in green) == (shift < 0).sum()
    assert sum(p.get_height() for p in ax.patches) == len(shift)
    assert all(p.get_x() + p.get_width() <= 1e-12 for p in green)


def test_names_and_feature_values_with_dollar_signs_are_drawn_as_written(tmp_path):
    """Two dollar signs in a label made it mathtext: stages "v$1" and "v$2" drew the title "v1->v2" in italics, a tag
    "$x$" the tick "x"; stages "cost$\\x" and "cost$y" made save_figures raise a ParseFatalException."""
    import dataclasses

    from matplotlib import cbook
    from matplotlib.text import Text

    from hf_txray.report import TransferReport

    base = _shared_report([2, 3, 4], [3, 1, 4], layers=(0,))
    mass_share = pd.DataFrame({"feature_type": "pos", "feature": ["$x$", "a$b$c"], "mass_share_a": [0.6, 0.4],
                               "mass_share_b": [0.5, 0.5], "corpus_frequency_a": [0.7, 0.3],
                               "corpus_frequency_b": [0.7, 0.3]})
    for stages in (("v$1", "v$2"), ("cost$\\x", "cost$y")):
        report = TransferReport(dataclasses.replace(base.meta, stage_a=stages[0], stage_b=stages[1]), base.neurons,
                                base.layers, mass_share)
        figures = plots.report_figures(report)
        assert len(plots.save_figures(figures, tmp_path)) == 4
        drawn = [t.get_text() for figure in figures.values() for t in figure.findobj(Text) if "$" in t.get_text()
                 and "mathdefault" not in t.get_text()]  # log axes' own tick labels are mathtext
        assert drawn and not any(cbook.is_math_text(text) for text in drawn)
        shown = {text.replace(r"\$", "$").replace("\n", " ") for text in drawn}  # long titles are wrapped
        assert {"$x$", "a$b$c", f"A: {stages[0]}", f"B: {stages[1]}", f"{report.name}: length shift (>= 20 credits) "
                "(green: shorter in B)"} <= shown


def test_labels_with_a_leading_underscore_keep_their_legend(tmp_path, monkeypatch):
    """matplotlib leaves labels starting with "_" out of a legend: the neuron-mass figure of a profile of stage
    "_base" had no legend, and the trainer's mass-share timeline dropped a tag "_" from its legend."""
    import types

    import hf_txray.trainer.plots as trainer_plots

    stats = pd.DataFrame({"layer": [0, 0], "neuron": [0, 1], "mass": [2.0, 1.0]})
    profile = types.SimpleNamespace(stage="_base", meta=types.SimpleNamespace(layers=[0]), neuron_stats=lambda: stats)
    assert [t.get_text() for t in plots.plot_neuron_mass(profile).axes[0].get_legend().get_texts()] == ["_base"]
    figures = []
    monkeypatch.setattr(trainer_plots, "save_figure", lambda figure, path, **_: figures.append(figure) or path)
    latest = types.SimpleNamespace(feature_types=["pos"], layers=[0], meta=types.SimpleNamespace(feature_kinds={}),
                                   feature_frequency=lambda ft: pd.Series({"NOUN": 0.6, "_": 0.4}))
    timeline = pd.DataFrame({"step": [0, 5], "mass_share_pos/NOUN": [0.5, 0.7], "mass_share_pos/_": [0.5, 0.3]})
    trainer_plots.write_plots(timeline, latest, tmp_path)
    assert [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()] == ["NOUN", "_"]


def test_length_shift_histogram_draws_every_neuron_at_the_ends_of_its_range():
    """Helper 302: the histogram's first edge (a multiple of the bin width at or below the smallest shift) came out
    above it by rounding: shifts from log2(1/9) to log2(27) put the first edge at -3.169925001442312, above the
    shift -3.1699250014423126, and np.histogram left that neuron out: 1499 neurons drawn of 1500, no error."""
    rng = np.random.default_rng(1)
    length_a = np.concatenate([[9, 1], rng.integers(2, 9, 1498)])
    length_b = np.concatenate([[1, 27], rng.integers(2, 9, 1498)])
    ax = plots.plot_length_shift(_shared_report(length_a, length_b)).axes[0]
    assert sum(p.get_height() for p in ax.patches) == 1500


def test_a_feature_type_named_with_dollar_signs_is_drawn_as_written(tmp_path):
    """Helper 302: titles and axis labels name the feature type, a user feature's name (any string): "c$\\x$" was
    read as mathtext, so save_figures of the report's figures raised ParseFatalException; "t$a$" drew "ta"."""
    import dataclasses

    from matplotlib import cbook
    from matplotlib.text import Text

    from hf_txray.report import TransferReport

    base = _shared_report([2, 3, 4], [3, 1, 4], layers=(0,))
    for ft in ("c$\\x$", "t$a$"):
        neurons = base.neurons.rename(columns=lambda c: c[:-len("pos")] + ft if c.endswith("_pos") else c)
        mass_share = pd.DataFrame({"feature_type": ft, "feature": ["x", "y"], "mass_share_a": [0.6, 0.4],
                                   "mass_share_b": [0.5, 0.5], "corpus_frequency_a": [0.7, 0.3],
                                   "corpus_frequency_b": [0.7, 0.3]})
        report = TransferReport(dataclasses.replace(base.meta, feature_types=[ft]), neurons, base.layers, mass_share)
        figures = plots.report_figures(report, ft)
        assert len(plots.save_figures(figures, tmp_path)) == 4
        drawn = [t.get_text() for figure in figures.values() for t in figure.findobj(Text)
                 if ft.replace("$", r"\$") in t.get_text()]
        assert drawn and not any(cbook.is_math_text(text) for text in drawn)


def test_long_and_multi_line_feature_values_leave_the_mass_share_figure_its_room(tmp_path):
    """Helper 356: a 500-character token among the mass-share figure's tick labels collapsed its constrained layout
    ("axes sizes collapsed to zero"): the figure was saved with every tick label cut off at its lower edge. A token
    "line1\\nline2" drew a tick of two lines, and "\\r", a tab or ESC drew as boxes. Tick labels are now one line, as
    the tables show them, and cut after 30 characters with "…"."""
    import warnings

    from hf_txray.report import TransferReport

    base = _shared_report([2, 3, 4], [3, 1, 4], layers=(0,))
    values = ["L" * 500, "line1\nline2", "cr\rret", "tab\there", "\x1b[31mred", "$x$"]
    share = np.full(len(values), 1 / len(values))
    mass_share = pd.DataFrame({"feature_type": "pos", "feature": values, "mass_share_a": share,
                               "mass_share_b": share, "corpus_frequency_a": share, "corpus_frequency_b": share})
    report = TransferReport(base.meta, base.neurons, base.layers, mass_share)
    figure = plots.plot_mass_share(report, "pos")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied", "Glyph 13 missing from font(s)"
        plots.save_figure(figure, tmp_path / "share.png")
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == ["L" * 30 + "…", "line1 line2", "cr ret", "tab here", "\\x1b[31mred", r"\$x\$"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    inside = figure.bbox.padded(1)
    assert all(inside.contains(*corner) for t in figure.axes[0].get_xticklabels()
               for corner in t.get_window_extent(renderer).corners())  # every tick label whole in the figure
    assert figure.axes[0].get_position().height > 0.25  # and the plot keeps its room above them


def test_feature_values_alike_after_the_cut_or_on_one_line_draw_labels_told_apart():
    """Helper 365: the 30-character cut drew two URLs that differ after 30 characters as the same tick label
    ``https://example.com/a/very/lon…``, and one line drew ``"a\\tb"`` and ``"a b"`` both as ``a b``: two bars of the
    mass-share figure (lines of the trainer's legend) read as one value. Labels of different values now differ."""
    from hf_txray.report import TransferReport

    base = _shared_report([2, 3, 4], [3, 1, 4], layers=(0,))
    values = ["https://example.com/a/very/long/path/one", "https://example.com/a/very/long/path/two", "a\tb", "a b",
              "$" * 40 + "1", "$" * 40 + "2"]
    share = np.linspace(0.3, 0.05, len(values))
    mass_share = pd.DataFrame({"feature_type": "pos", "feature": values, "mass_share_a": share,
                               "mass_share_b": share, "corpus_frequency_a": share, "corpus_frequency_b": share})
    figure = plots.plot_mass_share(TransferReport(base.meta, base.neurons, base.layers, mass_share), "pos")
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert len(set(ticks)) == len(values)
    assert ticks[:4] == ["https://example…/long/path/one", "https://example…/long/path/two", "a b (1)", "a b (2)"]
    assert ticks[4].endswith("$1") and ticks[4].count(r"\$") == ticks[4].count("$")  # escaped, not math
    assert all(len(t.replace("\\", "")) <= 40 for t in ticks)  # still short enough to leave the plot its room
    from hf_txray.plots.common import value_labels

    assert value_labels(["short", "L" * 500]) == ["short", "L" * 30 + "…"]  # values told apart by the cut: as before


@pytest.mark.parametrize("many", [False, True])
def test_report_plot_titles_stay_inside_the_figure(many):
    """The demo's report plots cut their titles at both edges: "ained-ptb->zeroshot-bbc: preference change per neuron
    (>= 20 credits" and "...length shift of 1226 neurons (>= 20 credits) (green: sh", 90 to 110 characters on a 6 or
    7 inch figure. Long titles are wrapped to the axes' width."""
    from hf_txray.report import ReportMeta, TransferReport

    n = 1500 if many else 50
    rng = np.random.default_rng(0)
    report = _shared_report(rng.integers(1, 18, n), rng.integers(1, 18, n), layers=(0, 1))
    meta = ReportMeta("pretrained-ptb", "zeroshot-bbc", "m", "m", "c1", "c2", "mlp", [0, 1], n, ["pos"])
    report = TransferReport(meta, report.neurons, report.layers, pd.DataFrame())
    for figure in (plots.plot_hellinger_vs_length(report, "pos"), plots.plot_length_shift(report, "pos")):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
        box = figure.axes[0].title.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= figure.bbox.width, (figure.axes[0].get_title(), box)


def test_new_figures_show_as_an_image_in_a_notebook_without_pyplot():
    """Helper 428: hf_txray draws without pyplot, so IPython's inline backend (which registers its image formatter
    for Figure when pyplot is imported or %matplotlib inline runs) was never set up, and in a fresh Jupyter notebook
    ``plots.plot_mass_share(profile)`` as a cell's last line showed ``<Figure size 675x400 with 1 Axes>`` and no
    image (silent). A new figure gives IPython its PNG itself (``_repr_png_``, as IPython looks it up); the caller's
    own axes (``ax=``) keep the caller's figure."""
    from hf_txray.report import ReportMeta, TransferReport

    rng = np.random.default_rng(0)
    report = _shared_report(rng.integers(1, 18, 50), rng.integers(1, 18, 50), layers=(0, 1))
    meta = ReportMeta("a", "b", "m", "m", "c1", "c2", "mlp", [0, 1], 50, ["pos"])
    report = TransferReport(meta, report.neurons, report.layers, pd.DataFrame())
    figures = [plots.plot_sweep(_sweep_table(), "accuracy"), _curve().plot(), plots.plot_hellinger_vs_length(report),
               plots.plot_length_shift(report), plots.new_axes()[0], plots.new_figure(1, 2)[0]]
    for figure in figures:
        png = figure._repr_png_()
        assert isinstance(figure, Figure) and png[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert type(pickle.loads(pickle.dumps(figures[0]))) is type(figures[0])  # the class is found by its name
    # the caller's own figure is returned as it is (no image method added to it)
    own = Figure()
    assert plots.new_axes(own.add_subplot())[0] is own and not hasattr(own, "_repr_png_")


def test_new_figures_stay_matplotlib_figures_that_gradio_and_pickle_take():
    """Helper 434: the new figures were of a subclass defined in hf_txray.plots.common (for their notebook image),
    and ``gr.Plot`` takes a figure by its class's module (``"matplotlib" in value.__module__``): it read one as a
    Plotly figure and raised ``AttributeError: 'InlineFigure' object has no attribute 'to_json'``. They are
    matplotlib's own Figure again, with their PNG display; unpickled, they keep it."""
    gr = pytest.importorskip("gradio")
    figures = [plots.new_axes()[0], plots.new_figure(1, 2)[0], _curve().plot(), plots.plot_sweep(_sweep_table())]
    for figure in figures:
        assert type(figure) is Figure
        assert gr.Plot(format="png").postprocess(figure).type == "matplotlib"
        again = pickle.loads(pickle.dumps(figure))
        assert type(again) is Figure and again._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
