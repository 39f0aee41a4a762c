"""bench --peer-signing: the unsigned peer (the issue's 100 KB "Postfix with rewriting") is its own
target, and the pre-run check asks a signature only of a peer that signs."""

from __future__ import annotations

from pathlib import Path

from bench.peer_postfix import PostfixTarget
from bench.run import parse_args
from bench.target_relay import DOMAIN
from bench.verify import check

_DELIVERED = (f"From: <peer0buyer@{DOMAIN}>\r\nTo: <shop0@seller.example>\r\nSubject: hi\r\n\r\nbody\r\n").encode()


def test_an_unsigned_peer_is_a_target_of_its_own(tmp_path: Path) -> None:
    signing, plain = PostfixTarget(tmp_path), PostfixTarget(tmp_path, signing=False)
    assert plain.name == "postfix-nodkim" and signing.name == "postfix"
    assert plain.dkim is False and plain.public_txt() is None
    assert parse_args(["--peer", "postfix", "--peer-signing", "both"]).peer_signing == "both"
    assert parse_args([]).peer_signing == "opendkim"


def test_the_check_asks_a_signature_only_of_a_signer() -> None:
    args = (f"peer0buyer@{DOMAIN}", ["shop0@seller.example"], "buyer0@buyer.example", "shop0@seller.example")
    assert check(_DELIVERED, *args, None) == []
    assert check(_DELIVERED, *args, "v=DKIM1; k=rsa; p=") == ["not DKIM-signed"]
    leaked = _DELIVERED.replace(b"Subject: hi", b"Reply-To: buyer0@buyer.example")
    assert check(leaked, *args, None) == ["the sender's real address was delivered"]
