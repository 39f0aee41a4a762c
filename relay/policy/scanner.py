"""One pass over a text for every rule pattern of a policy (issue 22): a hyperscan database.

Reads the phrase rules of [contact], [marketing] and [review] (every language), and the fixed
patterns of the message model the content check runs per text: the obfuscations match_view undoes,
the number words and messenger keywords of the contact finder, the heads of the link patterns
with a colon. All of them are compiled into ONE Vectorscan/Hyperscan block-mode database per
policy (`scanner_for`: built on first use and kept per policy object; a reloaded policy with other
rules compiles its own, one with the same rules shares it; the daemon compiles it in a thread,
`compile_in_background`, and workers load the parent's, `dumps`/`install`) and `Scanner.scan` runs
it once over a text.

What a report means: hyperscan runs each pattern in prefilter form — look-arounds, \\b and anchors
dropped, Python's \\s, \\d and \\w spelled out as the code points Python's re gives them —, which
matches wherever the Python pattern matches and maybe elsewhere. So a pattern it does not report
cannot match, and a phrase pattern it reports runs, as the Python regex it is, only within its width
of a reported end (one with a wide gap, [^。\n]{0,30}, within its width of what opens it:
`prefilter_head`): exact spans and alternation order stay Python's. A pattern that has no
prefilter form (a back-reference, inline flags, one that matches the empty string) is triggered by
its required literals (settings._pattern_needs) instead, or runs over the whole text when it has
none. The literals' occurrences are the exact ones an Aho–Corasick search gives.

Config read: the Policy. Errors raised: none (a text hyperscan cannot read — lone surrogates — gets
`None` from scan(); the caller takes its regex path).
"""

from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import hyperscan

from relay.message.normalize import obfuscation_patterns
from relay.message.phones import LITERALS, split_literals
from relay.policy.links import COLON_URI_HEADS
from relay.policy.settings import CompiledCategory, Policy

_MAX_CP = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
Ranges = list[tuple[int, int]]  # sorted, disjoint, inclusive code point ranges


def _union(*sets: Iterable[tuple[int, int]]) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(r for s in sets for r in s):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    at = 0
    for lo, hi in ranges:
        if lo > at:
            out.append((at, lo - 1))
        at = hi + 1
    if at <= _MAX_CP:
        out.append((at, _MAX_CP))
    return out


_CATEGORIES: dict[str, Ranges] = {}
_CATEGORIES_LOCK = threading.Lock()


def _category(name: str) -> Ranges:
    """The code points Python's re gives \\d, \\s or \\w in a str pattern (its own Unicode tables,
    read off the re module itself, so hyperscan's Unicode version does not matter)."""
    with _CATEGORIES_LOCK:
        if not _CATEGORIES:
            every = "".join(map(chr, range(_SURROGATES[0]))) + "".join(map(chr, range(_SURROGATES[1] + 1, _MAX_CP + 1)))

            def cp(i: int) -> int:
                return i if i < _SURROGATES[0] else i + (_SURROGATES[1] - _SURROGATES[0] + 1)

            for key, pat in (("digit", r"\d+"), ("space", r"\s+"), ("word", r"\w+")):
                _CATEGORIES[key] = [(cp(m.start()), cp(m.end() - 1)) for m in re.finditer(pat, every)]
        return _CATEGORIES[name]


class _NoForm(Exception):
    """The pattern has no prefilter form hyperscan takes."""


def _class_ranges(items: list[tuple[Any, Any]]) -> Ranges:
    from re import _constants as c  # type: ignore[attr-defined]

    negate = False
    sets: list[Ranges] = []
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            sets.append([(av, av)])
        elif op is c.RANGE:
            sets.append([av])
        elif op is c.CATEGORY:
            name = {c.CATEGORY_DIGIT: "digit", c.CATEGORY_SPACE: "space", c.CATEGORY_WORD: "word",
                    c.CATEGORY_NOT_DIGIT: "-digit", c.CATEGORY_NOT_SPACE: "-space",
                    c.CATEGORY_NOT_WORD: "-word"}.get(av)
            if name is None:
                raise _NoForm(str(av))
            got = _category(name.lstrip("-"))
            sets.append(_complement(got) if name.startswith("-") else got)
        else:
            raise _NoForm(str(op))
    ranges = _union(*sets)
    return _complement(ranges) if negate else ranges


