"""Threads sharing one model: each hf_txray run reads only its own thread's forward passes (a Gradio worker thread,
a ThreadPoolExecutor running several corpora against one loaded model). Every overlap is forced with barriers in
the model's forward pass, so that both threads are inside a forward pass, with their hooks on, at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import hf_txray
from hf_txray import ModelError
from hf_txray.hooks import module_hooks
from hf_txray.probing import extract_activations, from_columns
from hf_txray.viewer import LiveProfiler
from models import bert_tokenizer, bpe_tokenizer, tiny_bert, tiny_gpt2

WORDS = "the cat sat on a mat and dogs ran over hills while birds sang in trees near rivers".split()


def corpus(seed: int, num: int = 24) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[str(w) for w in rng.choice(WORDS, size=int(rng.integers(3, 10)))] for _ in range(num)]


class Overlap:
    """Hooks that hold the first `passes` forward passes of `size` rows (a run's batches, not the one-text checks
    before it) of each of two threads until both are inside one (at the first block's input) and again until both
    have run every block (at `last`): each thread's pass then runs while the other's hf_txray hooks are on."""

    def __init__(self, first, last, passes: int = 2, size: int = 3):
        self.barrier = threading.Barrier(2, timeout=30)
        self.passes, self.size, self.seen = passes, size, {}
        self.hooks = [("pre", first, self.wait), ("pre", last, self.wait)]

    def wait(self, module, args) -> None:
        if args[0].shape[0] != self.size:
            return
        count = self.seen.setdefault((threading.get_ident(), id(module)), [0])
        count[0] += 1
        if count[0] <= self.passes:
            self.barrier.wait()


def in_two_threads(run, inputs: list, overlap: Overlap) -> list:
    with module_hooks(overlap.hooks), ThreadPoolExecutor(2) as pool:
        return list(pool.map(run, inputs))


def test_two_analyze_runs_on_one_model_each_count_their_own_corpus():
    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    corpora = [[" ".join(words) for words in corpus(seed)] for seed in (1, 2)]

    def run(texts):
        return hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), batch_size=3,
                                num_workers=0, show_progress=False)

    alone = [run(texts) for texts in corpora]
    together = in_two_threads(run, corpora, Overlap(model.h[0], model.ln_f))
    for one, two in zip(alone, together):
        np.testing.assert_array_equal(two.neuron_count, one.neuron_count)
        np.testing.assert_allclose(two.neuron_mass, one.neuron_mass, rtol=0, atol=1e-6)


def test_two_extractions_on_one_model_each_read_their_own_words():
    model, tokenizer = tiny_bert(), bert_tokenizer()
    corpora = [from_columns({"tokens": words, "tags": [["X"] * len(w) for w in words]}, "tokens", "tags")
               for words in (corpus(1), corpus(2))]

    def run(labelled):
        return extract_activations(model, labelled, tokenizer, layers=[0, 1], batch_size=3)

    alone = [run(labelled) for labelled in corpora]
    together = in_two_threads(run, corpora, Overlap(model.encoder.layer[0], model.pooler))
    for one, two in zip(alone, together):
        np.testing.assert_allclose(np.asarray(two.values), np.asarray(one.values), rtol=0, atol=1e-6)


def test_two_live_text_requests_on_one_model_each_show_their_own_winners():
    """What two Gradio worker threads do when two users run the Live text tab at once (one model, one engine)."""
    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    texts = ["the cat sat on a mat and dogs ran", "birds sang in trees near rivers over hills"]
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), show_progress=False)
    live = LiveProfiler(model, tokenizer, profile.meta)

    def run(text):
        return live.run(text, 1, trace_neuron=3).table

    alone = [run(text) for text in texts]
    together = in_two_threads(run, texts, Overlap(model.h[0], model.ln_f, passes=1, size=1))
    for one, two in zip(alone, together):
        assert two.to_dict("list") == one.to_dict("list")


def test_two_viewer_comparisons_at_once_leave_the_warning_filters_as_they_were(monkeypatch):
    """Two Gradio worker threads derive two stage pairs' reports at once (their warnings silenced for the block):
    Python's warning filters are process-wide, so the second block, begun inside the first and ended after it, put
    back the first one's "ignore" filter for good, and every later warning of the process was silenced."""
    import warnings

    import hf_txray.report as report_module
    from hf_txray.viewer import ResultsView

    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    profiles = {stage: hf_txray.analyze(model, [" ".join(words) for words in corpus(seed, 6)], tokenizer=tokenizer,
                                        features=("token",), stage=stage, show_progress=False)
                for seed, stage in enumerate(["a", "b", "c"])}
    view = ResultsView("x", profiles, {})
    compare, first_in, inside, first_done = report_module.compare, *(threading.Event() for _ in range(3))

    def overlapping(a, b, **kwargs):
        if b.meta.stage == "b":  # the first: still inside while the second begins (or waits its turn)
            first_in.set()
            inside.wait(2)
        else:  # the second: inside its block, ends after the first has left its own
            inside.set()
            first_done.wait(10)
        return compare(a, b, **kwargs)

    def first():
        view.report_for("a", "b")
        first_done.set()

    def second():
        first_in.wait(10)
        view.report_for("a", "c")

    monkeypatch.setattr(report_module, "compare", overlapping)
    filters = list(warnings.filters)
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert list(warnings.filters) == filters
    assert view.report_for("a", "b") is not None and view.report_for("a", "c") is not None


def test_an_ablation_begun_in_another_thread_during_analyze_is_refused():
    """Masks edit every thread's forward passes (DataParallel's replicas run in threads of their own): an ablation
    that another thread puts on while analyze runs changed its later batches without a word (tiny GPT-2: credited
    mass 91.45 alone, 81.45 with 20 neurons per layer ablated from the fourth batch on, masks recorded as None)."""
    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    texts = [" ".join(words) for words in corpus(1)]
    start, on, leave = threading.Event(), threading.Event(), threading.Event()
    batches = []

    def fourth_batch(module, args) -> None:
        if threading.current_thread() is threading.main_thread() and args[0].shape[0] == 3:
            batches.append(1)
            if len(batches) == 4:
                start.set()
                on.wait(10)

    def ablating():
        start.wait(30)
        with hf_txray.ablate(model, {0: list(range(20)), 1: list(range(20))}):
            on.set()
            leave.wait(30)

    other = threading.Thread(target=ablating)
    other.start()
    try:
        with module_hooks([("pre", model.h[0], fourth_batch)]), pytest.raises(ModelError, match="put on or taken off"):
            hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), batch_size=3, num_workers=0,
                             show_progress=False)
    finally:
        leave.set()
        other.join(30)
    # the same run with no ablation meanwhile is not refused
    hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), batch_size=3, num_workers=0,
                     show_progress=False)


