"""Policy as data: config/policy.toml → a validated, compiled `Policy`.

Reads the whole policy file (categories, word lists per language, actions, allowlists,
attachment limits). A bad file raises PolicyConfigError naming the key and the problem;
regexes are compiled here, once, and patterns with nested quantifiers (catastrophic
backtracking) are refused.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import ahocorasick_rs
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from relay.config import parse_size

ActionName = Literal["reject", "hold", "strip", "redact", "flag", "none"]
RANK: dict[str, int] = {"none": 0, "flag": 1, "redact": 2, "strip": 2, "hold": 3, "reject": 4}
Size = Annotated[int, BeforeValidator(parse_size)]

# A group holding a quantifier, itself quantified: (a+)+, (a|b*)*, (\w+\s?){2,} … exponential on a miss.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")


class PolicyConfigError(ValueError):
    """The policy file is unusable; `key` is the dotted path of the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhraseRule(_Model):
    id: str
    lang: str = "any"
    weight: float = 1.0
    patterns: list[str] = Field(min_length=1)
    action: ActionName | None = None

    @field_validator("patterns")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for pat in value:
            if _NESTED_QUANTIFIER.search(pat):
                raise ValueError(f"pattern {pat!r} nests quantifiers (catastrophic backtracking)")
            try:
                re.compile(pat)
            except re.error as exc:
                raise ValueError(f"pattern {pat!r} does not compile: {exc}") from None
        return value


class Category(_Model):
    action: ActionName
    reply: str
    threshold: float = 1.0
    rules: list[PhraseRule] = []
    disabled_rules: list[str] = []
    rule_actions: dict[str, ActionName] = {}


class LinksCategory(Category):
    shorteners: list[str] = []
    redirectors: list[str] = []
    word_dot_tlds: list[str] = ["com", "net", "org"]
    file_extension_tlds: list[str] = []
    common_tlds: list[str] = []


class ContactCategory(Category):
    mail_providers: list[str] = []


class AllowedType(_Model):
    extensions: list[str]
    mime_types: list[str] = []


class Attachments(_Model):
    action: ActionName = "strip"
    reply: str = "this kind of attachment is not allowed"
    content_action: ActionName | Literal["inherit"] = "strip"
    allowed: dict[str, AllowedType]
    max_file_size: Size = 10 * 1024 * 1024
    max_total_size: Size = 25 * 1024 * 1024
    max_count: int = 20
    filename_max_length: int = 120
    pdf_max_pages: int = 30
    docx_max_bytes: Size = 50 * 1024 * 1024
    image_max_pixels: int = 50_000_000
    qr_scan: bool = True
    qr_max_side: int = 1600
    scrub_metadata: bool = True
    notice: str = 'The attachment "{filename}" was removed by the marketplace: {reason}.'
    reasons: dict[str, str] = {}


class Allowlist(_Model):
    domains: list[str] = []
    emails: list[str] = []


class ModelThreshold(_Model):
    """One category's verdicts from the trained model: `action` at or above `high`, hold between
    `low` and `high`, nothing below `low` (omitted thresholds: those the model file was trained with)."""
    high: float | None = Field(default=None, ge=0.0, le=1.0)
    low: float | None = Field(default=None, ge=0.0, le=1.0)
    action: Literal["reject", "redact"] = "reject"


class ModelSection(_Model):
    enabled: bool = False
    path: str = ""   # "" → the model shipped with relay (relay/policy/model.npz); relative → to the policy file
    marketing: ModelThreshold = ModelThreshold()
    review: ModelThreshold = ModelThreshold()
    contact: ModelThreshold = ModelThreshold()


class Settings(_Model):
    version: int = 1
    redaction_marker: str = "[removed]"
    max_text_chars: int = 2_000_000
    allowlist: Allowlist = Allowlist()
    links: LinksCategory
    contact: ContactCategory
    marketing: Category
    review: Category
    tracking: Category
    attachments: Attachments
    model: ModelSection = ModelSection()

    @field_validator("redaction_marker")
    @classmethod
    def _marker_ascii(cls, value: str) -> str:
        if not value.isascii():
            raise ValueError("must be ASCII")
        return value


