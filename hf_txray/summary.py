"""A neuron in one sentence, built from the numbers of its card (no language model).

Example: "Wins 2.1% of positions, mostly NOUN (61.0%) and PROPN (22.0%); prefers 'year', 'years', 'months';
promotes 'ago', 'later'; changed beyond noise between pretrained and fine-tuned (pos, p < 0.001)."

Every figure comes from a field of the card (a ``neuron_cards`` row: ``count``, ``win_rate``, ``top_<feature
type>`` lists, ``top_position``/``top_position_share``, ``promoted``) or, for the change clause, from the transfer
report's row of the neuron (``p_hellinger_<ft>`` and ``changed_<ft>``, written by the significance tests; the clause
is left out when the report has no such columns). A clause whose fields are absent is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .features import reading_order, tag_features, text_features
from .tables import bidi_isolated, clip_right, one_line, percent

SECOND_TAG_MIN = 0.10  # a second tag is named when it holds at least this share of the mass
FIRST_POSITION_MIN = 0.5  # the position clause appears when one token index holds at least half the mass
NAMES = 3  # values named in the "prefers" and "promotes" clauses
TOP_FEATURES = 10  # top features kept per neuron and feature type in a card (and in the exported neuron_cards)


def _name(value: Any) -> str:
    """A name the sentence quotes (a tag, a stage, a feature type) with its direction kept to itself
    (:func:`~hf_txray.tables.bidi_isolated`, as the card writes names): a tag or stage holding a right-to-left override
    (U+202E) reversed the rest of the sentence as shown (``(61%)`` read ``(%16)``), and an Arabic tag made the
    percentage after it an Arabic number, drawn before the tag. On one line, as the tables show it
    (:func:`~hf_txray.tables.one_line`): a user tag ``"\\x1b[31mred"`` went into the sentence with its ESC, so
    ``hf-txray show --neuron`` turned the terminal red, and a tag ``"a\\nb"`` broke the sentence in two (helper 356)."""
    return bidi_isolated(one_line(value))


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(_name(repr(str(v))) for v in values)


def _top_list(card: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = card.get(name)
    return [v for v in value if v is not None] if value is not None else []


def _card_types(card: Mapping[str, Any]) -> list[str]:
    return [k[len("top_"):] for k in card if k.startswith("top_") and k not in ("top_examples", "top_position",
                                                                                "top_position_share")]


def _tag_type(card: Mapping[str, Any], kinds: Mapping[str, str] | None = None,
              orders: Mapping[str, float] | None = None) -> str | None:
    tags = reading_order(tag_features(_card_types(card), kinds), orders)  # pos, dep, ner, then user tags
    return tags[0] if tags else None


def _tag_clause(card: Mapping[str, Any], kinds: Mapping[str, str] | None = None,
                orders: Mapping[str, float] | None = None) -> str | None:
    ft = _tag_type(card, kinds, orders)
    top = _top_list(card, f"top_{ft}") if ft else []
    if not top:
        return None
    first = f"{_name(top[0]['feature'])} ({percent(top[0]['probability'])})"
    if len(top) > 1 and top[1]["probability"] >= SECOND_TAG_MIN:
        return f"mostly {first} and {_name(top[1]['feature'])} ({percent(top[1]['probability'])})"
    return f"mostly {first}"


def _prefers_clause(card: Mapping[str, Any], kinds: Mapping[str, str] | None = None,
                    orders: Mapping[str, float] | None = None) -> str | None:
    for ft in reading_order(text_features(_card_types(card), kinds), orders):  # word, then token
        top = _top_list(card, f"top_{ft}")
        if top:
            return f"prefers {_quoted([v['feature'] for v in top[:NAMES]])}"
    return None


def _position_clause(card: Mapping[str, Any]) -> str | None:
    share, position = card.get("top_position_share"), card.get("top_position")
    if share is None or position is None or position < 0 or share < FIRST_POSITION_MIN:
        return None
    return f"{percent(share)} of its mass from token position {int(position)}"


def _promotes_clause(card: Mapping[str, Any]) -> str | None:
    promoted = card.get("promoted")
    return f"promotes {_quoted(list(promoted)[:NAMES])}" if promoted is not None and len(promoted) else None


def p_text(p: float) -> str:
    """A p-value as the summaries and `hf-txray show` quote it: ``p < 0.001``, ``p = 0.012``, ``p = 0.43``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _change_clause(report_row: Mapping[str, Any] | None, stages: tuple[str, str] | None,
                   feature_type: str | None) -> str | None:
    if not report_row or not stages:
        return None
    types = [feature_type] if feature_type else []
    types += [k[len("changed_"):] for k in report_row if k.startswith("changed_")]
    for ft in dict.fromkeys(types):
        changed, p = report_row.get(f"changed_{ft}"), report_row.get(f"p_hellinger_{ft}")
        if changed is None or p is None or (isinstance(p, float) and math.isnan(p)):
            continue
        a, b = stages
        what = "changed beyond noise" if bool(changed) else "no change beyond noise"
        # p is the neuron's own p-value, the flag Benjamini-Hochberg's over the report's tested neurons: an unflagged
        # neuron read "no change beyond noise (pos, p = 0.012)", a contradiction at alpha 0.05 (36 of MiniLM's tested
        # pos neurons, PTB -> WikiText, helper 348). A flagged one's p is below alpha, as the verdict says.
        corrected = "" if bool(changed) else " before the Benjamini-Hochberg correction"
        return f"{what} between {_name(a)} and {_name(b)} ({_name(ft)}, {p_text(float(p))}{corrected})"
    return None


