"""Pretrain a small GPT-2 from random initialisation on Penn Treebank text, with frequent TX-Ray snapshots (CPU).

TX-Ray's pretraining observation (Rethmeier et al., 2020): neuron preferences converge like perplexity, and POS
preferences are learned early. This script measures it for a 4-layer GPT-2 trained for a few hundred steps: every
`txray_steps` it profiles the MLP neurons on held-out PTB sentences (token and POS features) and evaluates
perplexity; at the end it compares every snapshot with the final one and prints, per step, perplexity next to the
distance of the POS and token preferences from their final state. Figure: ``<output_dir>/pos_vs_perplexity.png``.

    python examples/pretrain_from_scratch.py
    python examples/pretrain_from_scratch.py --max_steps 1200 --txray_steps 50 --output_dir out/ptb
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from transformers import DataCollatorForLanguageModeling, GPT2Config, GPT2LMHeadModel, HfArgumentParser  # noqa: E402

from hf_txray import TXRayArguments, TXRayTrainer, compare, corpora  # noqa: E402


@dataclass
class ExampleArguments:
    vocab_size: int = field(default=4000, metadata={"help": "Byte-level BPE vocabulary trained on PTB train."})
    block_size: int = field(default=64, metadata={"help": "Tokens per training sequence."})
    eval_blocks: int = field(default=200, metadata={"help": "Held-out PTB blocks for perplexity."})
    probe_sentences: int = field(default=300, metadata={"help": "Held-out PTB sentences profiled by TX-Ray."})
    threads: int = field(default=1, metadata={"help": "torch CPU threads. The model's matrices are small: one thread "
                                                      "is as fast, and far faster on a shared, busy machine."})


def train_tokenizer(lines: list[str], vocab_size: int):
    """A GPT-2-style byte-level BPE tokenizer trained on PTB; PTB's ``<unk>`` is a special token (never credited)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=["<unk>"])


def lm_blocks(sentences, tokenizer, block_size: int):
    """Concatenate the sentences (each ending with the end-of-text token) and cut fixed-length blocks."""
    def group(batch):
        ids = [t for sentence in tokenizer(batch["text"])["input_ids"] for t in sentence + [tokenizer.eos_token_id]]
        usable = len(ids) // block_size * block_size
        return {"input_ids": [ids[i:i + block_size] for i in range(0, usable, block_size)]}

    return sentences.map(group, batched=True, batch_size=2000, remove_columns=sentences.column_names)


def convergence_table(trainer) -> pd.DataFrame:
    """Per snapshot: perplexity, and how far token/POS preferences (and POS mass shares) are from the final ones."""
    profiles = trainer.txray_profiles
    final = profiles[list(profiles)[-1]]
    timeline = trainer.txray_timeline.set_index("step")
    evals = {e["step"]: e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e}
    shares = [c for c in timeline.columns if c.startswith("mass_share_pos/")]
    rows = []
    for stage, profile in profiles.items():
        step = int(stage.split("-")[1])
        summary = compare(profile, final).summary() if profile is not final else {}
        rows.append({
            "step": step, "perplexity": math.exp(evals[step]) if step in evals else np.nan,
            "eval_loss": evals.get(step, np.nan),
            "H_pos_to_final": summary.get("mean_hellinger_pos", 0.0),
            "H_token_to_final": summary.get("mean_hellinger_token", 0.0),
            "pos_share_TV_to_final": 0.5 * float(np.abs(timeline.loc[step, shares].fillna(0).to_numpy(float)
                                                        - timeline.iloc[-1][shares].fillna(0).to_numpy(float)).sum()),
            "H_pos_vs_previous": timeline.loc[step].get("vs_previous/mean_hellinger_pos", np.nan),
            "active_share": timeline.loc[step, "active_share"],
        })
    return pd.DataFrame(rows)


def first_step_within(table: pd.DataFrame, column: str, fraction: float = 0.1) -> int | None:
    """First step at which `column` has closed (1 - fraction) of its gap from step 0 to the final value."""
    values = table[column].to_numpy(float)
    gap = values[0] - values[-1]
    if not np.isfinite(gap) or gap <= 0:
        return None
    within = np.flatnonzero(values - values[-1] <= fraction * gap)
    return int(table["step"].iloc[within[0]])


