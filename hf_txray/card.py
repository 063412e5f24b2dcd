"""The dataset card (README.md) of an exported analysis: YAML metadata, readable summary, tables, plots, how to load.

Built with ``DatasetCardData`` / ``DatasetCard`` directly (``from_template`` needs Jinja2, see GUIDE §3).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd
from huggingface_hub import DatasetCard, DatasetCardData, SpaceCard

from .architectures import format_neuron, routed_experts
from .metrics import mean_length
from .plots import default_feature_type
from .provenance import (missing_provenance, needs_texts_again, pinned_texts, pruning_note, public_label, public_name,
                         public_record, recorded_pruning)
from .redaction import without_userinfo
from .tables import (code_span, markdown_table, markdown_text, percent, shell_command, too_few_credits_text,
                     untested_unknown)
from .version import __version__

if TYPE_CHECKING:
    from .profile import Profile
    from .report import TransferReport

THIS_FOLDER = "<this folder>"  # what a card's examples read when its folder names no Hub repo
# datasets caches a local folder under its name and config, not its files: these read the files themselves (the
# sizes checked against the cache's would refuse them: NonMatchingSplitsSizesError)
READ_FILES_ANEW = 'download_mode="force_redownload", verification_mode="no_checks"'
LOCAL_CACHE_NOTE = ("# A local folder: datasets caches it under its name and config, not its files (a re-export, or "
                    "another folder of this name, would read as the first); these arguments read its files")
DEFAULT_CONFIG = "neuron_cards"  # the config the Hub's viewer and load_dataset(repo) show first
TAGS = ["hf-txray", "interpretability", "neuron-analysis"]
OLD_TAG = "hf_txray"  # the probing cards' tag before 2026-12-03: still marks a card hf_txray wrote
CONFIG_ROWS = {
    "neuron_cards": ("stage, layer, neuron", "status, mass, count; per feature type: length, entropy (nats), top features "
                     "with probabilities; top activating examples (snippet, highlighted span, activation); win rate, "
                     "histogram of credited activations, mass per token position and the top position's share; "
                     "promoted / suppressed tokens when computed; a one-sentence `summary`"),
    "distributions": ("stage, layer, neuron, feature type, feature", "credited mass, count and probability: the "
                      "full preference distributions"),
    "neuron_outputs": ("stage, layer, neuron, direction, rank", "the vocabulary tokens the neuron promotes and "
                       "suppresses: its down-projection column through the final norm's scale and the unembedding "
                       "(Geva et al., EMNLP 2022), with the logit per unit of activation"),
    "transfer_reports": ("report, layer, neuron", "status (shared/lost/gained/dead), Hellinger distance and length, "
                         "lengths and length shift per feature type, credits with a value of each feature type, "
                         "mass and mass shift"),
    "summary": ("report and kind", "`model` and `layer` aggregates (status shares, mean/median Hellinger, mean "
                "length shift); `mass_share` rows: tag mass share in A and B vs corpus frequency"),
    "meta": ("profile or report", "model, revision, site, layers, features, corpus, sizes, config, versions; "
             "the whole record (`metadata`), `options`, `provenance`, `data_files` and `columns` as JSON text "
             "(`json.loads`)"),
}
CITATION = """\
@inproceedings{rethmeier2020txray,
  title     = {TX-Ray: Quantifying and Explaining Model-Knowledge Transfer in (Un-)Supervised NLP},
  author    = {Rethmeier, Nils and Kumar Saxena, Vageesh and Augenstein, Isabelle},
  booktitle = {Proceedings of the 36th Conference on Uncertainty in Artificial Intelligence (UAI)},
  year      = {2020},
  url       = {https://arxiv.org/abs/1912.00982}
}"""


def missing_profiles(profiles: Mapping[str, "Profile"], reports: Mapping[str, "TransferReport"]) -> dict[str, list[str]]:
    """Per report, the stages it compares whose profiles are not among `profiles`."""
    missing = {}
    for name, report in reports.items():
        absent = [s for s in dict.fromkeys((report.meta.stage_a, report.meta.stage_b)) if s not in profiles]
        if absent:
            missing[name] = absent
    return missing


def hub_model_id(model_id: str) -> str | None:
    """`model_id` when it names a Hub model (``namespace/name``), None for local paths and class names."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if "/" not in model_id or Path(model_id).exists():
        return None
    try:
        validate_repo_id(model_id)
    except HFValidationError:
        return None
    return model_id


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M")):
        if rows < limit:
            return name
    return "10M<n<100M"


def with_default(configs: list[dict[str, Any]], preferred: str | None = None) -> list[dict[str, Any]]:
    """`configs` (a dataset card's YAML ``configs``) with one marked ``default: true``, which
    ``load_dataset(repo, split=...)`` needs: the one already marked, else `preferred` when declared, else the first."""
    if not configs or any(c.get("default") for c in configs):
        return configs
    names = [c.get("config_name") for c in configs]
    chosen = names.index(preferred) if preferred in names else 0
    return [{**c, "default": True} if i == chosen else c for i, c in enumerate(configs)]


def card_data(models: list[str], row_counts: Mapping[str, int], *, license: str | None,
              pretty_name: str) -> DatasetCardData:
    """YAML metadata: tags, license, base model link, and one config per exported table (`neuron_cards` the
    default, else the first: ``load_dataset(repo, split=...)`` needs one)."""
    configs = with_default([{"config_name": name, "data_files": [{"split": "train", "path": f"{name}/*.parquet"}]}
                            for name, rows in row_counts.items() if rows], DEFAULT_CONFIG)
    hub_models = [m for m in dict.fromkeys(models) if hub_model_id(m)]
    return DatasetCardData(
        license=license, pretty_name=pretty_name, tags=list(TAGS),
        size_categories=[_size_category(max(row_counts.values(), default=0))],
        base_model=(hub_models[0] if len(hub_models) == 1 else hub_models) or None, configs=configs,
    )


def hub_page(path: str) -> str:
    """The address of `path` (``owner/name``, ``datasets/owner/name/tree/REV``) on the Hub that huggingface_hub talks
    to (``HF_ENDPOINT``, https://huggingface.co by default): where the repos and commits that a profile pins were
    read, so the card's links resolve there (to huggingface.co, a commit read from another endpoint was a 404)."""
    from huggingface_hub import constants

    return f"{without_userinfo(constants.ENDPOINT.rstrip('/'))}/{path}"  # never HF_ENDPOINT's password in a card


def _model_link(model_id: str) -> str:
    return f"[{model_id}]({hub_page(model_id)})" if hub_model_id(model_id) else public_label(model_id)


def _profiles_section(profiles: Mapping[str, Profile]) -> list[str]:
    rows = []
    for p in profiles.values():
        m = p.meta
        active = int((p.neuron_count > 0).sum())
        # names are text (a local folder or a dataset_id may hold "*", "_" or "<"), the fingerprint hex digits
        row = {"stage": markdown_text(m.stage), "model": markdown_text(public_name(m.model_id)),
               "corpus": markdown_text(public_name(m.dataset_id)) if m.dataset_id
               else f"in-memory [{m.dataset_fingerprint}]",
               "texts": m.num_examples, "token positions": m.num_positions,
               "active neurons": f"{active} / {p.num_rows} ({percent(active / p.num_rows)})"}
        stats = p.neuron_stats()
        for ft in m.feature_types:
            row[f"mean length ({markdown_text(ft)})"] = mean_length(stats[f"length_{ft}"])
        rows.append(row)
    return ["### Stages (profiles)", "", markdown_table(pd.DataFrame(rows)), ""]


def _headline(report: TransferReport) -> str:
    s = report.summary()
    ft = default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds,
                              orders=report.meta.feature_orders)
    pair = f"{markdown_text(report.meta.stage_a)} → {markdown_text(report.meta.stage_b)}"
    mean = s[f"mean_hellinger_{ft}"]
    # NaN (no shared neuron with a distribution of the type in both stages) read "...over shared neurons: nan"
    distance = (f"no shared neuron has {markdown_text(ft)} preferences in both stages, so there is no mean Hellinger "
                "distance" if mean != mean else f"mean Hellinger distance of the {markdown_text(ft)} preferences over "
                f"shared neurons: {mean:.3f} (0 = unchanged, 1 = disjoint)")
    return (f"- **{pair}**: {percent(s['share_shared'])} of the neurons are "
            f"active in both stages, {percent(s['share_lost'])} were deactivated (lost), {percent(s['share_gained'])} "
            f"became active (gained); {distance}." + _noise_sentence(report, s, ft))


