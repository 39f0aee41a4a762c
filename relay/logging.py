"""structlog set-up: JSON lines (journald, shippers) or a console format on a terminal.

Reads: logging.level, logging.format ("auto" = console when stderr is a TTY).
Context (thread, message, peer) is bound through contextvars by the callers. Every stdlib
logger (aiosmtpd's `mail.log`, asyncio, …) goes through the same renderer, so at any level every
line is JSON; no line carries an address other than our own aliases (parties are named by id),
and aiosmtpd's copies of DATA lines and AUTH credentials are not logged at all.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

# Anything shaped like local@domain, in any script, also inside the repr of the bytes aiosmtpd logs
# (b'RCPT TO:<\xe3\x81\x82@example.jp>'): its characters are kept out of the mask only by what
# cannot be in an address there.
_ADDRESS = re.compile(r"""[^\s<>"'(),;:\[\]@]+@([^\s<>"'(),;:\[\]@]+)""")
_AUTH = re.compile(r"(?i)\b(AUTH\s+[A-Z0-9_-]+)\s+\S+")
MASK = "<address>"
#: aiosmtpd records that copy what a client sent verbatim (message lines, the raw command line it also
#: logs parsed): message content and credentials are not log material.
_DROPPED = ("DATA readline", "_handle_client readline", "%r << challenge", "%r can't decode base64", "auth_%s returned")


def redactor(keep_domain: str | None) -> Callable[[Any, str, MutableMapping[str, Any]], dict[str, Any]]:
    """A processor that masks every address except those at `keep_domain` (our aliases) and the
    argument of an AUTH command, in every string of the event (nested ones too)."""
    keep = keep_domain.lower().rstrip(".") if keep_domain else None

    def mask(match: re.Match[str]) -> str:
        return match.group(0) if keep and match.group(1).lower().rstrip(".'") == keep else MASK

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            if "@" in value:
                value = _ADDRESS.sub(mask, value)
            if "AUTH" in value or "auth" in value:
                value = _AUTH.sub(r"\1 <redacted>", value)
            return value
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    def processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
        return {k: clean(v) for k, v in event_dict.items()}

    return processor


class _DropVerbatim(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("mail.log") and isinstance(record.msg, str)
                    and record.msg.startswith(_DROPPED))


class _Handler(logging.Handler):
    """Writes the rendered line to the same stream structlog writes to (bytes or text)."""

    def __init__(self, stream: Any, binary: bool) -> None:
        super().__init__()
        self.stream, self.binary = stream, binary

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            self.stream.write(line.encode() if self.binary else line)
            self.stream.flush()
        except Exception:
            self.handleError(record)


def configure(level: str = "info", fmt: str = "auto", stream: Any = None, keep_domain: str | None = None) -> None:
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Locals of a traceback's frames would carry addresses and message text: frames only.
    tracebacks = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    redact = redactor(keep_domain)
    renderer: Any
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        tail: list[Any] = [redact, renderer]
        factory: Any = structlog.PrintLoggerFactory(file=stream)
        target, binary = stream, False
    else:
        renderer = structlog.processors.JSONRenderer(serializer=lambda *a, **k: orjson.dumps(*a, **k).decode())
        tail = [tracebacks, redact, structlog.processors.JSONRenderer(serializer=orjson.dumps)]
        target = getattr(stream, "buffer", stream)
        factory = structlog.BytesLoggerFactory(file=target)
        binary = True
    structlog.configure(
        processors=shared + tail,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    # Every stdlib logger (aiosmtpd's mail.log, asyncio, pypdf …): the same processors, one renderer.
    handler = _Handler(target, binary)
    handler.addFilter(_DropVerbatim())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([] if console else [tracebacks]), redact, renderer],
    ))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old, _Handler):  # ours from a previous configure() (SIGHUP); others stay
            root.removeHandler(old)
    root.addHandler(handler)
    # aiosmtpd and others are quiet unless debugging.
    stdlib_level = logging.DEBUG if level == "debug" else logging.WARNING
    root.setLevel(stdlib_level)
    logging.getLogger("mail.log").setLevel(stdlib_level)