def _class(ranges: Ranges) -> str:
    if sum(hi >= 0x80 for _lo, hi in ranges) > 4:
        # a large non-ASCII part (Python's \s, \d, \w, a negated class) widened to every
        # non-ASCII character: a superset, and one UTF-8 automaton instead of one per range
        # (the default policy compiles in 0.3 s instead of 0.9 s)
        ranges = _union([(lo, min(hi, 0x7F)) for lo, hi in ranges if lo < 0x80], [(0x80, _MAX_CP)])
    lo_s, hi_s = _SURROGATES
    parts = []
    for lo, hi in ranges:  # hyperscan's UTF-8 mode takes no surrogate code points
        for a, b in ((lo, min(hi, lo_s - 1)), (max(lo, hi_s + 1), hi)):
            if a <= b:
                parts.append(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}")
    if not parts:
        raise _NoForm("empty class")
    return "[" + "".join(parts) + "]"


def _emit(items: Any) -> str:
    from re import _constants as c  # type: ignore[attr-defined]

    out = []
    for op, av in items:
        if op is c.LITERAL:
            if _SURROGATES[0] <= av <= _SURROGATES[1]:
                raise _NoForm("surrogate")
            out.append(f"\\x{{{av:x}}}")
        elif op is c.NOT_LITERAL:
            out.append(_class(_complement([(av, av)])))
        elif op is c.ANY:
            out.append(_class(_complement([(10, 10)])))
        elif op is c.IN:
            out.append(_class(_class_ranges(av)))
        elif op is c.BRANCH:
            out.append("(?:" + "|".join(_emit(b) for b in av[1]) + ")")
        elif op is c.SUBPATTERN:
            _group, add, remove, sub = av
            if add or remove:
                raise _NoForm("inline flags")
            out.append("(?:" + _emit(sub) + ")")
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            out.append("(?:" + _emit(sub) + ")" + (f"{{{lo},}}" if hi is c.MAXREPEAT else f"{{{lo},{hi}}}"))
        elif op is c.ATOMIC_GROUP:
            out.append("(?:" + _emit(av) + ")")
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue  # zero-width: dropped, the form then matches a superset
        else:
            raise _NoForm(str(op))
    return "".join(out)


def _wide_gap(op: Any, av: Any) -> bool:
    """A repeat of up to 8 or more of a class holding non-ASCII characters ([^。\n]{0,30}): in
    UTF-8 each repetition is a small automaton of its own, and a few of them make the database
    "too large"."""
    from re import _constants as c  # type: ignore[attr-defined]

    if op not in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) or (av[1] is not c.MAXREPEAT and av[1] < 8):
        return False
    sub = list(av[2])
    if len(sub) != 1 or sub[0][0] not in (c.IN, c.ANY, c.NOT_LITERAL):
        return False
    kind, arg = sub[0]
    if kind is not c.IN:
        return True
    try:
        ranges = _class_ranges(arg)
    except _NoForm:
        return True
    return bool(ranges) and ranges[-1][1] >= 0x80


def _leading_lookbehind(items: Any) -> str:
    r"""A look-behind of one character class opening the pattern ((?<![a-z]), (?<!\S)) as the
    character it asks for, or the start of the text: the form's ends stay the pattern's and it
    reports far fewer of them than with the look-behind dropped ("(?<!\S)(?:\S[ \t]){3,}\S"
    would otherwise fire on every "x a b c" of prose)."""
    from re import _constants as c  # type: ignore[attr-defined]

    if not items or items[0][0] not in (c.ASSERT, c.ASSERT_NOT):
        return ""
    direction, sub = items[0][1]
    body = list(sub.data) if hasattr(sub, "data") else list(sub)
    if direction != -1 or len(body) != 1 or body[0][0] not in (c.IN, c.LITERAL, c.NOT_LITERAL):
        return ""
    op, av = body[0]
    try:
        ranges = _class_ranges(av) if op is c.IN else ([(av, av)] if op is c.LITERAL else _complement([(av, av)]))
    except _NoForm:
        return ""
    if items[0][0] is c.ASSERT_NOT:
        ranges = _complement(ranges)
        return "(?:^|" + _class(ranges) + ")" if ranges else "^"
    return _class(ranges) if ranges else ""


