"""The artifact contract, once for every artifact: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

Each artifact is built small and real (a tiny-model profile with POS tags, noise sums, position mass, histograms and
output effects; a compare() report; a probe; an ablation curve; a pruning plan; extracted activations). The round
trips are exact (every array with its dtype, every frame with its dtypes); the Hub is the real test server
(tests/hub_server.py) through the real clients.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import hf_txray
from hf_txray import ProfileFormatError, Profile, PruningPlan, TransferReport
from hf_txray.artifact import HEADER_FILE, Artifact, artifact_type_of
from hf_txray.errors import ArtifactNotFoundError, ConfigurationError, HubError
from hf_txray.probing import (AblationCurve, Activations, ProbeConfig, ProbeMetric, ProbingResult, ablation_curve,
                              extract_activations, from_columns, probe_neurons)
from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
from models import SAMPLE_TEXTS, bert_tokenizer, bpe_tokenizer, tiny_bert, tiny_llama_lm as _llama


# ----- the artifacts, small and real ---------------------------------------------------------------------------------
@functools.cache
def profiles() -> tuple[Profile, Profile]:
    run = lambda seed, texts, stage: hf_txray.analyze(  # noqa: E731
        _llama(seed), texts, tokenizer=bpe_tokenizer(), features=("token", "pos"), stage=stage, batch_size=4,
        output_effects=True, output_effects_k=3, model_id="tiny-org/llama-tiny", show_progress=False)
    return run(0, SAMPLE_TEXTS, "pretrained"), run(1, SAMPLE_TEXTS[::-1], "finetuned")


@functools.cache
def probing() -> tuple[ProbingResult, AblationCurve, Activations]:
    rng = np.random.default_rng(0)
    words = [w for w in ("cat", "dog", "runs", "eats", "house", "sleeps", "tree", "jumps") for _ in range(1)]
    rows = {"tokens": [], "tags": []}
    for _ in range(40):
        sentence = [str(w) for w in rng.choice(words, size=int(rng.integers(3, 7)))]
        rows["tokens"].append(sentence)
        rows["tags"].append(["NOUN" if w in ("cat", "dog", "house", "tree") else "VERB" for w in sentence])
    corpus = from_columns(rows, "tokens", "tags")
    model, tokenizer = tiny_bert(), bert_tokenizer()
    acts = extract_activations(model, corpus, tokenizer, layers=[0, 1])
    result = probe_neurons(None, acts, config=ProbeConfig(epochs=3), minimal=False, subset_seeds=(0,))
    curve = ablation_curve(model, result, ProbeMetric(result, corpus, tokenizer), counts=[1, 2], seeds=(0,),
                           name="tiny")
    return result, curve, acts


@functools.cache
def build(kind: str) -> Artifact:
    """The artifact of `kind`, built once per test session (compare() and plans carry a creation time)."""
    if kind == "profile":
        return profiles()[0]
    if kind == "transfer_report":
        return hf_txray.compare(*profiles())
    if kind == "pruning_plan":
        return hf_txray.pruning.plan_pruning(build("transfer_report"), "lost", 0.2, allow_fewer=True)
    return dict(zip(("probing_result", "ablation_curve", "activations"), probing()))[kind]


@functools.cache
def variant(kind: str) -> Artifact:
    """Another artifact of `kind` (a second push to the same repo)."""
    original = build(kind)
    if kind == "profile":
        return profiles()[1]
    if kind == "transfer_report":
        return hf_txray.compare(*profiles()[::-1])
    if kind == "pruning_plan":
        return hf_txray.pruning.plan_pruning(build("transfer_report"), "random", 0.2, seed=1)
    if kind == "probing_result":
        return dataclasses.replace(original, meta=dataclasses.replace(original.meta, name="second"))
    if kind == "ablation_curve":
        return dataclasses.replace(original, name="second", table=original.table.iloc[:2].copy())
    return dataclasses.replace(original, values=np.asarray(original.values) * 2)


KINDS = ["profile", "transfer_report", "probing_result", "ablation_curve", "pruning_plan", "activations"]
CLASSES = {"profile": Profile, "transfer_report": TransferReport, "probing_result": ProbingResult,
           "ablation_curve": AblationCurve, "pruning_plan": PruningPlan, "activations": Activations}


NOT_SAVED = {"path",  # Activations: the folder the values are memory-mapped from (the folder loaded)
             "activations"}  # ProbingResult: its input, kept in memory only (documented)


# ----- exact equality ------------------------------------------------------------------------------------------------
def assert_exact(a, b, where: str = "") -> None:
    """`a` and `b` hold the same values with the same dtypes, recursively (a folder path may differ)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True, obj=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where  # order is not part of a dict's value (JSON sorts keys)
        for key in a:
            assert_exact(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_exact(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert isinstance(b, float) and (a == b or (np.isnan(a) and np.isnan(b))), where
    elif dataclasses.is_dataclass(a) or hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        for name, value in vars(a).items():
            if name not in NOT_SAVED:
                assert_exact(value, vars(b)[name], f"{where}.{name}")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def test_every_artifact_class_follows_the_contract():
    assert sorted(cls.artifact_type for cls in CLASSES.values()) == sorted(KINDS)
    for kind, cls in CLASSES.items():
        assert issubclass(cls, Artifact) and cls.artifact_type == kind
        for old in ("save", "load", "to_json", "from_json"):
            assert not hasattr(cls, old), f"{cls.__name__}.{old}"


# ----- local round trip ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_is_exact(kind, tmp_path):
    artifact = build(kind)
    folder = artifact.save_pretrained(tmp_path / "saved")
    assert artifact_type_of(folder) == kind
    loaded = type(artifact).from_pretrained(folder)
    assert_exact(artifact, loaded, kind)
    assert loaded == artifact and not (loaded != artifact)  # == is value equality for every artifact
    # saving again over it replaces the folder as a whole (str paths work too)
    loaded.save_pretrained(str(folder))
    assert_exact(artifact, type(artifact).from_pretrained(str(folder)), kind)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


@pytest.mark.parametrize("kind", KINDS)
def test_a_relative_folder_with_a_colon_in_its_first_name_loads(kind, tmp_path, monkeypatch):
    """``--out run-12:30`` (a time in the name) saved, and every reader said "run-12:30/meta/...parquet is damaged
    (ArrowInvalid: Unrecognized filesystem type in URI)": pyarrow read the relative path as a URI of scheme
    ``run-12``. The folder loads as it was saved."""
    monkeypatch.chdir(tmp_path)
    artifact = build(kind)
    artifact.save_pretrained("run-12:30")
    assert_exact(artifact, type(artifact).from_pretrained("run-12:30"), kind)


def test_export_and_push_refuse_a_switch_that_is_not_a_bool(tmp_path):
    """save_to_disk(..., plots="no") drew the plots (a truthy string), and push_to_hub(..., private="no") passed the
    string on to the Hub's create_repo; both are refused before anything is read, written or sent."""
    for call in (lambda: hf_txray.save_to_disk(tmp_path / "out", profiles=list(profiles()), plots="no"),
                 lambda: hf_txray.push_to_hub("me/results", profiles=list(profiles()), plots="no"),
                 lambda: hf_txray.push_to_hub("me/results", profiles=list(profiles()), private="no")):
        with pytest.raises(hf_txray.ConfigurationError, match=r"(plots|private) must be True or False, got 'no'"):
            call()
    assert not (tmp_path / "out").exists()


def test_artifact_push_switches_and_card_names_are_checked_before_any_io(tmp_path, monkeypatch):
    """Helper 369: Artifact.push_to_hub(create_pr="no") opened a pull request and private="no" went on to the Hub's
    create_repo (both sent as the string 'no'), commit_message=3 went on to the commit, and save_to_disk(pretty_name=
    ['x']) titled the card "['x']". Refused as the other switches and options are, before a token is read or a file
    written."""
    import hf_txray.artifact as artifact_module
    import hf_txray.hub as hub_module

    def no_io(*args, **kwargs):
        pytest.fail("I/O before the arguments were checked")

    for module in (artifact_module, hub_module):
        monkeypatch.setattr(module, "resolve_token", no_io)
        monkeypatch.setattr(module, "upload_folder", no_io)
    profile = build("profile")
    for options, match in ((dict(private="no"), "private must be True or False, got 'no'"),
                           (dict(create_pr="no"), "create_pr must be True or False, got 'no'"),
                           (dict(commit_message=3), r"commit_message must be a string \(or None\), got 3")):
        with pytest.raises(hf_txray.ConfigurationError, match=match):
            profile.push_to_hub("me/repo", **options)
    with pytest.raises(hf_txray.ConfigurationError, match=r"pretty_name must be a string \(or None\), got \['x'\]"):
        hf_txray.save_to_disk(tmp_path / "out", profiles=list(profiles()), pretty_name=["x"])
    assert not (tmp_path / "out").exists()
    for call in (lambda: hf_txray.push_to_hub("me/results", profiles=list(profiles()), pretty_name=["x"]),
                 lambda: hf_txray.push_to_hub("me/results", profiles=list(profiles()), commit_message=3),
                 lambda: hub_module.push_folder(tmp_path, "me/results", private="no")):
        with pytest.raises(hf_txray.ConfigurationError, match="must be"):
            call()


def test_an_export_in_a_relative_folder_with_a_colon_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hf_txray.save_to_disk("ex:1", profiles=list(profiles()), reports=[build("transfer_report")], plots=False)
    loaded = hf_txray.load("ex:1")
    assert sorted(loaded.profiles) == ["finetuned", "pretrained"]
    assert loaded.profiles["pretrained"] == profiles()[0]


@pytest.mark.parametrize("kind", KINDS)
def test_save_refuses_a_folder_of_other_files_and_keeps_them(kind, tmp_path, monkeypatch):
    artifact = build(kind)
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("x")
    (folder / "sub" / "model.bin").write_text("y")
    with pytest.raises(ConfigurationError, match=r"mine is not empty and holds no hf_txray artifact.*new or empty"):
        artifact.save_pretrained(folder)
    assert (folder / "notes.txt").read_text() == "x" and (folder / "sub" / "model.bin").read_text() == "y"
    with pytest.raises(ConfigurationError, match="is a file"):
        artifact.save_pretrained(folder / "notes.txt")
    # the current working directory cannot be replaced: refused, with no temporary folder left anywhere
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(ConfigurationError, match="current working directory"):
        artifact.save_pretrained(".")
    assert not any(empty.iterdir()) and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # an empty folder is fine, and the folder gets the usual permissions (not mkdtemp's private 0o700)
    saved = artifact.save_pretrained(empty / "out")
    umask = os.umask(0)
    os.umask(umask)
    assert (saved.stat().st_mode & 0o777) == 0o777 & ~umask
    # a folder holding a saved artifact of another type is refused and kept (helper 96: `hf-txray compare A B --out
    # C` replaced C's profile with a report); one of the same type is replaced
    other_kind = "profile" if kind != "profile" else "transfer_report"
    build(other_kind).save_pretrained(tmp_path / "other")
    with pytest.raises(ConfigurationError, match=rf"other holds a saved {other_kind.replace('_', ' ')}; .* would "
                                                 rf"replace it with a {kind.replace('_', ' ')}: give another folder"):
        artifact.save_pretrained(tmp_path / "other")
    assert artifact_type_of(tmp_path / "other") == other_kind
    assert artifact_type_of(artifact.save_pretrained(saved)) == kind


@pytest.mark.parametrize("kind", ["profile", "transfer_report"])
def test_a_folder_that_cannot_be_written_is_an_output_error_naming_it_and_the_old_save_is_kept(kind, tmp_path,
                                                                                                monkeypatch):
    """A failed save raised a raw PermissionError naming the hidden temporary folder (found by a fresh helper)."""
    import errno

    from hf_txray import OutputError
    from hf_txray import io_utils

    artifact = build(kind)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match=r"Cannot write .*afile/out: .*afile is a file") as caught:
        artifact.save_pretrained(tmp_path / "afile" / "out")  # its parent is a file: no folder can be made there
    assert isinstance(caught.value, OSError) and ".tmp-" not in str(caught.value)
    real_access = os.access
    monkeypatch.setattr(io_utils.os, "access", lambda path, mode: False if str(path) == str(tmp_path / "ro") else
                        real_access(path, mode))
    (tmp_path / "ro").mkdir()
    with pytest.raises(OutputError, match=r"Cannot write .*ro/out: .*ro is not writable"):
        artifact.save_pretrained(tmp_path / "ro" / "out")  # refused before anything is written
    assert not any((tmp_path / "ro").iterdir())
    monkeypatch.undo()
    folder = artifact.save_pretrained(tmp_path / "saved")
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(io_utils.os, "replace", full_disk)
    with pytest.raises(OutputError, match=r"Cannot write .*saved: No space left on device") as caught:
        artifact.save_pretrained(folder)
    assert ".tmp-" not in str(caught.value)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # the old save is intact
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    assert_exact(artifact, type(artifact).from_pretrained(folder), kind)
    # helper 99: a full disk met by a writer that names no file (pyarrow, the card) passed through as a bare OSError
    def nameless_full_disk(self, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(artifact), "_save_pretrained", nameless_full_disk)
    with pytest.raises(OutputError, match=r"Cannot write .*saved: No space left on device"):
        artifact.save_pretrained(folder)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_file_written_through_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    """Helper 224: atomic_file renamed its temporary file onto the link path, so the link became a regular file and
    the file it pointed at kept the old content (a figure or JSON saved to a linked path); atomic_dir did the same to
    a linked folder."""
    from hf_txray import OutputError
    from hf_txray.io_utils import atomic_file, read_json, write_json

    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.json"
    target.write_text('{"old": 1}\n')
    link = tmp_path / "link.json"
    link.symlink_to(os.path.join("real", "data.json"))  # relative, as `ln -s` usually makes them
    chain = tmp_path / "chain.json"
    chain.symlink_to(link)
    write_json(link, {"new": 2})
    assert link.is_symlink() and read_json(target) == {"new": 2}
    assert atomic_file(chain, lambda tmp: tmp.write_text("3")) == chain
    assert chain.is_symlink() and link.is_symlink() and target.read_text() == "3"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "new.json")
    write_json(dangling, [1])
    assert dangling.is_symlink() and read_json(tmp_path / "real" / "new.json") == [1]
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.json", "new.json"]  # no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.json", "dangling.json", "link.json", "real"]
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OutputError, match=r"Cannot write .*a: it is a symbolic link in a loop"):
        write_json(tmp_path / "a", {})
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    # a folder saved through a link (save_pretrained to a linked folder): the link's folder is replaced
    from hf_txray.io_utils import atomic_dir

    (tmp_path / "real" / "saved").mkdir()
    (tmp_path / "real" / "saved" / "old.txt").write_text("old")
    (tmp_path / "out").symlink_to(tmp_path / "real" / "saved")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "new.txt").write_text("new")
    assert (tmp_path / "out").is_symlink() and os.listdir(tmp_path / "real" / "saved") == ["new.txt"]
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.json", "new.json", "saved"]


