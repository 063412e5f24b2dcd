"""Sharing results on the Hub: the export layout, the dataset card, push/load through the local Hub server, plots.

Every Hub call is real HTTP to the test server on 127.0.0.1 (tests/hub_server.py) through the real
`huggingface_hub` and `datasets` clients.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import json
import logging
import re
import shlex
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import yaml
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import RepositoryNotFoundError

import hf_txray
from hf_txray import (ConfigurationError, HubError, Profile, ProfileFormatError, PruningPlan, ReportMeta,
                      TransferReport)
from hf_txray.cli import main as cli_main
from hf_txray.card import build_card
from hf_txray.layout import CONFIGS, OPTIONAL_CONFIGS, is_export_folder
from hf_txray.profile import ProfileMeta
from hf_txray.provenance import public_label, public_name, public_path, public_record

WRITTEN = [c for c in CONFIGS if c not in OPTIONAL_CONFIGS]  # these profiles have no output effects
from hf_txray.hub import check_configs_load, default_local_dir
from hf_txray.plots import (plot_hellinger_vs_length, plot_length_shift, plot_mass_share, plot_neuron_mass,
                            report_figures, save_figures)
from hf_txray.profile import FeatureTable
from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
from models import SAMPLE_TEXTS, bert_tokenizer, tiny_bert

FEATURES = ("token", "pos")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Profile, Profile, TransferReport]:
    """Two stages of tiny BERTs (different seeds and text order) and their report; built once (~10 s)."""
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the autouse cache fixture
        mp.setenv("HF_TXRAY_CACHE", str(tmp_path_factory.mktemp("txray-cache")))
        run = lambda seed, texts, stage: hf_txray.analyze(  # noqa: E731
            tiny_bert(seed), texts, tokenizer=bert_tokenizer(), features=FEATURES, stage=stage,
            model_id="tiny-org/bert-tiny", show_progress=False)
        a = run(0, SAMPLE_TEXTS, "pretrained")
        b = run(1, SAMPLE_TEXTS[::-1], "finetuned")
    return a, b, hf_txray.compare(a, b)


def assert_same_results(loaded, profiles: list[Profile], reports: list[TransferReport]) -> None:
    assert set(loaded.profiles) == {p.stage for p in profiles}
    assert set(loaded.reports) == {r.name for r in reports}
    for p in profiles:
        assert loaded.profiles[p.stage] == p
    for r in reports:
        assert loaded.reports[r.name] == r


def declared(card: DatasetCard) -> list[dict]:
    return card.data.to_dict()["configs"]


# ----- local export -----------------------------------------------------------------------------------------------
def test_save_to_disk_layout_card_and_exact_round_trip(results, tmp_path):
    a, b, report = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a, b], [report], repo_id="me/txray", license="apache-2.0")
    for config in WRITTEN:
        assert list((folder / config).glob("*.parquet")), config
    assert sorted(p.name for p in (folder / "plots").glob("*.png")) == [
        "pretrained__finetuned_hellinger_vs_length.png", "pretrained__finetuned_length_shift.png",
        "pretrained__finetuned_mass_share.png", "pretrained__finetuned_neuron_mass.png"]
    assert_same_results(hf_txray.load(folder), [a, b], [report])
    # every config loads with datasets, with the rows the tables hold
    rows = check_configs_load(folder)
    assert rows["neuron_cards"] == 2 * a.num_rows and rows["transfer_reports"] == a.num_rows
    assert rows["meta"] == 3 and rows["summary"] == 1 + len(report.layers) + len(report.mass_share)

    card = DatasetCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert DatasetCardData(**data).to_dict() == data  # the YAML round-trips through DatasetCardData
    assert [c["config_name"] for c in declared(card)] == WRITTEN
    assert [c["config_name"] for c in declared(card) if c.get("default")] == ["neuron_cards"]
    assert all(c["data_files"][0]["path"] == f"{c['config_name']}/*.parquet" for c in declared(card))
    assert data["tags"] == ["hf-txray", "interpretability", "neuron-analysis"]
    assert (data["license"], data["base_model"]) == ("apache-2.0", "tiny-org/bert-tiny")
    for image in (folder / "plots").glob("*.png"):
        assert f"(plots/{image.name})" in card.text
    assert 'hf_txray.load("me/txray")' in card.text and "pretrained → finetuned" in card.text

    # helper 126: names of one slug ('a/b', 'a-b'; a stage 'pretrained__finetuned' beside the report
    # 'pretrained->finetuned') overwrote each other's figures, and the card showed one image under both
    def renamed(profile, stage):
        out = copy.copy(profile)
        out.meta = dataclasses.replace(profile.meta, stage=stage)
        return out

    clash = hf_txray.save_to_disk(tmp_path / "clash", [renamed(a, "a/b"), renamed(b, "a-b"),
                                                       renamed(a, "pretrained__finetuned"),
                                                       renamed(b, "pretrained->finetuned")], [report])
    images = sorted(p.name for p in (clash / "plots").glob("*.png"))
    assert len(images) == 4 + 4 * 2 and "pretrained__finetuned_neuron_mass.png" not in images
    text = DatasetCard.load(clash / "README.md").text
    assert sorted(re.findall(r"\(plots/([^)]+\.png)\)", text)) == images  # each figure shown once, under its name
    for stage, p in (("a/b", a), ("a-b", b)):  # each stage's figure is the one it draws alone
        alone = hf_txray.save_to_disk(tmp_path / f"alone-{len(stage)}{stage[1]}", [renamed(p, stage)])
        drawn = next((alone / "plots").glob("*mass_share.png")).read_bytes()
        section = text.split(f"### {stage}\n", 1)[1]
        shown = re.search(r"\(plots/([^)]+mass_share\.png)\)", section).group(1)
        assert (clash / "plots" / shown).read_bytes() == drawn, stage

    # a second save replaces the export; a folder holding anything else is refused
    hf_txray.save_to_disk(folder, [a], plots=False)
    assert set(hf_txray.load(folder).profiles) == {"pretrained"} and not (folder / "plots").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="holds no hf_txray artifact; save_to_disk replaces the whole"):
        hf_txray.save_to_disk(tmp_path / "other", [a])
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_a_dict_of_profiles_or_reports_is_keyed_by_their_names(results, tmp_path):
    """Helper 308: the keys of a dict of profiles (or reports) were dropped: profiles={"zero-shot": a} of a profile of
    stage "pretrained" was exported (and pushed) as "pretrained", and load() gave it back under that name, so
    loaded.profiles["zero-shot"] raised KeyError. A key that is not the item's name is refused, naming both; a dict
    as load() returns it round-trips."""
    a, b, report = results
    with pytest.raises(ConfigurationError, match=r"profiles\['zero-shot'\] is named 'pretrained'"):
        hf_txray.save_to_disk(tmp_path / "p", profiles={"zero-shot": a}, plots=False)
    with pytest.raises(ConfigurationError, match=r"reports\['transfer'\] is named 'pretrained->finetuned'"):
        hf_txray.save_to_disk(tmp_path / "r", profiles=[a, b], reports={"transfer": report}, plots=False)
    assert not (tmp_path / "p").exists() and not (tmp_path / "r").exists()
    hf_txray.save_to_disk(tmp_path / "ok", profiles={a.stage: a, b.stage: b}, reports={report.name: report},
                          plots=False)
    assert_same_results(hf_txray.load(tmp_path / "ok"), [a, b], [report])


def test_the_cards_loading_example_reads_its_own_folder_not_another_of_that_name(results, tmp_path, monkeypatch):
    """Helper 362: ``datasets`` caches a local folder under its name and config, not its files, so the card's
    ``load_dataset(FOLDER, "distributions", split="train")`` of tmp/b/exp returned tmp/a/exp's rows (and, with the
    folder re-exported, the first export's), without a word; ``download_mode="force_redownload"`` alone raised
    NonMatchingSplitsSizesError against the cached sizes. The card's example, run as written, reads each folder."""
    a, b, _ = results
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")  # not the user's

    def tables(folder: Path) -> dict[str, pd.DataFrame]:
        return {c: pd.concat([pd.read_parquet(f) for f in sorted((folder / c).glob("*.parquet"))], ignore_index=True)
                for c in ("neuron_cards", "distributions")}

    def as_the_card_says(folder: Path) -> dict[str, pd.DataFrame]:
        text = (folder / "README.md").read_text(encoding="utf-8")
        code = re.search(r"## How to load\n\n```python\n(.*?)```", text, flags=re.DOTALL)[1]
        for placeholder in ("<this folder>", "<repo_id>"):  # the path the user puts in its place
            code = code.replace(f'"{placeholder}"', repr(str(folder)))
        names: dict = {}
        exec(code, names)  # noqa: S102  (the card's own text)
        return {c: names[c].to_pandas() for c in ("neuron_cards", "distributions")}

    first = hf_txray.save_to_disk(tmp_path / "a" / "exp", [a], plots=False)
    second = hf_txray.save_to_disk(tmp_path / "b" / "exp", [b], plots=False)
    assert not tables(first)["distributions"].equals(tables(second)["distributions"])
    for folder in (first, second, first):
        for config, table in as_the_card_says(folder).items():
            pd.testing.assert_frame_equal(table, tables(folder)[config], obj=f"{folder} {config}")
    hf_txray.save_to_disk(first, [b], plots=False)  # the same path, another run
    for config, table in as_the_card_says(first).items():
        pd.testing.assert_frame_equal(table, tables(first)[config], obj=f"re-exported {config}")


def test_a_repushed_repos_card_example_reads_the_new_commit(results, hub, tmp_path):
    """Helper 362: a Hub repo is cached by ``datasets`` under its commit, so the pushed card's plain example (no
    local folder's arguments) reads a re-push's rows, not the first push's."""
    a, b, _ = results
    repo = f"{hub.username}/repushed"

    def as_the_card_says() -> pd.DataFrame:
        text = hub.server.repo_files(repo)["README.md"].decode()
        code = re.search(r"## How to load\n\n```python\n(.*?)# The exact", text, flags=re.DOTALL)[1]
        assert "<this folder>" not in code and "force_redownload" not in code
        names: dict = {}
        exec(code, names)  # noqa: S102  (the card's own text)
        return names["distributions"].to_pandas()

    for n, profile in enumerate((a, b, a)):
        local = hf_txray.save_to_disk(tmp_path / str(n), [profile], plots=False)
        hf_txray.hub.push_folder(local, repo)
        files = sorted((local / "distributions").glob("*.parquet"))
        pd.testing.assert_frame_equal(as_the_card_says(),
                                      pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))


def test_save_to_disk_names_the_folder_first_when_given_in_another_place(results, tmp_path, monkeypatch):
    """A fresh tester's save_to_disk([pretrained, zeroshot], [report], folder) (the folder last) was refused with
    "profiles must be a Profile, a list or a dict of them; got [TransferReport(...)]": about the reports, which were
    right, and silent on the folder; save_to_disk(profile, folder) raised a bare TypeError from Path()."""
    a, b, report = results
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"first argument is the folder to write, got list .*"
                                                 r"save_to_disk\(directory, profiles, reports\)"):
        hf_txray.save_to_disk([a, b], [report], "export")
    with pytest.raises(ConfigurationError, match="first argument is the folder to write, got Profile"):
        hf_txray.save_to_disk(a, "export")
    assert not any(tmp_path.iterdir())  # nothing written


def test_neuron_cards_content(results, tmp_path):
    a, _, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], plots=False)
    cards = datasets.load_dataset(str(folder), "neuron_cards", split="train", cache_dir=str(tmp_path / "cache"))
    best = max(cards, key=lambda row: row["count"])
    assert best["status"] == "active" and best["length_pos"] >= 1
    top = best["top_pos"]
    expected = a.top_features(best["layer"], best["neuron"], "pos", k=10)
    assert [(t["feature"], pytest.approx(t["probability"])) for t in top] == expected
    example = best["top_examples"][0]
    assert example["snippet"][example["span_start"]:example["span_end"]] == example["token"]
    assert example["activation"] == a.top_examples(best["layer"], best["neuron"])["activation"][0]


# ----- push and load through the Hub server -----------------------------------------------------------------------
def test_push_load_dataset_exact_round_trip_and_no_token_leak(results, hub, tmp_path, caplog):
    a, b, report = results
    repo_id = f"{hub.username}/tiny-txray"
    caplog.set_level(logging.DEBUG)
    info = hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report], license="mit",
                                local_dir=tmp_path / "export", token=hub.token)
    assert repo_id in info.commit_url
    assert len(hub.server.repo_commits(repo_id)) == 2  # the repo's initial commit + ONE upload commit
    files = hub.server.repo_files(repo_id)
    assert {"README.md", *(f"{c}/train-00000-of-00001.parquet" for c in WRITTEN)} <= set(files)
    assert sum(p.startswith("plots/") and p.endswith(".png") for p in files) == 4

    for config in WRITTEN:
        loaded = datasets.load_dataset(repo_id, config, split="train")
        assert loaded.num_rows > 0, config
    assert_same_results(hf_txray.load(repo_id), [a, b], [report])

    # The token reached no file: the local folder, the server's storage (commits, objects), nor the logs.
    assert hub.server.find_in_storage(hub.token) == []
    assert not [p for p in (tmp_path / "export").rglob("*") if p.is_file() and hub.token.encode() in p.read_bytes()]
    assert hub.token not in caplog.text
    # helper 160: a push to a new repo logged huggingface_hub's "Repo card metadata block was not found"
    assert "metadata block was not found" not in caplog.text


def test_private_repo_refuses_access_without_token(results, hub):
    a, _, _ = results
    repo_id = f"{hub.username}/private-txray"
    a.push_to_hub(repo_id, private=True)  # the profile alone, in the same layout: hf_txray.load reads it
    assert hub.api.dataset_info(repo_id).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).dataset_info(repo_id)
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(repo_id, "meta", split="train", token=False)
    with pytest.raises(HubError, match="private"):
        hf_txray.load(repo_id, token=False)
    assert hf_txray.load(repo_id).profiles["pretrained"] == a  # with HF_TOKEN


def test_repush_replaces_only_our_configs(results, hub, tmp_path):
    a, b, report = results
    repo_id = f"{hub.username}/repush"
    hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report])
    # Someone adds a file and a config of their own.
    (tmp_path / "extra").mkdir()
    pd.DataFrame({"note": ["hello"]}).to_parquet(tmp_path / "extra" / "notes.parquet")
    hub.api.upload_file(path_or_fileobj=tmp_path / "extra" / "notes.parquet", path_in_repo="extra/notes.parquet",
                        repo_id=repo_id, repo_type="dataset")
    card = DatasetCard(hub.server.repo_files(repo_id)["README.md"].decode())
    card.data.configs = declared(card) + [{"config_name": "extra", "data_files": "extra/*.parquet"}]
    card.push_to_hub(repo_id, repo_type="dataset")

    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)  # a smaller analysis: the report is gone
    files = hub.server.repo_files(repo_id)
    assert "extra/notes.parquet" in files and ".gitattributes" in files
    assert not [p for p in files if p.startswith(("transfer_reports/", "summary/", "plots/"))]
    names = [c["config_name"] for c in declared(DatasetCard(files["README.md"].decode()))]
    assert names == ["neuron_cards", "distributions", "meta", "extra"]
    assert datasets.load_dataset(repo_id, "extra", split="train")["note"] == ["hello"]
    loaded = hf_txray.load(repo_id)
    assert loaded.profiles == {"pretrained": a} and loaded.reports == {}