def _trailing_lookahead(items: Any) -> str:
    """A look-ahead closing the pattern as what it asks for (only where the ends do not matter:
    presence; ",(?=com\b)" is then ",com", not every comma of prose)."""
    from re import _constants as c  # type: ignore[attr-defined]

    if not items or items[-1][0] not in (c.ASSERT, c.ASSERT_NOT):
        return ""
    direction, sub = items[-1][1]
    if direction != 1:
        return ""
    body = list(sub.data) if hasattr(sub, "data") else list(sub)
    try:
        if items[-1][0] is c.ASSERT:
            return "(?:" + _emit(body) + ")"
        if len(body) == 1 and body[0][0] is c.IN:
            rest = _complement(_class_ranges(body[0][1]))
            return "(?:" + _class(rest) + "|$)" if rest else "$"
    except _NoForm:
        pass
    return ""


def prefilter_form(pattern: str, presence: bool = False) -> str | None:
    """A hyperscan (UTF-8 mode) pattern with a match ending wherever a match of the Python pattern
    ends (and maybe elsewhere): zero-width assertions dropped (an opening one-character look-behind
    kept as a character or the start) and, after a wide gap, only what follows it (what ends a
    match). presence=True: a closing look-ahead kept too (the ends then move; for patterns whose
    presence alone is asked). None if there is none to give."""
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern)
        if parsed.state.flags & ~re.UNICODE or parsed.getwidth()[0] == 0:
            return None  # inline flags (case, dot-all, ASCII classes) or an empty match
        items = list(parsed.data)
        last_gap = max((k for k, (op, av) in enumerate(items) if _wide_gap(op, av)), default=-1)
        tail = _parser.SubPattern(parsed.state, items[last_gap + 1 :])
        if tail.getwidth()[0] == 0:
            return None  # nothing after the gap that every match ends with
        return _leading_lookbehind(tail.data) + _emit(tail.data) + (_trailing_lookahead(tail.data) if presence else "")
    except (_NoForm, re.error, RecursionError):
        return None


def prefilter_head(pattern: str) -> str | None:
    """For a pattern with a wide gap, the form of what comes before its first gap: every match of
    the pattern holds a match of it, so the pattern's matches lie within its width of the ends
    this form reports. None: no gap, or nothing before it that every match holds."""
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern)
        if parsed.state.flags & ~re.UNICODE:
            return None
        items = list(parsed.data)
        first_gap = min((k for k, (op, av) in enumerate(items) if _wide_gap(op, av)), default=-1)
        if first_gap <= 0:
            return None
        head = _parser.SubPattern(parsed.state, items[:first_gap])
        if head.getwidth()[0] == 0:
            return None
        return _leading_lookbehind(head.data) + _emit(head.data)
    except (_NoForm, re.error, RecursionError):
        return None


@dataclass(slots=True)
class Found:
    """What one pass over a text found."""

    #: category → (rule group, pattern index) → where its prefilter form's matches end (characters)
    phrase_ends: dict[str, dict[tuple[str, int], list[int]]]
    #: category → (group, index, literal length) → where a literal of a pattern without a prefilter
    #: form ends, or (length 0) the head form of a pattern with a wide gap (prefilter_head)
    phrase_literals: dict[str, dict[tuple[str, int, int], list[int]]]
    #: phones.literals_in of the text: (number words, messenger keywords)
    literals: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]
    #: names of the obfuscations (normalize.match_view) that may occur
    obfuscations: frozenset[str]
    #: whether a head of a scheme, application, data or script URI occurs
    colon_uris: bool