def test_json_records_are_strict_and_a_refused_one_leaves_the_old_file(tmp_path):
    """Helper 224: write_json wrote NaN as ``NaN`` (no JSON: other readers refuse the file) and any object as its
    str (an array as ``"[0 1 2]"``, read back as text). Now numpy scalars, paths and devices are written as their
    values, and anything else is refused, naming where it is, before the file is touched."""
    import pathlib

    import torch

    from hf_txray.io_utils import read_json, write_json

    path = tmp_path / "record.json"
    write_json(path, {"count": np.int64(3), "share": np.float32(0.5), "flag": np.bool_(True), 7: (1, 2),
                      "folder": pathlib.Path("/data/x"), "device": torch.device("cpu"), "none": None})
    assert read_json(path) == {"count": 3, "share": 0.5, "flag": True, "7": [1, 2], "folder": "/data/x",
                               "device": "cpu", "none": None}
    before = path.read_bytes()
    for payload, where in (({"a": [1, {"b": float("nan")}]}, r"payload\['a'\]\[1\]\['b'\] is nan"),
                           ({"a": np.float32("inf")}, r"payload\['a'\] is np.float32\(inf\)"),
                           ({"a": np.arange(3)}, r"payload\['a'\] is array\(\[0, 1, 2\]\) \(ndarray\)"),
                           ({"a": {1, 2}}, r"payload\['a'\] is \{1, 2\} \(set\)"),
                           ({(0, 1): 2}, r"payload key is \(0, 1\)")):
        with pytest.raises(ConfigurationError, match=rf"Cannot write .*record.json: {where}.*Nothing was written"):
            write_json(path, payload)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    json.loads(before, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


def test_the_meta_config_says_which_columns_hold_json_text(tmp_path):
    """The meta config keeps the nested records (the whole ProfileMeta or ReportMeta, options, provenance) as JSON
    text, which the card and README described as "config, versions" only: a datasets.load_dataset(repo, "meta") user
    met strings. The card names those columns, and each reads with json.loads."""
    import datasets

    folder = hf_txray.save_to_disk(tmp_path / "results", [build("profile")], plots=False)
    json_columns = ["metadata", "options", "provenance", "data_files", "columns"]
    text = (folder / "README.md").read_text()
    assert all(f"`{c}`" in text for c in json_columns) and "as JSON text (`json.loads`)" in text
    meta = datasets.load_dataset(str(folder), "meta", split="train", cache_dir=str(tmp_path / "cache"))
    for column in json_columns:
        assert meta.features[column].dtype == "string", column
        for value in meta[column]:
            assert value is None or isinstance(json.loads(value), (dict, list, type(None))), column
    assert json.loads(meta["metadata"][0])["stage"] == meta["name"][0]


@pytest.mark.parametrize("kind", ["profile", "transfer_report", "probing_result", "ablation_curve"])
def test_results_tables_are_the_dataset_layout(kind, tmp_path):
    """Tables load with datasets.load_dataset from the folder, as from a Hub repo; the card declares them."""
    import datasets
    from huggingface_hub import DatasetCard

    artifact = build(kind)
    folder = artifact.save_pretrained(tmp_path / kind)
    configs = [c["config_name"] for c in DatasetCard.load(folder / "README.md").data.to_dict()["configs"]]
    assert configs and all((folder / c).is_dir() for c in configs)
    for config in configs:
        assert datasets.load_dataset(str(folder), config, split="train", cache_dir=str(tmp_path / "cache")).num_rows
    if kind in ("profile", "transfer_report"):  # hf_txray.load reads a saved profile or report as a results folder
        profiles, reports = hf_txray.load(folder)
        assert (profiles, reports) == (({artifact.stage: artifact}, {}) if kind == "profile"
                                       else ({}, {artifact.name: artifact}))


@pytest.mark.parametrize("noise", [True, False])
def test_empty_profile_round_trips_with_or_without_noise_sums(noise, tmp_path):
    """A profile with no credit yet (a checkpoint before the first batch) keeps whether it has noise sums."""
    from hf_txray.profile import FeatureTable

    full = build("profile")
    none = np.zeros(0, np.int64)
    sums = {"mass_odd": np.zeros(0), "count_odd": none, "mass_sq": np.zeros(0)} if noise else {}
    table = FeatureTable([], none, none, np.zeros(0), none, none, **sums)
    empty = Profile(dataclasses.replace(full.meta, stage="empty", num_positions=0, num_examples=0, num_empty=0,
                                        num_feature_texts={ft: 0 for ft in full.feature_types}),
                    np.zeros_like(full.neuron_mass), np.zeros_like(full.neuron_count),
                    {ft: table for ft in full.feature_types})
    loaded = Profile.from_pretrained(empty.save_pretrained(tmp_path / "empty"))
    assert_exact(empty, loaded, "empty")
    assert all(t.has_noise is noise for t in loaded.tables.values())


# ----- errors ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_missing_folder_wrong_artifact_and_newer_format_are_refused(kind, tmp_path):
    cls = CLASSES[kind]
    with pytest.raises(ArtifactNotFoundError, match="No folder"):
        cls.from_pretrained(tmp_path / "missing")
    with pytest.raises(ArtifactNotFoundError, match="No folder"):  # looks like a path: never a Hub lookup
        cls.from_pretrained(f"{tmp_path}/missing/deeper")
    (tmp_path / "saved").mkdir()
    with pytest.raises(ArtifactNotFoundError, match=f"No folder .*savd: Did you mean '{tmp_path}/saved'"):
        cls.from_pretrained(tmp_path / "savd")  # a typo: the close names of its folder
    (tmp_path / "Results").mkdir()
    with pytest.raises(ArtifactNotFoundError, match=f"Did you mean '{tmp_path}/Results'"):
        cls.from_pretrained(tmp_path / "results")  # a case-only slip, which a similarity ratio alone missed
    with pytest.raises(ArtifactNotFoundError, match=f"Did you mean '{tmp_path}/Results/run1'"):
        cls.from_pretrained(tmp_path / "Resluts" / "run1")  # a typo in a folder above: the rest of the path kept
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProfileFormatError, match=f"not a saved hf_txray {kind.replace('_', ' ')}"):
        cls.from_pretrained(tmp_path / "empty")
    other = "activations" if kind == "profile" else "profile"
    folder = build(other).save_pretrained(tmp_path / other)
    with pytest.raises(ProfileFormatError, match=f"holds a saved hf_txray {other}, not a {kind.replace('_', ' ')}"):
        cls.from_pretrained(folder)
    # helper 180: the message named no class ("load it with the class of that artifact"); it names the loader
    loader = "Activations" if other == "activations" else "Profile"
    with pytest.raises(ProfileFormatError, match=re.escape(f"load it with hf_txray.{loader}.from_pretrained(")):
        cls.from_pretrained(folder)
    folder = build(kind).save_pretrained(tmp_path / kind)
    header = json.loads((folder / HEADER_FILE).read_text())
    (folder / HEADER_FILE).write_text(json.dumps({**header, "format_version": cls.format_version + 1}))
    with pytest.raises(ProfileFormatError, match="newer than this hf_txray"):
        cls.from_pretrained(folder)


