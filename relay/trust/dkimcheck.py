"""Verify every DKIM signature of a message: dkimpy in a worker thread (hashing a big body must not
stall the loop), public keys fetched through the relay's async resolver on the loop.

Results per signature: (d=, "pass" | "fail" | "temperror"). A key lookup that times out is a
temperror, never a fail and never a pass.
"""

from __future__ import annotations

import asyncio
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


async def verify_all(resolver: Resolver, raw: bytes, dkim_headers: Sequence[str],
                     timeout: float) -> list[tuple[str, str]]:
    domains = signature_domains(dkim_headers)
    if not domains:
        return []
    loop = asyncio.get_running_loop()

    def dnsfunc(name: bytes, timeout: float = timeout) -> bytes | None:
        fut = asyncio.run_coroutine_threadsafe(resolver.txt(name.decode("ascii", "replace")), loop)
        records = fut.result(timeout + 5)  # DnsTempError propagates out of dkimpy
        return records[0].encode() if records else None

    def verify() -> list[tuple[str, str]]:
        results = []
        d = dkim.DKIM(raw, minkey=1024, timeout=int(timeout) or 1)
        for idx, domain in enumerate(domains):
            try:
                ok = d.verify(idx, dnsfunc=dnsfunc)
                results.append((domain, "pass" if ok else "fail"))
            except DnsTempError:
                results.append((domain, "temperror"))
            except (dkim.DKIMException, ValueError, IndexError, KeyError, TypeError):
                results.append((domain, "fail"))
        return results

    return await asyncio.to_thread(verify)
