"""The engine at scale (issue 13) on the embedded MiniLM, CPU: analyze / plain forward, and memory vs corpus size.

* Ratio: CPU time of a plain forward pass over the best batching of the same texts (length-sorted, token budget:
  exactly the batches analyze runs) divided by analyze's main-process CPU time, for token features and for token,
  word and POS features with cached spaCy tags; the encoding worker's CPU time is reported beside. Interleaved,
  best of `--repeats`, one torch thread (CPU time is the figure of record on this shared machine).
* Memory: 1x and 10x the corpus, in memory and streamed (a JSON-lines file read with
  ``load_dataset(..., streaming=True)``), each run in a fresh subprocess (token features, no encoding worker, one
  torch thread), `--rss-repeats` interleaved rounds, medians with min-max. The model and corpus are loaded and
  ``/proc/self/clear_refs`` reset first, so the figure of record, the peak RSS (``VmHWM``), is the largest resident
  set from right before `analyze` to its end: the process's whole memory (model weights, libraries, the corpus)
  plus what `analyze` adds. Beside it: the anonymous part (``RssAnon``: heap and mmapped allocations, not the
  file-backed pages of libraries and mmapped weights), sampled by the parent from ``/proc/<pid>/status`` every
  2 ms (with the retained heap, freed memory stays resident, so RssAnon hardly falls and the sampling misses
  little); the total and anonymous RSS right before `analyze`; and glibc's heap at the end (``mallinfo2``: in use
  vs free but kept resident).

Usage: python bench/bench_scale.py [--sentences 1500] [--rss-sentences 1000] [--repeats 5] [--rss-repeats 3]
       [--no-rss | --only-memory | --memory-from FILE] [--no-write]
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from baseline import WorkTimer, cpu_usage, engine_batches, plain_usage, spread  # noqa: E402

MAX_LENGTH, BATCH, WORKERS = 128, 64, 0  # 0: analyze's CPU default (encoding inline, in this process)
# analyze's own CPU default at one thread (hf_txray.budget: MiniLM's 1536-wide MLP), the fastest batching of these
# sentences for the plain forward too (bench_budget.py); analyze is run with its default and checked against it.
TOKENS = 1024


def setup(num_sentences: int):
    from transformers import AutoModel, AutoTokenizer

    from hf_txray import corpora

    path = corpora.default_model_path()
    return (AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path),
            corpora.penn_treebank("train", num_samples=num_sentences))




def profiled(model, tokenizer, corpus, features, workers=WORKERS, **kwargs):
    import hf_txray

    start, children = cpu_usage(), _children()
    profile = hf_txray.analyze(model, corpus, tokenizer=tokenizer, features=features, max_length=MAX_LENGTH,
                               batch_size=BATCH, num_workers=workers, show_progress=False, **kwargs)
    used = cpu_usage() - start, _children() - children
    assert profile.meta.config["max_tokens_per_batch"] == TOKENS, "analyze's default budget changed: update TOKENS"
    return (*used, profile)


def _children() -> float:
    t = os.times()
    return t.children_user + t.children_system


def ratios(num_sentences: int, repeats: int) -> dict:
    """The ratios on `num_sentences`, and per token: token features on twice the corpus too, so that the slope
    between the two sizes leaves out the per-run costs (the final flush, the top-example table, the profile's
    assembly); within each token run, the CPU time of the model's forward call and of the engine's parts
    (:class:`~baseline.WorkTimer`)."""
    torch.set_num_threads(1)
    model, tokenizer, double = setup(2 * num_sentences)
    corpus = double.select(range(num_sentences))
    texts = corpus.to_dict()["text"]
    batches = engine_batches(tokenizer, texts, MAX_LENGTH, BATCH, TOKENS)
    double_batches = engine_batches(tokenizer, double.to_dict()["text"], MAX_LENGTH, BATCH, TOKENS)
    tight_batches = engine_batches(tokenizer, texts, MAX_LENGTH, BATCH, TOKENS, pad_to_multiple_of=1)
    full = ("token", "word", "pos")
    timer = WorkTimer()
    profiled(model, tokenizer, corpus.select(range(min(200, len(corpus)))), ("token",))  # warm-up
    profiled(model, tokenizer, corpus, full)  # tags the corpus once: the runs below read the cache
    runs = {"plain": [], "token": [], "full": [], "plain_2x": [],
            "token_2x": [], "plain_tight": [], "token_tight": [], "worker_process": []}
    parts: dict[str, list[dict[str, float]]] = {"token": [], "token_2x": []}
    # user / system / faults of each run, for the diagnosis; "worker": token features with one encoding worker
    # process (tokenization off this process; its forked copy-on-write pages re-faulted here)
    usage = {"plain": [], "token": [], "full": [], "worker": []}
    for _ in range(repeats):  # interleaved: the machine's speed drifts between rounds
        usage["plain"].append(plain_usage(model, batches))
        timer.reset()
        main, _, profile = profiled(model, tokenizer, corpus, ("token",))  # inline: no worker process
        parts["token"].append(dict(timer.seconds))
        usage["token"].append(main)
        runs["plain_2x"].append(plain_usage(model, double_batches).total)
        timer.reset()
        main_2x, _, profile_2x = profiled(model, tokenizer, double, ("token",))
        runs["token_2x"].append(main_2x.total)
        parts["token_2x"].append(dict(timer.seconds))
        # pad_to_multiple_of=1: rows padded to the longest only
        runs["plain_tight"].append(plain_usage(model, tight_batches).total)
        runs["token_tight"].append(profiled(model, tokenizer, corpus, ("token",), pad_to_multiple_of=1)[0].total)
        usage["full"].append(profiled(model, tokenizer, corpus, full)[0])
        main, workers, _ = profiled(model, tokenizer, corpus, ("token",), workers=1)
        usage["worker"].append(main)
        runs["worker_process"].append(workers)
    for name, measured in usage.items():
        runs[name] = [u.total for u in measured]
    best = {k: min(v) for k, v in runs.items()}
    tokens, tokens_2x = profile.meta.num_positions, profile_2x.meta.num_positions
    per_token = {k: (best[f"{k}_2x"] - best[k]) / (tokens_2x - tokens) for k in ("plain", "token")}
    # The engine's parts in the token run of least CPU time; "forward": the model's forward call, its hooks' top-k
    # excluded (the top-k is reported apart), against the plain forward over the same batches.
    least = parts["token"][runs["token"].index(best["token"])]
    forward = least.get("forward:__call__", 0.0) - least.get("device:_record", 0.0)
    split = {"forward_call": forward, "top_k": least.get("device:_record", 0.0),
             "credit": sum(v for k, v in least.items() if k.startswith("device:")) - least.get("device:_record", 0.0)}
    split["other"] = best["token"] - sum(split.values())
    # Per round ratios (plain and analyze measured side by side) show the spread of the figure itself.
    round_ratio = {f: [p / a for p, a in zip(runs["plain"], runs[f])] for f in ("token", "full", "worker")}
    return {"sentences": num_sentences, "tokens": profile.meta.num_positions, "best": best, "runs": runs,
            "system": {k: [u.system for u in v] for k, v in usage.items()},
            "faults": {k: [u.faults for u in v] for k, v in usage.items()}, "round_ratio": round_ratio,
            "ratio_token": best["plain"] / best["token"], "ratio_full": best["plain"] / best["full"],
            "padding_share": 1 - profile.meta.num_input_tokens / profile.meta.num_padded_tokens,
            "tokens_2x": tokens_2x, "marginal_ratio_token": per_token["plain"] / per_token["token"],
            "per_run_cost": (best["token"] - best["plain"]) - (per_token["token"] - per_token["plain"]) * tokens,
            "split": split}


def rss_child(num_sentences: int, streaming: bool, plain_forward: bool = False) -> None:
    """In a fresh process: profile `num_sentences` (in memory or streamed), or with `plain_forward` run the plain
    forward over analyze's batches of them (encoded first); print a ``start`` line with the memory right before
    (the parent samples from then on), then the result as JSON (peak RSS, glibc heap)."""
    torch.set_num_threads(1)  # as the speed runs; each extra thread adds a malloc arena of its own to the peak
    model, tokenizer, corpus = setup(num_sentences)
    if plain_forward:
        batches = engine_batches(tokenizer, corpus.to_dict()["text"], MAX_LENGTH, BATCH, TOKENS)
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_mb()
        print(json.dumps({"event": "start", **before}), flush=True)
        start = time.process_time()
        plain_usage(model, batches)
        print(json.dumps({"sentences": num_sentences, "streaming": False, "cpu_s": time.process_time() - start,
                          "peak_rss_mb": _status_mb()["VmHWM"], "before": before, "end": _status_mb(),
                          "heap": _glibc_heap_mb()}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = corpus
        if streaming:
            import datasets

            path = Path(tmp) / "corpus.jsonl"
            corpus.to_json(str(path))
            data = datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)
            del corpus
        import hf_txray

        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS of the profiling only (not the model load)
        before = _status_mb()
        print(json.dumps({"event": "start", **before}), flush=True)
        start = time.process_time()
        profile = hf_txray.analyze(model, data, tokenizer=tokenizer, features=("token",), max_length=MAX_LENGTH,
                                   batch_size=BATCH, num_workers=0, show_progress=False)  # the default budget
        cpu_s = time.process_time() - start
        end = _status_mb()
        print(json.dumps({"sentences": num_sentences, "streaming": streaming, "positions": profile.meta.num_positions,
                          "cpu_s": cpu_s, "peak_rss_mb": end["VmHWM"], "before": before, "end": end,
                          "heap": _glibc_heap_mb()}))


STATUS_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def _status_mb(pid: int | str = "self") -> dict[str, float]:
    """The memory fields of ``/proc/<pid>/status`` (:data:`STATUS_FIELDS`), in MB (MiB)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in STATUS_FIELDS:
            out[name] = int(value.split()[0]) / 1024
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _glibc_heap_mb() -> dict[str, float] | None:
    """glibc's ``mallinfo2``: bytes in use in the malloc heaps (``uordblks``), free but kept (``fordblks``: with
    :func:`hf_txray.allocator.retained_heap` freed memory stays resident) and in mmapped chunks (``hblkhd``), MB.
    None without glibc >= 2.33."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {"in_use": info.uordblks / 2**20, "free": info.fordblks / 2**20, "mmapped": info.hblkhd / 2**20}


SAMPLE_EVERY_S = 0.002


MODES = {"in_memory": [], "streaming": ["--streaming"], "plain_forward": ["--plain-forward"]}  # child flags


def measure_child(num_sentences: int, mode: str) -> dict:
    """One ``--rss-child`` run of `mode` (:data:`MODES`); this process samples the child's ``RssAnon`` every
    :data:`SAMPLE_EVERY_S` from its ``start`` line on (from outside: a sampling thread in the child would add a
    malloc arena of its own)."""
    args = [sys.executable, __file__, "--rss-child", str(num_sentences)] + MODES[mode]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in child.stdout:
            lines.append(line)
            started.set() if '"event": "start"' in line else None

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak_anon = 0.0
    while child.poll() is None:
        if started.is_set():
            try:
                peak_anon = max(peak_anon, _status_mb(child.pid).get("RssAnon", 0.0))
            except (FileNotFoundError, ProcessLookupError, ValueError):  # exited between poll and read
                break
        time.sleep(SAMPLE_EVERY_S)
    reader.join()
    if child.wait() != 0:
        raise RuntimeError(f"{' '.join(args)} failed with exit code {child.returncode}")
    result = json.loads(lines[-1])
    # The last sample may miss the final few ms: the anon peak is at least the anon RSS at the end.
    result["peak_anon_mb"] = max(peak_anon, result["end"]["RssAnon"])
    return result


def memory(num_sentences: int, repeats: int) -> dict:
    """`repeats` interleaved rounds of fresh-process runs at 1x and 10x `num_sentences`, in memory and streamed, and
    of the plain forward over the same batches (the model's own growth: longer sentences, more batch shapes)."""
    runs: dict[str, dict[str, list[dict]]] = {mode: {"small": [], "large": []} for mode in MODES}
    for _ in range(repeats):  # interleaved, as the speed runs
        for mode in runs:
            for size, n in (("small", num_sentences), ("large", 10 * num_sentences)):
                runs[mode][size].append(measure_child(n, mode))
    return {mode: {**sizes, **growths(sizes["small"], sizes["large"])} for mode, sizes in runs.items()}


def growths(small: list[dict], large: list[dict]) -> dict[str, float | list[float]]:
    """Growth of the medians from 1x to 10x (total peak RSS, anonymous peak, anonymous growth during `analyze`), and
    the total's growth per round (each round's 10x run against its 1x run: the spread of the figure itself)."""
    def med(runs: list[dict], measure) -> float:
        return statistics.median(measure(r) for r in runs)

    total, anon = (lambda r: r["peak_rss_mb"]), (lambda r: r["peak_anon_mb"])
    engine = lambda r: r["peak_anon_mb"] - r["before"]["RssAnon"]  # noqa: E731
    return {"growth": med(large, total) / med(small, total) - 1,
            "growth_anon": med(large, anon) / med(small, anon) - 1,
            "engine_mb": [med(small, engine), med(large, engine)],
            "growth_rounds": [b["peak_rss_mb"] / a["peak_rss_mb"] - 1 for a, b in zip(small, large)]}


def memory_rows(m: dict) -> list[str]:
    """The report's memory rows (see the module docstring for what is measured)."""
    lines = []
    for name, mm in m.items():
        s, l, label = mm["small"], mm["large"], name.replace("_", " ")
        sizes = f"{s[0]['sentences']} / {l[0]['sentences']} sentences"
        run = "the plain forward" if name == "plain_forward" else "`analyze`"

        def both(measure) -> str:
            return " / ".join(spread([measure(r) for r in runs], 0) for runs in (s, l))

        heap = s[0].get("heap") and l[0].get("heap")
        lines += [
            f"| RSS right before {run} (total / anonymous), {label}, {sizes}, median | "
            f"{_med(s, 'VmRSS'):.0f} / {_med(s, 'RssAnon'):.0f} MB; {_med(l, 'VmRSS'):.0f} / "
            f"{_med(l, 'RssAnon'):.0f} MB |",
            f"| peak RSS (VmHWM) during {run}, {label}: {sizes}, median (min-max) | "
            f"{both(lambda r: r['peak_rss_mb'])} MB |",
            f"| peak anonymous RSS (RssAnon sampled every {SAMPLE_EVERY_S * 1000:.0f} ms), {label}: {sizes} | "
            f"{both(lambda r: r['peak_anon_mb'])} MB |",
            f"| anonymous memory {run} added (peak - before), {label}: {sizes}, median | "
            f"{mm['engine_mb'][0]:.0f} / {mm['engine_mb'][1]:.0f} MB |",
        ]
        if heap:
            lines.append(f"| glibc heap after {run}, in use / free (kept by malloc), {label}: {sizes}, median | "
                         f"{statistics.median(r['heap']['in_use'] for r in s):.0f} / "
                         f"{statistics.median(r['heap']['free'] for r in s):.0f} MB; "
                         f"{statistics.median(r['heap']['in_use'] for r in l):.0f} / "
                         f"{statistics.median(r['heap']['free'] for r in l):.0f} MB |")
        growth = (f"**peak RSS growth for 10x the corpus, {label}** (medians; per round min-max) (target <= 10%)"
                  if name != "plain_forward" else
                  "peak RSS growth for 10x the corpus, plain forward over analyze's batches (the model's own: longer "
                  "sentences, more batch shapes; medians; per round min-max)")
        lines += [
            f"| anonymous peak growth for 10x the corpus, {label} (medians) | {mm['growth_anon']:.1%} |",
            f"| {growth} | **{mm['growth']:.1%}** ({min(mm['growth_rounds']):.1%} to "
            f"{max(mm['growth_rounds']):.1%}) |",
        ]
    return lines


def _med(runs: list[dict], field: str) -> float:
    return statistics.median(r["before"][field] for r in runs)


def report(r: dict, m: dict | None) -> str:
    b = r["best"]
    kinds = ("plain", "token", "full", "worker")
    system = " / ".join(f"{statistics.median(r['system'][k]):.2f} s" for k in kinds)
    faults = " / ".join(f"{statistics.median(r['faults'][k]):,.0f}" for k in kinds)
    lines = [
        f"all-MiniLM-L6-v2 (6 layers x 1536 MLP neurons) on CPU, {r['sentences']} PTB train sentences "
        f"({r['tokens']} credited tokens), max_length {MAX_LENGTH}, batches of at most {BATCH} rows and {TOKENS} "
        f"tokens (analyze's CPU default) from length-sorted buckets (padding share {r['padding_share']:.1%}); the plain forward runs exactly "
        f"these batches. One torch thread, encoding inline (`num_workers=0`, the CPU default); CPU time (user + system, getrusage) of this process, best of "
        f"{len(r['runs']['plain'])} interleaved runs (the machine is shared by other jobs, so wall time is not "
        "meaningful; CPU times still vary by ~10% between rounds, hence the spread below).",
        "",
        "| measure | value |", "| --- | --- |",
        f"| plain forward | {b['plain']:.2f} s CPU |",
        f"| `analyze`, token features (tokenization included) | {b['token']:.2f} s CPU |",
        f"| `analyze`, token + word + POS (cached tags) | {b['full']:.2f} s CPU |",
        f"| **analyze / plain forward, token** (target >= 0.97; was 0.91) | **{r['ratio_token']:.3f}** |",
        f"| **analyze / plain forward, token + word + POS** (target >= 0.97; was 0.89) | **{r['ratio_full']:.3f}** |",
        f"| analyze / plain forward per round, token / token + word + POS: median (min-max) | "
        f"{spread(r['round_ratio']['token'])} / {spread(r['round_ratio']['full'])} |",
        f"| CPU s (user + system) per run, median (min-max): plain / token / full | "
        f"{spread(r['runs']['plain'])} / {spread(r['runs']['token'])} / {spread(r['runs']['full'])} |",
        f"| analyze / plain forward, token, `num_workers=1` (this process's CPU; the worker's beside: "
        f"{min(r['runs']['worker_process']):.2f} s) | {b['plain'] / b['worker']:.3f}; per round "
        f"{spread(r['round_ratio']['worker'])} |",
        f"| **per token, analyze / plain forward, token** (slope between {r['sentences']} and "
        f"{2 * r['sentences']} sentences: per-run costs left out) | **{r['marginal_ratio_token']:.3f}** |",
        f"| per-run cost of analyze beyond the per-token cost (final flush, top-example table, profile) | "
        f"{r['per_run_cost']:.2f} s CPU |",
        f"| token run of least CPU, by part: the model's forward call (hooks' top-k excluded; the plain forward: "
        f"{b['plain']:.2f}) / hooks' top-k / credit (device work) / everything else | "
        + " / ".join(f"{r['split'][k]:.2f}" for k in ("forward_call", "top_k", "credit", "other")) + " s CPU |",
        f"| with `pad_to_multiple_of=1` (rows padded to the longest only): plain forward / analyze, token / ratio | "
        f"{b['plain_tight']:.2f} / {b['token_tight']:.2f} s CPU / {b['plain_tight'] / b['token_tight']:.3f} |",
        f"| **against the plain forward's best batching** (rows padded to the longest only: "
        f"{b['plain_tight']:.2f} s), token: analyze with its defaults (widths rounded up to 16) / with "
        f"`pad_to_multiple_of=1` | **{b['plain_tight'] / b['token']:.3f}** / **{b['plain_tight'] / b['token_tight']:.3f}** |",
        f"| of which system time (page faults), median: plain / token / full / token with a worker | {system} |",
        f"| minor page faults per run, median: plain / token / full / token with a worker | {faults} |",
    ]
    if m:
        lines += memory_rows(m)
        lines += ["", memory_note(m)]
    return "\n".join(lines)


def memory_note(m: dict) -> str:
    """What the memory rows measure (the figure of record and the columns beside it)."""
    rounds = len(next(iter(m.values()))["small"])
    return (f"Memory: each run in a fresh process (token features, `num_workers=0`, one torch thread), {rounds} "
            "interleaved rounds, medians with min-max. The model and corpus are loaded first and `clear_refs` resets "
            "the peak, so the figure of record, the peak RSS (VmHWM), is the largest resident set from right before "
            "`analyze` to its end: the whole process (model weights, libraries, the corpus) plus what `analyze` "
            "adds; the growth is that of the medians. Anonymous RSS (heap and mmapped allocations, without the "
            "file-backed pages of libraries and weights) is sampled by the parent from `/proc/<pid>/status` every "
            f"{SAMPLE_EVERY_S * 1000:.0f} ms. The glibc heap figures (`mallinfo2`) are read after `analyze` returns, "
            "when the retained heap's top has been trimmed again. *Plain forward*: the model alone over analyze's "
            "batches of the same sentences (encoded before the peak is reset), measured the same way: its growth is "
            "the model's own, which no engine change can remove.")


def main() -> None:
    from results_file import bench_parser, publish  # the scripts' shared command line and RESULTS.md writer

    parser = bench_parser(sentences=1500, rss_sentences=1000, repeats=5)  # 5: the plain forward alone moves ~10%
    parser.add_argument("--rss-child", type=int)
    parser.add_argument("--streaming", action="store_true")
    parser.add_argument("--plain-forward", action="store_true")
    parser.add_argument("--no-rss", action="store_true", help="Skip the memory runs.")
    parser.add_argument("--rss-repeats", type=int, default=3, help="Rounds of memory runs (default 3).")
    parser.add_argument("--memory-from", help="A JSON file holding the memory part of an earlier run (the second JSON "
                                              "line this script prints, or --only-memory's): published with this run's "
                                              "ratios instead of measuring memory again.")
    parser.add_argument("--only-memory", action="store_true",
                        help="Only the memory runs; prints their rows and leaves bench/RESULTS.md alone (its section "
                             "holds both parts).")
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.streaming, args.plain_forward)
    if args.only_memory:
        m = memory(args.rss_sentences, args.rss_repeats)
        print(json.dumps(m))
        print("\n".join(memory_rows(m)))
        return
    r = ratios(args.sentences, args.repeats)
    print(json.dumps(r))
    if args.memory_from:
        m = json.loads(Path(args.memory_from).read_text())
    else:
        m = None if args.no_rss else memory(args.rss_sentences, args.rss_repeats)
    print(json.dumps(m))
    publish("Engine at scale on MiniLM (`bench_scale.py`)", report(r, m), args)


if __name__ == "__main__":
    main()