def _noise_sentence(report: TransferReport, s: dict[str, float], ft: str) -> str:
    """The headline's noise floors: what the same figures are between two halves of one stage."""
    if f"matched_hellinger_{ft}" not in s:
        return " (No noise floors: the profiles had no split-half sums.)"
    if report.meta.no_noise_reason:
        return f" (No noise floors or per-neuron test: {report.meta.no_noise_reason}.)"
    if ft in report.meta.no_noise_features:  # this feature type's halves alone are empty
        return f" (No noise floors or per-neuron test of {markdown_text(ft)}: {report.meta.no_noise_features[ft]}.)"
    figures = [s[f"matched_hellinger_{ft}"], s[f"noise_floor_hellinger_{ft}_a"], s[f"noise_floor_hellinger_{ft}_b"]]
    if any(value != value for value in figures):  # NaN: no neuron in all four halves; it read "the distance is nan"
        out = (" No noise floor of the distance: no shared neuron was credited in all four split halves (both of each "
               "stage), so how much of it is sampling noise is unknown")
    else:
        out = (f" At half size the distance is {figures[0]:.3f}, against a split-half noise floor of {figures[1]:.3f} "
               f"(A) and {figures[2]:.3f} (B)")
    if "matched_share_lost" in s:
        out += (f"; lost {percent(s['matched_share_lost'])} vs {percent(s['noise_floor_share_lost_a'])} / "
                f"{percent(s['noise_floor_share_lost_b'])} between halves of one stage")
    if f"share_changed_{ft}" in s and s[f"neurons_tested_{ft}"] != s[f"neurons_tested_{ft}"]:  # NaN: not run
        out += "; the per-neuron test of change beyond sampling noise was not run (compare(test=False))"
    elif f"share_changed_{ft}" in s and s[f"share_changed_{ft}"] != s[f"share_changed_{ft}"]:  # NaN: none tested
        out += ("; no shared neuron could be tested for change beyond sampling noise (too few credits in both "
                "stages, or one feature category left after pooling rare ones)")
    elif f"share_changed_{ft}" in s:
        out += (f"; {percent(s[f'share_changed_{ft}'])} of the shared neurons changed beyond sampling noise "
                f"(Benjamini-Hochberg, alpha = {report.meta.alpha})")
    return out + "."


