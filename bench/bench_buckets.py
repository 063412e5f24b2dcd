"""How buckets are cut for encoding workers (issue 13): by text count only, by count and characters, and ramped up
on an accelerator.

The encoding workers receive whole buckets. Cut by count alone (8 * batch_size texts), a bucket of long documents
holds dozens of windowed batches, which one worker encodes while the others idle, and the model waits for the
first bucket before its first batch. This bench runs `analyze` on the GPU check's settings (batches of at most 256
rows and 65536 tokens, windows of 512 tokens, token features, encoding workers) on a near-free model, so the
wait for the workers shows, with each way of cutting buckets (``Profiler.bucket_plan`` replaced), and reports the
buckets (texts and batches), the wait before the first batch and the run's wall and CPU time.

On a CPU the model and the workers share two cores, so the wall times mostly show that the results do not get
worse; the wait before the first batch and the bucket sizes are what an accelerator gains.
Usage: python bench/bench_buckets.py [--articles 1000] [--sentences 4000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from baseline import cpu_usage, spread, watching_buckets  # noqa: E402
from bench_host import near_free_model  # noqa: E402
from results_file import bench_parser, publish  # noqa: E402

BATCH, TOKENS, MAX_LENGTH, WORKERS = 256, 65536, 512, 1
TITLE = "Buckets by characters (`bench_buckets.py`)"
WIKITEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2" / "valid.txt"


def plans():
    """Each way of cutting buckets: analyze's own plan without its character budget (as before), with it (the
    default), and with the first buckets ramped up as on an accelerator (forced on this CPU)."""
    from hf_txray.streaming import BucketPlan

    return {"count only (before; inline runs still)": (lambda plan: BucketPlan(plan.texts), False),
            "count and characters (workers on a CPU)": (lambda plan: plan, False),
            "count and characters, ramped (workers on an accelerator)": (lambda plan: plan, True)}


def wikitext_articles() -> list[str]:
    """WikiText-2's validation articles, whole (about 60, of about 18,000 characters each)."""
    lines = WIKITEXT.read_text(encoding="utf-8").splitlines()
    articles: list[list[str]] = []
    for line in lines:
        heading = line.strip()
        if heading.startswith("= ") and not heading.startswith("= ="):
            articles.append([])
        elif heading and articles:
            articles[-1].append(heading)
    return [" ".join(a) for a in articles if a]


def one_run(model, tokenizer, texts, variant, **options) -> dict:
    import hf_txray

    analyze_module = importlib.import_module("hf_txray.analyze")
    real_plan, transform, ramp = analyze_module.Profiler.bucket_plan, *variant
    analyze_module.Profiler.bucket_plan = lambda self, every, workers: transform(real_plan(self, every, workers))
    unramped, analyze_module.UNRAMPED_DEVICES = analyze_module.UNRAMPED_DEVICES, (() if ramp else ("cpu",))
    try:
        with watching_buckets() as record:
            start, cpu = time.perf_counter(), cpu_usage()
            profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token",), num_workers=WORKERS,
                                       show_progress=False, **options)
            wall, main_cpu = time.perf_counter() - start, (cpu_usage() - cpu).total
    finally:
        analyze_module.Profiler.bucket_plan, analyze_module.UNRAMPED_DEVICES = real_plan, unramped
    return {"wall": wall, "cpu": main_cpu, "first": record["first"] - start, "buckets": record["buckets"],
            "positions": profile.meta.num_positions, "count": profile.neuron_count.copy()}


def encoding_rate(tokenizer, texts: list[str]) -> float:
    """CPU µs per token of the encoding one worker does (tokenization with offsets, windows, token features,
    packing), in this process: analyze's own encoder over the texts in buckets of 8 * BATCH."""
    from baseline import engine_batches

    start = time.process_time()
    batches = engine_batches(tokenizer, texts, MAX_LENGTH, BATCH, TOKENS)
    seconds = time.process_time() - start
    return seconds / sum(int(b["attention_mask"].sum()) for b in batches) * 1e6


def main() -> None:
    parser = bench_parser(articles=1000, sentences=4000, repeats=3, note=True)
    args = parser.parse_args()
    from hf_txray import corpora

    torch.set_num_threads(1)
    model, tokenizer = near_free_model()
    texts = (corpora.penn_treebank("train", num_samples=args.sentences).to_dict()["text"]
             + corpora.bbc_news(num_samples=args.articles).to_dict()["text"])
    encoding_rate(tokenizer, texts[:500])  # warm-up
    rate = min(encoding_rate(tokenizer, texts) for _ in range(args.repeats))
    gpu_settings = dict(max_length=MAX_LENGTH, batch_size=BATCH, max_tokens_per_batch=TOKENS)
    cases = {f"{args.sentences} PTB sentences, then {args.articles} BBC articles; the GPU check's batching "
             f"({BATCH} rows, {TOKENS} tokens)": (texts, gpu_settings),
             f"{len(wikitext_articles())} WikiText-2 articles (whole); analyze's default batching (32 rows)":
                 (wikitext_articles(), dict(max_length=MAX_LENGTH))}
    rows = []
    for case, (corpus, options) in cases.items():
        runs: dict[str, list[dict]] = {name: [] for name in plans()}
        one_run(model, tokenizer, corpus[:50], plans()["count only (before; inline runs still)"], **options)  # warm-up
        for _ in range(args.repeats):  # interleaved
            for name, variant in plans().items():
                runs[name].append(one_run(model, tokenizer, corpus, variant, **options))
        reference = runs["count only (before; inline runs still)"][0]
        for name, result in runs.items():
            last = result[-1]
            same = all((r["count"] == reference["count"]).all() and r["positions"] == reference["positions"]
                       for r in result)
            texts_per = [b[0] for b in last["buckets"]]
            batches_per = [b[1] for b in last["buckets"]]
            rows.append(f"| {case} | {name} | {len(last['buckets'])} | {max(texts_per)} / {max(batches_per)} "
                        f"| {texts_per[0]} / {batches_per[0]} | {spread([r['first'] for r in result])} | "
                        f"{spread([r['wall'] for r in result])} | {spread([r['cpu'] for r in result])} | "
                        f"{'yes' if same else '**no**'} |")
        print("\n".join(rows[-3:]), flush=True)
    text = "\n".join([
        "Near-free model (BERT, 12 layers, hidden 32, intermediate 64, MiniLM tokenizer), windows of "
        f"{MAX_LENGTH} tokens, token features, {WORKERS} encoding worker, one torch thread, CPU. Each way of cutting buckets replaces `Profiler.bucket_plan`; {args.repeats} interleaved runs, "
        "median (min-max). *First batch*: seconds from the call to the first forward pass (the worker's start and "
        "the first bucket's encoding), the time an accelerator sits idle. On 2 shared cores the wall and CPU times "
        "mostly show that nothing gets slower; the bucket sizes and the first wait are what a GPU gains.",
        "",
        "| corpus and batching | buckets cut by | buckets | largest bucket: texts / batches | first bucket: texts / batches "
        "| first batch after (s) | wall s | main-process CPU s | same counts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"One process encodes the first corpus (tokenization with offsets, windows, token features, packing: a "
        f"worker's work) at **{rate:.2f} µs of CPU per token** (best of {args.repeats}), about "
        f"{1 / rate:.2f}M tokens/s per worker.",
    ])
    publish(TITLE, text, args)


if __name__ == "__main__":
    main()
