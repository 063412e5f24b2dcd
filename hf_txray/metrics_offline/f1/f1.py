"""F1, as an offline `evaluate` metric script (same inputs, options and output as the Hub's `f1`)."""

from hf_txray.metrics_offline import classification

F1 = classification.make_metric_class("f1", "The F1 score is the harmonic mean of precision and recall: F1 = 2 * (precision * recall) / (precision + recall).")