def verdict(steps: dict[str, int | None]) -> str:
    """One sentence on what this run shows about the paper's "POS is learned early" observation."""
    pos, loss = steps.get("H_pos_to_final"), steps.get("eval_loss")
    if pos is None or loss is None:
        return "Not enough snapshots to compare convergence."
    order = "before" if pos < loss else "after" if pos > loss else "at the same step as"
    return (f"In this run the POS preferences reached 90% of their final state at step {pos}, {order} the eval loss "
            f"(step {loss}). Distances to the final snapshot shrink to 0 at the end by construction: compare the "
            "curves' shapes in the figure, not only their end.")


def plot(table: pd.DataFrame, path: Path) -> None:
    from hf_txray.plots import new_figure, save_figure

    figure, axes = new_figure(1, 2, width=5.5, height=4.0)
    left, right = axes[0]
    left.plot(table["step"], table["perplexity"], marker="o", ms=3, color="black")
    left.set(yscale="log", xlabel="step", ylabel="perplexity (held-out PTB)", title="Perplexity")
    normalised = lambda c: (table[c] - table[c].iloc[-1]) / (table[c].iloc[0] - table[c].iloc[-1])  # noqa: E731
    for column, label in [("eval_loss", "eval loss gap"), ("H_pos_to_final", "POS preferences: H to final"),
                          ("H_token_to_final", "token preferences: H to final"),
                          ("pos_share_TV_to_final", "POS mass share: TV to final")]:
        right.plot(table["step"], normalised(column), marker="o", ms=3, label=label)
    right.set(xlabel="step", ylabel="remaining gap (step 0 = 1, final = 0)", title="Convergence to the final model")
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    save_figure(figure, path)


def main() -> None:
    parser = HfArgumentParser((ExampleArguments, TXRayArguments))
    parser.set_defaults(output_dir="results/pretrain_from_scratch", max_steps=600, per_device_train_batch_size=16,
                        per_device_eval_batch_size=50, learning_rate=2e-3, warmup_steps=30,
                        lr_scheduler_type="cosine", weight_decay=0.01, use_cpu=True, report_to="none",
                        eval_strategy="steps", eval_steps=25, eval_on_start=True, logging_steps=25,
                        save_strategy="no", txray_strategy="steps", txray_steps=25, txray_max_samples=None,
                        txray_features=["token", "pos"], disable_tqdm=True, seed=0)
    example, args = parser.parse_args_into_dataclasses()
    torch.set_num_threads(example.threads)
    started = time.perf_counter()
    train_text, valid_text = corpora.penn_treebank("train"), corpora.penn_treebank("valid")
    tokenizer = train_tokenizer(train_text["text"], example.vocab_size)
    # Probe sentences that fit the model's context, so none is truncated (the model never saw longer inputs).
    probe = valid_text.select(range(example.probe_sentences)).filter(
        lambda row: len(tokenizer(row["text"])["input_ids"]) <= example.block_size)
    held_out = lm_blocks(valid_text.select(range(example.probe_sentences, len(valid_text))), tokenizer,
                         example.block_size)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=example.block_size, n_embd=128, n_layer=4, n_head=4,
                        n_inner=512, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    trainer = TXRayTrainer(model=GPT2LMHeadModel(config), args=args,
                           train_dataset=lm_blocks(train_text, tokenizer, example.block_size),
                           eval_dataset=held_out.select(range(min(example.eval_blocks, len(held_out)))),
                           data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                           processing_class=tokenizer, txray_dataset=probe)
    print(f"GPT-2 with {trainer.model.num_parameters():,} parameters; {len(trainer.train_dataset):,} training blocks "
          f"of {example.block_size} tokens; TX-Ray probe: {len(probe)} held-out sentences")
    trainer.train()

    table = convergence_table(trainer)
    pd.set_option("display.width", 160)
    print("\n" + table.round(4).to_string(index=False))
    steps = {c: first_step_within(table, c) for c in ("eval_loss", "H_pos_to_final", "H_token_to_final",
                                                       "pos_share_TV_to_final")}
    print("\nFirst step that closed 90% of the gap between step 0 and the final model:")
    for column, step in steps.items():
        print(f"  {column:<24} {step}")
    print(verdict(steps))
    plot(table, Path(args.output_dir) / "pos_vs_perplexity.png")
    print(f"\nTX-Ray time: {trainer.txray_callback.overhead_seconds:.0f}s; "
          f"total: {time.perf_counter() - started:.0f}s; figure {args.output_dir}/pos_vs_perplexity.png, "
          f"TX-Ray outputs in {args.output_dir}/txray/")


if __name__ == "__main__":
    main()
