"""TX-Ray-guided pruning on the embedded default model (issue 6): does pruning the neurons TX-Ray points at hurt
or help a fine-tuned classifier, compared with pruning random neurons?

The experiment:

1. *pretrained* profile: MiniLM (all-MiniLM-L6-v2) profiled on Penn Treebank text (token features);
2. fine-tune MiniLM on BBC News topics (5 classes) with :class:`hf_txray.TXRayTrainer`, which profiles the fine-tuned
   model on a probe sample of the *training* articles at the end of training (the *fine-tuned* profile);
3. the transfer report pretrained-PTB -> fine-tuned-BBC ranks the neurons; we prune 5/10/20% of the MLP neurons of
   every layer by each strategy (``lost``, ``gained``, ``most_changed``, ``least_changed``, ``low_mass``) and by
   ``random`` (several seeds), with ``mode="mask"``, and evaluate held-out accuracy and macro-F1 with the `evaluate`
   API (hf_txray's offline metric scripts);
4. a shifted-input check: the same held-out articles seen through a window that skips the headline and lead (the
   first 60 words), i.e. the same labels on a different part of the text;
5. ``mode="remove"`` at 20%: parameters, saved size and timed inference against the unpruned model in the same run,
   and a check that its logits equal the masked model's.

Everything is repeated for several fine-tuning seeds. All settings are fixed in advance (nothing is chosen on the
test split). To fit a 2-core CPU budget the fine-tuning is short (one epoch on a subset, 32-token windows); the
sizes are options.

Usage:
    python examples/pruning_experiment.py                # full run (about 10-15 minutes on 2 CPU cores)
    python examples/pruning_experiment.py --quick        # smoke test (a few minutes)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

STRATEGIES = ("lost", "gained", "most_changed", "least_changed", "low_mass")


@dataclass
class ExperimentConfig:
    """Sizes and settings of the experiment (defaults: the full run)."""

    train_size: int = 600
    probe_size: int = 200
    test_size: int = 150
    ptb_size: int = 1000
    max_length: int = 32
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 2e-4
    warmup: float = 0.1
    ft_seeds: tuple[int, ...] = (0, 1, 2)
    random_seeds: tuple[int, ...] = (0, 1, 2)
    amounts: tuple[float, ...] = (0.05, 0.1, 0.2)
    strategies: tuple[str, ...] = STRATEGIES
    # Every strategy is also compared with random pruning of exactly its per-layer counts, with these seeds: a
    # strategy with fewer candidates than asked (e.g. fewer lost neurons than 20% of a layer) prunes them all.
    matched_seeds: tuple[int, ...] = (0,)
    ood_skip_words: int = 60
    shifted_amounts: tuple[float, ...] = (0.1,)
    eval_batch_size: int = 50
    speed_amount: float = 0.2
    speed_repeats: int = 5
    out: str = "results/pruning_experiment"
    extra: dict = field(default_factory=dict)


def quick_config() -> ExperimentConfig:
    return ExperimentConfig(train_size=96, probe_size=48, test_size=40, ptb_size=200, ft_seeds=(0, 1),
                            random_seeds=(0, 1), amounts=(0.1,), speed_repeats=2, out="results/pruning_experiment_quick")


# ----- data ---------------------------------------------------------------------------------------------------------
def body_view(text: str, skip: int) -> str:
    """The article without its headline and lead: the words after the first `skip` (or the second half)."""
    words = text.split()
    start = skip if len(words) > skip + 20 else len(words) // 2
    return " ".join(words[start:])


def load_data(config: ExperimentConfig):
    import datasets

    from hf_txray import corpora

    bbc = corpora.bbc_news()  # 2,225 articles, shuffled with seed 0
    if config.train_size + config.test_size > len(bbc):
        raise ValueError("train_size + test_size exceeds the 2,225 BBC articles")
    train = bbc.select(range(config.train_size))
    test = bbc.select(range(len(bbc) - config.test_size, len(bbc)))  # disjoint from train
    shifted = datasets.Dataset.from_dict({"text": [body_view(t, config.ood_skip_words) for t in test["text"]],
                                          "label": test["label"]})
    probe = train["text"][: config.probe_size]  # TX-Ray profiles fine-tuning data, never the test split
    ptb = corpora.penn_treebank("train", num_samples=config.ptb_size)
    return train, test, shifted, probe, ptb, bbc.features["label"].names


# ----- stages -------------------------------------------------------------------------------------------------------
def pretrained_profile(config: ExperimentConfig, ptb):
    from hf_txray import analyze, corpora

    return analyze(corpora.default_model_path(), ptb, features=("token",), max_length=config.max_length,
                   batch_size=32, stage="pretrained-ptb", model_id=corpora.DEFAULT_MODEL_ID, show_progress=False)


def fine_tune(config: ExperimentConfig, seed: int, train, probe, labels, tokenizer):
    """Fine-tune MiniLM on BBC topics with TXRayTrainer; returns the model and its end-of-training profile."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from hf_txray import corpora
    from hf_txray.trainer import TXRayArguments, TXRayTrainer

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        corpora.default_model_path(), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)})
    tokenized = train.map(lambda b: tokenizer(b["text"], truncation=True, max_length=config.max_length),
                          batched=True, remove_columns=["text"])
    args = TXRayArguments(
        output_dir=str(Path(config.out) / f"finetune-seed{seed}"), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate, weight_decay=0.01,
        warmup_steps=config.warmup,
        seed=seed, report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no", logging_steps=10,
        txray_strategy="steps", txray_steps=10**9, txray_on_train_begin=False, txray_features=["token"],
        txray_max_samples=config.probe_size, txray_max_length=config.max_length, txray_batch_size=32,
    )
    trainer = TXRayTrainer(model=model, args=args, train_dataset=tokenized, processing_class=tokenizer,
                           txray_dataset=list(probe))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    profile = list(trainer.txray_profiles.values())[-1]
    profile.meta.stage = "finetuned-bbc"
    model = trainer.model.eval()
    return model, profile, seconds


