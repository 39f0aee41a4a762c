"""HTML read as a browser reads it (WHATWG parsing by lexbor, linear time), and rewritten in its DOM.

Reads no config: read_html(source) -> HtmlView (displayed text, hidden text, URLs, attributes), from
HtmlDocument(source), which also locates each character and URL of that reading and redacts in the DOM;
rewrite_html(source, finder) -> (html, count) puts the finder's replacements into text, attributes,
comments, <title>/<style>/<script>. All raise HtmlTooComplex (a ValueError) for markup whose parse is
super-linear in lexbor (one element, or <html>/<body> merged, with more than MAX_ATTRIBUTES attributes;
elements nested more than MAX_DEPTH deep).
"""

from __future__ import annotations

import hashlib
import html
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode

from relay.message.contacts import AddressFinder

#: lexbor checks each new attribute against every one the element has (the spec's duplicate rule):
#: n attributes cost n^2 (50,000 take 8 s). No real message comes near this.
MAX_ATTRIBUTES = 1000
#: lexbor looks down the stack of open elements for each block start tag and each end tag (the spec's
#: "has an element in scope"): elements nested d deep cost d per tag (40,000 nested <div> take 3 s).
#: Real mail nests a few dozen deep; browsers stop nesting at 512 (Blink).
MAX_DEPTH = 1000
#: elements that never hold others open: void, closed by their next sibling, or merged (html, body)
_NOT_NESTING = frozenset(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param source track wbr "
    "p li dt dd tr td th tbody thead tfoot option optgroup rb rt rp rtc colgroup caption html head body".split()
)
#: formatting elements a start tag of their own kind takes off the stack (the adoption agency: what
#: was opened inside them stays open); headings a heading closes when it is the current node
_REPLACED_BY_ITS_KIND = frozenset({"a", "nobr"})
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())

_BLOCK = frozenset(
    "address article aside blockquote body br dd details dialog div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 head header hr html li main nav ol p pre section summary table tbody "
    "td tfoot th thead title tr ul option caption center".split()
)
#: raw text a reader never sees as text (a rewrite still substitutes in it: CSS content: shows text)
_RAW = frozenset({"script", "style"})
#: elements whose text a mail client keeps but does not display
_HIDDEN = frozenset({"head", "title", "noscript", "template", "noframes", "noembed"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])", re.I)
_URL_ATTRS = frozenset({
    "href", "src", "action", "formaction", "background", "poster", "cite", "data", "longdesc", "lowsrc",
    "dynsrc", "xlink:href", "manifest", "codebase", "icon", "usemap", "classid", "archive", "profile",
})
#: attributes holding a list of URLs: srcset ("url 2x, url 3x") and ping ("url url")
_URL_LIST_ATTRS = frozenset({"srcset", "imagesrcset", "ping"})
_VISIBLE_ATTRS = ("alt", "title", "aria-label", "placeholder")  # (and an <input>'s value)
_REFRESH_URL = re.compile(r"url\s*=\s*(.*)", re.I | re.S)
#: WHATWG URL parsing: C0 controls and space trimmed at both ends; tab, LF, CR removed everywhere
_URL_TRIM = "".join(chr(c) for c in range(0x21))
_URL_DROP = str.maketrans("", "", "\t\n\r")

#: One start tag as the tokenizer reads it (names, unquoted and quoted values; atomic groups, so one
#: pass and no backtracking). Quoted values are scanned too when counting: text the tokenizer puts
#: in a comment may open a "quote" here that runs over a real tag.
_TAG = re.compile(
    r"<([A-Za-z][^\t\n\f\r />]*+)((?>[\t\n\f\r /]*+[^\t\n\f\r />][^\t\n\f\r /=>]*+"
    r"(?>[\t\n\f\r ]*+=[\t\n\f\r ]*+(?>\"[^\"]*+\"?|'[^']*+'?|[^\t\n\f\r >]*+))?+)*+)"
)
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*)")
_ATTR_NAME = re.compile(r"(?:^|(?<=[\t\n\f\r /\"'=]))[^\t\n\f\r />=\"']")


