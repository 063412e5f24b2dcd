"""`TXRayTrainer`: a `transformers.Trainer` that records TX-Ray profiles while it trains, and its model card section."""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pandas as pd
from transformers import Trainer

from ..logging import get_logger
from ..card import results_dataset_note
from ..errors import ConfigurationError, DatasetError, TXRayError
from ..loading import load_corpus
from ..profile import Profile
from ..report import TransferReport
from ..rng import preserved_rng
from ..tables import code_span, markdown_cell, markdown_text, percent
from ..version import __version__
from ..features import default_feature_type, is_tag_feature
from .arguments import TXRAY_DIR, TXRayArguments, args_without_secrets, prefixed_option_names
from .callback import TXRayCallback, second_callback_message, stream_probe_message
from .plots import mass_share_file
from .push import public_output_uploads

logger = get_logger(__name__)


class TXRayTrainer(Trainer):
    """A `transformers.Trainer` that records TX-Ray profiles and transfer reports while it trains.

    Everything else (arguments, callbacks, metrics, resume, ``push_to_hub``) is the `Trainer`'s. The TX-Ray options
    come from :class:`TXRayArguments`; outputs go under ``output_dir/txray/`` and into a "TX-Ray" model card section.

    Args:
        txray_dataset (*optional*): the probe corpus (anything :func:`hf_txray.analyze` accepts). Defaults to the
            text column of `eval_dataset`; a :class:`ConfigurationError` or :class:`DatasetError` is raised here,
            before training, when there is no probe text, or when a TX-Ray option does not fit the model.
        *args, **kwargs: the arguments of `transformers.Trainer`; `args` must be :class:`TXRayArguments`.

    Raises:
        ConfigurationError: `args` is not a :class:`TXRayArguments`, a TX-Ray callback is already among the
            trainer's callbacks (both would write ``output_dir/txray/``), or no probe text (neither `txray_dataset`
            nor an eval dataset with a text column) while ``txray_strategy`` is not ``"no"``.
        DatasetError: the probe corpus cannot be used (see :class:`TXRayCallback`).

    Example:
        ```python
        >>> args = TXRayArguments(output_dir="results/run", num_train_epochs=1, txray_strategy="steps", txray_steps=50)
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
        given = [c for c in self.callback_handler.callbacks if isinstance(c, TXRayCallback) and c.enabled]
        if given:  # both would write output_dir/txray/ (refused here, before the probe is read)
            raise ConfigurationError(second_callback_message(len(given) + 1))
        with preserved_rng():  # the Trainer has seeded the streams: loading the probe leaves them as they are
            probe, dataset_id = _probe_corpus(txray_dataset, self.eval_dataset, self.args.txray_text_column,
                                              self.args.txray_max_samples)
            self.txray_callback = TXRayCallback.from_args(self.args, probe, trainer=self, dataset_id=dataset_id)
        if self.model is not None:  # with model_init the model only exists at train(); checked there
            self.txray_callback.setup(self.model, self.processing_class)
        self.add_callback(self.txray_callback)
        # huggingface_hub warns at every push that a model repo receives data files: the txray/ tables (parquet)
        # are meant to travel with the model. Only that warning, only for files under txray/.
        warnings.filterwarnings("ignore", message=rf"It seems that you are about to commit a data file \({TXRAY_DIR}/",
                                category=UserWarning)

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

    def hyperparameter_search(self, *args: Any, **kwargs: Any) -> Any:
        """Refused while TX-Ray profiles are taken: transformers gives each trial its own folder for checkpoints only,
        so every trial's profiles, reports and timeline would replace the last trial's under ``output_dir/txray/``
        (and each trial's model would be profiled as the same run). With ``txray_strategy="no"`` it is the
        `Trainer`'s.

        Raises:
            ConfigurationError: TX-Ray snapshots are on.
        """
        if self.txray_callback is not None:
            raise ConfigurationError(
                "hyperparameter_search runs every trial in the same output_dir, where each trial's TX-Ray profiles "
                "would replace the previous trial's (transformers gives a folder per trial to checkpoints only). "
                "Search with txray_strategy='no' (or the plain Trainer), then train the chosen configuration with "
                "TXRayTrainer to profile it.")
        return super().hyperparameter_search(*args, **kwargs)

    def add_callback(self, callback: Any) -> None:
        """`Trainer.add_callback`, keeping the TX-Ray callback last: it then sees a stop that another callback sets at
        the same event (`EarlyStoppingCallback` at an evaluation) and profiles that step before its checkpoint is
        saved, so that the checkpoint records the snapshot (helper 271: added after ours, the stop was profiled only
        after the save, and a run resumed from that checkpoint removed the stopped run's last snapshot)."""
        super().add_callback(callback)
        txray = getattr(self, "txray_callback", None)  # the Trainer adds its own callbacks before ours exists
        callbacks = self.callback_handler.callbacks
        if txray is not None and txray in callbacks and callbacks[-1] is not txray:
            callbacks.remove(txray)
            callbacks.append(txray)

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
        best = self.state.best_model_checkpoint if self.args.load_best_model_at_end else None
        section = model_card_section(self.txray_callback, model_stage=self.txray_callback.stage_of_weights(self.model),
                                     best_checkpoint=best, best_metric=self.args.metric_for_best_model)
        if self.hub_model_id:
            repo = self.txray_results_repo_id
            section += "\n" + results_dataset_note(repo)
        path.write_text(card.rstrip("\n") + "\n\n" + section, encoding="utf-8")

    @property
    def txray_results_repo_id(self) -> str | None:
        """The dataset repo that `push_to_hub` fills with the TX-Ray results: ``<hub_model_id>-txray``."""
        return f"{self.hub_model_id}-txray" if self.hub_model_id else None

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None,
                    **kwargs: Any) -> Any:
        """`Trainer.push_to_hub` (model, `output_dir/txray/` files and model card; local paths in the TX-Ray files
        named as cards name them, :mod:`hf_txray.trainer.push`), then the TX-Ray results as the
        dataset repo ``<hub_model_id>-txray`` (neuron cards, distributions, transfer reports; see
        :func:`hf_txray.push_to_hub`), from the main process only.

        The results go to the model's branch (`revision`, else ``args.hub_revision``; the default branch when
        neither is set), and a results repo created here is private when the model repo is (a warning says so when
        `private`, else ``args.hub_private_repo``, asked for a public one), when `private` or ``args.hub_private_repo``
        asks for it, and when neither says and the model's visibility cannot be read. With ``blocking=False`` the
        results are pushed once the model's upload is done (the snapshot of the pushed weights is pinned to its
        commit, which only then exists), and the future returned completes after both (a failure is also logged;
        a process that ends before waits for it at exit)."""
        with public_output_uploads(self.args.output_dir):
            result = super().push_to_hub(commit_message=commit_message, blocking=blocking, token=token,
                                         revision=revision, private=private, **kwargs)
        callback = self.txray_callback
        if not (self.is_world_process_zero() and callback is not None and callback.profiles):
            return result
        token = token if token is not None else self.args.hub_token
        # what goes up is decided now: the snapshots taken so far, and which one is of the weights just pushed
        profiles, reports, pushed = dict(callback.profiles), list(callback.reports.values()), \
            callback.stage_of_weights(self.model)

        def push_results(commit: str | None) -> None:
            from ..hub import push_to_hub

            self._pin_pushed_snapshot(commit, token, pushed, profiles)
            push_to_hub(self.txray_results_repo_id, profiles=list(profiles.values()),
                        reports=reports, private=self._results_private(private, token), token=token,
                        commit_message=f"TX-Ray results: {commit_message or 'update'}",
                        revision=revision if revision is not None else self.args.hub_revision)

        if isinstance(result, Future):  # blocking=False: the commit to pin is known once the upload is done (the
            # pin was skipped, "no snapshot is of the pushed model's weights", and reproduce refused the results)
            return _then(result, lambda commit: push_results(getattr(commit, "oid", None)))
        push_results(getattr(result, "oid", None))
        return result

    def _results_private(self, private: bool | None, token: Any) -> bool:
        """Whether a results repo created by :meth:`push_to_hub` is private: a results repo holds the probe texts'
        snippets, so it is never more visible than the model repo (private when that is, even if ``False`` was
        asked: with a warning), else as asked; private when nothing was asked and the model's visibility cannot be
        read."""
        asked = next((bool(a) for a in (private, self.args.hub_private_repo) if a is not None), None)
        if asked:
            return True
        from huggingface_hub import HfApi

        try:
            model_private = bool(HfApi(token=token).repo_info(self.hub_model_id).private)
        except Exception as err:  # unreadable: the safe side, unless public results were asked for
            if asked is None:
                logger.warning("TX-Ray: could not read whether the model repo %s is private (%s): creating the "
                               "results repo private.", self.hub_model_id, type(err).__name__)
            return asked is None
        if model_private and asked is False:
            logger.warning("TX-Ray: the model repo %s is private, so its results repo %s is created private too "
                           "although private=False was asked (it holds snippets of the probe texts). Make it public "
                           "on the Hub (Settings) if that is meant.", self.hub_model_id, self.txray_results_repo_id)
        return model_private


    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """The `Trainer`'s checkpoint push (``hub_strategy``), with ``output_dir/txray/`` naming local paths as cards
        do (:mod:`hf_txray.trainer.push`), and ``output_dir/training_args.bin`` written without the Hub token (the
        uploads still authenticate with it)."""
        token = self.args.hub_token  # read before the swap: the uploads below get it from public_output_uploads
        with public_output_uploads(self.args.output_dir, token=token), self._args_without_secrets():
            super()._push_from_checkpoint(checkpoint_folder)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """`Trainer.save_model`, with ``training_args.bin`` written without the Hub token on every path: on TPUs
        transformers' ``save_tpu_checkpoint`` pickles the arguments itself, without going through :meth:`_save`."""
        with self._args_without_secrets():
            super().save_model(output_dir, _internal_call=_internal_call)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The `Trainer`'s save (every checkpoint, `save_model`, the save of `push_to_hub`), with ``training_args.bin``
        written without the Hub token: transformers pickles ``self.args`` whole into it, and pushes upload it."""
        with self._args_without_secrets():
            super()._save(output_dir, state_dict=state_dict)

    @contextlib.contextmanager
    def _args_without_secrets(self) -> Iterator[None]:
        # transformers writes training_args.bin with torch.save(self.args, ...) inside _save and _push_from_checkpoint:
        # within them, self.args is a copy without hub_token (same object for everything else), then the real one.
        args = self.args
        self.args = args_without_secrets(args)
        try:
            yield
        finally:
            self.args = args

    def _pin_pushed_snapshot(self, commit: str | None, token: Any, stage: str | None,
                             profiles: dict[str, Profile]) -> None:
        """Record the pushed model commit in `stage` of `profiles` (the snapshots pushed), the snapshot of the weights
        pushed (the latest one whose recorded weights hash is theirs, :meth:`TXRayCallback.stage_of_weights`: the
        last step's, or with ``load_best_model_at_end`` the best checkpoint's step), so that ``hf-txray reproduce``
        can recompute it from the Hub; also in :attr:`txray_profiles` while it holds that same snapshot."""
        from ..reproduce import pin_model

        # The step alone does not say it: load_best_model_at_end loads the best checkpoint's weights after the last
        # step's snapshot, and the pin claimed those for it (reproduce then found 'different' credits: helper 198).
        if commit is None or stage is None:
            best = self.state.best_model_checkpoint if self.args.load_best_model_at_end else None
            logger.info("TX-Ray: no snapshot is of the pushed model's weights (%s): none pinned for reproduce. Pin "
                        "one by hand with hf_txray.pin_model.",
                        f"load_best_model_at_end loaded {Path(best).name}" if best else
                        "they changed after the last snapshot" if commit is not None else "no commit")
            return
        try:
            taken, profiles[stage] = profiles[stage], pin_model(profiles[stage], self.hub_model_id, revision=commit,
                                                                token=token)
            if self.txray_callback.profiles.get(stage) is taken:  # not replaced meanwhile (blocking=False)
                self.txray_callback.profiles[stage] = profiles[stage]
        except TXRayError as err:  # the results still go up, only without the pin
            logger.warning("TX-Ray: could not record the pushed model in snapshot %s (%s): `hf-txray reproduce` "
                           "will refuse it.", stage, err)


def model_card_section(callback: TXRayCallback, model_stage: str | None = None, best_checkpoint: str | None = None,
                       best_metric: str | None = None) -> str:
    """The "TX-Ray" model card section: what was profiled, a summary table per snapshot, plots and file links.

    Args:
        callback (`TXRayCallback`): the callback that took the snapshots.
        model_stage (`str`, *optional*): the snapshot of the weights the card goes with
            (:meth:`TXRayCallback.stage_of_weights`): named above the table and marked in it.
        best_checkpoint (`str`, *optional*): the checkpoint whose weights ``load_best_model_at_end`` loaded (only its
            folder name is written), `best_metric` the metric that chose it: the card says which snapshot, if any,
            is of those weights (not the last one's), or that none is.
    """
    frame = callback.timeline_frame()
    features = list(callback._profiler.feature_names) if callback._profiler else list(callback.config.features)
    # the feature every other table and figure shows first (pos, then dep, ner, user tags): a literal "pos" test
    # headed the table of a run with features=("token", "ner") with token Hellinger (helper 208)
    main = default_feature_type(features)
    first = frame["stage"].iloc[0]
    lines = [
        "## TX-Ray", "",
        f"Neuron preference snapshots (TX-Ray, Rethmeier et al., UAI 2020) taken during training with hf_txray "
        f"{__version__}: {len(callback.corpus)} probe texts, site {code_span(callback.config.site)}, features "
        f"{', '.join(map(code_span, features))}, top-{callback.config.top_k} credit. Each snapshot is compared "
        f"with the first ({code_span(first)}).", "",
        *([_weights_note(frame, model_stage, best_checkpoint, best_metric), ""]
          if model_stage is not None or best_checkpoint else []),
        # a user feature's name is text: "<b>", "*", "|" or a backtick in it is shown, not read as markdown
        f"| stage | epoch | credited neurons | mean Hellinger ({markdown_cell(main)}) | lost | gained | mean length shift "
        f"({markdown_cell(main)}) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in frame.to_dict("records"):
        def cell(key: str, fmt: Any = "{:.3f}") -> str:
            if _missing(row.get(key)):
                return "–"
            return fmt(row[key]) if callable(fmt) else fmt.format(row[key])

        lines.append(
            f"| {_stage_cell(row['stage'], model_stage)} | {cell('epoch', '{:.2f}')} | "
            f"{cell('active_share', percent)} | {cell(f'vs_first/mean_hellinger_{main}')} | "
            f"{cell('vs_first/share_lost', percent)} | {cell('vs_first/share_gained', percent)} | "
            f"{cell(f'vs_first/mean_length_shift_{main}', '{:+.2f}')} |")
    plots = Path(TXRAY_DIR) / "plots"
    lines += ["", f"![Mean Hellinger per layer]({plots / 'hellinger_by_layer.png'})"] if len(frame) > 1 else [""]
    # the file name holds the feature's name: percent-encoded, a space or ")" in it does not end the link
    lines += [f"![{markdown_text(ft)} mass share]({quote(str(plots / mass_share_file(ft)))})"
              for ft in features if is_tag_feature(ft)]
    # from_pretrained of this repo's id (or of output_dir) with the subfolder: it looks in the model repo too
    lines += ["", f"Files: [`{TXRAY_DIR}/timeline.csv`]({TXRAY_DIR}/timeline.csv), profiles in `{TXRAY_DIR}/profiles/"
              f"<stage>/` (`hf_txray.Profile.from_pretrained(repo_id, subfolder=\"{TXRAY_DIR}/profiles/<stage>\")`), "
              f"reports in `{TXRAY_DIR}/reports/<a>__<b>/` (`hf_txray.TransferReport.from_pretrained(repo_id, "
              f"subfolder=\"{TXRAY_DIR}/reports/<a>__<b>\")`).", ""]
    return "\n".join(lines)


# ----- helpers ----------------------------------------------------------------------------------------------------
THIS_MODEL = "(this model)"


def _stage_cell(stage: str, model_stage: str | None) -> str:
    cell = markdown_cell(stage)
    return f"**{cell}** {THIS_MODEL}" if stage == model_stage else cell


def _weights_note(frame: pd.DataFrame, model_stage: str | None, best_checkpoint: str | None,
                  best_metric: str | None) -> str:
    """Which snapshot the weights of the card's model are: with the best checkpoint loaded at the end they are not the
    last row's, and the table alone read as if they were."""
    best = ""
    if best_checkpoint:  # the folder name only: the full path is local
        metric = f", by {code_span(best_metric)}" if best_metric else ""
        best = (f" the best checkpoint's ({code_span(Path(best_checkpoint).name)}{metric}), loaded at the end of "
                f"training by {code_span('load_best_model_at_end')}:")
    if model_stage is not None:
        later = frame["stage"].tolist()
        later = later[later.index(model_stage) + 1:] if model_stage in later else []
        note = (f"The weights of this model are{best or ''} those profiled by snapshot {code_span(model_stage)}, "
                f"marked {THIS_MODEL} in the table.")
        if later:
            note += (f" The later snapshot{'s' if len(later) > 1 else ''} ({', '.join(map(code_span, later))}) "
                     "profiled weights this model does not hold.")
        return note
    steps = ", ".join(str(int(step)) for step in frame["step"])
    return (f"The weights of this model are{best} no snapshot was taken of them (snapshots at steps {steps}), so no "
            "row of the table describes this model. Take snapshots at the steps checkpoints are saved "
            f"({code_span('txray_steps')} equal to {code_span('save_steps')}), or profile the model with "
            f"{code_span('hf_txray.analyze')}.")


def _probe_corpus(txray_dataset: Any, eval_dataset: Any, text_column: str | None,
                  max_samples: int | None = None) -> tuple[Any, str | None]:
    """The probe corpus of a TXRayTrainer and its name: `txray_dataset`, else the text column of `eval_dataset` (of a
    dict of eval datasets, the first one with a text column, named by its key: ``eval_dataset['dev']``, so that the
    profiles and the card say which one was profiled)."""
    from ..loading import is_stream

    if txray_dataset is not None:
        return txray_dataset, None
    candidates = ([(f"eval_dataset[{key!r}]", value) for key, value in eval_dataset.items()]
                  if isinstance(eval_dataset, dict) else [("eval_dataset", eval_dataset)])
    candidates = [(name, c) for name, c in candidates if c is not None]
    if not candidates:
        raise ConfigurationError(
            "TX-Ray needs probe text: pass txray_dataset=... (texts, a Dataset or a data file), or an eval_dataset "
            "with a text column. Or set txray_strategy='no' to train without TX-Ray."
        )
    problems = []
    for name, candidate in candidates:
        if is_stream(candidate):  # an IterableDataset eval_dataset: the trainer's fix, not analyze's
            problems.append(prefixed_option_names(stream_probe_message(candidate, max_samples, f" in {name}")))
            continue
        try:  # the texts the callback profiles (txray_max_samples): on its first row alone, a CSV's eval_dataset
            # whose first text is "42" was refused as a column of numbers alone, texts after it (helper 295)
            load_corpus(candidate, text_column=text_column, num_samples=max_samples)
            return candidate, name
        except DatasetError as err:
            problems.append(prefixed_option_names(str(err)))  # the trainer's txray_text_column, not text_column
    raise DatasetError(
        "TX-Ray needs probe text, and eval_dataset has none (" + " / ".join(problems) + "). Pass txray_dataset=..., "
        "keep a text column in eval_dataset, or set txray_text_column."
    )


_PENDING: set[Future] = set()  # futures of :func:`_then` not done yet, waited for at interpreter exit
_PENDING_LOCK = threading.Lock()
_WAITS_AT_EXIT: list[bool] = []  # [True] once _finish_pending is registered


def _then(future: Future, step: Callable[[Any], None]) -> Future:
    """A future of `future`'s result that completes once `step` has also run on that result (in the thread that
    completes `future`); its ``result()`` raises the error of either, which is also logged (a results push in the
    background fails unseen where nobody asks the future). A process that exits before it is done waits for it
    (:func:`_finish_pending`): `step` ran in the upload's worker while the interpreter shut down, where datasets'
    thread pool refused to start ("cannot schedule new futures after interpreter shutdown"), and the results were
    lost without a word (helper 457). Cancelling it cancels `future` as ``Future.cancel`` does (only while it waits
    to run; then `step` does not run): it said it was cancelled, yet the model and the results went up, and
    completing it logged an ``InvalidStateError``."""
    done = _Chained(future)

    def finish(first: Future) -> None:
        if first.cancelled():
            Future.cancel(done)
            with _PENDING_LOCK:
                _PENDING.discard(done)
            return
        try:
            value = first.result()
            step(value)
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits on `done`
            logger.warning("TX-Ray: the results were not pushed after the model's upload (push_to_hub(blocking="
                           "False)): %s: %s", type(err).__name__, err)
            done.set_exception(err)
        else:
            done.set_result(value)
        finally:
            with _PENDING_LOCK:
                _PENDING.discard(done)

    with _PENDING_LOCK:
        if not _WAITS_AT_EXIT:  # registered after concurrent.futures' own (`future` is of a thread pool), so run
            # before it: threading runs these in reverse order, and its own then refuses new work to every pool
            with contextlib.suppress(RuntimeError):  # already shutting down: nothing to run before
                threading._register_atexit(_finish_pending)  # noqa: SLF001 - the hook concurrent.futures uses
                _WAITS_AT_EXIT.append(True)
        _PENDING.add(done)
    future.add_done_callback(finish)
    return done


class _Chained(Future):
    """The future :func:`_then` returns: cancelled with the future it follows, as that one can be."""

    def __init__(self, first: Future):
        super().__init__()
        self._first = first

    def cancel(self) -> bool:
        return self._first.cancel() and self.cancelled()  # `first`'s callback cancels this one


def _finish_pending() -> None:
    """At interpreter exit, before concurrent.futures refuses new work: wait for the results pushes still pending."""
    with _PENDING_LOCK:
        pending = list(_PENDING)
    if pending:
        logger.info("TX-Ray: waiting for %d results push(es) of push_to_hub(blocking=False) to finish.", len(pending))
    for future in pending:
        with contextlib.suppress(BaseException):  # logged by _then
            future.result()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
