"""Secrets never reach logs, cards or files: a secret inside a name (a URL's user and password, a ``?token=`` query,
a Hub token) is masked wherever hf_txray repeats the name (hf_txray/redaction.py)."""

from __future__ import annotations

import traceback

import pytest

import hf_txray
from hf_txray.cli import main as cli_main
from hf_txray.errors import DatasetError, ModelError, TXRayError
from hf_txray.redaction import holds_masked, redact, safe_cause

SECRET = "hf_SECRETabcdef1234567890"
NAMES = [f"https://user:{SECRET}@example.org/data/a.txt", f"https://example.org/data/a.txt?token={SECRET}",
         f"hf://datasets/owner/name@main/a.txt?access_token={SECRET}", f"https://{SECRET}@example.org/owner/name"]


@pytest.mark.parametrize("text, expected", [
    (f"'https://me:{SECRET}@host/a.txt?token={SECRET}&x=1'", "'https://***@host/a.txt?token=***&x=1'"),
    (f"No folder https:/user:{SECRET}@example.org/x: Check", "No folder https:/***@example.org/x: Check"),
    ("s3://b/k?X-Amz-Signature=abc&X-Amz-Credential=k&v=1", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***&v=1"),
    ("hf_" + "a1B" * 12, "hf_***"),
    ('\'{"token": "s3cretValue12", "x": 1}\'', '\'{"token": "***", "x": 1}\''),
    ("feature kinds {'token': 'text', 'pos': 'tag'}", "feature kinds {'token': 'text', 'pos': 'tag'}"),
    # names without a secret are kept whole
    ("owner/name@rev hf://datasets/o/n@main git@github.com:o/r hf_txray_cache https://huggingface.co/settings/tokens",
     "owner/name@rev hf://datasets/o/n@main git@github.com:o/r hf_txray_cache https://huggingface.co/settings/tokens"),
])
def test_redact(text, expected):
    assert redact(text) == expected


# helper 374: a name that merely contained "token", "key" or "auth" was taken for a secret's: "?tokenizer=gpt2" was
# shown as "?tokenizer=***", "{'bos_token': '<|endoftext|>'}" (a tokenizer's special tokens, in messages about
# tokenizers) as "{'bos_token': '***'}", "?pad_token_id=50256" and "&max_tokens_per_batch=4096" masked; and an
# Authorization header's value ("Authorization: Bearer hf_abc", a short token) was shown whole.
@pytest.mark.parametrize("text, expected", [
    # secrets: masked
    ("https://h/x?token=abc", "https://h/x?token=***"),
    ("https://h/x?hf_token=abc&y=1", "https://h/x?hf_token=***&y=1"),
    ("https://h/x?access_token=abc", "https://h/x?access_token=***"),
    ("https://h/x?password=abc", "https://h/x?password=***"),
    ("https://h/x?user_pwd=abc", "https://h/x?user_pwd=***"),
    ("https://h/x?apiKey=abc", "https://h/x?apiKey=***"),
    ("https://h/x?X-Amz-Security-Token=abc", "https://h/x?X-Amz-Security-Token=***"),
    ("https://h/x?AWSAccessKeyId=AKIA1&Signature=abc", "https://h/x?AWSAccessKeyId=***&Signature=***"),
    ("https://h/x?client_secret=abc", "https://h/x?client_secret=***"),
    ("https://h/x?sv=1&sig=abc", "https://h/x?sv=1&sig=***"),
    ("https://h/x?auth=abc", "https://h/x?auth=***"),
    ("Authorization: Bearer hf_abc", "Authorization: ***"),
    ("headers={'Authorization': 'Basic dXNlcjpwdw=='}", "headers={'Authorization': '***'}"),
    ('{"authorization": "Bearer xyz"}', '{"authorization": "***"}'),
    ("https://h/x?authorization=Bearer%20xyz", "https://h/x?authorization=***"),
    ("{'use_auth_token': 'abcdefghijklm'}", "{'use_auth_token': '***'}"),
    ("{'hubToken': 'abcdefghijklm'}", "{'hubToken': '***'}"),
    ("{'password_hash': 'abcdefghijklm'}", "{'password_hash': '***'}"),
    (f"https://me:{SECRET}@host/x", "https://***@host/x"),
    ("hf_" + "Ab1" * 12, "hf_***"),
    # no secret: kept whole
    ("https://h/x?tokenizer=gpt2", "https://h/x?tokenizer=gpt2"),
    ("https://h/x?pad_token_id=50256&max_tokens_per_batch=4096",) * 2,
    ("https://h/x?token_ids=1&keyword=cats&author=me&key_column=text",) * 2,
    ("{'bos_token': '<|endoftext|>', 'eos_token': '<|endoftext|>', 'pad_token': '<|endoftext|>'}",
     "{'bos_token': '<|endoftext|>', 'eos_token': '<|endoftext|>', 'pad_token': '<|endoftext|>'}"),
    ("{'image_token': '<|image_pad|>xx', 'mask_token': '[MASK]xxxxxxxxx'}",
     "{'image_token': '<|image_pad|>xx', 'mask_token': '[MASK]xxxxxxxxx'}"),
    ("{'tokenizer_class': 'GPT2TokenizerFast', 'pad_token_id': '50256xxxxxxxx'}",
     "{'tokenizer_class': 'GPT2TokenizerFast', 'pad_token_id': '50256xxxxxxxx'}"),
    ("{'additional_special_tokens': '<|extra_token_0|>'}", "{'additional_special_tokens': '<|extra_token_0|>'}"),
    ("401 Unauthorized: check your token", "401 Unauthorized: check your token"),
])
def test_redact_masks_secret_names_not_names_that_contain_a_secret_word(text, expected):
    assert redact(text) == expected


def test_errors_mask_a_secret_in_their_message():
    err = DatasetError(f"The dataset path 'https://u:{SECRET}@h/a.txt' does not exist")
    assert SECRET not in str(err) and SECRET not in repr(err) and "https://***@h/a.txt" in str(err)


@pytest.mark.parametrize("name", NAMES)
def test_a_url_with_a_secret_is_refused_without_repeating_the_secret(name, saved_bert, tmp_path, capsys):
    """A URL given as the dataset, the model or a results folder was refused with a message that repeated it whole:
    "The dataset path 'https://user:hf_SECRET...@example.org/data/a.txt' does not exist", on stderr and in the
    traceback, for analyze, load, show, compare, export, push, reproduce, prune, probe and view (found by helper
    357)."""
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\n")
    calls = [lambda: hf_txray.analyze(str(saved_bert), name), lambda: hf_txray.analyze(name, ["a text"]),
             lambda: hf_txray.load(name)]
    for call in calls:
        with pytest.raises((DatasetError, ModelError, TXRayError)) as caught:
            call()
        assert SECRET not in "".join(traceback.format_exception(caught.value))
    commands = [["analyze", str(saved_bert), name, "--out", str(tmp_path / "o")],
                ["analyze", name, str(texts), "--out", str(tmp_path / "o")], ["show", name],
                ["compare", name, name, "--out", str(tmp_path / "c")], ["export", name, "--out", str(tmp_path / "e")],
                ["push", "user/repo", name], ["reproduce", name], ["prune", str(saved_bert), name, "--out",
                str(tmp_path / "p")], ["probe", str(saved_bert), name, "--out", str(tmp_path / "pr")], ["view", name]]
    for argv in commands:
        assert cli_main(argv) == 2, argv
        captured = capsys.readouterr()
        assert "error:" in captured.err and SECRET not in captured.out + captured.err, (argv, captured.err)


def test_a_stray_url_in_the_command_line_is_repeated_without_its_password(capsys):
    """argparse repeats what it did not understand: `hf-txray show DIR https://me:s3cretPass@host/x` printed
    "unrecognized arguments: https://me:s3cretPass@host/x" (its mask knew only hf_ tokens)."""
    for stray in ("https://me:s3cretPass@host/x", "https://host/x?api_key=s3cretPass"):
        with pytest.raises(SystemExit):
            cli_main(["show", "results", stray])
        err = capsys.readouterr().err
        assert "unrecognized arguments" in err and "s3cretPass" not in err, err


@pytest.mark.parametrize("stray, masked", [
    ("hf_QMbWEzRbZPGy", True), ("hf_ABCDEFGh", True), ("hf_QMbWEzRbZPGyHfjB", True), ("hf_abcDEF12", True),
    ("hf_transformers", False), ("hf_txray", False), ("hf_internal_testing", False), ("hf_txray_cache", False),
    # names of small letters and digits (a token holds letters of both cases, no digits): folders users type
    ("hf_gpt2medium", False), ("hf_run2024", False), ("hf_profiles2", False), ("hf_abcd1234", False),
    ("hf_Abc1234", False),  # 7 characters after hf_: too short to tell from a name
])
def test_a_token_cut_short_in_the_command_line_is_masked_not_a_name(stray, masked, capsys):
    """helper 374: argparse repeats the words of argv it did not understand; a Hub token pasted without its end
    ("hf_" and fewer than 30 letters: redact's rule for whole tokens) was repeated whole: "unrecognized arguments:
    hf_QMbWEzRbZPGy". A word of hf_ and 8 to 29 letters and digits mixing capitals and small letters is masked there;
    a name (small letters, digits and underscores: "No folder hf_***" hid the folder hf_run2024) is not."""
    for argv in (["show", "results", stray], [stray]):  # unrecognized arguments; invalid choice of a command
        with pytest.raises(SystemExit):
            cli_main(argv)
        err = capsys.readouterr().err
        assert "error:" in err and (stray not in err) == masked and ("hf_***" in err) == masked, (argv, err)


@pytest.mark.parametrize("text, expected", [
    ("HF_TOKEN=s3cretPass12 hf-txray analyze gpt2", "HF_TOKEN=*** hf-txray analyze gpt2"),
    ("HUGGING_FACE_HUB_TOKEN=s3cretPass12", "HUGGING_FACE_HUB_TOKEN=***"),
    ("AWS_SECRET_ACCESS_KEY=s3cretPass12 OPENAI_API_KEY=sk-s3cretPass12", "AWS_SECRET_ACCESS_KEY=*** OPENAI_API_KEY=***"),
    ("headers: X-Api-Key: s3cretPass12", "headers: X-Api-Key: ***"),
    ("hf_token: 's3cretPass12'\napi-key = s3cretPass12", "hf_token: '***'\napi-key = ***"),
    ("--hf-token=s3cretPass12 password=s3cretPass12", "--hf-token=*** password=***"),
    # no secret: kept whole (an argument's name in a message, a vocabulary's token, prose)
    ("pass token=... or token=False; key: 'text'; the token: 'Hello'; a secret: check it",) * 2,
    ("max_tokens_per_batch=4096 is smaller than max_length=512; pad_token_id=0, eos_token: '</s>', key_column=text",
     ) * 2,
])
def test_redact_masks_a_secret_given_to_a_variable_or_header_outside_a_query(text, expected):
    """An environment variable, a header or a YAML line named as a secret was shown whole: redact masked a
    secret-named value only after ?, &, # or ; (a query string) or as a dict item of 12 characters or more.
    Measured before: `hf-txray show results HF_TOKEN=s3cretPass12` printed "unrecognized arguments:
    HF_TOKEN=s3cretPass12"; "X-Api-Key: s3cretPass12", "AWS_SECRET_ACCESS_KEY=..." were kept whole."""
    assert redact(text) == expected


def test_an_environment_variable_typed_after_a_command_is_repeated_without_its_secret(capsys):
    """`hf-txray show DIR HF_TOKEN=...` (the variable written after the command instead of before it)."""
    with pytest.raises(SystemExit):
        cli_main(["show", "results", "HF_TOKEN=s3cretPass12"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: HF_TOKEN=***" in err and "s3cretPass12" not in err, err


def test_safe_cause_looks_at_the_whole_chain_a_traceback_prints():
    url = f"https://user:{SECRET}@example.org/a.txt"
    try:
        try:
            raise FileNotFoundError(url)
        except FileNotFoundError:
            raise TypeError("a reader failed")  # raised during the other: a traceback prints both
    except TypeError as err:
        assert safe_cause(err) is None
    clean = ValueError("bad row")
    assert safe_cause(clean) is clean and safe_cause(clean, SECRET) is clean
    assert safe_cause(ValueError(f"token {SECRET}"), SECRET) is None


def test_a_stream_that_fails_on_a_url_shows_no_secret_in_the_traceback(saved_bert):
    """A stream of `load_dataset("text", data_files="https://user:TOKEN@host/a.txt", streaming=True)` that failed
    mid-read raised hf_txray's DatasetError `from` the reader's error, and the traceback printed fsspec's
    `FileNotFoundError: https://user:hf_SECRET...@host/a.txt` under it verbatim (found by helper 357)."""
    def texts():
        yield "The cat sat on the mat."
        try:
            raise FileNotFoundError(f"https://user:{SECRET}@example.org/a.txt?token={SECRET}")
        except FileNotFoundError as err:
            raise OSError("the next file could not be read") from err

    with pytest.raises(DatasetError) as caught:
        hf_txray.analyze(str(saved_bert), texts(), features=["token"])
    shown = "".join(traceback.format_exception(caught.value))
    assert "The stream failed after row 0" in shown and SECRET not in shown, shown


def test_card_links_never_carry_the_endpoints_password(monkeypatch):
    """A card links to the Hub in use (HF_ENDPOINT); an endpoint given with its user and password
    (HF_ENDPOINT=https://me:s3cretPass@hub.example.com, a company Hub behind basic auth) put the password into every
    link of every README.md card written (found by helper 357): the links now name the host alone."""
    from huggingface_hub import constants

    from hf_txray.card import hub_page, results_dataset_note

    monkeypatch.setattr(constants, "ENDPOINT", "https://me:s3cretPass@hub.example.com:8443/")
    assert hub_page("tiny-org/bert-tiny") == "https://hub.example.com:8443/tiny-org/bert-tiny"
    note = results_dataset_note("me/x")
    assert "(https://hub.example.com:8443/datasets/me/x)" in note and "s3cretPass" not in note


def test_a_model_kwargs_text_with_a_token_is_refused_without_repeating_the_token(saved_bert, tmp_path, capsys):
    """A --config file's `model_kwargs: '{"token": "...", }'` (a JSON text with a trailing comma) was refused with the
    text repeated twice, token included: "model_kwargs: '{"token": "hf_SECRET...", }' is not valid: not valid JSON
    (...): '{"token": "hf_SECRET...", }'" (found by helper 357). The values of secret-like keys are masked."""
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"model_kwargs: '{{\"token\": \"{SECRET}\", \"proxies\": {{\"https\": \"s3cretProxy\"}}, }}'\n")
    argv = ["analyze", str(saved_bert), str(texts), "--out", str(tmp_path / "o"), "--config", str(config)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and '"token": "***"' in err and SECRET not in err, err
    with pytest.raises(TXRayError) as caught:  # a list of dicts is no mapping: repeated as given
        hf_txray.analyze(str(saved_bert), ["a text"],
                         model_kwargs=[{"hub_token": "s3cretValue12", "api_key": "k3yk3yk3yk3y"}])
    assert "s3cretValue12" not in str(caught.value) and "k3yk3yk3yk3y" not in str(caught.value)


def test_the_viewer_masks_a_secret_in_an_error_that_is_not_hf_txrays(caplog):
    # an error from a library underneath (fsspec, requests) names the URL a visitor typed, with its password
    from hf_txray.viewer.app import message_of

    try:
        raise OSError(f"could not open https://user:{SECRET}@example.org/x")
    except OSError as err:
        with caplog.at_level("ERROR"):
            shown = message_of(err)
    assert shown == "Unexpected error (OSError): could not open https://***@example.org/x"
    assert caplog.records and "Traceback" in caplog.text and "https://***@example.org/x" in caplog.text
    assert SECRET not in caplog.text


def test_log_lines_and_the_viewers_unexpected_errors_mask_secrets(capsys):
    # helper 364: `hf-txray view https://me:hf_xxx@host/x` (or build_demo(source=...)) logged "Could not open
    # https://me:hf_xxx@host/x: ..." with the token whole (INFO, hf_txray.space), beside the error's masked message
    from hf_txray.logging import get_logger
    from hf_txray.viewer.app import message_of

    logger = get_logger("test_redaction")
    try:
        raise OSError(f"cannot read {NAMES[0]}")
    except OSError:
        logger.warning("Could not open %s", NAMES[1], exc_info=True)
    err = capsys.readouterr().err
    assert "Could not open https://example.org/data/a.txt?token=***" in err and "OSError: cannot read" in err
    assert SECRET not in err
    shown = message_of(OSError(f"cannot read {NAMES[0]}"))
    assert "https://***@example.org/data/a.txt" in shown and SECRET not in shown
    capsys.readouterr()


def test_push_prints_its_commit_url_without_the_endpoints_password(monkeypatch, tmp_path, capsys):
    """helper 367: `hf-txray push` printed ``info.commit_url`` as it was: under HF_ENDPOINT=https://me:pw@host the
    password reached the terminal (and the logs: hub.py's "Pushed ... to ..."). Every printed URL goes through
    redaction.shown_url."""
    from types import SimpleNamespace

    import hf_txray.hub
    from hf_txray.cli import print_pushed
    from hf_txray.redaction import shown_url

    url = "https://me:s3cretPass@hub.example.com:8443/datasets/me/x/commit/abc123?token=hf_abc"
    assert shown_url(url) == "https://hub.example.com:8443/datasets/me/x/commit/abc123?token=***"
    print_pushed(SimpleNamespace(commit_url=url))
    assert capsys.readouterr().out == "pushed to https://hub.example.com:8443/datasets/me/x/commit/abc123?token=***\n"
    monkeypatch.setattr(hf_txray.hub, "push_from_disk", lambda *args, **kwargs: SimpleNamespace(commit_url=url))
    assert cli_main(["push", "me/x", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "s3cretPass" not in out and "pushed to https://hub.example.com:8443/datasets/me/x/commit/abc123" in out


def test_model_kwargs_are_recorded_with_their_secrets_masked(saved_bert, tmp_path):
    """helper 374: model_kwargs are recorded in a profile's provenance (runtime), less `token` and `proxies`; a secret
    in another value was saved, exported and pushed as it was: provenance.runtime.model_kwargs.cache_dir
    "/x?token=hf_SECRET..." in meta/*.parquet. The record masks it now (redaction.redact_record), and reproduce leaves
    such an entry out rather than loading with the masked value."""
    from hf_txray.provenance import recordable_load_kwargs

    texts = tmp_path / "texts.txt"
    texts.write_text("The cat sat on the mat.\nA dog ran in the park.\n")
    profile = hf_txray.analyze(str(saved_bert), str(texts), features=["token"], show_progress=False,
                               model_kwargs={"cache_dir": f"/x?token={SECRET}", "local_files_only": True})
    assert profile.meta.provenance["runtime"]["model_kwargs"] == {"cache_dir": "/x?token=***", "local_files_only": True}
    profile.save_pretrained(tmp_path / "profile")
    hf_txray.save_to_disk(tmp_path / "export", [profile])
    for path in [*(tmp_path / "profile").rglob("*"), *(tmp_path / "export").rglob("*")]:
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    result = hf_txray.reproduce(tmp_path / "profile")
    rerun = result.stages[0].profile.meta.provenance["runtime"]["model_kwargs"]
    assert result.identical and rerun["local_files_only"] is True and "cache_dir" not in rerun, rerun
    recorded = recordable_load_kwargs({"token": SECRET, "proxies": {"https": "x"}, "device_map": {"": 0},
                                       "headers": {"Authorization": f"Bearer {SECRET}", "x-api-key": "k3y"},
                                       "attn_implementation": "sdpa", "subfolder": "tokenizer_files"})
    assert recorded == {"device_map": {"": 0}, "headers": {"Authorization": "***", "x-api-key": "***"},
                        "attn_implementation": "sdpa", "subfolder": "tokenizer_files"}


def test_reproduce_leaves_out_masked_entries_only_not_values_that_merely_hold_three_stars():
    """holds_masked took any value with "***" in it for a masked secret, so reproduce left out a model_kwargs entry
    given as such: measured before, holds_masked("/data/***/cache") was True (reproduce dropped that cache_dir);
    after, False. A value masked by redact_record is still found: under its secret key or where redact put the mask."""
    from hf_txray.provenance import recordable_load_kwargs

    recorded = recordable_load_kwargs({"cache_dir": "/data/***/cache", "subfolder": "a *** b", "api_key": "k3y",
                                       "proxy_url": "https://u:s3cret@h/x", "headers": {"X-Api-Key": "k3y"},
                                       "revision": "0123456789abcdef0123456789abcdef01234567"})
    assert recorded["cache_dir"] == "/data/***/cache" and recorded["api_key"] == "***"
    kept = {key for key, value in recorded.items() if not holds_masked(value, key)}
    assert kept == {"cache_dir", "subfolder", "revision"}, recorded


def test_a_device_map_or_key_mapping_naming_a_key_module_is_recorded_as_given():
    """redact_record masked the value of any key whose last word is "key", module paths included: measured before,
    device_map={"bert.encoder.layer.0.attention.self.key": "cpu", ...} was recorded with "***" for "cpu", and
    key_mapping={"^encoder.(.*).key": ...} with "***", so reproduce left device_map and key_mapping out. A dotted key
    is a module's path or a pattern, not a secret's name: recorded and reproduced as given."""
    from hf_txray.provenance import recordable_load_kwargs

    given = {"device_map": {"bert.embeddings": 0, "bert.encoder.layer.0.attention.self.key": "cpu"},
             "key_mapping": {r"^encoder\.(.*)\.key": r"bert.\1.key"}, "headers": {"x-api-key": "k3y"}}
    recorded = recordable_load_kwargs(given)
    assert recorded["device_map"] == given["device_map"] and recorded["key_mapping"] == given["key_mapping"]
    assert recorded["headers"] == {"x-api-key": "***"}
    assert [key for key, value in recorded.items() if holds_masked(value, key)] == ["headers"]


def test_the_commands_own_errors_mask_what_was_typed(tmp_path, monkeypatch, capsys):
    """helper 374: a command's error repeats the path or name typed; `hf-txray show hf_QMbWEzRbZPGy` (a token cut
    short, pasted where a folder was meant) printed "No folder hf_QMbWEzRbZPGy", and an OSError naming a file printed
    its filename as it was ("Permission denied: https://u:s3cretPass@h/x?token=s3cretTok"). Both go through
    redaction.redact_typed now, as argparse's errors do."""
    import errno

    import hf_txray.hub

    assert cli_main(["show", "hf_QMbWEzRbZPGy"]) == 2
    err = capsys.readouterr().err
    assert "error: No folder hf_***" in err and "QMbWEzRbZPGy" not in err, err
    assert cli_main(["show", str(tmp_path / "hf_transformers")]) == 2  # a name: kept
    assert "hf_transformers" in capsys.readouterr().err

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "https://u:s3cretPass@h/x?token=s3cretTok")

    monkeypatch.setattr(hf_txray.hub, "push_from_disk", refused)
    assert cli_main(["push", "me/x", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Permission denied: https://***@h/x?token=***" in err and "s3cret" not in err, err


def test_analyze_options_repr_masks_the_token():
    """A notebook shows ``options`` (and a saved .ipynb keeps it) by the dataclass repr, which printed the Hub token
    given as ``token=`` and inside ``model_kwargs``, an option documented as "never recorded"."""
    options = hf_txray.AnalyzeOptions(token=SECRET, model_kwargs={"token": SECRET, "attn_implementation": "eager"},
                                      model_id=f"https://user:{SECRET}@example.org/m", stage="pretrained")
    for shown in (repr(options), str(options)):
        assert SECRET not in shown
        assert "token='***'" in shown and "'attn_implementation': 'eager'" in shown and "stage='pretrained'" in shown
        assert shown.startswith("AnalyzeOptions(layers='all', site='mlp', features=('token', 'pos'),")
    assert "token=None" in repr(hf_txray.AnalyzeOptions()) and "token=True" in repr(hf_txray.AnalyzeOptions(token=True))


def test_txray_arguments_repr_masks_the_hub_token(tmp_path):
    """``TrainingArguments`` shows ``hub_token`` as ``<HUB_TOKEN>`` in its repr; ``@dataclass`` on the subclass made a
    new repr that printed it (and every other ``*_token``) as typed."""
    args = hf_txray.TXRayArguments(output_dir=str(tmp_path), hub_token=SECRET, txray_steps=7)
    for shown in (repr(args), str(args)):
        assert SECRET not in shown
        assert "hub_token=<HUB_TOKEN>" in shown and "txray_steps=7" in shown


@pytest.mark.parametrize("text, expected", [
    # ordinary keys and numbers about a secret: kept whole
    ("sort_key=3 primary_key: 7 cache_key=ab12 run_key: 0123abcd sort_keys=True",) * 2,
    ('{"run_key": "0123456789abcdef01", "cache_key": "k1"} https://h/x?primary_key=12',) * 2,
    ("password_length=12 PASSWORD_MIN_LENGTH: 8 max_token_length=512 token_count=3",) * 2,
    # credentials: masked
    ("api_key=k1 secret_key: k2 access_key=k3 hf_key=k4", "api_key=*** secret_key: *** access_key=*** hf_key=***"),
    ('{"api_key": "s3cretValue12"} https://h/x?AWSAccessKeyId=AKIA1&key=abc',
     '{"api_key": "***"} https://h/x?AWSAccessKeyId=***&key=***'),
])
def test_ordinary_keys_and_a_secrets_length_are_not_masked(text, expected):
    """helper 394: every name whose last word is "key" was a secret's, and every name holding "password" too:
    measured before, "sort_key=3" was shown as "sort_key=***", hf_txray's own progress record '{"run_key": "0123..."}'
    as '{"run_key": "***"}', "password_length=12" as "password_length=***". A key named by an ordinary word before
    it (sort, primary, cache, run...) and a name ending in length, count, size... hold no secret; api_key,
    secret_key, access_key, hf_key stay masked."""
    assert redact(text) == expected


@pytest.mark.parametrize("stray, shown", [
    ("--tokenizer-name=gpt2", "--tokenizer-name=gpt2"), ("--max-tokens=4096", "--max-tokens=4096"),
    ("--sort-key=length", "--sort-key=length"), ("--password-length=12", "--password-length=12"),
    ("--tokn=abcdefgh", "--tokn=***"), ("--hf-tokne=abcdefgh", "--hf-tokne=***"), ("--pasword=abcdefgh", "--pasword=***"),
    ("--api-key=abcdefgh", "--api-key=***"), ("--hf-key=abcdefgh", "--hf-key=***"),
])
def test_the_command_line_masks_the_value_of_a_secret_option_not_of_an_ordinary_one(stray, shown, capsys):
    """helper 394: argparse's "unrecognized arguments" masked the value of every option holding "tok", "key",
    "secret" or "pass": measured before, `hf-txray show r --tokenizer-name=gpt2` said "unrecognized arguments:
    --tokenizer-name=***". The value is masked where the option is a secret's name or one misspelt
    (redaction.is_secret_flag)."""
    with pytest.raises(SystemExit):
        cli_main(["show", "results", stray])
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {shown}" in err and (shown == stray or "abcdefgh" not in err), err


@pytest.mark.parametrize("stray", ["--hf-token-value=abcdefgh", "--token-value=abcdefgh", "--api_token_value=abcdefgh",
                                   "--hf-token-old=abcdefgh", "--githubtoken=abcdefgh", "--token2=abcdefgh",
                                   "--client-secret-value=abcdefgh"])
def test_the_command_line_masks_the_value_of_an_option_naming_a_secret_before_its_last_word(stray, capsys):
    """helper 399: is_secret_flag (48b6137) looked at an option's last word only, where the rule it replaced masked
    every option holding "tok": measured at 48b6137, `hf-txray show results --hf-token-value=abcdefgh` said
    "unrecognized arguments: --hf-token-value=abcdefgh" (masked as "--hf-token-value=***" before it); so did
    --githubtoken and --token2. A secret's word anywhere in the name, or glued to its end, masks the value."""
    with pytest.raises(SystemExit):
        cli_main(["show", "results", stray])
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {stray.split('=')[0]}=***" in err and "abcdefgh" not in err, err


@pytest.mark.parametrize("text, expected", [
    ("hf_" + "aB3" * 11 + "a_old", "hf_***_old"), ("old_hf_" + "aB3" * 11 + "a", "old_hf_***"),
    ("HF_TOKEN_FILE=/x/hf_" + "aB3" * 11 + "a_backup.txt", "HF_TOKEN_FILE=/x/hf_***_backup.txt"),
    ("hf_txray_cache hf_transformers_cache_2024",) * 2,
])
def test_a_hub_token_glued_to_a_word_is_masked(text, expected):
    """helper 394: the Hub token rule ended at a word's end, and "_" is a word's letter: measured before,
    "hf_<34 letters>_old" (a token saved beside a suffix, a backup's name) was shown whole."""
    assert redact(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("token: hf_abcdefgh12", "token: ***"), ("hub:\n  token: 'hf_short1'\n", "hub:\n  token: '***'\n"),
    ("pass token=hf_short1", "pass token=***"), ("key=hf_QMbWEzRb", "key=***"),
    # a name of one word given anything but a Hub token: an argument's name, a vocabulary's token
    ("pass token=... or token=False; the token: key; key: hf_txray", "pass token=... or token=False; the token: key; "
     "key: hf_txray"),
])
def test_a_hub_token_given_to_a_name_of_one_word_is_masked(text, expected):
    """helper 394: "token" or "key" alone is left to the query and item rules (messages say "pass token=..."), so
    a short Hub token given to it ("token: hf_abcdefgh12" in a YAML line, "token=hf_short1") was shown whole
    (the token rule wants 30 letters). A value that looks like a Hub token (hf_ and 6 or more letters and digits)
    given to a secret's name of one word is masked now."""
    assert redact(text) == expected


@pytest.mark.parametrize("text, expected", [
    ('{"token": "abc123"}', '{"token": "***"}'), ("%r" % {"api_key": "zz"}, "{'api_key': '***'}"),
    ("{'hf_token': 'hf_short1', 'x': 1}", "{'hf_token': '***', 'x': 1}"),
    # a feature's kinds, a vocabulary's tokens, a special token: kept whole
    ("feature kinds {'token': 'text', 'pos': 'tag'}; {'token': 'key', 'key': 'the'}",) * 2,
    ("{'eot_token': '<|eot_id|>', 'bos_token': 'BOS', 'start_token': '<s>'}",) * 2,
])
def test_a_short_secret_in_a_json_object_or_a_dict_is_masked(text, expected):
    """helper 394: a dict item was masked when its value had 12 characters or more (a feature's {'token': 'text'}
    is no secret): measured before, '{"token": "abc123"}' and "{'api_key': 'zz'}" (a dict logged with %r) were shown
    whole. A shorter value is masked now where its key is a secret's name of several words, or of one word and the
    value mixes letters and digits; a value with a special token's signs (<, |, [) is not."""
    assert redact(text) == expected


def test_python_api_errors_mask_a_hub_token_cut_short_where_a_name_was_meant(monkeypatch):
    """helper 394: the command line masks a Hub token cut short that it repeats (redact_typed), the Python API's
    errors did not: measured before, hf_txray.analyze("hf_QMbWEzRbZPGy", ...) and analyze(..., revision=
    "hf_QMbWEzRbZPGy") raised "Model 'hf_QMbWEzRbZPGy' ..." and "... at revision 'hf_QMbWEzRbZPGy' ...". A name
    (hf_transformers, hf_run2024) is still repeated. Offline for certain: a worker that served the test Hub before
    is online, and the Hub's own "could not reach" error names no revision."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for model, revision in (("hf_QMbWEzRbZPGy", None), ("no-such-org/no-such-model", "hf_QMbWEzRbZPGy")):
        with pytest.raises(ModelError) as caught:
            hf_txray.analyze(model, ["a text"], revision=revision)
        shown = "".join(traceback.format_exception(caught.value))
        assert "QMbWEzRbZPGy" not in shown and "hf_***" in shown, shown
    assert str(ModelError("No folder hf_run2024 or hf_transformers")) == "No folder hf_run2024 or hf_transformers"


@pytest.mark.parametrize("text, expected", [
    ("{'start_token': 'BOS'}",) * 2, ("{'end_token': 'EOS', 'sop_token': 'SOP'}",) * 2,
    ('{"hf_token": "x9"}', '{"hf_token": "***"}'), ("{'api_key': 'zz'}", "{'api_key': '***'}"),
    ("{'access_token': 'abcdefghijklmn'}", "{'access_token': '***'}"),
])
def test_a_word_level_vocabularys_special_token_in_a_dict_is_shown(text, expected):
    """helper 399: 542a74a masked every short value of a key of several words named as a secret, so a word-level
    tokenizer's special tokens outside transformers' list were masked where fb52d66 showed them: measured at
    542a74a, redact("{'start_token': 'BOS'}") == "{'start_token': '***'}". A name ending in "token" (a vocabulary's
    word as well as a credential's) wants a value that mixes letters and digits, as "token" alone does."""
    assert redact(text) == expected


def test_an_error_repeating_model_kwargs_shows_its_special_tokens():
    """helper 399: the error refusing a model_kwargs that is no mapping repeats it (redact_typed): measured at
    542a74a, "got [{'start_token': '***'}] (list)"."""
    from hf_txray.options import check_model_kwargs

    with pytest.raises(TXRayError) as caught:
        check_model_kwargs([{"start_token": "BOS", "api_key": "zz"}])
    assert "got [{'start_token': 'BOS', 'api_key': '***'}] (list)" in str(caught.value), str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ("HASH_KEY=3f9aK2 hash_key: s3cr3t", "HASH_KEY=*** hash_key: ***"),
    ("{'hash_key': 'abcdefghijklmnop'}", "{'hash_key': '***'}"), ("https://h/x?hashKey=abc", "https://h/x?hashKey=***"),
])
def test_a_keyed_hashs_key_stays_masked(text, expected):
    """helper 399: fbed022 listed "hash" among the ordinary words before "key" (a table's hash key), so the key of
    a keyed hash (an HMAC's, HASH_KEY=... in an environment dump) was shown: measured at fbed022,
    redact("HASH_KEY=3f9aK2") == "HASH_KEY=3f9aK2" (fb52d66: "HASH_KEY=***"). hf_txray names no hash key of its
    own; when unsure, masked."""
    assert redact(text) == expected
