"""Safety net: where do real addresses still appear in a (rewritten) message?

Job: ``find_leaks(message, addresses)`` describes each place a reader can see text in the message
(relay.message.views: every header, part header and file name, text, HTML as a browser reads it,
attachments' texts and barcodes) that holds a form of one of the addresses (the one finder). The
same reading as the egress stage's, for tools and tests.
Config read: none (pure). Errors raised: none.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay.message.contacts import finder_of


def find_leaks(message: bytes, addresses: Iterable[str]) -> list[str]:
    """Descriptions of every place one of ``addresses`` still appears (empty: none)."""
    from relay.message.views import places  # (views builds on this package's MIME walk)

    finder = finder_of(addresses)
    if finder.empty:
        return []
    return [p.where for p in places(message, finder.might_contain) if p.text and finder.search(p.text)]
