"""SIGHUP: read the configuration file again, validate it, and hand it to the reloaders.

A reloader is `fn(old, new) -> apply | None` (sync or async). It checks what it needs
(loads a TLS certificate, compiles a policy file…) and raises to refuse the whole reload, or
returns a callable that makes the change. Only when every reloader agreed are the changes
applied, so a bad new file (syntax, a missing certificate) changes nothing and the running
configuration stays. Built in: SMTP limits, logging level/format, the settings that the
stages and the worker read live. Other features register with Relay.add_reloader() or by
appending to ctx.extras["reloaders"]. Keys that need a restart are named in a warning.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from relay import config
from relay import logging as relay_logging
from relay.config import Settings

if TYPE_CHECKING:
    from relay.app import Relay

log = structlog.get_logger("relay.reload")

Apply = Callable[[], None]
Reloader = Callable[[Settings, Settings], Apply | Awaitable[Apply | None] | None]

#: Read once at start: a change is reported, and takes effect at the next restart.
RESTART_KEYS = ("relay.domain", "relay.state_dir", "smtp.listen", "smtp.hostname", "http.listen", "http.enabled",
                "delivery.transport", "delivery.smarthost", "delivery.tls", "delivery.maildir",
                "delivery.concurrency", "dkim", "store")


def _get(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def restart_needed(old: Settings, new: Settings) -> list[str]:
    keys = [key for key in RESTART_KEYS if _get(old, key) != _get(new, key)]
    if "dkim" in keys and "store" in (old.dkim.source, new.dkim.source):
        keys.remove("dkim")  # the keys reloader built the new signer (a new selector's key too)
    return keys


def builtin_reloaders(relay: Relay) -> list[Reloader]:
    def limits(old: Settings, new: Settings) -> Apply:
        return lambda: relay.limits.update(new)

    def logging(old: Settings, new: Settings) -> Apply | None:
        if old.logging == new.logging:
            return None
        return lambda: relay_logging.configure(new.logging.level, new.logging.format, keep_domain=new.relay.domain)

    def live_settings(old: Settings, new: Settings) -> Apply:
        def apply() -> None:
            relay.settings = new
            if relay.ctx is not None:
                relay.ctx.settings = new
            if relay.worker is not None:
                relay.worker.settings = new  # retry_base, retry_max, lifetime

        return apply

    def tls(old: Settings, new: Settings) -> Apply | None:
        # Build the new context now (a broken certificate refuses the whole reload); the next
        # STARTTLS uses it, sessions already in TLS keep theirs.
        if relay.tls is None or new.tls.cert_file is None or new.tls.key_file is None:
            return None
        from relay.smtp.tls import server_context

        context = server_context(str(new.tls.cert_file), str(new.tls.key_file))
        current = relay.tls

        def apply() -> None:
            current.cert_file, current.key_file = str(new.tls.cert_file), str(new.tls.key_file)
            current.server = context
            log.info("TLS certificate reloaded", cert=current.cert_file)

        return apply

    async def policy(old: Settings, new: Settings) -> Apply | None:
        # Compile the new policy file now (an error names the key and refuses the reload), its
        # hyperscan database with it, in a thread: half a second the event loop need not wait.
        if relay.ctx is None or "policy" not in relay.ctx.extras:
            return None
        from relay.pipeline.stages import content

        compiled = await asyncio.to_thread(content.compile_policy, new.policy.path)
        ctx = relay.ctx

        def apply() -> None:
            ctx.settings = new
            content.load(ctx, compiled)
            log.info("policy reloaded", path=str(new.policy.path))

        return apply

    async def keys(old: Settings, new: Settings) -> Apply | None:
        # Keys kept in the store (dkim.source, rules.unsubscribe_secret_source = "store") are read
        # again: one installed or replaced with `relay keys install` (a new selector's DKIM key, say)
        # takes effect on SIGHUP. A key missing or not opening refuses the whole reload.
        if relay.ctx is None:
            return None
        from relay.app import signer_for, unsubscribe_secret_for

        # relay.domain is read once at start: the new signer keeps the running one
        keep = new.model_copy(update={"relay": new.relay.model_copy(update={"domain": old.relay.domain})})
        signer = None
        if "store" in (old.dkim.source, new.dkim.source) and relay.explicit_signer is None:
            signer = await signer_for(keep, relay.store)
        secret = None
        if "store" in (old.rules.unsubscribe_secret_source, new.rules.unsubscribe_secret_source):
            secret = await unsubscribe_secret_for(keep, relay.store)
        if signer is None and secret is None:
            return None
        ctx = relay.ctx

        def apply() -> None:
            if signer is not None:
                ctx.signer = signer
                if relay.worker is not None:
                    relay.worker.signer = signer
                log.info("DKIM key reloaded", selector=signer.selector, source=new.dkim.source)
            if secret is not None:
                ctx.extras["unsubscribe_secret"] = secret
                log.info("unsubscribe secret reloaded", source=new.rules.unsubscribe_secret_source)

        return apply

    return [limits, logging, live_settings, tls, policy, keys]


async def reload(relay: Relay, path: Path | None) -> bool:
    source = config.resolve_path(path)
    try:
        new = await asyncio.to_thread(config.load, source)
        applies: list[Apply] = []
        for reloader in list(relay.reloaders):
            result = reloader(relay.settings, new)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                applies.append(result)
    except Exception as exc:
        text = str(exc) if isinstance(exc, config.ConfigError) else f"{type(exc).__name__}: {exc}"
        log.error("configuration reload refused; the running configuration stays", file=str(source), error=text)
        relay.metrics.reloads.labels("refused").inc()
        return False
    pending = restart_needed(relay.settings, new)
    for apply in applies:
        apply()
    relay.metrics.reloads.labels("applied").inc()
    log.info("configuration reloaded", file=str(source))
    if pending:
        log.warning("some changed keys take effect only after a restart", keys=pending)
    return True
