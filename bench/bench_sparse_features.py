"""Calibration of the per-neuron test on sparse feature types (helpers 231, 232): values carried by few texts.

    python bench/bench_sparse_features.py [--reps 200] [--sizes 30,100] [--no-check]

MiniLM (MLP site) on 1200 random WikiText-2 validation paragraphs (max_length 128), credits taken once with plain
forward pre-hooks (max-1, positive winners, no special tokens). Each report: two disjoint random samples of n
paragraphs (one model: nothing changed), texts in random order (example-id parity = place in the sample). Features:
`carrier d`, a 6-category token shape on every position of a fixed random d of the paragraphs (values packed in few
texts); `wordlist d`, 4-7 mid-frequency tokens chosen so that d of the paragraphs hold one (values spread thinly);
`digits`, the first digit of digit tokens. Cap of each stage's degrees of freedom: `all` (every text of the stage, the
test before), `recorded` (the texts that carry a value: what profiles record in ``meta.num_feature_texts`` and
`compare` uses), `estimate` (helper 231's estimate, not merged: texts x share of positions with a value). Prints the
share of tested neurons with p < 0.05 and < 0.001 and the reports with a Benjamini-Hochberg flag (a calibrated test:
<= 0.05, <= 0.001, <= 5%). First (unless --no-check), for each feature, the count this script uses is checked against
what `hf_txray.analyze` records for the first sample of the first size (the feature as a `UserFeature`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import models  # noqa: E402
from hf_txray import significance  # noqa: E402
from hf_txray.profile import FeatureTable  # noqa: E402

SHAPES = ["sub", "lower", "upper", "digit", "punct", "other"]


def shape(s: str) -> int:
    if s.startswith("##"):
        return 0
    if s.isalpha():
        return 1 if s.islower() else 2
    return 3 if any(c.isdigit() for c in s) else 4 if all(not c.isalnum() for c in s) else 5


def credits(texts, model, tok):
    layers, out, captured = model.encoder.layer, [], {}
    N = model.config.intermediate_size
    for i, layer in enumerate(layers):
        layer.output.dense.register_forward_pre_hook(lambda m, a, i=i: captured.__setitem__(i, a[0].detach()))
    with torch.no_grad():
        for s in range(0, len(texts), 32):
            enc = tok(texts[s:s + 32], return_tensors="pt", padding=True, truncation=True, max_length=128)
            model(**enc)
            for j in range(enc["input_ids"].shape[0]):
                ids = enc["input_ids"][j]
                special = torch.tensor(tok.get_special_tokens_mask(ids.tolist(), already_has_special_tokens=True))
                real = (enc["attention_mask"][j].bool() & ~special.bool()).nonzero().flatten()
                rec = []
                for li in range(len(layers)):
                    v, k = captured[li][j, real].max(-1)
                    rec += [(li * N + n, int(ids[real[p]]), x) for p, (x, n) in enumerate(zip(v.tolist(), k.tolist()))
                            if x > 0]
                out.append(np.array(rec, dtype=[("row", "i8"), ("tok", "i8"), ("act", "f8")]))
    return out, len(layers) * N


def table(labels, stage, vocab):
    R, F, A, O = [], [], [], []
    for place, t in enumerate(stage):
        rows, fids, act = labels[t][:3]
        keep = fids >= 0
        R.append(rows[keep]), F.append(fids[keep]), A.append(act[keep]), O.append(np.full(keep.sum(), place % 2))
    R, F, A, O = map(np.concatenate, (R, F, A, O))
    u, inv = np.unique((R << 32) | F, return_inverse=True)
    s = lambda w: np.bincount(inv, weights=w, minlength=len(u))  # noqa: E731
    return FeatureTable(list(vocab), u >> 32, u & 0xFFFFFFFF, s(A), np.bincount(inv, minlength=len(u)),
                        np.bincount(F, minlength=len(vocab)), s(A * O), s(O.astype(float)).astype(np.int64), s(A * A))


def estimate(texts: int, positions_with_value: int, positions: int) -> int:
    """Helper 231's estimate of the carrying texts (not merged): texts x share of positions with a value, rounded up."""
    if texts <= 0 or positions <= 0:
        return max(int(texts), 0)
    share = min(max(positions_with_value, 0) / positions, 1.0)
    return int(min(texts, max(1, np.ceil(texts * share - 1e-9))))