def neuron_summary(card: Mapping[str, Any], report_row: Mapping[str, Any] | None = None,
                   stages: tuple[str, str] | None = None, feature_type: str | None = None,
                   kinds: Mapping[str, str] | None = None, orders: Mapping[str, float] | None = None) -> str:
    """One sentence describing a neuron, every figure read from `card` (and `report_row` for the change clause).

    Args:
        card (`Mapping`): a ``neuron_cards`` row (or the same fields): ``count``, ``win_rate``, ``top_<ft>`` lists
            of ``{"feature", "probability"}``, optional ``top_position``, ``top_position_share``, ``promoted``.
        report_row (`Mapping`, *optional*): the neuron's row of a transfer report; the change clause needs its
            ``changed_<ft>`` and ``p_hellinger_<ft>`` columns.
        stages (`tuple[str, str]`, *optional*): the report's stage names A and B.
        feature_type (`str`, *optional*): whose p-value to quote (default: the tag feature of the card).
        kinds (`Mapping[str, str]`, *optional*): the feature kinds the profile recorded (``meta.feature_kinds``):
            which of the card's features are tags (else as registered in this process).
        orders (`Mapping[str, float]`, *optional*): the reading orders the profile recorded
            (``meta.feature_orders``): which tag and which text feature the sentence names (else as registered here).

    Returns:
        `str`: e.g. ``"Wins 2.1% of positions, mostly NOUN (61.0%) and PROPN (22.0%); prefers 'year'; promotes 'ago'."``

    Raises:
        ConfigurationError: `card` (or a given `report_row`) is not a mapping.
    """
    _check_mapping("card", card)
    if report_row is not None:
        _check_mapping("report_row", report_row)
    count = card.get("count")
    if count is not None and int(count) == 0:
        return "Never wins a position at this stage (dead)."
    rate = card.get("win_rate")
    head = f"Wins {percent(rate)} of positions" if rate is not None else "Wins some positions"
    tag = _tag_clause(card, kinds, orders)
    first = f"{head}, {tag}" if tag else head
    clauses = [first, _prefers_clause(card, kinds, orders), _position_clause(card), _promotes_clause(card),
               _change_clause(report_row, stages, feature_type or _tag_type(card, kinds, orders))]
    return "; ".join(c for c in clauses if c) + "."


def _check_mapping(name: str, value: Any) -> None:
    """Refuse what is not a mapping of fields: None or a string failed with an AttributeError, and a pandas row
    (a Series iterates over its values) with one about its values (helper 369)."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"neuron_summary's {name} must be a mapping of its fields (a NeuronCard, a dict, a pandas row's "
            f".to_dict()), got {type(value).__name__} {one_line(repr(value))[:60]}.")


def _items(top_features: Any) -> list[tuple[Any, Any]]:
    """A card's ``top_features`` as (feature type, values) pairs; none where it is no mapping (a card built by hand)."""
    return list(top_features.items()) if isinstance(top_features, Mapping) else []


def _first_top_value(values: Any) -> Any:
    """The first value of a card's top values of one feature type, as its repr shows it: the ``"feature"`` of the first
    row (rows as :func:`neuron_card` builds them, or a table of them), the first item itself otherwise; None when
    there is none."""
    rows = values.to_dict("records") if hasattr(values, "to_dict") else values
    try:
        first = next(iter(rows), None)
    except TypeError:  # not a collection
        return None
    return first.get("feature", first) if isinstance(first, Mapping) else first


