"""`analyze()`: profile a model's neurons on a corpus, on one process or many.

The loop per batch: tokenize with offsets -> features per position -> forward pass with gated hooks that reduce
each layer's activations to its top-k winners on the device -> credit into sparse accumulators. No activation
tensor outlives its batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .accumulators import array_to_strings, check_top_examples_memory, strings_to_array, sub_state
from .allocator import retained_heap
from .budget import resolve_batch_size, resolve_token_budget
from .batching import (BatchEncoder, EncodeOptions, PositionBatch, batches_rows, count_feature_texts,
                       count_texts, num_prefix_specials, padded_width, pads_rows, resolve_feature_ids, stage)
from . import corpora
from .credit import ProfileBuilder, check_grid
from .counts import check_text
from .distributed import (all_gather, check_device, check_same_corpus, default_device, failing_together, input_device,
                          refuse_unloaded_weights, shard_note,
                          is_dispatched, process_info, shard_bounds)
from .errors import ConfigurationError, DatasetError, OutputError
from .features import (TAG_FEATURES, USER_FEATURE_SAMPLE, TokenVocabulary, Vocabulary, WordAnnotator,
                       check_user_features, code_fingerprint, feature_type_of,
                       needs_words, recorded_fingerprint)
from .features.annotation import annotated_with_markup
from .io_utils import atomic_dir, check_writable, output_error, read_json, restore_interrupted_swap, write_json
from .lengths import model_length_limit
from .logging import get_logger, library_bars_on_main_process, progress_bars_for, tqdm
from .model_checks import check_before_loading, check_model_options
from .modes import enter_eval
from .options import AnalyzeOptions, ProfilerConfig, args_docstring, keyword_parameters
from .loading import (adapter_tokenizer, describe_loaded, is_stream, is_texts_only, load_model, load_pinned_corpus,
                      load_pinned_stream, merge_dtype, resolve_model_path, resolve_model_source)
from .profile import FEATURE_KINDS, FEATURE_ORDERS, USER_FEATURES, Profile, ProfileMeta
from .padding import check_padding_is_masked, first_position_is_causal
from .hashes import bytes_sha256, texts_hash
from .provenance import (FULL_HASH_KIND, tokenizer_hash, tokenizer_vocab_hash, weights_full_hash,
                         weights_sample_hash)
from .forward import on_own_default_device, own_default_device, weights_dtype
from .sites import Site, WinnerRecorder, adapters_disabled, quantization_record, text_config, text_depth, text_shape
from .streaming import (BucketPlan, InMemorySource, StreamingSource, builder_name, column_names, first_texts,
                        is_streaming)
from .workers import encode_buckets, resolve_num_workers
from .version import __version__
from .windows import check_token_budget, check_window_options

logger = get_logger(__name__)


class Profiler:
    """Profiles one loaded model, possibly many times (the Trainer takes a snapshot at every checkpoint).

    Args:
        model: a loaded transformers model.
        tokenizer: its fast tokenizer.
        config (`ProfilerConfig`): sites, features, credit and batching options.
        model_id (`str`, *optional*): recorded in the profiles.
        revision (`str`, *optional*): the model's revision (commit, branch or tag), recorded in ``meta.revision``.
        device (`str` or `torch.device`, *optional*): defaults to the model's device.
        model_source, dataset_source (*optional*): the pinned sources (:mod:`hf_txray.provenance`) recorded in
            ``meta.provenance``; described from the model and corpus objects when omitted.
        runtime (`dict`, *optional*): load options to record (``trust_remote_code``, ``model_kwargs``).
    """

    @on_own_default_device
    def __init__(self, model, tokenizer, config: ProfilerConfig, model_id: str | None = None,
                 revision: str | None = None, device: Any = None, model_source: Any = None,
                 dataset_source: Any = None, runtime: dict[str, Any] | None = None):
        self.feature_names, self.user_features = config.validate()
        self.config = config
        self.model, self.tokenizer = model, tokenizer
        # a loaded embedded MiniLM (a TXRayTrainer's model) by its Hub id, as analyze names it, not by its venv path
        loaded_name = corpora.recorded_model_id(getattr(model, "name_or_path", ""))
        self.model_id = model_id or loaded_name or type(model).__name__
        self.revision = revision
        refuse_unloaded_weights(model)  # a meta-device model failed its probe run, blamed on its architecture or dtype
        # the layers, top_k and max_length (checked before the weights load too, where the config says all)
        checked = check_model_options(model, tokenizer, config)
        self.sites: list[Site] = checked.sites
        self.forward, self.max_length = checked.forward, checked.max_length
        self.num_neurons = self.sites[0].width
        check_grid(len(self.sites), self.num_neurons)
        check_top_examples_memory(len(self.sites) * self.num_neurons, config.max_examples_per_neuron)
        self.pad_limit = model_length_limit(model, self.forward.shifted, self.forward.runs).tokens
        auto_skip = config.skip_first_positions == "auto"
        # "auto" is settled by a probe of the model below; 0 until then (the probe encodes no skipped position)
        self.skip_first_positions = 0 if auto_skip else int(config.skip_first_positions)
        self.device = torch.device(device) if device is not None else input_device(model)
        tags = [t for t in self.feature_names if t in TAG_FEATURES]
        # the tokenizer's special token strings are no part of a word (a chat template's <|im_end|>)
        self.annotator = (WordAnnotator(tags, config.spacy_model, tokenizer=tokenizer)
                          if needs_words(self.feature_names) else None)
        self.stride = self._checked_stride()
        # a window runs padded (widths rounded up to pad_to_multiple_of): the budget must hold that width
        window_width = padded_width(self.max_length, self.pad_limit, config.pad_to_multiple_of)
        check_token_budget(config.max_tokens_per_batch, self.max_length, window_width, config.pad_to_multiple_of)
        self.max_tokens_per_batch = resolve_token_budget(config.max_tokens_per_batch, model, self.device,
                                                         self.max_length, config.batch_size, window_width)
        self.batch_size = resolve_batch_size(config.batch_size, self.device, self.max_tokens_per_batch)
        self.num_workers = resolve_num_workers(config.num_workers, self.device.type)
        self._warned_truncation = self._warned_short = False
        self._warned_silent: set[int] = set()  # layers named as crediting nothing (once each, as for truncation)
        probe_width = padded_width(self.max_length, self.pad_limit, config.pad_to_multiple_of)
        check_padding_is_masked(model, self.forward, self.sites, self.encoder(False, tokens_only=True), self.device,
                                probe_width, padded=pads_rows(self.batch_size, config.pad_to_multiple_of),
                                batched=batches_rows(self.batch_size, config.pad_to_multiple_of),
                                max_tokens=self.max_length)
        if auto_skip:
            self.skip_first_positions = self._auto_skip_first_positions(probe_width)
        # Provenance (hf_txray.provenance): set by analyze()/TXRayCallback, else described from the objects.
        self.model_source, self.dataset_source, self.runtime = model_source, dataset_source, dict(runtime or {})
        self.record_full_weights_hash = False  # provenance records weights_full_hash too (see weights_hash)
        # the stream that dataset_source describes, once a run read one (None: the record given, or none yet): a
        # stream has no fingerprint or texts to hash beforehand, so another one is told apart by identity alone
        self._described_stream: Any = None
        # the columns of the corpus as the user gave it, before analyze() kept the text column alone (what an
        # error may point at; [] where unknown, as for a file); None: read off the corpus run() gets
        self.corpus_columns: list[str] | None = None
        # (stream, its first texts, its rows from its start) read before the model loaded (streaming.first_texts): the
        # run of that stream on one process reads on in those rows, else it must read those texts again first
        self.stream_head: tuple[Any, list[str], Iterator[dict[str, Any]]] | None = None

    def _auto_skip_first_positions(self, probe_width: int) -> int:
        """``skip_first_positions="auto"``: 1 when the profiled stack attends causally (read from the model with
        :func:`~hf_txray.padding.first_position_is_causal`), else 0; the stride is checked again with it. A PEFT
        model is read with its unmerged adapter layers off (:func:`~hf_txray.sites.adapters_disabled`): the causality of its
        base model, so that a base stage and an adapted one skip the same positions (a Lily adapter, whose router
        averages over every token of the text, made the first position read later tokens: an adapted decoder was
        judged bidirectional and profiled from position 0, its base model from position 1)."""
        by_type = default_skip_first_positions(self.model)
        config = getattr(self.model, "config", None)
        with adapters_disabled(self.model):
            causal = (None if getattr(config, "is_encoder_decoder", False)
                      else first_position_is_causal(self.model, self.forward, self.sites,
                                                    self.encoder(False, tokens_only=True), self.device, probe_width))
        skip = by_type if causal is None else int(causal)
        if skip != by_type:
            logger.info("skip_first_positions='auto': %s %s, though its type (%r) says otherwise: using %d. Pass "
                        "skip_first_positions explicitly to choose.", type(self.model).__name__,
                        "attends causally" if causal else "is bidirectional (its first position reads later tokens)",
                        getattr(config, "model_type", None), skip)
        if skip:
            self.stride = self._checked_stride(skip)
        return skip

    def _checked_stride(self, skip_first_positions: int | None = None) -> int:
        """The stride in effect, checked against the windows, the tokenizer's special tokens and the skipped first
        positions (:func:`~hf_txray.windows.check_window_options`)."""
        config, tokenizer = self.config, self.tokenizer
        skip = self.skip_first_positions if skip_first_positions is None else skip_first_positions
        return check_window_options(config.long_texts, config.stride, self.max_length,
                                    tokenizer.num_special_tokens_to_add(), skip, num_prefix_specials(tokenizer))

    def encoder(self, annotate: bool, tokens_only: bool = False) -> BatchEncoder:
        """The worker-side encoder of this profiler (annotating on the fly for streamed corpora); `tokens_only`:
        the same positions without tags or user features (to count them)."""
        config = self.config
        features = ("token",) if tokens_only else tuple(self.feature_names)
        options = EncodeOptions(self.max_length, features, {} if tokens_only else dict(self.user_features),
                                long_texts=config.long_texts, stride=self.stride, batch_size=self.batch_size,
                                max_tokens_per_batch=self.max_tokens_per_batch,
                                pad_multiple=config.pad_to_multiple_of, pad_limit=self.pad_limit,
                                skip_first_positions=self.skip_first_positions)
        return BatchEncoder(self.tokenizer, options, self.annotator if annotate else None)

    # ----- the corpus ---------------------------------------------------------------------------------------
    def rows_for_quota(self, rows, text_column: str, quota: int, chunk: int = 1024) -> int:
        """How many leading rows of `rows` (an in-memory shard) a run under a `quota` of positions reads: through the
        text that holds position ``quota + 1`` (the first one left uncredited, which decides what the run counts;
        see :meth:`_select_positions`), or all of them. Positions are counted by encoding tokens only (no tags, no
        user features), so spaCy tags no text past the cut: tagging costs far more than this second tokenization.
        """
        counter = self.encoder(False, tokens_only=True)
        seen = 0
        for lo in range(0, len(rows), chunk):
            texts = [text or "" for text in rows[lo: lo + chunk][text_column]]  # None rows: the run's own error
            ids = np.arange(lo, lo + len(texts))
            per_text = np.zeros(len(texts), dtype=np.int64)
            for batch in counter(texts, ids):
                per_text += np.bincount(batch.example_id - lo, minlength=len(texts))
            past = np.flatnonzero(seen + np.cumsum(per_text) > quota)
            if len(past):
                return lo + int(past[0]) + 1
            seen += int(per_text.sum())
        return len(rows)

    def prepare(self, corpus, text_column: str, show_progress: bool | None = None, note: str = ""):
        """Add cached word/tag annotations to `corpus` when the features need them (`note`: appended to the
        progress bar's description); returns it and whether a text holds markup (the scan annotation took for its
        cache key, :func:`~hf_txray.features.dataset_holds_markup`; False without annotation)."""
        if self.annotator is None:
            return corpus, False
        return annotated_with_markup(corpus, self.annotator, text_column, show_progress, note)

    def _new_builder(self) -> tuple[ProfileBuilder, dict[str, Vocabulary]]:
        vocabs = {n: TokenVocabulary(self.tokenizer) if n == "token" else Vocabulary() for n in self.feature_names}
        names = [f"layer {site.layer} ({site.name})" for site in self.sites]
        builder = ProfileBuilder(len(self.sites), self.num_neurons, vocabs, self.config.max_examples_per_neuron,
                                 device=self.device, layer_names=names)
        return builder, vocabs

    def meta(self, stage: str, corpus, dataset_id: str | None, text_column: str) -> ProfileMeta:
        return ProfileMeta(
            model_id=self.model_id, revision=self.revision, site=self.config.site,
            layers=[s.layer for s in self.sites], num_neurons=self.num_neurons, feature_types=list(self.feature_names),
            top_k=self.config.top_k, stage=stage, max_examples_per_neuron=self.config.max_examples_per_neuron,
            dataset_id=dataset_id, dataset_fingerprint=corpus_fingerprint(corpus, dataset_id),
            config={"max_length": self.max_length, "text_column": text_column, "module_pattern": self.config.module_pattern,
                    "spacy_model": self.annotator.pipeline if self.annotator else None,
                    "credit": "positive top-k winners", "batch_size": self.batch_size,
                    "skip_first_positions": self.skip_first_positions, "max_positions": self.config.max_positions,
                    "long_texts": self.config.long_texts,
                    "stride": self.stride if self.config.long_texts == "window" else None,
                    "max_tokens_per_batch": self.max_tokens_per_batch, "streaming": is_streaming(corpus),
                    # what labelled each user feature: merge refuses, compare warns, two labellings under one name
                    **({USER_FEATURES: {name: recorded_fingerprint(f.fn) for name, f in self.user_features.items()}}
                       if self.user_features else {}),
                    # each feature's kind as registered here: a process that has not registered it reads it back
                    FEATURE_KINDS: {name: feature_type_of(name).kind for name in self.feature_names},
                    # and its reading order (which tag figures, cards and summaries show first)
                    FEATURE_ORDERS: {name: feature_type_of(name).order for name in self.feature_names},
                    **self._architecture_meta()},
            hf_txray_version=__version__, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            provenance=self.provenance(corpus, text_column),
        )

    def weights_hash(self, full: str | None = None) -> str:
        """The sample hash (:func:`~hf_txray.provenance.weights_sample_hash`) of the weights that run now (the body,
        heads left out): what a profile taken now records as ``provenance["runtime"]["weights_sample_hash"]``; with
        `full` (a kind of :data:`~hf_txray.provenance.FULL_HASHES`), the hash of every byte of them
        (:func:`~hf_txray.provenance.weights_full_hash`), which it records as
        ``provenance["runtime"]["weights_full_hash"]`` (of kind ``FULL_HASH_KIND``) where
        :attr:`record_full_weights_hash` is set."""
        body = self.forward.body or self.model
        return weights_sample_hash(body) if full is None else weights_full_hash(body, full)

    def provenance(self, corpus, text_column: str) -> dict[str, Any]:
        """The ``meta.provenance`` record of a run on `corpus` (see :mod:`hf_txray.provenance`)."""
        from .pruning.masks import masks_fingerprint
        from .provenance import DatasetSource, build_record, config_options, profiled_pruning, pruning_record

        if self.model_source is None:  # a loaded model handed to Profiler directly: described once
            self.model_source = resolve_model_source(self.model)
        dataset = self.dataset_source
        if not _describes(dataset, corpus, text_column, self._described_stream):
            dataset = self.dataset_source = describe_loaded(DatasetSource("object"), corpus, text_column, None)
        self._described_stream = corpus if is_streaming(corpus) else None
        dtype = weights_dtype(self.model)
        runtime = {"device": str(self.device), "dtype": str(dtype).removeprefix("torch.") if dtype else None,
                   "model_class": type(self.model).__name__,
                   # the architecture: a pruning plan ranked on these neurons is refused on another one
                   "model_type": getattr(getattr(self.model, "config", None), "model_type", None),
                   # a composite's text model: its neurons are those of that model alone (LLaVA's Llama)
                   "text_model_type": getattr(text_config(getattr(self.model, "config", None)), "model_type", None),
                   # and its depth: a plan or report of a 6-block model does not describe a 12-block one's neurons
                   "num_hidden_layers": text_depth(getattr(self.model, "config", None), self.forward.stack),
                   # and its widths: two models of one type, depth and MLP width but another residual width are two
                   # models (compare refuses them); the vocabulary size is recorded beside (fine-tuning may grow it)
                   **text_shape(getattr(self.model, "config", None), self.forward.stack),
                   # eager and sdpa attention differ in the last bits: part of what must be reproduced
                   "attn_implementation": getattr(getattr(self.model, "config", None), "_attn_implementation", None),
                   # which weights ran (a few KB read; those of the body that runs, heads left out) and which
                   # hf_txray masks were on: Profile.merge refuses parts of different models with them
                   "weights_sample_hash": self.weights_hash(),
                   # and every byte of them, where asked (TXRayCallback: whether a checkpoint holds a snapshot's
                   # weights; it reads them all, ~0.04 s on GPT-2 small's)
                   **({"weights_full_hash": self.weights_hash(FULL_HASH_KIND)} if self.record_full_weights_hash
                      else {}),
                   # an encoder-decoder's profiled stack alone, and its two stacks without a head, as a probe of that
                   # stack hashes them (crosscheck)
                   **({"stack_weights_sample_hash": weights_sample_hash(self.forward.read_weights),
                       "model_weights_sample_hash": weights_sample_hash(self.forward.model_weights)}
                      if self.forward.stack else {}),
                   "masks": masks_fingerprint(self.model),
                   # a quantized model (its config's quantization_config, or layers quantized in memory): reproduce
                   # refuses one quantized in memory, which reloading its folder does not give back
                   "quantization": quantization_record(self.model),
                   # a model pruned with mode="remove" numbers its MLP neurons afresh: which original neuron each one
                   # is (compare refuses to match them by number with another numbering's); the residual stream's
                   # hidden units keep their numbers, so they record None, as unpruned, unless a module_pattern
                   # hooks renumbered units (the up projection's outputs)
                   "pruned": profiled_pruning(pruning_record(self.model), self.config.site,
                                              self.config.module_pattern, {s.layer: s.width for s in self.sites}),
                   # token features are this vocabulary's strings: compare() warns, merge() refuses, across two
                   "tokenizer_vocab_hash": tokenizer_vocab_hash(self.tokenizer),  # at every stage: it may grow
                   # the whole tokenizer (normalizer, pre-tokenizer...): reproduce says so when it is not the one
                   # that its recorded model loads (analyze(..., tokenizer=another))
                   "tokenizer_hash": tokenizer_hash(self.tokenizer),
                   **self.runtime}
        spacy_model = self.annotator.pipeline if self.annotator else None
        return build_record(self.model_source, dataset, config_options(self.config), runtime, spacy_model)

    def _architecture_meta(self) -> dict[str, Any]:
        """The stack (encoder-decoders) and, for mixture-of-experts layers, the experts' count and width."""
        meta: dict[str, Any] = {"stack": self.forward.stack}
        layouts = {(s.experts.num_routed, s.experts.num_shared, s.experts.width) for s in self.sites if s.experts}
        if layouts:
            routed, shared, width = layouts.pop() if len(layouts) == 1 else (None, None, None)
            meta.update(num_experts=None if routed is None else routed + shared, num_shared_experts=shared,
                        expert_width=width)
        return meta

    # ----- the run --------------------------------------------------------------------------------------------
    @on_own_default_device
    def run(self, corpus, *, text_column: str | None, stage: str = "default", dataset_id: str | None = None,
            checkpoint_dir: str | Path | None = None, checkpoint_every: int = 200, resume: bool = False,
            show_progress: bool | None = None) -> Profile:
        """Profile `corpus` (a ``datasets.Dataset`` or ``IterableDataset``) and return the same :class:`Profile`
        on every rank. Progress bars (main process only) follow :mod:`hf_txray.logging`'s switch, or
        `show_progress` for this call."""
        check_text("text_column", text_column)  # 0 for a DataFrame's column 0: datasets' bare ValueError
        with progress_bars_for(show_progress):
            return self._run(corpus, text_column=text_column, stage=stage, dataset_id=dataset_id,
                             checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)

    def _run(self, corpus, *, text_column, stage, dataset_id, checkpoint_dir, checkpoint_every, resume) -> Profile:
        # `~` expanded as the CLI's --out and save_pretrained expand it: "~/ck" was written to ./~/ck
        checkpoint_dir = Path(checkpoint_dir).expanduser() if checkpoint_dir else checkpoint_dir
        rank, world = process_info(cpu=self.device.type == "cpu")
        head = None  # a stream's first texts, read for the check: the run must read them again
        rows = None  # the rows of a pass over the stream begun before the run, read on by a run on one process
        if self.stream_head is not None and self.stream_head[0] is corpus:
            if world == 1:  # several processes read their own head below
                head, rows = self.stream_head[1], None if checkpoint_dir else self.stream_head[2]
            self.stream_head = None
        with failing_together(world):  # a rank that fails here joins the check's collective with its error
            check_checkpoint_options(checkpoint_dir, checkpoint_every, resume)  # a folder unwritable on one node
            if world > 1:
                identity, head = _corpus_identity(corpus, text_column)
        if world > 1:  # before any shard is read or tagged: an unseeded shuffle differs in every process
            check_same_corpus(identity, world)
        # A rank that fails on its shard (a bad row, a user feature's error, its checkpoint) joins the gather below
        # with its error: every rank raises there, and none is left in a collective the others never join.
        with failing_together(world):
            source, meta, local = self._profile_shard(corpus, text_column, stage, dataset_id, checkpoint_dir,
                                                      checkpoint_every, resume, (rank, world), head, rows)
        merged = local
        parts = all_gather(local, world)
        if world > 1:  # the shards' example ids already number the whole corpus
            merged = Profile._merge_shards(parts)
        if merged.meta.num_examples == 0:
            if meta.dataset_id and Path(meta.dataset_id).expanduser().exists():  # a local file read as a stream
                raise DatasetError(f"The local data {meta.dataset_id!r} holds no texts (it is empty, or a header "
                                   "without rows): give a data file with at least one text.")
            raise DatasetError("The dataset is empty: there is no text to profile (a generator that was already "
                               "read yields nothing: pass a new one).")
        # as empty as no text: an empty profile would pass ("empty" also counts a text whose every token
        # skip_first_positions leaves out; such texts are not run)
        if merged.meta.num_empty == merged.meta.num_examples:
            raise self._nothing_to_credit(merged.meta.num_examples, source.text_column,
                                          self.corpus_columns if self.corpus_columns is not None
                                          else column_names(corpus))
        merged.meta = dataclasses.replace(merged.meta, dataset_fingerprint=meta.dataset_fingerprint,
                                          created_at=meta.created_at)
        merged.meta.config["text_column"] = source.text_column
        # With max_positions, each process credits its own quota from the start of its shard: which positions are
        # credited depends on the process count, which reproduce needs to know.
        if merged.meta.provenance:
            merged.meta.provenance.setdefault("runtime", {})["num_processes"] = world
        if isinstance(source, StreamingSource):
            _record_stream_read(merged.meta.provenance["dataset"], source, world, merged.meta.num_examples)
        if not merged.neuron_count.any():  # a profile without one credit: say why rather than return it silently
            logger.warning("No neuron was credited in %d texts (%d empty): every profile table is empty. %s",
                           merged.meta.num_examples, merged.meta.num_empty, self._why_no_credit(merged.meta))
        else:  # a layer whose every winner was <= 0 (a ReLU layer that never fires here): its tables are empty
            silent = [layer for layer, counts in zip(merged.layers, merged.neuron_count)
                      if not counts.any() and layer not in self._warned_silent]
            self._warned_silent.update(silent)
            if silent:
                logger.warning("Layer(s) %s credited no neuron in %d positions: every winner there was <= 0 (all "
                               "activations zero or negative, as a ReLU layer that never fires on this corpus), so "
                               "their profile tables are empty.", silent, merged.meta.num_positions)
        limit = self.config.max_positions
        if limit is not None and 0 < merged.meta.num_positions < limit and not self._warned_short:
            self._warned_short = True  # stages meant to be of equal size are not; once, as for truncation
            logger.warning("max_positions=%d was not reached: the corpus gave %d positions%s, so a stage profiled "
                           "at %d positions is not of equal size to this one.", limit, merged.meta.num_positions,
                           " (a process's shard held fewer than its share)" if world > 1 else "", limit)
        if merged.meta.num_truncated and not self._warned_truncation:
            self._warned_truncation = True  # once per Profiler: the Trainer profiles the same corpus many times
            logger.warning("%d texts were longer than max_length=%d tokens and were truncated.",
                           merged.meta.num_truncated, self.max_length)
        return merged

    def _profile_shard(self, corpus, text_column, stage, dataset_id, checkpoint_dir, checkpoint_every, resume,
                       topology: tuple[int, int], head: list[str] | None, rows: Iterator[Any] | None = None):
        """This rank's part of :meth:`_run`, without a collective: its shard as a source, the run's meta, and the
        profile of the shard (resumed from its checkpoint, and checkpointed, when asked)."""
        rank, world = topology
        if is_streaming(corpus):
            record = self.dataset_source
            local = (record.id, list(record.data_files)) if record is not None and record.kind == "local" else None
            source = StreamingSource(corpus, text_column, rank, world, local_files=local)
            if head is not None:
                source.expect_head(head[rank::world])  # the examples are interleaved (StreamingSource)
            if rows is not None:
                source.read_on(rows)
            key_range: tuple[int, int] = (rank, world)
            holds_markup = False  # a stream is not scanned: its checkpoint key never carried the markup rules
        else:
            start, end = shard_bounds(len(corpus), rank, world)
            # A rank whose shard is empty (more processes than texts) profiles nothing but joins every collective.
            rows = _rows(corpus, start, end)
            quota = _rank_quota(self.config.max_positions, rank, world)
            if quota is not None and self.annotator is not None:  # tag only what max_positions will read
                rows = _rows(rows, 0, self.rows_for_quota(rows, text_column, quota))
            shard, holds_markup = self.prepare(rows, text_column, note=shard_note(rank, world))
            source = InMemorySource(shard, start, text_column)
            key_range = (start, end)
        meta = self.meta(stage, corpus, dataset_id, text_column or "")
        if isinstance(source, StreamingSource):  # a stream's length is unknown; a take(num_samples) bounds it
            source.total = source.share_of((meta.provenance or {}).get("dataset", {}).get("num_samples"))
        state = None
        if checkpoint_dir:
            features = {name: code_fingerprint(f.fn) for name, f in self.user_features.items()}
            # the spaCy pipeline that tags words (its name, version, components and files), None without words
            annotation = self.annotator.cache_key if self.annotator is not None else None
            # words fused with markup before helper 403: not resumed; the answer of annotation's scan (a second
            # scan tokenized every text holding a special token's string again)
            if annotation is not None and not isinstance(source, StreamingSource) and holds_markup:
                annotation += self.annotator.markup_key()
            key, key_parts = _run_key(meta, *key_range, weights_sample_hash(self.model), features, annotation)
            streamed = isinstance(source, StreamingSource)
            state = _CheckpointState(checkpoint_dir, rank, world, key, source.head_hash() if streamed else None,
                                     source.pipeline() if streamed else None, key_parts)
        resume_state, saved = state.load() if (state and resume) else (None, None)
        if state and not resume and (state.path / "progress.json").exists():  # helper 156: replaced without a word
            logger.warning("A checkpoint of an earlier run is in %s; this run starts from the beginning and replaces "
                           "it. To continue that run instead, pass resume=True (CLI: --resume).", state.path)
        with retained_heap():  # a CPU forward pass would otherwise page-fault its buffers in at every batch
            local = self._profile_source(source, resume_state, saved, meta, state, checkpoint_every)
        return source, meta, local

    def _nothing_to_credit(self, num_texts: int, text_column: str | None,
                           columns: Sequence[str] | None = None) -> DatasetError:
        """The error for texts none of which has a position to credit (blank, or only positions that
        `skip_first_positions` leaves out). With `columns` known to hold the text column alone (a list of strings),
        there is no other column to point at."""
        skip = self.skip_first_positions
        beyond = f", or has no token past the first {skip} (skip_first_positions={skip})" if skip else ""
        lower = ", or lower skip_first_positions" if skip else ""
        check = ("Pass texts that hold words" if columns is not None and list(columns) == [text_column]
                 else f"Check the text column ({text_column!r})")
        return DatasetError(f"Every one of the {num_texts} texts is empty or whitespace{beyond}: there is no token to "
                            f"profile. {check}{lower}.")

    @on_own_default_device
    def refuse_uncreditable(self, texts: Sequence[str], text_column: str | None,
                            columns: Sequence[str] | None = None) -> None:
        """Refuse in-memory `texts` none of which has a position to credit, before any work (a Trainer's probe
        corpus: its first snapshot may come after many training steps).

        Raises:
            DatasetError: as :func:`analyze` raises for such a corpus, after the run.
        """
        texts = [text if isinstance(text, str) else "" for text in texts]  # a None row: the run's own error
        batches = self.encoder(False, tokens_only=True)(texts, np.arange(len(texts)))
        if batches[0].num_empty == len(texts):
            raise self._nothing_to_credit(len(texts), text_column, columns)

    def _why_no_credit(self, meta: ProfileMeta) -> str:
        if meta.num_positions:
            return (f"Every winner of the {meta.num_positions} positions had an activation <= 0 (num_uncredited): "
                    "only positive activations are credited.")
        return "Check the text column."

    def _profile_source(self, source, resume_state, saved, meta, state, checkpoint_every):
        builder, vocabs = self._new_builder()
        if saved is not None:  # resume: the builder continues from its saved state, the stream with its texts
            try:
                builder.load_state_dict(saved.builder)
            except (KeyError, ValueError) as err:  # saved by another builder shape, or entries missing
                raise state.unusable(f"holds a builder state this run cannot load ({type(err).__name__}: {err})") \
                    from None
            source.restore_texts(saved.texts)
        rank, world = process_info(cpu=self.device.type == "cpu")
        quota = _rank_quota(self.config.max_positions, rank, world)  # positions this rank may still credit (None: no limit)
        if quota is not None:
            quota -= builder.num_positions
        from .pruning.masks import masks_version, refuse_changed_masks

        masks = masks_version(self.model)  # another thread's ablation during the run: refused after its bucket
        # max_positions reached (and the texts it reached counted) in a saved bucket: a resume reads no further
        stopped = bool(resume_state and resume_state.get("stopped"))
        recorder = WinnerRecorder(self.sites, self.config.top_k)  # no hook until attached, inside the try
        bar = encoded = None
        restore_modes = enter_eval(self.model)  # first: a model it refuses leaves no hook behind
        try:  # from here on, an interrupt (Ctrl-C while attaching) gives the hooks and the eval period back
            recorder.attach()
            bar = tqdm(total=source.total, initial=int(resume_state["processed"]) if resume_state else 0,
                       desc=f"hf_txray profiling {meta.stage}{shard_note(rank, world)}", unit="ex")
            batches_since_save = 0
            prune_at = STREAM_TEXTS_KEPT  # streamed texts held before the next pruning
            read = source.read if isinstance(source, InMemorySource) else None  # workers read in-memory texts
            workers = self._workers_for(source, checkpoint_every, resume_state)
            buckets = source.buckets(self.bucket_plan(checkpoint_every, workers), resume_state)
            encoded = encode_buckets(self.encoder(read is None), buckets, workers, read)
            for bucket, batches in encoded:
                if stopped:
                    break
                batches, stopped = self._select_positions(batches, quota)
                if stopped and isinstance(source, StreamingSource):  # before a checkpoint keeps what it read
                    source.check_numbers_read()  # a stream stopped early: fewer cells than a column is judged on
                resolve_feature_ids(batches, vocabs)  # after the selection: only what is credited enters a vocabulary
                for batch in batches:
                    self._process(batch, builder, recorder)
                refuse_changed_masks(self.model, masks, "analyze")  # before a checkpoint keeps what it mixed
                quota = None if quota is None else quota - sum(b.num_positions for b in batches)
                batches_since_save += len(batches)
                # the tokens the model ran (specials and window context included), shown by the update, in step
                bar.set_postfix(tokens=builder.num_real_tokens, refresh=False)
                bar.update(len(bucket.example_ids))
                saving = state is not None and batches_since_save >= checkpoint_every
                through = int(bucket.example_ids[-1])  # the last example credited (workers may have read on)
                done = {**bucket.state, "stopped": stopped}, through  # what a checkpoint of this point records
                pruning = source.num_texts_held > prune_at  # a stream's texts for top examples
                if saving or pruning:
                    _keep_example_texts(builder, source, through)
                    # Top lists can refer to more texts than STREAM_TEXTS_KEPT: prune again only once the held
                    # texts have doubled, so the waits stay rare (amortised) whatever the number of referenced texts.
                    prune_at = max(STREAM_TEXTS_KEPT, 2 * source.num_texts_held)
                if saving:
                    state.save(done[0], builder.state_dict(), source.kept_texts(through))
                    batches_since_save = 0
            if bar.total is not None and bar.n < bar.total and not stopped:  # a stream shorter than num_samples
                bar.total = bar.n
            if state is not None and batches_since_save:
                _save_last_checkpoint(state, builder, source, *done)
        except BaseException:
            builder.close(flush=False)  # stop its flush thread; the run's error is what the caller needs
            raise
        finally:
            if encoded is not None:
                encoded.close()  # stops the encoding workers now, not when the traceback is collected
            if bar is not None:
                bar.close()
            recorder.detach()
            restore_modes()
        return builder.to_profile(dataclasses.replace(meta), source.fetch)

    def bucket_plan(self, checkpoint_every: int, workers: int) -> BucketPlan:
        """How the corpus is cut into buckets: at most :data:`BUCKET_BATCHES` batches' worth of texts
        (``batch_size`` rows each), never spanning a checkpoint interval (so a checkpoint lands on a bucket boundary).

        With encoding `workers`, a bucket also closes once its texts reach :data:`CHARS_PER_TOKEN` characters per
        token of that many full batches (on an accelerator, of :data:`ACCELERATOR_TOKEN_BATCHES`), so long documents
        are spread over the workers, and on an accelerator the first buckets ramp up
        (:class:`~hf_txray.streaming.BucketPlan`), so the device waits for a small first bucket only. Inline, buckets are cut by count alone: smaller buckets of long documents would only add
        part-filled batches (measured: up to 7% more CPU time on WikiText-2 articles, ``bench/bench_buckets.py``).
        """
        batches = min(BUCKET_BATCHES, checkpoint_every)
        if not workers:
            return BucketPlan(self.batch_size * batches)
        batch_tokens = self.batch_size * self.max_length
        if self.max_tokens_per_batch is not None:
            batch_tokens = min(batch_tokens, self.max_tokens_per_batch)
        ramp = self.device.type not in UNRAMPED_DEVICES
        token_batches = min(batches, ACCELERATOR_TOKEN_BATCHES) if ramp else batches
        return BucketPlan(self.batch_size * batches, token_batches * batch_tokens * CHARS_PER_TOKEN, ramp=ramp)

    def _workers_for(self, source, checkpoint_every: int, resume_state) -> int:
        """Encoding workers for this run: as configured, but the default (``num_workers=None``) starts no more
        workers than there are buckets left, and none for a single bucket, which no worker could overlap with the
        model (a small corpus, such as a Trainer snapshot's, then costs no process start). An in-memory corpus's
        buckets (as cut for workers, without the ramp) are counted from the text lengths, up to the worker count; a
        stream's are not known, and it is not read for them: counted so, its first buckets were read and booked
        twice (a stream cut by ``num_samples`` has a total), losing its texts hash and counting its CSV cells twice in
        the numbers check (helper 313)."""
        if (self.config.num_workers is not None or not isinstance(source, InMemorySource) or source.total is None
                or self.num_workers == 0):
            return self.num_workers
        plan = dataclasses.replace(self.bucket_plan(checkpoint_every, self.num_workers), ramp=False)
        buckets = sum(1 for _ in itertools.islice(source.buckets(plan, resume_state), self.num_workers))
        return buckets if buckets > 1 else 0

    @torch.no_grad()
    def _select_positions(self, batches: list[PositionBatch], quota: int | None
                          ) -> tuple[list[PositionBatch], bool]:
        """Under `max_positions`, keep only the bucket's first `quota` positions in corpus order (example id, token
        index), whatever batch they were packed in (the encoder has already dropped the first
        `skip_first_positions` of each text); returns them and whether the run stops after this bucket.

        The run counts (``num_examples``, ``num_empty``...) the texts before the first position it leaves uncredited,
        and the text of that position if it credited part of it: a function of the corpus and the quota, not of
        where buckets end. A bucket that uses up the quota exactly is credited whole and the next bucket decides (its
        leading texts without positions are counted; one without any position is counted whole and the next
        decides again); the corpus's end counts everything.
        """
        total = sum(b.num_positions for b in batches)
        if quota is None or (quota > 0 and total <= quota):
            return batches, False
        if total == 0:  # texts without positions, after the quota was used up: counted, and the next bucket decides
            return batches, False
        example_id = np.concatenate([b.example_id for b in batches])
        token_index = np.concatenate([b.token_index for b in batches])
        order = np.lexsort((token_index, example_id))
        keep = np.zeros(total, dtype=bool)
        keep[order[:quota]] = True
        bounds = np.cumsum([0] + [b.num_positions for b in batches])
        kept = [b.select(keep[lo:hi]) for b, lo, hi in zip(batches, bounds[:-1], bounds[1:])]
        uncredited = example_id[order[quota]]  # the text of the first position left uncredited
        last = example_id[order[quota - 1]] if quota else -1
        reached = lambda ids: (ids < uncredited) | (ids <= last)  # noqa: E731  (the texts the run counts)
        flags = batches[0].text_flags
        if flags is not None:  # every kept position is in a reached text; a text credited in part carries what it kept
            count_texts(kept[0], flags[reached(flags[:, 0])], count_feature_texts(kept, batches[0].num_feature_texts))
        grids = [0] * len(kept)
        for i, batch in enumerate(batches):  # the padded grid of the rows of those texts, as their tokens
            if batch.num_positions:
                width = batch.inputs["input_ids"].shape[1]
                rows = batch.positions.numpy()[reached(batch.example_id)] // width
                grids[i] = width * len(np.unique(rows))
        # The stop text counts whole, so its windows packed in a batch left with no position (which does not run)
        # count at that batch's width too: on a batch that runs, else its input tokens outnumbered the grid
        running = [selected for selected in kept if selected.num_positions]
        for selected, grid in zip(kept, grids):
            selected.num_padded_tokens = grid
        if running:
            running[0].num_padded_tokens += sum(g for s, g in zip(kept, grids) if not s.num_positions)
        return kept, True

    @torch.no_grad()
    def _process(self, batch: PositionBatch, builder: ProfileBuilder, recorder: WinnerRecorder) -> None:
        if batch.num_positions == 0:  # the model does not run: its padded grid is not counted
            builder.add([], [], dataclasses.replace(batch, num_padded_tokens=0))
            return
        width = batch.inputs["input_ids"].shape[1]
        arrays = {f"input.{k}": v for k, v in batch.inputs.items()}
        arrays["hooked"] = self.forward.positions(batch.positions, width)
        together = builder.device == self.device  # the credit's position fields travel with the inputs
        if together:
            arrays.update({f"credit.{k}": v for k, v in builder.position_arrays(batch).items()})
        staged = stage(arrays, self.device)
        recorder.positions = staged["hooked"]
        recorder.grid = self.forward.hooked_grid(*batch.inputs["input_ids"].shape)
        recorder.reset()
        recorder.enabled = True
        try:
            self.forward({k[len("input."):]: v for k, v in staged.items() if k.startswith("input.")})
        finally:
            recorder.enabled = False
        recorder.check_complete()
        credit = {k[len("credit."):]: v for k, v in staged.items() if k.startswith("credit.")} if together else None
        builder.add(recorder.values, recorder.indices, batch, positions=credit)


