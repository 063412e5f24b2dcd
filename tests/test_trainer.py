"""TXRayTrainer / TXRayCallback / TXRayArguments on tiny real BERT classifiers, a few CPU training steps each."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import hf_txray
from hf_txray import ConfigurationError, DatasetError, Profile, Profiler, TransferReport
from hf_txray.trainer import TXRayArguments, TXRayCallback, TXRayTrainer

try:
    from .models import SAMPLE_TEXTS, bert_tokenizer, torchrun
    from .reference import profile_table, reference_profile
except ImportError:
    from models import SAMPLE_TEXTS, bert_tokenizer, torchrun
    from reference import profile_table, reference_profile
from hub_fixtures import hub, hub_server  # noqa: F401,E402

TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]  # 6 texts
NUM_TRAIN = 24  # 6 steps per epoch at batch size 4


def build_classifier(seed: int = 0, dropout: float = 0.1):
    """A 2-layer BERT classifier (intermediate size 48) from a config, randomly initialised with `seed`."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=128, num_labels=2,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config)


def build_data(with_text: bool = True):
    """24 labelled texts, tokenized to a fixed length (so batches of 2 and 4 give the same per-example maths)."""
    import datasets

    texts = [TEXTS[i % len(TEXTS)] for i in range(NUM_TRAIN)]
    data = datasets.Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(NUM_TRAIN)]})
    data = data.map(lambda b: bert_tokenizer()(b["text"], padding="max_length", truncation=True, max_length=24),
                    batched=True)
    return data if with_text else data.remove_columns(["text"])


def build_args(output_dir, **overrides) -> TXRayArguments:
    options = dict(output_dir=str(output_dir), per_device_train_batch_size=4, num_train_epochs=2, learning_rate=1e-3,
                   report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1, save_strategy="no", seed=0,
                   txray_steps=5, txray_features=["token"], train_sampling_strategy="sequential")
    options.update(overrides)
    return TXRayArguments(**options)


class LogRecorder:
    """A TrainerCallback recording every `on_log` payload (what report_to integrations receive)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Recorder(TrainerCallback):
            def __init__(self):
                self.logs = []

            def on_log(self, args, state, control, logs=None, **kwargs):
                self.logs.append({**logs, "step": state.global_step})

        return _Recorder()


def txray_logs(logs: list[dict]) -> list[dict]:
    return [{k: v for k, v in log.items() if k.startswith("txray/") or k == "step"} for log in logs
            if any(k.startswith("txray/") for k in log)]


def assert_same_profile(a: Profile, b: Profile, exact: bool = True) -> None:
    assert a.stage == b.stage and a.layers == b.layers
    np.testing.assert_array_equal(a.neuron_count, b.neuron_count)
    if exact:
        np.testing.assert_array_equal(a.neuron_mass, b.neuron_mass)
    else:
        np.testing.assert_allclose(a.neuron_mass, b.neuron_mass, rtol=1e-5, atol=1e-6)
    for ft in a.feature_types:
        assert a.tables[ft].vocab == b.tables[ft].vocab
        np.testing.assert_array_equal(a.tables[ft].count, b.tables[ft].count)


def train(tmp_path, name="run", data=None, dropout=0.1, **overrides):
    recorder = LogRecorder()
    data = data if data is not None else build_data()
    trainer = TXRayTrainer(model=build_classifier(dropout=dropout), args=build_args(tmp_path / name, **overrides),
                           train_dataset=data, eval_dataset=data, processing_class=bert_tokenizer(),
                           callbacks=[recorder])
    trainer.train()
    return trainer, recorder


# ----- snapshots, reports, logs, files ----------------------------------------------------------------------------
def test_step_strategy_snapshots_reports_logs_and_files(tmp_path, capsys, monkeypatch):
    trainer, recorder = train(tmp_path, txray_features=["token", "pos"], save_strategy="steps", save_steps=6)
    stages = ["step-0", "step-5", "step-10", "step-12"]  # 12 steps: every 5, plus train begin and train end
    assert list(trainer.txray_profiles) == stages
    assert list(trainer.txray_reports) == ["step-0->step-5", "step-0->step-10", "step-5->step-10",
                                           "step-0->step-12", "step-10->step-12"]
    report = trainer.txray_reports["step-0->step-12"]
    assert report.meta.stage_a == "step-0" and report.meta.stage_b == "step-12"
    assert report.summary()["mean_hellinger_pos"] > 0  # lr 1e-3 moves the preferences

    logged = txray_logs(recorder.logs)
    assert [log["step"] for log in logged] == [5, 10, 12]
    for log in logged:
        for key in ("share_lost", "share_gained", "mean_hellinger_pos", "mean_length_shift_pos",
                    "layer_0/mean_hellinger_token", "layer_1/mean_hellinger_pos"):
            assert f"txray/vs_first/{key}" in log and f"txray/vs_previous/{key}" in log
    assert logged[0]["txray/vs_first/mean_hellinger_pos"] == logged[0]["txray/vs_previous/mean_hellinger_pos"]
    assert logged[-1]["txray/vs_first/layer_0/mean_hellinger_pos"] == pytest.approx(
        report.layers.set_index("layer").loc[0, "mean_hellinger_pos"])
    assert txray_logs(trainer.state.log_history) == logged  # the full set is kept for the integrations and files
    # The Trainer's own log (logging_steps=1) is kept at every step, snapshot steps included.
    assert [log["step"] for log in recorder.logs if "loss" in log] == list(range(1, 13))
    # The console (PrinterCallback here, ProgressCallback with tqdm) gets a short headline per snapshot, not ~40 keys.
    console = [line for line in capsys.readouterr().out.splitlines() if "txray/" in line]
    assert len(console) == 3 and all(len(line) < 300 for line in console), console
    assert "'txray/mean_hellinger_pos'" in console[-1] and "'txray/share_lost'" in console[-1]
    assert "layer_" not in console[-1] and "vs_previous" not in console[-1]

    root = tmp_path / "run" / "txray"
    for stage in stages:
        saved = Profile.from_pretrained(root / "profiles" / stage)
        assert saved == trainer.txray_profiles[stage]
    assert TransferReport.from_pretrained(root / "reports" / "step-0__step-12") == report
    timeline = pd.read_csv(root / "timeline.csv")
    assert timeline["stage"].tolist() == stages and timeline["step"].tolist() == [0, 5, 10, 12]
    assert timeline.loc[3, "vs_previous/stage"] == "step-10"
    assert {"mass_share_pos/NOUN", "vs_first/layer_1/mean_hellinger_token"} <= set(timeline.columns)
    assert pd.read_parquet(root / "timeline.parquet")["step"].tolist() == [0, 5, 10, 12]
    for plot in ("hellinger_by_layer.png", "mass_share_pos.png"):
        assert (root / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # helper 167: ticks at whole steps only (2.5 and 3.5 appeared between few snapshots)
    import hf_txray.trainer.plots as trainer_plots

    figures = []
    monkeypatch.setattr(trainer_plots, "save_figure", lambda figure, path, **_: figures.append(figure) or path)
    few = timeline.iloc[2:].assign(step=[2, 3])
    trainer_plots.write_plots(few, trainer.txray_profiles["step-12"], tmp_path / "few")
    ticks = [tick for figure in figures for ax in figure.axes if ax.get_xlabel() == "step" for tick in ax.get_xticks()]
    assert ticks and all(float(tick).is_integer() for tick in ticks)

    trainer.create_model_card()
    card = (tmp_path / "run" / "README.md").read_text()
    assert "## TX-Ray" in card and "| step-5 |" in card and "txray/plots/hellinger_by_layer.png" in card
    assert "| **step-12** (this model) |" in card  # the last snapshot is of the trained weights (helper 242)


def test_a_user_features_timeline_plot_stays_in_txray_plots_and_the_card_links_it(tmp_path):
    """Helper 308: the mass-share timeline was written to ``txray/plots/mass_share_<name>.png`` with the user feature's
    name as it was: "x/../../../../escaped" wrote escaped.png beside output_dir (outside it, so the Trainer's push never
    sent it), and "polarity/sign" made a subfolder mass_share_polarity/. The name is made file-safe (plots.slug), and
    the model card links the file written."""
    from hf_txray import UserFeature, register_feature
    from hf_txray.features import unregister_feature

    def first_word(text):
        word = text.split(" ")[0]
        return [(0, len(word), "cap" if word[:1].isupper() else "low")]

    name = "x/../../../../escaped"
    register_feature(UserFeature(name, first_word))
    try:
        out = tmp_path / "a" / "b" / "run"
        trainer = TXRayTrainer(model=build_classifier(), args=build_args(out, max_steps=3, txray_steps=3,
                                                                         txray_features=["token", name]),
                               train_dataset=build_data(), processing_class=bert_tokenizer(), txray_dataset=TEXTS)
        trainer.train()
        trainer.create_model_card()
    finally:
        unregister_feature(name)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    plots = [p for p in (out / "txray" / "plots").iterdir()]
    assert all(p.is_file() for p in plots), plots  # no subfolder
    assert len(written) == len(plots) == 2, written  # hellinger_by_layer.png and the mass share, nothing elsewhere
    links = re.findall(r"\]\((txray/plots/mass_share_[^)]*)\)", (out / "README.md").read_text())
    assert len(links) == 1 and (out / unquote(links[0])).is_file(), links


def test_model_card_table_shows_the_first_tag_in_reading_order():
    """Helper 208: the card's table took "pos" if profiled, else the first feature: a run with features
    ("token", "ner") was headed by token Hellinger, while every other table and figure shows ner first."""
    from types import SimpleNamespace

    from hf_txray.trainer import model_card_section

    timeline = pd.DataFrame({"stage": ["step-0", "step-5"], "epoch": [0.0, 1.0], "active_share": [0.5, 0.5],
                             "vs_first/mean_hellinger_token": [0.0, 0.7], "vs_first/mean_hellinger_ner": [0.0, 0.2],
                             "vs_first/mean_length_shift_token": [0.0, 1.0],
                             "vs_first/mean_length_shift_ner": [0.0, -1.0],
                             "vs_first/share_lost": [0.0, 0.1], "vs_first/share_gained": [0.0, 0.1]})
    callback = SimpleNamespace(timeline_frame=lambda: timeline, _profiler=None, corpus=["a", "b"],
                               config=SimpleNamespace(features=("token", "ner"), site="mlp", top_k=1))
    card = model_card_section(callback)
    assert "| mean Hellinger (ner) | lost | gained | mean length shift (ner) |" in card
    # Helper 359: the share of credited neurons (active_share) was headed "active neurons", the only place it was
    assert "| stage | epoch | credited neurons | mean Hellinger (ner) |" in card and "active" not in card
    assert "| step-5 | 1.00 | 50.0% | 0.200 | 10.0% | 10.0% | -1.00 |" in card


def test_epoch_strategy_with_eval_dataset_as_probe(tmp_path):
    trainer, _ = train(tmp_path, txray_strategy="epoch", num_train_epochs=2)
    assert list(trainer.txray_profiles) == ["step-0", "step-6", "step-12"]
    assert trainer.txray_timeline["epoch"].tolist() == [0.0, 1.0, 2.0]
    profile = trainer.txray_profiles["step-6"]
    assert profile.meta.dataset_id == "eval_dataset" and profile.meta.num_examples == NUM_TRAIN


def test_a_dict_of_eval_datasets_names_the_one_profiled(tmp_path):
    """Fresh helper 292: with eval_dataset={"scores": ..., "dev": ...} the probe is the first one with a text column,
    but its profiles (and the card's corpus) named it "eval_dataset", which any of them could be."""
    data = build_data()
    trainer = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path, max_steps=1),
                           train_dataset=data, processing_class=bert_tokenizer(),
                           eval_dataset={"scores": build_data(with_text=False), "dev": data.select(range(6))})
    assert trainer.txray_callback.dataset_id == "eval_dataset['dev']"
    assert trainer.txray_callback.corpus.num_rows == 6


def test_no_strategy_is_a_plain_trainer(tmp_path):
    trainer, recorder = train(tmp_path, txray_strategy="no", data=build_data(with_text=False))
    assert trainer.txray_profiles == {} and txray_logs(recorder.logs) == []
    assert not (tmp_path / "run" / "txray").exists()


def test_snapshots_show_a_nested_bar_unless_disable_tqdm(tmp_path, capsys, monkeypatch):
    """Helper 422: snapshots ran with show_progress=False, so a snapshot of a large probe corpus printed nothing for
    minutes. Now a bar as the Trainer's evaluation bar: named after the snapshot, cleared when done (leave=False),
    absent with disable_tqdm=True; the profiles are the same either way."""
    import tqdm.auto

    bars = []  # (description, leave, disabled) of each bar hf_txray.logging.tqdm made

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append((kwargs.get("desc"), kwargs.get("leave", True), self.disable))

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    shown, _ = train(tmp_path, name="shown", disable_tqdm=False, num_train_epochs=1)
    err = capsys.readouterr().err
    profiling = [bar for bar in bars if bar[0] and bar[0].startswith("hf_txray profiling")]
    assert [bar[0] for bar in profiling] == ["hf_txray profiling step-0", "hf_txray profiling step-5",
                                             "hf_txray profiling step-6"]
    assert all(leave is False and not disabled for _, leave, disabled in profiling), profiling
    assert "hf_txray profiling step-5" in err
    expected = reference_profile(shown.model, bert_tokenizer(), build_data()["text"], feature_types=("token",))
    assert profile_table(shown.txray_profiles["step-6"], "token")[1] == dict(expected.count["token"])

    bars.clear()
    hidden, _ = train(tmp_path, name="hidden", disable_tqdm=True, num_train_epochs=1)
    assert "hf_txray profiling" not in capsys.readouterr().err
    assert all(disabled for desc, _, disabled in bars if desc and desc.startswith("hf_txray")), bars
    assert list(hidden.txray_profiles) == list(shown.txray_profiles)
    for stage in shown.txray_profiles:
        assert_same_profile(hidden.txray_profiles[stage], shown.txray_profiles[stage])


# ----- correctness under training features ------------------------------------------------------------------------
def test_same_profiles_with_and_without_gradient_checkpointing(tmp_path):
    # transformers 5.24 names it activation_checkpointing (gradient_checkpointing is the deprecated alias)
    plain, _ = train(tmp_path, "plain", txray_steps=4, max_steps=8)
    checkpointed, _ = train(tmp_path, "gc", txray_steps=4, max_steps=8, activation_checkpointing=True)
    assert checkpointed.model.is_activation_checkpointing
    assert list(plain.txray_profiles) == list(checkpointed.txray_profiles) == ["step-0", "step-4", "step-8"]
    for stage, profile in plain.txray_profiles.items():
        assert_same_profile(profile, checkpointed.txray_profiles[stage], exact=False)
    # the recomputed forward inside backward must never be counted: same number of credited positions
    assert [p.meta.num_positions for p in plain.txray_profiles.values()] == \
           [p.meta.num_positions for p in checkpointed.txray_profiles.values()]


def test_same_profiles_under_torch_compile(tmp_path):
    """With torch_compile the Trainer wraps the model in an OptimizedModule; snapshots profile the same modules
    (the eager backend keeps the test free of a C compiler run, the wrapping and unwrapping are the same)."""
    plain, _ = train(tmp_path, "plain", txray_steps=4, max_steps=8)
    compiled, _ = train(tmp_path, "compiled", txray_steps=4, max_steps=8, torch_compile=True,
                        torch_compile_backend="eager")
    assert hasattr(compiled.model_wrapped, "_orig_mod") or hasattr(compiled.model, "_orig_mod")
    assert list(plain.txray_profiles) == list(compiled.txray_profiles) == ["step-0", "step-4", "step-8"]
    for stage, profile in plain.txray_profiles.items():
        assert_same_profile(profile, compiled.txray_profiles[stage], exact=False)


