"""Benchmark of the core engine (issue 2): throughput vs a plain forward loop, tagging time, memory, state size.

Every ratio is measured against a baseline in the same run. Usage:
    python bench/bench_profiling.py [--sentences 2000] [--rss-sentences 4000] [--no-rss]
Prints the figures and rewrites the "## Core engine" section of bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402


MAX_LENGTH, BATCH = 64, 32


def _setup(num_sentences: int):
    from transformers import AutoModel, AutoTokenizer

    from hf_txray import corpora

    path = corpora.default_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, corpora.penn_treebank("train", num_samples=num_sentences)


def plain_forward(model, tokenizer, texts, max_tokens_per_batch: int) -> tuple[float, int]:
    """The baseline: the very batches `analyze` runs (its encoder, length-sorted buckets, token budget and padded
    widths: :func:`baseline.engine_batches`), `model(**batch)` only."""
    from baseline import engine_batches

    batches = engine_batches(tokenizer, list(texts), MAX_LENGTH, BATCH, max_tokens_per_batch)
    tokens = sum(int(inputs["attention_mask"].sum()) for inputs in batches)
    start = time.perf_counter()
    with torch.no_grad():
        for inputs in batches:
            model(**inputs)
    return time.perf_counter() - start, tokens


def profiled(model, tokenizer, corpus, features) -> tuple[float, object]:
    import hf_txray

    start = time.perf_counter()
    profile = hf_txray.analyze(model, corpus, tokenizer=tokenizer, features=features, max_length=MAX_LENGTH,
                               batch_size=BATCH, show_progress=False)
    return time.perf_counter() - start, profile


def _forward_timer(model) -> dict:
    """Accumulates the wall time spent inside `model.forward`, to split analyze's time into forward and the rest."""
    acc = {"seconds": 0.0, "start": 0.0}
    model.register_forward_pre_hook(lambda m, a, k: acc.__setitem__("start", time.perf_counter()), with_kwargs=True)
    model.register_forward_hook(
        lambda m, a, k, o: acc.__setitem__("seconds", acc["seconds"] + time.perf_counter() - acc["start"]),
        with_kwargs=True)
    return acc


def throughput(num_sentences: int, repeats: int = 5) -> dict:
    model, tokenizer, corpus = _setup(num_sentences)
    texts = corpus["text"]
    timer = _forward_timer(model)
    _, warm_up = profiled(model, tokenizer, corpus.select(range(64)), ("token",))
    budget = warm_up.meta.config["max_tokens_per_batch"]  # analyze's default token budget: the baseline's too
    plain_times, txray_times, outside = [], [], []
    for _ in range(repeats):  # interleaved, best of each, so machine noise hits both alike
        seconds, tokens = plain_forward(model, tokenizer, texts, budget)
        plain_times.append(seconds)
        timer["seconds"] = 0.0
        txray_times.append(profiled(model, tokenizer, corpus, ("token",))[0])
        outside.append(txray_times[-1] - timer["seconds"])
    plain, txray, rest = min(plain_times), min(txray_times), min(outside)
    return {"sentences": num_sentences, "tokens": tokens, "plain_tok_s": tokens / plain, "txray_tok_s": tokens / txray,
            "ratio": plain / txray, "outside_forward_s": rest, "ratio_same_forward": plain / (plain + rest),
            "plain_runs": plain_times, "txray_runs": txray_times}


def tagging(num_sentences: int) -> dict:
    model, tokenizer, corpus = _setup(num_sentences)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HF_TXRAY_CACHE"] = cache
        token_only = profiled(model, tokenizer, corpus, ("token",))[0]
        first = profiled(model, tokenizer, corpus, ("token", "pos"))[0]
        cached = min(profiled(model, tokenizer, corpus, ("token", "pos"))[0] for _ in range(2))
        token_only = min(token_only, profiled(model, tokenizer, corpus, ("token",))[0])
    return {"sentences": num_sentences, "token_only_s": token_only, "pos_first_s": first, "pos_cached_s": cached,
            "tagging_s": first - cached}


