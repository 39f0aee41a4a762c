"""Milliseconds per DKIM signature: relay.dkim (cryptography) against dkimpy, for a 5 KB and a 100 KB message.

Usage: python bench/dkim_sign.py [ROUNDS]     (prints figures; never a pass/fail)
"""

from __future__ import annotations

import base64
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.dkim import Signer

HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"]


def message(size: int) -> bytes:
    head = (b"From: Seller <s-7f3k2q@relay.example.test>\r\nTo: b-91xz0m@relay.example.test\r\n"
            b"Subject: =?UTF-8?B?5ZWG5ZOB44Gr44Gk44GE44Gm?=\r\nDate: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
            b"Message-ID: <bench@relay.example.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=UTF-8\r\n\r\n")
    line = "The item ships tomorrow.  商品は明日発送します。 \t thanks\r\n".encode()
    return head + line * ((size - len(head)) // len(line) + 1)


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    """Median of `rounds` timings, best of three such medians (the bench host is shared and noisy)."""
    fn()
    medians = []
    for _ in range(3):
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        medians.append(statistics.median(times))
    return min(medians) * 1000


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_seed = ed_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())
    rsa_only = Signer("example.test", "sel", rsa_pem)
    both = Signer("example.test", "sel", rsa_pem, ed_key)
    ed_b64 = base64.b64encode(ed_seed)
    print(f"median of {rounds} rounds, ms per signed message (relaxed/relaxed, RSA-2048)")
    print(f"{'message':>8}  {'relay rsa':>10}  {'relay rsa+ed':>12}  {'dkimpy rsa':>10}  {'dkimpy ed':>10}")
    for size in (5_000, 100_000):
        msg = message(size)
        r1 = median_ms(lambda m=msg: rsa_only.sign(m), rounds)
        r2 = median_ms(lambda m=msg: both.sign(m), rounds)
        d1 = median_ms(lambda m=msg: dkim.sign(m, b"sel", b"example.test", rsa_pem,
                                               canonicalize=(b"relaxed", b"relaxed"), include_headers=HEADERS),
                       max(rounds // 4, 5))
        d2 = median_ms(lambda m=msg: dkim.sign(m, b"sel", b"example.test", ed_b64, signature_algorithm=b"ed25519-sha256",
                                               canonicalize=(b"relaxed", b"relaxed"), include_headers=HEADERS),
                       rounds)
        print(f"{len(msg) // 1000:>6}KB  {r1:>10.3f}  {r2:>12.3f}  {d1:>10.3f}  {d2:>10.3f}")


if __name__ == "__main__":
    main()
