"""HTML → the text a reader sees (hidden elements included) plus every URL the markup holds.

Reads no config. Comments vanish between text (`exa<!-- -->mple.com` reads `example.com`),
entities are decoded, block elements break lines, `alt`/`title` text counts. Every text
character keeps the span of HTML source it came from, so a redaction can be written back
into the markup. URLs come from href/src/action/background/poster/cite, CSS `url()`,
`<meta http-equiv=refresh>` and Outlook VML inside `<!--[if mso]>` conditional comments.
Linear on hostile markup: a construct with no terminator anywhere after it runs to the end of the
input, as WHATWG reads it (comment to EOF; tag, end tag, `<?`/`<!` dropped), instead of being retried.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from relay.message.normalize import Spans

_BLOCK = frozenset(
    "address article aside blockquote br dd div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table tbody td tfoot th thead tr ul title option".split()
)
_SKIP_TEXT = frozenset({"script", "style", "template"})
#: start tags after which the text is hidden or read by HTMLParser itself: a plain run stops there
_HIDING = _SKIP_TEXT | frozenset(HTMLParser.CDATA_CONTENT_ELEMENTS)
_URL_ATTRS = frozenset({"href", "src", "action", "formaction", "background", "poster", "cite", "longdesc", "data",
                        "lowsrc", "dynsrc", "xlink:href", "srcset", "manifest", "codebase", "ping"})
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]{1,2000})", re.I)
_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\"\s>]{1,2000})", re.I)
_CONDITIONAL = re.compile(r"^\s*\[if[^\]]{0,80}\]>(.*?)(?:<!\[endif\])?\s*$", re.S | re.I)
#: <p>, </p>: a tag name and nothing else, most tags of a message; HTMLParser reads them through
#: four regexes and an attribute loop.
_NAME = r"[a-zA-Z][a-zA-Z0-9]*"
_PLAIN_START = re.compile(f"<({_NAME})>")
_PLAIN_END = re.compile(f"</({_NAME})>")
#: One plain token: text without markup or entities, <name>, </name>.
_PLAIN_TOKEN = re.compile(f"([^<&]+)|<({_NAME})>|</({_NAME})>")
_NEXT_PLAIN_TAG = re.compile(f"</?{_NAME}>")
#: _PLAIN_TOKEN or, where none starts, the empty match that ends a run (finditer never skips ahead).
_PLAIN_SCAN = re.compile(f"([^<&]+)|<({_NAME})>|</({_NAME})>|")
#: where a run of plain tokens ends ("<" not opening <name> or </name>; or "&"); the tags in one
#: (split keeps slash and name); a start tag that ends the text-only reading of a run (what
#: follows it is hidden, or read by the parser)
_NOT_PLAIN_TAG = re.compile(f"<(?!/?{_NAME}>)")
_TAG_SPLIT = re.compile(f"<(/?)({_NAME})>")
_HIDING_START = re.compile("<(?:" + "|".join(sorted(_HIDING)) + ")>", re.I)
#: what ends a comment for HTMLParser (_markupbase's own pattern)
_COMMENT_CLOSE = re.compile(r"--\s*>")
_TAIL_TAG = re.compile(r"</?[A-Za-z]|</(?!$)")


@dataclass(slots=True)
class HtmlUrl:
    url: str
    tag: str
    attr: str
    tag_start: int   # span of the whole tag in the HTML source
    tag_end: int
    anchor_text: str = ""
    remote_image: bool = False
    tiny: bool = False  # 0/1-pixel or hidden image: a tracking pixel


@dataclass(slots=True)
class HtmlText:
    text: str
    spans: Spans | None  # None: asked for without (html_to_text(spans=False))
    urls: list[HtmlUrl] = field(default_factory=list)

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        if self.spans is None:
            raise ValueError("html_to_text(spans=False) kept no spans")
        return self.spans.span(start, end)


def _is_remote(url: str) -> bool:
    u = url.strip().lower()
    return u.startswith(("http:", "https:", "ftp:", "//")) or bool(re.match(r"^[a-z0-9.-]+\.[a-z]{2,}/", u))


class _Extractor(HTMLParser):
    def __init__(self, source: str, offset_base: int = 0, *, with_spans: bool = True) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.base = offset_base
        self.with_spans = with_spans
        self._at = 0  # offset in `source` of the construct being handled
        self.chunks: list[str] = []
        self.spans = Spans()
        self.urls: list[HtmlUrl] = []
        self._skip = 0
        self._anchor: HtmlUrl | None = None
        self._anchor_text: list[str] = []

    def updatepos(self, i: int, j: int) -> int:
        """HTMLParser reports each advance from i to j here; keep the offset itself instead of the
        (line, column) pair that the base class derives by counting newlines (a third of the cost)."""
        if i < j:
            self._at += j - i
        return j

    def read(self, source: str) -> None:
        """feed(source) and close(), with the runs of plain tokens (text, <p>, </p>: most of a
        message) handled here, one call of their handler each, and HTMLParser given the rest.

        HTMLParser takes its input in pieces: each piece here ends where a plain tag starts (or,
        in <script>/<style>, after the end tag it waits for), so the parser has nothing left over
        and the next run is read here. Should it hold something back (a tag or comment not closed
        within the piece), it is given all the rest at once: no piece is ever read twice.
        """
        pos, n = 0, len(source)
        while pos < n:
            if self.rawdata:
                self.feed(source[pos:])
                break
            if self.cdata_elem is None:
                pos = self._plain_run(source, pos)
                if pos >= n:
                    break
            if self.cdata_elem is None:  # up to the next plain tag (the token at pos is not one)
                nxt = _NEXT_PLAIN_TAG.search(source, pos + 1)
                end = n if nxt is None else nxt.start()
            else:  # the run opened <style>/<script>: through the end tag the parser waits for
                nxt = self.interesting.search(source, pos)
                end = n if nxt is None else nxt.end()
            self.feed(source[pos:end])
            pos = end
        self.close()

    def _plain_run(self, source: str, pos: int) -> int:
        """Handle plain tokens from `pos` as goahead() would; returns where the first other one starts.

        With no <a> open and nothing hidden (the state all but a few runs start in), a run is one
        loop that appends its text and block breaks directly; a tag that changes that state
        (<script>, <style>, <template>) hands the rest of the run to the general handlers."""
        if self._skip or self._anchor is not None:
            return self._plain_tokens(source, pos)
        if not self.with_spans:
            return self._plain_text(source, pos)
        append, copy, block, base = self.chunks.append, self.spans.copy, self.spans.block, self.base
        last_start = None
        for m in _PLAIN_SCAN.finditer(source, pos):
            kind = m.lastindex
            if kind == 1:
                at = m.start()
                append(m.group(1))
                copy(m.end() - at, base + at)
            elif kind == 2:
                tag = m.group(2).lower()
                if tag in _BLOCK:
                    append("\n")
                    block(1, base + m.start(), base + m.end())
                elif tag in _HIDING:
                    return self._plain_tokens(source, m.start())
                last_start = m
            elif kind == 3:
                if m.group(3).lower() in _BLOCK:
                    at = base + m.start()
                    append("\n")
                    block(1, at, at)
            else:  # the empty alternative: the token here is not a plain one
                pos = m.start()
                break
        if last_start is not None:
            self._HTMLParser__starttag_text = last_start.group()
            self.lasttag = last_start.group(2).lower()
        self._at = pos
        return pos

    def _plain_text(self, source: str, pos: int) -> int:
        """_plain_run's text alone, without the spans: the run is found and split by regexes and
        its tags become line breaks (block elements) or nothing in one comprehension. Up to a
        <script>, <style> or <template>, which _plain_tokens reads on from."""
        other = _NOT_PLAIN_TAG.search(source, pos)
        end = len(source) if other is None else other.start()
        amp = source.find("&", pos, end)
        if amp >= 0:
            end = amp
        hiding = _HIDING_START.search(source, pos, end)
        if hiding is not None:
            end = hiding.start()
        if end > pos:
            pieces = _TAG_SPLIT.split(source[pos:end])
            out = pieces[0::3]
            names = pieces[2::3]
            breaks = ["\n" if name.lower() in _BLOCK else "" for name in names]
            joined: list[str] = [""] * (len(out) + len(breaks))
            joined[0::2] = out
            joined[1::2] = breaks
            self.chunks.append("".join(joined))
            for k in range(len(names) - 1, -1, -1):
                if not pieces[3 * k + 1]:  # the last start tag: what HTMLParser would remember
                    self.lasttag = names[k].lower()
                    self._HTMLParser__starttag_text = f"<{names[k]}>"
                    break
        if hiding is not None:
            return self._plain_tokens(source, end)
        self._at = end
        return end

    def _plain_tokens(self, source: str, pos: int) -> int:
        """_plain_run, one token at a time through the handlers (which keep <a> text and skipping)."""
        match = _PLAIN_TOKEN.match
        while (m := match(source, pos)) is not None:
            self._at = pos
            text, start, end = m.group(1, 2, 3)
            if text is not None:
                self.handle_data(text)
            elif start is not None:
                self._plain_start(m.group(), start)
                if self.cdata_elem is not None:  # <style>, <script>: the parser reads what follows
                    pos = m.end()
                    break
            else:
                self.handle_endtag(end.lower())
            pos = m.end()
        self._at = pos
        return pos

    def parse_starttag(self, i: int) -> int:
        """HTMLParser.parse_starttag, answered without it for a tag without attributes."""
        m = _PLAIN_START.match(self.rawdata, i)
        if m is None:
            return super().parse_starttag(i)
        self._plain_start(m.group(), m.group(1))
        return m.end()

    def _plain_start(self, text: str, name: str) -> None:
        """What HTMLParser.parse_starttag does with `text`, a start tag without attributes."""
        self._HTMLParser__starttag_text = text  # what get_starttag_text() answers
        self.lasttag = tag = name.lower()
        self.handle_starttag(tag, [])
        if tag in self.CDATA_CONTENT_ELEMENTS:
            self.set_cdata_mode(tag)

    def parse_endtag(self, i: int) -> int:
        """HTMLParser.parse_endtag, answered without it for a plain end tag outside <script>/<style>."""
        m = _PLAIN_END.match(self.rawdata, i)
        if m is None or self.cdata_elem is not None:
            return super().parse_endtag(i)
        self.handle_endtag(m.group(1).lower())
        return m.end()

    def close(self) -> None:
        """HTMLParser.close, with what no terminator follows read to the end of the input.

        At close HTMLParser retries an unterminated construct at every later "<" and each retry scans
        to the end: quadratic (100 KB of "<!--" took seconds). Where nothing after it can end it, the
        construct runs to the end here, as in a browser (WHATWG 13.2.5: EOF in comment / tag)."""
        raw = self.rawdata
        self._last_gt = raw.rfind(">")
        self._last_comment_close = -1
        for m in _COMMENT_CLOSE.finditer(raw):
            self._last_comment_close = m.start()
        self._closing = True
        self._full = raw
        # a tag or end tag opened after the last ">" runs to the end of the input (EOF in tag): dropped
        tail = _TAIL_TAG.search(raw, self._last_gt + 1)
        if tail is not None and self.cdata_elem is None:
            self.rawdata = raw[:tail.start()]
        super().close()

    def _unterminated(self, i: int) -> bool:
        return getattr(self, "_closing", False) and i > self._last_gt

    def parse_comment(self, i: int, report: bool = True) -> int:
        if getattr(self, "_closing", False) and self._last_comment_close < i + 4:
            self.handle_comment(self._full[i + 4:])  # WHATWG: EOF in comment, the comment ends there
            return len(self.rawdata)
        return super().parse_comment(i, report)

    def parse_pi(self, i: int) -> int:
        if self._unterminated(i):  # a bogus comment to the end: nothing displayed
            return len(self.rawdata)
        return super().parse_pi(i)

    def parse_html_declaration(self, i: int) -> int:
        raw = self.rawdata
        if self._unterminated(i):
            return len(raw)
        if getattr(self, "_closing", False) and raw.startswith("<![", i) and raw.find("]]>", i) < 0:
            return raw.find(">", i) + 1  # in HTML content <![CDATA[ is a bogus comment up to ">"
        return super().parse_html_declaration(i)

    def _pos(self) -> int:
        return min(self._at, len(self.source))

    def _emit(self, text: str, start: int, end: int | None = None) -> None:
        """Append text; with end=None each char maps to its own source char, else all map to [start, end)."""
        if not text:
            return
        self.chunks.append(text)
        if end is None:
            self.spans.copy(len(text), self.base + start)
        else:
            self.spans.block(len(text), self.base + start, self.base + end)
        if self._anchor is not None:
            self._anchor_text.append(text)

    def _tag_span(self) -> tuple[int, int]:
        start = self._pos()
        text = self.get_starttag_text() or ""
        return start, start + len(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not attrs:  # <p>, <br>, <b>: most tags of a message; no URL, no alt text
            if tag in _BLOCK:
                s = self._pos()
                self._emit("\n", s, s + len(self.get_starttag_text() or ""))
            elif tag in _SKIP_TEXT:
                self._skip += 1
            return
        self._start(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs)
        if tag in _SKIP_TEXT:
            self._skip = max(0, self._skip - 1)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TEXT:
            self._skip += 1
        if not attrs and tag not in _BLOCK:
            return  # <b>, <span>: nothing to emit, no URL
        s, e = self._tag_span()
        if tag in _BLOCK:
            self._emit("\n", s, e)
        if not attrs:
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        for key in ("alt", "title", "placeholder", "aria-label", "value"):
            if a.get(key) and not (tag == "input" and key == "value" and a.get("type") == "hidden"):
                self._emit(" " + html.unescape(a[key]) + " ", s, e)
        tiny = False
        if tag == "img":
            w, h = a.get("width", "").strip(), a.get("height", "").strip()
            style = a.get("style", "").replace(" ", "").lower()
            tiny = (w in ("0", "1", "0px", "1px") or h in ("0", "1", "0px", "1px")
                    or "display:none" in style or "visibility:hidden" in style)
        for key, value in a.items():
            if not value:
                continue
            if key in _URL_ATTRS:
                candidates = [v.strip().split(" ")[0] for v in value.split(",")] if key == "srcset" else [value]
                for raw_url in candidates:
                    url = html.unescape(raw_url).strip()
                    remote_img = tag == "img" and key in ("src", "srcset", "lowsrc", "dynsrc") and _is_remote(url)
                    hu = HtmlUrl(url, tag, key, self.base + s, self.base + e, remote_image=remote_img, tiny=tiny and remote_img)
                    self.urls.append(hu)
                    if tag in ("a", "area") and key == "href":
                        self._anchor = hu
                        self._anchor_text = []
            if key == "style" or (tag == "meta" and key == "content"):
                pat = _REFRESH_URL if key == "content" else _CSS_URL
                if key == "content" and a.get("http-equiv", "").lower() != "refresh":
                    continue
                for m in pat.finditer(html.unescape(value)):
                    self.urls.append(HtmlUrl(m.group(1), tag, key, self.base + s, self.base + e,
                                             remote_image=key == "style" and _is_remote(m.group(1))))

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK:
            p = self._pos()
            self._emit("\n", p, p)
            return
        if tag in _SKIP_TEXT:
            self._skip = max(0, self._skip - 1)
        if tag in ("a", "area") and self._anchor is not None:
            self._anchor.anchor_text = "".join(self._anchor_text).strip()
            self._anchor = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            if data and "url(" in data.lower():  # <style> blocks: CSS url() are remote fetches
                p = self._pos()
                for m in _CSS_URL.finditer(data):
                    self.urls.append(HtmlUrl(m.group(1), "style", "css", self.base + p, self.base + p + len(data),
                                             remote_image=_is_remote(m.group(1))))
            return
        if data:
            self.chunks.append(data)
            self.spans.copy(len(data), self.base + min(self._at, len(self.source)))
            if self._anchor is not None:
                self._anchor_text.append(data)

    def handle_entityref(self, name: str) -> None:
        p = self._pos()
        end = p + 1 + len(name) + (1 if self.source[p + 1 + len(name) : p + 2 + len(name)] == ";" else 0)
        self._emit(html.unescape(self.source[p:end]), p, end)

    def handle_charref(self, name: str) -> None:
        p = self._pos()
        end = p + 2 + len(name) + (1 if self.source[p + 2 + len(name) : p + 3 + len(name)] == ";" else 0)
        self._emit(html.unescape(self.source[p:end]), p, end)

    def handle_comment(self, data: str) -> None:
        m = _CONDITIONAL.match(data)
        if m:  # Outlook conditional comment: its markup is rendered by Outlook
            inner_start = self._pos() + 4 + m.start(1)
            sub = _Extractor(m.group(1), self.base + inner_start)
            try:
                sub.read(m.group(1))
            except Exception:
                pass
            self.urls.extend(sub.urls)


def html_to_text(source: str, *, spans: bool = True) -> HtmlText:
    """spans=False: the text and URLs alone (a check), without where each character came from
    (a redaction needs that); the result's spans are then None."""
    ex = _Extractor(source, with_spans=spans)
    try:
        ex.read(source)
    except Exception:
        pass
    if ex._anchor is not None:
        ex._anchor.anchor_text = "".join(ex._anchor_text).strip()
    return HtmlText("".join(ex.chunks), ex.spans if spans else None, ex.urls)
