"""HTML read as a browser reads it (WHATWG parsing by lexbor, linear time), and rewritten in its DOM.

Reads no config: read_html(source) -> HtmlView (displayed text, hidden text, URLs, attributes);
rewrite_html(source, finder) -> (html, count) puts the finder's replacements into text, attributes,
comments, <title>/<style>/<script>. Both raise HtmlTooComplex (a ValueError) for markup whose parse is
super-linear in lexbor (one element, or <html>/<body> merged, with more than MAX_ATTRIBUTES attributes).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode

from relay.message.contacts import AddressFinder

#: lexbor checks each new attribute against every one the element has (the spec's duplicate rule):
#: n attributes cost n^2 (50,000 take 8 s). No real message comes near this.
MAX_ATTRIBUTES = 1000

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
_VISIBLE_ATTRS = ("alt", "title", "aria-label", "placeholder")
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
    """Raise HtmlTooComplex if some element may get more than MAX_ATTRIBUTES attributes.

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
class _Piece:
    """One text node of the display stream (node None: a line break the layout puts there)."""
    node: LexborNode | None
    text: str
    shown: bool  # displayed (else kept but hidden)


class _Reader:
    """One walk over a tree: the text stream in display order, raw text, comments, attributes."""

    def __init__(self) -> None:
        self.stream: list[_Piece] = []
        self.raw: list[LexborNode] = []  # text nodes of <script>/<style>
        self.comments: list[LexborNode] = []
        self.elements: list[LexborNode] = []

    def read(self, top: LexborNode, hidden: int = 0) -> None:
        raw = 0
        hidden_at: list[bool] = []  # per open element: did it hide what it holds
        for entering, node in _walk(top):
            if node.is_text_node:
                if entering:
                    if raw:
                        self.raw.append(node)
                    else:
                        self.stream.append(_Piece(node, node.text_content or "", not hidden))
                continue
            if node.is_comment_node:
                if entering:
                    self.comments.append(node)
                continue
            if not node.is_element_node:
                continue
            tag = node.tag or ""
            if entering:
                self.elements.append(node)
                hides = tag in _HIDDEN or "hidden" in node.attrs or bool(
                    _HIDDEN_STYLE.search(node.attrs.get("style") or ""))
                hidden_at.append(hides)
                hidden += hides
                raw += tag in _RAW
                if tag in _BLOCK:
                    self.stream.append(_Piece(None, "\n", not hidden))
            else:
                if hidden_at:
                    hidden -= hidden_at.pop()
                raw -= tag in _RAW
                if tag in _BLOCK and tag != "br":
                    self.stream.append(_Piece(None, "\n", not hidden))

    def joined(self) -> str:
        return "".join(p.text for p in self.stream)


def _comment_data(node: LexborNode) -> str:
    """A comment's data exactly (comment_content strips its whitespace)."""
    html = node.html or ""
    return html[4:-3] if html.startswith("<!--") and html.endswith("-->") else (node.comment_content or "")


def _tidy(text: str) -> str:
    """Blank lines and trailing spaces the block breaks leave, removed (the text stays the text)."""
    return re.sub(r"[ \t]*\n(?:[ \t]*\n)+", "\n", text).strip("\n")


def _collect(tree: LexborHTMLParser, top: LexborNode, shown: list[str], hidden: list[str],
             urls: list[str], attributes: list[str], *, nested: bool) -> None:
    reader = _Reader()
    reader.read(top)
    for frag in tree.template_fragments():
        reader.read(frag, hidden=1)
    text: list[str] = []
    kept: list[str] = []
    for piece in reader.stream:
        (text if piece.shown else kept).append(piece.text)
        if piece.node is None and piece.shown:
            kept.append("\n")
    shown.append("".join(text))
    hidden.append("".join(kept))
    for el in reader.elements:
        refresh = _is_refresh(el)
        for name, value in el.attrs.items():
            if value is None or value == "":
                continue
            if name in _URL_ATTRS:
                urls.extend(_url_forms(value))
            elif name in _URL_LIST_ATTRS:
                for listed in _url_list(name, value):
                    urls.extend(_url_forms(listed))
            elif refresh and name == "content":
                target = _refresh_url(value)
                if target:
                    urls.extend(_url_forms(target))
                attributes.append(value)
            else:
                attributes.append(value)
                if "%" in value:
                    attributes.append(unquote(value, errors="replace"))
                if name in _VISIBLE_ATTRS:
                    hidden.append(value)
    for comment in reader.comments:
        data = _comment_data(comment)
        hidden.append(data)
        # Outlook renders <!--[if mso]> markup; any comment holding markup is read as a fragment once
        if not nested and "<" in data:
            inner = _parse(data)
            if inner.root is not None and inner.root.parent is not None:
                _collect(inner, inner.root.parent, hidden, hidden, urls, attributes, nested=True)


def read_html(source: str) -> HtmlView:
    """What a mail client shows and keeps of an HTML body, read as a WHATWG parser reads it."""
    tree = _parse(source)
    shown: list[str] = []
    hidden: list[str] = []
    urls: list[str] = []
    attributes: list[str] = []
    document = tree.root.parent if tree.root is not None else None
    if document is not None:
        _collect(tree, document, shown, hidden, urls, attributes, nested=False)
    return HtmlView(
        text=_tidy("".join(shown)),
        hidden_text="\n".join(h for h in (_tidy(x) for x in hidden) if h),
        urls=tuple(urls),
        attributes=tuple(attributes),
    )


def _rewrite_stream(stream: list[_Piece], finder: AddressFinder) -> int:
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
