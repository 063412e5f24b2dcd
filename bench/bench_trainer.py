"""Benchmark of TXRayTrainer (issue 3): training-step throughput against a plain Trainer, and snapshot cost.

Three trainers fine-tune the embedded MiniLM classifier for one epoch on the same BBC News subset, interleaved over
`--rounds` rounds so that load on the machine hits them alike:

- ``plain``: ``transformers.Trainer``;
- ``txray-no``: ``TXRayTrainer`` with ``txray_strategy="no"``;
- ``txray-steps``: ``TXRayTrainer`` profiling every `--txray-steps` steps (plus train begin and end).

A step is timed from ``on_step_begin`` to ``on_step_end`` (forward, backward, optimizer; data loading and the
snapshots taken between steps excluded); the figure is the median CPU time per step of ``plain`` divided by each
other's (target >= 0.97): on a shared machine wall time mostly measures the other jobs, CPU time the step's own
work (wall-clock medians are printed too). Snapshot cost: median time of one snapshot (profiling, comparing,
writing files) vs the plain Trainer's one-epoch ``train_runtime``. Usage:

    python bench/bench_trainer.py [--train 64] [--probe 64] [--rounds 3] [--txray-steps 4] [--threads 1] [--no-write]

Prints the figures and rewrites the "## TXRayTrainer" section of bench/RESULTS.md (not with `--no-write`).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback  # noqa: E402

from hf_txray import TXRayArguments, TXRayTrainer, corpora  # noqa: E402
from results_file import bench_parser, publish  # noqa: E402

MAX_LENGTH, BATCH = 64, 8


class StepTimer(TrainerCallback):
    """Wall and CPU time of every optimizer step, from on_step_begin to on_step_end (registered before TX-Ray's
    callback, so a snapshot taken in TX-Ray's on_step_end falls outside the measured step)."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._start = (0.0, 0.0)

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])


def setup(num_train: int, num_probe: int):
    path = corpora.default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    data = corpora.bbc_news(num_samples=num_train + num_probe, seed=0)
    train = data.select(range(num_train)).map(
        lambda b: tokenizer(b["text"], truncation=True, padding="max_length", max_length=MAX_LENGTH), batched=True,
        remove_columns=["text"])
    probe = list(data.select(range(num_train, num_train + num_probe))["text"])
    return path, tokenizer, train, probe


def run_one(kind: str, path: str, tokenizer, train, probe, txray_steps: int, output_dir: str) -> dict:
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=5)
    strategy = {"plain": "no", "txray-no": "no", "txray-steps": "steps"}[kind]
    args = TXRayArguments(output_dir=output_dir, num_train_epochs=1, per_device_train_batch_size=BATCH,
                          use_cpu=True, report_to="none", save_strategy="no", logging_strategy="no",
                          disable_tqdm=True, seed=0, txray_strategy=strategy, txray_steps=txray_steps,
                          txray_max_samples=len(probe), txray_max_length=MAX_LENGTH, txray_features=["token", "pos"])
    timer = StepTimer()
    trainer_cls = Trainer if kind == "plain" else TXRayTrainer
    extra = {} if kind == "plain" else {"txray_dataset": probe}
    trainer = trainer_cls(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                          callbacks=[timer], **extra)
    output = trainer.train()
    result = {"wall": timer.wall, "cpu": timer.cpu, "runtime": output.metrics["train_runtime"]}
    callback = getattr(trainer, "txray_callback", None)
    if callback is not None and callback.timeline:
        # The first snapshot also loads spaCy and tags the probe (cached on disk afterwards): reported apart.
        rows = callback.timeline
        measured = sum(r["profile_seconds"] + r["compare_seconds"] for r in rows)
        result.update(first=rows[0]["profile_seconds"],
                      profile=statistics.median(r["profile_seconds"] for r in rows[1:]),
                      compare=statistics.median(r["compare_seconds"] for r in rows[1:]),
                      files=(callback.overhead_seconds - measured) / len(rows))  # writing, plots, logging
    return result


def main() -> None:
    parser = bench_parser(__doc__.split("\n")[0])  # --no-write: print only, as the other bench scripts
    parser.add_argument("--train", type=int, default=64, help="training examples (one epoch)")
    parser.add_argument("--probe", type=int, default=64, help="probe texts per snapshot")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of the three trainers")
    parser.add_argument("--txray-steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared 2-core machine, 2 threads oversubscribe and add noise)")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    path, tokenizer, train, probe = setup(options.train, options.probe)
    results: dict[str, list[dict]] = {"plain": [], "txray-no": [], "txray-steps": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(options.rounds):
            for kind in results:
                results[kind].append(run_one(kind, path, tokenizer, train, probe, options.txray_steps,
                                             f"{tmp}/{kind}-{round_index}"))
                last = results[kind][-1]
                print(f"round {round_index} {kind}: median step {statistics.median(last['cpu']):.3f}s CPU, "
                      f"{statistics.median(last['wall']):.3f}s wall; train_runtime {last['runtime']:.1f}s", flush=True)
    # On a shared machine wall time mostly measures the other jobs; the CPU time this process spends in a step
    # measures the step's own work, so it is the figure of record.
    cpu = {k: statistics.median(t for r in v for t in r["cpu"]) for k, v in results.items()}
    wall = {k: statistics.median(t for r in v for t in r["wall"]) for k, v in results.items()}
    epoch = statistics.median(r["runtime"] for r in results["plain"])
    snapshots = results["txray-steps"]
    profile = statistics.median(r["profile"] for r in snapshots)
    compared = statistics.median(r["compare"] for r in snapshots)
    files = statistics.median(r["files"] for r in snapshots)
    first = snapshots[0]["first"]
    steps = len(results["plain"][0]["cpu"])
    body = "\n".join([
        f"MiniLM (all-MiniLM-L6-v2) sequence classifier, one epoch of {options.train} BBC News articles "
        f"({steps} steps of batch {BATCH}, {MAX_LENGTH} tokens), CPU ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} at the "
        f"end), {options.rounds} interleaved rounds. A step is forward + backward + optimizer (snapshots excluded); "
        "throughput = plain step time / step time, from the median CPU time of this process per step (figure of "
        "record: on a shared machine wall time mostly measures the other jobs); wall-clock medians alongside. "
        "`txray_strategy=\"no\"` runs exactly the plain Trainer's loop, so its row shows the measurement noise.", "",
        "| trainer | CPU s / step | throughput vs plain (CPU) | wall s / step | throughput vs plain (wall) |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {label} | {cpu[k]:.3f} | {cpu['plain'] / cpu[k]:.3f} | {wall[k]:.3f} | "
          f"{wall['plain'] / wall[k]:.3f} |" for k, label in [
              ("plain", "plain `Trainer`"), ("txray-no", "`TXRayTrainer`, `txray_strategy=\"no\"`"),
              ("txray-steps", f"`TXRayTrainer`, steps between snapshots (every {options.txray_steps})")]],
        "",
        f"One snapshot ({options.probe} probe texts, token + POS, 6 layers x 1536 neurons): profiling {profile:.1f} s, "
        f"comparing with the first and previous profiles {compared:.1f} s, writing files and logging {files:.1f} s "
        f"(medians). The first snapshot of the first run took {first:.1f} s (it loads spaCy and tags the probe; tags "
        f"are cached on disk). One training epoch ({options.train} examples, plain Trainer): {epoch:.1f} s; "
        f"snapshot / epoch = {(profile + compared + files) / epoch:.2f}.",
    ])
    print()
    publish("TXRayTrainer", body, options)


if __name__ == "__main__":
    main()
