"""Benchmark of probing (issue 7): word-activation extraction vs a plain forward loop, and probe training time.

Extraction is timed as a whole (tokenization with offsets, word alignment, hooks, subword aggregation on the device,
writing rows) against `model(**batch)` on the same pre-encoded batches, interleaved, best of `--repeats`, in the same
run. On a shared machine wall time mostly measures the other jobs, so CPU time of this process is the figure of
record and wall time is shown next to it. Usage:

    python bench/bench_probing.py [--sentences 400] [--repeats 3] [--no-write]

Prints the figures and rewrites the "## Probing" section of bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from results_file import bench_parser, publish  # noqa: E402

MAX_LENGTH, BATCH = 128, 32
EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _setup(num_sentences: int):
    from transformers import AutoModel, AutoTokenizer

    from hf_txray import corpora
    from hf_txray.probing import read_conllu

    path = corpora.default_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, read_conllu(EWT, "upos", max_sentences=num_sentences)


def plain_forward(model, batches) -> None:
    with torch.no_grad():
        for inputs in batches:
            model(**inputs)


def extraction(num_sentences: int, repeats: int) -> tuple[dict, object]:
    from hf_txray.batching import encode
    from hf_txray.probing import extract_activations

    model, tokenizer, corpus = _setup(num_sentences)
    batches = [encode(tokenizer, corpus.texts[i:i + BATCH], MAX_LENGTH)[1] for i in range(0, len(corpus), BATCH)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    scratch = Path(tempfile.mkdtemp(prefix="bench-probing-"))
    os.environ["HF_TXRAY_CACHE"] = str(scratch)  # temporary memmaps go here and are removed with the folder
    variants = {
        "last layer (5), in memory": dict(layers=[5]),
        "all 6 layers, memmap on disk": dict(layers="all", memmap_threshold=0),
        "layer 2 only (forward stops after it)": dict(layers=[2]),
    }
    extract_activations(model, corpus.select(16), tokenizer, layers=[5], max_length=MAX_LENGTH)  # warm-up
    plain = {"wall": [], "cpu": []}
    runs = {name: {"wall": [], "cpu": []} for name in variants}
    kept = None
    try:
        for _ in range(repeats):  # interleaved, best of each, so machine noise hits all alike
            wall, cpu, _ = _timed(lambda: plain_forward(model, batches))
            plain["wall"].append(wall), plain["cpu"].append(cpu)
            for name, kwargs in variants.items():
                wall, cpu, acts = _timed(lambda: extract_activations(model, corpus, tokenizer, max_length=MAX_LENGTH,
                                                                     batch_size=BATCH, **kwargs))
                runs[name]["wall"].append(wall), runs[name]["cpu"].append(cpu)
                if name.startswith("last"):
                    kept = acts
                del acts
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best = {k: min(v) for k, v in plain.items()}
    rows = []
    for name, times in runs.items():
        wall, cpu = min(times["wall"]), min(times["cpu"])
        rows.append({"variant": name, "wall_s": wall, "cpu_s": cpu, "ratio_cpu": best["cpu"] / cpu,
                     "ratio_wall": best["wall"] / wall})
    result = {"sentences": len(corpus), "words": corpus.num_words, "tokens": tokens, "plain_wall_s": best["wall"],
              "plain_cpu_s": best["cpu"], "variants": rows, "words_extracted": kept.num_words}
    return result, kept


def probe_timing(acts) -> dict:
    from hf_txray.probing import ProbeConfig, probe_neurons, train_probe

    train, test = acts.split(0.2, 0)
    out = {"train_words": len(train), "features": acts.num_features, "labels": len(acts.label_names)}
    config = ProbeConfig()
    wall, cpu, probe = _timed(lambda: train_probe(acts, rows=train, config=config))
    out.update(probe_wall_s=wall, probe_cpu_s=cpu, epochs=config.epochs, batch_size=config.batch_size,
               accuracy=probe.evaluate(acts, rows=test).accuracy)
    wall, cpu, result = _timed(lambda: probe_neurons(None, acts, config=config))
    out.update(pipeline_wall_s=wall, pipeline_cpu_s=cpu, pipeline_probes=2 + len(result.minimal) + len(result.subsets),
               selectivity=result.selectivity, majority=result.majority_baseline, minimal_size=result.minimal_size,
               pipeline_accuracy=result.accuracy)
    return out


def report(e: dict, p: dict) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU. Model: all-MiniLM-L6-v2 (6 layers x 1536 MLP neurons). Data: the "
        f"first {e['sentences']} sentences of UD English EWT dev ({e['words']} words, {e['tokens']} tokens), gold "
        f"UPOS, max_length {MAX_LENGTH}, batch {BATCH}, first-subword aggregation; best of interleaved runs. Ratio = "
        "plain `model(**batch)` time on the same pre-encoded batches / extraction time (whole call: tokenization "
        "with offsets, word alignment, hooks, aggregation, writing rows); CPU time of this process is the figure "
        "of record.",
        "",
        "| extraction | CPU s | wall s | **ratio vs plain forward (CPU)** | ratio (wall) |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| plain forward (baseline) | {e['plain_cpu_s']:.2f} | {e['plain_wall_s']:.2f} | 1.000 | 1.000 |",
    ]
    for row in e["variants"]:
        lines.append(f"| {row['variant']} | {row['cpu_s']:.2f} | {row['wall_s']:.2f} | **{row['ratio_cpu']:.3f}** | "
                     f"{row['ratio_wall']:.3f} |")
    lines += [
        "",
        f"Probe training (last layer: {p['features']} neurons, {p['labels']} UPOS labels, {p['train_words']} "
        f"training words, NeuroX defaults: {p['epochs']} epochs, batch {p['batch_size']}, Adam lr 1e-3, "
        "l1 = l2 = 1e-3, one CPU thread):",
        "",
        "| measure | value |", "| --- | --- |",
        f"| one probe, all neurons | {p['probe_cpu_s']:.1f} s CPU ({p['probe_wall_s']:.1f} s wall), test accuracy "
        f"{p['accuracy']:.3f} |",
        f"| full `probe_neurons` ({p['pipeline_probes']} probes: main, control task, minimal-set search, "
        f"top/random/bottom subsets) | {p['pipeline_cpu_s']:.1f} s CPU ({p['pipeline_wall_s']:.1f} s wall) |",
        f"| accuracy / majority baseline / selectivity | {p['pipeline_accuracy']:.3f} / {p['majority']:.3f} / "
        f"{p['selectivity']:.3f} |",
        f"| minimal neuron set (90% of full accuracy) | {p['minimal_size']} neurons |",
    ]
    return "\n".join(lines)


def main() -> None:
    args = bench_parser(sentences=400, repeats=3).parse_args()
    e, acts = extraction(args.sentences, args.repeats)
    print(json.dumps(e))
    p = probe_timing(acts)
    print(json.dumps(p))
    publish("Probing", report(e, p), args)


if __name__ == "__main__":
    main()