def test_an_early_stop_added_after_construction_is_profiled_into_its_checkpoint_and_kept_on_resume(tmp_path):
    """Helper 271: EarlyStoppingCallback given with trainer.add_callback ran after TX-Ray's callback, so the stop's
    step was profiled only after its checkpoint was saved: checkpoint-2 recorded step-0 and step-1 only, and a run
    resumed from it to train on removed step-2 (the stopped run's last model) as "taken after the checkpoint"."""
    from transformers import EarlyStoppingCallback

    def trainer(patience: int, scores: list[float]) -> TXRayTrainer:
        args = build_args(tmp_path, max_steps=4, txray_steps=100, eval_strategy="steps", eval_steps=1,
                          save_strategy="steps", save_steps=1, metric_for_best_model="score")
        built = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                             eval_dataset=build_data(), processing_class=bert_tokenizer(), txray_dataset=TEXTS,
                             compute_metrics=lambda p, s=iter(scores): {"score": next(s, 0.0)})
        built.add_callback(EarlyStoppingCallback(early_stopping_patience=patience))
        return built

    stopped = trainer(1, [1.0, 0.0])
    stopped.train()
    assert stopped.state.global_step == 2 and list(stopped.txray_profiles) == ["step-0", "step-2"]
    saved = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert [row["stage"] for row in saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"]] == [
        "step-0", "step-2"]
    resumed = trainer(10, [0.0] * 4)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert list(resumed.txray_profiles) == ["step-0", "step-2", "step-4"]
    assert_same_profile(resumed.txray_profiles["step-2"], stopped.txray_profiles["step-2"])
    assert resumed.callback_handler.callbacks[-1] is resumed.txray_callback  # kept last


def test_an_early_stop_listed_after_the_txray_callback_keeps_its_snapshot_on_resume(tmp_path):
    """Helper 375: with callbacks=[TXRayCallback(...), EarlyStoppingCallback(...)] on a plain Trainer the stop, set at
    the evaluation after TX-Ray's on_evaluate, is profiled at on_save, after checkpoint-2 recorded the timeline
    [step-0]: a run resumed from it removed step-2 (the stopped run's last model) as taken after the checkpoint, and
    its timeline was [step-0, step-4] against [step-0, step-2, step-4] with the callbacks the other way round. The
    resume takes that snapshot again, as it does an iterable epoch's end seen after its checkpoint; given trainer=,
    the callback moves itself last at train begin, and checkpoint-2 records the snapshot."""
    from transformers import EarlyStoppingCallback, Trainer

    def trainer(patience: int, scores: list[float], out=tmp_path, given=False) -> tuple[Trainer, TXRayCallback]:
        args = build_args(out, max_steps=4, eval_strategy="steps", eval_steps=1, save_strategy="steps",
                          save_steps=1, metric_for_best_model="score")
        callback = TXRayCallback(TEXTS, steps=100, features=("token",))
        built = Trainer(model=build_classifier(), args=args, train_dataset=build_data(), eval_dataset=build_data(),
                        processing_class=bert_tokenizer(), compute_metrics=lambda p, s=iter(scores): {
                            "score": next(s, 0.0)},
                        callbacks=[callback, EarlyStoppingCallback(early_stopping_patience=patience)])
        callback.trainer = built if given else None
        return built, callback

    def recorded(out):  # the stages checkpoint-2 records
        saved = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
        return [row["stage"] for row in saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"]]

    stopped, first = trainer(1, [1.0, 0.0])
    stopped.train()
    assert stopped.state.global_step == 2 and list(first.profiles) == ["step-0", "step-2"]
    assert recorded(tmp_path) == ["step-0"]  # profiled after the save
    # with trainer= the callback moves itself last at train begin: the checkpoint records the stop's snapshot
    given, third = trainer(1, [1.0, 0.0], tmp_path / "given", given=True)
    given.train()
    assert recorded(tmp_path / "given") == ["step-0", "step-2"]
    assert_same_profile(third.profiles["step-2"], first.profiles["step-2"])
    resumed, second = trainer(10, [0.0] * 4)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert list(second.profiles) == ["step-0", "step-2", "step-4"]
    assert sorted(p.name for p in (tmp_path / "txray" / "profiles").iterdir()) == ["step-0", "step-2", "step-4"]
    assert_same_profile(second.profiles["step-2"], first.profiles["step-2"])
    saved = build_classifier()
    saved.load_state_dict(load_file(tmp_path / "checkpoint-2" / "model.safetensors"), strict=False)
    expected = reference_profile(saved, bert_tokenizer(), TEXTS, feature_types=("token",))
    assert profile_table(second.profiles["step-2"], "token")[1] == dict(expected.count["token"])


def test_training_stopped_early_gets_a_final_profile_at_train_end(tmp_path):
    from transformers import TrainerCallback

    class StopAfterThree(TrainerCallback):  # stops from on_log, i.e. after TX-Ray's on_step_end (like early stopping)
        def on_log(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 3

    trainer = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path), train_dataset=build_data(),
                           eval_dataset=build_data(), processing_class=bert_tokenizer(), callbacks=[StopAfterThree()])
    trainer.train()
    assert trainer.state.global_step == 3
    assert list(trainer.txray_profiles) == ["step-0", "step-3"]


def test_early_stopping_with_the_best_model_loaded_profiles_the_last_steps_weights(tmp_path):
    """Helper 135: with load_best_model_at_end, the Trainer loads the best checkpoint before on_train_end, and the
    final snapshot, named after the last step, profiled the best checkpoint's weights (56% of the credits moved)."""
    from transformers import BertForSequenceClassification, EarlyStoppingCallback, Trainer

    args = build_args(tmp_path, eval_strategy="steps", eval_steps=1, save_strategy="steps", save_steps=1,
                      load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=True,
                      max_steps=10, txray_steps=100)
    stop = EarlyStoppingCallback(early_stopping_patience=1)  # the loss falls, "worse" here: stops at step 2
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(), eval_dataset=build_data(),
                           processing_class=bert_tokenizer(), callbacks=[stop])
    trainer.train()
    assert trainer.state.global_step == 2 and trainer.state.best_model_checkpoint.endswith("checkpoint-1")
    assert list(trainer.txray_profiles) == ["step-0", "step-2"]
    callback = trainer.txray_callback
    last = BertForSequenceClassification.from_pretrained(tmp_path / "checkpoint-2").eval()
    offline = Profiler(last, bert_tokenizer(), callback.config).run(
        callback.corpus, text_column=callback.text_column, stage="step-2", show_progress=False)
    assert_same_profile(offline, trainer.txray_profiles["step-2"], exact=False)
    best = BertForSequenceClassification.from_pretrained(tmp_path / "checkpoint-1").eval()
    wrong = Profiler(best, bert_tokenizer(), callback.config).run(
        callback.corpus, text_column=callback.text_column, stage="step-2", show_progress=False)
    assert not np.array_equal(wrong.neuron_count, offline.neuron_count)  # the case tells the two apart
    # helper 137: an evaluate() after train() (should_training_stop still set) took a snapshot of the loaded best
    # weights
    trainer.evaluate()
    assert list(trainer.txray_profiles) == ["step-0", "step-2"]
    args = build_args(tmp_path / "late", eval_strategy="steps", eval_steps=1, save_strategy="best",
                      load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=True,
                      max_steps=10, txray_steps=100)
    late = Trainer(model=build_classifier(), args=args, train_dataset=build_data(), eval_dataset=build_data(),
                   processing_class=bert_tokenizer())
    callback = TXRayCallback(TEXTS * 4, trainer=late, steps=100, features=("token",))  # the probe TXRayTrainer read
    late.add_callback(callback)
    late.add_callback(EarlyStoppingCallback(early_stopping_patience=1))  # after ours: it runs after our on_evaluate
    late.train()  # no save at step 2 (not the best), the stop set after our on_evaluate
    # helper 271: that step got no snapshot (a warning at train end only, the best weights loaded by then); the end of
    # the stopped epoch, before the best checkpoint is loaded, takes it, of the last step's weights
    assert late.state.global_step == 2 and late.state.best_model_checkpoint.endswith("checkpoint-1")
    assert list(callback.profiles) == ["step-0", "step-2"]
    assert_same_profile(callback.profiles["step-2"], trainer.txray_profiles["step-2"], exact=False)
    assert callback.stage_of_weights(late.model) is None  # the best (step 1) weights: not profiled
    late.evaluate()
    assert list(callback.profiles) == ["step-0", "step-2"]


def _trained_best_at_step_2(tmp_path, caplog, every: float) -> tuple[TXRayTrainer, list[str]]:
    """A classifier trained 4 steps, evaluated and saved `every` steps (or that share of them), with snapshots every 3
    steps and load_best_model_at_end, whose best checkpoint is step 2; with the load_best_model_at_end warnings."""
    scores = iter([1.0, 0.0])  # step 2 is the best checkpoint
    args = build_args(tmp_path, max_steps=4, txray_steps=3, eval_strategy="steps", eval_steps=every,
                      save_strategy="steps", save_steps=every, load_best_model_at_end=True, metric_for_best_model="score")
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(), eval_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=TEXTS,
                           compute_metrics=lambda p: {"score": next(scores, 0.0)})
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        trainer.train()
    return trainer, [r.getMessage() for r in caplog.records if "load_best_model_at_end" in r.getMessage()]


def test_snapshots_that_miss_the_checkpoints_load_best_model_at_end_may_load_are_warned_before_training(tmp_path,
                                                                                                    caplog):
    """Helper 259: with load_best_model_at_end, txray_steps=3 beside save_steps=2 left the best checkpoint (step 2)
    without a snapshot: the trained model matched none, which only the model card said, after training. Said before
    the first step now, with the fix; aligned snapshots (or TX-Ray's own epochs beside epoch checkpoints) say nothing."""
    from hf_txray.trainer.arguments import best_checkpoint_gap

    trainer, warned = _trained_best_at_step_2(tmp_path, caplog, every=2)
    assert warned == ["TX-Ray: load_best_model_at_end loads the best checkpoint's weights at the end of training, but "
                      "TX-Ray snapshots (txray_strategy='steps', txray_steps=3) are not taken at every checkpoint "
                      "(save_strategy='steps', save_steps=2): the trained model may match no snapshot. Set txray_steps "
                      "to a divisor of save_steps (e.g. txray_steps=2) to profile every checkpoint."]
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2") and list(trainer.txray_profiles) == [
        "step-0", "step-3", "step-4"]
    assert trainer.txray_callback.stage_of_weights(trainer.model) is None  # what the warning foretold

    def gap(strategy="steps", steps=2, **overrides):
        options = {**dict(eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=4,
                          load_best_model_at_end=True, metric_for_best_model="eval_loss"), **overrides}
        return best_checkpoint_gap(build_args(tmp_path, **options), strategy, steps, "txray_")

    assert gap() is None and gap(steps=4) is None and gap(strategy="no", steps=3) is None
    assert gap(load_best_model_at_end=False, steps=3) is None
    assert gap(strategy="epoch", eval_strategy="epoch", save_strategy="epoch") is None
    assert "Set txray_strategy='epoch'" in gap(eval_strategy="epoch", save_strategy="epoch")
    assert "(save_strategy='steps', save_steps=4)" in gap(strategy="epoch")
    # save_strategy="best": a checkpoint at each evaluation that improves
    assert gap(save_strategy="best", eval_steps=4, steps=2) is None
    assert "(eval_strategy='steps', eval_steps=3): " in gap(save_strategy="best", eval_steps=3, steps=2)
    assert gap(save_strategy="steps", save_steps=0.5, eval_steps=0.5, steps=3) is None  # a ratio: known at train time


def test_snapshots_that_miss_checkpoints_saved_at_a_ratio_of_the_steps_are_warned_and_txray_steps_1_is_not(tmp_path,
                                                                                                       caplog):
    """save_steps=0.5 of 4 steps (checkpoints at steps 2 and 4) beside txray_steps=3 left the best checkpoint (step 2)
    without a snapshot, as save_steps=2 does, but nothing was said: a ratio was taken as "known at train time only",
    while the check runs at train begin, where the Trainer's state holds it in steps (state.save_steps = 2). And
    txray_steps=1 (a snapshot at every step) beside epoch checkpoints was warned about, though every checkpoint has
    its snapshot."""
    from transformers import TrainerState

    from hf_txray.trainer.arguments import best_checkpoint_gap

    trainer, warned = _trained_best_at_step_2(tmp_path, caplog, every=0.5)
    assert len(warned) == 1 and "(save_strategy='steps', save_steps=0.5 (2 steps))" in warned[0], warned
    assert "txray_steps=2" in warned[0]
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2")
    assert trainer.txray_callback.stage_of_weights(trainer.model) is None  # what the warning foretold

    def gap(strategy="steps", steps=2, state=None, **overrides):
        options = {**dict(eval_strategy="steps", eval_steps=0.5, save_strategy="steps", save_steps=0.5,
                          load_best_model_at_end=True, metric_for_best_model="eval_loss"), **overrides}
        return best_checkpoint_gap(build_args(tmp_path, **options), strategy, steps, "txray_", state)

    assert gap(steps=3) is None  # without the state a ratio is not judged
    assert gap(steps=2, state=TrainerState(save_steps=4, eval_steps=4)) is None
    assert "save_steps=0.5 (4 steps)" in gap(steps=3, state=TrainerState(save_steps=4, eval_steps=4))
    assert gap(save_strategy="best", steps=3, state=TrainerState(save_steps=500, eval_steps=6)) is None
    assert "eval_steps=0.5 (4 steps)" in gap(save_strategy="best", steps=3, state=TrainerState(eval_steps=4))
    # a snapshot at every step is one at every checkpoint, whatever saves them
    assert gap(steps=1, eval_strategy="epoch", save_strategy="epoch") is None
    assert gap(steps=1, eval_steps=3, save_steps=3) is None


def test_step_snapshots_that_fall_on_every_epoch_checkpoint_are_not_warned_about(tmp_path, caplog):
    """Helper 454: txray_steps=3 beside epoch checkpoints of 6-step epochs profiles every checkpoint (steps 6 and 12),
    yet a warning said the snapshots "are not taken at every checkpoint" and told the user to switch to
    txray_strategy='epoch' (and epoch snapshots beside save_steps=6 likewise). The epoch's steps, from the training
    dataloader, now decide it; txray_steps=4 is still warned about."""
    from torch.utils.data import DataLoader

    from hf_txray.trainer.arguments import best_checkpoint_gap, steps_per_epoch

    options = dict(num_train_epochs=2, eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                   txray_steps=3)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        trainer, _ = train(tmp_path, **options)
    assert not [r for r in caplog.records if "not taken at every checkpoint" in r.getMessage()]
    assert list(trainer.txray_profiles) == ["step-0", "step-3", "step-6", "step-9", "step-12"]
    assert trainer.txray_callback.stage_of_weights(trainer.model) is not None

    args = build_args(tmp_path, gradient_accumulation_steps=4, **options)
    assert steps_per_epoch(args, DataLoader(range(24), batch_size=4)) == 2  # 6 batches: 4, then a last partial 2
    assert steps_per_epoch(args, iter(range(3))) is None  # no length: not judged

    def gap(strategy="steps", steps=3, epoch=6, **overrides):
        return best_checkpoint_gap(build_args(tmp_path, **{**options, **overrides}), strategy, steps, "txray_",
                                   steps_per_epoch=epoch)

    assert gap() is None and gap(steps=6) is None
    assert "are not taken at every checkpoint (save_strategy='epoch')" in gap(steps=4)
    assert "are not taken at every checkpoint" in gap(epoch=None)  # an epoch of unknown length
    assert gap("epoch", save_strategy="steps", save_steps=6, eval_strategy="steps", eval_steps=6) is None
    assert "save_steps=4" in gap("epoch", save_strategy="steps", save_steps=4, eval_strategy="steps", eval_steps=4)


def test_a_run_no_longer_than_one_checkpoint_interval_is_not_warned_about(tmp_path):
    """Helper 457: with max_steps at most one epoch (or one save_steps), the only checkpoint is the last step's,
    which always gets a snapshot, yet best_checkpoint_gap warned that snapshots are not taken at every checkpoint
    (max_steps=4, 6-step epochs, txray_steps=4)."""
    from transformers import TrainerState

    from hf_txray.trainer.arguments import best_checkpoint_gap

    options = dict(eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True)

    def gap(max_steps, strategy="steps", steps=4, **overrides):
        return best_checkpoint_gap(build_args(tmp_path, **{**options, **overrides}), strategy, steps, "txray_",
                                   TrainerState(max_steps=max_steps), steps_per_epoch=6)

    assert gap(4) is None and gap(6) is None
    assert "are not taken at every checkpoint" in gap(7)  # the epoch checkpoint at step 6 has no snapshot
    steps = dict(save_strategy="steps", save_steps=5, eval_strategy="steps", eval_steps=5)
    assert gap(5, **steps) is None and gap(3, "epoch", **steps) is None
    assert "save_steps=5" in gap(9, **steps)


