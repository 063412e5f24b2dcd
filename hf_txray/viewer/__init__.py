"""The viewer: what the Space shows, and the Gradio app that shows it (shipped in the package).

Results are opened once per source (a Hub dataset repo id or a folder written by :func:`hf_txray.save_to_disk`) into a
:class:`ResultsView`; every table, chart and search of the app is a plain function of it, testable without gradio.
Nothing here renders HTML or markdown: strings from a dataset (tokens can be ``<script>``, quotes, markdown) are
returned as they are, for the UI to show as text.

| module | holds |
| --- | --- |
| ``data`` | :class:`ResultsView`, :func:`open_results`, table helpers |
| ``tables`` | overview, search and transfer tables |
| ``neuron`` | one neuron: stats, status, distributions, examples, summary, output effects, histogram |
| ``figures`` | the overview figures and the per-neuron Vega-Lite charts |
| ``probing`` | probing, ablation and attribution tables |
| ``live`` | live text through the profiling engine |
| ``app`` | the Gradio Blocks (:func:`~hf_txray.viewer.app.build_demo`; imports gradio) |
| ``launch`` | :func:`launch_viewer` / :func:`load_app` (``hf-txray view``) |
| ``space`` | :func:`deploy_space`: the Space on the Hub |
"""

from ..report import DEFAULT_MIN_COUNT  # noqa: F401  (the viewer's default minimum credits, as before)
from .data import (  # noqa: F401
    DIGITS,
    ALL_LAYERS,
    SOURCE_SEPARATOR,
    artifact_folders,
    split_sources,
    ResultsView,
    open_results,
    rounded,
    layer_filter,
    yes_no,
)
from .tables import (  # noqa: F401
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
from .neuron import (  # noqa: F401
    neuron_stats,
    neuron_status,
    neuron_comparison,
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
from .figures import (  # noqa: F401
    overview_figures,
    distribution_chart,
    histogram_chart,
)
from .probing import (  # noqa: F401
    ALL_LABELS,
    NO_PROBING,
    NO_MODEL,
    has_probing,
    probe_names,
    probe_label_names,
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
from .live import (  # noqa: F401
    LiveText,
    LiveProfiler,
    SUBSCRIPT,
    neuron_mark,
)
from .space import (  # noqa: F401
    SPACE_FILES,
    write_space_files,
    EXAMPLE_RESULTS,
    space_card,
    set_space_datasets,
    stage_space,
    deploy_space,
)
from .launch import (  # noqa: F401
    load_app,
    launch_viewer,
)