BUCKET_BATCHES = 8  # batches per bucket: the unit of length sorting, worker hand-off and checkpoints
# Characters per token assumed when a bucket is cut by characters (English BPE averages about 4): a text's tokens
# are only known once a worker has encoded it. A wrong guess only makes buckets larger or smaller: CJK text, at 1 to
# 3 tokens per character, gets buckets of up to about 12 times the planned tokens.
CHARS_PER_TOKEN = 4
# On an accelerator, a bucket of long texts holds at most this many full batches' worth of characters: one worker
# encodes about 0.4M tokens/s, a GPU's forward runs 1M+, so a run of long documents must be spread over the workers
# (GPU check run 4: MiniLM's main thread waited 1.4 s of 3.6 s for the two 8-batch buckets of BBC articles).
ACCELERATOR_TOKEN_BATCHES = 2
UNRAMPED_DEVICES = ("cpu",)  # devices whose runs with workers start with full-size buckets (BucketPlan.ramp)
STREAM_TEXTS_KEPT = 4096  # streamed texts held for top examples before pruning to the referenced ones


def _describes(source: Any, corpus: Any, text_column: str, described_stream: Any = None) -> bool:
    """Whether the dataset record `source` (a :class:`~hf_txray.provenance.DatasetSource`, or None) describes
    `corpus` read by `text_column`: the same fingerprint and text column and, in memory, the same texts
    (:func:`~hf_txray.hashes.texts_hash`, what the rest of hf_txray calls the same corpus). A fingerprint alone does not
    say it: a ``map`` whose function reads a file keeps it when the file changes, and a reused Profiler (a Trainer's)
    recorded the first corpus's texts for the second (helper 170). A stream has neither fingerprint nor texts to hash
    beforehand: it is the one described when it is `described_stream` (the stream an earlier run read), or when no
    run read one yet (the record given with it)."""
    # A stream's text column may be chosen from its first row, during the run ("" until then).
    if source is None or source.fingerprint != getattr(corpus, "_fingerprint", None) \
            or (source.text_column or "") != text_column:
        return False
    if is_streaming(corpus):  # a stream is hashed as the run reads it (StreamingSource.read_hash)
        return described_stream is None or described_stream is corpus
    try:
        return source.texts_hash == texts_hash(corpus, text_column)
    except UnicodeDecodeError:  # described again, which raises the error that names the row
        return False


