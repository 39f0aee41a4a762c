"""Configuration: one TOML file → validated, immutable settings.

Reads the file given by --config, else $RELAY_CONFIG, else config/relay.toml.
Errors name the key and the problem; the CLI exits with status 78 (EX_CONFIG).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from relay.errors import EX_CONFIG as EX_CONFIG  # re-exported: callers import them from here too
from relay.errors import ConfigError
from relay.errors import ListenError as ListenError

if TYPE_CHECKING:
    from relay.store.url import StoreTarget

DEFAULT_PATH = Path("config/relay.toml")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.I)
_SIZE_UNITS = {"b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1 << 20, "mb": 10**6, "mib": 1 << 20,
               "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, None: 1}


def parse_duration(value: Any) -> float:
    """"30d", "24h", "90s", "250ms" or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"30d\" or \"24h\"")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"expected a duration such as \"30d\" or \"24h\", got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_size(value: Any) -> int:
    """"10MiB", "10MB", "512k" or a number of bytes → bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as \"10MiB\"")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"expected a size such as \"10MiB\", got {value!r}")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_workers(value: Any) -> Any:
    """"auto" → one per CPU this process may run on, at most 8; anything else is left to validation."""
    if isinstance(value, bool):
        raise ValueError('expected a number of processes or "auto"')
    if value != "auto":
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def split_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    """"127.0.0.1:2525", "[::1]:25", "mx.example" (with a default port) → (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port_s = value.split(":")
    else:
        host, port_s = value, ""
    if not port_s:
        if default_port is None:
            raise ValueError(f"expected host:port, got {value!r}")
        return host, default_port
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"invalid port in {value!r}")
    if not host:
        raise ValueError(f"missing host in {value!r}")
    return host, int(port_s)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RelaySection(_Section):
    domain: str = "relay.localhost"
    state_dir: Path = Path("var")
    #: Public HTTPS base URL (for RFC 8058 one-click unsubscribe links); optional.
    http_base_url: str | None = None
    #: Address that sends the relay's own notices (bounces, confirmations).
    notice_from: str = "postmaster"
    #: This relay node's name among the nodes sharing one PostgreSQL store: the first part of its
    #: delivery claims (node:pid:nonce), so it must be unique per host and hold no ":".
    node: str = Field(default_factory=socket.gethostname)

    @field_validator("http_base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", v):
            raise ValueError(f"expected an http(s) URL such as \"https://mail.example\", got {v!r}")
        return v

    @field_validator("node")
    @classmethod
    def _node(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", v):
            raise ValueError(f"expected a host-like name (letters, digits, '.', '_', '-'), got {v!r}")
        return v

    @field_validator("notice_from")
    @classmethod
    def _notice_from(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*", v):
            raise ValueError(f"not the local part of an address: {v!r}")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        v = v.strip().lower().rstrip(".")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", v):
            raise ValueError(f"not a domain name: {v!r}")
        return v


class SmtpSection(_Section):
    listen: list[str] = Field(default_factory=lambda: ["127.0.0.1:2525"])
    hostname: str | None = None
    max_message_size: Size = 25 * 1024 * 1024
    max_recipients: int = Field(default=50, ge=1)
    max_connections: int = Field(default=200, ge=1)
    max_connections_per_ip: int = Field(default=20, ge=1)
    max_messages_per_ip_per_minute: int = Field(default=600, ge=1)
    max_header_bytes: Size = 256 * 1024
    max_mime_depth: int = Field(default=20, ge=1)
    max_mime_parts: int = Field(default=500, ge=1)
    command_timeout: Duration = 300.0
    data_timeout: Duration = 600.0
    max_inflight_bytes: Size = 512 * 1024 * 1024
    #: DATA beyond this is written to a spool file under <state_dir>/spool while it is received.
    spool_threshold: Size = 1024 * 1024
    #: Spooled (large) messages checked at once, and large deliveries at once; the others wait
    #: on disk (their sessions stay open, within smtp.data_timeout).
    spool_concurrency: int = Field(default=2, ge=1, le=64)
    #: Worker processes sharing the listeners (relay/smtp/shared.py), the limits and the store; 1 = no
    #: supervisor. "auto": one per CPU this process may run on, at most 8.
    workers: Annotated[int, BeforeValidator(parse_workers)] = Field(default="auto", ge=1, le=64,
                                                                   validate_default=True)
    #: Peers (addresses or CIDR networks: load balancers) allowed to send a PROXY protocol header on the
    #: trust.proxy_protocol listeners; anyone else's is refused. Being one does not make a peer the
    #: front MTA: after PROXY, only the client address in the header is checked against trust.front_mta.
    proxy_from: list[str] = Field(default_factory=list)

    @field_validator("proxy_from")
    @classmethod
    def _proxy_from(cls, v: list[str]) -> list[str]:
        import ipaddress

        return [str(ipaddress.ip_network(a.strip(), strict=False)) for a in v]

    # max_inflight_bytes and spool_concurrency bound the whole relay's memory: with several workers,
    # each process takes its share (at least one large message each).
    @property
    def worker_inflight_bytes(self) -> int:
        return self.max_inflight_bytes // self.workers

    @property
    def worker_spool_concurrency(self) -> int:
        return max(1, self.spool_concurrency // self.workers)
    #: On SIGTERM, transactions in progress get this long to finish before the session is
    #: closed with 421.
    shutdown_timeout: Duration = 30.0
    #: Header fields per message (a flood of tiny fields costs as much to parse as a big header).
    max_header_fields: int = Field(default=1000, ge=1)
    #: Longest line (without CRLF) in DATA. RFC 5322 §2.1.1 says 998; Postfix accepts any length
    #: (and folds on output). We accept up to this and refuse longer with 552 5.6.0.
    max_line_length: int = Field(default=8192, ge=998)
    #: Optional submission listeners (like port 587): STARTTLS required, then AUTH PLAIN/LOGIN
    #: with a party's password (`relay party password`), before MAIL.
    submission_listen: list[str] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one listen address is needed")
        for item in v:
            split_hostport(item)
        return v

    @field_validator("submission_listen")
    @classmethod
    def _submission(cls, v: list[str]) -> list[str]:
        for item in v:
            split_hostport(item)
        return v


class DeliverySection(_Section):
    transport: Literal["maildir", "smtp"] = "maildir"
    maildir: Path | None = None  # default: <state_dir>/outbox
    smarthost: str | None = None
    tls: Literal["required", "opportunistic", "off"] = "opportunistic"
    #: CA bundle for verifying the smarthost with tls = "required" (default: the system's).
    tls_ca_file: Path | None = None
    concurrency: int = Field(default=20, ge=1, le=1000)
    connect_timeout: Duration = 30.0
    command_timeout: Duration = 60.0
    #: first retry after retry_base, then doubling up to retry_max
    retry_base: Duration = 60.0
    retry_max: Duration = 3600.0
    lifetime: Duration = 5 * 86400.0
    #: A claimed row is leased this long, renewed every third of it while its delivery runs; a
    #: lease that runs out (a frozen or killed process) is taken back by any process's sweeper.
    lease_seconds: Duration = Field(default=300.0, ge=1.0)

    @field_validator("smarthost")
    @classmethod
    def _smarthost(cls, v: str | None) -> str | None:
        if v is not None:
            split_hostport(v, 25)
        return v

    @model_validator(mode="after")
    def _retry_order(self) -> DeliverySection:
        if self.retry_base > self.retry_max:
            raise ValueError("retry_base is longer than retry_max")
        return self


class DkimSection(_Section):
    selector: str = "relay"
    private_key: Path | None = None  # default: <state_dir>/dkim/<selector>.pem
    #: Where the RSA key is: "file" (dkim.private_key, made at first start when missing) or "store":
    #: the store's key "dkim/<selector>", shared by the nodes, encrypted under store.key_file
    #: (`relay keys install dkim`; relay/keys.py). Read at start and on reload (SIGHUP).
    source: Literal["file", "store"] = "file"
    ed25519_key: Path | None = None

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9_-]*)(\.[A-Za-z0-9_-]+)*", v):
            raise ValueError(f"not a DKIM selector: {v!r}")
        return v


class AuditSection(_Section):
    #: Message contents older than this are cleared daily (events and hashes stay); see relay/retention.py.
    retention: Duration = Field(default=365 * 86400.0, gt=0)


class LoggingSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class StoreSection(_Section):
    #: Where the store is (relay/store/url.py): absent → SQLite at <relay.state_dir>/relay.db;
    #: sqlite:///PATH → SQLite at PATH; postgresql://user@host:port/dbname → a PostgreSQL server
    #: shared by several relay nodes (issue 23). Never shown in logs or errors with its password.
    url: str | None = Field(default=None, repr=False)
    #: A file whose first line is the PostgreSQL password (instead of user:password@ in store.url;
    #: without either, the driver reads PGPASSWORD or ~/.pgpass).
    password_file: Path | None = None
    #: The key-encryption key of the keys kept in the store (dkim.source, rules.unsubscribe_secret_source
    #: = "store"): 32 random bytes, mode 0600, the same file on every node, never in the database
    #: (`relay keys init` makes it). Default: <relay.state_dir>/store.key.
    key_file: Path | None = None
    #: Largest number of units written in one transaction. There is no waiting window: a group is
    #: whatever became ready while the previous transaction was written and fsynced (relay/store/db.py),
    #: so an idle relay commits at once and a busy one in groups as large as the fsync makes them.
    group_commit_max: int = Field(default=256, ge=1)
    #: How often a thread beside the writer copies the WAL into the database file (seconds); the
    #: writer's commits never do it themselves (relay/store/checkpoint.py).
    checkpoint_interval: Duration = Field(default=0.25, gt=0)
    #: How long a write waits for a lock held by another process (`relay` commands) before
    #: the SMTP client is told 451 and retries.
    busy_timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        from relay.store import url as store_url

        try:
            store_url.parse(v, Path("."))  # the syntax only; the password file is read where it is used
        except store_url.StoreUrlError as exc:
            raise ValueError(str(exc).removeprefix("store.url: ")) from None
        return v


class PolicySection(_Section):
    """Content policy (issue: messaging policy). Fields are added by the content stage."""

    #: Default: the policy file shipped beside this package (config/policy.toml).
    path: Path = Path(__file__).resolve().parents[1] / "config" / "policy.toml"
    #: Processes that run the (CPU-bound) checks beside the event loop, started on first use. 0 = in
    #: the daemon's own process (a thread above a size): no CPU budget, and a hostile message can
    #: stall every session; only for tools and benchmarks.
    workers: int = Field(default=2, ge=0, le=64)
    #: CPU seconds the check of one message may use; beyond, its worker is replaced and the message
    #: refused with 554 5.6.0 (it would cost the same on every retry).
    max_cpu_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: A message up to this size is checked (policy and egress) on the event loop: every reader is
    #: linear, so that costs well under a few ms, and saves the two process hops (~0.4 ms each, the
    #: largest share of a small message's cost). Larger ones go to the workers and their budget.
    inline_max_bytes: Size = 16 * 1024


class RulesSection(_Section):
    """Messaging rules: opt-out, [Important], over-messaging, loops (the rules stage)."""

    #: A seller message is a reply (never unsolicited, passes an opt-out) when its In-Reply-To or
    #: References names a buyer message of the same thread received less than this long ago.
    reply_window: Duration = 14 * 86400.0
    #: Seller replies one buyer message can have; the next one is unsolicited (opt-out and limits apply).
    max_replies_per_buyer_message: int = Field(default=3, ge=1)
    #: Unsolicited seller messages allowed per order (a message is tied to an order by subject
    #: tag, reply chain, or the thread's latest order).
    max_unsolicited_per_order: int = Field(default=1, ge=0)
    #: Unsolicited seller messages allowed per thread in any 24 hours.
    max_unsolicited_per_thread_per_day: int = Field(default=2, ge=0)
    #: Subject markers of a critical message; matched after NFKC width folding and case folding.
    important_markers: list[str] = Field(default_factory=lambda: ["[Important]", "[重要]", "[중요]"])
    #: What happens to a marked message that matches no critical category.
    important_unjustified: Literal["deliver", "reject"] = "deliver"
    #: A seller with more than this many unjustified markers in the window loses the opt-out bypass.
    important_abuse_limit: int = Field(default=3, ge=0)
    important_abuse_window: Duration = 30 * 86400.0
    #: Passes through this relay (our X-Relay-Hops header) after which a message is a loop.
    loop_max_hops: int = Field(default=5, ge=1)
    #: Where the unsubscribe tokens' secret is: "file" (<state_dir>/unsubscribe.key, made at first
    #: start) or "store": the store's key "unsubscribe", shared by the nodes, encrypted under
    #: store.key_file (`relay keys install unsubscribe`). Read at start and on reload (SIGHUP).
    unsubscribe_secret_source: Literal["file", "store"] = "file"
    #: Word lists of the critical categories, per language (TOML).
    critical_words: Path = Path(__file__).resolve().parents[1] / "config" / "critical.toml"

    @field_validator("important_markers")
    @classmethod
    def _markers(cls, v: list[str]) -> list[str]:
        if not v or any(not m.strip() for m in v):
            raise ValueError("at least one non-empty marker is needed")
        return v


class DnsSection(_Section):
    """Resolver used for inbound authentication (SPF, DKIM keys, DMARC records)."""

    #: Name server addresses; empty = the system's (/etc/resolv.conf).
    nameservers: list[str] = Field(default_factory=list)
    port: int = Field(default=53, ge=1, le=65535)
    #: Time for one lookup (all retries); over it the check answers 451 4.7.0.
    timeout: Duration = 5.0
    #: Answers kept for their TTL (NXDOMAIN and empty answers too), least recently used first out;
    #: 0 = ask the name server every time.
    cache_size: int = Field(default=10_000, ge=0)

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, v: list[str]) -> list[str]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_address(item.strip())
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address") from None
        return [item.strip() for item in v]