@dataclass(slots=True)
class CompiledCategory:
    """All phrase rules of a category as one alternation; group name → rule.

    `needs` says which literals a pattern's every match contains; `plan` compiles the alternation
    of only the patterns whose literals a text holds, and where in it they can match.
    """

    name: str
    regex: re.Pattern[str] | None
    rules: dict[str, PhraseRule]
    #: per rule group, per pattern: literals one of which every match contains (None: unknown)
    needs: dict[str, tuple[frozenset[str] | None, ...]] = field(default_factory=dict)
    #: per rule group, per pattern: (the longest text a match can span, how far past its end a
    #: look-ahead reads); None: unbounded
    widths: dict[str, tuple[tuple[int, int] | None, ...]] = field(default_factory=dict)
    _cache: dict[tuple[tuple[str, tuple[int, ...]], ...], re.Pattern[str]] = field(default_factory=dict)
    _active: dict[frozenset[str], list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict)

    def literals(self) -> set[str]:
        return {n for needs in self.needs.values() for need in needs if need for n in need if n}

    def plan(self, text: str, found: Mapping[str, Sequence[int]], *, windowed: bool = True,
             ) -> tuple[re.Pattern[str] | None, list[tuple[int, int]] | None]:
        """(the alternation of only the patterns that can match `text` — a pattern whose required
        literals are all absent cannot —, compiled once per combination; the windows of text it
        needs to run in, None: all of it).

        `found`: each literal present in text → where it starts (Policy.phrase_literals_in). Every
        match of a pattern contains one of its required literals and spans at most the pattern's
        width, so it lies within that width of a literal's occurrence; outside those windows
        nothing can match. A window reaches further by the longest look-ahead (and one character,
        for \\b and $). windowed=False: the whole text (the reference the windows are tested on)."""
        key = frozenset(found.keys())
        active = self._active.get(key)
        if active is None:
            active = self._select(key)
            if len(self._active) < 4096:
                self._active[key] = active
        if not active:
            return None, None
        return self.regex_for(active), (self._windows(text, active, found) if windowed else None)

    def regex_for(self, active: list[tuple[str, tuple[int, ...]]]) -> re.Pattern[str]:
        """The alternation of only the `active` patterns (rule group, pattern indexes; in rule
        order), compiled once per combination."""
        total = sum(len(needs) for needs in self.needs.values())
        if sum(len(i) for _, i in active) == total and self.regex is not None:
            return self.regex
        combination = tuple(active)
        cached = self._cache.get(combination)
        if cached is None:
            cached = re.compile("|".join(_group(g, self.rules[g], idx) for g, idx in active))
            if len(self._cache) < 1024:
                self._cache[combination] = cached
        return cached

    def _select(self, present: frozenset[str]) -> list[tuple[str, tuple[int, ...]]]:
        """The rule groups, and their patterns, that can match a text holding `present`."""
        active: list[tuple[str, tuple[int, ...]]] = []
        for g, needs in self.needs.items():
            idx = tuple(i for i, need in enumerate(needs)
                        if need is None or "" in need or not need.isdisjoint(present))
            if idx:
                active.append((g, idx))
        return active

    def _windows(self, text: str, active: list[tuple[str, tuple[int, ...]]],
                 found: Mapping[str, Sequence[int]]) -> list[tuple[int, int]] | None:
        width = ahead = 0
        literals: set[str] = set()
        for g, idx in active:
            for i in idx:
                need, w = self.needs[g][i], self.widths[g][i] if g in self.widths else None
                if need is None or "" in need or w is None:
                    return None
                width, ahead = max(width, w[0]), max(ahead, w[1])
                literals |= need
        starts = sorted((at, len(lit)) for lit in literals for at in found.get(lit, ()))
        windows: list[tuple[int, int]] = []
        for at, n in starts:
            a, b = max(0, at - width), min(len(text), at + n + width + ahead + 1)
            if windows and a <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(windows[-1][1], b))
            else:
                windows.append((a, b))
        return windows


#: a pattern whose matches (or look-aheads) may be longer than this runs over the whole text
_MAX_WINDOWED_WIDTH = 4096


def _lookahead(items: Any) -> int:
    """The longest look-ahead anywhere in a parsed pattern (what it reads past the match's end)."""
    from re import _constants as c  # type: ignore[attr-defined]

    longest = 0
    for op, av in items:
        if op in (c.ASSERT, c.ASSERT_NOT):
            direction, sub = av
            if direction == 1:
                longest = max(longest, sub.getwidth()[1])
            longest = max(longest, _lookahead(sub.data))
        elif op is c.SUBPATTERN:
            longest = max(longest, _lookahead(av[3].data))
        elif op is c.BRANCH:
            longest = max([longest, *(_lookahead(b.data) for b in av[1])])
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            longest = max(longest, _lookahead(av[2].data))
        elif op is c.ATOMIC_GROUP:
            longest = max(longest, _lookahead(av.data))
    return longest