def _report_tables(report: TransferReport) -> list[str]:
    ft = default_feature_type(report.meta.feature_types, kinds=report.meta.feature_kinds,
                              orders=report.meta.feature_orders)
    layer_columns = ["layer", "share_shared", "share_lost", "share_gained"] + [
        f"mean_hellinger_{f}" for f in report.meta.feature_types] + [f"mean_length_shift_{ft}"]
    out = [f"### {markdown_text(report.meta.stage_a)} → {markdown_text(report.meta.stage_b)}", ""]
    noise = report.noise_table()
    if len(noise):
        out += ["Headline figures beside their split-half noise floors (the same figure between two "
                "halves of one stage; compare them with A → B at half size):", "",
                markdown_table(noise.assign(figure=noise["figure"].map(markdown_text))), ""]
    out += ["Per layer:", "", markdown_table(_names_shown(report.layers[layer_columns], report.meta.feature_types)), ""]
    share = report.mass_share[report.mass_share["feature_type"] == ft].drop(columns="feature_type")
    share = share.assign(feature=share["feature"].map(markdown_text))  # a user tag such as <img src=x> stays text
    if len(share):
        out += [f"{markdown_text(ft)} mass share in A and B vs corpus frequency:", "", markdown_table(share.head(20)),
                ""]
    min_count = report.DEFAULT_MIN_COUNT
    changed = report.most_changed(10, ft, min_count=min_count)
    if len(changed):
        keep = ["layer", "neuron", f"hellinger_{ft}", f"length_a_{ft}", f"length_b_{ft}", "count_a", "count_b"]
        keep += [c for c in (f"p_hellinger_{ft}", f"changed_{ft}") if c in changed]
        thin = report.too_few_credits(ft, min_count)
        out += [f"Most changed neurons ({markdown_text(ft)}), among those credited at least {min_count} times with a "
                f"{markdown_text(ft)} value in both stages ({too_few_credits_text(thin)}):", "",
                markdown_table(_names_shown(untested_unknown(changed[keep]), [ft])), ""]
    return out


