"""Links: URLs with a scheme, bare domains with a real TLD, IP hosts, shorteners, IDN look-alikes.

Reads [links] and [allowlist] of policy.toml. Works on a `View` (normalized text with
obfuscations such as hxxp, [.], " dot " undone), so `example[.]com` and `ｅｘａｍｐｌｅ。ｃｏｍ`
are found; the TLD list is the IANA file bundled with urlextract, read from disk, never
fetched. Rule ids: links.url, links.domain, links.obfuscated, links.shortener,
links.redirector, links.ip, links.idn_homoglyph, links.mailto, links.data_uri,
links.script_uri, links.protocol_relative (and links.html_*, links.qr_code from callers).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from urllib.parse import unquote, urlsplit

from relay.message.contacts import is_own
from relay.message.normalize import View, fold
from relay.policy.settings import Policy


@dataclass(slots=True)
class Hit:
    """A match in a View, before it becomes a Finding (offsets are View offsets)."""

    category: str
    rule: str
    start: int
    end: int
    detail: str
    weight: float = 1.0


@lru_cache(maxsize=1)
def tlds() -> frozenset[str]:
    """IANA root zone TLDs (ASCII and Unicode forms), from urlextract's bundled copy."""
    names: set[str] = set()
    try:
        data = resources.files("urlextract").joinpath("data/tlds-alpha-by-domain.txt").read_text("utf-8")
    except (OSError, ModuleNotFoundError):  # pragma: no cover - packaging problem
        data = "COM\nNET\nORG\nJP\nCN\nKR\n"
    for line in data.splitlines():
        line = line.strip().lower()
        if not line or line.startswith("#"):
            continue
        names.add(line)
        if line.startswith("xn--"):
            try:
                names.add(line.encode("ascii").decode("idna"))
            except UnicodeError:
                pass
    return frozenset(names)


_SCHEME_URL = re.compile(r"(?<![a-z0-9])(?:https?|ftps?|sftp|file|wss?|feed|itms-services)\s{0,2}:\s{0,2}[/\\]{0,4}"
                         r"[^\s<>\"'`、。，「」（）【】]{1,2048}")
_APP_URL = re.compile(r"(?<![a-z0-9])(?:line|weixin|whatsapp|tg|kakaotalk|kakaoopen|skype|viber|sms|tel|intent)"
                      r":(?://)?[^\s<>\"']{2,512}")
_MAILTO = re.compile(r"mailto(?<![a-z0-9]mailto)\s{0,2}:\s{0,2}([^\s<>\"'?,;]{1,320})")
_DATA_URI = re.compile(r"data:(?<![a-z0-9]data:)[a-z]{1,20}/[a-z0-9.+-]{1,60}[;,][^\s<>\"']{0,2048}")
_SCRIPT_URI = re.compile(r"(?<![a-z0-9])(?:javascript|vbscript)\s{0,2}:\s{0,2}\S")
#: what every match of the four patterns above begins with (relay.policy.scanner looks for these
#: in its one pass; where none occurs, the patterns need not run)
COLON_URI_HEADS = (r"(?:https?|ftps?|sftp|file|wss?|feed|itms-services)\s{0,2}:",
                   r"(?:line|weixin|whatsapp|tg|kakaotalk|kakaoopen|skype|viber|sms|tel|intent):",
                   r"data:[a-z]", r"(?:javascript|vbscript)\s{0,2}:")
# Look-behinds sit after the first literal ("//", "mailto", "data:"): a pattern that starts with a
# literal is searched at C speed, one that starts with a look-behind enters the matcher at every
# character (≈ 15 µs per KB of text per pattern).
_PROTO_REL = re.compile(r"//(?<![\w:/]//)[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,8}(?![\w-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d])(?!\.\d)")
# Labels joined by dots, then a TLD-shaped label. Every repetition ends in "." so there is no
# ambiguity to backtrack over.
_DOMAIN = re.compile(r"(?<![\w@.\-/])((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,10})"
                     r"([a-z]{2,63}(?![a-z0-9-]|\.[a-z0-9])|xn--[a-z0-9-]{1,59}(?![a-z0-9-])|[^\W\d_a-z]{2,20}(?![\w-]))")
