"""Pinned inputs and `reproduce`, through the real Hub clients over HTTP (tests/hub_server.py on 127.0.0.1).

`analyze(model_id, dataset_id)` downloads a tiny model repo and a parquet dataset repo; every profile records the
commits (or content hashes) it was computed from; `reproduce` recomputes pushed results and compares.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import os
import shutil

import datasets
import numpy as np
import pandas as pd
import pytest
from huggingface_hub import constants

import hf_txray
import hf_txray.hashes
from hf_txray import ConfigurationError, DatasetError, ModelError, ProfileFormatError, ReproducibilityError
from hf_txray.cli import main as cli_main
from hf_txray.reproduce import compare_numbers

try:
    from .hub_fixtures import hub, hub_server, save_parquet_dataset, upload_folder_as  # noqa: F401
    from .models import SAMPLE_TEXTS, bert_tokenizer, bpe_tokenizer, save_tiny_model, tiny_llama_lm
except ImportError:
    from hub_fixtures import hub, hub_server, save_parquet_dataset, upload_folder_as  # noqa: F401
    from models import SAMPLE_TEXTS, bert_tokenizer, bpe_tokenizer, save_tiny_model, tiny_llama_lm

OPTIONS = dict(features=("token",), show_progress=False, batch_size=4)
TEXTS_V1 = [t for t in SAMPLE_TEXTS if t.strip()]
TEXTS_V2 = ["A different corpus now.", "Nothing like the first one", "third line here"]


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def numbers_equal(a: hf_txray.Profile, b: hf_txray.Profile) -> bool:
    return (np.array_equal(a.neuron_mass, b.neuron_mass) and np.array_equal(a.neuron_count, b.neuron_count)
            and all(a.tables[ft].equals(b.tables[ft]) for ft in a.tables))


@pytest.fixture
def repos(hub, tmp_path):
    """A model repo (main: seed 0; branch `dev`: seed 1) and a dataset repo (tag `v1`, then main moved on)."""
    model, dataset = f"{hub.username}/tiny-bert", f"{hub.username}/texts"
    hub.server.lfs_patterns = ["*.safetensors", "*.parquet"]  # as the Hub's default .gitattributes
    main_commit = upload_folder_as(hub, model, save_tiny_model(tmp_path / "m0", seed=0))
    dev_commit = upload_folder_as(hub, model, save_tiny_model(tmp_path / "m1", seed=1), revision="dev")
    v1 = upload_folder_as(hub, dataset, save_parquet_dataset(tmp_path / "d1", {"train": TEXTS_V1}),
                          repo_type="dataset")
    hub.api.create_tag(dataset, tag="v1", repo_type="dataset")
    v2 = upload_folder_as(hub, dataset, save_parquet_dataset(tmp_path / "d2", {"train": TEXTS_V2}),
                          repo_type="dataset")
    return dataclasses.make_dataclass("Repos", ["model", "dataset", "main", "dev", "v1", "v2", "folder"])(
        model, dataset, main_commit, dev_commit, v1, v2, tmp_path)


def set_offline(monkeypatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ----- analyze(model_id, dataset_id) over HTTP --------------------------------------------------------------------
def test_hub_ids_branch_and_tag_are_pinned_and_match_the_local_files(repos, hub):
    profile = hf_txray.analyze(repos.model, repos.dataset, revision="dev", dataset_revision="v1", **OPTIONS)
    record = profile.meta.provenance
    assert record["model"] | {"files": None} == {
        "kind": "hub", "id": repos.model, "requested_revision": "dev", "commit": repos.dev, "files": None,
        "content_hash": None, "training_step": None, "base_model": None, "adapters": None}
    weights = hub.server.repo_files(repos.model, "model", repos.dev)["model.safetensors"]
    assert record["model"]["files"]["model.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert record["model"]["files"]["config.json"] == git_blob_id(
        hub.server.repo_files(repos.model, "model", repos.dev)["config.json"])
    assert profile.meta.revision == repos.dev
    data = record["dataset"]
    assert (data["kind"], data["commit"], data["requested_revision"], data["split"], data["text_column"],
            data["num_texts"]) == ("hub", repos.v1, "v1", "train", "text", len(TEXTS_V1))
    parquet = hub.server.repo_files(repos.dataset, "dataset", "v1")["data/train.parquet"]
    assert data["data_files"] == {"data/train.parquet": hashlib.sha256(parquet).hexdigest()}  # LFS: sha256
    assert record["options"]["batch_size"] == 4 and record["options"]["features"] == ["token"]
    assert record["runtime"]["dtype"] == "float32" and record["versions"]["hf_txray"] == hf_txray.__version__

    # The same numbers as the same files read locally: the branch's weights and the tag's texts.
    local = hf_txray.analyze(str(repos.folder / "m1"), TEXTS_V1, **OPTIONS)
    assert numbers_equal(profile, local)
    assert not numbers_equal(profile, hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v1", **OPTIONS))
    latest = hf_txray.analyze(repos.model, repos.dataset, **OPTIONS)  # main of both
    assert latest.meta.provenance["dataset"]["commit"] == repos.v2 and latest.meta.num_examples == len(TEXTS_V2)
    assert latest.meta.provenance["model"]["commit"] == repos.main

    out = repos.folder / "cli"
    assert cli_main(["analyze", repos.model, repos.dataset, "--revision", "dev", "--dataset-revision", "v1",
                     "--features", "token", "--batch-size", "4", "--out", str(out)]) == 0
    from_cli = hf_txray.Profile.from_pretrained(out)
    assert numbers_equal(from_cli, profile) and from_cli.meta.provenance["dataset"]["commit"] == repos.v1


def test_second_run_downloads_nothing_and_offline_runs_from_the_cache(repos, hub, monkeypatch):
    first = hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v1", **OPTIONS)
    assert any(r.path.endswith("model.safetensors") for r in hub.server.downloads())
    before = len(hub.server.requests)
    second = hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v1", **OPTIONS)
    assert hub.server.downloads(before) == []
    assert numbers_equal(first, second) and second.meta.provenance == first.meta.provenance

    set_offline(monkeypatch)
    before = len(hub.server.requests)
    offline = hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v1", **OPTIONS)
    assert hub.server.requests[before:] == []
    assert numbers_equal(first, offline)
    model, data = offline.meta.provenance["model"], offline.meta.provenance["dataset"]
    assert (model["commit"], data["commit"], data["texts_hash"]) == (
        repos.main, repos.v1, first.meta.provenance["dataset"]["texts_hash"])
    with pytest.raises(ModelError, match="not in the Hub cache"):
        hf_txray.analyze(repos.model, repos.dataset, revision="dev", **OPTIONS)  # never downloaded


def test_a_misspelt_local_folder_is_named_beside_the_hub_error(hub, tmp_path, monkeypatch):
    """A bare name that is neither a Hub repo nor a local path, one letter away from a local folder: the error says
    which folder was probably meant, online and offline."""
    (tmp_path / "my_model").mkdir()
    monkeypatch.chdir(tmp_path)
    hint = r"It is not a local path either\. Did you mean 'my_model'\?"
    with pytest.raises(ModelError, match=rf"'my_modle'.*{hint}"):  # the test server's 404 has no error code
        hf_txray.analyze("my_modle", TEXTS_V1, **OPTIONS)
    set_offline(monkeypatch)
    with pytest.raises(ModelError, match=rf"not in the Hub cache\. {hint}"):
        hf_txray.analyze("my_modle", TEXTS_V1, **OPTIONS)
    with pytest.raises(ModelError) as far:
        hf_txray.analyze("zzzzzz", TEXTS_V1, **OPTIONS)
    assert "Did you mean" not in str(far.value)


def test_private_repo_needs_a_token(hub, tmp_path, monkeypatch):
    model = f"{hub.username}/private-bert"
    upload_folder_as(hub, model, save_tiny_model(tmp_path / "m"), private=True)
    profile = hf_txray.analyze(model, TEXTS_V1, **OPTIONS)  # HF_TOKEN is set by the fixture
    assert profile.meta.provenance["model"]["kind"] == "hub"
    assert hub.token not in repr(profile.meta.to_dict())

    monkeypatch.delenv("HF_TOKEN")
    before = len(hub.server.requests)
    with pytest.raises(ModelError, match="private.*token"):
        hf_txray.analyze(model, TEXTS_V1, **OPTIONS)
    assert hub.server.downloads(before) == []
    explicit = hf_txray.analyze(model, TEXTS_V1, token=hub.token, **OPTIONS)
    assert numbers_equal(profile, explicit)


def test_hub_access_keywords_in_model_kwargs_are_never_recorded(tmp_path):
    """Helper 298: model_kwargs={"proxies": {"https": "http://bob:hunter2@proxy:3128"}} (from_pretrained's proxies,
    which change no number) was recorded in provenance["runtime"]["model_kwargs"] with the proxy's password, saved and
    pushed as it was (a pushed record only shortens paths); like a token in model_kwargs it is dropped now, and the
    stage still reproduces."""
    proxy = {"https": "http://bob:hunter2@proxy.invalid:3128"}
    profile = hf_txray.analyze(str(save_tiny_model(tmp_path / "m")), TEXTS_V1, stage="s", **OPTIONS,
                               model_kwargs={"proxies": proxy, "token": "hf_not_recorded", "attn_implementation": "eager"})
    assert profile.meta.provenance["runtime"]["model_kwargs"] == {"attn_implementation": "eager"}
    assert "hunter2" not in repr(profile.meta.to_dict()) and "hf_not_recorded" not in repr(profile.meta.to_dict())
    assert hf_txray.reproduce_profile(profile, dataset=TEXTS_V1).identical


def test_dataset_with_several_configs_and_splits(hub, tmp_path):
    folder = tmp_path / "multi"
    save_parquet_dataset(folder, {"train": TEXTS_V1, "test": TEXTS_V2}, config="alpha")
    save_parquet_dataset(folder, {"train": TEXTS_V2[:2], "test": TEXTS_V1[:2]}, config="beta")
    (folder / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: alpha\n  data_files:\n  - split: train\n    path: alpha/train.parquet\n"
        "  - split: test\n    path: alpha/test.parquet\n  default: true\n"
        "- config_name: beta\n  data_files:\n  - split: train\n    path: beta/train.parquet\n"
        "  - split: test\n    path: beta/test.parquet\n---\n")
    dataset, model = f"{hub.username}/multi", str(save_tiny_model(tmp_path / "m"))
    upload_folder_as(hub, dataset, folder, repo_type="dataset")

    profile = hf_txray.analyze(model, dataset, dataset_config="beta", split="test", **OPTIONS)
    data = profile.meta.provenance["dataset"]
    assert (data["config"], data["split"], list(data["data_files"])) == ("beta", "test", ["beta/test.parquet"])
    assert numbers_equal(profile, hf_txray.analyze(model, TEXTS_V1[:2], **OPTIONS))
    default = hf_txray.analyze(model, dataset, split="train", **OPTIONS)
    assert default.meta.provenance["dataset"]["config"] == "alpha" and default.meta.num_examples == len(TEXTS_V1)

    with pytest.raises(DatasetError, match="Config 'gamma' not found.*alpha, beta"):
        hf_txray.analyze(model, dataset, dataset_config="gamma", split="train", **OPTIONS)
    with pytest.raises(DatasetError, match="Split 'validation' not found.*test, train|train, test"):
        hf_txray.analyze(model, dataset, dataset_config="beta", split="validation", **OPTIONS)
    with pytest.raises(DatasetError, match="several splits"):
        hf_txray.analyze(model, dataset, dataset_config="beta", **OPTIONS)

    # A slice of a split, as datasets reads it: the split's files are pinned, the slice is recorded and reproduced.
    sliced = hf_txray.analyze(model, dataset, split="train[1:3]", **OPTIONS)
    data = sliced.meta.provenance["dataset"]
    assert (data["config"], data["split"], list(data["data_files"])) == ("alpha", "train[1:3]", ["alpha/train.parquet"])
    assert numbers_equal(sliced, hf_txray.analyze(model, TEXTS_V1[1:3], **OPTIONS))
    assert _reproduce_one(sliced, tmp_path).verdict == "identical"
    before = len(hub.server.requests)
    with pytest.raises(DatasetError, match="Split 'dev' not found.*test, train|train, test"):
        hf_txray.analyze(model, dataset, split="dev[:2]", **OPTIONS)
    with pytest.raises(DatasetError, match=r"'\[two\]' is not a slice datasets reads"):
        hf_txray.analyze(model, dataset, split="train[two]", **OPTIONS)
    with pytest.raises(DatasetError, match="slices a stream.*split='train' with num_samples"):
        hf_txray.analyze(model, dataset, split="train[:2]", streaming=True, **OPTIONS)
    assert not [r for r in hub.server.requests[before:] if r.path.endswith(".parquet")]  # refused before downloads


def test_bad_revisions_fail_before_any_download(repos, hub):
    before = len(hub.server.requests)
    with pytest.raises(ModelError, match="Revision 'nope' does not exist.*dev, main"):
        hf_txray.analyze(repos.model, repos.dataset, revision="nope", **OPTIONS)
    with pytest.raises(DatasetError, match="Revision 'v9' does not exist.*v1"):
        hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v9", **OPTIONS)
    with pytest.raises(DatasetError, match="Config 'nope' not found"):
        hf_txray.analyze(repos.model, repos.dataset, dataset_config="nope", **OPTIONS)
    with pytest.raises(DatasetError, match="apply to Hub datasets only"):
        hf_txray.analyze(repos.model, TEXTS_V1, dataset_revision="v1", **OPTIONS)
    assert hub.server.downloads(before) == []


# ----- reproduce -------------------------------------------------------------------------------------------------
def test_reproduce_pushed_results_repo_is_identical(repos, hub, tmp_path, capsys):
    profile = hf_txray.analyze(repos.model, repos.dataset, revision="dev", dataset_revision="v1",
                               features=("token", "pos"), show_progress=False, stage="pretrained")
    results = f"{hub.username}/tiny-txray"
    hf_txray.push_to_hub(results, profiles=[profile])
    card = hub.server.repo_files(results)["README.md"].decode()
    assert "## Reproduce" in card and f"hf-txray reproduce {results}" in card
    # helper 268: the pinned commits were read from this Hub (HF_ENDPOINT): the links go there, not to huggingface.co,
    # where those commits do not exist
    assert f"({hub.url}/{repos.model}/tree/{repos.dev})" in card
    assert f"({hub.url}/datasets/{repos.dataset}/tree/{repos.v1})" in card
    assert "https://huggingface.co/" not in card.replace("https://huggingface.co/docs", "")
    assert hub.api.repo_info(repos.model, revision=repos.dev).sha == repos.dev  # the linked commit is on this Hub
    meta_rows = datasets.load_dataset(results, "meta", split="train").to_list()
    assert meta_rows[0]["model_commit"] == repos.dev and meta_rows[0]["dataset_revision"] == repos.v1
    assert meta_rows[0]["data_files"] and '"pad_to_multiple_of": 16' in meta_rows[0]["options"]

    assert cli_main(["reproduce", results, "--out", str(tmp_path / "again")]) == 0
    printed = capsys.readouterr().out
    assert "stage 'pretrained': identical" in printed and "verdict: identical" in printed
    assert repos.dev[:12] in printed and repos.v1[:12] in printed
    assert numbers_equal(hf_txray.Profile.from_pretrained(tmp_path / "again" / "pretrained"), profile)


def test_every_profiler_option_is_recorded_and_passed_back_by_name():
    # reproduce() reruns analyze(**recorded ProfilerConfig): every field must be an analyze() keyword of that name.
    fields = {f.name for f in dataclasses.fields(hf_txray.ProfilerConfig)}
    assert fields <= set(inspect.signature(hf_txray.analyze).parameters)
    assert set(hf_txray.provenance.config_options(hf_txray.ProfilerConfig())) == fields


def test_a_changed_profile_is_reported_different(tmp_path):
    model = str(save_tiny_model(tmp_path / "m"))
    profile = hf_txray.analyze(model, str(save_parquet_dataset(tmp_path / "d", {"train": TEXTS_V1})), **OPTIONS)
    counts, mass = profile.neuron_count.copy(), profile.neuron_mass.copy()
    # one credit moved to another neuron of the layer: an extra one would not fit the positions, refused at load
    top = int(np.argmax(counts[0]))
    counts[0, top] += 1
    counts[0, next(n for n in np.flatnonzero(counts[0]) if n != top)] -= 1
    tampered = hf_txray.Profile(profile.meta, profile.neuron_mass, counts, profile.tables, profile.examples)
    tampered.save_pretrained(tmp_path / "tampered")
    result = hf_txray.reproduce(tmp_path / "tampered")
    assert result.verdict == "different" and "credit counts of 2 neurons" in str(result)
    mass[1, 0] += 1e-3
    assert not compare_numbers(hf_txray.Profile(profile.meta, mass, profile.neuron_count, profile.tables), profile)[0]
    mass[1, 0] -= 1e-3 - 1e-9  # within the relative 1e-6
    assert compare_numbers(hf_txray.Profile(profile.meta, mass, profile.neuron_count, profile.tables), profile)[0]
    # the texts carrying each feature type (the per-neuron test's cap) are counts too; a profile saved before they
    # were recorded has none to check
    recorded = profile.meta.num_feature_texts
    ft = next(iter(recorded))
    fewer = dataclasses.replace(profile.meta, num_feature_texts={**recorded, ft: recorded[ft] - 1})
    same, _, diffs = compare_numbers(hf_txray.Profile(fewer, profile.neuron_mass, profile.neuron_count,
                                                      profile.tables), profile)
    assert not same and diffs == [f"texts carrying {ft} {recorded[ft]} vs {recorded[ft] - 1} stored"]
    unrecorded = dataclasses.replace(profile.meta, num_feature_texts={})
    assert compare_numbers(hf_txray.Profile(unrecorded, profile.neuron_mass, profile.neuron_count, profile.tables),
                           profile)[0]
    assert cli_main(["reproduce", str(tmp_path / "tampered")]) == 1
    # Two saved profiles of one stage name in a folder: one of them used to go unchecked, the verdict "identical"
    profile.save_pretrained(tmp_path / "runs" / "first")
    tampered.save_pretrained(tmp_path / "runs" / "second")
    with pytest.raises(ConfigurationError, match="share the stage name 'default': pass one profile's own folder"):
        hf_txray.reproduce(tmp_path / "runs")
    with pytest.raises(ConfigurationError, match="lies in the results being reproduced"):
        hf_txray.reproduce(tmp_path / "runs" / "first", out=tmp_path / "runs" / "first")
    assert cli_main(["reproduce", str(tmp_path / "runs")]) == 2


def test_stored_output_effects_are_recomputed_and_compared(tmp_path):
    """Helper 188: output_effects is not a ProfilerConfig field, so the record's options lacked it: reproduce reran
    without it and compared nothing of the stored table. A model whose LM head was negated (the credited numbers
    unchanged) was reported identical, and so was an edited table."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "m"
    tiny_llama_lm(0).save_pretrained(folder)
    bpe_tokenizer().save_pretrained(folder)
    options = dict(OPTIONS, output_effects=True, output_effects_k=3)
    profile = hf_txray.analyze(str(folder), TEXTS_V1, stage="s", **options)
    same = hf_txray.reproduce_profile(profile, dataset=TEXTS_V1)
    assert same.identical and same.profile.output_effects is not None
    assert int(same.profile.output_effects["rank"].max()) == 2
    other = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        other.lm_head.weight.neg_()  # promoted <-> suppressed; no activation changes
    verdict = hf_txray.reproduce_profile(profile, dataset=TEXTS_V1, model=other)
    assert not verdict.identical and "output effects:" in "; ".join(verdict.differences)
    assert np.array_equal(verdict.profile.neuron_count, profile.neuron_count)
    edited = copy.copy(profile)
    edited.output_effects = profile.output_effects.assign(token_id=profile.output_effects["token_id"][::-1].to_numpy())
    assert not compare_numbers(edited, same.profile)[0]
    edited.output_effects = None  # a profile without them compares as before
    assert compare_numbers(edited, same.profile)[0]


