"""`compare()` and `TransferReport`: how neuron preferences moved from stage A to stage B.

Per neuron: status (shared / lost / gained / dead), Hellinger distance and Hellinger length per feature type,
lengths and length shift, mass and mass shift. Per layer and for the whole model: summaries. For tag-like
features (POS, dep, NER, user features): each value's mass share in A and B next to its corpus frequency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .errors import ConfigurationError, IncompatibleProfilesError
from .io_utils import atomic_dir, write_json
from .profile import FeatureTable, Profile, _read_header, merged_vocab
from .version import __version__

REPORT_FORMAT = "hf_txray.report"
STATUSES = ("shared", "lost", "gained", "dead")
CATEGORICAL = ("pos", "dep", "ner")


@dataclass
class ReportMeta:
    """Which two profiles were compared."""

    stage_a: str
    stage_b: str
    model_a: str
    model_b: str
    dataset_a: str
    dataset_b: str
    site: str
    layers: list[int]
    num_neurons: int
    feature_types: list[str]
    hf_txray_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _status(count_a: np.ndarray, count_b: np.ndarray) -> np.ndarray:
    a, b = count_a > 0, count_b > 0
    return np.select([a & b, a & ~b, ~a & b], ["shared", "lost", "gained"], default="dead").astype(object)


def _feature_columns(ta: FeatureTable, tb: FeatureTable, num_rows: int, shared: np.ndarray) -> dict[str, np.ndarray]:
    """Hellinger distance/length and lengths per row for one feature type (vocabularies aligned first)."""
    vocab = merged_vocab(ta.vocab, tb.vocab)
    ta, tb = ta.remapped(vocab), tb.remapped(vocab)
    keys_a, keys_b = ta.keys(), tb.keys()
    pa = metrics.probabilities(ta.rows, ta.mass, num_rows)
    pb = metrics.probabilities(tb.rows, tb.mass, num_rows)
    rows_of = lambda keys: keys >> 32  # noqa: E731
    length_a = metrics.length_by_row(ta.rows, ta.mass, num_rows)
    length_b = metrics.length_by_row(tb.rows, tb.mass, num_rows)
    both = shared & (length_a > 0) & (length_b > 0)
    distance = metrics.hellinger_by_row(keys_a, pa, keys_b, pb, rows_of, num_rows)
    return {
        "hellinger": np.where(both, distance, np.nan),
        "hellinger_length": metrics.union_length_by_row(keys_a[ta.mass > 0], keys_b[tb.mass > 0], rows_of, num_rows),
        "length_a": length_a,
        "length_b": length_b,
        "length_shift": length_b - length_a,
    }


def _neuron_table(a: Profile, b: Profile) -> pd.DataFrame:
    count_a, count_b = a.neuron_count.reshape(-1), b.neuron_count.reshape(-1)
    mass_a, mass_b = a.neuron_mass.reshape(-1), b.neuron_mass.reshape(-1)
    status = _status(count_a, count_b)
    frame = pd.DataFrame({
        "layer": np.repeat(np.array(a.layers, dtype=np.int64), a.num_neurons),
        "neuron": np.tile(np.arange(a.num_neurons, dtype=np.int64), len(a.layers)),
        "status": status, "count_a": count_a, "count_b": count_b,
        "mass_a": mass_a, "mass_b": mass_b, "mass_shift": mass_b - mass_a,
    })
    for ft in a.feature_types:
        columns = _feature_columns(a.tables[ft], b.tables[ft], a.num_rows, status == "shared")
        for name, values in columns.items():
            frame[f"{name}_{ft}"] = values
    return frame


def _layer_table(neurons: pd.DataFrame, feature_types: list[str]) -> pd.DataFrame:
    rows = []
    for layer, group in neurons.groupby("layer", sort=True):
        counts = group["status"].value_counts()
        row: dict[str, Any] = {"layer": int(layer), "neurons": len(group)}
        for status in STATUSES:
            row[status] = int(counts.get(status, 0))
            row[f"share_{status}"] = row[status] / len(group)
        row["mass_a"], row["mass_b"] = float(group["mass_a"].sum()), float(group["mass_b"].sum())
        shared = group[group["status"] == "shared"]
        for ft in feature_types:
            h = shared[f"hellinger_{ft}"].dropna()
            row[f"mean_hellinger_{ft}"] = float(h.mean()) if len(h) else float("nan")
            row[f"median_hellinger_{ft}"] = float(h.median()) if len(h) else float("nan")
            row[f"mean_length_shift_{ft}"] = float(shared[f"length_shift_{ft}"].mean()) if len(shared) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _mass_share_table(a: Profile, b: Profile) -> pd.DataFrame:
    frames = []
    for ft in a.feature_types:
        if ft in ("token", "word"):
            continue
        frame = pd.DataFrame({
            "mass_share_a": a.mass_share(ft), "mass_share_b": b.mass_share(ft),
            "corpus_frequency_a": a.feature_frequency(ft), "corpus_frequency_b": b.feature_frequency(ft),
        }).fillna(0.0)
        frame.index.name = "feature"
        frame = frame.reset_index().sort_values("corpus_frequency_a", ascending=False, kind="stable")
        frame.insert(0, "feature_type", ft)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["feature_type", "feature", "mass_share_a", "mass_share_b",
                                     "corpus_frequency_a", "corpus_frequency_b"])
    return pd.concat(frames, ignore_index=True)


class TransferReport:
    """The comparison of two profiles (stage A -> stage B) of the same site.

    Attributes:
        meta (`ReportMeta`): stages, models, corpora.
        neurons (`pd.DataFrame`): one row per (layer, neuron) with every per-neuron field.
        layers (`pd.DataFrame`): per-layer summaries (status shares, mean/median Hellinger, mean length shift).
        mass_share (`pd.DataFrame`): per tag-like feature value: mass share in A and B and corpus frequency.
    """

    def __init__(self, meta: ReportMeta, neurons: pd.DataFrame, layers: pd.DataFrame, mass_share: pd.DataFrame):
        self.meta, self.neurons, self.layers, self.mass_share = meta, neurons, layers, mass_share

    @property
    def name(self) -> str:
        return f"{self.meta.stage_a}->{self.meta.stage_b}"

    def summary(self) -> dict[str, float]:
        """Whole-model figures: shares of each status, mean/median Hellinger over shared neurons, mean length shift."""
        n = self.neurons
        out: dict[str, float] = {"neurons": float(len(n))}
        counts = n["status"].value_counts()
        for status in STATUSES:
            out[f"share_{status}"] = float(counts.get(status, 0)) / len(n)
        shared = n[n["status"] == "shared"]
        for ft in self.meta.feature_types:
            h = shared[f"hellinger_{ft}"].dropna()
            out[f"mean_hellinger_{ft}"] = float(h.mean()) if len(h) else float("nan")
            out[f"median_hellinger_{ft}"] = float(h.median()) if len(h) else float("nan")
            out[f"mean_length_shift_{ft}"] = float(shared[f"length_shift_{ft}"].mean()) if len(shared) else float("nan")
        return out

    def _ranked(self, n: int, feature_type: str | None, layer: int | None, ascending: bool,
                min_count: int) -> pd.DataFrame:
        ft = feature_type or self.meta.feature_types[0]
        column = f"hellinger_{ft}"
        if column not in self.neurons:
            raise ConfigurationError(f"Feature type {ft!r} is not in this report: {self.meta.feature_types}.")
        frame = self.neurons[self.neurons[column].notna()]
        frame = frame[(frame["count_a"] >= min_count) & (frame["count_b"] >= min_count)]
        if layer is not None:
            frame = frame[frame["layer"] == layer]
        return frame.sort_values([column, "layer", "neuron"], ascending=[ascending, True, True], kind="stable").head(n)

    def most_changed(self, n: int = 10, feature_type: str | None = None, layer: int | None = None,
                     min_count: int = 1) -> pd.DataFrame:
        """Shared neurons with the highest Hellinger distance.

        Args:
            n (`int`, *optional*, defaults to 10): how many.
            feature_type (`str`, *optional*): defaults to the first profiled feature type.
            layer (`int`, *optional*): restrict to one layer.
            min_count (`int`, *optional*, defaults to 1): ignore neurons credited fewer times in either stage
                (distributions from a handful of credits are noisy).
        """
        return self._ranked(n, feature_type, layer, False, min_count).reset_index(drop=True)

    def least_changed(self, n: int = 10, feature_type: str | None = None, layer: int | None = None,
                      min_count: int = 1) -> pd.DataFrame:
        """Shared neurons with the lowest Hellinger distance (arguments as :meth:`most_changed`)."""
        return self._ranked(n, feature_type, layer, True, min_count).reset_index(drop=True)

    def to_pandas(self) -> pd.DataFrame:
        return self.neurons.copy()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransferReport):
            return NotImplemented
        return self.meta == other.meta and all(
            getattr(self, t).reset_index(drop=True).equals(getattr(other, t).reset_index(drop=True))
            for t in ("neurons", "layers", "mass_share")
        )

    def __repr__(self) -> str:
        s = self.summary()
        ft = self.meta.feature_types[0]
        return (f"TransferReport({self.name}, shared={s['share_shared']:.1%}, lost={s['share_lost']:.1%}, "
                f"gained={s['share_gained']:.1%}, mean_hellinger_{ft}={s[f'mean_hellinger_{ft}']:.3f})")

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write the report atomically: JSON metadata and parquet tables."""
        with atomic_dir(save_directory) as tmp:
            write_json(tmp / "txray_report.json", {"format": REPORT_FORMAT, "format_version": 1, "meta": asdict(self.meta)})
            self.neurons.to_parquet(tmp / "neurons.parquet", index=False)
            self.layers.to_parquet(tmp / "layers.parquet", index=False)
            self.mass_share.to_parquet(tmp / "mass_share.parquet", index=False)
        return Path(save_directory)

    def push_to_hub(self, repo_id: str, profiles: Any = None, **kwargs: Any) -> Any:
        """Push this report, and optionally the profiles it compares, to the Hub as a dataset repo.

        A thin wrapper over :func:`hf_txray.push_to_hub` (same keyword arguments). Without `profiles` the report is
        pushed alone and a warning names the missing stages. Returns the ``huggingface_hub.CommitInfo``.
        """
        from .hub import push_to_hub  # lazy: the core does not import the Hub layer

        return push_to_hub(repo_id, profiles=profiles, reports=[self], **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "TransferReport":
        directory = Path(directory)
        header = _read_header(directory / "txray_report.json", REPORT_FORMAT)
        meta = ReportMeta(**header["meta"])
        read = lambda name: pd.read_parquet(directory / name)  # noqa: E731
        return cls(meta, read("neurons.parquet"), read("layers.parquet"), read("mass_share.parquet"))


def _check_same_stack(a: Profile, b: Profile) -> None:
    """The encoder's and the decoder's neurons of an encoder-decoder are different neurons with the same numbers."""
    stack_a, stack_b = a.meta.config.get("stack"), b.meta.config.get("stack")
    if stack_a != stack_b:
        raise IncompatibleProfilesError(
            f"Cannot compare profiles {a.stage!r} and {b.stage!r}: one profiles the {stack_a or 'only'} stack, the other "
            f"the {stack_b or 'only'} stack. Profile both with the same stack=."
        )


def compare(a: Profile, b: Profile) -> TransferReport:
    """Compare two profiles of the same layers and features: stage `a` -> stage `b`.

    Args:
        a (`Profile`): the earlier stage (e.g. pretrained on its own corpus).
        b (`Profile`): the later stage (e.g. the same model on a new domain, or after fine-tuning).

    Returns:
        :class:`TransferReport`.

    Raises:
        IncompatibleProfilesError: when site, stack (encoder/decoder of an encoder-decoder), layers, neuron counts or
            feature types differ.

    Example:
        ```python
        >>> report = hf_txray.compare(pretrained, finetuned)
        >>> report.layers[["layer", "share_lost", "mean_hellinger_pos"]]
        >>> report.most_changed(10, feature_type="pos")
        ```
    """
    a.check_compatible(b, "compare")
    _check_same_stack(a, b)
    meta = ReportMeta(
        stage_a=a.stage, stage_b=b.stage, model_a=a.meta.model_id, model_b=b.meta.model_id,
        dataset_a=a.meta.dataset_id or a.meta.dataset_fingerprint, dataset_b=b.meta.dataset_id or b.meta.dataset_fingerprint,
        site=a.meta.site, layers=list(a.layers), num_neurons=a.num_neurons, feature_types=list(a.feature_types),
    )
    neurons = _neuron_table(a, b)
    return TransferReport(meta, neurons, _layer_table(neurons, meta.feature_types), _mass_share_table(a, b))
