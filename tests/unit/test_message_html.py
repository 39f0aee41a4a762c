"""relay.message.html: HTML read as a browser reads it, and rewritten in its DOM.

The finder here is a test double that finds literal lower-cased registered addresses (the real finder
is tested on its own). Rewrites are checked through the stdlib html.parser, a different parser: in
what it reads of the result (text, attribute values, comments) the real address is gone and the alias
is there.
"""

from __future__ import annotations

import html
import threading
from html.parser import HTMLParser

import pytest

from relay.message.contacts import Found
from relay.message.html import MAX_ATTRIBUTES, MAX_DEPTH, HtmlTooComplex, read_html, rewrite_html

REAL = "john@example.com"
ALIAS = "b7k2q9x4m1z8@relay.example"


class LiteralFinder:
    """Finds REAL, in any case, literally: no obfuscated forms (that is the real finder's job)."""

    def __init__(self, real: str = REAL, alias: str = ALIAS) -> None:
        self.real, self.alias = real, alias

    def find(self, text: str) -> list[Found]:
        low, out, i = text.lower(), [], 0
        while (i := low.find(self.real, i)) >= 0:
            out.append(Found(i, i + len(self.real), self.real, self.alias))
            i += len(self.real)
        return out

    def sub(self, text: str) -> tuple[str, int]:
        found = self.find(text)
        parts, pos = [], 0
        for f in found:
            parts += [text[pos:f.start], f.replacement]
            pos = f.end
        return "".join(parts) + text[pos:], len(found)


