"""Probing, ablation and attribution: the neuron-analysis methods NeuroX and Captum users expect, on the same models,
sites and data as TX-Ray.

- "Which neurons encode property P?": :func:`probe_neurons` (labelled words -> activations -> elastic-net probe ->
  neuron ranking, control task and selectivity, minimal neuron set, top/random/bottom subsets);
- "Do the probe's neurons prefer P in TX-Ray too?": :func:`crosscheck`;
- "Does the model need them?": :func:`ablate` and :func:`ablation_curve`;
- "Which inputs drive a neuron?": :func:`neuron_attributions` (optional extra ``captum``).

Results go to a results repo as the ``probe_rankings`` and ``ablation`` configs (:mod:`hf_txray.probing.results`).
"""

from .ablation import (
    AblationCurve,
    LMLossMetric,
    MetricOptions,
    ProbeMetric,
    TaskMetric,
    ablate,
    ablation_curve,
    ablation_metrics,
    metric_from_name,
    register_ablation_metric,
)
from .attribution import TokenAttribution, explain_examples, neuron_attributions
from .crosscheck import CrossCheck, crosscheck, crosscheck_tags, txray_preferences
from .data import LabeledCorpus, control_labels, from_columns, from_spacy, load_labeled, read_conllu
from .extraction import Activations, extract_activations, neuron_means
from .pipeline import ProbingMeta, ProbingResult, probe_neurons
from .probe import (
    LinearProbe,
    ProbeConfig,
    ProbeScores,
    control_task_accuracy,
    minimal_neuron_set,
    rank_by_weight,
    subset_accuracies,
    train_probe,
)
from .results import ProbingResults, load_probing, push_probing, save_probing

__all__ = [
    "probe_neurons", "ProbingResult", "ProbingMeta",
    "LabeledCorpus", "read_conllu", "from_spacy", "from_columns", "load_labeled", "control_labels",
    "Activations", "extract_activations", "neuron_means",
    "LinearProbe", "ProbeConfig", "ProbeScores", "train_probe", "rank_by_weight", "minimal_neuron_set",
    "subset_accuracies", "control_task_accuracy",
    "CrossCheck", "crosscheck", "crosscheck_tags", "txray_preferences",
    "ablate", "ablation_curve", "AblationCurve", "ProbeMetric", "TaskMetric", "LMLossMetric",
    "register_ablation_metric", "ablation_metrics", "metric_from_name", "MetricOptions",
    "neuron_attributions", "explain_examples", "TokenAttribution",
    "save_probing", "push_probing", "load_probing", "ProbingResults",
]