def test_failed_upload_keeps_folder_and_says_how_to_retry(results, hub, capsys):
    a, _, _ = results
    repo_id = f"{hub.username}/flaky"
    hub.server.fail_next_commit = True
    with pytest.raises(HubError) as caught:
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    message = str(caught.value)
    folder = default_local_dir(repo_id)
    assert f"hf-txray push {repo_id} {folder}" in message and hub.token not in message
    assert is_export_folder(folder) and hf_txray.load(folder).profiles["pretrained"] == a
    assert hub.server.repo_files(repo_id).keys() == {".gitattributes"}  # nothing half-uploaded

    assert cli_main(["push", repo_id, str(folder)]) == 0  # the retry the message suggests (REPO_ID DIR, as hf upload)
    assert "pushed to" in capsys.readouterr().out
    assert hf_txray.load(repo_id).profiles["pretrained"] == a
    # A private push's retry stays private (the hint dropped --private: following it made the repo public)
    hub.server.fail_next_commit = True
    with pytest.raises(HubError, match=f"hf-txray push {hub.username}/secret-flaky .* --private\n"):
        hf_txray.push_to_hub(f"{hub.username}/secret-flaky", profiles=[a], plots=False, private=True)

    # ... and a push to a branch says so in its retry, which the CLI takes (helper 116: no way to push to a branch)
    hub.server.fail_next_commit = True
    with pytest.raises(HubError, match=f"hf-txray push {repo_id} .* --revision dev\n"):
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, revision="dev")
    assert cli_main(["push", repo_id, str(folder), "--revision", "dev"]) == 0
    branches = {b.name: b.target_commit for b in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches}
    assert set(branches) == {"main", "dev"} and branches["main"] != branches["dev"]
    assert hf_txray.load(repo_id, revision="dev").profiles["pretrained"] == a
    # the card's loading examples name the branch (helper 119: they loaded the default branch, which holds none)
    card = DatasetCard.load(hub.api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision="dev"))
    assert f'hf_txray.load("{repo_id}", revision="dev")' in card.text
    assert f'load_dataset("{repo_id}", "neuron_cards", split="train", revision="dev")' in card.text
    assert f"hf-txray reproduce {repo_id} --revision dev" in card.text

def test_a_repo_column_read_again_after_a_push_reads_the_new_file(results, hub):
    """Helper 335: remote_column (the repo's ``meta`` models and probing ``model_id`` that a push checks before the
    upload) read through fsspec's cached HfFileSystem instance, whose listing of an earlier read was kept: once a
    push had changed the file, a second read in the same process got None ("Parquet magic bytes not found"), so
    the checks built on it (refuse_probing_of_other_models, remote_models) were skipped without a word."""
    from hf_txray.hub_io import remote_column

    a, b, _ = results
    repo_id = f"{hub.username}/read-twice"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    assert remote_column(hub.api, repo_id, None, "meta", "name") == ["pretrained"]
    hf_txray.push_to_hub(repo_id, profiles=[a, b], plots=False)
    assert remote_column(hub.api, repo_id, None, "meta", "name") == ["pretrained", "finetuned"]


def test_a_push_that_drops_stages_of_the_repo_names_them(results, hub, caplog):
    """Helper 335: a second `hf-txray analyze ... --push-to-hub REPO` (hf_txray.push_to_hub) of another stage replaces
    the repo's results whole (documented), but nothing said that the first stage was gone from the repo: loading it
    gave {'finetuned'} where {'pretrained'} had been. A warning names what was dropped and the commit that keeps it."""
    a, b, report = results
    repo_id = f"{hub.username}/two-runs"
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        first = hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)  # the same stage again: nothing dropped
        hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report], plots=False)  # a stage added
    assert "This push dropped" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        last = hf_txray.push_to_hub(repo_id, profiles=[b], plots=False)
    assert list(hf_txray.load(repo_id).profiles) == ["finetuned"]
    warned = [r.getMessage() for r in caplog.records if "This push dropped" in r.getMessage()]
    assert len(warned) == 1 and "stage 'pretrained'" in warned[0] and "report 'pretrained->finetuned'" in warned[0]
    assert "stage 'finetuned'" not in warned[0]
    commit = re.search(r"revision='([0-9a-f]{40})'", warned[0]).group(1)
    assert commit not in (first.oid, last.oid)
    kept = hf_txray.load(repo_id, revision=commit)  # where the warning says they remain
    assert kept.profiles == {"pretrained": a, "finetuned": b} and list(kept.reports) == ["pretrained->finetuned"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_txray"):  # a new branch: the default one keeps what it holds
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, revision="exp")
        assert "This push dropped" not in caplog.text
        hf_txray.push_to_hub(repo_id, profiles=[b], plots=False, revision="exp")  # but the branch's own: said
    assert "(branch 'exp') the results it does not hold" in caplog.text and "whole): stage 'pretrained'." in caplog.text


def test_a_repo_left_empty_by_a_failed_first_push_says_so(results, hub):
    """Helper 335: a push creates the repo before its upload, so a failed first push left a repo holding only
    .gitattributes; hf_txray.load and the viewer then said "not an hf_txray export: no meta/*.parquet" (the viewer:
    "has no meta/ config"), naming no cause. They say that the repo is empty and to push again; the retry works."""
    from hf_txray.viewer.data import open_results

    a, _, _ = results
    repo_id = f"{hub.username}/left-empty"
    hub.server.fail_next_commit = True
    with pytest.raises(HubError, match="intact"):
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    assert hub.server.repo_files(repo_id).keys() == {".gitattributes"}
    for read in (lambda: hf_txray.load(repo_id), lambda: open_results(repo_id), lambda: Profile.from_pretrained(repo_id)):
        with pytest.raises(ProfileFormatError, match=r"It is empty \(no file but \.gitattributes\).* push the results "
                                                     "again"):
            read()
    assert cli_main(["push", repo_id, str(default_local_dir(repo_id))]) == 0  # the retry: the repo reads
    assert hf_txray.load(repo_id).profiles == {"pretrained": a}
    assert list(open_results(repo_id, reload=True).profiles) == ["pretrained"]
    hub.api.create_repo(f"{hub.username}/other-data", repo_type="dataset")  # a repo with files of its own: no note
    hub.api.upload_file(path_or_fileobj=b"a,b\n", path_in_repo="data.csv", repo_id=f"{hub.username}/other-data",
                        repo_type="dataset")
    with pytest.raises(ProfileFormatError) as caught:
        hf_txray.load(f"{hub.username}/other-data")
    assert "It is empty" not in str(caught.value)


def test_a_profile_or_report_pushed_onto_results_names_the_stages_it_drops(results, hub, caplog):
    """Helper 342: `report.push_to_hub(REPO)` onto results of hf_txray.push_to_hub (two stages and their report)
    replaces the repo's results layout whole, so hf_txray.load(REPO) gave no profile where 'pretrained' and
    'finetuned' had been, and nothing said so. It warns as a push of a results folder does."""
    a, b, report = results
    repo_id = f"{hub.username}/results-then-one"
    hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report], plots=False)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        report.push_to_hub(repo_id)
    assert not hf_txray.load(repo_id).profiles and TransferReport.from_pretrained(repo_id).name == report.name
    warned = [r.getMessage() for r in caplog.records if "This push dropped" in r.getMessage()]
    assert len(warned) == 1 and "stage 'pretrained', stage 'finetuned'." in warned[0], warned
    commit = re.search(r"revision='([0-9a-f]{40})'", warned[0]).group(1)
    assert set(hf_txray.load(repo_id, revision=commit).profiles) == {"pretrained", "finetuned"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        a.push_to_hub(repo_id)
    assert "This push dropped" in caplog.text and "report 'pretrained->finetuned'." in caplog.text
    assert list(hf_txray.load(repo_id).profiles) == ["pretrained"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        a.push_to_hub(repo_id)  # the same stage again: nothing dropped
    assert "This push dropped" not in caplog.text


def test_a_failed_push_to_a_new_branch_leaves_no_branch_behind(results, hub, caplog):
    """Helper 283: a push to a new branch creates it from the default branch before the upload; when the upload failed
    the branch stayed, a copy of the default branch, and hf_txray.load(repo, revision="exp") read the default branch's
    profile ['pretrained'] as the branch's results (the push was of 'finetuned'), without a word. The branch goes with
    the failed push now (both kinds of push); one that existed before is kept."""
    a, b, _ = results
    repo_id = f"{hub.username}/failed-branch"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    for push in (lambda: hf_txray.push_to_hub(repo_id, profiles=[b], plots=False, revision="exp"),
                 lambda: b.push_to_hub(repo_id, revision="exp")):
        hub.server.fail_next_commit = True
        with pytest.raises(HubError, match="failed"):
            push()
        assert [x.name for x in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches] == ["main"]
        with pytest.raises(HubError, match="no revision 'exp'"):
            hf_txray.load(repo_id, revision="exp")
    b.push_to_hub(repo_id, revision="exp")  # a branch of its own results: a failed push over it keeps it
    hub.server.fail_next_commit = True
    with pytest.raises(HubError, match="failed"):
        hf_txray.push_to_hub(repo_id, profiles=[a, b], plots=False, revision="exp")
    assert list(hf_txray.load(repo_id, revision="exp").profiles) == ["finetuned"]
    assert "could not be deleted" not in caplog.text


def test_a_failed_push_to_a_branch_given_by_its_full_ref_name_keeps_the_branch(results, hub, caplog):
    """Helper 340: the failed-push cleanup took the branch for one the push created when the revision was not in the
    repo's branch list, so ``revision="refs/heads/exp"`` (git's full name of the existing branch 'exp', which the
    Hub takes for it) counted as new, and the failed push deleted 'exp' with the results it held: the branches were
    ['main'] after it, not ['exp', 'main']. A branch is the push's own only when the repo's refs gained it."""
    a, b, _ = results
    repo_id = f"{hub.username}/full-ref-branch"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    b.push_to_hub(repo_id, revision="exp")
    for push in (lambda: hf_txray.push_to_hub(repo_id, profiles=[a, b], plots=False, revision="refs/heads/exp"),
                 lambda: a.push_to_hub(repo_id, revision="refs/heads/exp")):
        hub.server.fail_next_commit = True
        with pytest.raises(HubError, match="failed"):
            push()
        assert sorted(x.name for x in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches) == ["exp", "main"]
        assert list(hf_txray.load(repo_id, revision="exp").profiles) == ["finetuned"]
    hub.server.fail_next_commit = True  # a new branch given so is still the push's own, and goes with it
    with pytest.raises(HubError, match="failed"):
        b.push_to_hub(repo_id, revision="refs/heads/new")
    assert sorted(x.name for x in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches) == ["exp", "main"]
    assert "could not be deleted" not in caplog.text


def test_a_card_for_a_branch_given_by_its_full_ref_name_names_the_branch(results, hub, tmp_path):
    """A card written for ``revision="refs/heads/exp"`` (git's full name of the branch 'exp') named that spelling in
    its loading examples (``load_dataset(..., revision="refs/heads/exp")``) and ``hf-txray reproduce --revision
    refs/heads/exp``, where the repo's branch list says 'exp': it names 'exp', in an export folder's card and in the
    cards pushed (push_to_hub, push_folder, an artifact's push_to_hub)."""
    a, b, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], plots=False, repo_id="me/x", revision="refs/heads/exp")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "refs/heads" not in card and 'revision="exp"' in card and "hf-txray reproduce me/x --revision exp" in card
    repo_id = f"{hub.username}/full-ref-card"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    for push in (lambda: hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, revision="refs/heads/exp"),
                 lambda: hf_txray.hub.push_folder(folder, repo_id, revision="refs/heads/exp"),
                 lambda: b.push_to_hub(repo_id, revision="refs/heads/exp")):
        push()
        card = hub.server.repo_files(repo_id, revision="exp")["README.md"].decode()
        assert "refs/heads" not in card and 'revision="exp"' in card, card
        assert sorted(x.name for x in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches) == ["exp", "main"]


def test_a_push_that_fails_right_after_creating_its_branch_removes_it(results, hub, monkeypatch, caplog):
    """Helper 341: the failed-push cleanup learnt which branch the push created from a second read of the repo's refs
    after create_branch (e43d93e); when that read failed (the network, a rate limit, Ctrl-C), nothing was known as
    created, and the new branch 'exp' stayed behind, a copy of the default branch (branches ['exp', 'main'], and
    hf_txray.load(repo, revision='exp') read the default branch's profile as its results). A branch the refs read
    before did not hold is the push's own from the moment it is created."""
    from huggingface_hub import HfApi

    a, b, _ = results
    repo_id = f"{hub.username}/refs-read-fails"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    created, list_refs, create = [], HfApi.list_repo_refs, HfApi.create_branch

    def create_branch(self, *args, **kwargs):
        created.append(kwargs.get("branch"))
        return create(self, *args, **kwargs)

    def failing_list_refs(self, *args, **kwargs):
        if created:  # the read right after the branch was created
            created.clear()
            raise ConnectionError("the network went away")
        return list_refs(self, *args, **kwargs)

    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "list_repo_refs", failing_list_refs)
    for push in (lambda: hf_txray.push_to_hub(repo_id, profiles=[b], plots=False, revision="exp"),
                 lambda: b.push_to_hub(repo_id, revision="refs/heads/exp")):
        with pytest.raises(HubError, match="failed"):
            push()
        assert [x.name for x in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches] == ["main"]
    assert "could not be deleted" not in caplog.text


def test_an_interrupted_push_says_where_the_kept_folder_is_and_leaves_no_branch(results, hub, caplog, monkeypatch):
    """Helper 324: Ctrl-C during the upload of `push_to_hub` (`hf-txray analyze --push-to-hub`) kept the export folder
    in the hf_txray cache, but nothing said so: the CLI printed "hf-txray analyze: interrupted." alone, and the branch
    the push had created stayed, a copy of the default branch read as its results. Now a warning says where the folder
    is and how to push it again, as a failed upload's error does, and the branch goes."""
    from huggingface_hub import HfApi

    a, _, _ = results
    repo_id = f"{hub.username}/interrupted"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(HfApi, "upload_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, revision="exp")
    folder = default_local_dir(repo_id)
    assert is_export_folder(folder)
    assert f"hf-txray push {repo_id} {folder} --revision exp" in caplog.text and "interrupted" in caplog.text
    assert [x.name for x in hub.api.list_repo_refs(repo_id, repo_type="dataset").branches] == ["main"]


def test_a_failed_push_with_token_true_says_how_to_retry(results, hub):
    """Helper 283: token=True (huggingface_hub's "the saved token") pushed, but a failed upload raised a bare
    `TypeError: replace() argument 1 must be str, not bool` (masking the token in the message got True) instead of
    the HubError that says the folder is intact and how to retry; both kinds of push. token=False is no token."""
    a, _, _ = results
    repo_id = f"{hub.username}/token-true"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, token=True)
    for push, says in ((lambda: hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, token=True), "intact"),
                       (lambda: a.push_to_hub(repo_id, token=True), "Nothing was lost")):
        hub.server.fail_next_commit = True
        with pytest.raises(HubError, match=says) as caught:
            push()
        assert hub.token not in str(caught.value)
    with pytest.raises(HubError, match="No Hugging Face token"):
        a.push_to_hub(repo_id, token=False)


