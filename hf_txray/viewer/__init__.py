"""The viewer: what the Space shows, and the Gradio app that shows it (shipped in the package).

Results are opened once per source (a Hub dataset repo id or a folder written by :func:`hf_txray.save_to_disk`) into a
:class:`ResultsView`; every table, chart and search of the app is a plain function of it, testable without gradio.
Nothing here renders HTML or markdown: strings from a dataset (tokens can be ``<script>``, quotes, markdown) are
returned as they are, for the UI to show as text.

| module | holds |
| --- | --- |
| ``data`` | :class:`ResultsView`, :func:`open_results`, :func:`forget_opened`, table helpers |
| ``tables`` | overview, search and transfer tables |
| ``neuron`` | one neuron: stats, status, distributions, examples, summary, output effects, histogram |
| ``figures`` | the overview figures and the per-neuron Vega-Lite charts |
| ``probing`` | probing, ablation and attribution tables |
| ``live`` | live text through the profiling engine |
| ``app`` | the Gradio Blocks (:func:`~hf_txray.viewer.app.build_demo`; imports gradio) |
| ``launch`` | :func:`launch_viewer` / :func:`load_app` (``hf-txray view``) |
| ``space`` | :func:`deploy_space`: the Space on the Hub |
"""

from ..report import DEFAULT_MIN_COUNT  # the viewer's default minimum credits, as before
from .data import (
    DIGITS,
    ALL_LAYERS,
    SOURCE_SEPARATOR,
    artifact_folders,
    split_sources,
    ResultsView,
    forget_opened,
    open_results,
    rounded,
    layer_filter,
    yes_no,
)
from .tables import (
    stages_table,
    reports_table,
    layer_summary,
    matching_features,
    search_feature,
    search_status,
    search_hellinger,
    transfer_table,
    neuron_from_row,
)
from .neuron import (
    neuron_stats,
    neuron_status,
    neuron_comparison,
    pruned_numbering,
    neuron_features,
    neuron_distributions,
    display_order,
    ACTIVATION_BUCKETS,
    ACTIVATION_COLORS,
    activation_bucket,
    highlighted_examples,
    examples_table,
    NO_OUTPUT_EFFECTS,
    neuron_summary,
    neuron_output_effects,
    activation_facts,
    histogram_data,
)
from .figures import (
    overview_figures,
    DOT_LINK,
    link_hellinger_dots,
    figure_svg,
    distribution_chart,
    histogram_chart,
)
from .probing import (
    ALL_LABELS,
    NO_PROBING,
    NO_MODEL,
    has_probing,
    probe_names,
    probe_label_names,
    probe_layer_choices,
    ablation_names,
    probing_overview,
    probing_labels,
    probing_top_neurons,
    probing_ablation,
    neuron_probes,
    load_attribution_model,
    explain_top_examples,
    attribution_spans,
    attribution_table,
)
from .live import (
    LiveText,
    LiveProfiler,
    SUBSCRIPT,
    neuron_mark,
)
from .space import (
    SPACE_FILES,
    write_space_files,
    EXAMPLE_RESULTS,
    space_card,
    set_space_datasets,
    stage_space,
    deploy_space,
)
from .launch import (
    load_app,
    launch_viewer,
)

__all__ = [  # the viewer's namespace: every name above, for the app, the Space and tests
    "DEFAULT_MIN_COUNT", "DIGITS", "ALL_LAYERS", "SOURCE_SEPARATOR", "artifact_folders", "split_sources",
    "ResultsView", "forget_opened", "open_results", "rounded", "layer_filter", "yes_no", "stages_table", "reports_table",
    "layer_summary", "matching_features", "search_feature", "search_status", "search_hellinger", "transfer_table",
    "neuron_from_row", "neuron_stats", "neuron_status", "neuron_comparison", "pruned_numbering", "neuron_features", "neuron_distributions",
    "display_order", "ACTIVATION_BUCKETS", "ACTIVATION_COLORS", "activation_bucket", "highlighted_examples",
    "examples_table", "NO_OUTPUT_EFFECTS", "neuron_summary", "neuron_output_effects", "activation_facts",
    "histogram_data", "overview_figures", "DOT_LINK", "link_hellinger_dots", "figure_svg", "distribution_chart",
    "histogram_chart", "ALL_LABELS", "NO_PROBING", "NO_MODEL", "has_probing", "probe_names", "probe_label_names",
    "probe_layer_choices", "ablation_names", "probing_overview", "probing_labels", "probing_top_neurons", "probing_ablation", "neuron_probes",
    "load_attribution_model", "explain_top_examples", "attribution_spans", "attribution_table", "LiveText",
    "LiveProfiler", "SUBSCRIPT", "neuron_mark", "SPACE_FILES", "write_space_files", "EXAMPLE_RESULTS", "space_card",
    "set_space_datasets", "stage_space", "deploy_space", "load_app", "launch_viewer",
]