def test_bf16_mixed_precision_training(tmp_path):
    trainer, recorder = train(tmp_path, bf16=True, max_steps=4, txray_steps=2)
    assert list(trainer.txray_profiles) == ["step-0", "step-2", "step-4"]
    # The last profile ran outside the training autocast: it equals an offline fp32 profile of the final weights.
    callback = trainer.txray_callback
    offline = Profiler(trainer.model, bert_tokenizer(), callback.config).run(
        callback.corpus, text_column=callback.text_column, stage="step-4", show_progress=False)
    assert_same_profile(offline, trainer.txray_profiles["step-4"])
    assert all(np.isfinite(v) for log in txray_logs(recorder.logs) for k, v in log.items() if k != "step")


def test_bf16_snapshots_of_a_model_whose_own_forward_is_the_profiled_body_run_without_autocast(tmp_path):
    """Helper 177: with bf16 (or fp16) Accelerate replaces the trained model's own `forward` with an autocast
    wrapper. A model profiled through its own forward (a bare BertModel with compute_loss_func) then had every
    snapshot taken in bfloat16: counts and masses off an fp32 profile of the same weights (mass off by 0.16, credits
    moved), its dtype recorded as float32, no error; and so had analyze(trainer.model) after training."""
    from transformers import BertConfig, BertModel, TrainerCallback

    import hf_txray

    weights, forwards = {}, []

    class KeepWeights(TrainerCallback):  # runs before TX-Ray's callback: sees the forward training runs with
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            weights[0] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            forwards.append(vars(model).get("forward"))

        def on_step_end(self, args, state, control, model=None, **kwargs):
            weights[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            forwards.append(vars(model).get("forward"))

    torch.manual_seed(0)
    config = BertConfig(vocab_size=bert_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=48, max_position_embeddings=128)
    model = BertModel(config)

    def loss(outputs, labels, num_items_in_batch=None):
        return outputs.last_hidden_state[:, 0].float().pow(2).mean()

    trainer = TXRayTrainer(model=model, args=build_args(tmp_path, bf16=True, max_steps=2, txray_steps=1,
                                                        learning_rate=1e-2),
                           train_dataset=build_data(), txray_dataset=TEXTS, processing_class=bert_tokenizer(),
                           callbacks=[KeepWeights()], compute_loss_func=loss)
    trainer.train()
    assert list(trainer.txray_profiles) == ["step-0", "step-1", "step-2"]
    callback = trainer.txray_callback
    for stage, snapshot in trainer.txray_profiles.items():
        fresh = BertModel(config)
        fresh.load_state_dict(weights[int(stage.split("-")[1])])
        offline = Profiler(fresh.eval(), bert_tokenizer(), callback.config).run(
            callback.corpus, text_column=callback.text_column, stage=stage, show_progress=False)
        assert_same_profile(offline, snapshot)
    # training kept Accelerate's autocast wrapper around its forward passes (put back after every snapshot)
    assert forwards[0] is not None and all(forward is forwards[0] for forward in forwards) and len(forwards) == 3
    # The Trainer leaves the wrapper on the model: analyze(trainer.model) after training read it too (mass off by 0.25)
    assert vars(model).get("forward") is forwards[0]
    after = hf_txray.analyze(trainer.model, TEXTS, tokenizer=bert_tokenizer(), features=["token"], show_progress=False)
    final = BertModel(config)
    final.load_state_dict(weights[2])
    assert_same_profile(hf_txray.analyze(final.eval(), TEXTS, tokenizer=bert_tokenizer(), features=["token"],
                                         show_progress=False), after)
    assert vars(model).get("forward") is forwards[0]


def test_a_callback_changing_the_weights_after_the_snapshot_is_warned_about(tmp_path, caplog):
    """Helper 360: a snapshot profiles the weights at on_step_end. A user callback that rescales a layer at
    on_step_end, listed after TXRayCallback on a plain Trainer, made checkpoint-3/6/9 other weights than snapshots
    step-3/6/9 (their credit counts differ from the brute-force reference of each checkpoint's weights), without a
    word. Listed before it, the snapshots are the checkpoints' weights; listed after it, a warning says so, and with
    trainer= given the callback moves itself last at train begin (helper 375), so the order does not matter."""
    from transformers import Trainer, TrainerCallback

    class Rescale(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % 3 == 0:
                with torch.no_grad():
                    model.bert.encoder.layer[0].intermediate.dense.weight.mul_(1.5)
                    model.bert.encoder.layer[0].intermediate.dense.bias.add_(0.3)

    def run(name, txray_first, given=False):
        callback = TXRayCallback(build_data()["text"], steps=3, features=("token",))
        plain = Trainer(model=build_classifier(), args=build_args(tmp_path / name, max_steps=9, save_strategy="steps",
                                                                  save_steps=3, txray_strategy="no"),
                        train_dataset=build_data(), processing_class=bert_tokenizer(),
                        callbacks=[callback, Rescale()] if txray_first else [Rescale(), callback])
        callback.trainer = plain if given else None
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hf_txray"):
            plain.train()
        plain.txray_profiles = callback.profiles  # as _assert_snapshot_is_checkpoints reads them
        return plain, [r.getMessage() for r in caplog.records if "holds other weights" in r.getMessage()]

    after, warned = run("after", txray_first=False)
    assert not warned
    for step in (3, 6, 9):
        _assert_snapshot_is_checkpoints(after, tmp_path / "after", step)
    before, warned = run("before", txray_first=True)
    assert len(warned) == 1 and "checkpoint-3 holds other weights than snapshot step-3" in warned[0]
    with pytest.raises(AssertionError):  # what the warning is about
        _assert_snapshot_is_checkpoints(before, tmp_path / "before", 3)
    # helper 375: with trainer= the callback moves itself after the others at train begin, so the order is irrelevant
    given, warned = run("given", txray_first=True, given=True)
    assert not warned and isinstance(given.callback_handler.callbacks[-1], TXRayCallback)
    for step in (3, 6, 9):
        _assert_snapshot_is_checkpoints(given, tmp_path / "given", step)


def test_a_callback_changing_weights_the_sample_hash_does_not_read_is_warned_about(tmp_path, caplog):
    """Helper 375: the checkpoint warning compared the weights sample hash (64 evenly spaced values a tensor), so a
    callback listed after TXRayCallback that changed only other values of layer 0's intermediate weight at
    on_step_end made checkpoint-3 other weights than snapshot step-3 (its credit counts off the brute-force
    reference of checkpoint-3's weights), without a word. Snapshots record a hash of every weight byte now; one
    saved with the sample hash alone is still compared by it."""
    from transformers import Trainer, TrainerCallback

    class ShiftUnsampled(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % 3 == 0:
                weight = model.bert.encoder.layer[0].intermediate.dense.weight
                shift = torch.ones(weight.numel())
                shift[torch.arange(64) * (weight.numel() - 1) // 63] = 0.0  # the values the sample hash reads
                with torch.no_grad():
                    weight.add_(shift.view_as(weight))

    callback = TXRayCallback(build_data()["text"], steps=3, features=("token",))
    plain = Trainer(model=build_classifier(), args=build_args(tmp_path, max_steps=9, save_strategy="steps",
                                                              save_steps=3, txray_strategy="no"),
                    train_dataset=build_data(), processing_class=bert_tokenizer(),
                    callbacks=[callback, ShiftUnsampled()])
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        plain.train()
    warned = [r.getMessage() for r in caplog.records if "holds other weights" in r.getMessage()]
    assert len(warned) == 1 and "checkpoint-3 holds other weights than snapshot step-3" in warned[0]
    plain.txray_profiles = callback.profiles  # as _assert_snapshot_is_checkpoints reads them
    with pytest.raises(AssertionError):  # what the warning is about
        _assert_snapshot_is_checkpoints(plain, tmp_path, 3)
    assert callback.stage_of_weights(plain.model) is None  # shifted after snapshot step-9
    runtimes = [profile.meta.provenance["runtime"] for profile in callback.profiles.values()]
    assert all(runtime["weights_full_hash"].startswith("xxh3-128:") for runtime in runtimes)
    # helper 382: as saved by hf_txray before xxh3-128 (a sha256 of every byte), still compared byte for byte
    def sha256_of_every_byte(body) -> str:  # what hf_txray 375-381 recorded, written out
        digest = hashlib.sha256()
        for name, tensor in [*body.named_parameters(), *body.named_buffers()]:
            if "pooler" not in name.split(".")[:-1]:
                digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
                digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return "sha256:" + digest.hexdigest()

    for runtime in runtimes:
        runtime["weights_full_hash"] = "sha256:" + hashlib.sha256(b"other weights").hexdigest()
    assert callback.stage_of_weights(plain.model) is None  # not taken for the sample hash
    runtimes[-1]["weights_full_hash"] = sha256_of_every_byte(plain.model.bert)  # of the weights held now
    assert runtimes[-1]["weights_full_hash"] == hf_txray.provenance.weights_full_hash(plain.model.bert, "sha256")
    assert callback.stage_of_weights(plain.model) == "step-9"
    runtimes[-1]["weights_full_hash"] = "blake3:" + "0" * 64  # a kind this hf_txray does not compute: the sample
    assert callback.stage_of_weights(plain.model) == "step-9"  # hash decides, never a false "other weights"
    for runtime in runtimes:  # as saved by an earlier hf_txray: the sample hash alone
        runtime.pop("weights_full_hash")
    assert callback.stage_of_weights(plain.model) == "step-9"  # the sample hash cannot tell them apart


def test_callback_on_plain_trainer_equals_txray_trainer_and_does_not_change_training(tmp_path):
    from transformers import Trainer

    txray, txray_recorder = train(tmp_path, "txray", max_steps=6)
    recorder = LogRecorder()
    plain = Trainer(model=build_classifier(), args=build_args(tmp_path / "cb", max_steps=6), train_dataset=build_data(),
                    processing_class=bert_tokenizer(), callbacks=[recorder])
    plain.add_callback(TXRayCallback(TEXTS * 4, trainer=plain, steps=5, features=("token",)))
    plain.train()
    callback = next(cb for cb in plain.callback_handler.callbacks if isinstance(cb, TXRayCallback))
    assert list(callback.profiles) == list(txray.txray_profiles) == ["step-0", "step-5", "step-6"]
    for stage, profile in callback.profiles.items():
        assert_same_profile(profile, txray.txray_profiles[stage])
    assert list(callback.reports) == list(txray.txray_reports)
    for name, report in callback.reports.items():
        assert report.neurons.equals(txray.txray_reports[name].neurons)
    assert txray_logs(recorder.logs) == txray_logs(txray_recorder.logs)

    # Profiling between steps leaves training untouched: same weights as a Trainer without TX-Ray.
    bare = Trainer(model=build_classifier(), args=build_args(tmp_path / "bare", max_steps=6, txray_strategy="no"),
                   train_dataset=build_data(), processing_class=bert_tokenizer())
    bare.train()
    for (name, a), b in zip(bare.model.state_dict().items(), txray.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert txray.model.training  # train mode restored after every profile


def test_seq2seq_trainer_snapshots_of_a_stack_with_accumulation_equal_analyze_of_its_checkpoints(tmp_path):
    """Helper 346: `Seq2SeqTrainer` (generation at each evaluation) with `TXRayCallback(stack="decoder")`,
    `gradient_accumulation_steps=2` and `max_steps` off the snapshot interval: each snapshot is the profile of the
    checkpoint saved at its step (not of the weights one optimizer step before or after), and each report is
    `compare` of the checkpoints profiled on their own (measured equal, as here, in helper 346's hunt)."""
    import datasets
    from transformers import (DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, T5Config,
                              T5ForConditionalGeneration)

    tokenizer = bert_tokenizer()

    def build():
        torch.manual_seed(0)
        return T5ForConditionalGeneration(T5Config(vocab_size=tokenizer.vocab_size, d_model=32, d_ff=48, num_layers=2,
                                                   num_heads=2, d_kv=16, decoder_start_token_id=0, pad_token_id=0))

    def encode(batch):
        labels = tokenizer([t[::-1][:40] for t in batch["text"]], truncation=True, max_length=16)["input_ids"]
        return {**tokenizer(batch["text"], truncation=True, max_length=24), "labels": labels}

    data = datasets.Dataset.from_dict({"text": [TEXTS[i % len(TEXTS)] for i in range(16)]}).map(
        encode, batched=True, remove_columns=["text"])
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=5,
        learning_rate=3e-3, report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="steps", save_steps=2,
        eval_strategy="steps", eval_steps=2, predict_with_generate=True, generation_max_length=6, seed=0)
    model = build()
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=data, eval_dataset=data.select(range(4)),
                             processing_class=tokenizer, data_collator=DataCollatorForSeq2Seq(tokenizer, model=model))
    callback = TXRayCallback(TEXTS, trainer=trainer, steps=2, features=("token",), stack="decoder")
    trainer.add_callback(callback)
    trainer.train()
    assert list(callback.profiles) == ["step-0", "step-2", "step-4", "step-5"]

    options = dict(tokenizer=tokenizer, features=("token",), stack="decoder", show_progress=False)
    alone = {"step-0": hf_txray.analyze(build(), TEXTS, stage="step-0", **options)}
    for stage in list(callback.profiles)[1:]:
        saved = T5ForConditionalGeneration.from_pretrained(tmp_path / "run" / f"checkpoint-{stage[5:]}")
        alone[stage] = hf_txray.analyze(saved, TEXTS, stage=stage, **options)
    for stage, profile in callback.profiles.items():
        assert profile.meta.config["stack"] == "decoder"
        assert_same_profile(profile, alone[stage])
    for name, report in callback.reports.items():
        assert report.neurons.equals(hf_txray.compare(*(alone[s] for s in name.split("->"))).neurons), name


class AveragingSGD(torch.optim.SGD):
    """A schedule-free-like optimizer (as ``optim="schedule_free_adamw"``): it trains at the parameters (y) and
    evaluates at their running average (x); ``eval()`` / ``train()`` swap them and set ``train_mode`` in every group,
    as schedulefree's do (``Trainer.evaluate`` calls ``eval()``, ``Trainer.training_step`` ``train()``)."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr=lr)
        for group in self.param_groups:
            group["train_mode"] = False

    @torch.no_grad()
    def step(self, closure=None):
        assert all(group["train_mode"] for group in self.param_groups), "a step in eval mode"
        for p in (p for group in self.param_groups for p in group["params"]):
            self.state[p].setdefault("average", p.detach().clone())
        super().step(closure)
        for p in (p for group in self.param_groups for p in group["params"]):
            state = self.state[p]
            state["n"] = state.get("n", 1) + 1
            state["average"] += (p - state["average"]) / state["n"]

    @torch.no_grad()
    def _swap(self, to_train: bool) -> None:
        for group in (g for g in self.param_groups if g["train_mode"] != to_train):
            for p in (p for p in group["params"] if "average" in self.state[p]):
                state = self.state[p]
                if to_train:
                    p.copy_(state.pop("training_point"))
                else:
                    state["training_point"] = p.detach().clone()
                    p.copy_(state["average"])
            group["train_mode"] = to_train

    def train(self):
        self._swap(True)

    def eval(self):
        self._swap(False)


def _assert_snapshot_is_checkpoints(trainer, run, step):
    """The snapshot of `step` equals the brute-force reference profile of the weights ``checkpoint-{step}`` holds."""
    _assert_snapshot_is_of(trainer, load_file(run / f"checkpoint-{step}" / "model.safetensors"), step)


def _assert_snapshot_is_of(trainer, weights, step):
    """The snapshot of `step` equals the brute-force reference profile of the classifier holding `weights`."""
    saved = build_classifier()
    saved.load_state_dict(weights, strict=False)
    expected = reference_profile(saved, bert_tokenizer(), build_data()["text"], feature_types=("token",))
    got = trainer.txray_profiles[f"step-{step}"]
    assert profile_table(got, "token")[1] == dict(expected.count["token"]), step
    assert {k: v for k, v in np.ndenumerate(got.neuron_count.reshape(2, -1)) if v} == \
        dict(expected.neuron_count), step


def test_snapshots_with_a_schedule_free_optimizer_profile_the_evaluated_weights(tmp_path):
    """Helper 280: with a schedule-free optimizer the Trainer evaluates, and saves after an evaluation, the averaged
    weights (optimizer.eval()), but the snapshots profiled the training point: with schedulefree's AdamW the
    snapshot of step 8 differed from the evaluated (and saved) model in 16 of 96 neurons' credit counts, and the
    card named no snapshot as the model's. They profile the evaluated weights now, and training is not changed."""
    from transformers import Trainer

    options = dict(max_steps=8, learning_rate=0.5, txray_steps=4, eval_strategy="steps", eval_steps=4,
                   save_strategy="steps", save_steps=4)
    kwargs = dict(train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    model = build_classifier()
    trainer = TXRayTrainer(model=model, args=build_args(tmp_path / "run", **options),
                           optimizers=(AveragingSGD(model.parameters(), lr=0.5), None), **kwargs)
    trainer.train()
    assert list(trainer.txray_profiles) == ["step-0", "step-4", "step-8"]
    for step in (4, 8):  # each checkpoint is saved after its evaluation: the averaged weights
        _assert_snapshot_is_checkpoints(trainer, tmp_path / "run", step)
    # the trained model (evaluated last: the averaged weights) is the last snapshot's
    assert trainer.txray_callback.stage_of_weights(trainer.model) == "step-8"
    # and training is the plain Trainer's, bit for bit (the training point is put back after each snapshot)
    bare_model = build_classifier()
    bare = Trainer(model=bare_model, args=build_args(tmp_path / "bare", **options, txray_strategy="no"),
                   optimizers=(AveragingSGD(bare_model.parameters(), lr=0.5), None), **kwargs)
    bare.train()
    for (name, a), b in zip(bare.model.state_dict().items(), trainer.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_snapshots_with_a_schedule_free_optimizer_and_no_evaluation_profile_the_saved_weights(tmp_path):
    """Without evaluation (eval_strategy="no", the default) the Trainer never calls a schedule-free optimizer's
    eval(): its checkpoints and the trained model hold the training point. The snapshots profiled the evaluation
    point all the same, weights no checkpoint held: step-8 differed from checkpoint-8's profile and
    stage_of_weights(trainer.model) was None (no snapshot named the model's in its card, none pinned at a push). They
    profile the weights the Trainer saves: the evaluation point only at a step it evaluates."""
    options = dict(max_steps=8, learning_rate=0.5, txray_steps=4, save_strategy="steps", save_steps=4)
    model = build_classifier()
    trainer = TXRayTrainer(model=model, args=build_args(tmp_path / "run", **options),
                           optimizers=(AveragingSGD(model.parameters(), lr=0.5), None), train_dataset=build_data(),
                           eval_dataset=build_data(), processing_class=bert_tokenizer())
    trainer.train()
    for step in (4, 8):
        saved = build_classifier()
        saved.load_state_dict(load_file(tmp_path / "run" / f"checkpoint-{step}" / "model.safetensors"), strict=False)
        expected = reference_profile(saved, bert_tokenizer(), build_data()["text"], feature_types=("token",))
        got = trainer.txray_profiles[f"step-{step}"]
        assert {k: v for k, v in np.ndenumerate(got.neuron_count.reshape(2, -1)) if v} == \
            dict(expected.neuron_count), step
    assert trainer.txray_callback.stage_of_weights(trainer.model) == "step-8"


@pytest.mark.parametrize("options", [
    dict(num_train_epochs=2, txray_strategy="epoch"), dict(max_steps=9, txray_steps=3),
    dict(num_train_epochs=2, txray_strategy="epoch", save_strategy="steps", save_steps=6),
], ids=["epochs", "stop-mid-epoch", "saved-before-the-evaluation"])
def test_snapshots_with_a_schedule_free_optimizer_and_evaluation_each_epoch_profile_the_evaluated_weights(tmp_path,
                                                                                                         options):
    """Helper 328: with eval_strategy="epoch" the Trainer evaluates (optimizer.eval()) after on_epoch_end, and the
    checkpoint saved then holds the averaged weights; the snapshot of the epoch's last step, taken in on_step_end
    where control.should_evaluate is not set yet, profiled the training point (26 of 96 neurons' credit counts off
    checkpoint-6's at step 6, 13 at step 12; stage_of_weights(trainer.model) None). So did the last step of a run
    that max_steps stops mid-epoch, which is evaluated and saved at the end of its epoch loop too. A checkpoint saved
    at the step itself (save_strategy="steps"), before that evaluation, holds the training point, and so does its
    snapshot (the trained model, evaluated last, then matches none)."""
    from transformers import Trainer

    options = dict(learning_rate=0.5, eval_strategy="epoch", **{"save_strategy": "epoch", **options})
    kwargs = dict(train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    model = build_classifier()
    trainer = TXRayTrainer(model=model, args=build_args(tmp_path / "run", **options),
                           optimizers=(AveragingSGD(model.parameters(), lr=0.5), None), **kwargs)
    trainer.train()
    saves = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "run").glob("checkpoint-*"))
    last = saves[-1]
    assert saves == [6, last] and f"step-{last}" in trainer.txray_profiles
    for step in saves:  # the weights each checkpoint holds (after its epoch's evaluation: the averaged ones)
        _assert_snapshot_is_checkpoints(trainer, tmp_path / "run", step)
    evaluated_last = options["save_strategy"] == "epoch"
    assert trainer.txray_callback.stage_of_weights(trainer.model) == (f"step-{last}" if evaluated_last else None)
    bare_model = build_classifier()  # training is the plain Trainer's, bit for bit
    bare = Trainer(model=bare_model, args=build_args(tmp_path / "bare", **{**options, "txray_strategy": "no"}),
                   optimizers=(AveragingSGD(bare_model.parameters(), lr=0.5), None), **kwargs)
    bare.train()
    for (name, a), b in zip(bare.model.state_dict().items(), trainer.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_second_txray_callback_in_one_trainer_is_refused_before_it_writes(tmp_path):
    """Helper 271: two TXRayCallbacks (two probe corpora) in one Trainer both wrote output_dir/txray/: the second
    removed the first one's step-0 as "taken by an earlier run", the folder ended with the second's profiles only
    (timeline active shares 0.583/0.344/0.292 where the first callback had 0.625/0.406/0.323) and the logs held both
    at each step, without an error. A second one is now refused, at construction for TXRayTrainer."""
    from transformers import Trainer

    other = [t.upper() for t in TEXTS]
    for given in (False, True):  # without trainer= only the run's state shows the other one
        out = tmp_path / f"plain-{given}"
        plain = Trainer(model=build_classifier(), args=build_args(out, max_steps=2), train_dataset=build_data(),
                        processing_class=bert_tokenizer())
        first = TXRayCallback(TEXTS, trainer=plain if given else None, steps=1, features=("token",))
        plain.add_callback(first)
        plain.add_callback(TXRayCallback(other, trainer=plain if given else None, steps=1, features=("token",)))
        with pytest.raises(ConfigurationError, match="2 TX-Ray callbacks .* output_dir/txray/"):
            plain.train()
        assert plain.state.global_step == 0
        # the first one's step-0 stays as it was taken (seen by the trainer's callbacks: not even taken)
        assert list(first.profiles) == ([] if given else ["step-0"])
        assert sorted(p.name for p in (out / "txray" / "profiles").glob("step-*")) == list(first.profiles)
    with pytest.raises(ConfigurationError, match="drop the TXRayCallback from callbacks="):
        TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "trainer"), train_dataset=build_data(),
                     processing_class=bert_tokenizer(), txray_dataset=TEXTS,
                     callbacks=[TXRayCallback(other, features=("token",))])
    # one TX-Ray callback (TXRayTrainer's off) is not refused; nor is a disabled one beside TXRayTrainer's
    TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "one", txray_strategy="no"),
                 train_dataset=build_data(), processing_class=bert_tokenizer(),
                 callbacks=[TXRayCallback(other, features=("token",))])
    TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "off"), train_dataset=build_data(),
                 processing_class=bert_tokenizer(), txray_dataset=TEXTS,
                 callbacks=[TXRayCallback(other, strategy="no", features=("token",))])