def test_top_examples_histograms_and_position_mass_are_compared(tmp_path):
    """Helper 188: compare_numbers checked counts and masses only, so a saved profile whose top-example activations,
    activation histogram or per-position mass (all on a neuron's page) had been edited reproduced as identical."""
    from hf_txray.accumulators import PositionMass

    profile = hf_txray.analyze(str(save_tiny_model(tmp_path / "m")), TEXTS_V1, stage="s", **OPTIONS)
    assert compare_numbers(copy.copy(profile), profile)[0]
    edited = copy.copy(profile)
    edited.examples = profile.examples.assign(activation=profile.examples["activation"] * 2)
    assert not compare_numbers(edited, profile)[0]
    edited = copy.copy(profile)
    edited.examples = profile.examples.assign(token="x")
    assert "top examples differ in token" in "; ".join(compare_numbers(edited, profile)[2])
    # helper 244: a neuron renamed in the table said "top examples have other rows (219 vs 219 stored)"
    edited = copy.copy(profile)
    edited.examples = profile.examples.assign(neuron=profile.examples["neuron"].max() + 1 - profile.examples["neuron"])
    assert f"top examples hold the same number of rows ({len(profile.examples)}) under other (layer, neuron, rank) " \
           "keys" in compare_numbers(edited, profile)[2]
    edited.examples = profile.examples.iloc[1:]
    assert f"top examples have other rows ({len(profile.examples) - 1} vs {len(profile.examples)} stored)" in \
        compare_numbers(profile, edited)[2]
    edited = copy.copy(profile)
    histogram = copy.copy(profile.activation_histogram)
    histogram.counts = histogram.counts + 1
    edited.activation_histogram = histogram
    assert "activation histogram counts differ" in compare_numbers(edited, profile)[2]
    e = profile.position_mass.entries()
    edited = copy.copy(profile)
    edited.position_mass = PositionMass.from_entries(e["row"], e["position"], e["mass"] * 1.01, e["count"])
    identical, worst, _ = compare_numbers(edited, profile)
    assert not identical and worst == pytest.approx(0.01 / 1.01, rel=1e-3)  # relative to the stored mass
    edited.save_pretrained(tmp_path / "edited")
    assert hf_txray.reproduce(tmp_path / "edited", dataset=TEXTS_V1).verdict == "different"
    # helper 298: a NaN activation in a stored top example (the profile loads: only its sums are checked for NaN)
    # reproduced as "identical, largest mass difference 0.0e+00": the NaN difference was read as 0
    edited = copy.copy(profile)
    edited.examples = profile.examples.assign(activation=profile.examples["activation"].where(
        profile.examples.index != profile.examples.index[0], np.nan))
    edited.save_pretrained(tmp_path / "nan")
    assert hf_txray.reproduce(tmp_path / "nan", dataset=TEXTS_V1).verdict == "different"
    identical, worst, diffs = compare_numbers(edited, profile)
    assert not identical and worst == np.inf and "masses differ by up to inf" in "; ".join(diffs)
    assert compare_numbers(edited, edited)[1] == np.inf  # a NaN equals nothing, itself included
    edited.examples = profile.examples.assign(activation=np.where(profile.examples.index == profile.examples.index[0],
                                                                  np.inf, profile.examples["activation"]))
    assert compare_numbers(edited, edited)[:2] == (True, 0.0)  # equal infinities are equal