def test_live_text_and_attribution_requests_at_once_on_the_viewer_model(tmp_path):
    """Two Gradio worker threads: one explains a neuron (Captum's hooks on the model), the other runs the Live text
    tab on the same model, its forward pass landing inside the attribution's."""
    pytest.importorskip("captum")
    import torch

    from hf_txray.viewer import app

    model, tokenizer = tiny_bert(), bert_tokenizer()
    texts = [" ".join(words) for words in corpus(3, 8)]
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), stage="pretrained",
                               show_progress=False)
    hf_txray.save_to_disk(tmp_path / "results", [profile], plots=False)
    source = str(tmp_path / "results")
    app.open_results(source, reload=True)
    stats = profile.neuron_stats()
    layer, neuron = (int(v) for v in stats.sort_values("count").iloc[-1][["layer", "neuron"]])
    attribution = app.AttributionModel((model, tokenizer))
    explain = lambda: app.explain_neuron(source, layer, neuron, "pretrained", 1, attribution, n_steps=4)  # noqa: E731
    live = lambda: app.live_text(source, "a cat", layer, None, attribution)  # noqa: E731
    alone = explain(), live()

    in_captum, live_done = threading.Event(), threading.Event()
    explainer = {}

    def hold(module, args) -> None:  # at the pooler: every block of the pass has run
        if threading.get_ident() == explainer.get("id") and torch.is_grad_enabled() and not in_captum.is_set():
            in_captum.set()
            live_done.wait(3)  # the live request's whole pass, inside the attribution's (or, in turn, after it)

    def explaining():
        explainer["id"] = threading.get_ident()
        return explain()

    def living():
        in_captum.wait(30)
        try:
            return live()
        finally:
            live_done.set()

    with module_hooks([("pre", model.pooler, hold)]), ThreadPoolExecutor(2) as pool:
        together = pool.submit(explaining), pool.submit(living)
        together = together[0].result(), together[1].result()
    assert together[0][0] == alone[0][0]
    assert together[0][2]["score"].tolist() == pytest.approx(alone[0][2]["score"].tolist(), rel=1e-6, abs=1e-9)
    assert together[1][3].equals(alone[1][3])


def test_a_training_model_stays_in_eval_mode_until_the_last_of_two_runs_ends():
    """Each run puts the model in eval mode and gives it back the modes it found at its end: a run begun first and
    ended first put a training model back in training mode while the other still ran (whose later batches then ran
    with dropout), and the other, ending last, left it in eval mode."""
    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    model.train()
    texts = [" ".join(words) for words in corpus(1)]
    run = lambda texts: hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",),  # noqa: E731
                                         batch_size=3, num_workers=0, show_progress=False)
    alone = run(texts)
    assert model.training and model.h[0].mlp.dropout.training
    short_in, long_in, short_done = threading.Event(), threading.Event(), threading.Event()
    long_batches = []

    def order(module, args) -> None:
        if args[0].shape[0] != 3:
            return
        if threading.current_thread() is threading.main_thread():  # the long run's second batch: after the short run
            long_batches.append(1)
            if len(long_batches) == 2:
                long_in.set()
                short_done.wait(30)
        elif not short_in.is_set():  # the short run's first batch: begun before the long run, ends inside it
            short_in.set()
            long_in.wait(30)

    def short():
        try:
            run(texts[:3])
        finally:
            short_done.set()

    with module_hooks([("pre", model.h[0], order)]):
        other = threading.Thread(target=short)
        other.start()
        short_in.wait(30)
        long = run(texts)
        other.join(30)
    np.testing.assert_array_equal(long.neuron_count, alone.neuron_count)
    np.testing.assert_allclose(long.neuron_mass, alone.neuron_mass, rtol=0, atol=1e-6)
    assert model.training and model.h[0].mlp.dropout.training  # its modes given back once both ended


