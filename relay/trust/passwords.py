"""Party passwords for SMTP AUTH: scrypt (hashlib, a memory-hard slow hash), self-describing strings
`scrypt$n$r$p$salt_b64$hash_b64`, constant-time comparison. Pure functions; call verify off the loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1  # ~32 MiB and tens of ms per check
SALT_BYTES = 16


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)


def _format(salt: bytes, digest: bytes) -> str:
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def hash_password(password: str | bytes) -> str:
    pw = password.encode() if isinstance(password, str) else password
    salt = secrets.token_bytes(SALT_BYTES)
    return _format(salt, _derive(pw, salt, N, R, P))


#: Verified against when a login is unknown: written by the same code with the same N, r, p and salt
#: length as a real hash, so an unknown login costs exactly what a known one does (no timing oracle).
DUMMY = _format(bytes(SALT_BYTES), bytes(32))


def parameters(stored: str) -> tuple[str, int, int, int, int]:
    """(scheme, n, r, p, salt length) of a stored hash."""
    scheme, n, r, p, salt, _ = stored.split("$")
    return scheme, int(n), int(r), int(p), len(base64.b64decode(salt))


def verify(password: bytes, stored: str | None) -> bool:
    """True when `password` matches; an unknown login costs a hash too (no timing oracle)."""
    try:
        scheme, n, r, p, salt, digest = (stored or DUMMY).split("$")
        if scheme != "scrypt":
            return False
        got = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return stored is not None and hmac.compare_digest(got, base64.b64decode(digest))
