"""TX-Ray during training: `TXRayArguments`, `TXRayCallback` and `TXRayTrainer`.

The callback profiles the model being trained on a fixed probe corpus at train begin (stage ``step-0``), at every
TX-Ray checkpoint (every `steps` optimizer steps, or every epoch) and at train end, and after each profile compares
it with the first and with the previous one. Summary scalars go into the Trainer's logs (and so to ``report_to``);
profiles, reports, a timeline table and plots go under ``output_dir/txray/``.

Profiling reuses :class:`hf_txray.Profiler`: its hooks are attached only for the duration of a profile, the model
runs unwrapped, in eval mode and without gradients, and the corpus is sharded across processes and reduced exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState, TrainerControl, TrainerState

from .analyze import Profiler, ProfilerConfig
from .errors import ConfigurationError, DatasetError, ModelError, ProfileFormatError, TXRayError
from .features import BUILTIN_FEATURES
from .loading import check_fast_tokenizer, load_corpus, load_pinned_corpus, resolve_model_source
from .profile import Profile
from .report import TransferReport, compare
from .sites import SITES
from .version import __version__

logger = logging.getLogger("hf_txray")

TXRAY_DIR = "txray"
STRATEGIES = ("no", "steps", "epoch")
REFERENCES = ("first", "previous")
TEXT_FEATURES = ("token", "word")  # everything else is tag-like and gets mass-share columns and plots
MAX_PLOTTED_TAGS = 8


def parse_layers(value: Any) -> str | list[int]:
    """Normalise a layer selection: ``"all"``, an int, a list of ints, or a string such as ``"0,3,-1"``.

    Args:
        value (`str`, `int` or `list[int]`): the selection as given in Python or on the command line.

    Returns:
        ``"all"`` or a list of ints (negative indices count from the last layer).

    Example:
        ```python
        >>> parse_layers("0, 2,-1")
        [0, 2, -1]
        ```
    """
    if isinstance(value, str):
        text = value.strip()
        if text == "all":
            return "all"
        try:
            return [int(part) for part in text.split(",") if part.strip()] or _raise_empty_layers()
        except ValueError:
            raise ConfigurationError(
                f"txray_layers must be 'all' or comma-separated block indices such as '0,3,-1', got {value!r}."
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise ConfigurationError(f"layers must be 'all', an int or a list of ints, got {value!r}.")
    layers = [value] if isinstance(value, int) else list(value)
    if not layers or not all(isinstance(v, int) and not isinstance(v, bool) for v in layers):
        raise ConfigurationError(f"layers must be 'all', an int or a non-empty list of ints, got {value!r}.")
    return layers


def _raise_empty_layers() -> list[int]:
    raise ConfigurationError("txray_layers is empty: pass 'all' or at least one block index.")


def _check_options(strategy: str, steps: Any, max_samples: Any, site: str, prefix: str) -> None:
    """Validation shared by the arguments (`prefix` "txray_") and the callback (no prefix): names match the caller's."""
    if strategy not in STRATEGIES:
        raise ConfigurationError(f"{prefix}strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigurationError(f"{prefix}steps must be an int >= 1, got {steps!r}.")
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 1):
        raise ConfigurationError(f"{prefix}max_samples must be None or an int >= 1, got {max_samples!r}.")
    if site not in SITES:
        raise ConfigurationError(f"{prefix}site must be one of {', '.join(SITES)}, got {site!r}.")


