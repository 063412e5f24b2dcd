"""`hf-txray show --json`: one JSON document on standard output holding what the text shows, each value checked
against what the saved folders give back through the Python API (`hf_txray.load`, Profile and TransferReport
attributes), never against hard-coded numbers."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest

import hf_txray
from hf_txray.cli import main as cli_main
from hf_txray.summary import neuron_card
from models import bpe_tokenizer
from test_neuron_pages import _lm

# quotes, a backslash, line breaks, a tab, an escape sequence and accents: kept as they are in the JSON's strings
ODD_TEXTS = ['She said "no" \\ then left.\nA new line,\ta tab and \x1b[8m hidden.', "Zoë's café: naïve — 42 €!",
             "The quick brown fox jumps over the lazy dog.", "It's unbelievable: prices rose 42% in New York!",
             'He wrote "yes"\r\nand "maybe".', "Dr. Smith didn't go to the U.K. because of the strike."]


@functools.cache
def _profiles() -> tuple[hf_txray.Profile, hf_txray.Profile]:
    model, tokenizer = _lm(), bpe_tokenizer()
    common = dict(tokenizer=tokenizer, features=("token", "word"), batch_size=4, output_effects=True,
                  output_effects_k=4, show_progress=False)
    return (hf_txray.analyze(model, ODD_TEXTS, stage="zéro", **common),
            hf_txray.analyze(model, ODD_TEXTS[::-1] + ODD_TEXTS[:2], stage="tuned", **common))


def _saved(tmp_path):
    a, b = _profiles()
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    hf_txray.compare(a, b).save_pretrained(tmp_path / "ab")
    return tmp_path


def _shown(argv, capsys):
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out)["items"]  # the whole of standard output is the document


def _json(value):
    """A value as the JSON reads it: NaN and pandas' missing values as None, numpy numbers as Python's."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and not isinstance(value, (str, list)) and pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _rows(frame: pd.DataFrame) -> list[dict]:
    return [_json(row) for row in frame.to_dict("records")]


@pytest.mark.parametrize("kind", ["saved", "results"])
def test_show_json_of_a_folder_holds_each_profile_and_report_as_saved(tmp_path, capsys, kind):
    folder = _saved(tmp_path)
    if kind == "results":  # a results folder (hf_txray.save_to_disk, hf-txray export), read back by hf_txray.load
        a, b = _profiles()
        hf_txray.save_to_disk(tmp_path / "results", profiles=[a, b],
                              reports=[hf_txray.TransferReport.from_pretrained(folder / "ab")], plots=False)
        loaded = hf_txray.load(tmp_path / "results")
        profiles, reports, folder = loaded.profiles, loaded.reports, tmp_path / "results"
        where = [folder] * 3
    else:
        profiles = {p.stage: p for p in map(hf_txray.Profile.from_pretrained, (folder / "a", folder / "b"))}
        reports = {"zéro->tuned": hf_txray.TransferReport.from_pretrained(folder / "ab")}
        where = [folder / "a", folder / "b", folder / "ab"]
    items = _shown(["show", str(folder), "--json"], capsys)
    assert [(i["kind"], i["folder"]) for i in items] == list(zip(["profile", "profile", "report"], map(str, where)))
    for item in items[:2]:
        profile = profiles[item["stage"]]
        assert item["meta"] == json.loads(json.dumps(profile.meta.to_dict()))
        stats = profile.neuron_stats()
        for row in item["layers"]:  # per layer, counted from the neuron table by hand
            mine = stats[stats["layer"] == row["layer"]]
            assert row["credited"] == int((mine["count"] > 0).sum()) and row["max_count"] == int(mine["count"].max())
            assert row["mass"] == pytest.approx(float(mine["mass"].sum()))
            for ft in profile.feature_types:
                lengths = mine.loc[mine[f"length_{ft}"] > 0, f"length_{ft}"]  # neurons with a length
                assert row[f"mean_length_{ft}"] == (pytest.approx(float(lengths.mean())) if len(lengths) else None)
        assert sorted(r["layer"] for r in item["layers"]) == list(profile.meta.layers)
        assert item["top"] == 5 and item["mass_share"] == {}  # token and word: no tag feature to share mass over
    report = reports["zéro->tuned"]
    item = items[2]
    assert item["name"] == report.name and item["meta"] == _json(dataclasses.asdict(report.meta))
    assert item["summary"] == _json(report.summary())
    ft = item["feature_type"]
    assert ft == "token"
    for name, ranked in (("most_changed", report.most_changed), ("least_changed", report.least_changed)):
        part = item[name]
        assert (part["top"], part["min_count"], part["feature_type"]) == (5, 20, ft)
        assert part["too_few_credits"] == report.too_few_credits(ft, 20)
        expected = ranked(5, ft, min_count=20)
        assert [(r["layer"], r["neuron"]) for r in part["table"]] == list(zip(expected["layer"], expected["neuron"]))
        for row, (_, want) in zip(part["table"], expected.iterrows()):
            assert row["hellinger_token"] == pytest.approx(want["hellinger_token"])
            assert (row["count_a"], row["count_b"]) == (want["count_a"], want["count_b"])
            tested = not pd.isna(want["changed_token"])  # untested: unknown (null), not False
            assert row.get("changed_token") == (bool(want["changed_token"]) if tested else None)
    layers = report.layers.set_index("layer")
    for row in item["layers"]:
        for column, value in row.items():
            if column != "layer":
                assert value == _json(layers.loc[row["layer"], column]), column


