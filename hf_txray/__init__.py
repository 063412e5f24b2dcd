"""hf_txray: TX-Ray neuron preference profiles and transfer reports for Hugging Face models.

The public names load on first use (PEP 562): ``import hf_txray`` (and so ``hf-txray --help``) imports neither torch,
transformers, datasets nor pandas; ``hf_txray.analyze`` imports what profiling needs when it is first looked up.
Errors, the version and :mod:`hf_txray.logging` are light and imported at once.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from . import logging  # hf_txray.logging.set_verbosity_info() & co., as transformers.logging
from .errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    DatasetError,
    HubError,
    IncompatibleProfilesError,
    ModelError,
    OutputError,
    ProcessFailedError,
    ProfileFormatError,
    ReproducibilityError,
    TXRayError,
)
from .version import __version__

# The public names that load on first use, by the submodule that holds them. __all__ lists them for linters and the
# TYPE_CHECKING block imports them for type checkers (tests/test_imports.py checks that the three agree).
LAZY_EXPORTS: dict[str, tuple[str, ...]] = {
    "analyze": ("Profiler", "ProfilerConfig", "analyze"),
    "options": ("AnalyzeOptions",),
    "artifact": ("Artifact",),
    "export": ("save_to_disk",),
    "evaluation": ("evaluate_pruning",),
    "features": ("FeatureType", "UserFeature", "get_feature_type", "register_feature"),
    "hub": ("TXRayResults", "load", "push_to_hub"),
    "metrics": ("entropy", "hellinger"),
    "architectures": ("format_neuron",),
    "profile": ("Profile", "ProfileMeta"),
    "hooks": ("Fill", "Trace", "trace"),
    "pruning": ("PruningPlan", "masked", "prune", "register_pruning_strategy", "unprune"),
    "reproduce": ("ReproduceResult", "StageVerdict", "pin_model", "reproduce", "reproduce_profile"),
    "report": ("ReportMeta", "TransferReport", "compare"),
    # the trainer integration imports transformers.Trainer (slow)
    "trainer": ("TXRayTrainer", "TXRayArguments", "TXRayCallback"),
    # probing, ablation and attribution (issue 7): NeuroX/Captum-style methods on the same models, sites and data
    "probing": ("AblationCurve", "Activations", "LabeledCorpus", "ProbingResult", "ablate", "ablation_curve",
                "extract_activations", "neuron_attributions", "probe_neurons", "read_conllu"),
    "probing.crosscheck": ("crosscheck",),  # its own module: type checkers read hf_txray.probing's as the submodule
    # telling change from sampling noise (issue 12): the per-neuron test and the ranking threshold
    "significance": ("DEFAULT_MIN_COUNT", "benjamini_hochberg", "dispersion", "homogeneity", "homogeneity_pvalues"),
    # neuron pages (issue 15): what a neuron writes (output effects) and a one-sentence summary of its card
    "output_effects": ("output_effects", "output_effects_table"),
    "summary": ("NeuronCard", "neuron_card", "neuron_summary"),
}
_HOME = {name: module for module, names in LAZY_EXPORTS.items() for name in names}

__all__ = [
    "logging", "__version__", "TXRayError", "ConfigurationError", "DatasetError", "ModelError",
    "IncompatibleProfilesError", "ProfileFormatError", "HubError", "ReproducibilityError", "ArtifactNotFoundError",
    "OutputError", "ProcessFailedError",
    # the lazy exports, spelled out for linters (tests/test_imports.py checks them against LAZY_EXPORTS)
    "Profiler", "ProfilerConfig", "analyze", "AnalyzeOptions", "Artifact", "save_to_disk", "evaluate_pruning",
    "FeatureType", "UserFeature", "get_feature_type", "register_feature", "TXRayResults", "load", "push_to_hub",
    "entropy", "hellinger", "format_neuron", "Profile", "ProfileMeta", "Fill", "Trace", "trace", "PruningPlan",
    "masked", "prune", "register_pruning_strategy", "unprune", "ReproduceResult", "StageVerdict", "pin_model",
    "reproduce", "reproduce_profile", "ReportMeta", "TransferReport", "compare", "TXRayTrainer", "TXRayArguments",
    "TXRayCallback", "AblationCurve", "Activations", "LabeledCorpus", "ProbingResult", "ablate", "ablation_curve",
    "crosscheck", "extract_activations", "neuron_attributions", "probe_neurons", "read_conllu", "DEFAULT_MIN_COUNT",
    "benjamini_hochberg", "dispersion", "homogeneity", "homogeneity_pvalues", "output_effects",
    "output_effects_table", "NeuronCard", "neuron_card", "neuron_summary",
]

if TYPE_CHECKING:
    from .analyze import Profiler, ProfilerConfig, analyze
    from .architectures import format_neuron
    from .artifact import Artifact
    from .evaluation import evaluate_pruning
    from .export import save_to_disk
    from .features import FeatureType, UserFeature, get_feature_type, register_feature
    from .hooks import Fill, Trace, trace
    from .hub import TXRayResults, load, push_to_hub
    from .metrics import entropy, hellinger
    from .options import AnalyzeOptions
    from .output_effects import output_effects, output_effects_table
    from .probing import (AblationCurve, Activations, LabeledCorpus, ProbingResult, ablate, ablation_curve,
                          extract_activations, neuron_attributions, probe_neurons, read_conllu)
    from .probing.crosscheck import crosscheck  # not from .probing: type checkers took the submodule of that name
    from .profile import Profile, ProfileMeta
    from .pruning import PruningPlan, masked, prune, register_pruning_strategy, unprune
    from .report import ReportMeta, TransferReport, compare
    from .reproduce import ReproduceResult, StageVerdict, pin_model, reproduce, reproduce_profile
    from .significance import DEFAULT_MIN_COUNT, benjamini_hochberg, dispersion, homogeneity, homogeneity_pvalues
    from .summary import NeuronCard, neuron_card, neuron_summary
    from .trainer import TXRayArguments, TXRayCallback, TXRayTrainer


def __getattr__(name: str) -> Any:
    """A public name, imported from its submodule on first use; else a submodule (``hf_txray.provenance``)."""
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value  # looked up once
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Importing a submodule binds it on its package: ``hf_txray.analyze`` (and ``reproduce``, ``output_effects``)
    would then be the module, not the function of the same name. Keep the function, as the eager imports did."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (_HOME.get(name) == name and isinstance(value, types.ModuleType)
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