@dataclass
class TXRayArguments(TrainingArguments):
    """`TrainingArguments` plus the TX-Ray options of :class:`TXRayTrainer`; every field is also a CLI flag.

    Args:
        txray_strategy (`str`, *optional*, defaults to `"steps"`): when to take a profile during training:
            ``"no"`` (never: TX-Ray is off), ``"steps"`` (every `txray_steps` optimizer steps) or ``"epoch"``. With
            ``"steps"`` and ``"epoch"`` a profile is also taken at train begin and at train end.
        txray_steps (`int`, *optional*, defaults to 500): optimizer steps between profiles for ``"steps"``.
        txray_layers (`str`, *optional*, defaults to `"all"`): ``"all"`` or comma-separated block indices.
        txray_site (`str`, *optional*, defaults to `"mlp"`): ``"mlp"`` (MLP intermediate neurons) or ``"residual"``.
        txray_features (`list[str]`, *optional*, defaults to `["token", "pos"]`): built-in feature types.
        txray_top_k (`int`, *optional*, defaults to 1): neurons credited per position and layer.
        txray_max_samples (`int`, *optional*, defaults to 512): probe texts used (the first ones); None for all.
        txray_text_column (`str`, *optional*): text column of the probe corpus (auto-detected when omitted).
        txray_on_train_begin (`bool`, *optional*, defaults to `True`): profile the starting point as ``step-0``.
        txray_batch_size (`int`, *optional*, defaults to 32): probe texts per forward pass.
        txray_max_length (`int`, *optional*): probe texts are truncated to this many tokens.
        txray_skip_first_positions (`str`, *optional*, defaults to `"auto"`): credit nothing at the first N
            positions of each probe text; ``"auto"``: 1 for decoder-only LMs, 0 for encoders (see :func:`analyze`).

    Example:
        ```python
        >>> from transformers import HfArgumentParser
        >>> (args,) = HfArgumentParser(TXRayArguments).parse_args_into_dataclasses(
        ...     ["--output_dir", "out", "--txray_steps", "50", "--txray_layers", "0,-1"])
        ```
    """

    txray_strategy: str = field(
        default="steps", metadata={"help": "When TX-Ray profiles the model: 'no', 'steps' or 'epoch'.",
                                   "choices": list(STRATEGIES)})
    txray_steps: int = field(
        default=500, metadata={"help": "Optimizer steps between profiles when txray_strategy='steps'."})
    txray_layers: str = field(
        default="all", metadata={"help": "'all' or comma-separated block indices, e.g. '0,3,-1'."})
    txray_site: str = field(
        default="mlp", metadata={"help": "Neuron site: 'mlp' (MLP intermediate) or 'residual' (block output).",
                                 "choices": list(SITES)})
    txray_features: list[str] = field(
        default_factory=lambda: ["token", "pos"],
        metadata={"help": f"Feature types credited to the winning neurons, any of {', '.join(BUILTIN_FEATURES)}."})
    txray_top_k: int = field(
        default=1, metadata={"help": "Neurons credited per position and layer (the paper uses 1)."})
    txray_max_samples: int | None = field(
        default=512, metadata={"help": "Profile only the first N probe texts (None: all of them)."})
    txray_text_column: str | None = field(
        default=None, metadata={"help": "Text column of the probe corpus; auto-detected when omitted."})
    txray_on_train_begin: bool = field(
        default=True, metadata={"help": "Profile the starting point (stage 'step-0') when training begins."})
    txray_batch_size: int = field(default=32, metadata={"help": "Probe texts per forward pass while profiling."})
    txray_max_length: int | None = field(
        default=None, metadata={"help": "Truncate probe texts to this many tokens (default: the model's limit)."})
    txray_stack: str | None = field(
        default=None, metadata={"help": "Encoder-decoder models: profile the 'encoder' (default) or the 'decoder' "
                                        "(teacher forcing on the probe text)."})
    txray_skip_first_positions: str = field(
        default="auto", metadata={"help": "Credit nothing at the first N positions of each probe text; 'auto': 1 for "
                                          "decoder-only LMs (massive first-token activations), 0 for encoders."})

    def __post_init__(self):
        _check_options(self.txray_strategy, self.txray_steps, self.txray_max_samples, self.txray_site, "txray_")
        parse_layers(self.txray_layers)
        unknown = [f for f in self.txray_features if f not in BUILTIN_FEATURES]
        if unknown or not self.txray_features:
            raise ConfigurationError(
                f"txray_features must list built-in features ({', '.join(BUILTIN_FEATURES)}), got "
                f"{self.txray_features!r}. "
                "User-defined features are passed to TXRayCallback(features=...) directly."
            )
        self._profiler_config().validate()  # top_k, batch size, max_length
        super().__post_init__()

    def _profiler_config(self) -> ProfilerConfig:
        return ProfilerConfig(layers=parse_layers(self.txray_layers), site=self.txray_site,
                              features=tuple(self.txray_features), top_k=self.txray_top_k,
                              max_length=self.txray_max_length, batch_size=self.txray_batch_size,
                              stack=self.txray_stack, skip_first_positions=_skip(self.txray_skip_first_positions))