def test_local_sources_reproduce_by_content_hash_and_changes_are_named(tmp_path):
    model = save_tiny_model(tmp_path / "m")
    data = save_parquet_dataset(tmp_path / "d", {"train": TEXTS_V1}) / "data" / "train.parquet"
    options = dict(OPTIONS, top_k=2, layers=[1], max_length=8, max_examples_per_neuron=3)
    profile = hf_txray.analyze(str(model), str(data), **options)
    record = profile.meta.provenance
    assert {k: record["options"][k] for k in ("top_k", "layers", "max_length", "max_examples_per_neuron")} == {
        "top_k": 2, "layers": [1], "max_length": 8, "max_examples_per_neuron": 3}
    assert record["model"]["kind"] == "local" and record["dataset"]["kind"] == "local"
    expected = hashlib.sha256(f"train.parquet\0{hashlib.sha256(data.read_bytes()).hexdigest()}\n".encode())
    assert record["dataset"]["content_hash"] == "sha256:" + expected.hexdigest()
    assert set(record["model"]["files"]) >= {"model.safetensors", "config.json", "tokenizer.json"}
    profile.save_pretrained(tmp_path / "saved")
    assert hf_txray.reproduce(tmp_path / "saved").verdict == "identical"

    pd.DataFrame({"text": TEXTS_V2}).to_parquet(data, index=False)
    with pytest.raises(DatasetError, match=r"differ from the ones profiled: train.parquet \(changed\)"):
        hf_txray.reproduce(tmp_path / "saved")
    save_parquet_dataset(tmp_path / "d", {"train": TEXTS_V1})
    (model / "config.json").write_text((model / "config.json").read_text().replace('"hidden_act"', '"hidden_act" '))
    with pytest.raises(ModelError, match=r"config.json \(changed\)"):
        hf_txray.reproduce(tmp_path / "saved")


def test_the_embedded_default_profiled_in_another_venv_is_found_here(tmp_path, monkeypatch):
    """Helper 130: `hf-txray analyze` without a model records the embedded MiniLM's venv folder; reproduced where
    that folder is gone (another venv, a clean clone), it needed --model PATH. The embedded model's folder here is
    used when it holds the same files, and said so; other files are refused as before."""
    import hf_txray.corpora

    elsewhere, here = save_tiny_model(tmp_path / "other-venv"), tmp_path / "this-venv"
    shutil.copytree(elsewhere, here)
    profile = hf_txray.analyze(str(elsewhere), TEXTS_V1, stage="s", **OPTIONS)
    profile.save_pretrained(tmp_path / "saved")
    shutil.rmtree(elsewhere)
    monkeypatch.setattr(hf_txray.corpora, "default_model_path", lambda: str(here))
    result = hf_txray.reproduce(tmp_path / "saved", dataset=TEXTS_V1)
    assert result.verdict == "identical" and "embedded default's folder" in str(result)
    (here / "config.json").write_text((here / "config.json").read_text().replace('"hidden_act"', '"hidden_act" '))
    with pytest.raises(ModelError, match=r"read from local files, and they are not here"):
        hf_txray.reproduce(tmp_path / "saved", dataset=TEXTS_V1)