def test_a_revision_asked_of_a_local_folder_is_refused_not_ignored(tmp_path, capsys, monkeypatch):
    """Helper 123: revision= was ignored for local folders (the folder read as it is, whatever branch was asked)."""
    from hf_txray.cli import main as cli_main
    from hf_txray.probing import load_probing
    from hf_txray.reproduce import stored_profiles

    saved = build("profile").save_pretrained(tmp_path / "profile")
    export = hf_txray.save_to_disk(tmp_path / "export", profiles=list(profiles()))
    calls = [lambda: Profile.from_pretrained(saved, revision="dev"), lambda: hf_txray.load(export, revision="dev"),
             lambda: load_probing(export, revision="dev"), lambda: stored_profiles(saved, revision="dev"),
             lambda: stored_profiles(tmp_path, revision="dev")]
    for call in calls:
        with pytest.raises(ConfigurationError, match="revision='dev' applies to Hub repos only.*local folder"):
            call()
    assert Profile.from_pretrained(saved) == build("profile")  # without it, read as before
    monkeypatch.chdir(tmp_path)  # helper 127: a folder named as the repo hides it; the message said "pass the repo id"
    build("profile").save_pretrained(tmp_path / "me" / "repo")
    with pytest.raises(ConfigurationError, match="A local folder of that name hides the Hub repo 'me/repo': rename"):
        Profile.from_pretrained("me/repo", revision="dev")
    assert cli_main(["compare", str(saved), str(saved), "--revision", "dev", "--out", str(tmp_path / "r")]) != 0
    assert "applies to Hub repos only" in capsys.readouterr().err


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_header_is_refused_naming_the_file_and_a_new_save_replaces_it(kind, tmp_path):
    """A truncated or overwritten header raised json's own error (or AttributeError for a JSON list), naming no file;
    the CLI printed a traceback."""
    cls, artifact = CLASSES[kind], build(kind)
    folder = artifact.save_pretrained(tmp_path / kind)
    for damage in ('{"artifact": "prof', "", "[1, 2]"):
        (folder / HEADER_FILE).write_text(damage)
        with pytest.raises(ProfileFormatError, match=rf"{HEADER_FILE} is damaged .*save \(or push\) it again"):
            cls.from_pretrained(folder)
    assert_exact(artifact, cls.from_pretrained(artifact.save_pretrained(folder)), kind)  # still hf_txray's folder