@dataclass(slots=True)
class _Phrase:
    category: str
    group: str
    index: int
    width: tuple[int, int] | None  # (longest match, longest look-ahead); None: unbounded


@dataclass(slots=True)
class Scanner:
    """The one database of a policy and what each of its pattern ids stands for."""

    policy: Policy
    db: Any = None
    kinds: list[tuple[str, Any]] = field(default_factory=list)
    #: per category: patterns that run over the whole text whenever the text is scanned
    always: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)

    @classmethod
    def build(cls, policy: Policy) -> Scanner:
        """All patterns in one compile; if hyperscan refuses that, each is tried alone first
        (~10 ms apiece) and those it refuses take the regex path."""
        try:
            return cls._build(policy, trusted=True)
        except hyperscan.error:
            return cls._build(policy, trusted=False)

    @classmethod
    def _build(cls, policy: Policy, trusted: bool) -> Scanner:
        self = cls(policy)
        expressions: list[bytes] = []
        flags: list[int] = []
        span = hyperscan.HS_FLAG_UTF8  # every end of every match
        once = span | hyperscan.HS_FLAG_SINGLEMATCH  # presence only: one report at most

        def add(expr: str, kind: str, key: Any, flag: int) -> None:
            expressions.append(expr.encode("utf-8"))
            flags.append(flag)
            self.kinds.append((kind, key))

        for cat, compiled in policy.phrases.items():
            self.always[cat] = []
            for g, rule in compiled.rules.items():
                widths = compiled.widths.get(g, ())
                for i, pat in enumerate(rule.patterns):
                    width = widths[i] if i < len(widths) else None
                    # a pattern with a wide gap runs near what opens it (its ends, the words after
                    # the gap, may be everywhere: "送" of "…[^。\n]{0,12}(?:返现|…|送)" is in every
                    # "発送" of Japanese prose); any other near its form's ends
                    head = prefilter_head(pat) if width is not None else None
                    if head is not None and (trusted or _compiles(head, span)):
                        add(head, "phrase_literal", (_Phrase(cat, g, i, width), 0), span)
                        continue
                    form = prefilter_form(pat)
                    if form is not None and (trusted or _compiles(form, span)):
                        add(form, "phrase", _Phrase(cat, g, i, width), span)
                        continue
                    need = compiled.needs[g][i]
                    if need and "" not in need and width is not None:
                        # no prefilter form: its required literals trigger it (the windows of
                        # CompiledCategory.plan around them)
                        for lit in sorted(need):
                            add(_literal(lit), "phrase_literal", (_Phrase(cat, g, i, width), len(lit)), span)
                    else:
                        self.always[cat].append((g, i))
        for idx, lit in enumerate(LITERALS):
            add(_literal(lit), "literal", (idx, len(lit)), span)
        for name, pat in obfuscation_patterns():
            form = prefilter_form(pat, presence=True)
            add(form if form is not None and (trusted or _compiles(form, once)) else "", "obfuscation", name, once)
        for head in COLON_URI_HEADS:
            form = prefilter_form(head)
            assert form is not None
            add(form, "colon_uri", None, once)
        # an obfuscation without a form is asked for always (the empty expression is never compiled)
        self._always_obfuscations = frozenset(k for e, (kind, k) in zip(expressions, self.kinds, strict=True)
                                              if kind == "obfuscation" and not e)
        keep = [i for i, e in enumerate(expressions) if e]
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=[expressions[i] for i in keep], ids=keep, flags=[flags[i] for i in keep])
        self.db = db
        return self

    _always_obfuscations: frozenset[str] = frozenset()

    def scan(self, text: str) -> Found | None:
        """One pass of the database over `text`; None if hyperscan cannot read it (lone surrogates)."""
        try:
            # UTF-8, not a latin-1 projection (CJK has none); only reported ends are mapped back to
            # characters: the encode is a copy for ASCII, ~0.04 ms per 100 KB of CJK
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return None
        ends: list[tuple[int, int]] = []

        def on_match(pid: int, _start: int, end: int, _flags: int, _ctx: Any) -> None:
            ends.append((pid, end))

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # hyperscan's scratch space serves one scan at a time: one per thread
            scratch = self._local.scratch = hyperscan.Scratch(self.db)
        self.db.scan(data, match_event_handler=on_match, scratch=scratch)
        to_char = _char_offsets(data, [e for _, e in ends]) if len(data) != len(text) else None
        phrase_ends: dict[str, dict[tuple[str, int], list[int]]] = {c: {} for c in self.policy.phrases}
        phrase_literals: dict[str, dict[tuple[str, int, int], list[int]]] = {c: {} for c in self.policy.phrases}
        literals: list[tuple[int, int, int]] = []
        obfuscations = set(self._always_obfuscations)
        colon_uris = False
        for pid, end in ends:
            at = to_char[end] if to_char is not None else end
            kind, key = self.kinds[pid]
            if kind == "literal":
                literals.append((key[0], at - key[1], at))
            elif kind == "phrase":
                phrase_ends[key.category].setdefault((key.group, key.index), []).append(at)
            elif kind == "phrase_literal":
                p, n = key
                phrase_literals[p.category].setdefault((p.group, p.index, n), []).append(at)
            elif kind == "obfuscation":
                obfuscations.add(key)
            else:
                colon_uris = True
        return Found(phrase_ends, phrase_literals, split_literals(_leftmost(literals)), frozenset(obfuscations),
                     colon_uris)

    def phrase_plan(self, found: Found, category: str, text_length: int,
                    ) -> tuple[list[tuple[str, tuple[int, ...]]], list[tuple[int, int]] | None]:
        """(the patterns of a category that can match, in rule order; the windows of the text they
        need to run in, None: all of it) — for phrases.find_phrases_at.

        A match of a pattern ends where its prefilter form reported an end and starts at most the
        pattern's width before it; its look-ahead reads at most `ahead` past it (and one more
        character for \\b and $): windows of that reach hold every match, and merged windows read
        alike as the whole text does (see CompiledCategory.plan)."""
        compiled: CompiledCategory = self.policy.phrases[category]
        ends = found.phrase_ends[category]
        lits = found.phrase_literals[category]
        always = self.always[category]
        if not ends and not lits and not always:
            return [], []
        wanted = set(ends) | {(g, i) for g, i, _n in lits} | set(always)
        active = [(g, idx) for g in compiled.rules
                  if (idx := tuple(i for i in range(len(compiled.needs[g])) if (g, i) in wanted))]
        if always:
            return active, None
        ahead = width = 0
        for g, idx in active:
            for i in idx:
                w = compiled.widths[g][i]
                if w is None:
                    return active, None
                width, ahead = max(width, w[0]), max(ahead, w[1])
        spans = [(e - compiled.widths[g][i][0], e) for (g, i), es in ends.items() for e in es]  # type: ignore[index]
        spans += [(e - n - width, e + width) for (_g, _i, n), es in lits.items() for e in es]
        spans.sort()
        windows: list[tuple[int, int]] = []
        for a, b in spans:
            a, b = max(0, a), min(text_length, b + ahead + 1)
            if windows and a <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(windows[-1][1], b))
            else:
                windows.append((a, b))
        return active, windows