def test_a_failed_push_with_a_token_given_says_to_give_it_again_without_showing_it(results, hub, tmp_path, capsys,
                                                                                  monkeypatch):
    """Helper 335: `hf-txray analyze ... --push-to-hub REPO --token T` (HF_TOKEN unset, no saved login) that failed to
    upload printed a retry `hf-txray push REPO FOLDER` without a token, which failed again ("No Hugging Face token").
    The hint says to add --token (or set HF_TOKEN), in words: the token itself is never printed."""
    a, _, _ = results
    monkeypatch.delenv("HF_TOKEN")
    repo_id = f"{hub.username}/given-token"
    hub.server.fail_next_commit = True
    with pytest.raises(HubError) as caught:
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, token=hub.token)
    message, folder = str(caught.value), default_local_dir(repo_id)
    assert f"hf-txray push {repo_id} {folder}" in message and hub.token not in message
    assert "add --token YOUR_TOKEN" in message and "token=..." in message
    assert cli_main(["push", repo_id, str(folder)]) == 2  # the command alone fails: what the note is for
    assert "No Hugging Face token" in capsys.readouterr().err
    assert cli_main(["push", repo_id, str(folder), "--token", hub.token]) == 0  # as the note says
    assert hf_txray.load(repo_id, token=hub.token).profiles["pretrained"] == a
    # the CLI's failed push says it too, and never shows the token
    save = hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False)
    hub.server.fail_next_commit = True
    assert cli_main(["push", repo_id, str(save), "--token", hub.token]) != 0
    err = capsys.readouterr().err
    assert "add --token YOUR_TOKEN" in err and hub.token not in err
    # a token that HF_TOKEN also holds needs no note (a retry finds it)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    hub.server.fail_next_commit = True
    with pytest.raises(HubError) as caught:
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, token=hub.token)
    assert "--token" not in str(caught.value)


def test_loading_a_folder_of_saved_results_points_to_from_pretrained_and_export(results, tmp_path):
    """Helper 167: hf_txray.load of a TXRayTrainer's txray/ folder (profiles saved one by one) said only "no
    meta/*.parquet"."""
    a, _, report = results
    a.save_pretrained(tmp_path / "txray" / "profiles" / "step-0")
    report.save_pretrained(tmp_path / "txray" / "reports" / "a__b")
    with pytest.raises(ProfileFormatError, match=r"no meta/\*\.parquet\. It holds profiles or reports saved one by one "
                                                 r"\(2, .*Profile\.from_pretrained.*hf-txray export"):
        hf_txray.load(tmp_path / "txray")



def test_the_export_command_that_loading_saved_results_suggests_runs_as_printed(results, tmp_path):
    """The hint above printed `hf-txray export /x/my runs --out DIR`: pasted, bash reads the folders '/x/my' and
    'runs'. The folder is one shell word now."""
    import shlex

    a, _, _ = results
    folder = tmp_path / "my runs"
    a.save_pretrained(folder / "a")
    with pytest.raises(ProfileFormatError) as caught:
        hf_txray.load(folder)
    said = re.search(r"`(hf-txray export [^`]*)`", str(caught.value)).group(1)
    assert shlex.split(said) == ["hf-txray", "export", str(folder), "--out", "DIR"], said

def test_options_an_export_folder_cannot_take_are_said_not_dropped(results, hub, tmp_path, caplog):
    a, _, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], plots=False)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        assert cli_main(["push", f"{hub.username}/exported", str(folder), "--license", "mit"]) == 0
    assert ("dataset card is already written: license 'mit' not applied (the card's license: none). Export again "
            "with `hf-txray export ... --license mit`") in caplog.text
    caplog.clear()
    # helper 160's tester: an export made with the license warned that it was not applied, though its card has it
    licensed = hf_txray.save_to_disk(tmp_path / "licensed", [a], plots=False, license="mit")
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        assert cli_main(["push", f"{hub.username}/licensed", str(licensed), "--license", "mit"]) == 0
    assert "not applied" not in caplog.text
    assert DatasetCard.load(hub.api.hf_hub_download(f"{hub.username}/licensed", "README.md",
                                                    repo_type="dataset")).data.license == "mit"
    with caplog.at_level(logging.WARNING, logger="hf_txray"):  # another license than the card's: said, and which
        assert cli_main(["push", f"{hub.username}/licensed", str(licensed), "--license", "apache-2.0"]) == 0
    assert "license 'apache-2.0' not applied (the card's license: 'mit')" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_txray"):  # its card's loading examples are made to name the branch
        assert cli_main(["push", f"{hub.username}/exported", str(folder), "--revision", "dev"]) == 0
    assert not caplog.text
    card = hub.server.repo_files(f"{hub.username}/exported", revision="dev")["README.md"].decode()
    assert f'hf_txray.load("{hub.username}/exported", revision="dev")' in card


def test_report_without_profiles_is_pushed_and_missing_stages_named(results, hub, caplog):
    _, _, report = results
    repo_id = f"{hub.username}/report-only"
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        hf_txray.push_to_hub(repo_id, reports=[report], plots=False)
    assert "'pretrained', 'finetuned'" in caplog.text and "not being pushed" in caplog.text
    files = hub.server.repo_files(repo_id)
    assert "Note" in files["README.md"].decode() and "`pretrained`, `finetuned`" in files["README.md"].decode()
    assert not [p for p in files if p.startswith(("neuron_cards/", "distributions/"))]
    loaded = hf_txray.load(repo_id)
    assert loaded.profiles == {} and loaded.reports[report.name] == report
    # helper 126: without neuron_cards no config was the default, and load_dataset(repo, split=...) failed
    card = DatasetCard(files["README.md"].decode())
    assert [c["config_name"] for c in declared(card) if c.get("default")] == ["transfer_reports"]
    assert len(datasets.load_dataset(repo_id, split="train")) == len(report.neurons)


def test_cli_compare_reads_results_repos_and_folders_as_analyze_push_writes_them(results, hub, tmp_path, capsys,
                                                                                   caplog, monkeypatch):
    """Helper 128: `hf-txray analyze --push-to-hub` writes a results repo, which `hf-txray compare` refused ("not a
    single saved profile"): the two documented commands did not connect. A results repo or folder of one profile is
    read as that profile; of several, --stage-a / --stage-b choose."""
    a, b, report = results
    for profile in (a, b):
        hf_txray.push_to_hub(f"{hub.username}/{profile.stage}", profiles=[profile], plots=False)
    both = hf_txray.save_to_disk(tmp_path / "both", [a, b], plots=False)
    runs = {"repos": [f"{hub.username}/pretrained", f"{hub.username}/finetuned"],
            "stages": [str(both), str(both), "--stage-a", "pretrained", "--stage-b", "finetuned"]}
    for name, args in runs.items():
        assert cli_main(["compare", *args, "--out", str(tmp_path / name), "--no-test"]) == 0, capsys.readouterr().err
        got = TransferReport.from_pretrained(tmp_path / name)
        pd.testing.assert_frame_equal(got.neurons, hf_txray.compare(a, b, test=False).neurons)
    assert cli_main(["compare", str(both), str(both), "--out", str(tmp_path / "x")]) != 0
    assert "holds 2 profiles (pretrained, finetuned): choose one with --stage-a STAGE" in capsys.readouterr().err
    assert cli_main(["compare", str(both), str(both), "--stage-a", "zz", "--out", str(tmp_path / "x")]) != 0
    assert "holds no stage 'zz'; its stages: pretrained, finetuned" in capsys.readouterr().err
    # helper 130: a report given by mistake was "holds 0 profiles (): choose one with --stage-a"
    report.save_pretrained(tmp_path / "report")
    assert cli_main(["compare", str(tmp_path / "report"), str(both), "--out", str(tmp_path / "x")]) != 0
    assert "holds no profile: give a saved profile" in capsys.readouterr().err
    # helper 130: with --revision, a folder named as repo A was read instead of A at that revision (37 of 96
    # statuses off, exit 0): refused, saying the folder hides the repo
    monkeypatch.chdir(tmp_path)
    a.save_pretrained(tmp_path / hub.username / "pretrained")
    assert cli_main(["compare", f"{hub.username}/pretrained", f"{hub.username}/finetuned", "--revision", "main",
                     "--out", str(tmp_path / "y")]) != 0
    assert "A local folder of that name hides the Hub repo" in capsys.readouterr().err
    # the viewer's look for probing tables such a repo lacks printed huggingface_hub's "No files matched ..."
    from hf_txray.probing import load_probing

    with caplog.at_level(logging.DEBUG):
        assert load_probing(f"{hub.username}/pretrained").empty
    assert "No files matched" not in caplog.text + capsys.readouterr().err