def test_a_header_with_values_edited_into_another_type_is_refused_as_damaged(tmp_path):
    """Helper 250: a header whose format_version was edited to "abc" raised a bare ValueError (int("abc")), to null a
    TypeError, to 2.5 loaded as version 2; an artifact type edited into a list raised "unhashable type: 'list'"."""
    artifact = build("profile")
    folder = artifact.save_pretrained(tmp_path / "profile")
    header = json.loads((folder / HEADER_FILE).read_text())
    for edit in ({"format_version": "abc"}, {"format_version": None}, {"format_version": 2.5},
                 {"format_version": True}, {"format_version": -1}, {"artifact": ["profile"]}):
        (folder / HEADER_FILE).write_text(json.dumps({**header, **edit}))
        with pytest.raises(ProfileFormatError, match=rf"{HEADER_FILE} is damaged \(its .* is .*\).*save \(or push\)"):
            Profile.from_pretrained(folder)
        assert artifact_type_of(folder) is None
    assert_exact(artifact, Profile.from_pretrained(artifact.save_pretrained(folder)), "profile")  # replaced


@pytest.mark.parametrize("kind", ["profile", "transfer_report"])
def test_a_damaged_or_missing_table_is_refused_not_loaded_in_part(kind, tmp_path):
    """A report whose summary/ was deleted loaded with empty layers and mass_share tables; one whose transfer_reports/
    parquet was deleted, with no neurons; a truncated parquet raised pyarrow's ArrowInvalid."""
    cls, artifact = CLASSES[kind], build(kind)
    folder = artifact.save_pretrained(tmp_path / kind)
    table = "distributions" if kind == "profile" else "transfer_reports"
    shard = next((folder / table).glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ProfileFormatError, match=rf"{table}.*is damaged and cannot be read .*again"):
        cls.from_pretrained(folder)
    if kind == "transfer_report":
        for missing, said in (("summary", r"layers has 0 rows, saved with \d+ \(in \S+/summary/\)"),
                              ("transfer_reports", r"neurons has 0 rows, saved with \d+ \(in \S+/transfer_reports/\)")):
            folder = artifact.save_pretrained(tmp_path / missing)
            shutil.rmtree(folder / missing)
            with pytest.raises(ProfileFormatError, match=rf"incomplete: .*{said}.*Save"):
                cls.from_pretrained(folder)
    # a second meta file (copied from another save) listed the artifact twice, and the copy's meta won
    folder = artifact.save_pretrained(tmp_path / "twice")
    meta = next((folder / "meta").glob("*.parquet"))
    shutil.copy(meta, folder / "meta" / "train-00001-of-00002.parquet")
    with pytest.raises(ProfileFormatError, match=r"more than once in meta/: a meta file from another save"):
        cls.from_pretrained(folder)