class HtmlTooComplex(ValueError):
    """The markup would cost the parser more than linear time; the caller rejects the message."""


@dataclass(frozen=True, slots=True)
class HtmlView:
    text: str  # displayed text: blocks on their own lines, inline pieces joined as displayed
    hidden_text: str  # kept but not displayed: <title>, alt/title/aria-label, comments, hidden elements
    urls: tuple[str, ...]  # every URL as the browser resolves it (and percent-decoded, when that differs)
    attributes: tuple[str, ...]  # every other attribute value, entities decoded


def _check_cost(source: str) -> None:
    """Raise HtmlTooComplex if some element may get more than MAX_ATTRIBUTES attributes, or elements may
    nest more than MAX_DEPTH deep.

    Counts name-like tokens per start tag (<html> and <body> tags add up: the parser merges them into one
    element). Over-counts, never under-counts a tag the scan sees: it cannot tell a comment from a tag."""
    merged = 0
    for m in _TAG.finditer(source):
        attrs = m.group(2)
        if m.group(1).lower() in ("html", "body"):
            merged += len(_ATTR_NAME.findall(attrs))
            n = merged
        elif len(attrs) < MAX_ATTRIBUTES:  # each attribute takes at least one character
            continue
        else:
            n = len(_ATTR_NAME.findall(attrs))
        if n > MAX_ATTRIBUTES:
            raise HtmlTooComplex(f"an element with {n} attributes")
    if source.count("<") > MAX_DEPTH and _depth(source) > MAX_DEPTH:
        raise HtmlTooComplex(f"elements nested more than {MAX_DEPTH} deep")


def _depth(source: str) -> int:
    """How deep elements may nest: start tags open, an end tag closes its element and what was opened
    inside it (as the parser does for an element in scope); a new <a> or <nobr> takes the open one off,
    a heading closes a heading it follows directly. Tags in comments and scripts count too."""
    stack: list[str] = []
    count: dict[str, int] = {}
    deepest = 0
    for m in _TAG_NAME.finditer(source):
        name = m.group(2).lower()
        if name in _NOT_NESTING:
            continue
        if name in _HEADINGS:
            name = "h1"  # (an end tag of any heading closes the open one)
        if not m.group(1):
            if name in _REPLACED_BY_ITS_KIND and count.get(name):
                at = len(stack) - 1 - stack[::-1].index(name) if stack[-1] != name else len(stack) - 1
                del stack[at]
                count[name] -= 1
            elif name == "h1" and stack and stack[-1] == "h1":
                stack.pop()
                count[name] -= 1
            stack.append(name)
            count[name] = count.get(name, 0) + 1
            if len(stack) > deepest:
                deepest = len(stack)
                if deepest > MAX_DEPTH:
                    break
        elif count.get(name):
            while True:
                top = stack.pop()
                count[top] -= 1
                if top == name:
                    break
    return deepest


def _parse(source: str) -> LexborHTMLParser:
    _check_cost(source)
    return LexborHTMLParser(source)


def clean_url(value: str) -> str:
    """The URL as the WHATWG URL parser reads it before parsing: trimmed, tab/LF/CR removed."""
    return value.strip(_URL_TRIM).translate(_URL_DROP)


def _url_forms(value: str) -> list[str]:
    url = clean_url(value)
    decoded = unquote(url, errors="replace")
    return [url] if decoded == url else [url, decoded]


def _url_list(name: str, value: str) -> list[str]:
    if name == "ping":
        return value.split()
    # srcset: "url descriptor, url descriptor"; a URL runs to the first whitespace
    return [c.split()[0] for c in value.split(",") if c.split()]