def _corpus_identity(corpus, text_column: str | None) -> tuple[str, list[str] | None]:
    """What every process must hold alike before it takes its shard (:func:`~hf_txray.distributed.check_same_corpus`):
    the hash of an in-memory corpus's texts in order, or of a stream's first texts, read from its start (a stream
    is not read whole twice; an unseeded shuffle already differs in its first texts); and those first texts of a
    stream, which the run must read again (:meth:`~hf_txray.streaming.StreamingSource.expect_head`)."""
    if is_streaming(corpus):
        whole = StreamingSource(corpus, text_column, 0, 1)
        return whole.head_hash(), whole.head_texts
    return texts_hash(corpus, text_column), None


def corpus_fingerprint(corpus, dataset_id: str | None) -> str:
    """The dataset's fingerprint; streamed datasets have none, so their description and id stand in."""
    found = getattr(corpus, "_fingerprint", None)
    if found:
        return found
    parts = [dataset_id, getattr(corpus.info, "dataset_name", None), getattr(corpus.info, "config_name", None),
             getattr(corpus, "split", None), repr(getattr(corpus, "features", None)), corpus.n_shards]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def default_skip_first_positions(model) -> int:
    """1 for decoder-only (causal) language models, 0 otherwise (encoders, encoder-decoders), by the model's type:
    what ``skip_first_positions="auto"`` falls back to when the probe of the model itself cannot tell (a one-token
    probe) and always uses for encoder-decoders (:meth:`Profiler._auto_skip_first_positions`).

    Causal LMs put "massive activations" on the first position (Sun et al. 2024): measured on SmolLM2-135M, some
    neurons take almost all their mass from position 0 (bench/RESULTS.md, "The first position"), so their
    preferences describe the position, not the input. Encoders showed no such neuron (MiniLM).
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    config = text_config(getattr(model, "config", None))
    kind = getattr(config, "model_type", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return 0
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES or kind in IS_DECODER_SWITCHED:
        # encoders that attend causally only when configured as decoders (BertGenerationEncoder: is_decoder=False)
        return 1 if getattr(config, "is_decoder", False) else 0
    return 1 if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else 0


# Model types without a masked-LM head whose attention is causal only with config.is_decoder (else bidirectional).
IS_DECODER_SWITCHED = frozenset({"bert-generation"})


def _rank_quota(max_positions: int | None, rank: int, world: int) -> int | None:
    """This process's share of `max_positions` (split evenly over ranks, the remainder to the first ranks)."""
    if max_positions is None:
        return None
    return max_positions // world + (rank < max_positions % world)


