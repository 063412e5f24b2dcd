"""`hf-txray`: command-line access to the public API (thin wrappers, no logic of their own).

Runs under ``accelerate launch -m hf_txray.cli analyze ...`` and ``torchrun -m hf_txray.cli analyze ...``:
every process profiles its shard, the states are reduced exactly, and the main process writes the result.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import ConfigurationError, ProcessFailedError, TXRayError
from .redaction import is_secret_flag, redact_typed, shown_url

def _resolve_dataset(name: str, num_samples: int | None):
    """`txray:ptb`, `txray:bbc`... name the embedded corpora (:func:`hf_txray.corpora.by_name`); anything else goes
    to `analyze` as is."""
    from . import corpora

    embedded = corpora.by_name(name, num_samples) if isinstance(name, str) else None
    return name if embedded is None else embedded


def _layers(value: str):
    """--layers: 'all', indices and ranges ('0-3,7,-1'); the one parser of hf_txray.options."""
    from .options import parse_layers

    try:
        return parse_layers(value)
    except TXRayError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ----- arguments several subcommands share (one wording each) ---------------------------------------------------
def _add_push_to_hub(p, what: str) -> None:
    """--push-to-hub REPO_ID (`what` says what goes there) and --hub-private."""
    p.add_argument("--push-to-hub", metavar="REPO_ID", help=f"Also {what} this Hub dataset repo.")
    # --no-hub-private too: a --config file's `hub_private: true` is overridden on the command line as every switch is
    p.add_argument("--hub-private", action=argparse.BooleanOptionalAction, default=False,
                   help="Create the --push-to-hub repo private.")


def _add_token(p) -> None:
    p.add_argument("--token", help="Hub token for private repos and uploads (default: HF_TOKEN, then the saved "
                                   "`hf auth login`).")


def _add_license(p, applies: str = "") -> None:
    p.add_argument("--license", help=f"License id for the dataset card, e.g. apache-2.0{applies}.")


def _add_pretty_name(p, applies: str = "") -> None:
    p.add_argument("--pretty-name", help=f"The dataset card's title (default: derived from the model{applies}).")


# --max-length of the commands that run the model: they truncate (no windows), to the model's limit by default
# (hf_txray.lengths.resolve_max_length, as analyze)
TRUNCATE_TO_LIMIT = ("Truncate texts to this many tokens; above the model's limit: an error before any work (default: "
                     "the model's limit, at most 512; 512 with a notice when neither the model nor its tokenizer "
                     "states one).")


def _add_forward_options(p, max_length_help: str = TRUNCATE_TO_LIMIT) -> None:
    """--batch-size and --max-length of the commands that run the model."""
    p.add_argument("--batch-size", type=_int(1), default=32, help="Texts per forward pass (default: 32).")
    p.add_argument("--max-length", type=_int(1), help=max_length_help)


def _add_data_columns(p, label_default: str | None) -> None:
    """--split, --text-column and --label-column of the commands that evaluate on a labelled dataset."""
    from .streaming import TEXT_COLUMN_CANDIDATES

    p.add_argument("--split", help="The split of the data (default: the only one; needed when it has several).")
    p.add_argument("--text-column", help=f"The text column (default: the first of "
                                         f"{', '.join(TEXT_COLUMN_CANDIDATES)} that the data has).")
    p.add_argument("--label-column", default=label_default,
                   help=f"The label column (task metrics; default: {label_default or 'none'}).")


# CLI-only keys a --config file may also hold (besides every analyze option).
ANALYZE_CLI_KEYS = ("model", "dataset", "out", "push_to_hub", "hub_private", "gguf_file")


def _add_analyze(sub) -> None:
    from .options import AnalyzeOptions, add_cli_arguments

    p = sub.add_parser(
        "analyze", help="Profile a model's neurons on a corpus.",
        description="Profile MODEL on DATASET. Without arguments: the embedded MiniLM on Penn Treebank (txray:ptb). "
                    "Every option of hf_txray.analyze is a flag (--top-k or --top_k); --config run.yaml reads them "
                    "from a YAML file (keys: the option names, e.g. top_k: 2), and flags given on the command line "
                    "override the file.")
    p.add_argument("model", nargs="?", default=None, help="Hub id or local path (default: the embedded MiniLM).")
    p.add_argument("dataset", nargs="?", default="txray:ptb",
                   help="Hub dataset id, local file/folder, or an embedded corpus: txray:ptb (Penn Treebank train, "
                        "the default), txray:ptb-valid or txray:bbc (BBC News).")
    p.add_argument("--config", metavar="YAML", help="Read options from this YAML file, or JSON file named .json "
                                                    "(command-line flags win).")
    p.add_argument("--out", help="Folder to write the profile to (required, here or in --config).")
    _add_push_to_hub(p, "push the profile to")
    p.add_argument("--gguf-file", help="Load this GGUF file of the MODEL folder (needs the gguf package). A folder "
                                       "with a single .gguf file and no config.json loads it without this flag.")
    # checkpoint_dir is OUT/_checkpoint; progress bars follow HF_TXRAY_DISABLE_PROGRESS_BARS.
    add_cli_arguments(p, AnalyzeOptions, exclude=("checkpoint_dir", "show_progress"))
    p.set_defaults(handler=_cmd_analyze, subparser=p)


def _model_kwargs(args) -> dict:
    from .options import check_model_kwargs

    check_model_kwargs(args.model_kwargs)  # a config file's `model_kwargs: 5`: dict() below raised a traceback
    kwargs = dict(args.model_kwargs or {})
    if args.gguf_file:
        kwargs["gguf_file"] = args.gguf_file
    return kwargs


def _apply_config_file(parser: argparse.ArgumentParser, argv: Sequence[str] | None, args):
    """Re-parse with the --config file's values as defaults (trl's TrlParser order: file < command line)."""
    from .options import AnalyzeOptions, config_file_defaults, option_names

    valid = [n for n in option_names(AnalyzeOptions) if n not in ("checkpoint_dir", "show_progress")]
    values = config_file_defaults(args.config, valid + list(ANALYZE_CLI_KEYS))
    args.subparser.set_defaults(**_config_values(args.config, values))
    given = _flags_given(args.subparser, sys.argv[1:] if argv is None else argv)
    parsed = _parse_command_line(parser, sys.argv[1:] if argv is None else argv)
    parsed.from_config = tuple(name for name in values if name not in given)  # how an error names each option
    _refuse_paths_beside_the_config(args.config, {name: values[name] for name in ("model", "dataset")
                                                  if name in values and getattr(parsed, name, None) == values[name]})
    return parsed


def _refuse_paths_beside_the_config(config: str, paths: dict[str, Any]) -> None:
    """Refuse a relative `model` or `dataset` path of the --config file `config` (`paths`: those the command line did
    not override) that is not in the current directory but is in the config file's folder. Relative paths in a
    config file are read from the current directory, as on the command line and as trl's ``TrlParser`` reads them;
    run from another folder, ``dataset: data.txt`` beside the file was called missing, and ``model: my-model``
    looked up on the Hub (helper 359).

    Raises:
        ConfigurationError: naming the key, both places and the fixes.
    """
    folder = Path(config).expanduser().resolve().parent
    if folder == Path.cwd().resolve():
        return
    for name, value in paths.items():
        path = Path(value).expanduser() if isinstance(value, str) and value else None
        if path is None or path.is_absolute() or path.exists() or not (folder / path).exists():
            continue
        if not _read_as_local(name, value, folder / path):
            continue
        raise ConfigurationError(
            f"The config file {config}: {name}: {value!r} is not in the current directory ({Path.cwd()}), but is "
            f"beside the config file ({folder / path}). Relative paths in a config file are read from the current "
            f"directory, as on the command line: run hf-txray from {folder}, or write the path absolute or relative "
            "to where you run it (the same holds for out:).")


def _read_as_local(name: str, value: str, beside: Path) -> bool:
    """Whether the config's `name` (``model`` or ``dataset``) `value`, found at `beside` (in the config file's
    folder), was meant as that local path: always when it is written as a path (``./x``, ``data.txt``), never for an
    embedded corpus (``txray:ptb``), and for a name that can be a Hub id (``gpt2``, ``org/name``) only when what is
    there would be read as one: a model folder (``config.json``, ``adapter_config.json`` or a ``.gguf`` file) or a
    ``.gguf`` file, a data file or a folder holding data files. A Hub id that merely matched a folder of another kind
    beside the file (a results folder ``gpt2/``) was refused, with no way to name the Hub (helper 366)."""
    from . import corpora
    from .loading import data_file_builder, looks_local

    if value in corpora.EMBEDDED_NAMES:
        return False
    if looks_local(value) or beside.is_file():
        return True
    if name == "model":
        return (any((beside / file).is_file() for file in ("config.json", "adapter_config.json"))
                or any(beside.glob("*.gguf")))
    return any(file.is_file() and data_file_builder(file) for file in beside.iterdir())


def _flags_given(command: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The options (by their ``dest``) that `argv` gives as flags (``--top-k 2``, ``--top_k=2``, ``--no-resume``)."""
    tokens = list(argv)
    tokens = tokens[:tokens.index("--")] if "--" in tokens else tokens  # after "--" every token is a value
    actions = (command._option_string_actions.get(token.split("=", 1)[0]) for token in tokens if token.startswith("--"))
    return {action.dest for action in actions if action is not None}


def _check_options(args: argparse.Namespace, options: dict) -> None:
    """:meth:`AnalyzeOptions.validate` of the options before any work, its error worded by :func:`_as_given`.

    Raises:
        ConfigurationError: the first option out of range (:meth:`AnalyzeOptions.validate`), so worded.
    """
    from .options import AnalyzeOptions, check_switches

    try:
        checked = AnalyzeOptions(**options)
        check_switches(checked, "")
        checked.validate()
    except ConfigurationError as err:
        raise ConfigurationError(_as_given(args, str(err))) from None


def _as_given(args: argparse.Namespace, message: str) -> str:
    """`message` (an error about analyze's options, in Python's names) naming each option as the user gave it: a flag
    as the flag (``--max-tokens-per-batch=100 is smaller than --max-length=5000``, not Python's
    ``max_tokens_per_batch=100``), and a value from the --config file by its key, with the file named (``The config
    file run.yaml: streaming must be True or False``: it was ``analyze(): streaming ...``, naming no file). A switch
    keeps its name (``resume=True`` is no flag's form), and a message that already says its flags (``(CLI:
    --split NAME)``) is left as it is."""
    from .options import AnalyzeOptions, option_names, respell_options

    if "CLI: --" in message:
        return message
    from_config = set(getattr(args, "from_config", ()))
    flags = {name: f"--{name.replace('_', '-')}" for name in option_names(AnalyzeOptions)
             if name not in from_config and hasattr(args, name) and not isinstance(getattr(args, name), bool)}
    message = respell_options(message, flags)
    if respell_options(message, {name: "\0" for name in from_config}) != message:  # names a key of the file
        # by its key: a message that names no option ("Unknown feature 'foo'") is said to be in it ("features: ...")
        message = f"The config file {args.config}: {respell_options(message, {name: name for name in from_config})}"
    return message


