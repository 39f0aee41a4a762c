"""Unsubscribe tokens: which buyer opts out of which seller, unforgeable without the relay's secret.

Reads: relay.state_dir (the secret lives in <state_dir>/unsubscribe.key, created 0600 before the workers
start; one shorter than 32 bytes stops the relay with a configuration error; with
rules.unsubscribe_secret_source = "store" it comes from the store instead, relay/keys.py),
relay.domain and relay.http_base_url (for the addresses and URLs built here).
A token is "<thread id>.<mac>", mac = first 100 bits of HMAC-SHA256(secret, thread, buyer, seller)
in lower-case base32, so it fits in a local part ("unsubscribe+<token>@domain") and in a URL path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from relay.config import ConfigError

PREFIX = "unsubscribe+"
SECRET_FILE = "unsubscribe.key"
_TOKEN = re.compile(r"^([1-9][0-9]{0,11})\.([a-z2-7]{20})$")


#: An HMAC key shorter than this is refused (an empty one would make every token forgeable).
MIN_SECRET_BYTES = 32


def ensure_secret(state_dir: Path) -> bytes:
    """Create the unsubscribe secret if missing, atomically (never a partial or empty file), and
    return it. Called once before the workers start (relay/supervisor.py); raises ConfigError on a
    key shorter than MIN_SECRET_BYTES."""
    path = state_dir / SECRET_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = state_dir / f".{SECRET_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            os.write(fd, secrets.token_bytes(MIN_SECRET_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # like rename, atomic, but never replaces a key another process made
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # the name survives a crash, not only the contents
        finally:
            os.close(dir_fd)
    return load_secret(state_dir)


def load_secret(state_dir: Path) -> bytes:
    """The relay's unsubscribe secret (created by ensure_secret when missing)."""
    path = state_dir / SECRET_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ensure_secret(state_dir)
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path}: unsubscribe key is {len(data)} bytes, at least {MIN_SECRET_BYTES} are needed "
                          "(remove the file to have a new one made; links already sent stop working)")
    return data


def _mac(secret: bytes, thread_id: int, buyer_id: int, seller_id: int) -> str:
    msg = f"unsubscribe\0{thread_id}\0{buyer_id}\0{seller_id}".encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:20].lower()


def make_token(secret: bytes, thread_id: int, buyer_id: int, seller_id: int) -> str:
    return f"{thread_id}.{_mac(secret, thread_id, buyer_id, seller_id)}"


def parse_token(token: str) -> int | None:
    """The thread id a well-formed token names (not yet proof of anything), or None."""
    m = _TOKEN.match(token.strip().lower())
    return int(m.group(1)) if m else None


def token_valid(secret: bytes, token: str, thread_id: int, buyer_id: int, seller_id: int) -> bool:
    """True when `token` was made by this relay for exactly this thread, buyer and seller."""
    m = _TOKEN.match(token.strip().lower())
    if not m or int(m.group(1)) != thread_id:
        return False
    return hmac.compare_digest(m.group(2), _mac(secret, thread_id, buyer_id, seller_id))


def token_of_local(local: str) -> str | None:
    """The token in an "unsubscribe+<token>" local part, or None for any other local part."""
    low = local.lower()
    return low[len(PREFIX):] if low.startswith(PREFIX) else None


def mailto(domain: str, token: str) -> str:
    return f"mailto:{PREFIX}{token}@{domain}?subject=unsubscribe"


def one_click_url(base_url: str, token: str) -> str:
    """RFC 8058 target: an HTTPS POST of "List-Unsubscribe=One-Click" to this URL opts the buyer out."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def list_unsubscribe_headers(domain: str, base_url: str | None, token: str) -> list[tuple[str, str]]:
    """List-Unsubscribe (RFC 2369) and, with an HTTPS base URL, List-Unsubscribe-Post (RFC 8058)."""
    targets = [f"<{mailto(domain, token)}>"]
    post: list[tuple[str, str]] = []
    if base_url and base_url.lower().startswith("https://"):
        targets.insert(0, f"<{one_click_url(base_url, token)}>")
        post = [("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    return [("List-Unsubscribe", ", ".join(targets)), *post]


def one_click_body_ok(content_type: str, body: bytes) -> bool:
    """RFC 8058 §3.1: the POST carries the key/value "List-Unsubscribe=One-Click" (urlencoded or form-data)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qs

        return parse_qs(body.decode("ascii", "replace")).get("List-Unsubscribe") == ["One-Click"]
    if ctype == "multipart/form-data":
        return re.search(rb'name="List-Unsubscribe"\r\n(?:[^\r\n]+\r\n)*\r\nOne-Click\r\n', body) is not None
    return False