def test_snapshots_leave_the_random_streams_of_training_as_they_were(tmp_path):
    """Helper 145: the first POS snapshot imported spaCy, which imports rich, whose Style draws from Python's
    `random` at import: a data collator drawing from it (word dropout) then gave another loss curve than the plain
    Trainer's. Run in a fresh interpreter, where spaCy is not imported yet."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_TXRAY_CACHE": str(tmp_path / "cache"),  # no cached tags: the snapshot tags the probe, as a first run
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)])}
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "txray_rng_script.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["spacy_loaded"]
    assert len(result["plain"]["losses"]) == 6
    assert result["txray"] == result["plain"]


def test_resume_continues_the_timeline_without_duplicates(tmp_path, caplog):
    options = dict(txray_steps=3, save_strategy="steps", save_steps=4)  # 12 steps: profiles 0,3,6,9,12
    full, _ = train(tmp_path, "run", **options)
    assert list(full.txray_profiles) == ["step-0", "step-3", "step-6", "step-9", "step-12"]
    full_profiles = full.txray_profiles
    header = (tmp_path / "run" / "txray" / "timeline.csv").read_text().splitlines()[0]
    assert header.startswith("stage,step,epoch,active_share,profile_seconds,compare_seconds,")

    # Resume from step 8 in the same folder: 9 and 12 (written by the first run) are taken again, not duplicated.
    # A run killed mid-write leaves temporary files and folders, which a push would upload: the resume removes them.
    root = tmp_path / "run" / "txray"
    leftovers = [root / ".timeline.csv.tmp-123", root / "plots" / ".shares.png.tmp-9", root / "profiles" /
                 ".step-12.tmp-ab12cd34" / "profile.json"]
    for leftover in leftovers:
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_text("half")
    recorder = LogRecorder()
    resumed = TXRayTrainer(model=build_classifier(seed=1), args=build_args(tmp_path / "run", **options),
                           train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer(),
                           callbacks=[recorder])
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-8"))
    # the profiles taken after the checkpoint are removed, and that is said (helper 145: silently, also those of a
    # first train() on the same output_dir)
    assert "TX-Ray: removed 2 profile(s) (step-12, step-9)" in caplog.text
    assert list(resumed.txray_profiles) == list(full_profiles)
    assert resumed.txray_timeline["step"].tolist() == [0, 3, 6, 9, 12]
    for stage, profile in full_profiles.items():
        assert_same_profile(resumed.txray_profiles[stage], profile, exact=False)
    assert [log["step"] for log in txray_logs(recorder.logs)] == [9, 12]  # new logs only after the checkpoint
    txray_steps = [e["step"] for e in resumed.state.log_history if "txray/vs_first/share_lost" in e]
    assert txray_steps == [3, 6, 9, 12]  # the checkpoint's log history plus the new ones, once each
    assert pd.read_csv(root / "timeline.csv")["step"].tolist() == [0, 3, 6, 9, 12]
    # helper 145: restored rows (sorted keys in trainer_state.json) put the columns in another order
    assert (root / "timeline.csv").read_text().splitlines()[0] == header
    assert sorted(p.name for p in (root / "profiles").iterdir()) == sorted(full_profiles)
    assert not any(leftover.exists() or leftover.parent.name.startswith(".") and leftover.parent.exists()
                   for leftover in leftovers)
    assert "step-6->step-9" in resumed.txray_reports and "step-0->step-6" in resumed.txray_reports


def test_resume_at_an_epochs_last_step_keeps_that_epochs_snapshot(tmp_path):
    """txray_strategy="epoch": on_epoch_end runs after the checkpoint of the epoch's last step is saved, so a run
    resumed from it had lost the epoch's snapshot (step-0 then step-12). It is taken before the save now, and a
    checkpoint written without it (earlier hf_txray) gets it at the resume, from the same weights."""
    import json

    options = dict(txray_strategy="epoch", save_strategy="steps", save_steps=6)  # 2 epochs of 6 steps
    full, _ = train(tmp_path, "run", **options)
    assert list(full.txray_profiles) == ["step-0", "step-6", "step-12"]
    checkpoint = tmp_path / "run" / "checkpoint-6"
    saved = json.loads((checkpoint / "trainer_state.json").read_text())
    assert [r["step"] for r in saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"]] == [0, 6]
    for older in (False, True):
        if older:  # as written before the fix: the checkpoint's timeline stops at step 0
            saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"] = \
                saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"][:1]
            (checkpoint / "trainer_state.json").write_text(json.dumps(saved))
        resumed = TXRayTrainer(model=build_classifier(seed=1), args=build_args(tmp_path / "run", **options),
                               train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
        resumed.train(resume_from_checkpoint=str(checkpoint))
        assert resumed.txray_timeline["step"].tolist() == [0, 6, 12], older
        for stage, profile in full.txray_profiles.items():
            assert_same_profile(resumed.txray_profiles[stage], profile, exact=False)


def test_resume_without_data_skip_keeps_the_snapshot_of_an_iterable_epochs_end(tmp_path):
    """Helper 360: with a training set without a length (an IterableDataset, max_steps) the Trainer sees an epoch end
    (the data ran out) only after the checkpoint of its last step is saved, so checkpoint-6 lacks the epoch's step-6
    snapshot; a resume with ignore_data_skip starts the data over, never ends that epoch at step 6, and lost it
    (timeline steps [0, 12] against the uninterrupted [0, 6, 12], its profile pruned from disk). It is taken again at
    the resume where the profile on disk is of the checkpoint's weights, equal to the uninterrupted run's."""
    options = dict(txray_strategy="epoch", max_steps=12, save_strategy="steps", save_steps=6, ignore_data_skip=True)

    def trainer(out, seed):  # 24 examples, 6 batches a pass
        return TXRayTrainer(model=build_classifier(seed=seed), args=build_args(out, **options),
                            train_dataset=build_data().to_iterable_dataset(), eval_dataset=build_data(),
                            processing_class=bert_tokenizer())

    full = trainer(tmp_path / "full", 0)
    full.train()
    assert full.txray_timeline[["step", "epoch"]].values.tolist() == [[0, 0.0], [6, 0.5], [12, 1.5]]
    saved = json.loads((tmp_path / "full" / "checkpoint-6" / "trainer_state.json").read_text())
    assert [r["step"] for r in saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"]] == [0]
    out = tmp_path / "run"
    shutil.copytree(tmp_path / "full", out)
    shutil.rmtree(out / "checkpoint-12")
    resumed = trainer(out, 1)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-6"))
    # step 12's epoch is the resumed Trainer's own (ignore_data_skip starts its epochs over), as in its logs
    assert resumed.txray_timeline[["step", "epoch"]].values.tolist() == [[0, 0.0], [6, 0.5], [12, 0.5]]
    assert pd.read_csv(out / "txray" / "timeline.csv")["step"].tolist() == [0, 6, 12]
    for stage, profile in full.txray_profiles.items():
        assert_same_profile(resumed.txray_profiles[stage], profile, exact=False)
    _assert_snapshot_is_checkpoints(resumed, out, 6)


def test_resume_without_data_skip_keeps_an_iterable_epochs_snapshot_of_a_schedule_free_optimizers_evaluated_weights(
        tmp_path):
    """Helper 375: with a schedule-free optimizer and eval_strategy="epoch", the snapshot an IterableDataset's epoch
    end takes after checkpoint-6 is saved profiles the evaluation point (the weights Trainer.evaluate uses next),
    while checkpoint-6 holds the training point. The resume with ignore_data_skip compared that snapshot's recorded
    weights with the training point alone, found them other, and lost it: timeline steps [0, 12] against the
    uninterrupted run's [0, 6, 12]. It is taken again, of the evaluation point the checkpoint's optimizer gives."""
    from transformers import TrainerCallback

    options = dict(txray_strategy="epoch", max_steps=12, save_strategy="steps", save_steps=6, ignore_data_skip=True,
                   eval_strategy="epoch", learning_rate=0.5)

    class Evaluated(TrainerCallback):  # the weights each evaluation ran with, by step
        def __init__(self):
            self.weights = {}

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            self.weights[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def trainer(out, seed, *callbacks):  # 24 examples, 6 batches a pass; no dropout: the resume trains as the run
        model = build_classifier(seed=seed, dropout=0.0)
        return TXRayTrainer(model=model, args=build_args(out, **options), callbacks=list(callbacks),
                            optimizers=(AveragingSGD(model.parameters(), lr=0.5), None),
                            train_dataset=build_data().to_iterable_dataset(), eval_dataset=build_data(),
                            processing_class=bert_tokenizer())

    evaluated = Evaluated()
    full = trainer(tmp_path / "full", 0, evaluated)
    full.train()
    assert full.txray_timeline["step"].tolist() == [0, 6, 12]
    _assert_snapshot_is_of(full, evaluated.weights[6], 6)
    out = tmp_path / "run"
    shutil.copytree(tmp_path / "full", out)
    shutil.rmtree(out / "checkpoint-12")
    resumed = trainer(out, 1)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-6"))
    assert resumed.txray_timeline["step"].tolist() == [0, 6, 12]
    assert pd.read_csv(out / "txray" / "timeline.csv")["step"].tolist() == [0, 6, 12]
    for stage, profile in full.txray_profiles.items():
        assert_same_profile(resumed.txray_profiles[stage], profile, exact=False)
    _assert_snapshot_is_of(resumed, evaluated.weights[6], 6)
    _assert_snapshot_is_checkpoints(resumed, out, 12)  # saved at its step, before the evaluation: the training point


def test_a_snapshot_that_cannot_be_written_stops_training_after_its_steps_checkpoint(tmp_path, monkeypatch):
    """Helper 333: a write failure at the step-3 snapshot (save_steps=3) raised from on_step_end, before the Trainer
    saved checkpoint-3: output_dir held no checkpoint, and the 3 steps trained were lost. The error now stops training
    after that checkpoint, which records the timeline without the unwritten snapshot; a resume from it takes that
    snapshot again, and the timeline, profiles and logs equal an uninterrupted run's."""
    import errno

    from hf_txray import OutputError

    options = dict(txray_steps=3, save_strategy="steps", save_steps=3)  # 12 steps: profiles 0,3,6,9,12
    full, _ = train(tmp_path, "full", **options)
    save = Profile._save_pretrained

    def full_disk_at_step_3(self, folder, **card):
        if self.meta.stage == "step-3":
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, folder, **card)

    monkeypatch.setattr(Profile, "_save_pretrained", full_disk_at_step_3)
    out = tmp_path / "run"
    stopped = TXRayTrainer(model=build_classifier(), args=build_args(out, **options), train_dataset=build_data(),
                           eval_dataset=build_data(), processing_class=bert_tokenizer())
    with pytest.raises(OutputError, match=r"snapshot of step 3 could not be written\. Cannot write .*step-3: No space "
                                          r"left on device.*stopped after step 3, whose checkpoint was saved first "
                                          r"\(.*checkpoint-3\)"):
        stopped.train()
    monkeypatch.undo()
    assert stopped.state.global_step == 3  # stopped at once
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-3", "txray"]
    saved = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert [r["step"] for r in saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"]] == [0]
    assert pd.read_csv(out / "txray" / "timeline.csv")["step"].tolist() == [0]
    assert not [e for e in saved["log_history"] if "txray/vs_first/share_lost" in e]

    resumed = TXRayTrainer(model=build_classifier(seed=1), args=build_args(out, **options),
                           train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    assert list(resumed.txray_profiles) == list(full.txray_profiles) == ["step-0", "step-3", "step-6", "step-9",
                                                                         "step-12"]
    for stage, profile in full.txray_profiles.items():
        assert_same_profile(resumed.txray_profiles[stage], profile, exact=False)
    assert list(resumed.txray_reports) == list(full.txray_reports)
    assert [e["step"] for e in resumed.state.log_history if "txray/vs_first/share_lost" in e] == [3, 6, 9, 12]
    assert pd.read_csv(out / "txray" / "timeline.csv")["step"].tolist() == [0, 3, 6, 9, 12]


def test_resume_with_txray_on_from_a_checkpoint_saved_without_it(tmp_path):
    """Helper 280: the Trainer's checkpoint save indexes the state of every ExportableState callback by its class name
    in the resumed TrainerState, which a checkpoint saved without TX-Ray lacks: KeyError 'TXRayCallback' at the first
    checkpoint after the resume, its training steps unsaved (TXRayTrainer and TXRayCallback alike). The resume is
    profiled from the checkpoint's weights on (stage step-4), and its checkpoints keep the timeline."""
    from transformers import Trainer

    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8)
    train(tmp_path, "run", **options, txray_strategy="no")  # checkpoints 4 and 8, no TX-Ray state in them
    checkpoint = tmp_path / "run" / "checkpoint-4"
    weights = build_classifier()
    weights.load_state_dict(load_file(checkpoint / "model.safetensors"), strict=False)
    expected = reference_profile(weights, bert_tokenizer(), TEXTS * 4, feature_types=("token",))
    for name in ("trainer", "callback"):
        shutil.copytree(tmp_path / "run", tmp_path / name)
        args = build_args(tmp_path / name, **options)
        if name == "trainer":
            resumed = TXRayTrainer(model=build_classifier(seed=1), args=args, train_dataset=build_data(),
                                   eval_dataset=build_data(), processing_class=bert_tokenizer())
        else:
            resumed = Trainer(model=build_classifier(seed=1), args=args, train_dataset=build_data(),
                              processing_class=bert_tokenizer())
            resumed.add_callback(TXRayCallback(TEXTS * 4, trainer=resumed, steps=3, features=("token",)))
        resumed.train(resume_from_checkpoint=str(tmp_path / name / "checkpoint-4"))
        callback = next(cb for cb in resumed.callback_handler.callbacks if isinstance(cb, TXRayCallback))
        assert list(callback.profiles) == ["step-4", "step-6", "step-8"], name
        assert profile_table(callback.profiles["step-4"], "token")[1] == dict(expected.count["token"]), name
        saved = json.loads((tmp_path / name / "checkpoint-8" / "trainer_state.json").read_text())
        assert [row["stage"] for row in saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["timeline"]] == \
            ["step-4", "step-6", "step-8"], name


def test_resume_with_other_txray_options_or_probe_is_refused_before_training(tmp_path):
    """A changed credit rule was refused only at the next snapshot, after training steps had run; a changed max_length
    or probe was compared with the checkpoint's profiles without a word."""
    from hf_txray import ConfigurationError

    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8)
    train(tmp_path, "run", **options)
    probe = [t + " more" for t in build_data()["text"]]
    for changed, match in (({"txray_max_length": 12}, "max_length differ"), ({"txray_top_k": 2}, "top_k differ"),
                           ({"txray_dataset": probe}, "probe texts differ")):
        dataset = changed.pop("txray_dataset", None)
        kwargs = {"txray_dataset": dataset} if dataset is not None else {}
        resumed = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "run", **{**options, **changed}),
                               train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer(),
                               **kwargs)
        with pytest.raises(ConfigurationError, match=f"Resuming TX-Ray snapshots whose {match}"):
            resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-4"))
        assert resumed.state.global_step == 4  # not one training step


