"""hf_txray: TX-Ray neuron preference profiles and transfer reports for Hugging Face models."""

from .analyze import Profiler, ProfilerConfig, analyze
from .errors import (
    ConfigurationError,
    DatasetError,
    HubError,
    IncompatibleProfilesError,
    ModelError,
    ProfileFormatError,
    TXRayError,
)
from .features import UserFeature
from .metrics import entropy, hellinger
from .profile import Profile, ProfileMeta
from .report import ReportMeta, TransferReport, compare
from .version import __version__

__all__ = [
    "analyze", "compare", "TransferReport", "ReportMeta", "Profile", "ProfileMeta", "Profiler", "ProfilerConfig", "UserFeature", "hellinger", "entropy",
    "TXRayError", "ConfigurationError", "DatasetError", "ModelError", "IncompatibleProfilesError",
    "ProfileFormatError", "HubError", "__version__",
]
