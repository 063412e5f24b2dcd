"""The token budget of a forward pass on a CPU (issue 13): the plain forward's time per token over batches of
several token budgets, and the one `analyze` picks by default (`hf_txray.budget.resolve_token_budget`).

Batches of a few thousand tokens spill a transformer's MLP activations out of the CPU's caches, so the forward (and
the hooks' top-k, which reads those activations) streams them through memory. This bench runs a bare
``model(**inputs)`` over the very batches `analyze` builds (windows, length-sorted buckets, widths padded to 16) for
budgets from 256 to 16384 tokens and for batches of 32 texts with no token budget (the default before), on:
the NeuroX benchmark's 300 WikiText-2 paragraphs (windows of 512 tokens) and PTB sentences (max_length 128), with
all-MiniLM-L6-v2, a GPT-2-size model with random weights (a tenth of the paragraphs) and the near-free 12 x 32 model of
``bench_host.py``; with one torch thread and with all cores. Wall time of the best of `--repeats` rounds over all
budgets, after a warm-up round (CPU time grows with the thread count; on an idle machine they agree for one thread).

Usage: python bench/bench_budget.py [--sentences 1000] [--repeats 2] [--note TEXT] [--no-write]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from baseline import engine_batches  # noqa: E402
from results_file import bench_parser, publish  # noqa: E402

BUDGETS = [None, 16384, 8192, 4096, 2048, 1024, 512, 256]
BATCH = 32  # analyze's default batch_size


def models():
    """``(name, model, tokenizer)`` of each model measured."""
    from transformers import AutoModel, AutoTokenizer, GPT2Config, GPT2Model

    from bench_host import near_free_model
    from hf_txray import corpora

    path = corpora.default_model_path()
    minilm, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    gpt2 = GPT2Model(GPT2Config(vocab_size=tokenizer.vocab_size, bos_token_id=0, eos_token_id=0)).eval()
    near_free, _ = near_free_model()
    return [("all-MiniLM-L6-v2", minilm, tokenizer), ("GPT-2-size (random)", gpt2, tokenizer),
            ("near-free 12 x 32 (random)", near_free, tokenizer)]


def corpora_for(name: str, sentences: int) -> list[tuple[str, list[str], int]]:
    """``(corpus name, texts, max_length)`` for model `name`: long paragraphs in windows of 512, short sentences."""
    from bench_neurox import paragraphs
    from hf_txray import corpora

    wiki = paragraphs()
    if name.startswith("GPT-2"):  # 12 layers of 768, 7 times MiniLM's time per token: a tenth of the paragraphs
        return [(f"{len(wiki) // 10} WikiText paragraphs", wiki[: len(wiki) // 10], 512)]
    ptb = list(corpora.penn_treebank("train", num_samples=sentences)["text"])
    return [(f"{len(wiki)} WikiText paragraphs", wiki, 512), (f"{len(ptb)} PTB sentences", ptb, 128)]


def measure(model, tokenizer, texts: list[str], max_length: int, threads: int, repeats: int) -> dict:
    """Each budget's batches, then `repeats` rounds over all budgets (interleaved, after one warm-up round, so
    that neither the allocator's first touches nor drift favour one budget); the best pass of each."""
    from hf_txray.budget import resolve_token_budget

    torch.set_num_threads(threads)
    chosen = resolve_token_budget(None, model, torch.device("cpu"), max_length, BATCH)
    runs = {}
    for budget in BUDGETS:
        if budget is None or budget >= max_length:
            batches = engine_batches(tokenizer, texts, max_length, BATCH, budget)
            if model.config.model_type != "bert":  # a GPT-2 tokenizer gives none
                for inputs in batches:
                    inputs.pop("token_type_ids", None)
            runs[budget] = batches
    best = {budget: float("inf") for budget in runs}
    with torch.no_grad():
        for round_ in range(repeats + 1):
            for budget, batches in runs.items():
                start = time.perf_counter()
                for inputs in batches:
                    model(**inputs)
                if round_:  # round 0 warms up
                    best[budget] = min(best[budget], time.perf_counter() - start)
    rows = {}
    for budget, batches in runs.items():
        tokens = sum(int(inputs["attention_mask"].sum()) for inputs in batches)
        padded = sum(int(inputs["attention_mask"].numel()) for inputs in batches)
        rows[budget] = {"s": best[budget], "tokens": tokens, "padding": 1 - tokens / padded, "batches": len(batches)}
    return {"threads": threads, "chosen": chosen, "rows": rows}


def table(name: str, corpus: str, max_length: int, result: dict) -> list[str]:
    rows, chosen = result["rows"], result["chosen"]
    default_before = rows[None]["s"]
    best = min(rows, key=lambda b: rows[b]["s"])
    lines = [f"**{name}, {corpus} (max_length {max_length}), {result['threads']} thread(s):** "
             f"the default picks {chosen or 'no token budget'}; the fastest was {best or 'no token budget'}.", "",
             "| max_tokens_per_batch | batches | padding | us per token | time / batches of 32 texts |",
             "| --- | --- | --- | --- | --- |"]
    for budget, row in rows.items():
        label = "none (32 texts)" if budget is None else str(budget)
        mark = " (**default**)" if budget == chosen else ""
        lines.append(f"| {label}{mark} | {row['batches']} | {row['padding']:.1%} | "
                     f"{row['s'] / row['tokens'] * 1e6:.1f} | {row['s'] / default_before:.3f} |")
    return lines + [""]


def main() -> None:
    parser = bench_parser(sentences=1000, repeats=2, note=True)
    args = parser.parse_args()
    from hf_txray.workers import available_cores

    counts = sorted({1, available_cores()})
    text = [__doc__.split("\n\n")[1].replace("\n", " "), ""]
    for name, model, tokenizer in models():
        for corpus, texts, max_length in corpora_for(name, args.sentences):
            for threads in counts:
                result = measure(model, tokenizer, texts, max_length, threads, args.repeats)
                text += table(name, corpus, max_length, result)
                print("\n".join(table(name, corpus, max_length, result)), flush=True)
    publish("Token budget on a CPU (`bench_budget.py`)", "\n".join(text), args)


if __name__ == "__main__":
    main()