def test_cli_compare_of_a_mistyped_folder_says_no_such_folder_nor_repo(results, hub, tmp_path, capsys, monkeypatch):
    """Helper 160's tester: `compare mistyped_folder real_profile` (or `results/ptbb`) was read as a Hub repo id and
    failed with huggingface_hub's lines on snapshots and HF_HUB_OFFLINE, never saying that no such folder exists."""
    a, _, _ = results
    monkeypatch.chdir(tmp_path)
    a.save_pretrained(tmp_path / "results" / "ptb")

    def refused(*sources: str) -> str:
        assert cli_main(["compare", *sources, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "snapshot" not in err, err  # one line of ours
        return err

    for typo in ("mistyped_folder", "results/ptbb"):  # a bare name; a path whose folder exists here
        err = refused(typo, "results/ptb")
        assert (f"No folder {typo!r} here, nor a Hub dataset of that id: no such repo, or a private one without a "
                "token that may read it.") in err and "Check the path" in err
    assert "Did you mean 'results/ptb'?" in err
    err = refused("results/ptb", f"{hub.username}/missing")  # a repo id: said not to download, then the folder
    assert (f"Could not download the Hub dataset '{hub.username}/missing': no such repo, or a private one without a "
            "token that may read it; and there is no local folder of that name. Check the repo id") in err
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    err = refused("results/ptbb", "results/ptb")
    assert ("No folder 'results/ptbb' here, nor a Hub dataset of that id: offline (HF_HUB_OFFLINE=1) and not in the "
            "cache. Did you mean 'results/ptb'? Check the path; for a Hub repo, unset HF_HUB_OFFLINE") in err


def test_cli_view_of_a_missing_repo_names_no_flag_that_view_lacks(hub, capsys):
    """`hf-txray view user/missing` said "a private repo needs token=... (CLI: --token) or HF_TOKEN", but `view` has no
    --token option (nor have show, export, prune): the hint names the flag only for the commands that take it."""
    assert cli_main(["view", f"{hub.username}/missing"]) == 2
    err = capsys.readouterr().err
    assert f"Could not download the Hub dataset '{hub.username}/missing': no such repo" in err, err
    assert "HF_TOKEN" in err and "(CLI: --token)" not in err, err
    with pytest.raises(SystemExit):
        cli_main(["view", "--help"])
    assert "--token" not in capsys.readouterr().out  # were view to take --token, the old hint would be right


def _empty_profile(profile: Profile) -> Profile:
    none = np.zeros(0, np.int64)
    empty_table = FeatureTable([], none, none, np.zeros(0), none, none)
    meta = dataclasses.replace(profile.meta, stage="empty", num_positions=0, num_examples=0)
    return Profile(meta, np.zeros_like(profile.neuron_mass), np.zeros_like(profile.neuron_count),
                   {ft: empty_table for ft in profile.feature_types})


@pytest.mark.parametrize("case", ["no token", "invalid repo id", "repo id with type", "empty profile", "nothing",
                                  "duplicate stage", "wrong type"])
def test_bad_input_fails_before_any_upload(results, hub, monkeypatch, case):
    a, _, _ = results
    kwargs = {"repo_id": f"{hub.username}/bad", "profiles": [a]}
    error, match = ConfigurationError, None
    if case == "no token":
        monkeypatch.delenv("HF_TOKEN")  # and the isolated HF_HOME holds no saved login
        error, match = HubError, "No Hugging Face token"
    elif case == "invalid repo id":
        kwargs["repo_id"], match = "not a repo id!", "Invalid Hub repo id"
    elif case == "repo id with type":
        kwargs["repo_id"], match = "datasets/me/bad", "Invalid Hub repo id"
    elif case == "empty profile":
        kwargs["profiles"], match = [a, _empty_profile(a)], "'empty' is empty"
    elif case == "nothing":
        kwargs["profiles"], match = [], "Nothing to export"
    elif case == "duplicate stage":
        kwargs["profiles"], match = [a, a], "share the stage name"
    else:
        kwargs["profiles"], match = ["pretrained"], "must be a Profile"
    with pytest.raises(error, match=match):
        hf_txray.push_to_hub(**kwargs)
    assert not [r for r in hub.server.requests if r.method in ("POST", "PUT")]
    assert not default_local_dir(f"{hub.username}/bad").exists()


def test_cli_analyze_push_and_push_of_saved_results(results, hub, tmp_path, capsys, monkeypatch):
    a, b, report = results
    model_dir = tmp_path / "model"
    tiny_bert(0).save_pretrained(model_dir)
    bert_tokenizer().save_pretrained(model_dir)
    (tmp_path / "texts.txt").write_text("\n".join(t for t in SAMPLE_TEXTS if t.strip()) + "\n")
    repo_id = f"{hub.username}/cli"
    assert cli_main(["analyze", str(model_dir), str(tmp_path / "texts.txt"), "--out", str(tmp_path / "profile"),
                     "--features", "token", "--push-to-hub", repo_id]) == 0
    # Pushed: the local model and data paths as the card shows them (outside the current directory: their last
    # component), in the meta JSON too; the local save keeps them whole for reproduce. Nothing else differs.
    pushed, saved = hf_txray.load(repo_id).profiles["default"], Profile.from_pretrained(tmp_path / "profile")
    assert (saved.meta.model_id, saved.meta.provenance["model"]["id"]) == (str(model_dir), str(model_dir.resolve()))
    assert (pushed.meta.model_id, pushed.meta.dataset_id) == ("model", "texts.txt")
    assert (pushed.meta.provenance["model"]["id"], pushed.meta.provenance["dataset"]["id"]) == ("model", "texts.txt")
    expected = Profile.from_pretrained(tmp_path / "profile")
    expected.meta = ProfileMeta.from_dict(public_record(saved.meta.to_dict()))
    assert pushed == expected and pushed != saved
    assert_no_local_paths(hub.server.repo_files(repo_id), tmp_path)
    assert (tmp_path / "profile" / "README.md").read_text().count("`model` (local path)") == 2  # summary, reproduce
    # --token is the push's token too (it was ignored: the push fell back to HF_TOKEN; found by a fresh helper)
    monkeypatch.delenv("HF_TOKEN")
    assert cli_main(["analyze", str(model_dir), str(tmp_path / "texts.txt"), "--out", str(tmp_path / "token"),
                     "--features", "token", "--push-to-hub", f"{hub.username}/cli-token", "--token", hub.token]) == 0
    assert hf_txray.load(f"{hub.username}/cli-token", token=hub.token).profiles["default"].stage == "default"
    monkeypatch.setenv("HF_TOKEN", hub.token)
    # pushing the saved folder uploads a staged copy (hard links): the folder itself is left byte for byte
    before = {p: p.read_bytes() for p in (tmp_path / "profile").rglob("*") if p.is_file()}
    assert cli_main(["push", f"{hub.username}/cli-folder", str(tmp_path / "profile")]) == 0
    assert {p: p.read_bytes() for p in (tmp_path / "profile").rglob("*") if p.is_file()} == before
    assert_no_local_paths(hub.server.repo_files(f"{hub.username}/cli-folder"), tmp_path)
    assert hf_txray.load(f"{hub.username}/cli-folder").profiles["default"] == expected

    # A folder of save_pretrained results (like `hf-txray demo` writes) goes up as one analysis.
    a.save_pretrained(tmp_path / "saved" / "profiles" / a.stage)
    b.save_pretrained(tmp_path / "saved" / "profiles" / b.stage)
    report.save_pretrained(tmp_path / "saved" / "reports" / "pretrained__finetuned")
    assert cli_main(["push", str(tmp_path / "saved"), f"{hub.username}/demo", "--private", "--license", "mit",
                     "--pretty-name", "MiniLM across stages"]) == 0
    assert_same_results(hf_txray.load(f"{hub.username}/demo"), [a, b], [report])
    assert hub.api.dataset_info(f"{hub.username}/demo").private is True
    card = DatasetCard.load(hub.api.hf_hub_download(f"{hub.username}/demo", "README.md", repo_type="dataset"))
    assert (card.data.pretty_name, card.data.license) == ("MiniLM across stages", "mit")
    assert "pushed to" in capsys.readouterr().out
    # a results repo is not one profile: the error points to hf_txray.load with the repo id (not the cache path)
    with pytest.raises(ProfileFormatError, match=rf"'{hub.username}/demo' is a results folder.*hf_txray.load\(...\) given the same repo id"):
        Profile.from_pretrained(f"{hub.username}/demo")
    exported = hf_txray.save_to_disk(tmp_path / "export", profiles=[a], plots=False)
    with pytest.raises(ProfileFormatError, match=r"export is a results folder.*hf_txray.load"):
        TransferReport.from_pretrained(exported)


def assert_no_local_paths(files: dict[str, bytes], *paths: Path) -> None:
    """No file of a pushed repo (README, JSON, the meta config's strings, decompressed) names `paths` or the home
    directory."""
    import io

    import pyarrow.parquet as pq

    needles = [str(p) for p in paths] + [str(Path.home())]
    for name, data in files.items():
        if name.endswith((".md", ".json")):
            text = data.decode()
        elif name.startswith("meta/"):
            text = json.dumps(pq.read_table(io.BytesIO(data)).drop_columns(["vocabularies"]).to_pylist())
        else:
            continue
        assert not [n for n in needles if n in text], name


def test_card_of_a_local_model_and_data_hides_their_paths(saved_bert, tmp_path, monkeypatch):
    """A card rendered for a profile of a model saved under tmp_path names neither tmp_path nor the home folder:
    a local path is shown relative to the current directory when below it, else by its last component."""
    texts = tmp_path / "data" / "texts.txt"
    texts.parent.mkdir()
    texts.write_text("\n".join(t for t in SAMPLE_TEXTS if t.strip()) + "\n")
    profile = hf_txray.analyze(str(saved_bert), str(texts), features=("token",), show_progress=False)
    folder = hf_txray.save_to_disk(tmp_path / "export", [profile], plots=False)
    card = (folder / "README.md").read_text()
    for needle in (str(tmp_path), str(saved_bert), str(Path.home())):
        assert needle not in card
    assert f"`{saved_bert.name}` (local path)" in card and "`texts.txt` (local path)" in card
    assert f"TX-Ray neuron analysis of {saved_bert.name}" in card  # the default title too
    # the export keeps the full paths: hf-txray reproduce of the folder checks the files there
    assert hf_txray.load(folder).profiles["default"].meta.provenance["dataset"]["id"] == str(texts.resolve())

    monkeypatch.chdir(tmp_path)  # below the current directory: relative, no note
    card = build_card({"default": profile}, {}, {"meta": 1}, {}).text
    assert "`data/texts.txt` (content" in card and str(tmp_path) not in card


def test_public_path_never_names_the_home_folder(tmp_path, monkeypatch):
    home = tmp_path / "home" / "alice"
    (home / "models" / "bert").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    model = str(home / "models" / "bert")
    monkeypatch.chdir(tmp_path)  # above the home folder: a relative path would be home/alice/models/bert
    assert public_path(model) == ("bert", True) and public_name(model) == "bert"
    assert public_label(model) == "`bert` (local path)"
    monkeypatch.chdir(home)  # the home folder itself: relative paths below it name no one
    assert public_path(model) == ("models/bert", False) and public_label(model) == "`models/bert`"
    assert public_path("~/models/bert") == ("models/bert", False)
    monkeypatch.chdir(home / "models" / "bert")  # the path itself: its name
    assert public_path(model) == ("bert", True)
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "gpt2", "penn_treebank/valid", None):
        assert public_name(name) == name  # Hub ids and other names unchanged
    # a profile made on Windows, pushed from here: its paths are local too, shown by their last component
    for windows, last in ((r"C:\Users\alice\models\bert", "bert"), ("D:/corpora/ptb.txt", "ptb.txt"),
                          (r"\\server\share\alice\data", "data")):
        assert public_name(windows) == last and public_label(windows) == f"`{last}` (local path)"
        assert public_record({"runtime": {"cache": windows}}) == {"runtime": {"cache": last}}
    monkeypatch.chdir(home)
    record = {"model": {"id": model, "files": {"config.json": "sha"}}, "runtime": {"model_kwargs": {
        "offload_folder": str(tmp_path / "offload")}}, "note": f"read from {home}/cache, not {home}x"}
    assert public_record(record) == {"model": {"id": "models/bert", "files": {"config.json": "sha"}}, "runtime": {
        "model_kwargs": {"offload_folder": "offload"}}, "note": f"read from ~/cache, not {home}x"}


def test_a_hub_cache_snapshot_is_named_by_its_repo_id_with_its_commit(tmp_path):
    """Helper 215: a model loaded from a Hub cache snapshot folder was named publicly by the folder's last component,
    its commit sha (card title "TX-Ray neuron analysis of ab12ab12...", model "`ab12ab12...` (local path)"). It is
    named by its repo id now, and its provenance records the commit; the local record keeps the path."""
    commit = "ab12" * 10
    snapshot = tmp_path / "hub" / "models--tiny-org--bert-tiny" / "snapshots" / commit
    tiny_bert().save_pretrained(snapshot)
    bert_tokenizer().save_pretrained(snapshot)
    profile = hf_txray.analyze(str(snapshot), SAMPLE_TEXTS[:2], features=("token",), show_progress=False)
    assert profile.meta.model_id == str(snapshot) and profile.meta.provenance["model"]["commit"] == commit
    assert public_name(str(snapshot)) == public_name(f"{snapshot}/") == "tiny-org/bert-tiny"
    assert public_name(r"C:\hub\models--gpt2\snapshots" + "\\" + commit) == "gpt2"
    assert public_name(str(snapshot / "config.json")) == "config.json"  # a file inside: its name, as before
    assert public_record(profile.meta.provenance)["model"]["id"] == "tiny-org/bert-tiny"
    card = build_card({"default": profile}, {}, {"meta": 1}, {}).text
    assert "TX-Ray neuron analysis of tiny-org/bert-tiny" in card and commit not in card.replace(commit[:12], "")
    assert "`tiny-org/bert-tiny` (Hub cache snapshot of commit `ab12ab12ab12`)" in card
    assert hf_txray.pin_model(profile, str(snapshot)).meta.revision is None  # a folder loads as it is


def test_a_folder_named_like_a_snapshot_of_no_valid_repo_is_no_hub_snapshot():
    """Helper 220: any ``models--X/snapshots/<40 hex>`` path was read as a Hub cache snapshot, so folders that no Hub
    download writes gave invalid repo ids as the card's and the pushed record's model name: ``models--a--b--c`` ->
    "a/b/c", ``models----b`` -> "/b", ``models--org--`` -> "org/". Only a valid repo id names a snapshot now."""
    from hf_txray.provenance import hub_cache_snapshot

    commit = "ab12" * 10
    assert hub_cache_snapshot(f"/hub/models--my-org--my.model_1/snapshots/{commit}") == ("my-org/my.model_1", commit)
    for folder in ("models--a--b--c", "models----b", "models--org--", "models--o..x--n"):
        path = f"/hub/{folder}/snapshots/{commit}"
        assert hub_cache_snapshot(path) is None, folder
        assert public_name(path) == commit, folder  # its last component, as for any other local folder

def test_card_validates_on_the_hub(results, hub, tmp_path):
    a, _, report = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], [report], plots=False)
    card = DatasetCard.load(folder / "README.md")
    card.validate(repo_type="dataset")  # POST /api/validate-yaml
    assert yaml.safe_load(card.content.split("---")[1])["configs"] == declared(card)


# ----- plots ------------------------------------------------------------------------------------------------------
def known_report() -> TransferReport:
    """Six neurons in two layers: 4 shared (one without a pos Hellinger), 1 lost, 1 dead; three POS tags."""
    meta = ReportMeta("a", "b", "m", "m", "c1", "c2", "mlp", [0, 1], 3, ["pos"])
    neurons = pd.DataFrame({
        "layer": [0, 0, 0, 1, 1, 1], "neuron": [0, 1, 2, 0, 1, 2],
        "status": ["shared", "shared", "lost", "shared", "shared", "dead"],
        "mass_a": [3.0, 1.0, 0.5, 2.0, 0.2, 0.0], "mass_b": [2.0, 1.5, 0.0, 2.5, 0.1, 0.0],
        "hellinger_pos": [0.1, 0.5, np.nan, 0.9, np.nan, np.nan],
        "hellinger_length_pos": [3, 2, 1, 5, 0, 0],
        "length_a_pos": [2, 1, 1, 4, 0, 0], "length_b_pos": [3, 2, 0, 2, 0, 0],
        "count_a": [40, 30, 5, 12, 2, 0], "count_b": [35, 25, 0, 50, 1, 0],
    })  # fmt: skip
    mass_share = pd.DataFrame({"feature_type": "pos", "feature": ["NOUN", "VERB", "DET"],
                               "mass_share_a": [0.5, 0.3, 0.2], "mass_share_b": [0.6, 0.3, 0.1],
                               "corpus_frequency_a": [0.4, 0.4, 0.2], "corpus_frequency_b": [0.3, 0.3, 0.4]})
    return TransferReport(meta, neurons, pd.DataFrame({"layer": [0, 1]}), mass_share)


def test_plots_draw_one_mark_per_neuron_or_tag(tmp_path):
    report = known_report()
    ax = plot_hellinger_vs_length(report, min_count=0).axes[0]
    assert len(ax.collections[0].get_offsets()) == 3  # shared with a Hellinger distance
    assert ax.get_xscale() == "log"
    # By default only neurons credited DEFAULT_MIN_COUNT times in both stages: (1, 0) has 12 credits in A
    ax = plot_hellinger_vs_length(report).axes[0]
    assert len(ax.collections[0].get_offsets()) == 2 and ">= 20 credits" in ax.get_title()
    ax = plot_hellinger_vs_length(report, layer=1).axes[0]  # nothing left: said, not a log-scale error
    assert not ax.collections and "layer 1" in ax.get_title() and "no shared neuron" in ax.texts[0].get_text()
    assert "layer 0" in plot_length_shift(report, layer=0).axes[0].get_title()

    ax = plot_length_shift(report, min_count=0).axes[0]
    points = [c for c in ax.collections if len(c.get_offsets()) and c.get_label().startswith(("A:", "B:"))]
    assert [len(c.get_offsets()) for c in points] == [3, 3]  # shared with both lengths > 0
    assert sorted(points[0].get_offsets()[:, 1]) == [1, 2, 4]

    ax = plot_mass_share(report).axes[0]
    assert len(ax.patches) == 3 * 4  # 3 tags x (frequency A, share A, frequency B, share B)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["NOUN", "VERB", "DET"]
    assert len(plot_mass_share(report, top=2).axes[0].patches) == 2 * 4

    ax = plot_neuron_mass(report).axes[0]
    assert [len(p.get_data().values) for p in ax.patches] == [5, 4]  # neurons with mass in A, in B
    assert list(ax.patches[0].get_data().values) == [3.0, 2.0, 1.0, 0.5, 0.2]
    assert [len(p.get_data().values) for p in plot_neuron_mass(report, layer=1).axes[0].patches] == [2, 2]
    import dataclasses

    same_name = TransferReport(dataclasses.replace(report.meta, stage_b="a"), report.neurons, report.layers,
                               report.mass_share)  # two stages of one name (two checkpoints both called "a")
    assert len(plot_neuron_mass(same_name).axes[0].patches) == 2
    assert len(plot_mass_share(same_name).axes[0].patches) == 3 * 4


def test_mass_share_plot_refuses_what_it_would_draw_empty_or_cut():
    """A report keeps mass shares of tag-like features only: plot_mass_share(report, "token") drew an empty figure
    titled "token: mass share vs corpus frequency"; top=0 drew no tag and top=-1 all but the rarest."""
    import dataclasses

    report = known_report()
    report = TransferReport(dataclasses.replace(report.meta, feature_types=["token", "pos"]), report.neurons,
                            report.layers, report.mass_share)
    with pytest.raises(ConfigurationError, match="no mass share of 'token'.*plot_mass_share\\(profile, 'token'\\)"):
        plot_mass_share(report, "token")
    for top in (0, -1, 2.5, True):
        with pytest.raises(ConfigurationError, match="top must be a positive int"):
            plot_mass_share(report, top=top)
    assert [t.get_text() for t in plot_mass_share(report, top=np.int64(1)).axes[0].get_xticklabels()] == ["NOUN"]


def test_hellinger_plot_gives_each_layer_its_own_colour_and_names_it():
    """Layers [0, 1, 5]: colours were binned by layer number over 0..5, so layers 0 and 1 shared one colour."""
    import dataclasses

    report = known_report()
    later = report.neurons[report.neurons["layer"] == 1].assign(layer=5)
    report = TransferReport(dataclasses.replace(report.meta, layers=[0, 1, 5]),
                            pd.concat([report.neurons, later], ignore_index=True), report.layers, report.mass_share)
    fig = plot_hellinger_vs_length(report, min_count=0)
    points = fig.axes[0].collections[0]
    drawn = report.neurons[(report.neurons["status"] == "shared") & report.neurons["hellinger_pos"].notna()]
    colours = {layer: {tuple(c) for c in points.to_rgba(points.get_array())[(drawn["layer"] == layer).to_numpy()]}
               for layer in (0, 1, 5)}
    assert all(len(c) == 1 for c in colours.values()) and len(set.union(*colours.values())) == 3
    bar = fig.axes[1]
    assert [t.get_text() for t in bar.get_yticklabels()] == ["0", "1", "5"]
    assert [tuple(c) for c in points.cmap(points.norm(bar.get_yticks()))] == [colours[la].pop() for la in (0, 1, 5)]