def _config_values(path: str, values: dict) -> dict:
    """The --config file's values as the command line would read them, or a ConfigurationError naming the file: a
    number given for a text (``stage: 2020``, ``out: 5``) is that text; a text is read by its flag's parser (argparse
    leaves defaults unchecked, or names the flag for a value that came from the file)."""
    import dataclasses
    import datetime

    from .options import AnalyzeOptions, cli_parser, text_fields

    texts = set(text_fields(AnalyzeOptions)) | {"model", "dataset", "out", "push_to_hub", "gguf_file"}
    defaults = {f.name: f.default for f in dataclasses.fields(AnalyzeOptions)} | {"dataset": "txray:ptb"}
    out = {}
    for name, value in values.items():
        if name in texts and value is not None and not isinstance(value, str):
            # YAML reads 1.10 as 1.1 and 0755 as 493: only the text as written is right, so it must be quoted
            quote = (f' (quoted: {name}: "..." as you mean it)' if isinstance(value, (int, float, datetime.date))
                     else "")
            raise ConfigurationError(f"The config file {path}: {name} must be a string, got {value!r} "
                                     f"({type(value).__name__}){quote}.")
        if name == "hub_private" and not isinstance(value, bool):  # `hub_private: "no"` is truthy: a private push
            raise ConfigurationError(f"The config file {path}: hub_private must be true or false, got {value!r} "
                                     f"({type(value).__name__}): write true/false (unquoted).")
        if value is None and defaults.get(name, None) is not None and not _accepts_none(name):
            raise ConfigurationError(f"The config file {path}: {name} has no value (null); give one, or leave the "
                                     f"key out for the default ({defaults[name]!r}).")
        parse = cli_parser(AnalyzeOptions, name)
        if parse is not None and isinstance(value, str):
            try:
                parse(value)
            except (ConfigurationError, ValueError, TypeError) as err:
                raise ConfigurationError(f"The config file {path}: {name}: {value!r} is not valid: {err}") from None
        out[name] = value
    return out


def _accepts_none(name: str) -> bool:
    """Whether Python's analyze() takes None for option `name` (``layers``: None is "all"), so that a config file's
    null means what the help says rather than being refused as a missing value."""
    from .options import AnalyzeOptions, check_switches

    try:
        options = AnalyzeOptions(**{name: None})
        options.validate()
        check_switches(options, "config")  # an on/off option's null is no value, not "off"
    except (ConfigurationError, TypeError, ValueError):
        return False
    return True


def _check_out(out: str | Path, command: str, artifact_type: str | None = None, inputs: tuple = (),
               read_whole: tuple = ()) -> Path:
    """`out`, refused before any work when saving there would wipe files that are not hf_txray's, a saved artifact
    of another type than `artifact_type`, or one of the command's `inputs`."""
    from .artifact import check_save_target

    return check_save_target(out, what=f"hf-txray {command}", cli_flag="--out", artifact_type=artifact_type,
                             inputs=inputs, read_whole=read_whole)


def _cmd_analyze(args) -> int:
    from . import analyze, corpora
    from .distributed import all_gather, failing_together, process_info
    from .options import AnalyzeOptions, option_names

    if not args.out:
        raise ConfigurationError("analyze needs --out DIR (on the command line or as `out:` in the --config file).")
    out = _check_out(args.out, "analyze", "profile", inputs=tuple(p for p in (args.model,) if p),
                     read_whole=tuple(p for p in (args.dataset,) if p))  # helper 156: --out inside the data folder
    _check_push(args)
    options = {name: getattr(args, name) for name in option_names(AnalyzeOptions) if hasattr(args, name)}
    _check_options(args, options)
    options.update(model_kwargs=_model_kwargs(args), checkpoint_dir=out / "_checkpoint")
    if args.model is None and options.get("model_id") is None:  # the embedded default, named as on the Hub
        options["model_id"] = corpora.DEFAULT_MODEL_ID
    # An embedded corpus goes by its name (txray:ptb): analyze reads it, and refuses --split, --dataset-config and
    # --dataset-revision for it saying why, after checking the options (a loaded corpus was a bare Dataset to it).
    try:
        profile = analyze(args.model or corpora.default_model_path(), args.dataset, **options)
    except ConfigurationError as err:  # checked against the model ("top_k=100 exceeds the 48 neurons"): as given
        if isinstance(err, ProcessFailedError):  # another process's, said with its rank
            raise
        raise ConfigurationError(_as_given(args, str(err))) from None
    rank, world = process_info()
    # The first process writes (and pushes) alone: if that fails, the others learn it at the gather below and exit
    # with its error, instead of dying in the closing barrier ('Connection closed by peer') or waiting there.
    with failing_together(world):
        if rank == 0:
            _save_profile(profile, out)  # first: a stdout that cannot be written (a full log disk) loses no profile
            if args.text_column is None and profile.meta.config.get("text_column"):
                print(f"text column: {profile.meta.config['text_column']!r} (detected; --text-column chooses another)")
            print(f"{profile}\nsaved to {out}")
            if args.push_to_hub:
                from .hub import push_to_hub  # the results repo: the profile with its plots

                info = push_to_hub(args.push_to_hub, profiles=[profile], private=args.hub_private, token=args.token)
                print_pushed(info)
    all_gather(None, world)
    return 0


def _save_profile(profile: Any, out: Path) -> None:
    """Save analyze's `profile` to `out`; when that fails (a full disk), say that the counts are kept in the
    checkpoint under `out`, saved after the last batch, and that ``--resume`` saves them without recounting (the error
    said "save somewhere else", and another --out counted everything again, helper 324)."""
    from .errors import OutputError

    try:
        profile.save_pretrained(out)
    except OutputError as err:
        checkpoint = out / "_checkpoint"
        if not any(checkpoint.glob("rank-*/progress.json")):
            raise
        raise OutputError(f"{err} The counts are kept in {checkpoint}: once it can be written, run the same command "
                          "with --resume to save the profile without recounting.", err.target, err.reason) from err


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="Compare two saved profiles (stage A -> stage B).",
                       description="Compare the profiles A and B (stage A -> stage B), print the transfer report "
                                   "(shares shared/lost/gained/dead, Hellinger distances against their split-half "
                                   "noise floors, per-layer table, most and least changed neurons) and save it to "
                                   "--out (TransferReport.from_pretrained, hf-txray show).")
    p.add_argument("a", help="Profile of stage A: a saved profile or results folder, or a Hub dataset repo of one "
                             "(Profile.push_to_hub, analyze --push-to-hub, hf-txray push).")
    p.add_argument("b", help="Profile of stage B: as A.")
    p.add_argument("--stage-a", help="The stage to read from A when it holds several profiles.")
    p.add_argument("--stage-b", help="The stage to read from B when it holds several profiles.")
    p.add_argument("--out", required=True, help="Folder to write the transfer report to.")
    p.add_argument("--revision", help="Revision of A and B when they are Hub repos (default: their main branch).")
    _add_token(p)
    p.add_argument("--alpha", type=float, default=0.05, help="False discovery rate of the per-neuron 'changed' flags.")
    p.add_argument("--no-test", action="store_true", help="Skip the per-neuron test (p-values and 'changed' flags).")
    p.add_argument("--same-corpus", action=argparse.BooleanOptionalAction, default=None,
                   help="Whether both stages profiled the same texts (in any order, unless a profile splits its "
                        "halves by example id; the noise figures then pair like halves). Default: told from the "
                        "texts' hashes; say it when a stage was merged from parts whose hashes in any order are not all known, "
                        "which compare then warns about.")
    p.add_argument("--min-count", type=_int(0), default=20,
                   help="Rank only neurons credited at least this often in both stages, in the most-changed list "
                        "printed here (the saved report keeps every neuron; `hf-txray show` ranks it again at its "
                        "own default) (default: 20).")
    p.add_argument("--json", action="store_true",
                   help="Print the report as `hf-txray show OUT --json` prints it, one JSON document ({\"items\": "
                        "[...]}, the report's item with its folder: --out), instead of the text; warnings and errors "
                        "go to standard error.")
    p.set_defaults(handler=_cmd_compare)


def _cmd_compare(args) -> int:
    from . import compare
    from .display import report_text, report_view
    from .hub_io import names_a_repo, refuse_revision_of_folder

    _check_out(args.out, "compare", "transfer_report", inputs=(args.a, args.b))
    local = [Path(p).expanduser().is_dir() for p in (args.a, args.b)]  # --revision is for the Hub one of a mix
    if args.revision is not None and any(local) and not all(local):
        for source, here in zip((args.a, args.b), local):
            if here and names_a_repo(source):  # meant the repo at that revision: never read the folder instead
                refuse_revision_of_folder(source, args.revision)
    a, b = (_stage_profile(p, stage, which, revision=None if here and not all(local) else args.revision,
                           token=args.token)
            for p, stage, which, here in zip((args.a, args.b), (args.stage_a, args.stage_b), "ab", local))
    report = compare(a, b, alpha=args.alpha, test=not args.no_test, same_corpus=args.same_corpus)
    report.save_pretrained(args.out)
    if args.json:  # the saved folder is the item's "folder": stdout holds the document alone
        _print_json([(Path(args.out), report_view(report, min_count=args.min_count))])
        return 0
    print(report_text(report, min_count=args.min_count))
    print(f"\nsaved to {args.out}")
    return 0


def _stage_profile(source: str, stage: str | None, which: str, revision: str | None, token: str | None) -> Any:
    """The profile `compare` reads from `source`: a saved profile, or the one (or `stage`) of a results folder or
    repo (what ``analyze --push-to-hub`` writes)."""
    from .reproduce import stored_profiles

    profiles = stored_profiles(source, revision=revision, token=token)  # refuses one without (a report's folder)
    if stage is not None:
        if stage not in profiles:
            raise ConfigurationError(f"{source!r} holds no stage {stage!r}; its stages: {', '.join(profiles)}.")
        return profiles[stage]
    if len(profiles) == 1:
        return next(iter(profiles.values()))
    raise ConfigurationError(f"{source!r} holds {len(profiles)} profiles ({', '.join(profiles)}): choose one with "
                             f"--stage-{which} STAGE.")


def _add_show(sub) -> None:
    p = sub.add_parser("show", help="Print a readable summary of a saved profile, report or results folder.",
                       description="Print a readable summary of every profile and transfer report saved under PATH "
                                   "(a profile or report folder, a results folder, or a folder holding several), or "
                                   "with --neuron one neuron's page.")
    p.add_argument("path", help="A saved profile or report folder, or a folder holding several.")
    p.add_argument("--neuron", metavar="LAYER:NEURON",
                   help="Print one neuron's page (summary, preferences, output effects, activations, examples; "
                        "of a folder holding only reports: the neuron's row of each, its status, Hellinger distance "
                        "and p-value; default: the summary of the whole profile or report).")
    p.add_argument("--json", action="store_true",
                   help="Print one JSON document instead, for scripts: {\"items\": [...]}, an item per profile, "
                        "report or neuron page with what the text shows (the same top-N rows, the limits recorded); "
                        "NaN and infinity are written as null. Warnings and errors go to standard error.")
    p.set_defaults(handler=_cmd_show)