def _skip(value: Any) -> int | str:
    """'auto', or an int given as int or digit string (HfArgumentParser passes strings)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


class TXRayCallback(TrainerCallback, ExportableState):
    """Takes TX-Ray profiles of the model while a `Trainer` trains it, and compares them.

    A profile is taken at train begin (stage ``step-0``), at every TX-Ray checkpoint and at train end; each is
    compared with the first and with the previous profile. Every process must run the callback (profiling is
    sharded and gathered); files are written only where ``args.should_save``. Its timeline is saved in each
    checkpoint's ``trainer_state.json`` (`ExportableState`), so resuming continues it without losing or repeating a
    profile. Leave ``restore_callback_states_from_checkpoint`` off (the default): the callback restores itself.
    Every profile stays in memory (:attr:`profiles`): with many snapshots, keep the probe corpus modest.

    Args:
        probe_dataset: the probe corpus, anything :func:`hf_txray.analyze` accepts (``Dataset``, path, list of str).
        tokenizer (*optional*): a fast tokenizer; defaults to the Trainer's ``processing_class``.
        trainer (`Trainer`, *optional*): when given, scalars are logged with ``trainer.log`` and so reach
            ``report_to``; otherwise they are only appended to ``state.log_history`` and the timeline.
        strategy (`str`, *optional*, defaults to `"steps"`): ``"no"``, ``"steps"`` or ``"epoch"``.
        steps (`int`, *optional*, defaults to 500): optimizer steps between profiles for ``"steps"``.
        profile_on_train_begin (`bool`, *optional*, defaults to `True`): profile the starting point as ``step-0``.
        text_column, layers, site, features, top_k, batch_size, max_length, stack, skip_first_positions: as in
            :func:`hf_txray.analyze`.
        max_samples (`int`, *optional*, defaults to 512): profile only the first `max_samples` probe texts.
        dataset_id (`str`, *optional*): a name for the probe corpus, recorded in the profiles.

    Example:
        ```python
        >>> trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
        >>> trainer.add_callback(TXRayCallback(probe_texts, trainer=trainer, steps=100, features=("token", "pos")))
        >>> trainer.train()
        ```
    """

    def __init__(self, probe_dataset: Any = None, *, tokenizer: Any = None, trainer: Trainer | None = None,
                 strategy: str = "steps", steps: int = 500, profile_on_train_begin: bool = True,
                 text_column: str | None = None, layers: Any = "all", site: str = "mlp",
                 features: Sequence[Any] = ("token", "pos"), top_k: int = 1, max_samples: int | None = 512,
                 batch_size: int = 32, max_length: int | None = None, dataset_id: str | None = None,
                 stack: str | None = None, skip_first_positions: int | str = "auto"):
        if probe_dataset is None:
            raise ConfigurationError(
                "TXRayCallback needs a probe corpus: TXRayCallback(probe_dataset=texts_or_dataset, ...). (Raised "
                "while resuming? Leave restore_callback_states_from_checkpoint=False: the callback restores itself.)"
            )
        _check_options(strategy, steps, max_samples, site, "")
        self.config = ProfilerConfig(layers=parse_layers(layers), site=site, features=tuple(features), top_k=top_k,
                                     max_length=max_length, batch_size=batch_size, stack=stack,
                                     skip_first_positions=_skip(skip_first_positions))
        self.config.validate()
        self.strategy, self.steps, self.profile_on_train_begin = strategy, steps, profile_on_train_begin
        self.tokenizer, self.trainer = tokenizer, trainer
        self.corpus, self.text_column, loaded_id, self.dataset_source = load_pinned_corpus(
            probe_dataset, text_column=text_column, num_samples=max_samples)
        self.dataset_id = dataset_id or loaded_id
        self.timeline: list[dict[str, Any]] = []
        self.profiles: dict[str, Profile] = {}
        self.reports: dict[str, TransferReport] = {}
        self.files_written = 0  # how many outputs this process wrote (0 where not args.should_save)
        self._snapshot_seconds = 0.0
        self._plot_seconds = 0.0
        self._plots_stale = False
        self._profiler: Profiler | None = None
        self._model_source = None  # the model as loaded (hf_txray.provenance.ModelSource), at the first snapshot

    @classmethod
    def from_args(cls, args: TXRayArguments, probe_dataset: Any, **kwargs: Any) -> "TXRayCallback":
        """Build the callback from the ``txray_*`` fields of :class:`TXRayArguments` (kwargs override them)."""
        options = dict(strategy=args.txray_strategy, steps=args.txray_steps, layers=args.txray_layers,
                       site=args.txray_site, features=tuple(args.txray_features), top_k=args.txray_top_k,
                       max_samples=args.txray_max_samples, text_column=args.txray_text_column,
                       profile_on_train_begin=args.txray_on_train_begin, batch_size=args.txray_batch_size,
                       max_length=args.txray_max_length, stack=args.txray_stack,
                       skip_first_positions=args.txray_skip_first_positions)
        return cls(probe_dataset, **{**options, **kwargs})

    # ----- ExportableState --------------------------------------------------------------------------------------
    def state(self) -> dict:
        # Only the timeline: the probe corpus cannot live in trainer_state.json, so "args" stay empty and
        # on_train_begin reads the timeline back from state.stateful_callbacks instead of being rebuilt.
        return {"args": {}, "attributes": {"timeline": [dict(row) for row in self.timeline]}}

    # ----- set-up -----------------------------------------------------------------------------------------------
    def setup(self, model: Any, tokenizer: Any = None) -> Profiler:
        """Bind the profiler to `model`; raises :class:`ConfigurationError`/:class:`ModelError` on bad options.

        :class:`TXRayTrainer` calls this at construction so that a bad configuration fails before training.
        """
        model = _unwrap(model)
        if self._profiler is not None and self._profiler.model is model:
            return self._profiler
        tokenizer = _text_tokenizer(self.tokenizer if self.tokenizer is not None else tokenizer)
        self._profiler = Profiler(model, tokenizer, self.config, dataset_source=self.dataset_source)
        self._model_source = None  # a new model: described again at its first snapshot
        return self._profiler

    @property
    def enabled(self) -> bool:
        return self.strategy != "no"

    @property
    def overhead_seconds(self) -> float:
        """Wall time this callback spent in training so far: profiling, comparing, writing files, plots, logs."""
        return self._snapshot_seconds + self._plot_seconds

    # ----- events -----------------------------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not self.enabled:
            return
        self.setup(kwargs["model"], kwargs.get("processing_class"))
        if self.trainer is None and state.is_world_process_zero:
            logger.warning("TXRayCallback has no `trainer=`: TX-Ray scalars go to trainer.state.log_history and "
                           "txray/timeline.csv, but not to the report_to integrations.")
        self._restore(args, state)
        if args.should_save:
            self._prune_outputs(args)
            self._write_timeline(args)
        if self.profile_on_train_begin and not self.timeline:  # step-0, or a resume whose checkpoint had none
            self._snapshot(args, state, control)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # DefaultFlowCallback runs earlier and sets should_training_stop on the last step: profile it here, before
        # the checkpoint of this step is saved, so the checkpoint's state includes it.
        due = self.strategy == "steps" and state.global_step % self.steps == 0
        if self.enabled and (due or control.should_training_stop):
            self._snapshot(args, state, control)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.strategy == "epoch":
            self._snapshot(args, state, control)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.enabled and args.should_save:
            self._write_plots(args)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # A new step here only when training stopped outside on_step_end (e.g. early stopping on evaluate).
        if self.enabled:
            self._snapshot(args, state, control)
            if args.should_save:
                self._write_plots(args)

    # ----- one snapshot -----------------------------------------------------------------------------------------
    def _snapshot(self, args: TrainingArguments, state: TrainerState, control: TrainerControl) -> None:
        step = int(state.global_step)
        if any(row["step"] == step for row in self.timeline):
            return  # e.g. the last step is also a TX-Ray step: one profile per step
        stage = f"step-{step}"
        started = time.perf_counter()
        self._profiler.device = _device_of(self._profiler.model)  # the Trainer may have moved the model
        if self._model_source is None:
            self._model_source = resolve_model_source(self._profiler.model)
        # Weights past step 0 exist only in memory: recorded as such (reproduce refuses until pin_model).
        self._profiler.model_source = dataclasses.replace(self._model_source, training_step=step)
        profile = self._profiler.run(self.corpus, text_column=self.text_column, stage=stage,
                                     dataset_id=self.dataset_id, show_progress=False)
        profile_seconds = time.perf_counter() - started
        references = self._references()
        reports = {ref: self._report(source, profile) for ref, source in references.items()}
        row = _timeline_row(stage, step, state.epoch, profile, reports)
        row["profile_seconds"] = round(profile_seconds, 4)
        row["compare_seconds"] = round(time.perf_counter() - started - profile_seconds, 4)
        self.profiles[stage] = profile
        self.timeline.append(row)
        if args.should_save:
            self._write(args, profile, reports)
        self._log(state, _log_scalars(row))
        elapsed = time.perf_counter() - started
        self._snapshot_seconds += elapsed
        logger.info("TX-Ray profile %s: %.2fs (profiling %.2fs).", stage, elapsed, profile_seconds)
        if args.should_save and (control.should_save or control.should_training_stop):
            self._write_plots(args)  # drawing costs ~1s: only where a checkpoint (maybe pushed) follows

    def _references(self) -> dict[str, Profile]:
        if not self.timeline:
            return {}
        first, previous = self.timeline[0]["stage"], self.timeline[-1]["stage"]
        return {"first": self.profiles[first], "previous": self.profiles[previous]}

    def _report(self, source: Profile, profile: Profile) -> TransferReport:
        name = f"{source.stage}->{profile.stage}"
        if name not in self.reports:
            self.reports[name] = compare(source, profile)
        return self.reports[name]

    def _log(self, state: TrainerState, scalars: dict[str, float]) -> None:
        if not scalars:
            return
        if self.trainer is not None:
            self.trainer.log(scalars)  # adds epoch/step, appends to log_history and calls every on_log
        else:
            state.log_history.append({**scalars, "epoch": state.epoch, "step": state.global_step})

    # ----- resume -----------------------------------------------------------------------------------------------
    def _restore(self, args: TrainingArguments, state: TrainerState) -> None:
        """Start a new timeline, or on resume take the checkpoint's timeline and reload its profiles from disk."""
        self.timeline, self.profiles, self.reports = [], {}, {}
        if state.global_step == 0:
            return
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        saved = saved[0] if isinstance(saved, list) else saved
        rows = [r for r in (saved or {}).get("attributes", {}).get("timeline", []) if r["step"] <= state.global_step]
        root = Path(args.output_dir) / TXRAY_DIR
        for row in rows:
            try:
                self.profiles[row["stage"]] = Profile.from_pretrained(root / "profiles" / row["stage"])
            except ProfileFormatError as err:
                raise ProfileFormatError(
                    f"Resuming needs the TX-Ray profiles taken before the checkpoint, under {root / 'profiles'}: {err}"
                ) from err
        self.timeline = rows
        for row in rows:
            for ref in REFERENCES:
                source = row.get(f"vs_{ref}/stage")
                if source:
                    self._load_report(root, self.profiles[source], self.profiles[row["stage"]])
        logger.info("TX-Ray: resumed a timeline of %d profiles at step %d.", len(rows), state.global_step)

    def _load_report(self, root: Path, source: Profile, profile: Profile) -> None:
        folder = root / "reports" / f"{source.stage}__{profile.stage}"
        try:
            self.reports[f"{source.stage}->{profile.stage}"] = TransferReport.from_pretrained(folder)
        except ProfileFormatError:
            self._report(source, profile)  # missing on disk (another node, or deleted): recompute

    # ----- files ------------------------------------------------------------------------------------------------
    def _write(self, args: TrainingArguments, profile: Profile, reports: dict[str, TransferReport]) -> None:
        root = Path(args.output_dir) / TXRAY_DIR
        profile.save_pretrained(root / "profiles" / profile.stage)
        for report in {r.name: r for r in reports.values()}.values():
            report.save_pretrained(root / "reports" / f"{report.meta.stage_a}__{report.meta.stage_b}")
        self.files_written += 1 + len(reports)
        self._write_timeline(args)

    def _write_timeline(self, args: TrainingArguments) -> None:
        root = Path(args.output_dir) / TXRAY_DIR
        root.mkdir(parents=True, exist_ok=True)
        frame = self.timeline_frame()
        _replace_file(root / "timeline.csv", lambda tmp: frame.to_csv(tmp, index=False))
        _replace_file(root / "timeline.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
        self.files_written += 1
        self._plots_stale = True

    def _write_plots(self, args: TrainingArguments) -> None:
        if self._plots_stale and self.timeline:
            started = time.perf_counter()
            latest = self.profiles[self.timeline[-1]["stage"]]
            write_plots(self.timeline_frame(), latest, Path(args.output_dir) / TXRAY_DIR / "plots")
            self.files_written += 1
            self._plot_seconds += time.perf_counter() - started
        self._plots_stale = False

    def _prune_outputs(self, args: TrainingArguments) -> None:
        """Remove profiles/reports that are not in the timeline (taken after the resumed checkpoint, or by an
        earlier run in the same output_dir), so the folder always matches the timeline."""
        root = Path(args.output_dir) / TXRAY_DIR
        stages = {row["stage"] for row in self.timeline}
        for folder in sorted((root / "profiles").glob("step-*")):
            if folder.name not in stages:
                shutil.rmtree(folder, ignore_errors=True)
        for folder in sorted((root / "reports").glob("step-*__step-*")):
            if not set(folder.name.split("__")) <= stages:
                shutil.rmtree(folder, ignore_errors=True)

    def timeline_frame(self) -> pd.DataFrame:
        """The timeline as a table: one row per profile (stage, step, epoch, summary scalars, mass shares)."""
        return pd.DataFrame(self.timeline, columns=None if self.timeline else ["stage", "step", "epoch"])


def _timeline_row(stage: str, step: int, epoch: float | None, profile: Profile,
                  reports: dict[str, TransferReport]) -> dict[str, Any]:
    """Everything the timeline records about one profile, JSON-safe (NaN -> None) for trainer_state.json."""
    row: dict[str, Any] = {"stage": stage, "step": step, "epoch": None if epoch is None else float(epoch),
                           "active_share": float((profile.neuron_count > 0).mean())}
    for ref, report in reports.items():
        summary = report.summary()
        row[f"vs_{ref}/stage"] = report.meta.stage_a
        row[f"vs_{ref}/share_lost"] = summary["share_lost"]
        row[f"vs_{ref}/share_gained"] = summary["share_gained"]
        for ft in report.meta.feature_types:
            row[f"vs_{ref}/mean_hellinger_{ft}"] = summary[f"mean_hellinger_{ft}"]
            row[f"vs_{ref}/mean_length_shift_{ft}"] = summary[f"mean_length_shift_{ft}"]
        for layer_row in report.layers.to_dict("records"):
            for ft in report.meta.feature_types:
                row[f"vs_{ref}/layer_{layer_row['layer']}/mean_hellinger_{ft}"] = layer_row[f"mean_hellinger_{ft}"]
    for ft in profile.feature_types:
        if ft not in TEXT_FEATURES:
            for tag, share in profile.mass_share(ft).items():
                row[f"mass_share_{ft}/{tag}"] = float(share)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _log_scalars(row: dict[str, Any]) -> dict[str, float]:
    """The scalars sent to the Trainer's log: comparisons and active share (not the mass shares or timings)."""
    keys = [k for k in row if k.startswith("vs_") and not k.endswith("/stage")]
    scalars = {f"txray/{k}": float(row[k]) for k in keys if row[k] is not None}
    if scalars:
        scalars["txray/active_share"] = row["active_share"]
    return scalars


# ----- plots (matplotlib's Agg canvas directly: no pyplot, no global backend switch) -----------------------------
def write_plots(timeline: pd.DataFrame, latest: Profile, folder: str | Path) -> list[Path]:
    """Draw the timeline: mean Hellinger per layer over steps, and tag mass share over steps vs corpus frequency.

    Args:
        timeline (`pd.DataFrame`): :meth:`TXRayCallback.timeline_frame`.
        latest (`Profile`): the last profile, for the corpus frequency of each tag.
        folder (`str` or `Path`): where the PNG files go.

    Returns:
        The paths written: ``hellinger_by_layer.png`` (once two profiles exist) and ``mass_share_<feature>.png``.

    Example:
        ```python
        >>> write_plots(callback.timeline_frame(), callback.profiles["step-100"], "out/txray/plots")
        ```
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if any(c.startswith("vs_first/layer_") for c in timeline.columns):
        written.append(_plot_hellinger(timeline, latest, folder / "hellinger_by_layer.png"))
    for ft in latest.feature_types:
        if ft not in TEXT_FEATURES:
            written.append(_plot_mass_share(timeline, latest, ft, folder / f"mass_share_{ft}.png"))
    return written


def _new_figure(rows: int, cols: int, width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, cols, squeeze=False)


def _plot_hellinger(timeline: pd.DataFrame, latest: Profile, path: Path) -> Path:
    figure, axes = _new_figure(len(latest.feature_types), len(REFERENCES), 5.0, 3.2)
    for i, ft in enumerate(latest.feature_types):
        for j, ref in enumerate(REFERENCES):
            ax = axes[i][j]
            for layer in latest.layers:
                column = f"vs_{ref}/layer_{layer}/mean_hellinger_{ft}"
                if column in timeline:
                    ax.plot(timeline["step"], pd.to_numeric(timeline[column]), marker="o", ms=3, label=f"layer {layer}")
            ax.set(title=f"{ft}: vs {ref} profile", xlabel="step", ylabel="mean Hellinger")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.suptitle("TX-Ray: mean Hellinger distance of shared neurons, per layer")
    figure.savefig(path, dpi=100)
    return path


def _plot_mass_share(timeline: pd.DataFrame, latest: Profile, ft: str, path: Path) -> Path:
    figure, axes = _new_figure(1, 1, 8.0, 4.0)
    ax = axes[0][0]
    frequency = latest.feature_frequency(ft).head(MAX_PLOTTED_TAGS)
    colors = [f"C{i}" for i in range(len(frequency))]
    for (tag, corpus_share), color in zip(frequency.items(), colors):
        column = f"mass_share_{ft}/{tag}"
        values = pd.to_numeric(timeline[column]) if column in timeline else [0.0] * len(timeline)
        ax.plot(timeline["step"], values, marker="o", ms=3, color=color, label=str(tag))
        ax.axhline(corpus_share, color=color, linestyle="--", linewidth=0.8)
    ax.set(title=f"TX-Ray: {ft} mass share over training (dashed: corpus frequency)", xlabel="step",
           ylabel="share of credited mass")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.savefig(path, dpi=100)
    return path


# ----- the trainer ------------------------------------------------------------------------------------------------
class TXRayTrainer(Trainer):
    """A `transformers.Trainer` that records TX-Ray profiles and transfer reports while it trains.

    Everything else (arguments, callbacks, metrics, resume, ``push_to_hub``) is the `Trainer`'s. The TX-Ray options
    come from :class:`TXRayArguments`; outputs go under ``output_dir/txray/`` and into a "TX-Ray" model card section.

    Args:
        txray_dataset (*optional*): the probe corpus (anything :func:`hf_txray.analyze` accepts). Defaults to the
            text column of `eval_dataset`; a :class:`ConfigurationError` or :class:`DatasetError` is raised here,
            before training, when there is no probe text, or when a TX-Ray option does not fit the model.
        *args, **kwargs: the arguments of `transformers.Trainer`; `args` must be :class:`TXRayArguments`.

    Example:
        ```python
        >>> args = TXRayArguments(output_dir="out", num_train_epochs=1, txray_strategy="steps", txray_steps=50)
        >>> trainer = TXRayTrainer(model=model, args=args, train_dataset=train, eval_dataset=dev,
        ...                        processing_class=tokenizer, txray_dataset=probe_texts)
        >>> trainer.train()
        >>> trainer.txray_reports["step-0->step-150"].layers
        ```
    """

    def __init__(self, *args: Any, txray_dataset: Any = None, **kwargs: Any):
        training_args = args[1] if len(args) > 1 else kwargs.get("args")
        if training_args is None:
            kwargs["args"] = training_args = TXRayArguments(output_dir="trainer_output")
        if not isinstance(training_args, TXRayArguments):
            raise ConfigurationError(
                f"TXRayTrainer needs TXRayArguments, got {type(training_args).__name__}: replace TrainingArguments "
                "with hf_txray.TXRayArguments (same fields plus the txray_* options)."
            )
        super().__init__(*args, **kwargs)
        self.txray_callback: TXRayCallback | None = None
        if self.args.txray_strategy == "no":
            return
        probe, dataset_id = _probe_corpus(txray_dataset, self.eval_dataset, self.args.txray_text_column)
        self.txray_callback = TXRayCallback.from_args(self.args, probe, trainer=self, dataset_id=dataset_id)
        if self.model is not None:  # with model_init the model only exists at train(); checked there
            self.txray_callback.setup(self.model, self.processing_class)
        self.add_callback(self.txray_callback)

    @property
    def txray_profiles(self) -> dict[str, Profile]:
        """The profiles taken so far, by stage (``"step-0"``, ``"step-50"``...), in training order."""
        return dict(self.txray_callback.profiles) if self.txray_callback else {}

    @property
    def txray_reports(self) -> dict[str, TransferReport]:
        """The transfer reports computed so far, by name (``"step-0->step-50"``), in training order."""
        return dict(self.txray_callback.reports) if self.txray_callback else {}

    @property
    def txray_timeline(self) -> pd.DataFrame:
        """One row per profile: step, epoch and the summary scalars (as in ``txray/timeline.csv``)."""
        return self.txray_callback.timeline_frame() if self.txray_callback else pd.DataFrame()

    def _load_callback_state(self) -> None:
        # With restore_callback_states_from_checkpoint the Trainer would rebuild callbacks from their exported
        # "args"; ours cannot be rebuilt that way (the probe corpus is not in the checkpoint) and restores its
        # timeline itself in on_train_begin, so keep it out of the rebuild.
        stored = self.state.stateful_callbacks
        key = type(self.txray_callback).__name__ if self.txray_callback else None
        held = stored.pop(key, None) if key else None
        try:
            super()._load_callback_state()
        finally:
            if held is not None:
                stored[key] = held

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """The `Trainer`'s model card, plus a "TX-Ray" section: summary table, plots and links to the files."""
        super().create_model_card(*args, **kwargs)
        if not self.is_world_process_zero() or not self.txray_callback or not self.txray_callback.timeline:
            return
        path = Path(self.args.output_dir) / "README.md"
        card = path.read_text(encoding="utf-8") if path.exists() else ""
        section = model_card_section(self.txray_callback)
        if self.hub_model_id:
            repo = self.txray_results_repo_id
            section += (f"\nThe neuron preference cards and transfer reports are also a dataset: "
                        f"[`{repo}`](https://huggingface.co/datasets/{repo}) (`hf_txray.load(\"{repo}\")`).\n")
        path.write_text(card.rstrip("\n") + "\n\n" + section, encoding="utf-8")

    @property
    def txray_results_repo_id(self) -> str | None:
        """The dataset repo that `push_to_hub` fills with the TX-Ray results: ``<hub_model_id>-txray``."""
        return f"{self.hub_model_id}-txray" if self.hub_model_id else None

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None,
                    **kwargs: Any) -> Any:
        """`Trainer.push_to_hub` (model, `output_dir/txray/` files and model card), then the TX-Ray results as the
        dataset repo ``<hub_model_id>-txray`` (neuron cards, distributions, transfer reports; see
        :func:`hf_txray.push_to_hub`), from the main process only."""
        result = super().push_to_hub(commit_message=commit_message, blocking=blocking, token=token,
                                     revision=revision, private=private, **kwargs)
        callback = self.txray_callback
        if self.is_world_process_zero() and callback is not None and callback.profiles:
            from .hub import push_to_hub as push_results

            self._pin_final_snapshot(getattr(result, "oid", None), token if token is not None else self.args.hub_token)
            push_results(self.txray_results_repo_id, profiles=list(callback.profiles.values()),
                         reports=list(callback.reports.values()),
                         private=self.args.hub_private_repo if private is None else private,
                         token=token if token is not None else self.args.hub_token,
                         commit_message=f"TX-Ray results: {commit_message or 'update'}")
        return result

    def _pin_final_snapshot(self, commit: str | None, token: Any) -> None:
        """Record the pushed model commit in the last snapshot, when that snapshot is of the weights just pushed
        (taken at the current step), so that ``hf-txray reproduce`` can recompute it from the Hub."""
        from .reproduce import pin_model

        profiles = self.txray_callback.profiles
        last = list(profiles)[-1]
        if commit is None or last != f"step-{int(self.state.global_step)}":
            logger.info("TX-Ray: the pushed model is not the one of snapshot %s: not pinned for reproduce.", last)
            return
        try:
            profiles[last] = pin_model(profiles[last], self.hub_model_id, revision=commit, token=token)
        except TXRayError as err:  # the results still go up, only without the pin
            logger.warning("TX-Ray: could not record the pushed model in snapshot %s (%s): `hf-txray reproduce` "
                           "will refuse it.", last, err)