class _StdlibReading(HTMLParser):
    """Everything the stdlib parser reads: text, attribute values, comment contents."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[str] = []

    def handle_data(self, data: str) -> None:
        self.seen.append(data)

    def handle_comment(self, data: str) -> None:
        self.seen.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen += [v for _, v in attrs if v]


def stdlib_reads(markup: str) -> str:
    p = _StdlibReading()
    p.feed(markup)
    p.close()
    from urllib.parse import unquote

    joined = "".join(p.seen)
    return joined + "\n" + unquote(html.unescape(joined).replace("\t", "").replace("\n", ""))


# (name, source, in displayed text, in urls, in hidden text): None = not checked
CASES = [
    ("entity-decimal", "<p>john&#64;example.com</p>", REAL, None, None),
    ("entity-named", "<p>john&commat;example&period;com</p>", REAL, None, None),
    ("entity-hex", "<p>john&#x40;example.com</p>", REAL, None, None),
    ("comment-split", "<p>jo<!-- x -->hn@ex<!---->ample.com</p>", REAL, None, None),
    ("tag-split", "<p>jo<b>hn</b>@ex<i>am</i><span>ple</span>.com</p>", REAL, None, None),
    ("duplicate-href", '<a href="mailto:john@example.com" href="http://x.example/">x</a>', None,
     "mailto:john@example.com", None),
    ("tab-in-scheme", '<a href="h&#09;ttps://x.example/?to=john@example.com">x</a>', None,
     "https://x.example/?to=john@example.com", None),
    ("newline-javascript", '<a href="java&#10;script:alert(\'john@example.com\')">x</a>', None,
     "javascript:alert('john@example.com')", None),
    ("percent-mailto", '<a href="mailto:john%40example%2Ecom">x</a>', None, "mailto:john@example.com", None),
    ("conditional-vml", '<!--[if mso]><v:roundrect href="mailto:john@example.com" xmlns:v="urn:v">go'
     "</v:roundrect><![endif]--><p>body</p>", None, "mailto:john@example.com", None),
    ("base-href", '<html><head><base href="http://x.example/john@example.com/"></head><body>b</body></html>',
     None, "http://x.example/john@example.com/", None),
    ("srcset", '<img srcset="http://i.example/a.png 1x, http://i.example/john@example.com.png 2x">', None,
     "http://i.example/john@example.com.png", None),
    ("meta-refresh", '<meta http-equiv="Refresh" content="0; url=mailto:john@example.com"><p>x</p>', None,
     "mailto:john@example.com", None),
    ("title-attr", '<p title="mail john@example.com">x</p>', None, None, REAL),
    ("alt-attr", '<img alt="john@example.com" src="x.png">', None, None, REAL),
    ("title-element", "<title>john@example.com</title><p>x</p>", None, None, REAL),
    ("noscript", "<p>x</p><noscript>john@example.com</noscript>", None, None, REAL),
    ("display-none", '<div style="display: none">john@example.com</div><p>x</p>', None, None, REAL),
    ("plain-comment", "<p>x</p><!-- john@example.com -->", None, None, REAL),
    ("cjk", "<p>日本語：john@example.com まで</p><p>中文 한국어</p>", "john@example.com", None, None),
]


@pytest.mark.parametrize(("name", "source", "text", "url", "hidden"), CASES, ids=[c[0] for c in CASES])
def test_read_html(name: str, source: str, text: str | None, url: str | None, hidden: str | None) -> None:
    view = read_html(source)
    if text is not None:
        assert text in view.text
    if url is not None:
        assert url in view.urls
    if hidden is not None:
        assert hidden in view.hidden_text


@pytest.mark.parametrize(("name", "source", "text", "url", "hidden"), CASES, ids=[c[0] for c in CASES])
def test_rewrite_html(name: str, source: str, text: str | None, url: str | None, hidden: str | None) -> None:
    out, count = rewrite_html(source, LiteralFinder())
    assert count >= 1
    read = stdlib_reads(out).lower()
    assert REAL not in read
    assert ALIAS in read
    after = read_html(out)  # and as a browser reads the result: nothing left anywhere
    assert not any(REAL in s.lower() for s in (after.text, after.hidden_text, *after.urls, *after.attributes))


def test_split_address_is_rewritten_into_the_first_node() -> None:
    out, count = rewrite_html("<p>write to jo<b>hn@ex</b>ample.com today</p>", LiteralFinder())
    assert count == 1
    assert read_html(out).text == f"write to {ALIAS} today"


def test_duplicate_href_first_wins() -> None:
    view = read_html('<a href="http://first.example/" href="http://second.example/">x</a>')
    assert "http://first.example/" in view.urls
    assert "http://second.example/" not in view.urls


def test_percent_encoded_url_gives_both_forms() -> None:
    view = read_html('<a href="mailto:john%40example%2Ecom">x</a>')
    assert view.urls == ("mailto:john%40example%2Ecom", "mailto:john@example.com")


def test_inline_pieces_join_without_spaces_and_blocks_break_lines() -> None:
    view = read_html("<div>a<b>b</b><!-- c -->c</div><div>d<br>e</div><script>var s='x'</script><style>p{}</style>")
    assert view.text == "abc\nd\ne"


def test_cjk_survives_rewriting_intact() -> None:
    source = "<p>日本語のテキスト john@example.com へ。中文内容。한국어 텍스트.</p>"
    out, count = rewrite_html(source, LiteralFinder())
    assert count == 1
    assert read_html(out).text == f"日本語のテキスト {ALIAS} へ。中文内容。한국어 텍스트."


def test_nothing_found_returns_the_source_byte_for_byte() -> None:
    source = "<!DOCTYPE html>\n<HTML><p class=x>hello &amp; <B>bye</b>\n"
    assert rewrite_html(source, LiteralFinder()) == (source, 0)


def test_doctype_is_kept() -> None:
    out, _ = rewrite_html("<!DOCTYPE html><p>john@example.com</p>", LiteralFinder())
    assert out.lower().startswith("<!doctype html>")


def test_style_and_script_are_rewritten() -> None:
    out, count = rewrite_html("<style>p::after{content:'john@example.com'}</style>"
                              "<script>var a='john@example.com'</script>", LiteralFinder())
    assert count == 2
    assert REAL not in out and out.count(ALIAS) == 2


def test_conditional_comment_with_percent_encoded_address_is_removed() -> None:
    """The raw comment text does not hold the address, Outlook's reading of it does."""
    source = '<!--[if mso]><v:rect href="mailto:john%40example.com">x</v:rect><![endif]--><p>body</p>'
    out, count = rewrite_html(source, LiteralFinder())
    assert count == 1
    assert "john%40example.com" not in out
    assert "body" in out