def _cmd_show(args) -> int:
    from . import Profile
    from .errors import ProfileFormatError

    path = Path(args.path)
    if not path.exists():
        from .errors import ArtifactNotFoundError, ConfigurationError
        from .hub_io import check_repo_id, looks_local, near_paths_hint, repo_at_revision
        from .tables import shell_command

        hint = ""
        # what a push printed, or owner/name@revision as hf-txray view takes it: show reads folders only
        repo, revision = repo_at_revision(args.path) or (args.path, None)
        if "/" in repo and not looks_local(repo):
            try:
                check_repo_id(repo)
                at, rev = (f" at the revision {revision!r}", ("--revision", revision)) if revision else ("", ())
                download = shell_command("hf", "download", repo, "--repo-type", "dataset", *rev, "--local-dir", "DIR")
                hint = (f" show reads local folders; {repo!r}{at} is a Hub repo: browse it with "
                        f"`{shell_command('hf-txray', 'view', args.path)}`, or download it (`{download}`) and show DIR.")
            except ConfigurationError:
                pass
        raise ArtifactNotFoundError(f"No folder {path}:{near_paths_hint(path.expanduser())} Check the path.{hint}")
    as_json = getattr(args, "json", False)
    if getattr(args, "neuron", None):
        return _show_neuron(path, args.neuron, as_json)
    from .artifact import LEGACY_MARKERS
    from .display import profile_text, profile_view, report_text, report_view

    profiles, reports = _saved_under(path)
    if not profiles and not reports:
        if path.is_dir() and any((path / marker).is_file() for marker in LEGACY_MARKERS):
            Profile.from_pretrained(path)  # saved before the artifact contract: its header check says what to do
        raise ProfileFormatError(f"No hf_txray profile or report found under {path}.")
    if as_json:
        _print_json([(where, profile_view(item)) for where, item in profiles]
                    + [(where, report_view(item)) for where, item in reports])
        return 0
    several = len(profiles) + len(reports) > 1  # then each summary names its folder (two may share a stage name)
    shown = [(where, profile_text(item)) for where, item in profiles] + [
        (where, report_text(item)) for where, item in reports]
    for where, text in shown:
        print((f"== {where}\n" if several else "") + text + "\n")
    return 0


def _print_json(items: list[tuple[Path, dict[str, Any]]]) -> None:
    """Print `show --json`'s document: ``{"items": [...]}``, each of `items` (the folder it was read from, and a view
    of :mod:`hf_txray.display`) as its ``kind``, its ``folder`` and the view's fields
    (:func:`~hf_txray.display.json_data`: NaN as null),
    UTF-8 text kept as it is; where standard output's encoding cannot write a character (``PYTHONIOENCODING=ascii``,
    whose backslash escapes would not be JSON), every non-ASCII character as a JSON ``\\u`` escape instead."""
    from .display import json_data
    from .io_utils import json_text

    data = {"items": [json_data({"kind": view["kind"], "folder": where, **view}) for where, view in items]}
    text = json_text(data, "hf-txray show --json's output", ensure_ascii=False, indent=2)
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except UnicodeEncodeError:  # also a lone surrogate, which no encoding writes
        text = json_text(data, "hf-txray show --json's output", indent=2)
    print(text)


def _saved_under(path: Path) -> tuple[list[tuple[Path, Any]], list[tuple[Path, Any]]]:
    """The profiles and reports under `path`, each with the folder it was read from: saved ones (`path` itself
    included), then those of the results folders (export, the demo's ``hub/``) under it that are not the same as a
    saved one (an export repeats what was saved beside it)."""
    from . import Profile, TransferReport
    from .artifact import artifact_type_of, saved_artifacts
    from .export import is_export_folder, read_folder

    def in_results(folder: Path) -> tuple[list, list]:
        profiles, reports = read_folder(folder)
        return [(folder, item) for item in profiles.values()], [(folder, item) for item in reports.values()]

    # a results folder is in the same layout as a saved profile: read by its own class, which checks its header
    if is_export_folder(path) and artifact_type_of(path) in (None, "results"):
        return in_results(path)
    profiles = [(p, Profile.from_pretrained(p)) for p in saved_artifacts(path, Profile.artifact_type)]
    reports = [(p, TransferReport.from_pretrained(p)) for p in saved_artifacts(path, TransferReport.artifact_type)]
    saved = [item for _, item in profiles + reports]
    for folder in saved_artifacts(path, "results"):  # less what repeats a saved one (the demo's hub/ copy)
        found = in_results(folder)
        profiles += [(f, item) for f, item in found[0] if not any(_same(item, other) for other in saved)]
        reports += [(f, item) for f, item in found[1] if not any(_same(item, other) for other in saved)]
    return profiles, reports


def _same(item: Any, other: Any) -> bool:
    """Whether two artifacts hold the same values (a profile saved and exported); cheap checks first."""
    return (type(item) is type(other) and item.meta.created_at == other.meta.created_at
            and bool(item == other))


def _show_neuron(path: Path, spec: str, as_json: bool = False) -> int:
    """`show PATH --neuron L:N`: the neuron's page in every profile under PATH (with the report's change clause
    when a report under PATH compares that profile's stage); `as_json`: as one JSON document."""
    from .display import neuron_text, neuron_view, report_neuron_text, report_neuron_view
    from .errors import ProfileFormatError

    try:
        layer, neuron = (int(v) for v in spec.split(":"))
    except ValueError:
        raise ConfigurationError(f"--neuron takes LAYER:NEURON, e.g. 3:17; got {spec!r}.") from None
    profiles, reports = _saved_under(path)
    if not profiles and reports:  # a report's folder: the neuron's row of each report (its page needs a profile)
        return _show_report_neuron(reports, layer, neuron, as_json)
    if not profiles:
        raise ProfileFormatError(f"No hf_txray profile or report found under {path}.")
    items = []
    for where, profile in profiles:
        report, note, tied = _report_of(where, profile, reports, profiles)
        # the summary's change clause: the report ending at this stage, as the exported cards and the viewer say it
        ending, _, _ = _report_of(where, profile, reports, profiles, side="b")
        if as_json:
            items.append((where, {**neuron_view(profile, layer, neuron, report=report, ending=ending),
                                  "note": note.strip().removeprefix("(").removesuffix(")") or None,
                                  "reports": [report_neuron_view(r, layer, neuron) for r in tied]}))
            continue
        rows = "".join("\n\n" + report_neuron_text(r, layer, neuron) for r in tied)
        print((f"== {where}\n" if len(profiles) > 1 else "") + neuron_text(profile, layer, neuron, report=report,
                                                                           ending=ending)
              + note + rows + "\n")
    if as_json:
        _print_json(items)
    return 0


def _show_report_neuron(reports: list[tuple[Path, Any]], layer: int, neuron: int, as_json: bool = False) -> int:
    """`show REPORT --neuron L:N`: the neuron's row of each report (status, credits, Hellinger, p-value), and where
    its full page is; `as_json`: the rows as one JSON document."""
    from .display import report_neuron_text, report_neuron_view
    from .options import resolve_layer

    # every report checked before any is printed: a folder's reports may hold other layers (-1 differs among them)
    blocks = [resolve_layer(report.meta.layers, layer, f"is not in the report {str(where)!r}") for where, report in
              reports]
    if as_json:
        _print_json([(where, report_neuron_view(report, block, neuron))
                     for (where, report), block in zip(reports, blocks)])
        return 0
    for (where, report), block in zip(reports, blocks):
        print((f"== {where}\n" if len(reports) > 1 else "") + report_neuron_text(report, block, neuron) + "\n")
    # the hint names the block a negative index meant (a profile of more layers counts -1 from another), when all agree
    spec = f"{blocks[0]}:{neuron}" if len(set(blocks)) == 1 else "LAYER:NEURON"
    print(f"(a report holds the neuron's change only; its preferences and examples are on its page in a profile: "
          f"hf-txray show PROFILE_FOLDER --neuron {spec})")
    return 0


def _report_of(where: Path, profile: Any, reports: list[tuple[Path, Any]],
               profiles: list[tuple[Path, Any]], side: str = "a") -> tuple[Any, str, list[Any]]:
    """The report made from `profile` (as its stage A; `side` ``"b"``: as its stage B, the report whose change the
    profile's summary sentence states, the first of several as near, as the exported ``neuron_cards`` take it), a
    note when none can be told, and the reports whose rows the note announces: two experiments may share
    stage names, model and corpus (one's change line was printed on the other's pages). A report that matches it
    is its report only when it is nearer its folder (its own results folder, else the deepest common parent) than
    any other profile it matches; the nearest such report; none when two are as near. When the reports as near are
    all this profile's alone (its stage is stage A of several, as the demo's ``pretrained-ptb`` of ``->
    zeroshot-bbc`` and ``-> finetuned-bbc``), the note says so and the list holds them (the neuron's row of each
    follows the note)."""
    def nearness(folder: Path, to: Path) -> int:
        return len(os.path.commonpath([os.path.abspath(folder), os.path.abspath(to)]))

    found, shared = [], 0
    for folder, r in reports:
        if not r.made_from(profile, side):
            continue
        mine = nearness(folder, where)
        if any(nearness(folder, w) >= mine for w, p in profiles if p is not profile and r.made_from(p, side)):
            shared += 1  # as near another profile it may have been made from: not this one's to claim
            continue
        found.append((mine, r))
    found.sort(key=lambda x: -x[0])
    if len(found) > 1 and found[0][0] == found[1][0] and not shared and side == "b":
        # several reports ending at this stage, none another experiment's: the first, as the exported neuron_cards
        # and neuron_card() choose it (the tie below left stage B's page without the card's change clause, helper 352)
        return found[0][1], "", []
    if len(found) > 1 and found[0][0] == found[1][0] and not shared:
        # one profile and its several reports (the demo's export): no other experiment to tell apart, so the old
        # note ("none is nearer ...; show one experiment's folder") sent the user to the folder already shown
        tied = [r for near, r in found if near == found[0][0]]
        return None, (f"\n(stage {profile.stage!r} is stage A of {len(tied)} reports here: "
                      f"{', '.join(r.name for r in tied)}; the neuron's row in each follows)"), tied
    if len(found) > 1 and found[0][0] == found[1][0] or not found and shared:
        return None, (f"\n(no change line: {len(found) + shared} reports under this folder may have been made from "
                      f"stage {profile.stage!r}, and none is nearer this profile's folder than another's; show one "
                      "experiment's folder)"), []
    return (found[0][1] if found else None), "", []


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="Run the embedded-default demo (pretrained PTB -> zero-shot BBC -> fine-tuned).",
                       description="Fine-tune the embedded MiniLM on BBC News topics with TXRayTrainer (its first "
                                   "snapshot is the zero-shot profile, its last the fine-tuned one), profile it on "
                                   "Penn Treebank at the same size, and write the three transfer reports and a "
                                   "Hub-ready results folder under --out (5 to 25 minutes on 2 CPU cores; --quick: "
                                   "2 to 15 minutes).")
    p.add_argument("--out", default="results/demo", help="Folder for the profiles, reports and export.")
    p.add_argument("--quick", action="store_true", help="Smaller corpora, for a fast check.")
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), quick=args.quick)
    return 0


def _add_push(sub) -> None:
    p = sub.add_parser("push", help="Push results to the Hugging Face Hub as a dataset repo.",
                       description="Push DIR to the dataset repo REPO_ID (the order of `hf upload REPO_ID DIR`): an "
                                   "export folder (hf-txray export, hf_txray.save_to_disk, or the folder a failed push "
                                   "left) as it is, else every profile and report saved under DIR (e.g. the output "
                                   "of `hf-txray demo`). The old order DIR REPO_ID still works, with a notice.")
    p.add_argument("repo_id", help="namespace/name of the dataset repo (created when missing).")
    p.add_argument("dir", help="Export folder, or a folder holding saved profiles/reports.")
    p.add_argument("--private", action="store_true", help="Create the repo private.")
    _add_token(p)
    _add_license(p, " (for saved profiles and reports: an export folder's card is pushed as it is, with a warning)")
    _add_pretty_name(p, "; for saved profiles and reports: an export folder's card is pushed as it is")
    p.add_argument("--commit-message", help="The commit message (default: 'Upload TX-Ray results' with the "
                                            "hf_txray version, and the number of profiles and reports when DIR "
                                            "holds saved ones rather than an export folder).")
    p.add_argument("--revision", help="The branch to commit to (created from the default branch when missing), e.g. "
                                      "the branch of the model the results describe (default: the default branch).")
    p.set_defaults(handler=_cmd_push)


