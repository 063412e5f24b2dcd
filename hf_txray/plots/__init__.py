"""Every figure of hf_txray, drawn with matplotlib (the one home for plots).

- :mod:`.common`: axes/figure creation (``inline_figure``: shown as an image in a notebook, without pyplot), stage
  colours, the default feature type, file names, saving;
- :mod:`.transfer`: the paper's figures of a transfer report (Hellinger vs length, length shift);
- :mod:`.profile`: credited mass of a profile or of both stages of a report (mass share, sorted neuron mass);
- :mod:`.pruning`: a metric against the share of neurons pruned, per strategy (pruning sweeps);
- :mod:`.probing`: a metric against the number of ablated neurons (ablation curves).

Every function returns a ``matplotlib.figure.Figure`` and accepts an optional ``ax`` to draw into. The trainer's
timeline figures live with the trainer and are built on :mod:`.common`.
"""

from .common import (FALLBACK_FONTS, STAGE_COLORS, checked_feature_type, default_feature_type, font_families,
                     labelled_legend, layer_colors, literal, missing_characters, new_axes, new_figure, save_figure,
                     save_figures, slug, use_fallback_fonts)
from .probing import plot_ablation
from .profile import plot_mass_share, plot_neuron_mass, profile_figures
from .pruning import plot_sweep
from .transfer import plot_hellinger_vs_length, plot_length_shift, report_figures

__all__ = ["FALLBACK_FONTS", "font_families", "missing_characters", "use_fallback_fonts", "STAGE_COLORS",
           "labelled_legend", "layer_colors", "literal", "checked_feature_type", "default_feature_type", "new_axes",
           "new_figure", "save_figure", "save_figures", "slug", "plot_mass_share", "plot_neuron_mass", "profile_figures",
           "plot_hellinger_vs_length", "plot_length_shift", "report_figures", "plot_sweep", "plot_ablation"]