def test_a_pushed_record_of_local_sources_says_it_holds_their_names_only(hub, tmp_path, monkeypatch):
    """Helper 298: a push keeps a local folder's last component only ("mymodel"), so reproducing the pushed repo
    said "The model 'mymodel' was read from local files, and they are not here", and, for the embedded default model,
    "the recorded folder is gone", while the folder was still where it was profiled. Both now say that the record
    holds the name only; run from the folder holding the sources, the names find them."""
    import hf_txray.corpora

    model = save_tiny_model(tmp_path / "mymodel")
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS_V1) + "\n")
    profile = hf_txray.analyze(str(model), str(tmp_path / "texts.txt"), **OPTIONS)
    results = f"{hub.username}/local-txray"
    hf_txray.push_to_hub(results, profiles=[profile])
    assert hf_txray.load(results).profiles["default"].meta.provenance["model"]["id"] == "mymodel"
    with pytest.raises(ModelError, match=r"names only as 'mymodel' \(a pushed record keeps no local path whole"):
        hf_txray.reproduce(results)
    with pytest.raises(DatasetError, match=r"names only as 'texts.txt'"):
        hf_txray.reproduce(results, model=str(model))
    # monkeypatch.undo() would also undo the hub fixture's patches, made on this monkeypatch: one context instead
    with monkeypatch.context() as patch:
        patch.setattr(hf_txray.corpora, "default_model_path", lambda: str(model))  # the embedded default's folder
        result = hf_txray.reproduce(results, dataset=str(tmp_path / "texts.txt"))
    assert result.verdict == "identical" and "the recorded folder is gone" not in str(result)
    assert "the record names its folder only as 'mymodel'" in str(result)
    monkeypatch.chdir(tmp_path)
    assert hf_txray.reproduce(results).verdict == "identical"


def test_moving_ref_with_changed_files_is_refused_naming_them(repos, hub):
    profile = hf_txray.analyze(repos.model, repos.dataset, **OPTIONS)  # main: TEXTS_V2
    results = f"{hub.username}/moving-txray"
    hf_txray.push_to_hub(results, profiles=[profile])
    hub.api.super_squash_history(repos.dataset, repo_type="dataset")  # same files, the old commit is gone
    result = hf_txray.reproduce(results)
    assert result.verdict == "identical" and "is gone" in str(result)

    upload_folder_as(hub, repos.dataset, save_parquet_dataset(repos.folder / "d3", {"train": ["changed"]}),
                     repo_type="dataset")
    hub.api.super_squash_history(repos.dataset, repo_type="dataset")
    before = len(hub.server.requests)
    with pytest.raises(DatasetError, match=r"no longer has commit.*data/train.parquet \(changed\)"):
        hf_txray.reproduce(results)
    assert not [r for r in hub.server.downloads(before) if r.path.endswith(".safetensors")]


def test_what_cannot_be_reproduced_is_refused_clearly(hub, repos, tmp_path):
    try:
        from .models import bert_tokenizer, tiny_bert
    except ImportError:
        from models import bert_tokenizer, tiny_bert

    with pytest.raises(ProfileFormatError, match="not an hf_txray results repo"):
        hf_txray.reproduce(repos.dataset)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(ProfileFormatError, match="not hf_txray output"):
        hf_txray.reproduce(tmp_path / "junk")

    anonymous = hf_txray.analyze(tiny_bert(), TEXTS_V1, tokenizer=bert_tokenizer(), stage="object", **OPTIONS)
    with pytest.raises(ReproducibilityError, match="object without name_or_path"):
        _reproduce_one(anonymous, tmp_path)

    model = str(save_tiny_model(tmp_path / "m"))
    in_memory = hf_txray.analyze(model, TEXTS_V1, stage="memory", **OPTIONS)
    with pytest.raises(ReproducibilityError, match="passed in memory.*dataset="):
        _reproduce_one(in_memory, tmp_path)
    with pytest.raises(DatasetError, match="texts of stage 'memory' differ"):
        _reproduce_one(in_memory, tmp_path, dataset=TEXTS_V2)
    assert _reproduce_one(in_memory, tmp_path, dataset=list(TEXTS_V1)).verdict == "identical"

    old = dataclasses.replace(in_memory.meta, provenance={}, hf_txray_version="0.0.9")
    with pytest.raises(ReproducibilityError, match="lacks the model commit or content hash.*hash of the texts"):
        _reproduce_one(hf_txray.Profile(old, in_memory.neuron_mass, in_memory.neuron_count, in_memory.tables),
                       tmp_path)
    record = dict(in_memory.meta.provenance, versions={"hf_txray": "99.0.0"})
    newer = dataclasses.replace(in_memory.meta, provenance=record)
    with pytest.raises(ReproducibilityError, match="hf_txray 99.0.0.*major"):
        _reproduce_one(hf_txray.Profile(newer, in_memory.neuron_mass, in_memory.neuron_count, in_memory.tables),
                       tmp_path, dataset=list(TEXTS_V1))
    shout = hf_txray.UserFeature("shout", lambda text: [(0, len(text), "yes")])
    user = hf_txray.analyze(model, TEXTS_V1, features=("token", shout), show_progress=False, stage="user")
    with pytest.raises(ReproducibilityError, match="UserFeature\\('shout'\\)"):
        _reproduce_one(user, tmp_path, dataset=list(TEXTS_V1))


def test_a_folder_of_a_transfer_report_alone_is_refused_not_a_verdict(tmp_path, capsys):
    """helper 284: `hf-txray reproduce REPORT_FOLDER` (a saved transfer report, no profile) found no stage and
    printed "verdict: different" with exit status 1, as if a profile had been recomputed and differed."""
    model = str(save_tiny_model(tmp_path / "m"))
    a, b = (hf_txray.analyze(model, TEXTS_V1, stage=stage, **OPTIONS) for stage in ("a", "b"))
    hf_txray.compare(a, b, test=False).save_pretrained(tmp_path / "report")
    with pytest.raises(ConfigurationError, match="'.*report' holds no profile.*give the profiles it was made from"):
        hf_txray.reproduce(tmp_path / "report")
    assert cli_main(["reproduce", str(tmp_path / "report")]) == 2
    said = capsys.readouterr()
    assert "holds no profile" in said.err and "verdict" not in said.out


def _reproduce_one(profile: hf_txray.Profile, tmp_path, **kwargs):
    folder = tmp_path / f"one-{profile.stage}-{len(os.listdir(tmp_path))}"
    profile.save_pretrained(folder)
    return hf_txray.reproduce(folder, **kwargs)


def test_trainer_push_to_hub_results_reproduce_the_final_snapshot(repos, hub, tmp_path):
    from test_trainer import build_args, build_classifier, build_data

    from hf_txray.trainer import TXRayTrainer

    repo = f"{hub.username}/tiny-cls"
    args = build_args(tmp_path / "out", max_steps=2, txray_steps=1, push_to_hub=True, hub_model_id=repo,
                      hub_strategy="end")
    trainer = TXRayTrainer(model=build_classifier(), args=args, train_dataset=build_data(),
                           processing_class=bert_tokenizer(), txray_dataset=repos.dataset)
    trainer.train()
    trainer.push_to_hub()
    stages = list(trainer.txray_profiles)
    final = trainer.txray_profiles[stages[-1]]
    pushed_commit = hub.server.repo_commits(repo, repo_type="model")[0]
    assert final.meta.provenance["model"] | {"files": None} == {
        "kind": "hub", "id": repo, "requested_revision": pushed_commit, "commit": pushed_commit, "files": None,
        "content_hash": None, "training_step": None, "base_model": None, "adapters": None}
    assert final.meta.provenance["dataset"]["commit"] == repos.v2

    result = hf_txray.reproduce(f"{repo}-txray", stage=stages[-1])
    assert result.verdict == "identical", str(result)
    with pytest.raises(ReproducibilityError, match=f"still training \\(step {stages[1].split('-')[1]}\\)"):
        hf_txray.reproduce(f"{repo}-txray", stage=stages[1])


def test_trainer_run_from_a_local_folder_reproduces_like_the_demo(tmp_path):
    """The demo's path at tiny scale: a model loaded from a folder, a probe corpus in a parquet file, the last
    snapshot pinned to the folder the trainer saved. Step 0 and the last step reproduce; step 1 is refused."""
    from transformers import AutoModelForSequenceClassification

    try:
        from .test_trainer import build_args, build_data
    except ImportError:
        from test_trainer import build_args, build_data
    from hf_txray.trainer import TXRayTrainer

    base = save_tiny_model(tmp_path / "base")
    probe = save_parquet_dataset(tmp_path / "probe", {"train": TEXTS_V1}) / "data" / "train.parquet"
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    trainer = TXRayTrainer(model=model, args=build_args(tmp_path / "out", max_steps=2, txray_steps=1),
                           train_dataset=build_data(), processing_class=bert_tokenizer(), txray_dataset=str(probe))
    trainer.train()
    trainer.save_model()
    stages = list(trainer.txray_profiles)
    profiles = dict(trainer.txray_profiles)
    profiles[stages[-1]] = hf_txray.pin_model(profiles[stages[-1]], tmp_path / "out")
    hf_txray.save_to_disk(tmp_path / "export", profiles=list(profiles.values()))
    first = profiles[stages[0]].meta.provenance
    assert first["model"]["kind"] == "object" and first["model"]["id"] == str(base.resolve())
    assert first["model"]["training_step"] == 0 and first["dataset"]["kind"] == "local"

    assert hf_txray.reproduce(tmp_path / "export", stage=stages[0]).verdict == "identical"
    assert hf_txray.reproduce(tmp_path / "export", stage=stages[-1]).verdict == "identical"
    with pytest.raises(ReproducibilityError, match="still training"):
        hf_txray.reproduce(tmp_path / "export")  # every stage is checked before the first run