class FrontMtaSection(_Section):
    #: Peers whose Authentication-Results (with authserv_id) and XCLIENT are trusted.
    addresses: list[str] = Field(default_factory=list)
    authserv_id: str

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        import ipaddress

        return [str(ipaddress.ip_address(a.strip())) for a in v]


class TrustSection(_Section):
    """Sender authentication and the front MTA."""

    #: "enforce": header From must have an aligned DKIM or SPF pass (550 5.7.1 otherwise);
    #: "off": skip the check (loopback development only; the embedded default config).
    authenticate: Literal["enforce", "off"] = "enforce"
    front_mta: FrontMtaSection | None = None
    #: Listeners (entries of smtp.listen) that expect a PROXY protocol header from an smtp.proxy_from peer.
    proxy_protocol: list[str] = Field(default_factory=list)


class TlsSection(_Section):
    """Inbound TLS: STARTTLS on every listener when cert_file and key_file are set (reloaded on SIGHUP)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    #: Listeners (entries of smtp.listen) where MAIL before STARTTLS gets 530 5.7.0.
    require_tls: list[str] = Field(default_factory=list)


class HttpSection(_Section):
    """Metrics and health listener (issue: running it for real)."""

    #: host:port of /metrics and /healthz; loopback by default (the counters are not for the public).
    listen: str = "127.0.0.1:9325"
    enabled: bool = True
    #: /healthz fails when a queued row has been due this long without being picked up.
    stall_after: Duration = 900.0
    #: /healthz fails when the state directory's file system has less room than this.
    min_free_disk: Size = 64 * 1024 * 1024

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_hostport(v)
        return v


class Settings(_Section):
    # No validation error may echo an input: store.url can hold a password (errors are reported
    # by key and message only, _format_errors).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    relay: RelaySection = Field(default_factory=RelaySection)
    smtp: SmtpSection = Field(default_factory=SmtpSection)
    delivery: DeliverySection = Field(default_factory=DeliverySection)
    dkim: DkimSection = Field(default_factory=DkimSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    store: StoreSection = Field(default_factory=StoreSection)
    policy: PolicySection = Field(default_factory=PolicySection)

    rules: RulesSection = Field(default_factory=RulesSection)

    dns: DnsSection = Field(default_factory=DnsSection)

    trust: TrustSection = Field(default_factory=TrustSection)

    tls: TlsSection = Field(default_factory=TlsSection)

    http: HttpSection = Field(default_factory=HttpSection)

    # Derived paths: relative paths in the file are relative to the working directory.
    @property
    def db_path(self) -> Path:
        """The SQLite file: store.url's path when it is a sqlite: URL, else <state_dir>/relay.db."""
        from relay.store import url as store_url

        target = store_url.parse(self.store.url, self.relay.state_dir)
        return target.path if isinstance(target, store_url.SqliteTarget) else self.relay.state_dir / "relay.db"

    @property
    def store_target(self) -> StoreTarget:
        """Where the store is (SqliteTarget or PgTarget, with the password from store.password_file
        read now); relay.store.url.StoreUrlError when that file cannot be read."""
        from relay.store import url as store_url

        return store_url.parse(self.store.url, self.relay.state_dir, self.store.password_file)

    @property
    def spool_path(self) -> Path:
        return self.relay.state_dir / "spool"

    @property
    def maildir_path(self) -> Path:
        return self.delivery.maildir or (self.relay.state_dir / "outbox")

    @property
    def dkim_key_path(self) -> Path:
        return self.dkim.private_key or (self.relay.state_dir / "dkim" / f"{self.dkim.selector}.pem")

    @property
    def store_key_path(self) -> Path:
        return self.store.key_file or (self.relay.state_dir / "store.key")

    @property
    def smtp_hostname(self) -> str:
        return self.smtp.hostname or self.relay.domain


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def _raw(data: dict[str, Any], section: str, key: str, default: Any = None) -> Any:
    table = data.get(section)
    return table.get(key, default) if isinstance(table, dict) else default