def _names_shown(frame: pd.DataFrame, feature_types: Sequence[str]) -> pd.DataFrame:
    """`frame` with the feature type names in its column names (``hellinger_<ft>``, ``p_hellinger_<ft>``...) as
    literal markdown text: a user feature named ``<img src=x>`` or ``*x*`` was shown as an image or in italics. Only
    the name is escaped, so a ``p_`` column keeps its p-value format."""
    def shown(column: str) -> str:
        for ft in sorted(feature_types, key=len, reverse=True):
            if column.endswith(f"_{ft}"):
                return f"{column[: -len(ft)]}{markdown_text(ft)}"
        return column
    return frame.rename(columns={c: shown(c) for c in frame.columns})


def _plots_section(figures: Mapping[str, list[str]]) -> list[str]:
    out = ["## Plots", ""] if figures else []
    for key, paths in figures.items():
        out += [f"### {markdown_text(key.replace('->', ' → '))}", ""]
        out += [f"![{Path(p).stem}]({p})" for p in paths] + [""]
    return out


def _configs_section(row_counts: Mapping[str, int]) -> list[str]:
    frame = pd.DataFrame([{"config": f"`{n}`" + (" (default)" if n == DEFAULT_CONFIG else ""), "rows": row_counts[n],
                           "one row per": CONFIG_ROWS[n][0], "content": CONFIG_ROWS[n][1]}
                          for n, rows in row_counts.items() if rows])
    return ["## Configs", "", markdown_table(frame), ""]


def _load_lines(configs: Sequence[str], repo_id: str | None, revision: str | None) -> list[str]:
    """The card's ``NAME = load_dataset(...)`` lines of `configs`: from the Hub repo `repo_id` at `revision`, or, when
    the folder names no repo (None), from :data:`THIS_FOLDER` with :data:`READ_FILES_ANEW` and a comment saying why:
    ``datasets`` caches a local folder under its name and config, not its files, so the plain call returned another
    folder's rows (helper 362). :func:`naming_repo` turns either form into the Hub one."""
    if repo_id is None:
        return [LOCAL_CACHE_NOTE, *[f'{n} = load_dataset("{THIS_FOLDER}", "{n}", split="train", {READ_FILES_ANEW})'
                                    for n in configs]]
    at = f', revision="{revision}"' if revision else ""  # results on a branch: the default one may hold none
    return [f'{n} = load_dataset("{repo_id}", "{n}", split="train"{at})' for n in configs]


def _loading_section(repo_id: str | None, row_counts: Mapping[str, int], revision: str | None) -> list[str]:
    configs = [n for n, rows in row_counts.items() if rows]
    at = f', revision="{revision}"' if revision and repo_id else ""
    return ["## How to load", "", "```python", "from datasets import load_dataset", "",
            *_load_lines(configs, repo_id, revision), "",
            "# The exact Profile and TransferReport objects (pip install hf_txray):", "import hf_txray", "",
            f'profiles, reports = hf_txray.load("{repo_id or THIS_FOLDER}"{at})', "```", ""]


def naming_repo(text: str, repo_id: str, revision: str | None = None) -> str:
    """A card's `text` with its loading and reproduce examples (:func:`_loading_section`, :func:`_reproduce_section`,
    the probing section's) naming `repo_id` at `revision` (None: the default branch): an export folder's card names
    the repo and branch given to ``save_to_disk`` (or reads :data:`THIS_FOLDER` anew when none was), and pushed to
    another repo or branch every one of its examples read another repo, a placeholder or a branch that did not exist
    (helper 283). A Hub repo is cached by commit: its loading examples drop the local folder's arguments and note."""
    import re

    at = f', revision="{revision}"' if revision else ""
    quoted, old_at = r'"[^"\n]*"', rf'(?:, revision="[^"\n]*"|, {re.escape(READ_FILES_ANEW)})?'
    text = re.sub(rf'^{re.escape(LOCAL_CACHE_NOTE)}\n', "", text, flags=re.MULTILINE)  # a Hub repo: keyed by commit
    text = re.sub(rf'^(\w+ = load_dataset\(){quoted}, ({quoted}), split="train"{old_at}\)$',
                  lambda m: f'{m[1]}"{repo_id}", {m[2]}, split="train"{at})', text, flags=re.MULTILINE)
    text = re.sub(rf'^profiles, reports = hf_txray\.load\({quoted}{old_at}\)$',
                  lambda m: f'profiles, reports = hf_txray.load("{repo_id}"{at})', text, flags=re.MULTILINE)
    return re.sub(r"^hf-txray reproduce .+$", lambda m: reproduce_command(repo_id, revision), text, flags=re.MULTILINE)