def rss_child(num_sentences: int) -> None:
    """Run in a subprocess: profile `num_sentences` PTB sentences, print peak RSS and state size as JSON."""
    model, tokenizer, corpus = _setup(num_sentences)
    loaded = _vm_kb("VmRSS") / 1024
    # Reset the kernel's peak-RSS mark (Linux clear_refs 5), so the peak below is the profiling's own, not the
    # transient double copy of the weights while the model loads.
    Path("/proc/self/clear_refs").write_text("5")
    seconds, profile = profiled(model, tokenizer, corpus, ("token",))
    print(json.dumps({"sentences": num_sentences, "positions": profile.meta.num_positions, "seconds": seconds,
                      "rss_after_load_mb": loaded, "peak_rss_mb": _vm_kb("VmHWM") / 1024,
                      "state_mb": profile.nbytes / 2**20}))


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(num_sentences: int) -> dict:
    runs = []
    for n in (num_sentences, 10 * num_sentences):
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n)], check=True, capture_output=True,
                             text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {"small": runs[0], "large": runs[1], "growth": runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"] - 1}


def report(t: dict, g: dict, m: dict | None) -> str:
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"CPU. Model: all-MiniLM-L6-v2 (6 layers x 1536 MLP neurons), PTB train sentences, max_length {MAX_LENGTH}, "
        f"batch {BATCH}, token features, best of 5 interleaved runs.",
        "",
        "| measure | value |", "| --- | --- |",
        f"| plain `model(**batch)` throughput | {t['plain_tok_s']:.0f} tokens/s |",
        f"| `analyze` throughput (token features) | {t['txray_tok_s']:.0f} tokens/s |",
        f"| **ratio analyze / plain forward** (target >= 0.85) | **{t['ratio']:.3f}** |",
        f"| time of analyze outside the model's forward (tokenization, features, credit, examples) | "
        f"{t['outside_forward_s']:.2f} s of {t['tokens'] / t['txray_tok_s']:.2f} s |",
        f"| ratio if analyze's forward passes ran as fast as the baseline's (plain / (plain + outside)) | "
        f"{t['ratio_same_forward']:.3f} |",
        f"| all runs, plain / analyze (s) | {' '.join(f'{x:.1f}' for x in t['plain_runs'])} / "
        f"{' '.join(f'{x:.1f}' for x in t['txray_runs'])} |",
        f"| corpus | {t['sentences']} sentences, {t['tokens']} tokens |",
        f"| analyze, token only ({g['sentences']} sentences) | {g['token_only_s']:.1f} s |",
        f"| analyze, token+pos, first run (spaCy tagging) | {g['pos_first_s']:.1f} s |",
        f"| analyze, token+pos, cached tags | {g['pos_cached_s']:.1f} s |",
        f"| POS tagging time (first - cached) | {g['tagging_s']:.1f} s |",
    ]
    if m:
        s, l = m["small"], m["large"]
        lines += [
            f"| RSS after loading model and corpus (before profiling) | {s['rss_after_load_mb']:.0f} MB |",
            f"| peak RSS while profiling, {s['sentences']} sentences ({s['positions']} positions) | {s['peak_rss_mb']:.0f} MB |",
            f"| peak RSS while profiling, {l['sentences']} sentences ({l['positions']} positions) | {l['peak_rss_mb']:.0f} MB |",
            f"| **RSS growth for 10x the corpus** (target <= 10%) | **{m['growth']:.1%}** |",
            f"| accumulator state, {s['sentences']} sentences | {s['state_mb']:.1f} MB |",
            f"| accumulator state, {l['sentences']} sentences | {l['state_mb']:.1f} MB |",
        ]
    return "\n".join(lines)


def main() -> None:
    from results_file import bench_parser, publish  # the scripts' shared command line and RESULTS.md writer

    parser = bench_parser(sentences=2000, rss_sentences=2000, note=True)
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--rss-child", type=int)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child)
    t = throughput(args.sentences)
    print(json.dumps(t))
    g = tagging(min(args.sentences, 1000))
    print(json.dumps(g))
    m = None if args.no_rss else memory(args.rss_sentences)
    if m:
        print(json.dumps(m))
    publish("Core engine (`analyze`)", report(t, g, m), args)


if __name__ == "__main__":
    main()
