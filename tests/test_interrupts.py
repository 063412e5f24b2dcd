"""A Ctrl-C (KeyboardInterrupt) or an exception anywhere in a run leaves the user's model and process as they were:
every module's training flag, no hook left on any module, the torch default device, the warnings filters, no eval
period left open (hf_txray.modes), and the next run's numbers those of a fresh run."""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from tqdm.auto import tqdm

import hf_txray
import hf_txray.logging
import hf_txray.modes
import hf_txray.sites
from hf_txray.probing import LabeledCorpus, extract_activations
from hf_txray.viewer import LiveProfiler
from models import tiny

TEXTS = ["The cat sat on the mat.", "A dog ran in the park today.", "Paris is the capital of France."]


def process_state(model: torch.nn.Module) -> dict:
    """What a run may change and must give back: modes, hooks, default device, warnings filters, eval periods."""
    return {
        "training": [(name, module.training) for name, module in model.named_modules()],
        "hooks": [(name, len(module._forward_hooks), len(module._forward_pre_hooks),
                   len(module._forward_hooks_with_kwargs)) for name, module in model.named_modules()],
        "device": str(torch.get_default_device()),
        "filters": list(warnings.filters),
        "eval_periods": dict(hf_txray.modes._IN_EVAL),
        "progress_bars": len(tqdm._instances) if hasattr(tqdm, "_instances") else 0,  # bars left open
    }


def training_model(kind: str = "bert"):
    model, tokenizer = tiny(kind)
    model.train()  # a model in training mode: a period left open keeps it in eval mode
    return model, tokenizer


def profile(model, tokenizer, **kwargs):
    return hf_txray.analyze(model, TEXTS, tokenizer=tokenizer, features=("token",), show_progress=False, **kwargs)


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["attach", "progress_bar"])
def test_an_interrupt_while_analyze_sets_up_its_hooks_gives_the_model_back(monkeypatch, where):
    """Fresh helper 393: the recorder's hooks and the progress bar were set up between enter_eval and the try that
    gives the eval period back: a Ctrl-C there left the model in eval mode (model.training False for a training
    model) with its period open, so the next analyze did not give training mode back either (and, at the progress
    bar, the recorder's 2 hooks stayed on the model)."""
    model, tokenizer = training_model()
    fresh = profile(*tiny("bert"))
    before = process_state(model)
    if where == "attach":
        monkeypatch.setattr(hf_txray.sites.WinnerRecorder, "attach", interrupt)
    else:
        monkeypatch.setattr(importlib.import_module("hf_txray.analyze"), "tqdm", interrupt)
    with pytest.raises(KeyboardInterrupt):
        profile(model, tokenizer)
    assert process_state(model) == before
    monkeypatch.undo()
    again = profile(model, tokenizer)
    assert process_state(model) == before and model.training
    np.testing.assert_array_equal(again.neuron_count, fresh.neuron_count)
    np.testing.assert_array_equal(again.neuron_mass, fresh.neuron_mass)


def labeled_corpus() -> LabeledCorpus:
    texts = ["a cat sat", "the dog ran"]
    return LabeledCorpus(texts, [np.array([0, 2, 6]), np.array([0, 4, 8])], [np.array([1, 5, 9]), np.array([3, 7, 11])],
                         [np.array([0, 1, 2]), np.array([0, 1, 2])], ["DET", "NOUN", "VERB"])


def test_an_interrupt_while_extract_activations_starts_its_progress_bar_gives_the_model_back(monkeypatch):
    """Fresh helper 393: the progress bar was started between enter_eval and the try that gives the eval period
    back: a Ctrl-C there left a training model in eval mode, its period open for every later run."""
    model, tokenizer = training_model()
    other, other_tokenizer = tiny("bert")
    fresh = extract_activations(other, labeled_corpus(), other_tokenizer, layers=[0, 1])
    before = process_state(model)
    monkeypatch.setattr(hf_txray.logging, "tqdm", interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(model, labeled_corpus(), tokenizer, layers=[0, 1], show_progress=True)
    assert process_state(model) == before
    monkeypatch.undo()
    again = extract_activations(model, labeled_corpus(), tokenizer, layers=[0, 1], show_progress=True)
    assert process_state(model) == before and model.training
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(fresh.values))