def test_attention_implementation_is_recorded_and_used_again(tmp_path):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(save_tiny_model(tmp_path / "m"), attn_implementation="eager")
    profile = hf_txray.analyze(model, TEXTS_V1, tokenizer=bert_tokenizer(), **OPTIONS)
    assert profile.meta.provenance["model"]["kind"] == "object"
    assert profile.meta.provenance["runtime"]["attn_implementation"] == "eager"
    result = _reproduce_one(profile, tmp_path, dataset=list(TEXTS_V1))
    assert result.verdict == "identical"
    assert result.stages[0].profile.meta.provenance["runtime"]["attn_implementation"] == "eager"


def test_embedded_corpus_is_reloaded_by_name(tmp_path):
    from hf_txray import corpora

    model = str(save_tiny_model(tmp_path / "m"))
    profile = hf_txray.analyze(model, corpora.penn_treebank("valid", num_samples=12), num_samples=12, **OPTIONS)
    assert profile.meta.provenance["dataset"]["id"] == "penn_treebank/valid"
    result = _reproduce_one(profile, tmp_path)  # no dataset= needed
    assert result.verdict == "identical" and "embedded corpus 'penn_treebank/valid'" in str(result)
    # The README's flow: the sample is taken by the corpus function, not by analyze (the whole corpus was reloaded,
    # and its texts hash refused)
    for sample in (corpora.penn_treebank("valid", num_samples=9), corpora.bbc_news(num_samples=3)):
        profile = hf_txray.analyze(model, sample, max_length=32, **OPTIONS)
        assert _reproduce_one(profile, tmp_path).verdict == "identical"
    # The command line's short names work in Python too (they were taken for Hub ids)
    by_name = hf_txray.analyze(model, "txray:ptb-valid", num_samples=9, max_length=32, **OPTIONS)
    assert numbers_equal(by_name, hf_txray.analyze(model, corpora.penn_treebank("valid", num_samples=9),
                                                   max_length=32, **OPTIONS))
    assert by_name.meta.provenance["dataset"]["id"] == "penn_treebank/valid"
    # select() keeps the corpus's name: a subset that is not its leading texts cannot be reloaded by name (reproduce
    # reloaded the first texts and refused their hash, naming no cause); it is recorded so, and the texts are asked for
    ptb = corpora.penn_treebank("valid", num_samples=20)
    head, tail = (hf_txray.analyze(model, ptb.select(rows), max_length=32, **OPTIONS)
                  for rows in (range(10), range(10, 20)))
    assert head.meta.provenance["dataset"]["embedded"] is True
    assert tail.meta.provenance["dataset"]["embedded"] is False
    renamed = hf_txray.analyze(model, ptb.select(range(10)).rename_column("text", "sentence"), max_length=32,
                               **OPTIONS)  # the leading texts, but reloading them gives a "text" column
    assert renamed.meta.provenance["dataset"]["embedded"] is False
    assert tail.meta.provenance["dataset"]["id"] == "penn_treebank/valid"
    assert _reproduce_one(head, tmp_path).verdict == "identical"
    with pytest.raises(ReproducibilityError, match=r"Pass them again with dataset="):
        _reproduce_one(tail, tmp_path)
    assert _reproduce_one(tail, tmp_path, dataset=ptb.select(range(10, 20))).verdict == "identical"
    # and the two parts merge: their texts are disjoint (the merge refused them as two reads from the first text)
    assert numbers_equal(head.merge(tail), hf_txray.analyze(model, ptb, max_length=32, **OPTIONS))


def test_reproduce_of_a_profile_object_says_what_to_pass():
    """A Profile object is not a results folder: a library error that names reproduce_profile, not a TypeError."""
    from hf_txray import Profile

    with pytest.raises(ConfigurationError, match="reproduce_profile"):
        hf_txray.reproduce(Profile.__new__(Profile))


def test_streamed_local_file_is_pinned_shown_and_reproduced(tmp_path, capsys):
    """`analyze M c.jsonl --streaming`: the provenance names the file (content hash), says it was streamed and how
    many texts were read, with their hash; `show` says so; `reproduce` streams the same file again, and a changed
    file is refused naming it, before any model runs."""
    import json

    model, data, out = save_tiny_model(tmp_path / "m"), tmp_path / "c.jsonl", tmp_path / "out"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS_V1))
    assert cli_main(["analyze", str(model), str(data), "--streaming", "--features", "token", "--batch-size", "4",
                     "--out", str(out)]) == 0
    profile = hf_txray.Profile.from_pretrained(out)
    source = profile.meta.provenance["dataset"]
    in_memory = hf_txray.analyze(str(model), str(data), **OPTIONS).meta.provenance["dataset"]
    assert (source["kind"], source["id"], source["streaming"]) == ("local", str(data.resolve()), True)
    assert source["content_hash"] == in_memory["content_hash"] and source["texts_hash"] == in_memory["texts_hash"]
    assert source["num_texts"] == len(TEXTS_V1) == profile.meta.num_examples
    assert source["text_column"] == "text" and not hf_txray.provenance.missing_provenance(profile)
    capsys.readouterr()
    assert cli_main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"dataset {data.resolve()} (streamed)" in shown and f"{len(TEXTS_V1)} texts" in shown
    assert "reproduce recomputes it" in shown
    assert cli_main(["reproduce", str(out)]) == 0
    assert "identical" in capsys.readouterr().out
    # A copy elsewhere with other bytes (an extra column) but the same texts: the texts hash decides, not the bytes.
    copy = tmp_path / "copy" / "texts.jsonl"
    copy.parent.mkdir()
    copy.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS_V1)))
    assert hf_txray.reproduce(out, dataset=str(copy)).verdict == "identical"
    copy.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS_V2)))
    with pytest.raises(DatasetError, match="The texts of stage 'default' differ from the ones profiled"):
        hf_txray.reproduce(out, dataset=str(copy))

    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS_V2))
    with pytest.raises(DatasetError, match=r"differ from the ones profiled: c.jsonl \(changed\)"):
        hf_txray.reproduce(out)


