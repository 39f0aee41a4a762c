"""Shared fixtures for the policy tests: the real policy file, message builders, no network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from relay.policy import Policy, load_policy
from tests.dkimtools import CORPUS  # noqa: F401  (the policy tests import it from here)

ROOT = Path(__file__).resolve().parents[3]
POLICY_PATH = ROOT / "config" / "policy.toml"


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(POLICY_PATH)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Policy code must never open a socket (TLD lists are offline)."""

    def guard(*_a: object, **_k: object) -> None:
        raise AssertionError("policy code tried to open a network connection")

    monkeypatch.setattr(socket, "socket", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setattr(socket, "getaddrinfo", guard)
    yield


def plain(body: str, subject: str = "Re: your order", charset: str = "utf-8", cte: str = "8bit") -> bytes:
    head = (f"From: seller@relay.example\r\nTo: buyer@relay.example\r\nSubject: {subject}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n")
    return head.encode("utf-8") + body.replace("\n", "\r\n").encode("utf-8" if charset == "utf-8" else charset)


def html(body: str, subject: str = "Re: your order") -> bytes:
    msg = EmailMessage()
    msg["From"] = "seller@relay.example"
    msg["To"] = "buyer@relay.example"
    msg["Subject"] = subject
    msg.set_content(body, subtype="html", cte="quoted-printable")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def with_attachment(data: bytes, filename: str, ctype: str = "application/octet-stream",
                    text: str = "Please see the attached file.") -> bytes:
    msg = EmailMessage()
    msg["From"] = "seller@relay.example"
    msg["To"] = "buyer@relay.example"
    msg["Subject"] = "Attachment"
    msg.set_content(text)
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes().replace(b"\n", b"\r\n")