def test_textual_data_attribute_is_rewritten() -> None:
    out, count = rewrite_html('<span data-contact="john@example.com" value="John@Example.com">x</span>',
                              LiteralFinder())
    assert count == 2
    assert REAL not in stdlib_reads(out).lower()


@pytest.mark.parametrize(("name", "source"), [
    ("comment-openers", "<!--" * 25_000),
    ("nested-div", "<div>" * 10_000 + "john@example.com"),  # refused: deeper than MAX_DEPTH
    ("nested-span-then-divs", "<span>" * (MAX_DEPTH - 1) + "<div>x</div>" * 8_000),  # as deep as allowed
    ("unclosed-a", "<a href=x>" * 20_000 + "john@example.com"),
    ("lt-run", "<" * 100_000),
])
def test_hostile_markup_still_answers(name: str, source: str) -> None:
    """Each of these is ~100 KB; a quadratic reading takes minutes, this one well under the bound."""
    result: list[object] = []
    def read() -> None:
        try:
            result.append((read_html(source), rewrite_html(source, LiteralFinder())))
        except HtmlTooComplex:
            result.append("refused")

    worker = threading.Thread(target=read)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "still parsing after 10 s"
    assert result


def test_nested_divs_text_survives() -> None:
    view = read_html("<div>" * (MAX_DEPTH - 10) + "john@example.com")
    assert REAL in view.text


@pytest.mark.parametrize("source", [
    "<div>" * (MAX_DEPTH + 1),
    "<blockquote><span>" * (MAX_DEPTH // 2 + 1),
    "<div><span>x</div><div>" * (MAX_DEPTH + 1),  # an end tag closes the span left open in its div
    "<div><a>" * (MAX_DEPTH + 1),  # a new <a> closes the open one, but not the <div> opened in it
    "<h1><div>" * (MAX_DEPTH // 2 + 1),
])
def test_nesting_deeper_than_max_depth_is_refused(source: str) -> None:
    """Each block tag and end tag costs lexbor a look down the open elements: n nested cost n^2."""
    with pytest.raises(HtmlTooComplex):
        read_html(source)


@pytest.mark.parametrize("source", [
    "<p>line" * 5_000,  # closed by the next <p>
    "<div><span>x</div>" * 5_000,  # the </div> closes what was left open in it
    "<table>" + "<tr><td>cell" * 5_000 + "</table>",
    "<br><img src=x.png><hr>" * 5_000,
    '<a href="http://x.example/">link ' * 5_000,  # a new <a> closes the open one
    "<h1>title<h2>sub" * 5_000,
    "<table><tr><td>x</table>" * 5_000,
])
def test_long_but_shallow_markup_is_read(source: str) -> None:
    read_html(source)


def test_too_many_attributes_on_one_tag_is_refused() -> None:
    source = "<p " + " ".join(f"a{i}" for i in range(MAX_ATTRIBUTES + 1)) + ">x</p>"
    with pytest.raises(HtmlTooComplex):
        read_html(source)


def test_body_attributes_merged_over_many_tags_are_refused() -> None:
    source = "".join(f"<body a{i}>" for i in range(MAX_ATTRIBUTES + 1))
    with pytest.raises(HtmlTooComplex):
        rewrite_html(source, LiteralFinder())


def test_attributes_hidden_in_a_quote_opened_inside_a_comment_are_counted() -> None:
    source = "<!-- <x a=\" --> <p " + " ".join(f"a{i}" for i in range(MAX_ATTRIBUTES + 1)) + '> "'
    with pytest.raises(HtmlTooComplex):
        read_html(source)


def test_ordinary_tags_with_attributes_are_read() -> None:
    source = "<p " + " ".join(f'a{i}="v"' for i in range(50)) + ">x</p>"
    assert len(read_html(source).attributes) == 50


# --- the located reading (HtmlDocument): what the policy judges, and where each character came from ---


def _corpus_html() -> list[str]:
    import email
    from email import policy as email_policy

    from tests.dkimtools import CORPUS, corpus_manifest

    out = []
    for row in corpus_manifest():
        try:
            msg = email.message_from_bytes((CORPUS / row["file"]).read_bytes(), policy=email_policy.default)
            out += [part.get_content() for part in msg.walk() if part.get_content_type() == "text/html"]
        except Exception:
            continue
    return out


_PIECES = ["<p>", "</p>", "<P>", "<br>", "<b>", "</b>", "<div>", "</div>", "<a>", "</a>", "<script>", "</script>",
           "<style>", "</style>", "<title>", "</title>", "<p class=x>", '<a href="http://x.example/">', "</a >",
           "< p>", "<p/>", "<img src=a.png alt='hi'>", "<p", "</", "<", ">", "&amp;", "&#64;", "&#x40", "&lt",
           "<!-- c -->", "<!--[if mso]><a href='http://v.example/'>v <b>w</b></a><![endif]-->", "<!doctype html>",
           "<?pi?>", "text ", "mail@example.com ", "url(http://c.example/)", "\n", "\n\n  \n", " \t", "<x-y>",
           "<template>", "</template>", "<noscript>", "</noscript>", "<div style='display:none'>", "&", "a & b",
           "<a title='<p>'>", "<!--", "-->", "<![CDATA[x]]>", "<textarea>", "</textarea>", "<input value='v w'>",
           "<table><tr><td>", "</td><td>", "</td></tr></table>"]


def _generated(n: int) -> list[str]:
    import random

    rng = random.Random(8)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 40))) for _ in range(n)]