def model_card_section(callback: TXRayCallback) -> str:
    """The "TX-Ray" model card section: what was profiled, a summary table per snapshot, plots and file links."""
    frame = callback.timeline_frame()
    features = list(callback._profiler.feature_names) if callback._profiler else list(callback.config.features)
    main = "pos" if "pos" in features else str(features[0])
    first = frame["stage"].iloc[0]
    lines = [
        "## TX-Ray", "",
        f"Neuron preference snapshots (TX-Ray, Rethmeier et al., UAI 2020) taken during training with hf_txray "
        f"{__version__}: {len(callback.corpus)} probe texts, site `{callback.config.site}`, features "
        f"{', '.join(f'`{f}`' for f in features)}, top-{callback.config.top_k} credit. Each snapshot is compared "
        f"with the first (`{first}`).", "",
        f"| stage | epoch | active neurons | mean Hellinger ({main}) | lost | gained | mean length shift ({main}) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in frame.to_dict("records"):
        cell = lambda key, fmt="{:.3f}": "–" if _missing(row.get(key)) else fmt.format(row[key])  # noqa: E731
        lines.append(
            f"| {row['stage']} | {cell('epoch', '{:.2f}')} | {cell('active_share', '{:.1%}')} | "
            f"{cell(f'vs_first/mean_hellinger_{main}')} | {cell('vs_first/share_lost', '{:.1%}')} | "
            f"{cell('vs_first/share_gained', '{:.1%}')} | {cell(f'vs_first/mean_length_shift_{main}', '{:+.2f}')} |")
    plots = Path(TXRAY_DIR) / "plots"
    lines += ["", f"![Mean Hellinger per layer]({plots / 'hellinger_by_layer.png'})"] if len(frame) > 1 else [""]
    lines += [f"![{ft} mass share]({plots / f'mass_share_{ft}.png'})" for ft in features if ft not in TEXT_FEATURES]
    lines += ["", f"Files: [`{TXRAY_DIR}/timeline.csv`]({TXRAY_DIR}/timeline.csv), profiles in `{TXRAY_DIR}/profiles/"
              f"<stage>/` (`hf_txray.Profile.from_pretrained`), reports in `{TXRAY_DIR}/reports/<a>__<b>/` "
              "(`hf_txray.TransferReport.from_pretrained`).", ""]
    return "\n".join(lines)


# ----- helpers ----------------------------------------------------------------------------------------------------
def _probe_corpus(txray_dataset: Any, eval_dataset: Any, text_column: str | None) -> tuple[Any, str | None]:
    """The probe corpus of a TXRayTrainer: `txray_dataset`, else the text column of `eval_dataset`."""
    if txray_dataset is not None:
        return txray_dataset, None
    candidates = list(eval_dataset.values()) if isinstance(eval_dataset, dict) else [eval_dataset]
    candidates = [c for c in candidates if c is not None]
    if not candidates:
        raise ConfigurationError(
            "TX-Ray needs probe text: pass txray_dataset=... (texts, a Dataset or a data file), or an eval_dataset "
            "with a text column. Or set txray_strategy='no' to train without TX-Ray."
        )
    problems = []
    for candidate in candidates:
        try:
            load_corpus(candidate, text_column=text_column, num_samples=1)
            return candidate, "eval_dataset"
        except DatasetError as err:
            problems.append(str(err))
    raise DatasetError(
        "TX-Ray needs probe text, and eval_dataset has none (" + " / ".join(problems) + "). Pass txray_dataset=..., "
        "keep a text column in eval_dataset, or set txray_text_column."
    )


def _text_tokenizer(processing_class: Any) -> Any:
    tokenizer = getattr(processing_class, "tokenizer", processing_class)  # a multimodal processor holds one
    if tokenizer is None:
        raise ConfigurationError("TX-Ray needs the model's tokenizer: pass processing_class=tokenizer to the Trainer "
                                 "(or tokenizer=... to TXRayCallback).")
    check_fast_tokenizer(tokenizer)
    return tokenizer


def _unwrap(model: Any) -> Any:
    """The bare model: without DDP/DataParallel (``.module``) or torch.compile (``._orig_mod``) wrappers."""
    import torch

    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _device_of(model: Any) -> Any:
    from .distributed import input_device

    return input_device(model)  # the embedding's execution device: right for dispatched/offloaded models too


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _replace_file(path: Path, write) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)
