"""critical: the [Important] subject marker and the three critical categories of an order message.

Reads: rules.important_markers, and the word lists (per category, per language) in the TOML file
named by rules.critical_words. Pure and synchronous: text in, findings out; the rules stage audits
them as important.justified / important.unjustified.
"""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from relay.message.html import HtmlTooComplex, read_html
from relay.message.mime import normalize_eol
from relay.message.parts import decode_body, decode_text, parse

CATEGORIES = ("customization", "delivery_scheduling", "shipping_address")
#: How much of a message's text is classified (a critical question is never far down).
TEXT_LIMIT = 64 * 1024

_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def fold(text: str) -> str:
    """NFKC (full-width → half-width, compatibility forms) then case folding; whitespace runs → one space."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold())


def find_marker(subject: str, markers: Iterable[str]) -> str | None:
    """The first configured marker found in the subject (after folding both), or None."""
    folded = fold(subject)
    for marker in markers:
        if fold(marker).strip() and fold(marker).strip() in folded:
            return marker
    return None


def strip_markers(subject: str, markers: Iterable[str]) -> str:
    folded = fold(subject)
    for marker in markers:
        folded = folded.replace(fold(marker).strip(), " ")
    return folded


@dataclass(frozen=True, slots=True)
class Finding:
    category: str
    language: str
    word: str


_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class _Words:
    language: str
    #: Latin entries as " tok tok " (whole words) or " tok" (prefix, from a trailing "*"), searched in the
    #: text's word tokens joined by single spaces: one C substring search each, no regex backtracking.
    latin: tuple[tuple[str, bool], ...]
    other: tuple[str, ...]  # CJK and other scripts: substring matches in the folded text


def _latin_key(word: str) -> tuple[str, bool]:
    prefix = word.endswith("*")
    joined = " ".join(_TOKEN.findall(word.rstrip("*")))
    return (" " + joined if prefix else " " + joined + " "), prefix


class CriticalWords:
    """The word lists of the three categories, prepared once."""

    def __init__(self, data: Mapping[str, Mapping[str, list[str]]]) -> None:
        unknown = set(data) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown critical categories: {', '.join(sorted(unknown))}")
        self._words: dict[str, list[_Words]] = {}
        for category in CATEGORIES:
            prepared = []
            for language, words in (data.get(category) or {}).items():
                if not isinstance(words, list) or not all(isinstance(w, str) and w.strip("* ") for w in words):
                    raise ValueError(f"{category}.{language}: expected a list of non-empty words")
                folded = [fold(w).strip() for w in words]
                latin = tuple(_latin_key(w) for w in folded if re.search(r"[a-z]", w))
                other = tuple(w for w in folded if not re.search(r"[a-z]", w))
                prepared.append(_Words(language, latin, other))
            self._words[category] = prepared

    @classmethod
    def load(cls, path: Path) -> CriticalWords:
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        return cls(data)

    def classify(self, text: str) -> list[Finding]:
        """One finding per category whose words occur in `text` (first match wins)."""
        folded = fold(text)
        joined = " " + " ".join(_TOKEN.findall(folded)) + " "
        found: list[Finding] = []
        for category in CATEGORIES:
            hit = self._first(category, folded, joined)
            if hit is not None:
                found.append(hit)
        return found

    def _first(self, category: str, folded: str, joined: str) -> Finding | None:
        for words in self._words[category]:
            for key, prefix in words.latin:
                at = joined.find(key)
                if at >= 0:
                    end = joined.find(" ", at + len(key)) if prefix else at + len(key) - 1
                    return Finding(category, words.language, joined[at + 1:end])
            for word in words.other:
                if word in folded:
                    return Finding(category, words.language, word)
        return None


def message_text(raw: bytes, limit: int = TEXT_LIMIT) -> str:
    """The readable text of a message: text/plain parts (else text/html as displayed), quoted lines
    dropped; read through the message model's part tree, as every other stage reads the message."""
    crlf = normalize_eol(raw)
    plain: list[str] = []
    rich: list[str] = []
    for part in parse(crlf).leaves():
        if not part.content_type.startswith("text/") or part.disposition == "attachment":
            continue
        content, _ = decode_text(decode_body(crlf, part), part.charset)
        if part.content_type == "text/html":
            content = content[: limit * 4]
            try:
                rich.append(read_html(content).text)
            except HtmlTooComplex:
                rich.append(html.unescape(_TAG.sub(" ", content)))
        else:
            plain.append(content)
    text = "\n".join(plain or rich)[:limit]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
