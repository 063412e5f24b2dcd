"""Saved folders that mix files of different saves, or were changed after saving, are refused, not read.

Every parquet file carries a save stamp in its schema metadata (:class:`hf_txray.layout.SaveStamp`). Before it, a
config file copied in from another save of the same shape, an extra or duplicated shard, or a column cast to float32
loaded without an error and gave wrong numbers; a dropped column gave a raw KeyError. Folders saved before the
stamps (no metadata) load as they did.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import hf_txray
from hf_txray import Profile, ProfileFormatError, TransferReport
from hf_txray import layout
from hf_txray.cli import main as cli_main
from hf_txray.layout import SaveStamp, public_folder
from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
from models import SAMPLE_TEXTS, bpe_tokenizer, tiny_llama_lm as _llama

FIRST = "train-00000-of-00001.parquet"


@functools.cache
def _profile(seed: int, stage: str, outputs: bool = True) -> Profile:
    return hf_txray.analyze(_llama(seed), SAMPLE_TEXTS if seed == 0 else SAMPLE_TEXTS[::-1],
                            tokenizer=bpe_tokenizer(), features=("token",), stage=stage, batch_size=4,
                            output_effects=outputs, output_effects_k=2, model_id="tiny-org/llama-tiny",
                            show_progress=False)


def profile() -> Profile:
    return _profile(0, "a")


def other_profile() -> Profile:
    """Another model's profile of the same shape and stage name: its files fit profile()'s folder."""
    return _profile(1, "a")


@functools.cache
def report() -> TransferReport:
    return hf_txray.compare(profile(), _profile(1, "b", False))


@functools.cache
def other_report() -> TransferReport:
    """A report of the same name and shape, of other profiles."""
    return hf_txray.compare(other_profile(), _profile(0, "b", False))


def rewrite(path: Path, change) -> None:
    """Rewrite one parquet file through `change` (a table -> table), keeping its schema metadata as pyarrow does."""
    pq.write_table(change(pq.read_table(path)), path)


def strip_stamps(folder: Path) -> None:
    """`folder` as an hf_txray before the stamps wrote it: no schema metadata."""
    for path in folder.rglob("*.parquet"):
        rewrite(path, lambda t: t.replace_schema_metadata(None))


def stamps(folder: Path) -> dict[str, SaveStamp]:
    return {str(p.relative_to(folder)): SaveStamp.decode(pq.read_schema(p).metadata)
            for p in sorted(folder.rglob("*.parquet"))}


# ----- what is written ----------------------------------------------------------------------------------------------
def test_every_file_of_a_save_carries_one_save_id_and_round_trips_stay_exact(tmp_path, monkeypatch):
    folder = profile().save_pretrained(tmp_path / "profile")
    written = stamps(folder)
    assert sorted(written) == [f"{c}/{FIRST}" for c in ("distributions", "meta", "neuron_cards", "neuron_outputs")]
    assert len({s.save_id for s in written.values()}) == 1
    assert all(s.config == name.split("/")[0] and (s.shard, s.shards) == (0, 1) and s.rows == s.total_rows
               for name, s in written.items())
    assert Profile.from_pretrained(folder) == profile()
    assert TransferReport.from_pretrained(report().save_pretrained(tmp_path / "report")) == report()
    # a second save is another save
    again = stamps(profile().save_pretrained(tmp_path / "again"))
    assert {s.save_id for s in again.values()}.isdisjoint(s.save_id for s in written.values())

    # many shards: each stamped with its index, and datasets still loads every config of the folder
    monkeypatch.setattr(layout, "MAX_ROWS_PER_FILE", 20)
    export = hf_txray.save_to_disk(tmp_path / "export", [profile()], [report()], plots=False)
    shards = [s for name, s in stamps(export).items() if name.startswith("neuron_cards/")]
    assert sorted(s.shard for s in shards) == list(range(len(shards))) and len(shards) > 1
    loaded = hf_txray.load(export)
    assert loaded.profiles["a"] == profile() and loaded.reports[report().name] == report()
    from hf_txray.hub import check_configs_load

    assert check_configs_load(export)["neuron_cards"] == profile().num_rows


# ----- files from another save ------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["distributions", "neuron_cards", "neuron_outputs", "meta"])
def test_a_profile_file_swapped_in_from_another_save_is_refused(config, tmp_path):
    folder = profile().save_pretrained(tmp_path / "mine")
    other = other_profile().save_pretrained(tmp_path / "other")
    shutil.copy(other / config / FIRST, folder / config / FIRST)
    named = "neuron_cards" if config == "meta" else config  # meta/ swapped: the others no longer match it
    with pytest.raises(ProfileFormatError, match=rf"{named}/{FIRST}: written by another save than .*meta/{FIRST}.*"
                                                 r"mixes files of different saves.*again"):
        Profile.from_pretrained(folder)


@pytest.mark.parametrize("config", ["transfer_reports", "summary", "meta"])
def test_a_report_file_swapped_in_from_another_save_is_refused(config, tmp_path):
    folder = report().save_pretrained(tmp_path / "mine")
    shutil.copy(other_report().save_pretrained(tmp_path / "other") / config / FIRST, folder / config / FIRST)
    with pytest.raises(ProfileFormatError, match=r"written by another save than .*mixes files of different saves"):
        TransferReport.from_pretrained(folder)


def test_an_extra_shard_left_by_copying_a_new_save_over_an_old_one_is_refused(tmp_path, monkeypatch, capsys):
    """`cp -r new/* old/` where the old save had 2 distributions shards and the new one 1: the old second shard
    stayed and doubled rows."""
    with monkeypatch.context() as patch:
        patch.setattr(layout, "MAX_ROWS_PER_FILE", max(1, profile().tables["token"].mass.size // 2 + 1))
        old = profile().save_pretrained(tmp_path / "old")
    assert (old / "distributions" / "train-00001-of-00002.parquet").is_file()
    new = profile().save_pretrained(tmp_path / "new")
    for config in ("distributions", "neuron_cards", "neuron_outputs", "meta"):
        shutil.copytree(new / config, old / config, dirs_exist_ok=True)
    with pytest.raises(ProfileFormatError, match=r"distributions/train-0000[01]-of-00002.parquet.*mixes"):
        Profile.from_pretrained(old)
    assert cli_main(["show", str(old)]) != 0  # `hf-txray show` printed the doubled rows and exited 0
    assert "mixes files of different saves" in capsys.readouterr().err


def test_a_duplicated_shard_under_another_name_is_refused(tmp_path):
    folder = profile().save_pretrained(tmp_path / "dup")
    shutil.copy(folder / "distributions" / FIRST, folder / "distributions" / "copy.parquet")
    with pytest.raises(ProfileFormatError, match=r"copy.parquet, .*: the same shard \(index 0 of 1\) twice"):
        Profile.from_pretrained(folder)


def test_renamed_shards_are_read_in_the_order_they_were_saved(tmp_path, monkeypatch):
    """A report's per-neuron rows come back in their saved order even when the shard files are renamed (joined by
    their stamps' shard index, not by file name): the loaded report stays equal, its summary's means to the bit."""
    monkeypatch.setattr(layout, "MAX_ROWS_PER_FILE", 20)
    folder = report().save_pretrained(tmp_path / "report")
    files = sorted((folder / "transfer_reports").glob("*.parquet"))
    assert len(files) > 1
    files[0].rename(folder / "transfer_reports" / "tmp.parquet")
    files[1].rename(files[0])
    (folder / "transfer_reports" / "tmp.parquet").rename(files[1])
    assert TransferReport.from_pretrained(folder) == report()


@pytest.mark.parametrize("field, value", [("shards", "2"), ("shard", 0.0), ("rows", None)])
def test_a_stamp_of_other_types_is_refused_naming_the_file(field, value, tmp_path):
    folder = profile().save_pretrained(tmp_path / "typed")
    path = folder / "distributions" / FIRST
    table = pq.read_table(path)
    stamp = json.loads(table.schema.metadata[layout.STAMP_KEY])
    stamp[field] = value
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata,
                                                  layout.STAMP_KEY: json.dumps(stamp).encode()}), path)
    with pytest.raises(ProfileFormatError, match=str(path)):
        Profile.from_pretrained(folder)


# ----- files changed after saving ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case, said", [
    ("cast", r"distributions/.*: a schema \(columns or their types\) other than the one it was saved with"),
    ("append", r"distributions/.*: \d+ rows, saved with \d+"),
    ("drop", r"distributions/.* lacks the column\(s\) 'mass' that loading reads"),
    ("neuron", r"distributions has a row of stage 'a' at layer 0, neuron 2\d: outside the saved layers"),
])  # fmt: skip
def test_a_file_changed_after_saving_is_refused_naming_it(case, said, tmp_path):
    folder = profile().save_pretrained(tmp_path / case)
    change = {
        "cast": lambda t: t.set_column(t.schema.get_field_index("mass"), "mass", pc.cast(t["mass"], pa.float32())),
        "append": lambda t: pa.concat_tables([t, t.slice(0, 3)]),
        "drop": lambda t: t.drop_columns(["mass"]),
        "neuron": lambda t: t.set_column(t.schema.get_field_index("neuron"), "neuron",
                                         pc.add(t["neuron"], profile().num_neurons)),
    }[case]
    rewrite(folder / "distributions" / FIRST, change)  # pyarrow keeps the stamp: the file says what it was
    with pytest.raises(ProfileFormatError, match=said + ".*again"):
        Profile.from_pretrained(folder)


def test_a_missing_column_or_neuron_out_of_range_of_an_unstamped_folder_is_a_format_error(tmp_path):
    """Folders of older versions cannot be checked against stamps, but a column the loader reads is still asked
    for by name (it was a raw KeyError) and a neuron out of range refused (an IndexError, or a silent shift)."""
    for config, column in (("neuron_cards", "mass"), ("meta", "vocabularies"), ("transfer_reports", "hellinger_token")):
        artifact = report() if config == "transfer_reports" else profile()
        folder = artifact.save_pretrained(tmp_path / f"{config}-{column}")
        strip_stamps(folder)
        rewrite(folder / config / FIRST, lambda t: t.drop_columns([column]))
        with pytest.raises(ProfileFormatError, match=rf"{config}/{FIRST} lacks the column\(s\) '{column}'"):
            type(artifact).from_pretrained(folder)
    folder = profile().save_pretrained(tmp_path / "layer")
    strip_stamps(folder)
    rewrite(folder / "neuron_cards" / FIRST, lambda t: t.set_column(
        t.schema.get_field_index("layer"), "layer", pc.add(t["layer"], 5)))
    with pytest.raises(ProfileFormatError, match=r"neuron_cards has a row of stage 'a' at layer [56]"):
        Profile.from_pretrained(folder)


# ----- folders saved before the stamps ----------------------------------------------------------------------------
def test_an_unstamped_folder_loads_as_before_but_not_mixed_with_stamped_files(tmp_path):
    folder = hf_txray.save_to_disk(tmp_path / "old", [profile()], [report()], plots=False)
    strip_stamps(folder)
    assert not any(stamps(folder).values())
    loaded = hf_txray.load(folder)
    assert loaded.profiles["a"] == profile() and loaded.reports[report().name] == report()
    fresh = hf_txray.save_to_disk(tmp_path / "new", [profile()], [report()], plots=False)
    shutil.copy(fresh / "summary" / FIRST, folder / "summary" / FIRST)  # a stamped file into the old folder
    with pytest.raises(ProfileFormatError, match=r"summary/.*: a save stamp, while .*meta/.* have none"):
        hf_txray.load(folder)
    shutil.copy(folder / "meta" / FIRST, fresh / "meta" / FIRST)  # an unstamped meta among stamped files
    with pytest.raises(ProfileFormatError, match=r"a save stamp, while .*meta/.* have none"):
        hf_txray.load(fresh)


@pytest.mark.parametrize("case, said", [
    ("truncated", r"its 'token' rows in distributions/ add up to \d+ credits .*, its neuron_cards/ row says \d+"),
    ("other_cards", r"its 'token' rows in distributions/ add up to \d+ credits .*, its neuron_cards/ row says \d+"),
    ("other_stage", r"its 'token' rows in distributions/ add up to 0 credits of mass 0, its neuron_cards/ row says"),
    ("repeated", r"its 'token' feature '.*' has more than one row in distributions/ \(\d+ repeated rows"),
])  # fmt: skip
def test_an_unstamped_folder_whose_distributions_disagree_with_its_cards_is_refused(case, said, tmp_path):
    """Without stamps, half the distribution rows, neuron cards of another profile, the distributions of another
    stage (no rows for this one) or rows repeated loaded with wrong numbers and no error: every credit has a token,
    so the token rows of a neuron add up to its card."""
    folder = profile().save_pretrained(tmp_path / case)
    other = {"other_cards": other_profile(), "other_stage": _profile(1, "b", False)}.get(case)
    config = "neuron_cards" if case == "other_cards" else "distributions"
    if other is not None:
        shutil.copy(other.save_pretrained(tmp_path / "other") / config / FIRST, folder / config / FIRST)
    strip_stamps(folder)
    if case in ("truncated", "repeated"):
        rewrite(folder / config / FIRST, lambda t: t.slice(0, t.num_rows // 2) if case == "truncated" else
                pa.concat_tables([t, t.slice(0, 100)]))
    with pytest.raises(ProfileFormatError, match=rf"{folder}: the distributions/ and neuron_cards/ tables of stage "
                                                 rf"'a' disagree at layer \d, neuron \d+: {said}.*re-save it from its "
                                                 r"source, or profile again"):
        Profile.from_pretrained(folder)


def test_a_stamped_folder_whose_feature_name_was_edited_into_a_repeat_is_refused(tmp_path):
    """A feature value renamed in place to its neighbour's keeps rows, columns and stamp: it loaded, feature_stats
    listed the feature twice and compare ended in a bare IndexError (helper 199). No save writes two rows of one
    (layer, neuron, feature), stamped or not."""
    folder = profile().save_pretrained(tmp_path / "renamed")
    path = folder / "distributions" / FIRST
    table = pq.read_table(path)
    keys = list(zip(table["layer"].to_pylist(), table["neuron"].to_pylist(), table["feature_type"].to_pylist()))
    i = next(i for i in range(1, len(keys)) if keys[i] == keys[i - 1])  # two features of one neuron
    features = table["feature"].to_pylist()
    features[i] = features[i - 1]
    rewrite(path, lambda t: t.set_column(t.schema.get_field_index("feature"), t.schema.field("feature"),
                                         pa.array(features, t.schema.field("feature").type)))
    with pytest.raises(ProfileFormatError, match=rf"{folder}: .*'token' feature .* has more than one row in "
                                                 r"distributions/ \(1 repeated rows"):
        Profile.from_pretrained(folder)


@pytest.mark.parametrize("config, value, said", [
    ("distributions", -1.0, "a negative token mass"),
    ("distributions", float("nan"), "a token mass that is NaN or infinite"),
    ("neuron_cards", -1.0, "a negative neuron mass"),
])  # fmt: skip
def test_a_mass_no_run_produces_edited_in_place_is_refused_at_load_naming_the_folder(config, value, said, tmp_path):
    """A mass edited in place keeps rows, columns and stamp: a negative one loaded, and feature_stats read it as
    probabilities above 1 (5.15 beside -1.83) until compare refused it without naming a file (helper 199)."""
    folder = hf_txray.save_to_disk(tmp_path / config, [profile()], [], plots=False)
    path = folder / config / FIRST
    masses = pq.read_table(path)["mass"].to_pylist()
    masses[0] = value
    rewrite(path, lambda t: t.set_column(t.schema.get_field_index("mass"), t.schema.field("mass"),
                                         pa.array(masses, t.schema.field("mass").type)))
    with pytest.raises(ProfileFormatError, match=rf"{folder}: Profile 'a' holds {said} .*save or export the profile "
                                                 "again from its source"):
        hf_txray.load(folder)
    single = profile().save_pretrained(tmp_path / f"{config}-single")
    rewrite(single / config / FIRST, lambda t: t.set_column(t.schema.get_field_index("mass"), t.schema.field("mass"),
                                                            pa.array(masses, t.schema.field("mass").type)))
    with pytest.raises(ProfileFormatError, match=rf"{single}: Profile 'a' holds {said}"):
        Profile.from_pretrained(single)


def test_a_feature_type_edited_into_the_metadata_is_refused_naming_the_folder(tmp_path):
    """Helper 250: a feature type added by hand to a stage's metadata in meta/ (one it was not profiled with, so meta/
    holds no vocabulary for it) ended Profile.from_pretrained and hf_txray.load in a bare KeyError: 'dep'."""
    folder = profile().save_pretrained(tmp_path / "p")
    path = folder / "meta" / FIRST
    rows = pq.read_table(path)["metadata"].to_pylist()
    meta = json.loads(rows[0])
    meta["feature_types"] = [*meta["feature_types"], "dep"]
    rows[0] = json.dumps(meta)
    rewrite(path, lambda t: t.set_column(t.schema.get_field_index("metadata"), t.schema.field("metadata"),
                                         pa.array(rows, t.schema.field("metadata").type)))
    for load in (Profile.from_pretrained, hf_txray.load):
        with pytest.raises(ProfileFormatError, match=rf"{folder / 'meta'}: stage 'a' lists the feature type\(s\) "
                                                     r"\['dep'\] in its metadata but meta/ holds no vocabulary"):
            load(folder)


@pytest.mark.parametrize("edit, said", [
    ({"num_positions": -5}, r"num_positions=-5 \(not an int >= 0\)"),
    ({"num_uncredited": -1}, r"num_uncredited=-1 \(not an int >= 0\)"),
    ({"num_examples": 2.5}, r"num_examples=2.5 \(not an int >= 0\)"),
    ({"num_empty": 10 ** 6}, r"num_empty=1000000 of only num_examples=\d+ texts"),
    ({"num_positions": 3}, r"\d+ credits in layer 0, more than top_k=1 x num_positions=3"),
    ({"num_positions": 0}, r"\d+ credits in layer 0, more than top_k=1 x num_positions=0"),
    ({"num_positions": 10 ** 6}, r"\d+ credits for \d+ credited \(layer, position\) pairs"),
    ({"num_uncredited": 10 ** 9}, r"num_uncredited=1000000000, more than its \d+ layers x num_positions"),
])  # fmt: skip
def test_run_counters_no_run_records_edited_into_the_metadata_are_refused_naming_the_folder(edit, said, tmp_path):
    """A metadata file edited to num_positions=-5 loaded, and win_rate() gave negative win rates (-3.0 for a neuron
    credited 15 times); positions fewer than the credits gave win rates above 1, ten times too many 10 times too
    small ones. An analyzed profile's credits fill its positions exactly (top_k=1: credits + uncredited pairs =
    layers x positions), as the check requires."""
    p = profile()
    assert p.neuron_count.sum() + p.meta.num_uncredited == len(p.meta.layers) * p.meta.num_positions > 0
    folder = p.save_pretrained(tmp_path / "p")
    path = folder / "meta" / FIRST
    rows = pq.read_table(path)["metadata"].to_pylist()
    rows[0] = json.dumps({**json.loads(rows[0]), **edit})
    rewrite(path, lambda t: t.set_column(t.schema.get_field_index("metadata"), t.schema.field("metadata"),
                                         pa.array(rows, t.schema.field("metadata").type)))
    for load in (Profile.from_pretrained, hf_txray.load):
        with pytest.raises(ProfileFormatError, match=rf"{folder}: Profile 'a' records {said}.*Profile the stage "
                                                     "again"):
            load(folder)
    with pytest.raises(ProfileFormatError, match=said):
        hf_txray.compare(Profile(dataclasses.replace(p.meta, **edit), p.neuron_mass, p.neuron_count, p.tables), p)


def test_a_saved_profile_without_its_meta_files_says_a_file_was_deleted(tmp_path):
    """The message told a Profile.from_pretrained caller to load the folder with Profile.from_pretrained, as one of
    "profiles saved one by one" (helper 199)."""
    folder = profile().save_pretrained(tmp_path / "p")
    shutil.rmtree(folder / "meta")
    with pytest.raises(ProfileFormatError, match=rf"{folder} is a saved artifact \(txray_artifact.json\) without its "
                                                 r"meta/\*.parquet: a file was deleted after saving"):
        Profile.from_pretrained(folder)


# ----- writers that rewrite configs --------------------------------------------------------------------------------
@pytest.mark.parametrize("stamped", [True, False])
def test_a_folder_staged_for_upload_keeps_its_save_id_and_loads(stamped, tmp_path):
    """public_folder rewrites the configs naming local paths (meta/) in a linked copy: the rewritten files keep the
    folder's save id (none for a folder saved before stamps), so the staged folder still reads as one save."""
    local = copy.copy(profile())
    local.meta = dataclasses.replace(local.meta, model_id=str(tmp_path / "private" / "llama"))
    folder = local.save_pretrained(tmp_path / "local")
    if not stamped:
        strip_stamps(folder)
    before = stamps(folder)
    with public_folder(folder) as staged:
        assert staged != folder
        after = stamps(staged)
        loaded = Profile.from_pretrained(staged)
    assert {s.save_id for s in after.values() if s} == {s.save_id for s in before.values() if s}
    assert all((s is None) == (not stamped) for s in after.values())
    assert loaded.meta.model_id == "llama"
    loaded.meta = dataclasses.replace(loaded.meta, model_id=local.meta.model_id)
    assert loaded == local
    assert stamps(folder) == before and Profile.from_pretrained(folder) == local  # the local folder is unchanged


