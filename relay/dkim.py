"""DKIM signing of outbound mail: rsa-sha256 always, ed25519-sha256 too when a key is given (RFC 6376, 8463).

Reads dkim.selector, dkim.private_key (RSA PEM) and dkim.ed25519_key (PEM, raw or base64 seed); relay.domain is d=.
Errors: DKIMKeyError for a bad/unusable key or setting (at start-up), DKIMMessageError for a message that cannot be signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from relay.scan import is_crlf, known_clean, remember_clean

if TYPE_CHECKING:
    from relay.config import Settings

__all__ = [
    "DEFAULT_HEADERS",
    "DKIMError",
    "DKIMKeyError",
    "DKIMMessageError",
    "Signer",
    "canonicalize_body_relaxed",
    "canonicalize_header_relaxed",
    "generate_ed25519_key",
    "generate_rsa_key",
    "load_signer",
    "new_rsa_pem",
    "public_txt_from_private",
    "txt_record",
]

#: Header fields signed when present (RFC 6376 §5.4.1 recommendations plus list and threading fields).
DEFAULT_HEADERS: tuple[str, ...] = (
    "from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding", "reply-to",
    "list-unsubscribe", "list-unsubscribe-post", "auto-submitted",
)
#: Fields listed once more than they occur, so that adding another instance breaks the signature
#: (RFC 6376 §8.15: a second From would otherwise be shown by some clients while the first is verified).
DEFAULT_OVERSIGN: tuple[str, ...] = ("from",)

MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers must not accept less
MAX_LINE = 78  # RFC 5322 §2.1.1 "SHOULD" line length for the DKIM-Signature header we write

_CRLF = b"\r\n"
_ANY_EOL = re.compile(rb"\r\n|\r|\n")
_WSP_RUN = re.compile(rb"[ \t]+")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*)(?:\.[A-Za-z0-9_-]+)*")
_DOMAIN = re.compile(r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\.?")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'


class DKIMError(Exception):
    """Base class of this module's errors."""


class DKIMKeyError(DKIMError):
    """A private key or a signer setting cannot be used (raised at construction, i.e. at start-up)."""


class DKIMMessageError(DKIMError):
    """The message cannot be signed as it stands (no or several From fields, no header section)."""


# --------------------------------------------------------------------------- canonicalization