_PATH = re.compile(r"[/?#:][^\s<>\"'、。，「」（）]{0,2048}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_ASCII_LABEL = re.compile(r"^[a-z0-9-]+$")


_DOT_BEFORE_TEXT = re.compile(r"\.[^\s.]")
#: every match of the colon patterns lies within this many characters before / after its colon
_COLON_BEFORE, _COLON_AFTER = 20, 2200


def _near_colons(text: str) -> list[tuple[int, int]]:
    """Merged [start, end) windows of text around every colon: the only places where a scheme URL,
    an application URI, a data: or script URI can be (each one holds a colon within a bounded
    distance of its ends). Outside them the patterns need not run at all."""
    out: list[tuple[int, int]] = []
    i = text.find(":")
    while i >= 0:
        start, end = max(0, i - _COLON_BEFORE), min(len(text), i + 1 + _COLON_AFTER)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
        i = text.find(":", i + 1)
    return out


def _dotted_tokens(text: str) -> list[tuple[int, int]]:
    """Merged [start, end) spans of the whitespace-separated tokens that hold a dot followed by
    something other than a space or a dot: the only places a domain or IPv4 address can be (neither
    holds whitespace). Linear: each backward search stops at the previous token's end."""
    out: list[tuple[int, int]] = []
    floor = 0
    for m in _DOT_BEFORE_TEXT.finditer(text):
        p = m.start()
        if p < floor:
            continue
        start = max(floor, text.rfind(" ", floor, p) + 1, text.rfind("\n", floor, p) + 1,
                    text.rfind("\t", floor, p) + 1, text.rfind("\r", floor, p) + 1)
        ws = _WHITESPACE.search(text, p)
        end = ws.start() if ws else len(text)
        out.append((start, end))
        floor = end
    return out


_WHITESPACE = re.compile(r"[ \t\r\n]")


def _finditer(pattern: re.Pattern[str], text: str, spans: list[tuple[int, int]]) -> Iterator[re.Match[str]]:
    for start, end in spans:
        yield from pattern.finditer(text, start, end)


def _strip_trailing(url: str) -> str:
    return url.rstrip(".,;:!?)]}'\"")


def host_of(url: str) -> str:
    """Host of an absolute or scheme-less URL, folded; userinfo and port dropped."""
    u = url.strip()
    if "://" not in u[:12] and not u.startswith("//"):
        u = "//" + u
    try:
        parts = urlsplit(u.replace("\\", "/"))
        host = parts.hostname or ""
    except ValueError:
        host = re.sub(r"^[a-z][a-z0-9+.-]*:/*", "", u).split("/")[0].rsplit("@", 1)[-1].split(":")[0]
    return fold(unquote(host)).strip(".[]")


def _allowed(host: str, policy: Policy) -> bool:
    if not host:
        return False
    labels = host.split(".")
    return any(".".join(labels[i:]) in policy.allow_domains for i in range(len(labels)))


def _in_set(host: str, names: frozenset[str]) -> bool:
    labels = host.split(".")
    return any(".".join(labels[i:]) in names for i in range(len(labels) - 1))


def classify_host(host: str, policy: Policy, *, has_userinfo: bool = False) -> tuple[str, str] | None:
    """(rule, detail) for a link to `host`, or None when the host is allowlisted."""
    if _in_set(host, policy.shorteners) or host in policy.shorteners:
        return ("links.shortener", f"URL shortener {host}")
    if _in_set(host, policy.redirectors) or host in policy.redirectors:
        return ("links.redirector", f"redirector {host}")
    if _allowed(host, policy) and not has_userinfo:
        return None
    if _is_numeric_host(host):
        return ("links.ip", "numeric or IP host")
    if not host.isascii() or "xn--" in host:
        return ("links.idn_homoglyph", f"internationalized host {host}")
    return ("links.domain", f"host {host}")


def _is_numeric_host(host: str) -> bool:
    h = host.strip("[]")
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        pass
    return bool(re.fullmatch(r"(?:0x[0-9a-f]+|\d+)(?:\.(?:0x[0-9a-f]+|\d+)){0,3}", h))


_URL_NOISE = re.compile(r"[\t\n\r]")


def classify_url(url: str, policy: Policy, own_addresses: frozenset[str] = frozenset()) -> tuple[str, str] | None:
    """(rule, detail) for a URL found in markup or an attachment; None if it is harmless or allowed."""
    # as the WHATWG URL parser reads it: C0 controls and spaces trimmed, every tab/LF/CR removed
    u = fold(_URL_NOISE.sub("", url.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f"
                                          "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")))
    if not u or u.startswith(("#", "cid:", "mid:")):
        return None
    if u.startswith("mailto:"):
        addr = unquote(u[7:].split("?")[0]).strip()
        if not addr or is_own(addr, own_addresses) or addr in policy.allow_emails or _allowed(addr.rsplit("@", 1)[-1], policy):
            return None
        return ("links.mailto", "mailto to an outside address")
    if u.startswith(("javascript:", "vbscript:")):
        return ("links.script_uri", "script URI")
    if u.startswith("data:"):
        return None if u.startswith("data:image/") else ("links.data_uri", "data URI")
    if u.startswith(("tel:", "sms:")):
        return ("links.app_uri", "telephone URI")
    m = re.match(r"^([a-z][a-z0-9+.-]{0,20}):", u)
    if m and m.group(1) not in ("http", "https", "ftp", "ftps"):
        return ("links.app_uri", f"{m.group(1)} URI")
    if not m and not u.startswith("//"):
        # relative reference: only a link if it looks like a bare domain
        first = u.split("/")[0]
        if "." not in first or first.rsplit(".", 1)[-1] not in tlds():
            return None
    userinfo = "@" in u.split("//", 1)[-1].split("/")[0]
    host = host_of(u)
    if not host:
        return ("links.url", "URL without a readable host")
    return classify_host(host, policy, has_userinfo=userinfo)