def reproduce_command(repo_id: str, revision: str | None = None) -> str:
    """The card's ``hf-txray reproduce REPO [--revision R]`` line, every value shell-quoted (:func:`shell_command`)."""
    return shell_command("hf-txray", "reproduce", repo_id, *(("--revision", revision) if revision else ()))


def _credit_rule(top_k: Mapping[str, int | None] | int | None) -> str:
    """The credit rule in words, for the card's opening paragraph: `top_k` by stage (one sentence for all when they
    agree; None: a stage known only from a report saved before reports recorded it), one value, or None."""
    if isinstance(top_k, Mapping):
        values = set(top_k.values())
        if len(values) > 1:
            per_stage = ", ".join(f"{code_span(stage)} {'not recorded' if k is None else k}"
                                  for stage, k in top_k.items())
            return f"one of the k most active units of its layer (top-k credit, k per stage: {per_stage})"
        top_k = values.pop() if values else None
    if top_k is None:
        return "the most active unit(s) of its layer (max-1 or top-k credit: the report does not record k)"
    if top_k == 1:
        return "the most active unit of its layer (max-1 credit)"
    return f"one of the {top_k} most active units of its layer (top-{top_k} credit: each position credits {top_k} units)"


def _source_cell(source: Mapping[str, Any], repo_type: str) -> str:
    """A pinned source in words: a Hub id linked at its commit, or a local path / in-memory texts and their hash."""
    name, commit = source.get("id"), source.get("commit")
    if source.get("kind") == "hub" or (commit and name and hub_model_id(name)):
        prefix = "datasets/" if repo_type == "dataset" else ""
        extra = (f" config {code_span(source.get('config'))}, split {code_span(source.get('split'))}"
                 if repo_type == "dataset" else "")
        revision = commit or "main"
        return f"[{name}@{revision[:12]}]({hub_page(f'{prefix}{name}/tree/{revision}')}){extra}"
    digest = source.get("content_hash") or source.get("texts_hash") or "no hash"
    if not name:
        where = "a model object without name_or_path" if repo_type == "model" else "texts passed in memory"
        return f"{where} (content `{digest[:23]}…`)" if digest != "no hash" else where
    where = public_label(name)
    return f"{where} (content `{digest[:23]}…`)"


def _texts_cell(record: Mapping[str, Any], num_examples: int) -> Any:
    """The Reproduce table's texts: the number the record pins, with what the profile counted where it differs."""
    pinned = record["dataset"]["num_texts"]
    return pinned if pinned == num_examples else pinned_texts(record, num_examples)


def _reproduce_section(profiles: Mapping[str, Profile], repo_id: str, revision: str | None) -> list[str]:
    rows = []
    for p in profiles.values():
        record = p.meta.provenance or {}
        lacks = missing_provenance(p)
        if not record:
            rows.append({"stage": markdown_text(p.stage), "model": _model_link(p.meta.model_id),
                         "dataset": markdown_text(public_name(p.meta.dataset_id)) if p.meta.dataset_id else "–",
                         "texts": p.meta.num_examples, "reproducible": "no: made before sources were recorded"})
            continue
        status = ("no: it lacks " + lacks[0]) if lacks else ("with `--dataset` (the texts)" if needs_texts_again(record)
                                                     else "yes")
        rows.append({"stage": markdown_text(p.stage), "model": _source_cell(record["model"], "model"),
                     "dataset": _source_cell(record["dataset"], "dataset"), "texts": _texts_cell(record, p.meta.num_examples),
                     "reproducible": status})
    first = next((p.meta.provenance for p in profiles.values() if p.meta.provenance), {})
    first = public_record(first)  # e.g. an offload folder in model_kwargs
    options, versions, runtime = first.get("options"), first.get("versions") or {}, first.get("runtime") or {}
    lines = ["## Reproduce", "",
             "Every profile records the model and corpus it was computed from, pinned (Hub commits, or content hashes "
             "of local files), with every option, device and dtype (the `meta` config: `provenance`). Recompute it "
             "and compare (counts exact, masses to 1e-6):", "",
             "```bash", f"pip install hf_txray=={__version__}", reproduce_command(repo_id, revision), "```", "",
             markdown_table(pd.DataFrame(rows)), ""]
    if options:
        shown = ", ".join(code_span(f"{k}={v}") for k, v in options.items())  # a value may hold a backtick
        lines += [f"Options of the first stage: {shown}; device {code_span(runtime.get('device'))}, dtype "
                  f"{code_span(runtime.get('dtype'))}.", ""]
    if versions:
        lines += ["Computed with " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".", ""]
    return lines


