"""Probing, ablation and attribution results in the viewer (issue 7): tables from the ``probe_rankings`` and ``ablation``
configs of a results repo, and integrated-gradients attribution of a neuron's top examples on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigurationError
from ..tables import NEURON_PROBE_COLUMNS
from .data import ALL_LAYERS, ResultsView, chosen_layer, rounded

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# ----- probing, ablation and attribution (issue 7) -------------------------------------------------------------
ALL_LABELS = "all labels (global ranking)"
NO_PROBING = ("This results repo has no probing results (no probe_rankings or ablation config). Add them with "
              "`hf-txray probe MODEL DATA --property pos --out PROBE_DIR --export RESULTS_DIR` (or --push-to-hub "
              "REPO_ID) and `hf-txray ablate MODEL PROBE_DIR DATA --out DIR --export RESULTS_DIR`, or from Python "
              "with hf_txray.probing.save_probing / push_probing.")
NO_MODEL = ("Attribution needs the model: start the viewer with `hf-txray view DIR_OR_REPO --model MODEL_PATH` "
            "(or build_demo(source, model=...)).")


def has_probing(view: ResultsView) -> bool:
    return view.probing is not None and not view.probing.empty


def _probing(view: ResultsView, config: str = "probe_rankings") -> Any:
    if not has_probing(view):
        raise ConfigurationError(NO_PROBING)
    if getattr(view.probing, config) is None:
        raise ConfigurationError(f"These results have no {config} config.")
    return view.probing


def probe_names(view: ResultsView) -> list[str]:
    """Probe runs in the results (sorted); empty without a probe_rankings config."""
    frame = view.probing.probe_rankings if has_probing(view) else None
    return [] if frame is None else sorted(set(frame["probe"]))


def probe_label_names(view: ResultsView, probe: str | None) -> list[str]:
    """The classes of a probe, in the order of its per-class table."""
    from ..probing.results import probe_labels

    if not probe or probe not in probe_names(view):
        return []
    return list(dict.fromkeys(probe_labels(view.probing, probe)["label"]))


def probe_layer_choices(view: ResultsView, probe: str | None) -> list[Any]:
    """The Probing tab's layer choices for `probe`: every layer (:data:`~hf_txray.viewer.data.ALL_LAYERS`), then the
    layers whose neurons it ranked (:func:`~hf_txray.probing.results.probed_layers`); every layer alone without
    probe rankings or when `probe` is none of them. It listed the profiled layers, among which a layer the probe did
    not rank was refused when picked."""
    from ..probing.results import probed_layers

    if not probe or probe not in probe_names(view):
        return [ALL_LAYERS]
    return [ALL_LAYERS, *probed_layers(view.probing, probe)]


def ablation_names(view: ResultsView) -> list[str]:
    frame = view.probing.ablation if has_probing(view) else None
    return [] if frame is None else sorted(set(frame["ablation"]))


def probing_overview(view: ResultsView) -> pd.DataFrame:
    """One row per probe (``probe_overview``): accuracy vs majority and control, selectivity, minimal set."""
    from ..probing.results import probe_overview

    return rounded(probe_overview(_probing(view)))


def probing_labels(view: ResultsView, probe: str) -> pd.DataFrame:
    """Per class of `probe`: support and test accuracy."""
    from ..probing.results import probe_labels

    return rounded(probe_labels(_probing(view), probe or None))


def probing_top_neurons(view: ResultsView, probe: str, label: str | None = None, layer: Any = None,
                        n: int = 50) -> pd.DataFrame:
    """A probe's top `n` neurons, globally (`label` None or :data:`ALL_LABELS`) or for one class; `layer` filters."""
    from ..probing.results import probe_top_neurons

    label = None if label in (None, "", ALL_LABELS) else label
    layer = chosen_layer(layer)  # int() read layer 1.7 as layer 1
    if label is not None and label not in probe_label_names(view, probe):
        raise ConfigurationError(f"Probe {probe!r} has no label {label!r}; labels: "
                                 f"{', '.join(probe_label_names(view, probe))}.")
    frame = probe_top_neurons(_probing(view), probe or None, label=label, layer=layer, n=n)
    columns = ["layer", "neuron", *[c for c in frame.columns if c not in ("layer", "neuron")]]
    return rounded(frame[columns])