def test_plots_of_real_profile_and_report_into_given_axes(results, tmp_path):
    from matplotlib.figure import Figure

    a, _, report = results
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot_mass_share(a, ax=left) is fig and plot_neuron_mass(a, ax=right) is fig
    tags = len(a.feature_frequency("pos"))
    assert len(left.patches) == 2 * tags  # corpus frequency and mass share per tag
    assert len(right.patches[0].get_data().values) == int((a.neuron_mass > 0).sum())
    with pytest.raises(ConfigurationError, match="not available"):
        plot_hellinger_vs_length(report, "dep")
    paths = save_figures(report_figures(report), tmp_path / "plots", prefix="r_")
    assert [p.name for p in paths] == ["r_hellinger_vs_length.png", "r_length_shift.png", "r_neuron_mass.png",
                                       "r_mass_share.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_a_model_named_dot_pushes_an_intact_card(hub, tmp_path, monkeypatch):
    """`analyze(".")` from inside the model folder: the card's clean-up replaced every "." of the README by the
    folder's name (the front matter's `meta/*.parquet` became `meta/*modelparquet`, and the Hub could not load the
    configs). Only whole local names are replaced now, never "." or "~" alone."""
    model_dir = tmp_path / "model"
    tiny_bert(0).save_pretrained(model_dir)
    bert_tokenizer().save_pretrained(model_dir)
    (model_dir / "texts.txt").write_text("\n".join(t for t in SAMPLE_TEXTS if t.strip()) + "\n")
    monkeypatch.chdir(model_dir)
    profile = hf_txray.analyze(".", "texts.txt", features=("token",), show_progress=False)
    profile.save_pretrained(tmp_path / "local")
    profile.push_to_hub(f"{hub.username}/dot")
    pushed = hub.server.repo_files(f"{hub.username}/dot")["README.md"].decode()
    local = (tmp_path / "local" / "README.md").read_text()
    assert "meta/*.parquet" in pushed and pushed.count(".") == local.count(".")
    assert hf_txray.load(f"{hub.username}/dot").profiles[profile.stage].neuron_count.sum() == \
        profile.neuron_count.sum()


def test_public_path_sees_through_a_symlinked_home(tmp_path, monkeypatch):
    real = tmp_path / "disk" / "alice"
    (real / "proj" / "model").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "alice").symlink_to(real)
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "alice"))
    monkeypatch.chdir(tmp_path)  # above both the home link and the real home
    assert public_path(str(real / "proj" / "model")) == ("model", True)
    assert public_record({"note": f"kept in {real}/x"}) == {"note": "kept in ~/x"}


def test_card_says_the_credit_rule_and_names_a_model_object(tmp_path):
    """Helper 116: a top-3 profile's card said "the most active unit of its layer (max-1 credit)", and the Reproduce
    table called a model passed as an object "texts passed in memory", its status "no: a model id: ..."."""
    def run(top_k, stage):
        return hf_txray.analyze(tiny_bert(0), SAMPLE_TEXTS, tokenizer=bert_tokenizer(), features=("token",),
                                top_k=top_k, stage=stage, show_progress=False)

    one, three = run(1, "top1"), run(3, "top3")
    assert three.meta.top_k == 3 and not three.meta.provenance["model"].get("id")
    for profile, rule in ((one, "the most active unit of its layer (max-1 credit)"),
                          (three, "one of the 3 most active units of its layer (top-3 credit")):
        card = DatasetCard.load(hf_txray.save_to_disk(tmp_path / profile.stage, [profile], plots=False) / "README.md")
        assert rule in card.text
        row = card.text.split("## Reproduce")[1].split(f"| {profile.stage} ")[1].splitlines()[0]
        assert "| a model object without name_or_path |" in row and "texts passed in memory" in row
        assert "| no: it lacks a model id: the model was passed as an object without name_or_path |" in row
    report = hf_txray.compare(one, run(1, "again"))
    card = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "report", reports=[report], plots=False) / "README.md")
    # Helper 359: a report alone (it recorded no top_k) said "the most active unit(s) of its layer (top-k credit)"
    # of two top-1 profiles; it now records the rule, and says "top-k" only with the number
    assert report.meta.top_k == 1 and "the most active unit of its layer (max-1 credit)" in card.text
    assert "top-k" not in card.text.split("## Summary")[0]
    assert next(iter(hf_txray.load(tmp_path / "report")[1].values())).meta.top_k == 1  # saved and read back
    three_report = hf_txray.compare(three, run(3, "again3"))
    card = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "r3", reports=[three_report], plots=False) / "README.md")
    assert "one of the 3 most active units of its layer (top-3 credit" in card.text
    three_report.meta.top_k = None  # a report saved before reports recorded it
    card = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "old", reports=[three_report], plots=False) / "README.md")
    assert "(max-1 or top-k credit: the report does not record k)" in card.text
    # Helper 119: an export of a top-1 and a top-3 profile stated the first one's rule for both
    both = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "both", [three, one], plots=False) / "README.md")
    assert "(top-k credit, k per stage: `top3` 3, `top1` 1)" in both.text and "max-1 credit" not in both.text
    # Helper 366: the card's first part stated its rule for all: an export of a top-1 and a top-3 report, or of a
    # top-1 profile beside a top-3 report, said "(max-1 credit)"
    three_report.meta.top_k = 3
    for name, profiles, reports, rule in (
            ("mixed", [], [report, three_report], "k per stage: `top1` 1, `again` 1, `top3` 3, `again3` 3)"),
            ("beside", [one], [three_report], "k per stage: `top1` 1, `top3` 3, `again3` 3)")):
        text = DatasetCard.load(hf_txray.save_to_disk(tmp_path / name, profiles, reports, plots=False) / "README.md").text
        assert rule in text and "max-1 credit" not in text
    three_report.meta.top_k = None  # beside a report that records its k, an older one's stages are "not recorded"
    text = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "older", [], [report, three_report], plots=False)
                            / "README.md").text
    assert "`top1` 1, `again` 1, `top3` not recorded, `again3` not recorded)" in text and "max-1 credit" not in text


def test_a_result_only_on_a_branch_is_named_when_the_default_branch_is_read(results, hub):
    """Helper 116: a profile pushed to a branch and loaded without `revision` was called "not a saved hf_txray
    profile", with no word of the branch that holds it."""
    a, _, _ = results
    repo_id = f"{hub.username}/on-a-branch"
    hub.api.create_repo(repo_id, repo_type="dataset")
    a.push_to_hub(repo_id, revision="dev")
    with pytest.raises(ProfileFormatError, match="not a saved hf_txray profile .* It was read at its default branch; "
                                                 "the repo also has the branch\\(es\\) 'dev': pass revision='dev'"):
        Profile.from_pretrained(repo_id)
    assert Profile.from_pretrained(repo_id, revision="dev") == a


def test_pushes_of_another_kind_leave_nothing_of_the_previous_one(results, hub):
    """Helper 116: a profile pushed over an analysis left its reports and plots in the repo, undeclared, and an
    analysis pushed over a profile left the profile's header, so Profile.from_pretrained read the results folder as a
    single profile."""
    a, b, report = results
    repo_id = f"{hub.username}/mixed-pushes"
    folders = lambda: {f.split("/")[0] for f in hub.server.repo_files(repo_id)}  # noqa: E731
    hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report])
    assert {"transfer_reports", "summary", "plots", "txray_artifact.json"} <= folders()
    a.push_to_hub(repo_id)
    assert folders() == {".gitattributes", "README.md", "txray_artifact.json", "meta", "neuron_cards", "distributions"}
    assert Profile.from_pretrained(repo_id) == a and hf_txray.load(repo_id).profiles == {"pretrained": a}
    report.push_to_hub(repo_id)
    assert folders() == {".gitattributes", "README.md", "txray_artifact.json", "meta", "transfer_reports", "summary"}
    hf_txray.push_to_hub(repo_id, profiles=[b], plots=False)
    assert folders() == {".gitattributes", "README.md", "txray_artifact.json", "meta", "neuron_cards", "distributions"}
    with pytest.raises(ProfileFormatError, match="is a results folder"):
        Profile.from_pretrained(repo_id)
    assert hf_txray.load(repo_id).profiles == {b.stage: b}


def test_the_branch_hint_of_a_private_repo_uses_the_token_passed(results, hub, monkeypatch):
    """Helper 119: the hint read the repo's branches without the token passed to from_pretrained / load, so a
    private repo read with token=... (no saved login) got no hint."""
    a, _, _ = results
    repo_id = f"{hub.username}/private-on-a-branch"
    hub.api.create_repo(repo_id, repo_type="dataset", private=True)
    a.push_to_hub(repo_id, revision="dev")
    monkeypatch.delenv("HF_TOKEN")
    hint = "It was read at its default branch; the repo also has the branch\\(es\\) 'dev'"
    with pytest.raises(ProfileFormatError, match=hint):
        Profile.from_pretrained(repo_id, token=hub.token)
    with pytest.raises(ProfileFormatError, match=hint):
        hf_txray.load(repo_id, token=hub.token)


def test_a_push_keeps_a_readme_it_did_not_write(results, hub, tmp_path):
    """A dataset repo with its own data and card: a results push replaced the card's text and metadata with the
    results card (the owner's description and license were gone). The owner's card stays, with the results card as
    one marked section, replaced (not repeated) by the next push, and both kinds of config load."""
    a, b, report = results
    repo = f"{hub.username}/own-data"
    own = tmp_path / "own"
    (own / "data").mkdir(parents=True)
    pd.DataFrame({"text": ["one", "two"]}).to_parquet(own / "data" / "train.parquet")
    card = DatasetCard.from_template(DatasetCardData(
        license="cc-by-4.0", pretty_name="My corpus", tags=["mine"],
        configs=[{"config_name": "corpus", "data_files": [{"split": "train", "path": "data/*.parquet"}]}]))
    card.text = "# My corpus\n\nTwo texts I wrote by hand.\n"
    card.save(own / "README.md")
    hub.api.create_repo(repo, repo_type="dataset")
    hub.api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=own)

    hf_txray.push_to_hub(repo, profiles=[a, b], reports=[report], plots=False)
    pushed = DatasetCard(hub.server.repo_files(repo)["README.md"].decode())
    assert pushed.text.startswith("# My corpus\n\nTwo texts I wrote by hand.")
    assert pushed.data.license == "cc-by-4.0" and pushed.data.pretty_name == "My corpus"
    assert pushed.data.tags[0] == "mine" and "hf-txray" in pushed.data.tags
    assert pushed.text.count("<!-- hf_txray:results:start -->") == 1 and f"{report.meta.stage_a} → {report.meta.stage_b}" in pushed.text
    names = {c["config_name"]: c.get("default") for c in declared(pushed)}
    assert names["corpus"] is True and {"neuron_cards", "transfer_reports"} <= set(names)
    assert datasets.load_dataset(repo, "corpus", split="train")["text"] == ["one", "two"]
    assert_same_results(hf_txray.load(repo), [a, b], [report])

    a.push_to_hub(repo)  # a single profile over it: the section replaced, the owner's text kept
    again = DatasetCard(hub.server.repo_files(repo)["README.md"].decode())
    assert again.text.startswith("# My corpus\n\nTwo texts I wrote by hand.")
    assert again.text.count("<!-- hf_txray:results:start -->") == 1 and f"{report.meta.stage_a} → {report.meta.stage_b}" not in again.text
    assert "corpus" in {c["config_name"] for c in declared(again)}
    assert hf_txray.load(repo).profiles[a.stage] == a


def test_which_readmes_a_push_replaces_whole():
    from hf_txray.hub_io import _hosts_results

    card = lambda tags, text: DatasetCard(f"---\n{DatasetCardData(tags=tags).to_yaml()}\n---\n{text}")  # noqa: E731
    assert not _hosts_results(card(["hf-txray"], "# TX-Ray neuron analysis of x\n"))  # ours: replaced
    assert not _hosts_results(card(["hf_txray"], "# hf_txray probing results\n"))  # probing cards before 2026-12-03
    assert not _hosts_results(card([], "\n"))  # an empty card
    assert _hosts_results(card(["mine"], "# Mine\n"))  # someone else's: kept, results as a section
    assert _hosts_results(card(["mine", "hf-txray"], "# Mine\n<!-- hf_txray:results:start -->\nx\n"
                                                     "<!-- hf_txray:results:end -->\n"))


@pytest.mark.parametrize("readme", [None, "text", "yaml"])
def test_a_push_keeps_the_owners_data_loadable(results, hub, tmp_path, readme):
    """Helper 143: a README of YAML alone lost its license, name and default config to the results card; and data
    that datasets found by its default layout (no configs declared) no longer loaded once the results' configs were
    declared. The owner's files are declared as the config 'data' (the default, unless hf_txray writes the card)."""
    a, _, _ = results
    repo = f"{hub.username}/owner-{readme}"
    own = tmp_path / "own"
    (own / "data").mkdir(parents=True)
    # helper 144: a file name with glob characters, declared as it is, matched nothing
    pd.DataFrame({"text": ["one", "two"]}).to_parquet(own / "data" / ("train[v2].parquet" if readme else "train.parquet"))
    if readme == "text":
        (own / "README.md").write_text("# My corpus\n\nTwo texts.\n")
    elif readme == "yaml":
        (own / "README.md").write_text("---\nlicense: cc-by-4.0\npretty_name: My corpus\n---\n")
    hub.api.create_repo(repo, repo_type="dataset")
    hub.api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=own)
    a.push_to_hub(repo)
    hf_txray.push_to_hub(repo, profiles=[a], plots=False)
    pushed = DatasetCard(hub.server.repo_files(repo)["README.md"].decode())
    defaults = [c["config_name"] for c in declared(pushed) if c.get("default")]
    assert defaults == ["data"]  # the repo's data stays what load_dataset(repo) reads
    assert datasets.load_dataset(repo, "data", split="train", download_mode="force_redownload")["text"] == ["one", "two"]
    if readme == "yaml":
        assert pushed.data.license == "cc-by-4.0" and pushed.data.pretty_name == "My corpus"
    if readme == "text":
        assert pushed.text.startswith("# My corpus\n\nTwo texts.")
    assert hf_txray.load(repo).profiles[a.stage] == a


def test_a_push_with_a_token_passed_keeps_a_private_repos_data_loadable(results, hub, tmp_path, monkeypatch):
    """Helper 283: the owner's data files (found by datasets' default layout, no configs declared) were listed with
    the default token (HF_TOKEN, the saved login), not the push's: into a private repo pushed to with token=... alone
    they were not found, the results' configs were declared alone, and load_dataset(repo) read neuron_cards instead of
    the owner's data ('data' config: BuilderConfig 'data' not found)."""
    a, _, _ = results
    repo = f"{hub.username}/private-owned"
    own = tmp_path / "own"
    (own / "data").mkdir(parents=True)
    pd.DataFrame({"text": ["one", "two"]}).to_parquet(own / "data" / "train.parquet")
    (own / "README.md").write_text("# My corpus\n\nTwo texts.\n")
    hub.api.create_repo(repo, repo_type="dataset", private=True)
    hub.api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=own)
    monkeypatch.delenv("HF_TOKEN")
    for push in (lambda: a.push_to_hub(repo, token=hub.token),
                 lambda: hf_txray.push_to_hub(repo, profiles=[a], plots=False, token=hub.token)):
        push()
        pushed = DatasetCard(hub.server.repo_files(repo)["README.md"].decode())
        assert [c["config_name"] for c in declared(pushed) if c.get("default")] == ["data"]
        for config in ("data", None):  # the owner's data, also as the repo's default
            assert datasets.load_dataset(repo, config, split="train", token=hub.token,
                                         download_mode="force_redownload")["text"] == ["one", "two"]
    assert hf_txray.load(repo, token=hub.token).profiles[a.stage] == a


def test_a_push_over_data_of_another_format_is_refused_before_upload(results, hub, tmp_path):
    """Helper 144: datasets reads every config of a repo with the builder of its default one, so an owner's CSV
    beside the results' parquet configs made one of them unloadable. Refused before anything is uploaded."""
    a, _, _ = results
    repo = f"{hub.username}/owner-csv"
    own = tmp_path / "own"
    own.mkdir()
    pd.DataFrame({"text": ["one", "two"]}).to_csv(own / "train.csv", index=False)
    hub.api.create_repo(repo, repo_type="dataset")
    hub.api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=own)
    before = sorted(hub.server.repo_files(repo))
    with pytest.raises(ConfigurationError, match=r"another format than parquet \('train\.csv'\).*Nothing was uploaded"):
        a.push_to_hub(repo)
    assert sorted(hub.server.repo_files(repo)) == before
    assert datasets.load_dataset(repo, split="train", download_mode="force_redownload")["text"] == ["one", "two"]


