"""Precision, as an offline `evaluate` metric script (same inputs, options and output as the Hub's `precision`)."""

from hf_txray.metrics_offline import classification

Precision = classification.make_metric_class("precision", "Precision is the fraction of correctly labeled positive examples among all examples labeled positive: TP / (TP + FP).")