def _refresh_url(content: str) -> str | None:
    m = _REFRESH_URL.search(content)
    if m is None:
        return None
    return m.group(1).strip().strip("'\"")


def _is_refresh(node: LexborNode) -> bool:
    return node.tag == "meta" and (node.attrs.get("http-equiv") or "").strip().lower() == "refresh"


def _walk(top: LexborNode) -> Iterator[tuple[bool, LexborNode]]:
    """(True, node) on entering each node below `top`, (False, node) on leaving it; no recursion
    (10,000 nested <div> are a few kilobytes of mail)."""
    node = top.first_child
    depth = 1
    while node is not None and depth > 0:
        yield True, node
        child = node.first_child
        if child is not None:
            node, depth = child, depth + 1
            continue
        while node is not None and depth > 0:
            yield False, node
            nxt = node.next
            if nxt is not None:
                node = nxt
                break
            node, depth = node.parent, depth - 1


@dataclass(slots=True)
class _Seg:
    """One piece of the reading and where it came from: a text node, the value of `attr` of an
    element, a comment's data; node None: a line break the layout puts there. `within`: the comment
    whose markup it was read from (a second parse, so not editable in place)."""
    text: str
    node: LexborNode | None
    attr: str | None = None
    within: LexborNode | None = None
    shown: bool = False  # (text nodes) displayed, else kept but hidden


class _Reader:
    """One walk over a tree: the text stream in display order, raw text, comments, attributes, and
    the text of each link (<a>/<area> with an href; lexbor never nests one in another)."""

    def __init__(self, within: LexborNode | None = None) -> None:
        self.within = within
        self.stream: list[_Seg] = []
        self.raw: list[LexborNode] = []  # text nodes of <script>/<style>
        self.comments: list[LexborNode] = []
        self.elements: list[LexborNode] = []
        #: each element's tag and attributes as read (fetching them again from lexbor costs as much)
        self.tags: list[str] = []
        self.attributes: list[dict[str, str | None]] = []
        self.anchor_text: dict[int, str] = {}  # by the link element's mem_id

    def read(self, top: LexborNode, hidden: int = 0) -> None:
        raw = 0
        open_elements: list[tuple[str, bool]] = []  # tag, and whether it hides what it holds
        anchor: LexborNode | None = None
        anchor_depth = 0
        anchor_text: list[str] = []
        within = self.within
        stream = self.stream
        for entering, node in _walk(top):
            if node.is_text_node:
                if entering:
                    if raw:
                        self.raw.append(node)
                    else:
                        text = node.text_content or ""
                        stream.append(_Seg(text, node, None, within, not hidden))
                        if anchor is not None:
                            anchor_text.append(text)
                continue
            if node.is_comment_node:
                if entering:
                    self.comments.append(node)
                continue
            if not node.is_element_node:
                continue
            if entering:
                tag = node.tag or ""
                attrs = node.attributes
                self.elements.append(node)
                self.tags.append(tag)
                self.attributes.append(attrs)
                style = attrs.get("style")
                hides = tag in _HIDDEN or "hidden" in attrs or (style is not None and bool(_HIDDEN_STYLE.search(style)))
                open_elements.append((tag, hides))
                hidden += hides
                raw += tag in _RAW
                if tag in _BLOCK:
                    stream.append(_Seg("\n", None, None, None, not hidden))
                if anchor is None and tag in ("a", "area") and "href" in attrs:
                    anchor, anchor_depth, anchor_text = node, len(open_elements), []
            elif open_elements:
                tag, hides = open_elements.pop()
                hidden -= hides
                raw -= tag in _RAW
                if tag in _BLOCK and tag != "br":
                    stream.append(_Seg("\n", None, None, None, not hidden))
                if anchor is not None and len(open_elements) < anchor_depth:
                    self.anchor_text[anchor.mem_id] = "".join(anchor_text).strip()
                    anchor = None
        if anchor is not None:
            self.anchor_text[anchor.mem_id] = "".join(anchor_text).strip()

    def joined(self) -> str:
        return "".join(p.text for p in self.stream)