def canonicalize_header_relaxed(name: bytes, value: bytes) -> bytes:
    """RFC 6376 §3.4.2: lower-case name, unfold, runs of WSP → one SP, no WSP around the colon or at the end.

    `value` is everything after the colon (folding CRLFs included, final CRLF excluded).
    The result has no trailing CRLF.
    """
    value = _WSP_RUN.sub(b" ", value.replace(_CRLF, b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value


def canonicalize_body_relaxed(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 on a CRLF body: runs of WSP → one SP, no WSP at line ends, no empty lines at the end.

    A non-empty body always ends with exactly one CRLF (one is added to an unterminated last line);
    an empty body, or one made only of empty lines, canonicalizes to the empty string (so bh= is the SHA-256 of nothing).
    """
    return b"".join(_relaxed_body_pieces(body))


def body_hash_relaxed(message: bytes, start: int = 0) -> bytes:
    """SHA-256 of the relaxed canonical form of message[start:], without building that form."""
    digest = hashlib.sha256()
    for piece in _relaxed_body_pieces(message, start):
        digest.update(piece)
    return digest.digest()


_CHUNK = 256 * 1024


def _relaxed_body_pieces(body: bytes, start: int = 0) -> Iterator[bytes | memoryview]:
    """The relaxed canonical body of body[start:], in pieces that join to it.

    Empty lines and WSP at the very end go first (rstrip); what is left is cut into chunks
    that end at a CRLF, so that no WSP run and no line end is split. A chunk without any
    SP or HTAB (all of a base64 attachment) is already canonical and is passed on as a view;
    the others get the WSP rules with bytes.replace loops (~30x faster than re.sub).
    """
    end = _content_end(body, start)
    if end <= start:
        return
    view = memoryview(body)
    pos = start
    while pos < end:
        cut = min(end, pos + _CHUNK)
        if cut < end:
            nl = body.find(_CRLF, cut, end)
            cut = end if nl < 0 else nl + 2
        if body.find(b" ", pos, cut) < 0 and body.find(b"\t", pos, cut) < 0:
            yield view[pos:cut]
        else:
            yield _relaxed_wsp(body[pos:cut])
        pos = cut
    yield _CRLF


def _content_end(body: bytes, start: int) -> int:
    """Where body[start:] ends once trailing SP, HTAB, CR and LF are dropped (looked at from the end, in blocks)."""
    end = len(body)
    while end > start:
        block = body[max(start, end - 4096) : end]
        kept = len(block.rstrip(b" \t\r\n"))
        if kept:
            return end - len(block) + kept
        end -= len(block)
    return start


def _relaxed_wsp(text: bytes) -> bytes:
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    while b"  " in text:
        text = text.replace(b"  ", b" ")
    return text.replace(b" \r\n", _CRLF)


# --------------------------------------------------------------------------- message parsing


@dataclass(frozen=True, slots=True)
class _Field:
    name: bytes  # lower-case, WSP around it removed
    raw_name: bytes
    value: bytes  # after the colon, folding kept, no final CRLF


def _wire_form(message: bytes) -> bytes:
    """CRLF everywhere and a final CRLF: what an SMTP client puts on the wire (RFC 5321 §2.3.8, §4.1.1.4).

    Signing the wire form keeps the signature valid for verifiers that see the message after
    transport normalised it (and OpenDKIM disagrees with other verifiers on an unterminated last line).
    """
    if not is_crlf(message):  # two skipping searches: no copy when the message is clean
        message = _ANY_EOL.sub(_CRLF, message)
    if message and not message.endswith(_CRLF):
        message += _CRLF
    return message


def _split(message: bytes) -> tuple[list[_Field], int]:
    """Header fields of a wire-form message and where its body starts (the body is not copied).
    Lines that are not fields are skipped."""
    if message.startswith(_CRLF):
        return [], 2
    end = message.find(b"\r\n\r\n")
    if end < 0:
        head, body_start = message, len(message)
    else:
        head, body_start = message[: end + 2], end + 4
    fields: list[_Field] = []
    lines = head.split(_CRLF)
    if lines and lines[-1] == b"":
        lines.pop()
    current: list[bytes] = []

    def flush() -> None:
        if not current:
            return
        text = _CRLF.join(current)
        colon = text.find(b":")
        if colon > 0:
            raw_name = text[:colon]
            name = raw_name.strip(b" \t").lower()
            if name and b" " not in name and b"\t" not in name:
                fields.append(_Field(name, raw_name, text[colon + 1 :]))
        current.clear()

    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if current:  # a continuation line before any field (malformed) is dropped from signing
                current.append(line)
            continue
        flush()
        current.append(line)
    flush()
    return fields, body_start


# --------------------------------------------------------------------------- keys


def _load_rsa(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise DKIMKeyError(f"RSA private key: cannot load PEM: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DKIMKeyError(f"RSA private key: the PEM holds a {type(key).__name__}, not an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise DKIMKeyError(f"RSA private key: {key.key_size} bits; at least {MIN_RSA_BITS} are needed (RFC 8301)")
    return key


def _load_ed25519(data: bytes | ed25519.Ed25519PrivateKey) -> ed25519.Ed25519PrivateKey:
    """Accept a PKCS#8 PEM, a raw 32-byte seed, or the base64 of the seed (dkimpy `dknewkey`, rspamd)."""
    if isinstance(data, ed25519.Ed25519PrivateKey):
        return data
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise DKIMKeyError(f"ed25519 private key: cannot load PEM: {e}") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise DKIMKeyError(f"ed25519 private key: the PEM holds a {type(key).__name__}, not an ed25519 key")
        return key
    seed = data
    if len(seed) != 32:
        try:
            seed = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            seed = b""
    if len(seed) != 32:
        raise DKIMKeyError("ed25519 private key: expected a PEM, a 32-byte seed or its base64")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def _rsa_public_value(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def _ed25519_public_value(key: ed25519.Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")  # RFC 8463 §4.2: raw key


def public_txt_from_private(pem: bytes) -> str:
    """The DNS TXT value (`v=DKIM1; k=…; p=…`) for an RSA or ed25519 private key (PEM; ed25519 also raw/base64 seed)."""
    if b"-----BEGIN" in pem:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise DKIMKeyError(f"cannot load private key PEM: {e}") from None
        if isinstance(key, rsa.RSAPrivateKey):
            return _rsa_public_value(key)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return _ed25519_public_value(key)
        raise DKIMKeyError(f"unsupported key type for DKIM: {type(key).__name__}")
    return _ed25519_public_value(_load_ed25519(pem))


def _write_private(path: Path, data: bytes, overwrite: bool) -> None:
    """Write a secret file with mode 0600, atomically; refuse to replace an existing key unless asked."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True)
        os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
    tmp = parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError instead of clobbering a key in use
    finally:
        tmp.unlink(missing_ok=True)


def generate_rsa_key(path: Path, bits: int = 2048, *, overwrite: bool = False) -> str:
    """Create an RSA key (PKCS#1 PEM, mode 0600; parent made 0700 if missing) and return its TXT value."""
    if bits < MIN_RSA_BITS:
        raise DKIMKeyError(f"RSA key size {bits}: at least {MIN_RSA_BITS} bits are needed (RFC 8301)")
    pem = new_rsa_pem(bits)
    _write_private(Path(path), pem, overwrite)
    return public_txt_from_private(pem)


def new_rsa_pem(bits: int = 2048) -> bytes:
    """A new RSA private key (PKCS#1 PEM), in memory only (`relay keys install dkim` seals it for the store)."""
    if bits < MIN_RSA_BITS:
        raise DKIMKeyError(f"RSA key size {bits}: at least {MIN_RSA_BITS} bits are needed (RFC 8301)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def generate_ed25519_key(path: Path, *, overwrite: bool = False) -> str:
    """Create an ed25519 key (PKCS#8 PEM, mode 0600; parent made 0700 if missing) and return its TXT value."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_private(Path(path), pem, overwrite)
    return _ed25519_public_value(key)


def txt_record(selector: str, domain: str, value: str, ttl: int | None = None) -> str:
    """A zone-file line publishing `value`, split into quoted character-strings of at most 255 bytes (RFC 1035 §3.3)."""
    raw = value.encode("ascii")
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    quoted = " ".join('"' + c.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    owner = f"{selector}._domainkey.{domain.rstrip('.')}."
    return f"{owner}{'' if ttl is None else f' {ttl}'} IN TXT {quoted}"


# --------------------------------------------------------------------------- signing


def _fold(tags: Iterable[tuple[str, str]], signature_b64: str) -> bytes:
    """Lay out `DKIM-Signature: tag=value; …; b=…` in lines of at most MAX_LINE characters.

    FWS is put only where RFC 6376 §3.5 allows it: between tags, after the colons of h=,
    and inside the base64 of b=/bh= (verifiers delete FWS there). b= is always last, so the
    text with an empty b= (what was hashed) is a prefix of the text written.
    """
    lines: list[str] = []
    line = "DKIM-Signature:"

    def put(token: str, sep: str = " ") -> None:
        nonlocal line
        if len(line) + len(sep) + len(token) <= MAX_LINE:
            line += sep + token
        else:
            lines.append(line)
            line = " " + token

    for name, value in tags:
        if name == "h":
            names = value.split(":")
            put(f"h={names[0]}" + (":" if len(names) > 1 else ";"))
            for i, n in enumerate(names[1:], start=1):
                put(n + (":" if i < len(names) - 1 else ";"), sep="")
                # a fresh continuation line starts with " " already; otherwise glue to the colon
        else:
            put(f"{name}={value};")
    put("b=")
    rest = signature_b64
    while rest:
        room = MAX_LINE - len(line)
        if room <= 0:
            lines.append(line)
            line = " "
            continue
        line += rest[:room]
        rest = rest[room:]
    lines.append(line)
    return "\r\n".join(lines).encode("ascii") + _CRLF


class Signer:
    """Signs messages for one domain. Immutable after construction; `sign` may run in several threads at once.

    `ed25519_key` may be an Ed25519PrivateKey, a PKCS#8 PEM, a raw 32-byte seed, or the base64 of the seed.
    Its selector defaults to `<selector>-ed`.
    """

    __slots__ = ("_ed_key", "_ed_selector", "_headers", "_oversign", "_rsa_key", "domain", "selector")

    def __init__(
        self,
        domain: str,
        selector: str,
        rsa_key_pem: bytes,
        ed25519_key: bytes | ed25519.Ed25519PrivateKey | None = None,
        *,
        ed25519_selector: str | None = None,
        headers: Sequence[str] | None = None,
        oversign: Sequence[str] = DEFAULT_OVERSIGN,
    ) -> None:
        if not _DOMAIN.fullmatch(domain):
            raise DKIMKeyError(f"not a signing domain: {domain!r}")
        ed_selector = ed25519_selector or f"{selector}-ed"
        for s in (selector, ed_selector):
            if not _SELECTOR.fullmatch(s):
                raise DKIMKeyError(f"not a DKIM selector: {s!r}")
        names = tuple(dict.fromkeys(h.strip().lower() for h in (headers or DEFAULT_HEADERS)))
        for n in (*names, *oversign):
            if not _FIELD_NAME.fullmatch(n):
                raise DKIMKeyError(f"not a header field name: {n!r}")
        if "from" not in names:
            raise DKIMKeyError("the signed header list must contain From (RFC 6376 §5.4)")
        if "dkim-signature" in names:
            raise DKIMKeyError("DKIM-Signature cannot be in the signed header list")
        self.domain = domain.rstrip(".").lower()
        self.selector = selector
        self._ed_selector = ed_selector
        self._headers = names
        self._oversign = frozenset(o.lower() for o in oversign)
        self._rsa_key = _load_rsa(rsa_key_pem)
        self._ed_key = None if ed25519_key is None else _load_ed25519(ed25519_key)

    @property
    def rsa_txt(self) -> str:
        """The TXT value to publish at `<selector>._domainkey.<domain>`."""
        return _rsa_public_value(self._rsa_key)

    @property
    def ed25519_txt(self) -> str | None:
        """The TXT value to publish at `<ed25519 selector>._domainkey.<domain>`, if an ed25519 key is set."""
        return None if self._ed_key is None else _ed25519_public_value(self._ed_key)

    @property
    def ed25519_selector(self) -> str | None:
        return None if self._ed_key is None else self._ed_selector

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """Return the message in wire form (CRLF line ends, final CRLF) with DKIM-Signature field(s) on top.

        The rsa-sha256 signature comes first, then ed25519-sha256 when configured. Raises DKIMMessageError
        when the message does not have exactly one From field.
        """
        message = _wire_form(message)
        fields, body_start = _split(message)
        froms = sum(1 for f in fields if f.name == b"from")
        if froms != 1:
            raise DKIMMessageError(f"a signed message needs exactly one From field, this one has {froms}")
        t = str(int(time.time()) if timestamp is None else int(timestamp))
        bh = base64.b64encode(body_hash_relaxed(message, body_start)).decode("ascii")

        # RFC 6376 §5.4.2: several instances are signed bottom-up, one h= entry each.
        h_names: list[str] = []
        signed = bytearray()
        for name in self._headers:
            bname = name.encode("ascii")
            instances = [f for f in fields if f.name == bname]
            for f in reversed(instances):
                h_names.append(name)
                signed += canonicalize_header_relaxed(f.name, f.value) + _CRLF
            if name in self._oversign:
                h_names.append(name)  # hashes as nothing (§5.4.2): a later-added instance breaks the signature
        h = ":".join(h_names)

        out = bytearray()
        for algo, selector in (("rsa-sha256", self.selector), ("ed25519-sha256", self._ed_selector)):
            if algo.startswith("ed") and self._ed_key is None:
                continue
            tags = (("v", "1"), ("a", algo), ("c", "relaxed/relaxed"), ("d", self.domain),
                    ("s", selector), ("t", t), ("h", h), ("bh", bh))
            unsigned = _fold(tags, "")
            sig_name, _, sig_value = unsigned[:-2].partition(b":")
            data = bytes(signed) + canonicalize_header_relaxed(sig_name, sig_value)  # §3.7: no CRLF after it
            if self._ed_key is not None and algo.startswith("ed"):
                # RFC 8463 §3: PureEdDSA over the SHA-256 of the data, not over the data itself.
                sig = self._ed_key.sign(hashlib.sha256(data).digest())
            else:
                sig = self._rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            out += _fold(tags, base64.b64encode(sig).decode("ascii"))
        header = bytes(out)
        signed_message = header + message
        if known_clean(message) and is_crlf(header):  # our folded lines: the whole is clean too
            remember_clean(signed_message)
        return signed_message


def load_signer(settings: Settings) -> Signer:
    """A Signer for relay.domain from dkim.private_key (or <state_dir>/dkim/<selector>.pem) and dkim.ed25519_key."""
    path = settings.dkim_key_path
    try:
        rsa_pem = path.read_bytes()
        ed_key = settings.dkim.ed25519_key.read_bytes() if settings.dkim.ed25519_key else None
    except OSError as e:
        raise DKIMKeyError(f"cannot read DKIM key {e.filename}: {e.strerror}") from None
    return Signer(settings.relay.domain, settings.dkim.selector, rsa_pem, ed_key)
