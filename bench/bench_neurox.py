"""`analyze` against NeuroX's extract -> HDF5 -> top-words pipeline (issue 13), end to end, same model and texts.

NeuroX 1.0.9 pins torch 1.8, so it runs in a separate virtual environment that this script makes (GUIDE §2):
torch 2.13.0, transformers 4.x, h5py, tqdm, imbalanced-learn, scikit-learn, seaborn, then ``neurox==1.0.9 --no-deps``.
Both sides profile all-MiniLM-L6-v2's residual stream (block outputs; NeuroX also stores the embedding layer) on
the same 300 WikiText-2 validation paragraphs (the first 300 of at most 250 words, so that NeuroX, which truncates
at 512 subwords, sees every word), with the same threads: the machine's cores, then one (``--threads``). NeuroX: `extract_representations` (average over subwords, HDF5), then
`load_activations`, `load_data` and `get_top_words` (top 10) for every neuron. hf_txray: `analyze` with word features
(spaCy words, tags cached on disk after the first run), then `save_pretrained`. Reported: wall time, CPU time of
the process and its children, disk written, and the plain forward over the same texts (the limit on a CPU).

Usage: python bench/bench_neurox.py [--venv DIR] [--repeats 2] [--threads 2,1] [--note TEXT] [--no-write]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import bench_parser, publish  # noqa: E402

WIKITEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2" / "valid.txt"
NUM_PARAGRAPHS, MAX_WORDS = 300, 250
PACKAGES = ["torch==2.13.0", "transformers>=4.40,<5", "h5py", "tqdm", "imbalanced-learn", "scikit-learn", "seaborn"]

NEUROX_RUN = r'''
import contextlib, io, json, sys, time
from neurox.data.extraction.transformers_extractor import extract_representations
from neurox.data.loader import load_activations, load_data
from neurox.analysis.corpus import get_top_words
model, corpus, out = sys.argv[1:4]
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):  # NeuroX prints every sentence's tokenization
    extract_representations(model, corpus, out, aggregation="average", output_type="hdf5")
t1 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    activations, num_layers = load_activations(out)
    tokens = load_data(corpus, corpus, activations, 100000)
t2 = time.perf_counter()
top = {n: get_top_words(tokens, activations, n, num_tokens=10) for n in range(activations[0].shape[1])}
t3 = time.perf_counter()
print(json.dumps({"extract_s": t1 - t0, "load_s": t2 - t1, "top_words_s": t3 - t2, "neurons": len(top)}))
'''


def paragraphs() -> list[str]:
    lines = [line.strip() for line in WIKITEXT.read_text(encoding="utf-8").splitlines()]
    keep = [line for line in lines if line and not line.startswith("=") and len(line.split()) <= MAX_WORDS]
    return keep[:NUM_PARAGRAPHS]


def ensure_venv(folder: Path) -> Path:
    python = folder / "bin" / "python"
    if not (folder / "ok").exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q"] + PACKAGES, check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "neurox==1.0.9"], check=True)
        (folder / "ok").write_text("ok")
    return python


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def run_neurox(python: Path, model: str, corpus: Path, tmp: Path, threads: int) -> dict:
    out = tmp / "neurox.hdf5"
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([str(python), "-c", NEUROX_RUN, model, str(corpus), str(out)], check=True,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    stages = json.loads(done.stdout.strip().splitlines()[-1])
    result = {"wall_s": time.perf_counter() - start, "cpu_s": children_cpu() - cpu, "disk_mb": out.stat().st_size / 2**20,
              **stages}
    out.unlink()
    return result


def run_ours(model: str, texts: list[str], tmp: Path, cache: Path) -> dict:
    import torch

    import hf_txray

    os.environ["HF_TXRAY_CACHE"] = str(cache)
    start, cpu, kids = time.perf_counter(), time.process_time(), children_cpu()
    profile = hf_txray.analyze(model, texts, features=("word",), site="residual", show_progress=False)
    out = tmp / "profile"
    profile.save_pretrained(out)
    result = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu + children_cpu() - kids,
              "disk_mb": folder_size(out) / 2**20, "positions": profile.meta.num_positions,
              "windowed": profile.meta.num_windowed, "threads": torch.get_num_threads()}
    return result


def plain_forward(model_path: str, texts: list[str]) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from baseline import engine_batches

    from hf_txray.budget import resolve_token_budget
    from hf_txray.lengths import resolve_max_length

    model = AutoModel.from_pretrained(model_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    # The very batches analyze runs with its defaults (batch_size 32, windows, length-sorted buckets, the CPU token
    # budget for this thread count).
    max_length = resolve_max_length(model, tokenizer, None)
    budget = resolve_token_budget(None, model, torch.device("cpu"), max_length, 32)
    batches = engine_batches(tokenizer, texts, max_length, 32, budget)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for inputs in batches:
            model(**inputs)
    return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}


def measure(python: Path, model: str, texts: list[str], tmp: Path, threads: int, repeats: int) -> dict:
    """NeuroX, analyze (cached annotations; the process's first run, which loads and runs spaCy, before them when
    none ran yet) and the plain forward, each with `threads` threads (NeuroX through OMP_NUM_THREADS), interleaved;
    the best of `repeats`."""
    import torch

    torch.set_num_threads(threads)
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    cache = tmp / "cache"
    first = None if cache.exists() else run_ours(model, texts, tmp, cache)  # spaCy loaded and run: the first run
    neurox, ours, plain = [], [], []
    for _ in range(repeats):  # interleaved, best of each
        neurox.append(run_neurox(python, model, corpus, tmp, threads))
        ours.append(run_ours(model, texts, tmp, cache))
        plain.append(plain_forward(model, texts))
    best = lambda runs, key: min(runs, key=lambda r: r[key])  # noqa: E731
    n, o, p = best(neurox, "wall_s"), best(ours, "wall_s"), best(plain, "wall_s")
    return {"threads": threads, "neurox": neurox, "ours": ours, "first": first, "plain": plain,
            "speedup_wall": n["wall_s"] / o["wall_s"], "speedup_cpu": min(r["cpu_s"] for r in neurox) /
            min(r["cpu_s"] for r in ours), "speedup_first": first and n["wall_s"] / first["wall_s"],
            "plain_limit": n["wall_s"] / p["wall_s"], "best": (n, o, p)}


def table(result: dict) -> list[str]:
    n, o, p = result["best"]
    mins = lambda key: min(r["cpu_s"] for r in result[key])  # noqa: E731
    first = result["first"]
    first_row = [] if first is None else [f"| hf_txray, first run (spaCy loaded and run) | {first['wall_s']:.1f} | "
                                          f"{first['cpu_s']:.1f} | {first['disk_mb']:.1f} MB |"]
    first_note = "" if first is None else f"; first run {result['speedup_first']:.1f}x"
    return [
        "| pipeline | wall s | CPU s | disk written |", "| --- | --- | --- | --- |",
        f"| NeuroX: extract {n['extract_s']:.1f} s + load {n['load_s']:.1f} s + top words {n['top_words_s']:.1f} s | "
        f"{n['wall_s']:.1f} | {mins('neurox'):.1f} | {n['disk_mb']:.0f} MB (HDF5) |",
        *first_row,
        f"| hf_txray, cached annotations | {o['wall_s']:.1f} | {mins('ours'):.1f} | {o['disk_mb']:.1f} MB |",
        f"| plain forward over analyze's batches (the limit) | {p['wall_s']:.1f} | {mins('plain'):.1f} | - |",
        "",
        f"**Speed-up over NeuroX, cached annotations: {result['speedup_wall']:.1f}x wall** "
        f"({result['speedup_cpu']:.1f}x CPU; target >= 9x){first_note}; the plain forward's own margin over NeuroX "
        f"is {result['plain_limit']:.1f}x, so analyze reaches {result['speedup_wall'] / result['plain_limit']:.0%} of "
        "the forward-pass limit.",
    ]


def main() -> None:
    parser = bench_parser(repeats=2, note=True)
    parser.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "hf_txray-bench-neurox-venv"))
    parser.add_argument("--threads", default=None,
                        help="Comma-separated thread counts to run both pipelines with (default: the machine's "
                             "cores, as each runs out of the box, then 1).")
    args = parser.parse_args()
    if not WIKITEXT.exists():
        sys.exit(f"WikiText-2 not found at {WIKITEXT}")
    from hf_txray import corpora
    from hf_txray.workers import available_cores

    counts = [int(t) for t in args.threads.split(",")] if args.threads else sorted({available_cores(), 1}, reverse=True)
    python = ensure_venv(Path(args.venv))
    model = corpora.default_model_path()
    texts = paragraphs()
    with tempfile.TemporaryDirectory() as tmp_name:
        results = [measure(python, model, texts, Path(tmp_name), threads, args.repeats) for threads in counts]
    print(json.dumps([{k: v for k, v in r.items() if k != "best"} for r in results]))
    text = [
        f"all-MiniLM-L6-v2, residual site, {len(texts)} WikiText-2 validation paragraphs "
        f"({sum(len(t.split()) for t in texts)} words; the first {NUM_PARAGRAPHS} with at most {MAX_WORDS} words). "
        "NeuroX 1.0.9 (transformers 4.x venv made by the script): extract (average over subwords) -> HDF5 -> load -> "
        "`get_top_words` (top 10) for each of its neurons. hf_txray: `analyze(features=('word',), site='residual')` "
        f"with its defaults + `save_pretrained`. Best of {args.repeats} interleaved runs; wall time is the figure of "
        "record (end to end, as a user waits), CPU time beside it. Both pipelines get the same threads: first the "
        "machine's cores, as each runs out of the box (torch's default; NeuroX's OMP_NUM_THREADS unset means the "
        "same), then one thread each.",
    ]
    for result in results:
        text += ["", f"**{result['threads']} thread{'s' if result['threads'] > 1 else ''} each:**", ""] + table(result)
    publish("Against NeuroX (`bench_neurox.py`)", "\n".join(text), args)


if __name__ == "__main__":
    main()