def _comment_data(node: LexborNode) -> str:
    """A comment's data exactly (comment_content strips its whitespace)."""
    html = node.html or ""
    return html[4:-3] if html.startswith("<!--") and html.endswith("-->") else (node.comment_content or "")


_BLANK_LINES = re.compile(r"[ \t]*\n(?:[ \t]*\n)+")


def _tidy_runs(text: str) -> list[tuple[int, int]]:
    """The runs of `text` that tidying keeps: blank lines and the spaces before them go (a run of
    them keeps its last newline), and so do newlines at both ends."""
    runs: list[tuple[int, int]] = []
    pos = 0
    for m in _BLANK_LINES.finditer(text):
        if m.start() > pos:
            runs.append((pos, m.start()))
        runs.append((m.end() - 1, m.end()))
        pos = m.end()
    if pos < len(text):
        runs.append((pos, len(text)))
    while runs and text[runs[0][0]] == "\n":
        a, b = runs[0]
        if a + 1 < b:
            runs[0] = (a + 1, b)
        else:
            runs.pop(0)
    while runs and text[runs[-1][1] - 1] == "\n":
        a, b = runs[-1]
        if a < b - 1:
            runs[-1] = (a, b - 1)
        else:
            runs.pop()
    return runs


#: _BLANK_LINES from its first newline: a pattern that starts with a literal is searched for, not
#: tried at every character (a sixth of the cost on a long text)
_BLANK_RUN = re.compile(r"\n(?:[ \t]*\n)+")


def _tidy(text: str) -> str:
    """Blank lines and trailing spaces the block breaks leave, removed (the text stays the text):
    ``_BLANK_LINES.sub("\\n", text).strip("\\n")``, what _tidy_runs keeps."""
    if "\n" not in text:
        return text
    out: list[str] = []
    pos = 0
    for m in _BLANK_RUN.finditer(text):
        start = m.start()
        while start > pos and text[start - 1] in " \t":
            start -= 1
        out.append(text[pos:start])
        out.append("\n")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out).strip("\n")


@dataclass(slots=True)
class HtmlUrl:
    """One URL of the markup, in reading order, and where it is."""
    url: str  # as written, entities decoded (``forms`` gives it as read_html lists it)
    node: LexborNode  # the element whose attribute holds it (for CSS in <style>: the text node)
    attr: str  # the attribute, or "css" for the text of a <style>
    within: LexborNode | None = None  # the comment whose markup holds it (Outlook's <!--[if mso]>)
    anchor_text: str = ""  # the text of the link it is the href of

    @property
    def tag(self) -> str:
        return "style" if self.attr == "css" else (self.node.tag or "")

    @property
    def forms(self) -> list[str]:
        return _url_forms(self.url)


_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]{1,2000})", re.I)


_BREAK = _Seg("\n", None)