LOCATED_CASES = _corpus_html() + _generated(1500)


@pytest.mark.parametrize("chunk", range(0, len(LOCATED_CASES), 250))
def test_every_character_of_the_reading_points_back_to_its_piece(chunk: int) -> None:
    """The policy judges HtmlDocument.reading: it is read_html's text and hidden text, and each of its
    characters is located in the text node, attribute or comment it was read from (redaction needs that)."""
    from relay.message.html import HtmlDocument

    for source in LOCATED_CASES[chunk:chunk + 250]:
        try:
            doc = HtmlDocument(source)
        except HtmlTooComplex:
            continue
        view = read_html(source)
        assert doc.reading == view.text + "\n" + view.hidden_text
        step = max(1, len(doc.reading) // 2000)
        for i in range(0, len(doc.reading), step):
            if doc.reading[i] == "\n":
                continue
            pieces = list(doc._pieces(i, i + 1))
            assert len(pieces) == 1, (source[:200], i)
            seg, lo, hi = pieces[0]
            assert (hi - lo, seg.text[lo]) == (1, doc.reading[i]), (source[:200], i)


def test_tidy_is_the_blank_line_regex() -> None:
    """_tidy (a search from each newline) and _tidy_runs (kept runs, for locating) give what the plain
    regex gives, on every short text of spaces, tabs, newlines and letters."""
    import itertools

    from relay.message.html import _BLANK_LINES, _tidy, _tidy_runs

    for n in range(9):
        for chars in itertools.product(" \t\na", repeat=n):
            text = "".join(chars)
            want = _BLANK_LINES.sub("\n", text).strip("\n")
            assert _tidy(text) == want, repr(text)
            assert "".join(text[a:b] for a, b in _tidy_runs(text)) == want, repr(text)


def test_a_reading_remembered_from_the_policy_is_the_reading() -> None:
    """The egress check's read_html of a part the policy read comes from the remembered reading."""
    from relay.message import html as module

    source = '<p title="t">jo<b>hn</b>@example.com</p><a href="h&#09;ttp://x.example/%41">x</a><!-- c -->'
    module._RECENT.clear()
    fresh = read_html(source)
    module._RECENT.clear()
    module.HtmlDocument(source)
    assert module._RECENT and read_html(source) == fresh