def test_an_artifact_loads_from_a_subfolder_of_a_repo_or_folder(results, hub, tmp_path):
    """Helper 153: from_pretrained(..., subfolder=) was a TypeError, and 'user/repo/sub' a missing local path."""
    a, _, report = results
    a.save_pretrained(tmp_path / "outer" / "stages" / "pretrained")
    assert Profile.from_pretrained(tmp_path / "outer", subfolder="stages/pretrained") == a
    repo_id = f"{hub.username}/many-artifacts"
    hub.api.create_repo(repo_id, repo_type="dataset")
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=tmp_path / "outer", path_in_repo="runs")
    report.save_pretrained(tmp_path / "report")
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=tmp_path / "report",
                          path_in_repo="runs/report")
    assert Profile.from_pretrained(repo_id, subfolder="runs/stages/pretrained") == a
    assert TransferReport.from_pretrained(repo_id, subfolder="runs/report") == report
    with pytest.raises(hf_txray.ArtifactNotFoundError, match="has no folder 'runs/nothing'.*check subfolder="):
        Profile.from_pretrained(repo_id, subfolder="runs/nothing")
    with pytest.raises(ConfigurationError, match="subfolder must be a folder inside the repo"):
        Profile.from_pretrained(tmp_path / "outer", subfolder="../outer")
    # helper 155: a subfolder holding another artifact was named as "the Hub dataset '<local root>'"
    with pytest.raises(ProfileFormatError, match=re.escape(str(tmp_path / "outer" / "stages" / "pretrained"))):
        TransferReport.from_pretrained(tmp_path / "outer", subfolder="stages/pretrained")
    with pytest.raises(ProfileFormatError, match=f"the Hub dataset '{repo_id}/runs/report'"):
        Profile.from_pretrained(repo_id, subfolder="runs/report")


def test_pushing_an_export_folder_leaves_its_card_as_saved(results, hub, tmp_path):
    """Helper 174: the push merged the repo's card into the export folder's own README, though the retry hint says
    the folder is intact: retrying a failed push over an owner's card put the owner's text in twice, and pushing the
    same folder to another repo carried the first repo's text, license and `data` config (no files: the default
    config no longer loaded)."""
    a, _, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], plots=False)
    saved = (folder / "README.md").read_bytes()
    own = tmp_path / "own"
    (own / "data").mkdir(parents=True)
    pd.DataFrame({"text": ["one"]}).to_parquet(own / "data" / "train.parquet")
    (own / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# Owner card\n\nOnly for this repo.\n")
    first, second = f"{hub.username}/owned", f"{hub.username}/fresh"
    hub.api.create_repo(first, repo_type="dataset")
    hub.api.upload_folder(repo_id=first, repo_type="dataset", folder_path=own)
    hub.server.fail_next_commit = True
    with pytest.raises(HubError, match="intact"):
        hf_txray.hub.push_folder(folder, first)
    assert (folder / "README.md").read_bytes() == saved
    hf_txray.hub.push_folder(folder, first)  # the retry
    card = hub.server.repo_files(first)["README.md"].decode()
    assert card.count("Only for this repo.") == 1 and card.count("<!-- hf_txray:results:start -->") == 1
    assert (folder / "README.md").read_bytes() == saved
    hf_txray.hub.push_folder(folder, second)
    assert "Only for this repo." not in hub.server.repo_files(second)["README.md"].decode()
    assert len(datasets.load_dataset(second, split="train")) == a.num_rows


def test_a_pushed_export_folders_card_names_the_repo_and_branch_it_is_pushed_to(results, hub, tmp_path):
    """Helper 283: an export folder's card names the repo and branch given to save_to_disk (or the placeholders
    ``<repo_id>`` and ``<this folder>``), and push_folder / `hf-txray push` uploaded it as it was: an export for
    'someone/else' at branch 'exp' pushed to the default branch of another repo published a card whose every example
    (load_dataset, hf_txray.load, hf-txray reproduce) read 'someone/else', or a branch 'exp' that does not exist. The
    pushed card names where it is; the folder itself stays as saved."""
    a, b, report = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a, b], [report], plots=False, repo_id="someone/else",
                                   revision="exp")
    saved = (folder / "README.md").read_bytes()
    repo_id = f"{hub.username}/pushed-export"
    hf_txray.hub.push_folder(folder, repo_id)
    card = hub.server.repo_files(repo_id)["README.md"].decode()
    assert "someone/else" not in card and 'revision="exp"' not in card and "--revision" not in card
    assert f'profiles, reports = hf_txray.load("{repo_id}")' in card
    assert f'neuron_cards = load_dataset("{repo_id}", "neuron_cards", split="train")' in card
    assert f"hf-txray reproduce {repo_id}\n" in card
    assert_same_results(hf_txray.load(repo_id), [a, b], [report])  # as the card says
    assert (folder / "README.md").read_bytes() == saved
    unnamed = hf_txray.save_to_disk(tmp_path / "unnamed", [a], plots=False)  # placeholders; a bare repo name
    hf_txray.hub.push_folder(unnamed, "unnamed-export", revision="v2")
    card = hub.server.repo_files(f"{hub.username}/unnamed-export", revision="v2")["README.md"].decode()
    assert "<repo_id>" not in card and "<this folder>" not in card
    assert f'hf_txray.load("{hub.username}/unnamed-export", revision="v2")' in card
    assert f"hf-txray reproduce {hub.username}/unnamed-export --revision v2\n" in card
    assert hf_txray.load(f"{hub.username}/unnamed-export", revision="v2").profiles[a.stage] == a


def test_a_private_push_into_an_existing_public_repo_is_refused(results, hub, tmp_path):
    """Helper 174: private=True only applies when the repo is created, so a private push (hf-txray push --private)
    into an existing public repo published the results without a word. Refused before the upload."""
    a, _, _ = results
    repo = f"{hub.username}/already-public"
    hub.api.create_repo(repo, repo_type="dataset")
    before = sorted(hub.server.repo_files(repo))
    with pytest.raises(ConfigurationError, match="already exists and is public.*Nothing was uploaded"):
        hf_txray.push_to_hub(repo, profiles=[a], plots=False, private=True)
    with pytest.raises(ConfigurationError, match="already exists and is public"):
        a.push_to_hub(repo, private=True)
    assert sorted(hub.server.repo_files(repo)) == before
    hub.api.create_repo(f"{hub.username}/already-private", repo_type="dataset", private=True)
    hf_txray.push_to_hub(f"{hub.username}/already-private", profiles=[a], plots=False, private=True)
    assert hub.api.dataset_info(f"{hub.username}/already-private").private


def test_a_stage_name_with_a_newline_is_refused_before_the_card_is_written(results, tmp_path):
    """Helper 176: a stage renamed (or loaded) with a newline reached the card's headings and tables and broke
    them; save_to_disk refuses it before writing, for a profile and for a report's stages."""
    a, b, report = results
    broken = copy.copy(a)
    broken.meta = dataclasses.replace(a.meta, stage="pre\ntrained")
    with pytest.raises(ConfigurationError, match="Profile stage 'pre\\\\ntrained' holds the control character"):
        hf_txray.save_to_disk(tmp_path / "profile", [broken], plots=False)
    bad_report = copy.copy(report)
    bad_report.meta = dataclasses.replace(report.meta, stage_b="fine\ntuned")
    with pytest.raises(ConfigurationError, match="Report .*: stage 'fine\\\\ntuned' holds the control"):
        hf_txray.save_to_disk(tmp_path / "report", reports=[bad_report], plots=False)
    assert not (tmp_path / "profile").exists() and not (tmp_path / "report").exists()
    piped = copy.copy(a)  # a '|' stays in one table cell, escaped
    piped.meta = dataclasses.replace(a.meta, stage="fine|tuned")
    text = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "pipe", [piped], plots=False) / "README.md").text
    assert "fine\\|tuned" in text



def _renamed_stages(profiles, report, names):
    """Copies of `profiles` and `report` whose stages are renamed by `names` (old stage -> new name)."""
    renamed = []
    for profile in profiles:
        out = copy.copy(profile)
        out.meta = dataclasses.replace(profile.meta, stage=names[profile.stage])
        renamed.append(out)
    pair = copy.copy(report)
    pair.meta = dataclasses.replace(report.meta, stage_a=names[report.meta.stage_a],
                                    stage_b=names[report.meta.stage_b])
    return renamed, pair


def test_stage_names_and_tag_values_are_text_in_the_card_not_markup(results, tmp_path):
    """Helper 230: the card wrote stage names and the mass share table's tag values into markdown as they were, so
    the Hub rendered a stage 'pre<b>train</b> | x' as bold 'train', 'fine*tuned*_`y`' in italics and code, and a tag
    '<img src=x>' as an image. Rendered (CommonMark with tables, as the Hub renders cards), every one reads as named."""
    markdown_it = pytest.importorskip("markdown_it")
    a, b, report = results
    names = {"pretrained": "pre<b>train</b> | x", "finetuned": "fine*tuned*_`y` & [z](u)"}
    renamed, pair = _renamed_stages((a, b), report, names)
    pos = pair.mass_share["feature_type"] == "pos"
    tag = pair.mass_share.loc[pos, "feature"].iloc[0]
    pair.mass_share = pair.mass_share.assign(feature=pair.mass_share["feature"].where(
        ~(pos & (pair.mass_share["feature"] == tag)), "<img src=x>"))
    text = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "r", renamed, [pair], plots=False) / "README.md").text
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<b>" not in page and "<img" not in page and "<em>tuned" not in page and '<a href="u"' not in page
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    summary = next(line for line in shown.splitlines() if "of the neurons are active in both stages" in line)
    assert summary.startswith(f"{names['pretrained']} → {names['finetuned']}:")
    assert f"{names['pretrained']} → {names['finetuned']}" in shown.splitlines()  # the report's heading
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page)
    assert {html.unescape(c) for c in cells} >= {*names.values(), "<img src=x>"}  # profiles table, mass share


def test_stage_names_never_reorder_the_cards_figures(results, tmp_path):
    """Helper 283: a stage name holding a right-to-left override (U+202E, invisible) reversed the rest of the card's
    headline line as rendered, so 'lost 26.0%' read '%0.62'; an Arabic stage name right before a figure turned it into
    an Arabic number drawn before the name. Names are written without directional controls now, and right-to-left
    ones inside a first-strong isolate (U+2068 ... U+2069), which keeps their direction to themselves."""
    a, b, report = results
    names = {"pretrained": "pre\u202etrain", "finetuned": "مرحلة"}
    renamed, pair = _renamed_stages((a, b), report, names)
    text = DatasetCard.load(hf_txray.save_to_disk(tmp_path / "r", renamed, [pair], plots=False) / "README.md").text
    assert "\u202e" not in text
    # every isolate is closed on its own line: nothing after it is reordered
    assert all(line.count("\u2068") == line.count("\u2069") for line in text.splitlines())
    headline = next(line for line in text.splitlines() if "of the neurons are active in both stages" in line)
    assert headline.startswith("- **pretrain → \u2068مرحلة\u2069**: ")


def test_a_push_to_a_revision_that_is_a_tag_is_refused_before_the_upload(results, hub):
    """Helper 176: push_to_hub(revision="v1") with "v1" a tag of the repo created a branch "v1" beside the tag:
    the tag kept the old files and the branch hid it from every reader of revision "v1", without a word."""
    a, b, _ = results
    repo_id = f"{hub.username}/tagged"
    hf_txray.push_to_hub(repo_id, profiles=[a], plots=False)
    hub.api.create_tag(repo_id, tag="v1", repo_type="dataset")
    tagged = hub.api.list_repo_refs(repo_id, repo_type="dataset")
    for push in (lambda: hf_txray.push_to_hub(repo_id, profiles=[b], plots=False, revision="v1"),
                 lambda: b.push_to_hub(repo_id, revision="v1"),
                 lambda: b.push_to_hub(repo_id, revision="v1", create_pr=True)):
        with pytest.raises(ConfigurationError, match="revision='v1' is a tag of the Hub dataset .* not a branch.* "
                                                     "Nothing was uploaded"):
            push()
    with pytest.raises(ConfigurationError, match="revision='refs/tags/v1' is a tag"):  # the full ref name too
        b.push_to_hub(repo_id, revision="refs/tags/v1")
    assert hub.api.list_repo_refs(repo_id, repo_type="dataset") == tagged  # no branch, no commit
    assert list(hf_txray.load(repo_id, revision="v1").profiles) == [a.stage]
    hf_txray.push_to_hub(repo_id, profiles=[b], plots=False, revision="v1-results")  # a branch: fine
    assert list(hf_txray.load(repo_id, revision="v1-results").profiles) == [b.stage]


def test_a_push_to_an_invalid_branch_name_is_refused_before_anything_is_written(results, hub, tmp_path):
    """Helper 268: `hf-txray push REPO DIR --revision ""` exported the folder and then failed on a 404 of the branch
    route; --revision "a b" (or " ") made a branch of that name, which git refuses. Every push refuses a branch name
    git would not take, before the export, the repo or the branch is created; a valid one still pushes."""
    a, b, report = results
    repo_id = f"{hub.username}/branch-names"
    a.save_pretrained(tmp_path / "runs" / "a")
    export = hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False)
    for bad in ("", " ", "a b", "x..y", "a:b", ".hidden", "x.lock", "a//b", "dev/", 'q"t'):
        for push in (lambda: hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, revision=bad,
                                                  local_dir=tmp_path / "push"),
                     lambda: a.push_to_hub(repo_id, revision=bad),
                     lambda: report.push_to_hub(repo_id, revision=bad, create_pr=True),
                     lambda: hf_txray.hub.push_folder(export, repo_id, revision=bad)):
            with pytest.raises(ConfigurationError, match=re.escape(f"Invalid branch {bad!r} to push to")):
                push()
        assert cli_main(["push", repo_id, str(tmp_path / "runs"), "--revision", bad]) == 2
    assert not (tmp_path / "push").exists()
    with pytest.raises(RepositoryNotFoundError):  # nothing was created
        hub.api.repo_info(repo_id, repo_type="dataset")
    for good in ("exp", "results/v2"):
        assert cli_main(["push", repo_id, str(tmp_path / "runs"), "--revision", good]) == 0
        assert list(hf_txray.load(repo_id, revision=good).profiles) == [a.stage]


def test_a_branch_name_the_cards_examples_cannot_quote_is_refused(results, tmp_path):
    """Helper 287: revision='q"t' (a name git takes) passed check_branch, and the card's loading examples read
    `revision="q"t"`, which is no Python; a push of the folder elsewhere (card.naming_repo) left them naming the old
    repo. A '"' is refused by every push (the test above) and by save_to_disk, before anything is written."""
    a, _, _ = results
    with pytest.raises(ConfigurationError, match=re.escape("""Invalid branch 'q"t' to push to""")):
        hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False, revision='q"t')
    assert not (tmp_path / "export").exists()
    hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False, repo_id="user/r", revision="results/v2")
    text = (tmp_path / "export" / "README.md").read_text()
    assert 'profiles, reports = hf_txray.load("user/r", revision="results/v2")' in text