def test_a_repo_holding_configs_of_two_pushes_loads_what_each_owns(hub, tmp_path):
    """A results push, then a profile pushed over it: every config and the plots of the first push are replaced or
    deleted (its report's configs would stay undeclared beside the profile; helper 116), and the profile loads. A
    profile without output effects pushed over one with them deletes the old neuron_outputs/, which would mix two
    saves."""
    repo_id = f"{hub.username}/two-pushes"
    hf_txray.push_to_hub(repo_id, profiles=[profile()], reports=[report()], plots=False)
    plain = _profile(0, "a", False)
    plain.push_to_hub(repo_id)
    files = hub.server.repo_files(repo_id)
    assert not any(f.startswith(("transfer_reports/", "summary/")) for f in files)  # the first push's report
    assert not any(f.startswith("neuron_outputs/") for f in files)
    assert Profile.from_pretrained(repo_id, cache_dir=tmp_path / "cache") == plain
    assert hf_txray.load(repo_id).profiles == {"a": plain}
    stamped = {SaveStamp.decode(pq.read_schema(pa.BufferReader(data)).metadata).save_id
               for name, data in files.items() if name.startswith(("meta/", "neuron_cards/", "distributions/"))}
    assert len(stamped) == 1  # the profile's configs: all of the second push


def test_a_push_refuses_a_mixed_folder_before_uploading(tmp_path):
    """push_folder checks the stamps with the datasets load: a mixed folder would give a repo that does not load."""
    from hf_txray.hub import check_configs_load

    folder = hf_txray.save_to_disk(tmp_path / "export", [profile()], [report()], plots=False)
    other = hf_txray.save_to_disk(tmp_path / "other", [other_profile()], [other_report()], plots=False)
    shutil.copy(other / "summary" / FIRST, folder / "summary" / FIRST)
    with pytest.raises(ProfileFormatError, match=rf"summary/{FIRST}: written by another save"):
        check_configs_load(folder)