def test_resume_from_a_checkpoint_copied_without_its_profiles_says_so(tmp_path):
    import shutil

    from hf_txray import ProfileFormatError

    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=4)
    train(tmp_path, "run", **options)
    shutil.copytree(tmp_path / "run" / "checkpoint-4", tmp_path / "moved" / "checkpoint-4")
    resumed = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "moved", **{**options, "max_steps": 6}),
                           train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    with pytest.raises(ProfileFormatError, match="'step-0' is not in .*copy its txray/ folder along with the checkpoint"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "moved" / "checkpoint-4"))


def test_resume_refuses_profiles_another_run_wrote_since_the_checkpoint(tmp_path):
    """Helper 177: a second run in the same output_dir replaces the first one's profiles (with a warning) but leaves
    its checkpoints; resuming one of them then loaded the second run's profiles as the checkpoint's, and compared
    every new snapshot with them (vs_first from another model's step-0), while the restored timeline rows still held
    the first run's figures: no error."""
    import json

    from hf_txray import ProfileFormatError

    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8)
    train(tmp_path, "run", **options)  # profiles 0,3,6,8; checkpoint-4 holds the timeline 0,3
    other = TXRayTrainer(model=build_classifier(seed=1), args=build_args(tmp_path / "run", **{
        **options, "save_strategy": "no", "max_steps": 3}), train_dataset=build_data(), eval_dataset=build_data(),
        processing_class=bert_tokenizer())
    other.train()  # another model: its step-0 and step-3 replace the first run's
    checkpoint = tmp_path / "run" / "checkpoint-4"
    for older in (False, True):
        if older:  # a checkpoint written before fingerprints were kept: the rows' active shares tell the runs apart
            saved = json.loads((checkpoint / "trainer_state.json").read_text())
            saved["stateful_callbacks"]["TXRayCallback"]["attributes"].pop("fingerprints")
            (checkpoint / "trainer_state.json").write_text(json.dumps(saved))
        resumed = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "run", **options),
                               train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
        with pytest.raises(ProfileFormatError, match="'step-0' in .* is not the one the checkpoint recorded"):
            resumed.train(resume_from_checkpoint=str(checkpoint))
        assert resumed.state.global_step == 4  # not one training step
    assert sorted(p.name for p in (tmp_path / "run" / "txray" / "profiles").iterdir()) == ["step-0", "step-3"]
    # the run's own profiles are accepted, also from a checkpoint without fingerprints (by the active shares)
    first, _ = train(tmp_path, "own", **options)
    saved = json.loads((tmp_path / "own" / "checkpoint-4" / "trainer_state.json").read_text())
    assert set(saved["stateful_callbacks"]["TXRayCallback"]["attributes"]["fingerprints"]) == {"step-0", "step-3"}
    saved["stateful_callbacks"]["TXRayCallback"]["attributes"].pop("fingerprints")
    (tmp_path / "own" / "checkpoint-4" / "trainer_state.json").write_text(json.dumps(saved))
    resumed = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "own", **options),
                           train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    resumed.train(resume_from_checkpoint=str(tmp_path / "own" / "checkpoint-4"))
    assert list(resumed.txray_profiles) == list(first.txray_profiles) == ["step-0", "step-3", "step-6", "step-8"]


def test_resume_drops_profiles_taken_after_the_checkpoint(tmp_path):
    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8)
    train(tmp_path, "run", **options)  # profiles 0,3,6,8; checkpoints 4, 8
    # helper 224: a replaced profile or report whose removal was cut short (.{name}.old-PID) stayed forever; the
    # copies of dead processes go once the live folder is loaded (or removed), a running process's stays
    root, dead = tmp_path / "run" / "txray", 4194305  # above Linux's largest pid: no such process
    left = [root / "profiles" / f".step-3.old-{dead}", root / "profiles" / f".step-6.old-{dead}",
            root / "reports" / f".step-0__step-3.old-{dead}"]
    running = root / "profiles" / f".step-0.old-{os.getppid()}"
    for folder in (*left, running):
        folder.mkdir()
        (folder / "profile.json").write_text("half removed")
    resumed = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "run", **{**options, "max_steps": 5}),
                           train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-4"))
    assert resumed.txray_timeline["step"].tolist() == [0, 3, 5]
    assert not [folder for folder in left if folder.exists()] and running.is_dir()
    shutil.rmtree(running)
    assert sorted(p.name for p in (root / "profiles").iterdir()) == ["step-0", "step-3", "step-5"]
    assert sorted(p.name for p in (root / "reports").iterdir()) == ["step-0__step-3", "step-0__step-5",
                                                                   "step-3__step-5"]


def test_resume_puts_back_a_profile_and_report_a_crash_left_moved_aside(tmp_path):
    """A run killed between atomic_dir's two renames leaves the replaced folder moved aside (.step-3.old-PID) and no
    live step-3: resume refused ("'step-3' is not in ...") though the whole profile was there. It is put back (and a
    report likewise) where the copy holds a whole save; a copy without its header is not. A report folder that is
    gone is recomputed."""
    from hf_txray import ProfileFormatError
    from hf_txray.artifact import HEADER_FILE

    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8)
    full, _ = train(tmp_path, "run", **options)  # profiles 0,3,6,8; checkpoint-4 holds the timeline 0,3
    root, dead = tmp_path / "run" / "txray", 4194305  # above Linux's largest pid: no such process
    profile, report = root / "profiles" / f".step-3.old-{dead}", root / "reports" / f".step-0__step-3.old-{dead}"
    (root / "profiles" / "step-3").rename(profile)
    (root / "reports" / "step-0__step-3").rename(report)
    header = (profile / HEADER_FILE).read_bytes()
    (profile / HEADER_FILE).unlink()  # a copy whose removal was cut short: not a whole save
    kwargs = dict(train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    args = build_args(tmp_path / "run", **{**options, "max_steps": 5})
    refused = TXRayTrainer(model=build_classifier(), args=args, **kwargs)
    with pytest.raises(ProfileFormatError, match="'step-3' is not in"):
        refused.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-4"))
    assert profile.is_dir() and not (root / "profiles" / "step-3").exists()
    (profile / HEADER_FILE).write_bytes(header)
    resumed = TXRayTrainer(model=build_classifier(), args=args, **kwargs)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-4"))
    assert resumed.txray_timeline["step"].tolist() == [0, 3, 5]
    assert not profile.exists() and not report.exists()
    assert_same_profile(resumed.txray_profiles["step-3"], full.txray_profiles["step-3"])
    assert resumed.txray_reports["step-0->step-3"].neurons.equals(full.txray_reports["step-0->step-3"].neurons)
    assert sorted(p.name for p in (root / "reports").iterdir()) == ["step-0__step-3", "step-0__step-5",
                                                                   "step-3__step-5"]
    # a report folder that is simply gone is recomputed, as said (its ArtifactNotFoundError crashed the resume)
    shutil.rmtree(root / "reports" / "step-0__step-3")
    again = TXRayTrainer(model=build_classifier(), args=args, **kwargs)
    again.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-4"))
    assert again.txray_reports["step-0->step-3"].neurons.equals(full.txray_reports["step-0->step-3"].neurons)
    # and written back: the folder holds every report of the timeline again (a push uploads it)
    assert TransferReport.from_pretrained(root / "reports" / "step-0__step-3").neurons.equals(
        full.txray_reports["step-0->step-3"].neurons)


def test_resume_with_restore_callback_states_from_checkpoint(tmp_path):
    # The Trainer would rebuild callbacks from their exported "args"; TXRayTrainer keeps its own, which restores itself.
    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8,
                   restore_callback_states_from_checkpoint=True)
    first, _ = train(tmp_path, "run", **options)
    resumed = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "run", **options),
                           train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    callback = resumed.txray_callback
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-4"))
    assert [cb for cb in resumed.callback_handler.callbacks if isinstance(cb, TXRayCallback)] == [callback]
    assert list(resumed.txray_profiles) == list(first.txray_profiles) == ["step-0", "step-3", "step-6", "step-8"]


def test_engine_options_reach_the_snapshots(tmp_path):
    """txray_long_texts/stride/num_workers/max_tokens_per_batch/pad_to_multiple_of: the snapshots run the analyze
    engine with them (windows credit every real token; workers and token budgets change nothing)."""
    import dataclasses

    long_texts = [" ".join(TEXTS[i:] + TEXTS[:i]) for i in range(4)]  # ~90 tokens each, far over max_length
    engine = dict(txray_max_length=16, txray_stride=4, txray_num_workers=1, txray_max_tokens_per_batch=40,
                  txray_pad_to_multiple_of=1, txray_batch_size=3)
    trainer = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path, max_steps=1, txray_steps=1, **engine),
                           train_dataset=build_data(), txray_dataset=long_texts, processing_class=bert_tokenizer())
    trainer.train()
    snapshot = trainer.txray_profiles["step-0"]
    options = snapshot.meta.provenance["options"]
    assert (options["long_texts"], options["stride"], options["num_workers"], options["max_tokens_per_batch"],
            options["pad_to_multiple_of"], options["max_length"]) == ("window", 4, 1, 40, 1, 16)
    tokenizer = bert_tokenizer()
    real = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in long_texts)
    assert snapshot.meta.num_positions == real and snapshot.meta.num_windowed == len(long_texts)

    config = trainer.txray_callback.config
    start = build_classifier()  # step-0 weights, profiled offline with the default engine options
    plain = Profiler(start, tokenizer, dataclasses.replace(config, num_workers=0, max_tokens_per_batch=None,
                                                           pad_to_multiple_of=16, batch_size=32))
    callback = trainer.txray_callback
    offline = plain.run(callback.corpus, text_column=callback.text_column, stage="step-0", show_progress=False)
    np.testing.assert_array_equal(offline.neuron_count, snapshot.neuron_count)
    np.testing.assert_allclose(offline.neuron_mass, snapshot.neuron_mass, rtol=1e-5)
    (want_mass, want_count), (mass, count) = profile_table(offline, "token"), profile_table(snapshot, "token")
    assert count == want_count and mass == pytest.approx(want_mass, rel=1e-5)
    truncated = Profiler(start, tokenizer, dataclasses.replace(config, long_texts="truncate")).run(
        callback.corpus, text_column=callback.text_column, stage="step-0", show_progress=False)
    assert truncated.meta.num_positions == len(long_texts) * 14 < snapshot.meta.num_positions


