"""The viewer app: the Gradio Blocks over TX-Ray results (neuron cards and transfer reports), built by
:func:`build_demo`; :func:`launch_viewer` runs it locally (``hf-txray view``), ``spaces_app/app.py`` on a Space.

Opens a results dataset repo (text box, ``?repo=`` URL parameter, ``TXRAY_REPO`` variable, or on Spaces the first
entry of this Space's README ``datasets:``; the ``HF_TOKEN`` secret opens private repos) or a local folder written
by ``hf_txray.save_to_disk``. ``hf-txray view DIR_OR_REPO`` launches the same app locally.

UI only: every table, chart and search comes from the other modules of ``hf_txray.viewer``. Strings from a dataset or typed by a user are
shown as text (Textbox, Dataframe, HighlightedText, chart labels), never as HTML or markdown; the one inline SVG (the
Hellinger scatter) draws its text as paths and holds only links naming neurons by number.
"""

from __future__ import annotations

import functools
import html
import json
import math
import os
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import pandas as pd
import yaml
from gradio.components.plot import PlotData
from gradio.processing_utils import encode_plot_to_base64

from ..errors import ConfigurationError, TXRayError
from ..logging import get_logger
from ..options import resolve_layer
from ..redaction import redact
from ..report import DEFAULT_MIN_COUNT, STATUSES
from ..tables import NEURON_PROBE_COLUMNS, too_few_credits_text
from . import data, figures, live, probing, tables
from . import neuron as neuron_view  # `neuron` is the neuron number in the handlers

logger = get_logger("space")  # masks secrets in its records (RedactingFilter)

INTRO = ("Browse TX-Ray results: which inputs make each MLP neuron the most active unit, and how those preferences "
         "moved between training stages (Hellinger distance). Open a results dataset repo (or a local results folder), "
         "then pick a neuron, search neurons, or click any table row to open that neuron.")
FIGURES = ("hellinger_vs_length", "length_shift", "mass_share", "neuron_mass")
CLICKABLE_FIGURE = "hellinger_vs_length"  # drawn as SVG in a gr.HTML: a click on a dot opens that neuron
FIGURE_LABELS = {"hellinger_vs_length": "Hellinger distance vs Hellinger length (one dot per shared neuron; click a "
                                        "dot to open its neuron)",
                 "length_shift": "Length shift between the two stages", "mass_share": "Mass share vs corpus frequency",
                 "neuron_mass": "Per-neuron mass, sorted (log)"}


# ----- sources and errors ----------------------------------------------------------------------------------------
def space_datasets(readme: Path | None = None) -> list[str]:
    """The ``datasets:`` of this Space's README YAML header (`readme`: default ``README.md`` of the working directory,
    the Space's root where Spaces run ``app.py``)."""
    readme = Path("README.md") if readme is None else Path(readme)
    try:
        text = readme.read_text(encoding="utf-8")
        header = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else {}
        return [str(d) for d in (header or {}).get("datasets") or []]
    except (OSError, yaml.YAMLError, IndexError):
        return []


def space_source(readme: Path | None = None) -> str:
    """The results this Space opens by default, from its README header (`readme` as in :func:`space_datasets`): the
    ``txray_source`` that ``deploy_space(..., "owner/name@revision")`` writes (the repo at a revision, which
    ``datasets:`` cannot hold), when it names the first dataset (a ``datasets:`` edited by hand since wins), else the
    first dataset; "" when the header names none."""
    from ..card import SPACE_SOURCE_KEY

    datasets = space_datasets(readme)
    if not datasets:
        return ""
    readme = Path("README.md") if readme is None else Path(readme)
    try:
        header = yaml.safe_load(readme.read_text(encoding="utf-8").split("---", 2)[1]) or {}
        pinned = str(header.get(SPACE_SOURCE_KEY) or "").strip()
    except (OSError, yaml.YAMLError, IndexError, AttributeError):
        pinned = ""
    try:
        return pinned if pinned and data.split_revision(pinned)[0] == datasets[0] else datasets[0]
    except ConfigurationError:  # a pin edited by hand into no source: the repo itself
        return datasets[0]


def default_source() -> str:
    """``TXRAY_REPO``, else on Hugging Face Spaces (``SPACE_ID`` set) the README header's results
    (:func:`space_source`: the first dataset, at the revision a deploy pinned)."""
    if os.environ.get("TXRAY_REPO"):
        return os.environ["TXRAY_REPO"].strip()
    if os.environ.get("SPACE_ID"):
        return space_source()
    return ""


def check_visitor_source(source: str) -> None:
    """On a Hugging Face Space (``SPACE_ID`` set) the viewer is public: a source a visitor types (text box,
    ``?repo=``, the ``open`` API) must name Hub dataset repos only. Local paths would let anyone probe the Space's
    file system for folders hf_txray can read. The deployer's own default source (``TXRAY_REPO`` or the README's
    dataset, :func:`default_source`) may be a folder.

    Raises:
        ConfigurationError: a part of `source` that is not a valid Hub repo id, or that names a path on the Space.
    """
    if not os.environ.get("SPACE_ID") or source == default_source():
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    for part in data.split_sources(source):
        part, _revision = data.split_revision(part)  # owner/name@revision: a repo id at a revision
        try:
            validate_repo_id(part)
        except HFValidationError:
            raise ConfigurationError(f"{part!r} is not a Hub dataset repo id (owner/name): this Space opens Hub "
                                     "datasets only, not folders.") from None
        if Path(part).expanduser().exists():
            raise ConfigurationError(f"{part!r} names a path on this Space as well as a repo id: this Space opens "
                                     "Hub datasets only. Rename the repo, or run the viewer locally "
                                     "(hf-txray view).")


def source_token(source: str) -> bool | None:
    """The token a source is read with: on a Hugging Face Space (``SPACE_ID`` set), none (`False`: anonymously) for
    a source a visitor typed, which is any but the deployer's :func:`default_source`. The Space holds its owner's token
    as the ``HF_TOKEN`` secret to open a private default source, and that token also reads the owner's other private
    repos: read with it, a visitor's ``?repo=owner/other-private-repo`` showed that repo's neurons. Elsewhere None
    (``HF_TOKEN`` or the saved login, as ``hf_txray.load`` reads)."""
    return False if os.environ.get("SPACE_ID") and source != default_source() else None


def message_of(err: Exception) -> str:
    """A readable one-paragraph message (never a traceback). An error that is not hf_txray's own (its messages are
    masked already) is masked here, in the message and in the logged traceback: a visitor's typed URL may carry a
    password or a token (``https://user:hf_...@host``)."""
    if isinstance(err, TXRayError):
        return str(err)
    logger.error("Unexpected error in the viewer:\n%s", redact("".join(traceback.format_exception(err))))
    return redact(f"Unexpected error ({type(err).__name__}): {err}")


def warn(message: str) -> None:
    """A toast as well as the status box: toasts render HTML, so the text is escaped first."""
    gr.Warning(html.escape(message))


class NoResultsOpen(ConfigurationError):
    """Nothing opened yet: said once in the status box, not in a toast per tab."""


