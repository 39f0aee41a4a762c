"""Where the store lives: store.url → SQLite at a path, or a PostgreSQL server.

Reads config: store.url, store.password_file (through parse()).

  (absent)                                   SQLite at <relay.state_dir>/relay.db
  sqlite:///var/lib/relay/relay.db           SQLite at that path (sqlite:relative/path also works)
  postgresql://user[:password]@host[:port]/dbname[?sslmode=…]   (postgres:// too)

A PostgreSQL password comes from the URL, else store.password_file (its first line), else the
driver's own PGPASSWORD / ~/.pgpass. No error, log line or repr here ever contains the password:
errors name the part that is wrong, and PgTarget shows the URL without it (safe_url).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

#: Query parameters passed on to the driver (asyncpg understands these in a DSN).
PG_PARAMS = frozenset({"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword",
                       "application_name", "target_session_attrs", "host", "port", "krbsrvname", "gsslib"})
_SECRET_PARAMS = frozenset({"sslpassword", "password"})


class StoreUrlError(ValueError):
    """store.url (or store.password_file) is not usable; the text never holds the password."""


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    path: Path
    backend: str = "sqlite"

    def safe_url(self) -> str:
        return f"sqlite:///{self.path}" if self.path.is_absolute() else f"sqlite:{self.path}"


@dataclass(frozen=True, slots=True)
class PgTarget:
    host: str
    port: int
    user: str | None
    dbname: str
    #: None: left to the driver (PGPASSWORD, ~/.pgpass)
    password: str | None = field(default=None, repr=False)
    params: tuple[tuple[str, str], ...] = ()
    backend: str = "postgresql"

    def dsn(self) -> str:
        """The URL for the driver, without the password (pass `password` beside it)."""
        user = quote(self.user, safe="") + "@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in self.params)
        return f"postgresql://{user}{host}:{self.port}/{quote(self.dbname, safe='')}" + (f"?{query}" if query else "")

    def safe_url(self) -> str:
        """What logs and `relay db check` show: the DSN, its secret parameters masked."""
        masked = tuple((k, "***" if k in _SECRET_PARAMS else v) for k, v in self.params)
        return PgTarget(self.host, self.port, self.user, self.dbname, None, masked).dsn()

    def __str__(self) -> str:
        return self.safe_url()


StoreTarget = SqliteTarget | PgTarget


def parse(url: str | None, state_dir: Path, password_file: Path | None = None) -> StoreTarget:
    """store.url → where the store is. StoreUrlError says what is wrong, never the password."""
    if url is None or not url.strip():
        if password_file is not None:
            raise StoreUrlError("store.password_file is set but store.url is not a postgresql:// URL")
        return SqliteTarget(state_dir / "relay.db")
    url = url.strip()
    scheme, sep, _ = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("sqlite", "postgresql", "postgres"):
        shown = scheme if sep and scheme.isascii() and scheme.replace("+", "").isalnum() else "(none)"
        raise StoreUrlError(f"store.url: unsupported scheme {shown!r}; expected sqlite:///PATH or"
                            " postgresql://user@host:port/dbname")
    if scheme == "sqlite":
        if password_file is not None:
            raise StoreUrlError("store.password_file is only for a postgresql:// store.url")
        return _sqlite(url)
    return _postgres(url, password_file)


def _sqlite(url: str) -> SqliteTarget:
    rest = url.split(":", 1)[1]
    if rest.startswith("//"):
        # sqlite:///abs/path (empty authority); sqlite://host/… names a host, which means nothing here
        authority, slash, path = rest[2:].partition("/")
        if authority:
            raise StoreUrlError("store.url: a sqlite URL has no host: write sqlite:///absolute/path")
        path = slash + path
    else:
        path = rest
    if "?" in path or "#" in path:
        raise StoreUrlError("store.url: a sqlite URL takes no query or fragment")
    path = unquote(path)
    if not path or path.endswith("/"):
        raise StoreUrlError("store.url: sqlite URL without a file name (sqlite:///var/lib/relay/relay.db)")
    return SqliteTarget(Path(path))


def _postgres(url: str, password_file: Path | None) -> PgTarget:
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
        username, password, hostname = parts.username, parts.password, parts.hostname
    except ValueError:
        raise StoreUrlError("store.url: the port must be a number from 1 to 65535") from None
    if parts.fragment:
        raise StoreUrlError("store.url: a postgresql URL takes no #fragment")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise StoreUrlError("store.url: name the database: postgresql://user@host:5432/dbname")
    params: list[tuple[str, str]] = []
    host = unquote(hostname) if hostname else ""
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise StoreUrlError("store.url: the query is not key=value&… pairs") from None
    for key, value in query:
        if key == "password":
            raise StoreUrlError("store.url: put the password in store.password_file (or user:password@),"
                                " not in the query")
        if key not in PG_PARAMS:
            raise StoreUrlError(f"store.url: unknown parameter {key!r} (known: {', '.join(sorted(PG_PARAMS))})")
        if key == "host":
            host = value
        elif key == "port":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise StoreUrlError("store.url: the port must be a number from 1 to 65535")
            port = int(value)
        else:
            params.append((key, value))
    if not host:
        raise StoreUrlError("store.url: name the server: postgresql://user@host:5432/dbname"
                            " (or ?host=/run/postgresql for a Unix socket)")
    if port is not None and not 0 < port < 65536:
        raise StoreUrlError("store.url: the port must be a number from 1 to 65535")
    secret = unquote(password) if password is not None else None
    if password_file is not None:
        if secret is not None:
            raise StoreUrlError("store.url has a password and store.password_file is set: use one")
        secret = read_password_file(password_file)
    return PgTarget(host=host, port=port or 5432, user=unquote(username) if username else None, dbname=dbname,
                    password=secret, params=tuple(params))


def read_password_file(path: Path) -> str:
    """The first line of `path`, without its line end. Errors name the file, never its content."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise StoreUrlError(f"store.password_file: {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StoreUrlError(f"store.password_file: {path}: cannot read: {reason}") from None
    first = text.splitlines()[0] if text else ""
    if not first:
        raise StoreUrlError(f"store.password_file: {path}: empty")
    return first