def _rows(corpus, start: int, end: int):
    """Rows [start, end) of a ``datasets.Dataset``, as Python objects whatever its format (``with_format("numpy")``
    would hand the tokenizer and spaCy numpy strings); empty ranges too (``select(range(n, n))`` raises
    IndexError)."""
    corpus = corpus.with_format(None) if corpus.format["type"] is not None else corpus
    return corpus.select(range(start, end)) if end > start else corpus.select([])


def _run_key(meta: ProfileMeta, start: int, end: int, weights: str, features: dict[str, str],
             annotation: str | None = None) -> tuple[str, dict[str, str]]:
    """The key that ties a checkpoint to its run, and a short hash of each of its parts (a refused resume names the
    parts that changed): model (id, revision, the provenance's content hash of a local folder and `weights`,
    :func:`~hf_txray.provenance.weights_sample_hash`, the hf_txray masks on it and its attention implementation),
    corpus (its fingerprint, and the content hash of local data files) and its num_samples, shard, the options that
    change what is counted or the activations (``module_pattern``, ``pad_to_multiple_of``...), the tokenizer's
    vocabulary, `features` (each user feature's :func:`~hf_txray.features.code_fingerprint`) and `annotation` (the
    spaCy pipeline's :attr:`~hf_txray.features.WordAnnotator.cache_key`, and its ``markup_key()`` when in-memory
    texts hold the tokenizer's special token strings; None without word features).
    ``batch_size`` and ``max_tokens_per_batch`` are left out: with widths rounded to 16 a text's activations do not
    depend on its batch, so a resume may change them."""
    model = (meta.provenance or {}).get("model", {})
    dataset = (meta.provenance or {}).get("dataset", {})
    runtime = (meta.provenance or {}).get("runtime", {})
    parts = {
        "model id": meta.model_id, "model revision": meta.revision, "site": meta.site, "layers": meta.layers,
        "feature types": meta.feature_types, "top_k": meta.top_k, "corpus": meta.dataset_fingerprint,
        # a stream's take(n) has no fingerprint of its own, and its state_dict does not carry n
        "num_samples": dataset.get("num_samples"), "max_length": meta.config.get("max_length"),
        "max_examples_per_neuron": meta.max_examples_per_neuron, "shard start": start,
        "shard end (corpus length or number of processes)": end,
        "skip_first_positions": meta.config.get("skip_first_positions"),
        "max_positions": meta.config.get("max_positions"), "long_texts": meta.config.get("long_texts"),
        "stride": meta.config.get("stride"), "stack": meta.config.get("stack"),
        # another module of the same width under the same layer numbers: the two runs' neurons would be summed
        "module_pattern": meta.config.get("module_pattern"),
        # masks zero neurons by hooks, leaving the weights (and their sample hash) as they are
        "hf_txray masks": runtime.get("masks"),
        # eager and sdpa attention differ in the last bits, as pad_to_multiple_of does
        "attention implementation": runtime.get("attn_implementation"),
        # words and tags of another pipeline (a customised tokenizer, another tagger)
        "spaCy pipeline": annotation,
        # widths rounded otherwise give other activations (float rounding, near-ties); the provenance records one
        "pad_to_multiple_of": (meta.provenance or {}).get("options", {}).get("pad_to_multiple_of"),
        "tokenizer vocabulary": runtime.get("tokenizer_vocab_hash"),
        # local data files (streamed ones too, which have no fingerprint of their own): their content
        "corpus contents (data files or in-memory texts)": dataset.get("content_hash"), "model commit": model.get("commit"),
        "model folder's contents": model.get("content_hash"), "model weights": weights,
        "user feature functions": features,
    }
    key = hashlib.sha256(repr(list(parts.values())).encode()).hexdigest()[:16]
    # checked beside the key (_CheckpointState.load), so that checkpoints written before it was recorded resume:
    # a normalizer that no longer lower-cases splits the same texts into other tokens of the same vocabulary
    parts[TOKENIZER_PART] = runtime.get("tokenizer_hash")
    return key, {name: hashlib.sha256(repr(value).encode()).hexdigest()[:8] for name, value in parts.items()}