def _collect(tree: LexborHTMLParser, top: LexborNode, shown: list[list[_Seg]], hidden: list[list[_Seg]],
             urls: list[HtmlUrl], attributes: list[str], within: LexborNode | None = None) -> None:
    reader = _Reader(within)
    reader.read(top)
    for frag in tree.template_fragments():
        reader.read(frag, hidden=1)
    text: list[_Seg] = []
    kept: list[_Seg] = []
    for seg in reader.stream:
        if not seg.shown:
            kept.append(seg)
        else:
            text.append(seg)
            if seg.node is None:
                kept.append(_BREAK)
    shown.append(text)
    hidden.append(kept)
    for el, tag, attrs in zip(reader.elements, reader.tags, reader.attributes, strict=True):
        refresh = tag == "meta" and (attrs.get("http-equiv") or "").strip().lower() == "refresh"
        for name, value in attrs.items():
            if value is None or value == "":
                continue
            if name in _URL_ATTRS:
                urls.append(HtmlUrl(value, el, name, within, reader.anchor_text.get(el.mem_id, "")
                                    if name == "href" else ""))
            elif name in _URL_LIST_ATTRS:
                urls.extend(HtmlUrl(listed, el, name, within) for listed in _url_list(name, value))
            elif refresh and name == "content":
                target = _refresh_url(value)
                if target:
                    urls.append(HtmlUrl(target, el, name, within))
                attributes.append(value)
            else:
                attributes.append(value)
                if "%" in value:
                    attributes.append(unquote(value, errors="replace"))
                if name in _VISIBLE_ATTRS or (name == "value" and not _hidden_input(tag, attrs)):
                    hidden.append([_Seg(value, el, name, within)])
                elif name == "style" and "url(" in value.lower():  # CSS fetches: background-image
                    urls.extend(HtmlUrl(m.group(1), el, name, within) for m in _CSS_URL.finditer(value))
    for node in reader.raw:
        data = node.text_content or ""
        if "url(" in data.lower() and node.parent is not None and node.parent.tag == "style":
            urls.extend(HtmlUrl(m.group(1), node, "css", within) for m in _CSS_URL.finditer(data))
    nested: dict[str, tuple[list[list[_Seg]], list[HtmlUrl], list[str]]] = {}
    for comment in reader.comments:
        data = _comment_data(comment)
        hidden.append([_Seg(data, comment, None, within)])
        # Outlook renders <!--[if mso]> markup; any comment holding markup is read as a fragment once
        if within is not None or "<" not in data:
            continue
        known = nested.get(data)
        if known is None:  # (templates repeat the same conditional comment: parsed once per text)
            inner = _parse(data)
            known = nested[data] = ([], [], [])
            if inner.root is not None and inner.root.parent is not None:
                _collect(inner, inner.root.parent, known[0], known[0], known[1], known[2], within=comment)
        else:
            known = ([[_Seg(g.text, g.node, g.attr, comment, g.shown) for g in segs] for segs in known[0]],
                     [HtmlUrl(u.url, u.node, u.attr, comment, u.anchor_text) for u in known[1]], known[2])
        hidden += known[0]
        urls += known[1]
        attributes += known[2]


def _hidden_input(tag: str, attrs: dict[str, str | None]) -> bool:
    return tag == "input" and (attrs.get("type") or "").strip().lower() == "hidden"


class _Entry:
    """One text of the reading (the displayed text, or one hidden text): its pieces, tidied; where
    each character came from is worked out when first asked (a redaction), not for every reading."""

    __slots__ = ("out_starts", "runs", "segs", "starts", "text")

    def __init__(self, segs: list[_Seg]) -> None:
        self.segs = segs
        self.text = _tidy(segs[0].text if len(segs) == 1 else "".join([seg.text for seg in segs]))
        self.starts: list[int] = []
        self.runs: list[tuple[int, int]] = []
        self.out_starts: list[int] = []

    def _locate(self) -> None:
        pos = 0
        for seg in self.segs:
            self.starts.append(pos)
            pos += len(seg.text)
        joined = "".join(seg.text for seg in self.segs)
        self.runs = _tidy_runs(joined)
        pos = 0
        for a, b in self.runs:
            self.out_starts.append(pos)
            pos += b - a

    def _joined_at(self, k: int) -> int:
        i = bisect_right(self.out_starts, k) - 1
        return self.runs[i][0] + k - self.out_starts[i]

    def pieces(self, start: int, end: int) -> Iterator[tuple[_Seg, int, int]]:
        """(piece, start, end in its text) for the text [start, end) of this entry."""
        if not self.starts and self.segs:
            self._locate()
        a, b = self._joined_at(start), self._joined_at(end - 1) + 1
        k = bisect_right(self.starts, a) - 1
        while k < len(self.segs) and self.starts[k] < b:
            seg, s0 = self.segs[k], self.starts[k]
            lo, hi = max(a, s0) - s0, min(b, s0 + len(seg.text)) - s0
            if hi > lo:
                yield seg, lo, hi
            k += 1


