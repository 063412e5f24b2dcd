"""Live text in the viewer: typed text run through the profiling engine, each token's winning neuron.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..counts import as_int
from ..errors import ConfigurationError
from ..features import with_stripped_marks
from ..tables import covering_pieces


@dataclass
class LiveText:
    """The winners of one typed text at one layer, computed with the profiling engine.

    Attributes:
        table (`pd.DataFrame`): one row per creditable token: position, token, layer, neuron (the winner; -1 when
            no neuron is credited, i.e. the best activation is <= 0), activation, for a profile of ``top_k`` > 1
            ``neuron_2``, ``activation_2``... up to ``top_k`` (the next winners, in descending order; -1 when not
            credited), and ``traced`` (the traced neuron's activation there, when one was asked for).
        spans (`list[tuple[str, float | None]]`): the text cut into tokens and the text between them, each token
            scored by its winner's activation over the text's largest (for ``HighlightedText``) and followed by
            its winner's number in subscript digits (:func:`neuron_mark`); a character several tokens cover (the
            byte-level pieces of one emoji, an NFKC ligature) is shown once, with the token of largest score.
        span_rows (`list[int | None]`): for each span, its row of `table` (None between tokens).
        trace_spans (`list[tuple[str, float | None]]`): the same with the traced neuron's activation over its
            largest absolute value in the text (empty without a traced neuron).
    """

    table: pd.DataFrame
    spans: list[tuple[str, float | None]]
    trace_spans: list[tuple[str, float | None]]
    span_rows: list[int | None]
    truncated: bool = False  # the text was longer than the model's limit and was cut


class LiveProfiler:
    """Runs typed text through the engine with the settings of a stage's profile (site, layers, module_pattern,
    stack, skip_first_positions, top_k): the same tokenisation and creditable positions (``build_batch``), the same forward
    pass of the profiled stack (:class:`~hf_txray.forward.StackForward`: a decoder stack is run with teacher forcing)
    and the same winner hooks (:class:`~hf_txray.sites.WinnerRecorder`) as :func:`hf_txray.analyze`, so a token's
    winner here is the neuron ``analyze`` credits on that text."""

    def __init__(self, model: Any, tokenizer: Any, meta: Any):
        from ..analyze import Profiler, ProfilerConfig

        # max_length: the model's own limit, not the profile's (a typed text may be longer than the corpus
        # windows); a text within the profile's max_length gets exactly the winners analyze credits.
        # Profiles saved before `stack` and `skip_first_positions` were recorded used analyze's defaults.
        self.top_k = int(meta.top_k or 1)
        config = ProfilerConfig(layers=list(meta.layers), site=meta.site, features=("token",), top_k=self.top_k,
                                module_pattern=meta.config.get("module_pattern"), stack=meta.config.get("stack"),
                                skip_first_positions=meta.config.get("skip_first_positions", "auto"))
        self.profiler = Profiler(model, tokenizer, config, model_id=meta.model_id)
        self.layers = [s.layer for s in self.profiler.sites]

    def run(self, text: str, layer: int, trace_neuron: int | None = None) -> LiveText:
        import torch

        from ..batching import build_batch
        from ..features import TokenVocabulary
        from ..modes import enter_eval
        from ..sites import WinnerRecorder

        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError("Type or paste some text.")
        # as ints (counts.as_int): layer True ran as layer 1 (True == 1), and trace_neuron 2.7 traced neuron 2
        if as_int(layer) not in self.layers:
            raise ConfigurationError(f"Layer {layer!r} was not profiled; layers: {self.layers} (an int).")
        layer = as_int(layer)
        p = self.profiler
        vocabs = {"token": TokenVocabulary(p.tokenizer)}
        batch = build_batch([text], 0, p.tokenizer, p.max_length, ["token"], vocabs,
                            skip_first_positions=p.skip_first_positions)
        if batch.num_positions == 0:
            raise ConfigurationError("The text has no token to credit (only special tokens or spaces, or only the first "
                                     f"{p.skip_first_positions} positions, which the profile skips).")

        slot = self.layers.index(layer)
        site = p.sites[slot]
        hooked = p.forward.positions(batch.positions, batch.inputs["input_ids"].shape[1]).to(p.device)
        if trace_neuron is not None:  # before enter_eval: a refused neuron leaves no eval period or hook behind
            _check_neuron(site, trace_neuron)
        from ..pruning.masks import masks_version, refuse_changed_masks

        masks = masks_version(p.model)  # another thread's ablation during the pass: refused after it
        recorder = WinnerRecorder([site], top_k=self.top_k)  # no hook until attached, inside the try
        restore_modes = enter_eval(p.model)  # first: a model it refuses leaves no hook behind
        traced: list[torch.Tensor] = []
        handle = None
        try:
            recorder.attach()
            handle = _trace_hook(site, trace_neuron, hooked, traced) if trace_neuron is not None else None
            recorder.positions = hooked
            recorder.grid = p.forward.hooked_grid(*batch.inputs["input_ids"].shape)
            recorder.enabled = True
            with torch.no_grad():
                p.forward({k: v.to(p.device) for k, v in batch.inputs.items()})
        finally:
            recorder.enabled = False
            recorder.detach()
            if handle is not None:
                handle.remove()
            restore_modes()
        refuse_changed_masks(p.model, masks, "the live text")
        all_values = recorder.values[0].float().cpu().numpy().astype(np.float64)  # (positions, top_k), descending
        all_indices = recorder.indices[0].cpu().numpy().astype(np.int64)
        values = all_values[:, 0]
        credited = values > 0  # the credit rule of hf_txray.credit: only positive winners are credited
        tokens = [vocabs["token"].items[i] for i in batch.feature_ids["token"]]
        table = pd.DataFrame({"position": batch.token_index, "token": tokens, "layer": layer,
                              "neuron": np.where(credited, all_indices[:, 0], -1), "activation": values})
        for rank in range(1, self.top_k):  # a top-k profile credits every positive winner: the others beside
            table[f"neuron_{rank + 1}"] = np.where(all_values[:, rank] > 0, all_indices[:, rank], -1)
            table[f"activation_{rank + 1}"] = all_values[:, rank]
        if traced:
            table["traced"] = traced[0].float().cpu().numpy().astype(np.float64)
        marks = [neuron_mark(n) for n in table["neuron"]]
        spans, rows = _text_spans(text, batch.char_start, batch.char_end, np.where(credited, values, 0.0),
                                  marks=marks)
        trace_spans = _text_spans(text, batch.char_start, batch.char_end, table["traced"].to_numpy(),
                                  signed=True)[0] if traced else []
        return LiveText(table, spans, trace_spans, rows, bool(batch.num_truncated))


def _trace_hook(site: Any, neuron: int, positions: Any, out: list) -> Any:
    """A hook keeping one neuron's activation at the creditable positions (the site's captured tensor)."""
    from ..hooks import Trace

    _check_neuron(site, neuron)

    def keep(slot: int, tensor: Any) -> None:
        out.append(tensor.detach().reshape(-1, tensor.shape[-1])[:, int(neuron)].index_select(0, positions))

    return Trace([site], read=keep).attach()


def _check_neuron(site: Any, neuron: int) -> None:
    """Refuse a traced neuron the site does not have.

    Raises:
        ConfigurationError: `neuron` is not one of the site's ``width`` neurons.
    """
    if as_int(neuron) is None:  # int() traced neuron 2.7 as neuron 2, without a word (helper 395)
        raise ConfigurationError(f"The traced neuron must be an int (a neuron's index), got {neuron!r}.")
    if not 0 <= as_int(neuron) < site.width:
        raise ConfigurationError(f"Neuron {neuron} is out of range: layer {site.layer} has {site.width} neurons.")


SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def neuron_mark(neuron: int) -> str:
    """A winner's number as subscript digits, shown after its token in the live text (``"Paris₁₇"``)."""
    return str(int(neuron)).translate(SUBSCRIPT) if neuron >= 0 else ""