def build_card(profiles: Mapping[str, Profile], reports: Mapping[str, TransferReport], row_counts: Mapping[str, int],
               figures: Mapping[str, list[str]], *, repo_id: str | None = None, license: str | None = None,
               pretty_name: str | None = None, revision: str | None = None) -> DatasetCard:
    """The dataset card of an export.

    Args:
        profiles (`Mapping[str, Profile]`): exported profiles by stage.
        reports (`Mapping[str, TransferReport]`): exported reports by name.
        row_counts (`Mapping[str, int]`): rows per exported config, in the layout's order; configs without rows
            are not declared.
        figures (`Mapping[str, list[str]]`): repo-relative PNG paths by report name or stage.
        repo_id (`str`, *optional*): used in the loading examples (a placeholder otherwise).
        license (`str`, *optional*): Hub license id.
        pretty_name (`str`, *optional*): title; defaults to ``"TX-Ray neuron analysis of <model>"``.
        revision (`str`, *optional*): the branch the export is pushed to, named by the loading examples.

    Example:
        ```python
        >>> card = build_card({"pretrained": p}, {}, {"neuron_cards": 9216, "distributions": 50000, "meta": 1}, {})
        >>> card.save("results/export/README.md")
        ```
    """
    models = [p.meta.model_id for p in profiles.values()] + [
        m for r in reports.values() for m in (r.meta.model_a, r.meta.model_b)]
    pretty_name = pretty_name or f"TX-Ray neuron analysis of {public_name(models[0])}"
    data = card_data(models, row_counts, license=license, pretty_name=pretty_name)
    first = next(iter(profiles.values()), None)
    m = first.meta if first else next(iter(reports.values())).meta
    body = [f"# {markdown_text(pretty_name)}", "",
            "Neuron preference profiles (\"neuron cards\") and transfer reports computed with **hf_txray**, an "
            "implementation of TX-Ray (Rethmeier et al., UAI 2020) for Hugging Face models. Each neuron is described "
            f"by the inputs that make it {_credit_rule(_top_k_by_stage(profiles, reports))}, and its preferences are "
            "compared across training stages with the Hellinger distance.", "",
            "## Summary", "",
            f"- **Model(s)**: {', '.join(_model_link(x) for x in dict.fromkeys(models))}",
            f"- **Neurons**: {m.site} site, {len(m.layers)} layers × {m.num_neurons} neurons; features: "
            f"{', '.join(map(markdown_text, m.feature_types))}{_architecture_note(m)}",
            *[f"- **Pruned model** (stage {code_span(stage)}): {pruning_note(recorded_pruning(p.meta.provenance)[1])}"
              for stage, p in profiles.items() if recorded_pruning(p.meta.provenance)[1]],
            *[_headline(r) for r in reports.values()], ""]
    for name, absent in missing_profiles(profiles, reports).items():
        body += [f"> **Note**: report {code_span(name)} compares stage(s) {', '.join(map(code_span, absent))} whose "
                 "profiles are not in this repo; push them to get their neuron cards and distributions.", ""]
    if profiles:
        body += _profiles_section(profiles)
    if reports:
        body += ["## Transfer reports", ""] + [line for r in reports.values() for line in _report_tables(r)]
    body += _plots_section(figures) + _configs_section(row_counts)
    body += _loading_section(repo_id, row_counts, revision)
    if profiles:
        body += _reproduce_section(profiles, repo_id or THIS_FOLDER, revision)
    body += ["## Citation", "", "```bibtex", CITATION, "```", ""]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def _top_k_by_stage(profiles: Mapping[str, Profile],
                    reports: Mapping[str, TransferReport]) -> Mapping[str, int | None]:
    """The top_k of every stage of the export: each profile's, and for the stages of a report without their profile,
    the report's (None in reports saved before reports recorded it). The first part's alone stated max-1 credit of
    an export of a top-1 and a top-2 report, or of a top-1 profile beside a top-2 report (helper 366)."""
    by_stage: dict[str, int | None] = {stage: p.meta.top_k for stage, p in profiles.items()}
    for report in reports.values():
        for stage in (report.meta.stage_a, report.meta.stage_b):
            by_stage.setdefault(stage, getattr(report.meta, "top_k", None))
    return by_stage