def test_an_export_refuses_a_repo_id_a_push_would_refuse(results, tmp_path, capsys):
    """Helper 287: `hf-txray export --repo-id "bad id!"` (and save_to_disk(repo_id=...)) wrote the id into the card's
    loading examples as it was; it is refused with the push's own check, before the inputs are read or anything is
    written."""
    a, _, _ = results
    a.save_pretrained(tmp_path / "runs" / "a")
    with pytest.raises(ConfigurationError, match=re.escape("Invalid Hub repo id 'bad id!'")):
        hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False, repo_id="bad id!")
    assert cli_main(["export", str(tmp_path / "runs"), "--out", str(tmp_path / "export"), "--repo-id", "bad id!"]) == 2
    assert "Invalid Hub repo id 'bad id!'" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()
    assert cli_main(["export", str(tmp_path / "runs"), "--out", str(tmp_path / "export"), "--repo-id", "user/r",
                     "--no-plots"]) == 0
    assert 'hf_txray.load("user/r")' in (tmp_path / "export" / "README.md").read_text()


def test_a_license_that_cannot_be_a_hub_license_id_is_refused_before_anything_is_written(results, hub, tmp_path,
                                                                                         capsys):
    """Helper 287: `hf-txray export --license "a b"` (or push, save_to_disk, push_to_hub) wrote the value into the
    card's metadata as it was (`license: a b`), which the Hub refuses when the card is pushed. No offline list of the
    Hub's licenses exists: what cannot be one (whitespace, a quote, a newline, empty) is refused, naming the fix."""
    a, _, _ = results
    repo_id = f"{hub.username}/licenses"
    a.save_pretrained(tmp_path / "runs" / "a")
    for bad in ("a b", "", 'mit"', "mit\nx", " apache-2.0"):
        refused = re.escape(f"Invalid license {bad!r} (license, --license)")
        with pytest.raises(ConfigurationError, match=refused):
            hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False, license=bad)
        with pytest.raises(ConfigurationError, match=refused):
            hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, license=bad, local_dir=tmp_path / "push")
        for command in (["export", str(tmp_path / "runs"), "--out", str(tmp_path / "export")],
                        ["push", repo_id, str(tmp_path / "runs")]):
            assert cli_main([*command, "--license", bad]) == 2
            assert f"Invalid license {bad!r}" in capsys.readouterr().err
    assert not (tmp_path / "export").exists() and not (tmp_path / "push").exists()
    with pytest.raises(RepositoryNotFoundError):  # nothing was created
        hub.api.repo_info(repo_id, repo_type="dataset")
    for good in ("apache-2.0", "cc-by-4.0", "openrail++", "other"):
        hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False, license=good)
        assert DatasetCard.load(tmp_path / "export" / "README.md").data.license == good


def test_an_uppercase_license_id_is_refused_naming_the_lowercase_one(results, hub, tmp_path, capsys):
    """Helper 288: `--license Apache-2.0` (the SPDX spelling) passed check_license and was written into the card as
    `license: Apache-2.0`, which is no Hub license id (they are all lowercase). It is refused, before anything is
    written, naming the lowercase id as the fix; the value is not changed behind the user's back."""
    a, _, _ = results
    repo_id = f"{hub.username}/uppercase-license"
    a.save_pretrained(tmp_path / "runs" / "a")
    for bad, fix in (("Apache-2.0", "apache-2.0"), ("MIT", "mit"), ("CC-BY-4.0", "cc-by-4.0"), ("Other", "other")):
        refused = re.escape(f"Invalid license {bad!r} (license, --license): Hub license ids are lowercase; use {fix!r}")
        with pytest.raises(ConfigurationError, match=refused):
            hf_txray.save_to_disk(tmp_path / "export", [a], [], plots=False, license=bad)
        with pytest.raises(ConfigurationError, match=refused):
            hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, license=bad, local_dir=tmp_path / "push")
        assert cli_main(["export", str(tmp_path / "runs"), "--out", str(tmp_path / "export"), "--license", bad]) == 2
        assert f"use {fix!r}" in capsys.readouterr().err
    assert not (tmp_path / "export").exists() and not (tmp_path / "push").exists()
    with pytest.raises(RepositoryNotFoundError):  # nothing was created
        hub.api.repo_info(repo_id, repo_type="dataset")


def test_card_links_go_to_the_hub_in_use(results, tmp_path, monkeypatch):
    """Helper 268: the card's links were always to https://huggingface.co, also for results read from and pushed to
    another Hub (HF_ENDPOINT: a company Hub, the test server), where the model and its pinned commit are: they go to
    the endpoint huggingface_hub uses, which is https://huggingface.co by default."""
    from huggingface_hub import constants

    from hf_txray.card import results_dataset_note

    a, _, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "default", [a], [], plots=False)
    assert "[tiny-org/bert-tiny](https://huggingface.co/tiny-org/bert-tiny)" in (folder / "README.md").read_text()
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example.com")
    folder = hf_txray.save_to_disk(tmp_path / "other", [a], [], plots=False)
    text = (folder / "README.md").read_text()
    assert "[tiny-org/bert-tiny](https://hub.example.com/tiny-org/bert-tiny)" in text
    assert "https://huggingface.co/tiny-org" not in text
    assert "(https://hub.example.com/datasets/me/x)" in results_dataset_note("me/x")


def test_cli_show_of_a_hub_repo_id_says_how_to_read_it(tmp_path, capsys, monkeypatch):
    """Helper 268: `hf-txray show my-user/results` (the repo `hf-txray push` just printed) said only "No folder
    my-user/results: Check the path.": show reads folders, and it says so and how to read the repo."""
    monkeypatch.chdir(tmp_path)
    assert cli_main(["show", "my-user/results"]) == 2
    err = capsys.readouterr().err
    assert "No folder my-user/results" in err and "show reads local folders" in err
    assert "hf-txray view my-user/results" in err and "hf download my-user/results --repo-type dataset" in err
    for path in ("./my-user/results", "runs/a/b", "bad id!/x"):  # local paths, and no repo id: no such hint
        assert cli_main(["show", path]) == 2
        assert "show reads local folders" not in capsys.readouterr().err


def test_cli_show_of_a_hub_repo_at_a_revision_says_how_to_read_it(tmp_path, capsys, monkeypatch):
    """Helper 335: `hf-txray show my-user/results@exp` (a repo at a branch, as `hf-txray view` takes it) said only
    "No folder my-user/results@exp: Check the path.", without the hint a bare repo id gets (helper 268): the part
    before '@' was checked as a repo id whole. It gets the hint, with the revision in the download command."""
    monkeypatch.chdir(tmp_path)
    for given, download in (("my-user/results@exp", "--revision exp"),
                            ("my-user/results@results/v2", "--revision results/v2"),
                            ("my-user/results@exp 2", "--revision 'exp 2'"),
                            # URL-quoted, as view reads it (hf_txray.hub_io.split_revision): the hint had refs%2Fpr%2F1
                            ("my-user/results@refs%2Fpr%2F1", "--revision refs/pr/1")):
        assert cli_main(["show", given]) == 2
        err = capsys.readouterr().err
        assert "show reads local folders" in err and "'my-user/results' at the revision" in err, err
        assert f"hf download my-user/results --repo-type dataset {download} --local-dir DIR" in err, err
        assert f"hf-txray view {shlex.quote(given)}" in err
    for path in ("bad id!/x@exp", "my-user/results@"):  # no repo id before '@', no revision after it: no such hint
        assert cli_main(["show", path]) == 2
        assert "show reads local folders" not in capsys.readouterr().err


def test_load_of_a_saved_pruning_plan_says_what_it_holds(hub, results, tmp_path):
    """Helper 268: hf_txray.load of a pruning plan's folder said "is a saved artifact (txray_artifact.json) without its
    meta/*.parquet: a file was deleted after saving" (a plan has no meta/: nothing was deleted), and of a repo it was
    pushed to only "no meta/*.parquet". Both say it holds a pruning plan and give the loader call that reads it."""
    from hf_txray.pruning import plan_pruning

    plan = plan_pruning(results[2], "lost", 1, allow_fewer=True)
    plan.save_pretrained(tmp_path / "plan")
    with pytest.raises(ProfileFormatError) as err:
        hf_txray.load(tmp_path / "plan")
    assert "deleted" not in str(err.value)
    assert (f"holds a saved hf_txray pruning plan, not profiles or reports: load it with "
            f"hf_txray.PruningPlan.from_pretrained({str(tmp_path / 'plan')!r})") in str(err.value)
    repo_id = f"{hub.username}/a-plan-268"
    plan.push_to_hub(repo_id, revision="v1")
    with pytest.raises(ProfileFormatError) as err:
        hf_txray.load(repo_id, revision="v1")
    assert (f"the Hub dataset {repo_id!r} at revision 'v1' holds a saved hf_txray pruning plan, not profiles or "
            f"reports: load it with hf_txray.PruningPlan.from_pretrained({repo_id!r}, revision='v1')") in str(err.value)
    assert PruningPlan.from_pretrained(repo_id, revision="v1") == plan


def test_an_invalid_token_is_said_to_be_refused(hub, results, monkeypatch):
    """An expired or mistyped token (HF_TOKEN here) makes the Hub answer 401 even for a public repo: the error said
    'a private repo needs token=... or HF_TOKEN', the opposite of the fix. It says the token was refused, how to renew
    it, and that a public repo reads without it; the token itself is not in the message."""
    hf_txray.push_to_hub("test-user/public-results", profiles=[results[0]], plots=False)
    bad = "hf_expiredTokenThatTheHubRefuses123"
    monkeypatch.setenv("HF_TOKEN", bad)
    with pytest.raises(HubError, match="refused the token") as caught:
        hf_txray.load("test-user/public-results")
    assert "token=False" in str(caught.value) and bad not in str(caught.value)
    profiles, _ = hf_txray.load("test-user/public-results", token=False)  # the fix it names
    assert list(profiles) == [results[0].stage]


def test_a_refused_token_is_said_also_when_the_repo_is_in_the_cache(hub, results, monkeypatch):
    """Helper 268: snapshot_download answers a 401 with the cached copy, without a word, so a load with an expired
    token returned the results read before, however old (here: one stage, where the repo now holds two)."""
    repo = "test-user/cached-results"
    hf_txray.push_to_hub(repo, profiles=[results[0]], plots=False)
    assert list(hf_txray.load(repo)[0]) == [results[0].stage]  # now in the cache
    hf_txray.push_to_hub(repo, profiles=[results[0], results[1]], plots=False)
    monkeypatch.setenv("HF_TOKEN", "hf_expiredTokenThatTheHubRefuses456")
    with pytest.raises(HubError, match="refused the token"):
        hf_txray.load(repo)
    assert list(hf_txray.load(repo, token=False)[0]) == [results[0].stage, results[1].stage]


def test_a_repo_the_hub_no_longer_has_is_said_also_when_it_is_in_the_cache(hub, results):
    """Helper 330: snapshot_download answers "no such repo" with the cached copy, without a word: a results repo
    deleted on the Hub (or a private one read without a token that may read it) still loaded, and opened in the
    viewer, as the stages read before (here one, where the repo had two when deleted)."""
    repo = "test-user/deleted-results"
    hf_txray.push_to_hub(repo, profiles=[results[0]], plots=False)
    assert list(hf_txray.load(repo)[0]) == [results[0].stage]  # now in the cache
    hf_txray.push_to_hub(repo, profiles=[results[0], results[1]], plots=False)
    hub.api.delete_repo(repo, repo_type="dataset")
    with pytest.raises(HubError, match="no such repo"):
        hf_txray.load(repo)
    private = "test-user/private-cached-results"
    hf_txray.push_to_hub(private, profiles=[results[0]], plots=False, private=True)
    assert list(hf_txray.load(private)[0]) == [results[0].stage]  # read with the owner's token: in the cache
    with pytest.raises(HubError, match="no such repo, or a private one"):
        hf_txray.load(private, token=False)