# ----- configuration errors, before training ----------------------------------------------------------------------
def test_an_eval_dataset_read_from_a_csv_is_judged_on_the_texts_profiled(tmp_path):
    """Helper 295: TXRayTrainer checked its eval_dataset's text column on the first row alone (num_samples=1), so an
    eval_dataset read from a CSV whose first text is "42" (then sentences) was refused ("eval_dataset has none
    (Column 'text' of the CSV holds numbers alone (int ...: 42) ...") where analyze reads the same Dataset's 6 texts.
    It is judged on the texts the callback profiles (txray_max_samples); a column of numbers alone (typed int64 by the csv builder) is still refused."""
    import datasets
    from hf_txray.loading import load_corpus

    common = dict(model=build_classifier(), train_dataset=build_data(with_text=False), processing_class=bert_tokenizer())
    for name, texts in (("first", ["42"] + TEXTS[:5]), ("numbers", ["42", "7", "2019"])):
        pd.DataFrame({"text": texts, "label": [0] * len(texts)}).to_csv(tmp_path / f"{name}.csv", index=False)
    first = datasets.load_dataset("csv", data_files=str(tmp_path / "first.csv"), split="train")
    assert len(load_corpus(first)[0]) == 6
    trainer = TXRayTrainer(args=build_args(tmp_path / "out"), eval_dataset=first, **common)
    assert len(trainer.txray_callback.corpus) == 6
    numbers = datasets.load_dataset("csv", data_files=str(tmp_path / "numbers.csv"), split="train")
    with pytest.raises(DatasetError, match=r"eval_dataset has none \(Column 'text' holds Value\('int64'\)"):
        TXRayTrainer(args=build_args(tmp_path / "out2"), eval_dataset=numbers, **common)


def test_bad_configuration_fails_before_training(tmp_path):
    tokenized = build_data(with_text=False)
    common = dict(model=build_classifier(), train_dataset=tokenized, processing_class=bert_tokenizer())
    with pytest.raises(ConfigurationError, match="needs probe text"):
        TXRayTrainer(args=build_args(tmp_path), **common)
    with pytest.raises(DatasetError, match="eval_dataset has none"):
        TXRayTrainer(args=build_args(tmp_path), eval_dataset=tokenized, **common)
    with pytest.raises(DatasetError, match="No text column"):
        TXRayTrainer(args=build_args(tmp_path), txray_dataset=tokenized, **common)
    # a stream is refused with the fix: the probe is read once and profiled at every snapshot (README)
    import datasets

    stream = datasets.Dataset.from_dict({"text": TEXTS}).to_iterable_dataset()
    with pytest.raises(DatasetError, match=r"Got IterableDataset \(a stream\).*Dataset.from_list\(list\(stream.take"):
        TXRayTrainer(args=build_args(tmp_path), txray_dataset=stream, **common)
    # helper 275: the message was the one of functions that take no stream, which sent the user to analyze() and
    # named none of the trainer's options; it names txray_dataset and the texts profiled (txray_max_samples)
    with pytest.raises(DatasetError) as said:
        TXRayTrainer(args=build_args(tmp_path, txray_max_samples="7"), txray_dataset=stream, **common)
    assert "analyze" not in str(said.value) and "stream.take(7)" in str(said.value)
    assert "txray_dataset=" in str(said.value) and "txray_max_samples" in str(said.value)
    with pytest.raises(DatasetError, match=r"a stream\) in eval_dataset as the TX-Ray probe corpus.*txray_dataset="):
        TXRayTrainer(args=build_args(tmp_path), eval_dataset=stream, **common)
    with pytest.raises(DatasetError, match=r"Got generator \(a stream\).*probe_dataset=.*itertools.islice\(texts, 3\)"):
        TXRayCallback((t for t in TEXTS), max_samples=3)
    # helper 135: the checks that need the model named analyze's options, not the txray_* fields set
    with pytest.raises(ConfigurationError, match="^txray_layers: Layer 5 is out of range"):
        TXRayTrainer(args=build_args(tmp_path, txray_layers="0,5"), txray_dataset=TEXTS, **common)
    with pytest.raises(ConfigurationError, match=r"txray_top_k=100 exceeds"):
        TXRayTrainer(args=build_args(tmp_path, txray_top_k=100), txray_dataset=TEXTS, **common)
    from hf_txray.trainer.arguments import prefixed_option_names

    assert prefixed_option_names("Pass `module_pattern`, or site='residual'.").endswith(
        "(module_pattern is not a TXRayArguments field: in the trainer use txray_site='residual', or profile saved "
        "checkpoints with hf_txray.analyze(..., module_pattern=...).)")  # helper 137: advice it cannot follow
    with pytest.raises(DatasetError, match=r"or lower txray_skip_first_positions"):
        TXRayTrainer(args=build_args(tmp_path, txray_skip_first_positions=2), txray_dataset=["Yes", "No"], **common)
    # a probe without a position to credit: refused at construction (helper 127: at the first snapshot, after
    # training steps), blank or left empty by skip_first_positions
    for probe, skip in ((["", "  "], 0), (["Yes", "No", " "], 2)):
        with pytest.raises(DatasetError, match=f"Every one of the {len(probe)} texts is empty or whitespace"):
            TXRayTrainer(args=build_args(tmp_path, txray_skip_first_positions=skip), txray_dataset=probe, **common)
    # helper 167: every option of a message named as the trainer's field, not only the first
    with pytest.raises(ConfigurationError, match=r"^txray_max_tokens_per_batch=1 is smaller than txray_max_length=32"):
        build_args(tmp_path, txray_max_tokens_per_batch=1, txray_max_length=32)
    # helper 167: a probe text over spaCy's tagging limit, at the first snapshot (after training steps)
    with pytest.raises(DatasetError, match=r"Row 1 is 1,050,000 characters long, more than spaCy's limit"):
        TXRayTrainer(args=build_args(tmp_path, txray_features=["token", "pos"]),
                     txray_dataset=["A fine text .", "word " * 210000], **common)
    with pytest.raises(ConfigurationError, match="needs TXRayArguments"):
        from transformers import TrainingArguments

        TXRayTrainer(args=TrainingArguments(str(tmp_path), use_cpu=True, report_to="none"), txray_dataset=TEXTS,
                     **common)
    for bad in (dict(txray_steps=0), dict(txray_steps=-3), dict(txray_strategy="sometimes"), dict(txray_top_k=0),
                dict(txray_layers="first"), dict(txray_features=["token", "sentiment"]), dict(txray_site="attn")):
        with pytest.raises(ConfigurationError):
            build_args(tmp_path, **bad)
    with pytest.raises(ConfigurationError, match=r"registered with hf_txray.register_feature"):  # where users go
        build_args(tmp_path, txray_features=["tokn"])
    # helper 145: "no" was truthy (step-0 taken); text for an int option stayed text in the saved arguments
    with pytest.raises(ConfigurationError, match="txray_on_train_begin must be True or False, got 'no'"):
        build_args(tmp_path, txray_on_train_begin="no")
    assert build_args(tmp_path, txray_on_train_begin=np.bool_(False)).txray_on_train_begin is False
    # helper 381: its own check read a numpy dtype's kind: torch.tensor(True) ended in "AttributeError: 'torch.dtype'
    # object has no attribute 'kind'", and 1 was refused; it is a switch as every other (counts.check_switch)
    for value, expected in ((torch.tensor(True), True), (torch.tensor(False), False), (1, True), (0, False),
                            (np.int64(1), True)):
        begin = build_args(tmp_path, txray_on_train_begin=value).txray_on_train_begin
        assert begin is expected, (value, begin)
    for bad in (torch.tensor(2), 2, "yes", None):
        with pytest.raises(ConfigurationError, match=r"txray_on_train_begin must be True or False, got"):
            build_args(tmp_path, txray_on_train_begin=bad)
    as_text = build_args(tmp_path, txray_top_k="2", txray_pad_to_multiple_of="8")
    assert (as_text.txray_top_k, as_text.txray_pad_to_multiple_of) == (2, 8)
    assert json.loads(as_text.to_json_string())["txray_top_k"] == 2
    with pytest.raises(ConfigurationError, match="needs a probe corpus"):
        TXRayCallback()
    # helper 381: the callback's own switch was not checked: "no" (truthy) took the step-0 profile
    with pytest.raises(ConfigurationError, match=r"profile_on_train_begin must be True or False, got 'no' \(str\)"):
        TXRayCallback(TEXTS, features=("token",), profile_on_train_begin="no")
    assert TXRayCallback(TEXTS, features=("token",),
                         profile_on_train_begin=torch.tensor(False)).profile_on_train_begin is False



def test_a_probe_of_several_splits_names_the_fix_the_trainer_takes(tmp_path):
    """Helper 219: a DatasetDict (or a data folder) of several splits as the probe was refused with analyze's advice,
    "pass split=... to choose one", which neither TXRayTrainer nor TXRayCallback takes: name the fix they can follow."""
    import datasets

    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS}),
                                   "validation": datasets.Dataset.from_dict({"text": TEXTS[:2]})})
    folder = tmp_path / "probe"
    folder.mkdir()
    for name in ("train", "validation"):
        (folder / f"{name}.txt").write_text("\n".join(TEXTS))
    for probe in (splits, str(folder)):
        with pytest.raises(DatasetError, match=r"several splits \(train, validation\): the probe is one split: pass "
                                               r"that split \(TXRayTrainer's txray_dataset=") as caught:
            TXRayTrainer(model=build_classifier(), args=build_args(tmp_path), train_dataset=build_data(),
                         processing_class=bert_tokenizer(), txray_dataset=probe)
        assert "split=..." not in str(caught.value)
        with pytest.raises(DatasetError, match=r"probe_dataset=\.\.\.\), e\.g\. dataset_dict\['validation'\]"):
            TXRayCallback(probe)
    assert TXRayCallback(splits["validation"]).corpus["text"] == TEXTS[:2]  # the fix named works


def test_a_probe_without_a_text_column_names_the_trainers_field(tmp_path):
    """Helper 242: a probe (txray_dataset, or eval_dataset as probe) without a text column was refused with analyze's
    advice, 'pass text_column=... (CLI: --text-column ...)': neither is a TXRayArguments field or flag; the eval_dataset
    message then also said 'set txray_text_column' in the same breath. Both now name txray_text_column."""
    import datasets

    no_text = datasets.Dataset.from_dict({"label": [0, 1], "score": [0.5, 1.5]})
    wrong = datasets.Dataset.from_dict({"body_text": ["a b", "c d"], "title": ["x", "y"]})
    for kwargs in (dict(txray_dataset=no_text), dict(eval_dataset=no_text), dict(txray_dataset=wrong)):
        with pytest.raises(DatasetError) as caught:
            TXRayTrainer(model=build_classifier(), args=build_args(tmp_path), train_dataset=build_data(),
                         processing_class=bert_tokenizer(), **kwargs)
        message = str(caught.value)
        assert "pass txray_text_column=..." in message and "--txray_text_column" in message, message
        assert " text_column=" not in message and "--text-column" not in message, message
    with pytest.raises(DatasetError, match=r"pass text_column=\.\.\. \(CLI: --text-column"):
        TXRayCallback(no_text)  # the callback's own argument is text_column

def test_callback_with_unknown_layer_fails_before_the_first_step(tmp_path):
    from transformers import Trainer

    trainer = Trainer(model=build_classifier(), args=build_args(tmp_path), train_dataset=build_data(),
                      processing_class=bert_tokenizer())
    trainer.add_callback(TXRayCallback(TEXTS, trainer=trainer, layers=[7]))
    with pytest.raises(ConfigurationError, match="Layer 7 is out of range"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_hf_argument_parser_exposes_the_txray_flags(tmp_path, hf_argument_parser):
    parser = hf_argument_parser(TXRayArguments)
    help_text = parser.format_help()
    for flag in ("--txray_strategy", "--txray_steps", "--txray_layers", "--txray_site", "--txray_features",
                 "--txray_top_k", "--txray_max_samples", "--txray_text_column", "--txray_on_train_begin"):
        assert flag in help_text
    (args,) = parser.parse_args_into_dataclasses([
        "--output_dir", str(tmp_path), "--use_cpu", "--report_to", "none", "--txray_strategy", "epoch",
        "--txray_steps", "7", "--txray_layers", "0,-1", "--txray_features", "token", "word", "--txray_top_k", "2",
        "--txray_max_samples", "64", "--txray_text_column", "body", "--no_txray_on_train_begin"])
    assert (args.txray_strategy, args.txray_steps, args.txray_layers, args.txray_features, args.txray_top_k,
            args.txray_max_samples, args.txray_text_column, args.txray_on_train_begin) == \
           ("epoch", 7, "0,-1", ["token", "word"], 2, 64, "body", False)
    import hf_txray

    assert (hf_txray.TXRayArguments, hf_txray.TXRayTrainer) == (TXRayArguments, TXRayTrainer)  # lazy top-level names
    callback = TXRayCallback.from_args(args, TEXTS, text_column="text")
    assert callback.config.layers == [0, -1] and callback.strategy == "epoch" and not callback.profile_on_train_begin
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--txray_strategy", "sometimes"])



def test_hf_argument_parser_takes_none_for_optional_ints_and_comma_separated_features(tmp_path, hf_argument_parser):
    """argparse's int cannot read "None", and HfArgumentParser reads "token,pos" as one list item: both are what a
    user types (the CLI's own syntax), so they are parsed as the values they name, and bad text names its flag."""
    parser = hf_argument_parser(TXRayArguments)
    (args,) = parser.parse_args_into_dataclasses([
        "--output_dir", str(tmp_path), "--txray_max_samples", "None", "--txray_features", "token,pos",
        "--txray_max_length", "64", "--txray_stride", "none", "--txray_max_tokens_per_batch", "256",
        "--txray_num_workers", "0", "--txray_batch_size", "4"])
    assert args.txray_max_samples is None and args.txray_features == ["token", "pos"]
    assert (args.txray_max_length, args.txray_stride, args.txray_max_tokens_per_batch, args.txray_num_workers,
            args.txray_batch_size) == (64, None, 256, 0, 4)  # batch_size an int, not '4' (optional since today)
    callback = TXRayCallback.from_args(args, TEXTS, text_column="text")
    assert callback.config.features == ("token", "pos")
    assert callback.config.max_length == 64 and callback.config.max_tokens_per_batch == 256
    for flag, text in (("--txray_max_samples", "all"), ("--txray_max_length", "long"), ("--txray_top_k", "0"),
                       ("--txray_pad_to_multiple_of", "-1")):  # helper 121: these two were named without txray_
        with pytest.raises(ConfigurationError, match=f"^{flag[2:]}"):
            parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), flag, text])
    # numpy values from Python (helper 127: kept as np.int64, to_json_string raised a bare TypeError)
    args = TXRayArguments(output_dir=str(tmp_path), txray_top_k=np.int64(2), txray_steps=np.int64(5),
                          txray_layers=np.arange(2), txray_max_samples=np.int64(3))
    saved = json.loads(args.to_json_string())
    assert (saved["txray_top_k"], saved["txray_steps"], saved["txray_layers"], saved["txray_max_samples"]) == \
        (2, 5, [0, 1], 3)
    callback = TXRayCallback(TEXTS, steps=np.int64(5), max_samples=np.int64(3), layers=np.arange(2))
    assert callback.steps == 5 and type(callback.steps) is int and len(callback.corpus) == 3

def test_hf_argument_parser_takes_none_for_the_optional_text_options(tmp_path, hf_argument_parser):
    """Helper 454: the README says `None` gives an option whose default is none, yet `--txray_text_column None` kept
    the text 'None' on the field: the callback read None, but the eval_dataset probe looked for a column named 'None'
    ("TX-Ray needs probe text, and eval_dataset has none"); and `--txray_stack None` (or `none`, which `hf-txray
    --stack` takes) was refused by argparse's choices."""
    parser = hf_argument_parser(TXRayArguments)
    (args,) = parser.parse_args_into_dataclasses([
        "--output_dir", str(tmp_path), "--report_to", "none", "--use_cpu", "--txray_features", "token",
        "--txray_text_column", "None", "--txray_stack", "None"])
    assert args.txray_text_column is None and args.txray_stack is None
    data = build_data()
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=data, eval_dataset=data,
                           processing_class=bert_tokenizer())
    assert trainer.txray_callback.text_column == "text"
    for text in ("none", "null"):
        (args,) = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--txray_stack", text])
        assert args.txray_stack is None
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--txray_stack", "decoder"])
    assert args.txray_stack == "decoder"
    with pytest.raises(SystemExit):  # still one of the stacks, or none
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--txray_stack", "middle"])


