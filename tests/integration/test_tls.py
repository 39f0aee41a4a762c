"""TLS with certificates made by the test (trustme): inbound STARTTLS (TLS 1.2+), require_tls, reload
without dropping sessions, outbound STARTTLS verified against a CA file, and the submission listener
with AUTH PLAIN/LOGIN and party passwords set by `relay party password`."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP

from relay.store import credentials, queue
from relay.trust import passwords
from tests.support import DOMAIN, Sink, World, _SinkHandler, eventually, message, provision, write

PASSWORD = "correct horse battery staple"


def cert_files(tmp: Path, name: str) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", DOMAIN)
    tmp.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    return ca, cert_file, key_file


def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def tls_send(port: int, ctx: ssl.SSLContext, world: World, login: str | None = None,
             password: str = PASSWORD, starttls: bool = True) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.ehlo("client.test")
        if starttls:
            c.starttls(context=ctx)
            c.ehlo("client.test")
        if login:
            c.login(login, password)
        return c.sendmail(world.seller_email, [world.buyer_alias], message(world.seller_email, world.buyer_alias))


@pytest.fixture
def certs(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    return cert_files(tmp_path / "tls", "one")


async def test_starttls_inbound_tls12_plus_and_require_tls(start_relay: Any, certs: Any) -> None:
    ca, cert, key = certs
    relay = await start_relay(smtp={"listen": ["127.0.0.1:0"]},
                              tls={"cert_file": str(cert), "key_file": str(key), "require_tls": ["127.0.0.1:0"]})
    world = provision(relay.settings)
    port = relay.addresses[0][1]
    assert await asyncio.to_thread(tls_send, port, client_ctx(ca), world) == {}
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # require_tls: no MAIL in the clear
        await asyncio.to_thread(tls_send, port, client_ctx(ca), world, None, PASSWORD, False)
    assert refused.value.smtp_code == 530
    assert relay.tls is not None
    assert relay.tls.server.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_reload_swaps_certificate_without_dropping_sessions(start_relay: Any, tmp_path: Path,
                                                                 certs: Any) -> None:
    ca1, cert, key = certs
    relay = await start_relay(tls={"cert_file": str(cert), "key_file": str(key)})
    world = provision(relay.settings)
    port = relay.addresses[0][1]

    def open_session(ctx: ssl.SSLContext) -> smtplib.SMTP:
        c = smtplib.SMTP("127.0.0.1", port, timeout=20)
        c.ehlo("client.test")
        c.starttls(context=ctx)
        c.ehlo("client.test")
        return c

    before = await asyncio.to_thread(open_session, client_ctx(ca1))
    ca2, cert2, key2 = cert_files(tmp_path / "tls2", "two")
    cert.write_bytes(cert2.read_bytes())
    key.write_bytes(key2.read_bytes())
    assert relay.reload_tls()
    # the session encrypted before the reload goes on
    data = message(world.seller_email, world.buyer_alias)
    assert await asyncio.to_thread(before.sendmail, world.seller_email, [world.buyer_alias], data) == {}
    await asyncio.to_thread(before.quit)
    # new STARTTLS sessions get the new certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(open_session, client_ctx(ca1))
    after = await asyncio.to_thread(open_session, client_ctx(ca2))
    await asyncio.to_thread(after.quit)
    # a broken file keeps the current certificate
    key.write_text("not a key")
    assert relay.reload_tls() is False
    again = await asyncio.to_thread(open_session, client_ctx(ca2))
    await asyncio.to_thread(again.quit)


class TlsSink(Sink):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__()
        self.ctx = ctx

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(_SinkHandler(self), tls_context=self.ctx, require_starttls=True, hostname="sink.test"),
            host="127.0.0.1", port=self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("trusted", [True, False])
async def test_outbound_starttls_verified_against_ca_file(start_relay: Any, tmp_path: Path, certs: Any,
                                                          trusted: bool) -> None:
    sink_ca, sink_cert, sink_key = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(sink_cert, sink_key)
    sink = TlsSink(server_ctx)
    await sink.start()
    try:
        ca_file = tmp_path / "ca.pem"
        (sink_ca if trusted else trustme.CA()).cert_pem.write_to_path(str(ca_file))
        relay = await start_relay(delivery={"transport": "smtp", "smarthost": f"127.0.0.1:{sink.port}",
                                            "tls": "required", "tls_ca_file": str(ca_file)})
        world = provision(relay.settings)
        assert await asyncio.to_thread(tls_send, relay.addresses[0][1], client_ctx(sink_ca), world,
                                       None, PASSWORD, False) == {}
        if trusted:
            (got,) = await sink.wait_for(1)
            assert got.rcpt_tos == [world.buyer_email]
        else:
            def attempted() -> bool:
                conn = world.conn()
                try:
                    rows = queue.listing(conn)
                    return bool(rows) and rows[0].attempts >= 1
                finally:
                    conn.close()

            await eventually(attempted)
            assert sink.received == []
    finally:
        await sink.stop()


async def test_submission_auth_per_party(start_relay: Any, tmp_path: Path, certs: Any) -> None:
    ca, cert, key = certs
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # any DNS lookup would time out
    silent.bind(("127.0.0.1", 0))
    cfg = tmp_path / "relay.toml"
    state = tmp_path / "state"
    cfg.write_text(f'[relay]\ndomain = "{DOMAIN}"\nstate_dir = "{state}"\n')
    try:
        relay = await start_relay(
            smtp={"listen": ["127.0.0.1:0"], "submission_listen": ["127.0.0.1:0"]},
            tls={"cert_file": str(cert), "key_file": str(key)},
            trust={"authenticate": "enforce"},
            dns={"nameservers": ["127.0.0.1"], "port": silent.getsockname()[1], "timeout": "0.5s"})
        world = provision(relay.settings)
        r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "relay", "--config", str(cfg), "party", "password",
                            world.seller_email, "--password-stdin", "--json"],
                           input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"party": world.seller_id, "password": "set"}
        assert "scrypt$" in (await asyncio.to_thread(stored_hash, world))
        mx, submission = relay.addresses[0][1], relay.addresses[1][1]
        ctx = client_ctx(ca)
        # authenticated as the seller: accepted without SPF/DKIM (DNS here never answers)
        assert await asyncio.to_thread(tls_send, submission, ctx, world, "shop@seller.example") == {}
        # the same mail to the MX listener needs DNS: 451
        with pytest.raises(smtplib.SMTPDataError) as exc:
            await asyncio.to_thread(tls_send, mx, ctx, world)
        assert exc.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            await asyncio.to_thread(tls_send, submission, ctx, world, "shop@seller.example", "wrong password!")
        assert bad.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPSenderRefused) as anon:  # no MAIL in the clear
            await asyncio.to_thread(tls_send, submission, ctx, world, None, PASSWORD, False)
        assert anon.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPSenderRefused) as noauth:  # encrypted but not logged in
            await asyncio.to_thread(tls_send, submission, ctx, world)
        assert noauth.value.smtp_code == 530
        # authenticated as the seller and writing to the seller's own alias: told so in as many words
        def to_own_alias() -> None:
            with smtplib.SMTP("127.0.0.1", submission, timeout=20) as c:
                c.starttls(context=ctx)
                c.login("shop@seller.example", PASSWORD)
                c.sendmail(world.seller_email, [world.seller_alias], message(world.seller_email, world.seller_alias))

        with pytest.raises(smtplib.SMTPRecipientsRefused) as own:
            await asyncio.to_thread(to_own_alias)
        code, text = own.value.recipients[world.seller_alias]
        assert code == 550 and b"stands for you" in text
        # the buyer's password does not let anyone send as the seller
        conn = world.conn()
        write(conn, lambda c: credentials.set_password(c, world.buyer_id, passwords.hash_password(PASSWORD)))
        conn.close()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await asyncio.to_thread(tls_send, submission, ctx, world, world.buyer_email)
    finally:
        silent.close()


def stored_hash(world: World) -> str:
    conn = world.conn()
    try:
        return credentials.password_hash(conn, world.seller_id) or ""
    finally:
        conn.close()
