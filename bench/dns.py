"""A loopback DNS server for the relay's sender authentication: SPF for the bench's buyer domain.

Reads nothing; serves `v=spf1 ip4:127.0.0.1 -all` for buyer.example (and a DMARC record) from a child
process with dnslib, so the relay does its real SPF lookups per message without the outside world.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.e2e import free_port

ZONE = ('buyer.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
        '_dmarc.buyer.example. 300 IN TXT "v=DMARC1; p=reject"\n')

_SERVER = """
import sys, time
from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSServer
rrs = RR.fromZone(sys.argv[2])
names = {rr.rname for rr in rrs}
class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply, q = request.reply(), request.q
        for rr in rrs:
            if rr.rname == q.qname and q.qtype in (rr.rtype, QTYPE.ANY):
                reply.add_answer(rr)
        if not reply.rr and q.qname not in names:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply
for tcp in (False, True):
    DNSServer(Zone(), address="127.0.0.1", port=int(sys.argv[1]), tcp=tcp).start_thread()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def available() -> bool:
    try:
        import dnslib  # noqa: F401
    except ImportError:
        return False
    return True


class LocalDns:
    def __init__(self) -> None:
        self.port = free_port()
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(self.port), ZONE], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        assert self._proc.stdout
        deadline = time.monotonic() + 20
        while self._proc.stdout.readline().strip() != "ready":
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("the bench DNS server did not start")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None