TOKENIZER_PART = "tokenizer (normalizer, pre-tokenizer or post-processor)"


@dataclasses.dataclass
class _SavedState:
    """What a checkpoint holds beside its progress: the builder's state dict and the source's kept texts."""

    builder: dict[str, Any]
    texts: dict[int, str]


# How to leave a checkpoint that cannot be resumed (the CLI's checkpoint_dir is OUT/_checkpoint).
START_OVER = ("Use another checkpoint_dir (CLI: another --out), or resume=False (CLI: --no-resume) to start over "
              "(its state is then overwritten)")


def _keep_example_texts(builder: ProfileBuilder, source: Any, through: int) -> None:
    """Bring the top examples up to date (a save flushes all) and keep the texts they refer to, up to the example
    `through` (a stream's texts cannot be read again)."""
    builder.update_examples()
    source.keep_texts(set(builder.examples.data["example_id"].ravel().tolist()), through)


def _save_last_checkpoint(state: "_CheckpointState", builder: ProfileBuilder, source: Any,
                          resume_state: dict[str, Any], through: int) -> None:
    """Save the state after the last batch, so that what comes after (building the profile, saving it: the CLI's
    save to a full disk, or Ctrl-C while the profile is built) resumes without recounting: without it, a resume
    recounted every batch since the last `checkpoint_every`-th, and a run shorter than that, all of them (helper
    324). A save that fails is said and skipped: the profile is built and returned all the same."""
    try:
        _keep_example_texts(builder, source, through)
        state.save(resume_state, builder.state_dict(), source.kept_texts(through))
    except OSError as err:
        logger.warning("The last checkpoint (after every batch) could not be saved: %s. The profile is built "
                       "without it; a resume would start from the checkpoint before.", err)