class HtmlDocument:
    """One parse of an HTML body: read_html's reading, where each character of it came from and each
    URL is, and redaction in the DOM (a finding in the reading is cut out of the nodes it spans).

    ``reading`` is ``text + "\n" + hidden_text`` of the view: what a policy judges. Raises
    HtmlTooComplex as read_html does."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tree = _parse(source)
        shown: list[list[_Seg]] = []
        hidden: list[list[_Seg]] = []
        self.urls: list[HtmlUrl] = []
        self.attributes: list[str] = []
        document = self.tree.root.parent if self.tree.root is not None else None
        if document is not None:
            _collect(self.tree, document, shown, hidden, self.urls, self.attributes)
        entries = [_Entry([seg for segs in shown for seg in segs])]
        entries += [e for e in map(_Entry, hidden) if e.text]
        self._entries = entries
        self._bases: list[int] = []
        pos = 0
        for e in entries:
            self._bases.append(pos)
            pos += len(e.text) + 1
        self.text = entries[0].text
        self.hidden_text = "\n".join(e.text for e in entries[1:])
        self.reading = self.text + "\n" + self.hidden_text
        _remember(source, (self.text, self.hidden_text, [u.url for u in self.urls], self.attributes))

    def view(self) -> HtmlView:
        return HtmlView(self.text, self.hidden_text, tuple(f for u in self.urls for f in u.forms),
                        tuple(self.attributes))

    def _pieces(self, start: int, end: int) -> Iterator[tuple[_Seg, int, int]]:
        for entry, base in zip(self._entries, self._bases, strict=True):
            lo, hi = max(start, base), min(end, base + len(entry.text))
            if lo < hi:
                yield from entry.pieces(lo - base, hi - base)

    def redact(self, spans: Iterable[tuple[int, int]], marker: str, urls: Iterable[int] = (),
               elements: Iterable[int] = ()) -> str | None:
        """The document with each span of ``reading`` replaced by ``marker`` (in the first node it
        touches; its characters leave the others), each URL of ``urls`` (indexes of ``self.urls``)
        removed (a link's href becomes "#", another attribute goes, a CSS url() is emptied) and the
        elements holding the URLs of ``elements`` removed; None when nothing changed.

        Markup read from a comment cannot be edited in place: its text is cut from the comment's
        data, or, where it is not there as read (entities, split by tags), the comment goes."""
        edits: dict[int, tuple[_Seg, list[tuple[int, int, str]]]] = {}
        comments: dict[int, _CommentEdit] = {}
        changed = False
        for start, end in merged_spans(spans):
            placed = False
            nested: dict[int, tuple[LexborNode, list[str]]] = {}
            for seg, lo, hi in self._pieces(start, end):
                if seg.node is None:
                    continue
                if seg.within is not None:
                    nested.setdefault(seg.within.mem_id, (seg.within, []))[1].append(seg.text[lo:hi])
                    continue
                edits.setdefault(id(seg), (seg, []))[1].append((lo, hi, "" if placed else marker))
                placed = True
            for comment, texts in nested.values():
                _comment_edit(comments, comment).cuts.append(("".join(texts), marker))
        for seg, changes in edits.values():
            text = seg.text
            for lo, hi, new in sorted(changes, reverse=True):
                text = text[:lo] + new + text[hi:]
            node = seg.node
            assert node is not None
            changed = True
            if seg.attr is not None:
                node.attrs[seg.attr] = text
            elif node.is_comment_node:
                _comment_edit(comments, node).data = text
            else:
                node.replace_with(text)
        removed: dict[int, LexborNode] = {}
        for i in urls:
            changed = True
            self._remove_url(self.urls[i], comments)
        for i in elements:
            u = self.urls[i]
            if u.within is not None:
                _comment_edit(comments, u.within).cuts.append((u.url, ""))
            else:
                removed[u.node.mem_id] = u.node
        for c in comments.values():
            changed = c.write() or changed
        for node in removed.values():
            changed = True
            node.decompose()
        return (self.tree.html or "") if changed else None

    def _remove_url(self, u: HtmlUrl, comments: dict[int, _CommentEdit]) -> None:
        if u.within is not None:
            _comment_edit(comments, u.within).cuts.append((u.url, ""))
        elif u.attr == "css":
            u.node.replace_with((u.node.text_content or "").replace(u.url, ""))
        elif u.attr == "style":
            u.node.attrs["style"] = (u.node.attrs.get("style") or "").replace(u.url, "")
        elif u.attr == "href" and u.tag in ("a", "area"):
            u.node.attrs["href"] = "#"
        elif u.attr in u.node.attrs:
            del u.node.attrs[u.attr]


def merged_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Non-empty spans, sorted, overlapping or touching ones joined."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


@dataclass(slots=True)
class _CommentEdit:
    node: LexborNode
    original: str
    data: str
    cuts: list[tuple[str, str]]  # (text as read from the comment's markup, its replacement)

    def write(self) -> bool:
        """Put the new data in place; the comment goes if a cut is not in it as read."""
        data = self.data
        for text, new in self.cuts:
            if not text:
                continue
            if text in data:
                data = data.replace(text, new)
            elif text not in self.original:  # (else an edit of the data itself took it already)
                self.node.decompose()
                return True
        if data == self.original:
            return False
        replacement = LexborHTMLParser(f"<!--{data}-->", is_fragment=True).root
        if replacement is None or not replacement.is_comment_node or _comment_data(replacement) != data:
            self.node.decompose()
        else:
            self.node.replace_with(replacement)
        return True


def _comment_edit(comments: dict[int, _CommentEdit], node: LexborNode) -> _CommentEdit:
    edit = comments.get(node.mem_id)
    if edit is None:
        data = _comment_data(node)
        edit = comments[node.mem_id] = _CommentEdit(node, data, data, [])
    return edit


def read_html(source: str) -> HtmlView:
    """What a mail client shows and keeps of an HTML body, read as a WHATWG parser reads it."""
    known = _RECENT.get(_key(source))
    if known is None:
        return HtmlDocument(source).view()
    text, hidden_text, urls, attributes = known
    return HtmlView(text, hidden_text, tuple(f for u in urls for f in _url_forms(u)), tuple(attributes))


#: The policy's reading of an HTML part and the egress check's reading of the same part (unchanged
#: unless it held an address) follow each other in one process: the second is the first's.
_RECENT: dict[bytes, tuple[str, str, list[str], list[str]]] = {}
_RECENT_MAX = 16


def _key(source: str) -> bytes:
    return hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _remember(source: str, reading: tuple[str, str, list[str], list[str]]) -> None:
    _RECENT[_key(source)] = reading
    while len(_RECENT) > _RECENT_MAX:
        del _RECENT[next(iter(_RECENT))]


def _rewrite_stream(stream: list[_Seg], finder: AddressFinder) -> int:
    """Find over the text nodes joined as displayed; each finding's replacement goes into the first
    text node it touches and its characters leave the others."""
    joined = "".join(p.text for p in stream)
    found = finder.find(joined)
    if not found:
        return 0
    edits: dict[int, list[tuple[int, int, str]]] = {}
    starts: list[int] = []
    pos = 0
    for piece in stream:
        starts.append(pos)
        pos += len(piece.text)
    k = 0
    last_end = 0
    count = 0
    for f in found:
        if f.start < last_end:  # overlapping findings: the first one wins
            continue
        last_end = f.end
        count += 1
        while k + 1 < len(stream) and starts[k + 1] <= f.start:
            k += 1
        placed = False
        j = k
        while j < len(stream) and starts[j] < f.end:
            piece = stream[j]
            lo, hi = max(f.start, starts[j]) - starts[j], min(f.end, starts[j] + len(piece.text)) - starts[j]
            if piece.node is not None and hi > lo:
                edits.setdefault(j, []).append((lo, hi, "" if placed else f.replacement))
                placed = True
            j += 1
    for j, changes in edits.items():
        text = stream[j].text
        for lo, hi, new in sorted(changes, reverse=True):
            text = text[:lo] + new + text[hi:]
        node = stream[j].node
        assert node is not None
        node.replace_with(text)
    return count


def _rewrite_attributes(element: LexborNode, finder: AddressFinder) -> int:
    count = 0
    refresh = _is_refresh(element)
    for name, value in list(element.attrs.items()):
        if not value:
            continue
        if name in _URL_ATTRS or (refresh and name == "content"):
            forms = [unquote(clean_url(value), errors="replace"), clean_url(value), value]
        elif name in _URL_LIST_ATTRS:
            forms = [unquote(value, errors="replace"), value]
        else:  # a script or a client may percent-decode any attribute (data-contact="%6B%65…")
            forms = [unquote(value, errors="replace"), value] if "%" in value else [value]
        for form in forms:
            new, n = finder.sub(form)
            if n:
                element.attrs[name] = new
                count += n
                break
    return count


def _rewrite_comment(comment: LexborNode, finder: AddressFinder) -> int:
    data = _comment_data(comment)
    new, n = finder.sub(data)
    still = n and "<" in new and _view_finds(new, finder)
    if not n and "<" in data and _view_finds(data, finder):  # an entity or %-encoded form in markup
        n, still = 1, True
    if not n:
        return 0
    replacement = LexborHTMLParser(f"<!--{new}-->", is_fragment=True).root
    if still or replacement is None or not replacement.is_comment_node or _comment_data(replacement) != new:
        comment.decompose()  # what Outlook would have shown holds an address we cannot rewrite in place
    else:
        comment.replace_with(replacement)
    return n


def _view_finds(markup: str, finder: AddressFinder) -> bool:
    view = read_html(markup)
    return any(finder.find(t) for t in (view.text, view.hidden_text, *view.urls, *view.attributes))


def rewrite_html(source: str, finder: AddressFinder) -> tuple[str, int]:
    """Every form of a registered address the finder finds, replaced in the DOM; (source, 0) untouched
    when there is none, else the serialised document (doctype kept) and the number replaced."""
    tree = _parse(source)
    document = tree.root.parent if tree.root is not None else None
    if document is None:
        return source, 0
    reader = _Reader()
    reader.read(document)
    for frag in tree.template_fragments():
        reader.read(frag, hidden=1)
    count = _rewrite_stream(reader.stream, finder)
    for node in reader.raw:
        new, n = finder.sub(node.text_content or "")
        if n:
            node.replace_with(new)
            count += n
    for element in reader.elements:
        count += _rewrite_attributes(element, finder)
    for comment in reader.comments:
        count += _rewrite_comment(comment, finder)
    if not count:
        return source, 0
    return tree.html or "", count


_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)  # lazy, and an unterminated one ends the text: linear
_ANY_TAG = re.compile(r"<[^<>]*>")


def text_superset(source: str) -> str:
    """A cheap text that holds every text ``read_html`` would give (and more): comments and tags
    dropped crudely and entities decoded, plus the source itself and its percent-decoding. For a
    pre-check only: if an anchor is not in this, it is nowhere in the HTML as a browser reads it."""
    stripped = html.unescape(_ANY_TAG.sub("", _COMMENT.sub("", source)))
    out = [stripped, html.unescape(_ANY_TAG.sub("", source)), source]  # the second keeps comments' text
    if "&" in source:
        out.append(html.unescape(source))
    if "%" in source:
        out.append(unquote(source, errors="replace"))
    return "\n".join(out)