@pytest.mark.parametrize("where", ["recorder", "attach", "forward"])
def test_an_interrupt_in_live_text_gives_the_model_back(monkeypatch, where):
    """Fresh helper 393: LiveProfiler.run built its recorder between enter_eval and the try that gives the eval period
    back; an interrupt there (or while attaching, or inside the forward pass) now leaves the model as it was."""
    model, tokenizer = training_model()
    meta = profile(model, tokenizer).meta
    live = LiveProfiler(model, tokenizer, meta)
    fresh = live.run(TEXTS[0], 1, trace_neuron=3).table
    before = process_state(model)
    if where == "recorder":
        monkeypatch.setattr(hf_txray.sites, "ArgmaxThreads", interrupt)
    elif where == "attach":
        monkeypatch.setattr(hf_txray.sites.WinnerRecorder, "attach", interrupt)
    with interrupting_hook(model.encoder.layer[1], enabled=where == "forward"):
        with pytest.raises(KeyboardInterrupt):
            live.run(TEXTS[0], 1, trace_neuron=3)
    assert process_state(model) == before
    monkeypatch.undo()
    again = live.run(TEXTS[0], 1, trace_neuron=3).table
    assert process_state(model) == before and model.training
    pd.testing.assert_frame_equal(again, fresh)


@contextlib.contextmanager
def interrupting_hook(module: torch.nn.Module, at_call: int = 1, enabled: bool = True):
    """A Ctrl-C from inside the forward pass: a forward hook on `module` raising KeyboardInterrupt at its
    `at_call`-th call (none where not `enabled`); removed on leaving."""
    calls = [0]

    def hook(*args):
        calls[0] += 1
        if calls[0] == at_call:
            raise KeyboardInterrupt

    handle = module.register_forward_hook(hook) if enabled else None
    try:
        yield calls
    finally:
        if handle is not None:
            handle.remove()


def _analyze_numbers(model, tokenizer):
    got = profile(model, tokenizer, batch_size=1)
    return [got.neuron_count, got.neuron_mass]


def _extract_numbers(model, tokenizer):
    return [np.asarray(extract_activations(model, labeled_corpus(), tokenizer, layers=[0, 1], batch_size=1).values)]


def _masked_numbers(model, tokenizer):
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    from hf_txray.pruning import masked

    with torch.no_grad(), masked(model, {1: [0, 1, 2]}):
        return [model(**inputs).last_hidden_state.numpy()]


def _ablate_numbers(model, tokenizer):
    from hf_txray.probing import ablate

    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad(), ablate(model, {0: [1, 2], 1: [0, 5]}):
        return [model(**inputs).last_hidden_state.numpy()]


def _attribution_numbers(model, tokenizer):
    from hf_txray.probing import neuron_attributions

    got = neuron_attributions(model, tokenizer, TEXTS[0], 1, 3, n_steps=4)
    return [np.asarray(got.scores)]


def _effects_numbers(model, tokenizer):
    from hf_txray.output_effects import output_effects

    return [output_effects(model, 1, 2, k=5, tokenizer=tokenizer).to_numpy()]


def _lm(kind):
    from models import bpe_tokenizer, tiny_llama_lm

    return (tiny_llama_lm(), bpe_tokenizer()) if kind == "llama_lm" else tiny(kind)


FORWARD_CASES = {  # name: (model kind, numbers(model, tokenizer), the block hooked, the call of its hook that interrupts)
    "analyze-1st": ("bert", _analyze_numbers, 1, 1),
    "analyze-3rd": ("bert", _analyze_numbers, 1, 3),
    # extraction stops each forward pass at the last site it reads (inside block 1), before block 1's own hook runs
    "extract-2nd": ("bert", _extract_numbers, 0, 2),
    "extract-1st": ("bert", _extract_numbers, 0, 1),
    "masked": ("bert", _masked_numbers, 1, 1),
    "ablate": ("bert", _ablate_numbers, 1, 1),
    "attributions-1st": ("bert", _attribution_numbers, 1, 1),
    "attributions-3rd": ("bert", _attribution_numbers, 1, 3),
    "output_effects": ("llama_lm", _effects_numbers, 1, 1),
}


def block(model, index: int):
    base = getattr(model, "model", model)
    return base.layers[index] if hasattr(base, "layers") else base.encoder.layer[index]