def check_checkpoint_options(checkpoint_dir: str | Path | None, checkpoint_every: int, resume: bool) -> None:
    """Refuse checkpoint options that cannot work, before any work.

    Raises:
        ConfigurationError: `checkpoint_every` < 1, `resume` without a `checkpoint_dir`, or a `checkpoint_dir`
            that is a file.
        OutputError: a `checkpoint_dir` that could not be written.
    """
    checkpoint_dir = Path(checkpoint_dir).expanduser() if checkpoint_dir else checkpoint_dir  # as the run reads it
    if checkpoint_every < 1:
        raise ConfigurationError(f"checkpoint_every must be >= 1, got {checkpoint_every}.")
    if resume and checkpoint_dir is None:
        raise ConfigurationError("resume=True needs a checkpoint_dir to resume from (the folder given to the "
                                 "interrupted run): pass checkpoint_dir=..., or drop resume.")
    if checkpoint_dir is not None and Path(checkpoint_dir).exists() and not Path(checkpoint_dir).is_dir():
        raise ConfigurationError(f"checkpoint_dir {str(checkpoint_dir)!r} is a file, not a folder: pass a folder "
                                 "(it is created if missing).")
    if checkpoint_dir is not None:  # its rank folders are written at the first checkpoint: refuse now, not then
        check_writable(Path(checkpoint_dir) / "rank", shown=checkpoint_dir)


def _checkpoint_digest(state_file: Path, resume_state: dict[str, Any]) -> str:
    """The sha256 of a checkpoint's state.npz bytes and its progress (examples done, a stream's state_dict())."""
    return hashlib.sha256((bytes_sha256(state_file) + json.dumps(resume_state, sort_keys=True, default=str))
                          .encode()).hexdigest()


class _CheckpointState:
    """A rank's resumable state, written atomically: ``state.npz`` (the :class:`~hf_txray.credit.ProfileBuilder`'s
    state dict, and for streams the texts of the current top examples) and ``progress.json`` (examples done, the
    stream's ``state_dict()``, the run key and, for a stream, the hash of its first texts)."""

    FORMAT = 2  # 1: a whole Profile in the dataset layout, merged and rewritten at every checkpoint

    def __init__(self, directory: str | Path, rank: int, world: int, run_key: str, stream_head: str | None = None,
                 stream_pipeline: str | None = None, run_parts: dict[str, str] | None = None):
        self.path = Path(directory) / f"rank-{rank}-of-{world}"
        self.world = world
        self.run_key = run_key
        self.run_parts = run_parts or {}  # a short hash of each part of the run key (_run_key)
        self.stream_head = stream_head  # StreamingSource.head_hash(): a stream has no fingerprint of its contents
        self.stream_pipeline = stream_pipeline  # StreamingSource.pipeline(): what its saved position fits into

    def save(self, resume_state: dict[str, Any], builder_state: dict[str, Any], texts: dict[int, str]) -> None:
        """`resume_state`: ``processed`` examples of this shard, and for streams the iterable's ``state_dict()``."""
        arrays = {f"builder.{k}": v for k, v in builder_state.items()}
        arrays["texts.ids"] = np.fromiter(texts, dtype=np.int64, count=len(texts))
        arrays["texts.values"] = strings_to_array(list(texts.values()))
        try:
            self._write(arrays, resume_state)
        except OutputError as err:  # named by the folder the user gave, not its rank subfolder
            raise output_error(err, self.path.parent) from err

    def _write(self, arrays: dict[str, np.ndarray], resume_state: dict[str, Any]) -> None:
        with atomic_dir(self.path) as tmp:
            np.savez(tmp / "state.npz", **arrays)
            # one digest of the state and the progress ties the pair: a changed count, or a state.npz of another
            # save, is refused rather than resumed into wrong numbers
            write_json(tmp / "progress.json", {"run_key": self.run_key, "run_parts": self.run_parts,
                                               "format": self.FORMAT,
                                               "stream_head": self.stream_head,
                                               "stream_pipeline": self.stream_pipeline,
                                               "digest": _checkpoint_digest(tmp / "state.npz", resume_state),
                                               **resume_state})

    def load(self) -> tuple[dict[str, Any] | None, _SavedState | None]:
        """The progress and saved state, or ``(None, None)`` when there is no checkpoint yet.

        Raises:
            ConfigurationError: the checkpoint belongs to another run (or, for a stream, to other first texts), was
                written in the old format (a whole profile) by an earlier hf_txray, or is corrupt or partial.
        """
        progress_file, state_file = self.path / "progress.json", self.path / "state.npz"
        if restore_interrupted_swap(self.path, required=("progress.json", "state.npz")):
            logger.warning("resume: the last checkpoint save in %s was interrupted; resuming from the checkpoint "
                           "before it.", self.path)
        if not progress_file.exists():
            if state_file.exists():
                raise self.unusable("has state.npz but no progress.json (a partial copy?)")
            self._refuse_other_process_count()
            logger.warning("resume: no checkpoint in %s yet, starting from the beginning.", self.path)
            return None, None
        try:
            progress = read_json(progress_file)
        except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self.unusable(f"has an unreadable progress.json ({err})") from None
        if not isinstance(progress, dict):
            raise self.unusable("has a progress.json that is not a JSON object")
        found = progress.get("format", 1)
        if found != self.FORMAT:
            raise ConfigurationError(
                f"The checkpoint in {self.path} is in format {found} (1: a whole profile per checkpoint, written by "
                f"earlier hf_txray versions); this version resumes format {self.FORMAT} only. {START_OVER}."
            )
        if progress.get("run_key") != self.run_key:
            saved = progress.get("run_parts")
            saved = saved if isinstance(saved, dict) else {}
            changed = [name for name, value in self.run_parts.items() if name in saved and saved[name] != value]
            # parts an earlier hf_txray did not key its checkpoints by: not known to have changed
            unknown = [name for name in self.run_parts if name not in saved] if saved else []
            what = "; ".join(
                [f"changed since: {', '.join(changed)}"] * bool(changed)
                + [f"not recorded by the hf_txray that wrote it: {', '.join(unknown)}"] * bool(unknown)) or \
                "other model weights, corpus, options, user feature functions or number of processes"
            raise ConfigurationError(
                f"The checkpoint in {self.path} belongs to a different run ({what}). {START_OVER}."
            )
        saved_parts = progress.get("run_parts") if isinstance(progress.get("run_parts"), dict) else {}
        if TOKENIZER_PART in saved_parts and saved_parts[TOKENIZER_PART] != self.run_parts.get(TOKENIZER_PART):
            raise ConfigurationError(
                f"The checkpoint in {self.path} belongs to a different run (changed since: {TOKENIZER_PART}): its "
                f"texts would be split into other tokens than the saved part's. Pass the tokenizer of the saved run. "
                f"{START_OVER}.")
        if progress.get("stream_head") != self.stream_head:
            raise ConfigurationError(
                f"The stream's first texts differ from those of the run saved in {self.path}: another text_column "
                f"was given (pass the one of the saved run), its file or dataset changed since, it is shuffled "
                f"without a seed (pass shuffle(seed=...)), or a generator already read was passed again (pass a new "
                f"one); resuming would mix two corpora. {START_OVER}."
            )
        saved_pipeline = progress.get("stream_pipeline")
        if saved_pipeline is not None and saved_pipeline != self.stream_pipeline:
            raise ConfigurationError(
                f"The stream is built by other steps than the one whose run was saved in {self.path} (then: "
                f"{saved_pipeline}; now: {self.stream_pipeline}): a filter, map, take, skip or shuffle was added or "
                f"removed, so the saved stream position cannot be placed in it and the run cannot resume. Pass the "
                f"stream built as before, or start over. {START_OVER}.")
        if not isinstance(progress.get("processed"), int) or progress["processed"] < 0:
            raise self.unusable("has a progress.json without a valid count of the texts processed ('processed')")
        digest = progress.get("digest")
        if not isinstance(digest, str):  # without it, an edited count would be resumed into wrong numbers
            raise self.unusable("has a progress.json without the digest that ties it to its state.npz")
        for recorded in ("run_key", "run_parts", "format", "stream_head", "stream_pipeline", "digest"):
            progress.pop(recorded, None)
        try:
            with np.load(state_file, allow_pickle=False) as arrays:
                state = {k: arrays[k] for k in arrays.files}
            texts = dict(zip(state.pop("texts.ids").tolist(), array_to_strings(state.pop("texts.values"))))
        except FileNotFoundError:
            raise self.unusable("has progress.json but no state.npz (a partial copy?)") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            # a garbage file reads as a refused pickle, a truncated one as a bad zip: neither message helps
            raise self.unusable(f"has a state.npz that is not a complete .npz archive ({type(err).__name__})") \
                from None
        if _checkpoint_digest(state_file, progress) != digest:
            raise self.unusable("has a state.npz and a progress.json that were not saved together (one was changed, "
                                "or copied from another checkpoint)")
        return progress, _SavedState(sub_state(state, "builder"), texts)

    def _refuse_other_process_count(self) -> None:
        """A checkpoint written by another number of processes sits in other ``rank-*-of-N`` folders: starting over
        beside it would silently redo the whole run."""
        written = sorted({int(m.group(1)) for p in self.path.parent.glob("rank-*-of-*")
                          if (m := re.fullmatch(r"rank-\d+-of-(\d+)", p.name)) and (p / "progress.json").exists()})
        if written and self.world not in written:
            counts = " or ".join(map(str, written))
            raise ConfigurationError(
                f"The checkpoint in {self.path.parent} was written by {counts} "
                f"process{'es' if written != [1] else ''}, and this run has "
                f"{self.world}: a run resumes with the number of processes that wrote its checkpoint (torchrun "
                f"--nproc_per_node {written[0]}). {START_OVER}.")

    def unusable(self, problem: str) -> ConfigurationError:
        """The error for a corrupt or partial checkpoint: what is wrong with it, and how to start over."""
        return ConfigurationError(f"The checkpoint in {self.path} {problem}: it cannot be resumed. {START_OVER}.")