def check_recorded(model, tok, texts, name, labels, chosen) -> tuple[int, int]:
    """(texts the script counts as carrying `name`, texts hf_txray.analyze records) for the texts `chosen`: the
    feature is given to analyze as a UserFeature labelling the characters of the tokens the script labels."""
    import hf_txray

    by_text = {}
    for t in chosen:
        enc = tok(texts[t], truncation=True, max_length=128, return_offsets_mapping=True)
        ids = np.array(enc["input_ids"])
        value = {int(i): int(v) for i, v in zip(labels[t][3], labels[t][1])}  # token id -> value (same per text)
        by_text[texts[t]] = [(s, e, str(value[int(i)])) for i, (s, e) in zip(ids, enc["offset_mapping"])
                             if e > s and value.get(int(i), -1) >= 0]
    feature = hf_txray.UserFeature("f", lambda text: by_text.get(text, []))
    profile = hf_txray.analyze(model, [texts[t] for t in chosen], tokenizer=tok, features=("token", feature),
                               max_length=128, long_texts="truncate", max_examples_per_neuron=0, show_progress=False)
    return int(sum((labels[t][1] >= 0).any() for t in chosen)), profile.meta.num_feature_texts["f"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--sizes", default="30,100,300")
    ap.add_argument("--no-check", action="store_true", help="skip the check against hf_txray.analyze's count")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = [x.strip() for x in open(Path(__file__).resolve().parents[2] / "shared/data/wikitext-2/valid.txt")
             if x.strip() and not x.strip().startswith("=")]
    texts = list(np.random.default_rng(0).choice(lines, 1200, replace=False))
    from transformers import AutoModel
    tok = models.bert_tokenizer()
    model = AutoModel.from_pretrained(models.minilm_path()).eval()
    P, num_rows = credits(texts, model, tok)
    vocab = tok.convert_ids_to_tokens(list(range(tok.vocab_size)))
    T, rng0 = len(P), np.random.default_rng(123)
    tok_shape = np.array([shape(s) for s in vocab])
    features = {}
    for d in (0.02, 0.05, 0.1, 0.3):
        carriers = set(rng0.choice(T, max(1, round(d * T)), replace=False).tolist())
        features[f"carrier {d:g}"] = (SHAPES, [(p["row"], tok_shape[p["tok"]] if t in carriers else
                                                np.full(len(p), -1), p["act"], p["tok"]) for t, p in enumerate(P)])
        docs: dict[int, set] = {}
        for t, p in enumerate(P):
            for k in set(p["tok"].tolist()):
                docs.setdefault(k, set()).add(t)
        cand = [k for k, s in docs.items() if d * T / 10 <= len(s) <= max(2, d * T / 2)]
        rng0.shuffle(cand)
        chosen, covered = [], set()
        for k in cand:
            if len(covered) >= d * T:
                break
            chosen.append(k), covered.update(docs[k])
        lut = np.full(len(vocab), -1)
        lut[chosen] = np.arange(len(chosen))
        features[f"wordlist {d:g}"] = ([vocab[k] for k in chosen], [(p["row"], lut[p["tok"]], p["act"], p["tok"])
                                                                    for p in P])
    lut = np.array([int(s[0]) if s[:1] in "0123456789" and s[:1] else -1 for s in vocab])
    features["digits"] = ([str(i) for i in range(10)], [(p["row"], lut[p["tok"]], p["act"], p["tok"]) for p in P])
    if not args.no_check:
        first = np.random.default_rng(int(args.sizes.split(",")[0])).permutation(T)[:int(args.sizes.split(",")[0])]
        for name, (_, labels) in features.items():
            mine, recorded = check_recorded(model, tok, texts, name, labels, first)
            print(f"check {name}: {mine} carrying texts counted here, {recorded} recorded by hf_txray.analyze",
                  flush=True)
    print("| feature | texts per stage | carrying, mean | tested | p < 0.05, all / recorded / estimate "
          "| p < 0.001, all / recorded / estimate | reports with a flag, all / recorded / estimate |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in map(int, args.sizes.split(",")):
        rng = np.random.default_rng(n)
        splits = [(perm[:n], perm[n:2 * n]) for perm in (rng.permutation(T) for _ in range(args.reps))]
        for name, (fv, labels) in features.items():
            carries = np.array([(lab[1] >= 0).any() for lab in labels])
            res = {k: [0, 0, 0] for k in ("all", "recorded", "estimate")}
            tested, carrying = 0, []
            for A, B in splits:
                ta, tb = table(labels, A, fv), table(labels, B, fv)
                carrying.append((carries[A].sum() + carries[B].sum()) / 2)
                if any(int(t.count_odd.sum()) in (0, int(t.count.sum())) for t in (ta, tb)):
                    continue  # one parity: compare gives no test
                la = np.bincount(ta.rows, minlength=num_rows) > 0
                lb = np.bincount(tb.rows, minlength=num_rows) > 0
                caps = {"all": (n, n), "recorded": (int(carries[A].sum()), int(carries[B].sum())),
                        "estimate": tuple(estimate(n, int(sum((labels[t][1] >= 0).sum() for t in S)),
                                                   int(sum(len(labels[t][1]) for t in S))) for S in (A, B))}
                for k, cap in caps.items():
                    p, _ = significance.homogeneity_pvalues(ta, tb, num_rows, la & lb, texts=cap)
                    ok = ~np.isnan(p)
                    res[k][0] += (p[ok] < 0.05).sum()
                    res[k][1] += (p[ok] < 0.001).sum()
                    res[k][2] += significance.benjamini_hochberg(p).any()
                tested += ok.sum()
            f = lambda i, s: " / ".join(s.format(res[k][i] / max(tested, 1)) for k in res)  # noqa: E731
            print(f"| {name} | {n} | {np.mean(carrying):.1f} | {tested} | {f(0, '{:.4f}')} | {f(1, '{:.5f}')} | "
                  + " / ".join(f"{res[k][2]}" for k in res) + f" of {len(splits)} |", flush=True)


if __name__ == "__main__":
    main()