def _edit_saved_meta(folder, edit) -> None:
    """Rewrite the metadata records of a saved folder's meta/ file through `edit`, keeping its save stamp (as a file a
    newer hf_txray wrote with one more field would carry its own)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard = next((folder / "meta").glob("*.parquet"))
    table = pq.read_table(shard)
    i = table.schema.get_field_index("metadata")
    records = [json.dumps(edit(json.loads(record))) for record in table.column(i).to_pylist()]
    table = table.set_column(i, table.schema.field(i), pa.array(records, pa.string()))
    pq.write_table(table.replace_schema_metadata(table.schema.metadata), shard)


@pytest.mark.parametrize("kind", ["profile", "transfer_report"])
def test_metadata_with_a_field_more_loads_and_one_less_is_refused(kind, tmp_path):
    """Helper 308: a report whose saved metadata held a field this hf_txray does not know (written by a newer one)
    ended in a bare ``TypeError: ReportMeta.__init__() got an unexpected keyword argument 'future_field'``, where a
    profile's loads (the field left out); a record lacking a required field ended in ``TypeError: ...missing 1
    required positional argument: 'site'`` for both. Both now read alike: the field more is left out, the field
    less is a ProfileFormatError naming it."""
    cls, artifact = CLASSES[kind], build(kind)
    folder = artifact.save_pretrained(tmp_path / "more")
    _edit_saved_meta(folder, lambda record: {**record, "future_field": [1, 2]})
    assert cls.from_pretrained(folder) == artifact
    folder = artifact.save_pretrained(tmp_path / "less")
    _edit_saved_meta(folder, lambda record: {k: v for k, v in record.items() if k != "site"})
    with pytest.raises(ProfileFormatError, match=r"lacks the field\(s\) 'site'.*Save it again"):
        cls.from_pretrained(folder)


@pytest.mark.parametrize("marker", ["txray_profile.json", "txray_report.json"])
def test_folder_in_the_old_format_says_how_to_convert(marker, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / marker).write_text(json.dumps({"format": "hf_txray.profile", "format_version": 1, "meta": {}}))
    with pytest.raises(ProfileFormatError, match="before the artifact contract.*save it again"):
        Profile.from_pretrained(folder)


# ----- the Hub ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_push_and_load_from_the_hub_at_a_revision(kind, hub, tmp_path, caplog):
    artifact = build(kind)
    repo_id = f"{hub.username}/{kind.replace('_', '-')}"
    first = artifact.push_to_hub(repo_id, private=True)
    files = hub.server.repo_files(repo_id)
    assert HEADER_FILE in files
    assert_exact(artifact, type(artifact).from_pretrained(repo_id, cache_dir=tmp_path / "cache"), kind)
    # a second, different push replaces it; the first commit still loads by its hash
    other = variant(kind)
    other.push_to_hub(repo_id)
    assert_exact(other, type(artifact).from_pretrained(repo_id, cache_dir=tmp_path / "cache"), kind)
    assert_exact(artifact, type(artifact).from_pretrained(repo_id, revision=first.oid, cache_dir=tmp_path / "cache"),
                 kind)
    assert hub.token not in caplog.text
    if kind in ("profile", "transfer_report"):  # helper 123: their card named neither the repo nor the branch
        artifact.push_to_hub(kind.replace("_", "-"), revision="dev")  # a bare name: the token user's repo
        readme = hub.server.repo_files(repo_id, revision="dev")["README.md"].decode()
        assert f'load_dataset("{repo_id}", "meta", split="train", revision="dev")' in readme
        assert "<repo_id>" not in readme and "<this folder>" not in readme and "force_redownload" not in readme
        assert "<this folder>" in build(kind).save_pretrained(tmp_path / "s").joinpath("README.md").read_text()


def test_a_pull_request_against_a_branch_has_a_card_naming_that_branch(monkeypatch):
    """Helper 127: with create_pr=True the card named no branch, though the pull request merges into `revision`."""
    import hf_txray.artifact as artifact_module

    sent = {}

    def upload(folder, repo_id, **kwargs):  # what would go up: the folder as written, and where to
        sent.update(kwargs, readme=(folder / "README.md").read_text())

    monkeypatch.setattr(artifact_module, "upload_folder", upload)
    build("profile").push_to_hub("me/repo", token="hf_not_sent", revision="dev", create_pr=True)
    assert (sent["revision"], sent["create_pr"]) == ("dev", True)
    assert 'load_dataset("me/repo", "meta", split="train", revision="dev")' in sent["readme"]


def test_wrong_artifact_on_the_hub_names_the_repo_not_the_cache(hub, tmp_path):
    repo_id = f"{hub.username}/a-profile"
    first = build("profile").push_to_hub(repo_id)
    for revision, named in ((None, repr(repo_id)), (first.oid, f"{repo_id!r} at revision {first.oid!r}")):
        with pytest.raises(ProfileFormatError, match="holds a saved hf_txray profile, not a transfer report") as err:
            TransferReport.from_pretrained(repo_id, revision=revision, cache_dir=tmp_path / "cache")
        assert f"the Hub dataset {named} holds" in str(err.value)
        assert str(tmp_path) not in str(err.value) and "snapshots" not in str(err.value)
    build("pruning_plan").push_to_hub(f"{hub.username}/a-plan")
    with pytest.raises(ProfileFormatError) as err:  # hf_txray.load of a repo that is no results folder
        hf_txray.load(f"{hub.username}/a-plan")
    assert f"the Hub dataset '{hub.username}/a-plan'" in str(err.value) and "snapshots" not in str(err.value)


def test_wrong_artifact_on_the_hub_suggests_a_loader_call_that_runs(hub, tmp_path):
    """Helper 268: the suggested loader took the words naming the repo as its argument,
    ``PruningPlan.from_pretrained('the Hub dataset 'me/plan' at revision 'dev'')``: it names the repo id, revision
    and subfolder as they were passed, and the call it suggests loads the artifact."""
    plan, repo_id = build("pruning_plan"), f"{hub.username}/plan-268"
    plan.push_to_hub(repo_id, revision="dev")
    plan.save_pretrained(tmp_path / "plan")
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=tmp_path / "plan",
                          path_in_repo="runs/plan", revision="dev")
    for kwargs, call in (({"revision": "dev"}, f"from_pretrained({repo_id!r}, revision='dev')"),
                         ({"revision": "dev", "subfolder": "runs/plan"},
                          f"from_pretrained({repo_id!r}, revision='dev', subfolder='runs/plan')")):
        with pytest.raises(ProfileFormatError) as err:
            Profile.from_pretrained(repo_id, cache_dir=tmp_path / "cache", **kwargs)
        message = str(err.value)
        assert f"load it with hf_txray.PruningPlan.{call}." in message, message
        assert "from_pretrained('the Hub" not in message
        assert PruningPlan.from_pretrained(repo_id, cache_dir=tmp_path / "cache", **kwargs) == plan


def test_hub_errors_name_the_fix_and_never_the_token(hub, tmp_path, monkeypatch):
    profile = build("profile")
    with pytest.raises(ConfigurationError, match="Invalid Hub repo id"):
        profile.push_to_hub("not a repo id")
    with pytest.raises(HubError, match="Could not download the Hub dataset") as err:
        Profile.from_pretrained(f"{hub.username}/does-not-exist", token=hub.token)
    assert hub.token not in str(err.value)
    profile.push_to_hub(f"{hub.username}/private-profile", private=True)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubError, match="private"):
        Profile.from_pretrained(f"{hub.username}/private-profile", token=False, cache_dir=tmp_path / "fresh")
    with pytest.raises(HubError, match="No Hugging Face token"):
        profile.push_to_hub(f"{hub.username}/anything")


def test_offline_loads_from_the_cache_only(hub, tmp_path, monkeypatch):
    profile = build("profile")
    repo_id = f"{hub.username}/cached"
    profile.push_to_hub(repo_id)
    assert Profile.from_pretrained(repo_id, cache_dir=tmp_path / "cache") == profile  # fills the cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert Profile.from_pretrained(repo_id, cache_dir=tmp_path / "cache") == profile
    with pytest.raises(HubError, match="offline"):
        Profile.from_pretrained(repo_id, cache_dir=tmp_path / "empty-cache")
    shutil.rmtree(tmp_path / "cache")


def test_no_artifact_imports_the_hub_layer():
    """The results layer (hub.py, export.py) sits above the artifacts: no artifact module, nor the layers below them,
    imports it (lazily either)."""
    import ast
    from pathlib import Path

    package = Path(hf_txray.__file__).parent
    below = ["artifact.py", "hub_io.py", "layout.py", "card.py", "profile.py", "report.py", "probing/layout.py",
             "probing/pipeline.py", "probing/ablation.py", "probing/extraction.py", "pruning/plan.py"]
    for name in below:
        tree = ast.parse((package / name).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"hub", "export", "hf_txray.hub", "hf_txray.export"}, name


@pytest.mark.parametrize("kind", ["probing_result", "ablation_curve", "activations"])
def test_equality_sees_a_changed_value_inside_arrays_and_tables(kind):
    """Value equality reaches into arrays and frames (a generated dataclass == would raise on them)."""
    import copy

    artifact = build(kind)
    other = copy.deepcopy(artifact)
    assert other == artifact
    if kind == "ablation_curve":
        other.table.loc[0, "value"] += 1.0
    elif kind == "activations":
        other.labels = other.labels.copy()
        other.labels[0] += 1
    else:
        other.probe.weight = other.probe.weight + 1.0
    assert other != artifact


def test_a_failed_push_names_what_it_uploaded_not_its_temporary_folder(hub):
    """The error named /tmp/hf_txray-push-XXXX/profile, removed by the time it was read, and gave no way forward."""
    hub.server.fail_next_commit = True
    with pytest.raises(HubError) as caught:
        build("profile").push_to_hub(f"{hub.username}/flaky-profile")
    message = str(caught.value)
    assert message.startswith(f"Uploading the profile to the Hub dataset '{hub.username}/flaky-profile' failed")
    assert "hf_txray-push-" not in message and "push_to_hub again" in message and hub.token not in message


@pytest.mark.parametrize("kind", ["probing_result", "pruning_plan"])
def test_pushed_artifacts_name_no_local_path(kind, hub, tmp_path):
    """An artifact of a model loaded from a local folder goes up with the folder as a card shows it (its last
    component outside the current directory), in every JSON record; the artifact saved locally keeps the full path."""
    model_dir = tmp_path / "private" / "models" / "bert"
    model_dir.mkdir(parents=True)
    artifact = build(kind)
    if kind == "probing_result":
        artifact = dataclasses.replace(artifact, meta=dataclasses.replace(artifact.meta, model_id=str(model_dir)))
    else:
        artifact = dataclasses.replace(artifact, source={**artifact.source, "model": str(model_dir)})
    repo_id = f"{hub.username}/local-{kind.replace('_', '-')}"
    artifact.push_to_hub(repo_id)
    import io

    import pyarrow.parquet as pq

    files = hub.server.repo_files(repo_id)
    records = {name: data.decode() for name, data in files.items() if name.endswith((".json", ".md"))}
    records.update({name: json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
                    for name, data in files.items() if name.endswith(".parquet")})  # probe_rankings config
    assert records and not [name for name, text in records.items() if str(tmp_path) in text]
    assert not [name for name, data in files.items() if str(tmp_path).encode() in data]  # statistics, dictionaries
    assert any('"bert"' in text for text in records.values())
    artifact.save_pretrained(tmp_path / "saved")  # locally: the full path, for reproduce and the user
    assert any(str(model_dir) in p.read_text() for p in (tmp_path / "saved").rglob("*.json"))
    loaded = type(artifact).from_pretrained(repo_id, cache_dir=tmp_path / "cache")
    assert (loaded.meta.model_id if kind == "probing_result" else loaded.source["model"]) == "bert"


def test_pushed_activations_keep_their_data_even_where_it_looks_like_a_path(hub, tmp_path):
    """The push's clean-up of local paths rewrote every absolute-looking string of an artifact's JSON, data too:
    a word type "/usr/local/bin" came back as "bin". Only source fields are rewritten now."""
    acts = build("activations")
    vocab = list(acts.type_vocab)
    vocab[:2] = ["/usr/local/bin", "~/notes.txt"]
    odd = dataclasses.replace(acts, type_vocab=vocab, label_names=["/etc/x", *acts.label_names[1:]])
    odd.push_to_hub(f"{hub.username}/odd-acts")
    back = Activations.from_pretrained(f"{hub.username}/odd-acts", cache_dir=tmp_path / "cache")
    assert back.type_vocab == vocab and back.label_names == odd.label_names


def test_the_summary_configs_model_row_holds_every_figure_of_summary(tmp_path):
    """The `summary` config's model row is report.summary() under the per-layer names: none of its figures null
    (the shares among the tested neurons were left out of it, and read as missing; helper 172)."""
    report = build("transfer_report")
    folder = report.save_pretrained(tmp_path / "report")
    model = pd.read_parquet(folder / "summary").query("kind == 'model'").iloc[0]
    expected = {k: v for k, v in report.summary().items() if k != "neurons"}
    assert expected.keys() <= set(model.index)
    assert {k: model[k] for k in expected} == pytest.approx(expected, nan_ok=True)
    assert not any(np.isnan(model[k]) for k in expected if not np.isnan(expected[k]))


def test_a_feature_type_never_credited_exports_beside_one_that_was(tmp_path):
    """A user feature that labels nothing in one stage's corpus (markup in plain text) leaves that stage's table of
    the feature empty; its neurons' entropy and row totals came out as int64 (numpy's bincount of nothing), so the
    export of that stage with a stage where the feature was credited failed inside pyarrow ("Unable to merge: Field
    entropy_markup has incompatible types: double vs int64")."""
    tags = hf_txray.UserFeature("tags", lambda text: [(m.start(), m.end(), "TAG") for m in re.finditer(r"<b>", text)])
    run = lambda texts, stage: hf_txray.analyze(  # noqa: E731
        tiny_bert(0), texts, tokenizer=bert_tokenizer(), features=("token", tags), stage=stage, show_progress=False)
    tagged, plain = run([f"<b>{t}" for t in SAMPLE_TEXTS], "tagged"), run(SAMPLE_TEXTS, "plain")
    assert len(tagged.tables["tags"].mass) and not len(plain.tables["tags"].mass)
    assert plain.neuron_stats()["entropy_tags"].dtype == np.float64
    folder = hf_txray.save_to_disk(tmp_path / "results", [tagged, plain], plots=False)
    profiles, _ = hf_txray.load(folder)
    assert profiles["plain"] == plain and profiles["tagged"] == tagged


def test_saved_snapshots_are_read_in_the_order_they_were_taken(tmp_path, capsys):
    """Helper 271: a TXRayTrainer's txray/ folder read back (saved_results: `hf-txray export`, `push`, `show`; the
    viewer's folder reading) listed step-0, step-10, step-3, step-6: the viewer's stages table and dropdowns, `show`
    and an exported or pushed results repo put step-10 second. Digit runs now sort as numbers."""
    from hf_txray.cli import main as cli_main
    from hf_txray.hub import saved_results
    from hf_txray.viewer.data import artifact_folders

    taken = ["step-0", "step-3", "step-6", "step-10"]
    first = hf_txray.analyze(tiny_bert(0), SAMPLE_TEXTS[:2], tokenizer=bert_tokenizer(), features=("token",),
                             stage="step-0", show_progress=False)
    root = tmp_path / "txray"
    for stage in taken:  # as the trainer writes them, each compared with the first
        profile = Profile(dataclasses.replace(first.meta, stage=stage), first.neuron_mass, first.neuron_count,
                          first.tables, first.examples, first.neuron_count_odd, first.position_mass)
        profile.save_pretrained(root / "profiles" / stage)
        if stage != "step-0":
            hf_txray.compare(first, profile).save_pretrained(root / "reports" / f"step-0__{stage}")
    profiles, reports = saved_results(root)
    assert [p.stage for p in profiles] == taken
    assert [r.meta.stage_b for r in reports] == taken[1:]
    viewed = artifact_folders(root)
    assert list(viewed[0]) == taken and [r.meta.stage_b for r in viewed[1].values()] == taken[1:]
    assert cli_main(["export", str(root), "--out", str(tmp_path / "export"), "--no-plots"]) == 0
    assert list(hf_txray.load(tmp_path / "export").profiles) == taken


def test_list_columns_past_the_int32_offsets_of_one_arrow_array_are_chunked_and_save_the_same(tmp_path, monkeypatch):
    """Arrow's list and string arrays have int32 offsets: past 2**31 - 1 values in one list column (rows x positions
    of mass_by_position) they wrapped to negative numbers, an invalid array, and past 2 GB of top-example text
    pa.array gave a chunked array that the struct refused (TypeError). Such a column is now a chunked array of
    runs of rows; here the limits are lowered to 64 values and 2000 bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hf_txray import layout

    profile = build("profile")
    whole = layout.neuron_cards_table(profile)
    folder = profile.save_pretrained(tmp_path / "whole")
    monkeypatch.setattr(layout, "LIST_VALUES_LIMIT", 64)
    monkeypatch.setattr(layout, "TEXT_BYTES_LIMIT", 2000)
    chunked = layout.neuron_cards_table(profile)
    assert chunked["mass_by_position"].num_chunks > 1 and chunked.schema == whole.schema
    assert chunked["top_examples"].num_chunks > chunked["top_pos"].num_chunks  # the examples' text too
    lists = [f.name for f in whole.schema if f.type.id == pa.list_(pa.int64()).id]
    assert "top_examples" in lists and "mass_by_position" in lists
    assert all(chunked[name].to_pylist() == whole[name].to_pylist() for name in lists)
    saved = profile.save_pretrained(tmp_path / "chunked")
    assert_exact(profile, Profile.from_pretrained(saved), "profile")
    written = [pq.read_table(f / "neuron_cards") for f in (folder, saved)]  # as written: the same lists
    assert written[0].schema == written[1].schema
    assert all(written[0][name].to_pylist() == written[1][name].to_pylist() for name in lists)


def test_a_card_title_of_several_lines_or_with_a_control_character_is_refused(tmp_path):
    """save_to_disk(pretty_name="TX-Ray\\nrun") wrote the title into the card's YAML metadata as a quoted two-line
    value (the Hub's dataset name; the heading folded it to "TX-Ray run"), and ESC went in as "\\e". Refused with the
    rule for stage and feature names (names.control_characters), suggesting the one-line title, before anything is
    written; a one-line title is the metadata's pretty_name as given."""
    from huggingface_hub import DatasetCard

    for title, shown in (("TX-Ray\nrun", r"'\\n'"), ("TX-Ray\x1b[31m run", r"'\\x1b'"), ("a\u2028b", r"'\\u2028'")):
        with pytest.raises(hf_txray.ConfigurationError, match=rf"pretty_name .* holds the control character\(s\) "
                                                              rf"{shown}.*e\.g\. pretty_name="):
            hf_txray.save_to_disk(tmp_path / "out", profiles=list(profiles()), pretty_name=title)
        assert not (tmp_path / "out").exists()
        with pytest.raises(hf_txray.ConfigurationError, match="holds the control character"):
            hf_txray.push_to_hub("me/results", profiles=list(profiles()), pretty_name=title)
    with pytest.raises(hf_txray.ConfigurationError, match=r"e\.g\. pretty_name='TX-Ray run'\. Nothing was written"):
        hf_txray.save_to_disk(tmp_path / "out", profiles=list(profiles()), pretty_name="TX-Ray\n\trun")
    hf_txray.save_to_disk(tmp_path / "out", profiles=list(profiles()), pretty_name="TX-Ray: run 2 (é)")
    assert DatasetCard.load(tmp_path / "out" / "README.md").data.pretty_name == "TX-Ray: run 2 (é)"