# ----- remove mode: size and speed ------------------------------------------------------------------------------------
def _saved_bytes(model) -> int:
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def _reload_check(model, batches) -> float:
    from transformers import AutoModelForSequenceClassification

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        back = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return max(float((back(**b).logits - model(**b).logits).abs().max()) for b in batches[:2])


def speed_and_size(model, batches, config: ExperimentConfig, model_label: str) -> dict:
    """Remove `speed_amount` of the neurons (random, per layer) and time both models on the same batches.

    The machine is shared, so wall time is at the mercy of other processes: both models run with one thread,
    interleaved, and the main figure is the process CPU time of a pass (wall time is reported next to it).
    """
    from hf_txray.pruning import apply_plan, find_sites, masked, plan_pruning

    widths = {site.layer: site.width for site in find_sites(model, "mlp")}
    plan = plan_pruning(None, "random", config.speed_amount, seed=0, mode="remove", widths=widths)
    removed = apply_plan(copy.deepcopy(model), plan)
    with torch.no_grad():
        with masked(model, plan):
            masked_logits = [model(**b).logits for b in batches]
        diff = max(float((removed(**b).logits - m).abs().max()) for b, m in zip(batches, masked_logits))

    def timed(target) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for b in batches:
                target(**b)
        return time.perf_counter() - wall, time.process_time() - cpu

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timed(model), timed(removed)  # warm-up
        base, pruned = [], []
        for _ in range(config.speed_repeats):  # interleaved, so load changes hit both alike
            base.append(timed(model))
            pruned.append(timed(removed))
    finally:
        torch.set_num_threads(threads)
    mlp = lambda m: sum(p.numel() for n, p in m.named_parameters()  # noqa: E731
                        if ("intermediate" in n or "output.dense" in n) and "attention" not in n)
    tokens = int(sum(int(b["attention_mask"].sum()) for b in batches))
    median = lambda runs, k: float(np.median([r[k] for r in runs]))  # noqa: E731
    return {
        "model": model_label, "amount": config.speed_amount,
        "intermediate_size": int(removed.config.intermediate_size),
        "params_unpruned": int(sum(p.numel() for p in model.parameters())),
        "params_removed": int(sum(p.numel() for p in removed.parameters())),
        "mlp_params_unpruned": int(mlp(model)), "mlp_params_removed": int(mlp(removed)),
        "bytes_unpruned": _saved_bytes(model), "bytes_removed": _saved_bytes(removed),
        "cpu_unpruned": median(base, 1), "cpu_removed": median(pruned, 1),
        "wall_unpruned": median(base, 0), "wall_removed": median(pruned, 0),
        "runs_unpruned": base, "runs_removed": pruned, "tokens": tokens, "passes": config.speed_repeats,
        "max_abs_diff_vs_mask": diff, "max_abs_diff_after_reload": _reload_check(removed, batches),
    }