def _push_arguments(first: str, second: str) -> tuple[str, str]:
    """(repo_id, dir): `push REPO_ID DIR`, or the pre-0.x order `push DIR REPO_ID` when only the first argument is
    an existing folder (then one FutureWarning, which also says how the arguments were read)."""
    if Path(first).is_dir() and not Path(second).is_dir():
        from .tables import shell_command  # the line as it runs when pasted: a DIR with a space is one word

        warnings.warn(f"`hf-txray push DIR REPO_ID` is deprecated: read as "
                      f"`{shell_command('hf-txray', 'push', second, first)}`; write "
                      "`hf-txray push REPO_ID DIR` (the order of `hf upload`).", FutureWarning, stacklevel=2)
        return second, first
    return first, second


def print_pushed(info: Any) -> None:
    """Print where a push went: its commit URL as :func:`~hf_txray.redaction.shown_url` shows it (helper 367: under
    ``HF_ENDPOINT=https://user:password@host`` the URL was printed with the password)."""
    print(f"pushed to {shown_url(info.commit_url)}")


def _cmd_push(args) -> int:
    from .hub import push_from_disk

    repo_id, folder = _push_arguments(args.repo_id, args.dir)
    info = push_from_disk(folder, repo_id, private=args.private, token=args.token, license=args.license,
                          pretty_name=args.pretty_name, commit_message=args.commit_message, revision=args.revision)
    print_pushed(info)
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="Turn saved profile and report folders into one results folder.",
                       description="Collect every profile and report saved under the INPUT folders (outputs of "
                                   "`hf-txray analyze` / `compare`, a trainer's txray/ folder) into OUT in the Hub "
                                   "dataset layout (parquet configs, dataset card, plots): what `hf-txray view` opens "
                                   "and `hf-txray push` uploads.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="Folders holding saved profiles and/or reports.")
    p.add_argument("--out", required=True, help="The results folder to write (new, empty, or a previous export).")
    p.add_argument("--repo-id", help="The Hub repo the card's loading examples name.")
    _add_license(p)
    _add_pretty_name(p)
    p.add_argument("--no-plots", action="store_true", help="Skip drawing the figures into OUT/plots/.")
    p.set_defaults(handler=_cmd_export)


def _cmd_export(args) -> int:
    from .artifact import check_not_an_input
    from .export import check_card_options, save_to_disk
    from .hub import saved_results
    from .tables import shell_command

    check_not_an_input(args.out, args.inputs, what="hf-txray export", cli_flag="--out")  # save_to_disk checks the rest
    check_card_options(args.repo_id, license=args.license)  # before the inputs are read
    profiles, reports = [], []
    for folder in args.inputs:
        if not Path(folder).is_dir():
            raise ConfigurationError(f"{folder} is not a folder.")
        found = saved_results(folder)
        profiles += found[0]
        reports += found[1]
    if not profiles and not reports:
        raise ConfigurationError(f"No saved profile or report (a folder written by save_pretrained, holding "
                                 f"txray_artifact.json) under {', '.join(args.inputs)}: give the folders that "
                                 "Profile.save_pretrained, TransferReport.save_pretrained or `hf-txray analyze/compare "
                                 "--out` wrote, or a folder above them.")
    out = save_to_disk(args.out, profiles=profiles, reports=reports, repo_id=args.repo_id, license=args.license,
                       pretty_name=args.pretty_name, plots=not args.no_plots)
    print(f"exported {len(profiles)} profile(s) and {len(reports)} report(s) to {out} "
          f"(open it with `{shell_command('hf-txray', 'view', out)}`)")
    return 0


def _add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="Recompute the profiles of a results repo or folder and compare.",
                       description="Download the pinned model and dataset of every profile in RESULTS (a Hub results "
                                   "repo id, an export folder, or a folder of saved profiles), rerun the analysis with "
                                   "the recorded options, device and dtype, and compare: counts exact, masses to 1e-6. "
                                   "Exit status 0 when every stage is identical, 1 when one differs.")
    p.add_argument("results", help="Hub results repo id (dataset repo) or local folder.")
    p.add_argument("--stage", help="Reproduce only this stage (default: every stage).")
    p.add_argument("--out", help="Save the recomputed profiles to OUT/<stage>/.")
    p.add_argument("--model", help="Local model folder replacing a relocated one (checked against its hash).")
    p.add_argument("--dataset", help="Data file/folder with the texts of an in-memory or relocated corpus "
                                     "(checked against the recorded hash).")
    p.add_argument("--split", help="The split of --dataset holding the texts (a saved DatasetDict or a data folder "
                                   "of several splits), for a stage that recorded none (default: the recorded "
                                   "split).")
    p.add_argument("--device", help="Default: the device each stage was computed on.")
    p.add_argument("--revision", help="Revision of the results repo (default: its main branch).")
    _add_token(p)
    p.set_defaults(handler=_cmd_reproduce)


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    result = reproduce(args.results, stage=args.stage, out=args.out, model=args.model, dataset=args.dataset,
                       device=args.device, revision=args.revision, token=args.token, split=args.split)
    print(result)
    return 0 if result.identical else 1


COMMANDS: list[Callable] = [_add_analyze, _add_compare, _add_show, _add_demo, _add_push, _add_export,
                            _add_reproduce]


# ----- pruning (issue 6) ------------------------------------------------------------------------------------------
def _amount(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"an amount is an int (count) or a float (fraction), got {value!r}") from None


def _int(minimum: int | None = None):
    """An int flag, refused below `minimum` in the words of the other options ("expected an int >= 1, got '0'")."""
    from .options import argparse_type, int_at_least, parse_int

    return argparse_type(parse_int if minimum is None else int_at_least(minimum))


