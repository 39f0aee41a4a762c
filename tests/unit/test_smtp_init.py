"""A session's auth mechanisms and hooks, worked out once per class, are what aiosmtpd's own
per-connection inspection finds (relay.smtp.server._ClassInspect)."""

from __future__ import annotations

import inspect

import aiosmtpd.smtp
import pytest

from relay.smtp.limits import Limits
from relay.smtp.server import RelaySMTP, _ClassInspect, _hook_dir


class _Handler:
    async def handle_DATA(self, *args: object) -> str:
        return "250 OK"

    async def handle_EHLO(self, server: object, session: object, envelope: object, hostname: str,
                          responses: list[str]) -> list[str]:
        return responses

    async def auth_CRAM__MD5(self, server: object, args: list[str]) -> None:
        return None


def _session(monkeypatch: pytest.MonkeyPatch, inspector: object) -> RelaySMTP:
    monkeypatch.setattr(aiosmtpd.smtp, "inspect", inspector)
    return RelaySMTP(_Handler(), limits=Limits(10, 10, 10.0), hostname="relay.example", ident="relay")


def test_cached_inspection_finds_what_inspect_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _session(monkeypatch, inspect)
    cached = _ClassInspect()
    for _ in range(3):  # the first computes, the next ones look up: the same answers each time
        session = _session(monkeypatch, cached)
        assert sorted(session._auth_methods) == sorted(reference._auth_methods)
        assert {"LOGIN", "PLAIN", "CRAM-MD5"} <= set(session._auth_methods)
        for name, mech in session._auth_methods.items():  # bound to this session and its handler
            assert mech.is_builtin == reference._auth_methods[name].is_builtin
            assert mech.method.__self__ is (session if mech.is_builtin else session.event_handler)
        assert session._ehlo_hook_ver == reference._ehlo_hook_ver == "new"
        assert sorted(session._handle_hooks) == sorted(reference._handle_hooks)
    assert len(cached._auth) == 2  # one entry per class: the session's and the handler's


def test_cached_hook_names_find_what_dir_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _Handler()
    handler.handle_NOOP = handler.handle_DATA  # type: ignore[attr-defined]  # a hook set on the instance
    monkeypatch.delattr(aiosmtpd.smtp, "dir")  # aiosmtpd's own: the builtin dir()
    reference = RelaySMTP(handler, limits=Limits(10, 10, 10.0), hostname="relay.example")
    monkeypatch.setattr(aiosmtpd.smtp, "dir", _hook_dir, raising=False)
    for _ in range(2):
        session = RelaySMTP(handler, limits=Limits(10, 10, 10.0), hostname="relay.example")
        assert sorted(session._handle_hooks) == sorted(reference._handle_hooks)
        assert "NOOP" in session._handle_hooks and "DATA" in session._handle_hooks
        assert sorted(session._smtp_methods) == sorted(reference._smtp_methods)
        assert {"MAIL", "RCPT", "DATA", "STARTTLS"} <= set(session._smtp_methods)
        for name, method in session._smtp_methods.items():  # bound to this session, not a cached one
            assert method.__self__ is session
            assert method.__func__ is reference._smtp_methods[name].__func__