def remeasure_speed(config: ExperimentConfig) -> dict:
    """Size and speed of `remove` on the MiniLM classifier architecture (head freshly initialised: the FLOPs and
    sizes do not depend on the fine-tuned weights), for the stored results of an earlier run."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from hf_txray import corpora
    from hf_txray.evaluation import encode_batches

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(corpora.default_model_path(), num_labels=5).eval()
    tokenizer = AutoTokenizer.from_pretrained(corpora.default_model_path())
    _, test, _, _, _, _ = load_data(config)
    batches = encode_batches(tokenizer, test["text"], config.eval_batch_size, config.max_length)
    return speed_and_size(model, batches, config, "MiniLM classifier, measured after the accuracy run")


# ----- the run ------------------------------------------------------------------------------------------------------
def experiment_plans(report, config: ExperimentConfig):
    """Every strategy x amount (random once per seed), plus, for every strategy, random plans of exactly its per-layer
    counts (``random~<strategy>``). Returns ``({name: plan}, {name: (strategy label, requested amount)})``.

    The matched plans are made for every strategy plan, whether or not it had fewer candidates than asked: a
    ``random~<strategy>`` row made only where the strategy fell short averaged the fine-tuning seeds where it did, and
    was compared with the strategy's row over all of them (the 5% rows of 2026-12-01: ``random~most_changed`` 420
    neurons over 2 seeds against ``most_changed`` 434 over 3)."""
    from hf_txray.evaluation import sweep_plans
    from hf_txray.pruning import plan_pruning

    plans, labels = {}, {}
    for plan in sweep_plans(report, list(config.strategies) + ["random"], list(config.amounts),
                            list(config.random_seeds), allow_fewer=True):
        plans[plan.name], labels[plan.name] = plan, (plan.strategy, plan.amount)
        if plan.strategy != "random":
            for seed in config.matched_seeds:
                name = f"random~{plan.name}/seed={seed}"
                plans[name] = plan_pruning(report, "random", plan.counts, seed=seed)
                labels[name] = (f"random~{plan.strategy}", plan.amount)
    return plans, labels


def run(config: ExperimentConfig) -> dict:
    from transformers import AutoTokenizer

    from hf_txray import compare, corpora
    from hf_txray.evaluation import encode_batches, evaluate_pruning

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(corpora.default_model_path())
    train, test, shifted, probe, ptb, labels = load_data(config)
    pretrained = pretrained_profile(config, ptb)
    print(f"[{time.perf_counter() - t0:6.1f}s] {pretrained}")
    rows, reports, speed, timings = [], {}, None, {}
    for ft_seed in config.ft_seeds:
        model, finetuned, train_seconds = fine_tune(config, ft_seed, train, probe, labels, tokenizer)
        report = compare(pretrained, finetuned)
        report.save_pretrained(out / f"report-seed{ft_seed}")
        reports[ft_seed] = report
        summary = report.summary()
        counts = report.neurons.groupby("layer")["status"].value_counts().unstack(fill_value=0)
        print(f"[{time.perf_counter() - t0:6.1f}s] fine-tune seed {ft_seed}: {train_seconds:.0f}s; {report}")
        print(counts.to_string())
        plans, labels = experiment_plans(report, config)
        for split, data in (("test", test), ("shifted", shifted)):
            chosen = {name: plan for name, plan in plans.items()
                      if split == "test" or labels[name][1] in config.shifted_amounts}
            table = evaluate_pruning(model, chosen, data, tokenizer=tokenizer, max_length=config.max_length,
                                     batch_size=config.eval_batch_size)
            for name, (strategy, amount) in labels.items():
                table.loc[table["plan"] == name, ["strategy", "amount"]] = [strategy, amount]
            table.insert(0, "split", split)
            table.insert(0, "ft_seed", ft_seed)
            rows.append(table)
            base = table.iloc[0]
            print(f"[{time.perf_counter() - t0:6.1f}s]   {split}: unpruned accuracy {base['accuracy']:.4f}, "
                  f"{len(table) - 1} pruned models evaluated")
        timings[ft_seed] = {"train_seconds": train_seconds, "share_lost": summary["share_lost"],
                            "share_gained": summary["share_gained"], "share_dead": summary["share_dead"],
                            "share_shared": summary["share_shared"],
                            "mean_hellinger_token": summary.get("mean_hellinger_token")}
        if speed is None:
            batches = encode_batches(tokenizer, test["text"], config.eval_batch_size, config.max_length)
            speed = speed_and_size(model, batches, config, f"fine-tuned seed {ft_seed}, measured in the same run")
            print(f"[{time.perf_counter() - t0:6.1f}s]   remove {config.speed_amount:.0%}: CPU "
                  f"{speed['cpu_unpruned']:.3f}s -> {speed['cpu_removed']:.3f}s per pass")
        del model
    results = pd.concat(rows, ignore_index=True)
    results.to_csv(out / "results.csv", index=False)
    total = time.perf_counter() - t0
    payload = {"config": asdict(config), "speed": speed, "per_seed": timings, "total_seconds": total,
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                          f"{torch.get_num_threads()} threads"}
    (out / "summary.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return {"results": results, "speed": speed, "per_seed": timings, "total_seconds": total, "config": config,
            "machine": payload["machine"]}


def load_outcome(config: ExperimentConfig) -> dict:
    """The stored outcome of an earlier :func:`run` (``results.csv`` and ``summary.json`` under ``config.out``)."""
    out = Path(config.out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"results": pd.read_csv(out / "results.csv"), "speed": summary["speed"], "per_seed": summary["per_seed"],
            "total_seconds": summary["total_seconds"], "config": config, "machine": summary["machine"]}


def store_speed(config: ExperimentConfig, speed: dict) -> None:
    path = Path(config.out) / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["speed"] = speed
    path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


# ----- aggregation and write-up ---------------------------------------------------------------------------------------
def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Per split, strategy and amount: accuracy / F1 mean ± std over all runs, and the paired change vs the unpruned
    model of the same fine-tuning seed."""
    base = results[results["plan"] == "unpruned"].set_index(["ft_seed", "split"])
    frame = results.copy()
    frame["d_accuracy"] = frame["accuracy"] - [base.loc[(s, p), "accuracy"] for s, p in zip(frame["ft_seed"], frame["split"])]
    frame["d_f1"] = frame["f1"] - [base.loc[(s, p), "f1"] for s, p in zip(frame["ft_seed"], frame["split"])]
    frame["amount"] = frame["amount"].astype(str)
    grouped = frame.groupby(["split", "strategy", "amount"], sort=False)
    table = grouped.agg(runs=("accuracy", "size"), pruned=("pruned", "mean"), accuracy=("accuracy", "mean"),
                        accuracy_std=("accuracy", "std"), d_accuracy=("d_accuracy", "mean"),
                        d_accuracy_std=("d_accuracy", "std"), f1=("f1", "mean"), f1_std=("f1", "std"),
                        d_f1=("d_f1", "mean"))
    return table.reset_index()


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    std = 0.0 if std != std else std
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _signed(mean: float, std: float) -> str:
    std = 0.0 if std != std else std
    return f"{mean * 100:+.1f} ± {std * 100:.1f}"