def _architecture_note(meta) -> str:
    """The profiled stack of an encoder-decoder and the (expert, unit) numbering of mixture-of-experts layers (a
    report's `meta` keeps the numbering as ``experts`` and the stack as ``stack``)."""
    config = getattr(meta, "config", None) or {**getattr(meta, "experts", {}), "stack": getattr(meta, "stack", None)}
    note = f"; {config['stack']} stack" if config.get("stack") else ""
    width = config.get("expert_width")
    if width:
        routed = routed_experts(config)
        shared = int(config.get("num_shared_experts") or 0)
        of_them = (f"; neurons from {routed * width} on are the units of the shared expert, in the order of its "
                   f"down projection's columns ({shared * width} units; e.g. "
                   f"{format_neuron(routed * width + 1, width, routed)})") if shared and routed is not None else ""
        note += (f"; mixture of experts: {routed if routed is not None else config.get('num_experts')} routed "
                 f"experts × {width} units (neuron n is unit n mod {width} of expert n // {width}, e.g. "
                 f"{format_neuron(width + 1, width)}){of_them}")
    return note


# ----- probing and ablation (hf_txray.probing) ---------------------------------------------------------------
PROBING_SECTION = ("<!-- hf_txray:probing:start -->", "<!-- hf_txray:probing:end -->")


# what a probe's headline columns measure, for a reader who has only the card (the split unit, the baselines and
# where the minimal set is searched are not in the table)
PROBE_COLUMNS_NOTE = (
    "`accuracy` is measured on held-out sentences (split by sentence: no word of a training sentence is a test word); "
    "`majority_baseline` always predicts the most frequent training label; `control_accuracy` is the same probe "
    "trained on a control task (one random label per word type, Hewitt & Liang, 2019), and `selectivity` = accuracy "
    "- control_accuracy is what word identity alone does not explain. The minimal set (the fewest top-ranked "
    "neurons whose retrained probe reaches the target share of the accuracy) is searched on the same test "
    "sentences.")


def _probing_section(probe: Any, ablation: Any, repo_id: str | None = None, revision: str | None = None) -> str:
    """The README section of the ``probe_rankings`` and ``ablation`` configs (pyarrow tables, or None), whose loading
    examples name `repo_id` (and `revision`) where known: one marked subsection per config, so that a push of one
    of them (``curve.push_to_hub``) replaces its own and keeps the other's
    (:func:`hf_txray.hub_io.carry_remote_card`)."""
    intro = ("Computed with `hf_txray.probing`: elastic-net linear probes ranking neurons for a linguistic property "
             "(with a control task for selectivity), and ablation curves of ranked vs random neurons.")
    lines = [PROBING_SECTION[0], "## Probing and ablation", "", intro, ""]
    if probe is not None:
        runs = probe.to_pandas()
        runs = runs[runs["kind"] == "probe"][["probe", "model_id", "property", "site", "accuracy",
                                             "majority_baseline", "control_accuracy", "selectivity", "num_neurons"]]
        # a whole count, shown as one ("80.000" of a float column)
        runs = runs.assign(model_id=runs["model_id"].map(public_name), num_neurons=runs["num_neurons"].astype("Int64"))
        runs = _literal(runs, ["probe", "model_id", "property", "site"])
        # rounded once, by the table (rounded to 4 places first, 0.00046 was printed as 0.001)
        lines += _probing_subsection("probe_rankings", "### Probes (`probe_rankings`)", markdown_table(runs.rename(
            columns={"num_neurons": "minimal set"})), repo_id, revision, PROBE_COLUMNS_NOTE)
    if ablation is not None:
        frame = ablation.to_pandas()
        summary = _literal(frame.groupby(["ablation", "metric", "mode", "strategy", "num_ablated"])["value"].mean()
                           .reset_index(), ["ablation", "metric", "mode", "strategy"])
        lines += _probing_subsection("ablation", "### Ablation (`ablation`)", markdown_table(summary), repo_id,
                                     revision)
    return "\n".join(lines + [PROBING_SECTION[1]])


