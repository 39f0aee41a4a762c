"""TLS contexts: the inbound STARTTLS context (certificate and key from files, TLS 1.2+), swapped
atomically by reload() (SIGHUP) so that sessions already encrypted keep theirs and the next
STARTTLS uses the new certificate; and the outbound context for the smarthost.

Reads: tls.cert_file, tls.key_file, delivery.tls, delivery.tls_ca_file.
"""

from __future__ import annotations

import ssl

import structlog

from relay.config import Settings

log = structlog.get_logger("relay.tls")


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # mail clients do not present certificates
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(settings: Settings) -> ssl.SSLContext | None:
    """For the smarthost: verified against tls_ca_file (or the system's CAs) when tls = "required"."""
    d = settings.delivery
    if d.tls == "off":
        return None
    if d.tls == "required":
        ctx = ssl.create_default_context(cafile=str(d.tls_ca_file) if d.tls_ca_file else None)
    else:  # opportunistic: encrypt when offered, without checks (RFC 7435)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class TlsContexts:
    """The current inbound context; `server` is read at every STARTTLS."""

    def __init__(self, settings: Settings) -> None:
        assert settings.tls.cert_file is not None and settings.tls.key_file is not None
        self.cert_file = str(settings.tls.cert_file)
        self.key_file = str(settings.tls.key_file)
        self.server = server_context(self.cert_file, self.key_file)

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsContexts | None:
        return cls(settings) if settings.tls.cert_file is not None else None

    def reload(self) -> bool:
        """Load the files again; on an error keep the old context (and say so) rather than stop TLS."""
        try:
            self.server = server_context(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS reload failed; keeping the previous certificate", error=str(exc))
            return False
        log.info("TLS certificate reloaded", cert=self.cert_file)
        return True