@pytest.mark.parametrize("case", list(FORWARD_CASES))
def test_an_interrupt_inside_the_forward_pass_leaves_the_model_and_process_as_they_were(case):
    """Fresh helper 393: a KeyboardInterrupt raised from the model's own forward pass (a hook on one of its blocks,
    at its Nth call) leaves every module's mode, the hooks, the default device, the warnings filters and the eval
    periods as before, and the next call's numbers equal a fresh model's."""
    kind, numbers, hooked, at_call = FORWARD_CASES[case]
    fresh = numbers(*_lm(kind))
    model, tokenizer = _lm(kind)
    model.train(case not in ("masked", "ablate"))  # those run the model as it is (no dropout wanted)
    before = process_state(model)
    with interrupting_hook(block(model, hooked), at_call) as calls:
        with pytest.raises(KeyboardInterrupt):
            numbers(model, tokenizer)
    assert calls[0] == at_call
    assert process_state(model) == before
    again = numbers(model, tokenizer)
    assert process_state(model) == before
    for got, expected in zip(again, fresh):
        np.testing.assert_array_equal(got, expected)


def folder_bytes(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["writing", "header", "swap"])
def test_an_interrupted_save_keeps_the_previous_save_and_leaves_no_temporary_folder(tmp_path, monkeypatch, where):
    """Fresh helper 393: a Ctrl-C while Profile.save_pretrained writes, writes its header, or swaps the folders in
    leaves the previous save there byte for byte, and nothing beside it."""
    import hf_txray.artifact
    import hf_txray.io_utils

    first = profile(*tiny("bert"))
    second = profile(*tiny("bert", seed=1))
    target = tmp_path / "profile"
    first.save_pretrained(target)
    good = folder_bytes(target)
    if where == "writing":
        monkeypatch.setattr(type(second), "_save_pretrained", interrupt)
    elif where == "header":
        monkeypatch.setattr(hf_txray.artifact, "write_header", interrupt)
    else:  # the new folder's rename, after the old one was moved aside
        replaces = []
        real_replace = os.replace

        def replace(src, dst):
            replaces.append(src)
            if len(replaces) == 2:
                raise KeyboardInterrupt
            return real_replace(src, dst)

        monkeypatch.setattr(hf_txray.io_utils.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        second.save_pretrained(target)
    monkeypatch.undo()
    assert folder_bytes(target) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile"]
    np.testing.assert_array_equal(hf_txray.Profile.from_pretrained(target).neuron_count, first.neuron_count)


def test_an_interrupted_push_leaves_no_temporary_folder(monkeypatch, tmp_path):
    """Fresh helper 393: a Ctrl-C during the upload of push_to_hub leaves no folder in the temporary directory."""
    import tempfile

    import hf_txray.artifact

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(hf_txray.artifact, "upload_folder", interrupt)
    with pytest.raises(KeyboardInterrupt):
        profile(*tiny("bert")).push_to_hub("user/profiles", token="hf_x")
    assert list(tmp_path.iterdir()) == []


def masking_hook(model, at_call: int):
    """A hook on the embeddings that, at their `at_call`-th call, masks neurons 0-9 of block 0 (as another thread's
    ``masked`` / ``ablate`` would while a run reads the model)."""
    from hf_txray.pruning.masks import mask_neurons

    calls = [0]

    def hook(*args):
        calls[0] += 1
        if calls[0] == at_call:
            mask_neurons(model, {0: list(range(10))})

    return model.embeddings.register_forward_hook(hook)


def test_extract_activations_refuses_masks_changed_while_it_runs():
    """Fresh helper 393: analyze refused a run during which another thread's ablation began or ended
    (masks_version); extract_activations did not, and returned the 2nd sentence's 3 word vectors read with block
    0's neurons 0-9 masked (0.0 for up to 0.133 unmasked), the 1st sentence's unmasked, without a word. Now it refuses them, as analyze does."""
    from hf_txray.errors import ModelError

    model, tokenizer = tiny("bert")
    handle = masking_hook(model, at_call=3)  # two probe passes, then the 1st batch: the 2nd sentence runs masked
    try:
        with pytest.raises(ModelError, match="while extract_activations ran"):
            extract_activations(model, labeled_corpus(), tokenizer, layers=[0], batch_size=1)
    finally:
        handle.remove()


@pytest.mark.parametrize("run", ["live", "attributions"])
def test_live_text_and_attributions_refuse_masks_changed_while_they_run(run):
    """Fresh helper 393: the live text and neuron_attributions, like extract_activations, read the model's forward
    passes without checking masks_version: a mask put on during their passes gave numbers of two models."""
    from hf_txray.errors import ModelError
    from hf_txray.probing import neuron_attributions

    model, tokenizer = tiny("bert")
    live = LiveProfiler(model, tokenizer, profile(model, tokenizer).meta)
    handle = masking_hook(model, at_call=1)
    try:
        with pytest.raises(ModelError, match="while (the live text|neuron_attributions) ran"):
            if run == "live":
                live.run(TEXTS[0], 0)
            else:
                neuron_attributions(model, tokenizer, TEXTS[0], 0, 3, n_steps=4)
    finally:
        handle.remove()


@pytest.mark.parametrize("where", ["save_warning", "compiled_graphs"])
def test_a_mask_interrupted_while_it_is_put_on_is_not_left_on_the_model(monkeypatch, where):
    """Fresh helper 393: mask_neurons attached its hooks, then registered the handle's save warning, listed it and
    reset torch's compiled graphs; an interrupt in between left the mask on the model while ``with masked(...)``
    never began: every later forward pass ran with the neurons at 0 (and, before the handle was listed, neither
    unprune nor active_masks knew of it)."""
    import hf_txray.pruning.masks as masks
    from hf_txray.pruning import active_masks, masked

    model, tokenizer = tiny("bert")
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
    before = process_state(model)
    if where == "save_warning":
        monkeypatch.setattr(torch.nn.Module, "register_state_dict_post_hook", interrupt)
    else:
        monkeypatch.setattr(masks, "drop_compiled_graphs", interrupt)
    with pytest.raises(KeyboardInterrupt):
        with masked(model, {0: list(range(10)), 1: [0, 1, 2]}):
            pass
    monkeypatch.undo()
    assert process_state(model) == before and active_masks(model) == []
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).last_hidden_state, expected, rtol=0, atol=0)