def find_links(view: View, policy: Policy, own_addresses: frozenset[str] = frozenset(),
               colon_uris: bool = True) -> list[Hit]:
    """Every link in the view (offsets are view offsets; colon_uris=False: the caller found none
    of COLON_URI_HEADS in the view's text, so the scheme, application, data and script URI
    patterns are not run)."""
    text = view.text
    hits: list[Hit] = []
    taken: list[tuple[int, int]] = []
    s = policy.settings.links

    def add(rule: str, start: int, end: int, detail: str) -> None:
        if not policy.enabled("links", rule):
            return
        if rule in ("links.domain", "links.url") and view.obfuscated(start, end):
            rule = "links.obfuscated"
        hits.append(Hit("links", rule, start, end, detail))
        taken.append((start, end))

    def free(start: int, end: int) -> bool:
        return not any(a < end and start < b for a, b in taken)

    if "." not in text and ":" not in text and "/" not in text:
        return hits
    colons = _near_colons(text) if colon_uris else []
    for m in _finditer(_SCHEME_URL, text, colons):
        url = _strip_trailing(m.group(0))
        verdict = classify_url(re.sub(r"\s", "", url), policy, own_addresses)
        if verdict is None:
            taken.append((m.start(), m.start() + len(url)))
            continue
        rule, detail = verdict
        add("links.url" if rule == "links.domain" else rule, m.start(), m.start() + len(url), detail)
    for pattern, rule, detail in ((_APP_URL, "links.app_uri", "application URI"),
                                  (_DATA_URI, "links.data_uri", "data URI"),
                                  (_SCRIPT_URI, "links.script_uri", "script URI")):
        if colons:
            for m in _finditer(pattern, text, colons):
                if free(m.start(), m.end()):
                    add(rule, m.start(), m.end(), detail)
    if "mailto" in text:
        for m in _MAILTO.finditer(text):
            if free(m.start(), m.end()) and classify_url("mailto:" + m.group(1), policy, own_addresses):
                add("links.mailto", m.start(), m.end(), "mailto to an outside address")
    if "//" in text:
        for m in _PROTO_REL.finditer(text):
            if free(m.start(), m.end()):
                verdict = classify_host(m.group(0)[2:], policy)
                if verdict:
                    add("links.protocol_relative", m.start(), m.end(), verdict[1])
    dotted = _dotted_tokens(text)
    for m in _finditer(_IPV4, text, dotted):
        if free(m.start(), m.end()) and all(int(o) <= 255 for o in m.group(0).split(".")):
            add("links.ip", m.start(), m.end(), "IP address")
    if "." not in text:
        return hits
    known = tlds()
    file_tlds = set(s.file_extension_tlds)
    common = set(s.common_tlds)
    for m in _finditer(_DOMAIN, text, dotted):
        labels_part, tld = m.group(1), m.group(2)
        if tld not in known:
            continue
        labels = labels_part[:-1].split(".")
        start = m.start()
        if tld.isascii():
            # Sentence text glued to the domain ("詳細はexample.com"): drop leading CJK labels or prefix.
            while labels and _CJK.search(labels[0]):
                tail = re.search(r"[a-z0-9\u0400-\u04ff\u0370-\u03ff-]+$", labels[0])
                if tail and tail.group(0) and tail.start() > 0:
                    start += tail.start()
                    labels[0] = tail.group(0)
                    break
                start += len(labels[0]) + 1
                labels = labels[1:]
            if not labels or not labels[0] or labels[0].startswith("-"):
                continue
        else:
            # IDN TLD: refuse CJK sentence punctuation read as a dot (一家。公司…)
            dot_at = m.end(1) - 1
            ns, _ = view.to_norm(dot_at, dot_at + 1)
            src_dot = view.norm.source_text_at(ns) or "."
            if src_dot in ("\u3002", "\uff61") or len(labels[-1]) > 20:
                continue
        host = ".".join([*labels, tld])
        end = m.end()
        pm = _PATH.match(text, end)
        path = _strip_trailing(pm.group(0)) if pm else ""
        if not free(start, end):
            continue
        explicit = host.startswith("www.") or bool(path) or view.obfuscated(start, end)
        if not explicit:
            if tld in file_tlds:
                continue  # "photo.zip", "clip.mov" read as file names
            if tld not in common and view.norm.source_upper_at(view.to_norm(m.end(1), m.end(1) + 1)[0]):
                continue  # "Thanks.Best regards": a missing space after a full stop
            if all(lbl.isdigit() for lbl in labels):
                continue
        verdict = classify_host(host, policy)
        if verdict is None:
            taken.append((start, end + len(path)))
            continue
        rule, detail = verdict
        add(rule, start, end + len(path), detail)
    return hits
