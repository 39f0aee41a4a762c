"""Shared helpers for the DKIM tests: cached test keys, a dict zone for dkimpy, a real local DNS server
(dnslib, UDP on 127.0.0.1) and wrappers around the independent verifiers (Perl Mail::DKIM, OpenDKIM).

`python -m tests.dkimtools netns ZONEFILE FILE...` is the inside half of `opendkim_testmsg`: it must run in
a private network+mount namespace (unshare --net --mount), where it brings up loopback, bind-mounts its own
resolv.conf, serves the zone on 127.0.0.1:53 and prints one JSON line per file with opendkim-testmsg's result.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
DOMAIN = "example.test"
SELECTOR = "sel2048"
ED_SELECTOR = "sel2048-ed"


# --------------------------------------------------------------------------- keys and messages


@functools.cache
def rsa_pem(bits: int = 2048, n: int = 0) -> bytes:
    """A PKCS#1 RSA key, generated once per (bits, n) and test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@functools.cache
def ed25519_pem(n: int = 0) -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def crlf(data: bytes) -> bytes:
    """Normalise any mix of CR, LF and CRLF to CRLF (what the relay does before signing)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def corpus_manifest() -> list[dict[str, Any]]:
    """The rows of the shared corpus's manifest.jsonl ({"file": …, "tags": …}); [] without the corpus."""
    path = CORPUS / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def relaxed_body_reference(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 relaxed body canonicalisation in one piece (the reference for the chunked one)."""
    body = body.replace(b"\t", b" ")
    while b"  " in body:
        body = body.replace(b"  ", b" ")
    body = body.replace(b" \r\n", b"\r\n").rstrip(b"\r\n")
    if body.endswith(b" "):
        body = body.rstrip(b" ").rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def dict_dnsfunc(zone: Mapping[str, str]) -> Callable[..., bytes | None]:
    """dkimpy `dnsfunc` answering from {"sel._domainkey.example.test": "v=DKIM1; …"}; None = NXDOMAIN."""
    table = {name.rstrip(".").lower(): value.encode("ascii") for name, value in zone.items()}

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return table.get(name.decode("ascii").rstrip(".").lower())

    return dnsfunc


# --------------------------------------------------------------------------- local DNS


class ZoneResolver(BaseResolver):
    """Authoritative answers from zone-file text; NXDOMAIN for names it does not hold. Records queries."""

    def __init__(self, zone_text: str) -> None:
        self.records = RR.fromZone(zone_text)
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()  # aa=1, ra=1
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((str(qname), qtype))
        known = [rr for rr in self.records if rr.rname == qname]
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        for rr in known:
            if qtype in ("ANY", QTYPE[rr.rtype]):
                reply.add_answer(rr)
        return reply


@contextmanager
def dns_server(zone_text: str, port: int = 0, address: str = "127.0.0.1") -> Iterator[tuple[int, ZoneResolver]]:
    """Serve `zone_text` over UDP on address:port (0 = ephemeral) in a thread; yield (port, resolver)."""
    resolver = ZoneResolver(zone_text)
    server = DNSServer(resolver, address=address, port=port, logger=DNSLogger(logf=lambda _s: None))
    server.start_thread()
    try:
        yield server.server.server_address[1], resolver
    finally:
        server.stop()
        server.server.server_close()
        server.thread.join(5)


# --------------------------------------------------------------------------- independent verifiers


def tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def dkimproxy_verify(message: bytes, port: int, timeout: float = 20) -> str:
    """Perl Mail::DKIM (Debian's dkimproxy-verify = upstream dkimverify.pl); returns its whole output."""
    exe = tool("dkimproxy-verify")
    assert exe is not None
    env = {**os.environ, "RES_NAMESERVERS": "127.0.0.1", "RES_OPTIONS": f"port:{port}"}
    env.pop("LOCALDOMAIN", None)
    r = subprocess.run([exe], input=message, capture_output=True, env=env, timeout=timeout, check=False)
    return (r.stdout + r.stderr).decode("utf-8", "replace")


def opendkim_testkey(workdir: Path, port: int, selector: str, key_path: Path,
                     domain: str = DOMAIN) -> tuple[int, str]:
    """opendkim-testkey through libunbound forwarding to the test DNS (RFC 6761 `test.` must be un-blocked)."""
    exe = tool("opendkim-testkey")
    assert exe is not None
    unbound = workdir / "unbound-local.conf"
    unbound.write_text(
        "server:\n"
        "    do-not-query-localhost: no\n"
        '    local-zone: "test." nodefault\n'
        '    module-config: "iterator"\n'
        "forward-zone:\n"
        '    name: "."\n'
        f"    forward-addr: 127.0.0.1@{port}\n"
    )
    conf = workdir / "opendkim-testkey.conf"
    conf.write_text(f"ResolverConfiguration {unbound}\n")
    r = subprocess.run([exe, "-x", str(conf), "-d", domain, "-s", selector, "-k", str(key_path), "-vvv"],
                       capture_output=True, timeout=20, check=False)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def opendkim_testmsg(zone_text: str, messages: Sequence[bytes], timeout: float = 30) -> list[tuple[int, str]]:
    """Verify each message with opendkim-testmsg inside a private net+mount namespace; (rc, output) each.

    opendkim-testmsg uses the libc resolver, which only speaks to port 53 and reads /etc/resolv.conf;
    the namespace gives it both without touching the host. rc 0 and no output means "verified".
    """
    with tempfile.TemporaryDirectory(prefix="dkim-netns-") as tmp:
        d = Path(tmp)
        zone = d / "zone.txt"
        zone.write_text(zone_text)
        files = []
        for i, m in enumerate(messages):
            f = d / f"msg{i}.eml"
            f.write_bytes(m)
            files.append(str(f))
        # Not root (CI): an unprivileged user namespace gives the same powers inside it.
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        r = subprocess.run(
            ["unshare", *userns, "--net", "--mount", sys.executable, "-m", "tests.dkimtools", "netns", str(zone),
             *files],
            capture_output=True, timeout=timeout, cwd=REPO, check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"netns helper failed rc={r.returncode}: {r.stderr.decode('utf-8', 'replace')}")
        results = [json.loads(line) for line in r.stdout.decode().splitlines() if line.startswith("{")]
        return [(int(x["rc"]), str(x["out"])) for x in results]


def _netns_main(zone_file: str, files: Sequence[str]) -> int:
    """Inside `unshare --net --mount`: private resolver + DNS on 127.0.0.1:53, then opendkim-testmsg per file."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".resolv.conf", delete=False) as rc:
        rc.write("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    try:
        subprocess.run(["mount", "--bind", rc.name, "/etc/resolv.conf"], check=True)
        exe = tool("opendkim-testmsg") or "opendkim-testmsg"
        with dns_server(Path(zone_file).read_text(), port=53):
            for f in files:
                with open(f, "rb") as fh:
                    r = subprocess.run([exe], stdin=fh, capture_output=True, timeout=20, check=False)
                out = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
                print(json.dumps({"file": f, "rc": r.returncode, "out": out}), flush=True)
    finally:
        os.unlink(rc.name)
    return 0


def main(argv: Sequence[str]) -> int:
    args: list[Any] = list(argv)
    if len(args) >= 2 and args[0] == "netns":
        return _netns_main(args[1], args[2:])
    print("usage: python -m tests.dkimtools netns ZONEFILE FILE...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