@pytest.mark.parametrize("where", ["device", "forward"])
def test_an_interrupt_in_run_predictions_gives_the_model_back(monkeypatch, where):
    """Fresh helper 393: run_predictions (evaluate_pruning's passes) read the model's device between enter_eval and
    the try that gives the eval period back: an interrupt there left a training model in eval mode, for good."""
    import hf_txray.evaluation as evaluation
    from models import bpe_tokenizer, tiny_llama_lm

    tokenizer = bpe_tokenizer()
    batches = [dict(tokenizer([text], return_tensors="pt")) for text in TEXTS]
    fresh = evaluation.run_predictions(tiny_llama_lm(), batches, "causal-lm")
    model = tiny_llama_lm().train()
    before = process_state(model)
    if where == "device":
        monkeypatch.setattr(evaluation, "_device_of", interrupt)
    with interrupting_hook(block(model, 1), enabled=where == "forward"), pytest.raises(KeyboardInterrupt):
        evaluation.run_predictions(model, batches, "causal-lm")
    monkeypatch.undo()
    assert process_state(model) == before and model.training
    assert evaluation.run_predictions(model, batches, "causal-lm") == fresh
    assert process_state(model) == before


def test_an_interrupted_analyze_keeps_the_callers_default_device(tmp_path):
    """Fresh helper 393: analyze runs with the CPU as torch's default device (own_default_device); a Ctrl-C from
    the forward pass gives the caller's default device ("meta" here) back, and the next run's numbers are a fresh
    run's."""
    fresh = _analyze_numbers(*tiny("bert"))
    model, tokenizer = tiny("bert")
    torch.set_default_device("meta")
    try:
        with interrupting_hook(block(model, 1), 2), pytest.raises(KeyboardInterrupt):
            _analyze_numbers(model, tokenizer)
        assert torch.get_default_device().type == "meta"
        again = _analyze_numbers(model, tokenizer)
        assert torch.get_default_device().type == "meta"
    finally:
        torch.set_default_device(None)
    for got, expected in zip(again, fresh):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("at_call", [9, 14])  # 7 probe passes, then the 9 batches: the 2nd and the 7th
