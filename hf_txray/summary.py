"""A neuron in one sentence, built from the numbers of its card (no language model).

Example: "Wins 2.1% of positions, mostly NOUN (61%) and PROPN (22%); prefers 'year', 'years', 'months';
promotes 'ago', 'later'; changed beyond noise between pretrained and fine-tuned (p < 0.001)."

Every figure comes from a field of the card (a ``neuron_cards`` row: ``count``, ``win_rate``, ``top_<feature
type>`` lists, ``top_position``/``top_position_share``, ``promoted``) or, for the change clause, from the transfer
report's row of the neuron (``p_hellinger_<ft>`` and ``changed_<ft>``, written by the significance tests; the clause
is left out when the report has no such columns). A clause whose fields are absent is left out.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

TAG_ORDER = ("pos", "dep", "ner")  # the tag feature the sentence reads first, before user features
WORD_ORDER = ("word", "token")
SECOND_TAG_MIN = 0.10  # a second tag is named when it holds at least this share of the mass
FIRST_POSITION_MIN = 0.5  # the position clause appears when one token index holds at least half the mass
NAMES = 3  # values named in the "prefers" and "promotes" clauses
TOP_FEATURES = 10  # top features kept per neuron and feature type in a card (the `neuron_cards` config)


def _percent(share: float) -> str:
    value = 100 * float(share)
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else f"{value:.2g}%"


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(repr(str(v)) for v in values)


def _top_list(card: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = card.get(name)
    return [v for v in value if v is not None] if value is not None else []


def _tag_type(card: Mapping[str, Any]) -> str | None:
    types = [k[len("top_"):] for k in card if k.startswith("top_") and k not in ("top_examples", "top_position",
                                                                                  "top_position_share")]
    for ft in TAG_ORDER:
        if ft in types:
            return ft
    others = [ft for ft in types if ft not in WORD_ORDER]
    return others[0] if others else None


def _tag_clause(card: Mapping[str, Any]) -> str | None:
    ft = _tag_type(card)
    top = _top_list(card, f"top_{ft}") if ft else []
    if not top:
        return None
    first = f"{top[0]['feature']} ({_percent(top[0]['probability'])})"
    if len(top) > 1 and top[1]["probability"] >= SECOND_TAG_MIN:
        return f"mostly {first} and {top[1]['feature']} ({_percent(top[1]['probability'])})"
    return f"mostly {first}"


def _prefers_clause(card: Mapping[str, Any]) -> str | None:
    for ft in WORD_ORDER:
        top = _top_list(card, f"top_{ft}")
        if top:
            return f"prefers {_quoted([v['feature'] for v in top[:NAMES]])}"
    return None


def _position_clause(card: Mapping[str, Any]) -> str | None:
    share, position = card.get("top_position_share"), card.get("top_position")
    if share is None or position is None or position < 0 or share < FIRST_POSITION_MIN:
        return None
    return f"{_percent(share)} of its mass from token position {int(position)}"


def _promotes_clause(card: Mapping[str, Any]) -> str | None:
    promoted = card.get("promoted")
    return f"promotes {_quoted(list(promoted)[:NAMES])}" if promoted is not None and len(promoted) else None


def _p_text(p: float) -> str:
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
        return f"{what} between {a} and {b} ({ft}, {_p_text(float(p))})"
    return None


def neuron_summary(card: Mapping[str, Any], report_row: Mapping[str, Any] | None = None,
                   stages: tuple[str, str] | None = None, feature_type: str | None = None) -> str:
    """One sentence describing a neuron, every figure read from `card` (and `report_row` for the change clause).

    Args:
        card (`Mapping`): a ``neuron_cards`` row (or the same fields): ``count``, ``win_rate``, ``top_<ft>`` lists
            of ``{"feature", "probability"}``, optional ``top_position``, ``top_position_share``, ``promoted``.
        report_row (`Mapping`, *optional*): the neuron's row of a transfer report; the change clause needs its
            ``changed_<ft>`` and ``p_hellinger_<ft>`` columns.
        stages (`tuple[str, str]`, *optional*): the report's stage names A and B.
        feature_type (`str`, *optional*): whose p-value to quote (default: the tag feature of the card).

    Returns:
        `str`: e.g. ``"Wins 2.1% of positions, mostly NOUN (61%) and PROPN (22%); prefers 'year'; promotes 'ago'."``
    """
    count = card.get("count")
    if count is not None and int(count) == 0:
        return "Never wins a position at this stage (dead)."
    rate = card.get("win_rate")
    head = f"Wins {_percent(rate)} of positions" if rate is not None else "Wins some positions"
    tag = _tag_clause(card)
    first = f"{head}, {tag}" if tag else head
    clauses = [first, _prefers_clause(card), _position_clause(card), _promotes_clause(card),
               _change_clause(report_row, stages, feature_type or _tag_type(card))]
    return "; ".join(c for c in clauses if c) + "."


def neuron_card(profile: Any, layer: int, neuron: int, top: int | None = None) -> dict[str, Any]:
    """One neuron's card from a :class:`~hf_txray.Profile`: the fields of its ``neuron_cards`` row that the summary
    and the neuron page read (count, mass, win rate, top features, top position and its share, output tokens).

    Args:
        profile (`Profile`): the stage.
        layer (`int`), neuron (`int`): the neuron.
        top (`int`, *optional*): top features kept per feature type (default: as exported, ``TOP_FEATURES``).
    """
    from .output_effects import neuron_tokens

    row = profile._row(layer, neuron)
    card: dict[str, Any] = {"stage": profile.stage, "layer": int(layer), "neuron": int(neuron),
                            "count": int(profile.neuron_count.reshape(-1)[row]),
                            "mass": float(profile.neuron_mass.reshape(-1)[row]),
                            "win_rate": float(profile.win_rate().reshape(-1)[row])}
    for ft in profile.feature_types:
        stats = profile.feature_stats(layer, neuron, ft).head(top or TOP_FEATURES)
        card[f"top_{ft}"] = [{"feature": f, "probability": float(p), "mass": float(m), "count": int(c)}
                             for f, p, m, c in zip(stats["feature"], stats["probability"], stats["mass"],
                                                   stats["count"])]
    if profile.position_mass is not None:
        e = profile.position_mass.entries()  # sorted by row, then position
        lo, hi = (int(i) for i in e["row"].searchsorted([row, row + 1]))
        mass = e["mass"][lo:hi]
        best = int(mass.argmax()) if hi > lo else -1  # positions ascending: ties go to the earliest
        card["top_position"] = int(e["position"][lo + best]) if best >= 0 else -1
        card["top_position_share"] = float(mass[best] / mass.sum()) if best >= 0 and mass.sum() > 0 else 0.0
    if profile.output_effects is not None:
        for direction in ("promoted", "suppressed"):
            card[direction] = neuron_tokens(profile.output_effects, layer, neuron, direction)
    return card
