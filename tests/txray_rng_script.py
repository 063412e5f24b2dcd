"""A fresh interpreter (spaCy not yet imported) trains a tiny classifier with a data collator drawing from Python's
`random`, twice with the same seed: with the plain Trainer, then with TXRayTrainer taking POS snapshots. Prints the
two loss curves and the three global generators' next draws after training, as JSON."""

import json
import os
import random
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments  # noqa: E402

from test_trainer import TEXTS, build_classifier, build_data  # noqa: E402
from models import bert_tokenizer  # noqa: E402

from hf_txray import TXRayArguments, TXRayTrainer  # noqa: E402

assert "spacy" not in sys.modules
tokenizer = bert_tokenizer()
pad = DataCollatorWithPadding(tokenizer)


def word_dropout(features):  # drops each inner token with p=0.2, with Python's random (a common augmentation)
    rows = []
    for f in features:
        ids = [t for i, t in enumerate(f["input_ids"]) if i in (0, len(f["input_ids"]) - 1) or random.random() > 0.2]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "label": f["label"]})
    return pad(rows)


def run(trainer_class, args_class, **txray):
    args = args_class(output_dir=os.path.join(sys.argv[1], trainer_class.__name__), per_device_train_batch_size=4,
                      max_steps=6, learning_rate=1e-3, report_to="none", use_cpu=True, disable_tqdm=True,
                      logging_steps=1, save_strategy="no", seed=0, remove_unused_columns=False, **txray)
    extra = {"txray_dataset": TEXTS} if txray else {}
    trainer = trainer_class(model=build_classifier(), args=args, train_dataset=build_data(with_text=False),
                            data_collator=word_dropout, processing_class=tokenizer, **extra)
    trainer.train()
    losses = [round(log["loss"], 8) for log in trainer.state.log_history if "loss" in log]
    return {"losses": losses, "next": [random.random(), float(np.random.rand()), float(torch.rand(1))]}


plain = run(Trainer, TrainingArguments)
txray = run(TXRayTrainer, TXRayArguments, txray_steps=2, txray_features=["token", "pos"])
print(json.dumps({"plain": plain, "txray": txray, "spacy_loaded": "spacy" in sys.modules}))