@dataclass(eq=False)
class NeuronCard(Mapping):
    """Everything known about one neuron at one stage, shaped like OpenAI neuron-explainer's ``NeuronRecord``: its
    identity, statistics, preference distributions per feature type, top examples, activation histogram, output
    effects, status in each transfer report and the summary sentence. Built by :func:`neuron_card` from a Profile
    (and reports): the viewer, ``hf-txray show --neuron`` and the dataset card's per-neuron columns read it.

    It is also a read-only mapping of the ``neuron_cards`` row fields (``card["count"]``, ``card["top_pos"]``,
    ``card.get("promoted")``), which is what :func:`neuron_summary` reads.

    Attributes:
        stage (`str`), layer (`int`), neuron (`int`): identity.
        expert, unit (`int`, *optional*): the neuron as expert x width + unit in mixture-of-experts layers; None in
            dense layers.
        shared (`bool`, *optional*): whether it is a unit of the shared expert(s), numbered after the routed
            experts' units (then `expert` is None and `unit` is its column in the shared expert's down projection);
            None in dense layers.
        count (`int`): credits.
        mass (`float`): credited activation mass (summed activations, the model's units).
        win_rate (`float`): credits / positions, in [0, 1].
        positions (`int`): profiled positions of the stage.
        top_features (`dict[str, list[dict]]`): per feature type, the top values as ``{"feature", "probability",
            "mass", "count"}``, most mass first.
        top_examples (`list[dict]`): the highest credited positions: rank, activation, token, left, right.
        top_position (`int`, *optional*), top_position_share (`float`, *optional*): the token index that gave the
            most mass, and its share (when the profile kept position mass).
        activation_histogram (`pd.DataFrame`, *optional*): low, high, count of the credited activations.
        promoted, suppressed (`list[str]`, *optional*): output effects (tokens pushed up / down), when profiled.
        status (`dict[str, str]`): per transfer report name, the neuron's status (shared, lost, gained, dead).
        summary (`str`): :func:`neuron_summary` of the card, with the change clause of the report that ends at
            this stage when one was given.
    """

    stage: str
    layer: int
    neuron: int
    count: int
    mass: float
    win_rate: float
    positions: int
    top_features: dict[str, list[dict[str, Any]]]
    expert: int | None = None
    unit: int | None = None
    shared: bool | None = None
    top_examples: list[dict[str, Any]] = field(default_factory=list)
    top_position: int | None = None
    top_position_share: float | None = None
    activation_histogram: Any = None
    promoted: list[str] | None = None
    suppressed: list[str] | None = None
    status: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    def fields(self) -> dict[str, Any]:
        """The card as the flat fields of a ``neuron_cards`` row (``top_<feature type>`` lists; absent parts left
        out)."""
        out: dict[str, Any] = {"stage": self.stage, "layer": self.layer, "neuron": self.neuron, "count": self.count,
                               "mass": self.mass, "win_rate": self.win_rate}
        out.update({f"top_{ft}": values for ft, values in self.top_features.items()})
        if self.top_position is not None:
            out["top_position"], out["top_position_share"] = self.top_position, self.top_position_share
        if self.promoted is not None:
            out["promoted"], out["suppressed"] = self.promoted, self.suppressed
        return out

    def __repr__(self) -> str:
        # one line, as a Profile's and a TransferReport's: the dataclass's own repr held the activation histogram's
        # table and every top example (about 5000 characters on 58 lines for a neuron of MiniLM, the table's rows in
        # the middle of a line: a notebook cell ending with the card showed that, helper 428). The fields stay
        # attributes and mapping keys.
        unit = "" if self.expert is None and self.unit is None else \
            f", expert={self.expert}, unit={self.unit}" + (", shared=True" if self.shared else "")
        # a card built by hand may hold other shapes (win_rate None, top values as plain strings or a table): its
        # repr raised (TypeError, KeyError, ValueError) where it now shows what it holds (helper 434)
        tops = ", ".join(f"{ft}={clip_right(str(value), 40)!r}" for ft, value in
                         ((ft, _first_top_value(values)) for ft, values in _items(self.top_features))
                         if value is not None)
        rate = f"{self.win_rate:.4g}" if isinstance(self.win_rate, (int, float)) else repr(self.win_rate)
        return (f"NeuronCard(stage={self.stage!r}, layer={self.layer}, neuron={self.neuron}{unit}, count={self.count}, "
                f"win_rate={rate}, top: {tops or '-'}, status={self.status}, summary={self.summary!r})")

    def __getitem__(self, key: str) -> Any:
        return self.fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields())

    def __len__(self) -> int:
        return len(self.fields())