def _pattern_widths(rule: PhraseRule) -> tuple[tuple[int, int] | None, ...]:
    from re import _parser  # type: ignore[attr-defined]

    out: list[tuple[int, int] | None] = []
    for pat in rule.patterns:
        parsed = _parser.parse(pat)
        hi, ahead = parsed.getwidth()[1], _lookahead(parsed.data)
        out.append((hi, ahead) if max(hi, ahead) <= _MAX_WINDOWED_WIDTH else None)
    return tuple(out)


def _group(gname: str, rule: PhraseRule, only: tuple[int, ...] | None = None) -> str:
    pats = rule.patterns if only is None else [rule.patterns[i] for i in only]
    return f"(?P<{gname}>" + "|".join(f"(?:{p})" for p in pats) + ")"


#: characters ordinary prose seldom holds: each counts as three letters when literals are compared
_RARE_CHARS = frozenset("@#$%&*+=<>[]{}|\\~^＠")


def _selectivity(literal: str) -> int:
    """How seldom a literal occurs in ordinary text, roughly: its length, a rare symbol counting
    three ("@" is found less often than "ig", which "original" and "right" hold)."""
    return len(literal) + 2 * sum(ch in _RARE_CHARS for ch in literal)


def _required_literals(items: Any) -> set[str] | None:
    """Literal strings one of which occurs in every match of a parsed pattern (anywhere), or None.

    In a sequence, any mandatory element with a known set will do; the most selective is kept:
    the one whose least selective literal is most selective (see _selectivity).
    """
    from re import _constants as c  # type: ignore[attr-defined]

    best: set[str] | None = None

    def consider(found: set[str] | None) -> None:
        nonlocal best
        if found and (best is None or min(map(_selectivity, found)) > min(map(_selectivity, best))):
            best = found

    run = ""
    for op, av in items:
        if op is c.LITERAL:
            run += chr(av)
            continue
        if run:
            consider({run})
            run = ""
        if op is c.BRANCH:
            out: set[str] = set()
            for branch in av[1]:
                got = _required_literals(branch)
                if got is None:
                    out = set()
                    break
                out |= got
            consider(out or None)
        elif op is c.SUBPATTERN:
            consider(_required_literals(av[3]))
        elif (op is c.MAX_REPEAT or op is c.MIN_REPEAT) and av[0] >= 1:
            consider(_required_literals(av[2]))
        elif op is c.IN and all(o is c.LITERAL for o, _ in av) and len(av) <= 8:
            consider({chr(v) for _, v in av})
    if run:
        consider({run})
    return best


def _pattern_needs(rule: PhraseRule) -> tuple[frozenset[str] | None, ...]:
    from re import _parser  # type: ignore[attr-defined]

    out = []
    for pat in rule.patterns:
        parsed = _parser.parse(pat)
        got = _required_literals(parsed.data)
        # a pattern with inline flags (e.g. (?i)) may match other cases: do not filter it
        out.append(frozenset(got) if got and not parsed.state.flags & re.IGNORECASE else None)
    return tuple(out)


@dataclass(slots=True)
class Policy:
    settings: Settings
    phrases: dict[str, CompiledCategory] = field(default_factory=dict)
    allow_domains: frozenset[str] = frozenset()
    allow_emails: frozenset[str] = frozenset()
    shorteners: frozenset[str] = frozenset()
    redirectors: frozenset[str] = frozenset()
    source: Path | None = None
    #: [model]: the model file and, per category, (high, low, action); None when disabled
    model_path: Path | None = None
    model_verdicts: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    _finder: ahocorasick_rs.AhoCorasick | None = None
    _literals: list[str] = field(default_factory=list)

    def phrase_literals_in(self, text: str) -> dict[str, list[int]]:
        """Where each required literal of every category's phrase rules starts in `text` (only
        those present), found in one Aho–Corasick pass."""
        if self._finder is None:
            self._literals = sorted(set().union(*(c.literals() for c in self.phrases.values())))
            if not self._literals:
                return {}
            # A DFA (~0.9 MB for the default policy's 305 literals) scans 2.5 times faster than
            # the contiguous NFA the library picks by default (55 KB of text: 0.16 vs 0.38 ms).
            self._finder = ahocorasick_rs.AhoCorasick(self._literals, implementation=ahocorasick_rs.Implementation.DFA)
        found: dict[str, list[int]] = {}
        for idx, start, _end in self._finder.find_matches_as_indexes(text, overlapping=True):
            found.setdefault(self._literals[idx], []).append(start)
        return found

    def category(self, name: str) -> Category:
        cat = getattr(self.settings, name, None)
        if not isinstance(cat, Category):
            raise KeyError(name)
        return cat

    def action_for(self, category: str, rule: str) -> str:
        if category == "attachment":
            return self.settings.attachments.action
        cat = self.category(category)
        if rule in cat.rule_actions:
            return cat.rule_actions[rule]
        for r in cat.rules:
            if r.id == rule and r.action:
                return r.action
        return cat.action

    def enabled(self, category: str, rule: str) -> bool:
        if category == "attachment":
            return True
        return rule not in self.category(category).disabled_rules

    def reply_for(self, category: str) -> str:
        if category == "attachment":
            return self.settings.attachments.reply
        return self.category(category).reply