def probing_ablation(view: ResultsView, name: str | None = None) -> tuple["Figure", pd.DataFrame]:
    """One ablation curve (the first, or `name`): its figure and its summary table."""
    from ..probing.results import ablation_curves, ablation_figure

    results = _probing(view, "ablation")
    figure = ablation_figure(results, name or None)
    curve = next(c for c in ablation_curves(results) if c.name == (name or ablation_names(view)[0]))
    return figure, rounded(curve.summary())


def neuron_probes(view: ResultsView, layer: int, neuron: int) -> pd.DataFrame:
    """What each probe says about a neuron: its global rank (of how many), score, top label and weight, and the
    classes whose top neurons include it (``NOUN#3``). Empty without probing results."""
    if not has_probing(view):  # hf_txray.probing (and torch) not imported: the app's headers come from here
        return pd.DataFrame(columns=list(NEURON_PROBE_COLUMNS))
    from ..probing.results import neuron_probe_rows

    return rounded(neuron_probe_rows(view.probing, layer, neuron))


def load_attribution_model(model: Any) -> tuple[Any, Any]:
    """`model` as ``(model, tokenizer)``: a path or Hub id (loaded with ``AutoModel``/``AutoTokenizer``), or a
    ``(model, tokenizer)`` pair used as is."""
    if isinstance(model, (tuple, list)) and len(model) == 2:
        return model[0].eval(), model[1]
    if isinstance(model, (str, Path)):
        from transformers import AutoModel, AutoTokenizer

        try:
            return AutoModel.from_pretrained(str(model)).eval(), AutoTokenizer.from_pretrained(str(model))
        except Exception as err:
            raise ConfigurationError(f"Could not load the model {str(model)!r} for attribution: {err}") from None
    raise ConfigurationError("model must be a path or Hub id, or a (model, tokenizer) pair.")


def explain_top_examples(view: ResultsView, model: Any, tokenizer: Any, stage: str, layer: int, neuron: int,
                         k: int = 3, **kwargs: Any) -> list[Any]:
    """Integrated-gradients attribution of the neuron on its first `k` top examples of `stage`
    (:func:`hf_txray.probing.explain_examples`, at the profile's site); ``TokenAttribution`` objects."""
    from ..probing import explain_examples

    layer, neuron = view.check_neuron(layer, neuron)
    examples = view.examples(stage, layer, neuron)
    if examples.empty:
        raise ConfigurationError(f"Neuron {neuron} of layer {layer} has no top examples in stage {stage}.")
    kwargs.setdefault("site", view.profile(stage).meta.site)
    return explain_examples(model, tokenizer, examples, layer, neuron, k=int(k), **kwargs)


def attribution_spans(attributions: list[Any]) -> list[tuple[str, float | None]]:
    """``HighlightedText`` spans of the examples, one line each (``#rank``), every token's score divided by the
    largest absolute score of its example (so in [-1, 1]); text between tokens unscored."""
    spans: list[tuple[str, float | None]] = []
    for rank, attribution in enumerate(attributions):
        pieces = attribution.highlight_spans()
        scale = max((abs(v) for _, v in pieces if v is not None), default=0.0) or 1.0
        spans.append((("\n" if rank else "") + f"#{rank + 1}  ", None))
        spans.extend((text, None if v is None else float(v) / scale) for text, v in pieces)
    return spans


def attribution_table(attributions: list[Any]) -> pd.DataFrame:
    """One row per scored token: example (1-based rank), token, raw score (not rounded: scores can be tiny), and
    whether the neuron is read there."""
    rows = []
    for rank, attribution in enumerate(attributions):
        t = attribution.table
        for row in t[~t["special"]].itertuples(index=False):
            rows.append({"example": rank + 1, "token": row.token, "score": float(row.score),
                         "read here": int(row.token_index) == attribution.position})
    return pd.DataFrame(rows, columns=["example", "token", "score", "read here"])