def _port(value: str) -> int:
    """A TCP port, 0 to 65535 (99999 failed in the socket's bind with a traceback: helper 168)."""
    port = _int(0)(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return port


def _csv(kind):
    from .options import split_csv

    def parse(value: str):
        try:
            items = split_csv(value)  # an empty item is a typo, not a shorter list
        except ConfigurationError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        try:
            return [kind(v) for v in items]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {value!r}") from None

    return parse


def _load_ranking_source(path: str):
    from . import Profile, TransferReport
    from .errors import ProfileFormatError

    from .artifact import artifact_type_of

    kind = artifact_type_of(path) if Path(path).is_dir() else None
    for cls in (TransferReport, Profile):
        if kind == cls.artifact_type:
            return cls.from_pretrained(path)
    raise ProfileFormatError(f"{path} is neither a saved hf_txray report nor a saved profile.")


def _add_pruning_options(p) -> None:
    p.add_argument("--mode", default="mask", choices=["mask", "remove"],
                   help="mask: zero the neurons with hooks (reversible); remove: slice the MLP weights.")
    p.add_argument("--overall", action="store_true", help="Rank all layers together instead of AMOUNT per layer.")
    p.add_argument("--layers", type=_layers, help="Layers to prune: 'all', indices and ranges such as 0-3,7,-1 "
                                                  "(negative: from the model's last block; default: all).")
    p.add_argument("--feature-type", help="Feature type of the Hellinger distance (most/least_changed; default: the "
                                          "report's first feature type).")
    p.add_argument("--stage", default="b", choices=["a", "b"], help="Which stage's mass low_mass ranks by.")
    p.add_argument("--min-count", type=_int(0), default=None,
                   help="most/least_changed rank only shared neurons credited at least this many times in both "
                        "stages (default: hf_txray.DEFAULT_MIN_COUNT, as compare).")
    p.add_argument("--allow-fewer", action="store_true", help="Take all candidates when a strategy has too few.")
    p.add_argument("--uneven", default="error", choices=["error", "zero"],
                   help="remove mode with different counts per layer: fail, or remove the common count and zero "
                        "the rest.")


def _min_count(args) -> dict:
    """``--min-count`` as a keyword, when given (the library's default otherwise)."""
    return {} if args.min_count is None else {"min_count": args.min_count}


def _add_prune(sub) -> None:
    p = sub.add_parser("prune", help="Prune MLP neurons chosen from a TX-Ray report (or profile).",
                       description="Choose neurons of MODEL from REPORT (a saved report or profile) and write the plan "
                                   "to OUT; with --mode remove also the smaller model (save_pretrained).")
    p.add_argument("model", help="Model folder or Hub id (loaded with the class in its config).")
    p.add_argument("report", help="Saved transfer report (or profile) folder.")
    p.add_argument("--strategy", default="lost",
                   help="lost, gained, most_changed, least_changed, low_mass or random.")
    p.add_argument("--amount", type=_amount, default=0.1, help="Count (int) or fraction (float) per layer.")
    p.add_argument("--seed", type=_int(), default=0, help="Seed of the random strategy.")
    p.add_argument("--out", required=True, help="Folder for the plan (and the pruned model in remove mode).")
    _add_pruning_options(p)
    p.set_defaults(handler=_cmd_prune)


def _cmd_prune(args) -> int:
    from .pruning import load_pretrained_with_head, plan_pruning, prune

    from .artifact import check_not_an_input

    # the pruned model (remove mode) and pruning_plan/ go into OUT itself: OUT may not be the model or the report
    # read, nor a folder of other files or another saved artifact (a later save there would delete the model)
    check_not_an_input(args.out, (args.report, args.model), what="hf-txray prune", cli_flag="--out")
    _check_prune_out(Path(args.out), args.mode)
    source = _load_ranking_source(args.report)  # read first: a bad report path is said before the model loads
    # and the plan, which needs only the report: a misspelt strategy (helper 180), a bad amount, too few candidates
    # without --allow-fewer, or a min_count no neuron reaches were said once the model had loaded
    options = dict(mode=args.mode, per_layer=not args.overall, allow_fewer=args.allow_fewer, layers=args.layers,
                   feature_type=args.feature_type, stage=args.stage, **_min_count(args))
    plan_pruning(source, args.strategy, args.amount, seed=args.seed, **options)
    model = load_pretrained_with_head(args.model)
    model, plan = prune(model, source, strategy=args.strategy, amount=args.amount, seed=args.seed,
                        uneven=args.uneven, **options)
    out = Path(args.out)
    if args.mode == "remove":
        plan_path = _write_pruned_model(out, model, args.model, plan)
    else:
        plan_path = plan.save_pretrained(out / "pruning_plan")
    # the planned layers and their width (the share's denominator, PruningPlan.fraction), then where the pruned neurons
    # lie: "10 neurons (0.1%) in layers [0, 1, 2, 3, 4, 5]" read as pruning layer 1 too, where an --overall plan of
    # MiniLM's 10 most changed neurons held none (helper 408)
    width = sum(plan.widths.get(layer, 0) for layer in plan.neurons)
    held = {layer: count for layer, count in sorted(plan.counts.items()) if count}
    print(f"{plan.name} (layers {sorted(plan.neurons)}, {width} neurons): {plan.size}; pruned per layer {held}; "
          f"plan: {plan_path}")
    if args.mode == "remove":
        print(f"pruned model saved to {out} (reload with transformers' Auto classes)")
    else:
        print("mask mode: apply the plan with hf_txray.pruning.apply_plan(model, PruningPlan.from_pretrained(...))")
    return 0


def _write_pruned_model(out: Path, model: Any, model_source: str, plan: Any) -> Path:
    """Write the pruned `model`, the tokenizer of `model_source` (when it has one) and `plan` (under
    ``pruning_plan/``) to `out` as a whole (:func:`~hf_txray.io_utils.atomic_dir`), replacing an earlier prune's
    output; returns the plan's folder. A write that fails (a full disk) leaves the earlier output as it was: written in
    place, the new model went over the earlier one before its plan was written, and a failed plan write left the new
    model beside the earlier plan, which loaded as its plan (helper 324)."""
    from transformers import AutoTokenizer

    from .io_utils import atomic_dir
    from .loading import load_tokenizer

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        try:
            load_tokenizer(AutoTokenizer, model_source, None, False, None).save_pretrained(tmp)
        except Exception:  # a model without a tokenizer (or with an empty one) still saves
            pass
        plan.save_pretrained(tmp / "pruning_plan")
    return out / "pruning_plan"


def _check_prune_out(out: Path, mode: str = "mask") -> None:
    """Refuse an `hf-txray prune --out` folder that is neither new, empty, nor an earlier prune's output, and a
    `mode` "mask" run into an earlier "remove" run's output, whose pruned model this run would not replace."""
    from .artifact import artifact_type_of, check_save_target
    from .io_utils import check_writable

    earlier = artifact_type_of(out / "pruning_plan") == "pruning_plan" and artifact_type_of(out) is None
    if out.is_dir() and any(out.iterdir()) and not earlier:
        held = artifact_type_of(out)
        raise ConfigurationError(
            f"{out} " + (f"holds a saved {held.replace('_', ' ')}" if held else "is not empty") + ": hf-txray prune "
            "writes the pruned model (--mode remove) and pruning_plan/ into --out, so it must be a new or empty "
            "folder, or an earlier prune's output: give another folder (CLI: --out).")
    if earlier and mode != "remove" and (out / "config.json").is_file():
        # helper 196: the earlier run's model (its neurons removed) stayed beside this run's plan, which does not say
        # what was removed from it (pruning_plan.json is what the README calls "exactly what was pruned, and why")
        raise ConfigurationError(
            f"{out} holds the pruned model of an earlier --mode remove run; this --mode {mode} run writes only "
            "pruning_plan/, which would replace that model's plan and leave the model beside a plan it does not "
            "match: give another folder (CLI: --out), or delete that one first.")
    check_save_target(out / "pruning_plan", what="hf-txray prune", cli_flag="--out", artifact_type="pruning_plan")
    if mode == "remove":
        others = _not_prune_output(out) if earlier else []
        if others:  # helper 332: the swap deleted a user's notes.txt kept beside an earlier --mode mask run's plan
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise ConfigurationError(
                f"{out} holds an earlier prune's output and other files ({shown}); hf-txray prune --mode remove "
                "replaces the whole folder, which would delete them: move them out, or give another folder (CLI: "
                "--out).")
        check_writable(out)  # written aside, then swapped in (_write_pruned_model)


# What a saved model and tokenizer hold beside provenance.MODEL_FILE_PATTERNS (files that change no computation)
SAVED_MODEL_EXTRAS = ("generation_config.json", "chat_template.jinja", "chat_template.json")


def _not_prune_output(out: Path) -> list[str]:
    """The entries of an earlier prune's output `out` that no prune wrote there: anything but ``pruning_plan/`` and a
    saved model's and tokenizer's files (hidden entries left out, as :func:`~hf_txray.artifact.check_save_target`
    leaves them). A tokenizer's files are those its class saves (:func:`~hf_txray.loading.saved_tokenizer_files`):
    Marian's ``source.spm`` and ``target.spm`` were refused as a user's own (helper 344)."""
    from .loading import saved_tokenizer_files
    from .provenance import is_model_file

    saved = set(SAVED_MODEL_EXTRAS) | saved_tokenizer_files(out)
    return [entry.name + ("/" if entry.is_dir() else "") for entry in sorted(out.iterdir())
            if not entry.name.startswith(".") and entry.name != "pruning_plan"
            and not (entry.is_file() and (is_model_file(entry.name) or entry.name in saved))]


SWEEP_FILES = ("results.csv", "summary.csv", "results.md")  # what prune-sweep writes, beside plans/ and <metric>.png


def _is_sweep_output(out: Path) -> bool:
    """Whether `out` holds an earlier prune-sweep's output and nothing else (its tables, plots and saved plans)."""
    from .artifact import artifact_type_of

    entries = list(out.iterdir())
    plans = out / "plans"
    return ((out / "results.csv").is_file()
            and all(p.name in SWEEP_FILES or (p.name.endswith(".png") and p.is_file()) or p == plans for p in entries)
            and (not plans.exists() or (plans.is_dir() and all(artifact_type_of(p) == "pruning_plan"
                                                                 for p in plans.iterdir()))))


def _check_sweep_out(out: Path) -> None:
    """Refuse an `hf-txray prune-sweep --out` folder that is neither new, empty, nor an earlier sweep's output."""
    from .io_utils import check_not_working_directory

    check_not_working_directory(out)
    if out.is_file():
        raise ConfigurationError(f"{out} is a file; hf-txray prune-sweep writes a folder: give a new folder "
                                 "(CLI: --out).")
    if out.is_dir() and any(out.iterdir()) and not _is_sweep_output(out):
        raise ConfigurationError(
            f"{out} is not empty and not an earlier prune-sweep's output: hf-txray prune-sweep writes results.csv, "
            "summary.csv, results.md, plots and plans/ there, replacing an earlier sweep's; give a new or empty "
            "folder (CLI: --out).")


def _write_sweep(out: Path, plans: list, table: Any, summary: Any) -> None:
    """Write a prune-sweep's plans, tables and plots to `out` as a whole (:func:`~hf_txray.io_utils.atomic_dir`),
    replacing an earlier sweep's output (checked by :func:`_check_sweep_out`), whose plans and plots would otherwise
    stay beside the new results as if they belonged to them. A write that fails (a full disk) leaves the earlier
    sweep as it was: written in place, the earlier files were removed first and the new ones written one by one, so
    the folder was left half new, read back as a whole sweep (helper 324)."""
    from .io_utils import atomic_dir
    from .plots import plot_sweep, save_figure
    from .tables import markdown_table

    with atomic_dir(out) as tmp:
        for index, plan in enumerate(plans):
            plan.save_pretrained(tmp / "plans" / f"{index:03d}")
        table.to_csv(tmp / "results.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        (tmp / "results.md").write_text(markdown_table(summary, ".4f") + "\n\n" + markdown_table(table, ".4f")
                                        + "\n", encoding="utf-8")
        for metric in table.attrs["metrics"]:
            if metric in table.columns:
                save_figure(plot_sweep(table, metric), tmp / f"{metric}.png", dpi=120)


def _add_prune_sweep(sub) -> None:
    p = sub.add_parser("prune-sweep", help="Evaluate strategies x amounts x seeds of pruning (table and plot).",
                       description="Evaluate MODEL unpruned and pruned by every strategy, amount and seed (random "
                                   "once per seed) on DATASET with hf_txray's offline evaluate metrics.")
    p.add_argument("model", help="Model folder or Hub id (a sequence classifier or a causal LM).")
    p.add_argument("report", help="Saved transfer report (or profile) folder.")
    p.add_argument("dataset", help="Dataset folder/file/Hub id, or txray:bbc / txray:ptb / txray:ptb-valid.")
    p.add_argument("--strategies", type=_csv(str),
                   default=["lost", "gained", "most_changed", "least_changed", "low_mass", "random"],
                   help="Comma-separated strategies (default: all six).")
    p.add_argument("--amounts", type=_csv(_amount), default=[0.05, 0.1, 0.2],
                   help="Comma-separated amounts: counts (int) or fractions (float) per layer.")
    p.add_argument("--seeds", type=_csv(int), default=[0, 1, 2], help="Comma-separated seeds of the random strategy.")
    p.add_argument("--out", required=True, help="Folder for results.csv, results.md, summary and plots: new, empty, "
                                                "or an earlier sweep's output (replaced).")
    p.add_argument("--metric", type=_csv(str), help="Comma-separated metrics (default by task); f1, precision and "
                                                    "recall average over classes (macro).")
    p.add_argument("--task", choices=["classification", "causal-lm"], help="The task (default: from the model).")
    _add_data_columns(p, "label")
    p.add_argument("--num-samples", type=_int(1), help="Evaluate on the first N rows only (default: all rows).")
    _add_forward_options(p)
    _add_pruning_options(p)
    p.set_defaults(handler=_cmd_prune_sweep)


def _cmd_prune_sweep(args) -> int:
    from transformers import AutoTokenizer

    from .evaluation import evaluate_pruning, summarize, sweep_plans
    from .tables import markdown_table
    from .loading import load_named_dataset, load_tokenizer, pick_split
    from .io_utils import check_writable
    from .pruning import load_pretrained_with_head

    from .artifact import check_not_an_input

    # results go into OUT beside nothing else: not an input (the report), not a folder of other files; an earlier
    # sweep's output is replaced, so none of its plans or plots is left beside the new results
    check_not_an_input(args.out, (args.report, args.model), what="hf-txray prune-sweep", cli_flag="--out",
                       read_whole=(args.dataset,))
    _check_sweep_out(Path(args.out))
    check_writable(args.out)  # before the whole sweep, not after it (written aside, then swapped in)
    # the plans need only the report: a bad strategy, amount or --allow-fewer is said before the model loads
    plans = sweep_plans(_load_ranking_source(args.report), args.strategies, args.amounts, args.seeds, mode=args.mode,
                        per_layer=not args.overall, allow_fewer=args.allow_fewer, layers=args.layers,
                        feature_type=args.feature_type, stage=args.stage, **_min_count(args))
    model = load_pretrained_with_head(args.model)
    tokenizer = load_tokenizer(AutoTokenizer, args.model, None, False, None)  # one without a vocabulary is refused
    dataset = _resolve_dataset(args.dataset, args.num_samples)
    if isinstance(dataset, str):
        import datasets

        dataset = load_named_dataset(dataset, args.split)
        if isinstance(dataset, datasets.DatasetDict):
            dataset = pick_split(dataset, args.split)
        if args.num_samples:
            dataset = dataset.select(range(min(args.num_samples, len(dataset))))
    table = evaluate_pruning(model, plans, dataset, args.metric, tokenizer=tokenizer,
                             task=args.task, text_column=args.text_column, label_column=args.label_column,
                             batch_size=args.batch_size, max_length=args.max_length, uneven=args.uneven)
    out, summary = Path(args.out), summarize(table)
    _write_sweep(out, plans, table, summary)
    print(markdown_table(summary, ".4f"))
    print(f"\nsaved to {out}")
    return 0


COMMANDS.extend([_add_prune, _add_prune_sweep])


# ----- the viewer (issue 5) ---------------------------------------------------------------------------------------
def _add_view(sub) -> None:
    p = sub.add_parser("view", help="Browse results in the Gradio viewer (the Space app), locally.",
                       description="Launch the viewer (hf_txray.viewer, the app of the Space) on DIR_OR_REPO: a "
                                   "results folder written by hf_txray.save_to_disk (or a failed push), a Hub results "
                                   "dataset repo id, or the profile and report folders that analyze, compare and the "
                                   "Trainer write (several open together).")
    p.add_argument("source", metavar="DIR_OR_REPO", nargs="+",
                   help="Results folder, Hub dataset repo id (owner/name@revision for a branch, tag or commit), or "
                        "profile / report folders (or a folder holding them).")
    p.add_argument("--port", type=_port, help="Port to serve on (default: 7860 or the next free one).")
    p.add_argument("--host", default="127.0.0.1", help="Address to bind (0.0.0.0 to share on your network).")
    p.add_argument("--model", metavar="MODEL_PATH", help="The profiled model (path or Hub id): enables attribution of "
                                                          "a neuron's top examples in the Neuron tab (needs captum).")
    p.set_defaults(handler=_cmd_view)


def _cmd_view(args) -> int:
    from .viewer import launch_viewer

    launch_viewer(args.source, port=args.port, host=args.host, model=args.model)
    return 0


COMMANDS.append(_add_view)


# ----- probing and ablation (issue 7) -----------------------------------------------------------------------------
def _add_results_outputs(p, config: str) -> None:
    """--export RESULTS_DIR and --push-to-hub REPO_ID: where the `config` table of probe / ablate also goes."""
    p.add_argument("--export", metavar="RESULTS_DIR", help=f"Also add the {config} config to this results folder.")
    _add_push_to_hub(p, f"add the {config} config to")
    p.add_argument("--token", help="Hub token for the --push-to-hub upload (default: HF_TOKEN, then the saved "
                                   "`hf auth login`).")


def _check_push(args) -> None:
    """--push-to-hub REPO_ID: the repo id and the token, checked before the work rather than after it."""
    if getattr(args, "push_to_hub", None):
        from .hub_io import check_repo_id, resolve_token

        check_repo_id(args.push_to_hub)
        resolve_token(args.token)


def _check_export(args) -> None:
    """--export RESULTS_DIR and --push-to-hub REPO_ID, refused before the work when they could not be written."""
    _check_push(args)
    if args.export:
        from .io_utils import check_writable
        from .probing.results import check_results_folder

        check_results_folder(args.export)  # a folder of other files: said before the work, not after it
        check_writable(Path(args.export) / "config", shown=args.export)


def _add_to_results(args, config: str, **tables) -> None:
    """Add the `config` table (``probes=[...]`` or ``ablations=[...]``) to --export and --push-to-hub."""
    from .probing.results import push_probing, save_probing

    if args.export:
        save_probing(args.export, **tables)
        print(f"added {config} to {args.export}")
    if args.push_to_hub:
        info = push_probing(args.push_to_hub, **tables, private=args.hub_private, token=args.token)
        print_pushed(info)


def _add_probe(sub) -> None:
    p = sub.add_parser("probe", help="Rank neurons for a linguistic property with an elastic-net probe.",
                       description="Extract word activations of MODEL on DATA (a .conllu file with gold labels, texts "
                                   "to tag with spaCy, or txray:ptb / txray:bbc), train a probe for --property, rank "
                                   "the neurons, run the control task, and save the result to OUT.")
    p.add_argument("model", help="Hub id or local path.")
    p.add_argument("data", help=".conllu file, text file/dataset (tagged with spaCy), or txray:ptb / txray:bbc.")
    p.add_argument("--property", default="pos", help="pos, dep, ner, xpos, or a user label column (default: pos).")
    p.add_argument("--out", required=True, help="Folder to write the probing result to.")
    p.add_argument("--layers", type=_layers, default="all", help="'all', or block indices and ranges such as "
                                                                 "0-3,7,-1.")
    p.add_argument("--site", default="mlp", choices=["mlp", "residual"],
                   help="Neuron site: mlp (MLP intermediate neurons) or residual (block output).")
    p.add_argument("--aggregation", default="first", choices=["first", "last", "mean"],
                   help="How a word's subword activations become one vector.")
    p.add_argument("--stack", choices=["encoder", "decoder"],
                   help="Encoder-decoder models (T5, BART...): read the encoder (the default) or the decoder (teacher "
                        "forcing on the text itself: decoder position j+1 is fed token j and gives its vector).")
    p.add_argument("--max-sentences", "--num-samples", type=_int(1),
                   help="Use only the first sentences/texts (default: all). --num-samples is the same, as in analyze.")
    p.add_argument("--test-size", type=float, default=0.2, help="Share of sentences held out (a repeated sentence goes whole to one side).")
    p.add_argument("--seed", type=_int(), default=0, help="Seed of the split and the probe's training.")
    p.add_argument("--l1", type=float, default=1e-3, help="L1 weight of the elastic-net probe.")
    p.add_argument("--l2", type=float, default=1e-3, help="L2 weight of the elastic-net probe.")
    p.add_argument("--solver", default="adam", choices=["adam", "saga"],
                   help="adam: NeuroX's training (Adam, mini-batches; the default, comparable with NeuroX); saga: the "
                        "elastic net's exact optimum by scikit-learn (the ranking to trust; --epochs, --lr and "
                        "--probe-batch-size do not apply).")
    p.add_argument("--tol", type=float, default=1e-4, help="saga's stopping tolerance.")
    p.add_argument("--max-iter", type=_int(1), default=5000, help="saga's most passes over the training words.")
    p.add_argument("--epochs", type=_int(1), default=10, help="Probe training epochs.")
    p.add_argument("--lr", type=float, default=1e-3, help="Probe learning rate.")
    p.add_argument("--probe-batch-size", type=_int(1), default=32, help="Words per probe training step.")
    _add_forward_options(p)
    p.add_argument("--no-control", action="store_true", help="Skip the control task (no selectivity).")
    p.add_argument("--no-minimal", action="store_true", help="Skip the minimal neuron set search.")
    p.add_argument("--target-share", type=float, default=0.9, help="Accuracy share the minimal set must reach.")
    p.add_argument("--subset-size", type=_int(0), help="Size of the top/random/bottom subsets, 0 skips them (default: "
                                                   "the minimal set's size, else 1%% of the neurons).")
    p.add_argument("--device", help="cpu, cuda, cuda:1... (default: CUDA when available, else CPU).")
    p.add_argument("--name", help="Name of the run in exported tables (default: the property).")
    _add_results_outputs(p, "probe_rankings")
    p.set_defaults(handler=_cmd_probe)


def _cmd_probe(args) -> int:
    from .probing import ProbeConfig, ProbingResult, probe_neurons

    _check_out(args.out, "probe", "probing_result", read_whole=(args.data,))
    ProbingResult.check_replaceable(args.out, what="hf-txray probe", cli_flag="--out")  # rows exported into it
    _check_export(args)
    config = ProbeConfig(l1=args.l1, l2=args.l2, epochs=args.epochs, lr=args.lr, batch_size=args.probe_batch_size,
                         seed=args.seed, solver=args.solver, tol=args.tol, max_iter=args.max_iter).validate()
    data = _resolve_dataset(args.data, args.max_sentences)
    result = probe_neurons(args.model, data, args.property, layers=args.layers, site=args.site,
                           aggregation=args.aggregation, stack=args.stack, max_sentences=args.max_sentences,
                           test_size=args.test_size, seed=args.seed, config=config, control=not args.no_control,
                           minimal=not args.no_minimal, target_share=args.target_share, subset_size=args.subset_size,
                           batch_size=args.batch_size, max_length=args.max_length, device=args.device, name=args.name,
                           show_progress=True)
    result.save_pretrained(args.out)
    print(f"{result}\n\ntop neurons:\n{result.top_neurons(10).to_string(index=False)}\n\nsaved to {args.out}")
    _add_to_results(args, "probe_rankings", probes=[result])
    return 0


def _add_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="Ablate a probe's top neurons vs random ones and measure a metric (a curve).",
                       description="Ablate the top-k neurons of the probe saved in PROBE (hf-txray probe --out) and k "
                                   "random neurons for each k, measuring --metric on DATA; save the curve to OUT.")
    p.add_argument("model", help="Hub id or local path (loaded with the class in its config, heads kept).")
    p.add_argument("probe", help="Folder of a saved probing result (hf-txray probe --out).")
    p.add_argument("data", help="Labelled data for --metric probe (as for hf-txray probe), else a dataset/texts.")
    p.add_argument("--out", required=True, help="Folder to write the ablation curve (and its plot) to.")
    p.add_argument("--metric", default="probe",
                   help="probe (the probe's accuracy), lm-loss (causal LMs), or accuracy/f1/perplexity of the task "
                        "(f1: macro, averaged over classes).")
    p.add_argument("--counts", type=_csv(int), default=[1, 2, 5, 10, 20, 50],
                   help="Numbers of neurons to ablate, each at least 1 (the baseline, none ablated, is always "
                        "measured); counts above the probe's ranked neurons are clipped to them, with a warning.")
    p.add_argument("--mode", default="zero", choices=["zero", "mean"],
                   help="zero: set the neurons to 0; mean: to their mean activation on DATA.")
    p.add_argument("--seeds", type=_csv(int), default=[0, 1, 2], help="One random curve per seed.")
    p.add_argument("--bottom", action="store_true", help="Also ablate the lowest-ranked neurons.")
    p.add_argument("--held-out", action="store_true",
                   help="--metric probe: score only the sentences of DATA the probe was not trained on (on its "
                        "training sentences its accuracy reads too high; without this, a warning says how many DATA "
                        "holds).")
    p.add_argument("--max-sentences", "--num-samples", type=_int(1),
                   help="Use only the first sentences/rows of DATA (default: all). --num-samples is the same, as in "
                        "analyze.")
    _add_data_columns(p, "label")  # the task metrics read "label" when none is given
    _add_forward_options(p, "Truncate texts to this many tokens (default: for --metric probe and the task metrics, "
                            "the model's limit, at most 512; for lm-loss 128, or the model's limit when shorter). "
                            "The neuron means of --mode mean are read at the metric's truncation, on the tokens it "
                            "scores.")
    p.add_argument("--name", help="Name of the curve in exported tables (default: ablation-<probe name>).")
    _add_results_outputs(p, "ablation")
    p.set_defaults(handler=_cmd_ablate)


