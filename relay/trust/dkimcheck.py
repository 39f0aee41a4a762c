"""Verify every DKIM signature of a message: dkimpy in a worker thread (hashing a big body must not
stall the loop), public keys fetched through the relay's async resolver on the loop.

Reads: dns.timeout (passed in). Results per signature: (d=, "pass" | "fail" | "permerror" | "temperror").
A key lookup that times out is a temperror, never a fail and never a pass; a signature or header block
dkimpy cannot read is a permerror for that signature (RFC 6376 §6.1), never an exception.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Sequence

import dkim

from relay.trust.dns import DnsTempError, Resolver

_D_TAG = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.I)


def signature_domains(dkim_headers: Sequence[str]) -> list[str]:
    out = []
    for value in dkim_headers:
        m = _D_TAG.search(value.replace("\r\n", ""))
        out.append(m.group(1).lower().rstrip(".") if m else "")
    return out


def key_record(name: bytes, records: Sequence[str]) -> bytes | None:
    """The one TXT record of a selector that parses as a DKIM key (RFC 6376 §3.6.2.2: several
    records may be there, junk included); the first record when none does, so the error is dkimpy's."""
    encoded = [r.encode("utf-8", "replace") for r in records]
    for record in encoded:
        try:
            dkim.evaluate_pk(name, record)
        except Exception:  # KeyFormatError, binascii.Error, nacl's errors: not this record
            continue
        return record
    return encoded[0] if encoded else None


def _label(domain: bytes | str | None) -> str:
    if isinstance(domain, bytes):
        domain = domain.decode("ascii", "replace")
    return (domain or "").strip().lower().rstrip(".")


async def verify_all(resolver: Resolver, raw: bytes, dkim_headers: Sequence[str],
                     timeout: float) -> list[tuple[str, str]]:
    if not dkim_headers:
        return []
    loop = asyncio.get_running_loop()

    def dnsfunc(name: bytes, timeout: float = timeout) -> bytes | None:
        fut = asyncio.run_coroutine_threadsafe(resolver.txt(name.decode("ascii", "replace")), loop)
        try:
            records = fut.result(timeout + 5)  # DnsTempError propagates out of dkimpy
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise DnsTempError(f"TXT {name!r}: no answer in time") from None
        return key_record(name, records)

    def verify() -> list[tuple[str, str]]:
        try:
            d = dkim.DKIM(raw, minkey=1024, timeout=int(timeout) or 1)
        except Exception:  # a header line dkimpy cannot split (no colon, …): no signature is readable
            return [(domain, "permerror") for domain in signature_domains(dkim_headers)]
        # Index dkimpy's own list of signatures and label each result with the d= dkimpy verified
        # against: pairing our reader's n-th d= with dkimpy's n-th signature would credit one
        # domain's pass to another the day the two readers split a header block differently.
        values = [v.decode("ascii", "replace") for n, v in d.headers if n.lower() == b"dkim-signature"]
        return [_verify_one(d, idx, value, dnsfunc) for idx, value in enumerate(values)]

    return await asyncio.to_thread(verify)


def _verify_one(d: dkim.DKIM, idx: int, value: str, dnsfunc: object) -> tuple[str, str]:
    # verify_headerprep / verify_sig are dkimpy's own two halves of verify() (its async variant uses
    # them too): splitting them tells a signature we cannot read (permerror) from one that does not
    # verify (fail: body hash or signature mismatch, unusable key).
    d.domain = None
    try:
        prep = d.verify_headerprep(idx)
    except Exception:  # bad tag list, duplicate tag, b= not base64, unknown a=, non-ASCII …
        return _label(d.domain) or signature_domains([value])[0], "permerror"
    if not prep:
        return signature_domains([value])[0], "permerror"
    sig, include_headers, sigheaders = prep
    domain = _label(sig.get(b"d"))
    try:
        ok = d.verify_sig(sig, include_headers, sigheaders[idx], dnsfunc)
    except DnsTempError:
        return domain, "temperror"
    except (dkim.ValidationError, dkim.KeyFormatError):
        return domain, "fail"
    except Exception:  # c= unknown, l= too big, a b= that decodes to junk: dkimpy's and the stdlib's zoo
        return domain, "permerror"
    return domain, "pass" if ok else "fail"