def _text_spans(text: str, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, signed: bool = False,
                marks: list[str] | None = None) -> tuple[list[tuple[str, float | None]], list[int | None]]:
    """The whole text as spans: the characters tokens cover scored by score / largest (absolute) score, a character
    several tokens cover by the token of largest ``|score|`` (:func:`~hf_txray.tables.covering_pieces`), an accent no
    token covers with its letter (:func:`~hf_txray.features.with_stripped_marks`), gaps unscored, each token's mark
    (unscored) after its last shown character when `marks` are given; and each span's token row (None otherwise)."""
    scale = float(np.abs(scores).max()) if len(scores) else 0.0
    scale = scale or 1.0
    ends = with_stripped_marks(text, starts, ends)
    spans: list[tuple[str, float | None]] = []
    rows: list[int | None] = []
    cursor = 0
    for start, end, i in covering_pieces(starts, ends, scores):
        if start > cursor:
            spans.append((text[cursor:start], None))
            rows.append(None)
        value = float(scores[i]) / scale
        spans.append((text[start:end], value if signed else max(value, 0.0)))
        rows.append(i)
        if marks and marks[i] and end == ends[i]:
            spans.append((marks[i], None))
            rows.append(i)  # clicking the mark opens the same neuron
        cursor = end
    if cursor < len(text):
        spans.append((text[cursor:], None))
        rows.append(None)
    return spans, rows
