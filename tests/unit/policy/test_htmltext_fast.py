"""The extractor's own reading of plain tokens (text, <p>, </p>; handled in runs between the pieces
it feeds HTMLParser) gives what HTMLParser's general reading of the whole document at once gives:
the same text, the same source span for every character, the same URLs. The oracle is the
extractor with the fast paths taken away, fed everything at once; the inputs are every HTML part of the shared corpus and
generated markup full of the cases around the fast paths (case, <script>/<style> content, tags
with attributes or spaces, self-closing tags, broken tags, entities, comments).
"""

from __future__ import annotations

import email
import random
from email import policy as email_policy
from html.parser import HTMLParser

import pytest

from relay.policy import htmltext
from tests.dkimtools import CORPUS, corpus_manifest


class _General(htmltext._Extractor):
    parse_starttag = HTMLParser.parse_starttag
    parse_endtag = HTMLParser.parse_endtag

    def read(self, source: str) -> None:
        self.feed(source)
        self.close()


def _read(cls: type[htmltext._Extractor], source: str) -> tuple[str, list[tuple[int, int]], list[tuple[object, ...]]]:
    ex = cls(source)
    try:
        ex.read(source)
    except Exception:
        pass
    text = "".join(ex.chunks)
    spans = [ex.spans.char(k) for k in range(len(text))]
    urls = [(u.url, u.tag, u.attr, u.tag_start, u.tag_end, u.anchor_text, u.remote_image, u.tiny) for u in ex.urls]
    return text, spans, urls


def _corpus_html() -> list[str]:
    out = []
    for row in corpus_manifest():
        try:
            msg = email.message_from_bytes((CORPUS / row["file"]).read_bytes(), policy=email_policy.default)
            out += [part.get_content() for part in msg.walk() if part.get_content_type() == "text/html"]
        except Exception:
            continue
    return out


_PIECES = ["<p>", "</p>", "<P>", "</P>", "<br>", "<b>", "</b>", "<div>", "</div>", "<h1>", "</h1>", "<a>", "</a>",
           "<script>", "</script>", "<style>", "</style>", "<SCRIPT>", "</Script>", "<title>", "</title>",
           "<p class=x>", '<a href="http://x.example/">', "</a >", "< p>", "</ p>", "<p/>", "<br/>", "<p >",
           "</p extra>", "<img src=a.png alt='hi'>", "<p", "</", "<", ">", "&amp;", "&#64;", "&#x40", "&lt",
           "<!-- c -->", "<!--[if mso]><a href='http://v.example/'>v</a><![endif]-->", "<!doctype html>",
           "<?pi?>", "text ", "mail@example.com ", "url(http://c.example/)", "\n", "<td1>", "</td1>", "<x-y>",
           "<template>", "</template>", "</style >", "</STYLE>", "&", "a & b", "<a title='<p>'>", "&#", "<!--",
           "-->", "<![CDATA[x]]>", "<textarea>", "</textarea>", "<p\n>", "</p\n>"]


def _generated(n: int) -> list[str]:
    rng = random.Random(8)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 40))) for _ in range(n)]


#: markup that leaves the parser holding a piece back (then it gets all the rest at once)
_HELD_BACK = ["<!--" + "<p>x</p>" * 500 + "-->after<p>y", "<style>" + "<p>p{}" * 300, "a&" + "<p>b&" * 300,
              "<b title='" + "<p>" * 300 + "'>t</b>", "<p>" * 300 + "<", "<p>x</p>" * 300 + "&#", "<script>a<b</script>c<p>"]

CASES = _corpus_html() + _generated(3000) + _HELD_BACK


def test_there_is_corpus_html() -> None:
    if not corpus_manifest():
        pytest.skip("shared corpus not present")
    assert len(CASES) > 3000


@pytest.mark.parametrize("chunk", range(0, len(CASES), 250))
def test_plain_tags_read_as_htmlparser_reads_them(chunk: int) -> None:
    for source in CASES[chunk:chunk + 250]:
        assert _read(htmltext._Extractor, source) == _read(_General, source), source[:200]


@pytest.mark.parametrize("chunk", range(0, len(CASES), 250))
def test_text_without_spans_is_the_text_with_them(chunk: int) -> None:
    """html_to_text(spans=False), the check's reading, gives the text and URLs of the reading
    with spans (which the test above holds to HTMLParser's)."""
    for source in CASES[chunk:chunk + 250]:
        full, quick = htmltext.html_to_text(source), htmltext.html_to_text(source, spans=False)
        assert quick.spans is None
        assert (quick.text, quick.urls) == (full.text, full.urls), source[:200]