def guarded(empty: Callable[[], tuple], toast: bool = True) -> Callable:
    """Run a handler; on any error return `empty()` with the error message in first position (and a toast, unless
    `toast` is False: handlers that run after another on the same inputs leave the toast to the first one, so one
    mistake gives one toast)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any):
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # every failure becomes a message in the UI
                message = message_of(err)
                if toast and not isinstance(err, NoResultsOpen):
                    warn(message)
                return (message, *empty())
        return run
    return wrap


def empty(*columns: str) -> pd.DataFrame:
    """An empty table with real headers: what a table shows when there is nothing to show (``None`` would make Gradio
    draw a placeholder table headed "1 2 3")."""
    return pd.DataFrame(columns=list(columns))


# Headers of the tables when they are emptied (an error, or results without probing): the columns the viewer's
# functions give them.
STATS_COLUMNS = ("stage", "status", "mass", "count")
COMPARISON_COLUMNS = ("feature type", "hellinger", "hellinger length", "length A", "length B", "length shift")
EXAMPLE_COLUMNS = ("stage", "rank", "activation", "token", "left", "right")
DISTRIBUTION_COLUMNS = ("feature type", "feature", "stage", "probability", "mass", "count")
OUTPUT_COLUMNS = ("stage", "rank", "promoted", "logit +", "suppressed", "logit -")
FACT_COLUMNS = ("stage", "credits", "positions", "win rate", "top position", "share from top position")
PROBE_OVERVIEW_COLUMNS = ("probe", "model_id", "property", "site", "accuracy", "majority_baseline", "control_accuracy",
                          "selectivity", "minimal_set")
PROBE_LABEL_COLUMNS = ("probe", "label", "support", "accuracy")
PROBE_TOP_COLUMNS = ("layer", "neuron", "probe", "rank", "score")
ABLATION_COLUMNS = ("strategy", "num_ablated", "mean", "std", "count")
LAYER_COLUMNS = ("layer",)
LIVE_COLUMNS = ("position", "token", "layer", "neuron", "activation")
NEURON_LIST_COLUMNS = ("layer", "neuron")
STAGE_COLUMNS = ("stage", "model", "site", "corpus", "texts", "positions", "features", "credited neurons", "neurons")
REPORT_COLUMNS = ("report", "stage A", "stage B", *STATUSES)
ATTRIBUTION_COLUMNS = ("example", "token", "score", "read here")


def _view(source: str | None) -> data.ResultsView:
    if not source:
        raise NoResultsOpen("No results open: enter a Hub dataset repo id or a local results folder above and "
                            "press Open.")
    return data.open_results(source, token=source_token(source))


def _chart(spec: dict) -> PlotData:
    return PlotData(type="altair", plot=json.dumps(spec))


FIGURES_KEPT = 16  # encoded figures of the last few (results, report, feature type)
# (results view, figures) by (source, report, feature type); its lock held while drawing: one drawing at a time, so
# concurrent first page loads draw the figures once
_figures = data.RecentlyUsed(FIGURES_KEPT)


def _overview_plots(source: str, report: str | None, feature_type: str | None) -> tuple[PlotData | None, ...]:
    """The four figures of the results `source` names now, encoded once per (results, report, feature type): page
    loads reuse them while the results in memory are the same reading (a source read again, after a new push or
    once it left the few kept in memory, is drawn again: the figures are of the numbers the tables show)."""
    view = _view(source)
    key = (source, report, feature_type)
    with _figures.lock:
        cached = _figures.get(key)
        if cached is None or cached[0] is not view:
            cached = _figures.put(key, (view, _encoded_figures(view, report, feature_type)))
        return cached[1]


def _encoded_figures(view: data.ResultsView, report: str | None,
                     feature_type: str | None) -> tuple[PlotData | None, ...]:
    """The four figures, the Hellinger scatter as clickable SVG and the others as PNG."""
    drawn = figures.overview_figures(view, report or None, feature_type or None)
    encoded = []
    for name in FIGURES:
        figure = drawn.get(name)
        try:
            if name == CLICKABLE_FIGURE and figure is not None:  # an SVG whose dots open their neuron
                encoded.append(_clickable_svg(figure, view, report, feature_type))
                continue
            encoded.append(None if figure is None else PlotData(type="matplotlib",
                                                                plot=encode_plot_to_base64(figure, "png")))
        except ValueError as err:  # e.g. matplotlib refusing a label
            logger.info("Figure %s not rendered: %s", name, err)
            encoded.append(None)
    return tuple(encoded)


def _clickable_svg(figure: Any, view: data.ResultsView, report: str | None, feature_type: str | None) -> str:
    """The Hellinger scatter as inline SVG, each dot linked to its neuron (unlinked, with a log line, if the dots
    cannot be matched to the report's neurons)."""
    try:
        figures.link_hellinger_dots(figure, view, report or None, feature_type or None)
    except ConfigurationError as err:
        logger.info("Hellinger dots not linked: %s", err)
    return figures.figure_svg(figure)


# A click on a dot of the Hellinger scatter (an SVG <a> per dot, figures.DOT_LINK) triggers the component's click event
# with the dot's layer and neuron, instead of following the link.
DOT_CLICK_JS = """
element.addEventListener('click', (event) => {
  const link = event.target.closest('a');
  if (!link) return;
  const href = link.getAttribute('href') || link.getAttribute('xlink:href') || '';
  const found = href.match(/^#neuron-(\\d+)-(\\d+)$/);
  if (!found) return;
  event.preventDefault();
  trigger('click', {layer: Number(found[1]), neuron: Number(found[2])});
});
"""
DOT_CSS = "svg { display: block; margin: 0 auto; max-width: 100%; height: auto; } a { cursor: pointer; }"
# Wide tables (the reports table, the per-layer summary) scroll sideways inside their frame with a styled scrollbar,
# drawn even where the system's scrollbars are overlays (hidden until scrolled: the last columns looked cut off), and
# their headers break between words only (Gradio sizes columns from the body, so "layer" broke into "la/ye/r").
TABLE_CSS = """
.txray-table .virtual-table-viewport { overflow-x: auto; scrollbar-width: auto; scrollbar-color: auto; }
.txray-table .virtual-table-viewport::-webkit-scrollbar { height: 12px; width: 12px; }
.txray-table .virtual-table-viewport::-webkit-scrollbar-thumb { background: #9ca3af; border-radius: 6px; }
.txray-table .virtual-table-viewport::-webkit-scrollbar-track { background: #f3f4f6; }
.txray-table th, .txray-table th * { word-break: normal !important; overflow-wrap: normal !important; }
"""


# ----- handlers (plain functions: the first argument is the results source, the session's gr.State) --------------
def open_results(source: str, reload: bool = False) -> tuple:
    """Open `source` (`reload`: read it again, as the Open button does, so that results saved or pushed again since it
    was opened show their new numbers); returns the status message, the stages and reports tables, and every
    dropdown's choices."""
    source = data.strip_source(source)
    check_visitor_source(source)
    if reload and source:
        # the figures follow the new reading (_overview_plots)
        data.open_results(source, reload=True, token=source_token(source))
    view = _view(source)
    stages, reports, fts = view.stages, view.report_names, view.feature_types
    profiled = [s for s in stages if s in view.profiles] or stages
    first_report = view.reports[reports[0]] if reports else None
    a, b = ((first_report.meta.stage_a, first_report.meta.stage_b) if first_report
            else (profiled[0], profiled[min(1, len(profiled) - 1)]))
    tag = _default_tag(view)
    layer, neuron = default_neuron(view)
    layers_all = [data.ALL_LAYERS, *view.layers]
    message = (f"Opened {data.source_text(source)}: {len(view.profiles)} profile(s), {len(reports)} report(s), "
               f"{len(view.layers)} layers x {view.num_neurons} neurons, features {', '.join(fts)}.")
    return (
        source, message, tables.stages_table(view), tables.reports_table(view),
        gr.Dropdown(choices=reports, value=reports[0] if reports else None),  # overview report
        gr.Dropdown(choices=fts, value=tag),  # overview feature type
        gr.Dropdown(choices=view.layers, value=layer),
        gr.Number(value=neuron, label=f"Neuron (0 to {view.num_neurons - 1})"),
        gr.Dropdown(choices=stages, value=a), gr.Dropdown(choices=stages, value=b),
        gr.Dropdown(choices=profiled, value=profiled[0]),  # search stage
        gr.Dropdown(choices=fts, value=fts[0]),  # search feature type
        gr.Dropdown(choices=reports, value=reports[0] if reports else None),  # search report
        gr.Dropdown(choices=fts, value=tag),  # hellinger feature type
        gr.Dropdown(choices=layers_all, value=data.ALL_LAYERS),  # search layer filter
        gr.Dropdown(choices=reports, value=reports[0] if reports else None),  # transfer report
        gr.Dropdown(choices=fts, value=tag),  # transfer feature type
        gr.Dropdown(choices=layers_all, value=data.ALL_LAYERS),  # transfer layer filter
    )


def _default_tag(view: data.ResultsView) -> str | None:
    from hf_txray.plots import default_feature_type

    return (default_feature_type(view.feature_types, kinds=view.feature_kinds, orders=view.feature_orders)
            if view.feature_types else None)


def default_neuron(view: data.ResultsView) -> tuple[int, int]:
    """The neuron shown first: the most changed of the first report, else the most credited of the first stage."""
    try:
        if view.reports:
            for min_count in (20, 1):  # a neuron seen often enough to be interesting, if there is one
                top = tables.transfer_table(view, view.report_names[0], _default_tag(view), "most", 1,
                                            min_count)
                if len(top):
                    return int(top["layer"].iloc[0]), int(top["neuron"].iloc[0])
        if view.profiles:
            stats = view.stats(next(iter(view.profiles)))
            best = stats.sort_values(["count", "layer", "neuron"], ascending=[False, True, True]).iloc[0]
            return int(best["layer"]), int(best["neuron"])
    except TXRayError:
        pass
    return view.layers[0], 0


def show_overview(source: str, report: str | None, feature_type: str | None) -> tuple:
    """Per-layer summary table and the paper's four figures."""
    view = _view(source)
    plots = _overview_plots(view.source, report or None, feature_type or None)
    missing = [FIGURE_LABELS[n] for n, p in zip(FIGURES, plots) if p is None]
    notes = figures.figure_notes(view, report or None, feature_type or None,
                                 [n for n, p in zip(FIGURES, plots) if p is not None])
    message = notes + (f"\nNot drawn for these results: {'; '.join(missing)}." if missing else "")
    return (message, tables.layer_summary(view, report or None), *plots)


def show_neuron(source: str, layer: Any, neuron: Any, stage_a: str, stage_b: str) -> tuple:
    """Everything about one neuron: title line, stats per stage, Hellinger per feature type, bar charts,
    highlighted top examples of stage A and B, the examples and the distributions as tables."""
    view = _view(source)
    layer, neuron = view.check_neuron(layer, neuron)
    if not stage_a or not stage_b:
        raise ConfigurationError("Pick stage A and stage B.")
    shown = view.stages_with_layer(layer, [stage_a, stage_b])  # raised when neither stage was profiled on the layer
    missing = [m for m in (view.layer_missing(s, layer) for s in dict.fromkeys([stage_a, stage_b])) if m]
    status = neuron_view.neuron_status(view, layer, neuron, stage_a, stage_b)
    comparison = neuron_view.neuron_comparison(view, layer, neuron, stage_a, stage_b)
    h = ", ".join(f"{ft} {v:.3f}" for ft, v in zip(comparison["feature type"], comparison["hellinger"]) if v == v)
    refused = view.comparison_refused(stage_a, stage_b)
    pruned = neuron_view.pruned_numbering(view, layer, neuron, [stage_a, stage_b])  # mode="remove" renumbers
    name = f"Layer {layer}, neuron {neuron}" + (f" (pruned model: {pruned})" if pruned else "")
    # a stage known only from a report that does not cover the pair: no Hellinger distance, its report's credits
    # (the tab refused the pair on every layer: "No report compares 'a' with 'c'")
    unprofiled = [] if view.pair_report(stage_a, stage_b, layer) is not None else [
        m for m in (view.profile_missing(s, layer, [stage_a, stage_b]) for s in dict.fromkeys([stage_a, stage_b]))
        if m]
    # a stored report of the pair the other way round (the title said no report compared them)
    reverse = view.reversed_report(stage_a, stage_b) if unprofiled else None
    order = (f" in this order (report {reverse.name!r} compares them the other way: swap stage A and stage B for "
             "its status and Hellinger distance)" if reverse is not None else "")
    # a stage profiled on other layers: what the other stage holds, and why this one shows nothing (compare refuses
    # profiles of different layers, so its refusal says no more)
    title = (f"{name}: shown at stage {shown[0]!r} only, as {'; '.join(missing)}." if missing else
             (f"{name}: no report compares stage A ({stage_a}) with stage B ({stage_b}){order}, and "
              f"{'; '.join(unprofiled)}: "
              + ("its credits, mass and lengths are that report's" if len(unprofiled) == 1 else
                 "their credits, masses and lengths are those reports'")
              + ", with no distributions, examples or Hellinger distance.") if unprofiled else
             f"{name}: stage A ({stage_a}) and stage B ({stage_b}) cannot be compared, each is shown on its own. "
             f"{refused}" if refused else
             f"{name}: {status} from stage A ({stage_a}) to stage B ({stage_b}). "
             f"Hellinger distance: {h or 'none (the neuron is not credited in both stages)'}.")
    distributions = neuron_view.neuron_distributions(view, layer, neuron, [stage_a, stage_b])
    return (
        title, neuron_view.neuron_stats(view, layer, neuron, [stage_a, stage_b]), comparison,
        _chart(figures.distribution_chart(view, layer, neuron, stage_a, stage_b, data=distributions)),
        neuron_view.highlighted_examples(view, stage_a, layer, neuron),
        neuron_view.highlighted_examples(view, stage_b, layer, neuron),
        neuron_view.examples_table(view, layer, neuron, [stage_a, stage_b]),
        distributions,
    )


def _at_least_one(min_count: Any) -> int:
    """A minimum credit count from the UI (empty: 1; below 1, as a typed -5: 1, which every credited neuron meets; a
    fraction rounded up, as "at least 2.5 credits" means 3: truncated, it widened the filter to 2)."""
    try:
        floor = float(min_count or 1)
    except (TypeError, ValueError):
        floor = float("nan")
    if math.isnan(floor):
        raise ConfigurationError(f"The minimum count must be a number, got {min_count!r}.")
    return math.ceil(min(max(floor, 1.0), 2.0 ** 62))  # -inf is below 1 too (ceil of it raised OverflowError)


def _one_layer(layer: Any) -> int | None:
    """The layer a table is filtered to (None: all layers), for the counts its message gives beside it (the neurons
    left out of a one-layer ranking are that layer's: the Transfer tab said 60 of all layers beside layer 1's 4 rows,
    where 35 were left out). Read as the table's filter reads it (:func:`data.chosen_layer`): int() failed on the
    text '1.0' that the table had taken."""
    return data.chosen_layer(layer)


def search_feature(source: str, stage: str, feature_type: str, value: str, by: str, min_count: Any,
                   n: Any, layer: Any = None) -> tuple:
    """Which neurons prefer a token, word or tag: ranked by probability or by mass."""
    view = _view(source)
    table = tables.search_feature(view, stage, feature_type, value, by or "probability", _at_least_one(min_count),
                                  int(n or 50), layer)
    return (tables.matches_text(table, f" of stage {stage} credited on the {feature_type} {value!r}") + f", by {by} "
            f"(neurons credited >= {_at_least_one(min_count)} times with a {feature_type} value at this stage).",
            table, [stage, None])


def search_status(source: str, report: str, status: str, layer: Any = None) -> tuple:
    """Neurons of a report with a status (lost, gained, shared, dead)."""
    view = _view(source)
    table = tables.search_status(view, report, status, layer=layer)
    meta = view.report(report).meta
    return (tables.matches_text(table, f" {status} in {report}") + " (by mass in A + B).", table,
            [meta.stage_a, meta.stage_b])


def search_hellinger(source: str, report: str, feature_type: str, low: Any, high: Any, layer: Any = None) -> tuple:
    """Shared neurons whose Hellinger distance lies in a range."""
    view = _view(source)
    table = tables.search_hellinger(view, report, feature_type, low, high, layer=layer)
    meta = view.report(report).meta
    thin = view.report(report).too_few_credits(feature_type, DEFAULT_MIN_COUNT, _one_layer(layer))
    return (tables.matches_text(table, f" of {report} with {feature_type} Hellinger distance in [{float(low):.2f}, "
                                       f"{float(high):.2f}], credited >= {DEFAULT_MIN_COUNT} times with a {feature_type} value in both stages")
            + f" ({too_few_credits_text(thin, 'listed')}).", table,
            [meta.stage_a, meta.stage_b])


def show_transfer(source: str, report: str, feature_type: str, which: str, min_count: Any, n: Any,
                  layer: Any = None) -> tuple:
    """The most or least changed shared neurons of a report."""
    view = _view(source)
    table = tables.transfer_table(view, report, feature_type, which or "most", int(n or 20), _at_least_one(min_count),
                                  layer)
    thin = view.report(report).too_few_credits(feature_type, _at_least_one(min_count), _one_layer(layer))
    return (f"The {len(table)} {which} changed shared neurons of {report} ({feature_type}), credited >= "
            f"{_at_least_one(min_count)} times with a {feature_type} value in both stages ({too_few_credits_text(thin)}).", table)


# ----- probing (issue 7): the probe_rankings and ablation configs, when the results have them ----------------------
def show_probing(source: str) -> tuple:
    """The Probing tab on opening: a message (or how to add probing results), the probe overview, and the probe,
    label, ablation and layer choices."""
    view = _view(source)
    if not probing.has_probing(view):
        return (probing.NO_PROBING, empty(*PROBE_OVERVIEW_COLUMNS), gr.Dropdown(choices=[], value=None),
                gr.Dropdown(choices=[], value=None),
                gr.Dropdown(choices=[], value=None), gr.Dropdown(choices=[data.ALL_LAYERS], value=data.ALL_LAYERS))
    probes, curves = probing.probe_names(view), probing.ablation_names(view)
    overview = probing.probing_overview(view) if probes else empty(*PROBE_OVERVIEW_COLUMNS)
    message = (f"{len(probes)} probe(s): {', '.join(probes) or 'none'}; {len(curves)} ablation curve(s): "
               f"{', '.join(curves) or 'none'}.")
    first = probes[0] if probes else None
    return (message, overview, gr.Dropdown(choices=probes, value=first),
            gr.Dropdown(choices=[probing.ALL_LABELS, *probing.probe_label_names(view, first)],
                        value=probing.ALL_LABELS),
            gr.Dropdown(choices=curves, value=curves[0] if curves else None),
            gr.Dropdown(choices=probing.probe_layer_choices(view, first), value=data.ALL_LAYERS))


def probe_layers(source: str, probe: str | None, layer: Any = None) -> Any:
    """The Probing tab's layer choices for `probe` (:func:`~hf_txray.viewer.probing.probe_layer_choices`: the layers
    it ranked, not every profiled one), run when the probe changes: the chosen layer is kept where the probe ranked
    it, else every layer is chosen (the probe's top neurons are listed then). A layer typed or sent that the probe
    lacks is still refused by :func:`show_probe`, with the probe's layers."""
    view = _view(source)
    choices = probing.probe_layer_choices(view, probe)
    try:
        chosen = data.chosen_layer(layer, choices[1:])
    except ConfigurationError:
        chosen = None
    return gr.Dropdown(choices=choices, value=data.ALL_LAYERS if chosen is None else chosen)


def show_probe(source: str, probe: str | None, label: str | None, layer: Any = None) -> tuple:
    """One probe: its per-class accuracy, its top neurons (globally or for a label, optionally of one layer) and
    the label choices of that probe."""
    view = _view(source)
    if not probing.has_probing(view) or not probing.probe_names(view):  # said in the tab, not in a toast
        message = probing.NO_PROBING if not probing.has_probing(view) else "These results have no probes, only " \
            "ablation curves."
        return message, empty(*PROBE_LABEL_COLUMNS), empty(*PROBE_TOP_COLUMNS), gr.Dropdown(choices=[], value=None)
    if not probe:
        raise ConfigurationError("Pick a probe.")
    labels = probing.probe_label_names(view, probe)
    label = label if label in labels else probing.ALL_LABELS
    top = probing.probing_top_neurons(view, probe, label, layer)
    chosen = data.chosen_layer(layer)  # as the table read it: "in layer -1" and "in layer 1.0" beside layer 1's rows
    where = "" if chosen is None else f" in layer {int(top['layer'].iloc[0]) if len(top) else chosen}"
    which = "globally" if label == probing.ALL_LABELS else f"for the label {label!r}"
    return (f"Top {len(top)} neuron(s) of probe {probe!r} {which}{where} (click a row to open the neuron).",
            probing.probing_labels(view, probe), top,
            gr.Dropdown(choices=[probing.ALL_LABELS, *labels], value=label))


def show_ablation(source: str, name: str | None) -> tuple:
    """An ablation curve: its figure (PNG) and its summary (mean, std over seeds per strategy and k)."""
    import matplotlib.pyplot as plt

    view = _view(source)
    if not probing.has_probing(view):
        return probing.NO_PROBING, None, empty(*ABLATION_COLUMNS)
    if not probing.ablation_names(view):
        return "These results have no ablation curves.", None, empty(*ABLATION_COLUMNS)
    figure, summary = probing.probing_ablation(view, name or None)
    try:
        plot = PlotData(type="matplotlib", plot=encode_plot_to_base64(figure, "png"))
    finally:
        plt.close(figure)
    return f"Ablation curve {name or probing.ablation_names(view)[0]!r}.", plot, summary


def show_neuron_probes(source: str, layer: Any, neuron: Any) -> tuple:
    """The Neuron tab's probe rows: the neuron's rank and weight in each probe."""
    view = _view(source)
    layer, neuron = view.check_neuron(layer, neuron)
    rows = probing.neuron_probes(view, layer, neuron)
    if not probing.has_probing(view):
        return probing.NO_PROBING, rows
    if not len(rows):  # "in 0 probe(s)" said neither why nor which neurons the probes hold
        from ..probing.results import probed_layers

        layers = probed_layers(view.probing)
        return (f"No probe ranked layer {layer}, neuron {neuron}: " +
                (f"the probes ranked the neurons of layers {layers}; pick a neuron there (the Probing tab lists "
                 "each probe's top neurons)." if layers else "these results hold ablation curves only."), rows)
    return (f"Layer {layer}, neuron {neuron} in {len(rows)} probe(s) (rank 0 = the most important neuron).", rows)


def show_neuron_page(source: str, layer: Any, neuron: Any, stage_a: str, stage_b: str) -> tuple:
    """The neuron page's reading-order sections beyond the cards: the plain-words summary, output effects, and the
    activation distribution (histogram chart and win rate / first-position share per stage)."""
    view = _view(source)
    layer, neuron = view.check_neuron(layer, neuron)
    stages = [stage_a, stage_b]
    outputs = neuron_view.neuron_output_effects(view, layer, neuron, stages)
    message = (f"Tokens layer {layer}, neuron {neuron} pushes up (promoted) and down (suppressed): its "
               "down-projection column through the final norm's scale and the unembedding (Geva et al., 2022)."
               if len(outputs) else neuron_view.NO_OUTPUT_EFFECTS)
    missing = [m for m in (view.layer_missing(s, layer) for s in dict.fromkeys(stages)) if m]
    # a stage profiled on other layers has no effects of this layer, whatever it stored; one known only from a
    # report has none (its line was left out without a word)
    missing += [f"{m}: no output effects or activations" for s in dict.fromkeys(stages)
                if not view.layer_missing(s, layer) for m in [view.profile_missing(s, layer, stages)] if m]
    if missing:
        message += "".join(f" {m[0].upper()}{m[1:]}." for m in missing)
    histogram = neuron_view.histogram_data(view, layer, neuron, stages)
    return (neuron_view.neuron_summary(view, layer, neuron, stage_a, stage_b), message, outputs,
            _chart(figures.histogram_chart(view, layer, neuron, stage_a, stage_b, data=histogram)),
            neuron_view.activation_facts(view, layer, neuron, stages))


def live_text(source: str, text: str, layer: Any, trace: Any, model: "AttributionModel") -> tuple:
    """The Live text tab: each token's winning neuron at `layer` (same engine and credit rule as analyze), and the
    activation of the neuron numbered `trace` (optional) over the text."""
    view = _view(source)
    layers = live_tab_layers(view)
    # read as the Neuron tab reads an index (int() ran layer 1.5, or True, as layer 1 and 0.99 as layer 0), among the
    # layers this tab runs: those of all stages (check_neuron) ran -1 as a layer only a later stage profiled, refused
    index = data.read_index(layer, "layer")
    if index is None and layer not in (None, ""):
        raise ConfigurationError(f"Pick a layer of {layers} (got {layer!r}).")
    stage = next(iter(view.profiles), None)
    layer = layers[-1] if index is None else resolve_layer(  # default: the last profiled layer
        layers, index, "is not a layer the Live tab runs" + (f" (those of stage {stage!r})" if stage else ""))
    trace = None if trace in (None, "") else view.check_neuron(layer, trace)[1]
    profiler = model.live(view)
    with _MODEL_RUNS:  # not while an attribution runs the model: Captum's hooks read every thread's forward passes
        live = profiler.run(text, layer, trace)
    table = data.rounded(live.table.rename(columns={"traced": f"neuron {trace}"}))
    credited = int((live.table["neuron"] >= 0).sum())
    cut = (f" The text was cut to the model's {model.live(view).profiler.max_length} tokens." if live.truncated
           else "")
    message = (f"{len(table)} token(s), {credited} credited at layer {layer} (click a token or a row to open its "
               f"winning neuron).{cut}")
    return message, live.spans, live.trace_spans, table, [live.table[["layer", "neuron"]].values.tolist(),
                                                          live.span_rows]


def live_tab_layers(view: data.ResultsView) -> list[int]:
    """The layers of the Live text tab: those of the stage whose settings it runs (the first profiled one)."""
    return list(next(iter(view.profiles.values())).layers) if view.profiles else view.layers


class AttributionModel:
    """The model given to build_demo, loaded on the first attribution (or live-text) request, then kept."""

    def __init__(self, model: Any = None):
        self.spec, self._loaded, self._lock = model, None, threading.Lock()
        self._live: dict[tuple[str, str], tuple[Any, live.LiveProfiler]] = {}

    def live(self, view: data.ResultsView) -> live.LiveProfiler:
        """The engine set up as the first profiled stage of `view` was (site, layers, top_k, max length): set up
        again when that stage's profile was read again (saved or pushed anew, perhaps with other settings)."""
        if not view.profiles:
            raise ConfigurationError("These results hold no profile: the live tab needs a stage's settings.")
        stage, profile = next(iter(view.profiles.items()))
        key = (view.source, stage)
        net, tokenizer = self.get()
        with self._lock:
            cached = self._live.get(key)
            if cached is None or cached[0] is not profile:
                self._live[key] = cached = (profile, live.LiveProfiler(net, tokenizer, profile.meta))
            return cached[1]

    @property
    def available(self) -> bool:
        return self.spec is not None

    def get(self) -> tuple[Any, Any]:
        if self.spec is None:
            raise ConfigurationError(probing.NO_MODEL)
        with self._lock:
            if self._loaded is None:
                self._loaded = probing.load_attribution_model(self.spec)
            return self._loaded


def explain_neuron(source: str, layer: Any, neuron: Any, stage: str, k: Any, model: AttributionModel,
                   n_steps: int = 50) -> tuple:
    """Integrated-gradients scores per token of the neuron's top examples of `stage` (computed on demand)."""
    view = _view(source)
    layer, neuron = view.check_neuron(layer, neuron)
    if not stage:
        raise ConfigurationError("Pick stage A: its top examples are explained.")
    net, tokenizer = model.get()
    with _MODEL_RUNS:  # one attribution at a time (it runs the model n_steps times per example), no live text
        attributions = probing.explain_top_examples(view, net, tokenizer, stage, layer, neuron, k=int(k or 3),
                                                   n_steps=n_steps)
    return (f"Integrated gradients of layer {layer}, neuron {neuron} on its top {len(attributions)} example(s) of "
            f"stage {stage}: each token coloured by its score / the largest |score| of its example (red = drives "
            "the neuron up, blue = down).", probing.attribution_spans(attributions),
            probing.attribution_table(attributions))


# Held while a handler runs the model: attributions and the live text. Captum's hooks (an attribution's) are the
# module's, for every thread, so a live-text forward pass in another Gradio worker thread was read as the
# attribution's own (helper 387: refused as a model that "changes the number of positions", or taken as its
# activations when the token counts agree). Their events share one Gradio queue too (concurrency_id="model"): each
# event's default concurrency_limit of 1 holds one request of that event at a time, not one of each.
_MODEL_RUNS = threading.Lock()


# ----- building the UI -------------------------------------------------------------------------------------------
def _table(label: str, columns: tuple[str, ...], **kwargs: Any) -> gr.Dataframe:
    """A read-only table of the viewer, headed by `columns` until a handler fills it (Gradio's placeholder table,
    headed "1 2 3", stood in every table of a viewer opened without results and in the Search, Live text and
    attribution tables until first used), showing missing values as "–" (:func:`~hf_txray.viewer.data.missing_shown`):
    every table the handlers fill passes through its ``postprocess``, so none of them draws NaN as a blank cell, and
    the "–" is only drawn (the cell's value stays null), so a numeric column still sorts as numbers in the browser."""
    table = gr.Dataframe(empty(*columns), label=label, interactive=False, wrap=True, max_height=420,
                         elem_classes="txray-table", **kwargs)
    draw = table.postprocess
    table.postprocess = lambda value: draw(data.missing_shown(value))  # type: ignore[method-assign]
    return table


def _message(label: str = "Status", **kwargs: Any) -> gr.Textbox:
    kwargs.setdefault("max_lines", 6)
    return gr.Textbox(label=label, interactive=False, lines=1, **kwargs)


def build_demo(source: str | None = None, model: Any = None) -> gr.Blocks:
    """The viewer as a ``gr.Blocks``; `source` (repo id or folder) is opened by default (loaded now, when valid).

    `model` (a path or Hub id, or a ``(model, tokenizer)`` pair) enables the Neuron tab's attribution button; it is
    loaded on the first click."""
    attribution = AttributionModel(model)
    initial = data.strip_source(source if source is not None else default_source())
    shown = data.source_text(initial)  # the text box's text; the list of sources given, while it is left as it is
    if initial:
        # Loaded before launch: the first page is served from memory. (The Overview figures are drawn on the first
        # page load, then cached: drawing them here, in a thread, would slow the server start and the first page.)
        try:
            data.open_results(initial)
        except Exception as err:  # shown on the page instead
            logger.info("Could not open %s: %s", initial, message_of(err))

    # analytics off whatever GRADIO_ANALYTICS_ENABLED says: an offline tool sends nothing anywhere
    with gr.Blocks(title="hf_txray neuron viewer", analytics_enabled=False) as demo:
        gr.Markdown("# hf_txray neuron viewer")
        # the page's style sheet, in <head> wherever the app is launched (launch(css=) would need every launcher)
        gr.HTML(head=f"<style>{TABLE_CSS}</style>", js_on_load=None, elem_id="viewer-style")
        gr.Markdown(INTRO)
        current = gr.State(initial)
        pair = gr.State([None, None])  # stages of the last search, for "click a row"
        with gr.Row():
            source_box = gr.Textbox(value=shown, scale=4,
                                    label="Results: Hub dataset repo id (owner/name[@revision]) or local folder",
                                    placeholder="my-user/minilm-txray", elem_id="source")
            open_button = gr.Button("Open", variant="primary", scale=1, elem_id="open")
        status = _message(elem_id="status")
        with gr.Tabs() as tabs:
            with gr.Tab("Overview", id="overview"):
                stages_df = _table("Stages: model, corpus, size", STAGE_COLUMNS, elem_id="stages-table")
                reports_df = _table("Transfer reports", REPORT_COLUMNS, elem_id="reports-table")
                with gr.Row():
                    ov_report = gr.Dropdown(label="Report (stage pair)", choices=[], scale=2)
                    ov_ft = gr.Dropdown(label="Feature type", choices=[], scale=1)
                ov_message = _message("Notes on the figures", elem_id="overview-message", max_lines=12)
                layers_df = _table("Per-layer summary", LAYER_COLUMNS, elem_id="layers-table")
                overview_plots = []
                for name in FIGURES:  # the label as a heading: a label drawn over the image covers the plot's title
                    gr.Markdown(f"**{FIGURE_LABELS[name]}**")
                    if name == CLICKABLE_FIGURE:
                        dots = gr.HTML(label=FIGURE_LABELS[name], elem_id=name, js_on_load=DOT_CLICK_JS,
                                       css_template=DOT_CSS)
                        overview_plots.append(dots)
                        continue
                    overview_plots.append(gr.Plot(label=FIGURE_LABELS[name], show_label=False, format="png",
                                                  elem_id=name))
            with gr.Tab("Neuron", id="neuron"):
                with gr.Row():
                    nb_layer = gr.Dropdown(label="Layer", choices=[], elem_id="layer")
                    # No precision=0: Gradio would round a fraction sent through the API (3.7 showed neuron 4);
                    # check_neuron refuses it.
                    nb_neuron = gr.Number(label="Neuron", elem_id="neuron")
                    nb_a = gr.Dropdown(label="Stage A", choices=[])
                    nb_b = gr.Dropdown(label="Stage B", choices=[])
                    nb_show = gr.Button("Show neuron", variant="primary", elem_id="show-neuron")
                # Reading order: summary, input preferences, output effects, activation distribution, top
                # examples, transfer between stages, probes and attribution.
                nb_title = _message("Neuron", elem_id="neuron-title")
                nb_summary = _message("In words (every figure from the neuron's card)", elem_id="neuron-summary")
                nb_stats = _table("Stats per stage (length = distinct values credited; top = most preferred value)",
                                  STATS_COLUMNS, elem_id="neuron-stats")
                nb_chart = gr.Plot(label="Preference distributions: stage A and B side by side", elem_id="chart")
                nb_out_message = _message("Output effects", elem_id="output-message")
                nb_outputs = _table("Promoted and suppressed vocabulary tokens (logit change per unit of activation)",
                                    OUTPUT_COLUMNS, elem_id="output-effects")
                with gr.Row():
                    nb_hist = gr.Plot(label="Credited activations (log-spaced bins)", show_label=False,  # titled
                                      elem_id="histogram")
                    nb_facts = _table("Win rate (credits / positions) and mass from the top token position",
                                      FACT_COLUMNS, elem_id="activation-facts")
                examples = lambda label, elem_id: gr.HighlightedText(  # noqa: E731
                    label=label, elem_id=elem_id, color_map=neuron_view.ACTIVATION_COLORS, show_legend=True,
                    show_inline_category=False)
                nb_hl_a = examples("Top activating examples, stage A: #rank, activation, the winning token coloured "
                                   "by its activation relative to the best", "examples-a")
                nb_hl_b = examples("Top activating examples, stage B", "examples-b")
                with gr.Accordion("Examples and distributions as tables", open=False):
                    nb_examples = _table("Top activating examples", EXAMPLE_COLUMNS, elem_id="examples-table")
                    nb_dist = _table("Top values per feature type and stage", DISTRIBUTION_COLUMNS)
                nb_cmp = _table("Transfer: change from A to B per feature type", COMPARISON_COLUMNS)
                nb_probe_message = _message("Probes", elem_id="neuron-probes-message")
                nb_probes = _table("This neuron in each probe: global rank (of how many), score, top label and "
                                   "weight, the labels whose top neurons include it", NEURON_PROBE_COLUMNS,
                                   elem_id="neuron-probes")
                with gr.Row():
                    nb_explain = gr.Button("Explain top examples (Integrated Gradients)",
                                           interactive=attribution.available, elem_id="explain", scale=3)
                    nb_explain_k = gr.Number(value=3, precision=0, minimum=1, maximum=20,
                                             label="Examples to explain (stage A)", scale=1)
                nb_explain_message = _message("Attribution", elem_id="explain-message",
                                              value="" if attribution.available else probing.NO_MODEL)
                nb_attr = gr.HighlightedText(label="Per-token attribution (score / largest |score| of the example)",
                                             elem_id="attribution", show_legend=True)
                with gr.Accordion("Attribution scores as a table", open=False):
                    nb_attr_table = _table("Per-token scores", ATTRIBUTION_COLUMNS, elem_id="attribution-table")
            with gr.Tab("Search", id="search"):
                gr.Markdown("Which neurons prefer X? Click a result row to open the neuron.")
                with gr.Row():
                    s_stage = gr.Dropdown(label="Stage", choices=[])
                    s_ft = gr.Dropdown(label="Feature type", choices=[], elem_id="search-ft")
                    s_value = gr.Textbox(label="Value (a token, word or tag, e.g. NOUN)", elem_id="search-value")
                    s_by = gr.Radio(["probability", "mass"], value="probability", label="Rank by")
                    s_min = gr.Number(value=DEFAULT_MIN_COUNT, label="Min. credits with a value of the type")
                    s_go = gr.Button("Search by value", variant="primary")
                with gr.Row():
                    s_report = gr.Dropdown(label="Report", choices=[])
                    s_status = gr.Radio(list(STATUSES), value="lost", label="Status")
                    s_go_status = gr.Button("Search by status")
                with gr.Row():
                    s_hft = gr.Dropdown(label="Hellinger of feature type", choices=[])
                    s_lo = gr.Slider(0, 1, value=0.8, step=0.01, label="Hellinger from")
                    s_hi = gr.Slider(0, 1, value=1.0, step=0.01, label="to")
                    s_go_h = gr.Button("Search by Hellinger range")
                s_layer = gr.Dropdown(label="Layer", choices=[data.ALL_LAYERS], value=data.ALL_LAYERS)
                s_message = _message("Search", elem_id="search-message")
                s_table = _table("Neurons (click a row to open it)", NEURON_LIST_COLUMNS, elem_id="search-results")
            with gr.Tab("Transfer", id="transfer"):
                with gr.Row():
                    t_report = gr.Dropdown(label="Report (stage pair)", choices=[], scale=2)
                    t_ft = gr.Dropdown(label="Feature type", choices=[])
                    t_which = gr.Radio(["most", "least"], value="most", label="Changed")
                    t_min = gr.Number(value=DEFAULT_MIN_COUNT, label="Min. count in both stages")
                    t_n = gr.Slider(5, 200, value=25, step=5, label="How many")
                    t_layer = gr.Dropdown(label="Layer", choices=[data.ALL_LAYERS], value=data.ALL_LAYERS)
                t_message = _message("Transfer", elem_id="transfer-message")
                t_table = _table("Shared neurons by Hellinger distance (click a header to sort, a row to open the "
                                 "neuron)", NEURON_LIST_COLUMNS, elem_id="transfer-table")
            with gr.Tab("Probing", id="probing"):
                p_message = _message("Probing", elem_id="probing-message")
                p_overview = _table("Probes: accuracy vs majority baseline and control task, selectivity, minimal "
                                    "neuron set", PROBE_OVERVIEW_COLUMNS, elem_id="probing-overview")
                with gr.Row():
                    p_probe = gr.Dropdown(label="Probe", choices=[], elem_id="probe")
                    p_label = gr.Dropdown(label="Label", choices=[], elem_id="probe-label")
                    # its choices follow the chosen probe (probe_layers); Gradio fires a dropdown's input twice per
                    # pick, and the second probe change still sent the layer the first had taken out of the choices:
                    # refused by Gradio ("Value: 0 is not in the list of choices"), a toast on every such switch.
                    # show_probe refuses a layer the probe lacks itself, naming the probe and its layers
                    p_layer = gr.Dropdown(label="Layer", choices=[data.ALL_LAYERS], value=data.ALL_LAYERS,
                                          elem_id="probe-layer", allow_custom_value=True)
                p_top_message = _message("Top neurons", elem_id="probe-top-message")
                with gr.Row():
                    p_labels = _table("Per-label accuracy", PROBE_LABEL_COLUMNS, elem_id="probe-labels")
                    p_top = _table("Top neurons (click a row to open the neuron)", PROBE_TOP_COLUMNS,
                                   elem_id="probe-top")
                p_curve = gr.Dropdown(label="Ablation curve", choices=[], elem_id="ablation-curve")
                p_ablation_message = _message("Ablation", elem_id="ablation-message")
                p_ablation_plot = gr.Plot(label="Ablation: metric vs neurons ablated (ranked vs random)",
                                          format="png", elem_id="ablation-plot")
                p_ablation = _table("Ablation summary (mean, std over seeds)", ABLATION_COLUMNS,
                                    elem_id="ablation-table")
            with gr.Tab("Live text", id="live"):
                gr.Markdown("Type or paste text: each token shows the neuron that wins it at the chosen layer (the "
                            "same engine and credit rule as `analyze`), coloured by its activation. Click a token "
                            "to open that neuron. Give a neuron number to see its activation over the text.")
                with gr.Row():
                    lv_text = gr.Textbox(label="Text", lines=3, scale=4, elem_id="live-input",
                                         value="The quick brown fox jumps over the lazy dog in New York last year.")
                    lv_layer = gr.Dropdown(label="Layer", choices=[], elem_id="live-layer", scale=1,
                                           allow_custom_value=True)  # choices arrive after the results open
                    # a text box, empty until a neuron is typed: a gr.Number shows and sends 0 when empty, so every
                    # run traced neuron 0 unasked; check_neuron reads the text as a number (and refuses fractions)
                    lv_trace = gr.Textbox(label="Neuron to trace (optional)", elem_id="live-trace-neuron", scale=1,
                                          max_lines=1, placeholder="e.g. 7")
                    lv_go = gr.Button("Run", variant="primary", interactive=attribution.available,
                                      elem_id="live-run", scale=1)
                lv_message = _message("Live text", elem_id="live-message",
                                      value="" if attribution.available else probing.NO_MODEL)
                lv_spans = gr.HighlightedText(label="Winning neuron per token (colour: activation / the text's "
                                              "largest); click a token to open its neuron", elem_id="live-winners",
                                              show_legend=True, combine_adjacent=False)
                lv_trace_spans = gr.HighlightedText(label="The traced neuron's activation over the text (red = "
                                                    "positive, blue = negative)", elem_id="live-trace",
                                                    show_legend=True, combine_adjacent=False)
                lv_table = _table("Tokens: winning neuron and its activation (click a row to open the neuron)",
                                  LIVE_COLUMNS, elem_id="live-table")
                lv_state = gr.State([[], []])  # (layer, neuron) per token row; token row per span

        open_outputs = [current, status, stages_df, reports_df, ov_report, ov_ft, nb_layer, nb_neuron, nb_a, nb_b,
                        s_stage, s_ft, s_report, s_hft, s_layer, t_report, t_ft, t_layer]
        overview_outputs = [ov_message, layers_df, *overview_plots]
        neuron_outputs = [nb_title, nb_stats, nb_cmp, nb_chart, nb_hl_a, nb_hl_b, nb_examples, nb_dist]
        page_outputs = [nb_summary, nb_out_message, nb_outputs, nb_hist, nb_facts]
        neuron_inputs = [current, nb_layer, nb_neuron, nb_a, nb_b]
        overview_inputs = [current, ov_report, ov_ft]
        transfer_inputs = [current, t_report, t_ft, t_which, t_min, t_n, t_layer]
        search_outputs = [s_message, s_table, pair]

        def opened(text: str, reload: bool = False) -> tuple:
            try:  # the sources given, kept apart: joined, folders a and b were read as a:b where it exists
                return open_results(initial if text == shown else text, reload)
            except Exception as err:  # the previous results (if any) stay open
                message = message_of(err)
                warn(message)
                return (gr.skip(), message, *(gr.skip(),) * (len(open_outputs) - 2))

        def page(text: str, request: gr.Request) -> tuple:
            repo = (request.query_params.get("repo") or "").strip() if request is not None else ""
            text = repo or text
            if not text:
                return (text, gr.skip(), "No results open: enter a Hub dataset repo id or a local results folder "
                        "and press Open.", *(gr.skip(),) * (len(open_outputs) - 2))
            return (text, *opened(text))

        overview_fn = guarded(lambda: (empty(*LAYER_COLUMNS), None, None, None, None))(show_overview)
        neuron_fn = guarded(lambda: (empty(*STATS_COLUMNS), empty(*COMPARISON_COLUMNS), None, None, None,
                                     empty(*EXAMPLE_COLUMNS), empty(*DISTRIBUTION_COLUMNS)))(show_neuron)
        transfer_fn = guarded(lambda: (empty(*NEURON_LIST_COLUMNS),))(show_transfer)
        search_empty = lambda: (empty(*NEURON_LIST_COLUMNS), gr.skip())  # noqa: E731

        load_event = demo.load(page, [source_box], [source_box, *open_outputs], api_visibility="private")
        def reopened(text: str) -> tuple:  # Open reads the source again: it may have been saved or pushed anew
            return opened(text, reload=True)

        open_event = gr.on([open_button.click, source_box.submit], reopened, [source_box], open_outputs,
                           api_name="open")
        probing_outputs = [p_message, p_overview, p_probe, p_label, p_curve, p_layer]
        probe_inputs = [current, p_probe, p_label, p_layer]
        probe_outputs = [p_top_message, p_labels, p_top, p_label]
        ablation_outputs = [p_ablation_message, p_ablation_plot, p_ablation]
        neuron_probe_outputs = [nb_probe_message, nb_probes]
        probing_fn = guarded(lambda: (empty(*PROBE_OVERVIEW_COLUMNS), *(gr.skip(),) * 4))(show_probing)
        probe_fn = guarded(lambda: (empty(*PROBE_LABEL_COLUMNS), empty(*PROBE_TOP_COLUMNS), gr.skip()))(show_probe)
        ablation_fn = guarded(lambda: (None, empty(*ABLATION_COLUMNS)))(show_ablation)
        # after the neuron's cards, on the same inputs: their error was toasted once already
        neuron_probes_fn = guarded(lambda: (probing.neuron_probes(data.ResultsView("", {}, {}), 0, 0),),
                                   toast=False)(show_neuron_probes)

        def explain(source: str, layer: Any, neuron: Any, stage: str, k: Any) -> tuple:
            return explain_neuron(source, layer, neuron, stage, k, attribution)

        explain_fn = guarded(lambda: (None, empty(*ATTRIBUTION_COLUMNS)))(explain)

        page_fn = guarded(lambda: (None, empty(*OUTPUT_COLUMNS), None, empty(*FACT_COLUMNS)),
                          toast=False)(show_neuron_page)

        def then_neuron(event: Any) -> Any:
            """The neuron's cards, its summary, output effects and activations, then its probe rows."""
            return (event.then(neuron_fn, neuron_inputs, neuron_outputs, api_visibility="private")
                    .then(page_fn, neuron_inputs, page_outputs, api_visibility="private")
                    .then(neuron_probes_fn, [current, nb_layer, nb_neuron], neuron_probe_outputs,
                          api_visibility="private"))

        def live(source: str, text: str, layer: Any, trace: Any) -> tuple:
            return live_text(source, text, layer, trace, attribution)

        live_fn = guarded(lambda: (None, None, empty(*LIVE_COLUMNS), [[], []]))(live)

        def live_layers(source: str) -> Any:
            try:
                layers = live_tab_layers(_view(source))
            except Exception:  # nothing open yet: the tab stays empty
                return gr.skip()
            return gr.Dropdown(choices=layers, value=layers[-1] if layers else None)

        for event, probing_api in ((load_event, {"api_visibility": "private"}), (open_event, {"api_name": "probing"})):
            event = event.success(overview_fn, overview_inputs, overview_outputs, api_visibility="private")
            (then_neuron(event)
             .then(transfer_fn, transfer_inputs, [t_message, t_table], api_visibility="private")
             .then(live_layers, [current], [lv_layer], api_visibility="private")
             .then(probing_fn, [current], probing_outputs, **probing_api)
             .then(probe_fn, probe_inputs, probe_outputs, api_visibility="private")
             .then(ablation_fn, [current, p_curve], ablation_outputs, api_visibility="private"))

        gr.on([ov_report.input, ov_ft.input], overview_fn, overview_inputs, overview_outputs, api_name="overview")
        gr.on([nb_show.click, nb_neuron.submit, nb_layer.input, nb_a.input, nb_b.input], neuron_fn, neuron_inputs,
              neuron_outputs, api_name="neuron")
        gr.on([nb_show.click, nb_neuron.submit, nb_layer.input], neuron_probes_fn, [current, nb_layer, nb_neuron],
              neuron_probe_outputs, api_name="neuron_probes")
        gr.on([nb_show.click, nb_neuron.submit, nb_layer.input, nb_a.input, nb_b.input], page_fn, neuron_inputs,
              page_outputs, api_name="neuron_page")
        # the two events that run the model: one queue, one request at a time (Gradio's default limit, 1, is per
        # event; the handlers also hold _MODEL_RUNS, for callers outside Gradio's queue)
        gr.on([lv_go.click, lv_text.submit], live_fn, [current, lv_text, lv_layer, lv_trace],
              [lv_message, lv_spans, lv_trace_spans, lv_table, lv_state], api_name="live_text", concurrency_id="model")
        nb_explain.click(explain_fn, [current, nb_layer, nb_neuron, nb_a, nb_explain_k],
                         [nb_explain_message, nb_attr, nb_attr_table], api_name="explain", concurrency_id="model")
        # a new probe first offers its own layers (the dropdown listed every profiled layer, whichever the probe ranked)
        def probe_layer_choices(source: str, probe: str | None, layer: Any) -> Any:
            try:
                return probe_layers(source, probe, layer)
            except Exception:  # said by show_probe, which runs next
                return gr.skip()

        (p_probe.input(probe_layer_choices, [current, p_probe, p_layer], [p_layer], api_visibility="private")
         .then(probe_fn, probe_inputs, probe_outputs, api_visibility="private"))
        gr.on([p_label.input, p_layer.input], probe_fn, probe_inputs, probe_outputs, api_name="probe")
        p_curve.input(ablation_fn, [current, p_curve], ablation_outputs, api_name="ablation")
        gr.on([t_report.input, t_ft.input, t_which.input, t_min.submit, t_n.release, t_layer.input], transfer_fn,
              transfer_inputs, [t_message, t_table], api_name="transfer")
        gr.on([s_go.click, s_value.submit], guarded(search_empty)(search_feature),
              [current, s_stage, s_ft, s_value, s_by, s_min, gr.State(50), s_layer], search_outputs,
              api_name="search_feature")
        s_go_status.click(guarded(search_empty)(search_status), [current, s_report, s_status, s_layer],
                          search_outputs, api_name="search_status")
        s_go_h.click(guarded(search_empty)(search_hellinger), [current, s_report, s_hft, s_lo, s_hi, s_layer],
                     search_outputs, api_name="search_hellinger")

        # Click a row of the Search or Transfer results -> the Neuron tab showing that neuron.
        def go_to(table: Any, stages: list | None, current_a: str, current_b: str, evt: gr.SelectData) -> tuple:
            try:
                layer, neuron = tables.neuron_from_row(list(table.columns), list(evt.row_value or []))
            except TXRayError as err:
                warn(str(err))
                return (gr.skip(),) * 5
            a, b = (list(stages or []) + [None, None])[:2]
            return gr.Tabs(selected="neuron"), layer, neuron, a or current_a, b or current_b

        def go_to_from_report(source: str, report: str | None, table: Any, current_a: str, current_b: str,
                              evt: gr.SelectData) -> tuple:
            try:
                meta = _view(source).report(report).meta
                stages = [meta.stage_a, meta.stage_b]
            except TXRayError:
                stages = None
            return go_to(table, stages, current_a, current_b, evt)

        def go_to_dot(source: str, report: str | None, evt: gr.EventData) -> tuple:
            """A click on a dot of the Hellinger scatter: that neuron, with the report's stages."""
            try:
                view = _view(source)
                layer, neuron = view.check_neuron(evt.layer, evt.neuron)
                meta = view.report(report or view.report_names[0]).meta
            except (TXRayError, AttributeError, IndexError) as err:
                warn(message_of(err) if isinstance(err, TXRayError) else "This dot names no neuron.")
                return (gr.skip(),) * 5
            return gr.Tabs(selected="neuron"), layer, neuron, meta.stage_a, meta.stage_b

        go_outputs = [tabs, nb_layer, nb_neuron, nb_a, nb_b]
        then_neuron(dots.click(go_to_dot, [current, ov_report], go_outputs, api_visibility="private"))
        then_neuron(s_table.select(go_to, [s_table, pair, nb_a, nb_b], go_outputs, api_visibility="private"))
        then_neuron(t_table.select(go_to_from_report, [current, t_report, t_table, nb_a, nb_b], go_outputs,
                                   api_visibility="private"))
        then_neuron(p_top.select(go_to, [p_top, gr.State([None, None]), nb_a, nb_b], go_outputs,
                                 api_visibility="private"))
        then_neuron(lv_table.select(go_to, [lv_table, gr.State([None, None]), nb_a, nb_b], go_outputs,
                                    api_visibility="private"))

        def go_to_token(state: list, current_a: str, current_b: str, evt: gr.SelectData) -> tuple:
            neurons, span_rows = state or [[], []]
            row = span_rows[evt.index] if isinstance(evt.index, int) and 0 <= evt.index < len(span_rows) else None
            if row is None or neurons[row][1] < 0:
                warn("No neuron is credited on this piece of text.")
                return (gr.skip(),) * 5
            layer, neuron = neurons[row]
            return gr.Tabs(selected="neuron"), int(layer), int(neuron), current_a, current_b

        then_neuron(lv_spans.select(go_to_token, [lv_state, nb_a, nb_b], go_outputs, api_visibility="private"))
    return demo