def test_a_repo_at_a_revision_written_as_the_viewer_takes_it_says_to_pass_the_revision_apart(tmp_path, capsys,
                                                                                             monkeypatch):
    """Helper 330: `hf-txray view owner/name@rev` opens a repo at a branch, but compare, reproduce and
    hf_txray.load take the revision apart; given `owner/name@rev` they said only "neither a folder nor a valid Hub
    repo id ('namespace/name')", which names no fix. They say to pass the revision apart."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hf_txray.ArtifactNotFoundError, match=r"'test-user/results' with revision='exp 2' \(--revision 'exp 2'"):
        hf_txray.load("test-user/results@exp 2")
    assert cli_main(["reproduce", "test-user/results@exp"]) == 2
    assert "'test-user/results' with revision='exp' (--revision exp on the command line)" in capsys.readouterr().err
    with pytest.raises(hf_txray.ArtifactNotFoundError) as caught:  # not a repo id before the "@": no such hint
        hf_txray.load("not a repo@exp")
    assert "revision=" not in str(caught.value)


def test_model_and_corpus_names_are_text_in_the_card_not_markup(results, tmp_path):
    """Helper 234: helper 230 made stage names and tag values text; the card still wrote a profile's model and corpus
    names (its model_id, a local folder's name, a dataset_id) into the profiles and reproduce tables as they were,
    so '<img src=x>' rendered as an image and '*x*' in italics, and a name with a backtick ended its one-backtick
    code span early (the summary's model, the options line). Rendered, each reads as named."""
    markdown_it = pytest.importorskip("markdown_it")
    a, _, _ = results
    model, corpus = "tiny<b>bert</b>*x*", "<img src=x>_`d`_"
    named = copy.copy(a)
    provenance = copy.deepcopy(a.meta.provenance or {})
    provenance.setdefault("options", {})["dataset_id"] = corpus
    named.meta = dataclasses.replace(a.meta, model_id=model, dataset_id=corpus, provenance=provenance)
    text = build_card({"default": named}, {}, {"meta": 1}, {}).text
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<b>" not in page and "<img" not in page and "<em>" not in page
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"Model(s): {model}" in shown and f"dataset_id={corpus}" in shown
    cells = {html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", page)}
    assert {model, corpus} <= cells  # the profiles table's model and corpus
    assert f"TX-Ray neuron analysis of {model}" in shown.splitlines()  # the default title


def test_user_feature_names_are_text_in_the_dataset_card_not_markup():
    """0d30650 made feature names text in the model and probing cards; the dataset card still wrote a user feature's
    name as it was into the summary's features list, the headline, the stages, noise, per-layer and most-changed
    tables (their column names) and the mass share line: '<img src=x>' rendered as an image (13 of them) and '*d*'
    in italics (13). Rendered, the name reads as given everywhere, a '|' in it keeps every table whole, and the
    p-value column keeps its format."""
    markdown_it = pytest.importorskip("markdown_it")
    name = "<img src=x>*d*|e"
    digits = hf_txray.UserFeature(name, lambda t: [(i, i + 1, "D") for i, c in enumerate(t) if c.isdigit()])
    # 6 copies: a neuron ranked on the digits feature needs 20 credits with a digit in each stage (helper 273)
    texts = [" ".join(f"{w} {k % 10}" for k, w in enumerate(t.split())) for t in SAMPLE_TEXTS * 6 if t.strip()]
    options = dict(tokenizer=bert_tokenizer(), features=("token", digits), show_progress=False, max_length=32)
    a = hf_txray.analyze(tiny_bert(0), texts, stage="a", **options)
    b = hf_txray.analyze(tiny_bert(1), texts, stage="b", **options)
    report = hf_txray.compare(a, b)
    text = build_card({"a": a, "b": b}, {report.name: report}, {"meta": 1}, {}).text
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in page and "<em>" not in page
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"features: token, {name}" in shown and f"mean Hellinger distance of the {name} preferences" in shown
    headers = {html.unescape(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", page)}
    assert {f"mean length ({name})", f"mean_hellinger_{name}", f"hellinger_{name}", f"p_hellinger_{name}"} <= headers
    for table in re.findall(r"<table>.*?</table>", page, re.S):  # every row as wide as its header
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, re.S)}
        assert len(widths) == 1, widths
    changed = re.search(r"<table>(?:(?!</table>).)*?p_hellinger_.*?</table>", page, re.S).group(0)
    column = [html.unescape(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", changed)].index(f"p_hellinger_{name}")
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row)[column] for row in re.findall(r"<tr>.*?</tr>", changed, re.S)[1:]]
    assert cells and all(re.fullmatch(r"\d\.\d{3}|&lt;0\.001|–", c) for c in cells), cells  # p-values as p-values


def test_the_cards_shell_commands_run_the_argv_they_name_whatever_the_branch(results, tmp_path, monkeypatch):
    """Helper 288: the card's `hf-txray reproduce REPO --revision R` line and the failed push's retry hint wrote
    their values as they were: a branch ``a$(b)'c;d`` (git takes it) pasted into bash ran ``b`` and ``d`` as
    commands, and split the branch into other words. Every value is shell-quoted now (tables.shell_command)."""
    import shlex

    a = results[0]
    branch, other = "a$(b)'c;d", "x y;$(z)"
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], plots=False, repo_id="me/txray", revision=branch)
    text = (folder / "README.md").read_text(encoding="utf-8")

    def command(card: str) -> list[str]:
        line = next(line for line in card.splitlines() if line.startswith("hf-txray reproduce"))
        return shlex.split(line)

    assert command(text) == ["hf-txray", "reproduce", "me/txray", "--revision", branch]
    assert command(hf_txray.card.naming_repo(text, "you/other", other)) == [
        "hf-txray", "reproduce", "you/other", "--revision", other]
    assert command(hf_txray.card.naming_repo(text, "you/other")) == ["hf-txray", "reproduce", "you/other"]

    hints = []

    def failed_upload(*args, retry_hint, **kwargs):
        hints.append(retry_hint)
        raise HubError("refused")

    monkeypatch.setattr(hf_txray.hub, "upload_folder", failed_upload)
    with pytest.raises(HubError):
        hf_txray.hub.push_folder(folder, "me/txray", token="hf_test", private=True, revision=branch)
    retry = next(line.strip() for line in hints[0].splitlines() if line.strip().startswith("hf-txray push"))
    assert shlex.split(retry) == ["hf-txray", "push", "me/txray", str(folder), "--private", "--revision", branch]


def test_the_neuron_cards_summary_keeps_names_from_reordering_its_figures(results, tmp_path):
    """Helper 288: the `summary` sentence of the neuron_cards dataset wrote its names (stages, tags, preferred values)
    as they were, unlike the card (commit fa2ca04): a stage holding a right-to-left override (U+202E) reversed the
    rest of the sentence as shown, and an Arabic stage or tag turned the figure after it into an Arabic number drawn
    before the name. Names are written without directional controls, right-to-left ones in U+2068 ... U+2069."""
    from hf_txray.summary import neuron_summary

    a, b, report = results
    names = {"pretrained": "pre\u202etrain", "finetuned": "مرحلة"}
    renamed = []
    for profile in (a, b):
        out = copy.copy(profile)
        out.meta = dataclasses.replace(profile.meta, stage=names[profile.stage])
        renamed.append(out)
    pair = copy.copy(report)
    pair.meta = dataclasses.replace(report.meta, stage_a=names["pretrained"], stage_b=names["finetuned"])
    pair.neurons = report.neurons.assign(p_hellinger_pos=0.0001, changed_pos=True)  # the change clause, every neuron
    folder = hf_txray.save_to_disk(tmp_path / "r", renamed, [pair], plots=False)
    cards = pd.concat(pd.read_parquet(f) for f in sorted((folder / "neuron_cards").glob("*.parquet")))
    summaries = list(cards["summary"])
    assert not any("\u202e" in s for s in summaries)
    assert all(s.count("\u2068") == s.count("\u2069") for s in summaries)
    changed = [s for s in summaries if " between " in s]
    assert len(changed) == sum((cards["stage"] == names["finetuned"]) & (cards["count"] > 0)) > 0
    assert all(s.endswith("beyond noise between pretrain and \u2068مرحلة\u2069 (pos, p < 0.001).") for s in changed)

    card = {"count": 3, "win_rate": 0.02, "top_pos": [{"feature": "اسم", "probability": 0.6},
                                                       {"feature": "NO\u202eUN", "probability": 0.3}],
            "top_word": [{"feature": "مرحلة", "probability": 0.5}]}
    assert neuron_summary(card) == ("Wins 2.0% of positions, mostly \u2068اسم\u2069 (60.0%) and NOUN (30.0%); "
                                    "prefers \u2068'مرحلة'\u2069.")


def test_the_cards_shares_never_round_one_neuron_to_none_or_all(results):
    """Helper 288: the card wrote every share with one decimal (`:.1%`): one lost neuron of 9216 read "0.0% were
    deactivated (lost)", and 9215 shared of 9216 "100.0% of the neurons are active in both stages". tables.percent
    keeps the digits that tell them apart (as the neuron summaries already did below 0.1%)."""
    _, _, report = results
    pair = copy.copy(report)
    figures = {**report.summary(), "share_shared": 9215 / 9216, "share_lost": 1 / 9216, "share_gained": 0.0}
    pair.summary = lambda: figures
    text = build_card({}, {pair.name: pair}, {"transfer_reports": 96, "summary": 3, "meta": 1}, {}).text
    headline = next(line for line in text.splitlines() if "of the neurons are active in both stages" in line)
    assert "99.99% of the neurons are active in both stages, 0.011% were deactivated (lost), 0.0% became" in headline
    from hf_txray.tables import percent

    assert [percent(x) for x in (0.25, 1 / 3, 0.0005, 0.001, 0.9995, 0, 1)] == [
        "25.0%", "33.3%", "0.05%", "0.1%", "99.95%", "0.0%", "100.0%"]


def test_the_cards_headline_never_writes_nan_for_a_distance_or_its_noise_floor(results):
    """helper 408: a report with no shared neuron in all four split halves (MiniLM layer 5 on 'cat', 'dog' -> 'house',
    'sing') has NaN at half size and as both floors; the card read "mean Hellinger distance ... over shared neurons:
    nan" and "At half size the distance is nan, against a split-half noise floor of nan (A) and nan (B)". It says
    what is missing instead, as the viewer's notes do; the lost shares beside their floors stay."""
    from hf_txray.features import default_feature_type
    from hf_txray.tables import percent

    _, _, report = results
    ft = default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds,
                              orders=report.meta.feature_orders)
    pair = copy.copy(report)
    nan = float("nan")
    figures = {**report.summary(), f"matched_hellinger_{ft}": nan, f"noise_floor_hellinger_{ft}_a": nan,
               f"noise_floor_hellinger_{ft}_b": nan}
    pair.summary = lambda: figures
    text = build_card({}, {pair.name: pair}, {"transfer_reports": 96, "summary": 3, "meta": 1}, {}).text
    headline = next(line for line in text.splitlines() if "of the neurons are active in both stages" in line)
    assert "nan" not in headline and f": {figures[f'mean_hellinger_{ft}']:.3f} (0 = unchanged" in headline
    assert "No noise floor of the distance: no shared neuron was credited in all four split halves" in headline
    assert f"lost {percent(figures['matched_share_lost'])} vs" in headline
    figures[f"mean_hellinger_{ft}"] = nan
    text = build_card({}, {pair.name: pair}, {"transfer_reports": 96, "summary": 3, "meta": 1}, {}).text
    headline = next(line for line in text.splitlines() if "of the neurons are active in both stages" in line)
    assert "nan" not in headline and f"no shared neuron has {ft} preferences in both stages" in headline


def test_the_cards_shares_are_never_written_in_exponent_form(results):
    """Helper 295: below 1e-4 % tables.percent wrote `:.2g`'s exponent form: one lost neuron of a model of 2,293,760
    MLP neurons (80 blocks of 28,672, Llama-2-70B's) read "4.4e-05% were deactivated (lost)" in the card's headline;
    it reads "0.000044%" (the same two significant digits, written out; shares of 1e-4 % and above unchanged)."""
    from hf_txray.tables import percent

    _, _, report = results
    pair = copy.copy(report)
    total = 80 * 28_672
    figures = {**report.summary(), "share_shared": 1 - 1 / total, "share_lost": 1 / total, "share_gained": 1e-9}
    pair.summary = lambda: figures
    text = build_card({}, {pair.name: pair}, {"transfer_reports": 96, "summary": 3, "meta": 1}, {}).text
    headline = next(line for line in text.splitlines() if "of the neurons are active in both stages" in line)
    assert "0.000044% were deactivated (lost), 0.0000001% became active (gained)" in headline
    assert [percent(x) for x in (1e-7, 1.5e-7, 4.36e-7, 9.99e-7, 1e-6, 5e-6, 0.0005)] == [
        "0.00001%", "0.000015%", "0.000044%", "0.0001%", "0.0001%", "0.0005%", "0.05%"]


def test_percent_writes_a_share_outside_zero_to_one_with_its_sign():
    """Helper 306: tables.percent of a share outside 0 to 1 (none today, but a difference or a rounding error may
    come) raised "math domain error" at -1, dropped the decimal of -0.25 ("-25%", where 0.25 reads "25.0%") and wrote
    1.5 as "150.000000%"; -0.0 read "-0.0%". Now written as it is, with its sign, by the rule of shares."""
    from hf_txray.tables import percent

    assert [percent(x) for x in (-1, -0.25, -1 / 9216, -0.0, 1.5, 1.0005, float("inf"), float("-inf"))] == [
        "-100.0%", "-25.0%", "-0.011%", "0.0%", "150.0%", "100.05%", "inf%", "-inf%"]
    assert [percent(-x) for x in (0.25, 1 / 9216, 9215 / 9216, 1 / 2_293_760)] == [
        "-" + percent(x) for x in (0.25, 1 / 9216, 9215 / 9216, 1 / 2_293_760)]


def test_reports_text_and_repr_never_round_one_neuron_to_none_or_all(results):
    """After ffec367 the card told one lost neuron of 9216 from none, but the report's repr, `hf-txray compare`'s
    text (display.report_text) and the viewer's overview still wrote `:.1%`: "lost=0.0%", "shared 100.0%". Every
    share now goes through tables.percent."""
    from hf_txray.display import report_text

    _, _, report = results
    pair = copy.copy(report)
    figures = {**report.summary(), "share_shared": 9215 / 9216, "share_lost": 1 / 9216, "share_gained": 0.0}
    pair.summary = lambda: figures
    assert "shared=99.99%, lost=0.011%, gained=0.0%" in repr(pair)
    assert "neurons: shared 99.99%, lost 0.011%, gained 0.0%" in report_text(pair)


def test_a_killed_shard_writes_temporary_files_are_not_uploaded(results, hub, tmp_path):
    """Helper 340: a shard write killed mid-way (layout.write_config, save_probing into an export) leaves a hidden
    ``.<shard>.tmp-PID`` beside the config's shards; readers skip it, but push_folder / `hf-txray push` uploaded it
    (its allow pattern ``meta/*`` matched it): the repo held ``meta/.train-00000-of-00001.parquet.tmp-999`` beside
    the shards. Unfinished writes are left out of every upload (io_utils.UNFINISHED_WRITES)."""
    a, _, _ = results
    folder = hf_txray.save_to_disk(tmp_path / "export", [a], plots=False)
    leftover = folder / "meta" / ".train-00000-of-00001.parquet.tmp-999"
    leftover.write_bytes(b"half a parquet file")
    repo_id = f"{hub.username}/leftovers"
    hf_txray.hub.push_folder(folder, repo_id)
    files = hub.api.list_repo_files(repo_id, repo_type="dataset")
    assert "meta/train-00000-of-00001.parquet" in files
    assert [f for f in files if ".tmp-" in f] == []
    assert leftover.is_file()  # the folder is the user's: left as it is


def test_a_push_naming_the_default_branch_that_drops_stages_names_them(results, hub, caplog):
    """Helper 347: dropped_results said nothing for a push whose branch is still the default branch's commit (meant
    for a branch made from it for this push), so a push with revision='main' (the default branch named) dropped
    'pretrained' and its report from the default branch without a word, where the same push without revision warned."""
    a, b, report = results
    repo_id = f"{hub.username}/main-named"
    hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report], plots=False)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        hf_txray.push_to_hub(repo_id, profiles=[b], plots=False, revision="main")
    assert list(hf_txray.load(repo_id).profiles) == ["finetuned"]
    assert "This push dropped" in caplog.text and "stage 'pretrained'" in caplog.text
    caplog.clear()
    hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report], plots=False)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):
        report.push_to_hub(repo_id, revision="main")
    assert "This push dropped" in caplog.text and "stage 'finetuned'" in caplog.text
    caplog.clear()
    hf_txray.push_to_hub(repo_id, profiles=[a, b], reports=[report], plots=False)
    with caplog.at_level(logging.WARNING, logger="hf_txray"):  # git's full name of the branch
        hf_txray.push_to_hub(repo_id, profiles=[a], plots=False, revision="refs/heads/main")
    assert list(hf_txray.load(repo_id).profiles) == ["pretrained"]
    assert "This push dropped" in caplog.text and "stage 'finetuned'" in caplog.text


def test_the_export_command_suggested_for_a_folder_named_with_a_dash_runs_as_printed(results, tmp_path,
                                                                                    monkeypatch, capsys):
    """Helper 347: for a folder whose relative name starts with a dash, the hint above printed `hf-txray export -runs
    --out DIR`, which the CLI reads as an unknown option ("to name the path -runs, write ./-runs"). It prints
    ./-runs, and the command exports the folder."""
    a, _, _ = results
    monkeypatch.chdir(tmp_path)
    a.save_pretrained(Path("-runs") / "a")
    with pytest.raises(ProfileFormatError) as caught:
        hf_txray.load("-runs")
    said = re.search(r"`(hf-txray export [^`]*)`", str(caught.value)).group(1)
    argv = shlex.split(said)
    assert argv[:3] == ["hf-txray", "export", "./-runs"], said
    assert cli_main([*argv[1:-1], "out"]) == 0, capsys.readouterr().err
    assert list(hf_txray.load("out").profiles) == ["pretrained"]


def test_the_retry_of_a_failed_push_of_a_folder_named_with_a_dash_runs_as_printed(results, hub, tmp_path,
                                                                                 monkeypatch):
    """Helper 347: push_folder of a relative folder '-export' whose upload failed said to retry with `hf-txray push
    REPO -export`, which the CLI reads as an unknown option; it prints ./-export, and that retry pushes."""
    a, _, _ = results
    monkeypatch.chdir(tmp_path)
    hf_txray.save_to_disk("-export", [a], plots=False)
    repo_id = f"{hub.username}/dash-folder"
    hub.server.fail_next_commit = True
    with pytest.raises(HubError) as caught:
        hf_txray.hub.push_folder("-export", repo_id)
    assert f"hf-txray push {repo_id} ./-export\n" in str(caught.value), str(caught.value)
    assert cli_main(["push", repo_id, "./-export"]) == 0
    assert list(hf_txray.load(repo_id).profiles) == ["pretrained"]