def test_an_analyze_interrupted_between_checkpoints_resumes_to_a_fresh_runs_numbers(tmp_path, at_call):
    """Fresh helper 393: a Ctrl-C during a checkpointed analyze (one batch per checkpoint) leaves a checkpoint
    folder that resumes to the numbers of an uninterrupted run, with nothing half-written beside it."""
    texts = TEXTS * 3
    kwargs = dict(tokenizer=tiny("bert")[1], features=("token",), show_progress=False, batch_size=1,
                  checkpoint_every=1)
    fresh = hf_txray.analyze(tiny("bert")[0], texts, **{k: v for k, v in kwargs.items() if k != "checkpoint_every"})
    model = tiny("bert")[0]
    folder = tmp_path / "checkpoint"
    with interrupting_hook(block(model, 1), at_call), pytest.raises(KeyboardInterrupt):
        hf_txray.analyze(model, texts, checkpoint_dir=str(folder), **kwargs)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    resumed = hf_txray.analyze(model, texts, checkpoint_dir=str(folder), resume=True, **kwargs)
    np.testing.assert_array_equal(resumed.neuron_count, fresh.neuron_count)
    np.testing.assert_array_equal(resumed.neuron_mass, fresh.neuron_mass)


def test_a_removal_interrupted_between_layers_says_the_model_is_half_pruned(monkeypatch):
    """prune(mode="remove") slices layer after layer in place and writes the config last: a Ctrl-C after the first
    layer left a model whose layer 0 had lost its neurons while its config still gave the old width, with nothing
    said. Keeping the old weights to undo it would double the MLP's memory at the peak, so the interrupt now carries
    a note naming the changed layers and the fix (load the model again); an interrupt before any layer says nothing."""
    import hf_txray.pruning.remove as remove

    model, _ = tiny("bert")
    width = model.config.intermediate_size
    plan = {0: [1, 5, 9, 11], 1: [2, 3, 7, 8]}
    real, calls = remove._slice_linear, []

    def slice_then_stop(module, keep, side):
        calls.append(side)
        if len(calls) == 3:  # layer 0's up and down projections are cut; layer 1's up is next
            raise KeyboardInterrupt
        real(module, keep, side)

    monkeypatch.setattr(remove, "_slice_linear", slice_then_stop)
    with pytest.raises(KeyboardInterrupt) as caught:
        hf_txray.prune(model, None, plan, mode="remove")
    assert any("layer(s) [0]" in note and "load it again" in note for note in getattr(caught.value, "__notes__", []))
    assert model.config.intermediate_size == width  # the config is written last: what the note is about
    calls.clear()
    monkeypatch.setattr(remove, "_slice_linear", interrupt)
    fresh, _ = tiny("bert")
    with pytest.raises(KeyboardInterrupt) as caught:
        hf_txray.prune(fresh, None, plan, mode="remove")
    assert not getattr(caught.value, "__notes__", [])  # nothing was changed: nothing to say


def test_masks_put_on_before_a_run_and_kept_through_it_are_not_refused():
    """Helper 400: the masks_version checks refuse masks put on or taken off *while* a run reads the model, not masks
    already on when it starts (nested ``masked``, ``ablate``): extract_activations, the live text and
    neuron_attributions read the model as masked, equal to a plain torch pre-hook zeroing the same neurons."""
    from hf_txray.probing import ablate, neuron_attributions
    from hf_txray.pruning import masked

    model, tokenizer = tiny("bert")
    live = LiveProfiler(model, tokenizer, profile(model, tokenizer).meta)
    zeroed, inputs = {0: [1, 2, 7], 1: [0, 3]}, tokenizer(TEXTS[0], return_tensors="pt")
    seen = {}

    def zeroing(layer):
        def hook(module, args):
            x = args[0].clone()
            x[..., zeroed[layer]] = 0
            seen[layer] = x
            return (x,)
        return hook

    with contextlib.ExitStack() as hooks:
        for layer in (0, 1):
            hooks.callback(model.encoder.layer[layer].output.dense.register_forward_pre_hook(zeroing(layer)).remove)
        with torch.no_grad():
            model(**inputs)
    with masked(model, {0: [1, 2]}), masked(model, {0: [7], 1: [0, 3]}):
        acts = extract_activations(model, labeled_corpus(), tokenizer, layers=[0, 1])
        table = live.run(TEXTS[0], 1, trace_neuron=5).table
    with ablate(model, zeroed):
        attribution = neuron_attributions(model, tokenizer, TEXTS[0], 1, 5, position=3, n_steps=4)
    assert attribution.activation == pytest.approx(float(seen[1][0, 3, 5]), abs=1e-5)
    np.testing.assert_allclose(table["traced"], seen[1][0, table["position"].to_numpy(), 5].numpy(), atol=1e-5)
    assert (np.asarray(acts.values)[:, [1, 2, 7, 48, 51]] == 0).all()  # column c: neuron c % 48 of layer c // 48
