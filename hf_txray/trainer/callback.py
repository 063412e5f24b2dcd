"""`TXRayCallback`: TX-Ray profiles of the model while a `Trainer` trains it, compared along the way.

The callback profiles the model being trained on a fixed probe corpus at train begin (stage ``step-0``), at every
TX-Ray checkpoint (every `steps` optimizer steps, or every epoch) and at train end, and after each profile compares
it with the first and with the previous one. Summary scalars go into the Trainer's logs (and so to ``report_to``);
profiles, reports, a timeline table and plots go under ``output_dir/txray/``.

Profiling reuses :class:`hf_txray.Profiler`: its hooks are attached only for the duration of a profile, the model
runs unwrapped, in eval mode and without gradients, and the corpus is sharded across processes and reduced exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import shutil
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import (ExportableState, PrinterCallback, ProgressCallback, TrainerControl,
                                          TrainerState)

from ..analyze import Profiler, ProfilerConfig
from ..counts import check_switch
from ..logging import get_logger, progress_bars_for
from ..errors import (ArtifactNotFoundError, ConfigurationError, DatasetError, ModelError, OutputError,
                      ProfileFormatError)
from ..artifact import HEADER_FILE
from ..io_utils import atomic_file, natural_key, remove_stale_backups, restore_interrupted_swap
from ..loading import (SPLIT_CHOICE, check_fast_tokenizer, is_stream, load_pinned_corpus, resolve_model_source,
                       unwrap_model)
from ..profile import Profile, credit_differences
from ..provenance import full_hash_kind
from ..report import TransferReport, compare
from ..modes import evaluated_weights, optimizer_train_mode
from ..rng import keeps_rng
from ..options import parse_layers, parse_skip_first_positions
from ..features import is_tag_feature
from .arguments import (PREFIX, REFERENCES, TXRAY_DIR, TXRayArguments, best_checkpoint_gap, check_trainer_options,
                        prefixed_option_names, steps_per_epoch)
from .plots import write_plots

logger = get_logger(__name__)
CONSOLE_CALLBACKS = (ProgressCallback, PrinterCallback)  # what prints the Trainer's logs on the console
PROBE_SPLIT_CHOICE = ("the probe is one split: pass that split (TXRayTrainer's txray_dataset=..., TXRayCallback's "
                      "probe_dataset=...), e.g. dataset_dict['validation'], or datasets.load_dataset(path, "
                      "split='validation') for a data folder, file or Hub id")


def stream_probe_message(dataset: Any, max_samples: int | None, given_as: str = "") -> str:
    """Why a stream (an ``IterableDataset``, a generator) cannot be the probe corpus of the callback or the trainer,
    and the fix they can follow (helper 275: they got the message of the functions that cannot take streams, which
    pointed to ``analyze``'s own stream support and named none of their options)."""
    import datasets

    count = "n" if max_samples is None else str(int(max_samples))
    if isinstance(dataset, datasets.IterableDatasetDict):
        fix = f"one split of it, in memory: datasets.Dataset.from_list(list(stream['validation'].take({count})))"
    elif isinstance(dataset, datasets.IterableDataset):
        fix = f"its first texts, in memory: datasets.Dataset.from_list(list(stream.take({count})))"
    else:
        fix = f"its first texts as a list: list(itertools.islice(texts, {count}))"
    profiled = ("all the texts given are profiled" if max_samples is None else f"the first {count} are profiled")
    profiled += " (TXRayArguments' txray_max_samples, TXRayCallback's max_samples)"
    return (f"Got {type(dataset).__name__} (a stream){given_as} as the TX-Ray probe corpus: the same probe texts are "
            "profiled at every snapshot, and a stream is read once. Pass (TXRayTrainer's txray_dataset=..., "
            f"TXRayCallback's probe_dataset=...) {fix}; {profiled}.")


class TXRayCallback(TrainerCallback, ExportableState):
    """Takes TX-Ray profiles of the model while a `Trainer` trains it, and compares them.

    A profile is taken at train begin (stage ``step-0``), at every TX-Ray checkpoint and at train end; each is
    compared with the first and with the previous profile. Every process must run the callback (profiling is
    sharded and gathered); files are written only where ``args.should_save``. Its timeline is saved in each
    checkpoint's ``trainer_state.json`` (`ExportableState`), so resuming continues it without losing or repeating a
    profile. Leave ``restore_callback_states_from_checkpoint`` off (the default): the callback restores itself.
    Every profile stays in memory (:attr:`profiles`): with many snapshots, keep the probe corpus modest. One per
    Trainer (all write ``output_dir/txray/``): a second one is refused when training begins.

    Args:
        probe_dataset: the probe corpus, anything :func:`hf_txray.analyze` accepts (``Dataset``, path, list of str).
        tokenizer (*optional*): a fast tokenizer; defaults to the Trainer's ``processing_class``.
        trainer (`Trainer`, *optional*): when given, scalars are logged with ``trainer.log`` and so reach
            ``report_to``; otherwise they are only appended to ``state.log_history`` and the timeline. When given,
            the callback also moves itself after the trainer's other callbacks at train begin, so that a snapshot
            sees the stop and the weights they set at the same event, whatever order they were listed in.
        strategy (`str`, *optional*, defaults to `"steps"`): ``"no"``, ``"steps"`` or ``"epoch"``.
        steps (`int`, *optional*, defaults to 500): optimizer steps between profiles for ``"steps"``.
        profile_on_train_begin (`bool`, *optional*, defaults to `True`): profile the starting point as ``step-0``.
        text_column, layers, site, features, top_k, batch_size, max_length, stack, skip_first_positions,
            long_texts, stride, num_workers, max_tokens_per_batch, pad_to_multiple_of: as in :func:`hf_txray.analyze`
            (the same engine: long probe texts are windowed, encoding workers start only when there are several
            buckets of probe texts).
        max_samples (`int`, *optional*, defaults to 512): profile only the first `max_samples` probe texts.
        dataset_id (`str`, *optional*): a name for the probe corpus, recorded in the profiles.

    Raises:
        ConfigurationError: no `probe_dataset`, or an invalid option (`strategy`, `steps`, `max_samples`, `site`,
            and the :func:`hf_txray.analyze` options).
        DatasetError: the probe corpus cannot be used: a stream (an ``IterableDataset`` or a generator), or a
            corpus that cannot be loaded or has no text column.

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
                 batch_size: int | None = None, max_length: int | None = None, dataset_id: str | None = None,
                 stack: str | None = None, skip_first_positions: int | str = "auto",
                 long_texts: str = ProfilerConfig.long_texts, stride: int | None = None,
                 num_workers: int | None = None, max_tokens_per_batch: int | None = None,
                 pad_to_multiple_of: int = ProfilerConfig.pad_to_multiple_of):
        if probe_dataset is None:
            raise ConfigurationError(
                "TXRayCallback needs a probe corpus: TXRayCallback(probe_dataset=texts_or_dataset, ...). (Raised "
                "while resuming? Leave restore_callback_states_from_checkpoint=False: the callback restores itself.)"
            )
        check_trainer_options(strategy, steps, max_samples, site, "")
        # "no" is truthy: the step-0 profile was taken (TXRayArguments' txray_on_train_begin refused it)
        profile_on_train_begin = check_switch("profile_on_train_begin", profile_on_train_begin)
        if is_stream(probe_dataset):  # before the options that need the model: the corpus cannot be used at all
            raise DatasetError(stream_probe_message(probe_dataset, max_samples))
        self.config = ProfilerConfig(layers=parse_layers(layers), site=site, features=features, top_k=top_k,
                                     max_length=max_length, batch_size=batch_size, stack=stack,
                                     skip_first_positions=parse_skip_first_positions(skip_first_positions),
                                     long_texts=long_texts, stride=stride, num_workers=num_workers,
                                     max_tokens_per_batch=max_tokens_per_batch, pad_to_multiple_of=pad_to_multiple_of)
        self.config.validate()
        self.strategy, self.steps, self.profile_on_train_begin = strategy, int(steps), profile_on_train_begin
        self.tokenizer, self.trainer = tokenizer, trainer
        try:
            self.corpus, self.text_column, loaded_id, self.dataset_source = load_pinned_corpus(
                probe_dataset, text_column=text_column, num_samples=None if max_samples is None else int(max_samples))
        except DatasetError as err:
            # analyze's advice for several splits names its `split=`, which neither the callback nor TXRayTrainer
            # takes: name the fix they can follow
            if SPLIT_CHOICE not in str(err):
                raise
            raise DatasetError(str(err).replace(SPLIT_CHOICE, PROBE_SPLIT_CHOICE)) from None
        self.dataset_id = dataset_id or loaded_id
        self._check_tagging_lengths()
        self.timeline: list[dict[str, Any]] = []
        self.profiles: dict[str, Profile] = {}
        self.reports: dict[str, TransferReport] = {}
        self._fingerprints: dict[str, str] = {}  # stage -> fingerprint of its profile, kept in checkpoints
        self.files_written = 0  # how many outputs this process wrote (0 where not args.should_save)
        self._snapshot_seconds = 0.0
        self._plot_seconds = 0.0
        self._plots_stale = False
        self._profiler: Profiler | None = None
        self.option_prefix = ""  # "txray_" when built from TXRayArguments: how errors name the options
        self._training = False  # between on_train_begin and on_train_end
        self._model_source = None  # the model as loaded (hf_txray.provenance.ModelSource), at the first snapshot
        self._write_error: tuple[int, OutputError] | None = None  # (step, error) of a snapshot that was not written
        self._warned_checkpoint = False  # a checkpoint held other weights than its step's snapshot (said once)

    def _check_tagging_lengths(self) -> None:
        """Refuse a probe text too long for spaCy's tagger now, not at the first snapshot (after training steps,
        without ``txray_on_train_begin``: helper 167); the pipeline loaded here is the one the snapshots reuse."""
        from ..features import TAG_FEATURES, WordAnnotator

        tags = [t for t in self.config.features if t in TAG_FEATURES]
        if tags:
            texts = [t for t in self.corpus[self.text_column] if isinstance(t, str)]
            WordAnnotator(tags, self.config.spacy_model).check_lengths(texts)

    @classmethod
    def from_args(cls, args: TXRayArguments, probe_dataset: Any, **kwargs: Any) -> "TXRayCallback":
        """Build the callback from the ``txray_*`` fields of :class:`TXRayArguments` (kwargs override them)."""
        options = dict(args.txray_options(), strategy=args.txray_strategy, steps=args.txray_steps,
                       max_samples=args.txray_max_samples, profile_on_train_begin=args.txray_on_train_begin)
        try:
            callback = cls(probe_dataset, **{**options, **kwargs})
        except (ConfigurationError, DatasetError) as err:  # "pass text_column=...": the trainer's field is txray_*
            raise type(err)(prefixed_option_names(str(err), PREFIX)) from None
        callback.option_prefix = PREFIX  # errors name the txray_* fields the user set
        return callback

    # ----- ExportableState --------------------------------------------------------------------------------------
    def state(self) -> dict:
        # The timeline and its profiles' fingerprints: the probe corpus cannot live in trainer_state.json, so "args"
        # stay empty and on_train_begin reads them back from state.stateful_callbacks instead of being rebuilt.
        stages = [row["stage"] for row in self.timeline]
        return {"args": {}, "attributes": {
            "timeline": [dict(row) for row in self.timeline],
            "fingerprints": {stage: self._fingerprints[stage] for stage in stages if stage in self._fingerprints}}}

    # ----- set-up -----------------------------------------------------------------------------------------------
    @keeps_rng
    def setup(self, model: Any, tokenizer: Any = None) -> Profiler:
        """Bind the profiler to `model`; raises :class:`ConfigurationError`/:class:`ModelError` on bad options.

        :class:`TXRayTrainer` calls this at construction so that a bad configuration fails before training.
        """
        model = unwrap_model(model)
        if self._profiler is not None and self._profiler.model is model:
            return self._profiler
        tokenizer = _text_tokenizer(self.tokenizer if self.tokenizer is not None else tokenizer)
        try:
            self._profiler = Profiler(model, tokenizer, self.config, dataset_source=self.dataset_source)
            self._profiler.record_full_weights_hash = True  # what a checkpoint is compared with (see _holds_weights)
            self._model_source = None  # a new model: described again at its first snapshot
            self._profiler.refuse_uncreditable(self.corpus[self.text_column], self.text_column,
                                               self.corpus.column_names)
        except (ConfigurationError, ModelError, DatasetError) as err:
            if not self.option_prefix:
                raise
            self._profiler = None
            raise type(err)(prefixed_option_names(str(err), self.option_prefix)) from None
        return self._profiler

    def stage_of_weights(self, model: Any) -> str | None:
        """The latest snapshot taken of the weights `model` holds now (its recorded weights hash is theirs, see
        :meth:`_holds_weights`), or None: with ``load_best_model_at_end`` the model ends with the best checkpoint's
        weights, profiled (if at all) by the snapshot of that checkpoint's step, not by the last one."""
        profiler = self._profiler
        if profiler is None or profiler.model is not unwrap_model(model):
            return None
        now = functools.cache(profiler.weights_hash)  # each hash read once for all the rows
        for row in reversed(self.timeline):
            if self._holds_weights(self.profiles[row["stage"]], now):
                return row["stage"]
        return None

    def _holds_weights(self, profile: Profile, now: Callable[[str | None], str] | None = None) -> bool | None:
        """Whether the model holds now the weights `profile` was taken of (`now`: the profiler's ``weights_hash``,
        cached by the caller that compares several), None where it recorded no weights hash: by the hash of every
        weight byte it records (helper 375: by the sample hash, a change confined to values it does not read went
        unseen), computed now of that hash's own kind (xxh3-128, or sha256 for a snapshot of an earlier hf_txray),
        else (a snapshot saved before full hashes, or of a kind this hf_txray does not compute) by its weights sample
        hash."""
        now = now or self._profiler.weights_hash
        runtime = (profile.meta.provenance or {}).get("runtime") or {}
        kind = full_hash_kind(runtime.get("weights_full_hash"))
        if kind is not None:
            return runtime["weights_full_hash"] == now(kind)
        if runtime.get("weights_sample_hash"):
            return runtime["weights_sample_hash"] == now(None)
        return None

    @property
    def enabled(self) -> bool:
        return self.strategy != "no"

    @property
    def overhead_seconds(self) -> float:
        """Wall time this callback spent in training so far: profiling, comparing, writing files, plots, logs."""
        return self._snapshot_seconds + self._plot_seconds

    # ----- events -----------------------------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._training = True  # an evaluate() after train() sees should_training_stop still set: no snapshot then
        self._register_state(state)
        if not self.enabled:
            return
        self._claim_output_dir(state)
        self._run_last()
        self.setup(kwargs["model"], kwargs.get("processing_class"))
        if self.trainer is None and state.is_world_process_zero:
            logger.warning("TXRayCallback has no `trainer=`: TX-Ray scalars go to trainer.state.log_history and "
                           "txray/timeline.csv, but not to the report_to integrations.")
        self._restore(args, state)
        self._check_resumed_options()
        gap = best_checkpoint_gap(args, self.strategy, self.steps, self.option_prefix, state,
                                  steps_per_epoch(args, kwargs.get("train_dataloader")))
        if gap and state.is_world_process_zero:
            logger.warning("TX-Ray: %s", gap)
        optimizer = kwargs.get("optimizer")
        # read before the pruning below removes that profile from disk
        taken_after = (None if not state.global_step or self._due(state)
                       else self._taken_after_checkpoint(args, state, optimizer))
        retake = bool(state.global_step) and (self._due(state) or taken_after is not None)
        if args.should_save:
            self._prune_outputs(args, keep=f"step-{int(state.global_step)}" if retake else None)
            self._write_timeline(args)
        if self.profile_on_train_begin and not self.timeline:  # step-0, or a resume whose checkpoint had none
            self._snapshot(args, state, control, optimizer)
        elif retake:
            # resumed from a checkpoint saved without the snapshot of its step (an epoch's last step saved before
            # its snapshot by hf_txray < that fix, a snapshot whose files could not be written, see
            # _stop_on_write_error, or one taken after the save, see _taken_after_checkpoint, of the weights it
            # recorded): the weights are that step's, so take it now
            self._snapshot(args, state, control, optimizer, bool(taken_after))
        self._stop_on_write_error(args, state, begin=True)

    def _register_state(self, state: TrainerState) -> None:
        """Give the run's `TrainerState` a place for this callback's exported state where it has none: a state
        resumed from a checkpoint saved without TX-Ray (``txray_strategy="no"``, or a plain Trainer) lacks it, and the
        Trainer's checkpoint save indexes it by the callback's class name (helper 280: ``KeyError: 'TXRayCallback'``
        at the first checkpoint after the resume, its training steps unsaved)."""
        stored = state.stateful_callbacks
        if isinstance(stored, dict) and type(self).__name__ not in stored:
            stored[type(self).__name__] = self.state()

    def _claim_output_dir(self, state: TrainerState) -> None:
        """Refuse a second TX-Ray callback in the same training run, before it profiles or writes anything: both would
        write ``output_dir/txray/`` (helper 271: with two probes, the second removed the first one's ``step-0`` as
        "taken by an earlier run", replaced its profiles and timeline, and the Trainer's logs held both runs' scalars
        at each step). Seen through the trainer's callbacks where `trainer` is given, else through the run's
        `TrainerState` (one per ``train()`` call, shared by every callback), on which the first one leaves its mark."""
        handler = getattr(self.trainer, "callback_handler", None)
        others = [c for c in getattr(handler, "callbacks", ()) if isinstance(c, TXRayCallback) and c is not self
                  and c.enabled]
        # not a field, so not saved with the state; a weak reference, so a copy of the state copies no callback
        owner = state.__dict__.setdefault(RUN_OWNER_ATTRIBUTE, weakref.ref(self))()
        if owner is not None and owner is not self and owner not in others:
            others.append(owner)
        if others:
            raise ConfigurationError(second_callback_message(len(others) + 1))

    def _run_last(self) -> None:
        """Move this callback after the other callbacks of `trainer` (where given), as :class:`TXRayTrainer` keeps
        its own: a snapshot then sees the weights and the stop that the others set at the same event, whatever the
        order they were listed in (helper 375: listed before ``EarlyStoppingCallback``, the stop's snapshot was taken
        after its checkpoint was saved; before a callback changing the weights at ``on_step_end``, the snapshots were
        not the checkpoints' weights). Without `trainer` the handler cannot be reached: the order stays as given."""
        handler = getattr(self.trainer, "callback_handler", None)
        callbacks = getattr(handler, "callbacks", None)
        if isinstance(callbacks, list) and any(c is self for c in callbacks) and callbacks[-1] is not self:
            # a new list: the handler is going through the old one for this very event (on_train_begin)
            handler.callbacks = [c for c in callbacks if c is not self] + [self]

    def _due(self, state: TrainerState) -> bool:
        """Whether the step just done gets a snapshot by the schedule: every `steps` steps, or an epoch's last step
        (profiled in ``on_step_end``: ``on_epoch_end`` runs after that step's checkpoint is saved, so a run resumed
        from it lost the epoch's snapshot)."""
        return ((self.strategy == "steps" and state.global_step % self.steps == 0)
                or (self.strategy == "epoch" and _at_epoch_end(state)))

    def _taken_after_checkpoint(self, args: TrainingArguments, state: TrainerState, optimizer: Any) -> bool | None:
        """Whether the run that saved the checkpoint resumed from took a snapshot of its step after saving it, of the
        weights it holds: with a training set without a length (an ``IterableDataset``, ``max_steps``), the Trainer
        learns that the data ran out, and so that the epoch ended (``on_epoch_end``, where ``txray_strategy="epoch"``
        profiles), only after the checkpoint of the epoch's last step is saved. A resume that reads the data again
        to that point (the default) ends that epoch again at that step; with ``ignore_data_skip`` the data starts
        over, and that epoch's snapshot was lost (pruned from disk as taken after the checkpoint). So was the snapshot
        of a stop set at an evaluation by a callback listed after this one (``callbacks=[TXRayCallback(...),
        EarlyStoppingCallback(...)]``), seen only at ``on_save``, after that step's checkpoint (helper 375). Decided
        from the profile of that step on disk, whose recorded weights must be the model's now, or with a
        schedule-free `optimizer` its evaluation point (that snapshot profiled the weights the evaluation at that
        epoch's end uses, and the checkpoint holds the training point: helper 375, the snapshot was lost); every
        process agrees (the snapshot is taken together), also where one read that profile before the main process
        pruned it.

        Returns:
            `bool` or `None`: None where no such snapshot was taken, else whether it profiled `optimizer`'s
            evaluation point (to be taken again with :func:`~hf_txray.modes.evaluated_weights`).
        """
        from ..distributed import all_gather, process_info

        step = int(state.global_step)
        folder = Path(args.output_dir) / TXRAY_DIR / "profiles" / f"step-{step}"
        found = 0  # 0: none, 1: of the weights the model holds, 2: of the optimizer's evaluation point
        if not any(row["step"] == step for row in self.timeline) and folder.is_dir():
            try:
                taken = Profile.from_pretrained(folder)
            except (ProfileFormatError, ArtifactNotFoundError, OSError):  # damaged, or removed meanwhile
                taken = None
            if taken is not None and self._holds_weights(taken):
                found = 1
            elif taken is not None and optimizer_train_mode(optimizer):  # schedule-free, at its training point
                with evaluated_weights(optimizer):
                    found = 2 if self._holds_weights(taken) else 0
        found = max(all_gather(found, process_info(cpu=self._profiler.device.type == "cpu")[1]))
        return None if not found else found == 2

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._stop_on_write_error(args, state)

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._stop_on_write_error(args, state)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # DefaultFlowCallback runs earlier and sets should_training_stop on the last step: profile it here, before
        # the checkpoint of this step is saved, so the checkpoint's state includes it.
        if self.enabled and (self._due(state) or control.should_training_stop):
            self._snapshot(args, state, control, kwargs.get("optimizer"), _evaluated_after_step(args, state, control))

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # The Trainer ends every epoch's loop with this event, a stopped one too, before load_best_model_at_end loads
        # the best checkpoint: a stop set by a callback that runs after ours (EarlyStoppingCallback given with
        # trainer.add_callback) at an evaluation without a save is seen here, with the last step's weights still in
        # place (helper 271: that step got no snapshot, only a warning at train end).
        if self.strategy == "epoch" or (self.enabled and self._training and control.should_training_stop):
            self._snapshot(args, state, control, kwargs.get("optimizer"))  # none when an earlier event took it

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.enabled and self._training and control.should_training_stop:  # early stopping: still the last
            self._snapshot(args, state, control, kwargs.get("optimizer"))  # step's weights

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.enabled and self._training and control.should_training_stop:  # (a stop set after our on_evaluate)
            self._snapshot(args, state, control, kwargs.get("optimizer"))
        self._warn_if_checkpoint_differs(state)
        self._stop_on_write_error(args, state, saved=True)  # after the checkpoint of the step whose files failed
        if self.enabled and args.should_save:
            self._write_plots(args)

    def _warn_if_checkpoint_differs(self, state: TrainerState) -> None:
        """Warn (once) where the checkpoint just saved holds other weights than the snapshot of its step profiled:
        a snapshot profiles the weights at ``on_step_end``, after the callbacks listed before this one and before
        those listed after it, and before ``on_evaluate``/``on_log``/``on_save``; a callback that changes the weights
        later in the step (a mask, a rescaling) made checkpoint-N other weights than snapshot ``step-N``, without a
        word (helper 360). Found by the snapshot's recorded weights hash (:meth:`_holds_weights`)."""
        step = int(state.global_step)
        if self._warned_checkpoint or self._profiler is None or not self.timeline or self.timeline[-1]["step"] != step:
            return
        if state.is_world_process_zero and self._holds_weights(self.profiles[self.timeline[-1]["stage"]]) is False:
            self._warned_checkpoint = True
            logger.warning(
                "TX-Ray: checkpoint-%d holds other weights than snapshot step-%d profiled: a callback changed the "
                "model after the snapshot (taken in on_step_end; by a callback listed after TXRayCallback, or in "
                "on_evaluate, on_log or on_save). Give TXRayCallback trainer=... (it then runs after the trainer's other "
                "callbacks) or add it after the callbacks that change the weights at on_step_end; weights changed at a later event are never those of a snapshot, profile the "
                "checkpoints with hf_txray.analyze.", step, step)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # A new step here only when training stopped outside on_step_end, on_evaluate, on_save and on_epoch_end. With
        # load_best_model_at_end the Trainer has loaded the best checkpoint's weights by now: a snapshot named after
        # the last step would profile another step's weights (helper 135: 56% of the credits moved, no error).
        self._training = False
        if not self.enabled:
            return
        self._stop_on_write_error(args, state)
        taken = any(row["step"] == int(state.global_step) for row in self.timeline)
        if not taken and args.load_best_model_at_end and state.best_model_checkpoint:
            logger.warning("No TX-Ray snapshot of the last step (%d): training ended with the best checkpoint's "
                           "weights loaded (load_best_model_at_end, %s), which are not that step's.",
                           state.global_step, state.best_model_checkpoint)
        else:
            self._snapshot(args, state, control, kwargs.get("optimizer"))
        if args.should_save:
            self._write_plots(args)

    # ----- one snapshot -----------------------------------------------------------------------------------------
    @keeps_rng
    def _snapshot(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                  optimizer: Any = None, evaluated: bool | None = None) -> None:
        """Profile the model at this step; `evaluated`: whether the Trainer evaluates it (defaults to
        ``control.should_evaluate``; see :func:`_evaluated_after_step` for the snapshots taken in ``on_step_end``)."""
        step = int(state.global_step)
        if any(row["step"] == step for row in self.timeline) or self._write_error is not None:
            return  # e.g. the last step is also a TX-Ray step: one profile per step
        stage = f"step-{step}"
        started = time.perf_counter()
        self._profiler.device = _device_of(self._profiler.model)  # the Trainer may have moved the model
        if self._model_source is None:
            self._model_source = resolve_model_source(self._profiler.model)
        # Weights past step 0 exist only in memory: recorded as such (reproduce refuses until pin_model).
        self._profiler.model_source = dataclasses.replace(self._model_source, training_step=step)
        # A schedule-free optimizer's weights as the Trainer saves them: its evaluation point where it evaluates at this
        # step (Trainer.evaluate calls optimizer.eval(), and the save after it writes them), else the training point,
        # which the model holds and a save without evaluation writes (eval_strategy="no": every snapshot profiled the
        # evaluation point, no checkpoint nor the trained model held it, and none was named the model's, helper 286)
        evaluated = control.should_evaluate if evaluated is None else evaluated
        # A bar as the Trainer's evaluation bar: main process only, off with disable_tqdm, cleared when done (a
        # snapshot of a large probe corpus ran for minutes without a word: helper 422)
        with evaluated_weights(optimizer if evaluated else None), \
                progress_bars_for(False if args.disable_tqdm else None, nested=True):
            profile = self._profiler.run(self.corpus, text_column=self.text_column, stage=stage,
                                         dataset_id=self.dataset_id)
        profile_seconds = time.perf_counter() - started
        references = self._references()
        reports = {ref: self._report(source, profile) for ref, source in references.items()}
        row = _timeline_row(stage, step, state.epoch, profile, reports)
        row["profile_seconds"] = round(profile_seconds, 4)
        row["compare_seconds"] = round(time.perf_counter() - started - profile_seconds, 4)
        self.profiles[stage] = profile
        self._fingerprints[stage] = _fingerprint(profile)
        self.timeline.append(row)
        if args.should_save:
            try:
                self._write(args, profile, reports)
            except OutputError as err:
                self._forget(stage)  # so the checkpoint saved next records a timeline whose files exist
                self._write_error = (step, err)
                return
        self._log(state, _log_scalars(row))
        elapsed = time.perf_counter() - started
        self._snapshot_seconds += elapsed
        logger.info("TX-Ray profile %s: %.2fs (profiling %.2fs).", stage, elapsed, profile_seconds)
        if args.should_save and (control.should_save or control.should_training_stop):
            try:
                self._write_plots(args)  # drawing costs ~1s: only where a checkpoint (maybe pushed) follows
            except OutputError as err:
                self._write_error = (step, err)

    def _forget(self, stage: str) -> None:
        """Drop the snapshot `stage` (the last one taken) from the timeline and from memory."""
        self.timeline = [row for row in self.timeline if row["stage"] != stage]
        self.profiles.pop(stage, None)
        self._fingerprints.pop(stage, None)
        self.reports = {name: report for name, report in self.reports.items() if not name.endswith(f"->{stage}")}

    def _stop_on_write_error(self, args: TrainingArguments, state: TrainerState, saved: bool = False,
                             begin: bool = False) -> None:
        """Raise the error of a snapshot whose files could not be written, once the Trainer is done with its step:
        raised at once, it stopped training before that step's checkpoint was saved, and the steps trained since
        the last checkpoint were lost (helper 333). Called where the next step or epoch begins, at train end, after
        a checkpoint is saved (`saved`), and at train begin (`begin`: step 0, or the step of the checkpoint resumed).

        Raises:
            OutputError: naming the snapshot, the file that failed, and the checkpoint kept.
        """
        if self._write_error is None:
            return
        (step, err), self._write_error = self._write_error, None
        where, last = Path(args.output_dir) / TXRAY_DIR, None
        if begin:
            kept = "before its first step: nothing was trained in this run"
        elif saved:
            kept = (f"after step {step}, whose checkpoint was saved first "
                    f"({Path(args.output_dir) / f'checkpoint-{state.global_step}'})")
        else:
            from transformers.trainer_utils import get_last_checkpoint

            last = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
            kept = f"after step {step}, at which no checkpoint was due; " + (
                f"the latest one is {last}" if last else "none had been saved")
        resume = (f"Once {where} can be written, resume from the checkpoint (trainer.train(resume_from_checkpoint="
                  "...)): a snapshot due at its step that it lacks is taken again from its weights." if
                  saved or last or (begin and step) else f"Once {where} can be written, train again.")
        raise OutputError(f"TX-Ray stopped training: the snapshot of step {step} could not be written. {err} "
                          f"Training stopped {kept}. {resume}", err.target, err.reason) from err

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
        """The full set of scalars to ``state.log_history`` and every ``on_log`` callback (the ``report_to``
        integrations), but only the headline (:func:`headline_scalars`) to the console printers."""
        if not scalars:
            return
        logs = {**scalars, "epoch": state.epoch} if state.epoch is not None else dict(scalars)
        state.log_history.append({**logs, "step": state.global_step})  # as Trainer.log does
        if self.trainer is None:
            return
        handler, trainer = self.trainer.callback_handler, self.trainer
        everyone = handler.callbacks
        console = [c for c in everyone if isinstance(c, CONSOLE_CALLBACKS)]
        if not console and _notebook_progress(everyone):
            # in Jupyter the Trainer shows its progress with NotebookProgressCallback, whose table shows the loss and
            # the evaluation metrics only: no snapshot's headline was shown (helper 428). Printed as the console is.
            console = [PrinterCallback()]
        headline = {**headline_scalars(scalars), **({"epoch": state.epoch} if state.epoch is not None else {})}
        should_log = trainer.control.should_log  # handler.on_log clears it: the step's own loss log must survive
        try:  # the handler's own dispatch (same keyword arguments as Trainer.log), once per audience
            handler.callbacks = [c for c in everyone if not isinstance(c, CONSOLE_CALLBACKS)]
            trainer.control = handler.on_log(trainer.args, state, trainer.control, logs)
            handler.callbacks = console
            trainer.control = handler.on_log(trainer.args, state, trainer.control, headline)
        finally:
            handler.callbacks = everyone
            trainer.control.should_log = should_log

    # ----- resume -----------------------------------------------------------------------------------------------
    def _restore(self, args: TrainingArguments, state: TrainerState) -> None:
        """Start a new timeline, or on resume take the checkpoint's timeline and reload its profiles from disk."""
        self.timeline, self.profiles, self.reports, self._fingerprints = [], {}, {}, {}
        if state.global_step == 0:
            return
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        saved = saved[0] if isinstance(saved, list) else saved
        attributes = (saved or {}).get("attributes", {})
        rows = [r for r in attributes.get("timeline", []) if r["step"] <= state.global_step]
        fingerprints = attributes.get("fingerprints") or {}
        root = Path(args.output_dir) / TXRAY_DIR
        for row in rows:
            # a run killed between atomic_dir's two renames left the profile moved aside (.step-N.old-PID) and no
            # step-N: put back that copy where it is a whole save (its header is written last); it is checked below
            if restore_interrupted_swap(root / "profiles" / row["stage"], required=SAVED_ARTIFACT_FILES):
                logger.warning("TX-Ray: the last save of profile %r in %s was interrupted; resuming with the copy it "
                               "was replacing.", row["stage"], root / "profiles")
            if not (root / "profiles" / row["stage"]).is_dir():
                raise ProfileFormatError(
                    f"Resuming needs the TX-Ray profiles taken before the checkpoint, and {row['stage']!r} is not in "
                    f"{root / 'profiles'}: resume in the output_dir that holds them, or copy its txray/ folder along "
                    "with the checkpoint.")
            try:
                self.profiles[row["stage"]] = Profile.from_pretrained(root / "profiles" / row["stage"])
            except ProfileFormatError as err:
                raise ProfileFormatError(
                    f"Resuming needs the TX-Ray profiles taken before the checkpoint, under {root / 'profiles'}: {err}"
                ) from err
            self._check_restored(row, self.profiles[row["stage"]], fingerprints.get(row["stage"]), root)
        self.timeline = rows
        for row in rows:
            for ref in REFERENCES:
                source = row.get(f"vs_{ref}/stage")
                if source:
                    self._load_report(root, self.profiles[source], self.profiles[row["stage"]], args.should_save)
        logger.info("TX-Ray: resumed a timeline of %d profiles at step %d.", len(rows), state.global_step)

    def _check_restored(self, row: dict[str, Any], profile: Profile, fingerprint: str | None, root: Path) -> None:
        """Refuse a profile on disk that is not the one the checkpoint's timeline recorded at its stage: a later run
        in the same output_dir replaced the profiles (helper 177: they were loaded as the checkpoint's, and every new
        snapshot was compared with another model's). Checked by fingerprint, or for a checkpoint written before
        fingerprints were kept, by the row's active share."""
        found = _fingerprint(profile)
        if fingerprint is not None:
            same = found == fingerprint
        else:
            active = row.get("active_share")
            same = active is None or active == float((profile.neuron_count > 0).mean())
        if not same:
            raise ProfileFormatError(
                f"Resuming needs the TX-Ray profiles taken before the checkpoint, and {row['stage']!r} in "
                f"{root / 'profiles'} is not the one the checkpoint recorded: another run in this output_dir has "
                "replaced it since. Resume with the txray/ folder of the run that saved the checkpoint, or train "
                "again from the start.")
        self._fingerprints[row["stage"]] = found

    def _check_resumed_options(self) -> None:
        """Refuse, before any training step, a resume whose TX-Ray options or probe texts differ from those of the
        checkpoint's profiles: a different credit rule was refused only at the next snapshot, after training steps,
        and a different max_length or probe was compared with the earlier profiles without a word."""
        if not self.timeline:
            return
        last = self.profiles[self.timeline[-1]["stage"]].meta
        now = self._profiler.meta(last.stage, self.corpus, self.dataset_id, self.text_column or "")
        differ = credit_differences(last, now)
        texts = [(r or {}).get("dataset", {}).get("texts_hash") for r in (last.provenance, now.provenance)]
        if None not in texts and texts[0] != texts[1]:
            differ.append(("probe texts", texts[0], texts[1]))
        if differ:
            name, before, after = differ[0]
            raise ConfigurationError(
                f"Resuming TX-Ray snapshots whose {name} differ from the checkpoint's profiles ({before!r} before, "
                f"{after!r} now): the timeline would compare profiles of other settings. Resume with the same "
                "txray_* options and probe, or train into a new output_dir.")

    def _load_report(self, root: Path, source: Profile, profile: Profile, save: bool) -> None:
        """Load the report of `source` -> `profile` from `root`; where it is missing or damaged on disk (another node,
        deleted, a save cut short), recompute it and, where this process saves (`save`), write it back: recomputed in
        memory only, the txray/ folder (and a push of output_dir) lacked a report of the timeline."""
        folder = root / "reports" / f"{source.stage}__{profile.stage}"
        restore_interrupted_swap(folder, required=SAVED_ARTIFACT_FILES)  # as a profile's (see _restore)
        try:
            self.reports[f"{source.stage}->{profile.stage}"] = TransferReport.from_pretrained(folder)
        except (ProfileFormatError, ArtifactNotFoundError):  # a missing folder raised the latter: resume crashed
            report = self._report(source, profile)
            if save:
                report.save_pretrained(folder)
                self.files_written += 1

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
        atomic_file(root / "timeline.csv", lambda tmp: frame.to_csv(tmp, index=False))
        atomic_file(root / "timeline.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
        self.files_written += 1
        self._plots_stale = True

    @keeps_rng
    def _write_plots(self, args: TrainingArguments) -> None:
        if self._plots_stale and self.timeline:
            started = time.perf_counter()
            latest = self.profiles[self.timeline[-1]["stage"]]
            write_plots(self.timeline_frame(), latest, Path(args.output_dir) / TXRAY_DIR / "plots")
            self.files_written += 1
            self._plot_seconds += time.perf_counter() - started
        self._plots_stale = False

    def _prune_outputs(self, args: TrainingArguments, keep: str | None = None) -> None:
        """Remove profiles/reports that are not in the timeline (taken after the resumed checkpoint, or by an
        earlier run in the same output_dir), so the folder always matches the timeline; `keep`: a stage about to be
        taken again (its folder is replaced then), not said to be removed."""
        root = Path(args.output_dir) / TXRAY_DIR
        stages = {row["stage"] for row in self.timeline} | ({keep} if keep else set())
        removed = [folder for folder in sorted((root / "profiles").glob("step-*")) if folder.name not in stages]
        for folder in removed:
            shutil.rmtree(folder, ignore_errors=True)
        for folder in sorted((root / "reports").glob("step-*__step-*")):
            if not set(folder.name.split("__")) <= stages:
                shutil.rmtree(folder, ignore_errors=True)
        # what a run killed mid-write left (a timeline's or a plot's temporary file, a profile folder's temporary
        # copy): the Trainer's push uploads output_dir whole, so it would reach the Hub (helper 219)
        for leftover in (p for folder in (root, root / "profiles", root / "reports", root / "plots")
                         for p in folder.glob(".*.tmp-*")):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        # and the previous copy of a replaced profile or report whose removal was cut short, where the live folder
        # beside it is there (a profile of the timeline was loaded and checked by _restore) or was removed above
        for leftover in (p for folder in (root / "profiles", root / "reports") for p in folder.glob(".*.old-*")):
            live = leftover.parent / leftover.name[1:].rsplit(".old-", 1)[0]
            kept = live.name in stages if live.parent.name == "profiles" else set(live.name.split("__")) <= stages
            if live.is_dir() or not kept:
                remove_stale_backups(live)
        if removed:  # said, as it deletes results (helper 145: a second train() removed the first one's silently)
            logger.warning("TX-Ray: removed %d profile(s) (%s) from %s: they were taken after the checkpoint resumed "
                           "from, or by an earlier run in this output_dir. Train in another output_dir to keep an "
                           "earlier run's profiles.", len(removed), ", ".join(f.name for f in removed[:5]) +
                           (", ..." if len(removed) > 5 else ""), root / "profiles")

    def timeline_frame(self) -> pd.DataFrame:
        """The timeline as a table: one row per profile (stage, step, epoch, summary scalars, mass shares), its
        columns in one order whether the rows were taken in this run or restored on resume (trainer_state.json
        stores them with sorted keys)."""
        if not self.timeline:
            return pd.DataFrame(columns=list(TIMELINE_LEAD[:3]))
        columns = list(dict.fromkeys(key for row in self.timeline for key in row))
        lead = [c for c in TIMELINE_LEAD if c in columns]
        return pd.DataFrame(self.timeline, columns=lead + sorted(set(columns) - set(lead), key=natural_key))


# The attribute of a run's TrainerState naming the TX-Ray callback that writes its output_dir/txray/ folder.
RUN_OWNER_ATTRIBUTE = "_txray_callback"


def second_callback_message(count: int) -> str:
    """Why `count` TX-Ray callbacks in one Trainer are refused, and what to do instead."""
    return (f"This Trainer has {count} TX-Ray callbacks (TXRayCallback, or TXRayTrainer's own), and they would all "
            f"write output_dir/{TXRAY_DIR}/: each would replace the others' profiles, reports and timeline, and the "
            "Trainer's logs would mix their scalars. Keep one: with TXRayTrainer, drop the TXRayCallback from "
            "callbacks= (its probe goes to txray_dataset=...); to profile a second probe corpus, profile the saved "
            "checkpoints with hf_txray.analyze, or train with a TXRayCallback of that probe in another output_dir.")


# Files every saved profile and report holds; the header is written last, so a folder holding it was saved whole.
SAVED_ARTIFACT_FILES = (HEADER_FILE, "README.md")

TIMELINE_LEAD = ("stage", "step", "epoch", "active_share", "profile_seconds", "compare_seconds")


def _at_epoch_end(state: TrainerState) -> bool:
    """Whether the step just done is an epoch's last: the Trainer sets ``state.epoch`` to a whole number there."""
    return state.epoch is not None and state.epoch > 0 and abs(state.epoch - round(state.epoch)) < 1e-9


def _evaluated_after_step(args: TrainingArguments, state: TrainerState, control: TrainerControl) -> bool:
    """Whether the Trainer evaluates the weights of the step just done, seen from ``on_step_end``: at the step
    (``control.should_evaluate``, set by then), or with ``eval_strategy="epoch"`` when the step closes the epoch's
    loop (its last step, or the last of training), whose evaluation ``DefaultFlowCallback.on_epoch_end`` asks for
    only after ``on_step_end`` (helper 328: with a schedule-free optimizer, such a snapshot profiled the training
    point, and the checkpoint saved after that evaluation held the evaluated one). Not where a checkpoint of the
    step is saved before that evaluation (``save_strategy="steps"``): it holds the training point."""
    if control.should_evaluate:
        return True
    strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    closes_epoch = _at_epoch_end(state) or control.should_training_stop
    return (strategy == "epoch" and closes_epoch and not control.should_save and state.epoch is not None
            and args.eval_delay <= state.epoch)


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
        if is_tag_feature(ft, profile.meta.feature_kinds):
            for tag, share in profile.mass_share(ft).items():
                row[f"mass_share_{ft}/{tag}"] = float(share)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _notebook_progress(callbacks: Sequence[TrainerCallback]) -> bool:
    """Whether `callbacks` show the Trainer's progress as in a Jupyter notebook (transformers'
    ``NotebookProgressCallback``, which the Trainer takes in place of ``ProgressCallback`` there). Its module imports
    IPython: it is looked up only where the Trainer has imported it."""
    notebook = getattr(sys.modules.get("transformers.utils.notebook"), "NotebookProgressCallback", None)
    return notebook is not None and any(isinstance(c, notebook) for c in callbacks)


def headline_scalars(scalars: dict[str, float]) -> dict[str, float]:
    """The few scalars printed on the console per snapshot: against the first profile, the mean Hellinger
    distance per feature type and the shares of lost and gained neurons, and the active share."""
    keys = [k for k in scalars if k.startswith("txray/vs_first/") and "/layer_" not in k
            and not k.startswith("txray/vs_first/mean_length_shift")]
    return {k.replace("vs_first/", ""): scalars[k] for k in keys} | (
        {"txray/active_share": scalars["txray/active_share"]} if "txray/active_share" in scalars else {})


def _log_scalars(row: dict[str, Any]) -> dict[str, float]:
    """The scalars sent to the Trainer's log: comparisons and active share (not the mass shares or timings)."""
    keys = [k for k in row if k.startswith("vs_") and not k.endswith("/stage")]
    scalars = {f"txray/{k}": float(row[k]) for k in keys if row[k] is not None}
    if scalars:
        scalars["txray/active_share"] = row["active_share"]
    return scalars



def _text_tokenizer(processing_class: Any) -> Any:
    tokenizer = getattr(processing_class, "tokenizer", processing_class)  # a multimodal processor holds one
    if tokenizer is None:
        raise ConfigurationError("TX-Ray needs the model's tokenizer: pass processing_class=tokenizer to the Trainer "
                                 "(or tokenizer=... to TXRayCallback).")
    check_fast_tokenizer(tokenizer)
    return tokenizer




def _device_of(model: Any) -> Any:
    from ..distributed import input_device

    return input_device(model)  # the embedding's execution device: right for dispatched/offloaded models too



def _fingerprint(profile: Profile) -> str:
    """A short hash of a profile's per-neuron credit counts and masses: the same after a save and load (exact round
    trip), another for a profile of other weights."""
    digest = hashlib.sha256()
    for array in (profile.neuron_count, profile.neuron_mass):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


