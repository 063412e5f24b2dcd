"""Benchmark of the hook layer (issue 11): what `hf_txray.hooks.Trace` adds to a forward pass.

Measured in one process, interleaved, best of several repeats, CPU time (the machine is shared):
- per hooked call: a bare call of one MLP down projection, the same with profiling's WinnerRecorder (a Trace that
  reads), and with a pruning mask (a Trace that edits);
- per batch: MiniLM's forward (32 PTB sentences, 64 tokens) alone and with WinnerRecorder on all 6 layers.

Usage:
    python bench/bench_hooks.py [--no-write]     # rewrites the "## Hook layer" section of bench/RESULTS.md
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from results_file import bench_parser, publish  # noqa: E402

CALLS, REPEATS = 2000, 3


def _best(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def per_call(site) -> dict:
    """Seconds per call of the down projection: bare, with a reading Trace (profiling), with an editing one (mask)."""
    from hf_txray.hooks import Fill, Trace
    from hf_txray.sites import WinnerRecorder

    x = torch.randn(1, 4, site.width)
    recorder = WinnerRecorder([site])
    mask = Trace([site], edit={site.layer: Fill([0, 1])}, once=False)

    def calls(reset=None):
        def run():
            for _ in range(CALLS):
                if reset is not None:
                    reset()
                site.module(x)
        return run

    bare, read, edit = [], [], []
    with torch.no_grad():
        for _ in range(REPEATS):  # interleaved: machine noise hits all three alike
            bare.append(_best(calls(), 1))
            with recorder:
                recorder.enabled = True
                read.append(_best(calls(recorder.reset), 1))
            with mask:
                edit.append(_best(calls(), 1))
    return {"bare_us": min(bare) / CALLS * 1e6, "read_us": min(read) / CALLS * 1e6, "edit_us": min(edit) / CALLS * 1e6}


def per_batch() -> dict:
    from transformers import AutoModel, AutoTokenizer

    from hf_txray import corpora
    from hf_txray.sites import WinnerRecorder, find_sites

    path = corpora.default_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = list(corpora.penn_treebank("train", num_samples=32)["text"])
    inputs = tokenizer(texts, padding="max_length", truncation=True, max_length=64, return_tensors="pt")
    sites = find_sites(model)
    recorder = WinnerRecorder(sites).attach()
    plain, hooked = [], []
    try:
        with torch.no_grad():
            for _ in range(REPEATS):
                recorder.enabled = False
                plain.append(_best(lambda: model(**inputs), 1))
                recorder.enabled = True

                def profiled():
                    recorder.reset()
                    model(**inputs)
                hooked.append(_best(profiled, 1))
    finally:
        recorder.detach()
    return {"layers": len(sites), "plain_s": min(plain), "hooked_s": min(hooked), "site": sites[0]}


def report(c: dict, b: dict) -> str:
    added = (c["read_us"] - c["bare_us"]) * b["layers"]
    return "\n".join([
        f"CPU time (`time.process_time`), best of {REPEATS} interleaved repeats, one torch thread, torch "
        f"{torch.__version__}. One hooked call: MiniLM's layer-0 down projection on a (1, 4, 1536) input.",
        "",
        "| measure | value |", "| --- | --- |",
        f"| bare call | {c['bare_us']:.1f} µs |",
        f"| with profiling's `WinnerRecorder` (a `Trace` that reads: top-1 of every position) | {c['read_us']:.1f} µs |",
        f"| with a pruning mask (a `Trace` that edits: `Fill` of 2 neurons) | {c['edit_us']:.1f} µs |",
        f"| MiniLM forward, 32 sentences x 64 tokens, no hooks | {b['plain_s'] * 1e3:.0f} ms |",
        f"| the same with `WinnerRecorder` on all {b['layers']} layers | {b['hooked_s'] * 1e3:.0f} ms |",
        f"| **hooked / plain forward** | **{b['hooked_s'] / b['plain_s']:.3f}** |",
        f"| what the hooks' own calls add per batch ({b['layers']} x (read - bare)) | {added:.0f} µs |",
    ])


def main() -> None:
    args = bench_parser(note=True).parse_args()
    torch.manual_seed(0)
    # One thread: on a shared machine, a parallel region waits for its slowest (descheduled) thread.
    torch.set_num_threads(1)
    b = per_batch()
    c = per_call(b.pop("site"))
    print(json.dumps({**c, **b}))
    publish("Hook layer (`hf_txray.hooks`)", report(c, b), args)


if __name__ == "__main__":
    main()