def analyze(model: Any, dataset: Any, config: AnalyzeOptions | ProfilerConfig | dict | None = None, *,
            tokenizer: Any = None, **overrides: Any) -> Profile:
    """Profile which inputs make each neuron the most active unit (TX-Ray: Rethmeier et al., 2020, "TX-Ray:
    Quantifying and Explaining Model-Knowledge Transfer in (Un-)Supervised NLP", UAI).

    Args:
        model (`str` or `PreTrainedModel`): Hub id, local path, or a loaded model (then pass `tokenizer` too unless
            it can be loaded from ``model.name_or_path``).
        dataset: a ``datasets.Dataset``, a ``DatasetDict`` (choose `split`), a Hub dataset id, a local data file
            (.txt/.csv/.json/.jsonl/.parquet) or folder, a list of strings, a list of row dicts
            (``[{"text": ...}, ...]``, the text column chosen as for a ``Dataset``), a ``pandas.DataFrame`` or
            ``pyarrow.Table`` (its rows, likewise), a column of texts (``ds["text"]``, a pandas Series, a numpy or
            pyarrow array), or a stream: an ``IterableDataset``
            (e.g. ``load_dataset(..., streaming=True)``, split across processes with ``split_dataset_by_node``)
            or a generator of strings / rows.
        config (`AnalyzeOptions`, `ProfilerConfig` or `dict`, *optional*): the options below in one object;
            keyword arguments override its fields. An unknown option name raises :class:`ConfigurationError`
            naming the closest valid one.
        tokenizer (*optional*): the model's fast tokenizer (loaded from the model when omitted).
{options}

    Every Hub ref is resolved to a commit sha before any download (``HfApi.model_info``/``dataset_info``, or the
    Hub cache when offline) and everything is loaded at that commit; local paths are pinned by a content hash.
    ``profile.meta.provenance`` records the sources and every option, so that :func:`hf_txray.reproduce` can
    recompute the profile.

    Returns:
        :class:`Profile`, identical on every process when launched with ``accelerate launch`` or ``torchrun``.

    Raises:
        ConfigurationError: an invalid or unknown option (layer out of range, ``top_k`` < 1, unknown site...).
        DatasetError: the corpus cannot be used (unknown id, no text column, empty, non-string rows).
        ModelError: the model cannot be loaded or has no recognisable neuron site.
        OutputError: a `checkpoint_dir` that could not be written.
        ProcessFailedError: another process of a multi-process run failed (of that process's error type too).

    Example:
        ```python
        >>> import hf_txray
        >>> profile = hf_txray.analyze("gpt2", "wikitext.txt", features=("token", "word", "pos"), stage="pretrained")
        >>> profile.top_features(layer=5, neuron=42, feature_type="token", k=5)
        ```
    """
    options = AnalyzeOptions.build(config, overrides)
    with progress_bars_for(options.show_progress), own_default_device():
        return _analyze(model, dataset, tokenizer, options)


def _record_stream_read(dataset: dict[str, Any], source: StreamingSource, world: int, num_counted: int) -> None:
    """Complete a stream's ``provenance["dataset"]`` record after the run: its text column, and the number and
    hash of the texts read when one process read the whole stream (else the texts counted, and no hash)."""
    # whole: every text read was profiled (max_positions may stop a run after its stream was read ahead)
    whole = source.read_hash() if world == 1 and num_counted == source.num_read else None
    dataset.update(streaming=True, text_column=source.text_column, texts_hash=whole,
                   texts_multiset_hash=source.read_multiset_hash() if whole else None,
                   num_texts=source.num_read if whole else num_counted)
    if dataset["kind"] == "in-memory":
        dataset["content_hash"] = whole


def _analyze(model: Any, dataset: Any, tokenizer: Any, o: AnalyzeOptions) -> Profile:
    """:func:`analyze` once its options `o` are gathered: check, pin the sources, load, place, profile."""
    # A process that fails to load its model or corpus (a file missing on its node) tells the others at the run's
    # first exchange, where they wait for it (hf_txray.distributed.failing_together). Every process loads both: the
    # libraries' bars (weight loading, downloads, dataset builds) show on the main one only.
    with failing_together(), library_bars_on_main_process():
        profiler, corpus, column, dataset_id, detected, o = _prepare(model, dataset, tokenizer, o)
    profile = profiler.run(corpus, text_column=column, stage=o.stage, dataset_id=dataset_id,
                           checkpoint_dir=o.checkpoint_dir, checkpoint_every=o.checkpoint_every, resume=o.resume)
    if detected and column is None:  # a stream without declared columns: chosen from its first row, in the run
        _log_detected_column(profile.meta.config["text_column"])
    if o.output_effects:
        from .output_effects import output_effects_table

        profile.output_effects = output_effects_table(profiler.model, profile.layers, o.output_effects_k,
                                                      profiler.tokenizer, stack=profiler.forward.stack)
    return profile


