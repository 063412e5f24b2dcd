"""`probe_neurons()`: labelled data -> activations -> probe -> ranking, control task, minimal set, subsets.

:class:`ProbingResult` holds everything one probing run produced, saves to a folder (``save_pretrained`` /
``from_pretrained``) and goes to a results repo as the ``probe_rankings`` config (:mod:`hf_txray.probing.results`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigurationError, DatasetError
from ..hashes import text_hashes
from ..artifact import Artifact
from ..io_utils import arrow_path, read_json, write_json
from ..counts import check_count, check_switch, is_int, refuse_repeats
from ..options import parse_layers
from ..pruning.plan import RANKED_MODULES  # the record of a ranking table's modules, read where tables are read
from ..version import __version__
from .data import LabeledCorpus, check_labelled_property, load_labeled
from .extraction import DEFAULT_MEMMAP_THRESHOLD, Activations, check_can_split, check_split, extract_activations
from .layout import PROBE_CONFIG, probe_table, refuse_exported_rows, write_probing_folder
from .probe import (
    LinearProbe,
    ProbeConfig,
    check_share,
    control_task_accuracy,
    minimal_neuron_set,
    scores_of,
    subset_accuracies,
    train_probe,
)

DEFAULT_TARGET_SHARE = 0.9  # the share of the probe's accuracy the minimal neuron set must reach
STATE_DIR = "probe"  # the exact state of a saved result, beside its probe_rankings config


@dataclass
class ProbingMeta:
    """What was probed and how (saved with the result, exported with the rankings)."""

    name: str
    model_id: str
    property: str
    site: str
    layers: list[int]
    width: int
    aggregation: str
    label_names: list[str]
    stack: str | None = None  # an encoder-decoder's stack the words were read from (ProbeMetric re-reads it)
    module_pattern: str | None = None  # the regex naming the hooked modules, if not the automatic site (re-read too)
    # the weights the probe was trained on (extraction's weights_fingerprint): ProbeMetric refuses another model's
    # activations, which its layer widths alone cannot tell apart; None in results saved before it was recorded
    weights_sample_hash: str | None = None
    weights_dtype: str | None = None
    # the whole part that runs (a profile's weights_sample_hash): a decoder stack's words depend on its encoder too
    model_weights_sample_hash: str | None = None
    # the vocabulary of the tokenizer that split the words (provenance.tokenizer_vocab_hash): ProbeMetric refuses
    # another tokenizer, whose tokens would be other units under the probe's words
    tokenizer_vocab_hash: str | None = None
    data_source: str = ""
    num_sentences: int = 0
    num_words: int = 0
    num_train: int = 0
    num_test: int = 0
    num_skipped_words: int = 0
    test_size: float = 0.2
    seed: int = 0
    target_share: float = DEFAULT_TARGET_SHARE
    config: dict[str, Any] = field(default_factory=dict)
    hf_txray_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProbingMeta":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})




@dataclass(eq=False)  # == from Artifact: value equality through arrays and frames
class ProbingResult(Artifact):
    """The outcome of :func:`probe_neurons`.

    Attributes:
        meta (`ProbingMeta`): model, property, site, layers, data, hyperparameters.
        probe (`LinearProbe`): the probe on all neurons.
        accuracy (`float`): its test accuracy (share of test words in [0, 1]).
        train_accuracy (`float`): its accuracy on the training rows.
        majority_baseline (`float`): test accuracy of always predicting the most frequent training label;
            :func:`probe_neurons` warns when `accuracy` does not beat it by more than one test word (imbalanced
            classes, where the accuracy alone reads as success).
        control_accuracy (`float`, *optional*): test accuracy of the same probe on the control task.
        per_class (`pd.DataFrame`): ``label``, ``support``, ``correct``, ``accuracy`` on the test rows (a class's
            accuracy is its recall, ``correct / support``; no precision or F1 is computed).
        ranking (`pd.DataFrame`): every neuron, most important first: ``rank``, ``layer``, ``neuron``, ``column``,
            ``score``, ``weight_norm``, ``top_label``, ``top_weight``.
        minimal (`pd.DataFrame`): the top-k sizes tried for the minimal set and their accuracies.
        minimal_size (`int`, *optional*): the smallest k reaching ``meta.target_share`` of `accuracy`, searched on
            the test rows that score it (no separate development split: see
            :func:`~hf_txray.probing.probe.minimal_neuron_set`).
        subsets (`pd.DataFrame`): top / random / bottom subsets of one size, retrained.
        activations (`Activations`, *optional*): the extracted activations (not saved).
        train_sentences (`np.ndarray`, *optional*): the content hashes (:func:`hf_txray.hashes.text_hashes`, sorted,
            distinct) of the sentences the probe was trained on, so that :class:`~hf_txray.probing.ProbeMetric`
            warns when it scores them and :meth:`held_out` leaves them out; None when not recorded (a result saved
            before it was, or trained on activations saved before their sentences were hashed).

    Saved in the dataset layout: the ``probe_rankings`` config and a dataset card, plus the exact state under
    ``probe/`` (the probe's weights and the training sentences' hashes as safetensors, the tables as parquet, meta
    and scores as JSON).
    """

    artifact_type = "probing_result"
    format_version = 1
    card_is_section = True  # the probing section of a results repo's card
    card_names_repo = True  # its loading example names the repo a push goes to

    meta: ProbingMeta
    probe: LinearProbe
    accuracy: float
    train_accuracy: float
    majority_baseline: float
    control_accuracy: float | None
    per_class: pd.DataFrame
    ranking: pd.DataFrame
    minimal: pd.DataFrame
    minimal_size: int | None
    subsets: pd.DataFrame
    activations: Activations | None = field(default=None, repr=False, compare=False)
    train_sentences: np.ndarray | None = field(default=None, repr=False)

    def probed_model_id(self) -> str | None:
        return self.meta.model_id

    def __post_init__(self) -> None:
        # a table of this ranking names (layer, neuron) pairs of the site and stack probed: ablate() reads the record
        # and refuses to edit other units with the same numbers (the MLP neurons of a residual or decoder probe)
        self.ranking.attrs[RANKED_MODULES] = self.ranked_modules()

    def ranked_modules(self) -> dict[str, Any]:
        """The modules whose units the ranking numbers: ``site``, ``stack`` and ``module_pattern``."""
        return {"site": self.meta.site, "stack": self.meta.stack, "module_pattern": self.meta.module_pattern}

    def trained_on(self, texts: Sequence[str]) -> np.ndarray | None:
        """Per text, whether the probe was trained on a sentence of that content (None when the result does not
        record its training sentences: see `train_sentences`).

        Args:
            texts (`Sequence[str]`): sentences, matched by content (their hashes).

        Returns:
            `np.ndarray` of bool, shape `(len(texts),)`, or None.
        """
        if self.train_sentences is None:
            return None
        return np.isin(text_hashes(list(texts)), self.train_sentences)

    def held_out(self, corpus: LabeledCorpus) -> LabeledCorpus:
        """The sentences of `corpus` the probe was not trained on: what a :class:`~hf_txray.probing.ProbeMetric`
        should score (on its training sentences a probe's accuracy reads too high).

        Args:
            corpus (`LabeledCorpus`): the labelled sentences to select from.

        Returns:
            `LabeledCorpus`: the sentences of `corpus` not trained on, in their order.

        Example:
            ```python
            >>> corpus = read_conllu("en_ewt-ud-dev.conllu", max_sentences=300)
            >>> result = hf_txray.probe_neurons(model, corpus, "pos", tokenizer=tokenizer)
            >>> metric = ProbeMetric(result, result.held_out(corpus), tokenizer)   # the 20% held out
            ```

        Raises:
            ConfigurationError: the result does not record its training sentences, or every sentence of `corpus`
                is one of them.
        """
        trained = self.trained_on(corpus.texts)
        if trained is None:
            raise ConfigurationError(
                f"The probe {self.meta.name!r} does not record the sentences it was trained on (saved by an hf_txray "
                "that did not, or trained on activations saved before their sentences were hashed): its held-out "
                "sentences cannot be told. Retrain it (probe_neurons) to have them recorded.")
        if trained.all():
            raise ConfigurationError(f"The probe {self.meta.name!r} was trained on every one of the {len(corpus)} "
                                     "sentences: none is held out. Score other sentences (e.g. another split).")
        return corpus.select(np.flatnonzero(~trained))

    @property
    def selectivity(self) -> float | None:
        """Accuracy minus control-task accuracy (None without a control task)."""
        return None if self.control_accuracy is None else self.accuracy - self.control_accuracy

    def top_neurons(self, k: int = 10, label: str | None = None) -> pd.DataFrame:
        """The `k` (an int >= 1) most important neurons overall, or for one `label` (a label name, or its index in
        ``meta.label_names``; by ``|weight|``, with the signed weight).

        Args:
            k (`int`, *optional*, defaults to 10): how many neurons from the top, at least 1.
            label (`str` or `int`, *optional*): a label name or index; defaults to the overall ranking.

        Returns:
            `pd.DataFrame`: `k` rows (fewer when there are fewer neurons), the columns of `ranking` overall;
            ``class_rank``, ``layer``, ``neuron``, ``weight`` (the probe's signed weight) for a `label`.

        Raises:
            ConfigurationError: `k` not an int >= 1, or an unknown label name, an index out of range, or a label
                without a training word.

        Example:
            ```python
            >>> result.top_neurons(5, label="NOUN")
               class_rank  layer  neuron    weight
            0           0      3     811  0.412...
            ```
        """
        k = check_count("k", k, note="how many neurons from the top")  # pandas' head(-3): all but the last 3
        if label is None:
            return self.ranking.head(k).reset_index(drop=True)
        columns, weights = self.probe.class_ranking(label)
        frame = _neurons_of(columns[:k], self.meta.layers, self.meta.width)
        frame.insert(0, "class_rank", np.arange(len(frame)))
        frame["weight"] = weights[:k]
        frame.attrs[RANKED_MODULES] = self.ranked_modules()
        return frame

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a dict."""
        return {"name": self.meta.name, "model": self.meta.model_id, "property": self.meta.property,
                "site": self.meta.site, "layers": list(self.meta.layers), "labels": len(self.meta.label_names),
                "train_words": self.meta.num_train, "test_words": self.meta.num_test, "accuracy": self.accuracy,
                "train_accuracy": self.train_accuracy, "majority_baseline": self.majority_baseline,
                "control_accuracy": self.control_accuracy, "selectivity": self.selectivity,
                "minimal_size": self.minimal_size, "num_neurons": len(self.meta.layers) * self.meta.width}

    def __repr__(self) -> str:
        s = self.summary()
        extra = "" if s["selectivity"] is None else f", selectivity={s['selectivity']:.3f}"
        return (f"ProbingResult(name={s['name']!r}, property={s['property']!r}, layers={s['layers']}, "
                f"accuracy={s['accuracy']:.3f}, majority={s['majority_baseline']:.3f}{extra}, "
                f"minimal_size={s['minimal_size']})")

    # ----- persistence (save_pretrained / from_pretrained / push_to_hub: hf_txray.artifact.Artifact) ------------
    # The dataset layout: the probe_rankings config (what a results repo holds) and a card, plus the exact state
    # under probe/ (probe weights as safetensors, the tables as parquet, meta and scores as JSON) for from_pretrained.
    @classmethod
    def check_replaceable(cls, folder: str | Path, *, what: str = "save_pretrained", cli_flag: str | None = None
                          ) -> None:
        """Refuse a `folder` into which other runs exported their rows
        (:func:`~hf_txray.probing.layout.refuse_exported_rows`)."""
        refuse_exported_rows(folder, PROBE_CONFIG, what, cli_flag)

    def _save_pretrained(self, folder: Path, repo_id: str | None = None, revision: str | None = None) -> None:
        from safetensors.numpy import save_file

        write_probing_folder(folder, probe_table(self), None, repo_id, revision)
        state = folder / STATE_DIR
        state.mkdir()
        scores = {k: getattr(self, k) for k in ("accuracy", "train_accuracy", "majority_baseline", "control_accuracy",
                                                 "minimal_size")}
        write_json(state / "result.json", {"meta": dataclasses.asdict(self.meta), "scores": scores,
                                           "probe": {"config": dataclasses.asdict(self.probe.config),
                                                     "losses": self.probe.losses}})
        p = self.probe
        trained = {} if self.train_sentences is None else {"train_sentences": self.train_sentences}
        save_file({"weight": p.weight, "bias": p.bias, "mean": p.mean, "scale": p.scale, "columns": p.columns,
                   **trained}, str(state / "probe.safetensors"))
        for name in ("per_class", "ranking", "minimal", "subsets"):
            getattr(self, name).to_parquet(arrow_path(state / f"{name}.parquet"), index=False)

    @classmethod
    def _from_pretrained(cls, folder: Path) -> "ProbingResult":
        from safetensors.numpy import load_file

        state = folder / STATE_DIR
        header = read_json(state / "result.json")
        meta = ProbingMeta.from_dict(header["meta"])
        arrays = load_file(str(state / "probe.safetensors"))
        probe = LinearProbe(arrays["weight"], arrays["bias"], arrays["mean"], arrays["scale"], arrays["columns"],
                            list(meta.label_names), ProbeConfig(**header["probe"]["config"]),
                            list(header["probe"]["losses"]), num_inputs=len(meta.layers) * meta.width)
        tables = {name: pd.read_parquet(arrow_path(state / f"{name}.parquet"))
                  for name in ("per_class", "ranking", "minimal", "subsets")}
        s = header["scores"]
        return cls(meta, probe, s["accuracy"], s["train_accuracy"], s["majority_baseline"], s["control_accuracy"],
                   tables["per_class"], tables["ranking"], tables["minimal"], s["minimal_size"], tables["subsets"],
                   train_sentences=arrays.get("train_sentences"))  # absent from results saved before it was recorded


def _neurons_of(columns: np.ndarray, layers: Sequence[int], width: int) -> pd.DataFrame:
    position, neuron = np.divmod(np.asarray(columns, dtype=np.int64), width)
    return pd.DataFrame({"layer": np.asarray(layers, np.int64)[position], "neuron": neuron})


def ranking_table(probe: LinearProbe, layers: Sequence[int], width: int) -> pd.DataFrame:
    """Every neuron the probe reads, most important first (see :meth:`LinearProbe.neuron_ranking`)."""
    columns, score = probe.neuron_ranking()
    position = np.searchsorted(probe.columns, columns) if np.all(np.diff(probe.columns) > 0) else \
        np.array([int(np.nonzero(probe.columns == c)[0][0]) for c in columns])
    weights = probe.weight[:, position]
    top = np.abs(weights).argmax(axis=0)
    frame = _neurons_of(columns, layers, width)
    frame.insert(0, "rank", np.arange(len(frame), dtype=np.int64))
    frame["column"] = columns
    frame["score"] = score
    frame["weight_norm"] = np.sqrt((weights.astype(np.float64) ** 2).sum(axis=0))
    frame["top_label"] = [probe.label_names[i] for i in top]
    frame["top_weight"] = weights[top, np.arange(len(top))].astype(np.float64)
    return frame


def _check_extracted_as_asked(model: Any, acts: Activations, layers: Any, site: str | None,
                              aggregation: str | None) -> None:
    """Refuse `layers`, `site` or `aggregation` other than those `acts` were extracted with: the probe reads the
    activations as they are, so they would be ignored (helper 173: layers=[1] probed layers [0, 1], silently).
    Negative layers count from the model's last block, as extraction counted them."""
    parsed = parse_layers(layers)
    if parsed != "all" and any(layer < 0 for layer in parsed) and model is not None:
        from ..sites import find_sites

        parsed = [s.layer for s in find_sites(model, acts.site, acts.module_pattern, acts.stack, layers)]
    asked = {"layers": None if parsed == "all" else sorted(parsed), "site": site, "aggregation": aggregation}
    held = {"layers": sorted(acts.layers), "site": acts.site, "aggregation": acts.aggregation}
    for name, value in asked.items():
        if value is not None and value != held[name]:
            raise ConfigurationError(
                f"{name}={value!r}, but these activations were extracted with {name}={held[name]!r}, and a probe "
                f"reads them as they are: extract them with {name}={value!r} (extract_activations), or leave {name} "
                "unset.")


def probe_neurons(
    model: Any,
    data: Any,
    property: str = "pos",
    *,
    tokenizer: Any = None,
    layers: str | int | Sequence[int] = "all",
    site: str | None = None,
    aggregation: str | None = None,
    stack: str | None = None,
    module_pattern: str | None = None,
    max_sentences: int | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    config: ProbeConfig | None = None,
    control: bool = True,
    minimal: bool = True,
    target_share: float = DEFAULT_TARGET_SHARE,
    subset_size: int | None = None,
    subset_seeds: Sequence[int] = (0, 1, 2),
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | None = None,
    out_dir: str | Path | None = None,
    memmap_threshold: int | float = DEFAULT_MEMMAP_THRESHOLD,
    name: str | None = None,
    show_progress: bool = False,
    **probe_options: Any,
) -> ProbingResult:
    """Which neurons encode a linguistic property? Train an elastic-net probe on word activations and rank neurons.

    Steps: labelled words (:func:`~hf_txray.probing.load_labeled`) -> one activation vector per word at `site` and
    `layers` -> train/test split by sentence (no word of a training sentence is a test word) -> probe on all neurons
    (accuracy, per class) -> neuron ranking -> control task (selectivity) -> minimal top-k set reaching
    `target_share` of the accuracy -> top vs random vs bottom subsets of one size, retrained.

    The method is NeuroX's (Dalvi et al., 2019, "What Is One Grain of Sand in the Desert? Analyzing Individual Neurons
    in Deep NLP Models", AAAI; Dalvi et al., 2023, NeuroX library): an elastic-net linear probe whose weights rank the
    neurons, a minimal neuron set and top/random/bottom subsets; the control task and selectivity are Hewitt & Liang's
    (2019, "Designing and Interpreting Probes with Control Tasks", EMNLP).

    Args:
        model (`str`, `Path` or `PreTrainedModel`): the model (ignored when `data` is already `Activations`).
        data: a ``.conllu`` path (gold labels), texts/a dataset to tag with spaCy, a dataset with ``tokens`` and a
            `property` column, a `LabeledCorpus`, or precomputed `Activations`.
        property (`str`, *optional*, defaults to `"pos"`): ``pos``, ``dep``, ``ner``, ``xpos`` or a user column.
        tokenizer (*optional*): a fast tokenizer (loaded from the model when omitted, before the words are labelled:
            its special token strings are no part of a word, :func:`~hf_txray.probing.from_spacy`).
        layers, site, aggregation, stack, module_pattern, batch_size, max_length, device, out_dir, memmap_threshold:
            see :func:`~hf_txray.probing.extract_activations` (`site` defaults to ``"mlp"``, `aggregation` to
            ``"first"``; with `Activations` as `data`, `layers`, `site` and `aggregation` given must be theirs;
            ``stack="decoder"`` probes an encoder-decoder's decoder; the stack and the pattern are recorded in
            ``meta.stack`` / ``meta.module_pattern``, so :class:`~hf_txray.probing.ProbeMetric` re-reads the same
            modules).
        max_sentences (`int`, *optional*): use only the first sentences.
        test_size (`float`, *optional*, defaults to 0.2): share of sentences held out, repeated sentences on one
            side (:meth:`~hf_txray.probing.Activations.split`).
        seed (`int`, *optional*, defaults to 0): the split and the control labels; the probe's batch order is
            ``config.seed`` (``hf-txray probe --seed`` sets both).
        config (`ProbeConfig`, *optional*): probe hyperparameters; `probe_options` (``l1=..., epochs=...``) override
            single fields.
        control (`bool`, *optional*, defaults to `True`): run the control task (selectivity).
        minimal (`bool`, *optional*, defaults to `True`): search the minimal neuron set.
        target_share (`float`, *optional*, defaults to 0.9): the share of accuracy the minimal set must reach (with
            `minimal=False` another value is refused: no set is searched).
        subset_size (`int`, *optional*): size of the top/random/bottom subsets (default: the minimal set's size,
            else 1% of the neurons); 0 skips them; a negative or fractional size is refused.
        subset_seeds (`Sequence[int]`, *optional*, defaults to (0, 1, 2)): one random subset per seed (ints).
        name (`str`, *optional*): a name for the run (default ``"<property>"``), the key in exported tables.
        show_progress (`bool`, *optional*, defaults to `False`): a progress bar during extraction.
        probe_options (*optional*): single fields of :class:`~hf_txray.probing.ProbeConfig` (``l1=1e-5,
            epochs=20``) that override `config`'s.

    Returns:
        `ProbingResult`: accuracies are shares of test words in [0, 1]; ``ranking`` is a DataFrame of every neuron
        (``layer``, ``neuron``), most important first.

    Raises:
        ConfigurationError: an invalid option (`subset_size` negative or fractional, `subset_seeds` not ints or
            repeated, `test_size`/`seed`/`target_share` out of range, `target_share` changed with
            ``minimal=False``), options that contradict `Activations` given as `data` (`max_sentences`, `stack`,
            `module_pattern`, `layers`, `site`, `aggregation`), or data without a labelled word.
        DatasetError: every word of the data carries one label (nothing to separate).

    Example:
        ```python
        >>> result = hf_txray.probe_neurons(minilm, "en_ewt-ud-dev.conllu", "pos", layers=[2, 3], max_sentences=500)
        >>> result
        ProbingResult(name='upos', property='upos', layers=[2, 3], accuracy=0.927, majority=0.146, ...)
        >>> result.top_neurons(5, label="VERB")
        ```
    """
    from ..loading import check_fast_tokenizer, model_tokenizer

    config = (config or ProbeConfig()).with_options(**probe_options)
    # before any extraction or training: a subset_size of -3 skipped the subsets and 2.5 was cut to 2, silently, and a
    # seed of 0.5 failed in numpy once the probe, the control task and the minimal set had been computed
    subset_size = check_count("subset_size", subset_size, minimum=0, none="the default", note="0 skips the subsets")
    subset_seeds = subset_seeds.tolist() if isinstance(subset_seeds, np.ndarray) else subset_seeds
    if not isinstance(subset_seeds, (list, tuple, range)) or not all(is_int(s) for s in subset_seeds):
        raise ConfigurationError(f"subset_seeds must be a sequence of ints (one random subset each), e.g. [0, 1, 2]; "
                                 f"got {subset_seeds!r}.")
    subset_seeds = [int(s) for s in subset_seeds]  # a 0-d tensor is one int too, but no seed numpy takes
    refuse_repeats("subset_seeds", "seed", subset_seeds)  # (0, 0): one random subset read as two
    # helper 272: test_size=1.5, seed=0.5 and target_share=2 were refused (or failed with a TypeError) only after
    # every sentence had been tagged and run through the model
    seed = check_split(test_size, seed)
    control, minimal = check_switch("control", control), check_switch("minimal", minimal)  # "no" ran them (truthy)
    if minimal:
        check_share(target_share, "target_share")
    elif target_share != DEFAULT_TARGET_SHARE:  # the share of the set not searched: ignored, and recorded as used
        raise ConfigurationError(
            f"target_share={target_share!r} (--target-share) has no effect with minimal=False (--no-minimal): it is "
            f"the share of accuracy the minimal neuron set must reach, and no set is searched. Leave it at its default "
            f"({DEFAULT_TARGET_SHARE}), or search the set.")
    if isinstance(data, Activations):
        if max_sentences is not None:
            raise ConfigurationError(f"max_sentences={max_sentences} cuts a corpus before extraction, but data is "
                                     "Activations already extracted: extract from the first sentences "
                                     "(corpus.select(n)), or leave max_sentences unset.")
        if stack is not None and stack != data.stack:
            raise ConfigurationError(f"stack={stack!r}, but these activations were read from the "
                                     f"{data.stack or 'only'} stack: extract them with that stack, or leave stack "
                                     "unset.")
        if module_pattern is not None and module_pattern != data.module_pattern:
            raise ConfigurationError(f"module_pattern={module_pattern!r}, but these activations were read from "
                                     f"{data.module_pattern or 'the automatic ' + data.site + ' site'!r}: extract "
                                     "them with that pattern, or leave module_pattern unset.")
        _check_extracted_as_asked(model, data, layers, site, aggregation)
        check_labelled_property(data.property_name, property, "activations")
        acts, source, num_sentences = data, "activations", int(len(np.unique(data.sentence_ids)))
    else:
        if isinstance(data, LabeledCorpus):
            check_labelled_property(data.property_name, property, "corpus")
        # the tokenizer extract_activations reads the text with, before the words are labelled: its special token
        # strings (a chat template's <|im_start|>) are no part of a word (loaded from the model as it will be)
        tokenizer = model_tokenizer(model, tokenizer)
        if tokenizer is not None:  # a slow tokenizer was refused by extraction, after every sentence was tagged
            check_fast_tokenizer(tokenizer)
        corpus = load_labeled(data, property, max_sentences=max_sentences, tokenizer=tokenizer)
        if not isinstance(corpus, LabeledCorpus) or corpus.num_words == 0:
            raise ConfigurationError("The data holds no labelled word.")
        present = corpus.label_counts()
        if (present > 0).sum() < 2:  # before extraction; train_probe refuses it too
            raise DatasetError(f"Every word of the data carries the label {present.index[0]!r}: a probe needs at least "
                               "two classes to tell apart. Use a corpus whose words carry several labels.")
        check_can_split(corpus.num_sentences, text_hashes(corpus.texts))  # before extraction, not after it
        acts = extract_activations(model, corpus, tokenizer, layers=layers, site=site or "mlp",
                                   aggregation=aggregation or "first",
                                   stack=stack, module_pattern=module_pattern, batch_size=batch_size,
                                   max_length=max_length, device=device,
                                   out_dir=out_dir, memmap_threshold=memmap_threshold, show_progress=show_progress)
        source, num_sentences = corpus.source, corpus.num_sentences
    train, test = acts.split(test_size, seed)
    probe = train_probe(acts, rows=train, config=config)
    scores = probe.evaluate(acts, rows=test)
    train_accuracy = probe.evaluate(acts, rows=train).accuracy
    majority = int(np.bincount(acts.labels[train], minlength=len(acts.label_names)).argmax())
    majority_baseline = float((acts.labels[test] == majority).mean())
    if len(test) and (scores.accuracy - majority_baseline) * len(test) <= 1:  # at most one test word better
        warnings.warn(
            f"The probe's test accuracy {scores.accuracy:.3f} is no better than always predicting the most frequent "
            f"label {acts.label_names[majority]!r} ({majority_baseline:.3f} of the {len(test)} test words), so it "
            "says nothing about what the neurons encode (with imbalanced classes a high accuracy can be that label's "
            "share alone). Read result.per_class, balance the classes or give more words, and compare with "
            "result.majority_baseline.",
            UserWarning, stacklevel=2)
    control_accuracy = control_task_accuracy(acts, train, test, seed=seed, config=config) if control else None
    ranking = ranking_table(probe, acts.layers, acts.width)
    order = ranking["column"].to_numpy()
    minimal_size, minimal_table = None, pd.DataFrame({"num_neurons": [], "accuracy": [], "reached": []})
    if minimal:
        minimal_size, minimal_table = minimal_neuron_set(acts, train, test, order, scores.accuracy,
                                                         share=target_share, config=config)
    if subset_size is None:
        subset_size = minimal_size or max(1, math.ceil(0.01 * len(order)))
    elif int(subset_size) > len(order) // 2:
        warnings.warn(f"subset_size={subset_size} is more than half of the {len(order)} neurons, so the top and "
                      f"bottom subsets would overlap: {len(order) // 2} is used.", UserWarning, stacklevel=2)
    subset_size = min(int(subset_size), len(order) // 2)
    subsets = (subset_accuracies(acts, train, test, order, subset_size, seeds=subset_seeds, config=config)
               if subset_size > 0 else pd.DataFrame({"subset": [], "seed": [], "num_neurons": [], "accuracy": []}))
    meta = ProbingMeta(
        name=name or acts.property_name, model_id=acts.model_id, property=acts.property_name, site=acts.site,
        layers=list(acts.layers), width=acts.width, aggregation=acts.aggregation, label_names=list(acts.label_names),
        stack=acts.stack, module_pattern=acts.module_pattern, weights_sample_hash=acts.weights_sample_hash,
        weights_dtype=acts.weights_dtype, model_weights_sample_hash=acts.model_weights_sample_hash,
        tokenizer_vocab_hash=acts.tokenizer_vocab_hash, data_source=source, num_sentences=num_sentences, num_words=acts.num_words,
        num_train=len(train), num_test=len(test), num_skipped_words=acts.num_skipped_words, test_size=test_size,
        seed=seed, target_share=target_share, config=dataclasses.asdict(config),
    )
    return ProbingResult(meta, probe, scores.accuracy, train_accuracy, majority_baseline, control_accuracy,
                         scores.per_class, ranking, minimal_table, minimal_size, subsets, acts,
                         _train_sentences(acts, train))


def _train_sentences(acts: Activations, train: np.ndarray) -> np.ndarray | None:
    """The sorted distinct content hashes of the sentences whose words are the `train` rows (None when `acts` does
    not record its sentences' hashes)."""
    if acts.sentence_hashes is None:
        return None
    return np.unique(np.asarray(acts.sentence_hashes, np.uint64)[np.unique(acts.sentence_ids[train])])


__all__ = ["ProbingMeta", "ProbingResult", "probe_neurons", "ranking_table", "scores_of"]
