"""Recall, as an offline `evaluate` metric script (same inputs, options and output as the Hub's `recall`)."""

from hf_txray.metrics_offline import classification

Recall = classification.make_metric_class("recall", "Recall is the fraction of the positive examples that were labeled positive: TP / (TP + FN).")