def test_hf_argument_parser_refuses_a_blank_feature_and_says_how_to_pass_negative_layers(tmp_path, hf_argument_parser):
    """Helper 171: `--txray_features token "" pos` (an unset shell variable) dropped the blank item, which
    `token,,pos` no longer does; and the help lost its advice for `--txray_layers=-2,-1`, which HfArgumentParser
    (stock argparse) still needs: `--txray_layers -2,-1` is "expected one argument"."""
    parser = hf_argument_parser(TXRayArguments)
    with pytest.raises(ConfigurationError, match=r"^txray_features: \['token', '', 'pos'\] has an empty item"):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--txray_features", "token", "", "pos"])
    import dataclasses

    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TXRayArguments)}
    assert "takes '=': --txray_layers=-2,-1." in helps["txray_layers"]  # the help's text (wrapped at its hyphens)
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--txray_layers=-2,-1"])
    assert args.txray_options()["layers"] == [-2, -1]


# ----- two processes ----------------------------------------------------------------------------------------------
def test_two_process_training_gives_the_same_profiles_as_one(tmp_path):
    """torchrun, 2 gloo processes, batch 2 each, vs one process with batch 4 on the same sequential data."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)])}
    done = subprocess.run(torchrun(2, "txray_ddp_script.py", str(tmp_path / "ddp")), env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank-{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["files_written"] > 0 and ranks[1]["files_written"] == 0  # only args.should_save writes
    assert ranks[0]["fingerprints"] == ranks[1]["fingerprints"]  # every rank holds the same gathered profiles

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same intra-op threads as the workers, so the float sums are ordered alike
    try:
        single, _ = train(tmp_path, "single", dropout=0.0, **ddp_options(per_device_batch=4))
    finally:
        torch.set_num_threads(threads)
    assert list(single.txray_profiles) == ranks[0]["stages"]
    for stage, profile in single.txray_profiles.items():
        saved = Profile.from_pretrained(tmp_path / "ddp" / "txray" / "profiles" / stage)
        assert saved.meta.num_examples == NUM_TRAIN
        # step-0 is the same model profiled in 2 shards vs 1: the sharded, gathered sums must be exact
        assert_same_profile(saved, profile, exact=stage == "step-0")


def ddp_options(per_device_batch: int) -> dict:
    """Shared by this test and txray_ddp_script.py, so that 2 x batch 2 trains like 1 x batch 4.

    Dropout is 0 (each rank draws its own masks); the optimizer is SGD (Adam turns rounding differences of averaged
    gradients near zero into whole lr-sized steps); average_tokens_across_devices is off because the Trainer then
    multiplies the loss by the world size for models that take **kwargs, and BERT's classification loss is a
    per-rank mean, which would double the gradients under 2 processes.
    """
    return dict(per_device_train_batch_size=per_device_batch, max_steps=6, txray_steps=3, optim="sgd",
                learning_rate=0.5, average_tokens_across_devices=False)


def test_push_to_hub_uploads_model_and_txray_dataset(tmp_path, hub):
    """Trainer.push_to_hub (real HTTP to the local Hub server): the model repo gets txray/ and a card section,
    and `<hub_model_id>-txray` is an hf_txray results dataset equal to the trainer's profiles."""
    import hf_txray

    repo = f"{hub.username}/tiny-cls"
    args = build_args(tmp_path / "out", num_train_epochs=1, push_to_hub=True, hub_model_id=repo,
                      hub_strategy="end")  # token from HF_TOKEN
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the trainer's own filter goes in front of this one
        trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                               processing_class=bert_tokenizer(), txray_dataset=TEXTS)
        trainer.train()
        # what a snapshot being written beside a background push leaves until it finishes: never uploaded
        unfinished = [tmp_path / "out" / "txray" / ".timeline.csv.tmp-7", tmp_path / "out" / "txray" / "profiles" /
                      ".step-9.tmp-ab12" / "profile.json", tmp_path / "out" / "txray" / ".reports.old-7" / "x.json"]
        for path in unfinished:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("half")
        trainer.push_to_hub()
    assert not [w for w in caught if "data file" in str(w.message)]  # the txray/ tables belong with the model
    model_files = hub.server.repo_files(repo, repo_type="model")
    assert not [name for name in model_files if ".tmp-" in name or ".old-" in name], sorted(model_files)
    assert "model.safetensors" in model_files and any(f.startswith("txray/profiles/") for f in model_files)
    card = model_files["README.md"].decode()
    assert "## TX-Ray" in card and f"{repo}-txray" in card
    profiles, reports = hf_txray.load(f"{repo}-txray")
    assert set(profiles) == set(trainer.txray_profiles) and set(reports) == set(trainer.txray_reports)
    for stage, profile in trainer.txray_profiles.items():
        assert profiles[stage] == profile
    assert not hub.server.find_in_storage(hub.token)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and hub.token.encode() in p.read_bytes()]


def _trained_and_pushed(tmp_path, repo: str, max_steps: int) -> TXRayTrainer:
    """A classifier trained `max_steps` steps with a snapshot every 3, pushed to the model repo `repo` at the end."""
    args = build_args(tmp_path / "out", max_steps=max_steps, txray_steps=3, push_to_hub=True, hub_model_id=repo,
                      hub_strategy="end")
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=TEXTS)
    trainer.train()
    trainer.push_to_hub()
    return trainer


def test_snapshots_pushed_with_the_model_load_from_the_model_repo(tmp_path, hub):
    """Helper 259: the model card sends users to `txray/profiles/<stage>/` with `hf_txray.Profile.from_pretrained`,
    but from_pretrained("user/model", subfolder="txray/profiles/step-6") looked for a *dataset* repo of that id and
    said "Could not download the Hub dataset 'user/model': no such repo". With a subfolder, a model repo is looked in
    where no dataset repo of that id is found; the numbers loaded back are the trainer's."""
    from hf_txray import ArtifactNotFoundError, HubError, ProfileFormatError

    repo = f"{hub.username}/snapshots-cls"
    trainer = _trained_and_pushed(tmp_path, repo, max_steps=6)
    assert "txray/profiles/step-6/txray_artifact.json" in hub.server.repo_files(repo, repo_type="model")
    for stage, profile in trainer.txray_profiles.items():
        assert_same_profile(Profile.from_pretrained(repo, subfolder=f"txray/profiles/{stage}"), profile)
    report = TransferReport.from_pretrained(repo, subfolder="txray/reports/step-0__step-6")
    pd.testing.assert_frame_equal(report.neurons, trainer.txray_reports["step-0->step-6"].neurons)
    # messages name the model repo; a missing subfolder or repo is said as before
    with pytest.raises(ProfileFormatError, match=f"the Hub model repo '{repo}/txray/reports/step-0__step-6'"):
        Profile.from_pretrained(repo, subfolder="txray/reports/step-0__step-6")
    with pytest.raises(ArtifactNotFoundError, match="has no folder 'txray/profiles/step-9'"):
        Profile.from_pretrained(repo, subfolder="txray/profiles/step-9")
    with pytest.raises(HubError, match=f"Could not download the Hub dataset or model repo '{hub.username}/nothing'"):
        Profile.from_pretrained(f"{hub.username}/nothing", subfolder="txray/profiles/step-6")
    with pytest.raises(HubError, match=f"Could not download the Hub dataset '{repo}': no such repo"):
        Profile.from_pretrained(repo)  # a model repo's root holds no artifact: only a dataset repo is looked for


def test_snapshots_in_a_model_repo_load_beside_a_dataset_repo_of_the_same_id(tmp_path, hub):
    """A dataset repo of the model's id (results pushed with push_to_hub("user/model")) hid the model repo's
    snapshots: from_pretrained("user/model", subfolder="txray/profiles/step-3") found the dataset repo, which has no
    such folder, and said "has no folder" though the model repo holds it. The model repo is looked in then; a folder
    in neither is still said to be missing."""
    from hf_txray import ArtifactNotFoundError

    repo = f"{hub.username}/snapshots-beside-results"
    trainer = _trained_and_pushed(tmp_path, repo, max_steps=3)
    trainer.txray_profiles["step-0"].push_to_hub(repo)  # a dataset repo of the same id, its root a profile
    assert "txray/profiles/step-3/txray_artifact.json" not in hub.server.repo_files(repo, repo_type="dataset")
    assert_same_profile(Profile.from_pretrained(repo, subfolder="txray/profiles/step-3"),
                        trainer.txray_profiles["step-3"])
    assert_same_profile(Profile.from_pretrained(repo), trainer.txray_profiles["step-0"])  # the dataset repo's root
    with pytest.raises(ArtifactNotFoundError, match="has no folder 'txray/profiles/step-9'"):
        Profile.from_pretrained(repo, subfolder="txray/profiles/step-9")


def test_push_with_the_best_model_loaded_does_not_pin_the_last_snapshot_to_it(tmp_path, hub):
    """Helper 198: with load_best_model_at_end the pushed model holds the best checkpoint's weights, but push_to_hub
    pinned the last step's snapshot to it (the step matched), so `reproduce` of the results found 'different'
    credits (6 neurons' counts moved), blaming the results rather than the pin. The pin now needs the snapshot's
    weights to be the pushed ones; the same run without the best model loaded still pins it."""
    import hf_txray

    scores = iter([1.0, 0.0, 0.0])  # the first evaluation (step 2) is the best: checkpoint-2 is loaded at the end
    for name, load_best in (("best", True), ("last", False)):
        repo = f"{hub.username}/{name}-cls"
        args = build_args(tmp_path / name, max_steps=4, txray_steps=2, eval_strategy="steps", eval_steps=2,
                          save_strategy="steps", save_steps=2, load_best_model_at_end=load_best,
                          metric_for_best_model="score", push_to_hub=True, hub_model_id=repo, hub_strategy="end")
        trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                               eval_dataset=build_data(), processing_class=bert_tokenizer(), txray_dataset=TEXTS,
                               compute_metrics=lambda p: {"score": next(scores, 0.0)})
        trainer.train()
        trainer.push_to_hub()
        assert list(trainer.txray_profiles) == ["step-0", "step-2", "step-4"]
        # Helper 242: the card's table read as if the last row were the pushed model; it now names the snapshot of
        # the pushed weights (the best checkpoint's step here) and marks its row
        card = hub.server.repo_files(repo, repo_type="model")["README.md"].decode()
        this = "step-2" if load_best else "step-4"
        assert card.count("(this model)") == 2 and f"| **{this}** (this model) |" in card
        assert f"those profiled by snapshot `{this}`" in card and str(tmp_path) not in card
        assert ("best checkpoint's (`checkpoint-2`, by `score`)" in card) is load_best
        assert ("later snapshot (`step-4`) profiled weights this model does not hold" in card) is load_best
        pinned = hf_txray.load(f"{repo}-txray").profiles["step-4"].meta.provenance["model"]
        if load_best:
            assert trainer.state.best_model_checkpoint.endswith("checkpoint-2")
            assert pinned["kind"] == "object" and pinned["training_step"] == 4  # still the unsaved weights of step 4
            with pytest.raises(hf_txray.ReproducibilityError, match="still training \\(step 4\\)"):
                hf_txray.reproduce(f"{repo}-txray", stage="step-4", dataset=TEXTS)
            # helper 242: the snapshot of the pushed (best) weights was left unpinned; it is now pinned and reproduces
            best = hf_txray.load(f"{repo}-txray").profiles["step-2"].meta.provenance["model"]
            assert best["kind"] == "hub" and best["commit"] == hub.server.repo_commits(repo, repo_type="model")[0]
            assert hf_txray.reproduce(f"{repo}-txray", stage="step-2", dataset=TEXTS).verdict == "identical"
        else:
            assert pinned["kind"] == "hub" and pinned["commit"] == hub.server.repo_commits(repo, repo_type="model")[0]


def test_a_push_without_blocking_pins_the_pushed_snapshot_once_the_model_is_up(tmp_path, hub):
    """Helper 454: `push_to_hub(blocking=False)` returns the model upload's future, which has no commit yet: the
    snapshot of the pushed weights went to the results repo unpinned (an INFO line claimed that no snapshot was of
    the pushed weights), and `reproduce` refused it. The results now go up once the model's commit exists, pinned
    to it, and the future returned completes after both."""
    import concurrent.futures

    import hf_txray

    repo = f"{hub.username}/later-cls"
    args = build_args(tmp_path / "out", max_steps=2, txray_steps=2, push_to_hub=True, hub_model_id=repo,
                      hub_strategy="end")
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=TEXTS)
    trainer.train()
    future = trainer.push_to_hub(blocking=False)
    assert isinstance(future, concurrent.futures.Future)
    commit = future.result(timeout=120).oid
    assert commit == hub.server.repo_commits(repo, repo_type="model")[0]
    pinned = hf_txray.load(f"{repo}-txray").profiles["step-2"].meta.provenance["model"]
    assert pinned["kind"] == "hub" and pinned["commit"] == commit
    assert trainer.txray_profiles["step-2"].meta.provenance["model"]["commit"] == commit


def test_a_results_push_pending_at_exit_is_finished_before_the_interpreter_shuts_down(tmp_path):
    """Helper 457: with `push_to_hub(blocking=False)` the results are pushed in the model upload's worker once that
    upload is done; a script that ended right after the call (the model's upload still finishes: the pool's worker
    is joined at exit) lost the results without a word: the interpreter's shutdown had begun, and datasets'
    thread pool, which the results push's load check uses, refused to start ("cannot schedule new futures after
    interpreter shutdown"; the results repo was never created). Run in a fresh interpreter: a slow "upload" in a
    thread pool, then a step that needs a new pool, as the results push does."""
    script = tmp_path / "exit_script.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from concurrent.futures import ThreadPoolExecutor
        from hf_txray.trainer.trainer import _then

        def step(value):
            with ThreadPoolExecutor(1) as pool:
                pool.submit(lambda: 1).result()
            open({str(tmp_path / "pushed")!r}, "w").write(value)

        _then(ThreadPoolExecutor(1).submit(lambda: time.sleep(0.5) or "oid"), step)
        """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "pushed").read_text() == "oid", done.stderr[-4000:]


def test_cancelling_a_push_without_blocking_cancels_the_model_upload_and_the_results_push():
    """Helper 457: the future `push_to_hub(blocking=False)` returns follows the model upload's; its `cancel()` said
    True while the upload still waited, yet the model went up, the results were pushed after it, and completing the
    cancelled future logged an InvalidStateError. It now cancels the upload as that future's own `cancel()` does,
    and says False once the upload runs."""
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    from hf_txray.trainer.trainer import _then

    gate, ran = threading.Event(), []
    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(gate.wait, 10)
            upload = pool.submit(lambda: "oid")
            future = _then(upload, ran.append)
            assert isinstance(future, Future) and future.cancel() and future.cancelled() and upload.cancelled()
            later = _then(pool.submit(lambda: "oid"), ran.append)
        finally:
            gate.set()
        assert later.result(timeout=10) == "oid" and not later.cancel() and ran == ["oid"]


def test_results_follow_the_model_repos_visibility_and_branch(tmp_path, hub, caplog):
    """Helper 116: with a private model repo (created beforehand, hub_private_repo unset) the results dataset, which
    holds the probe texts' snippets, was created public; and a push to a branch put the results on main, over those
    of main's model."""
    import hf_txray

    repo = f"{hub.username}/secret-cls"
    hub.api.create_repo(repo, private=True)
    args = build_args(tmp_path / "out", num_train_epochs=1, push_to_hub=True, hub_model_id=repo, hub_strategy="end")
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=TEXTS)
    trainer.train()
    trainer.push_to_hub()
    results = f"{repo}-txray"
    assert args.hub_private_repo is None and hub.api.dataset_info(results).private
    main_commit = hub.api.dataset_info(results).sha
    hub.api.create_branch(repo, branch="dev")
    trainer.push_to_hub(revision="dev")
    refs = {b.name: b.target_commit for b in hub.api.list_repo_refs(results, repo_type="dataset").branches}
    assert refs["main"] == main_commit and refs["dev"] != main_commit  # main's results untouched
    on_dev = hf_txray.load(results, revision="dev").profiles
    assert set(on_dev) == set(trainer.txray_profiles)
    assert on_dev["step-6"] == trainer.txray_profiles["step-6"]
    # Helper 119: private=False (or hub_private_repo=False) on a private model made its results public, silently
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        assert trainer._results_private(False, hub.token) is True
    assert f"the model repo {repo} is private, so its results repo {results} is created private too" in caplog.text
    trainer.hub_model_id = f"{hub.username}/open-cls"  # a public model repo: public results, as asked
    hub.api.create_repo(trainer.hub_model_id)
    assert trainer._results_private(False, hub.token) is False and trainer._results_private(None, hub.token) is False
    assert trainer._results_private(True, hub.token) is True


