"""Word-list rules: marketing, review solicitation and off-platform contact phrases, per language, scored.

Reads the `rules` of [marketing], [review] and [contact] in policy.toml (compiled into one
alternation per category by settings.py). Each match carries its rule's weight; the engine
fires a category only when the weights in one message reach the category's threshold, so a
lone weak word ("sale", "webinar") never rejects an ordinary message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from relay.message.normalize import View
from relay.policy.links import Hit
from relay.policy.settings import CompiledCategory


def find_phrases(view: View, compiled: CompiledCategory, found: Mapping[str, Sequence[int]], *,
                 windowed: bool = True) -> list[Hit]:
    """Every phrase-rule match of one category in the view (view offsets); `found`: where the
    rule literals occur in the view's text (Policy.phrase_literals_in): the patterns run only
    near them (windowed=False: over the whole text)."""
    if not view.text:
        return []
    regex, windows = compiled.plan(view.text, found, windowed=windowed)
    return _matches(view, compiled, regex, windows)


def find_phrases_at(view: View, compiled: CompiledCategory,
                    plan: tuple[list[tuple[str, tuple[int, ...]]], list[tuple[int, int]] | None]) -> list[Hit]:
    """Every phrase-rule match of one category in the view, given which patterns can match and
    the windows they can match in (relay.policy.scanner's one pass over the text)."""
    active, windows = plan
    if not view.text or not active:
        return []
    return _matches(view, compiled, compiled.regex_for(active), windows)


def _matches(view: View, compiled: CompiledCategory, regex: re.Pattern[str] | None,
             windows: list[tuple[int, int]] | None) -> list[Hit]:
    if regex is None:
        return []
    text = view.text
    matches = regex.finditer(text) if windows is None else (
        m for start, end in windows for m in regex.finditer(text, start, end))
    hits: list[Hit] = []
    for m in matches:
        if m.end() <= m.start() or m.lastgroup is None:
            continue
        rule = compiled.rules.get(m.lastgroup)
        if rule is None:  # a user pattern with its own named group: find the rule group that matched
            rule = next((r for g, r in compiled.rules.items() if m.group(g) is not None), None)
            if rule is None:
                continue
        hits.append(Hit(compiled.name, rule.id, m.start(), m.end(), f"phrase rule ({rule.lang})", rule.weight))
    return hits


def score(hits: list[Hit]) -> float:
    """Total weight, counting each rule at most twice (repetition is not extra evidence)."""
    seen: dict[str, int] = {}
    total = 0.0
    for h in hits:
        seen[h.rule] = seen.get(h.rule, 0) + 1
        if seen[h.rule] <= 2:
            total += h.weight
    return total
