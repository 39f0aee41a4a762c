"""SPF (RFC 7208) check_host(), evaluated on the event loop through the relay's async resolver.

Reads: nothing (the Resolver carries dns.*). Results: pass, fail, softfail, neutral, none,
permerror, temperror. Why our own: pyspf is synchronous and resolves through dnspython's
process-wide default resolver; this one shares the configured async resolver and its timeouts.
`ptr` never matches (RFC 7208 §5.5: "do not use"); `exp=` is ignored (we never explain to senders).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from relay.trust.dns import DnsTempError, Resolver

MAX_LOOKUPS = 10  # §4.6.4
MAX_VOID = 2
MAX_MX = 10
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECH = re.compile(r"^([+\-~?]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?::([^/]*))?(?:/(\d+))?(?://(\d+))?$", re.I)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_MACRO = re.compile(r"%(?:\{([slodiphcrtv])(\d*)(r?)([.\-+,/_=]*)\}|(%)|(_)|(-))", re.I)


class PermError(Exception):
    pass


@dataclass
class _State:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    helo: str
    lookups: int = 0
    voids: int = 0
    seen: set[str] = field(default_factory=set)


async def check_host(resolver: Resolver, ip: str, sender: str, helo: str = "") -> str:
    """SPF result for MAIL FROM `sender` (or postmaster@helo for the null sender) from `ip`."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "permerror"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if not sender:
        sender = f"postmaster@{helo}"
    local, _, domain = sender.rpartition("@")
    if not local:
        sender = f"postmaster@{domain}"
    st = _State(addr, sender, helo)
    try:
        return await _check(resolver, st, domain.lower().rstrip("."))
    except PermError:
        return "permerror"
    except DnsTempError:
        return "temperror"


def _valid_domain(domain: str) -> bool:
    labels = domain.split(".")
    return len(labels) >= 2 and all(0 < len(x) < 64 for x in labels) and len(domain) <= 253


async def _record(resolver: Resolver, domain: str) -> str | None:
    found = [t for t in await resolver.txt(domain) if re.match(r"^v=spf1(\s|$)", t, re.I)]
    if len(found) > 1:
        raise PermError("more than one SPF record")
    return found[0] if found else None


async def _check(resolver: Resolver, st: _State, domain: str) -> str:
    if not _valid_domain(domain):
        return "none"
    record = await _record(resolver, domain)
    if record is None:
        return "none"
    redirect = None
    terms = record.split()[1:]
    for term in terms:
        m = _MECH.match(term)
        if m is None:
            mod = _MODIFIER.match(term)
            if mod is None:
                raise PermError(f"bad term {term!r}")
            if mod.group(1).lower() == "redirect":
                redirect = mod.group(2)
            continue
        qualifier, mech = _QUALIFIERS[m.group(1) or "+"], m.group(2).lower()
        if await _matches(resolver, st, domain, mech, m.group(3), m.group(4), m.group(5)):
            return qualifier
    if redirect is not None:
        _count(st)
        target = _expand(redirect, st, domain)
        result = await _check(resolver, st, target)
        if result == "none":
            raise PermError("redirect to a domain without SPF")
        return result
    return "neutral"


def _count(st: _State) -> None:
    st.lookups += 1
    if st.lookups > MAX_LOOKUPS:
        raise PermError("too many DNS lookups")


def _void(st: _State, result: list[str]) -> list[str]:
    if not result:
        st.voids += 1
        if st.voids > MAX_VOID:
            raise PermError("too many void lookups")
    return result


def _in(st: _State, addresses: list[str], cidr4: str | None, cidr6: str | None) -> bool:
    v6 = isinstance(st.ip, ipaddress.IPv6Address)
    prefix = int(cidr6 or 128) if v6 else int(cidr4 or 32)
    for a in addresses:
        try:
            net = ipaddress.ip_network(f"{a}/{prefix}", strict=False)
        except ValueError:
            continue
        if st.ip.version == net.version and st.ip in net:
            return True
    return False


async def _matches(resolver: Resolver, st: _State, domain: str, mech: str, arg: str | None,
                   cidr: str | None, cidr6: str | None) -> bool:
    v6 = isinstance(st.ip, ipaddress.IPv6Address)
    if mech == "all":
        return True
    if mech in ("ip4", "ip6"):
        if not arg:
            raise PermError(f"{mech} without an address")
        try:
            net = ipaddress.ip_network(f"{arg}/{cidr}" if cidr else arg, strict=False)
        except ValueError:
            raise PermError(f"bad {mech} {arg!r}") from None
        return st.ip.version == net.version and st.ip in net
    _count(st)
    target = _expand(arg, st, domain) if arg else domain
    if mech == "include":
        if not arg:
            raise PermError("include without a domain")
        if target in st.seen:
            raise PermError("include loop")
        st.seen.add(target)
        result = await _check(resolver, st, target)
        st.seen.discard(target)
        if result == "none":
            raise PermError("include of a domain without SPF")
        if result in ("temperror", "permerror"):
            raise PermError(result) if result == "permerror" else DnsTempError(target)
        return result == "pass"
    if mech == "a":
        return _in(st, _void(st, await resolver.addresses(target, v6)), cidr, cidr6)
    if mech == "mx":
        names = _void(st, await resolver.mx(target))
        if len(names) > MAX_MX:  # §4.6.4: more than 10 is a permerror, not "look at the first 10"
            raise PermError("mx with more than 10 names")
        for name in names:
            if _in(st, await resolver.addresses(name, v6), cidr, cidr6):
                return True
        return False
    if mech == "exists":
        return bool(_void(st, await resolver.addresses(target, False)))
    return False  # ptr


def _expand(spec: str, st: _State, domain: str) -> str:
    local, _, sender_domain = st.sender.rpartition("@")
    if isinstance(st.ip, ipaddress.IPv6Address):
        ip_text = ".".join(st.ip.exploded.replace(":", ""))
    else:
        ip_text = str(st.ip)
    values = {"s": st.sender, "l": local, "o": sender_domain, "d": domain, "i": ip_text, "p": "unknown",
              "h": st.helo or "unknown", "v": "ip6" if st.ip.version == 6 else "in-addr",
              "c": str(st.ip), "r": "unknown", "t": "0"}

    def sub(m: re.Match[str]) -> str:
        if m.group(5):
            return "%"
        if m.group(6):
            return " "
        if m.group(7):
            return "%20"
        value = values[m.group(1).lower()]
        parts = re.split("[" + re.escape(m.group(4) or ".") + "]", value)
        if m.group(3):
            parts.reverse()
        if m.group(2):
            n = int(m.group(2))
            if n == 0:
                raise PermError("macro with 0 labels")
            parts = parts[-n:]
        return ".".join(parts)

    out = _MACRO.sub(sub, spec)
    if "%" in out:
        raise PermError("bad macro")
    return out.lower().rstrip(".")