def _compile_category(name: str, cat: Category) -> CompiledCategory:
    rules: dict[str, PhraseRule] = {}
    for i, rule in enumerate(cat.rules):
        if rule.id not in cat.disabled_rules:
            rules[f"r{i}"] = rule
    regex = re.compile("|".join(_group(g, r) for g, r in rules.items())) if rules else None
    return CompiledCategory(name, regex, rules,
                            {g: _pattern_needs(r) for g, r in rules.items()},
                            {g: _pattern_widths(r) for g, r in rules.items()})


def build_policy(data: dict[str, Any], source: Path | None = None) -> Policy:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top)"
        raise PolicyConfigError(key, err["msg"]) from None
    ids: set[str] = set()
    for cname in ("links", "contact", "marketing", "review", "tracking"):
        for rule in getattr(settings, cname).rules:
            if rule.id in ids:
                raise PolicyConfigError(f"{cname}.rules", f"duplicate rule id {rule.id!r}")
            ids.add(rule.id)
    try:
        phrases = {c: _compile_category(c, getattr(settings, c)) for c in ("contact", "marketing", "review")}
    except re.error as exc:  # pragma: no cover - each pattern was compiled alone above
        raise PolicyConfigError("rules", f"combined pattern does not compile: {exc}") from None
    from relay.message.normalize import fold

    model_path, verdicts = _model_settings(settings.model, source)
    return Policy(
        settings=settings,
        phrases=phrases,
        allow_domains=frozenset(fold(d).strip(".") for d in settings.allowlist.domains),
        allow_emails=frozenset(fold(e) for e in settings.allowlist.emails),
        shorteners=frozenset(fold(d) for d in settings.links.shorteners),
        redirectors=frozenset(fold(d) for d in settings.links.redirectors),
        source=source,
        model_path=model_path,
        model_verdicts=verdicts,
    )


def _model_settings(section: ModelSection, source: Path | None) -> tuple[Path | None, dict[str, tuple[float, float, str]]]:
    """[model] checked against its file (which must exist and be a model when enabled); the weights
    themselves are read later, once per process (relay.policy.model.load)."""
    if not section.enabled:
        return None, {}
    from relay.policy import model as trained

    path = Path(section.path) if section.path else trained.DEFAULT_PATH
    if not path.is_absolute() and source is not None:
        path = Path(source).parent / path
    if not path.is_file():
        raise PolicyConfigError("model.path", f"{path} does not exist (train one: python -m relay.policy.train)")
    try:
        meta = trained.read_meta(path)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise PolicyConfigError("model.path", f"{path} is not a policy model: {exc}") from None
    verdicts: dict[str, tuple[float, float, str]] = {}
    for cat in trained.CATEGORIES:
        conf: ModelThreshold = getattr(section, cat)
        if cat not in meta.get("categories", ()):
            raise PolicyConfigError(f"model.{cat}", f"{path} has no {cat} model")
        default = meta.get("thresholds", {}).get(cat, {})
        high = conf.high if conf.high is not None else default.get("high")
        low = conf.low if conf.low is not None else default.get("low")
        if high is None or low is None:
            raise PolicyConfigError(f"model.{cat}", "high and low are needed (the model file has none)")
        if low > high:
            raise PolicyConfigError(f"model.{cat}.low", f"{low} is above high ({high})")
        verdicts[cat] = (float(high), float(low), conf.action)
    return path, verdicts


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; raises PolicyConfigError with the key and the problem."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyConfigError("(file)", f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyConfigError("(file)", f"{path} is not valid TOML: {exc}") from None
    return build_policy(data, Path(path))