def neuron_card(profile: Any, layer: int, neuron: int, top: int | None = None,
                reports: Iterable[Any] = ()) -> NeuronCard:
    """One neuron's :class:`NeuronCard` from a :class:`~hf_txray.Profile` (and transfer reports).

    Args:
        profile (`Profile`): the stage.
        layer (`int`), neuron (`int`): the neuron.
        top (`int`, *optional*): top features kept per feature type, at least 1 (default: as exported,
            ``TOP_FEATURES``).
        reports (iterable of `TransferReport`, *optional*): reports with this stage as A or B: the card's `status`
            per report, and the summary's change clause from the (first) report whose stage B is this stage.

    Raises:
        ConfigurationError: a layer that was not profiled or a neuron out of range, `top` not an int >= 1, `reports`
            not an iterable of reports (one report: ``reports=[report]``), or a report that names this stage but was
            not made from this profile (``TransferReport.made_from``: another model, corpus or credit count).
    """
    from .architectures import expert_unit, routed_experts
    from .counts import check_count
    from .options import resolve_layer
    from .output_effects import neuron_tokens

    # top=-1 kept all features but the last (pandas' head(-1)), 0 the default 10, 2.5 and True failed in pandas
    top = check_count("top", top, none=f"the exported {TOP_FEATURES}", note="the top features kept per feature type")
    # one report (not in a list) failed "'TransferReport' object is not iterable", [None] "no attribute 'meta'"
    if isinstance(reports, (str, bytes)) or not hasattr(reports, "__iter__") or hasattr(reports, "made_from"):
        raise ConfigurationError(f"reports must be an iterable of TransferReport (reports=[report]), got "
                                 f"{type(reports).__name__}.")
    reports = list(reports)
    odd = [r for r in reports if not hasattr(r, "made_from")]
    if odd:
        raise ConfigurationError(f"reports must hold TransferReport objects (hf_txray.compare), got "
                                 f"{type(odd[0]).__name__}.")

    layer = resolve_layer(profile.meta.layers, layer, "was not profiled")  # -1: the last block, named as such
    row = profile._row(layer, neuron)
    config = profile.meta.config
    expert, unit, shared = expert_unit(neuron, config.get("expert_width"), routed_experts(config))
    top_features = {}
    for ft in profile.feature_types:
        stats = profile.feature_stats(layer, neuron, ft).head(TOP_FEATURES if top is None else top)
        top_features[ft] = [{"feature": f, "probability": float(p), "mass": float(m), "count": int(c)}
                            for f, p, m, c in zip(stats["feature"], stats["probability"], stats["mass"],
                                                  stats["count"])]
    examples = profile.top_examples(layer, neuron)
    card = NeuronCard(
        stage=profile.stage, layer=int(layer), neuron=int(neuron), expert=expert, unit=unit, shared=shared,
        count=int(profile.neuron_count.reshape(-1)[row]), mass=float(profile.neuron_mass.reshape(-1)[row]),
        win_rate=float(profile.win_rate().reshape(-1)[row]), positions=int(profile.meta.num_positions),
        top_features=top_features,
        top_examples=examples[[c for c in ("rank", "activation", "token", "left", "right") if c in examples]]
        .to_dict("records"))
    if profile.position_mass is not None:
        e = profile.position_mass.entries()  # sorted by row, then position
        lo, hi = (int(i) for i in e["row"].searchsorted([row, row + 1]))
        mass = e["mass"][lo:hi]
        best = int(mass.argmax()) if hi > lo else -1  # positions ascending: ties go to the earliest
        card.top_position = int(e["position"][lo + best]) if best >= 0 else -1
        card.top_position_share = float(mass[best] / mass.sum()) if best >= 0 and mass.sum() > 0 else 0.0
    if profile.activation_histogram is not None:
        card.activation_histogram = profile.activation_distribution(layer, neuron)
    if profile.output_effects is not None:
        card.promoted = neuron_tokens(profile.output_effects, layer, neuron, "promoted")
        card.suppressed = neuron_tokens(profile.output_effects, layer, neuron, "suppressed")
    change = None
    for report in reports:
        sides = [side for side, stage in (("a", report.meta.stage_a), ("b", report.meta.stage_b))
                 if stage == profile.stage]
        if not sides:
            continue
        if not any(report.made_from(profile, side) for side in sides):  # helper 183: its status and change were shown
            raise ConfigurationError(
                f"Report {report.name!r} names stage {profile.stage!r} but was not made from this profile (its model, "
                f"corpus, layers or credits differ: {int(profile.neuron_count.sum())} credits here), so its status "
                "and change would describe another profile's neuron. Pass the reports made from this profile, or "
                "give the stages distinct names.")
        line = report.neurons[(report.neurons["layer"] == layer) & (report.neurons["neuron"] == neuron)]
        if len(line):
            card.status[report.name] = str(line["status"].iloc[0])
            if change is None and report.meta.stage_b == profile.stage:
                change = (line.iloc[0].to_dict(), (report.meta.stage_a, report.meta.stage_b))
    card.summary = neuron_summary(card, *(change or (None, None)), kinds=profile.meta.feature_kinds,
                                  orders=profile.meta.feature_orders)
    return card
