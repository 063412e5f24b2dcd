"""Host cost of `analyze` (issue 13): main-process CPU time per token outside a plain forward pass.

A near-free model (BERT, 12 layers, hidden 32, intermediate 64) makes the forward cheap, so what remains is
everything analyze adds on the main process: reading the corpus, receiving encoded batches from the workers,
feature ids, the hooks' top-k, the credit on the device and the host accumulators. Measured as CPU time of this
process (user + system from ``resource.getrusage``; worker processes are not included, their CPU time is reported beside), minus the
CPU time of a plain forward over exactly the same batches, interleaved, best of `--repeats`. One thread for torch,
so the forward's CPU time is not spread over threads whose cost depends on the machine's load.

Prints a projection for GPU models whose forward runs at a known rate: with host work overlapping the
device's work, analyze's throughput is capped at (forward time per token) / (host time per token).
Usage: python bench/bench_host.py [--sentences 4000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from baseline import cpu_usage, engine_batches, plain, spread  # noqa: E402

BATCH, TOKENS_PER_BATCH, MAX_LENGTH, WORKERS = 256, 8192, 128, 1
# Forward throughput of GPU models (tokens/s) from issue 13, for the projection.
GPU_FORWARD = {"GPT-2-small": 800_000, "MiniLM (all-MiniLM-L6-v2)": 3_000_000, "Llama-7B": 25_000}


def near_free_model():
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hf_txray import corpora

    tokenizer = AutoTokenizer.from_pretrained(corpora.default_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=12, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    return BertModel(config).eval(), tokenizer




def children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def profiled(model, tokenizer, texts, features=("token",), workers=WORKERS):
    import hf_txray

    start, start_children = cpu_usage(), children_cpu()
    profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=features, max_length=MAX_LENGTH,
                               batch_size=BATCH, max_tokens_per_batch=TOKENS_PER_BATCH, num_workers=workers,
                               show_progress=False)
    return (cpu_usage() - start).total, children_cpu() - start_children, profile


class DeviceWorkTimer:
    """CPU time spent in the work that runs on the accelerator when there is one: the hooks' top-k and the
    credit reductions (``reduce_winners``, ``ProfileBuilder.accumulate``, the reductions of the queued keys, the
    folds of the device-side sums and the selection of top-example candidates). Per-thread CPU time (the builder's flush thread runs beside the main
    thread); nested timed calls count once."""

    def __init__(self):
        from hf_txray import credit, sites

        self.seconds = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._patched = [(sites.WinnerRecorder, "_record"), (credit.ProfileBuilder, "accumulate"),
                         (credit, "reduce_winners"), (credit, "reduce_stream"), (credit, "reduce_keys"),
                         (credit, "merge_keyed"), (credit, "admitted_candidates"), (credit, "best_per_row")]
        self._patched = [(owner, name) for owner, name in self._patched if hasattr(owner, name)]
        self._originals = [getattr(owner, name) for owner, name in self._patched]
        for (owner, name), original in zip(self._patched, self._originals):
            setattr(owner, name, self._timed(original))

    def _timed(self, fn):
        def wrapper(*args, **kwargs):
            if getattr(self._local, "depth", 0):
                return fn(*args, **kwargs)
            self._local.depth = 1
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                self._local.depth = 0
                with self._lock:
                    self.seconds += spent
        return wrapper


def one_size(model, tokenizer, texts, repeats: int, timer: DeviceWorkTimer) -> dict:
    batches = engine_batches(tokenizer, texts, MAX_LENGTH, BATCH, TOKENS_PER_BATCH)
    plain_cpu, txray_cpu, worker_cpu, inline_cpu, device_cpu = [], [], [], [], []
    for _ in range(repeats):  # interleaved, best of each
        plain_cpu.append(plain(model, batches))
        timer.seconds = 0.0
        main, workers, profile = profiled(model, tokenizer, texts)
        txray_cpu.append(main)
        worker_cpu.append(workers)
        device_cpu.append(timer.seconds)
        inline_cpu.append(profiled(model, tokenizer, texts, workers=0)[0])
    return {"sentences": len(texts), "tokens": profile.meta.num_positions, "batches": len(batches),
            "plain": min(plain_cpu), "analyze": min(txray_cpu), "workers": min(worker_cpu),
            "inline": min(inline_cpu), "device_work": min(device_cpu),
            "padding_share": 1 - profile.meta.num_input_tokens / profile.meta.num_padded_tokens,
            "runs": {"plain": plain_cpu, "analyze": txray_cpu, "inline": inline_cpu}}


def measure(num_sentences: int, repeats: int) -> dict:
    """Per-token cost as the slope between the corpus and 4x the corpus (fixed costs such as loading the corpus,
    starting the worker and writing the profile cancel out); the fixed cost is reported beside."""
    from hf_txray import corpora

    torch.set_num_threads(1)
    model, tokenizer = near_free_model()
    texts = corpora.penn_treebank("train", num_samples=4 * num_sentences).to_dict()["text"]
    profiled(model, tokenizer, texts[:500])  # warm-up (imports, allocator)
    timer = DeviceWorkTimer()
    small = one_size(model, tokenizer, texts[:num_sentences], repeats, timer)
    large = one_size(model, tokenizer, texts, repeats, timer)
    tokens = large["tokens"] - small["tokens"]
    slope = lambda key: ((large[key] - large["plain"]) - (small[key] - small["plain"])) / tokens * 1e6  # noqa: E731
    device = (large["device_work"] - small["device_work"]) / tokens * 1e6
    host = slope("analyze")
    return {"small": small, "large": large, "outside_forward_us": host, "inline_us": slope("inline"),
            "device_work_us": device, "host_only_us": host - device,
            "fixed_s": (small["analyze"] - small["plain"]) - host * small["tokens"] / 1e6}


def projection(host_us: float) -> list[tuple[str, int, float]]:
    return [(name, rate, min(1.0, (1e6 / rate) / host_us) if host_us > 0 else 1.0) for name, rate in GPU_FORWARD.items()]


def report(r: dict) -> str:
    small, large = r["small"], r["large"]
    lines = [
        f"Near-free model: BERT, 12 layers, hidden 32, intermediate 64 (random weights, MiniLM tokenizer); PTB "
        f"sentences, max_length {MAX_LENGTH}, batches of at most {BATCH} rows and {TOKENS_PER_BATCH} tokens from "
        f"length-sorted buckets (padding share {large['padding_share']:.1%}), token features, one torch thread, "
        f"{WORKERS} encoding worker. CPU time of this process (workers' CPU time beside), best of "
        f"{len(large['runs']['plain'])} interleaved runs of analyze and of a plain forward over the same batches. "
        f"Per token = slope between {small['sentences']} and {large['sentences']} sentences, so fixed costs (loading "
        "the corpus, starting the worker, writing the profile) cancel out; they are listed separately. The machine "
        "is shared (2 cores, other jobs running): CPU time, not wall time, is the figure of record, and the figures "
        "still move by ~20% between runs.",
        "",
        "| measure | value |", "| --- | --- |",
        f"| plain forward, {small['sentences']} / {large['sentences']} sentences ({small['tokens']} / "
        f"{large['tokens']} tokens) | {small['plain']:.2f} / {large['plain']:.2f} s CPU |",
        f"| `analyze`, main process | {small['analyze']:.2f} / {large['analyze']:.2f} s CPU |",
        f"| encoding worker process | {small['workers']:.2f} / {large['workers']:.2f} s CPU |",
        f"| **main-process CPU per token outside the forward** (target <= 1.0 µs; was 12.0) | "
        f"**{r['outside_forward_us']:.2f} µs** |",
        f"| of which device work (hooks' top-k, credit reductions: on a GPU these are kernels) | "
        f"{r['device_work_us']:.2f} µs |",
        f"| host-only work per token (reading, receiving batches, feature ids, accumulators) | "
        f"{r['host_only_us']:.2f} µs |",
        f"| outside the forward with `num_workers=0` (tokenization inline) | {r['inline_us']:.2f} µs |",
        f"| fixed cost per run (corpus checks, worker start, profile tables and examples) | {r['fixed_s']:.2f} s |",
        f"| CPU s (user + system) per run, {large['sentences']} sentences, median (min-max): plain / analyze / "
        f"inline | {spread(large['runs']['plain'])} / {spread(large['runs']['analyze'])} / "
        f"{spread(large['runs']['inline'])} |",
        "",
        "Projection for GPU forward rates, host-only work overlapping the device (ratio = min(1, forward time per "
        "token / host-only time per token)); the credit kernels add a few small kernels per batch on the device, "
        "which this projection does not count:",
        "",
        "| model | forward tokens/s | projected analyze / forward |", "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {rate:,} | {ratio:.2f} |" for name, rate, ratio in projection(r["host_only_us"])]
    return "\n".join(lines)


def main() -> None:
    from results_file import bench_parser, publish  # the scripts' shared command line and RESULTS.md writer

    args = bench_parser(sentences=3000, repeats=3).parse_args()
    result = measure(args.sentences, args.repeats)
    print(json.dumps(result))
    publish("Host cost per token (`bench_host.py`)", report(result), args)


if __name__ == "__main__":
    main()