def _cross_checks(data: dict[str, Any]) -> list[str]:
    """Rules that tie keys together, read from the file's own values (so that they are reported
    beside the schema's errors, not only once those are fixed)."""
    out = []
    if _raw(data, "delivery", "transport") == "smtp" and not _raw(data, "delivery", "smarthost"):
        out.append('delivery.smarthost: required when delivery.transport = "smtp"')
    cert, key = _raw(data, "tls", "cert_file"), _raw(data, "tls", "key_file")
    if (cert is None) != (key is None):
        out.append("tls.cert_file, tls.key_file: set both or neither")
    listen = _raw(data, "smtp", "listen", ["127.0.0.1:2525"])
    listen = listen if isinstance(listen, list) else []
    submission = _raw(data, "smtp", "submission_listen", [])
    submission = submission if isinstance(submission, list) else []
    require_tls = _raw(data, "tls", "require_tls", [])
    proxy = _raw(data, "trust", "proxy_protocol", [])
    for name, items in (("tls.require_tls", require_tls), ("trust.proxy_protocol", proxy)):
        for item in items if isinstance(items, list) else []:
            if item not in listen:
                out.append(f"{name}: {item!r} is not an entry of smtp.listen")
    if require_tls and cert is None:
        out.append("tls.require_tls: needs tls.cert_file and tls.key_file")
    if submission and cert is None:
        out.append("smtp.submission_listen: needs tls.cert_file and tls.key_file")
    if proxy and not _raw(data, "smtp", "proxy_from"):
        out.append("trust.proxy_protocol: needs smtp.proxy_from (the load balancers allowed "
                   "to send PROXY headers; trust.front_mta no longer implies it)")
    # The same address twice would make the daemon fail to bind it the second time.
    seen: dict[str, str] = {}
    http = [_raw(data, "http", "listen", "127.0.0.1:9325")] if _raw(data, "http", "enabled", True) else []
    for name, items in (("smtp.listen", listen), ("smtp.submission_listen", submission), ("http.listen", http)):
        for item in items:
            if not isinstance(item, str) or item.endswith(":0"):  # port 0: the kernel picks one each
                continue
            if item in seen:
                out.append(f"{name}: {item} is also in {seen[item]}")
            seen.setdefault(item, name)
    return out


def validate(data: dict[str, Any], source: str = "<config>") -> tuple[Settings | None, list[str]]:
    """Settings, or None and every problem of the file, one line each, prefixed with `source`."""
    errors: list[str] = []
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        errors += _format_errors(err, source).splitlines()
    errors += [f"{source}: {e}" for e in _cross_checks(data)]
    return (None if errors else settings), errors


def settings_from_dict(data: dict[str, Any], source: str = "<config>") -> Settings:
    settings, errors = validate(data, source)
    if settings is None:
        raise ConfigError("\n".join(errors))
    return settings


def read_file(path: Path) -> dict[str, Any]:
    """The file's TOML; ConfigError when it cannot be read or parsed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("RELAY_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the configuration; raise ConfigError with a readable text."""
    p = resolve_path(path)
    return settings_from_dict(read_file(p), str(p))
