"""The one contact finder: registered real addresses in every form a reader would recognise.

Placeholder interface (filled in by the finder's own commit): ``AddressFinder(address_map)``
maps real → alias; ``find(text)`` gives ``Found(start, end, real, replacement)`` in ``text``'s
own coordinates; ``sub(text)`` replaces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Found:
    start: int
    end: int
    real: str  # the registered address this is a form of (lower case)
    replacement: str  # what replaces it (the alias)


class AddressFinder:
    def __init__(self, address_map: Mapping[str, str]) -> None:
        self._map = {k.strip().lower(): v for k, v in address_map.items() if "@" in k}

    def find(self, text: str) -> list[Found]:
        low = text.lower()
        out: list[Found] = []
        for real, alias in self._map.items():
            i = low.find(real)
            while i >= 0:
                out.append(Found(i, i + len(real), real, alias))
                i = low.find(real, i + 1)
        return sorted(out, key=lambda f: f.start)

    def sub(self, text: str) -> tuple[str, int]:
        found = self.find(text)
        if not found:
            return text, 0
        parts: list[str] = []
        pos = 0
        for f in found:
            if f.start < pos:
                continue
            parts.append(text[pos : f.start])
            parts.append(f.replacement)
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts), len(found)
