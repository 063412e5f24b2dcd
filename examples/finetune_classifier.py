"""Fine-tune the embedded MiniLM on BBC News topic classification with TXRayTrainer (CPU, a few minutes).

The probe corpus is the held-out BBC split (the eval_dataset's ``text`` column), so ``step-0`` is the pretrained
model profiled zero-shot on the new domain and the last stage is the fine-tuned model on the same texts. Prints
accuracy and the transfer report pretrained -> fine-tuned; everything else lands in ``<output_dir>/txray/``.

    python examples/finetune_classifier.py                       # defaults below
    python examples/finetune_classifier.py --train_samples 800 --txray_steps 20 --output_dir out/bbc

Every TrainingArguments / TXRayArguments flag works (``--help`` lists them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, HfArgumentParser  # noqa: E402

from hf_txray import TXRayArguments, TXRayTrainer, corpora  # noqa: E402


@dataclass
class ExampleArguments:
    train_samples: int = field(default=400, metadata={"help": "BBC articles to fine-tune on."})
    eval_samples: int = field(default=160, metadata={"help": "Held-out BBC articles: accuracy and TX-Ray probe."})
    max_length: int = field(default=128, metadata={"help": "Tokens per article (longer ones are truncated)."})


def load_data(example: ExampleArguments, tokenizer):
    """Shuffled BBC News, split into train / held-out, tokenized; the held-out split keeps its text column."""
    data = corpora.bbc_news(num_samples=example.train_samples + example.eval_samples, seed=0)
    split = data.train_test_split(test_size=example.eval_samples, seed=0, stratify_by_column="label")
    tokenize = lambda batch: tokenizer(batch["text"], truncation=True, max_length=example.max_length)  # noqa: E731
    train = split["train"].map(tokenize, batched=True, remove_columns=["text"])
    held_out = split["test"].map(tokenize, batched=True)  # keeps "text": the Trainer drops it, TX-Ray reads it
    return train, held_out, data.features["label"].names


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def print_report(report, num: int = 5) -> None:
    print(f"\n{report}")
    columns = ["layer", "share_lost", "share_gained", "mean_hellinger_token", "mean_hellinger_pos",
               "mean_length_shift_pos"]
    print("\nPer layer (shared neurons):\n" + report.layers[columns].round(3).to_string(index=False))
    pos = report.mass_share[report.mass_share["feature_type"] == "pos"].head(8)
    print("\nPOS mass share, pretrained -> fine-tuned, vs corpus frequency:\n"
          + pos[["feature", "mass_share_a", "mass_share_b", "corpus_frequency_a"]].round(3).to_string(index=False))
    # Neurons credited a handful of times have noisy distributions: rank only well-observed ones.
    neurons = report.neurons
    observed = neurons[(neurons["count_a"] >= 10) & (neurons["count_b"] >= 10)]
    changed = observed.sort_values("hellinger_pos", ascending=False).head(num)
    print(f"\n{num} neurons (credited >= 10 times in both stages) whose POS preferences changed most:\n"
          + changed[["layer", "neuron", "count_a", "count_b", "hellinger_pos", "length_a_pos", "length_b_pos"]]
          .round(3).to_string(index=False))


def main() -> None:
    parser = HfArgumentParser((ExampleArguments, TXRayArguments))
    parser.set_defaults(output_dir="results/finetune_classifier", num_train_epochs=1, learning_rate=5e-5,
                        per_device_train_batch_size=16, per_device_eval_batch_size=32, use_cpu=True,
                        report_to="none", logging_steps=5, save_strategy="no", eval_strategy="no",
                        txray_strategy="steps", txray_steps=13, txray_max_samples=96, txray_max_length=128,
                        txray_features=["token", "pos"], disable_tqdm=True, seed=0)
    example, args = parser.parse_args_into_dataclasses()
    started = time.perf_counter()
    path = corpora.default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train, held_out, topics = load_data(example, tokenizer)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(topics), id2label=dict(enumerate(topics)), label2id={t: i for i, t in enumerate(topics)})
    trainer = TXRayTrainer(model=model, args=args, train_dataset=train, eval_dataset=held_out,
                           processing_class=tokenizer, compute_metrics=accuracy)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model()
    trainer.create_model_card(model_name="minilm-bbc-topics", finetuned_from=corpora.DEFAULT_MODEL_ID)

    stages = list(trainer.txray_profiles)
    print(f"\nTX-Ray profiles: {', '.join(stages)} ({len(trainer.txray_callback.corpus)} held-out BBC texts as probe)")
    print_report(trainer.txray_reports[f"{stages[0]}->{stages[-1]}"])
    print(f"\nHeld-out accuracy after fine-tuning on {len(train)} articles: {metrics['eval_accuracy']:.3f}")
    print(f"TX-Ray time: {trainer.txray_callback.overhead_seconds:.0f}s; total: {time.perf_counter() - started:.0f}s; "
          f"outputs in {args.output_dir}/txray/ and the model card {args.output_dir}/README.md")


if __name__ == "__main__":
    main()
