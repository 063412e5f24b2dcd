"""hf_txray: TX-Ray neuron preference profiles and transfer reports for Hugging Face models."""

from . import logging  # hf_txray.logging.set_verbosity_info() & co., as transformers.logging
from .analyze import Profiler, ProfilerConfig, analyze
from .options import AnalyzeOptions
from .artifact import Artifact
from .errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    DatasetError,
    HubError,
    IncompatibleProfilesError,
    ModelError,
    ProfileFormatError,
    ReproducibilityError,
    TXRayError,
)
from .export import save_to_disk
from .evaluation import evaluate_pruning
from .features import FeatureType, UserFeature, get_feature_type, register_feature
from .hub import TXRayResults, load, push_to_hub
from .metrics import entropy, hellinger
from .architectures import format_neuron
from .profile import Profile, ProfileMeta
from .hooks import Fill, Trace, trace
from .pruning import PruningPlan, masked, prune, register_pruning_strategy, unprune
from .reproduce import ReproduceResult, StageVerdict, pin_model, reproduce, reproduce_profile
from .report import ReportMeta, TransferReport, compare
from .version import __version__

__all__ = [
    "analyze", "compare", "TransferReport", "ReportMeta", "Profile", "ProfileMeta", "Profiler", "ProfilerConfig", "UserFeature", "FeatureType",
    "register_feature", "get_feature_type", "hellinger", "entropy",
    "TXRayError", "ConfigurationError", "DatasetError", "ModelError", "IncompatibleProfilesError",
    "ProfileFormatError", "HubError", "__version__",
    "push_to_hub", "load", "save_to_disk", "TXRayResults",
    "prune", "PruningPlan", "evaluate_pruning", "unprune", "masked", "register_pruning_strategy",
    "trace", "Trace", "Fill",
    "reproduce", "reproduce_profile", "ReproduceResult", "StageVerdict", "pin_model", "ReproducibilityError",
    "format_neuron", "AnalyzeOptions", "logging",
    "Artifact", "ArtifactNotFoundError",
]

# The trainer integration imports transformers.Trainer (slow): loaded on first use, not on `import hf_txray`.
_TRAINER_NAMES = ("TXRayTrainer", "TXRayArguments", "TXRayCallback")
__all__ += list(_TRAINER_NAMES)


def __getattr__(name: str):
    if name in _TRAINER_NAMES:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'hf_txray' has no attribute {name!r}")


# Probing, ablation and attribution (issue 7): NeuroX/Captum-style methods on the same models, sites and data.
from .probing import (  # noqa: E402
    AblationCurve,
    Activations,
    LabeledCorpus,
    ProbingResult,
    ablate,
    ablation_curve,
    crosscheck,
    extract_activations,
    neuron_attributions,
    probe_neurons,
    read_conllu,
)

__all__ += [
    "probe_neurons", "ProbingResult", "LabeledCorpus", "read_conllu", "Activations", "extract_activations",
    "crosscheck", "ablate", "ablation_curve", "AblationCurve", "neuron_attributions",
]

# Telling change from sampling noise (issue 12): the per-neuron test and the ranking threshold.
from .report import DEFAULT_MIN_COUNT  # noqa: E402
from .significance import benjamini_hochberg, dispersion, homogeneity, homogeneity_pvalues  # noqa: E402

__all__ += ["DEFAULT_MIN_COUNT", "benjamini_hochberg", "dispersion", "homogeneity", "homogeneity_pvalues"]

# Neuron pages (issue 15): what a neuron writes (output effects) and a one-sentence summary of its card.
from .output_effects import output_effects, output_effects_table  # noqa: E402
from .summary import NeuronCard, neuron_card, neuron_summary  # noqa: E402

__all__ += ["output_effects", "output_effects_table", "NeuronCard", "neuron_card", "neuron_summary"]