def _literal(text: str) -> str:
    return "".join(f"\\x{{{ord(ch):x}}}" for ch in text)


def _compiles(expr: str, flag: int) -> bool:
    try:
        hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(expressions=[expr.encode("utf-8")], ids=[0],
                                                                  flags=[flag])
        return True
    except hyperscan.error:
        return False


def _leftmost(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Every occurrence → those an Aho–Corasick standard (non-overlapping) search reports: the one
    that ends first, then the first to end after it that starts at or past its end. (No literal of
    phones.LITERALS is a suffix of another, so two never end at one place.)"""
    found.sort(key=lambda f: (f[2], f[1]))
    out: list[tuple[int, int, int]] = []
    last = 0
    for f in found:
        if f[1] >= last:
            out.append(f)
            last = f[2]
    return out


def _char_offsets(data: bytes, offsets: list[int]) -> dict[int, int]:
    """UTF-8 byte offsets (at character boundaries) → character offsets; one decode of the text
    up to the last of them, piecewise (only matches need it: most texts report few or none)."""
    out: dict[int, int] = {}
    prev = chars = 0
    for b in sorted(set(offsets)):
        chars += len(data[prev:b].decode("utf-8"))
        out[b] = chars
        prev = b
    return out


_CACHE: dict[int, Scanner] = {}
_LOCK = threading.Lock()
#: what makes the ids of a serialized database mean what they meant (bump on a change of the forms)
_FORMAT = 1


def _fingerprint(policy: Policy) -> str:
    import hashlib

    from relay.message.normalize import obfuscation_patterns as obf

    text = repr((_FORMAT, getattr(hyperscan, "__version__", ""), policy.settings.model_dump_json(), LITERALS, obf(), COLON_URI_HEADS))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dumps(policy: Policy) -> bytes | None:
    """The policy's scanner, serialized (a policy worker then loads it in milliseconds instead of
    compiling it again: ~0.6 s of CPU per worker start); None while it is not compiled yet."""
    scanner = ready(policy)
    if scanner is None:
        return None
    return pickle.dumps((_fingerprint(policy), scanner.kinds, scanner.always, scanner._always_obfuscations,
                         hyperscan.dumpb(scanner.db)))


def install(policy: Policy, blob: bytes) -> bool:
    """Take `policy`'s scanner from dumps() of the same policy (False, and nothing taken, when the
    blob is of another policy or another build: scanner_for then compiles it)."""
    try:
        fingerprint, kinds, always, always_obfuscations, db = pickle.loads(blob)  # (our own parent's bytes)
    except Exception:
        return False
    if fingerprint != _fingerprint(policy):
        return False
    scanner = Scanner(policy, hyperscan.loadb(db, hyperscan.HS_MODE_BLOCK), kinds, always)
    scanner._always_obfuscations = always_obfuscations
    with _LOCK:
        _CACHE[id(policy)] = scanner
    return True


#: compiled scanners by policy fingerprint: a policy loaded again from an unchanged file (a reload
#: that changed other settings, each test's own load) shares the database instead of compiling it
_BUILT: dict[str, Scanner] = {}


def ready(policy: Policy) -> Scanner | None:
    """The policy's scanner if it has been compiled (never compiles: the caller takes its regex
    path meanwhile, which finds the same)."""
    got = _CACHE.get(id(policy))
    return got if got is not None and got.policy is policy else None


def compile_in_background(policy: Policy) -> threading.Thread:
    """Compile the policy's scanner in a thread (hyperscan lets go of the GIL while it compiles):
    the daemon starts listening, and a check runs on the regex path, until it is ready."""
    thread = threading.Thread(target=scanner_for, args=(policy,), name="relay-scanner", daemon=True)
    thread.start()
    return thread


def scanner_for(policy: Policy) -> Scanner:
    """The policy's scanner, compiled on first use (one per policy object; a reloaded policy with
    other rules compiles anew, one with the same rules shares the database)."""
    got = _CACHE.get(id(policy))
    if got is not None and got.policy is policy:
        return got
    with _LOCK:
        got = _CACHE.get(id(policy))
        if got is None or got.policy is not policy:
            fingerprint = _fingerprint(policy)
            built = _BUILT.get(fingerprint)
            if built is None:
                built = Scanner.build(policy)
                if len(_BUILT) >= 4:
                    _BUILT.pop(next(iter(_BUILT)))
                _BUILT[fingerprint] = built
            got = Scanner(policy, built.db, built.kinds, built.always)
            got._always_obfuscations = built._always_obfuscations
            if len(_CACHE) >= 8:  # a few policies at once (tests, a reload): drop the oldest
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[id(policy)] = got
        return got
