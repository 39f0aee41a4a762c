"""Async DNS for sender authentication: TXT, A, AAAA, MX through dnspython's async resolver.

Reads: dns.nameservers, dns.port, dns.timeout, dns.cache_size (dnspython's LRU cache, which keeps
each answer for its TTL: a sender's SPF, DMARC and DKIM records are fetched once, not per message). No answer / NXDOMAIN → empty result;
a timeout, SERVFAIL or unreachable server raises DnsTempError (the caller answers 451 4.7.0).
"""

from __future__ import annotations

import functools
import ipaddress

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from relay.config import DnsSection


class DnsTempError(Exception):
    """The answer could not be obtained now; never to be read as 'no record'."""


# The same few names (the senders' domains, their _spf and _dmarc) are asked for on every message:
# parse each once (dnspython's from_text is ~10 µs; a Name is immutable).
_name = functools.lru_cache(maxsize=4096)(dns.name.from_text)


class Resolver:
    def __init__(self, section: DnsSection) -> None:
        if section.nameservers:
            r = dns.asyncresolver.Resolver(configure=False)
            r.nameservers = [str(ipaddress.ip_address(ns)) for ns in section.nameservers]
            r.port = section.port
        else:
            r = dns.asyncresolver.Resolver()
        r.lifetime = section.timeout
        r.timeout = min(section.timeout, 2.0)
        r.retry_servfail = False
        if section.cache_size:
            r.cache = dns.resolver.LRUCache(section.cache_size)
        self._r = r
        self.queries = 0

    async def _query(self, name: str, rdtype: str) -> list[object]:
        self.queries += 1
        try:
            qname = _name(name)
        except (dns.exception.DNSException, UnicodeError, ValueError):
            return []  # not a valid name: nothing can be there
        try:
            answer = await self._r.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise DnsTempError(f"{rdtype} {name}: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{rdtype} {name}: {type(exc).__name__}") from None
        return list(answer.rrset or [])

    async def txt(self, name: str) -> list[str]:
        """Each TXT record with its strings joined (RFC 7208 §3.3), as text."""
        return [b"".join(rr.strings).decode("utf-8", "replace") for rr in await self._query(name, "TXT")]  # type: ignore[attr-defined]

    async def addresses(self, name: str, v6: bool) -> list[str]:
        return [rr.address for rr in await self._query(name, "AAAA" if v6 else "A")]  # type: ignore[attr-defined]

    async def mx(self, name: str) -> list[str]:
        return [rr.exchange.to_text(omit_final_dot=True) for rr in await self._query(name, "MX")]  # type: ignore[attr-defined]
