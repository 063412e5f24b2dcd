"""Offline `evaluate` metric modules shipped inside hf_txray.

``evaluate.load("accuracy")`` fetches the metric's code from the Hugging Face Hub at run time, so it fails on an
offline machine. These folders are ordinary `evaluate` metric scripts (one folder per metric, the script named like
the folder), loaded with ``evaluate.load(<local path>)``: evaluate's local loader copies the script into its modules
cache and imports it, without any network access. Use :func:`hf_txray.evaluation.load_metric` or
:func:`metric_path`.

- ``accuracy``, ``precision``, ``recall``, ``f1``: same inputs, options and outputs as the Hub metrics, computed with
  scikit-learn as those are (``classification.py`` holds what precision, recall and f1 share);
- ``perplexity``: corpus perplexity from per-sequence summed negative log-likelihoods and token counts (the Hub's
  ``perplexity`` runs a model itself; this one takes the losses, so any model and batching can produce them).
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
OFFLINE_METRICS = ("accuracy", "f1", "precision", "recall", "perplexity")


def metric_path(name: str) -> str:
    """Path of the offline metric script `name` (one of :data:`OFFLINE_METRICS`)."""
    if name not in OFFLINE_METRICS:
        raise KeyError(f"No offline metric {name!r}; available: {', '.join(OFFLINE_METRICS)}.")
    return str(METRICS_DIR / name / f"{name}.py")