def test_hub_stream_is_pinned_to_its_commit_and_reproduced(repos, tmp_path, monkeypatch):
    """`analyze(hub_id, streaming=True, dataset_revision="v1")` streams the tag's commit (v1's texts, though main moved
    on), recorded as a Hub source at that commit; reproduce streams it again there. A stream stopped early (no texts
    hash) reproduces from its recorded source only: texts passed as objects, or another id, are refused."""
    streamed = hf_txray.analyze(repos.model, repos.dataset, streaming=True, dataset_revision="v1", **OPTIONS)
    data = streamed.meta.provenance["dataset"]
    assert (data["kind"], data["id"], data["commit"], data["requested_revision"], data["streaming"]) == (
        "hub", repos.dataset, repos.v1, "v1", True)
    assert data["texts_hash"] == hf_txray.hashes.strings_hash(TEXTS_V1)
    assert numbers_equal(streamed, hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v1", **OPTIONS))
    assert _reproduce_one(streamed, tmp_path).verdict == "identical"
    assert _reproduce_one(streamed, tmp_path, dataset=repos.dataset).verdict == "identical"  # at the commit too
    copy = str(repos.folder / "d1")  # a local copy of v1's files: checked by the texts hash, read without a config
    assert _reproduce_one(streamed, tmp_path, dataset=copy).verdict == "identical"
    loaded = hf_txray.analyze(repos.model, repos.dataset, dataset_revision="v1", **OPTIONS)
    assert _reproduce_one(loaded, tmp_path, dataset=copy).verdict == "identical"
    latest = hf_txray.analyze(repos.model, repos.dataset, streaming=True, **OPTIONS)
    assert latest.meta.provenance["dataset"]["commit"] == repos.v2 and latest.meta.num_examples == len(TEXTS_V2)
    stopped = hf_txray.analyze(repos.model, repos.dataset, streaming=True, dataset_revision="v1", max_positions=5,
                               **OPTIONS)
    assert stopped.meta.provenance["dataset"]["texts_hash"] is None
    assert _reproduce_one(stopped, tmp_path).verdict == "identical"
    for given in (list(TEXTS_V1), "someone/other-texts", copy):
        with pytest.raises(DatasetError, match="no hash of its texts was recorded.*Leave dataset= out"):
            _reproduce_one(stopped, tmp_path, dataset=given)
    # Offline, datasets streams its latest cached version whatever the revision: refused, not read unchecked.
    set_offline(monkeypatch)
    with pytest.raises(DatasetError, match="offline datasets streams whatever version .* Drop streaming=True"):
        hf_txray.analyze(repos.model, repos.dataset, streaming=True, dataset_revision="v1", **OPTIONS)


def test_streamed_texts_hash_is_recorded_only_when_the_whole_stream_was_read(tmp_path, monkeypatch):
    """Stopped by max_positions, a stream is not read to its end: no texts hash (the file's content hash pins the
    texts), the texts counted as num_texts, and the stage still reproduces."""
    model, data = save_tiny_model(tmp_path / "m"), tmp_path / "c.txt"
    data.write_text("\n".join(TEXTS_V1 * 20) + "\n")
    profile = hf_txray.analyze(str(model), str(data), streaming=True, max_positions=30, **OPTIONS)
    source = profile.meta.provenance["dataset"]
    assert source["streaming"] and source["texts_hash"] is None
    assert 0 < source["num_texts"] == profile.meta.num_examples < 20 * len(TEXTS_V1)
    assert _reproduce_one(profile, tmp_path).verdict == "identical"
    moved = tmp_path / "elsewhere" / "renamed.txt"
    moved.parent.mkdir()
    moved.write_bytes(data.read_bytes())
    assert _reproduce_one(profile, tmp_path, dataset=str(moved)).verdict == "identical"
    moved.write_text("\n".join(TEXTS_V2 + TEXTS_V1 * 20) + "\n")  # no texts hash to catch this: the content does
    with pytest.raises(DatasetError, match=r"renamed.txt differs in content from the file profiled \(c.txt, streamed "):
        _reproduce_one(profile, tmp_path, dataset=str(moved))
    with pytest.raises(DatasetError, match=r"another extension \(.csv\) than the one profiled \(.txt\)"):
        _reproduce_one(profile, tmp_path, dataset=str(shutil.copy(data, tmp_path / "elsewhere" / "c.csv")))
    # no texts hash: texts passed as objects cannot be checked, whether they differ or not
    for texts in (TEXTS_V2 * 20, TEXTS_V1 * 20):
        for given in (datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(), list(texts)):
            with pytest.raises(DatasetError, match="no hash of its texts was recorded.*Pass the data file or folder"):
                _reproduce_one(profile, tmp_path, dataset=given)
    with pytest.raises(DatasetError, match="no hash of its texts was recorded"):  # a Hub id: not checkable
        _reproduce_one(profile, tmp_path, dataset="someone/other-texts")
    with pytest.raises(DatasetError, match="no hash of its texts was recorded"):  # not "read twice": no hash at all
        _reproduce_one(profile, tmp_path, dataset=(t for t in TEXTS_V1 * 20))
    holder = tmp_path / "holder"
    holder.mkdir()
    shutil.copy(data, holder / data.name)
    with pytest.raises(DatasetError, match=r"single file c.txt, and .*holder is a folder .* pass the file"):
        _reproduce_one(profile, tmp_path, dataset=str(holder))
    monkeypatch.setenv("HOME", str(holder))  # "~/c.txt" is checked as the file it names
    (holder / data.name).write_text("\n".join(TEXTS_V2 * 20) + "\n")
    with pytest.raises(DatasetError, match="holder/c.txt differs in content from the file profiled"):
        _reproduce_one(profile, tmp_path, dataset="~/c.txt")


def test_stream_object_says_why_it_cannot_be_reproduced(tmp_path, capsys):
    """An IterableDataset read to its end records its texts hash (reproduce then takes the texts again with
    dataset=...); one stopped early by max_positions has nothing to check them against: `show` and `reproduce`
    say so, not that in-memory texts lack a hash."""
    model = str(save_tiny_model(tmp_path / "m"))
    stream = datasets.Dataset.from_dict({"text": TEXTS_V1}).to_iterable_dataset()
    whole = hf_txray.analyze(model, stream, **OPTIONS)
    assert whole.meta.provenance["dataset"]["texts_hash"] == hf_txray.hashes.strings_hash(TEXTS_V1)
    assert _reproduce_one(whole, tmp_path, dataset=list(TEXTS_V1)).verdict == "identical"
    long_stream = datasets.Dataset.from_dict({"text": TEXTS_V1 * 20}).to_iterable_dataset()  # many buckets
    stopped = hf_txray.analyze(model, long_stream, max_positions=5, **OPTIONS)
    stopped.save_pretrained(tmp_path / "stopped")
    capsys.readouterr()
    assert cli_main(["show", str(tmp_path / "stopped")]) == 0
    shown = capsys.readouterr().out
    assert "(streamed)" in shown and "reproduce cannot recompute it: it lacks a hash of the streamed texts" in shown
    with pytest.raises(ReproducibilityError, match="max_positions may stop a stream early") as refused:
        hf_txray.reproduce(tmp_path / "stopped", dataset=list(TEXTS_V1 * 20))
    assert "in-memory" not in str(refused.value)


def test_split_chooses_the_texts_of_a_dataset_dict_for_a_stage_without_a_split(tmp_path, capsys):
    """In-memory texts kept in a DatasetDict (as an object, or saved to disk and passed to the CLI): `split` chooses
    them; a wrong split is caught by the texts hash, a missing one names --split, and split= without dataset= or
    against a recorded split is refused."""
    model = str(save_tiny_model(tmp_path / "m"))
    profile = hf_txray.analyze(model, TEXTS_V1, **OPTIONS)
    folder = tmp_path / "stage"
    profile.save_pretrained(folder)
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS_V1}),
                                   "test": datasets.Dataset.from_dict({"text": TEXTS_V2})})
    verdict = hf_txray.reproduce(folder, dataset=splits, split="train")
    assert verdict.verdict == "identical" and numbers_equal(verdict.stages[0].profile, profile)
    with pytest.raises(DatasetError, match="differ from the ones profiled"):
        hf_txray.reproduce(folder, dataset=splits, split="test")
    with pytest.raises(DatasetError, match=r"Split 'dev' not found; available splits: train, test"):
        hf_txray.reproduce(folder, dataset=splits, split="dev")
    splits.save_to_disk(str(tmp_path / "saved"))
    assert cli_main(["reproduce", str(folder), "--dataset", str(tmp_path / "saved"), "--split", "train"]) == 0
    assert "identical" in capsys.readouterr().out
    assert cli_main(["reproduce", str(folder), "--dataset", str(tmp_path / "saved")]) == 2
    assert "pass split=... to choose one (CLI: --split NAME)" in capsys.readouterr().err
    with pytest.raises(hf_txray.ConfigurationError, match="pass dataset= too"):
        hf_txray.reproduce(folder, split="train")
    with pytest.raises(hf_txray.ConfigurationError, match="not of a list"):
        hf_txray.reproduce(folder, dataset=list(TEXTS_V1), split="train")
    with_split = dataclasses.replace(profile.meta, provenance={
        **profile.meta.provenance, "dataset": {**profile.meta.provenance["dataset"], "split": "train"}})
    with pytest.raises(hf_txray.ConfigurationError, match="profiled on the split 'train', not 'test'"):
        hf_txray.reproduce_profile(_with_meta(profile, with_split), dataset=splits, split="test")


def test_a_slice_of_a_saved_split_reproduces_the_same_rows(tmp_path, capsys):
    """A stage profiled on split='train[:2]' of a saved DatasetDict (that slice was refused as an unknown split)
    records the split as given; reproduce reads the same two texts, from the recorded folder or one passed again."""
    model = str(save_tiny_model(tmp_path / "m"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS_V1}),
                          "test": datasets.Dataset.from_dict({"text": TEXTS_V2})}).save_to_disk(str(tmp_path / "saved"))
    profile = hf_txray.analyze(model, str(tmp_path / "saved"), split="train[:2]", **OPTIONS)
    assert profile.meta.num_examples == 2 and profile.meta.provenance["dataset"]["split"] == "train[:2]"
    assert numbers_equal(profile, hf_txray.analyze(model, TEXTS_V1[:2], **OPTIONS))
    for again in (None, str(tmp_path / "saved")):
        verdict = _reproduce_one(profile, tmp_path, dataset=again)
        assert verdict.verdict == "identical" and verdict.stages[0].profile.meta.num_examples == 2
        assert numbers_equal(verdict.stages[0].profile, profile)
    folder = tmp_path / "stage"
    profile.save_pretrained(folder)
    assert cli_main(["reproduce", str(folder)]) == 0 and "identical" in capsys.readouterr().out


def test_the_token_budget_a_cpu_run_resolved_is_reused_whatever_the_threads(tmp_path, monkeypatch):
    """The default CPU token budget grows with the torch threads: reproduced with more threads, a stage was batched
    otherwise and its masses differed (3e-6 on MiniLM). The recorded, resolved budget is reused."""
    from hf_txray import budget

    model = str(save_tiny_model(tmp_path / "m"))
    texts = [t * 4 for t in TEXTS_V1] * 6  # long enough that batches are cut by the token budget
    monkeypatch.setattr(budget, "CPU_MAX_TOKENS", 4096)
    monkeypatch.setattr(budget, "CPU_BATCH_BYTES_PER_THREAD", 32 * 37 * 4)  # 32 tokens a thread of a 37-wide MLP
    monkeypatch.setattr(budget, "widest_activation", lambda model: 37)
    profile = hf_txray.analyze(model, texts, features=("token",), show_progress=False, max_length=32)
    resolved = profile.meta.config["max_tokens_per_batch"]
    assert resolved is not None and profile.meta.provenance["options"]["max_tokens_per_batch"] is None
    monkeypatch.setattr(budget.torch, "get_num_threads", lambda: 8)  # the default would now be 8x larger
    verdict = _reproduce_one(profile, tmp_path, dataset=texts)
    assert verdict.verdict == "identical"
    assert verdict.stages[0].profile.meta.config["max_tokens_per_batch"] == resolved
    # The row budget too (its default depends on the device): the recorded one is reused
    rows = dataclasses.replace(profile.meta, config={**profile.meta.config, "batch_size": 5})
    verdict = _reproduce_one(hf_txray.Profile(rows, profile.neuron_mass, profile.neuron_count, profile.tables,
                                              profile.examples), tmp_path, dataset=texts)
    assert verdict.verdict == "identical" and verdict.stages[0].profile.meta.config["batch_size"] == 5