def _cmd_ablate(args) -> int:
    from transformers import AutoTokenizer

    from .loading import load_tokenizer
    from .probing import AblationCurve, ProbingResult, ablation_curve, neuron_means
    from .probing.ablation import (ablation_counts, check_metric_model, check_metric_name, check_scored_model,
                                   means_max_length, metric_from_name)
    from .plots import save_figure
    from .pruning import load_pretrained_with_head

    _check_out(args.out, "ablate", "ablation_curve", inputs=(args.probe,))
    AblationCurve.check_replaceable(args.out, what="hf-txray ablate", cli_flag="--out")  # rows exported into it
    _check_export(args)
    check_metric_name(args.metric)  # before the probe, the model and the data are read
    ablation_counts(args.counts, None)
    result = ProbingResult.from_pretrained(args.probe)
    # the probe reads the body's activations: a checkpoint without its task head's weights is fine there
    model = load_pretrained_with_head(args.model, head_used=args.metric != "probe").eval()
    check_metric_model(args.metric, model)  # lm-loss on a BERT: said before DATA is read (a .conllu is no text file)
    tokenizer = load_tokenizer(AutoTokenizer, args.model, None, False, None)  # one without a vocabulary is refused
    metric = metric_from_name(args.metric, tokenizer, _resolve_dataset(args.data, args.max_sentences), probe=result,
                              max_sentences=args.max_sentences, text_column=args.text_column,
                              label_column=args.label_column, split=args.split, batch_size=args.batch_size,
                              max_length=args.max_length, held_out=args.held_out)
    check_scored_model(metric, model)  # a model the metric cannot score: refused before the neuron means' pass
    # the means of the tokens the metric reads: at its truncation (lm-loss: 128 tokens by default, where the means
    # were read up to the model's limit, 512, averaging positions the loss never reads)
    means = (neuron_means(model, metric.texts(model), tokenizer, layers=list(result.meta.layers),
                          batch_size=args.batch_size, max_length=means_max_length(metric, model, args.max_length))
             if args.mode == "mean" else None)
    curve = ablation_curve(model, result, metric, counts=args.counts, mode=args.mode, means=means, seeds=args.seeds,
                           bottom=args.bottom, name=args.name or f"ablation-{result.meta.name}")
    curve.save_pretrained(args.out)
    save_figure(curve.plot(), Path(args.out) / "ablation.png", dpi=120)
    print(curve.summary().to_string(index=False))
    print(f"\nsaved to {args.out}")
    _add_to_results(args, "ablation", ablations=[curve])
    return 0