def test_pushes_of_output_dir_name_local_paths_as_cards_do(tmp_path, hub, monkeypatch):
    """The Trainer uploads output_dir itself (at the end and, with hub_strategy, at every save): the txray/ files it
    sends name a local probe file as a results push does (never its full path), while the local snapshots keep the
    full path (resume and reproduce read it); the staged copies are gone after the uploads."""
    from hf_txray.trainer.push import STAGING_PREFIX

    probe = tmp_path / "private-data" / "probe.txt"
    probe.parent.mkdir()
    probe.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    repo = f"{hub.username}/tiny-cls-paths"
    args = build_args(out, num_train_epochs=1, push_to_hub=True, hub_model_id=repo, hub_strategy="every_save",
                      save_strategy="steps", save_steps=3)
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=str(probe))
    trainer.train()  # checkpoint pushes (run as futures) at steps 3 and 6
    trainer.push_to_hub()
    secret = str(tmp_path).encode()
    local = [p for p in (out / "txray").rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert local  # the local snapshots name the probe file whole: the check below is not vacuous
    files = hub.server.repo_files(repo, repo_type="model")
    pushed = {name: data for name, data in files.items() if name.startswith("txray/")}
    assert any(name.startswith("txray/profiles/step-6/") for name in pushed)
    assert set(pushed) >= {p.relative_to(out).as_posix() for p in local}
    assert not [name for name, data in pushed.items() if secret in data]
    assert any(b"probe.txt" in data for data in pushed.values())  # named by its last component instead
    assert not [name for name in files if STAGING_PREFIX in name]
    assert not list(out.glob(f"{STAGING_PREFIX}*"))
    # the local folder is unchanged: resuming and reproduce still read the full path
    assert Profile.from_pretrained(out / "txray" / "profiles" / "step-6").meta.dataset_id == str(probe)
    # a file system without hard links: the staged copy links symbolically, never copies the weights
    from hf_txray.trainer.push import stage_public_output

    def no_hard_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_hard_links)
    staging = stage_public_output(out, ["_*", "checkpoint-*"])
    staged = staging / "upload"
    try:
        assert (staged / "model.safetensors").is_symlink()
        assert (staged / "model.safetensors").resolve() == (out / "model.safetensors").resolve()
        rewritten = [p for p in (staged / "txray").rglob("*") if p.is_file() and not p.is_symlink()]
        assert rewritten and not [p for p in rewritten if secret in p.read_bytes()]
        assert not list(staged.glob("checkpoint-*")) and not list(staged.glob("_*"))
    finally:
        shutil.rmtree(staging)
    assert all(secret in p.read_bytes() for p in local)  # rewriting the staged copy never wrote through a link


def test_public_uploads_without_transformers_hf_api_warn_and_push_as_is(tmp_path, monkeypatch, caplog):
    """A transformers whose Trainer no longer uploads through transformers.trainer.hf_api: the push is not broken,
    and the log says its txray/ files name local paths."""
    import logging

    import transformers.trainer as trainer_module

    from hf_txray.trainer.push import public_output_uploads

    monkeypatch.delattr(trainer_module, "hf_api")
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        with public_output_uploads(tmp_path):
            pass
    assert "name local paths whole" in caplog.text
    assert not hasattr(trainer_module, "hf_api")


def test_pushes_remove_the_txray_files_a_resume_removed_from_output_dir(tmp_path, hub):
    """upload_folder only adds files: after a resume from an earlier checkpoint pruned the abandoned run's profiles and
    reports from output_dir (step-6, step-8), the model repo kept them beside the new timeline (0, 3, 5), read as this
    run's. The pushes of output_dir now remove the repo's txray/ files that output_dir no longer holds."""
    repo, out = f"{hub.username}/resumed-cls", tmp_path / "out"
    options = dict(txray_steps=3, save_strategy="steps", save_steps=4, max_steps=8, push_to_hub=True, hub_model_id=repo,
                   hub_strategy="every_save")
    kwargs = dict(train_dataset=build_data(), processing_class=bert_tokenizer(), txray_dataset=TEXTS)
    TXRayTrainer(model=build_classifier(), args=build_args(out, **options), **kwargs).train()

    def pushed() -> set[str]:
        return {name for name in hub.server.repo_files(repo, repo_type="model") if name.startswith("txray/")}

    assert {"txray/profiles/step-8/README.md", "txray/reports/step-6__step-8/README.md"} <= pushed()
    resumed = TXRayTrainer(model=build_classifier(), args=build_args(out, **{**options, "max_steps": 5}), **kwargs)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-4"))
    resumed.push_to_hub()
    local = {str(p.relative_to(out)) for p in (out / "txray").rglob("*") if p.is_file()}
    assert pushed() == local
    assert {name.split("/")[2] for name in pushed() if name.startswith("txray/profiles/")} == {"step-0", "step-3",
                                                                                             "step-5"}
    assert "model.safetensors" in hub.server.repo_files(repo, repo_type="model")  # nothing else is removed


def test_a_hub_token_in_the_arguments_reaches_no_file_log_or_upload(tmp_path, hub, monkeypatch, caplog):
    """transformers pickles TrainingArguments whole into training_args.bin (every checkpoint, the final save and the
    checkpoint pushes' output_dir), which pushes upload: the token given as hub_token was in all three checkpoint
    and output files, in the clear. It is now written as None, while the pushes still authenticate with it (no
    HF_TOKEN here) and a resume from a checkpoint works."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    repo, secret = f"{hub.username}/token-cls", hub.token.encode()
    out = tmp_path / "out"
    args = build_args(out, max_steps=4, txray_steps=2, save_strategy="steps", save_steps=2, push_to_hub=True,
                      hub_model_id=repo, hub_strategy="checkpoint", hub_token=hub.token)
    with caplog.at_level(logging.DEBUG):
        trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                               processing_class=bert_tokenizer(), txray_dataset=TEXTS)
        trainer.train()
        trainer.push_to_hub()
        assert trainer.args is args and args.hub_token == hub.token  # the swap is undone
        resumed = TXRayTrainer(model=build_classifier(), args=build_args(out, max_steps=4, txray_steps=2,
                                                                          save_strategy="steps", save_steps=2),
                               train_dataset=build_data(), processing_class=bert_tokenizer(), txray_dataset=TEXTS)
        resumed.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    assert resumed.state.global_step == 4 and list(resumed.txray_profiles) == ["step-0", "step-2", "step-4"]
    saved = [out / "training_args.bin", out / "checkpoint-2" / "training_args.bin"]
    for path in saved:
        loaded = torch.load(path, weights_only=False)
        assert loaded.hub_token is None and loaded.hub_model_id == repo and loaded.txray_steps == 2
    assert not [p for p in out.rglob("*") if p.is_file() and secret in p.read_bytes()]
    files = hub.server.repo_files(repo, repo_type="model")
    assert {"training_args.bin", "last-checkpoint/training_args.bin", "model.safetensors"} <= set(files)
    assert not [name for name, data in files.items() if secret in data]
    assert not hub.server.find_in_storage(hub.token)
    assert hub.token not in caplog.text


def test_a_tpu_save_writes_the_arguments_without_the_hub_token(tmp_path, monkeypatch):
    """On TPUs, transformers' save_model calls save_tpu_checkpoint, which pickles the arguments into
    training_args.bin itself (not through Trainer._save): the token was written there in the clear. No TPU here:
    transformers' own save_tpu_checkpoint runs with torch_xla's few calls it makes answered on one process."""
    import types

    import transformers.trainer as hf_trainer

    xla_model = types.ModuleType("torch_xla.core.xla_model")
    xla_model.mark_step = lambda: None
    xla_model.is_master_ordinal = lambda local=True: True
    xla_model.rendezvous = lambda tag: None
    xla_model._maybe_convert_to_cpu = lambda state: state
    xla_model.save = torch.save
    for name, module in {"torch_xla": types.ModuleType("torch_xla"), "torch_xla.core": types.ModuleType(
            "torch_xla.core"), "torch_xla.core.xla_model": xla_model}.items():
        monkeypatch.setitem(sys.modules, name, module)
    secret = "hf_tpu_secret_never_written"
    args = build_args(tmp_path / "out", hub_token=secret)
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=TEXTS)
    monkeypatch.setattr(hf_trainer, "is_torch_xla_available", lambda *a, **k: True)
    trainer.save_model(str(tmp_path / "saved"))
    loaded = torch.load(tmp_path / "saved" / "training_args.bin", weights_only=False)
    assert loaded.hub_token is None and loaded.output_dir == args.output_dir
    assert trainer.args is args and args.hub_token == secret
    assert not [p for p in (tmp_path / "saved").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_hyperparameter_search_is_refused_while_profiles_are_taken(tmp_path):
    """Every trial of a search trains in the same output_dir: each trial's txray/ folder replaced the previous one's
    (helper 177). Refused before any trial; with txray_strategy='no' the call is the Trainer's own."""
    trainer = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path), train_dataset=build_data(),
                           eval_dataset=build_data(), processing_class=bert_tokenizer(), model_init=None)
    with pytest.raises(ConfigurationError, match="txray_strategy='no'"):
        trainer.hyperparameter_search(n_trials=2)
    assert not (tmp_path / "txray").exists()
    plain = TXRayTrainer(model=build_classifier(), args=build_args(tmp_path / "plain", txray_strategy="no"),
                         train_dataset=build_data(), eval_dataset=build_data(), processing_class=bert_tokenizer())
    with pytest.raises(Exception) as raised:  # the Trainer's own refusal here (no model_init, no search backend)
        plain.hyperparameter_search(n_trials=2)
    assert not isinstance(raised.value, ConfigurationError) or "txray" not in str(raised.value)


def test_model_card_section_says_when_no_snapshot_is_of_the_best_model():
    """Helper 242: with load_best_model_at_end the card's model is the best checkpoint's; where no snapshot was taken
    at its step, the section says that no row describes it (the last one read as if it did), naming the checkpoint
    by its folder name, never its local path."""
    from types import SimpleNamespace

    from hf_txray.trainer import model_card_section

    timeline = pd.DataFrame({"stage": ["step-0", "step-2", "step-4"], "step": [0, 2, 4], "epoch": [0.0, 0.5, 1.0],
                             "active_share": [0.5, 0.5, 0.5]})
    callback = SimpleNamespace(timeline_frame=lambda: timeline, _profiler=None, corpus=["a", "b"],
                               config=SimpleNamespace(features=("token",), site="mlp", top_k=1))
    section = model_card_section(callback, best_checkpoint="/home/alice/run/checkpoint-3", best_metric="eval_f1")
    assert "best checkpoint's (`checkpoint-3`, by `eval_f1`)" in section and "alice" not in section
    assert "no snapshot was taken of them (snapshots at steps 0, 2, 4)" in section
    assert "(this model)" not in section
    assert "this model" not in model_card_section(callback)  # nothing known of the weights: nothing claimed


def test_model_card_section_shows_a_user_feature_name_as_text():
    """Helper 234: a user feature's name went into the TX-Ray section as it was: in the table header a '|' split the
    header into more cells than the delimiter row has, so the table did not render at all; '<img src=x>' rendered as
    an image, '*x*' in italics, and a backtick ended its one-backtick code span. Rendered (CommonMark with tables),
    the table has its 7 columns and the name reads as named in the list, the headers and the figure's alt text."""
    import html
    import re
    from types import SimpleNamespace

    markdown_it = pytest.importorskip("markdown_it")
    from hf_txray.trainer import model_card_section

    name = "<img src=x>|*x*`y`_z_"
    timeline = pd.DataFrame({"stage": ["step-0", "step-5"], "epoch": [0.0, 1.0], "active_share": [0.5, 0.5],
                             f"vs_first/mean_hellinger_{name}": [0.0, 0.7],
                             f"vs_first/mean_length_shift_{name}": [0.0, -1.0],
                             "vs_first/share_lost": [0.0, 0.1], "vs_first/share_gained": [0.0, 0.1]})
    callback = SimpleNamespace(timeline_frame=lambda: timeline, _profiler=None, corpus=["a", "b"],
                               config=SimpleNamespace(features=("token", name), site="mlp", top_k=1))
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(model_card_section(callback))
    assert "<em>" not in page and "<img src=x" not in page
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    assert len(rows) == 3 and all(len(re.findall(r"<t[hd]", row)) == 7 for row in rows)
    assert f"mean Hellinger ({name})" in html.unescape(page) and f"<code>{html.escape(name, quote=False)}</code>" in page
    assert f'alt="{html.escape(name)} mass share"' in page and "0.700" in page


def test_timeline_plot_gives_each_of_twelve_layers_its_own_colour(monkeypatch, tmp_path):
    """hellinger_by_layer.png drew its lines in matplotlib's ten-colour cycle: with 12 layers (BERT-base), layers 0
    and 10, and 1 and 11, had one colour and one marker, so the legend could not tell them apart."""
    import types

    from matplotlib.colors import to_rgba

    import hf_txray.trainer.plots as trainer_plots

    figures = []
    monkeypatch.setattr(trainer_plots, "save_figure", lambda figure, path, **_: figures.append(figure) or path)
    layers = list(range(12))
    timeline = pd.DataFrame({"step": [0, 5, 10]} | {
        f"vs_{ref}/layer_{layer}/mean_hellinger_token": [None, 0.1 + layer / 100, 0.2 + layer / 100]
        for ref in ("first", "previous") for layer in layers})
    latest = types.SimpleNamespace(feature_types=["token"], layers=layers, meta=types.SimpleNamespace(feature_kinds={}))
    trainer_plots.write_plots(timeline, latest, tmp_path)
    for ax in figures[0].axes:
        lines = [line for line in ax.lines if line.get_label().startswith("layer")]
        assert [line.get_label() for line in lines] == [f"layer {layer}" for layer in layers]
        assert len({(to_rgba(line.get_color()), line.get_marker()) for line in lines}) == 12
        np.testing.assert_allclose(np.asarray(lines[11].get_ydata(), dtype=float), [np.nan, 0.21, 0.31])


def test_a_notebook_trainer_prints_each_snapshots_headline(tmp_path, capsys, monkeypatch):
    """Helper 428: in Jupyter the Trainer shows its progress with transformers' NotebookProgressCallback (in place of
    ProgressCallback), whose table shows only the loss and evaluation metrics; the headline went to the console
    callbacks only, so a notebook showed no snapshot's headline at all (the README promises one per snapshot). It is
    printed there as PrinterCallback prints. The notebook callback's module imports IPython: a stand-in of the same
    module and name is what the Trainer picks here."""
    import types

    import transformers.trainer
    from transformers import TrainerCallback

    class NotebookProgressCallback(TrainerCallback):  # as transformers': the loss, else nothing
        def on_log(self, args, state, control, logs=None, **kwargs):
            if "loss" in logs:
                print(f"table row: step {state.global_step} loss {logs['loss']:.3f}")

    module = types.ModuleType("transformers.utils.notebook")
    module.NotebookProgressCallback = NotebookProgressCallback
    monkeypatch.setitem(sys.modules, "transformers.utils.notebook", module)
    monkeypatch.setattr(transformers.trainer, "DEFAULT_PROGRESS_CALLBACK", NotebookProgressCallback)
    trainer, _ = train(tmp_path, num_train_epochs=1, disable_tqdm=False)
    kinds = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert "NotebookProgressCallback" in kinds and "ProgressCallback" not in kinds and "PrinterCallback" not in kinds
    out = capsys.readouterr().out.splitlines()
    headlines = [line for line in out if "txray/" in line]
    assert len(headlines) == 2, out  # steps 5 and 6 (the last): one line each, the headline only
    assert all("'txray/mean_hellinger_token'" in line and "vs_previous" not in line for line in headlines)
    assert sum(line.startswith("table row") for line in out) == 6  # the loss rows as before