def test_show_json_bounds_a_report_s_tables_as_the_text_does_and_writes_nan_as_null(tmp_path, capsys):
    """A report with a tag feature (the mass-share table, cut at SHARE_ROWS) and p-values (NaN where untested)."""
    from hf_txray.display import SHARE_ROWS
    from test_compare import make_pair

    with pytest.warns(UserWarning, match="no p-values"):
        report = hf_txray.compare(*make_pair())
    rows = report.neurons
    tested = rows.index[(rows["layer"] == 4) & (rows["neuron"] == 0)][0]
    rows.loc[tested, "p_hellinger_pos"], rows.loc[tested, "changed_pos"] = 0.0004, True
    report.save_pretrained(tmp_path / "r")
    saved = hf_txray.TransferReport.from_pretrained(tmp_path / "r")
    [item] = _shown(["show", str(tmp_path / "r"), "--json"], capsys)
    ft = item["feature_type"]
    share = saved.mass_share[saved.mass_share["feature_type"] == ft]
    assert item["mass_share"]["num_values"] == len(share) and item["mass_share"]["rows"] == SHARE_ROWS
    assert len(item["mass_share"]["table"]) == min(len(share), SHARE_ROWS)
    by_value = share.set_index(share.columns[1])
    for row in item["mass_share"]["table"]:
        value = row[share.columns[1]]
        assert row["mass_share_a"] == _json(by_value.loc[value, "mass_share_a"])
    json.dumps(item, allow_nan=False)  # strict JSON: no NaN anywhere
    assert item["summary"] == _json(saved.summary())
    undefined = [k for k, v in saved.summary().items() if v != v]
    assert undefined and all(item["summary"][k] is None for k in undefined)  # NaN is null
    # the neuron's row, as the report holds it
    [row] = _shown(["show", str(tmp_path / "r"), "--neuron", "-1:0", "--json"], capsys)
    want = saved.neurons[(saved.neurons["layer"] == 4) & (saved.neurons["neuron"] == 0)].iloc[0]
    assert row["kind"] == "report_neuron" and row["name"] == saved.name and row["layer"] == 4
    for column, value in want.items():
        if column.startswith("changed_") and pd.isna(want[f"p_hellinger_{column[8:]}"]):
            assert row[column] is None, column  # untested: unknown, not False
        else:
            assert row[column] == _json(value), column
    assert row["changed_pos"] is True and row["p_hellinger_pos"] == pytest.approx(0.0004)
    assert row["status_meaning"] == "credited in both stages"
    lost = saved.neurons[(saved.neurons["status"] == "lost") & (saved.neurons["layer"] == 4)].iloc[0]
    [row] = _shown(["show", str(tmp_path / "r"), "--neuron", f"4:{lost['neuron']}", "--json"], capsys)
    assert row["status"] == "lost" and row["hellinger_pos"] is None and row["changed_pos"] is None
    # errors: the same exit status and message on standard error, nothing on standard output
    for argv, said in ((["--neuron", "4:6"], "Neuron 6 is out of range: layers have 6 neurons (0 to 5)."),
                       (["--neuron", "2:0"], "Layer 2 is not in the report"), (["--neuron", "x"], "LAYER:NEURON")):
        assert cli_main(["show", str(tmp_path / "r"), *argv, "--json"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and said in err, (out, err)
    assert cli_main(["show", str(tmp_path / "missing"), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "hf-txray show: error: No folder" in err


def test_show_json_neuron_page_equals_the_card_with_its_strings_intact(tmp_path, capsys):
    folder = _saved(tmp_path)
    a, b = hf_txray.Profile.from_pretrained(folder / "a"), hf_txray.Profile.from_pretrained(folder / "b")
    report = hf_txray.TransferReport.from_pretrained(folder / "ab")
    stats = a.neuron_stats()
    best = stats.sort_values("count", ascending=False).iloc[0]
    layer, neuron = int(best["layer"]), int(best["neuron"])
    items = _shown(["show", str(folder), "--neuron", f"{layer}:{neuron}", "--json"], capsys)
    assert [(i["kind"], i["stage"]) for i in items] == [("neuron", "zéro"), ("neuron", "tuned")]
    for item, profile, reports in ((items[0], a, []), (items[1], b, [report])):
        card = neuron_card(profile, layer, neuron, reports=reports)
        assert item["summary"] == card.summary and item["status"] == card.status
        for key in ("layer", "neuron", "count", "mass", "win_rate", "positions", "top_position", "top_position_share",
                    "expert", "unit", "shared"):
            assert item[key] == getattr(card, key), key
        assert item["top"] == 5
        assert item["top_features"] == {ft: values[:5] for ft, values in card.top_features.items()}
        assert item["promoted"] == card.promoted[:5] and item["suppressed"] == card.suppressed[:5]
        assert item["top_examples"] == _json(card.top_examples[:5])  # the texts' characters as they are
        histogram = profile.activation_distribution(layer, neuron)
        assert item["activation_histogram"] == _rows(histogram[histogram["count"] > 0])
        assert item["original_neuron"] is None and item["note"] is None and item["reports"] == []
    row = report.neurons[(report.neurons["layer"] == layer) & (report.neurons["neuron"] == neuron)].iloc[0]
    assert items[0]["report"]["name"] == report.name and items[0]["report"]["status"] == row["status"]
    assert items[0]["report"]["count_b"] == row["count_b"] and items[1]["report"] is None
    for ft in ("token", "word"):  # an untested neuron's flag: unknown, as on the report's own row
        assert items[0]["report"][f"changed_{ft}"] == (None if pd.isna(row[f"p_hellinger_{ft}"]) else
                                                       bool(row[f"changed_{ft}"]))
    # the odd characters of the texts reach the JSON intact (a newline, quotes, the escape character, accents)
    contexts = [x["left"] + x["token"] + x["right"] for i in items for x in i["top_examples"]]
    every = [t for p in (a, b) for t in p.examples["left"].tolist() + p.examples["right"].tolist()]
    assert any(("\n" in t or "\x1b" in t or '"' in t or "é" in t) for t in every)
    assert all(c in {x["left"] + x["token"] + x["right"] for p in (a, b)
                     for x in _json(p.top_examples(layer, neuron).to_dict("records"))} for c in contexts)


def test_show_json_writes_utf8_and_on_an_ascii_terminal_json_escapes(tmp_path, monkeypatch):
    """UTF-8 kept as it is (ensure_ascii=False); where standard output cannot write a character
    (``PYTHONIOENCODING=ascii``), its backslash escape (the CLI's ``backslashreplace``) would be no JSON: the
    document is written with ``\\u`` escapes instead, and reads back the same."""
    folder = _saved(tmp_path)
    written = {}
    for encoding in ("utf-8", "ascii"):
        raw = io.BytesIO()
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding=encoding))
        assert cli_main(["show", str(folder), "--json"]) == 0
        sys.stdout.flush()
        written[encoding] = raw.getvalue().decode(encoding)
    assert "zéro" in written["utf-8"] and "\\u00e9" not in written["utf-8"]
    assert "\\u00e9" in written["ascii"] and json.loads(written["ascii"]) == json.loads(written["utf-8"])


def test_show_json_to_a_reader_that_left_exits_141_quietly(tmp_path):
    """`hf-txray show DIR --json | head -c 10`, with the reader gone before anything was written (so that the
    outcome does not depend on the pipe's buffer): exit status 141, nothing on standard error."""
    folder = _saved(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(hf_txray.__file__)),
                                                       os.environ.get("PYTHONPATH", "")]), HF_HUB_OFFLINE="1")
    read, write = os.pipe()
    os.close(read)
    with open(tmp_path / "err.txt", "w") as log:
        code = subprocess.run([sys.executable, "-m", "hf_txray", "show", str(folder), "--json"], env=env, stdout=write,
                              stderr=log, timeout=120).returncode
    os.close(write)
    assert code == 141 and (tmp_path / "err.txt").read_text() == ""