def markdown(outcome: dict) -> str:
    """The "## Pruning" write-up: setup, tables, remove-mode figures and a verdict computed from the numbers."""
    config: ExperimentConfig = outcome["config"]
    table = aggregate(outcome["results"])
    speed = outcome["speed"]
    seeds = outcome["per_seed"]
    n_ft, n_rand = len(config.ft_seeds), len(config.random_seeds)
    lines = [
        f"Embedded default: all-MiniLM-L6-v2 (6 layers x 1,536 MLP neurons) fine-tuned on BBC News topics (5 classes) "
        f"with `TXRayTrainer`, {n_ft} fine-tuning seeds; ranking from the transfer report *pretrained on PTB* "
        f"({config.ptb_size} sentences) -> *fine-tuned on BBC* (profile of {config.probe_size} training articles, "
        f"token features). Short fine-tuning to fit 2 CPU cores: {config.epochs:g} epoch on {config.train_size} "
        f"articles, {config.max_length}-token windows, lr {config.learning_rate:g} (10% warm-up), batch "
        f"{config.batch_size}; settings fixed before the run, none chosen on test data. Test: "
        f"{config.test_size} held-out articles; *shifted*: the same articles read from word {config.ood_skip_words} "
        f"on (no headline, no lead), evaluated at {', '.join(f'{a:.0%}' for a in config.shifted_amounts)} only. Pruning: "
        f"`mode=\"mask\"`, the same fraction of every layer; `random` with {n_rand} seeds per fine-tuning seed. When a "
        f"strategy has fewer candidates than asked (e.g. fewer *lost* neurons in a layer than 20% of it) it prunes all "
        f"of them; `random~<strategy>` prunes exactly as many random neurons per layer as the strategy, in every "
        f"fine-tuning seed ({len(config.matched_seeds)} seed(s) per fine-tuning seed; `random~most_changed` and "
        f"`random~least_changed` coincide, as both strategies draw from the same shared neurons). Accuracy and macro-F1 in % through the `evaluate` API "
        f"(hf_txray's offline metric scripts); mean ± std over runs ({n_ft} for TX-Ray strategies, {n_ft * n_rand} "
        f"for random); Δ is paired with the unpruned model of the same fine-tuning seed. Machine: {outcome['machine']}; "
        f"whole run {outcome['total_seconds'] / 60:.1f} min.",
        "",
        "Neuron status, pretrained-PTB -> fine-tuned-BBC (share of the 9,216 neurons, per fine-tuning seed): "
        + "; ".join(f"seed {s}: shared {v['share_shared']:.1%}, lost {v['share_lost']:.1%}, gained "
                    f"{v['share_gained']:.1%}, dead {v['share_dead']:.1%}" for s, v in seeds.items()) + ".",
        "",
    ]
    for split, title in (("test", "Held-out test articles"), ("shifted", "Shifted input (article body only)")):
        part = table[table["split"] == split]
        base = part[part["strategy"] == "none"].iloc[0]
        lines += [f"**{title}** — unpruned: accuracy {_pm(base['accuracy'], base['accuracy_std'])}, "
                  f"macro-F1 {_pm(base['f1'], base['f1_std'])}", "",
                  "| amount | strategy | neurons pruned | accuracy | Δ accuracy | macro-F1 | Δ F1 |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for amount in [str(a) for a in config.amounts]:
            for strategy in _strategy_order(part, config):
                row = part[(part["strategy"] == strategy) & (part["amount"] == amount)]
                if row.empty:
                    continue
                r = row.iloc[0]
                lines.append(f"| {float(amount):.0%} | {strategy} | {r['pruned']:.0f} | "
                             f"{_pm(r['accuracy'], r['accuracy_std'])} | {_signed(r['d_accuracy'], r['d_accuracy_std'])} | "
                             f"{_pm(r['f1'], r['f1_std'])} | {r['d_f1'] * 100:+.1f} |")
        lines.append("")
    lines += verdict(table, config)
    if speed:
        lines += [
            "",
            f"**`mode=\"remove\"`** ({speed['amount']:.0%} of every layer, random neurons; intermediate size "
            f"1536 -> {speed['intermediate_size']}; {speed['model']}; median of {speed['passes']} interleaved "
            f"passes over the {config.test_size} test articles ({speed['tokens']} tokens), one thread. The machine "
            "is shared with other jobs, so the CPU time of the process is the main figure; wall time is "
            "shown too):",
            "",
            "| | unpruned | removed | ratio |",
            "| --- | ---: | ---: | ---: |",
            f"| parameters | {speed['params_unpruned']:,} | {speed['params_removed']:,} | "
            f"{speed['params_removed'] / speed['params_unpruned']:.3f} |",
            f"| MLP parameters | {speed['mlp_params_unpruned']:,} | {speed['mlp_params_removed']:,} | "
            f"{speed['mlp_params_removed'] / speed['mlp_params_unpruned']:.3f} |",
            f"| saved safetensors | {speed['bytes_unpruned'] / 2**20:.1f} MiB | "
            f"{speed['bytes_removed'] / 2**20:.1f} MiB | {speed['bytes_removed'] / speed['bytes_unpruned']:.3f} |",
            f"| inference, CPU time per pass | {speed['cpu_unpruned']:.3f} s | {speed['cpu_removed']:.3f} s | "
            f"{speed['cpu_removed'] / speed['cpu_unpruned']:.3f} (speed-up x"
            f"{speed['cpu_unpruned'] / speed['cpu_removed']:.2f}) |",
            f"| inference, wall time per pass | {speed['wall_unpruned']:.3f} s | {speed['wall_removed']:.3f} s | "
            f"{speed['wall_removed'] / speed['wall_unpruned']:.3f} |",
            "",
            f"The removed model's logits equal the masked model's (max |Δ| {speed['max_abs_diff_vs_mask']:.1e}) and "
            f"are unchanged after `save_pretrained` + `AutoModelForSequenceClassification.from_pretrained` "
            f"(max |Δ| {speed['max_abs_diff_after_reload']:.1e}). The embeddings (30k x 384) dominate the parameter "
            "count, so the MLP share of the saving is larger than the whole-model share.",
        ]
    return "\n".join(lines)


def _strategy_order(part: pd.DataFrame, config: ExperimentConfig) -> list[str]:
    present = [s for s in part["strategy"].unique() if s != "none"]
    main = [s for s in list(config.strategies) + ["random"] if s in present]
    return main + sorted(s for s in present if s not in main)


def verdict(table: pd.DataFrame, config: ExperimentConfig) -> list[str]:
    """Statements computed from the numbers: each strategy vs random, and vs the unpruned model."""
    part = table[table["split"] == "test"]
    better_than_base, vs_random = [], []
    for amount in [str(a) for a in config.amounts]:
        for strategy in config.strategies:
            row = part[(part["strategy"] == strategy) & (part["amount"] == amount)]
            rand = part[(part["strategy"] == f"random~{strategy}") & (part["amount"] == amount)]
            if rand.empty:
                rand = part[(part["strategy"] == "random") & (part["amount"] == amount)]
            if row.empty or rand.empty:
                continue
            s, r = row.iloc[0], rand.iloc[0]
            gap = s["d_accuracy"] - r["d_accuracy"]
            noise = max(r["d_accuracy_std"] if r["d_accuracy_std"] == r["d_accuracy_std"] else 0.0,
                        s["d_accuracy_std"] if s["d_accuracy_std"] == s["d_accuracy_std"] else 0.0)
            if abs(gap) > noise:
                vs_random.append(f"{strategy} at {float(amount):.0%}: {gap * 100:+.1f} points vs {r['strategy']}")
            if s["d_accuracy"] > 0 and s["d_accuracy"] > (s["d_accuracy_std"] if s["d_accuracy_std"] == s["d_accuracy_std"] else 0):
                better_than_base.append(f"{strategy} at {float(amount):.0%} ({s['d_accuracy'] * 100:+.1f})")
    lines = ["**What we measured.** "]
    if better_than_base:
        lines[0] += ("Pruning raised held-out accuracy by more than one standard deviation of the paired change for: "
                     + ", ".join(better_than_base) + ". ")
    else:
        lines[0] += ("No strategy raised held-out accuracy over the unpruned model by more than one standard deviation "
                     "of the paired change, so the paper's observation that TX-Ray-guided pruning can improve test "
                     "generalisation is not reproduced in this setting. ")
    if vs_random:
        lines[0] += ("Differences from the random baseline (of the same size) larger than the standard deviation of "
                     "either: "
                     + "; ".join(vs_random) + ".")
    else:
        lines[0] += ("No strategy differed from random pruning of the same size by more than the standard deviation "
                     "of either.")
    shifted = table[(table["split"] == "shifted") & (table["strategy"].isin(config.strategies))]
    up = shifted[(shifted["d_accuracy"] > 0) & (shifted["d_accuracy"] > shifted["d_accuracy_std"].fillna(0))]
    if len(up):
        lines[0] += (" On the shifted input, more than one standard deviation above the unpruned model: "
                     + ", ".join(f"{r.strategy} at {float(r.amount):.0%} ({_signed(r.d_accuracy, r.d_accuracy_std)})"
                                 for r in up.itertuples()) + ".")
    else:
        lines[0] += " On the shifted input, no strategy was more than one standard deviation above the unpruned model."
    lines[0] += (f" For scale: one test article is {100 / config.test_size:.2f} accuracy points, and with "
                 f"{len(config.ft_seeds)} fine-tuning seeds a one-standard-deviation criterion is weak evidence either "
                 "way.")
    return lines


def write_plot(outcome: dict, path: Path) -> Path:
    from hf_txray.plots import new_figure, plot_sweep, save_figure

    results = outcome["results"]
    fig, axes = new_figure(1, 2, 5.5, 4.2)
    for ax, split, title in zip(axes[0], ("test", "shifted"), ("held-out test", "shifted input (body only)")):
        plot_sweep(results[results["split"] == split], "accuracy", ax=ax,
                   strategies=list(outcome["config"].strategies) + ["random"])
        ax.set_title(f"MiniLM on BBC News: {title}")
    return save_figure(fig, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small sizes, for a smoke test.")
    parser.add_argument("--out", help="Output folder (default results/pruning_experiment).")
    args = parser.parse_args(argv)
    config = quick_config() if args.quick else ExperimentConfig()
    if args.out:
        config.out = args.out
    outcome = run(config)
    text = markdown(outcome)
    (Path(config.out) / "RESULTS.md").write_text(text + "\n", encoding="utf-8")
    write_plot(outcome, Path(config.out) / "accuracy.png")
    print("\n" + text)
    return outcome


if __name__ == "__main__":
    main()
