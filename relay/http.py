"""Metrics and health over a tiny HTTP/1.1 listener on the relay's own event loop (no threads).
With smtp.workers > 1 the supervisor binds it once and every worker answers on it; /metrics is the
whole relay's whichever answers (relay/metrics.py).

Reads: http.listen (default 127.0.0.1:9325: loopback only), http.stall_after, http.min_free_disk.
GET /metrics → Prometheus text format; GET /healthz → 200 {"ok": true, …} or 503 with the
failed checks: the store takes a write, the disk has room, the queue is not stalled.
POST …/unsubscribe/<token> → RFC 8058 one-click opt-out (relay.http_base_url points a reverse
proxy here; any path prefix before /unsubscribe/ is accepted).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from relay.config import ListenError, split_hostport
from relay.metrics import Metrics
from relay.smtp import shared

log = structlog.get_logger("relay.http")

_STATUS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
MAX_REQUEST = 8192
#: With several workers, how often each writes its own gauges for whichever serves /metrics.
REFRESH = 1.0


class HttpServer:
    def __init__(self, relay: Any, metrics: Metrics) -> None:
        self.relay = relay  # relay.app.Relay (settings, store, worker, clock)
        self.metrics = metrics
        self.server: asyncio.Server | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.routes: dict[str, Callable[[], Awaitable[tuple[int, str, bytes]]]] = {
            "/metrics": self.metrics_page, "/healthz": self.health_page}

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        sock = shared.SHARED.http_socket if shared.SHARED is not None else None
        if sock is not None:  # bound once by the supervisor: every worker answers on it
            self.server = await asyncio.start_server(self._serve, sock=sock)
        else:
            host, port = split_hostport(self.relay.settings.http.listen)
            try:
                self.server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
            except OSError as exc:
                raise ListenError("http.listen", self.relay.settings.http.listen, exc) from None
        if self.metrics.worker_files is not None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh())
        log.info("http listening", address=self.address)

    async def _refresh(self) -> None:
        """A sibling may serve /metrics: keep this worker's own gauges in its file fresh (1 s)."""
        while True:
            self.metrics.store_commits.set(self.relay.store.transactions)
            await asyncio.sleep(REFRESH)

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path = _request_line(head)
            route = self.routes.get(path.split("?", 1)[0])
            one_click = _ONE_CLICK.search(path.split("?", 1)[0]) if method == "POST" else None
            if one_click is not None:
                status, ctype, body = await self.one_click(reader, head, one_click.group(1))
            elif method is None:
                status, ctype, body = 400, "text/plain", b"bad request\n"
            elif route is None:
                status, ctype, body = 404, "text/plain", b"not found\n"
            elif method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = await route()
            writer.write(f"HTTP/1.1 {status} {_STATUS[status]}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + (body if method != "HEAD" else b""))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("http request failed")
        finally:
            writer.close()

    async def one_click(self, reader: asyncio.StreamReader, head: bytes, token: str) -> tuple[int, str, bytes]:
        """RFC 8058 one-click unsubscribe: POST <base>/unsubscribe/<token> with List-Unsubscribe=One-Click."""
        from relay.rules import tokens
        from relay.rules.unsubscribe import unsubscribe_by_token

        fields = _headers(head)
        length = fields.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_REQUEST:
            return 400, "text/plain", b"bad request\n"
        body = await asyncio.wait_for(reader.readexactly(int(length)), 10)
        if not tokens.one_click_body_ok(fields.get("content-type", ""), body):
            return 400, "text/plain", b"expected List-Unsubscribe=One-Click\n"
        ctx = self.relay.ctx
        secret = (ctx.extras.get("unsubscribe_secret") if ctx is not None else None) or tokens.load_secret(
            self.relay.settings.relay.state_dir)
        now = self.relay.clock()
        changed = await unsubscribe_by_token(self.relay.store, secret, token, via="https", now=now)
        if changed is None:
            return 404, "text/plain", b"unknown unsubscribe link\n"
        return 200, "text/plain", b"unsubscribed\n"

    async def metrics_page(self) -> tuple[int, str, bytes]:
        try:
            stats = await self.relay.store.queue.stats()
            self.metrics.set_queue(stats, self.relay.clock())
        except Exception as exc:  # still serve the counters when the store is unwell
            log.warning("queue statistics unavailable", error=str(exc))
        self.metrics.store_commits.set(self.relay.store.transactions)
        self.metrics.smtp_active.set(self.relay.limits.counters.total())  # all workers' (relay/smtp/counters.py)
        return 200, CONTENT_TYPE_LATEST, self.metrics.render()

    async def health_page(self) -> tuple[int, str, bytes]:
        checks = await self.health()
        ok = all(c["ok"] for c in checks.values())
        return (200 if ok else 503), "application/json", orjson.dumps({"ok": ok, "checks": checks}) + b"\n"

    async def health(self) -> dict[str, dict[str, Any]]:
        settings, now = self.relay.settings, self.relay.clock()
        checks: dict[str, dict[str, Any]] = {}
        try:  # a real write transaction: takes the write lock and commits
            await asyncio.wait_for(self.relay.store.touch(), 5)
            checks["store"] = {"ok": True}
        except Exception as exc:
            checks["store"] = {"ok": False, "error": str(exc)[:200]}
        try:
            st = os.statvfs(settings.relay.state_dir)
            free = st.f_bavail * st.f_frsize
            checks["disk"] = {"ok": free >= settings.http.min_free_disk, "free_bytes": free}
        except OSError as exc:
            checks["disk"] = {"ok": False, "error": exc.strerror}
        worker = self.relay.worker
        alive = worker is not None and worker.running
        stalled_for = 0.0
        try:
            stats = await self.relay.store.queue.stats()
            if stats.oldest_due_at is not None:
                stalled_for = max(0.0, now - stats.oldest_due_at)
            # leases run out only where a process froze or died; any process's sweeper takes them back
            expired = await self.relay.store.queue.expired_leases(now)
            checks["queue"] = {"ok": alive and stalled_for < settings.http.stall_after, "worker_running": alive,
                               "overdue_seconds": round(stalled_for, 3), "expired_leases": expired, **stats.depth}
        except Exception as exc:
            checks["queue"] = {"ok": False, "error": str(exc)[:200]}
        return checks


_ONE_CLICK = re.compile(r"/unsubscribe/([A-Za-z0-9._-]{8,200})$")


def _headers(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _request_line(head: bytes) -> tuple[str | None, str]:
    if len(head) > MAX_REQUEST:
        return None, ""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None, ""
    return parts[0], parts[1]