def test_compare_json_prints_the_saved_reports_show_json_item(tmp_path, capsys):
    """`hf-txray compare A B --out R --json` prints the report as `show R --json` does (that item, its folder R),
    nothing else on standard output; the text form still prints the text and where it saved."""
    folder = _saved(tmp_path)
    argv = ["compare", str(folder / "a"), str(folder / "b"), "--min-count", "1"]
    [item] = _shown([*argv, "--out", str(tmp_path / "r"), "--json"], capsys)
    report = hf_txray.TransferReport.from_pretrained(tmp_path / "r")
    assert item["kind"] == "report" and item["folder"] == str(tmp_path / "r") and item["name"] == report.name
    assert item["summary"] == _json(report.summary())
    assert item["most_changed"]["min_count"] == 1
    expected = report.most_changed(5, "token", min_count=1)
    assert [(r["layer"], r["neuron"]) for r in item["most_changed"]["table"]] == \
        list(zip(expected["layer"], expected["neuron"]))
    assert expected.size
    # the saved report shown with the same floor gives the same item
    [shown] = _shown(["show", str(tmp_path / "r"), "--json"], capsys)
    assert {k: v for k, v in shown.items() if k not in ("most_changed", "least_changed")} == \
        {k: v for k, v in item.items() if k not in ("most_changed", "least_changed")}
    assert cli_main([*argv, "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"saved to {tmp_path / 't'}") and not out.lstrip().startswith("{")