def _literal(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`frame` with its name `columns` (a probe, property, model or metric name the user chose) as literal markdown
    text (:func:`~hf_txray.tables.markdown_text`): a probe named ``<img src=x>`` or ``*pos*`` is shown as named, not
    as an image or in italics; missing values stay missing."""
    return frame.assign(**{c: frame[c].map(lambda v: v if v is None or v != v else markdown_text(v)) for c in columns})


def without_probing_parts(text: str, configs: Sequence[str]) -> str:
    """A card's `text` without the probing section's parts of `configs`, and without the whole probing section when
    none of its parts is left (the repo holds no file of them any more)."""
    import re

    for config in configs:
        start, end = (f"<!-- hf_txray:probing-{config}:{edge} -->" for edge in ("start", "end"))
        text = re.sub(re.escape(start) + r".*?" + re.escape(end) + r"\n*", "", text, flags=re.DOTALL)
    start, end = PROBING_SECTION
    if start in text and end in text:
        head, rest = text.split(start, 1)
        inside, tail = rest.split(end, 1)
        if "<!-- hf_txray:probing-" not in inside:
            text = head.rstrip() + "\n" + (("\n" + tail.lstrip("\n")) if tail.strip() else "")
    return text


def _probing_subsection(config: str, heading: str, table: str, repo_id: str | None = None,
                        revision: str | None = None, note: str | None = None) -> list[str]:
    """One config's marked part of the probing section: its table (after `note`, what its columns measure, where
    given) and how to load it (from `repo_id` where known, as the TX-Ray part's loading examples name it)."""
    return [f"<!-- hf_txray:probing-{config}:start -->", heading, "", *([note, ""] if note else []), table, "",
            "```python",
            "from datasets import load_dataset", "", *_load_lines([config], repo_id, revision),
            "```", f"<!-- hf_txray:probing-{config}:end -->", ""]


def probing_card(readme: Path, probe: Any, ablation: Any, repo_id: str | None = None,
                 revision: str | None = None) -> DatasetCard:
    """The dataset card `readme` (a new one when missing) declaring the ``probe_rankings`` and ``ablation`` configs
    (pyarrow tables, or None when absent), with its probing section replaced (its loading examples naming
    `repo_id` and `revision` where given); the caller saves it."""
    if readme.exists():
        card = DatasetCard.load(readme)
    else:
        data = DatasetCardData(tags=[TAGS[0], "interpretability", "probing"],
                               pretty_name="hf_txray probing results")
        card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n# hf_txray probing results\n")
    configs = list(card.data.to_dict().get("configs") or [])
    names = {c.get("config_name") for c in configs}
    for name, table in (("probe_rankings", probe), ("ablation", ablation)):
        if table is not None and name not in names:
            configs.append({"config_name": name, "data_files": [{"split": "train", "path": f"{name}/*.parquet"}]})
    card.data.configs = with_default(configs)
    text = card.text
    section = _probing_section(probe, ablation, repo_id, revision)
    if PROBING_SECTION[0] in text and PROBING_SECTION[1] in text:
        head, rest = text.split(PROBING_SECTION[0], 1)
        text = head + section + rest.split(PROBING_SECTION[1], 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    card.text = text
    return card


# ----- the other cards: a Space's README, a fine-tuned model's section -------------------------------------------
SPACE_SOURCE_KEY = "txray_source"  # the Space README's key naming its results repo at a revision (owner/name@rev)


def space_card(template: str, datasets: Sequence[str], title: str | None = None, source: str | None = None) -> SpaceCard:
    """The viewer Space's README (huggingface_hub ``SpaceCard``) from `template`, with the results repos it shows
    in ``datasets:`` (linked on the Hub: repo ids only), optionally its ``title``, and `source`, the first repo at a
    revision (``owner/name@rev``), under :data:`SPACE_SOURCE_KEY` (removed when None), for the app to open at that
    revision.

    Raises:
        ConfigurationError: the template has no YAML header.
    """
    from .errors import ConfigurationError

    if not template.startswith("---"):
        raise ConfigurationError("The Space README.md has no YAML header (--- ... ---).")
    card = SpaceCard(template)
    card.data.datasets = list(datasets)
    setattr(card.data, SPACE_SOURCE_KEY, source)  # None: to_dict leaves it out (a pin of an earlier deploy goes)
    if title:
        card.data.title = title
    return card


def results_dataset_note(repo_id: str) -> str:
    """The sentence a model card gives to the TX-Ray results dataset pushed beside the model."""
    return (f"The neuron preference cards and transfer reports are also a dataset: "
            f"[`{repo_id}`]({hub_page(f'datasets/{repo_id}')}) (`hf_txray.load(\"{repo_id}\")`).\n")