def test_loading_options_recorded_by_a_stage_are_reapplied_or_checked(tmp_path):
    """A stage loaded with model_kwargs or device_map reproduces from its folder (device_map used to clash with the
    recorded device) and from a model object (its recorded model_kwargs used to be refused); a model object in
    another dtype than the stage's is refused naming both, before any forward."""
    import torch
    from transformers import AutoModel

    model = str(save_tiny_model(tmp_path / "m"))
    kwargs = hf_txray.analyze(model, TEXTS_V1, model_kwargs={"attn_implementation": "eager"}, **OPTIONS)
    dispatched = hf_txray.analyze(model, TEXTS_V1, device_map="cpu", **OPTIONS)
    assert dispatched.meta.provenance["runtime"]["model_kwargs"]["device_map"] == "cpu"
    for stage in (kwargs, dispatched):
        assert _reproduce_one(stage, tmp_path, dataset=TEXTS_V1).verdict == "identical"
        assert _reproduce_one(stage, tmp_path, dataset=TEXTS_V1, device="cpu").verdict == "identical"
        loaded = AutoModel.from_pretrained(model)
        assert _reproduce_one(stage, tmp_path, dataset=TEXTS_V1, model=loaded).verdict == "identical"
    half = hf_txray.analyze(model, TEXTS_V1, dtype="bfloat16", **OPTIONS)
    with pytest.raises(ReproducibilityError, match=r"profiled in bfloat16, and the model passed as model= holds "
                                                   r"float32: convert it \(model.to\(torch.bfloat16\)\)"):
        _reproduce_one(half, tmp_path, dataset=TEXTS_V1, model=AutoModel.from_pretrained(model))
    converted = AutoModel.from_pretrained(model).to(torch.bfloat16)
    assert _reproduce_one(half, tmp_path, dataset=TEXTS_V1, model=converted).verdict == "identical"


def _with_meta(profile: hf_txray.Profile, meta) -> hf_txray.Profile:
    import copy

    changed = copy.copy(profile)
    changed.meta = meta
    return changed


def test_stream_object_passed_again_as_dataset(tmp_path):
    """`dataset=` may be an IterableDataset (hashed, then streamed again); a changed one is refused before the model
    runs, and a generator, which can be read only once, is refused with a message that names reproduce and the fix."""
    model = str(save_tiny_model(tmp_path / "m"))
    iterable = lambda texts: datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset()  # noqa: E731
    whole = hf_txray.analyze(model, iterable(TEXTS_V1), **OPTIONS)
    verdict = _reproduce_one(whole, tmp_path, dataset=iterable(TEXTS_V1))
    assert verdict.verdict == "identical" and numbers_equal(verdict.stages[0].profile, whole)
    with pytest.raises(DatasetError, match="differ from the ones profiled"):
        _reproduce_one(whole, tmp_path, dataset=iterable(TEXTS_V2))
    with pytest.raises(DatasetError, match=r"reproduce reads the texts .* twice .* generator can be read only once"):
        _reproduce_one(whole, tmp_path, dataset=(t for t in TEXTS_V1))
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS_V1}),
                                   "test": datasets.Dataset.from_dict({"text": TEXTS_V2})})
    with pytest.raises(DatasetError, match=r"holds the splits \['train', 'test'\] .* with split=\.\.\. \(CLI: --split\)"):
        _reproduce_one(whole, tmp_path, dataset=splits)
    stopped = hf_txray.analyze(model, iterable(TEXTS_V1 * 20), max_positions=5, **OPTIONS)
    with pytest.raises(ReproducibilityError, match="max_positions may stop a stream early"):
        _reproduce_one(stopped, tmp_path, dataset=iterable(TEXTS_V1 * 20))


def test_a_recorded_switch_written_as_a_string_is_read_as_what_it_says():
    """Earlier versions recorded trust_remote_code as given: the string "false" was truthy, and reproduce let the
    model's own code run."""
    from hf_txray.reproduce import _recorded_switch

    assert [_recorded_switch(v) for v in ("false", "False", "no", "0", "", None, False)] == [False] * 7
    assert [_recorded_switch(v) for v in ("true", "TRUE", "yes", "1", True)] == [True] * 5
    with pytest.raises(ReproducibilityError, match="neither true nor false"):
        _recorded_switch("maybe")


def test_a_max_positions_profile_of_other_process_counts_is_refused(tmp_path):
    """Under max_positions each process credits its share of the quota from its own shard's start: a stage made by
    two processes credits other positions than one process, so reproduce in one process refuses it (it used to
    answer DIFFERENT); without max_positions, or made by one process, it reproduces."""
    model = str(save_tiny_model(tmp_path / "m"))
    data = str(save_parquet_dataset(tmp_path / "d", {"train": TEXTS_V1}))
    profile = hf_txray.analyze(model, data, max_positions=20, **OPTIONS)
    assert profile.meta.provenance["runtime"]["num_processes"] == 1
    assert _reproduce_one(profile, tmp_path).verdict == "identical"
    two = copy.deepcopy(profile.meta.provenance)
    two["runtime"]["num_processes"] = 2
    made_by_two = hf_txray.Profile(dataclasses.replace(profile.meta, provenance=two), profile.neuron_mass,
                                   profile.neuron_count, profile.tables, profile.examples)
    with pytest.raises(ReproducibilityError, match=r"max_positions=20 by 2 process\(es\).*torchrun --nproc_per_node 2"):
        _reproduce_one(made_by_two, tmp_path)
    unbounded = hf_txray.analyze(model, data, **OPTIONS)
    free = copy.deepcopy(unbounded.meta.provenance)
    free["runtime"]["num_processes"] = 2
    assert _reproduce_one(hf_txray.Profile(dataclasses.replace(unbounded.meta, provenance=free),
                                           unbounded.neuron_mass, unbounded.neuron_count, unbounded.tables,
                                           unbounded.examples), tmp_path).verdict == "identical"


def test_an_out_folder_that_cannot_be_written_is_refused_before_the_rerun(tmp_path, monkeypatch):
    """Fresh helper 90: reproduce(out=...) recomputed the profile first and failed only when saving it."""
    import importlib

    from hf_txray import OutputError
    from models import SAMPLE_TEXTS, save_tiny_model

    folder = save_tiny_model(tmp_path / "model")
    texts = [t for t in SAMPLE_TEXTS if t.strip()][:3]
    hf_txray.analyze(str(folder), texts, features=("token",), show_progress=False,
                     device="cpu").save_pretrained(tmp_path / "saved")
    (tmp_path / "afile").write_text("x")
    reproducing = importlib.import_module("hf_txray.reproduce")  # the module (hf_txray.reproduce is its function)
    monkeypatch.setattr(reproducing, "reproduce_profile", lambda *a, **k: pytest.fail("recomputed before the check"))
    with pytest.raises(OutputError, match="afile is a file"):
        hf_txray.reproduce(tmp_path / "saved", out=tmp_path / "afile" / "x", dataset=texts)
    monkeypatch.setenv("HOME", str(tmp_path))  # helper 223: "~/..." was checked as the literal ./~/...
    monkeypatch.chdir(tmp_path / "model")
    with pytest.raises(OutputError, match="afile is a file"):
        hf_txray.reproduce(tmp_path / "saved", out="~/afile/x", dataset=texts)
    with pytest.raises(ConfigurationError, match="lies in the results"):
        hf_txray.reproduce("~/saved", out="~/saved/again", dataset=texts)


def test_a_rerun_that_differs_says_when_the_weights_or_the_tokenizer_are_not_the_ones_profiled(tmp_path):
    """Helper 244: a model object changed in memory after loading (its record names its unchanged folder), or a
    tokenizer passed to analyze that is not the model's own (a normalizer that keeps the case: same vocabulary),
    reproduced as DIFFERENT with only the numbers that differ; the verdict now says which of the two it is."""
    import tokenizers
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = str(save_tiny_model(tmp_path / "m"))
    texts = ["Apple Inc. announced a new iPhone.", "The Quick Brown Fox.", "New York, New York"]
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    assert hf_txray.reproduce_profile(hf_txray.analyze(model, texts, tokenizer=tokenizer, **OPTIONS),
                                      dataset=texts).identical  # the model's own tokenizer and weights
    cased = AutoTokenizer.from_pretrained(folder)
    cased.backend_tokenizer.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=False)
    assert hf_txray.provenance.tokenizer_vocab_hash(cased) == hf_txray.provenance.tokenizer_vocab_hash(tokenizer)
    whole = hf_txray.provenance.tokenizer_hash(tokenizer)
    assert whole != hf_txray.provenance.tokenizer_hash(cased)
    tokenizer(texts, truncation=True, max_length=4, padding="max_length")  # sets the backend's state, not its rules
    assert hf_txray.provenance.tokenizer_hash(tokenizer) == whole
    verdict = hf_txray.reproduce_profile(hf_txray.analyze(model, texts, tokenizer=cased, **OPTIONS), dataset=texts)
    assert not verdict.identical
    assert verdict.differences[0].startswith(f"the tokenizer of the model loaded from {folder!r} differs from the "
                                             "one profiled (its normalizer, pre-tokenizer or post-processor)")
    with torch.no_grad():
        model.encoder.layer[0].intermediate.dense.weight.mul_(1.5)
    changed = hf_txray.analyze(model, texts, tokenizer=tokenizer, **OPTIONS)
    verdict = hf_txray.reproduce_profile(changed, dataset=texts)
    assert not verdict.identical and len(verdict.differences) > 1
    assert verdict.differences[0].startswith(f"the model loaded from {folder!r} holds other weights than the model "
                                             "profiled") and "changed in memory after it was loaded" in str(verdict)
    other = AutoModel.from_pretrained(str(save_tiny_model(tmp_path / "m1", seed=1))).eval()
    verdict = hf_txray.reproduce_profile(changed, dataset=texts, model=other)
    assert verdict.differences[0].startswith("the model passed as model= holds other weights")
    assert "changed in memory" not in verdict.differences[0]
    # a folder given to pin_model that does not hold the weights profiled
    verdict = hf_txray.reproduce_profile(hf_txray.pin_model(changed, folder), dataset=texts)
    assert verdict.differences[0].startswith(f"the model loaded from {folder!r} holds other weights")
    assert "given to pin_model" in verdict.differences[0]