def test_a_refused_traced_neuron_in_live_text_leaves_no_eval_period_behind():
    """A Live text request refusing its traced neuron left its enter_eval period (and its winner hook) open: every
    later run on the model shared that period and never put the model in eval mode. After model.train(), analyze
    ran with dropout (tiny GPT-2: neuron masses off by up to 0.85) and left the model as it found it."""
    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    texts = [" ".join(words) for words in corpus(1)]
    run = lambda: hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",),  # noqa: E731
                                   batch_size=3, num_workers=0, show_progress=False)
    alone = run()
    live = LiveProfiler(model, tokenizer, alone.meta)
    hooks = lambda: sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())  # noqa: E731
    before = hooks()
    with pytest.raises(hf_txray.ConfigurationError, match="out of range"):
        live.run(texts[0], 1, trace_neuron=10 ** 6)
    assert hooks() == before
    model.train()
    after = run()
    np.testing.assert_array_equal(after.neuron_count, alone.neuron_count)
    np.testing.assert_allclose(after.neuron_mass, alone.neuron_mass, rtol=0, atol=1e-6)


def test_a_run_joining_another_threads_eval_period_puts_a_retrained_model_in_eval_mode():
    """A run that joins another thread's eval period (a Live text request still running) did not call
    model.eval(): a Trainer step in between (model.train()) left it running with dropout (tiny GPT-2: 56 of 80
    neuron counts changed). Each run needs eval mode whatever the other runs of the period found."""
    model, tokenizer = tiny_gpt2(), bpe_tokenizer()
    texts = [" ".join(words) for words in corpus(1)]
    run = lambda: hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",),  # noqa: E731
                                   batch_size=3, num_workers=0, show_progress=False)
    alone = run()
    other_in, main_done = threading.Event(), threading.Event()

    def hold(module, args) -> None:
        if threading.current_thread() is not threading.main_thread() and not other_in.is_set():
            other_in.set()
            main_done.wait(30)

    with module_hooks([("pre", model.h[0], hold)]):
        other = threading.Thread(target=run)
        other.start()
        try:
            assert other_in.wait(30)
            model.train()  # a training step between the other run's batches
            joined = run()
        finally:
            main_done.set()
            other.join(30)
    np.testing.assert_array_equal(joined.neuron_count, alone.neuron_count)
    np.testing.assert_allclose(joined.neuron_mass, alone.neuron_mass, rtol=0, atol=1e-6)


def test_the_edit_of_a_reading_trace_acts_on_another_threads_forward_pass():
    """DataParallel's replicas run the model in threads of their own. A trace that edits and also reads (or keeps)
    ignored every call of another thread, its edit included: the other thread's output came out unedited, with no
    error (tiny GPT-2, layer 0's neurons zeroed: output off from the edited one by up to 0.47).
    Edits act on every thread, as an edit-only trace's do; only reading stays with the attaching thread."""
    import torch

    from hf_txray.hooks import Fill, trace
    from hf_txray.sites import find_sites

    model = tiny_gpt2().eval()
    sites = find_sites(model, "mlp")
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(0))
    zero = {0: Fill(torch.arange(sites[0].width), 0.0)}
    with torch.no_grad():
        plain = model(ids).last_hidden_state
        with trace(model, sites, edit=zero) as edit_only:
            edited = model(ids).last_hidden_state
        assert edit_only.calls == [1, 1] and not torch.allclose(edited, plain)
        with trace(model, sites, edit=zero, retain=True) as reading, ThreadPoolExecutor(1) as pool:
            replica = pool.submit(lambda: model(ids).last_hidden_state).result()
    torch.testing.assert_close(replica, edited, rtol=0, atol=1e-6)
    assert reading.calls == [0, 0]  # read in its own thread only


def test_a_kept_activation_that_ran_only_in_another_thread_is_refused_not_none():
    """A reading trace ignores other threads' calls: with the forward pass run in another thread (a DataParallel's
    replicas), ``t[layer]`` was None, as if the site had never run, with no word of why."""
    import torch

    from hf_txray.hooks import trace
    from hf_txray.sites import find_sites

    model = tiny_gpt2().eval()
    sites = find_sites(model, "mlp")
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), trace(model, sites, retain=True) as kept, ThreadPoolExecutor(1) as pool:
        pool.submit(model, ids).result()
    with pytest.raises(ModelError, match="ran only in other threads"):
        kept[sites[0].layer]
    with torch.no_grad(), trace(model, sites, retain=True) as own:
        model(ids)
    assert own[sites[0].layer] is not None
