"""relay.policy.htmltext on hostile markup: linear, and read as a browser reads an unterminated construct.

Each input is 200 KB: the former reading retried the construct at every later "<" and took minutes
(100 KB of "<!--" alone took 7 s); the oracle is WHATWG's EOF rules, not the code under test.
"""

from __future__ import annotations

import threading

import pytest

from relay.policy.htmltext import html_to_text

N = 200_000


@pytest.mark.parametrize(("name", "source", "absent"), [
    ("unterminated-comment", "<p>shown</p><!-- " + "secret@example.com <p>x</p> " * (N // 28), "secret@"),
    ("comment-openers", "<p>shown</p>" + "<!--" * (N // 4) + "after@example.com", "after@"),
    ("pi-openers", "<p>shown</p>" + "<?x " * (N // 4) + "after@example.com", "after@"),
    ("bogus-openers", "<p>shown</p>" + "<!x " * (N // 4) + "after@example.com", "after@"),
    ("unclosed-a", "<p>shown</p>" + "<a " * (N // 3) + "after@example.com", "after@"),
    ("open-quotes", "<p>shown</p>" + "<a b='" * (N // 6) + "after@example.com", "after@"),
    ("end-tag-openers", "<p>shown</p>" + "</a" * (N // 3) + "after@example.com", "after@"),
    ("cdata-openers", "<p>shown</p>" + "<![CDATA[" * (N // 9) + "after@example.com", "after@"),
])
def test_unterminated_construct_runs_to_the_end(name: str, source: str, absent: str) -> None:
    result = html_to_text(source)
    assert "shown" in result.text
    assert absent not in result.text


def test_text_before_and_after_terminated_constructs_is_kept() -> None:
    result = html_to_text("<p>one</p><!-- c --><p>two</p><?pi?><p>three</p><!x><p>four")
    assert [w for w in result.text.split() if w] == ["one", "two", "three", "four"]


def test_hostile_input_answers_in_a_thread_within_a_generous_bound() -> None:
    source = "<!--" * (N // 8) + "<a " * (N // 6)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (html_to_text(source), done.set()), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert done.is_set(), "200 KB of hostile markup still being read after 5 s"