def test_a_rerun_that_differs_names_the_settings_and_versions_that_differ(tmp_path):
    """Helper 298: a stage whose recorded options were edited (top_k 1 -> 2), or whose defaults this hf_txray
    resolves otherwise, reran and said "DIFFERENT: credit counts of 58 neurons..." without naming the option; and a
    spaCy model or transformers of another version than recorded was not named either. Both are named now, only
    beside differing numbers."""
    model = str(save_tiny_model(tmp_path / "m"))
    profile = hf_txray.analyze(model, TEXTS_V1, stage="s", **OPTIONS)
    record = copy.deepcopy(profile.meta.provenance)
    record["options"].update(top_k=2, max_length=6)
    edited = copy.copy(profile)
    edited.meta = dataclasses.replace(profile.meta, provenance=record)
    verdict = hf_txray.reproduce_profile(edited, dataset=TEXTS_V1)
    assert not verdict.identical
    assert "the rerun ran with other settings than the stored profile: top_k=2 (stored: 1), max_length=6 (stored: " \
        in str(verdict)
    record = copy.deepcopy(profile.meta.provenance)
    record["versions"]["transformers"] = "4.0.0"
    edited.meta = dataclasses.replace(profile.meta, provenance=record)
    assert hf_txray.reproduce_profile(edited, dataset=TEXTS_V1).identical  # the same numbers: nothing said
    edited.neuron_mass = profile.neuron_mass * 2
    verdict = hf_txray.reproduce_profile(edited, dataset=TEXTS_V1)
    assert not verdict.identical and "other package versions than recorded: transformers " in str(verdict)
    assert "other settings" not in str(verdict)
    # a feature type the record names and the stored profile lacks: the rerun computed its table, and the verdict
    # was "identical" (only the stored profile's feature types were compared)
    record = copy.deepcopy(profile.meta.provenance)
    record["options"]["features"] = ["token", "word"]
    edited = copy.copy(profile)
    edited.meta = dataclasses.replace(profile.meta, provenance=record)
    verdict = hf_txray.reproduce_profile(edited, dataset=TEXTS_V1)
    assert not verdict.identical and "feature type word recomputed but not stored" in verdict.differences
    assert "feature_types=['token', 'word'] (stored: ['token'])" in str(verdict)


def test_show_and_the_card_say_a_merged_profile_cannot_be_reproduced(tmp_path):
    """Helper 244: `hf-txray show` printed "pinned: ... a.parquet ..., 3 texts (hf-txray reproduce recomputes it)"
    for a merge of 3 + 2 texts, and the card's Reproduce table "yes", while reproduce refuses it (its record is the
    first part's)."""
    from hf_txray.card import build_card
    from hf_txray.display import profile_text

    model = str(save_tiny_model(tmp_path / "m"))
    first, second = (hf_txray.analyze(model, str(save_parquet_dataset(tmp_path / name, {"train": texts})), **OPTIONS)
                     for name, texts in (("a", TEXTS_V1[:3]), ("b", TEXTS_V2[:2])))
    assert "(hf-txray reproduce recomputes it)" in profile_text(first)
    merged = first.merge(second)
    assert merged.meta.num_examples == 5 and merged.meta.provenance["dataset"]["num_texts"] == 3
    pinned = next(line for line in profile_text(merged).splitlines() if line.startswith("pinned: "))
    assert pinned.endswith("(hf-txray reproduce cannot recompute it: it lacks the records of 1 of its 2 merged parts "
                           "(Profile.merge keeps the first part's record, whose sources hold that part's texts only): "
                           "reproduce each part's saved profile, then merge them again)")
    card = str(build_card({"default": merged}, {}, {}, {}, repo_id="user/repo"))
    section = card[card.index("## Reproduce"):]
    row = next(line for line in section.splitlines() if line.startswith("| default"))
    assert row.split("|")[-2].strip().startswith("no: it lacks the records of 1 of its 2 merged parts")
    with pytest.raises(ReproducibilityError, match="merged from 2 separately profiled parts"):
        hf_txray.reproduce_profile(merged)


def test_the_pinned_texts_beside_the_profiled_ones_say_what_each_counts(tmp_path):
    """Gap 3 (helper 254): `hf-txray show` printed "corpus: ..., 4 texts" over "pinned: ..., 40 texts" for texts in
    memory stopped by max_positions (the record pins the corpus given, which reproduce reloads and stops again), and
    "5 texts" over "pinned: ..., 3 texts" for a merge of 3 + 2 texts (the record is the first part's), saying nothing
    of why; the card's Reproduce table showed the same bare 40 and 3. Both now name what each number counts."""
    from hf_txray.card import build_card
    from hf_txray.display import profile_text

    def pinned(profile):
        return next(line for line in profile_text(profile).splitlines() if line.startswith("pinned: "))

    def card_texts(profile):
        card = str(build_card({"default": profile}, {}, {}, {}, repo_id="user/repo"))
        section = card[card.index("## Reproduce"):]
        return next(line for line in section.splitlines() if line.startswith("| default")).split("|")[-3].strip()

    model = str(save_tiny_model(tmp_path / "m"))
    texts = TEXTS_V1 * 4
    whole = hf_txray.analyze(model, texts, **OPTIONS)
    assert f", {len(texts)} texts, " in pinned(whole) and card_texts(whole) == str(len(texts))  # as before
    stopped = hf_txray.analyze(model, texts, max_positions=30, **OPTIONS)
    assert stopped.meta.num_examples < stopped.meta.provenance["dataset"]["num_texts"] == len(texts)
    said = f"{len(texts)} texts given, of which {stopped.meta.num_examples} profiled (max_positions=30 stopped the run)"
    assert f", {said}, " in pinned(stopped) and card_texts(stopped) == said
    first, second = (hf_txray.analyze(model, str(save_parquet_dataset(tmp_path / name, {"train": part})), **OPTIONS)
                     for name, part in (("a", TEXTS_V1[:3]), ("b", TEXTS_V2[:2])))
    merged = first.merge(second)
    said = "3 texts (its first part's: the merge of 2 parts holds 5)"
    assert f", {said}, " in pinned(merged) and card_texts(merged) == said


def test_a_profile_saved_before_char_end_covered_stripped_marks_reproduces_as_identical(tmp_path):
    """Since b625810 a top example's ``char_end`` (so its ``token``, the span as written) covers the combining marks
    after it that no token covers: an uncased BERT's ``cafe`` of NFD ``"cafe\\u0301"`` is recorded ``cafe\\u0301``
    (3, 8), where a profile saved before recorded ``cafe`` (3, 7). ``reproduce`` compared the tokens exactly, so such a
    profile, recomputed unchanged, came out "different: top examples differ in token" (measured: MiniLM, 12 NFD
    texts). A token's trailing marks are the display's, not the position's (example id and token index are compared
    exactly): they are left out of the comparison."""
    import unicodedata

    texts = [unicodedata.normalize("NFD", t) for t in ("le café noir .", "un thé . résumé", "naïve café")] * 2
    profile = hf_txray.analyze(str(save_tiny_model(tmp_path / "m")), texts, stage="s", **OPTIONS)
    ex = profile.examples
    marked = ex["token"].map(lambda t: bool(t) and unicodedata.category(t[-1]).startswith("M"))
    assert marked.any()  # tokens that took an accent the tokenizer dropped
    old = copy.copy(profile)  # as saved before: the span ends where the tokenizer's offsets end
    stripped = ex["token"].map(lambda t: t.rstrip("\u0301\u0308"))
    old.examples = ex.assign(token=stripped, char_end=ex["char_end"] - (ex["token"].str.len() - stripped.str.len()))
    assert compare_numbers(old, profile)[0]
    old.save_pretrained(tmp_path / "old")
    assert hf_txray.reproduce(tmp_path / "old", dataset=texts).verdict == "identical"
    edited = copy.copy(profile)  # another token at the same position is still a difference
    edited.examples = ex.assign(token=ex["token"].where(~marked, "x\u0301"))
    assert "top examples differ in token" in "; ".join(compare_numbers(edited, profile)[2])
