"""Test zones for sender authentication: senders that sign (dkimpy) and the zone text that vouches for them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import dkim

from relay.dkim import public_txt_from_private, txt_record
from relay.model import Role
from relay.store import parties, threads
from tests.dkimtools import rsa_pem
from tests.support import DOMAIN, World, write

#: SPF for 127.0.0.1 (the test client) is authorized by gmail.test and bulk.test only.
ZONE_HEAD = """
gmail.test. 60 IN TXT "v=spf1 include:_spf.gmail.test ~all"
_spf.gmail.test. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"
_dmarc.gmail.test. 60 IN TXT "v=DMARC1; p=none; rua=mailto:d@gmail.test"
outlook.test. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
strict.test. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.strict.test. 60 IN TXT "v=DMARC1; p=reject"
brand.test. 60 IN TXT "v=spf1 -all"
_dmarc.brand.test. 60 IN TXT "v=DMARC1; p=quarantine"
bulk.test. 60 IN TXT "v=spf1 a:mta.bulk.test -all"
mta.bulk.test. 60 IN A 127.0.0.1
"""


def zone() -> str:
    """ZONE_HEAD plus the DKIM keys of gmail.test (s1), outlook.test (selector1) and brand.test (k1)."""
    keys = [txt_record(sel, dom, public_txt_from_private(rsa_pem(2048, n)))
            for sel, dom, n in (("s1", "gmail.test", 11), ("selector1", "outlook.test", 12), ("k1", "brand.test", 13))]
    return ZONE_HEAD + "\n".join(keys) + "\n"


def sign(data: bytes, domain: str) -> bytes:
    sel, n = {"gmail.test": ("s1", 11), "outlook.test": ("selector1", 12), "brand.test": ("k1", 13)}[domain]
    sig = dkim.sign(data, sel.encode(), domain.encode(), rsa_pem(2048, n),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + data


@dataclass
class Seller:
    emails: list[str]
    buyer_alias: str  # what this seller writes to


def add_seller(world: World, *emails: str) -> Seller:
    """Another seller with these addresses, in a thread with the world's buyer."""
    conn: sqlite3.Connection = world.conn()
    try:
        seller = write(conn, lambda c: parties.add(c, Role.SELLER, "Shop " + emails[0], list(emails)))
        thread, _ = write(conn, lambda c: threads.open_thread(c, world.buyer_id, seller.id, order="ORD-9"))
    finally:
        conn.close()
    return Seller(list(emails), f"{thread.buyer_alias}@{DOMAIN}")