COMMANDS.extend([_add_probe, _add_ablate])


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that states an option's default when its text does not already say it (the profiling options say it
    from their declaration; the other commands' options would otherwise leave it unsaid)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default is None
                or default is argparse.SUPPRESS or isinstance(default, bool)):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def _masked_flag_values(arguments: str) -> str:
    """`arguments` (argparse's unrecognized ones, joined by spaces) with the value typed after or with each option
    that takes a secret (:func:`~hf_txray.redaction.is_secret_flag`: ``--token VALUE``, ``--tokn=...``, ``--api-key
    ...``) masked, however short; an ordinary option's (``--tokenizer-name=gpt2``) kept."""
    def mask(found: re.Match) -> str:
        return f"{found[1]}{found[2]}***" if is_secret_flag(found[1]) else found[0]

    return re.sub(r"(--[\w-]+)(=| )(?!-)\S+", mask, arguments)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        # an option is its whole name: argparse's prefix matching read "analyze --layer 3" as --layers 3 and
        # "--max 5" as whichever --max-* option was the only one, silently; an unknown option is named instead, with
        # the closest ones (_parse). Every parser here, subcommands included, is a _Parser.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # a word that starts with a minus and a digit is a value, as argparse takes "-1" (no option of ours is
        # "-<digit>"): "--neuron -1:5" and "--layers -2,-1" were "expected one argument" (newer Pythons' own rule)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str):
        # argparse repeats what it did not understand ("unrecognized arguments: --token hf_..."): mask there what
        # hf_txray's errors mask (redaction.redact: Hub tokens, a stray URL's password or ?token= value) and the value
        # of any secret-like flag (--token VALUE, --tokn=..., --api-key ...), however short. A looser rule of its own
        # ("hf_" and 8 letters, no word end) showed the name hf_transformers_cache as hf_***_cache (helper 367); a token
        # cut short (hf_ and 8 to 29 letters of mixed case or with digits) is masked, a name (hf_transformers) is not.
        message = redact_typed(message)
        head, found, rest = message.partition("unrecognized arguments: ")
        if found:  # the arguments themselves, up to argparse's suggestions in parentheses
            given, paren, hint = rest.partition(" (")
            message = head + found + _masked_flag_values(given) + paren + hint
        # one usage line, not argparse's whole block (33 lines for analyze) above the message that matters
        listed = "commands" if self._subparsers is not None else "options"
        self.exit(2, f"usage: {self._short_usage()} (`{self.prog} --help` lists the {listed})\n"
                     f"{self.prog}: error: {message}\n")

    def _short_usage(self) -> str:
        """``hf-txray compare [options] a b``: the positional arguments, the options left to --help."""
        words = [self.prog, "COMMAND" if self._subparsers is not None else "", "[options]"]
        for action in self._positionals._group_actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            name = action.metavar or action.dest
            words.append({"?": f"[{name}]", "+": f"{name} [{name} ...]", "*": f"[{name} ...]"}.get(action.nargs, name))
        return " ".join(word for word in words if word)


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = _Parser(prog="hf-txray", description="TX-Ray neuron analysis for Hugging Face models.")
    parser.add_argument("-V", "--version", action="version", version=f"hf-txray {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _warning_line(command: str):
    """A ``warnings.showwarning`` printing hf_txray's own warnings as one line (a user of the command line needs
    the notice, not our file path and source line); other libraries' warnings keep their location."""
    package = str(Path(__file__).parent)
    # hf_txray attributes its warnings to the first frame outside the package (logging.warn_caller): under the
    # console script that is the script itself ("hf-txray:6 ... sys.exit(main())"), which is ours too, and under
    # `python -m hf_txray` (`torchrun -m hf_txray.cli`, `accelerate launch -m ...`) Python's runpy, which ran ours
    # (helper 385: "<frozen runpy>:88: UserWarning: ..." without the command's name)
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        ours = str(filename).startswith(package) or os.path.abspath(str(filename)) == script
        if not ours and not _is_runpy(str(filename)):
            return default(message, category, filename, lineno, file, line)
        print(redact_typed(f"hf-txray {command}: {category.__name__}: {message}"), file=file or sys.stderr)

    return show


def _is_runpy(filename: str) -> bool:
    """Whether `filename` is Python's ``runpy`` module (``<frozen runpy>`` where the standard library is frozen), which
    runs ``python -m hf_txray``: a frame of it is the command's entry point, not a user's code."""
    return filename == "<frozen runpy>" or Path(filename).name == "runpy.py"


def _interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves behind, and how to go on: a checkpoint folder is resumable with ``--resume``."""
    message = f"hf-txray {args.command}: interrupted."
    folder = Path(args.out) / "_checkpoint" if args.command == "analyze" and getattr(args, "out", None) else None
    if folder is not None and folder.is_dir() and any(folder.iterdir()):
        message += (f" The checkpoints in {folder} are kept: run the same command with --resume to continue from the "
                    "last one.")
    return message


def _close_process_group(barrier: bool = True) -> None:
    """:func:`hf_txray.distributed.close_process_group`, when a command imported torch.distributed (only then can a
    process group exist): `--help` and the light commands never import torch. After Ctrl-C while torch itself was
    importing, ``torch.distributed`` is loaded but ``torch`` is not (a failed import leaves ``sys.modules``): no group
    can exist, and importing hf_txray.distributed ran torch's ``__init__`` a second time over the half-registered one
    ("RuntimeError: duplicate registrations", a traceback and exit status 1, helper 385)."""
    if "torch.distributed" in sys.modules and "torch" in sys.modules:
        try:
            from .distributed import close_process_group
        except (ImportError, AttributeError):  # Ctrl-C while torch was importing: half a module, and no group yet
            return
        close_process_group(barrier=barrier)


def _check_command(parser: argparse.ArgumentParser, commands: dict, argv: Sequence[str]) -> None:
    """Refuse a misspelt command with the closest one: its flags were reported instead (``hf-txray analize --model
    x``: "unrecognized arguments: --model"). The top level takes no option with a value, so its first word that is
    not an option is the command."""
    word = next((token for token in argv if not token.startswith("-")), None)
    if word is None or word in commands:
        return
    close = difflib.get_close_matches(word.strip().lower(), list(commands), n=1)  # ANALYZE: caps lock, a pasted space
    hint = f"did you mean {close[0]!r}? " if close else ""
    parser.error(f"unknown command {word!r} ({hint}the commands: {', '.join(commands)})")


def _check_before_command(parser: argparse.ArgumentParser, head: Sequence[str]) -> None:
    """Refuse what comes before the command other than the top level's options (``--help``, ``--version`` and
    their short forms): ``hf-txray -- analyze ...`` read "--" as the command ("invalid choice: '--'"), and an
    unknown short flag (``-x``) was reported as a missing command.

    Raises:
        SystemExit: through `parser.error` (the short usage and the message, exit status 2).
    """
    top = [o for action in parser._actions for o in action.option_strings]
    for token in head:
        if token == "--":
            parser.error("'--' before the command: write the command first (hf-txray analyze MODEL CORPUS ...); a "
                         "'--' goes after it, before values that start with a dash")
        if token.startswith("-") and token not in top:
            # a prefix of one (--vers) is refused too, as after a command (allow_abbrev=False): name the option
            close = [o for o in top if o.startswith("--") and o.startswith(token)] if token.startswith("--") else []
            hint = f" (did you mean {close[0]}?)" if close else ""
            parser.error(f"unknown option {token!r}{hint} before the command: only -h/--help and -V/--version go "
                         "there; a command's options go after it (hf-txray COMMAND --help lists them)")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parser.parse_args`, but an unknown option is reported by its command's parser (its usage, not the top
    level's) with the closest options it has (``--max-lenght``: did you mean --max-length?), before argparse would
    report a required option as missing (``--outt x`` named only ``--out``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices
    first = next((i for i, token in enumerate(argv) if not token.startswith("-")), len(argv))
    _check_before_command(parser, argv[:first])
    _check_command(parser, commands, argv)
    at = next((i for i, token in enumerate(argv) if token in commands), None)
    command = parser if at is None else commands[argv[at]]
    known = [o for action in command._actions for o in action.option_strings if o.startswith("--")]
    rest = argv[(at if at is not None else -1) + 1:]
    rest = rest[:rest.index("--")] if "--" in rest else rest  # after "--" every token is a value (a folder "--x")
    unknown = [token for token in rest if token.startswith("--") and token.split("=", 1)[0] not in known]
    if unknown:
        dashed = {o.replace("_", "-"): None for o in known}  # --max_length is --max-length's alias: one suggestion
        # the options a prefix begins (--batch: --batch-size, which allow_abbrev=False no longer reads it as), else
        # the closest spellings
        flags = [token.split("=", 1)[0] for token in unknown]
        hints = [_positional_hint(command, flag) or f"{flag}: did you mean {' or '.join(close)}?"
                 for flag, dash in ((f, f.replace("_", "-")) for f in flags)
                 for close in [[o for o in dashed if o.startswith(dash)][:2]
                               or difflib.get_close_matches(dash, list(dashed), n=2, cutoff=0.75)]
                 if close or _positional_hint(command, flag)]
        command.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else ""))
    _refuse_unknown_short_options(command, rest)
    _refuse_repeated_options(command, rest)
    _refuse_list_values_split_by_spaces(command, rest)
    return _parse_command_line(parser, argv)


def _parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """`parser.parse_args(argv)`, with a command's positional arguments also taken after its options, as Unix tools
    take them: argparse gives an optional positional (``nargs="?"``) or a list (``nargs="+"``) only the values before
    the first option, so ``hf-txray analyze MODEL --out DIR DATA`` (and ``analyze MODEL --out DIR -- -x.txt``) said
    "unrecognized arguments: DATA", and ``export A --out DIR B`` the same of B. Such a command line is read again by
    the command's parser with its options and positionals intermixed (``parse_known_intermixed_args``); one that is
    still not understood is refused as before.

    Raises:
        SystemExit: through the command's `error` (the short usage and the message, exit status 2).
    """
    argv = list(argv)
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    commands = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices
    command = commands[args.command]
    at = argv.index(args.command)  # the command's name: the first word that is not an option (_check_command)
    try:
        mixed, left = command.parse_known_intermixed_args(argv[at + 1:], argparse.Namespace(command=args.command))
    except TypeError:  # argparse's own refusal of a parser it cannot read intermixed (none of ours today)
        mixed, left = None, extra
    if not left:
        return mixed
    # a stray value (the one left over once every positional has its values): said under its command's usage
    # (argparse's mask of tokens applies)
    command.error(f"unrecognized arguments: {' '.join(left)}")


def _refuse_unknown_short_options(command: argparse.ArgumentParser, tokens: Sequence[str]) -> None:
    """A word with one leading dash that is no option of `command` (``-dir``): argparse reads it as an unknown
    option, so ``hf-txray show -dir`` said "the following arguments are required: path", naming neither the word nor
    the way to give a folder of that name. A negative number (``--layers -1``, ``--alpha -.5``), a word with a space
    (which argparse reads as a value) and ``-`` are left to argparse.

    Raises:
        SystemExit: through `command.error` (the short usage and the message, exit status 2).
    """
    for token in tokens:
        if (not token.startswith("-") or token.startswith("--") or token == "-" or " " in token
                or re.match(r"-\.?\d", token) or token.split("=", 1)[0] in command._option_string_actions):
            continue
        named = Path(token).expanduser().exists()
        command.error(f"unrecognized option {token!r}" + (f": to name the path {token}, write ./{token} (a word that "
                                                           "begins with '-' is read as an option)" if named else ""))


def _positional_hint(command: argparse.ArgumentParser, flag: str) -> str:
    """The hint for a flag that names one of `command`'s positional arguments (``--dataset x``, ``--model x``, as
    ``--dataset_name`` or ``--model_name_or_path`` in the transformers examples): it is written without a flag. Else
    an empty string. ``--dataset`` was answered "did you mean --dataset-revision or --dataset-config?", options that
    take a revision or a config name, not the data (helper 314)."""
    name = flag.lstrip("-").replace("-", "_")
    for action in command._actions:
        if not action.option_strings and name in {action.dest, f"{action.dest}_name", f"{action.dest}_name_or_path",
                                                  f"{action.dest}_path"}:
            order = " ".join(a.dest.upper() for a in command._actions if not a.option_strings)
            return (f"{flag}: {action.dest} is a positional argument, written without a flag: "
                    f"hf-txray {command.prog.split()[-1]} [options] {order}")
    return ""


def _refuse_list_values_split_by_spaces(command: argparse.ArgumentParser, tokens: Sequence[str]) -> None:
    """``--features token pos`` or ``--layers 0 1``: argparse takes the first value and reads the next as the next
    positional argument, so ``hf-txray analyze --features token pos --out x`` said "Model 'pos' ... is not in the Hub
    cache" (helper 205), and with the positionals given, "unrecognized arguments: pos". A word that directly follows
    such an option's value and is itself a value of that list (a feature type's name; a layer number or range), not
    an existing path, is refused with the comma-separated form. (TXRayArguments' ``--txray_features token pos``
    takes a space-separated list; these flags do not.)

    Raises:
        SystemExit: through `command.error` (the short usage and the message, exit status 2).
    """
    # "--features token pos" and "--features=token pos" alike (helper 209: the second form was not caught)
    triples = [(before, value, token) for before, value, token in zip(tokens, tokens[1:], tokens[2:])
               if "=" not in before]
    triples += [(*option.split("=", 1), token) for option, token in zip(tokens, tokens[1:]) if "=" in option]
    for before, value, token in triples:
        if (not before.startswith("--") or value.startswith("--")
                or (token.startswith("-") and not re.match(r"-\d", token))):  # -1 is a layer, as argparse reads it
            continue
        action = command._option_string_actions.get(before)
        if action is None or action.dest not in ("features", "layers") or Path(token).expanduser().exists():
            continue
        if action.dest == "layers":
            fits = re.fullmatch(r"-?\d+(?:--?\d+)?,?", token) is not None
        else:
            from .features.registry import registered_features

            fits = token.rstrip(",") in registered_features()
        if fits:
            command.error(f"{token!r} after {before} {value} would be read as a separate argument (a model, a "
                          f"dataset, or one too many): {before} takes its values comma-separated, {before} "
                          f"{value.rstrip(',')},{token.rstrip(',')}")


def _refuse_repeated_options(command: argparse.ArgumentParser, tokens: Sequence[str]) -> None:
    """An option that takes a value, given twice: argparse keeps the last one without a word (helper 196:
    ``--features token --features pos`` profiled pos alone), where a ``--config`` file refuses a key given twice."""
    seen: dict[int, str] = {}
    for token in tokens:
        if not token.startswith("-") or token == "-":
            continue
        flag = token.split("=", 1)[0]
        action = command._option_string_actions.get(flag)
        if action is None or action.nargs == 0 or isinstance(action, argparse._AppendAction):
            continue  # a value such as -1, a flag without a value, or an option meant to repeat
        if id(action) in seen:
            twice = f"{flag} is given twice" if seen[id(action)] == flag else \
                f"{seen[id(action)]} and {flag} set the same option ({action.option_strings[0]})"
            command.error(f"{twice}: argparse would keep the last value only; give it once.")
        seen[id(action)] = flag


def _check_text_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, before any work, an argument that is not text: in a locale that is not UTF-8 (``LC_ALL=C`` without
    Python's UTF-8 mode) Python keeps the bytes of an accented letter as lone surrogates (``'\\udcc3\\udca9'``),
    which no saved file can hold: ``--stage café`` profiled the whole corpus, then failed at save. Every text
    argument is checked, inputs too: a command records them (the model path as the profile's model id) or matches
    them against saved names (a stage), which such text never equals.

    Raises:
        ConfigurationError: the first such argument, with the settings that fix the locale.
    """
    command = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[args.command]
    for action in command._actions:
        value = getattr(args, action.dest, None)
        for text in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(text, str) and not _is_unicode(text):
                name = action.option_strings[0] if action.option_strings else (action.metavar or action.dest.upper())
                raise ConfigurationError(
                    f"{name} {text!r}: the terminal's locale is not UTF-8 (LC_ALL/LANG), so Python could not read "
                    "this argument as text, and it could not be saved or matched: set LC_ALL=C.UTF-8 (or "
                    "PYTHONUTF8=1) and run the command again.")