def _prepare(model: Any, dataset: Any, tokenizer: Any, o: AnalyzeOptions):
    """Check the options, pin both sources, load the corpus and the model, place it: the :class:`Profiler` to run,
    with the corpus, its text column (None: chosen in the run), its id, whether the column is detected, and `o` with
    its dtype merged."""
    names, user_features = o.validate()  # numpy ints become ints here: the config below (and its checks) sees ints
    config = o.profiler_config()
    tags = [t for t in names if t in TAG_FEATURES]
    if tags or (o.spacy_model is not None and needs_words(names)):  # a missing spaCy model fails here, not after
        WordAnnotator(tags, o.spacy_model).nlp                       # the model is loaded (loaded once: cached)
    # One dtype: a dtype in model_kwargs becomes o.dtype (recorded and reloaded as such), a second one is refused.
    dtype, model_kwargs = merge_dtype(o.dtype, o.model_kwargs)
    o = dataclasses.replace(o, dtype=dtype, model_kwargs=model_kwargs or None)
    model_kwargs = _with_device_map(model, o.model_kwargs, o.device_map, o.device)
    _refuse_loading_options(model, o)
    check_device(o.device)
    if isinstance(model, (str, Path)):
        resolve_model_path(str(model), model_kwargs.get("gguf_file"))  # a mistyped path fails before any work
    check_checkpoint_options(o.checkpoint_dir, o.checkpoint_every, o.resume)
    # Pin both sources first: a wrong revision, config or split fails here, before any weight is downloaded.
    model_source = resolve_model_source(model, o.revision, o.token)
    pinned = model_source.commit if model_source.kind == "hub" else o.revision
    # the layers, top_k and max_length, from a skeleton of the model built from its config (where it says all):
    # before the corpus and the weights load
    tokenizer = check_before_loading(model, tokenizer, config, revision=pinned, trust_remote_code=o.trust_remote_code,
                                     token=o.token, model_kwargs=model_kwargs,
                                     adapted=model_source.base_model is not None, output_effects=o.output_effects)
    if isinstance(dataset, str) and dataset in corpora.EMBEDDED_NAMES:  # "txray:bbc", as on the command line
        given = [name for name in ("split", "dataset_config", "dataset_revision") if getattr(o, name) is not None]
        if given:
            raise ConfigurationError(
                f"{dataset!r} is an embedded corpus of one split, so {', '.join(given)} do(es) not apply: drop "
                f"{'it' if len(given) == 1 else 'them'}. The embedded corpora are "
                f"{', '.join(corpora.EMBEDDED_NAMES)} (txray:ptb-valid: the Penn Treebank validation sentences).")
        dataset = corpora.by_name(dataset, o.num_samples)
    if o.streaming and not isinstance(dataset, (str, Path)) and not is_stream(dataset):
        logger.warning("streaming=True opens data files, folders and Hub ids as streams; the %s passed is read as "
                       "it is (recorded streaming=False).", type(dataset).__name__)
    if o.streaming and isinstance(dataset, (str, Path)):
        # Opened as a stream: a Hub dataset is pinned to its commit and read as it downloads; a local file or folder
        # is pinned by its content hash (reading it costs far less than profiling it).
        corpus, column, dataset_id, dataset_source = load_pinned_stream(
            dataset, text_column=o.text_column, split=o.split, num_samples=o.num_samples, revision=o.dataset_revision,
            config=o.dataset_config, token=o.token)
    else:
        corpus, column, dataset_id, dataset_source = load_pinned_corpus(
            dataset, text_column=o.text_column, split=o.split, num_samples=o.num_samples, revision=o.dataset_revision,
            config=o.dataset_config, token=o.token, allow_streams=True)
    if dataset_id is None and isinstance(dataset, (str, Path)):
        dataset_id = str(dataset)
    # a stream's rows are read as the run goes: its first row is read and checked now, before the weights load
    head = first_texts(corpus, column) if is_streaming(corpus) and _rereadable(dataset) else None
    dataset_source.text_column_detected = detected = o.text_column is None and not is_texts_only(dataset)
    if detected and column is not None:  # known before the run: said before the model loads
        _log_detected_column(column)
    if user_features and isinstance(model, (str, Path)) and column is not None and not is_streaming(corpus):
        # a broken user feature fails on the first texts now, not at the first batch after loading the model (minutes
        # for a large one) and tagging the corpus; a stream is not read ahead for it (its first batch tells)
        check_user_features(user_features.values(), corpus[:USER_FEATURE_SAMPLE][column])
    with_head, model_id = None, o.model_id
    if model_id is None and corpora.is_default_model_path(model):  # the embedded MiniLM: its Hub id, not the venv path
        model_id = corpora.DEFAULT_MODEL_ID
    if o.output_effects and isinstance(model, (str, Path)):
        from .loading import load_lm_model

        model_id = model_id or str(model)
        head_kwargs = {**(model_kwargs or {}), **({"token": o.token} if o.token is not None else {})}
        with_head = load_lm_model(str(model), revision=pinned, dtype=o.dtype, trust_remote_code=o.trust_remote_code,
                                  model_kwargs=head_kwargs, base_model=model_source.base_model)
        if model_source.base_model is not None and tokenizer is None:  # the adapter's own, else its base's
            from transformers import AutoTokenizer

            tokenizer = adapter_tokenizer(AutoTokenizer, str(model), model_source.base_model, pinned,
                                          o.trust_remote_code, o.token)
    loaded, tok, loaded_id, revision = load_model(with_head if with_head is not None else model, tokenizer,
                                                 revision=pinned, dtype=o.dtype, trust_remote_code=o.trust_remote_code,
                                                 model_kwargs=model_kwargs, token=o.token,
                                                 base_model=model_source.base_model)
    from .provenance import recordable_load_kwargs

    runtime = {"trust_remote_code": o.trust_remote_code,  # never a token, a proxy's password or another secret
               "model_kwargs": recordable_load_kwargs(model_kwargs)}
    loaded, device = _place(loaded, o.device, loaded_here=isinstance(model, (str, Path)))
    profiler = Profiler(loaded, tok, config, model_id=model_id or loaded_id, revision=revision, device=device,
                        model_source=model_source, dataset_source=dataset_source, runtime=runtime)
    profiler.corpus_columns = [column] if is_texts_only(dataset) else (column_names(dataset) or [])
    if head is not None:
        profiler.stream_head = (corpus, *head)
    if o.output_effects:
        from .output_effects import check_output_effects

        check_output_effects(loaded, config.site, config.module_pattern, o.output_effects_k, profiler.forward.stack)
    return profiler, corpus, column, dataset_id, detected, o


def _rereadable(dataset: Any) -> bool:
    """Whether `dataset`, read as a stream, gives its first rows again when read a second time from its start: a data
    file or folder, a Hub id, an ``IterableDataset`` read from files, a generator (hf_txray keeps its first rows);
    not an ``IterableDataset.from_generator`` (one per split of a dict), whose function may go on reading a one-shot
    source: read ahead, its first row would be refused in the run (:func:`~hf_txray.streaming.first_texts`), where
    read once it is profiled."""
    parts = dataset.values() if isinstance(dataset, dict) else [dataset]
    return not any(is_stream(part) and builder_name(part) == "generator" for part in parts)


def _log_detected_column(column: str) -> None:
    """Say which text column analyze chose (the CLI prints it; Python users see it at INFO verbosity)."""
    logger.info("Text column: %r (detected; pass text_column=... to choose another).", column)


# One declaration (hf_txray.options): the signature and the "Args" of analyze() are generated from its fields.
analyze.__signature__ = inspect.signature(analyze).replace(parameters=[
    *list(inspect.signature(analyze).parameters.values())[:4], *keyword_parameters(AnalyzeOptions)])
if analyze.__doc__:  # None under python -OO
    analyze.__doc__ = analyze.__doc__.replace("{options}", args_docstring(AnalyzeOptions))


def _refuse_loading_options(model: Any, o: AnalyzeOptions) -> None:
    """Options that only apply when analyze loads the model, given with a model object: they would be ignored (and
    `revision` recorded as the model's), so the profile would not be what was asked for."""
    if isinstance(model, (str, Path)):
        return
    ignored = [name for name in ("revision", "model_kwargs") if getattr(o, name)]
    current = weights_dtype(model)
    if o.dtype not in (None, "auto") and o.dtype != current:  # normalized: None, "auto" or a torch.dtype
        ignored.append(f"dtype={o.dtype} (the model holds {current})")
    if ignored:
        raise ConfigurationError(
            f"{', '.join(ignored)} apply when hf_txray loads the model (a Hub id or a path), and a loaded "
            f"{type(model).__name__} was passed: load it with from_pretrained(..., revision=..., dtype=..., **kwargs) "
            f"(or convert it: model.to({o.dtype if isinstance(o.dtype, torch.dtype) else 'dtype'})) and pass it as "
            "it is, or pass its id or folder instead."
        )


def _with_device_map(model: Any, model_kwargs: dict[str, Any] | None, device_map: Any, device: Any) -> dict[str, Any]:
    """`model_kwargs` with `device_map` merged in, after checking that the two placements do not conflict."""
    kwargs = dict(model_kwargs or {})
    if device_map is None:
        device_map = kwargs.get("device_map")
    elif kwargs.get("device_map", device_map) != device_map:
        raise ConfigurationError("device_map is given twice (argument and model_kwargs) with different values.")
    if device_map is None:
        return kwargs
    if not isinstance(model, (str, Path)):
        raise ConfigurationError(
            "device_map applies when hf_txray loads the model (a Hub id or a path). A loaded model: load it with "
            "from_pretrained(..., device_map=...) or accelerate.dispatch_model, then pass it as it is."
        )
    if device is not None:
        raise ConfigurationError(
            f"Pass device or device_map, not both: device_map={device_map!r} already places every module."
        )
    kwargs["device_map"] = device_map
    return kwargs


def _place(model: Any, device: Any, loaded_here: bool) -> tuple[Any, Any]:
    """Move `model` to `device` (default: this process's accelerator, for a model loaded here), unless Accelerate
    dispatched it: then its hooks place weights and activations, and ``.to()`` would fail or undo the offload."""
    if is_dispatched(model):
        if device is not None:
            raise ConfigurationError(
                f"The model is dispatched by Accelerate (hf_device_map={model.hf_device_map}) and cannot be moved to "
                f"{device}: leave device unset, inputs go to the device of its input embedding."
            )
        return model, None
    if device is None and loaded_here:
        device = default_device(process_info()[1])
    return (model.to(device) if device is not None else model), device