def _is_unicode(text: str) -> bool:
    """Whether `text` has a UTF-8 form (no lone surrogate, left by decoding bytes the locale did not know)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop, `kill`), raised as Ctrl-C is: the same unwinding (temporary folders removed,
    checkpoints kept) and the same message."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`_Terminated` in the main thread (where Python runs signal handlers)
    instead of ending the process on the spot; the previous handler is restored after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield  # not ours to change (a host program's own handler, or a thread)
        return

    def terminated(signum: int, frame: Any) -> None:
        raise _Terminated()

    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _printable_streams() -> None:
    """Write characters the terminal's encoding lacks as escapes (``\\xe4``) instead of failing: on an ASCII
    terminal (``LC_ALL=C``, ``PYTHONIOENCODING=ascii``) a stage or text with an accent ended ``show`` and ``compare``
    with a UnicodeEncodeError traceback, after the report was computed (helper 168)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # a TextIOWrapper; a replaced stream may lack it
        if reconfigure is not None and (stream.errors or "strict") == "strict":
            reconfigure(errors="backslashreplace")


# The flags that name a folder a command writes. The shell leaves `~` unexpanded in `--out=~/x` and in a --config
# file's `out: ~/x`; the readers expand it (a model, a dataset, a saved profile), so `~/x` written literally as
# ./~/x could not be read back by the same name.
OUTPUT_FLAGS = ("out", "export")


def _expand_output_paths(args: argparse.Namespace) -> None:
    """Expand a leading `~` in the output folders of `args`, as the readers do in the input paths."""
    for name in OUTPUT_FLAGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():  # else "error:  holds the input ..." named nothing
            raise ConfigurationError(f"--{name} is empty: give the folder to write, e.g. --{name} results/run.")
        if isinstance(value, str):
            setattr(args, name, os.path.expanduser(value))


def _reader_left() -> int:
    """End a command whose reader left (``hf-txray show DIR | head``): stdout, and stderr where it is the same closed
    pipe (``2>&1 | head``) or closed too, are pointed at ``os.devnull``, so that Python's flush at exit raises no second
    BrokenPipeError ("Exception ignored ... BrokenPipeError", "lost sys.stderr", exit status 120). What was computed is
    already written. Returns 141, the shell's code for a command ended by SIGPIPE."""
    def pipe_of(stream: Any) -> tuple[int, int] | None:
        try:
            info = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError):  # a replaced stream (a test's capture) has no descriptor
            return None
        return (info.st_dev, info.st_ino) if stat.S_ISFIFO(info.st_mode) else None

    stderr_too = pipe_of(sys.stderr) is not None and pipe_of(sys.stderr) == pipe_of(sys.stdout)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream, closed in ((sys.stdout, True), (sys.stderr, stderr_too)):
            if not closed:
                try:
                    stream.flush()  # a stderr closed on its own (2>&1 | head through another pipe)
                    continue
                except BrokenPipeError:
                    pass
            try:
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass
    finally:
        os.close(devnull)
    _close_process_group(barrier=False)
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hf-txray`` command; returns its exit status."""
    try:
        try:
            return _main(argv)
        finally:
            # The output still buffered (--help's, an error's), written here: a reader gone by now (| head) is the
            # BrokenPipeError below, not Python's "Exception ignored ... BrokenPipeError" at exit with status 120.
            # After a command that returned, _main has flushed already, inside its own error handling (a full disk's
            # message and status 2, Ctrl-C/SIGTERM during a blocked write, before the process group's barrier):
            # this one only meets what an early exit (argparse's --help, a refusal) left in the buffer.
            try:
                if sys.stdout is not None:  # None: no standard output at all (`>&-`), nothing to flush
                    sys.stdout.flush()
            except BrokenPipeError:
                raise
            except (OSError, ValueError):  # a full disk: left to the flush at exit, as before
                pass
    except BrokenPipeError:  # also an error message written to a stderr closed with stdout (`2>&1 | head`)
        return _reader_left()


def _main(argv: Sequence[str] | None) -> int:
    _printable_streams()
    try:
        parser = build_parser()  # imports the options' modules: a few tenths of a second
        args = _parse(parser, argv)
    except KeyboardInterrupt:  # Ctrl-C that early: the same one line and exit status as later, not a traceback
        print("hf-txray: interrupted.", file=sys.stderr)
        return 130
    try:
        with warnings.catch_warnings(), _terminate_as_interrupt():  # warnings: the default display restored after
            warnings.showwarning = _warning_line(args.command)
            _check_text_arguments(parser, args)
            if getattr(args, "config", None):
                args = _apply_config_file(parser, argv, args)
            _expand_output_paths(args)
            code = args.handler(args)
            if sys.stdout is not None:  # a reader that left (| head) or a full disk: handled below, not at exit
                # (main's flush would meet them outside this handling: a full disk, exit 120 and no message)
                sys.stdout.flush()
    except TXRayError as err:  # its message repeats what was typed (a path, a repo id): masked as argparse's are
        print(f"hf-txray {args.command}: error: {redact_typed(str(err))}", file=sys.stderr)
        _close_process_group(barrier=False)  # the other ranks may never reach a barrier
        return 2
    except KeyboardInterrupt as stop:
        print(_interrupted_message(args), file=sys.stderr)
        _close_process_group(barrier=False)
        return 143 if isinstance(stop, _Terminated) else 130  # the shell's codes for SIGTERM and SIGINT
    except BrokenPipeError:  # `hf-txray show DIR | head`: the reader left; what was computed is already written
        return _reader_left()
    except OSError as err:
        if not err.filename and err.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT):  # writing stdout (> /dev/full)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            print(f"hf-txray {args.command}: error: {err.strerror or err} while writing to the terminal or log "
                  "(standard output); what the command saved is kept. Free space, or send the output elsewhere.",
                  file=sys.stderr)
            _close_process_group(barrier=False)
            return 2
        if not err.filename:  # not about a file: a bug or something unexpected, shown whole
            raise
        # a file or folder that cannot be read or written (permissions, a full disk, a file in the path): the
        # system's words and the path, not a traceback
        print(redact_typed(f"hf-txray {args.command}: error: {err.strerror or err}: {err.filename}. Check the path "
                           "and its permissions, or choose another one."), file=sys.stderr)
        _close_process_group(barrier=False)
        return 2
    _close_process_group()  # under torchrun / accelerate launch: every rank leaves the group before exiting
    return code


if __name__ == "__main__":
    sys.exit(main())
